/* untrusted: the sanitizing printer's rules, strict UTF-8, and error messages made safe. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "report.h"
#include "strbuf.h"
#include "untrusted.h"

static void expect(const char *in, size_t n, unsigned flags, const char *want)
{
	struct strbuf sb = STRBUF_INIT;
	untrusted_add(&sb, in, n, flags);
	if (strcmp(sb.buf, want))
		fail_msg("sanitized '%s', want '%s'", sb.buf, want);
	strbuf_release(&sb);
}

#define EXPECT(in, flags, want) expect(in, sizeof(in) - 1, flags, want)
#define FFFD "\xef\xbf\xbd"

static void test_controls(void **state)
{
	(void)state;
	EXPECT("plain text", 0, "plain text");
	EXPECT("\x1b]0;pwned\x07", 0, "^[]0;pwned^G");
	EXPECT("\x1b[2J\x1b[H", 0, "^[[2J^[[H");
	EXPECT("a\rb\x7f", 0, "a^Mb^?");
	EXPECT("a\nb\tc", 0, "a^Jb^Ic");
	EXPECT("a\nb\tc\r", UNTRUSTED_MULTILINE, "a\nb\tc^M");
	EXPECT("nul\0x", 0, "nul^@x");
	/* C1 controls: U+009B is CSI on some terminals, raw 0x9b on others */
	EXPECT("\xc2\x9b" "31m", 0, FFFD "31m");
	EXPECT("\x9b" "31m", 0, FFFD "31m");
	EXPECT("\xc2\x85", 0, FFFD);
	/* what is not UTF-8 */
	EXPECT("\xc0\x80", 0, FFFD FFFD);         /* overlong NUL */
	EXPECT("\xed\xa0\x80", 0, FFFD FFFD FFFD); /* a surrogate */
	EXPECT("\xf4\x90\x80\x80", 0, FFFD FFFD FFFD FFFD);
	EXPECT("\xe2\x82", 0, FFFD FFFD); /* cut short */
	EXPECT("\xff", 0, FFFD);
	/* what is kept */
	EXPECT("caf\xc3\xa9 \xe2\x80\x94 \xf0\x9f\x98\x80 \xc2\xa0", 0,
	       "caf\xc3\xa9 \xe2\x80\x94 \xf0\x9f\x98\x80 \xc2\xa0");
}

static void test_utf8_valid(void **state)
{
	(void)state;
	uint32_t cp;
	assert_int_equal(utf8_valid("A", 1, &cp), 1);
	assert_int_equal(cp, 'A');
	assert_int_equal(utf8_valid("\xc3\xa9", 2, &cp), 2);
	assert_int_equal(cp, 0xe9);
	assert_int_equal(utf8_valid("\xef\xbf\xbd", 3, &cp), 3);
	assert_int_equal(cp, 0xfffd);
	assert_int_equal(utf8_valid("\xf4\x8f\xbf\xbf", 4, &cp), 4);
	assert_int_equal(cp, 0x10ffff);
	assert_int_equal(utf8_valid("\xe0\x9f\xbf", 3, &cp), 0); /* overlong */
	assert_int_equal(utf8_valid("\xc3", 1, &cp), 0);
	assert_int_equal(utf8_valid("\x80", 1, &cp), 0);
}

/* Messages quote files: whatever they quote, the message is safe. */
/* A token piece quoted for a listing: escapes for \n \t \r, \xNN for
 * controls, C1 and bytes that are not UTF-8, UTF-8 kept. */
static void test_print_quoted(void **state)
{
	(void)state;
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	assert_non_null(f);
	untrusted_print_quoted(f, "a\n\t\r\x1b[2J\xc2\x9b\xc3\xa9\xc3", 13);
	fclose(f);
	assert_string_equal(buf, "'a\\n\\t\\r\\x1b[2J\\xc2\\x9b\xc3\xa9\\xc3'");
	free(buf);
}

static void test_error_messages(void **state)
{
	(void)state;
	error("unknown architecture '%s'", "ll\x1b]0;pwned\x07" "ama");
	assert_string_equal(error_message(), "unknown architecture 'll^[]0;pwned^Gama'");
	error("x");
	error_prefix("'%s': ", "a\x9b" "b");
	assert_string_equal(error_message(), "'a" FFFD "b': x");
	/* a long message of controls is cut, never in the middle of a character */
	char big[2000];
	memset(big, 0x9b, sizeof(big) - 1);
	big[sizeof(big) - 1] = 0;
	error("%s", big);
	size_t n = strlen(error_message());
	assert_true(n > 0 && n % 3 == 0);
	for (size_t i = 0; i < n; i += 3)
		assert_memory_equal(error_message() + i, FFFD, 3);
	error_clear();
}

/* A message that already names the file is not prefixed with it again. */
static void test_prefix_once(void **state)
{
	(void)state;
	error("'/m/x.gguf': no tokenizer");
	error_prefix("'%s': ", "/m/x.gguf");
	assert_string_equal(error_message(), "'/m/x.gguf': no tokenizer");
	error("no tokenizer");
	error_prefix("'%s': ", "/m/x.gguf");
	assert_string_equal(error_message(), "'/m/x.gguf': no tokenizer");
	error_clear();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_controls),
		cmocka_unit_test(test_utf8_valid),
		cmocka_unit_test(test_print_quoted),
		cmocka_unit_test(test_error_messages),
		cmocka_unit_test(test_prefix_once),
	};
	return cmocka_run_group_tests_name("untrusted", tests, NULL, NULL);
}
