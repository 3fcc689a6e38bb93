/* A CUDA emulation for the host C++ compiler: what the kernels of gpu/cuda use, checked. */

/*
 * DESIGN
 *
 * The kernels in gpu/cuda/ are compiled twice: by nvcc for the GPU, and by
 * g++ against this header for the tests (which run on machines without a
 * GPU).  The emulation runs every thread of a block as a fiber on one host
 * thread, blocks one after another.  A fiber runs until it reaches a point
 * where a GPU thread would wait for others (__syncthreads, a warp shuffle
 * or vote, __syncwarp, a wmma operation) and the scheduler then runs the
 * next one, so a barrier is a real barrier and a shuffle really exchanges
 * the values of the lanes that reach it.
 *
 * What the emulation checks, and reports as a failed launch (the kernel's
 * name, block, thread and what went wrong; cudaGetLastError() returns an
 * error and pv_emu_error() the sentence):
 *   - shared memory is declared through PV_SHARED / PV_SHARED2 /
 *     PV_SHARED_DYN (common.cuh), which here give checked arrays: an index
 *     out of the array's bounds (each dimension of a 2-D array), a read of
 *     an element no thread has written in this block (the memory is also
 *     poisoned with all-ones bytes, a NaN as a float), and a race: an
 *     element written by one thread and read or written by another with no
 *     __syncthreads() between (or __syncwarp() when both are in one warp);
 *   - __syncthreads() that not every thread of the block reaches, or that
 *     threads reach at different places (barrier divergence);
 *   - warp operations whose mask names a lane that does not exist, has
 *     exited, or waits elsewhere, masks that do not include the caller,
 *     and lanes of one group that call different operations;
 *   - launch configurations a GPU refuses (block over 1024 threads, grid
 *     dimensions, shared memory over 48 KiB);
 *   - device buffers: memory copies to or from pointers that are not device
 *     allocations (or run past their end), writes past either end of an
 *     allocation (guard bytes checked after every launch and on free);
 *     fresh allocations are filled with all-ones bytes, as shared memory is.
 * The order in which blocks run, and the order in which ready threads run
 * between synchronisation points, follow a seed (pv_emu_set_seed, or
 * PV_EMU_SEED in the environment; 0 is plain order): tests run kernels under
 * several seeds and compare the results bit for bit, which catches a kernel
 * whose result depends on timing through global memory.
 *
 * The emulation serves one host thread at a time (the engine thread, or a
 * test); launches run to completion before they return, so streams and
 * events only keep order and time.
 *
 * Kernel code must not hold a shared-memory element in an `auto` variable
 * (it would be a checked reference, not a value), and must use
 * PV_SPTR(T) for pointers into shared memory.
 */
#ifndef PALAVER_CUDA_EMU_H
#define PALAVER_CUDA_EMU_H

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <tuple>
#include <type_traits>
#include <utility>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__
#define __launch_bounds__(...)

struct uint3 {
	unsigned x, y, z;
};

struct dim3 {
	unsigned x, y, z;
	constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};

static const int warpSize = 32;

/* Error codes as the CUDA runtime numbers them. */
enum cudaError {
	cudaSuccess = 0,
	cudaErrorInvalidValue = 1,
	cudaErrorMemoryAllocation = 2,
	cudaErrorInitializationError = 3,
	cudaErrorInvalidConfiguration = 9,
	cudaErrorInvalidMemcpyDirection = 21,
	cudaErrorNoDevice = 100,
	cudaErrorInvalidDevice = 101,
	cudaErrorInvalidResourceHandle = 400,
	cudaErrorIllegalAddress = 700,
	cudaErrorLaunchFailure = 719
};
typedef enum cudaError cudaError_t;

enum cudaMemcpyKind {
	cudaMemcpyHostToHost = 0,
	cudaMemcpyHostToDevice = 1,
	cudaMemcpyDeviceToHost = 2,
	cudaMemcpyDeviceToDevice = 3,
	cudaMemcpyDefault = 4
};

struct pv_emu_stream;
struct pv_emu_event;
typedef struct pv_emu_stream *cudaStream_t;
typedef struct pv_emu_event *cudaEvent_t;

#define cudaStreamNonBlocking 0x01u
#define cudaEventDefault 0x00u
#define cudaEventDisableTiming 0x02u

struct cudaDeviceProp {
	char name[256];
	size_t totalGlobalMem;
	size_t sharedMemPerBlock;
	int warpSize;
	int maxThreadsPerBlock;
	int multiProcessorCount;
	int major, minor;
};

/* ---- the host API (on host memory) ---------------------------------------------------- */

cudaError_t cudaGetDeviceCount(int *n);
cudaError_t cudaSetDevice(int dev);
cudaError_t cudaGetDevice(int *dev);
cudaError_t cudaGetDeviceProperties(cudaDeviceProp *p, int dev);
cudaError_t cudaMemGetInfo(size_t *free_bytes, size_t *total_bytes);
cudaError_t cudaMalloc(void **p, size_t bytes);
cudaError_t cudaFree(void *p);
cudaError_t cudaMemcpy(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind);
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind,
			    cudaStream_t s = nullptr);
cudaError_t cudaMemset(void *p, int v, size_t bytes);
cudaError_t cudaMemsetAsync(void *p, int v, size_t bytes, cudaStream_t s = nullptr);
cudaError_t cudaStreamCreate(cudaStream_t *s);
cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned flags);
cudaError_t cudaStreamDestroy(cudaStream_t s);
cudaError_t cudaStreamSynchronize(cudaStream_t s);
cudaError_t cudaEventCreate(cudaEvent_t *e);
cudaError_t cudaEventCreateWithFlags(cudaEvent_t *e, unsigned flags);
cudaError_t cudaEventDestroy(cudaEvent_t e);
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s = nullptr);
cudaError_t cudaEventSynchronize(cudaEvent_t e);
cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t start, cudaEvent_t end);
cudaError_t cudaDeviceSynchronize(void);
cudaError_t cudaGetLastError(void);
cudaError_t cudaPeekAtLastError(void);
const char *cudaGetErrorString(cudaError_t e);
const char *cudaGetErrorName(cudaError_t e);

#include "emu_control.h"

/* ---- half precision ----------------------------------------------------------------- */

struct __half {
	uint16_t x;
};
struct __nv_bfloat16 {
	uint16_t x;
};
typedef __half half;

namespace pv_emu
{
uint16_t f32_to_f16(float f);
float f16_to_f32(uint16_t h);
uint16_t f32_to_bf16(float f);
} // namespace pv_emu

inline __half __float2half(float f)
{
	return __half{ pv_emu::f32_to_f16(f) };
}
inline __half __float2half_rn(float f)
{
	return __float2half(f);
}
inline float __half2float(__half h)
{
	return pv_emu::f16_to_f32(h.x);
}
inline __half __ushort_as_half(unsigned short u)
{
	return __half{ u };
}
inline unsigned short __half_as_ushort(__half h)
{
	return h.x;
}
inline __nv_bfloat16 __float2bfloat16(float f)
{
	return __nv_bfloat16{ pv_emu::f32_to_bf16(f) };
}
inline float __bfloat162float(__nv_bfloat16 h)
{
	uint32_t u = (uint32_t)h.x << 16;
	float f;
	memcpy(&f, &u, 4);
	return f;
}

/* ---- device math and bit intrinsics -------------------------------------------------- */

inline float rsqrtf(float x)
{
	return 1.0f / sqrtf(x);
}
inline float __expf(float x)
{
	return expf(x);
}
inline float __logf(float x)
{
	return logf(x);
}
inline float __fdividef(float a, float b)
{
	return a / b;
}
inline float __saturatef(float x)
{
	return x < 0.0f ? 0.0f : x > 1.0f ? 1.0f : x;
}
inline float __int_as_float(int i)
{
	float f;
	memcpy(&f, &i, 4);
	return f;
}
inline int __float_as_int(float f)
{
	int i;
	memcpy(&i, &f, 4);
	return i;
}
inline float __uint_as_float(unsigned u)
{
	float f;
	memcpy(&f, &u, 4);
	return f;
}
inline unsigned __float_as_uint(float f)
{
	unsigned u;
	memcpy(&u, &f, 4);
	return u;
}
inline int __popc(unsigned x)
{
	return __builtin_popcount(x);
}
inline int __ffs(int x)
{
	return __builtin_ffs(x);
}
inline int __clz(int x)
{
	return x ? __builtin_clz((unsigned)x) : 32;
}
inline int min(int a, int b)
{
	return a < b ? a : b;
}
inline int max(int a, int b)
{
	return a > b ? a : b;
}
inline unsigned min(unsigned a, unsigned b)
{
	return a < b ? a : b;
}
inline unsigned max(unsigned a, unsigned b)
{
	return a > b ? a : b;
}
inline long long min(long long a, long long b)
{
	return a < b ? a : b;
}
inline long long max(long long a, long long b)
{
	return a > b ? a : b;
}
template <class T> inline T __ldg(const T *p)
{
	return *p;
}
inline void __threadfence(void) {}
inline void __threadfence_block(void) {}

/* ---- threads, blocks, shared memory ----------------------------------------------------- */

namespace pv_emu
{

/* The coordinates of the fiber that runs now. */
struct regs {
	uint3 thread_idx;
	uint3 block_idx;
	dim3 block_dim;
	dim3 grid_dim;
};
extern thread_local const regs *cur;

/* One __shared__ declaration of a kernel: the first thread of a block that
 * reaches it places it in the block's shared memory, the others find it. */
struct site {
	int id = -1;
};

/* A shared array of one block: its bytes and one shadow record per element. */
struct region;
region *shared_get(site *s, const char *name, size_t elem_size, int64_t n);
region *shared_dynamic(const char *name, size_t elem_size);
void *shared_read(region *r, int64_t i);  /* checks, then the element's address */
void *shared_write(region *r, int64_t i); /* checks, records the writer */
void shared_bounds(region *r, int64_t i); /* fails the launch when i is outside */
void shared_dim_bounds(region *r, int64_t i, int64_t n, int dim);

template <class T> struct sptr;

/* A reference to one element: reads and writes go through the checks. */
template <class T> struct sref {
	region *r;
	int64_t i;
	operator T() const
	{
		T v;
		memcpy(&v, shared_read(r, i), sizeof(T));
		return v;
	}
	const sref &operator=(const T &v) const
	{
		memcpy(shared_write(r, i), &v, sizeof(T));
		return *this;
	}
	const sref &operator=(const sref &o) const
	{
		T v = o;
		return *this = v;
	}
	template <class U> const sref &operator+=(const U &v) const
	{
		T a = *this;
		return *this = (T)(a + v);
	}
	template <class U> const sref &operator-=(const U &v) const
	{
		T a = *this;
		return *this = (T)(a - v);
	}
	template <class U> const sref &operator*=(const U &v) const
	{
		T a = *this;
		return *this = (T)(a * v);
	}
	template <class U> const sref &operator/=(const U &v) const
	{
		T a = *this;
		return *this = (T)(a / v);
	}
	sptr<T> operator&() const { return sptr<T>{ r, i }; }
};

/* A pointer into shared memory (PV_SPTR(T)); bounds are the whole array's. */
template <class T> struct sptr {
	region *r;
	int64_t i;
	sref<T> operator[](int64_t j) const
	{
		shared_bounds(r, i + j);
		return sref<T>{ r, i + j };
	}
	sref<T> operator*() const { return (*this)[0]; }
	sptr operator+(int64_t j) const { return sptr{ r, i + j }; }
	sptr operator-(int64_t j) const { return sptr{ r, i - j }; }
	sptr &operator+=(int64_t j)
	{
		i += j;
		return *this;
	}
};

template <class T> struct sarray {
	region *r;
	int64_t n;
	sref<T> operator[](int64_t j) const
	{
		shared_dim_bounds(r, j, n, 0);
		return sref<T>{ r, j };
	}
	operator sptr<T>() const { return sptr<T>{ r, 0 }; }
};

template <class T> struct srow {
	region *r;
	int64_t base, cols;
	sref<T> operator[](int64_t j) const
	{
		shared_dim_bounds(r, j, cols, 1);
		return sref<T>{ r, base + j };
	}
	operator sptr<T>() const { return sptr<T>{ r, base }; }
};

template <class T> struct sarray2 {
	region *r;
	int64_t rows, cols;
	srow<T> operator[](int64_t i) const
	{
		shared_dim_bounds(r, i, rows, 0);
		return srow<T>{ r, i * cols, cols };
	}
};

template <class T> inline sarray<T> make_shared(site *s, const char *name, int64_t n)
{
	return sarray<T>{ shared_get(s, name, sizeof(T), n), n };
}
template <class T>
inline sarray2<T> make_shared2(site *s, const char *name, int64_t rows, int64_t cols)
{
	return sarray2<T>{ shared_get(s, name, sizeof(T), rows * cols), rows, cols };
}
template <class T> inline sptr<T> make_shared_dyn(const char *name)
{
	return sptr<T>{ shared_dynamic(name, sizeof(T)), 0 };
}

/* ---- synchronisation and warp operations ---- */

void syncthreads(const char *file, int line);

enum warp_kind {
	W_SYNC,
	W_SHFL,
	W_SHFL_XOR,
	W_SHFL_DOWN,
	W_SHFL_UP,
	W_BALLOT,
	W_ALL,
	W_ANY,
	W_WMMA_LOAD,
	W_WMMA_STORE,
	W_WMMA_MMA
};

/* What one lane brings to a warp operation and gets back. */
struct warp_arg {
	uint64_t in;  /* the lane's value (bits) or predicate */
	int param;    /* source lane, lane mask or delta */
	int width;    /* shuffle segment width */
	uint64_t out; /* the result */
	void *ptr;    /* wmma: the lane's fragment(s) and the memory operand */
	void *ptr2, *ptr3, *ptr4;
};

/* Blocks the calling lane until every lane in mask has arrived with the
 * same kind; resolve (wmma) runs once, by the last lane to arrive, over the
 * args of all lanes in mask (indexed by lane). */
typedef void (*warp_resolve_fn)(warp_arg *args[32], unsigned mask, const void *ctx);
void warp_op(warp_kind kind, unsigned mask, warp_arg *a, const char *file, int line,
	     warp_resolve_fn resolve = nullptr, const void *ctx = nullptr);
/* Fails the launch with a message (used by the wmma emulation). */
[[noreturn]] void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

template <class T> inline uint64_t to_bits(T v)
{
	static_assert(sizeof(T) <= 8 && std::is_trivially_copyable<T>::value, "shuffle type");
	uint64_t u = 0;
	memcpy(&u, &v, sizeof(T));
	return u;
}
template <class T> inline T from_bits(uint64_t u)
{
	T v;
	memcpy(&v, &u, sizeof(T));
	return v;
}

template <class T>
inline T shfl(warp_kind k, unsigned mask, T v, int param, int width, const char *file, int line)
{
	warp_arg a{};
	a.in = to_bits(v);
	a.param = param;
	a.width = width;
	warp_op(k, mask, &a, file, line);
	return from_bits<T>(a.out);
}

inline unsigned vote(warp_kind k, unsigned mask, int pred, const char *file, int line)
{
	warp_arg a{};
	a.in = pred != 0;
	warp_op(k, mask, &a, file, line);
	return (unsigned)a.out;
}

/* Atomics: the scheduler may switch threads before one (the order of
 * atomic updates varies with the seed) but never inside it. */
void atomic_point(void);

/* ---- launch ---- */

typedef void (*entry_fn)(void *arg);
void launch_raw(const char *name, dim3 grid, dim3 block, size_t shmem, cudaStream_t s,
		entry_fn entry, void *arg);

template <class T> inline dim3 to_dim3(T v)
{
	if constexpr (std::is_same<T, dim3>::value)
		return v;
	else
		return dim3((unsigned)v);
}

template <class... P, class... A>
void launch(const char *name, void (*k)(P...), dim3 grid, dim3 block, size_t shmem, cudaStream_t s,
	    A &&...a)
{
	static_assert(sizeof...(P) == sizeof...(A), "kernel argument count");
	typedef std::tuple<typename std::decay<P>::type...> args_t;
	struct call {
		void (*k)(P...);
		args_t args;
		static void run(void *p)
		{
			call *c = (call *)p;
			args_t copy = c->args; /* each GPU thread gets its own parameters */
			std::apply(c->k, copy);
		}
	} c{ k, args_t(std::forward<A>(a)...) };
	launch_raw(name, grid, block, shmem, s, &call::run, &c);
}

} // namespace pv_emu

#define threadIdx (::pv_emu::cur->thread_idx)
#define blockIdx (::pv_emu::cur->block_idx)
#define blockDim (::pv_emu::cur->block_dim)
#define gridDim (::pv_emu::cur->grid_dim)

#define PV_EMU_HERE const char *file = __builtin_FILE(), int line = __builtin_LINE()

inline void __syncthreads(PV_EMU_HERE)
{
	pv_emu::syncthreads(file, line);
}
inline void __syncwarp(unsigned mask = 0xffffffffu, PV_EMU_HERE)
{
	pv_emu::warp_arg a{};
	pv_emu::warp_op(pv_emu::W_SYNC, mask, &a, file, line);
}
template <class T> inline T __shfl_sync(unsigned mask, T v, int src, int width = 32, PV_EMU_HERE)
{
	return pv_emu::shfl(pv_emu::W_SHFL, mask, v, src, width, file, line);
}
template <class T>
inline T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32, PV_EMU_HERE)
{
	return pv_emu::shfl(pv_emu::W_SHFL_XOR, mask, v, lane_mask, width, file, line);
}
template <class T>
inline T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32, PV_EMU_HERE)
{
	return pv_emu::shfl(pv_emu::W_SHFL_DOWN, mask, v, (int)delta, width, file, line);
}
template <class T>
inline T __shfl_up_sync(unsigned mask, T v, unsigned delta, int width = 32, PV_EMU_HERE)
{
	return pv_emu::shfl(pv_emu::W_SHFL_UP, mask, v, (int)delta, width, file, line);
}
inline unsigned __ballot_sync(unsigned mask, int pred, PV_EMU_HERE)
{
	return pv_emu::vote(pv_emu::W_BALLOT, mask, pred, file, line);
}
inline int __all_sync(unsigned mask, int pred, PV_EMU_HERE)
{
	return (int)pv_emu::vote(pv_emu::W_ALL, mask, pred, file, line);
}
inline int __any_sync(unsigned mask, int pred, PV_EMU_HERE)
{
	return (int)pv_emu::vote(pv_emu::W_ANY, mask, pred, file, line);
}

/* Atomics on global memory (shared-memory atomics are not emulated). */
template <class T> inline T atomicAdd(T *p, T v)
{
	pv_emu::atomic_point();
	T old = *p;
	*p = old + v;
	return old;
}
template <class T> inline T atomicMax(T *p, T v)
{
	pv_emu::atomic_point();
	T old = *p;
	if (v > old)
		*p = v;
	return old;
}
template <class T> inline T atomicMin(T *p, T v)
{
	pv_emu::atomic_point();
	T old = *p;
	if (v < old)
		*p = v;
	return old;
}
template <class T> inline T atomicExch(T *p, T v)
{
	pv_emu::atomic_point();
	T old = *p;
	*p = v;
	return old;
}
template <class T> inline T atomicCAS(T *p, T cmp, T v)
{
	pv_emu::atomic_point();
	T old = *p;
	if (old == cmp)
		*p = v;
	return old;
}

#include "wmma_emu.h"

#endif
