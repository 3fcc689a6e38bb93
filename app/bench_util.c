/* What every `palaver bench` family shares: random numbers, CPU clocks, statistics, text. */
#include "bench.h"
#include "config.h"
#include "report.h"
#include "strbuf.h"
#include "util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/*
 * Everything here is deterministic for a given state, so that two runs of a
 * benchmark measure the same work: xorshift64 for the numbers, a fixed LCG
 * for token ids (the sequence bench_model has always used).
 */

uint64_t bench_rng(uint64_t *state)
{
	uint64_t x = *state;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *state = x;
}

double bench_rng_unit(uint64_t *state)
{
	return (double)(bench_rng(state) >> 11) / 9007199254740992.0; /* 53 bits / 2^53 */
}

int32_t bench_rand_token(int n_vocab)
{
	static uint32_t lcg = 12345;
	lcg = lcg * 1664525u + 1013904223u;
	return (int32_t)((lcg >> 8) % (uint32_t)n_vocab);
}

double bench_cpu_ms(int whole_process)
{
	struct timespec ts;
	clock_gettime(whole_process ? CLOCK_PROCESS_CPUTIME_ID : CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

void bench_mean_sd(const double *v, int n, double *mean, double *sd)
{
	double s = 0, q = 0;
	for (int i = 0; i < n; i++)
		s += v[i];
	*mean = n ? s / n : 0;
	for (int i = 0; i < n; i++)
		q += (v[i] - *mean) * (v[i] - *mean);
	*sd = n > 1 ? sqrt(q / (n - 1)) : 0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

void bench_sort(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
}

double bench_percentile(const double *sorted, int n, double p)
{
	int k = (int)(p / 100.0 * n + 0.999999) - 1; /* nearest rank */
	if (k < 0)
		k = 0;
	if (k >= n)
		k = n - 1;
	return n ? sorted[k] : 0;
}

void bench_text(struct strbuf *sb, const struct bench_words *w, size_t n, size_t max_bytes,
		uint64_t *rng)
{
	for (size_t i = 0; i < n && sb->len < max_bytes; i++) {
		size_t k;
		if (w->zipf) {
			/* exp(u ln N) is log-uniform, so P(rank r) ~ 1/r */
			k = (size_t)exp(bench_rng_unit(rng) * log((double)w->n_words)) - 1;
			if (k >= w->n_words)
				k = w->n_words - 1;
		} else {
			k = bench_rng(rng) % w->n_words;
		}
		if (i)
			strbuf_addstr(sb, w->seps[bench_rng(rng) % w->n_seps]);
		strbuf_addstr(sb, w->words[k]);
	}
}

int bench_parse_int(const char *opt, const char *v, int lo, int hi, int *out)
{
	long l;
	if (!v || parse_long(v, &l) < 0 || l < lo || l > hi) {
		report("bench: %s needs a number from %d to %d", opt, lo, hi);
		return -1;
	}
	*out = (int)l;
	return 0;
}
