/* palaver bench: the memory read bandwidth, a probe now and the record of this CPU's probes. */
#include "bench.h"
#include "quant_select.h"
#include "report.h"
#include "strbuf.h"
#include "util.h"
#include "xalloc.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#if defined(__AVX2__)
#include <immintrin.h>
#endif

/*
 * DESIGN
 * The probe: n threads read a 512 MiB buffer (far above any cache; in 2 MiB
 * pages where the kernel gives them, as the repacked weights) 96 times
 * together, each timed by its own CPU time, and the best pass counts.  It
 * runs in a forked child, so the buffer never counts in the benchmark's
 * peak RSS.
 *
 * The record: a machine's bandwidth is what it can reach, and on a shared
 * host that moves between runs seconds apart (one probe read 61 to 72 GB/s
 * in ten runs on the development VM, a probe of 400 passes the same, and
 * 39 to 80 in twelve runs while another tenant was busy), so
 * one run's probe makes the roofline fraction move with it.  Each probe is
 * therefore kept in $XDG_CACHE_HOME/palaver/bandwidth-<cpu>.txt (the CPU's
 * key as for the kernel choice, a line per probe: threads, bytes/s, time),
 * and the figure the roofline uses is the best of the last BW_KEEP probes
 * at that thread count, this one included; the run's own probe is printed
 * beside it.  A record made for another CPU, or that cannot be read or
 * written, is no failure: the run's probe alone counts then.
 */

#define BW_PASSES 96
#define BW_BYTES ((size_t)512 << 20)
#define BW_KEEP 16   /* probes per thread count the figure is the best of */
#define BW_LINES 256 /* probes the file keeps, all thread counts */
#define BW_MAX 1e14  /* bytes/s; a line above it is not a probe's */
#define BW_MAGIC "palaver-bandwidth 1"

/* ---- the probe -------------------------------------------------------------------------- */

/* Each pass, every reader waits at the barrier, reads its slice and
 * records its rate by its own CPU time. */
struct bw_arg {
	const uint64_t *p;
	size_t n; /* uint64 words */
	pthread_barrier_t *bar;
	double rate[BW_PASSES]; /* bytes per CPU second, per pass */
	uint64_t sum;           /* keeps the loads alive */
};

static uint64_t bw_read(const uint64_t *p, size_t n)
{
	uint64_t s = 0;
	size_t i = 0;
#if defined(__AVX2__)
	__m256i acc0 = _mm256_setzero_si256(), acc1 = acc0, acc2 = acc0, acc3 = acc0;
	for (; i + 16 <= n; i += 16) {
		const __m256i *v = (const __m256i *)(p + i);
		acc0 = _mm256_xor_si256(acc0, _mm256_load_si256(v));
		acc1 = _mm256_xor_si256(acc1, _mm256_load_si256(v + 1));
		acc2 = _mm256_xor_si256(acc2, _mm256_load_si256(v + 2));
		acc3 = _mm256_xor_si256(acc3, _mm256_load_si256(v + 3));
	}
	acc0 = _mm256_xor_si256(_mm256_xor_si256(acc0, acc1), _mm256_xor_si256(acc2, acc3));
	uint64_t lanes[4];
	_mm256_storeu_si256((__m256i *)lanes, acc0);
	s = lanes[0] ^ lanes[1] ^ lanes[2] ^ lanes[3];
#endif
	for (; i < n; i++)
		s ^= p[i];
	return s;
}

static void *bw_reader(void *arg)
{
	struct bw_arg *a = arg;
	for (int pass = 0; pass < BW_PASSES; pass++) {
		pthread_barrier_wait(a->bar);
		double t0 = bench_cpu_ms(0);
		a->sum ^= bw_read(a->p, a->n);
		double ms = bench_cpu_ms(0) - t0;
		a->rate[pass] = ms > 0 ? (double)a->n * 8 / (ms / 1e3) : 0;
	}
	return NULL;
}

/*
 * Read bandwidth in bytes/s with nth threads; 0 on failure.  The threads
 * live through all passes and start each one together (a barrier), and a
 * pass's figure is the sum of the threads' rates by their own CPU time:
 * threads created per pass and timed by the wall clock made the figure
 * swing from 29 to 49 GB/s between runs on a shared 2-core machine (start
 * skew, and every moment another process held a core).  The best of 96
 * passes (about half a second) counts: ten runs of 24 passes on an idle
 * machine read 55.0-70.0 GB/s, of 96 passes 66.1-70.2 (interleaved,
 * 2026-12-04).  The buffer asks for 2 MiB pages, as the repacked weights
 * do, so page walks are not what it measures (against 4 KiB pages: no
 * difference above the host's own swings, median 0.99 over ten pairs).
 */
static double bandwidth_measure(int nth)
{
	const size_t hp = (size_t)2 << 20;
	void *mem = NULL;
	if (posix_memalign(&mem, hp, BW_BYTES) != 0)
		return 0;
	madvise(mem, BW_BYTES, MADV_HUGEPAGE);
	uint64_t *buf = mem;
	size_t words = BW_BYTES / 8, per = (words / (size_t)nth) & ~(size_t)15;
	for (size_t i = 0; i < words; i++)
		buf[i] = i * 0x9e3779b97f4a7c15ull;
	pthread_t *th = xcalloc((size_t)nth, sizeof(*th));
	struct bw_arg *args = xcalloc((size_t)nth, sizeof(*args));
	pthread_barrier_t bar;
	int started = 1;
	if (pthread_barrier_init(&bar, NULL, (unsigned)nth)) {
		free(th);
		free(args);
		free(buf);
		return 0;
	}
	for (int t = 0; t < nth; t++) {
		args[t].p = buf + (size_t)t * per;
		args[t].n = t == nth - 1 ? words - (size_t)t * per : per;
		args[t].bar = &bar;
	}
	for (int t = 1; t < nth; t++, started++)
		if (pthread_create(&th[t], NULL, bw_reader, &args[t]))
			break;
	double best = 0;
	if (started == nth) {
		bw_reader(&args[0]);
		for (int p = 0; p < BW_PASSES; p++) {
			double sum = 0;
			for (int t = 0; t < nth; t++)
				sum += args[t].rate[p];
			if (sum > best)
				best = sum;
		}
	} else {
		/* a thread failed to start and the others wait at the barrier for
		 * ever: this runs in bandwidth_forked's child, whose end the parent
		 * reads as "no figure" */
		_exit(1);
	}
	for (int t = 1; t < nth; t++)
		pthread_join(th[t], NULL);
	pthread_barrier_destroy(&bar);
	free(th);
	free(args);
	free(buf);
	return best;
}

/* Run the measurement in a child so its buffer never counts in our peak RSS. */
static double bandwidth_forked(int nth)
{
	int fd[2];
	if (pipe(fd) < 0)
		return 0;
	pid_t pid = fork();
	if (pid < 0) {
		close(fd[0]);
		close(fd[1]);
		return 0;
	}
	if (pid == 0) {
		close(fd[0]);
		double bw = bandwidth_measure(nth);
		ssize_t w = write(fd[1], &bw, sizeof(bw));
		_exit(w == (ssize_t)sizeof(bw) ? 0 : 1);
	}
	close(fd[1]);
	double bw = 0;
	if (read(fd[0], &bw, sizeof(bw)) != (ssize_t)sizeof(bw))
		bw = 0;
	close(fd[0]);
	waitpid(pid, NULL, 0);
	return bw;
}

/* ---- the record ------------------------------------------------------------------------- */

struct bw_probe {
	int threads;
	double bytes_s;
	long long when; /* seconds since the epoch */
};

/* The record's probes, oldest first, into *out (n returned; 0 for no file,
 * another CPU's, another format's).  Lines that are not a probe's are
 * skipped: the file is ours, but a hand edit must not break a benchmark. */
static int record_load(const char *path, const char *cpu, struct bw_probe *out, int max)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return 0;
	char line[512];
	int n = 0, magic = 0, ours = 0;
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = '\0';
		if (line[0] == '#')
			continue;
		if (!magic) {
			magic = !strcmp(line, BW_MAGIC);
			if (!magic)
				break;
			continue;
		}
		if (!strncmp(line, "cpu ", 4)) {
			ours = !strcmp(line + 4, cpu);
			continue;
		}
		struct bw_probe p;
		char rest;
		if (!ours ||
		    sscanf(line, "%d %lf %lld %c", &p.threads, &p.bytes_s, &p.when, &rest) != 3)
			continue;
		if (p.threads < 1 || p.threads > 4096 || !isfinite(p.bytes_s) || p.bytes_s <= 0 ||
		    p.bytes_s > BW_MAX)
			continue;
		if (n == max) { /* keep the newest max */
			memmove(out, out + 1, (size_t)(max - 1) * sizeof(*out));
			n--;
		}
		out[n++] = p;
	}
	fclose(f);
	return ours ? n : 0;
}

static int record_save(const char *path, const char *cpu, const struct bw_probe *p, int n)
{
	struct strbuf sb = STRBUF_INIT;
	strbuf_addf(&sb,
		    "# memory read bandwidth probes of palaver bench on this CPU: threads, "
		    "bytes/s, time;\n# the roofline uses the best of the last %d at the run's "
		    "thread count. Delete this file to start again.\n%s\ncpu %s\n",
		    BW_KEEP, BW_MAGIC, cpu);
	for (int i = 0; i < n; i++)
		strbuf_addf(&sb, "%d %.0f %lld\n", p[i].threads, p[i].bytes_s, p[i].when);
	int rc = write_file_replace(path, sb.buf, sb.len);
	strbuf_release(&sb);
	return rc;
}

void bench_bandwidth(int nth, struct bench_bandwidth *out)
{
	memset(out, 0, sizeof(*out));
	out->now = bandwidth_forked(nth);
	out->best = out->now;
	out->probes = out->now > 0;

	struct strbuf path = STRBUF_INIT;
	if (xdg_path(&path, "XDG_CACHE_HOME", ".cache", "") < 0) {
		error_clear(); /* no place for a record: this probe alone */
		strbuf_release(&path);
		return;
	}
	char cpu[160], name[160];
	quant_cpu_key(cpu, sizeof(cpu));
	quant_cpu_file_name("bandwidth-", cpu, name, sizeof(name));
	strbuf_addstr(&path, name);
	struct bw_probe *rec = xcalloc(BW_LINES + 1, sizeof(*rec));
	int n = record_load(path.buf, cpu, rec, BW_LINES);
	if (out->now > 0) {
		if (n == BW_LINES) {
			memmove(rec, rec + 1, (size_t)(BW_LINES - 1) * sizeof(*rec));
			n--;
		}
		rec[n++] = (struct bw_probe){ nth, out->now, (long long)time(NULL) };
		if (record_save(path.buf, cpu, rec, n) < 0) {
			/* a read-only cache: this run still has its figure */
			fprintf(stderr, "palaver: warning: bench: %s\n", error_message());
			error_clear();
		}
	}
	/* the newest BW_KEEP at this thread count, this run's included */
	out->probes = 0;
	for (int i = n - 1; i >= 0 && out->probes < BW_KEEP; i--) {
		if (rec[i].threads != nth)
			continue;
		out->probes++;
		if (rec[i].bytes_s > out->best)
			out->best = rec[i].bytes_s;
	}
	free(rec);
	strbuf_release(&path);
}
