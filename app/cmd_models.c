/* palaver models: list the models of the remote server (--remote URL or remote.url). */
#include "commands.h"
#include "config.h"
#include "engine.h"
#include "report.h"
#include "strbuf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void models_usage(FILE *fp)
{
	fprintf(fp, "usage: palaver [options] models [--remote URL] [--json]\n"
		    "\n"
		    "List the models an OpenAI-compatible server (llama-server, ollama, vLLM)\n"
		    "offers, one name a line: the names --remote-model takes.\n"
		    "\n"
		    "  --remote URL  the server (default: remote.url of the configuration)\n"
		    "  --json        one JSON object a line: id, owned_by, context (0 = unknown)\n"
		    "  -h, --help    print this help\n"
		    "\n"
		    "The API key is read from the variable named by remote.api_key_env.\n");
}

int cmd_models(int argc, char **argv, struct config *cfg)
{
	int json = 0;

	for (int i = 1; i < argc; i++) {
		int r;
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			models_usage(stdout);
			return EXIT_OK;
		}
		if (!strcmp(argv[i], "--json")) {
			json = 1;
			continue;
		}
		r = config_parse_common_flag(cfg, &i, argc, argv);
		if (r < 0) {
			fprintf(stderr, "palaver: %s\n", error_message());
			return EXIT_USAGE;
		}
		if (r > 0)
			continue;
		fprintf(stderr,
			"palaver: models: unexpected argument '%s'\n"
			"usage: palaver models [--remote URL] [--json]\n",
			argv[i]);
		return EXIT_USAGE;
	}
	if (!cfg->remote_url) {
		fprintf(stderr,
			"palaver: models: no server given; use --remote URL or 'remote.url' "
			"in the config file\n");
		return EXIT_USAGE;
	}

	if (cfg->remote_api_key_env && !config_remote_api_key(cfg))
		fprintf(stderr,
			"palaver: warning: $%s (remote.api_key_env) is not set: no API key "
			"is sent\n",
			cfg->remote_api_key_env);
	struct engine_config ec;
	struct engine_model_entry *m;
	int n;
	memset(&ec, 0, sizeof(ec));
	ec.remote_url = cfg->remote_url;
	ec.remote_api_key = config_remote_api_key(cfg);
	ec.remote_timeout = cfg->remote_timeout;
	if (engine_list_models(&ec, &m, &n) < 0) {
		fprintf(stderr, "palaver: %s\n", error_message());
		return EXIT_RUNTIME;
	}
	struct strbuf out = STRBUF_INIT;
	for (int i = 0; i < n; i++) {
		if (!json) {
			strbuf_addf(&out, "%s\n", m[i].id);
			continue;
		}
		strbuf_addstr(&out, "{\"id\":\"");
		strbuf_add_json_escaped(&out, m[i].id, strlen(m[i].id));
		strbuf_addstr(&out, "\",\"owned_by\":");
		if (m[i].owner) {
			strbuf_addch(&out, '"');
			strbuf_add_json_escaped(&out, m[i].owner, strlen(m[i].owner));
			strbuf_addch(&out, '"');
		} else {
			strbuf_addstr(&out, "null");
		}
		strbuf_addf(&out, ",\"context\":%d}\n", m[i].n_ctx);
	}
	engine_models_free(m, n);
	fwrite(out.buf, 1, out.len, stdout);
	strbuf_release(&out);
	if (fflush(stdout) != 0) {
		fprintf(stderr, "palaver: cannot write the list of models\n");
		return EXIT_RUNTIME;
	}
	return EXIT_OK;
}
