/* Layout computation: pure arithmetic on the terminal size, unit-tested. */
#include "layout.h"

#include <string.h>

static struct rect rect_make(int y, int x, int h, int w)
{
	struct rect r = { y, x, h > 0 ? h : 0, w > 0 ? w : 0 };
	return r;
}

void layout_compute(struct layout *l, int lines, int cols, int input_rows, int status)
{
	memset(l, 0, sizeof(*l));
	l->lines = lines;
	l->cols = cols;
	if (lines < 4 || cols < 16) {
		l->too_small = 1;
		return;
	}
	int hint_h = lines >= 10 ? 1 : 0;
	int rule_h = lines >= 8 ? 1 : 0;
	int bar_h = 0;
	if (status)
		bar_h = cols >= LAYOUT_COLUMN_MIN ? 0 : (cols >= 80 || lines < 16 ? 1 : 2);
	if (status && cols < LAYOUT_COLUMN_MIN && lines < 8)
		bar_h = 0; /* no room: the transcript matters more */

	/* the input may grow while the transcript keeps at least 1 line */
	int fixed = hint_h + rule_h + bar_h + 1;
	int in_h = input_rows < 1 ? 1 : input_rows;
	if (in_h > LAYOUT_INPUT_MAX)
		in_h = LAYOUT_INPUT_MAX;
	if (in_h > lines - fixed)
		in_h = lines - fixed;
	if (in_h < 1)
		in_h = 1;

	int bottom = lines;
	l->hint = rect_make(bottom - hint_h, 0, hint_h, cols);
	bottom -= hint_h;
	l->input = rect_make(bottom - in_h, 0, in_h, cols);
	bottom -= in_h;
	l->rule = rect_make(bottom - rule_h, 0, rule_h, cols);
	bottom -= rule_h;

	if (!status) {
		l->status_mode = STATUS_HIDDEN;
		l->transcript = rect_make(0, 0, bottom, cols);
	} else if (cols >= LAYOUT_COLUMN_MIN) {
		/* a quarter of the width, 30..40 columns, plus a separator */
		int w = cols / 4;
		if (w < 30)
			w = 30;
		if (w > 40)
			w = 40;
		l->status_mode = STATUS_COLUMN;
		l->status = rect_make(0, cols - w, bottom, w);
		l->transcript = rect_make(0, 0, bottom, cols - w);
	} else if (bar_h) {
		l->status_mode = STATUS_BAR;
		l->status = rect_make(bottom - bar_h, 0, bar_h, cols);
		bottom -= bar_h;
		l->transcript = rect_make(0, 0, bottom, cols);
	} else {
		l->status_mode = STATUS_HIDDEN;
		l->transcript = rect_make(0, 0, bottom, cols);
	}
}
