/* Turning a conversation into prompt token ids: the chat template in use, then the tokenizer. */
#ifndef PALAVER_PROMPT_H
#define PALAVER_PROMPT_H

#include <stdint.h>

#include "engine.h"

struct gguf;
struct tokenizer;
struct prompt_template;

/*
 * The template for a model: want is "auto" (the model's own; raw completion
 * when it has none, and prompt_template_defaulted() says so), "none" (raw
 * completion: the messages' texts joined as they are), a template name, or
 * a file holding a name or a Jinja template to recognise.  The template's
 * own text may hold control tokens; the messages' text never yields one.
 * NULL after error().  tok must outlive the template.
 */
struct prompt_template *prompt_template_open(const struct gguf *g, const struct tokenizer *tok,
					     const char *want);
void prompt_template_free(struct prompt_template *t);
const char *prompt_template_name(const struct prompt_template *t);
/* 1 when "auto" found no template in the model and raw completion is used. */
int prompt_template_defaulted(const struct prompt_template *t);
/* Text that ends the assistant's turn in this format: NULL-terminated. */
const char *const *prompt_template_stops(const struct prompt_template *t);
/* 1 when generating token id ends the turn (end-of-generation tokens and
 * the format's single-token turn markers). */
int prompt_template_is_stop(const struct prompt_template *t, int32_t id);

/* The prompt for msgs[0..n) into *out (malloc'd) and *n_out.  0 or -1. */
int prompt_render(const struct prompt_template *t, const struct engine_message *msgs, int n,
		  int add_generation_prompt, int32_t **out, int *n_out);

#endif
