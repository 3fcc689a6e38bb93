/* Loading a model of any family in the architecture table: metadata, tensors, cache, scratch. */
#include "model.h"

#include "arch.h"
#include "backend.h"
#include "gguf.h"
#include "model_internal.h"
#include "moe.h"
#include "quant.h"
#include "quant_select.h"
#include "readahead.h"
#include "report.h"
#include "threadpool.h"
#include "util.h"
#include "xalloc.h"

#include <errno.h>
#include <math.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

/*
 * DESIGN
 * model_load() reads general.architecture, finds its row in the table
 * (arch.c), reads the common hyperparameters and the family's own keys,
 * then binds every tensor of the row to a field of struct layer, checking
 * presence, shape and type before anything runs, so a wrong file fails
 * with one line naming the tensor.  Weights are views into the GGUF
 * mapping (struct mat); nothing is copied except 1-D norm/bias vectors that
 * are not F32 (converted once) and the matrices repacked into a faster
 * layout.  Fused tensors are cut into views of their rows: phi3's attn_qkv
 * gives wq, wk, wv and its ffn_up gives gate and up, so the forward pass
 * (forward.c) never knows.
 *
 * Read-ahead (readahead.c): the forward pass tells a helper thread where it
 * is, and the helper reads the next layer's weight pages, so that a model
 * whose pages are not (or no longer) in the page cache reads layer i+1 from
 * disk while layer i computes.  It only gives the kernel advice.
 */

/* Extra cells of a sliding-window layer's ring beyond window + chunk, so
 * that a follow-up turn that rewrites up to this many tokens (a /regen of a
 * short reply) still reuses the cache. */
#define RING_SLACK 1024

const char *model_supported_archs(void)
{
	return arch_names();
}

enum model_backend model_backend_named(const char *name)
{
	return !strcmp(name, "cpu")    ? MODEL_BACKEND_CPU
	       : !strcmp(name, "cuda") ? MODEL_BACKEND_CUDA
				       : MODEL_BACKEND_AUTO;
}

void model_params_default(struct model_params *p)
{
	memset(p, 0, sizeof(*p));
	p->kv_type = KV_F16;
	p->prefault = 1;
	p->readahead = 1;
	p->repack = 1;
}

void model_params_probe(struct model_params *p)
{
	model_params_default(p);
	p->n_threads = 1;
	p->n_ctx = 1;
	p->prefault = 0;
	p->readahead = 0;
	p->repack = 0; /* a copy would read the whole file (and need its size in memory) */
}

/* ---- hyperparameters -------------------------------------------------------------------- */

/* What the metadata says, before any tensor is looked at. */
struct hparams {
	const struct arch *arch;
	char arch_name[32];
	uint32_t ctx, embd, nl, ff, nh, nkv, hk, hv, rot;
	uint32_t n_exp, n_exp_used, ff_exp; /* experts (0: dense), per token, their width */
	float rope_base, norm_eps, freq_scale, mscale;
	uint32_t ctx_orig;                              /* rope.scaling.original_context_length */
	float yarn_ext, yarn_beta_fast, yarn_beta_slow; /* YaRN (yarn_ext 0: none) */
	float hp[HP_COUNT]; /* the family's keys (arch_key), or their defaults */
	unsigned char *swa; /* (nl) layer slides, or NULL */
	int n_swa;          /* layers that slide */
};

static void hparams_free(struct hparams *h)
{
	free(h->swa);
	h->swa = NULL;
}

static int key_u32(const struct gguf *g, const char *arch, const char *suffix, uint32_t *out,
		   int required, uint32_t def)
{
	char key[128];
	snprintf(key, sizeof(key), "%s.%s", arch, suffix);
	if (!required)
		return gguf_get_u32_or(g, key, def, out);
	if (!gguf_find_kv(g, key))
		return error("'%s': metadata key '%s' is missing", gguf_path(g), key);
	return gguf_get_u32(g, key, out);
}

static int key_f32(const struct gguf *g, const char *arch, const char *suffix, float *out,
		   float def)
{
	char key[128];
	snprintf(key, sizeof(key), "%s.%s", arch, suffix);
	return gguf_get_f32_or(g, key, def, out);
}

/* rope.scaling.type + factor, or the older rope.scale_linear: h->freq_scale;
 * YaRN's keys (llama.cpp's defaults: extrapolation 1, betas 32 and 1). */
static int load_rope_scaling(const struct gguf *g, struct hparams *h)
{
	const char *a = h->arch_name;
	char key[128];
	struct gguf_str s;
	float factor = 1.0f;
	h->freq_scale = 1.0f;
	snprintf(key, sizeof(key), "%s.rope.scaling.type", a);
	if (gguf_find_kv(g, key)) {
		if (gguf_get_str(g, key, &s) < 0 ||
		    key_f32(g, a, "rope.scaling.factor", &factor, 1.0f) < 0)
			return -1;
		if (!isfinite(factor) || factor < 0)
			return error("'%s': %s.rope.scaling.factor is %g, not a positive number",
				     gguf_path(g), a, (double)factor);
		int yarn = s.len == 4 && !memcmp(s.data, "yarn", 4);
		if (yarn || (s.len == 6 && !memcmp(s.data, "linear", 6))) {
			if (factor > 0)
				h->freq_scale = 1.0f / factor;
		} else if (!(s.len == 4 && !memcmp(s.data, "none", 4))) {
			return error("'%s': rope scaling '%.*s' is not supported (supported: none, "
				     "linear, yarn, llama3 frequency factors, LongRoPE factors)",
				     gguf_path(g), (int)s.len, s.data);
		}
		if (yarn &&
		    (key_f32(g, a, "rope.scaling.yarn_ext_factor", &h->yarn_ext, 1.0f) < 0 ||
		     key_f32(g, a, "rope.scaling.yarn_beta_fast", &h->yarn_beta_fast, 32.0f) < 0 ||
		     key_f32(g, a, "rope.scaling.yarn_beta_slow", &h->yarn_beta_slow, 1.0f) < 0))
			return -1;
		if (yarn && !(factor >= 1 && factor < 1e6 && h->yarn_ext >= 0 && h->yarn_ext <= 1 &&
			      h->yarn_beta_fast > 0 && h->yarn_beta_slow > 0))
			return error("'%s': YaRN scaling (factor %g, extrapolation %g, betas %g "
				     "and %g) is not usable",
				     gguf_path(g), factor, h->yarn_ext, h->yarn_beta_fast,
				     h->yarn_beta_slow);
	} else {
		if (key_f32(g, a, "rope.scale_linear", &factor, 1.0f) < 0)
			return -1;
		if (!isfinite(factor) || factor < 0)
			return error("'%s': %s.rope.scale_linear is %g, not a positive number",
				     gguf_path(g), a, (double)factor);
		if (factor > 0)
			h->freq_scale = 1.0f / factor;
	}
	if (key_f32(g, a, "rope.scaling.attn_factor", &h->mscale, 1.0f) < 0 ||
	    key_u32(g, a, "rope.scaling.original_context_length", &h->ctx_orig, 0, h->ctx) < 0)
		return -1;
	if (!(h->mscale > 0 && h->mscale < 100))
		return error("'%s': rope.scaling.attn_factor %g is not a usable scale",
			     gguf_path(g), h->mscale);
	return 0;
}

/* Which layers slide: the file's attention.sliding_window_pattern (a period
 * or one flag per layer), else the family's period. */
static int load_swa(const struct gguf *g, struct hparams *h)
{
	const struct arch *ar = h->arch;
	if (!ar->swa_pattern || h->hp[HP_SWA_WINDOW] <= 0)
		return 0;
	char key[128];
	snprintf(key, sizeof(key), "%s.attention.sliding_window_pattern", h->arch_name);
	const struct gguf_kv *kv = gguf_find_kv(g, key);
	h->swa = xcalloc(h->nl, 1);
	uint32_t period = (uint32_t)ar->swa_pattern;
	if (kv && kv->type == GGUF_TYPE_ARRAY) {
		enum gguf_vtype t;
		uint64_t n;
		const void *d;
		if (gguf_get_arr(g, key, &t, &n, &d) < 0)
			return -1;
		if (n != h->nl ||
		    (t != GGUF_TYPE_BOOL && t != GGUF_TYPE_UINT8 && t != GGUF_TYPE_INT8))
			return error("'%s': '%s' must hold one flag per layer (%u)", gguf_path(g),
				     key, h->nl);
		for (uint32_t l = 0; l < h->nl; l++)
			h->swa[l] = ((const unsigned char *)d)[l] != 0;
	} else {
		if (kv && gguf_get_u32(g, key, &period) < 0)
			return -1;
		for (uint32_t l = 0; l < h->nl; l++)
			h->swa[l] = period > 0 && l % period < period - 1;
	}
	for (uint32_t l = 0; l < h->nl; l++)
		h->n_swa += h->swa[l];
	return 0;
}

/* The mixture of experts: <arch>.expert_count (0 or absent: dense, unless
 * the family is always a mixture), expert_used_count, and one expert's
 * width, expert_feed_forward_length (absent: the FFN width; for families
 * that are always mixtures, where that key gives no dense width, it divided
 * by the experts used, as llama.cpp reads Qwen's files). */
static int load_experts(const struct gguf *g, struct hparams *h)
{
	const char *a = h->arch_name;
	int always = (h->arch->flags & ARCH_MOE) != 0;
	if (key_u32(g, a, "expert_count", &h->n_exp, always, 0) < 0)
		return -1;
	if (!h->n_exp) {
		if (always)
			return error("'%s': metadata key '%s.expert_count' is 0: a %s model needs "
				     "experts",
				     gguf_path(g), a, a);
		return 0;
	}
	if (key_u32(g, a, "expert_used_count", &h->n_exp_used, 1, 0) < 0)
		return -1;
	if (h->n_exp > 4096 || h->n_exp_used == 0 || h->n_exp_used > h->n_exp)
		return error("'%s': %u experts of which %u are used per token is not a usable "
			     "mixture",
			     gguf_path(g), h->n_exp, h->n_exp_used);
	if (key_u32(g, a, "expert_feed_forward_length", &h->ff_exp, 0,
		    always ? h->ff / h->n_exp_used : h->ff) < 0)
		return -1;
	if (h->ff_exp == 0 || h->ff_exp > (1u << 22))
		return error("'%s': implausible expert width %u", gguf_path(g), h->ff_exp);
	return 0;
}

static int load_hparams(const struct gguf *g, struct hparams *h)
{
	struct gguf_str s;
	memset(h, 0, sizeof(*h));
	if (!gguf_find_kv(g, "general.architecture"))
		return error("'%s': metadata key 'general.architecture' is missing; supported "
			     "architectures: %s",
			     gguf_path(g), arch_names());
	if (gguf_get_str(g, "general.architecture", &s) < 0)
		return -1;
	if (s.len >= sizeof(h->arch_name))
		s.len = sizeof(h->arch_name) - 1;
	memcpy(h->arch_name, s.data, s.len);
	h->arch_name[s.len] = 0;
	if (!(h->arch = arch_find(h->arch_name)))
		return error("'%s': architecture '%s' is not supported (supported: %s)",
			     gguf_path(g), h->arch_name, arch_names());
	const char *a = h->arch_name;
	if (key_u32(g, a, "context_length", &h->ctx, 1, 0) < 0 ||
	    key_u32(g, a, "embedding_length", &h->embd, 1, 0) < 0 ||
	    key_u32(g, a, "block_count", &h->nl, 1, 0) < 0 ||
	    key_u32(g, a, "feed_forward_length", &h->ff, 1, 0) < 0 ||
	    key_u32(g, a, "attention.head_count", &h->nh, 1, 0) < 0)
		return -1;
	if (h->embd == 0 || h->nl == 0 || h->ff == 0 || h->nh == 0 || h->embd > (1u << 20) ||
	    h->nl > 4096 || h->ff > (1u << 22) || h->nh > 4096 || h->ctx == 0 ||
	    h->ctx > (1u << 24))
		return error("'%s': implausible hyperparameters (embedding %u, layers %u, ffn %u, "
			     "heads %u, context %u)",
			     gguf_path(g), h->embd, h->nl, h->ff, h->nh, h->ctx);
	if (key_u32(g, a, "attention.head_count_kv", &h->nkv, 0, h->nh) < 0 ||
	    key_u32(g, a, "attention.key_length", &h->hk, 0, h->embd / h->nh) < 0 ||
	    key_u32(g, a, "attention.value_length", &h->hv, 0, h->embd / h->nh) < 0)
		return -1;
	if (key_u32(g, a, "rope.dimension_count", &h->rot, 0, h->hk) < 0)
		return -1;
	if (h->nkv == 0 || h->nh % h->nkv)
		return error("'%s': %u attention heads cannot share %u KV heads", gguf_path(g),
			     h->nh, h->nkv);
	if (h->hk == 0 || h->hv == 0 || h->hk > 1024 || h->hv > 1024)
		return error("'%s': implausible head size %u/%u", gguf_path(g), h->hk, h->hv);
	if (h->rot > h->hk || h->rot % 2 || h->rot > ROPE_MAX)
		return error("'%s': rope dimension %u does not fit head size %u", gguf_path(g),
			     h->rot, h->hk);
	if (key_f32(g, a, "rope.freq_base", &h->rope_base, 10000.0f) < 0 ||
	    key_f32(g, a, "attention.layer_norm_rms_epsilon", &h->norm_eps, 1e-5f) < 0)
		return -1;
	/* a base that is not positive makes NaN angles, an epsilon that is
	 * negative or NaN NaN norms: garbage with exit 0 unless refused here */
	if (!isfinite(h->rope_base) || h->rope_base <= 0)
		return error("'%s': %s.rope.freq_base is %g, not a positive number", gguf_path(g),
			     a, (double)h->rope_base);
	if (!isfinite(h->norm_eps) || h->norm_eps < 0 || h->norm_eps >= 1)
		return error("'%s': %s.attention.layer_norm_rms_epsilon is %g, not between 0 and 1",
			     gguf_path(g), a, (double)h->norm_eps);
	for (int i = 0; i < h->arch->n_keys; i++) {
		const struct arch_key *k = &h->arch->keys[i];
		uint32_t u;
		if (k->hp == HP_SWA_PATTERN) /* a period or an array: load_swa() */
			continue;
		if (k->is_float) {
			if (key_f32(g, a, k->suffix, &h->hp[k->hp], k->def) < 0)
				return -1;
		} else {
			if (key_u32(g, a, k->suffix, &u, 0, (uint32_t)k->def) < 0)
				return -1;
			h->hp[k->hp] = (float)u;
		}
		if (!isfinite(h->hp[k->hp]) || h->hp[k->hp] < 0)
			return error("'%s': metadata key '%s.%s' is %g, which is not usable",
				     gguf_path(g), a, k->suffix, h->hp[k->hp]);
	}
	if (load_rope_scaling(g, h) < 0 || load_swa(g, h) < 0 || load_experts(g, h) < 0)
		return -1;
	return 0;
}

/* The family's RoPE for full layers and for sliding ones, scales and caps. */
static void setup_family(struct model *m, const struct hparams *h)
{
	struct model_info *in = &m->info;
	m->rope = (struct rope){ .n_rot = (int)h->rot,
				 .neox = h->arch->rope == ROPE_NEOX,
				 .base = h->rope_base,
				 .freq_scale = h->freq_scale,
				 .mscale = h->mscale };
	m->rope_swa = m->rope;
	if (h->hp[HP_ROPE_BASE_SWA] > 0) { /* its own base, unscaled (gemma3) */
		m->rope_swa.base = h->hp[HP_ROPE_BASE_SWA];
		m->rope_swa.freq_scale = 1.0f;
	}
	/* YaRN on every layer, as llama.cpp does (unscaled layers: a no-op) */
	rope_yarn_init(&m->rope, (int)h->ctx_orig, h->yarn_ext, h->yarn_beta_fast,
		       h->yarn_beta_slow);
	rope_yarn_init(&m->rope_swa, (int)h->ctx_orig, h->yarn_ext, h->yarn_beta_fast,
		       h->yarn_beta_slow);
	if (h->arch->query_scale_embd_layers && (int)h->nl == h->arch->query_scale_embd_layers)
		m->attn_scale = 1.0f / sqrtf((float)(h->embd / h->nh));
	else
		m->attn_scale = 1.0f / sqrtf((float)h->hk);
	m->attn_softcap = h->hp[HP_ATTN_SOFTCAP];
	m->final_softcap = h->hp[HP_FINAL_SOFTCAP];
	m->embd_scale = h->arch->flags & ARCH_EMBD_SCALE ? sqrtf((float)h->embd) : 0.0f;
	m->moe_renorm = (h->arch->flags & ARCH_MOE_RENORM) != 0;
	m->moe_group = !m->params.moe_per_token;
	m->n_ctx_orig = (int)h->ctx_orig;
	in->swa_window = h->n_swa ? (int)h->hp[HP_SWA_WINDOW] : 0;
	in->n_swa_layers = h->n_swa;
	in->rope_freq_base_swa = m->rope_swa.base;
}

static void info_from(struct model *m, const struct hparams *h)
{
	struct model_info *in = &m->info;
	snprintf(in->arch, sizeof(in->arch), "%s", h->arch_name);
	in->n_ctx_train = (int)h->ctx;
	in->n_embd = (int)h->embd;
	in->n_layer = (int)h->nl;
	in->n_ff = (int)h->ff;
	in->n_expert = (int)h->n_exp;
	in->n_expert_used = (int)h->n_exp_used;
	in->n_ff_exp = (int)h->ff_exp;
	in->n_head = (int)h->nh;
	in->n_head_kv = (int)h->nkv;
	in->head_dim = (int)h->hk;
	in->head_dim_v = (int)h->hv;
	m->head_dim_v = (int)h->hv;
	in->n_rot = (int)h->rot;
	in->rope_freq_base = h->rope_base;
	in->norm_eps = h->norm_eps;
	struct gguf_str s;
	if (gguf_find_kv(m->g, "general.name") && gguf_get_str(m->g, "general.name", &s) == 0) {
		size_t n = s.len < sizeof(in->name) - 1 ? s.len : sizeof(in->name) - 1;
		memcpy(in->name, s.data, n);
		in->name[n] = 0;
	} else {
		error_clear();
		const char *p = gguf_path(m->g), *b = strrchr(p, '/');
		snprintf(in->name, sizeof(in->name), "%s", b ? b + 1 : p);
	}
}

/* ---- tensors ---------------------------------------------------------------------------- */

static void shape_str(char *buf, size_t n, const int64_t *ne, int nd)
{
	size_t o = 0;
	o += (size_t)snprintf(buf + o, n - o, "[");
	for (int i = 0; i < nd && o < n; i++)
		o += (size_t)snprintf(buf + o, n - o, "%s%lld", i ? ", " : "", (long long)ne[i]);
	if (o < n)
		snprintf(buf + o, n - o, "]");
}

/* Find a tensor, check its shape (nd dims of want) and that palaver can compute its type. */
static const struct gguf_tensor *tensor_get(struct model *m, const char *name, int nd,
					    const int64_t *want, int required)
{
	const struct gguf_tensor *t = gguf_find_tensor(m->g, name);
	if (!t) {
		if (required)
			error("'%s': tensor '%s' is missing", gguf_path(m->g), name);
		else
			error_clear();
		return NULL;
	}
	int ok = t->ne[3] == 1;
	for (int d = 0; d < 3; d++)
		ok &= t->ne[d] == (d < nd ? want[d] : 1);
	if (!ok) {
		char have[96], exp[64];
		shape_str(have, sizeof(have), t->ne, t->n_dims);
		shape_str(exp, sizeof(exp), want, nd);
		error("'%s': tensor '%s' has shape %s, expected %s", gguf_path(m->g), name, have,
		      exp);
		return NULL;
	}
	const struct quant_traits *tr = quant_traits(t->type);
	if (!tr || !tr->supported) {
		error("'%s': tensor '%s' has type %s, which palaver cannot compute",
		      gguf_path(m->g), name, quant_type_name(t->type));
		return NULL;
	}
	if (quant_row_bytes(t->type, t->ne[0], &(size_t){ 0 }) < 0) {
		error("'%s': tensor '%s' has rows of %lld elements, not a multiple of %s's block",
		      gguf_path(m->g), name, (long long)t->ne[0], tr->name);
		return NULL;
	}
	return t;
}

/* A matrix of n rows of k (n_exp = 1), or a 3-D tensor of n_exp of them. */
static int mat_get(struct model *m, struct mat *w, const char *name, int64_t k, int64_t n,
		   int64_t n_exp, int required)
{
	memset(w, 0, sizeof(*w));
	int64_t want[3] = { k, n, n_exp };
	const struct gguf_tensor *t = tensor_get(m, name, n_exp > 1 ? 3 : 2, want, required);
	if (!t)
		return required ? -1 : 0;
	w->t = t;
	w->mapped = w->data = t->data;
	w->type = t->type;
	w->dot_type = quant_traits(t->type)->dot_type;
	w->k = (int)k;
	w->n = (int)n;
	w->n_exp = (int)n_exp;
	quant_row_bytes(t->type, k, &w->row_bytes);
	w->exp_bytes = w->row_bytes * (size_t)n;
	return 0;
}

/* Rows r0 .. r0+n-1 of a fused matrix, as a matrix of its own. */
static struct mat mat_rows(const struct mat *w, int r0, int n)
{
	struct mat v = *w;
	v.mapped = v.data = (const char *)w->data + (size_t)r0 * w->row_bytes;
	v.n = n;
	v.exp_bytes = (size_t)n * w->row_bytes;
	return v;
}

/* A float vector (nd 1: n0 floats) or a row of them (nd 2: n1 vectors of
 * n0, a bias per expert): a view when F32, else converted into an owned
 * buffer. */
static int vecs_get(struct model *m, const float **out, const char *name, int nd, int64_t n0,
		    int64_t n1, int required)
{
	*out = NULL;
	int64_t want[2] = { n0, n1 };
	const struct gguf_tensor *t = tensor_get(m, name, nd, want, required);
	if (!t)
		return required ? -1 : 0;
	if (t->type == QT_F32) {
		*out = t->data;
		return 0;
	}
	size_t rb;
	quant_row_bytes(t->type, n0, &rb);
	float *buf = try_alloc_array((size_t)(n0 * (nd > 1 ? n1 : 1)), sizeof(float));
	if (!buf)
		return error("out of memory converting tensor '%s'", name);
	for (int64_t r = 0; r < (nd > 1 ? n1 : 1); r++)
		quant_dequantize_row(t->type, (const char *)t->data + (size_t)r * rb,
				     buf + (size_t)(r * n0), n0);
	m->owned = xrealloc_array(m->owned, (size_t)m->n_owned + 1, sizeof(*m->owned));
	m->owned[m->n_owned++] = buf;
	*out = buf;
	return 0;
}

static int vec_get(struct model *m, const float **out, const char *name, int64_t n, int required)
{
	return vecs_get(m, out, name, 1, n, 1, required);
}

static int64_t dim_of(const struct model *m, int d)
{
	const struct model_info *in = &m->info;
	int64_t q = (int64_t)in->n_head * in->head_dim, k = (int64_t)in->n_head_kv * in->head_dim,
		v = (int64_t)in->n_head_kv * m->head_dim_v;
	switch (d) {
	case DIM_EMBD: return in->n_embd;
	case DIM_Q: return q;
	case DIM_K: return k;
	case DIM_V: return v;
	case DIM_ATT: return (int64_t)in->n_head * m->head_dim_v;
	case DIM_QKV: return q + k + v;
	case DIM_FF: return in->n_ff;
	case DIM_FF2: return 2 * (int64_t)in->n_ff;
	case DIM_HEAD_K: return in->head_dim;
	case DIM_EXPERT: return in->n_expert;
	case DIM_FF_EXP: return in->n_ff_exp;
	case DIM_HEADS: return in->n_head;
	default: return 0;
	}
}

/* Where a slot's tensor goes in a layer: a matrix or a vector. */
static struct mat *slot_mat(struct layer *L, int slot)
{
	switch (slot) {
	case SLOT_WQ: return &L->wq;
	case SLOT_WK: return &L->wk;
	case SLOT_WV: return &L->wv;
	case SLOT_WQKV: return &L->wqkv;
	case SLOT_WO: return &L->wo;
	case SLOT_GATE: return &L->gate;
	case SLOT_UP: return &L->up;
	case SLOT_GATE_UP: return &L->gate_up;
	case SLOT_DOWN: return &L->down;
	case SLOT_GATE_INP: return &L->gate_inp;
	case SLOT_GATE_EXPS: return &L->gate_exps;
	case SLOT_UP_EXPS: return &L->up_exps;
	case SLOT_DOWN_EXPS: return &L->down_exps;
	default: return NULL;
	}
}

static const float **slot_vec(struct layer *L, int slot)
{
	switch (slot) {
	case SLOT_ATTN_NORM: return &L->attn_norm;
	case SLOT_Q_NORM: return &L->q_norm;
	case SLOT_K_NORM: return &L->k_norm;
	case SLOT_ATTN_POST_NORM: return &L->attn_post_norm;
	case SLOT_FFN_NORM: return &L->ffn_norm;
	case SLOT_FFN_POST_NORM: return &L->ffn_post_norm;
	case SLOT_BQ: return &L->bq;
	case SLOT_BK: return &L->bk;
	case SLOT_BV: return &L->bv;
	case SLOT_BO: return &L->bo;
	case SLOT_SINKS: return &L->sinks;
	case SLOT_GATE_INP_B: return &L->gate_inp_b;
	case SLOT_GATE_EXPS_B: return &L->gate_exps_b;
	case SLOT_UP_EXPS_B: return &L->up_exps_b;
	case SLOT_DOWN_EXPS_B: return &L->down_exps_b;
	default: return NULL;
	}
}

/* Bind layer i's tensors from the family's table row. */
static int load_layer(struct model *m, int i)
{
	struct layer *L = &m->layers[i];
	unsigned found = 0; /* bit per slot */
	char nm[96];
	int moe = m->info.n_expert > 0;
	for (int j = 0; j < m->arch->n_tensors; j++) {
		const struct arch_tensor *at = &m->arch->tensors[j];
		int required = at->need == NEED_REQ;
		if (at->need == NEED_ALT) {
			if (found & (1u << at->alt))
				continue;
			required = 1;
		}
		if (at->need == NEED_DENSE || at->need == NEED_MOE) {
			if (moe != (at->need == NEED_MOE))
				continue; /* the other kind of FFN */
			required = 1;
		}
		snprintf(nm, sizeof(nm), "blk.%d.%s", i, at->name);
		int64_t d0 = dim_of(m, at->dim[0]), d1 = at->nd >= 2 ? dim_of(m, at->dim[1]) : 1;
		struct mat *w = slot_mat(L, at->slot);
		if (w) {
			int64_t ne = at->nd == 3 ? dim_of(m, at->dim[2]) : 1;
			if (mat_get(m, w, nm, d0, d1, ne, required) < 0)
				return -1;
			if (w->t)
				found |= 1u << at->slot;
		} else {
			const float **v = slot_vec(L, at->slot);
			if (vecs_get(m, v, nm, at->nd, d0, d1, required) < 0)
				return -1;
			if (*v)
				found |= 1u << at->slot;
		}
	}
	if (L->wqkv.t) { /* q | k | v rows */
		int q = (int)dim_of(m, DIM_Q), k = (int)dim_of(m, DIM_K), v = (int)dim_of(m, DIM_V);
		L->wq = mat_rows(&L->wqkv, 0, q);
		L->wk = mat_rows(&L->wqkv, q, k);
		L->wv = mat_rows(&L->wqkv, q + k, v);
	}
	if (L->gate_up.t) { /* gate | up rows */
		L->gate = mat_rows(&L->gate_up, 0, m->info.n_ff);
		L->up = mat_rows(&L->gate_up, m->info.n_ff, m->info.n_ff);
	}
	return 0;
}

static int load_tensors(struct model *m, const struct hparams *h)
{
	struct model_info *in = &m->info;
	int64_t E = in->n_embd;
	const struct gguf_tensor *te = gguf_find_tensor(m->g, "token_embd.weight");
	if (!te)
		return error("'%s': tensor 'token_embd.weight' is missing", gguf_path(m->g));
	if (te->ne[1] <= 0 || te->ne[1] > (1 << 24))
		return error("'%s': tensor 'token_embd.weight' has an implausible vocabulary of "
			     "%lld",
			     gguf_path(m->g), (long long)te->ne[1]);
	in->n_vocab = (int)te->ne[1];
	if (mat_get(m, &m->tok_embd, "token_embd.weight", E, in->n_vocab, 1, 1) < 0)
		return -1;
	if (vec_get(m, &m->output_norm, "output_norm.weight", E, 1) < 0)
		return -1;
	if (mat_get(m, &m->output, "output.weight", E, in->n_vocab, 1, 0) < 0)
		return -1;
	if (!m->output.t)
		m->output = m->tok_embd; /* tied embeddings */

	/* frequency factors: llama 3's rope_freqs, or LongRoPE's long and
	 * short sets, chosen as llama.cpp does by the context in use */
	const float *ff = NULL, *fl = NULL, *fs = NULL;
	int half = in->n_rot / 2;
	if (vec_get(m, &ff, "rope_freqs.weight", half, 0) < 0 ||
	    vec_get(m, &fl, "rope_factors_long.weight", half, 0) < 0 ||
	    vec_get(m, &fs, "rope_factors_short.weight", half, 0) < 0)
		return -1;
	if (!ff && (fl || fs))
		ff = m->params.n_ctx > m->n_ctx_orig && fl ? fl : fs ? fs : fl;
	m->rope.factors = ff;
	if (h->hp[HP_ROPE_BASE_SWA] <= 0)
		m->rope_swa.factors = ff;

	m->layers = xcalloc((size_t)in->n_layer, sizeof(*m->layers));
	for (int i = 0; i < in->n_layer; i++) {
		if (load_layer(m, i) < 0)
			return -1;
		m->layers[i].window = h->swa && h->swa[i] ? in->swa_window : 0;
		m->layers[i].rope = m->layers[i].window ? &m->rope_swa : &m->rope;
	}
	return 0;
}

/* Sizes, dominant type and the bytes a decode step reads. */
static void count_tensors(struct model *m)
{
	struct model_info *in = &m->info;
	uint64_t by_type[QT_COUNT] = { 0 };
	for (int64_t i = 0; i < gguf_n_tensors(m->g); i++) {
		const struct gguf_tensor *t = gguf_tensor_at(m->g, i);
		in->n_params += (uint64_t)(t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3]);
		in->weight_bytes += t->nbytes;
		if (t != m->tok_embd.t || m->output.t == m->tok_embd.t)
			in->decode_bytes += t->nbytes;
		if (t->n_dims >= 2 && !strncmp(t->name, "blk.", 4) && t->type >= 0 &&
		    t->type < QT_COUNT)
			by_type[t->type] += t->nbytes;
	}
	/* a token reads n_expert_used of each mixture's n_expert matrices */
	uint64_t exp_total = 0;
	int moe_layers = 0;
	for (int l = 0; l < in->n_layer; l++) {
		struct layer *L = &m->layers[l];
		const struct mat *ex[3] = { &L->gate_exps, &L->up_exps, &L->down_exps };
		moe_layers += L->gate_inp.t != NULL;
		for (int i = 0; i < 3; i++) {
			if (!ex[i]->t)
				continue;
			exp_total += ex[i]->t->nbytes;
			in->decode_bytes -= ex[i]->t->nbytes;
			in->decode_bytes += ex[i]->exp_bytes * (uint64_t)in->n_expert_used;
		}
	}
	if (moe_layers)
		in->expert_bytes = exp_total / ((uint64_t)moe_layers * (uint64_t)in->n_expert);
	int best = m->tok_embd.type;
	for (int t = 0; t < QT_COUNT; t++)
		if (by_type[t] > by_type[best])
			best = t;
	in->weight_type = best;
	snprintf(in->type_name, sizeof(in->type_name), "%s", quant_type_name(best));
	in->file_bytes = gguf_file_size(m->g);
}

static int cancelled(const struct model *m)
{
	return m->params.cancel && atomic_load(m->params.cancel);
}

/* Read one byte per page of every tensor so the first token does not fault them in. */
static int prefault(struct model *m)
{
	uint64_t total = m->info.weight_bytes, done = 0;
	volatile unsigned char sink = 0;
	for (int64_t i = 0; i < gguf_n_tensors(m->g); i++) {
		const struct gguf_tensor *t = gguf_tensor_at(m->g, i);
		if (cancelled(m))
			return error("cancelled");
		if (m->params.prefault) {
			/* a large tensor from a slow disk takes seconds: look at the
			 * flag every 16 MiB too */
			const unsigned char *p = t->data;
			for (uint64_t o = 0; o < t->nbytes; o += 4096) {
				if (!(o & ((16u << 20) - 1)) && o && cancelled(m))
					return error("cancelled");
				sink ^= p[o];
			}
		}
		done += t->nbytes;
		if (m->params.progress && (m->params.prefault || i + 1 == gguf_n_tensors(m->g)))
			m->params.progress(m->params.progress_ud, done, total);
	}
	(void)sink;
	return 0;
}

int model_layer_mats(struct model *m, int l, struct mat **all)
{
	int n = 0;
	if (l == m->info.n_layer) {
		all[n++] = &m->output;
		return n;
	}
	struct layer *L = &m->layers[l];
	struct mat *each[] = { &L->wq,        &L->wk,      &L->wv,       &L->wo,
			       &L->gate,      &L->up,      &L->down,     &L->gate_inp,
			       &L->gate_exps, &L->up_exps, &L->down_exps };
	for (size_t i = 0; i < sizeof(each) / sizeof(each[0]); i++)
		if (each[i]->t)
			all[n++] = each[i];
	return n;
}

/*
 * The type a matrix is copied to at load, or -1 to read it from the
 * mapping: a repacked layout (quant_repack_type), or a float type's own:
 * decode's float tiles read four rows side by side, each row a page or
 * more, and from 2 MiB pages they ran 1.07-1.41x (F16) and 1.19-1.35x
 * (BF16) the mapping's speed (1B files, two threads, four interleaved
 * pairs, 2026-12-05); the K and I quants, whose rows are a fraction of a
 * page, measured no faster copied (0.79-1.04x) and stay mapped.
 */
static int load_layout(const struct mat *w)
{
	int rt = quant_repack_type(w->type, w->k);
	if (rt >= 0)
		return rt;
	return w->type == QT_F16 || w->type == QT_BF16 || w->type == QT_F32 ? w->type : -1;
}

/*
 * Copy the weight matrices that have a faster load-time layout (see
 * load_layout: Q8_0, Q4_0 with AVX-512 VNNI; the float types) into it.  The copy is as large
 * as the tensor; the file's pages of it are then released from this
 * process (MADV_DONTNEED on a read-only private mapping drops them, the
 * page cache keeps them), so the resident size stays about the same.
 */
static int repack_weights(struct model *m)
{
	struct model_info *in = &m->info;
	/* Pass 0 sizes one arena for every copy, pass 1 fills it.  One arena,
	 * 2 MiB aligned and advised as huge pages: decode streams these bytes,
	 * and with 4 KiB pages the hardware prefetchers stop at every page
	 * boundary (a huge page per tensor would waste up to 2 MiB on each). */
	size_t total = 0, hp = (size_t)2 << 20;
	char *arena = NULL;
	for (int pass = 0; pass < 2; pass++) {
		size_t off = 0;
		for (int l = 0; l <= in->n_layer; l++) {
			struct mat *all[MODEL_LAYER_MATS];
			int n = model_layer_mats(m, l, all);
			for (int i = 0; i < n; i++) {
				struct mat *w = all[i];
				int rt = load_layout(w);
				int copy = rt == w->type;
				if (rt < 0 || w->data != w->mapped)
					continue;
				size_t bytes = mat_bytes(w);
				int rows = w->n * w->n_exp;
				size_t at = off;
				off += (bytes + 63) & ~(size_t)63;
				if (pass == 0)
					continue;
				char *buf = arena + at;
				if (cancelled(m))
					return error("cancelled");
				/* a few MiB at a time, releasing the file's pages as they
				 * are done, so that the peak holds one chunk twice */
				int step = (int)((4u << 20) / w->row_bytes) + 1;
				uintptr_t done = (uintptr_t)w->data; /* released up to here */
				for (int r = 0; r < rows; r += step) {
					if (r && cancelled(m))
						return error("cancelled");
					int nr = rows - r < step ? rows - r : step;
					size_t ro = (size_t)r * w->row_bytes;
					if (copy)
						memcpy(buf + ro, (const char *)w->data + ro,
						       (size_t)nr * w->row_bytes);
					else
						quant_repack_rows(w->type, w->k,
								  (const char *)w->data + ro,
								  w->row_bytes, nr, buf + ro);
					uintptr_t a = (done + 4095) & ~(uintptr_t)4095;
					uintptr_t b = ((uintptr_t)w->data + ro +
						       (size_t)nr * w->row_bytes) &
						      ~(uintptr_t)4095;
					if (b > a) {
						madvise((void *)a, b - a, MADV_DONTNEED);
						done = b;
					}
				}
				w->data = buf;
				w->type = rt;
				in->repacked_bytes += bytes;
			}
		}
		if (pass == 0) {
			if (!off)
				return 0;
			total = (off + hp - 1) / hp * hp;
			void *p = NULL;
			if (posix_memalign(&p, hp, total) != 0)
				return error(
					"'%s': cannot allocate %zu bytes to repack the weights",
					gguf_path(m->g), off);
			madvise(p, total, MADV_HUGEPAGE);
			arena = p;
			m->repacked = xcalloc(1, sizeof(*m->repacked));
			m->repacked[m->n_repacked++] = arena;
		}
	}
	return 0;
}

/* Per tensor index: 1 when the forward pass no longer reads it from the
 * mapping (every view of it repacked into a copy).  NULL on out of memory. */
static unsigned char *unmapped_tensors(struct model *m)
{
	int64_t nt = gguf_n_tensors(m->g);
	size_t n0 = (size_t)(nt > 0 ? nt : 1);
	unsigned char *skip = try_alloc_array(n0, 1), *mapped = try_alloc_array(n0, 1);
	if (!skip || !mapped) {
		free(skip);
		free(mapped);
		return NULL;
	}
	memset(skip, 0, n0);
	memset(mapped, 0, n0);
	const struct gguf_tensor *t0 = gguf_tensor_at(m->g, 0);
	for (int l = 0; l <= m->info.n_layer; l++) {
		struct mat *all[MODEL_LAYER_MATS];
		int n = model_layer_mats(m, l, all);
		for (int i = 0; i < n; i++) {
			if (!all[i]->t)
				continue;
			if (all[i]->data != all[i]->mapped)
				skip[all[i]->t - t0] = 1;
			else
				mapped[all[i]->t - t0] = 1;
		}
	}
	for (size_t i = 0; i < n0; i++)
		if (mapped[i])
			skip[i] = 0;
	free(mapped);
	/* tied embeddings: the output's copy does not replace the rows the
	 * embedding lookup reads */
	skip[m->tok_embd.t - t0] = 0;
	return skip;
}

/*
 * Lock (op = mlock) or unlock the first `count` pieces of what the forward
 * pass reads: each tensor still read from the mapping (page-aligned), then
 * each repacked copy.  Returns the pieces done before a failure (errno
 * set), or all of them; *bytes sums their sizes.
 */
static int lock_pieces(struct model *m, const unsigned char *skip, int (*op)(const void *, size_t),
		       int count, uint64_t *bytes)
{
	int k = 0;
	long ps = sysconf(_SC_PAGESIZE);
	uintptr_t page = ps > 0 ? (uintptr_t)ps : 4096;
	*bytes = 0;
	for (int64_t i = 0; i < gguf_n_tensors(m->g) && k < count; i++) {
		const struct gguf_tensor *t = gguf_tensor_at(m->g, i);
		if (skip[i] || !t->nbytes)
			continue;
		uintptr_t a = (uintptr_t)t->data & ~(page - 1);
		size_t len = (size_t)((uintptr_t)t->data + t->nbytes - a);
		if (op((const void *)a, len) < 0)
			return k;
		*bytes += t->nbytes;
		k++;
	}
	for (int l = 0; l <= m->info.n_layer && k < count; l++) {
		struct mat *all[MODEL_LAYER_MATS];
		int n = model_layer_mats(m, l, all);
		for (int i = 0; i < n && k < count; i++) {
			if (!all[i]->t || all[i]->data == all[i]->mapped)
				continue;
			size_t len = mat_bytes(all[i]);
			if (op(all[i]->data, len) < 0)
				return k;
			*bytes += len;
			k++;
		}
	}
	return k;
}

/* model_warning() holds every warning of the load, "; "-separated. */
static void add_warning(struct model *m, const char *w)
{
	if (!m->warning) {
		m->warning = xstrdup(w);
		return;
	}
	size_t a = strlen(m->warning), b = strlen(w);
	m->warning = xrealloc(m->warning, a + b + 3);
	memcpy(m->warning + a, "; ", 2);
	memcpy(m->warning + a + 2, w, b + 1);
}

static int op_count(const void *p, size_t n)
{
	(void)p;
	(void)n;
	return 0;
}

/*
 * mlock what the forward pass reads (the tensors still in the mapping and
 * the repacked copies: pinning file pages that a copy replaced would only
 * waste memory).  A failure undoes the locks taken and leaves a warning
 * naming the file, the size, the reason and the limit; the model goes on
 * unpinned, as llama.cpp does.
 */
static void lock_weights(struct model *m, const unsigned char *skip)
{
	uint64_t bytes, total;
	int all = lock_pieces(m, skip, op_count, INT32_MAX, &total);
	int done = lock_pieces(m, skip, mlock, all, &bytes);
	if (done == all) {
		m->info.locked = 1;
		m->info.locked_bytes = bytes;
		return;
	}
	int e = errno;
	lock_pieces(m, skip, munlock, done, &bytes);
	char sz[32], lim[32] = "unlimited";
	struct rlimit rl;
	format_size(sz, sizeof(sz), total);
	if (getrlimit(RLIMIT_MEMLOCK, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
		format_size(lim, sizeof(lim), (uint64_t)rl.rlim_cur);
	char buf[1024];
	snprintf(buf, sizeof(buf),
		 "cannot lock '%s' (%s) in memory: %s; the weights stay unpinned (locked-memory "
		 "limit %s: raise it with 'ulimit -l')",
		 gguf_path(m->g), sz, strerror(e), lim);
	add_warning(m, buf);
}

static int alloc_scratch(struct model *m)
{
	struct model_info *in = &m->info;
	size_t B = (size_t)m->n_batch;
	int att_w =
		in->n_head * m->head_dim_v > in->n_embd ? in->n_head * m->head_dim_v : in->n_embd;
	struct {
		float **p;
		size_t n;
	} bufs[] = {
		{ &m->x, (size_t)in->n_embd },
		{ &m->xn, (size_t)att_w },
		{ &m->q, (size_t)in->n_head * in->head_dim },
		{ &m->k, (size_t)in->n_head_kv * in->head_dim },
		{ &m->v, (size_t)in->n_head_kv * m->head_dim_v },
		{ &m->tmp, (size_t)in->n_embd },
		{ &m->gate, (size_t)in->n_ff },
		{ &m->up, (size_t)in->n_ff },
	};
	for (size_t i = 0; i < sizeof(bufs) / sizeof(bufs[0]); i++) {
		size_t n;
		if (size_mul(B, bufs[i].n, &n) ||
		    !(*bufs[i].p = try_alloc_aligned(n, sizeof(float))))
			return error("cannot allocate scratch buffers for a batch of %zu tokens",
				     B);
	}
	/* the widest activation row any matmul takes, in its dot type */
	struct mat *all[MODEL_LAYER_MATS];
	size_t mx = 0;
	for (int l = 0; l <= in->n_layer; l++) {
		int n = model_layer_mats(m, l, all);
		for (int i = 0; i < n; i++) {
			size_t rb;
			int dt = all[i]->dot_type;
			if (quant_row_bytes(dt, all[i]->k, &rb) < 0)
				return error(
					"'%s': tensor '%s' rows do not fit its activation type %s",
					gguf_path(m->g), all[i]->t->name, quant_type_name(dt));
			if (rb > mx)
				mx = rb;
		}
	}
	m->act_row_max = (mx + 63) & ~(size_t)63;
	for (int i = 0; i < 2; i++)
		if (!(m->act[i] = try_alloc_aligned(B, m->act_row_max)))
			return error("cannot allocate activation buffers for %zu tokens", B);
	if (!in->n_expert)
		return 0;
	/* the mixture's (token, expert) pairs of a chunk */
	size_t P = B * (size_t)in->n_expert_used, n;
	struct {
		float **p;
		size_t per; /* floats per token, or per pair */
		size_t rows;
	} moe[] = {
		{ &m->moe_logits, (size_t)in->n_expert, B },
		{ &m->moe_w, (size_t)in->n_expert_used, B },
		{ &m->moe_gate, (size_t)in->n_ff_exp, P },
		{ &m->moe_up, (size_t)in->n_ff_exp, P },
		{ &m->moe_out, (size_t)in->n_embd, P },
	};
	for (size_t i = 0; i < sizeof(moe) / sizeof(moe[0]); i++)
		if (size_mul(moe[i].rows, moe[i].per, &n) ||
		    !(*moe[i].p = try_alloc_aligned(n, sizeof(float))))
			return error(
				"cannot allocate the experts' buffers for a batch of %zu tokens",
				B);
	m->moe_ids = try_alloc_array(P, sizeof(int32_t));
	m->moe_act = try_alloc_aligned(P, m->act_row_max);
	if (!m->moe_ids || !m->moe_act || P > INT32_MAX)
		return error("cannot allocate the experts' buffers for a batch of %zu tokens", B);
	if (!(m->moe_g = moe_groups_new(in->n_expert, (int)P)))
		return -1;
	return 0;
}

/* Repacked copies are anonymous memory, which nothing can evict: with
 * weights larger than the memory available they would end the process,
 * while the mapping still runs (slowly).  Then keep the file's layout. */
static int repack_fits(struct model *m)
{
	uint64_t avail = readahead_memory_available();
	if (!avail || m->info.weight_bytes <= avail)
		return 1;
	char w[32], a[32], buf[512];
	format_size(w, sizeof(w), m->info.weight_bytes);
	format_size(a, sizeof(a), avail);
	snprintf(buf, sizeof(buf),
		 "'%s': not repacking the weights (%s) at load: they exceed the memory "
		 "available (%s), so they stay memory-mapped",
		 gguf_path(m->g), w, a);
	add_warning(m, buf);
	return 0;
}

/* After repacking: pin (params.mlock) and the read-ahead table and helper,
 * both over what the forward pass still reads from the mapping. */
static int mapped_setup(struct model *m)
{
	struct model_info *in = &m->info;
	unsigned char *skip = unmapped_tensors(m);
	if (!skip)
		return error("out of memory");
	if (m->params.mlock)
		lock_weights(m, skip);
	m->ra = readahead_create(m->g, in->n_layer, m->output.t == m->tok_embd.t, skip);
	free(skip);
	if (!m->ra)
		return -1;
	if (m->params.readahead && !in->locked) {
		int rc = readahead_start(m->ra);
		if (rc < 0)
			return -1;
		in->readahead = rc;
	}
	return 0;
}

/* backend.h's CUDA entry points are linked only into CUDA builds (make
 * CUDA=1, and the tests under the emulation): weak references are NULL
 * elsewhere. */
#pragma weak backend_cuda_create
#pragma weak backend_cuda_devices

/*
 * The CUDA backend when params.backend asks for it (or auto finds a
 * device): it allocates the cache on the device, so m->kv keeps only the
 * bookkeeping.  Leaves m->backend NULL for the CPU: auto without CUDA in
 * the build or a device, or a device that cannot hold the model (a
 * warning says why).  -1 with error() when CUDA was asked for and is
 * absent, or for a failure the CPU would not avoid.
 */
static int open_device(struct model *m, struct kv_shape *ks)
{
	enum model_backend want = m->params.backend;
	const char *path = gguf_path(m->g);
	if (want == MODEL_BACKEND_CPU)
		return 0;
	if (!backend_cuda_create || !backend_cuda_devices) {
		if (want == MODEL_BACKEND_CUDA)
			return error("the cuda backend is not in this build (make CUDA=1)");
		return 0;
	}
	if (backend_cuda_devices() <= 0) {
		if (want == MODEL_BACKEND_CUDA)
			return error("no CUDA device found");
		return 0;
	}
	ks->no_data = 1;
	if (kv_cache_init_shape(&m->kv, m->params.kv_type, ks) < 0) {
		error_prefix("'%s': ", path);
		return -1;
	}
	int fallback = 0;
	m->backend = backend_cuda_create(m, &fallback);
	if (m->backend)
		return 0;
	kv_cache_free(&m->kv);
	if (!fallback && want == MODEL_BACKEND_CUDA) {
		error_prefix("'%s': ", path);
		return -1;
	}
	if (!strcmp(error_message(), "cancelled"))
		return -1;
	char buf[1024];
	snprintf(buf, sizeof(buf), "'%s': running on the CPU: %s", path, error_message());
	error_clear();
	add_warning(m, buf);
	return 0;
}

struct model *model_load(const char *path, const struct model_params *p)
{
	struct model *m = xcalloc(1, sizeof(*m));
	struct hparams h = { 0 };
	/* the kernel levels decide which layouts repacking makes: first */
	quant_select_ensure(NULL);
	if (p)
		m->params = *p;
	else
		model_params_default(&m->params);
	m->g = gguf_open_cancellable(path, m->params.cancel);
	if (!m->g || load_hparams(m->g, &h) < 0)
		goto fail;
	m->arch = h.arch;
	info_from(m, &h);
	setup_family(m, &h);
	struct model_info *in = &m->info;
	int n_ctx = m->params.n_ctx ? m->params.n_ctx : in->n_ctx_train;
	if (n_ctx < 0 || n_ctx > in->n_ctx_train) {
		error("'%s': context of %d tokens is larger than the model's %d", path, n_ctx,
		      in->n_ctx_train);
		goto fail;
	}
	m->params.n_ctx = n_ctx;
	if (load_tensors(m, &h) < 0)
		goto fail;
	count_tensors(m);
	m->n_batch = m->params.n_batch > 0 ? m->params.n_batch : 256;
	if (m->n_batch > n_ctx)
		m->n_batch = n_ctx;
	in->n_ctx = n_ctx;
	in->n_batch = m->n_batch;
	in->kv_type = m->params.kv_type;
	int *win = xcalloc((size_t)in->n_layer, sizeof(int));
	for (int l = 0; l < in->n_layer; l++)
		win[l] = m->layers[l].window;
	struct kv_shape ks = { .n_layer = in->n_layer,
			       .n_ctx = n_ctx,
			       .n_head_kv = in->n_head_kv,
			       .head_dim_k = in->head_dim,
			       .head_dim_v = m->head_dim_v,
			       .window = win,
			       .ring = model_ring_cells(in->swa_window, m->n_batch,
							m->params.ring_slack) };
	int rc = open_device(m, &ks);
	if (rc == 0 && !m->backend) { /* the CPU holds the cache */
		ks.no_data = 0;
		rc = kv_cache_init_shape(&m->kv, m->params.kv_type, &ks);
		if (rc < 0)
			error_prefix("'%s': ", path);
	}
	free(win);
	if (rc < 0)
		goto fail;
	in->kv_bytes = m->kv.bytes;
	if (!m->backend) {
		if (prefault(m) < 0 || alloc_scratch(m) < 0)
			goto fail;
		if (m->params.repack && repack_fits(m) && repack_weights(m) < 0)
			goto fail;
		if (mapped_setup(m) < 0)
			goto fail;
	} else if (!(m->ra = readahead_create(m->g, in->n_layer, m->output.t == m->tok_embd.t,
					      NULL))) {
		/* the weights are on the device: the table only answers the
		 * diagnostics, and its helper never starts */
		goto fail;
	}
	m->pool = threadpool_create(m->params.n_threads);
	if (!m->pool || model_alloc_att(m, threadpool_size(m->pool)) < 0)
		goto fail;
	in->n_threads = threadpool_size(m->pool);
	if (!m->backend)
		m->backend = backend_cpu_create(m);
	snprintf(in->backend, sizeof(in->backend), "%s", m->backend->ops->name);
	if (m->backend->ops->describe)
		snprintf(in->device, sizeof(in->device), "%s",
			 m->backend->ops->describe(m->backend));
	if (in->n_expert && !m->backend->ops->moe_ffn) {
		/* a device backend that has not learnt mixtures says so here */
		error("'%s': the %s backend cannot run a mixture of experts", path,
		      m->backend->ops->name);
		goto fail;
	}
	hparams_free(&h);
	return m;
fail:
	hparams_free(&h);
	model_free(m);
	return NULL;
}

int model_ring_cells(int window, int n_batch, int slack)
{
	if (window <= 0)
		return 0;
	int r = window - 1 + n_batch + (slack > 0 ? slack : RING_SLACK);
	return (r + ATT_BLOCK - 1) / ATT_BLOCK * ATT_BLOCK;
}

int model_memory_estimate(const char *path, const struct model_params *p, struct model_memory *out)
{
	struct hparams h;
	memset(out, 0, sizeof(*out));
	struct gguf *g = gguf_open_cancellable(path, p->cancel);
	if (!g)
		return -1;
	if (load_hparams(g, &h) < 0) {
		hparams_free(&h);
		gguf_close(g);
		return -1;
	}
	for (int64_t i = 0; i < gguf_n_tensors(g); i++)
		out->weights += gguf_tensor_at(g, i)->nbytes;
	uint64_t n_vocab = 0;
	const struct gguf_kv *tk = gguf_find_kv(g, "tokenizer.ggml.tokens");
	if (tk)
		n_vocab = tk->arr_n;
	gguf_close(g);
	uint64_t n_ctx = p->n_ctx > 0 ? (uint64_t)p->n_ctx : h.ctx;
	uint64_t B = p->n_batch > 0 ? (uint64_t)p->n_batch : 256;
	if (B > n_ctx && n_ctx)
		B = n_ctx;
	int *win = xcalloc(h.nl, sizeof(int));
	for (uint32_t l = 0; l < h.nl; l++)
		win[l] = h.swa && h.swa[l] ? (int)h.hp[HP_SWA_WINDOW] : 0;
	struct kv_shape ks = { .n_layer = (int)h.nl,
			       .n_ctx = (int)n_ctx,
			       .n_head_kv = (int)h.nkv,
			       .head_dim_k = (int)h.hk,
			       .head_dim_v = (int)h.hv,
			       .window = win,
			       .ring = model_ring_cells((int)h.hp[HP_SWA_WINDOW], (int)B,
							p->ring_slack) };
	out->kv = kv_cache_bytes_shape(p->kv_type, &ks);
	free(win);
	/* per batch token: x, xn, q, k, v, tmp, gate, up (floats) and two
	 * activation rows; plus the logits row */
	uint64_t embd = h.embd, ff = h.ff, wide = ff > embd ? ff : embd;
	uint64_t per_tok = 4ull * (3ull * embd + (uint64_t)h.nh * h.hk + (uint64_t)h.nh * h.hv +
				   2ull * h.nkv * h.hk + 2ull * ff) +
			   2ull * 4ull * wide;
	if (h.n_exp) { /* router logits, and per (token, expert) pair: gate, up,
			* down's output, an activation row, its id and weight */
		uint64_t fe = h.ff_exp, wide_e = fe > embd ? fe : embd;
		per_tok += 4ull * h.n_exp +
			   (uint64_t)h.n_exp_used * (4ull * (2ull * fe + embd) + 4ull * wide_e + 8);
	}
	out->scratch = B * per_tok + 4ull * n_vocab;
	hparams_free(&h);
	return 0;
}

void model_free(struct model *m)
{
	if (!m)
		return;
	backend_free(m->backend);
	readahead_free(m->ra);
	free(m->warning);
	threadpool_free(m->pool);
	kv_cache_free(&m->kv);
	float *bufs[] = { m->x, m->xn, m->q, m->k, m->v, m->tmp, m->gate, m->up, m->att };
	for (size_t i = 0; i < sizeof(bufs) / sizeof(bufs[0]); i++)
		free(bufs[i]);
	free(m->act[0]);
	free(m->act[1]);
	float *moe[] = { m->moe_logits, m->moe_w, m->moe_gate, m->moe_up, m->moe_out };
	for (size_t i = 0; i < sizeof(moe) / sizeof(moe[0]); i++)
		free(moe[i]);
	free(m->moe_ids);
	free(m->moe_act);
	moe_groups_free(m->moe_g);
	for (int i = 0; i < m->n_owned; i++)
		free(m->owned[i]);
	free(m->owned);
	for (int i = 0; i < m->n_repacked; i++)
		free(m->repacked[i]);
	free(m->repacked);
	free(m->layers);
	if (m->g)
		gguf_close(m->g);
	free(m);
}

const struct model_info *model_info(const struct model *m)
{
	return &m->info;
}

const struct gguf *model_gguf(const struct model *m)
{
	return m->g;
}

int model_n_past(const struct model *m)
{
	return m->kv.n;
}

const int32_t *model_kv_tokens(const struct model *m)
{
	return m->kv.tokens;
}

const struct kv_cache *model_kv(const struct model *m)
{
	return &m->kv;
}

struct kv_cache *model_kv_writable(struct model *m)
{
	return &m->kv;
}

uint64_t model_kv_read_bytes(const struct model *m, int pos)
{
	const struct kv_cache *kv = &m->kv;
	uint64_t per = (uint64_t)kv->n_head_kv * (kv->head_dim_k + kv->head_dim_v) * kv->elem,
		 b = 0;
	for (int l = 0; l < kv->n_layer; l++) {
		int n = pos + 1;
		if (kv->window[l] && n > kv->window[l])
			n = kv->window[l];
		b += per * (uint64_t)n;
	}
	return b;
}

int model_kv_truncate(struct model *m, int n)
{
	return kv_cache_truncate(&m->kv, n);
}

const char *model_warning(const struct model *m)
{
	return m->warning;
}

void model_ra_stats_enable(struct model *m, int on)
{
	m->ra_stats = on;
	if (on)
		memset(&m->ras, 0, sizeof(m->ras));
}

void model_ra_stats_get(const struct model *m, struct model_ra_stats *out)
{
	*out = m->ras;
	out->requested = readahead_pages_requested(m->ra);
	out->evictions = readahead_evictions(m->ra);
}

const struct readahead *model_readahead(const struct model *m)
{
	return m->ra;
}
