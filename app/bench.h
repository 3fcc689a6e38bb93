/* `palaver bench` families; cmd_bench.c picks one from the flags. */
#ifndef PALAVER_BENCH_H
#define PALAVER_BENCH_H

#include <stddef.h>
#include <stdint.h>

struct config;

int bench_model(int argc, char **argv, struct config *cfg);     /* pp/tg (default) */
int bench_tokenizer(int argc, char **argv, struct config *cfg); /* --tokenizer */
int bench_history(int argc, char **argv, struct config *cfg);   /* --history */
int bench_engine(int argc, char **argv, struct config *cfg);    /* --cancel, --reuse */
int bench_cold(int argc, char **argv, struct config *cfg);      /* --cold */
int bench_kernels(int argc, char **argv, struct config *cfg);   /* --kernels */

/* The memory read bandwidth with nth threads (bench_bandwidth.c): this
 * run's probe, recorded per CPU under $XDG_CACHE_HOME/palaver, and the best
 * of the record's last 16 probes at nth threads, which the roofline uses. */
struct bench_bandwidth {
	double now;  /* this run's probe, bytes/s; 0 when it failed */
	double best; /* the best of the recorded probes, this one included */
	int probes;  /* how many that best is of (1: this run's alone) */
};
void bench_bandwidth(int nth, struct bench_bandwidth *out);

/* ---- shared by the benchmarks (bench_util.c) ---- */
struct strbuf;

/* *out = v as an int in [lo, hi]; else prints "palaver: bench: OPT needs a
 * number from LO to HI" and returns -1. */
int bench_parse_int(const char *opt, const char *v, int lo, int hi, int *out);
/* xorshift64 on *state (not 0): the same sequence on every run. */
uint64_t bench_rng(uint64_t *state);
/* Uniform in [0, 1), from bench_rng. */
double bench_rng_unit(uint64_t *state);
/* A pseudo-random token id below n_vocab (a fixed LCG: runs repeat). */
int32_t bench_rand_token(int n_vocab);
/* CPU time in ms of this thread, or of the whole process: on a machine
 * busy with other work it counts only what this one did. */
double bench_cpu_ms(int whole_process);
/* Mean and sample standard deviation of v[0..n). */
void bench_mean_sd(const double *v, int n, double *mean, double *sd);
/* Sort v ascending; then the nearest-rank p-th percentile (0..100). */
void bench_sort(double *v, int n);
double bench_percentile(const double *sorted, int n, double p);

/* Text to tokenize or store: words joined by separators. */
struct bench_words {
	const char *const *words; /* n_words to draw from */
	size_t n_words;
	const char *const *seps; /* n_seps separators, one drawn between two words */
	size_t n_seps;
	int zipf; /* 1: the first words are the most common (P(rank r) ~ 1/r), as in prose */
};
/* Append n words (or up to max_bytes, whichever comes first) drawn with *rng. */
void bench_text(struct strbuf *sb, const struct bench_words *w, size_t n, size_t max_bytes,
		uint64_t *rng);

#endif
