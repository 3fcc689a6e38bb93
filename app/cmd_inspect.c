/* palaver inspect: print a GGUF file's metadata, tensor table and totals, as text or JSON. */
#include "arch.h"
#include "commands.h"
#include "gguf.h"
#include "report.h"
#include "untrusted.h"
#include "strbuf.h"
#include "util.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * Only the header is read: tensor data is never touched, so inspecting a
 * large model costs what gguf_open costs.  Long arrays (the vocabulary) and
 * long strings (chat templates) are summarised in text mode; JSON keeps
 * strings whole but summarises arrays longer than ARR_FULL the same way
 * (type, count, the first ARR_SHOW elements), since a 150k-entry vocabulary
 * is of no use to a reader of either.
 */

#define ARR_FULL 16  /* arrays up to this length are shown whole */
#define ARR_SHOW 5   /* otherwise this many elements are shown */
#define STR_SHOW 100 /* text mode: longer strings are cut here */

static const char usage[] = "usage: palaver inspect [--json] FILE\n"
			    "\n"
			    "Show a GGUF file's metadata, tensor table (name, type, shape, bytes,\n"
			    "offset), totals (parameters, bytes per type) and the architecture's\n"
			    "hyperparameters.  Tensor data is never read.\n"
			    "\n"
			    "  --json    print one JSON object instead of text\n"
			    "  -h, --help  show this help\n";

/* JSON string: escapes, and bytes that are not UTF-8 become U+FFFD. */
static void json_str(struct strbuf *sb, const char *s, uint64_t len)
{
	strbuf_addch(sb, '"');
	strbuf_add_json_escaped(sb, s, (size_t)len);
	strbuf_addch(sb, '"');
}

/* Text mode: quoted, escaped, cut after `max` bytes.  Control characters
 * (C1 included) and bytes that are not UTF-8 become \xNN: nothing from the
 * file reaches the terminal as an escape sequence. */
static void text_str(struct strbuf *sb, const char *s, uint64_t len, uint64_t max)
{
	strbuf_addch(sb, '"');
	for (uint64_t i = 0; i < len && i < max;) {
		unsigned char c = (unsigned char)s[i];
		uint32_t cp = 0;
		size_t n = utf8_valid(s + i, (size_t)(len - i), &cp);
		if (c == '\n')
			strbuf_addstr(sb, "\\n");
		else if (c == '"' || c == '\\')
			strbuf_addf(sb, "\\%c", c);
		else if (!n || cp < 0x20 || (cp >= 0x7f && cp < 0xa0)) {
			for (size_t k = 0; k < (n ? n : 1); k++)
				strbuf_addf(sb, "\\x%02x", (unsigned char)s[i + k]);
		} else {
			strbuf_add(sb, s + i, n);
			i += n;
			continue;
		}
		i += n ? n : 1;
	}
	strbuf_addch(sb, '"');
	if (len > max)
		strbuf_addf(sb, "... (%" PRIu64 " bytes)", len);
}

/* A key or tensor name: as is when plain printable ASCII, else quoted and escaped. */
static void text_name(struct strbuf *sb, const char *s)
{
	for (const char *p = s; *p; p++) {
		unsigned char c = (unsigned char)*p;
		if (c <= 0x20 || c >= 0x7f || c == '"' || c == '\\') {
			text_str(sb, s, strlen(s), 200);
			return;
		}
	}
	strbuf_addstr(sb, s);
}

/* f32 values: 9 digits in JSON (exact round trip), 7 for people. */
static void add_double(struct strbuf *sb, double v, int json, int digits)
{
	if (json && !isfinite(v))
		strbuf_addstr(sb, "null");
	else
		strbuf_addf(sb, "%.*g", json ? digits : 7, v);
}

static size_t scalar_size(enum gguf_vtype t)
{
	switch (t) {
	case GGUF_TYPE_UINT8:
	case GGUF_TYPE_INT8:
	case GGUF_TYPE_BOOL: return 1;
	case GGUF_TYPE_UINT16:
	case GGUF_TYPE_INT16: return 2;
	case GGUF_TYPE_UINT32:
	case GGUF_TYPE_INT32:
	case GGUF_TYPE_FLOAT32: return 4;
	default: return 8;
	}
}

/* One scalar of type t at p (unaligned, little-endian, as the host). */
static void add_scalar(struct strbuf *sb, enum gguf_vtype t, const void *p, int json)
{
	uint64_t u = 0;
	size_t n = scalar_size(t);
	memcpy(&u, p, n);
	switch (t) {
	case GGUF_TYPE_UINT8:
	case GGUF_TYPE_UINT16:
	case GGUF_TYPE_UINT32:
	case GGUF_TYPE_UINT64: strbuf_addf(sb, "%" PRIu64, u); break;
	case GGUF_TYPE_INT8:
	case GGUF_TYPE_INT16:
	case GGUF_TYPE_INT32:
	case GGUF_TYPE_INT64: {
		int64_t v = n == 1   ? (int8_t)u
			    : n == 2 ? (int16_t)u
			    : n == 4 ? (int32_t)u
				     : (int64_t)u;
		strbuf_addf(sb, "%" PRId64, v);
		break;
	}
	case GGUF_TYPE_FLOAT32: {
		float f;
		memcpy(&f, p, 4);
		add_double(sb, f, json, 9);
		break;
	}
	case GGUF_TYPE_FLOAT64: {
		double d;
		memcpy(&d, p, 8);
		add_double(sb, d, json, 17);
		break;
	}
	case GGUF_TYPE_BOOL: strbuf_addstr(sb, u ? "true" : "false"); break;
	default: strbuf_addstr(sb, json ? "null" : "?");
	}
}

/* Elements [0, n) of an array entry, comma-separated. */
static void add_elems(struct strbuf *sb, const struct gguf *g, const struct gguf_kv *kv, uint64_t n,
		      int json)
{
	const struct gguf_str *strs = NULL;
	uint64_t count;
	if (kv->arr_type == GGUF_TYPE_STRING && gguf_get_arr_str(g, kv->key, &strs, &count) < 0)
		return;
	for (uint64_t i = 0; i < n; i++) {
		if (i)
			strbuf_addstr(sb, ", ");
		if (strs && json)
			json_str(sb, strs[i].data, strs[i].len);
		else if (strs)
			text_str(sb, strs[i].data, strs[i].len, 40);
		else
			add_scalar(sb, kv->arr_type,
				   (const char *)kv->value + i * scalar_size(kv->arr_type), json);
	}
}

static void text_value(struct strbuf *sb, const struct gguf *g, const struct gguf_kv *kv)
{
	if (kv->type == GGUF_TYPE_STRING) {
		const struct gguf_str *s = kv->value;
		text_str(sb, s->data, s->len, STR_SHOW);
	} else if (kv->type == GGUF_TYPE_ARRAY) {
		uint64_t n = kv->arr_n <= ARR_FULL ? kv->arr_n : ARR_SHOW;
		strbuf_addf(sb, "[%s x %" PRIu64 "] ", gguf_vtype_name(kv->arr_type), kv->arr_n);
		add_elems(sb, g, kv, n, 0);
		if (n < kv->arr_n)
			strbuf_addstr(sb, ", ...");
	} else {
		add_scalar(sb, kv->type, kv->value, 0);
	}
}

static void json_value(struct strbuf *sb, const struct gguf *g, const struct gguf_kv *kv)
{
	if (kv->type == GGUF_TYPE_STRING) {
		const struct gguf_str *s = kv->value;
		json_str(sb, s->data, s->len);
	} else if (kv->type == GGUF_TYPE_ARRAY && kv->arr_n <= ARR_FULL) {
		strbuf_addch(sb, '[');
		add_elems(sb, g, kv, kv->arr_n, 1);
		strbuf_addch(sb, ']');
	} else if (kv->type == GGUF_TYPE_ARRAY) {
		strbuf_addf(sb,
			    "{\"type\": \"array\", \"elem_type\": \"%s\", \"count\": %" PRIu64
			    ", \"first\": [",
			    gguf_vtype_name(kv->arr_type), kv->arr_n);
		add_elems(sb, g, kv, ARR_SHOW, 1);
		strbuf_addstr(sb, "]}");
	} else {
		add_scalar(sb, kv->type, kv->value, 1);
	}
}

/* Per-type totals. */
struct type_total {
	int64_t tensors;
	uint64_t bytes;
	uint64_t params;
};

/* Hyperparameters worth a line: label and key suffix after "<arch>.". */
static const struct {
	const char *label;
	const char *suffix;
} hparams[] = {
	{ "dim", "embedding_length" },
	{ "layers", "block_count" },
	{ "heads", "attention.head_count" },
	{ "kv heads", "attention.head_count_kv" },
	{ "ctx", "context_length" },
	{ "ffn", "feed_forward_length" },
	{ "experts", "expert_count" },
	{ "experts used", "expert_used_count" },
	{ "expert ffn", "expert_feed_forward_length" },
	{ "head dim", "attention.key_length" },
	{ "head dim v", "attention.value_length" },
	{ "rope dim", "rope.dimension_count" },
	{ "rope base", "rope.freq_base" },
	{ "rope scaling", "rope.scaling.type" },
	{ "rms eps", "attention.layer_norm_rms_epsilon" },
	{ "vocab", "vocab_size" },
};
#define N_HPARAMS (sizeof(hparams) / sizeof(hparams[0]))

/* Hyperparameter h of the architecture, its key in key; NULL when the file
 * has none (vocab_size is reported on its own, from vocab_size()). */
static const struct gguf_kv *hparam(const struct gguf *g, const char *arch, size_t h, char *key,
				    size_t cap)
{
	if (!*arch || !strcmp(hparams[h].suffix, "vocab_size"))
		return NULL;
	snprintf(key, cap, "%s.%s", arch, hparams[h].suffix);
	return gguf_find_kv(g, key);
}

/* Vocabulary size: <arch>.vocab_size, else the token list, else token_embd's rows. */
static int64_t vocab_size(const struct gguf *g, const char *arch, const char **from)
{
	char key[256];
	const struct gguf_kv *kv;
	uint32_t v;
	snprintf(key, sizeof(key), "%s.vocab_size", arch);
	if (gguf_find_kv(g, key) && gguf_get_u32(g, key, &v) == 0) {
		*from = "vocab_size";
		return v;
	}
	kv = gguf_find_kv(g, "tokenizer.ggml.tokens");
	if (kv && kv->type == GGUF_TYPE_ARRAY) {
		*from = "tokenizer.ggml.tokens";
		return (int64_t)kv->arr_n;
	}
	const struct gguf_tensor *t = gguf_find_tensor(g, "token_embd.weight");
	if (t) {
		*from = "token_embd.weight";
		return t->ne[1];
	}
	return -1;
}

/* One expert's size: the bytes of the 3-D expert tensors (blk.N.*_exps.*,
 * one matrix per expert along ne[2]) over their layers and experts; 0 when
 * the file has none.  *experts: ne[2] of the first one. */
static uint64_t expert_bytes(const struct gguf *g, int64_t *experts)
{
	uint64_t bytes = 0, layers = 0;
	int64_t last = -1;
	*experts = 0;
	for (int64_t i = 0; i < gguf_n_tensors(g); i++) {
		const struct gguf_tensor *t = gguf_tensor_at(g, i);
		long l;
		char *end;
		if (strncmp(t->name, "blk.", 4) || t->n_dims != 3 || !strstr(t->name, "_exps."))
			continue;
		l = strtol(t->name + 4, &end, 10);
		if (end == t->name + 4 || *end != '.')
			continue;
		if (!*experts)
			*experts = t->ne[2];
		if (t->ne[2] != *experts)
			continue; /* not one mixture: leave it out rather than mix sizes */
		bytes += t->nbytes;
		if (l != last) {
			layers++;
			last = l;
		}
	}
	return layers && *experts > 0 ? bytes / layers / (uint64_t)*experts : 0;
}

static void shape_str(char *buf, size_t n, const struct gguf_tensor *t, const char *sep)
{
	size_t o = 0;
	buf[0] = '\0';
	for (int d = 0; d < t->n_dims && o < n; d++)
		o += (size_t)snprintf(buf + o, n - o, "%s%" PRId64, d ? sep : "", t->ne[d]);
}

/* What the report sums up over the tensors. */
struct summary {
	struct type_total by_type[256]; /* by GGUF type id (ids < 40) */
	uint64_t params, bytes;
	char arch[128]; /* general.architecture, "" when absent */
};

static void summarize(const struct gguf *g, struct summary *sum)
{
	struct gguf_str arch_s = { 0, "" };
	memset(sum, 0, sizeof(*sum));
	for (int64_t i = 0; i < gguf_n_tensors(g); i++) {
		const struct gguf_tensor *t = gguf_tensor_at(g, i);
		uint64_t e = (uint64_t)t->ne[0] * (uint64_t)t->ne[1] * (uint64_t)t->ne[2] *
			     (uint64_t)t->ne[3]; /* checked by gguf_open */
		struct type_total *tt = &sum->by_type[t->type & 255];
		tt->tensors++;
		tt->bytes += t->nbytes;
		tt->params += e;
		sum->params += e;
		sum->bytes += t->nbytes;
	}
	if (gguf_find_kv(g, "general.architecture") &&
	    gguf_get_str(g, "general.architecture", &arch_s) == 0 &&
	    arch_s.len < sizeof(sum->arch) && !memchr(arch_s.data, '\0', arch_s.len)) {
		memcpy(sum->arch, arch_s.data, arch_s.len);
		sum->arch[arch_s.len] = '\0';
	}
}

static void inspect_json(struct strbuf *out, const struct gguf *g, const char *path,
			 const struct summary *sum)
{
	const char *arch = sum->arch;
	const struct type_total *by_type = sum->by_type;
	uint64_t params = sum->params, bytes = sum->bytes;
	char key[300], shape[128];
	strbuf_addstr(out, "{\"file\": ");
	json_str(out, path, strlen(path));
	strbuf_addf(out,
		    ", \"version\": %u, \"size\": %" PRIu64 ", \"alignment\": %u, "
		    "\"data_offset\": %" PRIu64 ",\n\"metadata\": {",
		    gguf_version(g), gguf_file_size(g), gguf_alignment(g), gguf_data_offset(g));
	for (int64_t i = 0; i < gguf_n_kv(g); i++) {
		const struct gguf_kv *kv = gguf_kv_at(g, i);
		strbuf_addstr(out, i ? ",\n  " : "\n  ");
		json_str(out, kv->key, strlen(kv->key));
		strbuf_addstr(out, ": ");
		json_value(out, g, kv);
	}
	strbuf_addstr(out, "},\n\"tensors\": [");
	for (int64_t i = 0; i < gguf_n_tensors(g); i++) {
		const struct gguf_tensor *t = gguf_tensor_at(g, i);
		shape_str(shape, sizeof(shape), t, ", ");
		strbuf_addstr(out, i ? ",\n  {\"name\": " : "\n  {\"name\": ");
		json_str(out, t->name, strlen(t->name));
		strbuf_addf(out,
			    ", \"type\": \"%s\", \"shape\": [%s], \"bytes\": %" PRIu64
			    ", \"offset\": %" PRIu64 "}",
			    gguf_type_name(t->type), shape, t->nbytes, t->offset);
	}
	strbuf_addf(out,
		    "],\n\"totals\": {\"tensors\": %" PRId64 ", \"parameters\": %" PRIu64
		    ", \"bytes\": %" PRIu64 ", \"by_type\": {",
		    gguf_n_tensors(g), params, bytes);
	int first = 1;
	for (int ty = 0; ty < 256; ty++) {
		if (!by_type[ty].tensors)
			continue;
		strbuf_addf(out,
			    "%s\"%s\": {\"tensors\": %" PRId64 ", \"parameters\": %" PRIu64
			    ", \"bytes\": %" PRIu64 "}",
			    first ? "" : ", ", gguf_type_name(ty), by_type[ty].tensors,
			    by_type[ty].params, by_type[ty].bytes);
		first = 0;
	}
	strbuf_addstr(out, "}},\n\"hyperparameters\": {\"architecture\": ");
	json_str(out, arch, strlen(arch));
	for (size_t h = 0; h < N_HPARAMS; h++) {
		const struct gguf_kv *kv = hparam(g, arch, h, key, sizeof(key));
		if (kv) {
			strbuf_addf(out, ", \"%s\": ", hparams[h].suffix);
			json_value(out, g, kv);
		}
	}
	const struct arch *fam = arch_find(arch);
	for (int h = 0; fam && h < fam->n_keys; h++) {
		const struct gguf_kv *kv;
		snprintf(key, sizeof(key), "%s.%s", arch, fam->keys[h].suffix);
		if (!(kv = gguf_find_kv(g, key)))
			continue;
		strbuf_addf(out, ", \"%s\": ", fam->keys[h].suffix);
		json_value(out, g, kv);
	}
	const char *from = NULL;
	int64_t nv = vocab_size(g, arch, &from), n_exp;
	uint64_t eb = expert_bytes(g, &n_exp);
	if (nv >= 0)
		strbuf_addf(out, ", \"vocab_size\": %" PRId64, nv);
	if (eb)
		strbuf_addf(out, ", \"expert_bytes\": %" PRIu64, eb);
	strbuf_addf(out, ", \"supported\": %s}}\n", fam ? "true" : "false");
}

static void inspect_text(struct strbuf *out, const struct gguf *g, const char *path,
			 const struct summary *sum)
{
	const char *arch = sum->arch;
	const struct type_total *by_type = sum->by_type;
	uint64_t params = sum->params, bytes = sum->bytes;
	char sz[32], key[300], shape[128];
	strbuf_addf(out,
		    "%s: GGUF v%u, %s (%" PRIu64 " bytes), alignment %u, data at %" PRIu64 "\n",
		    path, gguf_version(g), format_size(sz, sizeof(sz), gguf_file_size(g)),
		    gguf_file_size(g), gguf_alignment(g), gguf_data_offset(g));
	strbuf_addf(out, "\nmetadata: %" PRId64 " entries\n", gguf_n_kv(g));
	for (int64_t i = 0; i < gguf_n_kv(g); i++) {
		const struct gguf_kv *kv = gguf_kv_at(g, i);
		size_t l = out->len;
		strbuf_addstr(out, "  ");
		text_name(out, kv->key);
		size_t w = out->len - l;
		strbuf_addf(out, "%*s %-6s ", w < 44 ? (int)(44 - w) : 0, "",
			    gguf_vtype_name(kv->type));
		text_value(out, g, kv);
		strbuf_addch(out, '\n');
	}
	strbuf_addf(out, "\ntensors: %" PRId64 "\n", gguf_n_tensors(g));
	if (gguf_n_tensors(g))
		strbuf_addf(out, "  %-32s %-7s %-20s %12s %12s\n", "name", "type", "shape", "bytes",
			    "offset");
	for (int64_t i = 0; i < gguf_n_tensors(g); i++) {
		const struct gguf_tensor *t = gguf_tensor_at(g, i);
		size_t l = out->len;
		shape_str(shape, sizeof(shape), t, " x ");
		strbuf_addstr(out, "  ");
		text_name(out, t->name);
		size_t w = out->len - l;
		strbuf_addf(out, "%*s %-7s %-20s %12" PRIu64 " %12" PRIu64 "\n",
			    w < 34 ? (int)(34 - w) : 0, "", gguf_type_name(t->type), shape,
			    t->nbytes, t->offset);
	}
	strbuf_addf(out, "\ntotals: %" PRId64 " tensors, %" PRIu64 " parameters, %s\n",
		    gguf_n_tensors(g), params, format_size(sz, sizeof(sz), bytes));
	for (int ty = 0; ty < 256; ty++) {
		if (!by_type[ty].tensors)
			continue;
		strbuf_addf(out, "  %-8s %4" PRId64 " tensors %14" PRIu64 " parameters %12s\n",
			    gguf_type_name(ty), by_type[ty].tensors, by_type[ty].params,
			    format_size(sz, sizeof(sz), by_type[ty].bytes));
	}
	const struct arch *fam = arch_find(arch);
	strbuf_addstr(out, "\narchitecture: ");
	untrusted_add(out, *arch ? arch : "(none)", strlen(*arch ? arch : "(none)"), 0);
	strbuf_addch(out, '\n');
	if (fam)
		strbuf_addf(out, "  %-12s %s\n", "family", fam->desc);
	else
		strbuf_addf(out, "  %-12s not one palaver runs (it runs %s)\n", "family",
			    arch_names());
	for (size_t h = 0; h < N_HPARAMS; h++) {
		const struct gguf_kv *kv = hparam(g, arch, h, key, sizeof(key));
		if (kv) {
			strbuf_addf(out, "  %-12s ", hparams[h].label);
			text_value(out, g, kv);
			strbuf_addstr(out, "  (");
			untrusted_add(out, key, strlen(key), 0);
			strbuf_addstr(out, ")\n");
		}
	}
	/* the family's own keys, with the value palaver uses when absent */
	for (int h = 0; fam && h < fam->n_keys; h++) {
		const struct arch_key *k = &fam->keys[h];
		const struct gguf_kv *kv;
		snprintf(key, sizeof(key), "%s.%s", arch, k->suffix);
		strbuf_addf(out, "  %-12s ", k->label);
		if ((kv = gguf_find_kv(g, key))) {
			text_value(out, g, kv);
			strbuf_addf(out, "  (%s)\n", key);
		} else if (k->def) {
			strbuf_addf(out, "%g  (%s: absent, the family's default)\n", k->def, key);
		} else {
			strbuf_addf(out, "none  (%s: absent)\n", key);
		}
	}
	const char *from = NULL;
	int64_t nv = vocab_size(g, arch, &from), n_exp;
	uint64_t eb = expert_bytes(g, &n_exp);
	if (nv >= 0)
		strbuf_addf(out, "  %-12s %" PRId64 "  (%s)\n", "vocab", nv, from);
	if (eb)
		strbuf_addf(out,
			    "  %-12s %s  (one of %" PRId64
			    " experts' gate, up and down in a layer)\n",
			    "expert size", format_size(sz, sizeof(sz), eb), n_exp);
}

static int inspect(const char *path, int json)
{
	struct gguf *g = gguf_open(path);
	struct strbuf out = STRBUF_INIT;
	struct summary sum;
	if (!g)
		return report_failure(EXIT_RUNTIME);
	summarize(g, &sum);
	if (json)
		inspect_json(&out, g, path, &sum);
	else
		inspect_text(&out, g, path, &sum);
	int bad = out_write(out.buf, out.len) < 0;
	strbuf_release(&out);
	gguf_close(g);
	if (bad)
		return EXIT_RUNTIME;
	return EXIT_OK;
}

int cmd_inspect(int argc, char **argv, struct config *cfg)
{
	const char *path = NULL;
	int json = 0;
	(void)cfg;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			fputs(usage, stdout);
			return EXIT_OK;
		} else if (!strcmp(argv[i], "--json")) {
			json = 1;
		} else if (!strcmp(argv[i], "--")) {
			if (i + 1 < argc && !path)
				path = argv[++i];
			if (i + 1 < argc) {
				return report_usage("inspect takes one file");
			}
		} else if (argv[i][0] == '-' && argv[i][1]) {
			return report_usage_with(usage, "inspect: unknown option '%s'", argv[i]);
		} else if (path) {
			return report_usage("inspect takes one file");
		} else {
			path = argv[i];
		}
	}
	if (!path) {
		return report_usage_with(usage, "inspect: no file given");
	}
	return inspect(path, json);
}
