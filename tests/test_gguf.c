/* gguf reader: reference files parse, every malformation gets one clean error. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gguf.h"
#include "gguf_write.h"
#include "quant.h"
#include "commands.h"
#include "model.h"
#include <math.h>
#include "report.h"
#include "testutil.h"

/* ---- a byte builder for hand-made files ---------------------------------- */

struct buf {
	uint8_t *p;
	size_t n, cap;
};

static void put(struct buf *b, const void *d, size_t n)
{
	if (b->n + n > b->cap) {
		b->cap = (b->n + n) * 2 + 64;
		b->p = realloc(b->p, b->cap);
		assert_non_null(b->p);
	}
	memcpy(b->p + b->n, d, n);
	b->n += n;
}

static void put_u8(struct buf *b, uint8_t v) { put(b, &v, 1); }
static void put_u32(struct buf *b, uint32_t v) { put(b, &v, 4); }
static void put_u64(struct buf *b, uint64_t v) { put(b, &v, 8); }

static void put_str(struct buf *b, const char *s)
{
	put_u64(b, strlen(s));
	put(b, s, strlen(s));
}

static void put_hdr(struct buf *b, uint32_t version, uint64_t n_tensors, uint64_t n_kv)
{
	put(b, "GGUF", 4);
	put_u32(b, version);
	put_u64(b, n_tensors);
	put_u64(b, n_kv);
}

static void put_kv_u32(struct buf *b, const char *key, uint32_t v)
{
	put_str(b, key);
	put_u32(b, GGUF_TYPE_UINT32);
	put_u32(b, v);
}

static void put_tensor(struct buf *b, const char *name, int nd, const uint64_t *ne, uint32_t type,
		       uint64_t offset)
{
	put_str(b, name);
	put_u32(b, (uint32_t)nd);
	for (int i = 0; i < nd; i++)
		put_u64(b, ne[i]);
	put_u32(b, type);
	put_u64(b, offset);
}

static void put_pad(struct buf *b, size_t align)
{
	while (b->n % align)
		put_u8(b, 0);
}

static void put_zeros(struct buf *b, size_t n)
{
	while (n--)
		put_u8(b, 0);
}

/* ---- scratch directory ---------------------------------------------------- */

static char tmpdir[256];

static int setup_dir(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/palaver-test-gguf-XXXXXX");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown_dir(void **state)
{
	char cmd[512];
	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

static const char *write_file(const char *name, const void *d, size_t n)
{
	static char path[512];
	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	if (n)
		assert_int_equal(fwrite(d, 1, n, f), n);
	assert_int_equal(fclose(f), 0);
	return path;
}

/* Open the built bytes; expect failure with one message that names the file
 * and contains `want`. */
static void expect_error(struct buf *b, const char *want)
{
	const char *path = write_file("bad.gguf", b->p, b->n);
	error_clear();
	struct gguf *g = gguf_open(path);
	if (g) {
		gguf_close(g);
		fail_msg("opened a malformed file, expected '%s'", want);
	}
	const char *msg = error_message();
	if (!strstr(msg, want) || !strstr(msg, path) || strchr(msg, '\n'))
		fail_msg("message '%s' does not name the file and say '%s'", msg, want);
	free(b->p);
	memset(b, 0, sizeof(*b));
}

static struct gguf *open_ok(struct buf *b)
{
	const char *path = write_file("ok.gguf", b->p, b->n);
	struct gguf *g = gguf_open(path);
	if (!g)
		fail_msg("gguf_open: %s", error_message());
	free(b->p);
	memset(b, 0, sizeof(*b));
	return g;
}

/* ---- reference files ------------------------------------------------------ */

static void check_consistent(struct gguf *g)
{
	uint64_t data = gguf_data_offset(g);
	assert_true(gguf_version(g) == 2 || gguf_version(g) == 3);
	assert_int_equal(data % gguf_alignment(g), 0);
	for (int64_t i = 0; i < gguf_n_kv(g); i++) {
		const struct gguf_kv *kv = gguf_kv_at(g, i);
		assert_ptr_equal(gguf_find_kv(g, kv->key), kv);
		if (kv->type == GGUF_TYPE_ARRAY && kv->arr_type == GGUF_TYPE_STRING) {
			const struct gguf_str *s;
			uint64_t n;
			assert_int_equal(gguf_get_arr_str(g, kv->key, &s, &n), 0);
			assert_int_equal(n, kv->arr_n);
		}
	}
	for (int64_t i = 0; i < gguf_n_tensors(g); i++) {
		const struct gguf_tensor *t = gguf_tensor_at(g, i);
		assert_ptr_equal(gguf_find_tensor(g, t->name), t);
		assert_true(t->offset + t->nbytes + data <= gguf_file_size(g));
		assert_non_null(gguf_type_name(t->type));
	}
	assert_null(gguf_tensor_at(g, gguf_n_tensors(g)));
	assert_null(gguf_kv_at(g, -1));
	assert_null(gguf_find_kv(g, "no.such.key"));
	assert_null(gguf_find_tensor(g, "no.such.tensor"));
}

static void open_dir_all(const char *sub, int *count)
{
	char dir[4096], path[8192];
	snprintf(dir, sizeof(dir), "%s", test_ref_path(sub));
	DIR *d = opendir(dir);
	struct dirent *e;
	assert_non_null(d);
	while ((e = readdir(d))) {
		size_t l = strlen(e->d_name);
		if (l < 5 || strcmp(e->d_name + l - 5, ".gguf"))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		struct gguf *g = gguf_open(path);
		if (!g)
			fail_msg("%s: %s", path, error_message());
		check_consistent(g);
		gguf_close(g);
		(*count)++;
	}
	closedir(d);
}

static void test_ref_all_open(void **state)
{
	int n = 0;
	(void)state;
	REQUIRE_REF();
	open_dir_all("models", &n);
	open_dir_all("vocab", &n);
	assert_true(n >= 21);
}

static void test_ref_stories(void **state)
{
	uint32_t u;
	float f;
	struct gguf_str s;
	(void)state;
	REQUIRE_REF();
	struct gguf *g = gguf_open(test_ref_path("models/stories260K.gguf"));
	assert_non_null(g);
	assert_int_equal(gguf_n_tensors(g), 48);
	assert_int_equal(gguf_get_str(g, "general.architecture", &s), 0);
	assert_int_equal(s.len, 5);
	assert_memory_equal(s.data, "llama", 5);
	assert_int_equal(gguf_get_u32(g, "llama.embedding_length", &u), 0);
	assert_int_equal(u, 64);
	assert_int_equal(gguf_get_u32(g, "llama.block_count", &u), 0);
	assert_int_equal(u, 5);
	assert_int_equal(gguf_get_u32(g, "llama.attention.head_count", &u), 0);
	assert_int_equal(u, 8);
	assert_int_equal(gguf_get_u32(g, "llama.attention.head_count_kv", &u), 0);
	assert_int_equal(u, 4);
	assert_int_equal(gguf_get_f32(g, "llama.attention.layer_norm_rms_epsilon", &f), 0);
	assert_true(f > 0 && f < 1e-3);

	const struct gguf_str *toks;
	uint64_t n;
	assert_int_equal(gguf_get_arr_str(g, "tokenizer.ggml.tokens", &toks, &n), 0);
	assert_int_equal(n, 512);
	assert_int_equal(toks[0].len, 5);
	assert_memory_equal(toks[0].data, "<unk>", 5);

	const struct gguf_tensor *t = gguf_find_tensor(g, "token_embd.weight");
	assert_non_null(t);
	assert_int_equal(t->type, 0);
	assert_int_equal(t->n_dims, 2);
	assert_int_equal(t->ne[0], 64);
	assert_int_equal(t->ne[1], 512);
	assert_int_equal(t->nbytes, 64 * 512 * 4);
	assert_non_null(t->data);

	/* the wrong type or a missing key names the key */
	assert_int_equal(gguf_get_u32(g, "general.architecture", &u), -1);
	assert_non_null(strstr(error_message(), "'general.architecture'"));
	assert_int_equal(gguf_get_u32(g, "llama.nope", &u), -1);
	assert_non_null(strstr(error_message(), "'llama.nope'"));
	assert_int_equal(gguf_get_u32_or(g, "llama.nope", 7, &u), 0);
	assert_int_equal(u, 7);
	gguf_close(g);
}

static void test_ref_quant_types(void **state)
{
	(void)state;
	REQUIRE_REF();
	struct gguf *g = gguf_open(test_ref_path("models/rand-llama-256-Q4_K_M.gguf"));
	assert_non_null(g);
	int seen_q4k = 0, seen_q6k = 0;
	for (int64_t i = 0; i < gguf_n_tensors(g); i++) {
		const struct gguf_tensor *t = gguf_tensor_at(g, i);
		seen_q4k |= t->type == 12;
		seen_q6k |= t->type == 14;
		if (t->type == 12)
			assert_int_equal(t->nbytes, t->ne[0] / 256 * 144 * t->ne[1]);
	}
	assert_true(seen_q4k && seen_q6k);
	gguf_close(g);
}

/* Cut stories260K at every 997th byte: every prefix fails cleanly. */
static void test_truncated_everywhere(void **state)
{
	(void)state;
	REQUIRE_REF();
	FILE *f = fopen(test_ref_path("models/stories260K.gguf"), "rb");
	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	long size = ftell(f);
	fseek(f, 0, SEEK_SET);
	uint8_t *all = malloc((size_t)size);
	assert_non_null(all);
	assert_int_equal(fread(all, 1, (size_t)size, f), (size_t)size);
	fclose(f);
	int n = 0;
	for (long cut = 0; cut < size; cut += 997, n++) {
		const char *path = write_file("cut.gguf", all, (size_t)cut);
		error_clear();
		struct gguf *g = gguf_open(path);
		if (g)
			fail_msg("prefix of %ld bytes opened", cut);
		const char *msg = error_message();
		if (!strstr(msg, path) || strchr(msg, '\n'))
			fail_msg("cut %ld: bad message '%s'", cut, msg);
	}
	assert_true(n > 1000);
	free(all);
}

/* ---- hand-built valid files ----------------------------------------------- */

static void build_all_types(struct buf *b, uint32_t version)
{
	uint64_t ne2[2] = { 32, 3 };
	uint64_t ne1[1] = { 8 };
	put_hdr(b, version, 2, 17);
	put_str(b, "u8"); put_u32(b, GGUF_TYPE_UINT8); put_u8(b, 200);
	put_str(b, "i8"); put_u32(b, GGUF_TYPE_INT8); put_u8(b, (uint8_t)-5);
	put_str(b, "u16"); put_u32(b, GGUF_TYPE_UINT16); put(b, &(uint16_t){ 60000 }, 2);
	put_str(b, "i16"); put_u32(b, GGUF_TYPE_INT16); put(b, &(int16_t){ -300 }, 2);
	put_kv_u32(b, "u32", 4000000000u);
	put_str(b, "i32"); put_u32(b, GGUF_TYPE_INT32); put(b, &(int32_t){ -70000 }, 4);
	put_str(b, "f32"); put_u32(b, GGUF_TYPE_FLOAT32); put(b, &(float){ 1.5f }, 4);
	put_str(b, "bool"); put_u32(b, GGUF_TYPE_BOOL); put_u8(b, 1);
	put_str(b, "str"); put_u32(b, GGUF_TYPE_STRING); put_str(b, "hello");
	put_str(b, "u64"); put_u32(b, GGUF_TYPE_UINT64); put_u64(b, 1ull << 40);
	put_str(b, "i64"); put_u32(b, GGUF_TYPE_INT64); put_u64(b, (uint64_t)-2);
	put_str(b, "f64"); put_u32(b, GGUF_TYPE_FLOAT64); put(b, &(double){ 0.25 }, 8);
	put_str(b, "arr.i32"); put_u32(b, GGUF_TYPE_ARRAY); put_u32(b, GGUF_TYPE_INT32);
	put_u64(b, 3); put(b, (int32_t[]){ 1, -2, 3 }, 12);
	put_str(b, "arr.str"); put_u32(b, GGUF_TYPE_ARRAY); put_u32(b, GGUF_TYPE_STRING);
	put_u64(b, 3); put_str(b, "a"); put_str(b, ""); put_str(b, "ccc");
	put_str(b, "arr.empty"); put_u32(b, GGUF_TYPE_ARRAY); put_u32(b, GGUF_TYPE_FLOAT32);
	put_u64(b, 0);
	put_str(b, "arr.bool"); put_u32(b, GGUF_TYPE_ARRAY); put_u32(b, GGUF_TYPE_BOOL);
	put_u64(b, 2); put_u8(b, 0); put_u8(b, 1);
	put_kv_u32(b, "general.alignment", 64);
	put_tensor(b, "q", 2, ne2, 8 /* Q8_0 */, 0);
	put_tensor(b, "v", 1, ne1, 0 /* F32 */, 128);
	put_pad(b, 64);
	for (int i = 0; i < 3 * 34; i++)
		put_u8(b, (uint8_t)i);
	put_zeros(b, 128 - 3 * 34);
	for (int i = 0; i < 8; i++)
		put(b, &(float){ (float)i }, 4);
}

static void check_all_types(struct gguf *g, uint32_t version)
{
	uint32_t u;
	int32_t i;
	uint64_t u64;
	float f;
	int bl;
	struct gguf_str s;

	assert_int_equal(gguf_version(g), version);
	assert_int_equal(gguf_n_kv(g), 17);
	assert_int_equal(gguf_alignment(g), 64);
	assert_int_equal(gguf_get_u32(g, "u8", &u), 0);
	assert_int_equal(u, 200);
	assert_int_equal(gguf_get_i32(g, "i8", &i), 0);
	assert_int_equal(i, -5);
	assert_int_equal(gguf_get_u32(g, "u16", &u), 0);
	assert_int_equal(u, 60000);
	assert_int_equal(gguf_get_i32(g, "i16", &i), 0);
	assert_int_equal(i, -300);
	assert_int_equal(gguf_get_u32(g, "u32", &u), 0);
	assert_int_equal(u, 4000000000u);
	assert_int_equal(gguf_get_i32(g, "u32", &i), -1); /* does not fit */
	assert_non_null(strstr(error_message(), "'u32'"));
	assert_int_equal(gguf_get_i32(g, "i32", &i), 0);
	assert_int_equal(i, -70000);
	assert_int_equal(gguf_get_u32(g, "i32", &u), -1); /* negative */
	assert_non_null(strstr(error_message(), "does not fit"));
	assert_int_equal(gguf_get_f32(g, "f32", &f), 0);
	assert_true(f == 1.5f);
	assert_int_equal(gguf_get_f32(g, "f64", &f), 0);
	assert_true(f == 0.25f);
	assert_int_equal(gguf_get_f32(g, "u32", &f), -1);
	assert_int_equal(gguf_get_bool(g, "bool", &bl), 0);
	assert_int_equal(bl, 1);
	assert_int_equal(gguf_get_bool(g, "u8", &bl), -1);
	assert_int_equal(gguf_get_bool_or(g, "nope", 1, &bl), 0);
	assert_int_equal(bl, 1);
	assert_int_equal(gguf_get_bool_or(g, "u8", 1, &bl), -1);
	assert_int_equal(gguf_get_f32_or(g, "nope", 2.0f, &f), 0);
	assert_true(f == 2.0f);
	assert_int_equal(gguf_get_str(g, "str", &s), 0);
	assert_int_equal(s.len, 5);
	assert_memory_equal(s.data, "hello", 5);
	assert_int_equal(gguf_get_str(g, "u8", &s), -1);
	assert_int_equal(gguf_get_u64(g, "u64", &u64), 0);
	assert_int_equal(u64, 1ull << 40);
	assert_int_equal(gguf_get_u32(g, "u64", &u), -1);
	assert_int_equal(gguf_get_u64(g, "i64", &u64), -1);
	assert_int_equal(gguf_get_i32(g, "i64", &i), 0);
	assert_int_equal(i, -2);

	enum gguf_vtype at;
	uint64_t n;
	const void *data;
	assert_int_equal(gguf_get_arr(g, "arr.i32", &at, &n, &data), 0);
	assert_int_equal(at, GGUF_TYPE_INT32);
	assert_int_equal(n, 3);
	int32_t v[3];
	memcpy(v, data, 12);
	assert_int_equal(v[1], -2);
	assert_int_equal(gguf_get_arr(g, "u8", &at, &n, &data), -1);
	assert_int_equal(gguf_get_arr(g, "arr.empty", &at, &n, &data), 0);
	assert_int_equal(n, 0);
	assert_int_equal(gguf_get_arr(g, "arr.bool", &at, &n, &data), 0);
	assert_int_equal(at, GGUF_TYPE_BOOL);
	assert_int_equal(n, 2);

	const struct gguf_str *strs;
	assert_int_equal(gguf_get_arr_str(g, "arr.str", &strs, &n), 0);
	assert_int_equal(n, 3);
	assert_int_equal(strs[1].len, 0);
	assert_int_equal(strs[2].len, 3);
	assert_memory_equal(strs[2].data, "ccc", 3);
	assert_int_equal(gguf_get_arr_str(g, "arr.i32", &strs, &n), -1);
	assert_non_null(strstr(error_message(), "array of i32"));

	assert_int_equal(gguf_n_tensors(g), 2);
	const struct gguf_tensor *q = gguf_find_tensor(g, "q");
	const struct gguf_tensor *t = gguf_find_tensor(g, "v");
	assert_non_null(q);
	assert_non_null(t);
	assert_int_equal(q->nbytes, 3 * 34);
	assert_int_equal(q->ne[1], 3);
	assert_int_equal(q->ne[2], 1);
	assert_int_equal(((const uint8_t *)q->data)[5], 5);
	assert_int_equal(t->nbytes, 32);
	float fv[8];
	memcpy(fv, t->data, sizeof(fv));
	assert_true(fv[7] == 7.0f);
	assert_int_equal(gguf_data_offset(g) % 64, 0);
	assert_ptr_equal((const uint8_t *)t->data - (const uint8_t *)q->data, 128);
}

static void test_all_types_v3(void **state)
{
	struct buf b = { 0 };
	(void)state;
	build_all_types(&b, 3);
	struct gguf *g = open_ok(&b);
	check_all_types(g, 3);
	gguf_close(g);
}

static void test_all_types_v2(void **state)
{
	struct buf b = { 0 };
	(void)state;
	build_all_types(&b, 2);
	struct gguf *g = open_ok(&b);
	check_all_types(g, 2);
	gguf_close(g);
}

static void test_unsupported_type_opens(void **state)
{
	struct buf b = { 0 };
	uint64_t ne[2] = { 256, 2 };
	int be;
	size_t bb;
	(void)state;
	put_hdr(&b, 3, 1, 0);
	put_tensor(&b, "iq", 2, ne, 16 /* IQ2_XXS: known, not computed */, 0);
	put_pad(&b, 32);
	put_zeros(&b, 2 * 66);
	struct gguf *g = open_ok(&b);
	assert_int_equal(gguf_tensor_at(g, 0)->nbytes, 2 * 66);
	assert_string_equal(gguf_type_name(16), "IQ2_XXS");
	assert_int_equal(gguf_type_block(12, &be, &bb), 0);
	assert_int_equal(be, 256);
	assert_int_equal(bb, 144);
	assert_int_equal(gguf_type_block(4, &be, &bb), -1);
	assert_null(gguf_type_name(4));
	assert_null(gguf_type_name(40));
	gguf_close(g);
}

/* The reader's block table and quant_traits() agree on every type id. */
static void test_type_table_matches_quant(void **state)
{
	(void)state;
	for (int t = -1; t <= QT_COUNT + 1; t++) {
		const struct quant_traits *q = quant_traits(t);
		int be;
		size_t bb;
		int rc = gguf_type_block(t, &be, &bb);
		if (!q) {
			if (rc == 0)
				fail_msg("type %d: unknown to quant, known to gguf", t);
			assert_null(gguf_type_name(t));
			continue;
		}
		if (rc < 0)
			fail_msg("type %d (%s): known to quant, unknown to gguf", t, q->name);
		assert_int_equal(be, q->block_elems);
		assert_int_equal(bb, q->block_bytes);
		assert_string_equal(gguf_type_name(t), q->name);
	}
}

/* ---- malformed files: one per error class ---------------------------------- */

static void test_bad_header(void **state)
{
	struct buf b = { 0 };
	(void)state;
	put(&b, "GGML", 4);
	put_u32(&b, 3);
	put_u64(&b, 0);
	put_u64(&b, 0);
	expect_error(&b, "not a GGUF file");

	put_hdr(&b, 0x03000000u, 0, 0);
	expect_error(&b, "big-endian");
	put_hdr(&b, 1, 0, 0);
	expect_error(&b, "version 1");
	put_hdr(&b, 9, 0, 0);
	expect_error(&b, "unsupported GGUF version 9");

	put(&b, "GGUF", 4);
	put_u32(&b, 3);
	expect_error(&b, "truncated");
	put(&b, "GG", 2);
	expect_error(&b, "not a GGUF file");
	put_zeros(&b, 0);
	expect_error(&b, "not a GGUF file");

	put_hdr(&b, 3, 0, 1ull << 60);
	put_zeros(&b, 100);
	expect_error(&b, "metadata count");
	put_hdr(&b, 3, UINT64_MAX, 0);
	put_zeros(&b, 100);
	expect_error(&b, "tensor count");
}

static void test_bad_metadata(void **state)
{
	struct buf b = { 0 };
	(void)state;

	put_hdr(&b, 3, 0, 1);
	put_u64(&b, 1000); /* key length past end */
	put(&b, "abc", 3);
	put_zeros(&b, 20);
	expect_error(&b, "past end of file");

	put_hdr(&b, 3, 0, 1);
	put_str(&b, "k");
	put_u32(&b, 13);
	put_zeros(&b, 8);
	expect_error(&b, "key 'k' has unknown value type 13");

	put_hdr(&b, 3, 0, 1);
	put_str(&b, "k");
	put_u32(&b, GGUF_TYPE_UINT64);
	put_u32(&b, 0); /* value truncated */
	expect_error(&b, "value of key 'k'");

	put_hdr(&b, 3, 0, 1);
	put_str(&b, "s");
	put_u32(&b, GGUF_TYPE_STRING);
	put_u64(&b, UINT64_MAX); /* string length past end */
	expect_error(&b, "past end of file");

	put_hdr(&b, 3, 0, 2);
	put_kv_u32(&b, "dup", 1);
	put_kv_u32(&b, "dup", 2);
	expect_error(&b, "duplicate key 'dup'");

	put_hdr(&b, 3, 0, 1);
	put_u64(&b, 3);
	put(&b, "a\0b", 3);
	put_u32(&b, GGUF_TYPE_UINT8);
	put_u8(&b, 0);
	expect_error(&b, "contains a NUL byte");

	put_hdr(&b, 3, 0, 1);
	put_str(&b, "a");
	put_u32(&b, GGUF_TYPE_ARRAY);
	put_u32(&b, 77);
	put_u64(&b, 1);
	put_zeros(&b, 8);
	expect_error(&b, "array of unknown type 77");

	put_hdr(&b, 3, 0, 1);
	put_str(&b, "a");
	put_u32(&b, GGUF_TYPE_ARRAY);
	put_u32(&b, GGUF_TYPE_ARRAY);
	put_u64(&b, 1);
	put_zeros(&b, 16);
	expect_error(&b, "array of arrays");

	put_hdr(&b, 3, 0, 1);
	put_str(&b, "a");
	put_u32(&b, GGUF_TYPE_ARRAY);
	put_u32(&b, GGUF_TYPE_UINT64);
	put_u64(&b, 1ull << 61); /* count * 8 overflows */
	put_zeros(&b, 16);
	expect_error(&b, "extends past end of file");

	put_hdr(&b, 3, 0, 1);
	put_str(&b, "a");
	put_u32(&b, GGUF_TYPE_ARRAY);
	put_u32(&b, GGUF_TYPE_STRING);
	put_u64(&b, 1ull << 40); /* absurd string count: no huge allocation */
	put_zeros(&b, 16);
	expect_error(&b, "array of 1099511627776 strings");

	put_hdr(&b, 3, 0, 1);
	put_str(&b, "a");
	put_u32(&b, GGUF_TYPE_ARRAY);
	put_u32(&b, GGUF_TYPE_STRING);
	put_u64(&b, 2);
	put_str(&b, "x");
	put_u64(&b, 50); /* second element past end */
	put_zeros(&b, 10);
	expect_error(&b, "past end of file");

	put_hdr(&b, 3, 0, 1);
	put_kv_u32(&b, "general.alignment", 48);
	expect_error(&b, "not a power of two");

	put_hdr(&b, 3, 0, 1);
	put_str(&b, "general.alignment");
	put_u32(&b, GGUF_TYPE_UINT64);
	put_u64(&b, 32);
	expect_error(&b, "expected u32");
}

/* One tensor `name` with the given dims/type/offset and `data` bytes of data. */
static void one_tensor(struct buf *b, int nd, const uint64_t *ne, uint32_t type, uint64_t off,
		       size_t data)
{
	put_hdr(b, 3, 1, 0);
	put_tensor(b, "blk.3.attn_q.weight", nd, ne, type, off);
	put_pad(b, 32);
	put_zeros(b, data);
}

static void test_bad_tensors(void **state)
{
	struct buf b = { 0 };
	(void)state;

	one_tensor(&b, 1, (uint64_t[]){ 64 }, 0, 0, 255);
	expect_error(&b, "tensor 'blk.3.attn_q.weight' extends past end of file");
	one_tensor(&b, 1, (uint64_t[]){ 8 }, 0, 32, 40);
	expect_error(&b, "extends past end of file");
	one_tensor(&b, 1, (uint64_t[]){ 8 }, 0, 1ull << 63, 40);
	expect_error(&b, "extends past end of file");
	one_tensor(&b, 1, (uint64_t[]){ 8 }, 0, 4, 64);
	expect_error(&b, "not a multiple of the alignment 32");
	one_tensor(&b, 0, NULL, 0, 0, 64);
	expect_error(&b, "has 0 dimensions");
	one_tensor(&b, 5, (uint64_t[]){ 1, 1, 1, 1, 1 }, 0, 0, 64);
	expect_error(&b, "has 5 dimensions");
	one_tensor(&b, 2, (uint64_t[]){ 8, 0 }, 0, 0, 64);
	expect_error(&b, "dimension 1 is 0, not positive");
	one_tensor(&b, 2, (uint64_t[]){ 8, (uint64_t)-3 }, 0, 0, 64);
	expect_error(&b, "dimension 1 is -3, not positive");
	one_tensor(&b, 1, (uint64_t[]){ 8 }, 4, 0, 64);
	expect_error(&b, "unknown type id 4");
	one_tensor(&b, 1, (uint64_t[]){ 8 }, 40, 0, 64);
	expect_error(&b, "unknown type id 40");
	one_tensor(&b, 1, (uint64_t[]){ 8 }, 0xffffffffu, 0, 64);
	expect_error(&b, "unknown type id 4294967295");
	one_tensor(&b, 2, (uint64_t[]){ 33, 2 }, 2, 0, 64);
	expect_error(&b, "not a multiple of the block size 32");
	one_tensor(&b, 4, (uint64_t[]){ 1ull << 32, 1ull << 32, 1, 1 }, 0, 0, 64);
	expect_error(&b, "too many elements");
	one_tensor(&b, 2, (uint64_t[]){ 1ull << 62, 1 }, 0, 0, 64);
	expect_error(&b, "too large");

	/* truncated inside a tensor info */
	put_hdr(&b, 3, 1, 0);
	put_str(&b, "t");
	put_u32(&b, 4);
	put_u64(&b, 8);
	put_u64(&b, 1);
	put_u64(&b, 1); /* the fourth dimension is missing */
	expect_error(&b, "truncated file: tensor 't' info");

	/* duplicate names, overlap */
	put_hdr(&b, 3, 2, 0);
	put_tensor(&b, "a", 1, (uint64_t[]){ 8 }, 0, 0);
	put_tensor(&b, "a", 1, (uint64_t[]){ 8 }, 0, 32);
	put_pad(&b, 32);
	put_zeros(&b, 64);
	expect_error(&b, "duplicate tensor 'a'");

	put_hdr(&b, 3, 2, 0);
	put_tensor(&b, "a", 1, (uint64_t[]){ 16 }, 0, 0);
	put_tensor(&b, "b", 1, (uint64_t[]){ 8 }, 0, 32);
	put_pad(&b, 32);
	put_zeros(&b, 96);
	expect_error(&b, "tensor 'b' overlaps tensor 'a'");

	/* a hostile name is escaped in the message */
	put_hdr(&b, 3, 1, 0);
	put_tensor(&b, "x\033[2J", 1, (uint64_t[]){ 8 }, 0, 0);
	put_pad(&b, 32);
	expect_error(&b, "tensor 'x\\x1b[2J' extends past end of file");
}

static void test_not_a_file(void **state)
{
	(void)state;
	assert_null(gguf_open(tmpdir));
	assert_non_null(strstr(error_message(), "not a regular file"));
	assert_null(gguf_open("/nonexistent/x.gguf"));
	assert_non_null(strstr(error_message(), "cannot open '/nonexistent/x.gguf'"));
}

/* ---- writer round trip ------------------------------------------------------ */

static void test_writer_round_trip(void **state)
{
	char path[512];
	(void)state;
	snprintf(path, sizeof(path), "%s/w.gguf", tmpdir);
	struct gguf_writer *w = gguf_writer_new();
	struct gguf_str strs[2] = { { 2, "hi" }, { 0, "" } };
	int32_t arr[3] = { 7, -8, 9 };
	int64_t ne_a[2] = { 64, 3 }, ne_b[1] = { 5 };
	assert_int_equal(gguf_writer_add_u32(w, "general.alignment", 64), 0);
	assert_int_equal(gguf_writer_add_str(w, "general.architecture", "llama", 5), 0);
	assert_int_equal(gguf_writer_add_u32(w, "u32", 5), 0);
	assert_int_equal(gguf_writer_add_i32(w, "i32", -5), 0);
	assert_int_equal(gguf_writer_add_u64(w, "u64", 1ull << 33), 0);
	assert_int_equal(gguf_writer_add_f32(w, "f32", 0.5f), 0);
	assert_int_equal(gguf_writer_add_bool(w, "bool", 1), 0);
	assert_int_equal(gguf_writer_add_arr(w, "arr", GGUF_TYPE_INT32, 3, arr), 0);
	assert_int_equal(gguf_writer_add_arr_str(w, "strs", strs, 2), 0);
	assert_int_equal(gguf_writer_add_u32(w, "u32", 6), -1);
	assert_non_null(strstr(error_message(), "duplicate key 'u32'"));
	assert_int_equal(gguf_writer_add_arr(w, "bad", GGUF_TYPE_STRING, 1, arr), -1);
	assert_int_equal(gguf_writer_add_tensor(w, "a", 2, ne_a, 8), 0);
	assert_int_equal(gguf_writer_add_tensor(w, "b", 1, ne_b, 0), 0);
	assert_int_equal(gguf_writer_add_tensor(w, "a", 1, ne_b, 0), -1);
	assert_int_equal(gguf_writer_add_tensor(w, "c", 1, ne_b, 2), -1); /* 5 % 32 */
	assert_int_equal(gguf_writer_add_tensor(w, "d", 1, ne_b, 4), -1); /* retired id */
	assert_int_equal(gguf_writer_tensor_bytes(w, 0), 3 * 2 * 34);
	assert_int_equal(gguf_writer_begin(w, path), 0);
	uint8_t qa[204];
	for (int i = 0; i < 204; i++)
		qa[i] = (uint8_t)i;
	float fb[5] = { 1, 2, 3, 4, 5 };
	assert_int_equal(gguf_writer_write_tensor(w, qa, 100), -1); /* wrong size */
	assert_int_equal(gguf_writer_write_part(w, qa, 100), 0);
	assert_int_equal(gguf_writer_write_part(w, qa + 100, 104), 0);
	assert_int_equal(gguf_writer_finish(w), -1); /* 'b' missing */
	assert_int_equal(gguf_writer_write_tensor(w, fb, sizeof(fb)), 0);
	assert_int_equal(gguf_writer_finish(w), 0);
	gguf_writer_free(w);

	struct gguf *g = gguf_open(path);
	if (!g)
		fail_msg("%s", error_message());
	check_consistent(g);
	uint32_t u;
	int32_t i;
	assert_int_equal(gguf_alignment(g), 64);
	assert_int_equal(gguf_n_kv(g), 9);
	assert_int_equal(gguf_get_u32(g, "u32", &u), 0);
	assert_int_equal(u, 5);
	assert_int_equal(gguf_get_i32(g, "i32", &i), 0);
	assert_int_equal(i, -5);
	const struct gguf_str *rs;
	uint64_t n;
	assert_int_equal(gguf_get_arr_str(g, "strs", &rs, &n), 0);
	assert_int_equal(n, 2);
	assert_memory_equal(rs[0].data, "hi", 2);
	const struct gguf_tensor *a = gguf_find_tensor(g, "a"), *b = gguf_find_tensor(g, "b");
	assert_memory_equal(a->data, qa, 204);
	assert_memory_equal(b->data, fb, sizeof(fb));
	assert_int_equal(b->offset % 64, 0);

	/* copy every entry of a real vocab file into a new one: identical values */
	if (test_ref_dir()) {
		struct gguf *v = gguf_open(test_ref_path("vocab/ggml-vocab-llama-spm.gguf"));
		char path2[600];
		assert_non_null(v);
		snprintf(path2, sizeof(path2), "%s/copy.gguf", tmpdir);
		w = gguf_writer_new();
		for (int64_t k = 0; k < gguf_n_kv(v); k++)
			assert_int_equal(gguf_writer_copy_kv(w, v, gguf_kv_at(v, k)), 0);
		assert_int_equal(gguf_writer_begin(w, path2), 0);
		assert_int_equal(gguf_writer_finish(w), 0);
		gguf_writer_free(w);
		struct gguf *c = gguf_open(path2);
		assert_non_null(c);
		assert_int_equal(gguf_n_kv(c), gguf_n_kv(v));
		const struct gguf_str *t1, *t2;
		uint64_t n1, n2;
		assert_int_equal(gguf_get_arr_str(v, "tokenizer.ggml.tokens", &t1, &n1), 0);
		assert_int_equal(gguf_get_arr_str(c, "tokenizer.ggml.tokens", &t2, &n2), 0);
		assert_int_equal(n1, n2);
		for (uint64_t k = 0; k < n1; k++) {
			assert_int_equal(t1[k].len, t2[k].len);
			assert_memory_equal(t1[k].data, t2[k].data, t1[k].len);
		}
		enum gguf_vtype ty;
		const void *d1, *d2;
		assert_int_equal(gguf_get_arr(v, "tokenizer.ggml.scores", &ty, &n1, &d1), 0);
		assert_int_equal(gguf_get_arr(c, "tokenizer.ggml.scores", &ty, &n2, &d2), 0);
		assert_memory_equal(d1, d2, n1 * 4);
		gguf_close(c);
		gguf_close(v);
	}
	gguf_close(g);
}

/* ---- mkmodel: every type holds the same seeded weights ---------------------- */

static struct gguf *mk(const char *type, const char *name)
{
	static char path[600];
	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	char *argv[] = { "mkmodel", "--dim", "256", "--layers", "2", "--heads", "4",
			 "--kv-heads", "2", "--ffn", "512", "--seed", "5", "--type", (char *)type,
			 path, NULL };
	assert_int_equal(cmd_mkmodel(16, argv, NULL), 0);
	struct gguf *g = gguf_open(path);
	if (!g)
		fail_msg("%s", error_message());
	return g;
}

/* Relative RMS difference of a tensor against the same tensor in F32. */
static double rel_rms(const struct gguf_tensor *ref, const struct gguf_tensor *t)
{
	int64_t n = ref->ne[0] * ref->ne[1];
	float *a = malloc((size_t)n * sizeof(float)), *b = malloc((size_t)n * sizeof(float));
	double num = 0, den = 0;
	assert_non_null(a);
	assert_non_null(b);
	memcpy(a, ref->data, (size_t)n * sizeof(float));
	quant_dequantize_row(t->type, t->data, b, n);
	for (int64_t i = 0; i < n; i++) {
		num += (a[i] - b[i]) * (double)(a[i] - b[i]);
		den += (double)a[i] * a[i];
	}
	free(a);
	free(b);
	return sqrt(num / den);
}

/* RMS of the first n values of an F32 tensor. */
static double rms_of(const struct gguf_tensor *t, int n)
{
	double s2 = 0;
	for (int i = 0; i < n; i++) {
		float v;
		memcpy(&v, (const float *)t->data + i, 4);
		s2 += v * (double)v;
	}
	return sqrt(s2 / n);
}

static void test_mkmodel_types(void **state)
{
	static const struct {
		const char *type;
		int out_type;    /* ggml id of output.weight */
		double max_err;  /* relative RMS bound for that type */
	} cases[] = {
		{ "F16", 1, 1e-3 }, { "Q8_0", 8, 1e-2 }, { "Q6_K", 14, 3e-2 },
		{ "Q4_0", 14, 0.12 }, { "Q4_K", 14, 0.11 }, { "IQ4_NL", 14, 0.09 },
		{ "IQ4_XS", 14, 0.09 }, { "MXFP4", 8, 0.13 },
	};
	(void)state;
	struct gguf *ref = mk("F32", "mk-F32.gguf");
	const struct gguf_tensor *e = gguf_find_tensor(ref, "token_embd.weight");
	const struct gguf_tensor *wq = gguf_find_tensor(ref, "blk.0.attn_q.weight");
	const struct gguf_tensor *nrm = gguf_find_tensor(ref, "blk.1.ffn_norm.weight");
	assert_non_null(e);
	assert_non_null(wq);
	/* as documented: weights std 0.02, token embeddings unit RMS (llama) */
	assert_true(rms_of(wq, 4096) > 0.018 && rms_of(wq, 4096) < 0.022);
	assert_true(rms_of(e, 4096) > 0.9 && rms_of(e, 4096) < 1.1);
	float one;
	memcpy(&one, nrm->data, 4);
	assert_true(one == 1.0f);
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		char name[64];
		snprintf(name, sizeof(name), "mk-%s.gguf", cases[c].type);
		struct gguf *g = mk(cases[c].type, name);
		double worst = 0;
		assert_int_equal(gguf_n_tensors(g), gguf_n_tensors(ref));
		for (int64_t i = 0; i < gguf_n_tensors(ref); i++) {
			const struct gguf_tensor *r = gguf_tensor_at(ref, i);
			const struct gguf_tensor *t = gguf_find_tensor(g, r->name);
			assert_non_null(t);
			if (r->n_dims == 1) {
				assert_int_equal(t->type, 0); /* norms stay F32 */
				continue;
			}
			if (!strcmp(r->name, "output.weight"))
				assert_int_equal(t->type, cases[c].out_type);
			double err = rel_rms(r, t);
			worst = err > worst ? err : worst;
			if (err > cases[c].max_err)
				fail_msg("%s %s (%s): relative RMS error %g", cases[c].type, r->name,
					 gguf_type_name(t->type), err);
		}
		printf("mkmodel %s: worst relative RMS error %.3g (bound %g)\n", cases[c].type, worst,
		       cases[c].max_err);
		gguf_close(g);
	}
	gguf_close(ref);
}

/* IQ4_NL / IQ4_XS follow llama.cpp's mix (no importance matrix): with four
 * heads a KV head, attn_v is Q5_K, and so is ffn_down in the first eighth
 * of the layers; output.weight is Q6_K; the rest is the asked type. */
static void test_mkmodel_iq4_mix(void **state)
{
	static const char *types[] = { "IQ4_NL", "IQ4_XS" };
	(void)state;
	for (int k = 0; k < 2; k++) {
		char path[600];
		snprintf(path, sizeof(path), "%s/mix-%s.gguf", tmpdir, types[k]);
		char *argv[] = { "mkmodel",
				 "--dim",
				 "256",
				 "--layers",
				 "16",
				 "--heads",
				 "8",
				 "--kv-heads",
				 "2",
				 "--ffn",
				 "256",
				 "--type",
				 (char *)types[k],
				 path,
				 NULL };
		assert_int_equal(cmd_mkmodel(14, argv, NULL), 0);
		struct gguf *g = gguf_open(path);
		assert_non_null(g);
		int want = k ? QT_IQ4_XS : QT_IQ4_NL, q5 = 0;
		for (int64_t i = 0; i < gguf_n_tensors(g); i++) {
			const struct gguf_tensor *t = gguf_tensor_at(g, i);
			int layer = -1, expect = want;
			sscanf(t->name, "blk.%d.", &layer);
			if (t->n_dims == 1)
				expect = QT_F32;
			else if (!strcmp(t->name, "output.weight"))
				expect = QT_Q6_K;
			else if (strstr(t->name, "attn_v.weight") ||
				 (strstr(t->name, "ffn_down.weight") && layer < 16 / 8))
				expect = QT_Q5_K;
			if (t->type != expect)
				fail_msg("%s: '%s' is %s, expected %s", types[k], t->name,
					 gguf_type_name(t->type), gguf_type_name(expect));
			q5 += t->type == QT_Q5_K;
		}
		assert_int_equal(q5, 16 + 2);
		gguf_close(g);
	}
}

/* The same seeded model written as IQ4_NL, IQ4_XS and MXFP4 runs through the
 * forward pass (file -> loader -> kernels) with logits near the F32 model's:
 * the weights' rounding error (measured, the same at every ISA level: Q4_K
 * 0.146, IQ4_NL 0.191, IQ4_XS 0.197, MXFP4 0.224, Q4_0 0.219), not a wrong
 * layout (errors near 1). */
static float *mk_logits(const char *type, const int32_t *toks, int n, int *n_vocab)
{
	char name[64];
	snprintf(name, sizeof(name), "fw-%s.gguf", type);
	gguf_close(mk(type, name));
	struct model_params p;
	model_params_default(&p);
	p.kv_type = KV_F32;
	p.n_threads = 1;
	p.n_ctx = 64;
	p.prefault = 0;
	char path[600];
	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	struct model *m = model_load(path, &p);
	if (!m)
		fail_msg("%s: %s", type, error_message());
	*n_vocab = model_info(m)->n_vocab;
	float *out = malloc(sizeof(float) * (size_t)*n_vocab);
	assert_int_equal(model_forward(m, toks, n, 0, out, 0), 0);
	model_free(m);
	return out;
}

static void test_mkmodel_forward(void **state)
{
	static const struct {
		const char *type;
		double bound;
	} cases[] = { { "Q4_K", 0.2 }, { "IQ4_NL", 0.25 }, { "IQ4_XS", 0.25 }, { "MXFP4", 0.3 } };
	int32_t toks[12];
	int nv = 0, nv2 = 0;
	(void)state;
	for (int i = 0; i < 12; i++)
		toks[i] = (int32_t)((i * 97 + 5) % 512);
	float *ref = mk_logits("F32", toks, 12, &nv);
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		float *got = mk_logits(cases[c].type, toks, 12, &nv2);
		double num = 0, den = 0;
		assert_int_equal(nv2, nv);
		for (int i = 0; i < nv; i++) {
			num += (got[i] - ref[i]) * (double)(got[i] - ref[i]);
			den += (double)ref[i] * ref[i];
		}
		printf("mkmodel %s: logits relative L2 %.3g against F32 (bound %g)\n",
		       cases[c].type, sqrt(num / den), cases[c].bound);
		assert_true(sqrt(num / den) < cases[c].bound);
		free(got);
	}
	free(ref);
}

/* tests/fuzz/regress: inputs kept from fuzzing (see the README there).  A file
 * named ok*.gguf must open; every other one must fail with one line naming
 * the file. */
static void test_fuzz_regressions(void **state)
{
	char path[4096 + 256];
	int n = 0;
	(void)state;
	DIR *d = opendir("tests/fuzz/regress");
	assert_non_null(d);
	struct dirent *e;
	while ((e = readdir(d))) {
		size_t l = strlen(e->d_name);
		if (l < 5 || strcmp(e->d_name + l - 5, ".gguf"))
			continue;
		snprintf(path, sizeof(path), "tests/fuzz/regress/%s", e->d_name);
		error_clear();
		struct gguf *g = gguf_open(path);
		if (!strncmp(e->d_name, "ok", 2)) {
			if (!g)
				fail_msg("%s: %s", path, error_message());
			check_consistent(g);
			gguf_close(g);
		} else {
			const char *msg = error_message();
			if (g)
				fail_msg("%s: opened, expected an error", path);
			if (!strstr(msg, path) || strchr(msg, '\n'))
				fail_msg("%s: bad message '%s'", path, msg);
		}
		n++;
	}
	closedir(d);
	assert_true(n >= 30);
}

/* A header of many entries stops with "loading cancelled" when asked to
 * (the flag is read every 65,536 entries: a quit during a load of a header
 * of millions of entries). */
static void test_open_cancelled(void **state)
{
	(void)state;
	struct buf b = { 0 };
	enum { N = 200000 };
	put_hdr(&b, 3, 0, 1);
	put_str(&b, "tokenizer.ggml.tokens");
	put_u32(&b, GGUF_TYPE_ARRAY);
	put_u32(&b, GGUF_TYPE_STRING);
	put_u64(&b, N);
	for (int i = 0; i < N; i++) {
		char t[16];
		snprintf(t, sizeof(t), "t%d", i);
		put_str(&b, t);
	}
	const char *path = write_file("many.gguf", b.p, b.n);
	atomic_int cancel;
	atomic_init(&cancel, 1);
	error_clear();
	assert_null(gguf_open_cancellable(path, &cancel));
	assert_string_equal(error_message(), "loading cancelled");
	atomic_store(&cancel, 0);
	struct gguf *g = gguf_open_cancellable(path, &cancel);
	assert_non_null(g);
	gguf_close(g);
	free(b.p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ref_all_open),
		cmocka_unit_test(test_ref_stories),
		cmocka_unit_test(test_ref_quant_types),
		cmocka_unit_test(test_truncated_everywhere),
		cmocka_unit_test(test_all_types_v3),
		cmocka_unit_test(test_all_types_v2),
		cmocka_unit_test(test_unsupported_type_opens),
		cmocka_unit_test(test_type_table_matches_quant),
		cmocka_unit_test(test_bad_header),
		cmocka_unit_test(test_bad_metadata),
		cmocka_unit_test(test_bad_tensors),
		cmocka_unit_test(test_not_a_file),
		cmocka_unit_test(test_writer_round_trip),
		cmocka_unit_test(test_mkmodel_types),
		cmocka_unit_test(test_mkmodel_iq4_mix),
		cmocka_unit_test(test_mkmodel_forward),
		cmocka_unit_test(test_fuzz_regressions),
		cmocka_unit_test(test_open_cancelled),
	};
	return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}
