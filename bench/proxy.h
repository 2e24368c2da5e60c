/*
 * proxy.h — the amx_proxy family (bench/proxy.c): time the AMX kernels' vector side, built with
 * no-op tile operations (src/tile/proxy.h, meson option amx_proxy), against the VNNI gemm on the
 * same quantized activations. Only the gemm slot is timed on both sides; quantizing X is done once
 * in amxq_bench_proxy_new().
 */
#ifndef AMXQ_BENCH_PROXY_H
#define AMXQ_BENCH_PROXY_H

#include <stdint.h>

#include "amxq.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct amxq_bench_proxy amxq_bench_proxy;

/* Whether this build has a proxy kernel for `type` (0 without -Damx_proxy=true). */
int amxq_bench_proxy_has(amxq_type type);

enum { AMXQ_BENCH_PROXY_VECTOR = 0, AMXQ_BENCH_PROXY_VNNI = 1 };

/* Quantize rows [0, m) of x (row stride K) for the validated packed weight `packed` with the
 * avx512 table's quantizer. AMXQ_ERR_ISA_UNSUPPORTED without the proxy build or where the avx512
 * family cannot run (the proxy is AVX-512 code). */
amxq_status amxq_bench_proxy_new(const void *packed, const float *x, int64_t m,
                                 amxq_bench_proxy **out);

/* Seconds of one product of all rows and panels into c (M x N, row stride N): `which` is
 * AMXQ_BENCH_PROXY_VECTOR (the proxy: meaningless C) or AMXQ_BENCH_PROXY_VNNI. */
double amxq_bench_proxy_run(amxq_bench_proxy *p, int which, float *c);

void amxq_bench_proxy_free(amxq_bench_proxy *p);

#ifdef __cplusplus
}
#endif

#endif /* AMXQ_BENCH_PROXY_H */
