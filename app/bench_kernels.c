/* palaver bench --kernels: the CPU kernel level each weight type runs on this CPU, and the measurements behind it. */
#include "bench.h"
#include "commands.h"
#include "config.h"
#include "options.h"
#include "quant.h"
#include "quant_select.h"
#include "report.h"
#include "strbuf.h"

#include <stdio.h>
#include <string.h>

static const char usage[] =
	"usage: palaver bench --kernels [--measure] [--format md|json]\n"
	"\n"
	"Print the kernel level each weight type's gemv (decode) and gemm\n"
	"(prefill) runs on this CPU, with the throughput measured at each level:\n"
	"gemv in GB/s of weights (64 MiB of them, read from memory as decode\n"
	"reads them; one thread), gemm in GOP/s (64 tokens, one thread).  The\n"
	"choice is measured at the first model load and kept in\n"
	"$XDG_CACHE_HOME/palaver/kernels-<cpu>.txt; --isa forces one level.\n"
	"\n"
	"  --measure          measure again now and rewrite the cache file\n"
	"  --format FMT       md (default) or json\n"
	"  -h, --help         show this help\n";

/* The levels a table shows: the SIMD ones this CPU has, widest first. */
static int shown_levels(enum quant_isa out[QUANT_ISA_COUNT])
{
	static const enum quant_isa order[] = { QUANT_ISA_AVX512_VNNI, QUANT_ISA_AVX512_256,
						QUANT_ISA_AVX2 };
	int k = 0;
	for (int i = 0; i < 3; i++)
		if (quant_isa_supported(order[i]))
			out[k++] = order[i];
	return k;
}

static void print_md(const struct quant_selection *s, const char *source)
{
	enum quant_isa lv[QUANT_ISA_COUNT];
	int nl = shown_levels(lv);
	printf("cpu: %s\nchoice: %s\n\n| type | op |", s->cpu, source);
	for (int i = 0; i < nl; i++)
		printf(" %s |", quant_isa_name(lv[i]));
	printf(" chosen |\n|---|---|");
	for (int i = 0; i < nl; i++)
		printf("---:|");
	printf("---|\n");
	for (int r = 0; r < s->n; r++)
		for (int op = 0; op < 2; op++) {
			const struct quant_select_row *row = &s->row[r];
			const double *v = op ? row->gemm : row->gemv;
			printf("| %s | %s |", quant_type_name(row->type), op ? "gemm" : "gemv");
			for (int i = 0; i < nl; i++)
				printf(" %.1f %s |", v[lv[i]], op ? "GOP/s" : "GB/s");
			printf(" %s |\n", quant_isa_name(op ? row->gemm_level : row->gemv_level));
		}
	printf("\nother types run %s\n", quant_isa_name(quant_isa_best()));
}

static void print_json(const struct quant_selection *s, const char *source)
{
	struct strbuf sb = STRBUF_INIT;
	strbuf_addstr(&sb, "{\"cpu\": \"");
	strbuf_add_json_escaped(&sb, s->cpu, strlen(s->cpu));
	strbuf_addstr(&sb, "\", \"choice\": \"");
	strbuf_add_json_escaped(&sb, source, strlen(source));
	strbuf_addf(&sb, "\", \"widest\": \"%s\", \"types\": [", quant_isa_name(quant_isa_best()));
	for (int r = 0; r < s->n; r++) {
		const struct quant_select_row *row = &s->row[r];
		strbuf_addf(&sb, "%s{\"type\": \"%s\"", r ? ", " : "", quant_type_name(row->type));
		for (int op = 0; op < 2; op++) {
			const double *v = op ? row->gemm : row->gemv;
			strbuf_addf(&sb, ", \"%s\": {\"chosen\": \"%s\"", op ? "gemm" : "gemv",
				    quant_isa_name(op ? row->gemm_level : row->gemv_level));
			for (int l = 1; l < QUANT_ISA_COUNT; l++)
				if (v[l] > 0)
					strbuf_addf(&sb, ", \"%s\": %.2f",
						    quant_isa_name((enum quant_isa)l), v[l]);
			strbuf_addch(&sb, '}');
		}
		strbuf_addch(&sb, '}');
	}
	strbuf_addstr(&sb, "]}\n");
	fputs(sb.buf, stdout);
	strbuf_release(&sb);
}

int bench_kernels(int argc, char **argv, struct config *cfg)
{
	static const char *const formats[] = { "md", "json", NULL };
	int measure = 0, f = 0;
	const struct opt_spec opts[] = {
		{ "--kernels", NULL, OPT_FLAG, NULL, 0, 0, NULL },
		{ "--measure", NULL, OPT_FLAG, &measure, 0, 0, NULL },
		{ "--format", "-o", OPT_CHOICE, &f, 0, 0, formats },
		{ NULL, NULL, 0, NULL, 0, 0, NULL },
	};
	int parsed = options_parse(argc, argv, opts, usage, "bench",
				   "palaver bench --kernels --help", cfg);
	if (parsed)
		return parsed > 0 ? EXIT_OK : EXIT_USAGE;
	/* -t, --isa and the like may come after the command's name */
	if (config_select_kernels(cfg) < 0)
		return report_usage("%s", error_message());

	struct quant_selection s;
	struct strbuf source = STRBUF_INIT;
	int forced = quant_select_forced();
	const char *path = quant_select_cache_path();
	if (forced >= 0) {
		printf("every type runs %s (--isa / PALAVER_ISA)\n",
		       quant_isa_name((enum quant_isa)forced));
		return EXIT_OK;
	}
	if (measure) {
		quant_select_measure(&s);
		quant_select_apply(&s);
		if (path && quant_select_save(&s, path) < 0)
			return report_failure(EXIT_RUNTIME);
	} else {
		quant_select_ensure(&s);
	}
	if (s.from_cache)
		strbuf_addf(&source, "read from %s", path);
	else
		strbuf_addf(&source, "measured now in %.0f ms of CPU time%s%s", s.measure_ms,
			    path ? ", saved to " : " (not saved: no cache folder)",
			    path ? path : "");
	if (f == 1)
		print_json(&s, source.buf);
	else
		print_md(&s, source.buf);
	strbuf_release(&source);
	return EXIT_OK;
}
