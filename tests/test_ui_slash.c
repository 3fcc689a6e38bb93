/* ui/slash: command parsing, suggestions and Tab completion. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "slash.h"

static void test_table_sorted(void **state)
{
	(void)state;
	for (int i = 1; i < SLASH_COUNT; i++)
		assert_true(strcmp(slash_commands[i - 1].name, slash_commands[i].name) < 0);
	/* every id appears exactly once */
	int seen[SLASH_COUNT] = { 0 };
	for (int i = 0; i < SLASH_COUNT; i++)
		seen[slash_commands[i].id]++;
	for (int i = 0; i < SLASH_COUNT; i++)
		assert_int_equal(seen[i], 1);
}

static void test_parse(void **state)
{
	const char *args;
	char *unknown;
	const struct slash_command *c;
	(void)state;
	c = slash_parse("/new  My title  ", &args, &unknown);
	assert_non_null(c);
	assert_int_equal(c->id, SLASH_NEW);
	assert_string_equal(args, "My title  ");
	c = slash_parse("/quit", &args, &unknown);
	assert_int_equal(c->id, SLASH_QUIT);
	assert_string_equal(args, "");
	c = slash_parse("/system be brief\nand kind", &args, &unknown);
	assert_int_equal(c->id, SLASH_SYSTEM);
	assert_string_equal(args, "be brief\nand kind");
	/* not commands */
	assert_null(slash_parse("hello", &args, &unknown));
	assert_null(unknown);
	assert_null(slash_parse("//etc/passwd is a path", &args, &unknown));
	assert_null(unknown);
	assert_null(slash_parse("/ spaced", &args, &unknown));
	assert_null(unknown);
	assert_null(slash_parse("/", &args, &unknown));
	/* unknown */
	assert_null(slash_parse("/sesions x", &args, &unknown));
	assert_string_equal(unknown, "sesions");
	free(unknown);
}

static void test_suggest(void **state)
{
	(void)state;
	assert_string_equal(slash_suggest("sesions"), "sessions");
	assert_string_equal(slash_suggest("qiut"), "quit");
	assert_string_equal(slash_suggest("exit"), "edit");
	assert_string_equal(slash_suggest("sea"), "search");
	assert_null(slash_suggest("xyzzyplugh"));
	assert_null(slash_suggest(""));
	assert_int_equal(slash_distance("kitten", "sitting"), 3);
	assert_int_equal(slash_distance("", "abc"), 3);
	assert_int_equal(slash_distance("same", "same"), 0);
}

static void test_complete(void **state)
{
	const char *out[32];
	size_t ws, common;
	static const char *const keys[] = { "temperature", "top_k", "top_p", "seed", NULL };
	(void)state;
	int n = slash_complete("/se", keys, out, 32, &ws, &common);
	assert_int_equal(n, 3); /* search sessions set */
	assert_int_equal(ws, 1);
	n = slash_complete("/ses", keys, out, 32, &ws, &common);
	assert_int_equal(n, 1);
	assert_string_equal(out[0], "sessions");
	assert_int_equal(common, strlen("sessions"));
	n = slash_complete("/re", keys, out, 32, &ws, &common);
	assert_int_equal(n, 2); /* regen rename */
	assert_int_equal(common, 2);
	n = slash_complete("/set to", keys, out, 32, &ws, &common);
	assert_int_equal(n, 2);
	assert_int_equal(ws, 5);
	assert_int_equal(common, 4); /* "top_" */
	assert_int_equal(slash_complete("/set top_k 4", keys, out, 32, &ws, &common), 0);
	assert_int_equal(slash_complete("hello", keys, out, 32, &ws, &common), 0);
	assert_int_equal(slash_complete("/new title", keys, out, 32, &ws, &common), 0);
	n = slash_complete("/", keys, out, 32, &ws, &common);
	assert_int_equal(n, SLASH_COUNT);
}

static void touch(const char *dir, const char *name)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fclose(f);
}

/* /model and /export complete file names; /model only GGUF files and folders. */
static void test_complete_files(void **state)
{
	char dir[] = "/tmp/palaver-slash-XXXXXX", line[512], sub[300];
	char *out[16];
	size_t ws, common;
	(void)state;
	assert_non_null(mkdtemp(dir));
	touch(dir, "tiny.gguf");
	touch(dir, "tinier.gguf");
	touch(dir, "notes.txt");
	touch(dir, ".hidden.gguf");
	snprintf(sub, sizeof(sub), "%s/models", dir);
	assert_int_equal(mkdir(sub, 0700), 0);

	snprintf(line, sizeof(line), "/model %s/t", dir);
	int n = slash_complete_files(line, out, 16, &ws, &common);
	assert_int_equal(n, 2);
	assert_int_equal(ws, strlen("/model "));
	assert_int_equal(common, strlen(dir) + strlen("/tin"));
	snprintf(sub, sizeof(sub), "%s/tinier.gguf", dir);
	assert_string_equal(out[0], sub); /* sorted */
	for (int i = 0; i < n; i++)
		free(out[i]);

	snprintf(line, sizeof(line), "/model %s/", dir);
	n = slash_complete_files(line, out, 16, &ws, &common);
	assert_int_equal(n, 3); /* models/ tinier.gguf tiny.gguf: no .txt, no dot files */
	snprintf(sub, sizeof(sub), "%s/models/", dir);
	assert_string_equal(out[0], sub);
	for (int i = 0; i < n; i++)
		free(out[i]);

	snprintf(line, sizeof(line), "/export %s/no", dir);
	n = slash_complete_files(line, out, 16, &ws, &common);
	assert_int_equal(n, 1); /* any file for /export */
	free(out[0]);
	snprintf(line, sizeof(line), "/model %s/.h", dir);
	assert_int_equal(slash_complete_files(line, out, 16, &ws, &common), 1);
	free(out[0]);
	assert_int_equal(slash_complete_files("/new x", out, 16, &ws, &common), 0);
	assert_int_equal(slash_complete_files("/model /no/such/dir/x", out, 16, &ws, &common), 0);

	char cmd[600];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
}

/* /help's first section holds the everyday commands. */
static void test_help_groups(void **state)
{
	(void)state;
	for (int i = 0; i < SLASH_COUNT; i++) {
		const struct slash_command *k = &slash_commands[i];
		assert_true(k->group >= 0 && k->group <= 2);
		if (k->id == SLASH_HELP || k->id == SLASH_QUIT || k->id == SLASH_NEW ||
		    k->id == SLASH_MODEL || k->id == SLASH_SET)
			assert_int_equal(k->group, 0);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table_sorted),   cmocka_unit_test(test_parse),
		cmocka_unit_test(test_suggest),        cmocka_unit_test(test_complete),
		cmocka_unit_test(test_complete_files), cmocka_unit_test(test_help_groups),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
