/* The CPU backend: the forward pass's steps on struct model's scratch with quant.c's kernels and the thread pool. */
#include "attention.h"
#include "backend.h"
#include "model_internal.h"
#include "moe.h"
#include "ops.h"
#include "quant.h"
#include "readahead.h"
#include "report.h"
#include "threadpool.h"
#include "xalloc.h"

#include <stdlib.h>
#include <string.h>

/*
 * DESIGN
 * Each step is a fixed sequence of thread-pool runs, each split so that
 * all threads finish together:
 *   matmul   prep (x += the residual, post-normed where the family has
 *            post-norms; RMS norm; GLU; quantize to the weights' dot type),
 *            then the group's matrices in one run -- every thread takes its
 *            share of each matrix's rows; gemv for one token, gemm for a batch
 *   qkv      biases, per-head q/k norms, RoPE (the layer's own), store k, v
 *   attend   attention.c over the cache (window and soft-cap per layer)
 *   moe_ffn  the router as a matmul group, routing on the caller, then the
 *            routed experts' gate/up, GLU, down and the weighted sum, each
 *            a pool run over the chunk's (token, expert) pairs grouped by
 *            expert (moe.h): one gemm per expert, its weights read once
 * The activations are quantized once per matmul group (one buffer per
 * distinct dot type, shared read-only by all threads).  With one token the
 * row-wise steps run on the caller alone (no pool round trip).
 *
 * Results do not depend on the thread count: every output element is
 * computed by exactly one thread with the same code and order.
 */

struct cpu_ctx {
	uint64_t t_att; /* profile clock between qkv_store and attend */
};

static float *buf(struct model *m, enum bk_buf b)
{
	switch (b) {
	case BK_X: return m->x;
	case BK_XN: return m->xn;
	case BK_Q: return m->q;
	case BK_K: return m->k;
	case BK_V: return m->v;
	case BK_TMP: return m->tmp;
	case BK_GATE: return m->gate;
	case BK_UP: return m->up;
	default: return NULL;
	}
}

/* ---- embedding ------------------------------------------------------------------------- */

static int cpu_embed(struct backend *b, const int32_t *tokens, int ntok)
{
	struct model *m = b->m;
	int E = m->info.n_embd;
	for (int t = 0; t < ntok; t++) {
		float *x = m->x + (size_t)t * E;
		quant_dequantize_row(m->tok_embd.type,
				     (const char *)m->tok_embd.data +
					     (size_t)tokens[t] * m->tok_embd.row_bytes,
				     x, E);
		if (m->embd_scale)
			for (int i = 0; i < E; i++)
				x[i] *= m->embd_scale;
	}
	return 0;
}

/* ---- matmul groups ----------------------------------------------------------------------- */

/* Rows of the activations: optional residual add, optional norm, then quantize. */
struct prep_job {
	struct model *m;
	int ntok;
	float *add;            /* (ntok, n_embd) added into x first, or NULL */
	const float *add_bias; /* (n_embd) added to each add row first, or NULL */
	const float
		*add_norm; /* (n_embd) RMS-norm each add row with these weights first, or NULL */
	const float *norm; /* norm weights (width) applied x -> xn, or NULL: src is used as is */
	const float *src;  /* (ntok, width) when norm is NULL */
	int width;
	int src_stride;   /* floats between rows of src (and of x/xn) */
	int dot_types[2]; /* quantize into act[0], act[1] (-1 = unused) */
	int glu;          /* src = gate: gate = act(gate) * up first (enum bk_act), 0: no */
};

static void prep_rows(void *arg, int ith, int nth)
{
	struct prep_job *j = arg;
	struct model *m = j->m;
	int E = m->info.n_embd, t0, t1;
	threadpool_split(j->ntok, ith, nth, 1, &t0, &t1);
	for (int t = t0; t < t1; t++) {
		const float *row;
		if (j->add) {
			float *x = m->x + (size_t)t * E, *a = j->add + (size_t)t * E;
			if (j->add_bias)
				for (int i = 0; i < E; i++)
					a[i] += j->add_bias[i];
			if (j->add_norm)
				rms_norm(a, a, j->add_norm, E, m->info.norm_eps);
			for (int i = 0; i < E; i++)
				x[i] += a[i];
		}
		if (j->norm) {
			float *xn = m->xn + (size_t)t * j->width;
			rms_norm(xn, m->x + (size_t)t * E, j->norm, j->width, m->info.norm_eps);
			row = xn;
		} else {
			row = j->src + (size_t)t * j->src_stride;
		}
		if (j->glu) {
			float *g = m->gate + (size_t)t * m->info.n_ff;
			const float *u = m->up + (size_t)t * m->info.n_ff;
			if (j->glu == BK_ACT_GELU)
				glu_gelu(g, u, m->info.n_ff);
			else if (j->glu == BK_ACT_SWIGLU_OAI)
				glu_swiglu_oai(g, u, m->info.n_ff, ARCH_OAI_ALPHA, ARCH_OAI_LIMIT);
			else
				glu_silu(g, u, m->info.n_ff);
			row = g;
		}
		for (int d = 0; d < 2; d++)
			if (j->dot_types[d] >= 0)
				quant_quantize_row(j->dot_types[d], row,
						   (char *)m->act[d] + (size_t)t * m->act_row_max,
						   j->width);
	}
}

static void run_rows(struct model *m, threadpool_fn fn, void *arg, int ntok)
{
	if (ntok == 1)
		fn(arg, 0, 1);
	else
		threadpool_run(m->pool, fn, arg);
}

/* Up to three matrices with one input, each output (ntok, w->n) with row stride out_stride. */
struct mm_job {
	struct model *m;
	int n;
	const struct mat *w[3];
	float *out[3];
	size_t out_stride[3];
	int slot[3]; /* which act[] buffer holds the input in w's dot type */
	int ntok;
};

static void mm_rows(void *arg, int ith, int nth)
{
	struct mm_job *j = arg;
	for (int i = 0; i < j->n; i++) {
		const struct mat *w = j->w[i];
		int r0, r1;
		threadpool_split(w->n, ith, nth, 16, &r0, &r1);
		if (r1 <= r0)
			continue;
		const char *wd = (const char *)w->data + (size_t)r0 * w->row_bytes;
		const void *act = j->m->act[j->slot[i]];
		if (j->ntok == 1)
			quant_gemv(w->type, w->k, wd, w->row_bytes, r1 - r0, act, j->out[i] + r0);
		else
			quant_gemm(w->type, w->k, wd, w->row_bytes, r1 - r0, act, j->m->act_row_max,
				   j->ntok, j->out[i] + r0, j->out_stride[i]);
	}
}

/*
 * out_i = W_i * input for the group: prepare (add/norm/glu as in pj) and
 * quantize the input once per distinct dot type, then one pool run.
 */
static void matmul_group(struct model *m, struct prep_job *pj, int n, const struct mat *const *w,
			 float **out, int ntok)
{
	struct mm_job mj;
	memset(&mj, 0, sizeof(mj));
	mj.m = m;
	mj.ntok = ntok;
	pj->dot_types[0] = pj->dot_types[1] = -1;
	for (int i = 0; i < n; i++) {
		int dt = w[i]->dot_type, s;
		for (s = 0; s < 2; s++)
			if (pj->dot_types[s] == dt || pj->dot_types[s] < 0)
				break;
		if (s == 2) { /* a third dot type: quantize separately (never seen in practice) */
			uint64_t t = 0;
			prof_tick(m, MODEL_PROF_OTHER, &t);
			run_rows(m, prep_rows, pj, ntok);
			prof_tick(m, MODEL_PROF_PREP, &t);
			threadpool_run(m->pool, mm_rows, &mj);
			prof_tick(m, MODEL_PROF_MATMUL, &t);
			memset(&mj, 0, sizeof(mj));
			mj.m = m;
			mj.ntok = ntok;
			pj->dot_types[0] = pj->dot_types[1] = -1;
			pj->add = NULL; /* already added */
			if (pj->norm) { /* xn holds the normed rows now */
				pj->src = m->xn;
				pj->src_stride = pj->width;
				pj->norm = NULL;
			}
			if (pj->glu) {
				pj->glu = 0;
				pj->src = m->gate;
				pj->src_stride = m->info.n_ff;
			}
			s = 0;
		}
		pj->dot_types[s] = dt;
		mj.w[mj.n] = w[i];
		mj.out[mj.n] = out[i];
		mj.out_stride[mj.n] = (size_t)w[i]->n;
		mj.slot[mj.n] = s;
		mj.n++;
	}
	uint64_t t = 0;
	prof_tick(m, MODEL_PROF_OTHER, &t);
	run_rows(m, prep_rows, pj, ntok);
	prof_tick(m, MODEL_PROF_PREP, &t);
	threadpool_run(m->pool, mm_rows, &mj);
	prof_tick(m, MODEL_PROF_MATMUL, &t);
}

static void prep_from(struct model *m, const struct bk_input *in, int ntok, struct prep_job *pj)
{
	memset(pj, 0, sizeof(*pj));
	pj->m = m;
	pj->ntok = ntok;
	pj->add = in->add != BK_NONE ? buf(m, in->add) : NULL;
	pj->add_bias = in->add_bias;
	pj->add_norm = in->add_norm;
	pj->norm = in->norm;
	pj->src = in->src != BK_NONE ? buf(m, in->src) : NULL;
	pj->width = in->width;
	pj->src_stride = in->width;
	pj->glu = in->glu;
}

static int cpu_matmul(struct backend *b, struct bk_input *in, int n, const struct mat *const *w,
		      const enum bk_buf *out, int ntok)
{
	struct prep_job pj;
	float *o[3];
	prep_from(b->m, in, ntok, &pj);
	for (int i = 0; i < n; i++)
		o[i] = buf(b->m, out[i]);
	matmul_group(b->m, &pj, n, w, o, ntok);
	return 0;
}

static int cpu_logits(struct backend *b, struct bk_input *in, int first, int nout, float *logits)
{
	struct model *m = b->m;
	int E = m->info.n_embd;
	if (first) {
		/* move the rows to row 0 so the row-wise helpers see nout tokens */
		memmove(m->x, m->x + (size_t)first * E, (size_t)nout * E * sizeof(float));
		memmove(m->tmp, m->tmp + (size_t)first * E, (size_t)nout * E * sizeof(float));
	}
	struct prep_job pj;
	const struct mat *ow[1] = { &m->output };
	float *o_out[1] = { logits };
	prep_from(m, in, nout, &pj);
	matmul_group(m, &pj, 1, ow, o_out, nout);
	if (m->final_softcap > 0)
		softcap(logits, nout * m->info.n_vocab, m->final_softcap);
	return 0;
}

/* ---- mixtures of experts ------------------------------------------------------------------ */

/*
 * The mixture of experts works on the chunk's (token, expert) pairs,
 * grouped by expert (moe.h): pair row r of the group holds its token's
 * input, quantized, in moe_act row r, and gets gate, up and down outputs in
 * row r of moe_gate, moe_up and moe_out.  Every thread takes a share of the
 * rows of every routed expert's matrices, so each expert's weights are
 * read once per chunk and only the routed experts are read at all.
 */
struct moe_job {
	struct model *m;
	const struct layer *L;
	int ntok, k;
	int step;               /* MOE_QUANT_IN, MOE_GATE_UP, MOE_GLU, MOE_DOWN, MOE_COMBINE */
	int dot_type;           /* MOE_QUANT_IN: the format to quantize the inputs into */
	const struct mat *w[2]; /* MOE_GATE_UP: gate and/or up (NULL: skip); MOE_DOWN: down */
	float *out[2];
};

enum { MOE_QUANT_IN, MOE_GATE_UP, MOE_GLU, MOE_DOWN, MOE_COMBINE };

/* Rows r0 .. r1-1 of expert e's matrix w for the expert's pairs: one gemm
 * over them (a gemv for a single pair). */
static void moe_matmul(const struct moe_job *j, const struct mat *w, int e, int r0, int r1,
		       float *out, int out_stride)
{
	struct model *m = j->m;
	const struct moe_groups *g = m->moe_g;
	int first = g->start[e], cnt = moe_rows(g, e);
	const char *wd = mat_expert(w, e) + (size_t)r0 * w->row_bytes;
	const char *act = (const char *)m->moe_act + (size_t)first * m->act_row_max;
	float *o = out + (size_t)first * out_stride + r0;
	if (cnt == 1)
		quant_gemv(w->type, w->k, wd, w->row_bytes, r1 - r0, act, o);
	else
		quant_gemm(w->type, w->k, wd, w->row_bytes, r1 - r0, act, m->act_row_max, cnt, o,
			   (size_t)out_stride);
}

/* Without grouping (params.moe_per_token: the baseline grouping is measured
 * against), rows r0 .. r1-1 of every pair's expert, the pairs in token
 * order, a gemv each: what running each token through its experts, as
 * decode does, costs. */
static void moe_matmul_per_token(const struct moe_job *j, int r0, int r1, int out_stride)
{
	struct model *m = j->m;
	const struct moe_groups *g = m->moe_g;
	for (int p = 0; p < g->n_pairs; p++) {
		int e = m->moe_ids[p], r = g->row[p];
		const char *act = (const char *)m->moe_act + (size_t)r * m->act_row_max;
		for (int i = 0; i < 2; i++) {
			const struct mat *w = j->w[i];
			if (w)
				quant_gemv(w->type, w->k,
					   mat_expert(w, e) + (size_t)r0 * w->row_bytes,
					   w->row_bytes, r1 - r0, act,
					   j->out[i] + (size_t)r * out_stride + r0);
		}
	}
}

static void moe_rows_run(void *arg, int ith, int nth)
{
	struct moe_job *j = arg;
	struct model *m = j->m;
	const struct moe_groups *g = m->moe_g;
	const struct model_info *in = &m->info;
	int E = in->n_embd, F = in->n_ff_exp, P = g->n_pairs, r0, r1;
	switch (j->step) {
	case MOE_QUANT_IN: { /* each pair's row: its token's normed input, quantized
			      * once a token and copied to the token's other pairs */
		size_t rb = 0;
		(void)quant_row_bytes(j->dot_type, E, &rb); /* the model's types: known */
		threadpool_split(j->ntok, ith, nth, 1, &r0, &r1);
		for (int t = r0; t < r1; t++) {
			const int32_t *rows = g->row + (size_t)t * j->k;
			char *first = (char *)m->moe_act + (size_t)rows[0] * m->act_row_max;
			quant_quantize_row(j->dot_type, m->xn + (size_t)t * E, first, E);
			for (int s = 1; s < j->k; s++)
				memcpy((char *)m->moe_act + (size_t)rows[s] * m->act_row_max, first,
				       rb);
		}
		break;
	}
	case MOE_GATE_UP:
	case MOE_DOWN: {
		int n = j->step == MOE_DOWN ? E : F;
		threadpool_split(n, ith, nth, 16, &r0, &r1);
		if (r1 <= r0)
			break;
		if (!m->moe_group) {
			moe_matmul_per_token(j, r0, r1, n);
			break;
		}
		for (int a = 0; a < g->n_active; a++)
			for (int i = 0; i < 2; i++)
				if (j->w[i])
					moe_matmul(j, j->w[i], g->active[a], r0, r1, j->out[i], n);
		break;
	}
	case MOE_GLU: /* the expert's biases, act(gate) * up, quantized for down */
		threadpool_split(P, ith, nth, 1, &r0, &r1);
		for (int r = r0; r < r1; r++) {
			float *gr = m->moe_gate + (size_t)r * F, *ur = m->moe_up + (size_t)r * F;
			size_t e = (size_t)m->moe_ids[g->pair[r]];
			if (j->L->gate_exps_b)
				for (int i = 0; i < F; i++)
					gr[i] += j->L->gate_exps_b[e * F + i];
			if (j->L->up_exps_b)
				for (int i = 0; i < F; i++)
					ur[i] += j->L->up_exps_b[e * F + i];
			if (m->arch->act == ACT_GELU)
				glu_gelu(gr, ur, F);
			else if (m->arch->act == ACT_SWIGLU_OAI)
				glu_swiglu_oai(gr, ur, F, ARCH_OAI_ALPHA, ARCH_OAI_LIMIT);
			else
				glu_silu(gr, ur, F);
			quant_quantize_row(j->dot_type, gr,
					   (char *)m->moe_act + (size_t)r * m->act_row_max, F);
		}
		break;
	case MOE_COMBINE: /* each token: its experts' outputs (+ down's bias), weighted, in
			   * routing order */
		threadpool_split(j->ntok, ith, nth, 1, &r0, &r1);
		for (int t = r0; t < r1; t++) {
			float *o = m->tmp + (size_t)t * E;
			memset(o, 0, sizeof(float) * (size_t)E);
			for (int s = 0; s < j->k; s++) {
				float w = m->moe_w[t * j->k + s];
				const float *x = m->moe_out + (size_t)g->row[t * j->k + s] * E;
				const float *bd = j->L->down_exps_b;
				if (bd) {
					bd += (size_t)m->moe_ids[t * j->k + s] * E;
					for (int i = 0; i < E; i++)
						o[i] += w * (x[i] + bd[i]);
				} else {
					for (int i = 0; i < E; i++)
						o[i] += w * x[i];
				}
			}
		}
		break;
	}
}

/* One step over the pairs: on the caller for a single token, else the pool. */
static void moe_step(struct model *m, struct moe_job *j, int step, enum model_prof kind)
{
	uint64_t t = 0;
	j->step = step;
	prof_tick(m, MODEL_PROF_OTHER, &t);
	if (j->ntok == 1 && (step == MOE_QUANT_IN || step == MOE_GLU || step == MOE_COMBINE))
		moe_rows_run(j, 0, 1);
	else
		threadpool_run(m->pool, moe_rows_run, j);
	prof_tick(m, kind, &t);
}

/*
 * The FFN of a layer with a router: the input made from bin, the router's
 * logits, each token's experts and weights (moe_route), the pairs grouped
 * by expert, then gate and up of each routed expert on its pairs, the
 * activation, down, and each token's weighted sum of its experts' outputs
 * into m->tmp (BK_TMP).  The read-ahead helper is told the routed experts
 * here, the only place they are known, so that it reads the pages of the
 * mapped weights this step is about to use.
 */
static int cpu_moe_ffn(struct backend *b, struct bk_input *bin, int l, int ntok)
{
	struct model *m = b->m;
	const struct layer *L = &m->layers[l];
	const struct model_info *in = &m->info;
	int k = in->n_expert_used, ne = in->n_expert;
	const struct mat *router[1] = { &L->gate_inp };
	float *logits[1] = { m->moe_logits };
	struct prep_job pf;
	prep_from(m, bin, ntok, &pf);
	matmul_group(m, &pf, 1, router, logits, ntok); /* also leaves the normed input in xn */

	uint64_t t = 0;
	prof_tick(m, MODEL_PROF_OTHER, &t);
	if (L->gate_inp_b)
		for (int i = 0; i < ntok; i++)
			for (int e = 0; e < ne; e++)
				m->moe_logits[(size_t)i * ne + e] += L->gate_inp_b[e];
	for (int i = 0; i < ntok; i++)
		moe_route(m->moe_logits + (size_t)i * ne, ne, k, m->moe_renorm,
			  m->moe_ids + (size_t)i * k, m->moe_w + (size_t)i * k);
	/* cannot fail: the ids are in range and the buffers hold n_batch tokens */
	(void)moe_group(m->moe_g, m->moe_ids, ntok, k);
	const struct moe_groups *g = m->moe_g;
	if (m->ra_stats)
		for (int a = 0; a < g->n_active; a++)
			readahead_expert_resident(m->ra, l, g->active[a], &m->ras.expert_resident,
						  &m->ras.expert_pages);
	readahead_experts(m->ra, l, g->active, g->n_active);
	prof_tick(m, MODEL_PROF_OTHER, &t);

	struct moe_job j = { .m = m, .L = L, .ntok = ntok, .k = k };
	/* gate and up, each quantized input shared when their formats agree */
	const struct mat *gu[2] = { &L->gate_exps, &L->up_exps };
	float *gu_out[2] = { m->moe_gate, m->moe_up };
	int same = gu[0]->dot_type == gu[1]->dot_type;
	for (int pass = 0; pass < (same ? 1 : 2); pass++) {
		j.dot_type = gu[pass]->dot_type;
		moe_step(m, &j, MOE_QUANT_IN, MODEL_PROF_PREP);
		for (int i = 0; i < 2; i++) {
			j.w[i] = same || i == pass ? gu[i] : NULL;
			j.out[i] = gu_out[i];
		}
		moe_step(m, &j, MOE_GATE_UP, MODEL_PROF_EXPERTS);
	}
	j.dot_type = L->down_exps.dot_type;
	moe_step(m, &j, MOE_GLU, MODEL_PROF_PREP);
	j.w[0] = &L->down_exps;
	j.w[1] = NULL;
	j.out[0] = m->moe_out;
	moe_step(m, &j, MOE_DOWN, MODEL_PROF_EXPERTS);
	moe_step(m, &j, MOE_COMBINE, MODEL_PROF_OTHER);
	return 0;
}

/* ---- q, k, v and attention ---------------------------------------------------------------- */

/* Biases, q/k norms, RoPE, store k/v for tokens at positions pos0 .. pos0+ntok-1. */
struct rope_job {
	struct model *m;
	int layer;
	int pos0;
	int ntok;
};

static void add_vec(float *x, const float *bv, int n)
{
	for (int i = 0; i < n; i++)
		x[i] += bv[i];
}

static void norm_heads(float *x, const float *w, int n_heads, int hd, float eps)
{
	for (int h = 0; h < n_heads; h++)
		rms_norm(x + (size_t)h * hd, x + (size_t)h * hd, w, hd, eps);
}

static void rope_rows(void *arg, int ith, int nth)
{
	struct rope_job *j = arg;
	struct model *m = j->m;
	const struct layer *L = &m->layers[j->layer];
	int nh = m->info.n_head, nkv = m->info.n_head_kv, hd = m->info.head_dim;
	int nq = nh * hd, nk = nkv * hd, nv = nkv * m->head_dim_v;
	float cs[ROPE_MAX / 2], sn[ROPE_MAX / 2];
	int t0, t1;
	threadpool_split(j->ntok, ith, nth, 1, &t0, &t1);
	for (int t = t0; t < t1; t++) {
		float *q = m->q + (size_t)t * nq, *k = m->k + (size_t)t * nk,
		      *v = m->v + (size_t)t * nv;
		if (L->bq)
			add_vec(q, L->bq, nq);
		if (L->bk)
			add_vec(k, L->bk, nk);
		if (L->bv)
			add_vec(v, L->bv, nv);
		if (L->q_norm)
			norm_heads(q, L->q_norm, nh, hd, m->info.norm_eps);
		if (L->k_norm)
			norm_heads(k, L->k_norm, nkv, hd, m->info.norm_eps);
		rope_table(L->rope, (float)(j->pos0 + t), cs, sn);
		rope_apply(L->rope, q, nh, hd, cs, sn);
		rope_apply(L->rope, k, nkv, hd, cs, sn);
		kv_cache_store(&m->kv, j->layer, j->pos0 + t, k, v);
	}
}

static int cpu_qkv_store(struct backend *b, int l, int pos0, int ntok)
{
	struct cpu_ctx *c = b->ctx;
	struct rope_job rj = { b->m, l, pos0, ntok };
	c->t_att = 0;
	prof_tick(b->m, MODEL_PROF_OTHER, &c->t_att);
	run_rows(b->m, rope_rows, &rj, ntok);
	return 0;
}

struct attn_job {
	struct model *m;
	struct attn_args a;
};

static void attn_rows(void *arg, int ith, int nth)
{
	struct attn_job *j = arg;
	attn_run(&j->a, ith, nth, j->m->att + (size_t)ith * j->m->att_stride);
}

static int cpu_attend(struct backend *b, int l, int pos0, int ntok)
{
	struct cpu_ctx *c = b->ctx;
	struct model *m = b->m;
	struct model_info *in = &m->info;
	struct attn_job aj = { m,
			       { &m->kv, l, m->q, m->xn, in->n_head, in->n_head_kv, in->head_dim,
				 m->head_dim_v, m->attn_scale, m->attn_softcap, m->layers[l].window,
				 pos0, ntok, m->layers[l].sinks } };
	threadpool_run(m->pool, attn_rows, &aj);
	prof_tick(m, MODEL_PROF_ATTENTION, &c->t_att);
	return 0;
}

/* ---- the context shift ------------------------------------------------------------------- */

/* Turn one stored key row (F16 or F32) by a RoPE table. */
static void rotate_key(const struct kv_cache *kv, const struct rope *r, void *k, const float *cs,
		       const float *sn)
{
	int hd = kv->head_dim_k;
	if (kv->type == KV_F32) {
		rope_apply(r, k, 1, hd, cs, sn);
		return;
	}
	float row[1024];
	quant_half *kh = k;
	for (int i = 0; i < hd; i++)
		row[i] = quant_f16_to_f32(kh[i]);
	rope_apply(r, row, 1, hd, cs, sn);
	for (int i = 0; i < hd; i++)
		kh[i] = quant_f32_to_f16(row[i]);
}

static int cpu_kv_shift(struct backend *b, int keep, int n_discard)
{
	struct model *m = b->m;
	struct kv_cache *kv = &m->kv;
	if (kv_cache_shift(kv, keep, n_discard) < 0)
		return -1;
	if (n_discard == 0)
		return 0;
	/* keys moved down by n_discard turn back by as much, with each layer's
	 * own RoPE; the attention factor (mscale) was applied once at store
	 * and is not applied again */
	float cs[ROPE_MAX / 2], sn[ROPE_MAX / 2];
	for (int l = 0; l < kv->n_layer; l++) {
		struct rope r = *m->layers[l].rope;
		r.mscale = 1.0f;
		rope_table(&r, (float)-n_discard, cs, sn);
		for (int h = 0; h < kv->n_head_kv; h++) {
			if (!kv->pos[l]) {
				for (int p = keep; p < kv->n; p++)
					rotate_key(kv, &r, kv_cache_k(kv, l, h, p), cs, sn);
				continue;
			}
			for (int c = 0; c < kv->cells[l]; c++)
				if (kv->pos[l][c] >= keep)
					rotate_key(kv, &r, kv_cache_k(kv, l, h, kv->pos[l][c]), cs,
						   sn);
		}
	}
	return 0;
}

static void cpu_free(struct backend *b)
{
	free(b->ctx);
	free(b);
}

static const struct backend_ops cpu_ops = {
	.name = "cpu",
	.embed = cpu_embed,
	.matmul = cpu_matmul,
	.moe_ffn = cpu_moe_ffn,
	.qkv_store = cpu_qkv_store,
	.attend = cpu_attend,
	.logits = cpu_logits,
	.kv_shift = cpu_kv_shift,
	.free = cpu_free,
};

struct backend *backend_cpu_create(struct model *m)
{
	struct backend *b = xcalloc(1, sizeof(*b));
	b->ops = &cpu_ops;
	b->m = m;
	b->ctx = xcalloc(1, sizeof(struct cpu_ctx));
	return b;
}

void backend_free(struct backend *b)
{
	if (b)
		b->ops->free(b);
}
