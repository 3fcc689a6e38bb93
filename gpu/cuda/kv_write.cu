/* Stores new K or V rows into a layer's cache (n_head_kv x ctx_len x head_dim, F16 or F32). */
#include "ops_internal.h"

#define KVW_THREADS 128

template <class KV>
__global__ void kv_write_kernel(KV *cache, int ctx_len, int head_dim, const float *src,
				size_t tok_stride, int pos0)
{
	int t = blockIdx.x, h = blockIdx.y;
	const float *s = src + (size_t)t * tok_stride + (size_t)h * head_dim;
	KV *d = cache + ((size_t)h * ctx_len + (size_t)(pos0 + t)) * head_dim;
	for (int i = threadIdx.x; i < head_dim; i += KVW_THREADS)
		pv_store(&d[i], s[i]);
}

int cuda_kv_write(struct cuda_ctx *c, void *cache, int f16, int ctx_len, int n_head_kv,
		  int head_dim, const float *src, size_t tok_stride, int ntok, int pos0)
{
	if (ntok <= 0 || n_head_kv <= 0 || n_head_kv > 65535 || head_dim <= 0 ||
	    tok_stride < (size_t)n_head_kv * (size_t)head_dim)
		return ops_fail(c, "kv_write: bad shape (%d tokens of %d heads of %d)", ntok,
				n_head_kv, head_dim);
	if (pos0 < 0 || pos0 > ctx_len - ntok)
		return ops_fail(c, "kv_write: positions %d..%d are outside the cache (%d cells)",
				pos0, pos0 + ntok - 1, ctx_len);
	dim3 grid((unsigned)ntok, (unsigned)n_head_kv);
	if (f16)
		PV_LAUNCH(kv_write_kernel<uint16_t>, grid, KVW_THREADS, 0, c->stream,
			  (uint16_t *)cache, ctx_len, head_dim, src, tok_stride, pos0);
	else
		PV_LAUNCH(kv_write_kernel<float>, grid, KVW_THREADS, 0, c->stream, (float *)cache,
			  ctx_len, head_dim, src, tok_stride, pos0);
	return ops_launched(c, "kv_write");
}
