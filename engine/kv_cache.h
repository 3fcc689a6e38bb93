/* The key/value cache of one sequence: F16 (default) or F32 keys and values per layer. */
#ifndef PALAVER_KV_CACHE_H
#define PALAVER_KV_CACHE_H

#include <stddef.h>
#include <stdint.h>

/*
 * The cache holds positions 0 .. n-1 (always a prefix: decode appends,
 * truncation and the context shift shorten it).  Per layer and per KV head
 * the cells are contiguous so that attention streams through memory:
 *	k: per layer (n_head_kv, cells, head_dim_k)
 *	v: per layer (n_head_kv, cells, head_dim_v)
 * Keys are stored after RoPE (rotated by their position).
 *
 * A full layer has n_ctx cells and cell p holds position p.  A layer with a
 * sliding window W (gemma2/3: a query at p sees only p-W+1 .. p) keeps a
 * ring of `ring` cells (at least W - 1 + the largest forward chunk): cell
 * p % ring holds position p, and pos[l][cell] says which position a cell
 * holds (-1: none), so that truncation and the shift know what is still
 * there.  A 128k-context Gemma 3 thus holds 128k positions only in its
 * global layers.
 *
 * Invariants: 0 <= n <= n_ctx; tokens[0..n-1] are the tokens whose K/V the
 * cells hold (for prefix reuse by the caller); in a ring layer every cell
 * tagged p >= 0 holds position p < n, and p >= n - ring.
 */

enum kv_type { KV_F16, KV_F32 };

/* The cache's shape: one KV geometry for all layers, windows per layer. */
struct kv_shape {
	int n_layer;
	int n_ctx; /* positions */
	int n_head_kv;
	int head_dim_k;
	int head_dim_v;
	const int *window; /* (n_layer) sliding window of each layer, 0 = full; NULL: all full */
	int ring;          /* cells of a windowed layer (ignored when none is) */
	int no_data;       /* bookkeeping only: k and v stay NULL (a device holds the data) */
};

struct kv_cache {
	enum kv_type type;
	int n_layer;
	int n_ctx; /* positions */
	int n_head_kv;
	int head_dim_k;
	int head_dim_v;
	int n;           /* positions in use: 0 .. n-1 */
	size_t elem;     /* bytes per element: 2 (F16) or 4 (F32) */
	int *cells;      /* (n_layer) cells of each layer: n_ctx, or the ring */
	int *window;     /* (n_layer) sliding window, 0 = full */
	size_t *off_k;   /* (n_layer) element offset of each layer's keys in k */
	size_t *off_v;   /* (n_layer) ... values in v */
	int32_t **pos;   /* (n_layer) position held by each cell of a ring layer; NULL if full */
	void *k;         /* keys, elements of `type`; NULL when a device holds them */
	void *v;         /* values; as k */
	int32_t *tokens; /* (n_ctx) token at each position */
	uint64_t bytes;  /* k + v bytes */
};

/* Allocate (overflow-checked); -1 with error() naming the size when it fails. */
int kv_cache_init_shape(struct kv_cache *kv, enum kv_type type, const struct kv_shape *s);
/* All layers full. */
int kv_cache_init(struct kv_cache *kv, enum kv_type type, int n_layer, int n_ctx, int n_head_kv,
		  int head_dim_k, int head_dim_v);
void kv_cache_free(struct kv_cache *kv);

/* Bytes that kv_cache_init_shape / kv_cache_init would allocate (0 on overflow). */
uint64_t kv_cache_bytes_shape(enum kv_type type, const struct kv_shape *s);
uint64_t kv_cache_bytes_for(enum kv_type type, int n_layer, int n_ctx, int n_head_kv,
			    int head_dim_k, int head_dim_v);

/* The cell of position pos in a layer. */
static inline int kv_cache_cell(const struct kv_cache *kv, int layer, int pos)
{
	return kv->pos[layer] ? pos % kv->cells[layer] : pos;
}

/* Row of one layer / KV head / position (not bounds checked: callers know). */
void *kv_cache_k(const struct kv_cache *kv, int layer, int head, int pos);
void *kv_cache_v(const struct kv_cache *kv, int layer, int head, int pos);

/* Write one position's keys/values for a layer: n_head_kv * head_dim floats each. */
void kv_cache_store(struct kv_cache *kv, int layer, int pos, const float *k, const float *v);
/* Record that a layer's cells now hold positions pos .. pos+n-1 (what
 * kv_cache_store records, for a cache whose data a device wrote). */
void kv_cache_tag(struct kv_cache *kv, int layer, int pos, int n);

/*
 * Keep positions 0 .. n-1 (prefix reuse).  Returns the positions kept: n,
 * or 0 when a sliding-window layer no longer holds the window that position
 * n needs (its ring has moved past it; everything is recomputed then); -1
 * if n is larger than the current fill.
 */
int kv_cache_truncate(struct kv_cache *kv, int n);

/*
 * Discard positions keep .. keep+n_discard-1 and move the rest down by
 * n_discard.  Keys are NOT re-rotated here: model_kv_shift() does that,
 * since only the model knows its RoPE.  In a ring layer only the positions
 * it still holds move (a kept position it no longer holds stays absent).
 * Without data (no_data) only the bookkeeping moves; kv_cache_shift_plan()
 * lists the cells a device must move, before this call.
 */
int kv_cache_shift(struct kv_cache *kv, int keep, int n_discard);

/* The cell moves of kv_cache_shift(keep, n_discard) in layer l: from[i]
 * to to[i] for i < the count returned (from and to hold kv->cells[l]
 * entries), by increasing position.  A device moves them reading every
 * row before writing any (a ring's moves may form cycles), or, in a full
 * layer, in consecutive batches of that kind.  The keys that move are the
 * ones to turn back by n_discard. */
int kv_cache_shift_plan(const struct kv_cache *kv, int l, int keep, int n_discard, int32_t *from,
			int32_t *to);

const char *kv_type_name(enum kv_type t); /* "f16", "f32" */

#endif
