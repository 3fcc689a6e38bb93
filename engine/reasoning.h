/* Reasoning: a reply's thinking (<think>...</think>) told apart from its answer while the text streams. */
#ifndef PALAVER_REASONING_H
#define PALAVER_REASONING_H

#include <stddef.h>

#include "strbuf.h"

/*
 * Reasoning models think before they answer, between an open and a close
 * marker (<think> and </think>, or the template's own).  The splitter takes
 * the reply's text in pieces as it streams, split anywhere (a marker may
 * arrive in several pieces), and hands out each part as reasoning or answer
 * as soon as it cannot be the start of a marker; the markers themselves
 * never come out, nor the blank lines right after them.
 *
 * A reply thinks when it opens with the open marker (white space before it
 * allowed), or when the prompt already opened it (the template ends its
 * generation prompt with <think>, as DeepSeek-R1's does).  A marker later in
 * an answer is text: an answer may talk about <think>.
 *
 * Harmony (gpt-oss: the open marker is "<|channel|>analysis<|message|>",
 * the close "<|end|>") writes each message of a reply behind a header,
 * "<|start|>assistant<|channel|>NAME<|message|>" (the first without its
 * <|start|>assistant): the analysis channel is the thinking, any other
 * (final) the answer, and the headers never come out.  There <|end|>
 * ends any message, the answer's too, and a header may follow.
 */

enum reasoning_part { REASONING_ANSWER, REASONING_THOUGHT };

/* Receives the text of one part; len > 0. */
typedef void (*reasoning_fn)(void *ud, enum reasoning_part part, const char *text, size_t len);

struct reasoning_split {
	char open[32], close[32]; /* the markers */
	int state;                /* enum in reasoning.c */
	int skip_blank;           /* drop white space until the next other byte */
	int harmony;              /* messages behind channel headers (see above) */
	struct strbuf held;       /* text that may be the start of a marker */
	reasoning_fn fn;
	void *ud;
};

/* open/close NULL: <think> and </think>.  thinking: the prompt opened the
 * block, so the reply starts inside it. */
void reasoning_init(struct reasoning_split *s, const char *open, const char *close, int thinking,
		    reasoning_fn fn, void *ud);
void reasoning_feed(struct reasoning_split *s, const char *text, size_t len);
/* The end of the reply: held text comes out as what it was part of. */
void reasoning_flush(struct reasoning_split *s);
void reasoning_release(struct reasoning_split *s);
/* 1 while the reply is inside its thinking block. */
int reasoning_thinking(const struct reasoning_split *s);

/*
 * The markers a chat template uses (default <think> and </think>), and
 * whether a rendered prompt ends inside a block it opened: the open marker
 * with no close marker after it.
 */
void reasoning_markers(const char *template_text, size_t len, const char **open,
		       const char **close);
int reasoning_prompt_opens(const char *prompt, size_t len, const char *open, const char *close);

#endif
