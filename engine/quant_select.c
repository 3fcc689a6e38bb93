/* Per-CPU kernel choice: each weight type's gemv and gemm level measured on this CPU, cached by CPU model. */

/*
 * DESIGN
 *
 * Which kernels are fastest depends on the microarchitecture, not only on
 * what cpuid lists: Zen 4 runs 512-bit operations as two 256-bit halves, so
 * its 512-bit kernels may lose to the 256-bit VNNI ones that Zen 5 or an
 * Intel server part run slower.  Rather than a table of CPU names, the
 * first model load measures: every calibrated type's gemv (on 64 MiB of
 * weights, beyond the last-level cache as decode's are: on 4 MiB, in L3,
 * the 256-bit BF16 and F16 gemv measured as fast as the 512-bit ones and
 * were sometimes chosen, then decoded from memory at 0.6-0.75x their speed) and
 * gemm (64 tokens over a panel that
 * stays in L2, as prefill's does) at each SIMD level, three interleaved
 * rounds, the best of each by thread CPU time (a shared machine only ever
 * slows a run down).
 * The widest level stays unless another is more than 5% faster, so noise
 * does not flip the choice.  The result is written to
 * $XDG_CACHE_HOME/palaver/kernels-<cpu>.txt (the key holds the brand
 * string, family, model and stepping; the file names palaver's version, so
 * new kernels are measured again) and read on later runs: a deleted or
 * stale file costs one more calibration, nothing else.
 *
 * Every level computes the same results up to float rounding order (each
 * meets the C twins in test_quant), so the choice changes speed only.
 */
#include "quant_select.h"
#include "quant.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "report.h"
#include "strbuf.h"
#include "util.h"
#include "xalloc.h"

#ifndef PALAVER_VERSION
#define PALAVER_VERSION "dev"
#endif
/* the number moves when kernels change within a version (2: Q4_K and BF16
 * gemm, issue 19; 3 and 4: the strips; 5: gemv measured from memory; 6:
 * the strips rescale per Q8_K block), so that a development build measures
 * them again */
#define FILE_MAGIC "palaver-kernels 6"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>

void quant_cpu_key(char *buf, size_t n)
{
	unsigned r[12] = { 0 }, a, b, c, d;
	char brand[49] = "unknown cpu";
	if (__get_cpuid(0x80000000, &a, &b, &c, &d) && a >= 0x80000004) {
		for (unsigned i = 0; i < 3; i++)
			__get_cpuid(0x80000002 + i, &r[4 * i], &r[4 * i + 1], &r[4 * i + 2],
				    &r[4 * i + 3]);
		memcpy(brand, r, 48);
		brand[48] = '\0';
	}
	unsigned fam = 0, model = 0, step = 0;
	if (__get_cpuid(1, &a, &b, &c, &d)) {
		fam = (a >> 8) & 0xf;
		model = (a >> 4) & 0xf;
		step = a & 0xf;
		if (fam == 0xf)
			fam += (a >> 20) & 0xff;
		if (fam == 6 || fam >= 0xf)
			model |= ((a >> 16) & 0xf) << 4;
	}
	/* the brand string is padded with spaces at either end */
	char *s = brand;
	while (*s == ' ')
		s++;
	size_t len = strlen(s);
	while (len && s[len - 1] == ' ')
		s[--len] = '\0';
	snprintf(buf, n, "%s family %u model %u stepping %u", s, fam, model, step);
}
#else
void quant_cpu_key(char *buf, size_t n)
{
	snprintf(buf, n, "unknown cpu");
}
#endif

void quant_select_file_name(const char *key, char *buf, size_t n)
{
	quant_cpu_file_name("kernels-", key, buf, n);
}

void quant_cpu_file_name(const char *prefix, const char *key, char *buf, size_t n)
{
	struct strbuf sb = STRBUF_INIT;
	int dash = 0;
	strbuf_addstr(&sb, prefix);
	for (const char *p = key; *p && sb.len < 100; p++) {
		int ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
			 (*p >= '0' && *p <= '9') || *p == '.' || *p == '_';
		if (ok) {
			strbuf_addch(&sb, *p);
			dash = 0;
		} else if (!dash) {
			strbuf_addch(&sb, '-');
			dash = 1;
		}
	}
	strbuf_addstr(&sb, ".txt");
	snprintf(buf, n, "%s", sb.buf);
	strbuf_release(&sb);
}

/* ---- measuring -------------------------------------------------------------------------- */

static const int cal_types[] = { QT_F16,  QT_BF16, QT_Q8_0,   QT_Q4_0,   QT_Q4_K,
				 QT_Q5_K, QT_Q6_K, QT_IQ4_NL, QT_IQ4_XS, QT_MXFP4 };
#define N_CAL ((int)(sizeof(cal_types) / sizeof(cal_types[0])))
_Static_assert(N_CAL <= QUANT_SELECT_MAX, "room for every calibrated type");

#define CAL_N 4096             /* elements per row */
#define CAL_WBYTES (64u << 20) /* gemv's weights: past the last-level cache */
#define CAL_GEMM_ROWS 128      /* gemm's panel: in L2 */
#define CAL_TOK 64             /* gemm's tokens */
#define CAL_ROUNDS 3
#define CAL_GEMV_REPS 1 /* passes over them a round */
#define CAL_MARGIN 1.05 /* another level must beat the widest by this */

/* This thread's CPU time: on a shared machine the time it was not running
 * is left out, which wall-clock time would charge to whichever level ran. */
static uint64_t cpu_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The SIMD levels worth measuring, widest first: AVX-512 without VNNI is
 * the VNNI level's float kernels and AVX2's integer ones, so it adds nothing. */
static int candidates(enum quant_isa out[3])
{
	static const enum quant_isa order[] = { QUANT_ISA_AVX512_VNNI, QUANT_ISA_AVX512_256,
						QUANT_ISA_AVX2 };
	int k = 0;
	for (int i = 0; i < 3; i++)
		if (quant_isa_supported(order[i]))
			out[k++] = order[i];
	return k;
}

static enum quant_isa pick(const double *v, const enum quant_isa *cand, int nc)
{
	enum quant_isa best = cand[0];
	double bv = v[best] * CAL_MARGIN;
	for (int i = 1; i < nc; i++)
		if (v[cand[i]] > bv) {
			best = cand[i];
			bv = v[cand[i]];
		}
	return best;
}

static void measure_type(struct quant_select_row *row, const enum quant_isa *cand, int nc,
			 uint8_t *w, uint8_t *w4, uint8_t *act, float *out, float *x)
{
	const struct quant_traits *tr = quant_traits(row->type);
	size_t rb, ab;
	quant_row_bytes(row->type, CAL_N, &rb);
	quant_row_bytes(tr->dot_type, CAL_N, &ab);
	int rows = (int)(CAL_WBYTES / rb);
	rows &= ~3;

	/* one row of plausible weights, copied: the values do not change the time */
	for (int i = 0; i < CAL_N; i++)
		x[i] = 0.02f * (float)((i * 37) % 101 - 50) / 50.0f;
	quant_quantize_row(row->type, x, w, CAL_N);
	for (int r = 1; r < rows; r++)
		memcpy(w + (size_t)r * rb, w, rb);
	for (int t = 0; t < CAL_TOK; t++) {
		for (int i = 0; i < CAL_N; i++)
			x[i] = (float)((i * 13 + t * 7) % 29 - 14) / 14.0f;
		quant_quantize_row(tr->dot_type, x, act + (size_t)t * ab, CAL_N);
	}
	/* at the VNNI level a repackable type runs its repacked rows */
	int rt = -1;
	if (quant_isa_supported(QUANT_ISA_AVX512_VNNI)) {
		quant_kernel_choose(row->type, 1, QUANT_ISA_AVX512_VNNI);
		rt = quant_repack_type(row->type, CAL_N);
		if (rt >= 0)
			quant_repack_rows(row->type, CAL_N, w, rb, rows, w4);
	}

	memset(row->gemv, 0, sizeof(row->gemv));
	memset(row->gemm, 0, sizeof(row->gemm));
	for (int round = 0; round < CAL_ROUNDS; round++) {
		for (int c = 0; c < nc; c++) {
			enum quant_isa l = cand[c];
			quant_kernel_choose(row->type, 0, l);
			quant_kernel_choose(row->type, 1, l);
			int ty = l == QUANT_ISA_AVX512_VNNI && rt >= 0 ? rt : row->type;
			const uint8_t *wp = ty == rt ? w4 : w;
			uint64_t t0 = cpu_ns();
			for (int k = 0; k < CAL_GEMV_REPS; k++)
				quant_gemv(ty, CAL_N, wp, rb, rows, act, out);
			uint64_t t1 = cpu_ns();
			quant_gemm(ty, CAL_N, wp, rb, CAL_GEMM_ROWS, act, ab, CAL_TOK, out,
				   CAL_GEMM_ROWS);
			uint64_t t2 = cpu_ns();
			double gbs = (double)CAL_GEMV_REPS * (double)rows * (double)rb /
				     (double)(t1 - t0 ? t1 - t0 : 1);
			double gops = 2.0 * CAL_N * CAL_GEMM_ROWS * CAL_TOK /
				      (double)(t2 - t1 ? t2 - t1 : 1);
			if (gbs > row->gemv[l])
				row->gemv[l] = gbs;
			if (gops > row->gemm[l])
				row->gemm[l] = gops;
		}
	}
	row->gemv_level = pick(row->gemv, cand, nc);
	row->gemm_level = pick(row->gemm, cand, nc);
}

void quant_select_measure(struct quant_selection *s)
{
	enum quant_isa cand[3];
	int nc = candidates(cand);
	memset(s, 0, sizeof(*s));
	quant_cpu_key(s->cpu, sizeof(s->cpu));
	if (!nc)
		return; /* plain C only: nothing to choose */
	uint64_t t0 = cpu_ns();
	uint8_t *w = try_alloc_aligned(CAL_WBYTES, 1);
	uint8_t *w4 = try_alloc_aligned(CAL_WBYTES, 1);
	/* activations: the widest format is F32, 4 bytes an element */
	uint8_t *act = try_alloc_aligned((size_t)CAL_TOK * CAL_N, 4);
	float *out =
		try_alloc_aligned((size_t)CAL_WBYTES / 16 + CAL_GEMM_ROWS * CAL_TOK, sizeof(float));
	float *x = xmalloc(CAL_N * sizeof(float));
	if (w && w4 && act && out) {
		for (int i = 0; i < N_CAL; i++) {
			s->row[s->n].type = cal_types[i];
			measure_type(&s->row[s->n], cand, nc, w, w4, act, out, x);
			s->n++;
		}
	}
	free(w);
	free(w4);
	free(act);
	free(out);
	free(x);
	quant_isa_set(quant_isa_best());
	s->measure_ms = (double)(cpu_ns() - t0) / 1e6;
}

void quant_select_apply(const struct quant_selection *s)
{
	quant_isa_set(quant_isa_best());
	for (int i = 0; i < s->n; i++) {
		quant_kernel_choose(s->row[i].type, 0, s->row[i].gemv_level);
		quant_kernel_choose(s->row[i].type, 1, s->row[i].gemm_level);
	}
}

/* ---- the cache file ------------------------------------------------------------------------ */

static int type_from_name(const char *name)
{
	for (int i = 0; i < N_CAL; i++)
		if (!strcmp(quant_type_name(cal_types[i]), name))
			return cal_types[i];
	return -1;
}

int quant_select_save(const struct quant_selection *s, const char *path)
{
	struct strbuf sb = STRBUF_INIT;
	strbuf_addstr(&sb, "# kernel levels measured on this CPU by palaver; delete this file to "
			   "measure again\n# type op chosen, then GB/s (gemv) or GOP/s (gemm) per "
			   "level:");
	for (int l = 0; l < QUANT_ISA_COUNT; l++)
		strbuf_addf(&sb, " %s", quant_isa_name((enum quant_isa)l));
	strbuf_addf(&sb, "\n%s %s\ncpu %s\n", FILE_MAGIC, PALAVER_VERSION, s->cpu);
	for (int i = 0; i < s->n; i++) {
		const struct quant_select_row *r = &s->row[i];
		for (int op = 0; op < 2; op++) {
			const double *v = op ? r->gemm : r->gemv;
			strbuf_addf(&sb, "%s %s %s", quant_type_name(r->type), op ? "gemm" : "gemv",
				    quant_isa_name(op ? r->gemm_level : r->gemv_level));
			for (int l = 0; l < QUANT_ISA_COUNT; l++)
				strbuf_addf(&sb, " %.2f", v[l]);
			strbuf_addch(&sb, '\n');
		}
	}
	int rc = write_file_replace(path, sb.buf, sb.len);
	strbuf_release(&sb);
	return rc;
}

int quant_select_load(struct quant_selection *s, const char *path)
{
	char line[512], key[160], want[64];
	FILE *f = fopen(path, "r");
	int lineno = 0, seen_magic = 0, seen_cpu = 0;
	memset(s, 0, sizeof(*s));
	if (!f) {
		if (errno == ENOENT)
			return 0;
		int e = errno;
		return error("cannot read '%s': %s", path, strerror(e));
	}
	quant_cpu_key(key, sizeof(key));
	snprintf(want, sizeof(want), "%s %s", FILE_MAGIC, PALAVER_VERSION);
	while (fgets(line, sizeof(line), f)) {
		lineno++;
		line[strcspn(line, "\n")] = '\0';
		if (line[0] == '#' || !line[0])
			continue;
		if (!seen_magic) {
			if (strcmp(line, want))
				goto stale; /* another version's kernels: measure again */
			seen_magic = 1;
			continue;
		}
		if (!seen_cpu) {
			if (strncmp(line, "cpu ", 4) || strcmp(line + 4, key))
				goto stale;
			snprintf(s->cpu, sizeof(s->cpu), "%s", key);
			seen_cpu = 1;
			continue;
		}
		char tname[32], op[8], lname[32];
		double v[QUANT_ISA_COUNT];
		_Static_assert(QUANT_ISA_COUNT == 5, "the line format lists five levels");
		if (sscanf(line, "%31s %7s %31s %lf %lf %lf %lf %lf", tname, op, lname, &v[0],
			   &v[1], &v[2], &v[3], &v[4]) != 8)
			goto bad;
		int type = type_from_name(tname), lv = quant_isa_from_name(lname);
		int gemm = !strcmp(op, "gemm");
		if (type < 0 || lv < 0 || (!gemm && strcmp(op, "gemv")))
			goto bad;
		if (!quant_isa_supported((enum quant_isa)lv))
			goto stale;
		int i = 0;
		while (i < s->n && s->row[i].type != type)
			i++;
		if (i == s->n) {
			if (s->n == QUANT_SELECT_MAX)
				goto bad;
			memset(&s->row[i], 0, sizeof(s->row[i]));
			s->row[i].type = type;
			s->row[i].gemv_level = s->row[i].gemm_level = quant_isa_best();
			s->n++;
		}
		memcpy(gemm ? s->row[i].gemm : s->row[i].gemv, v, sizeof(v));
		if (gemm)
			s->row[i].gemm_level = (enum quant_isa)lv;
		else
			s->row[i].gemv_level = (enum quant_isa)lv;
	}
	fclose(f);
	if (!seen_cpu)
		goto stale_closed;
	s->from_cache = 1;
	return 1;
bad:
	fclose(f);
	memset(s, 0, sizeof(*s));
	return error("'%s' line %d: not a kernel choice line", path, lineno);
stale:
	fclose(f);
stale_closed:
	memset(s, 0, sizeof(*s));
	return 0;
}

/* ---- once per process ------------------------------------------------------------------------ */

static pthread_mutex_t select_lock = PTHREAD_MUTEX_INITIALIZER;
static int configured, applied;
static int forced = -1; /* a level, or -1 for auto */
static char *cache_path;
static struct quant_selection current;

int quant_select_configure(const char *isa, const char *cache_dir)
{
	int lv = -1;
	if (isa && strcmp(isa, "auto")) {
		lv = quant_isa_from_name(isa);
		if (lv < 0)
			return error("unknown isa '%s' (auto, scalar, avx2, avx512-256, avx512 or "
				     "avx512-vnni)",
				     isa);
		if (!quant_isa_supported((enum quant_isa)lv))
			return error("isa '%s' is not supported by this cpu", isa);
	}
	pthread_mutex_lock(&select_lock);
	forced = lv;
	free(cache_path);
	cache_path = NULL;
	if (cache_dir && *cache_dir) {
		char key[160], name[128];
		struct strbuf sb = STRBUF_INIT;
		quant_cpu_key(key, sizeof(key));
		quant_select_file_name(key, name, sizeof(name));
		strbuf_addf(&sb, "%s/%s", cache_dir, name);
		cache_path = strbuf_detach(&sb, NULL);
	}
	configured = 1;
	applied = 0;
	pthread_mutex_unlock(&select_lock);
	return 0;
}

void quant_select_ensure(struct quant_selection *out)
{
	pthread_mutex_lock(&select_lock);
	if (configured && !applied) {
		memset(&current, 0, sizeof(current));
		if (forced >= 0) {
			quant_isa_set((enum quant_isa)forced);
		} else {
			int got = cache_path ? quant_select_load(&current, cache_path) : 0;
			if (got < 0)
				error_clear(); /* a damaged cache is measured again and rewritten */
			if (got <= 0) {
				quant_select_measure(&current);
				if (cache_path && quant_select_save(&current, cache_path) < 0)
					error_clear(); /* read-only cache: measure next time */
			}
			quant_select_apply(&current);
		}
		applied = 1;
	}
	if (out)
		*out = current;
	pthread_mutex_unlock(&select_lock);
}

int quant_select_forced(void)
{
	return forced;
}

const char *quant_select_cache_path(void)
{
	return cache_path;
}
