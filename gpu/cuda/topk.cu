/* Top-k sampling candidates on the device: the k largest logits, in rounds of bitonic sorts. */

/*
 * Each block sorts 2048 (value, index) pairs in shared memory, best first
 * (value, then lower index; NaN as -inf) and keeps its k best; the
 * survivors of all blocks go through the same kernel again until one block
 * holds them all (k <= 1024 at least halves them each round).  The order
 * is total, so the result is exactly the CPU sampler's top-k, ties
 * included.  Slots past the end of the input are (-inf, INT_MAX): they sort
 * after every real logit, even a -inf one.
 */
#include "ops_internal.h"

#include <limits.h>

#define TK_N 2048
#define TK_THREADS 256
#define TK_KMAX 1024

__device__ __forceinline__ int tk_before(float va, int ia, float vb, int ib)
{
	return va > vb || (va == vb && ia < ib);
}

__global__ void __launch_bounds__(TK_THREADS)
	topk_kernel(const float *in_v, const int32_t *in_i, int n, int k, float *out_v,
		    int32_t *out_i)
{
	PV_SHARED(float, sv, TK_N);
	PV_SHARED(int, si, TK_N);
	int tid = threadIdx.x;
	int64_t base = (int64_t)blockIdx.x * TK_N;
	for (int j = tid; j < TK_N; j += TK_THREADS) {
		int64_t g = base + j;
		float v = -PV_INF;
		int id = INT_MAX;
		if (g < n) {
			v = in_v[g];
			if (v != v)
				v = -PV_INF;
			id = in_i ? in_i[g] : (int)g;
		}
		sv[j] = v;
		si[j] = id;
	}
	for (int size = 2; size <= TK_N; size <<= 1)
		for (int stride = size / 2; stride > 0; stride >>= 1) {
			__syncthreads();
			for (int p = tid; p < TK_N / 2; p += TK_THREADS) {
				int i = 2 * stride * (p / stride) + p % stride, j = i + stride;
				int best_first = (i & size) == 0;
				float vi = sv[i], vj = sv[j];
				int ii = si[i], ij = si[j];
				if (tk_before(vj, ij, vi, ii) == best_first) {
					sv[i] = vj;
					sv[j] = vi;
					si[i] = ij;
					si[j] = ii;
				}
			}
		}
	__syncthreads();
	for (int j = tid; j < k; j += TK_THREADS) {
		out_v[(size_t)blockIdx.x * k + j] = sv[j];
		out_i[(size_t)blockIdx.x * k + j] = si[j];
	}
}

int cuda_topk(struct cuda_ctx *c, const float *logits, int n, int k, int32_t *host_ids,
	      float *host_vals)
{
	if (n <= 0 || k <= 0 || k > n || k > TK_KMAX)
		return ops_fail(c, "topk: k %d out of 1..%d for %d logits", k,
				n < TK_KMAX ? n : TK_KMAX, n);
	size_t cap = (size_t)ops_blocks(n, TK_N) * k; /* the first round's output, the largest */
	char *s = (char *)ops_scratch(c, 2 * cap * 8);
	if (!s)
		return -1;
	float *buf_v[2] = { (float *)s, (float *)(s + cap * 4) };
	int32_t *buf_i[2] = { (int32_t *)(s + 2 * cap * 4), (int32_t *)(s + 3 * cap * 4) };
	const float *in_v = logits;
	const int32_t *in_i = NULL;
	int count = n, out = 0;
	for (;;) {
		unsigned nb = ops_blocks(count, TK_N);
		PV_LAUNCH(topk_kernel, nb, TK_THREADS, 0, c->stream, in_v, in_i, count, k,
			  buf_v[out], buf_i[out]);
		if (ops_launched(c, "topk") < 0)
			return -1;
		if (nb == 1)
			break;
		in_v = buf_v[out];
		in_i = buf_i[out];
		count = (int)(nb * (unsigned)k);
		out ^= 1;
	}
	if (cuda_download(c, host_vals, buf_v[out], (size_t)k * 4) < 0)
		return -1;
	return cuda_download(c, host_ids, buf_i[out], (size_t)k * 4);
}
