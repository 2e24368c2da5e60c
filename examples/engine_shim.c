/*
 * engine_shim: a miniature host engine that embeds amxq the safe way. It is the worked example an
 * integrator copies, so it shows the whole path from weights to checked outputs:
 *
 *   1. a tiny graph of two op kinds over weights in ggml block formats (Q4_0, Q4_1, Q4_K, Q6_K):
 *      MUL_MAT (one dense weight) and MUL_MAT_ID (a stack of expert weights, one picked per row
 *      and slot by ids). Weights come from seeded random floats and the shim's own quantizers.
 *   2. a placement pass (an engine's buffer-type selection): MUL_MAT weights amxq can take are
 *      packed by amxq; MUL_MAT_ID weights stay in ggml format for the engine's own expert loop;
 *      whatever amxq cannot take (an f32 router, a shape it refuses) stays unpacked too.
 *   3. a toy MoE transformer block (parallel residual: out = x + attn(norm x) + moe(norm x)),
 *      run token by token (M = 1, with a KV cache) and as a prompt (M = 64), compared with an
 *      all-unpacked run of the same graph in which every product goes through the shim's scalar
 *      code. Fails on NaN/Inf or on error above the tolerances documented at TOL_OP / TOL_E2E.
 *   4. the guard: every engine path that reads ggml blocks first asks amxq_packed_info() whether
 *      the buffer is a packed weight and refuses it if so (--misuse packs the expert weights on
 *      purpose to show the refusal); and amxq_matmul() refuses plain ggml bytes with
 *      AMXQ_ERR_BAD_PACKED.
 *   5. a short amxq_matmul timing on this CPU, naming the ISA that ran.
 *
 * Invariants: only the public header is used; every amxq status is checked; the engine's ggml
 * paths never read a buffer before the guard accepted it. Exit status: 0 all good, 1 accuracy
 * failure (or NaN/Inf), 2 a buffer refused by a guard, 3 bad usage or an unexpected amxq error.
 */
#define _POSIX_C_SOURCE 200809L

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "amxq.h"

/* ---- Tolerances --------------------------------------------------------------------------------
 *
 * TOL_OP: an amxq product against the shim's scalar product of the same input. Both quantize the
 * activations the ggml way (amxq_matmul() inside, amxq_quantize_row() in the shim), so the int8
 * inputs are identical and only the float summation order differs: ~1e-7 is typical, docs/design.md
 * asks kernels for <= 1e-6 against amxq's own reference, and 1e-5 leaves room for the shim's
 * different (double) accumulation.
 *
 * TOL_E2E: an output of the deployed run against the all-unpacked run. There the inputs of later
 * ops differ in the last bits (they come from products summed in another order), and a last-bit
 * difference can move one activation across a rounding boundary of its Q8 quantization: one
 * quantized value then differs by one step, ~1/127 of the row's largest value, which moves that
 * row's product by up to ~1e-3 relative. That is legitimate. A wrong kernel, a misread buffer or a
 * routing bug gives errors of order 1 (or NaN), far above 1e-2.
 */
#define TOL_OP  1e-5
#define TOL_E2E 1e-2

/* ---- Model shape ----------------------------------------------------------------------------- */

#define D_MODEL  256 /* a multiple of 256, so every type (Q4_K included) can hold a row */
#define N_HEAD   4
#define HEAD_DIM (D_MODEL / N_HEAD)
#define N_EXPERT 8
#define TOP_K    2
#define D_FF     512
#define MAX_ROWS 4096

#define EXIT_ACCURACY 1
#define EXIT_REFUSED  2
#define EXIT_ERROR    3

/* ---- Small helpers --------------------------------------------------------------------------- */

static int quiet;

static void *xmalloc(size_t bytes)
{
    void *p = malloc(bytes ? bytes : 1);
    if (p == NULL) {
        fprintf(stderr, "engine_shim: out of memory (%zu bytes)\n", bytes);
        exit(EXIT_ERROR);
    }
    return p;
}

static void *xcalloc(size_t count, size_t size)
{
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (p == NULL) {
        fprintf(stderr, "engine_shim: out of memory\n");
        exit(EXIT_ERROR);
    }
    return p;
}

/* amxq buffers must be AMXQ_ALIGNMENT-aligned; aligned_alloc wants a multiple of it. */
static void *xalloc_aligned(size_t bytes)
{
    size_t rounded = (bytes + AMXQ_ALIGNMENT - 1) / AMXQ_ALIGNMENT * AMXQ_ALIGNMENT;
    void *p = aligned_alloc(AMXQ_ALIGNMENT, rounded ? rounded : AMXQ_ALIGNMENT);
    if (p == NULL) {
        fprintf(stderr, "engine_shim: out of memory (%zu bytes)\n", bytes);
        exit(EXIT_ERROR);
    }
    return p;
}

static const char *status_name(amxq_status st)
{
    switch (st) {
    case AMXQ_OK:
        return "AMXQ_OK";
    case AMXQ_ERR_NULL:
        return "AMXQ_ERR_NULL";
    case AMXQ_ERR_TYPE:
        return "AMXQ_ERR_TYPE";
    case AMXQ_ERR_SHAPE:
        return "AMXQ_ERR_SHAPE";
    case AMXQ_ERR_K_BLOCK:
        return "AMXQ_ERR_K_BLOCK";
    case AMXQ_ERR_STRIDE:
        return "AMXQ_ERR_STRIDE";
    case AMXQ_ERR_BUFFER_SIZE:
        return "AMXQ_ERR_BUFFER_SIZE";
    case AMXQ_ERR_BAD_PACKED:
        return "AMXQ_ERR_BAD_PACKED";
    case AMXQ_ERR_ALIGNMENT:
        return "AMXQ_ERR_ALIGNMENT";
    case AMXQ_ERR_NOMEM:
        return "AMXQ_ERR_NOMEM";
    case AMXQ_ERR_ISA_UNKNOWN:
        return "AMXQ_ERR_ISA_UNKNOWN";
    case AMXQ_ERR_ISA_UNSUPPORTED:
        return "AMXQ_ERR_ISA_UNSUPPORTED";
    case AMXQ_ERR_NO_AMX:
        return "AMXQ_ERR_NO_AMX";
    case AMXQ_ERR_AMX_OS:
        return "AMXQ_ERR_AMX_OS";
    case AMXQ_ERR_AMX_PERMISSION:
        return "AMXQ_ERR_AMX_PERMISSION";
    case AMXQ_ERR_ARG:
        return "AMXQ_ERR_ARG";
    case AMXQ_ERR_THREAD:
        return "AMXQ_ERR_THREAD";
    case AMXQ_ERR_NUMA:
        return "AMXQ_ERR_NUMA";
    case AMXQ_ERR_OVERLAP:
        return "AMXQ_ERR_OVERLAP";
    case AMXQ_ERR_SELFTEST:
        return "AMXQ_ERR_SELFTEST";
    }
    return "AMXQ_ERR_?";
}

static const char *isa_str(amxq_isa isa)
{
    const char *s = amxq_isa_name(isa);
    return s ? s : "?";
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* splitmix64: a seeded, portable stream, so --seed N gives the same weights everywhere. */
static uint64_t rng_state;

static uint64_t rng_next(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Uniform in [-1, 1). */
static float rng_uniform(void)
{
    return (float)((double)(rng_next() >> 11) * (1.0 / 9007199254740992.0) * 2.0 - 1.0);
}

/* Roughly normal (sum of four uniforms), unit variance. */
static float rng_normal(void)
{
    return (rng_uniform() + rng_uniform() + rng_uniform() + rng_uniform()) * 0.8660254f;
}

/* ---- Half precision (the ggml scales) -------------------------------------------------------- */

static float half_to_float(uint16_t h)
{
    const uint32_t exp = (h >> 10) & 31u, man = h & 1023u;
    float v;
    if (exp == 0)
        v = ldexpf((float)man, -24);
    else if (exp == 31)
        v = man ? NAN : INFINITY;
    else
        v = ldexpf((float)(man | 1024u), (int)exp - 25);
    return (h & 0x8000u) ? -v : v;
}

/* Round to nearest, ties to even. */
static uint16_t float_to_half(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    const uint32_t sign = (x >> 16) & 0x8000u, ax = x & 0x7fffffffu;
    if (ax > 0x7f800000u)
        return (uint16_t)(sign | 0x7e00u);
    if (ax >= 0x47800000u) /* >= 2^16: beyond the largest half */
        return (uint16_t)(sign | 0x7c00u);
    if (ax < 0x38800000u) { /* below 2^-14: a subnormal half, in units of 2^-24 */
        float a;
        memcpy(&a, &ax, 4);
        const float units = a * 16777216.0f;
        uint32_t q = (uint32_t)units;
        const float rest = units - (float)q;
        if (rest > 0.5f || (rest == 0.5f && (q & 1u)))
            q++;
        return (uint16_t)(sign | q);
    }
    uint32_t h = ((((ax >> 23) - 127u + 15u)) << 10) | ((ax >> 13) & 1023u);
    const uint32_t rem = ax & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u)))
        h++; /* a carry into the exponent is the right answer (up to inf) */
    return (uint16_t)(sign | h);
}

static uint16_t rd16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

static void wr16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v & 0xff);
    p[1] = (uint8_t)(v >> 8);
}

static float rdhalf(const uint8_t *p)
{
    return half_to_float(rd16(p));
}

static int roundi(float v)
{
    return (int)floorf(v + 0.5f);
}

static int clampi(int v, int lo, int hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

/* ---- Weight types (ggml's enum values, so they pass to amxq unchanged) ----------------------- */

enum wtype { W_F32 = 0, W_Q4_0 = 2, W_Q4_1 = 3, W_Q8_0 = 8, W_Q4_K = 12, W_Q6_K = 14 };

static const char *wtype_name(enum wtype t)
{
    return t == W_F32 ? "f32" : amxq_type_name((amxq_type)t);
}

static int64_t wtype_block(enum wtype t)
{
    return t == W_F32 ? 1 : amxq_type_block((amxq_type)t);
}

static size_t wtype_block_bytes(enum wtype t)
{
    return t == W_F32 ? 4 : amxq_type_block_bytes((amxq_type)t);
}

static size_t row_bytes(enum wtype t, int64_t k)
{
    return (size_t)(k / wtype_block(t)) * wtype_block_bytes(t);
}

/* ---- The shim's own ggml-format quantizers (docs/design.md §2) ---------------------------------
 *
 * They produce valid blocks, not ggml's exact bytes: both runs read the same bytes, and the check
 * is the agreement of the two ways of computing with them.
 */

/* Q4_0: the value of largest magnitude maps to -8, so d = max / -8 and q = x/d + 8 in [0, 15]. */
static void quantize_q4_0(const float *x, uint8_t *b)
{
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < 32; j++) {
        if (fabsf(x[j]) > amax) {
            amax = fabsf(x[j]);
            max = x[j];
        }
    }
    const uint16_t dh = float_to_half(max / -8.0f);
    const float d = half_to_float(dh), id = d != 0.0f ? 1.0f / d : 0.0f;
    wr16(b, dh);
    for (int j = 0; j < 16; j++) {
        const int lo = clampi(roundi(x[j] * id) + 8, 0, 15);
        const int hi = clampi(roundi(x[j + 16] * id) + 8, 0, 15);
        b[2 + j] = (uint8_t)(lo | (hi << 4));
    }
}

/* Q4_1: d = (max - min) / 15, m = min, q = (x - m) / d in [0, 15]. */
static void quantize_q4_1(const float *x, uint8_t *b)
{
    float lo = x[0], hi = x[0];
    for (int j = 1; j < 32; j++) {
        lo = x[j] < lo ? x[j] : lo;
        hi = x[j] > hi ? x[j] : hi;
    }
    const uint16_t dh = float_to_half((hi - lo) / 15.0f), mh = float_to_half(lo);
    const float d = half_to_float(dh), m = half_to_float(mh), id = d != 0.0f ? 1.0f / d : 0.0f;
    wr16(b, dh);
    wr16(b + 2, mh);
    for (int j = 0; j < 16; j++) {
        const int q0 = clampi(roundi((x[j] - m) * id), 0, 15);
        const int q1 = clampi(roundi((x[j + 16] - m) * id), 0, 15);
        b[4 + j] = (uint8_t)(q0 | (q1 << 4));
    }
}

/* Q8_0: d = amax / 127, q = x / d. */
static void quantize_q8_0(const float *x, uint8_t *b)
{
    float amax = 0.0f;
    for (int j = 0; j < 32; j++)
        amax = fabsf(x[j]) > amax ? fabsf(x[j]) : amax;
    const uint16_t dh = float_to_half(amax / 127.0f);
    const float d = half_to_float(dh), id = d != 0.0f ? 1.0f / d : 0.0f;
    wr16(b, dh);
    for (int j = 0; j < 32; j++)
        b[2 + j] = (uint8_t)(int8_t)clampi(roundi(x[j] * id), -127, 127);
}

/* Q4_K: per sub-block of 32 an affine map (scale, min) with min <= 0; the eight scales and mins
 * are themselves quantized to 6 bits against the super-block's d and dmin. */
static void quantize_q4_k(const float *x, uint8_t *b)
{
    float scale[8], mn[8], max_scale = 0.0f, max_mn = 0.0f;
    for (int j = 0; j < 8; j++) {
        float lo = 0.0f, hi = x[32 * j];
        for (int l = 0; l < 32; l++) {
            const float v = x[32 * j + l];
            lo = v < lo ? v : lo;
            hi = v > hi ? v : hi;
        }
        scale[j] = (hi - lo) / 15.0f;
        mn[j] = -lo;
        max_scale = scale[j] > max_scale ? scale[j] : max_scale;
        max_mn = mn[j] > max_mn ? mn[j] : max_mn;
    }
    const uint16_t dh = float_to_half(max_scale / 63.0f), dminh = float_to_half(max_mn / 63.0f);
    const float d = half_to_float(dh), dmin = half_to_float(dminh);
    uint8_t sc[8], m[8];
    for (int j = 0; j < 8; j++) {
        sc[j] = (uint8_t)(d > 0.0f ? clampi(roundi(scale[j] / d), 0, 63) : 0);
        m[j] = (uint8_t)(dmin > 0.0f ? clampi(roundi(mn[j] / dmin), 0, 63) : 0);
    }
    wr16(b, dh);
    wr16(b + 2, dminh);
    uint8_t *scales = b + 4, *qs = b + 16;
    for (int j = 0; j < 4; j++) { /* the inverse of docs/design.md §2's 6-bit unpacking */
        scales[j] = (uint8_t)((sc[j] & 63) | ((sc[j + 4] >> 4) << 6));
        scales[j + 4] = (uint8_t)((m[j] & 63) | ((m[j + 4] >> 4) << 6));
        scales[j + 8] = (uint8_t)((sc[j + 4] & 15) | ((m[j + 4] & 15) << 4));
    }
    uint8_t q[8][32];
    for (int j = 0; j < 8; j++) {
        const float de = d * sc[j], me = dmin * m[j], ide = de > 0.0f ? 1.0f / de : 0.0f;
        for (int l = 0; l < 32; l++)
            q[j][l] = (uint8_t)clampi(roundi((x[32 * j + l] + me) * ide), 0, 15);
    }
    for (int r = 0; r < 4; r++)
        for (int l = 0; l < 32; l++)
            qs[32 * r + l] = (uint8_t)(q[2 * r][l] | (q[2 * r + 1][l] << 4));
}

/* Q6_K: per sub-block of 16 a signed scale (the value of largest magnitude maps to -32), the 16
 * scales quantized to int8 against the super-block's d; q = x / (d * sc) + 32 in [0, 63], split
 * into ggml's ql nibbles and qh bit pairs (the inverse of docs/design.md §2's reading). */
static void quantize_q6_k(const float *x, uint8_t *b)
{
    float scale[16], max_scale = 0.0f, amax_scale = 0.0f;
    for (int j = 0; j < 16; j++) {
        float amax = 0.0f, max = 0.0f;
        for (int l = 0; l < 16; l++)
            if (fabsf(x[16 * j + l]) > amax) {
                amax = fabsf(x[16 * j + l]);
                max = x[16 * j + l];
            }
        scale[j] = max / -32.0f;
        if (fabsf(scale[j]) > amax_scale) {
            amax_scale = fabsf(scale[j]);
            max_scale = scale[j];
        }
    }
    const uint16_t dh = float_to_half(max_scale / -128.0f);
    const float d = half_to_float(dh);
    int8_t sc[16];
    uint8_t q[256];
    for (int j = 0; j < 16; j++) {
        sc[j] = (int8_t)(d != 0.0f ? clampi(roundi(scale[j] / d), -128, 127) : 0);
        const float de = d * sc[j], ide = de != 0.0f ? 1.0f / de : 0.0f;
        for (int l = 0; l < 16; l++)
            q[16 * j + l] = (uint8_t)clampi(roundi(x[16 * j + l] * ide) + 32, 0, 63);
    }
    uint8_t *ql = b, *qh = b + 128;
    for (int h = 0; h < 2; h++)
        for (int l = 0; l < 32; l++) {
            const uint8_t *qq = q + 128 * h + l;
            ql[64 * h + l] = (uint8_t)((qq[0] & 15) | (qq[64] & 15) << 4);
            ql[64 * h + 32 + l] = (uint8_t)((qq[32] & 15) | (qq[96] & 15) << 4);
            qh[32 * h + l] = (uint8_t)(qq[0] >> 4 | (qq[32] >> 4) << 2 | (qq[64] >> 4) << 4 |
                                       (qq[96] >> 4) << 6);
        }
    memcpy(b + 192, sc, 16);
    wr16(b + 208, dh);
}

/* One row of K floats into ggml blocks of type t (f32 rows are copied). */
static void quantize_row(enum wtype t, const float *x, int64_t k, uint8_t *dst)
{
    const int64_t qk = wtype_block(t);
    const size_t bb = wtype_block_bytes(t);
    if (t == W_F32) {
        memcpy(dst, x, (size_t)k * 4);
        return;
    }
    for (int64_t i = 0; i < k / qk; i++) {
        const float *xb = x + i * qk;
        uint8_t *b = dst + (size_t)i * bb;
        switch (t) {
        case W_Q4_0:
            quantize_q4_0(xb, b);
            break;
        case W_Q4_1:
            quantize_q4_1(xb, b);
            break;
        case W_Q8_0:
            quantize_q8_0(xb, b);
            break;
        case W_Q4_K:
            quantize_q4_k(xb, b);
            break;
        case W_Q6_K:
            quantize_q6_k(xb, b);
            break;
        case W_F32:
            break;
        }
    }
}

/* ---- The shim's own block dot products (docs/design.md §1) -------------------------------------
 *
 * w: one ggml row of K weights; q: the same K activations as amxq_quantize_row() wrote them
 * (Q8_0: fp16 d + 32 int8; Q8_1: fp16 d, fp16 s, 32 int8; Q8_K: f32 d, 256 int8, 16 int16 sums).
 * Integer sums per block, float scaling, double accumulation over blocks.
 */
static float vec_dot(enum wtype t, int64_t k, const uint8_t *w, const uint8_t *q)
{
    double acc = 0.0;
    switch (t) {
    case W_Q4_0:
        for (int64_t i = 0; i < k / 32; i++, w += 18, q += 34) {
            const int8_t *qx = (const int8_t *)(q + 2);
            int32_t sum = 0;
            for (int j = 0; j < 16; j++)
                sum += ((w[2 + j] & 15) - 8) * qx[j] + ((w[2 + j] >> 4) - 8) * qx[j + 16];
            acc += (double)(rdhalf(w) * rdhalf(q)) * sum;
        }
        break;
    case W_Q4_1:
        for (int64_t i = 0; i < k / 32; i++, w += 20, q += 36) {
            const int8_t *qx = (const int8_t *)(q + 4);
            int32_t sum = 0;
            for (int j = 0; j < 16; j++)
                sum += (w[4 + j] & 15) * qx[j] + (w[4 + j] >> 4) * qx[j + 16];
            acc += (double)(rdhalf(w) * rdhalf(q)) * sum + (double)(rdhalf(w + 2) * rdhalf(q + 2));
        }
        break;
    case W_Q8_0:
        for (int64_t i = 0; i < k / 32; i++, w += 34, q += 34) {
            const int8_t *qw = (const int8_t *)(w + 2), *qx = (const int8_t *)(q + 2);
            int32_t sum = 0;
            for (int j = 0; j < 32; j++)
                sum += qw[j] * qx[j];
            acc += (double)(rdhalf(w) * rdhalf(q)) * sum;
        }
        break;
    case W_Q4_K:
        for (int64_t i = 0; i < k / 256; i++, w += 144, q += 292) {
            float dx;
            memcpy(&dx, q, 4);
            const int8_t *qx = (const int8_t *)(q + 4);
            const uint8_t *scales = w + 4, *qs = w + 16;
            int32_t sum_sc = 0, sum_m = 0;
            for (int j = 0; j < 8; j++) {
                int sc, m;
                if (j < 4) {
                    sc = scales[j] & 63;
                    m = scales[j + 4] & 63;
                } else {
                    sc = (scales[j + 4] & 15) | ((scales[j - 4] >> 6) << 4);
                    m = (scales[j + 4] >> 4) | ((scales[j] >> 6) << 4);
                }
                const uint8_t *run = qs + 32 * (j / 2);
                const int shift = (j & 1) * 4;
                int32_t s = 0;
                for (int l = 0; l < 32; l++)
                    s += ((run[l] >> shift) & 15) * qx[32 * j + l];
                int16_t bs[2];
                memcpy(bs, q + 260 + 4 * j, 4); /* bsums of this sub-block's two runs of 16 */
                sum_sc += sc * s;
                sum_m += m * (bs[0] + bs[1]);
            }
            acc += (double)(rdhalf(w) * dx) * sum_sc - (double)(rdhalf(w + 2) * dx) * sum_m;
        }
        break;
    case W_Q6_K:
        for (int64_t i = 0; i < k / 256; i++, w += 210, q += 292) {
            float dx;
            memcpy(&dx, q, 4);
            const int8_t *qx = (const int8_t *)(q + 4);
            int32_t sum = 0;
            for (int j = 0; j < 256; j++) { /* weight j: half h, quarter c, position l */
                const int h = j / 128, c = (j % 128) / 32, l = j % 32;
                const uint8_t ql = w[64 * h + 32 * (c & 1) + l], qh = w[128 + 32 * h + l];
                const int qw = ((c < 2 ? ql & 15 : ql >> 4) | ((qh >> (2 * c)) & 3) << 4) - 32;
                sum += (int8_t)w[192 + j / 16] * qw * qx[j];
            }
            acc += (double)(rdhalf(w + 208) * dx) * sum;
        }
        break;
    case W_F32:
        break;
    }
    return (float)acc;
}

/* ---- The graph's tensors --------------------------------------------------------------------- */

enum op { OP_NONE, OP_MUL_MAT, OP_MUL_MAT_ID };

enum tensor_id { T_NORM, T_Q, T_K, T_V, T_O, T_ROUTER, T_GATE, T_UP, T_DOWN, T_COUNT };

struct tensor {
    const char *name;
    enum op op;
    enum wtype type;
    int64_t k, n, n_exp; /* ggml ne0, ne1, ne2: rows of K, N rows per expert, experts */
    uint8_t *ggml;       /* the bytes as a model file holds them */
    size_t ggml_bytes;
};

/* Types chosen so that both paths see most quant types, with a Q4_K_M-like mix: Q6_K for attn_v
 * and ffn_down, as llama.cpp's Q4_K_M keeps them. */
static const struct tensor tensor_spec[T_COUNT] = {
    [T_NORM] = {"attn_norm", OP_NONE, W_F32, D_MODEL, 1, 1, NULL, 0},
    [T_Q] = {"attn_q", OP_MUL_MAT, W_Q4_0, D_MODEL, D_MODEL, 1, NULL, 0},
    [T_K] = {"attn_k", OP_MUL_MAT, W_Q4_1, D_MODEL, D_MODEL, 1, NULL, 0},
    [T_V] = {"attn_v", OP_MUL_MAT, W_Q6_K, D_MODEL, D_MODEL, 1, NULL, 0},
    [T_O] = {"attn_output", OP_MUL_MAT, W_Q4_K, D_MODEL, D_MODEL, 1, NULL, 0},
    [T_ROUTER] = {"ffn_gate_inp", OP_MUL_MAT, W_F32, D_MODEL, N_EXPERT, 1, NULL, 0},
    [T_GATE] = {"ffn_gate_exps", OP_MUL_MAT_ID, W_Q4_K, D_MODEL, D_FF, N_EXPERT, NULL, 0},
    [T_UP] = {"ffn_up_exps", OP_MUL_MAT_ID, W_Q4_1, D_MODEL, D_FF, N_EXPERT, NULL, 0},
    [T_DOWN] = {"ffn_down_exps", OP_MUL_MAT_ID, W_Q6_K, D_FF, D_MODEL, N_EXPERT, NULL, 0},
};

struct model {
    struct tensor t[T_COUNT];
};

static void model_init(struct model *mdl)
{
    float *row = xmalloc(sizeof(float) * D_FF);
    for (int i = 0; i < T_COUNT; i++) {
        struct tensor *t = &mdl->t[i];
        *t = tensor_spec[i];
        const int64_t rows = t->n * t->n_exp;
        t->ggml_bytes = row_bytes(t->type, t->k) * (size_t)rows;
        t->ggml =
            xalloc_aligned(t->ggml_bytes); /* engines align tensor data; amxq_pack needs not */
        /* Scale 1/sqrt(K) keeps products O(1); a per-row gain makes the block scales differ. */
        const float scale = 1.0f / sqrtf((float)t->k);
        for (int64_t r = 0; r < rows; r++) {
            const float gain = 0.5f + 0.5f * (rng_uniform() + 1.0f);
            for (int64_t j = 0; j < t->k; j++)
                row[j] = i == T_NORM ? 1.0f + 0.1f * rng_uniform() : gain * scale * rng_normal();
            quantize_row(t->type, row, t->k, t->ggml + (size_t)r * row_bytes(t->type, t->k));
        }
    }
    free(row);
}

static void model_free(struct model *mdl)
{
    for (int i = 0; i < T_COUNT; i++)
        free(mdl->t[i].ggml);
}

/* ---- Placement: where each tensor's bytes live ----------------------------------------------- */

enum buf { BUF_CPU, BUF_AMXQ };

struct placed {
    const void *data; /* what the engine's kernels are handed */
    size_t nbytes;
    enum buf buf;
    void *owned; /* a packed copy this placement allocated */
    char why[80];
    void **experts; /* --moe=packed: MUL_MAT_ID packed expert by expert, n_exp weights */
};

struct plan {
    struct placed p[T_COUNT];
};

/*
 * The rule, as an engine's buffer-type selection would apply it:
 *   - MUL_MAT with a type and shape amxq takes -> pack (amxq computes it);
 *   - MUL_MAT_ID -> stay ggml: the engine's expert loop reads the blocks itself, and a packed
 *     buffer there is exactly the failure this shim exists to prevent;
 *   - anything else amxq cannot take (f32 router, norms, a refused shape) -> stay as it is.
 * `misuse` breaks the second rule on purpose.
 */
static int place_experts(const struct tensor *t, struct placed *p);

static int place_tensor(const struct tensor *t, int misuse, int moe_packed, struct placed *p)
{
    memset(p, 0, sizeof *p);
    p->data = t->ggml;
    p->nbytes = t->ggml_bytes;
    p->buf = BUF_CPU;
    if (t->op == OP_NONE) {
        snprintf(p->why, sizeof p->why, "not a matmul weight");
        return 0;
    }
    if (t->op == OP_MUL_MAT_ID && moe_packed)
        return place_experts(t, p);
    if (t->op == OP_MUL_MAT_ID && !misuse) {
        snprintf(p->why, sizeof p->why, "MUL_MAT_ID: engine expert loop reads ggml blocks");
        return 0;
    }
    if (amxq_type_name((amxq_type)t->type) == NULL) {
        snprintf(p->why, sizeof p->why, "amxq takes no %s weights", wtype_name(t->type));
        return 0;
    }
    /* A stack of experts packed as one weight of n_exp * N rows: the mistake engines made. */
    const int64_t rows = t->n * t->n_exp;
    const size_t bytes = amxq_packed_size((amxq_type)t->type, rows, t->k);
    if (bytes == 0) {
        snprintf(p->why, sizeof p->why, "amxq refuses the shape");
        return 0;
    }
    void *packed = xalloc_aligned(bytes);
    const amxq_status st = amxq_pack((amxq_type)t->type, t->ggml, rows, t->k, packed, bytes);
    if (st != AMXQ_OK) {
        free(packed);
        fprintf(stderr, "engine_shim: amxq_pack(%s) failed: %s (%s)\n", t->name, status_name(st),
                amxq_status_str(st));
        return EXIT_ERROR;
    }
    p->data = p->owned = packed;
    p->nbytes = bytes;
    p->buf = BUF_AMXQ;
    snprintf(p->why, sizeof p->why, "%s",
             t->op == OP_MUL_MAT_ID ? "MISUSE (--misuse): expert stack packed" : "MUL_MAT");
    /* A real engine would free the ggml bytes here; the shim keeps them for the reference run. */
    return 0;
}

/*
 * --moe=packed: a MUL_MAT_ID stack packed the right way, one packed weight per expert, for
 * amxq_matmul_id(). The engine's expert loop never sees these buffers (and its guard would refuse
 * them: data points at expert 0, a packed weight).
 */
static int place_experts(const struct tensor *t, struct placed *p)
{
    const size_t rb = row_bytes(t->type, t->k);
    const size_t bytes = amxq_packed_size((amxq_type)t->type, t->n, t->k);
    if (bytes == 0) {
        snprintf(p->why, sizeof p->why, "amxq refuses the shape");
        return 0;
    }
    p->experts = xcalloc((size_t)t->n_exp, sizeof(void *));
    for (int64_t e = 0; e < t->n_exp; e++) {
        p->experts[e] = xalloc_aligned(bytes);
        const amxq_status st = amxq_pack((amxq_type)t->type, t->ggml + (size_t)(e * t->n) * rb,
                                         t->n, t->k, p->experts[e], bytes);
        if (st != AMXQ_OK) {
            fprintf(stderr, "engine_shim: amxq_pack(%s expert %lld) failed: %s (%s)\n", t->name,
                    (long long)e, status_name(st), amxq_status_str(st));
            return EXIT_ERROR;
        }
    }
    p->data = p->experts[0];
    p->nbytes = bytes * (size_t)t->n_exp;
    p->buf = BUF_AMXQ;
    snprintf(p->why, sizeof p->why, "MUL_MAT_ID (--moe=packed): %lld experts packed one by one",
             (long long)t->n_exp);
    return 0;
}

static void plan_free(struct plan *pl)
{
    for (int i = 0; i < T_COUNT; i++) {
        free(pl->p[i].owned);
        if (pl->p[i].experts != NULL)
            for (int64_t e = 0; e < tensor_spec[i].n_exp; e++)
                free(pl->p[i].experts[e]);
        free(pl->p[i].experts);
    }
}

/* The all-unpacked plan of the reference run. */
static void plan_reference(const struct model *mdl, struct plan *pl)
{
    memset(pl, 0, sizeof *pl);
    for (int i = 0; i < T_COUNT; i++) {
        pl->p[i].data = mdl->t[i].ggml;
        pl->p[i].nbytes = mdl->t[i].ggml_bytes;
        pl->p[i].buf = BUF_CPU;
        snprintf(pl->p[i].why, sizeof pl->p[i].why, "reference run");
    }
}

static const char *op_name(enum op op)
{
    return op == OP_MUL_MAT ? "MUL_MAT" : op == OP_MUL_MAT_ID ? "MUL_MAT_ID" : "-";
}

static void print_placement(const struct model *mdl, const struct plan *pl)
{
    size_t total[2] = {0, 0}, ggml_of_packed = 0;
    int count[2] = {0, 0};
    if (!quiet) {
        printf("load: placement (MUL_MAT -> amxq packed; MUL_MAT_ID and the rest -> CPU, ggml)\n");
        printf("  %-14s %-10s %-4s %-15s %10s  %-11s %s\n", "tensor", "op", "type", "shape",
               "bytes", "buffer", "why");
    }
    for (int i = 0; i < T_COUNT; i++) {
        const struct tensor *t = &mdl->t[i];
        const struct placed *p = &pl->p[i];
        char shape[40];
        if (t->n_exp > 1)
            snprintf(shape, sizeof shape, "%lld x %lld x %lld", (long long)t->n_exp,
                     (long long)t->n, (long long)t->k);
        else
            snprintf(shape, sizeof shape, "%lld x %lld", (long long)t->n, (long long)t->k);
        if (!quiet)
            printf("  %-14s %-10s %-4s %-15s %10zu  %-11s %s\n", t->name, op_name(t->op),
                   wtype_name(t->type), shape, p->nbytes,
                   p->buf == BUF_AMXQ ? "AMXQ_PACKED" : "CPU", p->why);
        total[p->buf] += p->nbytes;
        count[p->buf]++;
        if (p->buf == BUF_AMXQ)
            ggml_of_packed += t->ggml_bytes;
    }
    printf("load: buffer AMXQ_PACKED: %d tensors, %zu bytes (%zu ggml bytes, +%.2f%%)\n",
           count[BUF_AMXQ], total[BUF_AMXQ], ggml_of_packed,
           ggml_of_packed ? 100.0 * ((double)total[BUF_AMXQ] / (double)ggml_of_packed - 1.0) : 0.0);
    printf("load: buffer CPU:         %d tensors, %zu bytes\n", count[BUF_CPU], total[BUF_CPU]);
}

/* ---- Error figures --------------------------------------------------------------------------- */

struct err {
    double max_abs, sum_d2, sum_r2;
    long nonfinite, count;
};

static void err_add(struct err *e, const float *got, const float *ref, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        e->count++;
        if (!isfinite(got[i]) || !isfinite(ref[i])) {
            e->nonfinite++;
            continue;
        }
        const double d = (double)got[i] - (double)ref[i];
        e->max_abs = fabs(d) > e->max_abs ? fabs(d) : e->max_abs;
        e->sum_d2 += d * d;
        e->sum_r2 += (double)ref[i] * (double)ref[i];
    }
}

static double err_l2(const struct err *e)
{
    return e->sum_r2 > 0.0 ? sqrt(e->sum_d2 / e->sum_r2) : sqrt(e->sum_d2);
}

static int err_ok(const struct err *e, double tol)
{
    return e->nonfinite == 0 && err_l2(e) <= tol;
}

/* ---- The engine's kernels: ggml blocks and f32 ----------------------------------------------- */

/*
 * The guard. Every engine path that reads ggml blocks calls this first. A packed buffer describes
 * itself (magic, version, checksum), so amxq_packed_info() tells them apart: AMXQ_OK means "this
 * is an amxq packed weight" and must be refused here; plain ggml bytes give AMXQ_ERR_BAD_PACKED.
 * It is a header read; an engine may run it once when it binds a tensor to a kernel, but it must
 * run before the first read.
 */
static int ggml_guard(const struct tensor *t, const struct placed *p, const char *path)
{
    amxq_packed_desc desc;
    const amxq_status st = amxq_packed_info(p->data, p->nbytes, &desc);
    if (st == AMXQ_OK) {
        fflush(stdout); /* keep the log in order when both streams go to one file */
        fprintf(stderr,
                "engine_shim: REFUSED: the %s was handed tensor '%s', whose buffer is an amxq "
                "packed weight\n"
                "  amxq_packed_info() = AMXQ_OK: %s, %lld x %lld, packed format v%u, %zu bytes\n"
                "  this path reads plain ggml %s blocks (%lld x %lld x %lld, %zu bytes); plain "
                "ggml bytes would have\n"
                "  given AMXQ_ERR_BAD_PACKED (\"%s\").\n"
                "  Reading packed panels as ggml blocks gives garbage or NaN, so nothing was "
                "computed.\n"
                "  Fix: keep MUL_MAT_ID (expert) weights out of the amxq buffer, as the placement "
                "pass does without --misuse.\n",
                path, t->name, amxq_type_name(desc.type), (long long)desc.n, (long long)desc.k,
                desc.format_version, desc.bytes, wtype_name(t->type), (long long)t->n_exp,
                (long long)t->n, (long long)t->k, t->ggml_bytes,
                amxq_status_str(AMXQ_ERR_BAD_PACKED));
        return EXIT_REFUSED;
    }
    if (st != AMXQ_ERR_BAD_PACKED) {
        fprintf(stderr, "engine_shim: amxq_packed_info(%s): unexpected %s (%s)\n", t->name,
                status_name(st), amxq_status_str(st));
        return EXIT_ERROR;
    }
    if (p->nbytes != t->ggml_bytes) {
        fprintf(stderr, "engine_shim: REFUSED: %s: tensor '%s' has %zu bytes, ggml needs %zu\n",
                path, t->name, p->nbytes, t->ggml_bytes);
        return EXIT_REFUSED;
    }
    return 0;
}

/* Activations of one row quantized for type t; the buffer fits the widest row (D_FF). */
struct qrow {
    uint8_t bytes[(D_FF / 32) * 36 + (D_FF / 256) * 292];
};

static int quantize_act(enum wtype t, const float *x, int64_t k, struct qrow *q)
{
    const amxq_status st = amxq_quantize_row((amxq_type)t, x, k, q->bytes, sizeof q->bytes);
    if (st != AMXQ_OK) {
        fprintf(stderr, "engine_shim: amxq_quantize_row: %s (%s)\n", status_name(st),
                amxq_status_str(st));
        return EXIT_ERROR;
    }
    return 0;
}

/* Y[m][n] = X[m] . W[n] on the engine's own path: f32, or ggml blocks after the guard. */
static int engine_mul_mat(const struct tensor *t, const struct placed *p, const float *x, int64_t m,
                          float *y)
{
    if (t->type == W_F32) {
        const float *w = p->data;
        for (int64_t i = 0; i < m; i++)
            for (int64_t n = 0; n < t->n; n++) {
                double s = 0.0;
                for (int64_t j = 0; j < t->k; j++)
                    s += (double)x[i * t->k + j] * w[n * t->k + j];
                y[i * t->n + n] = (float)s;
            }
        return 0;
    }
    int rc = ggml_guard(t, p, "engine MUL_MAT path");
    if (rc)
        return rc;
    const size_t rb = row_bytes(t->type, t->k);
    struct qrow q;
    for (int64_t i = 0; i < m; i++) {
        if ((rc = quantize_act(t->type, x + i * t->k, t->k, &q)))
            return rc;
        for (int64_t n = 0; n < t->n; n++)
            y[i * t->n + n] = vec_dot(t->type, t->k, (const uint8_t *)p->data + n * rb, q.bytes);
    }
    return 0;
}

/*
 * MUL_MAT_ID, the engine's expert loop: for row i and slot s, Y[i][s] = X[i][s] . W[ids[i][s]]^T,
 * where X[i][s] is at x + i * ldx_row + s * ldx_slot (ldx_slot = 0: one input for every slot).
 */
static int engine_mul_mat_id(const struct tensor *t, const struct placed *p, const float *x,
                             int64_t ldx_row, int64_t ldx_slot, const int *ids, int64_t m, float *y)
{
    int rc = ggml_guard(t, p, "engine expert path (MUL_MAT_ID)");
    if (rc)
        return rc;
    const size_t rb = row_bytes(t->type, t->k);
    struct qrow q;
    for (int64_t i = 0; i < m; i++) {
        for (int s = 0; s < TOP_K; s++) {
            const int e = ids[i * TOP_K + s];
            if (e < 0 || e >= t->n_exp) {
                fprintf(stderr, "engine_shim: expert id %d out of range\n", e);
                return EXIT_ERROR;
            }
            if ((s == 0 || ldx_slot != 0) &&
                (rc = quantize_act(t->type, x + i * ldx_row + s * ldx_slot, t->k, &q)))
                return rc;
            const uint8_t *w = (const uint8_t *)p->data + (size_t)e * (size_t)t->n * rb;
            float *yo = y + (i * TOP_K + s) * t->n;
            for (int64_t n = 0; n < t->n; n++)
                yo[n] = vec_dot(t->type, t->k, w + n * rb, q.bytes);
        }
    }
    return 0;
}

/* ---- The block ------------------------------------------------------------------------------- */

enum out_id { O_Q, O_K, O_V, O_ATTN, O_O, O_LOGITS, O_GATE, O_UP, O_DOWN, O_MOE, O_OUT, O_COUNT };

static const struct {
    const char *name, *what;
    int width;
} out_spec[O_COUNT] = {
    [O_Q] = {"q", "MUL_MAT attn_q", D_MODEL},
    [O_K] = {"k", "MUL_MAT attn_k", D_MODEL},
    [O_V] = {"v", "MUL_MAT attn_v", D_MODEL},
    [O_ATTN] = {"attn", "softmax(qk)v (f32)", D_MODEL},
    [O_O] = {"o", "MUL_MAT attn_output", D_MODEL},
    [O_LOGITS] = {"logits", "MUL_MAT ffn_gate_inp (f32)", N_EXPERT},
    [O_GATE] = {"gate", "MUL_MAT_ID ffn_gate_exps", TOP_K *D_FF},
    [O_UP] = {"up", "MUL_MAT_ID ffn_up_exps", TOP_K *D_FF},
    [O_DOWN] = {"down", "MUL_MAT_ID ffn_down_exps", TOP_K *D_MODEL},
    [O_MOE] = {"moe", "weighted expert sum", D_MODEL},
    [O_OUT] = {"out", "block output", D_MODEL},
};

/* Every intermediate of a run, row by row (rows are token positions). */
struct trace {
    int64_t rows;
    float *o[O_COUNT];
    int *ids;
};

static void trace_init(struct trace *tr, int64_t rows)
{
    tr->rows = rows;
    for (int i = 0; i < O_COUNT; i++)
        tr->o[i] = xcalloc((size_t)rows * (size_t)out_spec[i].width, sizeof(float));
    tr->ids = xcalloc((size_t)rows * TOP_K, sizeof(int));
}

static void trace_free(struct trace *tr)
{
    for (int i = 0; i < O_COUNT; i++)
        free(tr->o[i]);
    free(tr->ids);
}

struct run {
    const struct model *mdl;
    const struct plan *plan;
    int check; /* recompute every amxq product on the shim's path and compare */
    struct err op_err[T_COUNT];
    amxq_isa op_isa[T_COUNT];
    struct trace tr;
    double moe_s; /* seconds in MUL_MAT_ID products (amxq or the engine's loop; checks excluded) */
};

/* MUL_MAT: amxq for packed weights, the engine's own path otherwise. */
static int mul_mat(struct run *r, int tid, const float *x, int64_t m, float *y)
{
    const struct tensor *t = &r->mdl->t[tid];
    const struct placed *p = &r->plan->p[tid];
    if (p->buf != BUF_AMXQ)
        return engine_mul_mat(t, p, x, m, y);
    const amxq_status st = amxq_matmul(p->data, x, m, t->k, y, t->n);
    if (st != AMXQ_OK) {
        fprintf(stderr, "engine_shim: amxq_matmul(%s, M=%lld): %s (%s)\n", t->name, (long long)m,
                status_name(st), amxq_status_str(st));
        return EXIT_ERROR;
    }
    amxq_resolve_isa(AMXQ_ISA_AUTO, (amxq_type)t->type, m, &r->op_isa[tid]);
    if (r->check) {
        struct placed plain = {t->ggml, t->ggml_bytes, BUF_CPU, NULL, "", NULL};
        float *ref = xmalloc(sizeof(float) * (size_t)(m * t->n));
        const int rc = engine_mul_mat(t, &plain, x, m, ref);
        if (rc == 0)
            err_add(&r->op_err[tid], y, ref, (size_t)(m * t->n));
        free(ref);
        if (rc)
            return rc;
    }
    return 0;
}

/*
 * MUL_MAT_ID: amxq_matmul_id() for experts packed one by one (--moe=packed), the engine's expert
 * loop otherwise. Rows of X at x + i * ldx_row (+ s * ldx_slot when ldx_slot != 0: a row per
 * slot), Y[i][s] at y + (i * TOP_K + s) * N, as engine_mul_mat_id().
 */
static int mul_mat_id(struct run *r, int tid, const float *x, int64_t ldx_row, int64_t ldx_slot,
                      const int *ids, int64_t m, float *y)
{
    const struct tensor *t = &r->mdl->t[tid];
    const struct placed *p = &r->plan->p[tid];
    double t0 = now_s();
    if (p->experts == NULL) {
        const int rc = engine_mul_mat_id(t, p, x, ldx_row, ldx_slot, ids, m, y);
        r->moe_s += now_s() - t0;
        return rc;
    }
    int32_t *ids32 = xmalloc(sizeof(int32_t) * (size_t)(m * TOP_K));
    int32_t most = 0, count[N_EXPERT] = {0};
    for (int64_t i = 0; i < m * TOP_K; i++) {
        ids32[i] = ids[i];
        if (ids[i] >= 0 && ids[i] < N_EXPERT && ++count[ids[i]] > most)
            most = count[ids[i]];
    }
    t0 = now_s();
    const amxq_status st =
        amxq_matmul_id((const void *const *)p->experts, t->n_exp, x, ldx_slot ? TOP_K : 1, ldx_slot,
                       ldx_row, ids32, TOP_K, TOP_K, m, y, t->n, TOP_K * t->n, NULL);
    r->moe_s += now_s() - t0;
    free(ids32);
    if (st != AMXQ_OK) {
        fprintf(stderr, "engine_shim: amxq_matmul_id(%s, tokens=%lld): %s (%s)\n", t->name,
                (long long)m, status_name(st), amxq_status_str(st));
        return EXIT_ERROR;
    }
    /* AUTO chooses per expert by its rows; name the family of the busiest one. */
    amxq_resolve_isa(AMXQ_ISA_AUTO, (amxq_type)t->type, most > 0 ? most : 1, &r->op_isa[tid]);
    if (r->check) {
        struct placed plain = {t->ggml, t->ggml_bytes, BUF_CPU, NULL, "", NULL};
        float *ref = xmalloc(sizeof(float) * (size_t)(m * TOP_K * t->n));
        const int rc = engine_mul_mat_id(t, &plain, x, ldx_row, ldx_slot, ids, m, ref);
        if (rc == 0)
            err_add(&r->op_err[tid], y, ref, (size_t)(m * TOP_K * t->n));
        free(ref);
        if (rc)
            return rc;
    }
    return 0;
}

static void rms_norm(const float *x, const float *w, int64_t m, float *y)
{
    for (int64_t i = 0; i < m; i++) {
        double ss = 0.0;
        for (int j = 0; j < D_MODEL; j++)
            ss += (double)x[i * D_MODEL + j] * x[i * D_MODEL + j];
        const float s = (float)(1.0 / sqrt(ss / D_MODEL + 1e-6));
        for (int j = 0; j < D_MODEL; j++)
            y[i * D_MODEL + j] = x[i * D_MODEL + j] * s * w[j];
    }
}

/* Causal attention of rows [r0, r0 + m) over the cached k, v of rows [0, row]. No positional
 * encoding: the toy needs only that every row attends to a different set. */
static void attention(struct trace *tr, int64_t r0, int64_t m)
{
    const float scale = 1.0f / sqrtf((float)HEAD_DIM);
    float *score = xmalloc(sizeof(float) * (size_t)(r0 + m));
    for (int64_t i = r0; i < r0 + m; i++) {
        for (int h = 0; h < N_HEAD; h++) {
            const float *q = tr->o[O_Q] + i * D_MODEL + h * HEAD_DIM;
            float mx = -INFINITY, sum = 0.0f;
            for (int64_t j = 0; j <= i; j++) {
                const float *k = tr->o[O_K] + j * D_MODEL + h * HEAD_DIM;
                float s = 0.0f;
                for (int d = 0; d < HEAD_DIM; d++)
                    s += q[d] * k[d];
                score[j] = s * scale;
                mx = score[j] > mx ? score[j] : mx;
            }
            for (int64_t j = 0; j <= i; j++) {
                score[j] = expf(score[j] - mx);
                sum += score[j];
            }
            float *out = tr->o[O_ATTN] + i * D_MODEL + h * HEAD_DIM;
            for (int d = 0; d < HEAD_DIM; d++)
                out[d] = 0.0f;
            for (int64_t j = 0; j <= i; j++) {
                const float *v = tr->o[O_V] + j * D_MODEL + h * HEAD_DIM;
                const float pj = score[j] / sum;
                for (int d = 0; d < HEAD_DIM; d++)
                    out[d] += pj * v[d];
            }
        }
    }
    free(score);
}

/* Top-k of the router logits (ties to the lower index), softmax over the chosen k. */
static void route(const float *logits, int *ids, float *weight)
{
    int used[N_EXPERT] = {0};
    for (int s = 0; s < TOP_K; s++) {
        int best = -1;
        for (int e = 0; e < N_EXPERT; e++)
            if (!used[e] && (best < 0 || logits[e] > logits[best]))
                best = e;
        used[best] = 1;
        ids[s] = best;
    }
    float sum = 0.0f;
    for (int s = 0; s < TOP_K; s++) {
        weight[s] = expf(logits[ids[s]] - logits[ids[0]]);
        sum += weight[s];
    }
    for (int s = 0; s < TOP_K; s++)
        weight[s] /= sum;
}

static float silu(float v)
{
    return v / (1.0f + expf(-v));
}

/*
 * Rows [r0, r0 + m) of the block: x holds all rows of the input. Parallel residual
 * (out = x + attn(h) + moe(h), h = norm(x), as in GPT-J or Falcon): routing depends only on the
 * block input, so both runs pick the same experts and every difference is a kernel difference.
 */
static int forward(struct run *r, const float *x, int64_t r0, int64_t m)
{
    struct trace *tr = &r->tr;
    const struct model *mdl = r->mdl;
    const float *xr = x + r0 * D_MODEL;
    float *h = xmalloc(sizeof(float) * (size_t)(m * D_MODEL));
    float *act = xmalloc(sizeof(float) * (size_t)(m * TOP_K * D_FF));
    float *weight = xmalloc(sizeof(float) * (size_t)(m * TOP_K));
    int rc = 0;

    rms_norm(xr, (const float *)mdl->t[T_NORM].ggml, m, h);
    if ((rc = mul_mat(r, T_Q, h, m, tr->o[O_Q] + r0 * D_MODEL)) ||
        (rc = mul_mat(r, T_K, h, m, tr->o[O_K] + r0 * D_MODEL)) ||
        (rc = mul_mat(r, T_V, h, m, tr->o[O_V] + r0 * D_MODEL)))
        goto out;
    attention(tr, r0, m);
    if ((rc = mul_mat(r, T_O, tr->o[O_ATTN] + r0 * D_MODEL, m, tr->o[O_O] + r0 * D_MODEL)) ||
        (rc = mul_mat(r, T_ROUTER, h, m, tr->o[O_LOGITS] + r0 * N_EXPERT)))
        goto out;

    int *ids = tr->ids + r0 * TOP_K;
    for (int64_t i = 0; i < m; i++)
        route(tr->o[O_LOGITS] + (r0 + i) * N_EXPERT, ids + i * TOP_K, weight + i * TOP_K);

    float *gate = tr->o[O_GATE] + r0 * TOP_K * D_FF, *up = tr->o[O_UP] + r0 * TOP_K * D_FF;
    float *down = tr->o[O_DOWN] + r0 * TOP_K * D_MODEL;
    if ((rc = mul_mat_id(r, T_GATE, h, D_MODEL, 0, ids, m, gate)) ||
        (rc = mul_mat_id(r, T_UP, h, D_MODEL, 0, ids, m, up)))
        goto out;
    for (int64_t i = 0; i < m * TOP_K * D_FF; i++)
        act[i] = silu(gate[i]) * up[i];
    if ((rc = mul_mat_id(r, T_DOWN, act, TOP_K * D_FF, D_FF, ids, m, down)))
        goto out;

    for (int64_t i = 0; i < m; i++) {
        float *moe = tr->o[O_MOE] + (r0 + i) * D_MODEL, *y = tr->o[O_OUT] + (r0 + i) * D_MODEL;
        const float *o = tr->o[O_O] + (r0 + i) * D_MODEL;
        for (int j = 0; j < D_MODEL; j++) {
            float s = 0.0f;
            for (int e = 0; e < TOP_K; e++)
                s += weight[i * TOP_K + e] * down[(i * TOP_K + e) * D_MODEL + j];
            moe[j] = s;
            y[j] = xr[i * D_MODEL + j] + o[j] + s;
        }
    }
out:
    free(h);
    free(act);
    free(weight);
    return rc;
}

/* Run the block over `rows` rows of x: one row at a time (tokens), or all at once (prompt). */
static int run_block(struct run *r, const struct model *mdl, const struct plan *pl, int check,
                     const float *x, int64_t rows, int one_at_a_time)
{
    memset(r, 0, sizeof *r);
    r->mdl = mdl;
    r->plan = pl;
    r->check = check;
    trace_init(&r->tr, rows);
    if (!one_at_a_time)
        return forward(r, x, 0, rows);
    for (int64_t i = 0; i < rows; i++) {
        const int rc = forward(r, x, i, 1);
        if (rc)
            return rc;
    }
    return 0;
}

/* ---- Checks ---------------------------------------------------------------------------------- */

/* The converse guard: plain ggml bytes handed to amxq_matmul() must be refused, C untouched. */
static int converse_check(const struct tensor *t)
{
    float x[D_MODEL], y[D_MODEL];
    for (int j = 0; j < D_MODEL; j++)
        x[j] = rng_normal();
    for (int j = 0; j < D_MODEL; j++)
        y[j] = -12345.0f;
    const amxq_status st = amxq_matmul(t->ggml, x, 1, t->k, y, t->n);
    int untouched = 1;
    for (int j = 0; j < D_MODEL; j++)
        untouched &= y[j] == -12345.0f;
    printf("guard: plain ggml bytes of '%s' handed to amxq_matmul -> %s (\"%s\"), output %s\n",
           t->name, status_name(st), amxq_status_str(st), untouched ? "untouched" : "WRITTEN");
    if (st != AMXQ_ERR_BAD_PACKED || !untouched) {
        fprintf(stderr, "engine_shim: FAIL: amxq_matmul should refuse plain ggml bytes with "
                        "AMXQ_ERR_BAD_PACKED and leave C untouched\n");
        return EXIT_ACCURACY;
    }
    return 0;
}

/* amxq_unpack must give back the exact ggml bytes (an engine's get_tensor relies on it). */
static int unpack_check(const struct model *mdl, const struct plan *pl)
{
    int n = 0;
    for (int i = 0; i < T_COUNT; i++) {
        const struct placed *p = &pl->p[i];
        if (p->buf != BUF_AMXQ)
            continue;
        const struct tensor *t = &mdl->t[i];
        uint8_t *back = xmalloc(t->ggml_bytes);
        amxq_status st = AMXQ_OK;
        if (p->experts != NULL) { /* --moe=packed: expert by expert */
            const size_t eb = t->ggml_bytes / (size_t)t->n_exp;
            for (int64_t e = 0; e < t->n_exp && st == AMXQ_OK; e++)
                st = amxq_unpack(p->experts[e], back + (size_t)e * eb, eb);
        } else {
            st = amxq_unpack(p->data, back, t->ggml_bytes);
        }
        const int same = st == AMXQ_OK && memcmp(back, t->ggml, t->ggml_bytes) == 0;
        free(back);
        if (!same) {
            fprintf(stderr, "engine_shim: FAIL: amxq_unpack(%s): %s, bytes %s\n", t->name,
                    status_name(st), st == AMXQ_OK ? "differ" : "-");
            return EXIT_ACCURACY;
        }
        n++;
    }
    printf("load: amxq_unpack gives back the exact ggml bytes of all %d packed tensors\n", n);
    return 0;
}

/*
 * What the guard prevented, for the --misuse demonstration only: expert 0 of `t` computed from the
 * packed bytes read as if they were ggml blocks, next to the right answer. The reads stay inside
 * the packed buffer, which is larger than the ggml bytes it holds.
 */
static void show_misread(const struct tensor *t, const struct placed *p)
{
    if (p->buf != BUF_AMXQ || p->nbytes < t->ggml_bytes || t->k > D_FF)
        return;
    float x[D_FF];
    for (int64_t j = 0; j < t->k; j++)
        x[j] = rng_normal();
    struct qrow q;
    if (quantize_act(t->type, x, t->k, &q))
        return;
    const size_t rb = row_bytes(t->type, t->k);
    struct err e = {0};
    for (int64_t n = 0; n < t->n; n++) {
        const float bad = vec_dot(t->type, t->k, (const uint8_t *)p->data + n * rb, q.bytes);
        const float good = vec_dot(t->type, t->k, t->ggml + n * rb, q.bytes);
        err_add(&e, &bad, &good, 1);
    }
    printf("misuse: had '%s' been read unguarded, expert 0 would have given l2_rel error %.3g "
           "(max abs %.3g) and %ld of %lld outputs NaN/Inf: garbage\n",
           t->name, err_l2(&e), e.max_abs, e.nonfinite, (long long)t->n);
}

/* Compare two traces output by output; print a table; return nonzero on a failure. */
static int compare_traces(const char *label, const struct trace *got, const struct trace *ref,
                          int64_t rows)
{
    int bad = 0;
    if (!quiet)
        printf("  %-8s %-7s %-27s %11s %11s  %s\n", label, "output", "computed by", "max_abs",
               "l2_rel", "result");
    for (int i = 0; i < O_COUNT; i++) {
        struct err e = {0};
        err_add(&e, got->o[i], ref->o[i], (size_t)rows * (size_t)out_spec[i].width);
        const int ok = err_ok(&e, TOL_E2E);
        bad |= !ok;
        if (!quiet || !ok)
            printf("  %-8s %-7s %-27s %11.3e %11.3e  %s\n", label, out_spec[i].name,
                   out_spec[i].what, e.max_abs, err_l2(&e),
                   ok            ? "ok"
                   : e.nonfinite ? "FAIL (NaN/Inf)"
                                 : "FAIL");
    }
    long id_diff = 0;
    for (int64_t i = 0; i < rows * TOP_K; i++)
        id_diff += got->ids[i] != ref->ids[i];
    if (!quiet || id_diff)
        printf("  %-8s %-7s expert ids differ in %ld of %lld choices\n", label, "ids", id_diff,
               (long long)(rows * TOP_K));
    /* Routing depends only on the block input here (parallel residual), so any difference is a
     * bug, not a near tie. */
    return bad || id_diff ? EXIT_ACCURACY : 0;
}

static int report_op_checks(const char *label, const struct model *mdl, const struct run *r)
{
    int bad = 0;
    for (int i = 0; i < T_COUNT; i++) {
        const struct err *e = &r->op_err[i];
        if (e->count == 0)
            continue;
        const int ok = err_ok(e, TOL_OP);
        bad |= !ok;
        if (!quiet || !ok)
            printf("  %-8s %-14s %-5s %-14s %11.3e %11.3e  %s\n", label, mdl->t[i].name,
                   wtype_name(mdl->t[i].type), isa_str(r->op_isa[i]), e->max_abs, err_l2(e),
                   ok             ? "ok"
                   : e->nonfinite ? "FAIL (NaN/Inf)"
                                  : "FAIL");
    }
    return bad ? EXIT_ACCURACY : 0;
}

/* ---- Timing ---------------------------------------------------------------------------------- */

static int is_fast_isa(amxq_isa isa)
{
    return isa == AMXQ_ISA_AVX512 || isa == AMXQ_ISA_AMX;
}

/* Time amxq_matmul of a Q4_0 weight for M = 1 and M = 64. 4096 x 4096 where a real kernel runs;
 * the scalar reference and the emulators get a smaller shape so the demo stays short. */
static int timing(void)
{
    static const int64_t ms[2] = {1, 64};
    const amxq_type type = AMXQ_TYPE_Q4_0;
    printf("timing: amxq_matmul, %s weight, single thread (best of the repetitions)\n",
           amxq_type_name(type));
    for (int mi = 0; mi < 2; mi++) {
        const int64_t m = ms[mi];
        amxq_isa isa;
        amxq_status st = amxq_resolve_isa(AMXQ_ISA_AUTO, type, m, &isa);
        if (st != AMXQ_OK) {
            fprintf(stderr, "engine_shim: amxq_resolve_isa: %s (%s)\n", status_name(st),
                    amxq_status_str(st));
            return EXIT_ERROR;
        }
        const int big = is_fast_isa(isa) || (m == 1 && isa == AMXQ_ISA_SCALAR);
        const int64_t n = big ? 4096 : 1024, k = n;
        const size_t rb = row_bytes(W_Q4_0, k);
        uint8_t *ggml = xmalloc(rb * (size_t)n);
        float *row = xmalloc(sizeof(float) * (size_t)k);
        for (int64_t r = 0; r < n; r++) {
            for (int64_t j = 0; j < k; j++)
                row[j] = rng_normal() * 0.02f;
            quantize_row(W_Q4_0, row, k, ggml + (size_t)r * rb);
        }
        const size_t pbytes = amxq_packed_size(type, n, k);
        void *packed = xalloc_aligned(pbytes);
        memset(packed, 0, pbytes); /* page faults are not packing time */
        const double tp = now_s();
        st = amxq_pack(type, ggml, n, k, packed, pbytes);
        const double pack_s = now_s() - tp;
        float *x = xmalloc(sizeof(float) * (size_t)(m * k));
        float *c = xmalloc(sizeof(float) * (size_t)(m * n));
        for (int64_t j = 0; j < m * k; j++)
            x[j] = rng_normal();
        amxq_matmul_params params;
        memset(&params, 0, sizeof params);
        params.workspace_size = amxq_workspace_size(type, m, k);
        params.workspace = xalloc_aligned(params.workspace_size);
        double best = 1e30, total = 0.0;
        int reps = 0;
        if (st == AMXQ_OK) /* one warm-up call, then up to 10 timed calls within ~0.5 s */
            st = amxq_matmul_ex(packed, x, m, k, c, n, &params);
        while (st == AMXQ_OK && reps < 10 && (reps < 2 || total < 0.5)) {
            const double t0 = now_s();
            st = amxq_matmul_ex(packed, x, m, k, c, n, &params);
            const double dt = now_s() - t0;
            best = dt < best ? dt : best;
            total += dt;
            reps++;
        }
        int finite = 1;
        for (int64_t j = 0; j < m * n; j++)
            finite &= isfinite(c[j]) != 0;
        free(params.workspace);
        free(x);
        free(c);
        free(packed);
        free(ggml);
        free(row);
        if (st != AMXQ_OK || !finite) {
            fprintf(stderr, "engine_shim: timing M=%lld: %s%s\n", (long long)m, status_name(st),
                    finite ? "" : ", NaN/Inf in C");
            return st != AMXQ_OK ? EXIT_ERROR : EXIT_ACCURACY;
        }
        const double ops = 2.0 * (double)m * (double)n * (double)k;
        char bw[40] = "";
        if (m == 1) /* small M streams the weight: bandwidth is the figure that matters */
            snprintf(bw, sizeof bw, ", weights %.2f GB/s", (double)pbytes / best * 1e-9);
        printf("  M=%-3lld N=%-5lld K=%-5lld isa %-10s %9.3f ms  %8.2f GOP/s (%.4f TOPS)%s  "
               "[%d reps; pack %.0f MB/s of ggml]\n",
               (long long)m, (long long)n, (long long)k, isa_str(isa), best * 1e3,
               ops / best * 1e-9, ops / best * 1e-12, bw, reps,
               (double)(rb * (size_t)n) / pack_s * 1e-6);
        if (!big)
            printf("  (%s kernels here: shape reduced from 4096 x 4096 to keep the demo short)\n",
                   isa_str(isa));
    }
    return 0;
}

/* ---- main ------------------------------------------------------------------------------------ */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: engine_shim [--misuse] [--moe=unpacked|packed] [--seed N] [--tokens N] "
            "[--prompt M] [--quiet]\n"
            "  --misuse    pack the MUL_MAT_ID expert weights too (the known mistake) and show "
            "that the\n"
            "              engine's expert path refuses them; exits 2\n"
            "  --moe=packed  pack the MUL_MAT_ID experts one by one and run them with "
            "amxq_matmul_id;\n"
            "              --moe=unpacked (default) keeps them for the engine's expert loop\n"
            "  --seed N    seed of the random weights and inputs (default 1)\n"
            "  --tokens N  tokens generated one at a time, M = 1 (default 8, 1..%d)\n"
            "  --prompt M  rows of the prompt run (default 64, 1..%d)\n"
            "  --quiet     only the summary lines\n"
            "  --expect-refusal  exit 0 only if a guard refused a buffer (tests of --misuse)\n"
            "The process-wide kernel choice follows AMXQ_ISA (e.g. AMXQ_ISA=amx-emu).\n",
            MAX_ROWS, MAX_ROWS);
}

static int parse_int(const char *s, long long lo, long long hi, long long *out)
{
    char *end;
    if (s == NULL)
        return -1;
    const long long v = strtoll(s, &end, 10);
    if (*s == '\0' || *end != '\0' || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

int main(int argc, char **argv)
{
    int misuse = 0, expect_refusal = 0, moe_packed = 0;
    long long seed = 1, tokens = 8, prompt = 64;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--misuse") == 0)
            misuse = 1;
        else if (strcmp(a, "--moe=packed") == 0 || strcmp(a, "--moe=unpacked") == 0)
            moe_packed = strcmp(a, "--moe=packed") == 0;
        else if (strcmp(a, "--expect-refusal") == 0)
            expect_refusal = 1;
        else if (strcmp(a, "--quiet") == 0)
            quiet = 1;
        else if (strcmp(a, "--seed") == 0 && parse_int(argv[i + 1], 0, INT64_MAX, &seed) == 0)
            i++;
        else if (strcmp(a, "--tokens") == 0 && parse_int(argv[i + 1], 1, MAX_ROWS, &tokens) == 0)
            i++;
        else if (strcmp(a, "--prompt") == 0 && parse_int(argv[i + 1], 1, MAX_ROWS, &prompt) == 0)
            i++;
        else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        } else {
            const int valued = strcmp(a, "--seed") == 0 || strcmp(a, "--tokens") == 0 ||
                               strcmp(a, "--prompt") == 0;
            fprintf(stderr, "engine_shim: bad %s '%s'%s%s\n", valued ? "value for" : "argument", a,
                    valued ? ": " : "", valued ? (argv[i + 1] ? argv[i + 1] : "(none)") : "");
            usage(stderr);
            return EXIT_ERROR;
        }
    }
    rng_state = (uint64_t)seed;
    if (misuse && moe_packed) {
        fprintf(stderr, "engine_shim: --misuse and --moe=packed exclude each other\n");
        return EXIT_ERROR;
    }

    if (amxq_version_number() != AMXQ_VERSION_NUMBER) {
        fprintf(stderr, "engine_shim: header %s but library %s\n", AMXQ_VERSION_STRING,
                amxq_version_string());
        return EXIT_ERROR;
    }
    amxq_cpu_info ci;
    amxq_cpu_info_get(&ci);
    amxq_status choice_st;
    const amxq_isa choice = amxq_get_isa(&choice_st);
    printf("engine_shim: amxq %s on %s (%s)\n", amxq_version_string(),
           ci.brand[0] ? ci.brand : "unknown CPU", ci.vendor);
    if (choice_st != AMXQ_OK) {
        fprintf(stderr, "engine_shim: the kernel choice %s cannot run: %s (%s); unset AMXQ_ISA\n",
                isa_str(choice), status_name(choice_st), amxq_status_str(choice_st));
        return EXIT_ERROR;
    }
    amxq_isa isa1 = AMXQ_ISA_AUTO, isa64 = AMXQ_ISA_AUTO;
    amxq_resolve_isa(AMXQ_ISA_AUTO, AMXQ_TYPE_Q4_0, 1, &isa1);
    amxq_resolve_isa(AMXQ_ISA_AUTO, AMXQ_TYPE_Q4_0, 64, &isa64);
    printf("engine_shim: kernel choice %s; q4_0 products run on %s (M=1) and %s (M=64)\n",
           isa_str(choice), isa_str(isa1), isa_str(isa64));
    printf("engine_shim: seed %lld, %lld tokens (M=1), prompt M=%lld%s%s\n", seed, tokens, prompt,
           misuse ? ", --misuse" : "", moe_packed ? ", --moe=packed" : "");

    const double t_start = now_s();
    struct model mdl;
    model_init(&mdl);
    struct plan plan, ref_plan;
    memset(&plan, 0, sizeof plan);
    int rc = 0;
    for (int i = 0; i < T_COUNT && rc == 0; i++)
        rc = place_tensor(&mdl.t[i], misuse, moe_packed, &plan.p[i]);
    plan_reference(&mdl, &ref_plan);
    if (rc == 0) {
        print_placement(&mdl, &plan);
        rc = unpack_check(&mdl, &plan);
    }
    if (rc == 0)
        rc = converse_check(&mdl.t[T_Q]);

    /* One input for both modes: the token run sees the prompt's first rows, one at a time. */
    const int64_t rows = tokens > prompt ? tokens : prompt;
    float *x = xmalloc(sizeof(float) * (size_t)(rows * D_MODEL));
    for (int64_t i = 0; i < rows * D_MODEL; i++)
        x[i] = rng_normal();

    struct run *dep = xcalloc(2, sizeof(struct run)), *ref = xcalloc(2, sizeof(struct run));
    static const char *const mode_name[2] = {"tokens", "prompt"};
    const int64_t mode_rows[2] = {tokens, prompt};
    int fail = 0;
    for (int md = 0; md < 2 && rc == 0; md++) {
        rc = run_block(&dep[md], &mdl, &plan, 1, x, mode_rows[md], md == 0);
        if (rc == 0)
            rc = run_block(&ref[md], &mdl, &ref_plan, 0, x, mode_rows[md], md == 0);
    }
    if (rc == 0) {
        printf("check: each amxq product vs the shim's scalar product of the same input "
               "(tolerance l2_rel %.0e)\n",
               TOL_OP);
        if (!quiet)
            printf("  %-8s %-14s %-5s %-14s %11s %11s  %s\n", "mode", "tensor", "type", "isa",
                   "max_abs", "l2_rel", "result");
        for (int md = 0; md < 2; md++)
            fail |= report_op_checks(mode_name[md], &mdl, &dep[md]);
        printf("check: deployed run (amxq for MUL_MAT%s) vs all-unpacked run (tolerance l2_rel "
               "%.0e, no NaN/Inf)\n",
               moe_packed ? " and MUL_MAT_ID" : "", TOL_E2E);
        for (int md = 0; md < 2; md++)
            fail |= compare_traces(mode_name[md], &dep[md].tr, &ref[md].tr, mode_rows[md]);
        /* The token run (KV cache, M=1) must match the prompt run's first rows. */
        const int64_t common = tokens < prompt ? tokens : prompt;
        printf("check: token run (M=1, KV cache) vs prompt run, first %lld rows\n",
               (long long)common);
        fail |= compare_traces("tok/prm", &dep[0].tr, &dep[1].tr, common);
        printf("check: %s\n", fail ? "FAILED" : "all outputs within tolerance, no NaN/Inf");
        printf("block: %.2f s for load, both modes, both runs and the checks\n", now_s() - t_start);
        if (moe_packed)
            for (int md = 0; md < 2; md++)
                printf("moe: %s, MUL_MAT_ID gate+up+down: packed (amxq_matmul_id) %.3f ms, "
                       "unpacked (engine expert loop) %.3f ms\n",
                       mode_name[md], dep[md].moe_s * 1e3, ref[md].moe_s * 1e3);
    }
    if (rc == EXIT_REFUSED && misuse)
        for (int i = 0; i < T_COUNT; i++)
            if (mdl.t[i].op == OP_MUL_MAT_ID && plan.p[i].buf == BUF_AMXQ) {
                show_misread(&mdl.t[i], &plan.p[i]);
                break;
            }
    for (int md = 0; md < 2; md++) {
        if (dep[md].tr.o[0])
            trace_free(&dep[md].tr);
        if (ref[md].tr.o[0])
            trace_free(&ref[md].tr);
    }
    free(dep);
    free(ref);
    free(x);
    plan_free(&plan);
    model_free(&mdl);

    if (rc == 0 && !fail)
        rc = timing();
    rc = rc ? rc : fail ? EXIT_ACCURACY : 0;
    fflush(stdout);
    if (expect_refusal) { /* for the test: only the guard's refusal counts as the right failure */
        fprintf(stderr, "engine_shim: --expect-refusal: %s (exit %d)\n",
                rc == EXIT_REFUSED ? "a guard refused, as expected" : "NO guard refusal", rc);
        return rc == EXIT_REFUSED ? 0 : EXIT_ACCURACY;
    }
    if (rc == EXIT_REFUSED)
        fprintf(stderr, "engine_shim: exit %d: a buffer was refused by a guard\n", rc);
    return rc;
}
