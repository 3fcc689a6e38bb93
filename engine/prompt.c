/* Conversation to prompt token ids: raw completion ("none"); chat templates join when they land. */
#include "prompt.h"

#include "gguf.h"
#include "report.h"
#include "strbuf.h"
#include "xalloc.h"
#include "tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct prompt_template {
	char name[32];
	int defaulted;
};

struct prompt_template *prompt_template_open(const struct gguf *g, const char *want)
{
	struct prompt_template *t;
	if (!want || !*want)
		want = "auto";
	if (strcmp(want, "none") && strcmp(want, "auto")) {
		error("chat template '%s' is not available (this build knows only 'none')", want);
		return NULL;
	}
	t = xcalloc(1, sizeof(*t));
	snprintf(t->name, sizeof(t->name), "none");
	/* auto without a template in the model: raw completion, said so */
	t->defaulted = !strcmp(want, "auto") && !gguf_find_kv(g, "tokenizer.chat_template");
	if (!strcmp(want, "auto") && !t->defaulted) {
		free(t);
		error("the model's chat template cannot be used yet; use --chat-template none");
		return NULL;
	}
	return t;
}

void prompt_template_free(struct prompt_template *t)
{
	free(t);
}

const char *prompt_template_name(const struct prompt_template *t)
{
	return t->name;
}

int prompt_template_defaulted(const struct prompt_template *t)
{
	return t->defaulted;
}

/* Tokenize text (plain, or with control tokens when special) onto *ids. */
static int encode_append(const struct tokenizer *tok, const char *text, size_t len, int flags,
			 int32_t **ids, int *n, int *alloc)
{
	for (;;) {
		int room = *alloc - *n;
		int r = tokenizer_encode(tok, text, len, flags, *ids + *n, room);
		if (r == INT32_MIN)
			return -1;
		if (r >= 0) {
			*n += r;
			return 0;
		}
		size_t need = (size_t)*n + (size_t)(-(int64_t)r);
		if (need > INT32_MAX / 2)
			return error("the prompt is too long (%zu tokens)", need);
		int32_t *p = realloc(*ids, need * sizeof(int32_t));
		if (!p)
			return error("out of memory for a prompt of %zu tokens", need);
		*ids = p;
		*alloc = (int)need;
	}
}

int prompt_render(const struct prompt_template *t, const struct tokenizer *tok,
		  const struct engine_message *msgs, int n, int add_generation_prompt,
		  int32_t **out, int *n_out)
{
	struct strbuf text = STRBUF_INIT;
	int32_t *ids = NULL;
	int n_ids = 0, alloc = 0;
	(void)t;
	(void)add_generation_prompt;
	for (int i = 0; i < n; i++) {
		if (i && msgs[i].role != ENGINE_ROLE_ASSISTANT && text.len &&
		    text.buf[text.len - 1] != '\n')
			strbuf_addch(&text, '\n');
		strbuf_addstr(&text, msgs[i].text);
	}
	if (encode_append(tok, text.buf, text.len, TOKENIZE_ADD_BOS, &ids, &n_ids, &alloc) < 0) {
		strbuf_release(&text);
		free(ids);
		return -1;
	}
	strbuf_release(&text);
	*out = ids;
	*n_out = n_ids;
	return 0;
}
