/* config: every error class, all precedence layers, env, did-you-mean, atomic commits. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "engine.h"
#include "json.h"
#include "log.h"
#include "options.h"
#include "report.h"
#include "strbuf.h"

static char tmpdir[64];

/* Write text to tmpdir/name; returns the path in a static buffer (one at a time). */
static const char *write_file(const char *name, const char *text)
{
	static char path[4][256];
	static int slot;
	char *p = path[slot++ % 4];
	FILE *fp;
	snprintf(p, 256, "%s/%s", tmpdir, name);
	fp = fopen(p, "w");
	assert_non_null(fp);
	fputs(text, fp);
	fclose(fp);
	return p;
}

static void clear_env(void)
{
	for (int k = 0; k < config_key_count(); k++)
		if (config_env_name(k))
			unsetenv(config_env_name(k));
}

static int setup(void **state)
{
	(void)state;
	strcpy(tmpdir, "/tmp/palaver-test-config-XXXXXX");
	assert_non_null(mkdtemp(tmpdir));
	clear_env();
	/* the user's own config must not leak into the tests */
	setenv("XDG_CONFIG_HOME", tmpdir, 1);
	error_clear();
	return 0;
}

static int teardown(void **state)
{
	char cmd[128];
	(void)state;
	clear_env();
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	assert_int_equal(system(cmd), 0);
	return 0;
}

/* Load text as a file; expect failure with message "NAME:" + want. */
static void expect_error(const char *text, const char *want)
{
	struct config cfg, before;
	struct strbuf a = STRBUF_INIT, b = STRBUF_INIT;
	char full[512];
	const char *path = write_file("bad.yaml", text);

	config_init(&cfg);
	config_set(&cfg, "threads", "3", "--threads");
	config_copy(&before, &cfg);
	assert_int_equal(config_load_file(&cfg, path, 1), -1);
	snprintf(full, sizeof(full), "%s:%s", path, want);
	assert_string_equal(error_message(), full);
	/* nothing half-applied: the configuration is exactly as before */
	config_print(&before, &a, 1);
	config_print(&cfg, &b, 1);
	assert_string_equal(a.buf, b.buf);
	strbuf_release(&a);
	strbuf_release(&b);
	config_free(&cfg);
	config_free(&before);
}

static void test_defaults(void **state)
{
	struct config cfg;
	(void)state;
	config_init(&cfg);
	assert_null(cfg.model);
	assert_int_equal(cfg.ctx, 0);
	assert_int_equal(cfg.threads, 0);
	assert_int_equal(cfg.backend, BACKEND_AUTO);
	assert_int_equal(cfg.batch_size, 512);
	assert_true(cfg.sampling.temperature == 0.8);
	assert_int_equal(cfg.sampling.top_k, 40);
	assert_int_equal(cfg.sampling.max_tokens, -1);
	assert_true(cfg.sampling.seed_random);
	assert_string_equal(cfg.chat_template, "auto");
	assert_int_equal(cfg.context_overflow, OVERFLOW_DROP_OLDEST);
	assert_int_equal(cfg.history_enabled, 1);
	assert_int_equal(cfg.log_level, LOG_INFO);
	for (int k = 0; k < config_key_count(); k++)
		assert_null(cfg.origin[k]);
	config_free(&cfg);
}

/* The repository's config.yaml documents the defaults: loading it changes no value. */
static void test_repo_config_is_defaults(void **state)
{
	struct config def, cfg;
	struct strbuf a = STRBUF_INIT, b = STRBUF_INIT;
	(void)state;
	config_init(&def);
	config_init(&cfg);
	if (config_load_file(&cfg, "config.yaml", 1) < 0)
		fail_msg("%s", error_message());
	config_print(&def, &a, 0);
	config_print(&cfg, &b, 0);
	assert_string_equal(a.buf, b.buf);
	/* and every key is present in it */
	for (int k = 0; k < config_key_count(); k++)
		assert_non_null(cfg.origin[k]);
	strbuf_release(&a);
	strbuf_release(&b);
	config_free(&def);
	config_free(&cfg);
}

static void test_load_values(void **state)
{
	struct config cfg;
	const char *path;
	(void)state;
	path = write_file("good.yaml", "# comment\n"
				       "model: /models/x.gguf\n"
				       "ctx: 2048\n"
				       "backend: cpu\n"
				       "sampling:\n"
				       "  temperature: 0.25\n"
				       "  seed: 1234\n"
				       "system_prompt: \"be \\\"brief\\\"\"\n"
				       "stop: [\"</s>\", 'User:']\n"
				       "memory:\n"
				       "  limit: 8GiB\n"
				       "  mode: warn\n"
				       "history: {enabled: no}\n"
				       "ui:\n"
				       "  word_wrap: off\n"
				       "log:\n"
				       "  level: debug\n");
	config_init(&cfg);
	if (config_load_file(&cfg, path, 1) < 0)
		fail_msg("%s", error_message());
	assert_string_equal(cfg.model, "/models/x.gguf");
	assert_int_equal(cfg.ctx, 2048);
	assert_int_equal(cfg.backend, BACKEND_CPU);
	assert_true(cfg.sampling.temperature == 0.25);
	assert_int_equal(cfg.sampling.seed, 1234);
	assert_false(cfg.sampling.seed_random);
	assert_string_equal(cfg.system_prompt, "be \"brief\"");
	assert_int_equal(cfg.n_stop, 2);
	assert_string_equal(cfg.stop[0], "</s>");
	assert_string_equal(cfg.stop[1], "User:");
	assert_true(cfg.memory_limit == 8ull << 30);
	assert_int_equal(cfg.memory_mode, MEMORY_WARN);
	assert_int_equal(cfg.history_enabled, 0);
	assert_int_equal(cfg.ui_word_wrap, 0);
	assert_int_equal(cfg.log_level, LOG_DEBUG);
	/* origins: FILE:LINE of the key */
	{
		char want[300];
		snprintf(want, sizeof(want), "%s:2", path);
		assert_string_equal(cfg.origin[config_key_index("model")], want);
		snprintf(want, sizeof(want), "%s:6", path);
		assert_string_equal(cfg.origin[config_key_index("sampling.temperature")], want);
		assert_null(cfg.origin[config_key_index("threads")]);
	}
	assert_non_null(cfg.config_files);
	config_free(&cfg);
}

static void test_error_bad_yaml(void **state)
{
	(void)state;
	expect_error("threads: 4\nmodel: [a\n", "3:1: bad YAML: did not find expected ',' or ']'");
	expect_error("threads: 4\n  model: x\n",
		     "2:8: bad YAML: mapping values are not allowed in this context");
	expect_error("- a\n- b\n", "1:1: the configuration must be a mapping of keys to values");
	expect_error("threads: 1\n---\nthreads: 2\n", "3:1: only one YAML document is allowed");
	expect_error("threads: 4\n\tmodel: x\n",
		     "2:1: bad YAML: found a tab character that violates indentation");
	expect_error("threads: 4\nmodel: \"ab\xff\"\n",
		     "2:11: bad YAML: invalid leading UTF-8 octet");
}

static void test_error_unknown_key(void **state)
{
	(void)state;
	expect_error("threads: 2\nthread: 4\n",
		     "2:1: unknown key 'thread'; did you mean 'threads'?");
	expect_error("sampling:\n  temprature: 0.3\n",
		     "2:3: unknown key 'temprature' in 'sampling'; did you mean 'temperature'?");
	/* a key in the wrong section points at the right one */
	expect_error("temperature: 0.3\n",
		     "1:1: unknown key 'temperature'; did you mean 'sampling.temperature'?");
	expect_error("sampling:\n  threads: 3\n",
		     "2:3: unknown key 'threads' in 'sampling'; did you mean 'threads'?");
	expect_error("samplnig:\n  top_k: 3\n",
		     "1:1: unknown key 'samplnig'; did you mean 'sampling'?");
	/* nothing close: no suggestion */
	expect_error("colour: red\n", "1:1: unknown key 'colour'");
}

static void test_error_duplicate_key(void **state)
{
	(void)state;
	expect_error("threads: 2\nmodel: a\nthreads: 4\n",
		     "3:1: duplicate key 'threads' (first given on line 1)");
	expect_error("context: 512\nctx: 1024\n",
		     "2:1: duplicate key 'ctx' (first given on line 1)");
	expect_error("sampling:\n  top_k: 1\n  top_k: 2\n",
		     "3:3: duplicate key 'top_k' (first given on line 2)");
	expect_error("ui:\n  theme: mono\nui:\n  word_wrap: true\n",
		     "3:1: duplicate key 'ui' (first given on line 1)");
}

static void test_error_wrong_type(void **state)
{
	(void)state;
	expect_error("threads: four\n", "1:10: 'threads' must be an integer, not 'four'");
	expect_error("threads: \"4\"\n",
		     "1:10: 'threads' must be an integer, not a quoted string (\"4\")");
	expect_error("model: {a: b}\n", "1:8: 'model' must be a single value, not a mapping");
	expect_error("sampling:\n  top_p: [1]\n",
		     "2:10: 'sampling.top_p' must be a single value, not a list");
	expect_error("sampling: 3\n", "1:11: 'sampling' must be a mapping of keys, not a scalar");
	expect_error("history:\n  enabled: maybe\n",
		     "2:12: 'history.enabled' must be true or false, not 'maybe'");
	expect_error(
		"backend: cdua\n",
		"1:10: 'backend' must be one of auto, cpu, cuda, not 'cdua'; did you mean 'cuda'?");
	expect_error("ui:\n  theme: mnoo\n",
		     "2:10: 'ui.theme' must be one of default, mono, light, not 'mnoo'; did you mean "
		     "'mono'?");
	expect_error("stop: [a, [b]]\n", "1:11: 'stop' items must be strings, not a list");
	expect_error("stop: </s>\n",
		     "1:7: 'stop' must be a list of strings, such as [\"</s>\", \"User:\"]");
	expect_error("memory:\n  limit: lots\n",
		     "2:10: 'memory.limit' must be a size such as 8GiB, 512MiB or 0, not 'lots'");
	expect_error("chat_template: \"\"\n", "1:16: 'chat_template' must be a non-empty string");
	expect_error("sampling:\n  seed: -5\n",
		     "2:9: 'sampling.seed' must be an integer from 0 to 18446744073709551615 or "
		     "random, not '-5'");
	expect_error("stop: [a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p,q]\n",
		     "1:40: 'stop' holds at most 16 strings");
}

static void test_error_out_of_range(void **state)
{
	(void)state;
	expect_error("threads: -1\n", "1:10: 'threads' must be between 0 and 1024, not -1");
	expect_error("threads: 99999999999999999999\n",
		     "1:10: 'threads' must be an integer, not '99999999999999999999'");
	expect_error("sampling:\n  top_p: 1.5\n",
		     "2:10: 'sampling.top_p' must be between 0 and 1, not 1.5");
	expect_error("sampling:\n  repeat_penalty: 0\n",
		     "2:19: 'sampling.repeat_penalty' must be above 0 and at most 10, not 0");
	expect_error("batch_size: 0\n", "1:13: 'batch_size' must be between 1 and 65536, not 0");
	expect_error("sampling:\n  temperature: .nan\n",
		     "2:16: 'sampling.temperature' must be a number, not '.nan'");
}

/* A bad key at the end of a file leaves the good keys before it unapplied. */
static void test_nothing_half_applied(void **state)
{
	struct config cfg;
	const char *path;
	(void)state;
	path = write_file("half.yaml",
			  "model: a.gguf\nthreads: 8\nsampling:\n  top_k: 0\n  top_q: 1\n");
	config_init(&cfg);
	assert_int_equal(config_load_file(&cfg, path, 1), -1);
	assert_null(cfg.model);
	assert_int_equal(cfg.threads, 0);
	assert_int_equal(cfg.sampling.top_k, 40);
	assert_null(cfg.origin[config_key_index("model")]);
	assert_null(cfg.config_files);

	/* across layers too: a good system file is not applied when --config is bad */
	{
		const char *sys = write_file("sys.yaml", "model: sys.gguf\n");
		const char *bad = write_file("bad2.yaml", "threads: x\n");
		assert_int_equal(config_load(&cfg, sys, bad), -1);
		assert_null(cfg.model);
		setenv("PALAVER_THREADS", "many", 1);
		assert_int_equal(config_load(&cfg, sys, NULL), -1);
		assert_string_equal(error_message(),
				    "$PALAVER_THREADS: 'threads' must be an integer, not 'many'");
		assert_null(cfg.model);
		unsetenv("PALAVER_THREADS");
	}
	config_free(&cfg);
}

static void test_missing_and_empty_files(void **state)
{
	struct config cfg;
	char path[256];
	(void)state;
	config_init(&cfg);
	snprintf(path, sizeof(path), "%s/none.yaml", tmpdir);
	assert_int_equal(config_load_file(&cfg, path, 0), 0);
	assert_int_equal(config_load_file(&cfg, path, 1), -1);
	assert_non_null(strstr(error_message(), "cannot read config file"));
	assert_non_null(strstr(error_message(), "No such file or directory"));
	assert_int_equal(config_load_file(&cfg, tmpdir, 1), -1);
	assert_non_null(strstr(error_message(), "Is a directory"));
	assert_int_equal(config_load_file(&cfg, write_file("e.yaml", ""), 1), 0);
	assert_int_equal(config_load_file(&cfg, write_file("c.yaml", "# only\n# comments\n"), 1),
			 0);
	assert_int_equal(config_load_file(&cfg, write_file("s.yaml", "sampling:\n"), 1), 0);
	assert_true(cfg.sampling.temperature == 0.8);
	config_free(&cfg);
}

/* defaults < system < user (XDG) < --config < env < flags, each with its origin. */
static void test_precedence_all_layers(void **state)
{
	struct config cfg;
	struct cli cli;
	char *argv[] = { "palaver", "--seed", "99", "-m", "flag.gguf", NULL };
	char xdg_dir[256];
	const char *sys, *user, *expl;
	(void)state;

	snprintf(xdg_dir, sizeof(xdg_dir), "%s/palaver", tmpdir);
	assert_int_equal(system("mkdir -p \"$XDG_CONFIG_HOME/palaver\""), 0);
	sys = write_file("system.yaml", "model: sys.gguf\nthreads: 1\nctx: 100\nbatch_size: 10\n"
					"sampling:\n  top_k: 11\n  seed: 1\n");
	user = write_file("palaver/config.yaml", "model: user.gguf\nthreads: 2\nctx: 200\n"
						 "sampling:\n  seed: 2\n");
	expl = write_file("explicit.yaml",
			  "model: explicit.gguf\nthreads: 3\nsampling:\n  seed: 3\n");
	setenv("PALAVER_MODEL", "env.gguf", 1);
	setenv("PALAVER_SEED", "4", 1);

	config_init(&cfg);
	if (config_load(&cfg, sys, expl) < 0)
		fail_msg("%s", error_message());
	assert_int_equal(cli_parse(&cli, 5, argv), 0);
	assert_int_equal(cli_apply(&cli, &cfg), 0);

	assert_int_equal(cfg.batch_size, 10);         /* system only */
	assert_int_equal(cfg.sampling.top_k, 11);     /* system only */
	assert_int_equal(cfg.ctx, 200);               /* user over system */
	assert_int_equal(cfg.threads, 3);             /* --config over user */
	assert_string_equal(cfg.model, "flag.gguf");  /* flag over env */
	assert_int_equal(cfg.sampling.seed, 99);      /* flag over env */
	assert_true(cfg.sampling.temperature == 0.8); /* default */

	{
		char want[300];
		snprintf(want, sizeof(want), "%s:4", sys);
		assert_string_equal(cfg.origin[config_key_index("batch_size")], want);
		snprintf(want, sizeof(want), "%s:3", user);
		assert_string_equal(cfg.origin[config_key_index("context")], want);
		snprintf(want, sizeof(want), "%s:2", expl);
		assert_string_equal(cfg.origin[config_key_index("threads")], want);
		assert_string_equal(cfg.origin[config_key_index("model")], "--model");
		assert_string_equal(cfg.origin[config_key_index("sampling.seed")], "--seed");
		assert_null(cfg.origin[config_key_index("sampling.temperature")]);
		snprintf(want, sizeof(want), "%s, %s, %s", sys, user, expl);
		assert_string_equal(cfg.config_files, want);
	}
	config_free(&cfg);

	/* without flags the environment wins over every file */
	config_init(&cfg);
	assert_int_equal(config_load(&cfg, sys, expl), 0);
	assert_string_equal(cfg.model, "env.gguf");
	assert_int_equal(cfg.sampling.seed, 4);
	assert_string_equal(cfg.origin[config_key_index("model")], "$PALAVER_MODEL");
	assert_string_equal(cfg.origin[config_key_index("sampling.seed")], "$PALAVER_SEED");
	config_free(&cfg);
}

static void test_env_override(void **state)
{
	struct config cfg;
	(void)state;
	setenv("PALAVER_TEMPERATURE", "0.3", 1);
	setenv("PALAVER_THREADS", "6", 1);
	setenv("PALAVER_MEMORY_LIMIT", "512MiB", 1);
	setenv("PALAVER_HISTORY_ENABLED", "false", 1);
	setenv("PALAVER_SYSTEM_PROMPT", "", 1);
	config_init(&cfg);
	assert_int_equal(config_load_env(&cfg), 0);
	assert_true(cfg.sampling.temperature == 0.3);
	assert_int_equal(cfg.threads, 6);
	assert_true(cfg.memory_limit == 512ull << 20);
	assert_int_equal(cfg.history_enabled, 0);
	assert_null(cfg.system_prompt);
	assert_string_equal(cfg.origin[config_key_index("threads")], "$PALAVER_THREADS");

	setenv("PALAVER_BACKEND", "gpu", 1);
	assert_int_equal(config_load_env(&cfg), -1);
	assert_string_equal(
		error_message(),
		"$PALAVER_BACKEND: 'backend' must be one of auto, cpu, cuda, not 'gpu'");
	config_free(&cfg);
	/* every key but stop has a variable, all named PALAVER_* */
	for (int k = 0; k < config_key_count(); k++) {
		const char *e = config_env_name(k);
		if (!strcmp(config_key_name(k), "stop"))
			assert_null(e);
		else
			assert_true(e && !strncmp(e, "PALAVER_", 8));
	}
}

static void test_did_you_mean_distance(void **state)
{
	(void)state;
	assert_int_equal(config_edit_distance("threads", "threads"), 0);
	assert_int_equal(config_edit_distance("thread", "threads"), 1);
	assert_int_equal(config_edit_distance("temprature", "temperature"), 1);
	assert_int_equal(config_edit_distance("tmeperature", "temperature"), 1); /* transposition */
	assert_int_equal(config_edit_distance("", "abc"), 3);
	assert_int_equal(config_edit_distance("kitten", "sitting"), 3);
}

static void test_config_set(void **state)
{
	struct config cfg;
	(void)state;
	config_init(&cfg);
	assert_int_equal(config_set(&cfg, "sampling.top_p", "0.5", "--top-p"), 0);
	assert_true(cfg.sampling.top_p == 0.5);
	assert_string_equal(cfg.origin[config_key_index("sampling.top_p")], "--top-p");
	assert_int_equal(config_set(&cfg, "ctx", "4096", "--ctx"), 0);
	assert_int_equal(cfg.ctx, 4096);
	assert_int_equal(config_set(&cfg, "sampling.top_p", "2", "--top-p"), -1);
	assert_true(cfg.sampling.top_p == 0.5);
	assert_int_equal(config_set(&cfg, "nope", "1", "x"), -1);
	assert_string_equal(error_message(), "unknown configuration key 'nope'");
	assert_int_equal(config_set(&cfg, "stop", "x", "x"), -1);
	assert_int_equal(config_set(&cfg, "sampling.seed", "random", "--seed"), 0);
	assert_true(cfg.sampling.seed_random);
	assert_int_equal(config_set(&cfg, "sampling.seed", "18446744073709551615", "--seed"), 0);
	assert_true(cfg.sampling.seed == UINT64_MAX);
	assert_false(cfg.sampling.seed_random);
	assert_int_equal(config_set(&cfg, "sampling.seed", "18446744073709551616", "--seed"), -1);
	/* "~/" in file keys is the home directory; elsewhere it is text */
	setenv("HOME", "/home/someone", 1);
	assert_int_equal(config_set(&cfg, "model", "~/m.gguf", "x"), 0);
	assert_string_equal(cfg.model, "/home/someone/m.gguf");
	assert_int_equal(config_set(&cfg, "system_prompt", "~/m.gguf", "x"), 0);
	assert_string_equal(cfg.system_prompt, "~/m.gguf");
	assert_int_equal(config_set(&cfg, "log.level", "warning", "--log-level"), 0);
	assert_int_equal(cfg.log_level, LOG_WARN);
	config_free(&cfg);
}

static void test_seed_finish(void **state)
{
	struct config cfg;
	(void)state;
	config_init(&cfg);
	config_finish(&cfg);
	assert_true(cfg.sampling.seed_random);
	uint64_t a = cfg.sampling.seed;
	usleep(1000);
	config_finish(&cfg);
	assert_true(cfg.sampling.seed != a); /* drawn from the clock each time */
	config_set(&cfg, "sampling.seed", "7", "--seed");
	config_finish(&cfg);
	assert_int_equal(cfg.sampling.seed, 7);
	config_free(&cfg);
}

/* `palaver config --no-origin` output is a config file that loads to the same values. */
static void test_print_round_trip(void **state)
{
	struct config a, b;
	struct strbuf sa = STRBUF_INIT, sb = STRBUF_INIT;
	const char *path;
	(void)state;
	config_init(&a);
	config_set(&a, "system_prompt", "say \"hi\"\n\tthen \\ stop: # not a comment", "x");
	config_set(&a, "model", "/m/ü.gguf", "x");
	config_set(&a, "sampling.temperature", "0.1", "x");
	config_set(&a, "memory.limit", "3000000", "x");
	config_set(&a, "sampling.seed", "42", "x");
	a.stop[0] = strdup("</s>");
	a.stop[1] = strdup("a\"b");
	a.n_stop = 2;
	config_print(&a, &sa, 0);
	path = write_file("round.yaml", sa.buf);
	config_init(&b);
	if (config_load_file(&b, path, 1) < 0)
		fail_msg("%s\n%s", error_message(), sa.buf);
	config_print(&b, &sb, 0);
	assert_string_equal(sa.buf, sb.buf);
	assert_string_equal(b.system_prompt, a.system_prompt);
	assert_true(b.sampling.temperature == 0.1);
	strbuf_release(&sa);
	strbuf_release(&sb);
	/* with origins every key line carries a comment */
	config_print(&b, &sa, 1);
	assert_non_null(strstr(sa.buf, "  temperature: 0.1"));
	assert_non_null(strstr(sa.buf, "round.yaml:"));
	strbuf_reset(&sa);
	config_print(&a, &sa, 1);
	assert_non_null(strstr(sa.buf, "# default\n"));
	{
		/* values and comments line up in one column */
		char want[64];
		snprintf(want, sizeof(want), "\n%-40s# x\n", "  temperature: 0.1");
		assert_non_null(strstr(sa.buf, want));
	}
	strbuf_release(&sa);
	config_free(&a);
	config_free(&b);
}

/* /set goes through the key table: the ranges of config.yaml, no others. */
static void test_sampling_set_uses_the_table(void **state)
{
	struct config cfg;
	struct strbuf sb = STRBUF_INIT;
	config_init(&cfg);
	struct config_sampling s = cfg.sampling;
	/* the old /set refused these, config.yaml takes them */
	assert_int_equal(config_sampling_set(&s, "repeat_last_n", "-1"), 0);
	assert_int_equal(s.repeat_last_n, -1);
	assert_int_equal(config_sampling_set(&s, "sampling.top_p", "0.5"), 0);
	assert_true(s.top_p == 0.5);
	/* ... and the old /set took these, which config.yaml refuses */
	assert_int_equal(config_sampling_set(&s, "temperature", "11"), -1);
	assert_non_null(strstr(error_message(), "'sampling.temperature' must be between 0 and 10"));
	assert_int_equal(config_sampling_set(&s, "presence_penalty", "3"), -1);
	assert_int_equal(config_sampling_set(&s, "max_tokens", "1073741823"), -1);
	assert_int_equal(config_sampling_set(&s, "temperature", "nan"), -1);
	assert_int_equal(config_sampling_set(&s, "top_k", "2.5"), -1);
	assert_int_equal(config_sampling_set(&s, "temprature", "1"), -1);
	assert_non_null(strstr(error_message(), "unknown setting 'temprature'"));
	assert_int_equal(config_sampling_set(&s, "threads", "1"), -1); /* not a sampling key */
	assert_true(s.temperature == cfg.sampling.temperature);
	/* a seed, and "random" draws one */
	assert_int_equal(config_sampling_set(&s, "seed", "18446744073709551615"), 0);
	assert_true(s.seed == UINT64_MAX);
	assert_int_equal(config_sampling_set(&s, "seed", "random"), 0);
	assert_true(s.seed != UINT64_MAX);
	config_sampling_format(&s, "top_p", &sb);
	assert_string_equal(sb.buf, "0.5");
	strbuf_release(&sb);
	/* the names: the sampling section of the table, leaf names */
	const char *const *names = config_sampling_names();
	assert_string_equal(names[0], "temperature");
	int n = 0;
	while (names[n])
		n++;
	assert_int_equal(n, 11);
	config_free(&cfg);
}

/* A session's sampling JSON: written from the table, read back through it. */
static void test_sampling_json_round_trip(void **state)
{
	struct config cfg;
	struct strbuf js = STRBUF_INIT, problems = STRBUF_INIT;
	config_init(&cfg);
	struct config_sampling s = cfg.sampling, back;
	s.temperature = 0.123456789;
	s.top_k = 7;
	s.max_tokens = 300;
	config_sampling_json(&s, &js);
	assert_non_null(strstr(js.buf, "\"temperature\":0.123456789,"));
	assert_non_null(strstr(js.buf, "\"max_tokens\":300}"));
	struct json *j = json_parse(js.buf, js.len);
	assert_non_null(j);
	config_free(&cfg);
	config_init(&cfg); /* fresh origins: nothing set for this run */
	back = cfg.sampling;
	assert_int_equal(config_sampling_from_json(&back, j, &cfg, &problems), 0);
	assert_true(back.temperature == s.temperature);
	assert_int_equal(back.top_k, 7);
	assert_int_equal(back.max_tokens, 300);
	json_free(j);

	/* a key set for this run (its origin) wins over the session's */
	config_set(&cfg, "sampling.top_k", "3", "--top-k");
	back = cfg.sampling;
	j = json_parse(js.buf, js.len);
	config_sampling_from_json(&back, j, &cfg, &problems);
	assert_int_equal(back.top_k, 3);
	json_free(j);

	/* out of range or of the wrong type: left out and named */
	const char *bad = "{\"temperature\":1e308,\"top_p\":-5,\"top_k\":\"x\",\"min_p\":0.2}";
	j = json_parse(bad, strlen(bad));
	back = cfg.sampling;
	assert_int_equal(config_sampling_from_json(&back, j, NULL, &problems), 3);
	assert_true(back.temperature == cfg.sampling.temperature);
	assert_true(back.min_p == 0.2);
	assert_non_null(strstr(problems.buf, "'sampling.temperature' must be between 0 and 10"));
	assert_non_null(strstr(problems.buf, "'sampling.top_p'"));
	assert_non_null(strstr(problems.buf, "'sampling.top_k' must be a number"));
	json_free(j);
	strbuf_release(&js);
	strbuf_release(&problems);
	config_free(&cfg);
}

/* Import repair: the object again without the members that fail. */
static void test_sampling_check_json(void **state)
{
	struct strbuf fixed = STRBUF_INIT, problems = STRBUF_INIT;
	const char *good = "{\"temperature\": 0.5, \"future_key\": [1, 2], \"seed\": 42}";
	struct json *j = json_parse(good, strlen(good));
	assert_int_equal(config_sampling_check_json(j, good, &fixed, &problems), 0);
	assert_int_equal(fixed.len, 0);
	json_free(j);
	const char *bad = "{\"temperature\": 1e308, \"future_key\": [1, 2], \"seed\": -1, "
			  "\"top_k\": 40}";
	j = json_parse(bad, strlen(bad));
	assert_int_equal(config_sampling_check_json(j, bad, &fixed, &problems), 2);
	assert_string_equal(fixed.buf, "{\"future_key\":[1, 2],\"top_k\":40}");
	assert_non_null(strstr(problems.buf, "'sampling.seed' must be an integer from 0"));
	json_free(j);
	strbuf_release(&fixed);
	strbuf_release(&problems);
}

/* One function builds the engine configuration and one the request. */
static void test_to_engine_and_request(void **state)
{
	struct config cfg;
	struct engine_config ec;
	struct engine_request rq;
	config_init(&cfg);
	config_set(&cfg, "context_overflow", "shift", "test");
	config_set(&cfg, "threads", "3", "test");
	config_to_engine(&cfg, "m.gguf", NULL, NULL, &ec);
	assert_string_equal(ec.model_path, "m.gguf");
	assert_null(ec.remote_url);
	assert_int_equal(ec.overflow, ENGINE_OVERFLOW_SHIFT);
	assert_int_equal(ec.n_threads, 3);
	assert_string_equal(ec.chat_template, "auto");
	config_to_engine(&cfg, "", "http://localhost:8080", "qwen", &ec);
	assert_string_equal(ec.remote_url, "http://localhost:8080");
	assert_string_equal(ec.remote_model, "qwen");

	struct config_sampling s = cfg.sampling;
	s.top_k = 5;
	assert_int_equal(config_to_request(&cfg, &s, &rq), 0);
	assert_int_equal(rq.sampling.top_k, 5);
	assert_int_equal(rq.max_tokens, -1);
	assert_int_equal(rq.add_generation_prompt, 1);
	assert_int_equal(rq.think, ENGINE_THINK_DEFAULT);
	/* the think key (--think, the chat's /think on|off) reaches each request */
	assert_int_equal(config_set(&cfg, "think", "off", "test"), 0);
	assert_int_equal(config_to_request(&cfg, &s, &rq), 0);
	assert_int_equal(rq.think, ENGINE_THINK_OFF);
	assert_int_equal(config_set(&cfg, "think", "on", "test"), 0);
	assert_int_equal(config_to_request(&cfg, &s, &rq), 0);
	assert_int_equal(rq.think, ENGINE_THINK_ON);
	assert_int_equal(config_set(&cfg, "think", "maybe", "test"), -1);
	assert_int_equal(cfg.think, THINK_ON);
	/* a value no key accepts never reaches the engine */
	s.temperature = 1e308;
	assert_int_equal(config_to_request(&cfg, &s, &rq), -1);
	assert_non_null(strstr(error_message(), "'sampling.temperature'"));
	config_free(&cfg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_defaults, setup, teardown),
		cmocka_unit_test_setup_teardown(test_repo_config_is_defaults, setup, teardown),
		cmocka_unit_test_setup_teardown(test_load_values, setup, teardown),
		cmocka_unit_test_setup_teardown(test_error_bad_yaml, setup, teardown),
		cmocka_unit_test_setup_teardown(test_error_unknown_key, setup, teardown),
		cmocka_unit_test_setup_teardown(test_error_duplicate_key, setup, teardown),
		cmocka_unit_test_setup_teardown(test_error_wrong_type, setup, teardown),
		cmocka_unit_test_setup_teardown(test_error_out_of_range, setup, teardown),
		cmocka_unit_test_setup_teardown(test_nothing_half_applied, setup, teardown),
		cmocka_unit_test_setup_teardown(test_missing_and_empty_files, setup, teardown),
		cmocka_unit_test_setup_teardown(test_precedence_all_layers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_env_override, setup, teardown),
		cmocka_unit_test_setup_teardown(test_did_you_mean_distance, setup, teardown),
		cmocka_unit_test_setup_teardown(test_config_set, setup, teardown),
		cmocka_unit_test_setup_teardown(test_seed_finish, setup, teardown),
		cmocka_unit_test_setup_teardown(test_print_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sampling_set_uses_the_table, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sampling_json_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sampling_check_json, setup, teardown),
		cmocka_unit_test_setup_teardown(test_to_engine_and_request, setup, teardown),
	};
	return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
