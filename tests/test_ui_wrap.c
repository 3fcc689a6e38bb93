/* ui/wrap: UTF-8 decoding, display width and word wrap by columns. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <locale.h>
#include <stdlib.h>
#include <string.h>

#include "wrap.h"

static int setup(void **state)
{
	(void)state;
	/* wcwidth needs a UTF-8 locale; C.UTF-8 exists on every glibc since 2.35 */
	if (!setlocale(LC_CTYPE, "C.UTF-8") && !setlocale(LC_CTYPE, "en_US.UTF-8"))
		return -1;
	return 0;
}

static void test_decode(void **state)
{
	uint32_t cp;
	(void)state;
	assert_int_equal(utf8_decode("a", 1, &cp), 1);
	assert_int_equal(cp, 'a');
	assert_int_equal(utf8_decode("\xc3\xa9", 2, &cp), 2);
	assert_int_equal(cp, 0xe9);
	assert_int_equal(utf8_decode("\xe4\xb8\x96", 3, &cp), 3);
	assert_int_equal(cp, 0x4e16);
	assert_int_equal(utf8_decode("\xf0\x9f\x99\x82", 4, &cp), 4);
	assert_int_equal(cp, 0x1f642);
	/* truncated, overlong, stray continuation, surrogate: one byte, U+FFFD */
	assert_int_equal(utf8_decode("\xe4\xb8", 2, &cp), 1);
	assert_int_equal(cp, 0xfffd);
	assert_int_equal(utf8_decode("\xc0\xaf", 2, &cp), 1);
	assert_int_equal(utf8_decode("\x80", 1, &cp), 1);
	assert_int_equal(utf8_decode("\xed\xa0\x80", 3, &cp), 1);
	assert_int_equal(cp, 0xfffd);
	assert_int_equal(utf8_prev("a\xe4\xb8\x96", 4), 3);
	assert_int_equal(utf8_prev("ab", 2), 1);
	assert_int_equal(utf8_prev("a\x80", 2), 1);
}

static void test_width(void **state)
{
	(void)state;
	assert_int_equal(wrap_width("hello", 5), 5);
	assert_int_equal(wrap_width("\xe4\xb8\x96\xe7\x95\x8c", 6), 4);     /* 世界 */
	assert_int_equal(wrap_width("\xf0\x9f\x99\x82", 4), 2);             /* 🙂 */
	assert_int_equal(wrap_width("e\xcc\x81", 3), 1);                    /* e + combining acute */
	const char *s = "h\xc3\xa9llo \xe4\xb8\x96\xe7\x95\x8c \xf0\x9f\x99\x82";
	assert_int_equal(wrap_width(s, strlen(s)), 6 + 5 + 2);
}

/* Wrap s at width and return the lines joined with '|'. */
static char *wrapped(const char *s, int width, int indent, int word)
{
	static char out[1024];
	struct wrap_span *sp = NULL;
	size_t n = 0, alloc = 0;
	size_t got = wrap_line(s, strlen(s), width, indent, word, &sp, &n, &alloc);
	assert_int_equal(got, n);
	out[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		if (i)
			strcat(out, "|");
		strncat(out, s + sp[i].start, sp[i].end - sp[i].start);
		int lim = i ? width - indent : width;
		assert_true(sp[i].width <= (lim < 2 ? 2 : lim));
		assert_int_equal(sp[i].width, wrap_width(s + sp[i].start, sp[i].end - sp[i].start));
	}
	free(sp);
	return out;
}

static void test_wrap_words(void **state)
{
	(void)state;
	assert_string_equal(wrapped("the quick brown fox", 10, 0, 1), "the quick|brown fox");
	assert_string_equal(wrapped("the quick brown fox", 9, 0, 1), "the quick|brown fox");
	assert_string_equal(wrapped("aaaa bbbb", 4, 0, 1), "aaaa|bbbb");
	assert_string_equal(wrapped("a   b", 2, 0, 1), "a|b");
	assert_string_equal(wrapped("", 10, 0, 1), "");
	assert_string_equal(wrapped("short", 10, 0, 1), "short");
	/* a word longer than the line is cut */
	assert_string_equal(wrapped("abcdefghij", 4, 0, 1), "abcd|efgh|ij");
	/* code: cut at the edge, spaces kept */
	assert_string_equal(wrapped("ab cd ef", 4, 0, 0), "ab c|d ef");
	/* hanging indent: later lines 2 narrower */
	assert_string_equal(wrapped("one two three four", 9, 2, 1), "one two|three|four");
}

static void test_wrap_wide(void **state)
{
	(void)state;
	/* 世界世界 is 8 columns: at width 5 a wide char never straddles */
	assert_string_equal(wrapped("\xe4\xb8\x96\xe7\x95\x8c\xe4\xb8\x96\xe7\x95\x8c", 5, 0, 1),
			    "\xe4\xb8\x96\xe7\x95\x8c|\xe4\xb8\x96\xe7\x95\x8c");
	/* combining marks stay with their base: "e\u0301" x3 at width 2 */
	assert_string_equal(wrapped("e\xcc\x81" "e\xcc\x81" "e\xcc\x81", 2, 0, 1),
			    "e\xcc\x81" "e\xcc\x81|e\xcc\x81");
	/* emoji at width 3 */
	assert_string_equal(wrapped("\xf0\x9f\x99\x82\xf0\x9f\x99\x82", 3, 0, 1),
			    "\xf0\x9f\x99\x82|\xf0\x9f\x99\x82");
	/* a width-1 line still advances over a wide character */
	assert_string_equal(wrapped("\xe4\xb8\x96x", 1, 0, 1), "\xe4\xb8\x96|x");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_decode),
		cmocka_unit_test(test_width),
		cmocka_unit_test(test_wrap_words),
		cmocka_unit_test(test_wrap_wide),
	};
	return cmocka_run_group_tests(tests, setup, NULL);
}
