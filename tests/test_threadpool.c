/* threadpool: every thread runs each job once, splits cover the range exactly, many runs in a row. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "threadpool.h"

struct job {
	int n;             /* items */
	int *hits;         /* (n) how often each item was processed */
	atomic_int calls;  /* fn invocations */
	int seen_nth;
};

static void job_fn(void *arg, int ith, int nth)
{
	struct job *j = arg;
	int s, e;
	threadpool_split(j->n, ith, nth, 4, &s, &e);
	for (int i = s; i < e; i++)
		j->hits[i]++;
	if (ith == 0)
		j->seen_nth = nth;
	atomic_fetch_add(&j->calls, 1);
}

static void test_split_covers(void **state)
{
	(void)state;
	for (int n = 0; n < 100; n += 7)
		for (int nth = 1; nth <= 5; nth++)
			for (int align = 1; align <= 32; align *= 2) {
				int next = 0;
				for (int ith = 0; ith < nth; ith++) {
					int s, e;
					threadpool_split(n, ith, nth, align, &s, &e);
					assert_int_equal(s, next);
					assert_true(e >= s);
					if (e < n)
						assert_int_equal(e % align, 0);
					next = e;
				}
				assert_int_equal(next, n);
			}
}

static void test_split_balanced(void **state)
{
	(void)state;
	int s0, e0, s1, e1;
	threadpool_split(4096, 0, 2, 16, &s0, &e0);
	threadpool_split(4096, 1, 2, 16, &s1, &e1);
	assert_int_equal(e0 - s0, 2048);
	assert_int_equal(e1 - s1, 2048);
}

static void run_many(int nth, int runs, int sleep_every)
{
	struct threadpool *tp = threadpool_create(nth);
	assert_non_null(tp);
	assert_int_equal(threadpool_size(tp), nth);
	struct job j;
	memset(&j, 0, sizeof(j));
	j.n = 1000;
	int hits[1000];
	memset(hits, 0, sizeof(hits));
	j.hits = hits;
	for (int r = 0; r < runs; r++) {
		threadpool_run(tp, job_fn, &j);
		assert_int_equal(atomic_load(&j.calls), (r + 1) * nth);
		if (sleep_every && r % sleep_every == 0)
			usleep(1000); /* past the spin: workers go to sleep and must wake */
	}
	for (int i = 0; i < 1000; i++)
		assert_int_equal(hits[i], runs);
	assert_int_equal(j.seen_nth, nth);
	threadpool_free(tp);
}

static void test_single_thread(void **state)
{
	(void)state;
	run_many(1, 10, 0);
}

static void test_back_to_back(void **state)
{
	(void)state;
	run_many(3, 2000, 0);
}

static void test_wake_after_sleep(void **state)
{
	(void)state;
	run_many(2, 20, 1);
}

static void test_online_cores(void **state)
{
	(void)state;
	assert_true(threadpool_online_cores() >= 1);
	struct threadpool *tp = threadpool_create(0);
	assert_non_null(tp);
	assert_int_equal(threadpool_size(tp), threadpool_online_cores());
	threadpool_free(tp);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_split_covers),
		cmocka_unit_test(test_split_balanced),
		cmocka_unit_test(test_single_thread),
		cmocka_unit_test(test_back_to_back),
		cmocka_unit_test(test_wake_after_sleep),
		cmocka_unit_test(test_online_cores),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
