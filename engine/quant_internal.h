/* Private to quant*.c: the kernel table that quant.c dispatches through. */
#ifndef PALAVER_QUANT_INTERNAL_H
#define PALAVER_QUANT_INTERNAL_H

#include "quant.h"

#include <string.h>

/* One weight row (type) . one activation row (the type's dot_type). */
typedef float (*quant_dot_fn)(int64_t n, const void *w, const void *act);
/* out[r] = dot(row r, act), rows row_bytes apart. */
typedef void (*quant_gemv_fn)(int64_t n, const void *w, size_t row_bytes, int nrows,
			      const void *act, float *out);
/* out[t * out_stride + r] = dot(row r, activation row t). */
typedef void (*quant_gemm_fn)(int64_t n, const void *w, size_t row_bytes, int nrows,
			      const void *act, size_t act_stride, int ntok, float *out,
			      size_t out_stride);
/* Quantize n floats (multiple of the block size) into an activation format. */
typedef void (*quant_from_float_fn)(const float *src, void *dst, int64_t n);

/* Kernels for one weight type at one ISA level.  A NULL entry falls back to
 * the plain C twin (gemv/gemm fall back to loops over dot). */
struct quant_kernels {
	quant_dot_fn dot;   /* required for supported weight types */
	quant_gemv_fn gemv; /* optional */
	quant_gemm_fn gemm; /* optional */
};

/* The whole table for one ISA level, indexed by type id. */
struct quant_kernel_table {
	struct quant_kernels k[QT_KERNEL_COUNT];
	quant_from_float_fn from_float[QT_COUNT]; /* activation quantizers, optional */
};

/* Each SIMD file overwrites the entries it implements (built with its flags;
 * only called when cpuid says the instructions exist). */
void quant_avx2_register(struct quant_kernel_table *t);
void quant_avx512_register(struct quant_kernel_table *t, int vnni);
void quant_avx512vl_register(struct quant_kernel_table *t);

/* Portable half conversions (quant_f16_to_f32 & co. use F16C when built
 * with it); exported for the tests that hold them to the hardware. */
float quant_f16_to_f32_soft(quant_half h);
quant_half quant_f32_to_f16_soft(float f);

/* ---- shared by the SIMD files -------------------------------------------- */

/*
 * quant_avx2.c and quant_avx512.c build every kernel as an R x T register
 * tile (R weight rows x T activation rows, both 1..4) and drive the tiles
 * the same way; what is written once for both lives here.
 */

/* Register tiles need their r/t loops fully unrolled to stay in registers. */
#define QUANT_INLINE static inline __attribute__((always_inline))
#define QUANT_UNROLL _Pragma("GCC unroll 16")

/* A tile reading its activations in place: out[t * os + r] = dot(row r,
 * activation row t); len is elements for float types, blocks otherwise. */
typedef void (*quant_tile_fn)(int R, int T, int64_t len, const uint8_t *w, size_t ws,
			      const uint8_t *a, size_t as, float *out, size_t os);

/* Calls TILE(R, T, ...) with R and T as constants (R, T in scope), so that
 * every tile shape is instantiated and tails need no scalar code. */
#define QUANT_DISPATCH_RT(TILE, ...)                                                               \
	switch ((R - 1) * 4 + (T - 1)) {                                                           \
	case 0: TILE(1, 1, __VA_ARGS__); break;                                                    \
	case 1: TILE(1, 2, __VA_ARGS__); break;                                                    \
	case 2: TILE(1, 3, __VA_ARGS__); break;                                                    \
	case 3: TILE(1, 4, __VA_ARGS__); break;                                                    \
	case 4: TILE(2, 1, __VA_ARGS__); break;                                                    \
	case 5: TILE(2, 2, __VA_ARGS__); break;                                                    \
	case 6: TILE(2, 3, __VA_ARGS__); break;                                                    \
	case 7: TILE(2, 4, __VA_ARGS__); break;                                                    \
	case 8: TILE(3, 1, __VA_ARGS__); break;                                                    \
	case 9: TILE(3, 2, __VA_ARGS__); break;                                                    \
	case 10: TILE(3, 3, __VA_ARGS__); break;                                                   \
	case 11: TILE(3, 4, __VA_ARGS__); break;                                                   \
	case 12: TILE(4, 1, __VA_ARGS__); break;                                                   \
	case 13: TILE(4, 2, __VA_ARGS__); break;                                                   \
	case 14: TILE(4, 3, __VA_ARGS__); break;                                                   \
	default: TILE(4, 4, __VA_ARGS__); break;                                                   \
	}

/*
 * The tile of a float type (len = elements): VEC holds W floats, ZERO(),
 * FMA(a, b, acc) and HSUM(v) are the ISA's; LOADW / LOADA(row, k, tail)
 * load W weights / activations from element k (tail: how many are left
 * when fewer than W, else 0; nothing past the row is read); PREFETCH(p,
 * left, rb, ws) is called with p at element k of a weight row of ES-byte
 * elements, left the bytes from p to the row's end, rb the row's bytes and
 * ws the row stride.
 */
#define QUANT_FLOAT_TILE(NAME, VEC, W, ZERO, FMA, HSUM, LOADW, LOADA, ES, PREFETCH)                \
	QUANT_INLINE void NAME(int R, int T, int64_t n, const uint8_t *w, size_t ws,               \
			       const uint8_t *a, size_t as, float *out, size_t os)                 \
	{                                                                                          \
		VEC acc[4][4];                                                                     \
		QUANT_UNROLL for (int r = 0; r < R; r++) QUANT_UNROLL for (int t = 0; t < T; t++)  \
			acc[r][t] = ZERO();                                                        \
		for (int64_t k = 0; k < n; k += W) {                                               \
			int tail = n - k < W ? (int)(n - k) : 0;                                   \
			VEC av[4];                                                                 \
			QUANT_UNROLL for (int t = 0; t < T; t++) av[t] =                           \
				LOADA(a + t * as, k, tail);                                        \
			QUANT_UNROLL for (int r = 0; r < R; r++)                                   \
			{                                                                          \
				PREFETCH(w + r * ws + k * (ES), (n - k) * (ES), n * (ES), ws);     \
				VEC wv = LOADW(w + r * ws, k, tail);                               \
				QUANT_UNROLL for (int t = 0; t < T; t++) acc[r][t] =               \
					FMA(wv, av[t], acc[r][t]);                                 \
			}                                                                          \
		}                                                                                  \
		QUANT_UNROLL for (int r = 0; r < R; r++) QUANT_UNROLL for (int t = 0; t < T; t++)  \
			out[t * os + r] = HSUM(acc[r][t]);                                         \
	}

/*
 * The tile of a block type, activations read in place (len = blocks): per
 * block i, ACT(p, &ya[t]) loads activation block i of each token (p its
 * address; ABLK bytes a block) once for all rows; then for each row r,
 * PREFETCH(x, i, WBLK) and WDEC(x, &wb) decode weight block i (x its address;
 * WBLK bytes a block) into a WT, which MAC(&wb, &ya[t], &acc[r][t]) meets
 * with each token.  ACC is the accumulator type, ZERO() its start and
 * HSUM(acc) its float result.
 */
#define QUANT_BLOCK_TILE(NAME, ACC, ZERO, HSUM, WBLK, WT, WDEC, PREFETCH, ABLK, AT, ACT, MAC)      \
	QUANT_INLINE void NAME(int R, int T, int64_t nb, const uint8_t *w, size_t ws,              \
			       const uint8_t *a, size_t as, float *out, size_t os)                 \
	{                                                                                          \
		ACC acc[4][4];                                                                     \
		QUANT_UNROLL for (int r = 0; r < R; r++) QUANT_UNROLL for (int t = 0; t < T; t++)  \
			acc[r][t] = ZERO();                                                        \
		for (int64_t i = 0; i < nb; i++) {                                                 \
			AT ya[4];                                                                  \
			QUANT_UNROLL for (int t = 0; t < T; t++)                                   \
				ACT(a + t * as + (size_t)i * (ABLK), &ya[t]);                      \
			QUANT_UNROLL for (int r = 0; r < R; r++)                                   \
			{                                                                          \
				const uint8_t *x = w + r * ws + (size_t)i * (WBLK);                \
				WT wb;                                                             \
				PREFETCH(x, i, WBLK);                                              \
				WDEC(x, &wb);                                                      \
				QUANT_UNROLL for (int t = 0; t < T; t++)                           \
					MAC(&wb, &ya[t], &acc[r][t]);                              \
			}                                                                          \
		}                                                                                  \
		QUANT_UNROLL for (int r = 0; r < R; r++) QUANT_UNROLL for (int t = 0; t < T; t++)  \
			out[t * os + r] = HSUM(acc[r][t]);                                         \
	}

/* rt_TYPE(R, T, ...): tile_TYPE at run-time R and T. */
#define QUANT_TILE_DRIVER(TYPE)                                                                    \
	static void rt_##TYPE(int R, int T, int64_t len, const uint8_t *w, size_t ws,              \
			      const uint8_t *a, size_t as, float *out, size_t os)                  \
	{                                                                                          \
		QUANT_DISPATCH_RT(tile_##TYPE, len, w, ws, a, as, out, os)                         \
	}

/*
 * gemm over row panels of about panel_bytes: each panel stays in cache
 * while every token tile passes over it, so a weight block is read from
 * memory once per panel and decoded once per four tokens.  gemv is the
 * one-token case.  *prefetch (if not NULL) is set for each token tile: on
 * for the first, or for all with pf_all; the tiles read it.
 */
static inline void quant_run_panels(quant_tile_fn tile, size_t panel_bytes, int *prefetch,
				    int pf_all, int64_t len, const void *w, size_t row_bytes,
				    int nrows, const void *act, size_t act_stride, int ntok,
				    float *out, size_t out_stride)
{
	int panel = (int)(panel_bytes / (row_bytes ? row_bytes : 1));
	if (panel < 4)
		panel = 4;
	panel &= ~3;
	for (int r0 = 0; r0 < nrows; r0 += panel) {
		int r1 = r0 + panel < nrows ? r0 + panel : nrows;
		for (int t = 0; t < ntok; t += 4) {
			int T = ntok - t < 4 ? ntok - t : 4;
			if (prefetch)
				*prefetch = pf_all || t == 0;
			for (int r = r0; r < r1; r += 4) {
				int R = r1 - r < 4 ? r1 - r : 4;
				tile(R, T, len, (const uint8_t *)w + (size_t)r * row_bytes,
				     row_bytes, (const uint8_t *)act + (size_t)t * act_stride,
				     act_stride, out + (size_t)t * out_stride + r, out_stride);
			}
		}
	}
}

/* dot_TYPE, gemv_TYPE and gemm_TYPE over rt_TYPE; RUN is the file's panel
 * walker, called as RUN(rt_TYPE, ARG, len, w, rb, nrows, act, as, ntok, out, os). */
#define QUANT_ENTRY(TYPE, BLK, RUN, ARG)                                                           \
	static float dot_##TYPE(int64_t n, const void *w, const void *act)                         \
	{                                                                                          \
		float r;                                                                           \
		rt_##TYPE(1, 1, n / (BLK), w, 0, act, 0, &r, 1);                                   \
		return r;                                                                          \
	}                                                                                          \
	static void gemv_##TYPE(int64_t n, const void *w, size_t rb, int nrows, const void *act,   \
				float *out)                                                        \
	{                                                                                          \
		RUN(rt_##TYPE, ARG, n / (BLK), w, rb, nrows, act, 0, 1, out, 1);                   \
	}                                                                                          \
	static void gemm_##TYPE(int64_t n, const void *w, size_t rb, int nrows, const void *act,   \
				size_t as, int ntok, float *out, size_t os)                        \
	{                                                                                          \
		RUN(rt_##TYPE, ARG, n / (BLK), w, rb, nrows, act, as, ntok, out, os);              \
	}

/* rt_TYPE, dot_TYPE, gemv_TYPE and gemm_TYPE of tile_TYPE. */
#define QUANT_KERNEL(TYPE, BLK, RUN, ARG)                                                          \
	QUANT_TILE_DRIVER(TYPE)                                                                    \
	QUANT_ENTRY(TYPE, BLK, RUN, ARG)

/* The kernels of the three float types (F32 and F16 weights take F32
 * activations, BF16 weights BF16 ones) from an ISA's vector operations and
 * loaders (see QUANT_FLOAT_TILE); RUN as in QUANT_ENTRY. */
#define QUANT_FLOAT_KERNELS(VEC, W, ZERO, FMA, HSUM, LD_F32, LD_F16, LD_BF16, PREFETCH, RUN)       \
	QUANT_FLOAT_TILE(tile_f32, VEC, W, ZERO, FMA, HSUM, LD_F32, LD_F32, 4, PREFETCH)           \
	QUANT_FLOAT_TILE(tile_f16, VEC, W, ZERO, FMA, HSUM, LD_F16, LD_F32, 2, PREFETCH)           \
	QUANT_FLOAT_TILE(tile_bf16, VEC, W, ZERO, FMA, HSUM, LD_BF16, LD_BF16, 2, PREFETCH)        \
	QUANT_KERNEL(f32, 1, RUN, 0)                                                               \
	QUANT_KERNEL(f16, 1, RUN, 0)                                                               \
	QUANT_KERNEL(bf16, 1, RUN, 0)

/* The weight types both SIMD files implement, as X(type id, kernel name):
 * a file's register function sets t->k[id] = QUANT_KERNELS(name) for each. */
#define QUANT_SIMD_FLOAT_TYPES(X) X(QT_F32, f32) X(QT_F16, f16) X(QT_BF16, bf16)
#define QUANT_SIMD_INT_TYPES(X)                                                                    \
	X(QT_Q4_0, q4_0)                                                                           \
	X(QT_Q4_1, q4_1)                                                                           \
	X(QT_Q5_0, q5_0)                                                                           \
	X(QT_Q5_1, q5_1)                                                                           \
	X(QT_Q8_0, q8_0)                                                                           \
	X(QT_Q2_K, q2_K)                                                                           \
	X(QT_Q3_K, q3_K)                                                                           \
	X(QT_Q4_K, q4_K)                                                                           \
	X(QT_Q5_K, q5_K)                                                                           \
	X(QT_Q6_K, q6_K)                                                                           \
	X(QT_IQ4_NL, iq4_nl)                                                                       \
	X(QT_IQ4_XS, iq4_xs)                                                                       \
	X(QT_MXFP4, mxfp4)
#define QUANT_SET_KERNELS(ID, NAME) t->k[ID] = QUANT_KERNELS(NAME);

/* The kernel table entry of TYPE from the three functions above. */
#define QUANT_KERNELS(TYPE) ((struct quant_kernels){ dot_##TYPE, gemv_##TYPE, gemm_##TYPE })

/* ---- shared scalar helpers ------------------------------------------------- */

/* The value of each IQ4_NL / IQ4_XS nibble (ggml's table: a non-uniform
 * grid, denser near zero, fitted to the distribution of weights). */
static const int8_t quant_iq4nl_values[16] = { -127, -104, -83, -65, -49, -35, -22, -10,
					       1,    13,   25,  38,  53,  69,  89,  113 };

/* The E2M1 value of each MXFP4 nibble, doubled so that every value is an
 * integer (0.5 -> 1); quant_e8m0_half() halves the block scale to match. */
static const int8_t quant_mxfp4_values2[16] = { 0, 1,  2,  3,  4,  6,  8,  12,
						0, -1, -2, -3, -4, -6, -8, -12 };

/* Half of an E8M0 scale, 2^(e - 128), built from its bits (exact also for
 * e = 0 and 1, where it is subnormal); NaN for e = 0xFF, as the OCP spec
 * says (ggml would give 2^127). */
static inline float quant_e8m0_half(uint8_t e)
{
	uint32_t bits = e == 0xFF ? 0x7fc00000u
			: e < 2   ? 0x00200000u << e
				  : (uint32_t)(e - 1) << 23;
	float f;
	memcpy(&f, &bits, 4);
	return f;
}

/* IQ4_XS: the 6-bit scale of sub-block j (0..63; the value is ls - 32). */
static inline int quant_iq4xs_scale(const struct block_iq4_xs *x, int j)
{
	return ((x->scales_l[j / 2] >> 4 * (j % 2)) & 0xF) | (((x->scales_h >> 2 * j) & 3) << 4);
}

/* Starts a Q8_K activation block from its largest magnitude: sets d and
 * returns the multiplier 127 / amax, or zeroes the block and returns 0.
 * Every quantizer (C and SIMD) goes through it so that they stay
 * bit-identical.  An infinite amax (broken weights) has no multiplier
 * either: its quants and sums are zeroed too, not left as the buffer held
 * them, and d stays infinite so that the dot products are not finite and
 * the engine reports them (issue 16). */
static inline float quant_q8_K_start(struct block_q8_K *y, float amax)
{
	if (amax == 0 || amax > 3.4028235e38f) {
		memset(y, 0, sizeof(*y));
		y->d = amax / 127;
		return 0;
	}
	y->d = amax / 127;
	return 127 / amax;
}

/* Q4_K / Q5_K: the 12 packed bytes of 8 six-bit scales and 8 mins as 16
 * bytes (scales 0..7, then mins 0..7) in four words, kept in registers by
 * the callers (a store and reload of a vector would stall). */
static inline void quant_k4_scales_u32(const uint8_t *s, uint32_t u[4])
{
	uint32_t aux;
	memcpy(u, s, 12);
	u[3] = ((u[2] >> 4) & 0x0f0f0f0f) | (((u[1] >> 6) & 0x03030303) << 4);
	aux = u[1] & 0x3f3f3f3f;
	u[1] = (u[2] & 0x0f0f0f0f) | (((u[0] >> 6) & 0x03030303) << 4);
	u[2] = aux;
	u[0] &= 0x3f3f3f3f;
}

static inline void quant_k4_scale_min(int j, const uint8_t *q, uint8_t *d, uint8_t *m)
{
	/* Q4_K / Q5_K: 8 six-bit scales and mins packed in 12 bytes */
	if (j < 4) {
		*d = q[j] & 63;
		*m = q[j + 4] & 63;
	} else {
		*d = (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
		*m = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
	}
}

/* Q3_K: 16 six-bit scales packed in 12 bytes, returned biased (0..63, subtract 32). */
static inline void quant_k3_scales(const uint8_t *packed, int8_t out[16])
{
	for (int j = 0; j < 16; j++) {
		int lo = j < 8 ? (packed[j] & 0xF) : (packed[j - 8] >> 4);
		int hi = (packed[8 + (j & 3)] >> (2 * (j >> 2))) & 3;
		out[j] = (int8_t)((lo | (hi << 4)) - 32);
	}
}

#endif
