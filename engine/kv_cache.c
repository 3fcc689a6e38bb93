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

static int plane_elems(int n_layer, int n_ctx, int n_head_kv, int head_dim, size_t *out)
{
	size_t a;
	if (size_mul((size_t)n_layer, (size_t)n_head_kv, &a) || size_mul(a, (size_t)n_ctx, &a) ||
	    size_mul(a, (size_t)head_dim, &a))
		return -1;
	*out = a;
	return 0;
}

uint64_t kv_cache_bytes_for(enum kv_type type, int n_layer, int n_ctx, int n_head_kv,
			    int head_dim_k, int head_dim_v)
{
	size_t ek, ev, elem = type == KV_F32 ? 4 : 2, tot;
	if (n_layer < 0 || n_ctx < 0 || n_head_kv < 0 || head_dim_k < 0 || head_dim_v < 0)
		return 0;
	if (plane_elems(n_layer, n_ctx, n_head_kv, head_dim_k, &ek) ||
	    plane_elems(n_layer, n_ctx, n_head_kv, head_dim_v, &ev) || size_add(ek, ev, &tot) ||
	    size_mul(tot, elem, &tot))
		return 0;
	return tot;
}

int kv_cache_init(struct kv_cache *kv, enum kv_type type, int n_layer, int n_ctx, int n_head_kv,
		  int head_dim_k, int head_dim_v)
{
	memset(kv, 0, sizeof(*kv));
	size_t ek, ev;
	if (n_layer <= 0 || n_ctx <= 0 || n_head_kv <= 0 || head_dim_k <= 0 || head_dim_v <= 0)
		return error("invalid KV cache shape (%d layers, %d cells, %d heads, %d/%d dims)",
			     n_layer, n_ctx, n_head_kv, head_dim_k, head_dim_v);
	uint64_t bytes =
		kv_cache_bytes_for(type, n_layer, n_ctx, n_head_kv, head_dim_k, head_dim_v);
	if (!bytes || plane_elems(n_layer, n_ctx, n_head_kv, head_dim_k, &ek) ||
	    plane_elems(n_layer, n_ctx, n_head_kv, head_dim_v, &ev))
		return error("KV cache of %d cells is too large", n_ctx);
	kv->type = type;
	kv->n_layer = n_layer;
	kv->n_ctx = n_ctx;
	kv->n_head_kv = n_head_kv;
	kv->head_dim_k = head_dim_k;
	kv->head_dim_v = head_dim_v;
	kv->elem = type == KV_F32 ? 4 : 2;
	kv->k = try_alloc_aligned(ek, kv->elem);
	kv->v = try_alloc_aligned(ev, kv->elem);
	kv->tokens = try_alloc_array((size_t)n_ctx, sizeof(int32_t));
	if (!kv->k || !kv->v || !kv->tokens) {
		kv_cache_free(kv);
		return error("cannot allocate the KV cache (%llu bytes for %d cells)",
			     (unsigned long long)bytes, n_ctx);
	}
	kv->bytes = bytes;
	return 0;
}

void kv_cache_free(struct kv_cache *kv)
{
	free(kv->k);
	free(kv->v);
	free(kv->tokens);
	kv->k = kv->v = NULL;
	kv->tokens = NULL;
	kv->n = 0;
}

void *kv_cache_k(const struct kv_cache *kv, int layer, int head, int pos)
{
	size_t idx = (((size_t)layer * kv->n_head_kv + head) * kv->n_ctx + pos) * kv->head_dim_k;
	return (char *)kv->k + idx * kv->elem;
}

void *kv_cache_v(const struct kv_cache *kv, int layer, int head, int pos)
{
	size_t idx = (((size_t)layer * kv->n_head_kv + head) * kv->n_ctx + pos) * kv->head_dim_v;
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
}

int kv_cache_truncate(struct kv_cache *kv, int n)
{
	if (n < 0 || n > kv->n)
		return error("cannot truncate the KV cache to %d positions: it holds %d", n, kv->n);
	kv->n = n;
	return 0;
}

int kv_cache_shift(struct kv_cache *kv, int keep, int n_discard)
{
	if (keep < 0 || n_discard < 0 || keep + n_discard > kv->n)
		return error("cannot shift the KV cache: keep %d and discard %d of %d positions",
			     keep, n_discard, kv->n);
	if (n_discard == 0)
		return 0;
	int rest = kv->n - keep - n_discard;
	for (int l = 0; l < kv->n_layer; l++) {
		for (int h = 0; h < kv->n_head_kv; h++) {
			memmove(kv_cache_k(kv, l, h, keep), kv_cache_k(kv, l, h, keep + n_discard),
				(size_t)rest * kv->head_dim_k * kv->elem);
			memmove(kv_cache_v(kv, l, h, keep), kv_cache_v(kv, l, h, keep + n_discard),
				(size_t)rest * kv->head_dim_v * kv->elem);
		}
	}
	memmove(kv->tokens + keep, kv->tokens + keep + n_discard, (size_t)rest * sizeof(int32_t));
	kv->n -= n_discard;
	return 0;
}
