/* Private to gpu/cuda: the context and the helpers that the operations' host code shares. */
#ifndef PALAVER_GPU_OPS_INTERNAL_H
#define PALAVER_GPU_OPS_INTERNAL_H

#include "common.cuh"
#include "cuda_ops.h"

struct cuda_ctx {
	int device;
	cudaStream_t stream;
	char name[256];
	char err[512];
	void *scratch; /* device: attention partials, sampling candidates, token ids */
	size_t scratch_bytes;
};

/* Records a message (printf-style) and returns -1. */
int ops_fail(struct cuda_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* 0 for cudaSuccess, else -1 with "WHAT: <the runtime's message>". */
int ops_cuda(struct cuda_ctx *c, cudaError_t e, const char *what);
/* After PV_LAUNCH: whether the launch was accepted (a kernel's own failure
 * may only show at the next synchronizing call). */
int ops_launched(struct cuda_ctx *c, const char *what);
/* Device scratch of at least `bytes` (its contents are not kept); NULL with
 * a message when it cannot grow. */
void *ops_scratch(struct cuda_ctx *c, size_t bytes);
/* Checks a weight matrix w: a supported type, rows of n elements in whole
 * blocks (chunks of 8 for the float types), row_bytes at least the row's
 * size, w and row_bytes multiples of 4 (F32) or 2.  -1 with a message
 * naming `what`. */
int ops_check_rows(struct cuda_ctx *c, const char *what, int type, const void *w, int64_t n,
		   size_t row_bytes);
/* Bytes of a row of n elements of a supported type (0 if not whole blocks). */
size_t ops_row_size(int type, int64_t n);

/* Calls F<TYPE>::run(args...) for a supported weight type (-1 for others:
 * callers have checked the type). */
template <template <int> class F, class... A> static inline int ops_by_type(int type, A... a)
{
	switch (type) {
	case QT_F32: return F<QT_F32>::run(a...);
	case QT_F16: return F<QT_F16>::run(a...);
	case QT_BF16: return F<QT_BF16>::run(a...);
	case QT_Q4_0: return F<QT_Q4_0>::run(a...);
	case QT_Q4_1: return F<QT_Q4_1>::run(a...);
	case QT_Q5_0: return F<QT_Q5_0>::run(a...);
	case QT_Q5_1: return F<QT_Q5_1>::run(a...);
	case QT_Q8_0: return F<QT_Q8_0>::run(a...);
	case QT_Q2_K: return F<QT_Q2_K>::run(a...);
	case QT_Q3_K: return F<QT_Q3_K>::run(a...);
	case QT_Q4_K: return F<QT_Q4_K>::run(a...);
	case QT_Q5_K: return F<QT_Q5_K>::run(a...);
	case QT_Q6_K: return F<QT_Q6_K>::run(a...);
	}
	return -1;
}

static inline unsigned ops_blocks(int64_t n, int per)
{
	return (unsigned)((n + per - 1) / per);
}

#endif
