/* kv_cache: layout, F16/F32 stores, truncation, the shift, and the model's re-rotation on a shift. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv_cache.h"
#include "model.h"
#include "quant.h"
#include "report.h"
#include "testutil.h"

static float kval(const struct kv_cache *kv, int l, int h, int p, int i)
{
	const void *r = kv_cache_k(kv, l, h, p);
	return kv->type == KV_F32 ? ((const float *)r)[i]
				  : quant_f16_to_f32(((const quant_half *)r)[i]);
}

static float vval(const struct kv_cache *kv, int l, int h, int p, int i)
{
	const void *r = kv_cache_v(kv, l, h, p);
	return kv->type == KV_F32 ? ((const float *)r)[i]
				  : quant_f16_to_f32(((const quant_half *)r)[i]);
}

/* Fill positions 0..n-1 with values that encode (layer, head, pos, i). */
static void fill(struct kv_cache *kv, int n)
{
	float k[2 * 4], v[2 * 3];
	for (int l = 0; l < kv->n_layer; l++)
		for (int p = 0; p < n; p++) {
			for (int h = 0; h < 2; h++) {
				for (int i = 0; i < 4; i++)
					k[h * 4 + i] = (float)(l * 1000 + h * 100 + p) + i * 0.25f;
				for (int i = 0; i < 3; i++)
					v[h * 3 + i] = -(float)(l * 1000 + h * 100 + p) - i * 0.5f;
			}
			kv_cache_store(kv, l, p, k, v);
			kv->tokens[p] = p + 7;
		}
	kv->n = n;
}

static void check_layout(enum kv_type t)
{
	struct kv_cache kv;
	assert_int_equal(kv_cache_init(&kv, t, 3, 16, 2, 4, 3), 0);
	size_t e = t == KV_F32 ? 4 : 2;
	assert_int_equal(kv.bytes, (uint64_t)3 * 2 * 16 * (4 + 3) * e);
	assert_int_equal(kv.bytes, kv_cache_bytes_for(t, 3, 16, 2, 4, 3));
	fill(&kv, 10);
	for (int l = 0; l < 3; l++)
		for (int h = 0; h < 2; h++)
			for (int p = 0; p < 10; p++) {
				assert_float_equal(kval(&kv, l, h, p, 3),
						   l * 1000 + h * 100 + p + 0.75f,
						   t == KV_F32 ? 0 : 1.0);
				assert_float_equal(vval(&kv, l, h, p, 2),
						   -(l * 1000 + h * 100 + p) - 1.0f,
						   t == KV_F32 ? 0 : 1.0);
			}
	/* positions of one head are contiguous */
	assert_ptr_equal((char *)kv_cache_k(&kv, 1, 1, 1),
			 (char *)kv_cache_k(&kv, 1, 1, 0) + 4 * e);

	assert_int_equal(kv_cache_truncate(&kv, 11), -1);
	assert_int_equal(kv_cache_truncate(&kv, 6), 6);
	assert_int_equal(kv.n, 6);

	/* shift: keep 1, discard 2 -> old 3..5 now at 1..3 */
	assert_int_equal(kv_cache_shift(&kv, 1, 6), -1);
	assert_int_equal(kv_cache_shift(&kv, 1, 2), 0);
	assert_int_equal(kv.n, 4);
	int want[4] = { 0, 3, 4, 5 };
	for (int l = 0; l < 3; l++)
		for (int h = 0; h < 2; h++)
			for (int p = 0; p < 4; p++) {
				assert_float_equal(kval(&kv, l, h, p, 0),
						   l * 1000 + h * 100 + want[p],
						   t == KV_F32 ? 0 : 1.0);
				assert_float_equal(vval(&kv, l, h, p, 0),
						   -(l * 1000 + h * 100 + want[p]),
						   t == KV_F32 ? 0 : 1.0);
			}
	for (int p = 0; p < 4; p++)
		assert_int_equal(kv.tokens[p], want[p] + 7);
	kv_cache_free(&kv);
}

static void test_layout_f32(void **state)
{
	(void)state;
	check_layout(KV_F32);
}

static void test_layout_f16(void **state)
{
	(void)state;
	check_layout(KV_F16);
}

static void test_bad_sizes(void **state)
{
	(void)state;
	struct kv_cache kv;
	assert_int_equal(kv_cache_init(&kv, KV_F16, 0, 16, 2, 4, 4), -1);
	assert_int_equal(kv_cache_init(&kv, KV_F16, 1 << 20, 1 << 24, 1 << 10, 1 << 10, 1 << 10),
			 -1);
	assert_non_null(strstr(error_message(), "too large"));
	assert_int_equal(kv_cache_bytes_for(KV_F32, 1 << 30, 1 << 30, 1 << 30, 1 << 30, 1), 0);
}

/* A cache whose layer 1 has a window of 4 in a ring of 8 cells. */
static void ring_init(struct kv_cache *kv)
{
	static const int window[3] = { 0, 4, 0 };
	struct kv_shape s = { 3, 32, 2, 4, 3, window, 8, 0 };
	assert_int_equal(kv_cache_init_shape(kv, KV_F32, &s), 0);
	assert_int_equal(kv->cells[0], 32);
	assert_int_equal(kv->cells[1], 8);
	assert_int_equal(kv->bytes, (uint64_t)2 * (32 + 8 + 32) * (4 + 3) * 4);
	assert_int_equal(kv->bytes, kv_cache_bytes_shape(KV_F32, &s));
}

static void test_ring_layout(void **state)
{
	(void)state;
	struct kv_cache kv;
	ring_init(&kv);
	fill(&kv, 20);
	/* the ring holds the last 8 positions, each at cell pos % 8 */
	for (int p = 12; p < 20; p++) {
		assert_int_equal(kv.pos[1][p % 8], p);
		assert_float_equal(kval(&kv, 1, 1, p, 0), 1000 + 100 + p, 0);
		assert_float_equal(vval(&kv, 1, 0, p, 2), -(1000 + p) - 1.0f, 0);
	}
	/* full layers are untouched by the ring */
	for (int p = 0; p < 20; p++)
		assert_float_equal(kval(&kv, 2, 1, p, 1), 2000 + 100 + p + 0.25f, 0);
	/* truncating to 17 keeps the window 14..16 it needs; to 10 it cannot
	 * (9 was overwritten by 17), so nothing is kept */
	assert_int_equal(kv_cache_truncate(&kv, 17), 17);
	for (int c = 0; c < 8; c++)
		assert_true(kv.pos[1][c] < 17);
	assert_int_equal(kv_cache_truncate(&kv, 10), 0);
	assert_int_equal(kv.n, 0);
	for (int c = 0; c < 8; c++)
		assert_int_equal(kv.pos[1][c], -1);
	kv_cache_free(&kv);
}

static void test_ring_shift(void **state)
{
	(void)state;
	struct kv_cache kv;
	ring_init(&kv);
	fill(&kv, 20); /* ring holds 12..19 */
	/* keep 2, discard 6: old 8..19 become 2..13; the ring held 12..19,
	 * now 6..13 at their new cells */
	assert_int_equal(kv_cache_shift(&kv, 2, 6), 0);
	assert_int_equal(kv.n, 14);
	int held = 0;
	for (int c = 0; c < 8; c++) {
		int p = kv.pos[1][c];
		if (p < 0)
			continue;
		held++;
		assert_int_equal(p % 8, c);
		assert_true(p >= 6 && p < 14);
		assert_float_equal(kval(&kv, 1, 1, p, 0), 1000 + 100 + p + 6, 0);
		assert_float_equal(vval(&kv, 1, 1, p, 0), -(1000 + 100 + p + 6), 0);
	}
	assert_int_equal(held, 8);
	/* the full layers moved as before */
	assert_float_equal(kval(&kv, 0, 0, 2, 0), 8, 0);
	assert_int_equal(kv.tokens[2], 8 + 7);
	kv_cache_free(&kv);
}

/*
 * A cache without data (a device holds it) keeps the same bookkeeping
 * (tags, tokens, n), and the shift's plan, carried out on a copy of a data
 * cache the way a device does it (every row of a ring read before any is
 * written; a full layer in batches of 3 rows by increasing position),
 * leaves exactly the data kv_cache_shift leaves.
 */
static void test_shift_plan(void **state)
{
	(void)state;
	static const int window[3] = { 0, 4, 0 };
	for (int shift = 0; shift < 3; shift++) {
		int keep = shift == 2 ? 0 : 2, nd = shift == 0 ? 6 : 3, n = shift == 1 ? 7 : 20;
		struct kv_cache kv, dev;
		struct kv_shape s = { 3, 32, 2, 4, 3, window, 8, 0 };
		ring_init(&kv);
		s.no_data = 1;
		assert_int_equal(kv_cache_init_shape(&dev, KV_F32, &s), 0);
		assert_null(dev.k);
		assert_null(dev.v);
		assert_int_equal(dev.bytes, kv.bytes);
		fill(&kv, n);
		for (int l = 0; l < 3; l++)
			kv_cache_tag(&dev, l, 0, n);
		memcpy(dev.tokens, kv.tokens, sizeof(int32_t) * (size_t)n);
		dev.n = n;
		/* the "device": a copy of kv's keys, moved by the plan */
		size_t kb = (size_t)2 * (32 + 8 + 32) * 4 * sizeof(float);
		float *k = malloc(kb), *row = malloc(kb);
		memcpy(k, kv.k, kb);
		int32_t from[32], to[32];
		for (int l = 0; l < 3; l++) {
			int m = kv_cache_shift_plan(&dev, l, keep, nd, from, to);
			int cells = dev.cells[l], step = dev.pos[l] ? (m ? m : 1) : 3;
			float *base = k + dev.off_k[l];
			for (int i = 0; i < m; i += step) {
				int c = m - i < step ? m - i : step;
				for (int j = 0; j < c; j++) /* gather */
					for (int h = 0; h < 2; h++)
						memcpy(row + ((size_t)j * 2 + h) * 4,
						       base + ((size_t)h * cells + from[i + j]) * 4,
						       4 * sizeof(float));
				for (int j = 0; j < c; j++) /* scatter */
					for (int h = 0; h < 2; h++)
						memcpy(base + ((size_t)h * cells + to[i + j]) * 4,
						       row + ((size_t)j * 2 + h) * 4,
						       4 * sizeof(float));
			}
		}
		assert_int_equal(kv_cache_shift(&kv, keep, nd), 0);
		assert_int_equal(kv_cache_shift(&dev, keep, nd), 0);
		assert_int_equal(dev.n, kv.n);
		assert_memory_equal(dev.tokens, kv.tokens, sizeof(int32_t) * (size_t)kv.n);
		assert_memory_equal(dev.pos[1], kv.pos[1], 8 * sizeof(int32_t));
		for (int l = 0; l < 3; l++)
			for (int h = 0; h < 2; h++)
				for (int p = 0; p < kv.n; p++) {
					if (dev.pos[l] && dev.pos[l][p % 8] != p)
						continue;
					size_t o = dev.off_k[l] + ((size_t)h * dev.cells[l] +
								   kv_cache_cell(&dev, l, p)) *
									  4;
					assert_memory_equal(k + o, kv_cache_k(&kv, l, h, p),
							    4 * sizeof(float));
				}
		free(k);
		free(row);
		kv_cache_free(&kv);
		kv_cache_free(&dev);
	}
}

/*
 * Layer 0's keys depend only on the token and its position, so after a
 * shift they must equal a fresh run of the remaining tokens at their new
 * positions: that checks the move and the re-rotation together.
 */
static void test_model_shift(void **state)
{
	(void)state;
	REQUIRE_REF();
	const char *p = test_ref_path("models/stories260K.gguf");
	struct model_params mp;
	model_params_default(&mp);
	mp.kv_type = KV_F32;
	mp.n_threads = 1;
	mp.n_ctx = 64;
	mp.prefault = 0;
	struct model *a = model_load(p, &mp), *b = model_load(p, &mp);
	assert_non_null(a);
	assert_non_null(b);
	int32_t toks[40], kept[40];
	for (int i = 0; i < 40; i++)
		toks[i] = (int32_t)(1 + (i * 53) % 500);
	assert_int_equal(model_forward(a, toks, 40, 0, NULL, 0), 0);
	assert_int_equal(model_kv_shift(a, 4, 10), 0);
	assert_int_equal(model_n_past(a), 30);
	int n = 0;
	for (int i = 0; i < 40; i++)
		if (i < 4 || i >= 14)
			kept[n++] = toks[i];
	assert_int_equal(model_forward(b, kept, n, 0, NULL, 0), 0);
	assert_memory_equal(model_kv_tokens(a), kept, sizeof(int32_t) * (size_t)n);
	const struct kv_cache *ka = model_kv(a), *kb = model_kv(b);
	double worst = 0;
	for (int h = 0; h < ka->n_head_kv; h++)
		for (int pos = 0; pos < n; pos++)
			for (int i = 0; i < ka->head_dim_k; i++) {
				double d = fabs(kval(ka, 0, h, pos, i) - kval(kb, 0, h, pos, i));
				worst = d > worst ? d : worst;
			}
	assert_true(worst < 1e-4);
	/* and generation continues from there */
	float *logits = malloc(sizeof(float) * (size_t)model_info(a)->n_vocab);
	assert_int_equal(model_forward(a, toks, 1, 30, logits, 0), 0);
	assert_int_equal(model_n_past(a), 31);
	free(logits);
	model_free(a);
	model_free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_layout_f32),  cmocka_unit_test(test_layout_f16),
		cmocka_unit_test(test_bad_sizes),   cmocka_unit_test(test_ring_layout),
		cmocka_unit_test(test_ring_shift),  cmocka_unit_test(test_shift_plan),
		cmocka_unit_test(test_model_shift),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
