/* The chat's history: saving turns as they happen, resuming and exporting sessions. */
#include "chat.h"
#include "json.h"
#include "log.h"
#include "report.h"
#include "strbuf.h"
#include "util.h"
#include "xalloc.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Any store failure: say so once, then go on in memory only. */
void chat_session_fail(struct chat *c)
{
	log_error("chat: history is unavailable: %s", error_message());
	chat_error(c, "history is unavailable: %s (this chat stays in memory only)",
		   error_message());
	error_clear();
	if (c->store)
		store_close(c->store);
	c->store = NULL;
	chat_copy_str(c->st.notice, sizeof(c->st.notice), "history unavailable");
	c->status_dirty = 1;
}

/* Create the session on its first message.  1 when there is one to write to. */
static int ensure_session(struct chat *c)
{
	if (!c->store)
		return 0;
	if (c->sid[0])
		return 1;
	struct strbuf js = STRBUF_INIT;
	config_sampling_json(&c->sampling, &js);
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
		if (store_message_restart(c->store, m->id) < 0)
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
	if (store_message_update(c->store, m->id, m->text.buf, m->text.len) < 0 ||
	    (m->thinking.len &&
	     store_message_set_reasoning(c->store, m->id, m->thinking.buf, m->thinking.len) < 0))
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
				 es ? &ss : NULL) < 0 ||
	    store_message_set_reasoning(c->store, m->id, m->thinking.buf, m->thinking.len) < 0)
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
 * user set for this run (in a config file, the environment or a flag);
 * values the key table refuses are left out, and said so. */
static void restore_sampling(struct chat *c, const char *text)
{
	struct strbuf problems = STRBUF_INIT;
	if (!text || !*text)
		return;
	struct json *j = json_parse(text, strlen(text));
	if (!j) {
		chat_notice(c,
			    "The session's sampling settings cannot be read (%s); the current "
			    "ones stay.",
			    error_message());
		error_clear();
		return;
	}
	if (config_sampling_from_json(&c->sampling, j, c->cfg, &problems) > 0)
		chat_notice(c,
			    "Some of the session's sampling settings are out of range and were "
			    "left out:\n%s",
			    problems.buf);
	strbuf_release(&problems);
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
		if (sm->reasoning)
			strbuf_addstr(&m->thinking, sm->reasoning);
		/* replies from before palaver recorded their model: the session's */
		if (role == CHAT_ASSISTANT && (sm->model || ss.model)) {
			char name[128];
			chat_msg_set_label(m, store_model_name(sm->model ? sm->model : ss.model,
							       name, sizeof(name)));
		}
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

char *chat_session_open_history(struct chat *c)
{
	struct store_session ss;
	char id[STORE_ID_SIZE], *model = NULL;
	if (!c->cfg->history_enabled) {
		if (c->cfg->session)
			chat_notice(c, "--session needs the history, which is turned off.");
		return NULL;
	}
	c->store = store_open(c->cfg->history_path);
	if (!c->store) {
		chat_session_fail(c);
		return NULL;
	}
	if (!c->cfg->session)
		return NULL;
	if (store_session_resolve(c->store, c->cfg->session, id) < 0) {
		chat_error(c, "%s", error_message());
		error_clear();
		return NULL;
	}
	chat_session_load(c, id, 0);
	if (c->store && c->sid[0] && store_session_get(c->store, c->sid, &ss) == 0) {
		model = xstrdup(ss.model ? ss.model : "");
		store_session_free(&ss);
	}
	return model;
}

/* The transcript as the history would export it, for a chat not saved. */
static void transcript_markdown(struct chat *c, struct strbuf *out)
{
	struct strbuf sampling = STRBUF_INIT;
	struct store_message *m = xcalloc(c->pane.n_msgs + 1, sizeof(*m));
	size_t n = 0;
	struct store_session ss = { .title = c->st.title,
				    .model = c->model_path,
				    .system_prompt = c->system_prompt,
				    .created_ms = (int64_t)time(NULL) * 1000 };
	config_sampling_json(&c->sampling, &sampling);
	ss.sampling = sampling.buf;
	for (size_t i = 0; i < c->pane.n_msgs; i++) {
		struct chat_msg *cm = c->pane.msgs[i];
		if (cm->role != CHAT_USER && cm->role != CHAT_ASSISTANT)
			continue;
		m[n].role = cm->role == CHAT_USER ? "user" : "assistant";
		m[n].content = cm->text.buf;
		m[n].reasoning = cm->thinking.len ? cm->thinking.buf : NULL;
		m[n].model = cm->role == CHAT_ASSISTANT ? cm->label : NULL;
		m[n].status = cm->flags & CHAT_FAILED    ? STORE_ERROR
			      : cm->flags & CHAT_STOPPED ? STORE_CANCELLED
							 : STORE_COMPLETE;
		n++;
	}
	store_format_markdown(&ss, m, n, out);
	free(m);
	strbuf_release(&sampling);
}

void chat_session_export(struct chat *c, const char *path)
{
	struct strbuf out = STRBUF_INIT;
	FILE *f;
	/* a saved session exports from the history, stats and times included */
	if (c->store && c->sid[0]) {
		if (store_export(c->store, c->sid, STORE_FORMAT_MARKDOWN, &out) < 0) {
			chat_session_fail(c);
			transcript_markdown(c, &out);
		}
	} else {
		transcript_markdown(c, &out);
	}
	f = fopen(path, "w");
	int ok = f && fwrite(out.buf, 1, out.len, f) == out.len;
	if (f && fclose(f) != 0)
		ok = 0;
	if (ok)
		chat_notice(c, "Wrote the session to '%s'.", path);
	else
		chat_notice(c, "cannot write '%s': %s", path, strerror(errno));
	strbuf_release(&out);
}
