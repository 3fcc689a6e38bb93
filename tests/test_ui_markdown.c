/* ui/markdown: source lines become display text plus styled runs. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "markdown.h"

/* Render and describe the runs as "text" plus a style letter per byte. */
static struct md_line line;
static struct md_state st;

static const char *styles(void)
{
	static char buf[512];
	const char *letters = "pbcCfhBqilu";
	size_t n = line.text.len;
	for (size_t i = 0; i < n && i < sizeof(buf) - 1; i++)
		buf[i] = letters[md_style_at(&line, i)];
	buf[n < sizeof(buf) - 1 ? n : sizeof(buf) - 1] = '\0';
	return buf;
}

static void render(const char *src)
{
	md_render_line(&st, src, strlen(src), 1, &line);
	/* invariants: sorted, non-overlapping runs that cover the text exactly */
	size_t at = 0;
	for (size_t i = 0; i < line.n_runs; i++) {
		assert_int_equal(line.runs[i].start, at);
		assert_true(line.runs[i].len > 0);
		at += line.runs[i].len;
	}
	assert_int_equal(at, line.text.len);
}

static int setup(void **state)
{
	(void)state;
	md_line_init(&line);
	memset(&st, 0, sizeof(st));
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	md_line_release(&line);
	return 0;
}

static void test_inline(void **state)
{
	(void)state;
	render("say **hi** to `x`");
	assert_string_equal(line.text.buf, "say hi to x");
	assert_string_equal(styles(), "ppppbbppppc");
	/* unmatched markers stay literal */
	render("2 ** 3 and a`b");
	assert_string_equal(line.text.buf, "2 ** 3 and a`b");
	assert_string_equal(styles(), "pppppppppppppp");
	render("__strong__");
	assert_string_equal(line.text.buf, "strong");
	assert_string_equal(styles(), "bbbbbb");
}

static void test_italic_and_links(void **state)
{
	(void)state;
	render("an *italic* and _this_ word");
	assert_string_equal(line.text.buf, "an italic and this word");
	assert_string_equal(styles(), "pppiiiiiipppppiiiippppp");
	/* snake_case, spaced stars and a lone star stay literal */
	render("snake_case_name 2 * 3 * 4 a*");
	assert_string_equal(line.text.buf, "snake_case_name 2 * 3 * 4 a*");
	assert_int_equal(line.n_runs, 1);
	render("**bold *italic* bold**");
	assert_string_equal(line.text.buf, "bold italic bold");
	render("see [the docs](https://x.org/a) or <https://y.org>");
	assert_string_equal(line.text.buf, "see the docs (https://x.org/a) or https://y.org");
	assert_int_equal(md_style_at(&line, 4), MD_LINK);
	assert_int_equal(md_style_at(&line, 13), MD_URL);
	assert_int_equal(md_style_at(&line, 36), MD_LINK);
	render("[not a link] (x) [a](b c)");
	assert_string_equal(line.text.buf, "[not a link] (x) [a](b c)");
}

/* A table is measured first, then its rows are drawn aligned. */
static void test_table(void **state)
{
	(void)state;
	const char *src = "| name | **n** |\n|---|--:|\n| a | 10 |\n| longer | 2 |\nafter";
	const char *rows[] = { "| name | **n** |", "|---|--:|", "| a | 10 |", "| longer | 2 |" };
	assert_int_equal(md_table_begin(&st, src, strlen(src)), 1);
	assert_int_equal(st.table_cols, 2);
	assert_int_equal(st.col_width[0], 6);
	assert_int_equal(st.col_width[1], 2);
	render(rows[0]);
	assert_string_equal(line.text.buf, "name   \xe2\x94\x82 n ");
	assert_int_equal(md_style_at(&line, 11), MD_BOLD);
	render(rows[1]);
	assert_string_equal(line.text.buf,
			    "\xe2\x94\x80\xe2\x94\x80\xe2\x94\x80\xe2\x94\x80\xe2\x94\x80"
			    "\xe2\x94\x80\xe2\x94\x80\xe2\x94\xbc\xe2\x94\x80\xe2\x94\x80"
			    "\xe2\x94\x80");
	render(rows[2]);
	assert_string_equal(line.text.buf, "a      \xe2\x94\x82 10");
	render(rows[3]);
	assert_string_equal(line.text.buf, "longer \xe2\x94\x82 2 ");
	render("after");
	assert_int_equal(st.table_cols, 0);
	/* pipes without a delimiter row are text */
	const char *not = "| a | b |\nmore text";
	assert_int_equal(md_table_begin(&st, not, strlen(not )), 0);
	render("| a | b |");
	assert_string_equal(line.text.buf, "| a | b |");
}

static void test_heading_list_quote(void **state)
{
	(void)state;
	render("## Title **x**");
	assert_string_equal(line.text.buf, "Title x");
	assert_string_equal(styles(), "hhhhhhh");
	render("#hashtag");
	assert_string_equal(line.text.buf, "#hashtag");
	render("- item one");
	assert_string_equal(line.text.buf, "\xe2\x80\xa2 item one");
	assert_int_equal(line.indent, 2);
	assert_int_equal(md_style_at(&line, 0), MD_BULLET);
	assert_int_equal(md_style_at(&line, 4), MD_PLAIN);
	render("  * nested");
	assert_int_equal(line.indent, 4);
	render("12. twelfth");
	assert_string_equal(line.text.buf, "12. twelfth");
	assert_int_equal(line.indent, 4);
	assert_string_equal(styles(), "BBBBppppppp");
	render("> quoted");
	assert_string_equal(line.text.buf, "\xe2\x94\x82 quoted");
	assert_int_equal(md_style_at(&line, 5), MD_QUOTE);
}

static void test_fences(void **state)
{
	(void)state;
	render("```python");
	assert_int_equal(st.in_fence, 1);
	assert_int_equal(md_style_at(&line, 0), MD_FENCE);
	assert_non_null(strstr(line.text.buf, "python"));
	render("x = **not bold** # `no`");
	assert_int_equal(line.code, 1);
	assert_string_equal(line.text.buf, "x = **not bold** # `no`");
	assert_int_equal(md_style_at(&line, 5), MD_CODEBLOCK);
	render("\tindented");
	assert_string_equal(line.text.buf, "    indented");
	render("```");
	assert_int_equal(st.in_fence, 0);
	render("**after**");
	assert_int_equal(line.code, 0);
	assert_string_equal(line.text.buf, "after");
}

static void test_sanitize_plain(void **state)
{
	(void)state;
	md_render_line(&st, "a\x1b[31mb\x01", 9, 1, &line);
	assert_null(memchr(line.text.buf, 0x1b, line.text.len));
	assert_null(memchr(line.text.buf, 0x01, line.text.len));
	md_render_line(&st, "**raw** `text`", 14, 0, &line);
	assert_string_equal(line.text.buf, "**raw** `text`");
	assert_int_equal(line.n_runs, 1);
	/* invalid UTF-8 becomes U+FFFD */
	md_render_line(&st, "a\xffz", 3, 1, &line);
	assert_string_equal(line.text.buf, "a\xef\xbf\xbdz");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_inline, setup, teardown),
		cmocka_unit_test_setup_teardown(test_italic_and_links, setup, teardown),
		cmocka_unit_test_setup_teardown(test_table, setup, teardown),
		cmocka_unit_test_setup_teardown(test_heading_list_quote, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fences, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sanitize_plain, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
