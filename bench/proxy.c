/*
 * proxy.c — the amx_proxy family's side in C: quantize X once, then time the AMX kernels' vector
 * side (src/tile/proxy.h: gemm.c with no-op tile operations) and the VNNI gemm of the avx512
 * table on the same quantized activations, rows and panels. C, because it reads the library's
 * internal kernel table and workspace layout (src/internal.h). Built only with -Damx_proxy=true
 * (AMXQ_BENCH_AMX_PROXY); elsewhere amxq_bench_proxy_new() reports that the proxy is absent.
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime, CLOCK_THREAD_CPUTIME_ID */

#include <stdlib.h>
#include <time.h>

#include "proxy.h"
#include "probes.h"

#include "internal.h"
#if defined(AMXQ_BENCH_AMX_PROXY)
#include "tile/proxy.h"
#endif

#if defined(AMXQ_BENCH_AMX_PROXY)
static amxq_gemm_fn *const proxy_gemm[AMXQ_NTYPES] = {
    [AMXQ_TI_Q4_0] = amxq_gemm_q4_0_amx_proxy, [AMXQ_TI_Q4_1] = amxq_gemm_q4_1_amx_proxy,
    [AMXQ_TI_Q8_0] = amxq_gemm_q8_0_amx_proxy, [AMXQ_TI_Q4_K] = amxq_gemm_q4_k_amx_proxy,
    [AMXQ_TI_Q5_K] = amxq_gemm_q5_k_amx_proxy, [AMXQ_TI_IQ4_XS] = amxq_gemm_iq4_xs_amx_proxy,
    [AMXQ_TI_Q6_K] = amxq_gemm_q6_k_amx_proxy, [AMXQ_TI_Q5_0] = amxq_gemm_q5_0_amx_proxy,
    [AMXQ_TI_Q5_1] = amxq_gemm_q5_1_amx_proxy, [AMXQ_TI_IQ4_NL] = amxq_gemm_iq4_nl_amx_proxy,
};
#endif

int amxq_bench_proxy_has(amxq_type type)
{
#if defined(AMXQ_BENCH_AMX_PROXY)
    const int ti = amxq_type_index(type);
    return ti >= 0 && proxy_gemm[ti] != NULL;
#else
    (void)type;
    return 0;
#endif
}

struct amxq_bench_proxy {
    amxq_layout lo;
    const void *packed;
    amxq_qx qx;
    void *ws;
    amxq_gemm_fn *gemm[2]; /* AMXQ_BENCH_PROXY_VECTOR, AMXQ_BENCH_PROXY_VNNI */
};

amxq_status amxq_bench_proxy_new(const void *packed, const float *x, int64_t m,
                                 amxq_bench_proxy **out)
{
    *out = NULL;
#if !defined(AMXQ_BENCH_AMX_PROXY)
    (void)packed;
    (void)x;
    (void)m;
    return AMXQ_ERR_ISA_UNSUPPORTED;
#else
    amxq_status st;
    if (packed == NULL)
        return AMXQ_ERR_NULL;
    /* The proxy is AVX-512 code: it runs exactly where the avx512 table does. */
    const struct amxq_kernels *vnni = amxq_kernels_get(AMXQ_ISA_AVX512, &st);
    if (vnni == NULL)
        return st;
    amxq_bench_proxy *p = calloc(1, sizeof *p);
    if (p == NULL)
        return AMXQ_ERR_NOMEM;
    st = amxq_layout_read(&p->lo, packed, SIZE_MAX);
    if (st == AMXQ_OK && proxy_gemm[p->lo.ti] == NULL)
        st = AMXQ_ERR_TYPE; /* a type src/tile has no proxy kernel for (yet) */
    size_t bytes = st == AMXQ_OK ? amxq_qx_size(p->lo.type, m, p->lo.k) : 0;
    if (st == AMXQ_OK && bytes == 0)
        st = AMXQ_ERR_SHAPE;
    if (st == AMXQ_OK) {
        p->ws = aligned_alloc(AMXQ_ALIGNMENT, AMXQ_ROUND_UP(bytes, AMXQ_ALIGNMENT));
        if (p->ws == NULL)
            st = AMXQ_ERR_NOMEM;
    }
    if (st != AMXQ_OK) {
        amxq_bench_proxy_free(p);
        return st;
    }
    p->packed = packed;
    amxq_qx_layout(&p->qx, p->lo.type, m, p->lo.k, p->ws);
    vnni->t[p->lo.ti].quantize(x, p->lo.k, 0, m, &p->qx);
    p->gemm[AMXQ_BENCH_PROXY_VECTOR] = proxy_gemm[p->lo.ti];
    p->gemm[AMXQ_BENCH_PROXY_VNNI] = vnni->t[p->lo.ti].gemm;
    *out = p;
    return AMXQ_OK;
#endif
}

/* The calling thread's CPU time: on a shared machine another process's time slices are not
 * counted against either kernel. */
static double thread_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

double amxq_bench_proxy_run(amxq_bench_proxy *p, int which, float *c)
{
    double t = thread_seconds();
    p->gemm[which](&p->lo, p->packed, &p->qx, 0, p->qx.m, 0, p->lo.n_panels, c, p->lo.n);
    return thread_seconds() - t;
}

void amxq_bench_proxy_free(amxq_bench_proxy *p)
{
    if (p != NULL)
        free(p->ws);
    free(p);
}
