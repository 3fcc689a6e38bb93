/* CUDA emulation: correct kernels run under every schedule; each kind of broken one is caught. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cuda_ops.h"
#include "emu/emu_control.h"

/* tests/cuda_emu_kernels.cu */
int emu_kernel_run(const char *name, unsigned seed, float *out, int n);
const char *emu_kernel_error(void);

#define N 256
static const unsigned seeds[] = { 0, 1, 2, 7, 12345 };
#define NSEEDS (sizeof(seeds) / sizeof(seeds[0]))

/* Runs a kernel that must be caught: under every seed it fails, and the
 * message contains `want`. */
static void expect_caught(const char *kernel, const char *want)
{
	float out[N];
	for (size_t s = 0; s < NSEEDS; s++) {
		int rc = emu_kernel_run(kernel, seeds[s], out, N);
		if (rc == 0 || !strstr(emu_kernel_error(), want)) {
			print_error("%s (seed %u): rc %d, message '%s', expected '%s'\n", kernel,
				    seeds[s], rc, emu_kernel_error(), want);
			fail();
		}
	}
}

/* Runs a correct kernel under every seed: it succeeds, with the same
 * output each time; returns that output in out. */
static void expect_ok(const char *kernel, float *out)
{
	float again[N];
	for (size_t s = 0; s < NSEEDS; s++) {
		float *dst = s ? again : out;
		if (emu_kernel_run(kernel, seeds[s], dst, N) < 0) {
			print_error("%s (seed %u): %s\n", kernel, seeds[s], emu_kernel_error());
			fail();
		}
		if (s)
			assert_memory_equal(out, again, sizeof(again));
	}
}

static void test_reduce_good(void **state)
{
	float out[N];
	(void)state;
	expect_ok("good_reduce", out);
	for (int i = 0; i < 64; i++)
		assert_true(out[i] == 64 * 63 / 2);
}

static void test_missing_syncthreads(void **state)
{
	(void)state;
	expect_caught("nosync_reduce", "race on element");
}

static void test_shared_off_by_one(void **state)
{
	(void)state;
	expect_caught("off_by_one", "index 64 of dimension 1 is outside 0..63");
	expect_caught("off_by_one_2d", "index 16 of dimension 2 is outside 0..15");
	expect_caught("dyn_off_by_one", "index 64 is outside 0..63");
}

static void test_barrier_divergence(void **state)
{
	(void)state;
	expect_caught("barrier_after_exit", "reached by 32 of the block's 64 threads");
	expect_caught("barrier_in_branches", "while other threads wait at another");
}

static void test_uninitialized_shared(void **state)
{
	(void)state;
	expect_caught("uninit_read", "which no thread of the block has written");
}

static void test_warp_synchronous(void **state)
{
	float out[N];
	(void)state;
	expect_caught("warp_sync_missing", "race on element");
	expect_ok("warp_sync_good", out);
	for (int i = 0; i < 32; i++)
		assert_true(out[i] == 32 * 31 / 2);
}

static void test_shuffles(void **state)
{
	float out[N];
	(void)state;
	expect_ok("shfl_good", out);
	for (int t = 0; t < 128; t++) {
		int lane = t % 32, w0 = t - lane;
		float down = (float)(lane + 3 < 32 ? t + 3 : t);
		float up = (float)(lane % 8 >= 2 ? t - 2 : t);
		float idx = (float)(w0 + (lane & ~15) + 5);
		float want = down + 128.0f * up + 16384.0f * idx + 0.5f + 0.25f + 0.125f;
		assert_true(out[t] == want);
	}
}

static void test_warp_divergence(void **state)
{
	(void)state;
	expect_caught("shfl_after_exit", "exit");
	expect_caught("shfl_outside_mask", "lane 0 reads lane 16, which is not in the mask");
	expect_caught("shfl_mask_excludes_caller", "does not include the calling lane");
	expect_caught("shfl_mixed_ops", "must call the same one");
}

static void test_interblock_race(void **state)
{
	/* the emulation cannot see this race directly; running blocks in
	 * several orders and comparing, as test_cuda_ops does, catches it */
	float first[N], other[N];
	int differs = 0;
	(void)state;
	assert_int_equal(emu_kernel_run("interblock_race", 0, first, N), 0);
	for (int i = 0; i < 64; i++)
		assert_true(first[i] == (float)i); /* in order it "works" */
	for (size_t s = 1; s < NSEEDS; s++) {
		assert_int_equal(emu_kernel_run("interblock_race", seeds[s], other, N), 0);
		differs |= memcmp(first, other, 64 * sizeof(float)) != 0;
	}
	assert_true(differs);
}

static void test_global_bounds(void **state)
{
	(void)state;
	expect_caught("global_past_end", "wrote past the end of a 1024-byte device buffer");
}

static void test_atomics(void **state)
{
	float out[N];
	int mx;
	(void)state;
	expect_ok("atomic_count", out);
	assert_true(out[0] == 512.0f);
	memcpy(&mx, &out[1], 4);
	assert_int_equal(mx, 511);
}

static void test_wmma(void **state)
{
	float out[N];
	(void)state;
	expect_ok("wmma_good", out);
	for (int i = 0; i < 16; i++)
		for (int j = 0; j < 16; j++) {
			float want = 1.0f;
			for (int k = 0; k < 16; k++)
				want += (float)(16 * i + k) / 64.0f * (float)((16 * j + k) % 7 - 3);
			assert_true(out[16 * i + j] == want);
		}
	expect_caught("wmma_half_warp", "wmma::load_matrix_sync");
	expect_caught("wmma_misaligned", "not 32-byte aligned");
}

static void test_launch_config(void **state)
{
	(void)state;
	expect_caught("bad_config", "invalid launch");
}

static void test_host_api(void **state)
{
	char err[256], host[64];
	struct cuda_ctx *c;
	void *p;
	(void)state;
	c = cuda_open(0, err, sizeof(err));
	assert_non_null(c);
	assert_non_null(strstr(cuda_device_name(c), "emulator"));

	/* a copy to memory that is not a device allocation */
	assert_int_equal(cuda_upload(c, host, host, sizeof(host)), -1);
	assert_non_null(strstr(cuda_error(c), "not inside a device allocation"));
	/* one running past the end of one */
	p = cuda_alloc(c, 32, "small");
	assert_non_null(p);
	assert_int_equal(cuda_upload(c, p, host, sizeof(host)), -1);
	assert_non_null(strstr(cuda_error(c), "not inside a device allocation"));
	cuda_free(c, p);

	/* out of device memory names what did not fit */
	pv_emu_set_memory_limit((size_t)1 << 20);
	assert_null(cuda_alloc(c, (size_t)2 << 20, "blk.3.ffn_up.weight"));
	assert_non_null(strstr(cuda_error(c), "cannot allocate 2.0 MiB on the GPU for "
					      "'blk.3.ffn_up.weight': out of memory"));
	pv_emu_set_memory_limit((size_t)4 << 30);
	assert_int_equal(pv_emu_memory_used(), 0);
	cuda_close(c);

	/* no device */
	pv_emu_set_device_count(0);
	assert_int_equal(cuda_device_count(), 0);
	assert_null(cuda_open(0, err, sizeof(err)));
	assert_string_equal(err, "no CUDA device 0 (0 found)");
	pv_emu_set_device_count(1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reduce_good),
		cmocka_unit_test(test_missing_syncthreads),
		cmocka_unit_test(test_shared_off_by_one),
		cmocka_unit_test(test_barrier_divergence),
		cmocka_unit_test(test_uninitialized_shared),
		cmocka_unit_test(test_warp_synchronous),
		cmocka_unit_test(test_shuffles),
		cmocka_unit_test(test_warp_divergence),
		cmocka_unit_test(test_interblock_race),
		cmocka_unit_test(test_global_bounds),
		cmocka_unit_test(test_atomics),
		cmocka_unit_test(test_wmma),
		cmocka_unit_test(test_launch_config),
		cmocka_unit_test(test_host_api),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
