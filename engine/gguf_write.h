/* GGUF writer: metadata and tensor infos in memory, tensor data streamed to disk. */
#ifndef PALAVER_GGUF_WRITE_H
#define PALAVER_GGUF_WRITE_H

#include <stddef.h>
#include <stdint.h>

#include "gguf.h"

/*
 * Usage: gguf_writer_new(); add metadata and tensor infos (name, dims, type)
 * in file order; gguf_writer_begin(path) writes the header; then
 * gguf_writer_write_tensor() once per tensor, in the order they were added
 * (a tensor may be written in several pieces with gguf_writer_write_part);
 * gguf_writer_finish() checks that every byte was written, and renames the
 * temporary "PATH.tmp" to PATH, so a reader never sees a half-written file.
 * Memory held is the header only: one tensor's data at a time is the
 * caller's.  Every function returns 0 or -1 with error().  The output is
 * GGUF version 3, little-endian, alignment 32 unless general.alignment is
 * added (a u32 power of two).
 */
struct gguf_writer;

struct gguf_writer *gguf_writer_new(void);
/* Removes a temporary file left by an unfinished writer. */
void gguf_writer_free(struct gguf_writer *w);

int gguf_writer_add_u32(struct gguf_writer *w, const char *key, uint32_t v);
int gguf_writer_add_i32(struct gguf_writer *w, const char *key, int32_t v);
int gguf_writer_add_u64(struct gguf_writer *w, const char *key, uint64_t v);
int gguf_writer_add_f32(struct gguf_writer *w, const char *key, float v);
int gguf_writer_add_bool(struct gguf_writer *w, const char *key, int v);
int gguf_writer_add_str(struct gguf_writer *w, const char *key, const char *s, size_t len);
/* An array of fixed-size elements (not strings, not arrays), n elements at data. */
int gguf_writer_add_arr(struct gguf_writer *w, const char *key, enum gguf_vtype type, uint64_t n,
			const void *data);
int gguf_writer_add_arr_str(struct gguf_writer *w, const char *key, const struct gguf_str *strs,
			    uint64_t n);
/* Copy one entry of an open file, of any type, under its own key. */
int gguf_writer_copy_kv(struct gguf_writer *w, const struct gguf *src, const struct gguf_kv *kv);

/* ne[0] innermost; n_dims 1..4; type a ggml type id known to gguf_type_block(). */
int gguf_writer_add_tensor(struct gguf_writer *w, const char *name, int n_dims, const int64_t *ne,
			   int type);
/* Bytes the i-th added tensor takes (for the caller's buffer). */
uint64_t gguf_writer_tensor_bytes(const struct gguf_writer *w, int64_t i);

int gguf_writer_begin(struct gguf_writer *w, const char *path);
/* Data for the current tensor; parts must add up to its size exactly. */
int gguf_writer_write_part(struct gguf_writer *w, const void *data, size_t n);
int gguf_writer_write_tensor(struct gguf_writer *w, const void *data, size_t n);
int gguf_writer_finish(struct gguf_writer *w);

#endif
