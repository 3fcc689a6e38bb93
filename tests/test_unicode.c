/* unicode: generated category classes, White_Space, UTF-8 decoders and the GPT-2 byte alphabet. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>
#include <stdlib.h>

#include "unicode.h"

static void test_classes(void **state)
{
	(void)state;
	assert_int_equal(unicode_class_of('A'), UNICODE_LETTER);
	assert_int_equal(unicode_class_of('z'), UNICODE_LETTER);
	assert_int_equal(unicode_class_of(0x00E9), UNICODE_LETTER);  /* é */
	assert_int_equal(unicode_class_of(0x4E00), UNICODE_LETTER);  /* CJK, inside a First/Last range */
	assert_int_equal(unicode_class_of(0xAC01), UNICODE_LETTER);  /* Hangul syllable range */
	assert_int_equal(unicode_class_of(0x20000), UNICODE_LETTER); /* CJK extension B */
	assert_int_equal(unicode_class_of('7'), UNICODE_NUMBER);
	assert_int_equal(unicode_class_of(0x00BD), UNICODE_NUMBER); /* ½ (No) */
	assert_int_equal(unicode_class_of(0x0663), UNICODE_NUMBER); /* Arabic-Indic three */
	assert_int_equal(unicode_class_of('!'), UNICODE_PUNCT);
	assert_int_equal(unicode_class_of('_'), UNICODE_PUNCT);
	assert_int_equal(unicode_class_of(0x3002), UNICODE_PUNCT); /* 。 */
	assert_int_equal(unicode_class_of(0x0301), UNICODE_MARK);
	assert_int_equal(unicode_class_of('+'), UNICODE_SYMBOL);
	assert_int_equal(unicode_class_of('~'), UNICODE_SYMBOL);
	assert_int_equal(unicode_class_of(0x1F600), UNICODE_SYMBOL); /* emoji (So) */
	assert_int_equal(unicode_class_of(' '), UNICODE_SEPARATOR);
	assert_int_equal(unicode_class_of(0x3000), UNICODE_SEPARATOR);
	assert_int_equal(unicode_class_of('\n'), UNICODE_OTHER);
	assert_int_equal(unicode_class_of(0x200D), UNICODE_OTHER); /* ZWJ (Cf) */
	assert_int_equal(unicode_class_of(0xE000), UNICODE_OTHER); /* private use range */
	assert_int_equal(unicode_class_of(0xD800), UNICODE_OTHER); /* surrogate range */
	assert_int_equal(unicode_class_of(0x0378), UNICODE_UNASSIGNED);
	assert_int_equal(unicode_class_of(0x10FFFF), UNICODE_UNASSIGNED);
	assert_int_equal(unicode_flags(0x110000), 0);
	assert_int_equal(unicode_flags(UINT32_MAX), 0);
	assert_string_equal(unicode_data_version(), "15.0.0");
}

static void test_whitespace(void **state)
{
	/* White_Space in PropList.txt (Unicode 15): 25 code points */
	static const uint32_t ws[] = { 9, 10, 11, 12, 13, 0x20, 0x85, 0xA0, 0x1680, 0x2000, 0x2001,
				       0x2002, 0x2003, 0x2004, 0x2005, 0x2006, 0x2007, 0x2008, 0x2009,
				       0x200A, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000 };
	(void)state;
	size_t n = 0;
	for (uint32_t c = 0; c <= UNICODE_MAX; c++)
		n += unicode_is_whitespace(c);
	assert_int_equal(n, sizeof(ws) / sizeof(ws[0]));
	for (size_t i = 0; i < sizeof(ws) / sizeof(ws[0]); i++)
		assert_true(unicode_is_whitespace(ws[i]));
	assert_false(unicode_is_whitespace(0x1C)); /* Python's isspace says yes; Unicode says no */
	assert_false(unicode_is_whitespace(0x200B));
}

static uint32_t lenient(const char *s, size_t n, size_t *pos)
{
	return unicode_decode_lenient(s, n, pos);
}

static void test_lenient(void **state)
{
	(void)state;
	const char s[] = "a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\x80\xc0\x80\xe2\x82";
	size_t n = sizeof(s) - 1, pos = 0;
	assert_int_equal(lenient(s, n, &pos), 'a');
	assert_int_equal(lenient(s, n, &pos), 0xE9);
	assert_int_equal(lenient(s, n, &pos), 0x20AC);
	assert_int_equal(lenient(s, n, &pos), 0x1F600);
	assert_int_equal(pos, 10);
	assert_int_equal(lenient(s, n, &pos), UNICODE_REPLACEMENT); /* stray continuation */
	assert_int_equal(pos, 11);
	assert_int_equal(lenient(s, n, &pos), 0); /* overlong: accepted, as llama.cpp */
	assert_int_equal(lenient(s, n, &pos), UNICODE_REPLACEMENT); /* truncated at the end */
	assert_int_equal(pos, 14);
	assert_int_equal(lenient(s, n, &pos), UNICODE_REPLACEMENT);
	assert_int_equal(pos, n);
}

static void test_strict(void **state)
{
	(void)state;
	uint32_t cp = 0;
	size_t bad = 0;
	assert_int_equal(unicode_decode_strict((const unsigned char *)"\xe2\x82\xac", 3, &cp, &bad), 3);
	assert_int_equal(cp, 0x20AC);
	assert_int_equal(unicode_decode_strict((const unsigned char *)"\xe2\x82", 2, &cp, &bad), 0);
	assert_int_equal(unicode_decode_strict((const unsigned char *)"\xf0", 1, &cp, &bad), 0);
	assert_int_equal(unicode_decode_strict((const unsigned char *)"\xe2\x82" "A", 3, &cp, &bad), -1);
	assert_int_equal(bad, 2);
	assert_int_equal(unicode_decode_strict((const unsigned char *)"\xed\xa0\x80", 3, &cp, &bad), -1);
	assert_int_equal(bad, 1); /* surrogate */
	assert_int_equal(unicode_decode_strict((const unsigned char *)"\xc0\x80", 2, &cp, &bad), -1);
	assert_int_equal(bad, 1); /* overlong lead */
	assert_int_equal(unicode_decode_strict((const unsigned char *)"\xf4\x90\x80\x80", 4, &cp, &bad), -1);
	assert_int_equal(bad, 1); /* past U+10FFFF */
	assert_int_equal(unicode_decode_strict((const unsigned char *)"\xff", 1, &cp, &bad), -1);
	assert_int_equal(unicode_decode_strict((const unsigned char *)"\x80", 1, &cp, &bad), -1);
}

static void test_encode_round_trip(void **state)
{
	(void)state;
	for (uint32_t c = 0; c <= UNICODE_MAX; c += (c < 0x1000 ? 1 : 97)) {
		if (c >= 0xD800 && c <= 0xDFFF)
			continue;
		char buf[4];
		size_t n = unicode_encode(c, buf), pos = 0;
		uint32_t back = 0;
		size_t bad;
		assert_int_equal(unicode_decode_strict((const unsigned char *)buf, n, &back, &bad), (int)n);
		assert_int_equal(back, c);
		assert_int_equal(unicode_decode_lenient(buf, n, &pos), c);
		assert_int_equal(pos, n);
	}
	char buf[4];
	assert_int_equal(unicode_encode(0x110000, buf), 3);
	assert_memory_equal(buf, "\xef\xbf\xbd", 3);
}

static void test_byte_alphabet(void **state)
{
	(void)state;
	int seen[0x200] = { 0 };
	for (int b = 0; b < 256; b++) {
		uint32_t c = unicode_byte_to_cp((uint8_t)b);
		assert_true(c < 0x200);
		assert_int_equal(seen[c], 0);
		seen[c] = 1;
		assert_int_equal(unicode_cp_to_byte(c), b);
		/* every character of the alphabet is printable: a letter, number, punctuation or symbol */
		enum unicode_class k = unicode_class_of(c);
		assert_true(k == UNICODE_LETTER || k == UNICODE_NUMBER || k == UNICODE_PUNCT || k == UNICODE_SYMBOL);
	}
	assert_int_equal(unicode_byte_to_cp('A'), 'A');
	assert_int_equal(unicode_byte_to_cp(' '), 0x120);  /* Ġ */
	assert_int_equal(unicode_byte_to_cp('\n'), 0x10A); /* Ċ */
	assert_int_equal(unicode_byte_to_cp(0xAD), 0x143);
	assert_int_equal(unicode_cp_to_byte(0x20), -1);
	assert_int_equal(unicode_cp_to_byte(0x144), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_classes),
		cmocka_unit_test(test_whitespace),
		cmocka_unit_test(test_lenient),
		cmocka_unit_test(test_strict),
		cmocka_unit_test(test_encode_round_trip),
		cmocka_unit_test(test_byte_alphabet),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
