/* Attention over the KV cache: grouped-query, causal, optional sliding window, soft-cap and sinks. */
#ifndef PALAVER_ATTENTION_H
#define PALAVER_ATTENTION_H

#include <stddef.h>

struct kv_cache;

/* One layer's attention for ntok queries at positions pos0 .. pos0+ntok-1,
 * whose keys and values are already in the cache. */
struct attn_args {
	const struct kv_cache *kv;
	int layer;
	const float *q; /* (ntok, n_head * head_dim), after RoPE */
	float *out;     /* (ntok, n_head * head_dim_v) */
	int n_head;
	int n_head_kv;
	int head_dim;
	int head_dim_v;
	float scale;   /* score = q.k * scale */
	float softcap; /* 0, or score = softcap * tanh(score / softcap) */
	int window;    /* 0: all earlier positions; else a query at p sees p-window+1 .. p */
	int pos0;
	int ntok;
	/* (n_head) or NULL: gpt-oss's learned sink per head, one more logit in
	 * the softmax that takes probability mass and adds no value */
	const float *sinks;
};

/* Floats of scratch one thread needs. */
size_t attn_scratch_floats(int n_head, int n_head_kv, int head_dim, int head_dim_v);

/*
 * Thread ith of nth does its share: decode (ntok 1) one item per KV head,
 * prefill one item per (block of 8 queries, KV head), dealt round-robin.
 * Each output element is computed by one thread with the same code however
 * many threads there are.
 */
void attn_run(const struct attn_args *a, int ith, int nth, float *scratch);

#endif
