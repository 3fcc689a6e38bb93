/* tokenizer: llama.cpp parity on the reference vocabularies, merge rules, pre-tokenizer splits, special tokens, streaming decoder. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "gguf.h"
#include "gguf_write.h"
#include "json.h"
#include "report.h"
#include "strbuf.h"
#include "testutil.h"
#include "tokenizer.h"

/* ---- helpers ------------------------------------------------------------ */

#define MAXTOK 2048

/* An in-memory vocabulary built from C strings. */
struct vocab {
	struct gguf_str tok[MAXTOK];
	float score[MAXTOK];
	int32_t type[MAXTOK];
	int n;
	struct gguf_str merge[MAXTOK];
	int n_merges;
	char bytes_text[256][8]; /* storage for generated token texts */
};

static int vocab_add(struct vocab *v, const char *s, float score, int type)
{
	v->tok[v->n].data = s;
	v->tok[v->n].len = strlen(s);
	v->score[v->n] = score;
	v->type[v->n] = type;
	return v->n++;
}

static void vocab_merge(struct vocab *v, const char *s)
{
	v->merge[v->n_merges].data = s;
	v->merge[v->n_merges].len = strlen(s);
	v->n_merges++;
}

/* The 256 byte tokens of SentencePiece, <0x00>..<0xFF>. */
static void vocab_add_spm_bytes(struct vocab *v)
{
	for (int b = 0; b < 256; b++) {
		snprintf(v->bytes_text[b], sizeof(v->bytes_text[b]), "<0x%02X>", b);
		vocab_add(v, v->bytes_text[b], 0, TOKEN_TYPE_BYTE);
	}
}

/* The 256 characters of the GPT-2 byte alphabet. */
static void vocab_add_gpt2_bytes(struct vocab *v)
{
	for (int b = 0; b < 256; b++) {
		unsigned c = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE
				     ? (unsigned)b
			     : b <= 0x20 ? 0x100u + b
			     : b <= 0xA0 ? 0x100u + 33 + (b - 0x7Fu)
					 : 0x143u;
		char *p = v->bytes_text[b];
		if (c < 0x80) {
			p[0] = (char)c;
			p[1] = 0;
		} else {
			p[0] = (char)(0xC0 | (c >> 6));
			p[1] = (char)(0x80 | (c & 0x3F));
			p[2] = 0;
		}
		vocab_add(v, p, 0, TOKEN_TYPE_NORMAL);
	}
}

static struct tokenizer *vocab_build(const struct vocab *v, const char *model, const char *pre)
{
	struct tokenizer_spec spec;
	tokenizer_spec_init(&spec);
	spec.model = model;
	spec.pre = pre;
	spec.n_tokens = (uint64_t)v->n;
	spec.tokens = v->tok;
	spec.scores = v->score;
	spec.types = v->type;
	spec.n_merges = (uint64_t)v->n_merges;
	spec.merges = v->merge;
	return tokenizer_new(&spec);
}

/* Encode into a malloc'd array; *n gets the count. */
static int32_t *encode(const struct tokenizer *t, const char *s, size_t len, int flags, int *n)
{
	int need = tokenizer_encode(t, s, len, flags, NULL, 0);
	assert_true(need != INT32_MIN);
	need = -need;
	int32_t *ids = calloc((size_t)need + 1, sizeof(*ids));
	assert_non_null(ids);
	assert_int_equal(tokenizer_encode(t, s, len, flags, ids, need + 1), need);
	*n = need;
	return ids;
}

/* Decode ids with a streaming decoder, one id at a time. */
static void decode(const struct tokenizer *t, const int32_t *ids, int n, int flags,
		   struct strbuf *out)
{
	struct tokenizer_decoder *d = tokenizer_decoder_new(t, flags);
	for (int i = 0; i < n; i++)
		assert_true(tokenizer_decoder_push(d, ids[i], out) >= 0);
	tokenizer_decoder_flush(d, out);
	tokenizer_decoder_free(d);
}

/* The pieces of each token joined by '|' (for readable assertions). */
static void pieces(const struct tokenizer *t, const int32_t *ids, int n, struct strbuf *out)
{
	for (int i = 0; i < n; i++) {
		size_t len;
		const char *p = tokenizer_piece(t, ids[i], &len);
		if (i)
			strbuf_addch(out, '|');
		strbuf_add(out, p, len);
	}
}

/* The words tokenizer_split cuts s into, joined by '|'. */
static void split(const struct tokenizer *t, const char *s, struct strbuf *out)
{
	size_t ends[256];
	int n = tokenizer_split(t, s, strlen(s), ends, 256);
	assert_true(n >= 0);
	size_t start = 0;
	for (int i = 0; i < n; i++) {
		if (i)
			strbuf_addch(out, '|');
		strbuf_add(out, s + start, ends[i] - start);
		start = ends[i];
	}
	assert_int_equal(start, strlen(s));
}

/* ---- parity with llama.cpp on the reference vocabularies --------------- */

static const char *const ref_vocabs[] = {
	"llama-spm", "phi-3", "gpt-2", "deepseek-llm", "deepseek-coder", "mpt", "starcoder",
};

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int read_all(const char *path, struct strbuf *sb)
{
	strbuf_reset(sb);
	return strbuf_read_file(sb, path, (size_t)1 << 30);
}

static void test_parity_ref(void **state)
{
	(void)state;
	REQUIRE_REF();
	static const char sep[] = "\n__ggml_vocab_test__\n";
	struct strbuf inp = STRBUF_INIT, outp = STRBUF_INIT, dec = STRBUF_INIT;
	char path[4096];
	int total = 0;

	for (size_t v = 0; v < sizeof(ref_vocabs) / sizeof(ref_vocabs[0]); v++) {
		snprintf(path, sizeof(path), "%s/vocab/ggml-vocab-%s.gguf", test_ref_dir(),
			 ref_vocabs[v]);
		struct gguf *g = gguf_open(path);
		if (!g)
			fail_msg("%s", error_message());
		struct tokenizer *t = tokenizer_open(g, 0);
		if (!t)
			fail_msg("%s", error_message());
		gguf_close(g); /* the tokenizer keeps no reference into the file */

		char p2[4200];
		snprintf(p2, sizeof(p2), "%s.inp", path);
		assert_int_equal(read_all(p2, &inp), 0);
		snprintf(p2, sizeof(p2), "%s.out", path);
		assert_int_equal(read_all(p2, &outp), 0);

		const char *in = inp.buf, *in_end = inp.buf + inp.len;
		const char *out = outp.buf;
		int cases = 0;
		while (in < in_end) {
			const char *s = memmem(in, (size_t)(in_end - in), sep, sizeof(sep) - 1);
			assert_non_null(s);
			size_t len = (size_t)(s - in);
			const char *eol = strchr(out, '\n');
			assert_non_null(eol);

			int n;
			int32_t *ids = encode(t, in, len, 0, &n);
			/* expected: " 1 2 3" */
			const char *q = out;
			int k = 0;
			while (q < eol) {
				char *endp;
				long want = strtol(q, &endp, 10);
				if (endp == q)
					break;
				if (k >= n || ids[k] != want)
					fail_msg("%s case %d: token %d is %d, want %ld",
						 ref_vocabs[v], cases, k, k < n ? ids[k] : -1,
						 want);
				k++;
				q = endp;
			}
			if (k != n)
				fail_msg("%s case %d: %d tokens, want %d", ref_vocabs[v], cases, n,
					 k);

			/* and back: byte-level BPE is lossless; SPM adds the prefix space */
			strbuf_reset(&dec);
			decode(t, ids, n, 0, &dec);
			if (tokenizer_kind(t) == TOKENIZER_BPE) {
				assert_int_equal(dec.len, len);
				assert_memory_equal(dec.buf, in, len);
			} else if (len) {
				assert_int_equal(dec.len, len + 1);
				assert_memory_equal(dec.buf + 1, in, len);
			}
			free(ids);
			in = s + sizeof(sep) - 1;
			out = eol + 1;
			cases++;
		}
		assert_int_equal(cases, 46);
		total += cases;
		tokenizer_free(t);
	}
	assert_int_equal(total, 46 * 7);
	strbuf_release(&inp);
	strbuf_release(&outp);
	strbuf_release(&dec);
}

/* The case names (NAME of cases/NAME.json) in the reference data, sorted;
 * malloc'd, *n of them. */
static char **list_cases(size_t *n)
{
	char dir[4096];
	char **names = NULL;
	size_t alloc = 0;
	*n = 0;
	snprintf(dir, sizeof(dir), "%s/cases", test_ref_dir());
	DIR *d = opendir(dir);
	assert_non_null(d);
	for (struct dirent *e; (e = readdir(d));) {
		size_t l = strlen(e->d_name);
		if (l <= 5 || strcmp(e->d_name + l - 5, ".json"))
			continue;
		if (*n == alloc) {
			alloc = alloc ? 2 * alloc : 16;
			names = realloc(names, alloc * sizeof(*names));
			assert_non_null(names);
		}
		names[(*n)++] = strndup(e->d_name, l - 5);
	}
	closedir(d);
	qsort(names, *n, sizeof(*names), cmp_str);
	return names;
}

/* llama.cpp's reference cases: the prompt's tokens (with BOS) and the text
 * of the generated tokens, for every case in cases/ (SentencePiece and
 * byte-level BPE vocabularies; a clone's tests/data holds fewer). */
static void test_reference_cases(void **state)
{
	(void)state;
	REQUIRE_REF();
	size_t n_cases;
	char **cases = list_cases(&n_cases);
	assert_true(n_cases > 0);
	struct strbuf sb = STRBUF_INIT, dec = STRBUF_INIT, raw = STRBUF_INIT;
	for (size_t c = 0; c < n_cases; c++) {
		char path[4096];
		snprintf(path, sizeof(path), "%s/cases/%s.json", test_ref_dir(), cases[c]);
		assert_int_equal(read_all(path, &sb), 0);
		struct json *j = json_parse(sb.buf, sb.len);
		assert_non_null(j);
		const struct json *model = json_get(j, "model"), *prompt = json_get(j, "prompt");
		const struct json *ptoks = json_get(j, "prompt_tokens"),
				  *gtoks = json_get(j, "gen_tokens");
		assert_true(model && prompt && ptoks && gtoks);
		snprintf(path, sizeof(path), "%s/models/%s", test_ref_dir(), model->str);
		struct gguf *g = gguf_open(path);
		assert_non_null(g);
		struct tokenizer *t = tokenizer_open(g, 0);
		if (!t)
			fail_msg("%s", error_message());

		int n;
		int32_t *ids = encode(t, prompt->str, prompt->str_len, TOKENIZE_ADD_BOS, &n);
		if ((size_t)n != ptoks->n)
			fail_msg("%s: %d prompt tokens, want %zu", cases[c], n, ptoks->n);
		for (int i = 0; i < n; i++)
			if (ids[i] != (int32_t)ptoks->items[i].number)
				fail_msg("%s: prompt token %d is %d, want %d", cases[c], i, ids[i],
					 (int)ptoks->items[i].number);
		free(ids);

		/* the generated tokens' bytes, and their text through the decoder */
		strbuf_reset(&raw);
		strbuf_reset(&dec);
		struct tokenizer_decoder *d = tokenizer_decoder_new(t, 0);
		for (size_t i = 0; i < gtoks->n; i++) {
			int32_t id = (int32_t)gtoks->items[i].number;
			size_t len;
			const char *p = tokenizer_piece(t, id, &len);
			if (!tokenizer_is_control(t, id))
				strbuf_add(&raw, p, len);
			assert_true(tokenizer_decoder_push(d, id, &dec) >= 0);
		}
		tokenizer_decoder_flush(d, &dec);
		tokenizer_decoder_free(d);
		const struct json *text = json_get(j, "gen_text"),
				  *hex = json_get(j, "gen_bytes_hex");
		if (text) {
			assert_int_equal(raw.len, text->str_len);
			assert_memory_equal(raw.buf, text->str, raw.len);
			assert_int_equal(dec.len, text->str_len);
			assert_memory_equal(dec.buf, text->str, dec.len);
		} else {
			assert_non_null(hex);
			assert_int_equal(raw.len * 2, hex->str_len);
			for (size_t i = 0; i < raw.len; i++) {
				char h[3];
				snprintf(h, sizeof(h), "%02x", (unsigned char)raw.buf[i]);
				assert_memory_equal(h, hex->str + 2 * i, 2);
			}
		}
		tokenizer_free(t);
		gguf_close(g);
		json_free(j);
		free(cases[c]);
	}
	free(cases);
	strbuf_release(&sb);
	strbuf_release(&dec);
	strbuf_release(&raw);
}

static void test_stories260k(void **state)
{
	(void)state;
	REQUIRE_REF();
	struct gguf *g = gguf_open(test_ref_path("models/stories260K.gguf"));
	assert_non_null(g);
	struct tokenizer *t = tokenizer_open(g, 0);
	assert_non_null(t);
	static const int32_t want[] = { 1, 403, 407, 261, 378 };
	int n;
	int32_t *ids = encode(t, "Once upon a time", 16, TOKENIZE_ADD_BOS, &n);
	assert_int_equal(n, 5);
	assert_memory_equal(ids, want, sizeof(want));
	free(ids);
	ids = encode(t, "Once upon a time", 16, 0, &n);
	assert_int_equal(n, 4);
	assert_memory_equal(ids, want + 1, sizeof(want) - sizeof(want[0]));
	free(ids);
	assert_int_equal(tokenizer_kind(t), TOKENIZER_SPM);
	assert_int_equal(tokenizer_n_vocab(t), 512);
	assert_int_equal(tokenizer_bos(t), 1);
	assert_int_equal(tokenizer_eos(t), 2);
	assert_true(tokenizer_add_bos(t));
	assert_true(tokenizer_is_eog(t, 2));
	assert_false(tokenizer_is_eog(t, 1));
	assert_true(tokenizer_is_control(t, 1));
	assert_false(tokenizer_is_control(t, 403));

	/* a buffer too small: the negative of the size needed, the first ids filled */
	int32_t two[2] = { 0, 0 };
	assert_int_equal(tokenizer_encode(t, "Once upon a time", 16, TOKENIZE_ADD_BOS, two, 2), -5);
	assert_int_equal(two[0], 1);
	assert_int_equal(two[1], 403);
	tokenizer_free(t);
	gguf_close(g);
}

/* Files that are not usable: one clear error each. */
static void test_open_errors(void **state)
{
	(void)state;
	static struct vocab v;
	memset(&v, 0, sizeof(v));
	vocab_add(&v, "a", 0, TOKEN_TYPE_NORMAL);
	struct tokenizer *t = vocab_build(&v, "gpt2", "no-such-pre");
	assert_null(t);
	assert_non_null(strstr(error_message(), "unknown pre-tokenizer 'no-such-pre'"));
	t = vocab_build(&v, "bert", NULL);
	assert_null(t);
	assert_non_null(strstr(error_message(), "'bert'"));
	vocab_add(&v, "a", 0, TOKEN_TYPE_NORMAL);
	t = vocab_build(&v, "llama", NULL);
	assert_null(t);
	assert_non_null(strstr(error_message(), "duplicate token"));
}

/* GGUF files with a broken or unknown tokenizer: one error naming the file. */
static void write_vocab_gguf(const char *path, const char *pre, int with_model, int bad_scores)
{
	static struct vocab v;
	memset(&v, 0, sizeof(v));
	vocab_add_gpt2_bytes(&v);
	vocab_add(&v, "ab", 0, TOKEN_TYPE_NORMAL);
	vocab_merge(&v, "a b");
	struct gguf_writer *w = gguf_writer_new();
	assert_non_null(w);
	if (with_model)
		assert_int_equal(gguf_writer_add_str(w, "tokenizer.ggml.model", "gpt2", 4), 0);
	if (pre)
		assert_int_equal(gguf_writer_add_str(w, "tokenizer.ggml.pre", pre, strlen(pre)), 0);
	assert_int_equal(gguf_writer_add_arr_str(w, "tokenizer.ggml.tokens", v.tok, (uint64_t)v.n),
			 0);
	assert_int_equal(gguf_writer_add_arr_str(w, "tokenizer.ggml.merges", v.merge, 1), 0);
	if (bad_scores)
		assert_int_equal(
			gguf_writer_add_arr_str(w, "tokenizer.ggml.scores", v.tok, (uint64_t)v.n),
			0);
	else
		assert_int_equal(gguf_writer_add_arr(w, "tokenizer.ggml.token_type",
						     GGUF_TYPE_INT32, (uint64_t)v.n, v.type),
				 0);
	assert_int_equal(gguf_writer_begin(w, path), 0);
	assert_int_equal(gguf_writer_finish(w), 0);
	gguf_writer_free(w);
}

static void test_open_gguf_errors(void **state)
{
	(void)state;
	char path[] = "/tmp/palaver-vocab-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	close(fd);

	write_vocab_gguf(path, "brand-new-llm", 1, 0);
	struct gguf *g = gguf_open(path);
	assert_non_null(g);
	assert_null(tokenizer_open(g, 0));
	assert_non_null(strstr(error_message(), path));
	assert_non_null(strstr(error_message(), "unknown pre-tokenizer 'brand-new-llm'"));
	struct tokenizer *t = tokenizer_open(g, 1);
	assert_non_null(t);
	assert_true(tokenizer_pre_fell_back(t));
	assert_int_equal(tokenizer_n_vocab(t), 257);
	int32_t ids[4];
	assert_int_equal(tokenizer_encode(t, "ab", 2, TOKENIZE_ADD_BOS, ids, 4),
			 1); /* merged, no BOS */
	assert_int_equal(ids[0], 256);
	tokenizer_free(t);
	gguf_close(g);

	write_vocab_gguf(path, NULL, 0, 0);
	g = gguf_open(path);
	assert_non_null(g);
	assert_null(tokenizer_open(g, 0));
	assert_non_null(strstr(error_message(), "no tokenizer"));
	gguf_close(g);

	write_vocab_gguf(path, "gpt-2", 1, 1);
	g = gguf_open(path);
	assert_non_null(g);
	assert_null(tokenizer_open(g, 0));
	assert_non_null(strstr(error_message(), "tokenizer.ggml.scores"));
	gguf_close(g);
	unlink(path);
}

/* ---- SentencePiece on a small vocabulary -------------------------------- */

static void test_spm_rules(void **state)
{
	(void)state;
	static struct vocab v;
	memset(&v, 0, sizeof(v));
	vocab_add(&v, "<unk>", 0, TOKEN_TYPE_UNKNOWN);
	vocab_add(&v, "<s>", 0, TOKEN_TYPE_CONTROL);
	vocab_add(&v, "</s>", 0, TOKEN_TYPE_CONTROL);
	vocab_add_spm_bytes(&v);
	int sp = vocab_add(&v, "\xe2\x96\x81", -1, TOKEN_TYPE_NORMAL);
	int a = vocab_add(&v, "a", -2, TOKEN_TYPE_NORMAL);
	int b = vocab_add(&v, "b", -2, TOKEN_TYPE_NORMAL);
	int c = vocab_add(&v, "c", -2, TOKEN_TYPE_NORMAL);
	int ab = vocab_add(&v, "ab", -3, TOKEN_TYPE_NORMAL);
	int bc = vocab_add(&v, "bc", -1.5f, TOKEN_TYPE_NORMAL); /* scores higher than ab */
	int spa = vocab_add(&v,
			    "\xe2\x96\x81"
			    "a",
			    -4, TOKEN_TYPE_NORMAL);
	int spab = vocab_add(&v,
			     "\xe2\x96\x81"
			     "ab",
			     -5, TOKEN_TYPE_NORMAL);
	struct tokenizer *t = vocab_build(&v, "llama", NULL);
	assert_non_null(t);
	int n;
	int32_t *ids;

	/* "abc": b+c scores higher than a+b, so a|bc, after the prefix space:
	 * pairs ▁a(-4) ab(-3) bc(-1.5): bc first, then ▁a, leaving ▁a|bc */
	ids = encode(t, "abc", 3, 0, &n);
	assert_int_equal(n, 2);
	assert_int_equal(ids[0], spa);
	assert_int_equal(ids[1], bc);
	free(ids);

	/* "ab": ab(-3) before ▁a(-4), then ▁ab(-5) */
	ids = encode(t, "ab", 2, TOKENIZE_ADD_BOS, &n);
	assert_int_equal(n, 2);
	assert_int_equal(ids[0], 1);
	assert_int_equal(ids[1], spab);
	free(ids);

	/* a character without a token falls back to its UTF-8 bytes */
	ids = encode(t, "a\xc3\xa9", 3, 0, &n);
	assert_int_equal(n, 3);
	assert_int_equal(ids[0], spa);
	assert_int_equal(ids[1], 3 + 0xC3);
	assert_int_equal(ids[2], 3 + 0xA9);
	struct strbuf sb = STRBUF_INIT;
	decode(t, ids, n, 0, &sb);
	assert_string_equal(sb.buf, " a\xc3\xa9");
	free(ids);

	/* spaces: every space is U+2581; the prefix again after a special token */
	ids = encode(t, "a b</s>c", 8, TOKENIZE_PARSE_SPECIAL, &n);
	int32_t want[] = { spa, sp, b, 2, sp, c };
	assert_int_equal(n, 6);
	assert_memory_equal(ids, want, sizeof(want));
	free(ids);
	/* without PARSE_SPECIAL the control token is text */
	ids = encode(t, "</s>", 4, 0, &n);
	for (int i = 0; i < n; i++)
		assert_int_not_equal(ids[i], 2);
	strbuf_reset(&sb);
	decode(t, ids, n, 0, &sb);
	assert_string_equal(sb.buf, " </s>");
	free(ids);

	/* empty text: nothing, not even the prefix */
	assert_int_equal(tokenizer_encode(t, "", 0, 0, NULL, 0), 0);
	(void)a;
	(void)ab;
	strbuf_release(&sb);
	tokenizer_free(t);
}

/* ---- byte-level BPE on a small vocabulary ------------------------------- */

static struct tokenizer *small_bpe(struct vocab *v, const char *pre, int *ids_out)
{
	vocab_add_gpt2_bytes(v);
	/* merges by rank: "h e", "l l", "he ll", "hell o", "Ġ w" ... */
	ids_out[0] = vocab_add(v, "he", 0, TOKEN_TYPE_NORMAL);
	ids_out[1] = vocab_add(v, "ll", 0, TOKEN_TYPE_NORMAL);
	ids_out[2] = vocab_add(v, "hell", 0, TOKEN_TYPE_NORMAL);
	ids_out[3] = vocab_add(v, "hello", 0, TOKEN_TYPE_NORMAL);
	ids_out[4] = vocab_add(v, "\xc4\xa0w", 0, TOKEN_TYPE_NORMAL); /* Ġw */
	ids_out[5] = vocab_add(v, "<|im_start|>", 0, TOKEN_TYPE_CONTROL);
	ids_out[6] = vocab_add(v, "<|im_end|>", 0, TOKEN_TYPE_CONTROL);
	ids_out[7] = vocab_add(v, "<tool>", 0, TOKEN_TYPE_USER_DEFINED);
	ids_out[8] = vocab_add(v, "<|endoftext|>", 0, TOKEN_TYPE_CONTROL);
	ids_out[9] = vocab_add(v, "el", 0, TOKEN_TYPE_NORMAL);
	vocab_merge(v, "l l");
	vocab_merge(v, "h e");
	vocab_merge(v, "e l"); /* rank 2: loses to "h e" (rank 1) in "hell" */
	vocab_merge(v, "he ll");
	vocab_merge(v, "hell o");
	vocab_merge(v, "\xc4\xa0 w");
	return vocab_build(v, "gpt2", pre);
}

static void test_bpe_rules(void **state)
{
	(void)state;
	static struct vocab v;
	memset(&v, 0, sizeof(v));
	int id[10];
	struct tokenizer *t = small_bpe(&v, "gpt-2", id);
	assert_non_null(t);
	struct strbuf sb = STRBUF_INIT;
	int n;
	int32_t *ids = encode(t, "hello world", 11, 0, &n);
	pieces(t, ids, n, &sb);
	assert_string_equal(sb.buf, "hello| w|o|r|l|d");
	assert_int_equal(ids[0], id[3]);
	assert_int_equal(ids[1], id[4]);
	free(ids);

	/* "hel": h+e (rank 1) beats e+l (rank 2) */
	strbuf_reset(&sb);
	ids = encode(t, "hel", 3, 0, &n);
	pieces(t, ids, n, &sb);
	assert_string_equal(sb.buf, "he|l");
	free(ids);

	/* gpt2 models add no BOS unless asked, and eos/eot come from the texts */
	assert_false(tokenizer_add_bos(t));
	assert_int_equal(tokenizer_eot(t), id[6]);
	assert_true(tokenizer_is_eog(t, id[6]));
	assert_true(tokenizer_is_eog(t, id[8]));
	assert_false(tokenizer_is_eog(t, id[5]));

	/* invalid UTF-8 becomes U+FFFD before merging, as llama.cpp does */
	strbuf_reset(&sb);
	ids = encode(t, "a\xff", 2, 0, &n);
	decode(t, ids, n, 0, &sb);
	assert_string_equal(sb.buf, "a\xef\xbf\xbd");
	free(ids);
	strbuf_release(&sb);
	tokenizer_free(t);
}

/* Harmony (gpt-oss): with <|return|> and <|call|> in the vocabulary,
 * <|end|> closes a message and does not end the turn; they do. */
static void test_harmony_eog(void **state)
{
	(void)state;
	static struct vocab v;
	memset(&v, 0, sizeof(v));
	vocab_add_gpt2_bytes(&v);
	int end = vocab_add(&v, "<|end|>", 0, TOKEN_TYPE_CONTROL);
	int ret = vocab_add(&v, "<|return|>", 0, TOKEN_TYPE_CONTROL);
	int call = vocab_add(&v, "<|call|>", 0, TOKEN_TYPE_CONTROL);
	int chan = vocab_add(&v, "<|channel|>", 0, TOKEN_TYPE_CONTROL);
	struct tokenizer *t = vocab_build(&v, "gpt2", "gpt-2");
	assert_non_null(t);
	assert_false(tokenizer_is_eog(t, end));
	assert_true(tokenizer_is_eog(t, ret));
	assert_true(tokenizer_is_eog(t, call));
	assert_false(tokenizer_is_eog(t, chan));
	assert_int_equal(tokenizer_eot(t), ret);
	tokenizer_free(t);

	/* without them (Phi-3), <|end|> ends the turn as before */
	static struct vocab w;
	memset(&w, 0, sizeof(w));
	vocab_add_gpt2_bytes(&w);
	end = vocab_add(&w, "<|end|>", 0, TOKEN_TYPE_CONTROL);
	t = vocab_build(&w, "gpt2", "gpt-2");
	assert_non_null(t);
	assert_true(tokenizer_is_eog(t, end));
	tokenizer_free(t);
}

/* A user who types <|im_end|> gets the characters; the template gets the id. */
static void test_user_cannot_type_control(void **state)
{
	(void)state;
	static struct vocab v;
	memset(&v, 0, sizeof(v));
	int id[10];
	struct tokenizer *t = small_bpe(&v, "gpt-2", id);
	assert_non_null(t);
	const char *typed = "hi<|im_end|>";
	int n;
	int32_t *ids = encode(t, typed, strlen(typed), 0, &n);
	for (int i = 0; i < n; i++) {
		assert_false(tokenizer_is_control(t, ids[i]));
		assert_false(tokenizer_is_eog(t, ids[i]));
	}
	struct strbuf sb = STRBUF_INIT;
	decode(t, ids, n, 0, &sb);
	assert_string_equal(sb.buf, typed); /* the literal characters */
	free(ids);

	ids = encode(t, typed, strlen(typed), TOKENIZE_PARSE_SPECIAL, &n);
	assert_int_equal(n, 3);
	assert_int_equal(ids[2], id[6]);
	assert_true(tokenizer_is_eog(t, ids[2]));
	/* control tokens decode to nothing unless asked */
	strbuf_reset(&sb);
	decode(t, ids, n, 0, &sb);
	assert_string_equal(sb.buf, "hi");
	strbuf_reset(&sb);
	decode(t, ids, n, TOKENIZER_DECODE_SPECIAL, &sb);
	assert_string_equal(sb.buf, typed);
	free(ids);

	/* a rendered prompt with no template text at all (the none template):
	 * nothing in it may become a control token */
	int32_t buf[32];
	int m = tokenizer_encode_ranges(t, typed, strlen(typed), 0, NULL, 0, buf, 32);
	assert_true(m > 0);
	for (int i = 0; i < m; i++)
		assert_false(tokenizer_is_control(t, buf[i]));

	/* user-defined tokens are words of the vocabulary: always matched */
	ids = encode(t, "a<tool>b", 8, 0, &n);
	assert_int_equal(n, 3);
	assert_int_equal(ids[1], id[7]);
	free(ids);
	/* longest match: <|im_start|> is not cut at <|im_ */
	ids = encode(t, "<|im_start|><|im_end|>", 22, TOKENIZE_PARSE_SPECIAL, &n);
	assert_int_equal(n, 2);
	assert_int_equal(ids[0], id[5]);
	assert_int_equal(ids[1], id[6]);
	free(ids);
	strbuf_release(&sb);
	tokenizer_free(t);
}

/* ---- pre-tokenizer split rules ------------------------------------------ */

struct split_case {
	const char *pre;
	const char *text;
	const char *want; /* words joined by '|' */
};

static void test_split_rules(void **state)
{
	(void)state;
	static const struct split_case cases[] = {
		{ "gpt-2", "Hello world's  123 !!", "Hello| world|'s| | 123| !!" },
		{ "gpt-2", "a  \tb\n", "a|  |\t|b|\n" },
		{ "gpt-2", "I'M ok", "I|'|M| ok" }, /* case-sensitive contractions */
		{ "mpt", "x=1", "x|=|1" },
		{ "llama-bpe", "1234567 Hello\n\n  x", "123|456|7| Hello|\n\n| | x" },
		{ "llama-bpe", "I'M ok", "I|'M| ok" }, /* case-insensitive */
		{ "llama-bpe", "(hi)!!\n\nyo", "(hi|)!!\n\n|yo" },
		{ "qwen2", "abc 123\xe4\xb8\x96", "abc| |1|2|3|\xe4\xb8\x96" },
		{ "starcoder", "abc123 x", "abc|1|2|3| x" },
		{ "refact", "v2", "v|2" },
		{ "smollm", " 45", " |4|5" },
		{ "falcon", "a1234567,b", "a|123|456|7|,|b" },
		{ "default", "a1234567,b", "a|123|456|7|,|b" },
		{ "deepseek-coder",
		  "Hello, \xe4\xb8\x96\xe7\x95\x8c"
		  "123\n",
		  "Hello|,| |\xe4\xb8\x96\xe7\x95\x8c|1|2|3|\n" },
		{ "deepseek-llm", "Hello, \xe4\xb8\x96\xe7\x95\x8c 123  \n",
		  "Hello|,| |\xe4\xb8\x96\xe7\x95\x8c| |123|  |\n" },
		{ "deepseek-llm", "caf\xc3\xa9 \xd0\xbc\xd0\xb8\xd1\x80",
		  "caf|\xc3\xa9| \xd0\xbc\xd0\xb8\xd1\x80" },
	};
	struct strbuf sb = STRBUF_INIT;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		static struct vocab v;
		memset(&v, 0, sizeof(v));
		vocab_add_gpt2_bytes(&v);
		struct tokenizer *t = vocab_build(&v, "gpt2", cases[i].pre);
		assert_non_null(t);
		strbuf_reset(&sb);
		split(t, cases[i].text, &sb);
		if (strcmp(sb.buf, cases[i].want))
			fail_msg("%s: '%s' split as '%s', want '%s'", cases[i].pre, cases[i].text,
				 sb.buf, cases[i].want);
		tokenizer_free(t);
	}

	/* an unknown pre: an error naming it, or gpt-2 rules when asked */
	static struct vocab v;
	memset(&v, 0, sizeof(v));
	vocab_add_gpt2_bytes(&v);
	struct tokenizer_spec spec;
	tokenizer_spec_init(&spec);
	spec.model = "gpt2";
	spec.pre = "brand-new-llm";
	spec.n_tokens = (uint64_t)v.n;
	spec.tokens = v.tok;
	assert_null(tokenizer_new(&spec));
	assert_non_null(strstr(error_message(), "'brand-new-llm'"));
	spec.pre_fallback = 1;
	struct tokenizer *t = tokenizer_new(&spec);
	assert_non_null(t);
	assert_true(tokenizer_pre_fell_back(t));
	assert_int_equal(tokenizer_pre_type(t), TOKENIZER_PRE_GPT2);
	assert_string_equal(tokenizer_pre_name(t), "brand-new-llm");
	strbuf_reset(&sb);
	split(t, "Hello world", &sb);
	assert_string_equal(sb.buf, "Hello| world");
	tokenizer_free(t);
	strbuf_release(&sb);
}

/* ---- no quadratic behaviour --------------------------------------------- */

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* 100 kB of one letter is one word (BPE) or one region (SPM).  A quadratic
 * merge would take ~10^10 steps (minutes); the bound is generous (ASan,
 * a loaded machine) but far below that. */
static void check_long_run(const struct tokenizer *t, int spm_prefix)
{
	size_t len = 100000;
	char *s = malloc(len);
	assert_non_null(s);
	memset(s, 'a', len);
	double t0 = now_s();
	int n;
	int32_t *ids = encode(t, s, len, 0, &n);
	double dt = now_s() - t0;
	assert_true(n > 0);
	if (dt > 20.0)
		fail_msg("100 kB of 'a' took %.1f s", dt);
	struct strbuf sb = STRBUF_INIT;
	decode(t, ids, n, 0, &sb);
	assert_int_equal(sb.len, len + (size_t)spm_prefix);
	assert_memory_equal(sb.buf + spm_prefix, s, len);
	strbuf_release(&sb);
	free(ids);
	free(s);
}

static void test_long_run_memory(void **state)
{
	(void)state;
	/* runs of a: a, aa, aaaa, ... so that merges happen all along the word */
	static struct vocab v;
	memset(&v, 0, sizeof(v));
	static char runs[8][130];
	vocab_add(&v, "<unk>", 0, TOKEN_TYPE_UNKNOWN);
	vocab_add_spm_bytes(&v);
	vocab_add(&v, "\xe2\x96\x81", -1, TOKEN_TYPE_NORMAL);
	for (int k = 0; k < 8; k++) {
		memset(runs[k], 'a', (size_t)1 << k);
		runs[k][1 << k] = 0;
		vocab_add(&v, runs[k], (float)-k, TOKEN_TYPE_NORMAL);
	}
	struct tokenizer *t = vocab_build(&v, "llama", NULL);
	assert_non_null(t);
	check_long_run(t, 1);
	tokenizer_free(t);

	memset(&v, 0, sizeof(v));
	vocab_add_gpt2_bytes(&v);
	static char merges[8][300];
	for (int k = 1; k < 8; k++) {
		vocab_add(&v, runs[k], 0, TOKEN_TYPE_NORMAL);
		snprintf(merges[k], sizeof(merges[k]), "%s %s", runs[k - 1], runs[k - 1]);
		vocab_merge(&v, merges[k]);
	}
	t = vocab_build(&v, "gpt2", "gpt-2");
	assert_non_null(t);
	check_long_run(t, 0);
	tokenizer_free(t);
}

static void test_long_run_ref(void **state)
{
	(void)state;
	REQUIRE_REF();
	static const char *const names[] = { "llama-spm", "gpt-2" };
	for (int i = 0; i < 2; i++) {
		char path[4096];
		snprintf(path, sizeof(path), "%s/vocab/ggml-vocab-%s.gguf", test_ref_dir(),
			 names[i]);
		struct gguf *g = gguf_open(path);
		assert_non_null(g);
		struct tokenizer *t = tokenizer_open(g, 0);
		assert_non_null(t);
		check_long_run(t, i == 0);
		tokenizer_free(t);
		gguf_close(g);
	}
}

/* ---- hostile vocabularies (issue 16) ------------------------------------ */

/* n tokens of len bytes each, all different, in one malloc'd buffer. */
static struct gguf_str *long_tokens(int n, size_t len, char **buf)
{
	struct gguf_str *tok = calloc((size_t)n, sizeof(*tok));
	*buf = malloc((size_t)n * len);
	assert_true(tok && *buf);
	for (int i = 0; i < n; i++) {
		char *p = *buf + (size_t)i * len;
		memset(p, 'a' + i % 26, len);
		snprintf(p, 16, "%08d", i); /* distinct, and no prefix of another */
		p[8] = 'x';
		tok[i].data = p;
		tok[i].len = len;
	}
	return tok;
}

/* A token longer than TOKENIZER_MAX_TOKEN_BYTES is refused by name (a
 * 4 MiB one used to hang the load for good). */
static void test_absurd_token_length(void **state)
{
	(void)state;
	char *buf;
	struct gguf_str *tok = long_tokens(3, TOKENIZER_MAX_TOKEN_BYTES + 1, &buf);
	tok[0].len = tok[1].len = 8;
	for (int kind = 0; kind < 2; kind++) {
		struct tokenizer_spec spec;
		tokenizer_spec_init(&spec);
		spec.model = kind ? "gpt2" : "llama";
		spec.n_tokens = 3;
		spec.tokens = tok;
		error_clear();
		assert_null(tokenizer_new(&spec));
		if (!strstr(error_message(), "token 2 is 16385 bytes long (at most 16384)"))
			fail_msg("%s", error_message());
	}
	free(tok);
	free(buf);
}

/*
 * Loading is linear in the vocabulary's bytes: 1,024 tokens of the longest
 * length allowed (16 MiB) took minutes when every split of a token was
 * hashed anew, and take well under a second now.  The child gets 60 s: a
 * hang detector, not a speed claim.  A vocabulary of every run of 'a' up to
 * 600 (each splits into two tokens at every cut) checks the index itself.
 */
static int build_big(const char *model)
{
	char *buf;
	int n = 1024;
	struct gguf_str *tok = long_tokens(n, TOKENIZER_MAX_TOKEN_BYTES, &buf);
	struct tokenizer_spec spec;
	tokenizer_spec_init(&spec);
	spec.model = model;
	spec.n_tokens = (uint64_t)n;
	spec.tokens = tok;
	struct tokenizer *t = tokenizer_new(&spec);
	int ok = t && tokenizer_find(t, tok[n - 1].data, tok[n - 1].len) == n - 1;
	tokenizer_free(t);
	free(tok);
	free(buf);
	return ok ? 0 : 1;
}

static void test_vocab_linear(void **state)
{
	(void)state;
	for (int kind = 0; kind < 2; kind++) {
		pid_t pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			alarm(60);
			_exit(build_big(kind ? "gpt2" : "llama"));
		}
		int st;
		assert_int_equal(waitpid(pid, &st, 0), pid);
		if (!WIFEXITED(st) || WEXITSTATUS(st))
			fail_msg("%s: a 16 MiB vocabulary %s", kind ? "gpt2" : "llama",
				 WIFSIGNALED(st) ? "did not load within 60 s" : "failed to load");
	}

	/* a, aa, ..., a^600: a^k is the merge of a^i and a^(k-i) for every i */
	enum { RUN = 600 };
	static char runs[RUN];
	struct gguf_str *tok = calloc(RUN + 1, sizeof(*tok));
	float *score = calloc(RUN + 1, sizeof(*score));
	assert_true(tok && score);
	memset(runs, 'a', sizeof(runs));
	tok[0].data = "<unk>";
	tok[0].len = 5;
	for (int k = 1; k <= RUN; k++) {
		tok[k].data = runs;
		tok[k].len = (size_t)k;
		score[k] = (float)k; /* longer runs merge first */
	}
	struct tokenizer_spec spec;
	tokenizer_spec_init(&spec);
	spec.model = "llama";
	spec.add_space_prefix = 0;
	spec.n_tokens = RUN + 1;
	spec.tokens = tok;
	spec.scores = score;
	struct tokenizer *t = tokenizer_new(&spec);
	assert_non_null(t);
	int32_t ids[8];
	assert_int_equal(tokenizer_encode(t, runs, RUN, 0, ids, 8), 1);
	assert_int_equal(ids[0], RUN);
	assert_int_equal(tokenizer_encode(t, runs, 77, 0, ids, 8), 1);
	assert_int_equal(ids[0], 77);
	tokenizer_free(t);
	free(tok);
	free(score);
}

/* A cancel flag already set stops the build with "loading cancelled". */
static void test_build_cancelled(void **state)
{
	(void)state;
	char *buf;
	int n = 64;
	struct gguf_str *tok = long_tokens(n, 4096, &buf);
	atomic_int cancel;
	atomic_init(&cancel, 1);
	for (int kind = 0; kind < 2; kind++) {
		struct tokenizer_spec spec;
		tokenizer_spec_init(&spec);
		spec.model = kind ? "gpt2" : "llama";
		spec.n_tokens = (uint64_t)n;
		spec.tokens = tok;
		spec.cancel = &cancel;
		error_clear();
		assert_null(tokenizer_new(&spec));
		assert_string_equal(error_message(), "loading cancelled");
		atomic_store(&cancel, 0);
		struct tokenizer *t = tokenizer_new(&spec);
		assert_non_null(t);
		tokenizer_free(t);
		atomic_store(&cancel, 1);
	}
	free(tok);
	free(buf);
}

/* ---- streaming decoder -------------------------------------------------- */

static void test_decoder(void **state)
{
	(void)state;
	static struct vocab v;
	memset(&v, 0, sizeof(v));
	vocab_add(&v, "<unk>", 0, TOKEN_TYPE_UNKNOWN);
	vocab_add(&v, "<s>", 0, TOKEN_TYPE_CONTROL);
	vocab_add(&v, "</s>", 0, TOKEN_TYPE_CONTROL);
	vocab_add_spm_bytes(&v); /* byte b is id 3 + b */
	int hi = vocab_add(&v, "\xe2\x96\x81hi", 0, TOKEN_TYPE_NORMAL);
	struct tokenizer *t = vocab_build(&v, "llama", NULL);
	assert_non_null(t);
	struct tokenizer_decoder *d = tokenizer_decoder_new(t, 0);
	struct strbuf out = STRBUF_INIT;

	/* € = E2 82 AC arriving one byte token at a time */
	assert_int_equal(tokenizer_decoder_push(d, 3 + 0xE2, &out), 0);
	assert_int_equal(tokenizer_decoder_push(d, 3 + 0x82, &out), 0);
	assert_int_equal(out.len, 0);
	assert_int_equal(tokenizer_decoder_push(d, 3 + 0xAC, &out), 3);
	assert_string_equal(out.buf, "\xe2\x82\xac");

	/* a held prefix broken by a normal token: U+FFFD, then the token */
	strbuf_reset(&out);
	tokenizer_decoder_push(d, 3 + 0xE2, &out);
	tokenizer_decoder_push(d, hi, &out);
	assert_string_equal(out.buf, "\xef\xbf\xbd hi");

	/* invalid bytes: one U+FFFD each, never an error */
	strbuf_reset(&out);
	tokenizer_decoder_push(d, 3 + 0xFF, &out);
	tokenizer_decoder_push(d, 3 + 0x80, &out);
	tokenizer_decoder_push(d, 3 + 'A', &out);
	assert_string_equal(out.buf, "\xef\xbf\xbd\xef\xbf\xbd"
				     "A");

	/* 4-byte emoji split 1+3, surrogate encoding rejected */
	strbuf_reset(&out);
	tokenizer_decoder_push(d, 3 + 0xF0, &out);
	assert_int_equal(out.len, 0);
	tokenizer_decoder_push(d, 3 + 0x9F, &out);
	tokenizer_decoder_push(d, 3 + 0xA6, &out);
	tokenizer_decoder_push(d, 3 + 0x99, &out);
	assert_string_equal(out.buf, "\xf0\x9f\xa6\x99");
	strbuf_reset(&out);
	tokenizer_decoder_push(d, 3 + 0xED, &out);
	tokenizer_decoder_push(d, 3 + 0xA0, &out);
	tokenizer_decoder_push(d, 3 + 0x80, &out);
	assert_string_equal(out.buf, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");

	/* flush: an incomplete tail becomes U+FFFD; control tokens add nothing */
	strbuf_reset(&out);
	tokenizer_decoder_push(d, 3 + 0xC3, &out);
	tokenizer_decoder_push(d, 2, &out);
	assert_int_equal(out.len, 0);
	assert_int_equal(tokenizer_decoder_flush(d, &out), 3);
	assert_string_equal(out.buf, "\xef\xbf\xbd");
	assert_int_equal(tokenizer_decoder_flush(d, &out), 0);

	/* an id out of range is an error, nothing appended */
	strbuf_reset(&out);
	assert_int_equal(tokenizer_decoder_push(d, 100000, &out), -1);
	assert_int_equal(tokenizer_decoder_push(d, -1, &out), -1);
	assert_int_equal(out.len, 0);

	size_t len;
	assert_null(tokenizer_piece(t, -1, &len));
	assert_int_equal(len, 0);
	const char *p = tokenizer_piece(t, hi, &len);
	assert_int_equal(len, 3);
	assert_memory_equal(p, " hi", 3);
	p = tokenizer_text(t, hi, &len);
	assert_int_equal(len, 5);
	assert_int_equal(tokenizer_find(t, "\xe2\x96\x81hi", 5), hi);
	assert_int_equal(tokenizer_find(t, "nope", 4), -1);

	tokenizer_decoder_free(d);
	strbuf_release(&out);
	tokenizer_free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parity_ref),
		cmocka_unit_test(test_reference_cases),
		cmocka_unit_test(test_stories260k),
		cmocka_unit_test(test_open_errors),
		cmocka_unit_test(test_open_gguf_errors),
		cmocka_unit_test(test_spm_rules),
		cmocka_unit_test(test_bpe_rules),
		cmocka_unit_test(test_harmony_eog),
		cmocka_unit_test(test_user_cannot_type_control),
		cmocka_unit_test(test_split_rules),
		cmocka_unit_test(test_long_run_memory),
		cmocka_unit_test(test_long_run_ref),
		cmocka_unit_test(test_decoder),
		cmocka_unit_test(test_absurd_token_length),
		cmocka_unit_test(test_vocab_linear),
		cmocka_unit_test(test_build_cancelled),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
