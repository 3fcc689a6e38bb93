/* kv_state, kv_dir: saved KV caches read back exactly; every damage refused; atomic saves under faults. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "engine.h"
#include "kv_cache.h"
#include "kv_dir.h"
#include "kv_state.h"
#include "model.h"
#include "report.h"
#include "strbuf.h"
#include "testutil.h"

static char tmp[64];

static int setup(void **state)
{
	(void)state;
	snprintf(tmp, sizeof(tmp), "/tmp/palaver-test-kvstate-XXXXXX");
	assert_non_null(mkdtemp(tmp));
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	test_rmtree(tmp);
	return 0;
}

static const struct kv_state_id model_a = { 123456789, 0x1111222233334444ull, "model A" };

/* xorshift: reproducible noise for the cache's values */
static float noise(uint32_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 17;
	*s ^= *s << 5;
	return (float)(*s % 20001) / 1000.0f - 10.0f;
}

/* A cache of the given windows (NULL: all full), filled with n positions of noise. */
static void make_cache(struct kv_cache *kv, enum kv_type t, int n_layer, int n_ctx,
		       const int *window, int ring, int n, uint32_t seed)
{
	struct kv_shape s = { n_layer, n_ctx, 2, 8, 6, window, ring, 0 };
	assert_int_equal(kv_cache_init_shape(kv, t, &s), 0);
	float k[2 * 8], v[2 * 6];
	for (int p = 0; p < n; p++) {
		for (int l = 0; l < n_layer; l++) {
			for (int i = 0; i < 16; i++)
				k[i] = noise(&seed);
			for (int i = 0; i < 12; i++)
				v[i] = noise(&seed);
			kv_cache_store(kv, l, p, k, v);
		}
		kv->tokens[p] = (int32_t)(seed % 500);
	}
	kv->n = n;
}

/* Two caches hold the same positions, cells and bytes. */
static void assert_same(const struct kv_cache *a, const struct kv_cache *b)
{
	assert_int_equal(a->n, b->n);
	assert_memory_equal(a->tokens, b->tokens, (size_t)a->n * sizeof(int32_t));
	size_t rk = (size_t)a->head_dim_k * a->elem, rv = (size_t)a->head_dim_v * a->elem;
	for (int l = 0; l < a->n_layer; l++) {
		if (a->pos[l])
			assert_memory_equal(a->pos[l], b->pos[l], (size_t)a->cells[l] * 4);
		for (int h = 0; h < a->n_head_kv; h++)
			for (int p = 0; p < a->n; p++) {
				if (a->pos[l] && a->pos[l][p % a->cells[l]] != p)
					continue;
				assert_memory_equal(kv_cache_k(a, l, h, p), kv_cache_k(b, l, h, p), rk);
				assert_memory_equal(kv_cache_v(a, l, h, p), kv_cache_v(b, l, h, p), rv);
			}
	}
}

static void write_state(const char *path, const struct kv_cache *kv, const struct kv_state_id *id)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(kv_state_write(fd, kv, id, NULL, NULL), 0);
	close(fd);
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal((uint64_t)st.st_size, kv_state_size(kv));
}

/* Read path into kv: 0, or -1 with error() (kv left as kv_state_* leave it). */
static int load(const char *path, struct kv_cache *kv, const struct kv_state_id *id)
{
	struct kv_state_file *f = kv_state_open(path, kv, id);
	if (!f)
		return -1;
	int rc = kv_state_read(f, kv);
	kv_state_close(f);
	return rc;
}

static void roundtrip(enum kv_type t, const int *window, int ring, int n)
{
	struct kv_cache a, b;
	char path[128];
	snprintf(path, sizeof(path), "%s/rt.kv", tmp);
	make_cache(&a, t, 3, 32, window, ring, n, 7);
	make_cache(&b, t, 3, 32, window, ring, 5, 99); /* other contents, to be replaced */
	write_state(path, &a, &model_a);
	assert_int_equal(load(path, &b, &model_a), 0);
	assert_same(&a, &b);
	/* what was read behaves as what was written: the same truncation */
	assert_int_equal(kv_cache_truncate(&a, n / 2), kv_cache_truncate(&b, n / 2));
	assert_same(&a, &b);
	kv_cache_free(&a);
	kv_cache_free(&b);
}

static void test_roundtrip(void **state)
{
	(void)state;
	const int win[3] = { 0, 4, 0 };
	for (int t = 0; t < 2; t++) {
		enum kv_type type = t ? KV_F32 : KV_F16;
		roundtrip(type, NULL, 0, 1);
		roundtrip(type, NULL, 0, 32);
		roundtrip(type, win, 8, 5);  /* a ring not yet full */
		roundtrip(type, win, 8, 29); /* a ring wrapped several times */
	}
}

/* Everything that does not match is refused before the cache is touched. */
static void test_refusals(void **state)
{
	(void)state;
	struct kv_cache a, b;
	char path[128];
	const int win[3] = { 0, 4, 0 }, win2[3] = { 0, 5, 0 };
	snprintf(path, sizeof(path), "%s/a.kv", tmp);
	make_cache(&a, KV_F16, 3, 32, NULL, 0, 20, 1);
	write_state(path, &a, &model_a);

	struct {
		enum kv_type t;
		int n_layer, n_ctx;
		const int *window;
		int ring;
		struct kv_state_id id;
		const char *why;
	} cases[] = {
		{ KV_F16, 3, 32, NULL, 0, { 123456789, 0x1111222233334445ull, "B" },
		  "saved with another model ('model A', 123456789 bytes)" },
		{ KV_F16, 3, 32, NULL, 0, { 123456788, 0x1111222233334444ull, "A" },
		  "saved with another model" },
		{ KV_F32, 3, 32, NULL, 0, model_a, "its KV type is f16, not f32" },
		{ KV_F16, 3, 64, NULL, 0, model_a, "the cache's shape differs" },
		{ KV_F16, 2, 32, NULL, 0, model_a, "the cache's shape differs" },
		{ KV_F16, 3, 32, win, 8, model_a, "layer 1 differs: 32 cells, window 0 saved; 8, 4 now" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		make_cache(&b, cases[i].t, cases[i].n_layer, cases[i].n_ctx, cases[i].window,
			   cases[i].ring, 3, 5);
		error_clear();
		assert_null(kv_state_open(path, &b, &cases[i].id));
		if (!strstr(error_message(), cases[i].why))
			fail_msg("case %zu: '%s' lacks '%s'", i, error_message(), cases[i].why);
		assert_int_equal(b.n, 3);
		kv_cache_free(&b);
	}
	/* a ring of another window */
	struct kv_cache r1, r2;
	make_cache(&r1, KV_F16, 3, 32, win, 8, 10, 3);
	make_cache(&r2, KV_F16, 3, 32, win2, 8, 1, 3);
	write_state(path, &r1, &model_a);
	assert_null(kv_state_open(path, &r2, &model_a));
	assert_non_null(strstr(error_message(), "layer 1 differs"));
	kv_cache_free(&r1);
	kv_cache_free(&r2);

	/* a cache whose data a device holds (the CUDA backend) is neither written nor read */
	struct kv_cache d;
	struct kv_shape ds = { 3, 32, 2, 8, 6, NULL, 0, 1 };
	assert_int_equal(kv_cache_init_shape(&d, KV_F16, &ds), 0);
	d.n = 1;
	int fd = open(path, O_WRONLY | O_TRUNC);
	assert_true(fd >= 0);
	assert_int_equal(kv_state_write(fd, &d, &model_a, NULL, NULL), -1);
	assert_string_equal(error_message(), "the KV cache is on a device, not in memory");
	close(fd);
	write_state(path, &a, &model_a);
	assert_null(kv_state_open(path, &d, &model_a));
	assert_string_equal(error_message(), "the KV cache is on a device, not in memory");
	kv_cache_free(&d);

	/* another format version, not a state at all, trailing bytes */
	write_state(path, &a, &model_a);
	FILE *f = fopen(path, "r+b");
	unsigned char v2[4] = { 2, 0, 0, 0 };
	fseek(f, 8, SEEK_SET);
	fwrite(v2, 1, 4, f);
	fclose(f);
	make_cache(&b, KV_F16, 3, 32, NULL, 0, 3, 5);
	assert_null(kv_state_open(path, &b, &model_a));
	assert_string_equal(error_message(), "format version 2 (this palaver reads 1)");
	f = fopen(path, "wb");
	fputs("GGUF and then some text that is no KV state at all", f);
	fclose(f);
	assert_null(kv_state_open(path, &b, &model_a));
	assert_string_equal(error_message(), "not a KV state file");
	write_state(path, &a, &model_a);
	f = fopen(path, "ab");
	fputc(0, f);
	fclose(f);
	assert_null(kv_state_open(path, &b, &model_a));
	assert_string_equal(error_message(), "1 bytes longer than its header says");
	assert_int_equal(b.n, 3);
	kv_cache_free(&b);
	kv_cache_free(&a);
	error_clear();
}

static void copy_prefix(const char *from, const char *to, size_t n)
{
	FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
	char buf[4096];
	assert_non_null(in);
	assert_non_null(out);
	while (n) {
		size_t k = fread(buf, 1, n < sizeof(buf) ? n : sizeof(buf), in);
		assert_true(k > 0);
		fwrite(buf, 1, k, out);
		n -= k;
	}
	fclose(in);
	fclose(out);
}

/* A file cut at every 4 KiB (and one byte short) is refused up front: the cache is untouched. */
static void test_truncated(void **state)
{
	(void)state;
	struct kv_cache a, b, keep;
	char path[128], cut[128];
	const int win[3] = { 0, 4, 0 };
	snprintf(path, sizeof(path), "%s/full.kv", tmp);
	snprintf(cut, sizeof(cut), "%s/cut.kv", tmp);
	make_cache(&a, KV_F16, 3, 1024, win, 64, 1000, 11);
	write_state(path, &a, &model_a);
	size_t size = (size_t)kv_state_size(&a);
	assert_true(size > 64 * 1024);
	make_cache(&b, KV_F16, 3, 1024, win, 64, 40, 12);
	make_cache(&keep, KV_F16, 3, 1024, win, 64, 40, 12);
	int cuts = 0;
	for (size_t step = 0; step * 4096 <= size; step++) {
		/* every 4 KiB, and the last one a byte short */
		size_t at = step * 4096 < size - 1 ? step * 4096 : size - 1;
		copy_prefix(path, cut, at);
		error_clear();
		assert_null(kv_state_open(cut, &b, &model_a));
		assert_true(strstr(error_message(), "truncated") || strstr(error_message(), "not a KV"));
		assert_same(&b, &keep);
		cuts++;
	}
	assert_true(cuts > 16);
	/* and the whole file still reads */
	assert_int_equal(load(path, &b, &model_a), 0);
	assert_same(&a, &b);
	kv_cache_free(&a);
	kv_cache_free(&b);
	kv_cache_free(&keep);
	error_clear();
}

/* One flipped bit anywhere is caught: refused before reading, or the cache emptied after. */
static void test_flipped(void **state)
{
	(void)state;
	struct kv_cache a, b;
	char path[128];
	const int win[2] = { 0, 3 };
	snprintf(path, sizeof(path), "%s/flip.kv", tmp);
	make_cache(&a, KV_F16, 2, 16, win, 6, 11, 21);
	write_state(path, &a, &model_a);
	size_t size = (size_t)kv_state_size(&a);
	unsigned char *orig = malloc(size);
	FILE *f = fopen(path, "rb");
	assert_int_equal(fread(orig, 1, size, f), size);
	fclose(f);
	make_cache(&b, KV_F16, 2, 16, win, 6, 4, 22);
	int refused = 0, emptied = 0;
	for (size_t at = 0; at < size; at++)
		for (int bit = 0; bit < 8; bit += 7) {
			orig[at] ^= (unsigned char)(1u << bit);
			f = fopen(path, "wb");
			fwrite(orig, 1, size, f);
			fclose(f);
			orig[at] ^= (unsigned char)(1u << bit);
			b.n = 4;
			struct kv_state_file *sf = kv_state_open(path, &b, &model_a);
			if (!sf) {
				assert_int_equal(b.n, 4);
				refused++;
				continue;
			}
			if (kv_state_read(sf, &b) == 0)
				fail_msg("a flipped bit %d at byte %zu of %zu was read as valid", bit,
					 at, size);
			kv_state_close(sf);
			assert_int_equal(b.n, 0);
			for (int c = 0; c < b.cells[1]; c++)
				assert_int_equal(b.pos[1][c], -1);
			emptied++;
		}
	assert_int_equal(refused + emptied, 2 * (int)size);
	assert_true(refused > 0 && emptied > 0);
	free(orig);
	kv_cache_free(&a);
	kv_cache_free(&b);
	error_clear();
}

/* ---- the folder --------------------------------------------------------------------------- */

/* The names in dir other than . and .., sorted into one string "a b c". */
static void list_names(const char *dir, struct strbuf *out)
{
	struct dirent **names;
	strbuf_reset(out);
	int n = scandir(dir, &names, NULL, alphasort);
	for (int i = 0; i < n; i++) {
		if (strcmp(names[i]->d_name, ".") && strcmp(names[i]->d_name, ".."))
			strbuf_addf(out, "%s%s", out->len ? " " : "", names[i]->d_name);
		free(names[i]);
	}
	if (n >= 0)
		free(names);
}

static int save(const char *dir, const char *session, const struct kv_cache *kv, uint64_t cap,
		int (*stop)(void *), void *ud)
{
	struct strbuf path = STRBUF_INIT;
	uint64_t bytes = 0;
	int rc = kv_dir_save(dir, session, kv_state_key(kv, &model_a), kv, &model_a, cap, stop, ud,
			     &path, &bytes);
	if (rc == 0) {
		struct stat st;
		assert_int_equal(stat(path.buf, &st), 0);
		assert_int_equal((uint64_t)st.st_size, bytes);
	}
	strbuf_release(&path);
	return rc;
}

static void test_names(void **state)
{
	(void)state;
	assert_true(kv_dir_session_ok("3f9a0c1e"));
	assert_true(kv_dir_session_ok("a-b_C9"));
	assert_false(kv_dir_session_ok(""));
	assert_false(kv_dir_session_ok("../x"));
	assert_false(kv_dir_session_ok("a b"));
	assert_false(kv_dir_session_ok("a/b"));
	char longid[ENGINE_SESSION_MAX + 1];
	memset(longid, 'a', sizeof(longid) - 1);
	longid[ENGINE_SESSION_MAX] = '\0';
	assert_false(kv_dir_session_ok(longid));
	longid[ENGINE_SESSION_MAX - 1] = '\0';
	assert_true(kv_dir_session_ok(longid));

	struct kv_cache a, b;
	char dir[128];
	snprintf(dir, sizeof(dir), "%s/kv/deeper", tmp);
	make_cache(&a, KV_F16, 2, 16, NULL, 0, 9, 3);
	make_cache(&b, KV_F32, 2, 16, NULL, 0, 9, 3);
	/* the folder is created; one file per session and key */
	assert_int_equal(save(dir, "s-1", &a, 0, NULL, NULL), 0);
	assert_int_equal(save(dir, "s-1", &b, 0, NULL, NULL), 0);
	assert_int_equal(save(dir, "s-1", &a, 0, NULL, NULL), 0);
	assert_int_equal(save(dir, "s_2", &a, 0, NULL, NULL), 0);
	assert_int_equal(save(dir, "bad/name", &a, 0, NULL, NULL), -1);
	assert_string_equal(error_message(), "invalid session id 'bad/name'");
	struct engine_kv_file *f;
	size_t n;
	assert_int_equal(engine_kv_list(dir, &f, &n), 0);
	assert_int_equal(n, 3);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(f[i].tokens, 9);
		assert_string_equal(f[i].model, "model A");
		assert_true(!strcmp(f[i].session, "s-1") || !strcmp(f[i].session, "s_2"));
	}
	engine_kv_list_free(f, n);
	/* a file that is no state is listed as such, and other names are ignored */
	struct strbuf p = STRBUF_INIT;
	strbuf_addf(&p, "%s/zz-0123456789abcdef.kv", dir);
	FILE *fp = fopen(p.buf, "w");
	fputs("junk", fp);
	fclose(fp);
	strbuf_reset(&p);
	strbuf_addf(&p, "%s/notes.txt", dir);
	fp = fopen(p.buf, "w");
	fclose(fp);
	assert_int_equal(engine_kv_list(dir, &f, &n), 0);
	assert_int_equal(n, 4);
	int junk = 0;
	for (size_t i = 0; i < n; i++)
		junk += f[i].tokens == -1 && !strcmp(f[i].session, "zz");
	assert_int_equal(junk, 1);
	engine_kv_list_free(f, n);
	assert_int_equal(engine_kv_remove(dir, "s-1"), 2);
	assert_int_equal(engine_kv_remove(dir, "nobody"), 0);
	assert_int_equal(engine_kv_remove(dir, NULL), 2);
	list_names(dir, &p);
	assert_string_equal(p.buf, "notes.txt");
	/* a missing folder lists nothing */
	strbuf_reset(&p);
	strbuf_addf(&p, "%s/none", tmp);
	assert_int_equal(engine_kv_list(p.buf, &f, &n), 0);
	assert_int_equal(n, 0);
	engine_kv_list_free(f, n);
	assert_int_equal(engine_kv_remove(p.buf, NULL), 0);
	strbuf_release(&p);
	kv_cache_free(&a);
	kv_cache_free(&b);
	error_clear();
}

static void set_mtime(const char *dir, const char *session, const struct kv_cache *kv, time_t t)
{
	struct strbuf p = STRBUF_INIT;
	kv_dir_file(&p, dir, session, kv_state_key(kv, &model_a));
	struct timespec ts[2] = { { t, 0 }, { t, 0 } };
	assert_int_equal(utimensat(AT_FDCWD, p.buf, ts, 0), 0);
	strbuf_release(&p);
}

static int exists(const char *dir, const char *session, const struct kv_cache *kv)
{
	struct strbuf p = STRBUF_INIT;
	struct stat st;
	kv_dir_file(&p, dir, session, kv_state_key(kv, &model_a));
	int rc = stat(p.buf, &st) == 0;
	strbuf_release(&p);
	return rc;
}

/* Over the cap, the least recently used states go; a state alone over it is not written. */
static void test_eviction(void **state)
{
	(void)state;
	struct kv_cache a;
	char dir[128];
	snprintf(dir, sizeof(dir), "%s/lru", tmp);
	make_cache(&a, KV_F16, 2, 64, NULL, 0, 50, 3);
	uint64_t one = kv_state_size(&a), cap = 3 * one + one / 2;
	assert_int_equal(save(dir, "s1", &a, cap, NULL, NULL), 0);
	assert_int_equal(save(dir, "s2", &a, cap, NULL, NULL), 0);
	assert_int_equal(save(dir, "s3", &a, cap, NULL, NULL), 0);
	set_mtime(dir, "s1", &a, 1000);
	set_mtime(dir, "s2", &a, 3000);
	set_mtime(dir, "s3", &a, 2000);
	/* s1 is the oldest */
	assert_int_equal(save(dir, "s4", &a, cap, NULL, NULL), 0);
	assert_false(exists(dir, "s1", &a));
	assert_true(exists(dir, "s2", &a) && exists(dir, "s3", &a) && exists(dir, "s4", &a));
	/* a restore touches: s3 becomes the newest, so s2 goes next */
	set_mtime(dir, "s4", &a, 4000);
	struct strbuf p = STRBUF_INIT;
	kv_dir_file(&p, dir, "s3", kv_state_key(&a, &model_a));
	kv_dir_touch(p.buf);
	assert_int_equal(save(dir, "s5", &a, cap, NULL, NULL), 0);
	assert_false(exists(dir, "s2", &a));
	assert_true(exists(dir, "s3", &a) && exists(dir, "s4", &a) && exists(dir, "s5", &a));
	/* rewriting a session's state does not evict another for its old size */
	assert_int_equal(save(dir, "s5", &a, cap, NULL, NULL), 0);
	assert_true(exists(dir, "s3", &a) && exists(dir, "s4", &a) && exists(dir, "s5", &a));
	/* larger than the cap alone: refused, nothing removed */
	assert_int_equal(save(dir, "big", &a, one - 1, NULL, NULL), -1);
	assert_non_null(strstr(error_message(), "is larger than kv_cache.max_disk"));
	assert_false(exists(dir, "big", &a));
	assert_true(exists(dir, "s3", &a));
	strbuf_release(&p);
	kv_cache_free(&a);
	error_clear();
}

static int stop_always(void *ud)
{
	(void)ud;
	return 1;
}

/* Load dir's state of session into a fresh cache shaped as kv and compare: it is whole. */
static void assert_state_is(const char *dir, const char *session, const struct kv_cache *want)
{
	struct strbuf p = STRBUF_INIT;
	struct kv_cache b;
	const int *win = want->pos[want->n_layer - 1] ? want->window : NULL;
	kv_dir_file(&p, dir, session, kv_state_key(want, &model_a));
	make_cache(&b, want->type, want->n_layer, want->n_ctx, win,
		   want->pos[want->n_layer - 1] ? want->cells[want->n_layer - 1] : 0, 1, 77);
	if (load(p.buf, &b, &model_a) < 0)
		fail_msg("'%s': %s", p.buf, error_message());
	assert_same(want, &b);
	kv_cache_free(&b);
	strbuf_release(&p);
}

/* A save that gives way, or fails as a full disk makes it fail, leaves the old state and no other file. */
static void test_failed_saves(void **state)
{
	(void)state;
	struct kv_cache old, next;
	char dir[128];
	struct strbuf names = STRBUF_INIT, before = STRBUF_INIT;
	snprintf(dir, sizeof(dir), "%s/fail", tmp);
	make_cache(&old, KV_F32, 4, 16384, NULL, 0, 100, 5);
	make_cache(&next, KV_F32, 4, 16384, NULL, 0, 16384, 6); /* 7 MiB */
	assert_int_equal(save(dir, "s", &old, 0, NULL, NULL), 0);
	list_names(dir, &before);

	/* interrupted by a waiting request */
	assert_int_equal(save(dir, "s", &next, 0, stop_always, NULL), -1);
	assert_non_null(strstr(error_message(), "interrupted"));
	list_names(dir, &names);
	assert_string_equal(names.buf, before.buf);
	assert_state_is(dir, "s", &old);

	/* a write that fails: the file size limit (EFBIG), in a child so that
	 * the limit stays there */
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct rlimit rl = { 1 << 20, 1 << 20 };
		signal(SIGXFSZ, SIG_IGN);
		setrlimit(RLIMIT_FSIZE, &rl);
		int rc = save(dir, "s", &next, 0, NULL, NULL);
		if (rc == -1 && strstr(error_message(), "File too large"))
			_exit(0);
		fprintf(stderr, "save: %d: %s\n", rc, error_message());
		_exit(1);
	}
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	list_names(dir, &names);
	assert_string_equal(names.buf, before.buf);
	assert_state_is(dir, "s", &old);

	/* and then a save that works replaces it */
	assert_int_equal(save(dir, "s", &next, 0, NULL, NULL), 0);
	assert_state_is(dir, "s", &next);
	strbuf_release(&names);
	strbuf_release(&before);
	kv_cache_free(&old);
	kv_cache_free(&next);
	error_clear();
}

/* The child's stop callback: tell the parent we are mid-write, then wait to be killed. */
static int in_the_middle(void *ud)
{
	static int calls;
	int fd = *(int *)ud;
	if (++calls == 3) {
		char c = 1;
		if (write(fd, &c, 1) != 1)
			_exit(2);
		for (;;)
			pause();
	}
	return 0;
}

/* SIGKILL in the middle of a save: the old state stays, nothing else is left. */
static void test_sigkill(void **state)
{
	(void)state;
	struct kv_cache old, next;
	char dir[128];
	struct strbuf names = STRBUF_INIT, before = STRBUF_INIT;
	snprintf(dir, sizeof(dir), "%s/kill", tmp);
	make_cache(&old, KV_F16, 4, 16384, NULL, 0, 100, 5);
	make_cache(&next, KV_F16, 4, 16384, NULL, 0, 16384, 6); /* 3.5 MiB: several flushes */
	assert_int_equal(save(dir, "s", &old, 0, NULL, NULL), 0);
	list_names(dir, &before);
	int pfd[2];
	assert_int_equal(pipe(pfd), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(pfd[0]);
		save(dir, "s", &next, 0, in_the_middle, &pfd[1]);
		_exit(3);
	}
	close(pfd[1]);
	char c;
	assert_int_equal(read(pfd[0], &c, 1), 1); /* 2 MiB written */
	kill(pid, SIGKILL);
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	close(pfd[0]);
	list_names(dir, &names);
	assert_string_equal(names.buf, before.buf);
	assert_state_is(dir, "s", &old);

	/* where O_TMPFILE is missing the temporary has a name: one left by a
	 * dead writer is removed by the next listing or save */
	pid = fork();
	if (pid == 0)
		_exit(0);
	waitpid(pid, &status, 0);
	struct strbuf t = STRBUF_INIT;
	strbuf_addf(&t, "%s/.s-0123456789abcdef.kv.%ld.tmp", dir, (long)pid);
	FILE *fp = fopen(t.buf, "w");
	fputs("half", fp);
	fclose(fp);
	strbuf_reset(&t);
	strbuf_addf(&t, "%s/.s-0123456789abcdef.kv.%ld.tmp", dir, (long)getpid());
	fp = fopen(t.buf, "w"); /* a live writer's: kept */
	fclose(fp);
	struct engine_kv_file *f;
	size_t n;
	assert_int_equal(engine_kv_list(dir, &f, &n), 0);
	assert_int_equal(n, 1);
	engine_kv_list_free(f, n);
	list_names(dir, &names);
	struct strbuf want = STRBUF_INIT;
	kv_dir_file(&want, dir, "s", kv_state_key(&old, &model_a));
	strbuf_reset(&before);
	strbuf_addf(&before, ".s-0123456789abcdef.kv.%ld.tmp %s", (long)getpid(),
		    strrchr(want.buf, '/') + 1);
	assert_string_equal(names.buf, before.buf);
	strbuf_release(&want);
	unlink(t.buf);
	strbuf_release(&t);
	strbuf_release(&names);
	strbuf_release(&before);
	kv_cache_free(&old);
	kv_cache_free(&next);
}

/* ---- with a model: the numbers after a restore are the numbers without one -------------- */

static struct model *load_model(const char *name, int ring_slack)
{
	struct model_params p;
	model_params_default(&p);
	p.n_ctx = 128;
	p.n_threads = 1;
	p.n_batch = 8;
	p.ring_slack = ring_slack;
	p.prefault = 0;
	struct model *m = model_load(test_ref_path(name), &p);
	if (!m)
		fail_msg("%s", error_message());
	return m;
}

static void model_roundtrip(const char *name)
{
	struct model *a = load_model(name, 1), *b = load_model(name, 1);
	const struct model_info *mi = model_info(a);
	int32_t toks[60];
	for (int i = 0; i < 60; i++)
		toks[i] = (int32_t)(1 + (i * 37) % (mi->n_vocab - 1));
	float *la = malloc(sizeof(float) * (size_t)mi->n_vocab);
	float *lb = malloc(sizeof(float) * (size_t)mi->n_vocab);
	struct kv_state_id id = { 1, 2, "m" };
	char path[128];
	snprintf(path, sizeof(path), "%s/model.kv", tmp);
	assert_int_equal(model_forward(a, toks, 50, 0, NULL, 0), 0);
	write_state(path, model_kv(a), &id);
	assert_int_equal(load(path, model_kv_writable(b), &id), 0);
	assert_int_equal(model_n_past(b), 50);
	/* decode on from both: the same logits, bit for bit */
	for (int i = 50; i < 60; i++) {
		assert_int_equal(model_forward(a, &toks[i], 1, i, la, 0), 0);
		assert_int_equal(model_forward(b, &toks[i], 1, i, lb, 0), 0);
		assert_memory_equal(la, lb, sizeof(float) * (size_t)mi->n_vocab);
	}
	/* and a prefix reuse after the restore matches one without it */
	assert_int_equal(load(path, model_kv_writable(b), &id), 0);
	int keep = model_kv_truncate(b, 45);
	assert_true(keep == 45 || (keep == 0 && mi->n_swa_layers));
	assert_int_equal(model_forward(b, toks + keep, 60 - keep, keep, lb, 0), 0);
	assert_memory_equal(la, lb, sizeof(float) * (size_t)mi->n_vocab);
	free(la);
	free(lb);
	model_free(a);
	model_free(b);
}

static void test_models(void **state)
{
	(void)state;
	REQUIRE_REF();
	model_roundtrip("models/stories260K.gguf");
	/* sliding-window layers: rings of window 6 + a chunk of 8 + 1, wrapped */
	model_roundtrip("models/rand-gemma3-f32.gguf");
	model_roundtrip("models/rand-gemma2-f32.gguf");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_roundtrip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refusals, setup, teardown),
		cmocka_unit_test_setup_teardown(test_truncated, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flipped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_names, setup, teardown),
		cmocka_unit_test_setup_teardown(test_eviction, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failed_saves, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sigkill, setup, teardown),
		cmocka_unit_test_setup_teardown(test_models, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
