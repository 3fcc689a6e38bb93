/* The CUDA kernels' C interface: context, device buffers, one function per operation. */

/*
 * Everything here is what an engine backend calls; it is plain C so that
 * engine/ can include it.  Conventions:
 *   - Functions return 0, or -1 after recording a message that
 *     cuda_error() returns (git style: lowercase, the subject in quotes).
 *     They never print and never exit.
 *   - Pointers named as device pointers are cuda_alloc() memory; "host"
 *     marks the few that are not.  Sizes and strides count elements
 *     (floats) unless they say bytes.
 *   - Operations are queued on the context's stream in call order;
 *     cuda_download(), cuda_sync(), cuda_argmax() and cuda_topk() wait for
 *     what was queued before them.  A kernel failure may therefore be
 *     reported by a later call.
 *   - Weight types are engine/quant.h's ids (GGUF numbering) in their block
 *     layouts: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K,
 *     Q4_K, Q5_K, Q6_K (cuda_type_supported()).
 */
#ifndef PALAVER_CUDA_OPS_H
#define PALAVER_CUDA_OPS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct cuda_ctx;
struct cuda_attn;

/* ---- devices, contexts, memory ---- */

/* Devices present (0 when there are none or the driver cannot say). */
int cuda_device_count(void);
/* A context on `device`, with its own stream; NULL with the reason in err. */
struct cuda_ctx *cuda_open(int device, char *err, size_t err_size);
void cuda_close(struct cuda_ctx *c);
/* The last failure's message ("" if none). */
const char *cuda_error(const struct cuda_ctx *c);
/* The device's name, e.g. "NVIDIA H100 80GB HBM3". */
const char *cuda_device_name(const struct cuda_ctx *c);
int cuda_mem_info(struct cuda_ctx *c, size_t *free_bytes, size_t *total_bytes);

/* Device memory for `what` (named in the message when it does not fit). */
void *cuda_alloc(struct cuda_ctx *c, size_t bytes, const char *what);
void cuda_free(struct cuda_ctx *c, void *p);
int cuda_upload(struct cuda_ctx *c, void *dst, const void *host_src, size_t bytes);
int cuda_download(struct cuda_ctx *c, void *host_dst, const void *src, size_t bytes);
int cuda_memset(struct cuda_ctx *c, void *dst, int byte, size_t bytes);
int cuda_sync(struct cuda_ctx *c);
/* Grows the context's scratch (attention partials, token ids, rows being
 * moved) to at least `bytes` now, so that later operations up to that size
 * allocate nothing. */
int cuda_reserve(struct cuda_ctx *c, size_t bytes);
/* Scratch bytes that cuda_attn_decode needs at position pos. */
size_t cuda_attn_decode_scratch(const struct cuda_attn *a, int pos);

/* ---- matrix products: y[t][r] = dot(weight row r, x[t]) ---- */

/* 1 if the weight kernels take this type. */
int cuda_type_supported(int type);
/* 1 if they take rows of n elements of it (whole blocks). */
int cuda_rows_supported(int type, int64_t n);

/* One warp per weight row and token: for decode (ntok of 1 or a few).
 * w: nrows rows of n elements, row_bytes apart; x: ntok rows x_stride
 * apart; y: ntok rows y_stride apart.  n must be a multiple of the type's
 * block (any length for the float types). */
int cuda_matvec(struct cuda_ctx *c, int type, const void *w, size_t row_bytes, int nrows, int64_t n,
		const float *x, size_t x_stride, int ntok, float *y, size_t y_stride);
/* The tiled kernel for prefill: 64 rows x 64 tokens per block, tensor
 * cores (F16 products, F32 sums; BF16 for BF16 weights) for every type but
 * F32, which is multiplied in F32.  n must be a multiple of 32. */
int cuda_matmul_tiled(struct cuda_ctx *c, int type, const void *w, size_t row_bytes, int nrows,
		      int64_t n, const float *x, size_t x_stride, int ntok, float *y,
		      size_t y_stride);
/* Either of the above, whichever suits the shape. */
int cuda_matmul(struct cuda_ctx *c, int type, const void *w, size_t row_bytes, int nrows, int64_t n,
		const float *x, size_t x_stride, int ntok, float *y, size_t y_stride);

/* ---- norms ---- */

/* For each of rows rows of n: when add is not NULL, x += add first (x is
 * updated: the residual stream); then out = x / rms(x) * w (w NULL: 1).
 * out may be x. */
int cuda_rms_norm(struct cuda_ctx *c, float *out, float *x, const float *add, const float *w,
		  int rows, int n, float eps);
/* Per-head RMS norm in place (q/k norm): rows of n_head heads of head_dim,
 * row_stride apart; w (head_dim) is shared by the heads. */
int cuda_head_norm(struct cuda_ctx *c, float *x, size_t row_stride, int rows, int n_head,
		   int head_dim, const float *w, float eps);

/* ---- rotary position embedding ---- */

struct cuda_rope_params {
	int n_rot;                 /* rotated dimensions (even, <= head_dim) */
	int neox;                  /* pairs (i, i + n_rot/2) instead of (2i, 2i+1) */
	float base;                /* theta base, e.g. 10000 */
	float freq_scale;          /* linear scaling: 1 / factor */
	float mscale;              /* cos and sin times this (LongRoPE); 0 or 1: none */
	const float *freq_factors; /* device, n_rot/2 divisors of the angles, or NULL */
};
/* In place on ntok rows (tok_stride apart) of n_head heads of head_dim;
 * row t is at position pos0 + t * pos_step (pos_step 0 rotates every row
 * by pos0: the KV-cache shift). */
int cuda_rope(struct cuda_ctx *c, const struct cuda_rope_params *r, float *x, size_t tok_stride,
	      int ntok, int n_head, int head_dim, int pos0, int pos_step);
/* Turns n cached key rows (cells host_cells[i], every head; F16 bits or
 * F32) in place by position pos (the context shift; mscale is not applied:
 * it was when the keys were stored). */
int cuda_kv_rope(struct cuda_ctx *c, const struct cuda_rope_params *r, void *cache, int f16,
		 int cells, int n_head_kv, int head_dim, const int32_t *host_cells, int n, int pos);

/* ---- KV cache and attention ----
 * A cache tensor (K or V of one layer) is n_head_kv x cells x head_dim,
 * F16 bits or F32.  A full layer's cell p holds position p; a ring (a
 * sliding-window layer's cache, engine/kv_cache.h) holds position p in
 * cell p % cells. */

/* Stores ntok rows (tok_stride apart) of n_head_kv heads of head_dim at
 * positions pos0 .. pos0 + ntok - 1 (ring: 1 for a ring). */
int cuda_kv_write(struct cuda_ctx *c, void *cache, int f16, int cells, int ring, int n_head_kv,
		  int head_dim, const float *src, size_t tok_stride, int ntok, int pos0);
/* Moves n rows (every head): cell host_cells[i] to cell host_cells[n + i],
 * all read before any is written, so the two lists may overlap. */
int cuda_kv_move(struct cuda_ctx *c, void *cache, int f16, int cells, int n_head_kv, int head_dim,
		 const int32_t *host_cells, int n);
struct cuda_attn {
	int n_head, n_head_kv;      /* query heads; n_head is a multiple of n_head_kv */
	int head_dim_k, head_dim_v; /* up to 256 each */
	int ctx_len;                /* cache cells per KV head */
	int kv_f16;                 /* the cache holds F16 (else F32) */
	float scale;                /* logits = scale * q.k, usually 1/sqrt(head_dim_k) */
	float softcap;              /* > 0: logits = softcap * tanh(logits / softcap) */
	int window;                 /* > 0: attend to the last `window` positions only */
	const float *sinks;         /* device, n_head extra logits (no value), or NULL */
	int ring;                   /* the cache is a ring (needs a window of at most ctx_len) */
};
/* One token at position pos (the cache holds positions 0..pos, or the
 * window's in a ring): q is
 * n_head x head_dim_k, out n_head x head_dim_v.  Split over the KV length,
 * then merged. */
int cuda_attn_decode(struct cuda_ctx *c, const struct cuda_attn *a, float *out, const float *q,
		     const void *k, const void *v, int pos);
/* ntok tokens at positions pos0 ..; causal; q rows q_stride apart, out rows
 * out_stride apart.  Tiled with an online softmax. */
int cuda_attn_prefill(struct cuda_ctx *c, const struct cuda_attn *a, float *out, size_t out_stride,
		      const float *q, size_t q_stride, const void *k, const void *v, int ntok,
		      int pos0);

/* ---- element-wise ---- */

enum cuda_act { CUDA_ACT_SILU, CUDA_ACT_GELU };
/* out[r][i] = act(gate[r][i]) * up[r][i]; gate and up rows in_stride apart
 * (phi3's fused gate+up: up = gate + n, in_stride = 2n), out rows n apart.
 * GELU is the tanh approximation. */
int cuda_glu(struct cuda_ctx *c, enum cuda_act act, float *out, const float *gate, const float *up,
	     size_t in_stride, int rows, int n);
/* out = a + b (out may be a or b). */
int cuda_add(struct cuda_ctx *c, float *out, const float *a, const float *b, int64_t n);
/* x[r] += v for each of rows rows (stride apart) of n: biases. */
int cuda_add_rows(struct cuda_ctx *c, float *x, size_t stride, const float *v, int rows, int n);
int cuda_scale(struct cuda_ctx *c, float *x, float s, int64_t n);
/* x = cap * tanh(x / cap): final-logit soft-capping. */
int cuda_softcap(struct cuda_ctx *c, float *x, float cap, int64_t n);

/* out[t] = row tokens[t] of an n_vocab x n table (any weight type),
 * dequantized; token ids are checked here.  host_tokens is copied before
 * the call returns when it is ordinary (pageable) memory. */
int cuda_embed(struct cuda_ctx *c, int type, const void *table, size_t row_bytes, int n_vocab,
	       int64_t n, const int32_t *host_tokens, int ntok, float *out, size_t out_stride);

/* ---- sampling ---- */

/* The index of the largest logit (the first of equals; NaN never wins; 0
 * when all are NaN or -inf), as the CPU sampler's greedy path. */
int cuda_argmax(struct cuda_ctx *c, const float *logits, int n, int32_t *host_out);
/* The k largest logits, largest first, equal values by lower index;
 * 1 <= k <= min(n, 1024). */
int cuda_topk(struct cuda_ctx *c, const float *logits, int n, int k, int32_t *host_ids,
	      float *host_vals);

#ifdef __cplusplus
}
#endif

#endif
