/* Tensor element types: block layouts (shared with gpu/), conversion and dot products. */
#ifndef PALAVER_QUANT_H
#define PALAVER_QUANT_H

#include <stddef.h>
#include <stdint.h>

/* Type ids are GGUF's (ggml's) numbering, so a tensor's type field maps directly. */
enum quant_type {
	QT_F32 = 0,
	QT_F16 = 1,
	QT_Q4_0 = 2,
	QT_Q4_1 = 3,
	QT_Q5_0 = 6,
	QT_Q5_1 = 7,
	QT_Q8_0 = 8,
	QT_Q8_1 = 9,
	QT_Q2_K = 10,
	QT_Q3_K = 11,
	QT_Q4_K = 12,
	QT_Q5_K = 13,
	QT_Q6_K = 14,
	QT_Q8_K = 15,
	QT_IQ4_NL = 20,
	QT_IQ4_XS = 23,
	QT_BF16 = 30,
	QT_MXFP4 = 39,
	QT_COUNT = 40, /* ids at or above this are unknown */
	/* Internal layouts made at load time (never in a file, unknown to
	 * quant_traits()): see quant_repack(). */
	QT_Q8_0_R4 = 64,
	QT_Q4_0_R4 = 65,
	QT_IQ4_NL_R4 = 66,
	QT_MXFP4_R4 = 67,
	QT_KERNEL_COUNT = 68 /* size of the kernel tables */
};

typedef uint16_t quant_half; /* IEEE binary16 bits */
typedef uint16_t quant_bf16; /* bfloat16 bits */

#define QK4_0 32
#define QK4_1 32
#define QK5_0 32
#define QK5_1 32
#define QK8_0 32
#define QK8_1 32
#define QK_K 256
#define K_SCALE_SIZE 12
#define QK4_NL 32
#define QK_MXFP4 32

struct block_q4_0 {
	quant_half d;          /* scale */
	uint8_t qs[QK4_0 / 2]; /* nibbles: low = elements 0..15, high = 16..31 */
};
_Static_assert(sizeof(struct block_q4_0) == 2 + QK4_0 / 2, "q4_0 size");

struct block_q4_1 {
	quant_half d, m;
	uint8_t qs[QK4_1 / 2];
};
_Static_assert(sizeof(struct block_q4_1) == 4 + QK4_1 / 2, "q4_1 size");

struct block_q5_0 {
	quant_half d;
	uint8_t qh[4]; /* 5th bits */
	uint8_t qs[QK5_0 / 2];
};
_Static_assert(sizeof(struct block_q5_0) == 2 + 4 + QK5_0 / 2, "q5_0 size");

struct block_q5_1 {
	quant_half d, m;
	uint8_t qh[4];
	uint8_t qs[QK5_1 / 2];
};
_Static_assert(sizeof(struct block_q5_1) == 4 + 4 + QK5_1 / 2, "q5_1 size");

struct block_q8_0 {
	quant_half d;
	int8_t qs[QK8_0];
};
_Static_assert(sizeof(struct block_q8_0) == 2 + QK8_0, "q8_0 size");

struct block_q8_1 {
	quant_half d; /* scale */
	quant_half s; /* d * sum(qs) */
	int8_t qs[QK8_1];
};
_Static_assert(sizeof(struct block_q8_1) == 4 + QK8_1, "q8_1 size");

struct block_q2_K {
	uint8_t scales[QK_K / 16]; /* 4-bit scale and 4-bit min per 16 elements */
	uint8_t qs[QK_K / 4];      /* 2-bit quants */
	quant_half d, dmin;
};
_Static_assert(sizeof(struct block_q2_K) == 2 * 2 + QK_K / 16 + QK_K / 4, "q2_K size");

struct block_q3_K {
	uint8_t hmask[QK_K / 8]; /* high bit */
	uint8_t qs[QK_K / 4];    /* low 2 bits */
	uint8_t scales[12];      /* 6-bit scales, packed */
	quant_half d;
};
_Static_assert(sizeof(struct block_q3_K) == 2 + QK_K / 4 + QK_K / 8 + 12, "q3_K size");

struct block_q4_K {
	quant_half d, dmin;
	uint8_t scales[K_SCALE_SIZE]; /* 6-bit scales and mins, packed */
	uint8_t qs[QK_K / 2];
};
_Static_assert(sizeof(struct block_q4_K) == 2 * 2 + K_SCALE_SIZE + QK_K / 2, "q4_K size");

struct block_q5_K {
	quant_half d, dmin;
	uint8_t scales[K_SCALE_SIZE];
	uint8_t qh[QK_K / 8];
	uint8_t qs[QK_K / 2];
};
_Static_assert(sizeof(struct block_q5_K) == 2 * 2 + K_SCALE_SIZE + QK_K / 2 + QK_K / 8,
	       "q5_K size");

struct block_q6_K {
	uint8_t ql[QK_K / 2];     /* low 4 bits */
	uint8_t qh[QK_K / 4];     /* high 2 bits */
	int8_t scales[QK_K / 16]; /* 8-bit scales */
	quant_half d;
};
_Static_assert(sizeof(struct block_q6_K) == 2 + QK_K / 16 + 3 * QK_K / 4, "q6_K size");

struct block_q8_K {
	float d;
	int8_t qs[QK_K];
	int16_t bsums[QK_K / 16]; /* sums of qs in groups of 16 */
};
_Static_assert(sizeof(struct block_q8_K) == 4 + QK_K + QK_K / 16 * 2, "q8_K size");

/*
 * Non-linear 4-bit: each nibble indexes a 16-entry table of int8 values
 * (-127 .. 113, denser near zero: quant_iq4nl_values in quant.c), times a
 * scale.  IQ4_NL: one F16 scale per 32, nibbles as Q4_0 (low = elements
 * 0..15, high = 16..31).
 */
struct block_iq4_nl {
	quant_half d;
	uint8_t qs[QK4_NL / 2];
};
_Static_assert(sizeof(struct block_iq4_nl) == 2 + QK4_NL / 2, "iq4_nl size");

/* IQ4_XS: 256 values in 8 sub-blocks of 32, each with a 6-bit scale ls
 * (value d * (ls - 32)): low 4 bits in scales_l (sub-block 2k in the low
 * nibble of byte k, 2k+1 in the high one), high 2 bits at bits 2j..2j+1 of
 * scales_h; sub-block j's nibbles are qs[16j .. 16j+15], laid out as IQ4_NL. */
struct block_iq4_xs {
	quant_half d;
	uint16_t scales_h;
	uint8_t scales_l[QK_K / 64];
	uint8_t qs[QK_K / 2];
};
_Static_assert(sizeof(struct block_iq4_xs) == 2 + 2 + QK_K / 64 + QK_K / 2, "iq4_xs size");

/* MXFP4 (OCP Microscaling): 32 FP4 E2M1 values (sign, 2-bit exponent,
 * 1-bit mantissa: 0, 0.5, 1, 1.5, 2, 3, 4, 6 and their negatives) sharing
 * an E8M0 scale e (2^(e - 127); 0xFF is NaN); nibbles as Q4_0.  The scale
 * byte comes first, as ggml stores it (gpt-oss's experts). */
struct block_mxfp4 {
	uint8_t e;
	uint8_t qs[QK_MXFP4 / 2];
};
_Static_assert(sizeof(struct block_mxfp4) == 1 + QK_MXFP4 / 2, "mxfp4 size");

struct quant_traits {
	const char *name;         /* "Q4_K", ... */
	int block_elems;          /* elements per block */
	size_t block_bytes;       /* bytes per block */
	enum quant_type dot_type; /* activation format its vec_dot takes */
	int supported;            /* palaver can dequantize and dot it */
};

/* Traits for a type id; NULL for an id palaver has never heard of.
 * Known-but-unsupported types (IQ*, TQ*, ...) have a name and supported == 0. */
const struct quant_traits *quant_traits(int type);
const char *
quant_type_name(int type); /* "type 99" style for unknown ids (static buffer per thread) */

/* Bytes for a row of n elements; -1 if n is not a multiple of the block size. */
int quant_row_bytes(int type, int64_t n, size_t *out);

/* Plain conversions (exact IEEE rounding). */
float quant_f16_to_f32(quant_half h);
quant_half quant_f32_to_f16(float f);
float quant_bf16_to_f32(quant_bf16 h);
quant_bf16 quant_f32_to_bf16(float f);

/* Dequantize n elements (a multiple of the block size). */
void quant_dequantize_row(int type, const void *src, float *dst, int64_t n);
/* Quantize n floats: F32, F16, BF16, Q8_0, Q8_1, Q8_K (activations) and
 * Q4_0, Q8_0, Q4_K, Q5_K, Q6_K, IQ4_NL, IQ4_XS, MXFP4 (for writing models).
 * Returns -1 for other types. */
int quant_quantize_row(int type, const float *src, void *dst, int64_t n);

/* Dot product of one weight row (type) with activations already in that
 * type's dot_type format.  n is the row length.  A type without a dot
 * product (not supported, or an activation format) gives NaN results. */
float quant_vec_dot(int type, int64_t n, const void *w, const void *act);
/* out[r] = dot(row r, act) for nrows rows laid out row_bytes apart. */
void quant_gemv(int type, int64_t n, const void *w, size_t row_bytes, int nrows, const void *act,
		float *out);

/* Prefill: out[t * out_stride + r] = dot(row r, activation row t) for ntok
 * activation rows laid out act_stride bytes apart (each in dot_type format).
 * Loads each weight block once for many tokens. */
void quant_gemm(int type, int64_t n, const void *w, size_t row_bytes, int nrows, const void *act,
		size_t act_stride, int ntok, float *out, size_t out_stride);

/*
 * Load-time repacking.  Q8_0, Q4_0, IQ4_NL and MXFP4 rows are regrouped four blocks at a
 * time into the lane layout the AVX-512 VNNI kernels otherwise build with
 * shuffles on every load.  Q8_0: 64 bytes of the blocks' first 16 quants,
 * 64 of their last 16 (both made unsigned with an xor of 0x80), then the
 * four F16 scales (136 bytes).  Q4_0 and IQ4_NL (the same block layout):
 * the four blocks' 16 nibble bytes side by side, then the four scales
 * (72 bytes); MXFP4 likewise with its four scale bytes (68 bytes).  Each group is the size of its
 * four blocks, so a repacked tensor is as large as the file's.  Results are
 * bit-identical; prefill is faster (no shuffles per block).
 * quant_repack_type() is the type a row of n elements of `type` repacks to
 * with the current kernels, or -1 (no kernel for it on this CPU, or n not a
 * multiple of 128).  quant_repack_rows() writes nrows rows (row_bytes apart
 * in src, packed in dst: the same row_bytes).
 */
int quant_repack_type(int type, int64_t n);
void quant_repack_rows(int type, int64_t n, const void *src, size_t row_bytes, int nrows,
		       void *dst);

/*
 * Kernel selection.  Levels: plain C, AVX2, AVX-512 on 256-bit registers
 * with VNNI (the AVX2 kernels rebuilt with vpdpbusd: for CPUs whose 512-bit
 * operations are split in two), AVX-512 without VNNI (its float kernels
 * only) and AVX-512 on 512-bit registers with VNNI.  Every weight type has
 * its own level for gemv (decode, and its dot product) and for gemm
 * (prefill): quant_select.c measures them on this CPU.  Until then, and
 * after quant_isa_set(), every type runs the widest level the CPU has.
 * None of these may be called while other threads compute.
 */
enum quant_isa {
	QUANT_ISA_SCALAR,
	QUANT_ISA_AVX2,
	QUANT_ISA_AVX512,
	QUANT_ISA_AVX512_VNNI,
	QUANT_ISA_AVX512_256,
	QUANT_ISA_COUNT
};
enum quant_isa quant_isa_best(void); /* the widest level this CPU has */
int quant_isa_supported(enum quant_isa isa);
/* The level quant_isa_set() last forced (the widest at start); per-type
 * choices may differ since (quant_kernel_level). */
enum quant_isa quant_isa_current(void);
int quant_isa_set(enum quant_isa isa); /* every type at isa; -1 if the CPU lacks it */
const char *quant_isa_name(enum quant_isa isa);
/* The level named name ("avx2", ...); -1 for an unknown name. */
int quant_isa_from_name(const char *name);
/* The level running type's gemv (gemm = 0) or gemm (gemm = 1). */
enum quant_isa quant_kernel_level(int type, int gemm);
/* Run type's gemv or gemm at isa; -1 if the CPU lacks it or the type id is
 * out of range.  A level without a kernel for the type runs its C twin. */
int quant_kernel_choose(int type, int gemm, enum quant_isa isa);
/* Whether isa has its own SIMD gemv (gemm = 0) or gemm for type, not the C twin's loop. */
int quant_kernel_has(int type, int gemm, enum quant_isa isa);

#endif
