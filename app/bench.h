/* `palaver bench` families; cmd_bench.c picks one from the flags. */
#ifndef PALAVER_BENCH_H
#define PALAVER_BENCH_H

#include <stdint.h>

struct config;

int bench_model(int argc, char **argv, struct config *cfg);     /* pp/tg (default) */
int bench_tokenizer(int argc, char **argv, struct config *cfg); /* --tokenizer */
int bench_history(int argc, char **argv, struct config *cfg);   /* --history */
int bench_engine(int argc, char **argv, struct config *cfg);    /* --cancel, --reuse */
int bench_cold(int argc, char **argv, struct config *cfg);      /* --cold */

/* Shared by the benchmarks (bench_model.c). */
/* *out = v as an int in [lo, hi]; else prints "palaver: bench: OPT needs a
 * number from LO to HI" and returns -1. */
int bench_parse_int(const char *opt, const char *v, int lo, int hi, int *out);
/* A pseudo-random token id below n_vocab (a fixed LCG: runs repeat). */
int32_t bench_rand_token(int n_vocab);

#endif
