/* Element-wise operations: residual add, bias rows, scale, soft-capping. */
#include "ops_internal.h"

#define EW_THREADS 256

static unsigned ew_blocks(int64_t n)
{
	unsigned b = ops_blocks(n, EW_THREADS);
	return b > 65535 ? 65535 : b;
}

#define EW_LOOP(i, n)                                                                              \
	for (int64_t i = (int64_t)blockIdx.x * EW_THREADS + threadIdx.x; i < (n);                  \
	     i += (int64_t)gridDim.x * EW_THREADS)

__global__ void add_kernel(float *out, const float *a, const float *b, int64_t n)
{
	EW_LOOP(i, n)
	out[i] = a[i] + b[i];
}

__global__ void add_rows_kernel(float *x, size_t stride, const float *v, int rows, int n)
{
	EW_LOOP(i, (int64_t)rows * n)
	x[(size_t)(i / n) * stride + (size_t)(i % n)] += v[i % n];
}

__global__ void scale_kernel(float *x, float s, int64_t n)
{
	EW_LOOP(i, n)
	x[i] *= s;
}

__global__ void softcap_kernel(float *x, float cap, int64_t n)
{
	EW_LOOP(i, n)
	x[i] = cap * tanhf(x[i] / cap);
}

int cuda_add(struct cuda_ctx *c, float *out, const float *a, const float *b, int64_t n)
{
	if (n <= 0)
		return ops_fail(c, "add: %lld elements", (long long)n);
	PV_LAUNCH(add_kernel, ew_blocks(n), EW_THREADS, 0, c->stream, out, a, b, n);
	return ops_launched(c, "add");
}

int cuda_add_rows(struct cuda_ctx *c, float *x, size_t stride, const float *v, int rows, int n)
{
	if (rows <= 0 || n <= 0 || stride < (size_t)n)
		return ops_fail(c, "add_rows: bad shape (%d rows of %d, stride %zu)", rows, n,
				stride);
	PV_LAUNCH(add_rows_kernel, ew_blocks((int64_t)rows * n), EW_THREADS, 0, c->stream, x,
		  stride, v, rows, n);
	return ops_launched(c, "add_rows");
}

int cuda_scale(struct cuda_ctx *c, float *x, float s, int64_t n)
{
	if (n <= 0)
		return ops_fail(c, "scale: %lld elements", (long long)n);
	PV_LAUNCH(scale_kernel, ew_blocks(n), EW_THREADS, 0, c->stream, x, s, n);
	return ops_launched(c, "scale");
}

int cuda_softcap(struct cuda_ctx *c, float *x, float cap, int64_t n)
{
	if (n <= 0 || !(cap > 0.0f))
		return ops_fail(c, "softcap: %lld elements, cap %g", (long long)n, (double)cap);
	PV_LAUNCH(softcap_kernel, ew_blocks(n), EW_THREADS, 0, c->stream, x, cap, n);
	return ops_launched(c, "softcap");
}
