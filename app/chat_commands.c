/* The chat's slash commands (/help, /set, /model, /sessions, ...) and the line handler. */
#include "chat.h"
#include "report.h"
#include "strbuf.h"
#include "util.h"
#include "xalloc.h"

#include "input.h"
#include "slash.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void show_help(struct chat *c)
{
	static const char *const groups[] = { "Commands (Tab completes)", "Sessions", "Other" };
	struct strbuf sb = STRBUF_INIT;
	for (int g = 0; g < 3; g++) {
		strbuf_addf(&sb, "%s%s:\n", g ? "\n" : "", groups[g]);
		for (int i = 0; i < SLASH_COUNT; i++) {
			const struct slash_command *k = &slash_commands[i];
			char head[64];
			if (k->group != g)
				continue;
			snprintf(head, sizeof(head), "/%s %s", k->name, k->args);
			strbuf_addf(&sb, "  %-18s %s\n", head, k->help);
		}
	}
	strbuf_addstr(&sb, "\nKeys:\n"
			   "  Enter              send the message\n"
			   "  Alt-Enter, Ctrl-J  new line in the message\n"
			   "  Esc, Ctrl-C        stop the reply (the partial reply stays)\n"
			   "  Esc while thinking end the thinking: the model answers now\n"
			   "  Ctrl-T             the thinking: collapse, show, hide\n"
			   "  Ctrl-C             clear the input when idle\n"
			   "  Up, Down           input history\n"
			   "  PgUp, PgDn, wheel  scroll the conversation\n"
			   "  Home, End          top, bottom (when the input is empty)\n"
			   "  Ctrl-D             quit (on an empty input)\n"
			   "  Ctrl-L             redraw the screen\n"
			   "  Ctrl-Z             suspend (fg resumes)\n"
			   "Other readline keys work as in bash (Ctrl-A, Ctrl-E, Ctrl-W, Ctrl-R).\n"
			   "A line starting with // sends a message that starts with /.");
	chat_notice(c, "%s", sb.buf);
	strbuf_release(&sb);
}

static void show_settings(struct chat *c)
{
	const char *const *names = config_sampling_names();
	struct strbuf sb = STRBUF_INIT;
	for (int i = 0; names[i]; i++) {
		strbuf_addf(&sb, "%-18s ", names[i]);
		config_sampling_format(&c->sampling, names[i], &sb);
		strbuf_addch(&sb, '\n');
	}
	static const char *const efforts[] = { "auto", "low", "medium", "high" };
	strbuf_addf(&sb, "%-18s %s\n", "reasoning_effort", efforts[c->cfg->reasoning_effort]);
	strbuf_addstr(&sb, "Change one with /set KEY VALUE (the ranges of config.yaml).");
	chat_notice(c, "%s", sb.buf);
	strbuf_release(&sb);
}

/* /set KEY VALUE: the key table (app/config.c) checks it as it checks config.yaml. */
static void do_set(struct chat *c, const char *args)
{
	struct strbuf key = STRBUF_INIT, shown = STRBUF_INIT;
	const char *v;
	if (!*args) {
		show_settings(c);
		return;
	}
	strbuf_add(&key, args, strcspn(args, " \t"));
	for (v = args + key.len; *v == ' ' || *v == '\t'; v++)
		;
	if (!*v) {
		chat_notice(c, "usage: /set %s VALUE (/set lists the settings)", key.buf);
	} else if (!strcmp(key.buf, "reasoning_effort")) {
		/* not a sampling setting: the configuration's key, as /think's */
		if (config_set(c->cfg, "reasoning_effort", v, "/set") < 0) {
			chat_notice(c, "%s", error_message());
			error_clear();
		} else {
			chat_hint(c, "reasoning_effort = %s", v);
		}
	} else if (config_sampling_set(&c->sampling, key.buf, v) < 0) {
		struct strbuf names = STRBUF_INIT;
		const char *const *n = config_sampling_names();
		for (int i = 0; n[i]; i++)
			strbuf_addf(&names, "%s%s", i ? ", " : "", n[i]);
		if (!strncmp(error_message(), "unknown setting", 15))
			chat_notice(c, "%s; one of: %s", error_message(), names.buf);
		else
			chat_notice(c, "%s", error_message());
		error_clear();
		strbuf_release(&names);
	} else {
		config_sampling_format(&c->sampling, key.buf, &shown);
		chat_hint(c, "%s = %s", key.buf, shown.buf);
	}
	strbuf_release(&key);
	strbuf_release(&shown);
}

static void do_stats(struct chat *c)
{
	const struct engine_stats *s = &c->last_stats;
	if (!c->have_last_stats) {
		chat_notice(c, "No reply yet.");
		return;
	}
	chat_notice(c,
		    "prompt: %d tokens (%d reused from the cache) in %.0f ms, %.1f t/s\n"
		    "reply: %d tokens in %.0f ms, %.1f t/s; first token after %.0f ms\n"
		    "context: %d of %d tokens; stopped by %s%s",
		    s->prompt_tokens, s->reused_tokens, s->prefill_ms, s->prefill_tps,
		    s->gen_tokens, s->decode_ms, s->decode_tps, s->ttft_ms, s->n_ctx_used, s->n_ctx,
		    engine_stop_reason_name(s->stop_reason),
		    s->shifts ? "; the context shifted" : "");
}

static void show_model(struct chat *c)
{
	const struct engine_info *i = c->eng ? engine_info(c->eng) : NULL;
	if (c->next)
		chat_notice(c, "Loading '%s'\xe2\x80\xa6%s", c->next_path,
			    i ? " (it replaces the model below when it is ready)" : "");
	if (!i) {
		if (!c->next)
			chat_notice(c, "No model is loaded.");
		return;
	}
	char size[32], kv[32], params[32];
	chat_notice(c,
		    "%s (%s)\nfile: %s, %s\n%s parameters, %s weights, vocabulary %d\n"
		    "context %d tokens (trained %d), KV cache %s\nbackend %s%s%s%s, %d threads, "
		    "chat template %s",
		    i->name, i->arch, c->model_path, format_size(size, sizeof(size), i->file_bytes),
		    status_format_count(params, sizeof(params), i->n_params), i->type_name,
		    i->n_vocab, i->n_ctx, i->n_ctx_train, format_size(kv, sizeof(kv), i->kv_bytes),
		    i->backend, i->device[0] ? " (" : "", i->device, i->device[0] ? ")" : "",
		    i->n_threads, i->chat_template);
}

static void do_model(struct chat *c, const char *args)
{
	struct strbuf path = STRBUF_INIT;
	if (!*args) {
		show_model(c);
		return;
	}
	if (!chat_need_idle(c))
		return;
	if (args[0] == '~' && args[1] == '/' && getenv("HOME"))
		strbuf_addf(&path, "%s%s", getenv("HOME"), args + 1);
	else
		strbuf_addstr(&path, args);
	/* the model in use stays until the new one is ready (chat_engine.c) */
	if (access(path.buf, R_OK) < 0)
		chat_notice(c, "cannot read '%s': %s", path.buf, strerror(errno));
	else
		chat_engine_open(c, path.buf);
	strbuf_release(&path);
}

static void do_system(struct chat *c, const char *args)
{
	if (!*args) {
		if (c->system_prompt && *c->system_prompt)
			chat_notice(
				c,
				"System prompt:\n%s\n(/system TEXT changes it, /system off removes it)",
				c->system_prompt);
		else
			chat_notice(c, "No system prompt. /system TEXT sets one.");
		return;
	}
	free(c->system_prompt);
	c->system_prompt = NULL;
	if (strcmp(args, "off") && strcmp(args, "none"))
		c->system_prompt = xstrdup(args);
	chat_hint(c, c->system_prompt ? "system prompt set: it applies from the next reply"
				      : "system prompt removed");
}

/* /think: switch thinking (templates with enable_thinking), or how it shows. */
static void do_think(struct chat *c, const char *args)
{
	static const char *const views[] = { "collapse", "show", "hide" };
	static const char *const switches[] = { "auto", "on", "off" };
	const struct engine_info *info = c->eng ? engine_info(c->eng) : NULL;
	for (int i = 0; i < 3; i++) {
		if (!strcmp(args, views[i])) {
			c->pane.thinking_view = i;
			c->pane.dirty = 1;
			chat_hint(c, "thinking: %s", views[i]);
			return;
		}
		if (!strcmp(args, switches[i])) {
			/* the setting itself, through the key table: requests
			 * take it from there (config_to_request) */
			if (config_set(c->cfg, "think", switches[i], "/think") < 0) {
				chat_error(c, "%s", error_message());
				error_clear();
				return;
			}
			if (info && !info->template_thinks && !info->server[0] && i != THINK_AUTO)
				chat_notice(c,
					    "This model's chat template does not switch thinking "
					    "(enable_thinking): /think %s changes nothing for it.",
					    switches[i]);
			else
				chat_hint(c, "thinking %s: it applies from the next reply",
					  switches[i]);
			return;
		}
	}
	if (*args) {
		chat_error(c, "/think takes on, off, auto, show, hide or collapse, not '%s'", args);
		return;
	}
	chat_notice(c,
		    "Thinking: %s (%s); shown: %s.\n/think on|off|auto switches it for templates "
		    "that read enable_thinking; /think show|hide|collapse (or Ctrl-T) changes how "
		    "it shows; Esc while the model thinks makes it answer now.",
		    switches[c->cfg->think],
		    info && (info->template_thinks || info->server[0])
			    ? "the template switches it"
			    : "the template does not switch it",
		    views[c->pane.thinking_view]);
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

static void do_copy(struct chat *c)
{
	struct chat_msg *m = chat_pane_last(&c->pane, CHAT_ASSISTANT, NULL);
	if (!m || !m->text.len) {
		chat_notice(c, "No reply to copy yet.");
		return;
	}
	struct strbuf sb = STRBUF_INIT;
	strbuf_addstr(&sb, "\x1b]52;c;");
	b64(&sb, (const unsigned char *)m->text.buf, m->text.len);
	strbuf_addstr(&sb, "\x07");
	screen_write_raw(sb.buf, sb.len);
	strbuf_release(&sb);
	chat_hint(c, "copied the last reply (%zu bytes) with OSC 52; the terminal must allow it",
		  m->text.len);
}

static void do_export(struct chat *c, const char *args)
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
	chat_session_export(c, path);
}

/* The last message of the user, when no reply streams; else NULL, said. */
static struct chat_msg *last_user(struct chat *c, size_t *at, const char *none)
{
	struct chat_msg *u = chat_need_idle(c) ? chat_pane_last(&c->pane, CHAT_USER, at) : NULL;
	if (!u && !c->busy)
		chat_notice(c, "%s", none);
	return u;
}

static void do_regen(struct chat *c)
{
	size_t ia, iu;
	struct chat_msg *u = last_user(c, &iu, "Nothing to regenerate yet.");
	if (!u)
		return;
	struct chat_msg *a = chat_pane_last(&c->pane, CHAT_ASSISTANT, &ia);
	if (a && ia > iu) {
		if (a->id)
			c->reuse_reply_row = a->id; /* the new reply overwrites it in the history */
		chat_pane_remove(&c->pane, ia);
	}
	if (!c->eng) {
		chat_notice(c, "No model is loaded.");
		return;
	}
	chat_engine_submit(c);
}

static void do_edit(struct chat *c)
{
	size_t iu;
	struct chat_msg *u = last_user(c, &iu, "No message to edit yet.");
	if (!u)
		return;
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
	chat_hint(c, "edit the message and press Enter to send it again");
}

static void do_new(struct chat *c, const char *title)
{
	if (!chat_need_idle(c))
		return;
	chat_session_reset(c, title);
	free(c->system_prompt); /* a loaded session's system prompt goes with it */
	c->system_prompt = c->cfg->system_prompt ? xstrdup(c->cfg->system_prompt) : NULL;
	chat_hint(c, "new session%s%s", *title ? ": " : "", title);
}

static void do_open(struct chat *c, const char *args)
{
	char id[STORE_ID_SIZE];
	if (!chat_need_idle(c) || !chat_session_need_store(c))
		return;
	if (!*args) {
		chat_notice(
			c, "usage: /open ID (an id or the start of a title; /sessions lists them)");
		return;
	}
	if (store_session_resolve(c->store, args, id) < 0) {
		chat_notice(c, "%s", error_message());
		error_clear();
		return;
	}
	chat_session_load(c, id, 0);
}

static void do_rename(struct chat *c, const char *args)
{
	if (!*args) {
		chat_notice(c, "usage: /rename TITLE");
		return;
	}
	if (c->store && c->sid[0]) {
		if (store_session_rename(c->store, c->sid, args) < 0) {
			chat_notice(c, "%s", error_message());
			error_clear();
			return;
		}
		chat_session_refresh_title(c);
	} else {
		free(c->pending_title);
		c->pending_title = xstrdup(args);
		chat_copy_str(c->st.title, sizeof(c->st.title), args);
	}
	c->status_dirty = c->rule_dirty = 1;
	chat_hint(c, "renamed to '%s'", c->st.title);
}

static void do_delete(struct chat *c, const char *args)
{
	if (!chat_need_idle(c) || !chat_session_need_store(c))
		return;
	if (!c->sid[0]) {
		chat_notice(c, "This session is not saved yet; /new starts over.");
		return;
	}
	if (strcmp(args, "yes")) {
		chat_notice(
			c,
			"Delete the session '%s' and all its messages? Type /delete yes to confirm.",
			c->st.title[0] ? c->st.title : c->sid);
		return;
	}
	if (store_session_delete(c->store, c->sid) < 0) {
		chat_session_fail(c);
		return;
	}
	chat_session_reset(c, "");
	chat_hint(c, "session deleted");
}

static void format_when(char *buf, size_t cap, int64_t ms)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	localtime_r(&t, &tm);
	strftime(buf, cap, "%Y-%m-%d %H:%M", &tm);
}

static void do_sessions(struct chat *c)
{
	struct store_session *list = NULL;
	size_t n = 0;
	if (!chat_need_idle(c) || !chat_session_need_store(c))
		return;
	if (store_session_list(c->store, 500, &list, &n) < 0) {
		chat_session_fail(c);
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

static void do_search(struct chat *c, const char *query)
{
	struct store_hit *hits = NULL;
	size_t n = 0;
	if (!chat_need_idle(c) || !chat_session_need_store(c))
		return;
	if (!*query) {
		chat_notice(c, "usage: /search WORDS (all must occur; word* matches a prefix)");
		return;
	}
	if (store_search(c->store, query, 100, PICKER_MARK_OPEN, PICKER_MARK_CLOSE, &hits, &n) <
	    0) {
		chat_notice(c, "%s", error_message());
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
	case SLASH_SET: do_set(c, args); break;
	case SLASH_STATS: do_stats(c); break;
	case SLASH_MODEL: do_model(c, args); break;
	case SLASH_SYSTEM: do_system(c, args); break;
	case SLASH_THINK: do_think(c, args); break;
	case SLASH_COPY: do_copy(c); break;
	case SLASH_EXPORT: do_export(c, args); break;
	case SLASH_REGEN: do_regen(c); break;
	case SLASH_EDIT: do_edit(c); break;
	case SLASH_NEW: do_new(c, args); break;
	case SLASH_CLEAR:
		c->pane.first_shown = c->pane.n_msgs;
		c->pane.scroll = 0;
		c->pane.dirty = 1;
		break;
	case SLASH_SESSIONS: do_sessions(c); break;
	case SLASH_OPEN: do_open(c, args); break;
	case SLASH_RENAME: do_rename(c, args); break;
	case SLASH_DELETE: do_delete(c, args); break;
	case SLASH_SEARCH: do_search(c, args); break;
	case SLASH_COUNT: break;
	}
}

void chat_commands_on_line(void *ctx, char *line, int pasted)
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
			chat_notice(c,
				    "Unknown command /%s. Did you mean /%s? (/help lists them; // "
				    "starts a message with /)",
				    unknown, s);
		else
			chat_notice(c,
				    "Unknown command /%s. /help lists the commands; // starts a "
				    "message with /.",
				    unknown);
		free(unknown);
	} else {
		chat_engine_send(c, !pasted && line[0] == '/' && line[1] == '/' ? line + 1 : line);
	}
	free(line);
}
