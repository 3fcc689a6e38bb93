/* palaver bench --tokenizer: tokenizer throughput (MB/s) for each vocabulary family. */
#include "bench.h"
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
	uint64_t x = 0x9E3779B97F4A7C15ull;
	strbuf_grow(sb, size + 64);
	while (sb->len < size) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		strbuf_addstr(sb, words[x % (sizeof(words) / sizeof(words[0]))]);
		strbuf_addstr(sb, seps[(x >> 32) % (sizeof(seps) / sizeof(seps[0]))]);
	}
}

/* CPU time of this thread: less disturbed than wall time on a busy machine. */
static double cpu_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
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
		fprintf(stderr, "palaver: %s\n", error_message());
		goto out;
	}
	int n = tokenizer_encode(t, text->buf, text->len, 0, NULL, 0);
	if (n == INT32_MIN) {
		fprintf(stderr, "palaver: '%s': %s\n", path, error_message());
		goto out;
	}
	n = -n;
	int32_t *ids = try_alloc_array((size_t)n + 1, sizeof(*ids));
	if (!ids) {
		fprintf(stderr, "palaver: out of memory\n");
		goto out;
	}
	double best = 0, best_cpu = 0;
	for (int r = 0; r < repeat; r++) {
		double t0 = time_now_ms(), c0 = cpu_ms();
		int got = tokenizer_encode(t, text->buf, text->len, 0, ids, n + 1);
		double ms = time_now_ms() - t0, cms = cpu_ms() - c0;
		if (got != n) {
			fprintf(stderr, "palaver: '%s': token count changed between runs\n", path);
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
	const char *files[64];
	int n_files = 0, repeat = 3;
	const char *textfile = NULL;
	uint64_t size = 1000000;
	char **found = NULL;
	int n_found = 0;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "--tokenizer"))
			continue;
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			fputs(usage, stdout);
			return EXIT_OK;
		}
		if (i + 1 >= argc || (strcmp(a, "-m") && strcmp(a, "--model") && strcmp(a, "-f") &&
				      strcmp(a, "--size") && strcmp(a, "--repeat"))) {
			fprintf(stderr, "palaver: bench --tokenizer: bad option '%s'\n%s", a,
				usage);
			return EXIT_USAGE;
		}
		const char *v = argv[++i];
		long l;
		if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
			if (n_files == (int)(sizeof(files) / sizeof(files[0]))) {
				fprintf(stderr, "palaver: too many -m files\n");
				return EXIT_USAGE;
			}
			files[n_files++] = v;
		} else if (!strcmp(a, "-f")) {
			textfile = v;
		} else if (!strcmp(a, "--size")) {
			if (parse_size(v, &size) < 0 || size == 0 || size > ((uint64_t)1 << 30)) {
				fprintf(stderr, "palaver: bad --size '%s'\n", v);
				return EXIT_USAGE;
			}
		} else if (parse_long(v, &l) < 0 || l < 1 || l > 1000) {
			fprintf(stderr, "palaver: bad --repeat '%s'\n", v);
			return EXIT_USAGE;
		} else {
			repeat = (int)l;
		}
	}

	struct strbuf text = STRBUF_INIT;
	if (textfile) {
		if (strbuf_read_file(&text, textfile, READ_MAX_TEXT) < 0) {
			char why[64];
			fprintf(stderr, "palaver: cannot read '%s': %s\n", textfile,
				strbuf_read_failure(errno, READ_MAX_TEXT, why, sizeof(why)));
			return EXIT_RUNTIME;
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
		for (int i = 0; i < n_found && n_files < (int)(sizeof(files) / sizeof(files[0]));
		     i++)
			files[n_files++] = found[i];
		if (!n_files && cfg && cfg->model)
			files[n_files++] = cfg->model;
		if (!n_files) {
			fprintf(stderr, "palaver: no vocabulary found in '%s'; give -m FILE\n",
				dir.buf);
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
