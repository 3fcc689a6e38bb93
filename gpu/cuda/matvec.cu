/* Quantized matrix-vector product for decode: one warp per weight row and token. */

/*
 * The lanes of a warp take consecutive chunks of eight elements of the row
 * (lane l: chunks l, l + 32, ...), so a warp reads a contiguous stretch of
 * the row per step: one Q4_K block, eight Q4_0 blocks.  Each output is one
 * warp's sum in a fixed order, so results do not depend on scheduling.
 * Weights are dequantized to float and multiplied with float activations:
 * no activation quantization, so no error beyond float rounding.
 */
#include "dequant.cuh"
#include "ops_internal.h"

#define MV_WARPS 8 /* rows per block */

template <int T>
__global__ void matvec_kernel(const uint8_t *w, size_t row_bytes, int nrows, int64_t n,
			      const float *x, size_t x_stride, float *y, size_t y_stride)
{
	int64_t nchunks = n / 8;
	int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
	int r = blockIdx.x * MV_WARPS + warp, t = blockIdx.y;
	if (r >= nrows)
		return; /* the whole warp: no lane is left waiting at the reduction */
	const uint8_t *row = w + (size_t)r * row_bytes;
	const float *xt = x + (size_t)t * x_stride;
	float sum = 0.0f;
	for (int64_t c = lane; c < nchunks; c += 32) {
		float v[8];
		dequant8<T>(row, c, v);
		const float *xc = xt + 8 * c;
		for (int i = 0; i < 8; i++)
			sum += v[i] * xc[i];
	}
	if (qtype<T>::elems == 1) /* a float type's tail */
		for (int64_t i = 8 * nchunks + lane; i < n; i += 32)
			sum += dequant1<T>(row, i) * xt[i];
	sum = warp_sum(sum);
	if (lane == 0)
		y[(size_t)t * y_stride + r] = sum;
}

template <int T> struct matvec_run {
	static int run(struct cuda_ctx *c, const void *w, size_t row_bytes, int nrows, int64_t n,
		       const float *x, size_t x_stride, int ntok, float *y, size_t y_stride)
	{
		dim3 grid(ops_blocks(nrows, MV_WARPS), (unsigned)ntok);
		PV_LAUNCH(matvec_kernel<T>, grid, MV_WARPS * 32, 0, c->stream, (const uint8_t *)w,
			  row_bytes, nrows, n, x, x_stride, y, y_stride);
		return ops_launched(c, "matvec");
	}
};

int cuda_matvec(struct cuda_ctx *c, int type, const void *w, size_t row_bytes, int nrows, int64_t n,
		const float *x, size_t x_stride, int ntok, float *y, size_t y_stride)
{
	if (nrows <= 0 || ntok <= 0 || ntok > 65535)
		return ops_fail(c, "matvec: bad shape (%d rows, %d tokens)", nrows, ntok);
	if (ops_check_rows(c, "matvec", type, w, n, row_bytes) < 0)
		return -1;
	return ops_by_type<matvec_run>(type, c, w, row_bytes, nrows, n, x, x_stride, ntok, y,
				       y_stride);
}
