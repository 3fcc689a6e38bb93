/* ui/theme: colours only when wanted (NO_COLOR, mono, colourless terminals). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "theme.h"

static void test_wants_color(void **state)
{
	(void)state;
	assert_true(theme_wants_color("default", NULL, 1));
	assert_true(theme_wants_color(NULL, NULL, 1));
	assert_true(theme_wants_color("light", "", 1)); /* NO_COLOR set but empty: ignored */
	assert_false(theme_wants_color("default", "1", 1));
	assert_false(theme_wants_color("mono", NULL, 1));
	assert_false(theme_wants_color("default", NULL, 0));
}

static void test_names(void **state)
{
	int n = 0, mono = 0;
	(void)state;
	for (; theme_names[n]; n++)
		mono |= !strcmp(theme_names[n], "mono");
	assert_true(n >= 2);
	assert_true(mono);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_wants_color),
		cmocka_unit_test(test_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
