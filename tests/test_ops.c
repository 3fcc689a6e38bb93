/* ops: norms, RoPE, activations and soft-capping against double-precision references. */
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
	float g[40], u[40], g0[40];
	for (int i = 0; i < 40; i++) {
		g0[i] = g[i] = frand(&s, -20, 20);
		u[i] = frand(&s, -2, 2);
	}
	glu_silu(g, u, 40);
	for (int i = 0; i < 40; i++) {
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
		struct rope r = { NR, neox, 10000.0f, 0.5f, 1.5f, f };
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_gelu_softcap),
		cmocka_unit_test(test_silu),
		cmocka_unit_test(test_rms_norm),
		cmocka_unit_test(test_rope),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
