/*
 * The one include for x86 vector intrinsics in kernel sources. Kernel directories build their
 * sources twice: natively (with -mavx512* / -mamx-* flags, AMXQ_SIMD_EMU undefined) and, for
 * machines without those ISAs, with AMXQ_SIMD_EMU defined and no AVX-512 flags, where SIMDe
 * supplies portable implementations of the same _mm512_* intrinsics (SIMDE_ENABLE_NATIVE_ALIASES
 * is set by the build). The kernel code is identical in both builds; only this header differs.
 */
#ifndef AMXQ_SIMD_H
#define AMXQ_SIMD_H

#if defined(AMXQ_SIMD_EMU)
#ifndef SIMDE_ENABLE_NATIVE_ALIASES
#define SIMDE_ENABLE_NATIVE_ALIASES
#endif
#include <simde/x86/avx512.h>
#else
#include <immintrin.h>
#endif

#endif /* AMXQ_SIMD_H */
