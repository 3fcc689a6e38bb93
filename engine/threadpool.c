/* A persistent compute thread pool: spin briefly, then sleep on a futex. */
#include "threadpool.h"

#include "report.h"
#include "xalloc.h"

#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/*
 * DESIGN
 * A run is published by bumping `gen`; every worker waits for gen to change,
 * calls fn(arg, ith, nth), and decrements `pending`.  The caller is thread 0
 * and, after its own share, waits for pending == 0.  Both waits spin for
 * SPIN_NS first: a forward pass issues a hundred or more runs back to back,
 * so the next one nearly always arrives within the spin and no syscall is
 * made.  After the spin the waiter announces itself (n_sleeping / caller_sleeping)
 * and sleeps on the futex word; the other side only pays for FUTEX_WAKE when
 * someone announced.  All atomics are sequentially consistent so that an
 * announcement and the change it waits for cannot both be missed.
 */

#define SPIN_NS 200000ull /* 0.2 ms: longer than the gap between two matmuls */

struct worker {
	struct threadpool *tp;
	int ith;
	pthread_t thread;
};

struct threadpool {
	int nth;                /* threads including the caller */
	struct worker *workers; /* (nth - 1) */
	threadpool_fn fn;       /* the current run */
	void *arg;
	_Atomic uint32_t gen;     /* bumped per run; futex word for idle workers */
	_Atomic uint32_t pending; /* workers still in the current run; futex word for the caller */
	atomic_int n_sleeping;    /* workers asleep (or about to be) on gen */
	atomic_int caller_sleeping; /* the caller asleep (or about to be) on pending */
	atomic_int quit;
};

static void futex_wait(_Atomic uint32_t *addr, uint32_t val)
{
	syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAIT_PRIVATE, val, NULL, NULL, 0);
}

static void futex_wake(_Atomic uint32_t *addr)
{
	syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAKE_PRIVATE, INT32_MAX, NULL, NULL, 0);
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#endif
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Wait until *word != val: spin, then sleep.  sleeping is the announcement counter. */
static void wait_change(_Atomic uint32_t *word, uint32_t val, atomic_int *sleeping)
{
	uint64_t start = 0;
	for (unsigned i = 0;; i++) {
		if (atomic_load(word) != val)
			return;
		cpu_relax();
		if ((i & 255) == 255) {
			uint64_t t = now_ns();
			if (!start)
				start = t;
			else if (t - start > SPIN_NS)
				break;
			/* past the first few microseconds, let a thread we may be
			 * waiting for run when the cores are oversubscribed */
			if (i >= 2048)
				sched_yield();
		}
	}
	for (;;) {
		atomic_fetch_add(sleeping, 1);
		if (atomic_load(word) == val)
			futex_wait(word, val);
		atomic_fetch_sub(sleeping, 1);
		if (atomic_load(word) != val)
			return;
	}
}

static void *worker_main(void *p)
{
	struct worker *w = p;
	struct threadpool *tp = w->tp;
	uint32_t seen = 0;
	for (;;) {
		wait_change(&tp->gen, seen, &tp->n_sleeping);
		seen = atomic_load(&tp->gen);
		if (atomic_load(&tp->quit))
			return NULL;
		tp->fn(tp->arg, w->ith, tp->nth);
		if (atomic_fetch_sub(&tp->pending, 1) == 1 && atomic_load(&tp->caller_sleeping))
			futex_wake(&tp->pending);
	}
}

int threadpool_online_cores(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n < 1 ? 1 : n > 1024 ? 1024 : (int)n;
}

static void stop_workers(struct threadpool *tp, int n)
{
	atomic_store(&tp->quit, 1);
	atomic_fetch_add(&tp->gen, 1);
	futex_wake(&tp->gen);
	for (int i = 0; i < n; i++)
		pthread_join(tp->workers[i].thread, NULL);
}

struct threadpool *threadpool_create(int n_threads)
{
	if (n_threads <= 0)
		n_threads = threadpool_online_cores();
	if (n_threads > 1024) {
		error("%d threads is too many (at most 1024)", n_threads);
		return NULL;
	}
	struct threadpool *tp = xcalloc(1, sizeof(*tp));
	tp->nth = n_threads;
	tp->workers = xcalloc((size_t)n_threads, sizeof(*tp->workers));
	for (int i = 0; i < n_threads - 1; i++) {
		struct worker *w = &tp->workers[i];
		w->tp = tp;
		w->ith = i + 1;
		int rc = pthread_create(&w->thread, NULL, worker_main, w);
		if (rc) {
			stop_workers(tp, i);
			free(tp->workers);
			free(tp);
			error("cannot start a compute thread: %s", strerror(rc));
			return NULL;
		}
	}
	return tp;
}

void threadpool_free(struct threadpool *tp)
{
	if (!tp)
		return;
	stop_workers(tp, tp->nth - 1);
	free(tp->workers);
	free(tp);
}

int threadpool_size(const struct threadpool *tp)
{
	return tp->nth;
}

void threadpool_run(struct threadpool *tp, threadpool_fn fn, void *arg)
{
	if (tp->nth == 1) {
		fn(arg, 0, 1);
		return;
	}
	tp->fn = fn;
	tp->arg = arg;
	atomic_store(&tp->pending, (uint32_t)(tp->nth - 1));
	atomic_fetch_add(&tp->gen, 1);
	if (atomic_load(&tp->n_sleeping))
		futex_wake(&tp->gen);
	fn(arg, 0, tp->nth);
	uint32_t left;
	while ((left = atomic_load(&tp->pending)) != 0) {
		/* wait_change with the caller's own announcement flag */
		atomic_int *sl = &tp->caller_sleeping;
		wait_change(&tp->pending, left, sl);
	}
}

void threadpool_split(int n, int ith, int nth, int align, int *start, int *end)
{
	if (align < 1)
		align = 1;
	int64_t chunks = ((int64_t)n + align - 1) / align;
	int64_t c0 = chunks * ith / nth, c1 = chunks * (ith + 1) / nth;
	int64_t s = c0 * align, e = c1 * align;
	*start = (int)(s < n ? s : n);
	*end = (int)(e < n ? e : n);
}
