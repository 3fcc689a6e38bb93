/* Status pane formatting: turns a status_info into styled lines for a column or a bar. */
#include "status_pane.h"
#include "theme.h"
#include "wrap.h"
#include "util.h"

#include <curses.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *const eighths[] = {
	"",
	"\xe2\x96\x8f",
	"\xe2\x96\x8e",
	"\xe2\x96\x8d",
	"\xe2\x96\x8c",
	"\xe2\x96\x8b",
	"\xe2\x96\x8a",
	"\xe2\x96\x89",
};
static const char *const full = "\xe2\x96\x88";  /* █ */
static const char *const empty = "\xe2\x96\x91"; /* ░ */
static const char *const sparks[] = {
	"\xe2\x96\x81", "\xe2\x96\x82", "\xe2\x96\x83", "\xe2\x96\x84",
	"\xe2\x96\x85", "\xe2\x96\x86", "\xe2\x96\x87", "\xe2\x96\x88",
};

static size_t put(char *out, size_t cap, size_t len, const char *s)
{
	size_t n = strlen(s);
	if (len + n + 1 > cap)
		return len;
	memcpy(out + len, s, n + 1);
	return len + n;
}

size_t status_progress_bar(double frac, int width, char *out, size_t cap)
{
	size_t len = 0;
	if (cap)
		out[0] = '\0';
	if (width <= 0 || !cap)
		return 0;
	if (!(frac >= 0)) /* also NaN */
		frac = 0;
	if (frac > 1)
		frac = 1;
	int eighth_cells = (int)(frac * width * 8 + 0.5);
	int cells = 0;
	for (; cells < eighth_cells / 8; cells++)
		len = put(out, cap, len, full);
	if (cells < width && eighth_cells % 8) {
		len = put(out, cap, len, eighths[eighth_cells % 8]);
		cells++;
	}
	for (; cells < width; cells++)
		len = put(out, cap, len, empty);
	return len;
}

size_t status_sparkline(const float *v, int n, int width, char *out, size_t cap)
{
	size_t len = 0;
	if (cap)
		out[0] = '\0';
	if (n <= 0 || width <= 0 || !cap)
		return 0;
	int first = n > width ? n - width : 0;
	float max = 0;
	for (int i = first; i < n; i++)
		if (v[i] > max)
			max = v[i];
	for (int i = first; i < n; i++) {
		int k = 0;
		if (max > 0 && v[i] > 0) {
			k = (int)(v[i] / max * 7 + 0.5f);
			if (k > 7)
				k = 7;
		}
		len = put(out, cap, len, sparks[k]);
	}
	return len;
}

const char *status_format_rate(char *buf, size_t cap, double tps)
{
	if (tps < 100)
		snprintf(buf, cap, "%.1f", tps);
	else
		snprintf(buf, cap, "%.0f", tps);
	return buf;
}

const char *status_format_count(char *buf, size_t cap, uint64_t n)
{
	if (n >= 1000000000ull)
		snprintf(buf, cap, "%.1fB", n / 1e9);
	else if (n >= 1000000ull)
		snprintf(buf, cap, "%.1fM", n / 1e6);
	else if (n >= 1000ull)
		snprintf(buf, cap, "%.0fK", n / 1e3);
	else
		snprintf(buf, cap, "%llu", (unsigned long long)n);
	return buf;
}

enum status_style status_ctx_style(int used, int total)
{
	if (total <= 0)
		return SS_VALUE;
	if ((double)used >= 0.9 * total)
		return SS_BAD;
	if ((double)used >= 0.75 * total)
		return SS_WARN;
	return SS_OK;
}

const char *status_state_name(enum status_state s)
{
	switch (s) {
	case STATE_NO_MODEL: return "no model";
	case STATE_LOADING: return "loading";
	case STATE_READY: return "ready";
	case STATE_PREFILL: return "reading prompt";
	case STATE_GENERATING: return "generating";
	case STATE_FAILED: return "failed";
	}
	return "?";
}

static void line_reset(struct status_line *l)
{
	l->text[0] = '\0';
	l->len = 0;
	l->n_spans = 0;
}

/* Append a styled span, cut (at a character boundary) so that the line
 * stays within `width` columns. */
static void span(struct status_line *l, int width, enum status_style style, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void span(struct status_line *l, int width, enum status_style style, const char *fmt, ...)
{
	char tmp[STATUS_LINE_BYTES];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);

	int used = wrap_width(l->text, l->len);
	size_t n = 0, tl = strlen(tmp);
	while (n < tl) {
		uint32_t cp;
		size_t k = utf8_decode(tmp + n, tl - n, &cp);
		int w = wrap_cp_width(cp);
		if (used + w > width || l->len + n + k + 1 > sizeof(l->text))
			break;
		used += w;
		n += k;
	}
	if (!n || l->n_spans == STATUS_LINE_SPANS)
		return;
	memcpy(l->text + l->len, tmp, n);
	l->spans[l->n_spans].start = (unsigned short)l->len;
	l->spans[l->n_spans].len = (unsigned short)n;
	l->spans[l->n_spans].style = (unsigned char)style;
	l->n_spans++;
	l->len += n;
	l->text[l->len] = '\0';
}

static int line_width(const struct status_line *l)
{
	return wrap_width(l->text, l->len);
}

/* "label" left, padded to a value column. */
static void labelled(struct status_line *l, int width, const char *label)
{
	span(l, width, SS_LABEL, "%-8s", label);
}

static struct status_line *next(struct status_line *out, int *n, int max)
{
	if (*n >= max)
		return NULL;
	line_reset(&out[*n]);
	return &out[(*n)++];
}

static enum status_style state_style(enum status_state s)
{
	switch (s) {
	case STATE_FAILED: return SS_BAD;
	case STATE_NO_MODEL: return SS_WARN;
	case STATE_READY: return SS_OK;
	default: return SS_VALUE;
	}
}

int status_format_column(const struct status_info *s, int width, struct status_line *out, int max)
{
	int n = 0;
	struct status_line *l;
	char a[32], b[32];
	char bar[256];
	int bw = width - 8 - 12; /* room for the label and "n/N" */
	if (bw < 4)
		bw = 4;

	if ((l = next(out, &n, max)))
		span(l, width, SS_TITLE, "%s", s->model[0] ? s->model : "no model");
	if (s->model[0] && (s->type[0] || s->file_bytes || s->n_params) &&
	    (l = next(out, &n, max))) {
		if (s->type[0])
			span(l, width, SS_VALUE, "%s ", s->type);
		if (s->file_bytes)
			span(l, width, SS_LABEL, "%s ", format_size(a, sizeof(a), s->file_bytes));
		if (s->n_params)
			span(l, width, SS_LABEL, "%s params",
			     status_format_count(b, sizeof(b), s->n_params));
	}
	if (s->server[0] && (l = next(out, &n, max))) {
		/* the column is narrow: the scheme says least */
		const char *at = strstr(s->server, "://");
		span(l, width, SS_LABEL, "%s", at ? at + 3 : s->server);
	}
	if (s->backend[0] && (l = next(out, &n, max))) {
		span(l, width, SS_VALUE, "%s", s->backend);
		if (s->device[0])
			span(l, width, SS_LABEL, " \xc2\xb7 %s", s->device);
		else if (s->threads)
			span(l, width, SS_LABEL, " \xc2\xb7 %d thread%s", s->threads,
			     s->threads == 1 ? "" : "s");
	}
	next(out, &n, max);

	if ((l = next(out, &n, max))) {
		labelled(l, width, "state");
		span(l, width, state_style(s->state), "%s", status_state_name(s->state));
	}
	if ((s->state == STATE_LOADING || s->state == STATE_PREFILL) && s->total &&
	    (l = next(out, &n, max))) {
		double frac = (double)s->done / (double)s->total;
		status_progress_bar(frac, bw, bar, sizeof(bar));
		span(l, width, SS_BAR, "%s", bar);
		if (s->state == STATE_LOADING)
			span(l, width, SS_LABEL, " %3.0f%%", frac * 100);
		else
			span(l, width, SS_LABEL, " %llu/%llu", (unsigned long long)s->done,
			     (unsigned long long)s->total);
	}
	if (s->state == STATE_GENERATING && (l = next(out, &n, max))) {
		labelled(l, width, "tokens");
		span(l, width, SS_VALUE, "%d", s->gen_tokens);
	}
	next(out, &n, max);

	if (s->have_stats || s->state == STATE_GENERATING) {
		if ((l = next(out, &n, max))) {
			labelled(l, width, "TTFT");
			if (s->ttft_ms >= 1000)
				span(l, width, SS_VALUE, "%.2f s", s->ttft_ms / 1000);
			else
				span(l, width, SS_VALUE, "%.0f ms", s->ttft_ms);
		}
		if ((l = next(out, &n, max))) {
			labelled(l, width, "prompt");
			span(l, width, SS_VALUE, "%s t/s",
			     status_format_rate(a, sizeof(a), s->prompt_tps));
		}
		if ((l = next(out, &n, max))) {
			labelled(l, width, "gen");
			span(l, width, SS_VALUE, "%s t/s",
			     status_format_rate(a, sizeof(a), s->gen_tps));
		}
		/* a server's own figures, marked as such */
		if (s->server_tps > 0 && (l = next(out, &n, max))) {
			labelled(l, width, "server");
			span(l, width, SS_VALUE, "%s t/s",
			     status_format_rate(a, sizeof(a), s->server_tps));
		}
		if (s->have_stats && s->server[0] && (l = next(out, &n, max))) {
			labelled(l, width, "tokens");
			span(l, width, SS_VALUE, "%d", s->gen_tokens);
			span(l, width, SS_LABEL, s->server_usage ? " (server)" : " (chunks)");
		}
		if (s->n_spark && (l = next(out, &n, max))) {
			span(l, width, SS_LABEL, "%8s", "");
			status_sparkline(s->spark, s->n_spark, width - 8, bar, sizeof(bar));
			span(l, width, SS_BAR, "%s", bar);
		}
	}
	if (s->ctx_total && (l = next(out, &n, max))) {
		enum status_style st = status_ctx_style(s->ctx_used, s->ctx_total);
		labelled(l, width, "context");
		status_progress_bar((double)s->ctx_used / s->ctx_total, bw, bar, sizeof(bar));
		span(l, width, st, "%s", bar);
		span(l, width, st == SS_OK ? SS_LABEL : st, " %d/%d", s->ctx_used, s->ctx_total);
	}
	if (s->have_stats && (l = next(out, &n, max))) {
		labelled(l, width, "reused");
		span(l, width, SS_VALUE, "%d tokens", s->reused);
	}
	if (s->rss && (l = next(out, &n, max))) {
		labelled(l, width, "memory");
		span(l, width, SS_VALUE, "%s", format_size(a, sizeof(a), s->rss));
	}
	if (s->title[0] || s->notice[0])
		next(out, &n, max);
	if (s->title[0] && (l = next(out, &n, max))) {
		labelled(l, width, "session");
		span(l, width, SS_VALUE, "%s", s->title);
	}
	if (s->notice[0] && (l = next(out, &n, max)))
		span(l, width, SS_WARN, "%s", s->notice);
	return n;
}

/* Bar items, most important first: each is dropped when it does not fit. */
int status_format_bar(const struct status_info *s, int width, int rows, struct status_line *out)
{
	char a[32], bar[128];
	struct status_line item;
	int row = 0;

	if (rows < 1)
		return 0;
	line_reset(&out[0]);
	if (rows > 1)
		line_reset(&out[1]);

	for (int k = 0; k < 9; k++) {
		line_reset(&item);
		switch (k) {
		case 0:
			span(&item, width, SS_TITLE, "%s", s->model[0] ? s->model : "no model");
			break;
		case 1:
			span(&item, width, state_style(s->state), "%s",
			     status_state_name(s->state));
			if ((s->state == STATE_LOADING || s->state == STATE_PREFILL) && s->total) {
				double frac = (double)s->done / (double)s->total;
				status_progress_bar(frac, 8, bar, sizeof(bar));
				span(&item, width, SS_BAR, " %s", bar);
				if (s->state == STATE_PREFILL)
					span(&item, width, SS_LABEL, " %llu/%llu",
					     (unsigned long long)s->done,
					     (unsigned long long)s->total);
			}
			break;
		case 2:
			if (s->have_stats || s->state == STATE_GENERATING)
				span(&item, width, SS_VALUE, "%s t/s",
				     status_format_rate(a, sizeof(a), s->gen_tps));
			break;
		case 3:
			if (s->ctx_total) {
				enum status_style st = status_ctx_style(s->ctx_used, s->ctx_total);
				span(&item, width, SS_LABEL, "ctx ");
				span(&item, width, st == SS_OK ? SS_VALUE : st, "%d/%d",
				     s->ctx_used, s->ctx_total);
			}
			break;
		case 4:
			if (s->have_stats)
				span(&item, width, SS_LABEL, "TTFT %.0f ms", s->ttft_ms);
			break;
		case 5:
			if (s->notice[0])
				span(&item, width, SS_WARN, "%s", s->notice);
			break;
		case 6:
			if (s->have_stats)
				span(&item, width, SS_LABEL, "prompt %s t/s",
				     status_format_rate(a, sizeof(a), s->prompt_tps));
			break;
		case 7:
			if (s->title[0])
				span(&item, width, SS_LABEL, "%s", s->title);
			break;
		case 8:
			if (s->server[0])
				span(&item, width, SS_LABEL, "%s", s->server);
			break;
		}
		if (!item.len)
			continue;
		/* place on the current row, else the next row, else drop */
		for (; row < rows; row++) {
			struct status_line *l = &out[row];
			int sep = l->len ? 3 : 0;
			if (line_width(l) + sep + line_width(&item) > width)
				continue;
			if (sep)
				span(l, width, SS_LABEL, " \xc2\xb7 ");
			for (int i = 0; i < item.n_spans; i++)
				span(l, width, item.spans[i].style, "%.*s", (int)item.spans[i].len,
				     item.text + item.spans[i].start);
			break;
		}
		if (row >= rows)
			row = rows - 1; /* later, shorter items may still fit */
	}
	return rows;
}

/* ---- drawing ------------------------------------------------------------ */

static enum theme_slot slot_of(int style)
{
	switch (style) {
	case SS_LABEL: return TH_S_LABEL;
	case SS_TITLE: return TH_S_TITLE;
	case SS_OK: return TH_S_OK;
	case SS_WARN: return TH_S_WARN;
	case SS_BAD: return TH_S_BAD;
	case SS_BAR: return TH_S_BAR;
	default: return TH_S_VALUE;
	}
}

static void draw_line(WINDOW *win, int y, int x, const struct status_line *l)
{
	wmove(win, y, x);
	for (int i = 0; i < l->n_spans; i++) {
		wattrset(win, (attr_t)theme_attr(slot_of(l->spans[i].style)));
		waddnstr(win, l->text + l->spans[i].start, l->spans[i].len);
	}
	wattrset(win, A_NORMAL);
}

void status_pane_draw(const struct status_info *s, WINDOW *win, int column, int height, int width)
{
	struct status_line lines[40];
	werase(win);
	if (column) {
		wattrset(win, (attr_t)theme_attr(TH_RULE));
		for (int y = 0; y < height; y++)
			mvwaddstr(win, y, 0, "\xe2\x94\x82"); /* │ */
		wattrset(win, A_NORMAL);
		int n = status_format_column(s, width - 3, lines, height < 40 ? height : 40);
		for (int i = 0; i < n; i++)
			draw_line(win, i, 2, &lines[i]);
	} else {
		int rows = height > 2 ? 2 : height;
		status_format_bar(s, width - 2, rows, lines);
		for (int i = 0; i < rows; i++)
			draw_line(win, i, 1, &lines[i]);
	}
}
