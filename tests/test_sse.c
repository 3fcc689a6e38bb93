/* sse: the same events whatever the split of the bytes; line ends, comments, BOM, limits. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "report.h"
#include "sse.h"
#include "strbuf.h"

/* Every event as "name|data\n" (data's LFs as '/'). */
static int collect(void *ud, const char *event, const char *data, size_t len)
{
	struct strbuf *out = ud;
	strbuf_addf(out, "%s|", event);
	for (size_t i = 0; i < len; i++)
		strbuf_addch(out, data[i] == '\n' ? '/' : data[i]);
	strbuf_addch(out, '\n');
	return 0;
}

/* Parse s in pieces cut at the given offsets (sorted; n_cuts of them). */
static void parse_cut(const char *s, size_t n, const size_t *cuts, int n_cuts, struct strbuf *out)
{
	struct sse_parser p;
	sse_init(&p, collect, out);
	size_t at = 0;
	for (int i = 0; i <= n_cuts; i++) {
		size_t end = i < n_cuts ? cuts[i] : n;
		assert_int_equal(sse_feed(&p, s + at, end - at), 0);
		at = end;
	}
	assert_int_equal(sse_finish(&p), 0);
	sse_free(&p);
}

static void parse_whole(const char *s, struct strbuf *out)
{
	parse_cut(s, strlen(s), NULL, 0, out);
}

static void test_basic_fields(void **state)
{
	struct strbuf out = STRBUF_INIT;
	parse_whole(": comment\n"
		    "data: one\n\n"
		    "event: error\ndata: {\"a\":1}\n\n"
		    "data:two\ndata:  three\n\n" /* one space dropped, the second kept */
		    "id: 7\nretry: 100\n\n"      /* no data: not dispatched */
		    "data\n\n"                   /* a field without a colon: empty data */
		    "data: [DONE]\n\n",
		    &out);
	assert_string_equal(out.buf, "message|one\n"
				     "error|{\"a\":1}\n"
				     "message|two/ three\n"
				     "message|\n"
				     "message|[DONE]\n");
	strbuf_release(&out);
}

static void test_line_ends(void **state)
{
	const char *const forms[] = {
		"data: a\n\ndata: b\n\n",
		"data: a\r\n\r\ndata: b\r\n\r\n",
		"data: a\r\rdata: b\r\r",
		"data: a\r\n\ndata: b\n\r\n",
	};
	for (size_t f = 0; f < sizeof(forms) / sizeof(forms[0]); f++) {
		struct strbuf out = STRBUF_INIT;
		parse_whole(forms[f], &out);
		assert_string_equal(out.buf, "message|a\nmessage|b\n");
		strbuf_release(&out);
	}
}

static void test_bom_and_legacy_error(void **state)
{
	struct strbuf out = STRBUF_INIT;
	parse_whole("\xef\xbb\xbf"
		    "data: x\n\n"
		    "error: {\"code\":500}\n\n",
		    &out);
	assert_string_equal(out.buf, "message|x\nerror|{\"code\":500}\n");
	strbuf_reset(&out);
	/* a BOM-like start that is not one is text */
	parse_whole("\xef\xbb"
		    "x: y\n\ndata: z\n\n",
		    &out);
	assert_string_equal(out.buf, "message|z\n");
	strbuf_release(&out);
}

static void test_finish(void **state)
{
	struct strbuf out = STRBUF_INIT;
	/* complete lines without their blank line: the server meant them */
	parse_whole("data: a\n", &out);
	assert_string_equal(out.buf, "message|a\n");
	strbuf_reset(&out);
	/* a line cut short is dropped */
	parse_whole("data: a\n\ndata: {\"cho", &out);
	assert_string_equal(out.buf, "message|a\n");
	strbuf_release(&out);
}

/* The bytes of a recorded stream in every two-piece split, and one byte
 * at a time, give the events of the whole. */
static void check_splits(const char *path)
{
	struct strbuf file = STRBUF_INIT, whole = STRBUF_INIT;
	assert_int_equal(strbuf_read_file(&file, path, (size_t)1 << 30), 0);
	assert_true(file.len > 100);
	parse_cut(file.buf, file.len, NULL, 0, &whole);
	assert_true(whole.len > 0);
	for (size_t cut = 1; cut < file.len; cut++) {
		struct strbuf out = STRBUF_INIT;
		parse_cut(file.buf, file.len, &cut, 1, &out);
		if (strcmp(out.buf, whole.buf))
			fail_msg("%s cut at byte %zu parses differently", path, cut);
		strbuf_release(&out);
	}
	size_t *cuts = malloc(sizeof(size_t) * file.len);
	for (size_t i = 0; i + 1 < file.len; i++)
		cuts[i] = i + 1;
	struct strbuf out = STRBUF_INIT;
	parse_cut(file.buf, file.len, cuts, (int)file.len - 1, &out);
	assert_string_equal(out.buf, whole.buf);
	strbuf_release(&out);
	free(cuts);

	/* the same with CRLF line ends, where a cut between CR and LF matters */
	struct strbuf crlf = STRBUF_INIT;
	for (size_t i = 0; i < file.len; i++) {
		if (file.buf[i] == '\n')
			strbuf_addch(&crlf, '\r');
		strbuf_addch(&crlf, file.buf[i]);
	}
	for (size_t cut = 1; cut < crlf.len; cut++) {
		struct strbuf o = STRBUF_INIT;
		parse_cut(crlf.buf, crlf.len, &cut, 1, &o);
		if (strcmp(o.buf, whole.buf))
			fail_msg("%s with CRLF cut at byte %zu parses differently", path, cut);
		strbuf_release(&o);
	}
	strbuf_release(&crlf);
	strbuf_release(&file);
	strbuf_release(&whole);
}

static void test_every_split(void **state)
{
	check_splits("tests/remote/streams/llama.sse");
	check_splits("tests/remote/streams/ollama.sse");
	check_splits("tests/remote/streams/vllm.sse");
}

static void test_limits(void **state)
{
	struct strbuf out = STRBUF_INIT;
	struct sse_parser p;
	char *big = malloc(SSE_MAX_LINE + 10);
	memset(big, 'x', SSE_MAX_LINE + 10);

	/* one line longer than the limit, fed in pieces */
	sse_init(&p, collect, &out);
	assert_int_equal(sse_feed(&p, "data: ", 6), 0);
	int rc = 0;
	for (size_t at = 0; at < SSE_MAX_LINE + 10 && !rc; at += 4096) {
		size_t k = SSE_MAX_LINE + 10 - at < 4096 ? SSE_MAX_LINE + 10 - at : 4096;
		rc = sse_feed(&p, big + at, k);
	}
	assert_int_equal(rc, -1);
	assert_non_null(strstr(error_message(), "line is longer"));
	error_clear();
	sse_free(&p);

	/* unknown fields: ignored, but not a megabyte of them */
	sse_init(&p, collect, &out);
	rc = 0;
	for (int i = 0; i < 100000 && !rc; i++)
		rc = sse_feed(&p, "garbage: 0123456789abcdef\n", 26);
	assert_int_equal(rc, -1);
	assert_non_null(strstr(error_message(), "without an event"));
	error_clear();
	sse_free(&p);

	/* comments are life, not junk */
	sse_init(&p, collect, &out);
	for (int i = 0; i < 100000; i++)
		assert_int_equal(sse_feed(&p, ": keep-alive 0123456789\n\n", 25), 0);
	assert_int_equal(p.comments, 100000);
	sse_free(&p);
	assert_int_equal(out.len, 0);
	free(big);
	strbuf_release(&out);
}

static int stop_at_second(void *ud, const char *event, const char *data, size_t len)
{
	int *n = ud;
	return ++*n == 2 ? 7 : 0;
}

static void test_callback_stops(void **state)
{
	struct sse_parser p;
	int n = 0;
	sse_init(&p, stop_at_second, &n);
	assert_int_equal(sse_feed(&p, "data: a\n\ndata: b\n\ndata: c\n\n", 27), 7);
	assert_int_equal(n, 2);
	sse_free(&p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_basic_fields),    cmocka_unit_test(test_line_ends),
		cmocka_unit_test(test_bom_and_legacy_error), cmocka_unit_test(test_finish),
		cmocka_unit_test(test_every_split),     cmocka_unit_test(test_limits),
		cmocka_unit_test(test_callback_stops),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
