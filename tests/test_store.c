/* history/store: every API call, search quoting, export/import round trip, the JSON reader. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <locale.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "json.h"
#include "report.h"
#include "store.h"
#include "strbuf.h"
#include "testutil.h"

static char tmpdir[64];
static char dbpath[128];

static int setup(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/palaver-store-XXXXXX");
	if (!mkdtemp(tmpdir))
		return -1;
	snprintf(dbpath, sizeof(dbpath), "%s/h.db", tmpdir);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	test_rmtree(tmpdir);
	return 0;
}

static struct store *open_ok(const char *path)
{
	struct store *st = store_open(path);
	if (!st)
		fail_msg("store_open: %s", error_message());
	return st;
}

static void new_session(struct store *st, char id[STORE_ID_SIZE])
{
	struct store_session_params p = { NULL, "tiny.gguf", "be brief", "{\"temperature\": 0.7}" };
	assert_int_equal(store_session_create(st, &p, id), 0);
}

static int64_t db_int(const char *path, const char *sql)
{
	sqlite3 *db;
	sqlite3_stmt *s;
	int64_t v = -1;
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
	if (sqlite3_step(s) == SQLITE_ROW)
		v = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	sqlite3_close(db);
	return v;
}

static void test_open_creates_dirs(void **state)
{
	char path[256];
	struct store *st;
	(void)state;
	snprintf(path, sizeof(path), "%s/a/b/history.db", tmpdir);
	st = open_ok(path);
	assert_string_equal(store_path(st), path);
	store_close(st);
	assert_int_equal(access(path, F_OK), 0);
	assert_int_equal(db_int(path, "PRAGMA user_version"), STORE_SCHEMA_VERSION);
	assert_int_equal(db_int(path, "SELECT count(*) FROM sqlite_master WHERE name = 'messages_fts'"), 1);
	/* WAL is a property of the file */
	{
		sqlite3 *db;
		sqlite3_stmt *s;
		assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
		sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &s, NULL);
		assert_int_equal(sqlite3_step(s), SQLITE_ROW);
		assert_string_equal((const char *)sqlite3_column_text(s, 0), "wal");
		sqlite3_finalize(s);
		sqlite3_close(db);
	}
	/* reopening an up-to-date file changes nothing */
	st = open_ok(path);
	store_close(st);
}

static void test_default_path(void **state)
{
	struct strbuf sb = STRBUF_INIT;
	char *old = getenv("XDG_DATA_HOME") ? strdup(getenv("XDG_DATA_HOME")) : NULL;
	struct store *st;
	char want[256];
	(void)state;
	setenv("XDG_DATA_HOME", tmpdir, 1);
	assert_int_equal(store_default_path(&sb), 0);
	snprintf(want, sizeof(want), "%s/palaver/history.db", tmpdir);
	assert_string_equal(sb.buf, want);
	st = open_ok(NULL);
	assert_string_equal(store_path(st), want);
	store_close(st);
	assert_int_equal(access(want, F_OK), 0);
	if (old)
		setenv("XDG_DATA_HOME", old, 1);
	else
		unsetenv("XDG_DATA_HOME");
	free(old);
	strbuf_release(&sb);
}

static void test_session_lifecycle(void **state)
{
	struct store *st = open_ok(dbpath);
	char a[STORE_ID_SIZE], b[STORE_ID_SIZE];
	struct store_session ss, *list;
	size_t n;
	(void)state;
	new_session(st, a);
	assert_int_equal(strlen(a), STORE_ID_LEN);
	assert_int_equal(strspn(a, "0123456789abcdef"), STORE_ID_LEN);
	assert_int_equal(store_session_get(st, a, &ss), 0);
	assert_string_equal(ss.id, a);
	assert_string_equal(ss.title, "");
	assert_int_equal(ss.title_auto, 1);
	assert_string_equal(ss.model, "tiny.gguf");
	assert_string_equal(ss.system_prompt, "be brief");
	assert_string_equal(ss.sampling, "{\"temperature\": 0.7}");
	assert_int_equal(ss.message_count, 0);
	assert_true(ss.created_ms > 1600000000000LL);
	store_session_free(&ss);

	struct store_session_params p = { "  Named\n session ", NULL, NULL, NULL };
	assert_int_equal(store_session_create(st, &p, b), 0);
	assert_string_not_equal(a, b);
	assert_int_equal(store_session_get(st, b, &ss), 0);
	assert_string_equal(ss.title, "Named session");
	assert_int_equal(ss.title_auto, 0);
	assert_null(ss.model);
	store_session_free(&ss);

	/* bad sampling text is refused */
	p.sampling = "{temperature";
	assert_int_equal(store_session_create(st, &p, b), -1);
	assert_non_null(strstr(error_message(), "JSON"));

	/* most recently updated first (times are in milliseconds) */
	usleep(2000);
	assert_true(store_message_append(st, a, "user", "hello", STORE_COMPLETE, NULL) > 0);
	assert_int_equal(store_session_list(st, 0, &list, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(list[0].id, a);
	assert_int_equal(list[0].message_count, 1);
	assert_string_equal(list[0].preview, "hello");
	store_sessions_free(list, n);
	assert_int_equal(store_session_list(st, 1, &list, &n), 0);
	assert_int_equal(n, 1);
	store_sessions_free(list, n);

	assert_int_equal(store_session_rename(st, a, "  New\ttitle\n"), 0);
	assert_int_equal(store_session_get(st, a, &ss), 0);
	assert_string_equal(ss.title, "New title");
	assert_int_equal(ss.title_auto, 0);
	store_session_free(&ss);
	assert_int_equal(store_session_rename(st, a, " \n "), -1);
	assert_int_equal(store_session_rename(st, "00000000", "x"), -1);
	assert_non_null(strstr(error_message(), "no session '00000000'"));

	/* resumed with another model: only the given fields change */
	struct store_session_params change = { NULL, "big.gguf", NULL, "{\"top_k\": 5}" };
	assert_int_equal(store_session_set(st, a, &change), 0);
	assert_int_equal(store_session_get(st, a, &ss), 0);
	assert_string_equal(ss.model, "big.gguf");
	assert_string_equal(ss.system_prompt, "be brief");
	assert_string_equal(ss.sampling, "{\"top_k\": 5}");
	assert_string_equal(ss.title, "New title");
	store_session_free(&ss);
	change.sampling = "[1]";
	assert_int_equal(store_session_set(st, a, &change), -1);
	change.sampling = NULL;
	assert_int_equal(store_session_set(st, "00000000", &change), -1);

	assert_int_equal(store_session_delete(st, a), 0);
	assert_int_equal(store_session_get(st, a, &ss), -1);
	assert_non_null(strstr(error_message(), "no session"));
	assert_int_equal(store_session_delete(st, a), -1);
	assert_int_equal(store_session_list(st, 0, &list, &n), 0);
	assert_int_equal(n, 1);
	store_sessions_free(list, n);
	store_close(st);
	/* its messages went with it, FTS rows included */
	assert_int_equal(db_int(dbpath, "SELECT count(*) FROM messages"), 0);
	assert_int_equal(db_int(dbpath, "SELECT count(*) FROM messages_fts WHERE messages_fts MATCH 'hello'"), 0);
}

static void test_auto_title(void **state)
{
	struct store *st = open_ok(dbpath);
	char id[STORE_ID_SIZE];
	struct store_session ss;
	(void)state;
	new_session(st, id);
	assert_true(store_message_append(st, id, "system", "sys", STORE_COMPLETE, NULL) > 0);
	assert_true(store_message_append(st, id, "user", "   \n ", STORE_COMPLETE, NULL) > 0);
	assert_true(store_message_append(st, id, "user",
					    "  What is the capital of France and why is it that city,"
					    " historically speaking?\nSecond line",
					    STORE_COMPLETE, NULL) > 0);
	assert_int_equal(store_session_get(st, id, &ss), 0);
	assert_string_equal(ss.title, "What is the capital of France and why is it that city,…");
	assert_true(strlen(ss.title) <= STORE_TITLE_MAX + 3);
	store_session_free(&ss);
	/* later user messages leave it */
	assert_true(store_message_append(st, id, "user", "other", STORE_COMPLETE, NULL) > 0);
	assert_int_equal(store_session_get(st, id, &ss), 0);
	assert_non_null(strstr(ss.title, "capital"));
	store_session_free(&ss);

	/* non-ASCII is cut at a character, never inside one */
	char id2[STORE_ID_SIZE];
	struct strbuf long_word = STRBUF_INIT;
	new_session(st, id2);
	for (int i = 0; i < 100; i++)
		strbuf_addstr(&long_word, "é");
	assert_true(store_message_append(st, id2, "user", long_word.buf, STORE_COMPLETE, NULL) > 0);
	assert_int_equal(store_session_get(st, id2, &ss), 0);
	assert_int_equal(strlen(ss.title), 2 * STORE_TITLE_MAX + strlen("…"));
	store_session_free(&ss);
	strbuf_release(&long_word);
	store_close(st);
}

static void test_append_load(void **state)
{
	struct store *st = open_ok(dbpath);
	char id[STORE_ID_SIZE];
	struct store_message *m;
	struct store_stats stats = { 12, 34, 5.5, 67.25 };
	size_t n;
	int64_t m1, m2;
	(void)state;
	new_session(st, id);
	m1 = store_message_append(st, id, "user", "first", STORE_COMPLETE, NULL);
	m2 = store_message_append(st, id, "assistant", "second\nline", STORE_CANCELLED, &stats);
	assert_true(m1 > 0 && m2 > m1);
	assert_int_equal(store_messages_load(st, id, &m, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(m[0].id, m1);
	assert_int_equal(m[0].seq, 1);
	assert_string_equal(m[0].role, "user");
	assert_string_equal(m[0].content, "first");
	assert_int_equal(m[0].status, STORE_COMPLETE);
	assert_int_equal(m[1].seq, 2);
	assert_string_equal(m[1].content, "second\nline");
	assert_int_equal(m[1].status, STORE_CANCELLED);
	assert_int_equal(m[1].stats.prompt_tokens, 12);
	assert_int_equal(m[1].stats.gen_tokens, 34);
	assert_true(m[1].stats.prefill_ms == 5.5 && m[1].stats.gen_ms == 67.25);
	store_messages_free(m, n);

	assert_int_equal(store_message_append(st, "deadbeef", "user", "x", STORE_COMPLETE, NULL), -1);
	assert_non_null(strstr(error_message(), "no session 'deadbeef'"));
	assert_int_equal(store_message_append(st, id, "", "x", STORE_COMPLETE, NULL), -1);
	assert_int_equal(store_messages_load(st, "deadbeef", &m, &n), -1);
	assert_int_equal(store_status_parse("interrupted"), STORE_INTERRUPTED);
	assert_int_equal(store_status_parse("nope"), -1);
	assert_string_equal(store_status_name(STORE_ERROR), "error");
	store_close(st);
}

static void test_streaming(void **state)
{
	struct store *st = open_ok(dbpath);
	char id[STORE_ID_SIZE];
	struct store_message *m;
	struct store_session ss;
	struct store_stats stats = { 3, 4, 1.0, 2.0 };
	size_t n;
	int64_t mid;
	(void)state;
	new_session(st, id);
	assert_true(store_message_append(st, id, "user", "tell me", STORE_COMPLETE, NULL) > 0);
	mid = store_message_begin(st, id, "assistant");
	assert_true(mid > 0);
	assert_int_equal(store_messages_load(st, id, &m, &n), 0);
	assert_int_equal(m[1].status, STORE_STREAMING);
	assert_string_equal(m[1].content, "");
	store_messages_free(m, n);
	assert_int_equal(store_message_update(st, mid, "Once upon", 9), 0);
	assert_int_equal(store_session_get(st, id, &ss), 0);
	assert_string_equal(ss.preview, "Once upon");
	store_session_free(&ss);
	assert_int_equal(store_message_update(st, mid, "Once upon a time XYZ", 16), 0);
	assert_int_equal(store_message_finish(st, mid, "Once upon a time.", 17, STORE_COMPLETE, &stats), 0);
	assert_int_equal(store_messages_load(st, id, &m, &n), 0);
	assert_int_equal(m[1].status, STORE_COMPLETE);
	assert_string_equal(m[1].content, "Once upon a time.");
	assert_int_equal(m[1].stats.gen_tokens, 4);
	/* which backend and model wrote it: not recorded yet */
	assert_null(m[1].backend);
	assert_null(m[1].model);
	store_messages_free(m, n);
	assert_int_equal(store_message_set_model(st, mid, "remote",
						 "http://127.0.0.1:8080/v1#qwen2.5:7b"),
			 0);
	assert_int_equal(store_messages_load(st, id, &m, &n), 0);
	assert_string_equal(m[1].backend, "remote");
	assert_string_equal(m[1].model, "http://127.0.0.1:8080/v1#qwen2.5:7b");
	assert_null(m[0].model);
	store_messages_free(m, n);
	assert_int_equal(store_message_set_model(st, 999999, "cpu", "x.gguf"), -1);
	error_clear();
	assert_int_equal(store_message_update(st, 999999, "x", 1), -1);
	assert_non_null(strstr(error_message(), "no message"));
	/* the FTS index follows updates */
	struct store_hit *h;
	assert_int_equal(store_search(st, "upon", 0, NULL, NULL, &h, &n), 0);
	assert_int_equal(n, 1);
	store_hits_free(h, n);
	assert_int_equal(store_search(st, "XYZ", 0, NULL, NULL, &h, &n), 0);
	assert_int_equal(n, 0);
	store_close(st);
}

static void test_interrupted_on_reopen(void **state)
{
	struct store *st = open_ok(dbpath);
	char id[STORE_ID_SIZE];
	struct store_message *m;
	size_t n;
	pid_t pid;
	int status;
	int64_t own;
	(void)state;
	new_session(st, id);
	/* our own streaming row: we are alive, reopening leaves it */
	own = store_message_begin(st, id, "assistant");
	assert_int_equal(store_message_update(st, own, "mine", 4), 0);
	store_close(st);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct store *c = store_open(dbpath);
		int64_t mid = c ? store_message_begin(c, id, "assistant") : -1;
		if (mid < 0 || store_message_update(c, mid, "partial text", 12) < 0)
			_exit(1);
		_exit(0); /* dies without finishing */
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	st = open_ok(dbpath);
	assert_int_equal(store_messages_load(st, id, &m, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(m[0].status, STORE_STREAMING);
	assert_string_equal(m[0].content, "mine");
	assert_int_equal(m[1].status, STORE_INTERRUPTED);
	assert_string_equal(m[1].content, "partial text");
	store_messages_free(m, n);
	store_close(st);

	/* another live palaver's streaming row is left alone */
	int ready[2], go[2];
	char c = 0;
	assert_int_equal(pipe(ready), 0);
	assert_int_equal(pipe(go), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct store *cs = store_open(dbpath);
		int64_t mid = cs ? store_message_begin(cs, id, "assistant") : -1;
		if (mid < 0 || store_message_update(cs, mid, "live", 4) < 0)
			_exit(1);
		if (write(ready[1], "r", 1) != 1 || read(go[0], &c, 1) != 1)
			_exit(2);
		if (store_message_finish(cs, mid, "live and done", 13, STORE_COMPLETE, NULL) < 0)
			_exit(3);
		store_close(cs);
		_exit(0);
	}
	assert_int_equal(read(ready[0], &c, 1), 1);
	st = open_ok(dbpath);
	assert_int_equal(store_messages_load(st, id, &m, &n), 0);
	assert_int_equal(n, 3);
	assert_int_equal(m[2].status, STORE_STREAMING);
	assert_string_equal(m[2].content, "live");
	store_messages_free(m, n);
	assert_int_equal(write(go[1], "g", 1), 1);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_int_equal(store_messages_load(st, id, &m, &n), 0);
	assert_int_equal(m[2].status, STORE_COMPLETE);
	assert_string_equal(m[2].content, "live and done");
	store_messages_free(m, n);
	store_close(st);
	close(ready[0]);
	close(ready[1]);
	close(go[0]);
	close(go[1]);
}

static void test_resolve(void **state)
{
	struct store *st = open_ok(dbpath);
	char a[STORE_ID_SIZE], b[STORE_ID_SIZE], c[STORE_ID_SIZE], got[STORE_ID_SIZE];
	struct store_session_params pa = { "Rust lifetimes", NULL, NULL, NULL };
	struct store_session_params pb = { "Rust macros", NULL, NULL, NULL };
	struct store_session_params pc = { "Cooking rice", NULL, NULL, NULL };
	(void)state;
	assert_int_equal(store_session_create(st, &pa, a), 0);
	assert_int_equal(store_session_create(st, &pb, b), 0);
	assert_int_equal(store_session_create(st, &pc, c), 0);
	assert_int_equal(store_session_resolve(st, a, got), 0);
	assert_string_equal(got, a);
	assert_int_equal(store_session_resolve(st, "cook", got), 0);
	assert_string_equal(got, c);
	assert_int_equal(store_session_resolve(st, "Rust m", got), 0);
	assert_string_equal(got, b);
	assert_int_equal(store_session_resolve(st, "rust", got), -1);
	assert_non_null(strstr(error_message(), "matches 2 sessions"));
	assert_non_null(strstr(error_message(), a));
	assert_non_null(strstr(error_message(), "Rust macros"));
	assert_int_equal(store_session_resolve(st, "nothing like it", got), -1);
	assert_non_null(strstr(error_message(), "no session matches"));
	assert_int_equal(store_session_resolve(st, "", got), -1);
	{
		char pre[5];
		memcpy(pre, c, 4);
		pre[4] = '\0';
		/* a 4-digit id prefix works unless another id or title shares it */
		int r = store_session_resolve(st, pre, got);
		if (r == 0)
			assert_string_equal(got, c);
	}
	store_close(st);
}

static void test_search(void **state)
{
	struct store *st = open_ok(dbpath);
	char a[STORE_ID_SIZE], b[STORE_ID_SIZE];
	struct store_hit *h;
	size_t n;
	(void)state;
	new_session(st, a);
	new_session(st, b);
	store_message_append(st, a, "user", "Tell me more about the moon", STORE_COMPLETE, NULL);
	store_message_append(st, a, "assistant", "The moon orbits the earth. The moon is dry.",
			     STORE_COMPLETE, NULL);
	store_message_append(st, b, "user", "Un café crème, s'il vous plaît — naïve 日本語 (x) \"q\"",
			     STORE_COMPLETE, NULL);
	store_message_append(st, b, "assistant", "moonlight and stars* here", STORE_COMPLETE, NULL);

	assert_int_equal(store_search(st, "moon", 0, "<", ">", &h, &n), 0);
	assert_int_equal(n, 2);
	/* the denser match ranks first */
	assert_int_equal(h[0].seq, 2);
	assert_string_equal(h[0].session_id, a);
	assert_string_equal(h[0].role, "assistant");
	assert_non_null(strstr(h[0].snippet, "<moon>"));
	assert_true(h[0].rank <= h[1].rank);
	assert_non_null(h[0].title);
	store_hits_free(h, n);

	assert_int_equal(store_search(st, "moon*", 0, NULL, NULL, &h, &n), 0);
	assert_int_equal(n, 3);
	assert_non_null(strstr(h[0].snippet, "[") );
	store_hits_free(h, n);

	assert_int_equal(store_search(st, "moon earth", 0, NULL, NULL, &h, &n), 0);
	assert_int_equal(n, 1);
	store_hits_free(h, n);

	/* diacritics fold; non-ASCII words match */
	assert_int_equal(store_search(st, "cafe", 0, NULL, NULL, &h, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(h[0].session_id, b);
	store_hits_free(h, n);
	assert_int_equal(store_search(st, "naïve", 0, NULL, NULL, &h, &n), 0);
	assert_int_equal(n, 1);
	store_hits_free(h, n);
	assert_int_equal(store_search(st, "日本語", 0, NULL, NULL, &h, &n), 0);
	assert_int_equal(n, 1);
	store_hits_free(h, n);

	/* FTS syntax in the query is text, never an error */
	static const char *const hostile[] = {
		"\"", "\"\"", "\"moon", "moon\"", "mo\"on", "*", "**", "*moon", "(", ")", "(moon",
		"moon)", "(x)", "AND", "OR", "NOT", "moon OR", "NOT moon", "moon AND NOT",
		"NEAR(moon earth)", "content:moon", "-moon", "^moon", "+", ":", "{moon}",
		"'", "s'il", "—", "\xe2\x80", "\xff\xfe", "🙂", "", "   ", "\t\n", "a*b*",
	};
	for (size_t i = 0; i < sizeof(hostile) / sizeof(hostile[0]); i++) {
		error_clear();
		if (store_search(st, hostile[i], 0, NULL, NULL, &h, &n) != 0)
			fail_msg("query '%s': %s", hostile[i], error_message());
		store_hits_free(h, n);
	}
	/* ...and finds what it says */
	assert_int_equal(store_search(st, "(moon", 0, NULL, NULL, &h, &n), 0);
	assert_int_equal(n, 2);
	store_hits_free(h, n);
	assert_int_equal(store_search(st, "\"q\"", 0, NULL, NULL, &h, &n), 0);
	assert_int_equal(n, 1);
	store_hits_free(h, n);
	assert_int_equal(store_search(st, "NOT moon", 0, NULL, NULL, &h, &n), 0);
	assert_int_equal(n, 0); /* "not" occurs nowhere */
	store_hits_free(h, n);
	assert_int_equal(store_search(st, "", 0, NULL, NULL, &h, &n), 0);
	assert_int_equal(n, 0);
	assert_null(h);
	assert_int_equal(store_search(st, "moon", 1, NULL, NULL, &h, &n), 0);
	assert_int_equal(n, 1);
	store_hits_free(h, n);
	store_close(st);
}

/* Messages with bytes that are not UTF-8 (piped input, a model's partial
 * character) still export as valid JSON (invalid bytes as U+FFFD), which
 * imports again. */
static void test_export_invalid_utf8(void **state)
{
	struct store *st = open_ok(dbpath);
	char id[STORE_ID_SIZE], id2[STORE_ID_SIZE];
	struct strbuf js = STRBUF_INIT;
	const char *why = "";
	(void)state;
	new_session(st, id);
	store_message_append(st, id, "user", "bad \xff\xfe bytes \xc0\x80 and \xed\xa0\x80",
			     STORE_COMPLETE, NULL);
	store_message_append(st, id, "assistant", "half a char \xe2\x82", STORE_COMPLETE, NULL);
	assert_int_equal(store_export(st, id, STORE_FORMAT_JSON, &js), 0);
	if (test_json_strict(js.buf, js.len, &why) < 0)
		fail_msg("export: %s: %s", why, js.buf);
	assert_non_null(strstr(js.buf, "bad \\ufffd\\ufffd bytes"));
	assert_int_equal(store_import(st, js.buf, js.len, id2), 0);
	/* an imported sampling object is kept as written: its bytes too
	 * (fuzz_import found it) */
	static const char bad_sampling[] =
		"{\"format\": \"palaver-session\", \"version\": 1, \"sampling\": "
		"{\"tempe\xcbure\": 0.8, \"x\": \"\xff\"}, \"messages\": []}";
	char id3[STORE_ID_SIZE];
	assert_int_equal(store_import(st, bad_sampling, sizeof(bad_sampling) - 1, id3), 0);
	strbuf_reset(&js);
	assert_int_equal(store_export(st, id3, STORE_FORMAT_JSON, &js), 0);
	if (test_json_strict(js.buf, js.len, &why) < 0)
		fail_msg("export of an imported sampling object: %s: %s", why, js.buf);
	/* numbers no integer holds are refused, not cast (undefined behaviour:
	 * fuzz_import found it under UBSan) */
	static const char *const bad_numbers[] = {
		"{\"format\": \"palaver-session\", \"version\": 1, \"created_ms\": -1e300, "
		"\"messages\": []}",
		"{\"format\": \"palaver-session\", \"version\": 1, \"messages\": [{\"role\": "
		"\"user\", \"content\": \"x\", \"gen_tokens\": 1e12}]}",
	};
	for (size_t i = 0; i < 2; i++) {
		error_clear();
		assert_int_equal(store_import(st, bad_numbers[i], strlen(bad_numbers[i]), id3), -1);
		assert_non_null(strstr(error_message(), "must be"));
	}
	strbuf_release(&js);
	store_close(st);
}

static void test_export_import(void **state)
{
	struct store *st = open_ok(dbpath);
	char id[STORE_ID_SIZE], id2[STORE_ID_SIZE], id3[STORE_ID_SIZE];
	struct strbuf md = STRBUF_INIT, js = STRBUF_INIT, js2 = STRBUF_INIT, js3 = STRBUF_INIT;
	struct store_stats stats = { 10, 20, 3.25, 400.5 };
	char other[256];
	struct store *st2;
	int64_t mid;
	(void)state;
	new_session(st, id);
	store_message_append(st, id, "user", "Hello \"there\"\n\ttab ✓ \x01", STORE_COMPLETE, NULL);
	store_message_append(st, id, "assistant", "General Kenobi", STORE_COMPLETE, &stats);
	store_message_append(st, id, "user", "Tell me more", STORE_COMPLETE, NULL);
	mid = store_message_begin(st, id, "assistant");
	store_message_finish(st, mid, "I was cut", 9, STORE_CANCELLED, NULL);

	assert_int_equal(store_export(st, id, STORE_FORMAT_MARKDOWN, &md), 0);
	assert_non_null(strstr(md.buf, "# Hello \"there\" tab ✓"));
	assert_non_null(strstr(md.buf, "## User\n\nHello"));
	assert_non_null(strstr(md.buf, "## Assistant\n\nGeneral Kenobi\n"));
	assert_non_null(strstr(md.buf, "## Assistant (cancelled)\n\nI was cut\n"));
	assert_non_null(strstr(md.buf, "Tell me more"));
	assert_non_null(strstr(md.buf, "- model: tiny.gguf"));
	assert_non_null(strstr(md.buf, "be brief"));

	assert_int_equal(store_export(st, id, STORE_FORMAT_JSON, &js), 0);
	assert_non_null(strstr(js.buf, "\"format\": \"palaver-session\""));
	assert_non_null(strstr(js.buf, "\"sampling\": {\"temperature\": 0.7}"));

	/* into another database: same id, same export */
	snprintf(other, sizeof(other), "%s/other.db", tmpdir);
	st2 = open_ok(other);
	assert_int_equal(store_import(st2, js.buf, js.len, id2), 0);
	assert_string_equal(id2, id);
	assert_int_equal(store_export(st2, id2, STORE_FORMAT_JSON, &js2), 0);
	assert_string_equal(js2.buf, js.buf);
	store_close(st2);

	/* into the same database: a new id, everything else equal */
	assert_int_equal(store_import(st, js.buf, js.len, id3), 0);
	assert_string_not_equal(id3, id);
	assert_int_equal(store_export(st, id3, STORE_FORMAT_JSON, &js3), 0);
	assert_int_equal(js3.len, js.len);
	{
		char *p = strstr(js3.buf, id3);
		assert_non_null(p);
		memcpy(p, id, STORE_ID_LEN);
		assert_string_equal(js3.buf, js.buf);
	}

	/* a comma decimal locale changes nothing in the JSON */
	if (setlocale(LC_NUMERIC, "de_DE.UTF-8") || setlocale(LC_NUMERIC, "fr_FR.UTF-8")) {
		struct strbuf js4 = STRBUF_INIT;
		assert_int_equal(store_export(st, id, STORE_FORMAT_JSON, &js4), 0);
		assert_string_equal(js4.buf, js.buf);
		assert_int_equal(store_import(st, js4.buf, js4.len, id3), 0);
		assert_int_equal(store_session_delete(st, id3), 0);
		strbuf_release(&js4);
		setlocale(LC_NUMERIC, "C");
	}
	assert_non_null(strstr(js.buf, "\"prefill_ms\": 3.25"));

	/* refused imports change nothing */
	struct store_session *list;
	size_t n, before;
	store_session_list(st, 0, &list, &n);
	store_sessions_free(list, n);
	before = n;
	static const char *const bad[] = {
		"", "{", "[]", "{\"format\": \"other\"}", "{\"format\": \"palaver-session\"}",
		"{\"format\": \"palaver-session\", \"messages\": [{\"role\": \"user\", \"content\": \"a\"},"
		" {\"role\": \"user\", \"content\": \"b\", \"status\": \"weird\"}]}",
		"{\"format\": \"palaver-session\", \"messages\": [{\"role\": \"user\"}]}",
		"{\"format\": \"palaver-session\", \"sampling\": 3, \"messages\": []}",
		"{\"format\": \"palaver-session\", \"messages\": []} x",
		/* hostile values (issue 16): refused, not stored as garbage */
		"{\"format\": \"palaver-session\", \"created_ms\": 1e300, \"messages\": []}",
		"{\"format\": \"palaver-session\", \"updated_ms\": -1e300, \"messages\": []}",
		"{\"format\": \"palaver-session\", \"messages\": [{\"role\": \"user\", \"content\": "
		"\"a\\u0000b\"}]}",
		"{\"format\": \"palaver-session\", \"messages\": [{\"role\": \"x\", \"content\": \"a\"}]}",
		"{\"format\": \"palaver-session\", \"messages\": [{\"role\": \"user\", \"content\": \"a\", "
		"\"gen_tokens\": 1e10}]}",
		"{\"format\": \"palaver-session\", \"messages\": [{\"role\": \"user\", \"content\": \"a\", "
		"\"gen_ms\": -0.5}]}",
		"{\"format\": \"palaver-session\", \"messages\": [{\"role\": \"user\", \"content\": \"a\", "
		"\"created_ms\": 1.5}]}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		error_clear();
		assert_int_equal(store_import(st, bad[i], strlen(bad[i]), id2), -1);
		assert_true(strlen(error_message()) > 0);
	}
	store_session_list(st, 0, &list, &n);
	store_sessions_free(list, n);
	assert_int_equal(n, before);
	assert_int_equal(store_export(st, "00000000", STORE_FORMAT_JSON, &md), -1);

	strbuf_release(&md);
	strbuf_release(&js);
	strbuf_release(&js2);
	strbuf_release(&js3);
	store_close(st);
}

/* A reply's thinking: kept apart, saved while streaming, exported and imported. */
static void test_reasoning(void **state)
{
	struct store *st = open_ok(dbpath);
	char id[STORE_ID_SIZE], id2[STORE_ID_SIZE];
	struct store_message *m;
	size_t n;
	(void)state;
	new_session(st, id);
	store_message_append(st, id, "user", "Is 91 prime?", STORE_COMPLETE, NULL);
	int64_t mid = store_message_begin(st, id, "assistant");
	assert_true(mid > 0);
	/* while streaming: the thinking so far, then the answer */
	assert_int_equal(store_message_set_reasoning(st, mid, "91 = 7 *", 8), 0);
	assert_int_equal(store_message_set_reasoning(st, mid, "91 = 7 * 13.", 12), 0);
	assert_int_equal(store_message_finish(st, mid, "No.", 3, STORE_COMPLETE, NULL), 0);
	int64_t plain = store_message_append(st, id, "assistant", "no thoughts", STORE_COMPLETE, NULL);
	assert_int_equal(store_messages_load(st, id, &m, &n), 0);
	assert_int_equal(n, 3);
	assert_string_equal(m[1].content, "No.");
	assert_string_equal(m[1].reasoning, "91 = 7 * 13.");
	assert_null(m[2].reasoning);
	assert_null(m[0].reasoning);
	store_messages_free(m, n);
	/* the thinking is not the content: search does not find it */
	struct store_hit *h;
	assert_int_equal(store_search(st, "13", 0, NULL, NULL, &h, &n), 0);
	assert_int_equal(n, 0);
	store_hits_free(h, n);

	struct strbuf md = STRBUF_INIT, js = STRBUF_INIT, js2 = STRBUF_INIT;
	assert_int_equal(store_export(st, id, STORE_FORMAT_MARKDOWN, &md), 0);
	assert_non_null(strstr(md.buf, "## Assistant\n\n<details>\n<summary>Thinking</summary>\n\n"
				       "91 = 7 * 13.\n\n</details>\n\nNo.\n"));
	assert_non_null(strstr(md.buf, "## Assistant\n\nno thoughts\n"));
	assert_int_equal(store_export(st, id, STORE_FORMAT_JSON, &js), 0);
	assert_non_null(strstr(js.buf, "\"content\": \"No.\",\n     \"reasoning\": \"91 = 7 * 13.\"}"));
	assert_null(strstr(js.buf, "\"content\": \"no thoughts\",\n     \"reasoning\""));
	/* round trip */
	assert_int_equal(store_session_delete(st, id), 0);
	assert_int_equal(store_import(st, js.buf, js.len, id2), 0);
	assert_int_equal(store_export(st, id2, STORE_FORMAT_JSON, &js2), 0);
	assert_string_equal(js.buf, js2.buf);
	/* clearing */
	assert_int_equal(store_messages_load(st, id2, &m, &n), 0);
	assert_int_equal(store_message_set_reasoning(st, m[1].id, NULL, 0), 0);
	store_messages_free(m, n);
	assert_int_equal(store_messages_load(st, id2, &m, &n), 0);
	assert_null(m[1].reasoning);
	/* /regen's restart: the next writer's reply thinks anew */
	assert_int_equal(store_message_set_reasoning(st, m[1].id, "old thought", 11), 0);
	assert_int_equal(store_message_restart(st, m[1].id), 0);
	int64_t again = m[1].id;
	store_messages_free(m, n);
	assert_int_equal(store_messages_load(st, id2, &m, &n), 0);
	assert_int_equal(m[1].id, again);
	assert_null(m[1].reasoning);
	store_messages_free(m, n);
	/* a reasoning that is not text, or holds a NUL, is refused on import */
	const char *bad = "{\"format\": \"palaver-session\", \"version\": 1, \"messages\": "
			  "[{\"role\": \"assistant\", \"content\": \"x\", \"reasoning\": 5}]}";
	assert_int_equal(store_import(st, bad, strlen(bad), id2), -1);
	assert_non_null(strstr(error_message(), "reasoning"));
	const char *nul = "{\"format\": \"palaver-session\", \"version\": 1, \"messages\": "
			  "[{\"role\": \"assistant\", \"content\": \"x\", \"reasoning\": "
			  "\"a\\u0000b\"}]}";
	assert_int_equal(store_import(st, nul, strlen(nul), id2), -1);
	assert_non_null(strstr(error_message(), "reasoning"));
	(void)plain;
	strbuf_release(&md);
	strbuf_release(&js);
	strbuf_release(&js2);
	store_close(st);
}

/* Each reply records the model that wrote it; /regen's restart clears it
 * for the next writer; exports name it and carry it through an import. */
static void test_message_model(void **state)
{
	struct store *st = open_ok(dbpath);
	char id[STORE_ID_SIZE], id2[STORE_ID_SIZE], other[256], name[64];
	struct strbuf md = STRBUF_INIT, js = STRBUF_INIT, js2 = STRBUF_INIT;
	struct store_stats stats = { 5, 6, 1.0, 12.0 };
	struct store_message *m;
	size_t n;
	(void)state;
	new_session(st, id);
	store_message_append(st, id, "user", "hi", STORE_COMPLETE, NULL);
	int64_t a = store_message_begin(st, id, "assistant");
	assert_int_equal(store_message_set_model(st, a, "cpu", "/m/model-one.gguf"), 0);
	assert_int_equal(store_message_finish(st, a, "first", 5, STORE_COMPLETE, &stats), 0);
	store_message_append(st, id, "user", "again", STORE_COMPLETE, NULL);
	int64_t b = store_message_begin(st, id, "assistant");
	assert_int_equal(store_message_set_model(st, b, "cpu", "/m/model-one.gguf"), 0);
	assert_int_equal(store_message_finish(st, b, "old", 3, STORE_COMPLETE, &stats), 0);
	/* /regen after /model: the row streams again, written by the new model */
	assert_int_equal(store_message_restart(st, b), 0);
	assert_int_equal(store_messages_load(st, id, &m, &n), 0);
	assert_int_equal(m[3].status, STORE_STREAMING);
	assert_string_equal(m[3].content, "");
	assert_int_equal(m[3].stats.gen_tokens, 0);
	assert_null(m[3].model);
	store_messages_free(m, n);
	assert_int_equal(store_message_set_model(st, b, "remote", "http://h:8080#org/two"), 0);
	assert_int_equal(store_message_finish(st, b, "new", 3, STORE_COMPLETE, &stats), 0);
	assert_int_equal(store_message_restart(st, 999999), -1);
	assert_int_equal(store_messages_load(st, id, &m, &n), 0);
	assert_string_equal(m[1].model, "/m/model-one.gguf");
	assert_string_equal(m[3].backend, "remote");
	assert_null(m[0].model);
	store_messages_free(m, n);
	assert_string_equal(store_model_name("/m/model-one.gguf", name, sizeof(name)), "model-one");
	assert_string_equal(store_model_name("http://h:8080#org/two", name, sizeof(name)),
			    "org/two");

	assert_int_equal(store_export(st, id, STORE_FORMAT_MARKDOWN, &md), 0);
	assert_non_null(strstr(md.buf, "## Assistant (model-one)\n\nfirst\n"));
	assert_non_null(strstr(md.buf, "## Assistant (org/two)\n\nnew\n"));
	assert_non_null(strstr(md.buf, "*6 tokens, 500.0 tokens/s*"));
	assert_true(store_stats_tps(&stats) == 500.0);
	assert_int_equal(store_export(st, id, STORE_FORMAT_JSON, &js), 0);
	assert_non_null(strstr(js.buf, "\"role\": \"assistant\", \"backend\": \"remote\", "
				       "\"model\": \"http://h:8080#org/two\""));
	snprintf(other, sizeof(other), "%s/other.db", tmpdir);
	struct store *st2 = open_ok(other);
	assert_int_equal(store_import(st2, js.buf, js.len, id2), 0);
	assert_int_equal(store_export(st2, id2, STORE_FORMAT_JSON, &js2), 0);
	assert_string_equal(js2.buf, js.buf);
	store_close(st2);
	strbuf_release(&md);
	strbuf_release(&js);
	strbuf_release(&js2);
	store_close(st);
}

static void test_transactions(void **state)
{
	struct store *st = open_ok(dbpath);
	char id[STORE_ID_SIZE];
	struct store_session ss;
	(void)state;
	new_session(st, id);
	assert_int_equal(store_transaction_begin(st), 0);
	assert_int_equal(store_transaction_begin(st), -1);
	for (int i = 0; i < 50; i++)
		assert_true(store_message_append(st, id, "user", "bulk", STORE_COMPLETE, NULL) > 0);
	/* a failing call inside keeps the others */
	assert_int_equal(store_message_append(st, "00000000", "user", "x", STORE_COMPLETE, NULL), -1);
	assert_int_equal(store_transaction_rollback(st), 0);
	assert_int_equal(store_session_get(st, id, &ss), 0);
	assert_int_equal(ss.message_count, 0);
	store_session_free(&ss);
	assert_int_equal(store_transaction_begin(st), 0);
	for (int i = 0; i < 50; i++)
		assert_true(store_message_append(st, id, "user", "bulk", STORE_COMPLETE, NULL) > 0);
	assert_int_equal(store_message_append(st, "00000000", "user", "x", STORE_COMPLETE, NULL), -1);
	assert_int_equal(store_transaction_commit(st), 0);
	assert_int_equal(store_transaction_commit(st), -1);
	assert_int_equal(store_session_get(st, id, &ss), 0);
	assert_int_equal(ss.message_count, 50);
	store_session_free(&ss);
	store_close(st);
}

static void test_json_reader(void **state)
{
	static const char text[] = " {\"a\": [1, -2.5e1, true, false, null], \"s\": \"x\\u00e9\\ud83d\\ude42\\n\","
				   " \"o\": {\"k\": {}}} ";
	struct json *v = json_parse(text, strlen(text));
	const struct json *a, *s, *o;
	(void)state;
	assert_non_null(v);
	a = json_get(v, "a");
	assert_int_equal(a->type, JSON_ARRAY);
	assert_int_equal(a->n, 5);
	assert_true(a->items[1].number == -25.0);
	assert_int_equal(a->items[2].boolean, 1);
	assert_int_equal(a->items[4].type, JSON_NULL);
	s = json_get(v, "s");
	assert_string_equal(s->str, "xé🙂\n");
	o = json_get(v, "o");
	assert_int_equal(o->end - o->start, strlen("{\"k\": {}}"));
	assert_null(json_get(v, "missing"));
	json_free(v);
	static const char *const bad[] = { "", "{", "[1,]", "{\"a\" 1}", "\"\\ud800\"", "01x",
					   "tru", "\"a\nb\"", "[1] 2", "-", "{\"a\":1,}" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_null(json_parse(bad[i], strlen(bad[i])));
	/* numbers follow the grammar: a NUL byte is no digit (fuzz_import) */
	static const char *const bad_numbers[] = { "0.", "01", ".5", "1e", "1e+", "-.5", "+1",
						   "0x10", "1.e3" };
	for (size_t i = 0; i < sizeof(bad_numbers) / sizeof(bad_numbers[0]); i++)
		if (json_parse(bad_numbers[i], strlen(bad_numbers[i])))
			fail_msg("'%s' parsed as a number", bad_numbers[i]);
	static const char nul_in_number[] = "{\"t\": 0.\0, \"k\": 4}";
	assert_null(json_parse(nul_in_number, sizeof(nul_in_number) - 1));
	static const char *const good_numbers[] = { "0", "-0", "0.5", "-12.25e+2", "1E-3", "7e0" };
	for (size_t i = 0; i < sizeof(good_numbers) / sizeof(good_numbers[0]); i++) {
		struct json *g = json_parse(good_numbers[i], strlen(good_numbers[i]));
		assert_non_null(g);
		json_free(g);
	}
	/* deep nesting is refused, not a stack overflow */
	char deep[300];
	memset(deep, '[', sizeof(deep));
	assert_null(json_parse(deep, sizeof(deep)));
	assert_non_null(strstr(error_message(), "deep"));
}

/* The session's row points at its saved KV state: set, read, forgotten; not exported. */
static void test_kv_state(void **state)
{
	(void)state;
	struct store *st = open_ok(dbpath);
	struct strbuf kv = STRBUF_INIT, js = STRBUF_INIT;
	struct store_session before, after;
	char id[STORE_ID_SIZE];
	new_session(st, id);
	assert_true(store_message_append(st, id, "user", "hi", STORE_COMPLETE, NULL) > 0);
	assert_int_equal(store_session_kv_state(st, id, &kv), 0);
	assert_string_equal(kv.buf, "");
	assert_int_equal(store_session_get(st, id, &before), 0);
	assert_int_equal(store_session_set_kv_state(st, id, "/c/kv/x-0123456789abcdef.kv"), 0);
	assert_int_equal(store_session_kv_state(st, id, &kv), 0);
	assert_string_equal(kv.buf, "/c/kv/x-0123456789abcdef.kv");
	/* it does not move the session in the list */
	assert_int_equal(store_session_get(st, id, &after), 0);
	assert_true(after.updated_ms == before.updated_ms);
	assert_int_equal(store_export(st, id, STORE_FORMAT_JSON, &js), 0);
	assert_null(strstr(js.buf, "0123456789abcdef"));
	assert_int_equal(store_session_set_kv_state(st, id, NULL), 0);
	assert_int_equal(store_session_kv_state(st, id, &kv), 0);
	assert_string_equal(kv.buf, "");
	assert_int_equal(store_session_set_kv_state(st, "deadbeef", "/x.kv"), -1);
	assert_non_null(strstr(error_message(), "no session 'deadbeef'"));
	assert_int_equal(store_session_kv_state(st, "deadbeef", &kv), -1);
	store_session_free(&before);
	store_session_free(&after);
	strbuf_release(&kv);
	strbuf_release(&js);
	store_close(st);
	error_clear();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_open_creates_dirs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_default_path, setup, teardown),
		cmocka_unit_test_setup_teardown(test_session_lifecycle, setup, teardown),
		cmocka_unit_test_setup_teardown(test_auto_title, setup, teardown),
		cmocka_unit_test_setup_teardown(test_append_load, setup, teardown),
		cmocka_unit_test_setup_teardown(test_streaming, setup, teardown),
		cmocka_unit_test_setup_teardown(test_interrupted_on_reopen, setup, teardown),
		cmocka_unit_test_setup_teardown(test_resolve, setup, teardown),
		cmocka_unit_test_setup_teardown(test_search, setup, teardown),
		cmocka_unit_test_setup_teardown(test_export_import, setup, teardown),
		cmocka_unit_test_setup_teardown(test_export_invalid_utf8, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reasoning, setup, teardown),
		cmocka_unit_test_setup_teardown(test_message_model, setup, teardown),
		cmocka_unit_test_setup_teardown(test_transactions, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kv_state, setup, teardown),
		cmocka_unit_test(test_json_reader),
	};
	return cmocka_run_group_tests_name("store", tests, NULL, NULL);
}
