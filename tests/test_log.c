/* log: levels, lazy argument evaluation, thread safety, file and directory creation. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "report.h"
#include "strbuf.h"

static char tmpdir[64];
static char logpath[256];

static int setup(void **state)
{
	(void)state;
	strcpy(tmpdir, "/tmp/palaver-test-log-XXXXXX");
	assert_non_null(mkdtemp(tmpdir));
	snprintf(logpath, sizeof(logpath), "%s/a/b/test.log", tmpdir);
	return 0;
}

static int teardown(void **state)
{
	char cmd[128];
	(void)state;
	log_close();
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	assert_int_equal(system(cmd), 0);
	return 0;
}

static void read_log(struct strbuf *sb)
{
	strbuf_reset(sb);
	assert_int_equal(strbuf_read_file(sb, logpath, (size_t)1 << 30), 0);
}

static int count_lines(const struct strbuf *sb)
{
	int n = 0;
	for (size_t i = 0; i < sb->len; i++)
		n += sb->buf[i] == '\n';
	return n;
}

static void test_level_names(void **state)
{
	(void)state;
	assert_int_equal(log_level_parse("trace"), LOG_TRACE);
	assert_int_equal(log_level_parse("debug"), LOG_DEBUG);
	assert_int_equal(log_level_parse("info"), LOG_INFO);
	assert_int_equal(log_level_parse("warn"), LOG_WARN);
	assert_int_equal(log_level_parse("warning"), LOG_WARN);
	assert_int_equal(log_level_parse("error"), LOG_ERROR);
	assert_int_equal(log_level_parse("off"), LOG_OFF);
	assert_int_equal(log_level_parse("loud"), -1);
	for (int l = LOG_TRACE; l <= LOG_OFF; l++)
		assert_int_equal(log_level_parse(log_level_name(l)), l);
}

/* log_open creates the missing directories and the file, and appends. */
static void test_file_creation(void **state)
{
	struct strbuf sb = STRBUF_INIT;
	struct stat st;
	char dir[256];
	(void)state;
	assert_int_equal(log_open(logpath, LOG_INFO), 0);
	assert_string_equal(log_path(), logpath);
	snprintf(dir, sizeof(dir), "%s/a/b", tmpdir);
	assert_int_equal(stat(dir, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
	log_info("hello %d", 42);
	log_close();
	assert_null(log_path());
	read_log(&sb);
	assert_non_null(strstr(sb.buf, " info  test_log.c:"));
	assert_non_null(strstr(sb.buf, ": hello 42\n"));
	/* a second open appends */
	assert_int_equal(log_open(logpath, LOG_INFO), 0);
	log_error("second");
	log_close();
	read_log(&sb);
	assert_int_equal(count_lines(&sb), 2);
	/* after close nothing is written and nothing crashes */
	log_error("after close");
	read_log(&sb);
	assert_int_equal(count_lines(&sb), 2);
	strbuf_release(&sb);
}

/* NULL picks $XDG_STATE_HOME/palaver/palaver.log. */
static void test_default_path(void **state)
{
	char want[256];
	(void)state;
	setenv("XDG_STATE_HOME", tmpdir, 1);
	assert_int_equal(log_open(NULL, LOG_INFO), 0);
	snprintf(want, sizeof(want), "%s/palaver/palaver.log", tmpdir);
	assert_string_equal(log_path(), want);
	assert_int_equal(access(want, W_OK), 0);
	log_close();
	unsetenv("XDG_STATE_HOME");
}

static void test_open_failure(void **state)
{
	char bad[300];
	FILE *fp;
	(void)state;
	/* a regular file where a directory should be */
	snprintf(bad, sizeof(bad), "%s/file", tmpdir);
	fp = fopen(bad, "w");
	assert_non_null(fp);
	fclose(fp);
	snprintf(bad, sizeof(bad), "%s/file/x.log", tmpdir);
	assert_int_equal(log_open(bad, LOG_INFO), -1);
	assert_non_null(strstr(error_message(), "cannot open log file"));
	assert_null(log_path());
}

static void test_levels_filter(void **state)
{
	struct strbuf sb = STRBUF_INIT;
	(void)state;
	assert_int_equal(log_open(logpath, LOG_WARN), 0);
	log_trace("t");
	log_debug("d");
	log_info("i");
	log_warn("w");
	log_error("e");
	log_set_level(LOG_TRACE);
	log_trace("t2");
	log_set_level(LOG_OFF);
	log_error("never");
	log_close();
	read_log(&sb);
	assert_int_equal(count_lines(&sb), 3);
	assert_non_null(strstr(sb.buf, " warn  "));
	assert_non_null(strstr(sb.buf, " error "));
	assert_non_null(strstr(sb.buf, ": t2\n"));
	assert_null(strstr(sb.buf, ": i\n"));
	assert_null(strstr(sb.buf, "never"));
	strbuf_release(&sb);
}

static int evaluated;

static int side_effect(void)
{
	return ++evaluated;
}

/* A disabled level does not evaluate its arguments (they may be costly). */
static void test_lazy_arguments(void **state)
{
	struct strbuf sb = STRBUF_INIT;
	int counter = 0;
	(void)state;
	assert_int_equal(log_open(logpath, LOG_INFO), 0);
	evaluated = 0;
	log_debug("%d %d", counter++, side_effect());
	log_trace("%d", counter++);
	assert_int_equal(counter, 0);
	assert_int_equal(evaluated, 0);
	log_info("%d %d", counter++, side_effect());
	assert_int_equal(counter, 1);
	assert_int_equal(evaluated, 1);
	log_close();
	/* closed: level off, nothing evaluated */
	log_error("%d", counter++);
	assert_int_equal(counter, 1);
	read_log(&sb);
	assert_non_null(strstr(sb.buf, ": 0 1\n"));
	strbuf_release(&sb);
}

#define THREADS 8
#define LINES 400

static void *writer(void *arg)
{
	int id = (int)(intptr_t)arg;
	for (int i = 0; i < LINES; i++)
		log_info("thread %d line %d %s", id, i, "abcdefghijklmnopqrstuvwxyz0123456789");
	return NULL;
}

/* Several threads at once: every line arrives whole, none lost or interleaved. */
static void test_threads(void **state)
{
	struct strbuf sb = STRBUF_INIT;
	pthread_t th[THREADS];
	int seen[THREADS] = { 0 };
	char *line, *save = NULL;
	(void)state;
	assert_int_equal(log_open(logpath, LOG_INFO), 0);
	for (int t = 0; t < THREADS; t++)
		assert_int_equal(pthread_create(&th[t], NULL, writer, (void *)(intptr_t)t), 0);
	for (int t = 0; t < THREADS; t++)
		pthread_join(th[t], NULL);
	log_close();
	read_log(&sb);
	assert_int_equal(count_lines(&sb), THREADS * LINES);
	for (line = strtok_r(sb.buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		int id, n, end = 0;
		const char *msg = strstr(line, ": thread ");
		assert_non_null(msg);
		assert_int_equal(
			sscanf(msg, ": thread %d line %d abcdefghijklmnopqrstuvwxyz0123456789%n",
			       &id, &n, &end),
			2);
		assert_int_equal(msg[end], '\0');
		assert_true(id >= 0 && id < THREADS);
		/* each thread's lines arrive in its own order */
		assert_int_equal(n, seen[id]);
		seen[id]++;
	}
	for (int t = 0; t < THREADS; t++)
		assert_int_equal(seen[t], LINES);
	strbuf_release(&sb);
}

/*
 * The log is capped: past LOG_MAX_BYTES the file becomes FILE.1 (replacing
 * the older copy) and a new one starts, so at most about twice the cap is
 * ever kept, and no line is split between the two.
 */
static void test_rotation(void **state)
{
	(void)state;
	char old[300];
	struct stat st, st1;
	static char line[1000];
	memset(line, 'x', sizeof(line) - 1);
	snprintf(old, sizeof(old), "%s.1", logpath);
	assert_int_equal(log_open(logpath, LOG_INFO), 0);
	int n = (int)(3 * (LOG_MAX_BYTES / sizeof(line))) + 10;
	for (int i = 0; i < n; i++)
		log_info("%d %s", i, line);
	log_close();
	assert_int_equal(stat(logpath, &st), 0);
	assert_int_equal(stat(old, &st1), 0);
	assert_true(st.st_size <= LOG_MAX_BYTES + (off_t)sizeof(line) + 100);
	assert_true(st1.st_size <= LOG_MAX_BYTES + (off_t)sizeof(line) + 100);
	assert_true(st1.st_size >= LOG_MAX_BYTES);
	/* the newest line is last in the current file, whole */
	struct strbuf sb = STRBUF_INIT;
	read_log(&sb);
	char want[32];
	snprintf(want, sizeof(want), " %d x", n - 1);
	assert_non_null(strstr(sb.buf, want));
	assert_true(sb.len && sb.buf[sb.len - 1] == '\n');
	assert_true(sb.buf[0] >= '0' && sb.buf[0] <= '9'); /* starts with a timestamp */
	strbuf_release(&sb);
	/* reopening appends to the current file, and rotates it when full */
	assert_int_equal(log_open(logpath, LOG_INFO), 0);
	log_info("after reopening");
	log_close();
	read_log(&sb);
	assert_non_null(strstr(sb.buf, "after reopening"));
	strbuf_release(&sb);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_level_names),
		cmocka_unit_test_setup_teardown(test_file_creation, setup, teardown),
		cmocka_unit_test_setup_teardown(test_default_path, setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_failure, setup, teardown),
		cmocka_unit_test_setup_teardown(test_levels_filter, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lazy_arguments, setup, teardown),
		cmocka_unit_test_setup_teardown(test_threads, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rotation, setup, teardown),
	};
	return cmocka_run_group_tests_name("log", tests, NULL, NULL);
}
