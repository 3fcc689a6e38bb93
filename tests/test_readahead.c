/* Tests for the read-ahead table (readahead.c), read-ahead on/off in the forward pass, and mlock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "gguf.h"
#include "model.h"
#include "readahead.h"
#include "testutil.h"
#include "xalloc.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *const models[] = {
	"models/stories260K.gguf",         "models/rand-gemma2-f32.gguf", /* tied output */
	"models/rand-llama-256-Q4_0.gguf", "models/llama-2-tiny-random.gguf",
	"models/rand-qwen3moe-f32.gguf",   "models/rand-llama-moe-f32.gguf",
};

/* The group readahead.c should put a tensor in: -1 = none. */
static int expected_group(const struct gguf_tensor *t, int n_layer, int tied)
{
	if (t->n_dims == 3 && strstr(t->name, "_exps.")) /* read by expert */
		return -1;
	if (!strncmp(t->name, "blk.", 4)) {
		int l = atoi(t->name + 4);
		if (l >= 0 && l < n_layer)
			return l;
	}
	if (!strcmp(t->name, "token_embd.weight") && !tied)
		return -1;
	return n_layer;
}

/*
 * Built independently of readahead.c: a bitmap of the pages each group's
 * tensors touch.  The group's ranges must be exactly its maximal runs of
 * marked pages -- which is both "covers every tensor" and "as few ranges as
 * possible" -- sorted, page-aligned and apart.
 */
static void check_model(const char *rel)
{
	const char *p = test_ref_path(rel);
	struct gguf *g = gguf_open(p);
	assert_non_null(g);
	struct gguf_str arch;
	assert_int_equal(gguf_get_str(g, "general.architecture", &arch), 0);
	char key[96];
	snprintf(key, sizeof(key), "%.*s.block_count", (int)arch.len, arch.data);
	uint32_t nl;
	assert_int_equal(gguf_get_u32(g, key, &nl), 0);
	int tied = gguf_find_tensor(g, "output.weight") == NULL;
	struct readahead *ra = readahead_create(g, (int)nl, tied, NULL);
	assert_non_null(ra);
	assert_int_equal(readahead_n_groups(ra), (int)nl + 1);

	size_t ps = (size_t)sysconf(_SC_PAGESIZE);
	uintptr_t base = (uintptr_t)gguf_map(g);
	size_t npages = (size_t)(gguf_file_size(g) + ps - 1) / ps;
	unsigned char *mark = malloc(npages);
	assert_non_null(mark);
	int total_ranges = 0;
	for (int grp = 0; grp <= (int)nl; grp++) {
		memset(mark, 0, npages);
		int n_tensors = 0;
		for (int64_t i = 0; i < gguf_n_tensors(g); i++) {
			const struct gguf_tensor *t = gguf_tensor_at(g, i);
			if (expected_group(t, (int)nl, tied) != grp || !t->nbytes)
				continue;
			n_tensors++;
			uintptr_t a = (uintptr_t)t->data - base, b = a + t->nbytes;
			for (size_t pg = a / ps; pg < (b + ps - 1) / ps; pg++)
				mark[pg] = 1;
		}
		const struct readahead_range *r;
		int n = readahead_ranges(ra, grp, &r);
		total_ranges += n;
		if (grp < (int)nl)
			assert_true(n_tensors >= 7); /* norms and four matrices, and the router or
						      * three more (dense) at least */
		size_t k = 0;
		for (size_t pg = 0; pg < npages;) {
			if (!mark[pg]) {
				pg++;
				continue;
			}
			size_t e = pg;
			while (e < npages && mark[e])
				e++;
			assert_true((int)k < n);
			assert_true(r[k].start == base + pg * ps);
			assert_true(r[k].end == base + e * ps);
			k++;
			pg = e;
		}
		assert_int_equal((int)k, n);
		for (int i = 0; i + 1 < n; i++)
			assert_true(r[i].end < r[i + 1].start);
	}
	/* the ranges of a layer are few: GGUF writers keep a layer's tensors together */
	assert_true(total_ranges <= 2 * ((int)nl + 1));
	free(mark);
	readahead_free(ra);
	gguf_close(g);
}

static void test_ranges_cover_layers(void **state)
{
	(void)state;
	REQUIRE_REF();
	for (size_t i = 0; i < sizeof(models) / sizeof(models[0]); i++)
		check_model(models[i]);
}

/* The helper thread starts, follows positions (repeated, out of range) and
 * stops cleanly, also with work pending. */
static void test_helper_lifecycle(void **state)
{
	(void)state;
	REQUIRE_REF();
	struct gguf *g = gguf_open(test_ref_path("models/stories260K.gguf"));
	assert_non_null(g);
	struct readahead *ra = readahead_create(g, 5, 1, NULL);
	assert_non_null(ra);
	readahead_advance(ra, 0);                 /* not started: ignored */
	assert_int_equal(readahead_start(ra), 1); /* a small file fits */
	for (int rep = 0; rep < 3; rep++)
		for (int i = -2; i <= 7; i++) /* out of range ones are ignored */
			readahead_advance(ra, i);
	uint64_t res = 0, pages = 0;
	assert_int_equal(readahead_resident(ra, 0, &res, &pages), 0);
	assert_true(pages > 0);
	assert_true(res <= pages);
	readahead_free(ra);
	gguf_close(g);
}

/* Pages of expert e of layer l resident now (of *pages). */
static uint64_t expert_resident(struct readahead *ra, int l, int e, uint64_t *pages)
{
	uint64_t r = 0;
	*pages = 0;
	assert_int_equal(readahead_expert_resident(ra, l, e, &r, pages), 0);
	return r;
}

/*
 * A mixture's experts: on a copy of the qwen3moe file dropped from the page
 * cache, asking for two experts of layer 1 makes the helper read exactly
 * their pages (gate, up and down), and nothing of the others.
 */
static void test_experts_follow_routing(void **state)
{
	(void)state;
	REQUIRE_REF();
	char path[256];
	snprintf(path, sizeof(path), "%s/palaver-ra-moe-%d.gguf",
		 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", (int)getpid());
	FILE *in = fopen(test_ref_path("models/rand-qwen3moe-f32.gguf"), "rb");
	FILE *out = fopen(path, "wb");
	assert_non_null(in);
	assert_non_null(out);
	char buf[65536];
	size_t n;
	while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
		assert_int_equal(fwrite(buf, 1, n, out), n);
	fclose(in);
	assert_int_equal(fclose(out), 0);
	/* dropped after the header is read: the kernel reads around the
	 * header's page fault, which would bring in the whole small file */
	struct gguf *g = gguf_open(path);
	assert_non_null(g);
	int fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(fdatasync(fd), 0);
	assert_int_equal(posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED), 0);
	close(fd);
	struct readahead *ra = readahead_create(g, 2, 0, NULL);
	assert_non_null(ra);
	assert_int_equal(readahead_n_experts(ra), 8);
	/* one expert: 64 x 64 floats in each of gate, up, down (page-rounded) */
	uint64_t eb = readahead_expert_bytes(ra, 1);
	assert_true(eb >= 3 * 16384 && eb <= 3 * (16384 + 2 * 4096));
	assert_int_equal(readahead_expert_bytes(ra, 2), 0);
	uint64_t pages, before = expert_resident(ra, 1, 2, &pages);
	assert_true(pages >= 12);
	readahead_experts(ra, 1, (int32_t[]){ 5, 2, 5 }, 3); /* not started: ignored */
	assert_int_equal(readahead_start(ra), 1);
	int cold = before == 0 && expert_resident(ra, 1, 5, &pages) == 0 &&
		   expert_resident(ra, 1, 7, &pages) == 0;
	readahead_experts(ra, 1, (int32_t[]){ 5, 2, 5, 99, -1 }, 5); /* repeats, out of range */
	uint64_t p2, p5, r2 = 0, r5 = 0;
	for (int i = 0; i < 400; i++) { /* up to 2 s */
		r2 = expert_resident(ra, 1, 2, &p2);
		r5 = expert_resident(ra, 1, 5, &p5);
		if (r2 == p2 && r5 == p5)
			break;
		nanosleep(&(struct timespec){ 0, 5000000 }, NULL);
	}
	assert_int_equal(r2, p2);
	assert_int_equal(r5, p5);
	if (cold) {
		/* what it read: those pages, not expert 7's (7 shares no page with 5) */
		assert_int_equal(expert_resident(ra, 1, 7, &pages), 0);
		assert_true(readahead_pages_requested(ra) <= p2 + p5);
		assert_true(readahead_pages_requested(ra) >= p2 + p5 - 6); /* shared edge pages */
	} else {
		printf("note: the drop did not take (%d pages resident); only residency is "
		       "checked\n",
		       (int)before);
	}
	readahead_free(ra);
	gguf_close(g);
	unlink(path);
}

static struct model *load(const char *rel, int readahead, int mlock)
{
	struct model_params mp;
	model_params_default(&mp);
	mp.n_threads = 2;
	mp.n_ctx = 64;
	mp.prefault = 0;
	mp.readahead = readahead;
	mp.mlock = mlock;
	struct model *m = model_load(test_ref_path(rel), &mp);
	assert_non_null(m);
	return m;
}

/* 8 prompt tokens then 3 decode steps; logits of every step into out. */
static void run(struct model *m, float *out)
{
	int nv = model_info(m)->n_vocab;
	int32_t toks[8];
	for (int i = 0; i < 8; i++)
		toks[i] = (int32_t)(1 + (i * 37) % (nv - 1));
	assert_int_equal(model_forward(m, toks, 8, 0, out, 0), 0);
	for (int s = 0; s < 3; s++) {
		int32_t t = (int32_t)(1 + (s * 11) % (nv - 1));
		assert_int_equal(model_forward(m, &t, 1, 8 + s, out + (size_t)(s + 1) * nv, 0), 0);
	}
}

static void test_readahead_bit_identical(void **state)
{
	(void)state;
	REQUIRE_REF();
	for (size_t k = 0; k < sizeof(models) / sizeof(models[0]); k++) {
		struct model *on = load(models[k], 1, 0), *off = load(models[k], 0, 0);
		assert_int_equal(model_info(on)->readahead, 1);
		assert_int_equal(model_info(off)->readahead, 0);
		int nv = model_info(on)->n_vocab, nl = model_info(on)->n_layer;
		float *a = calloc((size_t)nv * 4, sizeof(float));
		float *b = calloc((size_t)nv * 4, sizeof(float));
		assert_non_null(a);
		assert_non_null(b);
		model_ra_stats_enable(on, 1);
		model_ra_stats_enable(off, 1);
		run(on, a);
		run(off, b);
		assert_memory_equal(a, b, sizeof(float) * (size_t)nv * 4);
		/* hit counts: one check per layer per forward call, never above the total */
		struct model_ra_stats s;
		model_ra_stats_get(on, &s);
		assert_int_equal((int)s.layers, 4 * nl);
		assert_true(s.pages > 0);
		assert_true(s.resident <= s.pages);
		assert_true(s.layers_full <= s.layers);
		model_ra_stats_get(off, &s);
		assert_int_equal((int)s.layers, 4 * nl);
		assert_int_equal((int)s.requested, 0); /* no helper, nothing asked */
		model_ra_stats_enable(on, 0);
		model_ra_stats_get(on, &s);
		assert_int_equal((int)s.layers, 4 * nl); /* kept until re-enabled */
		free(a);
		free(b);
		model_free(on);
		model_free(off);
	}
}

static uint64_t table_bytes(const struct readahead *ra)
{
	uint64_t b = 0;
	for (int g = 0; g < readahead_n_groups(ra); g++) {
		const struct readahead_range *r;
		int n = readahead_ranges(ra, g, &r);
		for (int i = 0; i < n; i++)
			b += r[i].end - r[i].start;
	}
	return b;
}

/* Weights repacked into copies at load leave the read-ahead table (the
 * forward pass no longer reads their file pages), and mlock pins the
 * copies instead: the pinned bytes stay about the weights' size.  Float
 * weights are copied in their own layout on every CPU (for the 2 MiB
 * pages); the logits are the mapping's, bit for bit, either way. */
static void check_repacked(const char *rel, int always)
{
	struct model_params mp;
	model_params_default(&mp);
	mp.n_threads = 1;
	mp.n_ctx = 16;
	mp.prefault = 0;
	mp.repack = 0;
	struct model *plain = model_load(test_ref_path(rel), &mp);
	mp.repack = 1;
	mp.mlock = 1;
	struct model *rp = model_load(test_ref_path(rel), &mp);
	assert_non_null(plain);
	assert_non_null(rp);
	uint64_t a = table_bytes(model_readahead(plain)), b = table_bytes(model_readahead(rp));
	const struct model_info *in = model_info(rp);
	assert_true(a > 0 && a <= model_info(plain)->file_bytes + 4096);
	assert_true(model_info(plain)->repacked_bytes == 0);
	if (always)
		assert_true(in->repacked_bytes > in->weight_bytes / 2);
	if (in->repacked_bytes == 0) {
		assert_true(a == b); /* no repacking kernels on this CPU */
	} else {
		assert_true(b < a);
		assert_true(b + in->repacked_bytes >= a - 4096 * 2 * (uint64_t)in->n_layer);
	}
	if (in->locked) {
		assert_true(in->locked_bytes >= in->weight_bytes);
		assert_true(in->locked_bytes <= in->weight_bytes + in->repacked_bytes);
	}
	int n_vocab = in->n_vocab;
	float *la = xcalloc((size_t)n_vocab, sizeof(float)),
	      *lb = xcalloc((size_t)n_vocab, sizeof(float));
	int32_t toks[5] = { 1, 7, 42, 99, 3 };
	assert_int_equal(model_forward(plain, toks, 4, 0, la, 0), 0);
	assert_int_equal(model_forward(rp, toks, 4, 0, lb, 0), 0);
	assert_memory_equal(la, lb, (size_t)n_vocab * sizeof(float));
	assert_int_equal(model_forward(plain, toks + 4, 1, 4, la, 0), 0);
	assert_int_equal(model_forward(rp, toks + 4, 1, 4, lb, 0), 0);
	assert_memory_equal(la, lb, (size_t)n_vocab * sizeof(float));
	free(la);
	free(lb);
	model_free(plain);
	model_free(rp);
}

static void test_repacked_left_out(void **state)
{
	(void)state;
	REQUIRE_REF();
	check_repacked("models/rand-llama-256-Q8_0.gguf", 0);
	check_repacked("models/rand-llama-256-F16.gguf", 1);
	check_repacked("models/rand-llama-256-BF16.gguf", 1);
}

/* mlock either pins the mapping (then no read-ahead helper runs) or leaves
 * one warning naming the file, the reason and the limit; the model works
 * either way and gives the same logits. */
static void test_mlock(void **state)
{
	(void)state;
	REQUIRE_REF();
	struct model *m = load("models/stories260K.gguf", 1, 1);
	struct model *plain = load("models/stories260K.gguf", 1, 0);
	const struct model_info *in = model_info(m);
	if (in->locked) {
		assert_null(model_warning(m));
		assert_int_equal(in->readahead, 0);
	} else {
		const char *w = model_warning(m);
		assert_non_null(w);
		assert_non_null(strstr(w, "cannot lock '"));
		assert_non_null(strstr(w, "stories260K.gguf"));
		assert_non_null(strstr(w, "ulimit -l"));
		assert_int_equal(in->readahead, 1);
	}
	assert_null(model_warning(plain));
	assert_int_equal(model_info(plain)->locked, 0);
	int nv = in->n_vocab;
	float *a = calloc((size_t)nv * 4, sizeof(float)),
	      *b = calloc((size_t)nv * 4, sizeof(float));
	assert_non_null(a);
	assert_non_null(b);
	run(m, a);
	run(plain, b);
	assert_memory_equal(a, b, sizeof(float) * (size_t)nv * 4);
	free(a);
	free(b);
	model_free(m);
	model_free(plain);
}

/* With no right to lock memory (limit 0, not root) the load warns and goes
 * on.  Run in a child, which gives up root and its limit for good. */
static void test_mlock_refused(void **state)
{
	(void)state;
	REQUIRE_REF();
#if defined(__SANITIZE_ADDRESS__)
	/* ASan's mlock() does nothing and reports success: there the load can
	 * only be checked to work */
	const int asan = 1;
#else
	const int asan = 0;
#endif
	const char *p = test_ref_path("models/stories260K.gguf");
	fflush(NULL);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct rlimit rl = { 0, 0 };
		if (geteuid() == 0 && (setgid(65534) < 0 || setuid(65534) < 0))
			_exit(77);
		if (setrlimit(RLIMIT_MEMLOCK, &rl) < 0 || access(p, R_OK) < 0)
			_exit(77);
		struct model_params mp;
		model_params_default(&mp);
		mp.n_threads = 1;
		mp.n_ctx = 16;
		mp.mlock = 1;
		struct model *m = model_load(p, &mp);
		if (!m)
			_exit(2);
		const char *w = model_warning(m);
		int ok = asan || (!model_info(m)->locked && model_info(m)->readahead && w &&
				  strstr(w, "cannot lock '") && strstr(w, "ulimit -l") &&
				  strstr(w, "limit 0 B"));
		int32_t t = 1;
		ok = ok && model_forward(m, &t, 1, 0, NULL, 0) == 0;
		if (!ok)
			fprintf(stderr, "locked %d, read-ahead %d, warning '%s'\n",
				model_info(m)->locked, model_info(m)->readahead, w ? w : "(none)");
		model_free(m);
		_exit(ok ? 0 : 1);
	}
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	if (WEXITSTATUS(st) == 77)
		TEST_SKIP("root cannot become another user here, or the file is not readable "
			  "to it");
	assert_int_equal(WEXITSTATUS(st), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_experts_follow_routing),
		cmocka_unit_test(test_ranges_cover_layers),
		cmocka_unit_test(test_helper_lifecycle),
		cmocka_unit_test(test_readahead_bit_identical),
		cmocka_unit_test(test_mlock),
		cmocka_unit_test(test_repacked_left_out),
		cmocka_unit_test(test_mlock_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
