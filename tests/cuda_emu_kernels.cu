/* Kernels for test_cuda_emu: correct ones, and broken ones that the CUDA emulation must catch. */

/*
 * Built only against the emulation (never by nvcc).  emu_kernel_run(name,
 * ...) launches one of them on n floats of input (0, 1, 2, ...) and copies
 * out n floats of output; it returns -1 when the emulation (or the runtime
 * API) reported an error, whose sentence emu_kernel_error() returns.
 */
#include "common.cuh"

#include <stdio.h>
#include <string.h>

/* ---- shared memory: reductions with and without the barrier ---- */

__global__ void good_reduce(const float *in, float *out)
{
	PV_SHARED(float, s, 64);
	int t = threadIdx.x;
	s[t] = in[t];
	__syncthreads();
	for (int h = 32; h > 0; h /= 2) {
		if (t < h)
			s[t] = s[t] + s[t + h];
		__syncthreads();
	}
	out[t] = s[0];
}

/* the classic bug: no barrier between the steps of the tree */
__global__ void nosync_reduce(const float *in, float *out)
{
	PV_SHARED(float, s, 64);
	int t = threadIdx.x;
	s[t] = in[t];
	__syncthreads();
	for (int h = 32; h > 0; h /= 2)
		if (t < h)
			s[t] = s[t] + s[t + h];
	__syncthreads();
	out[t] = s[0];
}

/* shifts the array by one: thread 63 writes past the end */
__global__ void off_by_one(const float *in, float *out)
{
	PV_SHARED(float, s, 64);
	int t = threadIdx.x;
	s[t + 1] = in[t];
	__syncthreads();
	out[t] = t ? (float)s[t] : 0.0f;
}

/* a 2-D tile whose column index runs one past the row */
__global__ void off_by_one_2d(const float *in, float *out)
{
	PV_SHARED2(float, tile, 4, 16);
	int t = threadIdx.x, r = t / 16, c = t % 16;
	tile[r][c == 15 ? 16 : c] = in[t];
	__syncthreads();
	out[t] = tile[r][c];
}

__global__ void dyn_off_by_one(const float *in, float *out)
{
	PV_SHARED_DYN(float, s);
	int t = threadIdx.x;
	s[t] = in[t];
	__syncthreads();
	out[t] = s[t + 1]; /* the launch gives 64 floats */
}

/* half the block leaves before the barrier */
__global__ void barrier_after_exit(const float *in, float *out)
{
	PV_SHARED(float, s, 64);
	int t = threadIdx.x;
	if (t >= 32)
		return;
	s[t] = in[t];
	__syncthreads();
	out[t] = s[31 - t];
}

/* two barriers in the two arms of a branch */
__global__ void barrier_in_branches(const float *in, float *out)
{
	PV_SHARED(float, s, 64);
	int t = threadIdx.x;
	s[t] = in[t];
	if (t < 32)
		__syncthreads();
	else
		__syncthreads();
	out[t] = s[63 - t];
}

/* reads what nobody wrote */
__global__ void uninit_read(const float *in, float *out)
{
	PV_SHARED(float, s, 64);
	int t = threadIdx.x;
	if (t < 32)
		s[t] = in[t];
	__syncthreads();
	out[t] = s[63 - t];
}

/* pre-Volta warp-synchronous butterfly: lanes overwrite their slot while
 * their partner may not have read it yet (no __syncwarp) */
__global__ void warp_sync_missing(const float *in, float *out)
{
	PV_SHARED(float, s, 32);
	int t = threadIdx.x;
	float v = in[t];
	s[t] = v;
	__syncwarp();
	for (int o = 16; o > 0; o /= 2) {
		v += s[t ^ o];
		s[t] = v;
	}
	out[t] = v;
}

__global__ void warp_sync_good(const float *in, float *out)
{
	PV_SHARED(float, s, 32);
	int t = threadIdx.x;
	float v = in[t];
	s[t] = v;
	__syncwarp();
	for (int o = 16; o > 0; o /= 2) {
		v += s[t ^ o];
		__syncwarp();
		s[t] = v;
		__syncwarp();
	}
	out[t] = v;
}

/* ---- warp operations ---- */

__global__ void shfl_good(const float *in, float *out)
{
	int t = blockIdx.x * blockDim.x + threadIdx.x, lane = t % 32;
	float v = in[t];
	float down = __shfl_down_sync(PV_FULL_MASK, v, 3);
	float up = __shfl_up_sync(PV_FULL_MASK, v, 2, 8);
	float idx = __shfl_sync(PV_FULL_MASK, v, 5, 16);
	unsigned ball = __ballot_sync(PV_FULL_MASK, lane % 3 == 0);
	int all = __all_sync(PV_FULL_MASK, v >= 0.0f), any = __any_sync(PV_FULL_MASK, lane == 7);
	out[t] = down + 128.0f * up + 16384.0f * idx + (ball == 0x49249249u ? 0.5f : 0.0f) +
		 (all ? 0.25f : 0.0f) + (any ? 0.125f : 0.0f);
}

/* lanes 16.. leave; the rest shuffle with a mask naming all 32 */
__global__ void shfl_after_exit(const float *in, float *out)
{
	int t = threadIdx.x;
	if (t % 32 >= 16)
		return;
	out[t] = __shfl_xor_sync(PV_FULL_MASK, in[t], 1);
}

/* the mask names lanes 0..15, but lane 3 reads lane 19 */
__global__ void shfl_outside_mask(const float *in, float *out)
{
	int t = threadIdx.x;
	if (t % 32 < 16)
		out[t] = __shfl_xor_sync(0x0000ffffu, in[t], 16);
}

/* every lane passes a mask of lanes 0..15 */
__global__ void shfl_mask_excludes_caller(const float *in, float *out)
{
	int t = threadIdx.x;
	out[t] = __shfl_xor_sync(0x0000ffffu, in[t], 1);
}

/* two halves of the warp call different shuffles with the full mask */
__global__ void shfl_mixed_ops(const float *in, float *out)
{
	int t = threadIdx.x;
	if (t % 32 < 16)
		out[t] = __shfl_xor_sync(PV_FULL_MASK, in[t], 1);
	else
		out[t] = (float)__ballot_sync(PV_FULL_MASK, 1);
}

/* ---- global memory ---- */

/* block b reads what block b - 1 wrote: right only if blocks run in order */
__global__ void interblock_race(const float *in, float *out)
{
	int b = blockIdx.x;
	if (threadIdx.x == 0)
		out[b] = b == 0 ? in[0] : out[b - 1] + 1.0f;
}

__global__ void global_past_end(const float *in, float *out)
{
	int t = threadIdx.x;
	out[t + 193] = in[t]; /* out has 256 floats */
}

__global__ void atomic_count(const float *in, float *out)
{
	(void)in;
	atomicAdd(&out[0], 1.0f);
	atomicMax((int *)&out[1], (int)(blockIdx.x * blockDim.x + threadIdx.x));
}

/* ---- wmma ---- */

__global__ void wmma_good(const float *in, float *out)
{
	using namespace nvcuda;
	PV_SHARED(half, a, 256);
	PV_SHARED(half, b, 256);
	int lane = threadIdx.x;
	for (int i = lane; i < 256; i += 32) {
		a[i] = __float2half(in[i] / 64.0f);
		b[i] = __float2half((float)(i % 7) - 3.0f);
	}
	__syncwarp();
	wmma::fragment<wmma::matrix_a, 16, 16, 16, half, wmma::row_major> fa;
	wmma::fragment<wmma::matrix_b, 16, 16, 16, half, wmma::col_major> fb;
	wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
	wmma::fill_fragment(acc, 1.0f);
	wmma::load_matrix_sync(fa, &a[0], 16);
	wmma::load_matrix_sync(fb, &b[0], 16);
	wmma::mma_sync(acc, fa, fb, acc);
	wmma::store_matrix_sync(out, acc, 16, wmma::mem_row_major);
}

__global__ void wmma_half_warp(const float *in, float *out)
{
	using namespace nvcuda;
	wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
	if (threadIdx.x >= 16)
		return;
	wmma::load_matrix_sync(acc, in, 16, wmma::mem_row_major);
	wmma::store_matrix_sync(out, acc, 16, wmma::mem_row_major);
}

__global__ void wmma_misaligned(const float *in, float *out)
{
	using namespace nvcuda;
	wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
	wmma::load_matrix_sync(acc, in + 1, 16, wmma::mem_row_major);
	wmma::store_matrix_sync(out, acc, 16, wmma::mem_row_major);
}

/* ---- the runner ---- */

typedef void (*kernel_fn)(const float *, float *);

static const struct {
	const char *name;
	kernel_fn k;
	unsigned grid, block;
	size_t shmem;
} kernels[] = {
	{ "good_reduce", good_reduce, 1, 64, 0 },
	{ "nosync_reduce", nosync_reduce, 1, 64, 0 },
	{ "off_by_one", off_by_one, 1, 64, 0 },
	{ "off_by_one_2d", off_by_one_2d, 1, 64, 0 },
	{ "dyn_off_by_one", dyn_off_by_one, 1, 64, 64 * sizeof(float) },
	{ "barrier_after_exit", barrier_after_exit, 1, 64, 0 },
	{ "barrier_in_branches", barrier_in_branches, 1, 64, 0 },
	{ "uninit_read", uninit_read, 1, 64, 0 },
	{ "warp_sync_missing", warp_sync_missing, 1, 32, 0 },
	{ "warp_sync_good", warp_sync_good, 1, 32, 0 },
	{ "shfl_good", shfl_good, 2, 64, 0 },
	{ "shfl_after_exit", shfl_after_exit, 1, 64, 0 },
	{ "shfl_outside_mask", shfl_outside_mask, 1, 32, 0 },
	{ "shfl_mask_excludes_caller", shfl_mask_excludes_caller, 1, 32, 0 },
	{ "shfl_mixed_ops", shfl_mixed_ops, 1, 32, 0 },
	{ "interblock_race", interblock_race, 64, 32, 0 },
	{ "global_past_end", global_past_end, 1, 64, 0 },
	{ "atomic_count", atomic_count, 8, 64, 0 },
	{ "wmma_good", wmma_good, 1, 32, 0 },
	{ "wmma_half_warp", wmma_half_warp, 1, 32, 0 },
	{ "wmma_misaligned", wmma_misaligned, 1, 32, 0 },
	{ "bad_config", good_reduce, 1, 1025, 0 },
};

static char last_error[1024];

extern "C" const char *emu_kernel_error(void)
{
	return last_error;
}

static int check(cudaError_t e, const char *what)
{
	if (e == cudaSuccess)
		return 0;
	snprintf(last_error, sizeof(last_error), "%s: %s: %s", what, cudaGetErrorString(e),
		 pv_emu_error());
	cudaGetLastError();
	return -1;
}

extern "C" int emu_kernel_run(const char *name, unsigned seed, float *out, int n)
{
	float *din = nullptr, *dout = nullptr;
	int rc = -1;
	last_error[0] = 0;
	for (const auto &k : kernels) {
		if (strcmp(k.name, name))
			continue;
		float *in = new float[(size_t)n];
		for (int i = 0; i < n; i++)
			in[i] = (float)i;
		pv_emu_set_seed(seed);
		if (check(cudaMalloc((void **)&din, (size_t)n * 4), "cudaMalloc") == 0 &&
		    check(cudaMalloc((void **)&dout, (size_t)n * 4), "cudaMalloc") == 0 &&
		    check(cudaMemcpy(din, in, (size_t)n * 4, cudaMemcpyHostToDevice), "upload") ==
			    0 &&
		    check(cudaMemset(dout, 0, (size_t)n * 4), "memset") == 0) {
			/* PV_LAUNCH would name every kernel "k.k" in the messages */
			pv_emu::launch(k.name, k.k, dim3(k.grid), dim3(k.block), k.shmem, nullptr,
				       (const float *)din, dout);
			if (check(cudaGetLastError(), name) == 0 &&
			    check(cudaDeviceSynchronize(), name) == 0 &&
			    check(cudaMemcpy(out, dout, (size_t)n * 4, cudaMemcpyDeviceToHost),
				  "download") == 0)
				rc = 0;
		}
		cudaFree(din);
		cudaFree(dout);
		delete[] in;
		pv_emu_set_seed(0);
		return rc;
	}
	snprintf(last_error, sizeof(last_error), "no test kernel '%s'", name);
	return -1;
}
