/* Gated activations of the feed-forward block: SiLU(gate) * up and GELU(gate) * up. */
#include "ops_internal.h"

#define GLU_THREADS 256

template <int ACT>
__global__ void glu_kernel(float *out, const float *gate, const float *up, size_t in_stride,
			   int rows, int n)
{
	int64_t total = (int64_t)rows * n;
	for (int64_t i = (int64_t)blockIdx.x * GLU_THREADS + threadIdx.x; i < total;
	     i += (int64_t)gridDim.x * GLU_THREADS) {
		int64_t r = i / n, col = i % n;
		float g = gate[r * in_stride + col], a;
		if (ACT == CUDA_ACT_SILU)
			a = g / (1.0f + expf(-g));
		else /* tanh approximation, as llama.cpp's ggml_gelu */
			a = 0.5f * g *
			    (1.0f + tanhf(0.7978845608028654f * g * (1.0f + 0.044715f * g * g)));
		out[i] = a * up[r * in_stride + col];
	}
}

int cuda_glu(struct cuda_ctx *c, enum cuda_act act, float *out, const float *gate, const float *up,
	     size_t in_stride, int rows, int n)
{
	if (rows <= 0 || n <= 0 || in_stride < (size_t)n)
		return ops_fail(c, "glu: bad shape (%d rows of %d, stride %zu)", rows, n,
				in_stride);
	unsigned blocks = ops_blocks((int64_t)rows * n, GLU_THREADS);
	if (blocks > 65535)
		blocks = 65535;
	if (act == CUDA_ACT_SILU)
		PV_LAUNCH(glu_kernel<CUDA_ACT_SILU>, blocks, GLU_THREADS, 0, c->stream, out, gate,
			  up, in_stride, rows, n);
	else if (act == CUDA_ACT_GELU)
		PV_LAUNCH(glu_kernel<CUDA_ACT_GELU>, blocks, GLU_THREADS, 0, c->stream, out, gate,
			  up, in_stride, rows, n);
	else
		return ops_fail(c, "glu: unknown activation %d", (int)act);
	return ops_launched(c, "glu");
}
