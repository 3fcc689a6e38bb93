/* palaver config: print the effective configuration, each key with its origin. */
#include "commands.h"
#include "config.h"
#include "options.h"
#include "report.h"
#include "strbuf.h"

#include <stdio.h>
#include <string.h>

static const char usage[] =
	"usage: palaver [options] config [--no-origin] [KEY]\n"
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
	"The model and sampling options of 'palaver --help' are accepted here too.\n";

int cmd_config(int argc, char **argv, struct config *cfg)
{
	struct strbuf out = STRBUF_INIT;
	const char *key = NULL;
	int with_origin = 1;

	int no_origin = 0;
	const struct opt_spec opts[] = {
		{ "--no-origin", NULL, OPT_FLAG, &no_origin, 0, 0, NULL },
		{ "", NULL, OPT_TEXT, &key, 0, 0, NULL },
		{ NULL, NULL, 0, NULL, 0, 0, NULL },
	};
	int parsed = options_parse(argc, argv, opts, usage, "config", "palaver config --help", cfg);
	if (parsed)
		return parsed > 0 ? EXIT_OK : EXIT_USAGE;
	with_origin = !no_origin;

	if (key) {
		int k = config_key_index(key);
		if (k < 0) {
			return report_usage("unknown configuration key '%s'", key);
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
