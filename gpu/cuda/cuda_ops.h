/* The CUDA kernels' C interface: context, device buffers, one function per operation. */

/*
 * Everything here is what an engine backend calls; it is plain C so that
 * engine/ can include it.  Conventions:
 *   - Functions return 0, or -1 after recording a message that
 *     cuda_error() returns (git style: lowercase, the subject in quotes).
 *     They never print and never exit.
 *   - Pointers named as device pointers are cuda_alloc() memory; "host"
 *     marks the few that are not.  Sizes and strides count elements
 *     (floats) unless they say bytes.
 *   - Operations are queued on the context's stream in call order;
 *     cuda_download(), cuda_sync(), cuda_argmax() and cuda_topk() wait for
 *     what was queued before them.  A kernel failure may therefore be
 *     reported by a later call.
 *   - Weight types are engine/quant.h's ids (GGUF numbering) in their block
 *     layouts: F32, F16, BF16, Q4_0, Q8_0, Q4_K, Q5_K, Q6_K.
 */
#ifndef PALAVER_CUDA_OPS_H
#define PALAVER_CUDA_OPS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct cuda_ctx;

/* ---- devices, contexts, memory ---- */

/* Devices present (0 when there are none or the driver cannot say). */
int cuda_device_count(void);
/* A context on `device`, with its own stream; NULL with the reason in err. */
struct cuda_ctx *cuda_open(int device, char *err, size_t err_size);
void cuda_close(struct cuda_ctx *c);
/* The last failure's message ("" if none). */
const char *cuda_error(const struct cuda_ctx *c);
/* The device's name, e.g. "NVIDIA H100 80GB HBM3". */
const char *cuda_device_name(const struct cuda_ctx *c);
int cuda_mem_info(struct cuda_ctx *c, size_t *free_bytes, size_t *total_bytes);

/* Device memory for `what` (named in the message when it does not fit). */
void *cuda_alloc(struct cuda_ctx *c, size_t bytes, const char *what);
void cuda_free(struct cuda_ctx *c, void *p);
int cuda_upload(struct cuda_ctx *c, void *dst, const void *host_src, size_t bytes);
int cuda_download(struct cuda_ctx *c, void *host_dst, const void *src, size_t bytes);
int cuda_memset(struct cuda_ctx *c, void *dst, int byte, size_t bytes);
int cuda_sync(struct cuda_ctx *c);

/* 1 if the weight kernels take this type. */
int cuda_type_supported(int type);

#ifdef __cplusplus
}
#endif

#endif
