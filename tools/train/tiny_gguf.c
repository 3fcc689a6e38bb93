/* tiny_gguf: turn the raw dump of export.py into a GGUF file with palaver's own GGUF writer. */
#include "gguf_write.h"
#include "report.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * DESIGN
 * The raw file (format in tools/train/export.py) lists metadata and tensors
 * as records.  GGUF wants every tensor's name and shape before the first
 * byte of data, so the file is read twice: the first pass adds metadata
 * and tensor infos to the writer and remembers where each tensor's data
 * lies; the second seeks to each and streams it to the writer in pieces.
 * Memory: the metadata arrays (the vocabulary) and one 1 MiB buffer.
 */

enum { MAX_TENSORS = 1024, CHUNK = 1 << 20 };

struct src_tensor {
	long offset;     /* data position in the raw file */
	uint64_t nbytes; /* data bytes */
};

static FILE *in;
static const char *in_path;

static void fail(const char *what)
{
	fprintf(stderr, "palaver: '%s': %s\n", in_path, what);
	exit(1);
}

static void rd(void *p, size_t n)
{
	if (n && fread(p, 1, n, in) != n)
		fail(ferror(in) ? strerror(errno) : "truncated raw file");
}

static uint32_t rd_u32(void)
{
	uint32_t v;
	rd(&v, 4);
	return v;
}

static uint64_t rd_u64(void)
{
	uint64_t v;
	rd(&v, 8);
	return v;
}

/* A length-prefixed string, malloc'd and NUL-terminated (the length in *len). */
static char *rd_str(uint32_t *len)
{
	uint32_t n = rd_u32();
	if (n > (1u << 26))
		fail("implausible string length");
	char *s = malloc((size_t)n + 1);
	if (!s)
		fail("out of memory");
	rd(s, n);
	s[n] = 0;
	if (len)
		*len = n;
	return s;
}

/* n elements of size sz, overflow-checked. */
static void *rd_arr(uint64_t n, size_t sz)
{
	if (n > (1u << 26))
		fail("implausible array length");
	void *p = malloc((size_t)n * sz + 1);
	if (!p)
		fail("out of memory");
	rd(p, (size_t)n * sz);
	return p;
}

static void check(int rc)
{
	if (rc < 0) {
		fprintf(stderr, "palaver: %s\n", error_message());
		exit(1);
	}
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: tiny_gguf RAW OUTPUT.gguf\n");
		return 2;
	}
	in_path = argv[1];
	in = fopen(in_path, "rb");
	if (!in) {
		fprintf(stderr, "palaver: cannot open '%s': %s\n", in_path, strerror(errno));
		return 1;
	}
	char magic[4];
	rd(magic, 4);
	if (memcmp(magic, "PTNY", 4) || rd_u32() != 1)
		fail("not a palaver-tiny raw dump (version 1)");

	struct gguf_writer *w = gguf_writer_new();
	static struct src_tensor src[MAX_TENSORS];
	int n_tensors = 0;
	for (;;) {
		unsigned char kind;
		rd(&kind, 1);
		if (kind == 0)
			break;
		char *key = rd_str(NULL);
		switch (kind) {
		case 1: {
			uint32_t n;
			char *s = rd_str(&n);
			check(gguf_writer_add_str(w, key, s, n));
			free(s);
			break;
		}
		case 2:
			check(gguf_writer_add_u32(w, key, rd_u32()));
			break;
		case 3: {
			float f;
			rd(&f, 4);
			check(gguf_writer_add_f32(w, key, f));
			break;
		}
		case 4: {
			unsigned char b;
			rd(&b, 1);
			check(gguf_writer_add_bool(w, key, b != 0));
			break;
		}
		case 5: {
			uint64_t n = rd_u64();
			if (n > (1u << 24))
				fail("implausible string array length");
			struct gguf_str *strs = calloc(n ? n : 1, sizeof(*strs));
			char **own = calloc(n ? n : 1, sizeof(*own));
			if (!strs || !own)
				fail("out of memory");
			for (uint64_t i = 0; i < n; i++) {
				uint32_t len;
				own[i] = rd_str(&len);
				strs[i].len = len;
				strs[i].data = own[i];
			}
			check(gguf_writer_add_arr_str(w, key, strs, n));
			for (uint64_t i = 0; i < n; i++)
				free(own[i]);
			free(own);
			free(strs);
			break;
		}
		case 6:
		case 7: {
			uint64_t n = rd_u64();
			void *p = rd_arr(n, 4);
			check(gguf_writer_add_arr(w, key, kind == 6 ? GGUF_TYPE_FLOAT32 : GGUF_TYPE_INT32,
						  n, p));
			free(p);
			break;
		}
		case 8: {
			uint32_t nd = rd_u32();
			int64_t ne[4];
			if (nd < 1 || nd > 4)
				fail("tensor with a bad number of dimensions");
			rd(ne, 8 * (size_t)nd);
			uint32_t type = rd_u32();
			uint64_t nbytes = rd_u64();
			if (n_tensors == MAX_TENSORS)
				fail("too many tensors");
			check(gguf_writer_add_tensor(w, key, (int)nd, ne, (int)type));
			if (gguf_writer_tensor_bytes(w, n_tensors) != nbytes)
				fail("tensor data size does not match its shape");
			src[n_tensors].offset = ftell(in);
			src[n_tensors].nbytes = nbytes;
			if (fseek(in, (long)nbytes, SEEK_CUR) != 0)
				fail("truncated raw file");
			n_tensors++;
			break;
		}
		default:
			fail("unknown record kind");
		}
		free(key);
	}

	check(gguf_writer_begin(w, argv[2]));
	char *buf = malloc(CHUNK);
	if (!buf)
		fail("out of memory");
	for (int i = 0; i < n_tensors; i++) {
		if (fseek(in, src[i].offset, SEEK_SET) != 0)
			fail("cannot seek");
		for (uint64_t done = 0; done < src[i].nbytes;) {
			size_t n = src[i].nbytes - done < CHUNK ? (size_t)(src[i].nbytes - done) : CHUNK;
			rd(buf, n);
			check(gguf_writer_write_part(w, buf, n));
			done += n;
		}
	}
	check(gguf_writer_finish(w));
	gguf_writer_free(w);
	free(buf);
	fclose(in);
	return 0;
}
