/* Rotary position embedding in place: normal and NEOX pairs, frequency factors, linear scaling. */

/*
 * The angle of pair i at position p is p * base^(-2i/n_rot), divided by
 * the pair's frequency factor (llama 3.1, LongRoPE) and multiplied by
 * freq_scale; cos and sin are multiplied by mscale (LongRoPE), as
 * llama.cpp computes it on the GPU (a power per pair; its CPU code uses a
 * running product, which differs in the last bits at large positions).
 */
#include "ops_internal.h"

#define ROPE_THREADS 64

__global__ void rope_kernel(float *x, size_t tok_stride, int head_dim, int n_rot, int neox,
			    float theta_scale, float freq_scale, float mscale, const float *ff,
			    int pos0, int pos_step)
{
	int t = blockIdx.x, h = blockIdx.y, half_rot = n_rot / 2;
	float *v = x + (size_t)t * tok_stride + (size_t)h * head_dim;
	float pos = (float)(pos0 + t * pos_step);
	for (int i = threadIdx.x; i < half_rot; i += ROPE_THREADS) {
		float theta = pos * powf(theta_scale, (float)i);
		if (ff)
			theta /= ff[i];
		theta *= freq_scale;
		float cs = cosf(theta) * mscale, sn = sinf(theta) * mscale;
		int ia = neox ? i : 2 * i, ib = neox ? i + half_rot : 2 * i + 1;
		float a = v[ia], b = v[ib];
		v[ia] = a * cs - b * sn;
		v[ib] = a * sn + b * cs;
	}
}

int cuda_rope(struct cuda_ctx *c, const struct cuda_rope_params *r, float *x, size_t tok_stride,
	      int ntok, int n_head, int head_dim, int pos0, int pos_step)
{
	if (ntok <= 0 || n_head <= 0 || n_head > 65535 || head_dim <= 0 ||
	    tok_stride < (size_t)n_head * (size_t)head_dim)
		return ops_fail(c, "rope: bad shape (%d tokens of %d heads of %d, stride %zu)",
				ntok, n_head, head_dim, tok_stride);
	if (r->n_rot <= 0 || r->n_rot % 2 || r->n_rot > head_dim)
		return ops_fail(c, "rope: %d rotated dimensions do not fit heads of %d", r->n_rot,
				head_dim);
	float theta_scale = powf(r->base, -2.0f / (float)r->n_rot);
	dim3 grid((unsigned)ntok, (unsigned)n_head);
	float mscale = r->mscale > 0.0f ? r->mscale : 1.0f;
	PV_LAUNCH(rope_kernel, grid, ROPE_THREADS, 0, c->stream, x, tok_stride, head_dim, r->n_rot,
		  r->neox, theta_scale, r->freq_scale, mscale, r->freq_factors, pos0, pos_step);
	return ops_launched(c, "rope");
}
