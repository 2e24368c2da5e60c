/*
 * Where AUTO switches from the AVX-512 VNNI kernels to the AMX kernels, per weight type: AMX is
 * used for M >= the value. These must come from benchmarks on an AMX machine (bench/, see
 * docs/performance.md): below the threshold the tile set-up and the per-block AVX-512 epilogue
 * cost more than the tile unit saves.
 */
#ifndef AMXQ_DISPATCH_THRESHOLDS_H
#define AMXQ_DISPATCH_THRESHOLDS_H

#include "internal.h"

/* Indexed by enum amxq_type_index. */
static const int64_t amxq_amx_min_m[AMXQ_NTYPES] = {
    [AMXQ_TI_Q4_0] = 16, [AMXQ_TI_Q4_1] = 16,   [AMXQ_TI_Q8_0] = 16,   [AMXQ_TI_Q4_K] = 16,
    [AMXQ_TI_Q6_K] = 16, [AMXQ_TI_Q5_K] = 16,   [AMXQ_TI_IQ4_XS] = 16, [AMXQ_TI_Q5_0] = 16,
    [AMXQ_TI_Q5_1] = 16, [AMXQ_TI_IQ4_NL] = 16,
};

#endif /* AMXQ_DISPATCH_THRESHOLDS_H */
