/* attention: decode and prefill against a plain double-precision reference (windows, soft-cap, sinks). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "attention.h"
#include "kv_cache.h"
#include "quant.h"

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static float next_float(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (float)(uint32_t)(rng >> 32) / 4294967296.0f * 2.0f - 1.0f;
}

/* One cached element as attention reads it. */
static double cached(const struct kv_cache *kv, const void *row, int i)
{
	if (kv->type == KV_F16)
		return quant_f16_to_f32(((const quant_half *)row)[i]);
	return ((const float *)row)[i];
}

/* The definition: for each token and head, softmax over the scores of the
 * positions it sees (plus the sink's logit, which has no value), then the
 * weighted sum of the values. */
static void ref_attn(const struct attn_args *a, double *out)
{
	const struct kv_cache *kv = a->kv;
	int hd = a->head_dim, hv = a->head_dim_v, G = a->n_head / a->n_head_kv;
	double *s = malloc(sizeof(double) * (size_t)(a->pos0 + a->ntok));
	for (int t = 0; t < a->ntok; t++) {
		int pos = a->pos0 + t, lo = a->window > 0 ? pos - a->window + 1 : 0;
		if (lo < 0)
			lo = 0;
		for (int h = 0; h < a->n_head; h++) {
			const float *q = a->q + ((size_t)t * a->n_head + h) * hd;
			double mx = a->sinks ? a->sinks[h] : -INFINITY, den = 0;
			for (int p = lo; p <= pos; p++) {
				const void *k = kv_cache_k(kv, a->layer, h / G, p);
				double d = 0;
				for (int i = 0; i < hd; i++)
					d += (double)q[i] * cached(kv, k, i);
				d *= a->scale;
				if (a->softcap > 0)
					d = a->softcap * tanh(d / a->softcap);
				s[p] = d;
				mx = d > mx ? d : mx;
			}
			if (a->sinks)
				den += exp(a->sinks[h] - mx);
			for (int p = lo; p <= pos; p++)
				den += exp(s[p] - mx);
			double *o = out + ((size_t)t * a->n_head + h) * hv;
			for (int i = 0; i < hv; i++) {
				double acc = 0;
				for (int p = lo; p <= pos; p++)
					acc += exp(s[p] - mx) *
					       cached(kv, kv_cache_v(kv, a->layer, h / G, p), i);
				o[i] = acc / den;
			}
		}
	}
	free(s);
}

/* Fill a one-layer cache of n positions and queries for ntok tokens at its end. */
struct setup {
	struct kv_cache kv;
	float *q, *out;
	double *ref;
	struct attn_args a;
};

static void setup_make(struct setup *S, enum kv_type type, int n, int ntok, int nh, int nkv, int hd,
		       int hv)
{
	memset(S, 0, sizeof(*S));
	assert_int_equal(kv_cache_init(&S->kv, type, 1, n, nkv, hd, hv), 0);
	float *k = malloc(sizeof(float) * (size_t)nkv * hd),
	      *v = malloc(sizeof(float) * (size_t)nkv * hv);
	for (int p = 0; p < n; p++) {
		for (int i = 0; i < nkv * hd; i++)
			k[i] = next_float();
		for (int i = 0; i < nkv * hv; i++)
			v[i] = next_float();
		kv_cache_store(&S->kv, 0, p, k, v);
	}
	S->kv.n = n;
	free(k);
	free(v);
	S->q = malloc(sizeof(float) * (size_t)ntok * nh * hd);
	for (int i = 0; i < ntok * nh * hd; i++)
		S->q[i] = 3.0f * next_float();
	S->out = malloc(sizeof(float) * (size_t)ntok * nh * hv);
	S->ref = malloc(sizeof(double) * (size_t)ntok * nh * hv);
	S->a = (struct attn_args){ .kv = &S->kv,
				   .q = S->q,
				   .out = S->out,
				   .n_head = nh,
				   .n_head_kv = nkv,
				   .head_dim = hd,
				   .head_dim_v = hv,
				   .scale = 1.0f / sqrtf((float)hd),
				   .pos0 = n - ntok,
				   .ntok = ntok };
}

static void setup_free(struct setup *S)
{
	kv_cache_free(&S->kv);
	free(S->q);
	free(S->out);
	free(S->ref);
}

/* attn_run split over nth threads (run one after the other) against the
 * reference; the largest absolute difference. */
static double run_and_compare(struct setup *S, int nth)
{
	const struct attn_args *a = &S->a;
	size_t per = attn_scratch_floats(a->n_head, a->n_head_kv, a->head_dim, a->head_dim_v);
	float *scratch = malloc(sizeof(float) * per);
	for (int i = 0; i < nth; i++)
		attn_run(a, i, nth, scratch);
	free(scratch);
	ref_attn(a, S->ref);
	double worst = 0;
	for (int i = 0; i < a->ntok * a->n_head * a->head_dim_v; i++) {
		double d = fabs(S->out[i] - S->ref[i]);
		worst = d > worst ? d : worst;
	}
	return worst;
}

/* Decode and prefill, F32 and F16 cache, with and without window, soft-cap
 * and sinks; query heads per KV head 4, 6 and 7 (the kernels take four at
 * a time), head sizes 32, 64 and 128. */
static void test_against_reference(void **state)
{
	static const int shapes[][4] = { { 8, 2, 32, 32 }, { 6, 1, 64, 64 }, { 7, 1, 128, 128 } };
	(void)state;
	float sinks[8];
	for (int i = 0; i < 8; i++)
		sinks[i] = 4.0f * next_float();
	sinks[1] = 40.0f; /* far above every score: rescaled, not overflowed */
	sinks[2] = -40.0f;
	for (int sh = 0; sh < 3; sh++)
	for (int type = 0; type < 2; type++)
		for (int ntok = 1; ntok <= 19; ntok += 18)
			for (int variant = 0; variant < 4; variant++) {
				struct setup S;
				const int *z = shapes[sh];
				setup_make(&S, type ? KV_F32 : KV_F16, 77, ntok, z[0], z[1], z[2], z[3]);
				S.a.window = variant & 1 ? 6 : 0;
				S.a.softcap = variant == 3 ? 1.5f : 0;
				S.a.sinks = variant >= 2 ? sinks : NULL;
				for (int nth = 1; nth <= 3; nth++) {
					double e = run_and_compare(&S, nth);
					if (!(e < 2e-5))
						fail_msg(
							"shape %d kv %d ntok %d variant %d threads %d: error "
							"%g",
							sh, type, ntok, variant, nth, e);
				}
				setup_free(&S);
			}
}

/* The sink only takes probability mass: a head's output is its sinkless
 * output times the mass its keys keep, 1 / (1 + exp(sink) / sum exp(s)). */
static void test_sink_scales_output(void **state)
{
	(void)state;
	struct setup S;
	setup_make(&S, KV_F32, 40, 1, 4, 4, 16, 16);
	size_t n = 4 * 16;
	float *plain = malloc(sizeof(float) * n);
	run_and_compare(&S, 1);
	memcpy(plain, S.out, sizeof(float) * n);
	float sinks[4] = { -200.0f, 0.0f, 3.0f, 200.0f };
	S.a.sinks = sinks;
	assert_true(run_and_compare(&S, 1) < 1e-5);
	for (int i = 0; i < 16; i++) {
		assert_float_equal(S.out[i], plain[i], 1e-6);       /* exp(-200) is nothing */
		assert_float_equal(S.out[3 * 16 + i], 0.0f, 1e-30); /* all mass on the sink */
	}
	/* heads 1 and 2 shrink by the same factor across their values */
	for (int h = 1; h <= 2; h++) {
		double r0 = S.out[h * 16] / plain[h * 16];
		assert_true(r0 > 0 && r0 < 1);
		for (int i = 1; i < 16; i++)
			assert_float_equal(S.out[h * 16 + i], plain[h * 16 + i] * r0, 1e-5);
	}
	free(plain);
	setup_free(&S);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_against_reference),
		cmocka_unit_test(test_sink_scales_output),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
