/* GGUF reader: maps a file read-only and validates every header field before use. */
#include "gguf.h"
#include "hash.h"
#include "report.h"
#include "xalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/*
 * DESIGN
 *
 * The whole file is mapped PROT_READ; parsing walks a cursor (struct rd) over
 * the header with a bounds check on every read, so a truncated or lying file
 * fails at the first byte that is not there.  Nothing is allocated from a
 * count before that count has been compared with the bytes left in the file
 * (each metadata entry needs at least 13 bytes, each tensor info 32, each
 * array element its size, each string-array element 8), so a forged count
 * can never ask for more memory than a small multiple of the file size.
 *
 * Keys and tensor names are copied (NUL-terminated) and indexed in
 * open-addressing hash tables: duplicates are found at open in linear time
 * and lookups are O(1).  String arrays (the vocabulary) are indexed once at
 * open into an array of views so that element i is O(1).
 *
 * Tensor sizes come from a private table of (block elements, block bytes)
 * for every ggml type id, including the ones palaver cannot compute (IQ*,
 * TQ*, MXFP4, the repacked Q4_0_4_4 family), so such files still open and
 * can be inspected; the model loader rejects them.  Ids that GGUF never had
 * (4 and 5, retired before GGUF; 40 and up) are errors.  The table agrees
 * with quant_traits() (a test checks every id) but is kept here so that the
 * reader, and its fuzzer, stand without the compute kernels.  After all infos are read, tensors are sorted by
 * offset to find overlaps.
 *
 * Values in the mapping are little-endian and may be unaligned: every read
 * goes through memcpy.  The host must be little-endian (checked at build).
 */

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the GGUF reader assumes a little-endian host"
#endif

#define GGUF_MAGIC "GGUF"
#define GGUF_DEFAULT_ALIGNMENT 32
#define GGUF_MAX_DIMS 4
#define KV_MIN_BYTES 13     /* key length (8) + type (4) + smallest value (1) */
#define TENSOR_MIN_BYTES 32 /* name length (8) + n_dims (4) + one dim (8) + type (4) + offset (8) */

/* Size of one ggml type's block: elements and bytes.  elems == 0: no such id. */
struct type_size {
	int elems;
	int bytes;
	const char *name;
};

/* Indexed by ggml type id (same numbering as enum quant_type). */
static const struct type_size type_sizes[] = {
	[0] = { 1, 4, "F32" },
	[1] = { 1, 2, "F16" },
	[2] = { 32, 18, "Q4_0" },
	[3] = { 32, 20, "Q4_1" },
	[6] = { 32, 22, "Q5_0" },
	[7] = { 32, 24, "Q5_1" },
	[8] = { 32, 34, "Q8_0" },
	[9] = { 32, 36, "Q8_1" },
	[10] = { 256, 84, "Q2_K" },
	[11] = { 256, 110, "Q3_K" },
	[12] = { 256, 144, "Q4_K" },
	[13] = { 256, 176, "Q5_K" },
	[14] = { 256, 210, "Q6_K" },
	[15] = { 256, 292, "Q8_K" },
	[16] = { 256, 66, "IQ2_XXS" },
	[17] = { 256, 74, "IQ2_XS" },
	[18] = { 256, 98, "IQ3_XXS" },
	[19] = { 256, 50, "IQ1_S" },
	[20] = { 32, 18, "IQ4_NL" },
	[21] = { 256, 110, "IQ3_S" },
	[22] = { 256, 82, "IQ2_S" },
	[23] = { 256, 136, "IQ4_XS" },
	[24] = { 1, 1, "I8" },
	[25] = { 1, 2, "I16" },
	[26] = { 1, 4, "I32" },
	[27] = { 1, 8, "I64" },
	[28] = { 1, 8, "F64" },
	[29] = { 256, 56, "IQ1_M" },
	[30] = { 1, 2, "BF16" },
	[31] = { 32, 18, "Q4_0_4_4" }, /* repacked Q4_0, written by 2024 llama.cpp */
	[32] = { 32, 18, "Q4_0_4_8" },
	[33] = { 32, 18, "Q4_0_8_8" },
	[34] = { 256, 54, "TQ1_0" },
	[35] = { 256, 66, "TQ2_0" },
	[36] = { 32, 18, "IQ4_NL_4_4" }, /* repacked IQ4_NL */
	[37] = { 32, 18, "IQ4_NL_4_8" },
	[38] = { 32, 18, "IQ4_NL_8_8" },
	[39] = { 32, 17, "MXFP4" },
};
#define N_TYPE_SIZES ((int)(sizeof(type_sizes) / sizeof(type_sizes[0])))

/* An open-addressing table of indices into a name array; -1 marks a free slot. */
struct name_index {
	int64_t *slot; /* (cap) */
	uint64_t cap;  /* power of two, at least twice the entries */
};

struct gguf {
	char *path;           /* as given to gguf_open */
	const uint8_t *map;   /* (size) read-only mapping of the whole file */
	uint64_t size;        /* file size in bytes */
	uint32_t version;     /* 2 or 3 */
	uint32_t alignment;   /* power of two */
	uint64_t data_offset; /* file offset of the data section, aligned */

	int64_t n_kv;                           /* entries parsed so far (all, once open) */
	int64_t kv_cap, kv_str_cap, kv_arr_cap; /* allocated entries of each array */
	struct gguf_kv *kv;                     /* (n_kv) */
	struct gguf_str *kv_str;  /* (n_kv) string scalars' views; kv[i].value points here */
	struct gguf_str **kv_arr; /* (n_kv) string arrays' element views, else NULL */
	struct name_index kv_index;

	int64_t n_tensors; /* infos parsed so far (all, once open) */
	int64_t tensors_cap;
	struct gguf_tensor *tensors; /* (n_tensors) */
	struct name_index tensor_index;

	const atomic_int *cancel; /* while parsing: stop when set (NULL: never) */
};

/* Parsing a header of millions of entries takes a while: every
 * PARSE_SLICE entries the cancel flag is read (item counts one entry). */
#define PARSE_SLICE 65536

static int parse_cancelled(const struct gguf *g, uint64_t item)
{
	if (item % PARSE_SLICE || !g->cancel || !atomic_load(g->cancel))
		return 0;
	error("loading cancelled");
	return 1;
}

/* A bounds-checked cursor over the header. */
struct rd {
	const struct gguf *g;
	uint64_t pos; /* next byte to read; never above g->size */
};

static uint64_t rd_left(const struct rd *r)
{
	return r->g->size - r->pos;
}

/* Quote an item name from the file for a message: at most 64 bytes, control
 * and non-ASCII bytes escaped, so a hostile name cannot mess the terminal. */
static const char *safe_name(char *buf, size_t bufsz, const char *s, uint64_t len)
{
	size_t o = 0;
	uint64_t i;
	for (i = 0; i < len && o + 5 < bufsz; i++) {
		unsigned char c = (unsigned char)s[i];
		if (i == 64) {
			o += (size_t)snprintf(buf + o, bufsz - o, "...");
			break;
		}
		if (c >= 0x20 && c < 0x7f && c != '\'' && c != '\\')
			buf[o++] = (char)c;
		else
			o += (size_t)snprintf(buf + o, bufsz - o, "\\x%02x", c);
	}
	if (o >= bufsz)
		o = bufsz - 1;
	buf[o] = '\0';
	return buf;
}

/* Error that names the file; `what` says what was being read. */
static int rd_short(const struct rd *r, const char *what)
{
	return error("'%s': truncated file: %s at offset %llu runs past end of file", r->g->path,
		     what, (unsigned long long)r->pos);
}

static int rd_bytes(struct rd *r, void *dst, uint64_t n, const char *what)
{
	if (n > rd_left(r))
		return rd_short(r, what);
	memcpy(dst, r->g->map + r->pos, n);
	r->pos += n;
	return 0;
}

static int rd_u32(struct rd *r, uint32_t *v, const char *what)
{
	return rd_bytes(r, v, 4, what);
}

static int rd_u64(struct rd *r, uint64_t *v, const char *what)
{
	return rd_bytes(r, v, 8, what);
}

/* A length-prefixed string; the view points into the mapping. */
static int rd_str(struct rd *r, struct gguf_str *s, const char *what)
{
	uint64_t start = r->pos;
	if (rd_u64(r, &s->len, what) < 0)
		return -1;
	if (s->len > rd_left(r)) {
		r->pos = start;
		return error("'%s': %s at offset %llu has length %llu, past end of file",
			     r->g->path, what, (unsigned long long)start,
			     (unsigned long long)s->len);
	}
	s->data = (const char *)r->g->map + r->pos;
	r->pos += s->len;
	return 0;
}

static uint64_t hash_name(const char *s)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a */
	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ull;
	}
	return h;
}

/* Grow an array of elem-sized entries to hold `need`, zeroing the new part.
 * Growth follows entries actually parsed, never a count read from the file. */
static int grow_array(void **arr, int64_t *cap, int64_t need, size_t elem)
{
	int64_t ncap;
	void *p;
	if (need <= *cap)
		return 0;
	ncap = *cap ? *cap * 2 : 16;
	if (ncap < need)
		ncap = need;
	if (ncap > INT64_MAX / 2 || (uint64_t)ncap > SIZE_MAX / elem)
		return -1;
	p = realloc(*arr, (size_t)ncap * elem);
	if (!p)
		return -1;
	memset((char *)p + (size_t)*cap * elem, 0, (size_t)(ncap - *cap) * elem);
	*arr = p;
	*cap = ncap;
	return 0;
}

static uint64_t hash_name(const char *s);

/* Make room for n entries (load at most one half), rehashing the n_old
 * entries already indexed; names[i] is at (char *)names + i * stride. */
static int index_reserve(struct name_index *ix, int64_t n, char *const *names, size_t stride,
			 int64_t n_old)
{
	uint64_t cap = ix->cap ? ix->cap : 16;
	int64_t *slot;
	while (cap < (uint64_t)n * 2)
		cap *= 2;
	if (cap == ix->cap)
		return 0;
	slot = try_alloc_array(cap, sizeof(*slot));
	if (!slot)
		return -1;
	for (uint64_t i = 0; i < cap; i++)
		slot[i] = -1;
	for (int64_t e = 0; e < n_old; e++) {
		const char *nm = *(char *const *)((const char *)names + (size_t)e * stride);
		uint64_t h = hash_name(nm) & (cap - 1);
		while (slot[h] >= 0)
			h = (h + 1) & (cap - 1);
		slot[h] = e;
	}
	free(ix->slot);
	ix->slot = slot;
	ix->cap = cap;
	return 0;
}

/* Find `name` among names[] via the index; with insert_at >= 0, add that
 * entry when absent.  Returns the index found, or -1 when absent. */
static int64_t index_lookup(const struct name_index *ix, const char *name, char *const *names,
			    size_t stride, int64_t insert_at)
{
	uint64_t mask = ix->cap - 1, h = hash_name(name) & mask;
	if (!ix->slot)
		return -1;
	for (;;) {
		int64_t e = ix->slot[h];
		if (e < 0) {
			if (insert_at >= 0)
				ix->slot[h] = insert_at;
			return -1;
		}
		const char *other = *(char *const *)((const char *)names + (size_t)e * stride);
		if (strcmp(other, name) == 0)
			return e;
		h = (h + 1) & mask;
	}
}

/* Copy a name from the mapping; embedded NULs would make lookups ambiguous. */
static char *copy_name(const struct gguf *g, const struct gguf_str *s, const char *what)
{
	char nb[300];
	if (memchr(s->data, '\0', s->len)) {
		error("'%s': %s '%s' contains a NUL byte", g->path, what,
		      safe_name(nb, sizeof(nb), s->data, s->len));
		return NULL;
	}
	char *p = try_alloc_array(s->len + 1, 1);
	if (!p) {
		error("'%s': out of memory for a %s of %llu bytes", g->path, what,
		      (unsigned long long)s->len);
		return NULL;
	}
	memcpy(p, s->data, s->len);
	p[s->len] = '\0';
	return p;
}

static size_t vtype_size(enum gguf_vtype t)
{
	switch (t) {
	case GGUF_TYPE_UINT8:
	case GGUF_TYPE_INT8:
	case GGUF_TYPE_BOOL: return 1;
	case GGUF_TYPE_UINT16:
	case GGUF_TYPE_INT16: return 2;
	case GGUF_TYPE_UINT32:
	case GGUF_TYPE_INT32:
	case GGUF_TYPE_FLOAT32: return 4;
	case GGUF_TYPE_UINT64:
	case GGUF_TYPE_INT64:
	case GGUF_TYPE_FLOAT64: return 8;
	default: return 0; /* strings, arrays: variable */
	}
}

const char *gguf_vtype_name(enum gguf_vtype t)
{
	static const char *const names[GGUF_TYPE_COUNT] = {
		"u8",   "i8",     "u16",   "i16", "u32", "i32", "f32",
		"bool", "string", "array", "u64", "i64", "f64",
	};
	if ((unsigned)t < GGUF_TYPE_COUNT)
		return names[t];
	return "unknown";
}

const char *gguf_type_name(int type)
{
	if (type < 0 || type >= N_TYPE_SIZES)
		return NULL;
	return type_sizes[type].name;
}

int gguf_type_block(int type, int *block_elems, size_t *block_bytes)
{
	if (type < 0 || type >= N_TYPE_SIZES || type_sizes[type].elems == 0)
		return -1;
	*block_elems = type_sizes[type].elems;
	*block_bytes = (size_t)type_sizes[type].bytes;
	return 0;
}

/* Read one metadata value of type t (not an array header) for entry i. */
static int read_kv_value(struct gguf *g, struct rd *r, int64_t i, const char *key)
{
	struct gguf_kv *kv = &g->kv[i];
	char what[400], nb[300];
	snprintf(what, sizeof(what), "value of key '%s'",
		 safe_name(nb, sizeof(nb), key, strlen(key)));

	if (kv->type == GGUF_TYPE_STRING) {
		if (rd_str(r, &g->kv_str[i], what) < 0)
			return -1;
		kv->value = &g->kv_str[i];
		return 0;
	}
	if (kv->type != GGUF_TYPE_ARRAY) {
		size_t sz = vtype_size(kv->type);
		if (sz > rd_left(r))
			return rd_short(r, what);
		kv->value = g->map + r->pos;
		r->pos += sz;
		return 0;
	}

	uint32_t at;
	uint64_t n, start;
	if (rd_u32(r, &at, what) < 0 || rd_u64(r, &n, what) < 0)
		return -1;
	start = r->pos;
	if (at >= GGUF_TYPE_COUNT)
		return error("'%s': key '%s' is an array of unknown type %u", g->path,
			     safe_name(nb, sizeof(nb), key, strlen(key)), at);
	if (at == GGUF_TYPE_ARRAY)
		return error("'%s': key '%s' is an array of arrays, which is not supported",
			     g->path, safe_name(nb, sizeof(nb), key, strlen(key)));
	kv->arr_type = (enum gguf_vtype)at;
	kv->arr_n = n;
	kv->value = g->map + start;

	if (at != GGUF_TYPE_STRING) {
		size_t sz = vtype_size(kv->arr_type);
		if (n > rd_left(r) / sz)
			return error(
				"'%s': key '%s': array of %llu %s elements extends past end of file",
				g->path, safe_name(nb, sizeof(nb), key, strlen(key)),
				(unsigned long long)n, gguf_vtype_name(kv->arr_type));
		r->pos += n * sz;
		return 0;
	}
	/* Each string takes at least its 8-byte length. */
	if (n > rd_left(r) / 8)
		return error("'%s': key '%s': array of %llu strings extends past end of file",
			     g->path, safe_name(nb, sizeof(nb), key, strlen(key)),
			     (unsigned long long)n);
	struct gguf_str *strs = try_alloc_array(n ? n : 1, sizeof(*strs));
	if (!strs)
		return error("'%s': key '%s': out of memory for %llu strings", g->path,
			     safe_name(nb, sizeof(nb), key, strlen(key)), (unsigned long long)n);
	g->kv_arr[i] = strs;
	for (uint64_t j = 0; j < n; j++) {
		if (parse_cancelled(g, j + 1) || rd_str(r, &strs[j], what) < 0)
			return -1;
	}
	return 0;
}

static int read_kvs(struct gguf *g, struct rd *r, int64_t n_kv)
{
	char nb[300];
	for (int64_t i = 0; i < n_kv; i++) {
		struct gguf_str key;
		uint32_t t;
		char what[64];
		if (parse_cancelled(g, (uint64_t)i + 1))
			return -1;
		snprintf(what, sizeof(what), "key of metadata entry %lld", (long long)i);
		if (rd_str(r, &key, what) < 0)
			return -1;
		if (grow_array((void **)&g->kv, &g->kv_cap, i + 1, sizeof(*g->kv)) < 0 ||
		    grow_array((void **)&g->kv_str, &g->kv_str_cap, i + 1, sizeof(*g->kv_str)) <
			    0 ||
		    grow_array((void **)&g->kv_arr, &g->kv_arr_cap, i + 1, sizeof(*g->kv_arr)) <
			    0 ||
		    index_reserve(&g->kv_index, i + 1, &g->kv[0].key, sizeof(g->kv[0]), i) < 0)
			return error("'%s': out of memory", g->path);
		g->n_kv = i + 1;
		g->kv[i].key = copy_name(g, &key, "key");
		if (!g->kv[i].key)
			return -1;
		if (index_lookup(&g->kv_index, g->kv[i].key, &g->kv[0].key, sizeof(g->kv[0]), i) >=
		    0)
			return error("'%s': duplicate key '%s'", g->path,
				     safe_name(nb, sizeof(nb), key.data, key.len));
		snprintf(what, sizeof(what), "type of metadata entry %lld", (long long)i);
		if (rd_u32(r, &t, what) < 0)
			return -1;
		if (t >= GGUF_TYPE_COUNT)
			return error("'%s': key '%s' has unknown value type %u", g->path,
				     safe_name(nb, sizeof(nb), key.data, key.len), t);
		g->kv[i].type = (enum gguf_vtype)t;
		if (read_kv_value(g, r, i, g->kv[i].key) < 0)
			return -1;
	}
	/* kv_str may have moved while growing: point string values at it now */
	for (int64_t i = 0; i < g->n_kv; i++)
		if (g->kv[i].type == GGUF_TYPE_STRING)
			g->kv[i].value = &g->kv_str[i];
	return 0;
}

/* Bytes of a tensor: checks dims, block divisibility and overflow. */
static int tensor_size(struct gguf *g, struct gguf_tensor *t, const char *nm)
{
	const struct type_size *ts = &type_sizes[t->type];
	uint64_t rows = 1, elems = 1, row_bytes;
	for (int d = 0; d < GGUF_MAX_DIMS; d++) {
		if (__builtin_mul_overflow(elems, (uint64_t)t->ne[d], &elems) || elems > INT64_MAX)
			return error("'%s': tensor '%s' has too many elements", g->path, nm);
		if (d > 0)
			rows *= (uint64_t)t->ne[d]; /* <= elems: cannot overflow */
	}
	if (t->ne[0] % ts->elems)
		return error("'%s': tensor '%s' row of %lld elements is not a multiple of the "
			     "block size %d of its type",
			     g->path, nm, (long long)t->ne[0], ts->elems);
	if (__builtin_mul_overflow((uint64_t)t->ne[0] / (uint64_t)ts->elems, (uint64_t)ts->bytes,
				   &row_bytes) ||
	    __builtin_mul_overflow(rows, row_bytes, &t->nbytes))
		return error("'%s': tensor '%s' is too large", g->path, nm);
	return 0;
}

static int read_tensor_infos(struct gguf *g, struct rd *r, int64_t n_tensors)
{
	char nb[300];
	for (int64_t i = 0; i < n_tensors; i++) {
		struct gguf_tensor *t;
		struct gguf_str name;
		uint32_t nd, type;
		char what[400];
		if (parse_cancelled(g, (uint64_t)i + 1))
			return -1;
		snprintf(what, sizeof(what), "name of tensor %lld", (long long)i);
		if (rd_str(r, &name, what) < 0)
			return -1;
		if (grow_array((void **)&g->tensors, &g->tensors_cap, i + 1, sizeof(*g->tensors)) <
			    0 ||
		    index_reserve(&g->tensor_index, i + 1, &g->tensors[0].name,
				  sizeof(g->tensors[0]), i) < 0)
			return error("'%s': out of memory", g->path);
		g->n_tensors = i + 1;
		t = &g->tensors[i];
		t->name = copy_name(g, &name, "tensor name");
		if (!t->name)
			return -1;
		safe_name(nb, sizeof(nb), name.data, name.len);
		if (index_lookup(&g->tensor_index, t->name, &g->tensors[0].name,
				 sizeof(g->tensors[0]), i) >= 0)
			return error("'%s': duplicate tensor '%s'", g->path, nb);
		snprintf(what, sizeof(what), "tensor '%s' info", nb);
		if (rd_u32(r, &nd, what) < 0)
			return -1;
		if (nd < 1 || nd > GGUF_MAX_DIMS)
			return error("'%s': tensor '%s' has %u dimensions (1 to %d allowed)",
				     g->path, nb, nd, GGUF_MAX_DIMS);
		t->n_dims = (int)nd;
		for (int d = 0; d < GGUF_MAX_DIMS; d++)
			t->ne[d] = 1;
		for (uint32_t d = 0; d < nd; d++) {
			uint64_t ne;
			if (rd_u64(r, &ne, what) < 0)
				return -1;
			if (ne == 0 || ne > INT64_MAX)
				return error("'%s': tensor '%s' dimension %u is %lld, not positive",
					     g->path, nb, d, (long long)ne);
			t->ne[d] = (int64_t)ne;
		}
		if (rd_u32(r, &type, what) < 0 || rd_u64(r, &t->offset, what) < 0)
			return -1;
		if (type >= (uint32_t)N_TYPE_SIZES || type_sizes[type].elems == 0)
			return error("'%s': tensor '%s' has unknown type id %u", g->path, nb, type);
		t->type = (int)type;
		if (tensor_size(g, t, nb) < 0)
			return -1;
	}
	return 0;
}

static int read_alignment(struct gguf *g)
{
	const struct gguf_kv *kv = gguf_find_kv(g, "general.alignment");
	uint32_t a;
	g->alignment = GGUF_DEFAULT_ALIGNMENT;
	if (!kv)
		return 0;
	if (kv->type != GGUF_TYPE_UINT32)
		return error("'%s': key 'general.alignment' has type %s, expected u32", g->path,
			     gguf_vtype_name(kv->type));
	memcpy(&a, kv->value, 4);
	if (a == 0 || (a & (a - 1)))
		return error("'%s': key 'general.alignment' is %u, not a power of two", g->path, a);
	g->alignment = a;
	return 0;
}

/* One tensor's extent, for the overlap check. */
struct extent {
	uint64_t offset;
	uint64_t nbytes;
	int64_t index; /* into g->tensors */
};

static int cmp_extent(const void *a, const void *b)
{
	const struct extent *x = a, *y = b;
	return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/* Every tensor aligned, inside the data section, and no two overlapping. */
static int check_tensor_placement(struct gguf *g)
{
	uint64_t data_size;
	struct extent *ext;
	char na[300], nb[300];
	int rc = 0;

	if (g->n_tensors == 0)
		return 0;
	if (g->data_offset > g->size)
		return error("'%s': data section starts at %llu, past end of file (%llu bytes)",
			     g->path, (unsigned long long)g->data_offset,
			     (unsigned long long)g->size);
	data_size = g->size - g->data_offset;
	for (int64_t i = 0; i < g->n_tensors; i++) {
		struct gguf_tensor *t = &g->tensors[i];
		safe_name(na, sizeof(na), t->name, strlen(t->name));
		if (t->offset % g->alignment)
			return error("'%s': tensor '%s' offset %llu is not a multiple of the "
				     "alignment %u",
				     g->path, na, (unsigned long long)t->offset, g->alignment);
		if (t->offset > data_size || t->nbytes > data_size - t->offset)
			return error("'%s': tensor '%s' extends past end of file", g->path, na);
		t->data = g->map + g->data_offset + t->offset;
	}
	ext = try_alloc_array((size_t)g->n_tensors, sizeof(*ext));
	if (!ext)
		return error("'%s': out of memory", g->path);
	for (int64_t i = 0; i < g->n_tensors; i++)
		ext[i] = (struct extent){ g->tensors[i].offset, g->tensors[i].nbytes, i };
	qsort(ext, (size_t)g->n_tensors, sizeof(*ext), cmp_extent);
	for (int64_t i = 1; i < g->n_tensors; i++) {
		/* both extents lie inside the data section: the sum cannot overflow */
		if (ext[i - 1].offset + ext[i - 1].nbytes > ext[i].offset) {
			const char *x = g->tensors[ext[i].index].name;
			const char *y = g->tensors[ext[i - 1].index].name;
			rc = error("'%s': tensor '%s' overlaps tensor '%s'", g->path,
				   safe_name(na, sizeof(na), x, strlen(x)),
				   safe_name(nb, sizeof(nb), y, strlen(y)));
			break;
		}
	}
	free(ext);
	return rc;
}

static int parse(struct gguf *g)
{
	struct rd r = { g, 0 };
	uint64_t n_tensors, n_kv, end;

	if (g->size < 4 || memcmp(g->map, GGUF_MAGIC, 4) != 0)
		return error("'%s': not a GGUF file (bad magic)", g->path);
	r.pos = 4;
	if (rd_u32(&r, &g->version, "version") < 0)
		return -1;
	if (g->version == 0x02000000u || g->version == 0x03000000u)
		return error("'%s': big-endian GGUF files are not supported", g->path);
	if (g->version == 1)
		return error("'%s': GGUF version 1 is not supported (convert it to version 3)",
			     g->path);
	if (g->version != 2 && g->version != 3)
		return error("'%s': unsupported GGUF version %u", g->path, g->version);
	if (rd_u64(&r, &n_tensors, "tensor count") < 0 || rd_u64(&r, &n_kv, "metadata count") < 0)
		return -1;
	if (n_kv > rd_left(&r) / KV_MIN_BYTES)
		return error("'%s': metadata count %llu is impossible for a file of %llu bytes",
			     g->path, (unsigned long long)n_kv, (unsigned long long)g->size);
	if (n_tensors > rd_left(&r) / TENSOR_MIN_BYTES)
		return error("'%s': tensor count %llu is impossible for a file of %llu bytes",
			     g->path, (unsigned long long)n_tensors, (unsigned long long)g->size);
	if (read_kvs(g, &r, (int64_t)n_kv) < 0 || read_alignment(g) < 0 ||
	    read_tensor_infos(g, &r, (int64_t)n_tensors) < 0)
		return -1;
	end = r.pos;
	/* r.pos <= size < 2^63 in practice; alignment <= 2^31: no overflow. */
	g->data_offset = (end + g->alignment - 1) / g->alignment * g->alignment;
	return check_tensor_placement(g);
}

struct gguf *gguf_open(const char *path)
{
	return gguf_open_cancellable(path, NULL);
}

struct gguf *gguf_open_cancellable(const char *path, const atomic_int *cancel)
{
	struct gguf *g;
	struct stat st;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0) {
		error("cannot open '%s': %s", path, strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) < 0) {
		error("cannot stat '%s': %s", path, strerror(errno));
		close(fd);
		return NULL;
	}
	if (!S_ISREG(st.st_mode)) {
		error("'%s': not a regular file", path);
		close(fd);
		return NULL;
	}
	if (st.st_size < 24) {
		close(fd);
		if (st.st_size >= 4) {
			char m[4];
			FILE *f = fopen(path, "rb");
			int is_gguf = f && fread(m, 1, 4, f) == 4 && memcmp(m, GGUF_MAGIC, 4) == 0;
			if (f)
				fclose(f);
			if (is_gguf) {
				error("'%s': truncated file: header of %lld bytes is shorter than 24",
				      path, (long long)st.st_size);
				return NULL;
			}
		}
		error("'%s': not a GGUF file (%lld bytes)", path, (long long)st.st_size);
		return NULL;
	}
	g = calloc(1, sizeof(*g));
	if (!g) {
		close(fd);
		error("'%s': out of memory", path);
		return NULL;
	}
	g->path = strdup(path);
	g->size = (uint64_t)st.st_size;
	void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (m == MAP_FAILED) {
		error("cannot map '%s': %s", path, strerror(errno));
		g->map = NULL;
		gguf_close(g);
		return NULL;
	}
	g->map = m;
	if (!g->path) {
		error("'%s': out of memory", path);
		gguf_close(g);
		return NULL;
	}
	g->cancel = cancel;
	if (parse(g) < 0) {
		gguf_close(g);
		return NULL;
	}
	g->cancel = NULL;
	return g;
}

void gguf_close(struct gguf *g)
{
	if (!g)
		return;
	if (g->kv) {
		for (int64_t i = 0; i < g->n_kv; i++)
			free(g->kv[i].key);
	}
	if (g->kv_arr) {
		for (int64_t i = 0; i < g->n_kv; i++)
			free(g->kv_arr[i]);
	}
	if (g->tensors) {
		for (int64_t i = 0; i < g->n_tensors; i++)
			free(g->tensors[i].name);
	}
	free(g->kv);
	free(g->kv_str);
	free(g->kv_arr);
	free(g->tensors);
	free(g->kv_index.slot);
	free(g->tensor_index.slot);
	if (g->map)
		munmap((void *)g->map, (size_t)g->size);
	free(g->path);
	free(g);
}

const char *gguf_path(const struct gguf *g)
{
	return g->path;
}

uint32_t gguf_version(const struct gguf *g)
{
	return g->version;
}

uint64_t gguf_file_size(const struct gguf *g)
{
	return g->size;
}

uint32_t gguf_alignment(const struct gguf *g)
{
	return g->alignment;
}

uint64_t gguf_data_offset(const struct gguf *g)
{
	return g->data_offset;
}

uint64_t gguf_header_hash(const struct gguf *g)
{
	/* data_offset <= size was checked at open */
	return hash64(g->map, (size_t)g->data_offset, 0);
}

const void *gguf_map(const struct gguf *g)
{
	return g->map;
}

int64_t gguf_n_kv(const struct gguf *g)
{
	return g->n_kv;
}

const struct gguf_kv *gguf_kv_at(const struct gguf *g, int64_t i)
{
	if (i < 0 || i >= g->n_kv)
		return NULL;
	return &g->kv[i];
}

const struct gguf_kv *gguf_find_kv(const struct gguf *g, const char *key)
{
	if (g->n_kv == 0)
		return NULL;
	int64_t i = index_lookup(&g->kv_index, key, &g->kv[0].key, sizeof(g->kv[0]), -1);
	return i < 0 ? NULL : &g->kv[i];
}

int64_t gguf_n_tensors(const struct gguf *g)
{
	return g->n_tensors;
}

const struct gguf_tensor *gguf_tensor_at(const struct gguf *g, int64_t i)
{
	if (i < 0 || i >= g->n_tensors)
		return NULL;
	return &g->tensors[i];
}

const struct gguf_tensor *gguf_find_tensor(const struct gguf *g, const char *name)
{
	if (g->n_tensors == 0)
		return NULL;
	int64_t i = index_lookup(&g->tensor_index, name, &g->tensors[0].name, sizeof(g->tensors[0]),
				 -1);
	return i < 0 ? NULL : &g->tensors[i];
}

/* ---- typed getters ------------------------------------------------------ */

static const struct gguf_kv *find_required(const struct gguf *g, const char *key)
{
	const struct gguf_kv *kv = gguf_find_kv(g, key);
	if (!kv)
		error("'%s': missing key '%s'", g->path, key);
	return kv;
}

/* Integer value of an integer-typed entry: sign in *neg, magnitude in *mag. */
static int kv_integer(const struct gguf *g, const struct gguf_kv *kv, int *neg, uint64_t *mag,
		      const char *want)
{
	int64_t s = 0;
	uint64_t u = 0;
	int is_signed = 0;
	switch (kv->type) {
	case GGUF_TYPE_UINT8: {
		uint8_t v;
		memcpy(&v, kv->value, 1);
		u = v;
		break;
	}
	case GGUF_TYPE_UINT16: {
		uint16_t v;
		memcpy(&v, kv->value, 2);
		u = v;
		break;
	}
	case GGUF_TYPE_UINT32: {
		uint32_t v;
		memcpy(&v, kv->value, 4);
		u = v;
		break;
	}
	case GGUF_TYPE_UINT64: memcpy(&u, kv->value, 8); break;
	case GGUF_TYPE_INT8: {
		int8_t v;
		memcpy(&v, kv->value, 1);
		s = v;
		is_signed = 1;
		break;
	}
	case GGUF_TYPE_INT16: {
		int16_t v;
		memcpy(&v, kv->value, 2);
		s = v;
		is_signed = 1;
		break;
	}
	case GGUF_TYPE_INT32: {
		int32_t v;
		memcpy(&v, kv->value, 4);
		s = v;
		is_signed = 1;
		break;
	}
	case GGUF_TYPE_INT64:
		memcpy(&s, kv->value, 8);
		is_signed = 1;
		break;
	default:
		return error("'%s': key '%s' has type %s, expected %s", g->path, kv->key,
			     gguf_vtype_name(kv->type), want);
	}
	if (is_signed) {
		*neg = s < 0;
		*mag = s < 0 ? (uint64_t)0 - (uint64_t)s : (uint64_t)s;
	} else {
		*neg = 0;
		*mag = u;
	}
	return 0;
}

static int range_error(const struct gguf *g, const struct gguf_kv *kv, int neg, uint64_t mag,
		       const char *want)
{
	return error("'%s': key '%s' value %s%llu does not fit in %s", g->path, kv->key,
		     neg ? "-" : "", (unsigned long long)mag, want);
}

static int kv_u64(const struct gguf *g, const struct gguf_kv *kv, uint64_t max, uint64_t *out,
		  const char *want)
{
	int neg;
	uint64_t mag;
	if (kv_integer(g, kv, &neg, &mag, want) < 0)
		return -1;
	if (neg || mag > max)
		return range_error(g, kv, neg, mag, want);
	*out = mag;
	return 0;
}

int gguf_get_u64(const struct gguf *g, const char *key, uint64_t *out)
{
	const struct gguf_kv *kv = find_required(g, key);
	return kv ? kv_u64(g, kv, UINT64_MAX, out, "u64") : -1;
}

int gguf_get_u32(const struct gguf *g, const char *key, uint32_t *out)
{
	const struct gguf_kv *kv = find_required(g, key);
	uint64_t v;
	if (!kv || kv_u64(g, kv, UINT32_MAX, &v, "u32") < 0)
		return -1;
	*out = (uint32_t)v;
	return 0;
}

int gguf_get_i32(const struct gguf *g, const char *key, int32_t *out)
{
	const struct gguf_kv *kv = find_required(g, key);
	int neg;
	uint64_t mag;
	if (!kv || kv_integer(g, kv, &neg, &mag, "i32") < 0)
		return -1;
	if (neg ? mag > (uint64_t)INT32_MAX + 1 : mag > INT32_MAX)
		return range_error(g, kv, neg, mag, "i32");
	*out = neg ? (int32_t)(-(int64_t)mag) : (int32_t)mag;
	return 0;
}

int gguf_get_f32(const struct gguf *g, const char *key, float *out)
{
	const struct gguf_kv *kv = find_required(g, key);
	if (!kv)
		return -1;
	if (kv->type == GGUF_TYPE_FLOAT32) {
		memcpy(out, kv->value, 4);
		return 0;
	}
	if (kv->type == GGUF_TYPE_FLOAT64) {
		double d;
		memcpy(&d, kv->value, 8);
		*out = (float)d;
		return 0;
	}
	return error("'%s': key '%s' has type %s, expected f32", g->path, key,
		     gguf_vtype_name(kv->type));
}

int gguf_get_bool(const struct gguf *g, const char *key, int *out)
{
	const struct gguf_kv *kv = find_required(g, key);
	uint8_t v;
	if (!kv)
		return -1;
	if (kv->type != GGUF_TYPE_BOOL)
		return error("'%s': key '%s' has type %s, expected bool", g->path, key,
			     gguf_vtype_name(kv->type));
	memcpy(&v, kv->value, 1);
	*out = v != 0;
	return 0;
}

int gguf_get_str(const struct gguf *g, const char *key, struct gguf_str *out)
{
	const struct gguf_kv *kv = find_required(g, key);
	if (!kv)
		return -1;
	if (kv->type != GGUF_TYPE_STRING)
		return error("'%s': key '%s' has type %s, expected string", g->path, key,
			     gguf_vtype_name(kv->type));
	*out = *(const struct gguf_str *)kv->value;
	return 0;
}

int gguf_get_u32_or(const struct gguf *g, const char *key, uint32_t def, uint32_t *out)
{
	if (!gguf_find_kv(g, key)) {
		*out = def;
		return 0;
	}
	return gguf_get_u32(g, key, out);
}

int gguf_get_f32_or(const struct gguf *g, const char *key, float def, float *out)
{
	if (!gguf_find_kv(g, key)) {
		*out = def;
		return 0;
	}
	return gguf_get_f32(g, key, out);
}

int gguf_get_bool_or(const struct gguf *g, const char *key, int def, int *out)
{
	if (!gguf_find_kv(g, key)) {
		*out = def;
		return 0;
	}
	return gguf_get_bool(g, key, out);
}

int gguf_get_arr(const struct gguf *g, const char *key, enum gguf_vtype *type, uint64_t *n,
		 const void **data)
{
	const struct gguf_kv *kv = find_required(g, key);
	if (!kv)
		return -1;
	if (kv->type != GGUF_TYPE_ARRAY)
		return error("'%s': key '%s' has type %s, expected array", g->path, key,
			     gguf_vtype_name(kv->type));
	*type = kv->arr_type;
	*n = kv->arr_n;
	*data = kv->value;
	return 0;
}

int gguf_get_arr_str(const struct gguf *g, const char *key, const struct gguf_str **strs,
		     uint64_t *n)
{
	const struct gguf_kv *kv = find_required(g, key);
	if (!kv)
		return -1;
	if (kv->type != GGUF_TYPE_ARRAY || kv->arr_type != GGUF_TYPE_STRING)
		return error("'%s': key '%s' has type %s%s%s, expected array of string", g->path,
			     key, gguf_vtype_name(kv->type),
			     kv->type == GGUF_TYPE_ARRAY ? " of " : "",
			     kv->type == GGUF_TYPE_ARRAY ? gguf_vtype_name(kv->arr_type) : "");
	*strs = g->kv_arr[kv - g->kv];
	*n = kv->arr_n;
	return 0;
}
