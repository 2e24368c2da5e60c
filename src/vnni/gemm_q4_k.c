/*
 * VNNI product for Q4_K weights against Q8_K activations.
 *
 * A super-block of 256 is four runs of 8 packed lines; run r's low nibbles are sub-block 2r, its
 * high nibbles sub-block 2r+1 (32 k each, in line order). Per super-block and per (row, column):
 *
 *   isc  = sum_j sc_j * (sum_k q_w * q_x over sub-block j)          exact int32 (vpmulld)
 *   imin = sum_j m_j * (bsums[2j] + bsums[2j+1])                     exact int32 (vpdpwssd)
 *   v    = fma(-float(imin), dmin_w * d_x, float(isc) * (d_w * d_x))     then  sum += double(v)
 *
 * exactly the integers of the reference, scaled in float once per super-block by the numeric
 * contract (docs/design.md §1, include/amxq.h): the same roundings, in the same order, as the
 * reference (float(isc) rounds to nearest-even when |isc| >= 2^24). The sub-block sum
 * uses vpdpbusd with the nibbles as the unsigned operand (no correction needed: Q4_K's offset is
 * the separate min term). The min term pairs each int16 bsum with its sub-block's m: the weight
 * operand holds (m_j, m_j) in each 32-bit lane and the activation operand is the int32 at
 * &bsums[2j] -- the pair (bsums[2j], bsums[2j+1]) -- broadcast, so one vpdpwssd adds
 * m_j * (bsums[2j] + bsums[2j+1]).
 *
 * Registers with R = 4, P = 2: 8 isc, 8 per-sub-block int32 sums (the min term's 8 imin reuse
 * them after the sub-block loop), weights and scales; the f32 result of each super-block is added
 * into f64 sums on the stack. Each 64-byte line is loaded twice (once per nibble
 * half) so that only one sub-block's sums are live; the second load hits L1.
 */
#include "vnni/gemm.h"

/* One sub-block j (32 k) of every (row, panel): its int32 sums, times sc_j, into isc. Run j/2's
 * lines hold it in their low (high == 0) or high nibbles. */
VN_INLINE void q4k_subblock(const struct vn_tile *t, const int R, const int P,
                            const uint8_t *const *w, const uint8_t *const *terms, const int8_t *xb,
                            const int j, const int high, __m512i isc[VN_RMAX][VN_PMAX])
{
    const __m512i low4 = _mm512_set1_epi8(0x0f);
    __m512i ia[VN_RMAX][VN_PMAX];
    for (int r = 0; r < R; r++)
        for (int p = 0; p < P; p++)
            ia[r][p] = _mm512_setzero_si512();
#if defined(__GNUC__) && !defined(AMXQ_SIMD_EMU)
#pragma GCC unroll 8
#endif
    for (int l = 0; l < 8; l++) {
        for (int p = 0; p < P; p++) {
            const uint8_t *lp = w[p] + 512 * (j >> 1) + 64 * l;
            if (!high)
                _mm_prefetch((const char *)(lp + VN_PF_BYTES), _MM_HINT_T0);
            const __m512i line = vn_load(lp);
            const __m512i q = high ? _mm512_and_si512(_mm512_srli_epi16(line, 4), low4)
                                   : _mm512_and_si512(line, low4);
            for (int r = 0; r < R; r++)
                ia[r][p] = _mm512_dpbusd_epi32(ia[r][p], q,
                                               vn_bcast32(xb + r * t->ld_qs + 32 * j + 4 * l));
        }
    }
    for (int p = 0; p < P; p++) {
        const __m512i sc = vn_load_u8_i32(terms[p] + 64 + 16 * j);
        for (int r = 0; r < R; r++)
            isc[r][p] = _mm512_add_epi32(isc[r][p], _mm512_mullo_epi32(ia[r][p], sc));
    }
}

VN_INLINE void gemm_q4_k_tile(const struct vn_tile *t, const int R, const int P)
{
    /* Super-block results go straight into f64 sums on the stack (the accumulation of gemm.h
     * with a group of one super-block). */
    double sum[VN_RMAX][VN_PMAX][16];
    for (int r = 0; r < R; r++)
        for (int p = 0; p < P; p++)
            memset(sum[r][p], 0, sizeof sum[r][p]);

    for (int64_t b = 0; b < t->k_blocks; b++) {
        const uint8_t *w[VN_PMAX], *terms[VN_PMAX];
        for (int p = 0; p < P; p++) {
            w[p] = t->panel + (size_t)p * t->panel_bytes + (size_t)b * AMXQ_CHUNK_Q4_K;
            terms[p] = t->panel + (size_t)p * t->panel_bytes + t->terms_offset +
                       (size_t)b * AMXQ_TERMS_Q4_K;
            _mm_prefetch((const char *)(terms[p] + 2 * AMXQ_TERMS_Q4_K), _MM_HINT_T0);
        }
        const int8_t *xb = t->xq + b * AMXQ_QK_K;

        __m512i isc[VN_RMAX][VN_PMAX];
        for (int r = 0; r < R; r++)
            for (int p = 0; p < P; p++)
                isc[r][p] = _mm512_setzero_si512();
        for (int run = 0; run < 4; run++) {
            q4k_subblock(t, R, P, w, terms, xb, 2 * run, 0, isc);
            q4k_subblock(t, R, P, w, terms, xb, 2 * run + 1, 1, isc);
        }

        __m512i imin[VN_RMAX][VN_PMAX];
        for (int r = 0; r < R; r++)
            for (int p = 0; p < P; p++)
                imin[r][p] = _mm512_setzero_si512();
        for (int j = 0; j < 8; j++) {
            for (int p = 0; p < P; p++) {
                const __m512i m = vn_load_u8_i32(terms[p] + 192 + 16 * j);
                const __m512i mm = _mm512_or_si512(m, _mm512_slli_epi32(m, 16)); /* (m_j, m_j) */
                for (int r = 0; r < R; r++)
                    imin[r][p] = _mm512_dpwssd_epi32(
                        imin[r][p], mm, vn_bcast32(t->xsum + r * t->ld_sums + 16 * b + 2 * j));
            }
        }

        for (int p = 0; p < P; p++) {
            const __m512 d = vn_load_ph(terms[p]);
            const __m512 dmin = vn_load_ph(terms[p] + 32);
            for (int r = 0; r < R; r++) {
                const __m512 dx = _mm512_set1_ps(t->xd[r * t->ld_d + b]);
                __m512 v = _mm512_mul_ps(vn_cvt_i32_ps(isc[r][p]), _mm512_mul_ps(d, dx));
                v = vn_fnmadd_ps(vn_cvt_i32_ps(imin[r][p]), _mm512_mul_ps(dmin, dx), v);
                vn_add_to_f64(sum[r][p], v);
            }
        }
    }

    for (int r = 0; r < R; r++)
        for (int p = 0; p < P; p++)
            vn_mask_store_f64_as_ps(t->c + r * t->ldc + p * AMXQ_PANEL_N, t->mask[p], sum[r][p]);
}

#define Q4_K_BODY(t, R, P) gemm_q4_k_tile(t, R, P)
VN_INSTANTIATE(uk_q4_k, Q4_K_BODY)

AMXQ_DECL_GEMM_FN(AMXQ_VNNI(amxq_gemm_q4_k))
{
    vn_gemm_drive(lo, packed, qx, m0, m1, p0, p1, c, ldc, uk_q4_k_table);
}
