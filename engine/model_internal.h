/* What the model's files share: loading (model.c), the forward pass (forward.c) and its ops. */
#ifndef PALAVER_MODEL_INTERNAL_H
#define PALAVER_MODEL_INTERNAL_H

#include "arch.h"
#include "kv_cache.h"
#include "model.h"
#include "ops.h"

#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct backend;
struct gguf;
struct gguf_tensor;
struct moe_groups;
struct readahead;
struct threadpool;

#define ATT_BLOCK 32
#define ATT_QBLOCK 8 /* prefill tokens per attention item */

/* A weight matrix: n rows of k elements, or n_exp such matrices one after
 * the other (the experts of a 3-D tensor: expert e's rows start at
 * data + e * exp_bytes).  A view of a fused tensor's rows (phi3's attn_qkv,
 * ffn_up) starts inside the tensor. */
struct mat {
	const struct gguf_tensor *t;
	const void *mapped; /* the rows in the file mapping */
	const void *data;   /* mapped, or a repacked copy (model->repacked) */
	int type;           /* the file's type, or the repacked one (QT_Q8_0_R4, QT_Q4_0_R4) */
	int dot_type;       /* activation format its dot products take */
	int k;              /* input length (ne[0]) */
	int n;              /* output rows (of one expert's matrix) */
	int n_exp;          /* matrices: 1, or the experts of a 3-D tensor */
	size_t row_bytes;
	size_t exp_bytes; /* n * row_bytes: one matrix */
};

/* All rows of w (every expert's): what repacking and locking see. */
static inline size_t mat_bytes(const struct mat *w)
{
	return w->exp_bytes * (size_t)w->n_exp;
}

/* Expert e's matrix of a 3-D tensor (e = 0 for a 2-D one). */
static inline const char *mat_expert(const struct mat *w, int e)
{
	return (const char *)w->data + (size_t)e * w->exp_bytes;
}

struct layer {
	const float *attn_norm;      /* (n_embd) */
	const float *ffn_norm;       /* (n_embd) */
	const float *attn_post_norm; /* (n_embd) or NULL: gemma's norm of the attention output */
	const float *ffn_post_norm;  /* (n_embd) or NULL: ... of the FFN output */
	const float *q_norm;         /* (head_dim) or NULL: per-head RMS norm of q */
	const float *k_norm;         /* (head_dim) or NULL: ... of k */
	const float *bq;             /* (n_head * head_dim) or NULL */
	const float *bk;             /* (n_head_kv * head_dim) or NULL */
	const float *bv;             /* (n_head_kv * head_dim_v) or NULL */
	const float *bo;             /* (n_embd) or NULL */
	const float *sinks;          /* (n_head) or NULL: attention sinks (gpt-oss) */
	struct mat wq, wk, wv, wo, gate, up, down;
	struct mat wqkv, gate_up; /* fused tensors, or t == NULL; wq.. are views of them */
	/* a mixture of experts (gate_inp.t != NULL; gate, up, down then absent):
	 * the router (n_expert rows of n_embd) and every expert's matrices */
	struct mat gate_inp, gate_exps, up_exps, down_exps;
	const float *gate_inp_b;  /* (n_expert) or NULL: the router's bias (gpt-oss) */
	const float *gate_exps_b; /* (n_expert, n_ff_exp) or NULL: each expert's gate bias */
	const float *up_exps_b;   /* (n_expert, n_ff_exp) or NULL */
	const float *down_exps_b; /* (n_expert, n_embd) or NULL */
	int window;               /* sliding window in positions, 0 = full attention */
	const struct rope *rope;  /* this layer's RoPE (sliding layers may have their own) */
};

struct model {
	struct gguf *g;
	const struct arch *arch;
	struct model_info info;
	struct model_params params;
	int head_dim_v;
	struct rope rope;     /* of full-attention layers */
	struct rope rope_swa; /* of sliding-window layers */
	float attn_scale;     /* scores = q.k * attn_scale */
	float attn_softcap;   /* 0, or scores = c * tanh(scores / c) */
	float final_softcap;  /* 0, or logits = c * tanh(logits / c) */
	float embd_scale;     /* 0, or embeddings times this */
	int moe_renorm;       /* the router's top-k weights are divided by their sum */
	int moe_group; /* prefill: one gemm per expert over its tokens (params.moe_per_token off) */
	int n_ctx_orig; /* rope.scaling.original_context_length (LongRoPE) */

	struct mat tok_embd;      /* (n_vocab rows of n_embd) */
	struct mat output;        /* tok_embd when tied */
	const float *output_norm; /* (n_embd) */
	struct layer *layers;     /* (n_layer) */

	float **owned; /* converted 1-D tensors */
	int n_owned;
	void **repacked; /* weight copies in a load-time layout (struct mat.data) */
	int n_repacked;

	struct kv_cache kv;      /* bookkeeping for every backend; the data only for the CPU */
	struct backend *backend; /* where the forward pass computes (backend.h) */
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
	/* mixture of experts (NULL without): n_rows = n_batch * n_expert_used
	 * (token, expert) pairs, kept grouped by expert (moe.h) */
	float *moe_logits;        /* (n_batch, n_expert) router output */
	int32_t *moe_ids;         /* (n_batch, n_expert_used) chosen experts */
	float *moe_w;             /* (n_batch, n_expert_used) their weights */
	struct moe_groups *moe_g; /* the pairs grouped by expert */
	void *moe_act;            /* (n_rows, act_row_max) expert inputs, gathered, then down's */
	float *moe_gate;          /* (n_rows, n_ff_exp) */
	float *moe_up;            /* (n_rows, n_ff_exp) */
	float *moe_out;           /* (n_rows, n_embd) down's output before weighting */
	void *act[2]; /* (n_batch, act_row_max bytes) quantized activations, per dot type */
	size_t act_row_max;
	int profile; /* collect prof */
	struct model_profile prof;
	float *att; /* (nth, att_stride) per-thread attention scratch */
	int att_nth;
	size_t att_stride; /* floats of att per thread */
};

/* The matrices the forward pass reads in layer l (n_layer: the output),
 * into all[MODEL_LAYER_MATS]; their count. */
#define MODEL_LAYER_MATS 11
int model_layer_mats(struct model *m, int l, struct mat **all);

/* forward.c: the per-thread attention scratch for nth threads. */
int model_alloc_att(struct model *m, int nth);

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

#endif
