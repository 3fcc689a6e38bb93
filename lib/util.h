/* Small helpers shared by every layer: paths, time, number parsing. */
#ifndef PALAVER_UTIL_H
#define PALAVER_UTIL_H

#include <stdint.h>
#include "strbuf.h"

/* $VAR/palaver/NAME, or $HOME/FALLBACK/palaver/NAME when VAR is unset or
 * not absolute (the XDG base directory rules).  0 or -1 (error()). */
int xdg_path(struct strbuf *out, const char *var, const char *fallback, const char *name);
/* Create the directories leading to the file PATH (mode 0700). 0 or -1. */
int mkdir_parents(const char *path);
/* Replace the file PATH by len bytes of data, whole or not at all: written
 * to PATH.<pid>.tmp (its directories made) and renamed over it.  0 or -1
 * (error()). */
int write_file_replace(const char *path, const char *data, size_t len);

/* Monotonic time. */
double time_now_ms(void);
uint64_t time_now_ns(void);

/* Strict number parsing: the whole string must be consumed.  0 or -1. */
int parse_long(const char *s, long *out);
int parse_double(const char *s, double *out);
/* "8GiB", "512M", "1000000" -> bytes.  0 or -1. */
int parse_size(const char *s, uint64_t *out);
/* 1536 -> "1.5 KiB" into buf. */
const char *format_size(char *buf, size_t n, uint64_t bytes);

/* Peak and current resident set size in bytes (0 if unknown). */
uint64_t rss_current(void);
uint64_t rss_peak(void);

#endif
