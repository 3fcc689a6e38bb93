/* Jinja: an interpreter for the subset of Jinja2 that chat templates use, rendering as Hugging Face does. */
#ifndef PALAVER_JINJA_H
#define PALAVER_JINJA_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "strbuf.h"

/*
 * A template is parsed once (jinja_parse) and rendered many times
 * (jinja_render) with a context of variables built in a struct jinja_ctx.
 * Rendering follows Jinja2 3.1 configured as Hugging Face transformers
 * renders chat templates: an ImmutableSandboxedEnvironment with trim_blocks
 * and lstrip_blocks, the loopcontrols extension ({% break %}, {% continue %}),
 * the {% generation %} block, a tojson filter that is json.dumps with
 * ensure_ascii off, and the globals raise_exception(msg) and
 * strftime_now(format).
 *
 * Every string remembers, byte by byte, whether the template wrote it (its
 * literals, and context strings added as JINJA_TEMPLATE such as bos_token)
 * or it came from input (messages, tools, numbers the interpreter printed).
 * The rendered output lists the byte ranges the template wrote, so that a
 * tokenizer recognises control tokens there and nowhere else.
 *
 * Rendering is bounded (struct jinja_limits): steps, output bytes, memory
 * and nesting depth; a template that exceeds one fails with a message
 * naming the limit.  A template and a context are used by one thread at a
 * time; separate templates and contexts may be used on separate threads.
 */

struct jinja_template;
struct jinja_ctx;
struct jinja_value;

/* Where a context string came from. */
enum jinja_origin {
	JINJA_INPUT,    /* typed by someone: control tokens are never recognised in it */
	JINJA_TEMPLATE, /* as trusted as the template's own text (bos_token, eos_token) */
};

/*
 * Parse src[0..len).  NULL after error("line N: ...") for a syntax error or
 * a construct outside the subset (extends, include, import, call blocks,
 * recursive loops, unknown filters and tests).
 */
struct jinja_template *jinja_parse(const char *src, size_t len);
void jinja_free(struct jinja_template *t);
/* 1 when the template reads the variable name (e.g. "enable_thinking"). */
int jinja_uses(const struct jinja_template *t, const char *name);

/* ---- the context ---------------------------------------------------------- */

struct jinja_ctx *jinja_ctx_new(void);
void jinja_ctx_free(struct jinja_ctx *c);

/* Values live as long as their context.  Constructors return NULL only
 * when the context's memory is exhausted (after error()). */
struct jinja_value *jinja_none(struct jinja_ctx *c);
struct jinja_value *jinja_bool(struct jinja_ctx *c, int b);
struct jinja_value *jinja_int(struct jinja_ctx *c, int64_t v);
struct jinja_value *jinja_float(struct jinja_ctx *c, double v);
struct jinja_value *jinja_string(struct jinja_ctx *c, const char *s, size_t len,
				 enum jinja_origin origin);
struct jinja_value *jinja_list(struct jinja_ctx *c);
struct jinja_value *jinja_dict(struct jinja_ctx *c);
/* Append to a list / set a dict key (replacing an equal key).  0 or -1. */
int jinja_list_append(struct jinja_ctx *c, struct jinja_value *list, struct jinja_value *v);
int jinja_dict_set(struct jinja_ctx *c, struct jinja_value *dict, const char *key,
		   struct jinja_value *v);
/* Set a top-level variable of the render (messages, bos_token, ...). */
int jinja_ctx_set(struct jinja_ctx *c, const char *name, struct jinja_value *v);
/* 1 when the top-level variable is set. */
int jinja_ctx_has(const struct jinja_ctx *c, const char *name);

/* ---- rendering ------------------------------------------------------------ */

struct jinja_limits {
	uint64_t max_steps; /* expression and statement evaluations, plus bytes copied / 64 */
	size_t max_output;  /* bytes of rendered text */
	size_t max_memory;  /* bytes allocated while rendering (strings, lists, scopes) */
	int max_depth;      /* nesting of expressions, statements and macro calls */
};
void jinja_limits_default(struct jinja_limits *l);

/* The rendered text and the [start, end) byte ranges the template wrote
 * (sorted, disjoint, touching ranges merged). */
struct jinja_output {
	struct strbuf text;
	size_t (*ranges)[2];
	size_t n_ranges, alloc;
};
#define JINJA_OUTPUT_INIT                                                                          \
	{                                                                                          \
		STRBUF_INIT, NULL, 0, 0                                                            \
	}
void jinja_output_release(struct jinja_output *o);

/*
 * Render t with the context's variables, appending to out (nothing is
 * appended on failure).  now is the time strftime_now() reports.  lim NULL
 * means the defaults.  0, or -1 after error("line N: ..."): a runtime error
 * of the template (raise_exception's message, an undefined value used, a
 * type error) or a limit exceeded.
 */
int jinja_render(const struct jinja_template *t, struct jinja_ctx *c, time_t now,
		 const struct jinja_limits *lim, struct jinja_output *out);

#endif
