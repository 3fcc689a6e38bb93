/* palaver: start-up order and dispatch to the chat, batch mode or a subcommand. */
#include "commands.h"
#include "config.h"
#include "log.h"
#include "modes.h"
#include "options.h"
#include "report.h"
#include "strbuf.h"

#include <locale.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
	{ "cache", cmd_cache, "list and clear the KV caches saved with sessions" },
	{ "config", cmd_config, "print the effective configuration" },
	{ "mkmodel", cmd_mkmodel, "write a random-weight GGUF model" },
	{ "template", cmd_template, "print the prompt a chat template makes" },
	{ "models", cmd_models, "list the models of a remote server" },
	{ NULL, NULL, NULL },
};

const struct command *command_find(const char *name)
{
	for (const struct command *c = commands; c->name; c++)
		if (!strcmp(c->name, name))
			return c;
	return NULL;
}

static int usage_error(const char *msg)
{
	return report_usage("%s\nusage: palaver [options] [COMMAND [ARGS]]; see 'palaver --help'",
			    msg);
}

/* The log goes to a file only: the terminal belongs to the chat. */
static void start_log(const struct config *cfg)
{
	if (cfg->log_level == LOG_OFF)
		return;
	if (log_open(cfg->log_file, (enum log_level)cfg->log_level) < 0) {
		/* a path the user chose must work; the default may be unwritable */
		if (cfg->log_file)
			die("%s", error_message());
		log_set_level(LOG_OFF);
		error_clear();
		return;
	}
	log_info("palaver %s starting, pid %ld", PALAVER_VERSION, (long)getpid());
}

static int run(int argc, char **argv);

int main(int argc, char **argv)
{
	int rc = run(argc, argv);
	/* a command whose output could not be written has failed */
	if (out_close() < 0 && rc == EXIT_OK)
		rc = EXIT_RUNTIME;
	return rc;
}

static int run(int argc, char **argv)
{
	const struct command *cmd = NULL;
	struct config cfg;
	struct cli cli;
	int rc;

	/* characters only: numbers keep the C locale, so "0.7" parses everywhere */
	setlocale(LC_CTYPE, "");
	/* A write past the file size limit (ulimit -f) then fails with EFBIG,
	 * reported like a full disk, instead of killing palaver with replies
	 * still unwritten. */
	signal(SIGXFSZ, SIG_IGN);

	if (cli_parse(&cli, argc, argv) < 0)
		return usage_error(error_message());
	if (cli.help) {
		cli_print_help(stdout, commands);
		return EXIT_OK;
	}
	if (cli.version) {
		printf("palaver %s\n", PALAVER_VERSION);
		return EXIT_OK;
	}
	if (cli.command) {
		const char *name = argv[cli.command];
		cmd = command_find(name);
		if (!cmd) {
			const char *near = cli_suggest_command(name, commands);
			struct strbuf msg = STRBUF_INIT;
			strbuf_addf(&msg, "'%s' is not a palaver command", name);
			if (near)
				strbuf_addf(&msg, "; did you mean '%s'?", near);
			rc = usage_error(msg.buf);
			strbuf_release(&msg);
			return rc;
		}
	}

	config_init(&cfg);
	if (config_load(&cfg, CONFIG_SYSTEM_PATH, cli.config_path) < 0) {
		const char *msg = error_message();
		/* FILE:LINE:COL messages stand alone, like a compiler's */
		if (!strncmp(msg, "cannot", 6) || msg[0] == '$')
			report("%s", msg);
		else
			fprintf(stderr, "%s\n", msg);
		config_free(&cfg);
		return EXIT_USAGE;
	}
	if (cli_apply(&cli, &cfg) < 0) {
		rc = usage_error(error_message());
		config_free(&cfg);
		return rc;
	}
	config_finish(&cfg);
	if (config_select_kernels(&cfg) < 0) {
		rc = usage_error(error_message());
		config_free(&cfg);
		return rc;
	}
	start_log(&cfg);
	if (log_current_level <= LOG_DEBUG) {
		struct strbuf sb = STRBUF_INIT;
		config_print(&cfg, &sb, 1);
		log_debug("configuration:\n%s", sb.buf);
		strbuf_release(&sb);
	}

	if (cmd) {
		log_info("command '%s'", cmd->name);
		rc = cmd->fn(argc - cli.command, argv + cli.command, &cfg);
	} else if (cfg.batch || cfg.json || cfg.prompt || !isatty(STDIN_FILENO)) {
		log_info("batch mode");
		rc = batch_run(&cfg);
	} else {
		log_info("chat mode");
		rc = chat_run(&cfg);
	}
	log_info("exit %d", rc);
	log_close();
	config_free(&cfg);
	return rc;
}
