/*
 * VNNI products for the super-block types against Q8_K activations: Q4_K, Q5_K, Q6_K and IQ4_XS.
 * One driver (sb_tile()) runs the super-blocks of every type; what differs is a type's sub-block
 * sums (its unpack and activation offsets, the *_subblock() functions) and its correction term.
 * Per super-block and per (row, column), with the exact integers of the numeric contract
 * (docs/design.md §1, include/amxq.h):
 *
 *   isc  = sum_j sc_j * (sum_k q_w * q_x over sub-block j)           vpdpbusd, then vpmulld by sc_j
 *   corr = sum_j c_j * (pair of bsums of sub-block j)                exact int32 (vpdpwssd)
 *   Q4_K, Q5_K:    v = fma(-float(corr), dmin_w * d_x, float(isc) * (d_w * d_x))
 *   Q6_K, IQ4_XS:  v = float(isc - (corr << s)) * (d_w * d_x)
 *   then  sum += double(v)
 *
 * exactly the integers of the reference, scaled in float once per super-block with the same
 * roundings in the same order (float(isc) rounds to nearest-even when |isc| >= 2^24).
 *
 * Q4_K: four runs of 8 packed lines; run r's low nibbles are sub-block 2r, its high nibbles 2r+1,
 * vpdpbusd's unsigned operand (its offset is the separate min term: c_j = m_j against
 * bsums[2j] + bsums[2j+1], the lane holding (m_j, m_j) and the broadcast int32 at &bsums[2j]).
 * Q5_K: qh's 8 lines then Q4_K's runs (src/internal.h); sub-block j's line l is the nibble of run
 * j / 2's line l with bit j of qh line l as bit 4 (vn_q5_k_line, 0..31); Q4_K's min term.
 * Q6_K: 16 sub-blocks of 16 with signed scales; sub-block j = 8h + 2c + g is the four lines
 * l = 4g..4g+3 of ql line 16h + 8(c & 1) + l and qh line 32 + 8h + l, unpacked to 0..63
 * (vn_q6_k_line); corr pairs (sc_2i, sc_2i+1) with (bsums[2i], bsums[2i+1]), s = 5 (the 32 offset).
 * IQ4_XS: 8 sub-blocks of 32 with scales ls_i - 32 (stored so in the terms); sub-block i is lines
 * 4i..4i+3, low nibbles k 0..15, high 16..31, which vpshufb turns into kvalues_iq4nl + 128
 * (1..241, unsigned); corr pairs (sc_i, sc_i) with bsums[2i] + bsums[2i+1], s = 7 (the 128).
 *
 * Registers with R = 4, P = 2: 8 isc, 8 per-sub-block int32 sums (the correction reuses them),
 * weights and scales; the f32 result of each super-block is added into f64 sums on the stack. A
 * sub-block reloads the lines it shares with another (they hit L1), so only one sub-block's sums
 * are live at a time.
 */
#include "vec512_kx.h"
#include "vnni/gemm.h"

enum sb_type { SB_Q4_K, SB_Q5_K, SB_Q6_K, SB_IQ4_XS };

VN_INLINE void sb_zero(const int R, const int P, __m512i v[VN_RMAX][VN_PMAX])
{
    for (int r = 0; r < R; r++)
        for (int p = 0; p < P; p++)
            v[r][p] = _mm512_setzero_si512();
}

/* isc += sc_j * ia, with sc_j the panel's scales at terms + off (unsigned or signed bytes). The
 * empty asm makes the sum exist here: without it gcc 12 defers the sub-blocks' multiplies past
 * the next sub-blocks and spills their sums and scales to the stack (half the stack stores of this
 * file; Q6_K's 4x2 loop had 26.2 vector ALU instructions per row, vector and 32 k, now 23.0).
 * gcc only: it is for gcc's scheduling, and clang, which the sanitizer builds use, already takes
 * about two minutes on this file under ASan. */
VN_INLINE void sb_add_scaled(const int R, const int P, __m512i ia[VN_RMAX][VN_PMAX],
                             const uint8_t *const *terms, const int off, const int is_signed,
                             __m512i isc[VN_RMAX][VN_PMAX])
{
    for (int p = 0; p < P; p++) {
        const __m512i sc =
            is_signed ? vn_load_i8_i32(terms[p] + off) : vn_load_u8_i32(terms[p] + off);
        for (int r = 0; r < R; r++) {
            isc[r][p] = _mm512_add_epi32(isc[r][p], _mm512_mullo_epi32(ia[r][p], sc));
#if defined(__GNUC__) && !defined(__clang__) && !defined(AMXQ_SIMD_EMU)
            __asm__("" : "+v"(isc[r][p]));
#endif
        }
    }
}

/* One sub-block j (32 k) of every (row, panel): its int32 sums, times sc_j, into isc. Run j/2's
 * lines hold it in their low (high == 0) or high nibbles. */
VN_INLINE void q4k_subblock(const struct vn_tile *t, const int R, const int P,
                            const uint8_t *const *w, const uint8_t *const *terms, const int8_t *xb,
                            const int j, const int high, __m512i isc[VN_RMAX][VN_PMAX])
{
    const __m512i low4 = _mm512_set1_epi8(0x0f);
    __m512i ia[VN_RMAX][VN_PMAX];
    sb_zero(R, P, ia);
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
    sb_add_scaled(R, P, ia, terms, 64 + 16 * j, 0, isc);
}

VN_INLINE void q5k_subblock(const struct vn_tile *t, const int R, const int P,
                            const uint8_t *const *w, const uint8_t *const *terms, const int8_t *xb,
                            const int j, __m512i isc[VN_RMAX][VN_PMAX])
{
    __m512i ia[VN_RMAX][VN_PMAX];
    sb_zero(R, P, ia);
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
    sb_add_scaled(R, P, ia, terms, 64 + 16 * j, 0, isc);
}

VN_INLINE void q6k_subblock(const struct vn_tile *t, const int R, const int P,
                            const uint8_t *const *w, const uint8_t *const *terms, const int8_t *xb,
                            const int h, const int c, const int g, __m512i isc[VN_RMAX][VN_PMAX])
{
    const int j = 8 * h + 2 * c + g;
    /* The 48 lines of the next super-block, 3 in each of the 16 calls (o = 8h + 4g + c in call
     * order): the reads here jump about the chunk, which the hardware prefetchers do not follow. */
    const int o = 8 * h + 4 * g + c;
    for (int p = 0; p < P; p++)
        for (int i = 0; i < 3; i++)
            _mm_prefetch((const char *)(w[p] + AMXQ_CHUNK_Q6_K + 64 * (3 * o + i)), _MM_HINT_T0);
    __m512i ia[VN_RMAX][VN_PMAX];
    sb_zero(R, P, ia);
#if defined(__GNUC__) && !defined(AMXQ_SIMD_EMU)
#pragma GCC unroll 4
#endif
    for (int L = 4 * g; L < 4 * g + 4; L++) {
        for (int p = 0; p < P; p++) {
            const uint8_t *ql = w[p] + 64 * (16 * h + 8 * (c & 1) + L);
            const uint8_t *qh = w[p] + 64 * (32 + 8 * h + L);
            const __m512i q = vn_q6_k_line(vn_load(ql), vn_load(qh), c);
            for (int r = 0; r < R; r++)
                ia[r][p] = _mm512_dpbusd_epi32(
                    ia[r][p], q, vn_bcast32(xb + r * t->ld_qs + 128 * h + 32 * c + 4 * L));
        }
    }
    sb_add_scaled(R, P, ia, terms, 32 + 16 * j, 1, isc);
}

VN_INLINE void iq4xs_subblock(const struct vn_tile *t, const int R, const int P,
                              const uint8_t *const *w, const uint8_t *const *terms,
                              const int8_t *xb, const int i, const __m512i tbl,
                              __m512i isc[VN_RMAX][VN_PMAX])
{
    __m512i ia[VN_RMAX][VN_PMAX];
    sb_zero(R, P, ia);
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
    sb_add_scaled(R, P, ia, terms, 32 + 16 * i, 1, isc);
}

/* All sub-blocks of super-block xb into isc. Spelled out so that the sub-block indices are
 * constants in every call: the unpacking then has no branches and the sums stay in registers (a
 * loop here is not unrolled by gcc). */
VN_INLINE void sb_subblocks(const struct vn_tile *t, const int R, const int P,
                            const uint8_t *const *w, const uint8_t *const *terms, const int8_t *xb,
                            const enum sb_type type, const __m512i tbl,
                            __m512i isc[VN_RMAX][VN_PMAX])
{
    switch (type) {
    case SB_Q4_K: /* a loop over the runs measured faster here than the calls spelled out */
        for (int run = 0; run < 4; run++) {
            q4k_subblock(t, R, P, w, terms, xb, 2 * run, 0, isc);
            q4k_subblock(t, R, P, w, terms, xb, 2 * run + 1, 1, isc);
        }
        break;
    case SB_Q5_K:
#define SUB(j) q5k_subblock(t, R, P, w, terms, xb, j, isc)
        SUB(0), SUB(1), SUB(2), SUB(3), SUB(4), SUB(5), SUB(6), SUB(7);
#undef SUB
        break;
    case SB_Q6_K:
#define SUB(h, c, g) q6k_subblock(t, R, P, w, terms, xb, h, c, g, isc)
        SUB(0, 0, 0), SUB(0, 1, 0), SUB(0, 2, 0), SUB(0, 3, 0);
        SUB(0, 0, 1), SUB(0, 1, 1), SUB(0, 2, 1), SUB(0, 3, 1);
        SUB(1, 0, 0), SUB(1, 1, 0), SUB(1, 2, 0), SUB(1, 3, 0);
        SUB(1, 0, 1), SUB(1, 1, 1), SUB(1, 2, 1), SUB(1, 3, 1);
#undef SUB
        break;
    case SB_IQ4_XS:
#define SUB(i) iq4xs_subblock(t, R, P, w, terms, xb, i, tbl, isc)
        SUB(0), SUB(1), SUB(2), SUB(3), SUB(4), SUB(5), SUB(6), SUB(7);
#undef SUB
        break;
    }
}

/* The correction's int16 pair i of a panel: (c, c) or Q6_K's (sc_2i, sc_2i+1), see the top. */
VN_INLINE __m512i sb_corr_pair(const uint8_t *terms, const enum sb_type type, const int i)
{
    switch (type) {
    case SB_Q4_K:
    case SB_Q5_K: {
        const __m512i m = vn_load_u8_i32(terms + 192 + 16 * i);
        return _mm512_or_si512(m, _mm512_slli_epi32(m, 16)); /* (m_i, m_i) */
    }
    case SB_Q6_K:
        return vn_pair_i8_i16(terms + 32 + 16 * (2 * i), terms + 32 + 16 * (2 * i + 1));
    default: /* SB_IQ4_XS */
        return vn_pair_i8_i16(terms + 32 + 16 * i, terms + 32 + 16 * i);
    }
}

VN_INLINE void sb_tile(const struct vn_tile *t, const int R, const int P, const enum sb_type type)
{
    static const size_t chunk[] = {AMXQ_CHUNK_Q4_K, AMXQ_CHUNK_Q5_K, AMXQ_CHUNK_Q6_K,
                                   AMXQ_CHUNK_IQ4_XS};
    static const size_t terms_bytes[] = {AMXQ_TERMS_Q4_K, AMXQ_TERMS_Q5_K, AMXQ_TERMS_Q6_K,
                                         AMXQ_TERMS_IQ4_XS};
    const __m512i tbl = type == SB_IQ4_XS ? vn_iq4_table(128) : _mm512_setzero_si512();
    double sum[VN_RMAX][VN_PMAX][16];
    for (int r = 0; r < R; r++)
        for (int p = 0; p < P; p++)
            memset(sum[r][p], 0, sizeof sum[r][p]);

    for (int64_t b = 0; b < t->k_blocks; b++) {
        const uint8_t *w[VN_PMAX], *terms[VN_PMAX];
        for (int p = 0; p < P; p++) {
            w[p] = t->panel + (size_t)p * t->panel_bytes + (size_t)b * chunk[type];
            terms[p] = t->panel + (size_t)p * t->panel_bytes + t->terms_offset +
                       (size_t)b * terms_bytes[type];
            _mm_prefetch((const char *)(terms[p] + 2 * terms_bytes[type]), _MM_HINT_T0);
            if (type == SB_Q6_K) /* its terms are 2 lines */
                _mm_prefetch((const char *)(terms[p] + 2 * terms_bytes[type] + 64), _MM_HINT_T0);
        }
        const int8_t *xb = t->xq + b * AMXQ_QK_K;

        __m512i isc[VN_RMAX][VN_PMAX];
        sb_zero(R, P, isc);
        sb_subblocks(t, R, P, w, terms, xb, type, tbl, isc);

        __m512i corr[VN_RMAX][VN_PMAX];
        sb_zero(R, P, corr);
        for (int i = 0; i < 8; i++) {
            for (int p = 0; p < P; p++) {
                const __m512i pair = sb_corr_pair(terms[p], type, i);
                for (int r = 0; r < R; r++)
                    corr[r][p] = _mm512_dpwssd_epi32(
                        corr[r][p], pair, vn_bcast32(t->xsum + r * t->ld_sums + 16 * b + 2 * i));
            }
        }

        for (int p = 0; p < P; p++) {
            const __m512 d = vn_load_ph(terms[p]);
            for (int r = 0; r < R; r++) {
                const __m512 dx = _mm512_set1_ps(t->xd[r * t->ld_d + b]);
                __m512 v;
                if (type == SB_Q4_K || type == SB_Q5_K) {
                    const __m512 dmin = vn_load_ph(terms[p] + 32);
                    v = _mm512_mul_ps(vn_cvt_i32_ps(isc[r][p]), _mm512_mul_ps(d, dx));
                    v = vn_fnmadd_ps(vn_cvt_i32_ps(corr[r][p]), _mm512_mul_ps(dmin, dx), v);
                } else {
                    const int s = type == SB_Q6_K ? 5 : 7;
                    const __m512i itot =
                        _mm512_sub_epi32(isc[r][p], _mm512_slli_epi32(corr[r][p], s));
                    v = _mm512_mul_ps(vn_cvt_i32_ps(itot), _mm512_mul_ps(d, dx));
                }
                vn_add_to_f64(sum[r][p], v);
            }
        }
    }

    for (int r = 0; r < R; r++)
        for (int p = 0; p < P; p++)
            vn_mask_store_f64_as_ps(t->c + r * t->ldc + p * AMXQ_PANEL_N, t->mask[p], sum[r][p]);
}

#define Q4_K_BODY(t, R, P)   sb_tile(t, R, P, SB_Q4_K)
#define Q5_K_BODY(t, R, P)   sb_tile(t, R, P, SB_Q5_K)
#define Q6_K_BODY(t, R, P)   sb_tile(t, R, P, SB_Q6_K)
#define IQ4_XS_BODY(t, R, P) sb_tile(t, R, P, SB_IQ4_XS)
VN_INSTANTIATE(uk_q4_k, Q4_K_BODY)
VN_INSTANTIATE(uk_q5_k, Q5_K_BODY)
VN_INSTANTIATE(uk_q6_k, Q6_K_BODY)
VN_INSTANTIATE(uk_iq4_xs, IQ4_XS_BODY)

AMXQ_DECL_GEMM_FN(AMXQ_VNNI(amxq_gemm_q4_k))
{
    vn_gemm_drive(lo, packed, qx, m0, m1, p0, p1, c, ldc, uk_q4_k_table);
}

AMXQ_DECL_GEMM_FN(AMXQ_VNNI(amxq_gemm_q5_k))
{
    vn_gemm_drive(lo, packed, qx, m0, m1, p0, p1, c, ldc, uk_q5_k_table);
}

AMXQ_DECL_GEMM_FN(AMXQ_VNNI(amxq_gemm_q6_k))
{
    vn_gemm_drive(lo, packed, qx, m0, m1, p0, p1, c, ldc, uk_q6_k_table);
}

AMXQ_DECL_GEMM_FN(AMXQ_VNNI(amxq_gemm_iq4_xs))
{
    vn_gemm_drive(lo, packed, qx, m0, m1, p0, p1, c, ldc, uk_iq4_xs_table);
}
