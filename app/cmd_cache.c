/* palaver cache: list and clear the KV caches saved with sessions. */
#include "commands.h"
#include "config.h"
#include "engine.h"
#include "report.h"
#include "untrusted.h"
#include "strbuf.h"
#include "util.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

static void cache_usage(FILE *fp)
{
	fprintf(fp, "usage: palaver cache [list]\n"
		    "       palaver cache clear [SESSION...]\n"
		    "\n"
		    "When a reply finishes, the model's KV cache (the conversation as the model\n"
		    "has read it) is saved with the session under $XDG_CACHE_HOME/palaver/kv/,\n"
		    "so that resuming the session reads it back instead of recomputing it.\n"
		    "kv_cache.max_disk caps their total size (least recently used go first).\n"
		    "\n"
		    "  list          each saved state: session, tokens, size, last use, model\n"
		    "  clear         remove them all, or those of the sessions named (ids)\n"
		    "  -h, --help    print this help\n");
}

static void format_time(char *buf, size_t n, int64_t ms)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	if (!localtime_r(&t, &tm) || !strftime(buf, n, "%Y-%m-%d %H:%M", &tm))
		snprintf(buf, n, "?");
}

/* A name read from a file, with control characters shown as '?'; on a
 * terminal through the sanitizing printer (C1 controls and bytes that are
 * not UTF-8 too). */
static void print_clean(const char *s)
{
	if (untrusted_tty(stdout)) {
		untrusted_print(stdout, s, strlen(s), 0);
		return;
	}
	for (; *s; s++)
		putchar((unsigned char)*s < 0x20 || *s == 0x7f ? '?' : *s);
}

static int do_list(const char *dir, const struct config *cfg)
{
	struct engine_kv_file *f;
	size_t n;
	uint64_t total = 0;
	char a[32], b[32];
	if (engine_kv_list(dir, &f, &n) < 0) {
		fprintf(stderr, "palaver: %s\n", error_message());
		return EXIT_RUNTIME;
	}
	if (!n) {
		fprintf(stderr, "palaver: no saved KV caches in '%s'\n", dir);
		engine_kv_list_free(f, n);
		return EXIT_OK;
	}
	printf("%-8s  %7s  %10s  %-16s  %s\n", "SESSION", "TOKENS", "SIZE", "LAST USED", "MODEL");
	for (size_t i = 0; i < n; i++) {
		char when[32];
		format_time(when, sizeof(when), f[i].used_ms);
		printf("%-8s  ", f[i].session);
		if (f[i].tokens >= 0)
			printf("%7d", f[i].tokens);
		else
			printf("%7s", "?");
		printf("  %10s  %-16s  ", format_size(a, sizeof(a), f[i].bytes), when);
		if (f[i].tokens >= 0)
			print_clean(f[i].model);
		else
			printf("(not a state this palaver reads)");
		putchar('\n');
		total += f[i].bytes;
	}
	printf("%zu saved, %s in '%s'", n, format_size(a, sizeof(a), total), dir);
	if (cfg->kv_max_disk)
		printf(" (kv_cache.max_disk %s)\n", format_size(b, sizeof(b), cfg->kv_max_disk));
	else
		printf(" (kv_cache.max_disk 0: no new ones are saved)\n");
	engine_kv_list_free(f, n);
	return EXIT_OK;
}

static int do_clear(const char *dir, int argc, char **argv)
{
	int removed = 0;
	if (!argc) {
		removed = engine_kv_remove(dir, NULL);
		if (removed < 0) {
			fprintf(stderr, "palaver: %s\n", error_message());
			return EXIT_RUNTIME;
		}
	}
	for (int i = 0; i < argc; i++) {
		int r = engine_kv_remove(dir, argv[i]);
		if (r < 0) {
			fprintf(stderr, "palaver: %s\n", error_message());
			return EXIT_RUNTIME;
		}
		if (!r)
			fprintf(stderr, "palaver: no saved KV cache of session '%s'\n", argv[i]);
		removed += r;
	}
	fprintf(stderr, "palaver: removed %d saved KV cache%s\n", removed, removed == 1 ? "" : "s");
	return EXIT_OK;
}

int cmd_cache(int argc, char **argv, struct config *cfg)
{
	struct strbuf dir = STRBUF_INIT;
	const char *sub = NULL;
	int rc, n = 0;

	/* operands compacted to the front of argv */
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			cache_usage(stdout);
			return EXIT_OK;
		}
		if (argv[i][0] == '-') {
			fprintf(stderr, "palaver: unknown option '%s' for 'cache'\n", argv[i]);
			cache_usage(stderr);
			return EXIT_USAGE;
		}
		if (!sub)
			sub = argv[i];
		else
			argv[n++] = argv[i];
	}
	if (sub && strcmp(sub, "list") && strcmp(sub, "clear")) {
		fprintf(stderr, "palaver: '%s' is not a cache command\n", sub);
		cache_usage(stderr);
		return EXIT_USAGE;
	}
	if ((!sub || !strcmp(sub, "list")) && n) {
		fprintf(stderr, "palaver: too many arguments for 'cache list'\n");
		return EXIT_USAGE;
	}
	if (config_kv_dir(&dir) < 0) {
		fprintf(stderr, "palaver: %s\n", error_message());
		return EXIT_RUNTIME;
	}
	rc = sub && !strcmp(sub, "clear") ? do_clear(dir.buf, n, argv) : do_list(dir.buf, cfg);
	strbuf_release(&dir);
	return rc;
}
