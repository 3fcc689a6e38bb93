/* palaver models: list the models of the remote server (--remote URL or remote.url). */
#include "commands.h"
#include "config.h"
#include "engine.h"
#include "options.h"
#include "report.h"
#include "untrusted.h"
#include "strbuf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
	"usage: palaver [options] models [--remote URL] [--json]\n"
	"\n"
	"List the models an OpenAI-compatible server (llama-server, ollama, vLLM)\n"
	"offers, one name a line: the names --remote-model takes.\n"
	"\n"
	"  --remote URL  the server (default: remote.url of the configuration)\n"
	"  --json        one JSON object a line: id, owned_by, context (0 = unknown)\n"
	"  -h, --help    print this help\n"
	"\n"
	"The API key is read from the variable named by remote.api_key_env.\n";

int cmd_models(int argc, char **argv, struct config *cfg)
{
	int json = 0;

	const struct opt_spec opts[] = {
		{ "--json", NULL, OPT_FLAG, &json, 0, 0, NULL },
		{ NULL, NULL, 0, NULL, 0, 0, NULL },
	};
	int parsed = options_parse(argc, argv, opts, usage, "models", "palaver models --help", cfg);
	if (parsed)
		return parsed > 0 ? EXIT_OK : EXIT_USAGE;
	if (!cfg->remote_url) {
		return report_usage(
			"models: no server given; use --remote URL or 'remote.url' in the config file");
	}

	if (cfg->remote_api_key_env && !config_remote_api_key(cfg))
		warning("$%s (remote.api_key_env) is not set: no API key is sent",
			cfg->remote_api_key_env);
	struct engine_config ec;
	struct engine_model_entry *m;
	int n;
	memset(&ec, 0, sizeof(ec));
	ec.remote_url = cfg->remote_url;
	ec.remote_api_key = config_remote_api_key(cfg);
	ec.remote_timeout = cfg->remote_timeout;
	if (engine_list_models(&ec, &m, &n) < 0) {
		return report_failure(EXIT_RUNTIME);
	}
	struct strbuf out = STRBUF_INIT;
	int tty = untrusted_tty(stdout);
	for (int i = 0; i < n; i++) {
		if (!json) {
			/* the server's names: on a terminal, made safe for it */
			if (tty)
				untrusted_add(&out, m[i].id, strlen(m[i].id), 0);
			else
				strbuf_addstr(&out, m[i].id);
			strbuf_addch(&out, '\n');
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
	int bad = out_write(out.buf, out.len) < 0;
	strbuf_release(&out);
	return bad ? EXIT_RUNTIME : EXIT_OK;
}
