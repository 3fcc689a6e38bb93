/* palaver bench --history: fill a scratch history database and time open, list, load, append and search. */
#include "bench.h"
#include "options.h"
#include "report.h"
#include "store.h"
#include "strbuf.h"
#include "util.h"
#include "xalloc.h"

#include <errno.h>
#include <ftw.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

/*
 * The scratch database lives in a fresh directory under $TMPDIR (or /tmp)
 * and is removed at the end.  Message text is made of pseudo-words drawn
 * with a Zipf-like law (word of rank r has weight 1/r), so searches can be
 * timed for a rare, a middling and a very common word.  Each latency is the
 * median (and 95th percentile) of many runs.
 */

#define VOCAB 5000

static uint64_t rng_state = 0x853c49e6748fea9bull;

static uint64_t rng_next(void)
{
	return bench_rng(&rng_state);
}

static char vocab[VOCAB][16];
static const char *vocab_words[VOCAB];
static const char *const seps[] = { " ", " ", " ", " ", " ", " ", " ", " ", " ", " ", " ", "\n" };
/* Zipf-distributed words, as in real prose: rare words are rare */
static const struct bench_words prose = { vocab_words, VOCAB, seps, sizeof(seps) / sizeof(seps[0]),
					  1 };

static void vocab_build(void)
{
	static const char *const syl[] = { "ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo",
					   "ze", "ba", "do", "fu", "gi", "ha", "je", "po" };
	for (int i = 0; i < VOCAB; i++) {
		int v = i, n = 0;
		char *w = vocab[i];
		/* distinct words: the syllables spell i in base 16, at least two of them */
		do {
			strcpy(w + n, syl[v % 16]);
			n += 2;
			v /= 16;
		} while (v || n < 4);
		w[n] = '\0';
		vocab_words[i] = w;
	}
}

static void make_text(struct strbuf *sb, int words)
{
	strbuf_reset(sb);
	bench_text(sb, &prose, (size_t)words, (size_t)-1, &rng_state);
}

/* Latencies of the current operation: wall clock, and this thread's CPU
 * time, which stays meaningful on a machine busy with other work. */
static double wall_ms[400], cpu_ms[400];
static double wall_t0, cpu_t0;

static void tick(void)
{
	wall_t0 = time_now_ms();
	cpu_t0 = bench_cpu_ms(0);
}

static void tock(int i)
{
	wall_ms[i] = time_now_ms() - wall_t0;
	cpu_ms[i] = bench_cpu_ms(0) - cpu_t0;
}

/* Median and 95th percentile of the n latencies (sorts them). */
static void summarize(double *ms, int n, double *median, double *p95)
{
	bench_sort(ms, n);
	*median = bench_percentile(ms, n, 50);
	*p95 = bench_percentile(ms, n, 95);
}

static void print_row(const char *what, int n, const char *goal, double goal_ms)
{
	double med, p95, cmed, cp95;
	summarize(wall_ms, n, &med, &p95);
	summarize(cpu_ms, n, &cmed, &cp95);
	printf("%-28s %9.3f %9.3f %9.3f", what, med, p95, cmed);
	if (goal)
		printf("   %s %s", goal, med < goal_ms ? "ok" : "MISSED");
	putchar('\n');
}

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(p);
}

static const char usage[] =
	"usage: palaver bench --history [--sessions N] [--messages N] [--db FILE]\n\n"
	"Fill a scratch history database (default 10000 sessions, 1000000 messages,\n"
	"in one transaction) and report the median and 95th percentile latency of\n"
	"open, list, load-session, append, streaming update and search.\n"
	"--db FILE keeps the database in FILE, and measures FILE as it is when it\n"
	"exists (it gains a few hundred messages per run).\n"
	"Goals: list < 20 ms, search < 50 ms, append < 2 ms.\n";

/* The database measured and what is known of it. */
struct bench_db {
	const char *path;
	char (*ids)[STORE_ID_SIZE]; /* n_sessions ids */
	long n_sessions, n_messages;
	struct strbuf text; /* scratch */
};

/* The ids of an existing database (--db FILE that exists); 0 or -1 with error(). */
static int take_ids(struct bench_db *db)
{
	struct store_session *list;
	size_t n;
	struct stat sb;
	char size_buf[32];
	struct store *st = store_open(db->path);
	/* messages are not counted */
	if (!st || store_session_list(st, 0, &list, &n) < 0) {
		store_close(st);
		return -1;
	}
	store_close(st);
	if (!n) {
		store_sessions_free(list, n);
		return error("'%s' has no sessions to measure", db->path);
	}
	free(db->ids);
	if (!(db->ids = try_alloc_array(n, sizeof(*db->ids)))) {
		store_sessions_free(list, n);
		return error("out of memory for %zu session ids", n);
	}
	for (size_t i = 0; i < n; i++)
		memcpy(db->ids[i], list[i].id, STORE_ID_SIZE);
	db->n_sessions = (long)n;
	store_sessions_free(list, n);
	stat(db->path, &sb);
	printf("history bench: '%s' reused, %ld sessions, %s\n", db->path, db->n_sessions,
	       format_size(size_buf, sizeof(size_buf), (uint64_t)sb.st_size));
	return 0;
}

/* A new database of n_sessions sessions sharing n_messages in one transaction. */
static int fill(struct bench_db *db)
{
	double t0 = time_now_ms();
	struct stat sb;
	char size_buf[32];
	struct store *st = store_open(db->path);
	if (!st || store_transaction_begin(st) < 0)
		goto fail;
	for (long s = 0; s < db->n_sessions; s++) {
		long first = db->n_messages * s / db->n_sessions;
		long last = db->n_messages * (s + 1) / db->n_sessions;
		struct store_session_params p = { NULL, "bench.gguf", NULL,
						  "{\"temperature\": 0.8}" };
		if (store_session_create(st, &p, db->ids[s]) < 0)
			goto fail;
		for (long m = first; m < last; m++) {
			int user = (m - first) % 2 == 0;
			struct store_stats stats = { 0, 30, 0, 300 };
			make_text(&db->text,
				  user ? 6 + (int)(rng_next() % 20) : 10 + (int)(rng_next() % 50));
			if (store_message_append(st, db->ids[s], user ? "user" : "assistant",
						 db->text.buf, STORE_COMPLETE,
						 user ? NULL : &stats) < 0)
				goto fail;
		}
	}
	if (store_transaction_commit(st) < 0)
		goto fail;
	store_close(st);
	stat(db->path, &sb);
	printf("history bench: %ld sessions, %ld messages, %s database, filled in %.1f s\n",
	       db->n_sessions, db->n_messages,
	       format_size(size_buf, sizeof(size_buf), (uint64_t)sb.st_size),
	       (time_now_ms() - t0) / 1000);
	return 0;
fail:
	store_close(st);
	return -1;
}

/* open, list, load a session, resolve a title; 0 or -1 with error(). */
static int measure_reads(struct store **stp, struct bench_db *db)
{
	for (int i = 0; i < 20; i++) {
		tick();
		*stp = store_open(db->path);
		tock(i);
		if (!*stp)
			return -1;
		if (i < 19) {
			store_close(*stp);
			*stp = NULL;
		}
	}
	print_row("open", 20, NULL, 0);
	struct store *st = *stp;
	for (int pass = 0; pass < 2; pass++) {
		size_t limit = pass ? 0 : 50, n;
		struct store_session *list;
		for (int i = 0; i < 50; i++) {
			tick();
			if (store_session_list(st, limit, &list, &n) < 0)
				return -1;
			tock(i);
			store_sessions_free(list, n);
		}
		print_row(pass ? "list (all sessions)" : "list (50 most recent)", 50,
			  "goal < 20 ms:", 20);
	}
	for (int i = 0; i < 200; i++) {
		struct store_message *m;
		size_t n;
		tick();
		if (store_messages_load(st, db->ids[rng_next() % (uint64_t)db->n_sessions], &m,
					&n) < 0)
			return -1;
		tock(i);
		store_messages_free(m, n);
	}
	char what[64];
	snprintf(what, sizeof(what), "load session (%ld msgs)", db->n_messages / db->n_sessions);
	print_row(what, 200, NULL, 0);
	struct store_session ss;
	char got[STORE_ID_SIZE];
	if (store_session_get(st, db->ids[db->n_sessions / 2], &ss) < 0)
		return -1;
	for (int i = 0; i < 20; i++) {
		tick();
		store_session_resolve(st, ss.title, got); /* may be ambiguous: timing only */
		tock(i);
	}
	store_session_free(&ss);
	print_row("resolve title prefix", 20, NULL, 0);
	return 0;
}

/* append, and a reply streamed word by word; 0 or -1 with error(). */
static int measure_writes(struct store *st, struct bench_db *db)
{
	for (int i = 0; i < 200; i++) {
		const char *id = db->ids[rng_next() % (uint64_t)db->n_sessions];
		make_text(&db->text, 20);
		tick();
		if (store_message_append(st, id, "user", db->text.buf, STORE_COMPLETE, NULL) < 0)
			return -1;
		tock(i);
	}
	print_row("append", 200, "goal < 2 ms:", 2);
	int64_t mid = store_message_begin(st, db->ids[0], "assistant");
	if (mid < 0)
		return -1;
	strbuf_reset(&db->text);
	for (int i = 0; i < 200; i++) {
		bench_text(&db->text, &prose, 1, (size_t)-1, &rng_state);
		strbuf_addch(&db->text, ' ');
		tick();
		if (store_message_update(st, mid, db->text.buf, db->text.len) < 0)
			return -1;
		tock(i);
	}
	if (store_message_finish(st, mid, db->text.buf, db->text.len, STORE_COMPLETE, NULL) < 0)
		return -1;
	print_row("stream update (to 200 words)", 200, NULL, 0);
	return 0;
}

/* Searches for words from rare to the commonest, and for two words. */
static int measure_search(struct store *st)
{
	struct strbuf two = STRBUF_INIT;
	strbuf_addf(&two, "%s %s", vocab[40], vocab[400]);
	const struct {
		const char *what, *query;
	} q[] = {
		{ "search rare word", vocab[3000] }, { "search middling word", vocab[300] },
		{ "search common word", vocab[5] },  { "search most common word", vocab[0] },
		{ "search two words", two.buf },
	};
	for (size_t k = 0; k < sizeof(q) / sizeof(q[0]); k++) {
		for (int i = 0; i < 20; i++) {
			struct store_hit *h;
			size_t n;
			tick();
			if (store_search(st, q[k].query, 20, NULL, NULL, &h, &n) < 0) {
				strbuf_release(&two);
				return -1;
			}
			tock(i);
			store_hits_free(h, n);
		}
		print_row(q[k].what, 20, "goal < 50 ms:", 50);
	}
	strbuf_release(&two);
	return 0;
}

int bench_history(int argc, char **argv, struct config *cfg)
{
	int sessions_opt = 10000, messages_opt = 1000000;
	const char *db_file = NULL; /* --db: kept, and reused when it exists */
	char dir[] = "/tmp/palaver-bench-XXXXXX", *dirp = NULL;
	struct strbuf path = STRBUF_INIT;
	struct store *st = NULL;
	struct stat sb;
	int rc = EXIT_RUNTIME;
	(void)cfg;

	const struct opt_spec opts[] = {
		{ "--history", NULL, OPT_FLAG, NULL, 0, 0, NULL },
		{ "--sessions", NULL, OPT_INT, &sessions_opt, 1, 10000000, NULL },
		{ "--messages", NULL, OPT_INT, &messages_opt, 0, 100000000, NULL },
		{ "--db", NULL, OPT_TEXT, &db_file, 0, 0, NULL },
		{ NULL, NULL, 0, NULL, 0, 0, NULL },
	};
	int parsed = options_parse(argc, argv, opts, usage, "bench",
				   "palaver bench --history --help", NULL);
	if (parsed)
		return parsed > 0 ? EXIT_OK : EXIT_USAGE;

	if (db_file) {
		strbuf_addstr(&path, db_file);
	} else {
		const char *tmp = getenv("TMPDIR");
		static char tdir[4096];
		if (tmp && *tmp) {
			snprintf(tdir, sizeof(tdir), "%s/palaver-bench-XXXXXX", tmp);
			dirp = mkdtemp(tdir);
		} else {
			dirp = mkdtemp(dir);
		}
		if (!dirp)
			die("cannot create a scratch directory: %s", strerror(errno));
		strbuf_addf(&path, "%s/history.db", dirp);
	}
	struct bench_db db = { path.buf, NULL, sessions_opt, messages_opt, STRBUF_INIT };
	vocab_build();
	db.ids = try_alloc_array((size_t)db.n_sessions, sizeof(*db.ids));
	if (!db.ids)
		error("out of memory for %ld session ids", db.n_sessions);
	else if ((db_file && stat(db_file, &sb) == 0 ? take_ids(&db) : fill(&db)) == 0) {
		printf("%-28s %9s %9s %9s   (milliseconds)\n", "operation", "median", "p95", "cpu");
		if (measure_reads(&st, &db) == 0 && measure_writes(st, &db) == 0 &&
		    measure_search(st) == 0)
			rc = EXIT_OK;
	}
	if (rc != EXIT_OK)
		report_failure(rc);
	store_close(st);
	free(db.ids);
	if (dirp)
		nftw(dirp, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	strbuf_release(&path);
	strbuf_release(&db.text);
	return rc;
}
