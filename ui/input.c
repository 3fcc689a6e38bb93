/* readline inside curses: the callback interface fed by the UI loop, drawn by us. */
#include "input.h"
#include "report.h"
#include "strbuf.h"
#include "theme.h"
#include "util.h"
#include "wrap.h"
#include "xalloc.h"

#include <curses.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <readline/history.h>
#include <readline/readline.h>

/*
 * DESIGN
 * readline reads bytes through rl_getc_function from `queue`, which
 * input_feed() fills and drains by calling rl_callback_read_char() once
 * per byte.  readline's line handler runs inside rl_callback_read_char, and
 * readline resets its buffer right after the handler returns, so the handler
 * only stores the line; input_feed() hands it to the app afterwards, when
 * the app may freely change the input (e.g. /edit).
 *
 * The history file holds one entry per line with '\n' and '\\' escaped, so
 * that multi-line messages survive (readline's own format cannot).
 */

#define HISTORY_MAX 1000

static struct {
	int open;
	char *history_path;
	input_line_fn fn;
	void *ctx;
	const char *queue; /* bytes readline has yet to read */
	size_t queue_len;
	char *accepted; /* line from the handler, not yet given to fn */
	int got_line;
	int pasted;          /* the current line began with a paste */
	int accepted_pasted; /* ... the accepted line did */
	int dirty;
	FILE *devnull; /* readline's output goes nowhere */
} in;

static int getc_fn(FILE *f)
{
	(void)f;
	if (!in.queue_len)
		return EOF; /* never reached: input_feed only reads while bytes remain */
	unsigned char c = (unsigned char)*in.queue;
	in.queue++;
	in.queue_len--;
	return c;
}

static int available_fn(void)
{
	return in.queue_len > 0;
}

static void redisplay_fn(void)
{
	if (rl_end == 0)
		in.pasted = 0; /* emptied: what comes next is typed */
	in.dirty = 1;
}

static void prep_fn(int meta)
{
	(void)meta;
}

static void deprep_fn(void) {}

static void handler(char *line)
{
	free(in.accepted);
	in.accepted = line;
	in.accepted_pasted = in.pasted;
	in.got_line = 1;
}

static void history_load(const char *path)
{
	struct strbuf sb = STRBUF_INIT, entry = STRBUF_INIT;
	if (strbuf_read_file(&sb, path, READ_MAX_INPUT_HISTORY) < 0) {
		strbuf_release(&sb);
		return; /* no history yet */
	}
	for (size_t i = 0; i < sb.len; i++) {
		char c = sb.buf[i];
		if (c == '\n') {
			if (entry.len)
				add_history(entry.buf);
			strbuf_reset(&entry);
		} else if (c == '\\' && i + 1 < sb.len) {
			c = sb.buf[++i];
			strbuf_addch(&entry, c == 'n' ? '\n' : c);
		} else {
			strbuf_addch(&entry, c);
		}
	}
	if (entry.len)
		add_history(entry.buf);
	strbuf_release(&entry);
	strbuf_release(&sb);
}

static void history_save(const char *path)
{
	if (mkdir_parents(path) < 0)
		return;
	struct strbuf tmp = STRBUF_INIT;
	strbuf_addf(&tmp, "%s.tmp", path);
	FILE *f = fopen(tmp.buf, "w");
	if (!f) {
		strbuf_release(&tmp);
		return;
	}
	HIST_ENTRY **list = history_list();
	for (int i = 0; list && list[i]; i++) {
		for (const char *p = list[i]->line; *p; p++) {
			if (*p == '\n')
				fputs("\\n", f);
			else if (*p == '\\')
				fputs("\\\\", f);
			else
				fputc(*p, f);
		}
		fputc('\n', f);
	}
	if (fclose(f) == 0)
		rename(tmp.buf, path);
	else
		remove(tmp.buf);
	strbuf_release(&tmp);
}

int input_open(const char *history_path, input_line_fn fn, void *ctx)
{
	memset(&in, 0, sizeof(in));
	in.fn = fn;
	in.ctx = ctx;
	in.history_path = history_path ? xstrdup(history_path) : NULL;
	in.devnull = fopen("/dev/null", "w");
	if (!in.devnull)
		return error("cannot open '/dev/null'");

	rl_readline_name = "palaver";
	rl_catch_signals = 0;
	rl_catch_sigwinch = 0;
	rl_change_environment =
		0; /* keep LINES/COLUMNS out of the environment: curses reads them */
	rl_prep_term_function = prep_fn;
	rl_deprep_term_function = deprep_fn;
	rl_getc_function = getc_fn;
	rl_input_available_hook = available_fn;
	rl_redisplay_function = redisplay_fn;
	rl_outstream = in.devnull;
	rl_instream = stdin;
	rl_inhibit_completion = 1; /* Tab belongs to the slash-command completion */

	using_history();
	stifle_history(HISTORY_MAX);
	if (in.history_path)
		history_load(in.history_path);
	rl_callback_handler_install("", handler);
	rl_variable_bind("bell-style", "none");
	rl_variable_bind("enable-bracketed-paste", "off"); /* keys.c decodes pastes */
	rl_variable_bind("horizontal-scroll-mode", "off");
	in.open = 1;
	in.dirty = 1;
	return 0;
}

void input_close(void)
{
	if (!in.open)
		return;
	rl_callback_handler_remove();
	if (in.history_path)
		history_save(in.history_path);
	clear_history();
	free(in.history_path);
	free(in.accepted);
	if (in.devnull)
		fclose(in.devnull);
	rl_outstream = NULL;
	memset(&in, 0, sizeof(in));
}

static void deliver(void)
{
	while (in.got_line) {
		char *line = in.accepted;
		int pasted = in.accepted_pasted;
		in.accepted = NULL;
		in.got_line = 0;
		in.pasted = 0;
		in.dirty = 1;
		if (line)
			in.fn(in.ctx, line, pasted);
	}
}

void input_feed(const char *bytes, size_t n)
{
	in.queue = bytes;
	in.queue_len = n;
	while (in.queue_len) {
		rl_callback_read_char();
		deliver();
	}
	in.queue = NULL;
	in.dirty = 1;
}

void input_insert(const char *text, int pasted)
{
	if (rl_end == 0)
		in.pasted = pasted;
	rl_insert_text(text);
	in.dirty = 1;
}

void input_set(const char *text)
{
	rl_replace_line(text, 1);
	rl_point = rl_end;
	in.pasted = 0;
	in.dirty = 1;
}

const char *input_text(void)
{
	return rl_line_buffer ? rl_line_buffer : "";
}

int input_pasted(void)
{
	return in.pasted;
}

int input_empty(void)
{
	return rl_end == 0;
}

void input_accept(void)
{
	input_feed("\r", 1);
}

void input_history_add(const char *line)
{
	if (!line[0] || strspn(line, " \t\n") == strlen(line))
		return;
	HIST_ENTRY *last =
		history_length > 0 ? history_get(history_base + history_length - 1) : NULL;
	if (!last || strcmp(last->line, line))
		add_history(line);
	using_history();
}

int input_dirty(void)
{
	return in.dirty;
}

#define PROMPT_W 2

int input_layout(const char *text, size_t len, size_t point, int width, int *cur_row, int *cur_col)
{
	int rows = 0;
	int avail = width - PROMPT_W;
	size_t pos = 0;
	struct wrap_span *sp = NULL;
	size_t n_sp = 0, alloc = 0;

	if (avail < 1)
		avail = 1;
	*cur_row = 0;
	*cur_col = PROMPT_W;
	for (;;) {
		const char *nl = memchr(text + pos, '\n', len - pos);
		size_t end = nl ? (size_t)(nl - text) : len;
		n_sp = 0;
		wrap_line(text + pos, end - pos, avail, 0, 0, &sp, &n_sp, &alloc);
		for (size_t i = 0; i < n_sp; i++) {
			size_t a = pos + sp[i].start, b = pos + sp[i].end;
			int last = i + 1 == n_sp;
			if (point >= a && (point < b || (last && point == b))) {
				*cur_row = rows;
				*cur_col = PROMPT_W + wrap_width(text + a, point - a);
			}
			rows++;
		}
		if (!nl)
			break;
		pos = end + 1;
	}
	free(sp);
	if (*cur_col >= width) {
		/* the cursor sits after a full row: it shows at the next row's start */
		(*cur_row)++;
		*cur_col = PROMPT_W;
		if (*cur_row >= rows)
			rows = *cur_row + 1;
	}
	return rows;
}

int input_rows(int width)
{
	int r, c;
	const char *t = input_text();
	return input_layout(t, strlen(t), (size_t)rl_point, width, &r, &c);
}

void input_draw(WINDOW *win, int height, int width, const char *placeholder)
{
	const char *text = input_text();
	size_t len = strlen(text);
	int cur_row, cur_col;
	int rows = input_layout(text, len, (size_t)rl_point, width, &cur_row, &cur_col);
	/* scroll so that the cursor's row is visible */
	int first = 0;
	if (cur_row >= height)
		first = cur_row - height + 1;
	(void)rows;

	werase(win);
	if (!len && placeholder) {
		wattrset(win, (attr_t)theme_attr(TH_PROMPT));
		mvwaddstr(win, 0, 0, "\xe2\x80\xba "); /* › */
		wattrset(win, (attr_t)theme_attr(TH_HINT));
		waddnstr(win, placeholder, -1);
		wattrset(win, A_NORMAL);
		wmove(win, 0, PROMPT_W);
		in.dirty = 0;
		return;
	}
	struct wrap_span *sp = NULL;
	size_t n_sp = 0, alloc = 0, pos = 0;
	int row = 0, avail = width - PROMPT_W < 1 ? 1 : width - PROMPT_W;
	for (;;) {
		const char *nl = memchr(text + pos, '\n', len - pos);
		size_t end = nl ? (size_t)(nl - text) : len;
		n_sp = 0;
		wrap_line(text + pos, end - pos, avail, 0, 0, &sp, &n_sp, &alloc);
		for (size_t i = 0; i < n_sp; i++, row++) {
			if (row < first || row - first >= height)
				continue;
			int y = row - first;
			if (row == 0) {
				wattrset(win, (attr_t)theme_attr(TH_PROMPT));
				mvwaddstr(win, y, 0, "\xe2\x80\xba ");
				wattrset(win, A_NORMAL);
			} else if (i == 0) {
				/* a new line of the message: a dim mark in the margin */
				wattrset(win, (attr_t)theme_attr(TH_HINT));
				mvwaddstr(win, y, 0, "\xc2\xb7 ");
				wattrset(win, A_NORMAL);
			}
			wmove(win, y, PROMPT_W);
			/* control characters other than the newline show as '?' */
			for (size_t k = pos + sp[i].start; k < pos + sp[i].end;) {
				uint32_t cp;
				size_t cl = utf8_decode(text + k, pos + sp[i].end - k, &cp);
				if (cp < 0x20 || cp == 0x7f)
					waddch(win, '?');
				else
					waddnstr(win, text + k, (int)cl);
				k += cl;
			}
		}
		if (!nl)
			break;
		pos = end + 1;
	}
	free(sp);
	if (first > 0) {
		wattrset(win, (attr_t)theme_attr(TH_HINT));
		mvwaddstr(win, 0, width - 2, "\xe2\x86\x91"); /* ↑: more above */
		wattrset(win, A_NORMAL);
	}
	wmove(win, cur_row - first, cur_col < width ? cur_col : width - 1);
	in.dirty = 0;
}
