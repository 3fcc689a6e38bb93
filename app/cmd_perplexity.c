/* palaver perplexity: llama.cpp-style perplexity of a model on a text file. */
#include "commands.h"
#include "config.h"
#include "model.h"
#include "options.h"
#include "report.h"
#include "strbuf.h"
#include "tokenizer.h"
#include "util.h"
#include "xalloc.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * The text is tokenized once (with BOS when the vocabulary asks for it) and
 * cut into consecutive windows of --ctx tokens.  Each window is evaluated
 * from an empty cache with its first token replaced by BOS, and only its
 * second half is scored: token j+1 given tokens 0..j for j from ctx/2 to
 * ctx-2, so every scored token sees at least half a window of context.
 * This is llama.cpp's perplexity, so the figures compare.
 */

static const char usage[] =
	"usage: palaver perplexity -m FILE -f TEXT [--ctx N] [-t N] [--chunks N]\n"
	"\n"
	"Perplexity of the model on a text: windows of N tokens (default 512),\n"
	"each scoring its second half; prints the running value per window and\n"
	"the final estimate with its standard error.\n"
	"\n"
	"  -m, --model FILE   the GGUF model\n"
	"  -f, --file TEXT    the text file\n"
	"  --ctx N            window length in tokens (default 512)\n"
	"  --chunks N         evaluate at most N windows (default: all)\n"
	"  -t, --threads N    compute threads (0, the default: online cores)\n"
	"  -h, --help         show this help\n";

#define SCORE_BATCH 64 /* rows of logits computed at once in the scored half */

/* -log softmax(row)[target], in double. */
static double nll_of(const float *row, int n, int32_t target)
{
	float mx = row[0];
	for (int i = 1; i < n; i++)
		if (row[i] > mx)
			mx = row[i];
	double s = exp((double)row[0] - mx); /* n >= 1: s > 0 */
	for (int i = 1; i < n; i++)
		s += exp((double)row[i] - mx);
	return log(s) - ((double)row[target] - mx);
}

int cmd_perplexity(int argc, char **argv, struct config *cfg)
{
	const char *model_path = cfg ? cfg->model : NULL, *text_path = NULL;
	int ctx = 512, threads = cfg ? cfg->threads : 0, max_chunks = 0;
	const struct opt_spec opts[] = {
		{ "--model", "-m", OPT_TEXT, &model_path, 0, 0, NULL },
		{ "--file", "-f", OPT_TEXT, &text_path, 0, 0, NULL },
		{ "--ctx", "-c", OPT_INT, &ctx, 4, 1L << 24, NULL },
		{ "--chunks", NULL, OPT_INT, &max_chunks, 1, 1L << 30, NULL },
		{ "--threads", "-t", OPT_INT, &threads, 0, 1024, NULL }, /* 0: online cores */
		{ NULL, NULL, 0, NULL, 0, 0, NULL },
	};
	int parsed = options_parse(argc, argv, opts, usage, "perplexity",
				   "palaver perplexity --help", NULL);
	if (parsed)
		return parsed > 0 ? EXIT_OK : EXIT_USAGE;
	if (model_path && !*model_path)
		model_path = NULL; /* -m '': no model */
	if (!model_path || !text_path) {
		return report_usage("perplexity: %s is required (see 'palaver perplexity --help')",
				    !model_path ? "-m FILE" : "-f TEXT");
	}
	struct strbuf text = STRBUF_INIT;
	if (strbuf_read_file(&text, text_path, READ_MAX_TEXT) < 0) {
		char why[64];
		return report_runtime("cannot read '%s': %s", text_path,
				      strbuf_read_failure(errno, READ_MAX_TEXT, why, sizeof(why)));
	}

	struct model_params mp;
	model_params_default(&mp);
	mp.n_ctx = ctx;
	mp.n_threads = threads;
	mp.repack = cfg ? cfg->repack : 1;
	mp.n_batch = cfg ? cfg->batch_size : 0;
	if (cfg)
		mp.backend = model_backend_named(config_backend_name(cfg->backend));
	struct model *m = model_load(model_path, &mp);
	if (!m) {
		report("%s", error_message());
		strbuf_release(&text);
		return EXIT_RUNTIME;
	}
	if (model_warning(m))
		fprintf(stderr, "palaver: warning: %s\n", model_warning(m));
	int rc = EXIT_RUNTIME;
	int32_t *toks = NULL;
	float *logits = NULL;
	struct tokenizer *tk = tokenizer_open(model_gguf(m), 0);
	if (!tk) {
		report("%s", error_message());
		goto out;
	}
	const struct model_info *in = model_info(m);
	if (tokenizer_n_vocab(tk) > in->n_vocab) {
		report("'%s': the vocabulary (%d) is larger than the output (%d)", model_path,
		       tokenizer_n_vocab(tk), in->n_vocab);
		goto out;
	}
	if (text.len > (size_t)INT32_MAX) {
		report("'%s' is too large", text_path);
		goto out;
	}
	int need = tokenizer_encode(tk, text.buf, text.len, TOKENIZE_ADD_BOS, NULL, 0);
	if (need == INT32_MIN) {
		report("%s", error_message());
		goto out;
	}
	int n_tok = need < 0 ? -need : need;
	toks = try_alloc_array((size_t)n_tok + 1, sizeof(int32_t));
	logits = try_alloc_array((size_t)SCORE_BATCH * in->n_vocab, sizeof(float));
	if (!toks || !logits) {
		report("out of memory for %d tokens", n_tok);
		goto out;
	}
	n_tok = tokenizer_encode(tk, text.buf, text.len, TOKENIZE_ADD_BOS, toks, n_tok + 1);
	if (n_tok < 0) {
		report("%s", error_message());
		goto out;
	}
	int n_chunks = n_tok / ctx;
	if (n_chunks == 0) {
		report("'%s' has %d tokens, fewer than one window of %d; use a longer text or a smaller --ctx",
		       text_path, n_tok, ctx);
		rc = EXIT_USAGE;
		goto out;
	}
	if (max_chunks && n_chunks > max_chunks)
		n_chunks = max_chunks;
	int32_t bos = tokenizer_bos(tk);
	int add_bos = tokenizer_add_bos(tk) && bos >= 0;
	fprintf(stderr, "perplexity: %d tokens, %d windows of %d, scoring %d tokens each\n", n_tok,
		n_chunks, ctx, ctx - 1 - ctx / 2);

	double nll = 0, nll2 = 0;
	long count = 0;
	double t0 = time_now_ms();
	int first = ctx / 2;
	for (int c = 0; c < n_chunks; c++) {
		int32_t *w = toks + (size_t)c * ctx;
		int32_t saved = w[0];
		if (add_bos)
			w[0] = bos;
		int ok =
			model_kv_truncate(m, 0) == 0 && model_forward(m, w, first, 0, NULL, 0) == 0;
		/* the scored half, SCORE_BATCH rows of logits at a time */
		for (int j = first; ok && j < ctx - 1; j += SCORE_BATCH) {
			int nb = ctx - 1 - j < SCORE_BATCH ? ctx - 1 - j : SCORE_BATCH;
			if (model_forward(m, w + j, nb, j, logits, 1) < 0) {
				ok = 0;
				break;
			}
			for (int r = 0; r < nb; r++) {
				double v = nll_of(logits + (size_t)r * in->n_vocab, in->n_vocab,
						  w[j + r + 1]);
				nll += v;
				nll2 += v * v;
				count++;
			}
		}
		w[0] = saved;
		if (!ok) {
			fprintf(stderr, "\npalaver: %s\n", error_message());
			goto out;
		}
		printf("[%d]%.4f%s", c + 1, exp(nll / (double)count),
		       c + 1 < n_chunks ? "," : "\n");
		fflush(stdout);
		if (c == 0)
			fprintf(stderr, "perplexity: %.2f s per window\n",
				(time_now_ms() - t0) / 1000);
	}
	double mean = nll / (double)count, var = nll2 / (double)count - mean * mean;
	double err = count > 1 && var > 0 ? sqrt(var / (double)(count - 1)) : 0;
	double ppl = exp(mean);
	printf("Final estimate: PPL = %.4f +/- %.5f\n", ppl, ppl * err);
	rc = EXIT_OK;
out:
	free(toks);
	free(logits);
	tokenizer_free(tk);
	model_free(m);
	strbuf_release(&text);
	return rc;
}
