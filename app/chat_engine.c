/* The chat's side of the engine: loading a model, sending requests, handling events. */
#include "chat.h"
#include "report.h"
#include "strbuf.h"
#include "util.h"
#include "xalloc.h"

#include "input.h"

#include <stdlib.h>
#include <string.h>

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

void chat_engine_open(struct chat *c, const char *path)
{
	struct config *cfg = c->cfg;
	struct engine_config ec;
	/* no path: the configured server; the label is what messages and the
	 * history say until the server names its model (on_ready) */
	struct strbuf label = STRBUF_INIT;
	if (!path) {
		strbuf_addf(&label, "%s#%s", cfg->remote_url,
			    cfg->remote_model ? cfg->remote_model : "");
		path = label.buf;
	}

	memset(&ec, 0, sizeof(ec));
	ec.model_path = path;
	if (label.len) {
		ec.remote_url = cfg->remote_url;
		ec.remote_model = cfg->remote_model;
		ec.remote_api_key = config_remote_api_key(cfg);
		ec.remote_timeout = cfg->remote_timeout;
		ec.remote_retries = cfg->remote_retries;
	}
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
	chat_copy_str(c->st.model, sizeof(c->st.model), chat_base_name(path));
	c->st.state = STATE_LOADING;
	c->status_dirty = 1;
	c->eng = engine_open(&ec);
	if (!c->eng) {
		c->st.state = STATE_FAILED;
		chat_error(c, "cannot load '%s': %s", path, error_message());
		error_clear();
		strbuf_release(&label);
		return;
	}
	free(c->model_path);
	c->model_path = xstrdup(path);
	strbuf_release(&label);
}

void chat_engine_close(struct chat *c)
{
	if (c->eng)
		engine_close(c->eng);
	c->eng = NULL;
	c->ready = 0;
	c->busy = 0;
	if (c->reply) {
		c->reply->flags = (c->reply->flags & ~CHAT_STREAMING) | CHAT_STOPPED;
		chat_session_reply_end(c, c->reply, STORE_CANCELLED, NULL);
		c->reply = NULL;
	}
}

void chat_engine_submit(struct chat *c)
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
		chat_error(c, "cannot send the message: %s", error_message());
		error_clear();
		return;
	}
	c->busy = 1;
	c->reply = chat_pane_add(&c->pane, CHAT_ASSISTANT, "");
	c->reply->flags = CHAT_STREAMING;
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

static void on_ready(struct chat *c)
{
	const struct engine_info *info = engine_info(c->eng);
	c->ready = 1;
	c->st.state = STATE_READY;
	if (info) {
		chat_copy_str(c->st.model, sizeof(c->st.model), info->name);
		chat_copy_str(c->st.type, sizeof(c->st.type), info->type_name);
		chat_copy_str(c->st.backend, sizeof(c->st.backend), info->backend);
		chat_copy_str(c->st.device, sizeof(c->st.device), info->device);
		chat_copy_str(c->st.server, sizeof(c->st.server), info->server);
		if (info->server[0]) {
			/* replies are recorded as coming from URL#MODEL */
			struct strbuf sb = STRBUF_INIT;
			strbuf_addf(&sb, "%s#%s", info->server, info->name);
			free(c->model_path);
			c->model_path = strbuf_detach(&sb, NULL);
		}
		c->st.file_bytes = info->file_bytes;
		c->st.n_params = info->n_params;
		c->st.threads = info->n_threads;
		c->st.ctx_total = info->n_ctx;
		chat_copy_str(c->pane.assistant_label, sizeof(c->pane.assistant_label), info->name);
		c->pane.dirty = 1;
		if (info->template_defaulted)
			chat_notice(
				c,
				"The model has no chat template; using '%s'. Set chat_template: in "
				"config.yaml (or --chat-template) if replies look wrong.",
				info->chat_template);
	}
	c->status_dirty = 1;
	if (c->pending_send) {
		c->pending_send = 0;
		chat_engine_submit(c);
	}
}

static void on_done(struct chat *c, const struct engine_event *ev)
{
	const struct engine_stats *s = &ev->stats;
	double now = time_now_ms();

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
		chat_session_reply_end(c, c->reply,
				       s->stop_reason == ENGINE_STOP_CANCELLED ? STORE_CANCELLED
				       : s->stop_reason == ENGINE_STOP_ERROR   ? STORE_ERROR
									       : STORE_COMPLETE,
				       s);
		c->pane.dirty = 1;
	}
	c->reply = NULL;
	c->busy = 0;
	if (s->stop_reason == ENGINE_STOP_CANCELLED)
		chat_hint(c, "stopped: the partial reply stays; /regen tries again");

	switch (s->stop_reason) {
	case ENGINE_STOP_ERROR:
		chat_error(c, "The reply failed: %s", ev->message ? ev->message : "engine error");
		break;
	case ENGINE_STOP_CONTEXT_FULL:
		chat_notice(c,
			    "The context is full (%d tokens). /new starts a fresh session; "
			    "context_overflow in config.yaml can drop old turns instead.",
			    s->n_ctx);
		break;
	case ENGINE_STOP_TIMEOUT:
		chat_notice(c, "The reply took longer than max_time and was stopped.");
		break;
	default: break;
	}
	if (s->dropped_turns > 0)
		chat_notice(c, "%d old turn%s no longer fit in the context and were left out.",
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
		chat_engine_sample_speed(c, now, 0);
		chat_session_reply_progress(c, c->reply, now);
		c->status_dirty = 1;
		break;
	case ENGINE_EV_DONE: on_done(c, ev); break;
	case ENGINE_EV_WARNING:
		chat_notice(c, "%.*s", (int)ev->len, ev->text ? ev->text : "");
		break;
	case ENGINE_EV_ERROR:
		if (c->reply || c->busy) {
			if (c->reply) {
				c->reply->flags = (c->reply->flags & ~CHAT_STREAMING) | CHAT_FAILED;
				chat_session_reply_end(c, c->reply, STORE_ERROR, NULL);
				c->pane.dirty = 1;
			}
			c->reply = NULL;
			c->busy = 0;
			c->st.state = c->ready ? STATE_READY : STATE_FAILED;
			chat_error(c, "%.*s", (int)ev->len, ev->text ? ev->text : "engine error");
		} else {
			c->st.state = STATE_FAILED;
			c->ready = 0;
			chat_error(
				c,
				"Cannot load the model: %.*s\nTry another file with /model FILE.",
				(int)ev->len, ev->text ? ev->text : "unknown error");
		}
		c->status_dirty = 1;
		break;
	}
}

void chat_engine_drain(struct chat *c)
{
	struct engine_event ev;
	while (c->eng && engine_next_event(c->eng, &ev) == 1) {
		on_event(c, &ev);
		engine_event_free(&ev);
	}
}

void chat_engine_cancel(struct chat *c)
{
	if (c->busy && c->eng) {
		engine_cancel(c->eng);
		chat_hint(c, "stopping\xe2\x80\xa6");
	}
}

void chat_engine_send(struct chat *c, const char *text)
{
	if (c->busy) {
		/* Enter is refused while streaming; this is a second line of defence */
		input_set(text);
		chat_hint(c, "a reply is streaming: press Esc to stop it, or wait");
		return;
	}
	if (!c->eng || c->st.state == STATE_FAILED) {
		if (c->cfg->remote_url && !c->eng) {
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
	if (!c->ready) {
		c->pending_send = 1;
		chat_hint(c, "the message goes out when the model has loaded");
		return;
	}
	chat_engine_submit(c);
}
