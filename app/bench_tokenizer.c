/* palaver bench --tokenizer: tokenizer throughput (MB/s) for each vocabulary family. */
#include "bench.h"
#include "options.h"
#include "config.h"
#include "gguf.h"
#include "report.h"
#include "strbuf.h"
#include "tokenizer.h"
#include "util.h"
#include "xalloc.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char usage[] =
	"usage: palaver bench --tokenizer [-m FILE]... [-f TEXT] [--size BYTES] [--repeat N]\n"
	"\n"
	"Tokenize a text (default: 1 MB of generated, deterministic mixed-language\n"
	"text) with each model's tokenizer and report MB/s, by wall-clock time and\n"
	"by the thread's CPU time (steadier on a busy machine).  Without -m, every\n"
	"vocabulary in $PALAVER_REF_DIR/vocab (default ../shared/ref/vocab).\n";

/* Deterministic text: English prose, numbers, code, accented Latin,
 * Cyrillic, Greek, CJK, Hangul, emoji, runs of spaces and newlines. */
static void make_text(struct strbuf *sb, size_t size)
{
	/* clang-format off */
	static const char *const words[] = {
		"the", "of", "and", "to", "in", "a", "is", "that", "for", "it", "as", "was", "with",
		"be", "by", "on", "not", "he", "I", "this", "are", "or", "his", "from", "at", "which",
		"but", "have", "an", "had", "they", "you", "were", "their", "one", "all", "we", "can",
		"tokenizer", "Hello", "World", "don't", "we'll", "it's", "they're", "I've", "London",
		"café", "naïve", "Führer", "élève", "mañana", "Ærøskøbing",
		"привет", "мир", "Москва", "ελληνικά", "λόγος", "日本語", "中文字符", "東京",
		"한국어", "안녕하세요", "العربية", "हिन्दी", "ภาษาไทย", "🦙", "🚀", "😀👍",
		"3.14159", "2024", "1,000,000", "0x1F600", "42", "-7", "1e-9",
		"printf(\"%d\\n\", x);", "for (int i = 0; i < n; i++)", "{ return a->b; }",
		"#include <stdio.h>", "def f(x): return x**2", "<div class=\"x\">", "$HOME/.config",
		"...", "!!", "?", "—", "“quoted”", "(parenthesis)", "[1]", "a+b=c", "~/tmp",
	};
	static const char *const seps[] = {
		" ", " ", " ", " ", " ", ", ", ". ", "\n", "  ", "\t", "\n\n", "    ",
	};
	/* clang-format on */
	const struct bench_words w = { words, sizeof(words) / sizeof(words[0]), seps,
				       sizeof(seps) / sizeof(seps[0]), 0 };
	uint64_t x = 0x9E3779B97F4A7C15ull;
	strbuf_grow(sb, size + 64);
	bench_text(sb, &w, (size_t)-1, size, &x);
}

/* One vocabulary: best of `repeat` runs.  0, or -1 with a message printed. */
static int bench_one(const char *path, const struct strbuf *text, int repeat)
{
	double l0 = time_now_ms();
	struct gguf *g = gguf_open(path);
	struct tokenizer *t = g ? tokenizer_open(g, 1) : NULL;
	double load = time_now_ms() - l0; /* opening the file and indexing the vocabulary */
	int ret = -1;
	if (!t) {
		report("%s", error_message());
		goto out;
	}
	int n = tokenizer_encode(t, text->buf, text->len, 0, NULL, 0);
	if (n == INT32_MIN) {
		report("'%s': %s", path, error_message());
		goto out;
	}
	n = -n;
	int32_t *ids = try_alloc_array((size_t)n + 1, sizeof(*ids));
	if (!ids) {
		report("out of memory");
		goto out;
	}
	double best = 0, best_cpu = 0;
	for (int r = 0; r < repeat; r++) {
		double t0 = time_now_ms(), c0 = bench_cpu_ms(0);
		int got = tokenizer_encode(t, text->buf, text->len, 0, ids, n + 1);
		double ms = time_now_ms() - t0, cms = bench_cpu_ms(0) - c0;
		if (got != n) {
			report("'%s': token count changed between runs", path);
			free(ids);
			goto out;
		}
		if (r == 0 || ms < best)
			best = ms;
		if (r == 0 || cms < best_cpu)
			best_cpu = cms;
	}
	free(ids);
	const char *base = strrchr(path, '/');
	base = base ? base + 1 : path;
	printf("%-32s %-4s %-15s %7d %8.1f %8d %6.2f %8.1f %8.2f %8.1f %8.2f\n", base,
	       tokenizer_kind(t) == TOKENIZER_SPM ? "spm" : "bpe", tokenizer_pre_name(t),
	       (int)tokenizer_n_vocab(t), load, n, (double)text->len / (n ? n : 1), best,
	       best > 0 ? text->len / 1e6 / (best / 1e3) : 0.0, best_cpu,
	       best_cpu > 0 ? text->len / 1e6 / (best_cpu / 1e3) : 0.0);
	ret = 0;
out:
	tokenizer_free(t);
	if (g)
		gguf_close(g);
	return ret;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int bench_tokenizer(int argc, char **argv, struct config *cfg)
{
	struct opt_list models = { { NULL }, 0 };
	int repeat = 3;
	const char *textfile = NULL;
	uint64_t size = 1000000;
	char **found = NULL;
	int n_found = 0;
	const struct opt_spec opts[] = {
		{ "--tokenizer", NULL, OPT_FLAG, NULL, 0, 0, NULL },
		{ "--model", "-m", OPT_LIST, &models, 0, 0, NULL },
		{ "-f", NULL, OPT_TEXT, &textfile, 0, 0, NULL },
		{ "--size", NULL, OPT_SIZE, &size, 1, 1L << 30, NULL },
		{ "--repeat", NULL, OPT_INT, &repeat, 1, 1000, NULL },
		{ NULL, NULL, 0, NULL, 0, 0, NULL },
	};
	int parsed = options_parse(argc, argv, opts, usage, "bench",
				   "palaver bench --tokenizer --help", NULL);
	if (parsed)
		return parsed > 0 ? EXIT_OK : EXIT_USAGE;
	const char **files = models.items;
	int n_files = models.n;

	struct strbuf text = STRBUF_INIT;
	if (textfile) {
		if (strbuf_read_file(&text, textfile, READ_MAX_TEXT) < 0) {
			char why[64];
			return report_runtime(
				"cannot read '%s': %s", textfile,
				strbuf_read_failure(errno, READ_MAX_TEXT, why, sizeof(why)));
		}
	} else {
		make_text(&text, (size_t)size);
	}

	if (!n_files) {
		const char *ref = getenv("PALAVER_REF_DIR");
		struct strbuf dir = STRBUF_INIT;
		strbuf_addf(&dir, "%s/vocab", ref && *ref ? ref : "../shared/ref");
		DIR *d = opendir(dir.buf);
		struct dirent *de;
		while (d && (de = readdir(d))) {
			size_t l = strlen(de->d_name);
			if (l < 5 || strcmp(de->d_name + l - 5, ".gguf"))
				continue;
			found = xrealloc_array(found, (size_t)n_found + 1, sizeof(*found));
			struct strbuf p = STRBUF_INIT;
			strbuf_addf(&p, "%s/%s", dir.buf, de->d_name);
			found[n_found++] = strbuf_detach(&p, NULL);
		}
		if (d)
			closedir(d);
		qsort(found, (size_t)n_found, sizeof(*found), cmp_str);
		for (int i = 0; i < n_found && n_files < OPT_LIST_MAX; i++)
			files[n_files++] = found[i];
		if (!n_files && cfg && cfg->model)
			files[n_files++] = cfg->model;
		if (!n_files) {
			report("no vocabulary found in '%s'; give -m FILE", dir.buf);
			strbuf_release(&dir);
			strbuf_release(&text);
			return EXIT_USAGE;
		}
		strbuf_release(&dir);
	}

	printf("text: %zu bytes%s%s, best of %d\n", text.len, textfile ? " from " : " generated",
	       textfile ? textfile : "", repeat);
	printf("%-32s %-4s %-15s %7s %8s %8s %6s %8s %8s %8s %8s\n", "vocabulary", "kind", "pre",
	       "vocab", "load ms", "tokens", "B/tok", "wall ms", "MB/s", "cpu ms", "cpu MB/s");
	int ret = EXIT_OK;
	for (int i = 0; i < n_files; i++)
		if (bench_one(files[i], &text, repeat) < 0)
			ret = EXIT_RUNTIME;
	for (int i = 0; i < n_found; i++)
		free(found[i]);
	free(found);
	strbuf_release(&text);
	return ret;
}
