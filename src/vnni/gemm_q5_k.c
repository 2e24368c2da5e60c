/*
 * VNNI product for Q5_K weights against Q8_K activations: Q4_K's kernel (gemm_q4_k.c) with 5-bit
 * weights. The packed chunk is qh's 8 lines then Q4_K's four runs of 8 lines (src/internal.h);
 * sub-block j's line L is the nibble of run j / 2's line L with bit j of qh line L as bit 4
 * (vn_q5_k_line), vpdpbusd's unsigned operand (0..31). Per super-block and per (row, column),
 * with the exact integers of the numeric contract (docs/design.md §1, include/amxq.h):
 *
 *   isc  = sum_j sc_j * (sum_k q_w * q_x over sub-block j)          exact int32 (vpmulld)
 *   imin = sum_j m_j * (bsums[2j] + bsums[2j+1])                     exact int32 (vpdpwssd)
 *   v    = fma(-float(imin), dmin_w * d_x, float(isc) * (d_w * d_x))     then  sum += double(v)
 *
 * the same roundings, in the same order, as the reference and the Q4_K kernels.
 */
#include "vec512_kx.h"
#include "vnni/gemm.h"

VN_INLINE void q5k_subblock(const struct vn_tile *t, const int R, const int P,
                            const uint8_t *const *w, const uint8_t *const *terms, const int8_t *xb,
                            const int j, __m512i isc[VN_RMAX][VN_PMAX])
{
    __m512i ia[VN_RMAX][VN_PMAX];
    for (int r = 0; r < R; r++)
        for (int p = 0; p < P; p++)
            ia[r][p] = _mm512_setzero_si512();
#if defined(__GNUC__) && !defined(AMXQ_SIMD_EMU)
#pragma GCC unroll 8
#endif
    for (int l = 0; l < 8; l++) {
        for (int p = 0; p < P; p++) {
            const uint8_t *qs = w[p] + 512 * (1 + (j >> 1)) + 64 * l;
            const uint8_t *qh = w[p] + 64 * l;
            if (!(j & 1))
                _mm_prefetch((const char *)(qs + VN_PF_BYTES), _MM_HINT_T0);
            if (j == 0)
                _mm_prefetch((const char *)(qh + VN_PF_BYTES), _MM_HINT_T0);
            const __m512i q = vn_q5_k_line(vn_load(qs), vn_load(qh), j);
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

VN_INLINE void gemm_q5_k_tile(const struct vn_tile *t, const int R, const int P)
{
    double sum[VN_RMAX][VN_PMAX][16];
    for (int r = 0; r < R; r++)
        for (int p = 0; p < P; p++)
            memset(sum[r][p], 0, sizeof sum[r][p]);

    for (int64_t b = 0; b < t->k_blocks; b++) {
        const uint8_t *w[VN_PMAX], *terms[VN_PMAX];
        for (int p = 0; p < P; p++) {
            w[p] = t->panel + (size_t)p * t->panel_bytes + (size_t)b * AMXQ_CHUNK_Q5_K;
            terms[p] = t->panel + (size_t)p * t->panel_bytes + t->terms_offset +
                       (size_t)b * AMXQ_TERMS_Q5_K;
            _mm_prefetch((const char *)(terms[p] + 2 * AMXQ_TERMS_Q5_K), _MM_HINT_T0);
        }
        const int8_t *xb = t->xq + b * AMXQ_QK_K;

        __m512i isc[VN_RMAX][VN_PMAX];
        for (int r = 0; r < R; r++)
            for (int p = 0; p < P; p++)
                isc[r][p] = _mm512_setzero_si512();
        /* Spelled out so that j is a constant in every call (see gemm_q6_k.c). */
        q5k_subblock(t, R, P, w, terms, xb, 0, isc);
        q5k_subblock(t, R, P, w, terms, xb, 1, isc);
        q5k_subblock(t, R, P, w, terms, xb, 2, isc);
        q5k_subblock(t, R, P, w, terms, xb, 3, isc);
        q5k_subblock(t, R, P, w, terms, xb, 4, isc);
        q5k_subblock(t, R, P, w, terms, xb, 5, isc);
        q5k_subblock(t, R, P, w, terms, xb, 6, isc);
        q5k_subblock(t, R, P, w, terms, xb, 7, isc);

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

#define Q5_K_BODY(t, R, P) gemm_q5_k_tile(t, R, P)
VN_INSTANTIATE(uk_q5_k, Q5_K_BODY)

AMXQ_DECL_GEMM_FN(AMXQ_VNNI(amxq_gemm_q5_k))
{
    vn_gemm_drive(lo, packed, qx, m0, m1, p0, p1, c, ldc, uk_q5_k_table);
}
