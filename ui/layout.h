/* Screen layout: where each pane goes for a terminal of LINES x COLS. */
#ifndef PALAVER_LAYOUT_H
#define PALAVER_LAYOUT_H

struct rect {
	int y, x, h, w; /* top-left corner and size in cells; h or w 0 = hidden */
};

enum status_mode {
	STATUS_HIDDEN,
	STATUS_COLUMN, /* right-hand column (terminal >= LAYOUT_COLUMN_MIN wide) */
	STATUS_BAR,    /* one or two lines above the input */
};

#define LAYOUT_COLUMN_MIN 100 /* columns from which the status pane is a column */
#define LAYOUT_INPUT_MAX 5    /* input rows at most */

/*
 * Invariants (when !too_small): the rectangles do not overlap and lie inside
 * the screen; transcript.h >= 1; input.h is 1..LAYOUT_INPUT_MAX; the input
 * spans the full width with the hint line (when shown) below it and the
 * rule (when shown) above it.
 */
struct layout {
	int lines, cols;
	int too_small; /* 1: the screen shows only a "too small" notice */
	enum status_mode status_mode;
	struct rect transcript;
	struct rect status; /* includes the separator column or rule */
	struct rect rule;   /* a horizontal line above the input (h 0 or 1) */
	struct rect input;
	struct rect hint; /* the one-line key hint (h 0 when too short) */
};

/* input_rows: rows the input wants (clamped to 1..5 and to what fits);
 * status: 0 hides the status pane. */
void layout_compute(struct layout *l, int lines, int cols, int input_rows, int status);

#endif
