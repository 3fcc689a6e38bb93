/* Command line: global option parsing, applying flags, the shared subcommand flags, --help. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "config.h"
#include "log.h"
#include "options.h"
#include "report.h"

#define ARGC(a) ((int)(sizeof(a) / sizeof(a[0])) - 1)

static void test_parse_global(void **state)
{
	char *argv[] = { "palaver", "-m",      "x.gguf", "-t4", "--temp=0.5", "--ctx",
			 "2048",    "-vv",     "--json", "-c",  "my.yaml",    "--session",
			 "abc",     "inspect", "--temp", "9",   NULL };
	struct cli cli;
	(void)state;
	assert_int_equal(cli_parse(&cli, ARGC(argv), argv), 0);
	assert_int_equal(cli.command, 13);
	assert_int_equal(cli.verbose, 2);
	assert_int_equal(cli.json, 1);
	assert_int_equal(cli.batch, 0);
	assert_string_equal(cli.config_path, "my.yaml");
	assert_string_equal(cli.session, "abc");
	assert_null(cli.prompt);
	assert_int_equal(cli.n_set, 4); /* -m -t --temp --ctx; "--temp 9" belongs to inspect */
	assert_string_equal(cli.set[0].value, "x.gguf");
	assert_string_equal(cli.set[1].value, "4");
	assert_string_equal(cli.set[2].value, "0.5");
	assert_string_equal(cli.set[3].value, "2048");
}

static void test_parse_no_command(void **state)
{
	char *argv[] = { "palaver", "-p", "hello there", "--batch", "--no-history", NULL };
	char *argv2[] = { "palaver", "--", "config", NULL };
	char *argv3[] = { "palaver", "--help", NULL };
	char *argv4[] = { "palaver", "--version", "-h", NULL };
	struct cli cli;
	(void)state;
	assert_int_equal(cli_parse(&cli, ARGC(argv), argv), 0);
	assert_int_equal(cli.command, 0);
	assert_string_equal(cli.prompt, "hello there");
	assert_int_equal(cli.batch, 1);
	assert_int_equal(cli.n_set, 1);
	assert_string_equal(cli.set[0].value, "false");
	assert_int_equal(cli_parse(&cli, ARGC(argv2), argv2), 0);
	assert_int_equal(cli.command, 2);
	assert_int_equal(cli_parse(&cli, ARGC(argv3), argv3), 0);
	assert_int_equal(cli.help, 1);
	assert_int_equal(cli_parse(&cli, ARGC(argv4), argv4), 0);
	assert_int_equal(cli.version, 1);
	assert_int_equal(cli.help, 1);
}

static void expect_parse_error(char **argv, int argc, const char *want)
{
	struct cli cli;
	assert_int_equal(cli_parse(&cli, argc, argv), -1);
	assert_string_equal(error_message(), want);
}

static void test_parse_errors(void **state)
{
	char *a1[] = { "palaver", "--tmep", "1", NULL };
	char *a2[] = { "palaver", "--frobnicate", NULL };
	char *a3[] = { "palaver", "-m", NULL };
	char *a4[] = { "palaver", "--batch=yes", NULL };
	char *a5[] = { "palaver", "-x", NULL };
	char *a6[] = { "palaver", "--threads", NULL };
	char *a7[] = { "palaver", "--model=", "--moddel", NULL };
	(void)state;
	expect_parse_error(a1, ARGC(a1), "unknown option '--tmep'; did you mean '--temp'?");
	expect_parse_error(a2, ARGC(a2), "unknown option '--frobnicate'");
	expect_parse_error(a3, ARGC(a3), "option '-m' needs a value (FILE)");
	expect_parse_error(a4, ARGC(a4), "option '--batch' takes no value");
	expect_parse_error(a5, ARGC(a5), "unknown option '-x'");
	expect_parse_error(a6, ARGC(a6), "option '--threads' needs a value (N)");
	expect_parse_error(a7, ARGC(a7), "unknown option '--moddel'; did you mean '--model'?");
}

static void test_apply(void **state)
{
	char *argv[] = { "palaver",  "-m", "a.gguf", "-m",          "b.gguf", "--history",
			 "h.db",     "-n", "64",     "--log-level", "debug",  "-s",
			 "be brief", "-p", "hi",     "-v",          NULL };
	char *bad[] = { "palaver", "--top-k", "many", NULL };
	char *order[] = { "palaver", "--history", "h.db", "--no-history", NULL };
	struct config cfg;
	struct cli cli;
	(void)state;
	config_init(&cfg);
	cfg.history_enabled = 0;
	assert_int_equal(cli_parse(&cli, ARGC(argv), argv), 0);
	assert_int_equal(cli_apply(&cli, &cfg), 0);
	assert_string_equal(cfg.model, "b.gguf"); /* the last one wins */
	assert_string_equal(cfg.history_path, "h.db");
	assert_int_equal(cfg.history_enabled, 1); /* naming a history file turns it on */
	assert_int_equal(cfg.sampling.max_tokens, 64);
	assert_int_equal(cfg.log_level, LOG_DEBUG);
	assert_string_equal(cfg.system_prompt, "be brief");
	assert_string_equal(cfg.prompt, "hi");
	assert_int_equal(cfg.verbose, 1);
	assert_string_equal(cfg.origin[config_key_index("model")], "--model");
	assert_string_equal(cfg.origin[config_key_index("sampling.max_tokens")], "--max-tokens");

	assert_int_equal(cli_parse(&cli, ARGC(bad), bad), 0); /* values are checked on apply */
	assert_int_equal(cli_apply(&cli, &cfg), -1);
	assert_string_equal(error_message(),
			    "option '--top-k': 'sampling.top_k' must be an integer, not 'many'");
	assert_int_equal(cfg.sampling.top_k, 40);

	assert_int_equal(cli_parse(&cli, ARGC(order), order), 0);
	assert_int_equal(cli_apply(&cli, &cfg), 0);
	assert_int_equal(cfg.history_enabled, 0);
	config_free(&cfg);
}

/* The helper subcommands call in their own option loops. */
static void test_common_flag(void **state)
{
	char *argv[] = { "inspect", "--mine",       "-m",        "x.gguf",   "file",   "--ctx=512",
			 "-t8",     "--seed",       "5",         "--config", "c.yaml", "-p",
			 "x",       "--no-history", "--threads", NULL };
	struct config cfg;
	int i = 1;
	(void)state;
	config_init(&cfg);
	assert_int_equal(config_parse_common_flag(&cfg, &i, ARGC(argv), argv), 0); /* --mine */
	assert_int_equal(i, 1);
	i = 2;
	assert_int_equal(config_parse_common_flag(&cfg, &i, ARGC(argv), argv), 1);
	assert_int_equal(i, 3); /* left on the value it consumed */
	assert_string_equal(cfg.model, "x.gguf");
	i = 4;
	assert_int_equal(config_parse_common_flag(&cfg, &i, ARGC(argv), argv), 0); /* "file" */
	i = 5;
	assert_int_equal(config_parse_common_flag(&cfg, &i, ARGC(argv), argv), 1);
	assert_int_equal(i, 5);
	assert_int_equal(cfg.ctx, 512);
	i = 6;
	assert_int_equal(config_parse_common_flag(&cfg, &i, ARGC(argv), argv), 1);
	assert_int_equal(cfg.threads, 8);
	i = 7;
	assert_int_equal(config_parse_common_flag(&cfg, &i, ARGC(argv), argv), 1);
	assert_int_equal(i, 8);
	assert_int_equal(cfg.sampling.seed, 5);
	/* --config and -p are global only */
	i = 9;
	assert_int_equal(config_parse_common_flag(&cfg, &i, ARGC(argv), argv), 0);
	i = 11;
	assert_int_equal(config_parse_common_flag(&cfg, &i, ARGC(argv), argv), 0);
	i = 13;
	assert_int_equal(config_parse_common_flag(&cfg, &i, ARGC(argv), argv), 1);
	assert_int_equal(cfg.history_enabled, 0);
	i = 14;
	assert_int_equal(config_parse_common_flag(&cfg, &i, ARGC(argv), argv), -1);
	assert_string_equal(error_message(), "option '--threads' needs a value (N)");
	assert_int_equal(i, 14);
	{
		char *bad[] = { "x", "--temp", "hot", NULL };
		i = 1;
		assert_int_equal(config_parse_common_flag(&cfg, &i, 3, bad), -1);
		assert_string_equal(error_message(), "option '--temp': 'sampling.temperature' "
						     "must be a number, not 'hot'");
	}
	config_free(&cfg);
}

static int cmd_dummy(int argc, char **argv, struct config *cfg)
{
	(void)argc;
	(void)argv;
	(void)cfg;
	return 0;
}

static const struct command table[] = {
	{ "inspect", cmd_dummy, "look inside" },
	{ "config", cmd_dummy, "print it" },
	{ NULL, NULL, NULL },
};

static void test_suggest_command(void **state)
{
	(void)state;
	assert_string_equal(cli_suggest_command("confg", table), "config");
	assert_string_equal(cli_suggest_command("inpsect", table), "inspect");
	assert_null(cli_suggest_command("chat", table));
}

/* --help lists every option and every command with its summary. */
static void test_help(void **state)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *fp = open_memstream(&buf, &len);
	(void)state;
	assert_non_null(fp);
	cli_print_help(fp, table);
	fclose(fp);
	assert_non_null(strstr(buf, "usage: palaver [options] [COMMAND [ARGS]]"));
	assert_non_null(strstr(buf, "-m, --model FILE"));
	assert_non_null(strstr(buf, "--no-history"));
	assert_non_null(strstr(buf, "--log-file FILE"));
	assert_non_null(strstr(buf, "  inspect      look inside\n"));
	assert_non_null(strstr(buf, "  config       print it\n"));
	assert_non_null(strstr(buf, "2 usage or configuration error"));
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_global), cmocka_unit_test(test_parse_no_command),
		cmocka_unit_test(test_parse_errors), cmocka_unit_test(test_apply),
		cmocka_unit_test(test_common_flag),  cmocka_unit_test(test_suggest_command),
		cmocka_unit_test(test_help),
	};
	return cmocka_run_group_tests_name("cli", tests, NULL, NULL);
}
