/* Dequantization on the device: eight elements of a weight row at a time, in quant.h's layouts. */

/*
 * Eight elements (a "chunk") is the unit every weight kernel works in: a
 * Q4_0 or Q8_0 block is 4 chunks, a K-quant block 32, and within a chunk
 * all elements share one scale, so each chunk decodes its scale once.  The
 * float types count as blocks of one element: a row whose length is not a
 * multiple of 8 ends with a tail that dequant1() reads element by element.  Rows are read with byte and 16-bit loads only: Q4_0,
 * Q8_0 and Q6_K blocks are 2-byte aligned at best.
 */
#ifndef PALAVER_GPU_DEQUANT_CUH
#define PALAVER_GPU_DEQUANT_CUH

#include "common.cuh"

/* Elements and bytes per block of each weight type the kernels take. */
template <int T> struct qtype;
template <> struct qtype<QT_F32> {
	enum { elems = 1, bytes = 4 };
};
template <> struct qtype<QT_F16> {
	enum { elems = 1, bytes = 2 };
};
template <> struct qtype<QT_BF16> {
	enum { elems = 1, bytes = 2 };
};
template <> struct qtype<QT_Q4_0> {
	enum { elems = QK4_0, bytes = sizeof(struct block_q4_0) };
};
template <> struct qtype<QT_Q4_1> {
	enum { elems = QK4_1, bytes = sizeof(struct block_q4_1) };
};
template <> struct qtype<QT_Q5_0> {
	enum { elems = QK5_0, bytes = sizeof(struct block_q5_0) };
};
template <> struct qtype<QT_Q5_1> {
	enum { elems = QK5_1, bytes = sizeof(struct block_q5_1) };
};
template <> struct qtype<QT_Q2_K> {
	enum { elems = QK_K, bytes = sizeof(struct block_q2_K) };
};
template <> struct qtype<QT_Q3_K> {
	enum { elems = QK_K, bytes = sizeof(struct block_q3_K) };
};
template <> struct qtype<QT_Q8_0> {
	enum { elems = QK8_0, bytes = sizeof(struct block_q8_0) };
};
template <> struct qtype<QT_Q4_K> {
	enum { elems = QK_K, bytes = sizeof(struct block_q4_K) };
};
template <> struct qtype<QT_Q5_K> {
	enum { elems = QK_K, bytes = sizeof(struct block_q5_K) };
};
template <> struct qtype<QT_Q6_K> {
	enum { elems = QK_K, bytes = sizeof(struct block_q6_K) };
};

__device__ __forceinline__ float pv_half_at(const uint8_t *p)
{
	return pv_h2f(*(const uint16_t *)p);
}

/* Q4_K / Q5_K: scale and min of sub-block j (0..7), six bits each in 12 bytes. */
__device__ __forceinline__ void pv_k4_scale_min(int j, const uint8_t *q, int *sc, int *m)
{
	if (j < 4) {
		*sc = q[j] & 63;
		*m = q[j + 4] & 63;
	} else {
		*sc = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
		*m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
	}
}

/* v[0..7] = elements 8c .. 8c+7 of the row that starts at `row`. */
template <int T> __device__ void dequant8(const uint8_t *row, int64_t c, float v[8]);

/* Element i of a row of a float type: the tail of a row whose length is
 * not a multiple of 8 (stories260K's feed-forward rows of 172). */
template <int T> __device__ __forceinline__ float dequant1(const uint8_t *row, int64_t i)
{
	if (T == QT_F32)
		return ((const float *)row)[i];
	if (T == QT_F16)
		return pv_h2f(((const uint16_t *)row)[i]);
	return pv_bf2f(((const uint16_t *)row)[i]);
}

template <>
__device__ __forceinline__ void dequant8<QT_F32>(const uint8_t *row, int64_t c, float v[8])
{
	const float *r = (const float *)row + 8 * c;
	for (int i = 0; i < 8; i++)
		v[i] = r[i];
}

template <>
__device__ __forceinline__ void dequant8<QT_F16>(const uint8_t *row, int64_t c, float v[8])
{
	const uint16_t *r = (const uint16_t *)row + 8 * c;
	for (int i = 0; i < 8; i++)
		v[i] = pv_h2f(r[i]);
}

template <>
__device__ __forceinline__ void dequant8<QT_BF16>(const uint8_t *row, int64_t c, float v[8])
{
	const uint16_t *r = (const uint16_t *)row + 8 * c;
	for (int i = 0; i < 8; i++)
		v[i] = pv_bf2f(r[i]);
}

template <>
__device__ __forceinline__ void dequant8<QT_Q4_0>(const uint8_t *row, int64_t c, float v[8])
{
	/* qs[j]: low nibble element j, high nibble element j + 16 */
	const uint8_t *b = row + (c / 4) * sizeof(struct block_q4_0);
	int part = (int)(c % 4), shift = part >= 2 ? 4 : 0, o = (part & 1) * 8;
	float d = pv_half_at(b);
	const uint8_t *qs = b + 2 + o;
	for (int i = 0; i < 8; i++)
		v[i] = d * (float)(((qs[i] >> shift) & 0xF) - 8);
}

template <>
__device__ __forceinline__ void dequant8<QT_Q4_1>(const uint8_t *row, int64_t c, float v[8])
{
	/* as Q4_0, with a minimum added instead of the offset 8 */
	const uint8_t *b = row + (c / 4) * sizeof(struct block_q4_1);
	int part = (int)(c % 4), shift = part >= 2 ? 4 : 0, o = (part & 1) * 8;
	float d = pv_half_at(b), m = pv_half_at(b + 2);
	const uint8_t *qs = b + 4 + o;
	for (int i = 0; i < 8; i++)
		v[i] = d * (float)((qs[i] >> shift) & 0xF) + m;
}

/* Q5_0 / Q5_1: element e (0..31) of a block: the nibble of qs[e % 16] (high
 * for e >= 16) and bit e of the little-endian 32-bit qh as its fifth bit. */
__device__ __forceinline__ void pv_q5_quants(const uint8_t *qh4, const uint8_t *qs, int e0,
					     int q[8])
{
	uint32_t qh = (uint32_t)qh4[0] | (uint32_t)qh4[1] << 8 | (uint32_t)qh4[2] << 16 |
		      (uint32_t)qh4[3] << 24;
	int shift = e0 >= 16 ? 4 : 0;
	for (int i = 0; i < 8; i++) {
		int e = e0 + i;
		q[i] = ((qs[e % 16] >> shift) & 0xF) | (int)(((qh >> e) & 1) << 4);
	}
}

template <>
__device__ __forceinline__ void dequant8<QT_Q5_0>(const uint8_t *row, int64_t c, float v[8])
{
	const uint8_t *b = row + (c / 4) * sizeof(struct block_q5_0);
	int q[8];
	float d = pv_half_at(b);
	pv_q5_quants(b + 2, b + 6, (int)(c % 4) * 8, q);
	for (int i = 0; i < 8; i++)
		v[i] = d * (float)(q[i] - 16);
}

template <>
__device__ __forceinline__ void dequant8<QT_Q5_1>(const uint8_t *row, int64_t c, float v[8])
{
	const uint8_t *b = row + (c / 4) * sizeof(struct block_q5_1);
	int q[8];
	float d = pv_half_at(b), m = pv_half_at(b + 2);
	pv_q5_quants(b + 4, b + 8, (int)(c % 4) * 8, q);
	for (int i = 0; i < 8; i++)
		v[i] = d * (float)q[i] + m;
}

template <>
__device__ __forceinline__ void dequant8<QT_Q2_K>(const uint8_t *row, int64_t c, float v[8])
{
	/* element 128n + 32j + l: bits 2j.. of qs[32n + l]; per 16 elements a
	 * 4-bit scale (low nibble) and min (high nibble) */
	const uint8_t *b = row + (c / 32) * sizeof(struct block_q2_K);
	int e = (int)(c % 32) * 8, n = e / 128, j = (e % 128) / 32, l0 = e % 32;
	const uint8_t *qs = b + 16 + 32 * n + l0;
	int sc = b[e / 16];
	float dl = pv_half_at(b + 80) * (float)(sc & 0xF),
	      ml = pv_half_at(b + 82) * (float)(sc >> 4);
	for (int i = 0; i < 8; i++)
		v[i] = dl * (float)((qs[i] >> (2 * j)) & 3) - ml;
}

template <>
__device__ __forceinline__ void dequant8<QT_Q3_K>(const uint8_t *row, int64_t c, float v[8])
{
	/* element 128n + 32j + l: bits 2j.. of qs[32n + l], minus 4 unless bit
	 * 4n + j of hmask[l] is set; per 16 elements a 6-bit scale (low four
	 * bits in scales[0..7], top two in scales[8..11]) less 32 */
	const uint8_t *b = row + (c / 32) * sizeof(struct block_q3_K);
	int e = (int)(c % 32) * 8, n = e / 128, j = (e % 128) / 32, l0 = e % 32, s = e / 16;
	const uint8_t *hm = b + l0, *qs = b + 32 + 32 * n + l0, *sp = b + 96;
	int lo = s < 8 ? (sp[s] & 0xF) : (sp[s - 8] >> 4);
	int hi = (sp[8 + (s & 3)] >> (2 * (s >> 2))) & 3;
	float ds = pv_half_at(b + 108) * (float)((lo | (hi << 4)) - 32);
	for (int i = 0; i < 8; i++) {
		int q = (qs[i] >> (2 * j)) & 3;
		if (!((hm[i] >> (4 * n + j)) & 1))
			q -= 4;
		v[i] = ds * (float)q;
	}
}

template <>
__device__ __forceinline__ void dequant8<QT_Q8_0>(const uint8_t *row, int64_t c, float v[8])
{
	const uint8_t *b = row + (c / 4) * sizeof(struct block_q8_0);
	float d = pv_half_at(b);
	const int8_t *qs = (const int8_t *)(b + 2) + (c % 4) * 8;
	for (int i = 0; i < 8; i++)
		v[i] = d * (float)qs[i];
}

template <>
__device__ __forceinline__ void dequant8<QT_Q4_K>(const uint8_t *row, int64_t c, float v[8])
{
	/* qs[32j + l]: low nibble element 64j + l, high nibble 64j + 32 + l */
	const uint8_t *b = row + (c / 32) * sizeof(struct block_q4_K);
	int e = (int)(c % 32) * 8, j = e / 64, hi = (e % 64) >= 32, l0 = e % 32, sc, m;
	float d = pv_half_at(b), dmin = pv_half_at(b + 2);
	pv_k4_scale_min(e / 32, b + 4, &sc, &m);
	const uint8_t *qs = b + 16 + 32 * j + l0;
	float ds = d * (float)sc, dm = dmin * (float)m;
	for (int i = 0; i < 8; i++)
		v[i] = ds * (float)((qs[i] >> (4 * hi)) & 0xF) - dm;
}

template <>
__device__ __forceinline__ void dequant8<QT_Q5_K>(const uint8_t *row, int64_t c, float v[8])
{
	/* as Q4_K, with the fifth bit of element 64j + 32h + l in bit 2j + h of qh[l] */
	const uint8_t *b = row + (c / 32) * sizeof(struct block_q5_K);
	int e = (int)(c % 32) * 8, j = e / 64, hi = (e % 64) >= 32, l0 = e % 32, sc, m;
	float d = pv_half_at(b), dmin = pv_half_at(b + 2);
	pv_k4_scale_min(e / 32, b + 4, &sc, &m);
	const uint8_t *qh = b + 16 + l0, *qs = b + 48 + 32 * j + l0;
	float ds = d * (float)sc, dm = dmin * (float)m;
	for (int i = 0; i < 8; i++) {
		int q = ((qs[i] >> (4 * hi)) & 0xF) | (((qh[i] >> (2 * j + hi)) & 1) << 4);
		v[i] = ds * (float)q - dm;
	}
}

template <>
__device__ __forceinline__ void dequant8<QT_Q6_K>(const uint8_t *row, int64_t c, float v[8])
{
	/* per half n (128 elements), quarter k (32), lane l: the low four bits in
	 * ql[64n + 32(k & 1) + l] (high nibble for k >= 2), the top two in bits
	 * 2k.. of qh[32n + l]; one int8 scale per 16 elements */
	const uint8_t *b = row + (c / 32) * sizeof(struct block_q6_K);
	int e = (int)(c % 32) * 8, n = e / 128, k = (e % 128) / 32, l0 = e % 32;
	const uint8_t *ql = b + 64 * n + 32 * (k & 1) + l0, *qh = b + 128 + 32 * n + l0;
	float ds = pv_half_at(b + 208) * (float)((const int8_t *)(b + 192))[e / 16];
	for (int i = 0; i < 8; i++) {
		int q = ((ql[i] >> (k >= 2 ? 4 : 0)) & 0xF) | (((qh[i] >> (2 * k)) & 3) << 4);
		v[i] = ds * (float)(q - 32);
	}
}

#endif
