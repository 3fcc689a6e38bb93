/* The transcript: messages, their wrapped and styled lines, scrollback. */
#ifndef PALAVER_CHAT_PANE_H
#define PALAVER_CHAT_PANE_H

#include <stddef.h>
#include <stdint.h>
#include "markdown.h"
#include "strbuf.h"

enum chat_role {
	CHAT_USER,
	CHAT_ASSISTANT,
	CHAT_SYSTEM,
	CHAT_NOTICE, /* palaver talking: help, command output; never sent to the model */
	CHAT_ERROR,  /* like a notice, in the error colour */
};

enum chat_flag {
	CHAT_STREAMING = 1, /* the reply is still arriving */
	CHAT_STOPPED = 2,   /* cancelled by the user: the text is partial */
	CHAT_FAILED = 4,    /* the engine reported an error */
	CHAT_THINKING = 8,  /* the reply is still thinking (its answer has not begun) */
};

/* How a reply's thinking shows (ui.thinking, /think, Ctrl-T). */
enum chat_thinking_view {
	CHAT_THINKING_COLLAPSE, /* dimmed while it streams, one line once the answer begins */
	CHAT_THINKING_SHOW,     /* all of it, dimmed */
	CHAT_THINKING_HIDE,     /* only the one line */
};

/* What a visual line shows: a message's header, a piece of a logical line,
 * the stopped mark or the blank line between messages. */
enum chat_vkind {
	VL_HEADER,
	VL_TEXT,
	VL_MARK,
	VL_BLANK,
	VL_THINK_HEAD, /* "thinking... N tokens, T s" over a reply's thinking */
	VL_THOUGHT,    /* a piece of the thinking's text */
};

struct chat_vline {
	enum chat_vkind kind;
	int ll;            /* VL_TEXT: index into the message's logical lines */
	size_t start, end; /* VL_TEXT: bytes of that line's text */
	int indent;        /* columns before the text */
	int cont;          /* VL_TEXT: continues a code line cut at the edge (drawn marked) */
};

/*
 * One message and its rendering cache.  The cache (lines, vlines) is valid
 * for cache_width columns while text.len == cache_len, thinking.len ==
 * cache_think_len, flags == cache_flags and the pane's thinking view is
 * cache_view; anything else re-renders it.
 */
struct chat_msg {
	enum chat_role role;
	struct strbuf text;     /* the raw text (Markdown for the assistant): the answer */
	struct strbuf thinking; /* a reply's thinking (plain text), "" when none */
	int think_tokens;       /* tokens the thinking took */
	double think_ms;        /* how long it took (so far, while CHAT_THINKING) */
	int flags;              /* enum chat_flag */
	int64_t id;             /* the history store's message id, 0 = not stored */
	char *label;            /* a reply's heading, the model that wrote it; NULL: the pane's */
	int cache_width;
	size_t cache_len, cache_think_len;
	int cache_flags, cache_view;
	struct md_line *lines; /* logical lines, n_lines */
	size_t n_lines, alloc_lines;
	struct chat_vline *vlines; /* visual lines, n_vlines */
	size_t n_vlines, alloc_vlines;
};

struct chat_pane {
	struct chat_msg **msgs; /* n_msgs messages, oldest first */
	size_t n_msgs, alloc_msgs;
	size_t first_shown;      /* /clear hides the messages before this */
	struct chat_msg *marked; /* the message a search opened at, or NULL */
	char **mark_words;       /* n_mark_words words highlighted in it */
	size_t n_mark_words;
	int markdown;             /* render assistant text as Markdown */
	int word_wrap;            /* 1: break lines at spaces; 0: at the edge */
	int thinking_view;        /* enum chat_thinking_view */
	char assistant_label[64]; /* shown above replies that have no label of their own */
	int scroll;               /* lines scrolled up from the bottom; 0 = follow */
	int unseen;               /* text arrived below while scrolled up */
	int last_total;           /* total lines at the last layout, to keep the view still */
	int last_width;
	int dirty; /* needs a redraw */
};

void chat_pane_init(struct chat_pane *p);
void chat_pane_release(struct chat_pane *p);
/* Add a message (text copied); returns it. */
struct chat_msg *chat_pane_add(struct chat_pane *p, enum chat_role role, const char *text);
struct chat_msg *chat_pane_addf(struct chat_pane *p, enum chat_role role, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Insert a message before message i (at the end when i >= n_msgs); returns it. */
struct chat_msg *chat_pane_insert(struct chat_pane *p, size_t i, enum chat_role role,
				  const char *text);
void chat_pane_append(struct chat_pane *p, struct chat_msg *m, const char *text, size_t len);
void chat_pane_append_thinking(struct chat_pane *p, struct chat_msg *m, const char *text,
			       size_t len);
/* The line over a reply's thinking ("thinking... 12 tokens, 1.5 s"). */
void chat_msg_think_line(const struct chat_msg *m, char *buf, size_t size);
/* Set (a copy of) or clear the heading of message m. */
void chat_msg_set_label(struct chat_msg *m, const char *label);
/* The index of message m, or n_msgs when it is not in the pane. */
size_t chat_pane_index(const struct chat_pane *p, const struct chat_msg *m);
/* Remove message i (and free it). */
void chat_pane_remove(struct chat_pane *p, size_t i);
/* Highlight the words of a search query (quotes and a trailing '*'
 * dropped) in message m; m NULL clears. */
void chat_pane_mark(struct chat_pane *p, struct chat_msg *m, const char *query);
/* Where the next occurrence of one of the marked words starts in s[0..n)
 * at or after `from` (ASCII case-insensitive), its length in *len; n when
 * none.  Pure, for tests. */
size_t chat_pane_find_mark(const struct chat_pane *p, const char *s, size_t n, size_t from,
			   size_t *len);
/* Remove every message. */
void chat_pane_clear(struct chat_pane *p);
/* The last message with this role, or NULL; *index gets its index. */
struct chat_msg *chat_pane_last(struct chat_pane *p, enum chat_role role, size_t *index);

/* Render message m for a pane `width` columns wide (uses the cache). */
void chat_msg_layout(const struct chat_pane *p, struct chat_msg *m, int width);
/* Total visual lines of the shown messages at this width. */
int chat_pane_total(struct chat_pane *p, int width);

/* Scrolling, in visual lines for a view `height` tall.  Positive = up. */
void chat_pane_scroll(struct chat_pane *p, int lines, int width, int height);
void chat_pane_scroll_top(struct chat_pane *p, int width, int height);
void chat_pane_scroll_bottom(struct chat_pane *p);
/* Scroll so that message i starts at the top of the view. */
void chat_pane_scroll_to(struct chat_pane *p, size_t i, int width, int height);
/* The index of the first visual line shown, given the view height; keeps
 * the view still when lines were added below while scrolled up. */
int chat_pane_view_top(struct chat_pane *p, int width, int height);

struct _win_st;
/* Draw into a curses window of the given size. */
void chat_pane_draw(struct chat_pane *p, struct _win_st *win, int height, int width);

#endif
