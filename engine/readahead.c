/* Read-ahead of mapped weights by layer: page ranges per layer and a helper thread that madvises them. */
#include "readahead.h"

#include "gguf.h"
#include "report.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/*
 * DESIGN
 * Why a helper thread: MADV_WILLNEED on pages that are not in the page
 * cache allocates them and submits the reads before it returns, and the
 * kernel reads at most read_ahead_kb per call, so a 40 MB layer takes a
 * dozen calls and, measured on a virtio disk, 11-15 ms of the caller's
 * time -- as long as several warm layers compute.  On resident pages the
 * call still walks the page cache (about 0.2 ms per 40 MB), which would
 * cost a decode step a few percent.  The helper therefore first asks
 * mincore() (microseconds per layer) and madvises only runs of missing
 * pages, in RA_CHUNK pieces, while the compute threads go on.
 *
 * Invariants: ranges[first[i] .. first[i+1]) are group i's, sorted by
 * start, each non-empty, page-aligned, and separated by at least one page
 * (touching extents are merged).  queue holds each group at most once
 * (queued[] says which), in request order.
 */

#define RA_CHUNK ((size_t)2 << 20) /* bytes per madvise call */
#define RA_WINDOW ((size_t)16384)   /* pages per mincore call (the vectors' size) */

struct readahead {
	size_t page;
	int n_groups;
	struct readahead_range *ranges; /* (n_ranges) grouped by group, see invariants */
	int n_ranges;
	int *first;          /* (n_groups + 1) index of each group's first range */
	unsigned char *cvec; /* (RA_WINDOW) mincore vector of readahead_resident's caller */
	unsigned char *hvec; /* (RA_WINDOW) mincore vector of the helper */

	pthread_t thread;
	int started;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int *queue;             /* (n_groups) ring of requested groups */
	int qhead, qlen;        /* under mu */
	unsigned char *queued;  /* (n_groups) 1 while group i is in the queue; under mu */
	atomic_int stop;        /* readahead_free() asks the helper to end */
	atomic_ullong requested; /* pages madvised by the helper */
};

/* "blk.N." -> N, else -1. */
static int layer_of(const char *name, int n_layer)
{
	if (strncmp(name, "blk.", 4))
		return -1;
	char *end;
	long l = strtol(name + 4, &end, 10);
	if (end == name + 4 || *end != '.' || l < 0 || l >= n_layer)
		return -1;
	return (int)l;
}

static int cmp_range(const void *a, const void *b)
{
	const struct readahead_range *x = a, *y = b;
	return x->start < y->start ? -1 : x->start > y->start;
}

struct readahead *readahead_create(const struct gguf *g, int n_layer, int tied)
{
	struct readahead *ra = calloc(1, sizeof(*ra));
	int64_t nt = gguf_n_tensors(g);
	if (!ra)
		goto oom;
	long ps = sysconf(_SC_PAGESIZE);
	ra->page = ps > 0 ? (size_t)ps : 4096;
	ra->n_groups = n_layer + 1;
	pthread_mutex_init(&ra->mu, NULL);
	pthread_cond_init(&ra->cv, NULL);
	/* n_layer <= 4096 (model.c checks it) and nt <= the file's size / a
	 * tensor header: neither product overflows size_t */
	ra->ranges = calloc((size_t)(nt > 0 ? nt : 1), sizeof(*ra->ranges));
	ra->first = calloc((size_t)ra->n_groups + 1, sizeof(*ra->first));
	ra->queue = calloc((size_t)ra->n_groups, sizeof(*ra->queue));
	ra->queued = calloc((size_t)ra->n_groups, 1);
	ra->cvec = malloc(RA_WINDOW);
	ra->hvec = malloc(RA_WINDOW);
	int *grp = calloc((size_t)(nt > 0 ? nt : 1), sizeof(*grp));
	if (!ra->ranges || !ra->first || !ra->queue || !ra->queued || !ra->cvec || !ra->hvec ||
	    !grp) {
		free(grp);
		goto oom;
	}
	/* bucket the tensors by group (counting sort), then sort and merge each */
	int *count = ra->first; /* first[i + 1] counts group i for now */
	for (int64_t i = 0; i < nt; i++) {
		const struct gguf_tensor *t = gguf_tensor_at(g, i);
		int l = layer_of(t->name, n_layer);
		if (l < 0)
			l = !strcmp(t->name, "token_embd.weight") && !tied ? -1 : n_layer;
		grp[i] = t->nbytes ? l : -1;
		if (grp[i] >= 0)
			count[grp[i] + 1]++;
	}
	for (int i = 0; i < ra->n_groups; i++)
		ra->first[i + 1] += ra->first[i];
	int *fill = calloc((size_t)ra->n_groups, sizeof(*fill));
	if (!fill) {
		free(grp);
		goto oom;
	}
	for (int64_t i = 0; i < nt; i++) {
		if (grp[i] < 0)
			continue;
		const struct gguf_tensor *t = gguf_tensor_at(g, i);
		uintptr_t a = (uintptr_t)t->data, b = a + (uintptr_t)t->nbytes;
		struct readahead_range *r = &ra->ranges[ra->first[grp[i]] + fill[grp[i]]++];
		r->start = a & ~(uintptr_t)(ra->page - 1);
		r->end = (b + ra->page - 1) & ~(uintptr_t)(ra->page - 1);
	}
	free(fill);
	free(grp);
	/* sort each group and merge touching extents, compacting in place */
	int out = 0;
	for (int gi = 0; gi < ra->n_groups; gi++) {
		int lo = ra->first[gi], hi = ra->first[gi + 1];
		qsort(ra->ranges + lo, (size_t)(hi - lo), sizeof(*ra->ranges), cmp_range);
		ra->first[gi] = out;
		for (int i = lo; i < hi; i++) {
			struct readahead_range r = ra->ranges[i];
			if (out > ra->first[gi] && r.start <= ra->ranges[out - 1].end) {
				if (r.end > ra->ranges[out - 1].end)
					ra->ranges[out - 1].end = r.end;
			} else {
				ra->ranges[out++] = r;
			}
		}
	}
	ra->first[ra->n_groups] = out;
	ra->n_ranges = out;
	return ra;
oom:
	readahead_free(ra);
	error("out of memory for the read-ahead table");
	return NULL;
}

void readahead_free(struct readahead *ra)
{
	if (!ra)
		return;
	if (ra->started) {
		atomic_store(&ra->stop, 1);
		pthread_mutex_lock(&ra->mu);
		pthread_cond_signal(&ra->cv);
		pthread_mutex_unlock(&ra->mu);
		pthread_join(ra->thread, NULL);
	}
	pthread_mutex_destroy(&ra->mu);
	pthread_cond_destroy(&ra->cv);
	free(ra->ranges);
	free(ra->first);
	free(ra->queue);
	free(ra->queued);
	free(ra->cvec);
	free(ra->hvec);
	free(ra);
}

int readahead_n_groups(const struct readahead *ra)
{
	return ra->n_groups;
}

int readahead_ranges(const struct readahead *ra, int group, const struct readahead_range **out)
{
	if (group < 0 || group >= ra->n_groups) {
		*out = NULL;
		return 0;
	}
	*out = ra->ranges + ra->first[group];
	return ra->first[group + 1] - ra->first[group];
}

/* madvise the runs of missing pages of one range, window by window. */
static void fetch_range(struct readahead *ra, const struct readahead_range *r)
{
	size_t ps = ra->page;
	for (uintptr_t w = r->start; w < r->end; w += RA_WINDOW * ps) {
		size_t len = r->end - w < RA_WINDOW * ps ? r->end - w : RA_WINDOW * ps;
		size_t np = len / ps;
		if (mincore((void *)w, len, ra->hvec) < 0)
			memset(ra->hvec, 0, np); /* cannot tell: ask for all of it */
		for (size_t i = 0; i < np;) {
			if (ra->hvec[i] & 1) {
				i++;
				continue;
			}
			size_t j = i;
			while (j < np && !(ra->hvec[j] & 1) && (j - i) * ps < RA_CHUNK)
				j++;
			if (atomic_load(&ra->stop))
				return;
			/* advice only: a failure costs speed, never correctness */
			(void)madvise((void *)(w + i * ps), (j - i) * ps, MADV_WILLNEED);
			atomic_fetch_add(&ra->requested, (unsigned long long)(j - i));
			i = j;
		}
	}
}

static void *helper_main(void *arg)
{
	struct readahead *ra = arg;
	pthread_mutex_lock(&ra->mu);
	for (;;) {
		while (!atomic_load(&ra->stop) && ra->qlen == 0)
			pthread_cond_wait(&ra->cv, &ra->mu);
		if (atomic_load(&ra->stop))
			break;
		int g = ra->queue[ra->qhead];
		ra->qhead = (ra->qhead + 1) % ra->n_groups;
		ra->qlen--;
		ra->queued[g] = 0;
		pthread_mutex_unlock(&ra->mu);
		for (int i = ra->first[g]; i < ra->first[g + 1] && !atomic_load(&ra->stop); i++)
			fetch_range(ra, &ra->ranges[i]);
		pthread_mutex_lock(&ra->mu);
	}
	pthread_mutex_unlock(&ra->mu);
	return NULL;
}

int readahead_start(struct readahead *ra)
{
	if (ra->started)
		return 0;
	int rc = pthread_create(&ra->thread, NULL, helper_main, ra);
	if (rc)
		return error("cannot start the read-ahead thread: %s", strerror(rc));
	ra->started = 1;
	return 0;
}

void readahead_request(struct readahead *ra, int group)
{
	if (!ra->started || group < 0 || group >= ra->n_groups)
		return;
	pthread_mutex_lock(&ra->mu);
	if (!ra->queued[group]) {
		ra->queue[(ra->qhead + ra->qlen) % ra->n_groups] = group;
		ra->qlen++;
		ra->queued[group] = 1;
		pthread_cond_signal(&ra->cv);
	}
	pthread_mutex_unlock(&ra->mu);
}

int readahead_resident(struct readahead *ra, int group, uint64_t *resident, uint64_t *pages)
{
	const struct readahead_range *r;
	int n = readahead_ranges(ra, group, &r);
	size_t ps = ra->page;
	for (int k = 0; k < n; k++) {
		for (uintptr_t w = r[k].start; w < r[k].end; w += RA_WINDOW * ps) {
			size_t len = r[k].end - w < RA_WINDOW * ps ? r[k].end - w : RA_WINDOW * ps;
			size_t np = len / ps;
			if (mincore((void *)w, len, ra->cvec) < 0)
				return -1;
			uint64_t c = 0;
			for (size_t i = 0; i < np; i++)
				c += ra->cvec[i] & 1;
			*resident += c;
			*pages += np;
		}
	}
	return 0;
}

uint64_t readahead_pages_requested(struct readahead *ra)
{
	return atomic_load(&ra->requested);
}
