/* The table of model families palaver runs. */
#include "arch.h"

#include <pthread.h>
#include <stddef.h>
#include <string.h>

#define N(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* Tensors shared by the llama-like blocks, as table rows. */
#define T_ATTN_NORM                                                                                \
	{                                                                                          \
		"attn_norm.weight", SLOT_ATTN_NORM, 1, { DIM_EMBD, 0 }, NEED_REQ, 0                \
	}
#define T_FFN_NORM                                                                                 \
	{                                                                                          \
		"ffn_norm.weight", SLOT_FFN_NORM, 1, { DIM_EMBD, 0 }, NEED_REQ, 0                  \
	}
#define T_WQ                                                                                       \
	{                                                                                          \
		"attn_q.weight", SLOT_WQ, 2, { DIM_EMBD, DIM_Q }, NEED_REQ, 0                      \
	}
#define T_WK                                                                                       \
	{                                                                                          \
		"attn_k.weight", SLOT_WK, 2, { DIM_EMBD, DIM_K }, NEED_REQ, 0                      \
	}
#define T_WV                                                                                       \
	{                                                                                          \
		"attn_v.weight", SLOT_WV, 2, { DIM_EMBD, DIM_V }, NEED_REQ, 0                      \
	}
#define T_WO                                                                                       \
	{                                                                                          \
		"attn_output.weight", SLOT_WO, 2, { DIM_ATT, DIM_EMBD }, NEED_REQ, 0               \
	}
#define T_GATE                                                                                     \
	{                                                                                          \
		"ffn_gate.weight", SLOT_GATE, 2, { DIM_EMBD, DIM_FF }, NEED_REQ, 0                 \
	}
#define T_UP                                                                                       \
	{                                                                                          \
		"ffn_up.weight", SLOT_UP, 2, { DIM_EMBD, DIM_FF }, NEED_REQ, 0                     \
	}
#define T_DOWN                                                                                     \
	{                                                                                          \
		"ffn_down.weight", SLOT_DOWN, 2, { DIM_FF, DIM_EMBD }, NEED_REQ, 0                 \
	}
#define T_Q_NORM                                                                                   \
	{                                                                                          \
		"attn_q_norm.weight", SLOT_Q_NORM, 1, { DIM_HEAD_K, 0 }, NEED_REQ, 0               \
	}
#define T_K_NORM                                                                                   \
	{                                                                                          \
		"attn_k_norm.weight", SLOT_K_NORM, 1, { DIM_HEAD_K, 0 }, NEED_REQ, 0               \
	}
#define T_POST_ATTN                                                                                \
	{                                                                                          \
		"post_attention_norm.weight", SLOT_ATTN_POST_NORM, 1, { DIM_EMBD, 0 }, NEED_REQ, 0 \
	}
#define T_POST_FFW                                                                                 \
	{                                                                                          \
		"post_ffw_norm.weight", SLOT_FFN_POST_NORM, 1, { DIM_EMBD, 0 }, NEED_REQ, 0        \
	}
#define T_BQ(need)                                                                                 \
	{                                                                                          \
		"attn_q.bias", SLOT_BQ, 1, { DIM_Q, 0 }, need, 0                                   \
	}
#define T_BK(need)                                                                                 \
	{                                                                                          \
		"attn_k.bias", SLOT_BK, 1, { DIM_K, 0 }, need, 0                                   \
	}
#define T_BV(need)                                                                                 \
	{                                                                                          \
		"attn_v.bias", SLOT_BV, 1, { DIM_V, 0 }, need, 0                                   \
	}
#define T_BO(need)                                                                                 \
	{                                                                                          \
		"attn_output.bias", SLOT_BO, 1, { DIM_EMBD, 0 }, need, 0                           \
	}

/* A mixture of experts' FFN: the router, then gate, up and down of every
 * expert as one 3-D tensor each (llama.cpp's layout). */
#define T_GATE_INP                                                                                 \
	{                                                                                          \
		"ffn_gate_inp.weight", SLOT_GATE_INP, 2, { DIM_EMBD, DIM_EXPERT }, NEED_MOE, 0     \
	}
#define T_GATE_EXPS                                                                                \
	{                                                                                          \
		"ffn_gate_exps.weight", SLOT_GATE_EXPS, 3, { DIM_EMBD, DIM_FF_EXP, DIM_EXPERT },   \
			NEED_MOE, 0                                                                \
	}
#define T_UP_EXPS                                                                                  \
	{                                                                                          \
		"ffn_up_exps.weight", SLOT_UP_EXPS, 3, { DIM_EMBD, DIM_FF_EXP, DIM_EXPERT },       \
			NEED_MOE, 0                                                                \
	}
#define T_DOWN_EXPS                                                                                \
	{                                                                                          \
		"ffn_down_exps.weight", SLOT_DOWN_EXPS, 3, { DIM_FF_EXP, DIM_EMBD, DIM_EXPERT },   \
			NEED_MOE, 0                                                                \
	}

/* llama, or Mixtral when the file has experts (llama.expert_count). */
static const struct arch_tensor llama_tensors[] = {
	T_ATTN_NORM,
	T_WQ,
	T_BQ(NEED_OPT),
	T_WK,
	T_BK(NEED_OPT),
	T_WV,
	T_BV(NEED_OPT),
	T_WO,
	T_BO(NEED_OPT),
	T_FFN_NORM,
	{ "ffn_gate.weight", SLOT_GATE, 2, { DIM_EMBD, DIM_FF }, NEED_DENSE, 0 },
	{ "ffn_up.weight", SLOT_UP, 2, { DIM_EMBD, DIM_FF }, NEED_DENSE, 0 },
	{ "ffn_down.weight", SLOT_DOWN, 2, { DIM_FF, DIM_EMBD }, NEED_DENSE, 0 },
	T_GATE_INP,
	T_GATE_EXPS,
	T_UP_EXPS,
	T_DOWN_EXPS,
};

static const struct arch_tensor qwen2_tensors[] = {
	T_ATTN_NORM,    T_WQ, T_BQ(NEED_REQ), T_WK,   T_BK(NEED_REQ), T_WV,
	T_BV(NEED_REQ), T_WO, T_FFN_NORM,     T_GATE, T_UP,           T_DOWN,
};

static const struct arch_tensor qwen3_tensors[] = {
	T_ATTN_NORM, T_WQ, T_WK, T_WV, T_Q_NORM, T_K_NORM, T_WO, T_FFN_NORM, T_GATE, T_UP, T_DOWN,
};

static const struct arch_tensor qwen3moe_tensors[] = {
	T_ATTN_NORM, T_WQ,       T_WK,       T_WV,        T_Q_NORM,  T_K_NORM,
	T_WO,        T_FFN_NORM, T_GATE_INP, T_GATE_EXPS, T_UP_EXPS, T_DOWN_EXPS,
};

static const struct arch_tensor gemma2_tensors[] = {
	T_ATTN_NORM, T_WQ,   T_WK, T_WV,   T_WO,       T_POST_ATTN,
	T_FFN_NORM,  T_GATE, T_UP, T_DOWN, T_POST_FFW,
};

static const struct arch_tensor gemma3_tensors[] = {
	T_ATTN_NORM, T_WQ,       T_WK,   T_WV, T_Q_NORM, T_K_NORM,   T_WO,
	T_POST_ATTN, T_FFN_NORM, T_GATE, T_UP, T_DOWN,   T_POST_FFW,
};

/* Phi-3/3.5/4: q, k, v in one matrix and gate, up in another (files with
 * separate q, k, v matrices load too). */
static const struct arch_tensor phi3_tensors[] = {
	T_ATTN_NORM,
	{ "attn_qkv.weight", SLOT_WQKV, 2, { DIM_EMBD, DIM_QKV }, NEED_OPT, 0 },
	{ "attn_q.weight", SLOT_WQ, 2, { DIM_EMBD, DIM_Q }, NEED_ALT, SLOT_WQKV },
	{ "attn_k.weight", SLOT_WK, 2, { DIM_EMBD, DIM_K }, NEED_ALT, SLOT_WQKV },
	{ "attn_v.weight", SLOT_WV, 2, { DIM_EMBD, DIM_V }, NEED_ALT, SLOT_WQKV },
	T_WO,
	T_FFN_NORM,
	{ "ffn_up.weight", SLOT_GATE_UP, 2, { DIM_EMBD, DIM_FF2 }, NEED_REQ, 0 },
	T_DOWN,
};

/* gpt-oss: biases everywhere, a sink per head, and the norm before the
 * experts (post_attention_norm, on the residual after attention) is the
 * FFN norm of the llama block.  The router's bias joins its logits; the
 * chosen experts' weights are the softmax of their logits, which is what
 * renormalizing the top k of the softmax over all gives. */
static const struct arch_tensor gptoss_tensors[] = {
	T_ATTN_NORM,
	T_WQ,
	T_BQ(NEED_REQ),
	T_WK,
	T_BK(NEED_REQ),
	T_WV,
	T_BV(NEED_REQ),
	T_WO,
	T_BO(NEED_REQ),
	{ "attn_sinks.weight", SLOT_SINKS, 1, { DIM_HEADS, 0 }, NEED_REQ, 0 },
	{ "post_attention_norm.weight", SLOT_FFN_NORM, 1, { DIM_EMBD, 0 }, NEED_REQ, 0 },
	T_GATE_INP,
	{ "ffn_gate_inp.bias", SLOT_GATE_INP_B, 1, { DIM_EXPERT, 0 }, NEED_REQ, 0 },
	T_GATE_EXPS,
	T_UP_EXPS,
	T_DOWN_EXPS,
	{ "ffn_gate_exps.bias", SLOT_GATE_EXPS_B, 2, { DIM_FF_EXP, DIM_EXPERT }, NEED_REQ, 0 },
	{ "ffn_up_exps.bias", SLOT_UP_EXPS_B, 2, { DIM_FF_EXP, DIM_EXPERT }, NEED_REQ, 0 },
	{ "ffn_down_exps.bias", SLOT_DOWN_EXPS_B, 2, { DIM_EMBD, DIM_EXPERT }, NEED_REQ, 0 },
};

/* The pattern keys' defaults repeat the row's swa_pattern, for inspect. */
static const struct arch_key gemma2_keys[] = {
	{ "attention.sliding_window", "swa window", HP_SWA_WINDOW, 0, 4096, 4096 },
	{ "attention.sliding_window_pattern", "swa pattern", HP_SWA_PATTERN, 0, 2, 0 },
	{ "attn_logit_softcapping", "attn cap", HP_ATTN_SOFTCAP, 1, 50.0f, 50.0f },
	{ "final_logit_softcapping", "logit cap", HP_FINAL_SOFTCAP, 1, 30.0f, 30.0f },
};

static const struct arch_key gemma3_keys[] = {
	{ "attention.sliding_window", "swa window", HP_SWA_WINDOW, 0, 0, 512 },
	{ "attention.sliding_window_pattern", "swa pattern", HP_SWA_PATTERN, 0, 6, 0 },
	{ "rope.freq_base_swa", "swa rope", HP_ROPE_BASE_SWA, 1, 10000.0f, 0 },
	{ "final_logit_softcapping", "logit cap", HP_FINAL_SOFTCAP, 1, 0, 0 },
};

/* gpt-oss-20b and -120b both slide over 128 positions on even layers. */
static const struct arch_key gptoss_keys[] = {
	{ "attention.sliding_window", "swa window", HP_SWA_WINDOW, 0, 128, 128 },
};

static const struct arch table[] = {
	{ "llama",
	  "the reference block: RMS norms, SwiGLU, RoPE on pairs (2i, 2i+1); Mixtral's experts "
	  "when the file has them",
	  ROPE_NORM, ACT_SILU, ARCH_MOE_RENORM, 0, 0, NULL, 0, llama_tensors, N(llama_tensors),
	  10000.0f, 1e-5f, 0, 0 },
	{ "qwen2", "llama with q/k/v biases and NEOX RoPE", ROPE_NEOX, ACT_SILU, 0, 0, 0, NULL, 0,
	  qwen2_tensors, N(qwen2_tensors), 1000000.0f, 1e-6f, 0, 0 },
	{ "qwen3", "llama with per-head q/k RMS norms before NEOX RoPE, no biases", ROPE_NEOX,
	  ACT_SILU, ARCH_QK_NORM, 0, 0, NULL, 0, qwen3_tensors, N(qwen3_tensors), 1000000.0f, 1e-6f,
	  0, 0 },
	{ "qwen3moe", "qwen3 with a mixture of experts in place of the FFN", ROPE_NEOX, ACT_SILU,
	  ARCH_QK_NORM | ARCH_MOE | ARCH_MOE_RENORM, 0, 0, NULL, 0, qwen3moe_tensors,
	  N(qwen3moe_tensors), 1000000.0f, 1e-6f, 0, 0 },
	{ "gemma2",
	  "embeddings times sqrt(dim), GeGLU, post-norms, soft-capped attention and logits, "
	  "sliding window on even layers",
	  ROPE_NEOX, ACT_GELU, ARCH_POST_NORMS | ARCH_EMBD_SCALE, 2, 46, gemma2_keys,
	  N(gemma2_keys), gemma2_tensors, N(gemma2_tensors), 10000.0f, 1e-6f, 0, 0 },
	{ "gemma3",
	  "gemma2 without soft-caps, with q/k norms; five sliding layers (RoPE base 10000) to "
	  "one global",
	  ROPE_NEOX, ACT_GELU, ARCH_POST_NORMS | ARCH_EMBD_SCALE | ARCH_QK_NORM, 6, 62, gemma3_keys,
	  N(gemma3_keys), gemma3_tensors, N(gemma3_tensors), 1000000.0f, 1e-6f, 0, 0 },
	{ "phi3", "llama with fused qkv and gate+up matrices, NEOX RoPE, LongRoPE factors",
	  ROPE_NEOX, ACT_SILU, 0, 0, 0, NULL, 0, phi3_tensors, N(phi3_tensors), 10000.0f, 1e-5f, 0,
	  0 },
	{ "gpt-oss",
	  "a mixture of experts with biases everywhere, attention sinks, NEOX RoPE with YaRN, "
	  "sliding window on even layers, clamped SwiGLU",
	  ROPE_NEOX, ACT_SWIGLU_OAI, ARCH_MOE | ARCH_MOE_RENORM, 2, 0, gptoss_keys, N(gptoss_keys),
	  gptoss_tensors, N(gptoss_tensors), 150000.0f, 1e-5f, 32.0f, 4096 },
};

const struct arch *arch_find(const char *name)
{
	for (int i = 0; i < N(table); i++)
		if (!strcmp(table[i].name, name))
			return &table[i];
	return NULL;
}

const struct arch *arch_at(int i)
{
	return i >= 0 && i < N(table) ? &table[i] : NULL;
}

static char names_buf[256];

static void names_init(void)
{
	char *buf = names_buf;
	{
		size_t o = 0;
		for (int i = 0; i < N(table); i++) {
			size_t n = strlen(table[i].name);
			if (o + n + 3 > sizeof(names_buf))
				break;
			if (i) {
				memcpy(buf + o, ", ", 2);
				o += 2;
			}
			memcpy(buf + o, table[i].name, n);
			o += n;
		}
		buf[o] = 0;
	}
}

const char *arch_names(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pthread_once(&once, names_init);
	return names_buf;
}
