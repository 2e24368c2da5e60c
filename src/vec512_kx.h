/*
 * AVX-512 pieces shared by the VNNI (src/vnni) and AMX (src/tile) kernels of the weight types
 * added in issue 14: sign-extending scale loads and the unpacking of packed lines into the
 * unsigned 8-bit weights that vpdpbusd / tdpbsud consume. Native and SIMDe builds give the same
 * bits (see vec512.h).
 */
#ifndef AMXQ_VEC512_KX_H
#define AMXQ_VEC512_KX_H

#include "vec512.h"

/* 16 int8 (any alignment) sign-extended to int32: vpmovsxbd (SIMDe 0.7.4 lacks it). */
VN_INLINE __m512i vn_load_i8_i32(const void *p)
{
#if defined(AMXQ_SIMD_EMU)
    int8_t b[16];
    int32_t a[16];
    memcpy(b, p, sizeof b);
    for (int i = 0; i < 16; i++)
        a[i] = b[i];
    __m512i out;
    memcpy(&out, a, sizeof a);
    return out;
#else
    return _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)p));
#endif
}

/* Two rows of 16 int8 scales as int16 pairs per int32 lane: (lo[i], hi[i]) -- the weight operand
 * of a vpdpwssd against the int32 at &bsums[2j], i.e. the pair (bsums[2j], bsums[2j+1]). */
VN_INLINE __m512i vn_pair_i8_i16(const void *lo, const void *hi)
{
    const __m512i a = _mm512_and_si512(vn_load_i8_i32(lo), _mm512_set1_epi32(0xffff));
    return _mm512_or_si512(a, _mm512_slli_epi32(vn_load_i8_i32(hi), 16));
}

/*
 * Q6_K: one packed 6-bit line. `ql` is the packed ql line holding quarter c (c & 1 selects which
 * of the two ql lines, c >> 1 which nibble), `qh` the packed qh line of the same four l; returns
 * the 6-bit values 0..63 (src/internal.h, docs/design.md §2).
 */
VN_INLINE __m512i vn_q6_k_line(__m512i ql, __m512i qh, const int c)
{
    const __m512i low4 = _mm512_set1_epi8(0x0f), bits45 = _mm512_set1_epi8(0x30);
    const __m512i lo = c >> 1 ? _mm512_srli_epi16(ql, 4) : ql;
    /* qh bits 2c..2c+1 to bits 4..5 (a 16-bit shift: the mask drops what crosses a byte) */
    const __m512i h = c == 0   ? _mm512_slli_epi16(qh, 4)
                      : c == 1 ? _mm512_slli_epi16(qh, 2)
                      : c == 2 ? qh
                               : _mm512_srli_epi16(qh, 2);
    return _mm512_or_si512(_mm512_and_si512(lo, low4), _mm512_and_si512(h, bits45));
}

/*
 * Q5_K: one packed 5-bit line of sub-block j (0..7). `qs` is the packed line of run j / 2, `qh`
 * the packed qh line of the same four l; returns the nibble (low for even j) with bit j of qh as
 * bit 4, 0..31 (src/internal.h, docs/design.md §2).
 */
VN_INLINE __m512i vn_q5_k_line(__m512i qs, __m512i qh, const int j)
{
    const __m512i low4 = _mm512_set1_epi8(0x0f), bit4 = _mm512_set1_epi8(0x10);
    const __m512i lo = j & 1 ? _mm512_srli_epi16(qs, 4) : qs;
    /* bit j to bit 4; a 16-bit shift, the mask drops what crosses a byte. Literal counts: SIMDe
     * requires constant shift counts, and the emulated build does not inline j into them. */
    const __m512i h = j == 0   ? _mm512_slli_epi16(qh, 4)
                      : j == 1 ? _mm512_slli_epi16(qh, 3)
                      : j == 2 ? _mm512_slli_epi16(qh, 2)
                      : j == 3 ? _mm512_slli_epi16(qh, 1)
                      : j == 4 ? qh
                      : j == 5 ? _mm512_srli_epi16(qh, 1)
                      : j == 6 ? _mm512_srli_epi16(qh, 2)
                               : _mm512_srli_epi16(qh, 3);
    return _mm512_or_si512(_mm512_and_si512(lo, low4), _mm512_and_si512(h, bit4));
}

/* IQ4_XS / IQ4_NL: the nibbles of a packed line through a 16-entry byte table (vpshufb, the same
 * table in each 128-bit lane): `tbl` holds ggml's kvalues_iq4nl, or those + 128 for vpdpbusd's
 * unsigned operand. high selects the high nibbles. */
VN_INLINE __m512i vn_iq4_line(__m512i line, __m512i tbl, const int high)
{
    const __m512i low4 = _mm512_set1_epi8(0x0f);
    const __m512i nib =
        high ? _mm512_and_si512(_mm512_srli_epi16(line, 4), low4) : _mm512_and_si512(line, low4);
    return _mm512_shuffle_epi8(tbl, nib);
}

/* ggml's kvalues_iq4nl in every 128-bit lane, plus `bias` (0, or 128 to make them unsigned): one
 * 16-byte load, a lane broadcast and a byte add (the AMX kernels make it per unpacked step, so it
 * must not be a byte loop). */
VN_INLINE __m512i vn_iq4_table(const int bias)
{
    static const int8_t kv[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                  1,    13,   25,  38,  53,  69,  89,  113};
    const __m512i t = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)(const void *)kv));
    return _mm512_add_epi8(t, _mm512_set1_epi8((char)bias));
}

#endif /* AMXQ_VEC512_KX_H */
