/* ops: YaRN RoPE (ramp, attention factor, shifts) and gpt-oss's clamped SwiGLU against their definitions. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ops.h"

/* gpt-oss-20b's RoPE: 64 rotated dims, base 150000, YaRN factor 32 over 4096. */
static struct rope gptoss_rope(void)
{
	struct rope r = { .n_rot = 64, .neox = 1, .base = 150000.0f, .freq_scale = 1.0f / 32.0f,
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
	assert_float_equal(out[7], out[8] * (8.0 / -6.0), 1e-5 * fabs(out[7])); /* up clamped to +-7 */
	assert_float_equal(out[9], 0.0f, 0); /* up -1 closes it */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_yarn_params),       cmocka_unit_test(test_yarn_angles),
		cmocka_unit_test(test_yarn_shift),        cmocka_unit_test(test_no_yarn_is_linear),
		cmocka_unit_test(test_swiglu_oai),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
