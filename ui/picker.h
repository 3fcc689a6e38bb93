/* A full-pane list to choose from (sessions, search results) with filtering and delete confirmation. */
#ifndef PALAVER_PICKER_H
#define PALAVER_PICKER_H

#include <stddef.h>
#include <stdint.h>
#include "strbuf.h"

/* Marks around matches in snippets (what the store is asked to insert). */
#define PICKER_MARK_OPEN "\x01"
#define PICKER_MARK_CLOSE "\x02"

struct picker_item {
	char *key; /* what Enter returns: a session id */
	char *title;
	char *detail;   /* second line: date, count, preview, or a snippet with marks */
	int64_t target; /* a message id to scroll to (search), 0 = none */
};

/*
 * Invariants: shown[0..n_shown) are the indices of the items that match
 * the filter, in order; 0 <= sel < n_shown when n_shown > 0 (else sel 0);
 * top <= sel.
 */
struct picker {
	char heading[128];
	int deletable;     /* 'd' deletes (with confirmation) */
	int filter_detail; /* the filter also looks at the detail line */
	struct picker_item *items;
	size_t n_items, alloc_items;
	size_t *shown;
	size_t n_shown;
	size_t sel, top; /* selection and first row shown, indexes of shown[] */
	struct strbuf filter;
	int filtering; /* keys go to the filter */
	int confirm;   /* asking whether to delete the selection */
};

void picker_init(struct picker *p, const char *heading, int deletable);
void picker_release(struct picker *p);
void picker_add(struct picker *p, const char *key, const char *title, const char *detail,
		int64_t target);
/* Remove the selected item (after a delete). */
void picker_remove_selected(struct picker *p);
/* Recompute shown[] from the filter: a case-insensitive substring of the
 * title (or of the detail, with filter_detail). */
void picker_refilter(struct picker *p);
/* Move the selection by delta rows (clamped); keep it visible in `rows` rows of items. */
void picker_move(struct picker *p, long delta, int rows);
/* The selected item, or NULL when nothing is shown. */
const struct picker_item *picker_selected(const struct picker *p);
/* Rows of items that fit in a pane of this height (each item takes 2). */
int picker_rows(int height);

struct _win_st;
void picker_draw(struct picker *p, struct _win_st *win, int height, int width);

#endif
