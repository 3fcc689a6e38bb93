/* AVX-512 (+VNNI) dot products, gemv and gemm for the hot weight types. */

/*
 * DESIGN
 *
 * Every kernel is one "tile" routine computing R weight rows x T activation
 * rows over the whole row length, with R and T compile-time constants after
 * inlining, so the R*T float accumulators live in zmm registers.  gemv runs
 * 4x1 tiles (four weight rows share every activation load: decode is bound
 * by memory, so the weights are read exactly once and the activations stay
 * in L1); gemm runs 4x4 tiles over a panel of rows that stays in L2 while
 * every token tile passes over it, so each weight block is decoded once per
 * four tokens and read from memory once per panel.
 *
 * Integer types use vpdpbusd (u8 x s8 -> s32).  Weights are made unsigned
 * (Q4_0 nibbles are 0..15 with an offset of 8; Q8_0 is biased by 128 with an
 * xor; Q6_K is 0..63 with an offset of 32) and the offset is paid back
 * through activation sums: Q8_0-type activations are "prepared" once per call
 * into a lane layout matching four weight blocks (low halves, high halves,
 * negated lane sums, per-lane scales); Q8_K activations already carry bsums.
 * Each block's int32 lanes are converted to float and scaled per lane, and
 * a row's lanes are summed once at the end, so results differ from the plain
 * C twins only by float rounding order.
 *
 * Float types accumulate with FMA in f32 (F16 weights widened with
 * vcvtph2ps, BF16 by a shift).
 */
#include "quant_internal.h"

#include <immintrin.h>
#include <string.h>

#define INLINE static inline __attribute__((always_inline))
/* Register tiles need their r/t loops fully unrolled to stay in registers. */
#define UNROLL _Pragma("GCC unroll 16")

/* Lane sums at the end of a row. */
INLINE float hsum(__m512 v)
{
	return _mm512_reduce_add_ps(v);
}

INLINE __m512i dpbusd(__m512i acc, __m512i u, __m512i s)
{
	return _mm512_dpbusd_epi32(acc, u, s);
}

/* Rows per gemm panel: sized so a panel of the widest rows we expect stays in L2. */
#define PANEL_BYTES (512 * 1024)
#ifndef PF_DIST
#define PF_DIST 4096 /* bytes ahead in each weight row: measured best of 1-16 KiB */
#endif

/* Software prefetch of the bytes PF_DIST ahead of [p, p + len): one per cache
 * line, as the blocks (18 to 210 bytes) do not line up with lines. */
INLINE void prefetch_span(const void *p, size_t len)
{
	for (size_t o = 0; o < len; o += 64)
		_mm_prefetch((const char *)p + PF_DIST + o, _MM_HINT_T0);
}

/* ---- F32 / F16 / BF16 ------------------------------------------------------- */

/* Load 16 weights as floats from element k of a row (masked for the tail). */
INLINE __m512 load_w_f32(const void *row, int64_t k, __mmask16 m)
{
	return _mm512_maskz_loadu_ps(m, (const float *)row + k);
}

INLINE __m512 load_w_f16(const void *row, int64_t k, __mmask16 m)
{
	return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, (const quant_half *)row + k));
}

INLINE __m512 load_w_bf16(const void *row, int64_t k, __mmask16 m)
{
	__m256i h = _mm256_maskz_loadu_epi16(m, (const quant_bf16 *)row + k);
	return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

/* Activations: F32 for F32 and F16 weights, BF16 for BF16 weights. */
INLINE __m512 load_a_f32(const void *act, int64_t k, __mmask16 m)
{
	return _mm512_maskz_loadu_ps(m, (const float *)act + k);
}

#define FLOAT_TILE(NAME, LOADW, LOADA, ESIZE)                                                   \
	INLINE void NAME(int R, int T, int64_t n, const uint8_t *w, size_t wstride,        \
			 const uint8_t *a, size_t astride, float *out, size_t ostride)     \
	{                                                                                  \
		__m512 acc[4][4];                                                          \
		UNROLL for (int r = 0; r < R; r++)                                                \
			UNROLL for (int t = 0; t < T; t++)                                        \
				acc[r][t] = _mm512_setzero_ps();                           \
		int64_t k = 0;                                                             \
		for (; k + 16 <= n; k += 16) {                                             \
			__m512 av[4];                                                      \
			UNROLL for (int t = 0; t < T; t++)                                        \
				av[t] = LOADA(a + t * astride, k, 0xffff);                 \
			UNROLL for (int r = 0; r < R; r++) {                                      \
				_mm_prefetch((const char *)(w + r * wstride) + k * ESIZE + PF_DIST, \
					     _MM_HINT_T0);                                          \
				__m512 wv = LOADW(w + r * wstride, k, 0xffff);             \
				UNROLL for (int t = 0; t < T; t++)                                \
					acc[r][t] = _mm512_fmadd_ps(wv, av[t], acc[r][t]); \
			}                                                                  \
		}                                                                          \
		if (k < n) {                                                               \
			__mmask16 m = (__mmask16)((1u << (n - k)) - 1);                    \
			__m512 av[4];                                                      \
			UNROLL for (int t = 0; t < T; t++)                                        \
				av[t] = LOADA(a + t * astride, k, m);                      \
			UNROLL for (int r = 0; r < R; r++) {                                      \
				__m512 wv = LOADW(w + r * wstride, k, m);                  \
				UNROLL for (int t = 0; t < T; t++)                                \
					acc[r][t] = _mm512_fmadd_ps(wv, av[t], acc[r][t]); \
			}                                                                  \
		}                                                                          \
		UNROLL for (int r = 0; r < R; r++)                                                \
			UNROLL for (int t = 0; t < T; t++)                                        \
				out[t * ostride + r] = hsum(acc[r][t]);                    \
	}

FLOAT_TILE(tile_f32, load_w_f32, load_a_f32, 4)
FLOAT_TILE(tile_f16, load_w_f16, load_a_f32, 2)
FLOAT_TILE(tile_bf16, load_w_bf16, load_w_bf16, 2)

/* ---- Q8_0-type activations, prepared ------------------------------------------ */

/*
 * One group of four Q8_0 activation blocks, laid out for four weight blocks
 * loaded side by side: byte 16*b + j of lo is element j of block b, of hi
 * element 16 + j.  A vpdpbusd lane i (bytes 4i..4i+3) therefore belongs to
 * block i / 4 in both halves.
 */
struct act_group {
	int8_t lo[64];
	int8_t hi[64];
	int32_t nsum[16]; /* minus the sum of the 8 activation bytes lane i meets */
	float d[16];      /* activation scale of lane i's block */
};
_Static_assert(sizeof(struct act_group) == 256, "act_group size");

/* Largest row length prepared at once; longer rows go in chunks. */
#define PREP_MAX_ELEMS 16384
#define PREP_GROUPS (PREP_MAX_ELEMS / 128)
/* gemm prepares this many tokens at a time */
#define GEMM_T 4

static _Thread_local struct act_group prep_buf[GEMM_T][PREP_GROUPS]
	__attribute__((aligned(64)));

/* Prepare nb (<= PREP_GROUPS * 4) Q8_0 blocks; missing blocks of the last
 * group are zero.  nsum holds -(lane sum) << shift: the weight offset (8 for
 * Q4_0, 128 for Q8_0) paid back in the accumulator's start value. */
static void prep_q8_0(const struct block_q8_0 *y, int64_t nb, struct act_group *g, int shift)
{
	const __m512i ones = _mm512_set1_epi8(1);
	for (int64_t i = 0; i < nb; i += 4, g++) {
		int m = nb - i < 4 ? (int)(nb - i) : 4;
		__m128i lo[4], hi[4];
		float d[4];
		UNROLL for (int b = 0; b < 4; b++) {
			if (b < m) {
				lo[b] = _mm_loadu_si128((const __m128i *)y[i + b].qs);
				hi[b] = _mm_loadu_si128((const __m128i *)(y[i + b].qs + 16));
				d[b] = _cvtsh_ss(y[i + b].d);
			} else {
				lo[b] = hi[b] = _mm_setzero_si128();
				d[b] = 0;
			}
		}
		__m512i vlo = _mm512_inserti32x4(
			_mm512_inserti32x4(
				_mm512_inserti32x4(_mm512_castsi128_si512(lo[0]), lo[1], 1),
				lo[2], 2),
			lo[3], 3);
		__m512i vhi = _mm512_inserti32x4(
			_mm512_inserti32x4(
				_mm512_inserti32x4(_mm512_castsi128_si512(hi[0]), hi[1], 1),
				hi[2], 2),
			hi[3], 3);
		_mm512_store_si512(g->lo, vlo);
		_mm512_store_si512(g->hi, vhi);
		__m512i s = dpbusd(dpbusd(_mm512_setzero_si512(), ones, vlo), ones, vhi);
		s = _mm512_sllv_epi32(s, _mm512_set1_epi32(shift));
		_mm512_store_si512(g->nsum, _mm512_sub_epi32(_mm512_setzero_si512(), s));
		__m128 d4 = _mm_loadu_ps(d);
		__m512 dv = _mm512_permutexvar_ps(
			_mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3),
			_mm512_castps128_ps512(d4));
		_mm512_store_ps(g->d, dv);
	}
}

/* Weight scales of 4 blocks (halves `stride` bytes apart) spread over their lanes. */
INLINE __m512 wscale4(const uint8_t *p, size_t stride, int m)
{
	uint16_t h[8] = {0};
	for (int b = 0; b < m; b++)
		memcpy(&h[b], p + b * stride, 2);
	__m128i hv = _mm_loadu_si128((const __m128i *)h);
	__m512 f = _mm512_castps128_ps512(_mm_cvtph_ps(hv));
	return _mm512_permutexvar_ps(
		_mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3), f);
}

/* Word permutations gathering 4 blocks' fields from 64-byte loads
 * (indices >= 32 pick from the second load). */
static const uint16_t q4_0_d_idx[32] __attribute__((aligned(64))) = {
	0, 0, 0, 0, 9, 9, 9, 9, 18, 18, 18, 18, 27, 27, 27, 27};
static const uint16_t q8_0_lo_idx[32] __attribute__((aligned(64))) = {
	/* A at byte 0 (words 0..31), B at byte 64 (words 32..63) */
	1,  2,  3,  4,  5,  6,  7,  8,  18, 19, 20, 21, 22, 23, 24, 25,
	35, 36, 37, 38, 39, 40, 41, 42, 52, 53, 54, 55, 56, 57, 58, 59};
static const uint16_t q8_0_hi_idx[32] __attribute__((aligned(64))) = {
	/* A at byte 8 (words 4..35), B at byte 72 (words 36..67) */
	5,  6,  7,  8,  9,  10, 11, 12, 22, 23, 24, 25, 26, 27, 28, 29,
	39, 40, 41, 42, 43, 44, 45, 46, 56, 57, 58, 59, 60, 61, 62, 63};
static const uint16_t q8_0_d_idx[32] __attribute__((aligned(64))) = {
	0, 0, 0, 0, 17, 17, 17, 17, 34, 34, 34, 34, 51, 51, 51, 51};

/* Q4_0 weights of 4 blocks: nibbles as bytes in the act_group lane layout. */
INLINE void load_q4_0(const uint8_t *p, int m, __m512i *lo, __m512i *hi, __m512 *d)
{
	const __m512i mask = _mm512_set1_epi8(0x0F);
	__m512i q;
	if (m == 4) {
		__m512i a = _mm512_loadu_si512(p);
		q = _mm512_inserti32x4(
			_mm512_inserti32x4(
				_mm512_inserti32x4(
					_mm512_castsi128_si512(_mm_loadu_si128((const __m128i *)(p + 2))),
					_mm_loadu_si128((const __m128i *)(p + 20)), 1),
				_mm_loadu_si128((const __m128i *)(p + 38)), 2),
			_mm_loadu_si128((const __m128i *)(p + 56)), 3);
		*d = _mm512_cvtph_ps(_mm512_castsi512_si256(
			_mm512_permutexvar_epi16(_mm512_load_si512(q4_0_d_idx), a)));
	} else {
		uint8_t tmp[64] = {0};
		for (int b = 0; b < m; b++)
			memcpy(tmp + 16 * b, p + 2 + 18 * b, 16);
		q = _mm512_loadu_si512(tmp);
		*d = wscale4(p, 18, m);
	}
	*lo = _mm512_and_si512(q, mask);
	*hi = _mm512_and_si512(_mm512_srli_epi16(q, 4), mask);
}

/* Q8_0 weights of 4 blocks, biased to unsigned by an xor with 0x80. */
INLINE void load_q8_0(const uint8_t *p, int m, __m512i *lo, __m512i *hi, __m512 *d)
{
	const __m512i bias = _mm512_set1_epi8((char)0x80);
	__m512i l, h;
	if (m == 4) {
		__m512i a0 = _mm512_loadu_si512(p), a1 = _mm512_loadu_si512(p + 64);
		__m512i b0 = _mm512_loadu_si512(p + 8), b1 = _mm512_loadu_si512(p + 72);
		l = _mm512_permutex2var_epi16(a0, _mm512_load_si512(q8_0_lo_idx), a1);
		h = _mm512_permutex2var_epi16(b0, _mm512_load_si512(q8_0_hi_idx), b1);
		*d = _mm512_cvtph_ps(_mm512_castsi512_si256(
			_mm512_permutex2var_epi16(a0, _mm512_load_si512(q8_0_d_idx), a1)));
	} else {
		uint8_t tl[64], th[64];
		memset(tl, 0x00, sizeof(tl));
		memset(th, 0x00, sizeof(th));
		for (int b = 0; b < m; b++) {
			memcpy(tl + 16 * b, p + 2 + 34 * b, 16);
			memcpy(th + 16 * b, p + 18 + 34 * b, 16);
		}
		l = _mm512_loadu_si512(tl);
		h = _mm512_loadu_si512(th);
		*d = wscale4(p, 34, m);
	}
	*lo = _mm512_xor_si512(l, bias);
	*hi = _mm512_xor_si512(h, bias);
}

/* R x T tile over prepared groups; out[t * os + r] = (add ? out : 0) + dot.
 * Activations are read from L1 per use so that only the R*T accumulators
 * and one row's decoded weights occupy registers. */
#define Q80_TILE(NAME, LOADER, BSIZE)                                                         \
	INLINE void NAME(int R, int T, int64_t nb, const uint8_t *w, size_t wstride,          \
			 const struct act_group *const *g, float *out, size_t os, int add)     \
	{                                                                                     \
		__m512 acc[4][4];                                                             \
		UNROLL for (int r = 0; r < R; r++)                                                   \
			UNROLL for (int t = 0; t < T; t++)                                           \
				acc[r][t] = _mm512_setzero_ps();                              \
		int64_t ng = (nb + 3) / 4;                                                    \
		for (int64_t i = 0; i < ng; i++) {                                            \
			int m = (i * 4 + 4 <= nb) ? 4 : (int)(nb - i * 4);                    \
			/* few tokens: keep their activations in registers */                 \
			__m512i an[2], al[2], ah[2];                                          \
			__m512 ad[2];                                                         \
			for (int t = 0; t < (T <= 2 ? T : 0); t++) {                          \
				an[t] = _mm512_load_si512(g[t][i].nsum);                      \
				al[t] = _mm512_load_si512(g[t][i].lo);                        \
				ah[t] = _mm512_load_si512(g[t][i].hi);                        \
				ad[t] = _mm512_load_ps(g[t][i].d);                            \
			}                                                                     \
			UNROLL for (int r = 0; r < R; r++) {                                         \
				const uint8_t *p = w + r * wstride + i * 4 * (BSIZE);         \
				__m512i lo, hi;                                               \
				__m512 wd;                                                    \
				prefetch_span(p, 4 * (BSIZE));                                 \
				LOADER(p, m, &lo, &hi, &wd);                                  \
				UNROLL for (int t = 0; t < T; t++) {                                 \
					const struct act_group *gt = g[t] + i;                \
					__m512i s;                                            \
					__m512 sd;                                            \
					if (T <= 2) {                                         \
						s = dpbusd(an[t & 1], lo, al[t & 1]);         \
						s = dpbusd(s, hi, ah[t & 1]);                 \
						sd = _mm512_mul_ps(wd, ad[t & 1]);            \
					} else {                                              \
						s = _mm512_load_si512(gt->nsum);              \
						s = dpbusd(s, lo, _mm512_load_si512(gt->lo)); \
						s = dpbusd(s, hi, _mm512_load_si512(gt->hi)); \
						sd = _mm512_mul_ps(wd, _mm512_load_ps(gt->d)); \
					}                                                     \
					acc[r][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s),    \
								    sd, acc[r][t]);           \
				}                                                             \
			}                                                                     \
		}                                                                             \
		UNROLL for (int r = 0; r < R; r++)                                                   \
			UNROLL for (int t = 0; t < T; t++) {                                         \
				float v = hsum(acc[r][t]);                                    \
				out[t * os + r] = add ? out[t * os + r] + v : v;              \
			}                                                                     \
	}

Q80_TILE(tile_q4_0, load_q4_0, 18)
Q80_TILE(tile_q8_0, load_q8_0, 34)

/* ---- Q8_K activations: Q4_K and Q6_K ------------------------------------------------ */

/* Q4_K: 8 sub-block scales in lanes 0..7 and mins in lanes 8..15 (int32). */
INLINE __m512i q4k_scales(const uint8_t *s)
{
	uint32_t u[4], aux;
	memcpy(u, s, 12);
	/* the 12-byte packing: see quant_k4_scale_min */
	u[3] = ((u[2] >> 4) & 0x0f0f0f0f) | (((u[1] >> 6) & 0x03030303) << 4);
	aux = u[1] & 0x3f3f3f3f;
	u[1] = (u[2] & 0x0f0f0f0f) | (((u[0] >> 6) & 0x03030303) << 4);
	u[2] = aux;
	u[0] &= 0x3f3f3f3f;
	return _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)u));
}

/* Q8_K activations of one block in the Q4_K lane order, plus bsum pairs in lanes 8..15. */
struct q4k_act {
	__m512i y[4];
	__m512i bs;
	float d;
};

INLINE void q4k_act_load(const struct block_q8_K *b, struct q4k_act *a)
{
	const int8_t *q = b->qs;
#define Y2(o1, o2)                                                                          \
	_mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(q + o1))), \
			   _mm256_loadu_si256((const __m256i *)(q + o2)), 1)
	a->y[0] = Y2(0, 64);
	a->y[1] = Y2(32, 96);
	a->y[2] = Y2(128, 192);
	a->y[3] = Y2(160, 224);
#undef Y2
	__m256i bs = _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)b->bsums),
				       _mm256_set1_epi16(1));
	a->bs = _mm512_inserti64x4(_mm512_setzero_si512(), bs, 1);
	a->d = b->d;
}

INLINE void tile_q4_K(int R, int T, int64_t nb, const uint8_t *w, size_t wstride,
		      const uint8_t *act, size_t astride, __m512 acc[4][4])
{
	const __m512i mask = _mm512_set1_epi8(0x0F);
	const __m512i i0 = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 2, 2, 2, 2, 2, 2, 2, 2);
	const __m512i i1 = _mm512_setr_epi32(1, 1, 1, 1, 1, 1, 1, 1, 3, 3, 3, 3, 3, 3, 3, 3);
	const __m512i i2 = _mm512_setr_epi32(4, 4, 4, 4, 4, 4, 4, 4, 6, 6, 6, 6, 6, 6, 6, 6);
	const __m512i i3 = _mm512_setr_epi32(5, 5, 5, 5, 5, 5, 5, 5, 7, 7, 7, 7, 7, 7, 7, 7);
	for (int64_t i = 0; i < nb; i++) {
		struct q4k_act a[4];
		UNROLL for (int t = 0; t < T; t++)
			q4k_act_load((const struct block_q8_K *)(act + t * astride) + i, &a[t]);
		UNROLL for (int r = 0; r < R; r++) {
			const struct block_q4_K *x = (const struct block_q4_K *)(w + r * wstride) + i;
			prefetch_span(x, sizeof(*x));
			__m512i x0 = _mm512_loadu_si512(x->qs), x1 = _mm512_loadu_si512(x->qs + 64);
			__m512i q0 = _mm512_and_si512(x0, mask);
			__m512i q1 = _mm512_and_si512(_mm512_srli_epi16(x0, 4), mask);
			__m512i q2 = _mm512_and_si512(x1, mask);
			__m512i q3 = _mm512_and_si512(_mm512_srli_epi16(x1, 4), mask);
			__m512i sm = q4k_scales(x->scales);
			__m512i s0 = _mm512_permutexvar_epi32(i0, sm);
			__m512i s1 = _mm512_permutexvar_epi32(i1, sm);
			__m512i s2 = _mm512_permutexvar_epi32(i2, sm);
			__m512i s3 = _mm512_permutexvar_epi32(i3, sm);
			float d = _cvtsh_ss(x->d), dmin = _cvtsh_ss(x->dmin);
			UNROLL for (int t = 0; t < T; t++) {
				const __m512i z = _mm512_setzero_si512();
				__m512i p = _mm512_mullo_epi32(dpbusd(z, q0, a[t].y[0]), s0);
				p = _mm512_add_epi32(p, _mm512_mullo_epi32(dpbusd(z, q1, a[t].y[1]), s1));
				p = _mm512_add_epi32(p, _mm512_mullo_epi32(dpbusd(z, q2, a[t].y[2]), s2));
				p = _mm512_add_epi32(p, _mm512_mullo_epi32(dpbusd(z, q3, a[t].y[3]), s3));
				__m512i mn = _mm512_mullo_epi32(sm, a[t].bs);
				acc[r][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p),
							    _mm512_set1_ps(d * a[t].d), acc[r][t]);
				acc[r][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(mn),
							    _mm512_set1_ps(-dmin * a[t].d), acc[r][t]);
			}
		}
	}
}

INLINE void tile_q6_K(int R, int T, int64_t nb, const uint8_t *w, size_t wstride,
		      const uint8_t *act, size_t astride, __m512 acc[4][4])
{
	const __m512i m4 = _mm512_set1_epi8(0x0F), m2 = _mm512_set1_epi8(0x30);
	__m512i idx[4];
	UNROLL for (int c = 0; c < 4; c++)
		idx[c] = _mm512_setr_epi32(4 * c, 4 * c, 4 * c, 4 * c, 4 * c + 1, 4 * c + 1,
					   4 * c + 1, 4 * c + 1, 4 * c + 2, 4 * c + 2, 4 * c + 2,
					   4 * c + 2, 4 * c + 3, 4 * c + 3, 4 * c + 3, 4 * c + 3);
	for (int64_t i = 0; i < nb; i++) {
		const struct block_q8_K *y[4];
		__m512i bs[4];
		UNROLL for (int t = 0; t < T; t++) {
			y[t] = (const struct block_q8_K *)(act + t * astride) + i;
			bs[t] = _mm512_cvtepi16_epi32(_mm256_loadu_si256((const __m256i *)y[t]->bsums));
		}
		UNROLL for (int r = 0; r < R; r++) {
			const struct block_q6_K *x = (const struct block_q6_K *)(w + r * wstride) + i;
			prefetch_span(x, sizeof(*x));
			__m512i q[4];
			UNROLL for (int c = 0; c < 2; c++) {
				__m512i A = _mm512_loadu_si512(x->ql + 64 * c);
				__m256i H = _mm256_loadu_si256((const __m256i *)(x->qh + 32 * c));
				__m512i h = _mm512_inserti64x4(_mm512_castsi256_si512(H),
							       _mm256_srli_epi16(H, 2), 1);
				q[2 * c] = _mm512_or_si512(_mm512_and_si512(A, m4),
							   _mm512_and_si512(_mm512_slli_epi16(h, 4), m2));
				q[2 * c + 1] = _mm512_or_si512(
					_mm512_and_si512(_mm512_srli_epi16(A, 4), m4),
					_mm512_and_si512(h, m2));
			}
			__m512i sc = _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)x->scales));
			__m512i s[4];
			UNROLL for (int c = 0; c < 4; c++)
				s[c] = _mm512_permutexvar_epi32(idx[c], sc);
			float d = _cvtsh_ss(x->d);
			UNROLL for (int t = 0; t < T; t++) {
				const __m512i z = _mm512_setzero_si512();
				const int8_t *yq = y[t]->qs;
				__m512i p = _mm512_slli_epi32(_mm512_mullo_epi32(sc, bs[t]), 5);
				p = _mm512_sub_epi32(z, p);
				UNROLL for (int c = 0; c < 4; c++)
					p = _mm512_add_epi32(
						p, _mm512_mullo_epi32(
							   dpbusd(z, q[c], _mm512_loadu_si512(yq + 64 * c)),
							   s[c]));
				acc[r][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p),
							    _mm512_set1_ps(d * y[t]->d), acc[r][t]);
			}
		}
	}
}

/* ---- drivers ---------------------------------------------------------------------------- */

/* Instantiate a tile body for every R, T in 1..4 so tails need no scalar code. */
#define DISPATCH_RT(CALL)                                                                    \
	switch ((R - 1) * 4 + (T - 1)) {                                                     \
	case 0: CALL(1, 1); break;                                                           \
	case 1: CALL(1, 2); break;                                                           \
	case 2: CALL(1, 3); break;                                                           \
	case 3: CALL(1, 4); break;                                                           \
	case 4: CALL(2, 1); break;                                                           \
	case 5: CALL(2, 2); break;                                                           \
	case 6: CALL(2, 3); break;                                                           \
	case 7: CALL(2, 4); break;                                                           \
	case 8: CALL(3, 1); break;                                                           \
	case 9: CALL(3, 2); break;                                                           \
	case 10: CALL(3, 3); break;                                                          \
	case 11: CALL(3, 4); break;                                                          \
	case 12: CALL(4, 1); break;                                                          \
	case 13: CALL(4, 2); break;                                                          \
	case 14: CALL(4, 3); break;                                                          \
	default: CALL(4, 4); break;                                                          \
	}

/* Float types: the tile reads activations in place. */
#define FLOAT_DRIVER(TYPE, TILE, ASIZE)                                                      \
	static void tile_##TYPE##_rt(int R, int T, int64_t n, const uint8_t *w, size_t ws,   \
				     const uint8_t *a, size_t as, float *out, size_t os)     \
	{                                                                                    \
		(void)ASIZE;                                                                 \
		DISPATCH_RT(FT_CALL_##TYPE)                                                  \
	}

#define FT_CALL_f32(r, t) tile_f32(r, t, n, w, ws, a, as, out, os)
#define FT_CALL_f16(r, t) tile_f16(r, t, n, w, ws, a, as, out, os)
#define FT_CALL_bf16(r, t) tile_bf16(r, t, n, w, ws, a, as, out, os)
FLOAT_DRIVER(f32, tile_f32, 4)
FLOAT_DRIVER(f16, tile_f16, 4)
FLOAT_DRIVER(bf16, tile_bf16, 2)

typedef void (*float_tile_fn)(int R, int T, int64_t n, const uint8_t *w, size_t ws,
			      const uint8_t *a, size_t as, float *out, size_t os);

/* gemm over row panels: each panel stays in cache while all token tiles pass. */
static void float_gemm(float_tile_fn tile, size_t elem, int64_t n, const void *w, size_t row_bytes,
		       int nrows, const void *act, size_t act_stride, int ntok, float *out,
		       size_t out_stride)
{
	int panel = (int)(PANEL_BYTES / (row_bytes ? row_bytes : 1));
	(void)elem;
	if (panel < 4)
		panel = 4;
	panel &= ~3;
	for (int r0 = 0; r0 < nrows; r0 += panel) {
		int r1 = r0 + panel < nrows ? r0 + panel : nrows;
		for (int t = 0; t < ntok; t += 4) {
			int T = ntok - t < 4 ? ntok - t : 4;
			for (int r = r0; r < r1; r += 4) {
				int R = r1 - r < 4 ? r1 - r : 4;
				tile(R, T, n, (const uint8_t *)w + (size_t)r * row_bytes, row_bytes,
				     (const uint8_t *)act + (size_t)t * act_stride, act_stride,
				     out + (size_t)t * out_stride + r, out_stride);
			}
		}
	}
}

#define FLOAT_ENTRY(TYPE, ELEM)                                                              \
	static float dot_##TYPE(int64_t n, const void *w, const void *act)                   \
	{                                                                                    \
		float r;                                                                     \
		tile_##TYPE##_rt(1, 1, n, w, 0, act, 0, &r, 1);                              \
		return r;                                                                    \
	}                                                                                    \
	static void gemv_##TYPE(int64_t n, const void *w, size_t rb, int nrows,              \
				const void *act, float *out)                                 \
	{                                                                                    \
		for (int r = 0; r < nrows; r += 4) {                                         \
			int R = nrows - r < 4 ? nrows - r : 4;                               \
			tile_##TYPE##_rt(R, 1, n, (const uint8_t *)w + (size_t)r * rb, rb,  \
					 act, 0, out + r, 1);                                \
		}                                                                            \
	}                                                                                    \
	static void gemm_##TYPE(int64_t n, const void *w, size_t rb, int nrows,              \
				const void *act, size_t as, int ntok, float *out, size_t os) \
	{                                                                                    \
		float_gemm(tile_##TYPE##_rt, ELEM, n, w, rb, nrows, act, as, ntok, out, os); \
	}

FLOAT_ENTRY(f32, 4)
FLOAT_ENTRY(f16, 2)
FLOAT_ENTRY(bf16, 2)

/* Quantized types: the tile accumulates into acc; the driver reduces and stores. */
typedef void (*int_tile_fn)(int R, int T, int64_t nb, const uint8_t *w, size_t ws,
			    const void *const *act, size_t as, __m512 acc[4][4]);

#define INT_DRIVER(TYPE, CALLEXPR)                                                           \
	static void itile_##TYPE(int R, int T, int64_t nb, const uint8_t *w, size_t ws,      \
				 const void *const *act, size_t as, __m512 acc[4][4])        \
	{                                                                                    \
		DISPATCH_RT(CALLEXPR)                                                        \
	}

#define IT_Q4_K(r, t) tile_q4_K(r, t, nb, w, ws, (const uint8_t *)act[0], as, acc)
#define IT_Q6_K(r, t) tile_q6_K(r, t, nb, w, ws, (const uint8_t *)act[0], as, acc)
INT_DRIVER(q4_K, IT_Q4_K)
INT_DRIVER(q6_K, IT_Q6_K)

INLINE void acc_zero(__m512 acc[4][4])
{
	for (int r = 0; r < 4; r++)
		for (int t = 0; t < 4; t++)
			acc[r][t] = _mm512_setzero_ps();
}

INLINE void acc_store(int R, int T, __m512 acc[4][4], float *out, size_t os, int add)
{
	UNROLL for (int r = 0; r < R; r++)
		UNROLL for (int t = 0; t < T; t++) {
			float v = hsum(acc[r][t]);
			out[t * os + r] = add ? out[t * os + r] + v : v;
		}
}

/* Q8_0-activation tiles, instantiated for every R, T in 1..4. */
typedef void (*q80_tile_fn)(int R, int T, int64_t nb, const uint8_t *w, size_t ws,
			    const struct act_group *const *g, float *out, size_t os, int add);

#define Q80_DRIVER(TYPE)                                                                     \
	static void qtile_##TYPE(int R, int T, int64_t nb, const uint8_t *w, size_t ws,      \
				 const struct act_group *const *g, float *out, size_t os,    \
				 int add)                                                    \
	{                                                                                    \
		DISPATCH_RT(QT_CALL_##TYPE)                                                  \
	}
#define QT_CALL_q4_0(r, t) tile_q4_0(r, t, nb, w, ws, g, out, os, add)
#define QT_CALL_q8_0(r, t) tile_q8_0(r, t, nb, w, ws, g, out, os, add)
Q80_DRIVER(q4_0)
Q80_DRIVER(q8_0)

/*
 * Q4_0 / Q8_0: activations prepared per chunk of PREP_MAX_ELEMS elements and
 * per tile of up to GEMM_T tokens; partial sums of later chunks are added.
 */
static void q8_0_act_gemm(q80_tile_fn tile, size_t bsize, int shift, int64_t n, const void *w,
			  size_t row_bytes, int nrows, const void *act, size_t act_stride,
			  int ntok, float *out, size_t out_stride)
{
	int64_t nb = n / 32;
	int panel = (int)(PANEL_BYTES / (row_bytes ? row_bytes : 1));
	if (panel < 4)
		panel = 4;
	panel &= ~3;
	for (int64_t c0 = 0; c0 < nb; c0 += PREP_GROUPS * 4) {
		int64_t cb = nb - c0 < PREP_GROUPS * 4 ? nb - c0 : PREP_GROUPS * 4;
		for (int r0 = 0; r0 < nrows; r0 += panel) {
			int r1 = r0 + panel < nrows ? r0 + panel : nrows;
			for (int t = 0; t < ntok; t += GEMM_T) {
				int T = ntok - t < GEMM_T ? ntok - t : GEMM_T;
				const struct act_group *g[GEMM_T];
				for (int k = 0; k < T; k++) {
					const struct block_q8_0 *y =
						(const struct block_q8_0 *)((const uint8_t *)act +
									    (size_t)(t + k) * act_stride) +
						c0;
					prep_q8_0(y, cb, prep_buf[k], shift);
					g[k] = prep_buf[k];
				}
				for (int r = r0; r < r1; r += 4) {
					int R = r1 - r < 4 ? r1 - r : 4;
					tile(R, T, cb,
					     (const uint8_t *)w + (size_t)r * row_bytes + c0 * bsize,
					     row_bytes, g, out + (size_t)t * out_stride + r, out_stride,
					     c0 > 0);
				}
			}
		}
	}
}

/* Q8_K activations are used in place. */
static void q8_K_act_gemm(int_tile_fn tile, int64_t n, const void *w, size_t row_bytes, int nrows,
			  const void *act, size_t act_stride, int ntok, float *out,
			  size_t out_stride)
{
	int64_t nb = n / QK_K;
	int panel = (int)(PANEL_BYTES / (row_bytes ? row_bytes : 1));
	if (panel < 4)
		panel = 4;
	panel &= ~3;
	for (int r0 = 0; r0 < nrows; r0 += panel) {
		int r1 = r0 + panel < nrows ? r0 + panel : nrows;
		for (int t = 0; t < ntok; t += 4) {
			int T = ntok - t < 4 ? ntok - t : 4;
			const void *a[1] = {(const uint8_t *)act + (size_t)t * act_stride};
			for (int r = r0; r < r1; r += 4) {
				int R = r1 - r < 4 ? r1 - r : 4;
				__m512 acc[4][4];
				acc_zero(acc);
				tile(R, T, nb, (const uint8_t *)w + (size_t)r * row_bytes, row_bytes, a,
				     act_stride, acc);
				acc_store(R, T, acc, out + (size_t)t * out_stride + r, out_stride, 0);
			}
		}
	}
}

#define Q80_ENTRY(TYPE, BSIZE, SHIFT)                                                               \
	static void gemm_##TYPE(int64_t n, const void *w, size_t rb, int nrows,              \
				const void *act, size_t as, int ntok, float *out, size_t os) \
	{                                                                                    \
		q8_0_act_gemm(qtile_##TYPE, BSIZE, SHIFT, n, w, rb, nrows, act, as, ntok, out, \
			      os);                                                           \
	}                                                                                    \
	static void gemv_##TYPE(int64_t n, const void *w, size_t rb, int nrows,              \
				const void *act, float *out)                                 \
	{                                                                                    \
		q8_0_act_gemm(qtile_##TYPE, BSIZE, SHIFT, n, w, rb, nrows, act, 0, 1, out, 1); \
	}                                                                                    \
	static float dot_##TYPE(int64_t n, const void *w, const void *act)                   \
	{                                                                                    \
		float r;                                                                     \
		gemv_##TYPE(n, w, 0, 1, act, &r);                                            \
		return r;                                                                    \
	}

Q80_ENTRY(q4_0, 18, 3)
Q80_ENTRY(q8_0, 34, 7)

#define Q8K_ENTRY(TYPE)                                                                      \
	static void gemm_##TYPE(int64_t n, const void *w, size_t rb, int nrows,              \
				const void *act, size_t as, int ntok, float *out, size_t os) \
	{                                                                                    \
		q8_K_act_gemm(itile_##TYPE, n, w, rb, nrows, act, as, ntok, out, os);        \
	}                                                                                    \
	static void gemv_##TYPE(int64_t n, const void *w, size_t rb, int nrows,              \
				const void *act, float *out)                                 \
	{                                                                                    \
		q8_K_act_gemm(itile_##TYPE, n, w, rb, nrows, act, 0, 1, out, 1);             \
	}                                                                                    \
	static float dot_##TYPE(int64_t n, const void *w, const void *act)                   \
	{                                                                                    \
		float r;                                                                     \
		gemv_##TYPE(n, w, 0, 1, act, &r);                                            \
		return r;                                                                    \
	}

Q8K_ENTRY(q4_K)
Q8K_ENTRY(q6_K)

/* ---- activation quantizers ----------------------------------------------------------- */

static void quantize_q8_0_avx512(const float *x, void *dst, int64_t n)
{
	struct block_q8_0 *y = dst;
	const __m512 signbit = _mm512_set1_ps(-0.0f);
	for (int64_t i = 0; i < n / QK8_0; i++, x += QK8_0) {
		__m512 a = _mm512_loadu_ps(x), b = _mm512_loadu_ps(x + 16);
		__m512 m = _mm512_max_ps(_mm512_andnot_ps(signbit, a), _mm512_andnot_ps(signbit, b));
		float amax = _mm512_reduce_max_ps(m);
		float d = amax / 127, id = d ? 1 / d : 0;
		y[i].d = _cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT);
		__m512 v = _mm512_set1_ps(id);
		__m512i qa = _mm512_cvtps_epi32(_mm512_mul_ps(a, v));
		__m512i qb = _mm512_cvtps_epi32(_mm512_mul_ps(b, v));
		_mm_storeu_si128((__m128i *)y[i].qs, _mm512_cvtsepi32_epi8(qa));
		_mm_storeu_si128((__m128i *)(y[i].qs + 16), _mm512_cvtsepi32_epi8(qb));
	}
}

static void quantize_q8_K_avx512(const float *x, void *dst, int64_t n)
{
	struct block_q8_K *y = dst;
	const __m512 signbit = _mm512_set1_ps(-0.0f);
	for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
		__m512 m = _mm512_setzero_ps();
		for (int j = 0; j < QK_K; j += 16)
			m = _mm512_max_ps(m, _mm512_andnot_ps(signbit, _mm512_loadu_ps(x + j)));
		float amax = _mm512_reduce_max_ps(m);
		if (amax == 0) {
			memset(&y[i], 0, sizeof(y[i]));
			continue;
		}
		float id = 127 / amax;
		y[i].d = amax / 127;
		__m512 v = _mm512_set1_ps(id);
		for (int j = 0; j < QK_K; j += 16) {
			__m512i q = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(x + j), v));
			_mm_storeu_si128((__m128i *)(y[i].qs + j), _mm512_cvtsepi32_epi8(q));
			y[i].bsums[j / 16] = (int16_t)_mm512_reduce_add_epi32(q);
		}
	}
}

void quant_avx512_register(struct quant_kernel_table *t, int vnni)
{
	t->k[QT_F32] = (struct quant_kernels){dot_f32, gemv_f32, gemm_f32};
	t->k[QT_F16] = (struct quant_kernels){dot_f16, gemv_f16, gemm_f16};
	t->k[QT_BF16] = (struct quant_kernels){dot_bf16, gemv_bf16, gemm_bf16};
	t->from_float[QT_Q8_0] = quantize_q8_0_avx512;
	t->from_float[QT_Q8_K] = quantize_q8_K_avx512;
	if (!vnni)
		return; /* the integer kernels below are built on vpdpbusd */
	t->k[QT_Q4_0] = (struct quant_kernels){dot_q4_0, gemv_q4_0, gemm_q4_0};
	t->k[QT_Q8_0] = (struct quant_kernels){dot_q8_0, gemv_q8_0, gemm_q8_0};
	t->k[QT_Q4_K] = (struct quant_kernels){dot_q4_K, gemv_q4_K, gemm_q4_K};
	t->k[QT_Q6_K] = (struct quant_kernels){dot_q6_K, gemv_q6_K, gemm_q6_K};
}
