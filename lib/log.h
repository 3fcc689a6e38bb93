/* Levelled, thread-safe logger writing to a file, never to the terminal. */
#ifndef PALAVER_LOG_H
#define PALAVER_LOG_H

enum log_level {
	LOG_TRACE,
	LOG_DEBUG,
	LOG_INFO,
	LOG_WARN,
	LOG_ERROR,
	LOG_OFF,
};

extern volatile int log_current_level;

/* Past this size the log file is renamed FILE.1 (replacing the older copy)
 * and a new one is started: at most about twice this is kept. */
#define LOG_MAX_BYTES (10ll << 20)

/* Open (append) the log file; NULL picks $XDG_STATE_HOME/palaver/palaver.log
 * (~/.local/state/...).  Creates the directory.  Returns 0 or -1 (error()). */
int log_open(const char *path, enum log_level level);
void log_close(void);
void log_set_level(enum log_level level);
/* "trace".."error", "off"; returns -1 for an unknown name. */
int log_level_parse(const char *name);
const char *log_level_name(enum log_level level);
const char *log_path(void); /* NULL when closed */

void log_write(enum log_level level, const char *file, int line, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* The level is checked before the arguments are evaluated. */
#define LOG_AT(lvl, ...)                                                                           \
	do {                                                                                       \
		if ((lvl) >= log_current_level)                                                    \
			log_write((lvl), __FILE__, __LINE__, __VA_ARGS__);                         \
	} while (0)
#define log_trace(...) LOG_AT(LOG_TRACE, __VA_ARGS__)
#define log_debug(...) LOG_AT(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) LOG_AT(LOG_INFO, __VA_ARGS__)
#define log_warn(...) LOG_AT(LOG_WARN, __VA_ARGS__)
#define log_error(...) LOG_AT(LOG_ERROR, __VA_ARGS__)

#endif
