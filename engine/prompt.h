/* Turning a conversation into prompt token ids: the chat template in use, then the tokenizer. */
#ifndef PALAVER_PROMPT_H
#define PALAVER_PROMPT_H

#include <stdint.h>

#include "engine.h"

struct gguf;
struct tokenizer;
struct prompt_template;
struct chat_prompt;
struct jinja_ctx;

/*
 * The template for a model: want is "auto" (the model's own Jinja template,
 * interpreted; raw completion when it has none, and
 * prompt_template_defaulted() says so), "none" (raw completion: the
 * messages' texts joined as they are), a format name, or a file holding a
 * name or a Jinja template.  The template's own text may hold control
 * tokens; the messages' text never yields one.  NULL after error().  tok
 * must outlive the template; g and tok may be NULL to render text only
 * (with a name or a file), without BOS and EOS texts.  A template is used
 * by one thread at a time.
 */
struct prompt_template *prompt_template_open(const struct gguf *g, const struct tokenizer *tok,
					     const char *want);
void prompt_template_free(struct prompt_template *t);
/* "jinja" for an interpreted template, else the format's name. */
const char *prompt_template_name(const struct prompt_template *t);
/* 1 when "auto" found no template in the model and raw completion is used. */
int prompt_template_defaulted(const struct prompt_template *t);
/* Something to tell the user about the choice (a Jinja template that could
 * not be used, and the format used instead), or NULL. */
const char *prompt_template_note(const struct prompt_template *t);
/* 1 when a Jinja template renders (else a built-in format). */
int prompt_template_is_jinja(const struct prompt_template *t);
/* 1 when the template switches thinking on and off (enable_thinking). */
int prompt_template_thinks(const struct prompt_template *t);
/* Text that ends the assistant's turn in this format: NULL-terminated. */
const char *const *prompt_template_stops(const struct prompt_template *t);
/* 1 when generating token id ends the turn (end-of-generation tokens and
 * the format's single-token turn markers). */
int prompt_template_is_stop(const struct prompt_template *t, int32_t id);

struct prompt_opts {
	int add_generation_prompt;    /* normally 1 */
	int think;                    /* -1: the template's default; 0 or 1: enable_thinking */
	struct jinja_ctx *ctx;        /* optional (palaver template): the Jinja variables */
	const char *reasoning_effort; /* NULL, or harmony's "low", "medium", "high" */
};

/*
 * The prompt text for msgs[0..n) appended to out.  When the Jinja template
 * fails and its format renders instead, *note gets the reason the first
 * time only (malloc'd; NULL otherwise): tell the user.  0 or -1.
 */
int prompt_render_text(struct prompt_template *t, const struct engine_message *msgs, int n,
		       const struct prompt_opts *o, struct chat_prompt *out, char **note);
/* The prompt's token ids into *out (malloc'd) and *n_out; *thinking 1
 * when the prompt ends inside a thinking block the template opened
 * (DeepSeek-R1's "<think>\n"); *note as above. */
int prompt_render(struct prompt_template *t, const struct engine_message *msgs, int n,
		  const struct prompt_opts *o, int32_t **out, int *n_out, int *thinking,
		  char **note);
/* The markers of a thinking block in this template's replies. */
void prompt_template_markers(const struct prompt_template *t, const char **open,
			     const char **close);
/* Tokenize a rendered prompt (control tokens only where the template wrote them). */
int prompt_tokenize(const struct prompt_template *t, const struct chat_prompt *p, int32_t **out,
		    int *n_out);

#endif
