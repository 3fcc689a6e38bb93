/* hash: XXH64 against xxhsum's values, and the streaming form against the one-shot one. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "hash.h"

/* bytes (i * 7 + 3) mod 256, the pattern the reference values below were made from */
static unsigned char *pattern(size_t n)
{
	unsigned char *p = malloc(n ? n : 1);
	for (size_t i = 0; i < n; i++)
		p[i] = (unsigned char)((i * 7 + 3) % 256);
	return p;
}

/* Values printed by `xxhsum -H1` (Debian's xxhash 0.8.1) for the same inputs. */
static void test_reference_values(void **state)
{
	(void)state;
	char x100[100];
	memset(x100, 'x', sizeof(x100));
	assert_true(hash64("", 0, 0) == 0xef46db3751d8e999ull);
	assert_true(hash64("a", 1, 0) == 0xd24ec4f1a98c6e5bull);
	assert_true(hash64("abc", 3, 0) == 0x44bc2cf5ad770999ull);
	assert_true(hash64(x100, sizeof(x100), 0) == 0x92f0de5a88a3c094ull);
	unsigned char *p = pattern(1000);
	assert_true(hash64(p, 37, 0) == 0xe32ef63802f5a3fdull);
	assert_true(hash64(p, 1000, 0) == 0x5f235fa033f1a3fbull);
	/* the seed changes the value */
	assert_true(hash64(p, 1000, 1) != hash64(p, 1000, 0));
	free(p);
}

/* Any cut of the input into updates gives the one-shot value. */
static void test_streaming(void **state)
{
	(void)state;
	size_t n = 4099;
	unsigned char *p = pattern(n);
	for (size_t len = 0; len <= n; len += len < 80 ? 1 : 397) {
		uint64_t want = hash64(p, len, 42);
		for (size_t step = 1; step <= 67; step += 11) {
			struct hash64 h;
			hash64_init(&h, 42);
			for (size_t i = 0; i < len; i += step)
				hash64_update(&h, p + i, len - i < step ? len - i : step);
			assert_true(hash64_final(&h) == want);
		}
	}
	/* final does not end the stream */
	struct hash64 h;
	hash64_init(&h, 0);
	hash64_update(&h, p, 10);
	assert_true(hash64_final(&h) == hash64(p, 10, 0));
	hash64_update(&h, p + 10, 990);
	assert_true(hash64_final(&h) == 0x5f235fa033f1a3fbull);
	/* one changed bit changes the value */
	p[500] ^= 1;
	assert_true(hash64(p, 1000, 0) != 0x5f235fa033f1a3fbull);
	free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reference_values),
		cmocka_unit_test(test_streaming),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
