/* quant against llama.cpp's files: dequantized tensors and matrix products of rand-llama-256-<TYPE>.gguf vs the F32 file. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "quant.h"
#include "report.h"
#include "testutil.h"

/*
 * Relative RMS error of a dequantized tensor against the F32 original, per
 * tensor type, as llama.cpp's quantizer leaves it on these gaussian weights
 * (measured: F16 2.1e-4, BF16 1.7e-3, Q8_0 5.4e-3, Q6_K 0.018, Q5_1 0.038,
 * Q5_0 0.043, Q4_K 0.072, IQ4_NL 0.076, IQ4_XS 0.077, Q4_1 0.078, Q4_0 0.086,
 * Q3_K 0.15, Q2_K 0.30).
 * The band is tight on both sides: a wrong scale, nibble order or bit plane
 * gives errors near 1 or above; a too-small error means the type was not
 * what we decoded.
 */
static const struct {
	int type;
	double lo, hi;
} bands[] = {
	{ QT_F32, 0, 1e-7 },       { QT_F16, 1e-4, 4e-4 },     { QT_BF16, 8e-4, 3e-3 },
	{ QT_Q8_0, 2.5e-3, 8e-3 }, { QT_Q6_K, 9e-3, 0.025 },   { QT_Q5_1, 0.02, 0.05 },
	{ QT_Q5_0, 0.02, 0.06 },   { QT_Q4_K, 0.04, 0.095 },   { QT_Q4_1, 0.04, 0.10 },
	{ QT_Q4_0, 0.045, 0.11 },  { QT_Q3_K, 0.08, 0.20 },    { QT_Q2_K, 0.15, 0.40 },
	{ QT_Q5_K, 0.015, 0.05 },  { QT_IQ4_NL, 0.05, 0.095 }, { QT_IQ4_XS, 0.05, 0.095 },
};

static const char *files[] = { "F16",  "BF16", "Q8_0", "Q4_0",   "Q4_1",   "Q5_0",
			       "Q5_1", "Q2_K", "Q6_K", "Q4_K_M", "IQ4_NL", "IQ4_XS" };

static int band_of(int type, double *lo, double *hi)
{
	for (size_t i = 0; i < sizeof(bands) / sizeof(bands[0]); i++)
		if (bands[i].type == type) {
			*lo = bands[i].lo;
			*hi = bands[i].hi;
			return 0;
		}
	return -1;
}

static struct gguf *open_model(const char *name)
{
	char rel[128];
	snprintf(rel, sizeof(rel), "models/rand-llama-256-%s.gguf", name);
	const char *path = test_ref_path(rel);
	struct gguf *g = gguf_open(path);
	if (!g)
		fail_msg("cannot open '%s': %s", path, error_message());
	return g;
}

static float *dequant_tensor(const struct gguf_tensor *t, int64_t *nel)
{
	int64_t n = t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
	float *y = malloc((size_t)n * sizeof(float));
	assert_non_null(y);
	quant_dequantize_row(t->type, t->data, y, n);
	*nel = n;
	return y;
}

static void test_dequantize_vs_f32(void **state)
{
	(void)state;
	REQUIRE_REF();
	struct gguf *ref = open_model("F32");
	for (size_t f = 0; f < sizeof(files) / sizeof(files[0]); f++) {
		struct gguf *g = open_model(files[f]);
		int seen_quant = 0;
		assert_int_equal(gguf_n_tensors(g), gguf_n_tensors(ref));
		for (int64_t i = 0; i < gguf_n_tensors(g); i++) {
			const struct gguf_tensor *t = gguf_tensor_at(g, i);
			const struct gguf_tensor *r = gguf_find_tensor(ref, t->name);
			const struct quant_traits *tr = quant_traits(t->type);
			double lo = 0, hi = 0, e = 0, s = 0;
			int64_t n, nr;
			assert_non_null(r);
			assert_non_null(tr);
			assert_true(tr->supported);
			if (band_of(t->type, &lo, &hi) < 0)
				fail_msg("%s: no error band for %s", files[f],
					 quant_type_name(t->type));
			float *x = dequant_tensor(t, &n), *y = dequant_tensor(r, &nr);
			assert_int_equal(n, nr);
			for (int64_t k = 0; k < n; k++) {
				e += (double)(x[k] - y[k]) * (x[k] - y[k]);
				s += (double)y[k] * y[k];
			}
			e = sqrt(e / s);
			if (e < lo || e > hi)
				fail_msg(
					"%s: tensor '%s' (%s): relative rms error %.3g outside [%g, %g]",
					files[f], t->name, quant_type_name(t->type), e, lo, hi);
			seen_quant |= t->type != QT_F32;
			free(x);
			free(y);
		}
		assert_true(seen_quant);
		gguf_close(g);
	}
	gguf_close(ref);
}

/*
 * gemv and gemm on llama.cpp's bit patterns, at every ISA: each output must
 * equal the double-precision dot of the dequantized row and activation
 * (kernel correctness), and the whole product must sit near the F32 model's
 * product (what the logits see).
 */
/* Q4_1 / Q5_1 dots use the half-rounded block sum s of Q8_1 for the min
 * term (as ggml does); this is what that adds to the dequantized dot. */
static double q8_1_correction(const uint8_t *w, size_t bsize, const struct block_q8_1 *a,
			      int64_t nb)
{
	double c = 0;
	for (int64_t b = 0; b < nb; b++) {
		quant_half m;
		int sum = 0;
		memcpy(&m, w + b * bsize + 2, 2); /* d, then m */
		for (int j = 0; j < 32; j++)
			sum += a[b].qs[j];
		c += (double)quant_f16_to_f32(m) *
		     ((double)quant_f16_to_f32(a[b].s) - (double)quant_f16_to_f32(a[b].d) * sum);
	}
	return c;
}

static void check_products(const struct gguf_tensor *t, const struct gguf_tensor *r,
			   const char *file)
{
	const struct quant_traits *tr = quant_traits(t->type);
	int64_t n = t->ne[0];
	int rows = (int)(t->ne[1] * t->ne[2] * t->ne[3]);
	enum { NTOK = 3 };
	size_t rb, ab;
	int64_t nel;
	assert_int_equal(quant_row_bytes(t->type, n, &rb), 0);
	assert_int_equal(quant_row_bytes(tr->dot_type, n, &ab), 0);
	float *x = malloc(sizeof(float) * n * NTOK), *ax = malloc(sizeof(float) * n * NTOK);
	uint8_t *act = malloc(ab * NTOK);
	float *out = malloc(sizeof(float) * rows * NTOK), *gv = malloc(sizeof(float) * rows);
	float *wf = dequant_tensor(t, &nel), *wr = dequant_tensor(r, &nel);
	for (int k = 0; k < NTOK; k++) {
		for (int64_t i = 0; i < n; i++)
			x[k * n + i] =
				sinf(0.37f * (float)i + k) + 0.1f * cosf(1.3f * (float)i * (k + 1));
		assert_int_equal(quant_quantize_row(tr->dot_type, x + k * n, act + k * ab, n), 0);
		quant_dequantize_row(tr->dot_type, act + k * ab, ax + k * n, n);
	}
	for (int isa = QUANT_ISA_SCALAR; isa < QUANT_ISA_COUNT; isa++) {
		if (!quant_isa_supported((enum quant_isa)isa))
			continue;
		assert_int_equal(quant_isa_set((enum quant_isa)isa), 0);
		quant_gemm(t->type, n, t->data, rb, rows, act, ab, NTOK, out, (size_t)rows);
		double e = 0, s = 0;
		for (int k = 0; k < NTOK; k++) {
			quant_gemv(t->type, n, t->data, rb, rows, act + k * ab, gv);
			for (int row = 0; row < rows; row++) {
				double d = 0, mag = 0, f = 0;
				for (int64_t i = 0; i < n; i++) {
					d += (double)wf[row * n + i] * ax[k * n + i];
					mag += fabs((double)wf[row * n + i] * ax[k * n + i]);
					f += (double)wr[row * n + i] * x[k * n + i];
				}
				if (tr->dot_type == QT_Q8_1)
					d += q8_1_correction(
						(const uint8_t *)t->data + (size_t)row * rb,
						tr->block_bytes,
						(const struct block_q8_1 *)(act + k * ab), n / 32);
				double tol = 1e-5 * mag + 1e-6;
				if (fabs(out[k * rows + row] - d) > tol || fabs(gv[row] - d) > tol)
					fail_msg(
						"%s '%s' (%s) isa %s row %d tok %d: gemm %.7g gemv %.7g, "
						"dequantized dot %.7g",
						file, t->name, quant_type_name(t->type),
						quant_isa_name((enum quant_isa)isa), row, k,
						(double)out[k * rows + row], (double)gv[row], d);
				e += (out[k * rows + row] - f) * (out[k * rows + row] - f);
				s += f * f;
			}
		}
		/* vs F32 weights and activations: the weight error plus activation rounding */
		double lo = 0, hi = 0;
		assert_int_equal(band_of(t->type, &lo, &hi), 0);
		e = sqrt(e / s);
		if (e > hi + 0.01)
			fail_msg("%s '%s' (%s) isa %s: product error %.3g vs F32 above %.3g", file,
				 t->name, quant_type_name(t->type),
				 quant_isa_name((enum quant_isa)isa), e, hi + 0.01);
	}
	quant_isa_set(quant_isa_best());
	free(x);
	free(ax);
	free(act);
	free(out);
	free(gv);
	free(wf);
	free(wr);
}

static void test_products_vs_f32(void **state)
{
	(void)state;
	REQUIRE_REF();
	struct gguf *ref = open_model("F32");
	for (size_t f = 0; f < sizeof(files) / sizeof(files[0]); f++) {
		struct gguf *g = open_model(files[f]);
		for (int64_t i = 0; i < gguf_n_tensors(g); i++) {
			const struct gguf_tensor *t = gguf_tensor_at(g, i);
			if (t->n_dims < 2 || t->type == QT_F32)
				continue;
			check_products(t, gguf_find_tensor(ref, t->name), files[f]);
		}
		gguf_close(g);
	}
	gguf_close(ref);
}

/* The reader and quant agree on every type id's name and block geometry.
 * quant also names the repacked layouts ggml retired (Q4_0_4_4 ...) so that
 * messages can say what a file holds; the reader treats them as unknown. */
static void test_type_table_matches_gguf(void **state)
{
	(void)state;
	for (int id = 0; id < QT_COUNT + 8; id++) {
		const struct quant_traits *t = quant_traits(id);
		int be;
		size_t bb;
		int known = gguf_type_block(id, &be, &bb) == 0;
		int retired = (id >= 31 && id <= 33) || (id >= 36 && id <= 38);
		if (!known) {
			if (t && !retired)
				fail_msg("type %d (%s): quant knows it, gguf does not", id,
					 t->name);
			if (t)
				assert_false(t->supported);
			continue;
		}
		if (!t)
			fail_msg("type %d: gguf knows it, quant does not", id);
		assert_int_equal(t->block_elems, be);
		assert_int_equal(t->block_bytes, bb);
		assert_string_equal(t->name, gguf_type_name(id));
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_type_table_matches_gguf),
		cmocka_unit_test(test_dequantize_vs_f32),
		cmocka_unit_test(test_products_vs_f32),
	};
	return cmocka_run_group_tests_name("quant_ref", tests, NULL, NULL);
}
