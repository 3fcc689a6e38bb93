/* palaver bench --cold: load and first token from a cold page cache, with and without read-ahead. */
#include "bench.h"
#include "options.h"
#include "config.h"
#include "model.h"
#include "report.h"
#include "strbuf.h"
#include "util.h"
#include "xalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/*
 * DESIGN
 * A run: (1) drop the file from the page cache with posix_fadvise(DONTNEED)
 * -- which only evicts clean pages that no process maps, so the previous
 * run's model is freed first -- and check on a fresh mapping with mincore()
 * how much of the file is still resident; (2) load the model without
 * prefault, so that its pages come in on demand during the first forward
 * pass (the case read-ahead is for); (3) time to first token: one forward
 * call over P prompt tokens until the last token's logits are ready;
 * (4) one decode step; (5) tgN, N decode steps.  Counting resident pages
 * at each layer's start (model_ra_stats) is on for the whole run.
 *
 * Each repetition runs every read-ahead setting asked for, alternating
 * which goes first so that neither always meets a disk that the other has
 * just warmed up (the drop precedes every run anyway).
 */

static const char usage[] =
	"usage: palaver bench --cold -m FILE [-p N] [-n N] [-r N] [-t N]\n"
	"                     [--readahead on|off|both] [--format md|json] [--no-repack]\n"
	"\n"
	"Start a model from a cold page cache: before each run the file is dropped\n"
	"from the page cache (posix_fadvise DONTNEED; the report says how much of\n"
	"it stayed resident), then the model is loaded without prefault and\n"
	"reports load time, first-token time (a prompt of N tokens until its\n"
	"logits are ready), one decode step, a short generation, and how many of\n"
	"each layer's weight pages were resident when the layer started.\n"
	"\n"
	"  -m, --model FILE   the GGUF model\n"
	"  -p, --n-prompt N   prompt tokens before the first token (default 8)\n"
	"  -n, --n-gen N      generated tokens after it (default 16)\n"
	"  -r, --repetitions N  runs per read-ahead setting (default 3)\n"
	"  -t, --threads N    compute threads (0, the default: online cores)\n"
	"  --readahead MODE   on, off or both (default both)\n"
	"  --format FMT       md (default) or json\n"
	"  --no-repack        keep the weights in the file's layout: repacked weights\n"
	"                     are copied at load, which then reads them all\n"
	"  -h, --help         show this help\n";

/* A drop that leaves more than this share resident did not take. */
#define DROP_MAX_RESIDENT 0.10

struct run {
	double drop_resident; /* share of the file's pages resident after the drop */
	double load_ms, first_ms, decode_ms, tg_ts;
	int active;                  /* the read-ahead helper ran (model_info readahead) */
	uint64_t repacked;           /* bytes copied into a load-time layout */
	struct model_ra_stats first; /* during the first-token forward */
	struct model_ra_stats tg;    /* during the decode steps (first decode + tgN) */
};

struct setting {
	int readahead;
	struct run *runs; /* (reps) */
	int n;
};

/* Share of the file's pages resident on a fresh mapping of fd (mincore
 * does not fault pages in), or -1 with error(). */
static double resident_share(int fd, const char *path, size_t size)
{
	size_t ps = (size_t)sysconf(_SC_PAGESIZE), np = (size + ps - 1) / ps;
	void *m = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
	if (m == MAP_FAILED)
		return error("cannot map '%s': %s", path, strerror(errno));
	unsigned char *vec = try_alloc_array(np, 1);
	double share = -1;
	if (!vec) {
		error("out of memory");
	} else if (mincore(m, size, vec) < 0) {
		error("'%s': mincore: %s", path, strerror(errno));
	} else {
		size_t r = 0;
		for (size_t i = 0; i < np; i++)
			r += vec[i] & 1;
		share = (double)r / (double)np;
	}
	free(vec);
	munmap(m, size);
	return share;
}

/*
 * Evict path's pages and return the share still resident, or -1 with
 * error().  DONTNEED skips dirty pages (a file written moments ago): when
 * the first drop leaves too much, write the file back and drop again.
 */
static double drop_cache(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return error("cannot open '%s': %s", path, strerror(errno));
	struct stat st;
	double share = -1;
	if (fstat(fd, &st) < 0 || st.st_size <= 0) {
		error("cannot stat '%s'", path);
		goto out;
	}
	for (int attempt = 0; attempt < 2; attempt++) {
		int rc = posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
		if (rc) {
			share = error("'%s': posix_fadvise: %s", path, strerror(rc));
			goto out;
		}
		share = resident_share(fd, path, (size_t)st.st_size);
		if (share < 0 || share <= DROP_MAX_RESIDENT || attempt)
			break;
		(void)fdatasync(
			fd); /* may fail on a read-only descriptor: then the report says so */
	}
out:
	close(fd);
	return share;
}

static double ms_since(uint64_t t0)
{
	return (double)(time_now_ns() - t0) / 1e6;
}

/* One cold run; 0 or -1 with error(). */
static int run_cold(const char *path, int readahead, int repack, int nth, int nb, int np, int ng,
		    struct run *r)
{
	memset(r, 0, sizeof(*r));
	r->drop_resident = drop_cache(path);
	if (r->drop_resident < 0)
		return -1;
	struct model_params mp;
	model_params_default(&mp);
	mp.n_threads = nth;
	mp.n_batch = nb;
	mp.n_ctx = np + ng + 1;
	mp.prefault = 0;
	mp.readahead = readahead;
	mp.repack = repack;
	uint64_t t0 = time_now_ns();
	struct model *m = model_load(path, &mp);
	if (!m)
		return -1;
	r->load_ms = ms_since(t0);
	r->active = model_info(m)->readahead;
	static int warned;
	if (model_warning(m) && !warned++)
		warning("%s", model_warning(m));
	r->repacked = model_info(m)->repacked_bytes;
	int nv = model_info(m)->n_vocab, rc = -1;
	int32_t *toks = try_alloc_array((size_t)np, sizeof(int32_t));
	float *logits = try_alloc_array((size_t)nv, sizeof(float));
	if (!toks || !logits) {
		error("out of memory");
		goto out;
	}
	for (int i = 0; i < np; i++)
		toks[i] = bench_rand_token(nv);
	model_ra_stats_enable(m, 1);
	t0 = time_now_ns();
	if (model_forward(m, toks, np, 0, logits, 0) < 0)
		goto out;
	r->first_ms = ms_since(t0);
	model_ra_stats_get(m, &r->first);
	model_ra_stats_enable(m, 1);
	int32_t t = bench_rand_token(nv);
	t0 = time_now_ns();
	if (model_forward(m, &t, 1, np, logits, 0) < 0)
		goto out;
	r->decode_ms = ms_since(t0);
	t0 = time_now_ns();
	for (int i = 0; i < ng; i++) {
		t = bench_rand_token(nv); /* a real run would sample; the cost is the same */
		if (model_forward(m, &t, 1, np + 1 + i, logits, 0) < 0)
			goto out;
	}
	double s = (double)(time_now_ns() - t0) / 1e9;
	r->tg_ts = ng && s > 0 ? ng / s : 0;
	model_ra_stats_get(m, &r->tg);
	model_ra_stats_enable(m, 0);
	rc = 0;
out:
	free(toks);
	free(logits);
	model_free(m);
	return rc;
}

/* Mean and sample standard deviation of field off (a double) of the runs. */
static void stat_of(const struct setting *s, size_t off, double *mean, double *sd)
{
	double *v = xcalloc((size_t)s->n + 1, sizeof(*v));
	for (int i = 0; i < s->n; i++)
		v[i] = *(const double *)(const void *)((const char *)&s->runs[i] + off);
	bench_mean_sd(v, s->n, mean, sd);
	free(v);
}

/* Hit counts summed over the runs: which = 0 first token, 1 decode. */
static struct model_ra_stats hits(const struct setting *s, int which)
{
	struct model_ra_stats h = { 0 };
	for (int i = 0; i < s->n; i++) {
		const struct model_ra_stats *x = which ? &s->runs[i].tg : &s->runs[i].first;
		h.resident += x->resident;
		h.pages += x->pages;
		h.layers += x->layers;
		h.layers_full += x->layers_full;
		h.requested += x->requested;
		h.evictions += x->evictions;
		h.expert_resident += x->expert_resident;
		h.expert_pages += x->expert_pages;
	}
	return h;
}

static double max_drop(const struct setting *s)
{
	double mx = 0;
	for (int i = 0; i < s->n; i++)
		if (s->runs[i].drop_resident > mx)
			mx = s->runs[i].drop_resident;
	return mx;
}

/* Runs whose read-ahead helper ran. */
static int n_active(const struct setting *s)
{
	int n = 0;
	for (int i = 0; i < s->n; i++)
		n += s->runs[i].active;
	return n;
}

static double pct(uint64_t a, uint64_t b)
{
	return b ? 100.0 * (double)a / (double)b : 0;
}

enum col { C_LOAD, C_FIRST, C_DECODE, C_TG, C_N };
static const size_t col_off[C_N] = { offsetof(struct run, load_ms), offsetof(struct run, first_ms),
				     offsetof(struct run, decode_ms), offsetof(struct run, tg_ts) };
static const char *const col_json[C_N] = { "load_ms", "first_token_ms", "first_decode_ms",
					   "tg_t_s" };

static void print_json(const struct setting *set, int nset, const char *path, const char *name,
		       const char *type, uint64_t bytes, int nth, int np, int ng)
{
	struct strbuf sb = STRBUF_INIT;
	strbuf_addstr(&sb, "[\n");
	for (int k = 0; k < nset; k++) {
		const struct setting *s = &set[k];
		strbuf_addf(&sb, "  {\"test\": \"cold\", \"readahead\": %s, \"model_file\": \"",
			    s->readahead ? "true" : "false");
		strbuf_add_json_escaped(&sb, path, strlen(path));
		strbuf_addstr(&sb, "\", \"model_name\": \"");
		strbuf_add_json_escaped(&sb, name, strlen(name));
		strbuf_addf(&sb,
			    "\", \"model_type\": \"%s\", \"model_bytes\": %llu, \"threads\": %d, "
			    "\"n_prompt\": %d, \"n_gen\": %d, \"repetitions\": %d, "
			    "\"drop_resident_max\": %.4f, \"cold\": %s, \"readahead_runs\": %d, ",
			    type, (unsigned long long)bytes, nth, np, ng, s->n, max_drop(s),
			    max_drop(s) <= DROP_MAX_RESIDENT ? "true" : "false", n_active(s));
		for (int c = 0; c < C_N; c++) {
			double mean, sd;
			stat_of(s, col_off[c], &mean, &sd);
			strbuf_addf(&sb, "\"%s_mean\": %.3f, \"%s_sd\": %.3f, ", col_json[c], mean,
				    col_json[c], sd);
		}
		for (int w = 0; w < 2; w++) {
			struct model_ra_stats h = hits(s, w);
			strbuf_addf(&sb,
				    "\"%s\": {\"resident_pages\": %llu, \"pages\": %llu, "
				    "\"layers\": %llu, \"layers_full\": %llu, "
				    "\"expert_resident_pages\": %llu, \"expert_pages\": %llu}, ",
				    w ? "hits_decode" : "hits_first_token",
				    (unsigned long long)h.resident, (unsigned long long)h.pages,
				    (unsigned long long)h.layers, (unsigned long long)h.layers_full,
				    (unsigned long long)h.expert_resident,
				    (unsigned long long)h.expert_pages);
		}
		/* the helper's count is cumulative per load: the decode figure is the run's total */
		strbuf_addf(&sb, "\"repacked_bytes\": %llu, ",
			    (unsigned long long)s->runs[0].repacked);
		strbuf_addf(&sb,
			    "\"readahead_pages_requested\": %llu, \"readahead_pauses\": %llu}%s\n",
			    (unsigned long long)hits(s, 1).requested,
			    (unsigned long long)hits(s, 1).evictions, k + 1 < nset ? "," : "");
	}
	strbuf_addstr(&sb, "]\n");
	fputs(sb.buf, stdout);
	strbuf_release(&sb);
}

static void print_md(const struct setting *set, int nset, const char *name, const char *type,
		     uint64_t bytes, int nth, int np, int ng)
{
	char sz[32];
	format_size(sz, sizeof(sz), bytes);
	char rp[32];
	format_size(rp, sizeof(rp), set[0].runs[0].repacked);
	printf("cold start: %s (%s, %s), %d threads, prompt %d tokens, tg%d, repacked at load: "
	       "%s\n\n",
	       name, sz, type, nth, np, ng, set[0].runs[0].repacked ? rp : "none");
	printf("| read-ahead | resident after drop | load ms | first token ms | first decode ms "
	       "| tg%d t/s | layer pages resident at layer start: first token | decode |\n",
	       ng);
	printf("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
	for (int k = 0; k < nset; k++) {
		const struct setting *s = &set[k];
		double mean[C_N], sd[C_N];
		for (int c = 0; c < C_N; c++)
			stat_of(s, col_off[c], &mean[c], &sd[c]);
		struct model_ra_stats f = hits(s, 0), d = hits(s, 1);
		printf("| %s | %.1f%% | %.1f ± %.1f | %.1f ± %.1f | %.1f ± %.1f | %.2f ± %.2f "
		       "| %.1f%% (%llu/%llu layers full) | %.1f%% |\n",
		       s->readahead ? "on" : "off", 100 * max_drop(s), mean[C_LOAD], sd[C_LOAD],
		       mean[C_FIRST], sd[C_FIRST], mean[C_DECODE], sd[C_DECODE], mean[C_TG],
		       sd[C_TG], pct(f.resident, f.pages), (unsigned long long)f.layers_full,
		       (unsigned long long)f.layers, pct(d.resident, d.pages));
	}
	printf("\n%d runs per setting; ± is the standard deviation.  'resident after drop' is\n"
	       "the largest share of the file's pages still cached after posix_fadvise(DONTNEED).\n",
	       set[0].n);
	for (int k = 0; k < nset; k++) {
		struct model_ra_stats f = hits(&set[k], 0), d = hits(&set[k], 1);
		if (f.expert_pages || d.expert_pages)
			printf("read-ahead %s: pages of the experts the routers chose that were "
			       "resident when chosen: first token %.1f%%, decode %.1f%% (the layers' "
			       "figures above leave the experts out)\n",
			       set[k].readahead ? "on" : "off",
			       pct(f.expert_resident, f.expert_pages),
			       pct(d.expert_resident, d.expert_pages));
	}
	for (int k = 0; k < nset; k++)
		if (set[k].readahead && n_active(&set[k]) < set[k].n)
			printf("read-ahead was declined in %d of %d runs: the weights do not fit in the "
			       "memory available (MemAvailable or the memory cgroup's limit), where "
			       "reading ahead evicts the layers about to be used\n",
			       set[k].n - n_active(&set[k]), set[k].n);
	for (int k = 0; k < nset; k++)
		if (set[k].readahead && n_active(&set[k]))
			printf("read-ahead asked the kernel for %.1f MiB per run (pages found missing)"
			       " and paused %.1f times per run (pages it read were evicted before use)\n",
			       (double)hits(&set[k], 1).requested * (double)sysconf(_SC_PAGESIZE) /
				       set[k].n / 1048576.0,
			       (double)hits(&set[k], 1).evictions / set[k].n);
	for (int k = 0; k < nset; k++)
		if (max_drop(&set[k]) > DROP_MAX_RESIDENT) {
			printf("warning: the page-cache drop did not take (up to %.0f%% of the file "
			       "stayed resident: another process maps it, or its filesystem keeps "
			       "pages); these are not cold-start figures\n",
			       100 * max_drop(&set[k]));
			break;
		}
}

int bench_cold(int argc, char **argv, struct config *cfg)
{
	static const char *const settings[] = { "on", "off", "both", NULL };
	static const char *const formats[] = { "md", "json", NULL };
	int np = 8, ng = 16, reps = 3, json = 0, no_repack = 0, setting = 2; /* both */
	const struct opt_spec opts[] = {
		{ "--cold", NULL, OPT_FLAG, NULL, 0, 0, NULL },
		{ "--n-prompt", "-p", OPT_INT, &np, 1, 1 << 16, NULL },
		{ "--n-gen", "-n", OPT_INT, &ng, 0, 1 << 16, NULL },
		{ "--repetitions", "-r", OPT_INT, &reps, 1, 1000, NULL },
		{ "--readahead", NULL, OPT_CHOICE, &setting, 0, 0, settings },
		{ "--no-repack", NULL, OPT_FLAG, &no_repack, 0, 0, NULL },
		{ "--format", "-o", OPT_CHOICE, &json, 0, 0, formats },
		{ NULL, NULL, 0, NULL, 0, 0, NULL },
	};
	int parsed =
		options_parse(argc, argv, opts, usage, "bench", "palaver bench --cold --help", cfg);
	if (parsed)
		return parsed > 0 ? EXIT_OK : EXIT_USAGE;
	const char *path = cfg->model; /* -m and -t, as the other commands take them */
	int threads = cfg->threads, repack = cfg->repack && !no_repack;
	/* both: read-ahead on, then off, alternating */
	int modes[2] = { setting != 1, 0 }, nmodes = setting == 2 ? 2 : 1;
	if (!path || !*path) {
		return report_usage(
			"bench: -m FILE is required (see 'palaver bench --cold --help')");
	}
	int nth = threads                             ? threads
		  : sysconf(_SC_NPROCESSORS_ONLN) > 0 ? (int)sysconf(_SC_NPROCESSORS_ONLN)
						      : 1;
	/* the model's name and type, from a load that also checks the file early */
	struct model_params mp;
	model_params_probe(&mp);
	struct model *probe = model_load(path, &mp);
	if (!probe) {
		return report_failure(EXIT_RUNTIME);
	}
	char name[128], type[32];
	snprintf(name, sizeof(name), "%s", model_info(probe)->name);
	snprintf(type, sizeof(type), "%s", model_info(probe)->type_name);
	uint64_t bytes = model_info(probe)->file_bytes;
	model_free(probe);

	struct setting set[2];
	for (int k = 0; k < nmodes; k++) {
		set[k].readahead = modes[k];
		set[k].runs = xcalloc((size_t)reps, sizeof(struct run));
		set[k].n = 0;
	}
	int rc = EXIT_OK;
	for (int r = 0; r < reps && rc == EXIT_OK; r++) {
		for (int j = 0; j < nmodes; j++) {
			int k = (r % 2 && nmodes == 2) ? 1 - j : j; /* alternate the order */
			if (run_cold(path, set[k].readahead, repack, nth, cfg->batch_size, np, ng,
				     &set[k].runs[set[k].n]) < 0) {
				report("%s", error_message());
				rc = EXIT_RUNTIME;
				break;
			}
			set[k].n++;
		}
	}
	if (rc == EXIT_OK) {
		if (json)
			print_json(set, nmodes, path, name, type, bytes, nth, np, ng);
		else
			print_md(set, nmodes, name, type, bytes, nth, np, ng);
	}
	for (int k = 0; k < nmodes; k++)
		free(set[k].runs);
	return rc;
}
