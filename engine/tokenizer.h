/* Tokenizer: text to token ids and back, built from a GGUF file's tokenizer.ggml.* metadata. */
#ifndef PALAVER_TOKENIZER_H
#define PALAVER_TOKENIZER_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "gguf.h"

struct strbuf;
struct tokenizer;

/*
 * Two vocabulary models, as llama.cpp reads them:
 *  - "llama": SentencePiece BPE.  Spaces become U+2581, a space is put in
 *    front of the text (add_space_prefix) and after every special token,
 *    pairs are merged by score, characters without a token fall back to
 *    <0xNN> byte tokens.
 *  - "gpt2": byte-level BPE.  The text is split by the pre-tokenizer that
 *    tokenizer.ggml.pre names (hand-written matchers equivalent to the
 *    regular expressions llama.cpp uses), each byte becomes a printable
 *    character, and pairs are merged by rank (tokenizer.ggml.merges).
 * Both merge with a priority queue: O(n log n) in the length of a word.
 *
 * A tokenizer is immutable once built: any number of threads may encode
 * and decode with it at once (each call has its own scratch memory; each
 * decoder object belongs to one thread).
 *
 * Special tokens: control (token_type 3) and unknown (2) tokens written in
 * the text become their ids only with TOKENIZE_PARSE_SPECIAL (used for text
 * rendered from a chat template, never for what a user typed).
 * User-defined tokens (4) are always matched as whole strings, as llama.cpp
 * and Hugging Face tokenizers do (they are ordinary added words, such as
 * runs of spaces in code vocabularies).
 */

enum tokenizer_kind {
	TOKENIZER_SPM, /* "llama" */
	TOKENIZER_BPE, /* "gpt2" */
};

/* Pre-tokenizers selectable by tokenizer.ggml.pre (names as llama.cpp). */
enum tokenizer_pre {
	TOKENIZER_PRE_DEFAULT, /* "default", or the key absent */
	TOKENIZER_PRE_GPT2,    /* gpt-2, phi-2, jina-*, roberta-bpe, ... */
	TOKENIZER_PRE_LLAMA3,  /* llama3, llama-v3, llama-bpe, falcon3, pixtral, dbrx, smaug-bpe */
	TOKENIZER_PRE_QWEN2,   /* qwen2, deepseek-r1-qwen, stablelm2, megrez */
	TOKENIZER_PRE_DEEPSEEK_LLM,   /* deepseek-llm */
	TOKENIZER_PRE_DEEPSEEK_CODER, /* deepseek-coder */
	TOKENIZER_PRE_MPT,            /* mpt, olmo, jais */
	TOKENIZER_PRE_STARCODER, /* starcoder, refact, smollm, command-r, codeshell, exaone, minerva-7b */
	TOKENIZER_PRE_FALCON, /* falcon */
};

/* Token types of tokenizer.ggml.token_type. */
enum token_type {
	TOKEN_TYPE_UNDEFINED = 0,
	TOKEN_TYPE_NORMAL = 1,
	TOKEN_TYPE_UNKNOWN = 2,
	TOKEN_TYPE_CONTROL = 3,
	TOKEN_TYPE_USER_DEFINED = 4,
	TOKEN_TYPE_UNUSED = 5,
	TOKEN_TYPE_BYTE = 6,
};

/*
 * Everything a tokenizer is built from, as plain arrays (what the GGUF
 * metadata holds).  tokenizer_open() fills one from a GGUF file; tests fill
 * one by hand.  The arrays are copied: they need not outlive the call.
 */
struct tokenizer_spec {
	const char *model; /* "llama" or "gpt2" */
	const char *pre;   /* tokenizer.ggml.pre; NULL = absent ("default") */
	int pre_fallback;  /* unknown pre: 1 = use gpt-2 rules, 0 = error */
	uint64_t n_tokens;
	const struct gguf_str *tokens; /* [n_tokens] token texts */
	const float *scores;           /* [n_tokens] or NULL (all 0) */
	const int32_t *types;          /* [n_tokens] enum token_type, or NULL (all normal) */
	uint64_t n_merges;
	const struct gguf_str *merges; /* [n_merges] "left right", rank = index; gpt2 only */
	/* Special ids: -1 = none; TOKENIZER_ID_DEFAULT = the model's default
	 * (llama: bos 1, eos 2, unk 0, as llama.cpp; gpt2: none, where
	 * llama.cpp would guess 11).  eot and eom, when not given, are found
	 * by their texts (<|eot_id|>, <|im_end|>, ... and <|eom_id|>). */
	int64_t bos, eos, eot, eom, unk, pad;
	/* Flags: -1 = the model's default (llama: add_bos 1, add_space_prefix 1;
	 * gpt2: add_bos 0 except the llama3 pre-tokenizer; add_eos 0). */
	int add_bos, add_eos, add_space_prefix;
	/* Building stops with "loading cancelled" soon after *cancel becomes
	 * non-zero (another thread's quit); NULL: never. */
	const atomic_int *cancel;
};
#define TOKENIZER_ID_DEFAULT (-2)
/* The longest token text accepted, in bytes: 16 times the longest in any
 * vocabulary seen (mpt's 1024 spaces); a longer one is an error naming it. */
#define TOKENIZER_MAX_TOKEN_BYTES 16384

/* An empty spec: every id and flag set to "the model's default". */
void tokenizer_spec_init(struct tokenizer_spec *spec);

/* Build from a spec; NULL after error().  Time and memory are linear in
 * the bytes of the tokens and merges. */
struct tokenizer *tokenizer_new(const struct tokenizer_spec *spec);

/*
 * Build from the tokenizer.ggml.* keys of an open GGUF file.  An unknown
 * tokenizer.ggml.pre is an error naming it, unless pre_fallback: then the
 * gpt-2 rules are used and tokenizer_pre_fell_back() says so (the caller
 * warns).  NULL after error() (missing keys, wrong types, unknown model).
 * The tokenizer does not keep references into the file.
 */
struct tokenizer *tokenizer_open(const struct gguf *g, int pre_fallback);
/* The same, stopping with "loading cancelled" once *cancel is set (see
 * tokenizer_spec.cancel). */
struct tokenizer *tokenizer_open_cancellable(const struct gguf *g, int pre_fallback,
					     const atomic_int *cancel);
void tokenizer_free(struct tokenizer *t);

enum tokenize_flags {
	TOKENIZE_ADD_BOS = 1 << 0,       /* prepend BOS if the vocabulary asks for it (add_bos) */
	TOKENIZE_ADD_EOS = 1 << 1,       /* append EOS if the vocabulary asks for it (add_eos) */
	TOKENIZE_PARSE_SPECIAL = 1 << 2, /* control tokens written in the text become ids */
};

/*
 * Tokenize text[0..len) (any bytes; not NUL-terminated).  Writes at most
 * max ids to out and returns the number of ids; when they do not fit,
 * returns the negative of the number needed (out holds the first max).
 * Returns INT32_MIN after error() (out of memory, more than INT32_MAX ids).
 */
int tokenizer_encode(const struct tokenizer *t, const char *text, size_t len, int flags,
		     int32_t *out, int max);

/*
 * Tokenize a prompt rendered by a chat template: control tokens are
 * recognised only inside ranges (sorted, disjoint [start, end) byte
 * offsets: the parts the template wrote), never in the rest (what users
 * typed), as if TOKENIZE_PARSE_SPECIAL applied to the template's own text
 * alone.  The text is otherwise tokenized as one piece, exactly as
 * tokenizer_encode does.  Returns as tokenizer_encode; INT32_MIN after
 * error() also for ranges out of order or past len.
 */
int tokenizer_encode_ranges(const struct tokenizer *t, const char *text, size_t len, int flags,
			    const size_t (*ranges)[2], size_t n_ranges, int32_t *out, int max);

/*
 * The words the pre-tokenizer cuts text[0..len) into before merging (gpt2
 * models; a llama model's text is one word): their end offsets in bytes
 * into ends, at most max.  Special tokens are not looked for.  Returns the
 * number of words, its negative when more than max, -1 after error().
 * For tests and diagnostics.
 */
int tokenizer_split(const struct tokenizer *t, const char *text, size_t len, size_t *ends, int max);

/*
 * The bytes token id stands for (NULL with *len 0 for an id out of range).
 * Normal tokens give their text (U+2581 as a space, or the byte-level
 * alphabet undone); byte tokens give their byte; control, unknown and
 * user-defined tokens give their text as written ("<|im_end|>").  The bytes
 * may be an incomplete UTF-8 sequence.  Valid until tokenizer_free().
 */
const char *tokenizer_piece(const struct tokenizer *t, int32_t id, size_t *len);
/* The token's text as stored in the vocabulary (NUL-terminated as well). */
const char *tokenizer_text(const struct tokenizer *t, int32_t id, size_t *len);
/* The id of a token whose vocabulary text is exactly s[0..n), or -1. */
int32_t tokenizer_find(const struct tokenizer *t, const char *s, size_t n);

int32_t tokenizer_n_vocab(const struct tokenizer *t);
enum tokenizer_kind tokenizer_kind(const struct tokenizer *t);
enum tokenizer_pre tokenizer_pre_type(const struct tokenizer *t);
const char *tokenizer_pre_name(const struct tokenizer *t); /* as given, or "default" */
int tokenizer_pre_fell_back(const struct tokenizer *t);    /* unknown pre, gpt-2 rules used */
int32_t tokenizer_bos(const struct tokenizer *t);          /* -1 when none */
int32_t tokenizer_eos(const struct tokenizer *t);
int32_t tokenizer_eot(const struct tokenizer *t);
int32_t tokenizer_pad(const struct tokenizer *t);
int32_t tokenizer_unk(const struct tokenizer *t);
int tokenizer_add_bos(const struct tokenizer *t);
int tokenizer_add_eos(const struct tokenizer *t);
enum token_type tokenizer_token_type(const struct tokenizer *t, int32_t id);
/* Control or unknown: rendered by the template, never typed. */
int tokenizer_is_control(const struct tokenizer *t, int32_t id);
/* End of generation: eos, eot, eom, and tokens written <|im_end|>,
 * <|eot_id|>, <end_of_turn>, <|end|>, <|endoftext|>, ... when present. */
int tokenizer_is_eog(const struct tokenizer *t, int32_t id);

/*
 * Streaming detokenizer: push ids as they are generated; the decoder
 * appends to out only complete UTF-8 characters, holding an incomplete
 * sequence until the next ids complete it.  Invalid bytes become U+FFFD
 * (one per maximal invalid subpart), never an error.  Control tokens add
 * nothing unless TOKENIZER_DECODE_SPECIAL.
 */
enum { TOKENIZER_DECODE_SPECIAL = 1 };
struct tokenizer_decoder;
struct tokenizer_decoder *tokenizer_decoder_new(const struct tokenizer *t, int flags);
/* Append the text that id completes; returns the bytes appended, or -1
 * after error() for an id out of range (nothing is appended). */
int tokenizer_decoder_push(struct tokenizer_decoder *d, int32_t id, struct strbuf *out);
/* End of stream: a held incomplete sequence becomes U+FFFD.  Returns the
 * bytes appended.  The decoder can be reused afterwards. */
int tokenizer_decoder_flush(struct tokenizer_decoder *d, struct strbuf *out);
void tokenizer_decoder_free(struct tokenizer_decoder *d);

#endif
