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

static int is_word_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (unsigned char)c >= 0x80;
}

/* [text](url): the index of ')' and the parts, or 0. */
static size_t find_link(const char *s, size_t n, size_t i, size_t *text_end, size_t *url)
{
	size_t close = find_close(s, n, i + 1, "]");
	if (!close || close + 1 >= n || s[close + 1] != '(')
		return 0;
	size_t end = find_close(s, n, close + 2, ")");
	if (!end || memchr(s + close + 2, ' ', end - close - 2))
		return 0;
	*text_end = close;
	*url = close + 2;
	return end;
}

static void render_inline(struct md_line *l, const char *s, size_t n, enum md_style base);

/* One inline span at s[i], if any starts there: emitted (after the literal
 * text since lit) and its end returned; 0 when s[i] starts none. */
static size_t render_span(struct md_line *l, const char *s, size_t n, size_t i, size_t lit,
			  enum md_style base)
{
	size_t close, text_end, url;
	char c = s[i];
	if (c == '`' && (close = find_close(s, n, i + 1, "`"))) {
		emit(l, s + lit, i - lit, base);
		emit(l, s + i + 1, close - i - 1, MD_CODE);
		return close + 1;
	}
	if ((c == '*' || c == '_') && i + 2 < n && s[i + 1] == c && s[i + 2] != ' ') {
		char delim[3] = { c, c, 0 };
		if ((close = find_close(s, n, i + 2, delim)) && s[close - 1] != ' ') {
			emit(l, s + lit, i - lit, base);
			render_inline(l, s + i + 2, close - i - 2,
				      base == MD_HEADING ? MD_HEADING : MD_BOLD);
			return close + 2;
		}
	}
	/* *italic*, and _italic_ only between words (snake_case stays) */
	if ((c == '*' || c == '_') && i + 1 < n && s[i + 1] != ' ' && s[i + 1] != c &&
	    (c == '*' || i == 0 || !is_word_char(s[i - 1]))) {
		char delim[2] = { c, 0 };
		close = find_close(s, n, i + 1, delim);
		if (close && s[close - 1] != ' ' &&
		    (c == '*' || close + 1 >= n || !is_word_char(s[close + 1]))) {
			emit(l, s + lit, i - lit, base);
			render_inline(l, s + i + 1, close - i - 1,
				      base == MD_PLAIN ? MD_ITALIC : base);
			return close + 1;
		}
	}
	if (c == '[' && (close = find_link(s, n, i, &text_end, &url))) {
		emit(l, s + lit, i - lit, base);
		emit(l, s + i + 1, text_end - i - 1, MD_LINK);
		emit(l, " (", 2, MD_URL);
		emit(l, s + url, close - url, MD_URL);
		emit(l, ")", 1, MD_URL);
		return close + 1;
	}
	if (c == '<' && i + 8 < n &&
	    (!strncmp(s + i + 1, "http://", 7) || !strncmp(s + i + 1, "https://", 8)) &&
	    (close = find_close(s, n, i + 1, ">")) && !memchr(s + i, ' ', close - i)) {
		emit(l, s + lit, i - lit, base);
		emit(l, s + i + 1, close - i - 1, MD_LINK);
		return close + 1;
	}
	return 0;
}

/* Inline markup: `code`, **bold** (__bold__), *italic* (_italic_), links. */
static void render_inline(struct md_line *l, const char *s, size_t n, enum md_style base)
{
	size_t i = 0, lit = 0;
	while (i < n) {
		size_t end = render_span(l, s, n, i, lit, base);
		if (end) {
			i = lit = end;
			continue;
		}
		i++;
	}
	emit(l, s + lit, n - lit, base);
}

/* ---- tables ------------------------------------------------------------- */

static int table_row(const char *s, size_t n)
{
	while (n && (*s == ' ')) {
		s++;
		n--;
	}
	return n >= 2 && s[0] == '|' && memchr(s + 1, '|', n - 1);
}

/* The cells of a row: [start, end) pairs between the pipes, trimmed. */
static int table_cells(const char *s, size_t n, size_t *start, size_t *end)
{
	size_t i = 0;
	int k = 0;
	while (i < n && s[i] == ' ')
		i++;
	if (i < n && s[i] == '|')
		i++;
	while (i < n && k < MD_TABLE_MAX_COLS) {
		size_t a = i, b;
		while (i < n && s[i] != '|')
			i++;
		b = i;
		if (i >= n && b == a)
			break; /* after the closing pipe */
		while (a < b && s[a] == ' ')
			a++;
		while (b > a && s[b - 1] == ' ')
			b--;
		start[k] = a;
		end[k] = b;
		k++;
		if (i < n)
			i++;
		if (i >= n)
			break;
	}
	return k;
}

/* "|---|:--:|" */
static int is_delimiter_row(const char *s, size_t n)
{
	int dash = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '-')
			dash = 1;
		else if (s[i] != '|' && s[i] != ':' && s[i] != ' ')
			return 0;
	}
	return dash;
}

static void table_measure(struct md_state *st, const char *s, size_t n)
{
	size_t a[MD_TABLE_MAX_COLS], b[MD_TABLE_MAX_COLS];
	struct md_line cell;
	int k = table_cells(s, n, a, b);
	if (is_delimiter_row(s, n)) {
		if (k > st->table_cols)
			st->table_cols = k;
		return;
	}
	md_line_init(&cell);
	for (int i = 0; i < k; i++) {
		strbuf_reset(&cell.text);
		cell.n_runs = 0;
		render_inline(&cell, s + a[i], b[i] - a[i], MD_PLAIN);
		int w = wrap_width(cell.text.buf, cell.text.len);
		if (w > st->col_width[i])
			st->col_width[i] = w;
	}
	if (k > st->table_cols)
		st->table_cols = k;
	md_line_release(&cell);
}

int md_table_begin(struct md_state *st, const char *s, size_t n)
{
	const char *nl = memchr(s, '\n', n);
	size_t first = nl ? (size_t)(nl - s) : n;
	if (!nl || !table_row(s, first))
		return 0;
	const char *second = nl + 1;
	const char *nl2 = memchr(second, '\n', n - first - 1);
	size_t len2 = nl2 ? (size_t)(nl2 - second) : n - first - 1;
	if (!table_row(second, len2) || !is_delimiter_row(second, len2))
		return 0;
	memset(st->col_width, 0, sizeof(st->col_width));
	st->table_cols = 0;
	for (size_t pos = 0; pos < n;) {
		const char *e = memchr(s + pos, '\n', n - pos);
		size_t end = e ? (size_t)(e - s) : n;
		if (!table_row(s + pos, end - pos))
			break;
		table_measure(st, s + pos, end - pos);
		pos = end + 1;
	}
	return 1;
}

/* A measured table row: cells padded to their columns, "│" between them;
 * the delimiter row becomes a rule. */
static void render_table_row(struct md_state *st, const char *s, size_t n, struct md_line *l)
{
	size_t a[MD_TABLE_MAX_COLS], b[MD_TABLE_MAX_COLS];
	int k = table_cells(s, n, a, b);
	int delim = is_delimiter_row(s, n);
	for (int i = 0; i < st->table_cols; i++) {
		if (i)
			emit(l, delim ? "\xe2\x94\x80\xe2\x94\xbc\xe2\x94\x80" : " \xe2\x94\x82 ",
			     delim ? 9 : 5, MD_URL); /* "─┼─" or " │ " */
		if (delim) {
			for (int c = 0; c < st->col_width[i]; c++)
				emit(l, "\xe2\x94\x80", 3, MD_URL);
			continue;
		}
		size_t before = l->text.len;
		if (i < k)
			render_inline(l, s + a[i], b[i] - a[i], MD_PLAIN);
		int w = wrap_width(l->text.buf + before, l->text.len - before);
		for (; w < st->col_width[i]; w++)
			emit(l, " ", 1, MD_PLAIN);
	}
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
	if (st->table_cols && table_row(s, n)) {
		render_table_row(st, s, n, l);
		return;
	}
	st->table_cols = 0; /* any other line ends a table */
	memset(st->col_width, 0, sizeof(st->col_width));
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
