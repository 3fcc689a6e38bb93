/* Until engine/tokenizer.c lands: the slice of tokenizer.h the engine uses, decoding only. */
#ifndef PALAVER_TOK_FALLBACK_H
#define PALAVER_TOK_FALLBACK_H

#include <stddef.h>
#include <stdint.h>

#include "gguf.h"

/*
 * TEMPORARY (removed when the tokenizer branch is merged): SentencePiece
 * pieces only (U+2581 as space, <0xNN> byte tokens), EOS from the metadata,
 * no encoding.  Same names and meanings as tokenizer.h so that engine.c
 * does not change when the real one arrives.
 */

struct strbuf;
struct tokenizer;
struct tokenizer_decoder;

enum tokenize_flags {
	TOKENIZE_ADD_BOS = 1 << 0,
	TOKENIZE_ADD_EOS = 1 << 1,
	TOKENIZE_PARSE_SPECIAL = 1 << 2,
};

struct tokenizer *tokenizer_open(const struct gguf *g, int pre_fallback);
void tokenizer_free(struct tokenizer *t);
int tokenizer_encode(const struct tokenizer *t, const char *text, size_t len, int flags,
		     int32_t *out, int max);
int32_t tokenizer_n_vocab(const struct tokenizer *t);
const char *tokenizer_pre_name(const struct tokenizer *t);
int tokenizer_pre_fell_back(const struct tokenizer *t);
int tokenizer_add_bos(const struct tokenizer *t);
int tokenizer_is_eog(const struct tokenizer *t, int32_t id);
struct tokenizer_decoder *tokenizer_decoder_new(const struct tokenizer *t, int flags);
int tokenizer_decoder_push(struct tokenizer_decoder *d, int32_t id, struct strbuf *out);
int tokenizer_decoder_flush(struct tokenizer_decoder *d, struct strbuf *out);
void tokenizer_decoder_free(struct tokenizer_decoder *d);

#endif
