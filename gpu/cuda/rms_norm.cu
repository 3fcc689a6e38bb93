/* RMS norm over rows, with the residual add that precedes it fused in. */
#include "ops_internal.h"

#define NORM_THREADS 256

/* One block per row; each thread keeps to the same elements in both passes,
 * so the x it updated is the x it reads back. */
__global__ void rms_norm_kernel(float *out, float *x, const float *add, const float *w, int n,
				float eps)
{
	size_t base = (size_t)blockIdx.x * n;
	float ss = 0.0f;
	for (int i = threadIdx.x; i < n; i += NORM_THREADS) {
		float v = x[base + i];
		if (add) {
			v += add[base + i];
			x[base + i] = v;
		}
		ss += v * v;
	}
	ss = block_sum(ss);
	float scale = rsqrtf(ss / (float)n + eps);
	for (int i = threadIdx.x; i < n; i += NORM_THREADS)
		out[base + i] = x[base + i] * scale * (w ? w[i] : 1.0f);
}

int cuda_rms_norm(struct cuda_ctx *c, float *out, float *x, const float *add, const float *w,
		  int rows, int n, float eps)
{
	if (rows <= 0 || n <= 0)
		return ops_fail(c, "rms_norm: bad shape (%d rows of %d)", rows, n);
	PV_LAUNCH(rms_norm_kernel, (unsigned)rows, NORM_THREADS, 0, c->stream, out, x, add, w, n,
		  eps);
	return ops_launched(c, "rms_norm");
}
