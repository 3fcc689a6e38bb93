/* The chat: the UI event loop joining the terminal, readline, the engine and the history. */
#include "chat.h"
#include "modes.h"
#include "report.h"
#include "strbuf.h"
#include "util.h"
#include "xalloc.h"

#include "input.h"
#include "slash.h"
#include "theme.h"
#include "wrap.h"

#include <curses.h>
#include <errno.h>
#include <langinfo.h>
#include <locale.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

/* Add a notice; one taller than the transcript pages: it is shown from its
 * first line, the rest below the "more below" cue. */
static void add_notice(struct chat *c, enum chat_role role, const char *fmt, va_list ap)
{
	struct strbuf sb = STRBUF_INIT;
	int w = c->scr.lay.transcript.w, h = c->scr.lay.transcript.h;
	strbuf_vaddf(&sb, fmt, ap);
	struct chat_msg *m = chat_pane_add(&c->pane, role, sb.buf);
	strbuf_release(&sb);
	chat_pane_scroll_bottom(&c->pane);
	if (w > 0 && h > 0) {
		chat_msg_layout(&c->pane, m, w);
		if ((int)m->n_vlines > h)
			chat_pane_scroll_to(&c->pane, c->pane.n_msgs - 1, w, h);
	}
}

void chat_notice(struct chat *c, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	add_notice(c, CHAT_NOTICE, fmt, ap);
	va_end(ap);
}

void chat_error(struct chat *c, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	add_notice(c, CHAT_ERROR, fmt, ap);
	va_end(ap);
}

void chat_hint(struct chat *c, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(c->hint, sizeof(c->hint), fmt, ap);
	va_end(ap);
	c->hint_until = time_now_ms() + HINT_MS;
	c->hint_dirty = 1;
	c->hint_of_state = 0;
}

void chat_state_hint(struct chat *c, const char *text)
{
	chat_hint(c, "%s", text);
	c->hint_of_state = 1;
}

void chat_state_changed(struct chat *c)
{
	if (!c->hint_of_state)
		return;
	c->hint[0] = '\0';
	c->hint_of_state = 0;
	c->hint_dirty = 1;
}

int chat_need_idle(struct chat *c)
{
	if (!c->busy)
		return 1;
	chat_state_hint(c, "a reply is streaming: press Esc to stop it first");
	return 0;
}

/* Copy with truncation at a character boundary. */
void chat_copy_str(char *dst, size_t cap, const char *src)
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

const char *chat_base_name(const char *path)
{
	/* a server's URL#MODEL: the model ("Qwen/Qwen2.5-7B-Instruct" whole) */
	const char *hash = strchr(path, '#');
	if (hash && strstr(path, "://"))
		return hash + 1;
	const char *s = strrchr(path, '/');
	return s ? s + 1 : path;
}

#define MAX_CANDIDATES 64

/* Tab: complete a command, a /set key or a file name as far as the
 * candidates agree; list them in the hint when several remain. */
static void complete(struct chat *c)
{
	const char *cand[MAX_CANDIDATES];
	char *files[MAX_CANDIDATES];
	size_t ws, common;
	const char *line = input_text();
	int n = slash_complete(line, config_sampling_names(), cand, MAX_CANDIDATES, &ws, &common);
	int n_files = n ? 0 : slash_complete_files(line, files, MAX_CANDIDATES, &ws, &common);
	if (n_files) {
		for (int i = 0; i < n_files; i++)
			cand[i] = files[i];
		n = n_files;
	}
	if (!n)
		return;
	/* the hint lists file names without the folder typed */
	const char *typed = line + ws, *sl = n_files ? strrchr(typed, '/') : NULL;
	size_t skip = sl ? (size_t)(sl - typed) + 1 : 0;
	size_t have = strlen(typed);
	if (common > have) {
		char *add = xstrndup(cand[0] + have, common - have);
		input_insert(add, 0); /* line is not valid after this */
		free(add);
	}
	if (n == 1) {
		/* a command or key is done: the argument follows; a file name
		 * is the whole argument, and a folder goes on */
		if (!n_files)
			input_insert(" ", 0);
		c->hint[0] = '\0';
		c->hint_dirty = 1;
	} else {
		struct strbuf sb = STRBUF_INIT;
		for (int i = 0; i < n; i++)
			strbuf_addf(&sb, "%s%s", i ? "  " : "", cand[i] + skip);
		chat_hint(c, "%s", sb.buf);
		strbuf_release(&sb);
	}
	for (int i = 0; i < n_files; i++)
		free(files[i]);
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
				chat_session_fail(c);
				picker_close(c);
				return;
			}
			picker_remove_selected(p);
			if (current)
				chat_session_reset(c, "");
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
			chat_copy_str(id, sizeof(id), it->key);
			picker_close(c);
			chat_session_load(c, id, target);
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
				chat_state_hint(c, "a reply is streaming: press Esc to stop it, or "
						   "wait; your text stays here");
				break;
			}
		}
		input_feed("\r", 1);
		break;
	case K_NEWLINE: input_insert("\n", 0); break;
	case K_TAB: complete(c); break;
	case K_ESC:
		if (c->busy)
			chat_engine_escape(c);
		break;
	case K_CTRL_T: {
		/* collapse -> show -> hide -> collapse */
		static const char *const names[] = { "collapse", "show", "hide" };
		c->pane.thinking_view = (c->pane.thinking_view + 1) % 3;
		c->pane.dirty = 1;
		chat_hint(c, "thinking: %s (Ctrl-T changes it)", names[c->pane.thinking_view]);
		break;
	}
	case K_CTRL_C:
		if (c->busy) {
			chat_engine_cancel(c);
		} else if (c->next) {
			chat_engine_stop_load(c);
		} else if (!input_empty()) {
			input_set("");
		} else {
			chat_hint(c, "to quit, press Ctrl-D or type /quit");
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
		const char *ph = c->busy               ? NULL
				 : !c->eng && !c->next ? "no model: /model FILE.gguf loads one"
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

/* The screen is drawn in UTF-8 and measured with wcwidth().  An unset or
 * "C" locale (containers, ssh) would garble it on what is nearly always a
 * UTF-8 terminal: take a UTF-8 LC_CTYPE then. */
static void utf8_ctype(void)
{
	if (strcmp(nl_langinfo(CODESET), "UTF-8") && !setlocale(LC_CTYPE, "C.UTF-8"))
		setlocale(LC_CTYPE, "en_US.UTF-8");
}

static void welcome(struct chat *c, const char *model, int fresh)
{
	int mk = config_key_index("model");
	if (c->cfg->remote_url)
		return; /* the model is the server's: nothing to explain */
	if (fresh && model && c->cfg->origin[mk] &&
	    !strcmp(c->cfg->origin[mk], CONFIG_BUILTIN_ORIGIN)) {
		chat_notice(
			c,
			"Welcome to palaver. This is palaver-tiny, the small model palaver ships: "
			"ask it about palaver's commands, keys and settings, or what an English "
			"word means. It is not a general assistant: for real conversations start "
			"palaver with -m FILE.gguf, set model: in ~/.config/palaver/config.yaml, "
			"or load one now with /model FILE.gguf.\n"
			"/help lists the commands; Ctrl-D quits.");
	}
	if (!model) {
		chat_notice(
			c, "Welcome to palaver. No model is configured yet.\n"
			   "Start palaver with -m FILE.gguf, set model: /path/to/FILE.gguf in "
			   "~/.config/palaver/config.yaml, or load one now with /model FILE.gguf.\n"
			   "/help lists the commands; Ctrl-D quits.");
	}
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

/* The model to start with: the configured one, else a resumed session's
 * own (--session), else palaver-tiny; saying so when it is not the one the
 * session was held with. */
static void start_model(struct chat *c, const char *session_model)
{
	const char *model = c->cfg->model;
	char *fallback = NULL;
	int mk = config_key_index("model");
	int none_on_purpose = !model && c->cfg->origin[mk]; /* -m '' */

	if (c->cfg->remote_url) {
		chat_engine_open(c, NULL); /* the server instead of a model */
		return;
	}
	if (!model && !none_on_purpose && c->cfg->session) {
		int readable = session_model && *session_model && access(session_model, R_OK) == 0;
		int why = errno;
		if (readable) {
			model = session_model;
		} else {
			fallback = config_builtin_model();
			if (session_model) /* the session was opened: say why its model is not */
				chat_notice(c,
					    "This session was held with %s%s%s%s; replies now come "
					    "from %s.",
					    *session_model ? "'" : "no model recorded",
					    *session_model ? session_model : "",
					    *session_model ? "', which cannot be read: " : "",
					    *session_model ? strerror(why) : "",
					    fallback ? "palaver-tiny, the built-in model"
						     : "no model (load one with /model FILE.gguf)");
			model = fallback;
		}
	} else if (model && session_model && *session_model &&
		   strcmp(chat_base_name(model), chat_base_name(session_model))) {
		chat_notice(c, "This session was held with '%s'; replies now come from '%s'.",
			    chat_base_name(session_model), chat_base_name(model));
	}
	welcome(c, model, !c->cfg->session);
	if (model)
		chat_engine_open(c, model);
	free(fallback);
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
	c.pane.thinking_view = cfg->ui_thinking == THINKING_SHOW   ? CHAT_THINKING_SHOW
			       : cfg->ui_thinking == THINKING_HIDE ? CHAT_THINKING_HIDE
								   : CHAT_THINKING_COLLAPSE;
	keys_init(&c.keys);
	picker_init(&c.picker, "", 0);
	c.st.state = STATE_NO_MODEL;

	if (screen_open(&c.scr, cfg->ui_theme, cfg->ui_status_pane, 1) < 0) {
		screen_close(&c.scr);
		return report_failure(EXIT_RUNTIME);
	}
	char *hist = input_history_path();
	if (input_open(hist, chat_commands_on_line, &c) < 0) {
		screen_close(&c.scr);
		report("%s", error_message());
		free(hist);
		return EXIT_RUNTIME;
	}
	free(hist);
	utf8_ctype(); /* readline sets LC_CTYPE from the environment again */
	char *session_model = chat_session_open_history(&c);
	start_model(&c, session_model);
	free(session_model);
	/* the first frame draws everything */
	c.pane.dirty = c.status_dirty = c.rule_dirty = c.hint_dirty = 1;

	while (!c.quit) {
		struct pollfd fds[4];
		int nfds = 0, engines = 0;
		draw(&c);
		fds[nfds++] = (struct pollfd){ .fd = STDIN_FILENO, .events = POLLIN };
		fds[nfds++] = (struct pollfd){ .fd = screen_signal_fd(), .events = POLLIN };
		if (c.eng)
			fds[nfds++] =
				(struct pollfd){ .fd = engine_wakeup_fd(c.eng), .events = POLLIN };
		if (c.next)
			fds[nfds++] =
				(struct pollfd){ .fd = engine_wakeup_fd(c.next), .events = POLLIN };
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
		for (int i = 2; i < nfds; i++)
			engines |= fds[i].revents & (POLLIN | POLLERR | POLLHUP);
		if (engines)
			chat_engine_drain(&c);
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
			chat_engine_sample_speed(&c, time_now_ms(), 0);
	}

	chat_engine_close(&c);
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
