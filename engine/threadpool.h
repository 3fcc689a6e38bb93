/* A persistent compute thread pool: the caller plus n-1 workers run one function together. */
#ifndef PALAVER_THREADPOOL_H
#define PALAVER_THREADPOOL_H

/*
 * The pool is created once per model (no thread creation per token).
 * threadpool_run(tp, fn, arg) makes every thread, the caller included as
 * thread 0, call fn(arg, ith, nth) once, and returns when all have returned.
 * Idle workers spin briefly on the generation counter (so back-to-back runs
 * of one forward pass wake them in well under a microsecond) and then sleep
 * on a futex until the next run.
 *
 * Work is split by the callee: threadpool_split() gives thread ith its share
 * of n items, in multiples of `align`, so that every thread gets an equal
 * share and all finish together.
 *
 * One owner thread calls run/free; fn must not call threadpool_run itself.
 */

struct threadpool;

typedef void (*threadpool_fn)(void *arg, int ith, int nth);

/* n_threads total (the caller counts as one); 0 = online cores.
 * NULL with error() when a thread cannot be started. */
struct threadpool *threadpool_create(int n_threads);
void threadpool_free(struct threadpool *tp);
int threadpool_size(const struct threadpool *tp);

/* Run fn on all threads and wait for all of them. */
void threadpool_run(struct threadpool *tp, threadpool_fn fn, void *arg);

/* Thread ith's half-open range [*start, *end) of n items, split in chunks
 * of `align` items (the last chunk may be short). */
void threadpool_split(int n, int ith, int nth, int align, int *start, int *end);

/* Online CPU cores (sysconf), at least 1. */
int threadpool_online_cores(void);

#endif
