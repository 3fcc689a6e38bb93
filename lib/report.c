/* Per-thread error records for library layers, die()/warning() for the CLI edge. */
#include "report.h"
#include "strbuf.h"
#include "xalloc.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ERROR_MAX 1024

static _Thread_local char err_buf[ERROR_MAX];
static void (*die_hook)(void);

int error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err_buf, sizeof(err_buf), fmt, ap);
	va_end(ap);
	return -1;
}

void error_prefix(const char *fmt, ...)
{
	char pre[ERROR_MAX], old[ERROR_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(pre, sizeof(pre), fmt, ap);
	va_end(ap);
	size_t n;
	memcpy(old, err_buf, sizeof(old));
	n = strnlen(pre, sizeof(pre) - 1);
	memcpy(err_buf, pre, n);
	memcpy(err_buf + n, old, strnlen(old, sizeof(err_buf) - 1 - n));
	err_buf[n + strnlen(old, sizeof(err_buf) - 1 - n)] = '\0';
}

const char *error_message(void)
{
	return err_buf;
}

char *error_take(void)
{
	char *s = xstrdup(err_buf);
	err_buf[0] = '\0';
	return s;
}

void error_clear(void)
{
	err_buf[0] = '\0';
}

void set_die_hook(void (*hook)(void))
{
	die_hook = hook;
}

void run_die_hook(void)
{
	void (*hook)(void) = die_hook;
	die_hook = NULL; /* a hook that fails must not run itself again */
	if (hook)
		hook();
}

static void vreport(const char *prefix, const char *fmt, va_list ap)
{
	struct strbuf sb = STRBUF_INIT;
	strbuf_addstr(&sb, prefix);
	strbuf_vaddf(&sb, fmt, ap);
	strbuf_addch(&sb, '\n');
	fflush(stdout);
	fwrite(sb.buf, 1, sb.len, stderr);
	strbuf_release(&sb);
}

void die(const char *fmt, ...)
{
	va_list ap;
	run_die_hook();
	va_start(ap, fmt);
	vreport("palaver: ", fmt, ap);
	va_end(ap);
	exit(EXIT_RUNTIME);
}

void die_usage(const char *fmt, ...)
{
	va_list ap;
	run_die_hook();
	va_start(ap, fmt);
	vreport("palaver: ", fmt, ap);
	va_end(ap);
	exit(EXIT_USAGE);
}

void warning(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vreport("palaver: warning: ", fmt, ap);
	va_end(ap);
}

void report(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vreport("palaver: ", fmt, ap);
	va_end(ap);
}

int report_usage(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vreport("palaver: ", fmt, ap);
	va_end(ap);
	return EXIT_USAGE;
}

int report_usage_with(const char *usage, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vreport("palaver: ", fmt, ap);
	va_end(ap);
	fputs(usage, stderr);
	return EXIT_USAGE;
}

int report_runtime(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vreport("palaver: ", fmt, ap);
	va_end(ap);
	return EXIT_RUNTIME;
}

int report_failure(int status)
{
	report("%s", error_message());
	error_clear();
	return status;
}
