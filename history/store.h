/* history/store: every chat saved to SQLite as it happens; list, resume, search, export. */
#ifndef PALAVER_STORE_H
#define PALAVER_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "strbuf.h"

/*
 * One SQLite database holds every session (a conversation) and its messages.
 * Every function returns 0 (or a row id / count >= 0) on success and -1 (or
 * NULL) after error("...") on failure: locked beyond the busy timeout, disk
 * full, read-only file, corrupt database, not a database.  Nothing here
 * prints or exits.  On any failure the caller says "history is unavailable:
 * <error_message()>" and keeps the chat in memory.
 *
 * A struct store is used by one thread at a time (the UI thread).  Several
 * processes may share one database: it runs in WAL mode with a busy timeout
 * (STORE_BUSY_TIMEOUT_MS), and every write is one short transaction.
 *
 * Sessions are named by a short stable id: 8 lowercase hex digits, random,
 * kept by export/import ("3f9a0c1e").  store_session_resolve() also accepts
 * an unambiguous title prefix (or id prefix of 4+ digits).
 *
 * One turn, as the TUI and batch mode record it (see docs/notes/hist.md):
 *
 *	store_session_create(st, &params, id)            once, first turn
 *	store_message_append(st, id, "user", text, STORE_COMPLETE, NULL)
 *	m = store_message_begin(st, id, "assistant")      generation starts
 *	store_message_set_model(st, m, "cpu", path)       which model writes it
 *	store_message_update(st, m, text_so_far, len)     at least every second
 *	store_message_finish(st, m, text, len, STORE_COMPLETE, &stats)
 *
 * A process killed while streaming leaves its row in STORE_STREAMING with the
 * text of the last update; the next store_open() (by any process) marks it
 * STORE_INTERRUPTED, text kept.
 */

#define STORE_SCHEMA_VERSION 5 /* PRAGMA user_version this code writes */
#define STORE_ID_LEN 8         /* hex digits in a session id */
#define STORE_ID_SIZE (STORE_ID_LEN + 1)
#define STORE_BUSY_TIMEOUT_MS 5000 /* default wait on another process's lock */
#define STORE_TITLE_MAX 60         /* characters in an automatic title */
#define STORE_PREVIEW_MAX 80       /* characters in a list preview */
#define STORE_SEARCH_WINDOW 2000   /* search ranks at most this many most recent matches */

struct store;

/* A message's state.  Stored as text ("complete", ...); enums grow at the end. */
enum store_status {
	STORE_COMPLETE,    /* finished normally */
	STORE_CANCELLED,   /* the user stopped it; text so far kept */
	STORE_INTERRUPTED, /* the process died while it streamed; text so far kept */
	STORE_ERROR,       /* generation failed; text so far kept */
	STORE_STREAMING,   /* being generated right now */
};
const char *store_status_name(enum store_status s); /* "complete", ... */
int store_status_parse(const char *name);           /* enum value or -1 */

/* Token counts and timings of one message (all 0 when unknown). */
struct store_stats {
	int prompt_tokens; /* tokens of context evaluated for this reply */
	int gen_tokens;    /* tokens generated */
	double prefill_ms; /* time to evaluate the prompt */
	double gen_ms;     /* time spent generating */
};

/* What a new session is created with; NULL fields are stored as NULL. */
struct store_session_params {
	const char *title;         /* NULL: taken from the first user message */
	const char *model;         /* model file or name */
	const char *system_prompt; /* NULL: none */
	const char *sampling;      /* sampling parameters as a JSON object text */
};

/* A session as listed.  Strings are malloc'd (NULL where the column is). */
struct store_session {
	char id[STORE_ID_SIZE]; /* "3f9a0c1e" */
	char *title;            /* "" until the first user message names it */
	int title_auto;         /* 1 while the title comes from the first user message */
	char *model;            /* model file or name it was created with (may be NULL) */
	char *system_prompt;    /* NULL: none */
	char *sampling;         /* JSON object text (may be NULL) */
	int64_t created_ms;     /* Unix time in milliseconds */
	int64_t updated_ms;     /* last message added or changed */
	int64_t message_count;  /* messages in the session */
	char *preview;          /* first line of the last message, <= STORE_PREVIEW_MAX chars */
};

/* A message.  Strings are malloc'd. */
struct store_message {
	int64_t id;               /* database row id: the handle for update/finish */
	int64_t seq;              /* 1, 2, ... order within its session */
	char *role;               /* "system", "user", "assistant" */
	char *content;            /* UTF-8 text, may be "" */
	enum store_status status; /* complete, cancelled, ... */
	struct store_stats stats; /* token counts and timings, 0 when unknown */
	int64_t created_ms;       /* Unix time in milliseconds */
	int64_t updated_ms;       /* last change (streaming updates included) */
	char *backend;            /* a reply's "cpu", "remote", ...; NULL when not recorded */
	char *model;              /* its GGUF path or URL#MODEL; NULL when not recorded */
	char *reasoning;          /* a reply's thinking; NULL when it did not think */
};

/* A search result, best first. */
struct store_hit {
	char session_id[STORE_ID_SIZE]; /* the session holding the match */
	char *title;                    /* the session's title */
	int64_t message_id;             /* the matching message */
	int64_t seq;                    /* its place in the session */
	char *role;                     /* its role */
	char *snippet;      /* a few words around the match, matches between the marks */
	double rank;        /* lower is better (negated BM25 term-frequency score) */
	int64_t updated_ms; /* the message's */
};

enum store_format { STORE_FORMAT_MARKDOWN, STORE_FORMAT_JSON };

/* ---- opening ------------------------------------------------------------ */

/* $XDG_DATA_HOME/palaver/history.db (or ~/.local/share/...).  0 or -1. */
int store_default_path(struct strbuf *out);

/*
 * Open (creating it and its directories) the database at path; NULL picks
 * store_default_path().  Runs the migrations up to STORE_SCHEMA_VERSION and
 * marks rows left streaming by dead processes as interrupted.  A database
 * written by a newer palaver (user_version above ours) is refused and left
 * byte for byte untouched; so is a file that is not a database or is
 * read-only.  Returns NULL after error().
 */
struct store *store_open(const char *path);
/*
 * Open only to read (sessions list, show, search, export): nothing is
 * written, so a read-only file or directory works (when SQLite cannot make
 * its WAL index there, the file is read as immutable).  A file that needs
 * a migration is refused (upgrading writes), as is one from a newer
 * palaver; rows left streaming stay so.  A missing file is created as
 * store_open() does.  Writing through it fails with "read-only".
 */
struct store *store_open_readonly(const char *path);
void store_close(struct store *st);
const char *store_path(const struct store *st);
/* How long a write waits on another process's lock before failing. */
void store_set_busy_timeout(struct store *st, int ms);

/* Group many writes in one transaction (bulk import, benchmarks).  Not
 * nested.  Every function above also works inside one. */
int store_transaction_begin(struct store *st);
int store_transaction_commit(struct store *st);
int store_transaction_rollback(struct store *st);

/* ---- sessions ----------------------------------------------------------- */

/* New empty session; its id is written to id_out.  0 or -1. */
int store_session_create(struct store *st, const struct store_session_params *p,
			 char id_out[STORE_ID_SIZE]);
/* Set the title (one line, trimmed; "" is refused).  It no longer follows
 * the first user message. */
int store_session_rename(struct store *st, const char *id, const char *title);
/* Change what a resumed session runs with: each non-NULL field of p
 * replaces the stored one (a title renames, as store_session_rename). */
int store_session_set(struct store *st, const char *id, const struct store_session_params *p);
/* Delete the session and all its messages. */
int store_session_delete(struct store *st, const char *id);
/* The file holding the session's saved KV cache (engine.h, SAVED STATES):
 * record it (NULL or "" forgets it; the session's updated time is kept),
 * or read it into out ("" when none).  -1 when there is no such session. */
int store_session_set_kv_state(struct store *st, const char *id, const char *path);
int store_session_kv_state(struct store *st, const char *id, struct strbuf *out);
/* Fill *out (free with store_session_free). -1 if there is no such session. */
int store_session_get(struct store *st, const char *id, struct store_session *out);
/* Most recently updated first; limit 0 = all.  *out is malloc'd (free with
 * store_sessions_free); *n may be 0. */
int store_session_list(struct store *st, size_t limit, struct store_session **out, size_t *n);
/*
 * Turn what a user typed into a session id: an exact id, else the sessions
 * whose title starts with query (case-insensitive for ASCII) or whose id
 * starts with it (4+ characters).  Exactly one match -> 0; none or several
 * -> -1 with an error naming the candidates.
 */
int store_session_resolve(struct store *st, const char *query, char id_out[STORE_ID_SIZE]);
void store_session_free(struct store_session *s);
void store_sessions_free(struct store_session *s, size_t n);

/* ---- messages ----------------------------------------------------------- */

/*
 * Append a finished message (a user turn, a system message, a complete
 * reply); stats may be NULL.  The first user message of a session names it
 * while its title is automatic.  Returns the message id (> 0) or -1.
 */
int64_t store_message_append(struct store *st, const char *session_id, const char *role,
			     const char *content, enum store_status status,
			     const struct store_stats *stats);
/* Start a streamed message: empty, STORE_STREAMING.  Returns its id or -1. */
int64_t store_message_begin(struct store *st, const char *session_id, const char *role);
/* Stream into an existing message again, as store_message_begin would start
 * it (empty, STORE_STREAMING, stats, backend and model cleared): /regen and
 * /edit overwrite the reply they replace. */
int store_message_restart(struct store *st, int64_t message_id);
/* Replace the streamed text so far (len bytes; call at least every second
 * while streaming: each call is one small transaction, well under 2 ms). */
int store_message_update(struct store *st, int64_t message_id, const char *content, size_t len);
/* Final text, status and stats (stats may be NULL). */
int store_message_finish(struct store *st, int64_t message_id, const char *content, size_t len,
			 enum store_status status, const struct store_stats *stats);
/* Record which backend ("cpu", "remote") and model (a GGUF path, or a
 * server's URL#MODEL) wrote a reply. */
int store_message_set_model(struct store *st, int64_t message_id, const char *backend,
			    const char *model);
/* A reply's thinking, kept apart from its content (the answer); NULL or
 * len 0 clears it.  Call while streaming too: an interrupted reply keeps
 * the thinking it had. */
int store_message_set_reasoning(struct store *st, int64_t message_id, const char *reasoning,
				size_t len);
/* A session's messages in order; *out malloc'd (store_messages_free). */
int store_messages_load(struct store *st, const char *session_id, struct store_message **out,
			size_t *n);
void store_messages_free(struct store_message *m, size_t n);

/* ---- search, export, import -------------------------------------------- */

/*
 * Full-text search over message content, best match first, at most limit
 * (0 = 50) hits.  The query is plain words: each is quoted, so quotes, stars,
 * parentheses, AND/OR/NOT or any FTS5 syntax in it are searched for as text,
 * never an error; a word ending in '*' matches as a prefix.  All words must
 * occur.  An empty query gives no hits.
 *
 * Ranking is BM25 without its IDF factor (every hit holds every word, and
 * computing IDF walks all the matches of each word), over the
 * STORE_SEARCH_WINDOW most recent matching messages: a word found in half of
 * a million messages still answers in milliseconds, and rarer words are
 * ranked over all their matches.  rank in the hits: lower is better.
 * Matches in snippets are wrapped in open/close (NULL: "[" and "]").
 */
int store_search(struct store *st, const char *query, size_t limit, const char *open,
		 const char *close, struct store_hit **out, size_t *n);
void store_hits_free(struct store_hit *h, size_t n);

/* The name to show for a recorded model: a GGUF path's file name without
 * ".gguf", the MODEL of a server's URL#MODEL.  Written to buf, returned. */
const char *store_model_name(const char *model, char *buf, size_t cap);

/* A reply's generation speed, the one definition palaver shows everywhere
 * (sessions show, exports, --json's decode_tps, /stats): generated tokens
 * divided by the decode time, from the end of the prompt's prefill to the
 * end of the reply; 0 when unknown. */
double store_stats_tps(const struct store_stats *s);

/* The Markdown that store_export writes, from a session and its messages
 * held in memory (the chat's /export when the history is off).  An empty
 * ss->id is left out. */
void store_format_markdown(const struct store_session *ss, const struct store_message *m, size_t n,
			   struct strbuf *out);

/* Append the session as Markdown or JSON to out. */
int store_export(struct store *st, const char *session_id, enum store_format fmt,
		 struct strbuf *out);
/*
 * Import one session from the JSON that store_export writes.  It keeps its
 * id unless that id is taken (then it gets a new one), its title, times,
 * statuses and stats.  id_out receives the id.  All or nothing.
 */
int store_import(struct store *st, const char *json, size_t len, char id_out[STORE_ID_SIZE]);

#endif
