/* Server-sent events: bytes in any split to whole events, under fixed limits. */
#include "sse.h"

#include "report.h"

#include <string.h>

void sse_init(struct sse_parser *p, sse_event_fn fn, void *ud)
{
	memset(p, 0, sizeof(*p));
	p->fn = fn;
	p->ud = ud;
	strbuf_init(&p->line, 0);
	strbuf_init(&p->data, 0);
}

void sse_free(struct sse_parser *p)
{
	strbuf_release(&p->line);
	strbuf_release(&p->data);
}

static int dispatch(struct sse_parser *p)
{
	int rc = 0;
	p->junk = 0;
	if (p->data.len) {
		/* the data lines were each followed by LF: the last one goes */
		strbuf_setlen(&p->data, p->data.len - 1);
		p->events++;
		rc = p->fn(p->ud, p->event[0] ? p->event : "message", p->data.buf, p->data.len);
	}
	strbuf_reset(&p->data);
	p->event[0] = 0;
	return rc;
}

/* One complete line (without its end). */
static int line(struct sse_parser *p, const char *s, size_t n)
{
	if (!n)
		return dispatch(p);
	if (s[0] == ':') {
		p->comments++;
		p->junk = 0;
		return 0;
	}
	const char *colon = memchr(s, ':', n);
	size_t name_len = colon ? (size_t)(colon - s) : n;
	const char *value = colon ? colon + 1 : s + n;
	size_t value_len = (size_t)(s + n - value);
	if (value_len && value[0] == ' ') {
		value++;
		value_len--;
	}
	if (name_len == 4 && !memcmp(s, "data", 4)) {
		if (p->data.len + value_len + 1 > SSE_MAX_LINE)
			return error("an event's data is longer than %u bytes", SSE_MAX_LINE);
		strbuf_add(&p->data, value, value_len);
		strbuf_addch(&p->data, '\n');
		p->junk = 0;
	} else if (name_len == 5 && !memcmp(s, "event", 5)) {
		size_t k = value_len < sizeof(p->event) - 1 ? value_len : sizeof(p->event) - 1;
		memcpy(p->event, value, k);
		p->event[k] = 0;
		p->junk = 0;
	} else if (name_len == 5 && !memcmp(s, "error", 5)) {
		/* not a standard field: older llama-servers wrote a failure as
		 * "error: {json}"; it becomes an event named "error" */
		if (p->data.len + value_len + 1 > SSE_MAX_LINE)
			return error("an event's data is longer than %u bytes", SSE_MAX_LINE);
		strbuf_add(&p->data, value, value_len);
		strbuf_addch(&p->data, '\n');
		memcpy(p->event, "error", 6);
		p->junk = 0;
	} else if ((name_len == 2 && !memcmp(s, "id", 2)) ||
		   (name_len == 5 && !memcmp(s, "retry", 5))) {
		p->junk = 0; /* valid fields that a one-shot stream has no use for */
	} else {
		/* unknown fields are ignored, as the standard says, but only so
		 * far: a megabyte of them is not an event stream */
		p->junk += n + 1;
		if (p->junk > SSE_MAX_JUNK)
			return error("%u bytes without an event", SSE_MAX_JUNK);
	}
	return 0;
}

int sse_feed(struct sse_parser *p, const char *buf, size_t n)
{
	static const char bom[] = "\xef\xbb\xbf";
	size_t i = 0;

	while (!p->started && i < n) {
		/* the BOM is matched across reads: hold its bytes in line */
		if ((unsigned char)buf[i] == (unsigned char)bom[p->line.len]) {
			strbuf_addch(&p->line, buf[i++]);
			if (p->line.len == 3) {
				strbuf_reset(&p->line);
				p->started = 1;
			}
			continue;
		}
		p->started = 1; /* not a BOM: what was held is text */
	}
	while (i < n) {
		char c = buf[i];
		if (p->last_cr && c == '\n') {
			/* the LF of a CRLF whose CR ended the line already */
			p->last_cr = 0;
			i++;
			continue;
		}
		p->last_cr = 0;
		const char *end = buf + i;
		const char *stop = buf + n;
		while (end < stop && *end != '\n' && *end != '\r')
			end++;
		size_t k = (size_t)(end - (buf + i));
		if (p->line.len + k > SSE_MAX_LINE)
			return error("a line is longer than %u bytes", SSE_MAX_LINE);
		if (end == stop) {
			strbuf_add(&p->line, buf + i, k);
			return 0;
		}
		int rc;
		if (p->line.len) {
			strbuf_add(&p->line, buf + i, k);
			rc = line(p, p->line.buf, p->line.len);
			strbuf_reset(&p->line);
		} else {
			rc = line(p, buf + i, k);
		}
		p->last_cr = *end == '\r';
		i += k + 1;
		if (rc)
			return rc;
	}
	return 0;
}

int sse_finish(struct sse_parser *p)
{
	strbuf_reset(&p->line);
	return dispatch(p);
}
