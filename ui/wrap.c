/* UTF-8 decoding, display width and word wrap by terminal columns. */
#include "wrap.h"
#include "xalloc.h"

#include <wchar.h>

size_t utf8_decode(const char *str, size_t n, uint32_t *cp)
{
	const unsigned char *s = (const unsigned char *)str;
	uint32_t c = s[0], min;
	size_t len;

	if (c < 0x80) {
		*cp = c;
		return 1;
	}
	if (c >= 0xc2 && c <= 0xdf) {
		len = 2, c &= 0x1f, min = 0x80;
	} else if (c >= 0xe0 && c <= 0xef) {
		len = 3, c &= 0x0f, min = 0x800;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4, c &= 0x07, min = 0x10000;
	} else {
		*cp = 0xfffd;
		return 1;
	}
	if (n < len) {
		*cp = 0xfffd;
		return 1;
	}
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80) {
			*cp = 0xfffd;
			return 1;
		}
		c = (c << 6) | (s[i] & 0x3f);
	}
	/* overlong forms, surrogates and values past U+10FFFF are invalid */
	if (c < min || (c >= 0xd800 && c <= 0xdfff) || c > 0x10ffff) {
		*cp = 0xfffd;
		return 1;
	}
	*cp = c;
	return len;
}

size_t utf8_prev(const char *s, size_t at)
{
	size_t i = at;
	/* step back over at most 3 continuation bytes, then check the decode
	 * really ends at `at` (else the byte before is a lone byte) */
	while (i > 0 && at - i < 4) {
		i--;
		if (((unsigned char)s[i] & 0xc0) != 0x80)
			break;
	}
	uint32_t cp;
	if (i + utf8_decode(s + i, at - i, &cp) == at)
		return at - i;
	return 1;
}

int wrap_cp_width(uint32_t cp)
{
	if (cp < 0x20 || cp == 0x7f)
		return 1;
	if (cp < 0x7f)
		return 1;
	int w = wcwidth((wchar_t)cp);
	if (w < 0)
		return 1; /* unprintable: drawn as one replacement cell */
	return w;
}

int wrap_width(const char *s, size_t n)
{
	int w = 0;
	size_t i = 0;
	while (i < n) {
		uint32_t cp;
		i += utf8_decode(s + i, n - i, &cp);
		w += wrap_cp_width(cp);
	}
	return w;
}

static void push(struct wrap_span **out, size_t *n_out, size_t *alloc, size_t start, size_t end,
		 int width)
{
	ALLOC_GROW(*out, *n_out + 1, *alloc);
	(*out)[*n_out].start = start;
	(*out)[*n_out].end = end;
	(*out)[*n_out].width = width;
	(*n_out)++;
}

size_t wrap_line(const char *s, size_t n, int width, int indent, int word, struct wrap_span **out,
		 size_t *n_out, size_t *alloc)
{
	size_t first = *n_out;
	size_t start = 0;
	int lim = width < 1 ? 1 : width;

	if (n == 0) {
		push(out, n_out, alloc, 0, 0, 0);
		return 1;
	}
	while (start < n) {
		/* Walk characters until the line is full, remembering the last
		 * place where a space ends (a break opportunity). */
		size_t i = start, brk = 0, brk_resume = 0;
		int w = 0, brk_w = 0;
		int have_brk = 0;
		while (i < n) {
			uint32_t cp;
			size_t len = utf8_decode(s + i, n - i, &cp);
			int cw = wrap_cp_width(cp);
			if (w + cw > lim && w > 0)
				break;
			if (cp == ' ' && word && i > start) {
				/* break before this space; the next line starts after
				 * the run of spaces */
				size_t j = i;
				while (j < n && s[j] == ' ')
					j++;
				brk = i, brk_w = w, brk_resume = j, have_brk = 1;
			}
			w += cw;
			i += len;
			if (w > lim) /* a wide char on a 1-column line */
				break;
		}
		if (i >= n) {
			push(out, n_out, alloc, start, n, w);
			break;
		}
		/* i is the first character that does not fit.  Spaces there are a
		 * natural break. */
		if (word && s[i] == ' ') {
			size_t j = i, k = i;
			while (j < n && s[j] == ' ')
				j++;
			while (k > start && s[k - 1] == ' ')
				k--; /* spaces are 1 column each */
			push(out, n_out, alloc, start, k, w - (int)(i - k));
			start = j;
		} else if (have_brk) {
			push(out, n_out, alloc, start, brk, brk_w);
			start = brk_resume;
		} else {
			/* cut inside a word; keep following combining marks */
			push(out, n_out, alloc, start, i, w);
			start = i;
		}
		if (*n_out - first == 1)
			lim = width - indent < 1 ? 1 : width - indent;
	}
	return *n_out - first;
}
