/* ui/chat_pane: transcript rendering into visual lines, and scrollback following. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <locale.h>
#include <string.h>

#include "chat_pane.h"

static int setup(void **state)
{
	(void)state;
	return setlocale(LC_CTYPE, "C.UTF-8") ? 0 : -1;
}

static int count_kind(const struct chat_msg *m, enum chat_vkind k)
{
	int n = 0;
	for (size_t i = 0; i < m->n_vlines; i++)
		n += m->vlines[i].kind == k;
	return n;
}

static void test_layout_message(void **state)
{
	struct chat_pane p;
	(void)state;
	chat_pane_init(&p);
	struct chat_msg *u = chat_pane_add(&p, CHAT_USER, "hello there friend");
	chat_msg_layout(&p, u, 13);
	/* header, "hello there" / "friend" wrapped at 11 (indent 2), blank */
	assert_int_equal(u->n_vlines, 4);
	assert_int_equal(u->vlines[0].kind, VL_HEADER);
	assert_int_equal(count_kind(u, VL_TEXT), 2);
	assert_int_equal(u->vlines[1].indent, 2);
	assert_int_equal(u->vlines[3].kind, VL_BLANK);

	struct chat_msg *a = chat_pane_add(&p, CHAT_ASSISTANT, "");
	a->flags = CHAT_STREAMING;
	chat_msg_layout(&p, a, 40);
	assert_int_equal(count_kind(a, VL_TEXT), 1);
	chat_pane_append(&p, a, "line one\n", 9);
	chat_msg_layout(&p, a, 40);
	/* a streaming reply shows the line its newline starts */
	assert_int_equal(count_kind(a, VL_TEXT), 2);
	chat_pane_append(&p, a, "- item\n```\ncode\n```\n", 20);
	a->flags = CHAT_STOPPED;
	chat_msg_layout(&p, a, 40);
	assert_int_equal(count_kind(a, VL_TEXT), 5);
	assert_int_equal(count_kind(a, VL_MARK), 1);
	assert_int_equal(a->lines[3].code, 1);
	/* leading and (once finished) trailing newlines take no lines */
	struct chat_msg *nl = chat_pane_add(&p, CHAT_ASSISTANT, "\n\nhi\n\n");
	chat_msg_layout(&p, nl, 40);
	assert_int_equal(count_kind(nl, VL_TEXT), 1);
	chat_pane_remove(&p, p.n_msgs - 1);
	/* the cache: same width and text, nothing changes; a new width rewraps */
	assert_int_equal(chat_pane_total(&p, 40), 3 + 8);
	assert_true(chat_pane_total(&p, 8) > 11);
	chat_pane_release(&p);
}

static void test_follow_and_scroll(void **state)
{
	struct chat_pane p;
	(void)state;
	chat_pane_init(&p);
	for (int i = 0; i < 10; i++)
		chat_pane_addf(&p, CHAT_NOTICE, "notice %d", i); /* 2 lines each */
	assert_int_equal(chat_pane_total(&p, 20), 20);
	/* following: the view shows the bottom */
	assert_int_equal(chat_pane_view_top(&p, 20, 5), 15);
	chat_pane_scroll(&p, 3, 20, 5);
	assert_int_equal(p.scroll, 3);
	assert_int_equal(chat_pane_view_top(&p, 20, 5), 12);
	/* text arriving below does not move the view, and is flagged */
	chat_pane_add(&p, CHAT_NOTICE, "more");
	assert_int_equal(chat_pane_view_top(&p, 20, 5), 12);
	assert_int_equal(p.unseen, 1);
	chat_pane_scroll_bottom(&p);
	assert_int_equal(chat_pane_view_top(&p, 20, 5), 17);
	assert_int_equal(p.unseen, 0);
	/* clamped at the top */
	chat_pane_scroll_top(&p, 20, 5);
	assert_int_equal(chat_pane_view_top(&p, 20, 5), 0);
	chat_pane_scroll(&p, -1000, 20, 5);
	assert_int_equal(p.scroll, 0);
	/* jump to a message */
	chat_pane_scroll_to(&p, 4, 20, 5);
	assert_int_equal(chat_pane_view_top(&p, 20, 5), 8);
	/* everything fits: no scrolling at all */
	chat_pane_scroll(&p, 5, 20, 100);
	assert_int_equal(p.scroll, 0);
	chat_pane_release(&p);
}

static void test_remove_and_last(void **state)
{
	struct chat_pane p;
	size_t idx;
	(void)state;
	chat_pane_init(&p);
	chat_pane_add(&p, CHAT_USER, "q1");
	chat_pane_add(&p, CHAT_ASSISTANT, "a1");
	chat_pane_add(&p, CHAT_USER, "q2");
	chat_pane_add(&p, CHAT_NOTICE, "n");
	assert_string_equal(chat_pane_last(&p, CHAT_USER, &idx)->text.buf, "q2");
	assert_int_equal(idx, 2);
	p.first_shown = 3;
	chat_pane_remove(&p, 0);
	assert_int_equal(p.first_shown, 2);
	assert_int_equal(p.n_msgs, 3);
	assert_string_equal(chat_pane_last(&p, CHAT_ASSISTANT, &idx)->text.buf, "a1");
	assert_int_equal(idx, 0);
	assert_null(chat_pane_last(&p, CHAT_SYSTEM, NULL));
	chat_pane_release(&p);
}

static void test_mark(void **state)
{
	struct chat_pane p;
	size_t len;
	(void)state;
	chat_pane_init(&p);
	struct chat_msg *m = chat_pane_add(&p, CHAT_USER, "Pasta with tomato");
	chat_pane_mark(&p, m, "\"TOMATO\" past*");
	assert_int_equal(p.n_mark_words, 2);
	const char *s = "My pasta, my Tomato";
	assert_int_equal(chat_pane_find_mark(&p, s, strlen(s), 0, &len), 3);
	assert_int_equal(len, 4); /* "past" */
	assert_int_equal(chat_pane_find_mark(&p, s, strlen(s), 4, &len), 13);
	assert_int_equal(len, 6);
	/* a match may not run past the end given (a visual line's end) */
	assert_int_equal(chat_pane_find_mark(&p, s, 16, 4, &len), 16);
	assert_int_equal(len, 0);
	/* removing the marked message forgets the mark */
	chat_pane_remove(&p, 0);
	assert_null(p.marked);
	assert_int_equal(p.n_mark_words, 0);
	chat_pane_release(&p);
}

/* A reply's thinking: a line that counts it, its text dimmed while it
 * streams (collapse), always (show) or never (hide). */
static void test_thinking(void **state)
{
	struct chat_pane p;
	char line[96];
	(void)state;
	chat_pane_init(&p);
	assert_int_equal(p.thinking_view, CHAT_THINKING_COLLAPSE);
	struct chat_msg *a = chat_pane_add(&p, CHAT_ASSISTANT, "");
	a->flags = CHAT_STREAMING | CHAT_THINKING;
	chat_pane_append_thinking(&p, a, "\nfirst thought\nsecond\n", 22);
	a->think_tokens = 7;
	a->think_ms = 1500;
	chat_msg_layout(&p, a, 40);
	/* header, thinking line, two thought lines, blank */
	assert_int_equal(a->vlines[0].kind, VL_HEADER);
	assert_int_equal(a->vlines[1].kind, VL_THINK_HEAD);
	assert_int_equal(count_kind(a, VL_THOUGHT), 2);
	assert_int_equal(count_kind(a, VL_TEXT), 0);
	chat_msg_think_line(a, line, sizeof(line));
	assert_string_equal(line, "thinking\xe2\x80\xa6 7 tokens, 1.5 s");
	/* hidden: only the line, even while it thinks */
	p.thinking_view = CHAT_THINKING_HIDE;
	chat_msg_layout(&p, a, 40);
	assert_int_equal(count_kind(a, VL_THINK_HEAD), 1);
	assert_int_equal(count_kind(a, VL_THOUGHT), 0);
	/* the answer begins: collapsed to the line, then the answer */
	p.thinking_view = CHAT_THINKING_COLLAPSE;
	a->flags &= ~CHAT_THINKING;
	chat_pane_append(&p, a, "The answer.", 11);
	chat_msg_layout(&p, a, 40);
	assert_int_equal(count_kind(a, VL_THINK_HEAD), 1);
	assert_int_equal(count_kind(a, VL_THOUGHT), 0);
	assert_int_equal(count_kind(a, VL_TEXT), 1);
	chat_msg_think_line(a, line, sizeof(line));
	assert_string_equal(line, "thought for 1.5 s (7 tokens)");
	/* shown: the thinking stays open above the answer */
	p.thinking_view = CHAT_THINKING_SHOW;
	chat_msg_layout(&p, a, 40);
	assert_int_equal(count_kind(a, VL_THOUGHT), 2);
	assert_int_equal(count_kind(a, VL_TEXT), 1);
	/* the thought lines come before the answer's */
	size_t last_thought = 0, first_text = 0;
	for (size_t i = 0; i < a->n_vlines; i++) {
		if (a->vlines[i].kind == VL_THOUGHT)
			last_thought = i;
		if (a->vlines[i].kind == VL_TEXT && !first_text)
			first_text = i;
	}
	assert_true(last_thought < first_text);
	/* a reply from the history: thinking without figures */
	struct chat_msg *h = chat_pane_add(&p, CHAT_ASSISTANT, "old answer");
	chat_pane_append_thinking(&p, h, "old thought", 11);
	chat_msg_think_line(h, line, sizeof(line));
	assert_string_equal(line, "thought");
	/* a reply that never thought has no thinking line */
	struct chat_msg *plain = chat_pane_add(&p, CHAT_ASSISTANT, "plain");
	chat_msg_layout(&p, plain, 40);
	assert_int_equal(count_kind(plain, VL_THINK_HEAD), 0);
	chat_pane_release(&p);
}

/* A long code line wraps between words; its continuations are marked. */
static void test_code_wraps_marked(void **state)
{
	struct chat_pane p;
	(void)state;
	chat_pane_init(&p);
	struct chat_msg *a = chat_pane_add(&p, CHAT_ASSISTANT,
					   "```\nprint(alpha, beta, gamma, delta_epsilon)\n```");
	chat_msg_layout(&p, a, 20);
	/* header, fence, 3 pieces of the code line, fence, blank */
	assert_int_equal(count_kind(a, VL_TEXT), 5);
	const struct chat_vline *v = &a->vlines[2];
	const char *text = a->lines[v->ll].text.buf;
	assert_int_equal(v->cont, 0);
	assert_int_equal(a->vlines[3].cont, 1);
	assert_int_equal(a->vlines[3].indent, 2 + 2);
	/* every piece ends at a space or the line's end: no word is cut */
	for (int i = 2; i <= 4; i++) {
		const struct chat_vline *w = &a->vlines[i];
		assert_true(w->end == a->lines[w->ll].text.len || text[w->end] == ' ');
	}
	chat_pane_release(&p);
}

/* Notices go in before a reply; each reply keeps the label it was written with. */
static void test_insert_and_labels(void **state)
{
	struct chat_pane p;
	(void)state;
	chat_pane_init(&p);
	chat_pane_add(&p, CHAT_USER, "q");
	struct chat_msg *a = chat_pane_add(&p, CHAT_ASSISTANT, "a");
	chat_msg_set_label(a, "model-one");
	assert_int_equal(chat_pane_index(&p, a), 1);
	struct chat_msg *n = chat_pane_insert(&p, chat_pane_index(&p, a), CHAT_NOTICE, "note");
	assert_ptr_equal(p.msgs[1], n);
	assert_ptr_equal(p.msgs[2], a);
	assert_string_equal(a->label, "model-one");
	chat_msg_set_label(a, NULL);
	assert_null(a->label);
	p.first_shown = 2;
	chat_pane_insert(&p, 0, CHAT_NOTICE, "first");
	assert_int_equal(p.first_shown, 3); /* what /clear hid stays hidden */
	assert_int_equal(chat_pane_index(&p, NULL), p.n_msgs);
	chat_pane_release(&p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_layout_message),
		cmocka_unit_test(test_follow_and_scroll),
		cmocka_unit_test_setup_teardown(test_code_wraps_marked, setup, NULL),
		cmocka_unit_test(test_insert_and_labels),
		cmocka_unit_test(test_remove_and_last),
		cmocka_unit_test(test_mark),
		cmocka_unit_test(test_thinking),
	};
	return cmocka_run_group_tests(tests, setup, NULL);
}
