/*
 * The loop around the VNNI micro-kernels, shared by every weight type.
 *
 * A micro-kernel computes an R x (16 P) tile of C -- R rows of X (R <= VN_RMAX) against P packed
 * panels (P <= VN_PMAX) -- over the whole of K, with its R*P float accumulators in registers from
 * the first block to the last, and stores it once with masked stores (columns n >= N of a padded
 * last panel are computed from the zero padding and never stored). Every (R, P) pair is its own
 * function, compiled from one always-inline body with R and P constant, so the loops over rows
 * and panels unroll and the accumulator arrays become registers.
 *
 * The driver walks panels in groups of VN_PMAX (outer) and rows in groups of VN_RMAX (inner): a
 * panel group is streamed from memory once, by the first row group, and then served from L2 to
 * the others, so every weight byte crosses the memory bus once per call (docs/design.md §6). At
 * M = 1 the same loop is a GEMV that streams the weights exactly once.
 */
#ifndef AMXQ_VNNI_GEMM_H
#define AMXQ_VNNI_GEMM_H

#include "vec512.h"
#include "vnni/vnni.h"

#define VN_RMAX 4 /* rows of X per micro-kernel */
#define VN_PMAX 2 /* panels (16 columns each) per micro-kernel */

/*
 * Accumulation, as the numeric contract fixes it (docs/design.md §1): per block the int32 sums
 * are scaled and fused into f32 accumulators held in registers; every VN_GROUP_32 blocks (256 k,
 * counted from block 0) those are added into f64 sums kept on the stack and restarted at +0; the
 * f64 sum is rounded to float once, at the end. The f32 error then stays that of a 256-k partial
 * sum whatever K is, at the cost of a few instructions per tile every 256 k. The group size is
 * part of the contract: every kernel family uses the same one, so it must not be tuned alone.
 */
#define VN_GROUP_32 8 /* blocks of 32; Q4_K adds into f64 every super-block of 256 */

/* Software prefetch distance for the weight streams, in bytes ahead of the block being read.
 * A guess (no AVX-512 machine was available to tune it): far enough to cover DRAM latency at a
 * single core's streaming rate, short enough to stay inside L1. */
#define VN_PF_BYTES 1536

/* Everything one micro-kernel call needs, gathered by the driver. */
struct vn_tile {
    const uint8_t *panel; /* first panel of the group */
    size_t panel_bytes;   /* stride to the next panel */
    size_t terms_offset;  /* of the terms section, within a panel */
    int64_t k_blocks;
    const int8_t *xq; /* X row m quants */
    int64_t ld_qs;
    const float *xd; /* row m block scales */
    const float *xs; /* row m Q8_1 s (Q4_1 only) */
    int64_t ld_d;
    const int16_t *xsum; /* row m block sums (Q8_0/Q8_1) or bsums (Q8_K) */
    int64_t ld_sums;
    float *c; /* C[m][16 p] */
    int64_t ldc;
    __mmask16 mask[VN_PMAX]; /* columns to store, per panel */
};

typedef void vn_ukernel(const struct vn_tile *t);

/* Run the micro-kernels uk[P-1][R-1] over rows [m0, m1) and panels [p0, p1). */
static inline void vn_gemm_drive(const amxq_layout *lo, const void *packed, const amxq_qx *qx,
                                 int64_t m0, int64_t m1, int64_t p0, int64_t p1, float *c,
                                 int64_t ldc, vn_ukernel *const uk[VN_PMAX][VN_RMAX])
{
    struct vn_tile t;
    t.panel_bytes = lo->panel_bytes;
    t.terms_offset = lo->terms_offset;
    t.k_blocks = lo->k_blocks;
    t.ld_qs = qx->ld_qs;
    t.ld_d = qx->ld_d;
    t.ld_sums = qx->ld_sums;
    t.ldc = ldc;
    for (int64_t p = p0; p < p1; p += VN_PMAX) {
        const int np = (int)(p1 - p < VN_PMAX ? p1 - p : VN_PMAX);
        t.panel = amxq_panel(lo, packed, p);
        for (int i = 0; i < VN_PMAX; i++) {
            const int64_t cols = lo->n - (p + i) * AMXQ_PANEL_N;
            t.mask[i] = (__mmask16)(i >= np || cols <= 0   ? 0u
                                    : cols >= AMXQ_PANEL_N ? 0xffffu
                                                           : (1u << cols) - 1u);
        }
        for (int64_t m = m0; m < m1; m += VN_RMAX) {
            const int nr = (int)(m1 - m < VN_RMAX ? m1 - m : VN_RMAX);
            t.xq = qx->qs + m * qx->ld_qs;
            t.xd = qx->d + m * qx->ld_d;
            t.xs = qx->s ? qx->s + m * qx->ld_d : NULL;
            t.xsum = qx->sums + m * qx->ld_sums;
            t.c = c + m * ldc + p * AMXQ_PANEL_N;
            uk[np - 1][nr - 1](&t);
        }
    }
}

/* The table of instantiations of body(t, R, P) for every R <= 4, P <= 2, named prefix_RxP. */
#define VN_INSTANTIATE(prefix, body)                                                               \
    static void prefix##_1x1(const struct vn_tile *t)                                              \
    {                                                                                              \
        body(t, 1, 1);                                                                             \
    }                                                                                              \
    static void prefix##_2x1(const struct vn_tile *t)                                              \
    {                                                                                              \
        body(t, 2, 1);                                                                             \
    }                                                                                              \
    static void prefix##_3x1(const struct vn_tile *t)                                              \
    {                                                                                              \
        body(t, 3, 1);                                                                             \
    }                                                                                              \
    static void prefix##_4x1(const struct vn_tile *t)                                              \
    {                                                                                              \
        body(t, 4, 1);                                                                             \
    }                                                                                              \
    static void prefix##_1x2(const struct vn_tile *t)                                              \
    {                                                                                              \
        body(t, 1, 2);                                                                             \
    }                                                                                              \
    static void prefix##_2x2(const struct vn_tile *t)                                              \
    {                                                                                              \
        body(t, 2, 2);                                                                             \
    }                                                                                              \
    static void prefix##_3x2(const struct vn_tile *t)                                              \
    {                                                                                              \
        body(t, 3, 2);                                                                             \
    }                                                                                              \
    static void prefix##_4x2(const struct vn_tile *t)                                              \
    {                                                                                              \
        body(t, 4, 2);                                                                             \
    }                                                                                              \
    static vn_ukernel *const prefix##_table[VN_PMAX][VN_RMAX] = {                                  \
        {prefix##_1x1, prefix##_2x1, prefix##_3x1, prefix##_4x1},                                  \
        {prefix##_1x2, prefix##_2x2, prefix##_3x2, prefix##_4x2},                                  \
    };

#endif /* AMXQ_VNNI_GEMM_H */
