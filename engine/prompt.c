/* Conversation to prompt token ids: the chat template renders, the tokenizer parses its ranges. */
#include "prompt.h"

#include "gguf.h"
#include "report.h"
#include "strbuf.h"
#include "tokenizer.h"
#include "xalloc.h"
#include "chat_template.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct prompt_template {
	const struct tokenizer *tok;
	char name[32];
	int defaulted;
	int id;                    /* enum chat_template_id */
	unsigned char *stop_tok;   /* (n_vocab) 1 = the token ends the turn */
	char *bos_text, *eos_text; /* the vocabulary's BOS/EOS texts, or NULL */
	int32_t n_vocab;
};

struct prompt_template *prompt_template_open(const struct gguf *g, const struct tokenizer *tok,
					     const char *want)
{
	struct prompt_template *t;
	int32_t nv = tokenizer_n_vocab(tok);
	if (!want || !*want)
		want = "auto";
	t = xcalloc(1, sizeof(*t));
	t->tok = tok;
	t->n_vocab = nv;
	t->stop_tok = try_alloc_array((size_t)nv, 1);
	if (!t->stop_tok) {
		free(t);
		error("out of memory for a vocabulary of %d tokens", (int)nv);
		return NULL;
	}
	memset(t->stop_tok, 0, (size_t)nv);
	enum chat_template_id id;
	const char *why = NULL;
	if (chat_template_choose(g, want, &id, &why) < 0) {
		prompt_template_free(t);
		return NULL;
	}
	t->id = (int)id;
	t->defaulted = why != NULL;
	snprintf(t->name, sizeof(t->name), "%s", chat_template_name(id));
	int32_t *ids = try_alloc_array((size_t)nv, sizeof(int32_t));
	if (!ids) {
		prompt_template_free(t);
		error("out of memory for a vocabulary of %d tokens", (int)nv);
		return NULL;
	}
	int n = chat_template_stop_ids(id, tok, ids, nv);
	for (int i = 0; i < n && i < nv; i++)
		if (ids[i] >= 0 && ids[i] < nv)
			t->stop_tok[ids[i]] = 1;
	free(ids);
	size_t len;
	const char *s;
	if (tokenizer_bos(tok) >= 0 && (s = tokenizer_text(tok, tokenizer_bos(tok), &len)))
		t->bos_text = xstrndup(s, len);
	if (tokenizer_eos(tok) >= 0 && (s = tokenizer_text(tok, tokenizer_eos(tok), &len)))
		t->eos_text = xstrndup(s, len);
	for (int32_t i = 0; i < nv; i++)
		if (tokenizer_is_eog(tok, i))
			t->stop_tok[i] = 1;
	return t;
}

void prompt_template_free(struct prompt_template *t)
{
	if (!t)
		return;
	free(t->stop_tok);
	free(t->bos_text);
	free(t->eos_text);
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

const char *const *prompt_template_stops(const struct prompt_template *t)
{
	return chat_template_stops((enum chat_template_id)t->id);
}

int prompt_template_is_stop(const struct prompt_template *t, int32_t id)
{
	return id >= 0 && id < t->n_vocab && t->stop_tok[id];
}

/* Tokenize with enc(arg, out, max), growing the buffer as told. */
static int encode_all(int (*enc)(const void *, int32_t *, int), const void *arg, int32_t **out,
		      int *n_out)
{
	int alloc = 256;
	int32_t *ids = xmalloc(sizeof(int32_t) * (size_t)alloc);
	for (;;) {
		int r = enc(arg, ids, alloc);
		if (r == INT32_MIN) {
			free(ids);
			return -1;
		}
		if (r >= 0) {
			*out = ids;
			*n_out = r;
			return 0;
		}
		if (-(int64_t)r > INT32_MAX / 8) {
			free(ids);
			return error("the prompt is too long (%lld tokens)", -(long long)r);
		}
		alloc = -r;
		int32_t *p = try_alloc_array((size_t)alloc, sizeof(int32_t));
		if (!p) {
			free(ids);
			return error("out of memory for a prompt of %d tokens", alloc);
		}
		free(ids);
		ids = p;
	}
}

struct enc_arg {
	const struct chat_prompt *p;
	const struct tokenizer *tok;
};

static int enc_chat(const void *arg, int32_t *out, int max)
{
	const struct enc_arg *a = arg;
	return chat_prompt_tokenize(a->p, a->tok, out, max);
}

int prompt_render(const struct prompt_template *t, const struct engine_message *msgs, int n,
		  int add_generation_prompt, int32_t **out, int *n_out)
{
	int rc;
	struct chat_prompt p = CHAT_PROMPT_INIT;
	struct chat_message *cm = try_alloc_array((size_t)(n ? n : 1), sizeof(*cm));
	struct chat_template_tokens tt = { t->bos_text, t->eos_text };
	if (!cm)
		return error("out of memory for a conversation of %d messages", n);
	for (int i = 0; i < n; i++) {
		cm[i].role = msgs[i].role == ENGINE_ROLE_SYSTEM ? CHAT_ROLE_SYSTEM
			     : msgs[i].role == ENGINE_ROLE_USER ? CHAT_ROLE_USER
								: CHAT_ROLE_ASSISTANT;
		cm[i].content = msgs[i].text;
	}
	rc = chat_template_render((enum chat_template_id)t->id, cm, (size_t)n,
				  add_generation_prompt, &tt, &p);
	if (rc == 0) {
		struct enc_arg a = { &p, t->tok };
		rc = encode_all(enc_chat, &a, out, n_out);
	}
	chat_prompt_release(&p);
	free(cm);
	return rc;
}
