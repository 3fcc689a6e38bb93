/* The KV state file: a buffered writer that hashes as it goes, and a reader that checks before it trusts. */
#include "kv_state.h"

#include "hash.h"
#include "report.h"
#include "xalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/*
 * DESIGN
 * The header comes first but holds the checksums of what follows, so the
 * writer puts a zeroed header, streams the tokens and the K/V rows through
 * a 1 MiB buffer (hashing them on the way: one pass over the cache), then
 * rewrites the header in place.  A file is only ever renamed into place
 * after that (kv_dir.c), so a reader never sees a half-written one unless
 * the disk lied; the checksums catch that and any later damage.
 *
 * The reader checks everything it can before touching the cache: header
 * checksum, identity, shape, the file's size against the payload size the
 * header gives (so a truncated file is refused up front), and the token
 * list's own checksum (the caller decides from the tokens whether loading
 * pays).  Only the K/V data is read straight into the cache's cells; its
 * checksum is known at the end, so a failure there empties the cache.
 */

static const char MAGIC[8] = { 'p', 'l', 'v', 'r', 'K', 'V', 's', 't' };

#define BOM 0x01020304u /* written in host order: a reader of the other order sees it reversed */
#define MAX_LAYERS 4096
#define CHUNK ((size_t)1 << 20)

/* Offsets in the fixed part of the header. */
enum {
	O_MAGIC = 0,
	O_VERSION = 8,
	O_HEADER_BYTES = 12,
	O_BOM = 16,
	O_COMPRESSION = 20,
	O_MODEL_BYTES = 24,
	O_MODEL_HASH = 32,
	O_MODEL_NAME = 40,
	O_TYPE = O_MODEL_NAME + KV_STATE_NAME_MAX,
	O_N_LAYER = O_TYPE + 4,
	O_N_CTX = O_TYPE + 8,
	O_N_HEAD_KV = O_TYPE + 12,
	O_HEAD_DIM_K = O_TYPE + 16,
	O_HEAD_DIM_V = O_TYPE + 20,
	O_N_TOKENS = O_TYPE + 24,
	O_RESERVED = O_TYPE + 28,
	O_PAYLOAD = O_TYPE + 32,
	O_TOKENS_HASH = O_TYPE + 40,
	O_DATA_HASH = O_TYPE + 48,
	FIXED = O_TYPE + 56, /* then 8 bytes per layer, then the header's own hash */
};

static size_t header_bytes(int n_layer)
{
	return FIXED + 8 * (size_t)n_layer + 8;
}

static void put32(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static void put64(unsigned char *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t get32(const unsigned char *p)
{
	uint32_t v = 0;
	for (int i = 3; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static uint64_t get64(const unsigned char *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static int is_ring(const struct kv_cache *kv, int l)
{
	return kv->pos[l] != NULL;
}

static size_t row_k(const struct kv_cache *kv)
{
	return (size_t)kv->head_dim_k * kv->elem;
}

static size_t row_v(const struct kv_cache *kv)
{
	return (size_t)kv->head_dim_v * kv->elem;
}

static int ring_held(const struct kv_cache *kv, int l)
{
	int held = 0;
	for (int c = 0; c < kv->cells[l]; c++)
		held += kv->pos[l][c] >= 0;
	return held;
}

/* Bytes of the K/V data for given fills (held[l]: tagged cells of ring layer l). */
static uint64_t data_bytes(const struct kv_cache *kv, int n, const int *held)
{
	uint64_t tot = 0, pair = (uint64_t)(row_k(kv) + row_v(kv)) * (uint64_t)kv->n_head_kv;
	for (int l = 0; l < kv->n_layer; l++)
		tot += is_ring(kv, l) ? 4 * (uint64_t)kv->cells[l] + (uint64_t)held[l] * pair
				      : (uint64_t)n * pair;
	return tot;
}

uint64_t kv_state_size(const struct kv_cache *kv)
{
	int *held = xcalloc((size_t)kv->n_layer, sizeof(*held));
	for (int l = 0; l < kv->n_layer; l++)
		held[l] = is_ring(kv, l) ? ring_held(kv, l) : 0;
	uint64_t tot =
		header_bytes(kv->n_layer) + 4 * (uint64_t)kv->n + data_bytes(kv, kv->n, held);
	free(held);
	return tot;
}

uint64_t kv_state_key(const struct kv_cache *kv, const struct kv_state_id *id)
{
	struct hash64 h;
	unsigned char b[8];
	hash64_init(&h, KV_STATE_VERSION);
	put64(b, id->model_bytes);
	hash64_update(&h, b, 8);
	put64(b, id->model_hash);
	hash64_update(&h, b, 8);
	const int dims[] = { (int)kv->type, kv->n_layer,    kv->n_ctx,
			     kv->n_head_kv, kv->head_dim_k, kv->head_dim_v };
	for (size_t i = 0; i < sizeof(dims) / sizeof(dims[0]); i++) {
		put32(b, (uint32_t)dims[i]);
		hash64_update(&h, b, 4);
	}
	for (int l = 0; l < kv->n_layer; l++) {
		put32(b, (uint32_t)kv->cells[l]);
		put32(b + 4, (uint32_t)kv->window[l]);
		hash64_update(&h, b, 8);
	}
	return hash64_final(&h);
}

/* ---- writing -------------------------------------------------------------------------- */

struct writer {
	int fd;
	unsigned char *buf; /* (CHUNK) */
	size_t fill;
	struct hash64 *h; /* the section being written */
	int (*stop)(void *);
	void *ud;
};

static int write_all(int fd, const void *p, size_t n)
{
	const char *s = p;
	while (n) {
		ssize_t w = write(fd, s, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return error("cannot write the KV state: %s", strerror(errno));
		s += w;
		n -= (size_t)w;
	}
	return 0;
}

static int flush(struct writer *w)
{
	if (w->stop && w->stop(w->ud))
		return error("interrupted");
	if (write_all(w->fd, w->buf, w->fill) < 0)
		return -1;
	w->fill = 0;
	return 0;
}

static int put(struct writer *w, const void *p, size_t n)
{
	const unsigned char *s = p;
	hash64_update(w->h, p, n);
	while (n) {
		if (w->fill == CHUNK && flush(w) < 0)
			return -1;
		size_t take = CHUNK - w->fill < n ? CHUNK - w->fill : n;
		memcpy(w->buf + w->fill, s, take);
		w->fill += take;
		s += take;
		n -= take;
	}
	return 0;
}

/* One layer's K/V data as the layout in kv_state.h says. */
static int put_layer(struct writer *w, const struct kv_cache *kv, int l)
{
	if (!is_ring(kv, l)) {
		for (int h = 0; h < kv->n_head_kv; h++)
			if (put(w, kv_cache_k(kv, l, h, 0), (size_t)kv->n * row_k(kv)) < 0)
				return -1;
		for (int h = 0; h < kv->n_head_kv; h++)
			if (put(w, kv_cache_v(kv, l, h, 0), (size_t)kv->n * row_v(kv)) < 0)
				return -1;
		return 0;
	}
	const int32_t *tag = kv->pos[l];
	if (put(w, tag, (size_t)kv->cells[l] * sizeof(int32_t)) < 0)
		return -1;
	for (int h = 0; h < kv->n_head_kv; h++)
		for (int c = 0; c < kv->cells[l]; c++)
			if (tag[c] >= 0 && put(w, kv_cache_k(kv, l, h, tag[c]), row_k(kv)) < 0)
				return -1;
	for (int h = 0; h < kv->n_head_kv; h++)
		for (int c = 0; c < kv->cells[l]; c++)
			if (tag[c] >= 0 && put(w, kv_cache_v(kv, l, h, tag[c]), row_v(kv)) < 0)
				return -1;
	return 0;
}

int kv_state_write(int fd, const struct kv_cache *kv, const struct kv_state_id *id,
		   int (*stop)(void *), void *ud)
{
	if (!kv->k) /* kv_shape.no_data: the engine turns states off before this */
		return error("the KV cache is on a device, not in memory");
	size_t hb = header_bytes(kv->n_layer);
	unsigned char *hdr = xcalloc(hb, 1);
	struct hash64 ht, hd;
	struct writer w = { fd, xmalloc(CHUNK), 0, &ht, stop, ud };
	int rc = -1;

	hash64_init(&ht, 0);
	hash64_init(&hd, 0);
	if (write_all(fd, hdr, hb) < 0 || put(&w, kv->tokens, (size_t)kv->n * sizeof(int32_t)) < 0)
		goto out;
	w.h = &hd;
	for (int l = 0; l < kv->n_layer; l++)
		if (put_layer(&w, kv, l) < 0)
			goto out;
	if (flush(&w) < 0)
		goto out;

	memcpy(hdr + O_MAGIC, MAGIC, sizeof(MAGIC));
	put32(hdr + O_VERSION, KV_STATE_VERSION);
	put32(hdr + O_HEADER_BYTES, (uint32_t)hb);
	uint32_t bom = BOM;
	memcpy(hdr + O_BOM, &bom, 4);
	put32(hdr + O_COMPRESSION, 0);
	put64(hdr + O_MODEL_BYTES, id->model_bytes);
	put64(hdr + O_MODEL_HASH, id->model_hash);
	memcpy(hdr + O_MODEL_NAME, id->model_name, strnlen(id->model_name, KV_STATE_NAME_MAX - 1));
	put32(hdr + O_TYPE, (uint32_t)kv->type);
	put32(hdr + O_N_LAYER, (uint32_t)kv->n_layer);
	put32(hdr + O_N_CTX, (uint32_t)kv->n_ctx);
	put32(hdr + O_N_HEAD_KV, (uint32_t)kv->n_head_kv);
	put32(hdr + O_HEAD_DIM_K, (uint32_t)kv->head_dim_k);
	put32(hdr + O_HEAD_DIM_V, (uint32_t)kv->head_dim_v);
	put32(hdr + O_N_TOKENS, (uint32_t)kv->n);
	put64(hdr + O_PAYLOAD, kv_state_size(kv) - hb);
	put64(hdr + O_TOKENS_HASH, hash64_final(&ht));
	put64(hdr + O_DATA_HASH, hash64_final(&hd));
	for (int l = 0; l < kv->n_layer; l++) {
		put32(hdr + FIXED + 8 * (size_t)l, (uint32_t)kv->cells[l]);
		put32(hdr + FIXED + 8 * (size_t)l + 4, (uint32_t)kv->window[l]);
	}
	put64(hdr + hb - 8, hash64(hdr, hb - 8, 0));
	for (size_t done = 0; done < hb;) {
		ssize_t n = pwrite(fd, hdr + done, hb - done, (off_t)done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			error("cannot write the KV state: %s", strerror(errno));
			goto out;
		}
		done += (size_t)n;
	}
	rc = 0;
out:
	free(w.buf);
	free(hdr);
	return rc;
}

/* ---- reading -------------------------------------------------------------------------- */

struct kv_state_file {
	int fd;
	int n_tokens;
	int32_t *tokens;     /* (n_tokens), checked */
	uint64_t data_bytes; /* K/V data after the tokens */
	uint64_t data_hash;
};

/* Read exactly n bytes: n, or fewer at the end of the file, or -1 (errno). */
static ssize_t read_full(int fd, void *p, size_t n)
{
	size_t got = 0;
	while (got < n) {
		ssize_t r = read(fd, (char *)p + got, n - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0)
			break;
		got += (size_t)r;
	}
	return (ssize_t)got;
}

static const char *type_name(uint32_t t)
{
	return t == KV_F16 ? "f16" : t == KV_F32 ? "f32" : "unknown";
}

/* The fixed part of the header: magic and version checked.  0 or -1 (error()). */
static int read_fixed(int fd, unsigned char *fixed, uint64_t size)
{
	ssize_t got = read_full(fd, fixed, FIXED);
	if (got < 0)
		return error("cannot read it: %s", strerror(errno));
	if (got < (ssize_t)sizeof(MAGIC) || memcmp(fixed, MAGIC, sizeof(MAGIC)))
		return error("not a KV state file");
	if (got < O_HEADER_BYTES)
		return error("truncated: %llu bytes", (unsigned long long)size);
	uint32_t v = get32(fixed + O_VERSION);
	if (v != KV_STATE_VERSION)
		return error("format version %u (this palaver reads %d)", v, KV_STATE_VERSION);
	if (got < FIXED)
		return error("truncated: %llu bytes", (unsigned long long)size);
	return 0;
}

/* The header against the cache we would read into: -1 (error()) on any difference. */
static int check_header(const unsigned char *hdr, const struct kv_cache *kv,
			const struct kv_state_id *id)
{
	uint32_t bom;
	memcpy(&bom, hdr + O_BOM, 4);
	if (bom != BOM)
		return error("written on a host of another byte order");
	if (get32(hdr + O_COMPRESSION))
		return error("compressed with method %u, which this palaver does not read",
			     get32(hdr + O_COMPRESSION));
	if (get64(hdr + O_MODEL_BYTES) != id->model_bytes ||
	    get64(hdr + O_MODEL_HASH) != id->model_hash) {
		char name[KV_STATE_NAME_MAX];
		memcpy(name, hdr + O_MODEL_NAME, KV_STATE_NAME_MAX - 1);
		name[KV_STATE_NAME_MAX - 1] = '\0';
		return error("saved with another model ('%s', %llu bytes)", name,
			     (unsigned long long)get64(hdr + O_MODEL_BYTES));
	}
	if (get32(hdr + O_TYPE) != (uint32_t)kv->type)
		return error("its KV type is %s, not %s", type_name(get32(hdr + O_TYPE)),
			     type_name((uint32_t)kv->type));
	const uint32_t have[] = { get32(hdr + O_N_LAYER), get32(hdr + O_N_CTX),
				  get32(hdr + O_N_HEAD_KV), get32(hdr + O_HEAD_DIM_K),
				  get32(hdr + O_HEAD_DIM_V) };
	const int want[] = { kv->n_layer, kv->n_ctx, kv->n_head_kv, kv->head_dim_k,
			     kv->head_dim_v };
	for (int i = 0; i < 5; i++)
		if (have[i] != (uint32_t)want[i])
			return error("the cache's shape differs: %u layers, %u cells, %u KV heads, "
				     "head dims %u/%u saved; %d, %d, %d, %d/%d now",
				     have[0], have[1], have[2], have[3], have[4], want[0], want[1],
				     want[2], want[3], want[4]);
	for (int l = 0; l < kv->n_layer; l++) {
		uint32_t cells = get32(hdr + FIXED + 8 * (size_t)l);
		uint32_t window = get32(hdr + FIXED + 8 * (size_t)l + 4);
		if (cells != (uint32_t)kv->cells[l] || window != (uint32_t)kv->window[l])
			return error("layer %d differs: %u cells, window %u saved; %d, %d now", l,
				     cells, window, kv->cells[l], kv->window[l]);
	}
	uint32_t n = get32(hdr + O_N_TOKENS);
	if (n < 1 || n > (uint32_t)kv->n_ctx)
		return error("it holds %u tokens, outside 1..%d", n, kv->n_ctx);
	return 0;
}

struct kv_state_file *kv_state_open(const char *path, const struct kv_cache *kv,
				    const struct kv_state_id *id)
{
	unsigned char fixed[FIXED], *hdr = NULL;
	struct kv_state_file *f = NULL;
	struct stat st;
	if (!kv->k) {
		error("the KV cache is on a device, not in memory");
		return NULL;
	}
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		error("cannot open '%s': %s", path, strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) < 0) {
		error("cannot stat it: %s", strerror(errno));
		goto fail;
	}
	uint64_t size = (uint64_t)st.st_size;
	if (read_fixed(fd, fixed, size) < 0)
		goto fail;
	uint32_t n_layer = get32(fixed + O_N_LAYER);
	if (n_layer < 1 || n_layer > MAX_LAYERS ||
	    get32(fixed + O_HEADER_BYTES) != header_bytes((int)n_layer)) {
		error("corrupt header");
		goto fail;
	}
	size_t hb = header_bytes((int)n_layer);
	if (size < hb) {
		error("truncated: %llu bytes", (unsigned long long)size);
		goto fail;
	}
	hdr = xmalloc(hb);
	memcpy(hdr, fixed, FIXED);
	if (read_full(fd, hdr + FIXED, hb - FIXED) != (ssize_t)(hb - FIXED)) {
		error("cannot read its header");
		goto fail;
	}
	if (hash64(hdr, hb - 8, 0) != get64(hdr + hb - 8)) {
		error("header checksum mismatch");
		goto fail;
	}
	if (check_header(hdr, kv, id) < 0)
		goto fail;

	int n = (int)get32(hdr + O_N_TOKENS);
	uint64_t payload = get64(hdr + O_PAYLOAD);
	if (size - hb != payload) {
		if (size - hb < payload)
			error("truncated: %llu of %llu bytes", (unsigned long long)size,
			      (unsigned long long)(payload + hb));
		else
			error("%llu bytes longer than its header says",
			      (unsigned long long)(size - hb - payload));
		goto fail;
	}
	/* the payload's size must fit the shape: ring layers may hold 0 .. all cells */
	int *held = xcalloc((size_t)kv->n_layer, sizeof(*held));
	uint64_t lo = 4 * (uint64_t)n + data_bytes(kv, n, held);
	for (int l = 0; l < kv->n_layer; l++)
		held[l] = kv->cells[l];
	uint64_t hi = 4 * (uint64_t)n + data_bytes(kv, n, held);
	free(held);
	if (payload < lo || payload > hi) {
		error("corrupt header: a payload of %llu bytes cannot hold %d tokens",
		      (unsigned long long)payload, n);
		goto fail;
	}

	f = xcalloc(1, sizeof(*f));
	f->fd = fd;
	f->n_tokens = n;
	f->data_bytes = payload - 4 * (uint64_t)n;
	f->data_hash = get64(hdr + O_DATA_HASH);
	f->tokens = try_alloc_array((size_t)n, sizeof(int32_t));
	if (!f->tokens) {
		error("out of memory for %d tokens", n);
		goto fail;
	}
	if (read_full(fd, f->tokens, (size_t)n * sizeof(int32_t)) != (ssize_t)n * 4) {
		error("cannot read its tokens");
		goto fail;
	}
	if (hash64(f->tokens, (size_t)n * sizeof(int32_t), 0) != get64(hdr + O_TOKENS_HASH)) {
		error("token list checksum mismatch");
		goto fail;
	}
	free(hdr);
	return f;
fail:
	free(hdr);
	if (f)
		free(f->tokens);
	free(f);
	close(fd);
	return NULL;
}

int kv_state_n_tokens(const struct kv_state_file *f)
{
	return f->n_tokens;
}

const int32_t *kv_state_tokens(const struct kv_state_file *f)
{
	return f->tokens;
}

void kv_state_close(struct kv_state_file *f)
{
	if (!f)
		return;
	close(f->fd);
	free(f->tokens);
	free(f);
}

/* Buffered reading of the data section, hashed as it is consumed. */
struct reader {
	int fd;
	unsigned char *buf; /* (CHUNK) */
	size_t pos, fill;
	uint64_t left; /* bytes of the data section not yet consumed */
	struct hash64 h;
};

static int get(struct reader *r, void *dst, size_t n)
{
	unsigned char *d = dst;
	if (n > r->left)
		return error("its data ends early");
	r->left -= n;
	while (n) {
		if (r->pos == r->fill) {
			if (n >= CHUNK) { /* large rows: straight into the cache */
				ssize_t got = read_full(r->fd, d, n);
				if (got != (ssize_t)n)
					return error("cannot read its data: %s",
						     got < 0 ? strerror(errno) : "short file");
				hash64_update(&r->h, d, n);
				return 0;
			}
			size_t want = r->left + n < CHUNK ? (size_t)(r->left + n) : CHUNK;
			ssize_t got = read_full(r->fd, r->buf, want);
			if (got <= 0)
				return error("cannot read its data: %s",
					     got < 0 ? strerror(errno) : "short file");
			r->pos = 0;
			r->fill = (size_t)got;
		}
		size_t take = r->fill - r->pos < n ? r->fill - r->pos : n;
		memcpy(d, r->buf + r->pos, take);
		hash64_update(&r->h, d, take);
		r->pos += take;
		d += take;
		n -= take;
	}
	return 0;
}

/* No positions held: n = 0 and every ring cell untagged. */
static void make_empty(struct kv_cache *kv)
{
	kv->n = 0;
	for (int l = 0; l < kv->n_layer; l++)
		for (int c = 0; is_ring(kv, l) && c < kv->cells[l]; c++)
			kv->pos[l][c] = -1;
}

static int get_layer(struct reader *r, struct kv_cache *kv, int l, int n)
{
	if (!is_ring(kv, l)) {
		for (int h = 0; h < kv->n_head_kv; h++)
			if (get(r, kv_cache_k(kv, l, h, 0), (size_t)n * row_k(kv)) < 0)
				return -1;
		for (int h = 0; h < kv->n_head_kv; h++)
			if (get(r, kv_cache_v(kv, l, h, 0), (size_t)n * row_v(kv)) < 0)
				return -1;
		return 0;
	}
	int32_t *tag = kv->pos[l];
	int cells = kv->cells[l];
	if (get(r, tag, (size_t)cells * sizeof(int32_t)) < 0)
		return -1;
	/* the invariant of kv_cache.h: a tag p sits in cell p % cells, p < n, p >= n - cells */
	for (int c = 0; c < cells; c++)
		if (tag[c] != -1 &&
		    (tag[c] < 0 || tag[c] >= n || tag[c] < n - cells || tag[c] % cells != c))
			return error("layer %d: cell %d is tagged with position %d", l, c, tag[c]);
	for (int h = 0; h < kv->n_head_kv; h++)
		for (int c = 0; c < cells; c++)
			if (tag[c] >= 0 && get(r, kv_cache_k(kv, l, h, tag[c]), row_k(kv)) < 0)
				return -1;
	for (int h = 0; h < kv->n_head_kv; h++)
		for (int c = 0; c < cells; c++)
			if (tag[c] >= 0 && get(r, kv_cache_v(kv, l, h, tag[c]), row_v(kv)) < 0)
				return -1;
	return 0;
}

int kv_state_read(struct kv_state_file *f, struct kv_cache *kv)
{
	struct reader r;
	int rc = -1;
	memset(&r, 0, sizeof(r));
	r.fd = f->fd;
	r.buf = xmalloc(CHUNK);
	r.left = f->data_bytes;
	hash64_init(&r.h, 0);
	/* the cells are overwritten from here on: a failure must leave a valid, empty cache */
	make_empty(kv);
	for (int l = 0; l < kv->n_layer; l++)
		if (get_layer(&r, kv, l, f->n_tokens) < 0)
			goto out;
	if (r.left) {
		error("%llu bytes of its data were not used", (unsigned long long)r.left);
		goto out;
	}
	if (hash64_final(&r.h) != f->data_hash) {
		error("data checksum mismatch");
		goto out;
	}
	memcpy(kv->tokens, f->tokens, (size_t)f->n_tokens * sizeof(int32_t));
	kv->n = f->n_tokens;
	rc = 0;
out:
	if (rc < 0)
		make_empty(kv);
	free(r.buf);
	return rc;
}

int kv_state_peek(const char *path, struct kv_state_info *out)
{
	unsigned char fixed[FIXED];
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return error("cannot open '%s': %s", path, strerror(errno));
	int rc = fstat(fd, &st) < 0 ? error("cannot stat it: %s", strerror(errno))
				    : read_fixed(fd, fixed, (uint64_t)st.st_size);
	close(fd);
	if (rc < 0)
		return -1;
	memset(out, 0, sizeof(*out));
	out->version = get32(fixed + O_VERSION);
	out->n_tokens = (int)get32(fixed + O_N_TOKENS);
	out->type = get32(fixed + O_TYPE) == KV_F32 ? KV_F32 : KV_F16;
	memcpy(out->model_name, fixed + O_MODEL_NAME, KV_STATE_NAME_MAX - 1);
	out->model_name[KV_STATE_NAME_MAX - 1] = '\0';
	return 0;
}
