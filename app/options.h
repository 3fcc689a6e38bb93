/* The global command line: `palaver [options] [COMMAND [ARGS]]`. */
#ifndef PALAVER_OPTIONS_H
#define PALAVER_OPTIONS_H

#include <stddef.h>
#include <stdio.h>

struct config;
struct command;

#define CLI_MAX_SET 128

/*
 * What cli_parse() found.  Settings are kept, not applied, because flags
 * outrank every file and environment variable, and the files can only be
 * read once --config is known.  Pointers point into argv.
 */
struct cli {
	const char *config_path; /* -c/--config FILE, NULL = none */
	int help;                /* --help */
	int version;             /* --version */
	int verbose;             /* -v count */
	int batch;               /* --batch */
	int json;                /* --json */
	const char *prompt;      /* -p/--prompt TEXT */
	const char *session;     /* --session ID */
	const char *split;       /* --split MODE, NULL = blank */
	int stats;               /* --stats */
	struct {
		int flag;          /* index in the flag table */
		const char *value; /* the text given, or the flag's fixed value */
	} set[CLI_MAX_SET];        /* configuration flags in command-line order */
	int n_set;
	int command; /* argv index of the subcommand, 0 = none */
};

/* Parse the options before the subcommand.  0, or -1 with error() holding
 * "unknown option '--x'; did you mean '--y'?" and the like. */
int cli_parse(struct cli *cli, int argc, char **argv);
/* Apply the configuration flags and run-time fields to cfg (after the files
 * and the environment).  0, or -1 with error() "option '--x': ...". */
int cli_apply(const struct cli *cli, struct config *cfg);
/* `palaver --help`: options from the flag table, then the commands. */
void cli_print_help(FILE *fp, const struct command *cmds);
/* The closest command name to a mistyped one, or NULL. */
const char *cli_suggest_command(const char *typed, const struct command *cmds);

/* A command's own options, as a table (ended by a NULL name): the benchmarks,
 * logits, perplexity. */
enum opt_type {
	OPT_FLAG,   /* int *out = 1; with out NULL, the family's flag (--cold) */
	OPT_INT,    /* int *out within [lo, hi] */
	OPT_SIZE,   /* uint64_t *out, "1M" or bytes, within [lo, hi] */
	OPT_CHOICE, /* int *out = the index of the value in choices */
	OPT_TEXT,   /* const char **out */
	OPT_LIST,   /* struct opt_list *out: each use adds one */
};
#define OPT_LIST_MAX 64
struct opt_list {
	const char *items[OPT_LIST_MAX];
	int n;
};
struct opt_spec {
	const char *name;  /* "--n-prompt" */
	const char *alias; /* "-p", or NULL */
	enum opt_type type;
	void *out;                  /* see the type */
	long lo, hi;                /* OPT_INT, OPT_SIZE */
	const char *const *choices; /* OPT_CHOICE: NULL-terminated */
};
/*
 * Parse argv[1..argc) by opts.  -h/--help prints usage and returns 1.  An
 * option not in opts goes to config_parse_common_flag() when cfg is given
 * (-m, -t, --ctx, ... then land in cfg); anything else is refused, pointing
 * at help ("palaver bench --cold --help").  Messages start with name
 * ("palaver: bench: ...").  0 when all parsed; -1 after printing the
 * problem on stderr (exit 2).
 */
int options_parse(int argc, char **argv, const struct opt_spec *opts, const char *usage,
		  const char *name, const char *help, struct config *cfg);

/*
 * For commands whose operands come after their options and may be any text
 * (tokenize TEXT, template FILE): 1 when argv[*i] is an option to look at;
 * 0 when the options have ended -- at "--" (skipped), at an argument that
 * is not an option ("-" alone is one) or at the end -- with *i at the first
 * operand; -1 after -h/--help has printed usage.
 */
int options_next(int argc, char **argv, int *i, const char *usage);

#endif
