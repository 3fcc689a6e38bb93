/* palaver bench (model): llama-bench's pp/tg tests, memory bandwidth and decode's roofline. */
#include "bench.h"
#include "options.h"
#include "config.h"
#include "model.h"
#include "quant.h"
#include "report.h"
#include "strbuf.h"
#include "util.h"
#include "xalloc.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/*
 * DESIGN
 * The tests follow llama-bench: ppN times one model_forward of N prompt
 * tokens (logits of the last only) in chunks of the configured batch size
 * (batch_size, --batch-size: as the chat and batch mode evaluate a prompt),
 * tgN times N single-token decode steps,
 * each on a cache that already holds DEPTH tokens (prefilled once, untimed,
 * and kept across repetitions by truncating back to DEPTH).  One warm-up
 * run precedes the timed repetitions.  Tokens are pseudo-random ids.
 *
 * The bandwidth is measured before the model is loaded (bench_bandwidth.c:
 * a probe in a forked child, its figure kept in a record per CPU) and the
 * roofline uses the best of that CPU's last 16 probes at the run's thread
 * count, since one probe moves with the shared host.  Decode's roofline is
 * bandwidth / bytes read per token (the weights a step reads plus the KV
 * cache at the test's mean depth); roofline_fraction = t/s by CPU time /
 * roofline t/s, both figures being what dedicated cores would do.
 *
 * On a shared machine the wall clock also counts the time other processes
 * held the cores.  The benchmark therefore also reports tokens per second by
 * CPU time: tokens / (process CPU time / threads).  On an idle machine the
 * two agree (waiting threads spin, so their CPU time counts as busy); when
 * they differ, the machine was oversubscribed and the CPU-time figure is the
 * better estimate of what the code does on dedicated cores.
 */

static const char usage[] =
	"usage: palaver bench -m FILE [-p N] [-n N] [-r N] [-t N] [-d DEPTH]\n"
	"                     [--kv-type f16|f32] [--format md|json|csv] [--profile]\n"
	"                     [--readahead on|off] [--no-repack] [--no-moe-group]\n"
	"\n"
	"Measure prompt processing (ppN, tokens/s) and generation (tgN,\n"
	"tokens/s) as llama-bench does, the machine's memory read bandwidth (the\n"
	"best of this CPU's last 16 probes, kept under $XDG_CACHE_HOME/palaver;\n"
	"this run's probe beside it), and decode's fraction of the bandwidth\n"
	"roofline.\n"
	"\n"
	"  -m, --model FILE   the GGUF model\n"
	"  -p, --n-prompt N   prompt tokens for the pp test (default 512, 0 = skip)\n"
	"  -n, --n-gen N      generated tokens for the tg test (default 128, 0 = skip)\n"
	"  -r, --repetitions N  timed runs per test (default 5)\n"
	"  -t, --threads N    compute threads (0, the default: online cores)\n"
	"  -d, --depth N      tokens already in the KV cache for each test (default 0)\n"
	"  --batch-size N     prompt tokens evaluated per step (default: batch_size in\n"
	"                     config.yaml, 512), as in the chat\n"
	"  --kv-type TYPE     KV cache element type: f16 (default) or f32\n"
	"  --format FMT       md (default), json or csv\n"
	"  --profile          also break each test's time into matmul, experts (a\n"
	"                     mixture's expert matmuls), norm+quantize, attention\n"
	"                     and other (to standard error)\n"
	"  --readahead on|off read the next layer's weights ahead (default on)\n"
	"  --no-repack        keep the weights in the file's layout (no load-time\n"
	"                     repacking; see palaver --help)\n"
	"  --no-moe-group     a mixture of experts' prompt runs each token's experts\n"
	"                     one gemv at a time, instead of one gemm per expert over\n"
	"                     the tokens routed to it (to measure what grouping brings)\n"
	"  -h, --help         show this help\n"
	"\n"
	"Other benchmarks: palaver bench --tokenizer | --history | --cancel | --reuse\n"
	"                  | --cold (load and first token from a cold page cache)\n"
	"                  | --kernels (the CPU kernel levels chosen on this CPU)\n";

enum fmt { FMT_MD, FMT_JSON, FMT_CSV };

struct result {
	char test[32];
	int n_prompt, n_gen, depth;
	double mean, sd;      /* tokens/s */
	double cpu_mean;      /* tokens/s from process CPU time / threads (see DESIGN) */
	double roofline;      /* decode only, else < 0 */
	double bytes_per_tok; /* decode only */
	int in_cache;         /* decode beat the memory roofline: a cache served it */
};

/* ---- the tests -------------------------------------------------------------------------- */

static double cpu_seconds(void)
{
	return bench_cpu_ms(1) / 1e3;
}

/* Seconds for one pp (n_prompt > 0) or tg run starting at depth; < 0 on error. */
static double run_once(struct model *m, int depth, int n_prompt, int n_gen, int32_t *toks,
		       float *logits, double *cpu)
{
	double c0 = cpu_seconds();
	int nv = model_info(m)->n_vocab;
	int kept = model_kv_truncate(m, depth);
	if (kept < 0)
		return -1;
	if (kept < depth) { /* a sliding-window ring lost the window: refill */
		for (int i = kept; i < depth; i++)
			toks[i] = bench_rand_token(nv);
		if (model_forward(m, toks + kept, depth - kept, kept, NULL, 0) < 0)
			return -1;
		c0 = cpu_seconds();
	}
	uint64_t t0 = time_now_ns();
	if (n_prompt > 0) {
		for (int i = 0; i < n_prompt; i++)
			toks[i] = bench_rand_token(nv);
		if (model_forward(m, toks, n_prompt, depth, logits, 0) < 0)
			return -1;
	} else {
		int32_t t = bench_rand_token(nv);
		for (int i = 0; i < n_gen; i++) {
			if (model_forward(m, &t, 1, depth + i, logits, 0) < 0)
				return -1;
			t = bench_rand_token(
				nv); /* a real run would sample; the cost is the same */
		}
	}
	double wall = (double)(time_now_ns() - t0) / 1e9;
	if (cpu)
		*cpu = cpu_seconds() - c0;
	return wall;
}

/* Share of each kind of step, per token, to standard error. */
static void print_profile(struct model *m, const char *test, int n)
{
	struct model_profile p;
	model_profile_get(m, &p);
	uint64_t tot = 0;
	for (int k = 0; k < MODEL_PROF_N; k++)
		tot += p.ns[k];
	if (!tot || !p.tokens)
		return;
	fprintf(stderr, "profile %s%d (%llu tokens):", test, n, (unsigned long long)p.tokens);
	for (int k = 0; k < MODEL_PROF_N; k++)
		if (k != MODEL_PROF_EXPERTS || p.ns[k]) /* experts: a mixture's only */
			fprintf(stderr, " %s %.1f%% (%.3f ms/token)",
				model_prof_name((enum model_prof)k),
				100.0 * (double)p.ns[k] / (double)tot,
				(double)p.ns[k] / 1e6 / (double)p.tokens);
	fprintf(stderr, "\n");
}

static void print_results(enum fmt f, const struct model_info *in, const char *path,
			  const struct result *r, int nr, const struct bench_bandwidth *bb,
			  uint64_t peak, uint64_t scratch)
{
	double bw = bb->best;
	char sz[32], rss[32], kv[32];
	format_size(sz, sizeof(sz), in->file_bytes);
	format_size(rss, sizeof(rss), peak);
	format_size(kv, sizeof(kv), in->kv_bytes);
	if (f == FMT_JSON) {
		struct strbuf sb = STRBUF_INIT;
		strbuf_addstr(&sb, "[\n");
		for (int i = 0; i < nr; i++) {
			strbuf_addstr(&sb, "  {\"test\": \"");
			strbuf_add_json_escaped(&sb, r[i].test, strlen(r[i].test));
			strbuf_addf(&sb,
				    "\", \"n_prompt\": %d, \"n_gen\": %d, \"n_depth\": %d, "
				    "\"t_s_mean\": %.3f, \"t_s_sd\": %.3f, \"t_s_cpu\": %.3f, "
				    "\"model_file\": \"",
				    r[i].n_prompt, r[i].n_gen, r[i].depth, r[i].mean, r[i].sd,
				    r[i].cpu_mean);
			strbuf_add_json_escaped(&sb, path, strlen(path));
			strbuf_addstr(&sb, "\", \"model_type\": \"");
			strbuf_add_json_escaped(&sb, in->type_name, strlen(in->type_name));
			strbuf_addf(&sb,
				    "\", \"model_bytes\": %llu, \"n_params\": %llu, "
				    "\"threads\": %d, \"backend\": \"%s\", \"device\": \"",
				    (unsigned long long)in->file_bytes,
				    (unsigned long long)in->n_params, in->n_threads, in->backend);
			strbuf_add_json_escaped(&sb, in->device, strlen(in->device));
			strbuf_addf(&sb,
				    "\", \"kv_type\": \"%s\", "
				    "\"kv_bytes\": %llu, \"repacked_bytes\": %llu, "
				    "\"n_expert\": %d, \"n_expert_used\": %d, "
				    "\"active_weight_bytes\": %llu, \"bandwidth_bytes_s\": %.0f, "
				    "\"bandwidth_run_bytes_s\": %.0f, \"bandwidth_probes\": %d, ",
				    kv_type_name(in->kv_type), (unsigned long long)in->kv_bytes,
				    (unsigned long long)in->repacked_bytes, in->n_expert,
				    in->n_expert_used, (unsigned long long)in->decode_bytes, bw,
				    bb->now, bb->probes);
			if (r[i].roofline >= 0 && r[i].in_cache)
				strbuf_addf(
					&sb,
					"\"bytes_per_token\": %.0f, \"roofline_fraction\": null, "
					"\"in_cache\": true, ",
					r[i].bytes_per_tok);
			else if (r[i].roofline >= 0)
				strbuf_addf(
					&sb,
					"\"bytes_per_token\": %.0f, \"roofline_fraction\": %.4f, ",
					r[i].bytes_per_tok, r[i].roofline);
			else
				strbuf_addstr(&sb, "\"roofline_fraction\": null, ");
			strbuf_addf(&sb, "\"peak_rss_bytes\": %llu}%s\n", (unsigned long long)peak,
				    i + 1 < nr ? "," : "");
		}
		strbuf_addstr(&sb, "]\n");
		fputs(sb.buf, stdout);
		strbuf_release(&sb);
		return;
	}
	if (f == FMT_CSV) {
		printf("test,n_prompt,n_gen,n_depth,t_s_mean,t_s_sd,t_s_cpu,model_file,model_type,model_bytes,"
		       "n_params,threads,backend,bandwidth_bytes_s,roofline_fraction,peak_rss_bytes,"
		       "bandwidth_run_bytes_s,bandwidth_probes\n");
		for (int i = 0; i < nr; i++) {
			printf("%s,%d,%d,%d,%.3f,%.3f,%.3f,\"%s\",%s,%llu,%llu,%d,%s,%.0f,",
			       r[i].test, r[i].n_prompt, r[i].n_gen, r[i].depth, r[i].mean, r[i].sd,
			       r[i].cpu_mean, path, in->type_name,
			       (unsigned long long)in->file_bytes, (unsigned long long)in->n_params,
			       in->n_threads, in->backend, bw);
			if (r[i].roofline >= 0 && !r[i].in_cache)
				printf("%.4f", r[i].roofline);
			printf(",%llu,%.0f,%d\n", (unsigned long long)peak, bb->now, bb->probes);
		}
		return;
	}
	printf("| model | size | params | type | backend | threads | test | t/s | t/s by CPU time "
	       "| roofline |\n");
	printf("| --- | ---: | ---: | --- | --- | ---: | --- | ---: | ---: | ---: |\n");
	for (int i = 0; i < nr; i++) {
		char roof[32] = "";
		if (r[i].roofline >= 0)
			snprintf(roof, sizeof(roof), r[i].in_cache ? "in cache" : "%.0f%%",
				 r[i].roofline * 100);
		printf("| %s | %s | %.2f M | %s | %s | %d | %s | %.2f ± %.2f | %.2f | %s |\n",
		       in->name, sz, (double)in->n_params / 1e6, in->type_name, in->backend,
		       in->n_threads, r[i].test, r[i].mean, r[i].sd, r[i].cpu_mean, roof);
	}
	if (in->device[0])
		printf("\nbackend %s: %s (the roofline needs the device's own bandwidth, which "
		       "is not measured)\n",
		       in->backend, in->device);
	if (bb->probes > 1)
		printf("\nmemory read bandwidth: %.1f GB/s (%d threads; the best of this CPU's last "
		       "%d probes, this run's %.1f GB/s)\n",
		       bw / 1e9, in->n_threads, bb->probes, bb->now / 1e9);
	else
		printf("\nmemory read bandwidth: %.1f GB/s (%d threads)\n", bw / 1e9,
		       in->n_threads);
	if (in->n_expert) {
		char act[32], all[32];
		format_size(act, sizeof(act), in->decode_bytes);
		format_size(all, sizeof(all), in->weight_bytes);
		printf("mixture of experts: %d of %d experts per token (%s each); active weights "
		       "%s per token of %s\n",
		       in->n_expert_used, in->n_expert,
		       format_size(sz, sizeof(sz), in->expert_bytes), act, all);
	}
	for (int i = 0; i < nr; i++)
		if (r[i].roofline >= 0 && r[i].in_cache)
			printf("%s: %.1f MB read per token fit in the CPU caches, so main memory's "
			       "bandwidth does not bound it: no roofline\n",
			       r[i].test, r[i].bytes_per_tok / 1e6);
		else if (r[i].roofline >= 0)
			printf("%s: %.1f MB read per token, roofline %.1f t/s, reached %.0f%%\n",
			       r[i].test, r[i].bytes_per_tok / 1e6, bw / r[i].bytes_per_tok,
			       r[i].roofline * 100);
	uint64_t target = in->file_bytes + in->kv_bytes + scratch + ((uint64_t)64 << 20);
	char tg[32], sc[32];
	format_size(tg, sizeof(tg), target);
	format_size(sc, sizeof(sc), scratch);
	printf("peak RSS: %s (file + KV cache %s + activations for %d-token batches %s + 64 "
	       "MiB = %s: %s)\n",
	       rss, kv, in->n_batch, sc, tg, peak <= target ? "within" : "OVER");
	if (in->repacked_bytes) {
		char rp[32];
		format_size(rp, sizeof(rp), in->repacked_bytes);
		printf("repacked at load: %s of weights copied into the kernels' layout or "
		       "2 MiB pages (their file pages released; --no-repack keeps the file's)\n",
		       rp);
	}
}

int bench_model(int argc, char **argv, struct config *cfg)
{
	static const char *const on_off[] = { "on", "off", NULL };
	static const char *const kv_types[] = { "f16", "f32", NULL };
	static const char *const formats[] = { "md", "json", "csv", NULL };
	int n_prompt = 512, n_gen = 128, reps = 5, depth = 0;
	int f = FMT_MD, kvt = KV_F16, profile = 0, off = 0, no_repack = 0, moe_per_token = 0;
	const struct opt_spec opts[] = {
		{ "--n-prompt", "-p", OPT_INT, &n_prompt, 0, 1 << 20, NULL },
		{ "--n-gen", "-n", OPT_INT, &n_gen, 0, 1 << 20, NULL },
		{ "--repetitions", "-r", OPT_INT, &reps, 1, 1000, NULL },
		{ "--depth", "-d", OPT_INT, &depth, 0, 1 << 24, NULL },
		{ "--profile", NULL, OPT_FLAG, &profile, 0, 0, NULL },
		{ "--readahead", NULL, OPT_CHOICE, &off, 0, 0, on_off },
		{ "--no-repack", NULL, OPT_FLAG, &no_repack, 0, 0, NULL },
		{ "--no-moe-group", NULL, OPT_FLAG, &moe_per_token, 0, 0, NULL },
		{ "--kv-type", NULL, OPT_CHOICE, &kvt, 0, 0, kv_types },
		{ "--format", "-o", OPT_CHOICE, &f, 0, 0, formats },
		{ NULL, NULL, 0, NULL, 0, 0, NULL },
	};
	int parsed = options_parse(argc, argv, opts, usage, "bench", "palaver bench --help", cfg);
	if (parsed)
		return parsed > 0 ? EXIT_OK : EXIT_USAGE;
	if (no_repack)
		cfg->repack = 0;
	const char *path = cfg->model; /* -m and -t, as the other commands take them */
	int threads = cfg->threads;
	if (!path || !*path) {
		return report_usage("bench: -m FILE is required (see 'palaver bench --help')");
	}
	if (!n_prompt && !n_gen) {
		return report_usage("bench: nothing to do with -p 0 and -n 0");
	}
	int nth = threads                             ? threads
		  : sysconf(_SC_NPROCESSORS_ONLN) > 0 ? (int)sysconf(_SC_NPROCESSORS_ONLN)
						      : 1;
	struct bench_bandwidth bb;
	bench_bandwidth(nth, &bb);
	double bw = bb.best;

	struct model_params mp;
	model_params_default(&mp);
	mp.n_threads = nth;
	mp.kv_type = (enum kv_type)kvt;
	mp.readahead = !off;
	mp.repack = cfg ? cfg->repack : 1;
	mp.backend = model_backend_named(config_backend_name(cfg->backend));
	mp.moe_per_token = moe_per_token;
	mp.n_batch = cfg->batch_size;
	int need = depth + (n_prompt > n_gen ? n_prompt : n_gen);
	mp.n_ctx = need;
	struct model *m = model_load(path, &mp);
	if (!m) {
		return report_failure(EXIT_RUNTIME);
	}
	if (model_warning(m))
		fprintf(stderr, "palaver: warning: %s\n", model_warning(m));
	const struct model_info *in = model_info(m);
	int rc = EXIT_RUNTIME;
	int32_t *toks =
		try_alloc_array((size_t)(depth > n_prompt ? depth : n_prompt) + 1, sizeof(int32_t));
	float *logits = try_alloc_array((size_t)in->n_vocab, sizeof(float));
	double *times = xcalloc((size_t)reps, sizeof(double));
	struct result res[2];
	int nr = 0;
	if (!toks || !logits) {
		report("out of memory");
		goto out;
	}
	if (depth > 0) {
		for (int i = 0; i < depth; i++)
			toks[i] = bench_rand_token(in->n_vocab);
		if (model_forward(m, toks, depth, 0, NULL, 0) < 0)
			goto fail;
	}
	for (int test = 0; test < 2; test++) {
		int np = test == 0 ? n_prompt : 0, ng = test == 1 ? n_gen : 0;
		if (!np && !ng)
			continue;
		/* warm-up: page in weights, train branch predictors, wake the pool */
		if (run_once(m, depth, np, ng ? 1 : 0, toks, logits, NULL) < 0)
			goto fail;
		model_profile_enable(m, profile);
		double cpu_total = 0;
		for (int r = 0; r < reps; r++) {
			double cpu, s = run_once(m, depth, np, ng, toks, logits, &cpu);
			if (s < 0)
				goto fail;
			times[r] = (np + ng) / s;
			cpu_total += cpu;
		}
		if (profile)
			print_profile(m, np ? "pp" : "tg", np + ng);
		model_profile_enable(m, 0);
		struct result *x = &res[nr++];
		memset(x, 0, sizeof(*x));
		snprintf(x->test, sizeof(x->test), "%s%d", np ? "pp" : "tg", np ? np : ng);
		if (depth)
			snprintf(x->test + strlen(x->test), sizeof(x->test) - strlen(x->test),
				 " @ d%d", depth);
		x->n_prompt = np;
		x->n_gen = ng;
		x->depth = depth;
		bench_mean_sd(times, reps, &x->mean, &x->sd);
		x->cpu_mean =
			cpu_total > 0 ? (double)(np + ng) * reps / (cpu_total / in->n_threads) : 0;
		x->roofline = -1;
		if (ng) {
			/* weights + the KV cache each token reads, averaged over the run */
			double kv = 0;
			for (int i = 0; i < ng; i++)
				kv += (double)model_kv_read_bytes(m, depth + i);
			x->bytes_per_tok = (double)in->decode_bytes + kv / ng;
			/* the roofline is the host memory's: a GPU's own bandwidth
			 * is not measured, so none is claimed there */
			if (!in->device[0]) {
				/* the bandwidth is by CPU time: so is the rate it bounds */
				double tps = x->cpu_mean > 0 ? x->cpu_mean : x->mean;
				x->roofline = bw > 0 ? tps / (bw / x->bytes_per_tok) : 0;
				/* above 100% the weights came from a cache, not from
				 * memory: main memory's bandwidth bounds nothing then.
				 * The cache's size is no test: a VM reports the host's
				 * (508 MiB of L3 on the development machine, where one
				 * core sees 32). */
				x->in_cache = x->roofline > 1.0;
			}
		}
	}
	struct model_memory mm;
	if (model_memory_estimate(path, &mp, &mm) < 0)
		mm.scratch = 0; /* the file loaded: cannot fail, but the line stays honest */
	print_results((enum fmt)f, in, path, res, nr, &bb, rss_peak(), mm.scratch);
	rc = EXIT_OK;
	goto out;
fail:
	report("%s", error_message());
out:
	free(times);
	free(toks);
	free(logits);
	model_free(m);
	return rc;
}
