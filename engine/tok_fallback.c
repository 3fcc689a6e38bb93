/* Until engine/tokenizer.c lands: SentencePiece piece decoding for the engine (see tok_fallback.h). */
#if !__has_include("tokenizer.h")
#include "tok_fallback.h"
#include "report.h"
#include "strbuf.h"
#include "xalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct tokenizer {
	const struct gguf_str *tokens; /* (n) views into the mapping */
	int32_t n;
	int32_t eos;
};

struct tokenizer_decoder {
	const struct tokenizer *t;
	unsigned char pend[4]; /* an incomplete UTF-8 sequence */
	int npend;
};

struct tokenizer *tokenizer_open(const struct gguf *g, int pre_fallback)
{
	const struct gguf_str *strs;
	uint64_t n;
	uint32_t eos;
	(void)pre_fallback;
	if (gguf_get_arr_str(g, "tokenizer.ggml.tokens", &strs, &n) < 0)
		return NULL;
	if (gguf_get_u32_or(g, "tokenizer.ggml.eos_token_id", 2, &eos) < 0)
		return NULL;
	struct tokenizer *t = xcalloc(1, sizeof(*t));
	t->tokens = strs;
	t->n = (int32_t)n;
	t->eos = (int32_t)eos;
	return t;
}

void tokenizer_free(struct tokenizer *t)
{
	free(t);
}

int tokenizer_encode(const struct tokenizer *t, const char *text, size_t len, int flags,
		     int32_t *out, int max)
{
	(void)t, (void)text, (void)len, (void)flags, (void)out, (void)max;
	error("text prompts need the tokenizer, which is not built yet");
	return INT32_MIN;
}

int32_t tokenizer_n_vocab(const struct tokenizer *t) { return t->n; }
const char *tokenizer_pre_name(const struct tokenizer *t) { (void)t; return "default"; }
int tokenizer_pre_fell_back(const struct tokenizer *t) { (void)t; return 0; }
int tokenizer_add_bos(const struct tokenizer *t) { (void)t; return 1; }
int tokenizer_is_eog(const struct tokenizer *t, int32_t id) { return id == t->eos; }

struct tokenizer_decoder *tokenizer_decoder_new(const struct tokenizer *t, int flags)
{
	(void)flags;
	struct tokenizer_decoder *d = xcalloc(1, sizeof(*d));
	d->t = t;
	return d;
}

static int seq_len(unsigned char c)
{
	return c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 1;
}

static void put_byte(struct tokenizer_decoder *d, unsigned char c, struct strbuf *out)
{
	d->pend[d->npend++] = c;
	if (d->npend >= seq_len(d->pend[0])) {
		strbuf_add(out, d->pend, (size_t)d->npend);
		d->npend = 0;
	}
}

int tokenizer_decoder_push(struct tokenizer_decoder *d, int32_t id, struct strbuf *out)
{
	size_t before = out->len;
	if (id < 0 || id >= d->t->n)
		return error("token id %d is out of range", id);
	const struct gguf_str *s = &d->t->tokens[id];
	unsigned int b;
	if (s->len == 6 && !memcmp(s->data, "<0x", 3) && s->data[5] == '>' &&
	    sscanf(s->data + 3, "%2x", &b) == 1) {
		put_byte(d, (unsigned char)b, out);
		return (int)(out->len - before);
	}
	if (s->len >= 3 && s->data[0] == '<' && s->data[s->len - 1] == '>')
		return 0; /* control tokens add nothing */
	for (uint64_t i = 0; i < s->len; i++) {
		if (i + 2 < s->len && !memcmp(s->data + i, "\xe2\x96\x81", 3)) {
			put_byte(d, ' ', out);
			i += 2;
			continue;
		}
		put_byte(d, (unsigned char)s->data[i], out);
	}
	return (int)(out->len - before);
}

int tokenizer_decoder_flush(struct tokenizer_decoder *d, struct strbuf *out)
{
	int n = d->npend ? 3 : 0;
	if (d->npend)
		strbuf_addstr(out, "\xef\xbf\xbd");
	d->npend = 0;
	return n;
}

void tokenizer_decoder_free(struct tokenizer_decoder *d)
{
	free(d);
}
#else
typedef int tok_fallback_unused; /* the real tokenizer is built */
#endif
