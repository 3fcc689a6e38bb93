/* Jinja templates: the lexer and the parser that turn a chat template's text into a syntax tree. */
#include "jinja_int.h"

#include "report.h"
#include "unicode.h"
#include "xalloc.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * DESIGN
 *
 * Chat templates are small programs written for Python's Jinja2 and run by
 * Hugging Face's apply_chat_template; a prompt that differs by one space
 * from what the model was trained on answers worse, so the interpreter aims
 * at byte-identical output, checked against python3-jinja2 by
 * tests/it_jinja_conformance.sh.
 *
 * Three stages, each mirroring Jinja2's own:
 *  - the lexer (this file) cuts the text into template data and tag tokens
 *    with Jinja2's whitespace rules: trim_blocks (the newline after a block
 *    or comment tag goes), lstrip_blocks (blanks before a block or comment
 *    tag on its own line go), "-" inside a delimiter strips every blank on
 *    that side, "+" keeps them; newlines are normalized and one trailing
 *    newline dropped, as Jinja2 does;
 *  - the parser (this file) is a recursive descent over the tokens with
 *    Jinja2's grammar and precedence (condexpr, or, and, not, comparisons,
 *    + -, ~, * / // %, **, unary, postfix, filters and tests), building a
 *    tree in the template's arena;
 *  - the evaluator (jinja_eval.c) walks the tree with Python's semantics for
 *    the values (jinja_value.c), Jinja2's scoping (a for loop body and a
 *    macro get their own scope; if does not) and HF's sandbox (no mutation
 *    but namespace attributes).
 *
 * Bounds: the parser nests at most PARSE_DEPTH deep; the evaluator counts
 * steps, output bytes, allocated bytes and depth (struct jinja_limits) and
 * stops with a message naming the limit, so a template cannot loop forever
 * or exhaust memory.  Errors unwind with longjmp: everything lives in
 * arenas, so nothing leaks.
 */

#define PARSE_DEPTH 200

enum ttype {
	T_DATA,
	T_VAR_BEGIN,
	T_VAR_END,
	T_BLOCK_BEGIN,
	T_BLOCK_END,
	T_NAME,
	T_STRING,
	T_INT,
	T_FLOAT,
	T_OP,
	T_EOF,
};

enum tok_op {
	O_ADD,
	O_SUB,
	O_DIV,
	O_FLOORDIV,
	O_MUL,
	O_MOD,
	O_POW,
	O_TILDE,
	O_LBRACKET,
	O_RBRACKET,
	O_LPAREN,
	O_RPAREN,
	O_LBRACE,
	O_RBRACE,
	O_EQ,
	O_NE,
	O_GT,
	O_GE,
	O_LT,
	O_LE,
	O_ASSIGN,
	O_DOT,
	O_COLON,
	O_PIPE,
	O_COMMA,
	O_SEMICOLON,
};

/* longest first, as Jinja2 matches them */
static const struct {
	const char *text;
	enum tok_op op;
} ops[] = {
	{ "//", O_FLOORDIV }, { "**", O_POW },      { "==", O_EQ },    { "!=", O_NE },
	{ ">=", O_GE },       { "<=", O_LE },       { "+", O_ADD },    { "-", O_SUB },
	{ "/", O_DIV },       { "*", O_MUL },       { "%", O_MOD },    { "~", O_TILDE },
	{ "[", O_LBRACKET },  { "]", O_RBRACKET },  { "(", O_LPAREN }, { ")", O_RPAREN },
	{ "{", O_LBRACE },    { "}", O_RBRACE },    { ">", O_GT },     { "<", O_LT },
	{ "=", O_ASSIGN },    { ".", O_DOT },       { ":", O_COLON },  { "|", O_PIPE },
	{ ",", O_COMMA },     { ";", O_SEMICOLON },
};

struct tok {
	enum ttype type;
	int line;
	int op;        /* T_OP */
	const char *s; /* T_DATA, T_NAME, T_STRING: arena copy, NUL-terminated */
	size_t len;
	int64_t i;
	double f;
};

struct parser {
	struct jarena *a;
	jmp_buf jb;
	char msg[512];
	/* lexer */
	const char *src; /* normalized source */
	size_t n, pos;
	int line;
	int line_starting;
	char bal[PARSE_DEPTH]; /* open brackets inside a tag */
	int n_bal;
	struct tok *toks;
	size_t n_toks, alloc_toks;
	/* parser */
	size_t at;
	int depth;
	int soft;    /* inside if / conditional expressions: unknown filters fail late */
	int in_loop; /* break and continue are allowed */
};

__attribute__((format(printf, 3, 4), noreturn)) static void fail(struct parser *p, int line,
								 const char *fmt, ...)
{
	va_list ap;
	int n = snprintf(p->msg, sizeof(p->msg), "line %d: ", line);
	va_start(ap, fmt);
	vsnprintf(p->msg + n, sizeof(p->msg) - (size_t)n, fmt, ap);
	va_end(ap);
	for (char *c = p->msg; *c; c++)
		if (*c == '\n' || *c == '\r')
			*c = ' ';
	longjmp(p->jb, 1);
}

static void *palloc(struct parser *p, size_t n)
{
	void *q = jarena_alloc_z(p->a, n);
	if (!q)
		fail(p, p->line, "the template is too large");
	return q;
}

static char *pdup(struct parser *p, const char *s, size_t n)
{
	char *d = palloc(p, n + 1);
	memcpy(d, s, n);
	d[n] = 0;
	return d;
}

/* ---- lexer -------------------------------------------------------------------- */

static void push_tok(struct parser *p, struct tok t)
{
	if (p->n_toks == p->alloc_toks) {
		size_t na = p->alloc_toks ? p->alloc_toks * 2 : 64;
		struct tok *nt = palloc(p, na * sizeof(*nt));
		if (p->n_toks)
			memcpy(nt, p->toks, p->n_toks * sizeof(*nt));
		p->toks = nt;
		p->alloc_toks = na;
	}
	p->toks[p->n_toks++] = t;
}

static void count_lines(struct parser *p, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p->line += s[i] == '\n';
}

/* Length of the white space (Python's \s) at s[i..n). */
static size_t span_space(const char *s, size_t n, size_t i)
{
	size_t k = i;
	while (k < n) {
		size_t j = k;
		uint32_t cp = ju_next(s, n, &j);
		if (!ju_isspace(cp))
			break;
		k = j;
	}
	return k - i;
}

/* Length of s[0..n) without its trailing white space (str.rstrip()). */
static size_t rstrip_len(const char *s, size_t n)
{
	size_t i = 0, keep = 0;
	while (i < n) {
		uint32_t cp = ju_next(s, n, &i);
		if (!ju_isspace(cp))
			keep = i;
	}
	return keep;
}

/*
 * Template data before a tag, with the whitespace control the tag asks
 * for: sign '-' strips all white space before it; otherwise lstrip_blocks
 * removes blanks between the line start and a block or comment tag.
 */
static void emit_data(struct parser *p, const char *s, size_t n, int sign, int lstrip)
{
	int line = p->line;
	count_lines(p, s, n);
	if (sign == '-') {
		n = rstrip_len(s, n);
	} else if (sign != '+' && lstrip) {
		size_t l = n;
		while (l > 0 && s[l - 1] != '\n')
			l--;
		if ((l > 0 || p->line_starting) && l < n && span_space(s, n, l) == n - l)
			n = l;
	}
	if (!n)
		return;
	struct tok t = { .type = T_DATA, .line = line };
	t.s = pdup(p, s, n);
	t.len = n;
	push_tok(p, t);
}

static int starts(const struct parser *p, size_t i, const char *lit)
{
	size_t k = strlen(lit);
	return i + k <= p->n && !memcmp(p->src + i, lit, k);
}

/* A block end at i ("+%}", "-%}" and blanks, "%}" and one newline): its
 * length, or 0. */
static size_t block_end_at(const struct parser *p, size_t i)
{
	if (starts(p, i, "+%}"))
		return 3;
	if (starts(p, i, "-%}"))
		return 3 + span_space(p->src, p->n, i + 3);
	if (starts(p, i, "%}"))
		return 2 + (i + 2 < p->n && p->src[i + 2] == '\n');
	return 0;
}

static size_t var_end_at(const struct parser *p, size_t i)
{
	if (starts(p, i, "-}}"))
		return 3 + span_space(p->src, p->n, i + 3);
	if (starts(p, i, "}}"))
		return 2;
	return 0;
}

/* "{%" sign? blanks "raw" blanks ("-%}" blanks | "%}") at i: its length, or 0. */
static size_t raw_begin_at(const struct parser *p, size_t i)
{
	size_t k = i + 2;
	if (k < p->n && (p->src[k] == '-' || p->src[k] == '+'))
		k++;
	k += span_space(p->src, p->n, k);
	if (!starts(p, k, "raw"))
		return 0;
	k += 3;
	k += span_space(p->src, p->n, k);
	if (starts(p, k, "-%}"))
		return k + 3 + span_space(p->src, p->n, k + 3) - i;
	if (starts(p, k, "%}"))
		return k + 2 - i;
	return 0;
}

/* The end of a raw block at i: "{%" sign? blanks "endraw" blanks block-end. */
static size_t raw_end_at(const struct parser *p, size_t i, int *sign)
{
	if (!starts(p, i, "{%"))
		return 0;
	size_t k = i + 2;
	*sign = 0;
	if (k < p->n && (p->src[k] == '-' || p->src[k] == '+'))
		*sign = p->src[k++];
	k += span_space(p->src, p->n, k);
	if (!starts(p, k, "endraw"))
		return 0;
	k += 6;
	k += span_space(p->src, p->n, k);
	size_t e = block_end_at(p, k);
	return e ? k + e - i : 0;
}

static int is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static int is_hex(char c)
{
	return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* Digits with single underscores between them ((\d+_)*\d+ for base 10). */
static size_t span_digits(const char *s, size_t n, size_t i, int (*ok)(char))
{
	size_t k = i;
	if (k >= n || !ok(s[k]))
		return 0;
	while (k < n) {
		if (ok(s[k])) {
			k++;
		} else if (s[k] == '_' && k + 1 < n && ok(s[k + 1])) {
			k++;
		} else {
			break;
		}
	}
	return k - i;
}

static int is_bin(char c)
{
	return c == '0' || c == '1';
}

static int is_oct(char c)
{
	return c >= '0' && c <= '7';
}

/* A float (Jinja2's float_re) at i: its length, or 0. */
static size_t float_at(const struct parser *p, size_t i)
{
	const char *s = p->src;
	size_t n = p->n;
	if (i > 0 && s[i - 1] == '.')
		return 0;
	size_t k = i + span_digits(s, n, i, is_digit);
	if (k == i)
		return 0;
	size_t frac = 0;
	if (k < n && s[k] == '.')
		frac = span_digits(s, n, k + 1, is_digit);
	size_t e = k + (frac ? frac + 1 : 0);
	if (e < n && (s[e] == 'e' || s[e] == 'E')) {
		size_t x = e + 1;
		if (x < n && (s[x] == '+' || s[x] == '-'))
			x++;
		size_t d = span_digits(s, n, x, is_digit);
		if (d)
			return x + d - i;
	}
	return frac ? k + 1 + frac - i : 0;
}

/* An integer (Jinja2's integer_re) at i: its length and value, or 0. */
static size_t int_at(struct parser *p, size_t i, int64_t *val)
{
	const char *s = p->src;
	size_t n = p->n, len = 0;
	int base = 10;
	size_t start = i;
	if (s[i] == '0' && i + 1 < n && s[i + 1] && strchr("bBoOxX", s[i + 1])) {
		char c = (char)(s[i + 1] | 0x20);
		int (*ok)(char) = c == 'b' ? is_bin : c == 'o' ? is_oct : is_hex;
		size_t k = i + 2;
		/* (_?digit)+ */
		while (k < n) {
			if (ok(s[k]))
				k++;
			else if (s[k] == '_' && k + 1 < n && ok(s[k + 1]))
				k += 2;
			else
				break;
		}
		if (k > i + 2) {
			base = c == 'b' ? 2 : c == 'o' ? 8 : 16;
			start = i + 2;
			len = k - i;
		}
	}
	if (!len) {
		if (s[i] == '0') {
			size_t k = i + 1;
			while (k < n &&
			       (s[k] == '0' || (s[k] == '_' && k + 1 < n && s[k + 1] == '0')))
				k += s[k] == '_' ? 2 : 1;
			len = k - i;
		} else if (s[i] >= '1' && s[i] <= '9') {
			len = span_digits(s, n, i, is_digit);
		} else {
			return 0;
		}
	}
	uint64_t v = 0;
	for (size_t k = start; k < i + len; k++) {
		if (s[k] == '_')
			continue;
		int d = is_digit(s[k]) ? s[k] - '0' : (s[k] | 0x20) - 'a' + 10;
		if (v > (UINT64_MAX - (uint64_t)d) / (uint64_t)base ||
		    v * (uint64_t)base + (uint64_t)d > INT64_MAX)
			fail(p, p->line, "integer literal too large");
		v = v * (uint64_t)base + (uint64_t)d;
	}
	*val = (int64_t)v;
	return len;
}

/* Bytes of a name at i: ASCII letters, digits, '_' and non-ASCII letters,
 * marks and numbers (Python identifiers). */
static size_t name_at(const struct parser *p, size_t i)
{
	size_t k = i;
	while (k < p->n) {
		unsigned char c = (unsigned char)p->src[k];
		if (c < 0x80) {
			if (!(c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			      is_digit((char)c)))
				break;
			k++;
			continue;
		}
		size_t j = k;
		uint32_t cp = ju_next(p->src, p->n, &j);
		enum unicode_class cl =
			cp <= UNICODE_MAX ? unicode_class_of(cp) : UNICODE_UNASSIGNED;
		if (cl != UNICODE_LETTER && cl != UNICODE_MARK && cl != UNICODE_NUMBER)
			break;
		k = j;
	}
	return k - i;
}

/* Python's unicode-escape decoding of a string literal's body. */
static void decode_string(struct parser *p, const char *s, size_t n, struct tok *t)
{
	char *out = palloc(p, n * 4 + 1), *o = out;
	for (size_t i = 0; i < n;) {
		if (s[i] != '\\' || i + 1 >= n) {
			*o++ = s[i++];
			continue;
		}
		char c = s[i + 1];
		i += 2;
		switch (c) {
		case '\n': break; /* a line continuation */
		case '\\': *o++ = '\\'; break;
		case '\'': *o++ = '\''; break;
		case '"': *o++ = '"'; break;
		case 'a': *o++ = '\a'; break;
		case 'b': *o++ = '\b'; break;
		case 'f': *o++ = '\f'; break;
		case 'n': *o++ = '\n'; break;
		case 'r': *o++ = '\r'; break;
		case 't': *o++ = '\t'; break;
		case 'v': *o++ = '\v'; break;
		case 'x':
		case 'u':
		case 'U': {
			size_t want = c == 'x' ? 2 : c == 'u' ? 4 : 8;
			uint32_t cp = 0;
			for (size_t k = 0; k < want; k++) {
				if (i + k >= n || !is_hex(s[i + k]))
					fail(p, t->line, "truncated \\%c escape in a string", c);
				char h = s[i + k];
				cp = cp * 16 +
				     (uint32_t)(is_digit(h) ? h - '0' : (h | 0x20) - 'a' + 10);
			}
			i += want;
			if (cp > UNICODE_MAX)
				fail(p, t->line, "illegal Unicode character in a string");
			if (cp >= 0xD800 && cp < 0xE000)
				fail(p, t->line, "a string holds a lone surrogate \\u%04x",
				     (unsigned)cp);
			o += ju_put(o, cp);
			break;
		}
		case 'N': fail(p, t->line, "\\N{...} escapes are not supported");
		default:
			if (is_oct(c)) {
				uint32_t cp = (uint32_t)(c - '0');
				for (int k = 0; k < 2 && i < n && is_oct(s[i]); k++)
					cp = cp * 8 + (uint32_t)(s[i++] - '0');
				o += ju_put(o, cp);
			} else if ((unsigned char)c >= 0x80) {
				/* Jinja2 escapes the character first, then decodes:
				 * the backslash pairs with the escape's own */
				size_t j = i - 1;
				uint32_t cp = ju_next(s, n, &j);
				i = j;
				*o++ = '\\';
				o += (size_t)sprintf(o,
						     cp < 0x100     ? "x%02x"
						     : cp < 0x10000 ? "u%04x"
								    : "U%08x",
						     (unsigned)cp);
			} else {
				*o++ = '\\';
				*o++ = c;
			}
		}
	}
	*o = 0;
	t->s = out;
	t->len = (size_t)(o - out);
}

/* One token inside a {{ }} or {% %} tag: 1, or 0 at the tag's end. */
static int lex_tag_token(struct parser *p, int block)
{
	const char *s = p->src;
	size_t i = p->pos;
	if (!p->n_bal) {
		size_t e = block ? block_end_at(p, i) : var_end_at(p, i);
		if (e) {
			struct tok t = { .type = block ? T_BLOCK_END : T_VAR_END, .line = p->line };
			push_tok(p, t);
			count_lines(p, s + i, e);
			p->line_starting = s[i + e - 1] == '\n';
			p->pos = i + e;
			return 0;
		}
	}
	size_t w = span_space(s, p->n, i);
	if (w) {
		count_lines(p, s + i, w);
		p->pos = i + w;
		p->line_starting = s[i + w - 1] == '\n';
		return 1;
	}
	p->line_starting = 0;
	struct tok t = { .line = p->line };
	size_t k;
	int64_t iv;
	if (is_digit(s[i]) && (k = float_at(p, i)) != 0) {
		char buf[64];
		size_t m = 0;
		for (size_t j = i; j < i + k && m < sizeof(buf) - 1; j++)
			if (s[j] != '_')
				buf[m++] = s[j];
		buf[m] = 0;
		t.type = T_FLOAT;
		t.f = strtod(buf, NULL);
		p->pos = i + k;
	} else if (is_digit(s[i]) && (k = int_at(p, i, &iv)) != 0) {
		t.type = T_INT;
		t.i = iv;
		p->pos = i + k;
	} else if ((k = name_at(p, i)) != 0) {
		t.type = T_NAME;
		t.s = pdup(p, s + i, k);
		t.len = k;
		p->pos = i + k;
	} else if (s[i] == '\'' || s[i] == '"') {
		char q = s[i];
		size_t j = i + 1;
		while (j < p->n && s[j] != q)
			j += s[j] == '\\' && j + 1 < p->n ? 2 : 1;
		if (j >= p->n)
			fail(p, p->line, "unexpected char %c", q);
		t.type = T_STRING;
		decode_string(p, s + i + 1, j - i - 1, &t);
		count_lines(p, s + i, j + 1 - i);
		p->pos = j + 1;
	} else {
		size_t o;
		for (o = 0; o < sizeof(ops) / sizeof(ops[0]); o++)
			if (starts(p, i, ops[o].text))
				break;
		if (o == sizeof(ops) / sizeof(ops[0])) {
			size_t j = i;
			uint32_t cp = ju_next(s, p->n, &j);
			if (cp < 0x80)
				fail(p, p->line, "unexpected char '%c'", (int)cp);
			fail(p, p->line, "unexpected char U+%04X", (unsigned)cp);
		}
		t.type = T_OP;
		t.op = ops[o].op;
		p->pos = i + strlen(ops[o].text);
		if (t.op == O_LPAREN || t.op == O_LBRACKET || t.op == O_LBRACE) {
			if (p->n_bal == PARSE_DEPTH)
				fail(p, p->line, "brackets nested too deeply");
			p->bal[p->n_bal++] = t.op == O_LPAREN     ? ')'
					     : t.op == O_LBRACKET ? ']'
								  : '}';
		} else if (t.op == O_RPAREN || t.op == O_RBRACKET || t.op == O_RBRACE) {
			char c = ops[o].text[0];
			if (!p->n_bal)
				fail(p, p->line, "unexpected '%c'", c);
			if (p->bal[p->n_bal - 1] != c)
				fail(p, p->line, "unexpected '%c', expected '%c'", c,
				     p->bal[p->n_bal - 1]);
			p->n_bal--;
		}
	}
	push_tok(p, t);
	return 1;
}

static void lex(struct parser *p)
{
	const char *s = p->src;
	size_t n = p->n;
	p->line = 1;
	p->line_starting = 1;
	while (p->pos < n) {
		size_t t = p->pos;
		while (t + 1 < n &&
		       !(s[t] == '{' && (s[t + 1] == '{' || s[t + 1] == '%' || s[t + 1] == '#')))
			t++;
		if (t + 1 >= n) {
			emit_data(p, s + p->pos, n - p->pos, 0, 0);
			break;
		}
		char kind = s[t + 1];
		int sign = t + 2 < n && (s[t + 2] == '-' || s[t + 2] == '+') ? s[t + 2] : 0;
		size_t raw = kind == '%' ? raw_begin_at(p, t) : 0;
		emit_data(p, s + p->pos, t - p->pos, sign, kind != '{');
		if (raw) {
			/* {% raw %}: everything up to {% endraw %} is data */
			count_lines(p, s + t, raw);
			p->line_starting = s[t + raw - 1] == '\n';
			size_t i = t + raw, e = 0;
			int esign = 0;
			while (i < n && !(e = raw_end_at(p, i, &esign)))
				i++;
			if (!e)
				fail(p, p->line, "missing end of raw directive");
			emit_data(p, s + t + raw, i - (t + raw), esign, 1);
			count_lines(p, s + i, e);
			p->line_starting = s[i + e - 1] == '\n';
			p->pos = i + e;
			continue;
		}
		p->pos = t + 2 + (sign ? 1 : 0);
		if (kind == '#') {
			size_t i = p->pos, e = 0;
			for (; i < n; i++) {
				if (starts(p, i, "+#}")) {
					e = 3;
				} else if (starts(p, i, "-#}")) {
					e = 3 + span_space(s, n, i + 3);
				} else if (starts(p, i, "#}")) {
					e = 2 + (i + 2 < n && s[i + 2] == '\n');
				}
				if (e)
					break;
			}
			if (!e)
				fail(p, p->line, "missing end of comment tag");
			count_lines(p, s + p->pos, i + e - p->pos);
			p->line_starting = s[i + e - 1] == '\n';
			p->pos = i + e;
			continue;
		}
		int block = kind == '%';
		struct tok b = { .type = block ? T_BLOCK_BEGIN : T_VAR_BEGIN, .line = p->line };
		push_tok(p, b);
		p->n_bal = 0;
		for (;;) {
			if (p->pos >= n)
				fail(p, p->line, "unexpected end of template, expected '%s'",
				     block ? "%}" : "}}");
			if (!lex_tag_token(p, block))
				break;
		}
	}
	struct tok e = { .type = T_EOF, .line = p->line };
	push_tok(p, e);
}

/* ---- parser: helpers ------------------------------------------------------------ */

static struct tok *cur(struct parser *p)
{
	return &p->toks[p->at];
}

static struct tok *look(struct parser *p)
{
	return p->at + 1 < p->n_toks ? &p->toks[p->at + 1] : &p->toks[p->n_toks - 1];
}

static struct tok *next(struct parser *p)
{
	struct tok *t = &p->toks[p->at];
	if (t->type != T_EOF)
		p->at++;
	return t;
}

static int is_op(const struct tok *t, int op)
{
	return t->type == T_OP && t->op == op;
}

static int is_name(const struct tok *t, const char *name)
{
	return t->type == T_NAME && !strcmp(t->s, name);
}

static const char *describe(const struct tok *t)
{
	static _Thread_local char buf[64];
	switch (t->type) {
	case T_DATA: return "template data";
	case T_VAR_BEGIN: return "begin of print statement";
	case T_VAR_END: return "end of print statement";
	case T_BLOCK_BEGIN: return "begin of statement block";
	case T_BLOCK_END: return "end of statement block";
	case T_NAME: snprintf(buf, sizeof(buf), "%.60s", t->s); return buf;
	case T_STRING: return "string";
	case T_INT: return "integer";
	case T_FLOAT: return "float";
	case T_EOF: return "end of template";
	case T_OP:
		for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
			if (ops[i].op == (enum tok_op)t->op)
				return ops[i].text;
	}
	return "token";
}

static void expect_op(struct parser *p, int op, const char *text)
{
	struct tok *t = cur(p);
	if (!is_op(t, op))
		fail(p, t->line, "expected '%s', got '%s'", text, describe(t));
	next(p);
}

static void expect_type(struct parser *p, enum ttype type, const char *what)
{
	struct tok *t = cur(p);
	if (t->type != type)
		fail(p, t->line, "expected %s, got '%s'", what, describe(t));
	next(p);
}

static struct tok *expect_name(struct parser *p)
{
	struct tok *t = cur(p);
	if (t->type != T_NAME)
		fail(p, t->line, "expected a name, got '%s'", describe(t));
	return next(p);
}

static void expect_keyword(struct parser *p, const char *name)
{
	struct tok *t = cur(p);
	if (!is_name(t, name))
		fail(p, t->line, "expected '%s', got '%s'", name, describe(t));
	next(p);
}

static struct jnode *mk(struct parser *p, int kind, int line)
{
	struct jnode *n = palloc(p, sizeof(*n));
	n->kind = (unsigned short)kind;
	n->line = line;
	return n;
}

/* A growable list of nodes in the arena. */
struct nvec {
	struct jnode **v;
	size_t n, alloc;
};

static void nvec_push(struct parser *p, struct nvec *v, struct jnode *x)
{
	if (v->n == v->alloc) {
		size_t na = v->alloc ? v->alloc * 2 : 4;
		struct jnode **nv = palloc(p, na * sizeof(*nv));
		if (v->n)
			memcpy(nv, v->v, v->n * sizeof(*nv));
		v->v = nv;
		v->alloc = na;
	}
	v->v[v->n++] = x;
}

static void enter(struct parser *p)
{
	if (++p->depth > PARSE_DEPTH)
		fail(p, cur(p)->line, "the template nests more than %d levels deep", PARSE_DEPTH);
}

static void leave(struct parser *p)
{
	p->depth--;
}

/* ---- parser: expressions ------------------------------------------------------------ */

static struct jnode *parse_expression(struct parser *p, int with_condexpr);
static struct jnode *parse_tuple(struct parser *p, int simplified, int with_condexpr,
				 const char *extra_end, int explicit_parens);
static struct jnode *parse_unary(struct parser *p, int with_filter);
static struct jnode *parse_primary(struct parser *p);
static struct jnode *parse_postfix(struct parser *p, struct jnode *node);
static struct jnode *parse_filter(struct parser *p, struct jnode *node, int start_inline);

static struct jnode *parse_or(struct parser *p);

static struct jnode *parse_condexpr(struct parser *p)
{
	int line = cur(p)->line;
	struct jnode *e1 = parse_or(p);
	while (is_name(cur(p), "if")) {
		next(p);
		p->soft++;
		struct jnode *c = mk(p, NK_COND, line);
		c->b = e1;
		c->a = parse_or(p);
		if (is_name(cur(p), "else")) {
			next(p);
			enter(p);
			c->c = parse_condexpr(p);
			leave(p);
		}
		p->soft--;
		e1 = c;
		line = cur(p)->line;
	}
	return e1;
}

static struct jnode *parse_expression(struct parser *p, int with_condexpr)
{
	struct jnode *n;
	enter(p);
	n = with_condexpr ? parse_condexpr(p) : parse_or(p);
	leave(p);
	return n;
}

static struct jnode *parse_not(struct parser *p);

static struct jnode *parse_and(struct parser *p)
{
	struct jnode *left = parse_not(p);
	while (is_name(cur(p), "and")) {
		int line = next(p)->line;
		struct jnode *n = mk(p, NK_AND, line);
		n->a = left;
		n->b = parse_not(p);
		left = n;
	}
	return left;
}

static struct jnode *parse_or(struct parser *p)
{
	struct jnode *left = parse_and(p);
	while (is_name(cur(p), "or")) {
		int line = next(p)->line;
		struct jnode *n = mk(p, NK_OR, line);
		n->a = left;
		n->b = parse_and(p);
		left = n;
	}
	return left;
}

static struct jnode *parse_compare(struct parser *p);

static struct jnode *parse_not(struct parser *p)
{
	if (is_name(cur(p), "not")) {
		int line = next(p)->line;
		struct jnode *n = mk(p, NK_NOT, line);
		enter(p);
		n->a = parse_not(p);
		leave(p);
		return n;
	}
	return parse_compare(p);
}

static struct jnode *parse_math1(struct parser *p);

static struct jnode *parse_compare(struct parser *p)
{
	int line = cur(p)->line;
	struct jnode *expr = parse_math1(p);
	struct nvec opsv = { 0 };
	for (;;) {
		struct tok *t = cur(p);
		int op = -1;
		if (t->type == T_OP) {
			switch (t->op) {
			case O_EQ: op = OP_EQ; break;
			case O_NE: op = OP_NE; break;
			case O_LT: op = OP_LT; break;
			case O_LE: op = OP_LE; break;
			case O_GT: op = OP_GT; break;
			case O_GE: op = OP_GE; break;
			default: break;
			}
			if (op >= 0)
				next(p);
		} else if (is_name(t, "in")) {
			next(p);
			op = OP_IN;
		} else if (is_name(t, "not") && is_name(look(p), "in")) {
			next(p);
			next(p);
			op = OP_NOTIN;
		}
		if (op < 0)
			break;
		struct jnode *o = mk(p, NK_OPERAND, t->line);
		o->op = (unsigned short)op;
		o->a = parse_math1(p);
		nvec_push(p, &opsv, o);
	}
	if (!opsv.n)
		return expr;
	struct jnode *n = mk(p, NK_COMPARE, line);
	n->a = expr;
	n->kids = opsv.v;
	n->n = opsv.n;
	return n;
}

static struct jnode *bin(struct parser *p, int op, struct jnode *l, struct jnode *r, int line)
{
	struct jnode *n = mk(p, NK_BIN, line);
	n->op = (unsigned short)op;
	n->a = l;
	n->b = r;
	return n;
}

static struct jnode *parse_concat(struct parser *p);

static struct jnode *parse_math1(struct parser *p)
{
	struct jnode *left = parse_concat(p);
	for (;;) {
		struct tok *t = cur(p);
		if (!is_op(t, O_ADD) && !is_op(t, O_SUB))
			break;
		next(p);
		left = bin(p, t->op == O_ADD ? OP_ADD : OP_SUB, left, parse_concat(p), t->line);
	}
	return left;
}

static struct jnode *parse_math2(struct parser *p);

static struct jnode *parse_concat(struct parser *p)
{
	int line = cur(p)->line;
	struct jnode *first = parse_math2(p);
	if (!is_op(cur(p), O_TILDE))
		return first;
	struct nvec args = { 0 };
	nvec_push(p, &args, first);
	while (is_op(cur(p), O_TILDE)) {
		next(p);
		nvec_push(p, &args, parse_math2(p));
	}
	struct jnode *n = mk(p, NK_CONCAT, line);
	n->kids = args.v;
	n->n = args.n;
	return n;
}

static struct jnode *parse_pow(struct parser *p);

static struct jnode *parse_math2(struct parser *p)
{
	struct jnode *left = parse_pow(p);
	for (;;) {
		struct tok *t = cur(p);
		int op = is_op(t, O_MUL)        ? OP_MUL
			 : is_op(t, O_DIV)      ? OP_DIV
			 : is_op(t, O_FLOORDIV) ? OP_FLOORDIV
			 : is_op(t, O_MOD)      ? OP_MOD
						: -1;
		if (op < 0)
			break;
		next(p);
		left = bin(p, op, left, parse_pow(p), t->line);
	}
	return left;
}

static struct jnode *parse_pow(struct parser *p)
{
	struct jnode *left = parse_unary(p, 1);
	while (is_op(cur(p), O_POW)) {
		int line = next(p)->line;
		left = bin(p, OP_POW, left, parse_unary(p, 1), line);
	}
	return left;
}

static struct jnode *parse_filter_expr(struct parser *p, struct jnode *node);

static struct jnode *parse_unary(struct parser *p, int with_filter)
{
	struct tok *t = cur(p);
	struct jnode *node;
	enter(p);
	if (is_op(t, O_SUB) || is_op(t, O_ADD)) {
		next(p);
		node = mk(p, t->op == O_SUB ? NK_NEG : NK_POS, t->line);
		node->a = parse_unary(p, 0);
	} else {
		node = parse_primary(p);
	}
	node = parse_postfix(p, node);
	if (with_filter)
		node = parse_filter_expr(p, node);
	leave(p);
	return node;
}

static struct jnode *konst(struct parser *p, struct jval *v, int line)
{
	struct jnode *n = mk(p, NK_CONST, line);
	n->val = v;
	return n;
}

static struct jval *pval(struct parser *p, struct jval *v)
{
	if (!v)
		fail(p, p->line, "the template is too large");
	return v;
}

static struct jnode *parse_list_or_dict(struct parser *p, int dict)
{
	struct tok *open = next(p);
	struct nvec items = { 0 };
	int close = dict ? O_RBRACE : O_RBRACKET;
	while (!is_op(cur(p), close)) {
		if (items.n)
			expect_op(p, O_COMMA, ",");
		if (is_op(cur(p), close))
			break;
		nvec_push(p, &items, parse_expression(p, 1));
		if (dict) {
			expect_op(p, O_COLON, ":");
			nvec_push(p, &items, parse_expression(p, 1));
		}
	}
	expect_op(p, close, dict ? "}" : "]");
	struct jnode *n = mk(p, dict ? NK_DICT : NK_LIST, open->line);
	n->kids = items.v;
	n->n = items.n;
	return n;
}

static struct jnode *parse_primary(struct parser *p)
{
	struct tok *t = cur(p);
	struct jnode *node;
	switch (t->type) {
	case T_NAME:
		next(p);
		if (!strcmp(t->s, "true") || !strcmp(t->s, "True"))
			return konst(p, &jv_true_c, t->line);
		if (!strcmp(t->s, "false") || !strcmp(t->s, "False"))
			return konst(p, &jv_false_c, t->line);
		if (!strcmp(t->s, "none") || !strcmp(t->s, "None"))
			return konst(p, &jv_none_c, t->line);
		node = mk(p, NK_NAME, t->line);
		node->name = t->s;
		return node;
	case T_STRING: {
		next(p);
		if (cur(p)->type != T_STRING)
			return konst(p, pval(p, jv_str(p->a, t->s, t->len, 1)), t->line);
		/* adjacent literals are one string */
		struct jsb b;
		jsb_init(&b, p->a, 0);
		jsb_add(&b, t->s, t->len, 1);
		while (cur(p)->type == T_STRING) {
			struct tok *u = next(p);
			jsb_add(&b, u->s, u->len, 1);
		}
		return konst(p, pval(p, jsb_finish(&b)), t->line);
	}
	case T_INT: next(p); return konst(p, pval(p, jv_int(p->a, t->i)), t->line);
	case T_FLOAT: next(p); return konst(p, pval(p, jv_float(p->a, t->f)), t->line);
	case T_OP:
		if (t->op == O_LPAREN) {
			next(p);
			node = parse_tuple(p, 0, 1, NULL, 1);
			expect_op(p, O_RPAREN, ")");
			return node;
		}
		if (t->op == O_LBRACKET)
			return parse_list_or_dict(p, 0);
		if (t->op == O_LBRACE)
			return parse_list_or_dict(p, 1);
		break;
	default: break;
	}
	fail(p, t->line, "unexpected '%s'", describe(t));
}

static int tuple_end(struct parser *p, const char *extra_end)
{
	struct tok *t = cur(p);
	if (t->type == T_VAR_END || t->type == T_BLOCK_END || is_op(t, O_RPAREN))
		return 1;
	return extra_end && is_name(t, extra_end);
}

static struct jnode *parse_tuple(struct parser *p, int simplified, int with_condexpr,
				 const char *extra_end, int explicit_parens)
{
	int line = cur(p)->line;
	struct nvec args = { 0 };
	int is_tuple = 0;
	enter(p);
	for (;;) {
		if (args.n)
			expect_op(p, O_COMMA, ",");
		if (tuple_end(p, extra_end))
			break;
		struct jnode *e =
			simplified ? parse_primary(p) : parse_expression(p, with_condexpr);
		nvec_push(p, &args, e);
		if (is_op(cur(p), O_COMMA))
			is_tuple = 1;
		else
			break;
	}
	leave(p);
	if (!is_tuple) {
		if (args.n)
			return args.v[0];
		if (!explicit_parens)
			fail(p, cur(p)->line, "expected an expression, got '%s'", describe(cur(p)));
	}
	struct jnode *n = mk(p, NK_TUPLE, line);
	n->kids = args.v;
	n->n = args.n;
	return n;
}

/* Arguments of a call, filter or test: positional then keyword. */
static void parse_call_args(struct parser *p, struct jnode *n)
{
	struct tok *open = cur(p);
	struct nvec args = { 0 };
	struct jkw *kw = NULL;
	size_t n_kw = 0, alloc_kw = 0;
	int need_comma = 0;
	expect_op(p, O_LPAREN, "(");
	while (!is_op(cur(p), O_RPAREN)) {
		if (need_comma) {
			expect_op(p, O_COMMA, ",");
			if (is_op(cur(p), O_RPAREN))
				break;
		}
		struct tok *t = cur(p);
		if (is_op(t, O_MUL) || is_op(t, O_POW))
			fail(p, t->line, "*args and **kwargs in calls are not supported");
		if (t->type == T_NAME && is_op(look(p), O_ASSIGN)) {
			next(p);
			next(p);
			if (n_kw == alloc_kw) {
				size_t na = alloc_kw ? alloc_kw * 2 : 4;
				struct jkw *nk = palloc(p, na * sizeof(*nk));
				if (n_kw)
					memcpy(nk, kw, n_kw * sizeof(*nk));
				kw = nk;
				alloc_kw = na;
			}
			kw[n_kw].name = t->s;
			kw[n_kw].val = parse_expression(p, 1);
			n_kw++;
		} else {
			if (n_kw)
				fail(p, open->line, "invalid syntax for function call expression");
			nvec_push(p, &args, parse_expression(p, 1));
		}
		need_comma = 1;
	}
	expect_op(p, O_RPAREN, ")");
	n->kids = args.v;
	n->n = args.n;
	n->kw = kw;
	n->n_kw = n_kw;
}

static struct jnode *parse_subscribed(struct parser *p)
{
	int line = cur(p)->line;
	struct jnode *parts[3] = { NULL, NULL, NULL };
	if (is_op(cur(p), O_COLON)) {
		next(p);
	} else {
		struct jnode *e = parse_expression(p, 1);
		if (!is_op(cur(p), O_COLON))
			return e;
		next(p);
		parts[0] = e;
	}
	if (!is_op(cur(p), O_COLON) && !is_op(cur(p), O_RBRACKET) && !is_op(cur(p), O_COMMA))
		parts[1] = parse_expression(p, 1);
	if (is_op(cur(p), O_COLON)) {
		next(p);
		if (!is_op(cur(p), O_RBRACKET) && !is_op(cur(p), O_COMMA))
			parts[2] = parse_expression(p, 1);
	}
	struct jnode *s = mk(p, NK_SLICE, line);
	s->b = parts[0];
	s->c = parts[1];
	s->d = parts[2];
	return s;
}

static struct jnode *parse_subscript(struct parser *p, struct jnode *node)
{
	struct tok *t = next(p);
	if (is_op(t, O_DOT)) {
		struct tok *a = next(p);
		if (a->type == T_NAME) {
			struct jnode *n = mk(p, NK_GETATTR, t->line);
			n->a = node;
			n->name = a->s;
			return n;
		}
		if (a->type != T_INT)
			fail(p, a->line, "expected name or number");
		struct jnode *n = mk(p, NK_GETITEM, t->line);
		n->a = node;
		n->b = konst(p, pval(p, jv_int(p->a, a->i)), a->line);
		return n;
	}
	/* '[' */
	struct nvec args = { 0 };
	while (!is_op(cur(p), O_RBRACKET)) {
		if (args.n)
			expect_op(p, O_COMMA, ",");
		nvec_push(p, &args, parse_subscribed(p));
	}
	expect_op(p, O_RBRACKET, "]");
	if (!args.n)
		fail(p, t->line, "expected subscript expression");
	if (args.n == 1 && args.v[0]->kind == NK_SLICE && !args.v[0]->a) {
		args.v[0]->a = node;
		return args.v[0];
	}
	struct jnode *n = mk(p, NK_GETITEM, t->line);
	n->a = node;
	if (args.n == 1) {
		n->b = args.v[0];
	} else {
		for (size_t i = 0; i < args.n; i++)
			if (args.v[i]->kind == NK_SLICE && !args.v[i]->a)
				fail(p, t->line,
				     "slices inside a tuple subscript are not supported");
		struct jnode *tup = mk(p, NK_TUPLE, t->line);
		tup->kids = args.v;
		tup->n = args.n;
		n->b = tup;
	}
	return n;
}

static struct jnode *parse_call(struct parser *p, struct jnode *node)
{
	struct jnode *n = mk(p, NK_CALL, cur(p)->line);
	n->a = node;
	parse_call_args(p, n);
	return n;
}

static struct jnode *parse_postfix(struct parser *p, struct jnode *node)
{
	for (;;) {
		struct tok *t = cur(p);
		if (is_op(t, O_DOT) || is_op(t, O_LBRACKET))
			node = parse_subscript(p, node);
		else if (is_op(t, O_LPAREN))
			node = parse_call(p, node);
		else
			return node;
	}
}

/* A dotted name (filters and tests may be "a.b"). */
static const char *dotted_name(struct parser *p)
{
	struct tok *t = expect_name(p);
	if (!is_op(cur(p), O_DOT))
		return t->s;
	/* in the arena: a syntax error unwinds from expect_name() */
	const char *r = t->s;
	while (is_op(cur(p), O_DOT)) {
		next(p);
		const char *part = expect_name(p)->s;
		size_t a = strlen(r), b = strlen(part);
		char *joined = palloc(p, a + b + 2);
		memcpy(joined, r, a);
		joined[a] = '.';
		memcpy(joined + a + 1, part, b + 1);
		r = joined;
	}
	return r;
}

static struct jnode *parse_filter(struct parser *p, struct jnode *node, int start_inline)
{
	while (is_op(cur(p), O_PIPE) || start_inline) {
		if (!start_inline)
			next(p);
		int line = cur(p)->line;
		const char *name = dotted_name(p);
		struct jnode *f = mk(p, NK_FILTER, line);
		f->a = node;
		f->name = name;
		int id = jinja_filter_id(name);
		if (id < 0 && !p->soft)
			fail(p, line, "no filter named '%s'", name);
		f->op = (unsigned short)(id < 0 ? 0xFFFF : id);
		if (is_op(cur(p), O_LPAREN))
			parse_call_args(p, f);
		node = f;
		start_inline = 0;
	}
	return node;
}

static struct jnode *parse_test(struct parser *p, struct jnode *node)
{
	int line = next(p)->line; /* 'is' */
	int negated = 0;
	if (is_name(cur(p), "not")) {
		next(p);
		negated = 1;
	}
	const char *name = dotted_name(p);
	struct jnode *t = mk(p, NK_TEST, line);
	t->a = node;
	t->name = name;
	int id = jinja_test_id(name);
	if (id < 0 && !p->soft)
		fail(p, line, "no test named '%s'", name);
	t->op = (unsigned short)(id < 0 ? 0xFFFF : id);
	struct tok *c = cur(p);
	if (is_op(c, O_LPAREN)) {
		parse_call_args(p, t);
	} else if ((c->type == T_NAME || c->type == T_STRING || c->type == T_INT ||
		    c->type == T_FLOAT || is_op(c, O_LBRACKET) || is_op(c, O_LBRACE)) &&
		   !is_name(c, "else") && !is_name(c, "or") && !is_name(c, "and")) {
		if (is_name(c, "is"))
			fail(p, c->line, "you cannot chain multiple tests with is");
		struct jnode *arg = parse_postfix(p, parse_primary(p));
		t->kids = palloc(p, sizeof(struct jnode *));
		t->kids[0] = arg;
		t->n = 1;
	}
	if (!negated)
		return t;
	struct jnode *n = mk(p, NK_NOT, line);
	n->a = t;
	return n;
}

static struct jnode *parse_filter_expr(struct parser *p, struct jnode *node)
{
	for (;;) {
		struct tok *t = cur(p);
		if (is_op(t, O_PIPE))
			node = parse_filter(p, node, 0);
		else if (is_name(t, "is"))
			node = parse_test(p, node);
		else if (is_op(t, O_LPAREN))
			node = parse_call(p, node);
		else
			return node;
	}
}

/* ---- parser: statements -------------------------------------------------------------- */

static int can_assign(const struct jnode *n)
{
	if (n->kind == NK_NAME || n->kind == NK_NSREF)
		return 1;
	if (n->kind != NK_TUPLE)
		return 0;
	for (size_t i = 0; i < n->n; i++)
		if (!can_assign(n->kids[i]) || n->kids[i]->kind == NK_NSREF)
			return 0;
	return 1;
}

static struct jnode *parse_assign_target(struct parser *p, int name_only, const char *extra_end,
					 int with_namespace)
{
	struct tok *t = cur(p);
	struct jnode *target;
	if (with_namespace && is_op(look(p), O_DOT)) {
		struct tok *ns = expect_name(p);
		next(p);
		struct tok *attr = expect_name(p);
		target = mk(p, NK_NSREF, ns->line);
		target->name = ns->s;
		target->val = pval(p, jv_str(p->a, attr->s, attr->len, 1));
	} else if (name_only) {
		struct tok *nm = expect_name(p);
		target = mk(p, NK_NAME, nm->line);
		target->name = nm->s;
	} else {
		target = parse_tuple(p, 1, 1, extra_end, 0);
	}
	if (!can_assign(target))
		fail(p, t->line, "cannot assign to '%s'", describe(t));
	if (target->kind == NK_NAME) {
		static const char *const consts[] = { "true", "false", "none",
						      "True", "False", "None" };
		for (size_t i = 0; i < sizeof(consts) / sizeof(consts[0]); i++)
			if (!strcmp(target->name, consts[i]))
				fail(p, t->line, "cannot assign to '%s'", target->name);
	}
	return target;
}

static struct jnode *subparse(struct parser *p, const char *const *end);

/* The body of a statement up to one of end (the needle stays current
 * unless drop). */
static struct jnode *parse_statements(struct parser *p, const char *const *end, int drop)
{
	if (is_op(cur(p), O_COLON))
		next(p);
	expect_type(p, T_BLOCK_END, "end of statement block");
	struct jnode *body = subparse(p, end);
	if (cur(p)->type == T_EOF) {
		struct strbuf sb = STRBUF_INIT;
		for (int i = 0; end[i]; i++)
			strbuf_addf(&sb, "%s'%s'", i ? " or " : "", end[i]);
		char msg[200];
		snprintf(msg, sizeof(msg), "%s", sb.buf);
		strbuf_release(&sb);
		fail(p, cur(p)->line, "unexpected end of template, expected %s", msg);
	}
	if (drop)
		next(p);
	return body;
}

static struct jnode *parse_for(struct parser *p, int line)
{
	static const char *const end_body[] = { "endfor", "else", NULL };
	static const char *const end_else[] = { "endfor", NULL };
	struct jnode *n = mk(p, NK_FOR, line);
	n->a = parse_assign_target(p, 0, "in", 0);
	expect_keyword(p, "in");
	n->b = parse_tuple(p, 0, 0, "recursive", 0);
	if (is_name(cur(p), "if")) {
		next(p);
		n->c = parse_expression(p, 1);
	}
	if (is_name(cur(p), "recursive"))
		fail(p, cur(p)->line, "recursive loops are not supported");
	int saved_soft = p->soft;
	p->soft = 0;
	p->in_loop++;
	n->d = parse_statements(p, end_body, 0);
	p->in_loop--;
	if (!strcmp(next(p)->s, "else"))
		n->e = parse_statements(p, end_else, 1);
	p->soft = saved_soft;
	return n;
}

static struct jnode *parse_if(struct parser *p, int line)
{
	static const char *const end_body[] = { "elif", "else", "endif", NULL };
	static const char *const end_else[] = { "endif", NULL };
	struct jnode *top = mk(p, NK_IF, line), *node = top;
	p->soft++;
	for (;;) {
		node->a = parse_tuple(p, 0, 0, NULL, 0);
		node->b = parse_statements(p, end_body, 0);
		struct tok *t = next(p);
		if (is_name(t, "elif")) {
			/* an NK_IF as the else part is an elif (an else body is
			 * always an NK_BODY): the evaluator walks the chain */
			struct jnode *e = mk(p, NK_IF, t->line);
			node->c = e;
			node = e;
			continue;
		}
		if (is_name(t, "else"))
			node->c = parse_statements(p, end_else, 1);
		break;
	}
	p->soft--;
	return top;
}

static struct jnode *parse_set(struct parser *p, int line)
{
	static const char *const end[] = { "endset", NULL };
	struct jnode *target = parse_assign_target(p, 0, NULL, 1);
	if (is_op(cur(p), O_ASSIGN)) {
		next(p);
		struct jnode *n = mk(p, NK_SET, line);
		n->a = target;
		n->b = parse_tuple(p, 0, 1, NULL, 0);
		return n;
	}
	struct jnode *n = mk(p, NK_SETBLOCK, line);
	n->a = target;
	int saved_soft = p->soft;
	p->soft = 0;
	n->c = parse_filter(p, NULL, 0);
	n->d = parse_statements(p, end, 1);
	p->soft = saved_soft;
	return n;
}

static struct jnode *parse_macro(struct parser *p, int line)
{
	static const char *const end[] = { "endmacro", NULL };
	struct jnode *n = mk(p, NK_MACRO, line);
	n->name = expect_name(p)->s;
	struct nvec params = { 0 }, defs = { 0 };
	expect_op(p, O_LPAREN, "(");
	while (!is_op(cur(p), O_RPAREN)) {
		if (params.n)
			expect_op(p, O_COMMA, ",");
		struct jnode *a = parse_assign_target(p, 1, NULL, 0);
		if (is_op(cur(p), O_ASSIGN)) {
			next(p);
			nvec_push(p, &defs, parse_expression(p, 1));
		} else if (defs.n) {
			fail(p, a->line, "non-default argument follows default argument");
		}
		nvec_push(p, &params, a);
	}
	expect_op(p, O_RPAREN, ")");
	n->kids = params.v;
	n->n = params.n;
	n->defs = defs.v;
	n->n_defs = defs.n;
	int saved_soft = p->soft, saved_loop = p->in_loop;
	p->soft = 0;
	p->in_loop = 0;
	n->d = parse_statements(p, end, 1);
	p->soft = saved_soft;
	p->in_loop = saved_loop;
	return n;
}

static struct jnode *parse_with(struct parser *p, int line)
{
	static const char *const end[] = { "endwith", NULL };
	struct jnode *n = mk(p, NK_WITH, line);
	struct nvec pairs = { 0 };
	while (cur(p)->type != T_BLOCK_END) {
		if (pairs.n)
			expect_op(p, O_COMMA, ",");
		nvec_push(p, &pairs, parse_assign_target(p, 0, NULL, 0));
		expect_op(p, O_ASSIGN, "=");
		nvec_push(p, &pairs, parse_expression(p, 1));
	}
	n->kids = pairs.v;
	n->n = pairs.n;
	int saved_soft = p->soft;
	p->soft = 0;
	n->d = parse_statements(p, end, 1);
	p->soft = saved_soft;
	return n;
}

static struct jnode *parse_statement(struct parser *p)
{
	struct tok *t = cur(p);
	if (t->type != T_NAME)
		fail(p, t->line, "tag name expected");
	next(p);
	struct jnode *n;
	enter(p);
	if (!strcmp(t->s, "for")) {
		n = parse_for(p, t->line);
	} else if (!strcmp(t->s, "if")) {
		n = parse_if(p, t->line);
	} else if (!strcmp(t->s, "set")) {
		n = parse_set(p, t->line);
	} else if (!strcmp(t->s, "macro")) {
		n = parse_macro(p, t->line);
	} else if (!strcmp(t->s, "with")) {
		n = parse_with(p, t->line);
	} else if (!strcmp(t->s, "filter")) {
		static const char *const end[] = { "endfilter", NULL };
		n = mk(p, NK_FILTERBLOCK, t->line);
		int saved_soft = p->soft;
		p->soft = 0;
		n->c = parse_filter(p, NULL, 1);
		n->d = parse_statements(p, end, 1);
		p->soft = saved_soft;
	} else if (!strcmp(t->s, "generation")) {
		static const char *const end[] = { "endgeneration", NULL };
		n = mk(p, NK_GENERATION, t->line);
		n->d = parse_statements(p, end, 1);
	} else if (!strcmp(t->s, "break") || !strcmp(t->s, "continue")) {
		if (!p->in_loop)
			fail(p, t->line, "'%s' outside of a loop", t->s);
		n = mk(p, t->s[0] == 'b' ? NK_BREAK : NK_CONTINUE, t->line);
	} else if (!strcmp(t->s, "print")) {
		struct nvec outs = { 0 };
		while (cur(p)->type != T_BLOCK_END) {
			if (outs.n)
				expect_op(p, O_COMMA, ",");
			struct jnode *o = mk(p, NK_OUTPUT, t->line);
			o->a = parse_expression(p, 1);
			nvec_push(p, &outs, o);
		}
		n = mk(p, NK_BODY, t->line);
		n->kids = outs.v;
		n->n = outs.n;
	} else if (!strcmp(t->s, "call") || !strcmp(t->s, "block") || !strcmp(t->s, "extends") ||
		   !strcmp(t->s, "include") || !strcmp(t->s, "import") || !strcmp(t->s, "from") ||
		   !strcmp(t->s, "autoescape") || !strcmp(t->s, "do")) {
		fail(p, t->line, "the '%s' tag is not supported", t->s);
	} else {
		fail(p, t->line, "unknown tag '%s'", t->s);
	}
	leave(p);
	return n;
}

static int in_list(const char *s, const char *const *list)
{
	for (int i = 0; list && list[i]; i++)
		if (!strcmp(s, list[i]))
			return 1;
	return 0;
}

static struct jnode *subparse(struct parser *p, const char *const *end)
{
	struct nvec body = { 0 };
	int line = cur(p)->line;
	for (;;) {
		struct tok *t = cur(p);
		if (t->type == T_EOF)
			break;
		if (t->type == T_DATA) {
			next(p);
			struct jnode *d = mk(p, NK_DATA, t->line);
			d->val = pval(p, jv_str(p->a, t->s, t->len, 1));
			nvec_push(p, &body, d);
		} else if (t->type == T_VAR_BEGIN) {
			next(p);
			struct jnode *o = mk(p, NK_OUTPUT, t->line);
			o->a = parse_tuple(p, 0, 1, NULL, 0);
			expect_type(p, T_VAR_END, "end of print statement");
			nvec_push(p, &body, o);
		} else if (t->type == T_BLOCK_BEGIN) {
			next(p);
			struct tok *name = cur(p);
			if (end && name->type == T_NAME && in_list(name->s, end))
				break;
			nvec_push(p, &body, parse_statement(p));
			expect_type(p, T_BLOCK_END, "end of statement block");
		} else {
			fail(p, t->line, "unexpected '%s'", describe(t));
		}
	}
	struct jnode *n = mk(p, NK_BODY, line);
	n->kids = body.v;
	n->n = body.n;
	return n;
}

/* ---- entry points ---------------------------------------------------------------------- */

struct jinja_template *jinja_parse(const char *src, size_t len)
{
	struct jinja_template *t = xcalloc(1, sizeof(*t));
	struct parser *p = xcalloc(1, sizeof(*p));
	jarena_init(&t->arena, 0);
	p->a = &t->arena;
	if (setjmp(p->jb)) {
		error("%s", p->msg);
		jarena_free(&t->arena);
		free(t);
		free(p);
		return NULL;
	}
	/* newlines: \r\n and \r become \n; one trailing newline goes */
	char *norm = palloc(p, len + 1);
	size_t n = 0;
	for (size_t i = 0; i < len; i++) {
		if (src[i] == '\r') {
			norm[n++] = '\n';
			if (i + 1 < len && src[i + 1] == '\n')
				i++;
		} else {
			norm[n++] = src[i];
		}
	}
	if (n && norm[n - 1] == '\n')
		n--;
	norm[n] = 0;
	p->src = norm;
	p->n = n;
	lex(p);
	p->line = 1;
	t->root = subparse(p, NULL);
	free(p);
	return t;
}

void jinja_free(struct jinja_template *t)
{
	if (!t)
		return;
	jarena_free(&t->arena);
	free(t);
}

static int uses(const struct jnode *n, const char *name)
{
	if (!n)
		return 0;
	if ((n->kind == NK_NAME || n->kind == NK_NSREF) && !strcmp(n->name, name))
		return 1;
	if (uses(n->a, name) || uses(n->b, name) || uses(n->c, name) || uses(n->d, name) ||
	    uses(n->e, name))
		return 1;
	for (size_t i = 0; i < n->n; i++)
		if (uses(n->kids[i], name))
			return 1;
	for (size_t i = 0; i < n->n_kw; i++)
		if (uses(n->kw[i].val, name))
			return 1;
	for (size_t i = 0; i < n->n_defs; i++)
		if (uses(n->defs[i], name))
			return 1;
	return 0;
}

int jinja_uses(const struct jinja_template *t, const char *name)
{
	return uses(t->root, name);
}
