/* The CUDA emulation's own controls, callable from C tests (the real backend has no twin). */
#ifndef PALAVER_EMU_CONTROL_H
#define PALAVER_EMU_CONTROL_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The sentence that describes the last failure (launch or API call), "" if none. */
const char *pv_emu_error(void);
/* Seed for the order of blocks and of threads between synchronisations
 * (0: plain order); PV_EMU_SEED in the environment sets the initial one. */
void pv_emu_set_seed(unsigned seed);
/* Device memory the emulated GPU claims to have (cudaMalloc fails past it). */
void pv_emu_set_memory_limit(size_t bytes);
/* Bytes currently allocated with cudaMalloc. */
size_t pv_emu_memory_used(void);
/* Launches so far (tests check that an operation really ran kernels). */
unsigned long pv_emu_launch_count(void);
/* How many devices cudaGetDeviceCount() reports (1; 0 to test the no-GPU path). */
void pv_emu_set_device_count(int n);

#ifdef __cplusplus
}
#endif

#endif
