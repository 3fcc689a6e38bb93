/* Unicode helpers for the tokenizer: code point classes, lenient and strict UTF-8, GPT-2 byte mapping. */
#ifndef PALAVER_UNICODE_H
#define PALAVER_UNICODE_H

#include <stddef.h>
#include <stdint.h>

/*
 * General-category classes, generated from the Unicode Character Database
 * by tools/gen_unicode.py (engine/unicode_data.h).  Unassigned code points
 * (Cn) and values past U+10FFFF are UNICODE_UNASSIGNED.
 */
enum unicode_class {
	UNICODE_UNASSIGNED = 0,
	UNICODE_LETTER = 1,    /* Lu Ll Lt Lm Lo */
	UNICODE_NUMBER = 2,    /* Nd Nl No */
	UNICODE_PUNCT = 3,     /* Pc Pd Ps Pe Pi Pf Po */
	UNICODE_MARK = 4,      /* Mn Mc Me */
	UNICODE_SYMBOL = 5,    /* Sm Sc Sk So */
	UNICODE_SEPARATOR = 6, /* Zs Zl Zp */
	UNICODE_OTHER = 7,     /* Cc Cf Co Cs */
};
#define UNICODE_CLASS_MASK 7u
#define UNICODE_WHITESPACE 8u /* the White_Space property (PropList.txt) */

#define UNICODE_REPLACEMENT 0xFFFDu
#define UNICODE_MAX 0x10FFFFu

/* class | UNICODE_WHITESPACE for cp; 0 past U+10FFFF. */
unsigned unicode_flags(uint32_t cp);
static inline enum unicode_class unicode_class_of(uint32_t cp)
{
	return (enum unicode_class)(unicode_flags(cp) & UNICODE_CLASS_MASK);
}
static inline int unicode_is_whitespace(uint32_t cp)
{
	return (unicode_flags(cp) & UNICODE_WHITESPACE) != 0;
}
const char *unicode_data_version(void); /* "15.0.0" */

/* Length of the UTF-8 sequence announced by a lead byte, from its high
 * nibble only (1 for continuation bytes), as SentencePiece splits text. */
static inline size_t unicode_utf8_len(unsigned char lead)
{
	static const unsigned char len[16] = { 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4 };
	return len[lead >> 4];
}

/*
 * Lenient decoder used by the pre-tokenizers, matching llama.cpp: lead and
 * continuation bits are checked, overlong forms and surrogates are not; a
 * malformed byte decodes to U+FFFD and consumes one byte.  *pos advances.
 * Requires *pos < len.
 */
uint32_t unicode_decode_lenient(const char *s, size_t len, size_t *pos);

/*
 * Strict decoder (RFC 3629: no overlongs, surrogates or values past
 * U+10FFFF) for the streaming detokenizer.  Returns the length (1-4) of the
 * valid sequence at s and stores the code point; 0 when s[0..n) is a valid
 * but incomplete prefix (more bytes may complete it); -1 when the first
 * byte cannot start a valid sequence or the prefix is already invalid, in
 * which case *bad is the length of the maximal invalid subpart to replace
 * by one U+FFFD (Unicode's "maximal subpart" practice).
 */
int unicode_decode_strict(const unsigned char *s, size_t n, uint32_t *cp, size_t *bad);

/* UTF-8 of cp into out (1-4 bytes); values past U+10FFFF encode U+FFFD. */
size_t unicode_encode(uint32_t cp, char out[4]);

/* GPT-2 byte-level BPE alphabet: each byte maps to one printable code
 * point (printable Latin-1 bytes to themselves, the rest to U+0100 up). */
uint32_t unicode_byte_to_cp(uint8_t byte);
int unicode_cp_to_byte(uint32_t cp); /* -1 when cp is not in the alphabet */

#endif
