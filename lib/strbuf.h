/* strbuf: a growable byte string (after git's strbuf). */
#ifndef PALAVER_STRBUF_H
#define PALAVER_STRBUF_H

#include <stdarg.h>
#include <stddef.h>

/*
 * Invariants:
 *  - buf is never NULL: an empty strbuf points at a shared "" (alloc == 0);
 *  - buf[len] == '\0' always, so buf can be passed where a C string is wanted;
 *  - len < alloc whenever alloc != 0;
 *  - the content may hold NUL bytes; len is the truth.
 */
struct strbuf {
	size_t alloc; /* bytes allocated, 0 while buf is the shared slopbuf */
	size_t len;   /* bytes used, not counting the terminating NUL */
	char *buf;    /* the bytes, NUL-terminated */
};

extern char strbuf_slopbuf[];
#define STRBUF_INIT                                                                                \
	{                                                                                          \
		0, 0, strbuf_slopbuf                                                               \
	}

void strbuf_init(struct strbuf *sb, size_t hint);
void strbuf_release(struct strbuf *sb);
/* Hand the buffer to the caller (always malloc'd) and reset sb. */
char *strbuf_detach(struct strbuf *sb, size_t *len);
void strbuf_grow(struct strbuf *sb, size_t extra);
void strbuf_setlen(struct strbuf *sb, size_t len);
static inline void strbuf_reset(struct strbuf *sb)
{
	strbuf_setlen(sb, 0);
}

void strbuf_add(struct strbuf *sb, const void *data, size_t len);
void strbuf_addstr(struct strbuf *sb, const char *s);
void strbuf_addch(struct strbuf *sb, int c);
void strbuf_addf(struct strbuf *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void strbuf_vaddf(struct strbuf *sb, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));
/* Append s with JSON string escaping (no surrounding quotes).  Bytes that
 * are not UTF-8 become \ufffd: the result is always valid JSON text. */
void strbuf_add_json_escaped(struct strbuf *sb, const char *s, size_t len);

void strbuf_trim(struct strbuf *sb);
void strbuf_rtrim(struct strbuf *sb);
int strbuf_starts_with(const struct strbuf *sb, const char *prefix);

/*
 * Append a whole file (or stream) to sb, reading at most max bytes: one
 * byte more and it is -1 with errno EFBIG, sb unchanged (a regular file is
 * refused by its size before reading).  -1 with errno on other failures.
 * Every input palaver reads whole has its limit here, so that /dev/zero or
 * an endless pipe ends in a clear error, not in all of memory:
 */
#define READ_MAX_TEMPLATE ((size_t)1 << 20)       /* --chat-template FILE: 1 MiB */
#define READ_MAX_CONFIG ((size_t)1 << 20)         /* a config.yaml (app/config.c): 1 MiB */
#define READ_MAX_STDIN ((size_t)64 << 20)         /* batch mode's standard input: 64 MiB */
#define READ_MAX_TEXT ((size_t)256 << 20)         /* tokenize, perplexity, bench -f: 256 MiB */
#define READ_MAX_IMPORT ((size_t)256 << 20)       /* sessions import: 256 MiB */
#define READ_MAX_INPUT_HISTORY ((size_t)16 << 20) /* the chat's input history: 16 MiB */
int strbuf_read_file(struct strbuf *sb, const char *path, size_t max);
int strbuf_read_fd(struct strbuf *sb, int fd, size_t max);
/* Why a read failed, for "cannot read 'X': %s": "larger than 1 MiB" for
 * EFBIG (max is the limit that was passed), else strerror(err).  buf holds
 * the text (64 bytes suffice). */
const char *strbuf_read_failure(int err, size_t max, char *buf, size_t n);

#endif
