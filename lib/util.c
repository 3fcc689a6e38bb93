/* Paths, clocks, strict number parsing and memory readings. */
#include "util.h"
#include "report.h"
#include "xalloc.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int xdg_path(struct strbuf *out, const char *var, const char *fallback, const char *name)
{
	const char *base = getenv(var);
	strbuf_reset(out);
	if (base && base[0] == '/') {
		strbuf_addf(out, "%s/palaver/%s", base, name);
		return 0;
	}
	base = getenv("HOME");
	if (!base || !*base)
		return error("cannot find a place for '%s': neither $%s nor $HOME is set", name,
			     var);
	strbuf_addf(out, "%s/%s/palaver/%s", base, fallback, name);
	return 0;
}

int mkdir_parents(const char *path)
{
	char *p = xstrdup(path);
	for (char *s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(p, 0700) < 0 && errno != EEXIST) {
			int e = errno;
			error("cannot create directory '%s': %s", p, strerror(e));
			free(p);
			return -1;
		}
		*s = '/';
	}
	free(p);
	return 0;
}

int write_file_replace(const char *path, const char *data, size_t len)
{
	struct strbuf tmp = STRBUF_INIT;
	if (mkdir_parents(path) < 0)
		return -1;
	strbuf_addf(&tmp, "%s.%ld.tmp", path, (long)getpid());
	FILE *f = fopen(tmp.buf, "w");
	if (!f) {
		int e = errno;
		error("cannot write '%s': %s", tmp.buf, strerror(e));
		strbuf_release(&tmp);
		return -1;
	}
	size_t w = fwrite(data, 1, len, f);
	int bad = ferror(f) || w != len;
	if (fclose(f) != 0 || bad || rename(tmp.buf, path) < 0) {
		int e = errno ? errno : EIO;
		unlink(tmp.buf);
		error("cannot write '%s': %s", path, strerror(e));
		strbuf_release(&tmp);
		return -1;
	}
	strbuf_release(&tmp);
	return 0;
}

uint64_t time_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

double time_now_ms(void)
{
	return (double)time_now_ns() / 1e6;
}

int parse_long(const char *s, long *out)
{
	char *end;
	long v;
	if (!s || !*s || isspace((unsigned char)*s))
		return -1;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end)
		return -1;
	*out = v;
	return 0;
}

int parse_double(const char *s, double *out)
{
	char *end;
	double v;
	if (!s || !*s || isspace((unsigned char)*s))
		return -1;
	errno = 0;
	v = strtod(s, &end);
	if (errno || *end || !isfinite(v))
		return -1;
	*out = v;
	return 0;
}

int parse_size(const char *s, uint64_t *out)
{
	static const struct {
		const char *sfx;
		uint64_t mul;
	} units[] = {
		{ "", 1 },
		{ "b", 1 },
		{ "k", 1000ull },
		{ "kb", 1000ull },
		{ "kib", 1ull << 10 },
		{ "m", 1000000ull },
		{ "mb", 1000000ull },
		{ "mib", 1ull << 20 },
		{ "g", 1000000000ull },
		{ "gb", 1000000000ull },
		{ "gib", 1ull << 30 },
		{ "t", 1000000000000ull },
		{ "tb", 1000000000000ull },
		{ "tib", 1ull << 40 },
	};
	char *end;
	double v;
	if (!s || !*s || isspace((unsigned char)*s) || *s == '-')
		return -1;
	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || !isfinite(v) || v < 0)
		return -1;
	while (*end == ' ')
		end++;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (!strcasecmp(end, units[i].sfx)) {
			double b = v * (double)units[i].mul;
			if (b >= 1.8e19)
				return -1;
			*out = (uint64_t)b;
			return 0;
		}
	}
	return -1;
}

const char *format_size(char *buf, size_t n, uint64_t bytes)
{
	static const char *const u[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	double v = (double)bytes;
	int i = 0;
	while (v >= 1024 && i < 4) {
		v /= 1024;
		i++;
	}
	if (i == 0)
		snprintf(buf, n, "%llu B", (unsigned long long)bytes);
	else
		snprintf(buf, n, "%.*f %s", v < 10 ? 2 : 1, v, u[i]);
	return buf;
}

uint64_t rss_current(void)
{
	FILE *f = fopen("/proc/self/statm", "re");
	unsigned long size, res;
	uint64_t r = 0;
	if (!f)
		return 0;
	if (fscanf(f, "%lu %lu", &size, &res) == 2)
		r = (uint64_t)res * (uint64_t)sysconf(_SC_PAGESIZE);
	fclose(f);
	return r;
}

uint64_t rss_peak(void)
{
	struct rusage ru;
	if (getrusage(RUSAGE_SELF, &ru) < 0)
		return 0;
	return (uint64_t)ru.ru_maxrss * 1024u;
}
