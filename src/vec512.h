/*
 * AVX-512 helpers shared by the VNNI (src/vnni) and AMX (src/tile) kernels: the few operations
 * the kernels need that SIMDe 0.7.4 lacks (conversions, masked
 * stores, horizontal reductions), under amxq names. The native build maps each one to its
 * instruction; the emulated build (AMXQ_SIMD_EMU) spells out the instruction's exact semantics in
 * scalar C over the 64 bytes, so both builds give bit-identical results. Everything else the
 * kernels use is a plain _mm512_* intrinsic, native or SIMDe.
 */
#ifndef AMXQ_VEC512_H
#define AMXQ_VEC512_H

#include <stdint.h>
#include <string.h>

#include "simd.h"

#if defined(AMXQ_SIMD_EMU)
#include <math.h>

#include "ref/fp16.h"
#endif

/* Kernel bodies are forced inline so that their row and panel loops unroll into registers. The
 * emulated build leaves that to the compiler: every SIMDe call is itself a function body, and
 * forcing them all inline multiplies its compile time for no benefit to a test build. */
#if defined(__GNUC__) && !defined(AMXQ_SIMD_EMU)
#define VN_INLINE static inline __attribute__((always_inline))
#else
#define VN_INLINE static inline
#endif

/* 16 halves (any alignment) to 16 floats: vcvtph2ps. */
VN_INLINE __m512 vn_load_ph(const void *p)
{
#if defined(AMXQ_SIMD_EMU)
    uint16_t h[16];
    float f[16];
    memcpy(h, p, sizeof h);
    for (int i = 0; i < 16; i++)
        f[i] = amxq_fp16_to_fp32(h[i]);
    return _mm512_loadu_ps(f);
#else
    return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p));
#endif
}

/* int32 to float: vcvtdq2ps, rounding to nearest-even (exact below 2^24; Q4_K's super-block
 * sums can exceed it, and must round as the reference's (float) cast does). */
VN_INLINE __m512 vn_cvt_i32_ps(__m512i v)
{
#if defined(AMXQ_SIMD_EMU)
    int32_t a[16];
    float f[16];
    memcpy(a, &v, sizeof a);
    for (int i = 0; i < 16; i++)
        f[i] = (float)a[i];
    return _mm512_loadu_ps(f);
#else
    return _mm512_cvtepi32_ps(v);
#endif
}

/* a * b + c rounded once: vfmadd. The emulated build spells it out with fmaf() per lane, so that
 * whether SIMDe fuses (it does only when its 256-bit FMA path is compiled in) cannot change a
 * bit: the numeric contract (docs/design.md §1) says which operations are fused. */
VN_INLINE __m512 vn_fmadd_ps(__m512 a, __m512 b, __m512 c)
{
#if defined(AMXQ_SIMD_EMU)
    float fa[16], fb[16], fc[16];
    memcpy(fa, &a, sizeof fa);
    memcpy(fb, &b, sizeof fb);
    memcpy(fc, &c, sizeof fc);
    for (int i = 0; i < 16; i++)
        fc[i] = fmaf(fa[i], fb[i], fc[i]);
    return _mm512_loadu_ps(fc);
#else
    return _mm512_fmadd_ps(a, b, c);
#endif
}

/* c - a * b rounded once: vfnmadd (that is fma(-a, b, c); negation is exact). */
VN_INLINE __m512 vn_fnmadd_ps(__m512 a, __m512 b, __m512 c)
{
#if defined(AMXQ_SIMD_EMU)
    float fa[16], fb[16], fc[16];
    memcpy(fa, &a, sizeof fa);
    memcpy(fb, &b, sizeof fb);
    memcpy(fc, &c, sizeof fc);
    for (int i = 0; i < 16; i++)
        fc[i] = fmaf(-fa[i], fb[i], fc[i]);
    return _mm512_loadu_ps(fc);
#else
    return _mm512_fnmadd_ps(a, b, c);
#endif
}

/* float to int32 in the current rounding mode (nearest-even by default): vcvtps2dq, with its
 * "integer indefinite" INT32_MIN for NaN and out-of-range values. */
VN_INLINE __m512i vn_cvt_ps_i32(__m512 v)
{
#if defined(AMXQ_SIMD_EMU)
    float f[16];
    int32_t a[16];
    memcpy(f, &v, sizeof f);
    for (int i = 0; i < 16; i++) {
        /* round to an integer first with the magic add, which the FPU rounds nearest-even */
        float r = f[i];
        uint32_t u;
        memcpy(&u, &r, sizeof u);
        if ((u & 0x7fffffffu) < 0x4b000000u) { /* |r| < 2^23: may have a fraction */
            const float big = (u >> 31) ? -8388608.0f : 8388608.0f;
            volatile float t = r + big; /* volatile: no reassociation across the two steps */
            r = t - big;
        }
        a[i] = (r >= -2147483648.0f && r < 2147483648.0f) ? (int32_t)r : INT32_MIN;
    }
    __m512i out;
    memcpy(&out, a, sizeof a);
    return out;
#else
    return _mm512_cvtps_epi32(v);
#endif
}

/* 16 uint8 (any alignment) zero-extended to int32: vpmovzxbd. */
VN_INLINE __m512i vn_load_u8_i32(const void *p)
{
#if defined(AMXQ_SIMD_EMU)
    uint8_t b[16];
    int32_t a[16];
    memcpy(b, p, sizeof b);
    for (int i = 0; i < 16; i++)
        a[i] = b[i];
    __m512i out;
    memcpy(&out, a, sizeof a);
    return out;
#else
    return _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)p));
#endif
}

/* Store the low byte of each int32 lane (vpmovdb: truncation), 16 bytes to p (any alignment). */
VN_INLINE void vn_store_i32_as_i8(void *p, __m512i v)
{
#if defined(AMXQ_SIMD_EMU)
    int32_t a[16];
    uint8_t b[16];
    memcpy(a, &v, sizeof a);
    for (int i = 0; i < 16; i++)
        b[i] = (uint8_t)((uint32_t)a[i] & 0xffu);
    memcpy(p, b, sizeof b);
#else
    _mm_storeu_si128((__m128i *)p, _mm512_cvtepi32_epi8(v));
#endif
}

/* Store each int32 lane saturated to int8 (vpmovsdb), 16 bytes to p (any alignment). */
VN_INLINE void vn_store_i32_sat_i8(void *p, __m512i v)
{
#if defined(AMXQ_SIMD_EMU)
    int32_t a[16];
    int8_t b[16];
    memcpy(a, &v, sizeof a);
    for (int i = 0; i < 16; i++)
        b[i] = (int8_t)(a[i] < -128 ? -128 : a[i] > 127 ? 127 : a[i]);
    memcpy(p, b, sizeof b);
#else
    _mm_storeu_si128((__m128i *)p, _mm512_cvtsepi32_epi8(v));
#endif
}

/* Store the low 16 bits of each int32 lane (vpmovdw), 32 bytes to p (any alignment). */
VN_INLINE void vn_store_i32_as_i16(void *p, __m512i v)
{
#if defined(AMXQ_SIMD_EMU)
    int32_t a[16];
    uint16_t h[16];
    memcpy(a, &v, sizeof a);
    for (int i = 0; i < 16; i++)
        h[i] = (uint16_t)((uint32_t)a[i] & 0xffffu);
    memcpy(p, h, sizeof h);
#else
    _mm256_storeu_si256((__m256i *)p, _mm512_cvtepi32_epi16(v));
#endif
}

/* dst[0..15] += v, in double (the outer level of the kernels' two-level accumulation). */
VN_INLINE void vn_add_to_f64(double *dst, __m512 v)
{
#if defined(AMXQ_SIMD_EMU)
    float f[16];
    memcpy(f, &v, sizeof f);
    for (int i = 0; i < 16; i++)
        dst[i] += (double)f[i];
#else
    const __m512d lo = _mm512_cvtps_pd(_mm512_castps512_ps256(v));
    const __m512d hi =
        _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
    _mm512_storeu_pd(dst, _mm512_add_pd(_mm512_loadu_pd(dst), lo));
    _mm512_storeu_pd(dst + 8, _mm512_add_pd(_mm512_loadu_pd(dst + 8), hi));
#endif
}

/* Round src[0..15] to float and store the lanes selected by mask; nothing else is touched. */
VN_INLINE void vn_mask_store_f64_as_ps(float *p, __mmask16 mask, const double *src)
{
#if defined(AMXQ_SIMD_EMU)
    for (int i = 0; i < 16; i++)
        if ((unsigned)mask >> i & 1u)
            p[i] = (float)src[i];
#else
    const __m256 lo = _mm512_cvtpd_ps(_mm512_loadu_pd(src));
    const __m256 hi = _mm512_cvtpd_ps(_mm512_loadu_pd(src + 8));
    const __m512 v = _mm512_castpd_ps(
        _mm512_insertf64x4(_mm512_castps_pd(_mm512_castps256_ps512(lo)), _mm256_castps_pd(hi), 1));
    _mm512_mask_storeu_ps(p, mask, v);
#endif
}

/* Largest lane of v, for inputs without NaN (the order of the comparisons is then irrelevant). */
VN_INLINE float vn_reduce_max_ps(__m512 v)
{
#if defined(AMXQ_SIMD_EMU)
    float f[16];
    memcpy(f, &v, sizeof f);
    float m = f[0];
    for (int i = 1; i < 16; i++)
        m = f[i] > m ? f[i] : m;
    return m;
#else
    return _mm512_reduce_max_ps(v);
#endif
}

/* vpmaddwd. (SIMDe 0.7.4's native alias for it takes the wrong number of arguments.) */
VN_INLINE __m512i vn_madd_i16(__m512i a, __m512i b)
{
#if defined(AMXQ_SIMD_EMU)
    return simde_mm512_madd_epi16(a, b);
#else
    return _mm512_madd_epi16(a, b);
#endif
}

/* |v| by clearing the sign bits, as ggml's andnot with -0.0f (so |-0| is +0, NaN keeps its
 * payload). SIMDe's _mm512_abs_ps keeps -0, so it is not used. */
VN_INLINE __m512 vn_abs_ps(__m512 v)
{
    return _mm512_castsi512_ps(
        _mm512_and_si512(_mm512_castps_si512(v), _mm512_set1_epi32(0x7fffffff)));
}

/* Loads and broadcasts that keep strict aliasing out of the kernels. */
VN_INLINE __m512i vn_bcast32(const void *p)
{
    int32_t v;
    memcpy(&v, p, sizeof v);
    return _mm512_set1_epi32(v);
}

VN_INLINE __m512i vn_load(const void *p)
{
    return _mm512_loadu_si512(p);
}

#endif /* AMXQ_VEC512_H */
