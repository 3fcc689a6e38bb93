/* The row operations of the forward pass (see ops.h). */
#include "ops.h"

#include <math.h>
#include <stddef.h>
#if defined(__AVX2__) && defined(__F16C__) && defined(__FMA__)
#include <immintrin.h>
#define OPS_AVX2 1
#endif

/*
 * Every function here gives a result that depends only on its inputs and
 * the element's index, never on the thread that runs it: the forward pass
 * splits rows between threads and its results must not depend on how.
 */

/* The pair whose angle turns n_turns times over n_ctx positions (YaRN's
 * correction dimension), as a real number. */
static float yarn_corr_dim(const struct rope *r, int n_ctx, float n_turns)
{
	return (float)r->n_rot * logf((float)n_ctx / (n_turns * 2.0f * (float)M_PI)) /
	       (2.0f * logf(r->base));
}

void rope_yarn_init(struct rope *r, int n_ctx_orig, float ext_factor, float beta_fast,
		    float beta_slow)
{
	r->ext_factor = ext_factor;
	if (ext_factor == 0)
		return;
	float lo = floorf(yarn_corr_dim(r, n_ctx_orig, beta_fast));
	float hi = ceilf(yarn_corr_dim(r, n_ctx_orig, beta_slow));
	r->corr[0] = lo > 0 ? lo : 0;
	r->corr[1] = hi < (float)(r->n_rot - 1) ? hi : (float)(r->n_rot - 1);
	r->mscale *= 1.0f + 0.1f * logf(1.0f / r->freq_scale);
}

/* YaRN's share of the unscaled angle for pair i: 1 up to corr[0], 0 from
 * corr[1], linear between. */
static float yarn_ramp(const struct rope *r, int i)
{
	float w = r->corr[1] - r->corr[0];
	float y = ((float)i - r->corr[0]) / (w > 0.001f ? w : 0.001f);
	y = y < 0 ? 0 : y > 1 ? 1 : y;
	return 1.0f - y;
}

void rope_table(const struct rope *r, float pos, float *cs, float *sn)
{
	int half = r->n_rot / 2;
	float theta_scale = powf(r->base, -2.0f / (float)r->n_rot);
	float theta = pos;
	for (int i = 0; i < half; i++) {
		float e = theta;
		if (r->factors)
			e /= r->factors[i];
		float t = e * r->freq_scale;
		if (r->ext_factor != 0) {
			float mix = yarn_ramp(r, i) * r->ext_factor;
			t = t * (1.0f - mix) + e * mix;
		}
		cs[i] = cosf(t);
		sn[i] = sinf(t);
		theta *= theta_scale;
	}
	if (r->mscale != 1.0f)
		for (int i = 0; i < half; i++) {
			cs[i] *= r->mscale;
			sn[i] *= r->mscale;
		}
}

void rope_apply(const struct rope *r, float *x, int n_heads, int hd, const float *cs,
		const float *sn)
{
	int half = r->n_rot / 2;
	for (int h = 0; h < n_heads; h++) {
		float *v = x + (size_t)h * hd;
		if (r->neox) {
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

void rms_norm(float *out, const float *x, const float *w, int n, float eps)
{
	double ss = 0;
	for (int i = 0; i < n; i++)
		ss += (double)x[i] * x[i];
	float scale = 1.0f / sqrtf((float)(ss / n) + eps);
	for (int i = 0; i < n; i++)
		out[i] = x[i] * scale * w[i];
}

#ifdef OPS_AVX2
/* e^x, eight at a time: Cephes-style range reduction and polynomial
 * (relative error ~2e-7); x is clamped to [-87.3, 88.3]. */
static inline __m256 exp8(__m256 x)
{
	const __m256 log2e = _mm256_set1_ps(1.44269504088896341f);
	const __m256 c1 = _mm256_set1_ps(0.693359375f), c2 = _mm256_set1_ps(-2.12194440e-4f);
	__m256 v = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.3f)), _mm256_set1_ps(88.3f));
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
	__m256 y = _mm256_fmadd_ps(_mm256_mul_ps(p, r), r, _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
	__m256i e = _mm256_slli_epi32(_mm256_cvtps_epi32(k), 23);
	return _mm256_castsi256_ps(_mm256_add_epi32(_mm256_castps_si256(y), e));
}

/* 1 / (1 + e^-x): the logistic function, eight at a time. */
static inline __m256 sigmoid8(__m256 x)
{
	__m256 one = _mm256_set1_ps(1.0f);
	return _mm256_div_ps(one, _mm256_add_ps(one, exp8(_mm256_sub_ps(_mm256_setzero_ps(), x))));
}
#endif

/* x * sigmoid(x) * u, vectorized through exp8 as glu_gelu (it was a scalar
 * expf per element: 131k of them per token in a 1B model, most of the
 * "norm+quantize" share of a prefill); which path an element takes
 * depends only on n. */
void glu_silu(float *g, const float *u, int n)
{
	int i = 0;
#ifdef OPS_AVX2
	for (; i + 8 <= n; i += 8) {
		__m256 x = _mm256_loadu_ps(g + i);
		__m256 y = _mm256_mul_ps(x, sigmoid8(x));
		_mm256_storeu_ps(g + i, _mm256_mul_ps(y, _mm256_loadu_ps(u + i)));
	}
#endif
	for (; i < n; i++)
		g[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

/*
 * GELU with the tanh approximation: 0.5 x (1 + tanh(u)), u = sqrt(2/pi) (x +
 * 0.044715 x^3), which is x * sigmoid(2u); vectorized through exp, the tail
 * with tanhf.  Which path an element takes depends only on n.
 */
void glu_gelu(float *g, const float *u, int n)
{
	const float c = 0.7978845608028654f; /* sqrt(2 / pi) */
	int i = 0;
#ifdef OPS_AVX2
	const __m256 c2 = _mm256_set1_ps(2.0f * c), k = _mm256_set1_ps(0.044715f);
	for (; i + 8 <= n; i += 8) {
		__m256 x = _mm256_loadu_ps(g + i);
		__m256 x3 = _mm256_mul_ps(_mm256_mul_ps(x, x), x);
		__m256 t = _mm256_mul_ps(c2, _mm256_fmadd_ps(k, x3, x));
		__m256 y = _mm256_mul_ps(x, sigmoid8(t));
		_mm256_storeu_ps(g + i, _mm256_mul_ps(y, _mm256_loadu_ps(u + i)));
	}
#endif
	for (; i < n; i++) {
		float x = g[i];
		g[i] = 0.5f * x * (1.0f + tanhf(c * (x + 0.044715f * x * x * x))) * u[i];
	}
}

void glu_swiglu_oai(float *g, const float *u, int n, float alpha, float limit)
{
	int i = 0;
#ifdef OPS_AVX2
	const __m256 va = _mm256_set1_ps(alpha), hi = _mm256_set1_ps(limit),
		     lo = _mm256_set1_ps(-limit), one = _mm256_set1_ps(1.0f);
	for (; i + 8 <= n; i += 8) {
		__m256 x = _mm256_min_ps(_mm256_loadu_ps(g + i), hi);
		__m256 y = _mm256_min_ps(_mm256_max_ps(_mm256_loadu_ps(u + i), lo), hi);
		__m256 r = _mm256_mul_ps(x, sigmoid8(_mm256_mul_ps(va, x)));
		_mm256_storeu_ps(g + i, _mm256_mul_ps(r, _mm256_add_ps(y, one)));
	}
#endif
	for (; i < n; i++) {
		float x = g[i] < limit ? g[i] : limit;
		float y = u[i] < -limit ? -limit : u[i] > limit ? limit : u[i];
		g[i] = x / (1.0f + expf(-alpha * x)) * (y + 1.0f);
	}
}

/* c * tanh(x / c) = c * (2 sigmoid(2x / c) - 1), vectorized as glu_gelu. */
void softcap(float *x, int n, float c)
{
	float inv = 1.0f / c;
	int i = 0;
#ifdef OPS_AVX2
	const __m256 vc = _mm256_set1_ps(c), v2 = _mm256_set1_ps(2.0f * inv);
	const __m256 two = _mm256_set1_ps(2.0f), one = _mm256_set1_ps(1.0f);
	for (; i + 8 <= n; i += 8) {
		__m256 s = sigmoid8(_mm256_mul_ps(_mm256_loadu_ps(x + i), v2));
		_mm256_storeu_ps(x + i, _mm256_mul_ps(vc, _mm256_fmsub_ps(two, s, one)));
	}
#endif
	for (; i < n; i++)
		x[i] = c * tanhf(x[i] * inv);
}

float dot_f32(const float *a, const float *b, int n)
{
	int i = 0;
	float s = 0;
#ifdef OPS_AVX2
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

#if defined(__AVX512F__)
/* The four keys' sums (one reduction tree for every key), times scale. */
static inline __m128 sum4_scaled(__m512 a0, __m512 a1, __m512 a2, __m512 a3, float scale)
{
#define HALF(v) _mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1))
	__m256 x = _mm256_hadd_ps(HALF(a0), HALF(a1)), y = _mm256_hadd_ps(HALF(a2), HALF(a3));
#undef HALF
	__m256 z = _mm256_hadd_ps(x, y);
	return _mm_mul_ps(_mm_add_ps(_mm256_castps256_ps128(z), _mm256_extractf128_ps(z, 1)),
			  _mm_set1_ps(scale));
}

/* Scores i .. i+3 (those below n) into s. */
static inline void store_scores(__m128 v, float *s, int i, int n)
{
	if (i + 4 <= n) {
		_mm_storeu_ps(s + i, v);
	} else {
		float t[4];
		_mm_storeu_ps(t, v);
		for (int k = 0; i + k < n; k++)
			s[i + k] = t[k];
	}
}
#endif

/*
 * Four keys a step, each with its own vector accumulator, and the four
 * reduced together (the lane sums' order is one fixed tree for every key),
 * in place of one dot product and one horizontal sum per key: a key's
 * score is the same whatever keys share its step, so decode (one query's
 * block) and prefill (the same keys, a block of other length) agree bit
 * for bit.  A step short of four keys repeats the last one.
 */
void dot_rows(const float *q, const float *rows, int n, int hd, float scale, float *s)
{
#if defined(__AVX512F__)
	__mmask16 tail = (hd % 16) ? (__mmask16)((1u << (hd % 16)) - 1) : 0;
	for (int i = 0; i < n; i += 4) {
		const float *r[4];
		for (int k = 0; k < 4; k++)
			r[k] = rows + (size_t)(i + k < n ? i + k : n - 1) * hd;
		__m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
		int d = 0;
		for (; d + 16 <= hd; d += 16) {
			__m512 qv = _mm512_loadu_ps(q + d);
			a0 = _mm512_fmadd_ps(qv, _mm512_loadu_ps(r[0] + d), a0);
			a1 = _mm512_fmadd_ps(qv, _mm512_loadu_ps(r[1] + d), a1);
			a2 = _mm512_fmadd_ps(qv, _mm512_loadu_ps(r[2] + d), a2);
			a3 = _mm512_fmadd_ps(qv, _mm512_loadu_ps(r[3] + d), a3);
		}
		if (tail) {
			__m512 qv = _mm512_maskz_loadu_ps(tail, q + d);
			a0 = _mm512_fmadd_ps(qv, _mm512_maskz_loadu_ps(tail, r[0] + d), a0);
			a1 = _mm512_fmadd_ps(qv, _mm512_maskz_loadu_ps(tail, r[1] + d), a1);
			a2 = _mm512_fmadd_ps(qv, _mm512_maskz_loadu_ps(tail, r[2] + d), a2);
			a3 = _mm512_fmadd_ps(qv, _mm512_maskz_loadu_ps(tail, r[3] + d), a3);
		}
		store_scores(sum4_scaled(a0, a1, a2, a3, scale), s, i, n);
	}
#else
	for (int i = 0; i < n; i++)
		s[i] = dot_f32(q, rows + (size_t)i * hd, hd) * scale;
#endif
}

#define OPS_UNROLL _Pragma("GCC unroll 16")

/*
 * dot_rows for nq queries (hd floats apart) against the same rows, scores
 * of query j at s + j * ss: up to four queries a step share each key's
 * loads (a query's scores are dot_rows's, bit for bit: the same
 * accumulators in the same order and the same reduction tree).
 */
#if defined(__AVX512F__)
static inline __attribute__((always_inline)) void dot_rows_q(const float *q, int nq,
							     const float *rows, int n, int hd,
							     float scale, float *s, size_t ss)
{
	for (int i = 0; i < n; i += 4) {
		const float *r[4];
		OPS_UNROLL
		for (int k = 0; k < 4; k++)
			r[k] = rows + (size_t)(i + k < n ? i + k : n - 1) * hd;
		__m512 a[4][4];
		OPS_UNROLL
		for (int j = 0; j < nq; j++)
			OPS_UNROLL
		for (int k = 0; k < 4; k++)
			a[j][k] = _mm512_setzero_ps();
		for (int d = 0; d < hd; d += 16) {
			__m512 rk[4];
			OPS_UNROLL
			for (int k = 0; k < 4; k++) {
				rk[k] = _mm512_loadu_ps(r[k] + d);
				/* in a register: loaded once for the queries, not folded
				 * into each one's FMA (GCC did: 20 loads per 16 FMAs) */
				__asm__("" : "+v"(rk[k]));
			}
			OPS_UNROLL
			for (int j = 0; j < nq; j++) {
				__m512 qv = _mm512_loadu_ps(q + (size_t)j * hd + d);
				OPS_UNROLL
				for (int k = 0; k < 4; k++)
					a[j][k] = _mm512_fmadd_ps(qv, rk[k], a[j][k]);
			}
		}
		OPS_UNROLL
		for (int j = 0; j < nq; j++) {
			store_scores(sum4_scaled(a[j][0], a[j][1], a[j][2], a[j][3], scale),
				     s + (size_t)j * ss, i, n);
		}
	}
}
#endif

void dot_rows_multi(const float *q, int nq, const float *rows, int n, int hd, float scale, float *s,
		    size_t ss)
{
#if defined(__AVX512F__)
	if (hd % 16 == 0) {
		for (; nq >= 4; nq -= 4, q += (size_t)4 * hd, s += 4 * ss)
			dot_rows_q(q, 4, rows, n, hd, scale, s, ss);
		if (nq == 3)
			dot_rows_q(q, 3, rows, n, hd, scale, s, ss);
		else if (nq == 2)
			dot_rows_q(q, 2, rows, n, hd, scale, s, ss);
		else if (nq == 1)
			dot_rows_q(q, 1, rows, n, hd, scale, s, ss);
		return;
	}
#endif
	for (int j = 0; j < nq; j++)
		dot_rows(q + (size_t)j * hd, rows, n, hd, scale, s + (size_t)j * ss);
}

void f16_row(float *dst, const quant_half *src, int n)
{
	int i = 0;
#ifdef OPS_AVX2
	for (; i + 8 <= n; i += 8)
		_mm256_storeu_ps(dst + i,
				 _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + i))));
#endif
	for (; i < n; i++)
		dst[i] = quant_f16_to_f32(src[i]);
}

/*
 * Eight at a time with a Cephes-style polynomial (relative error ~2e-7, as
 * expf for softmax weights), the tail with expf.
 */
float exp_sub_sum(float *x, int n, float m)
{
	int i = 0;
	float sum = 0;
#ifdef OPS_AVX2
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
 * One fused multiply-add per term in key order, whatever the vector width:
 * the accumulators stay in registers across the keys of a block.
 */
void accumulate_rows(float *a, const float *w, const float *rows, int n, int hv)
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
#elif defined(OPS_AVX2)
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
 * accumulate_rows for nq queries: accumulators of query j at a + j * as,
 * weights at w + j * ws; up to four a step share each row's loads (each
 * query's sums are accumulate_rows's, bit for bit).
 */
#if defined(__AVX512F__)
static inline __attribute__((always_inline)) void accumulate_rows_q(float *a, size_t as, int nq,
								    const float *w, size_t ws,
								    const float *rows, int n,
								    int hv)
{
	for (int d = 0; d < hv; d += 64) {
		__m512 s[4][4];
		OPS_UNROLL
		for (int j = 0; j < nq; j++)
			OPS_UNROLL
		for (int k = 0; k < 4; k++)
			s[j][k] = _mm512_loadu_ps(a + (size_t)j * as + d + 16 * k);
		for (int i = 0; i < n; i++) {
			const float *r = rows + (size_t)i * hv + d;
			__m512 rv[4];
			OPS_UNROLL
			for (int k = 0; k < 4; k++) {
				rv[k] = _mm512_loadu_ps(r + 16 * k);
				__asm__("" : "+v"(rv[k])); /* as in dot_rows_q */
			}
			OPS_UNROLL
			for (int j = 0; j < nq; j++) {
				__m512 wi = _mm512_set1_ps(w[(size_t)j * ws + i]);
				OPS_UNROLL
				for (int k = 0; k < 4; k++)
					s[j][k] = _mm512_fmadd_ps(wi, rv[k], s[j][k]);
			}
		}
		OPS_UNROLL
		for (int j = 0; j < nq; j++)
			OPS_UNROLL
		for (int k = 0; k < 4; k++)
			_mm512_storeu_ps(a + (size_t)j * as + d + 16 * k, s[j][k]);
	}
}
#endif

void accumulate_rows_multi(float *a, size_t as, int nq, const float *w, size_t ws,
			   const float *rows, int n, int hv)
{
#if defined(__AVX512F__)
	if (hv % 64 == 0) {
		for (; nq >= 4; nq -= 4, a += 4 * as, w += 4 * ws)
			accumulate_rows_q(a, as, 4, w, ws, rows, n, hv);
		if (nq == 3)
			accumulate_rows_q(a, as, 3, w, ws, rows, n, hv);
		else if (nq == 2)
			accumulate_rows_q(a, as, 2, w, ws, rows, n, hv);
		else if (nq == 1)
			accumulate_rows_q(a, as, 1, w, ws, rows, n, hv);
		return;
	}
#endif
	for (int j = 0; j < nq; j++)
		accumulate_rows(a + (size_t)j * as, w + (size_t)j * ws, rows, n, hv);
}
