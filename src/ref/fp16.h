/*
 * IEEE half <-> single conversions, exact and independent of the compiler's _Float16 support.
 * fp32 -> fp16 rounds to nearest, ties to even, as F16C's vcvtps2ph with imm 0 (ggml's x86
 * GGML_FP32_TO_FP16) does, including overflow to Inf, subnormals and NaN (quiet, payload kept
 * in its top bits).
 */
#ifndef AMXQ_FP16_H
#define AMXQ_FP16_H

#include <stdint.h>
#include <string.h>

static inline float amxq_fp16_to_fp32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t man = h & 0x3ffu;
    uint32_t bits;
    if (exp == 0x1f) {
        /* Inf, or NaN made quiet with its payload kept, as vcvtph2ps does */
        bits = sign | 0x7f800000u | (man << 13) | (man ? 0x400000u : 0);
    } else if (exp != 0) {
        bits = sign | ((exp + 112) << 23) | (man << 13); /* normal: rebias 15 -> 127 */
    } else if (man == 0) {
        bits = sign; /* signed zero */
    } else {
        /* subnormal half: normalise into a single-precision normal */
        int e = -1;
        do {
            e++;
            man <<= 1;
        } while ((man & 0x400u) == 0);
        bits = sign | ((uint32_t)(112 - e) << 23) | ((man & 0x3ffu) << 13);
    }
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

static inline uint16_t amxq_fp32_to_fp16(float f)
{
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    uint32_t absx = x & 0x7fffffffu;
    if (absx > 0x7f800000u) /* NaN: keep it quiet and keep the top payload bits */
        return (uint16_t)(sign | 0x7e00u | ((absx >> 13) & 0x3ffu));
    if (absx >= 0x477ff000u) /* rounds to >= 65520: Inf (also Inf itself) */
        return (uint16_t)(sign | 0x7c00u);
    if (absx < 0x38800000u) {   /* below the smallest normal half: subnormal or zero */
        if (absx < 0x33000000u) /* below half the smallest subnormal: rounds to zero */
            return sign;
        uint32_t e = absx >> 23;
        uint32_t man = (absx & 0x7fffffu) | 0x800000u;
        /* value = man * 2^(e - 150); in units of the smallest subnormal half (2^-24) that is
         * man >> (126 - e), rounded to nearest even */
        uint32_t shift = 126 - e;
        uint32_t q = man >> shift;
        uint32_t rem = man & ((1u << shift) - 1);
        uint32_t halfway = 1u << (shift - 1);
        if (rem > halfway || (rem == halfway && (q & 1)))
            q++;
        return (uint16_t)(sign | q);
    }
    /* normal: rebias and round the 13 dropped bits to nearest even */
    uint32_t r = absx - 0x38000000u; /* exponent 127 -> 15 */
    uint32_t q = r >> 13;
    uint32_t rem = r & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (q & 1)))
        q++; /* may carry into the exponent, which is the right answer */
    return (uint16_t)(sign | q);
}

#endif /* AMXQ_FP16_H */
