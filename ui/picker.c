/* The picker: a filtered, scrollable list drawn over the transcript. */
#include "picker.h"
#include "theme.h"
#include "wrap.h"
#include "xalloc.h"

#include <ctype.h>
#include <curses.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void picker_init(struct picker *p, const char *heading, int deletable)
{
	memset(p, 0, sizeof(*p));
	snprintf(p->heading, sizeof(p->heading), "%s", heading);
	p->deletable = deletable;
	strbuf_init(&p->filter, 0);
}

void picker_release(struct picker *p)
{
	for (size_t i = 0; i < p->n_items; i++) {
		free(p->items[i].key);
		free(p->items[i].title);
		free(p->items[i].detail);
	}
	free(p->items);
	free(p->shown);
	strbuf_release(&p->filter);
	memset(p, 0, sizeof(*p));
	strbuf_init(&p->filter, 0);
}

void picker_add(struct picker *p, const char *key, const char *title, const char *detail,
		int64_t target)
{
	ALLOC_GROW(p->items, p->n_items + 1, p->alloc_items);
	struct picker_item *it = &p->items[p->n_items++];
	it->key = xstrdup(key ? key : "");
	it->title = xstrdup(title ? title : "");
	it->detail = xstrdup(detail ? detail : "");
	it->target = target;
	picker_refilter(p);
}

/* Case-insensitive (ASCII) substring search, ignoring the match marks. */
static int contains(const char *hay, const char *needle)
{
	size_t n = strlen(needle);
	if (!n)
		return 1;
	for (const char *h = hay; *h; h++) {
		const char *a = h, *b = needle;
		size_t k = 0;
		while (*a && k < n) {
			if (*a == PICKER_MARK_OPEN[0] || *a == PICKER_MARK_CLOSE[0]) {
				a++;
				continue;
			}
			if (tolower((unsigned char)*a) != tolower((unsigned char)*b))
				break;
			a++, b++, k++;
		}
		if (k == n)
			return 1;
	}
	return 0;
}

void picker_refilter(struct picker *p)
{
	size_t keep = p->n_shown ? p->shown[p->sel] : 0;
	free(p->shown);
	p->shown = xcalloc(p->n_items + 1, sizeof(*p->shown));
	p->n_shown = 0;
	p->sel = 0;
	for (size_t i = 0; i < p->n_items; i++) {
		const struct picker_item *it = &p->items[i];
		if (!contains(it->title, p->filter.buf) &&
		    !(p->filter_detail && contains(it->detail, p->filter.buf)))
			continue;
		if (i == keep)
			p->sel = p->n_shown; /* the selection stays on its item when still shown */
		p->shown[p->n_shown++] = i;
	}
	if (p->top > p->sel)
		p->top = p->sel;
}

void picker_remove_selected(struct picker *p)
{
	if (!p->n_shown)
		return;
	size_t i = p->shown[p->sel];
	free(p->items[i].key);
	free(p->items[i].title);
	free(p->items[i].detail);
	memmove(p->items + i, p->items + i + 1, (p->n_items - i - 1) * sizeof(*p->items));
	p->n_items--;
	size_t sel = p->sel;
	p->n_shown = 0;
	picker_refilter(p);
	p->sel = sel < p->n_shown ? sel : (p->n_shown ? p->n_shown - 1 : 0);
	if (p->top > p->sel)
		p->top = p->sel;
}

void picker_move(struct picker *p, long delta, int rows)
{
	if (!p->n_shown)
		return;
	long s = (long)p->sel + delta;
	if (s < 0)
		s = 0;
	if (s >= (long)p->n_shown)
		s = (long)p->n_shown - 1;
	p->sel = (size_t)s;
	if (rows < 1)
		rows = 1;
	if (p->sel < p->top)
		p->top = p->sel;
	if (p->sel >= p->top + (size_t)rows)
		p->top = p->sel - (size_t)rows + 1;
}

const struct picker_item *picker_selected(const struct picker *p)
{
	return p->n_shown ? &p->items[p->shown[p->sel]] : NULL;
}

int picker_rows(int height)
{
	int r = (height - 3) / 2; /* heading, blank, footer */
	return r < 1 ? 1 : r;
}

/* Draw text cut at `width` columns; between the marks in TH_MATCH. */
static void draw_marked(WINDOW *win, const char *s, int width, unsigned long base)
{
	int col = 0, in_match = 0;
	size_t len = strlen(s), i = 0;
	wattrset(win, (attr_t)base);
	while (i < len) {
		if (s[i] == PICKER_MARK_OPEN[0] || s[i] == PICKER_MARK_CLOSE[0]) {
			in_match = s[i] == PICKER_MARK_OPEN[0];
			wattrset(win, (attr_t)(in_match ? theme_attr(TH_MATCH) : base));
			i++;
			continue;
		}
		uint32_t cp;
		size_t k = utf8_decode(s + i, len - i, &cp);
		int cw = wrap_cp_width(cp);
		if (col + cw > width)
			break;
		if (cp == '\n' || cp == '\t' || cp < 0x20)
			waddch(win, ' ');
		else
			waddnstr(win, s + i, (int)k);
		col += cw;
		i += k;
	}
	wattrset(win, A_NORMAL);
}

void picker_draw(struct picker *p, WINDOW *win, int height, int width)
{
	int rows = picker_rows(height);
	werase(win);
	wattrset(win, (attr_t)theme_attr(TH_S_TITLE));
	mvwaddnstr(win, 0, 1, p->heading, width - 2);
	wattrset(win, (attr_t)theme_attr(TH_S_LABEL));
	wprintw(win, "  (%zu)", p->n_shown);
	if (p->filtering || p->filter.len) {
		wattrset(win, (attr_t)theme_attr(TH_S_LABEL));
		wprintw(win, "  filter: ");
		wattrset(win, (attr_t)theme_attr(TH_TEXT));
		waddnstr(win, p->filter.buf, -1);
	}
	wattrset(win, A_NORMAL);
	picker_move(p, 0, rows);
	if (!p->n_shown) {
		wattrset(win, (attr_t)theme_attr(TH_NOTICE));
		mvwaddstr(win, 2, 3,
			  p->n_items ? "nothing matches the filter" : "nothing here yet");
		wattrset(win, A_NORMAL);
	}
	for (int r = 0; r < rows && p->top + (size_t)r < p->n_shown; r++) {
		size_t idx = p->top + (size_t)r;
		const struct picker_item *it = &p->items[p->shown[idx]];
		int y = 2 + r * 2, sel = idx == p->sel;
		unsigned long a = sel ? theme_attr(TH_SELECTED) : theme_attr(TH_BOLD);
		wmove(win, y, 0);
		if (sel) {
			wattrset(win, (attr_t)a);
			for (int x = 0; x < width; x++)
				waddch(win, ' ');
		}
		wmove(win, y, 1);
		wattrset(win, (attr_t)a);
		waddstr(win, sel ? "\xe2\x96\xb6 " : "  "); /* ▶ */
		draw_marked(win, it->title, width - 4, a);
		wmove(win, y + 1, 3);
		draw_marked(win, it->detail, width - 4, theme_attr(TH_S_LABEL));
	}
	const char *foot =
		p->confirm     ? "delete this session? y = yes, any other key = no"
		: p->filtering ? "type to filter \xc2\xb7 Enter/Esc done"
		: p->deletable
			? "\xe2\x86\x91\xe2\x86\x93 move \xc2\xb7 Enter open \xc2\xb7 d delete \xc2\xb7 / filter \xc2\xb7 Esc close"
			: "\xe2\x86\x91\xe2\x86\x93 move \xc2\xb7 Enter open \xc2\xb7 / filter \xc2\xb7 Esc close";
	wattrset(win, (attr_t)theme_attr(p->confirm ? TH_S_WARN : TH_HINT));
	mvwaddnstr(win, height - 1, 1, foot, -1);
	wattrset(win, A_NORMAL);
}
