/* Jinja evaluation: runs a parsed template over a context with Jinja2's scoping, filters, tests and Python's methods. */
#include "jinja_int.h"

#include "report.h"
#include "xalloc.h"

#include <errno.h>
#include <locale.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/*
 * Values follow Python: the evaluator never mutates a list or dict (the
 * sandbox Hugging Face uses forbids append, update, ...), only namespace
 * attributes, so values are shared by pointer.  A for loop body, a macro
 * call, a with block and a filter or set block each run in a new scope
 * whose parent is where they were written; names are looked up through the
 * chain, then in the context, then among the globals.  Macros keep the
 * scope they were defined in (Jinja2's closures see later assignments).
 *
 * Every evaluation counts a step; copying n bytes counts n / 64 more, so
 * the step limit bounds the time a render takes.  The render's arena has
 * the memory limit as its cap; it frees nothing until the render ends, so
 * the cap also bounds loops (a pass costs a scope, a loop object, a few
 * hundred bytes).  Rendering a 1,000-turn conversation of 1.2 MB with
 * Qwen3's or Llama 3.1's template takes about 150,000 steps and 20 MiB;
 * the defaults leave 60 times that.
 */

struct jscope {
	struct jscope *parent;
	struct jdict *vars;
};

struct render {
	jmp_buf jb;
	char msg[512];
	struct jarena a;
	struct jinja_limits lim;
	uint64_t steps;
	int depth;
	time_t now;
	struct jsb *out; /* where output goes: the result, or a capture */
	const struct jdict *ctx;
	struct jscope *top;
};

enum flow { FLOW_NORMAL, FLOW_BREAK, FLOW_CONTINUE };

__attribute__((format(printf, 3, 4), noreturn)) static void rfail(struct render *r, int line,
								  const char *fmt, ...)
{
	va_list ap;
	int n = line > 0 ? snprintf(r->msg, sizeof(r->msg), "line %d: ", line) : 0;
	va_start(ap, fmt);
	vsnprintf(r->msg + n, sizeof(r->msg) - (size_t)n, fmt, ap);
	va_end(ap);
	/* one line: a template's own text (raise_exception) may hold newlines */
	for (char *c = r->msg; *c; c++)
		if (*c == '\n' || *c == '\r')
			*c = ' ';
	longjmp(r->jb, 1);
}

__attribute__((noreturn)) static void fail_memory(struct render *r, int line)
{
	rfail(r, line, "the template needs more than %zu MiB of memory", r->lim.max_memory >> 20);
}

static void *ralloc(struct render *r, size_t n, int line)
{
	void *p = jarena_alloc(&r->a, n);
	if (!p)
		fail_memory(r, line);
	return p;
}

static struct jval *chk(struct render *r, struct jval *v, int line)
{
	if (!v)
		fail_memory(r, line);
	return v;
}

static void tick(struct render *r, uint64_t n, int line)
{
	r->steps += n;
	if (r->steps > r->lim.max_steps)
		rfail(r, line, "the template ran more than %llu steps",
		      (unsigned long long)r->lim.max_steps);
}

/* A string builder in the render's arena; strings are at most max_output
 * bytes (a longer one could only be printed past the output limit). */
static void sb_init(struct render *r, struct jsb *b)
{
	jsb_init(b, &r->a, r->lim.max_output);
}

static struct jval *sb_finish(struct render *r, struct jsb *b, int line)
{
	if (b->failed) {
		if (b->failed == JSB_NO_MEMORY)
			fail_memory(r, line);
		rfail(r, line, "a string longer than the output limit of %zu bytes",
		      r->lim.max_output);
	}
	tick(r, b->len / 64, line);
	struct jval *v = jsb_finish(b);
	if (!v)
		fail_memory(r, line);
	return v;
}

static struct jval *mkstr(struct render *r, const char *s, size_t n, int tmpl, int line)
{
	tick(r, n / 64, line);
	return chk(r, jv_str(&r->a, s, n, tmpl), line);
}

static struct jval *mkint(struct render *r, int64_t i, int line)
{
	return chk(r, jv_int(&r->a, i), line);
}

static struct jval *mkfloat(struct render *r, double f, int line)
{
	return chk(r, jv_float(&r->a, f), line);
}

static struct jval *mklist(struct render *r, size_t n, int line)
{
	tick(r, n / 8, line);
	return chk(r, jv_list(&r->a, n), line);
}

/* A list being built. */
struct lb {
	struct jval **v;
	size_t n, alloc;
};

static void lb_push(struct render *r, struct lb *b, struct jval *x, int line)
{
	if (b->n == b->alloc) {
		size_t na = b->alloc ? b->alloc * 2 : 8;
		struct jval **nv = ralloc(r, na * sizeof(*nv), line);
		if (b->n)
			memcpy(nv, b->v, b->n * sizeof(*nv));
		b->v = nv;
		b->alloc = na;
	}
	b->v[b->n++] = x;
}

static struct jval *lb_finish(struct render *r, struct lb *b, int flags, int line)
{
	struct jval *l = mklist(r, 0, line);
	l->u.list.v = b->v ? b->v : l->u.list.v;
	l->u.list.n = b->n;
	l->flags = (unsigned char)flags;
	return l;
}

static struct jval *undef(struct render *r, const char *name, const char *owner)
{
	struct jval *u = chk(r, jv_new(&r->a, JT_UNDEF), 0);
	u->u.undef.name = name;
	u->u.undef.owner = owner;
	return u;
}

static const char *undef_message(struct render *r, const struct jval *u)
{
	static _Thread_local char buf[256];
	(void)r;
	if (u->u.undef.owner)
		snprintf(buf, sizeof(buf), "%s '%.100s'", u->u.undef.owner,
			 u->u.undef.name ? u->u.undef.name : "?");
	else if (u->u.undef.name)
		snprintf(buf, sizeof(buf), "'%.100s' is undefined", u->u.undef.name);
	else
		snprintf(buf, sizeof(buf), "a value is undefined");
	return buf;
}

__attribute__((noreturn)) static void fail_undef(struct render *r, const struct jval *u, int line)
{
	rfail(r, line, "%s", undef_message(r, u));
}

/* A C string copy of a name for messages and undefined values. */
static const char *rdup(struct render *r, const char *s, size_t n)
{
	char *d = ralloc(r, n + 1, 0);
	memcpy(d, s, n);
	d[n] = 0;
	return d;
}

/* ---- scopes ---------------------------------------------------------------------- */

static struct jscope *scope_new(struct render *r, struct jscope *parent, int line)
{
	struct jscope *s = ralloc(r, sizeof(*s), line);
	s->parent = parent;
	s->vars = jdict_new(&r->a);
	if (!s->vars)
		fail_memory(r, line);
	return s;
}

static void scope_set(struct render *r, struct jscope *s, const char *name, struct jval *v,
		      int line)
{
	struct jval *k = mkstr(r, name, strlen(name), 1, line);
	if (jdict_set(&r->a, s->vars, k, v) < 0)
		fail_memory(r, line);
}

enum gfunc {
	G_RANGE = 1,
	G_NAMESPACE,
	G_DICT,
	G_RAISE,
	G_STRFTIME,
	G_JOINER_NEW,
	/* bound methods: string */
	M_STR_FIRST,
	M_CAPITALIZE = M_STR_FIRST,
	M_CENTER,
	M_COUNT,
	M_ENDSWITH,
	M_FIND,
	M_FORMAT,
	M_INDEX,
	M_ISALNUM,
	M_ISALPHA,
	M_ISDIGIT,
	M_ISLOWER,
	M_ISSPACE,
	M_ISUPPER,
	M_JOIN,
	M_LJUST,
	M_LOWER,
	M_LSTRIP,
	M_REMOVEPREFIX,
	M_REMOVESUFFIX,
	M_REPLACE,
	M_RFIND,
	M_RJUST,
	M_RSPLIT,
	M_RSTRIP,
	M_SPLIT,
	M_SPLITLINES,
	M_STARTSWITH,
	M_STRIP,
	M_TITLE,
	M_UPPER,
	M_ZFILL,
	M_STR_LAST = M_ZFILL,
	/* dict */
	M_GET,
	M_ITEMS,
	M_KEYS,
	M_VALUES,
	M_DICT_COPY,
	/* list */
	M_LIST_COUNT,
	M_LIST_INDEX,
	M_LIST_COPY,
	/* loop */
	M_CYCLE,
	/* joiner() */
	M_JOINER,
};

static const struct {
	const char *name;
	int id;
} globals[] = {
	{ "range", G_RANGE },           { "namespace", G_NAMESPACE },   { "dict", G_DICT },
	{ "raise_exception", G_RAISE }, { "strftime_now", G_STRFTIME }, { "joiner", G_JOINER_NEW },
};

static struct jval *func(struct render *r, int id, struct jval *self)
{
	struct jval *f = chk(r, jv_new(&r->a, JT_FUNC), 0);
	f->u.fn.id = id;
	f->u.fn.self = self;
	return f;
}

static struct jval *lookup(struct render *r, struct jscope *s, const char *name)
{
	for (; s; s = s->parent) {
		struct jval *v = jdict_get_str(s->vars, name);
		if (v)
			return v;
	}
	struct jval *v = jdict_get_str(r->ctx, name);
	if (v)
		return v;
	for (size_t i = 0; i < sizeof(globals) / sizeof(globals[0]); i++)
		if (!strcmp(name, globals[i].name))
			return func(r, globals[i].id, NULL);
	return undef(r, name, NULL);
}

/* ---- attribute and item access ---------------------------------------------------- */

static const char *owner_name(const struct jval *v)
{
	switch (v->type) {
	case JT_NONE: return "'None' has no attribute";
	case JT_BOOL: return "'bool object' has no attribute";
	case JT_INT: return "'int object' has no attribute";
	case JT_FLOAT: return "'float object' has no attribute";
	case JT_STR: return "'str object' has no attribute";
	case JT_LIST:
		return v->flags & JF_TUPLE ? "'tuple object' has no attribute"
					   : "'list object' has no attribute";
	case JT_DICT: return "'dict object' has no attribute";
	case JT_NS: return "'Namespace object' has no attribute";
	default: return "the object has no attribute";
	}
}

static const struct {
	const char *name;
	int id;
} str_methods[] = {
	{ "capitalize", M_CAPITALIZE },
	{ "center", M_CENTER },
	{ "count", M_COUNT },
	{ "endswith", M_ENDSWITH },
	{ "find", M_FIND },
	{ "format", M_FORMAT },
	{ "index", M_INDEX },
	{ "isalnum", M_ISALNUM },
	{ "isalpha", M_ISALPHA },
	{ "isdigit", M_ISDIGIT },
	{ "islower", M_ISLOWER },
	{ "isspace", M_ISSPACE },
	{ "isupper", M_ISUPPER },
	{ "join", M_JOIN },
	{ "ljust", M_LJUST },
	{ "lower", M_LOWER },
	{ "lstrip", M_LSTRIP },
	{ "removeprefix", M_REMOVEPREFIX },
	{ "removesuffix", M_REMOVESUFFIX },
	{ "replace", M_REPLACE },
	{ "rfind", M_RFIND },
	{ "rjust", M_RJUST },
	{ "rsplit", M_RSPLIT },
	{ "rstrip", M_RSTRIP },
	{ "split", M_SPLIT },
	{ "splitlines", M_SPLITLINES },
	{ "startswith", M_STARTSWITH },
	{ "strip", M_STRIP },
	{ "title", M_TITLE },
	{ "upper", M_UPPER },
	{ "zfill", M_ZFILL },
};

/* Python attribute lookup (what getattr(obj, name) finds): a bound method,
 * an attribute, or NULL.  *unsafe is set for methods the sandbox refuses. */
static struct jval *py_attr(struct render *r, struct jval *obj, const char *name, int *unsafe)
{
	*unsafe = 0;
	if (name[0] == '_') {
		*unsafe = 1;
		return NULL;
	}
	switch (obj->type) {
	case JT_STR:
		for (size_t i = 0; i < sizeof(str_methods) / sizeof(str_methods[0]); i++)
			if (!strcmp(name, str_methods[i].name))
				return func(r, str_methods[i].id, obj);
		return NULL;
	case JT_DICT:
		if (!strcmp(name, "get"))
			return func(r, M_GET, obj);
		if (!strcmp(name, "items"))
			return func(r, M_ITEMS, obj);
		if (!strcmp(name, "keys"))
			return func(r, M_KEYS, obj);
		if (!strcmp(name, "values"))
			return func(r, M_VALUES, obj);
		if (!strcmp(name, "copy"))
			return func(r, M_DICT_COPY, obj);
		if (!strcmp(name, "pop") || !strcmp(name, "popitem") || !strcmp(name, "update") ||
		    !strcmp(name, "clear") || !strcmp(name, "setdefault"))
			*unsafe = 1;
		return NULL;
	case JT_LIST:
		if (obj->flags & JF_ITER)
			return NULL;
		if (!strcmp(name, "count"))
			return func(r, M_LIST_COUNT, obj);
		if (!strcmp(name, "index"))
			return func(r, M_LIST_INDEX, obj);
		if (!(obj->flags & JF_TUPLE)) {
			if (!strcmp(name, "copy"))
				return func(r, M_LIST_COPY, obj);
			if (!strcmp(name, "append") || !strcmp(name, "extend") ||
			    !strcmp(name, "insert") || !strcmp(name, "pop") ||
			    !strcmp(name, "remove") || !strcmp(name, "reverse") ||
			    !strcmp(name, "sort") || !strcmp(name, "clear"))
				*unsafe = 1;
		}
		return NULL;
	case JT_NS: return jdict_get_str(obj->u.dict, name);
	case JT_LOOP: {
		const struct jloop *l = obj->u.loop;
		int64_t i = l->index0, n = l->length;
		if (!strcmp(name, "index"))
			return mkint(r, i + 1, 0);
		if (!strcmp(name, "index0"))
			return mkint(r, i, 0);
		if (!strcmp(name, "revindex"))
			return mkint(r, n - i, 0);
		if (!strcmp(name, "revindex0"))
			return mkint(r, n - i - 1, 0);
		if (!strcmp(name, "first"))
			return jv_bool(i == 0);
		if (!strcmp(name, "last"))
			return jv_bool(i == n - 1);
		if (!strcmp(name, "length"))
			return mkint(r, n, 0);
		if (!strcmp(name, "depth"))
			return mkint(r, l->depth, 0);
		if (!strcmp(name, "depth0"))
			return mkint(r, l->depth - 1, 0);
		if (!strcmp(name, "previtem"))
			return i > 0 ? l->items->u.list.v[i - 1]
				     : undef(r, "there is no previous item", NULL);
		if (!strcmp(name, "nextitem"))
			return i + 1 < n ? l->items->u.list.v[i + 1]
					 : undef(r, "there is no next item", NULL);
		if (!strcmp(name, "cycle"))
			return func(r, M_CYCLE, obj);
		return NULL;
	}
	default: return NULL;
	}
}

static struct jval *getitem(struct render *r, struct jval *obj, struct jval *key, int line);

/* obj.name: the attribute, else obj[name], else undefined (Jinja2's getattr). */
static struct jval *getattr_(struct render *r, struct jval *obj, const char *name, int line)
{
	if (obj->type == JT_UNDEF)
		fail_undef(r, obj, line);
	int unsafe;
	struct jval *v = py_attr(r, obj, name, &unsafe);
	if (v)
		return v;
	if (unsafe) {
		struct jval *u = undef(r, name, NULL);
		u->u.undef.unsafe = 1;
		u->u.undef.owner = "the sandbox forbids the attribute";
		return u;
	}
	if (obj->type == JT_DICT) {
		v = jdict_get_str(obj->u.dict, name);
		if (v)
			return v;
	}
	return undef(r, rdup(r, name, strlen(name)), owner_name(obj));
}

/* A Python index into n items: the position, or -1 when out of range. */
static int64_t py_index(int64_t i, size_t n)
{
	if (i < 0)
		i += (int64_t)n;
	return i < 0 || (uint64_t)i >= n ? -1 : i;
}

/* obj[key]: the item, else the attribute named key, else undefined (Jinja2's getitem). */
static struct jval *getitem(struct render *r, struct jval *obj, struct jval *key, int line)
{
	if (obj->type == JT_UNDEF)
		fail_undef(r, obj, line);
	int is_idx = key->type == JT_INT || key->type == JT_BOOL;
	int64_t idx = key->type == JT_INT ? key->u.i : key->type == JT_BOOL ? key->u.b : 0;
	switch (obj->type) {
	case JT_DICT:
		if (jv_hashable(key)) {
			struct jval *v = jdict_get(obj->u.dict, key);
			if (v)
				return v;
		}
		break;
	case JT_LIST:
		if (is_idx && !(obj->flags & JF_ITER)) {
			int64_t k = py_index(idx, obj->u.list.n);
			if (k >= 0)
				return obj->u.list.v[k];
			return undef(r, "element", "the list has no such");
		}
		break;
	case JT_STR:
		if (is_idx) {
			size_t n = ju_count(obj->u.str.s, obj->u.str.len);
			int64_t k = py_index(idx, n);
			if (k < 0)
				return undef(r, "index", "the string has no such");
			size_t off = ju_offset(obj->u.str.s, obj->u.str.len, (size_t)k), e = off;
			ju_next(obj->u.str.s, obj->u.str.len, &e);
			struct jsb b;
			sb_init(r, &b);
			jsb_add_str(&b, obj, off, e - off);
			return sb_finish(r, &b, line);
		}
		break;
	default: break;
	}
	if (key->type == JT_STR) {
		int unsafe;
		struct jval *v = py_attr(r, obj, key->u.str.s, &unsafe);
		if (v)
			return v;
		if (unsafe) {
			struct jval *u =
				undef(r, key->u.str.s, "the sandbox forbids the attribute");
			u->u.undef.unsafe = 1;
			return u;
		}
		return undef(r, key->u.str.s, owner_name(obj));
	}
	return undef(r, "item", owner_name(obj));
}

/* ---- conversions --------------------------------------------------------------------- */

static struct jval *to_str(struct render *r, struct jval *v, int line)
{
	if (v->type == JT_STR)
		return v;
	struct jsb b;
	sb_init(r, &b);
	jv_str_into(&b, v);
	return sb_finish(r, &b, line);
}

static int is_num(const struct jval *v)
{
	return v->type == JT_INT || v->type == JT_FLOAT || v->type == JT_BOOL;
}

static double as_f(const struct jval *v)
{
	return v->type == JT_FLOAT ? v->u.f : v->type == JT_INT ? (double)v->u.i : v->u.b;
}

static int64_t as_i(const struct jval *v)
{
	return v->type == JT_INT ? v->u.i : v->u.b;
}

/* An int argument (bools count), or an error. */
static int64_t want_int(struct render *r, const struct jval *v, const char *what, int line)
{
	if (v->type == JT_UNDEF)
		fail_undef(r, v, line);
	if (v->type != JT_INT && v->type != JT_BOOL)
		rfail(r, line, "%s must be an integer, not '%s'", what, jv_type_name(v));
	return as_i(v);
}

static const struct jval *want_str(struct render *r, const struct jval *v, const char *what,
				   int line)
{
	if (v->type == JT_UNDEF)
		fail_undef(r, v, line);
	if (v->type != JT_STR)
		rfail(r, line, "%s must be a string, not '%s'", what, jv_type_name(v));
	return v;
}

/* The items iterating v gives (a list's own array, a dict's keys, a
 * string's characters); NULL with a message for what is not iterable. */
static struct jval *iter_items(struct render *r, struct jval *v, int line)
{
	switch (v->type) {
	case JT_UNDEF: return mklist(r, 0, line);
	case JT_LIST: return v;
	case JT_DICT: {
		struct jval *l = mklist(r, v->u.dict->n, line);
		for (size_t i = 0; i < v->u.dict->n; i++)
			l->u.list.v[i] = v->u.dict->k[i];
		return l;
	}
	case JT_STR: {
		struct lb b = { 0 };
		const char *s = v->u.str.s;
		for (size_t i = 0; i < v->u.str.len;) {
			size_t at = i;
			ju_next(s, v->u.str.len, &i);
			struct jsb sb;
			sb_init(r, &sb);
			jsb_add_str(&sb, v, at, i - at);
			lb_push(r, &b, sb_finish(r, &sb, line), line);
		}
		return lb_finish(r, &b, 0, line);
	}
	default: rfail(r, line, "'%s' object is not iterable", jv_type_name(v));
	}
}

/* ---- arithmetic ------------------------------------------------------------------------ */

static void escape_into(struct jsb *b, const struct jval *s)
{
	size_t run = 0;
	for (size_t i = 0; i < s->u.str.len; i++) {
		const char *e = NULL;
		switch (s->u.str.s[i]) {
		case '&': e = "&amp;"; break;
		case '<': e = "&lt;"; break;
		case '>': e = "&gt;"; break;
		case '"': e = "&#34;"; break;
		case '\'': e = "&#39;"; break;
		default: break;
		}
		if (!e)
			continue;
		jsb_add_str(b, s, run, i - run);
		jsb_add(b, e, strlen(e), jstr_tm(s, i));
		run = i + 1;
	}
	jsb_add_str(b, s, run, s->u.str.len - run);
}

/* markupsafe.escape: a safe string stays as it is. */
static struct jval *escape_val(struct render *r, struct jval *v, int force, int line)
{
	if (v->type == JT_STR && (v->flags & JF_SAFE) && !force)
		return v;
	struct jval *s = to_str(r, v, line);
	struct jsb b;
	sb_init(r, &b);
	escape_into(&b, s);
	struct jval *o = sb_finish(r, &b, line);
	o->flags |= JF_SAFE;
	return o;
}

static struct jval *repeat(struct render *r, struct jval *seq, int64_t times, int line)
{
	if (times < 0)
		times = 0;
	if (seq->type == JT_STR) {
		size_t total;
		if (size_mul(seq->u.str.len, (size_t)times, &total) || total > r->lim.max_output)
			rfail(r, line, "a string longer than the output limit of %zu bytes",
			      r->lim.max_output);
		struct jsb b;
		sb_init(r, &b);
		for (int64_t i = 0; i < times; i++)
			jsb_add_val(&b, seq);
		struct jval *o = sb_finish(r, &b, line);
		o->flags |= seq->flags & JF_SAFE;
		return o;
	}
	size_t total;
	if (size_mul(seq->u.list.n, (size_t)times, &total) || total > SIZE_MAX / sizeof(void *))
		fail_memory(r, line);
	struct jval *l = mklist(r, total, line);
	for (size_t i = 0; i < total; i++)
		l->u.list.v[i] = seq->u.list.v[i % seq->u.list.n];
	l->flags = seq->flags & JF_TUPLE;
	return l;
}

static struct jval *format_percent(struct render *r, struct jval *fmt, struct jval *args, int line);

static int64_t floordiv_i(int64_t a, int64_t b)
{
	int64_t q = a / b;
	if ((a % b != 0) && ((a < 0) != (b < 0)))
		q--;
	return q;
}

static struct jval *arith(struct render *r, int op, struct jval *a, struct jval *b, int line)
{
	if (a->type == JT_UNDEF)
		fail_undef(r, a, line);
	if (b->type == JT_UNDEF)
		fail_undef(r, b, line);
	if (is_num(a) && is_num(b)) {
		int fl = a->type == JT_FLOAT || b->type == JT_FLOAT;
		int64_t x = as_i(a), y = as_i(b), z;
		double fx = as_f(a), fy = as_f(b);
		switch (op) {
		case OP_ADD:
			if (fl)
				return mkfloat(r, fx + fy, line);
			if (__builtin_add_overflow(x, y, &z))
				rfail(r, line, "integer overflow");
			return mkint(r, z, line);
		case OP_SUB:
			if (fl)
				return mkfloat(r, fx - fy, line);
			if (__builtin_sub_overflow(x, y, &z))
				rfail(r, line, "integer overflow");
			return mkint(r, z, line);
		case OP_MUL:
			if (fl)
				return mkfloat(r, fx * fy, line);
			if (__builtin_mul_overflow(x, y, &z))
				rfail(r, line, "integer overflow");
			return mkint(r, z, line);
		case OP_DIV:
			if (fy == 0)
				rfail(r, line, "division by zero");
			return mkfloat(r, fx / fy, line);
		case OP_FLOORDIV:
			if (fl) {
				if (fy == 0)
					rfail(r, line, "float floor division by zero");
				return mkfloat(r, floor(fx / fy), line);
			}
			if (y == 0)
				rfail(r, line, "integer division or modulo by zero");
			if (x == INT64_MIN && y == -1)
				rfail(r, line, "integer overflow");
			return mkint(r, floordiv_i(x, y), line);
		case OP_MOD:
			if (fl) {
				if (fy == 0)
					rfail(r, line, "float modulo");
				double m = fmod(fx, fy);
				if (m != 0 && ((m < 0) != (fy < 0)))
					m += fy;
				return mkfloat(r, m, line);
			}
			if (y == 0)
				rfail(r, line, "integer division or modulo by zero");
			if (y == -1)
				return mkint(r, 0, line);
			return mkint(r, x - floordiv_i(x, y) * y, line);
		case OP_POW:
			if (!fl && y >= 0) {
				int64_t acc = 1, base = x;
				int64_t e = y;
				while (e) {
					if (e & 1 && __builtin_mul_overflow(acc, base, &acc))
						rfail(r, line, "integer overflow");
					e >>= 1;
					if (e && __builtin_mul_overflow(base, base, &base))
						rfail(r, line, "integer overflow");
				}
				return mkint(r, acc, line);
			}
			if (fx == 0 && fy < 0)
				rfail(r, line, "0.0 cannot be raised to a negative power");
			if (fx < 0 && fy != floor(fy))
				rfail(r, line,
				      "a negative number cannot be raised to a fractional power");
			return mkfloat(r, pow(fx, fy), line);
		}
	}
	if (op == OP_ADD && a->type == JT_STR && b->type == JT_STR) {
		struct jsb sb;
		sb_init(r, &sb);
		int safe = (a->flags | b->flags) & JF_SAFE;
		/* Markup + str escapes the plain side */
		if (safe && !(a->flags & JF_SAFE))
			escape_into(&sb, a);
		else
			jsb_add_val(&sb, a);
		if (safe && !(b->flags & JF_SAFE))
			escape_into(&sb, b);
		else
			jsb_add_val(&sb, b);
		struct jval *o = sb_finish(r, &sb, line);
		o->flags |= (unsigned char)safe;
		return o;
	}
	if (op == OP_ADD && a->type == JT_LIST && b->type == JT_LIST &&
	    !((a->flags | b->flags) & JF_ITER) && (a->flags & JF_TUPLE) == (b->flags & JF_TUPLE)) {
		struct jval *l = mklist(r, a->u.list.n + b->u.list.n, line);
		if (a->u.list.n)
			memcpy(l->u.list.v, a->u.list.v, a->u.list.n * sizeof(void *));
		if (b->u.list.n)
			memcpy(l->u.list.v + a->u.list.n, b->u.list.v,
			       b->u.list.n * sizeof(void *));
		l->flags = a->flags & JF_TUPLE;
		return l;
	}
	if (op == OP_MUL) {
		struct jval *seq = NULL, *n = NULL;
		if ((a->type == JT_STR || (a->type == JT_LIST && !(a->flags & JF_ITER))) &&
		    (b->type == JT_INT || b->type == JT_BOOL))
			seq = a, n = b;
		else if ((b->type == JT_STR || (b->type == JT_LIST && !(b->flags & JF_ITER))) &&
			 (a->type == JT_INT || a->type == JT_BOOL))
			seq = b, n = a;
		if (seq)
			return repeat(r, seq, as_i(n), line);
	}
	if (op == OP_MOD && a->type == JT_STR)
		return format_percent(r, a, b, line);
	static const char *const sym[] = { "+", "-", "*", "/", "//", "%", "**" };
	rfail(r, line, "unsupported operand type(s) for %s: '%s' and '%s'", sym[op],
	      jv_type_name(a), jv_type_name(b));
}

/* ---- comparisons --------------------------------------------------------------------- */

static int contains(struct render *r, struct jval *container, struct jval *item, int line)
{
	switch (container->type) {
	case JT_UNDEF: return 0;
	case JT_STR: {
		if (item->type == JT_UNDEF)
			fail_undef(r, item, line);
		if (item->type != JT_STR)
			rfail(r, line, "'in <string>' requires string as left operand, not %s",
			      jv_type_name(item));
		if (!item->u.str.len)
			return 1;
		return memmem(container->u.str.s, container->u.str.len, item->u.str.s,
			      item->u.str.len) != NULL;
	}
	case JT_LIST:
		tick(r, container->u.list.n / 8, line);
		for (size_t i = 0; i < container->u.list.n; i++)
			if (jv_eq(container->u.list.v[i], item))
				return 1;
		return 0;
	case JT_DICT:
		if (!jv_hashable(item))
			rfail(r, line, "unhashable type: '%s'", jv_type_name(item));
		return jdict_get(container->u.dict, item) != NULL;
	default: rfail(r, line, "argument of type '%s' is not iterable", jv_type_name(container));
	}
}

static int compare(struct render *r, int op, struct jval *a, struct jval *b, int line)
{
	switch (op) {
	case OP_EQ: return jv_eq(a, b);
	case OP_NE: return !jv_eq(a, b);
	case OP_IN: return contains(r, b, a, line);
	case OP_NOTIN: return !contains(r, b, a, line);
	default: break;
	}
	if (a->type == JT_UNDEF)
		fail_undef(r, a, line);
	if (b->type == JT_UNDEF)
		fail_undef(r, b, line);
	int c;
	if (jv_cmp(a, b, &c) < 0) {
		static const char *const sym[] = { "<", "<=", ">", ">=" };
		rfail(r, line, "'%s' not supported between instances of '%s' and '%s'",
		      sym[op - OP_LT], jv_type_name(a), jv_type_name(b));
	}
	if (c == 2) /* NaN */
		return 0;
	switch (op) {
	case OP_LT: return c < 0;
	case OP_LE: return c <= 0;
	case OP_GT: return c > 0;
	default: return c >= 0;
	}
}

/* ---- string helpers ----------------------------------------------------------------------- */

/* Is cp in the strip set (chars NULL: white space)? */
static int in_chars(uint32_t cp, const struct jval *chars)
{
	if (!chars)
		return ju_isspace(cp);
	const char *s = chars->u.str.s;
	size_t n = chars->u.str.len;
	for (size_t i = 0; i < n;)
		if (ju_next(s, n, &i) == cp)
			return 1;
	return 0;
}

/* str.strip / lstrip / rstrip: the kept byte range of v. */
static struct jval *strip(struct render *r, struct jval *v, const struct jval *chars, int left,
			  int right, int line)
{
	const char *s = v->u.str.s;
	size_t n = v->u.str.len, lo = 0, hi = n;
	if (left) {
		while (lo < n) {
			size_t j = lo;
			if (!in_chars(ju_next(s, n, &j), chars))
				break;
			lo = j;
		}
	}
	if (right) {
		size_t i = lo, keep = lo;
		while (i < n) {
			uint32_t cp = ju_next(s, n, &i);
			if (!in_chars(cp, chars))
				keep = i;
		}
		hi = keep;
	}
	if (lo == 0 && hi == n)
		return v;
	struct jsb b;
	sb_init(r, &b);
	jsb_add_str(&b, v, lo, hi - lo);
	struct jval *o = sb_finish(r, &b, line);
	o->flags |= v->flags & JF_SAFE;
	return o;
}

enum { CASE_UPPER, CASE_LOWER, CASE_TITLE_WORDS, CASE_CAPITALIZE };

/* Final sigma: capital sigma lowercases to the final form after a cased
 * letter and before none (case-ignorable characters skipped). */
static int final_sigma(const char *s, size_t n, size_t at, size_t after)
{
	int before = 0;
	size_t i = 0;
	uint32_t prev_cased = 0;
	while (i < at) {
		uint32_t cp = ju_next(s, n, &i);
		if (ju_iscaseignorable(cp))
			continue;
		prev_cased = ju_iscased(cp);
	}
	before = prev_cased != 0;
	if (!before)
		return 0;
	i = after;
	while (i < n) {
		uint32_t cp = ju_next(s, n, &i);
		if (ju_iscaseignorable(cp))
			continue;
		return !ju_iscased(cp);
	}
	return 1;
}

/* Where Jinja2's title filter splits words: [-\s({[<]. */
static int title_sep(uint32_t cp)
{
	return cp == '-' || cp == '(' || cp == '{' || cp == '[' || cp == '<' || ju_isspace(cp);
}

static struct jval *change_case(struct render *r, struct jval *v, int mode, int line)
{
	const char *s = v->u.str.s;
	size_t n = v->u.str.len;
	struct jsb b;
	sb_init(r, &b);
	int prev_cased = 0, first = 1;
	for (size_t i = 0; i < n;) {
		size_t at = i;
		uint32_t cp = ju_next(s, n, &i), out[3];
		int k;
		int lower;
		switch (mode) {
		case CASE_UPPER: lower = 0; break;
		case CASE_LOWER: lower = 1; break;
		case CASE_TITLE_WORDS: lower = prev_cased; break;
		default: lower = !first; break;
		}
		if (lower) {
			if (cp == 0x3A3 && final_sigma(s, n, at, i)) {
				out[0] = 0x3C2;
				k = 1;
			} else {
				k = ju_lower(cp, out);
			}
		} else if (mode == CASE_UPPER) {
			k = ju_upper(cp, out);
		} else {
			k = ju_title(cp, out);
		}
		if (mode == CASE_TITLE_WORDS)
			prev_cased = ju_iscased(cp);
		first = 0;
		char buf[16];
		size_t m = 0;
		for (int j = 0; j < k; j++)
			m += ju_put(buf + m, out[j]);
		jsb_add(&b, buf, m, jstr_tm(v, at));
	}
	struct jval *o = sb_finish(r, &b, line);
	o->flags |= v->flags & JF_SAFE;
	return o;
}

/* The byte offset of the first (or last) occurrence of needle in hay[lo..hi), or -1. */
static int64_t find_bytes(const char *hay, size_t lo, size_t hi, const char *needle, size_t nl,
			  int last)
{
	if (hi < lo || hi - lo < nl)
		return -1;
	if (!last) {
		if (!nl)
			return (int64_t)lo;
		const char *p = memmem(hay + lo, hi - lo, needle, nl);
		return p ? p - hay : -1;
	}
	for (size_t i = hi - nl + 1; i-- > lo;)
		if (!memcmp(hay + i, needle, nl))
			return (int64_t)i;
	return -1;
}

static struct jval *replace_str(struct render *r, struct jval *s, const struct jval *old,
				const struct jval *new_, int64_t count, int line)
{
	struct jsb b;
	sb_init(r, &b);
	size_t n = s->u.str.len, ol = old->u.str.len, i = 0;
	int64_t done = 0;
	if (!ol) {
		/* the replacement goes between the characters and at both ends */
		while (count < 0 || done < count) {
			jsb_add_val(&b, new_);
			done++;
			if (i >= n)
				break;
			size_t at = i;
			ju_next(s->u.str.s, n, &i);
			jsb_add_str(&b, s, at, i - at);
		}
		jsb_add_str(&b, s, i, n - i);
		return sb_finish(r, &b, line);
	}
	while (count < 0 || done < count) {
		int64_t at = find_bytes(s->u.str.s, i, n, old->u.str.s, ol, 0);
		if (at < 0)
			break;
		jsb_add_str(&b, s, i, (size_t)at - i);
		jsb_add_val(&b, new_);
		i = (size_t)at + ol;
		done++;
		tick(r, 1, line);
	}
	jsb_add_str(&b, s, i, n - i);
	return sb_finish(r, &b, line);
}

static struct jval *substr(struct render *r, struct jval *s, size_t lo, size_t hi, int line)
{
	struct jsb b;
	sb_init(r, &b);
	jsb_add_str(&b, s, lo, hi - lo);
	return sb_finish(r, &b, line);
}

/* str.split / rsplit. */
static struct jval *split(struct render *r, struct jval *s, const struct jval *sep,
			  int64_t maxsplit, int from_right, int line)
{
	const char *p = s->u.str.s;
	size_t n = s->u.str.len;
	struct lb out = { 0 };
	if (sep && !sep->u.str.len)
		rfail(r, line, "empty separator");
	if (!sep) {
		/* runs of white space separate, ends ignored */
		struct lb words = { 0 };
		size_t i = 0;
		/* positions of words as (start, end) pairs */
		size_t *pos = NULL, np = 0, alloc = 0;
		while (i < n) {
			size_t j = i;
			if (ju_isspace(ju_next(p, n, &j))) {
				i = j;
				continue;
			}
			size_t start = i;
			while (i < n) {
				j = i;
				if (ju_isspace(ju_next(p, n, &j)))
					break;
				i = j;
			}
			if (np + 2 > alloc) {
				size_t na = alloc ? alloc * 2 : 16;
				size_t *nw = ralloc(r, na * sizeof(size_t), line);
				if (np)
					memcpy(nw, pos, np * sizeof(size_t));
				pos = nw;
				alloc = na;
			}
			pos[np++] = start;
			pos[np++] = i;
		}
		size_t nw = np / 2;
		(void)words;
		if (maxsplit < 0 || (uint64_t)maxsplit + 1 >= nw) {
			for (size_t w = 0; w < nw; w++)
				lb_push(r, &out, substr(r, s, pos[2 * w], pos[2 * w + 1], line),
					line);
			return lb_finish(r, &out, 0, line);
		}
		if (!from_right) {
			for (size_t w = 0; w < (size_t)maxsplit; w++)
				lb_push(r, &out, substr(r, s, pos[2 * w], pos[2 * w + 1], line),
					line);
			lb_push(r, &out, substr(r, s, pos[2 * maxsplit], n, line), line);
		} else {
			size_t first = nw - (size_t)maxsplit;
			lb_push(r, &out, substr(r, s, 0, pos[2 * (first - 1) + 1], line), line);
			for (size_t w = first; w < nw; w++)
				lb_push(r, &out, substr(r, s, pos[2 * w], pos[2 * w + 1], line),
					line);
		}
		return lb_finish(r, &out, 0, line);
	}
	const char *sp = sep->u.str.s;
	size_t sl = sep->u.str.len;
	if (!from_right) {
		size_t i = 0;
		int64_t done = 0;
		for (;;) {
			int64_t at = maxsplit >= 0 && done >= maxsplit
					     ? -1
					     : find_bytes(p, i, n, sp, sl, 0);
			if (at < 0) {
				lb_push(r, &out, substr(r, s, i, n, line), line);
				break;
			}
			lb_push(r, &out, substr(r, s, i, (size_t)at, line), line);
			i = (size_t)at + sl;
			done++;
		}
		return lb_finish(r, &out, 0, line);
	}
	/* from the right: collect backwards, then reverse */
	size_t hi = n;
	int64_t done = 0;
	for (;;) {
		int64_t at =
			maxsplit >= 0 && done >= maxsplit ? -1 : find_bytes(p, 0, hi, sp, sl, 1);
		if (at < 0) {
			lb_push(r, &out, substr(r, s, 0, hi, line), line);
			break;
		}
		lb_push(r, &out, substr(r, s, (size_t)at + sl, hi, line), line);
		hi = (size_t)at;
		done++;
	}
	for (size_t a = 0, z = out.n ? out.n - 1 : 0; a < z; a++, z--) {
		struct jval *t = out.v[a];
		out.v[a] = out.v[z];
		out.v[z] = t;
	}
	return lb_finish(r, &out, 0, line);
}

static struct jval *splitlines(struct render *r, struct jval *s, int keepends, int line)
{
	const char *p = s->u.str.s;
	size_t n = s->u.str.len, i = 0, start = 0;
	struct lb out = { 0 };
	while (i < n) {
		size_t at = i;
		uint32_t cp = ju_next(p, n, &i);
		if (!ju_islinebreak(cp))
			continue;
		size_t end = i;
		if (cp == '\r' && i < n && p[i] == '\n')
			end = ++i;
		lb_push(r, &out, substr(r, s, start, keepends ? end : at, line), line);
		start = i;
	}
	if (start < n)
		lb_push(r, &out, substr(r, s, start, n, line), line);
	return lb_finish(r, &out, 0, line);
}

/* str.center / ljust / rjust / zfill: pad to width characters. */
static struct jval *pad(struct render *r, struct jval *s, int64_t width, const struct jval *fill,
			int mode, int line)
{
	size_t len = ju_count(s->u.str.s, s->u.str.len);
	if (width <= (int64_t)len)
		return s;
	if ((uint64_t)width > r->lim.max_output)
		rfail(r, line, "a string longer than the output limit of %zu bytes",
		      r->lim.max_output);
	size_t marg = (size_t)width - len, left;
	if (mode == 'c')
		left = marg / 2 + (marg & (size_t)width & 1);
	else if (mode == 'l')
		left = 0;
	else
		left = marg;
	const char *f = fill ? fill->u.str.s : " ";
	size_t fl = fill ? fill->u.str.len : 1;
	int ftm = fill ? jstr_tm(fill, 0) : 0;
	struct jsb b;
	sb_init(r, &b);
	if (mode == 'z') {
		/* zfill: zeros after a leading sign */
		size_t skip = s->u.str.len && (s->u.str.s[0] == '+' || s->u.str.s[0] == '-');
		jsb_add_str(&b, s, 0, skip);
		for (size_t i = 0; i < marg; i++)
			jsb_add(&b, "0", 1, 0);
		jsb_add_str(&b, s, skip, s->u.str.len - skip);
		return sb_finish(r, &b, line);
	}
	for (size_t i = 0; i < left; i++)
		jsb_add(&b, f, fl, ftm);
	jsb_add_val(&b, s);
	for (size_t i = left; i < marg; i++)
		jsb_add(&b, f, fl, ftm);
	return sb_finish(r, &b, line);
}

/* Python's slice of n items: the indices taken, in order. */
static size_t slice_indices(struct render *r, const struct jval *lo, const struct jval *hi,
			    const struct jval *st, size_t n, int64_t *start, int64_t *step,
			    int line)
{
	int64_t s = 1;
	if (st && st->type != JT_NONE)
		s = want_int(r, st, "a slice step", line);
	if (!s)
		rfail(r, line, "slice step cannot be zero");
	int64_t a, b, len = (int64_t)n;
	if (!lo || lo->type == JT_NONE) {
		a = s < 0 ? len - 1 : 0;
	} else {
		a = want_int(r, lo, "a slice index", line);
		if (a < 0)
			a += len;
		if (a < 0)
			a = s < 0 ? -1 : 0;
		else if (a >= len)
			a = s < 0 ? len - 1 : len;
	}
	if (!hi || hi->type == JT_NONE) {
		b = s < 0 ? -1 : len;
	} else {
		b = want_int(r, hi, "a slice index", line);
		if (b < 0)
			b += len;
		if (b < 0)
			b = s < 0 ? -1 : 0;
		else if (b >= len)
			b = s < 0 ? len - 1 : len;
	}
	*start = a;
	*step = s;
	if (s > 0)
		return b > a ? (size_t)((b - a - 1) / s + 1) : 0;
	return a > b ? (size_t)((a - b - 1) / -s + 1) : 0;
}

static struct jval *slice(struct render *r, struct jval *obj, const struct jval *lo,
			  const struct jval *hi, const struct jval *st, int line)
{
	int64_t start, step;
	if (obj->type == JT_UNDEF)
		fail_undef(r, obj, line);
	if (obj->type == JT_LIST && !(obj->flags & JF_ITER)) {
		size_t k = slice_indices(r, lo, hi, st, obj->u.list.n, &start, &step, line);
		struct jval *l = mklist(r, k, line);
		for (size_t i = 0; i < k; i++)
			l->u.list.v[i] = obj->u.list.v[start + (int64_t)i * step];
		l->flags = obj->flags & JF_TUPLE;
		return l;
	}
	if (obj->type == JT_STR) {
		const char *s = obj->u.str.s;
		size_t n = obj->u.str.len, nc = ju_count(s, n);
		size_t k = slice_indices(r, lo, hi, st, nc, &start, &step, line);
		if (step == 1) {
			size_t a = ju_offset(s, n, (size_t)start);
			size_t e = a;
			for (size_t i = 0; i < k; i++)
				ju_next(s, n, &e);
			struct jval *o = substr(r, obj, a, e, line);
			o->flags |= obj->flags & JF_SAFE;
			return o;
		}
		/* character offsets, then pick */
		size_t *off = ralloc(r, (nc + 1) * sizeof(size_t), line);
		size_t i = 0, c = 0;
		while (i < n) {
			off[c++] = i;
			ju_next(s, n, &i);
		}
		off[c] = n;
		struct jsb b;
		sb_init(r, &b);
		for (size_t j = 0; j < k; j++) {
			size_t ci = (size_t)(start + (int64_t)j * step);
			jsb_add_str(&b, obj, off[ci], off[ci + 1] - off[ci]);
		}
		return sb_finish(r, &b, line);
	}
	rfail(r, line, "'%s' object is not subscriptable", jv_type_name(obj));
}

/* ---- printf-style formatting (str % args, the format filter) ------------------------------ */

static struct jval *format_percent(struct render *r, struct jval *fmt, struct jval *args, int line)
{
	const char *f = fmt->u.str.s;
	size_t n = fmt->u.str.len, ai = 0;
	struct jval **av = &args;
	size_t na = 1;
	int mapping = args->type == JT_DICT;
	if (args->type == JT_LIST && (args->flags & JF_TUPLE)) {
		av = args->u.list.v;
		na = args->u.list.n;
	}
	struct jsb b;
	sb_init(r, &b);
	size_t run = 0;
	for (size_t i = 0; i < n; i++) {
		if (f[i] != '%')
			continue;
		jsb_add_str(&b, fmt, run, i - run);
		size_t start = i++;
		if (i >= n)
			rfail(r, line, "incomplete format");
		struct jval *arg = NULL;
		if (f[i] == '(') {
			size_t close = i + 1;
			while (close < n && f[close] != ')')
				close++;
			if (close >= n || !mapping)
				rfail(r, line, "format requires a mapping");
			struct jval *k = mkstr(r, f + i + 1, close - i - 1, 0, line);
			arg = jdict_get(args->u.dict, k);
			if (!arg)
				rfail(r, line, "format key '%s' is missing", k->u.str.s);
			i = close + 1;
		}
		char spec[32];
		size_t sl = 0;
		spec[sl++] = '%';
		while (i < n && strchr("-+ #0", f[i]) && sl < 8)
			spec[sl++] = f[i++];
		while (i < n && f[i] >= '0' && f[i] <= '9' && sl < 16)
			spec[sl++] = f[i++];
		if (i < n && f[i] == '.') {
			spec[sl++] = f[i++];
			while (i < n && f[i] >= '0' && f[i] <= '9' && sl < 24)
				spec[sl++] = f[i++];
		}
		if (i >= n)
			rfail(r, line, "incomplete format");
		char conv = f[i];
		run = i + 1;
		if (conv == '%') {
			jsb_add(&b, "%", 1, jstr_tm(fmt, start));
			continue;
		}
		if (!arg) {
			if (mapping && na == 1)
				arg = args;
			else if (ai < na)
				arg = av[ai++];
			else
				rfail(r, line, "not enough arguments for format string");
		}
		char buf[512];
		buf[0] = 0;
		switch (conv) {
		case 's':
		case 'r':
		case 'a': {
			struct jsb t;
			sb_init(r, &t);
			if (conv == 's')
				jv_str_into(&t, arg);
			else
				jv_repr_into(&t, arg);
			struct jval *sv = sb_finish(r, &t, line);
			spec[sl] = 0;
			/* width and '-' apply in characters */
			int left = memchr(spec, '-', sl) != NULL;
			long width = 0;
			for (size_t k = 1; k < sl; k++)
				if (spec[k] >= '1' && spec[k] <= '9') {
					width = strtol(spec + k, NULL, 10);
					break;
				}
			const char *dot = memchr(spec, '.', sl);
			if (dot) {
				long prec = strtol(dot + 1, NULL, 10);
				size_t nc = ju_count(sv->u.str.s, sv->u.str.len);
				if ((size_t)prec < nc)
					sv = substr(
						r, sv, 0,
						ju_offset(sv->u.str.s, sv->u.str.len, (size_t)prec),
						line);
			}
			size_t nc = ju_count(sv->u.str.s, sv->u.str.len);
			if (!left)
				for (long k = (long)nc; k < width; k++)
					jsb_add(&b, " ", 1, 0);
			jsb_add_val(&b, sv);
			if (left)
				for (long k = (long)nc; k < width; k++)
					jsb_add(&b, " ", 1, 0);
			continue;
		}
		case 'd':
		case 'i':
		case 'u':
		case 'x':
		case 'X':
		case 'o':
			if (!is_num(arg))
				rfail(r, line, "%%%c format: a number is required, not %s", conv,
				      jv_type_name(arg));
			spec[sl++] = 'l';
			spec[sl++] = 'l';
			spec[sl++] = conv == 'i' || conv == 'u' ? 'd' : conv;
			spec[sl] = 0;
			snprintf(
				buf, sizeof(buf), spec,
				(long long)(arg->type == JT_FLOAT ? (int64_t)arg->u.f : as_i(arg)));
			break;
		case 'f':
		case 'F':
		case 'e':
		case 'E':
		case 'g':
		case 'G':
			if (!is_num(arg))
				rfail(r, line, "%%%c format: a real number is required, not %s",
				      conv, jv_type_name(arg));
			spec[sl++] = conv;
			spec[sl] = 0;
			snprintf(buf, sizeof(buf), spec, as_f(arg));
			break;
		case 'c':
			if (arg->type == JT_INT && arg->u.i >= 0 && arg->u.i <= 0x10FFFF) {
				buf[ju_put(buf, (uint32_t)arg->u.i)] = 0;
			} else if (arg->type == JT_STR &&
				   ju_count(arg->u.str.s, arg->u.str.len) == 1) {
				jsb_add_val(&b, arg);
				continue;
			} else {
				rfail(r, line, "%%c requires an int or a character");
			}
			break;
		default: rfail(r, line, "unsupported format character '%c'", conv);
		}
		jsb_add(&b, buf, strlen(buf), 0);
	}
	jsb_add_str(&b, fmt, run, n - run);
	if (!mapping && ai != na)
		rfail(r, line, "not all arguments converted during string formatting");
	return sb_finish(r, &b, line);
}

/* ---- arguments ------------------------------------------------------------------------------ */

struct args {
	struct jval **pos;
	size_t n;
	const char **kwn;
	struct jval **kwv;
	size_t n_kw;
};

/*
 * Bind a's arguments to the parameters names[0..n) (positional first, then
 * by name) into out; absent ones stay NULL.  Extra or unknown arguments are
 * an error naming what.
 */
static void bind(struct render *r, const struct args *a, const char *const *names, size_t n,
		 struct jval **out, const char *what, int line)
{
	for (size_t i = 0; i < n; i++)
		out[i] = NULL;
	if (a->n > n)
		rfail(r, line, "%s takes at most %zu argument%s (%zu given)", what, n,
		      n == 1 ? "" : "s", a->n);
	for (size_t i = 0; i < a->n; i++)
		out[i] = a->pos[i];
	for (size_t k = 0; k < a->n_kw; k++) {
		size_t i;
		for (i = 0; i < n; i++)
			if (!strcmp(names[i], a->kwn[k]))
				break;
		if (i == n)
			rfail(r, line, "%s got an unexpected keyword argument '%s'", what,
			      a->kwn[k]);
		if (out[i])
			rfail(r, line, "%s got multiple values for argument '%s'", what, a->kwn[k]);
		out[i] = a->kwv[k];
	}
}

static void no_args(struct render *r, const struct args *a, const char *what, int line)
{
	if (a->n || a->n_kw)
		rfail(r, line, "%s takes no arguments", what);
}

#define BIND(r, a, out, what, line, ...)                                                           \
	do {                                                                                       \
		static const char *const names_[] = { __VA_ARGS__ };                               \
		bind(r, a, names_, sizeof(names_) / sizeof(names_[0]), out, what, line);           \
	} while (0)

static int opt_bool(const struct jval *v, int def)
{
	return v ? jv_truthy(v) : def;
}

/* ---- filters -------------------------------------------------------------------------------- */

enum filter_id {
	F_ABS,
	F_ATTR,
	F_BATCH,
	F_CAPITALIZE,
	F_CENTER,
	F_COUNT,
	F_DEFAULT,
	F_DICTSORT,
	F_ESCAPE,
	F_FIRST,
	F_FLOAT,
	F_FORCEESCAPE,
	F_FORMAT,
	F_INDENT,
	F_INT,
	F_ITEMS,
	F_JOIN,
	F_LAST,
	F_LENGTH,
	F_LIST,
	F_LOWER,
	F_MAP,
	F_MAX,
	F_MIN,
	F_REJECT,
	F_REJECTATTR,
	F_REPLACE,
	F_REVERSE,
	F_ROUND,
	F_SAFE,
	F_SELECT,
	F_SELECTATTR,
	F_SORT,
	F_STRING,
	F_SUM,
	F_TITLE,
	F_TOJSON,
	F_TRIM,
	F_TRUNCATE,
	F_UNIQUE,
	F_UPPER,
	F_WORDCOUNT,
};

static const struct {
	const char *name;
	int id;
} filters[] = {
	{ "abs", F_ABS },           { "attr", F_ATTR },
	{ "batch", F_BATCH },       { "capitalize", F_CAPITALIZE },
	{ "center", F_CENTER },     { "count", F_COUNT },
	{ "d", F_DEFAULT },         { "default", F_DEFAULT },
	{ "dictsort", F_DICTSORT }, { "e", F_ESCAPE },
	{ "escape", F_ESCAPE },     { "first", F_FIRST },
	{ "float", F_FLOAT },       { "forceescape", F_FORCEESCAPE },
	{ "format", F_FORMAT },     { "indent", F_INDENT },
	{ "int", F_INT },           { "items", F_ITEMS },
	{ "join", F_JOIN },         { "last", F_LAST },
	{ "length", F_LENGTH },     { "list", F_LIST },
	{ "lower", F_LOWER },       { "map", F_MAP },
	{ "max", F_MAX },           { "min", F_MIN },
	{ "reject", F_REJECT },     { "rejectattr", F_REJECTATTR },
	{ "replace", F_REPLACE },   { "reverse", F_REVERSE },
	{ "round", F_ROUND },       { "safe", F_SAFE },
	{ "select", F_SELECT },     { "selectattr", F_SELECTATTR },
	{ "sort", F_SORT },         { "string", F_STRING },
	{ "sum", F_SUM },           { "title", F_TITLE },
	{ "tojson", F_TOJSON },     { "trim", F_TRIM },
	{ "truncate", F_TRUNCATE }, { "unique", F_UNIQUE },
	{ "upper", F_UPPER },       { "wordcount", F_WORDCOUNT },
};

int jinja_filter_id(const char *name)
{
	for (size_t i = 0; i < sizeof(filters) / sizeof(filters[0]); i++)
		if (!strcmp(name, filters[i].name))
			return filters[i].id;
	return -1;
}

enum test_id {
	T_BOOLEAN,
	T_CALLABLE,
	T_DEFINED,
	T_DIVISIBLEBY,
	T_EQ,
	T_ESCAPED,
	T_EVEN,
	T_FALSE,
	T_FILTER,
	T_FLOAT,
	T_GE,
	T_GT,
	T_IN,
	T_INTEGER,
	T_ITERABLE,
	T_LE,
	T_LOWER,
	T_LT,
	T_MAPPING,
	T_NE,
	T_NONE,
	T_NUMBER,
	T_ODD,
	T_SAMEAS,
	T_SEQUENCE,
	T_STRING,
	T_TEST,
	T_TRUE,
	T_UNDEFINED,
	T_UPPER,
};

static const struct {
	const char *name;
	int id;
} tests[] = {
	{ "boolean", T_BOOLEAN },
	{ "callable", T_CALLABLE },
	{ "defined", T_DEFINED },
	{ "divisibleby", T_DIVISIBLEBY },
	{ "==", T_EQ },
	{ "eq", T_EQ },
	{ "equalto", T_EQ },
	{ "escaped", T_ESCAPED },
	{ "even", T_EVEN },
	{ "false", T_FALSE },
	{ "filter", T_FILTER },
	{ "float", T_FLOAT },
	{ ">=", T_GE },
	{ "ge", T_GE },
	{ ">", T_GT },
	{ "gt", T_GT },
	{ "greaterthan", T_GT },
	{ "in", T_IN },
	{ "integer", T_INTEGER },
	{ "iterable", T_ITERABLE },
	{ "<=", T_LE },
	{ "le", T_LE },
	{ "lower", T_LOWER },
	{ "<", T_LT },
	{ "lt", T_LT },
	{ "lessthan", T_LT },
	{ "mapping", T_MAPPING },
	{ "!=", T_NE },
	{ "ne", T_NE },
	{ "none", T_NONE },
	{ "number", T_NUMBER },
	{ "odd", T_ODD },
	{ "sameas", T_SAMEAS },
	{ "sequence", T_SEQUENCE },
	{ "string", T_STRING },
	{ "test", T_TEST },
	{ "true", T_TRUE },
	{ "undefined", T_UNDEFINED },
	{ "upper", T_UPPER },
};

int jinja_test_id(const char *name)
{
	for (size_t i = 0; i < sizeof(tests) / sizeof(tests[0]); i++)
		if (!strcmp(name, tests[i].name))
			return tests[i].id;
	return -1;
}

static struct jval *call_filter(struct render *r, int id, const char *name, struct jval *v,
				const struct args *a, int line);
static int call_test(struct render *r, int id, const char *name, struct jval *v,
		     const struct args *a, int line);

/* Jinja2's attribute getter: "a.b.0" looks up a, then b, then item 0. */
static struct jval *attr_path(struct render *r, struct jval *item, const struct jval *path,
			      int line)
{
	if (path->type == JT_INT)
		return getitem(r, item, (struct jval *)path, line);
	const char *s = path->u.str.s;
	size_t n = path->u.str.len, start = 0;
	for (size_t i = 0; i <= n; i++) {
		if (i < n && s[i] != '.')
			continue;
		struct jval *part;
		int digits = i > start;
		for (size_t k = start; k < i; k++)
			digits &= s[k] >= '0' && s[k] <= '9';
		if (digits && i - start < 18)
			part = mkint(r, strtoll(s + start, NULL, 10), line);
		else
			part = mkstr(r, s + start, i - start, 0, line);
		item = getitem(r, item, part, line);
		start = i + 1;
	}
	return item;
}

static struct jval *lower_if_str(struct render *r, struct jval *v, int line)
{
	return v->type == JT_STR ? change_case(r, v, CASE_LOWER, line) : v;
}

/* A stable merge sort by key (Python's sorted is stable). */
struct sort_item {
	struct jval *key, *val;
};

static void merge_sort(struct render *r, struct sort_item *v, struct sort_item *tmp, size_t n,
		       int reverse, int line)
{
	if (n < 2)
		return;
	size_t h = n / 2;
	merge_sort(r, v, tmp, h, reverse, line);
	merge_sort(r, v + h, tmp, n - h, reverse, line);
	size_t i = 0, j = h, k = 0;
	tick(r, n / 8, line);
	while (i < h && j < n) {
		int c;
		if (jv_cmp(v[j].key, v[i].key, &c) < 0)
			rfail(r, line, "'<' not supported between instances of '%s' and '%s'",
			      jv_type_name(v[j].key), jv_type_name(v[i].key));
		/* take from the right only when strictly before (stability) */
		int right_first = reverse ? c > 0 && c != 2 : c < 0;
		tmp[k++] = right_first ? v[j++] : v[i++];
	}
	while (i < h)
		tmp[k++] = v[i++];
	while (j < n)
		tmp[k++] = v[j++];
	memcpy(v, tmp, n * sizeof(*v));
}

static struct jval *sorted(struct render *r, struct jval *items, struct jval *keys_of, int reverse,
			   int line)
{
	size_t n = items->u.list.n;
	struct sort_item *v = ralloc(r, (n + 1) * sizeof(*v), line);
	struct sort_item *tmp = ralloc(r, (n + 1) * sizeof(*tmp), line);
	for (size_t i = 0; i < n; i++) {
		v[i].val = items->u.list.v[i];
		v[i].key = keys_of->u.list.v[i];
	}
	merge_sort(r, v, tmp, n, reverse, line);
	struct jval *l = mklist(r, n, line);
	for (size_t i = 0; i < n; i++)
		l->u.list.v[i] = v[i].val;
	return l;
}

/* Sort keys for sort/dictsort/min/max: the attribute(s), lowercased unless case-sensitive. */
static struct jval *sort_key(struct render *r, struct jval *item, const struct jval *attribute,
			     int case_sensitive, int line)
{
	if (attribute && attribute->type == JT_STR &&
	    memchr(attribute->u.str.s, ',', attribute->u.str.len)) {
		struct jval *parts =
			split(r, (struct jval *)attribute,
			      &(struct jval){ .type = JT_STR, .u.str = { 1, ",", NULL, 0 } }, -1, 0,
			      line);
		struct jval *k = mklist(r, parts->u.list.n, line);
		for (size_t i = 0; i < parts->u.list.n; i++) {
			struct jval *x = attr_path(r, item, parts->u.list.v[i], line);
			k->u.list.v[i] = case_sensitive ? x : lower_if_str(r, x, line);
		}
		return k;
	}
	struct jval *x = attribute && attribute->type != JT_NONE
				 ? attr_path(r, item, attribute, line)
				 : item;
	return case_sensitive ? x : lower_if_str(r, x, line);
}

static size_t length_of(struct render *r, struct jval *v, int line)
{
	switch (v->type) {
	case JT_UNDEF: return 0;
	case JT_STR: return ju_count(v->u.str.s, v->u.str.len);
	case JT_LIST:
		if (v->flags & JF_ITER)
			break;
		return v->u.list.n;
	case JT_DICT: return v->u.dict->n;
	default: break;
	}
	rfail(r, line, "object of type '%s' has no len()", jv_type_name(v));
}

/* A value's items as a list for filters that take any iterable. */
static struct jval *as_list(struct render *r, struct jval *v, int line)
{
	struct jval *l = iter_items(r, v, line);
	if (l->flags) {
		struct jval *c = mklist(r, l->u.list.n, line);
		if (l->u.list.n)
			memcpy(c->u.list.v, l->u.list.v, l->u.list.n * sizeof(void *));
		return c;
	}
	return l;
}

static struct jval *tojson(struct render *r, struct jval *v, const struct args *a, int line)
{
	struct jval *o[5];
	BIND(r, a, o, "tojson()", line, "ensure_ascii", "indent", "separators", "sort_keys",
	     "default");
	struct json_opts jo = { NULL, 0, ", ", ": ", opt_bool(o[3], 0) };
	char ind[64];
	if (o[1] && o[1]->type != JT_NONE) {
		if (o[1]->type == JT_STR) {
			jo.indent = o[1]->u.str.s;
			jo.indent_len = o[1]->u.str.len;
		} else {
			int64_t k = want_int(r, o[1], "indent", line);
			if (k < 0)
				k = 0;
			if (k > 60)
				rfail(r, line, "tojson indent %lld is too large", (long long)k);
			memset(ind, ' ', (size_t)k);
			jo.indent = ind;
			jo.indent_len = (size_t)k;
		}
		jo.item_sep = ",";
	}
	if (o[2] && o[2]->type != JT_NONE) {
		if (o[2]->type != JT_LIST || o[2]->u.list.n != 2 ||
		    o[2]->u.list.v[0]->type != JT_STR || o[2]->u.list.v[1]->type != JT_STR)
			rfail(r, line, "tojson separators must be a pair of strings");
		jo.item_sep = o[2]->u.list.v[0]->u.str.s;
		jo.key_sep = o[2]->u.list.v[1]->u.str.s;
	}
	if (o[4])
		rfail(r, line, "tojson's default argument is not supported");
	struct jsb b;
	sb_init(r, &b);
	const struct jval *bad = NULL;
	if (jv_json_into(&b, v, &jo, 0, &bad) < 0) {
		if (bad->type == JT_UNDEF)
			fail_undef(r, bad, line);
		rfail(r, line, "object of type '%s' is not JSON serializable", jv_type_name(bad));
	}
	struct jval *s = sb_finish(r, &b, line);
	if (o[0] && jv_truthy(o[0])) {
		/* ensure_ascii: non-ASCII as \uXXXX (surrogate pairs above the BMP) */
		struct jsb e;
		sb_init(r, &e);
		for (size_t i = 0; i < s->u.str.len;) {
			size_t at = i;
			uint32_t cp = ju_next(s->u.str.s, s->u.str.len, &i);
			char buf[16];
			if (cp < 0x80) {
				jsb_add_str(&e, s, at, i - at);
				continue;
			}
			if (cp >= 0x10000) {
				uint32_t c = cp - 0x10000;
				snprintf(buf, sizeof(buf), "\\u%04x\\u%04x",
					 (unsigned)(0xD800 + (c >> 10)),
					 (unsigned)(0xDC00 + (c & 0x3FF)));
			} else {
				snprintf(buf, sizeof(buf), "\\u%04x", (unsigned)cp);
			}
			jsb_add(&e, buf, strlen(buf), jstr_tm(s, at));
		}
		s = sb_finish(r, &e, line);
	}
	return s;
}

static struct jval *indent(struct render *r, struct jval *v, const struct args *a, int line)
{
	struct jval *o[3];
	BIND(r, a, o, "indent()", line, "width", "first", "blank");
	struct jval *s = to_str(r, v, line);
	struct jval *ind;
	if (o[0] && o[0]->type == JT_STR) {
		ind = o[0];
	} else {
		int64_t w = o[0] ? want_int(r, o[0], "indent width", line) : 4;
		if (w < 0)
			w = 0;
		if ((uint64_t)w > r->lim.max_output)
			rfail(r, line, "indent width %lld is too large", (long long)w);
		char *sp = ralloc(r, (size_t)w + 1, line);
		memset(sp, ' ', (size_t)w);
		ind = mkstr(r, sp, (size_t)w, 0, line);
	}
	int first = opt_bool(o[1], 0), blank = opt_bool(o[2], 0);
	/* s + "\n", split into lines (splitlines), joined with "\n" + indent
	 * before each line after the first (blank lines too only with blank) */
	struct jsb t;
	sb_init(r, &t);
	jsb_add_val(&t, s);
	jsb_add(&t, "\n", 1, 0);
	struct jval *lines = splitlines(r, sb_finish(r, &t, line), 0, line);
	struct jsb b;
	sb_init(r, &b);
	if (first)
		jsb_add_val(&b, ind);
	for (size_t i = 0; i < lines->u.list.n; i++) {
		struct jval *ln = lines->u.list.v[i];
		if (i) {
			jsb_add(&b, "\n", 1, 0);
			if (blank || ln->u.str.len)
				jsb_add_val(&b, ind);
		}
		jsb_add_val(&b, ln);
	}
	struct jval *res = sb_finish(r, &b, line);
	res->flags |= s->flags & JF_SAFE;
	return res;
}

static struct jval *int_filter(struct render *r, struct jval *v, const struct args *a, int line)
{
	struct jval *o[2];
	BIND(r, a, o, "int()", line, "default", "base");
	struct jval *def = o[0] ? o[0] : mkint(r, 0, line);
	int64_t base = o[1] ? want_int(r, o[1], "base", line) : 10;
	switch (v->type) {
	case JT_INT: return v;
	case JT_BOOL: return mkint(r, v->u.b, line);
	case JT_FLOAT:
		if (v->u.f != v->u.f || isinf(v->u.f) || fabs(v->u.f) >= 9.2e18)
			return def;
		return mkint(r, (int64_t)v->u.f, line);
	case JT_UNDEF: fail_undef(r, v, line);
	case JT_STR: {
		/* int(s, base), else int(float(s)) */
		const char *s = v->u.str.s;
		size_t n = v->u.str.len, i = 0;
		while (i < n && ju_isspace((unsigned char)s[i]))
			i++;
		while (n > i && ju_isspace((unsigned char)s[n - 1]))
			n--;
		char buf[80];
		size_t m = 0;
		int ok = n > i && n - i < sizeof(buf) - 1;
		for (size_t k = i; ok && k < n; k++) {
			if (s[k] == '_') {
				ok = k > i && k + 1 < n && s[k - 1] != '_' && s[k + 1] != '_';
				continue;
			}
			buf[m++] = s[k];
		}
		buf[m] = 0;
		if (ok && m) {
			char *end;
			const char *digits = buf;
			int b = (int)base;
			int sign = 0;
			if (*digits == '+' || *digits == '-')
				sign = *digits++ == '-';
			if ((b == 16 || b == 0) && digits[0] == '0' && (digits[1] | 0x20) == 'x')
				digits += 2, b = 16;
			else if ((b == 8 || b == 0) && digits[0] == '0' &&
				 (digits[1] | 0x20) == 'o')
				digits += 2, b = 8;
			else if ((b == 2 || b == 0) && digits[0] == '0' &&
				 (digits[1] | 0x20) == 'b')
				digits += 2, b = 2;
			if (b == 0)
				b = 10;
			if (b >= 2 && b <= 36 && *digits && *digits != '+' && *digits != '-') {
				errno = 0;
				long long x = strtoll(digits, &end, b);
				if (!*end && !errno)
					return mkint(r, sign ? -x : x, line);
			}
			double f = strtod(buf, &end);
			if (!*end && f == f && !isinf(f) && fabs(f) < 9.2e18)
				return mkint(r, (int64_t)f, line);
		}
		return def;
	}
	default: return def;
	}
}

static struct jval *float_filter(struct render *r, struct jval *v, const struct args *a, int line)
{
	struct jval *o[1];
	BIND(r, a, o, "float()", line, "default");
	struct jval *def = o[0] ? o[0] : mkfloat(r, 0.0, line);
	switch (v->type) {
	case JT_FLOAT: return v;
	case JT_INT:
	case JT_BOOL: return mkfloat(r, as_f(v), line);
	case JT_UNDEF: fail_undef(r, v, line);
	case JT_STR: {
		const char *s = v->u.str.s;
		size_t n = v->u.str.len, i = 0;
		while (i < n && ju_isspace((unsigned char)s[i]))
			i++;
		while (n > i && ju_isspace((unsigned char)s[n - 1]))
			n--;
		char buf[80];
		size_t m = 0;
		if (n - i == 0 || n - i >= sizeof(buf))
			return def;
		for (size_t k = i; k < n; k++)
			if (s[k] != '_')
				buf[m++] = s[k];
		buf[m] = 0;
		/* Python accepts decimal forms, inf, infinity and nan; not hex */
		const char *d = buf + (buf[0] == '+' || buf[0] == '-');
		if ((d[0] == '0' && (d[1] | 0x20) == 'x'))
			return def;
		char *end;
		double f = strtod(buf, &end);
		if (*end)
			return def;
		return mkfloat(r, f, line);
	}
	default: return def;
	}
}

static struct jval *round_filter(struct render *r, struct jval *v, const struct args *a, int line)
{
	struct jval *o[2];
	BIND(r, a, o, "round()", line, "precision", "method");
	int64_t prec = o[0] ? want_int(r, o[0], "precision", line) : 0;
	const char *method = o[1] ? want_str(r, o[1], "method", line)->u.str.s : "common";
	if (strcmp(method, "common") && strcmp(method, "ceil") && strcmp(method, "floor"))
		rfail(r, line, "method must be common, ceil or floor");
	if (v->type == JT_UNDEF)
		fail_undef(r, v, line);
	if (!is_num(v))
		rfail(r, line, "type %s doesn't define __round__ method", jv_type_name(v));
	if (prec > 300)
		prec = 300;
	if (prec < -300)
		prec = -300;
	if (!strcmp(method, "common")) {
		if (v->type != JT_FLOAT) {
			if (prec >= 0)
				return mkint(r, as_i(v), line);
			int64_t p = 1, x = as_i(v);
			for (int64_t k = 0; k < -prec && p < INT64_MAX / 10; k++)
				p *= 10;
			int64_t q = floordiv_i(x, p), rem = x - q * p;
			if (2 * rem > p || (2 * rem == p && (q & 1)))
				q++;
			return mkint(r, q * p, line);
		}
		double f = v->u.f;
		if (f != f || isinf(f))
			return v;
		if (prec >= 0) {
			char buf[400];
			snprintf(buf, sizeof(buf), "%.*f", (int)prec, f);
			return mkfloat(r, strtod(buf, NULL), line);
		}
		double p = pow(10.0, (double)-prec);
		return mkfloat(r, nearbyint(f / p) * p, line);
	}
	double p = pow(10.0, (double)prec), f = as_f(v);
	double res = (method[0] == 'c' ? ceil(f * p) : floor(f * p)) / p;
	return mkfloat(r, res, line);
}

static struct jval *join(struct render *r, struct jval *v, const struct args *a, int line)
{
	struct jval *o[2];
	BIND(r, a, o, "join()", line, "d", "attribute");
	struct jval *items = iter_items(r, v, line);
	struct jval *sep = o[0] ? to_str(r, o[0], line) : &jv_empty_c;
	struct jsb b;
	sb_init(r, &b);
	for (size_t i = 0; i < items->u.list.n; i++) {
		struct jval *x = items->u.list.v[i];
		if (o[1] && o[1]->type != JT_NONE)
			x = attr_path(r, x, o[1], line);
		if (i)
			jsb_add_val(&b, sep);
		jv_str_into(&b, x);
	}
	return sb_finish(r, &b, line);
}

/* select / reject / selectattr / rejectattr. */
static struct jval *select_items(struct render *r, struct jval *v, const struct args *a, int want,
				 int by_attr, int line)
{
	struct lb out = { 0 };
	if (!jv_truthy(v))
		return lb_finish(r, &out, JF_ITER, line);
	struct jval *items = iter_items(r, v, line);
	size_t off = 0;
	const struct jval *attr = NULL;
	if (by_attr) {
		if (a->n < 1)
			rfail(r, line, "missing parameter for attribute name");
		attr = a->pos[0];
		off = 1;
	}
	int tid = -1;
	const char *tname = NULL;
	if (a->n > off) {
		const struct jval *tn = want_str(r, a->pos[off], "a test name", line);
		tname = tn->u.str.s;
		tid = jinja_test_id(tname);
		if (tid < 0)
			rfail(r, line, "no test named '%s'", tname);
		off++;
	}
	struct args ta = { a->pos ? a->pos + off : NULL, a->n - off, a->kwn, a->kwv, a->n_kw };
	for (size_t i = 0; i < items->u.list.n; i++) {
		struct jval *x = items->u.list.v[i];
		struct jval *t = by_attr ? attr_path(r, x, attr, line) : x;
		int ok = tname ? call_test(r, tid, tname, t, &ta, line) : jv_truthy(t);
		if (ok == want)
			lb_push(r, &out, x, line);
	}
	return lb_finish(r, &out, JF_ITER, line);
}

static struct jval *map_items(struct render *r, struct jval *v, const struct args *a, int line)
{
	struct lb out = { 0 };
	if (!jv_truthy(v))
		return lb_finish(r, &out, JF_ITER, line);
	struct jval *items = iter_items(r, v, line);
	if (!a->n) {
		struct jval *attribute = NULL, *def = NULL;
		for (size_t k = 0; k < a->n_kw; k++) {
			if (!strcmp(a->kwn[k], "attribute"))
				attribute = a->kwv[k];
			else if (!strcmp(a->kwn[k], "default"))
				def = a->kwv[k];
			else
				rfail(r, line, "unexpected keyword argument '%s'", a->kwn[k]);
		}
		if (!attribute)
			rfail(r, line, "map requires a filter argument");
		for (size_t i = 0; i < items->u.list.n; i++) {
			struct jval *x = attr_path(r, items->u.list.v[i], attribute, line);
			if (def && def->type != JT_NONE && x->type == JT_UNDEF)
				x = def;
			lb_push(r, &out, x, line);
		}
		return lb_finish(r, &out, JF_ITER, line);
	}
	const struct jval *fn = want_str(r, a->pos[0], "a filter name", line);
	int fid = jinja_filter_id(fn->u.str.s);
	if (fid < 0)
		rfail(r, line, "no filter named '%s'", fn->u.str.s);
	struct args fa = { a->pos + 1, a->n - 1, a->kwn, a->kwv, a->n_kw };
	for (size_t i = 0; i < items->u.list.n; i++)
		lb_push(r, &out, call_filter(r, fid, fn->u.str.s, items->u.list.v[i], &fa, line),
			line);
	return lb_finish(r, &out, JF_ITER, line);
}

static struct jval *call_filter(struct render *r, int id, const char *name, struct jval *v,
				const struct args *a, int line)
{
	struct jval *o[4];
	tick(r, 1, line);
	switch (id) {
	case F_ABS:
		no_args(r, a, "abs()", line);
		if (v->type == JT_UNDEF)
			fail_undef(r, v, line);
		if (v->type == JT_FLOAT)
			return mkfloat(r, fabs(v->u.f), line);
		if (v->type == JT_INT || v->type == JT_BOOL) {
			if (as_i(v) == INT64_MIN)
				rfail(r, line, "integer overflow");
			return mkint(r, as_i(v) < 0 ? -as_i(v) : as_i(v), line);
		}
		rfail(r, line, "bad operand type for abs(): '%s'", jv_type_name(v));
	case F_ATTR: {
		BIND(r, a, o, "attr()", line, "name");
		if (!o[0])
			rfail(r, line, "attr() needs a name");
		const struct jval *n = want_str(r, o[0], "an attribute name", line);
		if (v->type == JT_UNDEF)
			fail_undef(r, v, line);
		int unsafe;
		struct jval *x = py_attr(r, v, n->u.str.s, &unsafe);
		return x ? x : undef(r, n->u.str.s, owner_name(v));
	}
	case F_BATCH: {
		BIND(r, a, o, "batch()", line, "linecount", "fill_with");
		if (!o[0])
			rfail(r, line, "batch() needs a line count");
		int64_t k = want_int(r, o[0], "linecount", line);
		if (k <= 0)
			rfail(r, line, "batch() needs a positive line count");
		struct jval *items = iter_items(r, v, line);
		struct lb out = { 0 };
		for (size_t i = 0; i < items->u.list.n; i += (size_t)k) {
			size_t m =
				items->u.list.n - i < (size_t)k ? items->u.list.n - i : (size_t)k;
			size_t len = o[1] && o[1]->type != JT_NONE ? (size_t)k : m;
			struct jval *row = mklist(r, len, line);
			for (size_t j = 0; j < len; j++)
				row->u.list.v[j] = j < m ? items->u.list.v[i + j] : o[1];
			lb_push(r, &out, row, line);
		}
		return lb_finish(r, &out, JF_ITER, line);
	}
	case F_CAPITALIZE:
		no_args(r, a, "capitalize()", line);
		return change_case(r, to_str(r, v, line), CASE_CAPITALIZE, line);
	case F_CENTER:
		BIND(r, a, o, "center()", line, "width");
		return pad(r, to_str(r, v, line), o[0] ? want_int(r, o[0], "width", line) : 80,
			   NULL, 'c', line);
	case F_COUNT:
	case F_LENGTH:
		no_args(r, a, "length()", line);
		return mkint(r, (int64_t)length_of(r, v, line), line);
	case F_DEFAULT:
		BIND(r, a, o, "default()", line, "default_value", "boolean");
		if (v->type == JT_UNDEF || (opt_bool(o[1], 0) && !jv_truthy(v)))
			return o[0] ? o[0] : &jv_empty_c;
		return v;
	case F_DICTSORT: {
		BIND(r, a, o, "dictsort()", line, "case_sensitive", "by", "reverse");
		if (v->type == JT_UNDEF)
			fail_undef(r, v, line);
		if (v->type != JT_DICT)
			rfail(r, line, "dictsort needs a mapping, not '%s'", jv_type_name(v));
		int pos = 0;
		if (o[1]) {
			const char *by = want_str(r, o[1], "by", line)->u.str.s;
			if (!strcmp(by, "value"))
				pos = 1;
			else if (strcmp(by, "key"))
				rfail(r, line, "you can only sort by either \"key\" or \"value\"");
		}
		size_t n = v->u.dict->n;
		struct jval *pairs = mklist(r, n, line), *keys = mklist(r, n, line);
		for (size_t i = 0; i < n; i++) {
			struct jval *p = mklist(r, 2, line);
			p->flags = JF_TUPLE;
			p->u.list.v[0] = v->u.dict->k[i];
			p->u.list.v[1] = v->u.dict->v[i];
			pairs->u.list.v[i] = p;
			struct jval *k = pos ? v->u.dict->v[i] : v->u.dict->k[i];
			keys->u.list.v[i] = opt_bool(o[0], 0) ? k : lower_if_str(r, k, line);
		}
		return sorted(r, pairs, keys, opt_bool(o[2], 0), line);
	}
	case F_ESCAPE: no_args(r, a, "escape()", line); return escape_val(r, v, 0, line);
	case F_FORCEESCAPE: no_args(r, a, "forceescape()", line); return escape_val(r, v, 1, line);
	case F_FIRST: {
		no_args(r, a, "first()", line);
		struct jval *items = iter_items(r, v, line);
		return items->u.list.n ? items->u.list.v[0]
				       : undef(r, "no first item, sequence was empty", NULL);
	}
	case F_LAST: {
		no_args(r, a, "last()", line);
		if (v->type == JT_LIST && (v->flags & JF_ITER))
			rfail(r, line, "'generator' object is not reversible");
		struct jval *items = iter_items(r, v, line);
		return items->u.list.n ? items->u.list.v[items->u.list.n - 1]
				       : undef(r, "no last item, sequence was empty", NULL);
	}
	case F_FLOAT: return float_filter(r, v, a, line);
	case F_INT: return int_filter(r, v, a, line);
	case F_FORMAT: {
		struct jval *fmt = to_str(r, v, line);
		if (a->n && a->n_kw)
			rfail(r, line,
			      "can't handle positional and keyword arguments at the same time");
		if (a->n_kw) {
			struct jval *d = chk(r, jv_new(&r->a, JT_DICT), line);
			d->u.dict = jdict_new(&r->a);
			for (size_t k = 0; k < a->n_kw; k++)
				if (!d->u.dict ||
				    jdict_set(&r->a, d->u.dict,
					      mkstr(r, a->kwn[k], strlen(a->kwn[k]), 0, line),
					      a->kwv[k]) < 0)
					fail_memory(r, line);
			return format_percent(r, fmt, d, line);
		}
		struct jval *t = mklist(r, a->n, line);
		t->flags = JF_TUPLE;
		for (size_t i = 0; i < a->n; i++)
			t->u.list.v[i] = a->pos[i];
		return format_percent(r, fmt, t, line);
	}
	case F_INDENT: return indent(r, v, a, line);
	case F_ITEMS: {
		no_args(r, a, "items()", line);
		if (v->type == JT_UNDEF)
			return lb_finish(r, &(struct lb){ 0 }, JF_ITER, line);
		if (v->type != JT_DICT)
			rfail(r, line, "can only get item pairs from a mapping");
		size_t n = v->u.dict->n;
		struct jval *l = mklist(r, n, line);
		for (size_t i = 0; i < n; i++) {
			struct jval *p = mklist(r, 2, line);
			p->flags = JF_TUPLE;
			p->u.list.v[0] = v->u.dict->k[i];
			p->u.list.v[1] = v->u.dict->v[i];
			l->u.list.v[i] = p;
		}
		l->flags = JF_ITER;
		return l;
	}
	case F_JOIN: return join(r, v, a, line);
	case F_LIST: no_args(r, a, "list()", line); return as_list(r, v, line);
	case F_LOWER:
		no_args(r, a, "lower()", line);
		return change_case(r, to_str(r, v, line), CASE_LOWER, line);
	case F_UPPER:
		no_args(r, a, "upper()", line);
		return change_case(r, to_str(r, v, line), CASE_UPPER, line);
	case F_MAP: return map_items(r, v, a, line);
	case F_MAX:
	case F_MIN: {
		BIND(r, a, o, id == F_MAX ? "max()" : "min()", line, "case_sensitive", "attribute");
		struct jval *items = iter_items(r, v, line);
		if (!items->u.list.n)
			return undef(r, "no aggregated item, sequence was empty", NULL);
		struct jval *best = items->u.list.v[0];
		struct jval *bk = sort_key(r, best, o[1], opt_bool(o[0], 0), line);
		for (size_t i = 1; i < items->u.list.n; i++) {
			struct jval *x = items->u.list.v[i];
			struct jval *k = sort_key(r, x, o[1], opt_bool(o[0], 0), line);
			int c;
			if (jv_cmp(k, bk, &c) < 0)
				rfail(r, line,
				      "'<' not supported between instances of '%s' and '%s'",
				      jv_type_name(k), jv_type_name(bk));
			if (c != 2 && (id == F_MAX ? c > 0 : c < 0)) {
				best = x;
				bk = k;
			}
		}
		return best;
	}
	case F_REJECT: return select_items(r, v, a, 0, 0, line);
	case F_REJECTATTR: return select_items(r, v, a, 0, 1, line);
	case F_SELECT: return select_items(r, v, a, 1, 0, line);
	case F_SELECTATTR: return select_items(r, v, a, 1, 1, line);
	case F_REPLACE: {
		BIND(r, a, o, "replace()", line, "old", "new", "count");
		if (!o[0] || !o[1])
			rfail(r, line, "replace() needs old and new");
		struct jval *s = to_str(r, v, line);
		return replace_str(r, s, to_str(r, o[0], line), to_str(r, o[1], line),
				   o[2] && o[2]->type != JT_NONE ? want_int(r, o[2], "count", line)
								 : -1,
				   line);
	}
	case F_REVERSE: {
		no_args(r, a, "reverse()", line);
		if (v->type == JT_STR) {
			struct jval *m1 = mkint(r, -1, line);
			return slice(r, v, NULL, NULL, m1, line);
		}
		struct jval *items = iter_items(r, v, line);
		size_t n = items->u.list.n;
		struct jval *l = mklist(r, n, line);
		for (size_t i = 0; i < n; i++)
			l->u.list.v[i] = items->u.list.v[n - 1 - i];
		l->flags = JF_ITER;
		return l;
	}
	case F_ROUND: return round_filter(r, v, a, line);
	case F_SAFE: {
		no_args(r, a, "safe()", line);
		struct jval *s = to_str(r, v, line);
		if (s->flags & JF_SAFE)
			return s;
		struct jval *c = chk(r, jv_new(&r->a, JT_STR), line);
		*c = *s;
		c->flags |= JF_SAFE;
		return c;
	}
	case F_SORT: {
		BIND(r, a, o, "sort()", line, "reverse", "case_sensitive", "attribute");
		struct jval *items = iter_items(r, v, line);
		struct jval *keys = mklist(r, items->u.list.n, line);
		for (size_t i = 0; i < items->u.list.n; i++)
			keys->u.list.v[i] =
				sort_key(r, items->u.list.v[i], o[2], opt_bool(o[1], 0), line);
		return sorted(r, items, keys, opt_bool(o[0], 0), line);
	}
	case F_STRING: no_args(r, a, "string()", line); return to_str(r, v, line);
	case F_SUM: {
		BIND(r, a, o, "sum()", line, "attribute", "start");
		struct jval *items = iter_items(r, v, line);
		struct jval *acc = o[1] ? o[1] : mkint(r, 0, line);
		for (size_t i = 0; i < items->u.list.n; i++) {
			struct jval *x = items->u.list.v[i];
			if (o[0] && o[0]->type != JT_NONE)
				x = attr_path(r, x, o[0], line);
			if (acc->type == JT_STR)
				rfail(r, line, "sum() can't sum strings");
			acc = arith(r, OP_ADD, acc, x, line);
		}
		return acc;
	}
	case F_TITLE: {
		no_args(r, a, "title()", line);
		/* Jinja2: split at runs of [-\s({[<], each piece's first
		 * character upper, the rest lower */
		struct jval *s = to_str(r, v, line);
		const char *p = s->u.str.s;
		size_t n = s->u.str.len;
		struct jsb b;
		sb_init(r, &b);
		int at_start = 1;
		size_t tail = 0, tail_end = 0; /* the lowered rest of the current word */
		for (size_t i = 0; i < n;) {
			size_t at = i;
			uint32_t cp = ju_next(p, n, &i), out[3];
			int sep = title_sep(cp);
			int k;
			if (sep) {
				jsb_add_str(&b, s, at, i - at);
				at_start = 1;
				continue;
			}
			if (at_start) {
				tail = tail_end = i;
				while (tail_end < n) {
					size_t j = tail_end;
					if (title_sep(ju_next(p, n, &j)))
						break;
					tail_end = j;
				}
			}
			if (at_start) {
				k = ju_upper(cp, out);
			} else if (cp == 0x3A3 &&
				   final_sigma(p + tail, tail_end - tail, at - tail, i - tail)) {
				out[0] = 0x3C2;
				k = 1;
			} else {
				k = ju_lower(cp, out);
			}
			at_start = 0;
			char buf[16];
			size_t m = 0;
			for (int j = 0; j < k; j++)
				m += ju_put(buf + m, out[j]);
			jsb_add(&b, buf, m, jstr_tm(s, at));
		}
		return sb_finish(r, &b, line);
	}
	case F_TOJSON: return tojson(r, v, a, line);
	case F_TRIM: {
		BIND(r, a, o, "trim()", line, "chars");
		struct jval *s = to_str(r, v, line);
		const struct jval *chars =
			o[0] && o[0]->type != JT_NONE ? want_str(r, o[0], "chars", line) : NULL;
		return strip(r, s, chars, 1, 1, line);
	}
	case F_TRUNCATE: {
		BIND(r, a, o, "truncate()", line, "length", "killwords", "end", "leeway");
		struct jval *s = to_str(r, v, line);
		int64_t length = o[0] ? want_int(r, o[0], "length", line) : 255;
		int killwords = opt_bool(o[1], 0);
		struct jval *end = o[2] ? to_str(r, o[2], line) : mkstr(r, "...", 3, 0, line);
		int64_t leeway =
			o[3] && o[3]->type != JT_NONE ? want_int(r, o[3], "leeway", line) : 5;
		int64_t endlen = (int64_t)ju_count(end->u.str.s, end->u.str.len);
		if (length < endlen)
			rfail(r, line, "expected length >= %lld, got %lld", (long long)endlen,
			      (long long)length);
		if (leeway < 0)
			rfail(r, line, "expected leeway >= 0, got %lld", (long long)leeway);
		int64_t n = (int64_t)ju_count(s->u.str.s, s->u.str.len);
		if (n <= length + leeway)
			return s;
		size_t cut = ju_offset(s->u.str.s, s->u.str.len, (size_t)(length - endlen));
		struct jsb b;
		sb_init(r, &b);
		if (killwords) {
			jsb_add_str(&b, s, 0, cut);
		} else {
			/* s[:length - len(end)].rsplit(" ", 1)[0] */
			int64_t sp = find_bytes(s->u.str.s, 0, cut, " ", 1, 1);
			jsb_add_str(&b, s, 0, sp < 0 ? cut : (size_t)sp);
		}
		jsb_add_val(&b, end);
		return sb_finish(r, &b, line);
	}
	case F_UNIQUE: {
		BIND(r, a, o, "unique()", line, "case_sensitive", "attribute");
		struct jval *items = iter_items(r, v, line);
		struct lb out = { 0 }, seen = { 0 };
		for (size_t i = 0; i < items->u.list.n; i++) {
			struct jval *x = items->u.list.v[i];
			struct jval *k = x;
			if (o[1] && o[1]->type != JT_NONE)
				k = attr_path(r, x, o[1], line);
			if (!opt_bool(o[0], 0))
				k = lower_if_str(r, k, line);
			if (!jv_hashable(k))
				rfail(r, line, "unhashable type: '%s'", jv_type_name(k));
			int dup = 0;
			tick(r, seen.n / 8, line);
			for (size_t j = 0; j < seen.n && !dup; j++)
				dup = jv_eq(seen.v[j], k);
			if (dup)
				continue;
			lb_push(r, &seen, k, line);
			lb_push(r, &out, x, line);
		}
		return lb_finish(r, &out, JF_ITER, line);
	}
	case F_WORDCOUNT: {
		no_args(r, a, "wordcount()", line);
		struct jval *s = to_str(r, v, line);
		int64_t words = 0;
		int in_word = 0;
		for (size_t i = 0; i < s->u.str.len;) {
			uint32_t cp = ju_next(s->u.str.s, s->u.str.len, &i);
			int w = cp == '_' || ju_isalpha(cp) || ju_isdigit(cp);
			if (w && !in_word)
				words++;
			in_word = w;
		}
		return mkint(r, words, line);
	}
	default: break;
	}
	rfail(r, line, "no filter named '%s'", name);
}

/* ---- tests ------------------------------------------------------------------------------------ */

static int cased_test(const struct jval *s, int want_upper)
{
	int any = 0;
	for (size_t i = 0; i < s->u.str.len;) {
		uint32_t cp = ju_next(s->u.str.s, s->u.str.len, &i), m[3];
		if (!ju_iscased(cp))
			continue;
		int k = want_upper ? ju_lower(cp, m) : ju_upper(cp, m);
		/* an upper-case letter changes when lowered, and vice versa */
		int is_other = k != 1 || m[0] != cp;
		uint32_t m2[3];
		int k2 = want_upper ? ju_upper(cp, m2) : ju_lower(cp, m2);
		int is_same = k2 == 1 && m2[0] == cp;
		if (!is_other || !is_same)
			return 0;
		any = 1;
	}
	return any;
}

static int call_test(struct render *r, int id, const char *name, struct jval *v,
		     const struct args *a, int line)
{
	struct jval *o[1];
	tick(r, 1, line);
	switch (id) {
	case T_DEFINED: no_args(r, a, "defined", line); return v->type != JT_UNDEF;
	case T_UNDEFINED: no_args(r, a, "undefined", line); return v->type == JT_UNDEF;
	case T_NONE: no_args(r, a, "none", line); return v->type == JT_NONE;
	case T_BOOLEAN: no_args(r, a, "boolean", line); return v->type == JT_BOOL;
	case T_TRUE: no_args(r, a, "true", line); return v->type == JT_BOOL && v->u.b;
	case T_FALSE: no_args(r, a, "false", line); return v->type == JT_BOOL && !v->u.b;
	case T_INTEGER: no_args(r, a, "integer", line); return v->type == JT_INT;
	case T_FLOAT: no_args(r, a, "float", line); return v->type == JT_FLOAT;
	case T_NUMBER: no_args(r, a, "number", line); return is_num(v);
	case T_STRING: no_args(r, a, "string", line); return v->type == JT_STR;
	case T_MAPPING: no_args(r, a, "mapping", line); return v->type == JT_DICT;
	case T_ITERABLE:
		no_args(r, a, "iterable", line);
		return v->type == JT_UNDEF || v->type == JT_STR || v->type == JT_LIST ||
		       v->type == JT_DICT;
	case T_SEQUENCE:
		no_args(r, a, "sequence", line);
		return v->type == JT_STR || (v->type == JT_LIST && !(v->flags & JF_ITER)) ||
		       v->type == JT_DICT;
	case T_CALLABLE:
		no_args(r, a, "callable", line);
		return v->type == JT_MACRO || v->type == JT_FUNC;
	case T_ESCAPED:
		no_args(r, a, "escaped", line);
		return v->type == JT_STR && (v->flags & JF_SAFE);
	case T_ODD:
	case T_EVEN: {
		no_args(r, a, "odd", line);
		struct jval *m = arith(r, OP_MOD, v, mkint(r, 2, line), line);
		return jv_eq(m, id == T_ODD ? mkint(r, 1, line) : mkint(r, 0, line));
	}
	case T_DIVISIBLEBY: {
		BIND(r, a, o, "divisibleby", line, "num");
		if (!o[0])
			rfail(r, line, "divisibleby needs a number");
		struct jval *m = arith(r, OP_MOD, v, o[0], line);
		return jv_eq(m, mkint(r, 0, line));
	}
	case T_LOWER:
	case T_UPPER: {
		no_args(r, a, "lower", line);
		return cased_test(to_str(r, v, line), id == T_UPPER);
	}
	case T_SAMEAS: {
		BIND(r, a, o, "sameas", line, "other");
		if (!o[0])
			rfail(r, line, "sameas needs a value");
		struct jval *w = o[0];
		if (v->type != w->type)
			return 0;
		if (v->type == JT_NONE || v->type == JT_UNDEF)
			return v->type == JT_NONE;
		if (v->type == JT_BOOL)
			return v->u.b == w->u.b;
		if (v->type == JT_INT) /* Python caches small ints */
			return v->u.i == w->u.i && v->u.i >= -5 && v->u.i <= 256;
		return v == w;
	}
	case T_IN: {
		BIND(r, a, o, "in", line, "seq");
		if (!o[0])
			rfail(r, line, "in needs a container");
		return contains(r, o[0], v, line);
	}
	case T_EQ:
	case T_NE:
	case T_LT:
	case T_LE:
	case T_GT:
	case T_GE: {
		BIND(r, a, o, name, line, "other");
		if (!o[0])
			rfail(r, line, "the '%s' test needs a value", name);
		int op = id == T_EQ   ? OP_EQ
			 : id == T_NE ? OP_NE
			 : id == T_LT ? OP_LT
			 : id == T_LE ? OP_LE
			 : id == T_GT ? OP_GT
				      : OP_GE;
		return compare(r, op, v, o[0], line);
	}
	case T_FILTER:
		no_args(r, a, "filter", line);
		return v->type == JT_STR && jinja_filter_id(v->u.str.s) >= 0;
	case T_TEST:
		no_args(r, a, "test", line);
		return v->type == JT_STR && jinja_test_id(v->u.str.s) >= 0;
	default: break;
	}
	rfail(r, line, "no test named '%s'", name);
}

/* ---- expressions --------------------------------------------------------------------------- */

static struct jval *ev(struct render *r, struct jscope *s, const struct jnode *n);
static enum flow ex(struct render *r, struct jscope *s, const struct jnode *n);

static void enter(struct render *r, int line)
{
	if (++r->depth > r->lim.max_depth)
		rfail(r, line, "the template nests more than %d levels deep (recursion?)",
		      r->lim.max_depth);
	tick(r, 1, line);
}

static void eval_args(struct render *r, struct jscope *s, const struct jnode *n, struct args *a)
{
	a->n = n->n;
	a->n_kw = n->n_kw;
	a->pos = n->n ? ralloc(r, n->n * sizeof(struct jval *), n->line) : NULL;
	for (size_t i = 0; i < n->n; i++)
		a->pos[i] = ev(r, s, n->kids[i]);
	a->kwn = n->n_kw ? ralloc(r, n->n_kw * sizeof(char *), n->line) : NULL;
	a->kwv = n->n_kw ? ralloc(r, n->n_kw * sizeof(struct jval *), n->line) : NULL;
	for (size_t k = 0; k < n->n_kw; k++) {
		a->kwn[k] = n->kw[k].name;
		a->kwv[k] = ev(r, s, n->kw[k].val);
	}
}

/* Output into a capture (macro bodies, set and filter blocks). */
static struct jval *capture(struct render *r, struct jscope *s, const struct jnode *body, int line)
{
	struct jsb cap, *saved = r->out;
	sb_init(r, &cap);
	r->out = &cap;
	ex(r, s, body);
	r->out = saved;
	return sb_finish(r, &cap, line);
}

static struct jval *call_macro(struct render *r, struct jval *m, const struct args *a, int line)
{
	const struct jnode *def = m->u.macro.def;
	struct jscope *ms = scope_new(r, m->u.macro.scope, line);
	size_t np = def->n;
	if (a->n > np)
		rfail(r, line, "macro '%s' takes not more than %zu argument(s)", def->name, np);
	struct jval **vals = ralloc(r, (np + 1) * sizeof(*vals), line);
	for (size_t i = 0; i < np; i++)
		vals[i] = i < a->n ? a->pos[i] : NULL;
	for (size_t k = 0; k < a->n_kw; k++) {
		size_t i;
		for (i = 0; i < np; i++)
			if (!strcmp(def->kids[i]->name, a->kwn[k]))
				break;
		if (i == np)
			rfail(r, line, "macro '%s' takes no keyword argument '%s'", def->name,
			      a->kwn[k]);
		if (vals[i])
			rfail(r, line, "macro '%s' got multiple values for argument '%s'",
			      def->name, a->kwn[k]);
		vals[i] = a->kwv[k];
	}
	for (size_t i = 0; i < np; i++) {
		if (!vals[i]) {
			size_t first_def = np - def->n_defs;
			if (i >= first_def)
				/* defaults are evaluated at call time in the macro's scope */
				vals[i] = ev(r, ms, def->defs[i - first_def]);
			else
				vals[i] = undef(r, def->kids[i]->name, NULL);
		}
		scope_set(r, ms, def->kids[i]->name, vals[i], line);
	}
	return capture(r, ms, def->d, line);
}

static struct jval *namespace_new(struct render *r, const struct args *a, int line)
{
	struct jval *ns = chk(r, jv_new(&r->a, JT_NS), line);
	ns->u.dict = jdict_new(&r->a);
	if (!ns->u.dict)
		fail_memory(r, line);
	if (a->n > 1)
		rfail(r, line, "namespace() takes at most one positional argument");
	if (a->n) {
		struct jval *d = a->pos[0];
		if (d->type != JT_DICT)
			rfail(r, line, "namespace() takes a mapping, not '%s'", jv_type_name(d));
		for (size_t i = 0; i < d->u.dict->n; i++)
			if (jdict_set(&r->a, ns->u.dict, d->u.dict->k[i], d->u.dict->v[i]) < 0)
				fail_memory(r, line);
	}
	for (size_t k = 0; k < a->n_kw; k++)
		if (jdict_set(&r->a, ns->u.dict, mkstr(r, a->kwn[k], strlen(a->kwn[k]), 0, line),
			      a->kwv[k]) < 0)
			fail_memory(r, line);
	return ns;
}

static struct jval *strftime_now(struct render *r, const struct args *a, int line)
{
	struct jval *o[1];
	BIND(r, a, o, "strftime_now()", line, "format");
	if (!o[0])
		rfail(r, line, "strftime_now() needs a format");
	const struct jval *f = want_str(r, o[0], "the format", line);
	struct tm tm;
	time_t now = r->now;
	localtime_r(&now, &tm);
	size_t cap = f->u.str.len * 8 + 64;
	if (cap > 4096)
		cap = 4096;
	char *buf = ralloc(r, cap, line);
	/* nothing may unwind (rfail) while the locale is held */
	locale_t c = newlocale(LC_ALL_MASK, "C", (locale_t)0);
	if (!c)
		rfail(r, line, "strftime_now(): no C locale");
	size_t n = f->u.str.len ? strftime_l(buf, cap, f->u.str.s, &tm, c) : 0;
	freelocale(c);
	if (f->u.str.len && !n)
		rfail(r, line, "strftime_now(): the formatted date is too long");
	return mkstr(r, buf, n, 0, line);
}

/* str.format() with {} {0} {name} fields (no conversions or format specs). */
static struct jval *str_format(struct render *r, struct jval *fmt, const struct args *a, int line)
{
	const char *f = fmt->u.str.s;
	size_t n = fmt->u.str.len, auto_i = 0, run = 0;
	struct jsb b;
	sb_init(r, &b);
	for (size_t i = 0; i < n; i++) {
		if (f[i] == '}') {
			if (i + 1 < n && f[i + 1] == '}') {
				jsb_add_str(&b, fmt, run, i + 1 - run);
				run = ++i + 1;
				continue;
			}
			rfail(r, line, "single '}' encountered in format string");
		}
		if (f[i] != '{')
			continue;
		if (i + 1 < n && f[i + 1] == '{') {
			jsb_add_str(&b, fmt, run, i + 1 - run);
			run = ++i + 1;
			continue;
		}
		jsb_add_str(&b, fmt, run, i - run);
		size_t close = i + 1;
		while (close < n && f[close] != '}')
			close++;
		if (close >= n)
			rfail(r, line, "single '{' encountered in format string");
		const char *field = f + i + 1;
		size_t fl = close - i - 1;
		if (memchr(field, ':', fl) || memchr(field, '!', fl) || memchr(field, '.', fl) ||
		    memchr(field, '[', fl))
			rfail(r, line, "format fields with conversions or specs are not supported");
		struct jval *v = NULL;
		if (!fl) {
			if (auto_i >= a->n)
				rfail(r, line, "replacement index %zu out of range", auto_i);
			v = a->pos[auto_i++];
		} else if (field[0] >= '0' && field[0] <= '9') {
			size_t k = (size_t)strtoul(field, NULL, 10);
			if (k >= a->n)
				rfail(r, line, "replacement index %zu out of range", k);
			v = a->pos[k];
		} else {
			for (size_t k = 0; k < a->n_kw && !v; k++)
				if (strlen(a->kwn[k]) == fl && !memcmp(a->kwn[k], field, fl))
					v = a->kwv[k];
			if (!v)
				rfail(r, line, "format key '%.*s' is missing", (int)fl, field);
		}
		jv_str_into(&b, v);
		i = close;
		run = close + 1;
	}
	jsb_add_str(&b, fmt, run, n - run);
	return sb_finish(r, &b, line);
}

static int64_t str_find(struct render *r, struct jval *s, const struct args *a, int last, int line)
{
	struct jval *o[3];
	BIND(r, a, o, last ? "rfind()" : "find()", line, "sub", "start", "end");
	if (!o[0])
		rfail(r, line, "find() needs a substring");
	const struct jval *sub = want_str(r, o[0], "the substring", line);
	size_t nc = ju_count(s->u.str.s, s->u.str.len);
	int64_t lo = 0, hi = (int64_t)nc;
	if (o[1] && o[1]->type != JT_NONE) {
		lo = want_int(r, o[1], "start", line);
		if (lo < 0)
			lo = lo + (int64_t)nc < 0 ? 0 : lo + (int64_t)nc;
	}
	if (o[2] && o[2]->type != JT_NONE) {
		hi = want_int(r, o[2], "end", line);
		if (hi < 0)
			hi = hi + (int64_t)nc < 0 ? 0 : hi + (int64_t)nc;
	}
	if (hi > (int64_t)nc)
		hi = (int64_t)nc;
	if (lo > hi)
		return -1;
	size_t blo = ju_offset(s->u.str.s, s->u.str.len, (size_t)lo);
	size_t bhi = ju_offset(s->u.str.s, s->u.str.len, (size_t)hi);
	int64_t at = find_bytes(s->u.str.s, blo, bhi, sub->u.str.s, sub->u.str.len, last);
	if (at < 0)
		return -1;
	return (int64_t)ju_count(s->u.str.s, (size_t)at);
}

/* startswith / endswith with a string or a tuple of strings. */
static int affix(struct render *r, struct jval *s, const struct args *a, int end, int line)
{
	struct jval *o[3];
	BIND(r, a, o, end ? "endswith()" : "startswith()", line, "prefix", "start", "end");
	if (!o[0])
		rfail(r, line, "startswith() needs an argument");
	if (o[1] || o[2])
		rfail(r, line, "startswith() and endswith() with start or end are not supported");
	struct jval **cands = &o[0];
	size_t nc = 1;
	if (o[0]->type == JT_LIST && (o[0]->flags & JF_TUPLE)) {
		cands = o[0]->u.list.v;
		nc = o[0]->u.list.n;
	}
	for (size_t i = 0; i < nc; i++) {
		const struct jval *p = want_str(r, cands[i], "the affix", line);
		size_t pl = p->u.str.len, sl = s->u.str.len;
		if (pl <= sl && !memcmp(s->u.str.s + (end ? sl - pl : 0), p->u.str.s, pl))
			return 1;
	}
	return 0;
}

static struct jval *call_method(struct render *r, int id, struct jval *self, const struct args *a,
				int line)
{
	struct jval *o[3];
	tick(r, 1, line);
	switch (id) {
	case M_CAPITALIZE:
		no_args(r, a, "capitalize()", line);
		return change_case(r, self, CASE_CAPITALIZE, line);
	case M_TITLE:
		no_args(r, a, "title()", line);
		return change_case(r, self, CASE_TITLE_WORDS, line);
	case M_LOWER: no_args(r, a, "lower()", line); return change_case(r, self, CASE_LOWER, line);
	case M_UPPER: no_args(r, a, "upper()", line); return change_case(r, self, CASE_UPPER, line);
	case M_STRIP:
	case M_LSTRIP:
	case M_RSTRIP: {
		BIND(r, a, o, "strip()", line, "chars");
		const struct jval *chars =
			o[0] && o[0]->type != JT_NONE ? want_str(r, o[0], "chars", line) : NULL;
		return strip(r, self, chars, id != M_RSTRIP, id != M_LSTRIP, line);
	}
	case M_SPLIT:
	case M_RSPLIT: {
		BIND(r, a, o, "split()", line, "sep", "maxsplit");
		const struct jval *sep = o[0] && o[0]->type != JT_NONE
						 ? want_str(r, o[0], "the separator", line)
						 : NULL;
		int64_t maxsplit = o[1] ? want_int(r, o[1], "maxsplit", line) : -1;
		return split(r, self, sep, maxsplit, id == M_RSPLIT, line);
	}
	case M_SPLITLINES:
		BIND(r, a, o, "splitlines()", line, "keepends");
		return splitlines(r, self, opt_bool(o[0], 0), line);
	case M_STARTSWITH: return jv_bool(affix(r, self, a, 0, line));
	case M_ENDSWITH: return jv_bool(affix(r, self, a, 1, line));
	case M_REPLACE: {
		BIND(r, a, o, "replace()", line, "old", "new", "count");
		if (!o[0] || !o[1])
			rfail(r, line, "replace() needs old and new");
		return replace_str(r, self, want_str(r, o[0], "old", line),
				   want_str(r, o[1], "new", line),
				   o[2] ? want_int(r, o[2], "count", line) : -1, line);
	}
	case M_FIND: return mkint(r, str_find(r, self, a, 0, line), line);
	case M_RFIND: return mkint(r, str_find(r, self, a, 1, line), line);
	case M_INDEX: {
		int64_t k = str_find(r, self, a, 0, line);
		if (k < 0)
			rfail(r, line, "substring not found");
		return mkint(r, k, line);
	}
	case M_COUNT: {
		BIND(r, a, o, "count()", line, "sub");
		if (!o[0])
			rfail(r, line, "count() needs a substring");
		const struct jval *sub = want_str(r, o[0], "the substring", line);
		if (!sub->u.str.len)
			return mkint(r, (int64_t)ju_count(self->u.str.s, self->u.str.len) + 1,
				     line);
		int64_t c = 0;
		size_t i = 0;
		int64_t at;
		while ((at = find_bytes(self->u.str.s, i, self->u.str.len, sub->u.str.s,
					sub->u.str.len, 0)) >= 0) {
			c++;
			i = (size_t)at + sub->u.str.len;
		}
		return mkint(r, c, line);
	}
	case M_JOIN: {
		BIND(r, a, o, "join()", line, "iterable");
		if (!o[0])
			rfail(r, line, "join() needs an iterable");
		struct jval *items = iter_items(r, o[0], line);
		struct jsb b;
		sb_init(r, &b);
		for (size_t i = 0; i < items->u.list.n; i++) {
			struct jval *x = items->u.list.v[i];
			if (x->type != JT_STR)
				rfail(r, line, "sequence item %zu: expected str instance, %s found",
				      i, jv_type_name(x));
			if (i)
				jsb_add_val(&b, self);
			jsb_add_val(&b, x);
		}
		return sb_finish(r, &b, line);
	}
	case M_ISALNUM:
	case M_ISALPHA:
	case M_ISDIGIT:
	case M_ISSPACE: {
		no_args(r, a, "isalpha()", line);
		if (!self->u.str.len)
			return &jv_false_c;
		for (size_t i = 0; i < self->u.str.len;) {
			uint32_t cp = ju_next(self->u.str.s, self->u.str.len, &i);
			int ok = id == M_ISALPHA   ? ju_isalpha(cp)
				 : id == M_ISDIGIT ? ju_isdigit(cp)
				 : id == M_ISSPACE ? ju_isspace(cp)
						   : ju_isalpha(cp) || ju_isdigit(cp);
			if (!ok)
				return &jv_false_c;
		}
		return &jv_true_c;
	}
	case M_ISLOWER:
	case M_ISUPPER:
		no_args(r, a, "islower()", line);
		return jv_bool(cased_test(self, id == M_ISUPPER));
	case M_CENTER:
	case M_LJUST:
	case M_RJUST: {
		BIND(r, a, o, "center()", line, "width", "fillchar");
		if (!o[0])
			rfail(r, line, "the width is missing");
		const struct jval *fill =
			o[1] ? want_str(r, o[1], "the fill character", line) : NULL;
		if (fill && ju_count(fill->u.str.s, fill->u.str.len) != 1)
			rfail(r, line, "the fill character must be exactly one character long");
		return pad(r, self, want_int(r, o[0], "width", line), fill,
			   id == M_CENTER  ? 'c'
			   : id == M_LJUST ? 'l'
					   : 'r',
			   line);
	}
	case M_ZFILL:
		BIND(r, a, o, "zfill()", line, "width");
		if (!o[0])
			rfail(r, line, "zfill() needs a width");
		return pad(r, self, want_int(r, o[0], "width", line), NULL, 'z', line);
	case M_REMOVEPREFIX:
	case M_REMOVESUFFIX: {
		BIND(r, a, o, "removeprefix()", line, "affix");
		if (!o[0])
			rfail(r, line, "removeprefix() needs an argument");
		const struct jval *p = want_str(r, o[0], "the affix", line);
		size_t pl = p->u.str.len, sl = self->u.str.len;
		if (pl > sl || !pl)
			return self;
		if (id == M_REMOVEPREFIX)
			return memcmp(self->u.str.s, p->u.str.s, pl)
				       ? self
				       : substr(r, self, pl, sl, line);
		return memcmp(self->u.str.s + sl - pl, p->u.str.s, pl)
			       ? self
			       : substr(r, self, 0, sl - pl, line);
	}
	case M_FORMAT: return str_format(r, self, a, line);
	case M_GET: {
		BIND(r, a, o, "get()", line, "key", "default");
		if (!o[0])
			rfail(r, line, "get() needs a key");
		if (!jv_hashable(o[0]))
			rfail(r, line, "unhashable type: '%s'", jv_type_name(o[0]));
		struct jval *x = jdict_get(self->u.dict, o[0]);
		return x ? x : o[1] ? o[1] : &jv_none_c;
	}
	case M_KEYS:
	case M_VALUES:
	case M_ITEMS: {
		no_args(r, a, "items()", line);
		size_t n = self->u.dict->n;
		struct jval *l = mklist(r, n, line);
		for (size_t i = 0; i < n; i++) {
			if (id == M_ITEMS) {
				struct jval *p = mklist(r, 2, line);
				p->flags = JF_TUPLE;
				p->u.list.v[0] = self->u.dict->k[i];
				p->u.list.v[1] = self->u.dict->v[i];
				l->u.list.v[i] = p;
			} else {
				l->u.list.v[i] =
					id == M_KEYS ? self->u.dict->k[i] : self->u.dict->v[i];
			}
		}
		/* dict views: iterable, sized, not indexable; close enough to a list */
		return l;
	}
	case M_DICT_COPY: {
		no_args(r, a, "copy()", line);
		struct jval *d = chk(r, jv_new(&r->a, JT_DICT), line);
		d->u.dict = jdict_new(&r->a);
		if (!d->u.dict)
			fail_memory(r, line);
		for (size_t i = 0; i < self->u.dict->n; i++)
			if (jdict_set(&r->a, d->u.dict, self->u.dict->k[i], self->u.dict->v[i]) < 0)
				fail_memory(r, line);
		return d;
	}
	case M_LIST_COPY: {
		no_args(r, a, "copy()", line);
		struct jval *l = mklist(r, self->u.list.n, line);
		if (self->u.list.n)
			memcpy(l->u.list.v, self->u.list.v, self->u.list.n * sizeof(void *));
		return l;
	}
	case M_LIST_COUNT:
	case M_LIST_INDEX: {
		BIND(r, a, o, "index()", line, "value");
		if (!o[0])
			rfail(r, line, "index() needs a value");
		int64_t c = 0;
		for (size_t i = 0; i < self->u.list.n; i++)
			if (jv_eq(self->u.list.v[i], o[0])) {
				if (id == M_LIST_INDEX)
					return mkint(r, (int64_t)i, line);
				c++;
			}
		if (id == M_LIST_INDEX)
			rfail(r, line, "the value is not in the list");
		return mkint(r, c, line);
	}
	case M_CYCLE: {
		if (a->n_kw)
			rfail(r, line, "loop.cycle() takes no keyword arguments");
		if (!a->n)
			rfail(r, line, "no items for cycling given");
		return a->pos[self->u.loop->index0 % (int64_t)a->n];
	}
	case M_JOINER: {
		/* joiner state lives in the namespace dict of self */
		struct jval *used = jdict_get_str(self->u.dict, "used");
		struct jval *sep = jdict_get_str(self->u.dict, "sep");
		if (used && jv_truthy(used))
			return sep;
		if (jdict_set(&r->a, self->u.dict, mkstr(r, "used", 4, 0, line), &jv_true_c) < 0)
			fail_memory(r, line);
		return &jv_empty_c;
	}
	default: break;
	}
	rfail(r, line, "this method is not supported");
}

static struct jval *call(struct render *r, struct jval *f, const struct args *a, int line)
{
	if (f->type == JT_UNDEF)
		fail_undef(r, f, line);
	if (f->type == JT_MACRO)
		return call_macro(r, f, a, line);
	if (f->type != JT_FUNC)
		rfail(r, line, "'%s' object is not callable", jv_type_name(f));
	if (f->u.fn.self)
		return call_method(r, f->u.fn.id, f->u.fn.self, a, line);
	struct jval *o[3];
	switch (f->u.fn.id) {
	case G_RANGE: {
		BIND(r, a, o, "range()", line, "start", "stop", "step");
		if (a->n_kw)
			rfail(r, line, "range() takes no keyword arguments");
		if (!o[0])
			rfail(r, line, "range expected at least 1 argument, got 0");
		int64_t start = 0, stop, step = 1;
		if (!o[1]) {
			stop = want_int(r, o[0], "range()'s argument", line);
		} else {
			start = want_int(r, o[0], "range()'s argument", line);
			stop = want_int(r, o[1], "range()'s argument", line);
			if (o[2])
				step = want_int(r, o[2], "range()'s argument", line);
		}
		if (!step)
			rfail(r, line, "range() arg 3 must not be zero");
		uint64_t count = 0;
		if (step > 0 && stop > start)
			count = ((uint64_t)stop - (uint64_t)start - 1) / (uint64_t)step + 1;
		else if (step < 0 && start > stop)
			count = ((uint64_t)start - (uint64_t)stop - 1) /
					(uint64_t)(-(step + 1) + 1) +
				1;
		if (count > r->lim.max_memory / (sizeof(void *) + sizeof(struct jval)))
			fail_memory(r, line);
		tick(r, count, line);
		struct jval *l = mklist(r, (size_t)count, line);
		for (uint64_t i = 0; i < count; i++)
			l->u.list.v[i] = mkint(r, start + (int64_t)i * step, line);
		return l;
	}
	case G_NAMESPACE: return namespace_new(r, a, line);
	case G_DICT: {
		struct jval *d = chk(r, jv_new(&r->a, JT_DICT), line);
		d->u.dict = jdict_new(&r->a);
		if (!d->u.dict)
			fail_memory(r, line);
		if (a->n > 1)
			rfail(r, line, "dict expected at most 1 argument, got %zu", a->n);
		if (a->n) {
			struct jval *src = a->pos[0];
			if (src->type == JT_DICT) {
				for (size_t i = 0; i < src->u.dict->n; i++)
					if (jdict_set(&r->a, d->u.dict, src->u.dict->k[i],
						      src->u.dict->v[i]) < 0)
						fail_memory(r, line);
			} else {
				struct jval *items = iter_items(r, src, line);
				for (size_t i = 0; i < items->u.list.n; i++) {
					struct jval *p = items->u.list.v[i];
					if (p->type != JT_LIST || p->u.list.n != 2)
						rfail(r, line,
						      "dictionary update sequence element #%zu has the wrong length",
						      i);
					if (!jv_hashable(p->u.list.v[0]))
						rfail(r, line, "unhashable type: '%s'",
						      jv_type_name(p->u.list.v[0]));
					if (jdict_set(&r->a, d->u.dict, p->u.list.v[0],
						      p->u.list.v[1]) < 0)
						fail_memory(r, line);
				}
			}
		}
		for (size_t k = 0; k < a->n_kw; k++)
			if (jdict_set(&r->a, d->u.dict,
				      mkstr(r, a->kwn[k], strlen(a->kwn[k]), 0, line),
				      a->kwv[k]) < 0)
				fail_memory(r, line);
		return d;
	}
	case G_RAISE: {
		BIND(r, a, o, "raise_exception()", line, "message");
		struct jval *m = o[0] ? to_str(r, o[0], line) : &jv_empty_c;
		rfail(r, line, "the template raised an error: %.400s", m->u.str.s);
	}
	case G_STRFTIME: return strftime_now(r, a, line);
	case G_JOINER_NEW: {
		BIND(r, a, o, "joiner()", line, "sep");
		struct jval *j = chk(r, jv_new(&r->a, JT_NS), line);
		j->u.dict = jdict_new(&r->a);
		if (!j->u.dict ||
		    jdict_set(&r->a, j->u.dict, mkstr(r, "sep", 3, 0, line),
			      o[0] ? to_str(r, o[0], line) : mkstr(r, ", ", 2, 0, line)) < 0)
			fail_memory(r, line);
		return func(r, M_JOINER, j);
	}
	default: break;
	}
	rfail(r, line, "this function is not supported");
}

static struct jval *ev_inner(struct render *r, struct jscope *s, const struct jnode *n)
{
	switch ((enum jkind)n->kind) {
	case NK_CONST: return n->val;
	case NK_NAME: return lookup(r, s, n->name);
	case NK_GETATTR: return getattr_(r, ev(r, s, n->a), n->name, n->line);
	case NK_GETITEM: {
		struct jval *obj = ev(r, s, n->a);
		return getitem(r, obj, ev(r, s, n->b), n->line);
	}
	case NK_SLICE: {
		struct jval *obj = ev(r, s, n->a);
		struct jval *lo = n->b ? ev(r, s, n->b) : NULL;
		struct jval *hi = n->c ? ev(r, s, n->c) : NULL;
		struct jval *st = n->d ? ev(r, s, n->d) : NULL;
		return slice(r, obj, lo, hi, st, n->line);
	}
	case NK_CALL: {
		struct jval *f = ev(r, s, n->a);
		struct args a;
		eval_args(r, s, n, &a);
		return call(r, f, &a, n->line);
	}
	case NK_FILTER: {
		struct jval *v = ev(r, s, n->a);
		struct args a;
		eval_args(r, s, n, &a);
		return call_filter(r, n->op == 0xFFFF ? -1 : n->op, n->name, v, &a, n->line);
	}
	case NK_TEST: {
		struct jval *v = ev(r, s, n->a);
		struct args a;
		eval_args(r, s, n, &a);
		return jv_bool(call_test(r, n->op == 0xFFFF ? -1 : n->op, n->name, v, &a, n->line));
	}
	case NK_NOT: return jv_bool(!jv_truthy(ev(r, s, n->a)));
	case NK_NEG:
	case NK_POS: {
		struct jval *v = ev(r, s, n->a);
		if (v->type == JT_UNDEF)
			fail_undef(r, v, n->line);
		if (!is_num(v))
			rfail(r, n->line, "bad operand type for unary %c: '%s'",
			      n->kind == NK_NEG ? '-' : '+', jv_type_name(v));
		if (n->kind == NK_POS)
			return v->type == JT_BOOL ? mkint(r, v->u.b, n->line) : v;
		if (v->type == JT_FLOAT)
			return mkfloat(r, -v->u.f, n->line);
		if (as_i(v) == INT64_MIN)
			rfail(r, n->line, "integer overflow");
		return mkint(r, -as_i(v), n->line);
	}
	case NK_BIN: {
		struct jval *a = ev(r, s, n->a);
		return arith(r, n->op, a, ev(r, s, n->b), n->line);
	}
	case NK_AND: {
		struct jval *a = ev(r, s, n->a);
		return jv_truthy(a) ? ev(r, s, n->b) : a;
	}
	case NK_OR: {
		struct jval *a = ev(r, s, n->a);
		return jv_truthy(a) ? a : ev(r, s, n->b);
	}
	case NK_CONCAT: {
		struct jsb b;
		sb_init(r, &b);
		for (size_t i = 0; i < n->n; i++)
			jv_str_into(&b, ev(r, s, n->kids[i]));
		return sb_finish(r, &b, n->line);
	}
	case NK_COMPARE: {
		struct jval *left = ev(r, s, n->a);
		for (size_t i = 0; i < n->n; i++) {
			struct jval *right = ev(r, s, n->kids[i]->a);
			if (!compare(r, n->kids[i]->op, left, right, n->kids[i]->line))
				return &jv_false_c;
			left = right;
		}
		return &jv_true_c;
	}
	case NK_COND:
		if (jv_truthy(ev(r, s, n->a)))
			return ev(r, s, n->b);
		if (n->c)
			return ev(r, s, n->c);
		return undef(
			r,
			"the inline if-expression evaluated to false and no else section was defined",
			NULL);
	case NK_LIST:
	case NK_TUPLE: {
		struct jval *l = mklist(r, n->n, n->line);
		for (size_t i = 0; i < n->n; i++)
			l->u.list.v[i] = ev(r, s, n->kids[i]);
		l->flags = n->kind == NK_TUPLE ? JF_TUPLE : 0;
		return l;
	}
	case NK_DICT: {
		struct jval *d = chk(r, jv_new(&r->a, JT_DICT), n->line);
		d->u.dict = jdict_new(&r->a);
		if (!d->u.dict)
			fail_memory(r, n->line);
		for (size_t i = 0; i + 1 < n->n; i += 2) {
			struct jval *k = ev(r, s, n->kids[i]);
			if (!jv_hashable(k))
				rfail(r, n->line, "unhashable type: '%s'", jv_type_name(k));
			if (jdict_set(&r->a, d->u.dict, k, ev(r, s, n->kids[i + 1])) < 0)
				fail_memory(r, n->line);
		}
		return d;
	}
	default: break;
	}
	rfail(r, n->line, "internal error: not an expression");
}

static struct jval *ev(struct render *r, struct jscope *s, const struct jnode *n)
{
	enter(r, n->line);
	struct jval *v = ev_inner(r, s, n);
	r->depth--;
	return v;
}

/* ---- statements ---------------------------------------------------------------------------- */

static void emit(struct render *r, struct jval *v, int line)
{
	jv_str_into(r->out, v);
	if (r->out->failed) {
		if (r->out->failed == JSB_NO_MEMORY)
			fail_memory(r, line);
		rfail(r, line, "the output is longer than %zu bytes", r->lim.max_output);
	}
	tick(r, (v->type == JT_STR ? v->u.str.len : 16) / 64, line);
}

static void assign(struct render *r, struct jscope *s, const struct jnode *target, struct jval *v,
		   int line)
{
	if (target->kind == NK_NAME) {
		scope_set(r, s, target->name, v, line);
		return;
	}
	if (target->kind == NK_NSREF) {
		struct jval *ns = lookup(r, s, target->name);
		if (ns->type != JT_NS)
			rfail(r, line, "can only assign attributes to namespaces, '%s' is %s",
			      target->name, jv_type_name(ns));
		if (jdict_set(&r->a, ns->u.dict, target->val, v) < 0)
			fail_memory(r, line);
		return;
	}
	/* tuple unpacking */
	struct jval *items = iter_items(r, v, line);
	if (items->u.list.n != target->n)
		rfail(r, line,
		      items->u.list.n > target->n ? "too many values to unpack (expected %zu)"
						  : "not enough values to unpack (expected %zu)",
		      target->n);
	for (size_t i = 0; i < target->n; i++)
		assign(r, s, target->kids[i], items->u.list.v[i], line);
}

/* The value of a filter chain whose innermost operand is the text of a block. */
static struct jval *apply_filters(struct render *r, struct jscope *s, const struct jnode *f,
				  struct jval *input)
{
	if (!f)
		return input;
	struct jval *v = f->a ? apply_filters(r, s, f->a, input) : input;
	struct args a;
	eval_args(r, s, f, &a);
	return call_filter(r, f->op == 0xFFFF ? -1 : f->op, f->name, v, &a, f->line);
}

static enum flow ex_for(struct render *r, struct jscope *s, const struct jnode *n)
{
	struct jval *it = ev(r, s, n->b);
	if (it->type == JT_NONE)
		rfail(r, n->line, "'NoneType' object is not iterable");
	struct jval *items = iter_items(r, it, n->line);
	if (n->c) {
		/* for x in y if cond: only the items that pass count */
		struct lb keep = { 0 };
		for (size_t i = 0; i < items->u.list.n; i++) {
			struct jscope *t = scope_new(r, s, n->line);
			assign(r, t, n->a, items->u.list.v[i], n->line);
			if (jv_truthy(ev(r, t, n->c)))
				lb_push(r, &keep, items->u.list.v[i], n->line);
		}
		items = lb_finish(r, &keep, 0, n->line);
	}
	if (!items->u.list.n) {
		if (n->e)
			ex(r, scope_new(r, s, n->line), n->e);
		return FLOW_NORMAL;
	}
	struct jloop *lp = ralloc(r, sizeof(*lp), n->line);
	lp->length = (int64_t)items->u.list.n;
	lp->items = items;
	lp->depth = 1;
	for (size_t i = 0; i < items->u.list.n; i++) {
		/* each pass gets a loop object of its own: a macro or value that
		 * keeps `loop` sees that pass */
		struct jloop *cur = ralloc(r, sizeof(*cur), n->line);
		*cur = *lp;
		cur->index0 = (int64_t)i;
		struct jval *lv = chk(r, jv_new(&r->a, JT_LOOP), n->line);
		lv->u.loop = cur;
		struct jscope *t = scope_new(r, s, n->line);
		scope_set(r, t, "loop", lv, n->line);
		assign(r, t, n->a, items->u.list.v[i], n->line);
		enum flow f = ex(r, t, n->d);
		if (f == FLOW_BREAK)
			break;
	}
	return FLOW_NORMAL;
}

static enum flow ex_inner(struct render *r, struct jscope *s, const struct jnode *n)
{
	switch ((enum jkind)n->kind) {
	case NK_BODY:
		for (size_t i = 0; i < n->n; i++) {
			enum flow f = ex(r, s, n->kids[i]);
			if (f != FLOW_NORMAL)
				return f;
		}
		return FLOW_NORMAL;
	case NK_DATA: emit(r, n->val, n->line); return FLOW_NORMAL;
	case NK_OUTPUT: emit(r, ev(r, s, n->a), n->line); return FLOW_NORMAL;
	case NK_IF:
		for (const struct jnode *c = n; c; c = c->c && c->c->kind == NK_IF ? c->c : NULL) {
			if (jv_truthy(ev(r, s, c->a)))
				return ex(r, s, c->b);
			if (c->c && c->c->kind != NK_IF)
				return ex(r, s, c->c);
		}
		return FLOW_NORMAL;
	case NK_FOR: return ex_for(r, s, n);
	case NK_SET: assign(r, s, n->a, ev(r, s, n->b), n->line); return FLOW_NORMAL;
	case NK_SETBLOCK: {
		struct jval *v = capture(r, scope_new(r, s, n->line), n->d, n->line);
		assign(r, s, n->a, apply_filters(r, s, n->c, v), n->line);
		return FLOW_NORMAL;
	}
	case NK_MACRO: {
		struct jval *m = chk(r, jv_new(&r->a, JT_MACRO), n->line);
		m->u.macro.def = n;
		m->u.macro.scope = s;
		scope_set(r, s, n->name, m, n->line);
		return FLOW_NORMAL;
	}
	case NK_FILTERBLOCK: {
		struct jval *v = capture(r, scope_new(r, s, n->line), n->d, n->line);
		emit(r, apply_filters(r, s, n->c, v), n->line);
		return FLOW_NORMAL;
	}
	case NK_WITH: {
		struct jscope *t = scope_new(r, s, n->line);
		/* the values are computed before any name is bound */
		struct jval **vals = ralloc(r, (n->n / 2 + 1) * sizeof(*vals), n->line);
		for (size_t i = 0; i + 1 < n->n; i += 2)
			vals[i / 2] = ev(r, s, n->kids[i + 1]);
		for (size_t i = 0; i + 1 < n->n; i += 2)
			assign(r, t, n->kids[i], vals[i / 2], n->line);
		return ex(r, t, n->d);
	}
	case NK_BREAK: return FLOW_BREAK;
	case NK_CONTINUE: return FLOW_CONTINUE;
	case NK_GENERATION: return ex(r, s, n->d);
	default: break;
	}
	rfail(r, n->line, "internal error: not a statement");
}

static enum flow ex(struct render *r, struct jscope *s, const struct jnode *n)
{
	enter(r, n->line);
	enum flow f = ex_inner(r, s, n);
	r->depth--;
	return f;
}

/* ---- entry points ------------------------------------------------------------------------------ */

void jinja_limits_default(struct jinja_limits *l)
{
	l->max_steps = 10u * 1000 * 1000;
	l->max_output = 32u << 20;
	l->max_memory = 128u << 20;
	l->max_depth = 500;
}

void jinja_output_release(struct jinja_output *o)
{
	strbuf_release(&o->text);
	free(o->ranges);
	o->ranges = NULL;
	o->n_ranges = o->alloc = 0;
}

static void add_range(struct jinja_output *o, size_t start, size_t end)
{
	if (start == end)
		return;
	if (o->n_ranges && o->ranges[o->n_ranges - 1][1] == start) {
		o->ranges[o->n_ranges - 1][1] = end;
		return;
	}
	ALLOC_GROW(o->ranges, o->n_ranges + 1, o->alloc);
	o->ranges[o->n_ranges][0] = start;
	o->ranges[o->n_ranges][1] = end;
	o->n_ranges++;
}

int jinja_render(const struct jinja_template *t, struct jinja_ctx *c, time_t now,
		 const struct jinja_limits *lim, struct jinja_output *out)
{
	struct render *r = xcalloc(1, sizeof(*r));
	if (lim)
		r->lim = *lim;
	else
		jinja_limits_default(&r->lim);
	jarena_init(&r->a, r->lim.max_memory);
	r->now = now;
	r->ctx = c->vars;
	struct jsb result;
	if (setjmp(r->jb)) {
		error("%s", r->msg);
		jarena_free(&r->a);
		free(r);
		return -1;
	}
	sb_init(r, &result);
	r->out = &result;
	r->top = scope_new(r, NULL, 0);
	ex(r, r->top, t->root);
	if (result.failed)
		rfail(r, 0, "the output is longer than %zu bytes", r->lim.max_output);
	/* hand over the text and the ranges the template wrote */
	size_t base = out->text.len;
	strbuf_add(&out->text, result.buf ? result.buf : "", result.len);
	if (!result.tm) {
		if (result.first > 0)
			add_range(out, base, base + result.len);
	} else {
		size_t i = 0;
		while (i < result.len) {
			size_t j = i;
			while (j < result.len && result.tm[j] == result.tm[i])
				j++;
			if (result.tm[i])
				add_range(out, base + i, base + j);
			i = j;
		}
	}
	jarena_free(&r->a);
	free(r);
	return 0;
}

/* ---- the context --------------------------------------------------------------------------------- */

struct jinja_ctx *jinja_ctx_new(void)
{
	struct jinja_ctx *c = xcalloc(1, sizeof(*c));
	jarena_init(&c->arena, 0);
	c->vars = jdict_new(&c->arena);
	if (!c->vars) {
		free(c);
		return NULL;
	}
	return c;
}

void jinja_ctx_free(struct jinja_ctx *c)
{
	if (!c)
		return;
	jarena_free(&c->arena);
	free(c);
}

static struct jinja_value *ctx_oom(void)
{
	error("out of memory for the template's variables");
	return NULL;
}

struct jinja_value *jinja_none(struct jinja_ctx *c)
{
	(void)c;
	return (struct jinja_value *)&jv_none_c;
}

struct jinja_value *jinja_bool(struct jinja_ctx *c, int b)
{
	(void)c;
	return (struct jinja_value *)jv_bool(b);
}

struct jinja_value *jinja_int(struct jinja_ctx *c, int64_t v)
{
	struct jval *x = jv_int(&c->arena, v);
	return x ? (struct jinja_value *)x : ctx_oom();
}

struct jinja_value *jinja_float(struct jinja_ctx *c, double v)
{
	struct jval *x = jv_float(&c->arena, v);
	return x ? (struct jinja_value *)x : ctx_oom();
}

struct jinja_value *jinja_string(struct jinja_ctx *c, const char *s, size_t len,
				 enum jinja_origin origin)
{
	struct jval *x = jv_str(&c->arena, s, len, origin == JINJA_TEMPLATE);
	return x ? (struct jinja_value *)x : ctx_oom();
}

struct jinja_value *jinja_list(struct jinja_ctx *c)
{
	struct jval *x = jv_list(&c->arena, 0);
	return x ? (struct jinja_value *)x : ctx_oom();
}

struct jinja_value *jinja_dict(struct jinja_ctx *c)
{
	struct jval *x = jv_new(&c->arena, JT_DICT);
	if (!x || !(x->u.dict = jdict_new(&c->arena)))
		return ctx_oom();
	return (struct jinja_value *)x;
}

int jinja_list_append(struct jinja_ctx *c, struct jinja_value *list, struct jinja_value *v)
{
	struct jval *l = (struct jval *)list;
	if (!l || !v || l->type != JT_LIST)
		return error("not a list");
	/* lists built here grow by doubling; n a power of two means full */
	size_t n = l->u.list.n;
	if (n >= 1 && (n & (n - 1)) == 0) {
		struct jval **nv = jarena_alloc(&c->arena, 2 * n * sizeof(*nv));
		if (!nv)
			return ctx_oom() ? 0 : -1;
		memcpy(nv, l->u.list.v, n * sizeof(*nv));
		l->u.list.v = nv;
	}
	l->u.list.v[n] = (struct jval *)v;
	l->u.list.n = n + 1;
	return 0;
}

int jinja_dict_set(struct jinja_ctx *c, struct jinja_value *dict, const char *key,
		   struct jinja_value *v)
{
	struct jval *d = (struct jval *)dict;
	if (!d || !v || d->type != JT_DICT)
		return error("not a dict");
	struct jval *k = jv_str(&c->arena, key, strlen(key), 0);
	if (!k || jdict_set(&c->arena, d->u.dict, k, (struct jval *)v) < 0)
		return ctx_oom() ? 0 : -1;
	return 0;
}

int jinja_ctx_set(struct jinja_ctx *c, const char *name, struct jinja_value *v)
{
	if (!v)
		return -1;
	struct jval *k = jv_str(&c->arena, name, strlen(name), 0);
	if (!k || jdict_set(&c->arena, c->vars, k, (struct jval *)v) < 0)
		return ctx_oom() ? 0 : -1;
	return 0;
}

int jinja_ctx_has(const struct jinja_ctx *c, const char *name)
{
	return jdict_get_str(c->vars, name) != NULL;
}
