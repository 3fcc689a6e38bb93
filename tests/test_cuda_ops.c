/* CUDA kernels: every operation of gpu/cuda/cuda_ops.h against a plain C reference. */

/*
 * Built by `make test` against the CUDA emulation: then every operation
 * also runs under two schedules (blocks and threads in plain and in
 * shuffled order) and must give the same bits both times.  Built with
 * -DPALAVER_CUDA_DEVICE=1 (`make CUDA=1`: build/tests/gpu_test_cuda_ops)
 * it runs the same checks on a real GPU.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_ops.h"
#include "quant.h"
#if !defined(PALAVER_CUDA_DEVICE)
#include "emu/emu_control.h"
#endif

static struct cuda_ctx *ctx;

#define OK(call)                                                                                   \
	do {                                                                                       \
		if ((call) < 0) {                                                                  \
			print_error("%s: %s\n", #call, cuda_error(ctx));                           \
			fail();                                                                    \
		}                                                                                  \
	} while (0)

/* ---- helpers ---------------------------------------------------------------- */

static uint64_t rng_state = 0x2545f4914f6cdd1dull;

static uint32_t rnd_u32(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return (uint32_t)((rng_state * 0x2545f4914f6cdd1dull) >> 32);
}

static float rnd_uniform(void)
{
	return (float)(rnd_u32() >> 8) / (float)(1u << 24);
}

static float rnd_normal(void)
{
	float u = rnd_uniform() + 1e-7f, v = rnd_uniform();
	return sqrtf(-2 * logf(u)) * cosf(6.2831853f * v);
}

static float *normal_array(size_t n, float scale)
{
	float *x = malloc(n * sizeof(float));
	assert_non_null(x);
	for (size_t i = 0; i < n; i++)
		x[i] = rnd_normal() * scale;
	return x;
}

static void *dev_alloc(size_t bytes)
{
	void *p = cuda_alloc(ctx, bytes, "test buffer");
	if (!p) {
		print_error("%s\n", cuda_error(ctx));
		fail();
	}
	OK(cuda_memset(ctx, p, 0, bytes));
	return p;
}

static void *dev_copy(const void *host, size_t bytes)
{
	void *p = dev_alloc(bytes);
	OK(cuda_upload(ctx, p, host, bytes));
	return p;
}

static void dev_get(void *host, const void *dev, size_t bytes)
{
	OK(cuda_download(ctx, host, dev, bytes));
}

/* Runs op(arg), which leaves its result in the device buffer out_dev, and
 * copies the result to host_out.  Emulated: twice, in plain order and in a
 * shuffled one, and the two results must be identical (a kernel whose
 * result depends on the order of threads or blocks fails here). */
typedef void (*op_fn)(void *arg);
static void run_op(op_fn op, void *arg, const void *out_dev, void *host_out, size_t bytes)
{
#if defined(PALAVER_CUDA_DEVICE)
	op(arg);
	dev_get(host_out, out_dev, bytes);
#else
	static const unsigned seeds[] = { 0, 3 };
	unsigned long launches = pv_emu_launch_count();
	void *again = malloc(bytes);
	assert_non_null(again);
	for (size_t s = 0; s < 2; s++) {
		pv_emu_set_seed(seeds[s]);
		op(arg);
		OK(cuda_sync(ctx));
		dev_get(s ? again : host_out, out_dev, bytes);
	}
	pv_emu_set_seed(0);
	assert_true(pv_emu_launch_count() > launches);
	assert_memory_equal(host_out, again, bytes);
	free(again);
#endif
}

/* |got - want| <= tol, with a message naming the element */
static void near(const char *what, size_t i, double got, double want, double tol)
{
	if (!(fabs(got - want) <= tol)) {
		print_error("%s[%zu]: got %.9g, want %.9g (tolerance %.3g)\n", what, i, got, want,
			    tol);
		fail();
	}
}

/* ---- matrix products ----------------------------------------------------------- */

static const int weight_types[] = { QT_F32,  QT_F16,  QT_BF16, QT_Q4_0, QT_Q4_1, QT_Q5_0, QT_Q5_1,
				    QT_Q8_0, QT_Q2_K, QT_Q3_K, QT_Q4_K, QT_Q5_K, QT_Q6_K };

static void put_half(uint8_t *p, float f)
{
	quant_half h = quant_f32_to_f16(f);
	memcpy(p, &h, 2);
}

/* Random weights: the float types from normal values; the block types as
 * random bytes (every bit pattern of quants and packed scales) with the
 * F16 super-scales set to small values. */
static void make_weights(int type, int nrows, int64_t n, size_t row_bytes, uint8_t *w)
{
	float *row = normal_array((size_t)n, 1.0f);
	const struct quant_traits *t = quant_traits(type);
	memset(w, 0, (size_t)nrows * row_bytes);
	for (int r = 0; r < nrows; r++) {
		uint8_t *dst = w + (size_t)r * row_bytes;
		if (type == QT_F32 || type == QT_F16 || type == QT_BF16) {
			for (int64_t i = 0; i < n; i++)
				row[i] = rnd_normal();
			assert_int_equal(quant_quantize_row(type, row, dst, n), 0);
			continue;
		}
		int64_t nb = n / t->block_elems;
		for (size_t i = 0; i < (size_t)nb * t->block_bytes; i++)
			dst[i] = (uint8_t)rnd_u32();
		for (int64_t b = 0; b < nb; b++) {
			uint8_t *blk = dst + (size_t)b * t->block_bytes;
			float d = 0.002f + 0.02f * rnd_uniform();
			switch (type) {
			case QT_Q4_0:
			case QT_Q5_0:
			case QT_Q8_0: put_half(blk, d); break;
			case QT_Q4_1:
			case QT_Q5_1:
			case QT_Q4_K:
			case QT_Q5_K:
				put_half(blk, d);
				put_half(blk + 2, d * rnd_uniform());
				break;
			case QT_Q2_K:
				put_half(blk + 80, d);
				put_half(blk + 82, d * rnd_uniform());
				break;
			case QT_Q3_K: put_half(blk + 108, d); break;
			case QT_Q6_K: put_half(blk + 208, d); break;
			}
		}
	}
	free(row);
}

static float round_to(int tc_type, float f)
{
	if (tc_type == QT_BF16)
		return quant_bf16_to_f32(quant_f32_to_bf16(f));
	if (tc_type == QT_F16)
		return quant_f16_to_f32(quant_f32_to_f16(f));
	return f;
}

struct mm_case {
	int type, nrows, ntok, tiled;
	int64_t n;
	size_t row_bytes, x_stride, y_stride;
	void *w;
	float *x, *y;
};

static void mm_op(void *arg)
{
	struct mm_case *m = arg;
	if (m->tiled)
		OK(cuda_matmul_tiled(ctx, m->type, m->w, m->row_bytes, m->nrows, m->n, m->x,
				     m->x_stride, m->ntok, m->y, m->y_stride));
	else
		OK(cuda_matvec(ctx, m->type, m->w, m->row_bytes, m->nrows, m->n, m->x, m->x_stride,
			       m->ntok, m->y, m->y_stride));
}

/* y = W x for one type and shape, against dequantize-then-double-dot; the
 * tiled path's reference rounds weights and activations as the tensor
 * cores take them (F16, BF16 for BF16 weights; F32 weights stay F32) so
 * that only the order of the sums differs. */
static void check_matmul(int type, int nrows, int64_t n, int ntok, int tiled)
{
	const struct quant_traits *t = quant_traits(type);
	struct mm_case m = { type, nrows, ntok, tiled, n, 0, (size_t)n + 8, (size_t)nrows + 4,
			     NULL, NULL,  NULL };
	int rounding = !tiled || type == QT_F32 ? QT_F32 : type == QT_BF16 ? QT_BF16 : QT_F16;
	m.row_bytes = (size_t)(n / t->block_elems) * t->block_bytes + 8; /* rows not packed */
	uint8_t *w = malloc((size_t)nrows * m.row_bytes);
	float *x = normal_array((size_t)ntok * m.x_stride, 1.0f);
	float *y = malloc((size_t)ntok * m.y_stride * sizeof(float));
	float *deq = malloc((size_t)n * sizeof(float));
	assert_non_null(w);
	assert_non_null(y);
	assert_non_null(deq);
	make_weights(type, nrows, n, m.row_bytes, w);
	m.w = dev_copy(w, (size_t)nrows * m.row_bytes);
	m.x = dev_copy(x, (size_t)ntok * m.x_stride * sizeof(float));
	m.y = dev_alloc((size_t)ntok * m.y_stride * sizeof(float));
	run_op(mm_op, &m, m.y, y, (size_t)ntok * m.y_stride * sizeof(float));

	char what[64];
	snprintf(what, sizeof(what), "%s %s", tiled ? "matmul" : "matvec", t->name);
	for (int r = 0; r < nrows; r++) {
		quant_dequantize_row(type, w + (size_t)r * m.row_bytes, deq, n);
		for (int tk = 0; tk < ntok; tk++) {
			double s = 0, mag = 0;
			for (int64_t i = 0; i < n; i++) {
				double p = (double)round_to(rounding, deq[i]) *
					   round_to(rounding, x[(size_t)tk * m.x_stride + i]);
				s += p;
				mag += fabs(p);
			}
			near(what, (size_t)tk * nrows + r, y[(size_t)tk * m.y_stride + r], s,
			     4e-5 * mag + 1e-6);
		}
	}
	cuda_free(ctx, m.w);
	cuda_free(ctx, m.x);
	cuda_free(ctx, m.y);
	free(w);
	free(x);
	free(y);
	free(deq);
}

static void test_matvec(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(weight_types) / sizeof(weight_types[0]); i++)
		check_matmul(weight_types[i], 100, 512, 3, 0);
	check_matmul(QT_F16, 5, 8, 1, 0); /* llama-2-tiny-random's rows of 8 */
	/* float rows that are no multiple of 8 (stories260K's 172): a tail */
	check_matmul(QT_F32, 7, 172, 2, 0);
	check_matmul(QT_F16, 9, 13, 1, 0);
	check_matmul(QT_BF16, 40, 300, 4, 0);
}

static void test_matmul_tiled(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(weight_types) / sizeof(weight_types[0]); i++)
		check_matmul(weight_types[i], 100, 512, 70, 1);
	check_matmul(QT_Q8_0, 64, 256, 64, 1); /* whole tiles */
}

static void test_matmul_errors(void **state)
{
	float dummy = 0;
	(void)state;
	assert_int_equal(cuda_type_supported(QT_Q4_K), 1);
	assert_int_equal(cuda_type_supported(QT_Q2_K), 1);
	assert_int_equal(cuda_type_supported(QT_Q8_K), 0); /* an activation format */
	assert_int_equal(cuda_type_supported(20), 0);      /* IQ4_NL */
	assert_int_equal(cuda_matvec(ctx, 20, &dummy, 18, 1, 32, &dummy, 32, 1, &dummy, 1), -1);
	assert_string_equal(cuda_error(ctx),
			    "matvec: weight type 20 is not supported by the CUDA kernels");
	assert_int_equal(cuda_matvec(ctx, QT_Q4_K, &dummy, 144, 1, 100, &dummy, 100, 1, &dummy, 1),
			 -1);
	assert_string_equal(cuda_error(ctx),
			    "matvec: rows of 100 elements are not whole blocks of 256");
	assert_int_equal(
		cuda_matmul_tiled(ctx, QT_F16, &dummy, 80, 1, 40, &dummy, 40, 8, &dummy, 1), -1);
	assert_string_equal(cuda_error(ctx),
			    "matmul: rows of 40 elements are not a multiple of 32");
}

/* ---- norms ------------------------------------------------------------------------- */

struct norm_case {
	int rows, n, with_add, with_w;
	float *x_host, *add_host;
	float *x, *add, *w, *out;
};

static void norm_op(void *arg)
{
	struct norm_case *c = arg;
	/* x is updated in place when adding: start from the same input each run */
	OK(cuda_upload(ctx, c->x, c->x_host, (size_t)c->rows * c->n * sizeof(float)));
	OK(cuda_rms_norm(ctx, c->out, c->x, c->with_add ? c->add : NULL, c->with_w ? c->w : NULL,
			 c->rows, c->n, 1e-5f));
}

static void check_rms_norm(int rows, int n, int with_add, int with_w)
{
	size_t total = (size_t)rows * n;
	float *x = normal_array(total, 2.0f), *add = normal_array(total, 1.0f);
	float *w = normal_array((size_t)n, 1.0f), *out = malloc(total * sizeof(float));
	float *xnew = malloc(total * sizeof(float));
	struct norm_case c = { rows,
			       n,
			       with_add,
			       with_w,
			       x,
			       add,
			       dev_alloc(total * 4),
			       dev_copy(add, total * 4),
			       dev_copy(w, (size_t)n * 4),
			       dev_alloc(total * 4) };
	run_op(norm_op, &c, c.out, out, total * sizeof(float));
	dev_get(xnew, c.x, total * sizeof(float));
	for (int r = 0; r < rows; r++) {
		double ss = 0;
		for (int i = 0; i < n; i++) {
			double v =
				x[(size_t)r * n + i] + (with_add ? add[(size_t)r * n + i] : 0.0f);
			ss += v * v;
			near("rms_norm residual", (size_t)r * n + i, xnew[(size_t)r * n + i],
			     (float)v, 0);
		}
		double scale = 1.0 / sqrt(ss / n + 1e-5);
		for (int i = 0; i < n; i++) {
			double v = xnew[(size_t)r * n + i] * scale * (with_w ? w[i] : 1.0f);
			near("rms_norm", (size_t)r * n + i, out[(size_t)r * n + i], v,
			     2e-6 * (fabs(v) + 1));
		}
	}
	cuda_free(ctx, c.x);
	cuda_free(ctx, c.add);
	cuda_free(ctx, c.w);
	cuda_free(ctx, c.out);
	free(x);
	free(add);
	free(w);
	free(out);
	free(xnew);
}

static void test_rms_norm(void **state)
{
	(void)state;
	check_rms_norm(3, 300, 0, 1);
	check_rms_norm(2, 1000, 1, 1);
	check_rms_norm(4, 64, 1, 0);
}

struct head_norm_case {
	int rows, n_head, hd;
	size_t stride;
	float *x_host, *x, *w;
};

static void head_norm_op(void *arg)
{
	struct head_norm_case *c = arg;
	OK(cuda_upload(ctx, c->x, c->x_host, (size_t)c->rows * c->stride * sizeof(float)));
	OK(cuda_head_norm(ctx, c->x, c->stride, c->rows, c->n_head, c->hd, c->w, 1e-6f));
}

static void test_head_norm(void **state)
{
	(void)state;
	const int shapes[][3] = { { 5, 4, 32 }, { 3, 2, 128 }, { 2, 3, 48 } };
	for (size_t s = 0; s < 3; s++) {
		int rows = shapes[s][0], nh = shapes[s][1], hd = shapes[s][2];
		size_t stride = (size_t)nh * hd + 16, total = (size_t)rows * stride;
		float *x = normal_array(total, 3.0f), *w = normal_array((size_t)hd, 1.0f);
		float *out = malloc(total * sizeof(float));
		struct head_norm_case c = {
			rows, nh, hd, stride, x, dev_alloc(total * 4), dev_copy(w, (size_t)hd * 4)
		};
		run_op(head_norm_op, &c, c.x, out, total * sizeof(float));
		for (int r = 0; r < rows; r++)
			for (int h = 0; h < nh; h++) {
				const float *v = x + (size_t)r * stride + (size_t)h * hd;
				double ss = 0;
				for (int i = 0; i < hd; i++)
					ss += (double)v[i] * v[i];
				double scale = 1.0 / sqrt(ss / hd + 1e-6);
				for (int i = 0; i < hd; i++) {
					size_t at = (size_t)r * stride + (size_t)h * hd + i;
					double want = v[i] * scale * w[i];
					near("head_norm", at, out[at], want,
					     2e-6 * (fabs(want) + 1));
				}
			}
		for (int r = 0; r < rows; r++) /* the gap after the heads is untouched */
			for (size_t i = (size_t)nh * hd; i < stride; i++)
				near("head_norm gap", i, out[(size_t)r * stride + i],
				     x[(size_t)r * stride + i], 0);
		cuda_free(ctx, c.x);
		cuda_free(ctx, c.w);
		free(x);
		free(w);
		free(out);
	}
}

/* ---- rope ---------------------------------------------------------------------------- */

struct rope_case {
	struct cuda_rope_params p;
	int ntok, n_head, hd, pos0, step;
	size_t stride;
	float *x_host, *x;
};

static void rope_op(void *arg)
{
	struct rope_case *c = arg;
	OK(cuda_upload(ctx, c->x, c->x_host, (size_t)c->ntok * c->stride * sizeof(float)));
	OK(cuda_rope(ctx, &c->p, c->x, c->stride, c->ntok, c->n_head, c->hd, c->pos0, c->step));
}

static void check_rope(int neox, int n_rot, int hd, int with_ff, float freq_scale, float mscale,
		       int pos0, int step)
{
	int ntok = 7, nh = 3;
	size_t stride = (size_t)nh * hd + 4, total = (size_t)ntok * stride;
	float *x = normal_array(total, 1.0f), *out = malloc(total * sizeof(float));
	float ff[128];
	for (int i = 0; i < n_rot / 2; i++)
		ff[i] = 1.0f + 7.0f * rnd_uniform();
	struct rope_case c;
	memset(&c, 0, sizeof(c));
	c.p = (struct cuda_rope_params){ n_rot, neox, 10000.0f, freq_scale, mscale, NULL };
	c.ntok = ntok;
	c.n_head = nh;
	c.hd = hd;
	c.pos0 = pos0;
	c.step = step;
	c.stride = stride;
	c.x_host = x;
	c.x = dev_alloc(total * 4);
	float *dff = with_ff ? dev_copy(ff, sizeof(ff)) : NULL;
	c.p.freq_factors = dff;
	run_op(rope_op, &c, c.x, out, total * sizeof(float));
	for (int t = 0; t < ntok; t++)
		for (int h = 0; h < nh; h++) {
			const float *v = x + (size_t)t * stride + (size_t)h * hd;
			const float *o = out + (size_t)t * stride + (size_t)h * hd;
			double pos = pos0 + t * step;
			for (int i = 0; i < n_rot / 2; i++) {
				double th = pos * pow(10000.0, -2.0 * i / n_rot);
				if (with_ff)
					th /= ff[i];
				th *= freq_scale;
				int ia = neox ? i : 2 * i, ib = neox ? i + n_rot / 2 : 2 * i + 1;
				double ms = mscale > 0 ? mscale : 1, cs = cos(th) * ms,
				       sn = sin(th) * ms;
				near("rope", (size_t)(o - out) + ia, o[ia], v[ia] * cs - v[ib] * sn,
				     3e-5);
				near("rope", (size_t)(o - out) + ib, o[ib], v[ia] * sn + v[ib] * cs,
				     3e-5);
			}
			for (int i = n_rot; i < hd; i++) /* beyond n_rot: untouched */
				near("rope tail", (size_t)(o - out) + i, o[i], v[i], 0);
		}
	cuda_free(ctx, c.x);
	cuda_free(ctx, dff);
	free(x);
	free(out);
}

static void test_rope(void **state)
{
	(void)state;
	check_rope(0, 64, 64, 0, 1.0f, 0.0f, 3, 1); /* llama */
	check_rope(1, 64, 64, 0, 1.0f, 1.0f, 0, 1); /* NEOX (qwen2, phi3) */
	/* partial rotation, llama 3.1 factors, linear scaling */
	check_rope(1, 32, 80, 1, 0.25f, 0.0f, 20, 1);
	check_rope(1, 64, 96, 1, 1.0f, 1.19f, 9, 1); /* LongRoPE: factors and mscale */
	check_rope(0, 16, 16, 0, 1.0f, 0.0f, -5, 0); /* the KV shift: every row by -5 */
}

/* ---- KV cache and attention ---------------------------------------------------------------- */

struct attn_case {
	struct cuda_attn a;
	int ntok, pos0; /* prefill: tokens at pos0..; decode: one token at pos0 */
	float *k_host;  /* n_head_kv x ctx x hd_k, as stored (F16-rounded for F16) */
	float *v_host;
	float *q_host; /* ntok x n_head x hd_k */
	float *sinks_host;
	void *k, *v;
	float *q, *out, *sinks;
};

static float stored(int f16, float f)
{
	return f16 ? quant_f16_to_f32(quant_f32_to_f16(f)) : f;
}

/* Fills the cache through cuda_kv_write (all ctx_len cells: rows beyond
 * what attention may read are written too, so that reading them would
 * change results rather than go unseen), and checks what it stored. */
static void fill_cache(struct attn_case *c)
{
	const struct cuda_attn *a = &c->a;
	int n = a->ctx_len, hk = a->head_dim_k, hv = a->head_dim_v, nkv = a->n_head_kv;
	size_t esz = a->kv_f16 ? 2 : 4;
	float *ksrc = normal_array((size_t)n * nkv * hk, 1.0f);
	float *vsrc = normal_array((size_t)n * nkv * hv, 1.0f);
	float *kdev = dev_copy(ksrc, (size_t)n * nkv * hk * 4);
	float *vdev = dev_copy(vsrc, (size_t)n * nkv * hv * 4);
	c->k = dev_alloc((size_t)nkv * n * hk * esz);
	c->v = dev_alloc((size_t)nkv * n * hv * esz);
	/* in two pieces, to exercise pos0 */
	OK(cuda_kv_write(ctx, c->k, a->kv_f16, n, 0, nkv, hk, kdev, (size_t)nkv * hk, 3, 0));
	OK(cuda_kv_write(ctx, c->k, a->kv_f16, n, 0, nkv, hk, kdev + (size_t)3 * nkv * hk,
			 (size_t)nkv * hk, n - 3, 3));
	OK(cuda_kv_write(ctx, c->v, a->kv_f16, n, 0, nkv, hv, vdev, (size_t)nkv * hv, n, 0));
	c->k_host = malloc((size_t)nkv * n * hk * sizeof(float));
	c->v_host = malloc((size_t)nkv * n * hv * sizeof(float));
	for (int h = 0; h < nkv; h++)
		for (int p = 0; p < n; p++) {
			for (int d = 0; d < hk; d++)
				c->k_host[((size_t)h * n + p) * hk + d] =
					stored(a->kv_f16, ksrc[((size_t)p * nkv + h) * hk + d]);
			for (int d = 0; d < hv; d++)
				c->v_host[((size_t)h * n + p) * hv + d] =
					stored(a->kv_f16, vsrc[((size_t)p * nkv + h) * hv + d]);
		}
	/* what kv_write stored, bit for bit */
	void *kc = malloc((size_t)nkv * n * hk * esz);
	dev_get(kc, c->k, (size_t)nkv * n * hk * esz);
	for (size_t i = 0; i < (size_t)nkv * n * hk; i++) {
		float got = a->kv_f16 ? quant_f16_to_f32(((quant_half *)kc)[i]) : ((float *)kc)[i];
		near("kv_write", i, got, c->k_host[i], 0);
	}
	free(kc);
	cuda_free(ctx, kdev);
	cuda_free(ctx, vdev);
	free(ksrc);
	free(vsrc);
}

/* double-precision attention of one query row */
static void ref_attn(const struct attn_case *c, const float *qv, int h, int p, double *out)
{
	const struct cuda_attn *a = &c->a;
	int hk = h / (a->n_head / a->n_head_kv), n = a->ctx_len;
	int lo = a->window > 0 && p - a->window + 1 > 0 ? p - a->window + 1 : 0;
	double *l = malloc((size_t)(p + 1) * sizeof(double)), m = -INFINITY, sum = 0;
	for (int j = lo; j <= p; j++) {
		double dot = 0;
		for (int d = 0; d < a->head_dim_k; d++)
			dot += (double)qv[d] * c->k_host[((size_t)hk * n + j) * a->head_dim_k + d];
		dot *= a->scale;
		if (a->softcap > 0)
			dot = a->softcap * tanh(dot / a->softcap);
		l[j] = dot;
		m = dot > m ? dot : m;
	}
	if (c->sinks_host && c->sinks_host[h] > m)
		m = c->sinks_host[h];
	for (int d = 0; d < a->head_dim_v; d++)
		out[d] = 0;
	for (int j = lo; j <= p; j++) {
		double e = exp(l[j] - m);
		sum += e;
		for (int d = 0; d < a->head_dim_v; d++)
			out[d] += e * c->v_host[((size_t)hk * n + j) * a->head_dim_v + d];
	}
	if (c->sinks_host)
		sum += exp(c->sinks_host[h] - m);
	for (int d = 0; d < a->head_dim_v; d++)
		out[d] /= sum;
	free(l);
}

static void decode_op(void *arg)
{
	struct attn_case *c = arg;
	OK(cuda_attn_decode(ctx, &c->a, c->out, c->q, c->k, c->v, c->pos0));
}

static void prefill_op(void *arg)
{
	struct attn_case *c = arg;
	const struct cuda_attn *a = &c->a;
	OK(cuda_attn_prefill(ctx, a, c->out, (size_t)a->n_head * a->head_dim_v + 8, c->q,
			     (size_t)a->n_head * a->head_dim_k, c->k, c->v, c->ntok, c->pos0));
}

static void check_attn(struct cuda_attn a, int prefill, int ntok, int pos0, int with_sinks)
{
	struct attn_case c = { 0 };
	if (!prefill)
		ntok = 1;
	c.a = a;
	c.ntok = ntok;
	c.pos0 = pos0;
	fill_cache(&c);
	size_t qn = (size_t)ntok * a.n_head * a.head_dim_k;
	size_t os = prefill ? (size_t)a.n_head * a.head_dim_v + 8 : (size_t)a.n_head * a.head_dim_v;
	c.q_host = normal_array(qn, 1.0f);
	c.q = dev_copy(c.q_host, qn * 4);
	if (with_sinks) {
		c.sinks_host = normal_array((size_t)a.n_head, 2.0f);
		c.sinks = dev_copy(c.sinks_host, (size_t)a.n_head * 4);
		c.a.sinks = c.sinks;
	}
	c.out = dev_alloc((size_t)ntok * os * 4);
	float *out = malloc((size_t)ntok * os * 4);
	double *want = malloc((size_t)a.head_dim_v * sizeof(double));
	run_op(prefill ? prefill_op : decode_op, &c, c.out, out, (size_t)ntok * os * 4);
	for (int t = 0; t < ntok; t++)
		for (int h = 0; h < a.n_head; h++) {
			ref_attn(&c, c.q_host + ((size_t)t * a.n_head + h) * a.head_dim_k, h,
				 pos0 + t, want);
			for (int d = 0; d < a.head_dim_v; d++)
				near(prefill ? "attn_prefill" : "attn_decode",
				     (size_t)t * os + (size_t)h * a.head_dim_v + d,
				     out[(size_t)t * os + (size_t)h * a.head_dim_v + d], want[d],
				     2e-5);
		}
	if (prefill) {
		/* the last row again through the decode kernel: the same within rounding */
		float *dec = dev_alloc((size_t)a.n_head * a.head_dim_v * 4);
		float *got = malloc((size_t)a.n_head * a.head_dim_v * 4);
		OK(cuda_attn_decode(ctx, &c.a, dec,
				    c.q + (size_t)(ntok - 1) * a.n_head * a.head_dim_k, c.k, c.v,
				    pos0 + ntok - 1));
		dev_get(got, dec, (size_t)a.n_head * a.head_dim_v * 4);
		for (int i = 0; i < a.n_head * a.head_dim_v; i++)
			near("decode vs prefill", (size_t)i, got[i],
			     out[(size_t)(ntok - 1) * os + (size_t)i], 1e-5);
		cuda_free(ctx, dec);
		free(got);
	}
	cuda_free(ctx, c.k);
	cuda_free(ctx, c.v);
	cuda_free(ctx, c.q);
	cuda_free(ctx, c.out);
	cuda_free(ctx, c.sinks);
	free(c.k_host);
	free(c.v_host);
	free(c.q_host);
	free(c.sinks_host);
	free(out);
	free(want);
}

static struct cuda_attn attn(int nh, int nkv, int hk, int hv, int ctx_len, int f16)
{
	struct cuda_attn a = { nh,   nkv, hk,   hv, ctx_len, f16, 1.0f / sqrtf((float)hk),
			       0.0f, 0,   NULL, 0 };
	return a;
}

static void test_attn_decode(void **state)
{
	struct cuda_attn a;
	(void)state;
	check_attn(attn(8, 2, 64, 64, 512, 1), 0, 1, 300, 0); /* GQA, three splits */
	check_attn(attn(4, 4, 32, 32, 16, 0), 0, 1, 0, 0);    /* the first token */
	a = attn(4, 2, 32, 32, 64, 0);
	a.softcap = 50.0f;
	a.scale = 4.0f; /* large logits, so that the cap matters */
	check_attn(a, 0, 1, 40, 0);
	a = attn(4, 1, 32, 32, 300, 1);
	a.window = 6;
	check_attn(a, 0, 1, 260, 1); /* sliding window past a split boundary, sinks */
	check_attn(attn(16, 1, 128, 128, 160, 1), 0, 1, 150, 0); /* 16 heads per KV head */
	check_attn(attn(4, 2, 256, 256, 140, 1), 0, 1, 129, 0);  /* large heads */
	check_attn(attn(4, 2, 32, 64, 40, 0), 0, 1, 33, 1);      /* K and V sizes differ */
}

static void test_attn_prefill(void **state)
{
	struct cuda_attn a;
	(void)state;
	check_attn(attn(8, 2, 64, 64, 64, 1), 1, 37, 5, 0); /* after 5 cached positions */
	a = attn(4, 2, 32, 32, 40, 0);
	a.window = 6;
	a.softcap = 30.0f;
	a.scale = 3.0f;
	check_attn(a, 1, 20, 0, 1);                           /* gemma2 / gpt-oss options */
	check_attn(attn(4, 2, 256, 256, 24, 1), 1, 9, 3, 0);  /* tiles for large heads */
	check_attn(attn(6, 3, 128, 128, 80, 0), 1, 70, 0, 0); /* F32 cache: smaller tiles */
	check_attn(attn(4, 4, 32, 64, 50, 1), 1, 17, 30, 1);  /* K and V sizes differ */
}

/*
 * A sliding-window layer's ring: P positions written through kv_write in
 * chunks of ntok (wrapping around R cells), then attention for the last
 * chunk (prefill) and for the last position (decode) gives the same bits
 * as over a full cache of P cells: the same keys in the same order.
 */
static void check_ring(int nh, int nkv, int hd, int window, int R, int P, int ntok, int f16)
{
	size_t esz = f16 ? 2 : 4, row = (size_t)nkv * hd;
	float *src = normal_array((size_t)P * row, 1.0f),
	      *q = normal_array((size_t)ntok * nh * hd, 1.0f);
	float *dsrc = dev_copy(src, (size_t)P * row * 4),
	      *dq = dev_copy(q, (size_t)ntok * nh * hd * 4);
	void *full = dev_alloc(row * P * esz), *ring = dev_alloc(row * R * esz);
	OK(cuda_kv_write(ctx, full, f16, P, 0, nkv, hd, dsrc, row, P, 0));
	for (int p = 0; p < P; p += ntok) {
		int n = P - p < ntok ? P - p : ntok;
		OK(cuda_kv_write(ctx, ring, f16, R, 1, nkv, hd, dsrc + (size_t)p * row, row, n, p));
	}
	struct cuda_attn a = attn(nh, nkv, hd, hd, P, f16), b;
	a.window = window;
	b = a;
	b.ctx_len = R;
	b.ring = 1;
	size_t on = (size_t)ntok * nh * hd;
	float *o1 = dev_alloc(on * 4), *o2 = dev_alloc(on * 4);
	float *h1 = malloc(on * 4), *h2 = malloc(on * 4);
	int pos0 = P - ntok;
	OK(cuda_attn_prefill(ctx, &a, o1, (size_t)nh * hd, dq, (size_t)nh * hd, full, full, ntok,
			     pos0));
	OK(cuda_attn_prefill(ctx, &b, o2, (size_t)nh * hd, dq, (size_t)nh * hd, ring, ring, ntok,
			     pos0));
	dev_get(h1, o1, on * 4);
	dev_get(h2, o2, on * 4);
	assert_memory_equal(h1, h2, on * 4);
	OK(cuda_attn_decode(ctx, &a, o1, dq, full, full, P - 1));
	OK(cuda_attn_decode(ctx, &b, o2, dq, ring, ring, P - 1));
	dev_get(h1, o1, (size_t)nh * hd * 4);
	dev_get(h2, o2, (size_t)nh * hd * 4);
	assert_memory_equal(h1, h2, (size_t)nh * hd * 4);
	cuda_free(ctx, dsrc);
	cuda_free(ctx, dq);
	cuda_free(ctx, full);
	cuda_free(ctx, ring);
	cuda_free(ctx, o1);
	cuda_free(ctx, o2);
	free(src);
	free(q);
	free(h1);
	free(h2);
}

static void test_attn_ring(void **state)
{
	(void)state;
	check_ring(4, 2, 32, 6, 16, 45, 5, 1);     /* wraps twice, chunks across the wrap */
	check_ring(4, 1, 64, 130, 160, 300, 3, 0); /* a window over two decode splits */
	/* a ring too small for the chunk and its window is refused */
	struct cuda_attn a = attn(4, 2, 32, 32, 16, 1);
	float dummy = 0;
	a.ring = 1;
	a.window = 6;
	assert_int_equal(
		cuda_attn_prefill(ctx, &a, &dummy, 128, &dummy, 128, &dummy, &dummy, 12, 100), -1);
	assert_string_equal(cuda_error(ctx), "attn_prefill: 12 tokens with a window of 6 do not "
					     "fit a ring of 16 cells");
	a.window = 0;
	assert_int_equal(cuda_attn_decode(ctx, &a, &dummy, &dummy, &dummy, &dummy, 100), -1);
	assert_string_equal(cuda_error(ctx), "attn_decode: a ring of 16 cells needs a sliding "
					     "window of at most as many positions (window 0)");
}

/* kv_move: rows gathered before any is written (overlapping lists), every
 * head, bit for bit; kv_rope: chosen rows turned in place, F16 and F32. */
static void test_kv_move_rope(void **state)
{
	(void)state;
	int cells = 24, nkv = 3, hd = 16;
	size_t n = (size_t)nkv * cells * hd;
	for (int f16 = 0; f16 < 2; f16++) {
		size_t esz = f16 ? 2 : 4;
		float *x = normal_array(n, 1.0f), *src = dev_copy(x, n * 4);
		void *cache = dev_alloc(n * esz), *got = malloc(n * esz), *was = malloc(n * esz);
		/* cell p holds position p: fill head by head as kv_write would */
		for (int h = 0; h < nkv; h++)
			OK(cuda_kv_write(ctx, (char *)cache + (size_t)h * cells * hd * esz, f16,
					 cells, 0, 1, hd, src + (size_t)h * cells * hd, hd, cells,
					 0));
		dev_get(was, cache, n * esz);
		int32_t mv[2 * 10];
		for (int i = 0; i < 10; i++) {
			mv[i] = 3 + i;      /* from 3..12 */
			mv[10 + i] = 1 + i; /* to 1..10: overlapping */
		}
		OK(cuda_kv_move(ctx, cache, f16, cells, nkv, hd, mv, 10));
		dev_get(got, cache, n * esz);
		for (int h = 0; h < nkv; h++)
			for (int c = 0; c < cells; c++) {
				int from = c >= 1 && c <= 10 ? c + 2 : c;
				assert_memory_equal(
					(char *)got + (((size_t)h * cells + c) * hd) * esz,
					(char *)was + (((size_t)h * cells + from) * hd) * esz,
					hd * esz);
			}
		/* turn cells 2 and 7 by position -9 (NEOX, all dims) */
		int32_t rc[2] = { 7, 2 };
		struct cuda_rope_params rp = { hd, 1, 10000.0f, 1.0f, 1.0f, NULL };
		memcpy(was, got, n * esz);
		OK(cuda_kv_rope(ctx, &rp, cache, f16, cells, nkv, hd, rc, 2, -9));
		dev_get(got, cache, n * esz);
		for (int h = 0; h < nkv; h++)
			for (int c = 0; c < cells; c++) {
				size_t o = ((size_t)h * cells + c) * hd;
				int turned = c == 2 || c == 7;
				for (int i = 0; i < hd / 2; i++) {
					double v[2], r[2];
					for (int k = 0; k < 2; k++) {
						size_t e = o + (size_t)i + (size_t)k * hd / 2;
						v[k] = f16 ? quant_f16_to_f32(
								     ((quant_half *)was)[e])
							   : ((float *)was)[e];
						r[k] = f16 ? quant_f16_to_f32(
								     ((quant_half *)got)[e])
							   : ((float *)got)[e];
					}
					double th = -9.0 * pow(10000.0, -2.0 * i / hd);
					double w0 = turned ? v[0] * cos(th) - v[1] * sin(th) : v[0];
					double w1 = turned ? v[0] * sin(th) + v[1] * cos(th) : v[1];
					double tol = turned ? (f16 ? 4e-3 : 3e-5) : 0;
					near("kv_rope", o + (size_t)i, r[0], w0, tol);
					near("kv_rope", o + (size_t)i + hd / 2, r[1], w1, tol);
				}
			}
		assert_int_equal(
			cuda_kv_move(ctx, cache, f16, cells, nkv, hd, (int32_t[]){ 0, 24 }, 1), -1);
		assert_string_equal(cuda_error(ctx),
				    "kv_move: cell 24 is outside the cache (24 cells)");
		cuda_free(ctx, src);
		cuda_free(ctx, cache);
		free(x);
		free(got);
		free(was);
	}
}

static void test_attn_errors(void **state)
{
	struct cuda_attn a = attn(6, 4, 64, 64, 16, 1);
	float dummy = 0;
	(void)state;
	assert_int_equal(cuda_attn_decode(ctx, &a, &dummy, &dummy, &dummy, &dummy, 0), -1);
	assert_string_equal(cuda_error(ctx), "attn_decode: 6 query heads cannot share 4 KV heads");
	a = attn(4, 4, 64, 64, 16, 1);
	assert_int_equal(
		cuda_attn_prefill(ctx, &a, &dummy, 256, &dummy, 256, &dummy, &dummy, 4, 14), -1);
	assert_string_equal(cuda_error(ctx),
			    "attn_prefill: positions 14..17 are outside the cache (16 cells)");
}

/* ---- element-wise --------------------------------------------------------------------- */

struct glu_case {
	enum cuda_act act;
	float *out, *in;
	int rows, n;
};

static void glu_op(void *arg)
{
	struct glu_case *c = arg;
	/* phi3's layout: each row holds gate then up */
	OK(cuda_glu(ctx, c->act, c->out, c->in, c->in + c->n, (size_t)2 * c->n, c->rows, c->n));
}

static void test_glu(void **state)
{
	(void)state;
	int rows = 3, n = 700;
	float *in = normal_array((size_t)rows * 2 * n, 3.0f), *out = malloc((size_t)rows * n * 4);
	for (int act = CUDA_ACT_SILU; act <= CUDA_ACT_GELU; act++) {
		struct glu_case c = { (enum cuda_act)act, dev_alloc((size_t)rows * n * 4),
				      dev_copy(in, (size_t)rows * 2 * n * 4), rows, n };
		run_op(glu_op, &c, c.out, out, (size_t)rows * n * 4);
		for (int r = 0; r < rows; r++)
			for (int i = 0; i < n; i++) {
				double g = in[(size_t)r * 2 * n + i],
				       u = in[(size_t)r * 2 * n + n + i];
				double a = act == CUDA_ACT_SILU
						   ? g / (1 + exp(-g))
						   : 0.5 * g *
							     (1 + tanh(sqrt(2 / M_PI) *
								       (g + 0.044715 * g * g * g)));
				near(act == CUDA_ACT_SILU ? "silu" : "gelu", (size_t)r * n + i,
				     out[(size_t)r * n + i], a * u, 2e-6 * (fabs(a * u) + 1));
			}
		cuda_free(ctx, c.out);
		cuda_free(ctx, c.in);
	}
	free(in);
	free(out);
}

struct ew_case {
	int which;
	float *x_host, *x, *b;
	int64_t n;
};

static void ew_op(void *arg)
{
	struct ew_case *c = arg;
	OK(cuda_upload(ctx, c->x, c->x_host, (size_t)c->n * 4));
	switch (c->which) {
	case 0: OK(cuda_add(ctx, c->x, c->x, c->b, c->n)); break;
	case 1: OK(cuda_add_rows(ctx, c->x, 100, c->b, (int)(c->n / 100), 90)); break;
	case 2: OK(cuda_scale(ctx, c->x, 0.125f, c->n)); break;
	case 3: OK(cuda_softcap(ctx, c->x, 3.0f, c->n)); break;
	}
}

static void test_elementwise(void **state)
{
	(void)state;
	int64_t n = 5000;
	float *x = normal_array((size_t)n, 4.0f), *b = normal_array((size_t)n, 1.0f);
	float *out = malloc((size_t)n * 4);
	for (int which = 0; which < 4; which++) {
		struct ew_case c = { which, x, dev_alloc((size_t)n * 4), dev_copy(b, (size_t)n * 4),
				     n };
		run_op(ew_op, &c, c.x, out, (size_t)n * 4);
		for (int64_t i = 0; i < n; i++) {
			double want = x[i];
			if (which == 0)
				want = x[i] + b[i];
			else if (which == 1 && i % 100 < 90)
				want = x[i] + b[i % 100];
			else if (which == 2)
				want = x[i] * 0.125;
			else if (which == 3)
				want = 3.0 * tanh(x[i] / 3.0);
			near("elementwise", (size_t)i, out[i], want, which == 3 ? 1e-6 : 0);
		}
		cuda_free(ctx, c.x);
		cuda_free(ctx, c.b);
	}
	free(x);
	free(b);
	free(out);
}

/* ---- embedding ------------------------------------------------------------------------- */

struct embed_case {
	int type, n_vocab, ntok;
	int64_t n;
	size_t row_bytes;
	const int32_t *tokens;
	void *table;
	float *out;
};

static void embed_op(void *arg)
{
	struct embed_case *c = arg;
	OK(cuda_embed(ctx, c->type, c->table, c->row_bytes, c->n_vocab, c->n, c->tokens, c->ntok,
		      c->out, (size_t)c->n + 3));
}

static void check_embed(int type, int64_t n)
{
	const int32_t tokens[] = { 7, 0, 39, 7, 12 };
	int n_vocab = 40, ntok = 5;
	float *deq = malloc((size_t)n * 4), *out = malloc((size_t)ntok * (n + 3) * 4);
	const struct quant_traits *t = quant_traits(type);
	size_t rb = (size_t)(n / t->block_elems) * t->block_bytes;
	uint8_t *table = malloc((size_t)n_vocab * rb);
	make_weights(type, n_vocab, n, rb, table);
	struct embed_case c = { type,
				n_vocab,
				ntok,
				n,
				rb,
				tokens,
				dev_copy(table, (size_t)n_vocab * rb),
				dev_alloc((size_t)ntok * (n + 3) * 4) };
	run_op(embed_op, &c, c.out, out, (size_t)ntok * (n + 3) * 4);
	for (int i = 0; i < ntok; i++) {
		quant_dequantize_row(type, table + (size_t)tokens[i] * rb, deq, n);
		for (int64_t j = 0; j < n; j++)
			near(t->name, (size_t)(i * n + j), out[(size_t)i * (n + 3) + j], deq[j],
			     1e-6 * fabs(deq[j]));
	}
	if (type == QT_Q8_0) {
		const int32_t bad[] = { 3, 40 };
		assert_int_equal(
			cuda_embed(ctx, type, c.table, rb, n_vocab, n, bad, 2, c.out, (size_t)n),
			-1);
		assert_string_equal(cuda_error(ctx), "embed: token id 40 is outside the "
						     "vocabulary (40 tokens)");
	}
	cuda_free(ctx, c.table);
	cuda_free(ctx, c.out);
	free(table);
	free(deq);
	free(out);
}

static void test_embed(void **state)
{
	(void)state;
	for (size_t ti = 0; ti < sizeof(weight_types) / sizeof(weight_types[0]); ti++)
		check_embed(weight_types[ti], 512);
	/* float rows that are no multiple of 8: a tail */
	check_embed(QT_F32, 172);
	check_embed(QT_F16, 13);
	check_embed(QT_BF16, 37);
}

/* ---- sampling ---------------------------------------------------------------------------- */

static int32_t cpu_argmax(const float *x, int n)
{
	int32_t best = 0;
	float bl = -INFINITY;
	for (int i = 0; i < n; i++)
		if (x[i] > bl) {
			bl = x[i];
			best = i;
		}
	return best;
}

static void test_argmax(void **state)
{
	(void)state;
	int n = 100003;
	float *x = normal_array((size_t)n, 3.0f);
	float *d = dev_copy(x, (size_t)n * 4);
	int32_t got;
	OK(cuda_argmax(ctx, d, n, &got));
	assert_int_equal(got, cpu_argmax(x, n));
	/* ties: the first; NaN never wins */
	x[500] = x[20000] = x[99999] = 100.0f;
	x[7] = NAN;
	OK(cuda_upload(ctx, d, x, (size_t)n * 4));
	OK(cuda_argmax(ctx, d, n, &got));
	assert_int_equal(got, 500);
	assert_int_equal(cpu_argmax(x, n), 500);
	/* all -inf, or all NaN: 0, as the CPU sampler */
	for (int i = 0; i < n; i++)
		x[i] = i % 2 ? -INFINITY : NAN;
	OK(cuda_upload(ctx, d, x, (size_t)n * 4));
	OK(cuda_argmax(ctx, d, n, &got));
	assert_int_equal(got, 0);
	OK(cuda_argmax(ctx, d + 1, 1, &got));
	assert_int_equal(got, 0);
	cuda_free(ctx, d);
	free(x);
}

struct cand {
	float v;
	int32_t id;
};

static int cand_cmp(const void *a, const void *b)
{
	const struct cand *x = a, *y = b;
	float xv = isnan(x->v) ? -INFINITY : x->v, yv = isnan(y->v) ? -INFINITY : y->v;
	if (xv != yv)
		return xv > yv ? -1 : 1;
	return x->id < y->id ? -1 : x->id > y->id;
}

static void check_topk(int n, int k, int few_values)
{
	float *x = malloc((size_t)n * 4), vals[1024];
	int32_t ids[1024];
	struct cand *c = malloc((size_t)n * sizeof(*c));
	for (int i = 0; i < n; i++) {
		x[i] = few_values ? (float)(rnd_u32() % 9) - 4.0f : rnd_normal();
		if (few_values && i % 97 == 5)
			x[i] = NAN;
		if (few_values && i % 89 == 3)
			x[i] = -INFINITY;
		c[i].v = x[i];
		c[i].id = i;
	}
	qsort(c, (size_t)n, sizeof(*c), cand_cmp);
	float *d = dev_copy(x, (size_t)n * 4);
	OK(cuda_topk(ctx, d, n, k, ids, vals));
	for (int i = 0; i < k; i++) {
		assert_int_equal(ids[i], c[i].id);
		assert_true(vals[i] == (isnan(c[i].v) ? -INFINITY : c[i].v));
	}
	cuda_free(ctx, d);
	free(x);
	free(c);
}

static void test_topk(void **state)
{
	(void)state;
	check_topk(5000, 40, 0);
	check_topk(5000, 40, 1);    /* ties, NaN, -inf */
	check_topk(30000, 1024, 1); /* two rounds */
	check_topk(100, 100, 1);    /* k = n: -inf and NaN last, by index */
	check_topk(1, 1, 0);
	assert_int_equal(cuda_topk(ctx, NULL, 10, 11, NULL, NULL), -1);
	assert_string_equal(cuda_error(ctx), "topk: k 11 out of 1..10 for 10 logits");
}

/* ---- set-up ------------------------------------------------------------------------------- */

static int setup(void **state)
{
	char err[256];
	(void)state;
	ctx = cuda_open(0, err, sizeof(err));
	if (!ctx) {
		print_error("cuda_open: %s\n", err);
		return -1;
	}
	printf("device: %s\n", cuda_device_name(ctx));
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	cuda_close(ctx);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_matvec),        cmocka_unit_test(test_matmul_tiled),
		cmocka_unit_test(test_matmul_errors), cmocka_unit_test(test_rms_norm),
		cmocka_unit_test(test_head_norm),     cmocka_unit_test(test_rope),
		cmocka_unit_test(test_attn_decode),   cmocka_unit_test(test_attn_prefill),
		cmocka_unit_test(test_attn_errors),   cmocka_unit_test(test_attn_ring),
		cmocka_unit_test(test_kv_move_rope),  cmocka_unit_test(test_glu),
		cmocka_unit_test(test_elementwise),   cmocka_unit_test(test_embed),
		cmocka_unit_test(test_argmax),        cmocka_unit_test(test_topk),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
