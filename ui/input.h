/* The input line: GNU readline's callback interface drawn into a curses window. */
#ifndef PALAVER_INPUT_H
#define PALAVER_INPUT_H

#include <stddef.h>

/*
 * readline is global state, so there is one input.  The UI loop reads the
 * terminal, decodes keys (keys.c) and hands readline the bytes of ordinary
 * keys with input_feed(); readline never touches the terminal: it reads
 * from our queue, draws nothing (input_draw does) and catches no signals.
 */

/* Called (outside readline) with each accepted line; `pasted` is 1 when
 * the line began with pasted text (so a leading '/' is not a command). */
typedef void (*input_line_fn)(void *ctx, char *line, int pasted);

/* history_path: where the input history is kept (NULL: none).  0 or -1. */
int input_open(const char *history_path, input_line_fn fn, void *ctx);
/* Saves the history, removes the handler. */
void input_close(void);

void input_feed(const char *bytes, size_t n);
/* Insert text at the cursor as typed (a paste, a newline, /edit). */
void input_insert(const char *text, int pasted);
/* Replace the whole line. */
void input_set(const char *text);
const char *input_text(void);
/* The line began with a paste (so a leading '/' is text). */
int input_pasted(void);
int input_empty(void);
/* Accept the line as if Enter were pressed. */
void input_accept(void);
/* Add a line to the history (skips duplicates of the last entry and blanks). */
void input_history_add(const char *line);
/* Redisplay requested since the last input_draw. */
int input_dirty(void);

/* Rows the text needs at this width (>= 1). */
int input_rows(int width);

/* Lay out text with a 2-column prompt: visual rows of at most width
 * columns (lines after the first are indented 2 as well), and the row and
 * column of byte offset `point`.  Returns the number of rows.  Pure. */
int input_layout(const char *text, size_t len, size_t point, int width, int *cur_row, int *cur_col);

struct _win_st;
/* Draw into win (height rows, width columns) and leave the cursor there. */
void input_draw(struct _win_st *win, int height, int width, const char *placeholder);

#endif
