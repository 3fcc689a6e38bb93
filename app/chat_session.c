/* The chat's history: saving turns as they happen, resuming and exporting sessions. */
#include "chat.h"
#include "json.h"
#include "report.h"
#include "strbuf.h"
#include "util.h"
#include "xalloc.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Any store failure: say so once, then go on in memory only. */
void chat_session_fail(struct chat *c)
{
	chat_error(c, "history is unavailable: %s (this chat stays in memory only)",
		   error_message());
	error_clear();
	if (c->store)
		store_close(c->store);
	c->store = NULL;
	chat_copy_str(c->st.notice, sizeof(c->st.notice), "history unavailable");
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
		chat_session_fail(c);
		return 0;
	}
	return 1;
}

/* The session's title as the store has it now (the first message names it). */
void chat_session_refresh_title(struct chat *c)
{
	struct store_session ss;
	if (!c->store || !c->sid[0])
		return;
	if (store_session_get(c->store, c->sid, &ss) < 0) {
		chat_session_fail(c);
		return;
	}
	chat_copy_str(c->st.title, sizeof(c->st.title), ss.title);
	store_session_free(&ss);
	c->status_dirty = c->rule_dirty = 1;
}

void chat_session_save_user(struct chat *c, struct chat_msg *m)
{
	if (!ensure_session(c))
		return;
	if (c->reuse_user_row) {
		if (store_message_finish(c->store, c->reuse_user_row, m->text.buf, m->text.len,
					 STORE_COMPLETE, NULL) < 0) {
			chat_session_fail(c);
			return;
		}
		m->id = c->reuse_user_row;
		c->reuse_user_row = 0;
		return;
	}
	m->id = store_message_append(c->store, c->sid, "user", m->text.buf, STORE_COMPLETE, NULL);
	if (m->id < 0) {
		m->id = 0;
		chat_session_fail(c);
		return;
	}
	if (!c->st.title[0])
		chat_session_refresh_title(c);
}

void chat_session_reply_begin(struct chat *c, struct chat_msg *m)
{
	c->last_store_write = time_now_ms();
	if (!ensure_session(c))
		return;
	if (c->reuse_reply_row) {
		m->id = c->reuse_reply_row;
		c->reuse_reply_row = 0;
		if (store_message_update(c->store, m->id, "", 0) < 0)
			chat_session_fail(c);
	} else {
		m->id = store_message_begin(c->store, c->sid, "assistant");
		if (m->id < 0) {
			m->id = 0;
			chat_session_fail(c);
		}
	}
	/* which backend and model wrote it: a local file or URL#MODEL */
	const struct engine_info *info = c->eng ? engine_info(c->eng) : NULL;
	if (c->store && m->id && info && c->model_path &&
	    store_message_set_model(c->store, m->id, info->backend, c->model_path) < 0)
		chat_session_fail(c);
}

void chat_session_reply_progress(struct chat *c, struct chat_msg *m, double now)
{
	if (!c->store || !m->id || now - c->last_store_write < 1000)
		return;
	c->last_store_write = now;
	if (store_message_update(c->store, m->id, m->text.buf, m->text.len) < 0)
		chat_session_fail(c);
}

void chat_session_reply_end(struct chat *c, struct chat_msg *m, enum store_status status,
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
		chat_session_fail(c);
}

/* Forget the current session (the next message starts a new one). */
void chat_session_reset(struct chat *c, const char *title)
{
	chat_pane_clear(&c->pane);
	c->sid[0] = '\0';
	free(c->pending_title);
	c->pending_title = title && *title ? xstrdup(title) : NULL;
	c->reuse_user_row = c->reuse_reply_row = 0;
	chat_copy_str(c->st.title, sizeof(c->st.title), title);
	c->st.have_stats = 0;
	c->st.n_spark = 0;
	c->st.ctx_used = 0;
	c->status_dirty = 1;
	c->rule_dirty = 1;
}

int chat_session_need_store(struct chat *c)
{
	if (c->store)
		return 1;
	chat_notice(c, "The history is not available in this run%s.",
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
void chat_session_load(struct chat *c, const char *id, int64_t target)
{
	struct store_session ss;
	struct store_message *msgs = NULL;
	size_t n = 0;

	if (store_session_get(c->store, id, &ss) < 0) {
		chat_notice(c, "%s", error_message());
		error_clear();
		return;
	}
	if (store_messages_load(c->store, id, &msgs, &n) < 0) {
		store_session_free(&ss);
		chat_session_fail(c);
		return;
	}
	chat_session_reset(c, ss.title);
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
	if (ss.model && c->model_path &&
	    strcmp(chat_base_name(ss.model), chat_base_name(c->model_path)))
		chat_notice(c, "This session was held with '%s'; replies now come from '%s'.",
			    chat_base_name(ss.model), chat_base_name(c->model_path));
	if (target_idx != (size_t)-1 && c->search_query)
		chat_pane_mark(&c->pane, c->pane.msgs[target_idx], c->search_query);
	if (target_idx != (size_t)-1)
		chat_pane_scroll_to(&c->pane, target_idx, c->scr.lay.transcript.w,
				    c->scr.lay.transcript.h);
	else
		chat_pane_scroll_bottom(&c->pane);
	chat_hint(c, "opened '%s' (%zu messages)", ss.title[0] ? ss.title : ss.id, n);
	store_messages_free(msgs, n);
	store_session_free(&ss);
}

void chat_session_open_history(struct chat *c)
{
	if (!c->cfg->history_enabled) {
		if (c->cfg->session)
			chat_notice(c, "--session needs the history, which is turned off.");
		return;
	}
	c->store = store_open(c->cfg->history_path);
	if (!c->store) {
		chat_session_fail(c);
		return;
	}
	if (c->cfg->session) {
		char id[STORE_ID_SIZE];
		if (store_session_resolve(c->store, c->cfg->session, id) < 0) {
			chat_error(c, "%s", error_message());
			error_clear();
			return;
		}
		chat_session_load(c, id, 0);
	}
}

int chat_session_export(struct chat *c, const char *path)
{
	FILE *f = fopen(path, "w");
	if (!f)
		return -1;
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
	return fclose(f);
}
