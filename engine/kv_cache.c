/* The key/value cache of one sequence: allocation, stores, truncation and the shift. */
#include "kv_cache.h"

#include "quant.h"
#include "report.h"
#include "xalloc.h"

#include <stdlib.h>
#include <string.h>

const char *kv_type_name(enum kv_type t)
{
	return t == KV_F32 ? "f32" : "f16";
}

static int layer_cells(const struct kv_shape *s, int l)
{
	int w = s->window ? s->window[l] : 0;
	return w > 0 && s->ring < s->n_ctx ? s->ring : s->n_ctx;
}

/* Elements of all layers' keys (hd = head_dim_k) or values; -1 on overflow. */
static int total_elems(const struct kv_shape *s, int hd, size_t *out)
{
	size_t tot = 0;
	for (int l = 0; l < s->n_layer; l++) {
		size_t a;
		if (size_mul((size_t)s->n_head_kv, (size_t)layer_cells(s, l), &a) ||
		    size_mul(a, (size_t)hd, &a) || size_add(tot, a, &tot))
			return -1;
	}
	*out = tot;
	return 0;
}

static int shape_ok(const struct kv_shape *s)
{
	if (s->n_layer <= 0 || s->n_ctx <= 0 || s->n_head_kv <= 0 || s->head_dim_k <= 0 ||
	    s->head_dim_v <= 0)
		return 0;
	for (int l = 0; s->window && l < s->n_layer; l++)
		if (s->window[l] < 0 || (s->window[l] > 0 && s->ring < 1))
			return 0;
	return 1;
}

uint64_t kv_cache_bytes_shape(enum kv_type type, const struct kv_shape *s)
{
	size_t ek, ev, tot, elem = type == KV_F32 ? 4 : 2;
	if (s->n_layer < 0 || s->n_ctx < 0 || s->n_head_kv < 0 || s->head_dim_k < 0 ||
	    s->head_dim_v < 0)
		return 0;
	if (total_elems(s, s->head_dim_k, &ek) || total_elems(s, s->head_dim_v, &ev) ||
	    size_add(ek, ev, &tot) || size_mul(tot, elem, &tot))
		return 0;
	return tot;
}

uint64_t kv_cache_bytes_for(enum kv_type type, int n_layer, int n_ctx, int n_head_kv,
			    int head_dim_k, int head_dim_v)
{
	struct kv_shape s = { n_layer, n_ctx, n_head_kv, head_dim_k, head_dim_v, NULL, 0, 0 };
	return kv_cache_bytes_shape(type, &s);
}

int kv_cache_init_shape(struct kv_cache *kv, enum kv_type type, const struct kv_shape *s)
{
	memset(kv, 0, sizeof(*kv));
	size_t ek, ev;
	if (!shape_ok(s))
		return error("invalid KV cache shape (%d layers, %d cells, %d heads, %d/%d dims)",
			     s->n_layer, s->n_ctx, s->n_head_kv, s->head_dim_k, s->head_dim_v);
	uint64_t bytes = kv_cache_bytes_shape(type, s);
	if (!bytes || total_elems(s, s->head_dim_k, &ek) || total_elems(s, s->head_dim_v, &ev))
		return error("KV cache of %d cells is too large", s->n_ctx);
	kv->type = type;
	kv->n_layer = s->n_layer;
	kv->n_ctx = s->n_ctx;
	kv->n_head_kv = s->n_head_kv;
	kv->head_dim_k = s->head_dim_k;
	kv->head_dim_v = s->head_dim_v;
	kv->elem = type == KV_F32 ? 4 : 2;
	kv->cells = xcalloc((size_t)s->n_layer, sizeof(*kv->cells));
	kv->window = xcalloc((size_t)s->n_layer, sizeof(*kv->window));
	kv->off_k = xcalloc((size_t)s->n_layer, sizeof(*kv->off_k));
	kv->off_v = xcalloc((size_t)s->n_layer, sizeof(*kv->off_v));
	kv->pos = xcalloc((size_t)s->n_layer, sizeof(*kv->pos));
	size_t ok = 0, ov = 0;
	for (int l = 0; l < s->n_layer; l++) {
		kv->cells[l] = layer_cells(s, l);
		kv->window[l] = s->window ? s->window[l] : 0;
		kv->off_k[l] = ok;
		kv->off_v[l] = ov;
		ok += (size_t)s->n_head_kv * kv->cells[l] * s->head_dim_k;
		ov += (size_t)s->n_head_kv * kv->cells[l] * s->head_dim_v;
		if (kv->cells[l] < s->n_ctx) {
			kv->pos[l] = try_alloc_array((size_t)kv->cells[l], sizeof(int32_t));
			if (!kv->pos[l])
				goto oom;
			for (int c = 0; c < kv->cells[l]; c++)
				kv->pos[l][c] = -1;
		}
	}
	if (!s->no_data) {
		kv->k = try_alloc_aligned(ek, kv->elem);
		kv->v = try_alloc_aligned(ev, kv->elem);
		if (!kv->k || !kv->v)
			goto oom;
	}
	kv->tokens = try_alloc_array((size_t)s->n_ctx, sizeof(int32_t));
	if (!kv->tokens)
		goto oom;
	kv->bytes = bytes;
	return 0;
oom:
	kv_cache_free(kv);
	return error("cannot allocate the KV cache (%llu bytes for %d cells)",
		     (unsigned long long)bytes, s->n_ctx);
}

int kv_cache_init(struct kv_cache *kv, enum kv_type type, int n_layer, int n_ctx, int n_head_kv,
		  int head_dim_k, int head_dim_v)
{
	struct kv_shape s = { n_layer, n_ctx, n_head_kv, head_dim_k, head_dim_v, NULL, 0, 0 };
	return kv_cache_init_shape(kv, type, &s);
}

void kv_cache_free(struct kv_cache *kv)
{
	for (int l = 0; kv->pos && l < kv->n_layer; l++)
		free(kv->pos[l]);
	free(kv->pos);
	free(kv->cells);
	free(kv->window);
	free(kv->off_k);
	free(kv->off_v);
	free(kv->k);
	free(kv->v);
	free(kv->tokens);
	memset(kv, 0, sizeof(*kv));
}

void *kv_cache_k(const struct kv_cache *kv, int layer, int head, int pos)
{
	size_t idx = kv->off_k[layer] +
		     ((size_t)head * kv->cells[layer] + (size_t)kv_cache_cell(kv, layer, pos)) *
			     kv->head_dim_k;
	return (char *)kv->k + idx * kv->elem;
}

void *kv_cache_v(const struct kv_cache *kv, int layer, int head, int pos)
{
	size_t idx = kv->off_v[layer] +
		     ((size_t)head * kv->cells[layer] + (size_t)kv_cache_cell(kv, layer, pos)) *
			     kv->head_dim_v;
	return (char *)kv->v + idx * kv->elem;
}

static void put_row(const struct kv_cache *kv, void *dst, const float *src, int n)
{
	if (kv->type == KV_F32) {
		memcpy(dst, src, (size_t)n * sizeof(float));
	} else {
		quant_half *h = dst;
		for (int i = 0; i < n; i++)
			h[i] = quant_f32_to_f16(src[i]);
	}
}

void kv_cache_store(struct kv_cache *kv, int layer, int pos, const float *k, const float *v)
{
	for (int h = 0; h < kv->n_head_kv; h++) {
		put_row(kv, kv_cache_k(kv, layer, h, pos), k + (size_t)h * kv->head_dim_k,
			kv->head_dim_k);
		put_row(kv, kv_cache_v(kv, layer, h, pos), v + (size_t)h * kv->head_dim_v,
			kv->head_dim_v);
	}
	if (kv->pos[layer])
		kv->pos[layer][pos % kv->cells[layer]] = pos;
}

void kv_cache_tag(struct kv_cache *kv, int layer, int pos, int n)
{
	for (int i = 0; kv->pos[layer] && i < n; i++)
		kv->pos[layer][(pos + i) % kv->cells[layer]] = pos + i;
}

/* Does ring layer l hold every position a query at position n needs (n-W+1 .. n-1)? */
static int ring_holds_window(const struct kv_cache *kv, int l, int n)
{
	int lo = n - kv->window[l] + 1;
	for (int p = lo > 0 ? lo : 0; p < n; p++)
		if (kv->pos[l][p % kv->cells[l]] != p)
			return 0;
	return 1;
}

int kv_cache_truncate(struct kv_cache *kv, int n)
{
	if (n < 0 || n > kv->n)
		return error("cannot truncate the KV cache to %d positions: it holds %d", n, kv->n);
	for (int l = 0; l < kv->n_layer; l++)
		if (kv->pos[l] && !ring_holds_window(kv, l, n))
			n = 0;
	for (int l = 0; l < kv->n_layer; l++)
		for (int c = 0; kv->pos[l] && c < kv->cells[l]; c++)
			if (kv->pos[l][c] >= n)
				kv->pos[l][c] = -1;
	kv->n = n;
	return n;
}

/* Scratch for shift_ring: one ring layer's keys, values and tags. */
struct ring_copy {
	char *k, *v;
	int32_t *pos;
};

/* Move a ring layer's cells to their shifted positions through a copy of the layer. */
static void shift_ring(struct kv_cache *kv, int l, int keep, int n_discard, struct ring_copy *cp)
{
	int R = kv->cells[l];
	size_t rk = (size_t)kv->head_dim_k * kv->elem, rv = (size_t)kv->head_dim_v * kv->elem;
	char *k0 = (char *)kv->k + kv->off_k[l] * kv->elem;
	char *v0 = (char *)kv->v + kv->off_v[l] * kv->elem;
	memcpy(cp->k, k0, (size_t)kv->n_head_kv * R * rk);
	memcpy(cp->v, v0, (size_t)kv->n_head_kv * R * rv);
	memcpy(cp->pos, kv->pos[l], (size_t)R * sizeof(int32_t));
	for (int c = 0; c < R; c++)
		kv->pos[l][c] = -1;
	for (int c = 0; c < R; c++) {
		int p = cp->pos[c];
		if (p < 0 || (p >= keep && p < keep + n_discard))
			continue;
		int np = p < keep ? p : p - n_discard, nc = np % R;
		/* distinct positions held at once lie within R of each other, so
		 * their new cells never collide */
		for (int h = 0; h < kv->n_head_kv; h++) {
			memcpy(k0 + ((size_t)h * R + nc) * rk, cp->k + ((size_t)h * R + c) * rk,
			       rk);
			memcpy(v0 + ((size_t)h * R + nc) * rv, cp->v + ((size_t)h * R + c) * rv,
			       rv);
		}
		kv->pos[l][nc] = np;
	}
}

/* Where a ring layer's position p goes in the shift: its new position, or -1 (discarded). */
static int shifted(int p, int keep, int n_discard)
{
	if (p < 0 || (p >= keep && p < keep + n_discard))
		return -1;
	return p < keep ? p : p - n_discard;
}

/* A ring layer's tags after the shift, without data. */
static void shift_tags(struct kv_cache *kv, int l, int keep, int n_discard)
{
	int R = kv->cells[l];
	int32_t *old = xcalloc((size_t)R, sizeof(int32_t));
	memcpy(old, kv->pos[l], (size_t)R * sizeof(int32_t));
	for (int c = 0; c < R; c++)
		kv->pos[l][c] = -1;
	for (int c = 0; c < R; c++) {
		int np = shifted(old[c], keep, n_discard);
		if (np >= 0)
			kv->pos[l][np % R] = np;
	}
	free(old);
}

int kv_cache_shift_plan(const struct kv_cache *kv, int l, int keep, int n_discard, int32_t *from,
			int32_t *to)
{
	int n = 0;
	if (!kv->pos[l]) {
		for (int p = keep + n_discard; p < kv->n; p++, n++) {
			from[n] = p;
			to[n] = p - n_discard;
		}
		return n;
	}
	/* the ring's cells hold at most R consecutive positions: walk them in
	 * position order from the cell after the newest */
	int R = kv->cells[l];
	for (int i = 0; i < R; i++) {
		int c = (kv->n + i) % R, p = kv->pos[l][c];
		if (p < keep + n_discard)
			continue;
		from[n] = c;
		to[n] = (p - n_discard) % R;
		n++;
	}
	return n;
}

/* The data half of kv_cache_shift. */
static int shift_data(struct kv_cache *kv, int keep, int n_discard)
{
	int rest = kv->n - keep - n_discard, R = 0;
	for (int l = 0; l < kv->n_layer; l++)
		if (kv->pos[l] && kv->cells[l] > R)
			R = kv->cells[l];
	struct ring_copy cp = { NULL, NULL, NULL };
	if (R) { /* allocated before anything moves: a failure changes nothing */
		int hd = kv->head_dim_k > kv->head_dim_v ? kv->head_dim_k : kv->head_dim_v;
		cp.k = try_alloc_array((size_t)kv->n_head_kv * R * hd, kv->elem);
		cp.v = try_alloc_array((size_t)kv->n_head_kv * R * hd, kv->elem);
		cp.pos = try_alloc_array((size_t)R, sizeof(int32_t));
		if (!cp.k || !cp.v || !cp.pos) {
			free(cp.k);
			free(cp.v);
			free(cp.pos);
			return error("out of memory shifting the KV cache");
		}
	}
	for (int l = 0; l < kv->n_layer; l++) {
		if (kv->pos[l]) {
			shift_ring(kv, l, keep, n_discard, &cp);
			continue;
		}
		for (int h = 0; h < kv->n_head_kv; h++) {
			memmove(kv_cache_k(kv, l, h, keep), kv_cache_k(kv, l, h, keep + n_discard),
				(size_t)rest * kv->head_dim_k * kv->elem);
			memmove(kv_cache_v(kv, l, h, keep), kv_cache_v(kv, l, h, keep + n_discard),
				(size_t)rest * kv->head_dim_v * kv->elem);
		}
	}
	free(cp.k);
	free(cp.v);
	free(cp.pos);
	return 0;
}

int kv_cache_shift(struct kv_cache *kv, int keep, int n_discard)
{
	if (keep < 0 || n_discard < 0 || keep + n_discard > kv->n)
		return error("cannot shift the KV cache: keep %d and discard %d of %d positions",
			     keep, n_discard, kv->n);
	if (n_discard == 0)
		return 0;
	if (!kv->k) { /* bookkeeping only: the device has moved the data */
		for (int l = 0; l < kv->n_layer; l++)
			if (kv->pos[l])
				shift_tags(kv, l, keep, n_discard);
	} else if (shift_data(kv, keep, n_discard) < 0) {
		return -1;
	}
	int rest = kv->n - keep - n_discard;
	memmove(kv->tokens + keep, kv->tokens + keep + n_discard, (size_t)rest * sizeof(int32_t));
	kv->n -= n_discard;
	return 0;
}
