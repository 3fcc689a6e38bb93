/* quant: type traits, half/bfloat16 conversions, (de)quantization and every dot kernel against its reference. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quant.h"
#include "testutil.h"
#include "quant_internal.h"
#if defined(__F16C__)
#include <immintrin.h>
#endif

/* ---- helpers ---------------------------------------------------------------- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint32_t rnd_u32(void)
{
	/* xorshift64*: deterministic across runs */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return (uint32_t)((rng_state * 0x2545f4914f6cdd1dull) >> 32);
}

static float rnd_uniform(void)
{
	return (float)(rnd_u32() >> 8) / (float)(1u << 24);
}

static float rnd_normal(void)
{
	float u = rnd_uniform() + 1e-7f, v = rnd_uniform();
	return sqrtf(-2 * logf(u)) * cosf(6.2831853f * v);
}

static void fill_normal(float *x, int64_t n, float scale)
{
	for (int64_t i = 0; i < n; i++)
		x[i] = rnd_normal() * scale;
}

static size_t row_bytes(int type, int64_t n)
{
	size_t b = 0;
	assert_int_equal(quant_row_bytes(type, n, &b), 0);
	return b;
}

static float rnd_scale_half_bits(float lo, float hi, quant_half *out)
{
	*out = quant_f32_to_f16(lo + (hi - lo) * rnd_uniform());
	return quant_f16_to_f32(*out);
}

/* Random weight row of a type: random quant bits, sane scales. */
static void fill_random_weights(int type, void *row, int64_t n)
{
	const struct quant_traits *t = quant_traits(type);
	int64_t nb = n / t->block_elems;
	uint8_t *p = row;
	size_t bytes = row_bytes(type, n);
	if (type == QT_F32) {
		fill_normal(row, n, 1);
		return;
	}
	if (type == QT_F16 || type == QT_BF16) {
		for (int64_t i = 0; i < n; i++) {
			float v = rnd_normal();
			if (type == QT_F16)
				((quant_half *)row)[i] = quant_f32_to_f16(v);
			else
				((quant_bf16 *)row)[i] = quant_f32_to_bf16(v);
		}
		return;
	}
	for (size_t i = 0; i < bytes; i++)
		p[i] = (uint8_t)rnd_u32();
	for (int64_t i = 0; i < nb; i++) {
		switch (type) {
		case QT_Q4_0: {
			struct block_q4_0 *b = (struct block_q4_0 *)row + i;
			rnd_scale_half_bits(-0.1f, 0.1f, &b->d);
			break;
		}
		case QT_Q4_1: {
			struct block_q4_1 *b = (struct block_q4_1 *)row + i;
			rnd_scale_half_bits(0.001f, 0.1f, &b->d);
			rnd_scale_half_bits(-0.8f, 0.0f, &b->m);
			break;
		}
		case QT_Q5_0: {
			struct block_q5_0 *b = (struct block_q5_0 *)row + i;
			rnd_scale_half_bits(-0.05f, 0.05f, &b->d);
			break;
		}
		case QT_Q5_1: {
			struct block_q5_1 *b = (struct block_q5_1 *)row + i;
			rnd_scale_half_bits(0.001f, 0.05f, &b->d);
			rnd_scale_half_bits(-0.8f, 0.0f, &b->m);
			break;
		}
		case QT_Q8_0: {
			struct block_q8_0 *b = (struct block_q8_0 *)row + i;
			rnd_scale_half_bits(-0.01f, 0.01f, &b->d);
			break;
		}
		case QT_Q2_K: {
			struct block_q2_K *b = (struct block_q2_K *)row + i;
			rnd_scale_half_bits(0.001f, 0.05f, &b->d);
			rnd_scale_half_bits(0.001f, 0.05f, &b->dmin);
			break;
		}
		case QT_Q3_K: {
			struct block_q3_K *b = (struct block_q3_K *)row + i;
			rnd_scale_half_bits(-0.01f, 0.01f, &b->d);
			break;
		}
		case QT_Q4_K: {
			struct block_q4_K *b = (struct block_q4_K *)row + i;
			rnd_scale_half_bits(0.0001f, 0.01f, &b->d);
			rnd_scale_half_bits(0.0001f, 0.01f, &b->dmin);
			break;
		}
		case QT_Q5_K: {
			struct block_q5_K *b = (struct block_q5_K *)row + i;
			rnd_scale_half_bits(0.0001f, 0.005f, &b->d);
			rnd_scale_half_bits(0.0001f, 0.01f, &b->dmin);
			break;
		}
		case QT_Q6_K: {
			struct block_q6_K *b = (struct block_q6_K *)row + i;
			rnd_scale_half_bits(-0.001f, 0.001f, &b->d);
			break;
		}
		case QT_IQ4_NL: {
			struct block_iq4_nl *b = (struct block_iq4_nl *)row + i;
			rnd_scale_half_bits(-0.001f, 0.001f, &b->d);
			break;
		}
		case QT_IQ4_XS: {
			/* random 6-bit sub-block scales come with the random bits */
			struct block_iq4_xs *b = (struct block_iq4_xs *)row + i;
			rnd_scale_half_bits(-0.0005f, 0.0005f, &b->d);
			break;
		}
		case QT_MXFP4: {
			struct block_mxfp4 *b = (struct block_mxfp4 *)row + i;
			b->e = (uint8_t)(118 + rnd_u32() % 8); /* 2^-9 .. 2^-2 */
			break;
		}
		default: fail_msg("no random filler for %s", quant_type_name(type));
		}
	}
}

static const int weight_types[] = { QT_F32,  QT_F16,    QT_BF16,   QT_Q4_0, QT_Q4_1, QT_Q5_0,
				    QT_Q5_1, QT_Q8_0,   QT_Q2_K,   QT_Q3_K, QT_Q4_K, QT_Q5_K,
				    QT_Q6_K, QT_IQ4_NL, QT_IQ4_XS, QT_MXFP4 };
#define N_WEIGHT_TYPES ((int)(sizeof(weight_types) / sizeof(weight_types[0])))

static double rel_rms(const float *a, const float *ref, int64_t n)
{
	double e = 0, r = 0;
	for (int64_t i = 0; i < n; i++) {
		e += (double)(a[i] - ref[i]) * (a[i] - ref[i]);
		r += (double)ref[i] * ref[i];
	}
	return sqrt(e / (r > 0 ? r : 1));
}

/* ---- traits ------------------------------------------------------------------ */

static void test_traits(void **state)
{
	static const struct {
		int id;
		const char *name;
		int elems;
		size_t bytes;
		int supported;
	} want[] = {
		{ 0, "F32", 1, 4, 1 },         { 1, "F16", 1, 2, 1 },
		{ 2, "Q4_0", 32, 18, 1 },      { 3, "Q4_1", 32, 20, 1 },
		{ 6, "Q5_0", 32, 22, 1 },      { 7, "Q5_1", 32, 24, 1 },
		{ 8, "Q8_0", 32, 34, 1 },      { 9, "Q8_1", 32, 36, 0 },
		{ 10, "Q2_K", 256, 84, 1 },    { 11, "Q3_K", 256, 110, 1 },
		{ 12, "Q4_K", 256, 144, 1 },   { 13, "Q5_K", 256, 176, 1 },
		{ 14, "Q6_K", 256, 210, 1 },   { 15, "Q8_K", 256, 292, 0 },
		{ 16, "IQ2_XXS", 256, 66, 0 }, { 17, "IQ2_XS", 256, 74, 0 },
		{ 18, "IQ3_XXS", 256, 98, 0 }, { 19, "IQ1_S", 256, 50, 0 },
		{ 20, "IQ4_NL", 32, 18, 1 },   { 21, "IQ3_S", 256, 110, 0 },
		{ 22, "IQ2_S", 256, 82, 0 },   { 23, "IQ4_XS", 256, 136, 1 },
		{ 24, "I8", 1, 1, 0 },         { 25, "I16", 1, 2, 0 },
		{ 26, "I32", 1, 4, 0 },        { 27, "I64", 1, 8, 0 },
		{ 28, "F64", 1, 8, 0 },        { 29, "IQ1_M", 256, 56, 0 },
		{ 30, "BF16", 1, 2, 1 },       { 31, "Q4_0_4_4", 32, 18, 0 },
		{ 32, "Q4_0_4_8", 32, 18, 0 }, { 33, "Q4_0_8_8", 32, 18, 0 },
		{ 34, "TQ1_0", 256, 54, 0 },   { 35, "TQ2_0", 256, 66, 0 },
		{ 39, "MXFP4", 32, 17, 1 },
	};
	(void)state;
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		const struct quant_traits *t = quant_traits(want[i].id);
		assert_non_null(t);
		assert_string_equal(t->name, want[i].name);
		assert_string_equal(quant_type_name(want[i].id), want[i].name);
		assert_int_equal(t->block_elems, want[i].elems);
		assert_int_equal(t->block_bytes, want[i].bytes);
		assert_int_equal(t->supported, want[i].supported);
	}
	assert_null(quant_traits(4));
	assert_null(quant_traits(5));
	assert_null(quant_traits(-1));
	assert_null(quant_traits(QT_COUNT));
	assert_null(quant_traits(1000));
	assert_string_equal(quant_type_name(99), "type 99");
	assert_int_equal(quant_traits(QT_Q4_0)->dot_type, QT_Q8_0);
	assert_int_equal(quant_traits(QT_Q5_1)->dot_type, QT_Q8_1);
	assert_int_equal(quant_traits(QT_Q6_K)->dot_type, QT_Q8_K);
	assert_int_equal(quant_traits(QT_IQ4_NL)->dot_type, QT_Q8_0);
	assert_int_equal(quant_traits(QT_IQ4_XS)->dot_type, QT_Q8_K);
	assert_int_equal(quant_traits(QT_MXFP4)->dot_type, QT_Q8_0);
}

static void test_row_bytes(void **state)
{
	size_t b = 0;
	(void)state;
	assert_int_equal(quant_row_bytes(QT_Q4_0, 4096, &b), 0);
	assert_int_equal(b, 4096 / 32 * 18);
	assert_int_equal(quant_row_bytes(QT_Q4_K, 2048, &b), 0);
	assert_int_equal(b, 8 * 144);
	assert_int_equal(quant_row_bytes(QT_F16, 7, &b), 0);
	assert_int_equal(b, 14);
	assert_int_equal(quant_row_bytes(QT_Q4_K, 100, &b), -1);
	assert_int_equal(quant_row_bytes(QT_Q8_0, 33, &b), -1);
	assert_int_equal(quant_row_bytes(99, 32, &b), -1);
	assert_int_equal(quant_row_bytes(QT_F32, -4, &b), -1);
	/* overflow of blocks * bytes is refused, not wrapped */
	assert_int_equal(quant_row_bytes(QT_F32, INT64_MAX / 2 + 1, &b), -1);
}

/* ---- conversions ------------------------------------------------------------- */

static uint32_t bits(float f)
{
	uint32_t u;
	memcpy(&u, &f, 4);
	return u;
}

static float from_bits(uint32_t u)
{
	float f;
	memcpy(&f, &u, 4);
	return f;
}

static void test_f16_known(void **state)
{
	(void)state;
	/* the portable versions agree with the public ones on every half and
	 * on a spread of floats (the public ones may be F16C) */
	for (uint32_t h = 0; h < 0x10000; h++) {
		float a = quant_f16_to_f32_soft((quant_half)h), b = quant_f16_to_f32((quant_half)h);
		assert_true(bits(a) == bits(b) || (isnan(a) && isnan(b)));
	}
	for (int i = -200; i <= 200; i++) {
		float f = ldexpf(1.0f + 0.0371f * (float)(i & 31), i / 8);
		assert_int_equal(quant_f32_to_f16_soft(f), quant_f32_to_f16(f));
		assert_int_equal(quant_f32_to_f16_soft(-f), quant_f32_to_f16(-f));
	}
	assert_int_equal(quant_f32_to_f16(1.0f), 0x3c00);
	assert_int_equal(quant_f32_to_f16(-2.0f), 0xc000);
	assert_int_equal(quant_f32_to_f16(0.0f), 0x0000);
	assert_int_equal(quant_f32_to_f16(-0.0f), 0x8000);
	assert_int_equal(quant_f32_to_f16(65504.0f), 0x7bff);
	assert_int_equal(quant_f32_to_f16(65519.0f), 0x7bff); /* below the midpoint */
	assert_int_equal(quant_f32_to_f16(65520.0f), 0x7c00); /* tie rounds to even: inf */
	assert_int_equal(quant_f32_to_f16(1e10f), 0x7c00);
	assert_int_equal(quant_f32_to_f16(-INFINITY), 0xfc00);
	assert_int_equal(quant_f32_to_f16(0x1p-24f), 0x0001);        /* smallest subnormal */
	assert_int_equal(quant_f32_to_f16(0x1p-25f), 0x0000);        /* tie to even: zero */
	assert_int_equal(quant_f32_to_f16(0x1.8p-24f), 0x0002);      /* tie to even: 2 */
	assert_int_equal(quant_f32_to_f16(0x1.01p-25f), 0x0001);     /* above the tie */
	assert_int_equal(quant_f32_to_f16(0x1p-14f), 0x0400);        /* smallest normal */
	assert_int_equal(quant_f32_to_f16(0x1.ffcp-15f), 0x0400);    /* rounds up into normals */
	assert_int_equal(quant_f32_to_f16(1.0f + 0x1p-11f), 0x3c00); /* tie to even */
	assert_int_equal(quant_f32_to_f16(1.0f + 0x1.8p-10f), 0x3c02);
	assert_int_equal(quant_f32_to_f16(1e-30f), 0x0000);
	assert_int_equal(quant_f32_to_f16(from_bits(1)), 0x0000); /* float subnormal */
	assert_true(isnan(quant_f16_to_f32(quant_f32_to_f16(NAN))));
	assert_true((quant_f32_to_f16(NAN) & 0x7c00) == 0x7c00 && (quant_f32_to_f16(NAN) & 0x3ff));
	/* a NaN whose payload sits in the low bits still stays NaN */
	assert_true(isnan(quant_f16_to_f32(quant_f32_to_f16(from_bits(0x7f800001)))));
	assert_true(quant_f16_to_f32(0x0001) == 0x1p-24f);
	assert_true(quant_f16_to_f32(0x03ff) == 0x1.ff8p-15f);
	assert_true(quant_f16_to_f32(0x3555) == 0x1.554p-2f);
	assert_true(isinf(quant_f16_to_f32(0x7c00)) && quant_f16_to_f32(0x7c00) > 0);
	assert_true(quant_f16_to_f32(0x8000) == 0 && signbit(quant_f16_to_f32(0x8000)));
}

static void test_f16_round_trip_all(void **state)
{
	(void)state;
	/* every half survives half -> float -> half; NaNs stay NaN */
	for (uint32_t h = 0; h < 0x10000; h++) {
		float f = quant_f16_to_f32((quant_half)h);
		quant_half back = quant_f32_to_f16(f);
		if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff)) {
			assert_true(isnan(f));
			assert_true((back & 0x7c00) == 0x7c00 && (back & 0x3ff));
		} else {
			assert_int_equal(back, h);
		}
	}
}

static void test_f16_matches_hardware(void **state)
{
	(void)state;
#if defined(__F16C__)
	/* random float bit patterns and values near half's range, against F16C */
	for (int i = 0; i < 200000; i++) {
		float f;
		if (i & 1)
			f = from_bits(rnd_u32());
		else
			f = ldexpf(rnd_normal(), (int)(rnd_u32() % 50) - 30);
		if (isnan(f))
			continue;
		uint16_t hw = _cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT);
		if (quant_f32_to_f16_soft(f) != hw)
			fail_msg("f32 %a (0x%08x): got 0x%04x, F16C 0x%04x", (double)f, bits(f),
				 quant_f32_to_f16_soft(f), hw);
	}
	for (uint32_t h = 0; h < 0x10000; h++) {
		float a = quant_f16_to_f32_soft((quant_half)h), b = _cvtsh_ss((uint16_t)h);
		if (!(isnan(a) && isnan(b)))
			assert_int_equal(bits(a), bits(b));
	}
#else
	TEST_SKIP("this build has no F16C instructions to compare the conversions with");
#endif
}

static void test_bf16(void **state)
{
	(void)state;
	assert_int_equal(quant_f32_to_bf16(1.0f), 0x3f80);
	assert_int_equal(quant_f32_to_bf16(-1.0f), 0xbf80);
	/* 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties to even */
	assert_int_equal(quant_f32_to_bf16(1.0f + 0x1p-8f), 0x3f80);
	assert_int_equal(quant_f32_to_bf16(1.0f + 0x1.8p-7f), 0x3f82);
	assert_int_equal(quant_f32_to_bf16(1.0f + 0x1.02p-8f), 0x3f81);
	assert_int_equal(quant_f32_to_bf16(INFINITY), 0x7f80);
	assert_int_equal(quant_f32_to_bf16(3.4e38f), 0x7f80); /* rounds up past the max */
	assert_int_equal(quant_f32_to_bf16(from_bits(1)), 0x0000);
	assert_int_equal(quant_f32_to_bf16(from_bits(0x00018000)), 0x0002);
	assert_true(isnan(quant_bf16_to_f32(quant_f32_to_bf16(NAN))));
	assert_true(isnan(quant_bf16_to_f32(quant_f32_to_bf16(from_bits(0x7f800001)))));
	assert_true(quant_bf16_to_f32(0x4049) == 3.140625f);
	for (uint32_t h = 0; h < 0x10000; h++) {
		float f = quant_bf16_to_f32((quant_bf16)h);
		if (isnan(f))
			continue;
		assert_int_equal(quant_f32_to_bf16(f), h);
	}
}

/* ---- known dequantized values ---------------------------------------------------- */

static void test_dequant_known(void **state)
{
	float y[QK_K];
	(void)state;
	{
		struct block_q4_0 b = { 0 };
		b.d = quant_f32_to_f16(0.5f);
		b.qs[0] = 0x1F; /* element 0 = 15, element 16 = 1 */
		b.qs[15] = 0x80;
		quant_dequantize_row(QT_Q4_0, &b, y, 32);
		assert_true(y[0] == 3.5f && y[16] == -3.5f && y[15] == -4.0f && y[31] == 0.0f);
		assert_true(y[1] == -4.0f);
	}
	{
		struct block_q4_1 b = { 0 };
		b.d = quant_f32_to_f16(2.0f);
		b.m = quant_f32_to_f16(-1.0f);
		b.qs[3] = 0x52;
		quant_dequantize_row(QT_Q4_1, &b, y, 32);
		assert_true(y[3] == 3.0f && y[19] == 9.0f && y[0] == -1.0f);
	}
	{
		struct block_q5_0 b = { 0 };
		b.d = quant_f32_to_f16(1.0f);
		b.qs[2] = 0x3F;
		b.qh[0] = 0x04; /* bit 2: element 2 gets 16 */
		b.qh[2] = 0x04; /* bit 18: element 18 gets 16 */
		quant_dequantize_row(QT_Q5_0, &b, y, 32);
		assert_true(y[2] == 15.0f && y[18] == 3.0f && y[0] == -16.0f);
	}
	{
		struct block_q5_1 b = { 0 };
		b.d = quant_f32_to_f16(1.0f);
		b.m = quant_f32_to_f16(0.5f);
		b.qs[31 - 16] = 0xF0;
		b.qh[3] = 0x80; /* bit 31 */
		quant_dequantize_row(QT_Q5_1, &b, y, 32);
		assert_true(y[31] == 31.5f && y[15] == 0.5f);
	}
	{
		struct block_q8_0 b = { 0 };
		b.d = quant_f32_to_f16(0.25f);
		b.qs[7] = -128;
		b.qs[8] = 127;
		quant_dequantize_row(QT_Q8_0, &b, y, 32);
		assert_true(y[7] == -32.0f && y[8] == 31.75f && y[0] == 0.0f);
	}
	{
		struct block_q2_K b = { 0 };
		b.d = quant_f32_to_f16(1.0f);
		b.dmin = quant_f32_to_f16(0.5f);
		/* element 128 + 32*2 + 17 = 209: qs[32 + 17] bits 4..5, scale index 13 */
		b.qs[49] = 3 << 4;
		b.scales[13] = 0x25; /* scale 5, min 2 */
		quant_dequantize_row(QT_Q2_K, &b, y, 256);
		assert_true(y[209] == 14.0f && y[208] == -1.0f && y[0] == 0.0f);
	}
	{
		struct block_q3_K b = { 0 };
		b.d = quant_f32_to_f16(1.0f);
		/* element 128 + 32*3 + 5 = 229: qs[32 + 5] bits 6..7, hmask[5] bit 7, scale 14 */
		b.qs[37] = 2 << 6;
		b.hmask[5] = 0x80;
		/* scale 14: low nibble in byte 6 high half, high bits in byte 10 bits 6..7 */
		b.scales[6] = 0x30;
		b.scales[10] = 0x80; /* high 2 bits = 2 -> 32 + 3 = 35 -> 3 after bias */
		quant_dequantize_row(QT_Q3_K, &b, y, 256);
		assert_true(y[229] == 6.0f);
		/* element 228 has no high bit: 0 - 4 = -4, same scale */
		assert_true(y[228] == -12.0f);
	}
	{
		struct block_q4_K b = { 0 };
		b.d = quant_f32_to_f16(1.0f);
		b.dmin = quant_f32_to_f16(1.0f);
		/* sub-block 5 (elements 160..191): high nibbles of qs[64..95] */
		b.qs[64 + 3] = 0x70;
		/* scale 5: low 4 bits in scales[9] low, top 2 in scales[1] >> 6; min in scales[9] high */
		b.scales[9] = 0x21; /* scale low 1, min low 2 */
		b.scales[1] = 0x40; /* scale high bits 1 -> scale 17 */
		b.scales[5] = 0x80; /* min high bits 2 -> min 34 */
		quant_dequantize_row(QT_Q4_K, &b, y, 256);
		assert_true(y[163] == 17.0f * 7 - 34.0f);
		assert_true(y[160] == -34.0f);
		assert_true(y[0] == 0.0f);
	}
	{
		struct block_q5_K b = { 0 };
		b.d = quant_f32_to_f16(1.0f);
		b.dmin = quant_f32_to_f16(0.0f);
		b.scales[0] = 2;     /* sub-block 0 scale 2 */
		b.scales[3] = 3;     /* sub-block 3 scale 3 */
		b.qs[32 + 4] = 0x50; /* element 64 + 32 + 4 = 100 low bits 5 */
		b.qh[4] = 1 << 3;    /* its 5th bit: bit 2*1 + 1 */
		b.qs[1] = 0x0F;
		quant_dequantize_row(QT_Q5_K, &b, y, 256);
		assert_true(y[100] == 3.0f * 21);
		assert_true(y[1] == 2.0f * 15);
	}
	{
		struct block_q6_K b = { 0 };
		b.d = quant_f32_to_f16(0.5f);
		for (int i = 0; i < 16; i++)
			b.scales[i] = (int8_t)(i + 1);
		/* element 128 + 64 + 7 = 199: ql[64 + 7] high nibble, qh[32 + 7] bits 4..5 */
		b.ql[71] = 0xA0;
		b.qh[39] = 0x30;
		memset(b.ql, 0, 64);
		quant_dequantize_row(QT_Q6_K, &b, y, 256);
		/* q = 10 | 3 << 4 = 58 -> 26, scale index 12 -> 13 */
		assert_true(y[199] == 0.5f * 13 * 26);
		assert_true(y[0] == 0.5f * 1 * -32);
	}
	{
		struct block_iq4_nl b = { 0 };
		b.d = quant_f32_to_f16(0.5f);
		b.qs[0] = 0xF0; /* element 0: nibble 0 -> -127, element 16: nibble 15 -> 113 */
		b.qs[9] = 0x89; /* element 9: nibble 9 -> 13, element 25: nibble 8 -> 1 */
		quant_dequantize_row(QT_IQ4_NL, &b, y, 32);
		assert_true(y[0] == -63.5f && y[16] == 56.5f && y[9] == 6.5f && y[25] == 0.5f);
		assert_true(y[1] == -63.5f); /* nibble 0 */
	}
	{
		struct block_iq4_xs b = { 0 };
		b.d = quant_f32_to_f16(0.25f);
		/* sub-block 5: ls = 40 (low nibble 8 in the high half of scales_l[2],
		 * high bits 2 at bits 10..11 of scales_h): scale 0.25 * (40 - 32) = 2 */
		b.scales_l[2] = 0x80;
		b.scales_h = 2 << 10;
		/* element 32 * 5 + 3 = 163: low nibble of qs[83]; 179: its high nibble */
		b.qs[83] = 0xC9;
		quant_dequantize_row(QT_IQ4_XS, &b, y, 256);
		assert_true(y[163] == 2.0f * 13 && y[179] == 2.0f * 53);
		/* sub-block 4 (ls 0 from the low half of scales_l[2]): scale -8 */
		assert_true(y[128] == -8.0f * -127);
		/* sub-block 0, ls 0 as well */
		assert_true(y[0] == -8.0f * -127);
	}
	{
		quant_half h[2] = { 0x3c00, 0xc000 };
		quant_bf16 b[2] = { 0x3f80, 0x4049 };
		quant_dequantize_row(QT_F16, h, y, 2);
		assert_true(y[0] == 1.0f && y[1] == -2.0f);
		quant_dequantize_row(QT_BF16, b, y, 2);
		assert_true(y[0] == 1.0f && y[1] == 3.140625f);
	}
}

/* ---- MXFP4 against the OCP Microscaling Formats (MX) v1.0 spec ------------------ */

/*
 * The oracle, written from the spec rather than from our tables:
 * FP4 E2M1 (section 5.3.3): bit 3 sign, bits 2..1 exponent (bias 1), bit 0
 * mantissa; exponent 0 is subnormal, 2^(1 - bias) * (0 + m / 2), otherwise
 * 2^(e - bias) * (1 + m / 2); no infinities or NaN.  This gives the
 * spec's table: 0, 0.5, 1, 1.5, 2, 3, 4, 6 and their negatives.
 * E8M0 (section 5.4.1): an unsigned exponent, value 2^(X - 127), X = 0xFF
 * is NaN (no sign, no zero).  An MX block of 32 is the scale times each
 * element (section 5.2).
 */
static double spec_e2m1(int code)
{
	int sign = (code >> 3) & 1, e = (code >> 1) & 3, m = code & 1;
	double v = e == 0 ? ldexp(m / 2.0, 1 - 1) : ldexp(1 + m / 2.0, e - 1);
	return sign ? -v : v;
}

static double spec_e8m0(int x)
{
	return x == 0xFF ? NAN : ldexp(1.0, x - 127);
}

static void test_mxfp4_spec(void **state)
{
	/* scales from the smallest (2^-127, a float subnormal) to values whose
	 * block products still fit in a float (6 * 2^125) */
	static const int scales[] = { 0, 1, 2, 64, 120, 127, 128, 200, 252 };
	static const double table[16] = { 0,    0.5,  1,  1.5,  2,  3,  4,  6,
					  -0.0, -0.5, -1, -1.5, -2, -3, -4, -6 };
	struct block_mxfp4 b;
	float y[32];
	(void)state;
	for (int c = 0; c < 16; c++)
		assert_true(spec_e2m1(c) == table[c]); /* the oracle is the spec's table */
	for (size_t k = 0; k < sizeof(scales) / sizeof(scales[0]); k++) {
		b.e = (uint8_t)scales[k];
		for (int j = 0; j < 16; j++) /* every code, in both nibble positions */
			b.qs[j] = (uint8_t)(j | ((15 - j) << 4));
		quant_dequantize_row(QT_MXFP4, &b, y, 32);
		for (int j = 0; j < 16; j++) {
			double lo = spec_e2m1(j) * spec_e8m0(scales[k]);
			double hi = spec_e2m1(15 - j) * spec_e8m0(scales[k]);
			if ((double)y[j] != lo || (double)y[j + 16] != hi)
				fail_msg("MXFP4 e=%d code %d: %a (spec %a), code %d: %a (spec %a)",
					 scales[k], j, (double)y[j], lo, 15 - j, (double)y[j + 16],
					 hi);
		}
	}
	/* X = 0xFF: the whole block is NaN */
	b.e = 0xFF;
	quant_dequantize_row(QT_MXFP4, &b, y, 32);
	for (int j = 0; j < 32; j++)
		assert_true(isnan(y[j]));

	/* Quantizing follows the spec's rule: shared exponent
	 * floor(log2(max |v|)) - 2, elements rounded to nearest (ties to the
	 * even code) and clamped to +-6. */
	float x[32] = { 0 };
	x[0] = 5.0f;   /* amax: exponent 2 - 2 = 0, so X = 127; 5 ties between 4 and 6 -> 4 */
	x[1] = 1.25f;  /* between 1 and 1.5 -> 1 (even) */
	x[2] = -0.25f; /* between 0 and 0.5 -> 0 */
	x[3] = 0.75f;  /* between 0.5 and 1 -> 1 (even) */
	x[4] = -2.6f;  /* nearest 3 */
	x[5] = 4.9f;   /* nearest 4 */
	assert_int_equal(quant_quantize_row(QT_MXFP4, x, &b, 32), 0);
	assert_int_equal(b.e, 127);
	quant_dequantize_row(QT_MXFP4, &b, y, 32);
	assert_true(y[0] == 4.0f && y[1] == 1.0f && y[2] == 0.0f && y[3] == 1.0f);
	assert_true(y[4] == -3.0f && y[5] == 4.0f && y[31] == 0.0f);
	x[0] = 7.9f; /* [6, 8): saturates to 6 at the same exponent */
	assert_int_equal(quant_quantize_row(QT_MXFP4, x, &b, 32), 0);
	assert_int_equal(b.e, 127);
	quant_dequantize_row(QT_MXFP4, &b, y, 32);
	assert_true(y[0] == 6.0f);
	x[0] = -0.1f; /* amax 0.1: floor(log2) = -4, X = 127 - 6 */
	for (int j = 1; j < 32; j++)
		x[j] = 0;
	assert_int_equal(quant_quantize_row(QT_MXFP4, x, &b, 32), 0);
	assert_int_equal(b.e, 121);
	quant_dequantize_row(QT_MXFP4, &b, y, 32);
	assert_true(y[0] == -0.09375f); /* -1.5 * 2^-4 is 0.09375; 0.1 / 2^-6 = 6.4 -> 6 */
}

/* ---- quantization round trips ---------------------------------------------------- */

static void test_quantize_round_trip(void **state)
{
	static const struct {
		int type;
		double bound; /* relative RMS error for gaussian data */
	} cases[] = {
		{ QT_F32, 0 },
		{ QT_F16, 5e-4 },
		{ QT_BF16, 4e-3 },
		{ QT_Q8_0, 0.01 },
		{ QT_Q8_1, 0.01 },
		{ QT_Q8_K, 0.01 },
		{ QT_Q4_0, 0.11 },
		{ QT_Q4_K, 0.09 },
		{ QT_Q6_K, 0.025 },
		/* measured: Q5_K 0.037, IQ4_NL 0.075, IQ4_XS 0.075, MXFP4 0.113 */
		{ QT_Q5_K, 0.045 },
		{ QT_IQ4_NL, 0.085 },
		{ QT_IQ4_XS, 0.085 },
		{ QT_MXFP4, 0.13 },
	};
	enum { N = 4096 };
	float *x = malloc(N * sizeof(float)), *y = malloc(N * sizeof(float));
	void *q = malloc(N * 4 + 4096);
	(void)state;
	fill_normal(x, N, 0.3f);
	for (int i = 0; i < 64; i++) /* an all-zero stretch must survive */
		x[1024 + i] = 0;
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		assert_int_equal(quant_quantize_row(cases[c].type, x, q, N), 0);
		quant_dequantize_row(cases[c].type, q, y, N);
		double e = rel_rms(y, x, N);
		if (e > cases[c].bound)
			fail_msg("%s: relative rms %g > %g", quant_type_name(cases[c].type), e,
				 cases[c].bound);
		/* a coarse type must still be much better than nothing */
		assert_true(e < 0.2);
		for (int i = 0; i < 64; i++)
			assert_true(y[1024 + i] == 0.0f);
	}
	/* unsupported targets and bad lengths are refused */
	assert_int_equal(quant_quantize_row(QT_Q2_K, x, q, 256), -1);
	assert_int_equal(quant_quantize_row(QT_Q4_0, x, q, 33), -1);
	assert_int_equal(quant_quantize_row(77, x, q, 32), -1);
	free(x);
	free(y);
	free(q);
}

/* Q8_1's s field is d * sum(qs), as the Q4_1 / Q5_1 dots expect. */
static void test_q8_1_sum(void **state)
{
	float x[64];
	struct block_q8_1 b[2];
	(void)state;
	fill_normal(x, 64, 1);
	quant_quantize_row(QT_Q8_1, x, b, 64);
	for (int i = 0; i < 2; i++) {
		int s = 0;
		for (int j = 0; j < 32; j++)
			s += b[i].qs[j];
		assert_float_equal(quant_f16_to_f32(b[i].s), quant_f16_to_f32(b[i].d) * s,
				   fabsf(quant_f16_to_f32(b[i].d) * s) * 1e-3f + 1e-6f);
	}
	struct block_q8_K k;
	float z[256];
	fill_normal(z, 256, 1);
	quant_quantize_row(QT_Q8_K, z, &k, 256);
	for (int g = 0; g < 16; g++) {
		int s = 0;
		for (int j = 0; j < 16; j++)
			s += k.qs[16 * g + j];
		assert_int_equal(k.bsums[g], s);
	}
}

/* ---- dot products ------------------------------------------------------------------ */

static void check_dot_against_dequant(int type, int64_t n)
{
	const struct quant_traits *t = quant_traits(type);
	size_t wb = row_bytes(type, n), ab = row_bytes(t->dot_type, n);
	void *w = malloc(wb), *a = malloc(ab);
	float *wf = malloc(n * sizeof(float)), *af = malloc(n * sizeof(float));
	float *x = malloc(n * sizeof(float));
	fill_random_weights(type, w, n);
	fill_normal(x, n, 1);
	assert_int_equal(quant_quantize_row(t->dot_type, x, a, n), 0);
	quant_dequantize_row(type, w, wf, n);
	quant_dequantize_row(t->dot_type, a, af, n);
	double ref = 0, mag = 0;
	for (int64_t i = 0; i < n; i++) {
		ref += (double)wf[i] * af[i];
		mag += fabs((double)wf[i] * af[i]);
	}
	if (t->dot_type == QT_Q8_1) {
		/* the kernel uses the half-rounded block sum s for the m term, as ggml does */
		const struct block_q8_1 *ab8 = a;
		for (int64_t b = 0; b < n / 32; b++) {
			const quant_half *dm =
				(const quant_half *)((const uint8_t *)w + b * t->block_bytes);
			int s = 0;
			for (int j = 0; j < 32; j++)
				s += ab8[b].qs[j];
			ref += (double)quant_f16_to_f32(dm[1]) *
			       ((double)quant_f16_to_f32(ab8[b].s) -
				(double)quant_f16_to_f32(ab8[b].d) * s);
		}
	}
	float got = quant_vec_dot(type, n, w, a);
	if (fabs(got - ref) > 2e-6 * mag + 1e-6)
		fail_msg("%s n=%lld isa %s: dot %.9g, reference %.9g (mag %g)",
			 quant_type_name(type), (long long)n, quant_isa_name(quant_isa_current()),
			 (double)got, ref, mag);
	free(w);
	free(a);
	free(wf);
	free(af);
	free(x);
}

/* every ISA level this CPU has, scalar first: each SIMD variant meets its C twin */
static int isa_levels(enum quant_isa out[QUANT_ISA_COUNT])
{
	int k = 0;
	for (int i = QUANT_ISA_SCALAR; i < QUANT_ISA_COUNT; i++)
		if (quant_isa_supported((enum quant_isa)i))
			out[k++] = (enum quant_isa)i;
	return k;
}

static void test_vec_dot_all_types(void **state)
{
	enum quant_isa isas[QUANT_ISA_COUNT];
	int nisa = isa_levels(isas);
	(void)state;
	for (int k = 0; k < nisa; k++) {
		assert_int_equal(quant_isa_set(isas[k]), 0);
		for (int i = 0; i < N_WEIGHT_TYPES; i++) {
			const struct quant_traits *t = quant_traits(weight_types[i]);
			assert_true(t->supported);
			check_dot_against_dequant(weight_types[i], t->block_elems == 1 ? 80 : 256);
			check_dot_against_dequant(weight_types[i], 2048);
			if (t->block_elems == 1)
				check_dot_against_dequant(weight_types[i], 37);
		}
	}
	quant_isa_set(quant_isa_best());
}

/* SIMD kernels (dot, gemv, gemm) against the plain C twin on the same data. */
/* When set, token tk's block b of 256 activations is scaled by it (0: zero). */
static float (*act_block_scale)(int tk, int64_t b);

static void check_kernels_against_scalar(int type, int64_t n, int nrows, int ntok)
{
	const struct quant_traits *t = quant_traits(type);
	size_t wb = row_bytes(type, n), ab = row_bytes(t->dot_type, n);
	size_t wstride = wb + 64, astride = ab + 32; /* strides wider than a row */
	size_t ostride = (size_t)nrows + 3;
	uint8_t *w = malloc(wstride * nrows), *a = malloc(astride * ntok);
	float *x = malloc(n * sizeof(float));
	float *ref = malloc(sizeof(float) * ostride * ntok),
	      *got = malloc(sizeof(float) * ostride * ntok);
	float *gv = malloc(sizeof(float) * nrows);
	enum quant_isa isas[QUANT_ISA_COUNT];
	int nisa = isa_levels(isas);

	for (int r = 0; r < nrows; r++)
		fill_random_weights(type, w + r * wstride, n);
	for (int tk = 0; tk < ntok; tk++) {
		fill_normal(x, n, tk == 1 ? 0.001f : 1); /* one small-scale token */
		for (int64_t i = 0; act_block_scale && i < n; i++)
			x[i] *= act_block_scale(tk, i / QK_K);
		assert_int_equal(quant_quantize_row(t->dot_type, x, a + tk * astride, n), 0);
	}
	quant_isa_set(QUANT_ISA_SCALAR);
	for (int tk = 0; tk < ntok; tk++)
		for (int r = 0; r < nrows; r++)
			ref[tk * ostride + r] =
				quant_vec_dot(type, n, w + r * wstride, a + tk * astride);
	/* sum |w_i a_i| of each result: float rounding in any summation order
	 * is bounded by a multiple of it, so a result that is small by
	 * cancellation (Q4_K's mins against its scaled quants) is held to the
	 * size of its terms, not to its own size */
	float *mag = calloc(ostride * ntok, sizeof(float));
	float *wf = malloc(n * sizeof(float)), *af = malloc(n * sizeof(float) * ntok);
	for (int tk = 0; tk < ntok; tk++)
		quant_dequantize_row(t->dot_type, a + tk * astride, af + (size_t)tk * n, n);
	for (int r = 0; r < nrows; r++) {
		quant_dequantize_row(type, w + r * wstride, wf, n);
		for (int tk = 0; tk < ntok; tk++) {
			double m = 0;
			for (int64_t i = 0; i < n; i++)
				m += fabs((double)wf[i] * af[(size_t)tk * n + i]);
			mag[tk * ostride + r] = (float)m;
		}
	}
	free(wf);
	free(af);
	for (int k = 0; k < nisa; k++) {
		quant_isa_set(isas[k]);
		for (int tk = 0; tk < ntok; tk++) {
			quant_gemv(type, n, w, wstride, nrows, a + tk * astride, gv);
			for (int r = 0; r < nrows; r++) {
				float e = ref[tk * ostride + r];
				float d1 =
					quant_vec_dot(type, n, w + r * wstride, a + tk * astride);
				float tol = 1e-5f * fabsf(e) + 1e-4f * (tk == 1 ? 0.001f : 1) +
					    1e-7f * mag[tk * ostride + r];
				/* written so that a NaN result fails */
				if (!(fabsf(d1 - e) <= tol) || !(fabsf(gv[r] - e) <= tol))
					fail_msg(
						"%s isa %s n=%lld row %d tok %d: dot %.9g gemv %.9g, C %.9g",
						quant_type_name(type), quant_isa_name(isas[k]),
						(long long)n, r, tk, (double)d1, (double)gv[r],
						(double)e);
			}
		}
		for (size_t i = 0; i < ostride * ntok; i++)
			got[i] = -12345.0f;
		quant_gemm(type, n, w, wstride, nrows, a, astride, ntok, got, ostride);
		for (int tk = 0; tk < ntok; tk++) {
			for (int r = 0; r < nrows; r++) {
				float e = ref[tk * ostride + r], g = got[tk * ostride + r];
				float tol = 1e-5f * fabsf(e) + 1e-4f * (tk == 1 ? 0.001f : 1) +
					    1e-7f * mag[tk * ostride + r];
				if (!(fabsf(g - e) <= tol))
					fail_msg("%s isa %s gemm row %d tok %d: %.9g, C %.9g",
						 quant_type_name(type), quant_isa_name(isas[k]), r,
						 tk, (double)g, (double)e);
			}
			for (size_t r = nrows; r < ostride; r++) /* padding untouched */
				assert_true(got[tk * ostride + r] == -12345.0f);
		}
	}
	quant_isa_set(quant_isa_best());
	free(w);
	free(a);
	free(x);
	free(ref);
	free(got);
	free(gv);
	free(mag);
}

static void test_kernels_vs_scalar(void **state)
{
	(void)state;
	for (int i = 0; i < N_WEIGHT_TYPES; i++) {
		int type = weight_types[i];
		int64_t blk = quant_traits(type)->block_elems;
		int64_t n = blk == 1 ? 512 + 24 : blk * (blk == QK_K ? 3 : 9);
		/* row and token counts that are not multiples of the register tiles */
		check_kernels_against_scalar(type, n, 11, 7);
		check_kernels_against_scalar(type, n, 1, 1);
		check_kernels_against_scalar(type, blk == 1 ? 16 : blk, 4, 4);
	}
}

/* Shapes that cross the kernels' internal chunking: rows longer than one
 * prepared activation chunk, and more rows than one gemm panel holds. */
static void test_kernels_large_shapes(void **state)
{
	(void)state;
	check_kernels_against_scalar(QT_Q4_0, 16384 + 160, 5, 5);
	check_kernels_against_scalar(QT_Q8_0, 16384 + 32 * 4, 3, 2);
	check_kernels_against_scalar(QT_F32, 4096, 37, 5);
	check_kernels_against_scalar(QT_Q4_K, 4096 * 2, 120, 3);
	/* Q4_K's 16-row strips: more rows than a panel, rows of two chunks */
	check_kernels_against_scalar(QT_Q4_K, 16384 + 512, 70, 9);
	check_kernels_against_scalar(QT_Q4_K, 2048, 300, 13);
	check_kernels_against_scalar(QT_IQ4_XS, 16384 + 512, 3, 5);
	/* the 16-row strips of the 4-bit prefill: strip and token tails,
	 * rows of two chunks, and more rows than a panel holds */
	check_kernels_against_scalar(QT_IQ4_XS, 1024 + 256, 37, 21);
	check_kernels_against_scalar(QT_Q4_K, 2048, 177, 8);
	check_kernels_against_scalar(QT_IQ4_XS, 256, 16, 300);
	/* Q6_K's strips: a scale each 16, its offset paid back per 16 */
	check_kernels_against_scalar(QT_Q6_K, 1024 + 256, 37, 21);
	check_kernels_against_scalar(QT_Q6_K, 16384 + 512, 17, 9);
	check_kernels_against_scalar(QT_Q6_K, 256, 16, 300);
	check_kernels_against_scalar(QT_IQ4_NL, 16384 + 96, 3, 2);
	check_kernels_against_scalar(QT_MXFP4, 16384 + 160, 2, 5);
}

/* Activation blocks of scale 0 and scales far apart within a row: the
 * strips' tiles keep a Q8_K token's sums in units of the current block's
 * scale (s16_prep_rescale); 2^50 next to 2^-70 would leave the float range
 * that way, so such a token must take the exact tile. */
static float block_scales(int tk, int64_t b)
{
	switch (tk) {
	case 2: return b == 1 ? 0 : 1;			  /* a zero block inside */
	case 3: return b == 0 || b == 2 ? 0 : 1;	  /* the first block zero */
	case 4: return b == 3 ? 1 : 0;			  /* only the chunk's last */
	case 5: return b % 2 ? 0x1p15f : 0x1p-15f;	  /* 2^30 apart: rescaled */
	case 8: return b == 0 ? 0x1p50f : b == 1 ? 0x1p-70f : 1;
	case 13: return b == 3 ? 0x1p-70f : b == 0 ? 0x1p50f : 1;
	default: return 1;
	}
}

static void test_kernels_block_scales(void **state)
{
	(void)state;
	act_block_scale = block_scales;
	/* two chunks (4 blocks and 1), a strip tail, tiles of mixed tokens */
	check_kernels_against_scalar(QT_Q4_K, 1024 + 256, 37, 21);
	check_kernels_against_scalar(QT_Q6_K, 1024 + 256, 37, 21);
	check_kernels_against_scalar(QT_IQ4_XS, 1024 + 256, 37, 21);
	act_block_scale = NULL;
}

/* An MXFP4 block with scale 0xFF (NaN in the spec) makes its row's results
 * NaN at every level, and only its row's. */
static void test_mxfp4_nan_scale(void **state)
{
	enum { N = 256, ROWS = 3 };
	enum quant_isa isas[QUANT_ISA_COUNT];
	int nisa = isa_levels(isas);
	size_t rb = row_bytes(QT_MXFP4, N);
	uint8_t *w = malloc(rb * ROWS), *a = malloc(row_bytes(QT_Q8_0, N) * 2);
	float x[N], out[2 * ROWS];
	(void)state;
	for (int r = 0; r < ROWS; r++)
		fill_random_weights(QT_MXFP4, w + r * rb, N);
	((struct block_mxfp4 *)(w + rb))[5].e = 0xFF; /* row 1, block 5 */
	fill_normal(x, N, 1);
	quant_quantize_row(QT_Q8_0, x, a, N);
	quant_quantize_row(QT_Q8_0, x, a + row_bytes(QT_Q8_0, N), N);
	for (int k = 0; k < nisa; k++) {
		quant_isa_set(isas[k]);
		quant_gemm(QT_MXFP4, N, w, rb, ROWS, a, row_bytes(QT_Q8_0, N), 2, out, ROWS);
		for (int t = 0; t < 2; t++)
			for (int r = 0; r < ROWS; r++)
				if (!!isnan(out[t * ROWS + r]) != (r == 1))
					fail_msg("isa %s: row %d token %d gives %g",
						 quant_isa_name(isas[k]), r, t,
						 (double)out[t * ROWS + r]);
		quant_gemv(QT_MXFP4, N, w, rb, ROWS, a, out);
		assert_true(!isnan(out[0]) && isnan(out[1]) && !isnan(out[2]));
	}
	quant_isa_set(quant_isa_best());
	free(w);
	free(a);
}

/* Empty rows give zero dots at every level (nothing is read). */
static void test_empty_rows(void **state)
{
	enum quant_isa isas[QUANT_ISA_COUNT];
	int nisa = isa_levels(isas);
	uint8_t dummy[64] = { 0 };
	float out[6];
	(void)state;
	for (int k = 0; k < nisa; k++) {
		quant_isa_set(isas[k]);
		for (int i = 0; i < N_WEIGHT_TYPES; i++) {
			for (int j = 0; j < 6; j++)
				out[j] = 1;
			quant_gemv(weight_types[i], 0, dummy, 0, 3, dummy, out);
			quant_gemm(weight_types[i], 0, dummy, 0, 1, dummy, 0, 3, out + 3, 1);
			for (int j = 0; j < 6; j++)
				if (out[j] != 0)
					fail_msg("%s isa %s: empty row gives %g",
						 quant_type_name(weight_types[i]),
						 quant_isa_name(isas[k]), (double)out[j]);
			assert_true(quant_vec_dot(weight_types[i], 0, dummy, dummy) == 0);
		}
	}
	quant_isa_set(quant_isa_best());
}

/* Types without a dot product give NaN instead of reading a NULL kernel. */
static void test_unsupported_dot_is_nan(void **state)
{
	static const int bad[] = { QT_Q8_K, QT_Q8_1, 16, 4, -1, QT_COUNT, 1000 };
	uint8_t dummy[512] = { 0 };
	float out[4];
	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_true(isnan(quant_vec_dot(bad[i], 256, dummy, dummy)));
		quant_gemv(bad[i], 256, dummy, 0, 2, dummy, out);
		quant_gemm(bad[i], 256, dummy, 0, 1, dummy, 0, 2, out + 2, 1);
		for (int j = 0; j < 4; j++)
			assert_true(isnan(out[j]));
	}
}

/* Activation quantizers: SIMD versions produce the same blocks as C. */
static void test_activation_quantizers(void **state)
{
	static const int types[] = { QT_Q8_0, QT_Q8_1, QT_Q8_K };
	enum { N = 2048 };
	enum quant_isa isas[QUANT_ISA_COUNT];
	int nisa = isa_levels(isas);
	float *x = malloc(N * sizeof(float));
	uint8_t *ref = malloc(N * 2), *got = malloc(N * 2);
	(void)state;
	fill_normal(x, N, 2);
	for (int i = 0; i < 256; i++)
		x[512 + i] = 0; /* a zero block */
	x[5] = 1e-30f;
	for (size_t ti = 0; ti < sizeof(types) / sizeof(types[0]); ti++) {
		size_t b = row_bytes(types[ti], N);
		quant_isa_set(QUANT_ISA_SCALAR);
		quant_quantize_row(types[ti], x, ref, N);
		for (int k = 1; k < nisa; k++) {
			quant_isa_set(isas[k]);
			memset(got, 0x55, b);
			quant_quantize_row(types[ti], x, got, N);
			if (memcmp(ref, got, b))
				fail_msg("%s quantizer differs at isa %s",
					 quant_type_name(types[ti]), quant_isa_name(isas[k]));
		}
	}
	quant_isa_set(quant_isa_best());
	free(x);
	free(ref);
	free(got);
}

/*
 * Activations that are not finite (a model file with NaN or Inf weights)
 * quantize without undefined behaviour -- make asan runs this under UBSan:
 * the AVX-512 Q8_K quantizer summed the integer-indefinite values that NaN
 * converts to and overflowed -- and Q8_K's block sums are the sums of the
 * values stored (scalar, AVX-512; the AVX2 kernel's wrapping sums are
 * defined but differ for such blocks: left to the quantizers' owner).
 */
static void test_activation_quantizers_nonfinite(void **state)
{
	static const int types[] = { QT_Q8_0, QT_Q8_1, QT_Q8_K };
	enum { N = 1024 };
	enum quant_isa isas[QUANT_ISA_COUNT];
	int nisa = isa_levels(isas);
	float *x = malloc(N * sizeof(float));
	uint8_t *got = malloc(N * 2);
	(void)state;
	fill_normal(x, N, 2);
	for (int i = 0; i < 64; i++) {
		x[i] = NAN;                                /* a block of NaN */
		x[256 + i] = i & 1 ? INFINITY : -INFINITY; /* of infinities */
		x[512 + 4 * i] = NAN;                      /* NaN here and there */
	}
	x[800] = 3e38f;
	x[801] = -3e38f;
	for (int k = 0; k < nisa; k++) {
		quant_isa_set(isas[k]);
		for (size_t ti = 0; ti < sizeof(types) / sizeof(types[0]); ti++) {
			quant_quantize_row(types[ti], x, got, N);
			if (types[ti] != QT_Q8_K || isas[k] == QUANT_ISA_AVX2 ||
			    isas[k] == QUANT_ISA_AVX512_256) /* the AVX2 kernels, with VNNI */
				continue;
			const struct block_q8_K *b = (const struct block_q8_K *)got;
			for (int i = 0; i < N / QK_K; i++)
				for (int g = 0; g < QK_K / 16; g++) {
					int s = 0;
					for (int l = 0; l < 16; l++)
						s += b[i].qs[16 * g + l];
					if (s != b[i].bsums[g])
						fail_msg(
							"%s: Q8_K block %d group %d: bsum %d, values add "
							"up to %d",
							quant_isa_name(isas[k]), i, g,
							b[i].bsums[g], s);
				}
		}
	}
	quant_isa_set(quant_isa_best());
	free(x);
	free(got);
}

/* Rows repacked at load give exactly the results of the file's layout:
 * gemv, gemm with token tails, and dot; rows that are not whole groups of
 * four blocks, other types and CPUs without the kernels are not repacked. */
static void repack_check(int type, int rtype)
{
	static const int64_t lens[] = { 128, 2048, 16384 + 512 }; /* the last spans two chunks */
	for (size_t li = 0; li < sizeof(lens) / sizeof(lens[0]); li++) {
		int64_t n = lens[li];
		/* ntok: the type's own tiles on both sides; big: the 4-bit
		 * types' strips on the repacked side (16 rows and a tail) */
		const int nrows = 37, ntok = 7, big = 21;
		assert_int_equal(quant_repack_type(type, n), rtype);
		size_t rb = row_bytes(type, n), ab = row_bytes(QT_Q8_0, n);
		uint8_t *w = malloc(rb * nrows), *wr = malloc(rb * nrows), *act = malloc(ab * big);
		float *x = malloc(sizeof(float) * (size_t)n),
		      *y = malloc(sizeof(float) * (size_t)n);
		float *o1 = malloc(sizeof(float) * nrows * big),
		      *o2 = malloc(sizeof(float) * nrows * big);
		assert_true(w && wr && act && x && y && o1 && o2);
		for (int r = 0; r < nrows; r++) {
			fill_normal(x, n, 0.05f);
			assert_int_equal(quant_quantize_row(type, x, w + (size_t)r * rb, n), 0);
		}
		for (int t = 0; t < big; t++) {
			fill_normal(x, n, 1.0f);
			assert_int_equal(quant_quantize_row(QT_Q8_0, x, act + (size_t)t * ab, n),
					 0);
		}
		quant_repack_rows(type, n, w, rb, nrows, wr);
		assert_memory_not_equal(w, wr, rb * nrows);
		quant_gemv(type, n, w, rb, nrows, act, o1);
		quant_gemv(rtype, n, wr, rb, nrows, act, o2);
		assert_memory_equal(o1, o2, sizeof(float) * nrows);
		quant_gemm(type, n, w, rb, nrows, act, ab, ntok, o1, nrows);
		quant_gemm(rtype, n, wr, rb, nrows, act, ab, ntok, o2, nrows);
		assert_memory_equal(o1, o2, sizeof(float) * nrows * ntok);
		assert_true(quant_vec_dot(type, n, w, act) == quant_vec_dot(rtype, n, wr, act));
		/* and they are the scalar reference's results up to float rounding,
		 * with many tokens as well */
		quant_gemm(rtype, n, wr, rb, nrows, act, ab, big, o1, nrows);
		for (int r = 0; r < nrows; r++) {
			quant_dequantize_row(type, w + (size_t)r * rb, x, n);
			for (int t = 0; t < big; t++) {
				double ref = 0;
				quant_dequantize_row(QT_Q8_0, act + (size_t)t * ab, y, n);
				for (int64_t i = 0; i < n; i++)
					ref += (double)x[i] * y[i];
				if (t == 0)
					assert_true(fabs(o2[r] - ref) <= 1e-3 * (1 + fabs(ref)));
				if (fabs(o1[t * nrows + r] - ref) > 1e-3 * (1 + fabs(ref)))
					fail_msg(
						"%s repacked, gemm of %d tokens, row %d token %d: %.9g, "
						"reference %.9g",
						quant_type_name(type), big, r, t,
						(double)o1[t * nrows + r], ref);
			}
		}
		free(w);
		free(wr);
		free(act);
		free(x);
		free(y);
		free(o1);
		free(o2);
	}
}

static void test_repack(void **state)
{
	(void)state;
	assert_int_equal(quant_repack_type(QT_Q8_0, 96), -1);
	assert_int_equal(quant_repack_type(QT_Q4_K, 256), -1);
	assert_int_equal(quant_isa_set(QUANT_ISA_SCALAR), 0);
	assert_int_equal(quant_repack_type(QT_Q8_0, 256), -1);
	assert_int_equal(quant_isa_set(quant_isa_best()), 0);
	if (quant_repack_type(QT_Q8_0, 256) < 0) {
		printf("repack: no repacking kernels on this CPU (%s)\n",
		       quant_isa_name(quant_isa_best()));
		return;
	}
	repack_check(QT_Q8_0, QT_Q8_0_R4);
	repack_check(QT_Q4_0, QT_Q4_0_R4);
	repack_check(QT_IQ4_NL, QT_IQ4_NL_R4);
	repack_check(QT_MXFP4, QT_MXFP4_R4);
}

static void test_isa(void **state)
{
	(void)state;
	enum quant_isa best = quant_isa_best();
	assert_int_equal(quant_isa_current(), best);
	assert_string_equal(quant_isa_name(QUANT_ISA_SCALAR), "scalar");
	assert_int_equal(quant_isa_set(QUANT_ISA_SCALAR), 0);
	assert_int_equal(quant_isa_current(), QUANT_ISA_SCALAR);
	if (best < QUANT_ISA_AVX512_VNNI)
		assert_int_equal(quant_isa_set(QUANT_ISA_AVX512_VNNI), -1);
	assert_int_equal(quant_isa_set((enum quant_isa)17), -1);
	assert_int_equal(quant_isa_set(best), 0);
	for (int l = 0; l < QUANT_ISA_COUNT; l++)
		assert_int_equal(quant_isa_from_name(quant_isa_name((enum quant_isa)l)), l);
	assert_int_equal(quant_isa_from_name("avx1024"), -1);
	assert_true(quant_isa_supported(QUANT_ISA_SCALAR));
	assert_false(quant_isa_supported(QUANT_ISA_COUNT));
	printf("quant: best isa on this cpu: %s\n", quant_isa_name(best));
}

/* Per-type levels: each type's gemv and gemm run where they were put, the
 * others stay, and a repacked layout is offered only while its file type's
 * gemm runs at the level that has it. */
static void test_kernel_choice(void **state)
{
	(void)state;
	enum quant_isa best = quant_isa_best(), isas[QUANT_ISA_COUNT];
	int nisa = isa_levels(isas);
	assert_int_equal(quant_kernel_choose(QT_Q4_K, 0, (enum quant_isa)17), -1);
	assert_int_equal(quant_kernel_choose(-1, 0, QUANT_ISA_SCALAR), -1);
	assert_int_equal(quant_kernel_choose(QT_Q4_K, 0, QUANT_ISA_SCALAR), 0);
	assert_int_equal(quant_kernel_level(QT_Q4_K, 0), QUANT_ISA_SCALAR);
	assert_int_equal(quant_kernel_level(QT_Q4_K, 1), best);
	assert_int_equal(quant_kernel_level(QT_Q6_K, 0), best);
	assert_false(quant_kernel_has(QT_Q4_K, 0, QUANT_ISA_SCALAR));
	/* mixed levels still agree with the C twins */
	for (int a = 0; a < nisa; a++)
		for (int b = 0; b < nisa; b++) {
			assert_int_equal(quant_kernel_choose(QT_Q4_K, 0, isas[a]), 0);
			assert_int_equal(quant_kernel_choose(QT_Q4_K, 1, isas[b]), 0);
			check_dot_against_dequant(QT_Q4_K, 512);
		}
	if (quant_isa_supported(QUANT_ISA_AVX512_VNNI)) {
		assert_int_equal(quant_kernel_choose(QT_Q8_0, 1, QUANT_ISA_AVX512_256), 0);
		assert_int_equal(quant_repack_type(QT_Q8_0, 256), -1);
		assert_int_equal(quant_kernel_choose(QT_Q8_0, 1, QUANT_ISA_AVX512_VNNI), 0);
		assert_int_equal(quant_repack_type(QT_Q8_0, 256), QT_Q8_0_R4);
		assert_int_equal(quant_kernel_level(QT_Q8_0_R4, 0), QUANT_ISA_AVX512_VNNI);
		assert_true(quant_kernel_has(QT_Q4_K, 1, QUANT_ISA_AVX512_256));
	}
	assert_int_equal(quant_isa_set(best), 0);
	assert_int_equal(quant_kernel_level(QT_Q4_K, 0), best);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_isa),
		cmocka_unit_test(test_kernel_choice),
		cmocka_unit_test(test_traits),
		cmocka_unit_test(test_row_bytes),
		cmocka_unit_test(test_f16_known),
		cmocka_unit_test(test_f16_round_trip_all),
		cmocka_unit_test(test_f16_matches_hardware),
		cmocka_unit_test(test_bf16),
		cmocka_unit_test(test_dequant_known),
		cmocka_unit_test(test_mxfp4_spec),
		cmocka_unit_test(test_quantize_round_trip),
		cmocka_unit_test(test_q8_1_sum),
		cmocka_unit_test(test_vec_dot_all_types),
		cmocka_unit_test(test_kernels_vs_scalar),
		cmocka_unit_test(test_kernels_large_shapes),
		cmocka_unit_test(test_kernels_block_scales),
		cmocka_unit_test(test_mxfp4_nan_scale),
		cmocka_unit_test(test_empty_rows),
		cmocka_unit_test(test_unsupported_dot_is_nan),
		cmocka_unit_test(test_activation_quantizers),
		cmocka_unit_test(test_activation_quantizers_nonfinite),
		cmocka_unit_test(test_repack),
	};
	return cmocka_run_group_tests_name("quant", tests, NULL, NULL);
}
