/* ui/picker: filtering keeps the selection sane; moving keeps it visible. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "picker.h"

static void fill(struct picker *p)
{
	picker_init(p, "Sessions", 1);
	picker_add(p, "a1", "Cooking pasta", "2 messages", 0);
	picker_add(p, "b2", "Rust lifetimes", "with \x01" "borrow\x02 checker", 7);
	picker_add(p, "c3", "Pasta sauce", "tomatoes", 0);
	picker_add(p, "d4", "Trip to Kyoto", "\xe4\xba\xac\xe9\x83\xbd", 0);
}

static void test_filter(void **state)
{
	struct picker p;
	(void)state;
	fill(&p);
	assert_int_equal(p.n_shown, 4);
	strbuf_addstr(&p.filter, "PASTA");
	picker_refilter(&p);
	assert_int_equal(p.n_shown, 2);
	assert_string_equal(picker_selected(&p)->key, "a1");
	picker_move(&p, 1, 5);
	assert_string_equal(picker_selected(&p)->key, "c3");
	/* the detail counts only when asked; the marks do not break a match */
	strbuf_reset(&p.filter);
	strbuf_addstr(&p.filter, "borrow checker");
	picker_refilter(&p);
	assert_int_equal(p.n_shown, 0);
	p.filter_detail = 1;
	strbuf_reset(&p.filter);
	strbuf_addstr(&p.filter, "borrow checker");
	picker_refilter(&p);
	assert_int_equal(p.n_shown, 1);
	assert_int_equal(picker_selected(&p)->target, 7);
	strbuf_reset(&p.filter);
	strbuf_addstr(&p.filter, "zzz");
	picker_refilter(&p);
	assert_int_equal(p.n_shown, 0);
	assert_null(picker_selected(&p));
	picker_move(&p, 1, 5); /* harmless on an empty list */
	strbuf_reset(&p.filter);
	picker_refilter(&p);
	assert_int_equal(p.n_shown, 4);
	picker_release(&p);
}

static void test_move_and_remove(void **state)
{
	struct picker p;
	(void)state;
	fill(&p);
	picker_move(&p, 10, 2);
	assert_int_equal(p.sel, 3);
	assert_int_equal(p.top, 2); /* two rows: items 2 and 3 visible */
	picker_move(&p, -10, 2);
	assert_int_equal(p.sel, 0);
	assert_int_equal(p.top, 0);
	picker_move(&p, 3, 2);
	picker_remove_selected(&p); /* the last one: the selection steps back */
	assert_int_equal(p.n_items, 3);
	assert_string_equal(picker_selected(&p)->key, "c3");
	picker_move(&p, -2, 2);
	picker_remove_selected(&p);
	assert_string_equal(picker_selected(&p)->key, "b2");
	picker_remove_selected(&p);
	picker_remove_selected(&p);
	assert_int_equal(p.n_items, 0);
	assert_null(picker_selected(&p));
	picker_remove_selected(&p);
	assert_int_equal(picker_rows(30), 13);
	assert_int_equal(picker_rows(2), 1);
	picker_release(&p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_filter),
		cmocka_unit_test(test_move_and_remove),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
