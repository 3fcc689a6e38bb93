/* Tests for engine/quant_select.c: the per-CPU kernel choice, its cache file and the forced level. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "quant.h"
#include "quant_select.h"
#include "report.h"

static char dir[] = "/tmp/palaver-qsel-XXXXXX";

static int setup(void **state)
{
	(void)state;
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[128];
	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void test_file_name(void **state)
{
	char name[128];
	(void)state;
	quant_select_file_name("AMD EPYC 9R14 96-Core Processor family 25 model 17 stepping 1",
			       name, sizeof(name));
	assert_string_equal(
		name, "kernels-AMD-EPYC-9R14-96-Core-Processor-family-25-model-17-stepping-1.txt");
	quant_select_file_name("a/../b", name, sizeof(name));
	assert_null(strchr(name + 8, '/'));
	/* the bench's bandwidth record, by the same key */
	quant_cpu_file_name("bandwidth-", "a/../b  c", name, sizeof(name));
	assert_string_equal(name, "bandwidth-a-..-b-c.txt");
	quant_cpu_key(name, sizeof(name));
	assert_non_null(strstr(name, " family "));
}

/* A measured choice: every calibrated type, each level this CPU has, a
 * chosen level it has; written and read back unchanged. */
static void test_measure_save_load(void **state)
{
	struct quant_selection s, r;
	char path[256];
	(void)state;
	quant_select_measure(&s);
	if (!quant_isa_supported(QUANT_ISA_AVX2)) {
		assert_int_equal(s.n, 0);
		return;
	}
	assert_true(s.n >= 8);
	for (int i = 0; i < s.n; i++) {
		assert_true(quant_isa_supported(s.row[i].gemv_level));
		assert_true(quant_isa_supported(s.row[i].gemm_level));
		assert_true(s.row[i].gemv[QUANT_ISA_AVX2] > 0);
		assert_true(s.row[i].gemm[QUANT_ISA_AVX2] > 0);
		assert_true(s.row[i].gemv[QUANT_ISA_SCALAR] == 0);
	}
	/* measuring leaves the widest level everywhere */
	assert_int_equal(quant_kernel_level(QT_Q4_K, 0), quant_isa_best());
	snprintf(path, sizeof(path), "%s/sub/kernels.txt", dir);
	assert_int_equal(quant_select_save(&s, path), 0);
	assert_int_equal(quant_select_load(&r, path), 1);
	assert_true(r.from_cache);
	assert_string_equal(r.cpu, s.cpu);
	assert_int_equal(r.n, s.n);
	for (int i = 0; i < s.n; i++) {
		assert_int_equal(r.row[i].type, s.row[i].type);
		assert_int_equal(r.row[i].gemv_level, s.row[i].gemv_level);
		assert_int_equal(r.row[i].gemm_level, s.row[i].gemm_level);
		assert_true(r.row[i].gemv[QUANT_ISA_AVX2] > s.row[i].gemv[QUANT_ISA_AVX2] - 0.01);
	}
	quant_select_apply(&r);
	assert_int_equal(quant_kernel_level(r.row[0].type, 0), r.row[0].gemv_level);
	assert_int_equal(quant_kernel_level(r.row[0].type, 1), r.row[0].gemm_level);
	quant_isa_set(quant_isa_best());
}

static void test_load_stale_and_bad(void **state)
{
	struct quant_selection s;
	char path[256], key[160], text[1024];
	(void)state;
	snprintf(path, sizeof(path), "%s/none.txt", dir);
	assert_int_equal(quant_select_load(&s, path), 0); /* absent */

	snprintf(path, sizeof(path), "%s/k.txt", dir);
	write_file(path, "palaver-kernels 6 0.0.0-other\ncpu x\n");
	assert_int_equal(quant_select_load(&s, path), 0); /* another version */

	snprintf(text, sizeof(text),
		 "palaver-kernels 6 %s\ncpu Some Other CPU family 1 model 2 stepping 3\n",
		 PALAVER_VERSION);
	write_file(path, text);
	assert_int_equal(quant_select_load(&s, path), 0); /* another CPU */

	quant_cpu_key(key, sizeof(key));
	snprintf(text, sizeof(text), "palaver-kernels 4 %s\ncpu %s\nQ4_K gemv scalar 0 1 2 3 4\n",
		 PALAVER_VERSION, key);
	write_file(path, text);
	assert_int_equal(quant_select_load(&s, path), 0); /* an older kernel revision */

	snprintf(text, sizeof(text),
		 "# comment\npalaver-kernels 6 %s\ncpu %s\nQ4_K gemv scalar 0 1 2 3 4\n"
		 "Q4_K gemm scalar 0 1 2 3 4\n",
		 PALAVER_VERSION, key);
	write_file(path, text);
	assert_int_equal(quant_select_load(&s, path), 1);
	assert_int_equal(s.n, 1);
	assert_int_equal(s.row[0].type, QT_Q4_K);
	assert_int_equal(s.row[0].gemv_level, QUANT_ISA_SCALAR);
	assert_true(s.row[0].gemm[4] == 4.0);

	snprintf(text, sizeof(text), "palaver-kernels 6 %s\ncpu %s\nQ4_K gemv fastest 0 1 2 3 4\n",
		 PALAVER_VERSION, key);
	write_file(path, text);
	assert_int_equal(quant_select_load(&s, path), -1);
	assert_non_null(strstr(error_message(), "line 3: not a kernel choice line"));
	error_clear();

	snprintf(text, sizeof(text), "palaver-kernels 6 %s\ncpu %s\nQ4_K gemv avx2 1 2\n",
		 PALAVER_VERSION, key);
	write_file(path, text);
	assert_int_equal(quant_select_load(&s, path), -1);
	error_clear();
}

/* configure + ensure: a forced level applies to every type; auto with a
 * cache folder measures once and writes the file; names are checked. */
static void test_configure(void **state)
{
	struct quant_selection s;
	char path[256];
	(void)state;
	assert_int_equal(quant_select_configure("avx1024", NULL), -1);
	assert_non_null(strstr(error_message(), "unknown isa 'avx1024'"));
	error_clear();
	if (!quant_isa_supported(QUANT_ISA_AVX512_VNNI)) {
		assert_int_equal(quant_select_configure("avx512-vnni", NULL), -1);
		assert_non_null(strstr(error_message(), "not supported by this cpu"));
		error_clear();
	}
	assert_int_equal(quant_select_configure("scalar", dir), 0);
	assert_int_equal(quant_select_forced(), QUANT_ISA_SCALAR);
	quant_select_ensure(&s);
	assert_int_equal(s.n, 0);
	assert_int_equal(quant_kernel_level(QT_Q8_0, 1), QUANT_ISA_SCALAR);
	assert_int_equal(quant_isa_current(), QUANT_ISA_SCALAR);

	assert_int_equal(quant_select_configure("auto", dir), 0);
	assert_int_equal(quant_select_forced(), -1);
	snprintf(path, sizeof(path), "%s", quant_select_cache_path());
	assert_int_equal(strncmp(path, dir, strlen(dir)), 0);
	unlink(path);
	quant_select_ensure(&s);
	if (quant_isa_supported(QUANT_ISA_AVX2)) {
		assert_false(s.from_cache);
		assert_int_equal(access(path, R_OK), 0);
		/* a second process would read it: same choice */
		struct quant_selection r;
		assert_int_equal(quant_select_load(&r, path), 1);
		assert_int_equal(r.n, s.n);
	}
	quant_select_ensure(&s); /* once per configure: no second measurement */
	quant_isa_set(quant_isa_best());
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_file_name),
		cmocka_unit_test(test_measure_save_load),
		cmocka_unit_test(test_load_stale_and_bad),
		cmocka_unit_test(test_configure),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
