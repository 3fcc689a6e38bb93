/* Private to quant*.c: the kernel table that quant.c dispatches through. */
#ifndef PALAVER_QUANT_INTERNAL_H
#define PALAVER_QUANT_INTERNAL_H

#include "quant.h"

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

/* Portable half conversions (quant_f16_to_f32 & co. use F16C when built
 * with it); exported for the tests that hold them to the hardware. */
float quant_f16_to_f32_soft(quant_half h);
quant_half quant_f32_to_f16_soft(float f);

/* Shared scalar helpers. */
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
