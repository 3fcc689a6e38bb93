/* Per-thread error records for library layers, die()/warning() for the CLI edge. */
#include "report.h"
#include "strbuf.h"
#include "untrusted.h"
#include "xalloc.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ERROR_MAX 1024

static _Thread_local char err_buf[ERROR_MAX];
static void (*die_hook)(void);

/*
 * Messages quote what files hold (a GGUF's architecture, a session's
 * title), and every message ends up on a terminal or in the chat's status
 * line: control characters and bytes that are not UTF-8 are made visible
 * here, once, for every caller (see untrusted.h).
 */
static void make_safe(char *buf, size_t size)
{
	size_t n = strlen(buf), i;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)buf[i];
		if (c < 0x20 || c >= 0x7f)
			break;
	}
	if (i == n)
		return; /* plain ASCII: the common case */
	struct strbuf sb = STRBUF_INIT;
	untrusted_add(&sb, buf, n, 0);
	n = sb.len < size - 1 ? sb.len : size - 1;
	/* do not cut a UTF-8 sequence in two */
	while (n && n < sb.len && ((unsigned char)sb.buf[n] & 0xc0) == 0x80)
		n--;
	memcpy(buf, sb.buf, n);
	buf[n] = '\0';
	strbuf_release(&sb);
}

int error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err_buf, sizeof(err_buf), fmt, ap);
	va_end(ap);
	make_safe(err_buf, sizeof(err_buf));
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
	/* a message that names its subject already is not given it twice
	 * ("'x.gguf': 'x.gguf': no tokenizer") */
	if (*pre && strstr(err_buf, pre))
		return;
	memcpy(old, err_buf, sizeof(old));
	n = strnlen(pre, sizeof(pre) - 1);
	memcpy(err_buf, pre, n);
	memcpy(err_buf + n, old, strnlen(old, sizeof(err_buf) - 1 - n));
	err_buf[n + strnlen(old, sizeof(err_buf) - 1 - n)] = '\0';
	make_safe(err_buf, sizeof(err_buf));
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
	struct strbuf sb = STRBUF_INIT, msg = STRBUF_INIT;
	strbuf_addstr(&sb, prefix);
	strbuf_vaddf(&msg, fmt, ap);
	/* the format's own newlines stay (a usage after the message) */
	untrusted_add(&sb, msg.buf, msg.len, UNTRUSTED_MULTILINE);
	strbuf_release(&msg);
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

/* 0: fine; EPIPE: the reader left; else the first failure, said once. */
static int out_err;

static int out_fail(int err)
{
	if (!out_err) {
		out_err = err ? err : EIO;
		if (err == EPIPE)
			return 0;
		if (err)
			fprintf(stderr, "palaver: cannot write standard output: %s\n",
				strerror(err));
		else
			fprintf(stderr, "palaver: cannot write standard output\n");
	}
	return out_err == EPIPE ? 0 : -1;
}

int out_gone(void)
{
	return out_err != 0;
}

int out_check(void)
{
	if (out_err)
		return out_fail(out_err);
	errno = 0;
	if (fflush(stdout) != 0)
		return out_fail(errno);
	/* an earlier flush failed and its errno is gone */
	if (ferror(stdout))
		return out_fail(0);
	return 0;
}

int out_close(void)
{
	int rc = out_check();
	errno = 0;
	if (fclose(stdout) != 0 && !out_err)
		rc = out_fail(errno);
	return rc;
}

int out_write(const void *buf, size_t len)
{
	if (out_err)
		return out_fail(out_err);
	errno = 0;
	if (len && fwrite(buf, 1, len, stdout) != len)
		return out_fail(errno);
	return out_check();
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
