/* ops: norms, RoPE (YaRN too), activations (gpt-oss's clamped SwiGLU too) and soft-capping against double-precision references. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ops.h"

static float frand(unsigned *s, float lo, float hi)
{
	*s = *s * 1103515245u + 12345u;
	return lo + (hi - lo) * (float)((*s >> 8) & 0xffffff) / 16777216.0f;
}

/* GeGLU and soft-cap: the vector body and the scalar tail both within
 * 1e-6 relative of the exact formula, over the range the models see
 * (lengths 37 and 8 exercise the tail and the body alone). */
static void test_gelu_softcap(void **state)
{
	(void)state;
	unsigned s = 7;
	int lens[] = { 37, 8, 1 };
	for (size_t k = 0; k < sizeof(lens) / sizeof(lens[0]); k++) {
		int n = lens[k];
		float g[64], u[64], x[64], x0[64];
		for (int i = 0; i < n; i++) {
			g[i] = frand(&s, -12, 12);
			u[i] = frand(&s, -2, 2);
			x[i] = x0[i] = frand(&s, -400, 400);
		}
		float g0[64];
		memcpy(g0, g, sizeof(g));
		glu_gelu(g, u, n);
		softcap(x, n, 30.0f);
		for (int i = 0; i < n; i++) {
			double a = g0[i], t = 0.7978845608028654 * (a + 0.044715 * a * a * a);
			double want = 0.5 * a * (1 + tanh(t)) * u[i];
			assert_true(fabs(g[i] - want) <= 1e-6 * fabs(want) + 1e-6);
			double cw = 30.0 * tanh(x0[i] / 30.0);
			assert_true(fabs(x[i] - cw) <= 2e-6 * fabs(cw) + 1e-6);
		}
	}
	/* saturation: huge scores cap at +-c, never NaN */
	float big[16] = { 1e30f, -1e30f, 1e5f, -1e5f, 0, 0, 0, 0, 1e30f, -1e30f, 1e5f, -1e5f };
	softcap(big, 16, 50.0f);
	assert_float_equal(big[0], 50.0f, 1e-4);
	assert_float_equal(big[1], -50.0f, 1e-4);
	assert_float_equal(big[8], 50.0f, 1e-4);
	assert_float_equal(big[9], -50.0f, 1e-4);
	for (int i = 0; i < 16; i++)
		assert_true(isfinite(big[i]));
}

/* SwiGLU against the exact formula. */
static void test_silu(void **state)
{
	(void)state;
	unsigned s = 3;
	float g[43], u[43], g0[43];
	for (int i = 0; i < 43; i++) {
		g0[i] = g[i] = frand(&s, -20, 20);
		u[i] = frand(&s, -2, 2);
	}
	/* past exp's range both ways, in the vector part and in the tail */
	g0[3] = g[3] = -100;
	g0[9] = g[9] = 100;
	g0[41] = g[41] = -95;
	glu_silu(g, u, 43);
	for (int i = 0; i < 43; i++) {
		double want = g0[i] / (1 + exp(-(double)g0[i])) * u[i];
		assert_true(fabs(g[i] - want) <= 1e-6 * fabs(want) + 1e-7);
	}
}

/* RMS norm, in place and not. */
static void test_rms_norm(void **state)
{
	(void)state;
	float x[5] = { 1, -2, 3, -4, 5 }, w[5] = { 1, 2, 1, 2, 1 }, out[5];
	rms_norm(out, x, w, 5, 0);
	double r = sqrt((1 + 4 + 9 + 16 + 25) / 5.0);
	for (int i = 0; i < 5; i++)
		assert_float_equal(out[i], x[i] / r * w[i], 1e-6);
	rms_norm(x, x, w, 5, 0);
	assert_memory_equal(x, out, sizeof(out));
}

/*
 * RoPE: the normal kind turns pairs (2i, 2i+1), NEOX pairs (i, i+n/2), by
 * pos * base^(-2i/n) / factor[i] * freq_scale, times mscale; dimensions
 * past n_rot stay.
 */
static void test_rope(void **state)
{
	(void)state;
	enum { HD = 12, NR = 8 };
	float f[NR / 2] = { 1, 2, 4, 8 };
	for (int neox = 0; neox < 2; neox++) {
		struct rope r = { .n_rot = NR,
				  .neox = neox,
				  .base = 10000.0f,
				  .freq_scale = 0.5f,
				  .mscale = 1.5f,
				  .factors = f };
		float cs[NR / 2], sn[NR / 2], x[HD], x0[HD];
		for (int i = 0; i < HD; i++)
			x[i] = x0[i] = (float)(i + 1);
		rope_table(&r, 7.0f, cs, sn);
		rope_apply(&r, x, 1, HD, cs, sn);
		for (int i = 0; i < NR / 2; i++) {
			double th = 7.0 * pow(10000.0, -2.0 * i / NR) / f[i] * 0.5;
			int a = neox ? i : 2 * i, b = neox ? i + NR / 2 : 2 * i + 1;
			double wa = 1.5 * (x0[a] * cos(th) - x0[b] * sin(th));
			double wb = 1.5 * (x0[a] * sin(th) + x0[b] * cos(th));
			assert_float_equal(x[a], wa, 1e-4);
			assert_float_equal(x[b], wb, 1e-4);
		}
		for (int i = NR; i < HD; i++)
			assert_float_equal(x[i], x0[i], 0);
	}
}

/* gpt-oss-20b's RoPE: 64 rotated dims, base 150000, YaRN factor 32 over 4096. */
static struct rope gptoss_rope(void)
{
	struct rope r = { .n_rot = 64,
			  .neox = 1,
			  .base = 150000.0f,
			  .freq_scale = 1.0f / 32.0f,
			  .mscale = 1.0f };
	rope_yarn_init(&r, 4096, 1.0f, 32.0f, 1.0f);
	return r;
}

/* The ramp's ends: pairs 64 * ln(4096 / (beta * 2 pi)) / (2 ln 150000) for
 * beta 32 (8.09, floored) and 1 (17.4, ceiled); the factor 1 + 0.1 ln 32. */
static void test_yarn_params(void **state)
{
	(void)state;
	struct rope r = gptoss_rope();
	assert_float_equal(r.corr[0], 8.0f, 0);
	assert_float_equal(r.corr[1], 18.0f, 0);
	assert_float_equal(r.mscale, 1.0f + 0.1f * logf(32.0f), 1e-6);
	/* ext_factor 0: nothing changes */
	struct rope p = { .n_rot = 64, .base = 10000.0f, .freq_scale = 0.25f, .mscale = 1.0f };
	rope_yarn_init(&p, 4096, 0.0f, 32.0f, 1.0f);
	assert_float_equal(p.mscale, 1.0f, 0);
	assert_float_equal(p.ext_factor, 0.0f, 0);
	/* the ramp's ends stay inside the rotated dims */
	struct rope q = { .n_rot = 8, .base = 10.0f, .freq_scale = 0.5f, .mscale = 1.0f };
	rope_yarn_init(&q, 1 << 20, 1.0f, 32.0f, 1.0f);
	assert_true(q.corr[0] >= 0 && q.corr[1] <= 7);
}

/* Each pair's angle (from the table, undoing the factor): the unscaled
 * angle for the fast pairs, the scaled one for the slow pairs, and between
 * them a mix that moves monotonically from the first to the second. */
static void test_yarn_angles(void **state)
{
	(void)state;
	struct rope r = gptoss_rope();
	float cs[32], sn[32];
	float pos = 3.0f;
	rope_table(&r, pos, cs, sn);
	double prev_mix = 1.0;
	for (int i = 0; i < 32; i++) {
		double ext = pos * pow(150000.0, -2.0 * i / 64.0), in = ext / 32.0;
		double ang = atan2(sn[i], cs[i]);
		double radius = hypot(cs[i], sn[i]);
		assert_float_equal(radius, r.mscale, 1e-5);
		/* the angles here stay below pi, so atan2 gives them back */
		if (i <= 8)
			assert_float_equal(ang, ext, 1e-5);
		else if (i >= 18)
			assert_float_equal(ang, in, 1e-5);
		double mix = (ang - in) / (ext - in);
		if (i > 8 && i < 18) {
			assert_true(mix < prev_mix + 1e-5 && mix > -1e-5);
			assert_float_equal(mix, 1.0 - (i - 8) / 10.0, 1e-4);
		}
		prev_mix = mix;
	}
}

/* Angles are linear in the position, so turning a key stored at p by the
 * table of -n (without the factor, as the context shift does) gives the key
 * rotated at p - n. */
static void test_yarn_shift(void **state)
{
	(void)state;
	struct rope r = gptoss_rope(), plain = r;
	plain.mscale = 1.0f;
	float cs[32], sn[32], k[64], want[64];
	for (int i = 0; i < 64; i++)
		k[i] = want[i] = sinf((float)i * 0.7f) + 0.1f;
	rope_table(&r, 1000.0f, cs, sn);
	rope_apply(&r, k, 1, 64, cs, sn);
	rope_table(&plain, -400.0f, cs, sn);
	rope_apply(&plain, k, 1, 64, cs, sn);
	rope_table(&r, 600.0f, cs, sn);
	rope_apply(&r, want, 1, 64, cs, sn);
	for (int i = 0; i < 64; i++)
		assert_float_equal(k[i], want[i], 2e-4);
}

/* ext_factor 0 is the linear scaling, bit for bit. */
static void test_no_yarn_is_linear(void **state)
{
	(void)state;
	struct rope r = { .n_rot = 16, .base = 10000.0f, .freq_scale = 0.5f, .mscale = 1.0f };
	float cs[8], sn[8];
	rope_table(&r, 7.0f, cs, sn);
	for (int i = 0; i < 8; i++) {
		float t = 7.0f;
		for (int j = 0; j < i; j++)
			t *= powf(10000.0f, -2.0f / 16.0f);
		assert_float_equal(cs[i], cosf(t * 0.5f), 1e-6);
		assert_float_equal(sn[i], sinf(t * 0.5f), 1e-6);
	}
}

static double swiglu_oai_ref(double g, double u, double alpha, double limit)
{
	double x = g < limit ? g : limit, y = u < -limit ? -limit : u > limit ? limit : u;
	return x / (1.0 + exp(-alpha * x)) * (y + 1.0);
}

/* The gate is clamped from above only, up on both sides, up gets +1, and
 * the sigmoid is alpha-steep. */
static void test_swiglu_oai(void **state)
{
	(void)state;
	float g[] = { -20.0f, -1.0f, 0.0f, 0.5f, 6.9f, 7.0f, 50.0f, 2.0f, 2.0f, 2.0f };
	float u[] = { 0.3f, -0.5f, 4.0f, 0.0f, 1.0f, -9.0f, 3.0f, 100.0f, -100.0f, -1.0f };
	float out[10];
	int n = 10;
	memcpy(out, g, sizeof(g));
	glu_swiglu_oai(out, u, n, 1.702f, 7.0f);
	for (int i = 0; i < n; i++)
		assert_float_equal(out[i], swiglu_oai_ref(g[i], u[i], 1.702, 7.0),
				   1e-5 * (1 + fabs(out[i])));
	assert_float_equal(out[3], 0.5 / (1 + exp(-0.851)), 1e-6); /* u = 0 passes the gate */
	assert_float_equal(out[6], 7.0 / (1 + exp(-1.702 * 7)) * 4.0, 1e-5);
	assert_float_equal(out[7], out[8] * (8.0 / -6.0),
			   1e-5 * fabs(out[7])); /* up clamped to +-7 */
	assert_float_equal(out[9], 0.0f, 0);     /* up -1 closes it */
}

/* dot_rows: each score within rounding of a double dot product, and the
 * same bits whatever the count of rows scored with it (decode and prefill
 * score a block's keys in steps of different lengths), for head sizes
 * with and without a tail of 16. */
static void test_dot_rows(void **state)
{
	(void)state;
	unsigned s = 7;
	static const int hds[] = { 64, 80, 128, 40 };
	for (size_t k = 0; k < sizeof(hds) / sizeof(hds[0]); k++) {
		int hd = hds[k];
		float q[128], rows[32 * 128], all[32], part[32];
		for (int i = 0; i < hd; i++)
			q[i] = frand(&s, -2, 2);
		for (int i = 0; i < 32 * hd; i++)
			rows[i] = frand(&s, -2, 2);
		dot_rows(q, rows, 32, hd, 0.125f, all);
		for (int i = 0; i < 32; i++) {
			double want = 0, mag = 0;
			for (int d = 0; d < hd; d++) {
				want += (double)q[d] * rows[i * hd + d];
				mag += fabs((double)q[d] * rows[i * hd + d]);
			}
			assert_true(fabs(all[i] - 0.125 * want) <= 1e-6 * mag);
		}
		for (int lo = 0; lo < 32; lo += 3)
			for (int n = 1; lo + n <= 32; n += 5) {
				dot_rows(q, rows + lo * hd, n, hd, 0.125f, part);
				assert_memory_equal(part, all + lo, sizeof(float) * (size_t)n);
			}
	}
}

/* The multi-query forms give each query the one-query functions' bits
 * (decode and prefill group queries differently), for 1..7 queries, head
 * sizes with and without their vector paths, steps of any length. */
static void test_multi_query_bits(void **state)
{
	(void)state;
	unsigned s = 11;
	static const int hds[] = { 64, 128, 80, 40 };
	enum { NQ = 7, NR = 29 };
	for (size_t k = 0; k < sizeof(hds) / sizeof(hds[0]); k++) {
		int hd = hds[k];
		float q[NQ * 128], rows[NR * 128], w[NQ * 32];
		float got[NQ * 32], want[NQ * 32], ag[NQ * 128], aw[NQ * 128];
		for (int i = 0; i < NQ * hd; i++)
			q[i] = frand(&s, -2, 2);
		for (int i = 0; i < NR * hd; i++)
			rows[i] = frand(&s, -2, 2);
		for (int i = 0; i < NQ * 32; i++)
			w[i] = frand(&s, 0, 1);
		for (int nq = 1; nq <= NQ; nq++)
			for (int n = 1; n <= NR; n += 7) {
				dot_rows_multi(q, nq, rows, n, hd, 0.25f, got, 32);
				for (int j = 0; j < nq; j++)
					dot_rows(q + j * hd, rows, n, hd, 0.25f, want + j * 32);
				for (int j = 0; j < nq; j++)
					assert_memory_equal(got + j * 32, want + j * 32,
							    sizeof(float) * (size_t)n);
				for (int i = 0; i < nq * hd; i++)
					ag[i] = aw[i] = frand(&s, -1, 1);
				accumulate_rows_multi(ag, (size_t)hd, nq, w, 32, rows, n, hd);
				for (int j = 0; j < nq; j++)
					accumulate_rows(aw + j * hd, w + j * 32, rows, n, hd);
				assert_memory_equal(ag, aw, sizeof(float) * (size_t)(nq * hd));
			}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_gelu_softcap), cmocka_unit_test(test_silu),
		cmocka_unit_test(test_rms_norm),     cmocka_unit_test(test_rope),
		cmocka_unit_test(test_yarn_params),  cmocka_unit_test(test_yarn_angles),
		cmocka_unit_test(test_yarn_shift),   cmocka_unit_test(test_no_yarn_is_linear),
		cmocka_unit_test(test_swiglu_oai),   cmocka_unit_test(test_dot_rows),
		cmocka_unit_test(test_multi_query_bits),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
