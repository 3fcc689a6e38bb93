/* palaver logits: run a token sequence through the model and write its logits as float32. */
#include "commands.h"
#include "config.h"
#include "model.h"
#include "options.h"
#include "report.h"
#include "util.h"
#include "xalloc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
	"usage: palaver logits -m FILE --tokens \"ID ID ...\" [-o OUT.f32] [--all] [-t N]\n"
	"                      [--ctx N] [--kv-type f16|f32]\n"
	"\n"
	"Feed the token ids to the model and write the logits as little-endian\n"
	"float32, one row of n_vocab values per position: the last position only,\n"
	"or every position with --all.\n"
	"\n"
	"  -m, --model FILE   the GGUF model\n"
	"  --tokens LIST      token ids separated by spaces or commas\n"
	"  -o, --output FILE  write here instead of standard output\n"
	"  --all              one row per input token, not only the last\n"
	"  -t, --threads N    compute threads (0, the default: online cores)\n"
	"  --ctx N            context length (default: the number of tokens)\n"
	"  --kv-type TYPE     KV cache element type: f16 (default) or f32\n"
	"  -h, --help         show this help\n";

/* "1 403, 407" -> ids; -1 with error() on anything else. */
static int parse_tokens(const char *s, int32_t **out, int *n)
{
	int32_t *ids = NULL;
	size_t alloc = 0;
	int cnt = 0;
	const char *p = s;
	for (;;) {
		while (*p == ' ' || *p == ',' || *p == '\t' || *p == '\n')
			p++;
		if (!*p)
			break;
		char *end;
		errno = 0;
		long v = strtol(p, &end, 10);
		if (end == p || errno || v < INT32_MIN || v > INT32_MAX ||
		    (*end && *end != ' ' && *end != ',' && *end != '\t' && *end != '\n')) {
			free(ids);
			return error("'%s' is not a list of token ids", s);
		}
		ALLOC_GROW(ids, (size_t)cnt + 1, alloc);
		ids[cnt++] = (int32_t)v;
		p = end;
	}
	if (!cnt) {
		free(ids);
		return error("no token ids in '%s'", s);
	}
	*out = ids;
	*n = cnt;
	return 0;
}

static int write_all(FILE *f, const float *v, size_t n)
{
	/* little-endian on every platform palaver builds for (x86-64, aarch64) */
	return fwrite(v, sizeof(float), n, f) == n ? 0 : -1;
}

/* The context the model was trained for, from a load that reads no
 * weights; 0 when the file does not load at all. */
static int trained_context(const char *path)
{
	struct model_params mp;
	model_params_probe(&mp);
	struct model *m = model_load(path, &mp);
	int n = m ? model_info(m)->n_ctx_train : 0;
	model_free(m);
	error_clear();
	return n;
}

int cmd_logits(int argc, char **argv, struct config *cfg)
{
	static const char *const kv_types[] = { "f16", "f32", NULL };
	const char *model_path = cfg ? cfg->model : NULL, *tokens_arg = NULL, *out_path = NULL;
	int all = 0, threads = cfg ? cfg->threads : 0, ctx = 0, kvt = KV_F16;
	const struct opt_spec opts[] = {
		{ "--model", "-m", OPT_TEXT, &model_path, 0, 0, NULL },
		{ "--tokens", NULL, OPT_TEXT, &tokens_arg, 0, 0, NULL },
		{ "--output", "-o", OPT_TEXT, &out_path, 0, 0, NULL },
		{ "--all", NULL, OPT_FLAG, &all, 0, 0, NULL },
		{ "--threads", "-t", OPT_INT, &threads, 0, 1024, NULL }, /* 0: online cores */
		{ "--ctx", NULL, OPT_INT, &ctx, 1, 1L << 24, NULL },
		{ "--kv-type", NULL, OPT_CHOICE, &kvt, 0, 0, kv_types },
		{ NULL, NULL, 0, NULL, 0, 0, NULL },
	};
	int parsed =
		options_parse(argc, argv, opts, usage, "logits", "palaver logits --help", NULL);
	if (parsed)
		return parsed > 0 ? EXIT_OK : EXIT_USAGE;
	if (model_path && !*model_path)
		model_path = NULL; /* -m '': no model */
	if (!model_path || !tokens_arg) {
		return report_usage("logits: %s is required (see 'palaver logits --help')",
				    !model_path ? "-m FILE" : "--tokens");
	}
	int32_t *ids = NULL;
	int n = 0;
	if (parse_tokens(tokens_arg, &ids, &n) < 0) {
		return report_usage("logits: %s", error_message());
	}

	struct model_params mp;
	model_params_default(&mp);
	mp.n_threads = threads;
	mp.kv_type = (enum kv_type)kvt;
	mp.prefault = 0;
	mp.repack = cfg ? cfg->repack : 1;
	mp.n_batch = cfg ? cfg->batch_size : 0;
	if (cfg)
		mp.backend = model_backend_named(config_backend_name(cfg->backend));
	/* the smallest context that holds the tokens, unless asked (then checked) */
	mp.n_ctx = ctx ? ctx : n;
	struct model *m = model_load(model_path, &mp);
	if (!m) {
		/* more tokens than the model was trained for is the caller's
		 * mistake (exit 2); any other failure is the file's (exit 1) */
		char *why = error_take();
		int train = ctx ? 0 : trained_context(model_path);
		report("%s%s", train > 0 && n > train ? "the tokens do not fit: " : "", why);
		free(why);
		free(ids);
		return train > 0 && n > train ? EXIT_USAGE : EXIT_RUNTIME;
	}
	if (model_warning(m))
		fprintf(stderr, "palaver: warning: %s\n", model_warning(m));
	const struct model_info *in = model_info(m);
	int rc = EXIT_OK;
	for (int i = 0; i < n; i++)
		if (ids[i] < 0 || ids[i] >= in->n_vocab) {
			report("token id %d is out of range (vocabulary of %d)", ids[i],
			       in->n_vocab);
			rc = EXIT_USAGE;
			goto out;
		}
	if (n > in->n_ctx) {
		report("%d tokens do not fit a context of %d", n, in->n_ctx);
		rc = EXIT_USAGE;
		goto out;
	}
	size_t rows = all ? (size_t)n : 1, cells;
	float *logits = NULL;
	if (size_mul(rows, (size_t)in->n_vocab, &cells) ||
	    !(logits = try_alloc_array(cells, sizeof(float)))) {
		report("cannot allocate %zu rows of logits", rows);
		rc = EXIT_RUNTIME;
		goto out;
	}
	if (model_forward(m, ids, n, 0, logits, all) < 0) {
		report("%s", error_message());
		rc = EXIT_RUNTIME;
	} else {
		FILE *f = stdout;
		if (out_path && strcmp(out_path, "-")) {
			f = fopen(out_path, "wb");
			if (!f) {
				report("cannot open '%s': %s", out_path, strerror(errno));
				rc = EXIT_RUNTIME;
			}
		}
		if (f) {
			int bad = write_all(f, logits, cells) < 0;
			if (f != stdout)
				bad |= fclose(f) != 0;
			else
				bad |= fflush(f) != 0;
			if (bad) {
				report("cannot write '%s': %s",
				       out_path ? out_path : "standard output", strerror(errno));
				rc = EXIT_RUNTIME;
			}
		}
	}
	free(logits);
out:
	free(ids);
	model_free(m);
	return rc;
}
