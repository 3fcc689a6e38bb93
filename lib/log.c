/* File logger: one line per record, timestamped, serialised by a mutex. */
#include "log.h"
#include "report.h"
#include "strbuf.h"
#include "xalloc.h"
#include "util.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>

volatile int log_current_level = LOG_OFF;

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static FILE *log_fp;
static char *log_file_path;

static const char *const level_names[] = {
	"trace", "debug", "info", "warn", "error", "off",
};

const char *log_level_name(enum log_level level)
{
	if ((unsigned)level > LOG_OFF)
		return "?";
	return level_names[level];
}

int log_level_parse(const char *name)
{
	for (int i = 0; i <= LOG_OFF; i++)
		if (!strcmp(name, level_names[i]))
			return i;
	if (!strcmp(name, "warning"))
		return LOG_WARN;
	return -1;
}

int log_open(const char *path, enum log_level level)
{
	struct strbuf def = STRBUF_INIT;
	FILE *fp;

	if (!path) {
		if (xdg_path(&def, "XDG_STATE_HOME", ".local/state", "palaver.log") < 0)
			return -1;
		path = def.buf;
	}
	if (mkdir_parents(path) < 0) {
		strbuf_release(&def);
		return -1;
	}
	fp = fopen(path, "ae");
	if (!fp) {
		int e = errno;
		error("cannot open log file '%s': %s", path, strerror(e));
		strbuf_release(&def);
		return -1;
	}
	pthread_mutex_lock(&log_lock);
	if (log_fp)
		fclose(log_fp);
	free(log_file_path);
	log_fp = fp;
	log_file_path = xstrdup(path);
	log_current_level = level;
	pthread_mutex_unlock(&log_lock);
	strbuf_release(&def);
	return 0;
}

void log_close(void)
{
	pthread_mutex_lock(&log_lock);
	if (log_fp)
		fclose(log_fp);
	log_fp = NULL;
	free(log_file_path);
	log_file_path = NULL;
	log_current_level = LOG_OFF;
	pthread_mutex_unlock(&log_lock);
}

void log_set_level(enum log_level level)
{
	log_current_level = level;
}

const char *log_path(void)
{
	return log_file_path;
}

/*
 * Called with the lock held after a write.  Several palaver processes may
 * append to one file: when the path no longer names the file we hold,
 * another process rotated it, and we only follow it to the new one.
 */
static void rotate_if_full(void)
{
	struct stat ours, named;
	off_t size = ftello(log_fp);
	if (size < LOG_MAX_BYTES)
		return;
	if (fstat(fileno(log_fp), &ours) < 0)
		return;
	if (stat(log_file_path, &named) == 0 &&
	    (named.st_ino != ours.st_ino || named.st_dev != ours.st_dev)) {
		FILE *fp = fopen(log_file_path, "ae");
		if (fp) {
			fclose(log_fp);
			log_fp = fp;
		}
		return;
	}
	struct strbuf old = STRBUF_INIT;
	strbuf_addf(&old, "%s.1", log_file_path);
	if (rename(log_file_path, old.buf) == 0) {
		FILE *fp = fopen(log_file_path, "ae");
		if (fp) {
			fclose(log_fp);
			log_fp = fp;
		}
	}
	strbuf_release(&old);
}

void log_write(enum log_level level, const char *file, int line, const char *fmt, ...)
{
	struct strbuf sb = STRBUF_INIT;
	struct timeval tv;
	struct tm tm;
	char ts[32];
	const char *base = strrchr(file, '/');
	va_list ap;

	gettimeofday(&tv, NULL);
	localtime_r(&tv.tv_sec, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%d %H:%M:%S", &tm);
	strbuf_addf(&sb, "%s.%03ld %-5s %s:%d: ", ts, (long)(tv.tv_usec / 1000),
		    log_level_name(level), base ? base + 1 : file, line);
	va_start(ap, fmt);
	strbuf_vaddf(&sb, fmt, ap);
	va_end(ap);
	strbuf_addch(&sb, '\n');

	pthread_mutex_lock(&log_lock);
	if (log_fp) {
		fwrite(sb.buf, 1, sb.len, log_fp);
		fflush(log_fp);
		rotate_if_full();
	}
	pthread_mutex_unlock(&log_lock);
	strbuf_release(&sb);
}
