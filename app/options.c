/* Global flags: one table drives parsing, --help and the flags subcommands share. */
#include "options.h"
#include "commands.h"
#include "config.h"
#include "report.h"
#include "strbuf.h"
#include "util.h"
#include "xalloc.h"

#include <stdlib.h>
#include <string.h>

struct flag {
	char short_name;   /* 0 = none */
	const char *name;  /* long name without the dashes */
	const char *arg;   /* value's name in --help, NULL = takes none */
	const char *key;   /* configuration key it sets, NULL = run-time flag */
	const char *fixed; /* value for key when the flag takes none */
	int common;        /* also accepted after a subcommand's name */
	const char *help;  /* one line for --help */
};

static const struct flag flags[] = {
	{ 'm', "model", "FILE", "model", NULL, 1,
	  "the GGUF model file (default: palaver-tiny, built in)" },
	{ 'c', "config", "FILE", NULL, NULL, 0,
	  "read FILE after the system and user config files" },
	{ 't', "threads", "N", "threads", NULL, 1, "compute threads (0 = online cores)" },
	{ 0, "ctx", "N", "context", NULL, 1, "context length in tokens (0 = the model's)" },
	{ 'n', "max-tokens", "N", "sampling.max_tokens", NULL, 1,
	  "tokens per reply at most (-1 = until the context is full)" },
	{ 0, "temp", "T", "sampling.temperature", NULL, 1, "sampling temperature (0 = greedy)" },
	{ 0, "top-k", "N", "sampling.top_k", NULL, 1, "keep the N likeliest tokens (0 = off)" },
	{ 0, "top-p", "P", "sampling.top_p", NULL, 1, "nucleus sampling threshold (1 = off)" },
	{ 0, "min-p", "P", "sampling.min_p", NULL, 1,
	  "drop tokens below P times the top one (0 = off)" },
	{ 0, "seed", "N", "sampling.seed", NULL, 1, "random seed, or 'random'" },
	{ 's', "system", "TEXT", "system_prompt", NULL, 1, "the system prompt" },
	{ 0, "backend", "NAME", "backend", NULL, 1, "compute backend: auto, cpu or cuda" },
	{ 0, "remote", "URL", "remote.url", NULL, 1,
	  "chat with an OpenAI-compatible server at URL instead of a local model" },
	{ 0, "remote-model", "NAME", "remote.model", NULL, 1,
	  "the model on the remote server (default: the first it lists)" },
	{ 0, "batch-size", "N", "batch_size", NULL, 1, "prompt tokens per prefill step" },
	{ 0, "chat-template", "NAME", "chat_template", NULL, 1,
	  "chat template: auto, a format name or a .jinja file" },
	{ 0, "think", "on|off", "think", NULL, 1,
	  "thinking, for models whose template switches it (auto: its default)" },
	{ 0, "reasoning-effort", "LEVEL", "reasoning_effort", NULL, 1,
	  "reasoning effort (gpt-oss): low, medium, high or auto" },
	{ 0, "reasoning", "MODE", "reasoning", NULL, 0,
	  "batch mode's thinking: hide (default), show or stderr" },
	{ 'p', "prompt", "TEXT", NULL, NULL, 0, "answer TEXT once and exit (batch mode)" },
	{ 0, "batch", NULL, NULL, NULL, 0, "batch mode even when stdin is a terminal" },
	{ 0, "json", NULL, NULL, NULL, 0, "batch mode, writing JSON lines" },
	{ 0, "split", "MODE", NULL, NULL, 0,
	  "batch turns: blank (paragraphs, default), line or all" },
	{ 0, "stats", NULL, NULL, NULL, 0, "batch mode prints timings to stderr at the end" },
	{ 0, "mlock", NULL, "memory.lock", "true", 1, "pin the model's weights in RAM (mlock)" },
	{ 0, "history", "FILE", "history.path", NULL, 1, "the chat history database" },
	{ 0, "no-history", NULL, "history.enabled", "false", 1, "do not save this chat" },
	{ 0, "no-repack", NULL, "repack", "false", 1,
	  "keep weights in the file's layout (no load-time repacking)" },
	{ 0, "isa", "NAME", "isa", NULL, 1,
	  "CPU kernels: auto (measured once per CPU), avx2, avx512-256, ..." },
	{ 0, "session", "ID", NULL, NULL, 0, "continue the saved chat ID" },
	{ 0, "log-level", "LEVEL", "log.level", NULL, 0, "trace, debug, info, warn, error or off" },
	{ 0, "log-file", "FILE", "log.file", NULL, 0, "write the log to FILE" },
	{ 'v', "verbose", NULL, NULL, NULL, 0, "more detail on stderr (repeatable)" },
	{ 0, "version", NULL, NULL, NULL, 0, "print the version and exit" },
	{ 'h', "help", NULL, NULL, NULL, 0, "print this help and exit" },
};

#define N_FLAGS ((int)(sizeof(flags) / sizeof(flags[0])))

/*
 * Which flag is arg?  Sets *value to the text after '=' (long) or after the
 * letter (short, "-m.gguf"), else NULL.  -1 when arg names no flag.
 */
static int flag_find(const char *arg, const char **value)
{
	*value = NULL;
	if (arg[0] != '-' || !arg[1])
		return -1;
	if (arg[1] == '-') {
		const char *name = arg + 2, *eq = strchr(name, '=');
		size_t n = eq ? (size_t)(eq - name) : strlen(name);
		for (int f = 0; f < N_FLAGS; f++) {
			if (strlen(flags[f].name) == n && !strncmp(flags[f].name, name, n)) {
				*value = eq ? eq + 1 : NULL;
				return f;
			}
		}
		return -1;
	}
	for (int f = 0; f < N_FLAGS; f++) {
		if (flags[f].short_name && flags[f].short_name == arg[1]) {
			*value = arg[2] ? arg + 2 : NULL;
			return f;
		}
	}
	return -1;
}

/* "--name" as typed, for messages and origins. */
static const char *flag_label(int f, const char *arg, char *buf, size_t n)
{
	if (arg[1] == '-')
		snprintf(buf, n, "--%s", flags[f].name);
	else
		snprintf(buf, n, "-%c", flags[f].short_name);
	return buf;
}

/*
 * Fetch the value of flag f found at argv[*i] (inline or the next argument)
 * into *value; 0 or -1 with error().  *i moves past a separate value.
 */
static int flag_value(int f, const char *inline_value, int *i, int argc, char **argv,
		      const char **value)
{
	char label[64];

	flag_label(f, argv[*i], label, sizeof(label));
	if (!flags[f].arg) {
		if (inline_value && argv[*i][1] == '-')
			return error("option '%s' takes no value", label);
		*value = flags[f].fixed;
		return 0;
	}
	if (inline_value) {
		*value = inline_value;
		return 0;
	}
	if (*i + 1 >= argc)
		return error("option '%s' needs a value (%s)", label, flags[f].arg);
	*value = argv[++*i];
	return 0;
}

/* Set flag f's key to value; origin "--name".  0 or -1 with error(). */
static int flag_apply(struct config *cfg, int f, const char *value)
{
	char origin[64];

	snprintf(origin, sizeof(origin), "--%s", flags[f].name);
	if (config_set(cfg, flags[f].key, value, origin) < 0) {
		error_prefix("option '--%s': ", flags[f].name);
		return -1;
	}
	/* naming a history file means saving to it */
	if (!strcmp(flags[f].name, "history") &&
	    config_set(cfg, "history.enabled", "true", origin) < 0)
		return -1;
	return 0;
}

static void suggest_flag(struct strbuf *msg, const char *arg)
{
	const char *name = arg + strspn(arg, "-"), *eq = strchr(name, '=');
	char typed[64];
	const char *best = NULL;
	int bestd = 1000;

	snprintf(typed, sizeof(typed), "%.*s", (int)(eq ? (size_t)(eq - name) : strlen(name)),
		 name);
	if (!typed[0])
		return;
	for (int f = 0; f < N_FLAGS; f++) {
		int d = config_edit_distance(typed, flags[f].name);
		if (d < bestd) {
			bestd = d;
			best = flags[f].name;
		}
	}
	if (best && bestd <= (strlen(typed) <= 4 ? 1 : 2))
		strbuf_addf(msg, "; did you mean '--%s'?", best);
}

static int unknown_option(const char *arg)
{
	struct strbuf msg = STRBUF_INIT;
	strbuf_addf(&msg, "unknown option '%s'", arg);
	if (arg[1] == '-')
		suggest_flag(&msg, arg);
	error("%s", msg.buf);
	strbuf_release(&msg);
	return -1;
}

int cli_parse(struct cli *cli, int argc, char **argv)
{
	memset(cli, 0, sizeof(*cli));
	for (int i = 1; i < argc; i++) {
		const char *arg = argv[i], *inline_value, *value;
		int f;

		if (!strcmp(arg, "--")) {
			if (i + 1 < argc)
				cli->command = i + 1;
			return 0;
		}
		if (arg[0] != '-' || !arg[1]) {
			cli->command = i;
			return 0;
		}
		/* -vv... */
		if (arg[1] == 'v' && strspn(arg + 1, "v") == strlen(arg + 1)) {
			cli->verbose += (int)strlen(arg + 1);
			continue;
		}
		f = flag_find(arg, &inline_value);
		if (f < 0)
			return unknown_option(arg);
		if (arg[1] != '-' && inline_value && !flags[f].arg)
			return unknown_option(arg); /* "-hx" */
		if (flag_value(f, inline_value, &i, argc, argv, &value) < 0)
			return -1;
		if (flags[f].key) {
			if (cli->n_set == CLI_MAX_SET)
				return error("too many options");
			cli->set[cli->n_set].flag = f;
			cli->set[cli->n_set].value = value;
			cli->n_set++;
			continue;
		}
		if (!strcmp(flags[f].name, "config"))
			cli->config_path = value;
		else if (!strcmp(flags[f].name, "prompt"))
			cli->prompt = value;
		else if (!strcmp(flags[f].name, "session"))
			cli->session = value;
		else if (!strcmp(flags[f].name, "verbose"))
			cli->verbose++;
		else if (!strcmp(flags[f].name, "version"))
			cli->version = 1;
		else if (!strcmp(flags[f].name, "help"))
			cli->help = 1;
		else if (!strcmp(flags[f].name, "batch"))
			cli->batch = 1;
		else if (!strcmp(flags[f].name, "json"))
			cli->json = 1;
		else if (!strcmp(flags[f].name, "split"))
			cli->split = value;
		else if (!strcmp(flags[f].name, "stats"))
			cli->stats = 1;
		else
			return error("option '%s' is not handled", arg);
	}
	return 0;
}

int cli_apply(const struct cli *cli, struct config *cfg)
{
	for (int j = 0; j < cli->n_set; j++)
		if (flag_apply(cfg, cli->set[j].flag, cli->set[j].value) < 0)
			return -1;
	if (cli->prompt) {
		free(cfg->prompt);
		cfg->prompt = xstrdup(cli->prompt);
	}
	if (cli->session) {
		free(cfg->session);
		cfg->session = xstrdup(cli->session);
	}
	if (cli->split) {
		if (!strcmp(cli->split, "blank"))
			cfg->split = BATCH_SPLIT_BLANK;
		else if (!strcmp(cli->split, "line"))
			cfg->split = BATCH_SPLIT_LINE;
		else if (!strcmp(cli->split, "all"))
			cfg->split = BATCH_SPLIT_ALL;
		else
			return error("option '--split': '%s' must be blank, line or all",
				     cli->split);
	}
	cfg->stats |= cli->stats;
	cfg->batch |= cli->batch;
	cfg->json |= cli->json;
	cfg->verbose += cli->verbose;
	return 0;
}

int config_parse_common_flag(struct config *cfg, int *i, int argc, char **argv)
{
	const char *inline_value, *value;
	int j = *i;
	int f = flag_find(argv[j], &inline_value);

	if (f < 0 || !flags[f].common)
		return 0;
	if (argv[j][1] != '-' && inline_value && !flags[f].arg)
		return 0;
	if (flag_value(f, inline_value, &j, argc, argv, &value) < 0)
		return -1;
	if (flag_apply(cfg, f, value) < 0)
		return -1;
	*i = j;
	return 1;
}

const char *cli_suggest_command(const char *typed, const struct command *cmds)
{
	const char *best = NULL;
	int bestd = 1000;
	for (const struct command *c = cmds; c->name; c++) {
		int d = config_edit_distance(typed, c->name);
		if (d < bestd) {
			bestd = d;
			best = c->name;
		}
	}
	return best && bestd <= (strlen(typed) <= 4 ? 1 : 2) ? best : NULL;
}

void cli_print_help(FILE *fp, const struct command *cmds)
{
	fprintf(fp, "usage: palaver [options] [COMMAND [ARGS]]\n"
		    "\n"
		    "Chat with a language model from a GGUF file, locally, in the terminal.\n"
		    "Without COMMAND: the chat when stdin is a terminal; batch mode (stdin to\n"
		    "stdout) when it is not, or with --batch, --json or -p.\n"
		    "\n"
		    "Options:\n");
	for (int f = 0; f < N_FLAGS; f++) {
		char left[64];
		if (flags[f].short_name)
			snprintf(left, sizeof(left), "-%c, --%s%s%s", flags[f].short_name,
				 flags[f].name, flags[f].arg ? " " : "",
				 flags[f].arg ? flags[f].arg : "");
		else
			snprintf(left, sizeof(left), "    --%s%s%s", flags[f].name,
				 flags[f].arg ? " " : "", flags[f].arg ? flags[f].arg : "");
		fprintf(fp, "  %-26s %s\n", left, flags[f].help);
	}
	fprintf(fp, "\nCommands (each answers 'palaver COMMAND --help'):\n");
	for (const struct command *c = cmds; c->name; c++)
		fprintf(fp, "  %-12s %s\n", c->name, c->summary);
	fprintf(fp,
		"\n"
		"Commands also take -m, -t, --ctx, -n, --temp, --top-k, --top-p, --min-p,\n"
		"--seed, -s, --backend, --batch-size, --chat-template, --history and\n"
		"--no-history after their name.\n"
		"\n"
		"Configuration, lowest precedence first: built-in defaults,\n" CONFIG_SYSTEM_PATH
		", $XDG_CONFIG_HOME/palaver/config.yaml,\n"
		"--config FILE, PALAVER_* environment variables, options.\n"
		"'palaver config' shows the result and where each value came from.\n"
		"\n"
		"Exit status: 0 success, 1 runtime failure, 2 usage or configuration error,\n"
		"130 interrupted (Ctrl-C in batch mode).\n");
	/* from a source tree the manual is not installed: name the file */
	static const char *const man[] = { "../man/palaver.1", NULL };
	char *page = config_near_binary(man);
	fprintf(fp, "See 'man %s' for the details.\n", page ? page : "palaver");
	free(page);
}

/* ---- a command's own options ------------------------------------------- */

/* "a, b or c" */
static void add_choices(struct strbuf *sb, const char *const *c)
{
	for (int i = 0; c[i]; i++)
		strbuf_addf(sb, "%s%s", i ? (c[i + 1] ? ", " : " or ") : "", c[i]);
}

/* Take the value v of option o; 0, or -1 after saying what is wrong. */
static int take_value(const struct opt_spec *o, const char *v, const char *name)
{
	struct strbuf msg = STRBUF_INIT;
	long l = 0;
	uint64_t u = 0;
	int i = 0;
	if (!v && o->type != OPT_FLAG) {
		report("%s: '%s' needs a value", name, o->name);
		return -1;
	}
	switch (o->type) {
	case OPT_FLAG: *(int *)o->out = 1; return 0;
	case OPT_TEXT: *(const char **)o->out = v; return 0;
	case OPT_LIST: {
		struct opt_list *list = o->out;
		if (list->n < OPT_LIST_MAX) {
			list->items[list->n++] = v;
			return 0;
		}
		strbuf_addf(&msg, "'%s' may be given at most %d times", o->name, OPT_LIST_MAX);
		break;
	}
	case OPT_INT:
		if (v && parse_long(v, &l) == 0 && l >= o->lo && l <= o->hi) {
			*(int *)o->out = (int)l;
			return 0;
		}
		strbuf_addf(&msg, "'%s' needs a number from %ld to %ld", o->name, o->lo, o->hi);
		break;
	case OPT_SIZE:
		if (v && parse_size(v, &u) == 0 && u >= (uint64_t)o->lo && u <= (uint64_t)o->hi) {
			*(uint64_t *)o->out = u;
			return 0;
		}
		strbuf_addf(&msg, "'%s' needs a size from %ld to %ld bytes (such as 1M)", o->name,
			    o->lo, o->hi);
		break;
	case OPT_CHOICE:
		while (v && o->choices[i] && strcmp(v, o->choices[i]))
			i++;
		if (v && o->choices[i]) {
			*(int *)o->out = i;
			return 0;
		}
		strbuf_addf(&msg, "'%s' is ", o->name);
		add_choices(&msg, o->choices);
		break;
	}
	if (v)
		strbuf_addf(&msg, ", not '%s'", v);
	error_clear();
	report("%s: %s", name, msg.buf);
	strbuf_release(&msg);
	return -1;
}

int options_parse(int argc, char **argv, const struct opt_spec *opts, const char *usage,
		  const char *name, const char *help, struct config *cfg)
{
	const struct opt_spec *operand = NULL; /* the spec named "", if any */
	int taken = 0;
	for (const struct opt_spec *o = opts; o->name; o++)
		if (!*o->name)
			operand = o;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const struct opt_spec *o = opts;
		while (o->name &&
		       (!*o->name || (strcmp(a, o->name) && !(o->alias && !strcmp(a, o->alias)))))
			o++;
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			fputs(usage, stdout);
			return 1;
		}
		if (o->name) {
			const char *v = NULL;
			if (o->type != OPT_FLAG && i + 1 < argc)
				v = argv[++i];
			if (!o->out) /* the family's own flag (--cold): already seen */
				continue;
			if (take_value(o, v, name) < 0)
				return -1;
			continue;
		}
		if (a[0] != '-' || !a[1]) {
			if (!operand || taken++) {
				report("%s: unexpected argument '%s' (see '%s')", name, a, help);
				return -1;
			}
			*(const char **)operand->out = a;
			continue;
		}
		int r = cfg ? config_parse_common_flag(cfg, &i, argc, argv) : 0;
		if (r < 0) { /* "option '--seed': ..." names it already */
			report_failure(-1);
			return -1;
		}
		if (r == 0) {
			report("%s: unknown option '%s' (see '%s')", name, a, help);
			return -1;
		}
	}
	return 0;
}

int options_next(int argc, char **argv, int *i, const char *usage)
{
	if (*i >= argc)
		return 0;
	const char *a = argv[*i];
	if (!strcmp(a, "--")) {
		++*i;
		return 0;
	}
	if (a[0] != '-' || !a[1])
		return 0;
	if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
		fputs(usage, stdout);
		return -1;
	}
	return 1;
}
