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

/* $PALAVER_REF_DIR, else ../shared/ref (relative to the repository root,
 * where make runs the tests); NULL when absent.  The first call that finds
 * nothing prints one skip line naming what it looked for. */
static inline const char *test_ref_dir(void)
{
	static const char *dir;
	static int looked;
	struct stat st;
	if (looked)
		return dir;
	looked = 1;
	dir = getenv("PALAVER_REF_DIR");
	if (!dir || !*dir)
		dir = "../shared/ref";
	if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
		printf("skip: reference data not found at '%s' (set PALAVER_REF_DIR)\n", dir);
		dir = NULL;
	}
	return dir;
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

/* Skip the current cmocka test when the reference data is missing. */
#define REQUIRE_REF()                                                          \
	do {                                                                   \
		if (!test_ref_dir())                                           \
			skip();                                                \
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
