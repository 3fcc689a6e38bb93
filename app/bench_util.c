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

/* "a, b or c" */
static void add_choices(struct strbuf *sb, const char *const *c)
{
	for (int i = 0; c[i]; i++)
		strbuf_addf(sb, "%s%s", i ? (c[i + 1] ? ", " : " or ") : "", c[i]);
}

/* Take the value v of option o; 0, or -1 after saying what is wrong. */
static int take_value(const struct bench_opt *o, const char *v)
{
	struct strbuf msg = STRBUF_INIT;
	long l = 0;
	uint64_t u = 0;
	int i = 0;
	switch (o->type) {
	case BENCH_FLAG: *(int *)o->out = 1; return 0;
	case BENCH_TEXT: *(const char **)o->out = v; return 0;
	case BENCH_LIST: {
		struct bench_list *list = o->out;
		if (list->n < BENCH_LIST_MAX) {
			list->items[list->n++] = v;
			return 0;
		}
		strbuf_addf(&msg, "'%s' may be given at most %d times", o->name, BENCH_LIST_MAX);
		break;
	}
	case BENCH_INT:
		if (v && parse_long(v, &l) == 0 && l >= o->lo && l <= o->hi) {
			*(int *)o->out = (int)l;
			return 0;
		}
		strbuf_addf(&msg, "'%s' needs a number from %ld to %ld", o->name, o->lo, o->hi);
		break;
	case BENCH_SIZE:
		if (v && parse_size(v, &u) == 0 && u >= (uint64_t)o->lo && u <= (uint64_t)o->hi) {
			*(uint64_t *)o->out = u;
			return 0;
		}
		strbuf_addf(&msg, "'%s' needs a size from %ld to %ld bytes (such as 1M)", o->name,
			    o->lo, o->hi);
		break;
	case BENCH_CHOICE:
		while (v && o->choices[i] && strcmp(v, o->choices[i]))
			i++;
		if (v && o->choices[i]) {
			*(int *)o->out = i;
			return 0;
		}
		strbuf_addf(&msg, "'%s' is ", o->name);
		add_choices(&msg, o->choices);
		break;
	}
	if (v)
		strbuf_addf(&msg, ", not '%s'", v);
	error_clear();
	report("bench: %s", msg.buf);
	strbuf_release(&msg);
	return -1;
}

int bench_options(int argc, char **argv, const struct bench_opt *opts, const char *usage,
		  const char *help, struct config *cfg)
{
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const struct bench_opt *o = opts;
		while (o->name && strcmp(a, o->name) && !(o->alias && !strcmp(a, o->alias)))
			o++;
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			fputs(usage, stdout);
			return 1;
		}
		if (o->name) {
			const char *v = NULL;
			if (o->type != BENCH_FLAG && i + 1 < argc)
				v = argv[++i];
			if (!o->out) /* the family's own flag (--cold): already seen */
				continue;
			if (take_value(o, v) < 0)
				return -1;
			continue;
		}
		int r = cfg ? config_parse_common_flag(cfg, &i, argc, argv) : 0;
		if (r < 0) {
			report("bench: %s", error_message());
			return -1;
		}
		if (r == 0) {
			report("bench: unknown option '%s' (see '%s')", a, help);
			return -1;
		}
	}
	return 0;
}
