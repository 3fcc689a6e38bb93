/* palaver bench --cancel / --reuse: cancellation latency and the second turn with and without prefix reuse. */
#include "bench.h"
#include "options.h"
#include "config.h"
#include "engine.h"
#include "report.h"
#include "strbuf.h"
#include "util.h"
#include "xalloc.h"

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char usage[] =
	"usage: palaver bench --cancel [-m FILE] [--trials N] [--prompt N] [options]\n"
	"       palaver bench --reuse [-m FILE] [--trials N] [--prompt N] [options]\n"
	"\n"
	"--cancel: request a cancel at random points during prefill (a prompt of\n"
	"  --prompt tokens, default 512) and during decode, and report the time from\n"
	"  engine_cancel() to the DONE event (p50, p99, max in ms).\n"
	"--reuse: a two-turn conversation (first message of about --prompt tokens,\n"
	"  a 32-token reply, a short follow-up); report the second turn's prefill\n"
	"  and time to first token with prefix reuse and with the whole prompt\n"
	"  prefilled again.\n"
	"--trials N: trials per phase (default 20 for --cancel, 3 for --reuse).\n"
	"Also takes -m, -t, --ctx, --batch-size and the other common options.\n";

static int wait_event(struct engine *e, struct engine_event *ev)
{
	while (!engine_next_event(e, ev)) {
		struct pollfd p = { engine_wakeup_fd(e), POLLIN, 0 };
		poll(&p, 1, 1000);
	}
	return ev->type;
}

/* Drain until DONE or ERROR; *done gets it (free it).  -1 on ERROR (printed). */
static int wait_done(struct engine *e, struct engine_event *done)
{
	for (;;) {
		int t = wait_event(e, done);
		if (t == ENGINE_EV_DONE)
			return 0;
		if (t == ENGINE_EV_ERROR) {
			report("%s", done->text);
			engine_event_free(done);
			return -1;
		}
		engine_event_free(done);
	}
}

/* Submit and wait for DONE; -1 after printing the error. */
static int run_request(struct engine *e, const struct engine_request *rq, struct engine_event *done)
{
	if (engine_submit(e, rq) < 0) {
		report("%s", error_message());
		return -1;
	}
	return wait_done(e, done);
}

static struct engine *open_engine(const struct config *cfg)
{
	struct engine_config ec;
	memset(&ec, 0, sizeof(ec));
	ec.model_path = cfg->model;
	ec.n_threads = cfg->threads;
	ec.n_ctx = cfg->ctx;
	ec.n_batch = cfg->batch_size;
	ec.chat_template = "none";
	ec.overflow = ENGINE_OVERFLOW_STOP;
	ec.max_buffered_tokens = 1024;
	struct engine *e = engine_open(&ec);
	if (!e) {
		report("%s", error_message());
		return NULL;
	}
	for (;;) {
		struct engine_event ev;
		int t = wait_event(e, &ev);
		if (t == ENGINE_EV_ERROR)
			report("%s", ev.text);
		engine_event_free(&ev);
		if (t == ENGINE_EV_READY)
			return e;
		if (t == ENGINE_EV_ERROR) {
			engine_close(e);
			return NULL;
		}
	}
}

static void greedy(struct engine_request *rq)
{
	memset(rq, 0, sizeof(*rq));
	rq->sampling.temperature = 0;
	rq->sampling.top_p = 1;
	rq->sampling.typical_p = 1;
	rq->sampling.repeat_penalty = 1;
}

static void print_latency(const char *phase, double *v, int n, int missed)
{
	if (!n) {
		printf("%-8s no cancel landed (%d finished first)\n", phase, missed);
		return;
	}
	bench_sort(v, n);
	printf("%-8s n=%-3d p50 %7.2f ms   p99 %7.2f ms   max %7.2f ms", phase, n,
	       bench_percentile(v, n, 50), bench_percentile(v, n, 99), v[n - 1]);
	if (missed)
		printf("   (%d finished before the cancel)", missed);
	printf("\n");
}

/* One cancelled request; *lat gets the ms from cancel to DONE.  1 when the
 * cancel landed, 0 when the request ended first, -1 on error. */
static int cancel_once(struct engine *e, const struct engine_request *rq, double delay_ms,
		       int after_first_token, double *lat)
{
	struct engine_event ev;
	if (engine_submit(e, rq) < 0) {
		report("%s", error_message());
		return -1;
	}
	if (after_first_token) {
		for (;;) {
			int t = wait_event(e, &ev);
			engine_event_free(&ev);
			if (t == ENGINE_EV_TOKEN)
				break;
			if (t == ENGINE_EV_DONE || t == ENGINE_EV_ERROR)
				return t == ENGINE_EV_DONE ? 0 : -1;
		}
	}
	usleep((useconds_t)(delay_ms * 1000));
	double t0 = time_now_ms();
	engine_cancel(e);
	if (wait_done(e, &ev) < 0)
		return -1;
	*lat = time_now_ms() - t0;
	int landed = ev.stats.stop_reason == ENGINE_STOP_CANCELLED;
	engine_event_free(&ev);
	return landed;
}

/* trials cancels at random points up to max_ms into the request (or into
 * generation, decode); the latencies of those that landed into lat[*n],
 * the others counted in *missed.  0, or -1 on error. */
static int cancel_trials(struct engine *e, const struct engine_request *rq, int trials,
			 double max_ms, int decode, double *lat, int *n, int *missed, uint64_t *rng)
{
	for (int t = 0; t < trials; t++) {
		double ms;
		int r = cancel_once(e, rq, max_ms * (double)(bench_rng(rng) % 1000) / 1000.0,
				    decode, &ms);
		if (r < 0)
			return -1;
		if (r)
			lat[(*n)++] = ms;
		else
			(*missed)++;
	}
	return 0;
}

static int bench_cancel(const struct config *cfg, int trials, int n_prompt)
{
	struct engine *e = open_engine(cfg);
	if (!e)
		return EXIT_RUNTIME;
	const struct engine_info *in = engine_info(e);
	if (n_prompt > in->n_ctx - 64)
		n_prompt = in->n_ctx - 64;
	if (n_prompt < 8) {
		report("the context of %d tokens is too small", in->n_ctx);
		engine_close(e);
		return EXIT_USAGE;
	}
	int32_t *toks = xcalloc((size_t)n_prompt, sizeof(*toks));
	double *pre = xcalloc((size_t)trials, sizeof(double));
	double *dec = xcalloc((size_t)trials, sizeof(double));
	uint64_t s = 0x9E3779B97F4A7C15ull;
	int n_pre = 0, n_dec = 0, miss_pre = 0, miss_dec = 0, rc = EXIT_OK;
	struct engine_request rq;
	struct engine_event ev;

	/* how long one full prefill takes, to spread the cancel points over it */
	for (int i = 0; i < n_prompt; i++)
		toks[i] = (int32_t)(3 + bench_rng(&s) % (uint64_t)(in->n_vocab - 3));
	greedy(&rq);
	rq.tokens = toks;
	rq.n_tokens = n_prompt;
	rq.max_tokens = 1;
	rq.no_reuse = 1;
	if (run_request(e, &rq, &ev) < 0) {
		rc = EXIT_RUNTIME;
		goto out;
	}
	double prefill_ms = ev.stats.prefill_ms;
	engine_event_free(&ev);
	printf("model %s (%s), %d threads, context %d; prefill of %d tokens: %.1f ms\n", in->name,
	       in->type_name, in->n_threads, in->n_ctx, n_prompt, prefill_ms);

	if (cancel_trials(e, &rq, trials, prefill_ms, 0, pre, &n_pre, &miss_pre, &s) < 0) {
		rc = EXIT_RUNTIME;
		goto out;
	}
	/* decode: a short prompt, generation until the context is full */
	rq.n_tokens = 16;
	rq.max_tokens = -1;
	rq.no_reuse = 0;
	if (cancel_trials(e, &rq, trials, 300, 1, dec, &n_dec, &miss_dec, &s) < 0) {
		rc = EXIT_RUNTIME;
		goto out;
	}
	printf("cancel latency, engine_cancel() to DONE:\n");
	print_latency("prefill", pre, n_pre, miss_pre);
	print_latency("decode", dec, n_dec, miss_dec);
out:
	free(toks);
	free(pre);
	free(dec);
	engine_close(e);
	return rc;
}

/* Deterministic English-ish text of n_words words, a sentence every 12 or so. */
static void make_text(struct strbuf *sb, int n_words, uint64_t seed)
{
	static const char *const words[] = {
		"the", "little", "dog",  "ran", "to",   "a",      "big",  "tree", "and",
		"saw", "bird",   "that", "was", "very", "happy",  "with", "her",  "friend",
		"in",  "park",   "one",  "day", "she",  "wanted", "play", "ball", "but",
		"it",  "too",    "high", "mom", "said", "let",    "us",   "go",
	};
	static const char *const seps[] = { " ", " ", " ", " ", " ", " ",
					    " ", " ", " ", " ", " ", ". " };
	const struct bench_words w = { words, sizeof(words) / sizeof(words[0]), seps,
				       sizeof(seps) / sizeof(seps[0]), 0 };
	uint64_t s = seed;
	bench_text(sb, &w, (size_t)n_words, (size_t)-1, &s);
	/* no trailing space: it would merge with the reply's first word when
	 * the second turn is tokenized, and cost the reuse of one token */
	strbuf_addch(sb, '.');
}

/* rq with its first n_messages, a reply of max_tokens, the cache reused or
 * not; DONE in *ev.  0, or -1 after saying why. */
static int turn(struct engine *e, struct engine_request *rq, int n_messages, int max_tokens,
		int no_reuse, struct engine_event *ev)
{
	rq->n_messages = n_messages;
	rq->max_tokens = max_tokens;
	rq->no_reuse = no_reuse;
	return run_request(e, rq, ev);
}

static int bench_reuse(const struct config *cfg, int trials, int n_prompt)
{
	struct engine *e = open_engine(cfg);
	if (!e)
		return EXIT_RUNTIME;
	const struct engine_info *in = engine_info(e);
	struct strbuf first = STRBUF_INIT;
	struct engine_message msgs[3];
	struct engine_request rq;
	struct engine_event ev;
	double *with = xcalloc((size_t)trials, sizeof(double));
	double *without = xcalloc((size_t)trials, sizeof(double));
	double *ttft_with = xcalloc((size_t)trials, sizeof(double));
	double *ttft_without = xcalloc((size_t)trials, sizeof(double));
	char *reply = NULL;
	int prompt2 = 0, reused = 0, prompt1 = 0, rc = EXIT_OK;

	if (n_prompt > in->n_ctx / 2)
		n_prompt = in->n_ctx / 2;
	/* about one token per word for English with a large vocabulary */
	make_text(&first, n_prompt, 42);
	msgs[0].role = ENGINE_ROLE_USER;
	msgs[0].text = first.buf;
	greedy(&rq);
	rq.messages = msgs;
	rq.n_messages = 1;
	rq.add_generation_prompt = 1;
	rq.max_tokens = 32;
	rq.no_reuse = 1;
	if (run_request(e, &rq, &ev) < 0) {
		rc = EXIT_RUNTIME;
		goto out;
	}
	prompt1 = ev.stats.prompt_tokens;
	reply = ev.text;
	ev.text = NULL;
	engine_event_free(&ev);
	msgs[1].role = ENGINE_ROLE_ASSISTANT;
	msgs[1].text = reply;
	msgs[2].role = ENGINE_ROLE_USER;
	msgs[2].text = "And what happened next?";
	rq.n_messages = 3;
	rq.max_tokens = 1;

	for (int t = 0; t < trials; t++) {
		/* without: the whole conversation again; then the cache put back
		 * where the first turn left it; with: only what is new */
		if (turn(e, &rq, 3, 1, 1, &ev) < 0)
			goto fail;
		without[t] = ev.stats.prefill_ms;
		ttft_without[t] = ev.stats.ttft_ms;
		engine_event_free(&ev);
		if (turn(e, &rq, 1, 32, 1, &ev) < 0)
			goto fail;
		engine_event_free(&ev);
		if (turn(e, &rq, 3, 1, 0, &ev) < 0)
			goto fail;
		with[t] = ev.stats.prefill_ms;
		ttft_with[t] = ev.stats.ttft_ms;
		prompt2 = ev.stats.prompt_tokens;
		reused = ev.stats.reused_tokens;
		engine_event_free(&ev);
	}
	bench_sort(with, trials);
	bench_sort(without, trials);
	bench_sort(ttft_with, trials);
	bench_sort(ttft_without, trials);
	printf("model %s (%s), %d threads; turn 1: %d prompt tokens + 32 generated\n", in->name,
	       in->type_name, in->n_threads, prompt1);
	printf("turn 2: %d prompt tokens, %d reused (%.1f%%), median of %d\n", prompt2, reused,
	       prompt2 ? 100.0 * reused / prompt2 : 0.0, trials);
	printf("  with reuse:    prefill %8.1f ms   time to first token %8.1f ms\n",
	       bench_percentile(with, trials, 50), bench_percentile(ttft_with, trials, 50));
	printf("  without reuse: prefill %8.1f ms   time to first token %8.1f ms\n",
	       bench_percentile(without, trials, 50), bench_percentile(ttft_without, trials, 50));
	if (bench_percentile(ttft_with, trials, 50) > 0)
		printf("  speed-up of the second turn: %.1fx\n",
		       bench_percentile(ttft_without, trials, 50) /
			       bench_percentile(ttft_with, trials, 50));
	goto out;
fail:
	rc = EXIT_RUNTIME;
out:
	free(reply);
	free(with);
	free(without);
	free(ttft_with);
	free(ttft_without);
	strbuf_release(&first);
	engine_close(e);
	return rc;
}

int bench_engine(int argc, char **argv, struct config *cfg)
{
	int cancel = 0, reuse = 0, trials = 0, n_prompt = 512;
	const struct opt_spec opts[] = {
		{ "--cancel", NULL, OPT_FLAG, &cancel, 0, 0, NULL },
		{ "--reuse", NULL, OPT_FLAG, &reuse, 0, 0, NULL },
		{ "--trials", NULL, OPT_INT, &trials, 1, 100000, NULL },
		{ "--prompt", NULL, OPT_INT, &n_prompt, 1, 100000, NULL },
		{ NULL, NULL, 0, NULL, 0, 0, NULL },
	};
	int parsed = options_parse(argc, argv, opts, usage, "bench",
				   "palaver bench --cancel --help", cfg);
	if (parsed)
		return parsed > 0 ? EXIT_OK : EXIT_USAGE;
	if (cancel == reuse) {
		return report_usage_with(usage, "give one of --cancel and --reuse");
	}
	if (!cfg->model || !*cfg->model) {
		return report_usage("no model configured; give one with -m FILE");
	}
	if (cancel)
		return bench_cancel(cfg, trials ? trials : 20, n_prompt);
	return bench_reuse(cfg, trials ? trials : 3, n_prompt);
}
