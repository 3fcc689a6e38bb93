/* palaver: start-up order and dispatch to the chat, batch mode or a subcommand. */
#include "commands.h"
#include "config.h"
#include "report.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef PALAVER_VERSION
#define PALAVER_VERSION "0.1.0"
#endif

const struct command commands[] = {
	{ "inspect", cmd_inspect, "show a GGUF file's metadata and tensors" },
	{ "tokenize", cmd_tokenize, "turn text into token ids" },
	{ "logits", cmd_logits, "write the logits for a token sequence" },
	{ "bench", cmd_bench, "measure prompt and generation speed" },
	{ "perplexity", cmd_perplexity, "measure perplexity on a text" },
	{ "sessions", cmd_sessions, "list, show, search, export saved chats" },
	{ "config", cmd_config, "print the effective configuration" },
	{ "mkmodel", cmd_mkmodel, "write a random-weight GGUF model" },
	{ NULL, NULL, NULL },
};

const struct command *command_find(const char *name)
{
	for (const struct command *c = commands; c->name; c++)
		if (!strcmp(c->name, name))
			return c;
	return NULL;
}

int main(int argc, char **argv)
{
	struct config cfg;
	memset(&cfg, 0, sizeof(cfg));

	if (argc > 1 && !strcmp(argv[1], "--version")) {
		printf("palaver %s\n", PALAVER_VERSION);
		return EXIT_OK;
	}
	if (argc > 1 && argv[1][0] != '-') {
		const struct command *c = command_find(argv[1]);
		if (!c) {
			fprintf(stderr, "palaver: '%s' is not a palaver command\n"
				"usage: palaver [options] [COMMAND [ARGS]]; see 'palaver --help'\n",
				argv[1]);
			return EXIT_USAGE;
		}
		return c->fn(argc - 1, argv + 1, &cfg);
	}
	fprintf(stderr, "palaver: the chat is not built yet\n");
	return EXIT_RUNTIME;
}
