/* ui/layout: pane rectangles for every terminal size stay inside and apart. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "layout.h"

static int inside(const struct rect *r, int lines, int cols)
{
	if (!r->h || !r->w)
		return 1;
	return r->y >= 0 && r->x >= 0 && r->y + r->h <= lines && r->x + r->w <= cols;
}

static int overlap(const struct rect *a, const struct rect *b)
{
	if (!a->h || !a->w || !b->h || !b->w)
		return 0;
	return a->x < b->x + b->w && b->x < a->x + a->w && a->y < b->y + b->h && b->y < a->y + a->h;
}

static void check(const struct layout *l)
{
	const struct rect *r[] = { &l->transcript, &l->status, &l->rule, &l->input, &l->hint };
	if (l->too_small)
		return;
	assert_true(l->transcript.h >= 1);
	assert_true(l->input.h >= 1 && l->input.h <= LAYOUT_INPUT_MAX);
	assert_int_equal(l->input.w, l->cols);
	for (int i = 0; i < 5; i++) {
		assert_true(inside(r[i], l->lines, l->cols));
		for (int j = i + 1; j < 5; j++)
			assert_false(overlap(r[i], r[j]));
	}
	/* every row is used by someone */
	int rows = l->transcript.h + l->rule.h + l->input.h + l->hint.h;
	if (l->status_mode == STATUS_BAR)
		rows += l->status.h;
	assert_int_equal(rows, l->lines);
}

static void test_wide_has_column(void **state)
{
	struct layout l;
	(void)state;
	layout_compute(&l, 30, 100, 1, 1);
	check(&l);
	assert_int_equal(l.status_mode, STATUS_COLUMN);
	assert_int_equal(l.status.x + l.status.w, 100);
	assert_int_equal(l.transcript.w + l.status.w, 100);
	assert_int_equal(l.input.y + l.input.h, 29);
	assert_int_equal(l.hint.y, 29);
	assert_int_equal(l.input.h, 1);
}

static void test_narrow_has_bar(void **state)
{
	struct layout l;
	(void)state;
	layout_compute(&l, 20, 60, 1, 1);
	check(&l);
	assert_int_equal(l.status_mode, STATUS_BAR);
	assert_true(l.status.h == 1 || l.status.h == 2);
	assert_int_equal(l.transcript.w, 60);
	layout_compute(&l, 30, 99, 1, 1);
	assert_int_equal(l.status_mode, STATUS_BAR);
	layout_compute(&l, 30, 120, 1, 0);
	check(&l);
	assert_int_equal(l.status_mode, STATUS_HIDDEN);
	assert_int_equal(l.transcript.w, 120);
}

static void test_input_grows(void **state)
{
	struct layout l;
	(void)state;
	layout_compute(&l, 30, 100, 3, 1);
	assert_int_equal(l.input.h, 3);
	layout_compute(&l, 30, 100, 9, 1);
	assert_int_equal(l.input.h, LAYOUT_INPUT_MAX);
	check(&l);
	/* on a tiny screen the transcript keeps a line */
	layout_compute(&l, 6, 40, 5, 1);
	check(&l);
	assert_true(l.transcript.h >= 1);
}

static void test_every_size(void **state)
{
	struct layout l;
	(void)state;
	for (int lines = 1; lines < 60; lines++)
		for (int cols = 1; cols < 220; cols += 3)
			for (int in = 0; in < 7; in++) {
				layout_compute(&l, lines, cols, in, (lines + cols) % 2);
				check(&l);
				if (lines >= 4 && cols >= 16)
					assert_false(l.too_small);
			}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_wide_has_column),
		cmocka_unit_test(test_narrow_has_bar),
		cmocka_unit_test(test_input_grows),
		cmocka_unit_test(test_every_size),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
