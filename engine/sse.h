/* An incremental parser for server-sent events (text/event-stream), fed bytes as they arrive. */
#ifndef PALAVER_SSE_H
#define PALAVER_SSE_H

#include "strbuf.h"

#include <stddef.h>

/*
 * The WHATWG event-stream rules: lines end at CRLF, LF or CR (a CRLF split
 * between two reads is still one line end); a blank line dispatches the
 * event; "data:" lines are joined with LF; "event:" names the event;
 * a line starting with ':' is a comment (servers send them to keep the
 * connection alive); one space after the colon is dropped; a leading BOM
 * is skipped; an event without data is not dispatched.  One extension:
 * an "error:" line (older llama-servers wrote failures so) is taken as
 * data of an event named "error".  Bytes may arrive
 * in any split, one at a time included: the events are the same.
 *
 * Limits, so that a hostile or broken server cannot make us grow without
 * bound: one line or one event's data longer than SSE_MAX_LINE, or
 * SSE_MAX_JUNK bytes of lines that are neither a known field nor a comment
 * since the last event, are an error.
 */
#define SSE_MAX_LINE (1u << 20)
#define SSE_MAX_JUNK (1u << 20)

/* Called for each event; event is "message" unless an "event:" line named
 * it.  Return 0 to go on, anything else to stop the feed (returned). */
typedef int (*sse_event_fn)(void *ud, const char *event, const char *data, size_t len);

struct sse_parser {
	sse_event_fn fn;
	void *ud;
	struct strbuf line; /* the line being read */
	struct strbuf data; /* the event's data lines, LF-joined */
	char event[64];     /* the event's name, "" = message */
	int last_cr;        /* the previous byte ended a line with CR */
	int started;        /* past the optional BOM */
	size_t junk;        /* bytes of unknown lines since the last event */
	unsigned comments;  /* comment lines seen (keep-alives) */
	unsigned events;    /* events dispatched */
};

void sse_init(struct sse_parser *p, sse_event_fn fn, void *ud);
void sse_free(struct sse_parser *p);
/* Parse n more bytes: 0; the callback's non-zero value when it stopped the
 * feed; -1 with error() when a limit was passed. */
int sse_feed(struct sse_parser *p, const char *buf, size_t n);
/* The stream ended: an event whose blank line never came is dispatched if
 * its lines were complete (a server that closes right after its last
 * "data:" line meant it); a line cut short is dropped.  Returns as sse_feed. */
int sse_finish(struct sse_parser *p);

#endif
