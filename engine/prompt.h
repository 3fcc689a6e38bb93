/* Turning a conversation into prompt token ids: the chat template in use, then the tokenizer. */
#ifndef PALAVER_PROMPT_H
#define PALAVER_PROMPT_H

#include <stdint.h>

#include "engine.h"

struct gguf;
struct tokenizer;
struct prompt_template;

/*
 * The template for a model: want is "auto" (the model's own, else a
 * default), "none" (raw completion) or a name or file.  NULL after error().
 *
 * "none": the messages' texts are joined, an assistant message continuing
 * the text before it directly and any other message starting on a new line,
 * and tokenized as plain text (BOS as the vocabulary asks; control-token
 * text in messages is never parsed as a control token).
 */
struct prompt_template *prompt_template_open(const struct gguf *g, const char *want);
void prompt_template_free(struct prompt_template *t);
const char *prompt_template_name(const struct prompt_template *t);
/* 1 when "auto" found no template in the model and a default is used. */
int prompt_template_defaulted(const struct prompt_template *t);

/* The prompt for msgs[0..n) into *out (malloc'd) and *n_out.  0 or -1. */
int prompt_render(const struct prompt_template *t, const struct tokenizer *tok,
		  const struct engine_message *msgs, int n, int add_generation_prompt,
		  int32_t **out, int *n_out);

#endif
