/* The chat's private header: struct chat and the functions its four files share. */
#ifndef PALAVER_CHAT_H
#define PALAVER_CHAT_H

#include "config.h"
#include "engine.h"
#include "store.h"

#include "chat_pane.h"
#include "keys.h"
#include "picker.h"
#include "screen.h"
#include "status_pane.h"

#include <stddef.h>
#include <stdint.h>

/*
 * The chat is one struct owned by the UI thread and four files:
 *   chat.c          the poll loop, keys, drawing, start-up
 *   chat_engine.c   loading models, requests and the engine's events
 *   chat_session.c  the history: saving, resuming, exporting
 *   chat_commands.c the slash commands and the line handler
 */

#define SAMPLE_MS 250.0  /* sparkline sample period while generating */
#define SAMPLE_TOKENS 16 /* ... or after this many tokens, whichever first */
#define HINT_MS 5000.0   /* how long a transient hint stays */

struct chat {
	struct config *cfg;
	struct config_sampling sampling; /* the session's copy: /set changes it */
	char *system_prompt;             /* NULL = none */
	char *model_path;                /* the file of the model in use, NULL = none */

	struct engine *eng;     /* the model in use (READY), NULL = none */
	struct engine *next;    /* a model loading to take its place, NULL = none */
	char *next_path;        /* its file */
	int busy;               /* a request is in flight */
	int pending_send;       /* a message waits for the model to load */
	struct chat_msg *reply; /* the reply being streamed, or NULL */
	int dropped_told;       /* the reply's "old turns left out" notice is shown */

	struct screen scr;
	struct keys keys;
	struct chat_pane pane;
	struct status_info st;
	int status_dirty;
	int hint_dirty;
	int rule_dirty;
	double last_status_draw, last_transcript_draw;
	char hint[256]; /* a transient hint, "" for the default */
	double hint_until;
	int hint_of_state; /* the hint is about a reply or load in progress: it goes when that ends */

	/* figures of the reply in flight */
	double t_submit, t_first, t_sample;
	int sample_tokens, gen_tokens, prompt_total;
	struct engine_stats last_stats;
	int have_last_stats;

	/* history: store NULL when disabled or after a failure */
	struct store *store;
	char sid[STORE_ID_SIZE]; /* the session, "" until its first message is saved */
	char *pending_title;     /* /new TITLE or /rename before the session exists */
	double last_store_write; /* of the streaming reply */
	int64_t reuse_user_row;  /* rows left by /edit and /regen: the next turn */
	int64_t reuse_reply_row; /* overwrites them instead of appending */

	struct picker picker; /* /sessions and /search */
	char *search_query;   /* of the /search list open, to highlight the hit */
	int picker_open;

	double esc_since; /* when the keys decoder began waiting for more of a sequence */

	/* the reply's thinking (/think on|off sets cfg->think, which requests read) */
	double t_think;        /* when the reply in flight began thinking, 0 = it has not */
	int stop_thinking_put; /* Esc asked the engine to end the thinking */
	int next_fallback;     /* c->next renders with a built-in format (a WARNING said so) */

	int redraw; /* Ctrl-L: repaint the whole screen */
	int quit;
};

/* chat.c: messages in the transcript and the hint line */
void chat_notice(struct chat *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void chat_error(struct chat *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void chat_hint(struct chat *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A hint about a reply or a load in progress, and the end of that (a reply
 * done, a model ready or failed): such a hint goes then, not stale later. */
void chat_state_hint(struct chat *c, const char *text);
void chat_state_changed(struct chat *c);
/* 1 when no reply streams; otherwise a hint says so and 0 */
int chat_need_idle(struct chat *c);
/* Copy with truncation at a character boundary. */
void chat_copy_str(char *dst, size_t cap, const char *src);
const char *chat_base_name(const char *path);

/* chat_engine.c */
void chat_engine_open(struct chat *c, const char *path);
void chat_engine_close(struct chat *c);
void chat_engine_submit(struct chat *c);
void chat_engine_send(struct chat *c, const char *text);
void chat_engine_drain(struct chat *c);
void chat_engine_cancel(struct chat *c);
void chat_engine_stop_load(struct chat *c);
/* Esc: a thinking reply stops thinking and answers; any other stops. */
void chat_engine_escape(struct chat *c);
void chat_engine_sample_speed(struct chat *c, double now, int force);

/* chat_session.c */
void chat_session_fail(struct chat *c);
/* Open the history and, with --session, the session: its model file
 * (malloc'd, "" when it records none), or NULL when none was opened. */
char *chat_session_open_history(struct chat *c);
int chat_session_need_store(struct chat *c);
void chat_session_reset(struct chat *c, const char *title);
void chat_session_load(struct chat *c, const char *id, int64_t target);
void chat_session_refresh_title(struct chat *c);
void chat_session_save_user(struct chat *c, struct chat_msg *m);
void chat_session_reply_begin(struct chat *c, struct chat_msg *m);
void chat_session_reply_progress(struct chat *c, struct chat_msg *m, double now);
void chat_session_reply_end(struct chat *c, struct chat_msg *m, enum store_status status,
			    const struct engine_stats *es);
/* Write the session as Markdown to path, as `palaver sessions export` does
 * (from the history when it is saved there); the outcome is a notice. */
void chat_session_export(struct chat *c, const char *path);

/* chat_commands.c */
/* readline's handler for a finished line: a command or a message */
void chat_commands_on_line(void *ctx, char *line, int pasted);

#endif
