/* The transformer forward pass for llama and qwen2 GGUF models on the CPU. */
#include "model.h"

#include "gguf.h"
#include "quant.h"
#include "readahead.h"
#include "report.h"
#include "threadpool.h"
#include "util.h"
#include "xalloc.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>
#if defined(__AVX2__) && defined(__F16C__) && defined(__FMA__)
#include <immintrin.h>
#define MODEL_AVX2 1
#endif

/*
 * DESIGN
 * Weights are views into the GGUF mapping (struct mat); nothing is copied
 * except 1-D norm/bias vectors that are not F32 (converted once at load).
 *
 * A forward chunk of ntok tokens runs layer by layer as a fixed sequence of
 * thread-pool runs, each split so that all threads finish together:
 *   prep     x += tmp (residual), RMS norm, quantize to the weights' dot type
 *   matmul   Q,K,V (one run for the three) -- every thread takes its share
 *            of each matrix's rows; gemv for one token, gemm for a batch
 *   rope     biases, RoPE on q and k, store k and v into the cache
 *   attend   one item per (token, head): online softmax over the cache in
 *            blocks of ATT_BLOCK positions, causal (position <= own)
 *   prep + matmul (wo), prep (residual + ffn norm) + matmul (gate, up),
 *   swiglu   silu(gate) * up, quantized for down
 *   matmul (down)
 * The activations are quantized once per matmul group (one buffer per
 * distinct dot type, shared read-only by all threads).  With one token the
 * row-wise steps run on the caller alone (no pool round trip).
 *
 * Results do not depend on the thread count: every output element is
 * computed by exactly one thread with the same code and order.
 *
 * Read-ahead (readahead.c): layer_begin() tells a helper thread where the
 * pass is, and the helper reads the next layer's weight pages, so that a
 * model whose pages are not (or no longer) in the page cache reads layer
 * i+1 from disk while layer i computes.  It only gives the kernel advice:
 * results never depend on it.
 */

#define ATT_BLOCK 32
#define ATT_QBLOCK 8 /* prefill tokens per attention item */
#define MAX_ROT 512

struct mat {
	const struct gguf_tensor *t;
	const void *data; /* the file's bytes, or a repacked copy (model->repacked) */
	int type;         /* the file's type, or the repacked one (QT_Q8_0_R4, QT_Q4_0_R4) */
	int dot_type;     /* activation format its dot products take */
	int k;            /* input length (ne[0]) */
	int n;            /* output rows (ne[1]) */
	size_t row_bytes;
};

struct layer {
	const float *attn_norm; /* (n_embd) */
	const float *ffn_norm;  /* (n_embd) */
	const float *bq;        /* (n_head * head_dim) or NULL */
	const float *bk;        /* (n_head_kv * head_dim) or NULL */
	const float *bv;        /* (n_head_kv * head_dim_v) or NULL */
	struct mat wq, wk, wv, wo, gate, up, down;
};

enum arch { ARCH_LLAMA, ARCH_QWEN2 };

struct model {
	struct gguf *g;
	struct model_info info;
	struct model_params params;
	enum arch arch;
	int neox; /* rope pairs (i, i + n_rot/2) instead of (2i, 2i+1) */
	int head_dim_v;
	float freq_scale;        /* linear rope scaling: 1 / factor */
	const float *rope_freqs; /* (n_rot / 2) llama 3.1 frequency factors, or NULL */

	struct mat tok_embd;      /* (n_vocab rows of n_embd) */
	struct mat output;        /* tok_embd when tied */
	const float *output_norm; /* (n_embd) */
	struct layer *layers;     /* (n_layer) */

	float **owned; /* converted 1-D tensors */
	int n_owned;
	void **repacked; /* weight copies in a load-time layout (struct mat.data) */
	int n_repacked;

	struct kv_cache kv;
	struct threadpool *pool;
	struct readahead *ra;      /* per-layer page ranges; its helper runs when info.readahead */
	int ra_stats;              /* count resident pages at each layer start */
	struct model_ra_stats ras; /* those counts */
	char *warning;             /* model_warning(), or NULL */

	/* scratch, sized for n_batch tokens */
	int n_batch;
	float *x;    /* (n_batch, n_embd) residual stream */
	float *xn;   /* (n_batch, max(n_embd, n_head*head_dim_v)) normed input / attention output */
	float *q;    /* (n_batch, n_head * head_dim) */
	float *k;    /* (n_batch, n_head_kv * head_dim) */
	float *v;    /* (n_batch, n_head_kv * head_dim_v) */
	float *tmp;  /* (n_batch, n_embd) wo / down output */
	float *gate; /* (n_batch, n_ff) */
	float *up;   /* (n_batch, n_ff) */
	void *act[2]; /* (n_batch, act_row_max bytes) quantized activations, per dot type */
	size_t act_row_max;
	int profile; /* collect prof */
	struct model_profile prof;
	float *att; /* (nth, ATT_BLOCK + head_dim_v) per-thread attention scratch */
	int att_nth;
	size_t att_stride; /* floats of att per thread */
};

static const char supported_archs[] = "llama, qwen2";

const char *model_supported_archs(void)
{
	return supported_archs;
}

void model_params_default(struct model_params *p)
{
	memset(p, 0, sizeof(*p));
	p->kv_type = KV_F16;
	p->prefault = 1;
	p->readahead = 1;
	p->repack = 1;
}

/* ---- small vector kernels ------------------------------------------------------------- */

static float dot_f32(const float *a, const float *b, int n)
{
	int i = 0;
	float s = 0;
#ifdef MODEL_AVX2
	__m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
	for (; i + 16 <= n; i += 16) {
		acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
		acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8),
				       acc1);
	}
	acc0 = _mm256_add_ps(acc0, acc1);
	__m128 h = _mm_add_ps(_mm256_castps256_ps128(acc0), _mm256_extractf128_ps(acc0, 1));
	h = _mm_add_ps(h, _mm_movehl_ps(h, h));
	h = _mm_add_ss(h, _mm_movehdup_ps(h));
	s = _mm_cvtss_f32(h);
#endif
	for (; i < n; i++)
		s += a[i] * b[i];
	return s;
}

static void rms_norm(float *out, const float *x, const float *w, int n, float eps)
{
	double ss = 0;
	for (int i = 0; i < n; i++)
		ss += (double)x[i] * x[i];
	float scale = 1.0f / sqrtf((float)(ss / n) + eps);
	for (int i = 0; i < n; i++)
		out[i] = x[i] * scale * w[i];
}

/* ---- loading -------------------------------------------------------------------------- */

static void shape_str(char *buf, size_t n, const int64_t *ne, int nd)
{
	size_t o = 0;
	o += (size_t)snprintf(buf + o, n - o, "[");
	for (int i = 0; i < nd && o < n; i++)
		o += (size_t)snprintf(buf + o, n - o, "%s%lld", i ? ", " : "", (long long)ne[i]);
	if (o < n)
		snprintf(buf + o, n - o, "]");
}

/* Find a tensor, check its shape (nd dims: ne0, ne1) and that palaver can compute its type. */
static const struct gguf_tensor *tensor_get(struct model *m, const char *name, int nd, int64_t ne0,
					    int64_t ne1, int required)
{
	const struct gguf_tensor *t = gguf_find_tensor(m->g, name);
	if (!t) {
		if (required)
			error("'%s': tensor '%s' is missing", gguf_path(m->g), name);
		else
			error_clear();
		return NULL;
	}
	int64_t want[2] = { ne0, ne1 };
	int ok = t->ne[0] == ne0 && (nd == 1 ? 1 : t->ne[1] == ne1) && t->ne[2] == 1 &&
		 t->ne[3] == 1 && (nd == 2 || t->ne[1] == 1);
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

static int mat_get(struct model *m, struct mat *w, const char *name, int64_t k, int64_t n,
		   int required)
{
	memset(w, 0, sizeof(*w));
	const struct gguf_tensor *t = tensor_get(m, name, 2, k, n, required);
	if (!t)
		return required ? -1 : 0;
	w->t = t;
	w->data = t->data;
	w->type = t->type;
	w->dot_type = quant_traits(t->type)->dot_type;
	w->k = (int)k;
	w->n = (int)n;
	quant_row_bytes(t->type, k, &w->row_bytes);
	return 0;
}

/* A 1-D float vector: a view when F32, else converted into an owned buffer. */
static int vec_get(struct model *m, const float **out, const char *name, int64_t n, int required)
{
	*out = NULL;
	const struct gguf_tensor *t = tensor_get(m, name, 1, n, 1, required);
	if (!t)
		return required ? -1 : 0;
	if (t->type == QT_F32) {
		*out = t->data;
		return 0;
	}
	float *buf = try_alloc_array((size_t)n, sizeof(float));
	if (!buf)
		return error("out of memory converting tensor '%s'", name);
	quant_dequantize_row(t->type, t->data, buf, n);
	m->owned = xrealloc_array(m->owned, (size_t)m->n_owned + 1, sizeof(*m->owned));
	m->owned[m->n_owned++] = buf;
	*out = buf;
	return 0;
}

static int key_u32(struct model *m, const char *suffix, uint32_t *out, int required, uint32_t def)
{
	char key[128];
	snprintf(key, sizeof(key), "%s.%s", m->info.arch, suffix);
	if (!required)
		return gguf_get_u32_or(m->g, key, def, out);
	if (!gguf_find_kv(m->g, key))
		return error("'%s': metadata key '%s' is missing", gguf_path(m->g), key);
	return gguf_get_u32(m->g, key, out);
}

static int key_f32(struct model *m, const char *suffix, float *out, float def)
{
	char key[128];
	snprintf(key, sizeof(key), "%s.%s", m->info.arch, suffix);
	return gguf_get_f32_or(m->g, key, def, out);
}

static int load_hparams(struct model *m)
{
	struct model_info *in = &m->info;
	struct gguf_str s;
	if (!gguf_find_kv(m->g, "general.architecture"))
		return error("'%s': metadata key 'general.architecture' is missing; supported "
			     "architectures: %s",
			     gguf_path(m->g), supported_archs);
	if (gguf_get_str(m->g, "general.architecture", &s) < 0)
		return -1;
	if (s.len >= sizeof(in->arch))
		s.len = sizeof(in->arch) - 1;
	memcpy(in->arch, s.data, s.len);
	in->arch[s.len] = 0;
	if (!strcmp(in->arch, "llama")) {
		m->arch = ARCH_LLAMA;
	} else if (!strcmp(in->arch, "qwen2")) {
		m->arch = ARCH_QWEN2;
		m->neox = 1;
	} else {
		return error("'%s': architecture '%s' is not supported (supported: %s)",
			     gguf_path(m->g), in->arch, supported_archs);
	}

	uint32_t ctx, embd, nl, ff, nh, nkv, hk, hv, rot;
	if (key_u32(m, "context_length", &ctx, 1, 0) < 0 ||
	    key_u32(m, "embedding_length", &embd, 1, 0) < 0 ||
	    key_u32(m, "block_count", &nl, 1, 0) < 0 ||
	    key_u32(m, "feed_forward_length", &ff, 1, 0) < 0 ||
	    key_u32(m, "attention.head_count", &nh, 1, 0) < 0)
		return -1;
	if (embd == 0 || nl == 0 || ff == 0 || nh == 0 || embd > (1u << 20) || nl > 4096 ||
	    ff > (1u << 22) || nh > 4096 || ctx == 0 || ctx > (1u << 24))
		return error("'%s': implausible hyperparameters (embedding %u, layers %u, ffn %u, "
			     "heads %u, context %u)",
			     gguf_path(m->g), embd, nl, ff, nh, ctx);
	if (key_u32(m, "attention.head_count_kv", &nkv, 0, nh) < 0 ||
	    key_u32(m, "attention.key_length", &hk, 0, embd / nh) < 0 ||
	    key_u32(m, "attention.value_length", &hv, 0, embd / nh) < 0)
		return -1;
	if (key_u32(m, "rope.dimension_count", &rot, 0, hk) < 0)
		return -1;
	if (nkv == 0 || nh % nkv)
		return error("'%s': %u attention heads cannot share %u KV heads", gguf_path(m->g),
			     nh, nkv);
	if (hk == 0 || hv == 0 || hk > 1024 || hv > 1024)
		return error("'%s': implausible head size %u/%u", gguf_path(m->g), hk, hv);
	if (rot > hk || rot % 2 || rot > MAX_ROT)
		return error("'%s': rope dimension %u does not fit head size %u", gguf_path(m->g),
			     rot, hk);
	if (key_f32(m, "rope.freq_base", &in->rope_freq_base, 10000.0f) < 0 ||
	    key_f32(m, "attention.layer_norm_rms_epsilon", &in->norm_eps, 1e-5f) < 0)
		return -1;
	/* a base that is not positive makes NaN angles, an epsilon that is
	 * negative or NaN NaN norms: garbage with exit 0 unless refused here */
	if (!isfinite(in->rope_freq_base) || in->rope_freq_base <= 0)
		return error("'%s': %s.rope.freq_base is %g, not a positive number",
			     gguf_path(m->g), in->arch, (double)in->rope_freq_base);
	if (!isfinite(in->norm_eps) || in->norm_eps < 0 || in->norm_eps >= 1)
		return error("'%s': %s.attention.layer_norm_rms_epsilon is %g, not between 0 and 1",
			     gguf_path(m->g), in->arch, (double)in->norm_eps);

	/* rope scaling: rope.scaling.type + factor, or the older rope.scale_linear */
	m->freq_scale = 1.0f;
	char key[128];
	snprintf(key, sizeof(key), "%s.rope.scaling.type", in->arch);
	float factor = 1.0f;
	if (gguf_find_kv(m->g, key)) {
		if (gguf_get_str(m->g, key, &s) < 0)
			return -1;
		if (key_f32(m, "rope.scaling.factor", &factor, 1.0f) < 0)
			return -1;
		if (!isfinite(factor) || factor < 0)
			return error("'%s': %s.rope.scaling.factor is %g, not a positive number",
				     gguf_path(m->g), in->arch, (double)factor);
		if (s.len == 6 && !memcmp(s.data, "linear", 6)) {
			if (factor > 0)
				m->freq_scale = 1.0f / factor;
		} else if (!(s.len == 4 && !memcmp(s.data, "none", 4))) {
			return error("'%s': rope scaling '%.*s' is not supported (supported: none, "
				     "linear, llama3 frequency factors)",
				     gguf_path(m->g), (int)s.len, s.data);
		}
	} else {
		if (key_f32(m, "rope.scale_linear", &factor, 1.0f) < 0)
			return -1;
		if (!isfinite(factor) || factor < 0)
			return error("'%s': %s.rope.scale_linear is %g, not a positive number",
				     gguf_path(m->g), in->arch, (double)factor);
		if (factor > 0)
			m->freq_scale = 1.0f / factor;
	}

	in->n_ctx_train = (int)ctx;
	in->n_embd = (int)embd;
	in->n_layer = (int)nl;
	in->n_ff = (int)ff;
	in->n_head = (int)nh;
	in->n_head_kv = (int)nkv;
	in->head_dim = (int)hk;
	m->head_dim_v = (int)hv;
	in->n_rot = (int)rot;

	if (gguf_find_kv(m->g, "general.name") && gguf_get_str(m->g, "general.name", &s) == 0) {
		size_t n = s.len < sizeof(in->name) - 1 ? s.len : sizeof(in->name) - 1;
		memcpy(in->name, s.data, n);
		in->name[n] = 0;
	} else {
		error_clear();
		const char *p = gguf_path(m->g), *b = strrchr(p, '/');
		snprintf(in->name, sizeof(in->name), "%s", b ? b + 1 : p);
	}
	return 0;
}

static int load_tensors(struct model *m)
{
	struct model_info *in = &m->info;
	int64_t E = in->n_embd, hd = in->head_dim, hv = m->head_dim_v;
	int64_t nq = in->n_head * hd, nk = in->n_head_kv * hd, nv = in->n_head_kv * hv;
	int64_t F = in->n_ff;
	const struct gguf_tensor *te = gguf_find_tensor(m->g, "token_embd.weight");
	if (!te)
		return error("'%s': tensor 'token_embd.weight' is missing", gguf_path(m->g));
	if (te->ne[1] <= 0 || te->ne[1] > (1 << 24))
		return error("'%s': tensor 'token_embd.weight' has an implausible vocabulary of "
			     "%lld",
			     gguf_path(m->g), (long long)te->ne[1]);
	in->n_vocab = (int)te->ne[1];
	if (mat_get(m, &m->tok_embd, "token_embd.weight", E, in->n_vocab, 1) < 0)
		return -1;
	if (vec_get(m, &m->output_norm, "output_norm.weight", E, 1) < 0)
		return -1;
	if (mat_get(m, &m->output, "output.weight", E, in->n_vocab, 0) < 0)
		return -1;
	if (!m->output.t)
		m->output = m->tok_embd; /* tied embeddings */
	const struct gguf_tensor *rf = gguf_find_tensor(m->g, "rope_freqs.weight");
	if (rf && vec_get(m, &m->rope_freqs, "rope_freqs.weight", in->n_rot / 2, 1) < 0)
		return -1;

	m->layers = xcalloc((size_t)in->n_layer, sizeof(*m->layers));
	for (int i = 0; i < in->n_layer; i++) {
		struct layer *L = &m->layers[i];
		char nm[96];
#define NAME(s) (snprintf(nm, sizeof(nm), "blk.%d.%s", i, s), nm)
		if (vec_get(m, &L->attn_norm, NAME("attn_norm.weight"), E, 1) < 0 ||
		    vec_get(m, &L->ffn_norm, NAME("ffn_norm.weight"), E, 1) < 0 ||
		    mat_get(m, &L->wq, NAME("attn_q.weight"), E, nq, 1) < 0 ||
		    mat_get(m, &L->wk, NAME("attn_k.weight"), E, nk, 1) < 0 ||
		    mat_get(m, &L->wv, NAME("attn_v.weight"), E, nv, 1) < 0 ||
		    mat_get(m, &L->wo, NAME("attn_output.weight"), in->n_head * hv, E, 1) < 0 ||
		    mat_get(m, &L->gate, NAME("ffn_gate.weight"), E, F, 1) < 0 ||
		    mat_get(m, &L->up, NAME("ffn_up.weight"), E, F, 1) < 0 ||
		    mat_get(m, &L->down, NAME("ffn_down.weight"), F, E, 1) < 0)
			return -1;
		int need_bias = m->arch == ARCH_QWEN2;
		if (vec_get(m, &L->bq, NAME("attn_q.bias"), nq, need_bias) < 0 ||
		    vec_get(m, &L->bk, NAME("attn_k.bias"), nk, need_bias) < 0 ||
		    vec_get(m, &L->bv, NAME("attn_v.bias"), nv, need_bias) < 0)
			return -1;
#undef NAME
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

/* The matrices of layer l (n_layer: the output), into all[7]; their count. */
static int layer_mats(struct model *m, int l, struct mat **all)
{
	int n = 0;
	if (l == m->info.n_layer) {
		all[n++] = &m->output;
	} else {
		struct layer *L = &m->layers[l];
		all[n++] = &L->wq, all[n++] = &L->wk, all[n++] = &L->wv, all[n++] = &L->wo;
		all[n++] = &L->gate, all[n++] = &L->up, all[n++] = &L->down;
	}
	return n;
}

/*
 * Copy the weight matrices that have a faster load-time layout
 * (quant_repack_type: Q8_0, Q4_0 with AVX-512 VNNI) into it.  The copy is as large
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
			struct mat *all[7];
			int n = layer_mats(m, l, all);
			for (int i = 0; i < n; i++) {
				struct mat *w = all[i];
				int rt = quant_repack_type(w->type, w->k);
				if (rt < 0 || w->data != w->t->data)
					continue;
				size_t bytes = w->row_bytes * (size_t)w->n;
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
				for (int r = 0; r < w->n; r += step) {
					if (r && cancelled(m))
						return error("cancelled");
					int nr = w->n - r < step ? w->n - r : step;
					size_t ro = (size_t)r * w->row_bytes;
					quant_repack_rows(w->type, w->k, (const char *)w->data + ro,
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
 * mapping (repacked into a copy).  NULL on out of memory. */
static unsigned char *unmapped_tensors(struct model *m)
{
	int64_t nt = gguf_n_tensors(m->g);
	unsigned char *skip = try_alloc_array((size_t)(nt > 0 ? nt : 1), 1);
	if (!skip)
		return NULL;
	memset(skip, 0, (size_t)(nt > 0 ? nt : 1));
	const struct gguf_tensor *t0 = gguf_tensor_at(m->g, 0);
	for (int l = 0; l <= m->info.n_layer; l++) {
		struct mat *all[7];
		int n = layer_mats(m, l, all);
		for (int i = 0; i < n; i++)
			if (all[i]->t && all[i]->data != all[i]->t->data)
				skip[all[i]->t - t0] = 1;
	}
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
		struct mat *all[7];
		int n = layer_mats(m, l, all);
		for (int i = 0; i < n && k < count; i++) {
			if (!all[i]->t || all[i]->data == all[i]->t->data)
				continue;
			size_t len = all[i]->row_bytes * (size_t)all[i]->n;
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
	struct mat *all[7];
	size_t mx = 0;
	for (int l = 0; l <= in->n_layer; l++) {
		int n = layer_mats(m, l, all);
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
	return 0;
}

static int alloc_att(struct model *m, int nth)
{
	/* per thread, the larger of attend_group's and attend_block's needs:
	 * scores and accumulators per query, converted K/V rows, max and sum */
	size_t G = (size_t)(m->info.n_head / m->info.n_head_kv);
	size_t hv = (size_t)m->head_dim_v, hd = (size_t)m->info.head_dim;
	size_t grp = G * (ATT_BLOCK + hv) + hd + ATT_BLOCK * hv + 2 * G;
	size_t nq = G * ATT_QBLOCK;
	size_t blk = nq * (ATT_BLOCK + hv) + ATT_BLOCK * (hd + hv) + 2 * nq;
	m->att_stride = ((grp > blk ? grp : blk) + 16 + 15) & ~(size_t)15;
	free(m->att);
	m->att = try_alloc_aligned((size_t)nth * m->att_stride, sizeof(float));
	if (!m->att)
		return error("out of memory");
	m->att_nth = nth;
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

struct model *model_load(const char *path, const struct model_params *p)
{
	struct model *m = xcalloc(1, sizeof(*m));
	if (p)
		m->params = *p;
	else
		model_params_default(&m->params);
	m->g = gguf_open_cancellable(path, m->params.cancel);
	if (!m->g)
		goto fail;
	if (load_hparams(m) < 0 || load_tensors(m) < 0)
		goto fail;
	count_tensors(m);
	struct model_info *in = &m->info;

	int n_ctx = m->params.n_ctx ? m->params.n_ctx : in->n_ctx_train;
	if (n_ctx < 0 || n_ctx > in->n_ctx_train) {
		error("'%s': context of %d tokens is larger than the model's %d", path, n_ctx,
		      in->n_ctx_train);
		goto fail;
	}
	m->n_batch = m->params.n_batch > 0 ? m->params.n_batch : 256;
	if (m->n_batch > n_ctx)
		m->n_batch = n_ctx;
	in->n_ctx = n_ctx;
	in->n_batch = m->n_batch;
	in->kv_type = m->params.kv_type;
	if (prefault(m) < 0)
		goto fail;
	if (kv_cache_init(&m->kv, m->params.kv_type, in->n_layer, n_ctx, in->n_head_kv,
			  in->head_dim, m->head_dim_v) < 0) {
		error_prefix("'%s': ", path);
		goto fail;
	}
	in->kv_bytes = m->kv.bytes;
	if (alloc_scratch(m) < 0)
		goto fail;
	if (m->params.repack && repack_fits(m) && repack_weights(m) < 0)
		goto fail;
	if (mapped_setup(m) < 0)
		goto fail;
	m->pool = threadpool_create(m->params.n_threads);
	if (!m->pool || alloc_att(m, threadpool_size(m->pool)) < 0)
		goto fail;
	in->n_threads = threadpool_size(m->pool);
	return m;
fail:
	model_free(m);
	return NULL;
}

void model_free(struct model *m)
{
	if (!m)
		return;
	readahead_free(m->ra);
	free(m->warning);
	threadpool_free(m->pool);
	kv_cache_free(&m->kv);
	float *bufs[] = { m->x, m->xn, m->q, m->k, m->v, m->tmp, m->gate, m->up, m->att };
	for (size_t i = 0; i < sizeof(bufs) / sizeof(bufs[0]); i++)
		free(bufs[i]);
	free(m->act[0]);
	free(m->act[1]);
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

int model_kv_truncate(struct model *m, int n)
{
	return kv_cache_truncate(&m->kv, n);
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
	if (alloc_att(m, threadpool_size(tp)) < 0) {
		threadpool_free(tp);
		return -1;
	}
	threadpool_free(m->pool);
	m->pool = tp;
	m->info.n_threads = threadpool_size(tp);
	return 0;
}

/* ---- RoPE ----------------------------------------------------------------------------- */

/* cos/sin for each rotated pair at position pos (llama.cpp's recurrence for theta). */
static void rope_table(const struct model *m, float pos, float *cs, float *sn)
{
	int half = m->info.n_rot / 2;
	float theta_scale = powf(m->info.rope_freq_base, -2.0f / (float)m->info.n_rot);
	float theta = pos;
	for (int i = 0; i < half; i++) {
		float t = theta;
		if (m->rope_freqs)
			t /= m->rope_freqs[i];
		t *= m->freq_scale;
		cs[i] = cosf(t);
		sn[i] = sinf(t);
		theta *= theta_scale;
	}
}

static void rope_apply(const struct model *m, float *x, int n_heads, int hd, const float *cs,
		       const float *sn)
{
	int half = m->info.n_rot / 2;
	for (int h = 0; h < n_heads; h++) {
		float *v = x + (size_t)h * hd;
		if (m->neox) {
			for (int i = 0; i < half; i++) {
				float a = v[i], b = v[i + half];
				v[i] = a * cs[i] - b * sn[i];
				v[i + half] = a * sn[i] + b * cs[i];
			}
		} else {
			for (int i = 0; i < half; i++) {
				float a = v[2 * i], b = v[2 * i + 1];
				v[2 * i] = a * cs[i] - b * sn[i];
				v[2 * i + 1] = a * sn[i] + b * cs[i];
			}
		}
	}
}

int model_kv_shift(struct model *m, int keep, int n_discard)
{
	struct kv_cache *kv = &m->kv;
	if (kv_cache_shift(kv, keep, n_discard) < 0)
		return -1;
	if (n_discard == 0)
		return 0;
	float cs[MAX_ROT / 2], sn[MAX_ROT / 2], row[1024];
	rope_table(m, (float)-n_discard, cs, sn);
	int hd = kv->head_dim_k;
	for (int l = 0; l < kv->n_layer; l++)
		for (int h = 0; h < kv->n_head_kv; h++)
			for (int p = keep; p < kv->n; p++) {
				void *k = kv_cache_k(kv, l, h, p);
				if (kv->type == KV_F32) {
					rope_apply(m, k, 1, hd, cs, sn);
					continue;
				}
				quant_half *kh = k;
				for (int i = 0; i < hd; i++)
					row[i] = quant_f16_to_f32(kh[i]);
				rope_apply(m, row, 1, hd, cs, sn);
				for (int i = 0; i < hd; i++)
					kh[i] = quant_f32_to_f16(row[i]);
			}
	return 0;
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

/* ---- forward -------------------------------------------------------------------------- */

/* Rows t0..t1 of the activations: optional residual add, optional norm, then quantize. */
struct prep_job {
	struct model *m;
	int ntok;
	const float *add;  /* (ntok, width) added into x first, or NULL */
	const float *norm; /* norm weights (width) applied x -> xn, or NULL: src is used as is */
	const float *src;  /* (ntok, width) when norm is NULL */
	int width;
	int src_stride;   /* floats between rows of src (and of x/xn) */
	int dot_types[2]; /* quantize into act[0], act[1] (-1 = unused) */
	int swiglu;       /* src = gate: gate = silu(gate) * up first */
};

static void prep_rows(void *arg, int ith, int nth)
{
	struct prep_job *j = arg;
	struct model *m = j->m;
	int t0, t1;
	threadpool_split(j->ntok, ith, nth, 1, &t0, &t1);
	for (int t = t0; t < t1; t++) {
		const float *row;
		if (j->add) {
			float *x = m->x + (size_t)t * m->info.n_embd;
			const float *a = j->add + (size_t)t * m->info.n_embd;
			for (int i = 0; i < m->info.n_embd; i++)
				x[i] += a[i];
		}
		if (j->norm) {
			float *xn = m->xn + (size_t)t * j->width;
			rms_norm(xn, m->x + (size_t)t * m->info.n_embd, j->norm, j->width,
				 m->info.norm_eps);
			row = xn;
		} else {
			row = j->src + (size_t)t * j->src_stride;
		}
		if (j->swiglu) {
			float *g = m->gate + (size_t)t * m->info.n_ff;
			const float *u = m->up + (size_t)t * m->info.n_ff;
			for (int i = 0; i < m->info.n_ff; i++)
				g[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
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
 * out_i = W_i * input for the group: prepare (add/norm/swiglu as in pj) and
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
			if (pj->swiglu) {
				pj->swiglu = 0;
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

/* Biases, RoPE, store k/v for tokens at positions pos0 .. pos0+ntok-1. */
struct rope_job {
	struct model *m;
	int layer;
	int pos0;
	int ntok;
};

static void rope_rows(void *arg, int ith, int nth)
{
	struct rope_job *j = arg;
	struct model *m = j->m;
	const struct layer *L = &m->layers[j->layer];
	int nq = m->info.n_head * m->info.head_dim, nk = m->info.n_head_kv * m->info.head_dim;
	int nv = m->info.n_head_kv * m->head_dim_v;
	float cs[MAX_ROT / 2], sn[MAX_ROT / 2];
	int t0, t1;
	threadpool_split(j->ntok, ith, nth, 1, &t0, &t1);
	for (int t = t0; t < t1; t++) {
		float *q = m->q + (size_t)t * nq, *k = m->k + (size_t)t * nk,
		      *v = m->v + (size_t)t * nv;
		if (L->bq)
			for (int i = 0; i < nq; i++)
				q[i] += L->bq[i];
		if (L->bk)
			for (int i = 0; i < nk; i++)
				k[i] += L->bk[i];
		if (L->bv)
			for (int i = 0; i < nv; i++)
				v[i] += L->bv[i];
		rope_table(m, (float)(j->pos0 + t), cs, sn);
		rope_apply(m, q, m->info.n_head, m->info.head_dim, cs, sn);
		rope_apply(m, k, m->info.n_head_kv, m->info.head_dim, cs, sn);
		kv_cache_store(&m->kv, j->layer, j->pos0 + t, k, v);
	}
}

struct attn_job {
	struct model *m;
	int layer;
	int pos0;
	int ntok;
};

static void f16_row(float *dst, const quant_half *src, int n)
{
	int i = 0;
#ifdef MODEL_AVX2
	for (; i + 8 <= n; i += 8)
		_mm256_storeu_ps(dst + i,
				 _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + i))));
#endif
	for (; i < n; i++)
		dst[i] = quant_f16_to_f32(src[i]);
}

/*
 * x[i] = exp(x[i] - m) for i < n (all x[i] <= m), returning their sum.
 * Eight at a time with a Cephes-style polynomial (relative error ~2e-7, as
 * expf for softmax weights), the tail with expf; the result for an element
 * depends only on its index, never on the thread that computes it.
 */
static float exp_sub_sum(float *x, int n, float m)
{
	int i = 0;
	float sum = 0;
#ifdef MODEL_AVX2
	const __m256 vm = _mm256_set1_ps(m), lo = _mm256_set1_ps(-87.3f);
	const __m256 log2e = _mm256_set1_ps(1.44269504088896341f);
	const __m256 c1 = _mm256_set1_ps(0.693359375f), c2 = _mm256_set1_ps(-2.12194440e-4f);
	__m256 vs = _mm256_setzero_ps();
	for (; i + 8 <= n; i += 8) {
		__m256 v = _mm256_max_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i), vm), lo);
		__m256 k = _mm256_round_ps(_mm256_mul_ps(v, log2e),
					   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
		__m256 r = _mm256_fnmadd_ps(k, c1, v);
		r = _mm256_fnmadd_ps(k, c2, r);
		__m256 p = _mm256_set1_ps(1.9875691500e-4f);
		p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
		p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
		p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
		p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
		p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
		__m256 y = _mm256_fmadd_ps(_mm256_mul_ps(p, r), r,
					   _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
		__m256i e = _mm256_slli_epi32(_mm256_cvtps_epi32(k), 23);
		y = _mm256_castsi256_ps(_mm256_add_epi32(_mm256_castps_si256(y), e));
		_mm256_storeu_ps(x + i, y);
		vs = _mm256_add_ps(vs, y);
	}
	float lanes[8];
	_mm256_storeu_ps(lanes, vs);
	for (int l = 0; l < 8; l++)
		sum += lanes[l];
#endif
	for (; i < n; i++) {
		x[i] = expf(x[i] - m);
		sum += x[i];
	}
	return sum;
}

/*
 * a[d] += sum over i < n of w[i] * rows[i][d] (rows hv floats apart), one
 * fused multiply-add per term in key order, whatever the vector width: the
 * accumulators stay in registers across the keys of a block.
 */
static void accumulate_rows(float *a, const float *w, const float *rows, int n, int hv)
{
	int d = 0;
#if defined(__AVX512F__)
	for (; d + 64 <= hv; d += 64) {
		__m512 s0 = _mm512_loadu_ps(a + d), s1 = _mm512_loadu_ps(a + d + 16);
		__m512 s2 = _mm512_loadu_ps(a + d + 32), s3 = _mm512_loadu_ps(a + d + 48);
		for (int i = 0; i < n; i++) {
			const float *r = rows + (size_t)i * hv + d;
			__m512 wi = _mm512_set1_ps(w[i]);
			s0 = _mm512_fmadd_ps(wi, _mm512_loadu_ps(r), s0);
			s1 = _mm512_fmadd_ps(wi, _mm512_loadu_ps(r + 16), s1);
			s2 = _mm512_fmadd_ps(wi, _mm512_loadu_ps(r + 32), s2);
			s3 = _mm512_fmadd_ps(wi, _mm512_loadu_ps(r + 48), s3);
		}
		_mm512_storeu_ps(a + d, s0);
		_mm512_storeu_ps(a + d + 16, s1);
		_mm512_storeu_ps(a + d + 32, s2);
		_mm512_storeu_ps(a + d + 48, s3);
	}
	for (; d + 16 <= hv; d += 16) {
		__m512 s0 = _mm512_loadu_ps(a + d);
		for (int i = 0; i < n; i++)
			s0 = _mm512_fmadd_ps(_mm512_set1_ps(w[i]),
					     _mm512_loadu_ps(rows + (size_t)i * hv + d), s0);
		_mm512_storeu_ps(a + d, s0);
	}
#elif defined(MODEL_AVX2)
	for (; d + 32 <= hv; d += 32) {
		__m256 s0 = _mm256_loadu_ps(a + d), s1 = _mm256_loadu_ps(a + d + 8);
		__m256 s2 = _mm256_loadu_ps(a + d + 16), s3 = _mm256_loadu_ps(a + d + 24);
		for (int i = 0; i < n; i++) {
			const float *r = rows + (size_t)i * hv + d;
			__m256 wi = _mm256_set1_ps(w[i]);
			s0 = _mm256_fmadd_ps(wi, _mm256_loadu_ps(r), s0);
			s1 = _mm256_fmadd_ps(wi, _mm256_loadu_ps(r + 8), s1);
			s2 = _mm256_fmadd_ps(wi, _mm256_loadu_ps(r + 16), s2);
			s3 = _mm256_fmadd_ps(wi, _mm256_loadu_ps(r + 24), s3);
		}
		_mm256_storeu_ps(a + d, s0);
		_mm256_storeu_ps(a + d + 8, s1);
		_mm256_storeu_ps(a + d + 16, s2);
		_mm256_storeu_ps(a + d + 24, s3);
	}
#endif
	for (; d < hv; d++) {
		float s0 = a[d];
		for (int i = 0; i < n; i++)
			s0 = fmaf(w[i], rows[(size_t)i * hv + d], s0);
		a[d] = s0;
	}
}

/*
 * One (token, KV head): the G query heads that share the KV head together,
 * so each K and V row is read (and converted from F16) once for all of them.
 * Online softmax per head over positions 0 .. pos, in blocks.
 */
static void attend_group(struct model *m, int layer, int t, int g, int pos, float *scratch)
{
	const struct kv_cache *kv = &m->kv;
	int hd = m->info.head_dim, hv = m->head_dim_v, nh = m->info.n_head;
	int G = nh / m->info.n_head_kv;
	const float *q0 = m->q + (size_t)t * nh * hd + (size_t)g * G * hd;
	float *out0 = m->xn + (size_t)t * nh * hv + (size_t)g * G * hv;
	float *sc = scratch;                     /* (G, ATT_BLOCK) */
	float *acc = sc + (size_t)G * ATT_BLOCK; /* (G, hv) */
	float *kf = acc + (size_t)G * hv;        /* (hd) */
	float *vf = kf + hd;                     /* (ATT_BLOCK, hv) */
	float *mx = vf + (size_t)ATT_BLOCK * hv; /* (G) */
	float *sum = mx + G;                     /* (G) */
	float scale = 1.0f / sqrtf((float)hd);
	int f16 = kv->type == KV_F16;
	const char *kb = kv_cache_k(kv, layer, g, 0), *vb = kv_cache_v(kv, layer, g, 0);
	size_t kstride = (size_t)hd * kv->elem, vstride = (size_t)hv * kv->elem;
	memset(acc, 0, (size_t)G * hv * sizeof(float));
	for (int h = 0; h < G; h++) {
		mx[h] = -INFINITY;
		sum[h] = 0;
	}
	for (int p0 = 0; p0 <= pos; p0 += ATT_BLOCK) {
		int n = pos + 1 - p0 < ATT_BLOCK ? pos + 1 - p0 : ATT_BLOCK;
		for (int i = 0; i < n; i++) {
			const void *k = kb + (size_t)(p0 + i) * kstride;
			const float *kr = k;
			if (f16) {
				f16_row(kf, k, hd);
				kr = kf;
			}
			for (int h = 0; h < G; h++)
				sc[h * ATT_BLOCK + i] =
					dot_f32(q0 + (size_t)h * hd, kr, hd) * scale;
		}
		for (int h = 0; h < G; h++) {
			float bmax = -INFINITY;
			for (int i = 0; i < n; i++)
				if (sc[h * ATT_BLOCK + i] > bmax)
					bmax = sc[h * ATT_BLOCK + i];
			if (bmax > mx[h]) {
				float c = expf(mx[h] - bmax); /* 0 on the first block */
				sum[h] *= c;
				float *a = acc + (size_t)h * hv;
				for (int d = 0; d < hv; d++)
					a[d] *= c;
				mx[h] = bmax;
			}
			sum[h] += exp_sub_sum(sc + h * ATT_BLOCK, n, mx[h]);
		}
		const float *vr = kv_cache_v(kv, layer, g, p0);
		if (f16) {
			for (int i = 0; i < n; i++)
				f16_row(vf + (size_t)i * hv,
					(const quant_half *)(vb + (size_t)(p0 + i) * vstride), hv);
			vr = vf;
		}
		for (int h = 0; h < G; h++)
			accumulate_rows(acc + (size_t)h * hv, sc + h * ATT_BLOCK, vr, n, hv);
	}
	for (int h = 0; h < G; h++) {
		float inv = 1.0f / sum[h];
		for (int d = 0; d < hv; d++)
			out0[(size_t)h * hv + d] = acc[(size_t)h * hv + d] * inv;
	}
}

/*
 * Prefill: a block of up to ATT_QBLOCK tokens and the G heads of KV head g
 * against the cache, ATT_BLOCK positions at a time: each K/V block is
 * converted once for all nt * G queries (the causal mask limits each token
 * to positions <= its own).
 */
static void attend_block(struct model *m, int layer, int t0, int nt, int g, int pos0,
			 float *scratch)
{
	const struct kv_cache *kv = &m->kv;
	int hd = m->info.head_dim, hv = m->head_dim_v, nh = m->info.n_head;
	int G = nh / m->info.n_head_kv, nq = nt * G;
	float *sc = scratch;                      /* (nq, ATT_BLOCK) */
	float *acc = sc + (size_t)nq * ATT_BLOCK; /* (nq, hv) */
	float *kf = acc + (size_t)nq * hv;        /* (ATT_BLOCK, hd) */
	float *vf = kf + (size_t)ATT_BLOCK * hd;  /* (ATT_BLOCK, hv) */
	float *mx = vf + (size_t)ATT_BLOCK * hv;  /* (nq) */
	float *sum = mx + nq;                     /* (nq) */
	float scale = 1.0f / sqrtf((float)hd);
	int f16 = kv->type == KV_F16;
	const char *kb = kv_cache_k(kv, layer, g, 0), *vb = kv_cache_v(kv, layer, g, 0);
	int last = pos0 + t0 + nt - 1; /* the last position any query sees */
	memset(acc, 0, (size_t)nq * hv * sizeof(float));
	for (int q = 0; q < nq; q++) {
		mx[q] = -INFINITY;
		sum[q] = 0;
	}
	for (int p0 = 0; p0 <= last; p0 += ATT_BLOCK) {
		int n = last + 1 - p0 < ATT_BLOCK ? last + 1 - p0 : ATT_BLOCK;
		const float *kr = kv_cache_k(kv, layer, g, p0);
		const float *vr = kv_cache_v(kv, layer, g, p0);
		if (f16) {
			for (int i = 0; i < n; i++) {
				f16_row(kf + (size_t)i * hd,
					(const quant_half *)kb + (size_t)(p0 + i) * hd, hd);
				f16_row(vf + (size_t)i * hv,
					(const quant_half *)vb + (size_t)(p0 + i) * hv, hv);
			}
			kr = kf;
			vr = vf;
		}
		for (int q = 0; q < nq; q++) {
			int t = t0 + q / G, h = g * G + q % G;
			int nv = pos0 + t + 1 - p0; /* causal: positions <= pos0 + t */
			if (nv <= 0)
				continue;
			if (nv > n)
				nv = n;
			const float *qv = m->q + (size_t)t * nh * hd + (size_t)h * hd;
			float *s = sc + (size_t)q * ATT_BLOCK, bmax = -INFINITY;
			for (int i = 0; i < nv; i++) {
				s[i] = dot_f32(qv, kr + (size_t)i * hd, hd) * scale;
				if (s[i] > bmax)
					bmax = s[i];
			}
			float *a = acc + (size_t)q * hv;
			if (bmax > mx[q]) {
				float c = expf(mx[q] - bmax); /* 0 on the first block */
				sum[q] *= c;
				for (int d = 0; d < hv; d++)
					a[d] *= c;
				mx[q] = bmax;
			}
			sum[q] += exp_sub_sum(s, nv, mx[q]);
			accumulate_rows(a, s, vr, nv, hv);
		}
	}
	for (int q = 0; q < nq; q++) {
		int t = t0 + q / G, h = g * G + q % G;
		float inv = 1.0f / sum[q], *out = m->xn + (size_t)t * nh * hv + (size_t)h * hv;
		const float *a = acc + (size_t)q * hv;
		for (int d = 0; d < hv; d++)
			out[d] = a[d] * inv;
	}
}

/* Items are dealt round-robin: with a causal mask later tokens cost more,
 * and contiguous ranges would leave the first thread idle half the time. */
static void attn_rows(void *arg, int ith, int nth)
{
	struct attn_job *j = arg;
	struct model *m = j->m;
	int nkv = m->info.n_head_kv;
	float *scratch = m->att + (size_t)ith * m->att_stride;
	if (j->ntok > 1) {
		int nblk = (j->ntok + ATT_QBLOCK - 1) / ATT_QBLOCK;
		for (int i = ith; i < nblk * nkv; i += nth) {
			int b = i / nkv, t0 = b * ATT_QBLOCK;
			int nt = j->ntok - t0 < ATT_QBLOCK ? j->ntok - t0 : ATT_QBLOCK;
			attend_block(m, j->layer, t0, nt, i % nkv, j->pos0, scratch);
		}
		return;
	}
	/* decode: one item per KV head (with more threads than KV heads some
	 * idle here; splitting the positions would need a merge step) */
	for (int g = ith; g < nkv; g += nth)
		attend_group(m, j->layer, 0, g, j->pos0, scratch);
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

/* One chunk of at most n_batch tokens. logits: (ntok or 1, n_vocab) or NULL. */
static void forward_chunk(struct model *m, const int32_t *tokens, int ntok, int pos0, float *logits,
			  int all)
{
	struct model_info *in = &m->info;
	int E = in->n_embd;
	for (int t = 0; t < ntok; t++)
		quant_dequantize_row(m->tok_embd.type,
				     (const char *)m->tok_embd.data +
					     (size_t)tokens[t] * m->tok_embd.row_bytes,
				     m->x + (size_t)t * E, E);
	for (int t = 0; t < ntok; t++)
		m->kv.tokens[pos0 + t] = tokens[t];

	const float *pending = NULL; /* residual still to add into x */
	readahead_advance(m->ra, -1);
	for (int l = 0; l < in->n_layer; l++) {
		struct layer *L = &m->layers[l];
		layer_begin(m, l);
		struct prep_job pj = { .m = m,
				       .ntok = ntok,
				       .add = pending,
				       .norm = L->attn_norm,
				       .width = E,
				       .src_stride = E };
		const struct mat *qkv[3] = { &L->wq, &L->wk, &L->wv };
		float *qkv_out[3] = { m->q, m->k, m->v };
		matmul_group(m, &pj, 3, qkv, qkv_out, ntok);

		struct rope_job rj = { m, l, pos0, ntok };
		uint64_t t = 0;
		prof_tick(m, MODEL_PROF_OTHER, &t);
		run_rows(m, rope_rows, &rj, ntok);
		m->kv.n = pos0 + ntok; /* attention may now read these cells */
		struct attn_job aj = { m, l, pos0, ntok };
		threadpool_run(m->pool, attn_rows, &aj);
		prof_tick(m, MODEL_PROF_ATTENTION, &t);

		int aw = in->n_head * m->head_dim_v;
		struct prep_job po = {
			.m = m, .ntok = ntok, .src = m->xn, .width = aw, .src_stride = aw
		};
		const struct mat *wo[1] = { &L->wo };
		float *wo_out[1] = { m->tmp };
		matmul_group(m, &po, 1, wo, wo_out, ntok);

		struct prep_job pf = { .m = m,
				       .ntok = ntok,
				       .add = m->tmp,
				       .norm = L->ffn_norm,
				       .width = E,
				       .src_stride = E };
		const struct mat *gu[2] = { &L->gate, &L->up };
		float *gu_out[2] = { m->gate, m->up };
		matmul_group(m, &pf, 2, gu, gu_out, ntok);

		struct prep_job pd = { .m = m,
				       .ntok = ntok,
				       .src = m->gate,
				       .width = in->n_ff,
				       .src_stride = in->n_ff,
				       .swiglu = 1 };
		const struct mat *dn[1] = { &L->down };
		float *dn_out[1] = { m->tmp };
		matmul_group(m, &pd, 1, dn, dn_out, ntok);
		pending = m->tmp;
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
	struct prep_job pn = { .m = m,
			       .ntok = nout,
			       .add = pending,
			       .norm = m->output_norm,
			       .width = E,
			       .src_stride = E };
	const struct mat *ow[1] = { &m->output };
	float *o_out[1] = { logits };
	matmul_group(m, &pn, 1, ow, o_out, nout);
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
