/* The CUDA backend: the forward pass's steps on a GPU through gpu/cuda/cuda_ops.h. */
#include "backend.h"
#include "cuda_ops.h"
#include "gguf.h"
#include "model_internal.h"
#include "quant.h"
#include "report.h"
#include "util.h"
#include "xalloc.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * DESIGN
 * At creation every tensor the forward pass reads is copied to the device
 * once, as the file stores it (quantized; the kernels dequantize in
 * registers), with the 1-D norm weights, biases and RoPE frequency factors
 * as F32; the KV cache (m->kv's geometry: a full layer's cells, a sliding
 * layer's ring) and the activation buffers are allocated there too, and
 * the scratch that the kernels need is reserved, so that nothing is
 * allocated while the model runs.  A step then only queues kernels on the
 * context's stream; the logits step copies the logits back, which waits
 * for the whole chunk, so a kernel's failure shows there at the latest.
 *
 * The forward pass names weights by their host copies: a matrix (struct
 * mat, possibly a view of a fused tensor's rows) by its tensor's index and
 * its offset into the tensor, a vector by its host pointer, looked up in a
 * sorted table.  The host KV cache keeps the bookkeeping (positions, the
 * rings' tags, tokens) and no data.
 *
 * Anything the device refuses is an error naming the operation (the
 * runtime's message, cuda_error()); at creation, device memory that does
 * not fit, tensor types the kernels lack (IQ4_NL, IQ4_XS, MXFP4, ...),
 * mixtures of experts and gpt-oss's pieces (sinks, YaRN, the clamped
 * SwiGLU, expert biases) set *fallback, and model.c then runs the model on
 * the CPU with a warning.
 */

struct dev_vec {
	const float *host;
	float *dev;
};

struct cuda_be {
	struct cuda_ctx *c;
	const struct gguf_tensor *t0; /* tensor 0: indexes tensor[] */
	void **tensor;                /* (n_tensors) device copy, or NULL if not read */
	int64_t n_tensors;
	struct dev_vec *vec; /* sorted by host */
	int n_vec;
	float *buf[BK_NBUF]; /* (n_batch, width[b]) */
	int width[BK_NBUF];
	float *logits; /* (logit_rows, n_vocab) */
	int logit_rows;
	void *k, *v;   /* every layer's keys / values at m->kv.off_k / off_v */
	int32_t *plan; /* (2 * largest layer's cells) the shift's moves */
	char desc[320];
};

static int fail(struct cuda_be *be)
{
	return error("cuda: %s", cuda_error(be->c));
}

/* ---- weights on the device -------------------------------------------------------------- */

static int vec_cmp(const void *a, const void *b)
{
	const struct dev_vec *x = a, *y = b;
	return x->host < y->host ? -1 : x->host > y->host;
}

static const float *dev_vec(const struct cuda_be *be, const float *host)
{
	if (!host)
		return NULL;
	struct dev_vec key = { host, NULL };
	const struct dev_vec *f = bsearch(&key, be->vec, (size_t)be->n_vec, sizeof(key), vec_cmp);
	return f ? f->dev : NULL;
}

static const void *dev_mat(const struct cuda_be *be, const struct mat *w)
{
	const char *base = be->tensor[w->t - be->t0];
	return base + ((const char *)w->mapped - (const char *)w->t->data);
}

/* Every matrix the forward pass reads: the layers', the output and the embedding. */
static int all_mats(struct model *m, const struct mat **out)
{
	int n = 0;
	for (int l = 0; l <= m->info.n_layer; l++) {
		struct mat *all[MODEL_LAYER_MATS];
		int k = model_layer_mats(m, l, all);
		for (int i = 0; i < k; i++)
			out[n++] = all[i];
	}
	out[n++] = &m->tok_embd;
	return n;
}

/* Tensor types and row lengths the kernels take; -1 with error() and
 * *fallback set for the first that they do not. */
static int check_types(const struct mat **mats, int n, int *fallback)
{
	for (int i = 0; i < n; i++) {
		const struct gguf_tensor *t = mats[i]->t;
		if (!cuda_rows_supported(t->type, mats[i]->k)) {
			*fallback = 1;
			return error(
				"tensor '%s' has type %s%s, which the CUDA kernels do not take",
				t->name, quant_type_name(t->type),
				cuda_type_supported(t->type) ? " with rows of this length" : "");
		}
	}
	return 0;
}

/*
 * A mixture of experts (issue 18) runs its FFN through routing and expert
 * matrices that no CUDA kernel computes yet: a file with a router or
 * expert tensors stays on the CPU.  The tensors, not the metadata, decide:
 * that is what a mixture cannot lack.
 */
static int check_experts(const struct gguf *g, int *fallback)
{
	for (int64_t i = 0; i < gguf_n_tensors(g); i++) {
		const char *name = gguf_tensor_at(g, i)->name;
		if (strstr(name, "ffn_gate_inp.") || strstr(name, "_exps.")) {
			*fallback = 1;
			return error("tensor '%s' belongs to a mixture of experts, which the CUDA "
				     "backend does not run yet",
				     name);
		}
	}
	return 0;
}

/*
 * gpt-oss's pieces (issue 24) that no CUDA kernel or step computes yet: its
 * clamped SwiGLU, attention sinks and YaRN's ramp (any family may ask for
 * YaRN), and the biases of a router and its experts.  Each would be
 * skipped or computed as something else, so the model stays on the CPU,
 * the warning naming what is missing.
 */
static int check_features(const struct model *m, int *fallback)
{
	const char *what = NULL;
	if (m->arch->act == ACT_SWIGLU_OAI)
		what = "the clamped SwiGLU of gpt-oss";
	for (int l = 0; !what && l < m->info.n_layer; l++) {
		const struct layer *L = &m->layers[l];
		if (L->sinks)
			what = "attention sinks";
		else if (L->rope && L->rope->ext_factor != 0)
			what = "YaRN RoPE scaling";
		else if (L->gate_inp_b || L->gate_exps_b || L->up_exps_b || L->down_exps_b)
			what = "the biases of a router or its experts";
	}
	if (!what && (m->rope.ext_factor != 0 || m->rope_swa.ext_factor != 0))
		what = "YaRN RoPE scaling";
	if (!what)
		return 0;
	*fallback = 1;
	return error("the model uses %s, which the CUDA backend does not run yet", what);
}

static int cancelled(const struct model *m)
{
	return m->params.cancel && atomic_load(m->params.cancel);
}

/* Copy every tensor in mats to the device once (tied embeddings and the
 * views of a fused tensor share theirs), reporting progress. */
static int upload_tensors(struct model *m, struct cuda_be *be, const struct mat **mats, int n,
			  int *fallback)
{
	uint64_t total = 0, done = 0;
	be->n_tensors = gguf_n_tensors(m->g);
	be->t0 = gguf_tensor_at(m->g, 0);
	be->tensor = xcalloc((size_t)be->n_tensors, sizeof(void *));
	unsigned char *want = xcalloc((size_t)be->n_tensors, 1);
	for (int i = 0; i < n; i++) {
		int64_t ti = mats[i]->t - be->t0;
		if (!want[ti])
			total += mats[i]->t->nbytes;
		want[ti] = 1;
	}
	int rc = 0;
	for (int64_t ti = 0; ti < be->n_tensors && rc == 0; ti++) {
		const struct gguf_tensor *t = gguf_tensor_at(m->g, ti);
		if (!want[ti])
			continue;
		if (cancelled(m)) {
			rc = error("cancelled");
			break;
		}
		be->tensor[ti] = cuda_alloc(be->c, t->nbytes, t->name);
		if (!be->tensor[ti]) {
			*fallback = 1;
			rc = fail(be);
		} else if (cuda_upload(be->c, be->tensor[ti], t->data, t->nbytes) < 0) {
			rc = fail(be);
		} else {
			done += t->nbytes;
			if (m->params.progress)
				m->params.progress(m->params.progress_ud, done, total);
		}
	}
	free(want);
	return rc;
}

/* Add a vector of n floats to the table (once per host pointer). */
static int add_vec(struct cuda_be *be, const float *host, int64_t n, int *fallback)
{
	if (!host)
		return 0;
	for (int i = 0; i < be->n_vec; i++)
		if (be->vec[i].host == host)
			return 0;
	float *d = cuda_alloc(be->c, (size_t)n * sizeof(float), "norm weights and biases");
	if (!d) {
		*fallback = 1;
		return fail(be);
	}
	if (cuda_upload(be->c, d, host, (size_t)n * sizeof(float)) < 0) {
		cuda_free(be->c, d);
		return fail(be);
	}
	be->vec = xrealloc_array(be->vec, (size_t)be->n_vec + 1, sizeof(*be->vec));
	be->vec[be->n_vec++] = (struct dev_vec){ host, d };
	return 0;
}

struct vec_ref {
	const float *p;
	int64_t n;
};

static int upload_vectors(struct model *m, struct cuda_be *be, int *fallback)
{
	const struct model_info *in = &m->info;
	int64_t E = in->n_embd, hd = in->head_dim, nq = (int64_t)in->n_head * hd,
		nk = (int64_t)in->n_head_kv * hd, nv = (int64_t)in->n_head_kv * m->head_dim_v;
	for (int l = -1; l < in->n_layer; l++) {
		struct vec_ref v[10];
		int n = 0;
		if (l < 0) { /* the model's own */
			v[n++] = (struct vec_ref){ m->output_norm, E };
			v[n++] = (struct vec_ref){ m->rope.factors, m->rope.n_rot / 2 };
			v[n++] = (struct vec_ref){ m->rope_swa.factors, m->rope_swa.n_rot / 2 };
		} else {
			const struct layer *L = &m->layers[l];
			v[n++] = (struct vec_ref){ L->attn_norm, E };
			v[n++] = (struct vec_ref){ L->ffn_norm, E };
			v[n++] = (struct vec_ref){ L->attn_post_norm, E };
			v[n++] = (struct vec_ref){ L->ffn_post_norm, E };
			v[n++] = (struct vec_ref){ L->q_norm, hd };
			v[n++] = (struct vec_ref){ L->k_norm, hd };
			v[n++] = (struct vec_ref){ L->bq, nq };
			v[n++] = (struct vec_ref){ L->bk, nk };
			v[n++] = (struct vec_ref){ L->bv, nv };
			v[n++] = (struct vec_ref){ L->bo, E };
		}
		for (int i = 0; i < n; i++)
			if (add_vec(be, v[i].p, v[i].n, fallback) < 0)
				return -1;
	}
	qsort(be->vec, (size_t)be->n_vec, sizeof(*be->vec), vec_cmp);
	return 0;
}

/* ---- activations, cache, scratch -------------------------------------------------------- */

static int alloc_state(struct model *m, struct cuda_be *be, int *fallback)
{
	const struct model_info *in = &m->info;
	const struct kv_cache *kv = &m->kv;
	size_t B = (size_t)m->n_batch;
	int att_w =
		in->n_head * m->head_dim_v > in->n_embd ? in->n_head * m->head_dim_v : in->n_embd;
	int widths[BK_NBUF] = { [BK_X] = in->n_embd,
				[BK_XN] = att_w,
				[BK_Q] = in->n_head * in->head_dim,
				[BK_K] = in->n_head_kv * in->head_dim,
				[BK_V] = in->n_head_kv * m->head_dim_v,
				[BK_TMP] = in->n_embd,
				[BK_GATE] = in->n_ff,
				[BK_UP] = in->n_ff };
	for (int b = 0; b < BK_NBUF; b++) {
		be->width[b] = widths[b];
		if (!(be->buf[b] = cuda_alloc(be->c, B * (size_t)widths[b] * sizeof(float),
					      "the activations"))) {
			*fallback = 1;
			return fail(be);
		}
	}
	/* logits for up to n_batch rows, in pieces of at most 64 MiB */
	size_t row = (size_t)in->n_vocab * sizeof(float);
	be->logit_rows = (int)((64u << 20) / row);
	be->logit_rows = be->logit_rows < 1            ? 1
			 : be->logit_rows > m->n_batch ? m->n_batch
						       : be->logit_rows;
	if (!(be->logits = cuda_alloc(be->c, (size_t)be->logit_rows * row, "the logits"))) {
		*fallback = 1;
		return fail(be);
	}

	size_t ek = 0, ev = 0;
	int cells_max = 0;
	for (int l = 0; l < kv->n_layer; l++) {
		ek += (size_t)kv->n_head_kv * kv->cells[l] * kv->head_dim_k;
		ev += (size_t)kv->n_head_kv * kv->cells[l] * kv->head_dim_v;
		cells_max = kv->cells[l] > cells_max ? kv->cells[l] : cells_max;
	}
	char what[96], sz[32];
	snprintf(what, sizeof(what), "the KV cache (%s for %d positions)",
		 format_size(sz, sizeof(sz), kv->bytes), kv->n_ctx);
	if (!(be->k = cuda_alloc(be->c, ek * kv->elem, what)) ||
	    !(be->v = cuda_alloc(be->c, ev * kv->elem, what))) {
		*fallback = 1;
		return fail(be);
	}
	be->plan = xcalloc((size_t)2 * cells_max, sizeof(int32_t));

	/* scratch: decode attention's partial results at the last position,
	 * the embedding's token ids, the shift's moved rows */
	size_t need = B * sizeof(int32_t);
	for (int l = 0; l < kv->n_layer; l++) {
		struct cuda_attn a = { .n_head = in->n_head,
				       .n_head_kv = in->n_head_kv,
				       .head_dim_k = in->head_dim,
				       .head_dim_v = m->head_dim_v,
				       .window = m->layers[l].window };
		size_t s = cuda_attn_decode_scratch(&a, kv->n_ctx - 1);
		need = s > need ? s : need;
	}
	int move_rows = cells_max < 4096 ? cells_max : 4096;
	int hmax = kv->head_dim_k > kv->head_dim_v ? kv->head_dim_k : kv->head_dim_v;
	size_t mv = (((size_t)2 * move_rows * sizeof(int32_t) + 255) & ~(size_t)255) +
		    (size_t)move_rows * kv->n_head_kv * hmax * kv->elem;
	need = mv > need ? mv : need;
	if (cuda_reserve(be->c, need) < 0) {
		*fallback = 1;
		return fail(be);
	}
	return 0;
}

/* ---- steps ------------------------------------------------------------------------------ */

static int cuda_embed_step(struct backend *b, const int32_t *tokens, int ntok)
{
	struct cuda_be *be = b->ctx;
	struct model *m = b->m;
	int E = m->info.n_embd;
	float *x = be->buf[BK_X];
	if (cuda_embed(be->c, m->tok_embd.t->type, dev_mat(be, &m->tok_embd), m->tok_embd.row_bytes,
		       m->info.n_vocab, E, tokens, ntok, x, (size_t)E) < 0)
		return fail(be);
	if (m->embd_scale && cuda_scale(be->c, x, m->embd_scale, (int64_t)ntok * E) < 0)
		return fail(be);
	return 0;
}

/* Make the input rows row0 .. row0+ntok-1 described by in; *src: where they are. */
static int prepare(struct backend *b, const struct bk_input *in, int row0, int ntok,
		   const float **src)
{
	struct cuda_be *be = b->ctx;
	struct model *m = b->m;
	int E = m->info.n_embd, ff = m->info.n_ff;
	float eps = m->info.norm_eps;
	float *x = be->buf[BK_X] + (size_t)row0 * E, *add = NULL;
	if (in->add != BK_NONE) {
		add = be->buf[in->add] + (size_t)row0 * be->width[in->add];
		if (in->add_bias &&
		    cuda_add_rows(be->c, add, (size_t)E, dev_vec(be, in->add_bias), ntok, E) < 0)
			return fail(be);
		if (in->add_norm && cuda_rms_norm(be->c, add, add, NULL, dev_vec(be, in->add_norm),
						  ntok, E, eps) < 0)
			return fail(be);
	}
	if (in->norm) {
		float *xn = be->buf[BK_XN] + (size_t)row0 * in->width;
		/* the residual add fused into the norm: x += add, xn = norm(x) */
		if (cuda_rms_norm(be->c, xn, x, add, dev_vec(be, in->norm), ntok, in->width, eps) <
		    0)
			return fail(be);
		*src = xn;
	} else {
		if (add && cuda_add(be->c, x, x, add, (int64_t)ntok * E) < 0)
			return fail(be);
		*src = be->buf[in->src] + (size_t)row0 * in->width;
	}
	if (in->glu == BK_ACT_SWIGLU_OAI) /* refused at creation (check_features) */
		return error("cuda: the clamped SwiGLU of gpt-oss has no kernel");
	if (in->glu != BK_ACT_NONE) {
		float *g = be->buf[BK_GATE] + (size_t)row0 * ff,
		      *u = be->buf[BK_UP] + (size_t)row0 * ff;
		if (cuda_glu(be->c, in->glu == BK_ACT_GELU ? CUDA_ACT_GELU : CUDA_ACT_SILU, g, g, u,
			     (size_t)ff, ntok, ff) < 0)
			return fail(be);
		*src = g;
	}
	return 0;
}

static int mat_mul(struct cuda_be *be, const struct mat *w, const float *x, size_t x_stride,
		   int ntok, float *y)
{
	if (cuda_matmul(be->c, w->t->type, dev_mat(be, w), w->row_bytes, w->n, w->k, x, x_stride,
			ntok, y, (size_t)w->n) < 0)
		return fail(be);
	return 0;
}

static int cuda_matmul_step(struct backend *b, struct bk_input *in, int n,
			    const struct mat *const *w, const enum bk_buf *out, int ntok)
{
	struct cuda_be *be = b->ctx;
	const float *src;
	if (prepare(b, in, 0, ntok, &src) < 0)
		return -1;
	for (int i = 0; i < n; i++)
		if (mat_mul(be, w[i], src, (size_t)in->width, ntok, be->buf[out[i]]) < 0)
			return -1;
	return 0;
}

static void rope_params(const struct cuda_be *be, const struct rope *r, int shift,
			struct cuda_rope_params *p)
{
	*p = (struct cuda_rope_params){ .n_rot = r->n_rot,
					.neox = r->neox,
					.base = r->base,
					.freq_scale = r->freq_scale,
					.mscale = shift ? 1.0f : r->mscale,
					.freq_factors = dev_vec(be, r->factors) };
}

static int cuda_qkv_step(struct backend *b, int l, int pos0, int ntok)
{
	struct cuda_be *be = b->ctx;
	struct model *m = b->m;
	const struct layer *L = &m->layers[l];
	struct kv_cache *kv = &m->kv;
	struct cuda_ctx *c = be->c;
	int nh = m->info.n_head, nkv = m->info.n_head_kv, hd = m->info.head_dim, hv = m->head_dim_v;
	int nq = nh * hd, nk = nkv * hd, nv = nkv * hv;
	float *q = be->buf[BK_Q], *k = be->buf[BK_K], *v = be->buf[BK_V], eps = m->info.norm_eps;
	struct cuda_rope_params rp;
	rope_params(be, L->rope, 0, &rp);
	int ring = kv->pos[l] != NULL, f16 = kv->type == KV_F16;
	if ((L->bq && cuda_add_rows(c, q, (size_t)nq, dev_vec(be, L->bq), ntok, nq) < 0) ||
	    (L->bk && cuda_add_rows(c, k, (size_t)nk, dev_vec(be, L->bk), ntok, nk) < 0) ||
	    (L->bv && cuda_add_rows(c, v, (size_t)nv, dev_vec(be, L->bv), ntok, nv) < 0) ||
	    (L->q_norm &&
	     cuda_head_norm(c, q, (size_t)nq, ntok, nh, hd, dev_vec(be, L->q_norm), eps) < 0) ||
	    (L->k_norm &&
	     cuda_head_norm(c, k, (size_t)nk, ntok, nkv, hd, dev_vec(be, L->k_norm), eps) < 0) ||
	    cuda_rope(c, &rp, q, (size_t)nq, ntok, nh, hd, pos0, 1) < 0 ||
	    cuda_rope(c, &rp, k, (size_t)nk, ntok, nkv, hd, pos0, 1) < 0 ||
	    cuda_kv_write(c, (char *)be->k + kv->off_k[l] * kv->elem, f16, kv->cells[l], ring, nkv,
			  hd, k, (size_t)nk, ntok, pos0) < 0 ||
	    cuda_kv_write(c, (char *)be->v + kv->off_v[l] * kv->elem, f16, kv->cells[l], ring, nkv,
			  hv, v, (size_t)nv, ntok, pos0) < 0)
		return fail(be);
	kv_cache_tag(kv, l, pos0, ntok);
	return 0;
}

static int cuda_attend_step(struct backend *b, int l, int pos0, int ntok)
{
	struct cuda_be *be = b->ctx;
	struct model *m = b->m;
	const struct kv_cache *kv = &m->kv;
	const struct model_info *in = &m->info;
	struct cuda_attn a = { .n_head = in->n_head,
			       .n_head_kv = in->n_head_kv,
			       .head_dim_k = in->head_dim,
			       .head_dim_v = m->head_dim_v,
			       .ctx_len = kv->cells[l],
			       .kv_f16 = kv->type == KV_F16,
			       .scale = m->attn_scale,
			       .softcap = m->attn_softcap,
			       .window = m->layers[l].window,
			       .sinks = NULL,
			       .ring = kv->pos[l] != NULL };
	const void *k = (const char *)be->k + kv->off_k[l] * kv->elem,
		   *v = (const char *)be->v + kv->off_v[l] * kv->elem;
	int rc = ntok == 1 ? cuda_attn_decode(be->c, &a, be->buf[BK_XN], be->buf[BK_Q], k, v, pos0)
			   : cuda_attn_prefill(be->c, &a, be->buf[BK_XN],
					       (size_t)in->n_head * m->head_dim_v, be->buf[BK_Q],
					       (size_t)in->n_head * in->head_dim, k, v, ntok, pos0);
	return rc < 0 ? fail(be) : 0;
}

static int cuda_logits_step(struct backend *b, struct bk_input *in, int first, int nout, float *out)
{
	struct cuda_be *be = b->ctx;
	struct model *m = b->m;
	int nv = m->info.n_vocab;
	const float *src;
	if (prepare(b, in, first, nout, &src) < 0)
		return -1;
	for (int r = 0; r < nout; r += be->logit_rows) {
		int n = nout - r < be->logit_rows ? nout - r : be->logit_rows;
		if (mat_mul(be, &m->output, src + (size_t)r * in->width, (size_t)in->width, n,
			    be->logits) < 0)
			return -1;
		if (m->final_softcap > 0 &&
		    cuda_softcap(be->c, be->logits, m->final_softcap, (int64_t)n * nv) < 0)
			return fail(be);
		if (cuda_download(be->c, out + (size_t)r * nv, be->logits,
				  (size_t)n * nv * sizeof(float)) < 0)
			return fail(be);
	}
	return 0;
}

/* ---- the context shift ------------------------------------------------------------------- */

static int cuda_shift_step(struct backend *b, int keep, int n_discard)
{
	struct cuda_be *be = b->ctx;
	struct model *m = b->m;
	struct kv_cache *kv = &m->kv;
	if (keep < 0 || n_discard < 0 || keep + n_discard > kv->n)
		return kv_cache_shift(kv, keep, n_discard); /* its message */
	if (n_discard == 0)
		return 0;
	int f16 = kv->type == KV_F16;
	for (int l = 0; l < kv->n_layer; l++) {
		int cells = kv->cells[l];
		int32_t *from = be->plan, *to = be->plan + cells;
		int n = kv_cache_shift_plan(kv, l, keep, n_discard, from, to);
		void *k = (char *)be->k + kv->off_k[l] * kv->elem,
		     *v = (char *)be->v + kv->off_v[l] * kv->elem;
		struct cuda_rope_params rp;
		rope_params(be, m->layers[l].rope, 1, &rp);
		/* a ring in one gather-then-scatter (its moves may form cycles);
		 * a full layer by increasing position in batches (kv_cache.h) */
		int step = kv->pos[l] ? n : 4096;
		for (int i = 0; i < n; i += step) {
			int c = n - i < step ? n - i : step;
			int32_t *pair = xcalloc((size_t)2 * c, sizeof(int32_t));
			memcpy(pair, from + i, (size_t)c * sizeof(int32_t));
			memcpy(pair + c, to + i, (size_t)c * sizeof(int32_t));
			int rc = cuda_kv_move(be->c, k, f16, cells, kv->n_head_kv, kv->head_dim_k,
					      pair, c) < 0 ||
				 cuda_kv_move(be->c, v, f16, cells, kv->n_head_kv, kv->head_dim_v,
					      pair, c) < 0 ||
				 cuda_kv_rope(be->c, &rp, k, f16, cells, kv->n_head_kv,
					      kv->head_dim_k, pair + c, c, -n_discard) < 0;
			free(pair);
			if (rc)
				return fail(be);
		}
	}
	if (cuda_sync(be->c) < 0)
		return fail(be);
	return kv_cache_shift(kv, keep, n_discard);
}

/* ---- set-up ------------------------------------------------------------------------------ */

static const char *cuda_describe(struct backend *b)
{
	return ((struct cuda_be *)b->ctx)->desc;
}

static void cuda_be_free(struct backend *b)
{
	struct cuda_be *be = b->ctx;
	if (be) {
		if (be->c) {
			for (int64_t i = 0; be->tensor && i < be->n_tensors; i++)
				cuda_free(be->c, be->tensor[i]);
			for (int i = 0; i < be->n_vec; i++)
				cuda_free(be->c, be->vec[i].dev);
			for (int i = 0; i < BK_NBUF; i++)
				cuda_free(be->c, be->buf[i]);
			cuda_free(be->c, be->logits);
			cuda_free(be->c, be->k);
			cuda_free(be->c, be->v);
			cuda_close(be->c);
		}
		free(be->tensor);
		free(be->vec);
		free(be->plan);
		free(be);
	}
	free(b);
}

static const struct backend_ops cuda_ops = {
	.name = "cuda",
	.embed = cuda_embed_step,
	.matmul = cuda_matmul_step,
	.qkv_store = cuda_qkv_step,
	.attend = cuda_attend_step,
	.logits = cuda_logits_step,
	.kv_shift = cuda_shift_step,
	.describe = cuda_describe,
	.free = cuda_be_free,
};

int backend_cuda_devices(void)
{
	return cuda_device_count();
}

struct backend *backend_cuda_create(struct model *m, int *fallback)
{
	char err[512];
	*fallback = 0;
	/* first: a mixture's layers have more matrices than all_mats() holds */
	if (check_features(m, fallback) < 0 || check_experts(m->g, fallback) < 0)
		return NULL;
	struct backend *b = xcalloc(1, sizeof(*b));
	struct cuda_be *be = xcalloc(1, sizeof(*be));
	b->ops = &cuda_ops;
	b->m = m;
	b->ctx = be;
	int nm = (MODEL_LAYER_MATS + 1) * (m->info.n_layer + 1) + 1;
	const struct mat **mats = xcalloc((size_t)nm, sizeof(*mats));
	nm = all_mats(m, mats);
	int rc = check_types(mats, nm, fallback);
	if (rc == 0 && !(be->c = cuda_open(0, err, sizeof(err))))
		rc = error("cuda: %s", err);
	if (rc == 0)
		rc = upload_tensors(m, be, mats, nm, fallback);
	free(mats);
	if (rc == 0)
		rc = upload_vectors(m, be, fallback);
	if (rc == 0)
		rc = alloc_state(m, be, fallback);
	if (rc == 0 && cuda_sync(be->c) < 0)
		rc = fail(be);
	if (rc < 0) {
		cuda_be_free(b);
		return NULL;
	}
	size_t fr = 0, tot = 0;
	char sz[32] = "?";
	if (cuda_mem_info(be->c, &fr, &tot) == 0)
		format_size(sz, sizeof(sz), tot);
	snprintf(be->desc, sizeof(be->desc), "%s, %s", cuda_device_name(be->c), sz);
	return b;
}
