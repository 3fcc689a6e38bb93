/* The key/value cache of one sequence: F16 (default) or F32 keys and values per layer. */
#ifndef PALAVER_KV_CACHE_H
#define PALAVER_KV_CACHE_H

#include <stddef.h>
#include <stdint.h>

/*
 * Cell p holds the keys and values of the token at position p; the cache
 * holds positions 0 .. n-1 (always a prefix: decode appends, truncation and
 * the context shift shorten it).  Layout, per layer and per KV head, with
 * the positions contiguous so that attention streams through memory:
 *	k: (n_layer, n_head_kv, n_ctx, head_dim_k)
 *	v: (n_layer, n_head_kv, n_ctx, head_dim_v)
 * Keys are stored after RoPE (rotated by their position).
 *
 * Invariants: 0 <= n <= n_ctx; tokens[0..n-1] are the tokens whose K/V the
 * cells hold (for prefix reuse by the caller).
 */

enum kv_type { KV_F16, KV_F32 };

struct kv_cache {
	enum kv_type type;
	int n_layer;
	int n_ctx; /* cells */
	int n_head_kv;
	int head_dim_k;
	int head_dim_v;
	int n;           /* cells in use: positions 0 .. n-1 */
	size_t elem;     /* bytes per element: 2 (F16) or 4 (F32) */
	void *k;         /* (n_layer, n_head_kv, n_ctx, head_dim_k) elements of `type` */
	void *v;         /* (n_layer, n_head_kv, n_ctx, head_dim_v) */
	int32_t *tokens; /* (n_ctx) token in each cell */
	uint64_t bytes;  /* k + v bytes */
};

/* Allocate (overflow-checked); -1 with error() naming the size when it fails. */
int kv_cache_init(struct kv_cache *kv, enum kv_type type, int n_layer, int n_ctx, int n_head_kv,
		  int head_dim_k, int head_dim_v);
void kv_cache_free(struct kv_cache *kv);

/* Bytes that kv_cache_init would allocate (0 on overflow). */
uint64_t kv_cache_bytes_for(enum kv_type type, int n_layer, int n_ctx, int n_head_kv,
			    int head_dim_k, int head_dim_v);

/* Row of one layer / KV head / position (not bounds checked: callers know). */
void *kv_cache_k(const struct kv_cache *kv, int layer, int head, int pos);
void *kv_cache_v(const struct kv_cache *kv, int layer, int head, int pos);

/* Write one position's keys/values for a layer: n_head_kv * head_dim floats each. */
void kv_cache_store(struct kv_cache *kv, int layer, int pos, const float *k, const float *v);

/* Keep positions 0 .. n-1 (prefix reuse); n larger than the current fill is an error. */
int kv_cache_truncate(struct kv_cache *kv, int n);

/*
 * Discard positions keep .. keep+n_discard-1 and move the rest down by
 * n_discard (memmove per layer and head).  Keys are NOT re-rotated here:
 * model_kv_shift() does that, since only the model knows its RoPE.
 */
int kv_cache_shift(struct kv_cache *kv, int keep, int n_discard);

const char *kv_type_name(enum kv_type t); /* "f16", "f32" */

#endif
