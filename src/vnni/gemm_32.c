/*
 * VNNI products for the 32-weight block types: Q4_0, Q5_0, Q4_1 and Q5_1 (against Q8_0 / Q8_1
 * activations), Q8_0 and IQ4_NL (against Q8_0). One body, the weight type a compile-time constant.
 *
 * vpdpbusd multiplies unsigned bytes by signed bytes. A packed 64-byte line is 16 columns x 4
 * consecutive k -- exactly its unsigned operand -- and the signed operand is 4 activation bytes
 * broadcast to all 16 lanes (an embedded {1to16} memory broadcast). Per block and per (row,
 * column) this gives the exact int32 sum; the correction that makes the weights unsigned is
 * folded into the accumulator's start value:
 *
 *   Q4_0  nibbles 0..15 are the u8 operand;   sum (q-8)*x = sum q*x - 8*sum x    start -8*sx
 *   Q5_0  5-bit values 0..31 (nibble | qh bit << 4, vn_q5_k_line);               start -16*sx
 *   Q4_1  nibbles are the value;               no correction (m_w*s_x added in float)
 *   Q5_1  5-bit values are the value;          no correction (m_w*s_x added in float)
 *   Q8_0  line ^ 0x80 = q+128 as u8;          sum q*x = sum (q+128)*x - 128*sx   start -128*sx
 *   IQ4_NL  vpshufb of the nibbles: kv+128;   sum kv*x = sum (kv+128)*x - 128*sx start -128*sx
 *
 * with sx = qx->sums, the block's sum of activation quants. Q8_0 flips the weight side rather than
 * the activation side so that the flip is paid once per line and reused by all R rows (which is
 * why the packed layout carries no weight sums). The Q5 types' qh line (line 0 of its chunk) holds,
 * in byte i of each row, the fifth bits of byte i of the four qs lines, low and high nibble (bits
 * 2L, 2L + 1 for line L: src/internal.h), so a 5-bit line is Q5_K's unpack of one nibble set.
 * Per block the int32 sum is scaled in float by the numeric contract (docs/design.md §1,
 * include/amxq.h), which this code and the reference implement operation for operation:
 *
 *   acc = fma(float(isum), d_w * d_x, acc)          one rounding for d_w * d_x, one for the fma
 *   acc = fma(m_w, s_x, acc)                         Q4_1, Q5_1 only
 *
 * acc restarting at +0 every VN_GROUP_32 blocks and added into a double sum (gemm.h).
 *
 * Inner loop, per block, per 64-byte line (4 k), per panel: one load, the unpack (Q4: and,
 * shift+and; Q5: those and a shift+mask of the qh line per nibble set; Q8: xor), then R (Q4, Q5:
 * 2R) vpdpbusd. With R = 4 and P = 2 that is 8 int32 + 8 f32 accumulators, 2-4 weight registers;
 * the unpack is amortized over 4 rows, so vpdpbusd issue (one port on most cores) is the intended
 * bottleneck at large M, and at M = 1 memory bandwidth.
 */
#include "vec512_kx.h"
#include "vnni/gemm.h"

enum { T_Q4_0, T_Q4_1, T_Q8_0, T_Q5_0, T_Q5_1, T_IQ4_NL };

VN_INLINE void gemm32_tile(const struct vn_tile *t, const int T, const int R, const int P)
{
    const int q5 = T == T_Q5_0 || T == T_Q5_1;
    const int with_m = T == T_Q4_1 || T == T_Q5_1; /* the m_w * s_x term; no start correction */
    const size_t chunk = T == T_Q8_0 ? AMXQ_CHUNK_Q8_0 : q5 ? AMXQ_CHUNK_Q5_0 : AMXQ_CHUNK_Q4_0;
    const size_t termsz = with_m ? AMXQ_TERMS_Q4_1 : AMXQ_TERMS_Q4_0;
    const int lines = (int)(chunk / 64);
    const int qs0 = q5; /* the line where the quants start: Q5's qh line comes first */
    const int32_t corr = T == T_Q4_0 ? -8 : T == T_Q5_0 ? -16 : -128;
    const __m512i low4 = _mm512_set1_epi8(0x0f);
    const __m512i flip = _mm512_set1_epi8((char)0x80);
    const __m512i kv128 = T == T_IQ4_NL ? vn_iq4_table(128) : _mm512_setzero_si512();

    /* Two-level accumulation: f32 registers over a group of blocks, then f64 in memory, so the
     * float rounding error does not grow with K (see gemm.h). */
    double sum[VN_RMAX][VN_PMAX][16];
    for (int r = 0; r < R; r++)
        for (int p = 0; p < P; p++)
            memset(sum[r][p], 0, sizeof sum[r][p]);

    for (int64_t b0 = 0; b0 < t->k_blocks; b0 += VN_GROUP_32) {
        const int64_t b1 = b0 + VN_GROUP_32 < t->k_blocks ? b0 + VN_GROUP_32 : t->k_blocks;
        __m512 acc[VN_RMAX][VN_PMAX];
        for (int r = 0; r < R; r++)
            for (int p = 0; p < P; p++)
                acc[r][p] = _mm512_setzero_ps();

        for (int64_t b = b0; b < b1; b++) {
            const uint8_t *w[VN_PMAX], *terms[VN_PMAX];
            for (int p = 0; p < P; p++) {
                w[p] = t->panel + (size_t)p * t->panel_bytes + (size_t)b * chunk;
                terms[p] =
                    t->panel + (size_t)p * t->panel_bytes + t->terms_offset + (size_t)b * termsz;
                for (int l = 0; l < lines; l++)
                    _mm_prefetch((const char *)(w[p] + VN_PF_BYTES + 64 * l), _MM_HINT_T0);
                _mm_prefetch((const char *)(terms[p] + VN_PF_BYTES / (chunk / termsz)),
                             _MM_HINT_T0);
            }

            __m512i ia[VN_RMAX][VN_PMAX];
            for (int r = 0; r < R; r++) {
                const __m512i start = with_m
                                          ? _mm512_setzero_si512()
                                          : _mm512_set1_epi32(corr * t->xsum[r * t->ld_sums + b]);
                for (int p = 0; p < P; p++)
                    ia[r][p] = start;
            }

            const int8_t *xb = t->xq + b * AMXQ_QK;
            __m512i qh[VN_PMAX];
            for (int p = 0; p < P; p++) {
                qh[p] = q5 ? vn_load(w[p]) : _mm512_setzero_si512();
            }
            /* Unrolled, so that the Q5 types' qh shifts (vn_q5_k_line) are constants. */
#if defined(__GNUC__) && !defined(AMXQ_SIMD_EMU)
#pragma GCC unroll 8
#endif
            for (int l = 0; l < lines - qs0; l++) {
                for (int p = 0; p < P; p++) {
                    const __m512i line = vn_load(w[p] + 64 * (qs0 + l));
                    if (T == T_Q8_0) {
                        const __m512i u = _mm512_xor_si512(line, flip);
                        for (int r = 0; r < R; r++)
                            ia[r][p] = _mm512_dpbusd_epi32(ia[r][p], u,
                                                           vn_bcast32(xb + r * t->ld_qs + 4 * l));
                    } else {
                        /* low nibbles are k = 4l..4l+3, high nibbles k = 16+4l.. (ggml's order) */
                        __m512i lo, hi;
                        if (q5) {
                            lo = vn_q5_k_line(line, qh[p], 2 * l);
                            hi = vn_q5_k_line(line, qh[p], 2 * l + 1);
                        } else if (T == T_IQ4_NL) {
                            lo = vn_iq4_line(line, kv128, 0);
                            hi = vn_iq4_line(line, kv128, 1);
                        } else {
                            lo = _mm512_and_si512(line, low4);
                            hi = _mm512_and_si512(_mm512_srli_epi16(line, 4), low4);
                        }
                        for (int r = 0; r < R; r++) {
                            const int8_t *xr = xb + r * t->ld_qs;
                            ia[r][p] = _mm512_dpbusd_epi32(ia[r][p], lo, vn_bcast32(xr + 4 * l));
                            ia[r][p] =
                                _mm512_dpbusd_epi32(ia[r][p], hi, vn_bcast32(xr + 16 + 4 * l));
                        }
                    }
                }
            }

            for (int p = 0; p < P; p++) {
                const __m512 dw = vn_load_ph(terms[p]);
                const __m512 mw = with_m ? vn_load_ph(terms[p] + 32) : _mm512_setzero_ps();
                for (int r = 0; r < R; r++) {
                    const __m512 scale = _mm512_mul_ps(dw, _mm512_set1_ps(t->xd[r * t->ld_d + b]));
                    acc[r][p] = vn_fmadd_ps(vn_cvt_i32_ps(ia[r][p]), scale, acc[r][p]);
                    if (with_m)
                        acc[r][p] =
                            vn_fmadd_ps(mw, _mm512_set1_ps(t->xs[r * t->ld_d + b]), acc[r][p]);
                }
            }
        }

        for (int r = 0; r < R; r++)
            for (int p = 0; p < P; p++)
                vn_add_to_f64(sum[r][p], acc[r][p]);
    }

    for (int r = 0; r < R; r++)
        for (int p = 0; p < P; p++)
            vn_mask_store_f64_as_ps(t->c + r * t->ldc + p * AMXQ_PANEL_N, t->mask[p], sum[r][p]);
}

#define Q4_0_BODY(t, R, P)   gemm32_tile(t, T_Q4_0, R, P)
#define Q4_1_BODY(t, R, P)   gemm32_tile(t, T_Q4_1, R, P)
#define Q8_0_BODY(t, R, P)   gemm32_tile(t, T_Q8_0, R, P)
#define Q5_0_BODY(t, R, P)   gemm32_tile(t, T_Q5_0, R, P)
#define Q5_1_BODY(t, R, P)   gemm32_tile(t, T_Q5_1, R, P)
#define IQ4_NL_BODY(t, R, P) gemm32_tile(t, T_IQ4_NL, R, P)
VN_INSTANTIATE(uk_q4_0, Q4_0_BODY)
VN_INSTANTIATE(uk_q4_1, Q4_1_BODY)
VN_INSTANTIATE(uk_q8_0, Q8_0_BODY)
VN_INSTANTIATE(uk_q5_0, Q5_0_BODY)
VN_INSTANTIATE(uk_q5_1, Q5_1_BODY)
VN_INSTANTIATE(uk_iq4_nl, IQ4_NL_BODY)

AMXQ_DECL_GEMM_FN(AMXQ_VNNI(amxq_gemm_q4_0))
{
    vn_gemm_drive(lo, packed, qx, m0, m1, p0, p1, c, ldc, uk_q4_0_table);
}

AMXQ_DECL_GEMM_FN(AMXQ_VNNI(amxq_gemm_q4_1))
{
    vn_gemm_drive(lo, packed, qx, m0, m1, p0, p1, c, ldc, uk_q4_1_table);
}

AMXQ_DECL_GEMM_FN(AMXQ_VNNI(amxq_gemm_q8_0))
{
    vn_gemm_drive(lo, packed, qx, m0, m1, p0, p1, c, ldc, uk_q8_0_table);
}

AMXQ_DECL_GEMM_FN(AMXQ_VNNI(amxq_gemm_q5_0))
{
    vn_gemm_drive(lo, packed, qx, m0, m1, p0, p1, c, ldc, uk_q5_0_table);
}

AMXQ_DECL_GEMM_FN(AMXQ_VNNI(amxq_gemm_q5_1))
{
    vn_gemm_drive(lo, packed, qx, m0, m1, p0, p1, c, ldc, uk_q5_1_table);
}

AMXQ_DECL_GEMM_FN(AMXQ_VNNI(amxq_gemm_iq4_nl))
{
    vn_gemm_drive(lo, packed, qx, m0, m1, p0, p1, c, ldc, uk_iq4_nl_table);
}
