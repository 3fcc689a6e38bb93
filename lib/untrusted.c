/* The one sanitizing printer for untrusted text on a terminal, and a strict UTF-8 check. */
#include "untrusted.h"

#include <unistd.h>

size_t utf8_valid(const char *s, size_t n, uint32_t *cp)
{
	const unsigned char *u = (const unsigned char *)s;
	unsigned char c = u[0];
	size_t len;
	uint32_t v, min;
	if (c < 0x80) {
		*cp = c;
		return 1;
	}
	if (c >= 0xc2 && c <= 0xdf) {
		len = 2, v = c & 0x1f, min = 0x80;
	} else if (c >= 0xe0 && c <= 0xef) {
		len = 3, v = c & 0x0f, min = 0x800;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4, v = c & 0x07, min = 0x10000;
	} else {
		return 0; /* continuation byte, C0/C1 overlong lead, or past U+10FFFF */
	}
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((u[i] & 0xc0) != 0x80)
			return 0;
		v = v << 6 | (u[i] & 0x3f);
	}
	if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
		return 0;
	*cp = v;
	return len;
}

void untrusted_add(struct strbuf *sb, const char *s, size_t n, unsigned flags)
{
	size_t i = 0;
	while (i < n) {
		uint32_t cp = 0;
		size_t len = utf8_valid(s + i, n - i, &cp);
		if (!len) {
			strbuf_addstr(sb, "\xef\xbf\xbd"); /* U+FFFD */
			i++;
			continue;
		}
		if ((cp == '\n' || cp == '\t') && (flags & UNTRUSTED_MULTILINE)) {
			strbuf_addch(sb, (char)cp);
		} else if (cp < 0x20) {
			strbuf_addch(sb, '^');
			strbuf_addch(sb, (char)(cp + '@'));
		} else if (cp == 0x7f) {
			strbuf_addstr(sb, "^?");
		} else if (cp >= 0x80 && cp < 0xa0) {
			strbuf_addstr(sb, "\xef\xbf\xbd");
		} else {
			strbuf_add(sb, s + i, len);
		}
		i += len;
	}
}

int untrusted_tty(FILE *f)
{
	return isatty(fileno(f));
}

void untrusted_print(FILE *f, const char *s, size_t n, unsigned flags)
{
	if (!untrusted_tty(f)) {
		fwrite(s, 1, n, f);
		return;
	}
	struct strbuf sb = STRBUF_INIT;
	untrusted_add(&sb, s, n, flags);
	fwrite(sb.buf, 1, sb.len, f);
	strbuf_release(&sb);
}

void untrusted_print_quoted(FILE *f, const char *s, size_t n)
{
	putc('\'', f);
	for (size_t i = 0; i < n;) {
		unsigned char c = (unsigned char)s[i];
		uint32_t cp = 0;
		size_t len = utf8_valid(s + i, n - i, &cp);
		if (c == '\n')
			fputs("\\n", f);
		else if (c == '\t')
			fputs("\\t", f);
		else if (c == '\r')
			fputs("\\r", f);
		else if (!len || cp < 0x20 || (cp >= 0x7f && cp < 0xa0)) {
			for (size_t k = 0; k < (len ? len : 1); k++)
				fprintf(f, "\\x%02x", (unsigned char)s[i + k]);
		} else {
			fwrite(s + i, 1, len, f);
			i += len;
			continue;
		}
		i += len ? len : 1;
	}
	putc('\'', f);
}
