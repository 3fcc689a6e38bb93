/* history/store: the SQLite chat history (schema, migrations, sessions, messages, search, export). */
#include "store.h"
#include "json.h"
#include "report.h"
#include "untrusted.h"
#include "util.h"
#include "xalloc.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

/*
 * DESIGN
 *
 * Schema (user_version 5):
 *   sessions(id INTEGER PRIMARY KEY, uid TEXT UNIQUE, title, title_auto,
 *            model, system_prompt, sampling, created_at, updated_at,
 *            message_count, preview, kv_state)
 *   messages(id INTEGER PRIMARY KEY, session_id -> sessions ON DELETE
 *            CASCADE, seq, role, content, status, prompt_tokens, gen_tokens,
 *            prefill_ms, gen_ms, created_at, updated_at, writer_pid,
 *            backend, model, reasoning, UNIQUE(session_id, seq))
 *   messages_fts: FTS5 over messages.content (external content), kept in
 *            sync by triggers on messages.
 * Times are Unix milliseconds.  uid is the short public id; the integer
 * keys never leave this file except as message handles.  kv_state is the
 * path of the file last saved with the session's KV cache (the engine's;
 * a cache that may have been evicted since), not exported.
 *
 * Listing must not count the messages of every session on each call, so
 * message_count, preview and updated_at live on the session row and the
 * message triggers maintain them; sessions_updated orders the list.  The
 * automatic title is set here in C (it needs word-boundary truncation).
 *
 * Migrations run forward only, each in the one transaction that also sets
 * user_version, so a crash leaves the old version intact.  Version 1 was the
 * first shape (no status, stats, FTS or denormalised columns); a fresh file
 * runs both.  A database with a higher user_version came from a newer
 * palaver and is refused before anything writes to it (WAL is switched on
 * only after that check: it rewrites the header); so is a negative one,
 * which no palaver writes (the version indexes the migrations).
 *
 * Durability: WAL with synchronous=NORMAL.  A committed transaction survives
 * the process being killed (it is in the WAL, in the OS cache); only a power
 * cut can lose the last few, and never corrupts.  A streamed reply is a row
 * created at its start with status 'streaming' and the writer's pid; each
 * update is one transaction.  On open, streaming rows whose writer is gone
 * become 'interrupted' (a live writer, another palaver sharing the file, is
 * left alone).
 *
 * Writes use BEGIN IMMEDIATE, so the write lock is taken (waiting up to the
 * busy timeout) before reading the next seq: two processes appending to one
 * session cannot pick the same seq.  Inside store_transaction_begin() the
 * same functions use savepoints, so each call stays all or nothing.
 * Opening an up-to-date file only reads, so it never waits for a writer.
 *
 * Search: user words are quoted one by one (no FTS syntax survives), and
 * hits are ranked by palaver_rank(), an auxiliary function registered on
 * each connection (BM25 without IDF, see rank_fn), restricted to the
 * STORE_SEARCH_WINDOW most recent matches.  Both keep a word that occurs in
 * half the history as fast as a rare one.  The rank is chosen per query
 * (rank MATCH), so the file itself needs no palaver code to be read by the
 * sqlite3 shell.
 */

/* First 80 characters of a message with line breaks, tabs and escapes as spaces. */
#define PREVIEW_SQL(col)                                                                           \
	"substr(trim(replace(replace(replace(replace(substr(" col ",1,400),char(10),' '),"         \
	"char(13),' '),char(9),' '),char(27),' ')),1,80)"

static const char *const migrations[] = {
	/* 0 -> 1: the first shape */
	"CREATE TABLE sessions ("
	"  id INTEGER PRIMARY KEY,"
	"  uid TEXT NOT NULL UNIQUE,"
	"  title TEXT NOT NULL DEFAULT '',"
	"  model TEXT,"
	"  system_prompt TEXT,"
	"  created_at INTEGER NOT NULL,"
	"  updated_at INTEGER NOT NULL);"
	"CREATE TABLE messages ("
	"  id INTEGER PRIMARY KEY,"
	"  session_id INTEGER NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,"
	"  seq INTEGER NOT NULL,"
	"  role TEXT NOT NULL,"
	"  content TEXT NOT NULL DEFAULT '',"
	"  created_at INTEGER NOT NULL,"
	"  UNIQUE (session_id, seq));",

	/* 1 -> 2: status, stats, sampling, denormalised list columns, FTS5 */
	"ALTER TABLE sessions ADD COLUMN title_auto INTEGER NOT NULL DEFAULT 1;"
	"ALTER TABLE sessions ADD COLUMN sampling TEXT;"
	"ALTER TABLE sessions ADD COLUMN message_count INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE sessions ADD COLUMN preview TEXT NOT NULL DEFAULT '';"
	"ALTER TABLE messages ADD COLUMN status TEXT NOT NULL DEFAULT 'complete';"
	"ALTER TABLE messages ADD COLUMN prompt_tokens INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE messages ADD COLUMN gen_tokens INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE messages ADD COLUMN prefill_ms REAL NOT NULL DEFAULT 0;"
	"ALTER TABLE messages ADD COLUMN gen_ms REAL NOT NULL DEFAULT 0;"
	"ALTER TABLE messages ADD COLUMN updated_at INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE messages ADD COLUMN writer_pid INTEGER NOT NULL DEFAULT 0;"
	"UPDATE messages SET updated_at = created_at;"
	"UPDATE sessions SET title_auto = (title = ''),"
	"  message_count = (SELECT count(*) FROM messages m WHERE m.session_id = sessions.id),"
	"  preview = coalesce((SELECT " PREVIEW_SQL(
		"m.content") " FROM messages m"
			     "    WHERE m.session_id = sessions.id ORDER BY m.seq DESC LIMIT 1), '');"
			     "CREATE INDEX sessions_updated ON sessions(updated_at DESC, id DESC);"
			     "CREATE INDEX messages_streaming ON messages(status) WHERE status = 'streaming';"
			     "CREATE VIRTUAL TABLE messages_fts USING fts5(content, content='messages',"
			     "  content_rowid='id', tokenize='unicode61 remove_diacritics 2');"
			     "INSERT INTO messages_fts(messages_fts) VALUES('rebuild');"
			     "CREATE TRIGGER messages_ai AFTER INSERT ON messages BEGIN"
			     "  INSERT INTO messages_fts(rowid, content) VALUES (new.id, new.content);"
			     "  UPDATE sessions SET message_count = message_count + 1,"
			     "    updated_at = max(updated_at, new.updated_at),"
			     "    preview = " PREVIEW_SQL(
				     "new.content") "    WHERE id = new.session_id;"
						    "END;"
						    "CREATE TRIGGER messages_ad AFTER DELETE ON messages BEGIN"
						    "  INSERT INTO messages_fts(messages_fts, rowid, content) VALUES ('delete', old.id, old.content);"
						    "  UPDATE sessions SET message_count = message_count - 1 WHERE id = old.session_id;"
						    "END;"
						    "CREATE TRIGGER messages_au AFTER UPDATE OF content ON messages BEGIN"
						    "  INSERT INTO messages_fts(messages_fts, rowid, content) VALUES ('delete', old.id, old.content);"
						    "  INSERT INTO messages_fts(rowid, content) VALUES (new.id, new.content);"
						    "  UPDATE sessions SET updated_at = max(updated_at, new.updated_at),"
						    "    preview = " PREVIEW_SQL(
							    "new.content") "    WHERE id = new.session_id AND NOT EXISTS (SELECT 1 FROM messages m"
									   "      WHERE m.session_id = new.session_id AND m.seq > new.seq);"
									   "END;",

	/* 2 -> 3: which backend and model wrote each reply ("cpu" and a GGUF
	 * path, or "remote" and URL#MODEL); NULL for older rows and user turns */
	"ALTER TABLE messages ADD COLUMN backend TEXT;"
	"ALTER TABLE messages ADD COLUMN model TEXT;",

	/* 3 -> 4: the file holding the session's saved KV cache (a cache: it may be gone) */
	"ALTER TABLE sessions ADD COLUMN kv_state TEXT;",

	/* 4 -> 5: a reply's thinking, apart from its content (the answer, which
	 * later turns send back); NULL when it did not think */
	"ALTER TABLE messages ADD COLUMN reasoning TEXT;",
};
_Static_assert(sizeof(migrations) / sizeof(migrations[0]) == STORE_SCHEMA_VERSION,
	       "one migration per schema version");

/* Prepared statements, made on first use and kept for the store's life. */
enum query {
	Q_SESSION_ROWID,
	Q_SESSION_INSERT,
	Q_SESSION_GET,
	Q_SESSION_LIST,
	Q_SESSION_RENAME,
	Q_SESSION_SET,
	Q_SESSION_DELETE_MSGS,
	Q_SESSION_DELETE,
	Q_SESSION_TITLE_AUTO,
	Q_SESSION_SET_TITLE,
	Q_NEXT_SEQ,
	Q_MSG_INSERT,
	Q_MSG_UPDATE,
	Q_MSG_FINISH,
	Q_MSG_RESTART,
	Q_MSG_LOAD,
	Q_MSG_MODEL,
	Q_MSG_REASONING,
	Q_SEARCH,
	Q_SESSION_SET_KV,
	Q_SESSION_GET_KV,
	Q_COUNT,
};

static const char *const query_sql[Q_COUNT] = {
	[Q_SESSION_ROWID] = "SELECT id FROM sessions WHERE uid = ?1",
	[Q_SESSION_INSERT] = "INSERT INTO sessions(uid, title, title_auto, model, system_prompt,"
			     " sampling, created_at, updated_at) VALUES (?1,?2,?3,?4,?5,?6,?7,?8)",
	[Q_SESSION_GET] =
		"SELECT uid, title, title_auto, model, system_prompt, sampling, created_at,"
		" updated_at, message_count, preview FROM sessions WHERE uid = ?1",
	[Q_SESSION_LIST] = "SELECT uid, title, title_auto, model, system_prompt, sampling,"
			   " created_at, updated_at, message_count, preview FROM sessions"
			   " ORDER BY updated_at DESC, id DESC LIMIT ?1",
	[Q_SESSION_RENAME] = "UPDATE sessions SET title = ?2, title_auto = 0 WHERE uid = ?1",
	[Q_SESSION_SET] = "UPDATE sessions SET model = coalesce(?2, model),"
			  " system_prompt = coalesce(?3, system_prompt),"
			  " sampling = coalesce(?4, sampling) WHERE uid = ?1",
	[Q_SESSION_DELETE_MSGS] = "DELETE FROM messages WHERE session_id = ?1",
	[Q_SESSION_DELETE] = "DELETE FROM sessions WHERE id = ?1",
	[Q_SESSION_TITLE_AUTO] = "SELECT title_auto AND title = '' FROM sessions WHERE id = ?1",
	[Q_SESSION_SET_TITLE] = "UPDATE sessions SET title = ?2 WHERE id = ?1",
	[Q_NEXT_SEQ] = "SELECT coalesce(max(seq), 0) + 1 FROM messages WHERE session_id = ?1",
	[Q_MSG_INSERT] =
		"INSERT INTO messages(session_id, seq, role, content, status, prompt_tokens,"
		" gen_tokens, prefill_ms, gen_ms, created_at, updated_at, writer_pid, backend,"
		" model) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14)",
	[Q_MSG_UPDATE] = "UPDATE messages SET content = ?2, updated_at = ?3 WHERE id = ?1",
	[Q_MSG_FINISH] = "UPDATE messages SET content = ?2, updated_at = ?3, status = ?4,"
			 " prompt_tokens = ?5, gen_tokens = ?6, prefill_ms = ?7, gen_ms = ?8,"
			 " writer_pid = 0 WHERE id = ?1",
	[Q_MSG_RESTART] = "UPDATE messages SET content = '', updated_at = ?2, status = 'streaming',"
			  " prompt_tokens = 0, gen_tokens = 0, prefill_ms = 0, gen_ms = 0,"
			  " writer_pid = ?3, backend = NULL, model = NULL, reasoning = NULL"
			  " WHERE id = ?1",
	[Q_MSG_LOAD] = "SELECT id, seq, role, content, status, prompt_tokens, gen_tokens,"
		       " prefill_ms, gen_ms, created_at, updated_at, backend, model, reasoning"
		       " FROM messages WHERE session_id = ?1 ORDER BY seq",
	[Q_MSG_MODEL] = "UPDATE messages SET backend = ?2, model = ?3 WHERE id = ?1",
	[Q_MSG_REASONING] = "UPDATE messages SET reasoning = ?2 WHERE id = ?1",
	[Q_SEARCH] = "SELECT s.uid, s.title, m.id, m.seq, m.role,"
		     " snippet(messages_fts, 0, ?2, ?3, '…', 12), rank, m.updated_at"
		     " FROM messages_fts JOIN messages m ON m.id = messages_fts.rowid"
		     " JOIN sessions s ON s.id = m.session_id"
		     " WHERE messages_fts MATCH ?1 AND rank MATCH 'palaver_rank()'"
		     " AND messages_fts.rowid >= coalesce(("
		     "   SELECT min(rowid) FROM (SELECT rowid FROM messages_fts"
		     "   WHERE messages_fts MATCH ?1 ORDER BY rowid DESC LIMIT ?5)), 0)"
		     " ORDER BY rank LIMIT ?4",
	[Q_SESSION_SET_KV] = "UPDATE sessions SET kv_state = ?2 WHERE uid = ?1",
	[Q_SESSION_GET_KV] = "SELECT kv_state FROM sessions WHERE uid = ?1",
};

/*
 * Invariants: db is open and at STORE_SCHEMA_VERSION; every stmts[] entry is
 * NULL or a reset statement; depth counts open transactions (0 = none,
 * 1 = BEGIN, more = savepoints), user_tx tells whether the outermost one
 * belongs to store_transaction_begin().
 */
struct store {
	sqlite3 *db;
	char *path; /* as opened, for messages */
	sqlite3_stmt *stmts[Q_COUNT];
	int depth;   /* open transaction levels */
	int user_tx; /* 1 while store_transaction_begin() is open */
	int busy_ms; /* busy timeout in effect */
};

/* ---- errors ------------------------------------------------------------- */

/*
 * SQLite reports a failed write as SQLITE_IOERR_WRITE but its errno is often
 * lost by then (it reads the global errno later).  Find the usual causes
 * ourselves: no space left, or the file size limit (RLIMIT_FSIZE) reached by
 * the database or its WAL.  0 when neither.
 */
static int guess_write_errno(const char *path)
{
	struct strbuf sb = STRBUF_INIT;
	struct statvfs vfs;
	struct rlimit rl;
	struct stat st;
	char *slash;
	int e = 0;
	strbuf_addstr(&sb, path);
	slash = strrchr(sb.buf, '/');
	if (slash)
		strbuf_setlen(&sb, (size_t)(slash - sb.buf) + 1);
	else {
		strbuf_reset(&sb);
		strbuf_addstr(&sb, ".");
	}
	if (statvfs(sb.buf, &vfs) == 0 && vfs.f_bavail == 0)
		e = ENOSPC;
	if (!e && getrlimit(RLIMIT_FSIZE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
		static const char *const suffix[] = { "", "-wal", "-journal" };
		for (int i = 0; i < 3 && !e; i++) {
			strbuf_reset(&sb);
			strbuf_addf(&sb, "%s%s", path, suffix[i]);
			if (stat(sb.buf, &st) == 0 && (rlim_t)st.st_size + 65536 >= rl.rlim_cur)
				e = EFBIG;
		}
	}
	strbuf_release(&sb);
	return e;
}

/*
 * A database SQLite cannot write: say which permission is missing, the
 * file's or its directory's (where the WAL and its index must be made).
 * Always -1.
 */
static int readonly_error(const char *path)
{
	struct strbuf dir = STRBUF_INIT;
	const char *slash = strrchr(path, '/');
	int rc;
	if (slash)
		strbuf_add(&dir, path, slash == path ? 1 : (size_t)(slash - path));
	else
		strbuf_addstr(&dir, ".");
	if (access(path, W_OK) < 0 && errno == EACCES)
		rc = error("history database '%s' is read-only (no permission to write it)", path);
	else if (access(path, W_OK) < 0 && errno == EROFS)
		rc = error("history database '%s' is read-only (a read-only file system)", path);
	else if (access(dir.buf, W_OK) < 0)
		rc = error("history database '%s' is read-only: its directory '%s' is not "
			   "writable (%s)",
			   path, dir.buf, strerror(errno));
	else
		rc = error("history database '%s' is read-only", path);
	strbuf_release(&dir);
	return rc;
}

/* Turn SQLite's state into one clear message; always returns -1. */
static int db_fail(struct store *st, sqlite3 *db, const char *path, int rc)
{
	int ext = db ? sqlite3_extended_errcode(db) : rc;
	int sys = db ? sqlite3_system_errno(db) : 0;
	const char *msg = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
	int busy_ms = st ? st->busy_ms : STORE_BUSY_TIMEOUT_MS;
	if (rc == SQLITE_OK)
		rc = ext;
	switch (rc & 0xff) {
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return error("history database '%s' is locked by another process "
			     "(waited %d ms)",
			     path, busy_ms);
	case SQLITE_FULL: return error("cannot write history database '%s': disk full", path);
	case SQLITE_READONLY: return readonly_error(path);
	case SQLITE_CORRUPT: return error("history database '%s' is corrupt (%s)", path, msg);
	case SQLITE_NOTADB: return error("'%s' is not a history database (%s)", path, msg);
	case SQLITE_CANTOPEN:
		return error("cannot open history database '%s': %s", path,
			     sys ? strerror(sys) : msg);
	case SQLITE_IOERR:
		if (!sys && (ext == SQLITE_IOERR_WRITE || ext == SQLITE_IOERR_FSYNC ||
			     ext == SQLITE_IOERR_TRUNCATE))
			sys = guess_write_errno(path);
		if (sys == ENOSPC || sys == EFBIG || sys == EDQUOT)
			return error("cannot write history database '%s': %s", path, strerror(sys));
		return error("history database '%s': i/o error (%s%s%s)", path, msg,
			     sys ? ": " : "", sys ? strerror(sys) : "");
	case SQLITE_NOMEM: return error("history database '%s': out of memory", path);
	default: return error("history database '%s': %s", path, msg);
	}
}

static int fail(struct store *st, int rc)
{
	return db_fail(st, st->db, st->path, rc);
}

/* ---- small helpers ------------------------------------------------------ */

/* JSON text copied as is, except bytes that are not UTF-8, which become
 * the escape \ufffd (they can only stand inside a string). */
static void add_json_text(struct strbuf *out, const char *s)
{
	size_t n = strlen(s);
	for (size_t i = 0; i < n;) {
		uint32_t cp;
		size_t l = utf8_valid(s + i, n - i, &cp);
		if (l) {
			strbuf_add(out, s + i, l);
			i += l;
		} else {
			strbuf_addstr(out, "\\ufffd");
			i++;
		}
	}
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static sqlite3_stmt *query(struct store *st, enum query q)
{
	if (!st->stmts[q]) {
		int rc = sqlite3_prepare_v3(st->db, query_sql[q], -1, SQLITE_PREPARE_PERSISTENT,
					    &st->stmts[q], NULL);
		if (rc != SQLITE_OK) {
			fail(st, rc);
			st->stmts[q] = NULL;
			return NULL;
		}
	}
	return st->stmts[q];
}

static void done(sqlite3_stmt *s)
{
	if (s) {
		sqlite3_reset(s);
		sqlite3_clear_bindings(s);
	}
}

/* Run a statement that returns no rows; 0 or -1. */
static int run(struct store *st, sqlite3_stmt *s)
{
	int rc = sqlite3_step(s);
	done(s);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW)
		return fail(st, rc);
	return 0;
}

static int exec(struct store *st, const char *sql)
{
	int rc = sqlite3_exec(st->db, sql, NULL, NULL, NULL);
	return rc == SQLITE_OK ? 0 : fail(st, rc);
}

static void bind_text(sqlite3_stmt *s, int i, const char *t)
{
	if (t)
		sqlite3_bind_text(s, i, t, -1, SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(s, i);
}

/*
 * A text column as a malloc'd string; NULL for SQL NULL.  Contents are sized
 * by the database, so running out of memory is reported (*oom = 1, NULL),
 * never an abort.
 */
static char *column_dup(sqlite3_stmt *s, int i, int *oom)
{
	const unsigned char *t = sqlite3_column_text(s, i);
	size_t n = (size_t)sqlite3_column_bytes(s, i);
	char *copy;
	if (!t)
		return NULL;
	copy = try_alloc_array(n + 1, 1);
	if (!copy) {
		*oom = 1;
		return NULL;
	}
	memcpy(copy, t, n);
	copy[n] = '\0';
	return copy;
}

/* Make room for need elements of size elem in *arr; -1 (error) when out of memory. */
static int grow(void *arrp, size_t need, size_t *alloc, size_t elem)
{
	void **arr = arrp;
	size_t cap, bytes;
	void *p;
	if (need <= *alloc)
		return 0;
	cap = *alloc < 16 ? 16 : *alloc + *alloc / 2;
	if (cap < need)
		cap = need;
	if (size_mul(cap, elem, &bytes) < 0 || !(p = realloc(*arr, bytes)))
		return error("out of memory reading the history");
	*arr = p;
	*alloc = cap;
	return 0;
}

/* Transactions: the outermost is BEGIN IMMEDIATE, inner ones savepoints. */
static int tx_begin(struct store *st)
{
	if (exec(st, st->depth ? "SAVEPOINT store_sp" : "BEGIN IMMEDIATE") < 0)
		return -1;
	st->depth++;
	return 0;
}

static int tx_commit(struct store *st)
{
	st->depth--;
	if (st->depth) {
		if (exec(st, "RELEASE store_sp") < 0) {
			st->depth++;
			return -1;
		}
		return 0;
	}
	if (exec(st, "COMMIT") == 0)
		return 0;
	/* A failed COMMIT (disk full) may leave the transaction open. */
	if (!sqlite3_get_autocommit(st->db)) {
		char *msg = error_take();
		sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
		error("%s", msg);
		free(msg);
	}
	return -1;
}

/* Undo after a failure; keeps the recorded error. */
static int tx_rollback(struct store *st)
{
	char *msg = error_take();
	st->depth--;
	if (st->depth)
		sqlite3_exec(st->db, "ROLLBACK TO store_sp; RELEASE store_sp", NULL, NULL, NULL);
	else if (!sqlite3_get_autocommit(st->db))
		sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
	error("%s", msg);
	free(msg);
	return -1;
}

static int random_id(char out[STORE_ID_SIZE])
{
	unsigned char b[STORE_ID_LEN / 2];
	static const char hex[] = "0123456789abcdef";
	size_t got = 0;
	while (got < sizeof(b)) {
		ssize_t r = getrandom(b + got, sizeof(b) - got, 0);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			/* No entropy source: time and pid still differ per call. */
			uint64_t x = (uint64_t)time_now_ns() ^ ((uint64_t)getpid() << 32);
			x *= 0x9e3779b97f4a7c15ull;
			memcpy(b, &x, sizeof(b));
			break;
		}
		got += (size_t)r;
	}
	for (size_t i = 0; i < sizeof(b); i++) {
		out[2 * i] = hex[b[i] >> 4];
		out[2 * i + 1] = hex[b[i] & 15];
	}
	out[STORE_ID_LEN] = '\0';
	return 0;
}

/* Session rowid from its public id: > 0, or -1 with "no session". */
static int64_t session_rowid(struct store *st, const char *id)
{
	sqlite3_stmt *s = query(st, Q_SESSION_ROWID);
	int rc;
	int64_t row;
	if (!s)
		return -1;
	sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
	rc = sqlite3_step(s);
	row = rc == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
	done(s);
	if (rc == SQLITE_ROW)
		return row;
	if (rc == SQLITE_DONE)
		return error("no session '%s' in '%s'", id, st->path);
	return fail(st, rc);
}

const char *store_status_name(enum store_status s)
{
	static const char *const names[] = {
		[STORE_COMPLETE] = "complete",       [STORE_CANCELLED] = "cancelled",
		[STORE_INTERRUPTED] = "interrupted", [STORE_ERROR] = "error",
		[STORE_STREAMING] = "streaming",
	};
	if ((unsigned)s < sizeof(names) / sizeof(names[0]))
		return names[s];
	return "complete";
}

int store_status_parse(const char *name)
{
	for (int i = STORE_COMPLETE; i <= STORE_STREAMING; i++)
		if (name && !strcmp(name, store_status_name((enum store_status)i)))
			return i;
	return -1;
}

/* ---- opening ------------------------------------------------------------ */

int store_default_path(struct strbuf *out)
{
	return xdg_path(out, "XDG_DATA_HOME", ".local/share", "history.db");
}

static int read_int(struct store *st, const char *sql, int64_t *out)
{
	sqlite3_stmt *s;
	int rc = sqlite3_prepare_v2(st->db, sql, -1, &s, NULL);
	if (rc != SQLITE_OK)
		return fail(st, rc);
	rc = sqlite3_step(s);
	*out = rc == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		fail(st, rc);
		sqlite3_finalize(s);
		return -1;
	}
	sqlite3_finalize(s);
	return 0;
}

/*
 * The header's version indexes the migrations, so only the versions this
 * code wrote may pass: a negative one (a flipped bit) would run unrelated
 * strings as SQL.  0 or -1, leaving the file untouched.
 */
static int version_check(struct store *st, int64_t v)
{
	if (v > STORE_SCHEMA_VERSION)
		return error("history database '%s' was written by a newer palaver (schema version "
			     "%" PRId64 ", this one reads up to %d); leaving it untouched",
			     st->path, v, STORE_SCHEMA_VERSION);
	if (v < 0)
		return error("history database '%s' has an unknown schema version %" PRId64
			     " (this palaver knows 0 to %d); leaving it untouched",
			     st->path, v, STORE_SCHEMA_VERSION);
	return 0;
}

static int migrate(struct store *st)
{
	int64_t v, foreign;
	char sql[64];
	if (tx_begin(st) < 0)
		return -1;
	/* Another process may have migrated while we waited for the lock. */
	if (read_int(st, "PRAGMA user_version", &v) < 0)
		return tx_rollback(st);
	if (version_check(st, v) < 0)
		return tx_rollback(st);
	if (v == 0) {
		/* Someone else's SQLite file must not be taken over. */
		if (read_int(st, "SELECT count(*) FROM sqlite_master", &foreign) < 0)
			return tx_rollback(st);
		if (foreign) {
			error("'%s' is an SQLite database but not a palaver history", st->path);
			return tx_rollback(st);
		}
	}
	for (; v < STORE_SCHEMA_VERSION; v++) {
		if (exec(st, migrations[v]) < 0) {
			error_prefix("migrating to schema version %" PRId64 ": ", v + 1);
			return tx_rollback(st);
		}
		snprintf(sql, sizeof(sql), "PRAGMA user_version = %" PRId64, v + 1);
		if (exec(st, sql) < 0)
			return tx_rollback(st);
	}
	return tx_commit(st);
}

static int rank_register(struct store *st);

/* Rows left 'streaming' by a process that is gone become 'interrupted'. */
static int recover_streaming(struct store *st)
{
	sqlite3_stmt *sel, *upd;
	int rc;
	size_t n = 0, alloc = 0;
	int64_t *ids = NULL;
	int rcs = sqlite3_prepare_v2(
		st->db, "SELECT id, writer_pid FROM messages WHERE status = 'streaming'", -1, &sel,
		NULL);
	if (rcs != SQLITE_OK)
		return fail(st, rcs);
	while ((rc = sqlite3_step(sel)) == SQLITE_ROW) {
		int64_t pid = sqlite3_column_int64(sel, 1);
		if (pid > 0 && pid != getpid() && (kill((pid_t)pid, 0) == 0 || errno == EPERM))
			continue; /* its writer still runs */
		if (pid == getpid())
			continue;
		ALLOC_GROW(ids, n + 1, alloc);
		ids[n++] = sqlite3_column_int64(sel, 0);
	}
	sqlite3_finalize(sel);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		free(ids);
		return fail(st, rc);
	}
	if (!n)
		return 0;
	rcs = sqlite3_prepare_v2(st->db,
				 "UPDATE messages SET status = 'interrupted', writer_pid = 0"
				 " WHERE id = ?1 AND status = 'streaming'",
				 -1, &upd, NULL);
	if (rcs != SQLITE_OK) {
		free(ids);
		return fail(st, rcs);
	}
	if (tx_begin(st) < 0) {
		sqlite3_finalize(upd);
		free(ids);
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		sqlite3_bind_int64(upd, 1, ids[i]);
		rc = sqlite3_step(upd);
		sqlite3_reset(upd);
		if (rc != SQLITE_DONE) {
			fail(st, rc);
			sqlite3_finalize(upd);
			free(ids);
			return tx_rollback(st);
		}
	}
	sqlite3_finalize(upd);
	free(ids);
	return tx_commit(st);
}

struct store *store_open(const char *path)
{
	struct strbuf def = STRBUF_INIT;
	struct store *st;
	struct stat sb;
	int64_t v;
	int rc;

	if (!path) {
		if (store_default_path(&def) < 0)
			return NULL;
		path = def.buf;
	}
	if (!*path) {
		strbuf_release(&def);
		error("history database path is empty");
		return NULL;
	}
	if (mkdir_parents(path) < 0) {
		strbuf_release(&def);
		return NULL;
	}
	if (stat(path, &sb) == 0 && !S_ISREG(sb.st_mode)) {
		error("history database '%s' is not a regular file", path);
		strbuf_release(&def);
		return NULL;
	}
	st = xcalloc(1, sizeof(*st));
	st->path = xstrdup(path);
	st->busy_ms = STORE_BUSY_TIMEOUT_MS;
	strbuf_release(&def);

	rc = sqlite3_open_v2(st->path, &st->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
	if (rc != SQLITE_OK)
		goto fail;
	sqlite3_extended_result_codes(st->db, 1);
	sqlite3_busy_timeout(st->db, st->busy_ms);
	if (sqlite3_db_readonly(st->db, "main") == 1) {
		readonly_error(st->path);
		goto out;
	}
	/* Read the version before anything can write (journal_mode=WAL does). */
	if (read_int(st, "PRAGMA user_version", &v) < 0 || version_check(st, v) < 0)
		goto out;
	if (v == 0) {
		int64_t tables;
		if (read_int(st, "SELECT count(*) FROM sqlite_master", &tables) < 0)
			goto out;
		if (tables) {
			error("'%s' is an SQLite database but not a palaver history", st->path);
			goto out;
		}
	}
	if (exec(st, "PRAGMA journal_mode = WAL") < 0 ||
	    exec(st, "PRAGMA synchronous = NORMAL") < 0 || exec(st, "PRAGMA foreign_keys = ON") < 0)
		goto out;
	/* Only an old file takes the write lock to migrate: opening an up-to-date
	 * one never waits for another process's write. */
	if ((v < STORE_SCHEMA_VERSION && migrate(st) < 0) || recover_streaming(st) < 0 ||
	    rank_register(st) < 0)
		goto out;
	return st;

fail:
	if (st->db)
		fail(st, rc);
	else
		db_fail(st, NULL, st->path, rc);
out:
	store_close(st);
	return NULL;
}

/* "file:" URI for path with the query q ("immutable=1"): SQLite reads
 * %-escapes, so every byte that is not plain is escaped. */
static void uri_for(struct strbuf *sb, const char *path, const char *q)
{
	strbuf_addstr(sb, "file:");
	for (const unsigned char *p = (const unsigned char *)path; *p; p++) {
		if (isalnum(*p) || strchr("/._-~", *p))
			strbuf_addch(sb, (char)*p);
		else
			strbuf_addf(sb, "%%%02X", *p);
	}
	strbuf_addf(sb, "?%s", q);
}

struct store *store_open_readonly(const char *path)
{
	struct strbuf def = STRBUF_INIT, uri = STRBUF_INIT;
	struct store *st;
	struct stat sb;
	int64_t v;
	int rc;

	if (!path) {
		if (store_default_path(&def) < 0)
			return NULL;
		path = def.buf;
	}
	if (!*path || stat(path, &sb) < 0) {
		/* nothing to read yet: created (and empty), as before */
		st = store_open(path);
		strbuf_release(&def);
		return st;
	}
	if (!S_ISREG(sb.st_mode)) {
		error("history database '%s' is not a regular file", path);
		strbuf_release(&def);
		return NULL;
	}
	st = xcalloc(1, sizeof(*st));
	st->path = xstrdup(path);
	st->busy_ms = STORE_BUSY_TIMEOUT_MS;
	strbuf_release(&def);
	/* Plainly first: a reader sharing the file with writers sees their
	 * commits.  Where the WAL index cannot be made (a read-only
	 * directory), as immutable: no writer can be there either. */
	for (int attempt = 0; attempt < 2; attempt++) {
		if (attempt) {
			sqlite3_close_v2(st->db);
			st->db = NULL;
			uri_for(&uri, st->path, "immutable=1");
		}
		rc = sqlite3_open_v2(attempt ? uri.buf : st->path, &st->db,
				     SQLITE_OPEN_READONLY | (attempt ? SQLITE_OPEN_URI : 0), NULL);
		if (rc != SQLITE_OK) {
			if (st->db)
				fail(st, rc);
			else
				db_fail(st, NULL, st->path, rc);
			goto out;
		}
		sqlite3_extended_result_codes(st->db, 1);
		sqlite3_busy_timeout(st->db, st->busy_ms);
		rc = read_int(st, "SELECT count(*) FROM sqlite_master", &v);
		if (rc == 0 || attempt)
			break;
		int ext = sqlite3_extended_errcode(st->db);
		if ((ext & 0xff) != SQLITE_READONLY && (ext & 0xff) != SQLITE_CANTOPEN)
			goto out;
		error_clear();
	}
	if (rc < 0)
		goto out;
	int64_t tables = v;
	if (read_int(st, "PRAGMA user_version", &v) < 0 || version_check(st, v) < 0)
		goto out;
	if (v == 0 && tables == 0) {
		/* an empty file: made a history as store_open() would */
		char *p = xstrdup(st->path);
		store_close(st);
		strbuf_release(&uri);
		st = store_open(p);
		free(p);
		return st;
	}
	if (v < STORE_SCHEMA_VERSION) {
		/* an older palaver's: upgraded as store_open() would where it can
		 * be written (a read-only command after an upgrade of palaver),
		 * refused where it cannot */
		char *p = xstrdup(st->path);
		int64_t old = v;
		store_close(st);
		strbuf_release(&uri);
		st = store_open(p);
		if (!st) {
			char why[512];
			snprintf(why, sizeof(why), "%s", error_message());
			error("history database '%s' is from an older palaver (schema version %" PRId64
			      ") and needs upgrading, which needs write access (%s)",
			      p, old, why);
		}
		free(p);
		return st;
	}
	if (rank_register(st) < 0)
		goto out;
	strbuf_release(&uri);
	return st;
out:
	strbuf_release(&uri);
	store_close(st);
	return NULL;
}

void store_close(struct store *st)
{
	if (!st)
		return;
	for (int i = 0; i < Q_COUNT; i++)
		sqlite3_finalize(st->stmts[i]);
	if (st->db) {
		if (st->depth)
			sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
		sqlite3_close_v2(st->db);
	}
	free(st->path);
	free(st);
}

const char *store_path(const struct store *st)
{
	return st->path;
}

void store_set_busy_timeout(struct store *st, int ms)
{
	st->busy_ms = ms < 0 ? 0 : ms;
	sqlite3_busy_timeout(st->db, st->busy_ms);
}

int store_transaction_begin(struct store *st)
{
	if (st->user_tx)
		return error("history database '%s': a transaction is already open", st->path);
	/* A bulk transaction outgrows SQLite's 2 MiB page cache and would spill
	 * pages to the WAL over and over; give it 64 MiB until it ends. */
	sqlite3_exec(st->db, "PRAGMA cache_size = -65536", NULL, NULL, NULL);
	if (tx_begin(st) < 0)
		return -1;
	st->user_tx = 1;
	return 0;
}

int store_transaction_commit(struct store *st)
{
	int r;
	if (!st->user_tx)
		return error("history database '%s': no transaction is open", st->path);
	st->user_tx = 0;
	r = tx_commit(st);
	sqlite3_exec(st->db, "PRAGMA cache_size = -2000", NULL, NULL, NULL);
	sqlite3_db_release_memory(st->db);
	return r;
}

int store_transaction_rollback(struct store *st)
{
	if (!st->user_tx)
		return error("history database '%s': no transaction is open", st->path);
	st->user_tx = 0;
	error_clear();
	tx_rollback(st);
	error_clear();
	sqlite3_exec(st->db, "PRAGMA cache_size = -2000", NULL, NULL, NULL);
	sqlite3_db_release_memory(st->db);
	return 0;
}

/* ---- sessions ----------------------------------------------------------- */

/* Length in bytes of the UTF-8 sequence starting with byte c (1 for junk). */
static size_t utf8_len(unsigned char c)
{
	if (c >= 0xf0 && c < 0xf8)
		return 4;
	if (c >= 0xe0)
		return c < 0xf0 ? 3 : 1;
	if (c >= 0xc0)
		return 2;
	return 1;
}

static int is_blank(unsigned char c)
{
	return c <= 0x20 || c == 0x7f; /* white space and control characters */
}

/*
 * One line: runs of white space and control characters become one space, trimmed,
 * cut to at most max characters at a word boundary when one is near the end
 * (then "…" appended).  Malloc'd.
 */
static char *one_line(const char *text, size_t max)
{
	struct strbuf sb = STRBUF_INIT;
	size_t chars = 0, last_space_len = 0, last_space_chars = 0;
	int cut = 0, space = 0;
	const unsigned char *p = (const unsigned char *)text;
	while (*p && is_blank(*p))
		p++;
	while (*p) {
		if (is_blank(*p)) {
			space = 1;
			p++;
			continue;
		}
		if (space) {
			if (chars + 1 > max) {
				cut = 1;
				break;
			}
			last_space_len = sb.len;
			last_space_chars = chars;
			strbuf_addch(&sb, ' ');
			chars++;
			space = 0;
		}
		size_t n = utf8_len(*p);
		for (size_t i = 1; i < n; i++)
			if ((p[i] & 0xc0) != 0x80) {
				n = 1;
				break;
			}
		if (chars + 1 > max) {
			cut = 1;
			break;
		}
		strbuf_add(&sb, p, n);
		chars++;
		p += n;
	}
	if (cut) {
		if (last_space_len && last_space_chars >= max / 2)
			strbuf_setlen(&sb, last_space_len);
		strbuf_rtrim(&sb);
		strbuf_addstr(&sb, "…");
	}
	return strbuf_detach(&sb, NULL);
}

int store_session_create(struct store *st, const struct store_session_params *p,
			 char id_out[STORE_ID_SIZE])
{
	static const struct store_session_params none;
	char *title = NULL;
	int64_t now = now_ms();
	if (!p)
		p = &none;
	if (p->sampling) {
		struct json *j = json_parse(p->sampling, strlen(p->sampling));
		int ok = j && j->type == JSON_OBJECT;
		json_free(j);
		if (!ok)
			return error("sampling parameters for history must be a JSON object");
	}
	if (p->title) {
		title = one_line(p->title, SIZE_MAX);
		if (!*title) {
			free(title);
			return error("a session title cannot be empty");
		}
	}
	if (tx_begin(st) < 0) {
		free(title);
		return -1;
	}
	for (int tries = 0;; tries++) {
		sqlite3_stmt *s = query(st, Q_SESSION_INSERT);
		int rc;
		if (!s)
			goto fail;
		random_id(id_out);
		sqlite3_bind_text(s, 1, id_out, -1, SQLITE_STATIC);
		sqlite3_bind_text(s, 2, title ? title : "", -1, SQLITE_STATIC);
		sqlite3_bind_int(s, 3, title == NULL);
		bind_text(s, 4, p->model);
		bind_text(s, 5, p->system_prompt);
		bind_text(s, 6, p->sampling);
		sqlite3_bind_int64(s, 7, now);
		sqlite3_bind_int64(s, 8, now);
		rc = sqlite3_step(s);
		done(s);
		if (rc == SQLITE_DONE)
			break;
		if (rc != SQLITE_CONSTRAINT_UNIQUE || tries > 20) {
			fail(st, rc);
			goto fail;
		}
	}
	free(title);
	return tx_commit(st);
fail:
	free(title);
	return tx_rollback(st);
}

int store_session_set(struct store *st, const char *id, const struct store_session_params *p)
{
	sqlite3_stmt *s;
	int rc;
	if (p->sampling) {
		struct json *j = json_parse(p->sampling, strlen(p->sampling));
		int ok = j && j->type == JSON_OBJECT;
		json_free(j);
		if (!ok)
			return error("sampling parameters for history must be a JSON object");
	}
	if (p->title && store_session_rename(st, id, p->title) < 0)
		return -1;
	if (!(s = query(st, Q_SESSION_SET)))
		return -1;
	sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
	bind_text(s, 2, p->model);
	bind_text(s, 3, p->system_prompt);
	bind_text(s, 4, p->sampling);
	rc = sqlite3_step(s);
	done(s);
	if (rc != SQLITE_DONE)
		return fail(st, rc);
	if (sqlite3_changes(st->db) == 0)
		return error("no session '%s' in '%s'", id, st->path);
	return 0;
}

int store_session_rename(struct store *st, const char *id, const char *title)
{
	char *t = one_line(title ? title : "", SIZE_MAX);
	sqlite3_stmt *s;
	int rc;
	if (!*t) {
		free(t);
		return error("a session title cannot be empty");
	}
	if (!(s = query(st, Q_SESSION_RENAME))) {
		free(t);
		return -1;
	}
	sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, t, -1, SQLITE_STATIC);
	rc = sqlite3_step(s);
	done(s);
	free(t);
	if (rc != SQLITE_DONE)
		return fail(st, rc);
	if (sqlite3_changes(st->db) == 0)
		return error("no session '%s' in '%s'", id, st->path);
	return 0;
}

int store_session_delete(struct store *st, const char *id)
{
	int64_t row;
	sqlite3_stmt *s;
	if (tx_begin(st) < 0)
		return -1;
	if ((row = session_rowid(st, id)) < 0)
		return tx_rollback(st);
	/* Explicitly, so that the FTS triggers run even if a connection left
	 * foreign keys off. */
	if (!(s = query(st, Q_SESSION_DELETE_MSGS)))
		return tx_rollback(st);
	sqlite3_bind_int64(s, 1, row);
	if (run(st, s) < 0)
		return tx_rollback(st);
	if (!(s = query(st, Q_SESSION_DELETE)))
		return tx_rollback(st);
	sqlite3_bind_int64(s, 1, row);
	if (run(st, s) < 0)
		return tx_rollback(st);
	return tx_commit(st);
}

int store_session_set_kv_state(struct store *st, const char *id, const char *path)
{
	sqlite3_stmt *s = query(st, Q_SESSION_SET_KV);
	if (!s)
		return -1;
	sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
	bind_text(s, 2, path && *path ? path : NULL);
	int rc = sqlite3_step(s);
	done(s);
	if (rc != SQLITE_DONE)
		return fail(st, rc);
	if (sqlite3_changes(st->db) == 0)
		return error("no session '%s' in '%s'", id, st->path);
	return 0;
}

int store_session_kv_state(struct store *st, const char *id, struct strbuf *out)
{
	sqlite3_stmt *s = query(st, Q_SESSION_GET_KV);
	if (!s)
		return -1;
	strbuf_reset(out);
	sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW && sqlite3_column_text(s, 0))
		strbuf_addstr(out, (const char *)sqlite3_column_text(s, 0));
	done(s);
	if (rc == SQLITE_DONE)
		return error("no session '%s' in '%s'", id, st->path);
	if (rc != SQLITE_ROW)
		return fail(st, rc);
	return 0;
}

/* Fill out from a sessions row; -1 (error) when out of memory. */
static int read_session(sqlite3_stmt *s, struct store_session *out)
{
	const unsigned char *uid = sqlite3_column_text(s, 0);
	int oom = 0;
	memset(out, 0, sizeof(*out));
	snprintf(out->id, sizeof(out->id), "%s", uid ? (const char *)uid : "");
	out->title = column_dup(s, 1, &oom);
	out->title_auto = sqlite3_column_int(s, 2);
	out->model = column_dup(s, 3, &oom);
	out->system_prompt = column_dup(s, 4, &oom);
	out->sampling = column_dup(s, 5, &oom);
	out->created_ms = sqlite3_column_int64(s, 6);
	out->updated_ms = sqlite3_column_int64(s, 7);
	out->message_count = sqlite3_column_int64(s, 8);
	out->preview = column_dup(s, 9, &oom);
	if (oom) {
		store_session_free(out);
		return error("out of memory reading the history");
	}
	if (!out->title)
		out->title = xstrdup("");
	if (!out->preview)
		out->preview = xstrdup("");
	return 0;
}

int store_session_get(struct store *st, const char *id, struct store_session *out)
{
	sqlite3_stmt *s = query(st, Q_SESSION_GET);
	int rc;
	memset(out, 0, sizeof(*out));
	if (!s)
		return -1;
	sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW && read_session(s, out) < 0) {
		done(s);
		return -1;
	}
	done(s);
	if (rc == SQLITE_ROW)
		return 0;
	if (rc == SQLITE_DONE)
		return error("no session '%s' in '%s'", id, st->path);
	return fail(st, rc);
}

int store_session_list(struct store *st, size_t limit, struct store_session **out, size_t *n)
{
	sqlite3_stmt *s = query(st, Q_SESSION_LIST);
	struct store_session *arr = NULL;
	size_t alloc = 0, count = 0;
	int rc;
	*out = NULL;
	*n = 0;
	if (!s)
		return -1;
	sqlite3_bind_int64(s, 1, limit ? (int64_t)(limit > INT64_MAX ? INT64_MAX : limit) : -1);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (grow(&arr, count + 1, &alloc, sizeof(*arr)) < 0 ||
		    read_session(s, &arr[count]) < 0) {
			done(s);
			store_sessions_free(arr, count);
			return -1;
		}
		count++;
	}
	done(s);
	if (rc != SQLITE_DONE) {
		store_sessions_free(arr, count);
		return fail(st, rc);
	}
	*out = arr;
	*n = count;
	return 0;
}

void store_session_free(struct store_session *s)
{
	if (!s)
		return;
	free(s->title);
	free(s->model);
	free(s->system_prompt);
	free(s->sampling);
	free(s->preview);
	memset(s, 0, sizeof(*s));
}

void store_sessions_free(struct store_session *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		store_session_free(&s[i]);
	free(s);
}

/* Case-insensitive (ASCII) prefix test. */
static int has_prefix_ci(const char *s, const char *prefix)
{
	for (; *prefix; s++, prefix++)
		if (tolower((unsigned char)*s) != tolower((unsigned char)*prefix))
			return 0;
	return 1;
}

int store_session_resolve(struct store *st, const char *query_text, char id_out[STORE_ID_SIZE])
{
	sqlite3_stmt *s;
	struct strbuf cands = STRBUF_INIT;
	size_t q_len = strlen(query_text), matches = 0;
	int rc;
	if (!q_len)
		return error("empty session id");
	if (q_len == STORE_ID_LEN) {
		int64_t row;
		sqlite3_stmt *r = query(st, Q_SESSION_ROWID);
		if (!r)
			return -1;
		sqlite3_bind_text(r, 1, query_text, -1, SQLITE_STATIC);
		rc = sqlite3_step(r);
		row = rc == SQLITE_ROW ? sqlite3_column_int64(r, 0) : 0;
		done(r);
		if (rc != SQLITE_ROW && rc != SQLITE_DONE)
			return fail(st, rc);
		if (row) {
			memcpy(id_out, query_text, STORE_ID_SIZE);
			return 0;
		}
	}
	/* A title prefix: scanning titles is fine at the sizes a person keeps
	 * (10,000 sessions take about a millisecond). */
	rc = sqlite3_prepare_v2(st->db, "SELECT uid, title FROM sessions ORDER BY updated_at DESC",
				-1, &s, NULL);
	if (rc != SQLITE_OK)
		return fail(st, rc);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		const char *uid = (const char *)sqlite3_column_text(s, 0);
		const char *title = (const char *)sqlite3_column_text(s, 1);
		if (!uid)
			continue;
		if (!((title && has_prefix_ci(title, query_text)) ||
		      (q_len >= 4 && has_prefix_ci(uid, query_text))))
			continue;
		if (matches++ == 0)
			snprintf(id_out, STORE_ID_SIZE, "%s", uid);
		if (matches <= 10)
			strbuf_addf(&cands, "\n  %s  %s", uid, title ? title : "");
	}
	sqlite3_finalize(s);
	if (rc != SQLITE_DONE) {
		strbuf_release(&cands);
		return fail(st, rc);
	}
	if (matches == 1) {
		strbuf_release(&cands);
		return 0;
	}
	if (matches == 0)
		error("no session matches '%s'", query_text);
	else
		error("'%s' matches %zu sessions; use more of the title or the id:%s%s", query_text,
		      matches, cands.buf, matches > 10 ? "\n  ..." : "");
	strbuf_release(&cands);
	return -1;
}

/* ---- messages ----------------------------------------------------------- */

static int64_t insert_message(struct store *st, int64_t row, const char *role, const char *content,
			      size_t len, enum store_status status, const struct store_stats *stats,
			      int64_t created, int64_t updated, int64_t pid, const char *backend,
			      const char *model)
{
	sqlite3_stmt *s = query(st, Q_NEXT_SEQ);
	int64_t seq;
	int rc;
	if (!s)
		return -1;
	sqlite3_bind_int64(s, 1, row);
	rc = sqlite3_step(s);
	seq = sqlite3_column_int64(s, 0);
	done(s);
	if (rc != SQLITE_ROW)
		return fail(st, rc);
	if (!(s = query(st, Q_MSG_INSERT)))
		return -1;
	sqlite3_bind_int64(s, 1, row);
	sqlite3_bind_int64(s, 2, seq);
	sqlite3_bind_text(s, 3, role, -1, SQLITE_STATIC);
	sqlite3_bind_text64(s, 4, content, len, SQLITE_STATIC, SQLITE_UTF8);
	sqlite3_bind_text(s, 5, store_status_name(status), -1, SQLITE_STATIC);
	sqlite3_bind_int(s, 6, stats ? stats->prompt_tokens : 0);
	sqlite3_bind_int(s, 7, stats ? stats->gen_tokens : 0);
	sqlite3_bind_double(s, 8, stats ? stats->prefill_ms : 0);
	sqlite3_bind_double(s, 9, stats ? stats->gen_ms : 0);
	sqlite3_bind_int64(s, 10, created);
	sqlite3_bind_int64(s, 11, updated);
	sqlite3_bind_int64(s, 12, pid);
	bind_text(s, 13, backend);
	bind_text(s, 14, model);
	if (run(st, s) < 0)
		return -1;
	return sqlite3_last_insert_rowid(st->db);
}

/* The first user message names a session whose title is still automatic. */
static int auto_title(struct store *st, int64_t row, const char *content)
{
	sqlite3_stmt *s = query(st, Q_SESSION_TITLE_AUTO);
	int rc, want;
	char *title;
	if (!s)
		return -1;
	sqlite3_bind_int64(s, 1, row);
	rc = sqlite3_step(s);
	want = rc == SQLITE_ROW && sqlite3_column_int(s, 0);
	done(s);
	if (rc != SQLITE_ROW)
		return fail(st, rc);
	if (!want)
		return 0;
	title = one_line(content, STORE_TITLE_MAX);
	if (!*title) {
		free(title);
		return 0;
	}
	if (!(s = query(st, Q_SESSION_SET_TITLE))) {
		free(title);
		return -1;
	}
	sqlite3_bind_int64(s, 1, row);
	sqlite3_bind_text(s, 2, title, -1, SQLITE_STATIC);
	rc = run(st, s);
	free(title);
	return rc;
}

static int check_role(const char *role)
{
	if (!role || !*role)
		return error("a message needs a role");
	return 0;
}

int64_t store_message_append(struct store *st, const char *session_id, const char *role,
			     const char *content, enum store_status status,
			     const struct store_stats *stats)
{
	int64_t row, id, now = now_ms();
	if (check_role(role) < 0)
		return -1;
	if (!content)
		content = "";
	if (tx_begin(st) < 0)
		return -1;
	if ((row = session_rowid(st, session_id)) < 0)
		return tx_rollback(st);
	id = insert_message(st, row, role, content, strlen(content), status, stats, now, now,
			    status == STORE_STREAMING ? getpid() : 0, NULL, NULL);
	if (id < 0)
		return tx_rollback(st);
	if (!strcmp(role, "user") && auto_title(st, row, content) < 0)
		return tx_rollback(st);
	if (tx_commit(st) < 0)
		return -1;
	return id;
}

int64_t store_message_begin(struct store *st, const char *session_id, const char *role)
{
	return store_message_append(st, session_id, role, "", STORE_STREAMING, NULL);
}

/* Run the UPDATE s (bound) of one message in a transaction: 0, or -1 when
 * it failed or there is no such message. */
static int update_row(struct store *st, sqlite3_stmt *s, int64_t message_id)
{
	int rc;
	if (tx_begin(st) < 0) {
		done(s);
		return -1;
	}
	rc = sqlite3_step(s);
	done(s);
	if (rc != SQLITE_DONE) {
		fail(st, rc);
		return tx_rollback(st);
	}
	if (sqlite3_changes(st->db) == 0) {
		error("no message %" PRId64 " in '%s'", message_id, st->path);
		return tx_rollback(st);
	}
	return tx_commit(st);
}

int store_message_restart(struct store *st, int64_t message_id)
{
	sqlite3_stmt *s = query(st, Q_MSG_RESTART);
	if (!s)
		return -1;
	sqlite3_bind_int64(s, 1, message_id);
	sqlite3_bind_int64(s, 2, now_ms());
	sqlite3_bind_int64(s, 3, getpid());
	return update_row(st, s, message_id);
}

int store_message_set_model(struct store *st, int64_t message_id, const char *backend,
			    const char *model)
{
	sqlite3_stmt *s = query(st, Q_MSG_MODEL);
	if (!s)
		return -1;
	sqlite3_bind_int64(s, 1, message_id);
	sqlite3_bind_text(s, 2, backend, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 3, model, -1, SQLITE_STATIC);
	return update_row(st, s, message_id);
}

int store_message_set_reasoning(struct store *st, int64_t message_id, const char *reasoning,
				size_t len)
{
	sqlite3_stmt *s = query(st, Q_MSG_REASONING);
	if (!s)
		return -1;
	sqlite3_bind_int64(s, 1, message_id);
	if (reasoning && len)
		sqlite3_bind_text64(s, 2, reasoning, len, SQLITE_STATIC, SQLITE_UTF8);
	else
		sqlite3_bind_null(s, 2);
	return update_row(st, s, message_id);
}

static int update_message(struct store *st, int64_t message_id, const char *content, size_t len,
			  int finish, enum store_status status, const struct store_stats *stats)
{
	sqlite3_stmt *s = query(st, finish ? Q_MSG_FINISH : Q_MSG_UPDATE);
	if (!s)
		return -1;
	if (!content) {
		content = "";
		len = 0;
	}
	sqlite3_bind_int64(s, 1, message_id);
	sqlite3_bind_text64(s, 2, content, len, SQLITE_STATIC, SQLITE_UTF8);
	sqlite3_bind_int64(s, 3, now_ms());
	if (finish) {
		sqlite3_bind_text(s, 4, store_status_name(status), -1, SQLITE_STATIC);
		sqlite3_bind_int(s, 5, stats ? stats->prompt_tokens : 0);
		sqlite3_bind_int(s, 6, stats ? stats->gen_tokens : 0);
		sqlite3_bind_double(s, 7, stats ? stats->prefill_ms : 0);
		sqlite3_bind_double(s, 8, stats ? stats->gen_ms : 0);
	}
	return update_row(st, s, message_id);
}

int store_message_update(struct store *st, int64_t message_id, const char *content, size_t len)
{
	return update_message(st, message_id, content, len, 0, STORE_STREAMING, NULL);
}

int store_message_finish(struct store *st, int64_t message_id, const char *content, size_t len,
			 enum store_status status, const struct store_stats *stats)
{
	return update_message(st, message_id, content, len, 1, status, stats);
}

int store_messages_load(struct store *st, const char *session_id, struct store_message **out,
			size_t *n)
{
	struct store_message *arr = NULL;
	size_t alloc = 0, count = 0;
	sqlite3_stmt *s;
	int64_t row;
	int rc;
	*out = NULL;
	*n = 0;
	if ((row = session_rowid(st, session_id)) < 0)
		return -1;
	if (!(s = query(st, Q_MSG_LOAD)))
		return -1;
	sqlite3_bind_int64(s, 1, row);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct store_message *m;
		int status, oom = 0;
		if (grow(&arr, count + 1, &alloc, sizeof(*arr)) < 0) {
			done(s);
			store_messages_free(arr, count);
			return -1;
		}
		m = &arr[count++];
		memset(m, 0, sizeof(*m));
		m->id = sqlite3_column_int64(s, 0);
		m->seq = sqlite3_column_int64(s, 1);
		m->role = column_dup(s, 2, &oom);
		m->content = column_dup(s, 3, &oom);
		m->backend = column_dup(s, 11, &oom);
		m->model = column_dup(s, 12, &oom);
		m->reasoning = column_dup(s, 13, &oom);
		if (oom) {
			done(s);
			store_messages_free(arr, count);
			return error("out of memory reading the history");
		}
		if (!m->role)
			m->role = xstrdup("");
		if (!m->content)
			m->content = xstrdup("");
		status = store_status_parse((const char *)sqlite3_column_text(s, 4));
		m->status = status < 0 ? STORE_COMPLETE : (enum store_status)status;
		m->stats.prompt_tokens = sqlite3_column_int(s, 5);
		m->stats.gen_tokens = sqlite3_column_int(s, 6);
		m->stats.prefill_ms = sqlite3_column_double(s, 7);
		m->stats.gen_ms = sqlite3_column_double(s, 8);
		m->created_ms = sqlite3_column_int64(s, 9);
		m->updated_ms = sqlite3_column_int64(s, 10);
	}
	done(s);
	if (rc != SQLITE_DONE) {
		store_messages_free(arr, count);
		return fail(st, rc);
	}
	*out = arr;
	*n = count;
	return 0;
}

void store_messages_free(struct store_message *m, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(m[i].role);
		free(m[i].content);
		free(m[i].backend);
		free(m[i].model);
		free(m[i].reasoning);
	}
	free(m);
}

/* ---- search ------------------------------------------------------------- */

/*
 * palaver_rank(messages_fts): BM25 without its IDF factor, negated (lower is
 * better, like bm25()).  FTS5's bm25() finds each phrase's IDF by walking
 * every row that contains it, once per query: 0.2 s for a word in half of a
 * million messages, whatever the LIMIT.  Every hit contains every word (the
 * words are ANDed), so IDF only shifts weight between the words' term
 * frequencies; ranking by term frequency and length alone keeps the cost
 * proportional to the rows ranked.
 */
static void rank_fn(const Fts5ExtensionApi *api, Fts5Context *fts, sqlite3_context *ctx, int argc,
		    sqlite3_value **argv)
{
	enum { MAX_PHRASES = 64 };
	const double k1 = 1.2, b = 0.75;
	int tf[MAX_PHRASES] = { 0 };
	int nphrase = api->xPhraseCount(fts), ninst = 0, dl = 0;
	sqlite3_int64 nrow = 0, total = 0;
	double avgdl, score = 0;
	(void)argc;
	(void)argv;
	if (api->xInstCount(fts, &ninst) != SQLITE_OK || api->xRowCount(fts, &nrow) != SQLITE_OK ||
	    api->xColumnTotalSize(fts, 0, &total) != SQLITE_OK ||
	    api->xColumnSize(fts, 0, &dl) != SQLITE_OK) {
		sqlite3_result_error(ctx, "palaver_rank: cannot read the index", -1);
		return;
	}
	for (int i = 0; i < ninst; i++) {
		int phrase, col, off;
		if (api->xInst(fts, i, &phrase, &col, &off) == SQLITE_OK && phrase >= 0 &&
		    phrase < MAX_PHRASES)
			tf[phrase]++;
	}
	avgdl = nrow > 0 && total > 0 ? (double)total / (double)nrow : 1.0;
	for (int p = 0; p < nphrase && p < MAX_PHRASES; p++)
		score += tf[p] * (k1 + 1) / (tf[p] + k1 * (1 - b + b * dl / avgdl));
	sqlite3_result_double(ctx, -score);
}

/* Register palaver_rank() on this connection.  0 or -1. */
static int rank_register(struct store *st)
{
	fts5_api *api = NULL;
	sqlite3_stmt *s;
	int rc = sqlite3_prepare_v2(st->db, "SELECT fts5(?1)", -1, &s, NULL);
	if (rc != SQLITE_OK)
		return fail(st, rc);
	sqlite3_bind_pointer(s, 1, (void *)&api, "fts5_api_ptr", NULL);
	sqlite3_step(s);
	sqlite3_finalize(s);
	if (!api || api->iVersion < 2)
		return error("history database '%s': this SQLite has no usable FTS5", st->path);
	rc = api->xCreateFunction(api, "palaver_rank", NULL, rank_fn, NULL);
	return rc == SQLITE_OK ? 0 : fail(st, rc);
}

/*
 * Plain words -> an FTS5 expression that cannot be a syntax error: every
 * word becomes a quoted string ("" doubles a quote inside), implicitly
 * ANDed; trailing stars become a prefix match outside the quotes.
 * Returns the number of words.
 */
static size_t fts_quote(const char *q, struct strbuf *out)
{
	size_t words = 0;
	const char *p = q;
	while (*p) {
		const char *w;
		size_t len;
		int prefix = 0;
		while (*p && isspace((unsigned char)*p))
			p++;
		w = p;
		while (*p && !isspace((unsigned char)*p))
			p++;
		len = (size_t)(p - w);
		while (len && w[len - 1] == '*') {
			len--;
			prefix = 1;
		}
		if (!len)
			continue;
		if (words++)
			strbuf_addch(out, ' ');
		strbuf_addch(out, '"');
		for (size_t i = 0; i < len; i++) {
			if (w[i] == '"')
				strbuf_addch(out, '"');
			strbuf_addch(out, w[i]);
		}
		strbuf_addch(out, '"');
		if (prefix)
			strbuf_addch(out, '*');
	}
	return words;
}

int store_search(struct store *st, const char *q, size_t limit, const char *open, const char *close,
		 struct store_hit **out, size_t *n)
{
	struct strbuf expr = STRBUF_INIT;
	struct store_hit *arr = NULL;
	size_t alloc = 0, count = 0;
	sqlite3_stmt *s;
	int rc;
	*out = NULL;
	*n = 0;
	if (!q || !fts_quote(q, &expr)) {
		strbuf_release(&expr);
		return 0;
	}
	if (!(s = query(st, Q_SEARCH))) {
		strbuf_release(&expr);
		return -1;
	}
	sqlite3_bind_text(s, 1, expr.buf, (int)expr.len, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, open ? open : "[", -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 3, close ? close : "]", -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 4, limit ? (int64_t)(limit > INT64_MAX ? INT64_MAX : limit) : 50);
	sqlite3_bind_int(s, 5, STORE_SEARCH_WINDOW);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct store_hit *h;
		const unsigned char *uid = sqlite3_column_text(s, 0);
		int oom = 0;
		if (grow(&arr, count + 1, &alloc, sizeof(*arr)) < 0) {
			done(s);
			strbuf_release(&expr);
			store_hits_free(arr, count);
			return -1;
		}
		h = &arr[count++];
		memset(h, 0, sizeof(*h));
		snprintf(h->session_id, sizeof(h->session_id), "%s", uid ? (const char *)uid : "");
		h->title = column_dup(s, 1, &oom);
		h->message_id = sqlite3_column_int64(s, 2);
		h->seq = sqlite3_column_int64(s, 3);
		h->role = column_dup(s, 4, &oom);
		h->snippet = column_dup(s, 5, &oom);
		if (oom) {
			done(s);
			strbuf_release(&expr);
			store_hits_free(arr, count);
			return error("out of memory reading the history");
		}
		if (!h->title)
			h->title = xstrdup("");
		if (!h->role)
			h->role = xstrdup("");
		if (!h->snippet)
			h->snippet = xstrdup("");
		h->rank = sqlite3_column_double(s, 6);
		h->updated_ms = sqlite3_column_int64(s, 7);
	}
	done(s);
	strbuf_release(&expr);
	if (rc != SQLITE_DONE) {
		store_hits_free(arr, count);
		return fail(st, rc);
	}
	*out = arr;
	*n = count;
	return 0;
}

void store_hits_free(struct store_hit *h, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(h[i].title);
		free(h[i].role);
		free(h[i].snippet);
	}
	free(h);
}

/* ---- export ------------------------------------------------------------- */

static void add_time_utc(struct strbuf *sb, int64_t ms)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	char buf[64];
	if (gmtime_r(&t, &tm) && strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M UTC", &tm))
		strbuf_addstr(sb, buf);
}

static void json_str(struct strbuf *sb, const char *s)
{
	if (!s) {
		strbuf_addstr(sb, "null");
		return;
	}
	strbuf_addch(sb, '"');
	strbuf_add_json_escaped(sb, s, strlen(s));
	strbuf_addch(sb, '"');
}

/* A double as JSON wants it, whatever LC_NUMERIC says. */
static void json_double(struct strbuf *sb, double v)
{
	char buf[64], *comma;
	snprintf(buf, sizeof(buf), "%.17g", v);
	while ((comma = strchr(buf, ',')))
		*comma = '.';
	strbuf_addstr(sb, buf);
}

static const char *role_heading(const char *role)
{
	if (!strcmp(role, "user"))
		return "User";
	if (!strcmp(role, "assistant"))
		return "Assistant";
	if (!strcmp(role, "system"))
		return "System";
	return role;
}

void store_format_markdown(const struct store_session *ss, const struct store_message *m, size_t n,
			   struct strbuf *out)
{
	strbuf_addf(out, "# %s\n\n", ss->title && *ss->title ? ss->title : "(untitled)");
	if (*ss->id)
		strbuf_addf(out, "- session: %s\n", ss->id);
	if (ss->model)
		strbuf_addf(out, "- model: %s\n", ss->model);
	strbuf_addstr(out, "- created: ");
	add_time_utc(out, ss->created_ms);
	strbuf_addstr(out, "\n");
	if (ss->sampling)
		strbuf_addf(out, "- sampling: `%s`\n", ss->sampling);
	if (ss->system_prompt) {
		strbuf_addstr(out, "\n## System prompt\n\n");
		strbuf_addstr(out, ss->system_prompt);
		strbuf_addch(out, '\n');
	}
	for (size_t i = 0; i < n; i++) {
		int complete = m[i].status == STORE_COMPLETE;
		strbuf_addf(out, "\n## %s", role_heading(m[i].role));
		if (m[i].model || !complete) {
			char name[128] = "";
			if (m[i].model)
				store_model_name(m[i].model, name, sizeof(name));
			strbuf_addf(out, " (%s%s%s)", name, m[i].model && !complete ? ", " : "",
				    complete ? "" : store_status_name(m[i].status));
		}
		strbuf_addstr(out, "\n\n");
		if (m[i].reasoning) {
			/* collapsed where Markdown renders HTML (GitHub, most viewers) */
			strbuf_addstr(out, "<details>\n<summary>Thinking</summary>\n\n");
			strbuf_addstr(out, m[i].reasoning);
			strbuf_addstr(out, "\n\n</details>\n\n");
		}
		strbuf_addstr(out, m[i].content);
		if (out->len && out->buf[out->len - 1] != '\n')
			strbuf_addch(out, '\n');
		if (m[i].stats.gen_tokens && m[i].stats.gen_ms > 0)
			strbuf_addf(out, "\n*%d tokens, %.1f tokens/s*\n", m[i].stats.gen_tokens,
				    store_stats_tps(&m[i].stats));
	}
}

const char *store_model_name(const char *model, char *buf, size_t cap)
{
	/* a server's URL#MODEL: the model, whole ("Qwen/Qwen2.5-7B-Instruct") */
	const char *hash = strstr(model, "://") ? strchr(model, '#') : NULL;
	const char *slash = strrchr(model, '/');
	const char *name = hash ? hash + 1 : slash ? slash + 1 : model;
	size_t n = strlen(name);
	if (!hash && n > 5 && !strcmp(name + n - 5, ".gguf"))
		n -= 5;
	if (n >= cap)
		n = cap - 1;
	memcpy(buf, name, n);
	buf[n] = '\0';
	return buf;
}

double store_stats_tps(const struct store_stats *s)
{
	return s->gen_ms > 0 ? s->gen_tokens * 1000.0 / s->gen_ms : 0;
}

static void export_json(const struct store_session *ss, const struct store_message *m, size_t n,
			struct strbuf *out)
{
	strbuf_addstr(out, "{\n  \"format\": \"palaver-session\",\n  \"version\": 1,\n  \"id\": ");
	json_str(out, ss->id);
	strbuf_addstr(out, ",\n  \"title\": ");
	json_str(out, ss->title);
	strbuf_addf(out,
		    ",\n  \"title_auto\": %s,\n  \"model\": ", ss->title_auto ? "true" : "false");
	json_str(out, ss->model);
	strbuf_addstr(out, ",\n  \"system_prompt\": ");
	json_str(out, ss->system_prompt);
	/* sampling was checked to be a JSON object when it was stored, but an
	 * imported one is kept as written: bytes that are not UTF-8 (inside
	 * its strings, where JSON allows anything above 0x7f) become \ufffd */
	strbuf_addstr(out, ",\n  \"sampling\": ");
	if (ss->sampling)
		add_json_text(out, ss->sampling);
	else
		strbuf_addstr(out, "null");
	strbuf_addf(out, ",\n  \"created_ms\": %" PRId64 ",\n  \"updated_ms\": %" PRId64,
		    ss->created_ms, ss->updated_ms);
	strbuf_addstr(out, ",\n  \"messages\": [");
	for (size_t i = 0; i < n; i++) {
		strbuf_addstr(out, i ? ",\n    {\"role\": " : "\n    {\"role\": ");
		json_str(out, m[i].role);
		if (m[i].backend) {
			strbuf_addstr(out, ", \"backend\": ");
			json_str(out, m[i].backend);
		}
		if (m[i].model) {
			strbuf_addstr(out, ", \"model\": ");
			json_str(out, m[i].model);
		}
		strbuf_addstr(out, ", \"status\": ");
		json_str(out, store_status_name(m[i].status));
		strbuf_addf(out,
			    ", \"created_ms\": %" PRId64 ", \"updated_ms\": %" PRId64
			    ", \"prompt_tokens\": %d, \"gen_tokens\": %d, \"prefill_ms\": ",
			    m[i].created_ms, m[i].updated_ms, m[i].stats.prompt_tokens,
			    m[i].stats.gen_tokens);
		json_double(out, m[i].stats.prefill_ms);
		strbuf_addstr(out, ", \"gen_ms\": ");
		json_double(out, m[i].stats.gen_ms);
		strbuf_addstr(out, ",\n     \"content\": ");
		json_str(out, m[i].content);
		if (m[i].reasoning) {
			strbuf_addstr(out, ",\n     \"reasoning\": ");
			json_str(out, m[i].reasoning);
		}
		strbuf_addch(out, '}');
	}
	strbuf_addstr(out, n ? "\n  ]\n}\n" : "]\n}\n");
}

int store_export(struct store *st, const char *session_id, enum store_format fmt,
		 struct strbuf *out)
{
	struct store_session ss;
	struct store_message *m;
	size_t n;
	if (store_session_get(st, session_id, &ss) < 0)
		return -1;
	if (store_messages_load(st, session_id, &m, &n) < 0) {
		store_session_free(&ss);
		return -1;
	}
	if (fmt == STORE_FORMAT_JSON)
		export_json(&ss, m, n, out);
	else
		store_format_markdown(&ss, m, n, out);
	store_messages_free(m, n);
	store_session_free(&ss);
	return 0;
}

/* ---- import ------------------------------------------------------------- */

/* A string member or NULL (absent or null); -1 if it has another type. */
static int member_str(const struct json *o, const char *key, const char **out)
{
	const struct json *v = json_get(o, key);
	*out = NULL;
	if (!v || v->type == JSON_NULL)
		return 0;
	if (v->type != JSON_STRING || strlen(v->str) != v->str_len)
		return error("session JSON: '%s' must be a string", key);
	*out = v->str;
	return 0;
}

/* The ranges an import is held to: times up to the year 9999, counts that
 * fit an int, durations up to a year.  Anything else would be stored as
 * garbage (or be undefined to convert). */
#define TIME_MAX_MS 253402300799999.0
#define COUNT_MAX 2147483647.0
#define DURATION_MAX_MS 31536000000.0

/* A number member within [0, max] (an integer unless fractions are
 * allowed), 0 when absent or null; -1 with a message naming it otherwise.
 * where: "" for the session, "message N: " for a message. */
static int member_num(const struct json *o, const char *where, const char *key, double max,
		      int fractions, double *out)
{
	const struct json *v = json_get(o, key);
	*out = 0;
	if (!v || v->type == JSON_NULL)
		return 0;
	if (v->type != JSON_NUMBER)
		return error("session JSON: %s'%s' must be a number", where, key);
	if (!(v->number >= 0 && v->number <= max) ||
	    (!fractions && v->number != (double)(int64_t)v->number)) {
		char text[40];
		for (int prec = 1; prec <= 17; prec++) { /* the shortest that reads back */
			snprintf(text, sizeof(text), "%.*g", prec, v->number);
			if (strtod(text, NULL) == v->number)
				break;
		}
		return error("session JSON: %s'%s' must be %s from 0 to %.15g, not %s", where, key,
			     fractions ? "a number" : "an integer", max, text);
	}
	*out = v->number;
	return 0;
}

static int valid_id(const char *s)
{
	if (!s || strlen(s) != STORE_ID_LEN)
		return 0;
	for (; *s; s++)
		if (!isdigit((unsigned char)*s) && !(*s >= 'a' && *s <= 'f'))
			return 0;
	return 1;
}

static int import_session(struct store *st, const struct json *root, const char *json,
			  char id_out[STORE_ID_SIZE])
{
	const char *id, *title, *model, *system, *fmt;
	const struct json *sampling = json_get(root, "sampling");
	const struct json *msgs = json_get(root, "messages");
	const struct json *tauto = json_get(root, "title_auto");
	char *sampling_text = NULL;
	double created, updated;
	int64_t row;
	sqlite3_stmt *s;
	int rc;

	if (root->type != JSON_OBJECT)
		return error("session JSON: not an object");
	if (member_str(root, "format", &fmt) < 0)
		return -1;
	if (!fmt || strcmp(fmt, "palaver-session"))
		return error("session JSON: not a palaver session export (no \"format\": "
			     "\"palaver-session\")");
	if (member_str(root, "id", &id) < 0 || member_str(root, "title", &title) < 0 ||
	    member_str(root, "model", &model) < 0 ||
	    member_str(root, "system_prompt", &system) < 0 ||
	    member_num(root, "", "created_ms", TIME_MAX_MS, 0, &created) < 0 ||
	    member_num(root, "", "updated_ms", TIME_MAX_MS, 0, &updated) < 0)
		return -1;
	if (!msgs || msgs->type != JSON_ARRAY)
		return error("session JSON: 'messages' must be an array");
	if (sampling && sampling->type == JSON_OBJECT)
		sampling_text = xstrndup(json + sampling->start, sampling->end - sampling->start);
	else if (sampling && sampling->type != JSON_NULL)
		return error("session JSON: 'sampling' must be an object");
	if (!created)
		created = (double)now_ms();

	/* Keep the id when it is free, so that links to it still work. */
	if (valid_id(id)) {
		int64_t taken;
		sqlite3_stmt *r = query(st, Q_SESSION_ROWID);
		if (!r)
			goto fail;
		sqlite3_bind_text(r, 1, id, -1, SQLITE_STATIC);
		rc = sqlite3_step(r);
		taken = rc == SQLITE_ROW;
		done(r);
		if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
			fail(st, rc);
			goto fail;
		}
		if (!taken)
			memcpy(id_out, id, STORE_ID_SIZE);
		else
			random_id(id_out);
	} else {
		random_id(id_out);
	}
	for (int tries = 0;; tries++) {
		if (!(s = query(st, Q_SESSION_INSERT)))
			goto fail;
		sqlite3_bind_text(s, 1, id_out, -1, SQLITE_STATIC);
		sqlite3_bind_text(s, 2, title ? title : "", -1, SQLITE_STATIC);
		sqlite3_bind_int(s, 3, tauto ? tauto->type == JSON_BOOL && tauto->boolean : !title);
		bind_text(s, 4, model);
		bind_text(s, 5, system);
		bind_text(s, 6, sampling_text);
		sqlite3_bind_int64(s, 7, (int64_t)created);
		sqlite3_bind_int64(s, 8, (int64_t)created);
		rc = sqlite3_step(s);
		done(s);
		if (rc == SQLITE_DONE)
			break;
		if (rc != SQLITE_CONSTRAINT_UNIQUE || tries > 20) {
			fail(st, rc);
			goto fail;
		}
		random_id(id_out);
	}
	row = sqlite3_last_insert_rowid(st->db);
	for (size_t i = 0; i < msgs->n; i++) {
		const struct json *m = &msgs->items[i];
		const char *role, *status_name, *backend, *writer, *reasoning;
		const struct json *content = json_get(m, "content");
		struct store_stats stats;
		double mc, mu, pt, gt;
		char where[48];
		int status;
		snprintf(where, sizeof(where), "message %zu: ", i + 1);
		if (m->type != JSON_OBJECT) {
			error("session JSON: message %zu is not an object", i + 1);
			goto fail;
		}
		if (member_str(m, "role", &role) < 0 || member_str(m, "status", &status_name) < 0 ||
		    member_str(m, "backend", &backend) < 0 || member_str(m, "model", &writer) < 0 ||
		    member_str(m, "reasoning", &reasoning) < 0 ||
		    member_num(m, where, "created_ms", TIME_MAX_MS, 0, &mc) < 0 ||
		    member_num(m, where, "updated_ms", TIME_MAX_MS, 0, &mu) < 0 ||
		    member_num(m, where, "prompt_tokens", COUNT_MAX, 0, &pt) < 0 ||
		    member_num(m, where, "gen_tokens", COUNT_MAX, 0, &gt) < 0 ||
		    member_num(m, where, "prefill_ms", DURATION_MAX_MS, 1, &stats.prefill_ms) < 0 ||
		    member_num(m, where, "gen_ms", DURATION_MAX_MS, 1, &stats.gen_ms) < 0)
			goto fail;
		if (!role ||
		    (strcmp(role, "user") && strcmp(role, "assistant") && strcmp(role, "system"))) {
			error("session JSON: message %zu has %s role%s%s%s (user, assistant or system)",
			      i + 1, role ? "the unknown" : "no", role ? " '" : "",
			      role ? role : "", role ? "'" : "");
			goto fail;
		}
		if (!content || content->type != JSON_STRING) {
			error("session JSON: message %zu has no string 'content'", i + 1);
			goto fail;
		}
		/* the history holds C strings: what follows a NUL would be lost */
		if (strlen(content->str) != content->str_len) {
			error("session JSON: message %zu's content holds a NUL character (\\u0000)",
			      i + 1);
			goto fail;
		}
		status = status_name ? store_status_parse(status_name) : STORE_COMPLETE;
		if (status < 0) {
			error("session JSON: message %zu has an unknown status '%s'", i + 1,
			      status_name);
			goto fail;
		}
		/* Nothing streams into an imported session. */
		if (status == STORE_STREAMING)
			status = STORE_INTERRUPTED;
		if (fabs(pt) > INT_MAX || fabs(gt) > INT_MAX) {
			error("session JSON: message %zu: a token count is out of range", i + 1);
			goto fail;
		}
		stats.prompt_tokens = (int)pt;
		stats.gen_tokens = (int)gt;
		if (!mc)
			mc = created;
		int64_t mid = insert_message(st, row, role, content->str, content->str_len,
					     (enum store_status)status, &stats, (int64_t)mc,
					     (int64_t)(mu ? mu : mc), 0, backend, writer);
		if (mid < 0)
			goto fail;
		if (reasoning &&
		    store_message_set_reasoning(st, mid, reasoning, strlen(reasoning)) < 0)
			goto fail;
	}
	if (updated > 0) {
		/* The triggers moved updated_at to the last message; restore the export's. */
		char sql[128];
		snprintf(sql, sizeof(sql),
			 "UPDATE sessions SET updated_at = %" PRId64 " WHERE id = %" PRId64,
			 (int64_t)updated, row);
		if (exec(st, sql) < 0)
			goto fail;
	}
	free(sampling_text);
	return 0;
fail:
	free(sampling_text);
	return -1;
}

int store_import(struct store *st, const char *json, size_t len, char id_out[STORE_ID_SIZE])
{
	struct json *root = json_parse(json, len);
	if (!root) {
		error_prefix("cannot import session: ");
		return -1;
	}
	if (tx_begin(st) < 0) {
		json_free(root);
		return -1;
	}
	if (import_session(st, root, json, id_out) < 0) {
		json_free(root);
		return tx_rollback(st);
	}
	json_free(root);
	return tx_commit(st);
}
