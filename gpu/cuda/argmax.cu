/* Greedy sampling on the device: the index of the largest logit, in two passes. */

/*
 * Pairs (value, index) are ordered by value, then by lower index, with NaN
 * read as -inf: a total order, so the butterfly reductions give every lane
 * the same winner, and the winner is the CPU sampler's (the first maximum,
 * 0 when nothing beats -inf).
 */
#include "ops_internal.h"

#include <limits.h>

#define AM_THREADS 256
#define AM_BLOCKS 64

__device__ __forceinline__ void am_take(float &v, int &i, float v2, int i2)
{
	if (v2 > v || (v2 == v && i2 < i)) {
		v = v2;
		i = i2;
	}
}

__device__ __forceinline__ void am_warp(float &v, int &i)
{
	for (int o = 16; o > 0; o >>= 1) {
		float v2 = __shfl_xor_sync(PV_FULL_MASK, v, o);
		int i2 = __shfl_xor_sync(PV_FULL_MASK, i, o);
		am_take(v, i, v2, i2);
	}
}

/* Block-wide; thread 0's (v, i) is the block's best. */
__device__ void am_block(float &v, int &i)
{
	PV_SHARED(float, am_v, 32);
	PV_SHARED(int, am_i, 32);
	int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
	am_warp(v, i);
	if (lane == 0) {
		am_v[warp] = v;
		am_i[warp] = i;
	}
	__syncthreads();
	if (warp == 0) {
		v = lane < AM_THREADS / 32 ? (float)am_v[lane] : -PV_INF;
		i = lane < AM_THREADS / 32 ? (int)am_i[lane] : INT_MAX;
		am_warp(v, i);
	}
}

__global__ void argmax_partial(const float *x, int n, float *pv, int *pi)
{
	float v = -PV_INF;
	int i = INT_MAX;
	for (int j = blockIdx.x * AM_THREADS + threadIdx.x; j < n; j += gridDim.x * AM_THREADS) {
		float xj = x[j];
		am_take(v, i, xj != xj ? -PV_INF : xj, j);
	}
	am_block(v, i);
	if (threadIdx.x == 0) {
		pv[blockIdx.x] = v;
		pi[blockIdx.x] = i;
	}
}

__global__ void argmax_final(const float *pv, const int *pi, int nparts, int32_t *out)
{
	float v = -PV_INF;
	int i = INT_MAX;
	if ((int)threadIdx.x < nparts) {
		v = pv[threadIdx.x];
		i = pi[threadIdx.x];
	}
	am_block(v, i);
	if (threadIdx.x == 0)
		*out = i == INT_MAX ? 0 : i;
}

int cuda_argmax(struct cuda_ctx *c, const float *logits, int n, int32_t *host_out)
{
	if (n <= 0)
		return ops_fail(c, "argmax: %d logits", n);
	unsigned nb = ops_blocks(n, AM_THREADS);
	if (nb > AM_BLOCKS)
		nb = AM_BLOCKS;
	char *s = (char *)ops_scratch(c, AM_BLOCKS * 8 + 4);
	if (!s)
		return -1;
	float *pv = (float *)s;
	int *pi = (int *)(s + AM_BLOCKS * 4);
	int32_t *res = (int32_t *)(s + AM_BLOCKS * 8);
	PV_LAUNCH(argmax_partial, nb, AM_THREADS, 0, c->stream, logits, n, pv, pi);
	if (ops_launched(c, "argmax") < 0)
		return -1;
	PV_LAUNCH(argmax_final, 1, AM_THREADS, 0, c->stream, (const float *)pv, (const int *)pi,
		  (int)nb, res);
	if (ops_launched(c, "argmax") < 0)
		return -1;
	return cuda_download(c, host_out, res, sizeof(*host_out));
}
