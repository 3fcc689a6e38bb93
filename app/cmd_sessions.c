/* palaver sessions: list, show, search, export, import, rename and delete saved chats. */
#include "commands.h"
#include "config.h"
#include "engine.h"
#include "json.h"
#include "log.h"
#include "report.h"
#include "store.h"
#include "strbuf.h"
#include "untrusted.h"
#include "util.h"
#include "xalloc.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char usage_all[] =
	"usage: palaver sessions [list] [--limit N]\n"
	"       palaver sessions show ID\n"
	"       palaver sessions search [--limit N] QUERY...\n"
	"       palaver sessions export ID [--format md|json] [-o FILE]\n"
	"       palaver sessions import FILE\n"
	"       palaver sessions rename ID TITLE...\n"
	"       palaver sessions delete ID [--yes]\n"
	"\n"
	"Every chat is saved as it happens in the history database\n"
	"($XDG_DATA_HOME/palaver/history.db unless --history FILE or history.path\n"
	"says otherwise).  ID is a session's 8-digit id or the start of its title,\n"
	"when only one session's title starts so.  --history FILE may follow the\n"
	"subcommand too.\n";

struct sub {
	const char *name;
	const char *usage;      /* first line of --help */
	const char *help;       /* the rest */
	int min_args, max_args; /* operands, -1 = any */
	int (*fn)(struct store *st, int argc, char **argv);
	int reads_only; /* opens the history read-only: works without write access */
};

/* Options shared by the subcommands, filled by parse_args. */
static struct {
	const char *format; /* --format md|json */
	const char *output; /* -o FILE */
	long limit;         /* --limit N, 0 = all */
	int yes;            /* --yes */
	const struct config *cfg;
} opt;

static void format_time(char *buf, size_t n, int64_t ms)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	if (!localtime_r(&t, &tm) || !strftime(buf, n, "%Y-%m-%d %H:%M", &tm))
		snprintf(buf, n, "?");
}

static int resolve(struct store *st, const char *arg, char id[STORE_ID_SIZE])
{
	if (store_session_resolve(st, arg, id) < 0) {
		report("%s", error_message());
		return -1;
	}
	return 0;
}

static int runtime_error(void)
{
	log_error("sessions: %s", error_message());
	return report_failure(EXIT_RUNTIME);
}

/* Titles, previews and messages may come from an imported file: on a
 * terminal they go through the sanitizing printer. */
static void put(const char *s, unsigned flags)
{
	untrusted_print(stdout, s, strlen(s), flags);
}

/* A search snippet: the highlight marks store_search() put in are ours,
 * the text between them is the message's. */
static void put_snippet(const char *s, const char *on, const char *off)
{
	while (*s) {
		const char *a = strstr(s, on), *b = strstr(s, off);
		const char *mark = a && (!b || a < b) ? a : b;
		size_t ml = mark == a ? strlen(on) : strlen(off);
		if (!mark) {
			put(s, 0);
			return;
		}
		untrusted_print(stdout, s, (size_t)(mark - s), 0);
		fwrite(mark, 1, ml, stdout);
		s = mark + ml;
	}
}

static int do_list(struct store *st, int argc, char **argv)
{
	struct store_session *s;
	size_t n;
	(void)argc;
	(void)argv;
	if (store_session_list(st, (size_t)opt.limit, &s, &n) < 0)
		return runtime_error();
	if (!n) {
		report("no saved sessions in '%s'", store_path(st));
		return EXIT_OK;
	}
	printf("%-8s  %-16s  %5s  %s\n", "ID", "UPDATED", "MSGS", "TITLE");
	for (size_t i = 0; i < n; i++) {
		char when[32];
		format_time(when, sizeof(when), s[i].updated_ms);
		printf("%-8s  %-16s  %5" PRId64 "  ", s[i].id, when, s[i].message_count);
		put(*s[i].title ? s[i].title : "(untitled)", 0);
		if (*s[i].preview && strcmp(s[i].preview, s[i].title)) {
			printf(" — ");
			put(s[i].preview, 0);
		}
		putchar('\n');
	}
	store_sessions_free(s, n);
	return EXIT_OK;
}

static int do_show(struct store *st, int argc, char **argv)
{
	char id[STORE_ID_SIZE], when[32];
	struct store_session ss;
	struct store_message *m;
	size_t n;
	(void)argc;
	if (resolve(st, argv[0], id) < 0)
		return EXIT_RUNTIME;
	if (store_session_get(st, id, &ss) < 0)
		return runtime_error();
	if (store_messages_load(st, id, &m, &n) < 0) {
		store_session_free(&ss);
		return runtime_error();
	}
	printf("session %s: ", ss.id);
	put(*ss.title ? ss.title : "(untitled)", 0);
	putchar('\n');
	format_time(when, sizeof(when), ss.created_ms);
	printf("created %s", when);
	format_time(when, sizeof(when), ss.updated_ms);
	printf(", updated %s, %" PRId64 " messages\n", when, ss.message_count);
	if (ss.model) {
		printf("model: ");
		put(ss.model, 0);
		putchar('\n');
	}
	if (ss.sampling) {
		printf("sampling: ");
		put(ss.sampling, 0);
		putchar('\n');
	}
	if (ss.system_prompt) {
		printf("system prompt: ");
		put(ss.system_prompt, UNTRUSTED_MULTILINE);
		putchar('\n');
	}
	struct strbuf kv = STRBUF_INIT;
	struct stat kst;
	if (store_session_kv_state(st, id, &kv) == 0 && kv.len) {
		char size[32];
		if (stat(kv.buf, &kst) == 0) {
			printf("saved KV cache: ");
			put(kv.buf, 0);
			printf(" (%s)\n", format_size(size, sizeof(size), (uint64_t)kst.st_size));
		} else {
			printf("saved KV cache: ");
			put(kv.buf, 0);
			printf(" (gone: evicted or cleared)\n");
		}
	}
	error_clear();
	strbuf_release(&kv);
	for (size_t i = 0; i < n; i++) {
		size_t len = strlen(m[i].content);
		putchar('\n');
		put(m[i].role, 0);
		if (m[i].model) {
			fputs(" (", stdout);
			put(m[i].model, 0);
			putchar(')');
		}
		if (m[i].status != STORE_COMPLETE)
			printf(" (%s)", store_status_name(m[i].status));
		if (m[i].stats.gen_tokens && m[i].stats.gen_ms > 0)
			printf(" [%d tokens, %.1f tokens/s]", m[i].stats.gen_tokens,
			       store_stats_tps(&m[i].stats));
		printf(":\n");
		put(m[i].content, UNTRUSTED_MULTILINE);
		if (!len || m[i].content[len - 1] != '\n')
			putchar('\n');
	}
	store_messages_free(m, n);
	store_session_free(&ss);
	return EXIT_OK;
}

static int do_search(struct store *st, int argc, char **argv)
{
	struct strbuf q = STRBUF_INIT;
	struct store_hit *h;
	size_t n;
	const char *no_color = getenv("NO_COLOR"); /* set and non-empty, as no-color.org says */
	int color = isatty(STDOUT_FILENO) && !(no_color && *no_color);
	for (int i = 0; i < argc; i++) {
		if (i)
			strbuf_addch(&q, ' ');
		strbuf_addstr(&q, argv[i]);
	}
	const char *on = color ? "\033[1m" : "[", *off = color ? "\033[0m" : "]";
	if (store_search(st, q.buf, (size_t)opt.limit, on, off, &h, &n) < 0) {
		strbuf_release(&q);
		return runtime_error();
	}
	if (!n)
		report("nothing matches '%s'", q.buf);
	for (size_t i = 0; i < n; i++) {
		char when[32];
		format_time(when, sizeof(when), h[i].updated_ms);
		printf("%s  %s  #%" PRId64 " ", h[i].session_id, when, h[i].seq);
		put(h[i].role, 0);
		printf("  ");
		put(*h[i].title ? h[i].title : "(untitled)", 0);
		printf("\n    ");
		put_snippet(h[i].snippet, on, off);
		putchar('\n');
	}
	store_hits_free(h, n);
	strbuf_release(&q);
	return n ? EXIT_OK : EXIT_RUNTIME;
}

static int write_all(FILE *f, const char *buf, size_t len, const char *name)
{
	if (fwrite(buf, 1, len, f) != len || fflush(f) != 0) {
		report("cannot write '%s': %s", name, strerror(errno));
		return -1;
	}
	return 0;
}

static int do_export(struct store *st, int argc, char **argv)
{
	char id[STORE_ID_SIZE];
	struct strbuf out = STRBUF_INIT;
	enum store_format fmt;
	int rc = EXIT_OK;
	(void)argc;
	if (!opt.format || !strcmp(opt.format, "md") || !strcmp(opt.format, "markdown")) {
		fmt = STORE_FORMAT_MARKDOWN;
	} else if (!strcmp(opt.format, "json")) {
		fmt = STORE_FORMAT_JSON;
	} else {
		return report_usage("unknown export format '%s' (md or json)", opt.format);
	}
	if (resolve(st, argv[0], id) < 0)
		return EXIT_RUNTIME;
	if (store_export(st, id, fmt, &out) < 0) {
		strbuf_release(&out);
		return runtime_error();
	}
	if (opt.output && strcmp(opt.output, "-")) {
		FILE *f = fopen(opt.output, "w");
		if (!f) {
			report("cannot open '%s': %s", opt.output, strerror(errno));
			rc = EXIT_RUNTIME;
		} else {
			if (write_all(f, out.buf, out.len, opt.output) < 0)
				rc = EXIT_RUNTIME;
			if (fclose(f) != 0 && rc == EXIT_OK) {
				report("cannot write '%s': %s", opt.output, strerror(errno));
				rc = EXIT_RUNTIME;
			}
		}
	} else if (fmt == STORE_FORMAT_MARKDOWN && untrusted_tty(stdout)) {
		struct strbuf safe = STRBUF_INIT;
		untrusted_add(&safe, out.buf, out.len, UNTRUSTED_MULTILINE);
		if (out_write(safe.buf, safe.len) < 0)
			rc = EXIT_RUNTIME;
		strbuf_release(&safe);
	} else {
		if (out_write(out.buf, out.len) < 0)
			rc = EXIT_RUNTIME;
	}
	strbuf_release(&out);
	return rc;
}

/*
 * The sampling settings of an import are checked with the key table that
 * checks config.yaml (app/config.c); values it refuses are left out, each
 * said on stderr, so the chat never applies them.  0, or -1 when the file
 * is no JSON (store_import says so).
 */
static int import_sampling(const char *name, const struct strbuf *in, struct strbuf *fixed)
{
	struct strbuf problems = STRBUF_INIT;
	struct json *root = json_parse(in->buf, in->len);
	if (!root) {
		error_clear(); /* store_import reports it, with the file's context */
		return 0;
	}
	if (config_sampling_check_json(json_get(root, "sampling"), in->buf, fixed, &problems) > 0) {
		for (char *line = strtok(problems.buf, "\n"); line; line = strtok(NULL, "\n"))
			warning("'%s': %s; left out", name, line);
	}
	strbuf_release(&problems);
	json_free(root);
	return 0;
}

static int do_import(struct store *st, int argc, char **argv)
{
	struct strbuf in = STRBUF_INIT, fixed = STRBUF_INIT;
	char id[STORE_ID_SIZE];
	int r;
	(void)argc;
	r = !strcmp(argv[0], "-") ? strbuf_read_fd(&in, STDIN_FILENO, READ_MAX_IMPORT)
				  : strbuf_read_file(&in, argv[0], READ_MAX_IMPORT);
	if (r < 0) {
		char why[64];
		report("cannot read '%s': %s", argv[0],
		       strbuf_read_failure(errno, READ_MAX_IMPORT, why, sizeof(why)));
		strbuf_release(&in);
		return EXIT_RUNTIME;
	}
	import_sampling(argv[0], &in, &fixed);
	/* the import and its repaired sampling: all or nothing */
	struct store_session_params p = { NULL, NULL, NULL, fixed.len ? fixed.buf : NULL };
	if (store_transaction_begin(st) < 0 || store_import(st, in.buf, in.len, id) < 0 ||
	    (fixed.len && store_session_set(st, id, &p) < 0) || store_transaction_commit(st) < 0) {
		report("'%s': %s", argv[0], error_message());
		store_transaction_rollback(st);
		strbuf_release(&in);
		strbuf_release(&fixed);
		return EXIT_RUNTIME;
	}
	printf("%s\n", id);
	strbuf_release(&in);
	strbuf_release(&fixed);
	return EXIT_OK;
}

static int do_rename(struct store *st, int argc, char **argv)
{
	char id[STORE_ID_SIZE];
	struct strbuf title = STRBUF_INIT;
	int rc = EXIT_OK;
	if (resolve(st, argv[0], id) < 0)
		return EXIT_RUNTIME;
	for (int i = 1; i < argc; i++) {
		if (i > 1)
			strbuf_addch(&title, ' ');
		strbuf_addstr(&title, argv[i]);
	}
	if (store_session_rename(st, id, title.buf) < 0)
		rc = runtime_error();
	strbuf_release(&title);
	return rc;
}

/* Remove a deleted session's saved KV states: those in the cache folder,
 * and the file its row named if that lies elsewhere (XDG_CACHE_HOME was
 * another then).  Only files named as the session's states are touched. */
static void delete_states(const char *id, const char *row_path)
{
	struct strbuf dir = STRBUF_INIT, prefix = STRBUF_INIT;
	int n = 0;
	if (config_kv_dir(&dir) == 0) {
		int r = engine_kv_remove(dir.buf, id);
		if (r < 0)
			fprintf(stderr, "palaver: warning: %s\n", error_message());
		else
			n += r;
	}
	error_clear();
	const char *base = strrchr(row_path, '/');
	base = base ? base + 1 : row_path;
	size_t bl = strlen(base);
	strbuf_addf(&prefix, "%s-", id);
	if (*row_path && !strncmp(base, prefix.buf, prefix.len) && bl > 3 &&
	    !strcmp(base + bl - 3, ".kv") && unlink(row_path) == 0)
		n++;
	if (n)
		fprintf(stderr, "palaver: removed %d saved KV cache%s of session %s\n", n,
			n == 1 ? "" : "s", id);
	strbuf_release(&dir);
	strbuf_release(&prefix);
}

static int do_delete(struct store *st, int argc, char **argv)
{
	char id[STORE_ID_SIZE];
	struct store_session ss;
	(void)argc;
	if (resolve(st, argv[0], id) < 0)
		return EXIT_RUNTIME;
	if (store_session_get(st, id, &ss) < 0)
		return runtime_error();
	if (!opt.yes) {
		char line[64];
		if (!isatty(STDIN_FILENO)) {
			report("not deleting session %s without confirmation; use --yes", id);
			store_session_free(&ss);
			return EXIT_USAGE;
		}
		struct strbuf t = STRBUF_INIT;
		untrusted_add(&t, *ss.title ? ss.title : "(untitled)",
			      strlen(*ss.title ? ss.title : "(untitled)"), 0);
		fprintf(stderr, "Delete session %s '%s' (%" PRId64 " messages)? [y/N] ", id, t.buf,
			ss.message_count);
		strbuf_release(&t);
		fflush(stderr);
		if (!fgets(line, sizeof(line), stdin) || (line[0] != 'y' && line[0] != 'Y')) {
			report("session %s kept", id);
			store_session_free(&ss);
			return EXIT_OK;
		}
	}
	store_session_free(&ss);
	struct strbuf kv = STRBUF_INIT;
	if (store_session_kv_state(st, id, &kv) < 0)
		error_clear(); /* its states in the cache folder still go */
	if (store_session_delete(st, id) < 0) {
		strbuf_release(&kv);
		return runtime_error();
	}
	report("deleted session %s", id);
	delete_states(id, kv.buf);
	strbuf_release(&kv);
	return EXIT_OK;
}

static const struct sub subs[] = {
	{ "list", "palaver sessions [list] [--limit N]",
	  "List saved sessions, most recently updated first: id, last update, number of\n"
	  "messages, title and a preview of the last message.\n",
	  0, 0, do_list, 1 },
	{ "show", "palaver sessions show ID",
	  "Print a session's messages with their status and speed.\n", 1, 1, do_show, 1 },
	{ "search", "palaver sessions search [--limit N] QUERY...",
	  "Full-text search over every message, best match first.  The words are\n"
	  "matched as plain words (all must occur; quotes and operators are text); a\n"
	  "word ending in '*' matches as a prefix.  Exit status 1 when nothing matches.\n",
	  1, -1, do_search, 1 },
	{ "export", "palaver sessions export ID [--format md|json] [-o FILE]",
	  "Write a session as Markdown (default) or JSON to standard output or FILE.\n"
	  "The JSON form can be read back with 'palaver sessions import'.\n",
	  1, 1, do_export, 1 },
	{ "import", "palaver sessions import FILE",
	  "Read a session exported as JSON ('-' for standard input) and print its id.\n"
	  "It keeps its id unless that id is already in use.\n",
	  1, 1, do_import, 0 },
	{ "rename", "palaver sessions rename ID TITLE...",
	  "Give a session a title; it no longer follows the first user message.\n", 2, -1,
	  do_rename, 0 },
	{ "delete", "palaver sessions delete ID [--yes]",
	  "Delete a session, its messages and its saved KV caches.  Asks for\n"
	  "confirmation on a terminal; without a terminal it refuses unless --yes is\n"
	  "given.\n",
	  1, 1, do_delete, 0 },
	{ NULL, NULL, NULL, 0, 0, NULL, 0 },
};

static void print_sub_help(const struct sub *s)
{
	printf("usage: %s\n\n%s\nOptions:\n  --history FILE   use this history database\n"
	       "  -h, --help       show this help\n",
	       s->usage, s->help);
}

/* "--name VALUE", "--name=VALUE" or "-x VALUE" at argv[*i]: 1 (val set,
 * *i moved past it), 0 (another option), -1 (value missing, said so). */
static int take(int argc, char **argv, int *i, const char *name, const char *short_name,
		const char **val)
{
	const char *a = argv[*i];
	size_t len = strlen(name);
	if (!strncmp(a, name, len) && a[len] == '=') {
		*val = a + len + 1;
		return 1;
	}
	if (strcmp(a, name) && (!short_name || strcmp(a, short_name)))
		return 0;
	if (*i + 1 >= argc) {
		report("'%s' needs a value", a);
		return -1;
	}
	*val = argv[++*i];
	return 1;
}

/* Does this option take the next argument as its value? */
static int takes_value(const char *a)
{
	static const char *const names[] = {
		"--format",
		"-f",
		"--output",
		"-o",
		"--limit",
		/* the global flags config_parse_common_flag takes */
		"--history",
		"-m",
		"--model",
		"-t",
		"--threads",
		"--ctx",
		"-n",
		"--max-tokens",
		"--temp",
		"--top-k",
		"--top-p",
		"--min-p",
		"--seed",
		"-s",
		"--system",
		"--backend",
		"--batch-size",
		"--chat-template",
		NULL,
	};
	for (int i = 0; names[i]; i++)
		if (!strcmp(a, names[i]))
			return 1;
	return 0;
}

/* Options may come anywhere after the subcommand; "--" ends them.  Operands
 * are compacted to the front of argv; returns their count or -1. */
static int parse_args(int argc, char **argv, const struct sub *s, int *help, struct config *cfg)
{
	int n = 0, no_more = 0;
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i], *val = NULL;
		if (no_more || a[0] != '-' || !strcmp(a, "-")) {
			argv[n++] = argv[i];
			continue;
		}
		if (!strcmp(a, "--")) {
			no_more = 1;
			continue;
		}
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			*help = 1;
			continue;
		}
		if (!strcmp(a, "--yes") || !strcmp(a, "-y")) {
			opt.yes = 1;
			continue;
		}
		int r;
		if ((r = take(argc, argv, &i, "--format", "-f", &val)) != 0) {
			if (r < 0)
				return -1;
			opt.format = val;
		} else if ((r = take(argc, argv, &i, "--output", "-o", &val)) != 0) {
			if (r < 0)
				return -1;
			opt.output = val;
		} else if ((r = take(argc, argv, &i, "--limit", NULL, &val)) != 0) {
			char *end;
			if (r < 0)
				return -1;
			opt.limit = strtol(val, &end, 10);
			if (*end || opt.limit < 0 || !*val) {
				report("'--limit' wants a count, not '%s'", val);
				return -1;
			}
		} else if ((r = config_parse_common_flag(cfg, &i, argc, argv)) != 0) {
			/* --history FILE, --no-history and the other global flags */
			if (r < 0) {
				report("%s", error_message());
				return -1;
			}
		} else if (s && (s->fn == do_search || s->fn == do_rename) && a[1] != '-') {
			/* words of a query or a title may start with '-' ("-dog"):
			 * what is no option of ours is one of them */
			argv[n++] = argv[i];
		} else {
			report("unknown option '%s' for 'sessions %s' (put '--' before an operand "
			       "that starts with '-')",
			       a, s ? s->name : "");
			return -1;
		}
	}
	return n;
}

int cmd_sessions(int argc, char **argv, struct config *cfg)
{
	const struct sub *s = NULL;
	struct store *st;
	int help = 0, n, rc;
	const char *path;

	memset(&opt, 0, sizeof(opt));
	opt.cfg = cfg;
	argc--;
	argv++;
	/* The subcommand is the first operand (options may come before it). */
	for (int i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "--"))
			break;
		if (argv[i][0] == '-' && strcmp(argv[i], "-")) {
			i += takes_value(argv[i]);
			continue;
		}
		for (const struct sub *t = subs; t->name; t++)
			if (!strcmp(argv[i], t->name))
				s = t;
		if (!s) {
			return report_usage_with(usage_all, "'%s' is not a sessions command",
						 argv[i]);
		}
		memmove(argv + i, argv + i + 1, (size_t)(argc - i - 1) * sizeof(*argv));
		argc--;
		break;
	}
	n = parse_args(argc, argv, s, &help, cfg);
	if (n < 0)
		return EXIT_USAGE;
	if (help) {
		if (s)
			print_sub_help(s);
		else
			printf("%s\nOptions:\n  --history FILE   use this history database\n"
			       "  -h, --help       show this help (also after a subcommand)\n",
			       usage_all);
		return EXIT_OK;
	}
	if (!s)
		s = &subs[0];
	if (n < s->min_args || (s->max_args >= 0 && n > s->max_args)) {
		return report_usage("%s 'sessions %s'\nusage: %s",
				    n < s->min_args ? "too few arguments for"
						    : "too many arguments for",
				    s->name, s->usage);
	}

	/* --history FILE (before or after the subcommand) also turns history on. */
	path = cfg->history_path;
	if (!cfg->history_enabled) {
		return report_runtime(
			"history is disabled (history.enabled: false or --no-history); use 'palaver sessions --history FILE' to read a database");
	}
	st = s->reads_only ? store_open_readonly(path) : store_open(path);
	if (!st) {
		log_error("sessions: history is unavailable: %s", error_message());
		return report_runtime("history is unavailable: %s", error_message());
	}
	rc = s->fn(st, n, argv);
	store_close(st);
	return rc;
}
