/* The compute backend of the forward pass: a table of steps plus a context (CPU; CUDA when built). */
#ifndef PALAVER_BACKEND_H
#define PALAVER_BACKEND_H

#include <stddef.h>
#include <stdint.h>

/*
 * DESIGN
 * forward.c decides what a block computes (the family's flags and tensors,
 * in struct model); a backend decides where and how.  The steps are coarse
 * on purpose: a matmul group takes the description of its input (residual
 * add, norm, GLU) rather than separate norm and activation calls, so that
 * the CPU prepares and quantizes the input rows once, in the same pool run,
 * and CUDA fuses the residual into its norm kernel.  Activations live in
 * named buffers that the backend owns (host arrays in struct model for the
 * CPU, device arrays for CUDA), each n_batch rows of the widths below, so
 * that the forward pass never touches an activation itself.  Weights and
 * norm vectors are named by their host copies (struct mat, const float *):
 * a device backend finds its own copy of each, uploaded once at load.
 *
 * The KV cache's bookkeeping (positions held, the ring's tags, the tokens)
 * is struct kv_cache in struct model for every backend; its data lives with
 * the backend (a device backend's host kv_cache has no data).
 *
 * Steps return 0, or -1 after error(): the CPU backend never fails; a
 * device backend reports the call that failed.
 */

struct model;
struct mat;

/* The activation buffers, (n_batch rows of) width floats per row: */
enum bk_buf {
	BK_NONE = -1,
	BK_X,    /* n_embd: the residual stream */
	BK_XN,   /* max(n_embd, n_head * head_dim_v): normed input / attention output */
	BK_Q,    /* n_head * head_dim */
	BK_K,    /* n_head_kv * head_dim */
	BK_V,    /* n_head_kv * head_dim_v */
	BK_TMP,  /* n_embd: the attention output projection, the FFN's down projection */
	BK_GATE, /* n_ff */
	BK_UP,   /* n_ff */
	BK_NBUF
};

enum bk_act { BK_ACT_NONE, BK_ACT_SILU, BK_ACT_GELU, BK_ACT_SWIGLU_OAI };

/*
 * The input of a matmul group, made row by row, in this order:
 *   1. add != BK_NONE: the residual row a = add[t] (+ add_bias, then
 *      RMS-normed by add_norm when given) is added into x;
 *   2. norm != NULL: the input is RMS norm(x) * norm, written to xn;
 *      else it is src as it is, width floats a row;
 *   3. glu != BK_ACT_NONE (src is BK_GATE): gate = act(gate) * up first.
 * A backend may change the fields while it works (the CPU's third dot type
 * path does), so callers pass a copy they do not need afterwards.
 */
struct bk_input {
	enum bk_buf add;
	const float *add_bias; /* (n_embd) or NULL */
	const float *add_norm; /* (n_embd) or NULL */
	const float *norm;     /* (width) or NULL */
	enum bk_buf src;       /* when norm is NULL */
	int width;
	enum bk_act glu;
};

struct backend;

struct backend_ops {
	const char *name; /* "cpu", "cuda" */
	/* x = the embedding rows of ntok tokens (times the model's embd_scale) */
	int (*embed)(struct backend *b, const int32_t *tokens, int ntok);
	/* out[i] (ntok rows of w[i]->n) = w[i] * the input made from in, i < n <= 3 */
	int (*matmul)(struct backend *b, struct bk_input *in, int n, const struct mat *const *w,
		      const enum bk_buf *out, int ntok);
	/* The FFN of layer l when it is a mixture of experts (the layer has a
	 * router, gate_inp): from the input made from in, the router's logits,
	 * each token's experts and weights as the family routes (moe.h), the
	 * routed experts' GLU FFNs, and each token's weighted sum of its
	 * experts' outputs into BK_TMP.  Its scratch is the backend's own.
	 * NULL in a backend that cannot: model_load then refuses mixtures. */
	int (*moe_ffn)(struct backend *b, struct bk_input *in, int l, int ntok);
	/* Layer l's q, k, v rows of tokens at pos0 ..: biases, per-head q/k
	 * norms, the layer's RoPE, then k and v into the cache */
	int (*qkv_store)(struct backend *b, int l, int pos0, int ntok);
	/* xn = attention of q over layer l's cache (causal, the layer's window) */
	int (*attend)(struct backend *b, int l, int pos0, int ntok);
	/* The output: rows first .. first+nout-1 of the chunk through the input
	 * in (the last residual and the output norm) and the output matrix,
	 * soft-capped when the model says so, into host memory (nout rows of
	 * n_vocab) */
	int (*logits)(struct backend *b, struct bk_input *in, int first, int nout, float *out);
	/* The context shift (model_kv_shift): discard positions keep ..
	 * keep+n_discard-1 of the cache (data and m->kv's bookkeeping, through
	 * kv_cache_shift) and turn the kept keys that moved back by n_discard
	 * positions (each layer's RoPE, without its attention factor) */
	int (*kv_shift)(struct backend *b, int keep, int n_discard);
	/* optional: the device, for people ("NVIDIA H100, 79.1 GiB") */
	const char *(*describe)(struct backend *b);
	void (*free)(struct backend *b);
};

struct backend {
	const struct backend_ops *ops;
	struct model *m;
	void *ctx; /* the backend's own state */
};

/* The CPU backend: struct model's scratch, quant.c's kernels, the thread pool. */
struct backend *backend_cpu_create(struct model *m);

/*
 * The CUDA backend over gpu/cuda/cuda_ops.h (backend_cuda.c): copies every
 * weight the forward pass reads to the device as stored (quantized) and
 * allocates the KV cache (m->kv's geometry; m->kv itself has no data) and
 * the activations there.  NULL with error() when it cannot; *fallback is
 * set when the CPU can take the model instead (device memory that does not
 * fit, named in the message; a tensor type the kernels lack).  Linked only
 * into builds with CUDA (make CUDA=1; the tests under the emulation).
 */
struct backend *backend_cuda_create(struct model *m, int *fallback);
/* CUDA devices present (0 without a driver or a device). */
int backend_cuda_devices(void);

void backend_free(struct backend *b);

#endif
