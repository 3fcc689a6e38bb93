/* Per-CPU kernel choice: each weight type's gemv and gemm level measured on this CPU, cached by CPU model. */
#ifndef PALAVER_QUANT_SELECT_H
#define PALAVER_QUANT_SELECT_H

#include "quant.h"

#include <stddef.h>

/* The weight types calibrated (those quant_quantize_row can write); the
 * others run the widest level. */
#define QUANT_SELECT_MAX 16

struct quant_select_row {
	int type;
	/* throughput per level, 0 = not measured (level absent, or the C twin):
	 * gemv in GB/s of weights read, gemm in GOP/s (2 per multiply-add) */
	double gemv[QUANT_ISA_COUNT];
	double gemm[QUANT_ISA_COUNT];
	enum quant_isa gemv_level, gemm_level; /* chosen */
};

struct quant_selection {
	char cpu[160]; /* the cache key: brand string, family, model, stepping */
	int n;
	struct quant_select_row row[QUANT_SELECT_MAX];
	int from_cache;    /* read from the cache file, not measured now */
	double measure_ms; /* CPU time the measuring took (0 from the cache) */
};

/* This CPU's key ("AMD EPYC 9R14 family 25 model 17 stepping 1"). */
void quant_cpu_key(char *buf, size_t n);
/* A per-CPU file's name for a key: <prefix><key, only [A-Za-z0-9._-]>.txt. */
void quant_cpu_file_name(const char *prefix, const char *key, char *buf, size_t n);
/* The kernel choice's: kernels-<key>.txt. */
void quant_select_file_name(const char *key, char *buf, size_t n);

/* Measure every calibrated type at every SIMD level this CPU has (about a
 * tenth of a second, one thread) and choose per type and operation: the
 * widest level unless another is more than 5% faster. */
void quant_select_measure(struct quant_selection *s);
/* Put each row's levels into the dispatch table (quant_kernel_choose). */
void quant_select_apply(const struct quant_selection *s);
/* Read / write a selection file.  load: 1 read, 0 absent or made for
 * another CPU or palaver version (measure again), -1 unreadable (error()). */
int quant_select_load(struct quant_selection *s, const char *path);
int quant_select_save(const struct quant_selection *s, const char *path);

/*
 * Settings for the first model load: isa is "auto" (the cached or
 * measured choice) or a level's name (every type at that level); cache_dir
 * is where the selection file lives (NULL or "": measure, keep nothing).
 * -1 (error()) for an unknown name or a level this CPU lacks.  Without a
 * call, every type runs the widest level (what tests see).
 */
int quant_select_configure(const char *isa, const char *cache_dir);
/* Apply the configured choice once per process; later calls return at
 * once.  A cache that cannot be read or written is no failure: the choice
 * is measured (again next time).  *out (if not NULL) gets the selection in use (n = 0 when a
 * level was forced or nothing configured). */
void quant_select_ensure(struct quant_selection *out);
/* What quant_select_configure() set: the forced level or -1 for auto, and
 * the cache file's path (NULL = none); valid until the next configure. */
int quant_select_forced(void);
const char *quant_select_cache_path(void);

#endif
