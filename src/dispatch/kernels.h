/*
 * The rungs of the kernel-table ladder (src/dispatch/table.c). Each ISA directory implements its
 * own init; only the ones the build produced are referenced.
 */
#ifndef AMXQ_DISPATCH_KERNELS_H
#define AMXQ_DISPATCH_KERNELS_H

#include "internal.h"

void amxq_kernels_init_vnni(struct amxq_kernels *t);     /* src/vnni, native AVX-512 */
void amxq_kernels_init_vnni_emu(struct amxq_kernels *t); /* src/vnni, built on SIMDe */
void amxq_kernels_init_amx(struct amxq_kernels *t);      /* src/tile, real tiles */
void amxq_kernels_init_amx_emu(struct amxq_kernels *t);  /* src/tile, tile emulator */

#endif /* AMXQ_DISPATCH_KERNELS_H */
