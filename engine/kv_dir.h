/* The folder of saved KV states: file names, atomic saves, least-recently-used eviction. */
#ifndef PALAVER_KV_DIR_H
#define PALAVER_KV_DIR_H

#include <stdint.h>

#include "kv_state.h"
#include "strbuf.h"

/* 1 when s can name a session's states: 1..ENGINE_SESSION_MAX-1 of [A-Za-z0-9_-]. */
int kv_dir_session_ok(const char *s);
/* dir/SESSION-KEY.kv (KEY as 16 hex digits) into out. */
void kv_dir_file(struct strbuf *out, const char *dir, const char *session, uint64_t key);

/*
 * Write kv's state as dir/SESSION-KEY.kv, atomically: an unnamed temporary
 * file (O_TMPFILE; where the file system lacks it, a named one that the
 * next save removes if its writer died), fsync, rename over the old file,
 * fsync of the folder.  On failure the old file (if any) is untouched and
 * no temporary file remains.  cap (0 = none): states of other sessions or
 * models are removed, least recently used first, so that all of them fit;
 * a state larger than cap alone is not written.  stop: as kv_state_write.
 * 0 with the path in *path and the size in *bytes, or -1 with error().
 */
int kv_dir_save(const char *dir, const char *session, uint64_t key, const struct kv_cache *kv,
		const struct kv_state_id *id, uint64_t cap, int (*stop)(void *), void *ud,
		struct strbuf *path, uint64_t *bytes);

/* Mark a state as just used (its mtime orders the eviction). */
void kv_dir_touch(const char *path);

#endif
