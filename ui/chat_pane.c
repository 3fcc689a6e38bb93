/* The transcript pane: message model, rendering into visual lines, scrollback and drawing. */
#include "chat_pane.h"
#include "theme.h"
#include "wrap.h"
#include "xalloc.h"

#include <ctype.h>
#include <curses.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * DESIGN
 * Each message keeps its raw text and a cache of its rendering at one
 * width: logical lines (Markdown applied, see markdown.c) and visual lines
 * (wrapped, see wrap.c).  A streaming reply changes length, so only that
 * message re-renders as tokens arrive; a resize re-renders everything
 * once.  The view is addressed from the bottom (`scroll` lines up), so
 * following the stream is scroll == 0 and costs nothing; when scrolled up,
 * lines added below raise `scroll` by as much so the view holds still.
 */

#define BODY_INDENT 2
#define CODE_MARK 2 /* "↪ " before the continuation of a code line */

void chat_pane_init(struct chat_pane *p)
{
	memset(p, 0, sizeof(*p));
	p->markdown = 1;
	p->word_wrap = 1;
	p->last_width = -1;
	strcpy(p->assistant_label, "assistant");
	p->dirty = 1;
}

static void msg_free(struct chat_msg *m)
{
	strbuf_release(&m->text);
	strbuf_release(&m->thinking);
	free(m->label);
	for (size_t i = 0; i < m->alloc_lines; i++)
		md_line_release(&m->lines[i]);
	free(m->lines);
	free(m->vlines);
	free(m);
}

void chat_pane_release(struct chat_pane *p)
{
	chat_pane_clear(p);
	free(p->msgs);
	p->msgs = NULL;
	p->alloc_msgs = 0;
}

void chat_pane_mark(struct chat_pane *p, struct chat_msg *m, const char *query)
{
	for (size_t i = 0; i < p->n_mark_words; i++)
		free(p->mark_words[i]);
	free(p->mark_words);
	p->mark_words = NULL;
	p->n_mark_words = 0;
	p->marked = m;
	p->dirty = 1;
	if (!m || !query)
		return;
	size_t alloc = 0;
	const char *q = query;
	while (*q) {
		while (*q == ' ' || *q == '"' || *q == '\'' || *q == '\t')
			q++;
		size_t n = strcspn(q, " \t\"'");
		size_t keep = n;
		while (keep && q[keep - 1] == '*')
			keep--;
		if (keep) {
			ALLOC_GROW(p->mark_words, p->n_mark_words + 1, alloc);
			p->mark_words[p->n_mark_words++] = xstrndup(q, keep);
		}
		q += n;
	}
}

static int same_ci(const char *a, const char *b, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char x = (unsigned char)a[i], y = (unsigned char)b[i];
		if (x < 0x80 && y < 0x80 ? tolower(x) != tolower(y) : x != y)
			return 0;
	}
	return 1;
}

size_t chat_pane_find_mark(const struct chat_pane *p, const char *s, size_t n, size_t from,
			   size_t *len)
{
	for (size_t i = from; i < n; i++)
		for (size_t w = 0; w < p->n_mark_words; w++) {
			size_t wl = strlen(p->mark_words[w]);
			if (wl && i + wl <= n && same_ci(s + i, p->mark_words[w], wl)) {
				*len = wl;
				return i;
			}
		}
	*len = 0;
	return n;
}

void chat_pane_clear(struct chat_pane *p)
{
	chat_pane_mark(p, NULL, NULL);
	for (size_t i = 0; i < p->n_msgs; i++)
		msg_free(p->msgs[i]);
	p->n_msgs = 0;
	p->first_shown = 0;
	p->scroll = 0;
	p->unseen = 0;
	p->last_total = 0;
	p->dirty = 1;
}

struct chat_msg *chat_pane_insert(struct chat_pane *p, size_t i, enum chat_role role,
				  const char *text)
{
	struct chat_msg *m = xcalloc(1, sizeof(*m));
	m->role = role;
	strbuf_init(&m->text, 0);
	strbuf_init(&m->thinking, 0);
	strbuf_addstr(&m->text, text);
	m->cache_width = -1;
	if (i > p->n_msgs)
		i = p->n_msgs;
	ALLOC_GROW(p->msgs, p->n_msgs + 1, p->alloc_msgs);
	memmove(p->msgs + i + 1, p->msgs + i, (p->n_msgs - i) * sizeof(*p->msgs));
	p->msgs[i] = m;
	p->n_msgs++;
	if (i < p->first_shown)
		p->first_shown++;
	p->dirty = 1;
	return m;
}

struct chat_msg *chat_pane_add(struct chat_pane *p, enum chat_role role, const char *text)
{
	return chat_pane_insert(p, p->n_msgs, role, text);
}

void chat_msg_set_label(struct chat_msg *m, const char *label)
{
	free(m->label);
	m->label = label ? xstrdup(label) : NULL;
}

size_t chat_pane_index(const struct chat_pane *p, const struct chat_msg *m)
{
	size_t i = 0;
	while (i < p->n_msgs && p->msgs[i] != m)
		i++;
	return i;
}

struct chat_msg *chat_pane_addf(struct chat_pane *p, enum chat_role role, const char *fmt, ...)
{
	struct strbuf sb = STRBUF_INIT;
	va_list ap;
	va_start(ap, fmt);
	strbuf_vaddf(&sb, fmt, ap);
	va_end(ap);
	struct chat_msg *m = chat_pane_add(p, role, sb.buf);
	strbuf_release(&sb);
	return m;
}

void chat_pane_append(struct chat_pane *p, struct chat_msg *m, const char *text, size_t len)
{
	strbuf_add(&m->text, text, len);
	p->dirty = 1;
}

void chat_pane_append_thinking(struct chat_pane *p, struct chat_msg *m, const char *text,
			       size_t len)
{
	strbuf_add(&m->thinking, text, len);
	p->dirty = 1;
}

void chat_msg_think_line(const struct chat_msg *m, char *buf, size_t size)
{
	double s = m->think_ms / 1000.0;
	if (!(m->flags & CHAT_THINKING) && !m->think_tokens && m->think_ms <= 0)
		snprintf(buf, size, "thought"); /* from the history: no figures */
	else if (m->flags & CHAT_THINKING)
		snprintf(buf, size, "thinking\xe2\x80\xa6 %d token%s, %.1f s", m->think_tokens,
			 m->think_tokens == 1 ? "" : "s", s);
	else
		snprintf(buf, size, "thought for %.1f s (%d token%s)", s, m->think_tokens,
			 m->think_tokens == 1 ? "" : "s");
}

void chat_pane_remove(struct chat_pane *p, size_t i)
{
	if (i >= p->n_msgs)
		return;
	if (p->msgs[i] == p->marked)
		chat_pane_mark(p, NULL, NULL);
	msg_free(p->msgs[i]);
	memmove(p->msgs + i, p->msgs + i + 1, (p->n_msgs - i - 1) * sizeof(*p->msgs));
	p->n_msgs--;
	if (p->first_shown > i)
		p->first_shown--;
	p->dirty = 1;
}

struct chat_msg *chat_pane_last(struct chat_pane *p, enum chat_role role, size_t *index)
{
	for (size_t i = p->n_msgs; i-- > 0;)
		if (p->msgs[i]->role == role) {
			if (index)
				*index = i;
			return p->msgs[i];
		}
	return NULL;
}

static struct chat_vline *push_vline(struct chat_msg *m, enum chat_vkind kind, int ll, size_t start,
				     size_t end, int indent)
{
	ALLOC_GROW(m->vlines, m->n_vlines + 1, m->alloc_vlines);
	struct chat_vline *v = &m->vlines[m->n_vlines++];
	v->kind = kind;
	v->ll = ll;
	v->start = start;
	v->end = end;
	v->indent = indent;
	v->cont = 0;
	return v;
}

/* Logical and visual lines of s[0..len) (kind VL_TEXT or VL_THOUGHT). */
static void layout_text(const struct chat_pane *p, struct chat_msg *m, const char *s, size_t len,
			int md, enum chat_vkind kind, int indent, int width)
{
	struct md_state st = { 0 };
	struct wrap_span *spans = NULL;
	size_t n_spans = 0, alloc_spans = 0;
	size_t pos = 0;
	for (;;) {
		const char *nl = memchr(s + pos, '\n', len - pos);
		size_t end = nl ? (size_t)(nl - s) : len;
		if (m->n_lines == m->alloc_lines) {
			size_t old = m->alloc_lines;
			ALLOC_GROW(m->lines, m->n_lines + 1, m->alloc_lines);
			for (size_t i = old; i < m->alloc_lines; i++)
				md_line_init(&m->lines[i]);
		}
		struct md_line *l = &m->lines[m->n_lines];
		if (md && !st.in_fence && !st.table_cols)
			md_table_begin(&st, s + pos, len - pos);
		md_render_line(&st, s + pos, end - pos, md, l);
		n_spans = 0;
		/* code wraps between words too, and its continuations are marked
		 * (CODE_MARK columns before them): a cut is never mistaken for a
		 * line break of the code itself */
		int hang = l->code ? CODE_MARK : l->indent;
		wrap_line(l->text.buf, l->text.len, width - indent, hang, l->code || p->word_wrap,
			  &spans, &n_spans, &alloc_spans);
		for (size_t i = 0; i < n_spans; i++)
			push_vline(m, kind, (int)m->n_lines, spans[i].start, spans[i].end,
				   indent + (i ? hang : 0))
				->cont = l->code && i > 0;
		m->n_lines++;
		if (!nl)
			break;
		pos = end + 1;
	}
	free(spans);
}

void chat_msg_layout(const struct chat_pane *p, struct chat_msg *m, int width)
{
	if (m->cache_width == width && m->cache_len == m->text.len &&
	    m->cache_think_len == m->thinking.len && m->cache_flags == m->flags &&
	    m->cache_view == p->thinking_view)
		return;
	m->n_vlines = 0;
	m->n_lines = 0;

	int labelled = m->role == CHAT_USER || m->role == CHAT_ASSISTANT || m->role == CHAT_SYSTEM;
	int indent = labelled ? BODY_INDENT : 0;
	int md = p->markdown && m->role == CHAT_ASSISTANT;

	if (labelled)
		push_vline(m, VL_HEADER, 0, 0, 0, 0);
	if (m->thinking.len || (m->flags & CHAT_THINKING)) {
		/* the thinking: a line that says so, and its text while it
		 * streams (collapse) or always (show) */
		push_vline(m, VL_THINK_HEAD, 0, 0, 0, indent);
		int open =
			p->thinking_view == CHAT_THINKING_SHOW ||
			(p->thinking_view == CHAT_THINKING_COLLAPSE && (m->flags & CHAT_THINKING));
		const char *t = m->thinking.buf;
		size_t tl = m->thinking.len;
		while (tl && (*t == '\n' || *t == ' '))
			t++, tl--;
		while (tl && (t[tl - 1] == '\n' || t[tl - 1] == ' '))
			tl--;
		if (open && tl)
			layout_text(p, m, t, tl, 0, VL_THOUGHT, indent, width);
		if (!(m->flags & CHAT_THINKING) && m->text.len)
			push_vline(m, VL_BLANK, 0, 0, 0, 0);
	}
	/* a streaming reply ending in '\n' shows the empty line it starts;
	 * a finished one drops trailing newlines */
	size_t len = m->text.len;
	if (!(m->flags & CHAT_STREAMING))
		while (len && m->text.buf[len - 1] == '\n')
			len--;
	/* leading newlines (models often start with one) would only push the
	 * text away from its label */
	const char *s = m->text.buf;
	while (len && *s == '\n')
		s++, len--;
	if (!(m->flags & CHAT_THINKING) || len)
		layout_text(p, m, s, len, md, VL_TEXT, indent, width);
	if (m->flags & (CHAT_STOPPED | CHAT_FAILED))
		push_vline(m, VL_MARK, 0, 0, 0, indent);
	push_vline(m, VL_BLANK, 0, 0, 0, 0);

	m->cache_width = width;
	m->cache_len = m->text.len;
	m->cache_think_len = m->thinking.len;
	m->cache_flags = m->flags;
	m->cache_view = p->thinking_view;
}

int chat_pane_total(struct chat_pane *p, int width)
{
	int total = 0;
	for (size_t i = p->first_shown; i < p->n_msgs; i++) {
		chat_msg_layout(p, p->msgs[i], width);
		total += (int)p->msgs[i]->n_vlines;
	}
	return total;
}

static void clamp_scroll(struct chat_pane *p, int total, int height)
{
	int max = total - height;
	if (max < 0)
		max = 0;
	if (p->scroll > max)
		p->scroll = max;
	if (p->scroll < 0)
		p->scroll = 0;
	if (p->scroll == 0)
		p->unseen = 0;
}

int chat_pane_view_top(struct chat_pane *p, int width, int height)
{
	int total = chat_pane_total(p, width);
	if (p->scroll > 0 && width == p->last_width && total > p->last_total) {
		p->scroll += total - p->last_total;
		p->unseen = 1;
	}
	p->last_total = total;
	p->last_width = width;
	clamp_scroll(p, total, height);
	int top = total - height - p->scroll;
	return top < 0 ? 0 : top;
}

void chat_pane_scroll(struct chat_pane *p, int lines, int width, int height)
{
	chat_pane_view_top(p, width, height); /* settle pending growth first */
	p->scroll += lines;
	clamp_scroll(p, p->last_total, height);
	p->dirty = 1;
}

void chat_pane_scroll_top(struct chat_pane *p, int width, int height)
{
	chat_pane_scroll(p, 1 << 28, width, height);
}

void chat_pane_scroll_bottom(struct chat_pane *p)
{
	p->scroll = 0;
	p->unseen = 0;
	p->dirty = 1;
}

void chat_pane_scroll_to(struct chat_pane *p, size_t idx, int width, int height)
{
	int total = chat_pane_total(p, width), before = 0;
	for (size_t i = p->first_shown; i < idx && i < p->n_msgs; i++)
		before += (int)p->msgs[i]->n_vlines;
	p->last_total = total;
	p->last_width = width;
	p->scroll = total - height - before;
	clamp_scroll(p, total, height);
	p->dirty = 1;
}

/* ---- drawing ------------------------------------------------------------ */

static enum theme_slot md_slot(enum md_style s)
{
	switch (s) {
	case MD_PLAIN: return TH_TEXT;
	case MD_BOLD: return TH_BOLD;
	case MD_CODE: return TH_CODE;
	case MD_CODEBLOCK: return TH_CODEBLOCK;
	case MD_FENCE: return TH_FENCE;
	case MD_HEADING: return TH_HEADING;
	case MD_BULLET: return TH_BULLET;
	case MD_QUOTE: return TH_QUOTE;
	case MD_ITALIC: return TH_ITALIC;
	case MD_LINK: return TH_LINK;
	case MD_URL: return TH_URL;
	}
	return TH_TEXT;
}

static void draw_text(const struct chat_pane *p, WINDOW *win, const struct chat_msg *m,
		      const struct chat_vline *v, int width)
{
	const struct md_line *l = &m->lines[v->ll];
	enum theme_slot base = v->kind == VL_THOUGHT    ? TH_THINKING
			       : m->role == CHAT_NOTICE ? TH_NOTICE
			       : m->role == CHAT_ERROR  ? TH_ERROR
							: TH_TEXT;
	int col = v->indent;
	if (v->cont) {
		wmove(win, getcury(win), col - CODE_MARK);
		wattrset(win, (attr_t)theme_attr(TH_FENCE));
		waddstr(win, "\xe2\x86\xaa "); /* ↪ */
	}
	wmove(win, getcury(win), col);
	for (size_t r = 0; r < l->n_runs; r++) {
		const struct md_run *run = &l->runs[r];
		size_t a = run->start > v->start ? run->start : v->start;
		size_t b = run->start + run->len < v->end ? run->start + run->len : v->end;
		if (a >= b)
			continue;
		enum theme_slot slot = run->style == MD_PLAIN ? base : md_slot(run->style);
		wattrset(win, (attr_t)theme_attr(slot));
		waddnstr(win, l->text.buf + a, (int)(b - a));
		col += wrap_width(l->text.buf + a, b - a);
	}
	if (m == p->marked) {
		/* search words: drawn again over the line in the match colour */
		size_t len, at = v->start;
		while ((at = chat_pane_find_mark(p, l->text.buf, v->end, at, &len)) < v->end) {
			int x = v->indent + wrap_width(l->text.buf + v->start, at - v->start);
			wattrset(win, (attr_t)theme_attr(TH_MATCH));
			mvwaddnstr(win, getcury(win), x, l->text.buf + at, (int)len);
			at += len;
		}
		wmove(win, getcury(win), col);
	}
	if (l->code) {
		/* code blocks are a filled block to the right edge */
		wattrset(win, (attr_t)theme_attr(TH_CODEBLOCK));
		for (; col < width; col++)
			waddch(win, ' ');
	}
	wattrset(win, A_NORMAL);
}

static void draw_vline(struct chat_pane *p, WINDOW *win, const struct chat_msg *m,
		       const struct chat_vline *v, int width)
{
	switch (v->kind) {
	case VL_HEADER:
		if (m->role == CHAT_USER) {
			wattrset(win, (attr_t)theme_attr(TH_USER));
			waddstr(win, "you");
		} else if (m->role == CHAT_SYSTEM) {
			wattrset(win, (attr_t)theme_attr(TH_SYSTEM));
			waddstr(win, "system");
		} else {
			wattrset(win, (attr_t)theme_attr(TH_ASSISTANT));
			waddnstr(win, m->label ? m->label : p->assistant_label, width);
			if (m->flags & CHAT_STREAMING) {
				wattrset(win, (attr_t)theme_attr(TH_S_LABEL));
				waddstr(win, " \xe2\x80\xa6"); /* … */
			}
		}
		break;
	case VL_TEXT:
	case VL_THOUGHT: draw_text(p, win, m, v, width); break;
	case VL_THINK_HEAD: {
		char buf[96];
		int open =
			p->thinking_view == CHAT_THINKING_SHOW ||
			(p->thinking_view == CHAT_THINKING_COLLAPSE && (m->flags & CHAT_THINKING));
		chat_msg_think_line(m, buf, sizeof(buf));
		wmove(win, getcury(win), v->indent);
		wattrset(win, (attr_t)theme_attr(TH_THINKING));
		/* a triangle that says whether the text is open below */
		waddstr(win, open ? "\xe2\x96\xbe " : "\xe2\x96\xb8 ");
		waddnstr(win, buf, width - v->indent - 2 > 0 ? width - v->indent - 2 : 0);
		break;
	}
	case VL_MARK:
		wmove(win, getcury(win), v->indent);
		wattrset(win, (attr_t)theme_attr(m->flags & CHAT_FAILED ? TH_ERROR : TH_STOPPED));
		waddstr(win, m->flags & CHAT_FAILED ? "[failed]" : "[stopped]");
		break;
	case VL_BLANK: break;
	}
	wattrset(win, A_NORMAL);
}

void chat_pane_draw(struct chat_pane *p, WINDOW *win, int height, int width)
{
	int top = chat_pane_view_top(p, width, height);
	int line = 0, row = 0;

	werase(win);
	for (size_t i = p->first_shown; i < p->n_msgs && row < height; i++) {
		struct chat_msg *m = p->msgs[i];
		if (line + (int)m->n_vlines <= top) {
			line += (int)m->n_vlines;
			continue;
		}
		for (size_t k = 0; k < m->n_vlines && row < height; k++, line++) {
			if (line < top)
				continue;
			wmove(win, row, 0);
			draw_vline(p, win, m, &m->vlines[k], width);
			row++;
		}
	}
	if (p->scroll > 0 && height > 1) {
		/* the indicator replaces the last row */
		char buf[96];
		if (p->unseen)
			snprintf(buf, sizeof(buf),
				 " \xe2\x96\xbc new text below \xc2\xb7 End to follow ");
		else
			snprintf(buf, sizeof(buf),
				 " \xe2\x96\xbc %d more line%s below \xc2\xb7 PgDn, End ",
				 p->scroll, p->scroll == 1 ? "" : "s");
		int w = wrap_width(buf, strlen(buf));
		wmove(win, height - 1, 0);
		wclrtoeol(win);
		wmove(win, height - 1, w < width ? (width - w) / 2 : 0);
		wattrset(win, (attr_t)theme_attr(TH_INDICATOR));
		waddnstr(win, buf, (int)strlen(buf));
		wattrset(win, A_NORMAL);
	}
	if (top > 0 && height > 2) {
		/* lines above the view: a cue at the right end of the first row */
		char buf[96];
		snprintf(buf, sizeof(buf), " \xe2\x96\xb2 %d more line%s above \xc2\xb7 PgUp ", top,
			 top == 1 ? "" : "s");
		int w = wrap_width(buf, strlen(buf));
		if (w < width) {
			wmove(win, 0, width - w);
			wclrtoeol(win);
			wattrset(win, (attr_t)theme_attr(TH_INDICATOR));
			waddnstr(win, buf, (int)strlen(buf));
			wattrset(win, A_NORMAL);
		}
	}
	p->dirty = 0;
}
