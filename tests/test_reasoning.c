/* reasoning: a stub token stream split at every byte position gives the same thinking and answer, markers never shown, text never held longer than a marker could need. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reasoning.h"
#include "strbuf.h"

struct sink {
	struct strbuf thought, answer;
	int parts;
	int answer_before_thought; /* an answer part came, then a thought part */
	int saw_answer;
};

static void take(void *ud, enum reasoning_part part, const char *text, size_t len)
{
	struct sink *k = ud;
	assert_true(len > 0);
	k->parts++;
	if (part == REASONING_ANSWER) {
		k->saw_answer = 1;
		strbuf_add(&k->answer, text, len);
	} else {
		k->answer_before_thought |= k->saw_answer;
		strbuf_add(&k->thought, text, len);
	}
}

struct stream {
	const char *reply;   /* what the model writes */
	int prompt_opened;   /* the prompt ends with <think> */
	const char *thought; /* what comes out */
	const char *answer;
	int harmony; /* gpt-oss's channels: the markers reasoning_markers gives them */
};

static const struct stream streams[] = {
	/* Qwen3: thinks, then answers after blank lines */
	{ "<think>\nLet me see: 2 + 2 = 4.\n</think>\n\nIt is 4.", 0, "Let me see: 2 + 2 = 4.\n",
	  "It is 4.", 0 },
	/* empty thinking (thinking switched off by the model) */
	{ "<think>\n\n</think>\n\nHello!", 0, "", "Hello!", 0 },
	/* DeepSeek-R1: the prompt opened the block */
	{ "\nhmm, prime?\n</think>\n\n91 = 7 x 13", 1, "hmm, prime?\n", "91 = 7 x 13", 0 },
	/* no thinking at all: everything is answer, leading blanks kept */
	{ "  Plain answer with </think> and <think> inside.", 0, "",
	  "  Plain answer with </think> and <think> inside.", 0 },
	/* a marker later in the answer is text */
	{ "<think>a</think>b <think>c</think>", 0, "a", "b <think>c</think>", 0 },
	/* look-alikes of the markers stay text */
	{ "<thinking>not a marker", 0, "", "<thinking>not a marker", 0 },
	{ "<think>x </thin k> y </think>z", 0, "x </thin k> y ", "z", 0 },
	/* never closed: all thinking (cut off by max_tokens) */
	{ "<think>still going <", 0, "still going <", "", 0 },
	/* UTF-8 around the markers */
	{ "<think>é🦜</think>日本", 0, "é🦜", "日本", 0 },
	/* only blanks */
	{ " \n ", 0, "", " \n ", 0 },
	{ "", 0, "", "", 0 },
	/* harmony: analysis, then the final channel behind its header */
	{ "<|channel|>analysis<|message|>2 + 2 = 4.<|end|><|start|>assistant<|channel|>final"
	  "<|message|>It is 4.",
	  0, "2 + 2 = 4.", "It is 4.", 1 },
	/* straight to the final channel (low effort) */
	{ "<|channel|>final<|message|>Just this.", 0, "", "Just this.", 1 },
	/* a preamble on commentary is answer; its <|end|> and the next header are not */
	{ "<|channel|>commentary<|message|>Let me look.<|end|><|start|>assistant<|channel|>"
	  "analysis<|message|>hm<|end|><|start|>assistant<|channel|>final<|message|>Done.",
	  0, "hm", "Let me look.Done.", 1 },
	/* no header: text (an <|end|> in it ends a message; blanks after it dropped) */
	{ "Plain <|end|> here", 0, "", "Plain here", 1 },
	/* analysis never closed (cut off) */
	{ "<|channel|>analysis<|message|>still <|en", 0, "still <|en", "", 1 },
	/* the format's markers in the thinking's look-alikes stay */
	{ "<|channel|>analysis<|message|>a <|channel|> b<|end|>", 0, "a <|channel|> b", "", 1 },
};

static void check(const struct stream *s, const char *const *pieces, size_t n, const char *what)
{
	struct sink k;
	memset(&k, 0, sizeof(k));
	strbuf_init(&k.thought, 0);
	strbuf_init(&k.answer, 0);
	struct reasoning_split rs;
	const char *open = NULL, *close = NULL;
	if (s->harmony)
		reasoning_markers("<|start|><|channel|>", 20, &open, &close);
	reasoning_init(&rs, open, close, s->prompt_opened, take, &k);
	size_t fed = 0;
	for (size_t i = 0; i < n; i++) {
		size_t len = strlen(pieces[i]);
		reasoning_feed(&rs, pieces[i], len);
		fed += len;
		/* nothing is held longer than a marker needs: while thinking,
		 * less than the close marker waits */
		size_t out = k.thought.len + k.answer.len;
		assert_true(out <= fed);
		if (reasoning_thinking(&rs))
			assert_true(rs.held.len < strlen("</think>"));
	}
	reasoning_flush(&rs);
	if (strcmp(k.thought.buf, s->thought) || strcmp(k.answer.buf, s->answer))
		fail_msg("'%s' split %s: thought '%s' answer '%s', want '%s' and '%s'", s->reply,
			 what, k.thought.buf, k.answer.buf, s->thought, s->answer);
	if (!s->harmony) /* harmony may think again after a commentary message */
		assert_int_equal(k.answer_before_thought, 0);
	reasoning_release(&rs);
	strbuf_release(&k.thought);
	strbuf_release(&k.answer);
}

static void test_whole(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(streams) / sizeof(streams[0]); i++) {
		const char *one[] = { streams[i].reply };
		check(&streams[i], one, 1, "in one piece");
	}
}

/* Every cut into two pieces, and every cut into three for the short ones. */
static void test_every_byte(void **state)
{
	(void)state;
	char a[256], b[256], c[256], what[64];
	for (size_t i = 0; i < sizeof(streams) / sizeof(streams[0]); i++) {
		const char *r = streams[i].reply;
		size_t n = strlen(r);
		for (size_t x = 0; x <= n; x++) {
			memcpy(a, r, x);
			a[x] = 0;
			strcpy(b, r + x);
			const char *two[] = { a, b };
			snprintf(what, sizeof(what), "at %zu", x);
			check(&streams[i], two, 2, what);
			for (size_t y = x; y <= n && n <= 64; y++) {
				memcpy(b, r + x, y - x);
				b[y - x] = 0;
				strcpy(c, r + y);
				const char *three[] = { a, b, c };
				snprintf(what, sizeof(what), "at %zu and %zu", x, y);
				check(&streams[i], three, 3, what);
			}
		}
	}
}

/* One byte at a time, as a byte-level tokenizer may stream a marker. */
static void test_bytewise(void **state)
{
	(void)state;
	char bytes[256][2];
	const char *pieces[256];
	for (size_t i = 0; i < sizeof(streams) / sizeof(streams[0]); i++) {
		size_t n = strlen(streams[i].reply);
		for (size_t k = 0; k < n; k++) {
			bytes[k][0] = streams[i].reply[k];
			bytes[k][1] = 0;
			pieces[k] = bytes[k];
		}
		check(&streams[i], pieces, n, "byte by byte");
	}
}

/* Text goes out as soon as it cannot be part of a marker. */
static void test_prompt(void **state)
{
	(void)state;
	struct sink k;
	memset(&k, 0, sizeof(k));
	strbuf_init(&k.thought, 0);
	strbuf_init(&k.answer, 0);
	struct reasoning_split rs;
	reasoning_init(&rs, NULL, NULL, 0, take, &k);
	reasoning_feed(&rs, "<think>abc", 10);
	assert_string_equal(k.thought.buf, "abc");
	assert_int_equal(reasoning_thinking(&rs), 1);
	reasoning_feed(&rs, "def</th", 7);
	assert_string_equal(k.thought.buf, "abcdef");
	reasoning_feed(&rs, "ink>\n\nAns", 9);
	assert_string_equal(k.answer.buf, "Ans");
	assert_int_equal(reasoning_thinking(&rs), 0);
	reasoning_release(&rs);
	strbuf_release(&k.thought);
	strbuf_release(&k.answer);

	/* the template's own markers */
	const char *open, *close;
	const char cmd[] = "{{ '<|START_THINKING|>' }} ... <|END_THINKING|>";
	reasoning_markers(cmd, sizeof(cmd) - 1, &open, &close);
	assert_string_equal(open, "<|START_THINKING|>");
	assert_string_equal(close, "<|END_THINKING|>");
	reasoning_markers("{{ messages }}", 14, &open, &close);
	assert_string_equal(open, "<think>");
	assert_string_equal(close, "</think>");

	/* a prompt ends inside a block when its generation prompt opened one */
	const char *r1 = "<|User|>hi<|Assistant|><think>\n";
	assert_int_equal(reasoning_prompt_opens(r1, strlen(r1), "<think>", "</think>"), 1);
	const char *off = "<|im_start|>assistant\n<think>\n\n</think>\n\n";
	assert_int_equal(reasoning_prompt_opens(off, strlen(off), "<think>", "</think>"), 0);
	const char *typed = "<|im_start|>user\nwhat is <think>?<|im_end|>\n<|im_start|>assistant\n";
	assert_int_equal(reasoning_prompt_opens(typed, strlen(typed), "<think>", "</think>"), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_whole),
		cmocka_unit_test(test_every_byte),
		cmocka_unit_test(test_bytewise),
		cmocka_unit_test(test_prompt),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
