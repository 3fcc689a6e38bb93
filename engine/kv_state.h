/* A KV cache saved to a file: a versioned, checksummed format, written and read back exactly. */
#ifndef PALAVER_KV_STATE_H
#define PALAVER_KV_STATE_H

#include <stdint.h>

#include "kv_cache.h"

/*
 * A state holds exactly what one kv_cache holds: its tokens, each full
 * layer's positions 0 .. n-1 and each ring layer's cells with their
 * position tags, so that reading it back and reusing a prefix gives the
 * same numbers as computing those tokens again.  It is trusted only when
 * everything matches: the format version, the model (file size and
 * gguf_header_hash()), the KV type, the cache's shape (layers, heads, head
 * dims, cells and window of every layer) and three checksums (header,
 * tokens, K/V data).  Anything else is refused with an error() that says
 * what differed; the caller then recomputes the tokens.
 *
 * Layout (integers little-endian; the K/V rows in the host's order, which
 * a byte-order mark in the header pins):
 *	header   KV_STATE_FIXED bytes, 8 per layer (cells, window), its hash
 *	tokens   n_tokens x int32
 *	data     per layer: a full layer: for each head its n K rows, then
 *	         for each head its n V rows; a ring layer: its cells' position
 *	         tags (int32, -1 = empty), then for each head the K rows of the
 *	         tagged cells in cell order, then the V rows likewise
 */

#define KV_STATE_VERSION 1
#define KV_STATE_NAME_MAX 64 /* bytes of the model name kept for listings */

/* What names a model for its states (the cache's shape is checked apart). */
struct kv_state_id {
	uint64_t model_bytes;               /* the GGUF file's size */
	uint64_t model_hash;                /* gguf_header_hash() */
	char model_name[KV_STATE_NAME_MAX]; /* general.name, shown by listings only */
};

/* Bytes a state of kv's current contents takes on disk. */
uint64_t kv_state_size(const struct kv_cache *kv);
/* A key for (model identity, KV type, cache shape): files are named by it. */
uint64_t kv_state_key(const struct kv_cache *kv, const struct kv_state_id *id);

/*
 * Write kv's state to fd from its current offset (which must be 0 of a new
 * file: the header is rewritten with pwrite at the end, once the checksums
 * are known).  stop (may be NULL) is asked about every MiB; when it returns
 * non-zero the write ends with -1 and error "interrupted".  0, or -1 with
 * error() naming the failure (strerror of a failed write).
 */
int kv_state_write(int fd, const struct kv_cache *kv, const struct kv_state_id *id,
		   int (*stop)(void *), void *ud);

struct kv_state_file;

/*
 * Open a state and check it against kv (shape and type) and id before
 * anything of kv is touched: header, size and the token list's checksum.
 * NULL with error() saying why ("saved with another model", "truncated",
 * "format version 2 (this palaver reads 1)", ...).
 */
struct kv_state_file *kv_state_open(const char *path, const struct kv_cache *kv,
				    const struct kv_state_id *id);
int kv_state_n_tokens(const struct kv_state_file *f);
const int32_t *kv_state_tokens(const struct kv_state_file *f);
/*
 * Read the K/V data into kv (directly into its cells) and check it.  0: kv
 * holds the state.  -1 with error(): the data failed a check or a read,
 * and kv is left empty (n = 0) since part of it was overwritten.
 */
int kv_state_read(struct kv_state_file *f, struct kv_cache *kv);
void kv_state_close(struct kv_state_file *f);

/* A state's header as a listing shows it: no shape checks. */
struct kv_state_info {
	uint32_t version;
	int n_tokens;
	enum kv_type type;
	char model_name[KV_STATE_NAME_MAX];
};
/* 0, or -1 with error() when the file is not a state of a version we read. */
int kv_state_peek(const char *path, struct kv_state_info *out);

#endif
