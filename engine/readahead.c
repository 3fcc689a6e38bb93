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
 * pages, in RA_CHUNK pieces, while the compute threads go on.  On a cold
 * start it runs further ahead than the next layer, and once everything is
 * resident it is woken once per pass instead of once per layer (serve()).
 *
 * Why it pauses, and declines to start: when the model does not fit in
 * the memory it may use, every layer is read again each token, and reading
 * ahead then costs tokens per second instead of saving them (measured in
 * a memory cgroup of 450 MiB with the 609 MiB 1B Q4_0 file: 1.2-1.4 t/s
 * with read-ahead one layer ahead against 2.3-2.6 without, the same bytes
 * read).  So readahead_start() declines when the weights exceed the
 * memory available (MemAvailable, or the memory cgroup's limit if lower),
 * and the helper pauses when pages it found resident go missing (see
 * read_group()).
 *
 * Experts: a mixture's 3-D expert tensors are not in the groups (reading
 * a whole layer ahead would read every expert, of which a token uses a
 * few: Qwen3-30B-A3B reads 8 of 128).  As soon as a layer's router has run,
 * the forward pass hands the chosen experts to the helper
 * (readahead_experts()), which asks the kernel for all their missing pages
 * at once, in the order the compute threads read them (gate and up of
 * each expert, then the downs), so that the disk serves many requests in
 * parallel while the compute threads fault in the first.  An expert found
 * resident is remembered (exp_known), so that on a warm model the caller
 * does not even wake the helper; the memory is forgotten every
 * RA_EXP_RECHECK passes, since the page cache may have let it go since.
 * The decision to start at all (readahead_start()) counts the groups only:
 * expert reads are what the token reads next anyway, never ahead of it.
 *
 * Invariants: ranges[first[i] .. first[i+1]) are group i's, sorted by
 * start, each non-empty, page-aligned, and separated by at least one page
 * (touching extents are merged).  seq counts readahead_advance() calls;
 * the helper works for position cur while seq equals the value it saw.
 * exp_seq counts readahead_experts() requests that reached the helper;
 * exp_base[l * RA_EXP_TENSORS + j] is 0 or the address of expert 0 of
 * layer l's j-th expert tensor, experts exp_stride apart; the tensors with
 * exp_late set (down) come after the others in the read order.
 */

#define RA_CHUNK ((size_t)2 << 20)    /* bytes per madvise call */
#define RA_WINDOW ((size_t)16384)     /* pages per mincore call (the vectors' size) */
#define RA_PAUSE_MAX 64               /* passes read-ahead pauses at most under memory pressure */
#define RA_LEAD ((uint64_t)256 << 20) /* bytes asked ahead on a cold start at most */
#define RA_EXP_TENSORS 4              /* expert tensors per layer (gate, up, down) at most */
#define RA_EXP_RECHECK 64             /* passes after which resident experts are checked again */

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
	int cur;                 /* the compute threads' group, -1 = a pass begins; under mu */
	unsigned seq;            /* readahead_advance() calls; under mu */
	atomic_int stop;         /* readahead_free() asks the helper to end */
	atomic_ullong requested; /* pages madvised by the helper */
	atomic_ullong evictions; /* pressure findings (see read_group()) */
	/* the helper's own state (see read_group()) */
	unsigned char *whole;  /* (n_groups) 1 once group i was found all resident */
	unsigned *asked_pass;  /* (n_groups) pass in which group i's missing pages were asked for */
	uint64_t *asked;       /* (n_groups) how many pages that was */
	unsigned pass;         /* passes begun (starts at 1) */
	int pass_checked;      /* groups checked in this pass */
	uint64_t pass_asked;   /* pages asked for in this pass */
	atomic_int steady;     /* every group resident: only pass starts are signalled */
	int pause_left;        /* passes to skip before reading ahead again */
	int pause_next;        /* the next pause's length */
	uint64_t weights;      /* bytes of all groups' ranges */
	uint64_t lead;         /* bytes serve() may ask ahead; 0 = the next group only */
	uint64_t avail;        /* readahead_memory_available() when started */
	int evicted_this_pass; /* a pressure finding since the pass began */
	/* experts (see DESIGN) */
	int n_exp;               /* experts per mixture layer, 0 = none in the mapping */
	uintptr_t *exp_base;     /* (n_layer * RA_EXP_TENSORS) expert 0's address, or 0 */
	size_t *exp_stride;      /* (same) bytes from one expert to the next */
	unsigned char *exp_late; /* (same) read after the others (down) */
	atomic_uchar *exp_known; /* (n_layer * n_exp) found resident */
	unsigned char *exp_mark; /* (n_exp) readahead_experts()'s scratch, under mu */
	int32_t *exp_req;        /* (n_exp) the request, ascending, under mu */
	int exp_n;               /* its length, under mu */
	int exp_layer;           /* its layer, under mu */
	unsigned exp_seq;        /* requests, under mu */
	int32_t *exp_work;       /* (n_exp) the helper's copy of the request */
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

/* A 3-D expert tensor of layer l (blk.l.*_exps.*, one matrix per expert
 * along ne[2]): 1 when registered for readahead_experts(), 0 when it is
 * read with its layer (not one, or a count of experts unlike the first
 * one's, or more than RA_EXP_TENSORS of them), -1 on out of memory. */
static int add_experts(struct readahead *ra, const struct gguf_tensor *t, int l)
{
	if (t->n_dims != 3 || t->ne[2] < 2 || !strstr(t->name, "_exps.") ||
	    t->nbytes % (uint64_t)t->ne[2])
		return 0;
	if (ra->n_exp && t->ne[2] != ra->n_exp)
		return 0;
	size_t nl = (size_t)ra->n_groups - 1;
	if (!ra->exp_base) {
		ra->exp_base = calloc(nl * RA_EXP_TENSORS, sizeof(*ra->exp_base));
		ra->exp_stride = calloc(nl * RA_EXP_TENSORS, sizeof(*ra->exp_stride));
		ra->exp_late = calloc(nl * RA_EXP_TENSORS, 1);
		if (!ra->exp_base || !ra->exp_stride || !ra->exp_late)
			return -1;
	}
	for (int j = 0; j < RA_EXP_TENSORS; j++) {
		size_t at = (size_t)l * RA_EXP_TENSORS + (size_t)j;
		if (ra->exp_base[at])
			continue;
		ra->exp_base[at] = (uintptr_t)t->data;
		ra->exp_stride[at] = (size_t)(t->nbytes / (uint64_t)t->ne[2]);
		ra->exp_late[at] = strstr(t->name, "down") != NULL;
		ra->n_exp = (int)t->ne[2];
		return 1;
	}
	return 0;
}

struct readahead *readahead_create(const struct gguf *g, int n_layer, int tied,
				   const unsigned char *skip)
{
	struct readahead *ra = calloc(1, sizeof(*ra));
	int64_t nt = gguf_n_tensors(g);
	if (!ra)
		goto oom;
	long ps = sysconf(_SC_PAGESIZE);
	ra->page = ps > 0 ? (size_t)ps : 4096;
	ra->n_groups = n_layer + 1;
	ra->cur = -1;
	ra->pause_next = 1;
	pthread_mutex_init(&ra->mu, NULL);
	pthread_cond_init(&ra->cv, NULL);
	/* n_layer <= 4096 (model.c checks it) and nt <= the file's size / a
	 * tensor header: neither product overflows size_t */
	ra->ranges = calloc((size_t)(nt > 0 ? nt : 1), sizeof(*ra->ranges));
	ra->first = calloc((size_t)ra->n_groups + 1, sizeof(*ra->first));
	ra->cvec = malloc(RA_WINDOW);
	ra->hvec = malloc(RA_WINDOW);
	ra->whole = calloc((size_t)ra->n_groups, 1);
	ra->asked_pass = calloc((size_t)ra->n_groups, sizeof(*ra->asked_pass));
	ra->asked = calloc((size_t)ra->n_groups, sizeof(*ra->asked));
	ra->pass = 1;
	int *grp = calloc((size_t)(nt > 0 ? nt : 1), sizeof(*grp));
	if (!ra->ranges || !ra->first || !ra->cvec || !ra->hvec || !ra->whole || !ra->asked_pass ||
	    !ra->asked || !grp) {
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
		grp[i] = t->nbytes && !(skip && skip[i]) ? l : -1;
		if (grp[i] >= 0 && l < n_layer && add_experts(ra, t, l) == 1)
			grp[i] = -1; /* read by expert, not with its layer */
		if (grp[i] >= 0)
			count[grp[i] + 1]++;
	}
	if (ra->n_exp) {
		ra->exp_known = calloc((size_t)n_layer * (size_t)ra->n_exp, sizeof(*ra->exp_known));
		ra->exp_mark = calloc((size_t)ra->n_exp, 1);
		ra->exp_req = calloc((size_t)ra->n_exp, sizeof(*ra->exp_req));
		ra->exp_work = calloc((size_t)ra->n_exp, sizeof(*ra->exp_work));
		if (!ra->exp_known || !ra->exp_mark || !ra->exp_req || !ra->exp_work) {
			free(grp);
			goto oom;
		}
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
	for (int i = 0; i < out; i++)
		ra->weights += ra->ranges[i].end - ra->ranges[i].start;
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
	free(ra->cvec);
	free(ra->hvec);
	free(ra->whole);
	free(ra->asked_pass);
	free(ra->asked);
	free(ra->exp_base);
	free(ra->exp_stride);
	free(ra->exp_late);
	free(ra->exp_known);
	free(ra->exp_mark);
	free(ra->exp_req);
	free(ra->exp_work);
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

/* madvise the runs of missing pages of one range, window by window; the
 * number of pages asked for. */
static uint64_t fetch_range(struct readahead *ra, const struct readahead_range *r)
{
	size_t ps = ra->page;
	uint64_t asked = 0;
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
				return asked;
			/* advice only: a failure costs speed, never correctness */
			(void)madvise((void *)(w + i * ps), (j - i) * ps, MADV_WILLNEED);
			asked += j - i;
			i = j;
		}
	}
	return asked;
}

/*
 * Read group g ahead: madvise its missing pages; the number asked for.  If
 * pages are missing from a group that was found whole once, they were evicted
 * since: the model does not fit in the memory it may use, each pass reads
 * every layer again, and reading ahead then costs more than it brings
 * (measured: half the tokens per second in a memory cgroup smaller than
 * the file, with the same bytes read -- the helper's reads break up the
 * kernel's own sequential read-ahead of the compute threads' faults).  So
 * read-ahead pauses for a number of passes that doubles with each such
 * finding (up to RA_PAUSE_MAX) and is reset by a pass without one.
 */
static uint64_t read_group(struct readahead *ra, int g)
{
	if (ra->asked_pass[g] == ra->pass)
		return ra->asked[g]; /* asked this pass already: the reads are in flight */
	uint64_t asked = 0;
	for (int i = ra->first[g]; i < ra->first[g + 1] && !atomic_load(&ra->stop); i++)
		asked += fetch_range(ra, &ra->ranges[i]);
	atomic_fetch_add(&ra->requested, (unsigned long long)asked);
	if (asked && ra->whole[g]) {
		atomic_fetch_add(&ra->evictions, 1);
		ra->evicted_this_pass = 1;
		ra->pause_left = ra->pause_next;
		ra->pause_next =
			ra->pause_next * 2 < RA_PAUSE_MAX ? ra->pause_next * 2 : RA_PAUSE_MAX;
		return 0;
	}
	if (!asked)
		ra->whole[g] = 1; /* found whole: reads still in flight do not count */
	else
		ra->asked_pass[g] = ra->pass;
	ra->asked[g] = asked;
	ra->pass_checked++;
	ra->pass_asked += asked;
	return asked;
}

/* The compute threads moved on, or asked for experts: stop reading ahead. */
static int moved(struct readahead *ra, unsigned seen, unsigned exp_seen)
{
	pthread_mutex_lock(&ra->mu);
	int m = ra->seq != seen || ra->exp_seq != exp_seen || atomic_load(&ra->stop);
	pthread_mutex_unlock(&ra->mu);
	return m;
}

/* Expert e's pages of layer l's j-th expert tensor, page-aligned. */
static struct readahead_range expert_range(const struct readahead *ra, int l, int j, int e)
{
	size_t at = (size_t)l * RA_EXP_TENSORS + (size_t)j;
	uintptr_t a = ra->exp_base[at] + (uintptr_t)e * ra->exp_stride[at];
	uintptr_t b = a + ra->exp_stride[at];
	struct readahead_range r = { a & ~(uintptr_t)(ra->page - 1),
				     (b + ra->page - 1) & ~(uintptr_t)(ra->page - 1) };
	return r;
}

/* Read the missing pages of the n experts ids (ascending) of layer l, in
 * the compute threads' order: every expert's gate and up, then the downs. */
static void serve_experts(struct readahead *ra, int l, const int32_t *ids, int n)
{
	uint64_t *asked = calloc((size_t)n, sizeof(*asked));
	for (int late = 0; late < 2; late++)
		for (int i = 0; i < n && !atomic_load(&ra->stop); i++)
			for (int j = 0; j < RA_EXP_TENSORS; j++) {
				size_t at = (size_t)l * RA_EXP_TENSORS + (size_t)j;
				if (!ra->exp_base[at] || ra->exp_late[at] != late)
					continue;
				struct readahead_range r = expert_range(ra, l, j, ids[i]);
				uint64_t a = fetch_range(ra, &r);
				atomic_fetch_add(&ra->requested, (unsigned long long)a);
				if (asked)
					asked[i] += a;
			}
	for (int i = 0; asked && i < n; i++)
		if (!asked[i])
			atomic_store_explicit(&ra->exp_known[(size_t)l * ra->n_exp + ids[i]], 1,
					      memory_order_relaxed);
	free(asked);
}

/*
 * The compute threads reached position c (a layer, or -1 when a pass
 * begins): read the next group (layer 0 when a pass begins, the output
 * group after the last layer).  While groups come out missing pages -- a
 * cold start -- and the weights fit twice in the memory available, go on
 * to the following ones (wrapping to layer 0), up to RA_LEAD bytes asked
 * ahead or until the compute threads move, so that the disk streams
 * instead of waiting for each layer's turn.  (Measured on the 1B Q4_0
 * file: 75-83% of each layer resident at its start against 30-60% one
 * group at a time; but in a memory cgroup smaller than the file the lead
 * evicts the layers about to be used, hence the memory check.)
 */
static void serve(struct readahead *ra, int c, unsigned seen, unsigned exp_seen)
{
	if (c < 0 && ra->n_exp && ra->pass % RA_EXP_RECHECK == 0)
		for (size_t i = 0; i < (size_t)(ra->n_groups - 1) * (size_t)ra->n_exp; i++)
			atomic_store_explicit(&ra->exp_known[i], 0, memory_order_relaxed);
	if (c < 0) {
		/* steady: a whole pass found every group resident; then the
		 * compute threads signal only pass starts, and this check of
		 * every group (a mincore each) replaces the per-layer ones */
		int steady = ra->pass_checked >= ra->n_groups && !ra->pass_asked && !ra->pause_left;
		ra->pass++;
		ra->pass_checked = 0;
		ra->pass_asked = 0;
		if (ra->pause_left > 0)
			ra->pause_left--;
		else if (!ra->evicted_this_pass)
			ra->pause_next = 1;
		ra->evicted_this_pass = 0;
		if (steady || atomic_load(&ra->steady)) {
			for (int g = 0; g < ra->n_groups && !atomic_load(&ra->stop); g++)
				if (read_group(ra, g)) {
					atomic_store(&ra->steady,
						     0); /* cold again: follow layers */
					ra->pass_checked = ra->n_groups;
					return;
				}
			ra->pass_checked = ra->n_groups;
			atomic_store(&ra->steady, 1);
			return;
		}
	}
	uint64_t lead = 0;
	for (int g = c + 1, n = 0; n < ra->n_groups && ra->pause_left == 0; n++) {
		uint64_t asked = read_group(ra, g);
		lead += asked * ra->page;
		if (!asked || lead >= ra->lead || moved(ra, seen, exp_seen))
			break;
		g = (g + 1) % ra->n_groups;
	}
}

static void *helper_main(void *arg)
{
	struct readahead *ra = arg;
	unsigned seen = 0, exp_seen = 0;
	pthread_mutex_lock(&ra->mu);
	for (;;) {
		while (!atomic_load(&ra->stop) && ra->seq == seen && ra->exp_seq == exp_seen)
			pthread_cond_wait(&ra->cv, &ra->mu);
		if (atomic_load(&ra->stop))
			break;
		if (ra->exp_seq != exp_seen) {
			/* experts first: the compute threads need them now */
			exp_seen = ra->exp_seq;
			int l = ra->exp_layer, n = ra->exp_n;
			memcpy(ra->exp_work, ra->exp_req, sizeof(*ra->exp_work) * (size_t)n);
			pthread_mutex_unlock(&ra->mu);
			serve_experts(ra, l, ra->exp_work, n);
			pthread_mutex_lock(&ra->mu);
			continue;
		}
		/* positions passed meanwhile are skipped: reading a layer that
		 * the compute threads already fault in only competes with them */
		seen = ra->seq;
		int c = ra->cur;
		pthread_mutex_unlock(&ra->mu);
		serve(ra, c, seen, exp_seen);
		pthread_mutex_lock(&ra->mu);
	}
	pthread_mutex_unlock(&ra->mu);
	return NULL;
}

/* A number from a one-line file (cgroup limits); 0 when absent or "max". */
static uint64_t read_u64_file(const char *path)
{
	FILE *f = fopen(path, "re");
	unsigned long long v = 0;
	if (!f)
		return 0;
	if (fscanf(f, "%llu", &v) != 1)
		v = 0;
	fclose(f);
	return v;
}

/*
 * Bytes of memory this process may fill, roughly: the
 * system's MemAvailable, lowered to the memory cgroup's limit (v2
 * memory.max or v1 memory.limit_in_bytes of the cgroup in /proc/self/cgroup).
 * 0 when nothing could be read.
 */
uint64_t readahead_memory_available(void)
{
	uint64_t avail = 0;
	char line[512];
	FILE *f = fopen("/proc/meminfo", "re");
	if (f) {
		unsigned long long kb;
		while (fgets(line, sizeof(line), f))
			if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1)
				avail = (uint64_t)kb * 1024;
		fclose(f);
	}
	f = fopen("/proc/self/cgroup", "re");
	if (!f)
		return avail;
	while (fgets(line, sizeof(line), f)) {
		char *ctl = strchr(line, ':'), *path, path_buf[640];
		if (!ctl || !(path = strchr(ctl + 1, ':')))
			continue;
		*path++ = 0;
		path[strcspn(path, "\n")] = 0;
		uint64_t lim = 0;
		if (!strcmp(ctl + 1, "")) { /* v2 */
			snprintf(path_buf, sizeof(path_buf), "/sys/fs/cgroup%s/memory.max", path);
			lim = read_u64_file(path_buf);
		} else if (strstr(ctl + 1, "memory")) { /* v1 */
			snprintf(path_buf, sizeof(path_buf),
				 "/sys/fs/cgroup/memory%s/memory.limit_in_bytes", path);
			lim = read_u64_file(path_buf);
		}
		if (lim && (!avail || lim < avail))
			avail = lim;
	}
	fclose(f);
	return avail;
}

int readahead_start(struct readahead *ra)
{
	if (ra->started)
		return 0;
	ra->avail = readahead_memory_available();
	if (ra->avail && ra->weights > ra->avail)
		return 0;
	ra->lead = ra->avail && ra->weights <= ra->avail / 2 ? RA_LEAD : 0;
	int rc = pthread_create(&ra->thread, NULL, helper_main, ra);
	if (rc)
		return error("cannot start the read-ahead thread: %s", strerror(rc));
	ra->started = 1;
	return 1;
}

uint64_t readahead_memory(const struct readahead *ra)
{
	return ra->avail;
}

uint64_t readahead_weights(const struct readahead *ra)
{
	return ra->weights;
}

void readahead_advance(struct readahead *ra, int cur)
{
	if (!ra->started || cur < -1 || cur >= ra->n_groups - 1)
		return;
	if (cur >= 0 && atomic_load_explicit(&ra->steady, memory_order_relaxed))
		return; /* nothing to read: spare the helper's wake-up (see serve()) */
	pthread_mutex_lock(&ra->mu);
	ra->cur = cur;
	ra->seq++;
	pthread_cond_signal(&ra->cv);
	pthread_mutex_unlock(&ra->mu);
}

/* Count the resident pages of one range (the caller's mincore vector). */
static int count_resident(struct readahead *ra, const struct readahead_range *r, uint64_t *resident,
			  uint64_t *pages)
{
	size_t ps = ra->page;
	for (uintptr_t w = r->start; w < r->end; w += RA_WINDOW * ps) {
		size_t len = r->end - w < RA_WINDOW * ps ? r->end - w : RA_WINDOW * ps;
		size_t np = len / ps;
		if (mincore((void *)w, len, ra->cvec) < 0)
			return -1;
		uint64_t c = 0;
		for (size_t i = 0; i < np; i++)
			c += ra->cvec[i] & 1;
		*resident += c;
		*pages += np;
	}
	return 0;
}

int readahead_resident(struct readahead *ra, int group, uint64_t *resident, uint64_t *pages)
{
	const struct readahead_range *r;
	int n = readahead_ranges(ra, group, &r);
	for (int k = 0; k < n; k++)
		if (count_resident(ra, &r[k], resident, pages) < 0)
			return -1;
	return 0;
}

void readahead_experts(struct readahead *ra, int layer, const int32_t *ids, int n)
{
	if (!ra->started || !ra->n_exp || layer < 0 || layer >= ra->n_groups - 1)
		return;
	const atomic_uchar *known = ra->exp_known + (size_t)layer * ra->n_exp;
	int missing = 0;
	for (int i = 0; i < n && !missing; i++)
		missing = ids[i] >= 0 && ids[i] < ra->n_exp &&
			  !atomic_load_explicit(&known[ids[i]], memory_order_relaxed);
	if (!missing)
		return; /* all resident when last seen: spare the helper's wake-up */
	pthread_mutex_lock(&ra->mu);
	memset(ra->exp_mark, 0, (size_t)ra->n_exp);
	for (int i = 0; i < n; i++)
		if (ids[i] >= 0 && ids[i] < ra->n_exp)
			ra->exp_mark[ids[i]] = 1;
	ra->exp_n = 0;
	for (int e = 0; e < ra->n_exp; e++)
		if (ra->exp_mark[e] && !atomic_load_explicit(&known[e], memory_order_relaxed))
			ra->exp_req[ra->exp_n++] = e;
	ra->exp_layer = layer;
	ra->exp_seq++;
	pthread_cond_signal(&ra->cv);
	pthread_mutex_unlock(&ra->mu);
}

int readahead_n_experts(const struct readahead *ra)
{
	return ra->n_exp;
}

uint64_t readahead_expert_bytes(const struct readahead *ra, int layer)
{
	uint64_t b = 0;
	for (int j = 0; ra->n_exp && layer >= 0 && layer < ra->n_groups - 1 && j < RA_EXP_TENSORS;
	     j++)
		if (ra->exp_base[(size_t)layer * RA_EXP_TENSORS + (size_t)j]) {
			struct readahead_range r = expert_range(ra, layer, j, 0);
			b += r.end - r.start;
		}
	return b;
}

int readahead_expert_resident(struct readahead *ra, int layer, int e, uint64_t *resident,
			      uint64_t *pages)
{
	if (!ra->n_exp || layer < 0 || layer >= ra->n_groups - 1 || e < 0 || e >= ra->n_exp)
		return 0;
	for (int j = 0; j < RA_EXP_TENSORS; j++) {
		if (!ra->exp_base[(size_t)layer * RA_EXP_TENSORS + (size_t)j])
			continue;
		struct readahead_range r = expert_range(ra, layer, j, e);
		if (count_resident(ra, &r, resident, pages) < 0)
			return -1;
	}
	return 0;
}

uint64_t readahead_pages_requested(struct readahead *ra)
{
	return atomic_load(&ra->requested);
}

uint64_t readahead_evictions(struct readahead *ra)
{
	return atomic_load(&ra->evictions);
}
