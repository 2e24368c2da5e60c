/*
 * The scalar reference: activation quantization exactly as ggml's x86 CPU path does it, and the
 * reference products on packed weights. This is the oracle every other kernel is tested against.
 */
#ifndef AMXQ_REF_H
#define AMXQ_REF_H

#include "internal.h"

/* Workspace quantizers (struct amxq_qx), one per activation type. */
AMXQ_DECL_QUANTIZE_FN(amxq_quantize_q8_0_ref);
AMXQ_DECL_QUANTIZE_FN(amxq_quantize_q8_1_ref);
AMXQ_DECL_QUANTIZE_FN(amxq_quantize_q8_k_ref);

/* Products on packed weights. */
AMXQ_DECL_GEMM_FN(amxq_gemm_q4_0_ref);
AMXQ_DECL_GEMM_FN(amxq_gemm_q4_1_ref);
AMXQ_DECL_GEMM_FN(amxq_gemm_q8_0_ref);
AMXQ_DECL_GEMM_FN(amxq_gemm_q5_0_ref);
AMXQ_DECL_GEMM_FN(amxq_gemm_q5_1_ref);
AMXQ_DECL_GEMM_FN(amxq_gemm_iq4_nl_ref);
AMXQ_DECL_GEMM_FN(amxq_gemm_q4_k_ref);
AMXQ_DECL_GEMM_FN(amxq_gemm_q6_k_ref);   /* src/ref/gemm_kx.c */
AMXQ_DECL_GEMM_FN(amxq_gemm_q5_k_ref);   /* src/ref/gemm_kx.c */
AMXQ_DECL_GEMM_FN(amxq_gemm_iq4_xs_ref); /* src/ref/gemm_kx.c */

/* One row of k floats into ggml's activation blocks, byte for byte as ggml's x86 CPU path writes
 * them (k a multiple of the block): Q8_0 (34 B / 32), Q8_1 (36 B / 32), Q8_K (292 B / 256). */
void amxq_quantize_row_q8_0_ggml(const float *x, int64_t k, void *blocks);
void amxq_quantize_row_q8_1_ggml(const float *x, int64_t k, void *blocks);
void amxq_quantize_row_q8_k_ggml(const float *x, int64_t k, void *blocks);

#endif /* AMXQ_REF_H */
