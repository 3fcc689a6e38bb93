/* The Jinja interpreter's insides, shared by jinja.c (parser), jinja_value.c (values) and jinja_eval.c (evaluator). */
#ifndef PALAVER_JINJA_INT_H
#define PALAVER_JINJA_INT_H

#include "jinja.h"

#include <setjmp.h>
#include <stddef.h>
#include <stdint.h>

/* ---- arenas ---------------------------------------------------------------- */

/*
 * Everything a parse, a context or a render allocates comes from one arena
 * and is freed with it: values are immutable once built and shared by
 * pointer, so nothing is reference-counted, and an error can unwind with
 * longjmp without leaking.  used counts every byte handed out; past cap the
 * allocation fails (a render then stops with a "more than N MiB" error).
 */
struct jarena {
	struct jblock *blocks; /* newest first */
	char *cur;             /* free space of the newest small block */
	size_t left;
	size_t used; /* bytes handed out */
	size_t cap;  /* 0 = no cap */
};
void jarena_init(struct jarena *a, size_t cap);
void jarena_free(struct jarena *a);
/* n bytes, 16-aligned (zeroed with _z); NULL past the cap or out of memory. */
void *jarena_alloc(struct jarena *a, size_t n);
void *jarena_alloc_z(struct jarena *a, size_t n);

/* ---- values ---------------------------------------------------------------- */

enum jtype {
	JT_UNDEF,
	JT_NONE,
	JT_BOOL,
	JT_INT,
	JT_FLOAT,
	JT_STR,
	JT_LIST,  /* also tuples and the generators some filters return (flags) */
	JT_DICT,  /* keys are any values but lists, dicts and namespaces */
	JT_NS,    /* namespace(): the one mutable value */
	JT_MACRO, /* a {% macro %} with the scope it was defined in */
	JT_FUNC,  /* a global function or a bound method (u.fn.self) */
	JT_LOOP,  /* the loop variable of a for loop */
};

enum {
	JF_TUPLE = 1, /* a list printed (a, b) and unequal to the list */
	JF_ITER = 2,  /* a generator: always true, no length, printed as one */
	JF_SAFE = 4,  /* a string marked safe (Markup): + escapes the other side */
};

struct jdict {
	size_t n, alloc;
	struct jval **k, **v;
};

struct jloop {
	int64_t index0, length;
	struct jval *items; /* the list iterated (after the loop's if filter) */
	int depth;          /* 1 for the outermost loop */
};

struct jval {
	unsigned char type;  /* enum jtype */
	unsigned char flags; /* JF_* */
	union {
		int b;
		int64_t i;
		double f;
		struct {
			size_t len;
			const char *s; /* len bytes, NUL-terminated */
			/* per byte: 1 when the template wrote it; NULL when all
			 * bytes are `uni` */
			const unsigned char *tm;
			unsigned char uni;
		} str;
		struct {
			size_t n;
			struct jval **v;
		} list;
		struct jdict *dict; /* JT_DICT and JT_NS */
		struct {
			const struct jnode *def;
			struct jscope *scope;
		} macro;
		struct {
			int id;            /* enum in jinja_eval.c */
			struct jval *self; /* bound methods: the object */
		} fn;
		struct jloop *loop;
		struct {
			const char *name;  /* what was undefined, for the message */
			const char *owner; /* "'dict object' has no attribute", or NULL */
			int unsafe;        /* a sandboxed attribute: any use is an error */
		} undef;
	} u;
};

/* Shared constants (never written). */
extern struct jval jv_undef_c, jv_none_c, jv_true_c, jv_false_c, jv_empty_c;

/* A string under construction, with the origin of each byte. */
struct jsb {
	struct jarena *a;
	char *buf;
	unsigned char *tm; /* allocated once the origins differ */
	size_t len, alloc;
	int first;  /* origin of every byte so far while tm is NULL; -1 when empty */
	size_t max; /* longest string allowed, 0 = none */
	int failed; /* JSB_TOO_LONG (past max) or JSB_NO_MEMORY */
};
enum { JSB_TOO_LONG = 1, JSB_NO_MEMORY = 2 };
void jsb_init(struct jsb *b, struct jarena *a, size_t max);
void jsb_add(struct jsb *b, const char *s, size_t n, int tmpl);
/* n bytes of string v from offset off, with their origins. */
void jsb_add_str(struct jsb *b, const struct jval *v, size_t off, size_t n);
void jsb_add_val(struct jsb *b, const struct jval *v); /* all of a string */
struct jval *jsb_finish(struct jsb *b);                /* NULL when failed */
static inline int jstr_tm(const struct jval *v, size_t i)
{
	return v->u.str.tm ? v->u.str.tm[i] : v->u.str.uni;
}

struct jval *jv_new(struct jarena *a, int type);
struct jval *jv_int(struct jarena *a, int64_t i);
struct jval *jv_float(struct jarena *a, double f);
struct jval *jv_bool(int b);
/* A copy of s[0..n) with one origin. */
struct jval *jv_str(struct jarena *a, const char *s, size_t n, int tmpl);
struct jval *jv_list(struct jarena *a, size_t n); /* n slots, all NULL */
struct jdict *jdict_new(struct jarena *a);
/* Set k (replacing an equal key).  0, or -1 out of memory. */
int jdict_set(struct jarena *a, struct jdict *d, struct jval *k, struct jval *v);
/* The value for k, NULL when absent. */
struct jval *jdict_get(const struct jdict *d, const struct jval *k);
struct jval *jdict_get_str(const struct jdict *d, const char *k);

/* ---- Python semantics ------------------------------------------------------ */

int jv_truthy(const struct jval *v);
/* Python ==: numbers by value, strings by bytes, lists and dicts deep. */
int jv_eq(const struct jval *a, const struct jval *b);
/* Python <: -1/0/1 in *out, or -1 when the types do not order. */
int jv_cmp(const struct jval *a, const struct jval *b, int *out);
/* Hashable as a dict key (no lists, dicts, namespaces). */
int jv_hashable(const struct jval *v);
const char *jv_type_name(const struct jval *v); /* Python's: 'str', 'int', 'dict', ... */

/* str(v) and repr(v) appended; 0, or -1 for a value that cannot be
 * printed (loops, functions print a fixed text, never fail). */
void jv_str_into(struct jsb *b, const struct jval *v);
void jv_repr_into(struct jsb *b, const struct jval *v);
/* json.dumps(v, ensure_ascii=False, indent, separators, sort_keys): 0, or
 * -1 with *bad set to the value that is not serializable. */
struct json_opts {
	const char *indent; /* NULL = none; else the indent text */
	size_t indent_len;
	const char *item_sep, *key_sep;
	int sort_keys;
};
int jv_json_into(struct jsb *b, const struct jval *v, const struct json_opts *o, int depth,
		 const struct jval **bad);
/* repr() of a float into buf (Python's shortest round-trip form). */
void jv_float_repr(double f, char *buf, size_t size);

/* ---- UTF-8 and Python's character classes ---------------------------------- */

/* The code point at s[*i] (an invalid byte counts as one character, its
 * value 0xDC00 + byte, as Python's surrogateescape); *i advances. */
uint32_t ju_next(const char *s, size_t len, size_t *i);
size_t ju_put(char *out, uint32_t cp);      /* UTF-8 bytes written, 1..4 */
size_t ju_count(const char *s, size_t len); /* characters */
/* Byte offset of character k (k <= count). */
size_t ju_offset(const char *s, size_t len, size_t k);
int ju_isspace(uint32_t cp); /* str.isspace() */
int ju_isprintable(uint32_t cp);
int ju_isalpha(uint32_t cp);
int ju_isdigit(uint32_t cp);
int ju_islinebreak(uint32_t cp); /* str.splitlines() boundaries */
/* Python's full case mappings: up to 3 code points into out, returns the count. */
int ju_upper(uint32_t cp, uint32_t out[3]);
int ju_lower(uint32_t cp, uint32_t out[3]);
int ju_title(uint32_t cp, uint32_t out[3]);
int ju_iscased(uint32_t cp);
int ju_iscaseignorable(uint32_t cp);

/* ---- the syntax tree ------------------------------------------------------- */

enum jkind {
	/* expressions */
	NK_CONST,   /* val */
	NK_NAME,    /* name */
	NK_GETATTR, /* a.name */
	NK_GETITEM, /* a[b] */
	NK_SLICE,   /* a[b:c:d], any of b c d NULL */
	NK_CALL,    /* a(kids, kw) */
	NK_FILTER,  /* a|name(kids, kw); a NULL in filter blocks */
	NK_TEST,    /* a is name(kids, kw) */
	NK_NOT,     /* not a */
	NK_NEG,     /* -a */
	NK_POS,     /* +a */
	NK_BIN,     /* a op b */
	NK_AND,     /* a and b */
	NK_OR,      /* a or b */
	NK_CONCAT,  /* kids joined with ~ */
	NK_COMPARE, /* a, then kids are NK_OPERAND */
	NK_OPERAND, /* op a */
	NK_COND,    /* b if a else c */
	NK_LIST,    /* [kids] */
	NK_TUPLE,   /* (kids) */
	NK_DICT,    /* {kids[0]: kids[1], ...} */
	NK_NSREF,   /* assignment target name.attr (attr in val's string) */
	/* statements */
	NK_BODY,        /* kids in order */
	NK_DATA,        /* template text (val) */
	NK_OUTPUT,      /* {{ a }} */
	NK_IF,          /* if a: b else c (c may be another NK_IF for elif) */
	NK_FOR,         /* for a in b if c: d else e */
	NK_SET,         /* set a = b */
	NK_SETBLOCK,    /* set a | c: d */
	NK_MACRO,       /* macro name(kids = params, defs = defaults of the last n_defs): d */
	NK_FILTERBLOCK, /* filter c: d */
	NK_WITH,        /* with kids = [target, value, ...]: d */
	NK_BREAK,
	NK_CONTINUE,
	NK_GENERATION, /* generation: d */
};

enum jop {
	OP_ADD,
	OP_SUB,
	OP_MUL,
	OP_DIV,
	OP_FLOORDIV,
	OP_MOD,
	OP_POW,
	OP_EQ,
	OP_NE,
	OP_LT,
	OP_LE,
	OP_GT,
	OP_GE,
	OP_IN,
	OP_NOTIN,
};

struct jkw {
	const char *name;
	struct jnode *val;
};

struct jnode {
	unsigned short kind; /* enum jkind */
	unsigned short op;   /* enum jop; filters and tests: their id */
	int line;
	const char *name;
	struct jval *val;
	struct jnode *a, *b, *c, *d, *e;
	struct jnode **kids;
	size_t n;
	struct jkw *kw;
	size_t n_kw;
	struct jnode **defs; /* macro defaults */
	size_t n_defs;
};

struct jinja_template {
	struct jarena arena;
	struct jnode *root; /* NK_BODY */
};

/* Filter and test ids by name (jinja_eval.c), -1 when unknown: the parser
 * refuses unknown ones as Jinja2 does at compile time. */
int jinja_filter_id(const char *name);
int jinja_test_id(const char *name);

struct jinja_ctx {
	struct jarena arena;
	struct jdict *vars;
};

#endif
