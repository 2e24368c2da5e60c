/*
 * VNNI product for IQ4_XS weights against Q8_K activations.
 *
 * A super-block of 256 is 8 sub-blocks of 32, each with a 6-bit scale ls_i (stored as ls_i - 32
 * in the packed terms, src/internal.h). Sub-block i is the packed lines 4i..4i+3: low nibbles
 * weights 0..15, high nibbles 16..31, each an index into ggml's kvalues_iq4nl. vpshufb turns a
 * line's nibbles into kv + 128 (1..241, vpdpbusd's unsigned operand), so with the exact integers
 * of the numeric contract (docs/design.md §1, include/amxq.h):
 *
 *   isc  = sum_i (ls_i - 32) * (sum_k (kv + 128) * q_x over sub-block i)     vpdpbusd, vpmulld
 *   corr = sum_i (ls_i - 32) * (bsums[2i] + bsums[2i+1])                       vpdpwssd
 *   I    = isc - 128 * corr                                 = sum_i (ls_i - 32) * sum kv * q_x
 *   v    = float(I) * (d_w * d_x)                                       then  sum += double(v)
 */
#include "vec512_kx.h"
#include "vnni/gemm.h"

VN_INLINE void iq4xs_subblock(const struct vn_tile *t, const int R, const int P,
                              const uint8_t *const *w, const uint8_t *const *terms,
                              const int8_t *xb, const int i, const __m512i tbl,
                              __m512i isc[VN_RMAX][VN_PMAX])
{
    __m512i ia[VN_RMAX][VN_PMAX];
    for (int r = 0; r < R; r++)
        for (int p = 0; p < P; p++)
            ia[r][p] = _mm512_setzero_si512();
#if defined(__GNUC__) && !defined(AMXQ_SIMD_EMU)
#pragma GCC unroll 4
#endif
    for (int l = 0; l < 4; l++) {
        for (int p = 0; p < P; p++) {
            const uint8_t *lp = w[p] + 64 * (4 * i + l);
            _mm_prefetch((const char *)(lp + VN_PF_BYTES), _MM_HINT_T0);
            const __m512i line = vn_load(lp);
            const __m512i lo = vn_iq4_line(line, tbl, 0), hi = vn_iq4_line(line, tbl, 1);
            for (int r = 0; r < R; r++) {
                const int8_t *xr = xb + r * t->ld_qs + 32 * i;
                ia[r][p] = _mm512_dpbusd_epi32(ia[r][p], lo, vn_bcast32(xr + 4 * l));
                ia[r][p] = _mm512_dpbusd_epi32(ia[r][p], hi, vn_bcast32(xr + 16 + 4 * l));
            }
        }
    }
    for (int p = 0; p < P; p++) {
        const __m512i sc = vn_load_i8_i32(terms[p] + 32 + 16 * i);
        for (int r = 0; r < R; r++)
            isc[r][p] = _mm512_add_epi32(isc[r][p], _mm512_mullo_epi32(ia[r][p], sc));
    }
}

VN_INLINE void gemm_iq4_xs_tile(const struct vn_tile *t, const int R, const int P)
{
    const __m512i tbl = vn_iq4_table(128);
    double sum[VN_RMAX][VN_PMAX][16];
    for (int r = 0; r < R; r++)
        for (int p = 0; p < P; p++)
            memset(sum[r][p], 0, sizeof sum[r][p]);

    for (int64_t b = 0; b < t->k_blocks; b++) {
        const uint8_t *w[VN_PMAX], *terms[VN_PMAX];
        for (int p = 0; p < P; p++) {
            w[p] = t->panel + (size_t)p * t->panel_bytes + (size_t)b * AMXQ_CHUNK_IQ4_XS;
            terms[p] = t->panel + (size_t)p * t->panel_bytes + t->terms_offset +
                       (size_t)b * AMXQ_TERMS_IQ4_XS;
            _mm_prefetch((const char *)(terms[p] + 2 * AMXQ_TERMS_IQ4_XS), _MM_HINT_T0);
        }
        const int8_t *xb = t->xq + b * AMXQ_QK_K;

        __m512i isc[VN_RMAX][VN_PMAX];
        for (int r = 0; r < R; r++)
            for (int p = 0; p < P; p++)
                isc[r][p] = _mm512_setzero_si512();
        /* Spelled out so that i is a constant in every call (see gemm_q6_k.c). */
        iq4xs_subblock(t, R, P, w, terms, xb, 0, tbl, isc);
        iq4xs_subblock(t, R, P, w, terms, xb, 1, tbl, isc);
        iq4xs_subblock(t, R, P, w, terms, xb, 2, tbl, isc);
        iq4xs_subblock(t, R, P, w, terms, xb, 3, tbl, isc);
        iq4xs_subblock(t, R, P, w, terms, xb, 4, tbl, isc);
        iq4xs_subblock(t, R, P, w, terms, xb, 5, tbl, isc);
        iq4xs_subblock(t, R, P, w, terms, xb, 6, tbl, isc);
        iq4xs_subblock(t, R, P, w, terms, xb, 7, tbl, isc);

        /* corr = sum_i (ls_i - 32) * (bsums[2i] + bsums[2i+1]): (sc_i, sc_i) against the pair */
        __m512i corr[VN_RMAX][VN_PMAX];
        for (int r = 0; r < R; r++)
            for (int p = 0; p < P; p++)
                corr[r][p] = _mm512_setzero_si512();
        for (int i = 0; i < 8; i++) {
            for (int p = 0; p < P; p++) {
                const uint8_t *sc = terms[p] + 32 + 16 * i;
                const __m512i sp = vn_pair_i8_i16(sc, sc);
                for (int r = 0; r < R; r++)
                    corr[r][p] = _mm512_dpwssd_epi32(
                        corr[r][p], sp, vn_bcast32(t->xsum + r * t->ld_sums + 16 * b + 2 * i));
            }
        }

        for (int p = 0; p < P; p++) {
            const __m512 d = vn_load_ph(terms[p]);
            for (int r = 0; r < R; r++) {
                const __m512 dd = _mm512_mul_ps(d, _mm512_set1_ps(t->xd[r * t->ld_d + b]));
                const __m512i itot = _mm512_sub_epi32(isc[r][p], _mm512_slli_epi32(corr[r][p], 7));
                vn_add_to_f64(sum[r][p], _mm512_mul_ps(vn_cvt_i32_ps(itot), dd));
            }
        }
    }

    for (int r = 0; r < R; r++)
        for (int p = 0; p < P; p++)
            vn_mask_store_f64_as_ps(t->c + r * t->ldc + p * AMXQ_PANEL_N, t->mask[p], sum[r][p]);
}

#define IQ4_XS_BODY(t, R, P) gemm_iq4_xs_tile(t, R, P)
VN_INSTANTIATE(uk_iq4_xs, IQ4_XS_BODY)

AMXQ_DECL_GEMM_FN(AMXQ_VNNI(amxq_gemm_iq4_xs))
{
    vn_gemm_drive(lo, packed, qx, m0, m1, p0, p1, c, ldc, uk_iq4_xs_table);
}
