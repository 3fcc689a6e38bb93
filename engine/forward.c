/* The forward pass: any family of the architecture table, in chunks of tokens, as steps of a backend. */
#include "attention.h"
#include "backend.h"
#include "model_internal.h"
#include "readahead.h"
#include "report.h"
#include "threadpool.h"
#include "xalloc.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/*
 * DESIGN
 * A forward chunk of ntok tokens runs layer by layer as a fixed sequence of
 * backend steps (backend.h; backend_cpu.c is the CPU's):
 *   matmul   Q,K,V from RMS norm(x += the previous block's output, post-normed
 *            where the family has post-norms)
 *   qkv      biases, per-head q/k norms, RoPE (the layer's own), store k, v
 *   attend   attention over the cache (window and soft-cap per layer)
 *   matmul   wo; gate and up from the FFN norm of x += the attention output;
 *            down from act(gate) * up
 * and, after the last layer, the output norm and matrix into the logits.
 * Fused tensors (phi3's attn_qkv, ffn_up) are views split at load, so the
 * families differ here only by the flags and tensors of their table row:
 * there is one block.  Its FFN is either the dense one above or, in a layer
 * with a router, a mixture of experts: one backend step (moe_ffn) that
 * routes each token and runs its experts.  The residual of a block is added
 * at the start of the next step that reads x (the "pending" input), so that
 * the backend fuses it with the norm.
 */

static int cancelled(const struct model *m)
{
	return m->params.cancel && atomic_load(m->params.cancel);
}

/* ---- profile --------------------------------------------------------------------------- */

static const char *const prof_names[MODEL_PROF_N] = { "matmul", "experts", "norm+quantize",
						      "attention", "other" };

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

/* ---- one chunk ---------------------------------------------------------------------------- */

/* The dense FFN: gate and up on the prepared input pf (residual add, FFN
 * norm), the activation, down into BK_TMP. */
static int dense_ffn(struct model *m, const struct layer *L, struct bk_input *pf, int ntok)
{
	struct backend *b = m->backend;
	const struct mat *gu[2] = { &L->gate, &L->up };
	static const enum bk_buf gu_out[2] = { BK_GATE, BK_UP };
	if (b->ops->matmul(b, pf, 2, gu, gu_out, ntok) < 0)
		return -1;

	static const enum bk_act acts[] = { [ACT_SILU] = BK_ACT_SILU,
					    [ACT_GELU] = BK_ACT_GELU,
					    [ACT_SWIGLU_OAI] = BK_ACT_SWIGLU_OAI };
	struct bk_input pd = {
		.add = BK_NONE, .src = BK_GATE, .width = m->info.n_ff, .glu = acts[m->arch->act]
	};
	const struct mat *dn[1] = { &L->down };
	static const enum bk_buf dn_out[1] = { BK_TMP };
	return b->ops->matmul(b, &pd, 1, dn, dn_out, ntok);
}

/* The block of layer l on x; its output (the residual still to add into
 * x, with its post-norm) is left in BK_TMP, described by *pend. */
static int block(struct model *m, int l, int pos0, int ntok, struct bk_input *pend)
{
	struct backend *b = m->backend;
	struct model_info *in = &m->info;
	struct layer *L = &m->layers[l];
	int E = in->n_embd;
	struct bk_input pj = *pend;
	pj.norm = L->attn_norm;
	pj.width = E;
	const struct mat *qkv[3] = { &L->wq, &L->wk, &L->wv };
	static const enum bk_buf qkv_out[3] = { BK_Q, BK_K, BK_V };
	if (b->ops->matmul(b, &pj, 3, qkv, qkv_out, ntok) < 0 ||
	    b->ops->qkv_store(b, l, pos0, ntok) < 0)
		return -1;
	m->kv.n = pos0 + ntok; /* attention may now read these cells */
	if (b->ops->attend(b, l, pos0, ntok) < 0)
		return -1;

	int aw = in->n_head * m->head_dim_v;
	struct bk_input po = { .add = BK_NONE, .src = BK_XN, .width = aw };
	const struct mat *wo[1] = { &L->wo };
	static const enum bk_buf wo_out[1] = { BK_TMP };
	if (b->ops->matmul(b, &po, 1, wo, wo_out, ntok) < 0)
		return -1;

	struct bk_input pf = { .add = BK_TMP,
			       .add_bias = L->bo,
			       .add_norm = L->attn_post_norm,
			       .norm = L->ffn_norm,
			       .src = BK_NONE,
			       .width = E };
	/* the FFN: the dense one, or a mixture of experts in a layer with a router */
	if (L->gate_inp.t ? b->ops->moe_ffn(b, &pf, l, ntok) : dense_ffn(m, L, &pf, ntok))
		return -1;

	*pend = (struct bk_input){ .add = BK_TMP, .add_norm = L->ffn_post_norm, .src = BK_NONE };
	return 0;
}

/* One chunk of at most n_batch tokens. logits: (ntok or 1, n_vocab) or NULL. */
static int forward_chunk(struct model *m, const int32_t *tokens, int ntok, int pos0, float *logits,
			 int all)
{
	struct backend *b = m->backend;
	struct model_info *in = &m->info;
	if (b->ops->embed(b, tokens, ntok) < 0)
		return -1;
	for (int t = 0; t < ntok; t++)
		m->kv.tokens[pos0 + t] = tokens[t];

	/* the residual still to add into x */
	struct bk_input pend = { .add = BK_NONE, .src = BK_NONE };
	readahead_advance(m->ra, -1);
	for (int l = 0; l < in->n_layer; l++) {
		layer_begin(m, l);
		if (block(m, l, pos0, ntok, &pend) < 0)
			return -1;
	}
	if (!logits)
		return 0;
	/* final residual, norm and the output matrix for the rows wanted */
	struct bk_input pn = pend;
	pn.norm = m->output_norm;
	pn.width = in->n_embd;
	return b->ops->logits(b, &pn, all ? 0 : ntok - 1, all ? ntok : 1, logits);
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
		if (forward_chunk(m, tokens + done, c, pos + done, out, all) < 0) {
			/* the cache holds what the chunks before this one wrote */
			if (m->kv.n > pos + done)
				kv_cache_truncate(&m->kv, pos + done);
			return -1;
		}
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

int model_kv_shift(struct model *m, int keep, int n_discard)
{
	return m->backend->ops->kv_shift(m->backend, keep, n_discard);
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
