/* Subcommands: `palaver NAME ...` runs cmd_NAME; each lives in app/cmd_NAME.c. */
#ifndef PALAVER_COMMANDS_H
#define PALAVER_COMMANDS_H

struct config;

/*
 * argv[0] is the subcommand's name; the global options that came before it
 * are already applied to cfg.  A command returns the process exit status
 * (EXIT_OK, EXIT_RUNTIME, EXIT_USAGE) and prints its own errors.
 */
typedef int (*command_fn)(int argc, char **argv, struct config *cfg);

struct command {
	const char *name;
	command_fn fn;
	const char *summary; /* one line for `palaver --help` */
};

int cmd_inspect(int argc, char **argv, struct config *cfg);
int cmd_tokenize(int argc, char **argv, struct config *cfg);
int cmd_logits(int argc, char **argv, struct config *cfg);
int cmd_bench(int argc, char **argv, struct config *cfg);
int cmd_perplexity(int argc, char **argv, struct config *cfg);
int cmd_sessions(int argc, char **argv, struct config *cfg);
int cmd_cache(int argc, char **argv, struct config *cfg);
int cmd_config(int argc, char **argv, struct config *cfg);
int cmd_mkmodel(int argc, char **argv, struct config *cfg);
int cmd_template(int argc, char **argv, struct config *cfg);
int cmd_models(int argc, char **argv, struct config *cfg);

extern const struct command commands[];
const struct command *command_find(const char *name);

#endif
