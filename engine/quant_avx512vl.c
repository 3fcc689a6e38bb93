/* The AVX2 kernels rebuilt with AVX-512VL VNNI on 256-bit registers (see quant_avx2.c's DESIGN). */
#define QUANT_AVX2_VNNI 1
#include "quant_avx2.c"
