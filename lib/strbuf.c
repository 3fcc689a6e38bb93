/* strbuf: growable byte strings; see strbuf.h for the invariants. */
#include "strbuf.h"
#include "untrusted.h"
#include "util.h"
#include "xalloc.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

char strbuf_slopbuf[1];

void strbuf_init(struct strbuf *sb, size_t hint)
{
	sb->alloc = sb->len = 0;
	sb->buf = strbuf_slopbuf;
	if (hint)
		strbuf_grow(sb, hint);
}

void strbuf_release(struct strbuf *sb)
{
	if (sb->alloc)
		free(sb->buf);
	strbuf_init(sb, 0);
}

char *strbuf_detach(struct strbuf *sb, size_t *len)
{
	char *res;
	strbuf_grow(sb, 0);
	res = sb->buf;
	if (len)
		*len = sb->len;
	strbuf_init(sb, 0);
	return res;
}

void strbuf_grow(struct strbuf *sb, size_t extra)
{
	int new_buf = !sb->alloc;
	size_t need;
	if (size_add(sb->len, extra, &need) || size_add(need, 1, &need)) {
		fprintf(stderr, "palaver: strbuf size overflow\n");
		abort();
	}
	if (new_buf)
		sb->buf = NULL;
	ALLOC_GROW(sb->buf, need, sb->alloc);
	if (new_buf)
		sb->buf[0] = '\0';
}

void strbuf_setlen(struct strbuf *sb, size_t len)
{
	if (!sb->alloc) {
		/* the slopbuf must stay "", only len 0 is legal here */
		if (len)
			abort();
		return;
	}
	if (len >= sb->alloc)
		abort();
	sb->len = len;
	sb->buf[len] = '\0';
}

void strbuf_add(struct strbuf *sb, const void *data, size_t len)
{
	if (!len)
		return;
	strbuf_grow(sb, len);
	memmove(sb->buf + sb->len, data, len);
	strbuf_setlen(sb, sb->len + len);
}

void strbuf_addstr(struct strbuf *sb, const char *s)
{
	strbuf_add(sb, s, strlen(s));
}

void strbuf_addch(struct strbuf *sb, int c)
{
	strbuf_grow(sb, 1);
	sb->buf[sb->len] = (char)c;
	strbuf_setlen(sb, sb->len + 1);
}

void strbuf_vaddf(struct strbuf *sb, const char *fmt, va_list ap)
{
	va_list cp;
	int n;
	strbuf_grow(sb, 64);
	va_copy(cp, ap);
	n = vsnprintf(sb->buf + sb->len, sb->alloc - sb->len, fmt, cp);
	va_end(cp);
	if (n < 0)
		return;
	if ((size_t)n >= sb->alloc - sb->len) {
		strbuf_grow(sb, (size_t)n);
		n = vsnprintf(sb->buf + sb->len, sb->alloc - sb->len, fmt, ap);
	}
	strbuf_setlen(sb, sb->len + (size_t)n);
}

void strbuf_addf(struct strbuf *sb, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	strbuf_vaddf(sb, fmt, ap);
	va_end(ap);
}

void strbuf_add_json_escaped(struct strbuf *sb, const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c >= 0x80) {
			/* JSON text is UTF-8: a byte that is not (untrusted input, a
			 * model's partial character) becomes U+FFFD */
			uint32_t cp;
			size_t n = utf8_valid(s + i, len - i, &cp);
			if (!n) {
				strbuf_addstr(sb, "\\ufffd");
			} else {
				strbuf_add(sb, s + i, n);
				i += n - 1;
			}
			continue;
		}
		switch (c) {
		case '"': strbuf_addstr(sb, "\\\""); break;
		case '\\': strbuf_addstr(sb, "\\\\"); break;
		case '\n': strbuf_addstr(sb, "\\n"); break;
		case '\r': strbuf_addstr(sb, "\\r"); break;
		case '\t': strbuf_addstr(sb, "\\t"); break;
		case '\b': strbuf_addstr(sb, "\\b"); break;
		case '\f': strbuf_addstr(sb, "\\f"); break;
		default:
			if (c < 0x20)
				strbuf_addf(sb, "\\u%04x", c);
			else
				strbuf_addch(sb, c);
		}
	}
}

void strbuf_rtrim(struct strbuf *sb)
{
	size_t n = sb->len;
	while (n && isspace((unsigned char)sb->buf[n - 1]))
		n--;
	if (sb->alloc)
		strbuf_setlen(sb, n);
}

void strbuf_trim(struct strbuf *sb)
{
	size_t i = 0;
	strbuf_rtrim(sb);
	while (i < sb->len && isspace((unsigned char)sb->buf[i]))
		i++;
	if (i) {
		memmove(sb->buf, sb->buf + i, sb->len - i);
		strbuf_setlen(sb, sb->len - i);
	}
}

int strbuf_starts_with(const struct strbuf *sb, const char *prefix)
{
	size_t n = strlen(prefix);
	return sb->len >= n && !memcmp(sb->buf, prefix, n);
}

/* A failed read leaves sb as it was; one that was empty holds no memory,
 * so a caller that gives up at once leaks nothing. */
static void read_undo(struct strbuf *sb, size_t oldlen, int was_empty)
{
	int e = errno;
	if (was_empty)
		strbuf_release(sb);
	else
		strbuf_setlen(sb, oldlen);
	errno = e;
}

int strbuf_read_fd(struct strbuf *sb, int fd, size_t max)
{
	size_t oldlen = sb->len;
	int was_empty = !sb->alloc;
	struct stat st;
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && (uint64_t)st.st_size > max) {
		errno = EFBIG;
		return -1;
	}
	for (;;) {
		ssize_t n;
		strbuf_grow(sb, 8192);
		size_t room = sb->alloc - sb->len - 1, left = max - (sb->len - oldlen) + 1;
		n = read(fd, sb->buf + sb->len, room < left ? room : left);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			read_undo(sb, oldlen, was_empty);
			return -1;
		}
		if (n == 0)
			break;
		strbuf_setlen(sb, sb->len + (size_t)n);
		if (sb->len - oldlen > max) {
			errno = EFBIG;
			read_undo(sb, oldlen, was_empty);
			return -1;
		}
	}
	return 0;
}

const char *strbuf_read_failure(int err, size_t max, char *buf, size_t n)
{
	if (err != EFBIG)
		return strerror(err);
	char sz[32];
	snprintf(buf, n, "larger than %s", format_size(sz, sizeof(sz), max));
	return buf;
}

int strbuf_read_file(struct strbuf *sb, const char *path, size_t max)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	int ret, saved;
	if (fd < 0)
		return -1;
	ret = strbuf_read_fd(sb, fd, max);
	saved = errno;
	close(fd);
	errno = saved;
	return ret;
}
