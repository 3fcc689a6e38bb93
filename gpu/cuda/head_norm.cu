/* Per-head RMS norm in place (qwen3 / gemma3 q and k norms): one warp per head. */
#include "ops_internal.h"

#define HN_WARPS 8

__global__ void head_norm_kernel(float *x, size_t row_stride, int n_head, int head_dim,
				 int64_t heads, const float *w, float eps)
{
	int lane = threadIdx.x % 32;
	int64_t h = (int64_t)blockIdx.x * HN_WARPS + threadIdx.x / 32;
	if (h >= heads)
		return; /* whole warps only */
	float *v = x + (size_t)(h / n_head) * row_stride + (size_t)(h % n_head) * head_dim;
	float ss = 0.0f;
	for (int i = lane; i < head_dim; i += 32)
		ss += v[i] * v[i];
	float scale = rsqrtf(warp_sum(ss) / (float)head_dim + eps);
	for (int i = lane; i < head_dim; i += 32)
		v[i] = v[i] * scale * (w ? w[i] : 1.0f);
}

int cuda_head_norm(struct cuda_ctx *c, float *x, size_t row_stride, int rows, int n_head,
		   int head_dim, const float *w, float eps)
{
	int64_t heads = (int64_t)rows * n_head;
	if (rows <= 0 || n_head <= 0 || head_dim <= 0 ||
	    row_stride < (size_t)n_head * (size_t)head_dim)
		return ops_fail(c, "head_norm: bad shape (%d rows of %d heads of %d, stride %zu)",
				rows, n_head, head_dim, row_stride);
	PV_LAUNCH(head_norm_kernel, ops_blocks(heads, HN_WARPS), HN_WARPS * 32, 0, c->stream, x,
		  row_stride, n_head, head_dim, heads, w, eps);
	return ops_launched(c, "head_norm");
}
