/* The chat: the UI event loop joining the terminal, readline, the engine and the history. */
#include "modes.h"
#include "config.h"
#include "engine.h"
#include "report.h"
#include "strbuf.h"
#include "util.h"
#include "xalloc.h"

#include "json.h"
#include "store.h"

#include "chat_pane.h"
#include "input.h"
#include "keys.h"
#include "picker.h"
#include "screen.h"
#include "slash.h"
#include "status_pane.h"
#include "theme.h"
#include "wrap.h"

#include <curses.h>
#include <errno.h>
#include <stddef.h>
#include <langinfo.h>
#include <locale.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/*
 * DESIGN
 * One thread, one poll(): the terminal (stdin), the engine's wakeup fd and
 * the signal self-pipe.  Keys are decoded (ui/keys.c); ordinary ones go to
 * readline, the rest (Enter, Esc, Ctrl-C/D, paging, pastes) are handled
 * here.  Engine events are drained completely on every wakeup, so the
 * engine never waits on the screen.  Drawing happens at the end of a loop
 * pass and only for dirty panes: the transcript at most ~30 times a second
 * while a reply streams, the status pane at most 10 times a second, the
 * input at once (typing must echo immediately).  Nothing here blocks: a
 * message submitted while the model loads is sent when it is ready.
 */

#define TRANSCRIPT_MIN_MS 33.0
#define STATUS_MIN_MS 100.0
#define SAMPLE_MS 250.0  /* sparkline sample period while generating */
#define SAMPLE_TOKENS 16 /* ... or after this many tokens, whichever first */
#define HINT_MS 5000.0   /* how long a transient hint stays */

static const char *const set_keys[] = {
	"temperature",       "top_k",          "top_p",         "min_p",
	"typical_p",         "repeat_penalty", "repeat_last_n", "presence_penalty",
	"frequency_penalty", "seed",           "max_tokens",    NULL,
};

struct chat {
	struct config *cfg;
	struct config_sampling sampling; /* the session's copy: /set changes it */
	char *system_prompt;             /* NULL = none */
	char *model_path;                /* the model loaded or loading, NULL = none */

	struct engine *eng;
	int ready;              /* READY arrived: requests may be submitted */
	int busy;               /* a request is in flight */
	int pending_send;       /* a message waits for the model to load */
	struct chat_msg *reply; /* the reply being streamed, or NULL */

	struct screen scr;
	struct keys keys;
	struct chat_pane pane;
	struct status_info st;
	int status_dirty;
	int hint_dirty;
	int rule_dirty;
	double last_status_draw, last_transcript_draw;
	char hint[256]; /* a transient hint, "" for the default */
	double hint_until;

	/* figures of the reply in flight */
	double t_submit, t_first, t_sample;
	int sample_tokens, gen_tokens, prompt_total;
	struct engine_stats last_stats;
	int have_last_stats;

	/* history: store NULL when disabled or after a failure */
	struct store *store;
	char sid[STORE_ID_SIZE]; /* the session, "" until its first message is saved */
	char *pending_title;     /* /new TITLE or /rename before the session exists */
	double last_store_write; /* of the streaming reply */
	int64_t reuse_user_row;  /* rows left by /edit and /regen: the next turn */
	int64_t reuse_reply_row; /* overwrites them instead of appending */

	struct picker picker; /* /sessions and /search */
	char *search_query;   /* of the /search list open, to highlight the hit */
	int picker_open;

	double esc_since; /* when the keys decoder began waiting for more of a sequence */

	int redraw; /* Ctrl-L: repaint the whole screen */
	int quit;
};

/* ---- small helpers ------------------------------------------------------ */

static void notice(struct chat *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void notice(struct chat *c, const char *fmt, ...)
{
	struct strbuf sb = STRBUF_INIT;
	va_list ap;
	va_start(ap, fmt);
	strbuf_vaddf(&sb, fmt, ap);
	va_end(ap);
	chat_pane_add(&c->pane, CHAT_NOTICE, sb.buf);
	chat_pane_scroll_bottom(&c->pane);
	strbuf_release(&sb);
}

static void error_notice(struct chat *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void error_notice(struct chat *c, const char *fmt, ...)
{
	struct strbuf sb = STRBUF_INIT;
	va_list ap;
	va_start(ap, fmt);
	strbuf_vaddf(&sb, fmt, ap);
	va_end(ap);
	chat_pane_add(&c->pane, CHAT_ERROR, sb.buf);
	chat_pane_scroll_bottom(&c->pane);
	strbuf_release(&sb);
}

static void set_hint(struct chat *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_hint(struct chat *c, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(c->hint, sizeof(c->hint), fmt, ap);
	va_end(ap);
	c->hint_until = time_now_ms() + HINT_MS;
	c->hint_dirty = 1;
}

static int need_idle(struct chat *c)
{
	if (!c->busy)
		return 1;
	set_hint(c, "a reply is streaming: press Esc to stop it first");
	return 0;
}

/* Copy with truncation at a character boundary. */
static void copy_str(char *dst, size_t cap, const char *src)
{
	size_t n = src ? strlen(src) : 0;
	if (n >= cap) {
		n = cap - 1;
		while (n > 0 && ((unsigned char)src[n] & 0xc0) == 0x80)
			n--; /* do not cut a UTF-8 sequence */
	}
	if (n)
		memcpy(dst, src, n);
	dst[n] = '\0';
}

/* ---- history ------------------------------------------------------------ */

/* Any store failure: say so once, then go on in memory only. */
static void store_fail(struct chat *c)
{
	error_notice(c, "history is unavailable: %s (this chat stays in memory only)",
		     error_message());
	error_clear();
	if (c->store)
		store_close(c->store);
	c->store = NULL;
	copy_str(c->st.notice, sizeof(c->st.notice), "history unavailable");
	c->status_dirty = 1;
}

static void sampling_json(const struct config_sampling *s, struct strbuf *out)
{
	strbuf_addf(out,
		    "{\"temperature\":%g,\"top_k\":%d,\"top_p\":%g,\"min_p\":%g,\"typical_p\":%g,"
		    "\"repeat_penalty\":%g,\"repeat_last_n\":%d,\"presence_penalty\":%g,"
		    "\"frequency_penalty\":%g,\"seed\":%llu,\"max_tokens\":%d}",
		    s->temperature, s->top_k, s->top_p, s->min_p, s->typical_p, s->repeat_penalty,
		    s->repeat_last_n, s->presence_penalty, s->frequency_penalty,
		    (unsigned long long)s->seed, s->max_tokens);
}

/* Create the session on its first message.  1 when there is one to write to. */
static int ensure_session(struct chat *c)
{
	if (!c->store)
		return 0;
	if (c->sid[0])
		return 1;
	struct strbuf js = STRBUF_INIT;
	sampling_json(&c->sampling, &js);
	struct store_session_params p = {
		c->pending_title && *c->pending_title ? c->pending_title : NULL,
		c->model_path,
		c->system_prompt,
		js.buf,
	};
	int rc = store_session_create(c->store, &p, c->sid);
	strbuf_release(&js);
	if (rc < 0) {
		c->sid[0] = '\0';
		store_fail(c);
		return 0;
	}
	return 1;
}

/* The session's title as the store has it now (the first message names it). */
static void refresh_title(struct chat *c)
{
	struct store_session ss;
	if (!c->store || !c->sid[0])
		return;
	if (store_session_get(c->store, c->sid, &ss) < 0) {
		store_fail(c);
		return;
	}
	copy_str(c->st.title, sizeof(c->st.title), ss.title);
	store_session_free(&ss);
	c->status_dirty = c->rule_dirty = 1;
}

static void save_user(struct chat *c, struct chat_msg *m)
{
	if (!ensure_session(c))
		return;
	if (c->reuse_user_row) {
		if (store_message_finish(c->store, c->reuse_user_row, m->text.buf, m->text.len,
					 STORE_COMPLETE, NULL) < 0) {
			store_fail(c);
			return;
		}
		m->id = c->reuse_user_row;
		c->reuse_user_row = 0;
		return;
	}
	m->id = store_message_append(c->store, c->sid, "user", m->text.buf, STORE_COMPLETE, NULL);
	if (m->id < 0) {
		m->id = 0;
		store_fail(c);
		return;
	}
	if (!c->st.title[0])
		refresh_title(c);
}

static void save_reply_begin(struct chat *c, struct chat_msg *m)
{
	c->last_store_write = time_now_ms();
	if (!ensure_session(c))
		return;
	if (c->reuse_reply_row) {
		m->id = c->reuse_reply_row;
		c->reuse_reply_row = 0;
		if (store_message_update(c->store, m->id, "", 0) < 0)
			store_fail(c);
		return;
	}
	m->id = store_message_begin(c->store, c->sid, "assistant");
	if (m->id < 0) {
		m->id = 0;
		store_fail(c);
	}
}

static void save_reply_progress(struct chat *c, struct chat_msg *m, double now)
{
	if (!c->store || !m->id || now - c->last_store_write < 1000)
		return;
	c->last_store_write = now;
	if (store_message_update(c->store, m->id, m->text.buf, m->text.len) < 0)
		store_fail(c);
}

static void save_reply_end(struct chat *c, struct chat_msg *m, enum store_status status,
			   const struct engine_stats *es)
{
	if (!c->store || !m->id)
		return;
	struct store_stats ss = { 0, 0, 0, 0 };
	if (es) {
		ss.prompt_tokens = es->prompt_tokens;
		ss.gen_tokens = es->gen_tokens;
		ss.prefill_ms = es->prefill_ms;
		ss.gen_ms = es->decode_ms;
	}
	if (store_message_finish(c->store, m->id, m->text.buf, m->text.len, status,
				 es ? &ss : NULL) < 0)
		store_fail(c);
}

/* ---- the engine --------------------------------------------------------- */

static enum engine_backend map_backend(enum config_backend b)
{
	return b == BACKEND_CPU    ? ENGINE_BACKEND_CPU
	       : b == BACKEND_CUDA ? ENGINE_BACKEND_CUDA
				   : ENGINE_BACKEND_AUTO;
}

static enum engine_overflow map_overflow(enum config_overflow o)
{
	return o == OVERFLOW_DROP_OLDEST ? ENGINE_OVERFLOW_DROP_OLDEST
	       : o == OVERFLOW_SHIFT     ? ENGINE_OVERFLOW_SHIFT
					 : ENGINE_OVERFLOW_STOP;
}

static const char *base_name(const char *path)
{
	const char *s = strrchr(path, '/');
	return s ? s + 1 : path;
}

static void open_model(struct chat *c, const char *path)
{
	struct config *cfg = c->cfg;
	struct engine_config ec;

	memset(&ec, 0, sizeof(ec));
	ec.model_path = path;
	ec.n_threads = cfg->threads;
	ec.n_ctx = cfg->ctx;
	ec.n_batch = cfg->batch_size;
	ec.kv_type = ENGINE_KV_F16;
	ec.backend = map_backend(cfg->backend);
	ec.chat_template = cfg->chat_template ? cfg->chat_template : "auto";
	ec.overflow = map_overflow(cfg->context_overflow);
	ec.keep = cfg->keep;
	ec.max_buffered_tokens = cfg->max_buffered_tokens;
	ec.memory_limit = cfg->memory_limit;
	ec.memory_strict = cfg->memory_mode == MEMORY_STRICT;
	ec.mlock = cfg->memory_lock;
	ec.no_repack = !cfg->repack;

	c->ready = 0;
	c->pending_send = 0;
	struct status_info keep = c->st; /* the session's title and notice stay */
	memset(&c->st, 0, sizeof(c->st));
	memcpy(c->st.title, keep.title, sizeof(c->st.title));
	memcpy(c->st.notice, keep.notice, sizeof(c->st.notice));
	copy_str(c->st.model, sizeof(c->st.model), base_name(path));
	c->st.state = STATE_LOADING;
	c->status_dirty = 1;
	c->eng = engine_open(&ec);
	if (!c->eng) {
		c->st.state = STATE_FAILED;
		error_notice(c, "cannot load '%s': %s", path, error_message());
		error_clear();
		return;
	}
	free(c->model_path);
	c->model_path = xstrdup(path);
}

static void close_model(struct chat *c)
{
	if (c->eng)
		engine_close(c->eng);
	c->eng = NULL;
	c->ready = 0;
	c->busy = 0;
	if (c->reply) {
		c->reply->flags = (c->reply->flags & ~CHAT_STREAMING) | CHAT_STOPPED;
		save_reply_end(c, c->reply, STORE_CANCELLED, NULL);
		c->reply = NULL;
	}
}

static void submit(struct chat *c)
{
	struct engine_request req;
	struct engine_message *msgs;
	size_t n = 0;

	msgs = xcalloc(c->pane.n_msgs + 1, sizeof(*msgs));
	if (c->system_prompt && *c->system_prompt) {
		msgs[n].role = ENGINE_ROLE_SYSTEM;
		msgs[n++].text = c->system_prompt;
	}
	for (size_t i = 0; i < c->pane.n_msgs; i++) {
		struct chat_msg *m = c->pane.msgs[i];
		if (m->role == CHAT_USER) {
			msgs[n].role = ENGINE_ROLE_USER;
		} else if (m->role == CHAT_ASSISTANT && m->text.len && !(m->flags & CHAT_FAILED)) {
			msgs[n].role = ENGINE_ROLE_ASSISTANT;
		} else {
			continue;
		}
		msgs[n++].text = m->text.buf;
	}

	memset(&req, 0, sizeof(req));
	req.messages = msgs;
	req.n_messages = (int)n;
	req.add_generation_prompt = 1;
	req.sampling.temperature = (float)c->sampling.temperature;
	req.sampling.top_k = c->sampling.top_k;
	req.sampling.top_p = (float)c->sampling.top_p;
	req.sampling.min_p = (float)c->sampling.min_p;
	req.sampling.typical_p = (float)c->sampling.typical_p;
	req.sampling.repeat_penalty = (float)c->sampling.repeat_penalty;
	req.sampling.repeat_last_n = c->sampling.repeat_last_n;
	req.sampling.presence_penalty = (float)c->sampling.presence_penalty;
	req.sampling.frequency_penalty = (float)c->sampling.frequency_penalty;
	req.sampling.seed = c->sampling.seed;
	req.max_tokens = c->sampling.max_tokens;
	req.max_time = c->cfg->max_time;
	for (int i = 0; i < c->cfg->n_stop && i < ENGINE_MAX_STOP; i++)
		req.stop[req.n_stop++] = c->cfg->stop[i];

	int rc = engine_submit(c->eng, &req);
	free(msgs);
	if (rc < 0) {
		error_notice(c, "cannot send the message: %s", error_message());
		error_clear();
		return;
	}
	c->busy = 1;
	c->reply = chat_pane_add(&c->pane, CHAT_ASSISTANT, "");
	c->reply->flags = CHAT_STREAMING;
	save_reply_begin(c, c->reply);
	chat_pane_scroll_bottom(&c->pane);
	c->t_submit = time_now_ms();
	c->t_first = 0;
	c->t_sample = c->t_submit;
	c->sample_tokens = 0;
	c->gen_tokens = 0;
	c->prompt_total = 0;
	c->st.state = STATE_PREFILL;
	c->st.done = c->st.total = 0;
	c->st.n_spark = 0;
	c->st.gen_tokens = 0;
	c->st.gen_tps = 0;
	c->status_dirty = 1;
}

static void spark_push(struct status_info *st, float v)
{
	if (st->n_spark == STATUS_SPARK_MAX) {
		memmove(st->spark, st->spark + 1, (STATUS_SPARK_MAX - 1) * sizeof(st->spark[0]));
		st->n_spark--;
	}
	st->spark[st->n_spark++] = v;
}

/* Take a speed sample when enough time or tokens went by. */
static void sample_speed(struct chat *c, double now, int force)
{
	double dt = now - c->t_sample;
	if (!c->sample_tokens || dt <= 0)
		return;
	if (!force && dt < SAMPLE_MS && c->sample_tokens < SAMPLE_TOKENS)
		return;
	if (dt < 1)
		dt = 1; /* a burst drained at once: do not claim infinite speed */
	spark_push(&c->st, (float)(c->sample_tokens * 1000.0 / dt));
	c->t_sample = now;
	c->sample_tokens = 0;
	c->status_dirty = 1;
}

static void on_ready(struct chat *c)
{
	const struct engine_info *info = engine_info(c->eng);
	c->ready = 1;
	c->st.state = STATE_READY;
	if (info) {
		copy_str(c->st.model, sizeof(c->st.model), info->name);
		copy_str(c->st.type, sizeof(c->st.type), info->type_name);
		copy_str(c->st.backend, sizeof(c->st.backend), info->backend);
		c->st.file_bytes = info->file_bytes;
		c->st.n_params = info->n_params;
		c->st.threads = info->n_threads;
		c->st.ctx_total = info->n_ctx;
		copy_str(c->pane.assistant_label, sizeof(c->pane.assistant_label), info->name);
		c->pane.dirty = 1;
		if (info->template_defaulted)
			notice(c,
			       "The model has no chat template; using '%s'. Set chat_template: in "
			       "config.yaml (or --chat-template) if replies look wrong.",
			       info->chat_template);
	}
	c->status_dirty = 1;
	if (c->pending_send) {
		c->pending_send = 0;
		submit(c);
	}
}

static void on_done(struct chat *c, const struct engine_event *ev)
{
	const struct engine_stats *s = &ev->stats;
	double now = time_now_ms();

	c->last_stats = *s;
	c->have_last_stats = 1;
	sample_speed(c, now, 1);
	if (!c->st.n_spark && s->decode_tps > 0)
		spark_push(&c->st, (float)s->decode_tps);
	c->st.have_stats = 1;
	c->st.ttft_ms = s->ttft_ms;
	c->st.prompt_tps = s->prefill_tps;
	c->st.gen_tps = s->decode_tps;
	c->st.gen_tokens = s->gen_tokens;
	c->st.ctx_used = s->n_ctx_used;
	if (s->n_ctx)
		c->st.ctx_total = s->n_ctx;
	c->st.reused = s->reused_tokens;
	c->st.state = STATE_READY;
	c->status_dirty = 1;

	if (c->reply) {
		c->reply->flags &= ~CHAT_STREAMING;
		if (s->stop_reason == ENGINE_STOP_CANCELLED)
			c->reply->flags |= CHAT_STOPPED;
		else if (s->stop_reason == ENGINE_STOP_ERROR)
			c->reply->flags |= CHAT_FAILED;
		/* the event's text is the whole reply: after a cancel, tokens that
		 * found the queue full were dropped, so it is the authority */
		if (ev->text) {
			strbuf_reset(&c->reply->text);
			strbuf_add(&c->reply->text, ev->text, ev->len);
		}
		save_reply_end(c, c->reply,
			       s->stop_reason == ENGINE_STOP_CANCELLED ? STORE_CANCELLED
			       : s->stop_reason == ENGINE_STOP_ERROR   ? STORE_ERROR
								       : STORE_COMPLETE,
			       s);
		c->pane.dirty = 1;
	}
	c->reply = NULL;
	c->busy = 0;
	if (s->stop_reason == ENGINE_STOP_CANCELLED)
		set_hint(c, "stopped: the partial reply stays; /regen tries again");

	switch (s->stop_reason) {
	case ENGINE_STOP_ERROR:
		error_notice(c, "The reply failed: %s", ev->message ? ev->message : "engine error");
		break;
	case ENGINE_STOP_CONTEXT_FULL:
		notice(c,
		       "The context is full (%d tokens). /new starts a fresh session; "
		       "context_overflow in config.yaml can drop old turns instead.",
		       s->n_ctx);
		break;
	case ENGINE_STOP_TIMEOUT:
		notice(c, "The reply took longer than max_time and was stopped.");
		break;
	default: break;
	}
	if (s->dropped_turns > 0)
		notice(c, "%d old turn%s no longer fit in the context and were left out.",
		       s->dropped_turns, s->dropped_turns == 1 ? "" : "s");
}

static void on_event(struct chat *c, struct engine_event *ev)
{
	double now = time_now_ms();
	switch (ev->type) {
	case ENGINE_EV_LOAD_PROGRESS:
		c->st.state = STATE_LOADING;
		c->st.done = ev->done;
		c->st.total = ev->total;
		c->status_dirty = 1;
		break;
	case ENGINE_EV_READY: on_ready(c); break;
	case ENGINE_EV_PREFILL_PROGRESS:
		c->st.state = STATE_PREFILL;
		c->st.done = ev->done;
		c->st.total = ev->total;
		c->prompt_total = (int)ev->total;
		c->status_dirty = 1;
		break;
	case ENGINE_EV_TOKEN:
		if (!c->reply)
			break;
		if (!c->t_first) {
			c->t_first = now;
			c->t_sample = now;
			c->st.ttft_ms = now - c->t_submit;
			if (c->prompt_total && now > c->t_submit)
				c->st.prompt_tps = c->prompt_total * 1000.0 / (now - c->t_submit);
			c->st.state = STATE_GENERATING;
		}
		chat_pane_append(&c->pane, c->reply, ev->text, ev->len);
		c->gen_tokens++;
		c->sample_tokens++;
		c->st.gen_tokens = c->gen_tokens;
		if (now > c->t_first)
			c->st.gen_tps = (c->gen_tokens - 1) * 1000.0 / (now - c->t_first);
		if (c->prompt_total)
			c->st.ctx_used = c->prompt_total + c->gen_tokens;
		sample_speed(c, now, 0);
		save_reply_progress(c, c->reply, now);
		c->status_dirty = 1;
		break;
	case ENGINE_EV_DONE: on_done(c, ev); break;
	case ENGINE_EV_WARNING: notice(c, "%.*s", (int)ev->len, ev->text ? ev->text : ""); break;
	case ENGINE_EV_ERROR:
		if (c->reply || c->busy) {
			if (c->reply) {
				c->reply->flags = (c->reply->flags & ~CHAT_STREAMING) | CHAT_FAILED;
				save_reply_end(c, c->reply, STORE_ERROR, NULL);
				c->pane.dirty = 1;
			}
			c->reply = NULL;
			c->busy = 0;
			c->st.state = c->ready ? STATE_READY : STATE_FAILED;
			error_notice(c, "%.*s", (int)ev->len, ev->text ? ev->text : "engine error");
		} else {
			c->st.state = STATE_FAILED;
			c->ready = 0;
			error_notice(
				c,
				"Cannot load the model: %.*s\nTry another file with /model FILE.",
				(int)ev->len, ev->text ? ev->text : "unknown error");
		}
		c->status_dirty = 1;
		break;
	}
}

static void drain_engine(struct chat *c)
{
	struct engine_event ev;
	while (c->eng && engine_next_event(c->eng, &ev) == 1) {
		on_event(c, &ev);
		engine_event_free(&ev);
	}
}

static void cancel_reply(struct chat *c)
{
	if (c->busy && c->eng) {
		engine_cancel(c->eng);
		set_hint(c, "stopping\xe2\x80\xa6");
	}
}

/* ---- messages and commands ---------------------------------------------- */

static void send_message(struct chat *c, const char *text)
{
	if (c->busy) {
		/* Enter is refused while streaming; this is a second line of defence */
		input_set(text);
		set_hint(c, "a reply is streaming: press Esc to stop it, or wait");
		return;
	}
	if (!c->eng || c->st.state == STATE_FAILED) {
		notice(c, "No model is loaded. Load one with /model FILE.gguf, or start palaver "
			  "with -m FILE.gguf (or set model: in config.yaml).");
		return;
	}
	struct chat_msg *m = chat_pane_add(&c->pane, CHAT_USER, text);
	chat_pane_scroll_bottom(&c->pane);
	save_user(c, m);
	if (!c->ready) {
		c->pending_send = 1;
		set_hint(c, "the message goes out when the model has loaded");
		return;
	}
	submit(c);
}

static void show_help(struct chat *c)
{
	struct strbuf sb = STRBUF_INIT;
	strbuf_addstr(&sb, "Commands (Tab completes):\n");
	for (int i = 0; i < SLASH_COUNT; i++) {
		const struct slash_command *k = &slash_commands[i];
		char head[64];
		snprintf(head, sizeof(head), "/%s %s", k->name, k->args);
		strbuf_addf(&sb, "  %-20s %s\n", head, k->help);
	}
	strbuf_addstr(&sb,
		      "Keys:\n"
		      "  Enter                send the message\n"
		      "  Alt-Enter, Ctrl-J    new line in the message\n"
		      "  Esc, Ctrl-C          stop the reply (the partial reply stays)\n"
		      "  Ctrl-C               clear the input when idle\n"
		      "  Up, Down             input history\n"
		      "  PgUp, PgDn, wheel    scroll the conversation\n"
		      "  Home, End            top, bottom (when the input is empty)\n"
		      "  Ctrl-D               quit (on an empty input)\n"
		      "  Ctrl-L               redraw the screen\n"
		      "  Ctrl-Z               suspend (fg resumes)\n"
		      "Other readline keys work as in bash (Ctrl-A, Ctrl-E, Ctrl-W, Ctrl-R, ...).\n"
		      "A line starting with // sends a message that starts with /.");
	notice(c, "%s", sb.buf);
	strbuf_release(&sb);
}

static void show_settings(struct chat *c)
{
	const struct config_sampling *s = &c->sampling;
	notice(c,
	       "temperature        %g\ntop_k              %d\ntop_p              %g\n"
	       "min_p              %g\ntypical_p          %g\nrepeat_penalty     %g\n"
	       "repeat_last_n      %d\npresence_penalty   %g\nfrequency_penalty  %g\n"
	       "seed               %llu\nmax_tokens         %d\n"
	       "Change one with /set KEY VALUE.",
	       s->temperature, s->top_k, s->top_p, s->min_p, s->typical_p, s->repeat_penalty,
	       s->repeat_last_n, s->presence_penalty, s->frequency_penalty,
	       (unsigned long long)s->seed, s->max_tokens);
}

static void cmd_set(struct chat *c, const char *args)
{
	char key[32];
	const char *v = args;
	size_t n = strcspn(args, " \t");
	if (!*args) {
		show_settings(c);
		return;
	}
	if (n >= sizeof(key)) {
		notice(c, "unknown setting; /set lists them");
		return;
	}
	memcpy(key, args, n);
	key[n] = '\0';
	v = args + n;
	while (*v == ' ' || *v == '\t')
		v++;
	struct config_sampling *s = &c->sampling;
	double d = 0;
	long l = 0;
	int is_int = !strcmp(key, "top_k") || !strcmp(key, "repeat_last_n") ||
		     !strcmp(key, "max_tokens") || !strcmp(key, "seed");
	int known = 0;
	for (int i = 0; set_keys[i]; i++)
		known |= !strcmp(set_keys[i], key);
	if (!known) {
		notice(c,
		       "unknown setting '%s'; one of: temperature, top_k, top_p, min_p, typical_p, "
		       "repeat_penalty, repeat_last_n, presence_penalty, frequency_penalty, seed, "
		       "max_tokens",
		       key);
		return;
	}
	if (!*v) {
		notice(c, "usage: /set %s VALUE", key);
		return;
	}
	if (is_int ? parse_long(v, &l) < 0 : parse_double(v, &d) < 0) {
		notice(c, "'%s' is not a valid value for %s", v, key);
		error_clear();
		return;
	}
	if (!strcmp(key, "temperature") && d >= 0)
		s->temperature = d;
	else if (!strcmp(key, "top_k") && l >= 0)
		s->top_k = (int)l;
	else if (!strcmp(key, "top_p") && d > 0 && d <= 1)
		s->top_p = d;
	else if (!strcmp(key, "min_p") && d >= 0 && d <= 1)
		s->min_p = d;
	else if (!strcmp(key, "typical_p") && d > 0 && d <= 1)
		s->typical_p = d;
	else if (!strcmp(key, "repeat_penalty") && d > 0)
		s->repeat_penalty = d;
	else if (!strcmp(key, "repeat_last_n") && l >= 0 && l < (1 << 20))
		s->repeat_last_n = (int)l;
	else if (!strcmp(key, "presence_penalty"))
		s->presence_penalty = d;
	else if (!strcmp(key, "frequency_penalty"))
		s->frequency_penalty = d;
	else if (!strcmp(key, "seed") && l >= 0)
		s->seed = (uint64_t)l;
	else if (!strcmp(key, "max_tokens") && l >= -1 && l < (1 << 30))
		s->max_tokens = (int)l;
	else {
		notice(c, "%s is out of range: %s", key, v);
		return;
	}
	set_hint(c, "%s = %s", key, v);
}

static void cmd_stats(struct chat *c)
{
	const struct engine_stats *s = &c->last_stats;
	if (!c->have_last_stats) {
		notice(c, "No reply yet.");
		return;
	}
	notice(c,
	       "prompt: %d tokens (%d reused from the cache) in %.0f ms, %.1f t/s\n"
	       "reply: %d tokens in %.0f ms, %.1f t/s; first token after %.0f ms\n"
	       "context: %d of %d tokens; stopped by %s%s",
	       s->prompt_tokens, s->reused_tokens, s->prefill_ms, s->prefill_tps, s->gen_tokens,
	       s->decode_ms, s->decode_tps, s->ttft_ms, s->n_ctx_used, s->n_ctx,
	       engine_stop_reason_name(s->stop_reason), s->shifts ? "; the context shifted" : "");
}

static void cmd_model(struct chat *c, const char *args)
{
	if (*args) {
		struct strbuf path = STRBUF_INIT;
		if (!need_idle(c))
			return;
		if (args[0] == '~' && args[1] == '/' && getenv("HOME"))
			strbuf_addf(&path, "%s%s", getenv("HOME"), args + 1);
		else
			strbuf_addstr(&path, args);
		if (access(path.buf, R_OK) < 0) {
			notice(c, "cannot read '%s': %s", path.buf, strerror(errno));
		} else {
			close_model(c);
			open_model(c, path.buf);
		}
		strbuf_release(&path);
		return;
	}
	const struct engine_info *i = c->eng && c->ready ? engine_info(c->eng) : NULL;
	if (!i) {
		notice(c, c->model_path ? "Loading '%s'\xe2\x80\xa6" : "No model is loaded.%s",
		       c->model_path ? c->model_path : "");
		return;
	}
	char size[32], params[32];
	notice(c,
	       "%s (%s)\nfile: %s, %s\n%s parameters, %s weights, vocabulary %d\n"
	       "context %d tokens (trained %d), KV cache %s\nbackend %s, %d threads, "
	       "chat template %s",
	       i->name, i->arch, c->model_path, format_size(size, sizeof(size), i->file_bytes),
	       status_format_count(params, sizeof(params), i->n_params), i->type_name, i->n_vocab,
	       i->n_ctx, i->n_ctx_train, format_size(size, sizeof(size), i->kv_bytes), i->backend,
	       i->n_threads, i->chat_template);
}

static void cmd_system(struct chat *c, const char *args)
{
	if (!*args) {
		if (c->system_prompt && *c->system_prompt)
			notice(c,
			       "System prompt:\n%s\n(/system TEXT changes it, /system off removes it)",
			       c->system_prompt);
		else
			notice(c, "No system prompt. /system TEXT sets one.");
		return;
	}
	free(c->system_prompt);
	c->system_prompt = NULL;
	if (strcmp(args, "off") && strcmp(args, "none"))
		c->system_prompt = xstrdup(args);
	set_hint(c, c->system_prompt ? "system prompt set: it applies from the next reply"
				     : "system prompt removed");
}

static void b64(struct strbuf *out, const unsigned char *s, size_t n)
{
	static const char tab[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	for (size_t i = 0; i < n; i += 3) {
		unsigned v = (unsigned)s[i] << 16;
		if (i + 1 < n)
			v |= (unsigned)s[i + 1] << 8;
		if (i + 2 < n)
			v |= s[i + 2];
		strbuf_addch(out, tab[(v >> 18) & 63]);
		strbuf_addch(out, tab[(v >> 12) & 63]);
		strbuf_addch(out, i + 1 < n ? tab[(v >> 6) & 63] : '=');
		strbuf_addch(out, i + 2 < n ? tab[v & 63] : '=');
	}
}

static void cmd_copy(struct chat *c)
{
	struct chat_msg *m = chat_pane_last(&c->pane, CHAT_ASSISTANT, NULL);
	if (!m || !m->text.len) {
		notice(c, "No reply to copy yet.");
		return;
	}
	struct strbuf sb = STRBUF_INIT;
	strbuf_addstr(&sb, "\x1b]52;c;");
	b64(&sb, (const unsigned char *)m->text.buf, m->text.len);
	strbuf_addstr(&sb, "\x07");
	screen_write_raw(sb.buf, sb.len);
	strbuf_release(&sb);
	set_hint(c, "copied the last reply (%zu bytes) with OSC 52; the terminal must allow it",
		 m->text.len);
}

static void cmd_export(struct chat *c, const char *args)
{
	char name[64];
	const char *path = args;
	if (!*path) {
		time_t t = time(NULL);
		struct tm tm;
		localtime_r(&t, &tm);
		strftime(name, sizeof(name), "palaver-%Y%m%d-%H%M%S.md", &tm);
		path = name;
	}
	FILE *f = fopen(path, "w");
	if (!f) {
		notice(c, "cannot write '%s': %s", path, strerror(errno));
		return;
	}
	fprintf(f, "# %s\n\n", c->st.title[0] ? c->st.title : "palaver chat");
	if (c->model_path)
		fprintf(f, "Model: %s\n\n", c->st.model);
	if (c->system_prompt)
		fprintf(f, "**System:**\n\n%s\n\n", c->system_prompt);
	for (size_t i = 0; i < c->pane.n_msgs; i++) {
		struct chat_msg *m = c->pane.msgs[i];
		if (m->role != CHAT_USER && m->role != CHAT_ASSISTANT)
			continue;
		fprintf(f, "**%s:**%s\n\n%s\n\n",
			m->role == CHAT_USER ? "You" : c->pane.assistant_label,
			m->flags & CHAT_STOPPED ? " (stopped)" : "", m->text.buf);
	}
	if (fclose(f) != 0) {
		notice(c, "cannot write '%s': %s", path, strerror(errno));
		return;
	}
	notice(c, "Wrote the session to '%s'.", path);
}

static void cmd_regen(struct chat *c)
{
	size_t ia, iu;
	if (!need_idle(c))
		return;
	struct chat_msg *u = chat_pane_last(&c->pane, CHAT_USER, &iu);
	if (!u) {
		notice(c, "Nothing to regenerate yet.");
		return;
	}
	struct chat_msg *a = chat_pane_last(&c->pane, CHAT_ASSISTANT, &ia);
	if (a && ia > iu) {
		if (a->id)
			c->reuse_reply_row = a->id; /* the new reply overwrites it in the history */
		chat_pane_remove(&c->pane, ia);
	}
	if (!c->eng || !c->ready) {
		notice(c, "No model is loaded.");
		return;
	}
	submit(c);
}

static void cmd_edit(struct chat *c)
{
	size_t iu;
	if (!need_idle(c))
		return;
	struct chat_msg *u = chat_pane_last(&c->pane, CHAT_USER, &iu);
	if (!u) {
		notice(c, "No message to edit yet.");
		return;
	}
	char *text = xstrdup(u->text.buf);
	/* the message and everything after it go; the input holds it again, and
	 * the next turn overwrites their rows in the history */
	c->reuse_user_row = u->id;
	c->reuse_reply_row = 0;
	for (size_t i = iu + 1; i < c->pane.n_msgs; i++)
		if (c->pane.msgs[i]->role == CHAT_ASSISTANT && c->pane.msgs[i]->id) {
			c->reuse_reply_row = c->pane.msgs[i]->id;
			break;
		}
	while (c->pane.n_msgs > iu)
		chat_pane_remove(&c->pane, c->pane.n_msgs - 1);
	input_set(text);
	free(text);
	set_hint(c, "edit the message and press Enter to send it again");
}

/* Forget the current session (the next message starts a new one). */
static void reset_session(struct chat *c, const char *title)
{
	chat_pane_clear(&c->pane);
	c->sid[0] = '\0';
	free(c->pending_title);
	c->pending_title = title && *title ? xstrdup(title) : NULL;
	c->reuse_user_row = c->reuse_reply_row = 0;
	copy_str(c->st.title, sizeof(c->st.title), title);
	c->st.have_stats = 0;
	c->st.n_spark = 0;
	c->st.ctx_used = 0;
	c->status_dirty = 1;
	c->rule_dirty = 1;
}

static void cmd_new(struct chat *c, const char *title)
{
	if (!need_idle(c))
		return;
	reset_session(c, title);
	free(c->system_prompt); /* a loaded session's system prompt goes with it */
	c->system_prompt = c->cfg->system_prompt ? xstrdup(c->cfg->system_prompt) : NULL;
	set_hint(c, "new session%s%s", *title ? ": " : "", title);
}

static int need_store(struct chat *c)
{
	if (c->store)
		return 1;
	notice(c, "The history is not available in this run%s.",
	       c->cfg->history_enabled ? "" : " (history is turned off)");
	return 0;
}

/* A resumed session keeps the sampling it was held with, except what the
 * user set for this run (in a config file, the environment or a flag). */
static void restore_sampling(struct chat *c, const char *text)
{
	static const struct {
		const char *name; /* in the session's JSON and after "sampling." */
		char type;        /* 'd' double, 'i' int (the seed is not restored: a
				     JSON number cannot hold all 64 bits) */
		size_t off;       /* in struct config_sampling */
	} keys[] = {
		{ "temperature", 'd', offsetof(struct config_sampling, temperature) },
		{ "top_k", 'i', offsetof(struct config_sampling, top_k) },
		{ "top_p", 'd', offsetof(struct config_sampling, top_p) },
		{ "min_p", 'd', offsetof(struct config_sampling, min_p) },
		{ "typical_p", 'd', offsetof(struct config_sampling, typical_p) },
		{ "repeat_penalty", 'd', offsetof(struct config_sampling, repeat_penalty) },
		{ "repeat_last_n", 'i', offsetof(struct config_sampling, repeat_last_n) },
		{ "presence_penalty", 'd', offsetof(struct config_sampling, presence_penalty) },
		{ "frequency_penalty", 'd', offsetof(struct config_sampling, frequency_penalty) },
		{ "max_tokens", 'i', offsetof(struct config_sampling, max_tokens) },
	};
	if (!text || !*text)
		return;
	struct json *j = json_parse(text, strlen(text));
	if (!j) {
		error_clear(); /* an unreadable record: keep the current settings */
		return;
	}
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		char name[64];
		const struct json *v = json_get(j, keys[i].name);
		snprintf(name, sizeof(name), "sampling.%s", keys[i].name);
		int k = config_key_index(name);
		if (!v || v->type != JSON_NUMBER || (k >= 0 && c->cfg->origin[k]))
			continue;
		char *field = (char *)&c->sampling + keys[i].off;
		double d = v->number;
		if (keys[i].type == 'd') {
			memcpy(field, &d, sizeof(d));
		} else if (keys[i].type == 'i' && d >= -1 && d <= 1e9) {
			int iv = (int)d;
			memcpy(field, &iv, sizeof(iv));
		}
	}
	json_free(j);
}

/* Replace the transcript with a saved session; scroll to message row
 * `target` when not 0. */
static void load_session(struct chat *c, const char *id, int64_t target)
{
	struct store_session ss;
	struct store_message *msgs = NULL;
	size_t n = 0;

	if (store_session_get(c->store, id, &ss) < 0) {
		notice(c, "%s", error_message());
		error_clear();
		return;
	}
	if (store_messages_load(c->store, id, &msgs, &n) < 0) {
		store_session_free(&ss);
		store_fail(c);
		return;
	}
	reset_session(c, ss.title);
	free(c->pending_title);
	c->pending_title = NULL;
	memcpy(c->sid, ss.id, sizeof(c->sid));
	free(c->system_prompt);
	c->system_prompt = ss.system_prompt && *ss.system_prompt ? xstrdup(ss.system_prompt) : NULL;
	restore_sampling(c, ss.sampling);

	size_t target_idx = (size_t)-1;
	for (size_t i = 0; i < n; i++) {
		const struct store_message *sm = &msgs[i];
		enum chat_role role;
		if (!strcmp(sm->role, "user"))
			role = CHAT_USER;
		else if (!strcmp(sm->role, "assistant"))
			role = CHAT_ASSISTANT;
		else
			continue; /* the system prompt is the session's, above */
		if (sm->status == STORE_ERROR && !sm->content[0])
			continue;
		struct chat_msg *m = chat_pane_add(&c->pane, role, sm->content);
		m->id = sm->id;
		if (sm->status == STORE_CANCELLED || sm->status == STORE_INTERRUPTED ||
		    sm->status == STORE_STREAMING)
			m->flags |= CHAT_STOPPED;
		else if (sm->status == STORE_ERROR)
			m->flags |= CHAT_FAILED;
		if (sm->id == target)
			target_idx = c->pane.n_msgs - 1;
	}
	if (ss.model && c->model_path && strcmp(base_name(ss.model), base_name(c->model_path)))
		notice(c, "This session was held with '%s'; replies now come from '%s'.",
		       base_name(ss.model), base_name(c->model_path));
	if (target_idx != (size_t)-1 && c->search_query)
		chat_pane_mark(&c->pane, c->pane.msgs[target_idx], c->search_query);
	if (target_idx != (size_t)-1)
		chat_pane_scroll_to(&c->pane, target_idx, c->scr.lay.transcript.w,
				    c->scr.lay.transcript.h);
	else
		chat_pane_scroll_bottom(&c->pane);
	set_hint(c, "opened '%s' (%zu messages)", ss.title[0] ? ss.title : ss.id, n);
	store_messages_free(msgs, n);
	store_session_free(&ss);
}

static void cmd_open(struct chat *c, const char *args)
{
	char id[STORE_ID_SIZE];
	if (!need_idle(c) || !need_store(c))
		return;
	if (!*args) {
		notice(c, "usage: /open ID (an id or the start of a title; /sessions lists them)");
		return;
	}
	if (store_session_resolve(c->store, args, id) < 0) {
		notice(c, "%s", error_message());
		error_clear();
		return;
	}
	load_session(c, id, 0);
}

static void cmd_rename(struct chat *c, const char *args)
{
	if (!*args) {
		notice(c, "usage: /rename TITLE");
		return;
	}
	if (c->store && c->sid[0]) {
		if (store_session_rename(c->store, c->sid, args) < 0) {
			notice(c, "%s", error_message());
			error_clear();
			return;
		}
		refresh_title(c);
	} else {
		free(c->pending_title);
		c->pending_title = xstrdup(args);
		copy_str(c->st.title, sizeof(c->st.title), args);
	}
	c->status_dirty = c->rule_dirty = 1;
	set_hint(c, "renamed to '%s'", c->st.title);
}

static void cmd_delete(struct chat *c, const char *args)
{
	if (!need_idle(c) || !need_store(c))
		return;
	if (!c->sid[0]) {
		notice(c, "This session is not saved yet; /new starts over.");
		return;
	}
	if (strcmp(args, "yes")) {
		notice(c,
		       "Delete the session '%s' and all its messages? Type /delete yes to confirm.",
		       c->st.title[0] ? c->st.title : c->sid);
		return;
	}
	if (store_session_delete(c->store, c->sid) < 0) {
		store_fail(c);
		return;
	}
	reset_session(c, "");
	set_hint(c, "session deleted");
}

static void format_when(char *buf, size_t cap, int64_t ms)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	localtime_r(&t, &tm);
	strftime(buf, cap, "%Y-%m-%d %H:%M", &tm);
}

static void cmd_sessions(struct chat *c)
{
	struct store_session *list = NULL;
	size_t n = 0;
	if (!need_idle(c) || !need_store(c))
		return;
	if (store_session_list(c->store, 500, &list, &n) < 0) {
		store_fail(c);
		return;
	}
	picker_release(&c->picker);
	picker_init(&c->picker, "Sessions", 1);
	for (size_t i = 0; i < n; i++) {
		char when[32];
		struct strbuf d = STRBUF_INIT;
		format_when(when, sizeof(when), list[i].updated_ms);
		strbuf_addf(&d, "%s \xc2\xb7 %lld message%s \xc2\xb7 %s%s", when,
			    (long long)list[i].message_count, list[i].message_count == 1 ? "" : "s",
			    list[i].id, !strcmp(list[i].id, c->sid) ? " (this one)" : "");
		if (list[i].preview && *list[i].preview)
			strbuf_addf(&d, " \xc2\xb7 %s", list[i].preview);
		picker_add(&c->picker, list[i].id,
			   list[i].title && *list[i].title ? list[i].title : "(untitled)", d.buf,
			   0);
		strbuf_release(&d);
	}
	store_sessions_free(list, n);
	c->picker_open = 1;
	c->pane.dirty = 1;
}

static void cmd_search(struct chat *c, const char *query)
{
	struct store_hit *hits = NULL;
	size_t n = 0;
	if (!need_idle(c) || !need_store(c))
		return;
	if (!*query) {
		notice(c, "usage: /search WORDS (all must occur; word* matches a prefix)");
		return;
	}
	if (store_search(c->store, query, 100, PICKER_MARK_OPEN, PICKER_MARK_CLOSE, &hits, &n) <
	    0) {
		notice(c, "%s", error_message());
		error_clear();
		return;
	}
	char heading[128];
	snprintf(heading, sizeof(heading), "Search: %s", query);
	free(c->search_query);
	c->search_query = xstrdup(query);
	picker_release(&c->picker);
	picker_init(&c->picker, heading, 0);
	c->picker.filter_detail = 1; /* titles repeat: the snippets tell hits apart */
	for (size_t i = 0; i < n; i++) {
		char when[32];
		struct strbuf d = STRBUF_INIT;
		format_when(when, sizeof(when), hits[i].updated_ms);
		strbuf_addf(&d, "%s \xc2\xb7 %s: %s", when, hits[i].role, hits[i].snippet);
		picker_add(&c->picker, hits[i].session_id,
			   hits[i].title && *hits[i].title ? hits[i].title : "(untitled)", d.buf,
			   hits[i].message_id);
		strbuf_release(&d);
	}
	store_hits_free(hits, n);
	c->picker_open = 1;
	c->pane.dirty = 1;
}

static void run_command(struct chat *c, const struct slash_command *k, const char *args)
{
	switch (k->id) {
	case SLASH_HELP: show_help(c); break;
	case SLASH_QUIT: c->quit = 1; break;
	case SLASH_SET: cmd_set(c, args); break;
	case SLASH_STATS: cmd_stats(c); break;
	case SLASH_MODEL: cmd_model(c, args); break;
	case SLASH_SYSTEM: cmd_system(c, args); break;
	case SLASH_COPY: cmd_copy(c); break;
	case SLASH_EXPORT: cmd_export(c, args); break;
	case SLASH_REGEN: cmd_regen(c); break;
	case SLASH_EDIT: cmd_edit(c); break;
	case SLASH_NEW: cmd_new(c, args); break;
	case SLASH_CLEAR:
		c->pane.first_shown = c->pane.n_msgs;
		c->pane.scroll = 0;
		c->pane.dirty = 1;
		break;
	case SLASH_SESSIONS: cmd_sessions(c); break;
	case SLASH_OPEN: cmd_open(c, args); break;
	case SLASH_RENAME: cmd_rename(c, args); break;
	case SLASH_DELETE: cmd_delete(c, args); break;
	case SLASH_SEARCH: cmd_search(c, args); break;
	case SLASH_COUNT: break;
	}
}

static void on_line(void *ctx, char *line, int pasted)
{
	struct chat *c = ctx;
	const char *args;
	char *unknown = NULL;

	input_history_add(line);
	if (!line[0] || strspn(line, " \t\n") == strlen(line)) {
		free(line);
		return;
	}
	if (!pasted && !strcmp(line, "/")) {
		/* a lone slash: the user is looking for the commands */
		show_help(c);
		free(line);
		return;
	}
	const struct slash_command *k = pasted ? NULL : slash_parse(line, &args, &unknown);
	if (k) {
		run_command(c, k, args);
	} else if (unknown) {
		const char *s = slash_suggest(unknown);
		if (s)
			notice(c,
			       "Unknown command /%s. Did you mean /%s? (/help lists them; // "
			       "starts a message with /)",
			       unknown, s);
		else
			notice(c,
			       "Unknown command /%s. /help lists the commands; // starts a "
			       "message with /.",
			       unknown);
		free(unknown);
	} else {
		send_message(c, !pasted && line[0] == '/' && line[1] == '/' ? line + 1 : line);
	}
	free(line);
}

/* ---- keys --------------------------------------------------------------- */

static void complete(struct chat *c)
{
	const char *cand[SLASH_COUNT + 16];
	size_t ws, common;
	const char *line = input_text();
	int n = slash_complete(line, set_keys, cand, (int)(sizeof(cand) / sizeof(cand[0])), &ws,
			       &common);
	if (!n)
		return;
	size_t have = strlen(line) - ws;
	if (common > have) {
		char add[64];
		size_t k = common - have;
		if (k >= sizeof(add))
			k = sizeof(add) - 1;
		memcpy(add, cand[0] + have, k);
		add[k] = '\0';
		input_insert(add, 0);
	}
	if (n == 1) {
		input_insert(" ", 0);
		c->hint[0] = '\0';
		c->hint_dirty = 1;
		return;
	}
	struct strbuf sb = STRBUF_INIT;
	for (int i = 0; i < n; i++)
		strbuf_addf(&sb, "%s%s", i ? "  " : "", cand[i]);
	set_hint(c, "%s", sb.buf);
	strbuf_release(&sb);
}

static int page(struct chat *c)
{
	int h = c->scr.lay.transcript.h;
	return h > 3 ? h - 2 : 1;
}

static void picker_close(struct chat *c)
{
	c->picker_open = 0;
	picker_release(&c->picker);
	c->pane.dirty = 1;
}

static void picker_key(struct chat *c, const struct key *k)
{
	struct picker *p = &c->picker;
	int rows = picker_rows(c->scr.lay.transcript.h);
	char ch = k->len == 1 ? k->bytes[0] : 0;

	c->pane.dirty = 1;
	if (p->confirm) {
		p->confirm = 0;
		const struct picker_item *it = picker_selected(p);
		if (k->type == K_BYTES && (ch == 'y' || ch == 'Y') && it && c->store) {
			int current = !strcmp(it->key, c->sid);
			if (store_session_delete(c->store, it->key) < 0) {
				store_fail(c);
				picker_close(c);
				return;
			}
			picker_remove_selected(p);
			if (current)
				reset_session(c, "");
		}
		return;
	}
	switch (k->type) {
	case K_UP: picker_move(p, -1, rows); return;
	case K_DOWN: picker_move(p, 1, rows); return;
	case K_PGUP: picker_move(p, -rows, rows); return;
	case K_PGDN: picker_move(p, rows, rows); return;
	case K_HOME: picker_move(p, -(long)p->n_shown, rows); return;
	case K_END: picker_move(p, (long)p->n_shown, rows); return;
	case K_WHEEL_UP: picker_move(p, -1, rows); return;
	case K_WHEEL_DOWN: picker_move(p, 1, rows); return;
	case K_ENTER:
		if (p->filtering) {
			p->filtering = 0;
			return;
		}
		{
			const struct picker_item *it = picker_selected(p);
			if (!it)
				return;
			char id[STORE_ID_SIZE];
			int64_t target = it->target;
			copy_str(id, sizeof(id), it->key);
			picker_close(c);
			load_session(c, id, target);
		}
		return;
	case K_ESC:
	case K_CTRL_C:
		if (p->filtering) {
			p->filtering = 0;
			strbuf_reset(&p->filter);
			picker_refilter(p);
		} else {
			picker_close(c);
		}
		return;
	case K_BACKSPACE:
		if (p->filter.len) {
			strbuf_setlen(&p->filter,
				      p->filter.len - utf8_prev(p->filter.buf, p->filter.len));
			picker_refilter(p);
		}
		return;
	case K_BYTES:
		if (p->filtering) {
			for (size_t i = 0; i < k->len; i++)
				if ((unsigned char)k->bytes[i] >= 0x20 && k->bytes[i] != 0x7f)
					strbuf_addch(&p->filter, k->bytes[i]);
			picker_refilter(p);
		} else if (ch == '/') {
			p->filtering = 1;
		} else if (ch == 'd' && p->deletable && picker_selected(p)) {
			p->confirm = 1;
		} else if (ch == 'q') {
			picker_close(c);
		} else if (ch == 'j') {
			picker_move(p, 1, rows);
		} else if (ch == 'k') {
			picker_move(p, -1, rows);
		}
		return;
	case K_CTRL_D: picker_close(c); return;
	default: return;
	}
}

static void on_key(void *ctx, const struct key *k)
{
	struct chat *c = ctx;
	int tw = c->scr.lay.transcript.w, th = c->scr.lay.transcript.h;

	if (k->type == K_REDRAW) {
		c->redraw = 1;
		return;
	}
	if (k->type == K_SUSPEND) {
		screen_suspend(&c->scr);
		c->redraw = 1;
		return;
	}
	if (c->picker_open) {
		/* fast typing brings several keys in one run: one at a time here,
		 * since "d" then "y" mean different things */
		if (k->type == K_BYTES && k->len > 1 && k->bytes[0] != 0x1b) {
			size_t i = 0;
			for (; i < k->len && c->picker_open; i++) {
				struct key one = { K_BYTES, k->bytes + i, 1 };
				picker_key(c, &one);
			}
			if (i < k->len) /* the picker closed: the rest is typing */
				input_feed(k->bytes + i, k->len - i);
			return;
		}
		picker_key(c, k);
		return;
	}

	if (c->hint[0] && k->type != K_IGNORE) {
		/* any key ends a transient hint, except the one that made it */
		c->hint_until = time_now_ms() + 1500;
	}
	switch (k->type) {
	case K_BYTES:
	case K_UP:
	case K_DOWN:
	case K_BACKSPACE: input_feed(k->bytes, k->len); break;
	case K_PASTE: {
		/* verbatim, less NUL bytes (readline holds C strings) */
		struct strbuf sb = STRBUF_INIT;
		for (size_t i = 0; i < k->len; i++)
			if (k->bytes[i])
				strbuf_addch(&sb, k->bytes[i]);
		input_insert(sb.buf, 1);
		strbuf_release(&sb);
		break;
	}
	case K_ENTER:
		if (input_empty())
			break;
		if (c->busy) {
			const char *t = input_text();
			const char *args;
			char *unknown = NULL;
			const struct slash_command *cmd =
				input_pasted() ? NULL : slash_parse(t, &args, &unknown);
			free(unknown);
			if (!cmd || cmd->idle) {
				set_hint(
					c,
					"a reply is streaming: press Esc to stop it, or wait; your text stays here");
				break;
			}
		}
		input_feed("\r", 1);
		break;
	case K_NEWLINE: input_insert("\n", 0); break;
	case K_TAB: complete(c); break;
	case K_ESC:
		if (c->busy)
			cancel_reply(c);
		break;
	case K_CTRL_C:
		if (c->busy) {
			cancel_reply(c);
		} else if (!input_empty()) {
			input_set("");
		} else {
			set_hint(c, "to quit, press Ctrl-D or type /quit");
		}
		break;
	case K_CTRL_D:
		if (input_empty())
			c->quit = 1;
		else
			input_feed(k->bytes, k->len);
		break;
	case K_PGUP: chat_pane_scroll(&c->pane, page(c), tw, th); break;
	case K_PGDN: chat_pane_scroll(&c->pane, -page(c), tw, th); break;
	case K_HOME:
		if (input_empty())
			chat_pane_scroll_top(&c->pane, tw, th);
		else
			input_feed(k->bytes, k->len);
		break;
	case K_END:
		if (input_empty())
			chat_pane_scroll_bottom(&c->pane);
		else
			input_feed(k->bytes, k->len);
		break;
	case K_WHEEL_UP: chat_pane_scroll(&c->pane, 3, tw, th); break;
	case K_WHEEL_DOWN: chat_pane_scroll(&c->pane, -3, tw, th); break;
	case K_IGNORE: break;
	case K_REDRAW:
	case K_SUSPEND: break; /* handled above */
	}
}

/* ---- drawing ------------------------------------------------------------ */

/* The key hint for the state we are in: the longest variant that fits. */
static const char *default_hint(const struct chat *c, int width)
{
	static const char *const busy[] = {
		"Esc stop \xc2\xb7 PgUp/PgDn scroll \xc2\xb7 typing is kept for later",
		"Esc stop \xc2\xb7 PgUp/PgDn scroll",
		"Esc stop",
		NULL,
	};
	static const char *const scrolled[] = {
		"PgUp/PgDn scroll \xc2\xb7 End back to the bottom \xc2\xb7 /help",
		"PgUp/PgDn \xc2\xb7 End bottom",
		"End bottom",
		NULL,
	};
	static const char *const idle[] = {
		"Enter send \xc2\xb7 Alt-Enter newline \xc2\xb7 Esc stop \xc2\xb7 /help \xc2\xb7 Ctrl-D quit",
		"Enter send \xc2\xb7 Esc stop \xc2\xb7 /help \xc2\xb7 Ctrl-D quit",
		"Enter send \xc2\xb7 /help \xc2\xb7 Ctrl-D quit",
		"/help \xc2\xb7 Ctrl-D quit",
		NULL,
	};
	const char *const *v = c->busy ? busy : c->pane.scroll > 0 ? scrolled : idle;
	int i = 0;
	while (v[i + 1] && wrap_width(v[i], strlen(v[i])) > width - 2)
		i++;
	return v[i];
}

static void draw_hint(struct chat *c, WINDOW *w, int width)
{
	const char *t = c->hint[0] ? c->hint : default_hint(c, width);
	werase(w);
	wattrset(w, (attr_t)theme_attr(c->hint[0] ? TH_NOTICE : TH_HINT));
	/* cut at the width, on a character boundary */
	size_t n = 0, len = strlen(t);
	int col = 0;
	while (n < len) {
		uint32_t cp;
		size_t k = utf8_decode(t + n, len - n, &cp);
		int cw = wrap_cp_width(cp);
		if (col + cw > width - 2)
			break;
		col += cw;
		n += k;
	}
	mvwaddnstr(w, 0, 1, t, (int)n);
	wattrset(w, A_NORMAL);
}

static void draw_rule(struct chat *c, WINDOW *w, int width)
{
	werase(w);
	wattrset(w, (attr_t)theme_attr(TH_RULE));
	for (int x = 0; x < width; x++)
		mvwaddstr(w, 0, x, "\xe2\x94\x80"); /* ─ */
	if (c->st.title[0] && width > 20) {
		char buf[160];
		snprintf(buf, sizeof(buf), " %s ", c->st.title);
		size_t n = strlen(buf);
		int wdt = wrap_width(buf, n);
		if (wdt < width - 4)
			mvwaddnstr(w, 0, 2, buf, (int)n);
	}
	wattrset(w, A_NORMAL);
}

static void draw(struct chat *c)
{
	struct screen *s = &c->scr;
	double now = time_now_ms();
	int all = screen_relayout(s, input_rows(COLS));
	if (c->redraw) {
		c->redraw = 0;
		clearok(curscr, TRUE); /* the next doupdate repaints every cell */
		all = 1;
	}

	if (s->lay.too_small) {
		if (all || c->pane.dirty || c->status_dirty) {
			erase();
			mvaddnstr(0, 0, "terminal too small", COLS);
			refresh();
			c->pane.dirty = c->status_dirty = 0;
		}
		return;
	}
	if (c->hint[0] && now >= c->hint_until) {
		c->hint[0] = '\0';
		c->hint_dirty = 1;
	}
	int any = all;
	if (s->transcript && (all || (c->pane.dirty && (!c->busy || now - c->last_transcript_draw >=
									    TRANSCRIPT_MIN_MS)))) {
		if (c->picker_open) {
			picker_draw(&c->picker, s->transcript, s->lay.transcript.h,
				    s->lay.transcript.w);
			c->pane.dirty = 0;
		} else {
			chat_pane_draw(&c->pane, s->transcript, s->lay.transcript.h,
				       s->lay.transcript.w);
		}
		wnoutrefresh(s->transcript);
		c->last_transcript_draw = now;
		any = 1;
		c->hint_dirty = 1; /* the default hint depends on the scroll position */
	}
	if (s->status && (all || (c->status_dirty && now - c->last_status_draw >= STATUS_MIN_MS))) {
		c->st.rss = rss_current();
		status_pane_draw(&c->st, s->status, s->lay.status_mode == STATUS_COLUMN,
				 s->lay.status.h, s->lay.status.w);
		wnoutrefresh(s->status);
		c->last_status_draw = now;
		c->status_dirty = 0;
		any = 1;
	} else if (!s->status) {
		c->status_dirty = 0;
	}
	if (s->rule && (all || c->rule_dirty)) {
		draw_rule(c, s->rule, s->lay.rule.w);
		wnoutrefresh(s->rule);
		c->rule_dirty = 0;
		any = 1;
	}
	if (s->hint && (all || c->hint_dirty)) {
		draw_hint(c, s->hint, s->lay.hint.w);
		wnoutrefresh(s->hint);
		any = 1;
	}
	c->hint_dirty = 0;
	if (s->input && (any || input_dirty())) {
		const char *ph = c->busy ? NULL
				 : !c->eng || c->st.state == STATE_FAILED
					 ? "no model: /model FILE.gguf loads one"
					 : "type a message, /help for help";
		input_draw(s->input, s->lay.input.h, s->lay.input.w, ph);
		wnoutrefresh(s->input); /* last, so the cursor ends up in the input */
		any = 1;
	}
	if (any)
		doupdate();
}

/* Milliseconds until something must be drawn or sampled without input
 * (-1: nothing, wait for input). */
static int poll_timeout(struct chat *c)
{
	double now = time_now_ms(), t = 1e18;
	if (keys_waiting(&c->keys) && c->esc_since + KEYS_ESC_MS - now < t)
		t = c->esc_since + KEYS_ESC_MS - now;
	if (c->pane.dirty && c->last_transcript_draw + TRANSCRIPT_MIN_MS - now < t)
		t = c->last_transcript_draw + TRANSCRIPT_MIN_MS - now;
	if (c->status_dirty && c->last_status_draw + STATUS_MIN_MS - now < t)
		t = c->last_status_draw + STATUS_MIN_MS - now;
	if (c->hint[0] && c->hint_until - now < t)
		t = c->hint_until - now;
	if (c->busy && SAMPLE_MS < t)
		t = SAMPLE_MS;
	if (t >= 1e17)
		return -1;
	return t <= 0 ? 0 : (int)t + 1;
}

/* ---- set-up ------------------------------------------------------------- */

static void welcome(struct chat *c)
{
	int mk = config_key_index("model");
	if (c->cfg->model && mk >= 0 && c->cfg->origin[mk] &&
	    !strcmp(c->cfg->origin[mk], CONFIG_BUILTIN_ORIGIN)) {
		notice(c,
		       "Welcome to palaver. This is palaver-tiny, the small model palaver ships: "
		       "ask it about palaver's commands, keys and settings, or what an English "
		       "word means. It is not a general assistant: for real conversations start "
		       "palaver with -m FILE.gguf, set model: in ~/.config/palaver/config.yaml, "
		       "or load one now with /model FILE.gguf.\n"
		       "/help lists the commands; Ctrl-D quits.");
	}
	if (!c->cfg->model) {
		notice(c, "Welcome to palaver. No model is configured yet.\n"
			  "Start palaver with -m FILE.gguf, set model: /path/to/FILE.gguf in "
			  "~/.config/palaver/config.yaml, or load one now with /model FILE.gguf.\n"
			  "/help lists the commands; Ctrl-D quits.");
	}
}

static void open_history(struct chat *c)
{
	if (!c->cfg->history_enabled) {
		if (c->cfg->session)
			notice(c, "--session needs the history, which is turned off.");
		return;
	}
	c->store = store_open(c->cfg->history_path);
	if (!c->store) {
		store_fail(c);
		return;
	}
	if (c->cfg->session) {
		char id[STORE_ID_SIZE];
		if (store_session_resolve(c->store, c->cfg->session, id) < 0) {
			error_notice(c, "%s", error_message());
			error_clear();
			return;
		}
		load_session(c, id, 0);
	}
}

/* The screen is drawn in UTF-8 and measured with wcwidth().  An unset or
 * "C" locale (containers, ssh) would garble it on what is nearly always a
 * UTF-8 terminal: take a UTF-8 LC_CTYPE then. */
static void utf8_ctype(void)
{
	if (strcmp(nl_langinfo(CODESET), "UTF-8") && !setlocale(LC_CTYPE, "C.UTF-8"))
		setlocale(LC_CTYPE, "en_US.UTF-8");
}

static char *input_history_path(void)
{
	struct strbuf sb = STRBUF_INIT;
	if (xdg_path(&sb, "XDG_STATE_HOME", ".local/state", "input_history") < 0) {
		strbuf_release(&sb);
		error_clear();
		return NULL;
	}
	return strbuf_detach(&sb, NULL);
}

int chat_run(struct config *cfg)
{
	struct chat c;
	int rc = EXIT_OK;

	memset(&c, 0, sizeof(c));
	c.cfg = cfg;
	c.sampling = cfg->sampling;
	if (cfg->system_prompt)
		c.system_prompt = xstrdup(cfg->system_prompt);
	/* characters from the environment; numbers stay in the C locale that
	 * main() left (config values, /set, the sampling JSON in the history) */
	setlocale(LC_CTYPE, "");
	utf8_ctype();
	chat_pane_init(&c.pane);
	c.pane.markdown = 1;
	c.pane.word_wrap = cfg->ui_word_wrap;
	keys_init(&c.keys);
	picker_init(&c.picker, "", 0);
	c.st.state = STATE_NO_MODEL;

	if (screen_open(&c.scr, cfg->ui_theme, cfg->ui_status_pane, 1) < 0) {
		screen_close(&c.scr);
		fprintf(stderr, "palaver: %s\n", error_message());
		return EXIT_RUNTIME;
	}
	char *hist = input_history_path();
	if (input_open(hist, on_line, &c) < 0) {
		screen_close(&c.scr);
		fprintf(stderr, "palaver: %s\n", error_message());
		free(hist);
		return EXIT_RUNTIME;
	}
	free(hist);
	utf8_ctype(); /* readline sets LC_CTYPE from the environment again */
	if (c.scr.bad_theme)
		notice(&c, "Unknown theme '%s'; using the default (themes: default, light, mono).",
		       cfg->ui_theme);
	welcome(&c);
	open_history(&c);
	/* the first frame draws everything */
	c.pane.dirty = c.status_dirty = c.rule_dirty = c.hint_dirty = 1;
	if (cfg->model)
		open_model(&c, cfg->model);

	while (!c.quit) {
		struct pollfd fds[3];
		int nfds = 0;
		draw(&c);
		fds[nfds++] = (struct pollfd){ .fd = STDIN_FILENO, .events = POLLIN };
		fds[nfds++] = (struct pollfd){ .fd = screen_signal_fd(), .events = POLLIN };
		if (c.eng)
			fds[nfds++] =
				(struct pollfd){ .fd = engine_wakeup_fd(c.eng), .events = POLLIN };
		int n = poll(fds, (nfds_t)nfds, poll_timeout(&c));
		if (n < 0 && errno != EINTR) {
			rc = EXIT_RUNTIME;
			break;
		}
		if (fds[1].revents & POLLIN) {
			int sig;
			while ((sig = screen_take_signal()) != 0) {
				if (sig == SIGWINCH) {
					screen_resize(&c.scr);
					c.pane.dirty = c.status_dirty = c.rule_dirty =
						c.hint_dirty = 1;
				} else {
					c.quit = 1;
				}
			}
		}
		if (nfds > 2 && (fds[2].revents & (POLLIN | POLLERR | POLLHUP)))
			drain_engine(&c);
		if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
			char buf[4096];
			ssize_t r = read(STDIN_FILENO, buf, sizeof(buf));
			if (r > 0) {
				int was_waiting = keys_waiting(&c.keys);
				keys_feed(&c.keys, buf, (size_t)r, on_key, &c);
				if (!was_waiting || !keys_waiting(&c.keys))
					c.esc_since = time_now_ms();
			} else if (r == 0 || (errno != EINTR && errno != EAGAIN)) {
				c.quit = 1; /* the terminal went away */
			}
		}
		/* a lone Esc is known when nothing followed it in time; the
		 * engine's wakeups must not keep postponing that */
		if (keys_waiting(&c.keys) && time_now_ms() - c.esc_since >= KEYS_ESC_MS)
			keys_flush(&c.keys, on_key, &c);
		if (c.busy)
			sample_speed(&c, time_now_ms(), 0);
	}

	close_model(&c);
	if (c.store)
		store_close(c.store);
	picker_release(&c.picker);
	free(c.pending_title);
	free(c.search_query);
	input_close();
	screen_close(&c.scr);
	keys_release(&c.keys);
	chat_pane_release(&c.pane);
	free(c.system_prompt);
	free(c.model_path);
	return rc;
}
