/* The chat's side of the engine: loading models, sending requests, handling events. */
#include "chat.h"
#include "log.h"
#include "report.h"
#include "strbuf.h"
#include "util.h"
#include "xalloc.h"

#include "input.h"

#include <stdlib.h>
#include <string.h>

/*
 * DESIGN
 * c->eng is the model in use: it has sent READY and takes requests.  A
 * model being loaded (at start, by /model, for a resumed session) is
 * c->next until its READY, when it replaces c->eng (which is closed only
 * then), or its ERROR, when it is dropped and c->eng goes on: a /model
 * that fails never costs the model that works.  Both are resident while
 * the new one loads.
 *
 * A template fallback (a WARNING with done 1) stays in the status pane as
 * "template: fallback" for the model that has it: one from c->next is held
 * in next_fallback until its READY, so a /model that fails leaves the
 * notice of the model in use as it was.
 */

/* The status pane's model fields from a ready engine; the session's title,
 * notice and the last reply's figures stay. */
static void status_from_info(struct chat *c, const struct engine_info *info)
{
	chat_copy_str(c->st.model, sizeof(c->st.model), info->name);
	chat_copy_str(c->st.type, sizeof(c->st.type), info->type_name);
	chat_copy_str(c->st.backend, sizeof(c->st.backend), info->backend);
	chat_copy_str(c->st.device, sizeof(c->st.device), info->device);
	chat_copy_str(c->st.server, sizeof(c->st.server), info->server);
	c->st.file_bytes = info->file_bytes;
	c->st.n_params = info->n_params;
	c->st.threads = info->n_threads;
	c->st.ctx_total = info->n_ctx;
	c->st.state = STATE_READY;
	c->status_dirty = 1;
}

void chat_engine_open(struct chat *c, const char *path)
{
	const struct config *cfg = c->cfg;
	struct engine_config ec;
	/* no path: the configured server; the label is what messages and the
	 * history say until the server names its model (on_ready) */
	struct strbuf label = STRBUF_INIT;
	if (!path) {
		strbuf_addf(&label, "%s#%s", cfg->remote_url,
			    cfg->remote_model ? cfg->remote_model : "");
		path = label.buf;
	}

	if (c->next) { /* a newer /model replaces a load in progress */
		engine_close(c->next);
		free(c->next_path);
		c->next = NULL;
		c->next_path = NULL;
	}
	c->next_fallback = 0;
	if (label.len)
		config_to_engine(cfg, path, cfg->remote_url, cfg->remote_model, &ec);
	else
		config_to_engine(cfg, path, NULL, NULL, &ec);
	/* saved states belong to a local model (a server keeps its own cache) */
	struct strbuf kv_dir = STRBUF_INIT;
	if (!label.len && config_kv_enabled(cfg) && config_kv_dir(&kv_dir) < 0) {
		/* no folder for them: the chat works without saved states */
		log_warn("no saved KV states: %s", error_message());
		error_clear();
	}
	ec.kv_dir = kv_dir.buf;
	log_info("chat: loading model '%s'", path);
	c->next = engine_open(&ec);
	strbuf_release(&kv_dir);
	if (!c->next) {
		log_error("chat: cannot load '%s': %s", path, error_message());
		chat_error(c, "cannot load '%s': %s", path, error_message());
		error_clear();
		strbuf_release(&label);
		return;
	}
	c->next_path = xstrdup(path);
	chat_copy_str(c->st.model, sizeof(c->st.model), chat_base_name(path));
	c->st.state = STATE_LOADING;
	c->st.done = c->st.total = 0;
	c->status_dirty = 1;
	strbuf_release(&label);
}

#define FALLBACK_NOTICE "template: fallback"

/* Let go of the reply streaming (the engine is going away). */
static void drop_reply(struct chat *c)
{
	c->busy = 0;
	if (c->reply) {
		c->reply->flags = (c->reply->flags & ~CHAT_STREAMING) | CHAT_STOPPED;
		chat_session_reply_end(c, c->reply, STORE_CANCELLED, NULL);
		c->reply = NULL;
	}
}

void chat_engine_close(struct chat *c)
{
	if (c->next)
		engine_close(c->next);
	if (c->eng)
		engine_close(c->eng);
	c->eng = c->next = NULL;
	free(c->next_path);
	c->next_path = NULL;
	drop_reply(c);
}

/* The conversation as the engine takes it; the texts stay the pane's. */
static struct engine_message *conversation(struct chat *c, int *n_out)
{
	struct engine_message *msgs = xcalloc(c->pane.n_msgs + 1, sizeof(*msgs));
	int n = 0;
	if (c->system_prompt && *c->system_prompt) {
		msgs[n].role = ENGINE_ROLE_SYSTEM;
		msgs[n++].text = c->system_prompt;
	}
	for (size_t i = 0; i < c->pane.n_msgs; i++) {
		struct chat_msg *m = c->pane.msgs[i];
		if (m->role == CHAT_USER)
			msgs[n].role = ENGINE_ROLE_USER;
		else if (m->role == CHAT_ASSISTANT && m->text.len && !(m->flags & CHAT_FAILED))
			msgs[n].role = ENGINE_ROLE_ASSISTANT;
		else
			continue;
		msgs[n++].text = m->text.buf;
	}
	*n_out = n;
	return msgs;
}

void chat_engine_submit(struct chat *c)
{
	struct engine_request req;
	int n, rc;

	if (config_to_request(c->cfg, &c->sampling, &req) < 0) {
		chat_error(c, "cannot send the message: %s", error_message());
		error_clear();
		return;
	}
	struct engine_message *msgs = conversation(c, &n);
	req.messages = msgs;
	req.n_messages = n;
	/* the session's saved KV state is read before and written after */
	req.session = c->store && c->sid[0] ? c->sid : NULL;
	rc = engine_submit(c->eng, &req);
	free(msgs);
	if (rc < 0) {
		log_error("chat: cannot submit a request: %s", error_message());
		chat_error(c, "cannot send the message: %s", error_message());
		error_clear();
		return;
	}
	log_debug("chat: request of %d messages to '%s'", n, c->st.model);
	c->busy = 1;
	c->dropped_told = 0;
	c->t_think = 0;
	c->stop_thinking_put = 0;
	c->reply = chat_pane_add(&c->pane, CHAT_ASSISTANT, "");
	c->reply->flags = CHAT_STREAMING;
	char name[128];
	chat_msg_set_label(c->reply, store_model_name(c->model_path, name, sizeof(name)));
	chat_session_reply_begin(c, c->reply);
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
void chat_engine_sample_speed(struct chat *c, double now, int force)
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

/* The model loading is ready: it takes the place of the one in use. */
static void on_next_ready(struct chat *c)
{
	const struct engine_info *info = engine_info(c->next);
	if (c->eng) {
		drop_reply(c);
		engine_close(c->eng);
	}
	c->eng = c->next;
	c->next = NULL;
	free(c->model_path);
	c->model_path = c->next_path;
	c->next_path = NULL;
	if (info->server[0]) {
		/* replies are recorded as coming from URL#MODEL */
		struct strbuf sb = STRBUF_INIT;
		strbuf_addf(&sb, "%s#%s", info->server, info->name);
		free(c->model_path);
		c->model_path = strbuf_detach(&sb, NULL);
	}
	log_info("chat: model '%s' ready (%s, %s)", c->model_path, info->name, info->type_name);
	chat_state_changed(c);
	status_from_info(c, info);
	/* the last model's template fallback is not this one's */
	if (!strcmp(c->st.notice, FALLBACK_NOTICE))
		c->st.notice[0] = '\0';
	if (c->next_fallback && !c->st.notice[0])
		chat_copy_str(c->st.notice, sizeof(c->st.notice), FALLBACK_NOTICE);
	c->next_fallback = 0;
	if (info->template_defaulted)
		chat_notice(c,
			    "The model has no chat template; using '%s'. Set chat_template: in "
			    "config.yaml (or --chat-template) if replies look wrong.",
			    info->chat_template);
	if (c->pending_send) {
		c->pending_send = 0;
		chat_engine_submit(c);
	}
}

/*
 * A load that did not finish (why: the failure; NULL: stopped) leaves the
 * model in use, if any: it shows again in the status pane and answers a
 * message that waited for the new one.  The chat says which happened.
 */
static void load_ended(struct chat *c, const char *why)
{
	engine_close(c->next);
	c->next = NULL;
	c->next_fallback = 0;
	chat_state_changed(c);
	if (c->eng) {
		status_from_info(c, engine_info(c->eng));
		if (why)
			chat_error(c, "Cannot load the model: %s\n%s is still the model in use.",
				   why, c->st.model);
		else
			chat_notice(c, "Loading stopped. %s is still the model in use.",
				    c->st.model);
		if (c->pending_send) {
			c->pending_send = 0;
			chat_engine_submit(c);
		}
	} else {
		c->st.state = why ? STATE_FAILED : STATE_NO_MODEL;
		c->pending_send = 0;
		if (why)
			chat_error(c,
				   "Cannot load the model: %s\nTry another file with /model FILE.",
				   why);
		else
			chat_notice(c, "Loading stopped. /model FILE.gguf loads a model; Ctrl-D "
				       "quits.");
	}
	free(c->next_path);
	c->next_path = NULL;
	c->status_dirty = 1;
}

/* The model loading failed: it is dropped, the one in use (if any) stays. */
static void on_next_error(struct chat *c, const char *why)
{
	log_error("chat: cannot load '%s': %s", c->next_path, why);
	load_ended(c, why);
}

/* Ctrl-C while a model loads: the load stops (every phase of it reads the
 * engine's stop flag, so engine_close returns within moments); the model in
 * use, if any, stays and answers a message that waited for the new one. */
void chat_engine_stop_load(struct chat *c)
{
	if (!c->next)
		return;
	log_info("chat: loading '%s' stopped", c->next_path);
	load_ended(c, NULL);
}

/* Say, above the reply, that old turns were left out of the prompt. */
static void tell_dropped(struct chat *c, int dropped)
{
	if (dropped <= 0 || c->dropped_told || !c->reply)
		return;
	c->dropped_told = 1;
	struct chat_msg *m =
		chat_pane_insert(&c->pane, chat_pane_index(&c->pane, c->reply), CHAT_NOTICE, "");
	strbuf_addf(&m->text,
		    "%d old turn%s no longer fit%s in the context of %d tokens: the model does "
		    "not see %s for this reply (context_overflow: drop-oldest). They stay in "
		    "the transcript and the history; /new starts afresh.",
		    dropped, dropped == 1 ? "" : "s", dropped == 1 ? "s" : "", c->st.ctx_total,
		    dropped == 1 ? "it" : "them");
	c->pane.dirty = 1;
}

/* What the user can do about a full context, given the policy in use. */
static void context_full(struct chat *c, const struct engine_stats *s)
{
	struct strbuf sb = STRBUF_INIT;
	strbuf_addf(&sb, "The reply filled the context of %d tokens and was cut off there. ",
		    s->n_ctx);
	switch (c->cfg->context_overflow) {
	case OVERFLOW_DROP_OLDEST:
		strbuf_addstr(&sb, "Your next message still goes out: the oldest turns are "
				   "left out to make room (context_overflow: drop-oldest). ");
		break;
	case OVERFLOW_SHIFT:
		strbuf_addstr(&sb, "Shifting the context (context_overflow: shift) could not "
				   "make room. context_overflow: drop-oldest leaves out old turns "
				   "instead. ");
		break;
	case OVERFLOW_STOP:
		strbuf_addstr(&sb, "With context_overflow: stop, nothing more fits: drop-oldest "
				   "leaves out old turns, shift discards old tokens as it goes. ");
		break;
	}
	strbuf_addstr(&sb, "/new starts afresh");
	if (c->eng && engine_info(c->eng)->n_ctx_train > s->n_ctx)
		strbuf_addf(&sb, "; a larger context (--ctx, up to the model's %d) keeps more",
			    engine_info(c->eng)->n_ctx_train);
	strbuf_addch(&sb, '.');
	chat_notice(c, "%s", sb.buf);
	strbuf_release(&sb);
}

static void on_done(struct chat *c, const struct engine_event *ev)
{
	const struct engine_stats *s = &ev->stats;
	double now = time_now_ms();

	log_debug("chat: reply done: %s, %d prompt tokens (%d reused), %d generated",
		  engine_stop_reason_name(s->stop_reason), s->prompt_tokens, s->reused_tokens,
		  s->gen_tokens);
	tell_dropped(c, s->dropped_turns);
	c->last_stats = *s;
	c->have_last_stats = 1;
	chat_engine_sample_speed(c, now, 1);
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
	c->st.server_usage = s->server_usage;
	c->st.server_tps = s->server_decode_tps;
	c->st.state = STATE_READY;
	c->status_dirty = 1;

	if (c->reply) {
		c->reply->flags &= ~(CHAT_STREAMING | CHAT_THINKING);
		/* the thinking as the engine has it (authoritative, as the text) */
		strbuf_reset(&c->reply->thinking);
		if (ev->reasoning_text)
			strbuf_add(&c->reply->thinking, ev->reasoning_text, ev->reasoning_len);
		if (s->reasoning_tokens)
			c->reply->think_tokens = s->reasoning_tokens;
		if (c->t_think > 0 && c->reply->think_ms <= 0)
			c->reply->think_ms = now - c->t_think;
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
		chat_session_reply_end(c, c->reply,
				       s->stop_reason == ENGINE_STOP_CANCELLED ? STORE_CANCELLED
				       : s->stop_reason == ENGINE_STOP_ERROR   ? STORE_ERROR
									       : STORE_COMPLETE,
				       s);
		c->pane.dirty = 1;
	}
	c->reply = NULL;
	c->busy = 0;
	chat_state_changed(c);
	if (s->restored_tokens > 0)
		chat_hint(c, "resumed from the saved KV cache: %d tokens read, not recomputed",
			  s->restored_tokens);
	if (s->stop_reason == ENGINE_STOP_CANCELLED)
		chat_hint(c, "stopped: the partial reply stays; /regen tries again");

	switch (s->stop_reason) {
	case ENGINE_STOP_ERROR:
		log_error("chat: the reply failed: %s", ev->message ? ev->message : "engine error");
		chat_error(c, "The reply failed: %s", ev->message ? ev->message : "engine error");
		break;
	case ENGINE_STOP_CONTEXT_FULL: context_full(c, s); break;
	case ENGINE_STOP_TIMEOUT:
		chat_notice(c, "The reply took longer than max_time and was stopped.");
		break;
	default: break;
	}
}

static void on_token(struct chat *c, const struct engine_event *ev, double now)
{
	if (!c->reply)
		return;
	if (!c->t_first) {
		c->t_first = now;
		c->t_sample = now;
		c->st.ttft_ms = now - c->t_submit;
		if (c->prompt_total && now > c->t_submit)
			c->st.prompt_tps = c->prompt_total * 1000.0 / (now - c->t_submit);
		c->st.state = STATE_GENERATING;
	}
	if (ev->reasoning) {
		/* thinking: dimmed under a line that counts it */
		if (!c->t_think)
			c->t_think = now;
		c->reply->flags |= CHAT_THINKING;
		c->reply->think_tokens = ev->done > 0 ? (int)ev->done : c->gen_tokens + 1;
		c->reply->think_ms = now - c->t_think;
		chat_pane_append_thinking(&c->pane, c->reply, ev->text, ev->len);
	} else {
		if (c->reply->flags & CHAT_THINKING) {
			/* the answer begins: the thinking folds away */
			c->reply->flags &= ~CHAT_THINKING;
			c->reply->think_ms = now - c->t_think;
		}
		chat_pane_append(&c->pane, c->reply, ev->text, ev->len);
	}
	c->gen_tokens++;
	c->sample_tokens++;
	c->st.gen_tokens = c->gen_tokens;
	if (now > c->t_first)
		c->st.gen_tps = (c->gen_tokens - 1) * 1000.0 / (now - c->t_first);
	if (c->prompt_total)
		c->st.ctx_used = c->prompt_total + c->gen_tokens;
	chat_engine_sample_speed(c, now, 0);
	chat_session_reply_progress(c, c->reply, now);
	c->status_dirty = 1;
}

/* An ERROR from the model in use: a request it refused. */
static void on_error(struct chat *c, const struct engine_event *ev)
{
	log_error("chat: request refused: %.*s", (int)ev->len, ev->text ? ev->text : "");
	if (c->reply) {
		c->reply->flags = (c->reply->flags & ~CHAT_STREAMING) | CHAT_FAILED;
		chat_session_reply_end(c, c->reply, STORE_ERROR, NULL);
		c->pane.dirty = 1;
	}
	c->reply = NULL;
	c->busy = 0;
	chat_state_changed(c);
	c->st.state = STATE_READY;
	chat_error(c, "%.*s", (int)ev->len, ev->text ? ev->text : "engine error");
	c->status_dirty = 1;
}

/* A progress event (loading: bytes; prefill: tokens) into the status pane. */
static void progress(struct chat *c, enum status_state state, const struct engine_event *ev)
{
	c->st.state = state;
	c->st.done = ev->done;
	c->st.total = ev->total;
	c->status_dirty = 1;
}

/* A WARNING from the model in use (next 0) or the one loading (next 1):
 * said in the transcript; a template fallback also stays in the status pane. */
static void on_warning(struct chat *c, const struct engine_event *ev, int next)
{
	chat_notice(c, "%.*s", (int)ev->len, ev->text ? ev->text : "");
	if (ev->done != 1)
		return;
	if (next) {
		c->next_fallback = 1; /* the pane says so when it is the model in use */
	} else if (!c->st.notice[0]) {
		chat_copy_str(c->st.notice, sizeof(c->st.notice), FALLBACK_NOTICE);
		c->status_dirty = 1;
	}
}

/* The engine wrote (or could not write) a session's KV state after a reply. */
static void on_kv_saved(struct chat *c, const struct engine_event *ev)
{
	/* the row only points at the file: failing to record it loses nothing
	 * (the engine finds the file by its name), so it is no history failure */
	if (ev->path && c->store && ev->text &&
	    store_session_set_kv_state(c->store, ev->text, ev->path) < 0) {
		log_warn("cannot record the KV state of session %s: %s", ev->text, error_message());
		error_clear();
	}
	if (ev->message)
		chat_hint(c, "the KV cache was not saved: %s", ev->message);
}

static void on_event(struct chat *c, struct engine_event *ev)
{
	switch (ev->type) {
	case ENGINE_EV_PREFILL_PROGRESS:
		progress(c, STATE_PREFILL, ev);
		c->prompt_total = (int)ev->total;
		tell_dropped(c, ev->stats.dropped_turns);
		break;
	case ENGINE_EV_TOKEN: on_token(c, ev, time_now_ms()); break;
	case ENGINE_EV_DONE: on_done(c, ev); break;
	case ENGINE_EV_KV_SAVED: on_kv_saved(c, ev); break;
	case ENGINE_EV_WARNING: on_warning(c, ev, 0); break;
	case ENGINE_EV_ERROR: on_error(c, ev); break;
	case ENGINE_EV_LOAD_PROGRESS:
	case ENGINE_EV_READY: break; /* only a model loading (c->next) sends them */
	}
}

/* Events of the model loading: progress, warnings, then READY or ERROR. */
static void on_next_event(struct chat *c, struct engine_event *ev)
{
	switch (ev->type) {
	case ENGINE_EV_LOAD_PROGRESS: progress(c, STATE_LOADING, ev); break;
	case ENGINE_EV_WARNING: on_warning(c, ev, 1); break;
	case ENGINE_EV_READY: on_next_ready(c); break;
	case ENGINE_EV_ERROR: on_next_error(c, ev->text ? ev->text : "unknown error"); break;
	default: break; /* no request goes to a model before it is ready */
	}
}

void chat_engine_drain(struct chat *c)
{
	struct engine_event ev;
	while (c->eng && engine_next_event(c->eng, &ev) == 1) {
		on_event(c, &ev);
		engine_event_free(&ev);
	}
	while (c->next && engine_next_event(c->next, &ev) == 1) {
		on_next_event(c, &ev);
		engine_event_free(&ev);
	}
}

void chat_engine_cancel(struct chat *c)
{
	if (c->busy && c->eng) {
		engine_cancel(c->eng);
		chat_state_hint(c, "stopping\xe2\x80\xa6");
	}
}

void chat_engine_escape(struct chat *c)
{
	if (!c->busy || !c->eng)
		return;
	if (c->reply && (c->reply->flags & CHAT_THINKING) && !c->stop_thinking_put) {
		/* the model stops thinking and answers; Esc again stops it all */
		engine_stop_thinking(c->eng);
		c->stop_thinking_put = 1;
		chat_state_hint(c, "ending the thinking: the answer comes next (Esc again stops)");
		return;
	}
	chat_engine_cancel(c);
}

void chat_engine_send(struct chat *c, const char *text)
{
	if (c->busy) {
		/* Enter is refused while streaming; this is a second line of defence */
		input_set(text);
		chat_state_hint(c, "a reply is streaming: press Esc to stop it, or wait");
		return;
	}
	if (!c->eng && !c->next) {
		if (c->cfg->remote_url) {
			chat_notice(c,
				    "The server is not connected; /model FILE.gguf loads a local "
				    "model instead.");
			return;
		}
		chat_notice(c,
			    "No model is loaded. Load one with /model FILE.gguf, or start palaver "
			    "with -m FILE.gguf (or set model: in config.yaml).");
		return;
	}
	struct chat_msg *m = chat_pane_add(&c->pane, CHAT_USER, text);
	chat_pane_scroll_bottom(&c->pane);
	chat_session_save_user(c, m);
	if (c->next) { /* the model asked for last answers it */
		c->pending_send = 1;
		chat_state_hint(c, "the message goes out when the model has loaded");
		return;
	}
	chat_engine_submit(c);
}
