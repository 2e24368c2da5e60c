/*
 * VNNI product for Q6_K weights against Q8_K activations.
 *
 * A super-block of 256 is 16 sub-blocks of 16 weights, each with a signed 8-bit scale sc_j. The
 * packed chunk keeps ggml's ql and qh bytes (src/internal.h): sub-block j = 8h + 2c + g (half h,
 * quarter c, group g of 16 l) is the four packed lines L = 4g..4g+3 of ql line 16h + 8(c & 1) + L
 * and qh line 32 + 8h + L, unpacked in registers to 6-bit values 0..63 (vn_q6_k_line), which are
 * vpdpbusd's unsigned operand. Per super-block and per (row, column), with the exact integers of
 * the numeric contract (docs/design.md §1, include/amxq.h):
 *
 *   isc  = sum_j sc_j * (sum_k q_w * q_x over sub-block j)      vpdpbusd, then vpmulld by sc_j
 *   corr = sum_j sc_j * bsums[j]                                 vpdpwssd on (sc_2i, sc_2i+1)
 *   I    = isc - 32 * corr                                       = sum_j sc_j * sum (q_w - 32) q_x
 *   v    = float(I) * (d_w * d_x)                                then  sum += double(v)
 *
 * Registers with R = 4, P = 2: 8 isc, 8 sub-block sums, the unpacked line and the broadcast
 * activations. Each sub-block reloads its ql/qh lines (the other quarters reuse them from L1), so
 * only one sub-block's sums are live at a time.
 */
#include "vec512_kx.h"
#include "vnni/gemm.h"

VN_INLINE void q6k_subblock(const struct vn_tile *t, const int R, const int P,
                            const uint8_t *const *w, const uint8_t *const *terms, const int8_t *xb,
                            const int h, const int c, const int g, __m512i isc[VN_RMAX][VN_PMAX])
{
    const int j = 8 * h + 2 * c + g;
    __m512i ia[VN_RMAX][VN_PMAX];
    for (int r = 0; r < R; r++)
        for (int p = 0; p < P; p++)
            ia[r][p] = _mm512_setzero_si512();
#if defined(__GNUC__) && !defined(AMXQ_SIMD_EMU)
#pragma GCC unroll 4
#endif
    for (int L = 4 * g; L < 4 * g + 4; L++) {
        for (int p = 0; p < P; p++) {
            const uint8_t *ql = w[p] + 64 * (16 * h + 8 * (c & 1) + L);
            const uint8_t *qh = w[p] + 64 * (32 + 8 * h + L);
            if (c == 0)
                _mm_prefetch((const char *)(ql + VN_PF_BYTES), _MM_HINT_T0);
            if (c == 0 && (L & 1) == 0)
                _mm_prefetch((const char *)(qh + VN_PF_BYTES), _MM_HINT_T0);
            const __m512i q = vn_q6_k_line(vn_load(ql), vn_load(qh), c);
            for (int r = 0; r < R; r++)
                ia[r][p] = _mm512_dpbusd_epi32(
                    ia[r][p], q, vn_bcast32(xb + r * t->ld_qs + 128 * h + 32 * c + 4 * L));
        }
    }
    for (int p = 0; p < P; p++) {
        const __m512i sc = vn_load_i8_i32(terms[p] + 32 + 16 * j);
        for (int r = 0; r < R; r++)
            isc[r][p] = _mm512_add_epi32(isc[r][p], _mm512_mullo_epi32(ia[r][p], sc));
    }
}

VN_INLINE void gemm_q6_k_tile(const struct vn_tile *t, const int R, const int P)
{
    double sum[VN_RMAX][VN_PMAX][16];
    for (int r = 0; r < R; r++)
        for (int p = 0; p < P; p++)
            memset(sum[r][p], 0, sizeof sum[r][p]);

    for (int64_t b = 0; b < t->k_blocks; b++) {
        const uint8_t *w[VN_PMAX], *terms[VN_PMAX];
        for (int p = 0; p < P; p++) {
            w[p] = t->panel + (size_t)p * t->panel_bytes + (size_t)b * AMXQ_CHUNK_Q6_K;
            terms[p] = t->panel + (size_t)p * t->panel_bytes + t->terms_offset +
                       (size_t)b * AMXQ_TERMS_Q6_K;
            _mm_prefetch((const char *)(terms[p] + 2 * AMXQ_TERMS_Q6_K), _MM_HINT_T0);
            _mm_prefetch((const char *)(terms[p] + 2 * AMXQ_TERMS_Q6_K + 64), _MM_HINT_T0);
        }
        const int8_t *xb = t->xq + b * AMXQ_QK_K;

        __m512i isc[VN_RMAX][VN_PMAX];
        for (int r = 0; r < R; r++)
            for (int p = 0; p < P; p++)
                isc[r][p] = _mm512_setzero_si512();
                /* Spelled out so that h, c and g are constants in every call: the unpacking then
                 * has no branches and the sums stay in registers (a loop here is not unrolled by
                 * gcc). */
#define Q6K_SUB(h, c, g) q6k_subblock(t, R, P, w, terms, xb, h, c, g, isc)
        Q6K_SUB(0, 0, 0), Q6K_SUB(0, 1, 0), Q6K_SUB(0, 2, 0), Q6K_SUB(0, 3, 0);
        Q6K_SUB(0, 0, 1), Q6K_SUB(0, 1, 1), Q6K_SUB(0, 2, 1), Q6K_SUB(0, 3, 1);
        Q6K_SUB(1, 0, 0), Q6K_SUB(1, 1, 0), Q6K_SUB(1, 2, 0), Q6K_SUB(1, 3, 0);
        Q6K_SUB(1, 0, 1), Q6K_SUB(1, 1, 1), Q6K_SUB(1, 2, 1), Q6K_SUB(1, 3, 1);
#undef Q6K_SUB

        /* corr = sum_j sc_j * bsums[j], eight vpdpwssd on pairs of sub-blocks */
        __m512i corr[VN_RMAX][VN_PMAX];
        for (int r = 0; r < R; r++)
            for (int p = 0; p < P; p++)
                corr[r][p] = _mm512_setzero_si512();
        for (int i = 0; i < 8; i++) {
            for (int p = 0; p < P; p++) {
                const __m512i sp =
                    vn_pair_i8_i16(terms[p] + 32 + 16 * (2 * i), terms[p] + 32 + 16 * (2 * i + 1));
                for (int r = 0; r < R; r++)
                    corr[r][p] = _mm512_dpwssd_epi32(
                        corr[r][p], sp, vn_bcast32(t->xsum + r * t->ld_sums + 16 * b + 2 * i));
            }
        }

        for (int p = 0; p < P; p++) {
            const __m512 d = vn_load_ph(terms[p]);
            for (int r = 0; r < R; r++) {
                const __m512 dd = _mm512_mul_ps(d, _mm512_set1_ps(t->xd[r * t->ld_d + b]));
                const __m512i itot = _mm512_sub_epi32(isc[r][p], _mm512_slli_epi32(corr[r][p], 5));
                vn_add_to_f64(sum[r][p], _mm512_mul_ps(vn_cvt_i32_ps(itot), dd));
            }
        }
    }

    for (int r = 0; r < R; r++)
        for (int p = 0; p < P; p++)
            vn_mask_store_f64_as_ps(t->c + r * t->ldc + p * AMXQ_PANEL_N, t->mask[p], sum[r][p]);
}

#define Q6_K_BODY(t, R, P) gemm_q6_k_tile(t, R, P)
VN_INSTANTIATE(uk_q6_k, Q6_K_BODY)

AMXQ_DECL_GEMM_FN(AMXQ_VNNI(amxq_gemm_q6_k))
{
    vn_gemm_drive(lo, packed, qx, m0, m1, p0, p1, c, ldc, uk_q6_k_table);
}
