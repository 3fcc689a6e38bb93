/* XXH64 (one-shot and streaming) from the xxHash specification. */
#include "hash.h"

#include <string.h>

/* The five primes of the specification. */
#define P1 0x9E3779B185EBCA87ull
#define P2 0xC2B2AE3D27D4EB4Full
#define P3 0x165667B19E3779F9ull
#define P4 0x85EBCA77C2B2AE63ull
#define P5 0x27D4EB2F165667C5ull

static uint64_t rotl(uint64_t x, int r)
{
	return (x << r) | (x >> (64 - r));
}

/* Little-endian loads whatever the host and alignment (memcpy compiles to one move). */
static uint64_t le64(const unsigned char *p)
{
	uint64_t v;
	memcpy(&v, p, sizeof(v));
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
	v = __builtin_bswap64(v);
#endif
	return v;
}

static uint32_t le32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t lane(uint64_t acc, uint64_t in)
{
	acc += in * P2;
	acc = rotl(acc, 31);
	return acc * P1;
}

static uint64_t merge(uint64_t h, uint64_t acc)
{
	h ^= lane(0, acc);
	return h * P1 + P4;
}

/* Consume whole 32-byte stripes of p; returns the bytes used. */
static size_t stripes(uint64_t acc[4], const unsigned char *p, size_t n)
{
	size_t done = 0;
	for (; n - done >= 32; done += 32)
		for (int i = 0; i < 4; i++)
			acc[i] = lane(acc[i], le64(p + done + 8 * (size_t)i));
	return done;
}

void hash64_init(struct hash64 *h, uint64_t seed)
{
	memset(h, 0, sizeof(*h));
	h->seed = seed;
	h->acc[0] = seed + P1 + P2;
	h->acc[1] = seed + P2;
	h->acc[2] = seed;
	h->acc[3] = seed - P1;
}

void hash64_update(struct hash64 *h, const void *data, size_t n)
{
	const unsigned char *p = data;
	h->total += n;
	if (h->fill) {
		size_t take = 32 - h->fill < n ? 32 - h->fill : n;
		memcpy(h->buf + h->fill, p, take);
		h->fill += take;
		p += take;
		n -= take;
		if (h->fill < 32)
			return;
		stripes(h->acc, h->buf, 32);
		h->fill = 0;
	}
	size_t used = stripes(h->acc, p, n);
	memcpy(h->buf, p + used, n - used);
	h->fill = n - used;
}

uint64_t hash64_final(const struct hash64 *h)
{
	uint64_t v;
	if (h->total >= 32) {
		v = rotl(h->acc[0], 1) + rotl(h->acc[1], 7) + rotl(h->acc[2], 12) +
		    rotl(h->acc[3], 18);
		for (int i = 0; i < 4; i++)
			v = merge(v, h->acc[i]);
	} else {
		v = h->seed + P5;
	}
	v += h->total;
	const unsigned char *p = h->buf, *end = h->buf + h->fill;
	for (; end - p >= 8; p += 8) {
		v ^= lane(0, le64(p));
		v = rotl(v, 27) * P1 + P4;
	}
	if (end - p >= 4) {
		v ^= (uint64_t)le32(p) * P1;
		v = rotl(v, 23) * P2 + P3;
		p += 4;
	}
	for (; p < end; p++) {
		v ^= *p * P5;
		v = rotl(v, 11) * P1;
	}
	/* the final avalanche */
	v ^= v >> 33;
	v *= P2;
	v ^= v >> 29;
	v *= P3;
	v ^= v >> 32;
	return v;
}

uint64_t hash64(const void *data, size_t n, uint64_t seed)
{
	struct hash64 h;
	hash64_init(&h, seed);
	hash64_update(&h, data, n);
	return hash64_final(&h);
}
