/* A fast 64-bit non-cryptographic hash (XXH64) for checksums and identities of files. */
#ifndef PALAVER_HASH_H
#define PALAVER_HASH_H

#include <stddef.h>
#include <stdint.h>

/*
 * XXH64, Yann Collet's xxHash in its 64-bit form, written here from the
 * algorithm's specification (doc/xxhash_spec.md in the xxHash repository):
 * several GB/s on one core, so that checksumming a saved KV cache of a few
 * hundred MiB costs less than reading it.  It detects corruption, not
 * tampering.  The streaming form gives the same value as the one-shot one
 * however the input is cut.
 */
struct hash64 {
	uint64_t acc[4];       /* the four lanes */
	uint64_t total;        /* bytes hashed so far */
	uint64_t seed;         /* as given to hash64_init */
	unsigned char buf[32]; /* a partial stripe (fill bytes) */
	size_t fill;
};

void hash64_init(struct hash64 *h, uint64_t seed);
void hash64_update(struct hash64 *h, const void *data, size_t n);
uint64_t hash64_final(const struct hash64 *h); /* h may go on being updated */
uint64_t hash64(const void *data, size_t n, uint64_t seed);

#endif
