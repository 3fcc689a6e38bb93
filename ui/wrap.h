/* UTF-8 decoding, display width (wcwidth) and word wrap by display columns. */
#ifndef PALAVER_WRAP_H
#define PALAVER_WRAP_H

#include <stddef.h>
#include <stdint.h>

/* Decode the character at s (n > 0 bytes available).  Returns the bytes it
 * takes (1..4); an invalid or truncated sequence takes 1 byte and decodes
 * to U+FFFD, so a loop over any byte string always advances. */
size_t utf8_decode(const char *s, size_t n, uint32_t *cp);
/* Bytes of the character that ends just before s + at (at > 0). */
size_t utf8_prev(const char *s, size_t at);

/* Columns one code point takes on a terminal: 0 for combining marks and
 * zero-width joiners, 2 for CJK and most emoji, 1 otherwise.  Control
 * characters count 1 (they are drawn as a replacement).  Needs a UTF-8
 * LC_CTYPE for anything beyond ASCII. */
int wrap_cp_width(uint32_t cp);
/* Columns of the string [s, s + n). */
int wrap_width(const char *s, size_t n);

/* One visual line: bytes [start, end) of the source, `width` columns. */
struct wrap_span {
	size_t start, end;
	int width;
};

/*
 * Break [s, s + n) (one logical line: no '\n') into visual lines of at most
 * `width` columns, the lines after the first `indent` columns narrower (a
 * hanging indent for list items).  Breaks after spaces when a line has
 * one; a word longer than the line is cut at a character boundary; a wide
 * character never straddles the edge; combining marks stay with their base.
 * Spaces at a break are dropped.  An empty line gives one empty span.
 * Appends to *out (capacity *alloc, grown with ALLOC_GROW) and returns the
 * number of spans appended.  `word` = 0 cuts at the edge instead (code).
 */
size_t wrap_line(const char *s, size_t n, int width, int indent, int word, struct wrap_span **out,
		 size_t *n_out, size_t *alloc);

#endif
