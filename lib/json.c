/* lib/json: a recursive-descent JSON reader (RFC 8259) building a small tree. */
#include "json.h"
#include "report.h"
#include "strbuf.h"
#include "xalloc.h"

#include <locale.h>
#include <stdlib.h>
#include <string.h>

#define JSON_MAX_DEPTH 64

struct parser {
	const char *s; /* source, len bytes */
	size_t len;
	size_t pos; /* next byte to read */
};

static int parse_value(struct parser *p, struct json *out, int depth);

static void skip_ws(struct parser *p)
{
	while (p->pos < p->len) {
		char c = p->s[p->pos];
		if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
			break;
		p->pos++;
	}
}

static int fail(struct parser *p, const char *what)
{
	return error("invalid JSON: %s at byte %zu", what, p->pos);
}

static int hex4(struct parser *p, unsigned *out)
{
	unsigned v = 0;
	if (p->len - p->pos < 4)
		return fail(p, "short \\u escape");
	for (int i = 0; i < 4; i++) {
		char c = p->s[p->pos++];
		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v |= (unsigned)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			v |= (unsigned)(c - 'A' + 10);
		else
			return fail(p, "bad \\u escape");
	}
	*out = v;
	return 0;
}

static void add_utf8(struct strbuf *sb, unsigned cp)
{
	if (cp < 0x80) {
		strbuf_addch(sb, (int)cp);
	} else if (cp < 0x800) {
		strbuf_addch(sb, (int)(0xc0 | (cp >> 6)));
		strbuf_addch(sb, (int)(0x80 | (cp & 0x3f)));
	} else if (cp < 0x10000) {
		strbuf_addch(sb, (int)(0xe0 | (cp >> 12)));
		strbuf_addch(sb, (int)(0x80 | ((cp >> 6) & 0x3f)));
		strbuf_addch(sb, (int)(0x80 | (cp & 0x3f)));
	} else {
		strbuf_addch(sb, (int)(0xf0 | (cp >> 18)));
		strbuf_addch(sb, (int)(0x80 | ((cp >> 12) & 0x3f)));
		strbuf_addch(sb, (int)(0x80 | ((cp >> 6) & 0x3f)));
		strbuf_addch(sb, (int)(0x80 | (cp & 0x3f)));
	}
}

/* At the opening quote; decodes into sb. */
static int parse_string(struct parser *p, struct strbuf *sb)
{
	p->pos++; /* '"' */
	for (;;) {
		if (p->pos >= p->len)
			return fail(p, "unterminated string");
		unsigned char c = (unsigned char)p->s[p->pos++];
		if (c == '"')
			return 0;
		if (c < 0x20)
			return fail(p, "control character in string");
		if (c != '\\') {
			strbuf_addch(sb, c);
			continue;
		}
		if (p->pos >= p->len)
			return fail(p, "unterminated string");
		c = (unsigned char)p->s[p->pos++];
		switch (c) {
		case '"': strbuf_addch(sb, '"'); break;
		case '\\': strbuf_addch(sb, '\\'); break;
		case '/': strbuf_addch(sb, '/'); break;
		case 'b': strbuf_addch(sb, '\b'); break;
		case 'f': strbuf_addch(sb, '\f'); break;
		case 'n': strbuf_addch(sb, '\n'); break;
		case 'r': strbuf_addch(sb, '\r'); break;
		case 't': strbuf_addch(sb, '\t'); break;
		case 'u': {
			unsigned cp, lo;
			if (hex4(p, &cp) < 0)
				return -1;
			if (cp >= 0xd800 && cp < 0xdc00) {
				if (p->len - p->pos < 6 || p->s[p->pos] != '\\' ||
				    p->s[p->pos + 1] != 'u')
					return fail(p, "lone surrogate");
				p->pos += 2;
				if (hex4(p, &lo) < 0)
					return -1;
				if (lo < 0xdc00 || lo >= 0xe000)
					return fail(p, "bad surrogate pair");
				cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
			} else if (cp >= 0xdc00 && cp < 0xe000) {
				return fail(p, "lone surrogate");
			}
			add_utf8(sb, cp);
			break;
		}
		default: return fail(p, "bad escape");
		}
	}
}

static int parse_number(struct parser *p, struct json *out)
{
	size_t start = p->pos;
	char buf[64];
	char *end;
	/* RFC 8259's grammar, strictly: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
	 * (a looser scan took a NUL byte for part of a number: fuzz_import) */
#define DIGITS()                                                                                   \
	do {                                                                                       \
		size_t d0 = p->pos;                                                                \
		while (p->pos < p->len && p->s[p->pos] >= '0' && p->s[p->pos] <= '9')              \
			p->pos++;                                                                  \
		if (p->pos == d0)                                                                  \
			return fail(p, "bad number");                                              \
	} while (0)
	if (p->pos < p->len && p->s[p->pos] == '-')
		p->pos++;
	if (p->pos < p->len && p->s[p->pos] == '0')
		p->pos++;
	else
		DIGITS();
	if (p->pos < p->len && p->s[p->pos] == '.') {
		p->pos++;
		DIGITS();
	}
	if (p->pos < p->len && (p->s[p->pos] == 'e' || p->s[p->pos] == 'E')) {
		p->pos++;
		if (p->pos < p->len && (p->s[p->pos] == '+' || p->s[p->pos] == '-'))
			p->pos++;
		DIGITS();
	}
#undef DIGITS
	if (p->pos - start >= sizeof(buf))
		return fail(p, "bad number");
	memcpy(buf, p->s + start, p->pos - start);
	buf[p->pos - start] = '\0';
	/* strtod follows LC_NUMERIC; JSON always uses '.' */
	{
		const char *dp = localeconv()->decimal_point;
		char *dot = strchr(buf, '.');
		if (dot && dp && dp[0] && dp[0] != '.' && !dp[1])
			*dot = dp[0];
	}
	out->number = strtod(buf, &end);
	if (*end || (buf[0] == '-' ? buf[1] : buf[0]) < '0' ||
	    (buf[0] == '-' ? buf[1] : buf[0]) > '9')
		return fail(p, "bad number");
	out->type = JSON_NUMBER;
	return 0;
}

static int literal(struct parser *p, const char *word)
{
	size_t n = strlen(word);
	if (p->len - p->pos < n || memcmp(p->s + p->pos, word, n))
		return fail(p, "unexpected character");
	p->pos += n;
	return 0;
}

/* Arrays and objects: children grow in items (and keys). */
static int parse_container(struct parser *p, struct json *out, int depth, int is_object)
{
	size_t alloc = 0, kalloc = 0;
	char close = is_object ? '}' : ']';
	out->type = is_object ? JSON_OBJECT : JSON_ARRAY;
	if (depth >= JSON_MAX_DEPTH)
		return fail(p, "nesting too deep");
	p->pos++;
	skip_ws(p);
	if (p->pos < p->len && p->s[p->pos] == close) {
		p->pos++;
		return 0;
	}
	for (;;) {
		skip_ws(p);
		if (is_object) {
			struct strbuf key = STRBUF_INIT;
			if (p->pos >= p->len || p->s[p->pos] != '"')
				return fail(p, "expected a key");
			if (parse_string(p, &key) < 0) {
				strbuf_release(&key);
				return -1;
			}
			ALLOC_GROW(out->keys, out->n + 1, kalloc);
			out->keys[out->n] = strbuf_detach(&key, NULL);
			skip_ws(p);
			if (p->pos >= p->len || p->s[p->pos] != ':') {
				ALLOC_GROW(out->items, out->n + 1, alloc);
				memset(&out->items[out->n], 0, sizeof(out->items[0]));
				out->n++;
				return fail(p, "expected ':'");
			}
			p->pos++;
		}
		ALLOC_GROW(out->items, out->n + 1, alloc);
		memset(&out->items[out->n], 0, sizeof(out->items[0]));
		out->n++;
		if (parse_value(p, &out->items[out->n - 1], depth + 1) < 0)
			return -1;
		skip_ws(p);
		if (p->pos >= p->len)
			return fail(p, "unterminated container");
		if (p->s[p->pos] == ',') {
			p->pos++;
			continue;
		}
		if (p->s[p->pos] == close) {
			p->pos++;
			return 0;
		}
		return fail(p, is_object ? "expected ',' or '}'" : "expected ',' or ']'");
	}
}

static int parse_value(struct parser *p, struct json *out, int depth)
{
	int r;
	skip_ws(p);
	out->start = p->pos;
	if (p->pos >= p->len)
		return fail(p, "unexpected end");
	switch (p->s[p->pos]) {
	case '{': r = parse_container(p, out, depth, 1); break;
	case '[': r = parse_container(p, out, depth, 0); break;
	case '"': {
		struct strbuf sb = STRBUF_INIT;
		r = parse_string(p, &sb);
		out->type = JSON_STRING;
		out->str_len = sb.len;
		out->str = strbuf_detach(&sb, NULL);
		break;
	}
	case 't':
		r = literal(p, "true");
		out->type = JSON_BOOL;
		out->boolean = 1;
		break;
	case 'f':
		r = literal(p, "false");
		out->type = JSON_BOOL;
		break;
	case 'n':
		r = literal(p, "null");
		out->type = JSON_NULL;
		break;
	default: r = parse_number(p, out); break;
	}
	out->end = p->pos;
	return r;
}

static void json_release(struct json *v)
{
	for (size_t i = 0; i < v->n; i++) {
		json_release(&v->items[i]);
		if (v->keys)
			free(v->keys[i]);
	}
	free(v->items);
	free(v->keys);
	free(v->str);
}

struct json *json_parse(const char *text, size_t len)
{
	struct parser p = { text, len, 0 };
	struct json *v = xcalloc(1, sizeof(*v));
	if (parse_value(&p, v, 0) < 0) {
		json_free(v);
		return NULL;
	}
	skip_ws(&p);
	if (p.pos != len) {
		fail(&p, "trailing characters");
		json_free(v);
		return NULL;
	}
	return v;
}

void json_free(struct json *v)
{
	if (!v)
		return;
	json_release(v);
	free(v);
}

const struct json *json_get(const struct json *v, const char *key)
{
	if (!v || v->type != JSON_OBJECT)
		return NULL;
	for (size_t i = 0; i < v->n; i++)
		if (v->keys[i] && !strcmp(v->keys[i], key))
			return &v->items[i];
	return NULL;
}
