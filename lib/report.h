/* error()-style reporting: library layers record a message and return -1. */
#ifndef PALAVER_REPORT_H
#define PALAVER_REPORT_H

#include <stddef.h>

/*
 * Library code (engine/, history/, gpu/) never prints and never exits.  It
 * calls error("cannot open '%s': %s", path, strerror(errno)) which records
 * the message in a per-thread buffer and returns -1, so that
 *
 *	if (gguf_check(g) < 0)
 *		return -1;          // message already recorded
 *
 * propagates both the failure and its reason.  The caller at the edge shows
 * error_message() (or copies it with error_take()).  Messages follow git:
 * lowercase, no full stop, subject in quotes.
 *
 * error_prefix() prepends context ("'x.gguf': ") to the recorded message, so
 * an inner layer need not know the file name; a message that already holds
 * that text is left as it is, so a path is never said twice.
 */
int error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void error_prefix(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
const char *error_message(void); /* "" when none recorded */
char *error_take(void);          /* malloc'd copy; clears the record */
void error_clear(void);

/* CLI edge only (app/): print "palaver: msg" to stderr and exit. */
enum {
	EXIT_OK = 0,
	EXIT_RUNTIME = 1, /* runtime failure */
	EXIT_USAGE = 2,   /* usage or configuration error */
};
void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
void die_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
void warning(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/*
 * The CLI edge's reports that do not exit, for commands that clean up
 * before they return: "palaver: MSG" on stderr (stdout flushed first).
 * report_usage() and report_runtime() return the exit status to return with
 * (EXIT_USAGE, EXIT_RUNTIME); report_failure(status) prints error_message(),
 * clears it and returns status:
 *
 *	if (model_load(...) < 0)
 *		return report_failure(EXIT_RUNTIME);
 */
void report(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int report_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int report_runtime(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* report_usage() followed by a command's usage text, on stderr too. */
int report_usage_with(const char *usage, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
int report_failure(int status);
/* Called before die() prints, e.g. to endwin() while curses is active. */
void set_die_hook(void (*hook)(void));
/* Run that hook now (once): for fatal paths that do not go through die(),
 * such as running out of memory, so that the terminal is restored first. */
void run_die_hook(void);

/*
 * Standard output is what batch mode and most commands produce, so a write
 * that fails (a full disk, /dev/full, a file size limit) must not end in
 * exit 0.  out_check() flushes stdout; after a failure it says "cannot
 * write standard output: REASON" on stderr once and returns -1.  EPIPE (the
 * reader has gone, SIGPIPE ignored) is not an error: nothing is said and 0
 * is returned, but out_gone() tells a producer to stop.  out_close()
 * flushes and closes stdout at exit, with the same result (main() exits 1
 * on -1).
 */
int out_check(void);
int out_close(void);
/* Write len bytes to stdout and out_check(). */
int out_write(const void *buf, size_t len);
/* 1 once any write to stdout failed, EPIPE included: stop producing. */
int out_gone(void);

#endif
