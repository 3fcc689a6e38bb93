/* AVX2 dot products, gemv and gemm for every weight type, for CPUs without AVX-512 (and the integer kernels of the plain AVX-512 level). */

/*
 * DESIGN
 *
 * The same tile structure as quant_avx512.c (R weight rows x T activation
 * rows, R, T <= 4 constants after inlining, accumulators in ymm registers),
 * with 256-bit vectors and no VNNI: integer blocks use vpmaddubsw (u8 x s8
 * pairs to s16) then vpmaddwd against ones or against the sub-block scales.
 * Signed weights become unsigned by moving their sign onto the activation
 * (vpsignb), so Q8_0-style activations are used in place, unprepared.
 * Every vpmaddubsw pair sum stays below 2^15 for these ranges (|q| <= 128,
 * |y| <= 127), so nothing saturates.
 */
#include "quant_internal.h"

#include <immintrin.h>
#include <stddef.h>
#include <string.h>

#define INLINE static inline __attribute__((always_inline))
/* Register tiles need their r/t loops fully unrolled to stay in registers. */
#define UNROLL _Pragma("GCC unroll 16")

/* Software prefetch distance in each weight row, as in quant_avx512.c. */
#define PF_DIST 4096

INLINE void prefetch_span(const void *p, size_t len)
{
	for (size_t o = 0; o < len; o += 64)
		_mm_prefetch((const char *)p + PF_DIST + o, _MM_HINT_T0);
}

INLINE float hsum8(__m256 v)
{
	__m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
	s = _mm_add_ps(s, _mm_movehl_ps(s, s));
	s = _mm_add_ss(s, _mm_movehdup_ps(s));
	return _mm_cvtss_f32(s);
}

INLINE float h2f(quant_half h)
{
	return _cvtsh_ss(h);
}

/* ---- float types ---------------------------------------------------------------------- */

/* 8 weights / activations as floats from element k; `tail` < 8 elements are
 * copied through a zero-padded buffer so no load passes the row's end. */
INLINE __m256 ld_f32(const void *row, int64_t k, int tail)
{
	if (!tail)
		return _mm256_loadu_ps((const float *)row + k);
	float b[8] = { 0 };
	memcpy(b, (const float *)row + k, (size_t)tail * 4);
	return _mm256_loadu_ps(b);
}

INLINE __m256 ld_f16(const void *row, int64_t k, int tail)
{
	if (!tail)
		return _mm256_cvtph_ps(
			_mm_loadu_si128((const __m128i *)((const quant_half *)row + k)));
	quant_half b[8] = { 0 };
	memcpy(b, (const quant_half *)row + k, (size_t)tail * 2);
	return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)b));
}

INLINE __m256 ld_bf16(const void *row, int64_t k, int tail)
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

#define FLOAT_TILE(NAME, LOADW, LOADA, ES)                                                         \
	INLINE void NAME(int R, int T, int64_t n, const uint8_t *w, size_t ws, const uint8_t *a,   \
			 size_t as, float *out, size_t os)                                         \
	{                                                                                          \
		__m256 acc[4][4];                                                                  \
		UNROLL for (int r = 0; r < R; r++) UNROLL for (int t = 0; t < T; t++) acc[r][t] =  \
			_mm256_setzero_ps();                                                       \
		for (int64_t k = 0; k < n; k += 8) {                                               \
			int tail = n - k < 8 ? (int)(n - k) : 0;                                   \
			__m256 av[4];                                                              \
			UNROLL for (int t = 0; t < T; t++) av[t] = LOADA(a + t * as, k, tail);     \
			UNROLL for (int r = 0; r < R; r++)                                         \
			{                                                                          \
				_mm_prefetch((const char *)(w + r * ws) + PF_DIST + k * ES,        \
					     _MM_HINT_T0);                                         \
				__m256 wv = LOADW(w + r * ws, k, tail);                            \
				UNROLL for (int t = 0; t < T; t++) acc[r][t] =                     \
					_mm256_fmadd_ps(wv, av[t], acc[r][t]);                     \
			}                                                                          \
		}                                                                                  \
		UNROLL for (int r = 0; r < R; r++) UNROLL for (int t = 0; t < T; t++)              \
			out[t * os + r] = hsum8(acc[r][t]);                                        \
	}

FLOAT_TILE(tile_f32, ld_f32, ld_f32, 4)
FLOAT_TILE(tile_f16, ld_f16, ld_f32, 2)
FLOAT_TILE(tile_bf16, ld_bf16, ld_bf16, 2)

/* ---- Q4_0 / Q8_0 with Q8_0 activations --------------------------------------------------- */

/* Signed weight bytes x signed activation bytes: 8 int32 lane sums. */
INLINE __m256i dot_s8(__m256i x, __m256i y)
{
	__m256i p = _mm256_maddubs_epi16(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x));
	return _mm256_madd_epi16(p, _mm256_set1_epi16(1));
}

/* Q4_0 block as 32 signed bytes in element order (-8..7). */
INLINE __m256i q4_0_bytes(const struct block_q4_0 *b)
{
	__m128i q = _mm_loadu_si128((const __m128i *)b->qs);
	__m256i v = _mm256_insertf128_si256(_mm256_castsi128_si256(q), _mm_srli_epi16(q, 4), 1);
	v = _mm256_and_si256(v, _mm256_set1_epi8(0x0F));
	return _mm256_sub_epi8(v, _mm256_set1_epi8(8));
}

/* BLOCK weights as signed bytes (BYTES) against Q8_0 or Q8_1 (ABLOCK)
 * activations; HAS_MIN adds the weight min times Q8_1's block sum s. */
#define Q8X_TILE(NAME, BLOCK, BYTES, ABLOCK, HAS_MIN)                                              \
	INLINE void NAME(int R, int T, int64_t nb, const uint8_t *w, size_t ws, const uint8_t *a,  \
			 size_t as, float *out, size_t os)                                         \
	{                                                                                          \
		__m256 acc[4][4];                                                                  \
		float mins[4][4] = { { 0 } };                                                      \
		UNROLL for (int r = 0; r < R; r++) UNROLL for (int t = 0; t < T; t++) acc[r][t] =  \
			_mm256_setzero_ps();                                                       \
		for (int64_t i = 0; i < nb; i++) {                                                 \
			__m256i y[4];                                                              \
			float yd[4], ys[4];                                                        \
			UNROLL for (int t = 0; t < T; t++)                                         \
			{                                                                          \
				const ABLOCK *b = (const ABLOCK *)(a + t * as) + i;                \
				y[t] = _mm256_loadu_si256((const __m256i *)b->qs);                 \
				yd[t] = h2f(b->d);                                                 \
				ys[t] = HAS_MIN ? h2f(((const quant_half *)b)[1]) : 0;             \
			}                                                                          \
			UNROLL for (int r = 0; r < R; r++)                                         \
			{                                                                          \
				const BLOCK *x = (const BLOCK *)(w + r * ws) + i;                  \
				if (!(i & 1))                                                      \
					prefetch_span(x, 2 * sizeof(*x));                          \
				__m256i xq = BYTES(x);                                             \
				float xd = h2f(x->d);                                              \
				float xm = HAS_MIN ? h2f(((const quant_half *)x)[1]) : 0;          \
				UNROLL for (int t = 0; t < T; t++)                                 \
				{                                                                  \
					acc[r][t] = _mm256_fmadd_ps(                               \
						_mm256_cvtepi32_ps(dot_s8(xq, y[t])),              \
						_mm256_set1_ps(xd * yd[t]), acc[r][t]);            \
					if (HAS_MIN)                                               \
						mins[r][t] += xm * ys[t];                          \
				}                                                                  \
			}                                                                          \
		}                                                                                  \
		UNROLL for (int r = 0; r < R; r++) UNROLL for (int t = 0; t < T; t++)              \
			out[t * os + r] = hsum8(acc[r][t]) + mins[r][t];                           \
	}

INLINE __m256i q8_0_bytes(const struct block_q8_0 *b)
{
	return _mm256_loadu_si256((const __m256i *)b->qs);
}

/* 32 bits -> 32 bytes of 0x10 where the bit is set (element order). */
INLINE __m256i q5_high(const uint8_t qh[4])
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

INLINE __m256i nibbles(const uint8_t qs[16])
{
	__m128i q = _mm_loadu_si128((const __m128i *)qs);
	__m256i v = _mm256_insertf128_si256(_mm256_castsi128_si256(q), _mm_srli_epi16(q, 4), 1);
	return _mm256_and_si256(v, _mm256_set1_epi8(0x0F));
}

INLINE __m256i q4_1_bytes(const struct block_q4_1 *b)
{
	return nibbles(b->qs);
}

INLINE __m256i q5_0_bytes(const struct block_q5_0 *b)
{
	return _mm256_sub_epi8(_mm256_or_si256(nibbles(b->qs), q5_high(b->qh)),
			       _mm256_set1_epi8(16));
}

INLINE __m256i q5_1_bytes(const struct block_q5_1 *b)
{
	return _mm256_or_si256(nibbles(b->qs), q5_high(b->qh));
}

Q8X_TILE(tile_q4_0, struct block_q4_0, q4_0_bytes, struct block_q8_0, 0)
Q8X_TILE(tile_q8_0, struct block_q8_0, q8_0_bytes, struct block_q8_0, 0)
Q8X_TILE(tile_q5_0, struct block_q5_0, q5_0_bytes, struct block_q8_0, 0)
Q8X_TILE(tile_q4_1, struct block_q4_1, q4_1_bytes, struct block_q8_1, 1)
Q8X_TILE(tile_q5_1, struct block_q5_1, q5_1_bytes, struct block_q8_1, 1)

/* ---- Q4_K / Q6_K with Q8_K activations ----------------------------------------------------- */

/* Q4_K's packed 6-bit scales: sc[0..7] scales, sc[8..15] mins. */
INLINE void q4k_unpack(const uint8_t *s, uint8_t sc[16])
{
	uint32_t u[4], aux;
	memcpy(u, s, 12);
	u[3] = ((u[2] >> 4) & 0x0f0f0f0f) | (((u[1] >> 6) & 0x03030303) << 4);
	aux = u[1] & 0x3f3f3f3f;
	u[1] = (u[2] & 0x0f0f0f0f) | (((u[0] >> 6) & 0x03030303) << 4);
	u[2] = aux;
	u[0] &= 0x3f3f3f3f;
	memcpy(sc, u, 16);
}

/* Q4_K and Q5_K (QH: the 5th bits, bit 2j / 2j+1 of qh[l] for chunk j) */
#define K4_TILE(NAME, BLOCK, QH)                                                                   \
	INLINE void NAME(int R, int T, int64_t nb, const uint8_t *w, size_t ws, const uint8_t *a,  \
			 size_t as, float *out, size_t os)                                         \
	{                                                                                          \
		tile_k4(R, T, nb, w, ws, sizeof(BLOCK), offsetof(BLOCK, scales),                   \
			offsetof(BLOCK, qs), QH ? (int)offsetof(struct block_q5_K, qh) : -1, a,    \
			as, out, os);                                                              \
	}

INLINE void tile_k4(int R, int T, int64_t nb, const uint8_t *w, size_t ws, size_t bsize,
		    size_t scoff, size_t qsoff, int qhoff, const uint8_t *a, size_t as, float *out,
		    size_t os)
{
	const __m256i m4 = _mm256_set1_epi8(0x0F);
	__m256 acc[4][4];
	float mins[4][4] = { { 0 } };
	UNROLL for (int r = 0; r < R; r++) UNROLL for (int t = 0; t < T; t++) acc[r][t] =
		_mm256_setzero_ps();
	for (int64_t i = 0; i < nb; i++) {
		UNROLL for (int r = 0; r < R; r++)
		{
			const uint8_t *x = w + r * ws + i * bsize;
			prefetch_span(x, bsize);
			uint8_t sc[16];
			quant_half hd, hm;
			q4k_unpack(x + scoff, sc);
			memcpy(&hd, x, 2);
			memcpy(&hm, x + 2, 2);
			float d = h2f(hd), dmin = h2f(hm);
			__m256i H = qhoff >= 0 ? _mm256_loadu_si256((const __m256i *)(x + qhoff))
					       : _mm256_setzero_si256();
			__m256i isum[4];
			UNROLL for (int t = 0; t < T; t++) isum[t] = _mm256_setzero_si256();
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
				UNROLL for (int t = 0; t < T; t++)
				{
					const int8_t *yq =
						((const struct block_q8_K *)(a + t * as) + i)->qs;
					__m256i p0 = _mm256_maddubs_epi16(
						lo,
						_mm256_loadu_si256((const __m256i *)(yq + 64 * j)));
					__m256i p1 = _mm256_maddubs_epi16(
						hi, _mm256_loadu_si256(
							    (const __m256i *)(yq + 64 * j + 32)));
					isum[t] = _mm256_add_epi32(isum[t],
								   _mm256_madd_epi16(p0, s0));
					isum[t] = _mm256_add_epi32(isum[t],
								   _mm256_madd_epi16(p1, s1));
				}
			}
			UNROLL for (int t = 0; t < T; t++)
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
	UNROLL for (int r = 0; r < R; r++) UNROLL for (int t = 0; t < T; t++) out[t * os + r] =
		hsum8(acc[r][t]) - mins[r][t];
}

K4_TILE(tile_q4_K, struct block_q4_K, 0)
K4_TILE(tile_q5_K, struct block_q5_K, 1)

INLINE void tile_q6_K(int R, int T, int64_t nb, const uint8_t *w, size_t ws, const uint8_t *a,
		      size_t as, float *out, size_t os)
{
	const __m256i m4 = _mm256_set1_epi8(0x0F), m2 = _mm256_set1_epi8(0x30);
	__m256 acc[4][4];
	UNROLL for (int r = 0; r < R; r++) UNROLL for (int t = 0; t < T; t++) acc[r][t] =
		_mm256_setzero_ps();
	for (int64_t i = 0; i < nb; i++) {
		UNROLL for (int r = 0; r < R; r++)
		{
			const struct block_q6_K *x = (const struct block_q6_K *)(w + r * ws) + i;
			prefetch_span(x, sizeof(*x));
			__m256i isum[4];
			UNROLL for (int t = 0; t < T; t++) isum[t] = _mm256_setzero_si256();
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
					UNROLL for (int t = 0; t < T; t++)
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
						isum[t] = _mm256_add_epi32(
							isum[t], _mm256_madd_epi16(p, sv));
					}
				}
			}
			float d = h2f(x->d);
			UNROLL for (int t = 0; t < T; t++)
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
	UNROLL for (int r = 0; r < R; r++) UNROLL for (int t = 0; t < T; t++) out[t * os + r] =
		hsum8(acc[r][t]);
}

/* Q2_K and Q3_K: 8 x 32 unsigned quants in element order, 16 scales for
 * 16-element sub-blocks; Q3_K's offset of 4 and Q2_K's mins are paid through
 * the activation bsums. */
struct k16 {
	__m256i q[8];
	int16_t sc[16]; /* scale per 16 elements */
	int16_t sb[16]; /* multiplier of bsums[j] */
	float d, dsb;   /* result = d * yd * sum(sc * dot) - dsb * yd * sum(sb * bsums) */
};

INLINE void k16_q2_K(const struct block_q2_K *x, struct k16 *k)
{
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

INLINE void k16_q3_K(const struct block_q3_K *x, struct k16 *k)
{
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

#define K16_TILE(NAME, BLOCK, DEC)                                                                 \
	INLINE void NAME(int R, int T, int64_t nb, const uint8_t *w, size_t ws, const uint8_t *a,  \
			 size_t as, float *out, size_t os)                                         \
	{                                                                                          \
		__m256 acc[4][4];                                                                  \
		float sub[4][4] = { { 0 } };                                                       \
		UNROLL for (int r = 0; r < R; r++) UNROLL for (int t = 0; t < T; t++) acc[r][t] =  \
			_mm256_setzero_ps();                                                       \
		for (int64_t i = 0; i < nb; i++) {                                                 \
			UNROLL for (int r = 0; r < R; r++)                                         \
			{                                                                          \
				const BLOCK *x = (const BLOCK *)(w + r * ws) + i;                  \
				struct k16 k;                                                      \
				prefetch_span(x, sizeof(*x));                                      \
				DEC(x, &k);                                                        \
				UNROLL for (int t = 0; t < T; t++)                                 \
				{                                                                  \
					const struct block_q8_K *y =                               \
						(const struct block_q8_K *)(a + t * as) + i;       \
					__m256i isum = _mm256_setzero_si256();                     \
					for (int c = 0; c < 8; c++) {                              \
						__m256i sv = _mm256_setr_m128i(                    \
							_mm_set1_epi16(k.sc[2 * c]),               \
							_mm_set1_epi16(k.sc[2 * c + 1]));          \
						__m256i p = _mm256_maddubs_epi16(                  \
							k.q[c],                                    \
							_mm256_loadu_si256(                        \
								(const __m256i *)(y->qs +          \
										  32 * c)));       \
						isum = _mm256_add_epi32(isum,                      \
									_mm256_madd_epi16(p, sv)); \
					}                                                          \
					int sb = 0;                                                \
					for (int j = 0; j < 16; j++)                               \
						sb += k.sb[j] * y->bsums[j];                       \
					acc[r][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum),      \
								    _mm256_set1_ps(k.d * y->d),    \
								    acc[r][t]);                    \
					sub[r][t] += k.dsb * y->d * (float)sb;                     \
				}                                                                  \
			}                                                                          \
		}                                                                                  \
		UNROLL for (int r = 0; r < R; r++) UNROLL for (int t = 0; t < T; t++)              \
			out[t * os + r] = hsum8(acc[r][t]) - sub[r][t];                            \
	}

K16_TILE(tile_q2_K, struct block_q2_K, k16_q2_K)
K16_TILE(tile_q3_K, struct block_q3_K, k16_q3_K)

/* ---- drivers -------------------------------------------------------------------------------- */

#define DISPATCH_RT(CALL)                                                                          \
	switch ((R - 1) * 4 + (T - 1)) {                                                           \
	case 0: CALL(1, 1); break;                                                                 \
	case 1: CALL(1, 2); break;                                                                 \
	case 2: CALL(1, 3); break;                                                                 \
	case 3: CALL(1, 4); break;                                                                 \
	case 4: CALL(2, 1); break;                                                                 \
	case 5: CALL(2, 2); break;                                                                 \
	case 6: CALL(2, 3); break;                                                                 \
	case 7: CALL(2, 4); break;                                                                 \
	case 8: CALL(3, 1); break;                                                                 \
	case 9: CALL(3, 2); break;                                                                 \
	case 10: CALL(3, 3); break;                                                                \
	case 11: CALL(3, 4); break;                                                                \
	case 12: CALL(4, 1); break;                                                                \
	case 13: CALL(4, 2); break;                                                                \
	case 14: CALL(4, 3); break;                                                                \
	default: CALL(4, 4); break;                                                                \
	}

/* len: elements for float types, blocks for quantized ones */
typedef void (*tile_fn)(int R, int T, int64_t len, const uint8_t *w, size_t ws, const uint8_t *a,
			size_t as, float *out, size_t os);

#define TILE_DRIVER(TYPE)                                                                          \
	static void rt_##TYPE(int R, int T, int64_t len, const uint8_t *w, size_t ws,              \
			      const uint8_t *a, size_t as, float *out, size_t os)                  \
	{                                                                                          \
		DISPATCH_RT(CALL_##TYPE)                                                           \
	}
#define CALL_f32(r, t) tile_f32(r, t, len, w, ws, a, as, out, os)
#define CALL_f16(r, t) tile_f16(r, t, len, w, ws, a, as, out, os)
#define CALL_bf16(r, t) tile_bf16(r, t, len, w, ws, a, as, out, os)
#define CALL_q4_0(r, t) tile_q4_0(r, t, len, w, ws, a, as, out, os)
#define CALL_q8_0(r, t) tile_q8_0(r, t, len, w, ws, a, as, out, os)
#define CALL_q4_K(r, t) tile_q4_K(r, t, len, w, ws, a, as, out, os)
#define CALL_q5_K(r, t) tile_q5_K(r, t, len, w, ws, a, as, out, os)
#define CALL_q2_K(r, t) tile_q2_K(r, t, len, w, ws, a, as, out, os)
#define CALL_q3_K(r, t) tile_q3_K(r, t, len, w, ws, a, as, out, os)
#define CALL_q5_0(r, t) tile_q5_0(r, t, len, w, ws, a, as, out, os)
#define CALL_q4_1(r, t) tile_q4_1(r, t, len, w, ws, a, as, out, os)
#define CALL_q5_1(r, t) tile_q5_1(r, t, len, w, ws, a, as, out, os)
#define CALL_q6_K(r, t) tile_q6_K(r, t, len, w, ws, a, as, out, os)
TILE_DRIVER(f32)
TILE_DRIVER(f16)
TILE_DRIVER(bf16)
TILE_DRIVER(q4_0)
TILE_DRIVER(q8_0)
TILE_DRIVER(q4_K)
TILE_DRIVER(q5_K)
TILE_DRIVER(q2_K)
TILE_DRIVER(q3_K)
TILE_DRIVER(q5_0)
TILE_DRIVER(q4_1)
TILE_DRIVER(q5_1)
TILE_DRIVER(q6_K)

/* Rows per gemm panel, sized to stay in L2 while the token tiles pass. */
#define PANEL_BYTES (256 * 1024)

static void run_gemm(tile_fn tile, int64_t len, const void *w, size_t row_bytes, int nrows,
		     const void *act, size_t act_stride, int ntok, float *out, size_t out_stride)
{
	int panel = (int)(PANEL_BYTES / (row_bytes ? row_bytes : 1));
	if (panel < 4)
		panel = 4;
	panel &= ~3;
	for (int r0 = 0; r0 < nrows; r0 += panel) {
		int r1 = r0 + panel < nrows ? r0 + panel : nrows;
		for (int t = 0; t < ntok; t += 4) {
			int T = ntok - t < 4 ? ntok - t : 4;
			for (int r = r0; r < r1; r += 4) {
				int R = r1 - r < 4 ? r1 - r : 4;
				tile(R, T, len, (const uint8_t *)w + (size_t)r * row_bytes,
				     row_bytes, (const uint8_t *)act + (size_t)t * act_stride,
				     act_stride, out + (size_t)t * out_stride + r, out_stride);
			}
		}
	}
}

#define ENTRY(TYPE, BLK)                                                                           \
	static float dot_##TYPE(int64_t n, const void *w, const void *act)                         \
	{                                                                                          \
		float r;                                                                           \
		rt_##TYPE(1, 1, n / (BLK), w, 0, act, 0, &r, 1);                                   \
		return r;                                                                          \
	}                                                                                          \
	static void gemv_##TYPE(int64_t n, const void *w, size_t rb, int nrows, const void *act,   \
				float *out)                                                        \
	{                                                                                          \
		run_gemm(rt_##TYPE, n / (BLK), w, rb, nrows, act, 0, 1, out, 1);                   \
	}                                                                                          \
	static void gemm_##TYPE(int64_t n, const void *w, size_t rb, int nrows, const void *act,   \
				size_t as, int ntok, float *out, size_t os)                        \
	{                                                                                          \
		run_gemm(rt_##TYPE, n / (BLK), w, rb, nrows, act, as, ntok, out, os);              \
	}

ENTRY(f32, 1)
ENTRY(f16, 1)
ENTRY(bf16, 1)
ENTRY(q4_0, QK4_0)
ENTRY(q8_0, QK8_0)
ENTRY(q4_K, QK_K)
ENTRY(q5_K, QK_K)
ENTRY(q2_K, QK_K)
ENTRY(q3_K, QK_K)
ENTRY(q5_0, QK5_0)
ENTRY(q4_1, QK4_1)
ENTRY(q5_1, QK5_1)
ENTRY(q6_K, QK_K)

/* ---- activation quantizers (bit-identical to the C versions) ------------------------------- */

INLINE float amax8(__m256 m)
{
	__m128 s = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
	s = _mm_max_ps(s, _mm_movehl_ps(s, s));
	s = _mm_max_ss(s, _mm_movehdup_ps(s));
	return _mm_cvtss_f32(s);
}

/* 4 x 8 int32 -> 32 int8 in order */
INLINE __m256i pack32(__m256i a, __m256i b, __m256i c, __m256i d)
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
	const __m256 sign = _mm256_set1_ps(-0.0f);
	for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
		__m256 m = _mm256_setzero_ps();
		for (int k = 0; k < QK_K; k += 8)
			m = _mm256_max_ps(m, _mm256_andnot_ps(sign, _mm256_loadu_ps(x + k)));
		float amax = amax8(m);
		if (amax == 0) {
			memset(&y[i], 0, sizeof(y[i]));
			continue;
		}
		float id = 127 / amax;
		y[i].d = amax / 127;
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

void quant_avx2_register(struct quant_kernel_table *t)
{
	t->k[QT_F32] = (struct quant_kernels){ dot_f32, gemv_f32, gemm_f32 };
	t->k[QT_F16] = (struct quant_kernels){ dot_f16, gemv_f16, gemm_f16 };
	t->k[QT_BF16] = (struct quant_kernels){ dot_bf16, gemv_bf16, gemm_bf16 };
	t->k[QT_Q4_0] = (struct quant_kernels){ dot_q4_0, gemv_q4_0, gemm_q4_0 };
	t->k[QT_Q8_0] = (struct quant_kernels){ dot_q8_0, gemv_q8_0, gemm_q8_0 };
	t->k[QT_Q4_1] = (struct quant_kernels){ dot_q4_1, gemv_q4_1, gemm_q4_1 };
	t->k[QT_Q5_0] = (struct quant_kernels){ dot_q5_0, gemv_q5_0, gemm_q5_0 };
	t->k[QT_Q5_1] = (struct quant_kernels){ dot_q5_1, gemv_q5_1, gemm_q5_1 };
	t->k[QT_Q2_K] = (struct quant_kernels){ dot_q2_K, gemv_q2_K, gemm_q2_K };
	t->k[QT_Q3_K] = (struct quant_kernels){ dot_q3_K, gemv_q3_K, gemm_q3_K };
	t->k[QT_Q4_K] = (struct quant_kernels){ dot_q4_K, gemv_q4_K, gemm_q4_K };
	t->k[QT_Q5_K] = (struct quant_kernels){ dot_q5_K, gemv_q5_K, gemm_q5_K };
	t->k[QT_Q6_K] = (struct quant_kernels){ dot_q6_K, gemv_q6_K, gemm_q6_K };
	t->from_float[QT_Q8_0] = quantize_q8_0_avx2;
	t->from_float[QT_Q8_K] = quantize_q8_K_avx2;
}
