/* palaver config: print the effective configuration, each key with its origin. */
#include "commands.h"
#include "config.h"
#include "report.h"
#include "strbuf.h"

#include <stdio.h>
#include <string.h>

static void config_usage(FILE *fp)
{
	fprintf(fp, "usage: palaver [options] config [--no-origin] [KEY]\n"
		    "\n"
		    "Print the configuration palaver would run with, as YAML, after the\n"
		    "built-in defaults, " CONFIG_SYSTEM_PATH ",\n"
		    "$XDG_CONFIG_HOME/palaver/config.yaml, --config FILE, the PALAVER_*\n"
		    "environment variables and the options.  After each key a comment says\n"
		    "where its value came from: default, FILE:LINE, $PALAVER_NAME or --option.\n"
		    "\n"
		    "  KEY           print only this key's value (dotted: sampling.top_p)\n"
		    "  --no-origin   leave out the comments (the output is a valid config.yaml)\n"
		    "  -h, --help    print this help\n"
		    "\n"
		    "The model and sampling options of 'palaver --help' are accepted here too.\n");
}

int cmd_config(int argc, char **argv, struct config *cfg)
{
	struct strbuf out = STRBUF_INIT;
	const char *key = NULL;
	int with_origin = 1;

	for (int i = 1; i < argc; i++) {
		int r;
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			config_usage(stdout);
			return EXIT_OK;
		}
		if (!strcmp(argv[i], "--no-origin")) {
			with_origin = 0;
			continue;
		}
		r = config_parse_common_flag(cfg, &i, argc, argv);
		if (r < 0) {
			fprintf(stderr, "palaver: %s\n", error_message());
			return EXIT_USAGE;
		}
		if (r > 0)
			continue;
		if (argv[i][0] == '-' || key) {
			fprintf(stderr,
				"palaver: config: unexpected argument '%s'\n"
				"usage: palaver config [--no-origin] [KEY]\n",
				argv[i]);
			return EXIT_USAGE;
		}
		key = argv[i];
	}

	if (key) {
		int k = config_key_index(key);
		if (k < 0) {
			fprintf(stderr, "palaver: unknown configuration key '%s'\n", key);
			return EXIT_USAGE;
		}
		config_format_value(cfg, k, &out);
		strbuf_addch(&out, '\n');
	} else {
		config_print(cfg, &out, with_origin);
	}
	int bad = out_write(out.buf, out.len) < 0;
	strbuf_release(&out);
	if (bad)
		return EXIT_RUNTIME;
	return EXIT_OK;
}
