/* The row operations of the forward pass: norms, RoPE, activations, soft-capping, small dots. */
#ifndef PALAVER_OPS_H
#define PALAVER_OPS_H

#include "quant.h"

#define ROPE_MAX 512 /* rotated dimensions at most */

/*
 * One layer's rotary embedding.  Pair i (of n_rot / 2) of a head turns by
 * pos * base^(-2i / n_rot) / factors[i] * freq_scale; NEOX pairs element i
 * with i + n_rot/2, the normal kind 2i with 2i+1.  Dimensions past n_rot
 * are left alone.  With YaRN (ext_factor != 0, gpt-oss) the fast pairs
 * (i <= corr[0]) keep their unscaled angle, the slow ones (i >= corr[1])
 * take the scaled one, a linear ramp between mixes the two, and mscale
 * holds YaRN's 1 + 0.1 ln(1 / freq_scale).
 */
struct rope {
	int n_rot;
	int neox;
	float base;
	float freq_scale;     /* linear scaling: 1 / factor */
	float mscale;         /* cos and sin times this (LongRoPE's attention factor); 1: none */
	const float *factors; /* (n_rot / 2) frequency divisors (llama 3, LongRoPE), or NULL */
	float ext_factor;     /* YaRN: how much of the unscaled angle the ramp mixes in; 0: none */
	float corr[2];        /* YaRN: the ramp's first and last pair */
};

/* Turn r (base, n_rot, freq_scale and mscale set) into YaRN for a model
 * trained on n_ctx_orig positions: the ramp between the pairs that turn
 * beta_fast and beta_slow times over n_ctx_orig, and the attention factor
 * folded into mscale.  ext_factor 0 leaves r as it is. */
void rope_yarn_init(struct rope *r, int n_ctx_orig, float ext_factor, float beta_fast,
		    float beta_slow);

/* cos/sin of each rotated pair at position pos (llama.cpp's recurrence for theta). */
void rope_table(const struct rope *r, float pos, float *cs, float *sn);
/* Rotate n_heads heads of hd floats by a table from rope_table. */
void rope_apply(const struct rope *r, float *x, int n_heads, int hd, const float *cs,
		const float *sn);

/* out = x / rms(x) * w over n floats (out may be x). */
void rms_norm(float *out, const float *x, const float *w, int n, float eps);

/* g[i] = act(g[i]) * u[i]: SiLU (SwiGLU) or GELU with the tanh approximation (GeGLU). */
void glu_silu(float *g, const float *u, int n);
void glu_gelu(float *g, const float *u, int n);
/* gpt-oss's clamped SwiGLU: g = min(g, limit) * sigmoid(alpha * min(g, limit))
 * * (clamp(u, -limit, limit) + 1). */
void glu_swiglu_oai(float *g, const float *u, int n, float alpha, float limit);

/* x[i] = c * tanh(x[i] / c) */
void softcap(float *x, int n, float c);

float dot_f32(const float *a, const float *b, int n);
/* s[i] = scale * dot(q, row i) for i < n (rows hd floats apart); each
 * score independent of n and of the other rows. */
void dot_rows(const float *q, const float *rows, int n, int hd, float scale, float *s);
/* dot_rows for nq queries hd floats apart, scores of query j at s + j * ss:
 * the same scores, the rows' loads shared. */
void dot_rows_multi(const float *q, int nq, const float *rows, int n, int hd, float scale, float *s,
		    size_t ss);
void f16_row(float *dst, const quant_half *src, int n);
/* x[i] = exp(x[i] - m) for i < n (all x[i] <= m); their sum. */
float exp_sub_sum(float *x, int n, float m);
/* a[d] += sum over i < n of w[i] * rows[i][d] (rows hv floats apart), in key order. */
void accumulate_rows(float *a, const float *w, const float *rows, int n, int hv);
/* accumulate_rows for nq queries: query j's sums at a + j * as, its weights
 * at w + j * ws; the same results, the rows' loads shared. */
void accumulate_rows_multi(float *a, size_t as, int nq, const float *w, size_t ws,
			   const float *rows, int n, int hv);

#endif
