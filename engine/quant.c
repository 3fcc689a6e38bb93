/* Tensor element types: traits, conversions, (de)quantization and the plain C dot products. */

/*
 * DESIGN
 *
 * Block layouts are ggml's (engine/quant.h), so GGUF tensors are used in
 * place from the mapping.  Every weight type has a plain C dot product with
 * activations in its dot_type (Q8_0, Q8_1, Q8_K or float); these are the
 * reference twins of the SIMD kernels in quant_avx2.c (also built as
 * quant_avx512vl.c) and quant_avx512.c.
 *
 * Dispatch: a kernel table per ISA level is built once (pthread_once) from
 * the scalar entries, then the SIMD files overwrite what they implement.
 * The active table takes each type's gemv and gemm from the level chosen
 * for it (quant_select.c measures which); quant_isa_set() puts every type
 * at one level.  Both are for set-up, not while other threads compute.
 *
 * The integer kernels accumulate each block (or sub-block) exactly in int32
 * and apply the float scales per block, the same order the SIMD versions
 * use, so SIMD and C agree to float rounding of the epilogue.
 */
#include "quant.h"
#include "quant_internal.h"

#include <math.h>
#include <stddef.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "xalloc.h"

#if defined(__F16C__)
#include <immintrin.h>
#endif

/* ---- traits ------------------------------------------------------------ */

static const struct quant_traits traits[QT_COUNT] = {
	[QT_F32] = { "F32", 1, 4, QT_F32, 1 },
	[QT_F16] = { "F16", 1, 2, QT_F32, 1 },
	[QT_Q4_0] = { "Q4_0", QK4_0, sizeof(struct block_q4_0), QT_Q8_0, 1 },
	[QT_Q4_1] = { "Q4_1", QK4_1, sizeof(struct block_q4_1), QT_Q8_1, 1 },
	[QT_Q5_0] = { "Q5_0", QK5_0, sizeof(struct block_q5_0), QT_Q8_0, 1 },
	[QT_Q5_1] = { "Q5_1", QK5_1, sizeof(struct block_q5_1), QT_Q8_1, 1 },
	[QT_Q8_0] = { "Q8_0", QK8_0, sizeof(struct block_q8_0), QT_Q8_0, 1 },
	/* Q8_1 and Q8_K are activation formats: no weight dot product */
	[QT_Q8_1] = { "Q8_1", QK8_1, sizeof(struct block_q8_1), QT_Q8_1, 0 },
	[QT_Q2_K] = { "Q2_K", QK_K, sizeof(struct block_q2_K), QT_Q8_K, 1 },
	[QT_Q3_K] = { "Q3_K", QK_K, sizeof(struct block_q3_K), QT_Q8_K, 1 },
	[QT_Q4_K] = { "Q4_K", QK_K, sizeof(struct block_q4_K), QT_Q8_K, 1 },
	[QT_Q5_K] = { "Q5_K", QK_K, sizeof(struct block_q5_K), QT_Q8_K, 1 },
	[QT_Q6_K] = { "Q6_K", QK_K, sizeof(struct block_q6_K), QT_Q8_K, 1 },
	[QT_Q8_K] = { "Q8_K", QK_K, sizeof(struct block_q8_K), QT_Q8_K, 0 },
	/* known to ggml, not computed by palaver: sizes from ggml's type table */
	[16] = { "IQ2_XXS", QK_K, 66, 16, 0 },
	[17] = { "IQ2_XS", QK_K, 74, 17, 0 },
	[18] = { "IQ3_XXS", QK_K, 98, 18, 0 },
	[19] = { "IQ1_S", QK_K, 50, 19, 0 },
	[QT_IQ4_NL] = { "IQ4_NL", QK4_NL, sizeof(struct block_iq4_nl), QT_Q8_0, 1 },
	[21] = { "IQ3_S", QK_K, 110, 21, 0 },
	[22] = { "IQ2_S", QK_K, 82, 22, 0 },
	[QT_IQ4_XS] = { "IQ4_XS", QK_K, sizeof(struct block_iq4_xs), QT_Q8_K, 1 },
	[24] = { "I8", 1, 1, 24, 0 },
	[25] = { "I16", 1, 2, 25, 0 },
	[26] = { "I32", 1, 4, 26, 0 },
	[27] = { "I64", 1, 8, 27, 0 },
	[28] = { "F64", 1, 8, 28, 0 },
	[29] = { "IQ1_M", QK_K, 56, 29, 0 },
	[QT_BF16] = { "BF16", 1, 2, QT_BF16, 1 },
	[31] = { "Q4_0_4_4", 32, 18, 31, 0 },
	[32] = { "Q4_0_4_8", 32, 18, 32, 0 },
	[33] = { "Q4_0_8_8", 32, 18, 33, 0 },
	[34] = { "TQ1_0", QK_K, 54, 34, 0 },
	[35] = { "TQ2_0", QK_K, 66, 35, 0 },
	[36] = { "IQ4_NL_4_4", 32, 18, 36, 0 },
	[37] = { "IQ4_NL_4_8", 32, 18, 37, 0 },
	[38] = { "IQ4_NL_8_8", 32, 18, 38, 0 },
	[QT_MXFP4] = { "MXFP4", QK_MXFP4, sizeof(struct block_mxfp4), QT_Q8_0, 1 },
};

const struct quant_traits *quant_traits(int type)
{
	if (type < 0 || type >= QT_COUNT || !traits[type].name)
		return NULL;
	return &traits[type];
}

const char *quant_type_name(int type)
{
	static _Thread_local char buf[32];
	const struct quant_traits *t = quant_traits(type);
	if (t)
		return t->name;
	snprintf(buf, sizeof(buf), "type %d", type);
	return buf;
}

int quant_row_bytes(int type, int64_t n, size_t *out)
{
	const struct quant_traits *t = quant_traits(type);
	size_t bytes;
	if (!t || n < 0 || n % t->block_elems)
		return -1;
	if (size_mul((size_t)(n / t->block_elems), t->block_bytes, &bytes) < 0)
		return -1;
	*out = bytes;
	return 0;
}

/* ---- half and bfloat16 ---------------------------------------------------- */

static inline float f32_from_bits(uint32_t u)
{
	float f;
	memcpy(&f, &u, 4);
	return f;
}

static inline uint32_t f32_bits(float f)
{
	uint32_t u;
	memcpy(&u, &f, 4);
	return u;
}

float quant_f16_to_f32_soft(quant_half h)
{
	uint32_t sign = (uint32_t)(h & 0x8000) << 16;
	uint32_t exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
	if (exp == 0) {
		/* zero or subnormal: mant * 2^-24 is exact in float */
		float v = (float)mant * 0x1p-24f;
		return sign ? -v : v;
	}
	if (exp == 31)
		return f32_from_bits(sign | 0x7f800000u | (mant << 13));
	return f32_from_bits(sign | ((exp + 112) << 23) | (mant << 13));
}

quant_half quant_f32_to_f16_soft(float f)
{
	uint32_t x = f32_bits(f);
	uint32_t sign = (x >> 16) & 0x8000;
	uint32_t fexp = (x >> 23) & 0xff, mant = x & 0x7fffff;
	int e;
	if (fexp == 0xff) {
		if (mant) /* NaN stays NaN (quiet), keeping the top payload bits */
			return (quant_half)(sign | 0x7e00 | (mant >> 13));
		return (quant_half)(sign | 0x7c00);
	}
	e = (int)fexp - 127;
	if (e >= -14) {
		uint32_t r, rest;
		if (e > 15)
			return (quant_half)(sign | 0x7c00);
		r = ((uint32_t)(e + 15) << 10) | (mant >> 13);
		rest = mant & 0x1fff;
		/* round to nearest even; a carry walks into the exponent (up to inf) */
		if (rest > 0x1000 || (rest == 0x1000 && (r & 1)))
			r++;
		return (quant_half)(sign | r);
	} else {
		/* subnormal half: value in units of 2^-24 is m * 2^(e+1) */
		uint32_t m = mant | 0x800000, r, rest, half;
		int shift = -(e + 1);
		if (fexp == 0 || shift > 24)
			return (quant_half)sign;
		r = m >> shift;
		rest = m & ((1u << shift) - 1);
		half = 1u << (shift - 1);
		if (rest > half || (rest == half && (r & 1)))
			r++;
		return (quant_half)(sign | r);
	}
}

/* The public conversions use F16C where the build has it (attention and the
 * KV cache convert per element); the portable versions above are the
 * reference, tested against the hardware bit for bit. */
#if defined(__F16C__)
float quant_f16_to_f32(quant_half h)
{
	return _cvtsh_ss(h);
}

quant_half quant_f32_to_f16(float f)
{
	return _cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT);
}
#else
float quant_f16_to_f32(quant_half h)
{
	return quant_f16_to_f32_soft(h);
}

quant_half quant_f32_to_f16(float f)
{
	return quant_f32_to_f16_soft(f);
}
#endif

float quant_bf16_to_f32(quant_bf16 h)
{
	return f32_from_bits((uint32_t)h << 16);
}

quant_bf16 quant_f32_to_bf16(float f)
{
	uint32_t x = f32_bits(f);
	if ((x & 0x7fffffff) > 0x7f800000) /* NaN: keep it a (quiet) NaN */
		return (quant_bf16)((x >> 16) | 0x40);
	x += 0x7fff + ((x >> 16) & 1);
	return (quant_bf16)(x >> 16);
}

#define H2F(h) quant_f16_to_f32(h)
#define F2H(f) quant_f32_to_f16(f)

/* ---- dequantization ---------------------------------------------------- */

static void dequant_q4_0(const struct block_q4_0 *x, float *y, int64_t nb)
{
	for (int64_t i = 0; i < nb; i++, y += QK4_0) {
		float d = H2F(x[i].d);
		for (int j = 0; j < QK4_0 / 2; j++) {
			y[j] = d * ((x[i].qs[j] & 0xF) - 8);
			y[j + QK4_0 / 2] = d * ((x[i].qs[j] >> 4) - 8);
		}
	}
}

static void dequant_q4_1(const struct block_q4_1 *x, float *y, int64_t nb)
{
	for (int64_t i = 0; i < nb; i++, y += QK4_1) {
		float d = H2F(x[i].d), m = H2F(x[i].m);
		for (int j = 0; j < QK4_1 / 2; j++) {
			y[j] = d * (x[i].qs[j] & 0xF) + m;
			y[j + QK4_1 / 2] = d * (x[i].qs[j] >> 4) + m;
		}
	}
}

/* Q5 blocks: 5th bit of element j is bit j of the little-endian 32-bit qh */
static inline uint32_t q5_hbits(const uint8_t qh[4])
{
	return (uint32_t)qh[0] | (uint32_t)qh[1] << 8 | (uint32_t)qh[2] << 16 |
	       (uint32_t)qh[3] << 24;
}

static void dequant_q5_0(const struct block_q5_0 *x, float *y, int64_t nb)
{
	for (int64_t i = 0; i < nb; i++, y += QK5_0) {
		float d = H2F(x[i].d);
		uint32_t qh = q5_hbits(x[i].qh);
		for (int j = 0; j < QK5_0 / 2; j++) {
			int lo = (x[i].qs[j] & 0xF) | (int)(((qh >> j) & 1) << 4);
			int hi = (x[i].qs[j] >> 4) | (int)(((qh >> (j + 16)) & 1) << 4);
			y[j] = d * (lo - 16);
			y[j + QK5_0 / 2] = d * (hi - 16);
		}
	}
}

static void dequant_q5_1(const struct block_q5_1 *x, float *y, int64_t nb)
{
	for (int64_t i = 0; i < nb; i++, y += QK5_1) {
		float d = H2F(x[i].d), m = H2F(x[i].m);
		uint32_t qh = q5_hbits(x[i].qh);
		for (int j = 0; j < QK5_1 / 2; j++) {
			int lo = (x[i].qs[j] & 0xF) | (int)(((qh >> j) & 1) << 4);
			int hi = (x[i].qs[j] >> 4) | (int)(((qh >> (j + 16)) & 1) << 4);
			y[j] = d * lo + m;
			y[j + QK5_1 / 2] = d * hi + m;
		}
	}
}

static void dequant_q8_0(const struct block_q8_0 *x, float *y, int64_t nb)
{
	for (int64_t i = 0; i < nb; i++, y += QK8_0) {
		float d = H2F(x[i].d);
		for (int j = 0; j < QK8_0; j++)
			y[j] = d * x[i].qs[j];
	}
}

static void dequant_q8_1(const struct block_q8_1 *x, float *y, int64_t nb)
{
	for (int64_t i = 0; i < nb; i++, y += QK8_1) {
		float d = H2F(x[i].d);
		for (int j = 0; j < QK8_1; j++)
			y[j] = d * x[i].qs[j];
	}
}

/*
 * The K-quant decoders below produce integer quants plus per-sub-block
 * integer scales; dequantization and the dot products share them so that
 * the bit layout is written down once per type.
 */

/* Q2_K: q[256] in 0..3, sc[16] low nibble scale, high nibble min */
static void unpack_q2_K(const struct block_q2_K *x, int8_t q[QK_K])
{
	for (int n = 0; n < 2; n++) {
		const uint8_t *qs = x->qs + 32 * n;
		for (int j = 0; j < 4; j++)
			for (int l = 0; l < 32; l++)
				q[128 * n + 32 * j + l] = (int8_t)((qs[l] >> (2 * j)) & 3);
	}
}

/* Q3_K: q[256] in -4..3 */
static void unpack_q3_K(const struct block_q3_K *x, int8_t q[QK_K])
{
	for (int n = 0; n < 2; n++) {
		const uint8_t *qs = x->qs + 32 * n;
		for (int j = 0; j < 4; j++) {
			int hbit = 4 * n + j;
			for (int l = 0; l < 32; l++) {
				int v = (qs[l] >> (2 * j)) & 3;
				if (!((x->hmask[l] >> hbit) & 1))
					v -= 4;
				q[128 * n + 32 * j + l] = (int8_t)v;
			}
		}
	}
}

/* Q4_K: q[256] in 0..15 */
static void unpack_q4_K(const struct block_q4_K *x, int8_t q[QK_K])
{
	for (int j = 0; j < 4; j++)
		for (int l = 0; l < 32; l++) {
			q[64 * j + l] = (int8_t)(x->qs[32 * j + l] & 0xF);
			q[64 * j + 32 + l] = (int8_t)(x->qs[32 * j + l] >> 4);
		}
}

/* Q5_K: q[256] in 0..31 */
static void unpack_q5_K(const struct block_q5_K *x, int8_t q[QK_K])
{
	for (int j = 0; j < 4; j++)
		for (int l = 0; l < 32; l++) {
			int h0 = (x->qh[l] >> (2 * j)) & 1, h1 = (x->qh[l] >> (2 * j + 1)) & 1;
			q[64 * j + l] = (int8_t)((x->qs[32 * j + l] & 0xF) | (h0 << 4));
			q[64 * j + 32 + l] = (int8_t)((x->qs[32 * j + l] >> 4) | (h1 << 4));
		}
}

/* Q6_K: q[256] in -32..31 */
static void unpack_q6_K(const struct block_q6_K *x, int8_t q[QK_K])
{
	for (int n = 0; n < 2; n++) {
		const uint8_t *ql = x->ql + 64 * n, *qh = x->qh + 32 * n;
		int8_t *o = q + 128 * n;
		for (int l = 0; l < 32; l++) {
			o[l] = (int8_t)(((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32);
			o[l + 32] = (int8_t)(((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32);
			o[l + 64] = (int8_t)(((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32);
			o[l + 96] = (int8_t)(((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32);
		}
	}
}

static void dequant_q2_K(const struct block_q2_K *x, float *y, int64_t nb)
{
	int8_t q[QK_K];
	for (int64_t i = 0; i < nb; i++, y += QK_K) {
		float d = H2F(x[i].d), dmin = H2F(x[i].dmin);
		unpack_q2_K(&x[i], q);
		for (int s = 0; s < 16; s++) {
			float dl = d * (x[i].scales[s] & 0xF), ml = dmin * (x[i].scales[s] >> 4);
			for (int l = 0; l < 16; l++)
				y[16 * s + l] = dl * q[16 * s + l] - ml;
		}
	}
}

static void dequant_q3_K(const struct block_q3_K *x, float *y, int64_t nb)
{
	int8_t q[QK_K], sc[16];
	for (int64_t i = 0; i < nb; i++, y += QK_K) {
		float d = H2F(x[i].d);
		unpack_q3_K(&x[i], q);
		quant_k3_scales(x[i].scales, sc);
		for (int s = 0; s < 16; s++)
			for (int l = 0; l < 16; l++)
				y[16 * s + l] = d * sc[s] * q[16 * s + l];
	}
}

static void dequant_q4_K(const struct block_q4_K *x, float *y, int64_t nb)
{
	int8_t q[QK_K];
	for (int64_t i = 0; i < nb; i++, y += QK_K) {
		float d = H2F(x[i].d), dmin = H2F(x[i].dmin);
		unpack_q4_K(&x[i], q);
		for (int s = 0; s < 8; s++) {
			uint8_t sc, m;
			quant_k4_scale_min(s, x[i].scales, &sc, &m);
			for (int l = 0; l < 32; l++)
				y[32 * s + l] = d * sc * q[32 * s + l] - dmin * m;
		}
	}
}

static void dequant_q5_K(const struct block_q5_K *x, float *y, int64_t nb)
{
	int8_t q[QK_K];
	for (int64_t i = 0; i < nb; i++, y += QK_K) {
		float d = H2F(x[i].d), dmin = H2F(x[i].dmin);
		unpack_q5_K(&x[i], q);
		for (int s = 0; s < 8; s++) {
			uint8_t sc, m;
			quant_k4_scale_min(s, x[i].scales, &sc, &m);
			for (int l = 0; l < 32; l++)
				y[32 * s + l] = d * sc * q[32 * s + l] - dmin * m;
		}
	}
}

static void dequant_q6_K(const struct block_q6_K *x, float *y, int64_t nb)
{
	int8_t q[QK_K];
	for (int64_t i = 0; i < nb; i++, y += QK_K) {
		float d = H2F(x[i].d);
		unpack_q6_K(&x[i], q);
		for (int s = 0; s < 16; s++)
			for (int l = 0; l < 16; l++)
				y[16 * s + l] = d * x[i].scales[s] * q[16 * s + l];
	}
}

/* 16 nibble bytes -> 32 values of a table times a scale (IQ4_NL, IQ4_XS
 * sub-blocks, MXFP4: all lay nibbles out as Q4_0). */
static void dequant_nibbles(const uint8_t *qs, const int8_t *values, float d, float *y)
{
	for (int j = 0; j < 16; j++) {
		y[j] = d * values[qs[j] & 0xF];
		y[j + 16] = d * values[qs[j] >> 4];
	}
}

static void dequant_iq4_nl(const struct block_iq4_nl *x, float *y, int64_t nb)
{
	for (int64_t i = 0; i < nb; i++, y += QK4_NL)
		dequant_nibbles(x[i].qs, quant_iq4nl_values, H2F(x[i].d), y);
}

static void dequant_iq4_xs(const struct block_iq4_xs *x, float *y, int64_t nb)
{
	for (int64_t i = 0; i < nb; i++) {
		float d = H2F(x[i].d);
		for (int j = 0; j < QK_K / 32; j++, y += 32)
			dequant_nibbles(x[i].qs + 16 * j, quant_iq4nl_values,
					d * (float)(quant_iq4xs_scale(&x[i], j) - 32), y);
	}
}

static void dequant_mxfp4(const struct block_mxfp4 *x, float *y, int64_t nb)
{
	for (int64_t i = 0; i < nb; i++, y += QK_MXFP4)
		dequant_nibbles(x[i].qs, quant_mxfp4_values2, quant_e8m0_half(x[i].e), y);
}

static void dequant_q8_K(const struct block_q8_K *x, float *y, int64_t nb)
{
	for (int64_t i = 0; i < nb; i++, y += QK_K)
		for (int j = 0; j < QK_K; j++)
			y[j] = x[i].d * x[i].qs[j];
}

void quant_dequantize_row(int type, const void *src, float *dst, int64_t n)
{
	const struct quant_traits *t = quant_traits(type);
	int64_t nb;
	if (!t || n <= 0)
		return;
	nb = n / t->block_elems;
	switch (type) {
	case QT_F32: memcpy(dst, src, (size_t)n * sizeof(float)); break;
	case QT_F16:
		for (int64_t i = 0; i < n; i++)
			dst[i] = H2F(((const quant_half *)src)[i]);
		break;
	case QT_BF16:
		for (int64_t i = 0; i < n; i++)
			dst[i] = quant_bf16_to_f32(((const quant_bf16 *)src)[i]);
		break;
	case QT_Q4_0: dequant_q4_0(src, dst, nb); break;
	case QT_Q4_1: dequant_q4_1(src, dst, nb); break;
	case QT_Q5_0: dequant_q5_0(src, dst, nb); break;
	case QT_Q5_1: dequant_q5_1(src, dst, nb); break;
	case QT_Q8_0: dequant_q8_0(src, dst, nb); break;
	case QT_Q8_1: dequant_q8_1(src, dst, nb); break;
	case QT_Q2_K: dequant_q2_K(src, dst, nb); break;
	case QT_Q3_K: dequant_q3_K(src, dst, nb); break;
	case QT_Q4_K: dequant_q4_K(src, dst, nb); break;
	case QT_Q5_K: dequant_q5_K(src, dst, nb); break;
	case QT_Q6_K: dequant_q6_K(src, dst, nb); break;
	case QT_Q8_K: dequant_q8_K(src, dst, nb); break;
	case QT_IQ4_NL: dequant_iq4_nl(src, dst, nb); break;
	case QT_IQ4_XS: dequant_iq4_xs(src, dst, nb); break;
	case QT_MXFP4: dequant_mxfp4(src, dst, nb); break;
	default: break;
	}
}

/* ---- quantization ---------------------------------------------------------- */

static inline int round_int(float x)
{
	return (int)lrintf(x);
}

static void quantize_q8_0_c(const float *x, void *dst, int64_t n)
{
	struct block_q8_0 *y = dst;
	for (int64_t i = 0; i < n / QK8_0; i++, x += QK8_0) {
		float amax = 0;
		for (int j = 0; j < QK8_0; j++)
			amax = fmaxf(amax, fabsf(x[j]));
		float d = amax / 127, id = d ? 1 / d : 0;
		y[i].d = F2H(d);
		for (int j = 0; j < QK8_0; j++)
			y[i].qs[j] = (int8_t)round_int(x[j] * id);
	}
}

static void quantize_q8_1_c(const float *x, void *dst, int64_t n)
{
	struct block_q8_1 *y = dst;
	for (int64_t i = 0; i < n / QK8_1; i++, x += QK8_1) {
		float amax = 0;
		int sum = 0;
		for (int j = 0; j < QK8_1; j++)
			amax = fmaxf(amax, fabsf(x[j]));
		float d = amax / 127, id = d ? 1 / d : 0;
		y[i].d = F2H(d);
		for (int j = 0; j < QK8_1; j++) {
			y[i].qs[j] = (int8_t)round_int(x[j] * id);
			sum += y[i].qs[j];
		}
		/* the stored d (after rounding to half) is what dots multiply by */
		y[i].s = F2H(H2F(y[i].d) * (float)sum);
	}
}

static void quantize_q8_K_c(const float *x, void *dst, int64_t n)
{
	struct block_q8_K *y = dst;
	for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
		float amax = 0;
		for (int j = 0; j < QK_K; j++)
			amax = fmaxf(amax, fabsf(x[j]));
		float id = quant_q8_K_start(&y[i], amax);
		if (id == 0)
			continue;
		for (int j = 0; j < QK_K; j++)
			y[i].qs[j] = (int8_t)round_int(x[j] * id);
		for (int g = 0; g < QK_K / 16; g++) {
			int s = 0;
			for (int l = 0; l < 16; l++)
				s += y[i].qs[16 * g + l];
			y[i].bsums[g] = (int16_t)s;
		}
	}
}

static void quantize_q4_0_c(const float *x, struct block_q4_0 *y, int64_t nb)
{
	for (int64_t i = 0; i < nb; i++, x += QK4_0) {
		/* the extreme value maps to -8 exactly; the other side gets 7 */
		float amax = 0, max = 0;
		for (int j = 0; j < QK4_0; j++)
			if (fabsf(x[j]) > amax) {
				amax = fabsf(x[j]);
				max = x[j];
			}
		float d = max / -8, id = d ? 1 / d : 0;
		y[i].d = F2H(d);
		for (int j = 0; j < QK4_0 / 2; j++) {
			int a = round_int(x[j] * id) + 8, b = round_int(x[j + 16] * id) + 8;
			a = a < 0 ? 0 : a > 15 ? 15 : a;
			b = b < 0 ? 0 : b > 15 ? 15 : b;
			y[i].qs[j] = (uint8_t)(a | (b << 4));
		}
	}
}

/* Scale and min for 32 values with q in 0..nmax: x ~ s * q - m (m >= 0).
 * Starts from the min/max fit and tries a few scales around it. */
static void fit_scale_min(const float *x, int len, int nmax, float *scale, float *min)
{
	float lo = x[0], hi = x[0];
	for (int j = 1; j < len; j++) {
		lo = fminf(lo, x[j]);
		hi = fmaxf(hi, x[j]);
	}
	if (lo > 0)
		lo = 0;
	if (hi <= lo) {
		*scale = 0;
		*min = -lo;
		return;
	}
	float best_s = (hi - lo) / nmax, best_err = INFINITY;
	for (int step = -4; step <= 4; step++) {
		float s = (hi - lo) / (nmax + 0.1f * step), err = 0;
		for (int j = 0; j < len; j++) {
			int q = round_int((x[j] - lo) / s);
			q = q < 0 ? 0 : q > nmax ? nmax : q;
			float e = s * q + lo - x[j];
			err += e * e;
		}
		if (err < best_err) {
			best_err = err;
			best_s = s;
		}
	}
	*scale = best_s;
	*min = -lo;
}

/*
 * Q4_K and Q5_K share everything but the quant width: 8 sub-blocks of 32
 * with a 6-bit scale and min each (packed in 12 bytes), F16 d and dmin for
 * them, and quants 0..nmax in q[256] (element order) for the caller to pack.
 */
static void quantize_k4(const float *x, int nmax, quant_half *hd, quant_half *hdmin,
			uint8_t scales[K_SCALE_SIZE], uint8_t q[QK_K])
{
	float sc[8], mn[8], max_sc = 0, max_mn = 0;
	uint8_t ls[8], lm[8];
	for (int s = 0; s < 8; s++) {
		fit_scale_min(x + 32 * s, 32, nmax, &sc[s], &mn[s]);
		max_sc = fmaxf(max_sc, sc[s]);
		max_mn = fmaxf(max_mn, mn[s]);
	}
	*hd = F2H(max_sc / 63);
	*hdmin = F2H(max_mn / 63);
	float d = H2F(*hd), dmin = H2F(*hdmin);
	for (int s = 0; s < 8; s++) {
		int a = d ? round_int(sc[s] / d) : 0, b = dmin ? round_int(mn[s] / dmin) : 0;
		ls[s] = (uint8_t)(a > 63 ? 63 : a);
		lm[s] = (uint8_t)(b > 63 ? 63 : b);
	}
	for (int j = 0; j < 4; j++) {
		scales[j] = (uint8_t)(ls[j] | ((ls[j + 4] >> 4) << 6));
		scales[j + 4] = (uint8_t)(lm[j] | ((lm[j + 4] >> 4) << 6));
		scales[j + 8] = (uint8_t)((ls[j + 4] & 0xF) | ((lm[j + 4] & 0xF) << 4));
	}
	for (int s = 0; s < 8; s++) {
		float ds = d * ls[s], ms = dmin * lm[s];
		for (int l = 0; l < 32; l++) {
			int v = ds ? round_int((x[32 * s + l] + ms) / ds) : 0;
			q[32 * s + l] = (uint8_t)(v < 0 ? 0 : v > nmax ? nmax : v);
		}
	}
}

static void quantize_q4_K_c(const float *x, struct block_q4_K *y, int64_t nb)
{
	uint8_t q[QK_K];
	for (int64_t i = 0; i < nb; i++, x += QK_K) {
		quantize_k4(x, 15, &y[i].d, &y[i].dmin, y[i].scales, q);
		for (int j = 0; j < 4; j++)
			for (int l = 0; l < 32; l++)
				y[i].qs[32 * j + l] =
					(uint8_t)(q[64 * j + l] | (q[64 * j + 32 + l] << 4));
	}
}

/* Q5_K: the low 4 bits as Q4_K, the 5th bit of element 64j + l in bit 2j
 * of qh[l] and of element 64j + 32 + l in bit 2j + 1. */
static void quantize_q5_K_c(const float *x, struct block_q5_K *y, int64_t nb)
{
	uint8_t q[QK_K];
	for (int64_t i = 0; i < nb; i++, x += QK_K) {
		quantize_k4(x, 31, &y[i].d, &y[i].dmin, y[i].scales, q);
		memset(y[i].qh, 0, sizeof(y[i].qh));
		for (int j = 0; j < 4; j++)
			for (int l = 0; l < 32; l++) {
				int a = q[64 * j + l], b = q[64 * j + 32 + l];
				y[i].qs[32 * j + l] = (uint8_t)((a & 0xF) | ((b & 0xF) << 4));
				y[i].qh[l] |= (uint8_t)(((a >> 4) << (2 * j)) |
							((b >> 4) << (2 * j + 1)));
			}
	}
}

static void quantize_q6_K_c(const float *x, struct block_q6_K *y, int64_t nb)
{
	for (int64_t i = 0; i < nb; i++, x += QK_K) {
		float sc[16], max_sc = 0, max_abs = 0;
		for (int s = 0; s < 16; s++) {
			/* the extreme value maps to -32 exactly */
			float amax = 0, max = 0;
			for (int l = 0; l < 16; l++)
				if (fabsf(x[16 * s + l]) > amax) {
					amax = fabsf(x[16 * s + l]);
					max = x[16 * s + l];
				}
			sc[s] = max / -32;
			if (fabsf(sc[s]) > max_abs) {
				max_abs = fabsf(sc[s]);
				max_sc = sc[s];
			}
		}
		memset(&y[i], 0, sizeof(y[i]));
		if (max_abs == 0)
			continue;
		float iscale = -128 / max_sc;
		y[i].d = F2H(1 / iscale);
		float d = H2F(y[i].d);
		uint8_t L[QK_K];
		for (int s = 0; s < 16; s++) {
			int v = round_int(iscale * sc[s]);
			y[i].scales[s] = (int8_t)(v > 127 ? 127 : v < -128 ? -128 : v);
			float ds = d * y[i].scales[s];
			for (int l = 0; l < 16; l++) {
				int q = ds ? round_int(x[16 * s + l] / ds) : 0;
				q = q < -32 ? -32 : q > 31 ? 31 : q;
				L[16 * s + l] = (uint8_t)(q + 32);
			}
		}
		for (int n = 0; n < 2; n++) {
			uint8_t *ql = y[i].ql + 64 * n, *qh = y[i].qh + 32 * n;
			const uint8_t *Ln = L + 128 * n;
			for (int l = 0; l < 32; l++) {
				int q1 = Ln[l], q2 = Ln[l + 32], q3 = Ln[l + 64], q4 = Ln[l + 96];
				ql[l] = (uint8_t)((q1 & 0xF) | ((q3 & 0xF) << 4));
				ql[l + 32] = (uint8_t)((q2 & 0xF) | ((q4 & 0xF) << 4));
				qh[l] = (uint8_t)((q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) |
						  ((q4 >> 4) << 6));
			}
		}
	}
}

/*
 * Index of the IQ4 value nearest v, by a table on floor(2v): every midpoint
 * between two neighbouring values is a whole or half integer, so all v in
 * [k/2, (k+1)/2) share their nearest value (a tie goes to the larger one).
 * The quantizer calls this 16 times per weight, where a binary search was
 * most of mkmodel's time.
 */
static uint8_t iq4_nearest[512];
static pthread_once_t iq4_nearest_once = PTHREAD_ONCE_INIT;

static void iq4_nearest_init(void)
{
	for (int k = 0; k < 512; k++) {
		float v = (float)(k - 256) / 2; /* the interval's lower end decides */
		int best = 0;
		for (int j = 1; j < 16; j++)
			if (fabsf(v - quant_iq4nl_values[j]) <= fabsf(v - quant_iq4nl_values[best]))
				best = j;
		iq4_nearest[k] = (uint8_t)best;
	}
}

static inline int nearest_iq4(float v)
{
	float k = floorf(2 * v) + 256;
	return iq4_nearest[k < 0 ? 0 : k > 511 ? 511 : (int)k];
}

/*
 * The scale d of 32 values on the IQ4 grid (x ~ d * values[L]), signed:
 * the grid is asymmetric (-127 .. 113), so the group's extreme value is
 * tried at the far end (at -135 .. -121: beyond -127 it is clipped, which
 * buys finer steps for the others) and at the near end (113).  Each candidate's
 * nearest-value assignment is refitted by least squares, weighted by x^2 on
 * a floor of the group's mean square (large weights matter most in a dot
 * product; small ones still count); the best fit wins.
 */
static float iq4_fit(const float *x)
{
	float amax = 0, max = 0, w[32], ms = 0;
	for (int j = 0; j < 32; j++) {
		ms += x[j] * x[j];
		if (fabsf(x[j]) > amax) {
			amax = fabsf(x[j]);
			max = x[j];
		}
	}
	if (amax == 0)
		return 0;
	for (int j = 0; j < 32; j++)
		w[j] = ms / 32 + x[j] * x[j];
	float best = 0, best_d = 0;
	for (int k = -8; k <= 7; k++) {
		float id = (k < 7 ? (float)(quant_iq4nl_values[0] + k)
				  : (float)quant_iq4nl_values[15]) /
			   max;
		float sxq = 0, sqq = 0;
		for (int j = 0; j < 32; j++) {
			float q = quant_iq4nl_values[nearest_iq4(id * x[j])];
			sxq += w[j] * x[j] * q;
			sqq += w[j] * q * q;
		}
		if (sqq > 0 && sxq * sxq > best * sqq) {
			best = sxq * sxq / sqq;
			best_d = sxq / sqq;
		}
	}
	return best_d;
}

/* 32 values at scale d (already rounded as stored) to nibbles, Q4_0 order. */
static void iq4_pack(const float *x, float d, uint8_t qs[16])
{
	float id = d ? 1 / d : 0;
	for (int j = 0; j < 16; j++) {
		int a = nearest_iq4(x[j] * id);
		int b = nearest_iq4(x[j + 16] * id);
		qs[j] = (uint8_t)(a | (b << 4));
	}
}

static void quantize_iq4_nl_c(const float *x, struct block_iq4_nl *y, int64_t nb)
{
	pthread_once(&iq4_nearest_once, iq4_nearest_init);
	for (int64_t i = 0; i < nb; i++, x += QK4_NL) {
		y[i].d = F2H(iq4_fit(x));
		iq4_pack(x, H2F(y[i].d), y[i].qs);
	}
}

/* IQ4_XS: a scale per sub-block as IQ4_NL's, then one F16 d for the block
 * with the largest sub-block scale at -32 d, the others rounded to 6 bits. */
static void quantize_iq4_xs_c(const float *x, struct block_iq4_xs *y, int64_t nb)
{
	pthread_once(&iq4_nearest_once, iq4_nearest_init);
	for (int64_t i = 0; i < nb; i++, x += QK_K) {
		float sc[QK_K / 32], max_sc = 0;
		for (int j = 0; j < QK_K / 32; j++) {
			sc[j] = iq4_fit(x + 32 * j);
			if (fabsf(sc[j]) > fabsf(max_sc))
				max_sc = sc[j];
		}
		memset(&y[i], 0, sizeof(y[i]));
		y[i].d = F2H(-max_sc / 32);
		float d = H2F(y[i].d);
		for (int j = 0; j < QK_K / 32; j++) {
			int l = d ? round_int(sc[j] / d) : 0;
			l = l < -32 ? -32 : l > 31 ? 31 : l;
			iq4_pack(x + 32 * j, d * (float)l, y[i].qs + 16 * j);
			l += 32;
			y[i].scales_l[j / 2] |= (uint8_t)((l & 0xF) << 4 * (j % 2));
			y[i].scales_h |= (uint16_t)((l >> 4) << 2 * j);
		}
	}
}

/* E2M1 code of v (in the doubled units of quant_mxfp4_values2): nearest
 * magnitude, ties to the even code (mantissa bit 0), as the spec rounds;
 * beyond 6 it saturates. */
static int mxfp4_code(float v)
{
	float a = fabsf(v), bd = INFINITY;
	int best = 0;
	for (int k = 0; k < 8; k++) {
		float dd = fabsf(a - (float)quant_mxfp4_values2[k]);
		if (dd < bd || (dd == bd && !(k & 1))) {
			bd = dd;
			best = k;
		}
	}
	return best | (v < 0 ? 8 : 0);
}

/* The OCP Microscaling rule: shared exponent floor(log2(amax)) - 2 (2 is
 * E2M1's largest exponent), so the largest value lands in [4, 8) and
 * values from 6 up saturate to 6. */
static void quantize_mxfp4_c(const float *x, struct block_mxfp4 *y, int64_t nb)
{
	for (int64_t i = 0; i < nb; i++, x += QK_MXFP4) {
		float amax = 0;
		int ex = 0;
		for (int j = 0; j < QK_MXFP4; j++)
			amax = fmaxf(amax, fabsf(x[j]));
		frexpf(amax, &ex); /* amax = f * 2^ex, f in [0.5, 1): floor(log2) = ex - 1 */
		int e = amax > 0 ? ex - 1 - 2 + 127 : 0;
		y[i].e = (uint8_t)(e < 0 ? 0 : e > 254 ? 254 : e);
		float id = 1 / quant_e8m0_half(y[i].e);
		for (int j = 0; j < QK_MXFP4 / 2; j++)
			y[i].qs[j] = (uint8_t)(mxfp4_code(x[j] * id) |
					       (mxfp4_code(x[j + 16] * id) << 4));
	}
}

/* ---- plain C dot products --------------------------------------------------- */

static float dot_f32_c(int64_t n, const void *w, const void *act)
{
	const float *x = w, *y = act;
	/* 8 partial sums: keeps rounding comparable with the SIMD twins */
	float s[8] = { 0 };
	int64_t i = 0;
	for (; i + 8 <= n; i += 8)
		for (int k = 0; k < 8; k++)
			s[k] += x[i + k] * y[i + k];
	for (; i < n; i++)
		s[0] += x[i] * y[i];
	return ((s[0] + s[4]) + (s[1] + s[5])) + ((s[2] + s[6]) + (s[3] + s[7]));
}

static float dot_f16_c(int64_t n, const void *w, const void *act)
{
	const quant_half *x = w;
	const float *y = act;
	float s[8] = { 0 };
	int64_t i = 0;
	for (; i + 8 <= n; i += 8)
		for (int k = 0; k < 8; k++)
			s[k] += H2F(x[i + k]) * y[i + k];
	for (; i < n; i++)
		s[0] += H2F(x[i]) * y[i];
	return ((s[0] + s[4]) + (s[1] + s[5])) + ((s[2] + s[6]) + (s[3] + s[7]));
}

static float dot_bf16_c(int64_t n, const void *w, const void *act)
{
	const quant_bf16 *x = w, *y = act;
	float s[8] = { 0 };
	int64_t i = 0;
	for (; i + 8 <= n; i += 8)
		for (int k = 0; k < 8; k++)
			s[k] += quant_bf16_to_f32(x[i + k]) * quant_bf16_to_f32(y[i + k]);
	for (; i < n; i++)
		s[0] += quant_bf16_to_f32(x[i]) * quant_bf16_to_f32(y[i]);
	return ((s[0] + s[4]) + (s[1] + s[5])) + ((s[2] + s[6]) + (s[3] + s[7]));
}

static float dot_q4_0_c(int64_t n, const void *w, const void *act)
{
	const struct block_q4_0 *x = w;
	const struct block_q8_0 *y = act;
	float sum = 0;
	for (int64_t i = 0; i < n / QK4_0; i++) {
		int s = 0;
		for (int j = 0; j < 16; j++)
			s += ((x[i].qs[j] & 0xF) - 8) * y[i].qs[j] +
			     ((x[i].qs[j] >> 4) - 8) * y[i].qs[j + 16];
		sum += (H2F(x[i].d) * H2F(y[i].d)) * (float)s;
	}
	return sum;
}

static float dot_q4_1_c(int64_t n, const void *w, const void *act)
{
	const struct block_q4_1 *x = w;
	const struct block_q8_1 *y = act;
	float sum = 0;
	for (int64_t i = 0; i < n / QK4_1; i++) {
		int s = 0;
		for (int j = 0; j < 16; j++)
			s += (x[i].qs[j] & 0xF) * y[i].qs[j] + (x[i].qs[j] >> 4) * y[i].qs[j + 16];
		sum += (H2F(x[i].d) * H2F(y[i].d)) * (float)s + H2F(x[i].m) * H2F(y[i].s);
	}
	return sum;
}

static float dot_q5_0_c(int64_t n, const void *w, const void *act)
{
	const struct block_q5_0 *x = w;
	const struct block_q8_0 *y = act;
	float sum = 0;
	for (int64_t i = 0; i < n / QK5_0; i++) {
		uint32_t qh = q5_hbits(x[i].qh);
		int s = 0;
		for (int j = 0; j < 16; j++) {
			int lo = (x[i].qs[j] & 0xF) | (int)(((qh >> j) & 1) << 4);
			int hi = (x[i].qs[j] >> 4) | (int)(((qh >> (j + 16)) & 1) << 4);
			s += (lo - 16) * y[i].qs[j] + (hi - 16) * y[i].qs[j + 16];
		}
		sum += (H2F(x[i].d) * H2F(y[i].d)) * (float)s;
	}
	return sum;
}

static float dot_q5_1_c(int64_t n, const void *w, const void *act)
{
	const struct block_q5_1 *x = w;
	const struct block_q8_1 *y = act;
	float sum = 0;
	for (int64_t i = 0; i < n / QK5_1; i++) {
		uint32_t qh = q5_hbits(x[i].qh);
		int s = 0;
		for (int j = 0; j < 16; j++) {
			int lo = (x[i].qs[j] & 0xF) | (int)(((qh >> j) & 1) << 4);
			int hi = (x[i].qs[j] >> 4) | (int)(((qh >> (j + 16)) & 1) << 4);
			s += lo * y[i].qs[j] + hi * y[i].qs[j + 16];
		}
		sum += (H2F(x[i].d) * H2F(y[i].d)) * (float)s + H2F(x[i].m) * H2F(y[i].s);
	}
	return sum;
}

static float dot_q8_0_c(int64_t n, const void *w, const void *act)
{
	const struct block_q8_0 *x = w;
	const struct block_q8_0 *y = act;
	float sum = 0;
	for (int64_t i = 0; i < n / QK8_0; i++) {
		int s = 0;
		for (int j = 0; j < QK8_0; j++)
			s += x[i].qs[j] * y[i].qs[j];
		sum += (H2F(x[i].d) * H2F(y[i].d)) * (float)s;
	}
	return sum;
}

static float dot_q2_K_c(int64_t n, const void *w, const void *act)
{
	const struct block_q2_K *x = w;
	const struct block_q8_K *y = act;
	int8_t q[QK_K];
	float sum = 0;
	for (int64_t i = 0; i < n / QK_K; i++) {
		int sumi = 0, summ = 0;
		unpack_q2_K(&x[i], q);
		for (int s = 0; s < 16; s++) {
			int p = 0;
			for (int l = 0; l < 16; l++)
				p += q[16 * s + l] * y[i].qs[16 * s + l];
			sumi += (x[i].scales[s] & 0xF) * p;
			summ += (x[i].scales[s] >> 4) * y[i].bsums[s];
		}
		sum += y[i].d * H2F(x[i].d) * (float)sumi - y[i].d * H2F(x[i].dmin) * (float)summ;
	}
	return sum;
}

static float dot_q3_K_c(int64_t n, const void *w, const void *act)
{
	const struct block_q3_K *x = w;
	const struct block_q8_K *y = act;
	int8_t q[QK_K], sc[16];
	float sum = 0;
	for (int64_t i = 0; i < n / QK_K; i++) {
		int sumi = 0;
		unpack_q3_K(&x[i], q);
		quant_k3_scales(x[i].scales, sc);
		for (int s = 0; s < 16; s++) {
			int p = 0;
			for (int l = 0; l < 16; l++)
				p += q[16 * s + l] * y[i].qs[16 * s + l];
			sumi += sc[s] * p;
		}
		sum += y[i].d * H2F(x[i].d) * (float)sumi;
	}
	return sum;
}

/* Q4_K and Q5_K share the 8 x 32 scale/min structure */
static float dot_k4_tail(const int8_t q[QK_K], const uint8_t *scales, float d, float dmin,
			 const struct block_q8_K *y)
{
	int sumi = 0, summ = 0;
	for (int s = 0; s < 8; s++) {
		uint8_t sc, m;
		int p = 0;
		quant_k4_scale_min(s, scales, &sc, &m);
		for (int l = 0; l < 32; l++)
			p += q[32 * s + l] * y->qs[32 * s + l];
		sumi += sc * p;
		summ += m * (y->bsums[2 * s] + y->bsums[2 * s + 1]);
	}
	return y->d * d * (float)sumi - y->d * dmin * (float)summ;
}

static float dot_q4_K_c(int64_t n, const void *w, const void *act)
{
	const struct block_q4_K *x = w;
	const struct block_q8_K *y = act;
	int8_t q[QK_K];
	float sum = 0;
	for (int64_t i = 0; i < n / QK_K; i++) {
		unpack_q4_K(&x[i], q);
		sum += dot_k4_tail(q, x[i].scales, H2F(x[i].d), H2F(x[i].dmin), &y[i]);
	}
	return sum;
}

static float dot_q5_K_c(int64_t n, const void *w, const void *act)
{
	const struct block_q5_K *x = w;
	const struct block_q8_K *y = act;
	int8_t q[QK_K];
	float sum = 0;
	for (int64_t i = 0; i < n / QK_K; i++) {
		unpack_q5_K(&x[i], q);
		sum += dot_k4_tail(q, x[i].scales, H2F(x[i].d), H2F(x[i].dmin), &y[i]);
	}
	return sum;
}

static float dot_q6_K_c(int64_t n, const void *w, const void *act)
{
	const struct block_q6_K *x = w;
	const struct block_q8_K *y = act;
	int8_t q[QK_K];
	float sum = 0;
	for (int64_t i = 0; i < n / QK_K; i++) {
		int sumi = 0;
		unpack_q6_K(&x[i], q);
		for (int s = 0; s < 16; s++) {
			int p = 0;
			for (int l = 0; l < 16; l++)
				p += q[16 * s + l] * y[i].qs[16 * s + l];
			sumi += x[i].scales[s] * p;
		}
		sum += y[i].d * H2F(x[i].d) * (float)sumi;
	}
	return sum;
}

/* 16 nibble bytes through a table against 32 activation quants (Q4_0 order). */
static int dot_nibbles(const uint8_t *qs, const int8_t *values, const int8_t *y)
{
	int s = 0;
	for (int j = 0; j < 16; j++)
		s += values[qs[j] & 0xF] * y[j] + values[qs[j] >> 4] * y[j + 16];
	return s;
}

static float dot_iq4_nl_c(int64_t n, const void *w, const void *act)
{
	const struct block_iq4_nl *x = w;
	const struct block_q8_0 *y = act;
	float sum = 0;
	for (int64_t i = 0; i < n / QK4_NL; i++)
		sum += (H2F(x[i].d) * H2F(y[i].d)) *
		       (float)dot_nibbles(x[i].qs, quant_iq4nl_values, y[i].qs);
	return sum;
}

static float dot_iq4_xs_c(int64_t n, const void *w, const void *act)
{
	const struct block_iq4_xs *x = w;
	const struct block_q8_K *y = act;
	float sum = 0;
	for (int64_t i = 0; i < n / QK_K; i++) {
		int sumi = 0;
		for (int j = 0; j < QK_K / 32; j++)
			sumi += (quant_iq4xs_scale(&x[i], j) - 32) *
				dot_nibbles(x[i].qs + 16 * j, quant_iq4nl_values, y[i].qs + 32 * j);
		sum += y[i].d * H2F(x[i].d) * (float)sumi;
	}
	return sum;
}

static float dot_mxfp4_c(int64_t n, const void *w, const void *act)
{
	const struct block_mxfp4 *x = w;
	const struct block_q8_0 *y = act;
	float sum = 0;
	for (int64_t i = 0; i < n / QK_MXFP4; i++)
		sum += (quant_e8m0_half(x[i].e) * H2F(y[i].d)) *
		       (float)dot_nibbles(x[i].qs, quant_mxfp4_values2, y[i].qs);
	return sum;
}

/* ---- dispatch ----------------------------------------------------------------- */

/*
 * tables[] holds every level's kernels (the C twins where a level has
 * none); active is what runs: per type, the gemv level's dot and gemv and
 * the gemm level's gemm, copied in by rebuild_active().  A repacked layout
 * (QT_*_R4) exists only at the 512-bit VNNI level, so it is offered
 * (quant_repack_type) only while its file type's gemm runs there: prefill
 * is what repacking is for, and the repacked rows' gemv then runs there too.
 */
static struct quant_kernel_table tables[QUANT_ISA_COUNT];
static pthread_once_t tables_once = PTHREAD_ONCE_INIT;
static unsigned isa_mask = 1u << QUANT_ISA_SCALAR; /* levels this CPU has */
static enum quant_isa isa_best = QUANT_ISA_SCALAR;
static struct quant_kernel_table active;
static enum quant_isa active_isa;
static unsigned char level[QT_KERNEL_COUNT][2]; /* [type][gemm] */

/* The file type whose repacked layout rt is, or -1. */
static int repack_base(int rt)
{
	switch (rt) {
	case QT_Q8_0_R4: return QT_Q8_0;
	case QT_Q4_0_R4: return QT_Q4_0;
	case QT_IQ4_NL_R4: return QT_IQ4_NL;
	case QT_MXFP4_R4: return QT_MXFP4;
	default: return -1;
	}
}

static void rebuild_active(void)
{
	for (int t = 0; t < QT_KERNEL_COUNT; t++) {
		int base = repack_base(t);
		if (base >= 0) {
			/* the repacked rows' gemv and gemm both run at their file type's gemm level */
			active.k[t] = tables[level[base][1]].k[t];
			continue;
		}
		const struct quant_kernels *v = &tables[level[t][0]].k[t],
					   *m = &tables[level[t][1]].k[t];
		active.k[t].dot = v->dot;
		active.k[t].gemv = v->gemv;
		active.k[t].gemm = m->gemm;
	}
	/* the activation formats are the same at every level: the widest quantizers */
	memcpy(active.from_float, tables[isa_best].from_float, sizeof(active.from_float));
}

static void fill_scalar(struct quant_kernel_table *t)
{
	memset(t, 0, sizeof(*t));
	t->k[QT_F32].dot = dot_f32_c;
	t->k[QT_F16].dot = dot_f16_c;
	t->k[QT_BF16].dot = dot_bf16_c;
	t->k[QT_Q4_0].dot = dot_q4_0_c;
	t->k[QT_Q4_1].dot = dot_q4_1_c;
	t->k[QT_Q5_0].dot = dot_q5_0_c;
	t->k[QT_Q5_1].dot = dot_q5_1_c;
	t->k[QT_Q8_0].dot = dot_q8_0_c;
	t->k[QT_Q2_K].dot = dot_q2_K_c;
	t->k[QT_Q3_K].dot = dot_q3_K_c;
	t->k[QT_Q4_K].dot = dot_q4_K_c;
	t->k[QT_Q5_K].dot = dot_q5_K_c;
	t->k[QT_Q6_K].dot = dot_q6_K_c;
	t->k[QT_IQ4_NL].dot = dot_iq4_nl_c;
	t->k[QT_IQ4_XS].dot = dot_iq4_xs_c;
	t->k[QT_MXFP4].dot = dot_mxfp4_c;
	t->from_float[QT_Q8_0] = quantize_q8_0_c;
	t->from_float[QT_Q8_1] = quantize_q8_1_c;
	t->from_float[QT_Q8_K] = quantize_q8_K_c;
}

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>

static uint64_t read_xcr0(void)
{
	uint32_t lo, hi;
	__asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
	return (uint64_t)hi << 32 | lo;
}

/* The levels this CPU (and OS) can run, as a mask of 1 << level. */
static unsigned detect_isas(void)
{
	unsigned a, b, c, d, m = 1u << QUANT_ISA_SCALAR;
	uint64_t xcr0;
	int avx2, avx512, vnni, f16c, fma, osxsave, bf16;
	if (!__get_cpuid(1, &a, &b, &c, &d))
		return m;
	osxsave = (c >> 27) & 1;
	fma = (c >> 12) & 1;
	f16c = (c >> 29) & 1;
	if (!osxsave)
		return m;
	xcr0 = read_xcr0();
	if ((xcr0 & 6) != 6) /* the OS saves SSE and AVX state */
		return m;
	if (!__get_cpuid_count(7, 0, &a, &b, &c, &d))
		return m;
	avx2 = (b >> 5) & 1;
	/* AVX-512 F, DQ, BW, VL and the OS saving opmask/ZMM state */
	avx512 = ((b >> 16) & 1) && ((b >> 17) & 1) && ((b >> 30) & 1) && ((b >> 31) & 1) &&
		 (xcr0 & 0xe0) == 0xe0;
	vnni = (c >> 11) & 1;
	if (!(avx2 && fma && f16c))
		return m;
	m |= 1u << QUANT_ISA_AVX2;
	if (!avx512 || !vnni)
		return m;
	m |= 1u << QUANT_ISA_AVX512_256;
	/* quant_avx512.c is built with BF16 as well */
	bf16 = __get_cpuid_count(7, 1, &a, &b, &c, &d) && ((a >> 5) & 1);
	if (bf16)
		m |= 1u << QUANT_ISA_AVX512 | 1u << QUANT_ISA_AVX512_VNNI;
	return m;
}
#else
static unsigned detect_isas(void)
{
	return 1u << QUANT_ISA_SCALAR;
}
#endif

static void tables_init(void)
{
	static const enum quant_isa widest_first[] = { QUANT_ISA_AVX512_VNNI, QUANT_ISA_AVX512_256,
						       QUANT_ISA_AVX2, QUANT_ISA_SCALAR };
	isa_mask = detect_isas();
	for (size_t i = 0; i < sizeof(widest_first) / sizeof(widest_first[0]); i++)
		if (isa_mask & 1u << widest_first[i]) {
			isa_best = widest_first[i];
			break;
		}
	fill_scalar(&tables[QUANT_ISA_SCALAR]);
	for (int l = 1; l < QUANT_ISA_COUNT; l++)
		tables[l] = tables[QUANT_ISA_SCALAR];
#if defined(__x86_64__)
	if (isa_mask & 1u << QUANT_ISA_AVX2) {
		/* the AVX-512 levels start from the AVX2 kernels and replace what they can */
		quant_avx2_register(&tables[QUANT_ISA_AVX2]);
		quant_avx2_register(&tables[QUANT_ISA_AVX512]);
		quant_avx2_register(&tables[QUANT_ISA_AVX512_VNNI]);
		quant_avx2_register(&tables[QUANT_ISA_AVX512_256]);
	}
	if (isa_mask & 1u << QUANT_ISA_AVX512_256)
		quant_avx512vl_register(&tables[QUANT_ISA_AVX512_256]);
	if (isa_mask & 1u << QUANT_ISA_AVX512_VNNI) {
		quant_avx512_register(&tables[QUANT_ISA_AVX512], 0);
		quant_avx512_register(&tables[QUANT_ISA_AVX512_VNNI], 1);
	}
#endif
	active_isa = isa_best;
	memset(level, isa_best, sizeof(level));
	rebuild_active();
}

static const struct quant_kernel_table *table(void)
{
	pthread_once(&tables_once, tables_init);
	return &active;
}

enum quant_isa quant_isa_best(void)
{
	pthread_once(&tables_once, tables_init);
	return isa_best;
}

int quant_isa_supported(enum quant_isa isa)
{
	pthread_once(&tables_once, tables_init);
	return (int)isa >= 0 && isa < QUANT_ISA_COUNT && (isa_mask >> isa & 1);
}

enum quant_isa quant_isa_current(void)
{
	pthread_once(&tables_once, tables_init);
	return active_isa;
}

int quant_isa_set(enum quant_isa isa)
{
	if (!quant_isa_supported(isa))
		return -1;
	active_isa = isa;
	memset(level, isa, sizeof(level));
	rebuild_active();
	return 0;
}

static const char *const isa_names[QUANT_ISA_COUNT] = {
	[QUANT_ISA_SCALAR] = "scalar",         [QUANT_ISA_AVX2] = "avx2",
	[QUANT_ISA_AVX512] = "avx512",         [QUANT_ISA_AVX512_VNNI] = "avx512-vnni",
	[QUANT_ISA_AVX512_256] = "avx512-256",
};

const char *quant_isa_name(enum quant_isa isa)
{
	return (int)isa >= 0 && isa < QUANT_ISA_COUNT ? isa_names[isa] : "unknown";
}

int quant_isa_from_name(const char *name)
{
	for (int l = 0; l < QUANT_ISA_COUNT; l++)
		if (!strcmp(name, isa_names[l]))
			return l;
	return -1;
}

enum quant_isa quant_kernel_level(int type, int gemm)
{
	pthread_once(&tables_once, tables_init);
	if (type < 0 || type >= QT_KERNEL_COUNT)
		return isa_best;
	int base = repack_base(type);
	return (enum quant_isa)(base >= 0 ? level[base][1] : level[type][gemm != 0]);
}

int quant_kernel_choose(int type, int gemm, enum quant_isa isa)
{
	if (!quant_isa_supported(isa) || type < 0 || type >= QT_KERNEL_COUNT)
		return -1;
	level[type][gemm != 0] = (unsigned char)isa;
	rebuild_active();
	return 0;
}

int quant_kernel_has(int type, int gemm, enum quant_isa isa)
{
	if (!quant_isa_supported(isa) || type < 0 || type >= QT_KERNEL_COUNT)
		return 0;
	const struct quant_kernels *k = &tables[isa].k[type];
	return isa != QUANT_ISA_SCALAR && (gemm ? k->gemm != NULL : k->gemv != NULL);
}

int quant_quantize_row(int type, const float *src, void *dst, int64_t n)
{
	const struct quant_traits *t = quant_traits(type);
	if (!t || n < 0 || n % t->block_elems)
		return -1;
	switch (type) {
	case QT_F32: memcpy(dst, src, (size_t)n * sizeof(float)); return 0;
	case QT_F16:
		for (int64_t i = 0; i < n; i++)
			((quant_half *)dst)[i] = F2H(src[i]);
		return 0;
	case QT_BF16:
		for (int64_t i = 0; i < n; i++)
			((quant_bf16 *)dst)[i] = quant_f32_to_bf16(src[i]);
		return 0;
	case QT_Q8_0:
	case QT_Q8_1:
	case QT_Q8_K: table()->from_float[type](src, dst, n); return 0;
	case QT_Q4_0: quantize_q4_0_c(src, dst, n / QK4_0); return 0;
	case QT_Q4_K: quantize_q4_K_c(src, dst, n / QK_K); return 0;
	case QT_Q5_K: quantize_q5_K_c(src, dst, n / QK_K); return 0;
	case QT_Q6_K: quantize_q6_K_c(src, dst, n / QK_K); return 0;
	case QT_IQ4_NL: quantize_iq4_nl_c(src, dst, n / QK4_NL); return 0;
	case QT_IQ4_XS: quantize_iq4_xs_c(src, dst, n / QK_K); return 0;
	case QT_MXFP4: quantize_mxfp4_c(src, dst, n / QK_MXFP4); return 0;
	default: return -1;
	}
}

/* Kernels of a weight type; NULL for ids without a dot product (activation
 * formats, unsupported or unknown types), whose results are NaN. */
static const struct quant_kernels *kernels(int type)
{
	const struct quant_kernels *k;
	if (type < 0 || type >= QT_KERNEL_COUNT)
		return NULL;
	k = &table()->k[type];
	return k->dot ? k : NULL;
}

float quant_vec_dot(int type, int64_t n, const void *w, const void *act)
{
	const struct quant_kernels *k = kernels(type);
	return k ? k->dot(n, w, act) : NAN;
}

void quant_gemv(int type, int64_t n, const void *w, size_t row_bytes, int nrows, const void *act,
		float *out)
{
	const struct quant_kernels *k = kernels(type);
	if (!k) {
		for (int r = 0; r < nrows; r++)
			out[r] = NAN;
		return;
	}
	if (k->gemv) {
		k->gemv(n, w, row_bytes, nrows, act, out);
		return;
	}
	for (int r = 0; r < nrows; r++)
		out[r] = k->dot(n, (const char *)w + (size_t)r * row_bytes, act);
}

void quant_gemm(int type, int64_t n, const void *w, size_t row_bytes, int nrows, const void *act,
		size_t act_stride, int ntok, float *out, size_t out_stride)
{
	const struct quant_kernels *k = kernels(type);
	if (!k) {
		for (int t = 0; t < ntok; t++)
			for (int r = 0; r < nrows; r++)
				out[(size_t)t * out_stride + r] = NAN;
		return;
	}
	if (k->gemm) {
		k->gemm(n, w, row_bytes, nrows, act, act_stride, ntok, out, out_stride);
		return;
	}
	for (int t = 0; t < ntok; t++)
		quant_gemv(type, n, w, row_bytes, nrows, (const char *)act + (size_t)t * act_stride,
			   out + (size_t)t * out_stride);
}

/* ---- load-time repacking ------------------------------------------------------ */

int quant_repack_type(int type, int64_t n)
{
	int rt = type == QT_Q8_0     ? QT_Q8_0_R4
		 : type == QT_Q4_0   ? QT_Q4_0_R4
		 : type == QT_IQ4_NL ? QT_IQ4_NL_R4
		 : type == QT_MXFP4  ? QT_MXFP4_R4
				     : -1;
	if (rt < 0 || n <= 0 || n % (4 * 32) || !kernels(rt))
		return -1;
	return rt;
}

void quant_repack_rows(int type, int64_t n, const void *src, size_t row_bytes, int nrows, void *dst)
{
	int64_t ng = n / (4 * 32);
	for (int r = 0; r < nrows; r++) {
		const uint8_t *in = (const uint8_t *)src + (size_t)r * row_bytes;
		uint8_t *o = (uint8_t *)dst + (size_t)r * row_bytes;
		if (type == QT_Q4_0 || type == QT_IQ4_NL) {
			/* one layout: F16 d, then 16 nibble bytes */
			_Static_assert(sizeof(struct block_iq4_nl) == sizeof(struct block_q4_0) &&
					       offsetof(struct block_iq4_nl, qs) ==
						       offsetof(struct block_q4_0, qs),
				       "iq4_nl and q4_0 share a layout");
			const struct block_q4_0 *x = (const struct block_q4_0 *)in;
			for (int64_t g = 0; g < ng; g++, x += 4, o += 4 * sizeof(*x)) {
				for (int b = 0; b < 4; b++) {
					memcpy(o + 16 * b, x[b].qs, 16);
					memcpy(o + 64 + 2 * b, &x[b].d, 2);
				}
			}
			continue;
		}
		if (type == QT_MXFP4) {
			const struct block_mxfp4 *x = (const struct block_mxfp4 *)in;
			for (int64_t g = 0; g < ng; g++, x += 4, o += 4 * sizeof(*x)) {
				for (int b = 0; b < 4; b++) {
					memcpy(o + 16 * b, x[b].qs, 16);
					o[64 + b] = x[b].e;
				}
			}
			continue;
		}
		const struct block_q8_0 *x = (const struct block_q8_0 *)in;
		for (int64_t g = 0; g < ng; g++, x += 4, o += 4 * sizeof(*x)) {
			for (int b = 0; b < 4; b++) {
				for (int j = 0; j < 16; j++) {
					o[16 * b + j] = (uint8_t)x[b].qs[j] ^ 0x80;
					o[64 + 16 * b + j] = (uint8_t)x[b].qs[16 + j] ^ 0x80;
				}
				memcpy(o + 128 + 2 * b, &x[b].d, 2);
			}
		}
	}
}
