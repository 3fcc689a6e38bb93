/* lib/json: a small JSON reader (session import, resumed sampling): a tree with raw spans. */
#ifndef PALAVER_JSON_H
#define PALAVER_JSON_H

#include <stddef.h>

enum json_type { JSON_NULL, JSON_BOOL, JSON_NUMBER, JSON_STRING, JSON_ARRAY, JSON_OBJECT };

/*
 * One value.  Strings are decoded UTF-8 (\u escapes, surrogate pairs) and
 * NUL-terminated; they may hold NUL bytes, str_len is the truth.  Arrays and
 * objects hold n children in items; objects also hold n keys.  start/end
 * delimit the value's source text, so a nested object can be kept verbatim.
 */
struct json {
	enum json_type type;
	int boolean;   /* JSON_BOOL */
	double number; /* JSON_NUMBER */
	char *str;     /* JSON_STRING, malloc'd */
	size_t str_len;
	struct json *items; /* JSON_ARRAY / JSON_OBJECT: n values */
	char **keys;        /* JSON_OBJECT: n keys */
	size_t n;
	size_t start, end; /* byte span of this value in the source */
};

/* Parse exactly one value (surrounding white space allowed).  NULL after
 * error("... at byte N").  Nesting is limited to 64 levels. */
struct json *json_parse(const char *text, size_t len);
void json_free(struct json *v);
/* The member named key of an object, NULL if absent or v is no object. */
const struct json *json_get(const struct json *v, const char *key);

#endif
