/* AVX-512 (+VNNI) dot products, gemv and gemm for every weight type, and the activation quantizers. */

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
 * four tokens and read from memory once per panel.  Prefill of Q4_0,
 * IQ4_NL, Q8_0, MXFP4 (repacked), Q4_K, Q6_K and IQ4_XS runs instead over rows
 * decoded once per call into strips of 16 interleaved rows (gemm_s16,
 * near the end).
 *
 * Integer types use vpdpbusd (u8 x s8 -> s32).  Weights are made unsigned
 * (Q4_0 nibbles are 0..15 with an offset of 8, Q5_0 0..31 with 16; Q8_0 is
 * biased by 128 with an xor; Q6_K is 0..63 with an offset of 32, Q3_K 0..7
 * with 4) and the offset is paid back through activation sums: Q8_0 / Q8_1
 * activations are "prepared" once per call into a lane layout matching four
 * weight blocks (low halves, high halves, shifted negated lane sums, per-lane
 * scales, Q8_1's s); Q8_K activations already carry bsums.  Mins (Q4_1,
 * Q5_1, Q2_K, Q4_K, Q5_K) go through the same sums.  The table types
 * (IQ4_NL, IQ4_XS, MXFP4) look each nibble's value + 128 up with vpshufb
 * and run on the prepared tiles too, IQ4_XS with Q8_K activations prepared
 * the same way (its sub-blocks of 32 are the groups' blocks, scaled per
 * lane like Q4_0's).  K-quants multiply by
 * their sub-block scales inside the dot: vpmaddubsw (u8 x s8 pairs, no
 * saturation at these ranges) then vpdpwssd against per-lane scale pairs.
 * Each block's int32 lanes are converted to float and scaled per lane, and
 * a row's lanes are summed once at the end, so results differ from the plain
 * C twins only by float rounding order.
 *
 * Float types accumulate with FMA in f32 (F16 weights widened with
 * vcvtph2ps, BF16 by a shift).
 */
#include "quant_internal.h"

#include <immintrin.h>
#include <math.h>
#include <string.h>

/* Lane sums at the end of a row. */
QUANT_INLINE float hsum(__m512 v)
{
	return _mm512_reduce_add_ps(v);
}

QUANT_INLINE __m512i dpbusd(__m512i acc, __m512i u, __m512i s)
{
	return _mm512_dpbusd_epi32(acc, u, s);
}

/* Rows per gemm panel: sized so a panel of the widest rows we expect stays in L2. */
#define PANEL_BYTES (512 * 1024)
#ifndef PF_DIST
#define PF_DIST 4096 /* bytes ahead in each weight row: measured best of 1-16 KiB */
#endif

/*
 * Software prefetch of the bytes PF_DIST ahead of [p, p + len), one per
 * cache line (blocks of 18 to 210 bytes do not line up with lines).  A tile
 * reads four rows side by side, so "ahead" past the end of a row is the same
 * row of the next tile: left is the bytes from p to the end of p's row, rb
 * the row's bytes and ws4 four row strides.  The lead is PF_DIST, or one row
 * when rows are shorter.  Prefetching plainly PF_DIST ahead, rows shorter
 * than that (2048 F16 weights are 4 KiB) fetched the rows the tile was
 * already reading: one core's F16 gemv went from 20 to 32 GB/s, Q8_0 from
 * 17 to 29 GB/s with this.
 */
/* Off while a gemm's later token tiles pass over a panel already in cache:
 * there the prefetches only cost issue slots and evict lines (measured: Q4_K
 * gemm of 64 tokens 10% slower with them). */
static _Thread_local int prefetch_on = 1;
#ifndef PF_Q8X
#define PF_Q8X 0
#endif

QUANT_INLINE void prefetch_span(const void *p, size_t len, int64_t left, int64_t rb, int64_t ws4)
{
	if (!prefetch_on)
		return;
	int64_t lead = PF_DIST < rb ? PF_DIST : rb;
	for (size_t o = 0; o < len; o += 64) {
		int64_t d = lead + (int64_t)o;
		_mm_prefetch((const char *)p + d + (d >= left ? ws4 - rb : 0), _MM_HINT_T0);
	}
}

/*
 * K-quant and IQ4_XS blocks: plainly PF_BLOCK_DIST ahead, which measured
 * faster for them (Q4_K gemv 28-30 against 26 GB/s, gemm of 64 tokens 220
 * against 190 GOP/s on one core) than the tile-aware span above.  16 KiB
 * rather than 4: on the weights of a 1B-shape file as decode maps them
 * (4 KiB pages; `bench_quant --file`, one core, shared machine) Q4_K went
 * from 17.4-18.8 to 17.7-22.2 GB/s, Q6_K from 17.6-19.2 to 22.1-24.7,
 * IQ4_XS from 16.6 to 17.8-18.6, and the 1B Q4_K_M model's decode on two
 * threads from 42.9 to 47.6 t/s by CPU time (median of 4 interleaved pairs).
 */
#define PF_BLOCK_DIST 16384
QUANT_INLINE void prefetch_plain(const void *p, size_t len)
{
	for (size_t o = 0; o < len; o += 64)
		_mm_prefetch((const char *)p + PF_BLOCK_DIST + o, _MM_HINT_T0);
}

/* Panels of PANEL_BYTES; PF_ALL: prefetch in every token tile of a panel,
 * not only the first. */
#define RUN_PANELS(TILE, PF_ALL, ...)                                                              \
	quant_run_panels(TILE, PANEL_BYTES, &prefetch_on, PF_ALL, __VA_ARGS__)

/* ---- F32 / F16 / BF16 ------------------------------------------------------- */

/* Lanes to load at element k: all 16, or the tail's. */
QUANT_INLINE __mmask16 tail_mask(int tail)
{
	return tail ? (__mmask16)((1u << tail) - 1) : (__mmask16)0xffff;
}

/* Load 16 weights as floats from element k of a row (masked for the tail). */
QUANT_INLINE __m512 load_w_f32(const void *row, int64_t k, int tail)
{
	return _mm512_maskz_loadu_ps(tail_mask(tail), (const float *)row + k);
}

QUANT_INLINE __m512 load_w_f16(const void *row, int64_t k, int tail)
{
	return _mm512_cvtph_ps(
		_mm256_maskz_loadu_epi16(tail_mask(tail), (const quant_half *)row + k));
}

QUANT_INLINE __m512 load_w_bf16(const void *row, int64_t k, int tail)
{
	__m256i h = _mm256_maskz_loadu_epi16(tail_mask(tail), (const quant_bf16 *)row + k);
	return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

/* Activations are F32 for F32 and F16 weights, BF16 for BF16 weights; a
 * tile's rows are read side by side (four rows a stride apart). */
#define PF_FLOAT(p, left, rb, ws) prefetch_span(p, 1, left, rb, 4 * (int64_t)(ws))
QUANT_FLOAT_KERNELS(__m512, 16, _mm512_setzero_ps, _mm512_fmadd_ps, hsum, load_w_f32, load_w_f16,
		    load_w_bf16, PF_FLOAT, RUN_PANELS)

/*
 * BF16 with AVX512-BF16 (which both AVX-512 levels require, see quant.c):
 * vdpbf16ps multiplies pairs of BF16 weights and activations (the products
 * are exact in fp32) and adds both into a lane, 32 elements a vector in
 * one instruction where the widening tile above spends two shifts and an
 * FMA on 16.  Sums round at each addition and BF16 denormals (below
 * 1.2e-38) count as zero, so results differ from the C twin by rounding.
 * Prefill only (1B BF16 pp512, 2 threads: 119-126 -> 245-247 t/s); decode,
 * bound by memory, measured no faster with it.
 */
QUANT_INLINE __m512bh load_bf16x32(const uint8_t *row, int64_t k, int64_t n)
{
	const quant_bf16 *p = (const quant_bf16 *)row + k;
	if (n - k >= 32)
		return (__m512bh)_mm512_loadu_si512(p);
	return (__m512bh)_mm512_maskz_loadu_epi16((__mmask32)((1ull << (n - k)) - 1), p);
}

QUANT_INLINE void tile_bf16dp(int R, int T, int64_t n, const uint8_t *w, size_t ws,
			      const uint8_t *a, size_t as, float *out, size_t os)
{
	__m512 acc[4][4];
	QUANT_UNROLL for (int r = 0; r < R; r++) QUANT_UNROLL for (int t = 0; t < T; t++)
		acc[r][t] = _mm512_setzero_ps();
	for (int64_t k = 0; k < n; k += 32) {
		__m512bh av[4];
		QUANT_UNROLL for (int t = 0; t < T; t++) av[t] = load_bf16x32(a + t * as, k, n);
		QUANT_UNROLL for (int r = 0; r < R; r++)
		{
			prefetch_span(w + r * ws + k * 2, 1, (n - k) * 2, n * 2, 4 * (int64_t)ws);
			__m512bh wv = load_bf16x32(w + r * ws, k, n);
			QUANT_UNROLL for (int t = 0; t < T; t++) acc[r][t] =
				_mm512_dpbf16_ps(acc[r][t], wv, av[t]);
		}
	}
	QUANT_UNROLL for (int r = 0; r < R; r++) QUANT_UNROLL for (int t = 0; t < T; t++)
		out[t * os + r] = hsum(acc[r][t]);
}

QUANT_TILE_DRIVER(bf16dp)

static void gemm_bf16dp(int64_t n, const void *w, size_t rb, int nrows, const void *act, size_t as,
			int ntok, float *out, size_t os)
{
	RUN_PANELS(rt_bf16dp, 0, n, w, rb, nrows, act, as, ntok, out, os);
}

/* ---- Q8_0 / Q8_1 activations, prepared ------------------------------------------ */

/*
 * One group of four Q8_0 (or Q8_1) activation blocks, laid out for four
 * weight blocks loaded side by side: byte 16*b + j of lo is element j of
 * block b, of hi element 16 + j.  A vpdpbusd lane i (bytes 4i..4i+3)
 * therefore belongs to block i / 4 in both halves.
 */
struct act_group {
	int8_t lo[64];
	int8_t hi[64];
	int32_t nsum[16]; /* -(sum of the 8 activation bytes lane i meets) << shift */
	float d[16];      /* activation scale of lane i's block */
	float s4[16];     /* Q8_1 only: the block's s / 4 (each block has 4 lanes) */
};
_Static_assert(sizeof(struct act_group) == 320, "act_group size");

/* Largest row length prepared at once; longer rows go in chunks. */
#define PREP_MAX_ELEMS 16384
#define PREP_GROUPS (PREP_MAX_ELEMS / 128)
/* gemm prepares this many tokens at a time */
#define GEMM_T 4

static _Thread_local struct act_group prep_buf[GEMM_T][PREP_GROUPS] __attribute__((aligned(64)));

/*
 * Activation formats: Q8_0 (d, qs), Q8_1 (d, s, qs), each one 32-element
 * unit a block, or Q8_K (float d, qs, bsums), 8 units a block.
 */
struct act_fmt {
	size_t bytes; /* block size */
	size_t qoff;  /* offset of qs */
	int ushift;   /* log2 of the 32-element units per block (0 or 3) */
	int shift;    /* log2 of the weight offset to pay back (0: none) */
	int sums;     /* Q8_K: s4 of each lane is d x the sum of its 8 bytes (for mins) */
};

QUANT_INLINE __m512 spread4(__m128 v)
{
	/* 4 floats -> 16 lanes, each repeated over its block's 4 lanes */
	return _mm512_permutexvar_ps(
		_mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3),
		_mm512_castps128_ps512(v));
}

/* Where the quants of unit u are. */
QUANT_INLINE const uint8_t *act_quants(const uint8_t *y, const struct act_fmt *f, int64_t u)
{
	return y + (size_t)(u >> f->ushift) * f->bytes + f->qoff +
	       (size_t)(u & ((1 << f->ushift) - 1)) * 32;
}

/* Scale (and Q8_1's s / 4) of the block holding unit u; where its quants are. */
QUANT_INLINE const uint8_t *act_unit(const uint8_t *y, const struct act_fmt *f, int64_t u, float *d,
				     float *s4)
{
	const uint8_t *blk = y + (size_t)(u >> f->ushift) * f->bytes;
	quant_half h;
	if (f->ushift) {
		memcpy(d, blk, 4);
		*s4 = 0;
	} else {
		memcpy(&h, blk, 2);
		*d = _cvtsh_ss(h);
		memcpy(&h, blk + 2, 2);
		*s4 = f->qoff == 4 ? _cvtsh_ss(h) * 0.25f : 0;
	}
	return act_quants(y, f, u);
}

/* Prepare nu (<= PREP_GROUPS * 4) units; missing units of the last group are zero. */
static void prep_act(const uint8_t *y, const struct act_fmt *f, int64_t nu, struct act_group *g)
{
	const __m512i ones = _mm512_set1_epi8(1);
	for (int64_t i = 0; i < nu; i += 4, g++) {
		int m = nu - i < 4 ? (int)(nu - i) : 4;
		__m128i lo[4], hi[4];
		float d[4], s[4];
		for (int b = 0; b < 4; b++) {
			if (b < m) {
				const uint8_t *q = act_unit(y, f, i + b, &d[b], &s[b]);
				lo[b] = _mm_loadu_si128((const __m128i *)q);
				hi[b] = _mm_loadu_si128((const __m128i *)(q + 16));
			} else {
				lo[b] = hi[b] = _mm_setzero_si128();
				d[b] = s[b] = 0;
			}
		}
		__m512i vlo = _mm512_inserti32x4(
			_mm512_inserti32x4(
				_mm512_inserti32x4(_mm512_castsi128_si512(lo[0]), lo[1], 1), lo[2],
				2),
			lo[3], 3);
		__m512i vhi = _mm512_inserti32x4(
			_mm512_inserti32x4(
				_mm512_inserti32x4(_mm512_castsi128_si512(hi[0]), hi[1], 1), hi[2],
				2),
			hi[3], 3);
		_mm512_store_si512(g->lo, vlo);
		_mm512_store_si512(g->hi, vhi);
		__m512i lsum = dpbusd(dpbusd(_mm512_setzero_si512(), ones, vlo), ones, vhi);
		__m512i sum = _mm512_sllv_epi32(lsum, _mm512_set1_epi32(f->shift));
		if (!f->shift)
			sum = _mm512_setzero_si512();
		_mm512_store_si512(g->nsum, _mm512_sub_epi32(_mm512_setzero_si512(), sum));
		__m512 vd = spread4(_mm_loadu_ps(d));
		_mm512_store_ps(g->d, vd);
		/* a block's lanes sum to d x its sum either way: Q8_1's s / 4 each,
		 * or (Q8_K) each lane its own part */
		_mm512_store_ps(g->s4, f->sums ? _mm512_mul_ps(_mm512_cvtepi32_ps(lsum), vd)
					       : spread4(_mm_loadu_ps(s)));
	}
}

/* Prepare nu units of T tokens' activations (act_stride apart from y)
 * into prep_buf; g[k] is token k's. */
static void prep_tokens(const uint8_t *y, size_t act_stride, int T, const struct act_fmt *f,
			int64_t nu, const struct act_group **g)
{
	for (int k = 0; k < T; k++) {
		prep_act(y + (size_t)k * act_stride, f, nu, prep_buf[k]);
		g[k] = prep_buf[k];
	}
}

/* R x T tile over prepared activations (nu units of 32, groups of four). */
typedef void (*q8x_tile_fn)(int R, int T, int64_t nu, const uint8_t *w, size_t ws,
			    const struct act_group *const *g, float *out, size_t os, int add);

/*
 * Activations prepared per chunk of PREP_MAX_ELEMS elements and per tile of
 * up to GEMM_T tokens; partial sums of later chunks are added.  Weight
 * blocks hold wunits units of 32 in wbytes.
 */
static void q8x_gemm(q8x_tile_fn tile, int wunits, size_t wbytes, const struct act_fmt *f,
		     int64_t n, const void *w, size_t row_bytes, int nrows, const void *act,
		     size_t act_stride, int ntok, float *out, size_t out_stride)
{
	int64_t nu = n / 32;
	int panel = (int)(PANEL_BYTES / (row_bytes ? row_bytes : 1));
	if (panel < 4)
		panel = 4;
	panel &= ~3;
	/* at least one pass, so that empty rows still write their zero results */
	for (int64_t c0 = 0; c0 < nu || c0 == 0; c0 += PREP_GROUPS * 4) {
		int64_t cu = nu - c0 < PREP_GROUPS * 4 ? nu - c0 : PREP_GROUPS * 4;
		size_t aoff = (size_t)(c0 >> f->ushift) * f->bytes;
		size_t woff = (size_t)(c0 / wunits) * wbytes;
		for (int r0 = 0; r0 < nrows; r0 += panel) {
			int r1 = r0 + panel < nrows ? r0 + panel : nrows;
			for (int t = 0; t < ntok; t += GEMM_T) {
				int T = ntok - t < GEMM_T ? ntok - t : GEMM_T;
				const struct act_group *g[GEMM_T];
				prep_tokens((const uint8_t *)act + (size_t)t * act_stride + aoff,
					    act_stride, T, f, cu, g);
				prefetch_on = PF_Q8X || t == 0;
				for (int r = r0; r < r1; r += 4) {
					int R = r1 - r < 4 ? r1 - r : 4;
					tile(R, T, cu,
					     (const uint8_t *)w + (size_t)r * row_bytes + woff,
					     row_bytes, g, out + (size_t)t * out_stride + r,
					     out_stride, c0 > 0);
				}
			}
		}
	}
}

/* Activation formats; the shift pays back weight offsets of 2^shift. */
static const struct act_fmt fmt_q4_0 = { sizeof(struct block_q8_0), 2, 0, 3, 0 };
static const struct act_fmt fmt_q8_0 = { sizeof(struct block_q8_0), 2, 0, 7, 0 };
static const struct act_fmt fmt_q5_0 = { sizeof(struct block_q8_0), 2, 0, 4, 0 };
static const struct act_fmt fmt_q8_1 = { sizeof(struct block_q8_1), 4, 0, 0, 0 };
static const struct act_fmt fmt_q8_K = { sizeof(struct block_q8_K), 4, 3, 7, 0 };
static const struct act_fmt fmt_q8_K_sums = { sizeof(struct block_q8_K), 4, 3, 0, 1 };
static const struct act_fmt fmt_q8_K_q6 = { sizeof(struct block_q8_K), 4, 3, 5, 0 }; /* strips */

/* Halves of 4 blocks (`stride` bytes apart, m present) spread over their
 * lanes.  Built in registers: a store-then-reload through a small array
 * would stall on store forwarding in the hot loop. */
QUANT_INLINE __m512 wscale4(const uint8_t *p, size_t stride, int m)
{
	uint16_t h0 = 0, h1 = 0, h2 = 0, h3 = 0;
	memcpy(&h0, p, 2);
	if (m > 1)
		memcpy(&h1, p + stride, 2);
	if (m > 2)
		memcpy(&h2, p + 2 * stride, 2);
	if (m > 3)
		memcpy(&h3, p + 3 * stride, 2);
	__m128i v = _mm_cvtsi32_si128((int)(h0 | (uint32_t)h1 << 16));
	v = _mm_insert_epi32(v, (int)(h2 | (uint32_t)h3 << 16), 1);
	return spread4(_mm_cvtph_ps(v));
}

/* 16 quant bytes of each of 4 blocks (at p + off + k * stride) side by side. */
QUANT_INLINE __m512i gather16x4(const uint8_t *p, size_t off, size_t stride, int m)
{
	if (m == 4)
		return _mm512_inserti32x4(
			_mm512_inserti32x4(
				_mm512_inserti32x4(
					_mm512_castsi128_si512(
						_mm_loadu_si128((const __m128i *)(p + off))),
					_mm_loadu_si128((const __m128i *)(p + off + stride)), 1),
				_mm_loadu_si128((const __m128i *)(p + off + 2 * stride)), 2),
			_mm_loadu_si128((const __m128i *)(p + off + 3 * stride)), 3);
	uint8_t tmp[64] = { 0 };
	for (int b = 0; b < m; b++)
		memcpy(tmp + 16 * b, p + off + b * stride, 16);
	return _mm512_loadu_si512(tmp);
}

/* Q5 high bits of 4 blocks as two 64-bit lane masks: lo elements, hi elements. */
QUANT_INLINE void q5_masks(const uint8_t *p, size_t off, size_t stride, int m, __mmask64 *ml,
			   __mmask64 *mh)
{
	uint32_t q0 = 0, q1 = 0, q2 = 0, q3 = 0;
	memcpy(&q0, p + off, 4);
	if (m > 1)
		memcpy(&q1, p + off + stride, 4);
	if (m > 2)
		memcpy(&q2, p + off + 2 * stride, 4);
	if (m > 3)
		memcpy(&q3, p + off + 3 * stride, 4);
	__m128i v = _mm_setr_epi32((int)q0, (int)q1, (int)q2, (int)q3);
	/* low 16 bits of each block's word, then the high 16 bits */
	v = _mm_shuffle_epi8(v,
			     _mm_setr_epi8(0, 1, 4, 5, 8, 9, 12, 13, 2, 3, 6, 7, 10, 11, 14, 15));
	uint64_t l = (uint64_t)_mm_cvtsi128_si64(v), h = (uint64_t)_mm_extract_epi64(v, 1);
	*ml = (__mmask64)l;
	*mh = (__mmask64)h;
}

static const uint16_t q4_0_d_idx[32]
	__attribute__((aligned(64))) = { 0, 0, 0, 0, 9, 9, 9, 9, 18, 18, 18, 18, 27, 27, 27, 27 };
static const uint16_t q8_0_lo_idx[32] __attribute__((aligned(64))) = {
	/* A at byte 0 (words 0..31), B at byte 64 (words 32..63) */
	1,  2,  3,  4,  5,  6,  7,  8,  18, 19, 20, 21, 22, 23, 24, 25,
	35, 36, 37, 38, 39, 40, 41, 42, 52, 53, 54, 55, 56, 57, 58, 59
};
static const uint16_t q8_0_hi_idx[32] __attribute__((aligned(64))) = {
	/* A at byte 8 (words 4..35), B at byte 72 (words 36..67) */
	5,  6,  7,  8,  9,  10, 11, 12, 22, 23, 24, 25, 26, 27, 28, 29,
	39, 40, 41, 42, 43, 44, 45, 46, 56, 57, 58, 59, 60, 61, 62, 63
};
static const uint16_t q8_0_d_idx[32] __attribute__((
	aligned(64))) = { 0, 0, 0, 0, 17, 17, 17, 17, 34, 34, 34, 34, 51, 51, 51, 51 };

/*
 * Weight loaders for 4 blocks at p (m of them present): unsigned quants in
 * the act_group lane layout (lo: elements 0..15, hi: 16..31 of each block),
 * per-lane scale wd and, for the types with a min, per-lane min wm.
 */
/* The nibbles of 4 blocks laid out as Q4_0 (d, then 16 bytes; 18 bytes a
 * block: Q4_0, IQ4_NL) and their scales. */
QUANT_INLINE __m512i nibbles18x4(const uint8_t *p, int m, __m512 *wd)
{
	if (m == 4) /* the four scales sit at words 0, 9, 18 and 27 of the group */
		*wd = _mm512_cvtph_ps(_mm512_castsi512_si256(_mm512_permutexvar_epi16(
			_mm512_load_si512(q4_0_d_idx), _mm512_loadu_si512(p))));
	else
		*wd = wscale4(p, 18, m);
	return gather16x4(p, 2, 18, m);
}

QUANT_INLINE void load_q4_0(const uint8_t *p, int64_t i, int m, __m512i *lo, __m512i *hi,
			    __m512 *wd, __m512 *wm)
{
	const __m512i mask = _mm512_set1_epi8(0x0F);
	__m512i q = nibbles18x4(p, m, wd);
	*lo = _mm512_and_si512(q, mask);
	*hi = _mm512_and_si512(_mm512_srli_epi16(q, 4), mask);
	(void)wm;
}

/*
 * Table types (IQ4_NL, IQ4_XS, MXFP4): each nibble looks up its int8 value
 * plus 128 (unsigned for vpdpbusd; the activation sums pay the 128 back,
 * shift 7), the table repeated in every 128-bit lane for vpshufb.
 */
QUANT_INLINE __m512i lut_u8(const int8_t values[16])
{
	__m128i v = _mm_loadu_si128((const __m128i *)values);
	return _mm512_broadcast_i32x4(_mm_xor_si128(v, _mm_set1_epi8((char)0x80)));
}

QUANT_INLINE void lut_nibbles(__m512i q, const int8_t values[16], __m512i *lo, __m512i *hi)
{
	const __m512i mask = _mm512_set1_epi8(0x0F), lut = lut_u8(values);
	*lo = _mm512_shuffle_epi8(lut, _mm512_and_si512(q, mask));
	*hi = _mm512_shuffle_epi8(lut, _mm512_and_si512(_mm512_srli_epi16(q, 4), mask));
}

QUANT_INLINE void load_iq4_nl(const uint8_t *p, int64_t i, int m, __m512i *lo, __m512i *hi,
			      __m512 *wd, __m512 *wm)
{
	lut_nibbles(nibbles18x4(p, m, wd), quant_iq4nl_values, lo, hi);
	(void)wm;
}

/* Half scales of four MXFP4 blocks (the table holds doubled values) from
 * the E8M0 exponents: (e - 1) << 23, or a subnormal for e < 2, NaN for
 * 0xFF (see quant_e8m0_half). */
QUANT_INLINE __m512 e8m0x4(__m128i e)
{
	__m128i bits = _mm_slli_epi32(_mm_sub_epi32(e, _mm_set1_epi32(1)), 23);
	bits = _mm_blendv_epi8(bits, _mm_sllv_epi32(_mm_set1_epi32(0x00200000), e),
			       _mm_cmplt_epi32(e, _mm_set1_epi32(2)));
	bits = _mm_blendv_epi8(bits, _mm_set1_epi32(0x7fc00000),
			       _mm_cmpeq_epi32(e, _mm_set1_epi32(0xFF)));
	return spread4(_mm_castsi128_ps(bits));
}

/* MXFP4: 17-byte blocks, the E8M0 scale byte first. */
QUANT_INLINE void load_mxfp4(const uint8_t *p, int64_t i, int m, __m512i *lo, __m512i *hi,
			     __m512 *wd, __m512 *wm)
{
	int e1 = m > 1 ? p[17] : 0, e2 = m > 2 ? p[34] : 0, e3 = m > 3 ? p[51] : 0;
	*wd = e8m0x4(_mm_setr_epi32(p[0], e1, e2, e3));
	lut_nibbles(gather16x4(p, 1, 17, m), quant_mxfp4_values2, lo, hi);
	(void)wm;
}

/* MXFP4 repacked at load: 64 nibble bytes, then the four scale bytes. */
QUANT_INLINE void load_mxfp4r(const uint8_t *p, int64_t i, int m, __m512i *lo, __m512i *hi,
			      __m512 *wd, __m512 *wm)
{
	int e;
	memcpy(&e, p + 64, 4);
	*wd = e8m0x4(_mm_cvtepu8_epi32(_mm_cvtsi32_si128(e)));
	lut_nibbles(_mm512_loadu_si512(p), quant_mxfp4_values2, lo, hi);
	(void)m;
	(void)wm;
}

/* Q8_0 is biased to unsigned by an xor with 0x80. */
QUANT_INLINE void load_q8_0(const uint8_t *p, int64_t i, int m, __m512i *lo, __m512i *hi,
			    __m512 *wd, __m512 *wm)
{
	const __m512i bias = _mm512_set1_epi8((char)0x80);
	__m512i l, h;
	if (m == 4) {
		__m512i a0 = _mm512_loadu_si512(p), a1 = _mm512_loadu_si512(p + 64);
		__m512i b0 = _mm512_loadu_si512(p + 8), b1 = _mm512_loadu_si512(p + 72);
		l = _mm512_permutex2var_epi16(a0, _mm512_load_si512(q8_0_lo_idx), a1);
		h = _mm512_permutex2var_epi16(b0, _mm512_load_si512(q8_0_hi_idx), b1);
		*wd = _mm512_cvtph_ps(_mm512_castsi512_si256(
			_mm512_permutex2var_epi16(a0, _mm512_load_si512(q8_0_d_idx), a1)));
	} else {
		l = gather16x4(p, 2, 34, m);
		h = gather16x4(p, 18, 34, m);
		*wd = wscale4(p, 34, m);
	}
	*lo = _mm512_xor_si512(l, bias);
	*hi = _mm512_xor_si512(h, bias);
	(void)wm;
}

/* Q8_0 repacked at load (quant_repack_rows): lo, hi and the four scales in
 * place; m is always 4 (rows are whole groups). */
static const uint16_t q8_0r_d_idx[16] = { 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3 };
QUANT_INLINE void load_q8_0r(const uint8_t *p, int64_t i, int m, __m512i *lo, __m512i *hi,
			     __m512 *wd, __m512 *wm)
{
	*lo = _mm512_loadu_si512(p);
	*hi = _mm512_loadu_si512(p + 64);
	*wd = _mm512_cvtph_ps(_mm256_permutexvar_epi16(
		_mm256_loadu_si256((const __m256i *)q8_0r_d_idx),
		_mm256_castsi128_si256(_mm_loadl_epi64((const __m128i *)(p + 128)))));
	(void)m;
	(void)wm;
}

/* Q4_0 and IQ4_NL repacked at load: the four blocks' nibbles side by side,
 * then the four scales. */
QUANT_INLINE __m512i nibbles_r4(const uint8_t *p, __m512 *wd)
{
	*wd = _mm512_cvtph_ps(_mm256_permutexvar_epi16(
		_mm256_loadu_si256((const __m256i *)q8_0r_d_idx),
		_mm256_castsi128_si256(_mm_loadl_epi64((const __m128i *)(p + 64)))));
	return _mm512_loadu_si512(p);
}

QUANT_INLINE void load_q4_0r(const uint8_t *p, int64_t i, int m, __m512i *lo, __m512i *hi,
			     __m512 *wd, __m512 *wm)
{
	const __m512i mask = _mm512_set1_epi8(0x0F);
	__m512i q = nibbles_r4(p, wd);
	*lo = _mm512_and_si512(q, mask);
	*hi = _mm512_and_si512(_mm512_srli_epi16(q, 4), mask);
	(void)m;
	(void)wm;
}

QUANT_INLINE void load_iq4_nlr(const uint8_t *p, int64_t i, int m, __m512i *lo, __m512i *hi,
			       __m512 *wd, __m512 *wm)
{
	lut_nibbles(nibbles_r4(p, wd), quant_iq4nl_values, lo, hi);
	(void)m;
	(void)wm;
}

QUANT_INLINE void load_q4_1(const uint8_t *p, int64_t i, int m, __m512i *lo, __m512i *hi,
			    __m512 *wd, __m512 *wm)
{
	const __m512i mask = _mm512_set1_epi8(0x0F);
	__m512i q = gather16x4(p, 4, 20, m);
	*wd = wscale4(p, 20, m);
	*wm = wscale4(p + 2, 20, m);
	*lo = _mm512_and_si512(q, mask);
	*hi = _mm512_and_si512(_mm512_srli_epi16(q, 4), mask);
}

QUANT_INLINE void load_q5_0(const uint8_t *p, int64_t i, int m, __m512i *lo, __m512i *hi,
			    __m512 *wd, __m512 *wm)
{
	const __m512i mask = _mm512_set1_epi8(0x0F), b4 = _mm512_set1_epi8(0x10);
	__m512i q = gather16x4(p, 6, 22, m);
	__mmask64 ml, mh;
	q5_masks(p, 2, 22, m, &ml, &mh);
	*wd = wscale4(p, 22, m);
	*lo = _mm512_mask_blend_epi8(ml, _mm512_and_si512(q, mask),
				     _mm512_or_si512(_mm512_and_si512(q, mask), b4));
	__m512i h = _mm512_and_si512(_mm512_srli_epi16(q, 4), mask);
	*hi = _mm512_mask_blend_epi8(mh, h, _mm512_or_si512(h, b4));
	(void)wm;
}

QUANT_INLINE void load_q5_1(const uint8_t *p, int64_t i, int m, __m512i *lo, __m512i *hi,
			    __m512 *wd, __m512 *wm)
{
	const __m512i mask = _mm512_set1_epi8(0x0F), b4 = _mm512_set1_epi8(0x10);
	__m512i q = gather16x4(p, 8, 24, m);
	__mmask64 ml, mh;
	q5_masks(p, 4, 24, m, &ml, &mh);
	*wd = wscale4(p, 24, m);
	*wm = wscale4(p + 2, 24, m);
	__m512i l = _mm512_and_si512(q, mask);
	__m512i h = _mm512_and_si512(_mm512_srli_epi16(q, 4), mask);
	*lo = _mm512_mask_blend_epi8(ml, l, _mm512_or_si512(l, b4));
	*hi = _mm512_mask_blend_epi8(mh, h, _mm512_or_si512(h, b4));
}

/* Group i of each of T tokens meets R rows already decoded (lo, hi, wd, wm):
 * token-outer, so that each activation vector is loaded once per group. */
QUANT_INLINE void group_mac(int R, int T, const struct act_group *const *g, int64_t i,
			    const __m512i *lo, const __m512i *hi, const __m512 *wd,
			    const __m512 *wm, int has_min, __m512 (*acc)[4])
{
	QUANT_UNROLL for (int t = 0; t < T; t++)
	{
		const struct act_group *gt = g[t] + i;
		__m512i an = _mm512_load_si512(gt->nsum);
		__m512i al = _mm512_load_si512(gt->lo);
		__m512i ah = _mm512_load_si512(gt->hi);
		__m512 ad = _mm512_load_ps(gt->d);
		QUANT_UNROLL for (int r = 0; r < R; r++)
		{
			__m512i s = dpbusd(dpbusd(an, lo[r], al), hi[r], ah);
			acc[r][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_mul_ps(wd[r], ad),
						    acc[r][t]);
			if (has_min)
				acc[r][t] =
					_mm512_fmadd_ps(wm[r], _mm512_load_ps(gt->s4), acc[r][t]);
		}
	}
}

/* out[t * os + r] = (add ? out : 0) + the row's sum. */
QUANT_INLINE void group_out(int R, int T, __m512 (*acc)[4], float *out, size_t os, int add)
{
	QUANT_UNROLL for (int r = 0; r < R; r++) QUANT_UNROLL for (int t = 0; t < T; t++)
	{
		float v = hsum(acc[r][t]);
		out[t * os + r] = add ? out[t * os + r] + v : v;
	}
}

/* R x T tile over prepared groups.
 * Per group of four blocks the R rows are decoded into registers first
 * (3R vectors), then each token's activation vectors are loaded once and
 * meet every row: 16 accumulators + 12 weight + 4 activation vectors.  The
 * row-outer order it replaced loaded each activation vector R times, and
 * with 4 loads per (row, token) the tile waited on the load ports (one core,
 * gemm of 64 tokens: Q8_0 238 -> 278, Q4_0 337 -> 361 GOP/s). */
#define Q8X_TILE(NAME, LOADER, BSIZE, HAS_MIN)                                                     \
	QUANT_INLINE void NAME(int R, int T, int64_t nb, const uint8_t *w, size_t wstride,         \
			       const struct act_group *const *g, float *out, size_t os, int add)   \
	{                                                                                          \
		__m512 acc[4][4];                                                                  \
		QUANT_UNROLL for (int r = 0; r < R; r++) QUANT_UNROLL for (int t = 0; t < T; t++)  \
			acc[r][t] = _mm512_setzero_ps();                                           \
		int64_t ng = (nb + 3) / 4;                                                         \
		for (int64_t i = 0; i < ng; i++) {                                                 \
			int m = (i * 4 + 4 <= nb) ? 4 : (int)(nb - i * 4);                         \
			__m512i lo[4], hi[4];                                                      \
			__m512 wd[4], wm[4];                                                       \
			QUANT_UNROLL for (int r = 0; r < R; r++)                                   \
			{                                                                          \
				const uint8_t *p = w + r * wstride + i * 4 * (BSIZE);              \
				wm[r] = _mm512_setzero_ps();                                       \
				prefetch_span(p, 4 * (BSIZE), (nb - i * 4) * (BSIZE),              \
					      nb * (BSIZE), 4 * (int64_t)wstride);                 \
				LOADER(p, i, m, &lo[r], &hi[r], &wd[r], &wm[r]);                   \
			}                                                                          \
			group_mac(R, T, g, i, lo, hi, wd, wm, HAS_MIN, acc);                       \
		}                                                                                  \
		group_out(R, T, acc, out, os, add);                                                \
	}

/* dot, gemv and gemm of TYPE from tile_TYPE over activations prepared in
 * format FMT; weight blocks of WUNITS units of 32 in WBYTES. */
#define Q8X_ENTRIES(TYPE, WUNITS, WBYTES, FMT)                                                     \
	static void qt_##TYPE(int R, int T, int64_t nu, const uint8_t *w, size_t ws,               \
			      const struct act_group *const *g, float *out, size_t os, int add)    \
	{                                                                                          \
		QUANT_DISPATCH_RT(tile_##TYPE, nu, w, ws, g, out, os, add)                         \
	}                                                                                          \
	static void gemm_##TYPE(int64_t n, const void *w, size_t rb, int nrows, const void *act,   \
				size_t as, int ntok, float *out, size_t os)                        \
	{                                                                                          \
		q8x_gemm(qt_##TYPE, WUNITS, WBYTES, &FMT, n, w, rb, nrows, act, as, ntok, out,     \
			 os);                                                                      \
	}                                                                                          \
	static void gemv_##TYPE(int64_t n, const void *w, size_t rb, int nrows, const void *act,   \
				float *out)                                                        \
	{                                                                                          \
		gemm_##TYPE(n, w, rb, nrows, act, 0, 1, out, 1);                                   \
	}                                                                                          \
	static float dot_##TYPE(int64_t n, const void *w, const void *act)                         \
	{                                                                                          \
		float r;                                                                           \
		gemv_##TYPE(n, w, 0, 1, act, &r);                                                  \
		return r;                                                                          \
	}

/* The tile of TYPE (LOADER: four blocks' lanes, see above) and its entries. */
#define Q8X_KERNEL(TYPE, LOADER, WUNITS, WBYTES, FMT, HAS_MIN)                                     \
	Q8X_TILE(tile_##TYPE, LOADER, (WBYTES) / (WUNITS), HAS_MIN)                                \
	Q8X_ENTRIES(TYPE, WUNITS, WBYTES, FMT)

Q8X_KERNEL(q4_0, load_q4_0, 1, 18, fmt_q4_0, 0)
Q8X_KERNEL(q8_0, load_q8_0, 1, 34, fmt_q8_0, 0)
Q8X_KERNEL(q8_0r, load_q8_0r, 1, 34, fmt_q8_0, 0) /* repacked: same activations */
Q8X_KERNEL(q4_0r, load_q4_0r, 1, 18, fmt_q4_0, 0)
Q8X_KERNEL(q5_0, load_q5_0, 1, 22, fmt_q5_0, 0)
Q8X_KERNEL(q4_1, load_q4_1, 1, 20, fmt_q8_1, 1)
Q8X_KERNEL(q5_1, load_q5_1, 1, 24, fmt_q8_1, 1)
Q8X_KERNEL(iq4_nl, load_iq4_nl, 1, 18, fmt_q8_0, 0)
Q8X_KERNEL(iq4_nlr, load_iq4_nlr, 1, 18, fmt_q8_0, 0)
Q8X_KERNEL(mxfp4, load_mxfp4, 1, 17, fmt_q8_0, 0)
Q8X_KERNEL(mxfp4r, load_mxfp4r, 1, 17, fmt_q8_0, 0)

/*
 * IQ4_XS: a whole 136-byte block a step (two groups: sub-blocks 0..3 and
 * 4..7, each one's 64 nibble bytes contiguous and already in the lane
 * layout, as four Q4_0 blocks), so that its 8 scales are decoded once: the
 * block's first 8 bytes are d, scales_h and scales_l, and two bit deposits
 * put each sub-block's 6-bit scale in a byte (low nibble from scales_l, the
 * high bit pair from scales_h).  Decoding them per group, as a loader of
 * the tile above would, cost a fifth more per byte in decode.
 */
QUANT_INLINE __m256 iq4_xs_scales(const uint8_t *x)
{
	uint64_t h;
	memcpy(&h, x, 8);
	uint64_t ls = _pdep_u64(h >> 32, 0x0F0F0F0F0F0F0F0Full) |
		      _pdep_u64((h >> 16) & 0xFFFF, 0x3030303030303030ull);
	__m256i v = _mm256_sub_epi32(_mm256_cvtepu8_epi32(_mm_cvtsi64_si128((long long)ls)),
				     _mm256_set1_epi32(32));
	return _mm256_mul_ps(_mm256_cvtepi32_ps(v), _mm256_set1_ps(_cvtsh_ss((uint16_t)h)));
}

static const int32_t iq4_xs_half_idx[2][16] __attribute__((aligned(64))) = {
	{ 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3 },
	{ 4, 4, 4, 4, 5, 5, 5, 5, 6, 6, 6, 6, 7, 7, 7, 7 },
};

QUANT_INLINE void tile_iq4_xs(int R, int T, int64_t nu, const uint8_t *w, size_t ws,
			      const struct act_group *const *g, float *out, size_t os, int add)
{
	const int bs = sizeof(struct block_iq4_xs);
	__m512 acc[4][4];
	QUANT_UNROLL for (int r = 0; r < R; r++) QUANT_UNROLL for (int t = 0; t < T; t++)
		acc[r][t] = _mm512_setzero_ps();
	int64_t nb = nu / 8;
	for (int64_t i = 0; i < nb; i++) {
		__m256 sc[4];
		QUANT_UNROLL for (int r = 0; r < R; r++)
		{
			const uint8_t *x = w + r * ws + i * bs;
			/* plain PF_DIST ahead, as the K-quants: memory-bound gemv on one
			 * core 18.7-19.2 GB/s with the tile-aware span, 20.0-21.4 with this */
			if (prefetch_on)
				prefetch_plain(x, bs);
			sc[r] = iq4_xs_scales(x);
		}
		QUANT_UNROLL for (int h = 0; h < 2; h++)
		{
			__m512i lo[4], hi[4];
			__m512 wd[4];
			QUANT_UNROLL for (int r = 0; r < R; r++)
			{
				const struct block_iq4_xs *x =
					(const struct block_iq4_xs *)(w + r * ws) + i;
				lut_nibbles(_mm512_loadu_si512(x->qs + 64 * h), quant_iq4nl_values,
					    &lo[r], &hi[r]);
				wd[r] = _mm512_permutexvar_ps(_mm512_load_si512(iq4_xs_half_idx[h]),
							      _mm512_castps256_ps512(sc[r]));
			}
			group_mac(R, T, g, 2 * i + h, lo, hi, wd, wd, 0, acc);
		}
	}
	group_out(R, T, acc, out, os, add);
}

Q8X_ENTRIES(iq4_xs, 8, 136, fmt_q8_K)

/* ---- Q8_K activations: K-quants ---------------------------------------------------- */

/* Q4_K / Q5_K: 8 sub-block scales in lanes 0..7 and mins in lanes 8..15 (int32). */
QUANT_INLINE __m512i q4k_scales(const uint8_t *s)
{
	uint32_t u[4];
	quant_k4_scales_u32(s, u);
	/* from registers: reloading u as one vector would stall on store forwarding */
	return _mm512_cvtepu8_epi32(_mm_setr_epi32((int)u[0], (int)u[1], (int)u[2], (int)u[3]));
}

/* Q3_K: 16 six-bit scales (biased by 32) as int32 lanes. */
QUANT_INLINE __m512i q3k_scales(const uint8_t *s)
{
	uint32_t a[3], u[4];
	memcpy(a, s, 12);
	/* see quant_k3_scales: low nibbles in bytes 0..7, high 2 bits in bytes 8..11 */
	u[0] = (a[0] & 0x0f0f0f0f) | (((a[2] >> 0) & 0x03030303) << 4);
	u[1] = (a[1] & 0x0f0f0f0f) | (((a[2] >> 2) & 0x03030303) << 4);
	u[2] = ((a[0] >> 4) & 0x0f0f0f0f) | (((a[2] >> 4) & 0x03030303) << 4);
	u[3] = ((a[1] >> 4) & 0x0f0f0f0f) | (((a[2] >> 6) & 0x03030303) << 4);
	return _mm512_sub_epi32(
		_mm512_cvtepu8_epi32(_mm_setr_epi32((int)u[0], (int)u[1], (int)u[2], (int)u[3])),
		_mm512_set1_epi32(32));
}

/* lane i <- scale of elements 64c + 4i .. +3, for 16-element sub-blocks */
static const int32_t k16_idx[4][16] __attribute__((aligned(64))) = {
	{ 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3 },
	{ 4, 4, 4, 4, 5, 5, 5, 5, 6, 6, 6, 6, 7, 7, 7, 7 },
	{ 8, 8, 8, 8, 9, 9, 9, 9, 10, 10, 10, 10, 11, 11, 11, 11 },
	{ 12, 12, 12, 12, 13, 13, 13, 13, 14, 14, 14, 14, 15, 15, 15, 15 },
};
/* Q4_K / Q5_K lane order: lo(x0) = [sub0 | sub2], hi(x0) = [sub1 | sub3], ... */
static const int32_t k32_idx[4][16] __attribute__((aligned(64))) = {
	{ 0, 0, 0, 0, 0, 0, 0, 0, 2, 2, 2, 2, 2, 2, 2, 2 },
	{ 1, 1, 1, 1, 1, 1, 1, 1, 3, 3, 3, 3, 3, 3, 3, 3 },
	{ 4, 4, 4, 4, 4, 4, 4, 4, 6, 6, 6, 6, 6, 6, 6, 6 },
	{ 5, 5, 5, 5, 5, 5, 5, 5, 7, 7, 7, 7, 7, 7, 7, 7 },
};

/* Per-lane int16 scale pairs for vpdpwssd: lane i of s[c] holds scale
 * sc32[idx[c][i]] in both of its words. */
QUANT_INLINE void kscales16(__m512i sc32, const int32_t idx[4][16], __m512i s[4])
{
	__m512i pair = _mm512_or_si512(_mm512_and_si512(sc32, _mm512_set1_epi32(0xFFFF)),
				       _mm512_slli_epi32(sc32, 16));
	QUANT_UNROLL for (int c = 0; c < 4; c++) s[c] =
		_mm512_permutexvar_epi32(_mm512_load_si512(idx[c]), pair);
}

/* Decoded weight block: 4 x 64 unsigned quants, scales per dpbusd lane, and
 * the terms that go with the activation block sums. */
struct kblock {
	__m512i q[4];  /* quants, lane order matching kact.y */
	__m512i s[4];  /* scale per lane of each q, as the same int16 in both words */
	__m512i sb;    /* int32 multiplier of the activation sums vector (per lane) */
	float d, dmin; /* d: of sum(s * dot); dmin: of sum(sb * sums), subtracted */
};

/* Activation block for a K tile: 4 x 64 bytes and a 16-lane sums vector. */
struct kact {
	__m512i y[4];
	__m512i sums; /* bsums (Q6_K, Q3_K, Q2_K) or 16-pair sums in lanes 8..15 (Q4_K, Q5_K) */
	float d;
};

/* Q4_K and Q5_K read their activations as [0..31, 64..95], [32..63, 96..127], ... */
QUANT_INLINE void kact_split(const void *p, struct kact *a)
{
	const struct block_q8_K *b = p;
	const int8_t *q = b->qs;
#define Y2(o1, o2)                                                                                 \
	_mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(q + o1))),  \
			   _mm256_loadu_si256((const __m256i *)(q + o2)), 1)
	a->y[0] = Y2(0, 64);
	a->y[1] = Y2(32, 96);
	a->y[2] = Y2(128, 192);
	a->y[3] = Y2(160, 224);
#undef Y2
	__m256i bs = _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)b->bsums),
				       _mm256_set1_epi16(1));
	a->sums = _mm512_inserti64x4(_mm512_setzero_si512(), bs, 1);
	a->d = b->d;
}

QUANT_INLINE void kact_natural(const void *p, struct kact *a)
{
	const struct block_q8_K *b = p;
	for (int c = 0; c < 4; c++)
		a->y[c] = _mm512_loadu_si512(b->qs + 64 * c);
	a->sums = _mm512_cvtepi16_epi32(_mm256_loadu_si256((const __m256i *)b->bsums));
	a->d = b->d;
}

QUANT_INLINE void kdec_q4_K(const void *p, struct kblock *k)
{
	const struct block_q4_K *x = p;
	const __m512i mask = _mm512_set1_epi8(0x0F);
	__m512i x0 = _mm512_loadu_si512(x->qs), x1 = _mm512_loadu_si512(x->qs + 64);
	k->q[0] = _mm512_and_si512(x0, mask);
	k->q[1] = _mm512_and_si512(_mm512_srli_epi16(x0, 4), mask);
	k->q[2] = _mm512_and_si512(x1, mask);
	k->q[3] = _mm512_and_si512(_mm512_srli_epi16(x1, 4), mask);
	__m512i sm = q4k_scales(x->scales);
	kscales16(sm, k32_idx, k->s);
	k->sb = sm; /* lanes 8..15: mins, against pair sums in lanes 8..15 */
	k->d = _cvtsh_ss(x->d);
	k->dmin = _cvtsh_ss(x->dmin);
}

QUANT_INLINE void kdec_q5_K(const void *p, struct kblock *k)
{
	const struct block_q5_K *x = p;
	const __m512i mask = _mm512_set1_epi8(0x0F);
	__m512i x0 = _mm512_loadu_si512(x->qs), x1 = _mm512_loadu_si512(x->qs + 64);
	__m256i H = _mm256_loadu_si256((const __m256i *)x->qh);
	/* lower half pairs with bits 0/1 (4/5), upper half with bits 2/3 (6/7) */
	__m512i h = _mm512_inserti64x4(_mm512_castsi256_si512(H), _mm256_srli_epi16(H, 2), 1);
	const __m512i b0 = _mm512_set1_epi8(0x01), b1 = _mm512_set1_epi8(0x02);
	const __m512i b4 = _mm512_set1_epi8(0x10), b5 = _mm512_set1_epi8(0x20);
	k->q[0] = _mm512_or_si512(_mm512_and_si512(x0, mask),
				  _mm512_slli_epi16(_mm512_and_si512(h, b0), 4));
	k->q[1] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(x0, 4), mask),
				  _mm512_slli_epi16(_mm512_and_si512(h, b1), 3));
	k->q[2] = _mm512_or_si512(_mm512_and_si512(x1, mask), _mm512_and_si512(h, b4));
	k->q[3] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(x1, 4), mask),
				  _mm512_srli_epi16(_mm512_and_si512(h, b5), 1));
	__m512i sm = q4k_scales(x->scales);
	kscales16(sm, k32_idx, k->s);
	k->sb = sm;
	k->d = _cvtsh_ss(x->d);
	k->dmin = _cvtsh_ss(x->dmin);
}

QUANT_INLINE void kdec_q6_K(const void *p, struct kblock *k)
{
	const struct block_q6_K *x = p;
	const __m512i m4 = _mm512_set1_epi8(0x0F), m2 = _mm512_set1_epi8(0x30);
	QUANT_UNROLL for (int c = 0; c < 2; c++)
	{
		__m512i A = _mm512_loadu_si512(x->ql + 64 * c);
		__m256i H = _mm256_loadu_si256((const __m256i *)(x->qh + 32 * c));
		__m512i h =
			_mm512_inserti64x4(_mm512_castsi256_si512(H), _mm256_srli_epi16(H, 2), 1);
		k->q[2 * c] = _mm512_or_si512(_mm512_and_si512(A, m4),
					      _mm512_and_si512(_mm512_slli_epi16(h, 4), m2));
		k->q[2 * c + 1] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(A, 4), m4),
						  _mm512_and_si512(h, m2));
	}
	__m512i sc = _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)x->scales));
	kscales16(sc, k16_idx, k->s);
	k->sb = _mm512_slli_epi32(sc, 5); /* quants carry an offset of 32 */
	k->d = k->dmin = _cvtsh_ss(x->d);
}

QUANT_INLINE void kdec_q3_K(const void *p, struct kblock *k)
{
	const struct block_q3_K *x = p;
	const __m512i m3 = _mm512_set1_epi8(3), m1 = _mm512_set1_epi8(1);
	__m256i HM = _mm256_loadu_si256((const __m256i *)x->hmask);
	QUANT_UNROLL for (int c = 0; c < 4; c++)
	{
		/* elements 64c .. 64c+63: 2-bit planes 2(c%2), 2(c%2)+1 of qs half c/2,
		 * high bits from hmask bits 2c and 2c+1 */
		__m256i Q = _mm256_loadu_si256((const __m256i *)(x->qs + 32 * (c / 2)));
		__m128i s0 = _mm_cvtsi32_si128(4 * (c % 2)),
			s1 = _mm_cvtsi32_si128(4 * (c % 2) + 2);
		__m128i h0 = _mm_cvtsi32_si128(2 * c), h1 = _mm_cvtsi32_si128(2 * c + 1);
		__m512i q = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_srl_epi16(Q, s0)),
					       _mm256_srl_epi16(Q, s1), 1);
		__m512i h = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_srl_epi16(HM, h0)),
					       _mm256_srl_epi16(HM, h1), 1);
		k->q[c] = _mm512_or_si512(_mm512_and_si512(q, m3),
					  _mm512_slli_epi16(_mm512_and_si512(h, m1), 2));
	}
	__m512i sc = q3k_scales(x->scales);
	kscales16(sc, k16_idx, k->s);
	k->sb = _mm512_slli_epi32(sc, 2); /* quants 0..7 carry an offset of 4 */
	k->d = k->dmin = _cvtsh_ss(x->d);
}

QUANT_INLINE void kdec_q2_K(const void *p, struct kblock *k)
{
	const struct block_q2_K *x = p;
	const __m512i m3 = _mm512_set1_epi8(3);
	QUANT_UNROLL for (int n = 0; n < 2; n++)
	{
		__m256i Q = _mm256_loadu_si256((const __m256i *)(x->qs + 32 * n));
		__m512i z =
			_mm512_inserti64x4(_mm512_castsi256_si512(Q), _mm256_srli_epi16(Q, 2), 1);
		k->q[2 * n] = _mm512_and_si512(z, m3);
		k->q[2 * n + 1] = _mm512_and_si512(_mm512_srli_epi16(z, 4), m3);
	}
	__m512i sm = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)x->scales));
	__m512i sc = _mm512_and_si512(sm, _mm512_set1_epi32(0xF));
	kscales16(sc, k16_idx, k->s);
	k->sb = _mm512_srli_epi32(sm, 4);
	k->d = _cvtsh_ss(x->d);
	k->dmin = _cvtsh_ss(x->dmin);
}

/* One weight block meets one activation block: u8 x s8 pairs (no
 * saturation: |q| <= 63), times the scale pairs into int32; the sums term
 * (offsets, mins) is subtracted at dmin. */
QUANT_INLINE void kmac(const struct kblock *kb, const struct kact *ya, __m512 *acc)
{
	__m512i p = _mm512_setzero_si512();
	QUANT_UNROLL for (int c = 0; c < 4; c++) p =
		_mm512_dpwssd_epi32(p, _mm512_maddubs_epi16(kb->q[c], ya->y[c]), kb->s[c]);
	__m512i mn = _mm512_mullo_epi32(kb->sb, ya->sums);
	*acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), _mm512_set1_ps(kb->d * ya->d), *acc);
	*acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(mn), _mm512_set1_ps(-kb->dmin * ya->d), *acc);
}

#define PF_K(x, i, bytes) prefetch_plain(x, bytes)
/* R x T tile for one K-quant type: DEC decodes a weight block, ACT loads an
 * activation block in the matching order. */
#define K_KERNEL(TYPE, ACT)                                                                        \
	QUANT_BLOCK_TILE(tile_##TYPE, __m512, _mm512_setzero_ps, hsum,                             \
			 sizeof(struct block_##TYPE), struct kblock, kdec_##TYPE, PF_K,            \
			 sizeof(struct block_q8_K), struct kact, ACT, kmac)                        \
	QUANT_KERNEL(TYPE, QK_K, RUN_PANELS, 1)

K_KERNEL(q2_K, kact_natural)
K_KERNEL(q3_K, kact_natural)
K_KERNEL(q4_K, kact_split)
K_KERNEL(q5_K, kact_split)
K_KERNEL(q6_K, kact_natural)

#define PANEL_DEC_BYTES (192 * 1024)
static _Thread_local uint8_t panel_buf[PANEL_DEC_BYTES] __attribute__((aligned(64)));

/*
 * Prefill over rows decoded into strips of 16 (the 4-bit types, Q6_K, Q8_0).  The
 * group tile above meets four rows with one token per pair of vpdpbusd and
 * pays a float epilogue (convert, scale, FMA) per pair; here a strip holds,
 * per 32-element unit, eight 64-byte vectors of four consecutive elements
 * of its 16 rows (row r in bytes 4r..4r+3, unsigned), then the rows' float
 * scales and (Q4_K) negated mins or (Q6_K) the second 16s scales.  One
 * vpdpbusd meets the 16 rows with four activation bytes of one token,
 * broadcast; a unit is eight of them (Q6_K: two epilogues of four) into an
 * int32 vector per (strip, token), so the epilogue comes once per eight,
 * and a strip's results are 16 consecutive outputs of a token, stored
 * without horizontal sums.  Rows are decoded per chunk of S16_KC units into
 * panel_buf and every token tile passes over them; the activations' scales
 * and sums are prepared once per chunk for up to S16_TB tokens.
 */
#define S16_KC 32  /* units of 32 per K chunk: whole weight blocks of every type */
#define S16_TB 256 /* tokens whose activation scalars are prepared at once */
#define S16_T 6    /* tokens per tile */
/* Fewer tokens keep the type's own gemm, which decodes in registers: the
 * strips pay for their decoding from 5 tokens on for the K types, from 20
 * on for the types whose own tile is cheap to feed (one core, 2048 x 2048:
 * Q4_K 4 tokens 172 -> 182 GOP/s, 5 tokens 165 -> 215; Q6_K 4 tokens
 * 177 -> 150, 5 tokens 164 -> 177; Q4_0 16 tokens 355 -> 352, 20 tokens
 * 276 -> 323, 64 tokens 267 -> 486). */
#define S16_MIN_TOK_K 5
#define S16_MIN_TOK 20
#define S16_Q 512 /* quant bytes of a strip's unit */

struct s16_prep {
	float d[S16_TB][S16_KC];      /* scale of (token, unit) */
	float s[S16_TB][S16_KC];      /* d x the sum of the unit's quants (for mins) */
	float sp[S16_TB][S16_KC];     /* Q8_K: that sum alone (the rescaling tile) */
	float kr[S16_TB][S16_KC / 8]; /* Q8_K: at a block's start, the factor taking
				      * the sums so far to this block's scale */
	float kd[S16_TB];             /* Q8_K: the last block's scale */
	uint8_t exact[S16_TB];        /* Q8_K: scales too far apart to rescale */
	int32_t n[S16_TB][S16_KC];    /* -(that sum << shift): pays back the weight offset
				    * (shift 0: none); halves: of the first 16 */
	int32_t nb[S16_TB][S16_KC];   /* halves: the same for the second 16 */
};
static _Thread_local struct s16_prep s16_prep __attribute__((aligned(64)));

/* What a strip's unit holds after its quants: the rows' scales (ONE),
 * scales and negated mins (MIN), or a scale for each 16 (HALVES, Q6_K). */
enum { S16_ONE, S16_MIN, S16_HALVES };

/* Bytes of a strip's unit. */
QUANT_INLINE size_t s16_unit_bytes(int mode)
{
	return S16_Q + 64 + (mode != S16_ONE ? 64 : 0);
}

/*
 * Row r of a strip sits in lane 4 (r % 4) + r / 4 of its vectors: the
 * order a 4 x 4 transpose of dwords in each 128-bit lane leaves (below), so
 * that sixteen rows are decoded with eight unpacks a vector; the tile puts
 * the results back in row order (s16_lane).  The map is its own inverse.
 */
QUANT_INLINE int s16_lane(int r)
{
	return 4 * (r % 4) + r / 4;
}

/* Lane i of v[k] <- the 16 bytes at p[4k + i] + off. */
QUANT_INLINE void s16_load16(const uint8_t *const *p, size_t off, __m512i v[4])
{
	QUANT_UNROLL for (int k = 0; k < 4; k++)
	{
		__m512i x =
			_mm512_castsi128_si512(_mm_loadu_si128((const __m128i *)(p[4 * k] + off)));
		x = _mm512_inserti32x4(x, _mm_loadu_si128((const __m128i *)(p[4 * k + 1] + off)),
				       1);
		x = _mm512_inserti32x4(x, _mm_loadu_si128((const __m128i *)(p[4 * k + 2] + off)),
				       2);
		v[k] = _mm512_inserti32x4(x, _mm_loadu_si128((const __m128i *)(p[4 * k + 3] + off)),
					  3);
	}
}

/* o[j] <- dword j (0..3) of each row's 16 bytes, rows in lane order. */
QUANT_INLINE void s16_dwords(const __m512i v[4], __m512i o[4])
{
	__m512i t0 = _mm512_unpacklo_epi32(v[0], v[1]), t1 = _mm512_unpacklo_epi32(v[2], v[3]);
	__m512i t2 = _mm512_unpackhi_epi32(v[0], v[1]), t3 = _mm512_unpackhi_epi32(v[2], v[3]);
	o[0] = _mm512_unpacklo_epi64(t0, t1);
	o[1] = _mm512_unpackhi_epi64(t0, t1);
	o[2] = _mm512_unpacklo_epi64(t2, t3);
	o[3] = _mm512_unpackhi_epi64(t2, t3);
}

/* The same into dst + 64 j. */
QUANT_INLINE void s16_transpose(const __m512i v[4], uint8_t *dst)
{
	__m512i o[4];
	s16_dwords(v, o);
	QUANT_UNROLL for (int j = 0; j < 4; j++) _mm512_store_si512(dst + 64 * j, o[j]);
}

/* Zeros for the rows a last strip lacks: quants 0 and scale 0.  A
 * decoder reads up to 128 bytes past a row pointer (IQ4_XS's last
 * sub-block, Q8_0's high halves). */
static const uint8_t s16_zero_row[128] __attribute__((aligned(64)));

/* A unit's quants from 16 nibble bytes a row (element l low, l + 16
 * high), through the IQ4_NL table or not. */
QUANT_INLINE void s16_nibble_unit(const uint8_t *const *p, size_t off, const int8_t *values,
				  uint8_t *dst)
{
	const __m512i mask = _mm512_set1_epi8(0x0F);
	__m512i v[4], lo[4], hi[4];
	s16_load16(p, off, v);
	QUANT_UNROLL for (int k = 0; k < 4; k++)
	{
		lo[k] = _mm512_and_si512(v[k], mask);
		hi[k] = _mm512_and_si512(_mm512_srli_epi16(v[k], 4), mask);
		if (values) {
			lo[k] = _mm512_shuffle_epi8(lut_u8(values), lo[k]);
			hi[k] = _mm512_shuffle_epi8(lut_u8(values), hi[k]);
		}
	}
	s16_transpose(lo, dst);
	s16_transpose(hi, dst + 256);
}

/* A unit's quants from unsigned bytes (elements 0..15 at lo, 16..31 at hi;
 * repacked Q8_0 is already biased by 128). */
QUANT_INLINE void s16_byte_unit(const uint8_t *const *p, size_t lo, size_t hi, uint8_t *dst)
{
	__m512i v[4];
	s16_load16(p, lo, v);
	s16_transpose(v, dst);
	s16_load16(p, hi, v);
	s16_transpose(v, dst + 256);
}

/* Where a strip's 16 rows (rb apart from w, n present) have byte off; the
 * missing rows read s16_zero_row. */
QUANT_INLINE void s16_rows(const uint8_t *w, size_t rb, int n, size_t off, const uint8_t *p[16])
{
	for (int r = 0; r < 16; r++)
		p[r] = r < n ? w + (size_t)r * rb + off : s16_zero_row;
}

/* The next strip's rows (from row r0 + 16 of w, rows in all, len bytes
 * each from off): asked for while this strip is decoded, so that its reads
 * from memory overlap the work (a Q4_K decoder waited on its first load of
 * each block: a quarter of its time in the mixture's prefill). */
QUANT_INLINE void s16_prefetch_next(const uint8_t *w, size_t rb, int rows, int r0, size_t off,
				    size_t len)
{
	for (int r = r0 + 16; r < rows && r < r0 + 32; r++)
		for (size_t o = 0; o < len; o += 64)
			_mm_prefetch((const char *)w + (size_t)r * rb + off + o, _MM_HINT_T0);
}

/*
 * Decoders: the first cu units of rows rows (rb bytes apart, w at a
 * weight block's start) into strips of cu units (ub bytes each) from dst;
 * a last strip's missing rows are zero.
 */
typedef void (*s16_decode_fn)(const uint8_t *w, size_t rb, int rows, int64_t cu, uint8_t *dst,
			      size_t ub);

/*
 * The types repacked at load (quant_repack_rows), groups of four blocks:
 * Q4_0 and IQ4_NL 64 nibble bytes then four half scales (72 bytes), MXFP4
 * 64 nibble bytes then four E8M0 bytes (68), Q8_0 the four blocks' low
 * halves, high halves (biased by 128), then four half scales (136).
 */
enum { S16_Q4_0R, S16_IQ4_NLR, S16_MXFP4R, S16_Q8_0R };

QUANT_INLINE void s16_dec_r4(const uint8_t *w, size_t rb, int rows, int64_t cu, uint8_t *dst,
			     size_t ub, int kind)
{
	const size_t gb = kind == S16_Q8_0R ? 136 : kind == S16_MXFP4R ? 68 : 72;
	const size_t so = kind == S16_Q8_0R ? 128 : 64; /* the scales */
	for (int r0 = 0; r0 < rows; r0 += 16, dst += cu * ub) {
		const uint8_t *p[16];
		int n = rows - r0 < 16 ? rows - r0 : 16;
		s16_prefetch_next(w, rb, rows, r0, 0, (size_t)(cu / 4) * gb);
		for (int64_t u = 0; u < cu; u++) {
			uint8_t *unit = dst + u * ub;
			int b = (int)(u % 4);
			s16_rows(w + (size_t)r0 * rb, rb, n, (size_t)(u / 4) * gb, p);
			if (kind == S16_Q8_0R)
				s16_byte_unit(p, 16 * b, 64 + 16 * b, unit);
			else
				s16_nibble_unit(p, 16 * b,
						kind == S16_Q4_0R    ? NULL
						: kind == S16_MXFP4R ? quant_mxfp4_values2
								     : quant_iq4nl_values,
						unit);
			float d[16];
			for (int r = 0; r < 16; r++) {
				float v = 0;
				if (r < n && kind == S16_MXFP4R) {
					v = quant_e8m0_half(p[r][so + b]);
				} else if (r < n) {
					quant_half h;
					memcpy(&h, p[r] + so + 2 * b, 2);
					v = _cvtsh_ss(h);
				}
				d[s16_lane(r)] = v;
			}
			memcpy(unit + S16_Q, d, sizeof(d));
		}
	}
}

#define S16_DEC_R4(NAME, KIND)                                                                     \
	static void NAME(const uint8_t *w, size_t rb, int rows, int64_t cu, uint8_t *dst,          \
			 size_t ub)                                                                \
	{                                                                                          \
		s16_dec_r4(w, rb, rows, cu, dst, ub, KIND);                                        \
	}
S16_DEC_R4(s16_dec_q4_0r, S16_Q4_0R)
S16_DEC_R4(s16_dec_iq4_nlr, S16_IQ4_NLR)
S16_DEC_R4(s16_dec_mxfp4r, S16_MXFP4R)
S16_DEC_R4(s16_dec_q8_0r, S16_Q8_0R)

/* Where a strip's 16 rows (rb apart from w, n present) have byte off, the
 * missing rows reading the last present one: their lanes are computed but
 * never stored (s16_tile masks the rows past the last). */
QUANT_INLINE void s16_rows_clamped(const uint8_t *w, size_t rb, int n, size_t off,
				   const uint8_t *p[16])
{
	for (int r = 0; r < 16; r++)
		p[r] = w + (size_t)(r < n ? r : n - 1) * rb + off;
}

/* Q4_K: unit j of a block is sub-block j, the low (even j) or high nibbles
 * of 32 bytes; scale d * sc, min -dmin * m.  A row's first 16 bytes (d,
 * dmin, the 12 bytes of 6-bit scales and mins) come in one load per row,
 * so that 16 rows' scalars are unpacked with the quants' dword transpose
 * and no per-row scalar work. */
static void s16_dec_q4_K(const uint8_t *w, size_t rb, int rows, int64_t cu, uint8_t *dst, size_t ub)
{
	const __m512i mask = _mm512_set1_epi8(0x0F), m6 = _mm512_set1_epi8(0x3F),
		      m2 = _mm512_set1_epi8(0x30), ff = _mm512_set1_epi32(0xFF);
	for (int r0 = 0; r0 < rows; r0 += 16, dst += cu * ub) {
		const uint8_t *p[16];
		int n = rows - r0 < 16 ? rows - r0 : 16;
		s16_prefetch_next(w, rb, rows, r0, 0, (size_t)(cu / 8) * sizeof(struct block_q4_K));
		for (int64_t u = 0; u < cu; u += 8) {
			s16_rows_clamped(w + (size_t)r0 * rb, rb, n,
					 (size_t)(u / 8) * sizeof(struct block_q4_K), p);
			/* D[0]: d | dmin << 16; D[1..3]: scales bytes 0..11 */
			__m512i v[4], D[4], sm[4];
			s16_load16(p, 0, v);
			s16_dwords(v, D);
			__m512 xd = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(D[0]));
			__m512 xm = _mm512_sub_ps(_mm512_setzero_ps(),
						  _mm512_cvtph_ps(_mm512_cvtepi32_epi16(
							  _mm512_srli_epi32(D[0], 16))));
			sm[0] = _mm512_and_si512(D[1], m6); /* scales 0..3 */
			sm[1] = _mm512_and_si512(D[2], m6); /* mins 0..3 */
			sm[2] = _mm512_or_si512(_mm512_and_si512(D[3], mask),
						_mm512_and_si512(_mm512_srli_epi32(D[1], 2), m2));
			sm[3] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(D[3], 4), mask),
						_mm512_and_si512(_mm512_srli_epi32(D[2], 2), m2));
			QUANT_UNROLL for (int j = 0; j < 8; j++)
			{
				int k = j < 4 ? 0 : 2, b = j % 4;
				__m512i s8 = _mm512_and_si512(_mm512_srli_epi32(sm[k], 8 * b), ff);
				__m512i m8 =
					_mm512_and_si512(_mm512_srli_epi32(sm[k + 1], 8 * b), ff);
				uint8_t *unit = dst + (u + j) * ub;
				_mm512_store_ps(unit + S16_Q,
						_mm512_mul_ps(_mm512_cvtepi32_ps(s8), xd));
				_mm512_store_ps(unit + S16_Q + 64,
						_mm512_mul_ps(_mm512_cvtepi32_ps(m8), xm));
			}
			for (int c = 0; c < 4; c++) {
				/* 32 bytes: sub-block 2c in the low nibbles, 2c + 1 in the high */
				const size_t qo = offsetof(struct block_q4_K, qs) + 32 * (size_t)c;
				__m512i a[4], b[4], lo[4], hi[4];
				s16_load16(p, qo, a);
				s16_load16(p, qo + 16, b);
				for (int h = 0; h < 2; h++) {
					uint8_t *unit = dst + (u + 2 * c + h) * ub;
					QUANT_UNROLL for (int k = 0; k < 4; k++)
					{
						lo[k] = _mm512_and_si512(
							h ? _mm512_srli_epi16(a[k], 4) : a[k],
							mask);
						hi[k] = _mm512_and_si512(
							h ? _mm512_srli_epi16(b[k], 4) : b[k],
							mask);
					}
					s16_transpose(lo, unit);
					s16_transpose(hi, unit + 256);
				}
			}
		}
	}
}

/* IQ4_XS: unit j of a block is sub-block j (16 nibble bytes as IQ4_NL),
 * scale d * (ls - 32). */
static void s16_dec_iq4_xs(const uint8_t *w, size_t rb, int rows, int64_t cu, uint8_t *dst,
			   size_t ub)
{
	for (int r0 = 0; r0 < rows; r0 += 16, dst += cu * ub) {
		const uint8_t *p[16], *q[16];
		int n = rows - r0 < 16 ? rows - r0 : 16;
		s16_prefetch_next(w, rb, rows, r0, 0,
				  (size_t)(cu / 8) * sizeof(struct block_iq4_xs));
		for (int64_t u = 0; u < cu; u += 8) {
			float d[8][16];
			s16_rows(w + (size_t)r0 * rb, rb, n,
				 (size_t)(u / 8) * sizeof(struct block_iq4_xs), p);
			for (int r = 0; r < 16; r++) {
				const struct block_iq4_xs *x = (const struct block_iq4_xs *)p[r];
				float xd = r < n ? _cvtsh_ss(x->d) : 0;
				for (int j = 0; j < 8; j++)
					d[j][s16_lane(r)] =
						r < n ? xd * (float)(quant_iq4xs_scale(x, j) - 32)
						      : 0;
				q[r] = r < n ? x->qs : s16_zero_row;
			}
			for (int j = 0; j < 8; j++) {
				uint8_t *unit = dst + (u + j) * ub;
				s16_nibble_unit(q, 16 * (size_t)j, quant_iq4nl_values, unit);
				memcpy(unit + S16_Q, d[j], 64);
			}
		}
	}
}

/* Q6_K: unit j of a block is elements 32j .. 32j + 31, of half c = j / 4:
 * the low (j % 4 < 2) or high nibbles of ql[64c + 32 (j % 2) ..] under bits
 * 2 (j % 4) of qh[32c ..], unsigned 0..63 (the offset of 32 is paid back by
 * the activations' sums of 16); its scales d * sc, one a 16. */
static void s16_dec_q6_K(const uint8_t *w, size_t rb, int rows, int64_t cu, uint8_t *dst, size_t ub)
{
	const __m512i m4 = _mm512_set1_epi8(0x0F), m2 = _mm512_set1_epi8(0x30);
	for (int r0 = 0; r0 < rows; r0 += 16, dst += cu * ub) {
		int n = rows - r0 < 16 ? rows - r0 : 16;
		s16_prefetch_next(w, rb, rows, r0, 0, (size_t)(cu / 8) * sizeof(struct block_q6_K));
		for (int64_t u = 0; u < cu; u += 8) {
			const uint8_t *p[16], *ql[16], *qh[16], *sc[16];
			quant_half hd[16];
			s16_rows(w + (size_t)r0 * rb, rb, n,
				 (size_t)(u / 8) * sizeof(struct block_q6_K), p);
			for (int r = 0; r < 16; r++) {
				const struct block_q6_K *x = (const struct block_q6_K *)p[r];
				ql[r] = r < n ? x->ql : s16_zero_row;
				qh[r] = r < n ? x->qh : s16_zero_row;
				sc[r] = r < n ? (const uint8_t *)x->scales : s16_zero_row;
				hd[s16_lane(r)] = r < n ? x->d : 0;
			}
			/* the 16 scales of each row: dword k holds sub-blocks 4k .. 4k + 3 */
			__m512 d = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)hd));
			__m512i v[4], sd[4];
			s16_load16(sc, 0, v);
			s16_dwords(v, sd);
			QUANT_UNROLL for (int k = 0; k < 16; k++)
			{
				__m512i b = _mm512_srai_epi32(
					_mm512_slli_epi32(sd[k / 4], 24 - 8 * (k % 4)), 24);
				_mm512_store_ps(dst + (u + k / 2) * ub + S16_Q + 64 * (k % 2),
						_mm512_mul_ps(_mm512_cvtepi32_ps(b), d));
			}
			for (int c = 0; c < 2; c++)
				for (int e = 0; e < 2;
				     e++) { /* elements 16e .. 16e + 15 of units 4c .. */
					__m512i H[4], A[4], B[4], q[4];
					s16_load16(qh, 32 * (size_t)c + 16 * (size_t)e, H);
					s16_load16(ql, 64 * (size_t)c + 16 * (size_t)e, A);
					s16_load16(ql, 64 * (size_t)c + 32 + 16 * (size_t)e, B);
					QUANT_UNROLL for (int k = 0; k < 4; k++)
					{
						QUANT_UNROLL for (int i = 0; i < 4; i++)
						{
							__m512i lo = k & 1 ? B[i] : A[i];
							__m512i hi =
								k == 0 ? _mm512_slli_epi16(H[i], 4)
								: k == 1
									? _mm512_slli_epi16(H[i], 2)
								: k == 2 ? H[i]
									 : _mm512_srli_epi16(H[i],
											     2);
							if (k >= 2)
								lo = _mm512_srli_epi16(lo, 4);
							q[i] = _mm512_or_si512(
								_mm512_and_si512(lo, m4),
								_mm512_and_si512(hi, m2));
						}
						s16_transpose(q,
							      dst + (u + 4 * c + k) * ub + 256 * e);
					}
				}
		}
	}
}

/*
 * A Q8_K activation has one scale a block of 8 units, so its tile keeps a
 * token's sums in units of the current block's scale e: at each block's
 * start it multiplies them by e(previous) / e(this), and by the last e at
 * the end, instead of multiplying every unit's sum by its scale (a tenth of
 * the tile's floating-point work).  A block of scale 0 (all quants 0) adds
 * nothing and keeps the previous e.  Scales that are not normal numbers, or
 * more than 2^40 apart within the chunk, mark the token for the exact tile
 * (no sum then leaves the float range).
 */
static void s16_prep_rescale(int t, int64_t cu)
{
	float e = 1, lo = 0, hi = 0;
	int exact = 0;
	for (int64_t u = 0; u < cu; u += 8) {
		float d = s16_prep.d[t][u];
		float r = 1;
		if (d != 0) {
			if (!isnormal(d))
				exact = 1;
			else {
				r = e / d;
				e = d;
				float a = fabsf(d);
				lo = lo == 0 || a < lo ? a : lo;
				hi = a > hi ? a : hi;
			}
		}
		s16_prep.kr[t][u / 8] = r;
	}
	s16_prep.kd[t] = e;
	s16_prep.exact[t] = (uint8_t)(exact || (lo > 0 && hi / lo > 0x1p40f));
}

/* s16_prep_tokens for Q8_K rows: a block's 8 units at once from its 16
 * bsums (a unit's two 16s in one dword: low the first, high the second). */
static void s16_prep_q8_K(const uint8_t *y, size_t act_stride, int T, const struct act_fmt *f,
			  int64_t c0, int64_t cu, int mode)
{
	const __m256i zero = _mm256_setzero_si256();
	const __m128i sh = _mm_cvtsi32_si128(f->shift);
	for (int t = 0; t < T; t++) {
		const uint8_t *yt = y + (size_t)t * act_stride;
		for (int64_t u = 0; u < cu; u += 8) {
			const struct block_q8_K *b =
				(const struct block_q8_K *)(yt +
							    (size_t)((c0 + u) >> 3) * f->bytes);
			__m256i bs = _mm256_loadu_si256((const __m256i *)b->bsums);
			__m256i lo = _mm256_srai_epi32(_mm256_slli_epi32(bs, 16), 16);
			__m256i hi = _mm256_srai_epi32(bs, 16);
			__m256i sum = mode == S16_HALVES ? lo : _mm256_add_epi32(lo, hi);
			__m256 sf = _mm256_cvtepi32_ps(sum), d = _mm256_set1_ps(b->d);
			_mm256_storeu_ps(&s16_prep.d[t][u], d);
			_mm256_storeu_ps(&s16_prep.s[t][u], _mm256_mul_ps(d, sf));
			_mm256_storeu_ps(&s16_prep.sp[t][u], sf);
			_mm256_storeu_si256(
				(__m256i *)&s16_prep.n[t][u],
				f->shift ? _mm256_sub_epi32(zero, _mm256_sll_epi32(sum, sh))
					 : zero);
			_mm256_storeu_si256(
				(__m256i *)&s16_prep.nb[t][u],
				mode == S16_HALVES
					? _mm256_sub_epi32(zero, _mm256_sll_epi32(hi, sh))
					: zero);
		}
		s16_prep_rescale(t, cu);
	}
}

/* Scales and sums of units c0 .. c0+cu-1 of T tokens (act_stride apart):
 * Q8_0-like rows a unit at a time (the sum from the quants), Q8_K rows a
 * block at a time. */
static void s16_prep_tokens(const uint8_t *y, size_t act_stride, int T, const struct act_fmt *f,
			    int64_t c0, int64_t cu, int mode)
{
	if (f->ushift) {
		s16_prep_q8_K(y, act_stride, T, f, c0, cu, mode);
		return;
	}
	for (int t = 0; t < T; t++) {
		const uint8_t *yt = y + (size_t)t * act_stride;
		for (int64_t u = 0; u < cu; u++) {
			float d, s4;
			const uint8_t *q = act_unit(yt, f, c0 + u, &d, &s4);
			__m256i v = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)q),
						     _mm256_set1_epi8((char)0x80));
			__m256i sa = _mm256_sad_epu8(v, _mm256_setzero_si256());
			__m128i h = _mm_add_epi64(_mm256_castsi256_si128(sa),
						  _mm256_extracti128_si256(sa, 1));
			int sum = (int)(_mm_cvtsi128_si64(h) + _mm_extract_epi64(h, 1)) - 32 * 128;
			s16_prep.d[t][u] = d;
			s16_prep.s[t][u] = d * (float)sum;
			s16_prep.n[t][u] = f->shift ? -(int32_t)((uint32_t)sum << f->shift) : 0;
			s16_prep.nb[t][u] = 0;
		}
	}
}

/*
 * The next panel's weight bytes, asked for a slice before each token tile
 * of this one, so that the memory reads overlap the tiles' arithmetic (the
 * decoder's own prefetch of the next strip leaves most of a cold expert's
 * reads to wait).  Panels go by rows, then by K chunks; after a gemm's last
 * panel there is nothing to ask for.
 */
struct s16_ahead {
	const uint8_t *row; /* the row being asked for, at its chunk */
	size_t rb;          /* bytes between rows */
	int lpr;            /* 64-byte lines a row */
	int line;           /* the next line of that row */
	int64_t left;       /* lines still to ask for */
	int64_t step;       /* lines a token tile */
};

QUANT_INLINE void s16_ahead_start(struct s16_ahead *a, const void *w, size_t rb, int nrows,
				  int wunits, size_t wbytes, int64_t nu, int64_t c0, int r0,
				  int prows, int ntiles)
{
	*a = (struct s16_ahead){ 0 };
	if (r0 >= nrows) { /* the next chunk's first panel */
		c0 += S16_KC;
		r0 = 0;
	}
	if (c0 >= nu || ntiles <= 0)
		return;
	int64_t cu = nu - c0 < S16_KC ? nu - c0 : S16_KC;
	int rows = nrows - r0 < prows ? nrows - r0 : prows;
	size_t len = (size_t)(cu / wunits) * wbytes;
	a->row = (const uint8_t *)w + (size_t)r0 * rb + (size_t)(c0 / wunits) * wbytes;
	a->rb = rb;
	a->lpr = (int)((len + 63) / 64);
	a->left = (int64_t)rows * a->lpr;
	a->step = (a->left + ntiles - 1) / ntiles;
}

QUANT_INLINE void s16_ahead_step(struct s16_ahead *a)
{
	for (int64_t i = a->step < a->left ? a->step : a->left; i > 0; i--) {
		_mm_prefetch((const char *)a->row + 64 * (size_t)a->line, _MM_HINT_T1);
		if (++a->line == a->lpr) {
			a->line = 0;
			a->row += a->rb;
		}
		a->left--;
	}
}

/*
 * S strips (16 rows each, sbytes apart) x T tokens over cu units: token k's
 * quants of unit u at act_quants(y + k * as, f, c0 + u), its prepared scalars
 * at row tp + k of s16_prep.  out[t * os + 16 s + i] for the rows < nr.
 */
QUANT_INLINE void s16_tile(int S, int T, int mode, int kb, int64_t cu, const uint8_t *w,
			   size_t sbytes, size_t ub, const uint8_t *y, size_t as,
			   const struct act_fmt *f, int64_t c0, int tp, float *out, size_t os,
			   int nr, int add)
{
	const int nh = mode == S16_HALVES ? 2 : 1, nj = 8 / nh; /* epilogues a unit, their dwords */
	__m512 acc[2][S16_T];
	QUANT_UNROLL for (int s = 0; s < S; s++) QUANT_UNROLL for (int t = 0; t < T; t++)
		acc[s][t] = _mm512_setzero_ps();
	for (int64_t b0 = 0; b0 < cu; b0 += kb) {
		if (kb > 1 && b0 > 0) /* the sums so far to this block's scale */
			QUANT_UNROLL for (int t = 0; t < T; t++)
			{
				__m512 r = _mm512_set1_ps(s16_prep.kr[tp + t][b0 / 8]);
				QUANT_UNROLL for (int s = 0; s < S; s++) acc[s][t] =
					_mm512_mul_ps(acc[s][t], r);
			}
		for (int64_t u = b0; u < b0 + kb; u++) {
			const uint8_t *aq[S16_T];
			QUANT_UNROLL for (int t = 0; t < T; t++) aq[t] =
				act_quants(y + (size_t)t * as, f, c0 + u);
			const uint8_t *wu = w + u * ub;
			QUANT_UNROLL for (int h = 0; h < nh; h++)
			{
				__m512i si[2][S16_T];
				QUANT_UNROLL for (int t = 0; t < T; t++)
				{
					__m512i n0 = _mm512_set1_epi32(h ? s16_prep.nb[tp + t][u]
									 : s16_prep.n[tp + t][u]);
					QUANT_UNROLL for (int s = 0; s < S; s++) si[s][t] = n0;
				}
				QUANT_UNROLL for (int j = h * nj; j < (h + 1) * nj; j++)
				{
					__m512i wv[2];
					QUANT_UNROLL for (int s = 0; s < S; s++) wv[s] =
						_mm512_load_si512(wu + s * sbytes + 64 * j);
					QUANT_UNROLL for (int t = 0; t < T; t++)
					{
						int32_t a4;
						memcpy(&a4, aq[t] + 4 * j, 4);
						__m512i av = _mm512_set1_epi32(a4);
						QUANT_UNROLL for (int s = 0; s < S; s++) si[s][t] =
							dpbusd(si[s][t], wv[s], av);
					}
				}
				__m512 wd[2], wm[2];
				QUANT_UNROLL for (int s = 0; s < S; s++)
				{
					wd[s] = _mm512_load_ps(wu + s * sbytes + S16_Q + 64 * h);
					wm[s] = mode == S16_MIN ? _mm512_load_ps(wu + s * sbytes +
										 S16_Q + 64)
								: _mm512_setzero_ps();
				}
				QUANT_UNROLL for (int t = 0; t < T; t++)
				{
					/* kb 1: the unit's activation scale now; kb 8:
					 * the block's, by rescaling */
					__m512 ad = kb > 1 ? _mm512_setzero_ps()
							   : _mm512_set1_ps(s16_prep.d[tp + t][u]);
					__m512 as_ = _mm512_set1_ps(kb > 1 ? s16_prep.sp[tp + t][u]
									   : s16_prep.s[tp + t][u]);
					QUANT_UNROLL for (int s = 0; s < S; s++)
					{
						__m512 x = _mm512_cvtepi32_ps(si[s][t]);
						acc[s][t] = _mm512_fmadd_ps(
							x,
							kb > 1 ? wd[s] : _mm512_mul_ps(wd[s], ad),
							acc[s][t]);
						if (mode == S16_MIN)
							acc[s][t] = _mm512_fmadd_ps(wm[s], as_,
										    acc[s][t]);
					}
				}
			}
		}
	}
	if (kb > 1)
		QUANT_UNROLL for (int t = 0; t < T; t++)
		{
			__m512 e = _mm512_set1_ps(s16_prep.kd[tp + t]);
			QUANT_UNROLL for (int s = 0; s < S; s++) acc[s][t] =
				_mm512_mul_ps(acc[s][t], e);
		}
	const __m512i rows =
		_mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
	QUANT_UNROLL for (int s = 0; s < S; s++)
	{
		int left = nr - 16 * s;
		__mmask16 k = left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1);
		QUANT_UNROLL for (int t = 0; t < T; t++)
		{
			float *o = out + (size_t)t * os + 16 * s;
			__m512 v = _mm512_permutexvar_ps(rows, acc[s][t]); /* lanes to rows */
			if (add)
				v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(k, o));
			_mm512_mask_storeu_ps(o, k, v);
		}
	}
}

#define S16_CALL(S, T)                                                                             \
	s16_tile(S, T, mode, kb, cu, w, sbytes, ub, y, as, f, c0, tp, out, os, nr, add)
QUANT_INLINE void s16_tiles(int S, int T, int mode, int kb, int64_t cu, const uint8_t *w,
			    size_t sbytes, size_t ub, const uint8_t *y, size_t as,
			    const struct act_fmt *f, int64_t c0, int tp, float *out, size_t os,
			    int nr, int add)
{
	switch ((S - 1) * S16_T + (T - 1)) {
	case 0: S16_CALL(1, 1); break;
	case 1: S16_CALL(1, 2); break;
	case 2: S16_CALL(1, 3); break;
	case 3: S16_CALL(1, 4); break;
	case 4: S16_CALL(1, 5); break;
	case 5: S16_CALL(1, 6); break;
	case 6: S16_CALL(2, 1); break;
	case 7: S16_CALL(2, 2); break;
	case 8: S16_CALL(2, 3); break;
	case 9: S16_CALL(2, 4); break;
	case 10: S16_CALL(2, 5); break;
	default: S16_CALL(2, 6); break;
	}
}
_Static_assert(S16_T == 6, "s16_tiles lists the tile shapes");

typedef void (*s16_tile_fn)(int S, int T, int64_t cu, const uint8_t *w, size_t sbytes, size_t ub,
			    const uint8_t *y, size_t as, const struct act_fmt *f, int64_t c0,
			    int tp, float *out, size_t os, int nr, int add);
#define S16_TILE_FN(NAME, MODE, KB)                                                                \
	static void NAME(int S, int T, int64_t cu, const uint8_t *w, size_t sbytes, size_t ub,     \
			 const uint8_t *y, size_t as, const struct act_fmt *f, int64_t c0, int tp, \
			 float *out, size_t os, int nr, int add)                                   \
	{                                                                                          \
		s16_tiles(S, T, MODE, KB, cu, w, sbytes, ub, y, as, f, c0, tp, out, os, nr, add);  \
	}
S16_TILE_FN(s16_tile_one, S16_ONE, 1)
S16_TILE_FN(s16_tile_min, S16_MIN, 1)
S16_TILE_FN(s16_tile_halves, S16_HALVES, 1)
S16_TILE_FN(s16_tile_one_k, S16_ONE, 8)
S16_TILE_FN(s16_tile_min_k, S16_MIN, 8)
S16_TILE_FN(s16_tile_halves_k, S16_HALVES, 8)

/* gemm over 16-row strips decoded by dec, units as mode says; weight
 * blocks of wunits units in wbytes; activations in format f; fewer than
 * min_tok tokens go to fallback. */
static void gemm_s16(s16_decode_fn dec, int mode, int wunits, size_t wbytes,
		     const struct act_fmt *f, quant_gemm_fn fallback, int min_tok, int64_t n,
		     const void *w, size_t row_bytes, int nrows, const void *act, size_t act_stride,
		     int ntok, float *out, size_t out_stride)
{
	int64_t nu = n / 32;
	if (ntok < min_tok || nu % wunits) {
		fallback(n, w, row_bytes, nrows, act, act_stride, ntok, out, out_stride);
		return;
	}
	_Static_assert(S16_KC % 8 == 0, "a chunk starts at a weight block");
	size_t ub = s16_unit_bytes(mode);
	/* a Q8_K activation's scale is a block's (8 units, s16_prep_rescale) */
	_Static_assert(QK_K / 32 == 8, "units of a Q8_K block");
	s16_tile_fn exact = mode == S16_MIN      ? s16_tile_min
			    : mode == S16_HALVES ? s16_tile_halves
						 : s16_tile_one;
	s16_tile_fn fast = !f->ushift           ? exact
			   : mode == S16_MIN    ? s16_tile_min_k
			   : mode == S16_HALVES ? s16_tile_halves_k
						: s16_tile_one_k;
	for (int64_t c0 = 0; c0 < nu; c0 += S16_KC) {
		int64_t cu = nu - c0 < S16_KC ? nu - c0 : S16_KC;
		size_t sbytes = (size_t)cu * ub;
		int pstrips = (int)(sizeof(panel_buf) / sbytes);
		size_t woff = (size_t)(c0 / wunits) * wbytes;
		for (int tb = 0; tb < ntok; tb += S16_TB) {
			int ntb = ntok - tb < S16_TB ? ntok - tb : S16_TB;
			const uint8_t *yb = (const uint8_t *)act + (size_t)tb * act_stride;
			s16_prep_tokens(yb, act_stride, ntb, f, c0, cu, mode);
			for (int r0 = 0; r0 < nrows; r0 += 16 * pstrips) {
				int rows = nrows - r0 < 16 * pstrips ? nrows - r0 : 16 * pstrips;
				int nstrips = (rows + 15) / 16;
				dec((const uint8_t *)w + (size_t)r0 * row_bytes + woff, row_bytes,
				    rows, cu, panel_buf, ub);
				struct s16_ahead pf;
				s16_ahead_start(&pf, w, row_bytes, nrows, wunits, wbytes, nu, c0,
						r0 + 16 * pstrips, 16 * pstrips,
						((nstrips + 1) / 2) * ((ntb + S16_T - 1) / S16_T));
				for (int s = 0; s < nstrips; s += 2) {
					int S = nstrips - s < 2 ? 1 : 2;
					for (int t = 0; t < ntb; t += S16_T) {
						int T = ntb - t < S16_T ? ntb - t : S16_T;
						s16_tile_fn tile = fast;
						for (int k = 0; k < T; k++)
							if (f->ushift && s16_prep.exact[t + k])
								tile = exact;
						s16_ahead_step(&pf);
						tile(S, T, cu, panel_buf + (size_t)s * sbytes,
						     sbytes, ub, yb + (size_t)t * act_stride,
						     act_stride, f, c0, t,
						     out + (size_t)(tb + t) * out_stride + r0 +
							     16 * s,
						     out_stride, rows - 16 * s, c0 > 0);
					}
				}
			}
		}
	}
}

/* The gemm entry NAME over strips: decoder DEC, units as MODE, weight blocks
 * of WUNITS units in WBYTES, activations FMT, FALLBACK below MIN_TOK tokens. */
#define S16_GEMM(NAME, DEC, MODE, WUNITS, WBYTES, FMT, FALLBACK, MIN_TOK)                          \
	static void NAME(int64_t n, const void *w, size_t rb, int nrows, const void *act,          \
			 size_t as, int ntok, float *out, size_t os)                               \
	{                                                                                          \
		gemm_s16(DEC, MODE, WUNITS, WBYTES, &FMT, FALLBACK, MIN_TOK, n, w, rb, nrows, act, \
			 as, ntok, out, os);                                                       \
	}
S16_GEMM(gemm_q4_0r_s16, s16_dec_q4_0r, S16_ONE, 4, 72, fmt_q4_0, gemm_q4_0r, S16_MIN_TOK)
S16_GEMM(gemm_iq4_nlr_s16, s16_dec_iq4_nlr, S16_ONE, 4, 72, fmt_q8_0, gemm_iq4_nlr, S16_MIN_TOK)
S16_GEMM(gemm_mxfp4r_s16, s16_dec_mxfp4r, S16_ONE, 4, 68, fmt_q8_0, gemm_mxfp4r, S16_MIN_TOK)
S16_GEMM(gemm_q8_0r_s16, s16_dec_q8_0r, S16_ONE, 4, 136, fmt_q8_0, gemm_q8_0r, S16_MIN_TOK)
S16_GEMM(gemm_q4_K_s16, s16_dec_q4_K, S16_MIN, 8, sizeof(struct block_q4_K), fmt_q8_K_sums,
	 gemm_q4_K, S16_MIN_TOK_K)
S16_GEMM(gemm_q6_K_s16, s16_dec_q6_K, S16_HALVES, 8, sizeof(struct block_q6_K), fmt_q8_K_q6,
	 gemm_q6_K, S16_MIN_TOK_K)
S16_GEMM(gemm_iq4_xs_s16, s16_dec_iq4_xs, S16_ONE, 8, sizeof(struct block_iq4_xs), fmt_q8_K,
	 gemm_iq4_xs, S16_MIN_TOK)

/* ---- drivers ---------------------------------------------------------------------------- */

/* ---- activation quantizers (bit-identical to the C versions) -------------------------- */

/* One block of 32 as Q8_0 / Q8_1 quants and half scale; returns the sum of the quants. */
QUANT_INLINE int q8_block(const float *x, quant_half *d, int8_t *qs)
{
	const __m512 signbit = _mm512_set1_ps(-0.0f);
	__m512 a = _mm512_loadu_ps(x), b = _mm512_loadu_ps(x + 16);
	__m512 m = _mm512_max_ps(_mm512_andnot_ps(signbit, a), _mm512_andnot_ps(signbit, b));
	float amax = _mm512_reduce_max_ps(m);
	float dd = amax / 127, id = dd ? 1 / dd : 0;
	*d = _cvtss_sh(dd, _MM_FROUND_TO_NEAREST_INT);
	__m512 v = _mm512_set1_ps(id);
	__m512i qa = _mm512_cvtps_epi32(_mm512_mul_ps(a, v));
	__m512i qb = _mm512_cvtps_epi32(_mm512_mul_ps(b, v));
	_mm_storeu_si128((__m128i *)qs, _mm512_cvtsepi32_epi8(qa));
	_mm_storeu_si128((__m128i *)(qs + 16), _mm512_cvtsepi32_epi8(qb));
	return _mm512_reduce_add_epi32(_mm512_add_epi32(qa, qb));
}

static void quantize_q8_0_avx512(const float *x, void *dst, int64_t n)
{
	struct block_q8_0 *y = dst;
	for (int64_t i = 0; i < n / QK8_0; i++, x += QK8_0)
		q8_block(x, &y[i].d, y[i].qs);
}

static void quantize_q8_1_avx512(const float *x, void *dst, int64_t n)
{
	struct block_q8_1 *y = dst;
	for (int64_t i = 0; i < n / QK8_1; i++, x += QK8_1) {
		int sum = q8_block(x, &y[i].d, y[i].qs);
		y[i].s = _cvtss_sh(_cvtsh_ss(y[i].d) * (float)sum, _MM_FROUND_TO_NEAREST_INT);
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
		float id = quant_q8_K_start(&y[i], _mm512_reduce_max_ps(m));
		if (id == 0)
			continue;
		__m512 v = _mm512_set1_ps(id);
		for (int j = 0; j < QK_K; j += 16) {
			__m512i q = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(x + j), v));
			/* NaN and infinities (non-finite weights) convert to INT_MIN:
			 * sum the values as stored, saturated to int8, so the sum
			 * cannot overflow and matches the block */
			q = _mm512_max_epi32(_mm512_min_epi32(q, _mm512_set1_epi32(127)),
					     _mm512_set1_epi32(-128));
			_mm_storeu_si128((__m128i *)(y[i].qs + j), _mm512_cvtsepi32_epi8(q));
			y[i].bsums[j / 16] = (int16_t)_mm512_reduce_add_epi32(q);
		}
	}
}

void quant_avx512_register(struct quant_kernel_table *t, int vnni)
{
	QUANT_SIMD_FLOAT_TYPES(QUANT_SET_KERNELS)
	t->k[QT_BF16].gemm =
		gemm_bf16dp; /* decode keeps the widening tile: as fast, bit-identical to before */
	t->from_float[QT_Q8_0] = quantize_q8_0_avx512;
	t->from_float[QT_Q8_1] = quantize_q8_1_avx512;
	t->from_float[QT_Q8_K] = quantize_q8_K_avx512;
	if (!vnni)
		return; /* the integer kernels below are built on vpdpbusd */
	QUANT_SIMD_INT_TYPES(QUANT_SET_KERNELS)
	t->k[QT_Q4_K].gemm = gemm_q4_K_s16;
	t->k[QT_Q6_K].gemm = gemm_q6_K_s16;
	t->k[QT_Q8_0_R4] = QUANT_KERNELS(q8_0r);
	t->k[QT_Q4_0_R4] = QUANT_KERNELS(q4_0r);
	t->k[QT_IQ4_NL_R4] = QUANT_KERNELS(iq4_nlr);
	t->k[QT_Q4_0_R4].gemm = gemm_q4_0r_s16;
	t->k[QT_IQ4_NL_R4].gemm = gemm_iq4_nlr_s16;
	t->k[QT_IQ4_XS].gemm = gemm_iq4_xs_s16;
	t->k[QT_MXFP4_R4] = QUANT_KERNELS(mxfp4r);
	t->k[QT_MXFP4_R4].gemm = gemm_mxfp4r_s16;
	t->k[QT_Q8_0_R4].gemm = gemm_q8_0r_s16;
}
