/*
 * The AVX-512 VNNI kernels (src/vnni). Every source here is compiled twice: natively with the
 * AVX-512 flags, giving symbols that end in _vnni, and against SIMDe (AMXQ_SIMD_EMU), giving
 * _vnni_emu. AMXQ_VNNI(name) appends the right suffix, so both builds link into one library
 * without clashing; AMXQ_VNNI_NAME(name) is the same name as a string, for the kernel table.
 */
#ifndef AMXQ_VNNI_VNNI_H
#define AMXQ_VNNI_VNNI_H

#include "dispatch/kernels.h"
#include "internal.h"

#if defined(AMXQ_SIMD_EMU)
#define AMXQ_VNNI(name) name##_vnni_emu
#else
#define AMXQ_VNNI(name) name##_vnni
#endif
#define AMXQ_VNNI_NAME(name) AMXQ_STRINGIFY(AMXQ_VNNI(name))

/* Workspace quantizers (struct amxq_qx), bit-identical to src/ref/quantize.c. */
AMXQ_DECL_QUANTIZE_FN(AMXQ_VNNI(amxq_quantize_q8_0));
AMXQ_DECL_QUANTIZE_FN(AMXQ_VNNI(amxq_quantize_q8_1));
AMXQ_DECL_QUANTIZE_FN(AMXQ_VNNI(amxq_quantize_q8_k));

/* Products on packed weights. */
AMXQ_DECL_GEMM_FN(AMXQ_VNNI(amxq_gemm_q4_0));
AMXQ_DECL_GEMM_FN(AMXQ_VNNI(amxq_gemm_q4_1));
AMXQ_DECL_GEMM_FN(AMXQ_VNNI(amxq_gemm_q8_0));
AMXQ_DECL_GEMM_FN(AMXQ_VNNI(amxq_gemm_q4_k));
AMXQ_DECL_GEMM_FN(AMXQ_VNNI(amxq_gemm_q6_k));
AMXQ_DECL_GEMM_FN(AMXQ_VNNI(amxq_gemm_q5_k));
AMXQ_DECL_GEMM_FN(AMXQ_VNNI(amxq_gemm_iq4_xs));
AMXQ_DECL_GEMM_FN(AMXQ_VNNI(amxq_gemm_q5_0));
AMXQ_DECL_GEMM_FN(AMXQ_VNNI(amxq_gemm_q5_1));
AMXQ_DECL_GEMM_FN(AMXQ_VNNI(amxq_gemm_iq4_nl));

#endif /* AMXQ_VNNI_VNNI_H */
