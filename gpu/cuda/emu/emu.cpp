/* The CUDA emulation's runtime: fibers, scheduler, shared-memory checks, warp ops, host API. */

/*
 * DESIGN
 *
 * One launch runs its blocks one after another on the calling host thread.
 * A block's threads are fibers (a hand-written stack switch on x86-64,
 * ucontext elsewhere) driven by run_block(): it resumes every ready fiber
 * in turn (in an order drawn from the seed, redrawn each pass) until it
 * waits or ends.  A fiber waits at __syncthreads() until all threads of
 * the block wait there, and at a warp operation until every lane of its
 * mask has arrived; the last lane to arrive computes the results for all.
 * When nothing is ready and not every live thread waits at one barrier,
 * the block cannot finish on a GPU either: that is reported, as are the
 * cases that are undefined on a GPU even when they happen to finish (see
 * cuda_emu.h).  A check that fails inside a fiber abandons the block: the
 * fiber switches back for good and the launch ends with the message.
 *
 * Shared memory is one 48 KiB arena per block with a shadow record per
 * element (who wrote it and in which barrier / __syncwarp epoch, who read
 * it since) from which uninitialized reads and races are told.
 */
#include "cuda_emu.h"

#include <chrono>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <sys/mman.h>
#include <unistd.h>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#define PV_EMU_ASAN 1
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

#if !defined(__x86_64__)
#include <ucontext.h>
#endif

namespace pv_emu
{

thread_local const regs *cur;

/* ---- state shared by the host API and launches ---------------------------------------- */

static const size_t SHARED_LIMIT = 48 * 1024;
static const size_t REDZONE = 256;
static const unsigned char REDZONE_BYTE = 0xa5;

struct alloc_info {
	size_t size;
	void *base; /* what posix_memalign returned */
};

static struct {
	std::map<uintptr_t, alloc_info> allocs; /* by user address */
	size_t used = 0;
	size_t limit = (size_t)4 << 30;
	int device_count = 1;
	unsigned seed = 0;
	int seed_read = 0;
	unsigned long launches = 0;
	cudaError_t last = cudaSuccess;    /* cudaGetLastError() */
	cudaError_t pending = cudaSuccess; /* a failed launch, for the next synchronizing call */
	std::string message;
} g;

static cudaError_t set_error(cudaError_t e, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static cudaError_t set_error(cudaError_t e, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	g.message = buf;
	g.last = e;
	return e;
}

static unsigned current_seed(void)
{
	if (!g.seed_read) {
		const char *s = getenv("PV_EMU_SEED");
		g.seed_read = 1;
		if (s && *s)
			g.seed = (unsigned)strtoul(s, nullptr, 0);
	}
	return g.seed;
}

static uint64_t rng_next(uint64_t *s)
{
	/* splitmix64 */
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

template <class T> static void shuffle(std::vector<T> &v, uint64_t *rng)
{
	for (size_t i = v.size(); i > 1; i--) {
		size_t j = (size_t)(rng_next(rng) % i);
		std::swap(v[i - 1], v[j]);
	}
}

/* ---- half conversions (round to nearest even) --------------------------------------------- */

uint16_t f32_to_f16(float f)
{
	uint32_t x;
	memcpy(&x, &f, 4);
	uint32_t sign = (x >> 16) & 0x8000, exp = (x >> 23) & 0xff, mant = x & 0x7fffff;
	if (exp == 0xff)
		return (uint16_t)(sign | 0x7c00 | (mant ? 0x200 | (mant >> 13) : 0));
	int e = (int)exp - 127;
	if (e > 15)
		return (uint16_t)(sign | 0x7c00);
	if (e >= -14) {
		uint32_t r = ((uint32_t)(e + 15) << 10) | (mant >> 13), rest = mant & 0x1fff;
		if (rest > 0x1000 || (rest == 0x1000 && (r & 1)))
			r++; /* may carry into the exponent, up to infinity: correct */
		return (uint16_t)(sign | r);
	}
	if (exp == 0 || e < -25)
		return (uint16_t)sign;
	/* subnormal half: units of 2^-24 */
	uint32_t m = mant | 0x800000;
	int shift = -e - 1; /* 14 .. 24 */
	uint32_t r = m >> shift, rest = m & ((1u << shift) - 1), halfway = 1u << (shift - 1);
	if (rest > halfway || (rest == halfway && (r & 1)))
		r++;
	return (uint16_t)(sign | r);
}

float f16_to_f32(uint16_t h)
{
	uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, mant = h & 0x3ff, u;
	float f;
	if (exp == 0) {
		f = (float)mant * 0x1p-24f;
		return sign ? -f : f;
	}
	if (exp == 31)
		u = sign | 0x7f800000u | (mant << 13);
	else
		u = sign | ((exp + 112) << 23) | (mant << 13);
	memcpy(&f, &u, 4);
	return f;
}

uint16_t f32_to_bf16(float f)
{
	uint32_t x;
	memcpy(&x, &f, 4);
	if ((x & 0x7fffffff) > 0x7f800000)
		return (uint16_t)((x >> 16) | 0x40);
	x += 0x7fff + ((x >> 16) & 1);
	return (uint16_t)(x >> 16);
}

/* ---- fibers ------------------------------------------------------------------------------ */

static const size_t STACK_SIZE = 256 * 1024;

#if defined(__x86_64__)
extern "C" void pv_emu_swap(void **save_sp, void *load_sp);
/* Saves the callee-saved registers and the FP control words on the current
 * stack, stores the stack pointer in *save_sp and resumes the stack load_sp. */
asm(".text\n"
    ".globl pv_emu_swap\n"
    ".type pv_emu_swap,@function\n"
    "pv_emu_swap:\n"
    "	pushq %rbp\n"
    "	pushq %rbx\n"
    "	pushq %r12\n"
    "	pushq %r13\n"
    "	pushq %r14\n"
    "	pushq %r15\n"
    "	subq $8, %rsp\n"
    "	stmxcsr (%rsp)\n"
    "	fnstcw 4(%rsp)\n"
    "	movq %rsp, (%rdi)\n"
    "	movq %rsi, %rsp\n"
    "	ldmxcsr (%rsp)\n"
    "	fldcw 4(%rsp)\n"
    "	addq $8, %rsp\n"
    "	popq %r15\n"
    "	popq %r14\n"
    "	popq %r13\n"
    "	popq %r12\n"
    "	popq %rbx\n"
    "	popq %rbp\n"
    "	ret\n"
    ".size pv_emu_swap, .-pv_emu_swap\n");
#endif

enum thread_state { T_READY, T_BAR, T_WARP, T_DONE };

struct group; /* a warp operation being gathered */

struct fiber {
	regs r;
	int linear, lane, warp;
	thread_state state;
	const char *file; /* where it waits */
	int line;
	warp_kind wkind; /* T_WARP: the operation it waits at */
	char *stack;     /* lowest usable address */
#if defined(__x86_64__)
	void *sp;
#else
	ucontext_t uc;
#endif
#if defined(PV_EMU_ASAN)
	void *fake_stack;
#endif
};

struct group {
	warp_kind kind;
	unsigned mask, arrived;
	const char *file;
	int line;
	warp_arg *args[32];
	warp_resolve_fn resolve;
	const void *ctx;
	int first_lane;
};

struct shadow {
	int32_t writer;   /* linear thread id, -1: never written */
	uint32_t wbar;    /* barrier epoch of the write */
	uint32_t wwarp;   /* the writer's warp epoch at the write */
	int32_t reader;   /* -1 none, -2 several since the last write */
	uint32_t rbar;    /* barrier epoch of the first read in the set */
	uint32_t rwarp;   /* its warp epoch */
	int32_t rwarp_id; /* warp of all readers in the set, -1 if several warps */
};

struct region {
	const void *key;
	const char *name;
	size_t elem;
	int64_t n;
	size_t offset; /* in the block's arena */
	std::vector<shadow> sh;
};

struct block_run {
	const char *kernel;
	entry_fn entry;
	void *arg;
	uint3 idx;
	dim3 bdim, gdim;
	size_t dyn_bytes;
	int n, alive;
	std::vector<fiber> *threads;
	std::vector<std::vector<group>> groups; /* per warp */
	std::vector<uint32_t> warp_epoch;
	uint32_t bar_epoch;
	std::vector<unsigned char> arena;
	size_t arena_used;
	std::vector<region *> regions;
	region dyn;
	int dyn_made;
	int failed;
	uint64_t rng;
	fiber *running;
#if defined(__x86_64__)
	void *sched_sp;
#else
	ucontext_t sched_uc;
#endif
#if defined(PV_EMU_ASAN)
	void *sched_fake;
	const void *sched_bottom;
	size_t sched_size;
#endif
};

static thread_local block_run *B;
static std::vector<fiber> fibers;
static std::vector<char *> stacks;

static char *stack_alloc(void)
{
	long page = sysconf(_SC_PAGESIZE);
	void *p = mmap(nullptr, STACK_SIZE + (size_t)page, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		return nullptr;
	mprotect(p, (size_t)page, PROT_NONE); /* a stack overflow faults instead of corrupting */
	return (char *)p + page;
}

/* Switch from the scheduler into f, until f waits, ends or fails. */
static void resume(fiber *f)
{
	B->running = f;
	cur = &f->r;
#if defined(PV_EMU_ASAN)
	__sanitizer_start_switch_fiber(&B->sched_fake, f->stack, STACK_SIZE);
#endif
#if defined(__x86_64__)
	pv_emu_swap(&B->sched_sp, f->sp);
#else
	swapcontext(&B->sched_uc, &f->uc);
#endif
#if defined(PV_EMU_ASAN)
	__sanitizer_finish_switch_fiber(B->sched_fake, nullptr, nullptr);
#endif
	B->running = nullptr;
	cur = nullptr;
}

/* From the running fiber back to the scheduler; returns when resumed.
 * `last`: the fiber will never run again. */
static void to_scheduler(int last)
{
	fiber *f = B->running;
#if defined(PV_EMU_ASAN)
	__sanitizer_start_switch_fiber(last ? nullptr : &f->fake_stack, B->sched_bottom,
				       B->sched_size);
#else
	(void)last;
#endif
#if defined(__x86_64__)
	pv_emu_swap(&f->sp, B->sched_sp);
#else
	swapcontext(&f->uc, &B->sched_uc);
#endif
#if defined(PV_EMU_ASAN)
	__sanitizer_finish_switch_fiber(f->fake_stack, nullptr, nullptr);
#endif
}

static void thread_exit(void);

static void fiber_main(void)
{
#if defined(PV_EMU_ASAN)
	__sanitizer_finish_switch_fiber(nullptr, &B->sched_bottom, &B->sched_size);
#endif
	B->entry(B->arg);
	thread_exit();
}

static void fiber_reset(fiber *f)
{
#if defined(PV_EMU_ASAN)
	/* a fiber abandoned by a failed check leaves its frames' poison behind */
	ASAN_UNPOISON_MEMORY_REGION(f->stack, STACK_SIZE);
#endif
#if defined(__x86_64__)
	uint64_t *top = (uint64_t *)(f->stack + STACK_SIZE);
	uint32_t csr = __builtin_ia32_stmxcsr();
	uint16_t cw;
	asm volatile("fnstcw %0" : "=m"(cw));
	top[-1] = 0;                     /* alignment slot: entry sees rsp % 16 == 8 */
	top[-2] = (uint64_t)&fiber_main; /* where the first switch returns to */
	for (int i = 3; i <= 8; i++)
		top[-i] = 0; /* rbp rbx r12 r13 r14 r15 */
	top[-9] = (uint64_t)csr | (uint64_t)cw << 32;
	f->sp = &top[-9];
#else
	getcontext(&f->uc);
	f->uc.uc_stack.ss_sp = f->stack;
	f->uc.uc_stack.ss_size = STACK_SIZE;
	f->uc.uc_link = nullptr;
	makecontext(&f->uc, fiber_main, 0);
#endif
}

/* ---- failures ------------------------------------------------------------------------- */

static std::string where(const fiber *f)
{
	char buf[160];
	snprintf(buf, sizeof(buf), "kernel '%s' block (%u,%u,%u) thread (%u,%u,%u): ", B->kernel,
		 B->idx.x, B->idx.y, B->idx.z, f->r.thread_idx.x, f->r.thread_idx.y,
		 f->r.thread_idx.z);
	return buf;
}

static std::string vformat(const char *fmt, va_list ap)
{
	char buf[768];
	vsnprintf(buf, sizeof(buf), fmt, ap);
	return buf;
}

/* The block cannot go on: record why (the first reason wins). */
static void block_fail(const fiber *f, const std::string &what)
{
	if (!B->failed) {
		B->failed = 1;
		g.message = (f ? where(f) : std::string("kernel '") + B->kernel + "': ") + what;
	}
}

void fail(const char *fmt, ...)
{
	/* nothing on this stack may own memory: the fiber is abandoned, not unwound */
	va_list ap;
	va_start(ap, fmt);
	block_fail(B->running, vformat(fmt, ap));
	va_end(ap);
	to_scheduler(1);
	abort(); /* never resumed */
}

static const char *kind_name(warp_kind k)
{
	switch (k) {
	case W_SYNC: return "__syncwarp";
	case W_SHFL: return "__shfl_sync";
	case W_SHFL_XOR: return "__shfl_xor_sync";
	case W_SHFL_DOWN: return "__shfl_down_sync";
	case W_SHFL_UP: return "__shfl_up_sync";
	case W_BALLOT: return "__ballot_sync";
	case W_ALL: return "__all_sync";
	case W_ANY: return "__any_sync";
	case W_WMMA_LOAD: return "wmma::load_matrix_sync";
	case W_WMMA_STORE: return "wmma::store_matrix_sync";
	case W_WMMA_MMA: return "wmma::mma_sync";
	}
	return "?";
}

static const char *base_name(const char *path)
{
	const char *s = strrchr(path, '/');
	return s ? s + 1 : path;
}

/* ---- barriers ---------------------------------------------------------------------------- */

static unsigned warp_lanes(int w)
{
	int n = B->n - 32 * w;
	return n >= 32 ? 0xffffffffu : (1u << n) - 1;
}

void syncthreads(const char *file, int line)
{
	fiber *f = B->running;
	/* a lane of this warp waiting for us at a warp operation would wait forever */
	for (group &gr : B->groups[f->warp])
		if (gr.mask >> f->lane & 1)
			fail("__syncthreads() at %s:%d while lanes of its warp wait for it at %s "
			     "(%s:%d)",
			     base_name(file), line, kind_name(gr.kind), base_name(gr.file),
			     gr.line);
	f->state = T_BAR;
	f->file = file;
	f->line = line;
	to_scheduler(0);
}

static void thread_exit(void)
{
	fiber *f = B->running;
	for (group &gr : B->groups[f->warp])
		if (gr.mask >> f->lane & 1)
			fail("exits while lanes of its warp wait for it at %s (%s:%d, mask 0x%08x)",
			     kind_name(gr.kind), base_name(gr.file), gr.line, gr.mask);
	f->state = T_DONE;
	B->alive--;
	to_scheduler(1);
	abort();
}

void atomic_point(void)
{
	if (!B || !B->running || !current_seed())
		return;
	if (rng_next(&B->rng) % 4 == 0) {
		B->running->state = T_READY; /* let another thread run first */
		to_scheduler(0);
	}
}

/* ---- warp operations ------------------------------------------------------------------------ */

static void resolve_group(group *gr, int w)
{
	warp_arg **a = gr->args;
	unsigned mask = gr->mask;
	switch (gr->kind) {
	case W_SYNC:
		if (mask == warp_lanes(w))
			B->warp_epoch[w]++;
		break;
	case W_SHFL:
	case W_SHFL_XOR:
	case W_SHFL_DOWN:
	case W_SHFL_UP:
		for (int l = 0; l < 32; l++) {
			if (!(mask >> l & 1))
				continue;
			int width = a[l]->width, p = a[l]->param, src;
			if (width < 1 || width > 32 || (width & (width - 1)))
				fail("%s at %s:%d: width %d is not a power of two up to 32",
				     kind_name(gr->kind), base_name(gr->file), gr->line, width);
			int lo = l & ~(width - 1), hi = lo + width;
			if (gr->kind == W_SHFL)
				src = lo + (p & (width - 1));
			else if (gr->kind == W_SHFL_XOR)
				src = l ^ p;
			else if (gr->kind == W_SHFL_DOWN)
				src = l + p;
			else
				src = l - p;
			if (src < lo || src >= hi)
				src = l; /* outside the segment: the lane keeps its own value */
			if (!(mask >> src & 1))
				fail("%s at %s:%d: lane %d reads lane %d, which is not in the mask "
				     "0x%08x",
				     kind_name(gr->kind), base_name(gr->file), gr->line, l, src,
				     mask);
			a[l]->out = a[src]->in;
		}
		break;
	case W_BALLOT:
	case W_ALL:
	case W_ANY: {
		unsigned bits = 0;
		for (int l = 0; l < 32; l++)
			if ((mask >> l & 1) && a[l]->in)
				bits |= 1u << l;
		uint64_t r = gr->kind == W_BALLOT ? bits
			     : gr->kind == W_ALL  ? bits == mask
						  : bits != 0;
		for (int l = 0; l < 32; l++)
			if (mask >> l & 1)
				a[l]->out = r;
		break;
	}
	case W_WMMA_LOAD:
	case W_WMMA_STORE:
	case W_WMMA_MMA: gr->resolve(a, mask, gr->ctx); break;
	}
}

void warp_op(warp_kind kind, unsigned mask, warp_arg *arg, const char *file, int line,
	     warp_resolve_fn resolve, const void *ctx)
{
	fiber *f = B->running;
	int w = f->warp, lane = f->lane;
	unsigned lanes = warp_lanes(w);
	std::vector<fiber> &th = *B->threads;
	if (!(mask >> lane & 1))
		fail("%s at %s:%d: mask 0x%08x does not include the calling lane %d",
		     kind_name(kind), base_name(file), line, mask, lane);
	if (mask & ~lanes)
		fail("%s at %s:%d: mask 0x%08x names lanes that do not exist (the warp has lanes "
		     "0x%08x)",
		     kind_name(kind), base_name(file), line, mask, lanes);
	for (int l = 0; l < 32; l++) {
		if (!(mask >> l & 1))
			continue;
		const fiber &o = th[(size_t)(32 * w + l)];
		if (o.state == T_DONE)
			fail("%s at %s:%d: mask 0x%08x names lane %d, which has exited",
			     kind_name(kind), base_name(file), line, mask, l);
		if (o.state == T_BAR)
			fail("%s at %s:%d: mask 0x%08x names lane %d, which waits at "
			     "__syncthreads() (%s:%d)",
			     kind_name(kind), base_name(file), line, mask, l, base_name(o.file),
			     o.line);
	}
	std::vector<group> &gs = B->groups[w];
	group *gr = nullptr;
	for (group &x : gs) {
		if (!(x.mask & mask))
			continue;
		if (x.mask != mask || x.kind != kind)
			fail("%s at %s:%d with mask 0x%08x, while lane %d waits at %s (%s:%d) with "
			     "mask 0x%08x: the lanes of a warp operation must call the same one "
			     "with the same mask",
			     kind_name(kind), base_name(file), line, mask, x.first_lane,
			     kind_name(x.kind), base_name(x.file), x.line, x.mask);
		gr = &x;
	}
	if (!gr) {
		gs.push_back(group{ kind, mask, 0, file, line, {}, resolve, ctx, lane });
		gr = &gs.back();
	}
	gr->args[lane] = arg;
	gr->arrived |= 1u << lane;
	if (gr->arrived != mask) {
		f->state = T_WARP;
		f->file = file;
		f->line = line;
		f->wkind = kind;
		to_scheduler(0);
		return; /* the last lane has filled in arg->out */
	}
	resolve_group(gr, w);
	for (int l = 0; l < 32; l++)
		if ((mask >> l & 1) && l != lane) {
			fiber &o = th[(size_t)(32 * w + l)];
			o.state = T_READY;
		}
	gs.erase(gs.begin() + (gr - gs.data()));
}

/* ---- shared memory -------------------------------------------------------------------------- */

static region *region_new(const void *key, const char *name, size_t elem, int64_t n)
{
	size_t off = (B->arena_used + 127) & ~(size_t)127;
	size_t bytes = (size_t)n * elem;
	if (n < 0 || off + bytes > B->arena.size())
		fail("shared memory: '%s' (%lld x %zu bytes) does not fit: %zu bytes are in use "
		     "and a block has %zu",
		     name, (long long)n, elem, off, B->arena.size());
	region *r = new region{ key, name, elem, n, off, std::vector<shadow>((size_t)n) };
	for (shadow &s : r->sh)
		s = shadow{ -1, 0, 0, -1, 0, 0, -1 };
	B->arena_used = off + bytes;
	B->regions.push_back(r);
	return r;
}

region *shared_get(site *s, const char *name, size_t elem_size, int64_t n)
{
	for (region *r : B->regions)
		if (r->key == s) {
			if (r->n != n || r->elem != elem_size)
				fail("shared memory: '%s' declared with different sizes", name);
			return r;
		}
	return region_new(s, name, elem_size, n);
}

region *shared_dynamic(const char *name, size_t elem_size)
{
	region *r = &B->dyn;
	if (!B->dyn_made) {
		B->dyn_made = 1;
		r->key = &B->dyn;
		r->name = name;
		r->elem = elem_size;
		r->n = (int64_t)(B->dyn_bytes / elem_size);
		r->offset = 0; /* placed first in the arena by run_block */
		r->sh.assign((size_t)r->n, shadow{ -1, 0, 0, -1, 0, 0, -1 });
	} else if (r->elem != elem_size) {
		fail("dynamic shared memory: '%s' used with elements of %zu and %zu bytes", name,
		     r->elem, elem_size);
	}
	return r;
}

void shared_bounds(region *r, int64_t i)
{
	if (i < 0 || i >= r->n)
		fail("shared array '%s': index %lld is outside 0..%lld", r->name, (long long)i,
		     (long long)r->n - 1);
}

void shared_dim_bounds(region *r, int64_t i, int64_t n, int dim)
{
	if (i < 0 || i >= n)
		fail("shared array '%s': index %lld of dimension %d is outside 0..%lld", r->name,
		     (long long)i, dim + 1, (long long)n - 1);
}

int64_t shared_byte_offset(region *r, int64_t i)
{
	return (int64_t)r->offset + i * (int64_t)r->elem;
}

/* Did `who`'s access at (bar, warp epoch) happen-before thread t now? */
static int ordered(int who, uint32_t bar, uint32_t wep, const fiber *t)
{
	if (who == t->linear || bar != B->bar_epoch)
		return 1;
	int w = who / 32;
	return w == t->warp && wep != B->warp_epoch[(size_t)w];
}

static const fiber &thr(int linear)
{
	return (*B->threads)[(size_t)linear];
}

static void *read_as(region *r, int64_t i, const fiber *t)
{
	shared_bounds(r, i);
	shadow &s = r->sh[(size_t)i];
	if (s.writer < 0)
		fail("shared array '%s': read of element %lld, which no thread of the block has "
		     "written (thread (%u,%u,%u))",
		     r->name, (long long)i, t->r.thread_idx.x, t->r.thread_idx.y,
		     t->r.thread_idx.z);
	if (!ordered(s.writer, s.wbar, s.wwarp, t)) {
		const fiber &w = thr(s.writer);
		fail("shared array '%s': race on element %lld: thread (%u,%u,%u) reads what thread "
		     "(%u,%u,%u) wrote with no __syncthreads() (or __syncwarp()) between",
		     r->name, (long long)i, t->r.thread_idx.x, t->r.thread_idx.y, t->r.thread_idx.z,
		     w.r.thread_idx.x, w.r.thread_idx.y, w.r.thread_idx.z);
	}
	uint32_t wep = B->warp_epoch[(size_t)t->warp];
	if (s.reader == -1 || s.rbar != B->bar_epoch) {
		s.reader = t->linear;
		s.rbar = B->bar_epoch;
		s.rwarp = wep;
		s.rwarp_id = t->warp;
	} else if (s.reader != t->linear) {
		s.reader = -2;
		if (s.rwarp_id != t->warp)
			s.rwarp_id = -1;
	}
	return &B->arena[r->offset + (size_t)i * r->elem];
}

static void *write_as(region *r, int64_t i, const fiber *t)
{
	shared_bounds(r, i);
	shadow &s = r->sh[(size_t)i];
	if (s.writer >= 0 && !ordered(s.writer, s.wbar, s.wwarp, t)) {
		const fiber &w = thr(s.writer);
		fail("shared array '%s': race on element %lld: threads (%u,%u,%u) and (%u,%u,%u) "
		     "both write it with no __syncthreads() (or __syncwarp()) between",
		     r->name, (long long)i, w.r.thread_idx.x, w.r.thread_idx.y, w.r.thread_idx.z,
		     t->r.thread_idx.x, t->r.thread_idx.y, t->r.thread_idx.z);
	}
	if (s.reader != -1 && s.rbar == B->bar_epoch) {
		int ok;
		if (s.reader == -2)
			ok = s.rwarp_id == t->warp && s.rwarp != B->warp_epoch[(size_t)t->warp];
		else
			ok = ordered(s.reader, s.rbar, s.rwarp, t);
		if (!ok) {
			const char *who = s.reader == -2 ? "other threads" : "another thread";
			fail("shared array '%s': race on element %lld: thread (%u,%u,%u) writes it "
			     "while %s read it with no __syncthreads() (or __syncwarp()) between",
			     r->name, (long long)i, t->r.thread_idx.x, t->r.thread_idx.y,
			     t->r.thread_idx.z, who);
		}
	}
	s.writer = t->linear;
	s.wbar = B->bar_epoch;
	s.wwarp = B->warp_epoch[(size_t)t->warp];
	s.reader = -1;
	return &B->arena[r->offset + (size_t)i * r->elem];
}

void *shared_read(region *r, int64_t i)
{
	return read_as(r, i, B->running);
}

void *shared_write(region *r, int64_t i)
{
	return write_as(r, i, B->running);
}

static const fiber *lane_fiber(int lane)
{
	return &thr(32 * B->running->warp + lane);
}

void *shared_read_as(region *r, int64_t i, int lane)
{
	return read_as(r, i, lane_fiber(lane));
}

void *shared_write_as(region *r, int64_t i, int lane)
{
	return write_as(r, i, lane_fiber(lane));
}

namespace wm
{
void check_args(warp_arg *args[32], unsigned mask, const desc *d)
{
	for (int l = 1; l < 32; l++)
		if (args[l]->in != args[0]->in || args[l]->param != args[0]->param)
			fail("%s: lanes 0 and %d pass different pointers or leading dimensions",
			     d->what, l);
	if (args[0]->in % 32)
		fail("%s: the pointer is not 32-byte aligned", d->what);
	if (((size_t)args[0]->param * d->elem) % 16)
		fail("%s: ldm %d is not a multiple of 16 bytes", d->what, args[0]->param);
	(void)mask;
}
} // namespace wm

/* ---- running a block ------------------------------------------------------------------------ */

static void run_block(block_run *b, const std::vector<int> &order_init)
{
	std::vector<fiber> &th = *b->threads;
	int nwarps = (b->n + 31) / 32;
	std::vector<int> order = order_init;
	b->groups.assign((size_t)nwarps, std::vector<group>());
	b->warp_epoch.assign((size_t)nwarps, 0);
	b->bar_epoch = 0;
	std::fill(b->arena.begin(), b->arena.end(), (unsigned char)0xff); /* NaN poison */
	b->arena_used = b->dyn_bytes;
	b->dyn_made = 0;
	b->alive = b->n;
	for (int i = 0; i < b->n; i++) {
		fiber &f = th[(size_t)i];
		f.r.block_idx = b->idx;
		f.r.block_dim = b->bdim;
		f.r.grid_dim = b->gdim;
		f.r.thread_idx =
			uint3{ (unsigned)i % b->bdim.x, (unsigned)i / b->bdim.x % b->bdim.y,
			       (unsigned)i / (b->bdim.x * b->bdim.y) };
		f.linear = i;
		f.lane = i % 32;
		f.warp = i / 32;
		f.state = T_READY;
		f.file = nullptr;
		f.line = 0;
		fiber_reset(&f);
	}
	unsigned seed = current_seed();
	while (!b->failed) {
		int ran = 0;
		if (seed)
			shuffle(order, &b->rng);
		for (int i : order) {
			fiber &f = th[(size_t)i];
			if (f.state != T_READY)
				continue;
			ran = 1;
			resume(&f);
			if (b->failed)
				break;
		}
		if (b->failed || b->alive == 0)
			break;
		if (ran)
			continue;
		/* nothing can run: a barrier for everyone, or a hang on a GPU */
		int at_bar = 0;
		const fiber *first = nullptr, *done = nullptr, *waiter = nullptr;
		for (fiber &f : th) {
			if (f.state == T_BAR) {
				at_bar++;
				if (!first)
					first = &f;
				else if (f.file != first->file || f.line != first->line) {
					block_fail(
						&f,
						std::string("waits at __syncthreads() (") +
							base_name(f.file) + ":" +
							std::to_string(f.line) +
							") while other threads wait at another (" +
							base_name(first->file) + ":" +
							std::to_string(first->line) + ")");
					break;
				}
			} else if (f.state == T_DONE && !done) {
				done = &f;
			} else if (f.state == T_WARP && !waiter) {
				waiter = &f;
			}
		}
		if (b->failed)
			break;
		if (waiter) {
			block_fail(waiter, std::string("waits forever at ") +
						   kind_name(waiter->wkind) + " (" +
						   base_name(waiter->file) + ":" +
						   std::to_string(waiter->line) + ")");
			break;
		}
		if (at_bar != b->alive || !first) {
			block_fail(nullptr, "no thread can run");
			break;
		}
		if (done) {
			char buf[256];
			snprintf(buf, sizeof(buf),
				 "__syncthreads() at %s:%d is reached by %d of the block's %d "
				 "threads; thread (%u,%u,%u) has exited (barrier divergence)",
				 base_name(first->file), first->line, at_bar, b->n,
				 done->r.thread_idx.x, done->r.thread_idx.y, done->r.thread_idx.z);
			block_fail(nullptr, buf);
			break;
		}
		b->bar_epoch++;
		for (fiber &f : th)
			f.state = T_READY;
	}
	for (region *r : b->regions)
		delete r;
	b->regions.clear();
}

/* The guard bytes are checked here rather than poisoned for ASan, so that
 * an overrun is the same reported launch failure in both builds. */
static int redzones_intact(const char *kernel)
{
	for (auto &kv : g.allocs) {
		const unsigned char *user = (const unsigned char *)kv.first;
		const alloc_info &a = kv.second;
		size_t tail = (a.size + 255) / 256 * 256 - a.size + REDZONE;
		for (size_t i = 1; i <= REDZONE; i++)
			if (user[-(ptrdiff_t)i] != REDZONE_BYTE) {
				set_error(cudaErrorIllegalAddress,
					  "kernel '%s' wrote before the start of a %zu-byte device "
					  "buffer",
					  kernel, a.size);
				memset((void *)(user - REDZONE), REDZONE_BYTE, REDZONE);
				return 0;
			}
		for (size_t i = 0; i < tail; i++)
			if (user[a.size + i] != REDZONE_BYTE) {
				set_error(
					cudaErrorIllegalAddress,
					"kernel '%s' wrote past the end of a %zu-byte device buffer "
					"(byte %zu)",
					kernel, a.size, a.size + i);
				memset((void *)(user + a.size), REDZONE_BYTE, tail);
				return 0;
			}
	}
	return 1;
}

void launch_raw(const char *name, dim3 grid, dim3 block, size_t shmem, cudaStream_t s,
		entry_fn entry, void *arg)
{
	(void)s;
	g.launches++;
	if (B) {
		set_error(cudaErrorLaunchFailure, "kernel '%s' launched from inside a kernel",
			  name);
		return;
	}
	uint64_t nthreads = (uint64_t)block.x * block.y * block.z;
	if (!block.x || !block.y || !block.z || nthreads > 1024 || block.z > 64 || !grid.x ||
	    !grid.y || !grid.z || grid.x > 0x7fffffffu || grid.y > 65535 || grid.z > 65535) {
		set_error(cudaErrorInvalidConfiguration,
			  "kernel '%s': invalid launch: grid (%u,%u,%u), block (%u,%u,%u)", name,
			  grid.x, grid.y, grid.z, block.x, block.y, block.z);
		return;
	}
	if (shmem > SHARED_LIMIT) {
		set_error(cudaErrorInvalidConfiguration,
			  "kernel '%s': %zu bytes of dynamic shared memory (a block has %zu)", name,
			  shmem, SHARED_LIMIT);
		return;
	}
	while (stacks.size() < nthreads) {
		char *st = stack_alloc();
		if (!st) {
			set_error(cudaErrorMemoryAllocation,
				  "kernel '%s': no memory for thread stacks", name);
			return;
		}
		stacks.push_back(st);
	}
	fibers.resize(nthreads);
	for (size_t i = 0; i < nthreads; i++)
		fibers[i].stack = stacks[i];

	block_run b{};
	b.kernel = name;
	b.entry = entry;
	b.arg = arg;
	b.bdim = block;
	b.gdim = grid;
	b.dyn_bytes = shmem;
	b.n = (int)nthreads;
	b.threads = &fibers;
	b.arena.resize(SHARED_LIMIT);
	b.rng = 0x5eed0000ull ^ ((uint64_t)current_seed() << 20) ^ g.launches;

	uint64_t nblocks = (uint64_t)grid.x * grid.y * grid.z;
	std::vector<uint64_t> border(nblocks);
	for (uint64_t i = 0; i < nblocks; i++)
		border[i] = i;
	if (current_seed())
		shuffle(border, &b.rng);
	std::vector<int> torder((size_t)nthreads);
	for (int i = 0; i < (int)nthreads; i++)
		torder[(size_t)i] = i;

	B = &b;
	for (uint64_t bi : border) {
		b.idx = uint3{ (unsigned)(bi % grid.x), (unsigned)(bi / grid.x % grid.y),
			       (unsigned)(bi / ((uint64_t)grid.x * grid.y)) };
		run_block(&b, torder);
		if (b.failed)
			break;
	}
	B = nullptr;
	if (b.failed) {
		g.last = g.pending = cudaErrorLaunchFailure;
		return;
	}
	if (!redzones_intact(name))
		g.pending = g.last;
}

} // namespace pv_emu

using namespace pv_emu;

/* ---- host API ------------------------------------------------------------------------------- */

extern "C" {
const char *pv_emu_error(void)
{
	return g.message.c_str();
}
void pv_emu_set_seed(unsigned seed)
{
	g.seed = seed;
	g.seed_read = 1;
}
void pv_emu_set_memory_limit(size_t bytes)
{
	g.limit = bytes;
}
size_t pv_emu_memory_used(void)
{
	return g.used;
}
unsigned long pv_emu_launch_count(void)
{
	return g.launches;
}
void pv_emu_set_device_count(int n)
{
	g.device_count = n;
}
}

static cudaError_t ok(void)
{
	return cudaSuccess;
}

/* The allocation that holds [p, p + n), or null. */
static const alloc_info *find_alloc(const void *p, size_t n)
{
	uintptr_t a = (uintptr_t)p;
	auto it = g.allocs.upper_bound(a);
	if (it == g.allocs.begin())
		return nullptr;
	--it;
	if (a < it->first || a - it->first > it->second.size ||
	    n > it->second.size - (a - it->first))
		return nullptr;
	return &it->second;
}

static int is_device(const void *p)
{
	return find_alloc(p, 0) != nullptr;
}

cudaError_t cudaGetDeviceCount(int *n)
{
	*n = g.device_count;
	if (!g.device_count)
		return set_error(cudaErrorNoDevice, "no CUDA-capable device is detected");
	return ok();
}

cudaError_t cudaSetDevice(int dev)
{
	if (dev < 0 || dev >= g.device_count)
		return set_error(cudaErrorInvalidDevice, "cudaSetDevice: no device %d", dev);
	return ok();
}

cudaError_t cudaGetDevice(int *dev)
{
	*dev = 0;
	return ok();
}

cudaError_t cudaGetDeviceProperties(cudaDeviceProp *p, int dev)
{
	if (dev < 0 || dev >= g.device_count)
		return set_error(cudaErrorInvalidDevice, "cudaGetDeviceProperties: no device %d",
				 dev);
	memset(p, 0, sizeof(*p));
	snprintf(p->name, sizeof(p->name), "CUDA emulator (palaver)");
	p->totalGlobalMem = g.limit;
	p->sharedMemPerBlock = SHARED_LIMIT;
	p->warpSize = 32;
	p->maxThreadsPerBlock = 1024;
	p->multiProcessorCount = 4;
	p->major = 8;
	p->minor = 0;
	return ok();
}

cudaError_t cudaMemGetInfo(size_t *free_bytes, size_t *total_bytes)
{
	*free_bytes = g.used < g.limit ? g.limit - g.used : 0;
	*total_bytes = g.limit;
	return ok();
}

cudaError_t cudaMalloc(void **p, size_t bytes)
{
	*p = nullptr;
	if (bytes > g.limit || g.used > g.limit - bytes)
		return set_error(cudaErrorMemoryAllocation, "out of memory");
	size_t rounded = (bytes + 255) / 256 * 256;
	void *base = nullptr;
	if (posix_memalign(&base, 256, rounded + 2 * REDZONE))
		return set_error(cudaErrorMemoryAllocation, "out of memory (host)");
	unsigned char *user = (unsigned char *)base + REDZONE;
	memset(base, REDZONE_BYTE, REDZONE);
	memset(user, 0xff, bytes); /* like shared memory: garbage that reads as NaN */
	memset(user + bytes, REDZONE_BYTE, rounded - bytes + REDZONE);
	g.allocs[(uintptr_t)user] = alloc_info{ bytes, base };
	g.used += bytes;
	*p = user;
	return ok();
}

cudaError_t cudaFree(void *p)
{
	if (!p)
		return ok();
	auto it = g.allocs.find((uintptr_t)p);
	if (it == g.allocs.end())
		return set_error(cudaErrorInvalidValue, "cudaFree: %p is not a device allocation",
				 p);
	g.used -= it->second.size;
	free(it->second.base);
	g.allocs.erase(it);
	return ok();
}

/* A failed launch is reported once, by the first call that looks (a GPU
 * would keep reporting it: the context is lost; the tests go on). */
static cudaError_t take_pending(void)
{
	cudaError_t e = g.pending;
	if (e)
		g.last = cudaSuccess;
	g.pending = cudaSuccess;
	return e;
}

cudaError_t cudaMemcpy(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind)
{
	cudaError_t e = take_pending();
	if (e)
		return e;
	return cudaMemcpyAsync(dst, src, bytes, kind, nullptr);
}

cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind,
			    cudaStream_t s)
{
	(void)s;
	if (!bytes)
		return ok();
	int dst_dev = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
	int src_dev = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
	if (kind > cudaMemcpyDefault)
		return set_error(cudaErrorInvalidMemcpyDirection, "cudaMemcpy: invalid kind %d",
				 kind);
	if (kind != cudaMemcpyDefault) {
		if (dst_dev && !find_alloc(dst, bytes))
			return set_error(cudaErrorInvalidValue,
					 "cudaMemcpy: destination %p (+%zu bytes) is not inside a "
					 "device allocation",
					 dst, bytes);
		if (src_dev && !find_alloc(src, bytes))
			return set_error(
				cudaErrorInvalidValue,
				"cudaMemcpy: source %p (+%zu bytes) is not inside a device "
				"allocation",
				src, bytes);
		if (!dst_dev && is_device(dst))
			return set_error(cudaErrorInvalidValue,
					 "cudaMemcpy: destination %p is device memory but the copy "
					 "goes to the host",
					 dst);
		if (!src_dev && is_device(src))
			return set_error(
				cudaErrorInvalidValue,
				"cudaMemcpy: source %p is device memory but the copy comes "
				"from the host",
				src);
	}
	memmove(dst, src, bytes);
	return ok();
}

cudaError_t cudaMemset(void *p, int v, size_t bytes)
{
	return cudaMemsetAsync(p, v, bytes, nullptr);
}

cudaError_t cudaMemsetAsync(void *p, int v, size_t bytes, cudaStream_t s)
{
	(void)s;
	if (bytes && !find_alloc(p, bytes))
		return set_error(cudaErrorInvalidValue,
				 "cudaMemset: %p (+%zu bytes) is not inside a device allocation", p,
				 bytes);
	memset(p, v, bytes);
	return ok();
}

struct pv_emu_stream {
	unsigned flags;
};

struct pv_emu_event {
	std::chrono::steady_clock::time_point t;
	int recorded;
};

cudaError_t cudaStreamCreate(cudaStream_t *s)
{
	return cudaStreamCreateWithFlags(s, 0);
}

cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned flags)
{
	*s = new pv_emu_stream{ flags };
	return ok();
}

cudaError_t cudaStreamDestroy(cudaStream_t s)
{
	delete s;
	return ok();
}

cudaError_t cudaStreamSynchronize(cudaStream_t s)
{
	(void)s;
	return take_pending();
}

cudaError_t cudaEventCreate(cudaEvent_t *e)
{
	return cudaEventCreateWithFlags(e, 0);
}

cudaError_t cudaEventCreateWithFlags(cudaEvent_t *e, unsigned flags)
{
	(void)flags;
	*e = new pv_emu_event{ std::chrono::steady_clock::time_point(), 0 };
	return ok();
}

cudaError_t cudaEventDestroy(cudaEvent_t e)
{
	delete e;
	return ok();
}

cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s)
{
	(void)s;
	e->t = std::chrono::steady_clock::now();
	e->recorded = 1;
	return ok();
}

cudaError_t cudaEventSynchronize(cudaEvent_t e)
{
	(void)e;
	return take_pending();
}

cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t start, cudaEvent_t end)
{
	if (!start->recorded || !end->recorded)
		return set_error(cudaErrorInvalidResourceHandle,
				 "cudaEventElapsedTime: event not recorded");
	*ms = std::chrono::duration<float, std::milli>(end->t - start->t).count();
	return ok();
}

cudaError_t cudaDeviceSynchronize(void)
{
	return take_pending();
}

cudaError_t cudaGetLastError(void)
{
	cudaError_t e = g.last;
	g.last = cudaSuccess;
	if (e == g.pending)
		g.pending = cudaSuccess;
	return e;
}

cudaError_t cudaPeekAtLastError(void)
{
	return g.last;
}

const char *cudaGetErrorName(cudaError_t e)
{
	switch (e) {
	case cudaSuccess: return "cudaSuccess";
	case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
	case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
	case cudaErrorInitializationError: return "cudaErrorInitializationError";
	case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
	case cudaErrorInvalidMemcpyDirection: return "cudaErrorInvalidMemcpyDirection";
	case cudaErrorNoDevice: return "cudaErrorNoDevice";
	case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
	case cudaErrorInvalidResourceHandle: return "cudaErrorInvalidResourceHandle";
	case cudaErrorIllegalAddress: return "cudaErrorIllegalAddress";
	case cudaErrorLaunchFailure: return "cudaErrorLaunchFailure";
	}
	return "cudaErrorUnknown";
}

const char *cudaGetErrorString(cudaError_t e)
{
	switch (e) {
	case cudaSuccess: return "no error";
	case cudaErrorInvalidValue: return "invalid argument";
	case cudaErrorMemoryAllocation: return "out of memory";
	case cudaErrorInitializationError: return "initialization error";
	case cudaErrorInvalidConfiguration: return "invalid configuration argument";
	case cudaErrorInvalidMemcpyDirection: return "invalid copy direction for memcpy";
	case cudaErrorNoDevice: return "no CUDA-capable device is detected";
	case cudaErrorInvalidDevice: return "invalid device ordinal";
	case cudaErrorInvalidResourceHandle: return "invalid resource handle";
	case cudaErrorIllegalAddress: return "an illegal memory access was encountered";
	case cudaErrorLaunchFailure: return "unspecified launch failure";
	}
	return "unknown error";
}
