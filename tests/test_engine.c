/* engine: event order, cancellation, KV reuse, context policies, limits, backpressure, close. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <sys/stat.h>
#include <unistd.h>

#include "chat_template.h"
#include "engine.h"
#include "gguf.h"
#include "gguf_write.h"
#include "model.h"
#include "report.h"
#include "strbuf.h"
#include "testutil.h"
#include "tokenizer.h"
#include "util.h"

/* stories260K-once.json: the prompt, llama.cpp's greedy continuation and its text */
static const int32_t once_prompt[] = { 1, 403, 407, 261, 378 };
static const int32_t once_gen[] = {
	432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426, 338, 401, 396, 267, 337,
	410, 408, 419, 292, 411, 322, 265, 282, 295, 433, 426, 385, 328, 432, 358, 394,
	261, 370, 432, 352, 266, 268, 388, 426, 338, 391, 266, 267, 337, 335, 312, 432,
	398, 312, 286, 267, 414, 270, 333, 415, 426, 13,  438, 310, 439, 419, 357, 336,
};
static const char once_text[] =
	", there was a little girl named Lily. She loved to play outside in the park. One "
	"day, she saw a big, red ball. She wanted to play with it, but it was too high.\n"
	"Lily's mom said";

#define N_ONCE_PROMPT 5
#define N_ONCE_GEN 64

static void config_for(struct engine_config *c, int n_ctx)
{
	memset(c, 0, sizeof(*c));
	c->model_path = test_ref_path("models/stories260K.gguf");
	c->n_threads = 1;
	c->n_ctx = n_ctx;
	c->chat_template = "none";
	c->overflow = ENGINE_OVERFLOW_STOP;
}

static void greedy(struct engine_request *r, const int32_t *toks, int n, int max_tokens)
{
	memset(r, 0, sizeof(*r));
	r->tokens = toks;
	r->n_tokens = n;
	r->max_tokens = max_tokens;
	r->sampling.temperature = 0;
	r->sampling.top_p = 1;
	r->sampling.typical_p = 1;
	r->sampling.repeat_penalty = 1;
}

/* Wait (poll on the wakeup fd) for the next event; fails the test after 60 s. */
static void next(struct engine *e, struct engine_event *ev)
{
	double t0 = time_now_ms();
	while (!engine_next_event(e, ev)) {
		struct pollfd p = { engine_wakeup_fd(e), POLLIN, 0 };
		poll(&p, 1, 1000);
		if (time_now_ms() - t0 > 60000)
			fail_msg("no event from the engine in 60 s");
	}
}

/* Open and wait for READY; the load progress must come first. */
static struct engine *open_ready(const struct engine_config *c)
{
	struct engine *e = engine_open(c);
	struct engine_event ev;
	uint64_t last = 0, total = 0;
	assert_non_null(e);
	for (;;) {
		next(e, &ev);
		if (ev.type == ENGINE_EV_READY)
			break;
		if (ev.type == ENGINE_EV_ERROR)
			fail_msg("load failed: %s", ev.text);
		assert_int_equal(ev.type, ENGINE_EV_LOAD_PROGRESS);
		assert_true(ev.done <= ev.total);
		assert_true(ev.done >= last);
		last = ev.done;
		total = ev.total;
		engine_event_free(&ev);
	}
	/* the progress reached the end (the last one is never dropped: the
	 * queue is empty while loading) */
	assert_true(total > 0 && last == total);
	assert_non_null(engine_info(e));
	return e;
}

/* What one request produced. */
struct result {
	struct strbuf tokens; /* TOKEN texts joined */
	int n_token_events;
	int n_prefill;
	uint64_t last_prefill_done, prefill_total;
	int is_error;
	struct engine_event done; /* DONE or ERROR */
};

/* Collect events until DONE or ERROR, checking their order.  on_token (may
 * be NULL) runs after each TOKEN event. */
static void collect(struct engine *e, struct result *res,
		    void (*on_token)(struct engine *, struct result *))
{
	struct engine_event ev;
	memset(res, 0, sizeof(*res));
	strbuf_init(&res->tokens, 0);
	for (;;) {
		next(e, &ev);
		switch (ev.type) {
		case ENGINE_EV_PREFILL_PROGRESS:
			assert_int_equal(res->n_token_events, 0);
			assert_true(ev.done >= res->last_prefill_done);
			assert_true(ev.done <= ev.total);
			res->last_prefill_done = ev.done;
			res->prefill_total = ev.total;
			res->n_prefill++;
			break;
		case ENGINE_EV_TOKEN:
			assert_true(ev.len > 0);
			assert_int_equal(strlen(ev.text), ev.len);
			strbuf_add(&res->tokens, ev.text, ev.len);
			res->n_token_events++;
			if (on_token)
				on_token(e, res);
			break;
		case ENGINE_EV_DONE:
		case ENGINE_EV_ERROR:
			res->is_error = ev.type == ENGINE_EV_ERROR;
			res->done = ev;
			return;
		default: fail_msg("unexpected event %d during a request", ev.type);
		}
		engine_event_free(&ev);
	}
}

static void result_free(struct result *r)
{
	strbuf_release(&r->tokens);
	engine_event_free(&r->done);
}

static void test_events_and_text(void **state)
{
	(void)state;
	REQUIRE_REF();
	struct engine_config c;
	struct engine_request rq;
	struct result r;
	config_for(&c, 256);
	struct engine *e = open_ready(&c);
	const struct engine_info *in = engine_info(e);
	assert_int_equal(in->n_ctx, 256);
	assert_int_equal(in->n_vocab, 512);
	assert_string_equal(in->arch, "llama");
	assert_string_equal(in->chat_template, "none");

	greedy(&rq, once_prompt, N_ONCE_PROMPT, N_ONCE_GEN);
	assert_int_equal(engine_submit(e, &rq), 0);
	assert_int_equal(engine_submit(e, &rq), -1); /* one at a time */
	collect(e, &r, NULL);
	assert_false(r.is_error);
	assert_true(r.n_prefill >= 1);
	assert_int_equal(r.prefill_total, N_ONCE_PROMPT);
	assert_int_equal(r.last_prefill_done, N_ONCE_PROMPT);
	assert_string_equal(r.done.text, once_text);
	assert_string_equal(r.tokens.buf, once_text);
	assert_int_equal(r.done.len, strlen(once_text));
	const struct engine_stats *st = &r.done.stats;
	assert_int_equal(st->stop_reason, ENGINE_STOP_MAX_TOKENS);
	assert_int_equal(st->gen_tokens, N_ONCE_GEN);
	assert_int_equal(st->prompt_tokens, N_ONCE_PROMPT);
	assert_int_equal(st->reused_tokens, 0);
	assert_int_equal(st->n_ctx, 256);
	/* the last token is sampled, not run */
	assert_int_equal(st->n_ctx_used, N_ONCE_PROMPT + N_ONCE_GEN - 1);
	assert_true(st->ttft_ms > 0);
	assert_true(st->decode_ms > 0 && st->decode_tps > 0);
	assert_true(st->peak_rss > 0);
	assert_null(r.done.message);
	assert_string_equal(engine_stop_reason_name(st->stop_reason), "max_tokens");
	result_free(&r);
	engine_close(e);
}

/* Prompt + the first n generated tokens + extra. */
static int conv(int32_t *out, int n_gen, const int32_t *extra, int n_extra)
{
	int n = 0;
	for (int i = 0; i < N_ONCE_PROMPT; i++)
		out[n++] = once_prompt[i];
	for (int i = 0; i < n_gen; i++)
		out[n++] = once_gen[i];
	for (int i = 0; i < n_extra; i++)
		out[n++] = extra[i];
	return n;
}

static void run_greedy(struct engine *e, const int32_t *t, int n, int max, struct result *r)
{
	struct engine_request rq;
	greedy(&rq, t, n, max);
	assert_int_equal(engine_submit(e, &rq), 0);
	collect(e, r, NULL);
	assert_false(r->is_error);
}

static void test_kv_reuse(void **state)
{
	(void)state;
	REQUIRE_REF();
	struct engine_config c;
	struct result r;
	int32_t t[128];
	const int32_t more[] = { 13, 403, 407 };
	config_for(&c, 256);
	struct engine *e = open_ready(&c);

	/* turn 1: nothing cached; the cache ends with prompt + 7 of the 8 tokens */
	run_greedy(e, once_prompt, N_ONCE_PROMPT, 8, &r);
	assert_int_equal(r.done.stats.reused_tokens, 0);
	assert_int_equal(r.done.stats.n_ctx_used, N_ONCE_PROMPT + 7);
	result_free(&r);

	/* follow-up: the whole previous exchange is reused, only new tokens run */
	int n = conv(t, 8, more, 3);
	run_greedy(e, t, n, 4, &r);
	assert_int_equal(r.done.stats.prompt_tokens, n);
	assert_int_equal(r.done.stats.reused_tokens, N_ONCE_PROMPT + 7);
	assert_int_equal(r.last_prefill_done, n);
	result_free(&r);

	/* regenerate the same turn: everything but the last prompt token is reused */
	run_greedy(e, t, n, 4, &r);
	assert_int_equal(r.done.stats.reused_tokens, n - 1);
	result_free(&r);

	/* edit the last message: the shared prefix is reused */
	const int32_t other[] = { 13, 300, 301, 302 };
	int n2 = conv(t, 8, other, 4);
	run_greedy(e, t, n2, 4, &r);
	assert_int_equal(r.done.stats.reused_tokens, N_ONCE_PROMPT + 8 + 1);
	result_free(&r);

	/* the greedy continuation after reuse equals a fresh run's */
	run_greedy(e, once_prompt, N_ONCE_PROMPT, 16, &r);
	assert_int_equal(r.done.stats.reused_tokens, N_ONCE_PROMPT - 1);
	assert_int_equal(strncmp(r.done.text, once_text, r.done.len), 0);
	result_free(&r);
	engine_close(e);
}

static void cancel_after_first(struct engine *e, struct result *r)
{
	if (r->n_token_events == 3)
		engine_cancel(e);
}

static void test_cancel_decode(void **state)
{
	(void)state;
	REQUIRE_REF();
	struct engine_config c;
	struct engine_request rq;
	struct result r;
	config_for(&c, 2048);
	struct engine *e = open_ready(&c);
	greedy(&rq, once_prompt, N_ONCE_PROMPT, -1);
	assert_int_equal(engine_submit(e, &rq), 0);
	collect(e, &r, cancel_after_first);
	assert_false(r.is_error);
	assert_int_equal(r.done.stats.stop_reason, ENGINE_STOP_CANCELLED);
	/* stopped within a few tokens; the text so far is kept, all of it shown */
	assert_true(r.done.stats.gen_tokens >= 3 && r.done.stats.gen_tokens < 1000);
	assert_string_equal(r.done.text, r.tokens.buf);
	/* the reference covers N_ONCE_GEN tokens; on a busy machine the engine
	 * may run past them before the cancel lands */
	size_t cmp = r.done.len < strlen(once_text) ? r.done.len : strlen(once_text);
	assert_int_equal(strncmp(r.done.text, once_text, cmp), 0);
	result_free(&r);

	/* a cancel while idle does not touch the next request */
	engine_cancel(e);
	run_greedy(e, once_prompt, N_ONCE_PROMPT, 4, &r);
	assert_int_equal(r.done.stats.stop_reason, ENGINE_STOP_MAX_TOKENS);
	result_free(&r);
	engine_close(e);
}

static void test_cancel_prefill(void **state)
{
	(void)state;
	REQUIRE_REF();
	struct engine_config c;
	struct engine_request rq;
	struct engine_event ev;
	int32_t t[2000];
	config_for(&c, 2048);
	c.n_batch = 16;
	struct engine *e = open_ready(&c);
	t[0] = 1;
	for (int i = 1; i < 2000; i++)
		t[i] = 3 + (i * 7919) % 509;
	greedy(&rq, t, 2000, 4);
	assert_int_equal(engine_submit(e, &rq), 0);
	/* cancel as soon as the first chunk is done */
	uint64_t seen = 0;
	for (;;) {
		next(e, &ev);
		if (ev.type == ENGINE_EV_PREFILL_PROGRESS && ev.done > 0) {
			seen = ev.done;
			engine_cancel(e);
		}
		if (ev.type == ENGINE_EV_DONE)
			break;
		assert_int_not_equal(ev.type, ENGINE_EV_TOKEN);
		assert_int_not_equal(ev.type, ENGINE_EV_ERROR);
		engine_event_free(&ev);
	}
	assert_true(seen > 0);
	assert_int_equal(ev.stats.stop_reason, ENGINE_STOP_CANCELLED);
	assert_int_equal(ev.stats.gen_tokens, 0);
	assert_int_equal(ev.len, 0);
	/* stopped long before the end: the cache holds the chunks done */
	int held = ev.stats.n_ctx_used;
	assert_true(held >= (int)seen && held < 2000);
	engine_event_free(&ev);

	/* the chunks done are reused by the next request */
	struct result r;
	run_greedy(e, t, 2000, 1, &r);
	assert_int_equal(r.done.stats.reused_tokens, held);
	result_free(&r);
	engine_close(e);
}

static void test_policy_stop(void **state)
{
	(void)state;
	REQUIRE_REF();
	struct engine_config c;
	struct result r;
	int32_t t[64];
	config_for(&c, 32);
	struct engine *e = open_ready(&c);
	for (int i = 0; i < 64; i++)
		t[i] = i ? 300 + i : 1;

	/* refused before any work, with the numbers */
	struct engine_request rq;
	greedy(&rq, t, 32, 4);
	assert_int_equal(engine_submit(e, &rq), 0);
	collect(e, &r, NULL);
	assert_true(r.is_error);
	assert_int_equal(r.n_prefill, 0);
	assert_non_null(strstr(r.done.text, "32 tokens"));
	assert_non_null(strstr(r.done.text, "context of 32"));
	result_free(&r);

	/* 31 tokens fit: the first reply token fills the last cell, the second
	 * is sampled from it and cannot be stored */
	run_greedy(e, t, 31, 4, &r);
	assert_int_equal(r.done.stats.gen_tokens, 2);
	assert_int_equal(r.done.stats.stop_reason, ENGINE_STOP_CONTEXT_FULL);
	result_free(&r);

	/* generation until the context is full */
	run_greedy(e, once_prompt, N_ONCE_PROMPT, -1, &r);
	assert_int_equal(r.done.stats.stop_reason, ENGINE_STOP_CONTEXT_FULL);
	assert_int_equal(r.done.stats.n_ctx_used, 32);
	assert_int_equal(r.done.stats.gen_tokens, 32 - N_ONCE_PROMPT + 1);
	assert_int_equal(r.done.stats.shifts, 0);
	result_free(&r);
	engine_close(e);
}

static void test_policy_shift(void **state)
{
	(void)state;
	REQUIRE_REF();
	struct engine_config c;
	struct result r;
	config_for(&c, 32);
	c.overflow = ENGINE_OVERFLOW_SHIFT;
	c.keep = 4;
	struct engine *e = open_ready(&c);
	run_greedy(e, once_prompt, N_ONCE_PROMPT, 100, &r);
	assert_int_equal(r.done.stats.stop_reason, ENGINE_STOP_MAX_TOKENS);
	assert_int_equal(r.done.stats.gen_tokens, 100);
	/* 32 cells: keep 5 (BOS + 4), discard 13 each time */
	assert_true(r.done.stats.shifts >= 5);
	assert_true(r.done.stats.n_ctx_used <= 32);
	/* the text before the first shift is the unshifted continuation */
	assert_int_equal(strncmp(r.done.text, once_text, 40), 0);
	result_free(&r);
	engine_close(e);
}

/* Tokens of text as the "none" template tokenizes it (BOS, no control tokens). */
static int count_tokens(const char *text, int flags)
{
	struct gguf *g = gguf_open(test_ref_path("models/stories260K.gguf"));
	assert_non_null(g);
	struct tokenizer *t = tokenizer_open(g, 0);
	assert_non_null(t);
	int n = tokenizer_encode(t, text, strlen(text), flags, NULL, 0);
	tokenizer_free(t);
	gguf_close(g);
	return n < 0 ? -n : n;
}

static void chat(struct engine_request *r, const struct engine_message *m, int n, int max)
{
	greedy(r, NULL, 0, max);
	r->tokens = NULL;
	r->messages = m;
	r->n_messages = n;
	r->add_generation_prompt = 1;
}

static void test_messages(void **state)
{
	(void)state;
	REQUIRE_REF();
	struct engine_config c;
	struct engine_request rq;
	struct result r;
	config_for(&c, 256);
	struct engine *e = open_ready(&c);

	/* raw completion of one message: llama.cpp's continuation */
	struct engine_message once = { ENGINE_ROLE_USER, "Once upon a time" };
	chat(&rq, &once, 1, N_ONCE_GEN);
	assert_int_equal(engine_submit(e, &rq), 0);
	collect(e, &r, NULL);
	assert_int_equal(r.done.stats.prompt_tokens, N_ONCE_PROMPT);
	assert_string_equal(r.done.text, once_text);
	result_free(&r);

	/* the follow-up turn costs only its new tokens */
	struct engine_message conv2[3] = { { ENGINE_ROLE_USER, "Once upon a time" },
					   { ENGINE_ROLE_ASSISTANT, once_text },
					   { ENGINE_ROLE_USER, "The end." } };
	chat(&rq, conv2, 3, 4);
	assert_int_equal(engine_submit(e, &rq), 0);
	collect(e, &r, NULL);
	assert_true(r.done.stats.reused_tokens >= N_ONCE_PROMPT + N_ONCE_GEN - 8);
	assert_true(r.done.stats.prompt_tokens - r.done.stats.reused_tokens < 16);
	result_free(&r);

	/* control-token text typed by the user stays text */
	const char *sneaky = "Hello </s> world <s>";
	struct engine_message m = { ENGINE_ROLE_USER, sneaky };
	int plain = count_tokens(sneaky, TOKENIZE_ADD_BOS);
	int special = count_tokens(sneaky, TOKENIZE_ADD_BOS | TOKENIZE_PARSE_SPECIAL);
	assert_int_not_equal(plain, special);
	chat(&rq, &m, 1, 2);
	assert_int_equal(engine_submit(e, &rq), 0);
	collect(e, &r, NULL);
	assert_int_equal(r.done.stats.prompt_tokens, plain);
	result_free(&r);
	engine_close(e);
}

static void test_policy_drop_oldest(void **state)
{
	(void)state;
	REQUIRE_REF();
	struct engine_config c;
	struct engine_request rq;
	struct result r;
	const struct engine_message m[] = {
		{ ENGINE_ROLE_SYSTEM, "A story about a cat." },
		{ ENGINE_ROLE_USER, "Once upon a time there was a little girl named Lily." },
		{ ENGINE_ROLE_ASSISTANT, "She loved to play outside in the park with her dog." },
		{ ENGINE_ROLE_USER, "One day, she saw a big, red ball in the sky." },
		{ ENGINE_ROLE_ASSISTANT, "She wanted to play with it, but it was too high." },
		{ ENGINE_ROLE_USER, "Lily's mom said" },
	};
	config_for(&c, 64);
	c.overflow = ENGINE_OVERFLOW_DROP_OLDEST;
	struct engine *e = open_ready(&c);
	/* everything is about 60 tokens: with room for 8, the first turn goes */
	chat(&rq, m, 6, 8);
	assert_int_equal(engine_submit(e, &rq), 0);
	collect(e, &r, NULL);
	assert_false(r.is_error);
	assert_true(r.done.stats.dropped_turns >= 1);
	assert_true(r.done.stats.prompt_tokens + 8 <= 64);
	assert_int_equal(r.done.stats.gen_tokens, 8);
	int dropped = r.done.stats.dropped_turns;
	result_free(&r);
	/* what is left is the system prompt and the later turns, as rendered */
	struct strbuf kept = STRBUF_INIT;
	strbuf_addstr(&kept, m[0].text);
	for (int i = 1 + 2 * dropped; i < 6; i++)
		strbuf_addstr(&kept, m[i].text);
	int expect = count_tokens(kept.buf, TOKENIZE_ADD_BOS);
	strbuf_release(&kept);
	chat(&rq, m, 6, 8);
	assert_int_equal(engine_submit(e, &rq), 0);
	collect(e, &r, NULL);
	assert_int_equal(r.done.stats.prompt_tokens, expect);
	result_free(&r);

	/* the last message alone cannot fit: refused, nothing dropped silently */
	static char big[600];
	memset(big, 0, sizeof(big));
	for (int i = 0; i < 60; i++)
		strcat(big, "the cat. ");
	const struct engine_message m2[] = { { ENGINE_ROLE_SYSTEM, "A story." },
					     { ENGINE_ROLE_USER, big } };
	chat(&rq, m2, 2, 8);
	assert_int_equal(engine_submit(e, &rq), 0);
	collect(e, &r, NULL);
	assert_true(r.is_error);
	assert_non_null(strstr(r.done.text, "context of 64"));
	result_free(&r);
	engine_close(e);

	/* the stop policy keeps every turn: refused, or run in full */
	struct strbuf all = STRBUF_INIT;
	for (int i = 0; i < 6; i++)
		strbuf_addstr(&all, m[i].text);
	int full = count_tokens(all.buf, TOKENIZE_ADD_BOS);
	strbuf_release(&all);
	assert_true(full + 8 > 64);
	c.overflow = ENGINE_OVERFLOW_STOP;
	e = open_ready(&c);
	chat(&rq, m, 6, 8);
	assert_int_equal(engine_submit(e, &rq), 0);
	collect(e, &r, NULL);
	if (full + 1 > 64) {
		assert_true(r.is_error);
	} else {
		assert_false(r.is_error);
		assert_int_equal(r.done.stats.dropped_turns, 0);
		assert_int_equal(r.done.stats.prompt_tokens, full);
		assert_int_equal(r.done.stats.stop_reason, ENGINE_STOP_CONTEXT_FULL);
	}
	result_free(&r);
	engine_close(e);
}

/* The prompt length chat_template renders and tokenizes for m[0..n). */
static int template_tokens(enum chat_template_id id, const struct chat_message *m, size_t n)
{
	struct gguf *g = gguf_open(test_ref_path("models/stories260K.gguf"));
	assert_non_null(g);
	struct tokenizer *t = tokenizer_open(g, 0);
	assert_non_null(t);
	struct chat_prompt p = CHAT_PROMPT_INIT;
	struct chat_template_tokens tt = { "<s>", "</s>" };
	assert_int_equal(chat_template_render(id, m, n, 1, &tt, &p), 0);
	int k = chat_prompt_tokenize(&p, t, NULL, 0);
	chat_prompt_release(&p);
	tokenizer_free(t);
	gguf_close(g);
	return k < 0 ? -k : k;
}

static void test_templates(void **state)
{
	(void)state;
	REQUIRE_REF();
	struct engine_config c;
	struct engine_request rq;
	struct result r;

	/* auto on a model without a template: raw completion, said so */
	config_for(&c, 256);
	c.chat_template = "auto";
	struct engine *e = open_ready(&c);
	assert_string_equal(engine_info(e)->chat_template, "none");
	assert_int_equal(engine_info(e)->template_defaulted, 1);
	engine_close(e);

	/* a named template: the prompt is what the template renders, with the
	 * template's </s><s> as tokens and the user's "</s>" as text */
	c.chat_template = "llama2";
	e = open_ready(&c);
	assert_string_equal(engine_info(e)->chat_template, "llama2");
	assert_int_equal(engine_info(e)->template_defaulted, 0);
	const struct engine_message m[] = { { ENGINE_ROLE_SYSTEM, "Be brief." },
					    { ENGINE_ROLE_USER, "Hi </s> there" },
					    { ENGINE_ROLE_ASSISTANT, "Hello." },
					    { ENGINE_ROLE_USER, "Tell me a story." } };
	const struct chat_message cm[] = { { CHAT_ROLE_SYSTEM, "Be brief." },
					   { CHAT_ROLE_USER, "Hi </s> there" },
					   { CHAT_ROLE_ASSISTANT, "Hello." },
					   { CHAT_ROLE_USER, "Tell me a story." } };
	chat(&rq, m, 4, 4);
	assert_int_equal(engine_submit(e, &rq), 0);
	collect(e, &r, NULL);
	assert_false(r.is_error);
	assert_int_equal(r.done.stats.prompt_tokens, template_tokens(CHAT_TEMPLATE_LLAMA2, cm, 4));
	result_free(&r);
	engine_close(e);

	/* an unknown name is a load error naming it */
	c.chat_template = "no-such-template";
	e = engine_open(&c);
	struct engine_event ev;
	do {
		next(e, &ev);
		if (ev.type != ENGINE_EV_ERROR)
			engine_event_free(&ev);
	} while (ev.type != ENGINE_EV_ERROR);
	assert_non_null(strstr(ev.text, "no-such-template"));
	engine_event_free(&ev);
	engine_close(e);
}

/* A template that opens the thinking block (DeepSeek-R1's way): everything
 * the model writes is thinking until the block is closed, and
 * engine_stop_thinking() closes it so that the model answers. */
static void test_reasoning(void **state)
{
	(void)state;
	REQUIRE_REF();
	char path[] = "/tmp/palaver-think-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	const char tmpl[] = "{% for m in messages %}{{ m.content }}{% endfor %}"
			    "{% if add_generation_prompt %}<think>\n{% endif %}";
	assert_int_equal(write(fd, tmpl, sizeof(tmpl) - 1), (ssize_t)(sizeof(tmpl) - 1));
	close(fd);
	struct engine_config c;
	config_for(&c, 256);
	c.chat_template = path;
	/* the worker waits for the reader: the stop after 6 pieces read comes
	 * while it still thinks (with 256 queued it could finish all 24
	 * pieces first on a busy machine, and the test failed now and then) */
	c.max_buffered_tokens = 1;
	struct engine *e = open_ready(&c);
	assert_string_equal(engine_info(e)->chat_template, "jinja");
	const struct engine_message m[] = { { ENGINE_ROLE_USER, "Once upon a time" } };
	struct engine_request rq;
	for (int stop_after = 0; stop_after <= 6; stop_after += 6) {
		chat(&rq, m, 1, 24);
		assert_int_equal(engine_submit(e, &rq), 0);
		struct strbuf thought = STRBUF_INIT, answer = STRBUF_INIT;
		int n_thought = 0, answered = 0;
		struct engine_event ev;
		for (;;) {
			next(e, &ev);
			if (ev.type == ENGINE_EV_DONE)
				break;
			assert_int_not_equal(ev.type, ENGINE_EV_ERROR);
			if (ev.type == ENGINE_EV_TOKEN) {
				/* no marker ever shows, and thinking never follows the answer */
				assert_null(strstr(ev.text, "think>"));
				if (ev.reasoning) {
					assert_false(answered);
					strbuf_add(&thought, ev.text, ev.len);
					if (++n_thought == stop_after)
						engine_stop_thinking(e);
				} else {
					answered = 1;
					strbuf_add(&answer, ev.text, ev.len);
				}
			}
			engine_event_free(&ev);
		}
		assert_true(thought.len > 0);
		strbuf_rtrim(&thought);
		assert_non_null(ev.reasoning_text);
		assert_string_equal(ev.reasoning_text, thought.buf);
		assert_string_equal(ev.text, answer.buf);
		assert_true(ev.stats.reasoning_tokens > 0);
		if (!stop_after) {
			/* never closed: all of it is thinking */
			assert_int_equal(answer.len, 0);
			assert_int_equal(ev.stats.reasoning_tokens, ev.stats.gen_tokens);
		} else {
			/* closed after a few pieces: the rest is the answer */
			assert_true(answer.len > 0);
			assert_true(ev.stats.reasoning_tokens < ev.stats.gen_tokens);
		}
		engine_event_free(&ev);
		strbuf_release(&thought);
		strbuf_release(&answer);
	}
	engine_close(e);
	unlink(path);
}

static void test_determinism(void **state)
{
	(void)state;
	REQUIRE_REF();
	struct engine_config c;
	struct engine_request rq;
	struct result r[3];
	config_for(&c, 256);
	for (int k = 0; k < 3; k++) {
		struct engine *e = open_ready(&c);
		greedy(&rq, once_prompt, N_ONCE_PROMPT, 48);
		rq.sampling.temperature = 0.9f;
		rq.sampling.top_k = 40;
		rq.sampling.top_p = 0.95f;
		rq.sampling.seed = k < 2 ? 1234 : 99;
		assert_int_equal(engine_submit(e, &rq), 0);
		collect(e, &r[k], NULL);
		engine_close(e);
	}
	assert_string_equal(r[0].done.text, r[1].done.text);
	assert_string_not_equal(r[0].done.text, r[2].done.text);
	for (int k = 0; k < 3; k++)
		result_free(&r[k]);
}

/* Ends with the longest proper prefix of stop that it ends with, or 0. */
static size_t tail_prefix(const char *s, const char *stop)
{
	size_t n = strlen(s), sl = strlen(stop);
	for (size_t k = sl - 1; k > 0; k--)
		if (k <= n && !memcmp(s + n - k, stop, k))
			return k;
	return 0;
}

static struct strbuf seen_tokens = STRBUF_INIT;
static const char *watched_stop;

/* After every TOKEN: no stop string shown, nor its start at the end. */
static void check_no_leak(struct engine *e, struct result *r)
{
	(void)e;
	assert_null(strstr(r->tokens.buf, watched_stop));
	assert_int_equal(tail_prefix(r->tokens.buf, watched_stop), 0);
	strbuf_reset(&seen_tokens);
}

static void test_stop_strings(void **state)
{
	(void)state;
	REQUIRE_REF();
	struct engine_config c;
	struct engine_request rq;
	struct result r;
	config_for(&c, 256);
	struct engine *e = open_ready(&c);

	/* "girl named" spans tokens: cut before it, nothing of it shown */
	greedy(&rq, once_prompt, N_ONCE_PROMPT, N_ONCE_GEN);
	rq.stop[0] = "zzz";
	rq.stop[1] = "girl named";
	rq.n_stop = 2;
	watched_stop = "girl named";
	assert_int_equal(engine_submit(e, &rq), 0);
	collect(e, &r, check_no_leak);
	assert_int_equal(r.done.stats.stop_reason, ENGINE_STOP_STOP_STRING);
	assert_string_equal(r.done.text, ", there was a little ");
	assert_string_equal(r.tokens.buf, r.done.text);
	result_free(&r);

	/* a prefix that never completes is held, then shown in full */
	greedy(&rq, once_prompt, N_ONCE_PROMPT, N_ONCE_GEN);
	rq.stop[0] = "little boy";
	rq.n_stop = 1;
	assert_int_equal(engine_submit(e, &rq), 0);
	collect(e, &r, NULL);
	assert_int_equal(r.done.stats.stop_reason, ENGINE_STOP_MAX_TOKENS);
	assert_string_equal(r.done.text, once_text);
	assert_string_equal(r.tokens.buf, once_text);
	result_free(&r);

	/* a stop string at the very start of the reply: empty reply */
	greedy(&rq, once_prompt, N_ONCE_PROMPT, N_ONCE_GEN);
	rq.stop[0] = ",";
	rq.n_stop = 1;
	assert_int_equal(engine_submit(e, &rq), 0);
	collect(e, &r, NULL);
	assert_int_equal(r.done.stats.stop_reason, ENGINE_STOP_STOP_STRING);
	assert_int_equal(r.done.len, 0);
	assert_int_equal(r.n_token_events, 0);
	result_free(&r);
	strbuf_release(&seen_tokens);
	engine_close(e);
}

static void test_backpressure(void **state)
{
	(void)state;
	REQUIRE_REF();
	struct engine_config c;
	struct engine_request rq;
	struct engine_event ev;
	config_for(&c, 256);
	c.max_buffered_tokens = 4;
	struct engine *e = open_ready(&c);
	greedy(&rq, once_prompt, N_ONCE_PROMPT, N_ONCE_GEN);
	assert_int_equal(engine_submit(e, &rq), 0);
	/* Do not drain for a second: the engine must stop at the bound and
	 * wait.  (Counting the events found after the pause is racy: the engine
	 * refills a slot for each one taken, and a consumer descheduled while
	 * draining sees many more.)  The reply's decode time tells instead: held
	 * at the bound it lasts past the pause; an unbounded queue lets the 64
	 * tokens of this 260K-parameter model finish in milliseconds. */
	usleep(1000 * 1000);
	struct strbuf text = STRBUF_INIT;
	int n_events = 0;
	for (;;) {
		next(e, &ev);
		n_events++;
		if (ev.type == ENGINE_EV_TOKEN)
			strbuf_add(&text, ev.text, ev.len);
		if (ev.type == ENGINE_EV_DONE)
			break;
		engine_event_free(&ev);
	}
	/* nothing was lost */
	assert_string_equal(text.buf, once_text);
	assert_string_equal(ev.text, once_text);
	assert_true(n_events >= N_ONCE_GEN / 2);
	assert_true(ev.stats.decode_ms >= 900);
	engine_event_free(&ev);
	strbuf_release(&text);
	engine_close(e);
}

static void test_limits(void **state)
{
	(void)state;
	REQUIRE_REF();
	struct engine_config c;
	struct engine_event ev;
	struct result r;

	/* strict memory limit: refused with the numbers */
	config_for(&c, 2048);
	c.memory_limit = 4096;
	c.memory_strict = 1;
	struct engine *e = engine_open(&c);
	assert_non_null(e);
	do {
		next(e, &ev);
		if (ev.type != ENGINE_EV_ERROR)
			engine_event_free(&ev);
	} while (ev.type != ENGINE_EV_ERROR);
	assert_non_null(strstr(ev.text, "memory limit of 4.00 KiB"));
	assert_non_null(strstr(ev.text, "KV cache"));
	engine_event_free(&ev);
	struct engine_request rq;
	greedy(&rq, once_prompt, N_ONCE_PROMPT, 4);
	assert_int_equal(engine_submit(e, &rq), -1);
	engine_close(e);

	/* warn: a WARNING, then it loads */
	c.memory_strict = 0;
	e = engine_open(&c);
	int warned = 0;
	do {
		next(e, &ev);
		if (ev.type == ENGINE_EV_WARNING) {
			warned = 1;
			assert_non_null(strstr(ev.text, "over the memory limit"));
		}
		assert_int_not_equal(ev.type, ENGINE_EV_ERROR);
		engine_event_free(&ev);
	} while (ev.type != ENGINE_EV_READY);
	assert_true(warned);

	/* max_time: a reply that cannot finish in time stops with timeout */
	greedy(&rq, once_prompt, N_ONCE_PROMPT, -1);
	rq.max_time = 0.02;
	assert_int_equal(engine_submit(e, &rq), 0);
	collect(e, &r, NULL);
	assert_int_equal(r.done.stats.stop_reason, ENGINE_STOP_TIMEOUT);
	result_free(&r);

	/* a token id out of range is refused */
	int32_t bad[] = { 1, 512 };
	greedy(&rq, bad, 2, 4);
	assert_int_equal(engine_submit(e, &rq), 0);
	collect(e, &r, NULL);
	assert_true(r.is_error);
	assert_non_null(strstr(r.done.text, "512"));
	result_free(&r);
	engine_close(e);

	/* a missing model: ERROR, and submits fail */
	config_for(&c, 0);
	c.model_path = "/nonexistent/model.gguf";
	e = engine_open(&c);
	next(e, &ev);
	assert_int_equal(ev.type, ENGINE_EV_ERROR);
	assert_non_null(strstr(ev.text, "/nonexistent/model.gguf"));
	engine_event_free(&ev);
	engine_close(e);
}

static void test_close_anytime(void **state)
{
	(void)state;
	REQUIRE_REF();
	struct engine_config c;
	struct engine_request rq;
	struct engine_event ev;
	config_for(&c, 2048);

	/* right after open (loading) */
	engine_close(engine_open(&c));

	/* mid-generation, with events left in the queue */
	struct engine *e = open_ready(&c);
	greedy(&rq, once_prompt, N_ONCE_PROMPT, -1);
	assert_int_equal(engine_submit(e, &rq), 0);
	do {
		next(e, &ev);
		engine_event_free(&ev);
	} while (ev.type != ENGINE_EV_TOKEN);
	usleep(20 * 1000);
	engine_close(e);

	/* blocked on a full queue */
	c.max_buffered_tokens = 2;
	e = open_ready(&c);
	assert_int_equal(engine_submit(e, &rq), 0);
	usleep(100 * 1000);
	engine_close(e);

	/* during prefill */
	static int32_t t[2000];
	t[0] = 1;
	for (int i = 1; i < 2000; i++)
		t[i] = 3 + i % 500;
	c.n_batch = 8;
	e = open_ready(&c);
	greedy(&rq, t, 2000, 4);
	assert_int_equal(engine_submit(e, &rq), 0);
	usleep(10 * 1000);
	engine_close(e);
	engine_close(NULL);
}

/*
 * Quitting during a load quits (issue 16): a model whose vocabulary has
 * 500 tokens of 16 KiB, which took minutes to index and could not be
 * stopped; the child closes the engine 50 ms after opening it and must be
 * gone long before its 60 s alarm.  A model load cancelled before it
 * starts ends at once with "cancelled".
 */
static int hostile_child(const char *path)
{
	struct engine_config c;
	config_for(&c, 256);
	c.model_path = path;
	alarm(60);
	struct engine *e = engine_open(&c);
	if (!e)
		return 2;
	usleep(50 * 1000);
	engine_close(e);
	return 0;
}

/*
 * A copy of stories260K with changes: tokens replaced (when tok), the f32
 * key `key` set to value (when key), and every value of the tensor
 * `nan_tensor` set to NaN (when given).
 */
static void write_variant(const char *path, const struct gguf_str *tok, const char *key,
			  float value, const char *nan_tensor)
{
	struct gguf *src = gguf_open(test_ref_path("models/stories260K.gguf"));
	assert_non_null(src);
	struct gguf_writer *w = gguf_writer_new();
	int key_done = 0;
	for (int64_t i = 0; i < gguf_n_kv(src); i++) {
		const struct gguf_kv *kv = gguf_kv_at(src, i);
		if (tok && !strcmp(kv->key, "tokenizer.ggml.tokens"))
			assert_int_equal(gguf_writer_add_arr_str(w, kv->key, tok, kv->arr_n), 0);
		else if (key && !strcmp(kv->key, key) && !key_done++)
			assert_int_equal(gguf_writer_add_f32(w, key, value), 0);
		else if (strcmp(kv->key, "general.alignment"))
			assert_int_equal(gguf_writer_copy_kv(w, src, kv), 0);
	}
	if (key && !key_done)
		assert_int_equal(gguf_writer_add_f32(w, key, value), 0);
	for (int64_t i = 0; i < gguf_n_tensors(src); i++) {
		const struct gguf_tensor *t = gguf_tensor_at(src, i);
		assert_int_equal(gguf_writer_add_tensor(w, t->name, t->n_dims, t->ne, t->type), 0);
	}
	assert_int_equal(gguf_writer_begin(w, path), 0);
	for (int64_t i = 0; i < gguf_n_tensors(src); i++) {
		const struct gguf_tensor *t = gguf_tensor_at(src, i);
		if (nan_tensor && !strcmp(t->name, nan_tensor)) {
			assert_int_equal(t->type, 0); /* F32 */
			float *f = malloc(t->nbytes);
			assert_non_null(f);
			for (size_t k = 0; k < t->nbytes / 4; k++)
				f[k] = NAN;
			assert_int_equal(gguf_writer_write_tensor(w, f, t->nbytes), 0);
			free(f);
		} else {
			assert_int_equal(gguf_writer_write_tensor(w, t->data, t->nbytes), 0);
		}
	}
	assert_int_equal(gguf_writer_finish(w), 0);
	gguf_writer_free(w);
	gguf_close(src);
}

/*
 * Nonsense numbers in a model file (issue 16): a rope base or norm epsilon
 * that makes NaN is refused at load naming the key; NaN weights load but
 * the first reply ends in an error, not in garbage.
 */
static void test_nonsense_numbers(void **state)
{
	(void)state;
	REQUIRE_REF();
	char dir[] = "/tmp/palaver-test-engine-XXXXXX", path[64];
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/bad.gguf", dir);
	static const struct {
		const char *key;
		float value;
	} bad[] = {
		{ "llama.rope.freq_base", 0.0f },
		{ "llama.rope.freq_base", -10000.0f },
		{ "llama.rope.freq_base", NAN },
		{ "llama.rope.freq_base", INFINITY },
		{ "llama.attention.layer_norm_rms_epsilon", -1e-5f },
		{ "llama.attention.layer_norm_rms_epsilon", NAN },
		{ "llama.rope.scale_linear", NAN },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		write_variant(path, NULL, bad[i].key, bad[i].value, NULL);
		error_clear();
		struct model *m = model_load(path, NULL);
		if (m || !strstr(error_message(), bad[i].key))
			fail_msg("%s = %g: %s", bad[i].key, (double)bad[i].value,
				 m ? "loaded" : error_message());
	}

	write_variant(path, NULL, NULL, 0, "output_norm.weight");
	struct engine_config c;
	struct engine_request rq;
	struct result res;
	config_for(&c, 256);
	c.model_path = path;
	struct engine *e = open_ready(&c);
	greedy(&rq, once_prompt, N_ONCE_PROMPT, 8);
	assert_int_equal(engine_submit(e, &rq), 0);
	collect(e, &res, NULL);
	assert_false(res.is_error);
	assert_int_equal(res.done.stats.stop_reason, ENGINE_STOP_ERROR);
	assert_int_equal(res.done.stats.gen_tokens, 0);
	assert_non_null(res.done.message);
	assert_non_null(strstr(res.done.message, "not a number"));
	result_free(&res);
	engine_close(e);
	unlink(path);
	rmdir(dir);
}

static void test_close_during_hostile_load(void **state)
{
	(void)state;
	REQUIRE_REF();
	char dir[] = "/tmp/palaver-test-engine-XXXXXX", path[64];
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/long-tokens.gguf", dir);
	struct gguf *src = gguf_open(test_ref_path("models/stories260K.gguf"));
	assert_non_null(src);
	const struct gguf_str *tok;
	uint64_t n;
	assert_int_equal(gguf_get_arr_str(src, "tokenizer.ggml.tokens", &tok, &n), 0);
	struct gguf_str *mine = calloc(n, sizeof(*mine));
	char *text = malloc(n * 16384);
	assert_true(mine && text);
	for (uint64_t i = 0; i < n; i++) {
		mine[i] = tok[i];
		if (i < 12)
			continue;
		char *p = text + i * 16384;
		memset(p, 'a', 16384);
		snprintf(p, 16, "%08d", (int)i);
		p[8] = 'a';
		mine[i].data = p;
		mine[i].len = 16384;
	}
	write_variant(path, mine, NULL, 0, NULL);
	gguf_close(src);
	free(mine);
	free(text);

	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(hostile_child(path));
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	if (!WIFEXITED(st) || WEXITSTATUS(st))
		fail_msg("closing the engine during the load %s",
			 WIFSIGNALED(st) ? "did not return within 60 s" : "failed");

	struct model_params mp;
	atomic_int stop;
	atomic_init(&stop, 1);
	model_params_default(&mp);
	mp.cancel = &stop;
	error_clear();
	assert_null(model_load(path, &mp));
	assert_non_null(strstr(error_message(), "cancelled"));
	unlink(path);
	rmdir(dir);
}

/* ---- saved KV states ---------------------------------------------------------------------- */

/* The KV_SAVED that follows a DONE: the file exists with the bytes and tokens it says. */
static void expect_saved(struct engine *e, const char *session, int tokens, struct strbuf *path)
{
	struct engine_event ev;
	struct stat st;
	next(e, &ev);
	assert_int_equal(ev.type, ENGINE_EV_KV_SAVED);
	assert_string_equal(ev.text, session);
	assert_null(ev.message);
	assert_non_null(ev.path);
	assert_int_equal(stat(ev.path, &st), 0);
	assert_int_equal((uint64_t)st.st_size, ev.done);
	assert_int_equal(ev.total, (uint64_t)tokens);
	if (path) {
		strbuf_reset(path);
		strbuf_addstr(path, ev.path);
	}
	engine_event_free(&ev);
}

/* One greedy request of a session; its KV_SAVED is checked when kv is set. */
static void session_turn(struct engine *e, const char *session, const int32_t *t, int n, int max,
			 struct result *r, struct strbuf *path)
{
	struct engine_request rq;
	greedy(&rq, t, n, max);
	rq.session = session;
	assert_int_equal(engine_submit(e, &rq), 0);
	collect(e, r, NULL);
	assert_false(r->is_error);
	if (path)
		expect_saved(e, session, r->done.stats.n_ctx_used, path);
}

static void kv_config(struct engine_config *c, const char *dir)
{
	config_for(c, 256);
	c->kv_dir = dir;
}

/* A session's cache is saved after each reply and read back by a new engine: the reply is
 * the one a re-prefill gives. */
static void test_kv_saved_state(void **state)
{
	(void)state;
	REQUIRE_REF();
	char dir[] = "/tmp/palaver-test-engine-kv-XXXXXX";
	assert_non_null(mkdtemp(dir));
	struct engine_config c, plain;
	struct engine_request rq;
	struct result r, want;
	struct strbuf path = STRBUF_INIT, again = STRBUF_INIT;
	int32_t t[128];
	const int32_t more[] = { 13, 403, 407 };
	kv_config(&c, dir);
	config_for(&plain, 256);

	struct engine *e = open_ready(&c);
	session_turn(e, "s1", once_prompt, N_ONCE_PROMPT, 8, &r, &path);
	assert_int_equal(r.done.stats.restored_tokens, 0);
	result_free(&r);
	/* a request without a session has no KV_SAVED (collect fails on one) */
	run_greedy(e, once_prompt, N_ONCE_PROMPT, 2, &r);
	result_free(&r);
	/* nor does one refused before any work */
	int32_t big[300];
	for (int i = 0; i < 300; i++)
		big[i] = 1;
	greedy(&rq, big, 300, 1);
	rq.session = "s1";
	assert_int_equal(engine_submit(e, &rq), 0);
	collect(e, &r, NULL);
	assert_true(r.is_error);
	result_free(&r);
	/* a session id that cannot name a file is refused */
	greedy(&rq, once_prompt, N_ONCE_PROMPT, 1);
	rq.session = "../etc";
	assert_int_equal(engine_submit(e, &rq), -1);
	assert_non_null(strstr(error_message(), "invalid session id '../etc'"));
	error_clear();
	engine_close(e);

	/* a new engine: the follow-up turn reads the state instead of the prompt */
	int n = conv(t, 8, more, 3);
	e = open_ready(&c);
	session_turn(e, "s1", t, n, 16, &r, &again);
	assert_string_equal(again.buf, path.buf);
	assert_int_equal(r.done.stats.restored_tokens, N_ONCE_PROMPT + 7);
	assert_int_equal(r.done.stats.reused_tokens, N_ONCE_PROMPT + 7);
	assert_true(r.done.stats.restore_ms > 0);
	assert_true(r.done.stats.restore_ms <= r.done.stats.ttft_ms);
	struct engine *p = open_ready(&plain);
	run_greedy(p, t, n, 16, &want);
	assert_int_equal(want.done.stats.reused_tokens, 0);
	assert_int_equal(want.done.len, r.done.len);
	assert_memory_equal(want.done.text, r.done.text, r.done.len);
	result_free(&want);
	engine_close(p);
	result_free(&r);

	/* in the same engine the cache already holds it: nothing is read */
	n = conv(t, 8, more, 3);
	session_turn(e, "s1", t, n, 2, &r, NULL);
	assert_int_equal(r.done.stats.restored_tokens, 0);
	assert_int_equal(r.done.stats.reused_tokens, n - 1);
	result_free(&r);
	struct engine_event ev;
	next(e, &ev);
	assert_int_equal(ev.type, ENGINE_EV_KV_SAVED);
	engine_event_free(&ev);
	/* a request that leaves the cache as its file has it writes nothing */
	struct stat st0, st1;
	struct strbuf p3 = STRBUF_INIT;
	greedy(&rq, once_prompt, N_ONCE_PROMPT, 0);
	rq.session = "s3";
	for (int k = 0; k < 2; k++) {
		assert_int_equal(engine_submit(e, &rq), 0);
		collect(e, &r, NULL);
		result_free(&r);
		expect_saved(e, "s3", N_ONCE_PROMPT, &p3);
		assert_int_equal(stat(p3.buf, k ? &st1 : &st0), 0);
		usleep(20000);
	}
	assert_true(st0.st_mtim.tv_sec == st1.st_mtim.tv_sec &&
		    st0.st_mtim.tv_nsec == st1.st_mtim.tv_nsec);
	strbuf_release(&p3);
	/* back to s1: its state shares more with the prompt than the cache does now */
	session_turn(e, "s1", t, n, 2, &r, &again);
	assert_int_equal(r.done.stats.restored_tokens, n - 1);
	result_free(&r);
	engine_close(e);
	strbuf_release(&path);
	strbuf_release(&again);
	test_rmtree(dir);
}

static void corrupt(const char *path, long at, int byte)
{
	FILE *f = fopen(path, "r+b");
	assert_non_null(f);
	fseek(f, at, SEEK_SET);
	fputc(byte, f);
	fclose(f);
}

/* A damaged or foreign state is ignored: the tokens are computed again, the reply is the same. */
static void test_kv_state_faults(void **state)
{
	(void)state;
	REQUIRE_REF();
	char dir[] = "/tmp/palaver-test-engine-kvf-XXXXXX";
	assert_non_null(mkdtemp(dir));
	struct engine_config c, plain, other;
	struct result r, want;
	struct strbuf path = STRBUF_INIT, foreign = STRBUF_INIT;
	int32_t t[128];
	const int32_t more[] = { 13, 403, 407 };
	int n = conv(t, 8, more, 3);
	kv_config(&c, dir);
	config_for(&plain, 256);
	kv_config(&other, dir);
	/* test_ref_path's buffer is static: the others keep their own copy */
	char *stories = strdup(c.model_path);
	c.model_path = plain.model_path = stories;
	other.model_path = test_ref_path("models/rand-llama-256-F32.gguf");

	struct engine *p = open_ready(&plain);
	run_greedy(p, t, n, 16, &want);
	engine_close(p);
	/* the other model's state, as a file of the same size to copy over ours */
	struct engine *e = open_ready(&other);
	session_turn(e, "s1", once_prompt, N_ONCE_PROMPT, 8, &r, &foreign);
	result_free(&r);
	engine_close(e);

	for (int fault = 0; fault < 4; fault++) {
		e = open_ready(&c);
		session_turn(e, "s1", once_prompt, N_ONCE_PROMPT, 8, &r, &path);
		result_free(&r);
		engine_close(e);
		struct stat st;
		assert_int_equal(stat(path.buf, &st), 0);
		switch (fault) {
		case 0: corrupt(path.buf, (long)st.st_size / 2, 0x5a); break; /* the K/V data */
		case 1: corrupt(path.buf, 200, 0x01); break;                  /* the header */
		case 2: assert_int_equal(truncate(path.buf, 4096), 0); break;
		case 3: {
			struct strbuf cmd = STRBUF_INIT;
			strbuf_addf(&cmd, "cp '%s' '%s'", foreign.buf, path.buf);
			assert_int_equal(system(cmd.buf), 0);
			strbuf_release(&cmd);
			break;
		}
		}
		e = open_ready(&c);
		session_turn(e, "s1", t, n, 16, &r, &path);
		assert_int_equal(r.done.stats.restored_tokens, 0);
		assert_int_equal(r.done.stats.reused_tokens, 0);
		assert_int_equal(want.done.len, r.done.len);
		assert_memory_equal(want.done.text, r.done.text, r.done.len);
		result_free(&r);
		engine_close(e);
		/* and the state written after it is whole again */
		e = open_ready(&c);
		session_turn(e, "s1", t, n, 16, &r, NULL);
		assert_true(r.done.stats.restored_tokens > 0);
		assert_memory_equal(want.done.text, r.done.text, r.done.len);
		result_free(&r);
		engine_close(e);
		unlink(path.buf);
	}
	result_free(&want);
	strbuf_release(&path);
	strbuf_release(&foreign);
	free(stories);
	test_rmtree(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_events_and_text),    cmocka_unit_test(test_kv_reuse),
		cmocka_unit_test(test_cancel_decode),      cmocka_unit_test(test_cancel_prefill),
		cmocka_unit_test(test_policy_stop),        cmocka_unit_test(test_policy_shift),
		cmocka_unit_test(test_determinism),        cmocka_unit_test(test_stop_strings),
		cmocka_unit_test(test_backpressure),       cmocka_unit_test(test_limits),
		cmocka_unit_test(test_close_anytime),      cmocka_unit_test(test_messages),
		cmocka_unit_test(test_policy_drop_oldest), cmocka_unit_test(test_templates),
		cmocka_unit_test(test_close_during_hostile_load),
		cmocka_unit_test(test_nonsense_numbers),
		cmocka_unit_test(test_reasoning),
		cmocka_unit_test(test_kv_saved_state),     cmocka_unit_test(test_kv_state_faults),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
