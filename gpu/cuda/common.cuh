/* Included first by every kernel file: CUDA or its emulation, the shared macros and reductions. */

/*
 * The same source compiles with nvcc (the real backend, `make CUDA=1`) and
 * with the host C++ compiler against emu/cuda_emu.h (the tests).  The few
 * places where the two differ in syntax are macros here:
 *   PV_LAUNCH(kernel, grid, block, shmem, stream, args...)  kernel<<<...>>>(args...)
 *   PV_SHARED(T, name, n) / PV_SHARED2(T, name, rows, cols)  a __shared__ array
 *   PV_SHARED_DYN(T, name)  the dynamic shared memory as T *
 *   PV_SPTR(T)  the type of a pointer into shared memory
 * Kernels use nothing else that is specific to either build.
 */
#ifndef PALAVER_GPU_COMMON_CUH
#define PALAVER_GPU_COMMON_CUH

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#if defined(__CUDACC__)
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <mma.h>

#define PV_LAUNCH(kernel, grid, block, shmem, stream, ...)                                         \
	kernel<<<(grid), (block), (shmem), (stream)>>>(__VA_ARGS__)
#define PV_SHARED(T, name, n) __shared__ __align__(128) T name[n]
#define PV_SHARED2(T, name, rows, cols) __shared__ __align__(128) T name[rows][cols]
#define PV_SHARED_DYN(T, name)                                                                     \
	extern __shared__ __align__(128) unsigned char pv_dyn_smem[];                              \
	T *name = (T *)pv_dyn_smem
#define PV_SPTR(T) T *

#else
#include "emu/cuda_emu.h"

#define PV_LAUNCH(kernel, grid, block, shmem, stream, ...)                                         \
	::pv_emu::launch(#kernel, kernel, ::pv_emu::to_dim3(grid), ::pv_emu::to_dim3(block),       \
			 (shmem), (stream), __VA_ARGS__)
#define PV_SHARED(T, name, n)                                                                      \
	static ::pv_emu::site pv_site_##name;                                                      \
	const ::pv_emu::sarray<T> name = ::pv_emu::make_shared<T>(&pv_site_##name, #name, (n))
#define PV_SHARED2(T, name, rows, cols)                                                            \
	static ::pv_emu::site pv_site_##name;                                                      \
	const ::pv_emu::sarray2<T> name =                                                          \
		::pv_emu::make_shared2<T>(&pv_site_##name, #name, (rows), (cols))
#define PV_SHARED_DYN(T, name) const ::pv_emu::sptr<T> name = ::pv_emu::make_shared_dyn<T>(#name)
#define PV_SPTR(T) ::pv_emu::sptr<T>
#endif

/* engine/quant.h is C11: its _Static_asserts read as C++ static_asserts here,
 * and its function quant_traits() is named like its struct, which C++ warns of. */
#define _Static_assert static_assert
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wshadow"
extern "C" {
#include "quant.h"
}
#pragma GCC diagnostic pop
#undef _Static_assert

#define PV_INF INFINITY
#define PV_FULL_MASK 0xffffffffu

__device__ __forceinline__ float pv_h2f(uint16_t h)
{
#if defined(__CUDACC__)
	return __half2float(__ushort_as_half(h));
#else
	return pv_emu::f16_to_f32(h);
#endif
}

__device__ __forceinline__ uint16_t pv_f2h(float f)
{
#if defined(__CUDACC__)
	return __half_as_ushort(__float2half_rn(f));
#else
	return pv_emu::f32_to_f16(f);
#endif
}

__device__ __forceinline__ float pv_bf2f(uint16_t h)
{
	return __uint_as_float((unsigned)h << 16);
}

/* Loads of a KV-cache element stored as float or as F16 bits. */
__device__ __forceinline__ float pv_load(const float *p)
{
	return *p;
}
__device__ __forceinline__ float pv_load(const uint16_t *p)
{
	return pv_h2f(*p);
}
__device__ __forceinline__ void pv_store(float *p, float v)
{
	*p = v;
}
__device__ __forceinline__ void pv_store(uint16_t *p, float v)
{
	*p = pv_f2h(v);
}

/* Sum / max over the 32 lanes of a full warp; every lane gets the result, the
 * same bits in every lane (the butterfly adds the same pairs everywhere). */
__device__ __forceinline__ float warp_sum(float v)
{
	for (int o = 16; o > 0; o >>= 1)
		v += __shfl_xor_sync(PV_FULL_MASK, v, o);
	return v;
}

__device__ __forceinline__ float warp_max(float v)
{
	for (int o = 16; o > 0; o >>= 1)
		v = fmaxf(v, __shfl_xor_sync(PV_FULL_MASK, v, o));
	return v;
}

/* Sum over a block whose size is a multiple of 32 (up to 1024); every thread
 * gets the same result.  Starts with a barrier so that it may be called
 * again at once (the previous call's readers are done with the scratch). */
__device__ __forceinline__ float block_sum(float v)
{
	PV_SHARED(float, red_sum, 32);
	int lane = threadIdx.x % 32, warp = threadIdx.x / 32, nw = blockDim.x / 32;
	v = warp_sum(v);
	__syncthreads();
	if (lane == 0)
		red_sum[warp] = v;
	__syncthreads();
	v = lane < nw ? (float)red_sum[lane] : 0.0f;
	return warp_sum(v);
}

__device__ __forceinline__ float block_max(float v)
{
	PV_SHARED(float, red_max, 32);
	int lane = threadIdx.x % 32, warp = threadIdx.x / 32, nw = blockDim.x / 32;
	v = warp_max(v);
	__syncthreads();
	if (lane == 0)
		red_max[warp] = v;
	__syncthreads();
	v = lane < nw ? (float)red_max[lane] : -PV_INF;
	return warp_max(v);
}

#endif
