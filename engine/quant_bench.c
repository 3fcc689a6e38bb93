/* Kernel micro-benchmark: gemv/gemm throughput of one weight type on N threads. */
#include "quant.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "report.h"
#include "xalloc.h"

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

double quant_bench(int type, int64_t n, int nrows, int ntok, int threads, int iters)
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
			pthread_create(&tid[i], NULL, bench_thread, &job[i]);
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
