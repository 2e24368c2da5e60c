/*
 * Helpers shared by the fuzz targets (tests/fuzz/fuzz_*.c): a reader that carves typed values out
 * of the fuzzer's bytes (running dry yields zeros, so every input is meaningful), a seeded PRNG
 * for bulk data, 64-byte aligned buffers with guard bytes, and FZ_CHECK, which prints and aborts
 * so libFuzzer (and the replay driver under meson test) report a failed property as a crash.
 *
 * Each target defines LLVMFuzzerTestOneInput(); tests/fuzz/replay.c supplies main() when the
 * targets are built without libFuzzer.
 */
#ifndef AMXQ_FUZZ_COMMON_H
#define AMXQ_FUZZ_COMMON_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "amxq.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FZ_CHECK(cond, ...)                                                                        \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: property failed: %s: ", __FILE__, __LINE__, #cond);            \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* ---- Carving values out of the input -------------------------------------------------------- */

typedef struct {
    const uint8_t *p;
    size_t n, pos;
} fz_reader;

static inline fz_reader fz_reader_init(const uint8_t *data, size_t size)
{
    fz_reader r = {data, size, 0};
    return r;
}

static inline uint8_t fz_u8(fz_reader *r)
{
    return r->pos < r->n ? r->p[r->pos++] : 0;
}

static inline uint16_t fz_u16(fz_reader *r)
{
    uint16_t lo = fz_u8(r);
    return (uint16_t)(lo | (uint16_t)fz_u8(r) << 8);
}

static inline uint32_t fz_u32(fz_reader *r)
{
    uint32_t lo = fz_u16(r);
    return lo | (uint32_t)fz_u16(r) << 16;
}

static inline uint64_t fz_u64(fz_reader *r)
{
    uint64_t lo = fz_u32(r);
    return lo | (uint64_t)fz_u32(r) << 32;
}

/* Bytes left to read. */
static inline size_t fz_left(const fz_reader *r)
{
    return r->n - r->pos;
}

/* ---- Bulk data ------------------------------------------------------------------------------ */

/* splitmix64: seeded from the input so a finding replays exactly. */
static inline uint64_t fz_rand(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Uniform in [-1, 1). */
static inline float fz_randf(uint64_t *s)
{
    return (float)((double)(fz_rand(s) >> 11) * (2.0 / 9007199254740992.0) - 1.0);
}

/* The ggml types, in a fixed order for carving. */
#define FZ_NTYPES 10
static const amxq_type fz_types[FZ_NTYPES] = {
    AMXQ_TYPE_Q4_0, AMXQ_TYPE_Q4_1,   AMXQ_TYPE_Q8_0, AMXQ_TYPE_Q4_K, AMXQ_TYPE_Q6_K,
    AMXQ_TYPE_Q5_K, AMXQ_TYPE_IQ4_XS, AMXQ_TYPE_Q5_0, AMXQ_TYPE_Q5_1, AMXQ_TYPE_IQ4_NL};

/* The type a carved byte names: bytes below 232 keep the first four types' mapping (b % 4), so
 * the corpus saved before the later types keeps its meaning; 232..247 name the later types. */
static inline amxq_type fz_type_of(uint8_t b)
{
    return b < 232 ? fz_types[b % 4] : fz_types[4 + (b - 232) % (FZ_NTYPES - 4)];
}

/* The byte fz_type_of() maps to fz_types[i] (for the seed generator). */
static inline uint8_t fz_type_byte(int i)
{
    return (uint8_t)(i < 4 ? i : 232 + (i - 4));
}

/* fp16 bit patterns the arithmetic must survive: infinities, NaNs (quiet, signalling, with
 * payload), zeros, subnormals, the largest finite values. */
static const uint16_t fz_special_halves[] = {0x7C00, 0xFC00, 0x7E00, 0x7C01, 0xFFFF, 0x0000,
                                             0x8000, 0x0001, 0x8001, 0x03FF, 0x83FF, 0x0400,
                                             0x7BFF, 0xFBFF, 0x3C00, 0xBC00};
#define FZ_N_SPECIAL (sizeof fz_special_halves / sizeof fz_special_halves[0])

/* ---- Buffers with guard bytes --------------------------------------------------------------- */

#define FZ_GUARD   64
#define FZ_PATTERN 0xA5

/* `size` usable bytes at p (64-byte aligned), FZ_GUARD bytes of FZ_PATTERN on both sides. */
typedef struct {
    uint8_t *base, *p;
    size_t size;
} fz_buf;

static inline fz_buf fz_buf_new(size_t size)
{
    fz_buf b;
    size_t total = (size + 2 * FZ_GUARD + 63) / 64 * 64;
    b.base = (uint8_t *)aligned_alloc(64, total);
    FZ_CHECK(b.base != NULL, "out of memory (%zu bytes)", total);
    memset(b.base, FZ_PATTERN, total);
    b.p = b.base + FZ_GUARD;
    b.size = size;
    return b;
}

static inline int fz_guard_ok(const fz_buf *b)
{
    for (size_t i = 0; i < FZ_GUARD; i++)
        if (b->base[i] != FZ_PATTERN || b->p[b->size + i] != FZ_PATTERN)
            return 0;
    return 1;
}

static inline void fz_buf_free(fz_buf *b)
{
    free(b->base);
    b->base = b->p = NULL;
}

/* Whether `n` bytes at p all equal `v`. */
static inline int fz_all(const void *p, size_t n, uint8_t v)
{
    const uint8_t *b = (const uint8_t *)p;
    for (size_t i = 0; i < n; i++)
        if (b[i] != v)
            return 0;
    return 1;
}

/* ---- An independent oracle, in double ------------------------------------------------------ */

static inline double fz_half_to_double(uint16_t h)
{
    const int e = (h >> 10) & 31, f = h & 1023;
    double v = e == 0 ? ldexp(f, -24) : e == 31 ? (f ? NAN : INFINITY) : ldexp(1024 + f, e - 25);
    return (h & 0x8000) ? -v : v;
}

static inline uint16_t fz_rd16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

/* One output element from the ggml weight row `w` and the ggml activation blocks `a` (as
 * amxq_quantize_row() writes them, docs/design.md §1-2): the exact value of ggml's per-block
 * formula, and `mag`, the sum of the magnitudes of its float terms. A float kernel's rounding error
 * is a small multiple of eps * mag, whatever cancellation leaves of the value itself. */
static inline void fz_oracle(amxq_type type, const uint8_t *w, const uint8_t *a, int64_t k,
                             double *exact, double *mag)
{
    double v = 0, g = 0;
    if (type == AMXQ_TYPE_IQ4_XS) { /* ggml's dequantize_row_iq4_xs: 8 sub-blocks of 32 */
        static const int kv[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                   1,    13,   25,  38,  53,  69,  89,  113};
        for (int64_t b = 0; b < k / 256; b++, w += 136, a += 292) {
            float dxf;
            memcpy(&dxf, a, 4);
            const double d = fz_half_to_double(fz_rd16(w)), dx = dxf;
            const unsigned sh = fz_rd16(w + 2);
            const int8_t *qx = (const int8_t *)(a + 4);
            for (int i = 0; i < 8; i++) {
                const int ls = ((w[4 + i / 2] >> 4 * (i % 2)) & 15) | ((sh >> 2 * i) & 3) << 4;
                const uint8_t *qs = w + 8 + 16 * i;
                long dot = 0;
                for (int l = 0; l < 16; l++)
                    dot += kv[qs[l] & 15] * qx[32 * i + l] + kv[qs[l] >> 4] * qx[32 * i + 16 + l];
                const double t1 = d * dx * (ls - 32) * (double)dot;
                v += t1;
                g += fabs(t1);
            }
        }
    } else if (type == AMXQ_TYPE_Q6_K) { /* ggml's dequantize_row_q6_K order: halves of 128 */
        for (int64_t b = 0; b < k / 256; b++, w += 210, a += 292) {
            float dxf;
            memcpy(&dxf, a, 4);
            const double d = fz_half_to_double(fz_rd16(w + 208)), dx = dxf;
            const int8_t *qx = (const int8_t *)(a + 4);
            for (int j = 0; j < 16; j++) { /* sub-block j of 16: half j / 8 */
                const int h = j / 8, c = (j % 8) / 2;
                const int sc = (int8_t)w[192 + j];
                long dot = 0;
                for (int i = 0; i < 16; i++) {
                    const int l = 16 * (j % 2) + i;
                    const uint8_t ql = w[64 * h + 32 * (c & 1) + l], qh = w[128 + 32 * h + l];
                    const int q = ((c < 2 ? ql & 15 : ql >> 4) | ((qh >> (2 * c)) & 3) << 4) - 32;
                    dot += q * qx[16 * j + i];
                }
                const double t1 = d * dx * sc * (double)dot;
                v += t1;
                g += fabs(t1);
            }
        }
    } else if (type == AMXQ_TYPE_Q4_K || type == AMXQ_TYPE_Q5_K) {
        /* Q5_K: Q4_K's fields with 32 bytes of qh before the quants, bit j of qh[i] the fifth */
        const int q5 = type == AMXQ_TYPE_Q5_K;
        for (int64_t b = 0; b < k / 256; b++, w += q5 ? 176 : 144, a += 292) {
            float dxf;
            memcpy(&dxf, a, 4);
            const double d = fz_half_to_double(fz_rd16(w)),
                         dmin = fz_half_to_double(fz_rd16(w + 2)), dx = dxf;
            const uint8_t *sc = w + 4, *qs = w + (q5 ? 48 : 16), *qh = w + 16;
            const int8_t *qx = (const int8_t *)(a + 4);
            for (int j = 0; j < 8; j++) {
                int s, mn;
                if (j < 4) {
                    s = sc[j] & 63;
                    mn = sc[j + 4] & 63;
                } else {
                    s = (sc[j + 4] & 15) | ((sc[j - 4] >> 6) << 4);
                    mn = (sc[j + 4] >> 4) | ((sc[j] >> 6) << 4);
                }
                long dot = 0, sum = 0;
                for (int i = 0; i < 32; i++) {
                    int nib = (j & 1) ? qs[32 * (j / 2) + i] >> 4 : qs[32 * (j / 2) + i] & 15;
                    if (q5)
                        nib |= ((qh[i] >> j) & 1) << 4;
                    dot += nib * qx[32 * j + i];
                    sum += qx[32 * j + i];
                }
                const double t1 = d * dx * s * (double)dot, t2 = dmin * dx * mn * (double)sum;
                v += t1 - t2;
                g += fabs(t1) + fabs(t2);
            }
        }
    } else {
        /* Q4_1, Q5_1: a min m after d, Q8_1 activations (d, s, qs) and the m_w * s_x term */
        const int with_m = type == AMXQ_TYPE_Q4_1 || type == AMXQ_TYPE_Q5_1;
        const size_t wb = amxq_type_block_bytes(type), ab = with_m ? 36 : 34;
        for (int64_t b = 0; b < k / 32; b++, w += wb, a += ab) {
            const double dw = fz_half_to_double(fz_rd16(w)), dx = fz_half_to_double(fz_rd16(a));
            const int8_t *qx = (const int8_t *)(a + (with_m ? 4 : 2));
            long dot = 0;
            for (int i = 0; i < 32; i++) {
                int q;
                if (type == AMXQ_TYPE_Q8_0)
                    q = ((const int8_t *)(w + 2))[i];
                else if (type == AMXQ_TYPE_IQ4_NL) { /* ggml's block_iq4_nl: d, qs */
                    static const int kv[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                               1,    13,   25,  38,  53,  69,  89,  113};
                    q = kv[i < 16 ? w[2 + i] & 15 : w[2 + i - 16] >> 4];
                } else if (type == AMXQ_TYPE_Q5_0 || type == AMXQ_TYPE_Q5_1) {
                    /* ggml's block_q5_0: d, u32 qh, qs; block_q5_1: d, m, u32 qh, qs */
                    const uint8_t *qh = w + (with_m ? 4 : 2), byte = qh[4 + i % 16];
                    q = ((i < 16 ? byte & 15 : byte >> 4) | ((qh[i / 8] >> (i % 8)) & 1) << 4) -
                        (with_m ? 0 : 16);
                } else {
                    const uint8_t byte = w[(with_m ? 4 : 2) + i % 16];
                    q = (i < 16 ? byte & 15 : byte >> 4) - (type == AMXQ_TYPE_Q4_0 ? 8 : 0);
                }
                dot += (long)q * qx[i];
            }
            const double t1 = dw * dx * (double)dot;
            const double t2 =
                with_m ? fz_half_to_double(fz_rd16(w + 2)) * fz_half_to_double(fz_rd16(a + 2))
                       : 0.0;
            v += t1 + t2;
            g += fabs(t1) + fabs(t2);
        }
    }
    *exact = v;
    *mag = g;
}

/* Check C (m x n, stride ldc) against the oracle: the L2 norm of the error at most 1e-5 times the
 * L2 norm of the term magnitudes (an L2-relative 1e-5 where nothing cancels). Elements whose
 * exact value is not finite are skipped. */
static inline void fz_check_oracle(const char *what, amxq_type type, const uint8_t *g,
                                   const float *x, int64_t m, int64_t n, int64_t k, int64_t ldx,
                                   const float *c, int64_t ldc)
{
    const int64_t qk = amxq_type_block(type);
    const size_t abytes =
        (size_t)(k / qk) * (qk == 256                                          ? 292
                            : type == AMXQ_TYPE_Q4_1 || type == AMXQ_TYPE_Q5_1 ? 36
                                                                               : 34);
    uint8_t *a = (uint8_t *)malloc(abytes);
    FZ_CHECK(a != NULL, "out of memory");
    const size_t wrow = (size_t)(k / qk) * amxq_type_block_bytes(type);
    double err = 0, den = 0;
    for (int64_t i = 0; i < m; i++) {
        FZ_CHECK(amxq_quantize_row(type, x + i * ldx, k, a, abytes) == AMXQ_OK, "quantize_row");
        for (int64_t j = 0; j < n; j++) {
            double exact, mag;
            fz_oracle(type, g + (size_t)j * wrow, a, k, &exact, &mag);
            if (!isfinite(exact) || !isfinite(mag))
                continue; /* NaN or Inf in the scales or X: nothing to compare (ggml's too) */
            const double d = (double)c[i * ldc + j] - exact;
            err += d * d;
            den += mag * mag;
        }
    }
    free(a);
    FZ_CHECK(sqrt(err) <= 1e-5 * sqrt(den) + 1e-30,
             "%s %s m=%lld n=%lld k=%lld: error %.3g vs the double oracle, term scale %.3g", what,
             amxq_type_name(type), (long long)m, (long long)n, (long long)k, sqrt(err), sqrt(den));
}

#endif /* AMXQ_FUZZ_COMMON_H */
