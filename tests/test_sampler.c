/* sampler: each stage on crafted logits, the chain's order, greedy, and seeded determinism. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <string.h>

#include "sampler.h"

#define NC 8

/* Candidates 0..n-1 with the given logits, in id order (unsorted). */
static struct sampler_cands make(struct sampler_cand *buf, const float *logits, int n)
{
	for (int i = 0; i < n; i++) {
		buf[i].id = i;
		buf[i].logit = logits[i];
		buf[i].p = 0;
	}
	struct sampler_cands c = { buf, (size_t)n, 0 };
	return c;
}

static int has(const struct sampler_cands *c, int id)
{
	for (size_t i = 0; i < c->n; i++)
		if (c->data[i].id == id)
			return 1;
	return 0;
}

static float logit_of(const struct sampler_cands *c, int id)
{
	for (size_t i = 0; i < c->n; i++)
		if (c->data[i].id == id)
			return c->data[i].logit;
	fail_msg("token %d not in candidates", id);
	return 0;
}

static void test_softmax(void **state)
{
	(void)state;
	struct sampler_cand b[NC];
	float l[3] = { 0.0f, logf(3.0f), 1000.0f - 1000.0f };
	struct sampler_cands c = make(b, l, 3);
	sampler_softmax(&c);
	assert_true(c.sorted);
	assert_int_equal(c.data[0].id, 1);
	assert_float_equal(c.data[0].p, 0.6f, 1e-6);
	assert_float_equal(c.data[1].p, 0.2f, 1e-6);
	/* tie between 0 and 2: lower id first */
	assert_int_equal(c.data[1].id, 0);
	/* numerically stable with huge logits */
	float big[2] = { 1e30f, 1e30f };
	c = make(b, big, 2);
	sampler_softmax(&c);
	assert_float_equal(c.data[0].p, 0.5f, 1e-6);
}

static void test_penalties(void **state)
{
	(void)state;
	struct sampler_cand b[NC];
	float l[5] = { 2.0f, -2.0f, 1.0f, 0.5f, 3.0f };
	int32_t hist[4] = { 0, 1, 0, 3 };
	struct sampler_cands c = make(b, l, 5);
	sampler_apply_penalties(&c, hist, 4, 2.0f, 0.0f, 0.0f);
	assert_float_equal(logit_of(&c, 0), 1.0f, 1e-6);  /* positive: divided */
	assert_float_equal(logit_of(&c, 1), -4.0f, 1e-6); /* negative: multiplied */
	assert_float_equal(logit_of(&c, 2), 1.0f, 1e-6);  /* unseen: unchanged */
	assert_float_equal(logit_of(&c, 3), 0.25f, 1e-6);
	c = make(b, l, 5);
	sampler_apply_penalties(&c, hist, 4, 1.0f, 0.5f, 0.0f);
	assert_float_equal(logit_of(&c, 0), 1.5f, 1e-6); /* presence: once */
	assert_float_equal(logit_of(&c, 4), 3.0f, 1e-6);
	c = make(b, l, 5);
	sampler_apply_penalties(&c, hist, 4, 1.0f, 0.0f, 0.25f);
	assert_float_equal(logit_of(&c, 0), 1.5f, 1e-6); /* frequency: per occurrence */
	assert_float_equal(logit_of(&c, 3), 0.25f, 1e-6);
}

static void test_top_k(void **state)
{
	(void)state;
	struct sampler_cand b[NC];
	float l[8] = { 0.1f, 5.0f, 0.3f, 4.0f, -1.0f, 4.5f, 0.2f, 3.0f };
	struct sampler_cands c = make(b, l, 8);
	sampler_apply_top_k(&c, 3, 1);
	assert_int_equal(c.n, 3);
	assert_int_equal(c.data[0].id, 1);
	assert_int_equal(c.data[1].id, 5);
	assert_int_equal(c.data[2].id, 3);
	c = make(b, l, 8);
	sampler_apply_top_k(&c, 0, 1); /* off */
	assert_int_equal(c.n, 8);
	c = make(b, l, 8);
	sampler_apply_top_k(&c, 1, 4); /* min_keep wins */
	assert_int_equal(c.n, 4);
	assert_true(has(&c, 7));
}

static void test_top_k_large(void **state)
{
	(void)state;
	enum { N = 5000 };
	static struct sampler_cand b[N];
	static float l[N];
	for (int i = 0; i < N; i++)
		l[i] = (float)((i * 7919) % N); /* a permutation of 0..N-1 */
	struct sampler_cands c = make(b, l, N);
	sampler_apply_top_k(&c, 40, 1);
	assert_int_equal(c.n, 40);
	for (int i = 0; i < 40; i++)
		assert_float_equal(c.data[i].logit, (float)(N - 1 - i), 0);
}

static void test_top_p(void **state)
{
	(void)state;
	struct sampler_cand b[NC];
	/* probabilities 0.5, 0.25, 0.125, 0.125 */
	float l[4] = { logf(0.125f), logf(0.5f), logf(0.25f), logf(0.125f) };
	struct sampler_cands c = make(b, l, 4);
	sampler_apply_top_p(&c, 0.7f, 1);
	assert_int_equal(c.n, 2);
	assert_int_equal(c.data[0].id, 1);
	assert_int_equal(c.data[1].id, 2);
	c = make(b, l, 4);
	sampler_apply_top_p(&c, 0.5f, 1); /* reaching p exactly stops there */
	assert_int_equal(c.n, 1);
	c = make(b, l, 4);
	sampler_apply_top_p(&c, 0.1f, 3);
	assert_int_equal(c.n, 3);
	c = make(b, l, 4);
	sampler_apply_top_p(&c, 1.0f, 1);
	assert_int_equal(c.n, 4);
}

static void test_min_p(void **state)
{
	(void)state;
	struct sampler_cand b[NC];
	/* relative to the best: 1, 0.5, 0.1, 0.04 */
	float l[4] = { 0.0f, logf(0.5f), logf(0.1f), logf(0.04f) };
	struct sampler_cands c = make(b, l, 4);
	sampler_apply_min_p(&c, 0.09f, 1);
	assert_int_equal(c.n, 3);
	assert_false(has(&c, 3));
	c = make(b, l, 4);
	sampler_apply_min_p(&c, 0.6f, 1);
	assert_int_equal(c.n, 1);
	assert_int_equal(c.data[0].id, 0);
	c = make(b, l, 4);
	sampler_apply_min_p(&c, 0.6f, 2);
	assert_int_equal(c.n, 2);
}

static void test_typical(void **state)
{
	(void)state;
	struct sampler_cand b[NC];
	/* p = 0.4, 0.3, 0.2, 0.1: entropy 1.2799 nats; surprisals 0.916,
	 * 1.204, 1.609, 2.303 -> distance 0.364, 0.076, 0.330, 1.023 */
	float l[4] = { logf(0.4f), logf(0.3f), logf(0.2f), logf(0.1f) };
	struct sampler_cands c = make(b, l, 4);
	sampler_apply_typical(&c, 0.5f, 1);
	/* most typical first: 1 (0.3), then 2 (0.2) reaching 0.5 -> still <= 0.5,
	 * then 0 (0.4) crosses */
	assert_int_equal(c.n, 3);
	assert_true(has(&c, 0) && has(&c, 1) && has(&c, 2));
	assert_false(has(&c, 3));
	c = make(b, l, 4);
	sampler_apply_typical(&c, 0.2f, 1);
	assert_int_equal(c.n, 1);
	assert_int_equal(c.data[0].id, 1);
}

static void test_temperature(void **state)
{
	(void)state;
	struct sampler_cand b[NC];
	float l[3] = { 1.0f, 2.0f, -4.0f };
	struct sampler_cands c = make(b, l, 3);
	sampler_apply_temperature(&c, 0.5f);
	assert_float_equal(logit_of(&c, 0), 2.0f, 1e-6);
	assert_float_equal(logit_of(&c, 2), -8.0f, 1e-6);
	c = make(b, l, 3);
	sampler_apply_temperature(&c, 0.0f);
	assert_int_equal(c.n, 1);
	assert_int_equal(c.data[0].id, 1);
}

static void test_draw(void **state)
{
	(void)state;
	struct sampler_cand b[NC];
	float l[3] = { logf(0.2f), logf(0.5f), logf(0.3f) };
	struct sampler_cands c = make(b, l, 3);
	assert_int_equal(sampler_draw(&c, 0.0), 1);
	c = make(b, l, 3);
	assert_int_equal(sampler_draw(&c, 0.49), 1);
	c = make(b, l, 3);
	assert_int_equal(sampler_draw(&c, 0.51), 2);
	c = make(b, l, 3);
	assert_int_equal(sampler_draw(&c, 0.81), 0);
	c = make(b, l, 3);
	assert_int_equal(sampler_draw(&c, 0.999999), 0);
}

static void test_rng(void **state)
{
	(void)state;
	struct sampler_rng a, b;
	sampler_rng_seed(&a, 42);
	sampler_rng_seed(&b, 42);
	for (int i = 0; i < 100; i++)
		assert_true(sampler_rng_next(&a) == sampler_rng_next(&b));
	sampler_rng_seed(&b, 43);
	assert_true(sampler_rng_next(&a) != sampler_rng_next(&b));
	/* uniform in [0,1) with a sane mean */
	double sum = 0;
	for (int i = 0; i < 10000; i++) {
		double u = sampler_rng_uniform(&a);
		assert_true(u >= 0 && u < 1);
		sum += u;
	}
	assert_true(fabs(sum / 10000 - 0.5) < 0.02);
}

static void test_greedy(void **state)
{
	(void)state;
	struct sampler_params p;
	sampler_params_default(&p);
	p.temperature = 0;
	p.repeat_penalty = 4.0f;
	struct sampler *s = sampler_new(&p, 4);
	assert_non_null(s);
	float l[4] = { 1.0f, 3.0f, 2.0f, 0.0f };
	assert_int_equal(sampler_sample(s, l), 1);
	sampler_accept(s, 1); /* 3 / 4 = 0.75 < 2: token 2 wins now */
	assert_int_equal(sampler_sample(s, l), 2);
	sampler_free(s);
}

static void test_seeded_chain(void **state)
{
	(void)state;
	enum { V = 100 };
	float l[V];
	for (int i = 0; i < V; i++)
		l[i] = sinf((float)i) * 3.0f;
	struct sampler_params p;
	sampler_params_default(&p);
	p.seed = 1234;
	p.top_k = 0;
	p.min_p = 0;
	p.top_p = 1;
	p.temperature = 1.5f;
	struct sampler *a = sampler_new(&p, V), *b = sampler_new(&p, V);
	int32_t first[50];
	int distinct = 0;
	for (int i = 0; i < 50; i++) {
		first[i] = sampler_sample(a, l);
		assert_int_equal(first[i], sampler_sample(b, l));
		if (i && first[i] != first[0])
			distinct = 1;
	}
	assert_true(distinct); /* it really samples */
	sampler_reset(a);
	for (int i = 0; i < 50; i++)
		assert_int_equal(first[i], sampler_sample(a, l)); /* reset reseeds */
	/* with top-k 1 in the chain every draw is the argmax */
	struct sampler_params q = p;
	q.top_k = 1;
	struct sampler *k1 = sampler_new(&q, V);
	int best = 0;
	for (int i = 1; i < V; i++)
		if (l[i] > l[best])
			best = i;
	for (int i = 0; i < 20; i++)
		assert_int_equal(sampler_sample(k1, l), best);
	sampler_free(a);
	sampler_free(b);
	sampler_free(k1);
}

static void test_order(void **state)
{
	(void)state;
	struct sampler_params p;
	sampler_params_default(&p);
	assert_int_equal(p.n_order, 6);
	assert_int_equal(p.order[0], SAMPLER_PENALTIES);
	assert_int_equal(p.order[5], SAMPLER_TEMPERATURE);
	assert_int_equal(sampler_order_parse("temperature,top_k", &p), 0);
	assert_int_equal(p.n_order, 2);
	assert_int_equal(p.order[0], SAMPLER_TEMPERATURE);
	assert_int_equal(sampler_order_parse("kypmt", &p), 0);
	assert_int_equal(p.n_order, 5);
	assert_int_equal(p.order[1], SAMPLER_TYPICAL_P);
	assert_int_equal(sampler_order_parse("top_k,bogus", &p), -1);
	assert_int_equal(sampler_order_parse("top_k,top_k", &p), -1);
	assert_int_equal(p.n_order, 5); /* unchanged on error */

	/* order matters: min-p before temperature vs after a sharpening temperature */
	float l[3] = { 0.0f, logf(0.5f), logf(0.2f) };
	sampler_params_default(&p);
	p.top_k = 0;
	p.top_p = 1;
	p.min_p = 0.3f;
	p.temperature = 0.5f;
	/* temperature first: relative probs become 1, .25, .04 -> min-p keeps only 0 */
	assert_int_equal(sampler_order_parse("temperature,min_p", &p), 0);
	struct sampler *s = sampler_new(&p, 3);
	for (int i = 0; i < 30; i++)
		assert_int_equal(sampler_sample(s, l), 0);
	sampler_free(s);
}

static void test_history_ring(void **state)
{
	(void)state;
	struct sampler_params p;
	sampler_params_default(&p);
	p.temperature = 0;
	p.repeat_last_n = 2;
	p.presence_penalty = 10.0f;
	struct sampler *s = sampler_new(&p, 3);
	float l[3] = { 3.0f, 2.0f, 1.0f };
	sampler_accept(s, 0);
	sampler_accept(s, 1);
	assert_int_equal(sampler_sample(s, l), 2);
	sampler_accept(s, 2); /* 0 leaves the window of 2 */
	assert_int_equal(sampler_sample(s, l), 0);
	sampler_accept(s, 99); /* out of range: ignored */
	sampler_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_softmax),	    cmocka_unit_test(test_penalties),
		cmocka_unit_test(test_top_k),	    cmocka_unit_test(test_top_k_large),
		cmocka_unit_test(test_top_p),	    cmocka_unit_test(test_min_p),
		cmocka_unit_test(test_typical),	    cmocka_unit_test(test_temperature),
		cmocka_unit_test(test_draw),	    cmocka_unit_test(test_rng),
		cmocka_unit_test(test_greedy),	    cmocka_unit_test(test_seeded_chain),
		cmocka_unit_test(test_order),	    cmocka_unit_test(test_history_ring),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
