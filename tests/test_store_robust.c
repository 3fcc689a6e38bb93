/* history/store under stress: old and newer schemas, bad files, locks, read-only, disk full, SIGKILL, two writers. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "report.h"
#include "store.h"
#include "strbuf.h"
#include "testutil.h"

static char tmpdir[64];
static char dbpath[128];

static int setup(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/palaver-robust-XXXXXX");
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

static void exec_sql(const char *path, const char *sql)
{
	sqlite3 *db;
	char *err = NULL;
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK)
		fail_msg("sql: %s", err);
	sqlite3_close(db);
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

static void integrity_ok(const char *path)
{
	sqlite3 *db;
	sqlite3_stmt *s;
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &s, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(s), SQLITE_ROW);
	assert_string_equal((const char *)sqlite3_column_text(s, 0), "ok");
	sqlite3_finalize(s);
	/* the FTS index agrees with its content table */
	assert_int_equal(sqlite3_exec(db, "INSERT INTO messages_fts(messages_fts) VALUES('integrity-check')",
				      NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
}

static void read_bytes(const char *path, struct strbuf *sb)
{
	strbuf_reset(sb);
	assert_int_equal(strbuf_read_file(sb, path, (size_t)1 << 30), 0);
}

/* A database as the first palaver (schema 1) left it, made by hand. */
static void make_v1(void)
{
	exec_sql(dbpath,
		 "CREATE TABLE sessions (id INTEGER PRIMARY KEY, uid TEXT NOT NULL UNIQUE,"
		 "  title TEXT NOT NULL DEFAULT '', model TEXT, system_prompt TEXT,"
		 "  created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL);"
		 "CREATE TABLE messages (id INTEGER PRIMARY KEY,"
		 "  session_id INTEGER NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,"
		 "  seq INTEGER NOT NULL, role TEXT NOT NULL, content TEXT NOT NULL DEFAULT '',"
		 "  created_at INTEGER NOT NULL, UNIQUE (session_id, seq));"
		 "INSERT INTO sessions VALUES (1, 'a1b2c3d4', 'Old chat', 'm.gguf', NULL, 1000, 5000);"
		 "INSERT INTO sessions VALUES (2, 'e5f60718', '', NULL, NULL, 2000, 3000);"
		 "INSERT INTO messages VALUES (1, 1, 1, 'user', 'ancient question', 1000);"
		 "INSERT INTO messages VALUES (2, 1, 2, 'assistant', 'ancient\nanswer', 1001);"
		 "INSERT INTO messages VALUES (3, 2, 1, 'user', 'other', 2000);"
		 "PRAGMA user_version = 1;");
}

/* Such a database, opened by store_open(): migrated, nothing lost. */
static void test_migrate_from_v1(void **state)
{
	struct store *st;
	struct store_session *list;
	struct store_message *m;
	struct store_hit *h;
	size_t n;
	char id[STORE_ID_SIZE];
	(void)state;
	make_v1();
	st = open_ok(dbpath);
	assert_int_equal(store_session_list(st, 0, &list, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(list[0].id, "a1b2c3d4");
	assert_string_equal(list[0].title, "Old chat");
	assert_int_equal(list[0].title_auto, 0);
	assert_int_equal(list[0].message_count, 2);
	assert_string_equal(list[0].preview, "ancient answer");
	assert_int_equal(list[1].title_auto, 1);
	store_sessions_free(list, n);
	assert_int_equal(store_messages_load(st, "a1b2c3d4", &m, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(m[1].status, STORE_COMPLETE);
	assert_int_equal(m[1].updated_ms, 1001);
	store_messages_free(m, n);
	/* old content is searchable, new content too */
	assert_int_equal(store_search(st, "ancient", 0, NULL, NULL, &h, &n), 0);
	assert_int_equal(n, 2);
	store_hits_free(h, n);
	assert_true(store_message_append(st, "e5f60718", "assistant", "fresh", STORE_COMPLETE, NULL) > 0);
	assert_int_equal(store_session_resolve(st, "old", id), 0);
	assert_string_equal(id, "a1b2c3d4");
	store_close(st);
	assert_int_equal(db_int(dbpath, "PRAGMA user_version"), STORE_SCHEMA_VERSION);
	integrity_ok(dbpath);
}

static void test_newer_refused_untouched(void **state)
{
	struct strbuf before = STRBUF_INIT, after = STRBUF_INIT;
	struct store *st = open_ok(dbpath);
	char id[STORE_ID_SIZE];
	(void)state;
	assert_int_equal(store_session_create(st, NULL, id), 0);
	store_message_append(st, id, "user", "keep me", STORE_COMPLETE, NULL);
	store_close(st);
	exec_sql(dbpath, "PRAGMA user_version = 99");
	/* the same for a rollback-journal file and a WAL file */
	for (int round = 0; round < 2; round++) {
		if (round == 1)
			exec_sql(dbpath, "PRAGMA journal_mode = DELETE");
		read_bytes(dbpath, &before);
		error_clear();
		assert_null(store_open(dbpath));
		assert_non_null(strstr(error_message(), "newer palaver"));
		assert_non_null(strstr(error_message(), "99"));
		read_bytes(dbpath, &after);
		assert_int_equal(after.len, before.len);
		assert_memory_equal(after.buf, before.buf, before.len);
	}
	assert_int_equal(db_int(dbpath, "PRAGMA user_version"), 99);
	strbuf_release(&before);
	strbuf_release(&after);
}

/*
 * A header version this code does not know, below 0 or above the newest (one
 * flipped byte makes it negative), is refused before anything reads the
 * migrations by it or writes the file.
 */
static void test_unknown_version_refused_untouched(void **state)
{
	char newer[16];
	snprintf(newer, sizeof(newer), "%d", STORE_SCHEMA_VERSION + 1);
	const char *const versions[] = { "-1", "-2", "-1000000", "-2147483648", newer, "2147483647" };
	struct strbuf before = STRBUF_INIT, after = STRBUF_INIT;
	struct store *st = open_ok(dbpath);
	char id[STORE_ID_SIZE], sql[64];
	(void)state;
	assert_int_equal(store_session_create(st, NULL, id), 0);
	store_message_append(st, id, "user", "keep me", STORE_COMPLETE, NULL);
	store_close(st);
	exec_sql(dbpath, "PRAGMA journal_mode = DELETE");
	for (size_t i = 0; i < sizeof(versions) / sizeof(versions[0]); i++) {
		snprintf(sql, sizeof(sql), "PRAGMA user_version = %s", versions[i]);
		exec_sql(dbpath, sql);
		read_bytes(dbpath, &before);
		error_clear();
		assert_null(store_open(dbpath));
		if (!strstr(error_message(), "schema version") || !strstr(error_message(), versions[i]) ||
		    !strstr(error_message(), "untouched"))
			fail_msg("version %s: %s", versions[i], error_message());
		read_bytes(dbpath, &after);
		assert_int_equal(after.len, before.len);
		assert_memory_equal(after.buf, before.buf, before.len);
	}
	strbuf_release(&before);
	strbuf_release(&after);
}

static void test_not_a_database(void **state)
{
	struct strbuf before = STRBUF_INIT, after = STRBUF_INIT;
	char other[256];
	FILE *f = fopen(dbpath, "w");
	(void)state;
	for (int i = 0; i < 200; i++)
		fputs("this is my diary, not a database\n", f);
	fclose(f);
	read_bytes(dbpath, &before);
	assert_null(store_open(dbpath));
	assert_non_null(strstr(error_message(), "is not a history database"));
	read_bytes(dbpath, &after);
	assert_int_equal(after.len, before.len);
	assert_memory_equal(after.buf, before.buf, before.len);

	/* someone else's SQLite file */
	snprintf(other, sizeof(other), "%s/other.db", tmpdir);
	exec_sql(other, "CREATE TABLE contacts(name TEXT)");
	read_bytes(other, &before);
	assert_null(store_open(other));
	assert_non_null(strstr(error_message(), "not a palaver history"));
	read_bytes(other, &after);
	assert_memory_equal(after.buf, before.buf, before.len);

	/* a directory */
	assert_null(store_open(tmpdir));
	assert_non_null(strstr(error_message(), "not a regular file"));

	strbuf_release(&before);
	strbuf_release(&after);
}

static void test_corrupt(void **state)
{
	struct store *st = open_ok(dbpath);
	char id[STORE_ID_SIZE];
	struct strbuf big = STRBUF_INIT;
	(void)state;
	assert_int_equal(store_session_create(st, NULL, id), 0);
	for (int i = 0; i < 2000; i++)
		strbuf_addstr(&big, "lorem ipsum dolor sit amet ");
	for (int i = 0; i < 20; i++)
		store_message_append(st, id, "user", big.buf, STORE_COMPLETE, NULL);
	store_close(st);
	exec_sql(dbpath, "PRAGMA journal_mode = DELETE");
	/* scribble over every page after the first */
	{
		int fd = open(dbpath, O_WRONLY);
		char junk[4096];
		struct stat sb;
		memset(junk, 0x5a, sizeof(junk));
		fstat(fd, &sb);
		for (off_t off = 4096; off < sb.st_size; off += 4096)
			assert_int_equal(pwrite(fd, junk, sizeof(junk), off), (ssize_t)sizeof(junk));
		close(fd);
	}
	error_clear();
	st = store_open(dbpath);
	if (st) {
		/* the schema page survived: the damage shows on use */
		struct store_message *m;
		size_t n;
		struct store_session *list;
		int r1 = store_session_list(st, 0, &list, &n);
		if (r1 == 0)
			store_sessions_free(list, n);
		int r2 = store_messages_load(st, id, &m, &n);
		if (r2 == 0)
			store_messages_free(m, n);
		assert_true(r1 < 0 || r2 < 0);
		store_close(st);
	}
	assert_non_null(strstr(error_message(), "history database"));
	strbuf_release(&big);
}

static void test_locked(void **state)
{
	struct store *st = open_ok(dbpath);
	char id[STORE_ID_SIZE];
	sqlite3 *other;
	(void)state;
	assert_int_equal(store_session_create(st, NULL, id), 0);
	assert_int_equal(sqlite3_open(dbpath, &other), SQLITE_OK);
	assert_int_equal(sqlite3_exec(other, "BEGIN IMMEDIATE; INSERT INTO sessions(uid, created_at,"
					     " updated_at) VALUES ('ffffffff', 1, 1)", NULL, NULL, NULL),
			 SQLITE_OK);
	store_set_busy_timeout(st, 50);
	assert_int_equal(store_message_append(st, id, "user", "waits", STORE_COMPLETE, NULL), -1);
	assert_non_null(strstr(error_message(), "locked by another process"));
	assert_int_equal(store_session_create(st, NULL, id), -1);
	/* readers are not blocked by a writer in WAL mode */
	{
		struct store_session *list;
		size_t n;
		assert_int_equal(store_session_list(st, 0, &list, &n), 0);
		store_sessions_free(list, n);
	}
	/* opening an up-to-date database does not wait for the writer */
	{
		struct store *second = store_open(dbpath);
		if (!second)
			fail_msg("open beside a writer: %s", error_message());
		store_close(second);
	}
	assert_int_equal(sqlite3_exec(other, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(other);
	assert_true(store_message_append(st, id, "user", "now", STORE_COMPLETE, NULL) > 0);
	store_close(st);
}

/* Run fn in a child; returns its exit status. */
static int in_child(int (*fn)(void))
{
	int status;
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(fn());
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	return WEXITSTATUS(status);
}

static int readonly_child(void)
{
	struct store *st;
	if (geteuid() == 0 && setuid(65534) < 0) /* root writes anything: become nobody */
		return 77;                          /* no such user in this namespace */
	if (access(dbpath, W_OK) == 0)
		return 11;
	st = store_open(dbpath);
	if (st)
		return 12;
	return strstr(error_message(), "read-only") ? 0 : 13;
}

static void test_readonly(void **state)
{
	struct strbuf before = STRBUF_INIT, after = STRBUF_INIT;
	struct store *st = open_ok(dbpath);
	char id[STORE_ID_SIZE];
	(void)state;
	assert_int_equal(store_session_create(st, NULL, id), 0);
	store_close(st);
	chmod(tmpdir, 0755);
	chmod(dbpath, 0444);
	read_bytes(dbpath, &before);
	int r = in_child(readonly_child);
	chmod(dbpath, 0644);
	if (r == 77)
		TEST_SKIP("root cannot become another user here");
	assert_int_equal(r, 0);
	read_bytes(dbpath, &after);
	assert_int_equal(after.len, before.len);
	assert_memory_equal(after.buf, before.buf, before.len);
	chmod(dbpath, 0644);
	integrity_ok(dbpath);
	strbuf_release(&before);
	strbuf_release(&after);
}

/* An older database that cannot be written: refused, saying why. */
static int old_read_only_child(void)
{
	if (geteuid() == 0 && setuid(65534) < 0)
		return 77;
	if (access(dbpath, W_OK) == 0)
		return 31;
	if (store_open_readonly(dbpath) || !strstr(error_message(), "needs upgrading")) {
		fprintf(stderr, "old and read-only: %s\n", error_message());
		return 32;
	}
	return 0;
}

/* A read-only command (sessions list) on an older database: refused
 * untouched without write access; upgraded as the chat would where it can
 * be written, not refused for want of access it has. */
static void test_readonly_open_migrates(void **state)
{
	struct strbuf before = STRBUF_INIT, after = STRBUF_INIT;
	struct store_session *list;
	struct store *st;
	size_t n;
	(void)state;
	make_v1();
	chmod(dbpath, 0444);
	chmod(tmpdir, 0555);
	read_bytes(dbpath, &before);
	int r = in_child(old_read_only_child);
	read_bytes(dbpath, &after);
	chmod(tmpdir, 0755);
	chmod(dbpath, 0644);
	if (r != 77) {
		assert_int_equal(r, 0);
		assert_true(before.len == after.len && !memcmp(before.buf, after.buf, before.len));
	}
	strbuf_release(&before);
	strbuf_release(&after);

	st = store_open_readonly(dbpath);
	if (!st)
		fail_msg("read-only open of a schema 1 database: %s", error_message());
	assert_int_equal(store_session_list(st, 0, &list, &n), 0);
	assert_int_equal(n, 2);
	store_sessions_free(list, n);
	store_close(st);
	assert_int_equal(db_int(dbpath, "PRAGMA user_version"), STORE_SCHEMA_VERSION);
	integrity_ok(dbpath);
}

/*
 * Reading needs no write access (issue 16): a read-only file in a read-only
 * directory (WAL mode, no -shm file to create) is listed, searched and
 * exported through store_open_readonly(); a file that cannot be read is a
 * permission error said as such.
 */
static char ro_session[STORE_ID_SIZE];

static int read_only_child(void)
{
	struct store *st;
	struct store_session *list;
	struct store_message *m;
	struct store_hit *hits;
	struct strbuf out = STRBUF_INIT;
	size_t n;
	if (geteuid() == 0 && setuid(65534) < 0)
		return 77;
	if (access(dbpath, W_OK) == 0 || access(tmpdir, W_OK) == 0)
		return 11;
	if (!(st = store_open_readonly(dbpath))) {
		fprintf(stderr, "read-only open: %s\n", error_message());
		return 12;
	}
	if (store_session_list(st, 0, &list, &n) < 0 || n != 1)
		return 13;
	store_sessions_free(list, n);
	if (store_messages_load(st, ro_session, &m, &n) < 0 || n != 2)
		return 14;
	store_messages_free(m, n);
	if (store_search(st, "readable", 10, "[", "]", &hits, &n) < 0 || n != 1)
		return 15;
	store_hits_free(hits, n);
	if (store_export(st, ro_session, STORE_FORMAT_JSON, &out) < 0 ||
	    !strstr(out.buf, "readable"))
		return 16;
	strbuf_release(&out);
	/* writing says why it cannot */
	if (store_message_append(st, ro_session, "user", "x", STORE_COMPLETE, NULL) >= 0 ||
	    !strstr(error_message(), "read-only"))
		return 17;
	store_close(st);
	return 0;
}

static int unreadable_child(void)
{
	if (geteuid() == 0 && setuid(65534) < 0)
		return 77;
	if (store_open_readonly(dbpath) || !strstr(error_message(), "Permission denied")) {
		fprintf(stderr, "unreadable: %s\n", error_message());
		return 21;
	}
	if (store_open(dbpath) || !strstr(error_message(), "Permission denied"))
		return 22;
	return 0;
}

static void test_read_only_access(void **state)
{
	struct store *st = open_ok(dbpath);
	(void)state;
	assert_int_equal(store_session_create(st, NULL, ro_session), 0);
	store_message_append(st, ro_session, "user", "readable text", STORE_COMPLETE, NULL);
	store_message_append(st, ro_session, "assistant", "yes", STORE_COMPLETE, NULL);
	store_close(st);
	chmod(dbpath, 0444);
	chmod(tmpdir, 0555);
	int r = in_child(read_only_child);
	if (r == 0) {
		chmod(dbpath, 0);
		r = in_child(unreadable_child);
	}
	chmod(tmpdir, 0755);
	chmod(dbpath, 0644);
	if (r == 77)
		TEST_SKIP("root cannot become another user here");
	assert_int_equal(r, 0);
	integrity_ok(dbpath);
}

static char full_session[STORE_ID_SIZE];
static int full_pipe[2];

/* Append until the file size limit stops us; report successes on the pipe. */
static int disk_full_child(void)
{
	struct store *st = store_open(dbpath);
	struct rlimit rl = { 256 * 1024, 256 * 1024 };
	char text[4096];
	int ok = 0;
	if (!st)
		return 20;
	signal(SIGXFSZ, SIG_IGN);
	if (setrlimit(RLIMIT_FSIZE, &rl) < 0)
		return 21;
	for (int i = 0; i < (int)sizeof(text) - 1; i++)
		text[i] = (char)('a' + (i * 7 + i / 13) % 26);
	text[sizeof(text) - 1] = '\0';
	for (int i = 0; i < 1000; i++) {
		if (store_message_append(st, full_session, "user", text, STORE_COMPLETE, NULL) < 0)
			break;
		ok++;
	}
	if (write(full_pipe[1], &ok, sizeof(ok)) != sizeof(ok))
		return 22;
	if (ok == 1000)
		return 23;
	if (!strstr(error_message(), "File too large") && !strstr(error_message(), "disk full")) {
		fprintf(stderr, "disk full child: unexpected error: %s\n", error_message());
		return 24;
	}
	/* the store stays usable for reading after the failure */
	struct store_message *m;
	size_t n;
	if (store_messages_load(st, full_session, &m, &n) < 0 || (int)n != ok)
		return 25;
	store_messages_free(m, n);
	store_close(st);
	return 0;
}

static void test_disk_full(void **state)
{
	struct store *st = open_ok(dbpath);
	struct store_message *m;
	size_t n;
	int ok = -1;
	(void)state;
	assert_int_equal(store_session_create(st, NULL, full_session), 0);
	store_close(st);
	assert_int_equal(pipe(full_pipe), 0);
	assert_int_equal(in_child(disk_full_child), 0);
	assert_int_equal(read(full_pipe[0], &ok, sizeof(ok)), sizeof(ok));
	close(full_pipe[0]);
	close(full_pipe[1]);
	assert_true(ok > 5);
	integrity_ok(dbpath);
	st = open_ok(dbpath);
	assert_int_equal(store_messages_load(st, full_session, &m, &n), 0);
	assert_int_equal((int)n, ok);
	store_messages_free(m, n);
	/* with room again it goes on */
	assert_true(store_message_append(st, full_session, "user", "after", STORE_COMPLETE, NULL) > 0);
	store_close(st);
}

/* The text a streaming child has written after k updates. */
static void stream_text(struct strbuf *sb, int k)
{
	strbuf_reset(sb);
	for (int i = 0; i < k; i++)
		strbuf_addf(sb, "token%d ", i);
}

static void test_crash_safety(void **state)
{
	struct store *st = open_ok(dbpath);
	struct strbuf want = STRBUF_INIT;
	char id[STORE_ID_SIZE];
	unsigned seed = (unsigned)time(NULL);
	int checked = 0;
	(void)state;
	assert_int_equal(store_session_create(st, NULL, id), 0);
	store_close(st);
	srand(seed);
	for (int round = 0; round < 100; round++) {
		int p[2], status, progress = -1, k, stop = rand() % 40;
		pid_t pid;
		assert_int_equal(pipe(p), 0);
		pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			struct strbuf text = STRBUF_INIT;
			struct store *c = store_open(dbpath);
			int64_t mid;
			close(p[0]);
			if (!c)
				_exit(1);
			mid = store_message_begin(c, id, "assistant");
			if (mid < 0)
				_exit(2);
			for (k = 1;; k++) {
				stream_text(&text, k);
				if (store_message_update(c, mid, text.buf, text.len) < 0)
					_exit(3);
				/* only after the commit: this text is durable */
				if (write(p[1], &k, sizeof(k)) != sizeof(k))
					_exit(4);
			}
		}
		close(p[1]);
		/* kill after a random number of updates, or at a random moment */
		for (int seen = 0; seen < stop; seen++)
			if (read(p[0], &k, sizeof(k)) == sizeof(k))
				progress = k;
		if (rand() % 2)
			usleep((useconds_t)(rand() % 3000));
		kill(pid, SIGKILL);
		assert_int_equal(waitpid(pid, &status, 0), pid);
		assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
		while (read(p[0], &k, sizeof(k)) == sizeof(k))
			progress = k;
		close(p[0]);

		integrity_ok(dbpath);
		st = open_ok(dbpath);
		struct store_message *m;
		size_t n;
		assert_int_equal(store_messages_load(st, id, &m, &n), 0);
		for (size_t i = 0; i < n; i++)
			if (m[i].status == STORE_STREAMING)
				fail_msg("round %d (seed %u): message %zu still streaming", round, seed, i);
		if (progress > 0) {
			/* the last message is this round's: it holds at least what was reported */
			struct store_message *last = &m[n - 1];
			stream_text(&want, progress);
			assert_int_equal(last->status, STORE_INTERRUPTED);
			assert_true(strlen(last->content) >= want.len);
			assert_memory_equal(last->content, want.buf, want.len);
			checked++;
		}
		store_messages_free(m, n);
		store_close(st);
	}
	assert_true(checked > 30);
	strbuf_release(&want);
}

#define WRITERS 2
#define PER_WRITER 150

static void test_two_writers(void **state)
{
	struct store *st = open_ok(dbpath);
	char id[STORE_ID_SIZE];
	struct store_message *m;
	struct store_session ss;
	size_t n;
	pid_t pids[WRITERS];
	int go[2];
	(void)state;
	assert_int_equal(store_session_create(st, NULL, id), 0);
	store_close(st);
	assert_int_equal(pipe(go), 0);
	for (int w = 0; w < WRITERS; w++) {
		pids[w] = fork();
		assert_true(pids[w] >= 0);
		if (pids[w] == 0) {
			char c, text[64];
			struct store *s = store_open(dbpath);
			close(go[1]);
			if (!s)
				_exit(1);
			if (read(go[0], &c, 1) != 0) /* start together when the pipe closes */
				_exit(2);
			for (int i = 0; i < PER_WRITER; i++) {
				snprintf(text, sizeof(text), "writer%d message%d", w, i);
				if (store_message_append(s, id, "user", text, STORE_COMPLETE, NULL) < 0)
					_exit(3);
			}
			store_close(s);
			_exit(0);
		}
	}
	close(go[0]);
	close(go[1]);
	for (int w = 0; w < WRITERS; w++) {
		int status;
		assert_int_equal(waitpid(pids[w], &status, 0), pids[w]);
		assert_true(WIFEXITED(status));
		assert_int_equal(WEXITSTATUS(status), 0);
	}
	st = open_ok(dbpath);
	assert_int_equal(store_messages_load(st, id, &m, &n), 0);
	assert_int_equal(n, WRITERS * PER_WRITER);
	int next[WRITERS] = { 0 };
	for (size_t i = 0; i < n; i++) {
		int w, k;
		assert_int_equal(m[i].seq, (int64_t)i + 1);
		assert_int_equal(sscanf(m[i].content, "writer%d message%d", &w, &k), 2);
		/* each writer's messages arrive in its own order */
		assert_int_equal(k, next[w]);
		next[w]++;
	}
	store_messages_free(m, n);
	assert_int_equal(store_session_get(st, id, &ss), 0);
	assert_int_equal(ss.message_count, WRITERS * PER_WRITER);
	store_session_free(&ss);
	store_close(st);
	integrity_ok(dbpath);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_migrate_from_v1, setup, teardown),
		cmocka_unit_test_setup_teardown(test_readonly_open_migrates, setup, teardown),
		cmocka_unit_test_setup_teardown(test_newer_refused_untouched, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unknown_version_refused_untouched, setup, teardown),
		cmocka_unit_test_setup_teardown(test_not_a_database, setup, teardown),
		cmocka_unit_test_setup_teardown(test_corrupt, setup, teardown),
		cmocka_unit_test_setup_teardown(test_locked, setup, teardown),
		cmocka_unit_test_setup_teardown(test_readonly, setup, teardown),
		cmocka_unit_test_setup_teardown(test_read_only_access, setup, teardown),
		cmocka_unit_test_setup_teardown(test_disk_full, setup, teardown),
		cmocka_unit_test_setup_teardown(test_crash_safety, setup, teardown),
		cmocka_unit_test_setup_teardown(test_two_writers, setup, teardown),
	};
	return cmocka_run_group_tests_name("store_robust", tests, NULL, NULL);
}
