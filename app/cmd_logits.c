/* palaver logits: run a token sequence through the model and write its logits as float32. */
#include "commands.h"
#include "config.h"
#include "model.h"
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
	"  -t, --threads N    compute threads (default: online cores)\n"
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

int cmd_logits(int argc, char **argv, struct config *cfg)
{
	const char *model_path = cfg ? cfg->model : NULL, *tokens_arg = NULL, *out_path = NULL;
	int all = 0, threads = cfg ? cfg->threads : 0, ctx = 0;
	enum kv_type kvt = KV_F16;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *val = i + 1 < argc ? argv[i + 1] : NULL;
		long lv;
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			fputs(usage, stdout);
			return EXIT_OK;
		} else if (!strcmp(a, "--all")) {
			all = 1;
			continue;
		}
		if (!val) {
			fprintf(stderr,
				"palaver: logits: '%s' needs a value or is unknown (see 'palaver logits --help')\n",
				a);
			return EXIT_USAGE;
		}
		if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
			model_path = val;
		} else if (!strcmp(a, "--tokens")) {
			tokens_arg = val;
		} else if (!strcmp(a, "-o") || !strcmp(a, "--output")) {
			out_path = val;
		} else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
			if (parse_long(val, &lv) < 0 || lv < 1 || lv > 1024) {
				fprintf(stderr, "palaver: logits: invalid thread count '%s'\n",
					val);
				return EXIT_USAGE;
			}
			threads = (int)lv;
		} else if (!strcmp(a, "--ctx")) {
			if (parse_long(val, &lv) < 0 || lv < 1 || lv > (1L << 24)) {
				fprintf(stderr, "palaver: logits: invalid context length '%s'\n",
					val);
				return EXIT_USAGE;
			}
			ctx = (int)lv;
		} else if (!strcmp(a, "--kv-type")) {
			if (!strcmp(val, "f16"))
				kvt = KV_F16;
			else if (!strcmp(val, "f32"))
				kvt = KV_F32;
			else {
				fprintf(stderr, "palaver: logits: KV type '%s' is not f16 or f32\n",
					val);
				return EXIT_USAGE;
			}
		} else {
			fprintf(stderr,
				"palaver: logits: unknown option '%s' (see 'palaver logits --help')\n",
				a);
			return EXIT_USAGE;
		}
		i++;
	}
	if (model_path && !*model_path)
		model_path = NULL; /* -m '': no model */
	if (!model_path || !tokens_arg) {
		fprintf(stderr, "palaver: logits: %s is required (see 'palaver logits --help')\n",
			!model_path ? "-m FILE" : "--tokens");
		return EXIT_USAGE;
	}
	int32_t *ids = NULL;
	int n = 0;
	if (parse_tokens(tokens_arg, &ids, &n) < 0) {
		fprintf(stderr, "palaver: logits: %s\n", error_message());
		return EXIT_USAGE;
	}

	struct model_params mp;
	model_params_default(&mp);
	mp.n_threads = threads;
	mp.kv_type = kvt;
	mp.prefault = 0;
	mp.repack = cfg ? cfg->repack : 1;
	if (cfg)
		mp.backend = model_backend_named(config_backend_name(cfg->backend));
	/* the smallest context that holds the tokens, unless asked (then checked) */
	mp.n_ctx = ctx ? ctx : n;
	struct model *m = model_load(model_path, &mp);
	if (!m && !ctx && strstr(error_message(), "is larger than the model's")) {
		fprintf(stderr, "palaver: %d tokens do not fit: %s\n", n, error_message());
		free(ids);
		return EXIT_USAGE;
	}
	if (!m) {
		fprintf(stderr, "palaver: %s\n", error_message());
		free(ids);
		return EXIT_RUNTIME;
	}
	if (model_warning(m))
		fprintf(stderr, "palaver: warning: %s\n", model_warning(m));
	const struct model_info *in = model_info(m);
	int rc = EXIT_OK;
	for (int i = 0; i < n; i++)
		if (ids[i] < 0 || ids[i] >= in->n_vocab) {
			fprintf(stderr, "palaver: token id %d is out of range (vocabulary of %d)\n",
				ids[i], in->n_vocab);
			rc = EXIT_USAGE;
			goto out;
		}
	if (n > in->n_ctx) {
		fprintf(stderr, "palaver: %d tokens do not fit a context of %d\n", n, in->n_ctx);
		rc = EXIT_USAGE;
		goto out;
	}
	size_t rows = all ? (size_t)n : 1, cells;
	float *logits = NULL;
	if (size_mul(rows, (size_t)in->n_vocab, &cells) ||
	    !(logits = try_alloc_array(cells, sizeof(float)))) {
		fprintf(stderr, "palaver: cannot allocate %zu rows of logits\n", rows);
		rc = EXIT_RUNTIME;
		goto out;
	}
	if (model_forward(m, ids, n, 0, logits, all) < 0) {
		fprintf(stderr, "palaver: %s\n", error_message());
		rc = EXIT_RUNTIME;
	} else {
		FILE *f = stdout;
		if (out_path && strcmp(out_path, "-")) {
			f = fopen(out_path, "wb");
			if (!f) {
				fprintf(stderr, "palaver: cannot open '%s': %s\n", out_path,
					strerror(errno));
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
				fprintf(stderr, "palaver: cannot write '%s': %s\n",
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
