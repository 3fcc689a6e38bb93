/* The KV cache's rows: new K or V rows stored, rows moved (the context shift), cached keys re-rotated. */

/*
 * A layer's cache tensor is n_head_kv x cells x head_dim, F16 bits or F32.
 * A full layer's cell p holds position p; a sliding-window layer's cache
 * is a ring (engine/kv_cache.h), whose cell p % cells holds position p.
 */
#include "ops_internal.h"

#define KVW_THREADS 128

template <class KV>
__global__ void kv_write_kernel(KV *cache, int cells, int ring, int head_dim, const float *src,
				size_t tok_stride, int pos0)
{
	int t = blockIdx.x, h = blockIdx.y, p = pos0 + t;
	const float *s = src + (size_t)t * tok_stride + (size_t)h * head_dim;
	KV *d = cache + ((size_t)h * cells + (size_t)(ring ? p % cells : p)) * head_dim;
	for (int i = threadIdx.x; i < head_dim; i += KVW_THREADS)
		pv_store(&d[i], s[i]);
}

int cuda_kv_write(struct cuda_ctx *c, void *cache, int f16, int cells, int ring, int n_head_kv,
		  int head_dim, const float *src, size_t tok_stride, int ntok, int pos0)
{
	if (ntok <= 0 || n_head_kv <= 0 || n_head_kv > 65535 || head_dim <= 0 ||
	    tok_stride < (size_t)n_head_kv * (size_t)head_dim)
		return ops_fail(c, "kv_write: bad shape (%d tokens of %d heads of %d)", ntok,
				n_head_kv, head_dim);
	if (pos0 < 0 || (ring ? ntok > cells : pos0 > cells - ntok))
		return ops_fail(c, "kv_write: positions %d..%d are outside the cache (%d cells%s)",
				pos0, pos0 + ntok - 1, cells, ring ? ", a ring" : "");
	dim3 grid((unsigned)ntok, (unsigned)n_head_kv);
	if (f16)
		PV_LAUNCH(kv_write_kernel<uint16_t>, grid, KVW_THREADS, 0, c->stream,
			  (uint16_t *)cache, cells, ring, head_dim, src, tok_stride, pos0);
	else
		PV_LAUNCH(kv_write_kernel<float>, grid, KVW_THREADS, 0, c->stream, (float *)cache,
			  cells, ring, head_dim, src, tok_stride, pos0);
	return ops_launched(c, "kv_write");
}

/* ---- moving rows: gather into scratch, then scatter, so sources and
 * destinations may overlap ---- */

template <class KV>
__global__ void kv_gather_kernel(const KV *cache, int cells, int head_dim, const int32_t *idx,
				 KV *stage)
{
	int r = blockIdx.x, h = blockIdx.y;
	const KV *s = cache + ((size_t)h * cells + (size_t)idx[r]) * head_dim;
	KV *d = stage + ((size_t)h * gridDim.x + (size_t)r) * head_dim;
	for (int i = threadIdx.x; i < head_dim; i += KVW_THREADS)
		d[i] = s[i];
}

template <class KV>
__global__ void kv_scatter_kernel(KV *cache, int cells, int head_dim, const int32_t *idx,
				  const KV *stage)
{
	int r = blockIdx.x, h = blockIdx.y;
	const KV *s = stage + ((size_t)h * gridDim.x + (size_t)r) * head_dim;
	KV *d = cache + ((size_t)h * cells + (size_t)idx[r]) * head_dim;
	for (int i = threadIdx.x; i < head_dim; i += KVW_THREADS)
		d[i] = s[i];
}

template <class KV>
static int kv_move_t(struct cuda_ctx *c, KV *cache, int cells, int n_head_kv, int head_dim,
		     const int32_t *idx, int n)
{
	size_t stage_bytes = (size_t)n * n_head_kv * head_dim * sizeof(KV);
	size_t ids = ((size_t)2 * n * sizeof(int32_t) + 255) & ~(size_t)255;
	char *s = (char *)ops_scratch(c, ids + stage_bytes);
	if (!s)
		return -1;
	if (cuda_upload(c, s, idx, (size_t)2 * n * sizeof(int32_t)) < 0)
		return -1;
	dim3 grid((unsigned)n, (unsigned)n_head_kv);
	const int32_t *src = (const int32_t *)s, *dst = src + n;
	KV *stage = (KV *)(s + ids);
	PV_LAUNCH(kv_gather_kernel<KV>, grid, KVW_THREADS, 0, c->stream, cache, cells, head_dim,
		  src, stage);
	if (ops_launched(c, "kv_move gather") < 0)
		return -1;
	PV_LAUNCH(kv_scatter_kernel<KV>, grid, KVW_THREADS, 0, c->stream, cache, cells, head_dim,
		  dst, stage);
	return ops_launched(c, "kv_move scatter");
}

int cuda_kv_move(struct cuda_ctx *c, void *cache, int f16, int cells, int n_head_kv, int head_dim,
		 const int32_t *host_cells, int n)
{
	if (n <= 0 || n > 65535 || n_head_kv <= 0 || n_head_kv > 65535 || head_dim <= 0)
		return ops_fail(c, "kv_move: bad shape (%d rows of %d heads of %d)", n, n_head_kv,
				head_dim);
	for (int i = 0; i < 2 * n; i++)
		if (host_cells[i] < 0 || host_cells[i] >= cells)
			return ops_fail(c, "kv_move: cell %d is outside the cache (%d cells)",
					host_cells[i], cells);
	if (f16)
		return kv_move_t(c, (uint16_t *)cache, cells, n_head_kv, head_dim, host_cells, n);
	return kv_move_t(c, (float *)cache, cells, n_head_kv, head_dim, host_cells, n);
}

/* ---- turning cached keys (the context shift) ---- */

template <class KV>
__global__ void kv_rope_kernel(KV *cache, int cells, int head_dim, const int32_t *idx, int n_rot,
			       int neox, float theta_scale, float freq_scale, const float *ff,
			       float pos)
{
	int r = blockIdx.x, h = blockIdx.y, half_rot = n_rot / 2;
	KV *v = cache + ((size_t)h * cells + (size_t)idx[r]) * head_dim;
	for (int i = threadIdx.x; i < half_rot; i += KVW_THREADS) {
		float theta = pos * powf(theta_scale, (float)i);
		if (ff)
			theta /= ff[i];
		theta *= freq_scale;
		float cs = cosf(theta), sn = sinf(theta);
		int ia = neox ? i : 2 * i, ib = neox ? i + half_rot : 2 * i + 1;
		float a = pv_load(&v[ia]), b = pv_load(&v[ib]);
		pv_store(&v[ia], a * cs - b * sn);
		pv_store(&v[ib], a * sn + b * cs);
	}
}

int cuda_kv_rope(struct cuda_ctx *c, const struct cuda_rope_params *r, void *cache, int f16,
		 int cells, int n_head_kv, int head_dim, const int32_t *host_cells, int n, int pos)
{
	if (n <= 0 || n > 65535 || n_head_kv <= 0 || n_head_kv > 65535 || head_dim <= 0)
		return ops_fail(c, "kv_rope: bad shape (%d rows of %d heads of %d)", n, n_head_kv,
				head_dim);
	if (r->n_rot <= 0 || r->n_rot % 2 || r->n_rot > head_dim)
		return ops_fail(c, "kv_rope: %d rotated dimensions do not fit heads of %d",
				r->n_rot, head_dim);
	for (int i = 0; i < n; i++)
		if (host_cells[i] < 0 || host_cells[i] >= cells)
			return ops_fail(c, "kv_rope: cell %d is outside the cache (%d cells)",
					host_cells[i], cells);
	int32_t *idx = (int32_t *)ops_scratch(c, (size_t)n * sizeof(int32_t));
	if (!idx || cuda_upload(c, idx, host_cells, (size_t)n * sizeof(int32_t)) < 0)
		return -1;
	float theta_scale = powf(r->base, -2.0f / (float)r->n_rot);
	dim3 grid((unsigned)n, (unsigned)n_head_kv);
	if (f16)
		PV_LAUNCH(kv_rope_kernel<uint16_t>, grid, KVW_THREADS, 0, c->stream,
			  (uint16_t *)cache, cells, head_dim, idx, r->n_rot, r->neox, theta_scale,
			  r->freq_scale, r->freq_factors, (float)pos);
	else
		PV_LAUNCH(kv_rope_kernel<float>, grid, KVW_THREADS, 0, c->stream, (float *)cache,
			  cells, head_dim, idx, r->n_rot, r->neox, theta_scale, r->freq_scale,
			  r->freq_factors, (float)pos);
	return ops_launched(c, "kv_rope");
}
