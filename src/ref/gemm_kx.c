/*
 * Reference products for the weight types added after the first four (issue 14): Q6_K, Q5_K,
 * IQ4_XS. Same rules as src/ref/gemm.c: one output at a time, every weight fetched through the
 * documented packed layout (src/internal.h), exact int32 sums, then the numeric contract's float
 * steps (include/amxq.h, "Numeric contract"; docs/design.md §1) written out one rounding per C
 * operation. Every other family must reproduce these bits.
 */
#include <math.h>
#include <string.h>

#include "ref/packed_dot.h"
#include "ref/ref.h"

_Static_assert(sizeof(amxq_block_q6_k) == 210, "ggml block_q6_K is 210 bytes");

/* Q6_K weight i (0..255) of row j, 0..63, as ggml's dequantize_row_q6_K reads it (design.md §2):
 * half h = i / 128; within it quarter c = (i % 128) / 32 and l = i % 32. */
static int32_t q6_k_weight(const uint8_t *chunk, int j, int i)
{
    const int h = i / 128, c = (i % 128) / 32, l = i % 32;
    const uint8_t ql = amxq_ref_chunk_byte(chunk, j, 64 * h + 32 * (c & 1) + l);
    const uint8_t qh = amxq_ref_chunk_byte(chunk, j, 128 + 32 * h + l);
    const int32_t lo = (c < 2) ? (ql & 15) : (ql >> 4);
    return lo | ((qh >> (2 * c)) & 3) << 4;
}

/* One output for Q6_K: per super-block I = sum_j sc_j * sum (q - 32) * q_x over the 16 weights of
 * sub-block j, exact in int32 (|I| < 2^28), then v = float(I) * (d * d_x) added into double. */
static float dot_q6_k(const amxq_layout *lo, const uint8_t *panel, int j, const amxq_qx *qx,
                      int64_t m)
{
    const int8_t *xq = qx->qs + m * qx->ld_qs;
    const float *xd = qx->d + m * qx->ld_d;
    double sum = 0.0;
    for (int64_t b = 0; b < lo->k_blocks; b++) {
        const uint8_t *chunk = panel + (size_t)b * lo->chunk_bytes;
        const uint8_t *terms = panel + lo->terms_offset + (size_t)b * lo->terms_bytes;
        const int8_t *xb = xq + b * AMXQ_QK_K;
        int32_t isum = 0;
        for (int sb = 0; sb < 16; sb++) {
            int32_t s = 0;
            for (int t = 0; t < 16; t++) {
                const int i = 16 * sb + t;
                s += (q6_k_weight(chunk, j, i) - 32) * xb[i];
            }
            isum += (int32_t)(int8_t)terms[32 + 16 * sb + j] * s;
        }
        const float dd = amxq_ref_term_half(terms, 0, j) * xd[b];
        const float v = (float)isum * dd; /* (float)isum rounds to nearest-even above 2^24 */
        sum += (double)v;
    }
    return (float)sum;
}

AMXQ_DECL_GEMM_FN(amxq_gemm_q6_k_ref)
{
    amxq_ref_gemm_each(lo, packed, qx, m0, m1, p0, p1, c, ldc, dot_q6_k);
}

/* Q5_K weight t (0..31) of sub-block sb of row j, 0..31: the nibble of run sb / 2 (low for even
 * sb) with bit sb of qh[t] as bit 4 (docs/design.md §2). The run's lines follow qh's 8 lines. */
static int32_t q5_k_weight(const uint8_t *chunk, int j, int sb, int t)
{
    const uint8_t q = amxq_ref_chunk_byte(chunk + 512 * (size_t)(1 + sb / 2), j, t);
    const uint8_t qh = amxq_ref_chunk_byte(chunk, j, t);
    return ((sb & 1) ? (q >> 4) : (q & 15)) | ((qh >> sb) & 1) << 4;
}

/* One output for Q5_K: Q4_K's contract with 5-bit weights. Per super-block the exact integers
 * I = sum_j sc_j * isum_j and J = sum_j m_j * (bsums[2j] + bsums[2j+1]), then
 * v = fma(-float(J), dmin*d_x, float(I) * (d*d_x)) added into double. */
static float dot_q5_k(const amxq_layout *lo, const uint8_t *panel, int j, const amxq_qx *qx,
                      int64_t m)
{
    const int8_t *xq = qx->qs + m * qx->ld_qs;
    const float *xd = qx->d + m * qx->ld_d;
    const int16_t *bs = qx->sums + m * qx->ld_sums;
    double sum = 0.0;
    for (int64_t b = 0; b < lo->k_blocks; b++) {
        const uint8_t *chunk = panel + (size_t)b * lo->chunk_bytes;
        const uint8_t *terms = panel + lo->terms_offset + (size_t)b * lo->terms_bytes;
        const int8_t *xb = xq + b * AMXQ_QK_K;
        const int16_t *bsb = bs + b * 16;
        int32_t sc_sum = 0, min_sum = 0;
        for (int sb = 0; sb < 8; sb++) {
            int32_t isum = 0;
            for (int t = 0; t < 32; t++)
                isum += q5_k_weight(chunk, j, sb, t) * xb[32 * sb + t];
            sc_sum += (int32_t)terms[64 + 16 * sb + j] * isum;
            min_sum += (int32_t)terms[192 + 16 * sb + j] * (bsb[2 * sb] + bsb[2 * sb + 1]);
        }
        const float dd = amxq_ref_term_half(terms, 0, j) * xd[b];
        const float dm = amxq_ref_term_half(terms, 32, j) * xd[b];
        const float scaled = (float)sc_sum * dd; /* rounds to nearest-even above 2^24 */
        const float v = fmaf(-(float)min_sum, dm, scaled);
        sum += (double)v;
    }
    return (float)sum;
}

AMXQ_DECL_GEMM_FN(amxq_gemm_q5_k_ref)
{
    amxq_ref_gemm_each(lo, packed, qx, m0, m1, p0, p1, c, ldc, dot_q5_k);
}

/* One output for IQ4_XS: per super-block I = sum_i (ls_i - 32) * sum kv[q_w] * q_x over the 32
 * weights of sub-block i, exact in int32 (|I| < 2^28), then v = float(I) * (d * d_x) into double.
 * Sub-block i is 16 bytes of qs (packed lines 4i..4i+3): low nibbles weights 0..15, high 16..31. */
static float dot_iq4_xs(const amxq_layout *lo, const uint8_t *panel, int j, const amxq_qx *qx,
                        int64_t m)
{
    const int8_t *xq = qx->qs + m * qx->ld_qs;
    const float *xd = qx->d + m * qx->ld_d;
    double sum = 0.0;
    for (int64_t b = 0; b < lo->k_blocks; b++) {
        const uint8_t *chunk = panel + (size_t)b * lo->chunk_bytes;
        const uint8_t *terms = panel + lo->terms_offset + (size_t)b * lo->terms_bytes;
        const int8_t *xb = xq + b * AMXQ_QK_K;
        int32_t isum = 0;
        for (int sb = 0; sb < 8; sb++) {
            int32_t s = 0;
            for (int t = 0; t < 16; t++) {
                const uint8_t q = amxq_ref_chunk_byte(chunk, j, 16 * sb + t);
                s += amxq_ref_iq4_levels[q & 15] * xb[32 * sb + t];
                s += amxq_ref_iq4_levels[q >> 4] * xb[32 * sb + 16 + t];
            }
            isum += (int32_t)(int8_t)terms[32 + 16 * sb + j] * s; /* ls - 32 */
        }
        const float dd = amxq_ref_term_half(terms, 0, j) * xd[b];
        const float v = (float)isum * dd; /* (float)isum rounds to nearest-even above 2^24 */
        sum += (double)v;
    }
    return (float)sum;
}

AMXQ_DECL_GEMM_FN(amxq_gemm_iq4_xs_ref)
{
    amxq_ref_gemm_each(lo, packed, qx, m0, m1, p0, p1, c, ldc, dot_iq4_xs);
}
