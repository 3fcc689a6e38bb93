/* strbuf: the invariants of strbuf.h hold after every operation. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <unistd.h>
#include <string.h>
#include <stdlib.h>

#include "strbuf.h"
#include "testutil.h"

static void check_invariants(const struct strbuf *sb)
{
	assert_non_null(sb->buf);
	assert_int_equal(sb->buf[sb->len], '\0');
	if (sb->alloc)
		assert_true(sb->len < sb->alloc);
	else
		assert_int_equal(sb->len, 0);
}

static void test_init_empty(void **state)
{
	struct strbuf sb = STRBUF_INIT;
	(void)state;
	check_invariants(&sb);
	assert_string_equal(sb.buf, "");
	strbuf_release(&sb);
	check_invariants(&sb);
}

static void test_add_and_grow(void **state)
{
	struct strbuf sb = STRBUF_INIT;
	(void)state;
	for (int i = 0; i < 1000; i++) {
		strbuf_addch(&sb, 'a' + i % 26);
		check_invariants(&sb);
	}
	assert_int_equal(sb.len, 1000);
	assert_int_equal(sb.buf[27], 'b');
	strbuf_addstr(&sb, "xyz");
	assert_memory_equal(sb.buf + 1000, "xyz", 4);
	strbuf_release(&sb);
}

static void test_addf_long(void **state)
{
	struct strbuf sb = STRBUF_INIT;
	char big[5000];
	(void)state;
	memset(big, 'q', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	strbuf_addf(&sb, "<%s|%d>", big, 42);
	check_invariants(&sb);
	assert_int_equal(sb.len, 4999 + 5);
	assert_memory_equal(sb.buf + sb.len - 4, "|42>", 4);
	strbuf_release(&sb);
}

static void test_embedded_nul_and_detach(void **state)
{
	struct strbuf sb = STRBUF_INIT;
	size_t len;
	char *s;
	(void)state;
	strbuf_add(&sb, "a\0b", 3);
	check_invariants(&sb);
	assert_int_equal(sb.len, 3);
	s = strbuf_detach(&sb, &len);
	assert_int_equal(len, 3);
	assert_memory_equal(s, "a\0b", 4);
	check_invariants(&sb);
	free(s);
	/* detaching an empty strbuf still hands out a malloc'd "" */
	s = strbuf_detach(&sb, &len);
	assert_int_equal(len, 0);
	assert_string_equal(s, "");
	free(s);
}

static void test_trim(void **state)
{
	struct strbuf sb = STRBUF_INIT;
	(void)state;
	strbuf_addstr(&sb, "  \t hello world \n ");
	strbuf_trim(&sb);
	check_invariants(&sb);
	assert_string_equal(sb.buf, "hello world");
	strbuf_reset(&sb);
	strbuf_addstr(&sb, "   ");
	strbuf_trim(&sb);
	assert_int_equal(sb.len, 0);
	strbuf_release(&sb);
}

static void test_json_escape(void **state)
{
	struct strbuf sb = STRBUF_INIT;
	(void)state;
	strbuf_add_json_escaped(&sb, "a\"b\\c\n\x01", 7);
	assert_string_equal(sb.buf, "a\\\"b\\\\c\\n\\u0001");
	strbuf_release(&sb);

	/* bytes that are not UTF-8 become \ufffd: the text stays valid JSON */
	static const char *const bad[] = {
		"\xff", "\xc0\x80", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xe2\x82", "ok \x9b end",
		"caf\xc3\xa9 \xf0\x9f\x98\x80", "\xf0\x9f\x98",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *why = "";
		strbuf_reset(&sb);
		strbuf_addch(&sb, '"');
		strbuf_add_json_escaped(&sb, bad[i], strlen(bad[i]));
		strbuf_addch(&sb, '"');
		if (test_json_strict(sb.buf, sb.len, &why) < 0)
			fail_msg("case %zu: %s: %s", i, why, sb.buf);
	}
	strbuf_reset(&sb);
	strbuf_add_json_escaped(&sb, "a\xff" "b\xc3\xa9", 5);
	assert_string_equal(sb.buf, "a\\ufffdb\xc3" "\xa9");
	strbuf_release(&sb);
}

/* The whole-file reader stops one byte past its limit (EFBIG, sb as it
 * was) and refuses a larger regular file by its size. */
static void test_read_limit(void **state)
{
	(void)state;
	int fds[2];
	struct strbuf sb = STRBUF_INIT;
	char buf[5000];
	memset(buf, 'z', sizeof(buf));
	for (int extra = 0; extra < 2; extra++) {
		assert_int_equal(pipe(fds), 0);
		assert_int_equal(write(fds[1], buf, 4096 + (size_t)extra), 4096 + extra);
		close(fds[1]);
		strbuf_reset(&sb);
		strbuf_addstr(&sb, "keep");
		errno = 0;
		int r = strbuf_read_fd(&sb, fds[0], 4096);
		close(fds[0]);
		if (extra) {
			assert_int_equal(r, -1);
			assert_int_equal(errno, EFBIG);
			assert_string_equal(sb.buf, "keep");
		} else {
			assert_int_equal(r, 0);
			assert_int_equal(sb.len, 4 + 4096);
		}
	}
	char path[] = "/tmp/palaver-test-strbuf-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, buf, sizeof(buf)), sizeof(buf));
	close(fd);
	strbuf_reset(&sb);
	errno = 0;
	assert_int_equal(strbuf_read_file(&sb, path, 100), -1);
	assert_int_equal(errno, EFBIG);
	assert_int_equal(sb.len, 0);
	char why[64];
	assert_string_equal(strbuf_read_failure(EFBIG, 1 << 20, why, sizeof(why)),
			    "larger than 1.00 MiB");
	assert_int_equal(strbuf_read_file(&sb, path, sizeof(buf)), 0);
	assert_int_equal(sb.len, sizeof(buf));
	unlink(path);
	strbuf_release(&sb);

	/* a failed read into an empty buffer leaves no memory behind (the
	 * callers return at once: perplexity -f DIR lost 8 KiB) */
	struct strbuf fresh = STRBUF_INIT;
	errno = 0;
	assert_int_equal(strbuf_read_file(&fresh, "/", 100), -1);
	assert_int_equal(errno, EISDIR);
	assert_int_equal(fresh.alloc, 0);
	assert_int_equal(fresh.len, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_init_empty),
		cmocka_unit_test(test_add_and_grow),
		cmocka_unit_test(test_addf_long),
		cmocka_unit_test(test_embedded_nul_and_detach),
		cmocka_unit_test(test_trim),
		cmocka_unit_test(test_json_escape),
		cmocka_unit_test(test_read_limit),
	};
	return cmocka_run_group_tests_name("strbuf", tests, NULL, NULL);
}
