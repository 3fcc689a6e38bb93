/* Checked allocation: out of memory is fatal here, input-sized buffers use the try_ forms. */
#ifndef PALAVER_XALLOC_H
#define PALAVER_XALLOC_H

#include <stddef.h>
#include <stdint.h>

/* These abort with a message on failure: use them for small, bounded
 * allocations only.  Anything whose size comes from input (weights, KV cache,
 * token buffers) must use try_alloc_array and report failure to the caller. */
void *xmalloc(size_t n);
void *xcalloc(size_t nmemb, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);

/* Grow *arr (element size sz) so that it holds at least `need` elements;
 * *alloc is the current capacity.  Growth is geometric. */
#define ALLOC_GROW(arr, need, alloc)                                                               \
	do {                                                                                       \
		if ((size_t)(need) > (size_t)(alloc)) {                                            \
			size_t alloc_new_ = ((size_t)(alloc) + 16) * 3 / 2;                        \
			if (alloc_new_ < (size_t)(need))                                           \
				alloc_new_ = (size_t)(need);                                       \
			(arr) = xrealloc_array((arr), alloc_new_, sizeof(*(arr)));                 \
			(alloc) = alloc_new_;                                                      \
		}                                                                                  \
	} while (0)

void *xrealloc_array(void *p, size_t nmemb, size_t size);

/* Overflow-checked size arithmetic: return 0 on success, -1 on overflow. */
static inline int size_mul(size_t a, size_t b, size_t *out)
{
	return __builtin_mul_overflow(a, b, out) ? -1 : 0;
}
static inline int size_add(size_t a, size_t b, size_t *out)
{
	return __builtin_add_overflow(a, b, out) ? -1 : 0;
}

/* Allocation whose size depends on input: NULL on overflow or failure, never aborts. */
void *try_alloc_array(size_t nmemb, size_t size);
/* Same, 64-byte aligned (free with free()). */
void *try_alloc_aligned(size_t nmemb, size_t size);

#endif
