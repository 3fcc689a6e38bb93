/* Light Markdown: one source line to display text plus attributed runs. */
#ifndef PALAVER_MARKDOWN_H
#define PALAVER_MARKDOWN_H

#include <stddef.h>
#include "strbuf.h"

/* Styles a run can carry; theme.c maps them to curses attributes. */
enum md_style {
	MD_PLAIN,
	MD_BOLD,      /* **bold** */
	MD_CODE,      /* `inline code` */
	MD_CODEBLOCK, /* a line inside a ``` fence */
	MD_FENCE,     /* the fence line itself, shown as a dim rule with the language */
	MD_HEADING,   /* # heading */
	MD_BULLET,    /* the bullet or number of a list item */
	MD_QUOTE,     /* > quoted */
	MD_ITALIC,    /* *italic* or _italic_ */
	MD_LINK,      /* the text of [text](url) or <url> */
	MD_URL,       /* the url shown after a link's text; table borders */
};

struct md_run {
	size_t start, len; /* bytes of md_line.text */
	enum md_style style;
};

/*
 * One rendered line.  Invariants: runs are sorted, do not overlap and
 * cover text exactly (every byte has a style); text holds no control
 * characters (tabs become spaces, others U+FFFD).
 */
struct md_line {
	struct strbuf text;  /* what is drawn, markup removed */
	struct md_run *runs; /* n_runs sorted runs */
	size_t n_runs, alloc_runs;
	int indent; /* hanging indent for wrapped continuation lines */
	int code;   /* 1: a code block line (cut at the edge, no word wrap) */
};

#define MD_TABLE_MAX_COLS 16

/*
 * State carried from line to line of one message.  A table is measured
 * before it is drawn (md_table_begin), its rows padded to col_width; a line
 * that is no table row ends it.
 */
struct md_state {
	int in_fence;                     /* inside a ``` block */
	int table_cols;                   /* columns of the table being drawn, 0 = none */
	int col_width[MD_TABLE_MAX_COLS]; /* their widths in columns */
};

void md_line_init(struct md_line *l);
void md_line_release(struct md_line *l);
/* Render the source line [src, src + n) (no '\n') into l (reset first).
 * `markdown` = 0 gives the text as is, sanitized, one plain run. */
void md_render_line(struct md_state *st, const char *src, size_t n, int markdown,
		    struct md_line *l);
/*
 * Call before rendering a line outside a fence and a table: when the text
 * from that line on ([src, src + n), lines separated by '\n') starts a table
 * (a row of |-separated cells, then a delimiter row such as |---|:--|),
 * measure all its rows into st and return 1; the following md_render_line()
 * calls then draw them aligned.  0 otherwise.
 */
int md_table_begin(struct md_state *st, const char *src, size_t n);
/* The style of byte `at` of l's text. */
enum md_style md_style_at(const struct md_line *l, size_t at);

#endif
