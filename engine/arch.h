/* Model families: what each general.architecture's file holds and how its blocks differ. */
#ifndef PALAVER_ARCH_H
#define PALAVER_ARCH_H

#include <stdint.h>

/*
 * A family is a row of the table in arch.c: the metadata keys it reads
 * beyond the common ones (with defaults), the tensors of one block (their
 * shapes in terms of the hyperparameters, required or optional), the RoPE
 * kind, the FFN activation and flags for the variations of the llama block
 * (q/k norms, post-norms, embedding scale, sliding windows, soft-caps).
 * model.c loads any row, forward.c runs any row, `palaver mkmodel` writes
 * any row and `palaver inspect` prints its keys.  docs/ARCHITECTURE.md says
 * how to add one.
 */

enum arch_rope {
	ROPE_NORM, /* rotate pairs (2i, 2i+1): llama */
	ROPE_NEOX, /* rotate pairs (i, i + n_rot/2): qwen, gemma, phi3 */
};

enum arch_act {
	ACT_SILU, /* SwiGLU: silu(gate) * up */
	ACT_GELU, /* GeGLU: gelu_tanh(gate) * up */
	/* gpt-oss: the clamped SwiGLU (ops.h glu_swiglu_oai) with the
	 * constants llama.cpp and OpenAI's reference code use */
	ACT_SWIGLU_OAI,
};

#define ARCH_OAI_ALPHA 1.702f /* the sigmoid's steepness */
#define ARCH_OAI_LIMIT 7.0f   /* gate clamped above, up on both sides */

/* A tensor dimension in terms of the hyperparameters. */
enum arch_dim {
	DIM_EMBD,   /* n_embd */
	DIM_Q,      /* n_head * head_dim_k */
	DIM_K,      /* n_head_kv * head_dim_k */
	DIM_V,      /* n_head_kv * head_dim_v */
	DIM_ATT,    /* n_head * head_dim_v: the attention output */
	DIM_QKV,    /* DIM_Q + DIM_K + DIM_V: q, k and v in one matrix */
	DIM_FF,     /* feed_forward_length */
	DIM_FF2,    /* 2 * feed_forward_length: gate and up in one matrix, gate first */
	DIM_HEAD_K, /* head_dim_k (per-head norms) */
	DIM_EXPERT, /* expert_count: the experts of a mixture */
	DIM_FF_EXP, /* expert_feed_forward_length: one expert's hidden width */
	DIM_HEADS,  /* n_head (per-head attention sinks) */
	DIM_COUNT
};

/* Where a block tensor goes (a field of the model's layer). */
enum arch_slot {
	SLOT_ATTN_NORM,
	SLOT_Q_NORM,
	SLOT_K_NORM,
	SLOT_ATTN_POST_NORM,
	SLOT_FFN_NORM,
	SLOT_FFN_POST_NORM,
	SLOT_BQ,
	SLOT_BK,
	SLOT_BV,
	SLOT_BO,
	SLOT_WQ,
	SLOT_WK,
	SLOT_WV,
	SLOT_WQKV, /* fused: split into WQ, WK, WV views of its rows */
	SLOT_WO,
	SLOT_GATE,
	SLOT_UP,
	SLOT_GATE_UP, /* fused: split into GATE, UP views of its rows */
	SLOT_DOWN,
	SLOT_GATE_INP,  /* the router: one row of logits per expert */
	SLOT_GATE_EXPS, /* the experts' gate, up and down: 3-D, one matrix per expert */
	SLOT_UP_EXPS,
	SLOT_DOWN_EXPS,
	SLOT_SINKS,       /* (n_head) attention sinks */
	SLOT_GATE_INP_B,  /* the router's bias */
	SLOT_GATE_EXPS_B, /* the experts' biases: 2-D, one row per expert */
	SLOT_UP_EXPS_B,
	SLOT_DOWN_EXPS_B,
	SLOT_COUNT /* at most 32: the loader keeps a bit per slot */
};

enum arch_need {
	NEED_REQ,   /* missing: the load fails naming it */
	NEED_OPT,   /* used when present */
	NEED_ALT,   /* required unless the tensor of slot `alt` was found (listed earlier) */
	NEED_DENSE, /* required when the model has no experts (expert_count 0), else absent */
	NEED_MOE,   /* required when the model has experts, else absent */
};

struct arch_tensor {
	const char *name; /* after "blk.N.": "attn_q.weight" */
	uint8_t slot;     /* enum arch_slot */
	uint8_t nd;       /* 1: a vector of dim[0]; 2: a matrix of dim[1] rows of dim[0]
			   * (or, for a bias slot, dim[1] vectors); 3: dim[2] such
			   * matrices (one per expert) */
	uint8_t dim[3];   /* enum arch_dim */
	uint8_t need;     /* enum arch_need */
	uint8_t alt;      /* NEED_ALT: the slot that replaces this tensor */
};

/* Family hyperparameters beyond the common ones. */
enum arch_hp {
	HP_SWA_WINDOW,    /* attention.sliding_window: positions a sliding layer sees */
	HP_SWA_PATTERN,   /* attention.sliding_window_pattern: a period (see swa_pattern) */
	HP_ROPE_BASE_SWA, /* rope.freq_base_swa: RoPE base of the sliding layers */
	HP_ATTN_SOFTCAP,  /* attn_logit_softcapping: scores = c * tanh(scores / c) */
	HP_FINAL_SOFTCAP, /* final_logit_softcapping: logits = c * tanh(logits / c) */
	HP_COUNT
};

struct arch_key {
	const char *suffix; /* after "<arch>." */
	const char *label;  /* for palaver inspect */
	uint8_t hp;         /* enum arch_hp */
	uint8_t is_float;   /* f32 key, else u32 */
	float def;          /* when the file has no such key (0: the feature is off) */
	float mk;           /* what palaver mkmodel writes (0: nothing) */
};

/* Variations of the llama block. */
#define ARCH_QK_NORM (1u << 0)    /* per-head RMS norm of q and k before RoPE */
#define ARCH_POST_NORMS (1u << 1) /* RMS norm of the attention and FFN outputs before the adds */
#define ARCH_EMBD_SCALE (1u << 2) /* embeddings times sqrt(n_embd) */
/* Every file of the family is a mixture of experts (<arch>.expert_count and
 * expert_used_count required).  Without it a family has experts when its
 * file says so (llama: Mixtral's layout). */
#define ARCH_MOE (1u << 3)
/* The router's top-k weights are divided by their sum (Mixtral, Qwen3-MoE);
 * without it they stay the softmax's probabilities over all experts. */
#define ARCH_MOE_RENORM (1u << 4)

struct arch {
	const char *name; /* general.architecture */
	const char *desc; /* one line: what differs from llama */
	enum arch_rope rope;
	enum arch_act act;
	unsigned flags;
	/* Sliding-window layers when the file gives a window: layer il slides
	 * when il % swa_pattern < swa_pattern - 1 (2: even layers; 6: five of
	 * six).  0: the family has no sliding window (the key is not read). */
	int swa_pattern;
	/* The query scale is 1/sqrt(head_dim) except for the files with this
	 * many layers (Gemma's 27B models), which use 1/sqrt(n_embd / n_head),
	 * as Gemma's reference code and llama.cpp do.  0: never. */
	int query_scale_embd_layers;
	const struct arch_key *keys;
	int n_keys;
	const struct arch_tensor *tensors; /* of one block */
	int n_tensors;
	/* what palaver mkmodel writes */
	float mk_rope_base;
	float mk_norm_eps;
	float mk_yarn_factor; /* 0, or rope.scaling.type yarn with this factor ... */
	int mk_yarn_ctx;      /* ... over this rope.scaling.original_context_length */
};

/* The family named name, or NULL. */
const struct arch *arch_find(const char *name);
/* Family i of the table (0 ..), NULL past the end. */
const struct arch *arch_at(int i);
/* "llama, qwen2, ...": every family, for messages and help. */
const char *arch_names(void);

#endif
