/* GGUF writer: builds the header in memory, then streams tensor data one tensor at a time. */
#include "gguf_write.h"
#include "report.h"
#include "strbuf.h"
#include "xalloc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define WRITER_DEFAULT_ALIGNMENT 32

struct writer_tensor {
	char *name;
	int n_dims;
	int64_t ne[4];
	int type;
	uint64_t offset; /* from the data section, aligned */
	uint64_t nbytes;
};

struct gguf_writer {
	struct strbuf kv; /* serialized metadata entries */
	int64_t n_kv;
	char **keys; /* (n_kv) for the duplicate check */
	size_t keys_alloc;
	struct writer_tensor *t; /* (n_t) in file order */
	int64_t n_t;
	size_t t_alloc;
	uint64_t data_size; /* end of the last tensor, unpadded */
	uint32_t alignment;

	char *path;     /* final name; NULL before begin */
	char *tmp_path; /* PATH.tmp while writing */
	FILE *f;
	int64_t cur;       /* tensor being written */
	uint64_t cur_done; /* bytes of it written so far */
	int failed;        /* a write failed: refuse the rest */
};

struct gguf_writer *gguf_writer_new(void)
{
	struct gguf_writer *w = xcalloc(1, sizeof(*w));
	strbuf_init(&w->kv, 4096);
	w->alignment = WRITER_DEFAULT_ALIGNMENT;
	return w;
}

void gguf_writer_free(struct gguf_writer *w)
{
	if (!w)
		return;
	if (w->f) {
		fclose(w->f);
		unlink(w->tmp_path);
	}
	for (int64_t i = 0; i < w->n_kv; i++)
		free(w->keys[i]);
	free(w->keys);
	for (int64_t i = 0; i < w->n_t; i++)
		free(w->t[i].name);
	free(w->t);
	strbuf_release(&w->kv);
	free(w->path);
	free(w->tmp_path);
	free(w);
}

static void put_u32(struct strbuf *sb, uint32_t v)
{
	strbuf_add(sb, &v, 4);
}

static void put_u64(struct strbuf *sb, uint64_t v)
{
	strbuf_add(sb, &v, 8);
}

static void put_str(struct strbuf *sb, const char *s, size_t len)
{
	put_u64(sb, len);
	strbuf_add(sb, s, len);
}

/* Key header: checks that the writer is still collecting and the key is new. */
static int add_key(struct gguf_writer *w, const char *key, enum gguf_vtype type)
{
	if (w->path)
		return error("gguf writer: key '%s' added after the header was written", key);
	for (int64_t i = 0; i < w->n_kv; i++)
		if (!strcmp(w->keys[i], key))
			return error("gguf writer: duplicate key '%s'", key);
	ALLOC_GROW(w->keys, (size_t)w->n_kv + 1, w->keys_alloc);
	w->keys[w->n_kv++] = xstrdup(key);
	put_str(&w->kv, key, strlen(key));
	put_u32(&w->kv, type);
	return 0;
}

static int add_scalar(struct gguf_writer *w, const char *key, enum gguf_vtype type, const void *v,
		      size_t n)
{
	if (add_key(w, key, type) < 0)
		return -1;
	strbuf_add(&w->kv, v, n);
	return 0;
}

int gguf_writer_add_u32(struct gguf_writer *w, const char *key, uint32_t v)
{
	if (!strcmp(key, "general.alignment")) {
		if (v == 0 || (v & (v - 1)))
			return error("gguf writer: alignment %u is not a power of two", v);
		if (w->n_t)
			return error("gguf writer: general.alignment must come before the tensors");
		w->alignment = v;
	}
	return add_scalar(w, key, GGUF_TYPE_UINT32, &v, 4);
}

int gguf_writer_add_i32(struct gguf_writer *w, const char *key, int32_t v)
{
	return add_scalar(w, key, GGUF_TYPE_INT32, &v, 4);
}

int gguf_writer_add_u64(struct gguf_writer *w, const char *key, uint64_t v)
{
	return add_scalar(w, key, GGUF_TYPE_UINT64, &v, 8);
}

int gguf_writer_add_f32(struct gguf_writer *w, const char *key, float v)
{
	return add_scalar(w, key, GGUF_TYPE_FLOAT32, &v, 4);
}

int gguf_writer_add_bool(struct gguf_writer *w, const char *key, int v)
{
	uint8_t b = v != 0;
	return add_scalar(w, key, GGUF_TYPE_BOOL, &b, 1);
}

int gguf_writer_add_str(struct gguf_writer *w, const char *key, const char *s, size_t len)
{
	if (add_key(w, key, GGUF_TYPE_STRING) < 0)
		return -1;
	put_str(&w->kv, s, len);
	return 0;
}

static size_t elem_size(enum gguf_vtype t)
{
	static const size_t sz[GGUF_TYPE_COUNT] = {
		[GGUF_TYPE_UINT8] = 1,   [GGUF_TYPE_INT8] = 1,    [GGUF_TYPE_UINT16] = 2,
		[GGUF_TYPE_INT16] = 2,   [GGUF_TYPE_UINT32] = 4,  [GGUF_TYPE_INT32] = 4,
		[GGUF_TYPE_FLOAT32] = 4, [GGUF_TYPE_BOOL] = 1,    [GGUF_TYPE_UINT64] = 8,
		[GGUF_TYPE_INT64] = 8,   [GGUF_TYPE_FLOAT64] = 8,
	};
	return (unsigned)t < GGUF_TYPE_COUNT ? sz[t] : 0;
}

int gguf_writer_add_arr(struct gguf_writer *w, const char *key, enum gguf_vtype type, uint64_t n,
			const void *data)
{
	size_t es = elem_size(type), bytes;
	if (!es)
		return error("gguf writer: key '%s': arrays of %s need their own call", key,
			     gguf_vtype_name(type));
	if (size_mul(es, n, &bytes))
		return error("gguf writer: key '%s': array too large", key);
	if (add_key(w, key, GGUF_TYPE_ARRAY) < 0)
		return -1;
	put_u32(&w->kv, type);
	put_u64(&w->kv, n);
	strbuf_add(&w->kv, data, bytes);
	return 0;
}

int gguf_writer_add_arr_str(struct gguf_writer *w, const char *key, const struct gguf_str *strs,
			    uint64_t n)
{
	if (add_key(w, key, GGUF_TYPE_ARRAY) < 0)
		return -1;
	put_u32(&w->kv, GGUF_TYPE_STRING);
	put_u64(&w->kv, n);
	for (uint64_t i = 0; i < n; i++)
		put_str(&w->kv, strs[i].data, strs[i].len);
	return 0;
}

int gguf_writer_copy_kv(struct gguf_writer *w, const struct gguf *src, const struct gguf_kv *kv)
{
	if (kv->type == GGUF_TYPE_STRING) {
		const struct gguf_str *s = kv->value;
		return gguf_writer_add_str(w, kv->key, s->data, s->len);
	}
	if (kv->type == GGUF_TYPE_ARRAY) {
		if (kv->arr_type == GGUF_TYPE_STRING) {
			const struct gguf_str *strs;
			uint64_t n;
			if (gguf_get_arr_str(src, kv->key, &strs, &n) < 0)
				return -1;
			return gguf_writer_add_arr_str(w, kv->key, strs, n);
		}
		return gguf_writer_add_arr(w, kv->key, kv->arr_type, kv->arr_n, kv->value);
	}
	if (kv->key && !strcmp(kv->key, "general.alignment") && kv->type == GGUF_TYPE_UINT32) {
		uint32_t v;
		memcpy(&v, kv->value, 4);
		return gguf_writer_add_u32(w, kv->key, v);
	}
	return add_scalar(w, kv->key, kv->type, kv->value, elem_size(kv->type));
}

static uint64_t align_up(uint64_t x, uint32_t a)
{
	return (x + a - 1) / a * a;
}

int gguf_writer_add_tensor(struct gguf_writer *w, const char *name, int n_dims, const int64_t *ne,
			   int type)
{
	struct writer_tensor t = { 0 };
	int be;
	size_t bb;
	uint64_t rows = 1, row_bytes;

	if (w->path)
		return error("gguf writer: tensor '%s' added after the header was written", name);
	if (n_dims < 1 || n_dims > 4)
		return error("gguf writer: tensor '%s' has %d dimensions", name, n_dims);
	if (gguf_type_block(type, &be, &bb) < 0)
		return error("gguf writer: tensor '%s' has unknown type id %d", name, type);
	for (int64_t i = 0; i < w->n_t; i++)
		if (!strcmp(w->t[i].name, name))
			return error("gguf writer: duplicate tensor '%s'", name);
	for (int d = 0; d < 4; d++) {
		t.ne[d] = d < n_dims ? ne[d] : 1;
		if (t.ne[d] <= 0)
			return error("gguf writer: tensor '%s' dimension %d is %lld", name, d,
				     (long long)t.ne[d]);
		if (d > 0 && __builtin_mul_overflow(rows, (uint64_t)t.ne[d], &rows))
			return error("gguf writer: tensor '%s' is too large", name);
	}
	if (t.ne[0] % be)
		return error("gguf writer: tensor '%s' row of %lld is not a multiple of %s's "
			     "block size %d",
			     name, (long long)t.ne[0], gguf_type_name(type), be);
	if (__builtin_mul_overflow((uint64_t)t.ne[0] / (uint64_t)be, (uint64_t)bb, &row_bytes) ||
	    __builtin_mul_overflow(rows, row_bytes, &t.nbytes))
		return error("gguf writer: tensor '%s' is too large", name);
	t.name = xstrdup(name);
	t.n_dims = n_dims;
	t.type = type;
	t.offset = align_up(w->data_size, w->alignment);
	w->data_size = t.offset + t.nbytes;
	ALLOC_GROW(w->t, (size_t)w->n_t + 1, w->t_alloc);
	w->t[w->n_t++] = t;
	return 0;
}

uint64_t gguf_writer_tensor_bytes(const struct gguf_writer *w, int64_t i)
{
	return i >= 0 && i < w->n_t ? w->t[i].nbytes : 0;
}

static int write_bytes(struct gguf_writer *w, const void *p, size_t n)
{
	if (w->failed)
		return -1;
	if (n && fwrite(p, 1, n, w->f) != n) {
		w->failed = 1;
		return error("cannot write '%s': %s", w->tmp_path, strerror(errno));
	}
	return 0;
}

static int write_zeros(struct gguf_writer *w, size_t n)
{
	static const char zeros[256];
	while (n) {
		size_t k = n < sizeof(zeros) ? n : sizeof(zeros);
		if (write_bytes(w, zeros, k) < 0)
			return -1;
		n -= k;
	}
	return 0;
}

int gguf_writer_begin(struct gguf_writer *w, const char *path)
{
	struct strbuf hdr = STRBUF_INIT;
	int rc;

	if (w->path)
		return error("gguf writer: '%s' already begun", w->path);
	w->path = xstrdup(path);
	w->tmp_path = xmalloc(strlen(path) + 5);
	sprintf(w->tmp_path, "%s.tmp", path);
	w->f = fopen(w->tmp_path, "wb");
	if (!w->f)
		return error("cannot create '%s': %s", w->tmp_path, strerror(errno));
	setvbuf(w->f, NULL, _IOFBF, 1 << 20);

	strbuf_add(&hdr, "GGUF", 4);
	put_u32(&hdr, 3);
	put_u64(&hdr, (uint64_t)w->n_t);
	put_u64(&hdr, (uint64_t)w->n_kv);
	strbuf_add(&hdr, w->kv.buf, w->kv.len);
	for (int64_t i = 0; i < w->n_t; i++) {
		const struct writer_tensor *t = &w->t[i];
		put_str(&hdr, t->name, strlen(t->name));
		put_u32(&hdr, (uint32_t)t->n_dims);
		for (int d = 0; d < t->n_dims; d++)
			put_u64(&hdr, (uint64_t)t->ne[d]);
		put_u32(&hdr, (uint32_t)t->type);
		put_u64(&hdr, t->offset);
	}
	rc = write_bytes(w, hdr.buf, hdr.len);
	if (rc == 0)
		rc = write_zeros(w, align_up(hdr.len, w->alignment) - hdr.len);
	strbuf_release(&hdr);
	w->cur = 0;
	w->cur_done = 0;
	return rc;
}

int gguf_writer_write_part(struct gguf_writer *w, const void *data, size_t n)
{
	if (!w->f)
		return error("gguf writer: tensor data written before the header");
	if (w->cur >= w->n_t)
		return error("gguf writer: more tensor data than tensors in '%s'", w->path);
	const struct writer_tensor *t = &w->t[w->cur];
	if (n > t->nbytes - w->cur_done)
		return error("gguf writer: tensor '%s' gets more than its %llu bytes", t->name,
			     (unsigned long long)t->nbytes);
	if (write_bytes(w, data, n) < 0)
		return -1;
	w->cur_done += n;
	if (w->cur_done == t->nbytes) {
		uint64_t end = t->offset + t->nbytes;
		w->cur++;
		w->cur_done = 0;
		return write_zeros(w, align_up(end, w->alignment) - end);
	}
	return 0;
}

int gguf_writer_write_tensor(struct gguf_writer *w, const void *data, size_t n)
{
	int64_t cur = w->cur;
	if (w->f && cur < w->n_t && (w->cur_done != 0 || n != w->t[cur].nbytes))
		return error("gguf writer: tensor '%s' takes %llu bytes, given %zu", w->t[cur].name,
			     (unsigned long long)w->t[cur].nbytes, n);
	return gguf_writer_write_part(w, data, n);
}

int gguf_writer_finish(struct gguf_writer *w)
{
	int rc;
	if (!w->f)
		return error("gguf writer: finish before begin");
	if (w->cur < w->n_t) {
		return error("gguf writer: tensor '%s' was not written", w->t[w->cur].name);
	}
	rc = w->failed ? -1 : 0;
	if (fclose(w->f) != 0 && rc == 0)
		rc = error("cannot write '%s': %s", w->tmp_path, strerror(errno));
	w->f = NULL;
	if (rc == 0 && rename(w->tmp_path, w->path) < 0)
		rc = error("cannot rename '%s' to '%s': %s", w->tmp_path, w->path, strerror(errno));
	if (rc < 0)
		unlink(w->tmp_path);
	return rc;
}
