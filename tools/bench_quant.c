/* Kernel throughput table: weight GB/s of gemv and GOP/s of gemm per type, ISA and thread count. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quant.h"
#include "report.h"

/*
 * Build and run from the repository root:
 *   make && cc -O2 -march=native -Iengine -Ilib tools/bench_quant.c \
 *      build/libpalaver.a -lm -pthread -o build/bench_quant && build/bench_quant [isa]
 * gemv: 2048-wide rows, enough of them for ~400 MB of weights (past every
 * cache, as in decode).  gemm: 2048 x 2048 weights by 128 tokens (prefill).
 */
int main(int argc, char **argv)
{
	static const int types[] = { QT_F32, QT_F16, QT_BF16, QT_Q8_0, QT_Q4_0, QT_Q4_K, QT_Q6_K };
	enum quant_isa isa = quant_isa_best();
	if (argc > 1)
		for (int i = QUANT_ISA_SCALAR; i <= QUANT_ISA_AVX512_VNNI; i++)
			if (!strcmp(argv[1], quant_isa_name((enum quant_isa)i)))
				isa = (enum quant_isa)i;
	if (quant_isa_set(isa) < 0) {
		fprintf(stderr, "bench_quant: this cpu lacks %s\n", quant_isa_name(isa));
		return 1;
	}
	printf("isa %s\n%-6s %10s %10s %12s %12s\n", quant_isa_name(isa), "type", "gemv 1t",
	       "gemv 2t", "gemm 1t", "gemm 2t");
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		int type = types[i];
		const int64_t n = 2048;
		size_t rb;
		quant_row_bytes(type, n, &rb);
		int rows = (int)((400u << 20) / rb);
		double gv[2], gm[2];
		for (int th = 1; th <= 2; th++) {
			double s = quant_bench(type, n, rows, 1, th, 10);
			double g = quant_bench(type, n, 2048, 128, th, 3);
			if (s < 0 || g < 0) {
				fprintf(stderr, "bench_quant: %s\n", error_message());
				return 1;
			}
			gv[th - 1] = (double)rb * rows / s / 1e9;
			gm[th - 1] = 2.0 * n * 2048 * 128 / g / 1e9;
		}
		printf("%-6s %7.1f GB/s %5.1f GB/s %6.0f GOP/s %6.0f GOP/s\n",
		       quant_type_name(type), gv[0], gv[1], gm[0], gm[1]);
	}
	return 0;
}
