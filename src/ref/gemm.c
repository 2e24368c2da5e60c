/*
 * Reference products on packed weights: the oracle for every other gemm kernel. Written for
 * obviousness, not speed: one output at a time, every weight fetched through the documented
 * packed layout (src/internal.h), one exact int32 dot product per block, then the float epilogue
 * of the numeric contract (docs/design.md §1; include/amxq.h, "Numeric contract") written out
 * literally, one C operation per rounding, fmaf() where the contract fuses. Every other kernel
 * family must reproduce these bits, so any change here is a change of
 * AMXQ_NUMERIC_CONTRACT_VERSION.
 *
 * Invariants relied on: the layout was validated against the buffer; qx holds rows [m0, m1)
 * quantized for this weight type; padding rows of the last panel (n >= N) are never written.
 * The build passes -ffp-contract=off, so the compiler fuses nothing the code does not.
 */
#include <math.h>
#include <string.h>

#include "ref/fp16.h"
#include "ref/packed_dot.h"
#include "ref/ref.h"

static const uint8_t *block_chunk(const amxq_layout *lo, const uint8_t *panel, int64_t b)
{
    return panel + (size_t)b * lo->chunk_bytes;
}

static const uint8_t *block_terms(const amxq_layout *lo, const uint8_t *panel, int64_t b)
{
    return panel + lo->terms_offset + (size_t)b * lo->terms_bytes;
}

/* Blocks of 32 whose f32 sum is formed before it is added into double (the contract's group). */
#define REF_GROUP_32 8

/* Q5_0 / Q5_1 weight t (0..31) of row j, 0..31: the nibble (low for t < 16) of byte t % 16 of
 * the qs lines (1..4) with its fifth bit from the qh line (0), where ggml's qh bit t sits at bit
 * 2 * (t % 16 / 4) + t / 16 of byte t % 4 (src/internal.h). */
static int32_t q5_weight(const uint8_t *chunk, int j, int t)
{
    const int h = t / 16, l = t % 16;
    const uint8_t q = amxq_ref_chunk_byte(chunk + 64, j, l);
    const uint8_t qh = amxq_ref_chunk_byte(chunk, j, l % 4);
    return (h ? q >> 4 : q & 15) | ((qh >> (2 * (l / 4) + h)) & 1) << 4;
}

/* One output C[m][n] (n = panel row j) for the 32-weight types. */
static float dot_32(const amxq_layout *lo, const uint8_t *panel, int j, const amxq_qx *qx,
                    int64_t m)
{
    const int8_t *xq = qx->qs + m * qx->ld_qs;
    const float *xd = qx->d + m * qx->ld_d;
    double sum = 0.0;
    float acc = 0.0f;
    for (int64_t b = 0; b < lo->k_blocks; b++) {
        const uint8_t *chunk = block_chunk(lo, panel, b);
        const uint8_t *terms = block_terms(lo, panel, b);
        const int8_t *xb = xq + b * AMXQ_QK;
        const float dw = amxq_ref_term_half(terms, 0, j);
        int32_t isum = 0;
        switch (lo->type) {
        case AMXQ_TYPE_Q4_0:
            for (int t = 0; t < 16; t++) {
                const uint8_t q = amxq_ref_chunk_byte(chunk, j, t);
                isum += ((int32_t)(q & 15) - 8) * xb[t];
                isum += ((int32_t)(q >> 4) - 8) * xb[t + 16];
            }
            break;
        case AMXQ_TYPE_Q4_1:
            for (int t = 0; t < 16; t++) {
                const uint8_t q = amxq_ref_chunk_byte(chunk, j, t);
                isum += (int32_t)(q & 15) * xb[t];
                isum += (int32_t)(q >> 4) * xb[t + 16];
            }
            break;
        case AMXQ_TYPE_Q5_0:
            for (int t = 0; t < 32; t++)
                isum += (q5_weight(chunk, j, t) - 16) * xb[t];
            break;
        case AMXQ_TYPE_Q5_1:
            for (int t = 0; t < 32; t++)
                isum += q5_weight(chunk, j, t) * xb[t];
            break;
        case AMXQ_TYPE_IQ4_NL:
            for (int t = 0; t < 16; t++) {
                const uint8_t q = amxq_ref_chunk_byte(chunk, j, t);
                isum += amxq_ref_iq4_levels[q & 15] * xb[t];
                isum += amxq_ref_iq4_levels[q >> 4] * xb[t + 16];
            }
            break;
        case AMXQ_TYPE_Q8_0:
        default:
            for (int t = 0; t < 32; t++)
                isum += (int32_t)(int8_t)amxq_ref_chunk_byte(chunk, j, t) * xb[t];
            break;
        }
        /* |isum| < 2^24 for these types: the conversion is exact */
        const float scale = dw * xd[b];
        acc = fmaf((float)isum, scale, acc);
        if (lo->type == AMXQ_TYPE_Q4_1 || lo->type == AMXQ_TYPE_Q5_1) {
            const float mw = amxq_ref_term_half(terms, 32, j);
            acc = fmaf(mw, qx->s[m * qx->ld_d + b], acc);
        }
        if ((b + 1) % REF_GROUP_32 == 0 || b + 1 == lo->k_blocks) {
            sum += (double)acc;
            acc = 0.0f;
        }
    }
    return (float)sum;
}

/* One output for Q4_K: per super-block the exact integers
 * I = sum_j sc_j * isum_j and J = sum_j m_j * (bsums[2j] + bsums[2j+1]), then
 * v = fma(-float(J), dmin*d_x, float(I) * (d*d_x)) added into double. */
static float dot_q4_k(const amxq_layout *lo, const uint8_t *panel, int j, const amxq_qx *qx,
                      int64_t m)
{
    const int8_t *xq = qx->qs + m * qx->ld_qs;
    const float *xd = qx->d + m * qx->ld_d;
    const int16_t *bs = qx->sums + m * qx->ld_sums;
    double sum = 0.0;
    for (int64_t b = 0; b < lo->k_blocks; b++) {
        const uint8_t *chunk = block_chunk(lo, panel, b);
        const uint8_t *terms = block_terms(lo, panel, b);
        const int8_t *xb = xq + b * AMXQ_QK_K;
        const int16_t *bsb = bs + b * 16;
        const float d = amxq_ref_term_half(terms, 0, j);
        const float dmin = amxq_ref_term_half(terms, 32, j);
        int32_t sc_sum = 0, min_sum = 0;
        for (int sb = 0; sb < 8; sb++) {
            const int r = sb / 2; /* run r: sub-block 2r low nibbles, 2r+1 high nibbles */
            const uint8_t *run = chunk + (size_t)r * 512;
            int32_t isum = 0;
            for (int t = 0; t < 32; t++) {
                const uint8_t q = amxq_ref_chunk_byte(run, j, t);
                const int32_t w = (sb & 1) ? (q >> 4) : (q & 15);
                isum += w * xb[32 * sb + t];
            }
            const int32_t sc = terms[64 + 16 * sb + j];
            const int32_t mn = terms[192 + 16 * sb + j];
            sc_sum += sc * isum;
            min_sum += mn * (bsb[2 * sb] + bsb[2 * sb + 1]);
        }
        /* (float)sc_sum may round (|sc_sum| reaches 63 * 8 * 32 * 15 * 128 > 2^24): to
         * nearest-even, as vcvtdq2ps does */
        const float dd = d * xd[b];
        const float dm = dmin * xd[b];
        const float scaled = (float)sc_sum * dd;
        const float v = fmaf(-(float)min_sum, dm, scaled);
        sum += (double)v;
    }
    return (float)sum;
}

AMXQ_DECL_GEMM_FN(amxq_gemm_q4_0_ref)
{
    amxq_ref_gemm_each(lo, packed, qx, m0, m1, p0, p1, c, ldc, dot_32);
}

AMXQ_DECL_GEMM_FN(amxq_gemm_q4_1_ref)
{
    amxq_ref_gemm_each(lo, packed, qx, m0, m1, p0, p1, c, ldc, dot_32);
}

AMXQ_DECL_GEMM_FN(amxq_gemm_q8_0_ref)
{
    amxq_ref_gemm_each(lo, packed, qx, m0, m1, p0, p1, c, ldc, dot_32);
}

AMXQ_DECL_GEMM_FN(amxq_gemm_q5_0_ref)
{
    amxq_ref_gemm_each(lo, packed, qx, m0, m1, p0, p1, c, ldc, dot_32);
}

AMXQ_DECL_GEMM_FN(amxq_gemm_q5_1_ref)
{
    amxq_ref_gemm_each(lo, packed, qx, m0, m1, p0, p1, c, ldc, dot_32);
}

AMXQ_DECL_GEMM_FN(amxq_gemm_iq4_nl_ref)
{
    amxq_ref_gemm_each(lo, packed, qx, m0, m1, p0, p1, c, ldc, dot_32);
}

AMXQ_DECL_GEMM_FN(amxq_gemm_q4_k_ref)
{
    amxq_ref_gemm_each(lo, packed, qx, m0, m1, p0, p1, c, ldc, dot_q4_k);
}

/* The contract these functions define (include/amxq.h); any change to their float steps is a
 * new version. */
int amxq_numeric_contract_version(void)
{
    return AMXQ_NUMERIC_CONTRACT_VERSION;
}
