/* Helpers shared by the cmocka tests: reference data and scratch files. */
#ifndef PALAVER_TESTUTIL_H
#define PALAVER_TESTUTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ftw.h>
#include <sys/stat.h>

#include "json.h"
#include "untrusted.h"

/*
 * Where the reference data is: $PALAVER_REF_DIR when set, else
 * ../shared/ref (the project's source of reference data, beside the
 * repository), else build/testdata: tests/data unpacked by 'make testdata',
 * the copy a clone has.  Paths are relative to the repository root, where
 * make runs the tests.  NULL when none is there; the first call that finds
 * nothing says where it looked.  tests/refdata.sh does the same for the
 * shell tests.
 */
static inline const char *test_ref_dir(void)
{
	static const char *dir;
	static int looked;
	static const char *const where[] = { "../shared/ref", "build/testdata" };
	struct stat st;
	if (looked)
		return dir;
	looked = 1;
	dir = getenv("PALAVER_REF_DIR");
	if (dir && *dir) {
		if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
			printf("reference data not found at '%s' ($PALAVER_REF_DIR)\n", dir);
			dir = NULL;
		}
		return dir;
	}
	for (size_t i = 0; i < sizeof(where) / sizeof(where[0]); i++)
		if (stat(where[i], &st) == 0 && S_ISDIR(st.st_mode))
			return dir = where[i];
	printf("reference data not found at '../shared/ref' nor 'build/testdata' (run 'make "
	       "testdata', or set PALAVER_REF_DIR)\n");
	return dir = NULL;
}

/* ref_path("models/stories260K.gguf") -> static buffer, NULL without ref data. */
static inline const char *test_ref_path(const char *rel)
{
	static char buf[4096];
	const char *d = test_ref_dir();
	if (!d)
		return NULL;
	snprintf(buf, sizeof(buf), "%s/%s", d, rel);
	return buf;
}

/* CI=true: a clone must run every test, so a skip is a failure there. */
static inline int test_ci(void)
{
	const char *v = getenv("CI");
	return v && !strcmp(v, "true");
}

/* Skip the current cmocka test saying why (a string literal, then printf
 * arguments), or fail it under CI=true. */
#define TEST_SKIP(...)                                                                             \
	do {                                                                                       \
		if (test_ci())                                                                     \
			fail_msg("would skip, which CI=true forbids: " __VA_ARGS__);               \
		printf("skip: " __VA_ARGS__);                                                      \
		printf("\n");                                                                      \
		skip();                                                                            \
	} while (0)

/* Skip (or under CI=true fail) the current test when the reference data is missing. */
#define REQUIRE_REF()                                                                              \
	do {                                                                                       \
		if (!test_ref_dir())                                                               \
			TEST_SKIP("no reference data");                                            \
	} while (0)

/*
 * Strict JSON: text[0..n) is well-formed UTF-8 throughout (RFC 8259 8.1)
 * and one JSON value (json_parse).  0, or -1 with *why set.
 */
static inline int test_json_strict(const char *text, size_t n, const char **why)
{
	for (size_t i = 0; i < n;) {
		uint32_t cp;
		size_t l = utf8_valid(text + i, n - i, &cp);
		if (!l) {
			*why = "not UTF-8";
			return -1;
		}
		i += l;
	}
	struct json *j = json_parse(text, n);
	if (!j) {
		*why = "not one JSON value";
		return -1;
	}
	json_free(j);
	return 0;
}

static inline int test_rmtree_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(p);
}

/* Remove a scratch directory and everything under it. */
static inline void test_rmtree(const char *dir)
{
	nftw(dir, test_rmtree_one, 16, FTW_DEPTH | FTW_PHYS);
}

#endif
