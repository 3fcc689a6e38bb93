/* Conversation to prompt token ids: the chat template renders, the tokenizer parses its ranges. */
#include "prompt.h"
#include "reasoning.h"

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
	struct chat_template *ct;
	int said_fallback;         /* a failed Jinja render was reported once */
	unsigned char *stop_tok;   /* (n_vocab) 1 = the token ends the turn */
	char *bos_text, *eos_text; /* the vocabulary's BOS/EOS texts, or NULL */
	int32_t n_vocab;
};

struct prompt_template *prompt_template_open(const struct gguf *g, const struct tokenizer *tok,
					     const char *want)
{
	struct prompt_template *t;
	int32_t nv = tok ? tokenizer_n_vocab(tok) : 0;
	if (!want || !*want)
		want = "auto";
	t = xcalloc(1, sizeof(*t));
	t->tok = tok;
	t->n_vocab = nv;
	t->stop_tok = try_alloc_array((size_t)(nv ? nv : 1), 1);
	if (!t->stop_tok) {
		free(t);
		error("out of memory for a vocabulary of %d tokens", (int)nv);
		return NULL;
	}
	memset(t->stop_tok, 0, (size_t)nv);
	t->ct = chat_template_open(g, want);
	if (!t->ct) {
		prompt_template_free(t);
		return NULL;
	}
	if (!tok)
		return t;
	int32_t *ids = try_alloc_array((size_t)nv, sizeof(int32_t));
	if (!ids) {
		prompt_template_free(t);
		error("out of memory for a vocabulary of %d tokens", (int)nv);
		return NULL;
	}
	/* a Jinja template like no format ends turns at the vocabulary's
	 * end-of-generation tokens only */
	int family = t->ct->family >= 0 ? t->ct->family : CHAT_TEMPLATE_NONE;
	int n = chat_template_stop_ids((enum chat_template_id)family, tok, ids, nv);
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
	chat_template_close(t->ct);
	free(t->stop_tok);
	free(t->bos_text);
	free(t->eos_text);
	free(t);
}

const char *prompt_template_name(const struct prompt_template *t)
{
	return t->ct->name;
}

int prompt_template_defaulted(const struct prompt_template *t)
{
	return t->ct->defaulted;
}

const char *prompt_template_note(const struct prompt_template *t)
{
	return t->ct->note;
}

int prompt_template_is_jinja(const struct prompt_template *t)
{
	return t->ct->jinja != NULL;
}

int prompt_template_thinks(const struct prompt_template *t)
{
	return t->ct->thinks;
}

const char *const *prompt_template_stops(const struct prompt_template *t)
{
	return chat_template_stop_strings(t->ct);
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

int prompt_render_text(struct prompt_template *t, const struct engine_message *msgs, int n,
		       const struct prompt_opts *o, struct chat_prompt *out, char **note)
{
	struct chat_message *cm = try_alloc_array((size_t)(n > 0 ? n : 1), sizeof(*cm));
	struct chat_template_tokens tt = { t->bos_text, t->eos_text };
	struct chat_render_opts ro = { o->add_generation_prompt, o->think, o->ctx,
				       chat_template_now(), o->reasoning_effort };
	char *fell_back = NULL;
	*note = NULL;
	if (!cm)
		return error("out of memory for a conversation of %d messages", n);
	for (int i = 0; i < n; i++) {
		cm[i].role = msgs[i].role == ENGINE_ROLE_SYSTEM ? CHAT_ROLE_SYSTEM
			     : msgs[i].role == ENGINE_ROLE_USER ? CHAT_ROLE_USER
								: CHAT_ROLE_ASSISTANT;
		cm[i].content = msgs[i].text;
	}
	int rc = chat_template_apply(t->ct, cm, (size_t)n, &ro, &tt, out, &fell_back);
	free(cm);
	if (fell_back && !t->said_fallback) {
		t->said_fallback = 1;
		*note = fell_back;
	} else {
		free(fell_back);
	}
	return rc;
}

int prompt_tokenize(const struct prompt_template *t, const struct chat_prompt *p, int32_t **out,
		    int *n_out)
{
	struct enc_arg a = { p, t->tok };
	return encode_all(enc_chat, &a, out, n_out);
}

void prompt_template_markers(const struct prompt_template *t, const char **open, const char **close)
{
	*open = t->ct->think_open;
	*close = t->ct->think_close;
}

int prompt_render(struct prompt_template *t, const struct engine_message *msgs, int n,
		  const struct prompt_opts *o, int32_t **out, int *n_out, int *thinking,
		  char **note)
{
	struct chat_prompt p = CHAT_PROMPT_INIT;
	int rc = prompt_render_text(t, msgs, n, o, &p, note);
	*thinking = rc == 0 && reasoning_prompt_opens(p.text.buf, p.text.len, t->ct->think_open,
						      t->ct->think_close);
	if (rc == 0)
		rc = prompt_tokenize(t, &p, out, n_out);
	chat_prompt_release(&p);
	return rc;
}
