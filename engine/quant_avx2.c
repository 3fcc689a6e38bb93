/* AVX2 dot products, gemv and gemm for every weight type, for CPUs without AVX-512 (and the integer kernels of the plain AVX-512 level). */

/*
 * DESIGN
 *
 * The same tile structure as quant_avx512.c (R weight rows x T activation
 * rows, R, T <= 4 constants after inlining, accumulators in ymm registers),
 * with 256-bit vectors and no VNNI: integer blocks use vpmaddubsw (u8 x s8
 * pairs to s16) then vpmaddwd against ones or against the sub-block scales.
 * Signed weights become unsigned by moving their sign onto the activation
 * (vpsignb), so Q8_0-style activations are used in place, unprepared;
 * the table types (IQ4_NL, IQ4_XS, MXFP4) look their signed values up with
 * vpshufb first.
 * Every vpmaddubsw pair sum stays below 2^15 for these ranges (|q| <= 128,
 * |y| <= 127), so nothing saturates.
 *
 * quant_avx512vl.c builds this file a second time with QUANT_AVX2_VNNI:
 * the same 256-bit kernels with AVX-512VL VNNI (vpdpbusd for the plain
 * byte dots, vpdpwssd for the scaled pairs) and EVEX's 32 registers, for
 * CPUs whose 512-bit operations are split in two (Zen 4) or slow the clock.
 * The integer sums are exact either way, so results are bit-identical.
 */
#include "quant_internal.h"

#include <immintrin.h>
#include <stddef.h>
#include <string.h>

/* Software prefetch distance in each weight row, as in quant_avx512.c. */
#define PF_DIST 4096

QUANT_INLINE void prefetch_span(const void *p, size_t len)
{
	for (size_t o = 0; o < len; o += 64)
		_mm_prefetch((const char *)p + PF_DIST + o, _MM_HINT_T0);
}

QUANT_INLINE float hsum8(__m256 v)
{
	__m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
	s = _mm_add_ps(s, _mm_movehl_ps(s, s));
	s = _mm_add_ss(s, _mm_movehdup_ps(s));
	return _mm_cvtss_f32(s);
}

QUANT_INLINE float h2f(quant_half h)
{
	return _cvtsh_ss(h);
}

/* Rows per gemm panel, sized to stay in L2 while the token tiles pass.
 * The prefetches here are always on (no per-tile switch). */
#define PANEL_BYTES (256 * 1024)
#define RUN_PANELS(TILE, UNUSED, ...) quant_run_panels(TILE, PANEL_BYTES, NULL, 0, __VA_ARGS__)

/* ---- float types ---------------------------------------------------------------------- */

/* 8 weights / activations as floats from element k; `tail` < 8 elements are
 * copied through a zero-padded buffer so no load passes the row's end. */
QUANT_INLINE __m256 ld_f32(const void *row, int64_t k, int tail)
{
	if (!tail)
		return _mm256_loadu_ps((const float *)row + k);
	float b[8] = { 0 };
	memcpy(b, (const float *)row + k, (size_t)tail * 4);
	return _mm256_loadu_ps(b);
}

QUANT_INLINE __m256 ld_f16(const void *row, int64_t k, int tail)
{
	if (!tail)
		return _mm256_cvtph_ps(
			_mm_loadu_si128((const __m128i *)((const quant_half *)row + k)));
	quant_half b[8] = { 0 };
	memcpy(b, (const quant_half *)row + k, (size_t)tail * 2);
	return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)b));
}

QUANT_INLINE __m256 ld_bf16(const void *row, int64_t k, int tail)
{
	__m128i h;
	if (!tail) {
		h = _mm_loadu_si128((const __m128i *)((const quant_bf16 *)row + k));
	} else {
		quant_bf16 b[8] = { 0 };
		memcpy(b, (const quant_bf16 *)row + k, (size_t)tail * 2);
		h = _mm_loadu_si128((const __m128i *)b);
	}
	return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

#define PF_FLOAT(p, left, rb, ws) _mm_prefetch((const char *)(p) + PF_DIST, _MM_HINT_T0)
QUANT_FLOAT_KERNELS(__m256, 8, _mm256_setzero_ps, _mm256_fmadd_ps, hsum8, ld_f32, ld_f16, ld_bf16,
		    PF_FLOAT, RUN_PANELS)

/* ---- Q4_0 / Q8_0 with Q8_0 activations --------------------------------------------------- */

/* acc + the pairwise products of s16 lanes p and s: one vpdpwssd with VNNI. */
QUANT_INLINE __m256i madd_acc(__m256i acc, __m256i p, __m256i s)
{
#ifdef QUANT_AVX2_VNNI
	return _mm256_dpwssd_epi32(acc, p, s);
#else
	return _mm256_add_epi32(acc, _mm256_madd_epi16(p, s));
#endif
}

/* Signed weight bytes x signed activation bytes: 8 int32 lane sums. */
QUANT_INLINE __m256i dot_s8(__m256i x, __m256i y)
{
#ifdef QUANT_AVX2_VNNI
	return _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_sign_epi8(x, x),
				   _mm256_sign_epi8(y, x));
#else
	__m256i p = _mm256_maddubs_epi16(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x));
	return _mm256_madd_epi16(p, _mm256_set1_epi16(1));
#endif
}

/* Q4_0 block as 32 signed bytes in element order (-8..7). */
QUANT_INLINE __m256i q4_0_bytes(const struct block_q4_0 *b)
{
	__m128i q = _mm_loadu_si128((const __m128i *)b->qs);
	__m256i v = _mm256_insertf128_si256(_mm256_castsi128_si256(q), _mm_srli_epi16(q, 4), 1);
	v = _mm256_and_si256(v, _mm256_set1_epi8(0x0F));
	return _mm256_sub_epi8(v, _mm256_set1_epi8(8));
}

/*
 * Block tiles (QUANT_BLOCK_TILE) accumulate in a vector plus a float that
 * collects per-block scalar terms (Q8_1's min term, the K-quants' sums
 * term), summed once at the end.
 */
struct vacc {
	__m256 v;
	float s;
};

QUANT_INLINE struct vacc vacc_zero(void)
{
	return (struct vacc){ _mm256_setzero_ps(), 0 };
}

QUANT_INLINE float vacc_sum(struct vacc a)
{
	return hsum8(a.v) + a.s;
}

/* A Q8_0 or Q8_1 activation block: quants, scale, Q8_1's d * sum (s). */
struct q8x_act {
	__m256i y;
	float d, s;
};

QUANT_INLINE void act_q8_0(const void *p, struct q8x_act *a)
{
	const struct block_q8_0 *b = p;
	a->y = _mm256_loadu_si256((const __m256i *)b->qs);
	a->d = h2f(b->d);
	a->s = 0;
}

QUANT_INLINE void act_q8_1(const void *p, struct q8x_act *a)
{
	const struct block_q8_1 *b = p;
	a->y = _mm256_loadu_si256((const __m256i *)b->qs);
	a->d = h2f(b->d);
	a->s = h2f(b->s);
}

/* A 32-element weight block as signed bytes, its scale and min (0 if none). */
struct q8x_w {
	__m256i q;
	float d, m;
};

QUANT_INLINE void q8x_mac(const struct q8x_w *x, const struct q8x_act *y, struct vacc *acc)
{
	acc->v = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot_s8(x->q, y->y)),
				 _mm256_set1_ps(x->d * y->d), acc->v);
	acc->s += x->m * y->s;
}

/* Small blocks: two at a time. */
#define PF_Q8X(x, i, bytes)                                                                        \
	do {                                                                                       \
		if (!((i)&1))                                                                      \
			prefetch_span(x, 2 * (bytes));                                             \
	} while (0)

/* Weights of block_TYPE as signed bytes (BYTES) and their scale (SCALE)
 * against Q8_0 or Q8_1 activations (ABLOCK); HAS_MIN: the block has a min
 * after d, met by Q8_1's s. */
#define HALF_D(b) h2f((b)->d)
#define E8M0_D(b) quant_e8m0_half((b)->e)
#define Q8X_KERNEL(TYPE, BYTES, SCALE, ABLOCK, HAS_MIN)                                            \
	QUANT_INLINE void dec_##TYPE(const void *p, struct q8x_w *x)                               \
	{                                                                                          \
		const struct block_##TYPE *b = p;                                                  \
		x->q = BYTES(b);                                                                   \
		x->d = SCALE(b);                                                                   \
		x->m = HAS_MIN ? h2f(((const quant_half *)b)[1]) : 0;                              \
	}                                                                                          \
	QUANT_BLOCK_TILE(tile_##TYPE, struct vacc, vacc_zero, vacc_sum,                            \
			 sizeof(struct block_##TYPE), struct q8x_w, dec_##TYPE, PF_Q8X,            \
			 sizeof(struct block_##ABLOCK), struct q8x_act, act_##ABLOCK, q8x_mac)     \
	QUANT_KERNEL(TYPE, 32, RUN_PANELS, 0)

QUANT_INLINE __m256i q8_0_bytes(const struct block_q8_0 *b)
{
	return _mm256_loadu_si256((const __m256i *)b->qs);
}

/* 32 bits -> 32 bytes of 0x10 where the bit is set (element order). */
QUANT_INLINE __m256i q5_high(const uint8_t qh[4])
{
	uint32_t h;
	memcpy(&h, qh, 4);
	const __m256i rep = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2,
					     2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
	const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ull);
	__m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32((int)h), rep);
	v = _mm256_cmpeq_epi8(_mm256_and_si256(v, bit), bit);
	return _mm256_and_si256(v, _mm256_set1_epi8(0x10));
}

QUANT_INLINE __m256i nibbles(const uint8_t qs[16])
{
	__m128i q = _mm_loadu_si128((const __m128i *)qs);
	__m256i v = _mm256_insertf128_si256(_mm256_castsi128_si256(q), _mm_srli_epi16(q, 4), 1);
	return _mm256_and_si256(v, _mm256_set1_epi8(0x0F));
}

QUANT_INLINE __m256i q4_1_bytes(const struct block_q4_1 *b)
{
	return nibbles(b->qs);
}

QUANT_INLINE __m256i q5_0_bytes(const struct block_q5_0 *b)
{
	return _mm256_sub_epi8(_mm256_or_si256(nibbles(b->qs), q5_high(b->qh)),
			       _mm256_set1_epi8(16));
}

QUANT_INLINE __m256i q5_1_bytes(const struct block_q5_1 *b)
{
	return _mm256_or_si256(nibbles(b->qs), q5_high(b->qh));
}

/* IQ4_NL and MXFP4: nibbles (Q4_0 order) through a table of int8 values. */
QUANT_INLINE __m256i lut16(__m256i nib, const int8_t values[16])
{
	return _mm256_shuffle_epi8(
		_mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)values)), nib);
}

QUANT_INLINE __m256i iq4_nl_bytes(const struct block_iq4_nl *b)
{
	return lut16(nibbles(b->qs), quant_iq4nl_values);
}

/* MXFP4's doubled E2M1 values; E8M0_D halves the scale to match. */
QUANT_INLINE __m256i mxfp4_bytes(const struct block_mxfp4 *b)
{
	return lut16(nibbles(b->qs), quant_mxfp4_values2);
}

Q8X_KERNEL(q4_0, q4_0_bytes, HALF_D, q8_0, 0)
Q8X_KERNEL(q8_0, q8_0_bytes, HALF_D, q8_0, 0)
Q8X_KERNEL(q5_0, q5_0_bytes, HALF_D, q8_0, 0)
Q8X_KERNEL(q4_1, q4_1_bytes, HALF_D, q8_1, 1)
Q8X_KERNEL(q5_1, q5_1_bytes, HALF_D, q8_1, 1)
Q8X_KERNEL(iq4_nl, iq4_nl_bytes, HALF_D, q8_0, 0)
Q8X_KERNEL(mxfp4, mxfp4_bytes, E8M0_D, q8_0, 0)

/* ---- Q4_K / Q6_K with Q8_K activations ----------------------------------------------------- */

/* Q4_K and Q5_K (QH: the 5th bits, bit 2j / 2j+1 of qh[l] for chunk j) */
#define K4_TILE(NAME, BLOCK, QH)                                                                   \
	QUANT_INLINE void NAME(int R, int T, int64_t nb, const uint8_t *w, size_t ws,              \
			       const uint8_t *a, size_t as, float *out, size_t os)                 \
	{                                                                                          \
		tile_k4(R, T, nb, w, ws, sizeof(BLOCK), offsetof(BLOCK, scales),                   \
			offsetof(BLOCK, qs), QH ? (int)offsetof(struct block_q5_K, qh) : -1, a,    \
			as, out, os);                                                              \
	}

QUANT_INLINE void tile_k4(int R, int T, int64_t nb, const uint8_t *w, size_t ws, size_t bsize,
			  size_t scoff, size_t qsoff, int qhoff, const uint8_t *a, size_t as,
			  float *out, size_t os)
{
	const __m256i m4 = _mm256_set1_epi8(0x0F);
	__m256 acc[4][4];
	float mins[4][4] = { { 0 } };
	QUANT_UNROLL for (int r = 0; r < R; r++) QUANT_UNROLL for (int t = 0; t < T; t++)
		acc[r][t] = _mm256_setzero_ps();
	for (int64_t i = 0; i < nb; i++) {
		QUANT_UNROLL for (int r = 0; r < R; r++)
		{
			const uint8_t *x = w + r * ws + i * bsize;
			prefetch_span(x, bsize);
			uint8_t sc[16];
			uint32_t su[4];
			quant_half hd, hm;
			quant_k4_scales_u32(x + scoff, su);
			memcpy(sc, su, 16);
			memcpy(&hd, x, 2);
			memcpy(&hm, x + 2, 2);
			float d = h2f(hd), dmin = h2f(hm);
			__m256i H = qhoff >= 0 ? _mm256_loadu_si256((const __m256i *)(x + qhoff))
					       : _mm256_setzero_si256();
			__m256i isum[4];
			QUANT_UNROLL for (int t = 0; t < T; t++) isum[t] = _mm256_setzero_si256();
			for (int j = 0; j < 4; j++) {
				__m256i q =
					_mm256_loadu_si256((const __m256i *)(x + qsoff + 32 * j));
				__m256i lo = _mm256_and_si256(q, m4);
				__m256i hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
				if (qhoff >= 0) {
					const __m256i b1 = _mm256_set1_epi8(1);
					__m256i h0 = _mm256_srl_epi16(H, _mm_cvtsi32_si128(2 * j));
					__m256i h1 =
						_mm256_srl_epi16(H, _mm_cvtsi32_si128(2 * j + 1));
					lo = _mm256_or_si256(
						lo, _mm256_slli_epi16(_mm256_and_si256(h0, b1), 4));
					hi = _mm256_or_si256(
						hi, _mm256_slli_epi16(_mm256_and_si256(h1, b1), 4));
				}
				__m256i s0 = _mm256_set1_epi16(sc[2 * j]),
					s1 = _mm256_set1_epi16(sc[2 * j + 1]);
				QUANT_UNROLL for (int t = 0; t < T; t++)
				{
					const int8_t *yq =
						((const struct block_q8_K *)(a + t * as) + i)->qs;
					__m256i p0 = _mm256_maddubs_epi16(
						lo,
						_mm256_loadu_si256((const __m256i *)(yq + 64 * j)));
					__m256i p1 = _mm256_maddubs_epi16(
						hi, _mm256_loadu_si256(
							    (const __m256i *)(yq + 64 * j + 32)));
					isum[t] = madd_acc(isum[t], p0, s0);
					isum[t] = madd_acc(isum[t], p1, s1);
				}
			}
			QUANT_UNROLL for (int t = 0; t < T; t++)
			{
				const struct block_q8_K *y =
					(const struct block_q8_K *)(a + t * as) + i;
				int summ = 0;
				for (int j = 0; j < 8; j++)
					summ += sc[8 + j] * (y->bsums[2 * j] + y->bsums[2 * j + 1]);
				acc[r][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[t]),
							    _mm256_set1_ps(d * y->d), acc[r][t]);
				mins[r][t] += dmin * y->d * (float)summ;
			}
		}
	}
	QUANT_UNROLL for (int r = 0; r < R; r++) QUANT_UNROLL for (int t = 0; t < T; t++)
		out[t * os + r] = hsum8(acc[r][t]) - mins[r][t];
}

K4_TILE(tile_q4_K, struct block_q4_K, 0)
K4_TILE(tile_q5_K, struct block_q5_K, 1)
QUANT_KERNEL(q4_K, QK_K, RUN_PANELS, 0)
QUANT_KERNEL(q5_K, QK_K, RUN_PANELS, 0)

QUANT_INLINE void tile_q6_K(int R, int T, int64_t nb, const uint8_t *w, size_t ws, const uint8_t *a,
			    size_t as, float *out, size_t os)
{
	const __m256i m4 = _mm256_set1_epi8(0x0F), m2 = _mm256_set1_epi8(0x30);
	__m256 acc[4][4];
	QUANT_UNROLL for (int r = 0; r < R; r++) QUANT_UNROLL for (int t = 0; t < T; t++)
		acc[r][t] = _mm256_setzero_ps();
	for (int64_t i = 0; i < nb; i++) {
		QUANT_UNROLL for (int r = 0; r < R; r++)
		{
			const struct block_q6_K *x = (const struct block_q6_K *)(w + r * ws) + i;
			prefetch_span(x, sizeof(*x));
			__m256i isum[4];
			QUANT_UNROLL for (int t = 0; t < T; t++) isum[t] = _mm256_setzero_si256();
			for (int c = 0; c < 2; c++) {
				__m256i A = _mm256_loadu_si256((const __m256i *)(x->ql + 64 * c));
				__m256i B =
					_mm256_loadu_si256((const __m256i *)(x->ql + 64 * c + 32));
				__m256i H = _mm256_loadu_si256((const __m256i *)(x->qh + 32 * c));
				/* elements 0..31, 32..63, 64..95, 96..127 of this half, 0..63 each */
				__m256i q[4];
				q[0] = _mm256_or_si256(
					_mm256_and_si256(A, m4),
					_mm256_and_si256(_mm256_slli_epi16(H, 4), m2));
				q[1] = _mm256_or_si256(
					_mm256_and_si256(B, m4),
					_mm256_and_si256(_mm256_slli_epi16(H, 2), m2));
				q[2] = _mm256_or_si256(
					_mm256_and_si256(_mm256_srli_epi16(A, 4), m4),
					_mm256_and_si256(H, m2));
				q[3] = _mm256_or_si256(
					_mm256_and_si256(_mm256_srli_epi16(B, 4), m4),
					_mm256_and_si256(_mm256_srli_epi16(H, 2), m2));
				for (int k = 0; k < 4; k++) {
					int s = 8 * c +
						2 * k; /* scale index of the first 16 elements */
					__m256i sv =
						_mm256_setr_m128i(_mm_set1_epi16(x->scales[s]),
								  _mm_set1_epi16(x->scales[s + 1]));
					QUANT_UNROLL for (int t = 0; t < T; t++)
					{
						const int8_t *yq =
							((const struct block_q8_K *)(a + t * as) +
							 i)
								->qs;
						__m256i p = _mm256_maddubs_epi16(
							q[k],
							_mm256_loadu_si256(
								(const __m256i *)(yq + 128 * c +
										  32 * k)));
						isum[t] = madd_acc(isum[t], p, sv);
					}
				}
			}
			float d = h2f(x->d);
			QUANT_UNROLL for (int t = 0; t < T; t++)
			{
				const struct block_q8_K *y =
					(const struct block_q8_K *)(a + t * as) + i;
				/* the 6-bit quants carry an offset of 32, paid back through bsums */
				int off = 0;
				for (int j = 0; j < 16; j++)
					off += x->scales[j] * y->bsums[j];
				__m256i corr = _mm256_setr_epi32(-32 * off, 0, 0, 0, 0, 0, 0, 0);
				acc[r][t] = _mm256_fmadd_ps(
					_mm256_cvtepi32_ps(_mm256_add_epi32(isum[t], corr)),
					_mm256_set1_ps(d * y->d), acc[r][t]);
			}
		}
	}
	QUANT_UNROLL for (int r = 0; r < R; r++) QUANT_UNROLL for (int t = 0; t < T; t++)
		out[t * os + r] = hsum8(acc[r][t]);
}

QUANT_KERNEL(q6_K, QK_K, RUN_PANELS, 0)

/* Q2_K and Q3_K: 8 x 32 unsigned quants in element order, 16 scales for
 * 16-element sub-blocks; Q3_K's offset of 4 and Q2_K's mins are paid through
 * the activation bsums. */
struct k16 {
	__m256i q[8];
	int16_t sc[16]; /* scale per 16 elements */
	int16_t sb[16]; /* multiplier of bsums[j] */
	float d, dsb;   /* result = d * yd * sum(sc * dot) - dsb * yd * sum(sb * bsums) */
};

QUANT_INLINE void k16_q2_K(const void *p, struct k16 *k)
{
	const struct block_q2_K *x = p;
	const __m256i m3 = _mm256_set1_epi8(3);
	for (int n = 0; n < 2; n++) {
		__m256i Q = _mm256_loadu_si256((const __m256i *)(x->qs + 32 * n));
		for (int j = 0; j < 4; j++)
			k->q[4 * n + j] =
				_mm256_and_si256(_mm256_srl_epi16(Q, _mm_cvtsi32_si128(2 * j)), m3);
	}
	for (int j = 0; j < 16; j++) {
		k->sc[j] = x->scales[j] & 0xF;
		k->sb[j] = x->scales[j] >> 4;
	}
	k->d = h2f(x->d);
	k->dsb = h2f(x->dmin);
}

QUANT_INLINE void k16_q3_K(const void *p, struct k16 *k)
{
	const struct block_q3_K *x = p;
	const __m256i m3 = _mm256_set1_epi8(3), m1 = _mm256_set1_epi8(1);
	__m256i HM = _mm256_loadu_si256((const __m256i *)x->hmask);
	int8_t sc[16];
	for (int n = 0; n < 2; n++) {
		__m256i Q = _mm256_loadu_si256((const __m256i *)(x->qs + 32 * n));
		for (int j = 0; j < 4; j++) {
			__m256i lo =
				_mm256_and_si256(_mm256_srl_epi16(Q, _mm_cvtsi32_si128(2 * j)), m3);
			__m256i hb = _mm256_and_si256(
				_mm256_srl_epi16(HM, _mm_cvtsi32_si128(4 * n + j)), m1);
			k->q[4 * n + j] = _mm256_or_si256(lo, _mm256_slli_epi16(hb, 2));
		}
	}
	quant_k3_scales(x->scales, sc);
	for (int j = 0; j < 16; j++) {
		k->sc[j] = sc[j];
		k->sb[j] = (int16_t)(4 * sc[j]);
	}
	k->d = k->dsb = h2f(x->d);
}

/* Q8_K activations are read where they are. */
QUANT_INLINE void act_q8_K(const void *p, const struct block_q8_K **y)
{
	*y = p;
}

QUANT_INLINE void k16_mac(const struct k16 *k, const struct block_q8_K *const *yp, struct vacc *acc)
{
	const struct block_q8_K *y = *yp;
	__m256i isum = _mm256_setzero_si256();
	for (int c = 0; c < 8; c++) {
		__m256i sv = _mm256_setr_m128i(_mm_set1_epi16(k->sc[2 * c]),
					       _mm_set1_epi16(k->sc[2 * c + 1]));
		__m256i p = _mm256_maddubs_epi16(
			k->q[c], _mm256_loadu_si256((const __m256i *)(y->qs + 32 * c)));
		isum = madd_acc(isum, p, sv);
	}
	int sb = 0;
	for (int j = 0; j < 16; j++)
		sb += k->sb[j] * y->bsums[j];
	acc->v = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_set1_ps(k->d * y->d), acc->v);
	acc->s -= k->dsb * y->d * (float)sb;
}

#define PF_BLOCK(x, i, bytes) prefetch_span(x, bytes)
#define K16_KERNEL(TYPE)                                                                           \
	QUANT_BLOCK_TILE(tile_##TYPE, struct vacc, vacc_zero, vacc_sum,                            \
			 sizeof(struct block_##TYPE), struct k16, k16_##TYPE, PF_BLOCK,            \
			 sizeof(struct block_q8_K), const struct block_q8_K *, act_q8_K, k16_mac)  \
	QUANT_KERNEL(TYPE, QK_K, RUN_PANELS, 0)

K16_KERNEL(q2_K)
K16_KERNEL(q3_K)

/* ---- IQ4_XS with Q8_K activations ----------------------------------------------------------- */

/* A block as 8 sub-blocks of 32 signed table values and their scales. */
struct xs8 {
	__m256i q[8];
	int16_t sc[8]; /* ls - 32 */
	float d;
};

QUANT_INLINE void xs8_iq4_xs(const void *p, struct xs8 *k)
{
	const struct block_iq4_xs *x = p;
	for (int j = 0; j < 8; j++) {
		k->q[j] = lut16(nibbles(x->qs + 16 * j), quant_iq4nl_values);
		k->sc[j] = (int16_t)(quant_iq4xs_scale(x, j) - 32);
	}
	k->d = h2f(x->d);
}

/* Signed values: the sign moves onto the activation (|q| <= 127, so the
 * vpmaddubsw pairs stay below 2^15), and vpmaddwd applies the sub-block scale. */
QUANT_INLINE void xs8_mac(const struct xs8 *k, const struct block_q8_K *const *yp, struct vacc *acc)
{
	const struct block_q8_K *y = *yp;
	__m256i isum = _mm256_setzero_si256();
	for (int j = 0; j < 8; j++) {
		__m256i yv = _mm256_loadu_si256((const __m256i *)(y->qs + 32 * j));
		__m256i p = _mm256_maddubs_epi16(_mm256_sign_epi8(k->q[j], k->q[j]),
						 _mm256_sign_epi8(yv, k->q[j]));
		isum = madd_acc(isum, p, _mm256_set1_epi16(k->sc[j]));
	}
	acc->v = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_set1_ps(k->d * y->d), acc->v);
}

QUANT_BLOCK_TILE(tile_iq4_xs, struct vacc, vacc_zero, vacc_sum, sizeof(struct block_iq4_xs),
		 struct xs8, xs8_iq4_xs, PF_BLOCK, sizeof(struct block_q8_K),
		 const struct block_q8_K *, act_q8_K, xs8_mac)
QUANT_KERNEL(iq4_xs, QK_K, RUN_PANELS, 0)

/* ---- activation quantizers (bit-identical to the C versions) ------------------------------- */

QUANT_INLINE float amax8(__m256 m)
{
	__m128 s = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
	s = _mm_max_ps(s, _mm_movehl_ps(s, s));
	s = _mm_max_ss(s, _mm_movehdup_ps(s));
	return _mm_cvtss_f32(s);
}

/* Largest magnitude of n floats (a multiple of 8). */
static float amax_row(const float *x, int n)
{
	const __m256 sign = _mm256_set1_ps(-0.0f);
	__m256 m = _mm256_setzero_ps();
	for (int k = 0; k < n; k += 8)
		m = _mm256_max_ps(m, _mm256_andnot_ps(sign, _mm256_loadu_ps(x + k)));
	return amax8(m);
}

/* 4 x 8 int32 -> 32 int8 in order */
QUANT_INLINE __m256i pack32(__m256i a, __m256i b, __m256i c, __m256i d)
{
	__m256i ab = _mm256_packs_epi32(a, b), cd = _mm256_packs_epi32(c, d);
	__m256i v = _mm256_packs_epi16(ab, cd);
	return _mm256_permutevar8x32_epi32(v, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

static void quantize_q8_0_avx2(const float *x, void *dst, int64_t n)
{
	struct block_q8_0 *y = dst;
	const __m256 sign = _mm256_set1_ps(-0.0f);
	for (int64_t i = 0; i < n / QK8_0; i++, x += QK8_0) {
		__m256 v[4], m = _mm256_setzero_ps();
		for (int k = 0; k < 4; k++) {
			v[k] = _mm256_loadu_ps(x + 8 * k);
			m = _mm256_max_ps(m, _mm256_andnot_ps(sign, v[k]));
		}
		float amax = amax8(m);
		float d = amax / 127, id = d ? 1 / d : 0;
		y[i].d = _cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT);
		__m256 s = _mm256_set1_ps(id);
		__m256i q[4];
		for (int k = 0; k < 4; k++)
			q[k] = _mm256_cvtps_epi32(_mm256_mul_ps(v[k], s));
		_mm256_storeu_si256((__m256i *)y[i].qs, pack32(q[0], q[1], q[2], q[3]));
	}
}

static void quantize_q8_K_avx2(const float *x, void *dst, int64_t n)
{
	struct block_q8_K *y = dst;
	for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
		float id = quant_q8_K_start(&y[i], amax_row(x, QK_K));
		if (id == 0)
			continue;
		__m256 s = _mm256_set1_ps(id);
		for (int k = 0; k < QK_K; k += 32) {
			__m256i q[4];
			for (int j = 0; j < 4; j++)
				q[j] = _mm256_cvtps_epi32(
					_mm256_mul_ps(_mm256_loadu_ps(x + k + 8 * j), s));
			_mm256_storeu_si256((__m256i *)(y[i].qs + k),
					    pack32(q[0], q[1], q[2], q[3]));
			for (int g = 0; g < 2; g++) {
				__m256i t = _mm256_add_epi32(q[2 * g], q[2 * g + 1]);
				__m128i u = _mm_add_epi32(_mm256_castsi256_si128(t),
							  _mm256_extracti128_si256(t, 1));
				u = _mm_hadd_epi32(u, u);
				u = _mm_hadd_epi32(u, u);
				y[i].bsums[k / 16 + g] = (int16_t)_mm_cvtsi128_si32(u);
			}
		}
	}
}

#ifdef QUANT_AVX2_VNNI
void quant_avx512vl_register(struct quant_kernel_table *t)
#else
void quant_avx2_register(struct quant_kernel_table *t)
#endif
{
	QUANT_SIMD_FLOAT_TYPES(QUANT_SET_KERNELS)
	QUANT_SIMD_INT_TYPES(QUANT_SET_KERNELS)
	t->from_float[QT_Q8_0] = quantize_q8_0_avx2;
	t->from_float[QT_Q8_K] = quantize_q8_K_avx2;
}
