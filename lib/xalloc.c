/* Checked allocation helpers. */
#include "xalloc.h"
#include "report.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void oom(size_t n)
{
	run_die_hook(); /* under curses: the terminal back first, or the message is lost */
	fprintf(stderr, "palaver: out of memory allocating %zu bytes\n", n);
	abort();
}

void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		oom(n);
	return p;
}

void *xcalloc(size_t nmemb, size_t size)
{
	void *p = calloc(nmemb ? nmemb : 1, size ? size : 1);
	if (!p)
		oom(nmemb * size);
	return p;
}

void *xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);
	if (!q)
		oom(n);
	return q;
}

void *xrealloc_array(void *p, size_t nmemb, size_t size)
{
	size_t n;
	if (size_mul(nmemb, size, &n))
		oom(SIZE_MAX);
	return xrealloc(p, n);
}

char *xstrdup(const char *s)
{
	return xstrndup(s, strlen(s));
}

char *xstrndup(const char *s, size_t n)
{
	size_t len = strnlen(s, n);
	char *p = xmalloc(len + 1);
	memcpy(p, s, len);
	p[len] = '\0';
	return p;
}

void *try_alloc_array(size_t nmemb, size_t size)
{
	size_t n;
	if (size_mul(nmemb, size, &n))
		return NULL;
	return malloc(n ? n : 1);
}

void *try_alloc_aligned(size_t nmemb, size_t size)
{
	size_t n;
	void *p = NULL;
	if (size_mul(nmemb, size, &n) || size_add(n, 63, &n))
		return NULL;
	n &= ~(size_t)63;
	if (posix_memalign(&p, 64, n ? n : 64))
		return NULL;
	return p;
}
