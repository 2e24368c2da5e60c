/*
 * The vector-side proxy of the AMX kernels (meson option amx_proxy, off by default): src/tile's
 * kernel sources built with every tile operation a no-op (AMXQ_TILE_PROXY in tileops.h), so that
 * the kernels' AVX-512 work (B unpack, epilogue, flushes, C stores) can be timed on any AVX-512
 * CPU. The C they write is meaningless. Linked only into the benchmark harness (bench/proxy.c),
 * never into a library, and never in a kernel table. Needs AVX-512F/BW/VL (the -mavx512* build
 * flags), not AMX.
 */
#ifndef AMXQ_TILE_PROXY_H
#define AMXQ_TILE_PROXY_H

#include "internal.h"

AMXQ_DECL_GEMM_FN(amxq_gemm_q4_0_amx_proxy);
AMXQ_DECL_GEMM_FN(amxq_gemm_q4_1_amx_proxy);
AMXQ_DECL_GEMM_FN(amxq_gemm_q8_0_amx_proxy);
AMXQ_DECL_GEMM_FN(amxq_gemm_q4_k_amx_proxy);
AMXQ_DECL_GEMM_FN(amxq_gemm_q5_k_amx_proxy);
AMXQ_DECL_GEMM_FN(amxq_gemm_iq4_xs_amx_proxy);
AMXQ_DECL_GEMM_FN(amxq_gemm_q6_k_amx_proxy);
AMXQ_DECL_GEMM_FN(amxq_gemm_q5_0_amx_proxy);
AMXQ_DECL_GEMM_FN(amxq_gemm_q5_1_amx_proxy);
AMXQ_DECL_GEMM_FN(amxq_gemm_iq4_nl_amx_proxy);

#endif /* AMXQ_TILE_PROXY_H */
