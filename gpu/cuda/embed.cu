/* Embedding lookup: the rows of a (quantized) table for a list of token ids, dequantized. */
#include "dequant.cuh"
#include "ops_internal.h"

#define EMB_THREADS 128

template <int T>
__global__ void embed_kernel(const uint8_t *table, size_t row_bytes, int64_t n,
			     const int32_t *tokens, float *out, size_t out_stride)
{
	int64_t nchunks = n / 8;
	int t = blockIdx.x;
	const uint8_t *row = table + (size_t)tokens[t] * row_bytes;
	float *o = out + (size_t)t * out_stride;
	for (int64_t c = threadIdx.x; c < nchunks; c += EMB_THREADS) {
		float v[8];
		dequant8<T>(row, c, v);
		for (int i = 0; i < 8; i++)
			o[8 * c + i] = v[i];
	}
	if (qtype<T>::elems == 1) /* a float type's tail */
		for (int64_t i = 8 * nchunks + threadIdx.x; i < n; i += EMB_THREADS)
			o[i] = dequant1<T>(row, i);
}

template <int T> struct embed_run {
	static int run(struct cuda_ctx *c, const void *table, size_t row_bytes, int64_t n,
		       const int32_t *tokens, int ntok, float *out, size_t out_stride)
	{
		PV_LAUNCH(embed_kernel<T>, (unsigned)ntok, EMB_THREADS, 0, c->stream,
			  (const uint8_t *)table, row_bytes, n, tokens, out, out_stride);
		return ops_launched(c, "embed");
	}
};

int cuda_embed(struct cuda_ctx *c, int type, const void *table, size_t row_bytes, int n_vocab,
	       int64_t n, const int32_t *host_tokens, int ntok, float *out, size_t out_stride)
{
	if (ntok <= 0 || n_vocab <= 0 || out_stride < (size_t)n)
		return ops_fail(c, "embed: bad shape (%d tokens, vocabulary %d)", ntok, n_vocab);
	if (ops_check_rows(c, "embed", type, table, n, row_bytes) < 0)
		return -1;
	for (int i = 0; i < ntok; i++)
		if (host_tokens[i] < 0 || host_tokens[i] >= n_vocab)
			return ops_fail(c,
					"embed: token id %d is outside the vocabulary (%d tokens)",
					host_tokens[i], n_vocab);
	int32_t *ids = (int32_t *)ops_scratch(c, (size_t)ntok * sizeof(int32_t));
	if (!ids || cuda_upload(c, ids, host_tokens, (size_t)ntok * sizeof(int32_t)) < 0)
		return -1;
	/* the ids live in scratch, which a later operation may reuse: the stream
	 * orders that after this kernel */
	return ops_by_type<embed_run>(type, c, table, row_bytes, n, (const int32_t *)ids, ntok, out,
				      out_stride);
}
