/* palaver mkmodel: write a GGUF of any family in the architecture table with seeded random weights. */
#include "arch.h"
#include "commands.h"
#include "gguf.h"
#include "gguf_write.h"
#include "quant.h"
#include "report.h"
#include "util.h"
#include "xalloc.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/*
 * DESIGN
 *
 * The header (metadata and every tensor's shape and type) is known up front,
 * so the writer emits it first and then each tensor's data is generated and
 * converted in chunks of rows and streamed to disk: memory stays at a few
 * megabytes whatever the model size.  Each tensor has its own random stream
 * (seed mixed with the tensor's index), so a tensor's float values do not
 * depend on the target type or on the other tensors' sizes.
 *
 * The tensors and family keys come from the architecture table (arch.c), so
 * every family palaver runs can be written: the required tensors of a
 * block, and a fused tensor where the family allows it instead of its
 * parts (phi3's attn_qkv), as real files hold them.
 *
 * Weights are approximately normal with std 0.02 (a sum of four uniforms,
 * cheap and close enough), norms are 1.0 and biases small, so that a forward
 * pass through the model stays numerically tame.  Token embeddings have unit
 * RMS per row (std 1, or 1/sqrt(dim) where the family multiplies them by
 * sqrt(dim)), so that each token's residual stream stays its own: with std
 * 0.02 the blocks' outputs -- in a random model mostly the attention's
 * near-uniform average over the context -- swamp the embeddings, every
 * token looks alike to the layers after the first, and a mixture's routers
 * send nearly all tokens to the same few experts (measured with 128
 * experts, 8 used, 256 tokens: 35 experts in use by layer 5 against 128
 * with unit embeddings), which no trained model does and which would make
 * the benchmarks of decode and of grouping by expert meaningless.  Type mixes follow what
 * llama.cpp's quantizer does for the same name, so benchmark models look like
 * real ones: Q4_0 files keep output.weight in Q6_K; Q4_K means a Q4_K_M-like
 * mix (output.weight Q6_K; attn_v and ffn_down Q6_K in the first and last
 * eighth of the layers and every third one between); IQ4_NL and IQ4_XS keep
 * output.weight in Q6_K, and attn_v (when four or more heads share a KV head)
 * and ffn_down of the first eighth of the layers in Q5_K, as llama.cpp does
 * without an importance matrix; norms stay F32.  MXFP4 in a mixture of
 * experts is llama.cpp's MXFP4_MOE (the expert tensors MXFP4, every other
 * matrix Q8_0, the router F32), as gpt-oss's files are; a dense model has
 * no expert tensors, so there every matrix but output.weight (Q8_0) is
 * MXFP4, so that the kernels can be run and measured.
 */

static const char usage[] =
	"usage: palaver mkmodel [options] OUTPUT.gguf\n"
	"\n"
	"Write a model with seeded random weights (for tests and benchmarks).\n"
	"\n"
	"  --arch A        a model family (below)                        [llama]\n"
	"  --dim N         embedding length                              [256]\n"
	"  --layers N      blocks                                        [2]\n"
	"  --heads N       attention heads                               [4]\n"
	"  --kv-heads N    key/value heads (grouped-query attention)     [heads]\n"
	"  --head-dim N    size of one head (qwen3 and gemma3 use more than\n"
	"                  dim / heads)                                  [dim / heads]\n"
	"  --ffn N         feed-forward length                           [3 x dim]\n"
	"  --experts N     a mixture of N experts in place of each FFN (llama:\n"
	"                  Mixtral's layout)                             [qwen3moe: 8]\n"
	"  --experts-used K  experts each token goes through             [2]\n"
	"  --expert-ffn N  one expert's hidden width (qwen3moe; llama's experts\n"
	"                  are --ffn wide)                               [ffn]\n"
	"  --ctx N         context length                                [2048]\n"
	"  --vocab FILE    copy the tokenizer (all tokenizer.* keys) of a GGUF file;\n"
	"                  the vocabulary size follows it\n"
	"  --vocab N       vocabulary size without a tokenizer           [512]\n"
	"  --type T        F32, F16, BF16, Q8_0, Q4_0, Q4_K (a Q4_K_M-like mix),\n"
	"                  Q6_K, IQ4_NL, IQ4_XS (llama.cpp's mixes) or MXFP4\n"
	"                                                                [F32]\n"
	"  --tied          no output.weight: the output reuses token_embd\n"
	"  --seed N        random seed                                   [1]\n"
	"  -h, --help      show this help\n"
	"\n"
	"Families: %s.\n";

struct mk_opts {
	const struct arch *arch;
	long dim, layers, heads, kv_heads, head_dim, ffn, ctx, vocab;
	long experts, experts_used, expert_ffn; /* experts 0: a dense FFN */
	const char *vocab_file;                 /* NULL: no tokenizer */
	int type;                               /* ggml type id of the weight matrices */
	int tied;                               /* omit output.weight */
	uint64_t seed;
	const char *out;
};

/* llama.cpp's general.file_type numbers for the mixes written here. */
static uint32_t file_type_of(int type)
{
	switch (type) {
	case 0: return 0;   /* ALL_F32 */
	case 1: return 1;   /* MOSTLY_F16 */
	case 2: return 2;   /* MOSTLY_Q4_0 */
	case 8: return 7;   /* MOSTLY_Q8_0 */
	case 12: return 15; /* MOSTLY_Q4_K_M */
	case 20: return 25; /* MOSTLY_IQ4_NL */
	case 23: return 30; /* MOSTLY_IQ4_XS */
	case 30: return 32; /* MOSTLY_BF16 */
	case 39: return 38; /* MOSTLY_MXFP4_MOE */
	default: return 18; /* MOSTLY_Q6_K */
	}
}

/* ---- random numbers -------------------------------------------------------- */

static uint64_t splitmix64(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Approximately N(0, std^2): the sum of four 16-bit uniforms has variance 1/3. */
static void fill_normal(uint64_t *s, float *x, int64_t n, float std)
{
	const float k = std * 1.7320508f / 65536.0f; /* sqrt(3) / 2^16 */
	for (int64_t i = 0; i < n; i++) {
		uint64_t r = splitmix64(s);
		float sum = (float)(r & 0xffff) + (float)((r >> 16) & 0xffff) +
			    (float)((r >> 32) & 0xffff) + (float)(r >> 48);
		x[i] = (sum - 2.0f * 65535.0f) * k;
	}
}

/* ---- conversion ------------------------------------------------------------- */

/* Convert n floats (one row) to type t at dst. */
static int convert_row(int t, const float *src, void *dst, int64_t n)
{
	if (quant_quantize_row(t, src, dst, n) < 0)
		return error("mkmodel: cannot quantize to %s", gguf_type_name(t));
	return 0;
}

/* ---- the model's tensors ---------------------------------------------------- */

enum init_kind { INIT_WEIGHT, INIT_NORM, INIT_BIAS, INIT_EMBD };

struct mk_tensor {
	char name[64];
	int n_dims;
	int64_t ne[3]; /* ne[2]: experts of a 3-D tensor, else 1 */
	int type;
	enum init_kind init;
};

static int use_more_bits(long i, long n)
{
	return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2;
}

/* Type of a weight matrix under the file's type mix. */
static int weight_type(const struct mk_opts *o, const char *name, long layer)
{
	if (strstr(name, "ffn_gate_inp.weight")) /* the router: llama.cpp keeps it F32 */
		return QT_F32;
	if (o->type == 2 && !strcmp(name, "output.weight"))
		return 14;
	if (o->type == 12) {
		if (!strcmp(name, "output.weight"))
			return 14;
		/* "ffn_down": the experts' ffn_down_exps too, as llama.cpp matches it */
		if ((strstr(name, "attn_v.weight") || strstr(name, "ffn_down")) &&
		    use_more_bits(layer, o->layers))
			return 14;
	}
	if (o->type == QT_IQ4_NL || o->type == QT_IQ4_XS) {
		if (!strcmp(name, "output.weight"))
			return QT_Q6_K;
		if (strstr(name, "attn_v.weight") && o->heads / o->kv_heads >= 4)
			return QT_Q5_K;
		if (strstr(name, "ffn_down.weight") && layer < o->layers / 8)
			return QT_Q5_K;
	}
	/* a mixture: llama.cpp's MXFP4_MOE (the experts MXFP4, the rest Q8_0,
	 * as gpt-oss's files are) */
	if (o->type == QT_MXFP4 && o->experts)
		return strstr(name, "_exps.") ? QT_MXFP4 : QT_Q8_0;
	if (o->type == QT_MXFP4 && !strcmp(name, "output.weight"))
		return QT_Q8_0;
	return o->type;
}

static void add(struct mk_tensor *ts, int *n, const struct mk_opts *o, long layer,
		const char *suffix, int nd, int64_t ne0, int64_t ne1, int64_t ne2,
		enum init_kind init)
{
	struct mk_tensor *t = &ts[(*n)++];
	if (layer >= 0)
		snprintf(t->name, sizeof(t->name), "blk.%ld.%s", layer, suffix);
	else
		snprintf(t->name, sizeof(t->name), "%s", suffix);
	t->n_dims = nd;
	t->ne[0] = ne0;
	t->ne[1] = ne1;
	t->ne[2] = ne2;
	t->init = init;
	t->type = init == INIT_WEIGHT || init == INIT_EMBD ? weight_type(o, t->name, layer) : 0;
}

static int64_t dim_of(const struct mk_opts *o, int d)
{
	int64_t hd = o->head_dim, q = hd * o->heads, kv = hd * o->kv_heads;
	switch (d) {
	case DIM_EMBD: return o->dim;
	case DIM_Q: return q;
	case DIM_K:
	case DIM_V: return kv;
	case DIM_ATT: return q;
	case DIM_QKV: return q + 2 * kv;
	case DIM_FF: return o->ffn;
	case DIM_FF2: return 2 * o->ffn;
	case DIM_HEAD_K: return hd;
	case DIM_EXPERT: return o->experts;
	case DIM_FF_EXP: return o->expert_ffn;
	case DIM_HEADS: return o->heads;
	default: return 0;
	}
}

/* A file of the family holds this tensor: the required ones, the dense
 * FFN or the experts', and an optional fused tensor that others are the
 * alternative to. */
static int written(const struct mk_opts *o, const struct arch_tensor *t)
{
	const struct arch *a = o->arch;
	if (t->need == NEED_REQ)
		return 1;
	if (t->need == NEED_DENSE || t->need == NEED_MOE)
		return (t->need == NEED_MOE) == (o->experts > 0);
	if (t->need == NEED_ALT)
		return 0;
	for (int i = 0; i < a->n_tensors; i++)
		if (a->tensors[i].need == NEED_ALT && a->tensors[i].alt == t->slot)
			return 1;
	return 0;
}

/* The tensor list in file order; *n set to its length. */
static struct mk_tensor *plan(const struct mk_opts *o, int *n)
{
	const struct arch *a = o->arch;
	struct mk_tensor *ts = xcalloc((size_t)o->layers * (size_t)a->n_tensors + 3, sizeof(*ts));
	*n = 0;
	add(ts, n, o, -1, "token_embd.weight", 2, o->dim, o->vocab, 1, INIT_EMBD);
	add(ts, n, o, -1, "output_norm.weight", 1, o->dim, 1, 1, INIT_NORM);
	if (!o->tied)
		add(ts, n, o, -1, "output.weight", 2, o->dim, o->vocab, 1, INIT_WEIGHT);
	for (long l = 0; l < o->layers; l++)
		for (int i = 0; i < a->n_tensors; i++) {
			const struct arch_tensor *t = &a->tensors[i];
			if (!written(o, t))
				continue;
			/* biases (gpt-oss's experts' are 2-D) and attention sinks
			 * are small numbers kept in F32, not weights */
			int bias = strstr(t->name, ".bias") || strstr(t->name, "attn_sinks");
			enum init_kind k = bias ? INIT_BIAS : t->nd >= 2 ? INIT_WEIGHT : INIT_NORM;
			add(ts, n, o, l, t->name, t->nd, dim_of(o, t->dim[0]),
			    t->nd >= 2 ? dim_of(o, t->dim[1]) : 1,
			    t->nd == 3 ? dim_of(o, t->dim[2]) : 1, k);
		}
	return ts;
}

static int add_metadata(struct gguf_writer *w, const struct mk_opts *o, const struct gguf *voc)
{
	char key[128], name[160];
	const char *a = o->arch->name;
	int rc = 0;
#define KEY(suffix) (snprintf(key, sizeof(key), "%s." suffix, a), key)
	snprintf(name, sizeof(name), "palaver-mkmodel %s %ldx%ld %s seed %" PRIu64, a, o->dim,
		 o->layers, o->type == 12 ? "Q4_K_M" : gguf_type_name(o->type), o->seed);
	rc |= gguf_writer_add_str(w, "general.architecture", a, strlen(a));
	rc |= gguf_writer_add_str(w, "general.name", name, strlen(name));
	rc |= gguf_writer_add_u32(w, "general.file_type", file_type_of(o->type));
	if (o->type >= 2)
		rc |= gguf_writer_add_u32(w, "general.quantization_version", 2);
	rc |= gguf_writer_add_u32(w, KEY("context_length"), (uint32_t)o->ctx);
	rc |= gguf_writer_add_u32(w, KEY("embedding_length"), (uint32_t)o->dim);
	rc |= gguf_writer_add_u32(w, KEY("block_count"), (uint32_t)o->layers);
	rc |= gguf_writer_add_u32(w, KEY("feed_forward_length"), (uint32_t)o->ffn);
	rc |= gguf_writer_add_u32(w, KEY("attention.head_count"), (uint32_t)o->heads);
	rc |= gguf_writer_add_u32(w, KEY("attention.head_count_kv"), (uint32_t)o->kv_heads);
	if (o->head_dim * o->heads != o->dim) {
		rc |= gguf_writer_add_u32(w, KEY("attention.key_length"), (uint32_t)o->head_dim);
		rc |= gguf_writer_add_u32(w, KEY("attention.value_length"), (uint32_t)o->head_dim);
	}
	rc |= gguf_writer_add_u32(w, KEY("rope.dimension_count"), (uint32_t)o->head_dim);
	rc |= gguf_writer_add_f32(w, KEY("rope.freq_base"), o->arch->mk_rope_base);
	rc |= gguf_writer_add_f32(w, KEY("attention.layer_norm_rms_epsilon"), o->arch->mk_norm_eps);
	if (o->arch->mk_yarn_factor > 0) {
		rc |= gguf_writer_add_str(w, KEY("rope.scaling.type"), "yarn", 4);
		rc |= gguf_writer_add_f32(w, KEY("rope.scaling.factor"), o->arch->mk_yarn_factor);
		rc |= gguf_writer_add_u32(w, KEY("rope.scaling.original_context_length"),
					  (uint32_t)o->arch->mk_yarn_ctx);
	}
	rc |= gguf_writer_add_u32(w, KEY("vocab_size"), (uint32_t)o->vocab);
	if (o->experts) {
		rc |= gguf_writer_add_u32(w, KEY("expert_count"), (uint32_t)o->experts);
		rc |= gguf_writer_add_u32(w, KEY("expert_used_count"), (uint32_t)o->experts_used);
		if (o->arch->flags & ARCH_MOE)
			rc |= gguf_writer_add_u32(w, KEY("expert_feed_forward_length"),
						  (uint32_t)o->expert_ffn);
	}
#undef KEY
	for (int i = 0; i < o->arch->n_keys; i++) {
		const struct arch_key *k = &o->arch->keys[i];
		if (!k->mk)
			continue;
		snprintf(key, sizeof(key), "%s.%s", a, k->suffix);
		rc |= k->is_float ? gguf_writer_add_f32(w, key, k->mk)
				  : gguf_writer_add_u32(w, key, (uint32_t)k->mk);
	}
	for (int64_t i = 0; voc && i < gguf_n_kv(voc); i++) {
		const struct gguf_kv *kv = gguf_kv_at(voc, i);
		if (!strncmp(kv->key, "tokenizer.", 10))
			rc |= gguf_writer_copy_kv(w, voc, kv);
	}
	return rc ? -1 : 0;
}

/* Generate, convert and stream one tensor in chunks of rows. */
static int write_tensor(const struct mk_opts *o, struct gguf_writer *w, const struct mk_tensor *t,
			uint64_t seed, int index, float *rowf, void *rowq, size_t row_bytes)
{
	/* embeddings of unit RMS (after the family's sqrt(dim) scale): see DESIGN */
	float std =
		t->init == INIT_BIAS ? 0.01f
		: t->init == INIT_EMBD
			? (o->arch->flags & ARCH_EMBD_SCALE ? 1.0f / sqrtf((float)o->dim) : 1.0f)
			: 0.02f;
	uint64_t s = seed ^ ((uint64_t)(index + 1) * 0xd1342543de82ef95ull);
	for (int64_t r = 0; r < t->ne[1] * t->ne[2]; r++) {
		if (t->init == INIT_NORM) {
			for (int64_t i = 0; i < t->ne[0]; i++)
				rowf[i] = 1.0f;
		} else {
			fill_normal(&s, rowf, t->ne[0], std);
		}
		if (convert_row(t->type, rowf, rowq, t->ne[0]) < 0 ||
		    gguf_writer_write_part(w, rowq, row_bytes) < 0)
			return -1;
	}
	return 0;
}

static int mkmodel(const struct mk_opts *o)
{
	struct gguf *voc = NULL;
	struct gguf_writer *w = NULL;
	struct mk_tensor *ts = NULL;
	float *rowf = NULL;
	void *rowq = NULL;
	int n = 0, rc = -1;
	uint64_t params = 0;
	double t0 = time_now_ms();
	struct mk_opts opts = *o;

	if (opts.vocab_file) {
		const struct gguf_str *toks;
		uint64_t nv;
		if (!(voc = gguf_open(opts.vocab_file)))
			goto out;
		if (gguf_get_arr_str(voc, "tokenizer.ggml.tokens", &toks, &nv) < 0)
			goto out;
		if (nv == 0 || nv > INT32_MAX) {
			error("'%s': tokenizer has %" PRIu64 " tokens", opts.vocab_file, nv);
			goto out;
		}
		opts.vocab = (long)nv;
	}
	ts = plan(&opts, &n);
	w = gguf_writer_new();
	if (add_metadata(w, &opts, voc) < 0)
		goto out;
	int64_t max_row = opts.dim > opts.ffn ? opts.dim : opts.ffn;
	if (opts.expert_ffn > max_row)
		max_row = opts.expert_ffn;
	for (int i = 0; i < n; i++) {
		if (gguf_writer_add_tensor(w, ts[i].name, ts[i].n_dims, ts[i].ne, ts[i].type) < 0)
			goto out;
		params += (uint64_t)ts[i].ne[0] * (uint64_t)ts[i].ne[1] * (uint64_t)ts[i].ne[2];
		if (ts[i].ne[0] > max_row)
			max_row = ts[i].ne[0];
	}
	rowf = try_alloc_array((size_t)max_row, sizeof(float));
	rowq = try_alloc_array((size_t)max_row, sizeof(float));
	if (!rowf || !rowq) {
		error("mkmodel: out of memory");
		goto out;
	}
	if (gguf_writer_begin(w, opts.out) < 0)
		goto out;
	for (int i = 0; i < n; i++) {
		size_t row_bytes = (size_t)(gguf_writer_tensor_bytes(w, i) /
					    ((uint64_t)ts[i].ne[1] * (uint64_t)ts[i].ne[2]));
		if (write_tensor(&opts, w, &ts[i], opts.seed, i, rowf, rowq, row_bytes) < 0)
			goto out;
	}
	if (gguf_writer_finish(w) < 0)
		goto out;
	report("wrote '%s': %s %ld layers, dim %ld, %d tensors, %" PRIu64 " parameters, %s%s in "
	       "%.1f s",
	       opts.out, opts.arch->name, opts.layers, opts.dim, n, params,
	       opts.type == 12 ? "Q4_K_M" : gguf_type_name(opts.type), voc ? "" : ", no tokenizer",
	       (time_now_ms() - t0) / 1000.0);
	rc = 0;
out:
	free(rowf);
	free(rowq);
	free(ts);
	gguf_writer_free(w);
	gguf_close(voc);
	return rc;
}

/* ---- options ------------------------------------------------------------------ */

/* The mixture's shape from --experts, --experts-used, --expert-ffn and the
 * family: qwen3moe is always a mixture (8 experts unless told), llama is
 * one when given experts, and its experts are --ffn wide (llama.cpp reads
 * no expert width for llama); other families have none. */
static int mk_experts(struct mk_opts *o)
{
	const struct arch *a = o->arch;
	int has_moe = 0;
	for (int i = 0; i < a->n_tensors; i++)
		has_moe |= a->tensors[i].need == NEED_MOE;
	if (!o->experts && (a->flags & ARCH_MOE))
		o->experts = 8;
	if ((o->experts || o->experts_used || o->expert_ffn) && !has_moe) {
		fprintf(stderr, "palaver: mkmodel: family '%s' has no experts\n", a->name);
		return -1;
	}
	if (!o->experts && (o->experts_used || o->expert_ffn)) {
		fprintf(stderr,
			"palaver: mkmodel: --experts-used and --expert-ffn need --experts\n");
		return -1;
	}
	if (!o->experts)
		return 0;
	if (!o->experts_used)
		o->experts_used = o->experts < 2 ? o->experts : 2;
	if (o->experts_used > o->experts) {
		fprintf(stderr, "palaver: mkmodel: --experts-used %ld exceeds --experts %ld\n",
			o->experts_used, o->experts);
		return -1;
	}
	if (!(a->flags & ARCH_MOE) && o->expert_ffn && o->expert_ffn != o->ffn) {
		fprintf(stderr,
			"palaver: mkmodel: %s's experts are --ffn wide: give --ffn, not "
			"--expert-ffn\n",
			a->name);
		return -1;
	}
	if (!o->expert_ffn)
		o->expert_ffn = o->ffn;
	return 0;
}

static int parse_count(const char *opt, const char *v, long max, long *out)
{
	if (!v || parse_long(v, out) < 0 || *out < 1 || *out > max) {
		report("mkmodel: %s needs a number from 1 to %ld", opt, max);
		return -1;
	}
	return 0;
}

static int parse_type(const char *v, int *out)
{
	static const struct {
		const char *name;
		int id;
	} types[] = {
		{ "F32", 0 },
		{ "F16", 1 },
		{ "BF16", QT_BF16 },
		{ "Q4_0", 2 },
		{ "Q8_0", 8 },
		{ "Q4_K", 12 },
		{ "Q4_K_M", 12 },
		{ "Q6_K", 14 },
		{ "IQ4_NL", QT_IQ4_NL },
		{ "IQ4_XS", QT_IQ4_XS },
		{ "MXFP4", QT_MXFP4 },
	};
	for (size_t i = 0; v && i < sizeof(types) / sizeof(types[0]); i++) {
		if (!strcasecmp(v, types[i].name)) {
			*out = types[i].id;
			return 0;
		}
	}
	report("mkmodel: --type must be F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q6_K, IQ4_NL, IQ4_XS or MXFP4");
	return -1;
}

int cmd_mkmodel(int argc, char **argv, struct config *cfg)
{
	struct mk_opts o = { .arch = arch_find("llama"),
			     .dim = 256,
			     .layers = 2,
			     .heads = 4,
			     .ctx = 2048,
			     .vocab = 512,
			     .seed = 1 };
	long v;
	(void)cfg;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
		int rc = 0, takes = 1;
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			printf(usage, arch_names());
			return EXIT_OK;
		} else if (!strcmp(a, "--arch")) {
			if (!val || !arch_find(val))
				return report_usage("mkmodel: --arch must be one of %s",
						    arch_names());
			o.arch = arch_find(val);
		} else if (!strcmp(a, "--head-dim")) {
			rc = parse_count(a, val, 1024, &o.head_dim);
		} else if (!strcmp(a, "--dim")) {
			rc = parse_count(a, val, 1 << 20, &o.dim);
		} else if (!strcmp(a, "--layers")) {
			rc = parse_count(a, val, 1024, &o.layers);
		} else if (!strcmp(a, "--heads")) {
			rc = parse_count(a, val, 4096, &o.heads);
		} else if (!strcmp(a, "--kv-heads")) {
			rc = parse_count(a, val, 4096, &o.kv_heads);
		} else if (!strcmp(a, "--ffn")) {
			rc = parse_count(a, val, 1 << 22, &o.ffn);
		} else if (!strcmp(a, "--experts")) {
			rc = parse_count(a, val, 4096, &o.experts);
		} else if (!strcmp(a, "--experts-used")) {
			rc = parse_count(a, val, 4096, &o.experts_used);
		} else if (!strcmp(a, "--expert-ffn")) {
			rc = parse_count(a, val, 1 << 22, &o.expert_ffn);
		} else if (!strcmp(a, "--ctx")) {
			rc = parse_count(a, val, 1 << 24, &o.ctx);
		} else if (!strcmp(a, "--vocab")) {
			if (val && parse_long(val, &v) == 0)
				rc = parse_count(a, val, 1 << 24, &o.vocab);
			else if (val)
				o.vocab_file = val;
			else
				rc = parse_count(a, val, 1 << 24, &o.vocab);
		} else if (!strcmp(a, "--seed")) {
			if (!val || parse_long(val, &v) < 0 || v < 0) {
				return report_usage("mkmodel: --seed needs a number");
			}
			o.seed = (uint64_t)v;
		} else if (!strcmp(a, "--tied")) {
			o.tied = 1;
			takes = 0;
		} else if (!strcmp(a, "--type")) {
			rc = parse_type(val, &o.type);
		} else if (!strcmp(a, "-o") || !strcmp(a, "--output")) {
			if (!val) {
				return report_usage("mkmodel: %s needs a file name", a);
			}
			o.out = val;
		} else if (a[0] == '-' && a[1]) {
			report("mkmodel: unknown option '%s'", a);
			fprintf(stderr, usage, arch_names());
			return EXIT_USAGE;
		} else {
			takes = 0;
			if (o.out) {
				return report_usage("mkmodel: one output file only");
			}
			o.out = a;
		}
		if (rc < 0)
			return EXIT_USAGE;
		i += takes;
	}
	if (!o.out) {
		report("mkmodel: no output file given");
		fprintf(stderr, usage, arch_names());
		return EXIT_USAGE;
	}
	if (!o.kv_heads)
		o.kv_heads = o.heads;
	if (!o.ffn)
		o.ffn = 3 * o.dim;
	if ((!o.head_dim && o.dim % o.heads) || o.heads % o.kv_heads) {
		return report_usage(
			"mkmodel: --dim %ld, --heads %ld, --kv-heads %ld: the heads must "
			"divide dim (or give --head-dim) and be a multiple of the kv heads",
			o.dim, o.heads, o.kv_heads);
	}
	if (!o.head_dim)
		o.head_dim = o.dim / o.heads;
	if (mk_experts(&o) < 0)
		return EXIT_USAGE;
	if (o.head_dim % 2) {
		report("mkmodel: the head size %ld must be even", o.head_dim);
		return EXIT_USAGE;
	}
	if (mkmodel(&o) < 0) {
		return report_failure(EXIT_RUNTIME);
	}
	return EXIT_OK;
}
