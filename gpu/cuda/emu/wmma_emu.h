/* The emulated nvcuda::wmma API (16x16x16): warp-collective loads, stores and mma. */

/*
 * A fragment is spread over the 32 lanes of a warp as on the GPU: each
 * lane holds num_elements of the tile.  Which lane holds which element is
 * unspecified by CUDA; here lane l holds elements l*num_elements ... of the
 * tile in row-major order, so code that assumes some other mapping gives
 * wrong results here as it would on some GPU.  Loads, stores and mma are
 * warp operations: every lane must call them, with the same pointer and
 * leading dimension (checked), and the pointer must be 32-byte aligned
 * with ldm a multiple of 16 bytes (checked).  Products are formed in float
 * (exact for half and bfloat16 inputs) and summed in k order.
 */
#ifndef PALAVER_WMMA_EMU_H
#define PALAVER_WMMA_EMU_H

namespace pv_emu
{
/* shared-memory accesses on behalf of another lane of the calling warp */
void *shared_read_as(region *r, int64_t i, int lane);
void *shared_write_as(region *r, int64_t i, int lane);
int64_t shared_byte_offset(region *r, int64_t i);
} // namespace pv_emu

namespace nvcuda
{
namespace wmma
{
struct matrix_a {
};
struct matrix_b {
};
struct accumulator {
};
struct row_major {
};
struct col_major {
};
enum layout_t { mem_row_major, mem_col_major };

template <class Use, int M, int N, int K, class T, class Layout = void> struct fragment {
	static_assert(M == 16 && N == 16 && K == 16, "the emulation has 16x16x16 tiles only");
	static constexpr int rows = std::is_same<Use, matrix_b>::value ? K : M;
	static constexpr int cols = std::is_same<Use, matrix_a>::value ? K : N;
	enum { num_elements = rows * cols / 32 };
	T x[num_elements];
};

template <class Use, int M, int N, int K, class T, class Layout, class V>
inline void fill_fragment(fragment<Use, M, N, K, T, Layout> &f, const V &v)
{
	for (int e = 0; e < f.num_elements; e++)
		f.x[e] = (T)v;
}
template <class Use, int M, int N, int K, class Layout>
inline void fill_fragment(fragment<Use, M, N, K, half, Layout> &f, float v)
{
	for (int e = 0; e < f.num_elements; e++)
		f.x[e] = __float2half(v);
}

} // namespace wmma
} // namespace nvcuda

namespace pv_emu
{
namespace wm
{
/* a memory operand: global memory, or an element of a shared array */
struct mem {
	void *global;
	region *r;
	int64_t i;
};

template <class T> inline mem operand(const T *p)
{
	return mem{ (void *)p, nullptr, 0 };
}
template <class T> inline mem operand(sptr<T> p)
{
	return mem{ nullptr, p.r, p.i };
}

struct desc {
	int rows, cols, ne;
	size_t elem;
	int col_major; /* element (r, c) at p[c * ldm + r] */
	const char *what;
};

void check_args(warp_arg *args[32], unsigned mask, const struct desc *d);

template <class T> struct io {
	static void load(warp_arg *args[32], unsigned mask, const void *ctx)
	{
		const desc *d = (const desc *)ctx;
		check_args(args, mask, d);
		const mem *m = (const mem *)args[0]->ptr2;
		unsigned ldm = (unsigned)args[0]->param;
		for (int l = 0; l < 32; l++) {
			T *x = (T *)args[l]->ptr;
			for (int e = 0; e < d->ne; e++) {
				int idx = l * d->ne + e, r = idx / d->cols, c = idx % d->cols;
				int64_t off =
					d->col_major ? (int64_t)c * ldm + r : (int64_t)r * ldm + c;
				const void *src = m->r ? shared_read_as(m->r, m->i + off, l)
						       : (const char *)m->global + off * sizeof(T);
				memcpy(&x[e], src, sizeof(T));
			}
		}
	}
	static void store(warp_arg *args[32], unsigned mask, const void *ctx)
	{
		const desc *d = (const desc *)ctx;
		check_args(args, mask, d);
		const mem *m = (const mem *)args[0]->ptr2;
		unsigned ldm = (unsigned)args[0]->param;
		for (int l = 0; l < 32; l++) {
			const T *x = (const T *)args[l]->ptr;
			for (int e = 0; e < d->ne; e++) {
				int idx = l * d->ne + e, r = idx / d->cols, c = idx % d->cols;
				int64_t off =
					d->col_major ? (int64_t)c * ldm + r : (int64_t)r * ldm + c;
				void *dst = m->r ? shared_write_as(m->r, m->i + off, l)
						 : (char *)m->global + off * sizeof(T);
				memcpy(dst, &x[e], sizeof(T));
			}
		}
	}
};

inline float to_f(half h)
{
	return __half2float(h);
}
inline float to_f(__nv_bfloat16 h)
{
	return __bfloat162float(h);
}
inline float to_f(float f)
{
	return f;
}

template <class TA, class TC> struct mma {
	/* args: ptr = d, ptr2 = a, ptr3 = b, ptr4 = c (each lane's fragments) */
	static void run(warp_arg *args[32], unsigned mask, const void *)
	{
		(void)mask;
		float a[16][16], b[16][16], c[16][16];
		for (int l = 0; l < 32; l++)
			for (int e = 0; e < 8; e++) {
				int idx = l * 8 + e;
				a[idx / 16][idx % 16] = to_f(((const TA *)args[l]->ptr2)[e]);
				b[idx / 16][idx % 16] = to_f(((const TA *)args[l]->ptr3)[e]);
				c[idx / 16][idx % 16] = to_f(((const TC *)args[l]->ptr4)[e]);
			}
		for (int l = 0; l < 32; l++)
			for (int e = 0; e < 8; e++) {
				int idx = l * 8 + e, i = idx / 16, j = idx % 16;
				float s = c[i][j];
				for (int k = 0; k < 16; k++)
					s += a[i][k] * b[k][j];
				((TC *)args[l]->ptr)[e] = (TC)s;
			}
	}
};

template <class T, class P>
inline void load(void *frag, P p, unsigned ldm, const desc *d, const char *file, int line)
{
	mem m = operand(p);
	warp_arg a{};
	a.ptr = frag;
	a.ptr2 = &m;
	a.param = (int)ldm;
	a.in = (uint64_t)(m.r ? shared_byte_offset(m.r, m.i) : (int64_t)(uintptr_t)m.global);
	warp_op(W_WMMA_LOAD, 0xffffffffu, &a, file, line, &io<T>::load, d);
}

template <class T, class P>
inline void store(const void *frag, P p, unsigned ldm, const desc *d, const char *file, int line)
{
	mem m = operand(p);
	warp_arg a{};
	a.ptr = (void *)frag;
	a.ptr2 = &m;
	a.param = (int)ldm;
	a.in = (uint64_t)(m.r ? shared_byte_offset(m.r, m.i) : (int64_t)(uintptr_t)m.global);
	warp_op(W_WMMA_STORE, 0xffffffffu, &a, file, line, &io<T>::store, d);
}

template <class L> constexpr int is_col()
{
	return std::is_same<L, nvcuda::wmma::col_major>::value;
}
} // namespace wm
} // namespace pv_emu

namespace nvcuda
{
namespace wmma
{
/* matrix_a / matrix_b from global (T *) or shared (sptr<T>) memory */
template <class Use, class T, class Layout, class P>
inline void load_matrix_sync(fragment<Use, 16, 16, 16, T, Layout> &f, P p, unsigned ldm,
			     PV_EMU_HERE)
{
	static_assert(!std::is_same<Use, accumulator>::value, "accumulator loads take a layout");
	static const pv_emu::wm::desc d = {
		16, 16, 8, sizeof(T), pv_emu::wm::is_col<Layout>(), "wmma::load_matrix_sync"
	};
	pv_emu::wm::load<T>(f.x, p, ldm, &d, file, line);
}

template <class P>
inline void load_matrix_sync(fragment<accumulator, 16, 16, 16, float> &f, P p, unsigned ldm,
			     layout_t layout, PV_EMU_HERE)
{
	static const pv_emu::wm::desc row = { 16, 16, 8, 4, 0, "wmma::load_matrix_sync" };
	static const pv_emu::wm::desc col = { 16, 16, 8, 4, 1, "wmma::load_matrix_sync" };
	pv_emu::wm::load<float>(f.x, p, ldm, layout == mem_col_major ? &col : &row, file, line);
}

template <class P>
inline void store_matrix_sync(P p, const fragment<accumulator, 16, 16, 16, float> &f, unsigned ldm,
			      layout_t layout, PV_EMU_HERE)
{
	static const pv_emu::wm::desc row = { 16, 16, 8, 4, 0, "wmma::store_matrix_sync" };
	static const pv_emu::wm::desc col = { 16, 16, 8, 4, 1, "wmma::store_matrix_sync" };
	pv_emu::wm::store<float>(f.x, p, ldm, layout == mem_col_major ? &col : &row, file, line);
}

template <class TA, class LA, class LB>
inline void mma_sync(fragment<accumulator, 16, 16, 16, float> &d,
		     const fragment<matrix_a, 16, 16, 16, TA, LA> &a,
		     const fragment<matrix_b, 16, 16, 16, TA, LB> &b,
		     const fragment<accumulator, 16, 16, 16, float> &c, PV_EMU_HERE)
{
	pv_emu::warp_arg w{};
	w.ptr = d.x;
	w.ptr2 = (void *)a.x;
	w.ptr3 = (void *)b.x;
	w.ptr4 = (void *)c.x;
	pv_emu::warp_op(pv_emu::W_WMMA_MMA, 0xffffffffu, &w, file, line,
			&pv_emu::wm::mma<TA, float>::run, nullptr);
}
} // namespace wmma
} // namespace nvcuda

#endif
