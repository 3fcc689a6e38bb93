/* palaver tokenize: print the token ids (and pieces) a model's tokenizer gives for a text. */
#include "commands.h"
#include "config.h"
#include "gguf.h"
#include "options.h"
#include "report.h"
#include "untrusted.h"
#include "strbuf.h"
#include "tokenizer.h"
#include "xalloc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char usage[] =
	"usage: palaver tokenize [-m FILE] [--ids] [--no-bos] [--special] [--pre-fallback]\n"
	"                        [TEXT | -f FILE]\n"
	"\n"
	"Tokenize TEXT, the file FILE, or standard input (read byte for byte,\n"
	"nothing trimmed) with the tokenizer of the GGUF model FILE (default: the\n"
	"configured model).  Prints one token per line, id and piece, as\n"
	"llama-tokenize does.\n"
	"\n"
	"  -m, --model FILE   the GGUF file whose tokenizer to use\n"
	"  -f, --file FILE    read the text from FILE ('-' for standard input)\n"
	"      --ids          print only the ids, on one line, separated by spaces\n"
	"      --no-bos       do not add the BOS (or EOS) token the model asks for\n"
	"      --special      turn control tokens written in the text (<|im_end|>)\n"
	"                     into their ids; without it they are plain text\n"
	"      --pre-fallback use gpt-2 splitting rules for an unknown\n"
	"                     tokenizer.ggml.pre instead of failing\n"
	"  -h, --help         show this help\n";

int cmd_tokenize(int argc, char **argv, struct config *cfg)
{
	const char *model = NULL, *file = NULL, *text = NULL;
	int ids_only = 0, no_bos = 0, special = 0, pre_fallback = 0;
	int i, more;

	for (i = 1; (more = options_next(argc, argv, &i, usage)) > 0; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "-m") || !strcmp(a, "--model") || !strcmp(a, "-f") ||
		    !strcmp(a, "--file")) {
			if (i + 1 >= argc) {
				return report_usage_with(usage, "'%s' needs an argument", a);
			}
			if (a[1] == 'm' || a[2] == 'm')
				model = argv[++i];
			else
				file = argv[++i];
		} else if (!strcmp(a, "--ids")) {
			ids_only = 1;
		} else if (!strcmp(a, "--no-bos")) {
			no_bos = 1;
		} else if (!strcmp(a, "--special")) {
			special = 1;
		} else if (!strcmp(a, "--pre-fallback")) {
			pre_fallback = 1;
		} else {
			return report_usage_with(usage, "unknown option '%s'", a);
		}
	}
	if (more < 0)
		return EXIT_OK;
	if (i < argc)
		text = argv[i++];
	if (i < argc || (text && file)) {
		return report_usage_with(usage, "give one TEXT, or -f FILE, not both");
	}
	if (!model)
		model = cfg ? cfg->model : NULL;
	if (!model) {
		return report_usage("no model: give -m FILE or set 'model' in the configuration");
	}

	struct strbuf in = STRBUF_INIT;
	if (text) {
		strbuf_addstr(&in, text);
	} else if (file && strcmp(file, "-")) {
		if (strbuf_read_file(&in, file, READ_MAX_TEXT) < 0) {
			char why[64];
			report("cannot read '%s': %s", file,
			       strbuf_read_failure(errno, READ_MAX_TEXT, why, sizeof(why)));
			strbuf_release(&in);
			return EXIT_RUNTIME;
		}
	} else if (strbuf_read_fd(&in, STDIN_FILENO, READ_MAX_TEXT) < 0) {
		char why[64];
		report("cannot read standard input: %s",
		       strbuf_read_failure(errno, READ_MAX_TEXT, why, sizeof(why)));
		strbuf_release(&in);
		return EXIT_RUNTIME;
	}

	int ret = EXIT_RUNTIME;
	struct gguf *g = gguf_open(model);
	struct tokenizer *t = g ? tokenizer_open(g, pre_fallback) : NULL;
	if (!t) {
		report("%s", error_message());
		goto out;
	}
	if (tokenizer_pre_fell_back(t))
		warning("'%s': unknown pre-tokenizer '%s', using gpt-2 rules", model,
			tokenizer_pre_name(t));

	int flags = (no_bos ? 0 : TOKENIZE_ADD_BOS | TOKENIZE_ADD_EOS) |
		    (special ? TOKENIZE_PARSE_SPECIAL : 0);
	int n = tokenizer_encode(t, in.buf, in.len, flags, NULL, 0);
	if (n == INT32_MIN) {
		report("%s", error_message());
		goto out;
	}
	n = -n;
	int32_t *ids = try_alloc_array((size_t)(n ? n : 1), sizeof(*ids));
	if (!ids) {
		report("out of memory for %d token ids", n);
		goto out;
	}
	if (tokenizer_encode(t, in.buf, in.len, flags, ids, n) != n) {
		report("%s", error_message());
		free(ids);
		goto out;
	}
	for (int k = 0; k < n; k++) {
		if (ids_only) {
			printf(k ? " %d" : "%d", ids[k]);
			continue;
		}
		size_t len;
		const char *p = tokenizer_piece(t, ids[k], &len);
		printf("%6d -> ", ids[k]);
		untrusted_print_quoted(stdout, p, len);
		putchar('\n');
	}
	if (ids_only)
		putchar('\n');
	free(ids);
	ret = out_check() < 0 ? EXIT_RUNTIME : EXIT_OK;
out:
	tokenizer_free(t);
	if (g)
		gguf_close(g);
	strbuf_release(&in);
	return ret;
}
