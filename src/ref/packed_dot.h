/*
 * What the reference gemms (src/ref/gemm.c, src/ref/gemm_kx.c) share: reading the packed layout
 * (src/internal.h) one byte or one scale at a time, and the walk over C that calls a type's
 * one-output dot product for every (row, column) of a rectangle. Private to src/ref.
 */
#ifndef AMXQ_REF_PACKED_DOT_H
#define AMXQ_REF_PACKED_DOT_H

#include <string.h>

#include "internal.h"
#include "ref/fp16.h"

/* Byte t of row j's ggml bytes of one block (or one 32-byte run) in an interleaved chunk:
 * line t/4, byte 4*j + t%4. */
static inline uint8_t amxq_ref_chunk_byte(const uint8_t *chunk, int j, int t)
{
    return chunk[(t / 4) * 64 + 4 * j + (t % 4)];
}

/* Row j's fp16 term at byte offset `off` of a block's terms, as f32 (exact). */
static inline float amxq_ref_term_half(const uint8_t *terms, size_t off, int j)
{
    uint16_t v;
    memcpy(&v, terms + off + 2 * (size_t)j, sizeof v);
    return amxq_fp16_to_fp32(v);
}

/* ggml's kvalues_iq4nl: the 16 levels of IQ4_NL and IQ4_XS (docs/design.md §2). */
static const int8_t amxq_ref_iq4_levels[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                               1,    13,   25,  38,  53,  69,  89,  113};

/* C[m][n] for n = panel row j of `panel`: the contract's result for one output. */
typedef float amxq_ref_dot_fn(const amxq_layout *lo, const uint8_t *panel, int j, const amxq_qx *qx,
                              int64_t m);

/* C[m][n] = dot(...) for m in [m0, m1), n in panels [p0, p1) clipped to n < N: the gemm slot's
 * contract (AMXQ_DECL_GEMM_FN) for any one-output dot product. */
static inline void amxq_ref_gemm_each(const amxq_layout *lo, const void *packed, const amxq_qx *qx,
                                      int64_t m0, int64_t m1, int64_t p0, int64_t p1, float *c,
                                      int64_t ldc, amxq_ref_dot_fn *dot)
{
    for (int64_t m = m0; m < m1; m++) {
        for (int64_t p = p0; p < p1; p++) {
            const uint8_t *panel = amxq_panel(lo, packed, p);
            for (int j = 0; j < AMXQ_PANEL_N; j++) {
                const int64_t n = p * AMXQ_PANEL_N + j;
                if (n >= lo->n)
                    break;
                c[m * ldc + n] = dot(lo, panel, j, qx, m);
            }
        }
    }
}

#endif /* AMXQ_REF_PACKED_DOT_H */
