/*
 * Reference activation quantization: f32 rows into Q8_0, Q8_1 and Q8_K exactly as ggml's x86 CPU
 * path writes them (ggml d99724f, the AVX2 code for Q8_0/Q8_1, quantize_row_q8_K_ref for Q8_K;
 * checked byte for byte against tests/data/ggml-golden). Two front ends share one block quantizer
 * per type, so the ggml-block rows and the kernel workspace (struct amxq_qx) can never disagree.
 *
 * Every step is written out in scalar C, including what the vector instructions do with NaN and
 * Inf (maxps picks its second operand when either is NaN; cvtps2dq turns NaN and out-of-range
 * values into INT32_MIN, which the saturating packs then clamp to -128), so that special inputs
 * give ggml's bytes and never undefined behaviour: no float is ever cast to an integer type it
 * might not fit. Multiplications and additions are separate statements so that no compiler may
 * fuse them into an FMA (ggml rounds each step).
 */
#include <string.h>

#include "ref/fp16.h"
#include "ref/ref.h"

_Static_assert(sizeof(amxq_block_q8_0) == 34, "ggml block_q8_0 is 34 bytes");
_Static_assert(sizeof(amxq_block_q8_1) == 36, "ggml block_q8_1 is 36 bytes");
_Static_assert(sizeof(amxq_block_q8_k) == 292, "ggml block_q8_K is 292 bytes");

/* |f| by clearing the sign bit, as ggml's andnot with -0.0f does (NaN keeps its payload). */
static float abs_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    u &= 0x7fffffffu;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* maxps / maxss: the first operand if it is greater, else the second (also when either is NaN). */
static float maxps(float a, float b)
{
    return a > b ? a : b;
}

/* roundps with _MM_ROUND_NEAREST: to nearest, ties to even. Values of 2^23 and above are already
 * integers, NaN and Inf pass through. Relies on the default rounding mode, as C code does. */
static float round_nearest_even(float v)
{
    float a = abs_bits(v);
    if (!(a < 8388608.0f))
        return v;
    float r = a + 8388608.0f; /* the add rounds to an integer, ties to even */
    r = r - 8388608.0f;
    return v < 0 ? -r : r;
}

/* cvtps2dq on an integral value: INT32_MIN ("integer indefinite") for NaN and out of range. */
static int32_t cvtps2dq(float v)
{
    if (v >= -2147483648.0f && v < 2147483648.0f)
        return (int32_t)v;
    return INT32_MIN;
}

/* packssdw then packsswb: signed saturation to int8. */
static int8_t sat_i8(int32_t v)
{
    return (int8_t)(v < -128 ? -128 : v > 127 ? 127 : v);
}

/* One block of 32, both Q8_0 and Q8_1 fields. */
struct q8_32 {
    int8_t qs[32];
    uint16_t d;  /* fp16(amax / 127) */
    uint16_t s;  /* Q8_1: fp16(d_f32 * sum of the unsaturated int32 values) */
    int16_t sum; /* sum of qs as stored */
};

static void quantize_block_32(const float *x, struct q8_32 *b)
{
    /* max |x| in the order of ggml's AVX code: 4 vectors of 8 folded lane-wise, then the two
     * 128-bit halves (high first), then movehl, then movehdup. */
    float lane[8];
    for (int l = 0; l < 8; l++) {
        lane[l] = abs_bits(x[l]);
        for (int v = 1; v < 4; v++)
            lane[l] = maxps(lane[l], abs_bits(x[8 * v + l]));
    }
    float m4[4];
    for (int i = 0; i < 4; i++)
        m4[i] = maxps(lane[4 + i], lane[i]);
    m4[0] = maxps(m4[0], m4[2]);
    m4[1] = maxps(m4[1], m4[3]);
    const float amax = maxps(m4[0], m4[1]);

    const float d = amax / 127.0f;
    const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
    uint32_t wsum = 0; /* vpaddd wraps: sum in unsigned arithmetic */
    int sum = 0;
    for (int j = 0; j < 32; j++) {
        const float v = x[j] * id;
        const int32_t i = cvtps2dq(round_nearest_even(v));
        wsum += (uint32_t)i;
        b->qs[j] = sat_i8(i);
        sum += b->qs[j];
    }
    int32_t isum;
    memcpy(&isum, &wsum, sizeof isum); /* two's complement reinterpretation, as the vector does */
    const float fs = (float)isum;
    b->d = amxq_fp32_to_fp16(d);
    b->s = amxq_fp32_to_fp16(d * fs);
    b->sum = (int16_t)sum; /* |sum| <= 32 * 128 */
}

/* ggml's nearest_int: round to nearest even through the 1.5 * 2^23 magic add, reading the bits
 * (exact for |f| <= 2^22; NaN and Inf give ggml's garbage, not undefined behaviour). */
static int32_t nearest_int(float f)
{
    const float v = f + 12582912.0f;
    int32_t i;
    memcpy(&i, &v, sizeof i);
    return (i & 0x007fffff) - 0x00400000;
}

/* One super-block of 256 as quantize_row_q8_K_ref does it. */
static void quantize_block_256(const float *x, amxq_block_q8_k *b)
{
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < AMXQ_QK_K; j++) {
        const float ax = abs_bits(x[j]);
        if (ax > amax) { /* strict: the first of equal magnitudes wins; NaN never does */
            amax = ax;
            max = x[j];
        }
    }
    if (amax == 0.0f) {
        /* ggml leaves bsums unwritten here; zero is what they mean */
        memset(b, 0, sizeof *b);
        return;
    }
    const float iscale = -127.0f / max;
    for (int j = 0; j < AMXQ_QK_K; j++) {
        const float v = iscale * x[j];
        int32_t q = nearest_int(v);
        if (q > 127)
            q = 127;
        /* ggml stores the int into int8_t, which wraps on gcc/clang; only NaN/Inf reach here
         * out of range. Wrap explicitly. */
        const uint8_t byte = (uint8_t)((uint32_t)q & 0xffu);
        memcpy(&b->qs[j], &byte, 1);
    }
    for (int j = 0; j < AMXQ_QK_K / 16; j++) {
        int sum = 0;
        for (int i = 0; i < 16; i++)
            sum += b->qs[16 * j + i];
        b->bsums[j] = (int16_t)sum; /* |sum| <= 16 * 128 */
    }
    b->d = 1.0f / iscale;
}

/* ---- ggml-block rows ------------------------------------------------------------------------ */

void amxq_quantize_row_q8_0_ggml(const float *x, int64_t k, void *blocks)
{
    uint8_t *out = (uint8_t *)blocks;
    for (int64_t i = 0; i < k / AMXQ_QK; i++) {
        struct q8_32 b;
        quantize_block_32(x + i * AMXQ_QK, &b);
        amxq_block_q8_0 g;
        g.d = b.d;
        memcpy(g.qs, b.qs, sizeof g.qs);
        memcpy(out + (size_t)i * sizeof g, &g, sizeof g);
    }
}

void amxq_quantize_row_q8_1_ggml(const float *x, int64_t k, void *blocks)
{
    uint8_t *out = (uint8_t *)blocks;
    for (int64_t i = 0; i < k / AMXQ_QK; i++) {
        struct q8_32 b;
        quantize_block_32(x + i * AMXQ_QK, &b);
        amxq_block_q8_1 g;
        g.d = b.d;
        g.s = b.s;
        memcpy(g.qs, b.qs, sizeof g.qs);
        memcpy(out + (size_t)i * sizeof g, &g, sizeof g);
    }
}

void amxq_quantize_row_q8_k_ggml(const float *x, int64_t k, void *blocks)
{
    uint8_t *out = (uint8_t *)blocks;
    for (int64_t i = 0; i < k / AMXQ_QK_K; i++) {
        amxq_block_q8_k g;
        quantize_block_256(x + i * AMXQ_QK_K, &g);
        memcpy(out + (size_t)i * sizeof g, &g, sizeof g);
    }
}

/* ---- The kernel workspace ------------------------------------------------------------------- */

/* Q8_0 and Q8_1 differ only in whether `s` is kept. Padding past k in each row is not written. */
static void quantize_ws_32(const float *x, int64_t ldx, int64_t m0, int64_t m1, const amxq_qx *qx)
{
    const int64_t nb = qx->k / AMXQ_QK;
    for (int64_t m = m0; m < m1; m++) {
        const float *xr = x + m * ldx;
        int8_t *qs = qx->qs + m * qx->ld_qs;
        float *d = qx->d + m * qx->ld_d;
        float *s = qx->s ? qx->s + m * qx->ld_d : NULL;
        int16_t *sums = qx->sums + m * qx->ld_sums;
        for (int64_t i = 0; i < nb; i++) {
            struct q8_32 b;
            quantize_block_32(xr + i * AMXQ_QK, &b);
            memcpy(qs + i * AMXQ_QK, b.qs, AMXQ_QK);
            d[i] = amxq_fp16_to_fp32(b.d);
            if (s)
                s[i] = amxq_fp16_to_fp32(b.s);
            sums[i] = b.sum;
        }
    }
}

AMXQ_DECL_QUANTIZE_FN(amxq_quantize_q8_0_ref)
{
    quantize_ws_32(x, ldx, m0, m1, qx);
}

AMXQ_DECL_QUANTIZE_FN(amxq_quantize_q8_1_ref)
{
    quantize_ws_32(x, ldx, m0, m1, qx);
}

AMXQ_DECL_QUANTIZE_FN(amxq_quantize_q8_k_ref)
{
    const int64_t nb = qx->k / AMXQ_QK_K;
    for (int64_t m = m0; m < m1; m++) {
        const float *xr = x + m * ldx;
        for (int64_t i = 0; i < nb; i++) {
            amxq_block_q8_k b;
            quantize_block_256(xr + i * AMXQ_QK_K, &b);
            memcpy(qx->qs + m * qx->ld_qs + i * AMXQ_QK_K, b.qs, AMXQ_QK_K);
            qx->d[m * qx->ld_d + i] = b.d;
            memcpy(qx->sums + m * qx->ld_sums + i * 16, b.bsums, sizeof b.bsums);
        }
    }
}
