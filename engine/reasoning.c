/* Reasoning: tell a reply's thinking apart from its answer as it streams, markers held back until they are known. */
#include "reasoning.h"

#include <stdio.h>
#include <string.h>

enum { S_START, S_THOUGHT, S_ANSWER };

static int blank(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

void reasoning_init(struct reasoning_split *s, const char *open, const char *close, int thinking,
		    reasoning_fn fn, void *ud)
{
	memset(s, 0, sizeof(*s));
	snprintf(s->open, sizeof(s->open), "%s", open ? open : "<think>");
	snprintf(s->close, sizeof(s->close), "%s", close ? close : "</think>");
	s->harmony = !strncmp(s->open, "<|channel|>", 11);
	s->state = thinking ? S_THOUGHT : S_START;
	s->skip_blank = thinking;
	strbuf_init(&s->held, 0);
	s->fn = fn;
	s->ud = ud;
}

void reasoning_release(struct reasoning_split *s)
{
	strbuf_release(&s->held);
}

int reasoning_thinking(const struct reasoning_split *s)
{
	return s->state == S_THOUGHT;
}

static void out(struct reasoning_split *s, enum reasoning_part part, const char *t, size_t n)
{
	if (n)
		s->fn(s->ud, part, t, n);
}

/* Drop the first n held bytes. */
static void drop(struct reasoning_split *s, size_t n)
{
	memmove(s->held.buf, s->held.buf + n, s->held.len - n);
	strbuf_setlen(&s->held, s->held.len - n);
}

/* The longest suffix of t[0..n) that is a proper prefix of m. */
static size_t partial_suffix(const char *t, size_t n, const char *m)
{
	size_t ml = strlen(m);
	for (size_t k = ml - 1 < n ? ml - 1 : n; k > 0; k--)
		if (!memcmp(t + n - k, m, k))
			return k;
	return 0;
}

/* The longest a harmony header can be before it is taken for text. */
#define HEADER_MAX 256

/*
 * A harmony message header at the start of the held text: 1 when one was
 * read and dropped (the state is the channel's), 0 while it may still be
 * one (wait for more), -1 when the text is no header.
 */
static int header(struct reasoning_split *s)
{
	static const char *const starts[] = { "<|start|>", "<|channel|>" };
	const char *h = s->held.buf;
	size_t n = s->held.len;
	for (int i = 0; i < 2; i++) {
		size_t l = strlen(starts[i]);
		if (memcmp(h, starts[i], n < l ? n : l))
			continue;
		const char *m = memmem(h, n, "<|message|>", 11);
		if (!m)
			return n < HEADER_MAX ? 0 : -1;
		size_t k = (size_t)(m - h);
		int analysis = memmem(h, k, "<|channel|>analysis", 19) != NULL;
		drop(s, k + 11);
		s->state = analysis ? S_THOUGHT : S_ANSWER;
		return 1;
	}
	return -1;
}

/* Hand out all that is decided; keep what may still be a marker. */
static void process(struct reasoning_split *s)
{
	for (;;) {
		if (s->skip_blank) {
			size_t i = 0;
			while (i < s->held.len && blank(s->held.buf[i]))
				i++;
			drop(s, i);
			if (!s->held.len)
				return;
			s->skip_blank = 0;
		}
		const char *h = s->held.buf;
		size_t n = s->held.len;
		if (s->state == S_START && s->harmony) {
			int hd = header(s);
			if (hd == 0)
				return; /* the header is not complete yet */
			if (hd > 0)
				continue;
		}
		if (s->state == S_START) {
			size_t i = 0;
			while (i < n && blank(h[i]))
				i++;
			size_t rest = n - i, ol = strlen(s->open);
			if (rest >= ol && !memcmp(h + i, s->open, ol)) {
				drop(s, i + ol);
				s->state = S_THOUGHT;
				s->skip_blank = 1;
				continue;
			}
			if (rest < ol && !memcmp(h + i, s->open, rest))
				return; /* blanks, or the start of the marker: wait */
			s->state = S_ANSWER;
			continue;
		}
		if (s->state == S_ANSWER && !s->harmony) {
			out(s, REASONING_ANSWER, h, n);
			strbuf_reset(&s->held);
			return;
		}
		/* the thinking, or a harmony message: up to the close marker */
		enum reasoning_part part =
			s->state == S_THOUGHT ? REASONING_THOUGHT : REASONING_ANSWER;
		const char *c = memmem(h, n, s->close, strlen(s->close));
		if (c) {
			size_t k = (size_t)(c - h);
			out(s, part, h, k);
			drop(s, k + strlen(s->close));
			s->state = s->harmony ? S_START : S_ANSWER; /* harmony: the next header */
			s->skip_blank = 1;
			continue;
		}
		size_t keep = partial_suffix(h, n, s->close);
		out(s, part, h, n - keep);
		drop(s, n - keep);
		return;
	}
}

void reasoning_feed(struct reasoning_split *s, const char *text, size_t len)
{
	if (!len)
		return;
	strbuf_add(&s->held, text, len);
	process(s);
}

void reasoning_flush(struct reasoning_split *s)
{
	/* nothing more will come: what waited for a marker is plain text */
	out(s, s->state == S_THOUGHT ? REASONING_THOUGHT : REASONING_ANSWER, s->held.buf,
	    s->held.len);
	strbuf_reset(&s->held);
	if (s->state == S_START)
		s->state = S_ANSWER;
}

void reasoning_markers(const char *text, size_t len, const char **open, const char **close)
{
	*open = "<think>";
	*close = "</think>";
	if (text && memmem(text, len, "<|START_THINKING|>", 18)) {
		*open = "<|START_THINKING|>";
		*close = "<|END_THINKING|>";
	}
	if (text && memmem(text, len, "<|channel|>", 11) && memmem(text, len, "<|start|>", 9)) {
		*open = "<|channel|>analysis<|message|>"; /* harmony */
		*close = "<|end|>";
	}
}

int reasoning_prompt_opens(const char *prompt, size_t len, const char *open, const char *close)
{
	(void)close;
	while (len && blank(prompt[len - 1]))
		len--;
	size_t ol = strlen(open);
	return len >= ol && !memcmp(prompt + len - ol, open, ol);
}
