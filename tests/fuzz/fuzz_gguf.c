/* libFuzzer target for the GGUF reader: any input opens cleanly or fails with one message. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "gguf.h"
#include "report.h"

/* The input goes into one memfd, reused across runs, opened by its /proc path
 * so that gguf_open takes its ordinary file path. */
static int memfd = -1;
static char memfd_path[64];

static volatile uint8_t sink; /* keeps the touches below from being optimised away */

static void exercise(struct gguf *g)
{
	for (int64_t i = 0; i < gguf_n_kv(g); i++) {
		const struct gguf_kv *kv = gguf_kv_at(g, i);
		uint32_t u32;
		int32_t i32;
		uint64_t u64;
		float f;
		int b;
		struct gguf_str s;
		enum gguf_vtype at;
		uint64_t n;
		const void *data;
		const struct gguf_str *strs;

		if (gguf_find_kv(g, kv->key) != kv)
			abort();
		gguf_get_u32(g, kv->key, &u32);
		gguf_get_i32(g, kv->key, &i32);
		gguf_get_u64(g, kv->key, &u64);
		gguf_get_f32(g, kv->key, &f);
		gguf_get_bool(g, kv->key, &b);
		gguf_get_u32_or(g, kv->key, 1, &u32);
		gguf_get_f32_or(g, kv->key, 1, &f);
		gguf_get_bool_or(g, kv->key, 1, &b);
		if (gguf_get_str(g, kv->key, &s) == 0 && s.len)
			sink ^= (uint8_t)(s.data[0] ^ s.data[s.len - 1]);
		if (gguf_get_arr(g, kv->key, &at, &n, &data) == 0 && n && at != GGUF_TYPE_STRING)
			sink ^= *(const uint8_t *)data;
		if (gguf_get_arr_str(g, kv->key, &strs, &n) == 0) {
			for (uint64_t j = 0; j < n; j++)
				if (strs[j].len)
					sink ^= (uint8_t)(strs[j].data[0] ^ strs[j].data[strs[j].len - 1]);
		}
	}
	for (int64_t i = 0; i < gguf_n_tensors(g); i++) {
		const struct gguf_tensor *t = gguf_tensor_at(g, i);
		const uint8_t *d = t->data;
		if (gguf_find_tensor(g, t->name) != t || !gguf_type_name(t->type) || t->nbytes == 0)
			abort();
		sink ^= d[0] ^ d[t->nbytes - 1]; /* a view outside the mapping faults here */
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (memfd < 0) {
		memfd = memfd_create("fuzz.gguf", MFD_CLOEXEC);
		if (memfd < 0)
			abort();
		snprintf(memfd_path, sizeof(memfd_path), "/proc/self/fd/%d", memfd);
	}
	if (ftruncate(memfd, 0) < 0 || pwrite(memfd, data, size, 0) != (ssize_t)size)
		abort();
	error_clear();
	struct gguf *g = gguf_open(memfd_path);
	if (g) {
		exercise(g);
		gguf_close(g);
	} else {
		const char *msg = error_message();
		if (!*msg || strchr(msg, '\n'))
			abort(); /* every failure is one non-empty line */
	}
	return 0;
}
