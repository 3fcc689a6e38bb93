/* Light Markdown rendering of one line at a time into text and styled runs. */
#include "markdown.h"
#include "wrap.h"
#include "xalloc.h"

#include <stdlib.h>
#include <string.h>

void md_line_init(struct md_line *l)
{
	memset(l, 0, sizeof(*l));
	strbuf_init(&l->text, 0);
}

void md_line_release(struct md_line *l)
{
	strbuf_release(&l->text);
	free(l->runs);
	memset(l, 0, sizeof(*l));
	strbuf_init(&l->text, 0);
}

/* Append [s, s+n) with style, sanitizing control characters and merging
 * with the previous run when the style is the same. */
static void emit(struct md_line *l, const char *s, size_t n, enum md_style style)
{
	size_t before = l->text.len;
	size_t i = 0;
	while (i < n) {
		uint32_t cp;
		size_t len = utf8_decode(s + i, n - i, &cp);
		if (cp == '\t')
			strbuf_add(&l->text, "    ", 4);
		else if (cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp < 0xa0) ||
			 (cp == 0xfffd && len == 1))
			strbuf_addstr(&l->text, "\xef\xbf\xbd"); /* U+FFFD */
		else
			strbuf_add(&l->text, s + i, len);
		i += len;
	}
	size_t added = l->text.len - before;
	if (!added)
		return;
	if (l->n_runs && l->runs[l->n_runs - 1].style == style) {
		l->runs[l->n_runs - 1].len += added;
		return;
	}
	ALLOC_GROW(l->runs, l->n_runs + 1, l->alloc_runs);
	l->runs[l->n_runs].start = before;
	l->runs[l->n_runs].len = added;
	l->runs[l->n_runs].style = style;
	l->n_runs++;
}

static int is_fence(const char *s, size_t n, size_t *lang)
{
	size_t i = 0;
	while (i < n && i < 3 && s[i] == ' ')
		i++;
	if (n - i >= 3 && (!strncmp(s + i, "```", 3) || !strncmp(s + i, "~~~", 3))) {
		i += 3;
		while (i < n && (s[i] == '`' || s[i] == '~'))
			i++;
		while (i < n && s[i] == ' ')
			i++;
		*lang = i;
		return 1;
	}
	return 0;
}

/* Find the closing delimiter for an inline span opened at s[i]; returns its
 * index or 0 when there is none (so the opener is literal text). */
static size_t find_close(const char *s, size_t n, size_t from, const char *delim)
{
	size_t dl = strlen(delim);
	for (size_t j = from; j + dl <= n; j++)
		if (!memcmp(s + j, delim, dl))
			return j > from ? j : 0;
	return 0;
}

/* Inline markup: `code` and **bold** (also __bold__). */
static void render_inline(struct md_line *l, const char *s, size_t n, enum md_style base)
{
	size_t i = 0, lit = 0;
	while (i < n) {
		size_t close;
		if (s[i] == '`' && (close = find_close(s, n, i + 1, "`"))) {
			emit(l, s + lit, i - lit, base);
			emit(l, s + i + 1, close - i - 1, MD_CODE);
			i = lit = close + 1;
			continue;
		}
		if (i + 1 < n && (s[i] == '*' || s[i] == '_') && s[i + 1] == s[i] && i + 2 < n &&
		    s[i + 2] != ' ') {
			char delim[3] = { s[i], s[i], 0 };
			if ((close = find_close(s, n, i + 2, delim)) && s[close - 1] != ' ') {
				emit(l, s + lit, i - lit, base);
				render_inline(l, s + i + 2, close - i - 2,
					      base == MD_HEADING ? MD_HEADING : MD_BOLD);
				i = lit = close + 2;
				continue;
			}
		}
		i++;
	}
	emit(l, s + lit, n - lit, base);
}

void md_render_line(struct md_state *st, const char *s, size_t n, int markdown, struct md_line *l)
{
	size_t lang, i = 0;

	strbuf_reset(&l->text);
	l->n_runs = 0;
	l->indent = 0;
	l->code = 0;
	if (!markdown) {
		emit(l, s, n, MD_PLAIN);
		return;
	}
	if (is_fence(s, n, &lang)) {
		/* the fence becomes a rule: "── lang" opening, "──" closing */
		st->in_fence = !st->in_fence;
		emit(l, "\xe2\x94\x80\xe2\x94\x80", 6, MD_FENCE);
		if (st->in_fence && lang < n) {
			emit(l, " ", 1, MD_FENCE);
			emit(l, s + lang, n - lang, MD_FENCE);
		}
		return;
	}
	if (st->in_fence) {
		l->code = 1;
		emit(l, s, n, MD_CODEBLOCK);
		return;
	}
	/* leading indentation is kept (nested lists) */
	while (i < n && s[i] == ' ')
		i++;
	if (i < n && s[i] == '#') {
		size_t h = i;
		while (h < n && s[h] == '#')
			h++;
		if (h - i <= 6 && (h == n || s[h] == ' ')) {
			while (h < n && s[h] == ' ')
				h++;
			render_inline(l, s + h, n - h, MD_HEADING);
			return;
		}
	}
	if (i < n && s[i] == '>') {
		emit(l, "\xe2\x94\x82 ", 4, MD_QUOTE); /* "│ " */
		size_t q = i + 1;
		if (q < n && s[q] == ' ')
			q++;
		l->indent = 2;
		render_inline(l, s + q, n - q, MD_QUOTE);
		return;
	}
	if (i + 1 < n && (s[i] == '-' || s[i] == '*' || s[i] == '+') && s[i + 1] == ' ') {
		emit(l, s, i, MD_PLAIN);
		emit(l, "\xe2\x80\xa2 ", 4, MD_BULLET); /* "• " */
		l->indent = (int)i + 2;
		render_inline(l, s + i + 2, n - i - 2, MD_PLAIN);
		return;
	}
	size_t d = i;
	while (d < n && d - i < 9 && s[d] >= '0' && s[d] <= '9')
		d++;
	if (d > i && d + 1 < n && (s[d] == '.' || s[d] == ')') && s[d + 1] == ' ') {
		emit(l, s, i, MD_PLAIN);
		emit(l, s + i, d + 2 - i, MD_BULLET);
		l->indent = (int)(d + 2);
		render_inline(l, s + d + 2, n - d - 2, MD_PLAIN);
		return;
	}
	render_inline(l, s, n, MD_PLAIN);
}

enum md_style md_style_at(const struct md_line *l, size_t at)
{
	/* binary search over the sorted runs */
	size_t lo = 0, hi = l->n_runs;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		const struct md_run *r = &l->runs[mid];
		if (at < r->start)
			hi = mid;
		else if (at >= r->start + r->len)
			lo = mid + 1;
		else
			return r->style;
	}
	return MD_PLAIN;
}
