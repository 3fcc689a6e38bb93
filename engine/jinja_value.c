/* Jinja values: arenas, strings that remember who wrote each byte, and Python's rules for comparing and printing. */
#include "jinja_int.h"

#include "jinja_case.h"
#include "report.h"
#include "unicode.h"
#include "xalloc.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- arenas ------------------------------------------------------------------ */

#define BLOCK_SIZE (64 * 1024)
#define BIG_ALLOC (BLOCK_SIZE / 4) /* larger requests get a block of their own */

struct jblock {
	struct jblock *next;
	size_t size;
	/* data follows, 16-aligned */
	_Alignas(16) char data[];
};

void jarena_init(struct jarena *a, size_t cap)
{
	memset(a, 0, sizeof(*a));
	a->cap = cap;
}

void jarena_free(struct jarena *a)
{
	struct jblock *b = a->blocks;
	while (b) {
		struct jblock *n = b->next;
		free(b);
		b = n;
	}
	a->blocks = NULL;
	a->cur = NULL;
	a->left = 0;
	a->used = 0;
}

static struct jblock *new_block(struct jarena *a, size_t size)
{
	size_t total;
	if (size_add(size, sizeof(struct jblock), &total))
		return NULL;
	struct jblock *b = malloc(total);
	if (!b)
		return NULL;
	b->size = size;
	return b;
}

void *jarena_alloc(struct jarena *a, size_t n)
{
	size_t need = (n + 15) & ~(size_t)15;
	if (need < n)
		return NULL;
	if (a->cap && (need > a->cap || a->used > a->cap - need))
		return NULL;
	if (need > BIG_ALLOC) {
		struct jblock *b = new_block(a, need);
		if (!b)
			return NULL;
		/* behind the current small block so that its free space stays usable */
		if (a->blocks) {
			b->next = a->blocks->next;
			a->blocks->next = b;
		} else {
			b->next = NULL;
			a->blocks = b;
		}
		a->used += need;
		return b->data;
	}
	if (need > a->left) {
		struct jblock *b = new_block(a, BLOCK_SIZE);
		if (!b)
			return NULL;
		b->next = a->blocks;
		a->blocks = b;
		a->cur = b->data;
		a->left = BLOCK_SIZE;
	}
	void *p = a->cur;
	a->cur += need;
	a->left -= need;
	a->used += need;
	return p;
}

void *jarena_alloc_z(struct jarena *a, size_t n)
{
	void *p = jarena_alloc(a, n);
	if (p)
		memset(p, 0, n);
	return p;
}

/* ---- constants and constructors ------------------------------------------------- */

struct jval jv_undef_c = { .type = JT_UNDEF };
struct jval jv_none_c = { .type = JT_NONE };
struct jval jv_true_c = { .type = JT_BOOL, .u.b = 1 };
struct jval jv_false_c = { .type = JT_BOOL, .u.b = 0 };
struct jval jv_empty_c = { .type = JT_STR, .u.str = { 0, "", NULL, 1 } };

struct jval *jv_new(struct jarena *a, int type)
{
	struct jval *v = jarena_alloc_z(a, sizeof(*v));
	if (v)
		v->type = (unsigned char)type;
	return v;
}

struct jval *jv_int(struct jarena *a, int64_t i)
{
	struct jval *v = jv_new(a, JT_INT);
	if (v)
		v->u.i = i;
	return v;
}

struct jval *jv_float(struct jarena *a, double f)
{
	struct jval *v = jv_new(a, JT_FLOAT);
	if (v)
		v->u.f = f;
	return v;
}

struct jval *jv_bool(int b)
{
	return b ? &jv_true_c : &jv_false_c;
}

struct jval *jv_str(struct jarena *a, const char *s, size_t n, int tmpl)
{
	struct jval *v = jv_new(a, JT_STR);
	if (!v)
		return NULL;
	char *d = jarena_alloc(a, n + 1);
	if (!d)
		return NULL;
	if (n)
		memcpy(d, s, n);
	d[n] = 0;
	v->u.str.s = d;
	v->u.str.len = n;
	v->u.str.uni = (unsigned char)(tmpl != 0);
	return v;
}

struct jval *jv_list(struct jarena *a, size_t n)
{
	struct jval *v = jv_new(a, JT_LIST);
	size_t bytes;
	if (!v || size_mul(n ? n : 1, sizeof(struct jval *), &bytes))
		return NULL;
	v->u.list.v = jarena_alloc_z(a, bytes);
	if (!v->u.list.v)
		return NULL;
	v->u.list.n = n;
	return v;
}

struct jdict *jdict_new(struct jarena *a)
{
	return jarena_alloc_z(a, sizeof(struct jdict));
}

static int key_eq(const struct jval *a, const struct jval *b)
{
	return jv_eq(a, b);
}

struct jval *jdict_get(const struct jdict *d, const struct jval *k)
{
	for (size_t i = 0; i < d->n; i++)
		if (key_eq(d->k[i], k))
			return d->v[i];
	return NULL;
}

struct jval *jdict_get_str(const struct jdict *d, const char *k)
{
	size_t n = strlen(k);
	for (size_t i = 0; i < d->n; i++)
		if (d->k[i]->type == JT_STR && d->k[i]->u.str.len == n &&
		    !memcmp(d->k[i]->u.str.s, k, n))
			return d->v[i];
	return NULL;
}

int jdict_set(struct jarena *a, struct jdict *d, struct jval *k, struct jval *v)
{
	for (size_t i = 0; i < d->n; i++)
		if (key_eq(d->k[i], k)) {
			d->v[i] = v;
			return 0;
		}
	if (d->n == d->alloc) {
		size_t na = d->alloc ? d->alloc * 2 : 4, bytes;
		if (size_mul(na, sizeof(struct jval *), &bytes))
			return -1;
		struct jval **nk = jarena_alloc(a, bytes), **nv = jarena_alloc(a, bytes);
		if (!nk || !nv)
			return -1;
		if (d->n) {
			memcpy(nk, d->k, d->n * sizeof(*nk));
			memcpy(nv, d->v, d->n * sizeof(*nv));
		}
		d->k = nk;
		d->v = nv;
		d->alloc = na;
	}
	d->k[d->n] = k;
	d->v[d->n] = v;
	d->n++;
	return 0;
}

/* ---- string builder ----------------------------------------------------------- */

void jsb_init(struct jsb *b, struct jarena *a, size_t max)
{
	memset(b, 0, sizeof(*b));
	b->a = a;
	b->first = -1;
	b->max = max;
}

static int jsb_reserve(struct jsb *b, size_t extra)
{
	size_t need;
	if (b->failed)
		return -1;
	if (size_add(b->len, extra, &need) || (b->max && need > b->max)) {
		b->failed = JSB_TOO_LONG;
		return -1;
	}
	if (need + 1 <= b->alloc)
		return 0;
	size_t na = b->alloc ? b->alloc : 32;
	while (na < need + 1) {
		if (na > SIZE_MAX / 2) {
			b->failed = JSB_TOO_LONG;
			return -1;
		}
		na *= 2;
	}
	char *nb = jarena_alloc(b->a, na);
	unsigned char *nt = NULL;
	if (nb && b->tm)
		nt = jarena_alloc(b->a, na);
	if (!nb || (b->tm && !nt)) {
		b->failed = JSB_NO_MEMORY;
		return -1;
	}
	if (b->len) {
		memcpy(nb, b->buf, b->len);
		if (nt)
			memcpy(nt, b->tm, b->len);
	}
	b->buf = nb;
	if (b->tm)
		b->tm = nt;
	b->alloc = na;
	return 0;
}

/* The origins differ from here on: keep one byte per byte. */
static int jsb_split(struct jsb *b)
{
	unsigned char *t = jarena_alloc(b->a, b->alloc ? b->alloc : 1);
	if (!t) {
		b->failed = JSB_NO_MEMORY;
		return -1;
	}
	memset(t, b->first > 0, b->len);
	b->tm = t;
	return 0;
}

void jsb_add(struct jsb *b, const char *s, size_t n, int tmpl)
{
	tmpl = tmpl != 0;
	if (!n || jsb_reserve(b, n) < 0)
		return;
	if (!b->tm && b->first >= 0 && b->first != tmpl && jsb_split(b) < 0)
		return;
	memcpy(b->buf + b->len, s, n);
	if (b->tm)
		memset(b->tm + b->len, tmpl, n);
	else if (b->first < 0)
		b->first = tmpl;
	b->len += n;
}

void jsb_add_str(struct jsb *b, const struct jval *v, size_t off, size_t n)
{
	if (!n)
		return;
	if (!v->u.str.tm) {
		jsb_add(b, v->u.str.s + off, n, v->u.str.uni);
		return;
	}
	if (jsb_reserve(b, n) < 0)
		return;
	if (!b->tm && b->first >= 0 && jsb_split(b) < 0)
		return;
	if (!b->tm) {
		/* empty so far: stay uniform if the piece is */
		int u = v->u.str.tm[off];
		size_t k = 1;
		while (k < n && v->u.str.tm[off + k] == u)
			k++;
		if (k == n) {
			jsb_add(b, v->u.str.s + off, n, u);
			return;
		}
		if (jsb_split(b) < 0)
			return;
	}
	memcpy(b->buf + b->len, v->u.str.s + off, n);
	memcpy(b->tm + b->len, v->u.str.tm + off, n);
	b->len += n;
}

void jsb_add_val(struct jsb *b, const struct jval *v)
{
	jsb_add_str(b, v, 0, v->u.str.len);
}

struct jval *jsb_finish(struct jsb *b)
{
	if (b->failed || jsb_reserve(b, 0) < 0)
		return NULL;
	struct jval *v = jv_new(b->a, JT_STR);
	if (!v)
		return NULL;
	b->buf[b->len] = 0;
	v->u.str.s = b->buf;
	v->u.str.len = b->len;
	v->u.str.uni = (unsigned char)(b->first > 0);
	if (b->tm) {
		/* one origin after all? (a split followed by same-origin text) */
		size_t k = 1;
		while (k < b->len && b->tm[k] == b->tm[0])
			k++;
		if (k >= b->len)
			v->u.str.uni = b->len ? b->tm[0] : 0;
		else
			v->u.str.tm = b->tm;
	}
	return v;
}

/* ---- UTF-8 and character classes ------------------------------------------------ */

uint32_t ju_next(const char *s, size_t len, size_t *i)
{
	const unsigned char *p = (const unsigned char *)s + *i;
	size_t left = len - *i;
	unsigned char c = p[0];
	if (c < 0x80) {
		(*i)++;
		return c;
	}
	size_t n = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 ? 2 : 0;
	if (n && n <= left && c < 0xF5) {
		uint32_t cp = c & (0x7F >> n);
		size_t k;
		for (k = 1; k < n; k++) {
			if ((p[k] & 0xC0) != 0x80)
				break;
			cp = cp << 6 | (p[k] & 0x3F);
		}
		if (k == n && !(n == 3 && (cp < 0x800 || (cp >= 0xD800 && cp < 0xE000))) &&
		    !(n == 4 && (cp < 0x10000 || cp > 0x10FFFF))) {
			*i += n;
			return cp;
		}
	}
	(*i)++;
	return 0xDC00 + c;
}

size_t ju_put(char *out, uint32_t cp)
{
	unsigned char *o = (unsigned char *)out;
	if (cp >= 0xDC80 && cp <= 0xDCFF) { /* an invalid byte kept as it was */
		o[0] = (unsigned char)(cp - 0xDC00);
		return 1;
	}
	if (cp < 0x80) {
		o[0] = (unsigned char)cp;
		return 1;
	}
	if (cp < 0x800) {
		o[0] = (unsigned char)(0xC0 | cp >> 6);
		o[1] = (unsigned char)(0x80 | (cp & 0x3F));
		return 2;
	}
	if (cp < 0x10000) {
		o[0] = (unsigned char)(0xE0 | cp >> 12);
		o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
		o[2] = (unsigned char)(0x80 | (cp & 0x3F));
		return 3;
	}
	o[0] = (unsigned char)(0xF0 | cp >> 18);
	o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
	o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
	o[3] = (unsigned char)(0x80 | (cp & 0x3F));
	return 4;
}

size_t ju_count(const char *s, size_t len)
{
	size_t n = 0;
	for (size_t i = 0; i < len; n++)
		ju_next(s, len, &i);
	return n;
}

size_t ju_offset(const char *s, size_t len, size_t k)
{
	size_t i = 0;
	while (k-- && i < len)
		ju_next(s, len, &i);
	return i;
}

int ju_isspace(uint32_t cp)
{
	if (cp >= 0x1C && cp <= 0x1F)
		return 1; /* Python counts the separators of bidi class B and S */
	return cp <= UNICODE_MAX && unicode_is_whitespace(cp);
}

int ju_isprintable(uint32_t cp)
{
	if (cp == ' ')
		return 1;
	if (cp > UNICODE_MAX)
		return 0;
	enum unicode_class c = unicode_class_of(cp);
	return c != UNICODE_UNASSIGNED && c != UNICODE_OTHER && c != UNICODE_SEPARATOR;
}

int ju_isalpha(uint32_t cp)
{
	return cp <= UNICODE_MAX && unicode_class_of(cp) == UNICODE_LETTER;
}

int ju_isdigit(uint32_t cp)
{
	if (cp < 0x80)
		return cp >= '0' && cp <= '9';
	return cp <= UNICODE_MAX && unicode_class_of(cp) == UNICODE_NUMBER;
}

int ju_islinebreak(uint32_t cp)
{
	return cp == '\n' || cp == '\r' || cp == 0x0B || cp == 0x0C || cp == 0x1C || cp == 0x1D ||
	       cp == 0x1E || cp == 0x85 || cp == 0x2028 || cp == 0x2029;
}

static int case_map(const struct case_run *runs, size_t n_runs, const struct case_multi *multi,
		    size_t n_multi, uint32_t cp, uint32_t out[3])
{
	size_t lo = 0, hi = n_multi;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (multi[mid].cp == cp) {
			int k = 0;
			while (k < 3 && multi[mid].to[k])
				out[k] = multi[mid].to[k], k++;
			return k;
		}
		if (multi[mid].cp < cp)
			lo = mid + 1;
		else
			hi = mid;
	}
	lo = 0;
	hi = n_runs;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (cp < runs[mid].lo) {
			hi = mid;
		} else if (cp > runs[mid].hi) {
			lo = mid + 1;
		} else {
			if ((cp - runs[mid].lo) % runs[mid].step == 0) {
				out[0] = (uint32_t)((int64_t)cp + runs[mid].delta);
				return 1;
			}
			break;
		}
	}
	out[0] = cp;
	return 1;
}

#define CASE_MAP(name, cp, out)                                                                    \
	case_map(name##_runs, sizeof(name##_runs) / sizeof(name##_runs[0]), name##_multi,          \
		 sizeof(name##_multi) / sizeof(name##_multi[0]), cp, out)

int ju_upper(uint32_t cp, uint32_t out[3])
{
	if (cp < 0x80) {
		out[0] = cp >= 'a' && cp <= 'z' ? cp - 32 : cp;
		return 1;
	}
	return CASE_MAP(case_upper, cp, out);
}

int ju_lower(uint32_t cp, uint32_t out[3])
{
	if (cp < 0x80) {
		out[0] = cp >= 'A' && cp <= 'Z' ? cp + 32 : cp;
		return 1;
	}
	return CASE_MAP(case_lower, cp, out);
}

int ju_title(uint32_t cp, uint32_t out[3])
{
	if (cp < 0x80)
		return ju_upper(cp, out);
	return CASE_MAP(case_title, cp, out);
}

int ju_iscased(uint32_t cp)
{
	uint32_t u[3], l[3];
	int nu = ju_upper(cp, u), nl = ju_lower(cp, l);
	return nu != 1 || nl != 1 || u[0] != cp || l[0] != cp;
}

int ju_iscaseignorable(uint32_t cp)
{
	if (cp == '\'' || cp == '.' || cp == ':' || cp == '^' || cp == '`' || cp == 0xB7 ||
	    cp == 0x2019)
		return 1;
	return cp <= UNICODE_MAX && unicode_class_of(cp) == UNICODE_MARK;
}

/* ---- Python semantics ------------------------------------------------------------- */

static int is_num(const struct jval *v)
{
	return v->type == JT_INT || v->type == JT_FLOAT || v->type == JT_BOOL;
}

static double num_f(const struct jval *v)
{
	return v->type == JT_FLOAT ? v->u.f : v->type == JT_INT ? (double)v->u.i : (double)v->u.b;
}

static int64_t num_i(const struct jval *v)
{
	return v->type == JT_INT ? v->u.i : v->u.b;
}

int jv_truthy(const struct jval *v)
{
	switch (v->type) {
	case JT_UNDEF:
	case JT_NONE: return 0;
	case JT_BOOL: return v->u.b;
	case JT_INT: return v->u.i != 0;
	case JT_FLOAT: return v->u.f != 0;
	case JT_STR: return v->u.str.len != 0;
	case JT_LIST: return (v->flags & JF_ITER) || v->u.list.n != 0;
	case JT_DICT: return v->u.dict->n != 0;
	default: return 1;
	}
}

int jv_eq(const struct jval *a, const struct jval *b)
{
	if (a == b)
		return 1;
	if (is_num(a) && is_num(b)) {
		if (a->type != JT_FLOAT && b->type != JT_FLOAT)
			return num_i(a) == num_i(b);
		return num_f(a) == num_f(b);
	}
	if (a->type != b->type)
		return 0;
	switch (a->type) {
	case JT_UNDEF:
	case JT_NONE: return 1;
	case JT_STR:
		return a->u.str.len == b->u.str.len &&
		       !memcmp(a->u.str.s, b->u.str.s, a->u.str.len);
	case JT_LIST:
		if ((a->flags & (JF_TUPLE | JF_ITER)) != (b->flags & (JF_TUPLE | JF_ITER)) ||
		    (a->flags & JF_ITER) || a->u.list.n != b->u.list.n)
			return 0;
		for (size_t i = 0; i < a->u.list.n; i++)
			if (!jv_eq(a->u.list.v[i], b->u.list.v[i]))
				return 0;
		return 1;
	case JT_DICT:
		if (a->u.dict->n != b->u.dict->n)
			return 0;
		for (size_t i = 0; i < a->u.dict->n; i++) {
			const struct jval *o = jdict_get(b->u.dict, a->u.dict->k[i]);
			if (!o || !jv_eq(a->u.dict->v[i], o))
				return 0;
		}
		return 1;
	case JT_NS: return a->u.dict == b->u.dict;
	case JT_MACRO:
		return a->u.macro.def == b->u.macro.def && a->u.macro.scope == b->u.macro.scope;
	case JT_FUNC: return a->u.fn.id == b->u.fn.id && a->u.fn.self == b->u.fn.self;
	case JT_LOOP: return a->u.loop == b->u.loop;
	default: return 0;
	}
}

int jv_cmp(const struct jval *a, const struct jval *b, int *out)
{
	if (is_num(a) && is_num(b)) {
		if (a->type != JT_FLOAT && b->type != JT_FLOAT) {
			int64_t x = num_i(a), y = num_i(b);
			*out = x < y ? -1 : x > y;
		} else {
			double x = num_f(a), y = num_f(b);
			/* NaN compares false both ways: report "not less, not greater" */
			*out = x < y ? -1 : x > y ? 1 : 0;
			if (x != x || y != y)
				*out = 2;
		}
		return 0;
	}
	if (a->type == JT_STR && b->type == JT_STR) {
		size_t n = a->u.str.len < b->u.str.len ? a->u.str.len : b->u.str.len;
		int c = memcmp(a->u.str.s, b->u.str.s, n);
		*out = c < 0                         ? -1
		       : c > 0                       ? 1
		       : a->u.str.len < b->u.str.len ? -1
						     : a->u.str.len > b->u.str.len;
		return 0;
	}
	if (a->type == JT_LIST && b->type == JT_LIST && !((a->flags | b->flags) & JF_ITER) &&
	    (a->flags & JF_TUPLE) == (b->flags & JF_TUPLE)) {
		size_t n = a->u.list.n < b->u.list.n ? a->u.list.n : b->u.list.n;
		for (size_t i = 0; i < n; i++) {
			if (jv_eq(a->u.list.v[i], b->u.list.v[i]))
				continue;
			return jv_cmp(a->u.list.v[i], b->u.list.v[i], out);
		}
		*out = a->u.list.n < b->u.list.n ? -1 : a->u.list.n > b->u.list.n;
		return 0;
	}
	return -1;
}

int jv_hashable(const struct jval *v)
{
	if (v->type == JT_LIST) {
		if (!(v->flags & JF_TUPLE))
			return 0;
		for (size_t i = 0; i < v->u.list.n; i++)
			if (!jv_hashable(v->u.list.v[i]))
				return 0;
		return 1;
	}
	return v->type != JT_DICT && v->type != JT_NS && v->type != JT_UNDEF;
}

const char *jv_type_name(const struct jval *v)
{
	switch (v->type) {
	case JT_UNDEF: return "Undefined";
	case JT_NONE: return "NoneType";
	case JT_BOOL: return "bool";
	case JT_INT: return "int";
	case JT_FLOAT: return "float";
	case JT_STR: return "str";
	case JT_LIST:
		return v->flags & JF_ITER ? "generator" : v->flags & JF_TUPLE ? "tuple" : "list";
	case JT_DICT: return "dict";
	case JT_NS: return "Namespace";
	case JT_MACRO: return "Macro";
	case JT_FUNC: return v->u.fn.self ? "builtin_function_or_method" : "function";
	case JT_LOOP: return "LoopContext";
	}
	return "object";
}

/* ---- printing ------------------------------------------------------------------------ */

void jv_float_repr(double f, char *buf, size_t size)
{
	if (f != f) {
		snprintf(buf, size, "nan");
		return;
	}
	if (isinf(f)) {
		snprintf(buf, size, f < 0 ? "-inf" : "inf");
		return;
	}
	/* the shortest %.Ne that reads back as f, then Python's layout */
	char tmp[40];
	int prec;
	for (prec = 0; prec < 17; prec++) {
		snprintf(tmp, sizeof(tmp), "%.*e", prec, f);
		if (strtod(tmp, NULL) == f)
			break;
	}
	snprintf(tmp, sizeof(tmp), "%.*e", prec, f);
	/* tmp is [-]D[.DDD]e[+-]XX: collect the digits and the exponent */
	char digits[24];
	int nd = 0, neg = tmp[0] == '-';
	const char *p = tmp + neg;
	while (*p && *p != 'e') {
		if (*p != '.')
			digits[nd++] = *p;
		p++;
	}
	int exp = atoi(p + 1);
	while (nd > 1 && digits[nd - 1] == '0')
		nd--;
	digits[nd] = 0;
	char out[64];
	size_t o = 0;
	if (neg)
		out[o++] = '-';
	if (exp < -4 || exp >= 16) {
		out[o++] = digits[0];
		if (nd > 1) {
			out[o++] = '.';
			memcpy(out + o, digits + 1, (size_t)nd - 1);
			o += (size_t)nd - 1;
		}
		o += (size_t)snprintf(out + o, sizeof(out) - o, "e%c%02d", exp < 0 ? '-' : '+',
				      exp < 0 ? -exp : exp);
	} else if (exp < 0) {
		out[o++] = '0';
		out[o++] = '.';
		for (int k = 0; k < -exp - 1; k++)
			out[o++] = '0';
		memcpy(out + o, digits, (size_t)nd);
		o += (size_t)nd;
	} else {
		for (int k = 0; k <= exp; k++)
			out[o++] = k < nd ? digits[k] : '0';
		out[o++] = '.';
		if (nd > exp + 1) {
			memcpy(out + o, digits + exp + 1, (size_t)(nd - exp - 1));
			o += (size_t)(nd - exp - 1);
		} else {
			out[o++] = '0';
		}
	}
	out[o] = 0;
	snprintf(buf, size, "%s", out);
}

static void add_c(struct jsb *b, const char *s)
{
	jsb_add(b, s, strlen(s), 0);
}

static void add_num(struct jsb *b, const struct jval *v)
{
	char buf[64];
	if (v->type == JT_INT)
		snprintf(buf, sizeof(buf), "%lld", (long long)v->u.i);
	else
		jv_float_repr(v->u.f, buf, sizeof(buf));
	add_c(b, buf);
}

/* Python's repr of a string: quotes chosen as Python does, escapes for
 * what is not printable; each byte keeps the origin of its character. */
static void repr_str(struct jsb *b, const struct jval *v)
{
	const char *s = v->u.str.s;
	size_t n = v->u.str.len;
	int has_sq = memchr(s, '\'', n) != NULL, has_dq = memchr(s, '"', n) != NULL;
	char q = has_sq && !has_dq ? '"' : '\'';
	jsb_add(b, &q, 1, 0);
	for (size_t i = 0; i < n;) {
		size_t at = i;
		uint32_t cp = ju_next(s, n, &i);
		int tm = jstr_tm(v, at);
		char esc[16];
		if (cp == (uint32_t)q || cp == '\\') {
			esc[0] = '\\';
			esc[1] = (char)cp;
			jsb_add(b, esc, 2, tm);
		} else if (cp == '\n') {
			jsb_add(b, "\\n", 2, tm);
		} else if (cp == '\r') {
			jsb_add(b, "\\r", 2, tm);
		} else if (cp == '\t') {
			jsb_add(b, "\\t", 2, tm);
		} else if (cp >= 0xDC80 && cp <= 0xDCFF) {
			snprintf(esc, sizeof(esc), "\\udc%02x", (unsigned)(cp - 0xDC00));
			jsb_add(b, esc, strlen(esc), tm);
		} else if (!ju_isprintable(cp)) {
			if (cp < 0x100)
				snprintf(esc, sizeof(esc), "\\x%02x", (unsigned)cp);
			else if (cp < 0x10000)
				snprintf(esc, sizeof(esc), "\\u%04x", (unsigned)cp);
			else
				snprintf(esc, sizeof(esc), "\\U%08x", (unsigned)cp);
			jsb_add(b, esc, strlen(esc), tm);
		} else {
			jsb_add_str(b, v, at, i - at);
		}
	}
	jsb_add(b, &q, 1, 0);
}

static void repr_any(struct jsb *b, const struct jval *v, int depth)
{
	if (depth > 64) {
		add_c(b, "...");
		return;
	}
	switch (v->type) {
	case JT_STR: repr_str(b, v); return;
	case JT_LIST: {
		if (v->flags & JF_ITER) {
			add_c(b, "<generator object>");
			return;
		}
		int tuple = v->flags & JF_TUPLE;
		add_c(b, tuple ? "(" : "[");
		for (size_t i = 0; i < v->u.list.n; i++) {
			if (i)
				add_c(b, ", ");
			repr_any(b, v->u.list.v[i], depth + 1);
		}
		if (tuple && v->u.list.n == 1)
			add_c(b, ",");
		add_c(b, tuple ? ")" : "]");
		return;
	}
	case JT_DICT:
	case JT_NS:
		if (v->type == JT_NS)
			add_c(b, "<Namespace ");
		add_c(b, "{");
		for (size_t i = 0; i < v->u.dict->n; i++) {
			if (i)
				add_c(b, ", ");
			repr_any(b, v->u.dict->k[i], depth + 1);
			add_c(b, ": ");
			repr_any(b, v->u.dict->v[i], depth + 1);
		}
		add_c(b, "}");
		if (v->type == JT_NS)
			add_c(b, ">");
		return;
	default: jv_str_into(b, v); return;
	}
}

void jv_repr_into(struct jsb *b, const struct jval *v)
{
	if (v->type == JT_UNDEF) {
		add_c(b, "Undefined");
		return;
	}
	repr_any(b, v, 0);
}

void jv_str_into(struct jsb *b, const struct jval *v)
{
	switch (v->type) {
	case JT_UNDEF: return;
	case JT_NONE: add_c(b, "None"); return;
	case JT_BOOL: add_c(b, v->u.b ? "True" : "False"); return;
	case JT_INT:
	case JT_FLOAT: add_num(b, v); return;
	case JT_STR: jsb_add_val(b, v); return;
	case JT_LIST:
	case JT_DICT:
	case JT_NS: repr_any(b, v, 0); return;
	case JT_MACRO: add_c(b, "<Macro>"); return;
	case JT_FUNC: add_c(b, "<function>"); return;
	case JT_LOOP: add_c(b, "<LoopContext>"); return;
	}
}

/* ---- JSON -------------------------------------------------------------------------- */

static void json_str(struct jsb *b, const struct jval *v)
{
	const char *s = v->u.str.s;
	size_t n = v->u.str.len;
	jsb_add(b, "\"", 1, 0);
	size_t run = 0; /* bytes copied verbatim start here */
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		const char *esc = NULL;
		char u[8];
		if (c == '"')
			esc = "\\\"";
		else if (c == '\\')
			esc = "\\\\";
		else if (c == '\n')
			esc = "\\n";
		else if (c == '\r')
			esc = "\\r";
		else if (c == '\t')
			esc = "\\t";
		else if (c == '\b')
			esc = "\\b";
		else if (c == '\f')
			esc = "\\f";
		else if (c < 0x20) {
			snprintf(u, sizeof(u), "\\u%04x", c);
			esc = u;
		}
		if (!esc)
			continue;
		jsb_add_str(b, v, run, i - run);
		jsb_add(b, esc, strlen(esc), jstr_tm(v, i));
		run = i + 1;
	}
	jsb_add_str(b, v, run, n - run);
	jsb_add(b, "\"", 1, 0);
}

static void json_newline(struct jsb *b, const struct json_opts *o, int depth)
{
	add_c(b, "\n");
	for (int i = 0; i < depth; i++)
		jsb_add(b, o->indent, o->indent_len, 0);
}

/* A dict key as json.dumps writes it, or -1 when it cannot be one. */
static int json_key(struct jsb *b, const struct jval *k)
{
	switch (k->type) {
	case JT_STR: json_str(b, k); return 0;
	case JT_INT:
	case JT_FLOAT: {
		char buf[64];
		if (k->type == JT_INT)
			snprintf(buf, sizeof(buf), "\"%lld\"", (long long)k->u.i);
		else if (k->u.f != k->u.f)
			snprintf(buf, sizeof(buf), "\"NaN\"");
		else if (isinf(k->u.f))
			snprintf(buf, sizeof(buf), "\"%s\"", k->u.f < 0 ? "-Infinity" : "Infinity");
		else {
			buf[0] = '"';
			jv_float_repr(k->u.f, buf + 1, sizeof(buf) - 2);
			strcat(buf, "\"");
		}
		add_c(b, buf);
		return 0;
	}
	case JT_BOOL: add_c(b, k->u.b ? "\"true\"" : "\"false\""); return 0;
	case JT_NONE: add_c(b, "\"null\""); return 0;
	default: return -1;
	}
}

static int key_order(const struct jval *a, const struct jval *b)
{
	int c = 0;
	if (jv_cmp(a, b, &c) < 0)
		return 0;
	return c;
}

int jv_json_into(struct jsb *b, const struct jval *v, const struct json_opts *o, int depth,
		 const struct jval **bad)
{
	if (depth > 128) {
		*bad = v;
		return -1;
	}
	switch (v->type) {
	case JT_NONE: add_c(b, "null"); return 0;
	case JT_BOOL: add_c(b, v->u.b ? "true" : "false"); return 0;
	case JT_INT: add_num(b, v); return 0;
	case JT_FLOAT:
		if (v->u.f != v->u.f)
			add_c(b, "NaN");
		else if (isinf(v->u.f))
			add_c(b, v->u.f < 0 ? "-Infinity" : "Infinity");
		else
			add_num(b, v);
		return 0;
	case JT_STR: json_str(b, v); return 0;
	case JT_LIST:
		if (v->flags & JF_ITER)
			break;
		if (!v->u.list.n) {
			add_c(b, "[]");
			return 0;
		}
		add_c(b, "[");
		for (size_t i = 0; i < v->u.list.n; i++) {
			if (i)
				add_c(b, o->item_sep);
			if (o->indent)
				json_newline(b, o, depth + 1);
			if (jv_json_into(b, v->u.list.v[i], o, depth + 1, bad) < 0)
				return -1;
		}
		if (o->indent)
			json_newline(b, o, depth);
		add_c(b, "]");
		return 0;
	case JT_DICT: {
		const struct jdict *d = v->u.dict;
		if (!d->n) {
			add_c(b, "{}");
			return 0;
		}
		/* the order to write in: as inserted, or sorted (insertion sort:
		 * dicts in templates are small) */
		size_t *ord = jarena_alloc(b->a, d->n * sizeof(size_t));
		if (!ord) {
			b->failed = JSB_NO_MEMORY;
			return 0;
		}
		for (size_t i = 0; i < d->n; i++) {
			size_t j = i;
			if (o->sort_keys) {
				int c;
				for (size_t k = 0; k < i; k++)
					if (jv_cmp(d->k[ord[k]], d->k[i], &c) < 0) {
						*bad = d->k[i];
						return -1;
					}
				while (j > 0 && key_order(d->k[ord[j - 1]], d->k[i]) > 0) {
					ord[j] = ord[j - 1];
					j--;
				}
			}
			ord[j] = i;
		}
		add_c(b, "{");
		for (size_t i = 0; i < d->n; i++) {
			if (i)
				add_c(b, o->item_sep);
			if (o->indent)
				json_newline(b, o, depth + 1);
			if (json_key(b, d->k[ord[i]]) < 0) {
				*bad = d->k[ord[i]];
				return -1;
			}
			add_c(b, o->key_sep);
			if (jv_json_into(b, d->v[ord[i]], o, depth + 1, bad) < 0)
				return -1;
		}
		if (o->indent)
			json_newline(b, o, depth);
		add_c(b, "}");
		return 0;
	}
	default: break;
	}
	*bad = v;
	return -1;
}
