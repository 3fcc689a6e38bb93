/* Unicode helpers: generated category lookup, UTF-8 decoding (lenient and strict), GPT-2 byte alphabet. */
#include "unicode.h"

#include "unicode_data.h"

unsigned unicode_flags(uint32_t cp)
{
	if (cp > UNICODE_MAX)
		return 0;
	return unicode_stage2[(size_t)unicode_stage1[cp / UNICODE_DATA_BLOCK] * UNICODE_DATA_BLOCK +
			      cp % UNICODE_DATA_BLOCK];
}

const char *unicode_data_version(void)
{
	return UNICODE_DATA_VERSION;
}

static int is_cont(unsigned char c)
{
	return (c & 0xC0) == 0x80;
}

uint32_t unicode_decode_lenient(const char *str, size_t len, size_t *pos)
{
	const unsigned char *s = (const unsigned char *)str + *pos;
	size_t left = len - *pos;
	unsigned char c = s[0];

	if (!(c & 0x80)) {
		*pos += 1;
		return c;
	}
	if ((c & 0x40) && !(c & 0x20)) {
		if (left >= 2 && is_cont(s[1])) {
			*pos += 2;
			return ((uint32_t)(c & 0x1F) << 6) | (s[1] & 0x3F);
		}
	} else if ((c & 0x40) && !(c & 0x10)) {
		if (left >= 3 && is_cont(s[1]) && is_cont(s[2])) {
			*pos += 3;
			return ((uint32_t)(c & 0x0F) << 12) | ((uint32_t)(s[1] & 0x3F) << 6) |
			       (s[2] & 0x3F);
		}
	} else if ((c & 0x40) && !(c & 0x08)) {
		if (left >= 4 && is_cont(s[1]) && is_cont(s[2]) && is_cont(s[3])) {
			*pos += 4;
			return ((uint32_t)(c & 0x07) << 18) | ((uint32_t)(s[1] & 0x3F) << 12) |
			       ((uint32_t)(s[2] & 0x3F) << 6) | (s[3] & 0x3F);
		}
	}
	*pos += 1;
	return UNICODE_REPLACEMENT;
}

int unicode_decode_strict(const unsigned char *s, size_t n, uint32_t *cp, size_t *bad)
{
	unsigned char c = s[0];
	size_t need;
	uint32_t v;
	unsigned char lo = 0x80, hi = 0xBF; /* allowed range of the second byte */

	*bad = 1;
	if (c < 0x80) {
		*cp = c;
		return 1;
	}
	if (c >= 0xC2 && c <= 0xDF) {
		need = 2;
		v = c & 0x1F;
	} else if (c >= 0xE0 && c <= 0xEF) {
		need = 3;
		v = c & 0x0F;
		if (c == 0xE0)
			lo = 0xA0; /* no overlongs */
		else if (c == 0xED)
			hi = 0x9F; /* no surrogates */
	} else if (c >= 0xF0 && c <= 0xF4) {
		need = 4;
		v = c & 0x07;
		if (c == 0xF0)
			lo = 0x90;
		else if (c == 0xF4)
			hi = 0x8F; /* not past U+10FFFF */
	} else {
		return -1;
	}
	for (size_t i = 1; i < need; i++) {
		if (i >= n)
			return 0; /* valid so far, incomplete */
		unsigned char b = s[i];
		unsigned char l = i == 1 ? lo : 0x80, h = i == 1 ? hi : 0xBF;
		if (b < l || b > h) {
			*bad = i;
			return -1;
		}
		v = (v << 6) | (b & 0x3F);
	}
	*cp = v;
	return (int)need;
}

size_t unicode_encode(uint32_t cp, char out[4])
{
	if (cp > UNICODE_MAX)
		cp = UNICODE_REPLACEMENT;
	if (cp < 0x80) {
		out[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = (char)(0xC0 | (cp >> 6));
		out[1] = (char)(0x80 | (cp & 0x3F));
		return 2;
	}
	if (cp < 0x10000) {
		out[0] = (char)(0xE0 | (cp >> 12));
		out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
		out[2] = (char)(0x80 | (cp & 0x3F));
		return 3;
	}
	out[0] = (char)(0xF0 | (cp >> 18));
	out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
	out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
	out[3] = (char)(0x80 | (cp & 0x3F));
	return 4;
}

/* Bytes that stand for themselves in GPT-2's alphabet: '!'..'~', '¡'..'¬', '®'..'ÿ'. */
static int byte_is_printable(unsigned b)
{
	return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
}

uint32_t unicode_byte_to_cp(uint8_t byte)
{
	/* the 68 other bytes take U+0100, U+0101, ... in byte order:
	 * 0x00-0x20 (33 bytes), 0x7F-0xA0 (34 bytes), then 0xAD */
	if (byte_is_printable(byte))
		return byte;
	if (byte <= 0x20)
		return 0x100u + byte;
	if (byte <= 0xA0)
		return 0x100u + 33 + (byte - 0x7Fu);
	return 0x100u + 67; /* 0xAD */
}

int unicode_cp_to_byte(uint32_t cp)
{
	if (cp < 0x100)
		return byte_is_printable(cp) ? (int)cp : -1;
	if (cp <= 0x120)
		return (int)(cp - 0x100);
	if (cp <= 0x142)
		return (int)(cp - 0x121 + 0x7F);
	return cp == 0x143 ? 0xAD : -1;
}
