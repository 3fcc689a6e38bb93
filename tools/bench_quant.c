/* Kernel throughput table: weight GB/s of gemv and GOP/s of gemm per type, ISA and thread count. */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gguf.h"
#include "quant.h"
#include "report.h"
#include "xalloc.h"

/*
 * Build and run from the repository root:
 *   make build/bench_quant && build/bench_quant [ISA] [--cache | --file M.gguf] [TYPE...]
 * gemv: 2048-wide rows, enough of them for ~400 MB of weights (past every
 * cache, as in decode).  gemm: 2048 x 2048 weights by 128 tokens (prefill).
 */

struct bench_job {
	pthread_barrier_t *bar;
	int type, nrows, ntok, iters;
	int64_t n;
	const uint8_t *w; /* this thread's rows */
	size_t row_bytes;
	const uint8_t *act; /* ntok activation rows, act_stride apart */
	size_t act_stride;
	float *out;   /* (ntok, nrows) */
	double cpu_s; /* thread CPU seconds of the timed passes */
};

static double thread_cpu_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void *bench_thread(void *arg)
{
	struct bench_job *j = arg;
	double t0 = 0;
	for (int it = 0; it < j->iters; it++) {
		pthread_barrier_wait(j->bar);
		if (it == 1) /* pass 0 is the warm-up */
			t0 = thread_cpu_s();
		if (j->ntok == 1)
			quant_gemv(j->type, j->n, j->w, j->row_bytes, j->nrows, j->act, j->out);
		else
			quant_gemm(j->type, j->n, j->w, j->row_bytes, j->nrows, j->act,
				   j->act_stride, j->ntok, j->out, (size_t)j->nrows);
	}
	j->cpu_s = thread_cpu_s() - t0;
	return NULL;
}

/* Random but valid weights: quantize gaussian rows (or copy random bits with
 * sane scales for types palaver cannot quantize to). */
static int fill_weights(int type, int64_t n, int nrows, uint8_t *w, size_t row_bytes)
{
	float *x = malloc((size_t)n * sizeof(float));
	uint32_t s = 12345;
	if (!x)
		return error("out of memory");
	for (int64_t i = 0; i < n; i++) {
		s = s * 1664525u + 1013904223u;
		x[i] = ((float)(s >> 8) / (float)(1u << 24) - 0.5f) * 0.1f;
	}
	if (quant_quantize_row(type, x, w, n) < 0) {
		free(x);
		return error("cannot quantize to %s", quant_type_name(type));
	}
	free(x);
	/* other rows repeat row 0: same work, and memory still streams */
	for (int r = 1; r < nrows; r++)
		memcpy(w + (size_t)r * row_bytes, w, row_bytes);
	return 0;
}

/*
 * Runs quant_gemv (ntok == 1) or quant_gemm over nrows x n weights of a
 * type that quant_quantize_row can write (repack: in the layout
 * quant_repack_rows makes at load), rows split over `threads`
 * threads, iters timed passes after one warm-up.  Returns seconds per pass,
 * or -1 (error()).  The time is the busiest thread's CPU time, not wall
 * time, so that a machine shared with other work still gives the kernels'
 * own speed (on an idle machine the two agree).
 */
static double quant_bench(int type, int repack, int64_t n, int nrows, int ntok, int threads,
			  int iters)
{
	const struct quant_traits *t = quant_traits(type);
	size_t row_bytes, act_bytes, wbytes;
	uint8_t *w = NULL, *act = NULL;
	float *out = NULL, *x = NULL;
	double secs = -1;
	if (!t || !t->supported || nrows < threads || threads < 1 || threads > 64 || ntok < 1 ||
	    iters < 1 || quant_row_bytes(type, n, &row_bytes) < 0 ||
	    quant_row_bytes(t->dot_type, n, &act_bytes) < 0)
		return error("bad benchmark shape for %s", quant_type_name(type));
	if (size_mul(row_bytes, (size_t)nrows, &wbytes) < 0 || !(w = malloc(wbytes)) ||
	    !(act = malloc(act_bytes * (size_t)ntok)) ||
	    !(out = malloc(sizeof(float) * (size_t)nrows * (size_t)ntok)) ||
	    !(x = malloc(sizeof(float) * (size_t)n))) {
		error("out of memory for a %s benchmark of %d rows", quant_type_name(type), nrows);
		goto done;
	}
	if (fill_weights(type, n, nrows, w, row_bytes) < 0)
		goto done;
	if (repack) {
		uint8_t *rw = malloc(wbytes);
		int rt = quant_repack_type(type, n);
		if (rt < 0 || !rw) {
			free(rw);
			error("%s rows of %lld are not repacked here", quant_type_name(type),
			      (long long)n);
			goto done;
		}
		quant_repack_rows(type, n, w, row_bytes, nrows, rw);
		free(w);
		w = rw;
		type = rt;
	}
	for (int k = 0; k < ntok; k++) {
		for (int64_t i = 0; i < n; i++)
			x[i] = sinf((float)(i * (k + 1)) * 0.01f);
		quant_quantize_row(t->dot_type, x, act + (size_t)k * act_bytes, n);
	}
	{
		pthread_t tid[64];
		struct bench_job job[64];
		pthread_barrier_t bar;
		int per = nrows / threads;
		pthread_barrier_init(&bar, NULL, (unsigned)threads + 1);
		for (int i = 0; i < threads; i++) {
			int r0 = i * per, r1 = i == threads - 1 ? nrows : r0 + per;
			job[i] = (struct bench_job){ &bar,
						     type,
						     r1 - r0,
						     ntok,
						     iters + 1,
						     n,
						     w + (size_t)r0 * row_bytes,
						     row_bytes,
						     act,
						     act_bytes,
						     out + (size_t)r0 * (size_t)ntok,
						     0 };
			if (pthread_create(&tid[i], NULL, bench_thread, &job[i]) != 0) {
				/* the threads already started wait at the barrier for
				 * a count that cannot be reached: cannot go on */
				fprintf(stderr, "bench_quant: cannot start thread %d of %d\n",
					i + 1, threads);
				exit(1);
			}
		}
		/* one warm-up pass, then iters timed passes, each started at a barrier */
		for (int it = 0; it < iters + 1; it++)
			pthread_barrier_wait(&bar);
		secs = 0;
		for (int i = 0; i < threads; i++) {
			pthread_join(tid[i], NULL);
			if (job[i].cpu_s > secs)
				secs = job[i].cpu_s;
		}
		secs /= iters;
		pthread_barrier_destroy(&bar);
	}
done:
	free(w);
	free(act);
	free(out);
	free(x);
	return secs;
}

/* One row of the table: gemv and gemm of 2048-wide rows on 1 and 2 threads. */
/* The fastest of five runs: on a shared machine the others' bursts only
 * ever add time. */
static double best_of5(int type, int rp, int64_t n, int nrows, int ntok, int threads, int iters)
{
	double best = -1;
	for (int k = 0; k < 5; k++) {
		double s = quant_bench(type, rp, n, nrows, ntok, threads, iters);
		if (s < 0)
			return -1;
		if (best < 0 || s < best)
			best = s;
	}
	return best;
}

static int bench_row(int type, int rp, int in_cache)
{
	const int64_t n = 2048;
	const int ntok = in_cache ? 64 : 128;
	size_t rb;
	quant_row_bytes(type, n, &rb);
	int rows = in_cache ? 256 : (int)((400u << 20) / rb);
	int grows = in_cache ? 128 : 2048;
	double gv[2], gm[2];
	for (int th = 1; th <= 2; th++) {
		double s = in_cache ? best_of5(type, rp, n, rows, 1, th, 400)
				    : quant_bench(type, rp, n, rows, 1, th, 10);
		double g = in_cache ? best_of5(type, rp, n, grows, ntok, th, 10)
				    : quant_bench(type, rp, n, grows, ntok, th, 3);
		if (s < 0 || g < 0) {
			fprintf(stderr, "bench_quant: %s\n", error_message());
			return -1;
		}
		gv[th - 1] = (double)rb * rows / s / 1e9;
		gm[th - 1] = 2.0 * n * grows * ntok / g / 1e9;
	}
	printf("%-7s%s %7.1f GB/s %5.1f GB/s %6.0f GOP/s %6.0f GOP/s\n", quant_type_name(type),
	       rp ? " r4" : "   ", gv[0], gv[1], gm[0], gm[1]);
	return 0;
}

/*
 * --file: decode's gemv over the weights of a GGUF file where they lie in
 * its mapping (4 KiB pages, as the model reads them): for each type, every
 * 2-D tensor of that type but token_embd (looked up by row, not
 * multiplied), one thread, the fastest of three passes by CPU time.
 */
static double thread_cpu_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int bench_file(const char *path)
{
	struct gguf *g = gguf_open(path);
	if (!g) {
		fprintf(stderr, "bench_quant: %s\n", error_message());
		return -1;
	}
	printf("%s: gemv over the mapped weights, 1 thread, CPU time\n", path);
	for (int type = 0; type < QT_COUNT; type++) {
		double best = -1;
		size_t bytes = 0;
		for (int pass = 0; pass < 3; pass++) {
			double t = 0;
			bytes = 0;
			for (int64_t i = 0; i < gguf_n_tensors(g); i++) {
				const struct gguf_tensor *te = gguf_tensor_at(g, i);
				const struct quant_traits *tr = quant_traits(te->type);
				size_t rb, ab;
				if (te->type != type || te->n_dims != 2 || !tr || !tr->supported ||
				    !strcmp(te->name, "token_embd.weight") ||
				    quant_row_bytes(type, te->ne[0], &rb) < 0 ||
				    quant_row_bytes(tr->dot_type, te->ne[0], &ab) < 0)
					continue;
				float *x = malloc(sizeof(float) * (size_t)te->ne[0]);
				void *act = malloc(ab);
				float *out = malloc(sizeof(float) * (size_t)te->ne[1]);
				if (!x || !act || !out) {
					fprintf(stderr, "bench_quant: out of memory\n");
					exit(1);
				}
				for (int64_t k = 0; k < te->ne[0]; k++)
					x[k] = sinf((float)k * 0.01f);
				quant_quantize_row(tr->dot_type, x, act, te->ne[0]);
				double t0 = thread_cpu_now();
				quant_gemv(type, te->ne[0], te->data, rb, (int)te->ne[1], act, out);
				t += thread_cpu_now() - t0;
				bytes += rb * (size_t)te->ne[1];
				free(x);
				free(act);
				free(out);
			}
			if (best < 0 || t < best)
				best = t;
		}
		if (bytes)
			printf("%-7s %8.1f MB %8.2f ms %6.1f GB/s\n", quant_type_name(type),
			       (double)bytes / 1e6, best * 1e3, (double)bytes / best / 1e9);
	}
	gguf_close(g);
	return 0;
}

static int type_by_name(const char *name)
{
	for (int t = 0; t < QT_COUNT; t++) {
		const struct quant_traits *tr = quant_traits(t);
		if (tr && tr->supported && !strcmp(tr->name, name))
			return t;
	}
	return -1;
}

int main(int argc, char **argv)
{
	static const int default_types[] = { QT_F32,  QT_F16,  QT_BF16, QT_Q8_0,
					     QT_Q4_0, QT_Q4_K, QT_Q6_K };
	int types[QT_COUNT], ntypes = 0, in_cache = 0;
	const char *file = NULL;
	enum quant_isa isa = quant_isa_best();
	for (int a = 1; a < argc; a++) {
		int known = 0;
		if (quant_isa_from_name(argv[a]) >= 0) {
			isa = (enum quant_isa)quant_isa_from_name(argv[a]);
			known = 1;
		}
		if (!strcmp(argv[a], "--cache")) {
			in_cache = known = 1;
		} else if (!strcmp(argv[a], "--file") && a + 1 < argc) {
			file = argv[++a];
			known = 1;
		} else if (!known && ntypes < QT_COUNT &&
			   (types[ntypes] = type_by_name(argv[a])) >= 0) {
			ntypes++;
			known = 1;
		}
		if (!known) {
			fprintf(stderr,
				"usage: bench_quant [ISA] [--cache | --file MODEL.gguf] [TYPE...]\n"
				"bench_quant: '%s' is not an ISA level or a supported type\n",
				argv[a]);
			return 2;
		}
	}
	if (!ntypes)
		for (size_t i = 0; i < sizeof(default_types) / sizeof(default_types[0]); i++)
			types[ntypes++] = default_types[i];
	if (quant_isa_set(isa) < 0) {
		fprintf(stderr, "bench_quant: this cpu lacks %s\n", quant_isa_name(isa));
		return 1;
	}
	if (file)
		return bench_file(file) < 0;
	/* --cache: the compute-bound figures (weights in L2: 256 rows for gemv,
	 * 64 tokens for gemm, the best of five runs), else the memory-bound
	 * ones of decode and prefill */
	printf("isa %s%s\n%-10s %10s %10s %12s %12s\n", quant_isa_name(isa),
	       in_cache ? ", weights in cache" : "", "type", "gemv 1t", "gemv 2t", "gemm 1t",
	       "gemm 2t");
	/* a type that repacks at load gets a second row, "TYPE r4" */
	for (int i = 0; i < ntypes; i++)
		for (int rp = 0; rp <= (quant_repack_type(types[i], 2048) >= 0); rp++)
			if (bench_row(types[i], rp, in_cache) < 0)
				return 1;
	return 0;
}
