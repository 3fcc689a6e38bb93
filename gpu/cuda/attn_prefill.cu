/* Attention for a batch of new tokens: causal, tiled over the keys with an online softmax. */

/*
 * A block takes 4 x QW consecutive queries of one head (QW is 4, or 2 for
 * large heads); each of its four warps owns QW of them.  The keys from the
 * first one any query may see (the sliding window's start) to the last
 * query's position go through shared memory in tiles of BK (32, 16 or 8)
 * rows of K and V, converted to float.  For each query, lane j scores key
 * j of the tile (K rows padded by one float so that the lanes read
 * different banks), the warp's running max and the per-lane running sums
 * are rescaled, and each lane accumulates
 * the output dimensions lane, lane + 32, ... from the probabilities, which
 * the warp passes through shared memory.  Masked keys (causal, window) get
 * probability 0.  Tile sizes are chosen by the host to fit 48 KiB.
 */
#include "attn.cuh"

#define AP_WARPS 4
#define AP_QW 4 /* queries per warp at most */

template <class KV>
__global__ void __launch_bounds__(AP_WARPS * 32)
	attn_prefill_kernel(float *out, size_t out_stride, const float *q, size_t q_stride,
			    const KV *k, const KV *v, attn_args a, int ntok, int pos0, int qw,
			    int bk)
{
	PV_SHARED_DYN(float, sm);
	const int BQ = qw * AP_WARPS;
	int h = blockIdx.y, hk = h / (a.n_head / a.n_head_kv), t0 = blockIdx.x * BQ;
	int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, ldk = a.hd_k + 1;
	int qo = 0, ko = BQ * a.hd_k, vo = ko + bk * ldk, po = vo + bk * a.hd_v;
	for (int i = tid; i < BQ * a.hd_k; i += AP_WARPS * 32) {
		int r = i / a.hd_k, d = i % a.hd_k;
		sm[qo + i] = t0 + r < ntok ? q[(size_t)(t0 + r) * q_stride + (size_t)h * a.hd_k + d]
					   : 0.0f;
	}
	int p_first = pos0 + t0, p_last = pos0 + min(t0 + BQ, ntok) - 1;
	int lo = a.window > 0 && p_first - a.window + 1 > 0 ? p_first - a.window + 1 : 0;
	float m_run[AP_QW], l_run[AP_QW], acc[AP_QW][8];
	for (int qi = 0; qi < AP_QW; qi++) {
		m_run[qi] = -PV_INF;
		l_run[qi] = 0.0f;
		for (int dd = 0; dd < 8; dd++)
			acc[qi][dd] = 0.0f;
	}
	const KV *kh = k + (size_t)hk * a.ctx_len * a.hd_k,
		 *vh = v + (size_t)hk * a.ctx_len * a.hd_v;

	for (int kt = lo; kt <= p_last; kt += bk) {
		int nk = min(bk, p_last - kt + 1);
		__syncthreads(); /* the queries are in; the previous tile is used up */
		for (int i = tid; i < nk * a.hd_k; i += AP_WARPS * 32) {
			int jj = i / a.hd_k, d = i % a.hd_k;
			sm[ko + jj * ldk + d] =
				pv_load(&kh[(size_t)attn_cell(a, kt + jj) * a.hd_k + d]);
		}
		for (int i = tid; i < nk * a.hd_v; i += AP_WARPS * 32) {
			int jj = i / a.hd_v, d = i % a.hd_v;
			sm[vo + i] = pv_load(&vh[(size_t)attn_cell(a, kt + jj) * a.hd_v + d]);
		}
		__syncthreads();

		for (int qi = 0; qi < AP_QW; qi++) {
			int r = warp * qw + qi, t = t0 + r;
			if (qi >= qw || t >= ntok)
				break; /* the same for the whole warp */
			int p = pos0 + t, j = kt + lane;
			int valid = lane < nk && j <= p && (a.window <= 0 || j > p - a.window);
			float s = -PV_INF;
			if (valid) {
				float dot = 0.0f;
				for (int d = 0; d < a.hd_k; d++)
					dot += sm[qo + r * a.hd_k + d] * sm[ko + lane * ldk + d];
				s = attn_logit(dot, a);
			}
			float m_new = fmaxf(m_run[qi], warp_max(s));
			float corr = m_run[qi] == -PV_INF ? 0.0f : expf(m_run[qi] - m_new);
			float pj = valid ? expf(s - m_new) : 0.0f;
			l_run[qi] = l_run[qi] * corr + pj;
			__syncwarp(); /* lanes are done reading the previous query's row */
			sm[po + warp * 32 + lane] = pj;
			__syncwarp();
			for (int dd = 0; dd < 8; dd++) {
				int d = lane + 32 * dd;
				if (d >= a.hd_v)
					break;
				float o = acc[qi][dd] * corr;
				for (int jj = 0; jj < nk; jj++)
					o += sm[po + warp * 32 + jj] * sm[vo + jj * a.hd_v + d];
				acc[qi][dd] = o;
			}
			m_run[qi] = m_new;
		}
	}

	for (int qi = 0; qi < AP_QW; qi++) {
		int t = t0 + warp * qw + qi;
		if (qi >= qw || t >= ntok)
			break;
		float l = warp_sum(l_run[qi]), m = m_run[qi], c1 = 1.0f;
		if (a.sinks) {
			float sk = a.sinks[h], m2 = fmaxf(m, sk);
			c1 = expf(m - m2);
			l = l * c1 + expf(sk - m2);
		}
		for (int dd = 0; dd < 8; dd++) {
			int d = lane + 32 * dd;
			if (d >= a.hd_v)
				break;
			out[(size_t)t * out_stride + (size_t)h * a.hd_v + d] = acc[qi][dd] * c1 / l;
		}
	}
}

static size_t prefill_shmem(const attn_args &a, int qw, int bk)
{
	return (size_t)(qw * AP_WARPS * a.hd_k + bk * (a.hd_k + 1) + bk * a.hd_v + AP_WARPS * 32) *
	       sizeof(float);
}

int cuda_attn_prefill(struct cuda_ctx *c, const struct cuda_attn *ca, float *out, size_t out_stride,
		      const float *q, size_t q_stride, const void *k, const void *v, int ntok,
		      int pos0)
{
	attn_args a;
	if (attn_setup(c, ca, "attn_prefill", &a) < 0)
		return -1;
	if (ntok <= 0 || pos0 < 0 || (!a.ring && pos0 > a.ctx_len - ntok))
		return ops_fail(c,
				"attn_prefill: positions %d..%d are outside the cache (%d cells)",
				pos0, pos0 + ntok - 1, a.ctx_len);
	if (a.ring && a.window - 1 + ntok > a.ctx_len)
		return ops_fail(
			c,
			"attn_prefill: %d tokens with a window of %d do not fit a ring of %d "
			"cells",
			ntok, a.window, a.ctx_len);
	/* the largest tiles that fit: more queries per block first (fewer K/V reloads) */
	static const int cfg[][2] = { { 4, 32 }, { 2, 32 }, { 4, 16 }, { 2, 16 }, { 2, 8 } };
	int qw = 0, bk = 0;
	for (const auto &x : cfg)
		if (prefill_shmem(a, x[0], x[1]) <= 48 * 1024) {
			qw = x[0];
			bk = x[1];
			break;
		}
	if (!qw)
		return ops_fail(c, "attn_prefill: heads of %d/%d do not fit in shared memory",
				a.hd_k, a.hd_v);
	dim3 grid(ops_blocks(ntok, qw * AP_WARPS), (unsigned)a.n_head);
	size_t shmem = prefill_shmem(a, qw, bk);
	if (ca->kv_f16)
		PV_LAUNCH(attn_prefill_kernel<uint16_t>, grid, AP_WARPS * 32, shmem, c->stream, out,
			  out_stride, q, q_stride, (const uint16_t *)k, (const uint16_t *)v, a,
			  ntok, pos0, qw, bk);
	else
		PV_LAUNCH(attn_prefill_kernel<float>, grid, AP_WARPS * 32, shmem, c->stream, out,
			  out_stride, q, q_stride, (const float *)k, (const float *)v, a, ntok,
			  pos0, qw, bk);
	return ops_launched(c, "attn_prefill");
}
