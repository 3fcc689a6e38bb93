/* Attention over the KV cache (see attention.h). */
#include "attention.h"

#include "kv_cache.h"
#include "model_internal.h"
#include "ops.h"

#include <math.h>
#include <string.h>

/*
 * DESIGN
 * Online softmax in blocks of ATT_BLOCK positions: each block's scores,
 * their maximum, the running sum and the value accumulators rescaled when
 * the maximum grows.  The K/V rows of a block are converted from F16 once
 * for every query that reads them: in decode the G query heads of a KV head
 * go together, in prefill a block of up to ATT_QBLOCK tokens times G heads.
 *
 * A block's rows are contiguous cells.  In a sliding-window layer the cells
 * are a ring (kv_cache.h), so a block also ends where the ring wraps; a
 * full layer's blocks start at position 0 every ATT_BLOCK positions, as
 * they always have, so its results do not change with the windows of
 * other layers.
 *
 * A sink (gpt-oss) is a key every query sees with a fixed score and a
 * zero value: it enters only the softmax's denominator, at the end.
 */

size_t attn_scratch_floats(int n_head, int n_head_kv, int head_dim, int head_dim_v)
{
	size_t G = (size_t)(n_head / n_head_kv), hv = (size_t)head_dim_v, hd = (size_t)head_dim;
	size_t grp = G * (ATT_BLOCK + hv) + ATT_BLOCK * (hd + hv) + 2 * G;
	size_t nq = G * ATT_QBLOCK;
	size_t blk = nq * (ATT_BLOCK + hv) + ATT_BLOCK * (hd + hv) + 2 * nq;
	return ((grp > blk ? grp : blk) + 16 + 15) & ~(size_t)15;
}

/* Positions in the block starting at p0 (at most ATT_BLOCK, up to last). */
static int block_len(const struct kv_cache *kv, int layer, int p0, int last)
{
	int n = last + 1 - p0 < ATT_BLOCK ? last + 1 - p0 : ATT_BLOCK;
	if (kv->pos[layer]) {
		int room = kv->cells[layer] - p0 % kv->cells[layer];
		if (n > room)
			n = room;
	}
	return n;
}

/* The first position a query at pos sees. */
static int first_pos(const struct attn_args *a, int pos)
{
	return a->window > 0 && pos - a->window + 1 > 0 ? pos - a->window + 1 : 0;
}

/* n cache rows of width elements at p as floats: the rows themselves in an
 * F32 cache, converted into buf from an F16 one. */
static const float *rows_f32(const struct kv_cache *kv, const void *p, int n, int width, float *buf)
{
	if (kv->type != KV_F16)
		return p;
	for (int i = 0; i < n; i++)
		f16_row(buf + (size_t)i * width, (const quant_half *)p + (size_t)i * width, width);
	return buf;
}

static void scores_cap(const struct attn_args *a, float *s, int n)
{
	if (a->softcap > 0)
		softcap(s, n, a->softcap);
}

/*
 * 1 / the softmax's denominator for query head h, whose scores have the
 * running maximum mx and exp-sum sum: the sink's term joins it when the
 * model has sinks, rescaled to whichever of the two is larger so that
 * neither exponent overflows.
 */
static float softmax_inv(const struct attn_args *a, int h, float mx, float sum)
{
	if (!a->sinks)
		return 1.0f / sum;
	float s = a->sinks[h];
	if (s > mx) {
		float c = expf(mx - s);
		return c / (sum * c + 1.0f);
	}
	return 1.0f / (sum + expf(s - mx));
}

/*
 * The online softmax over one block for nq queries (scores ATT_BLOCK apart
 * in sc, positions lo .. nv-1 of the block): soft-cap, the running maximum
 * mx and sum, the value accumulators acc (head_dim_v apart) rescaled when
 * the maximum grows, and the scores turned into exp(s - max) in place.
 */
static void softmax_step(const struct attn_args *a, float *sc, int lo, int nv, int nq, float *mx,
			 float *sum, float *acc)
{
	int hv = a->head_dim_v;
	for (int q = 0; q < nq; q++) {
		float *s = sc + (size_t)q * ATT_BLOCK, bmax = -INFINITY;
		scores_cap(a, s + lo, nv - lo);
		for (int i = lo; i < nv; i++)
			if (s[i] > bmax)
				bmax = s[i];
		if (bmax > mx[q]) {
			float c = expf(mx[q] - bmax); /* 0 on the first block */
			float *ac = acc + (size_t)q * hv;
			sum[q] *= c;
			for (int d = 0; d < hv; d++)
				ac[d] *= c;
			mx[q] = bmax;
		}
		sum[q] += exp_sub_sum(s + lo, nv - lo, mx[q]);
	}
}

/*
 * One (token, KV head): the G query heads that share the KV head together,
 * so each K and V row is read (and converted from F16) once for all of them.
 */
static void attend_group(const struct attn_args *a, int t, int g, int pos, float *scratch)
{
	const struct kv_cache *kv = a->kv;
	int hd = a->head_dim, hv = a->head_dim_v, nh = a->n_head;
	int G = nh / a->n_head_kv;
	const float *q0 = a->q + (size_t)t * nh * hd + (size_t)g * G * hd;
	float *out0 = a->out + (size_t)t * nh * hv + (size_t)g * G * hv;
	float *sc = scratch;                     /* (G, ATT_BLOCK) */
	float *acc = sc + (size_t)G * ATT_BLOCK; /* (G, hv) */
	float *kf = acc + (size_t)G * hv;        /* (ATT_BLOCK, hd) */
	float *vf = kf + (size_t)ATT_BLOCK * hd; /* (ATT_BLOCK, hv) */
	float *mx = vf + (size_t)ATT_BLOCK * hv; /* (G) */
	float *sum = mx + G;                     /* (G) */
	memset(acc, 0, (size_t)G * hv * sizeof(float));
	for (int h = 0; h < G; h++) {
		mx[h] = -INFINITY;
		sum[h] = 0;
	}
	for (int p0 = first_pos(a, pos); p0 <= pos;) {
		int n = block_len(kv, a->layer, p0, pos);
		const float *kr = rows_f32(kv, kv_cache_k(kv, a->layer, g, p0), n, hd, kf);
		dot_rows_multi(q0, G, kr, n, hd, a->scale, sc, ATT_BLOCK);
		softmax_step(a, sc, 0, n, G, mx, sum, acc);
		const float *vr = rows_f32(kv, kv_cache_v(kv, a->layer, g, p0), n, hv, vf);
		accumulate_rows_multi(acc, (size_t)hv, G, sc, ATT_BLOCK, vr, n, hv);
		p0 += n;
	}
	for (int h = 0; h < G; h++) {
		float inv = softmax_inv(a, g * G + h, mx[h], sum[h]);
		for (int d = 0; d < hv; d++)
			out0[(size_t)h * hv + d] = acc[(size_t)h * hv + d] * inv;
	}
}

/*
 * Prefill: a block of up to ATT_QBLOCK tokens and the G heads of KV head g
 * against the cache, ATT_BLOCK positions at a time: each K/V block is
 * converted once for all nt * G queries (the causal mask and the window
 * limit each query to its own positions).
 */
static void attend_block(const struct attn_args *a, int t0, int nt, int g, float *scratch)
{
	const struct kv_cache *kv = a->kv;
	int hd = a->head_dim, hv = a->head_dim_v, nh = a->n_head;
	int G = nh / a->n_head_kv, nq = nt * G, pos0 = a->pos0;
	float *sc = scratch;                      /* (nq, ATT_BLOCK) */
	float *acc = sc + (size_t)nq * ATT_BLOCK; /* (nq, hv) */
	float *kf = acc + (size_t)nq * hv;        /* (ATT_BLOCK, hd) */
	float *vf = kf + (size_t)ATT_BLOCK * hd;  /* (ATT_BLOCK, hv) */
	float *mx = vf + (size_t)ATT_BLOCK * hv;  /* (nq) */
	float *sum = mx + nq;                     /* (nq) */
	int last = pos0 + t0 + nt - 1;            /* the last position any query sees */
	memset(acc, 0, (size_t)nq * hv * sizeof(float));
	for (int q = 0; q < nq; q++) {
		mx[q] = -INFINITY;
		sum[q] = 0;
	}
	for (int p0 = first_pos(a, pos0 + t0); p0 <= last;) {
		int n = block_len(kv, a->layer, p0, last);
		const float *kr = rows_f32(kv, kv_cache_k(kv, a->layer, g, p0), n, hd, kf);
		const float *vr = rows_f32(kv, kv_cache_v(kv, a->layer, g, p0), n, hv, vf);
		for (int tt = 0; tt < nt; tt++) { /* a token's G heads see the same positions */
			int t = t0 + tt, q0 = tt * G;
			int nv = pos0 + t + 1 - p0; /* causal: positions <= pos0 + t */
			int lo = first_pos(a, pos0 + t) - p0;
			if (lo < 0)
				lo = 0;
			if (nv > n)
				nv = n;
			if (nv <= lo)
				continue;
			float *s0 = sc + (size_t)q0 * ATT_BLOCK;
			dot_rows_multi(a->q + (size_t)t * nh * hd + (size_t)g * G * hd, G,
				       kr + (size_t)lo * hd, nv - lo, hd, a->scale, s0 + lo,
				       ATT_BLOCK);
			softmax_step(a, s0, lo, nv, G, mx + q0, sum + q0, acc + (size_t)q0 * hv);
			accumulate_rows_multi(acc + (size_t)q0 * hv, (size_t)hv, G, s0 + lo,
					      ATT_BLOCK, vr + (size_t)lo * hv, nv - lo, hv);
		}
		p0 += n;
	}
	for (int q = 0; q < nq; q++) {
		int t = t0 + q / G, h = g * G + q % G;
		float inv = softmax_inv(a, h, mx[q], sum[q]),
		      *out = a->out + (size_t)t * nh * hv + (size_t)h * hv;
		const float *ac = acc + (size_t)q * hv;
		for (int d = 0; d < hv; d++)
			out[d] = ac[d] * inv;
	}
}

/* Items are dealt round-robin: with a causal mask later tokens cost more,
 * and contiguous ranges would leave the first thread idle half the time. */
void attn_run(const struct attn_args *a, int ith, int nth, float *scratch)
{
	int nkv = a->n_head_kv;
	if (a->ntok > 1) {
		int nblk = (a->ntok + ATT_QBLOCK - 1) / ATT_QBLOCK;
		for (int i = ith; i < nblk * nkv; i += nth) {
			int b = i / nkv, t0 = b * ATT_QBLOCK;
			int nt = a->ntok - t0 < ATT_QBLOCK ? a->ntok - t0 : ATT_QBLOCK;
			attend_block(a, t0, nt, i % nkv, scratch);
		}
		return;
	}
	/* decode: one item per KV head (with more threads than KV heads some
	 * idle here; splitting the positions would need a merge step) */
	for (int g = ith; g < nkv; g += nth)
		attend_group(a, 0, g, a->pos0, scratch);
}
