/* Tiled matrix product for prefill: 64 rows x 64 tokens a block, tensor cores except for F32. */

/*
 * Each step of 32 along the row dequantizes a 64 x 32 weight tile and
 * converts a 64 x 32 activation tile into shared memory, then four warps
 * each multiply a 32 x 32 corner of the output with 16 x 16 x 16 wmma
 * products (F16 inputs, or BF16 for BF16 weights, whose range F16 lacks;
 * F32 sums).  The output tile is staged through shared memory so that
 * partial tiles at the matrix edges are written with plain guarded stores.
 * F32 weights keep F32 precision (the conformance tolerance for F32 models
 * is 1e-4, below F16 rounding): a SIMT kernel with the same tiling, each
 * thread 4 rows x 8 tokens.  Under emulation the wmma calls run in the
 * emulated fragments (emu/wmma_emu.h), so the same kernel is tested.
 * Activations converted to F16 must stay below 65504 in magnitude, as in
 * llama.cpp's F16 cuBLAS path.
 */
#include "dequant.cuh"
#include "ops_internal.h"

#define MM_BM 64 /* weight rows per block */
#define MM_BN 64 /* tokens per block */
#define MM_BK 32 /* elements along the row per step */
#define MM_THREADS 128
#define MM_LDH (MM_BK + 8) /* 16-bit elements per tile row: 80 bytes, a multiple of 16 */
#define MM_LDC (MM_BM + 4) /* floats per row of the staged output */

template <class H> __device__ __forceinline__ H to_h(float f);
template <> __device__ __forceinline__ half to_h<half>(float f)
{
	return __float2half(f);
}
template <> __device__ __forceinline__ __nv_bfloat16 to_h<__nv_bfloat16>(float f)
{
	return __float2bfloat16(f);
}

/* The 16-bit type the tensor cores take for weights of type T. */
template <int T> struct tc_type {
	typedef half type;
};
template <> struct tc_type<QT_BF16> {
	typedef __nv_bfloat16 type;
};

template <int T>
__global__ void __launch_bounds__(MM_THREADS)
	matmul_tc(const uint8_t *w, size_t row_bytes, int nrows, int n, const float *x,
		  size_t x_stride, int ntok, float *y, size_t y_stride)
{
	using namespace nvcuda;
	typedef typename tc_type<T>::type H;
	PV_SHARED2(H, sw, MM_BM, MM_LDH);     /* [row][k] */
	PV_SHARED2(H, sx, MM_BN, MM_LDH);     /* [token][k] */
	PV_SHARED2(float, sc, MM_BN, MM_LDC); /* [token][row] */
	int tid = threadIdx.x, warp = tid / 32;
	int r0 = blockIdx.x * MM_BM, t0 = blockIdx.y * MM_BN;
	int wr = (warp / 2) * 32, wt = (warp % 2) * 32; /* this warp's corner */
	wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[2][2];
	for (int i = 0; i < 2; i++)
		for (int j = 0; j < 2; j++)
			wmma::fill_fragment(acc[i][j], 0.0f);

	for (int k0 = 0; k0 < n; k0 += MM_BK) {
		for (int i = tid; i < MM_BM * (MM_BK / 8); i += MM_THREADS) {
			int r = i / (MM_BK / 8), ch = i % (MM_BK / 8);
			float v[8];
			if (r0 + r < nrows)
				dequant8<T>(w + (size_t)(r0 + r) * row_bytes, k0 / 8 + ch, v);
			else
				for (int e = 0; e < 8; e++)
					v[e] = 0.0f;
			for (int e = 0; e < 8; e++)
				sw[r][ch * 8 + e] = to_h<H>(v[e]);
		}
		for (int i = tid; i < MM_BN * MM_BK; i += MM_THREADS) {
			int t = i / MM_BK, kk = i % MM_BK;
			float v = t0 + t < ntok ? x[(size_t)(t0 + t) * x_stride + k0 + kk] : 0.0f;
			sx[t][kk] = to_h<H>(v);
		}
		__syncthreads();
		for (int kk = 0; kk < MM_BK; kk += 16) {
			wmma::fragment<wmma::matrix_a, 16, 16, 16, H, wmma::row_major> a[2];
			wmma::fragment<wmma::matrix_b, 16, 16, 16, H, wmma::col_major> b[2];
			for (int i = 0; i < 2; i++)
				wmma::load_matrix_sync(a[i], &sw[wr + 16 * i][kk], MM_LDH);
			for (int j = 0; j < 2; j++)
				wmma::load_matrix_sync(b[j], &sx[wt + 16 * j][kk], MM_LDH);
			for (int i = 0; i < 2; i++)
				for (int j = 0; j < 2; j++)
					wmma::mma_sync(acc[i][j], a[i], b[j], acc[i][j]);
		}
		__syncthreads(); /* the tiles are rewritten next step */
	}
	for (int i = 0; i < 2; i++)
		for (int j = 0; j < 2; j++)
			wmma::store_matrix_sync(&sc[wt + 16 * j][wr + 16 * i], acc[i][j], MM_LDC,
						wmma::mem_col_major);
	__syncthreads();
	for (int i = tid; i < MM_BM * MM_BN; i += MM_THREADS) {
		int t = i / MM_BM, r = i % MM_BM;
		if (t0 + t < ntok && r0 + r < nrows)
			y[(size_t)(t0 + t) * y_stride + r0 + r] = sc[t][r];
	}
}

__global__ void __launch_bounds__(MM_THREADS)
	matmul_f32(const float *w, size_t row_floats, int nrows, int n, const float *x,
		   size_t x_stride, int ntok, float *y, size_t y_stride)
{
	PV_SHARED2(float, sw, MM_BK, MM_BM + 1); /* [k][row] */
	PV_SHARED2(float, sx, MM_BK, MM_BN + 1); /* [k][token] */
	int tid = threadIdx.x, tr = (tid % 16) * 4, tt = (tid / 16) * 8;
	int r0 = blockIdx.x * MM_BM, t0 = blockIdx.y * MM_BN;
	float acc[4][8];
	for (int i = 0; i < 4; i++)
		for (int j = 0; j < 8; j++)
			acc[i][j] = 0.0f;
	for (int k0 = 0; k0 < n; k0 += MM_BK) {
		for (int i = tid; i < MM_BM * MM_BK; i += MM_THREADS) {
			int r = i / MM_BK, kk = i % MM_BK;
			sw[kk][r] =
				r0 + r < nrows ? w[(size_t)(r0 + r) * row_floats + k0 + kk] : 0.0f;
		}
		for (int i = tid; i < MM_BN * MM_BK; i += MM_THREADS) {
			int t = i / MM_BK, kk = i % MM_BK;
			sx[kk][t] = t0 + t < ntok ? x[(size_t)(t0 + t) * x_stride + k0 + kk] : 0.0f;
		}
		__syncthreads();
		for (int kk = 0; kk < MM_BK; kk++) {
			float a[4], b[8];
			for (int i = 0; i < 4; i++)
				a[i] = sw[kk][tr + i];
			for (int j = 0; j < 8; j++)
				b[j] = sx[kk][tt + j];
			for (int i = 0; i < 4; i++)
				for (int j = 0; j < 8; j++)
					acc[i][j] += a[i] * b[j];
		}
		__syncthreads();
	}
	for (int i = 0; i < 4; i++)
		for (int j = 0; j < 8; j++)
			if (t0 + tt + j < ntok && r0 + tr + i < nrows)
				y[(size_t)(t0 + tt + j) * y_stride + r0 + tr + i] = acc[i][j];
}

template <int T> struct matmul_run {
	static int run(struct cuda_ctx *c, const void *w, size_t row_bytes, int nrows, int64_t n,
		       const float *x, size_t x_stride, int ntok, float *y, size_t y_stride)
	{
		dim3 grid(ops_blocks(nrows, MM_BM), ops_blocks(ntok, MM_BN));
		if constexpr (T == QT_F32)
			PV_LAUNCH(matmul_f32, grid, MM_THREADS, 0, c->stream, (const float *)w,
				  row_bytes / 4, nrows, (int)n, x, x_stride, ntok, y, y_stride);
		else
			PV_LAUNCH(matmul_tc<T>, grid, MM_THREADS, 0, c->stream, (const uint8_t *)w,
				  row_bytes, nrows, (int)n, x, x_stride, ntok, y, y_stride);
		return ops_launched(c, "matmul");
	}
};

int cuda_matmul_tiled(struct cuda_ctx *c, int type, const void *w, size_t row_bytes, int nrows,
		      int64_t n, const float *x, size_t x_stride, int ntok, float *y,
		      size_t y_stride)
{
	if (nrows <= 0 || ntok <= 0 || ops_blocks(ntok, MM_BN) > 65535)
		return ops_fail(c, "matmul: bad shape (%d rows, %d tokens)", nrows, ntok);
	if (ops_check_rows(c, "matmul", type, w, n, row_bytes) < 0)
		return -1;
	if (n % MM_BK || n > 0x7fffffff)
		return ops_fail(c, "matmul: rows of %lld elements are not a multiple of %d",
				(long long)n, MM_BK);
	return ops_by_type<matmul_run>(type, c, w, row_bytes, nrows, n, x, x_stride, ntok, y,
				       y_stride);
}

/* Below this many tokens the matrix-vector kernel, which reads the weights
 * once per token from L2, beats the tiles' set-up (a guess until measured
 * on a GPU). */
#define MM_MIN_TOKENS 4

int cuda_matmul(struct cuda_ctx *c, int type, const void *w, size_t row_bytes, int nrows, int64_t n,
		const float *x, size_t x_stride, int ntok, float *y, size_t y_stride)
{
	if (ntok < MM_MIN_TOKENS || n % MM_BK)
		return cuda_matvec(c, type, w, row_bytes, nrows, n, x, x_stride, ntok, y, y_stride);
	return cuda_matmul_tiled(c, type, w, row_bytes, nrows, n, x, x_stride, ntok, y, y_stride);
}
