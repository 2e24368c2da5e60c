/*
 * Layout of the quantized-activation workspace (struct amxq_qx, src/internal.h). One function
 * computes the offsets so that the size query and the pointer setup can never disagree.
 */
#include "internal.h"

/* Offsets of the arrays for (type, m, k); returns the total, or 0 if it overflows. */
static size_t qx_plan(amxq_type type, int64_t m, int64_t k, int64_t *ld_qs, int64_t *ld_d,
                      int64_t *ld_sums, size_t off[4])
{
    const int is_k = amxq_type_act_q8_k(type);
    const int64_t nd = k / (is_k ? AMXQ_QK_K : AMXQ_QK); /* scales per row */
    const int64_t nsums = k / (is_k ? 16 : AMXQ_QK);     /* sums per row */
    *ld_qs = AMXQ_ROUND_UP(k, 64);
    *ld_d = AMXQ_ROUND_UP(nd, 16);       /* 16 floats = 64 bytes */
    *ld_sums = AMXQ_ROUND_UP(nsums, 32); /* 32 int16 = 64 bytes */
    /* m, k < 2^31 so every product below fits in 64 bits */
    const uint64_t qs_bytes = (uint64_t)m * (uint64_t)*ld_qs;
    const uint64_t d_bytes = (uint64_t)m * (uint64_t)*ld_d * 4u;
    const uint64_t s_bytes = amxq_type_act_q8_1(type) ? d_bytes : 0;
    const uint64_t sums_bytes = (uint64_t)m * (uint64_t)*ld_sums * 2u;
    const uint64_t total = qs_bytes + 2 * d_bytes + sums_bytes; /* s reserved as d-sized */
    if (total > (uint64_t)SIZE_MAX)
        return 0;
    off[0] = 0;
    off[1] = (size_t)qs_bytes;
    off[2] = (size_t)(qs_bytes + d_bytes);
    off[3] = (size_t)(qs_bytes + d_bytes + (s_bytes ? s_bytes : d_bytes));
    return (size_t)total;
}

size_t amxq_qx_size(amxq_type type, int64_t m, int64_t k)
{
    int ti = amxq_type_index(type);
    if (ti < 0 || m <= 0 || k <= 0 || m >= ((int64_t)1 << 31) || k >= ((int64_t)1 << 31) ||
        k % amxq_type_block(type) != 0)
        return 0;
    int64_t a, b, c;
    size_t off[4];
    return qx_plan(type, m, k, &a, &b, &c, off);
}

void amxq_qx_layout(amxq_qx *qx, amxq_type type, int64_t m, int64_t k, void *ws)
{
    size_t off[4];
    qx_plan(type, m, k, &qx->ld_qs, &qx->ld_d, &qx->ld_sums, off);
    uint8_t *base = (uint8_t *)ws;
    qx->wtype = type;
    qx->m = m;
    qx->k = k;
    qx->qs = (int8_t *)(base + off[0]);
    qx->d = (float *)(void *)(base + off[1]);
    qx->s = amxq_type_act_q8_1(type) ? (float *)(void *)(base + off[2]) : NULL;
    qx->sums = (int16_t *)(void *)(base + off[3]);
}
