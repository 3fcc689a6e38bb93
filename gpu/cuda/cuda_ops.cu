/* The CUDA context: device, stream, scratch, messages; device memory; shared checks. */
#include "ops_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void vrecord(char *buf, size_t size, const char *fmt, va_list ap)
{
	vsnprintf(buf, size, fmt, ap);
}

int ops_fail(struct cuda_ctx *c, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vrecord(c->err, sizeof(c->err), fmt, ap);
	va_end(ap);
	return -1;
}

/* The runtime's sentence, and under emulation the emulator's account of it. */
static void describe(cudaError_t e, char *buf, size_t size)
{
#if defined(__CUDACC__)
	snprintf(buf, size, "%s", cudaGetErrorString(e));
#else
	const char *why = pv_emu_error();
	if (*why)
		snprintf(buf, size, "%s (%s)", cudaGetErrorString(e), why);
	else
		snprintf(buf, size, "%s", cudaGetErrorString(e));
#endif
}

int ops_cuda(struct cuda_ctx *c, cudaError_t e, const char *what)
{
	char why[400];
	if (e == cudaSuccess)
		return 0;
	cudaGetLastError(); /* the error is reported here; do not leave it for the next call */
	describe(e, why, sizeof(why));
	return ops_fail(c, "%s: %s", what, why);
}

int ops_launched(struct cuda_ctx *c, const char *what)
{
	return ops_cuda(c, cudaGetLastError(), what);
}

static void human(size_t bytes, char *buf, size_t size)
{
	if (bytes >= (size_t)1 << 30)
		snprintf(buf, size, "%.1f GiB", (double)bytes / (1 << 30));
	else if (bytes >= (size_t)1 << 20)
		snprintf(buf, size, "%.1f MiB", (double)bytes / (1 << 20));
	else
		snprintf(buf, size, "%zu bytes", bytes);
}

int cuda_device_count(void)
{
	int n = 0;
	if (cudaGetDeviceCount(&n) != cudaSuccess) {
		cudaGetLastError();
		return 0;
	}
	return n;
}

struct cuda_ctx *cuda_open(int device, char *err, size_t err_size)
{
	struct cuda_ctx *c = (struct cuda_ctx *)calloc(1, sizeof(*c));
	cudaDeviceProp prop;
	int n = cuda_device_count();
	if (!c) {
		snprintf(err, err_size, "out of memory");
		return NULL;
	}
	c->device = device;
	if (device < 0 || device >= n) {
		snprintf(err, err_size, "no CUDA device %d (%d found)", device, n);
		free(c);
		return NULL;
	}
	if (ops_cuda(c, cudaSetDevice(device), "cannot select the CUDA device") < 0 ||
	    ops_cuda(c, cudaGetDeviceProperties(&prop, device), "cannot query the CUDA device") <
		    0 ||
	    ops_cuda(c, cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking),
		     "cannot create a CUDA stream") < 0) {
		snprintf(err, err_size, "%s", c->err);
		free(c);
		return NULL;
	}
	snprintf(c->name, sizeof(c->name), "%s", prop.name);
	return c;
}

void cuda_close(struct cuda_ctx *c)
{
	if (!c)
		return;
	cudaStreamSynchronize(c->stream);
	cudaFree(c->scratch);
	cudaStreamDestroy(c->stream);
	cudaGetLastError();
	free(c);
}

const char *cuda_error(const struct cuda_ctx *c)
{
	return c->err;
}

const char *cuda_device_name(const struct cuda_ctx *c)
{
	return c->name;
}

int cuda_mem_info(struct cuda_ctx *c, size_t *free_bytes, size_t *total_bytes)
{
	return ops_cuda(c, cudaMemGetInfo(free_bytes, total_bytes), "cannot query GPU memory");
}

void *cuda_alloc(struct cuda_ctx *c, size_t bytes, const char *what)
{
	void *p = NULL;
	cudaError_t e = cudaMalloc(&p, bytes ? bytes : 1);
	if (e != cudaSuccess) {
		char want[32], have[32], total[32];
		size_t fr = 0, tot = 0;
		cudaGetLastError();
		cudaMemGetInfo(&fr, &tot);
		cudaGetLastError();
		human(bytes, want, sizeof(want));
		human(fr, have, sizeof(have));
		human(tot, total, sizeof(total));
		ops_fail(c, "cannot allocate %s on the GPU for '%s': %s (%s free of %s)", want,
			 what, cudaGetErrorString(e), have, total);
		return NULL;
	}
	return p;
}

void cuda_free(struct cuda_ctx *c, void *p)
{
	(void)c;
	if (p && cudaFree(p) != cudaSuccess)
		cudaGetLastError();
}

int cuda_upload(struct cuda_ctx *c, void *dst, const void *host_src, size_t bytes)
{
	return ops_cuda(c, cudaMemcpyAsync(dst, host_src, bytes, cudaMemcpyHostToDevice, c->stream),
			"copy to the GPU");
}

int cuda_download(struct cuda_ctx *c, void *host_dst, const void *src, size_t bytes)
{
	if (ops_cuda(c, cudaMemcpyAsync(host_dst, src, bytes, cudaMemcpyDeviceToHost, c->stream),
		     "copy from the GPU") < 0)
		return -1;
	return cuda_sync(c);
}

int cuda_memset(struct cuda_ctx *c, void *dst, int byte, size_t bytes)
{
	return ops_cuda(c, cudaMemsetAsync(dst, byte, bytes, c->stream), "GPU memset");
}

int cuda_sync(struct cuda_ctx *c)
{
	return ops_cuda(c, cudaStreamSynchronize(c->stream), "GPU");
}

void *ops_scratch(struct cuda_ctx *c, size_t bytes)
{
	if (bytes <= c->scratch_bytes)
		return c->scratch;
	if (c->scratch) {
		/* queued kernels may still use it */
		if (cuda_sync(c) < 0)
			return NULL;
		cudaFree(c->scratch);
		c->scratch = NULL;
		c->scratch_bytes = 0;
	}
	c->scratch = cuda_alloc(c, bytes, "scratch");
	if (c->scratch)
		c->scratch_bytes = bytes;
	return c->scratch;
}

int cuda_reserve(struct cuda_ctx *c, size_t bytes)
{
	return ops_scratch(c, bytes) ? 0 : -1;
}

/* ---- weight rows ---- */

static int block_of(int type, int *elems, int *bytes)
{
	switch (type) {
	case QT_F32: *elems = 1, *bytes = 4; return 0;
	case QT_F16:
	case QT_BF16: *elems = 1, *bytes = 2; return 0;
	case QT_Q4_0: *elems = QK4_0, *bytes = (int)sizeof(struct block_q4_0); return 0;
	case QT_Q4_1: *elems = QK4_1, *bytes = (int)sizeof(struct block_q4_1); return 0;
	case QT_Q5_0: *elems = QK5_0, *bytes = (int)sizeof(struct block_q5_0); return 0;
	case QT_Q5_1: *elems = QK5_1, *bytes = (int)sizeof(struct block_q5_1); return 0;
	case QT_Q2_K: *elems = QK_K, *bytes = (int)sizeof(struct block_q2_K); return 0;
	case QT_Q3_K: *elems = QK_K, *bytes = (int)sizeof(struct block_q3_K); return 0;
	case QT_Q8_0: *elems = QK8_0, *bytes = (int)sizeof(struct block_q8_0); return 0;
	case QT_Q4_K: *elems = QK_K, *bytes = (int)sizeof(struct block_q4_K); return 0;
	case QT_Q5_K: *elems = QK_K, *bytes = (int)sizeof(struct block_q5_K); return 0;
	case QT_Q6_K: *elems = QK_K, *bytes = (int)sizeof(struct block_q6_K); return 0;
	}
	return -1;
}

int cuda_type_supported(int type)
{
	int e, b;
	return block_of(type, &e, &b) == 0;
}

int cuda_rows_supported(int type, int64_t n)
{
	return ops_row_size(type, n) > 0;
}

size_t ops_row_size(int type, int64_t n)
{
	int e, b;
	if (block_of(type, &e, &b) < 0 || n <= 0 || n % e)
		return 0;
	return (size_t)(n / e) * (size_t)b;
}

int ops_check_rows(struct cuda_ctx *c, const char *what, int type, const void *w, int64_t n,
		   size_t row_bytes)
{
	int e, b;
	if (block_of(type, &e, &b) < 0)
		return ops_fail(c, "%s: weight type %d is not supported by the CUDA kernels", what,
				type);
	if (n <= 0 || n % e)
		return ops_fail(c, "%s: rows of %lld elements are not whole blocks of %d", what,
				(long long)n, e);
	if (row_bytes < ops_row_size(type, n))
		return ops_fail(c, "%s: row stride %zu is less than a row's %zu bytes", what,
				row_bytes, ops_row_size(type, n));
	/* F32 rows are read as floats, all others in 16-bit or byte loads */
	size_t align = type == QT_F32 ? 4 : 2;
	if (row_bytes % align || (uintptr_t)w % align)
		return ops_fail(c, "%s: rows are not %zu-byte aligned", what, align);
	return 0;
}
