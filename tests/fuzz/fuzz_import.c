/* libFuzzer target for session import: any input is imported or refused with one line; what is imported exports again as valid JSON. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "json.h"
#include "report.h"
#include "store.h"
#include "strbuf.h"
#include "untrusted.h"

/* One scratch database for the whole run, emptied after each input that
 * imported, so it stays small. */
static struct store *st;
static char dir[] = "/tmp/palaver-fuzz-import-XXXXXX";

static void cleanup(void)
{
	char path[128];
	store_close(st);
	static const char *const suffix[] = { "", "-wal", "-shm", "-journal" };
	for (int i = 0; i < 4; i++) {
		snprintf(path, sizeof(path), "%s/h.db%s", dir, suffix[i]);
		unlink(path);
	}
	rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char path[128];
	(void)argc;
	(void)argv;
	if (!mkdtemp(dir))
		abort();
	snprintf(path, sizeof(path), "%s/h.db", dir);
	st = store_open(path);
	if (!st) {
		fprintf(stderr, "fuzz_import: %s\n", error_message());
		abort();
	}
	atexit(cleanup);
	return 0;
}

/* Well-formed UTF-8 and one JSON value, or abort. */
static void check_json(const struct strbuf *sb)
{
	for (size_t i = 0; i < sb->len;) {
		uint32_t cp;
		size_t l = utf8_valid(sb->buf + i, sb->len - i, &cp);
		if (!l)
			abort();
		i += l;
	}
	struct json *j = json_parse(sb->buf, sb->len);
	if (!j)
		abort();
	json_free(j);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char id[STORE_ID_SIZE];
	error_clear();
	if (store_import(st, (const char *)data, size, id) < 0) {
		const char *m = error_message();
		if (!*m || strchr(m, '\n'))
			abort(); /* one line that says why */
		return 0;
	}
	struct strbuf out = STRBUF_INIT;
	if (store_export(st, id, STORE_FORMAT_JSON, &out) < 0)
		abort();
	check_json(&out);
	strbuf_reset(&out);
	if (store_export(st, id, STORE_FORMAT_MARKDOWN, &out) < 0)
		abort();
	strbuf_release(&out);
	if (store_session_delete(st, id) < 0)
		abort();
	return 0;
}
