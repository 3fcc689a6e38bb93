/* libFuzzer target for the tokenizer: arbitrary bytes through every vocabulary family, ids in range, decoding consistent. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "gguf.h"
#include "report.h"
#include "strbuf.h"
#include "tokenizer.h"

/*
 * The vocabularies: llama.cpp's test vocabularies (SentencePiece: llama-spm,
 * phi-3; byte-level BPE with each pre-tokenizer: gpt-2, deepseek-llm,
 * deepseek-coder, mpt, starcoder) and stories260K's, found where the tests
 * find reference data: $PALAVER_REF_DIR, ../shared/ref, build/testdata.
 */
static const char *const files[] = {
	"vocab/ggml-vocab-llama-spm.gguf",      "vocab/ggml-vocab-phi-3.gguf",
	"vocab/ggml-vocab-gpt-2.gguf",          "vocab/ggml-vocab-deepseek-llm.gguf",
	"vocab/ggml-vocab-deepseek-coder.gguf", "vocab/ggml-vocab-mpt.gguf",
	"vocab/ggml-vocab-starcoder.gguf",      "models/stories260K.gguf",
};
#define N_VOCAB (sizeof(files) / sizeof(files[0]))
static struct tokenizer *tok[N_VOCAB];
static int32_t *ids;
static int ids_cap;

static const char *ref_dir(void)
{
	static const char *const where[] = { "../shared/ref", "build/testdata", "../build/testdata",
					     "../../shared/ref" };
	struct stat st;
	const char *env = getenv("PALAVER_REF_DIR");
	if (env && *env)
		return env;
	for (size_t i = 0; i < sizeof(where) / sizeof(where[0]); i++)
		if (stat(where[i], &st) == 0 && S_ISDIR(st.st_mode))
			return where[i];
	return NULL;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	const char *dir = ref_dir();
	if (!dir) {
		fprintf(stderr, "fuzz_tokenizer: no reference data (set PALAVER_REF_DIR)\n");
		abort();
	}
	for (size_t i = 0; i < N_VOCAB; i++) {
		char path[4096];
		snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
		struct gguf *g = gguf_open(path);
		tok[i] = g ? tokenizer_open(g, 1) : NULL;
		if (!tok[i]) {
			fprintf(stderr, "fuzz_tokenizer: %s\n", error_message());
			abort();
		}
		gguf_close(g);
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* the first byte picks the flags, the rest is the text */
	int flags =
		size ? data[0] & (TOKENIZE_ADD_BOS | TOKENIZE_ADD_EOS | TOKENIZE_PARSE_SPECIAL) : 0;
	const char *text = size ? (const char *)data + 1 : "";
	size_t len = size ? size - 1 : 0;
	for (size_t v = 0; v < N_VOCAB; v++) {
		const struct tokenizer *t = tok[v];
		int n = tokenizer_encode(t, text, len, flags, ids, ids_cap);
		if (n == INT32_MIN)
			abort(); /* out of memory on a small input */
		if (n < 0) {
			ids_cap = -n + 64;
			ids = realloc(ids, sizeof(*ids) * (size_t)ids_cap);
			if (!ids)
				abort();
			n = tokenizer_encode(t, text, len, flags, ids, ids_cap);
			if (n < 0)
				abort();
		}
		/* every id is in the vocabulary, has a piece, and decodes */
		struct strbuf dec = STRBUF_INIT;
		struct tokenizer_decoder *d = tokenizer_decoder_new(t, 0);
		if (!d)
			abort();
		for (int i = 0; i < n; i++) {
			size_t pl;
			if (ids[i] < 0 || ids[i] >= tokenizer_n_vocab(t))
				abort();
			const char *p = tokenizer_piece(t, ids[i], &pl);
			if (!p && pl)
				abort();
			if (tokenizer_decoder_push(d, ids[i], &dec) < 0)
				abort();
		}
		tokenizer_decoder_flush(d, &dec);
		tokenizer_decoder_free(d);
		strbuf_release(&dec);
		if (tokenizer_kind(t) == TOKENIZER_BPE) {
			size_t ends[64];
			int w = tokenizer_split(t, text, len, ends, 64);
			if (w == -1 && !*error_message())
				abort();
		}
	}
	return 0;
}
