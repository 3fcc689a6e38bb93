/* `palaver bench` families; cmd_bench.c picks one from the flags. */
#ifndef PALAVER_BENCH_H
#define PALAVER_BENCH_H

struct config;

int bench_model(int argc, char **argv, struct config *cfg);     /* pp/tg (default) */
int bench_tokenizer(int argc, char **argv, struct config *cfg); /* --tokenizer */
int bench_history(int argc, char **argv, struct config *cfg);   /* --history */
int bench_engine(int argc, char **argv, struct config *cfg);    /* --cancel, --reuse */
int bench_cold(int argc, char **argv, struct config *cfg);      /* --cold */

#endif
