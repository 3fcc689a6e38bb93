/* ui/input: where multi-line, wide-character input goes and where the cursor is. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <locale.h>
#include <string.h>

#include "input.h"

static int setup(void **state)
{
	(void)state;
	return setlocale(LC_CTYPE, "C.UTF-8") ? 0 : -1;
}

static int rows_of(const char *t, size_t point, int width, int *r, int *c)
{
	return input_layout(t, strlen(t), point, width, r, c);
}

static void test_layout(void **state)
{
	int r, c;
	(void)state;
	/* the prompt takes 2 columns */
	assert_int_equal(rows_of("", 0, 20, &r, &c), 1);
	assert_int_equal(r, 0);
	assert_int_equal(c, 2);
	assert_int_equal(rows_of("hello", 5, 20, &r, &c), 1);
	assert_int_equal(c, 7);
	assert_int_equal(rows_of("hello", 1, 20, &r, &c), 1);
	assert_int_equal(c, 3);
	/* multi-line */
	assert_int_equal(rows_of("one\ntwo\nthree", 8, 20, &r, &c), 3);
	assert_int_equal(r, 2);
	assert_int_equal(c, 2);
	/* a trailing newline opens an empty row holding the cursor */
	assert_int_equal(rows_of("one\n", 4, 20, &r, &c), 2);
	assert_int_equal(r, 1);
	/* wrapping at 10 columns: 8 per row */
	assert_int_equal(rows_of("abcdefghijkl", 12, 10, &r, &c), 2);
	assert_int_equal(r, 1);
	assert_int_equal(c, 6);
	/* cursor after a full row goes to the next row */
	assert_int_equal(rows_of("abcdefgh", 8, 10, &r, &c), 2);
	assert_int_equal(r, 1);
	assert_int_equal(c, 2);
	/* wide characters: "h\xc3\xa9llo 世界 🙂" */
	const char *u = "h\xc3\xa9llo \xe4\xb8\x96\xe7\x95\x8c \xf0\x9f\x99\x82";
	assert_int_equal(rows_of(u, strlen(u), 40, &r, &c), 1);
	assert_int_equal(c, 2 + 13);
	assert_int_equal(rows_of(u, 7, 40, &r, &c), 1); /* after "héllo " */
	assert_int_equal(c, 2 + 6);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_layout),
	};
	return cmocka_run_group_tests(tests, setup, NULL);
}
