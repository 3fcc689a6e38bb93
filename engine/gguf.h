/* GGUF reader: a read-only memory map cut into metadata and tensor views. */
#ifndef PALAVER_GGUF_H
#define PALAVER_GGUF_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/*
 * gguf_open() maps the file read-only, parses and validates the header, every
 * metadata entry and every tensor info against the file size (overflow
 * checked), and returns a handle.  Nothing of the tensor data is read or
 * copied: tensors are views into the mapping, valid until gguf_close().
 * Any malformation is an error() naming the file, the item and the problem:
 *	'x.gguf': tensor 'blk.3.attn_q.weight' extends past end of file
 */

enum gguf_vtype {
	GGUF_TYPE_UINT8 = 0,
	GGUF_TYPE_INT8 = 1,
	GGUF_TYPE_UINT16 = 2,
	GGUF_TYPE_INT16 = 3,
	GGUF_TYPE_UINT32 = 4,
	GGUF_TYPE_INT32 = 5,
	GGUF_TYPE_FLOAT32 = 6,
	GGUF_TYPE_BOOL = 7,
	GGUF_TYPE_STRING = 8,
	GGUF_TYPE_ARRAY = 9,
	GGUF_TYPE_UINT64 = 10,
	GGUF_TYPE_INT64 = 11,
	GGUF_TYPE_FLOAT64 = 12,
	GGUF_TYPE_COUNT
};

/* A string inside the mapping: not NUL-terminated. */
struct gguf_str {
	uint64_t len;
	const char *data;
};

struct gguf_kv {
	char *key; /* NUL-terminated copy */
	enum gguf_vtype type;
	/* scalars: value points at the little-endian value in the mapping;
	 * strings: value points at a struct gguf_str held by the reader;
	 * arrays: arr_type / arr_n describe it, value points at the first
	 * element in the mapping (for string arrays use gguf_get_arr_str). */
	enum gguf_vtype arr_type;
	uint64_t arr_n;
	const void *value;
};

struct gguf_tensor {
	char *name;       /* NUL-terminated copy */
	int n_dims;       /* 1..4 */
	int64_t ne[4];    /* elements per dim, ne[0] innermost (contiguous); unused dims are 1 */
	int type;         /* enum quant_type id; may be one palaver cannot compute (see quant.h) */
	uint64_t offset;  /* from the start of the data section */
	uint64_t nbytes;  /* bytes of data */
	const void *data; /* view into the mapping */
};

struct gguf;

struct gguf *gguf_open(const char *path);
/* The same, ending with error "loading cancelled" soon after *cancel is set
 * by another thread (a header of millions of entries takes a while). */
struct gguf *gguf_open_cancellable(const char *path, const atomic_int *cancel);
void gguf_close(struct gguf *g);

const char *gguf_path(const struct gguf *g);
uint32_t gguf_version(const struct gguf *g);
uint64_t gguf_file_size(const struct gguf *g);
uint32_t gguf_alignment(const struct gguf *g);
uint64_t gguf_data_offset(const struct gguf *g); /* file offset of the data section */
const void *gguf_map(const struct gguf *g); /* the whole file's mapping (gguf_file_size bytes) */
/* A hash (XXH64) of the bytes before the data section: the header, every
 * metadata entry and the tensor table.  With the file size it names a
 * model without reading gigabytes of weights (saved KV states are keyed
 * by it); a file whose weights alone were rewritten in place keeps it. */
uint64_t gguf_header_hash(const struct gguf *g);

int64_t gguf_n_kv(const struct gguf *g);
const struct gguf_kv *gguf_kv_at(const struct gguf *g, int64_t i);
const struct gguf_kv *gguf_find_kv(const struct gguf *g, const char *key);

/* Typed getters: 0 on success; -1 with error() naming the key when it is
 * missing or of a type that cannot be converted without loss (any integer
 * type is accepted where the value fits; f32 accepts f32 and f64). */
int gguf_get_u32(const struct gguf *g, const char *key, uint32_t *out);
int gguf_get_i32(const struct gguf *g, const char *key, int32_t *out);
int gguf_get_u64(const struct gguf *g, const char *key, uint64_t *out);
int gguf_get_f32(const struct gguf *g, const char *key, float *out);
int gguf_get_bool(const struct gguf *g, const char *key, int *out);
int gguf_get_str(const struct gguf *g, const char *key, struct gguf_str *out);
/* The same, returning `def` silently when the key is absent (errors when present but wrong). */
int gguf_get_u32_or(const struct gguf *g, const char *key, uint32_t def, uint32_t *out);
int gguf_get_f32_or(const struct gguf *g, const char *key, float def, float *out);
int gguf_get_bool_or(const struct gguf *g, const char *key, int def, int *out);
/* Arrays: element type and count; data points at the first element (not for strings). */
int gguf_get_arr(const struct gguf *g, const char *key, enum gguf_vtype *type, uint64_t *n,
		 const void **data);
/* String arrays: all n elements as views (the reader indexes them at open). */
int gguf_get_arr_str(const struct gguf *g, const char *key, const struct gguf_str **strs,
		     uint64_t *n);

int64_t gguf_n_tensors(const struct gguf *g);
const struct gguf_tensor *gguf_tensor_at(const struct gguf *g, int64_t i);
const struct gguf_tensor *gguf_find_tensor(const struct gguf *g, const char *name);

const char *gguf_vtype_name(enum gguf_vtype t);

/* Tensor type ids as ggml numbers them, including the ones palaver cannot
 * compute (IQ*, TQ*, MXFP4): name ("Q4_K") and block geometry.  The name is
 * NULL and the block call returns -1 for ids ggml never had or retired. */
const char *gguf_type_name(int type);
int gguf_type_block(int type, int *block_elems, size_t *block_bytes);

/* Note: scalar and array values point into the mapping and are generally
 * unaligned: read them with memcpy, not by dereferencing a typed pointer. */

#endif
