/* Attention for one new token: grouped-query, split over the KV length, then merged. */

/*
 * A block takes one KV head and a split of 128 positions: one thread per
 * key scores it against every query head of the group (the key row is read
 * once for the group, four heads at a time), the warps turn each head's
 * scores into exp(l - max) and their sum, and each thread then sums the
 * value rows for its output dimensions.  The partial results (max, sum,
 * unnormalized output) of all splits go to scratch; a second kernel merges
 * them per head, with the attention sink (an extra logit that takes part
 * in the softmax but carries no value) if the model has one.  Everything is
 * summed in a fixed order: results do not depend on scheduling.
 */
#include "attn.cuh"

#define AD_THREADS 128 /* keys per split: one per thread */
#define AD_G 4         /* query heads scored together */

template <class KV>
__global__ void attn_decode_split(const float *q, const KV *k, const KV *v, float *part,
				  attn_args a, int pos, int lo, int n_splits)
{
	PV_SHARED_DYN(float, sm);
	int G = a.n_head / a.n_head_kv, hk = blockIdx.y, s = blockIdx.x, tid = threadIdx.x;
	int warp = tid / 32, lane = tid % 32;
	int qo = 0, po = G * a.hd_k,
	    mo = po + G * AD_THREADS; /* q [G][hd_k], p [G][128], (m, l) [G] */
	for (int i = tid; i < G * a.hd_k; i += AD_THREADS)
		sm[qo + i] = q[(size_t)hk * G * a.hd_k + i];
	__syncthreads();

	int j0 = lo + s * AD_THREADS, nk = min(AD_THREADS, pos - j0 + 1);
	int valid = tid < nk;
	const KV *kr =
		k + ((size_t)hk * a.ctx_len + (size_t)attn_cell(a, valid ? j0 + tid : j0)) * a.hd_k;
	for (int g0 = 0; g0 < G; g0 += AD_G) {
		float acc[AD_G];
		for (int gi = 0; gi < AD_G; gi++)
			acc[gi] = 0.0f;
		if (valid)
			for (int d = 0; d < a.hd_k; d++) {
				float kd = pv_load(&kr[d]);
				for (int gi = 0; gi < AD_G && g0 + gi < G; gi++)
					acc[gi] += sm[qo + (g0 + gi) * a.hd_k + d] * kd;
			}
		for (int gi = 0; gi < AD_G && g0 + gi < G; gi++)
			sm[po + (g0 + gi) * AD_THREADS + tid] =
				valid ? attn_logit(acc[gi], a) : -PV_INF;
	}
	__syncthreads();

	for (int g = warp; g < G; g += AD_THREADS / 32) {
		float m = -PV_INF, l = 0.0f;
		for (int i = lane; i < AD_THREADS; i += 32)
			m = fmaxf(m, sm[po + g * AD_THREADS + i]);
		m = warp_max(m);
		for (int i = lane; i < AD_THREADS; i += 32) {
			float p = i < nk ? expf(sm[po + g * AD_THREADS + i] - m) : 0.0f;
			sm[po + g * AD_THREADS + i] = p;
			l += p;
		}
		l = warp_sum(l);
		if (lane == 0) {
			sm[mo + 2 * g] = m;
			sm[mo + 2 * g + 1] = l;
		}
	}
	__syncthreads();

	size_t stride = (size_t)a.hd_v + 2;
	for (int g0 = 0; g0 < G; g0 += AD_G)
		for (int d = tid; d < a.hd_v; d += AD_THREADS) {
			float o[AD_G];
			for (int gi = 0; gi < AD_G; gi++)
				o[gi] = 0.0f;
			for (int jj = 0; jj < nk; jj++) {
				float vv = pv_load(&v[((size_t)hk * a.ctx_len +
						       (size_t)attn_cell(a, j0 + jj)) *
							      a.hd_v +
						      d]);
				for (int gi = 0; gi < AD_G && g0 + gi < G; gi++)
					o[gi] += sm[po + (g0 + gi) * AD_THREADS + jj] * vv;
			}
			for (int gi = 0; gi < AD_G && g0 + gi < G; gi++)
				part[((size_t)(hk * G + g0 + gi) * n_splits + s) * stride + 2 + d] =
					o[gi];
		}
	if (tid < G) {
		float *ph = part + ((size_t)(hk * G + tid) * n_splits + s) * stride;
		ph[0] = sm[mo + 2 * tid];
		ph[1] = sm[mo + 2 * tid + 1];
	}
}

__global__ void attn_decode_merge(const float *part, float *out, attn_args a, int n_splits)
{
	int h = blockIdx.x;
	size_t stride = (size_t)a.hd_v + 2;
	const float *ph = part + (size_t)h * n_splits * stride;
	float m = a.sinks ? a.sinks[h] : -PV_INF;
	for (int s = 0; s < n_splits; s++)
		m = fmaxf(m, ph[s * stride]);
	float l = a.sinks ? expf(a.sinks[h] - m) : 0.0f;
	for (int s = 0; s < n_splits; s++)
		l += ph[s * stride + 1] * expf(ph[s * stride] - m);
	for (int d = threadIdx.x; d < a.hd_v; d += AD_THREADS) {
		float o = 0.0f;
		for (int s = 0; s < n_splits; s++)
			o += ph[s * stride + 2 + d] * expf(ph[s * stride] - m);
		out[(size_t)h * a.hd_v + d] = o / l;
	}
}

/* Splits of AD_THREADS keys from the window's first position to pos. */
static int decode_splits(int window, int pos)
{
	int lo = window > 0 && pos - window + 1 > 0 ? pos - window + 1 : 0;
	return (pos - lo + AD_THREADS) / AD_THREADS;
}

size_t cuda_attn_decode_scratch(const struct cuda_attn *a, int pos)
{
	return (size_t)a->n_head * decode_splits(a->window, pos) * (a->head_dim_v + 2) *
	       sizeof(float);
}

int cuda_attn_decode(struct cuda_ctx *c, const struct cuda_attn *ca, float *out, const float *q,
		     const void *k, const void *v, int pos)
{
	attn_args a;
	if (attn_setup(c, ca, "attn_decode", &a) < 0)
		return -1;
	if (pos < 0 || (!a.ring && pos >= a.ctx_len))
		return ops_fail(c, "attn_decode: position %d is outside the cache (%d cells)", pos,
				a.ctx_len);
	int G = a.n_head / a.n_head_kv;
	size_t shmem = (size_t)(G * a.hd_k + G * AD_THREADS + 2 * G) * sizeof(float);
	if (shmem > 48 * 1024)
		return ops_fail(c,
				"attn_decode: %d query heads per KV head of size %d do not fit "
				"in shared memory",
				G, a.hd_k);
	int lo = a.window > 0 && pos - a.window + 1 > 0 ? pos - a.window + 1 : 0;
	int n_splits = decode_splits(a.window, pos);
	float *part = (float *)ops_scratch(c, cuda_attn_decode_scratch(ca, pos));
	if (!part)
		return -1;
	dim3 grid((unsigned)n_splits, (unsigned)a.n_head_kv);
	if (ca->kv_f16)
		PV_LAUNCH(attn_decode_split<uint16_t>, grid, AD_THREADS, shmem, c->stream, q,
			  (const uint16_t *)k, (const uint16_t *)v, part, a, pos, lo, n_splits);
	else
		PV_LAUNCH(attn_decode_split<float>, grid, AD_THREADS, shmem, c->stream, q,
			  (const float *)k, (const float *)v, part, a, pos, lo, n_splits);
	if (ops_launched(c, "attn_decode") < 0)
		return -1;
	PV_LAUNCH(attn_decode_merge, (unsigned)a.n_head, AD_THREADS, 0, c->stream, part, out, a,
		  n_splits);
	return ops_launched(c, "attn_decode merge");
}
