/* Batch mode: stdin (or -p TEXT) to stdout through the engine; replies only on stdout. */
#include "config.h"
#include "engine.h"
#include "log.h"
#include "modes.h"
#include "report.h"
#include "store.h"
#include "strbuf.h"
#include "untrusted.h"
#include "util.h"
#include "xalloc.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/*
 * DESIGN
 * The input is cut into turns (--split: paragraphs, lines, or all of it);
 * the turns are the user messages of one conversation, answered in order,
 * each reply streamed to stdout as it comes and followed by a newline (a
 * blank line between replies).  Nothing else goes to stdout: load progress,
 * warnings, the session id and --stats go to stderr.  With --json, one
 * object per turn instead (JSONL).  The output depends only on the input,
 * the model and the settings (seed included): the engine is deterministic.
 * A reply's thinking is left out (--reasoning hide), printed before its
 * answer with a blank line between (show) or sent to stderr (stderr); the
 * JSON has it in "reasoning".  Later turns send answers without thinking.
 *
 * SIGINT cancels the reply being generated (engine_cancel() stores an
 * atomic flag, safe in a handler); what was produced is printed and saved
 * as cancelled, and palaver exits 130.  SIGTERM and SIGHUP (a shutdown, a
 * closed terminal) do the same with 143 and 129: killed outright, the
 * reply's last second was lost and its row left 'streaming'.
 */

/* A reply's text or thinking, as the model wrote it (its pieces come from
 * the file): sanitized when f is a terminal, else unchanged.  Standard
 * output's writes are checked (out_write). */
static void put_reply(FILE *f, const char *s, size_t n, int tty)
{
	struct strbuf sb = STRBUF_INIT;
	if (tty) {
		untrusted_add(&sb, s, n, UNTRUSTED_MULTILINE);
		s = sb.buf;
		n = sb.len;
	}
	if (f == stdout) {
		out_write(s, n);
	} else {
		fwrite(s, 1, n, f);
		fflush(f);
	}
	strbuf_release(&sb);
}

static struct engine *volatile sig_engine;
static volatile sig_atomic_t interrupted; /* the first signal that stopped us, or 0 */

static void on_signal(int sig)
{
	if (!interrupted)
		interrupted = sig;
	if (sig_engine)
		engine_cancel(sig_engine);
}

/* A growable list of messages (texts owned). */
struct convo {
	struct engine_message *m;
	int n, alloc;
};

static void convo_add(struct convo *c, enum engine_role role, const char *text, size_t len)
{
	if (c->n == c->alloc) {
		c->alloc = c->alloc ? c->alloc * 2 : 16;
		c->m = xrealloc_array(c->m, (size_t)c->alloc, sizeof(*c->m));
	}
	c->m[c->n].role = role;
	c->m[c->n].text = xstrndup(text, len);
	c->n++;
}

static void convo_free(struct convo *c)
{
	for (int i = 0; i < c->n; i++)
		free((char *)c->m[i].text);
	free(c->m);
}

/* ---- input ----------------------------------------------------------------------- */

static int blank_line(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r')
			return 0;
	return 1;
}

/* Drop trailing newlines (and the \r of CRLF input). */
static size_t trim_newlines(const char *s, size_t n)
{
	while (n && (s[n - 1] == '\n' || s[n - 1] == '\r'))
		n--;
	return n;
}

/* Cut the input into turns (each a malloc'd string in *turns). */
static void split_input(const char *in, size_t len, int mode, struct convo *turns)
{
	if (mode == BATCH_SPLIT_ALL) {
		size_t n = trim_newlines(in, len);
		if (n && !blank_line(in, n))
			convo_add(turns, ENGINE_ROLE_USER, in, n);
		return;
	}
	size_t para = 0, para_end = 0; /* current paragraph [para, para_end) */
	int in_para = 0;
	for (size_t i = 0; i < len;) {
		const char *nl = memchr(in + i, '\n', len - i);
		size_t end = nl ? (size_t)(nl - in) : len;
		size_t next = nl ? end + 1 : len;
		int blank = blank_line(in + i, end - i);
		if (mode == BATCH_SPLIT_LINE) {
			size_t n = end - i;
			if (n && in[i + n - 1] == '\r')
				n--;
			if (!blank)
				convo_add(turns, ENGINE_ROLE_USER, in + i, n);
		} else if (blank) {
			if (in_para)
				convo_add(turns, ENGINE_ROLE_USER, in + para,
					  trim_newlines(in + para, para_end - para));
			in_para = 0;
		} else {
			if (!in_para)
				para = i;
			in_para = 1;
			para_end = end;
		}
		i = next;
	}
	if (in_para)
		convo_add(turns, ENGINE_ROLE_USER, in + para,
			  trim_newlines(in + para, para_end - para));
}

/* ---- history ---------------------------------------------------------------------- */

/* The history store, or NULL once it failed (said once on stderr). */
struct hist {
	struct store *st;
	char sid[STORE_ID_SIZE]; /* "" until the session exists */
	const char *backend;     /* recorded with each reply: "cpu", "remote" */
	const char *model;       /* its GGUF path or URL#MODEL */
	int kv;                  /* saved KV states are on */
	int kv_pending;          /* a KV_SAVED is still to come */
};

static void hist_fail(struct hist *h)
{
	log_error("batch: history is unavailable: %s", error_message());
	report("history is unavailable: %s", error_message());
	error_clear();
	if (h->st)
		store_close(h->st);
	h->st = NULL;
}

/* The model as sessions record it: an absolute path, so that --session
 * finds it from any directory (malloc'd). */
static char *model_path_abs(const char *path)
{
	char *abs = realpath(path, NULL);
	return abs ? abs : xstrdup(path);
}

/* A reply from a remote server is recorded with "URL#MODEL" as its model:
 * the URL is the server's display form (no credentials), and --session
 * finds the server again from it (malloc'd). */
static char *remote_label(const struct engine_info *in)
{
	struct strbuf sb = STRBUF_INIT;
	strbuf_addf(&sb, "%s#%s", in->server, in->name);
	return strbuf_detach(&sb, NULL);
}

/* Is model a remote label?  Then 1 and its URL and model (malloc'd). */
static int remote_split(const char *model, char **url, char **name)
{
	const char *hash = strrchr(model, '#');
	if (strncmp(model, "http://", 7) && strncmp(model, "https://", 8))
		return 0;
	if (!hash)
		return 0;
	*url = xstrndup(model, (size_t)(hash - model));
	*name = xstrdup(hash + 1);
	return 1;
}

/* Create the session on the first turn. */
static void hist_session(struct hist *h, const struct config *cfg, const char *model,
			 const char *system)
{
	struct strbuf js = STRBUF_INIT;
	if (!h->st || h->sid[0])
		return;
	config_sampling_json(&cfg->sampling, &js);
	struct store_session_params p = { NULL, model, system, js.buf };
	if (store_session_create(h->st, &p, h->sid) < 0) {
		h->sid[0] = 0;
		hist_fail(h);
	} else {
		report("session %s", h->sid);
	}
	strbuf_release(&js);
}

/*
 * --session ID: the session's system prompt and messages become the
 * conversation, and its model is used when none is configured (*model, a
 * malloc'd copy).  A different model or sampling is recorded on the
 * session.  -1 when it cannot be resumed (message printed).
 */
static int hist_resume(struct hist *h, const struct config *cfg, struct convo *c, char **system,
		       char **model)
{
	const char *query = cfg->session;
	struct store_session ss;
	struct store_message *msgs;
	size_t n;
	if (!h->st) {
		report("cannot continue session '%s': history is unavailable", query);
		return -1;
	}
	if (store_session_resolve(h->st, query, h->sid) < 0 ||
	    store_session_get(h->st, h->sid, &ss) < 0) {
		report("%s", error_message());
		return -1;
	}
	if (ss.system_prompt && *ss.system_prompt) {
		free(*system);
		*system = xstrdup(ss.system_prompt);
	}
	if (cfg->remote_url)
		*model = xstrdup(""); /* known once the server answers: remote_session() */
	else if (cfg->model && *cfg->model)
		*model = model_path_abs(cfg->model);
	else
		*model = xstrdup(ss.model ? ss.model : "");
	struct strbuf js = STRBUF_INIT;
	config_sampling_json(&cfg->sampling, &js);
	int changed = **model && (!ss.model || strcmp(ss.model, *model) || !ss.sampling ||
				  strcmp(ss.sampling, js.buf));
	store_session_free(&ss);
	if (store_messages_load(h->st, h->sid, &msgs, &n) < 0) {
		report("%s", error_message());
		strbuf_release(&js);
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		enum engine_role role;
		if (!strcmp(msgs[i].role, "user"))
			role = ENGINE_ROLE_USER;
		else if (!strcmp(msgs[i].role, "assistant"))
			role = ENGINE_ROLE_ASSISTANT;
		else if (!strcmp(msgs[i].role, "system"))
			role = ENGINE_ROLE_SYSTEM;
		else
			continue;
		if (msgs[i].status == STORE_ERROR && !*msgs[i].content)
			continue;
		if (msgs[i].status == STORE_STREAMING)
			continue;
		convo_add(c, role, msgs[i].content, strlen(msgs[i].content));
	}
	store_messages_free(msgs, n);
	report("session %s", h->sid);
	/* run with another model or sampling: the session says so from now on */
	if (changed) {
		struct store_session_params p = { NULL, *model, NULL, js.buf };
		if (store_session_set(h->st, h->sid, &p) < 0)
			hist_fail(h);
	}
	strbuf_release(&js);
	return 0;
}

/* ---- running ---------------------------------------------------------------------- */

/* The remote server's settings (url: NULL = a local model). */
struct remote_cfg {
	char *url, *model;
};

/* The engine saved (or could not save) the session's KV state: the row points at it. */
static void on_kv_saved(struct hist *h, const struct engine_event *ev)
{
	h->kv_pending = 0;
	if (ev->message)
		warning("the KV cache was not saved: %s", ev->message);
	/* only a pointer (the engine finds the file by its name): a failure to
	 * record it is no reason to give up the history */
	if (ev->path && h->st && ev->text &&
	    store_session_set_kv_state(h->st, ev->text, ev->path) < 0)
		error_clear();
}

/* Wait for the next event (poll on the wakeup fd; EINTR from SIGINT is fine). */
static void wait_event(struct engine *e, struct engine_event *ev, int timeout_ms, int *got)
{
	*got = engine_next_event(e, ev);
	if (*got)
		return;
	struct pollfd p = { engine_wakeup_fd(e), POLLIN, 0 };
	if (poll(&p, 1, timeout_ms) < 0 && errno != EINTR)
		return;
	*got = engine_next_event(e, ev);
}

/* Totals for --stats. */
struct totals {
	double load_ms, t0;
	int prompt_tokens, reused_tokens, restored_tokens, gen_tokens, turns;
	double prefill_ms, decode_ms, restore_ms;
	uint64_t peak_rss;
};

static void print_stats(const struct totals *t)
{
	char rss[32];
	double total = time_now_ms() - t->t0;
	fprintf(stderr, "total duration:       %.3fs\n", total / 1000.0);
	fprintf(stderr, "load duration:        %.3fs\n", t->load_ms / 1000.0);
	fprintf(stderr, "turns:                %d\n", t->turns);
	fprintf(stderr, "prompt eval count:    %d token(s)\n", t->prompt_tokens - t->reused_tokens);
	fprintf(stderr, "prompt reused:        %d token(s) of %d\n", t->reused_tokens,
		t->prompt_tokens);
	fprintf(stderr, "prompt restored:      %d token(s) in %.3fs (saved KV cache)\n",
		t->restored_tokens, t->restore_ms / 1000.0);
	fprintf(stderr, "prompt eval duration: %.3fs\n", t->prefill_ms / 1000.0);
	fprintf(stderr, "prompt eval rate:     %.2f tokens/s\n",
		t->prefill_ms > 0 ? (t->prompt_tokens - t->reused_tokens) * 1000.0 / t->prefill_ms
				  : 0.0);
	fprintf(stderr, "eval count:           %d token(s)\n", t->gen_tokens);
	fprintf(stderr, "eval duration:        %.3fs\n", t->decode_ms / 1000.0);
	fprintf(stderr, "eval rate:            %.2f tokens/s\n",
		t->decode_ms > 0 ? t->gen_tokens * 1000.0 / t->decode_ms : 0.0);
	fprintf(stderr, "peak memory:          %s\n", format_size(rss, sizeof(rss), t->peak_rss));
}

static void print_json(int turn, const char *prompt, const struct engine_event *done)
{
	const struct engine_stats *s = &done->stats;
	struct strbuf o = STRBUF_INIT;
	strbuf_addf(&o, "{\"turn\":%d,\"prompt\":\"", turn);
	strbuf_add_json_escaped(&o, prompt, strlen(prompt));
	strbuf_addstr(&o, "\",\"reply\":\"");
	strbuf_add_json_escaped(&o, done->text ? done->text : "", done->len);
	strbuf_addf(&o,
		    "\",\"stop_reason\":\"%s\",\"prompt_tokens\":%d,\"reused_tokens\":%d,"
		    "\"gen_tokens\":%d,\"dropped_turns\":%d,\"shifts\":%d,\"prefill_ms\":%.3f,"
		    "\"prefill_tps\":%.3f,\"ttft_ms\":%.3f,\"decode_ms\":%.3f,\"decode_tps\":%.3f,"
		    "\"restored_tokens\":%d,\"restore_ms\":%.3f,\"reasoning\":",
		    engine_stop_reason_name(s->stop_reason), s->prompt_tokens, s->reused_tokens,
		    s->gen_tokens, s->dropped_turns, s->shifts, s->prefill_ms, s->prefill_tps,
		    s->ttft_ms, s->decode_ms, s->decode_tps, s->restored_tokens, s->restore_ms);
	/* the reply's thinking, null when it did not think */
	if (done->reasoning_text) {
		strbuf_addch(&o, '"');
		strbuf_add_json_escaped(&o, done->reasoning_text, done->reasoning_len);
		strbuf_addstr(&o, "\"}\n");
	} else {
		strbuf_addstr(&o, "null}\n");
	}
	out_write(o.buf, o.len);
	strbuf_release(&o);
}

/*
 * Turns from..n-1 of a batch that stopped (a turn refused, e.g. its prompt
 * no longer fits the context with context_overflow: stop): each gets its
 * outcome, so that no turn is silently dropped.  With --json, one line per
 * turn still, its reply null and the reason in "error"; on stderr, which
 * turns are not answered.
 */
static void unanswered(const struct config *cfg, const struct convo *turns, int from, int failed,
		       const char *why)
{
	if (from >= turns->n)
		return;
	if (from + 1 == turns->n)
		report("turn %d is not answered", from + 1);
	else
		report("turns %d to %d are not answered", from + 1, turns->n);
	if (!cfg->json)
		return;
	for (int t = from; t < turns->n && !out_gone(); t++) {
		struct strbuf o = STRBUF_INIT;
		strbuf_addf(&o, "{\"turn\":%d,\"prompt\":\"", t + 1);
		strbuf_add_json_escaped(&o, turns->m[t].text, strlen(turns->m[t].text));
		strbuf_addstr(&o, "\",\"reply\":null,\"error\":\"");
		if (t + 1 == failed && why && *why)
			strbuf_add_json_escaped(&o, why, strlen(why));
		else
			strbuf_addf(&o, "not run: turn %d failed", failed);
		strbuf_addstr(&o, "\"}\n");
		out_write(o.buf, o.len);
		strbuf_release(&o);
	}
}

/* Wait for READY; 0, or -1 after printing the error. */
static int wait_ready(struct engine *e, int verbose)
{
	for (;;) {
		struct engine_event ev;
		int got;
		wait_event(e, &ev, 1000, &got);
		if (interrupted)
			return -1;
		if (!got)
			continue;
		enum engine_event_type t = ev.type;
		if (t == ENGINE_EV_ERROR) {
			log_error("batch: the model did not load: %s", ev.text);
			report("%s", ev.text);
		} else if (t == ENGINE_EV_WARNING) {
			log_warn("batch: %s", ev.text);
			warning("%s", ev.text);
		} else if (t == ENGINE_EV_LOAD_PROGRESS && verbose && ev.total)
			fprintf(stderr, "palaver: loading %3d%%\r",
				(int)(ev.done * 100 / ev.total));
		engine_event_free(&ev);
		if (t == ENGINE_EV_READY)
			return 0;
		if (t == ENGINE_EV_ERROR)
			return -1;
	}
}

/*
 * Answer the conversation's last message.  Streams to stdout unless json;
 * *done gets the DONE event.  0, or -1 after printing an ERROR.
 */
static int run_turn(struct engine *e, const struct config *cfg, struct convo *c, struct hist *h,
		    struct engine_event *done, struct strbuf *why)
{
	struct engine_request rq;
	struct strbuf shown = STRBUF_INIT, thought = STRBUF_INIT;
	size_t saved_thought = 0;
	int64_t mid = -1;
	double last_save = time_now_ms();
	int tty = untrusted_tty(stdout);

	if (config_to_request(cfg, &cfg->sampling, &rq) < 0) {
		report("%s", error_message());
		strbuf_addstr(why, error_message());
		return -1;
	}
	rq.messages = c->m;
	rq.n_messages = c->n;
	if (h->st && h->kv && h->sid[0])
		rq.session = h->sid;
	if (h->st) {
		mid = store_message_begin(h->st, h->sid, "assistant");
		if (mid < 0 ||
		    (h->model && store_message_set_model(h->st, mid, h->backend, h->model) < 0))
			hist_fail(h);
	}
	if (engine_submit(e, &rq) < 0) {
		log_error("batch: request refused: %s", error_message());
		report("%s", error_message());
		strbuf_addstr(why, error_message());
		return -1;
	}
	log_debug("batch: request of %d messages", rq.n_messages);
	/* a SIGINT between the turn check and the submit: the submit cleared
	 * its cancel, so cancel again */
	if (interrupted)
		engine_cancel(e);
	for (;;) {
		struct engine_event ev;
		int got;
		wait_event(e, &ev, 1000, &got);
		if (h->st && mid > 0 && time_now_ms() - last_save >= 1000.0) {
			if (store_message_update(h->st, mid, shown.buf, shown.len) < 0 ||
			    (thought.len != saved_thought &&
			     store_message_set_reasoning(h->st, mid, thought.buf, thought.len) < 0))
				hist_fail(h);
			saved_thought = thought.len;
			last_save = time_now_ms();
		}
		if (!got)
			continue;
		if (ev.type == ENGINE_EV_TOKEN && ev.reasoning) {
			strbuf_add(&thought, ev.text, ev.len);
			if (!cfg->json && cfg->reasoning != BATCH_REASONING_HIDE) {
				if (cfg->reasoning == BATCH_REASONING_STDERR)
					put_reply(stderr, ev.text, ev.len, untrusted_tty(stderr));
				else
					put_reply(stdout, ev.text, ev.len, tty);
			}
		} else if (ev.type == ENGINE_EV_TOKEN) {
			if (!cfg->json) {
				/* shown thinking ends; a blank line, then the answer */
				if (!shown.len && thought.len &&
				    cfg->reasoning != BATCH_REASONING_HIDE) {
					FILE *f = cfg->reasoning == BATCH_REASONING_STDERR ? stderr
											   : stdout;
					fputs(thought.buf[thought.len - 1] == '\n' ? "\n" : "\n\n",
					      f);
					fflush(f);
				}
				/* nobody can read the rest: stop (the reply so
				 * far is saved as cancelled) */
				put_reply(stdout, ev.text, ev.len, tty);
				if (out_gone())
					engine_cancel(e);
			}
			strbuf_add(&shown, ev.text, ev.len);
		} else if (ev.type == ENGINE_EV_WARNING) {
			warning("%s", ev.text);
		} else if (ev.type == ENGINE_EV_KV_SAVED) {
			on_kv_saved(h, &ev); /* the previous turn's */
		} else if (ev.type == ENGINE_EV_ERROR) {
			report("%s", ev.text);
			strbuf_addstr(why, ev.text);
			if (h->st && mid > 0 &&
			    store_message_finish(h->st, mid, shown.buf, shown.len, STORE_ERROR,
						 NULL) < 0)
				hist_fail(h);
			engine_event_free(&ev);
			strbuf_release(&shown);
			strbuf_release(&thought);
			return -1;
		} else if (ev.type == ENGINE_EV_DONE) {
			/* a reply cut short after a cancel: show the rest of it */
			if (!cfg->json && ev.len > shown.len &&
			    !memcmp(ev.text, shown.buf, shown.len))
				put_reply(stdout, ev.text + shown.len, ev.len - shown.len, tty);
			*done = ev;
			h->kv_pending = rq.session != NULL;
			break;
		}
		engine_event_free(&ev);
	}
	/* thinking on stderr ends its line, as the answer on stdout does */
	if (!cfg->json && cfg->reasoning == BATCH_REASONING_STDERR && thought.len &&
	    thought.buf[thought.len - 1] != '\n')
		fputc('\n', stderr);
	strbuf_release(&shown);
	strbuf_release(&thought);
	const struct engine_stats *s = &done->stats;
	log_debug("batch: reply done: %s, %d prompt tokens (%d reused, %d turns dropped), %d "
		  "generated",
		  engine_stop_reason_name(s->stop_reason), s->prompt_tokens, s->reused_tokens,
		  s->dropped_turns, s->gen_tokens);
	if (s->stop_reason == ENGINE_STOP_ERROR && done->message) {
		log_error("batch: the reply failed: %s", done->message);
		report("%s", done->message);
	}
	if (h->st && mid > 0) {
		struct store_stats ss = { s->prompt_tokens, s->gen_tokens, s->prefill_ms,
					  s->decode_ms };
		enum store_status status = s->stop_reason == ENGINE_STOP_CANCELLED ? STORE_CANCELLED
					   : s->stop_reason == ENGINE_STOP_ERROR   ? STORE_ERROR
										   : STORE_COMPLETE;
		if (store_message_finish(h->st, mid, done->text ? done->text : "", done->len,
					 status, &ss) < 0 ||
		    store_message_set_reasoning(h->st, mid, done->reasoning_text,
						done->reasoning_len) < 0)
			hist_fail(h);
	}
	return 0;
}

/* The turns to answer, from -p or standard input; EXIT_OK or the status. */
static int read_turns(const struct config *cfg, struct convo *turns)
{
	struct strbuf input = STRBUF_INIT;
	if (cfg->prompt) {
		convo_add(turns, ENGINE_ROLE_USER, cfg->prompt, strlen(cfg->prompt));
	} else {
		if (strbuf_read_fd(&input, STDIN_FILENO, READ_MAX_STDIN) < 0) {
			char why[64];
			strbuf_release(&input);
			return report_runtime(
				"cannot read standard input: %s",
				strbuf_read_failure(errno, READ_MAX_STDIN, why, sizeof(why)));
		}
		/* turns are C strings: a NUL would cut one short, silently */
		const char *nul = memchr(input.buf, '\0', input.len);
		if (nul) {
			size_t at = (size_t)(nul - input.buf);
			strbuf_release(&input);
			return report_usage(
				"standard input has a NUL byte (at byte %zu); batch mode reads text",
				at);
		}
		split_input(input.buf, input.len, cfg->split, turns);
		strbuf_release(&input);
	}
	if (!turns->n)
		return report_usage("no input: give text on standard input or -p TEXT");
	return EXIT_OK;
}

/*
 * The conversation so far (a resumed session's, or the system prompt) and
 * the model to run it with: a local file (*model, malloc'd), or a server
 * (remote, *model ""), a resumed session's own unless one is configured.
 * EXIT_OK or the status (said).
 */
static int prepare(const struct config *cfg, struct hist *h, struct convo *c, char **system,
		   char **model, struct remote_cfg *remote)
{
	if (cfg->session) {
		if (hist_resume(h, cfg, c, system, model) < 0)
			return EXIT_RUNTIME;
		/* the session's own system prompt leads the conversation */
		if (*system && (!c->n || c->m[0].role != ENGINE_ROLE_SYSTEM)) {
			struct convo s = { 0 };
			convo_add(&s, ENGINE_ROLE_SYSTEM, *system, strlen(*system));
			for (int i = 0; i < c->n; i++)
				convo_add(&s, c->m[i].role, c->m[i].text, strlen(c->m[i].text));
			convo_free(c);
			*c = s;
		}
	} else if (*system) {
		convo_add(c, ENGINE_ROLE_SYSTEM, *system, strlen(*system));
	}
	/* a session that ran on a remote server continues there */
	if (*model && !remote->url && remote_split(*model, &remote->url, &remote->model)) {
		free(*model);
		*model = xstrdup("");
	}
	if (!*model)
		*model = remote->url ? xstrdup("") : model_path_abs(cfg->model);
	if (!**model && !remote->url)
		return report_usage(
			"no model configured, and session '%s' names none; give one with -m FILE",
			cfg->session);
	return EXIT_OK;
}

/* Load the model (or reach the server) with SIGINT, SIGTERM and SIGHUP
 * cancelling; NULL and
 * *rc set when it did not get ready. */
static struct engine *start_engine(const struct config *cfg, const char *model,
				   const struct remote_cfg *remote, const char *kv_dir, int *rc)
{
	struct engine_config ec;
	config_to_engine(cfg, model, remote->url, remote->model, &ec);
	ec.kv_dir = kv_dir;
	log_info("batch: loading '%s'%s%s", remote->url ? remote->url : model,
		 remote->url ? " for " : "", remote->url && remote->model ? remote->model : "");
	struct engine *e = engine_open(&ec);
	if (!e) {
		log_error("batch: cannot start the engine: %s", error_message());
		/* with a server, only its URL can be refused here */
		*rc = report_failure(remote->url ? EXIT_USAGE : EXIT_RUNTIME);
		return NULL;
	}
	sig_engine = e;
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	if (wait_ready(e, cfg->verbose) < 0) {
		*rc = interrupted ? 128 + interrupted : EXIT_RUNTIME;
		sig_engine = NULL;
		engine_close(e);
		return NULL;
	}
	return e;
}

static void add_totals(struct totals *tot, const struct engine_stats *s)
{
	tot->turns++;
	tot->prompt_tokens += s->prompt_tokens;
	tot->reused_tokens += s->reused_tokens;
	tot->restored_tokens += s->restored_tokens;
	tot->restore_ms += s->restore_ms;
	tot->gen_tokens += s->gen_tokens;
	tot->prefill_ms += s->prefill_ms;
	tot->decode_ms += s->decode_ms;
	tot->peak_rss = s->peak_rss;
}

/* Answer the turns one after the other; EXIT_OK or the status. */
static int answer_turns(struct engine *e, const struct config *cfg, const struct convo *turns,
			struct convo *c, struct hist *h, const char *system, struct totals *tot)
{
	struct strbuf why = STRBUF_INIT;
	int rc = EXIT_OK;
	for (int t = 0; t < turns->n && !interrupted; t++) {
		struct engine_event done = { 0 };
		const char *text = turns->m[t].text;
		convo_add(c, ENGINE_ROLE_USER, text, strlen(text));
		if (h->st) {
			hist_session(h, cfg, h->model, system);
			if (h->st && store_message_append(h->st, h->sid, "user", text,
							  STORE_COMPLETE, NULL) < 0)
				hist_fail(h);
		}
		if (run_turn(e, cfg, c, h, &done, &why) < 0) {
			unanswered(cfg, turns, t, t + 1, why.buf);
			rc = EXIT_RUNTIME;
			break;
		}
		const struct engine_stats *s = &done.stats;
		if (cfg->json) {
			print_json(t + 1, text, &done);
		} else {
			fputs(t + 1 < turns->n && !interrupted ? "\n\n" : "\n", stdout);
			out_check();
		}
		convo_add(c, ENGINE_ROLE_ASSISTANT, done.text ? done.text : "", done.len);
		add_totals(tot, s);
		if (cfg->verbose && s->stop_reason != ENGINE_STOP_EOS &&
		    s->stop_reason != ENGINE_STOP_STOP_STRING)
			report("reply %d stopped: %s", t + 1,
			       engine_stop_reason_name(s->stop_reason));
		if (s->stop_reason == ENGINE_STOP_CONTEXT_FULL && t + 1 < turns->n)
			warning("reply %d filled the context of %d tokens", t + 1, s->n_ctx);
		int failed = s->stop_reason == ENGINE_STOP_ERROR;
		engine_event_free(&done);
		if (failed) {
			unanswered(cfg, turns, t + 1, t + 1, NULL);
			rc = EXIT_RUNTIME;
			break;
		}
		/* the output is gone: no use answering the other turns */
		if (out_check() < 0 || out_gone())
			break;
	}
	strbuf_release(&why);
	if (rc == EXIT_OK && interrupted)
		rc = 128 + interrupted;
	return rc;
}

int batch_run(struct config *cfg)
{
	struct convo turns = { 0 }, c = { 0 };
	struct hist h = { 0 };
	struct totals tot = { 0 };
	struct engine *e = NULL;
	char *system = cfg->system_prompt ? xstrdup(cfg->system_prompt) : NULL;
	char *model = NULL;
	struct remote_cfg remote = { NULL, NULL };
	struct strbuf kv_dir = STRBUF_INIT;
	int rc = EXIT_OK;

	tot.t0 = time_now_ms();
	if (cfg->remote_url) {
		remote.url = xstrdup(cfg->remote_url);
		remote.model = cfg->remote_model ? xstrdup(cfg->remote_model) : NULL;
		if (cfg->remote_api_key_env && !config_remote_api_key(cfg))
			warning("$%s (remote.api_key_env) is not set: no API key is sent",
				cfg->remote_api_key_env);
	}
	/* --session may name the model */
	if (!remote.url && (!cfg->model || !*cfg->model) && !cfg->session)
		rc = report_usage(
			"no model configured; give one with -m FILE or 'model:' in the config file");
	if (rc == EXIT_OK)
		rc = read_turns(cfg, &turns);
	if (rc == EXIT_OK && cfg->history_enabled) {
		h.st = store_open(cfg->history_path);
		if (!h.st)
			hist_fail(&h);
	}
	if (rc == EXIT_OK)
		rc = prepare(cfg, &h, &c, &system, &model, &remote);
	/* a server keeps no KV cache of ours: states are for the local engine */
	if (rc == EXIT_OK && h.st && !remote.url && config_kv_enabled(cfg) &&
	    config_kv_dir(&kv_dir) < 0) {
		/* no folder for them: the replies come without saved states */
		warning("no saved KV states: %s", error_message());
		error_clear();
	}
	h.kv = kv_dir.len > 0;
	if (rc == EXIT_OK)
		e = start_engine(cfg, model, &remote, kv_dir.buf, &rc);
	if (!e)
		goto out;
	tot.load_ms = time_now_ms() - tot.t0;
	const struct engine_info *info = engine_info(e);
	log_info("batch: ready: %s (%s, %s), context %d, in %.0f ms", info->name, info->type_name,
		 info->backend, info->n_ctx, tot.load_ms);
	if (remote.url) {
		free(model);
		model = remote_label(info);
		/* a resumed session says where it runs now */
		if (h.st && h.sid[0]) {
			struct store_session_params p = { NULL, model, NULL, NULL };
			if (store_session_set(h.st, h.sid, &p) < 0)
				hist_fail(&h);
		}
	}
	h.backend = info->backend;
	h.model = model;
	if (info->template_defaulted)
		report("'%s' has no chat template; continuing the text as written (--chat-template none)",
		       model);
	rc = answer_turns(e, cfg, &turns, &c, &h, system, &tot);
	/* the last reply's state: its row points at the file once it is written */
	while (h.kv_pending && !interrupted) {
		struct engine_event ev;
		int got;
		wait_event(e, &ev, 1000, &got);
		if (!got)
			continue;
		if (ev.type == ENGINE_EV_KV_SAVED)
			on_kv_saved(&h, &ev);
		engine_event_free(&ev);
	}
	if (interrupted && rc == EXIT_OK)
		rc = 128 + interrupted;
	if (cfg->stats && tot.turns)
		print_stats(&tot);
out:
	sig_engine = NULL;
	engine_close(e);
	if (h.st)
		store_close(h.st);
	convo_free(&turns);
	convo_free(&c);
	free(system);
	free(model);
	strbuf_release(&kv_dir);
	free(remote.url);
	free(remote.model);
	fflush(stdout);
	return rc;
}
