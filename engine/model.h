/* A loaded transformer of any family in arch.c: hyperparameters, mmapped weights, KV cache, forward pass. */
#ifndef PALAVER_MODEL_H
#define PALAVER_MODEL_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "kv_cache.h"

struct gguf;
struct readahead;

/*
 * One model = the GGUF mapping (weights stay in it, nothing is copied), the
 * hyperparameters, one KV cache (one sequence), the scratch buffers and a
 * persistent thread pool.  It is used by one thread at a time (the engine
 * thread); the pool's workers are internal.
 *
 * Sequence model: the cache holds positions 0 .. n_past-1.  model_forward()
 * appends n tokens at positions n_past .. n_past+n-1.  model_kv_truncate()
 * drops a suffix (prefix reuse), model_kv_shift() drops a middle part
 * (llama.cpp's context shift).
 */

/* Where the forward pass runs: the CPU; CUDA when built with it and a
 * device is present (else the CPU); CUDA or an error. */
enum model_backend { MODEL_BACKEND_CPU, MODEL_BACKEND_AUTO, MODEL_BACKEND_CUDA };
/* "cpu", "auto", "cuda": the backend; anything else: auto. */
enum model_backend model_backend_named(const char *name);

struct model_params {
	/* MODEL_BACKEND_CPU by default.  CUDA (asked for or chosen by auto)
	 * that cannot hold the model (device memory, a tensor type its kernels
	 * lack) leaves it on the CPU with a model_warning() that says why. */
	enum model_backend backend;
	int n_ctx;            /* 0 = the model's context_length */
	int n_threads;        /* 0 = online cores */
	int n_batch;          /* prefill chunk in tokens, 0 = 256 (scratch grows with it) */
	enum kv_type kv_type; /* KV_F16 (default) or KV_F32 */
	int prefault;         /* touch every weight page at load (progress is then real) */
	/* 1 (default): while layer i computes, a helper thread asks the kernel
	 * to read layer i+1's weights (madvise WILLNEED), and a mixture's
	 * chosen experts once its router has run; 0 = off.  It stays off when
	 * the weights (experts left out) exceed the memory available
	 * (info.readahead). */
	int readahead;
	/* Pin the mapping in RAM after load (mlock).  Failing is no error:
	 * model_warning() says why and the weights stay unpinned. */
	int mlock;
	/* Extra cells in a sliding-window layer's ring beyond window + n_batch,
	 * so that rewriting up to that many recent tokens keeps the cache
	 * (kv_cache_truncate); 0 = 1024. */
	int ring_slack;
	int repack; /* copy weights into faster load-time layouts where the CPU has
			       * kernels for them (Q8_0, Q4_0 with AVX-512 VNNI); info.repacked_bytes */
	/* Prefill of a mixture of experts runs each token's experts one gemv at
	 * a time instead of one gemm per expert over the chunk's tokens routed
	 * to it (only for measuring what grouping brings: bench --no-moe-group). */
	int moe_per_token;
	/* Load progress: bytes of tensor data done / total; may be NULL. */
	void (*progress)(void *ud, uint64_t done, uint64_t total);
	void *progress_ud;
	/* Checked during load and between prefill chunks; non-zero = stop with
	 * error "cancelled".  May be NULL. */
	const atomic_int *cancel;
};

/* Parameters for a load that only looks: the file checked, its info known,
 * no weight page read (one thread, a context of one token, no repacking). */
void model_params_probe(struct model_params *p);
void model_params_default(struct model_params *p);

struct model_info {
	char arch[32];      /* general.architecture: "llama", "qwen3", "gemma3" ... */
	char name[128];     /* general.name or the file's base name */
	char type_name[32]; /* dominant weight type by bytes, e.g. "Q4_K" */
	int weight_type;    /* enum quant_type of that type */
	uint64_t file_bytes;
	uint64_t n_params;     /* elements of all tensors */
	uint64_t weight_bytes; /* bytes of all tensors */
	uint64_t decode_bytes; /* weight bytes read per decoded token (no token_embd): the
				* active parameters (a mixture reads n_expert_used of its
				* n_expert experts per layer) */
	int n_vocab;
	int n_ctx_train; /* <arch>.context_length */
	int n_ctx;       /* the context in use (cache cells) */
	int n_embd;
	int n_layer;
	int n_head;
	int n_head_kv;
	int head_dim;   /* key_length */
	int head_dim_v; /* value_length */
	int n_ff;
	int n_expert;          /* experts of each mixture-of-experts layer, 0 = dense */
	int n_expert_used;     /* experts each token goes through */
	int n_ff_exp;          /* one expert's hidden width */
	uint64_t expert_bytes; /* one expert's gate, up and down in one layer */
	int n_rot;             /* rope.dimension_count */
	float rope_freq_base;
	float rope_freq_base_swa; /* of the sliding-window layers */
	float norm_eps;
	int swa_window;   /* sliding window of the windowed layers, 0 = none */
	int n_swa_layers; /* layers with a sliding window (their KV cache holds only a ring) */
	int n_threads;
	int n_batch;
	enum kv_type kv_type;
	uint64_t kv_bytes;     /* bytes of the KV cache */
	int locked;            /* the weights are pinned by mlock */
	uint64_t locked_bytes; /* bytes pinned */
	/* the read-ahead helper runs: asked for, not locked, and the weights
	 * fit in the memory available (see readahead.h) */
	int readahead;
	char backend[16]; /* "cpu" or "cuda" */
	char device[160]; /* the GPU and its memory ("NVIDIA H100, 79.1 GiB"), "" for the CPU */
	uint64_t repacked_bytes; /* weights copied into a load-time layout (params.repack);
				  * their file pages are released, so memory use is about
				  * the same, but it is anonymous memory, not page cache */
};

struct model;

/* Open, validate and prepare a model.  NULL with error() ('x.gguf': ...) on
 * any problem: unsupported architecture (the message lists the supported
 * ones), a tensor missing, of the wrong shape (named, with the expected
 * shape) or of an unsupported type, n_ctx above the model's, no memory. */
struct model *model_load(const char *path, const struct model_params *p);
void model_free(struct model *m);

const struct model_info *model_info(const struct model *m);
/* The GGUF handle (for the tokenizer and chat template); owned by the model. */
const struct gguf *model_gguf(const struct model *m);

/*
 * Run n tokens at positions pos .. pos+n-1, appending their keys/values to
 * the cache; pos must equal model_n_past() (else error).  n is split into
 * chunks of n_batch internally (the cancel flag is checked between them).
 * Output: with all == 0, logits (n_vocab floats) for the last token; with
 * all == 1, n rows of n_vocab floats.  logits may be NULL (prefill only).
 * -1 with error() on a bad token id, a full context, or cancellation (the
 * cache then holds the chunks completed so far).
 */
int model_forward(struct model *m, const int32_t *tokens, int n, int pos, float *logits, int all);

int model_n_past(const struct model *m);
/* Tokens whose keys/values the cache holds, oldest first (n_past of them). */
const int32_t *model_kv_tokens(const struct model *m);
/* Keep the first n positions; returns the positions kept: n, or 0 when a
 * sliding-window layer no longer holds what position n needs (see
 * kv_cache_truncate); -1 if n > n_past. */
int model_kv_truncate(struct model *m, int n);
/*
 * Context shift: keep positions 0 .. keep-1, discard the next n_discard,
 * move the rest down by n_discard and re-rotate their keys (RoPE by
 * -n_discard), so generation continues at n_past - n_discard.
 */
int model_kv_shift(struct model *m, int keep, int n_discard);
/* Bytes of keys and values attention reads for one query at position pos
 * (a sliding-window layer reads only its window). */
uint64_t model_kv_read_bytes(const struct model *m, int pos);
/* The cache itself, read-only (tests, diagnostics). */
const struct kv_cache *model_kv(const struct model *m);
/* The cache, writable: only to read a saved state into it (kv_state_read,
 * which leaves it consistent, full or empty). */
struct kv_cache *model_kv_writable(struct model *m);

/* Thread count in use; change it (recreates the pool) for benchmarks. */
int model_n_threads(const struct model *m);
int model_set_threads(struct model *m, int n_threads);

/* Where forward time goes (bench --profile): wall time of each kind of step. */
enum model_prof {
	MODEL_PROF_MATMUL,
	MODEL_PROF_EXPERTS, /* a mixture's expert matmuls (gate, up, down) */
	MODEL_PROF_PREP,
	MODEL_PROF_ATTENTION,
	MODEL_PROF_OTHER,
	MODEL_PROF_N
};
struct model_profile {
	uint64_t ns[MODEL_PROF_N]; /* matmul; expert matmuls; norm + quantize + swiglu;
				    * rope + attention; rest */
	uint64_t tokens;           /* tokens run while profiling */
};
/* Start (on = 1, counters cleared) or stop collecting; off by default. */
void model_profile_enable(struct model *m, int on);
void model_profile_get(const struct model *m, struct model_profile *out);
const char *model_prof_name(enum model_prof p);

/* A non-fatal problem found at load ("cannot lock ... in memory"), or NULL. */
const char *model_warning(const struct model *m);

/* Prefetch hit counts (bench --cold): at the start of each layer of each
 * forward chunk, how many of that layer's weight pages were resident
 * (mincore; it costs a system call per layer, hence off by default). */
struct model_ra_stats {
	uint64_t resident;    /* resident pages, summed over the layers checked */
	uint64_t pages;       /* pages of those layers, summed */
	uint64_t layers;      /* layers checked */
	uint64_t layers_full; /* of those, layers with every page resident */
	/* a mixture of experts: pages of the experts a router chose (each
	 * once per layer and chunk) that were resident when it chose them;
	 * the layers' counts above leave the experts out */
	uint64_t expert_resident;
	uint64_t expert_pages;
	uint64_t requested; /* pages the read-ahead helper asked the kernel for, since load */
	uint64_t evictions; /* times it found pages it read evicted and paused, since load */
};
/* Start (on = 1, counters cleared) or stop counting; off by default. */
void model_ra_stats_enable(struct model *m, int on);
/* The read-ahead table: what the forward pass reads from the mapping, by
 * layer (readahead.h; tests and diagnostics). */
const struct readahead *model_readahead(const struct model *m);
void model_ra_stats_get(const struct model *m, struct model_ra_stats *out);

/* Memory a model would take, from its metadata alone (for the memory limit). */
struct model_memory {
	uint64_t weights; /* bytes of all tensors */
	uint64_t kv;      /* the KV cache for params->n_ctx (sliding layers: their ring) */
	uint64_t scratch; /* activations for params->n_batch tokens and the logits */
};
int model_memory_estimate(const char *path, const struct model_params *p, struct model_memory *out);

/* Cells of a sliding-window layer's ring for a window, a prefill chunk and
 * the reuse slack (model_params.ring_slack); 0 without a window. */
int model_ring_cells(int window, int n_batch, int slack);

/* Supported architectures, comma-separated, for messages. */
const char *model_supported_archs(void);

#endif
