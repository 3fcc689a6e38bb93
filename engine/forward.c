/* The forward pass: any family of the architecture table, in chunks of tokens, on the thread pool. */
#include "attention.h"
#include "model_internal.h"
#include "moe.h"
#include "ops.h"
#include "quant.h"
#include "readahead.h"
#include "report.h"
#include "threadpool.h"
#include "xalloc.h"

#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/*
 * DESIGN
 * A forward chunk of ntok tokens runs layer by layer as a fixed sequence of
 * thread-pool runs, each split so that all threads finish together:
 *   prep     x += pending (the previous output, post-normed where the
 *            family has post-norms), RMS norm, quantize to the weights' dot type
 *   matmul   Q,K,V (one run for the three) -- every thread takes its share
 *            of each matrix's rows; gemv for one token, gemm for a batch
 *   rope     biases, per-head q/k norms, RoPE (the layer's own), store k, v
 *   attend   attention.c over the cache (window and soft-cap per layer)
 *   prep + matmul (wo), prep (residual + ffn norm) + matmul (gate, up),
 *   glu      act(gate) * up, quantized for down
 *   matmul (down)
 * Fused tensors (phi3's attn_qkv, ffn_up) are views split at load, so the
 * families differ here only by the flags and tensors of their table row:
 * there is one block.  Its FFN is either the dense one above or, in a layer
 * with a router, the mixture of experts (moe_ffn(), below).  The activations are quantized once per matmul group
 * (one buffer per distinct dot type, shared read-only by all threads).
 * With one token the row-wise steps run on the caller alone (no pool round
 * trip).
 *
 * Results do not depend on the thread count: every output element is
 * computed by exactly one thread with the same code and order.
 */

static int cancelled(const struct model *m)
{
	return m->params.cancel && atomic_load(m->params.cancel);
}

/* ---- profile --------------------------------------------------------------------------- */

static const char *const prof_names[MODEL_PROF_N] = { "matmul", "norm+quantize", "attention",
						      "other" };

const char *model_prof_name(enum model_prof p)
{
	return (unsigned)p < MODEL_PROF_N ? prof_names[p] : "?";
}

void model_profile_enable(struct model *m, int on)
{
	m->profile = on;
	if (on)
		memset(&m->prof, 0, sizeof(m->prof));
}

void model_profile_get(const struct model *m, struct model_profile *out)
{
	*out = m->prof;
}

/* Charge the time since *t to kind k (only while profiling). */
static inline void prof_tick(struct model *m, enum model_prof k, uint64_t *t)
{
	if (!m->profile)
		return;
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	uint64_t now = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
	if (*t)
		m->prof.ns[k] += now - *t;
	*t = now;
}

/* ---- steps ------------------------------------------------------------------------------ */

int model_alloc_att(struct model *m, int nth)
{
	m->att_stride = attn_scratch_floats(m->info.n_head, m->info.n_head_kv, m->info.head_dim,
					    m->head_dim_v);
	free(m->att);
	m->att = try_alloc_aligned((size_t)nth * m->att_stride, sizeof(float));
	if (!m->att)
		return error("out of memory");
	m->att_nth = nth;
	return 0;
}

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
	int glu;          /* src = gate: gate = act(gate) * up first (1 + enum arch_act), 0: no */
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
			if (j->glu - 1 == ACT_GELU)
				glu_gelu(g, u, m->info.n_ff);
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
static void matmul_group(struct model *m, struct prep_job *pj, int n, const struct mat **w,
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

/* Biases, q/k norms, RoPE, store k/v for tokens at positions pos0 .. pos0+ntok-1. */
struct rope_job {
	struct model *m;
	int layer;
	int pos0;
	int ntok;
};

static void add_vec(float *x, const float *b, int n)
{
	for (int i = 0; i < n; i++)
		x[i] += b[i];
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

struct attn_job {
	struct model *m;
	struct attn_args a;
};

static void attn_rows(void *arg, int ith, int nth)
{
	struct attn_job *j = arg;
	attn_run(&j->a, ith, nth, j->m->att + (size_t)ith * j->m->att_stride);
}

/* Layer l starts: count its resident pages (when asked), then let the
 * read-ahead helper read the next layer (after the last, the output group
 * and layer 0 of the next pass). */
static void layer_begin(struct model *m, int l)
{
	if (m->ra_stats) {
		uint64_t r = 0, p = 0;
		if (readahead_resident(m->ra, l, &r, &p) == 0) {
			m->ras.resident += r;
			m->ras.pages += p;
			m->ras.layers++;
			m->ras.layers_full += r == p;
		}
	}
	readahead_advance(m->ra, l);
}

/* ---- the FFN ---------------------------------------------------------------------------- */

/* gate and up on the prepared input (pf: residual add, FFN norm), the
 * activation, down: the output in m->tmp. */
static void dense_ffn(struct model *m, const struct layer *L, struct prep_job *pf, int ntok)
{
	const struct mat *gu[2] = { &L->gate, &L->up };
	float *gu_out[2] = { m->gate, m->up };
	matmul_group(m, pf, 2, gu, gu_out, ntok);

	struct prep_job pd = { .m = m,
			       .ntok = ntok,
			       .src = m->gate,
			       .width = m->info.n_ff,
			       .src_stride = m->info.n_ff,
			       .glu = 1 + (int)m->arch->act };
	const struct mat *dn[1] = { &L->down };
	float *dn_out[1] = { m->tmp };
	matmul_group(m, &pd, 1, dn, dn_out, ntok);
}

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
	case MOE_QUANT_IN: /* each pair's row: its token's normed input */
		threadpool_split(P, ith, nth, 1, &r0, &r1);
		for (int r = r0; r < r1; r++)
			quant_quantize_row(j->dot_type, m->xn + (size_t)(g->pair[r] / j->k) * E,
					   (char *)m->moe_act + (size_t)r * m->act_row_max, E);
		break;
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
	case MOE_GLU: /* act(gate) * up, quantized for down */
		threadpool_split(P, ith, nth, 1, &r0, &r1);
		for (int r = r0; r < r1; r++) {
			float *gr = m->moe_gate + (size_t)r * F;
			if (m->arch->act == ACT_GELU)
				glu_gelu(gr, m->moe_up + (size_t)r * F, F);
			else
				glu_silu(gr, m->moe_up + (size_t)r * F, F);
			quant_quantize_row(j->dot_type, gr,
					   (char *)m->moe_act + (size_t)r * m->act_row_max, F);
		}
		break;
	case MOE_COMBINE: /* each token: its experts' outputs, weighted, in routing order */
		threadpool_split(j->ntok, ith, nth, 1, &r0, &r1);
		for (int t = r0; t < r1; t++) {
			float *o = m->tmp + (size_t)t * E;
			memset(o, 0, sizeof(float) * (size_t)E);
			for (int s = 0; s < j->k; s++) {
				float w = m->moe_w[t * j->k + s];
				const float *x = m->moe_out + (size_t)g->row[t * j->k + s] * E;
				for (int i = 0; i < E; i++)
					o[i] += w * x[i];
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
 * The FFN of a layer with a router: prepare the input (pf), the router's
 * logits, each token's experts and weights (moe_route), the pairs grouped
 * by expert, then gate and up of each routed expert on its pairs, the
 * activation, down, and each token's weighted sum of its experts' outputs
 * into m->tmp.
 */
static void moe_ffn(struct model *m, int l, struct prep_job *pf, int ntok)
{
	const struct layer *L = &m->layers[l];
	const struct model_info *in = &m->info;
	int k = in->n_expert_used, ne = in->n_expert;
	const struct mat *router[1] = { &L->gate_inp };
	float *logits[1] = { m->moe_logits };
	matmul_group(m, pf, 1, router, logits, ntok); /* also leaves the normed input in xn */

	uint64_t t = 0;
	prof_tick(m, MODEL_PROF_OTHER, &t);
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
		moe_step(m, &j, MOE_GATE_UP, MODEL_PROF_MATMUL);
	}
	j.dot_type = L->down_exps.dot_type;
	moe_step(m, &j, MOE_GLU, MODEL_PROF_PREP);
	j.w[0] = &L->down_exps;
	j.w[1] = NULL;
	j.out[0] = m->moe_out;
	moe_step(m, &j, MOE_DOWN, MODEL_PROF_MATMUL);
	moe_step(m, &j, MOE_COMBINE, MODEL_PROF_OTHER);
}

/* ---- one chunk ---------------------------------------------------------------------------- */

/* The block of layer l on x; its output (the residual still to add into
 * x, with its post-norm) is left in m->tmp, described by *pend. */
static void block(struct model *m, int l, int pos0, int ntok, struct prep_job *pend)
{
	struct model_info *in = &m->info;
	struct layer *L = &m->layers[l];
	int E = in->n_embd;
	struct prep_job pj = *pend;
	pj.norm = L->attn_norm;
	pj.width = E;
	pj.src_stride = E;
	const struct mat *qkv[3] = { &L->wq, &L->wk, &L->wv };
	float *qkv_out[3] = { m->q, m->k, m->v };
	matmul_group(m, &pj, 3, qkv, qkv_out, ntok);

	struct rope_job rj = { m, l, pos0, ntok };
	uint64_t t = 0;
	prof_tick(m, MODEL_PROF_OTHER, &t);
	run_rows(m, rope_rows, &rj, ntok);
	m->kv.n = pos0 + ntok; /* attention may now read these cells */
	struct attn_job aj = { m,
			       { &m->kv, l, m->q, m->xn, in->n_head, in->n_head_kv, in->head_dim,
				 m->head_dim_v, m->attn_scale, m->attn_softcap, L->window, pos0,
				 ntok, L->sinks } };
	threadpool_run(m->pool, attn_rows, &aj);
	prof_tick(m, MODEL_PROF_ATTENTION, &t);

	int aw = in->n_head * m->head_dim_v;
	struct prep_job po = { .m = m, .ntok = ntok, .src = m->xn, .width = aw, .src_stride = aw };
	const struct mat *wo[1] = { &L->wo };
	float *wo_out[1] = { m->tmp };
	matmul_group(m, &po, 1, wo, wo_out, ntok);

	struct prep_job pf = { .m = m,
			       .ntok = ntok,
			       .add = m->tmp,
			       .add_bias = L->bo,
			       .add_norm = L->attn_post_norm,
			       .norm = L->ffn_norm,
			       .width = E,
			       .src_stride = E };
	if (L->gate_inp.t)
		moe_ffn(m, l, &pf, ntok);
	else
		dense_ffn(m, L, &pf, ntok);

	memset(pend, 0, sizeof(*pend));
	pend->m = m;
	pend->ntok = ntok;
	pend->add = m->tmp;
	pend->add_norm = L->ffn_post_norm;
}

/* One chunk of at most n_batch tokens. logits: (ntok or 1, n_vocab) or NULL. */
static void forward_chunk(struct model *m, const int32_t *tokens, int ntok, int pos0, float *logits,
			  int all)
{
	struct model_info *in = &m->info;
	int E = in->n_embd;
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
	for (int t = 0; t < ntok; t++)
		m->kv.tokens[pos0 + t] = tokens[t];

	struct prep_job pend = { .m = m, .ntok = ntok }; /* residual still to add into x */
	readahead_advance(m->ra, -1);
	for (int l = 0; l < in->n_layer; l++) {
		layer_begin(m, l);
		block(m, l, pos0, ntok, &pend);
	}
	if (!logits)
		return;
	/* final residual, norm and the output matrix for the rows wanted */
	int first = all ? 0 : ntok - 1, nout = all ? ntok : 1;
	if (!all) {
		/* move the last row to row 0 so the row-wise helpers see one token */
		memmove(m->x, m->x + (size_t)first * E, (size_t)E * sizeof(float));
		memmove(m->tmp, m->tmp + (size_t)first * E, (size_t)E * sizeof(float));
	}
	struct prep_job pn = pend;
	pn.ntok = nout;
	pn.norm = m->output_norm;
	pn.width = E;
	pn.src_stride = E;
	const struct mat *ow[1] = { &m->output };
	float *o_out[1] = { logits };
	matmul_group(m, &pn, 1, ow, o_out, nout);
	if (m->final_softcap > 0)
		softcap(logits, nout * in->n_vocab, m->final_softcap);
}

int model_forward(struct model *m, const int32_t *tokens, int n, int pos, float *logits, int all)
{
	if (pos != m->kv.n)
		return error("forward at position %d, but the cache holds %d positions", pos,
			     m->kv.n);
	if (n <= 0)
		return error("forward of %d tokens", n);
	if (n > m->kv.n_ctx - pos)
		return error("context is full: %d + %d tokens exceed %d", pos, n, m->kv.n_ctx);
	for (int i = 0; i < n; i++)
		if (tokens[i] < 0 || tokens[i] >= m->info.n_vocab)
			return error("token id %d is out of range (vocabulary of %d)", tokens[i],
				     m->info.n_vocab);
	for (int done = 0; done < n;) {
		if (done && cancelled(m))
			return error("cancelled");
		int c = n - done < m->n_batch ? n - done : m->n_batch;
		int last = done + c == n;
		float *out = NULL;
		if (logits && all)
			out = logits + (size_t)done * m->info.n_vocab;
		else if (logits && last)
			out = logits;
		uint64_t start = 0, end, claimed = 0;
		prof_tick(m, MODEL_PROF_OTHER, &start); /* only reads the clock */
		for (int k = 0; k < MODEL_PROF_N; k++)
			claimed -= m->prof.ns[k];
		forward_chunk(m, tokens + done, c, pos + done, out, all);
		if (m->profile) {
			/* whatever the steps did not claim is "other" */
			end = 0;
			prof_tick(m, MODEL_PROF_OTHER, &end);
			for (int k = 0; k < MODEL_PROF_N; k++)
				claimed += m->prof.ns[k];
			m->prof.ns[MODEL_PROF_OTHER] += (end - start) - claimed;
			m->prof.tokens += (uint64_t)c;
		}
		done += c;
	}
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

int model_kv_shift(struct model *m, int keep, int n_discard)
{
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

int model_n_threads(const struct model *m)
{
	return threadpool_size(m->pool);
}

int model_set_threads(struct model *m, int n_threads)
{
	struct threadpool *tp = threadpool_create(n_threads);
	if (!tp)
		return -1;
	if (model_alloc_att(m, threadpool_size(tp)) < 0) {
		threadpool_free(tp);
		return -1;
	}
	threadpool_free(m->pool);
	m->pool = tp;
	m->info.n_threads = threadpool_size(tp);
	return 0;
}
