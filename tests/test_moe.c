/* moe: routing (top-k, renormalization) against a plain reference, and grouping tokens by expert. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "moe.h"
#include "report.h"

static uint64_t rng = 0x2545f4914f6cdd1dull;

static uint32_t next_u32(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)(rng >> 32);
}

static float next_float(void)
{
	return (float)next_u32() / 4294967296.0f * 8.0f - 4.0f;
}

/* The reference: softmax in double over all experts, then a full sort of
 * (probability, index) pairs, highest first, lower index first on ties. */
struct ref_item {
	double p;
	int e;
};

static int cmp_item(const void *a, const void *b)
{
	const struct ref_item *x = a, *y = b;
	if (x->p != y->p)
		return x->p < y->p ? 1 : -1;
	return x->e - y->e;
}

static void ref_route(const float *logits, int n, int k, int renorm, int32_t *ids, double *w)
{
	struct ref_item *it = malloc(sizeof(*it) * (size_t)n);
	double mx = logits[0], sum = 0;
	for (int e = 1; e < n; e++)
		mx = logits[e] > mx ? logits[e] : mx;
	for (int e = 0; e < n; e++) {
		it[e].p = exp((double)logits[e] - mx);
		it[e].e = e;
		sum += it[e].p;
	}
	for (int e = 0; e < n; e++)
		it[e].p /= sum;
	qsort(it, (size_t)n, sizeof(*it), cmp_item);
	double chosen = 0;
	for (int s = 0; s < k; s++)
		chosen += it[s].p;
	for (int s = 0; s < k; s++) {
		ids[s] = it[s].e;
		w[s] = renorm ? it[s].p / chosen : it[s].p;
	}
	free(it);
}

/* Random logits for many expert counts and k, both weightings. */
static void test_route_matches_reference(void **state)
{
	(void)state;
	int shapes[][2] = { { 4, 2 },   { 8, 2 }, { 8, 8 },  { 60, 4 },
			    { 128, 8 }, { 1, 1 }, { 256, 8 } };
	for (size_t si = 0; si < sizeof(shapes) / sizeof(shapes[0]); si++) {
		int n = shapes[si][0], k = shapes[si][1];
		float *lg = malloc(sizeof(float) * (size_t)n);
		for (int trial = 0; trial < 200; trial++) {
			for (int e = 0; e < n; e++)
				lg[e] = next_float();
			for (int renorm = 0; renorm < 2; renorm++) {
				int32_t ids[8], rids[8];
				float w[8];
				double rw[8], sum = 0;
				moe_route(lg, n, k, renorm, ids, w);
				ref_route(lg, n, k, renorm, rids, rw);
				for (int s = 0; s < k; s++) {
					assert_int_equal(ids[s], rids[s]);
					assert_true(fabs(w[s] - rw[s]) < 1e-6);
					sum += w[s];
					if (s)
						assert_true(w[s] <= w[s - 1]);
				}
				if (renorm || k == n)
					assert_true(fabs(sum - 1.0) < 1e-5);
				else
					assert_true(sum < 1.0 + 1e-6);
			}
		}
		free(lg);
	}
}

/* Equal logits: the lower index first; large logits do not overflow. */
static void test_route_ties_and_range(void **state)
{
	(void)state;
	float lg[6] = { 1, 3, 3, 0, 3, -2 };
	int32_t ids[3];
	float w[3];
	moe_route(lg, 6, 3, 1, ids, w);
	assert_int_equal(ids[0], 1);
	assert_int_equal(ids[1], 2);
	assert_int_equal(ids[2], 4);
	for (int s = 0; s < 3; s++)
		assert_true(fabsf(w[s] - 1.0f / 3) < 1e-6f);

	float big[4] = { 1000.0f, 999.0f, -1000.0f, 998.0f };
	moe_route(big, 4, 2, 0, ids, w);
	assert_int_equal(ids[0], 0);
	assert_int_equal(ids[1], 1);
	double s = exp(0) + exp(-1) + exp(-2); /* e^-2000 vanishes */
	assert_true(fabs(w[0] - 1.0 / s) < 1e-6);
	assert_true(fabs(w[1] - exp(-1) / s) < 1e-6);
	/* renormalized: the softmax of the two chosen logits */
	moe_route(big, 4, 2, 1, ids, w);
	assert_true(fabs(w[0] - 1.0 / (1.0 + exp(-1))) < 1e-6);
	assert_true(fabs(w[1] - exp(-1) / (1.0 + exp(-1))) < 1e-6);
}

/* Check every invariant of moe.h for one grouping. */
static void check_groups(const struct moe_groups *g, const int32_t *ids, int ntok, int k)
{
	int n = ntok * k;
	assert_int_equal(g->n_pairs, n);
	assert_int_equal(g->start[0], 0);
	assert_int_equal(g->start[g->n_expert], n);
	int na = 0;
	for (int e = 0; e < g->n_expert; e++) {
		assert_true(g->start[e] <= g->start[e + 1]);
		if (moe_rows(g, e)) {
			assert_true(na < g->n_active);
			assert_int_equal(g->active[na], e);
			na++;
		}
		for (int r = g->start[e]; r < g->start[e + 1]; r++) {
			int p = g->pair[r];
			assert_true(p >= 0 && p < n);
			assert_int_equal(ids[p], e);
			assert_int_equal(g->row[p], r);
			if (r > g->start[e])
				assert_true(g->pair[r - 1] < p); /* tokens ascending */
		}
	}
	assert_int_equal(na, g->n_active);
	/* every pair has a row, and the rows are a permutation */
	char *seen = calloc((size_t)n, 1);
	for (int p = 0; p < n; p++) {
		int r = g->row[p];
		assert_true(r >= 0 && r < n);
		assert_int_equal(seen[r], 0);
		seen[r] = 1;
		assert_int_equal(g->pair[r], p);
	}
	free(seen);
}

static void test_group(void **state)
{
	(void)state;
	struct moe_groups *g = moe_groups_new(16, 64 * 4);
	assert_non_null(g);
	int32_t ids[64 * 4];
	for (int trial = 0; trial < 100; trial++) {
		int ntok = 1 + (int)(next_u32() % 64), k = 1 + (int)(next_u32() % 4);
		/* distinct experts per token, as routing gives, but bunched on
		 * few experts in some trials so that some have no rows */
		int span = trial % 3 ? 16 : k + 1;
		for (int t = 0; t < ntok; t++)
			for (int s = 0; s < k; s++) {
				int32_t e;
				int dup;
				do {
					e = (int32_t)(next_u32() % (uint32_t)span);
					dup = 0;
					for (int j = 0; j < s; j++)
						dup |= ids[t * k + j] == e;
				} while (dup);
				ids[t * k + s] = e;
			}
		assert_int_equal(moe_group(g, ids, ntok, k), 0);
		check_groups(g, ids, ntok, k);
	}
	/* one token (decode): its k experts, each one row */
	int32_t one[4] = { 9, 2, 15, 0 };
	assert_int_equal(moe_group(g, one, 1, 4), 0);
	check_groups(g, one, 1, 4);
	assert_int_equal(g->n_active, 4);
	assert_int_equal(g->active[0], 0);
	assert_int_equal(g->active[3], 15);
	assert_int_equal(g->row[0], 2); /* expert 9 comes after 0 and 2 */
	moe_groups_free(g);
}

static void test_group_errors(void **state)
{
	(void)state;
	struct moe_groups *g = moe_groups_new(4, 8);
	int32_t ids[10] = { 0, 1, 2, 3, 0, 1, 2, 3, 0, 1 };
	assert_int_equal(moe_group(g, ids, 5, 2), -1);
	assert_non_null(strstr(error_message(), "cannot group 5 tokens of 2 experts in 8 pairs"));
	ids[3] = 4;
	assert_int_equal(moe_group(g, ids, 2, 2), -1);
	assert_non_null(strstr(error_message(), "expert 4 is out of range (4 experts)"));
	ids[3] = -1;
	assert_int_equal(moe_group(g, ids, 2, 2), -1);
	ids[3] = 3;
	assert_int_equal(moe_group(g, ids, 4, 2), 0);
	check_groups(g, ids, 4, 2);
	assert_int_equal(moe_group(g, ids, 0, 2), 0); /* nothing to group */
	assert_int_equal(g->n_active, 0);
	moe_groups_free(g);
	assert_null(moe_groups_new(0, 8));
	moe_groups_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_route_matches_reference),
		cmocka_unit_test(test_route_ties_and_range),
		cmocka_unit_test(test_group),
		cmocka_unit_test(test_group_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
