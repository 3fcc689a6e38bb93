/* What the two attention kernels share: their parameters and the logit transform. */
#ifndef PALAVER_GPU_ATTN_CUH
#define PALAVER_GPU_ATTN_CUH

#include "ops_internal.h"

/* struct cuda_attn minus what the kernels do not need, passed by value. */
struct attn_args {
	int n_head, n_head_kv, hd_k, hd_v, ctx_len, window;
	float scale, softcap;
	const float *sinks;
	int ring;
};

/* The cache cell of position p: p itself, or p modulo the ring's cells. */
__device__ __forceinline__ int attn_cell(const attn_args &a, int p)
{
	return a.ring ? p % a.ctx_len : p;
}

__device__ __forceinline__ float attn_logit(float dot, const attn_args &a)
{
	float l = dot * a.scale;
	if (a.softcap > 0.0f)
		l = a.softcap * tanhf(l / a.softcap);
	return l;
}

/* Checks shared by both entry points; fills *out. */
static inline int attn_setup(struct cuda_ctx *c, const struct cuda_attn *a, const char *what,
			     attn_args *out)
{
	if (a->n_head <= 0 || a->n_head_kv <= 0 || a->n_head % a->n_head_kv || a->n_head > 65535)
		return ops_fail(c, "%s: %d query heads cannot share %d KV heads", what, a->n_head,
				a->n_head_kv);
	if (a->head_dim_k <= 0 || a->head_dim_k > 256 || a->head_dim_v <= 0 || a->head_dim_v > 256)
		return ops_fail(c, "%s: head sizes %d/%d are outside 1..256", what, a->head_dim_k,
				a->head_dim_v);
	if (a->ctx_len <= 0)
		return ops_fail(c, "%s: the cache has %d cells", what, a->ctx_len);
	if (a->ring && (a->window <= 0 || a->window > a->ctx_len))
		return ops_fail(c,
				"%s: a ring of %d cells needs a sliding window of at most as many "
				"positions (window %d)",
				what, a->ctx_len, a->window);
	*out = attn_args{ a->n_head, a->n_head_kv, a->head_dim_k, a->head_dim_v, a->ctx_len,
			  a->window, a->scale,     a->softcap,    a->sinks,      a->ring };
	return 0;
}

#endif
