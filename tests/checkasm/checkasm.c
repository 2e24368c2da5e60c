/*
 * checkasm driver: builds seeded test cases (ggml weights packed with amxq_pack, f32 activations,
 * and the reference's quantized activations and product), then runs every kernel family of every
 * concrete ISA whose kernel table exists here against them (quantize.c, gemm.c).
 *
 *   checkasm [--seed N | --random-seed] [--isa NAME] [--type NAME] [--verbose] [--selftest]
 *
 * --selftest runs the checks on deliberately broken kernels instead and fails unless every
 * breakage is caught: proof that the driver can fail.
 *
 * The default seed is fixed so that `meson test` is reproducible; --random-seed draws one from the
 * clock (printed, like every seed).
 * The reference is computed once per case and reused for every ISA. A case's data depends only on
 * the global seed and the case's index, so any failure replays with the printed --seed.
 * Exit status: 0 all passed, 1 a failure, 2 bad usage.
 */
#define _POSIX_C_SOURCE 200809L

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ref/fp16.h"
#include "ref/ref.h"
#include "tests/checkasm/checkasm.h"

/* ---- Guarded buffers and reporting ---------------------------------------------------------- */

ca_buf ca_buf_new(size_t size)
{
    ca_buf b;
    const size_t total = AMXQ_ROUND_UP(size, 64) + 2 * CA_GUARD;
    b.base = aligned_alloc(64, total);
    if (!b.base) {
        fprintf(stderr, "checkasm: out of memory (%zu bytes)\n", total);
        exit(2);
    }
    memset(b.base, CA_CANARY, total);
    b.p = b.base + CA_GUARD;
    b.size = size;
    return b;
}

void ca_buf_free(ca_buf *b)
{
    free(b->base);
    b->base = b->p = NULL;
}

ptrdiff_t ca_buf_guard(const ca_buf *b, int *bad)
{
    *bad = 1;
    for (size_t i = 0; i < CA_GUARD; i++)
        if (b->base[i] != CA_CANARY)
            return (ptrdiff_t)i - CA_GUARD;
    for (size_t i = 0; i < CA_GUARD; i++)
        if (b->p[b->size + i] != CA_CANARY)
            return (ptrdiff_t)(b->size + i);
    *bad = 0;
    return 0;
}

static uint64_t g_seed;

void ca_fail(struct ca_ctx *ctx, const struct ca_case *cs, const char *kernel, const char *fmt, ...)
{
    ctx->failures++;
    if (ctx->quiet || (ctx->failures > 50 && !ctx->verbose))
        return; /* enough to act on */
    printf("FAIL %s %s [case %d: %s M=%lld N=%lld K=%lld ldx=%lld ldc=%lld %s, --seed %llu]: ",
           ctx->isa_name, kernel, cs->index, amxq_type_name(cs->type), (long long)cs->m,
           (long long)cs->n, (long long)cs->k, (long long)cs->ldx, (long long)cs->ldc,
           ca_class_name(cs->cls), (unsigned long long)g_seed);
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    fflush(stdout);
}

const char *ca_class_name(enum ca_class cls)
{
    static const char *const names[CA_NCLASSES] = {"normal", "zero", "extreme", "outlier",
                                                   "special"};
    return (unsigned)cls < CA_NCLASSES ? names[cls] : "?";
}

/* ---- Seeded data ---------------------------------------------------------------------------- */

/* splitmix64: one generator per case, seeded from (global seed, case index). */
static uint64_t rnd(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint32_t rnd_below(uint64_t *s, uint32_t n)
{
    return (uint32_t)((rnd(s) >> 32) % n);
}

/* Uniform in [-1, 1). */
static float rnd_f(uint64_t *s)
{
    return (float)((double)(rnd(s) >> 11) * (2.0 / 9007199254740992.0) - 1.0);
}

static float bits_f(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* An fp16 scale for weights: magnitude around `base`, random sign, with the class's specials. */
static uint16_t weight_scale(uint64_t *s, enum ca_class cls, float base)
{
    const uint32_t r = rnd_below(s, 100);
    if (cls == CA_EXTREME) {
        static const uint16_t ends[] = {0x7bff, 0xfbff, 0x7800, 0x0001, 0x83ff, 0x0400, 0x8001};
        if (r < 60)
            return ends[rnd_below(s, sizeof ends / sizeof ends[0])];
    }
    if (cls == CA_ZERO && r < 50)
        return r < 45 ? 0x0000 : 0x8000;
    if (r < 3)
        return 0; /* zero scale */
    if (r < 4)
        return (uint16_t)(1 + rnd_below(s, 0x3ff)); /* subnormal */
    float d = base * (0.5f + 0.5f * fabsf(rnd_f(s)));
    if (r < 6)
        d *= 8;
    if (rnd(s) & 1)
        d = -d;
    return amxq_fp32_to_fp16(d);
}

/* Every weight type, in the kernel tables' order (a case's index, and so its data, follows it). */
static const amxq_type ca_types[AMXQ_NTYPES] = {
#define CA_X_TYPE(T, name, qk, bytes, act) AMXQ_TYPE_##T,
    AMXQ_FOREACH_TYPE(CA_X_TYPE)
#undef CA_X_TYPE
};

/* The quant bytes of one block are random; some blocks hold only the type's zero value. */
static void gen_block(uint64_t *s, amxq_type type, enum ca_class cls, float row_scale, uint8_t *blk)
{
    const uint32_t r = rnd_below(s, 100);
    const int zero_quants = r < 3 || (cls == CA_ZERO && r < 40);
    switch (type) {
    case AMXQ_TYPE_Q4_0: {
        amxq_block_q4_0 b;
        b.d = weight_scale(s, cls, 0.003f * row_scale);
        for (int i = 0; i < 16; i++)
            b.qs[i] = zero_quants ? 0x88 : (uint8_t)rnd(s);
        memcpy(blk, &b, sizeof b);
        break;
    }
    case AMXQ_TYPE_Q4_1: {
        amxq_block_q4_1 b;
        b.d = weight_scale(s, cls, 0.003f * row_scale);
        b.m = weight_scale(s, cls, 0.024f * row_scale);
        for (int i = 0; i < 16; i++)
            b.qs[i] = zero_quants ? 0x00 : (uint8_t)rnd(s);
        memcpy(blk, &b, sizeof b);
        break;
    }
    case AMXQ_TYPE_Q5_0: { /* 5-bit value 16 is the zero weight: nibble 0 with its qh bit set */
        amxq_block_q5_0 b;
        b.d = weight_scale(s, cls, 0.0015f * row_scale);
        for (int i = 0; i < 4; i++)
            b.qh[i] = zero_quants ? 0xff : (uint8_t)rnd(s);
        for (int i = 0; i < 16; i++)
            b.qs[i] = zero_quants ? 0x00 : (uint8_t)rnd(s);
        memcpy(blk, &b, sizeof b);
        break;
    }
    case AMXQ_TYPE_Q5_1: { /* 5-bit value 0 (nibble 0, qh bit clear) is the zero weight */
        amxq_block_q5_1 b;
        b.d = weight_scale(s, cls, 0.0015f * row_scale);
        b.m = weight_scale(s, cls, 0.024f * row_scale);
        for (int i = 0; i < 4; i++)
            b.qh[i] = zero_quants ? 0x00 : (uint8_t)rnd(s);
        for (int i = 0; i < 16; i++)
            b.qs[i] = zero_quants ? 0x00 : (uint8_t)rnd(s);
        memcpy(blk, &b, sizeof b);
        break;
    }
    case AMXQ_TYPE_IQ4_NL: { /* Q4_0's bytes; nibble 8 is level 1, the smallest */
        amxq_block_q4_0 b;
        b.d = weight_scale(s, cls, 0.0002f * row_scale);
        for (int i = 0; i < 16; i++)
            b.qs[i] = zero_quants ? 0x88 : (uint8_t)rnd(s);
        memcpy(blk, &b, sizeof b);
        break;
    }
    case AMXQ_TYPE_Q8_0: {
        amxq_block_q8_0 b;
        b.d = weight_scale(s, cls, 0.0002f * row_scale);
        for (int i = 0; i < 32; i++) {
            /* the full int8 range: -128 is legal in the format even if ggml never writes it */
            const uint8_t u = zero_quants ? 0 : (uint8_t)rnd(s);
            memcpy(&b.qs[i], &u, 1);
        }
        memcpy(blk, &b, sizeof b);
        break;
    }
    case AMXQ_TYPE_Q6_K: {
        amxq_block_q6_k b;
        b.d = weight_scale(s, cls, 0.0004f * row_scale);
        for (int i = 0; i < 16; i++) {
            const uint8_t u = (uint8_t)rnd(s); /* every int8 scale, -128 included */
            memcpy(&b.scales[i], &u, 1);
        }
        /* 6-bit value 32 is the zero weight: ql nibbles 0, qh bit pairs 10 */
        for (int i = 0; i < 128; i++)
            b.ql[i] = zero_quants ? 0 : (uint8_t)rnd(s);
        for (int i = 0; i < 64; i++)
            b.qh[i] = zero_quants ? 0xaa : (uint8_t)rnd(s);
        memcpy(blk, &b, sizeof b);
        break;
    }
    case AMXQ_TYPE_Q5_K: { /* Q4_K's fields, then 32 bytes qh before the 128 qs */
        amxq_block_q4_k b;
        b.d = weight_scale(s, cls, 0.00025f * row_scale);
        b.dmin = weight_scale(s, cls, 0.0003f * row_scale);
        for (int i = 0; i < 12; i++)
            b.scales[i] = (uint8_t)rnd(s);
        memcpy(blk, &b, 16);
        for (int i = 16; i < 176; i++)
            blk[i] = zero_quants ? 0 : (uint8_t)rnd(s);
        break;
    }
    case AMXQ_TYPE_IQ4_XS: { /* d, 6 bytes of 6-bit scales (every pattern valid), 128 qs */
        const uint16_t d = weight_scale(s, cls, 0.00001f * row_scale);
        memcpy(blk, &d, 2);
        for (int i = 2; i < 8; i++)
            blk[i] = (uint8_t)rnd(s);
        for (int i = 8; i < 136; i++)
            blk[i] = zero_quants ? 0x88 : (uint8_t)rnd(s); /* nibble 8: level 1, the smallest */
        break;
    }
    case AMXQ_TYPE_Q4_K:
    default: {
        amxq_block_q4_k b;
        b.d = weight_scale(s, cls, 0.0005f * row_scale);
        b.dmin = weight_scale(s, cls, 0.0003f * row_scale);
        for (int i = 0; i < 12; i++)
            b.scales[i] = (uint8_t)rnd(s); /* every byte pattern is a valid 6-bit set */
        for (int i = 0; i < 128; i++)
            b.qs[i] = zero_quants ? 0 : (uint8_t)rnd(s);
        memcpy(blk, &b, sizeof b);
        break;
    }
    }
}

static void gen_weights(uint64_t *s, const struct ca_case *cs, uint8_t *ggml)
{
    const int64_t qk = amxq_type_block(cs->type);
    const size_t bb = amxq_type_block_bytes(cs->type);
    const int64_t nb = cs->k / qk;
    for (int64_t n = 0; n < cs->n; n++) {
        float row_scale = 1.0f;
        if (n % 7 == 3)
            row_scale = 8.0f;
        else if (n % 7 == 5)
            row_scale = 0.05f;
        if (cs->cls == CA_OUTLIER && n % 16 == 9)
            row_scale = 64.0f;
        for (int64_t b = 0; b < nb; b++) {
            uint8_t *blk = ggml + (size_t)(n * nb + b) * bb;
            gen_block(s, cs->type, cs->cls, row_scale, blk);
            /* golden-like: some rows start with a block of zeros; CA_ZERO has whole zero rows */
            if ((b == 0 && n % 5 == 2) || (cs->cls == CA_ZERO && n % 3 == 0))
                memset(blk, 0, bb);
        }
    }
}

/* Quantizer corner cases, one pattern per row (CA_SPECIAL). */
static void gen_special_row(uint64_t *s, float *x, int64_t k, int64_t row)
{
    const float nan = bits_f(0x7fc00000u), inf = bits_f(0x7f800000u);
    for (int64_t j = 0; j < k; j++) {
        float v = rnd_f(s);
        switch (row % 9) {
        case 0: /* amax 127 in every block: scale 1 (d = 1, Q8_K iscale = -1), x.5 ties */
            v = (float)(int)rnd_below(s, 127) + 0.5f;
            if (j % 32 == 0)
                v = 127.0f;
            if (rnd(s) & 1)
                v = -v;
            break;
        case 1:
            if (rnd_below(s, 16) == 0)
                v = (rnd(s) & 1) ? nan : -nan;
            break;
        case 2:
            if (rnd_below(s, 16) == 0)
                v = (rnd(s) & 1) ? inf : -inf;
            break;
        case 3: /* subnormal: 127 / amax overflows to Inf */
            v = bits_f((uint32_t)rnd_below(s, 0x7fffff) | ((rnd(s) & 1) ? 0x80000000u : 0));
            break;
        case 4: /* equal magnitudes of both signs: which one sets Q8_K's sign */
            v = (rnd(s) & 1) ? 3.0f : -3.0f;
            break;
        case 5: /* huge: fp16 scale overflows */
            v *= 3.0e38f;
            break;
        case 6:
            v = (rnd(s) & 1) ? 0.0f : -0.0f;
            if (j % 97 == 13)
                v = 1e-30f;
            break;
        case 7: /* tiny normal values: fp16 scale underflows */
            v *= 1e-30f;
            break;
        default:
            break;
        }
        x[j] = v;
    }
}

static void gen_activations(uint64_t *s, const struct ca_case *cs)
{
    static const float row_scales[] = {1.0f, 0.1f, 10.0f, 1.0f, 3.0f};
    for (int64_t m = 0; m < cs->m; m++) {
        float *xr = cs->x + m * cs->ldx;
        if (cs->cls == CA_SPECIAL) {
            gen_special_row(s, xr, cs->k, m);
            continue;
        }
        float scale = row_scales[m % 5];
        if (cs->cls == CA_EXTREME)
            scale = m % 3 == 0 ? 1e-3f : m % 3 == 1 ? 50.0f : 1.0f;
        for (int64_t j = 0; j < cs->k; j++)
            xr[j] = scale * rnd_f(s);
        for (int64_t b = 0; b < cs->k / 32; b++)
            if (rnd_below(s, 50) == 0 || (cs->cls == CA_ZERO && rnd_below(s, 2) == 0))
                memset(xr + 32 * b, 0, 32 * sizeof(float));
        if (m % 13 == 7 || (cs->cls == CA_ZERO && m % 2 == 0))
            memset(xr, 0, (size_t)cs->k * sizeof(float));
        if (m % 5 == 4 || cs->cls == CA_OUTLIER)
            xr[rnd_below(s, (uint32_t)cs->k)] = cs->cls == CA_OUTLIER ? 1000.0f : 40.0f;
    }
    /* the stride gap holds NaN: a kernel that reads it poisons its result */
    for (int64_t m = 0; m < cs->m; m++)
        for (int64_t j = cs->k; j < cs->ldx; j++)
            cs->x[m * cs->ldx + j] = bits_f(0x7fc0dead);
}

static const struct amxq_type_kernels *ref_kernels(int ti)
{
    static struct amxq_kernels ref;
    static int ready;
    if (!ready) {
        amxq_kernels_init_ref(&ref);
        ready = 1;
    }
    return &ref.t[ti];
}

/* Build the inputs and the reference's answers of a case; 0 on success. */
static int case_build(struct ca_case *cs)
{
    uint64_t s = g_seed ^ (0x5851f42d4c957f2dull * (uint64_t)(cs->index + 1));
    cs->seed = s;
    rnd(&s);
    cs->ti = amxq_type_index(cs->type);
    cs->ldx = cs->k + (cs->index % 3 == 0 ? 0 : 5 + cs->index % 11);
    cs->ldc = cs->n + 1 + cs->index % 7;
    cs->x = malloc(sizeof(float) * (size_t)(cs->m * cs->ldx));
    if (!cs->x)
        return -1;
    gen_activations(&s, cs);
    cs->x_copy = malloc(sizeof(float) * (size_t)(cs->m * cs->ldx));
    if (!cs->x_copy)
        return -1;
    memcpy(cs->x_copy, cs->x, sizeof(float) * (size_t)(cs->m * cs->ldx));

    cs->ws_size = amxq_qx_size(cs->type, cs->m, cs->k);
    cs->ws_ref = aligned_alloc(64, cs->ws_size);
    if (!cs->ws_ref)
        return -1;
    memset(cs->ws_ref, CA_CANARY, cs->ws_size);
    amxq_qx_layout(&cs->qx_ref, cs->type, cs->m, cs->k, cs->ws_ref);
    const struct amxq_type_kernels *rk = ref_kernels(cs->ti);
    rk->quantize(cs->x, cs->ldx, 0, cs->m, &cs->qx_ref);
    if (cs->cls == CA_SPECIAL)
        return 0;

    const size_t gsize = amxq_ggml_size(cs->type, cs->n, cs->k);
    uint8_t *ggml = malloc(gsize);
    cs->packed_size = amxq_packed_size(cs->type, cs->n, cs->k);
    cs->packed = aligned_alloc(AMXQ_ALIGNMENT, cs->packed_size);
    cs->packed_copy = malloc(cs->packed_size);
    cs->c_ref = malloc(sizeof(float) * (size_t)(cs->m * cs->n));
    if (!ggml || !cs->packed || !cs->packed_copy || !cs->c_ref) {
        free(ggml);
        return -1;
    }
    gen_weights(&s, cs, ggml);
    amxq_status st = amxq_pack(cs->type, ggml, cs->n, cs->k, cs->packed, cs->packed_size);
    free(ggml);
    if (st != AMXQ_OK || amxq_layout_read(&cs->lo, cs->packed, cs->packed_size) != AMXQ_OK) {
        printf("FAIL case %d: amxq_pack: %s\n", cs->index, amxq_status_str(st));
        return -1;
    }
    memcpy(cs->packed_copy, cs->packed, cs->packed_size);
    rk->gemm(&cs->lo, cs->packed, &cs->qx_ref, 0, cs->m, 0, cs->lo.n_panels, cs->c_ref, cs->n);
    return 0;
}

static void case_free(struct ca_case *cs)
{
    free(cs->x);
    free(cs->x_copy);
    free(cs->ws_ref);
    free(cs->packed);
    free(cs->packed_copy);
    free(cs->c_ref);
}

/* ---- The case grid -------------------------------------------------------------------------- */

/* K classes, resolved per type: the smallest K, 256, 1024 and 4096. */
enum { K_MIN, K_256, K_1024, K_4096 };

struct shape {
    int64_t m, n;
    int kc;
    enum ca_class cls;
};

static int64_t k_of(int kc, amxq_type type)
{
    static const int64_t ks[] = {0, 256, 1024, 4096};
    return kc == K_MIN ? amxq_type_block(type) : ks[kc];
}

/* Every M, every N, every K class, each class of data; large N and K only where M is small, so a
 * run stays within about a minute per emulated ISA under sanitizers on a small machine. */
static size_t make_grid(struct shape *g, size_t cap)
{
    static const int64_t ms[] = {1, 2, 15, 16, 17, 31, 64, 100, 257};
    static const int64_t ns[] = {1, 17, 48, 100};
    size_t c = 0;
#define ADD(M, N, KC, CLS)                                                                         \
    do {                                                                                           \
        if (c < cap)                                                                               \
            g[c++] = (struct shape){(M), (N), (KC), (CLS)};                                        \
    } while (0)
    for (size_t i = 0; i < sizeof ms / sizeof ms[0]; i++)
        for (size_t j = 0; j < sizeof ns / sizeof ns[0]; j++) {
            ADD(ms[i], ns[j], K_MIN, CA_NORMAL);
            ADD(ms[i], ns[j], K_1024, CA_NORMAL);
        }
    static const int64_t m16[] = {1, 16, 17, 64};
    for (size_t i = 0; i < 4; i++) {
        ADD(m16[i], 16, K_256, CA_NORMAL);
        ADD(m16[i], 16, K_4096, CA_NORMAL);
    }
    ADD(1, 4096, K_MIN, CA_NORMAL);
    ADD(2, 4096, K_256, CA_NORMAL);
    ADD(17, 4096, K_MIN, CA_NORMAL);
    ADD(1, 4096, K_4096, CA_NORMAL);
    static const int64_t mk[] = {1, 15, 31};
    for (size_t i = 0; i < 3; i++) {
        ADD(mk[i], 17, K_4096, CA_NORMAL);
        ADD(mk[i], 48, K_4096, CA_NORMAL);
    }
    for (int cls = CA_ZERO; cls <= CA_OUTLIER; cls++) {
        ADD(17, 48, K_1024, (enum ca_class)cls);
        ADD(64, 100, K_256, (enum ca_class)cls);
        ADD(1, 17, K_256, (enum ca_class)cls);
        ADD(257, 17, K_MIN, (enum ca_class)cls);
    }
    ADD(1, 1, K_1024, CA_SPECIAL);
    ADD(18, 1, K_4096, CA_SPECIAL);
    ADD(100, 1, K_MIN, CA_SPECIAL);
#undef ADD
    return c;
}

/* ---- Self test: broken kernels the checks must catch ----------------------------------------- */

static AMXQ_DECL_QUANTIZE_FN(bad_quantize_flip)
{
    ref_kernels(amxq_type_index(qx->wtype))->quantize(x, ldx, m0, m1, qx);
    if (m1 - 1 == qx->m - 1)
        qx->qs[(m1 - 1) * qx->ld_qs + qx->k - 1] ^= 1; /* one bit of the last activation */
}

static AMXQ_DECL_QUANTIZE_FN(bad_quantize_overrun)
{
    ref_kernels(amxq_type_index(qx->wtype))->quantize(x, ldx, m0, m1, qx);
    /* one byte just past the workspace (inside the driver's guard) */
    ((uint8_t *)qx->qs)[amxq_qx_size(qx->wtype, qx->m, qx->k)] = 0;
}

static AMXQ_DECL_QUANTIZE_FN(bad_quantize_all_rows)
{
    (void)m0;
    (void)m1;
    ref_kernels(amxq_type_index(qx->wtype))->quantize(x, ldx, 0, qx->m, qx);
}

static AMXQ_DECL_GEMM_FN(bad_gemm_value)
{
    ref_kernels(lo->ti)->gemm(lo, packed, qx, m0, m1, p0, p1, c, ldc);
    /* the last column 1e-4 off: an edge-panel bug that is small but far above float rounding */
    if (p1 == lo->n_panels)
        for (int64_t m = m0; m < m1; m++)
            c[m * ldc + lo->n - 1] *= 1.0001f;
}

static AMXQ_DECL_GEMM_FN(bad_gemm_gap)
{
    ref_kernels(lo->ti)->gemm(lo, packed, qx, m0, m1, p0, p1, c, ldc);
    if (p1 == lo->n_panels)
        c[(m1 - 1) * ldc + lo->n] = 0; /* between N and ldc */
}

static AMXQ_DECL_GEMM_FN(bad_gemm_all_rows)
{
    (void)m0;
    (void)m1;
    ref_kernels(lo->ti)->gemm(lo, packed, qx, 0, qx->m, p0, p1, c, ldc);
}

static AMXQ_DECL_GEMM_FN(bad_gemm_before)
{
    ref_kernels(lo->ti)->gemm(lo, packed, qx, m0, m1, p0, p1, c, ldc);
    c[-1] = 0;
}

/* A correct kernel with different float rounding: each block's contribution from the reference
 * (called on a one-block view of the layout and workspace), summed in float, last block first.
 * It must pass every case: proof that the tolerances do not fail honest summation orders. */
/* Correct under the numeric contract although it walks C differently: the reference kernel on
 * 1-row x 1-panel rectangles, last first. C[m][n]'s bits may depend only on m and n, so the
 * exact checks must accept it everywhere. */
static AMXQ_DECL_GEMM_FN(good_gemm_rectangles)
{
    for (int64_t m = m1 - 1; m >= m0; m--)
        for (int64_t p = p1 - 1; p >= p0; p--)
            ref_kernels(lo->ti)->gemm(lo, packed, qx, m, m + 1, p, p + 1, c, ldc);
}

/* Correct mathematically, but accumulates the blocks in reverse order and in f32: it breaks the
 * numeric contract's fixed operation order, so exact checks must reject it somewhere on the grid.
 */
static AMXQ_DECL_GEMM_FN(bad_gemm_float_order)
{
    const int64_t rows = m1, cols = ldc;
    float *tmp = malloc(sizeof(float) * (size_t)(rows * cols));
    float *acc = calloc((size_t)(rows * cols), sizeof(float));
    if (!tmp || !acc) {
        fprintf(stderr, "checkasm: out of memory\n");
        exit(2);
    }
    amxq_layout l1 = *lo;
    l1.k_blocks = 1;
    l1.k = lo->block_k;
    const int64_t sums_per_block = amxq_type_act_q8_k(lo->type) ? 16 : 1;
    for (int64_t b = lo->k_blocks - 1; b >= 0; b--) {
        l1.terms_offset = lo->terms_offset + (size_t)b * (lo->terms_bytes - lo->chunk_bytes);
        amxq_qx q1 = *qx;
        q1.k = lo->block_k;
        q1.qs += b * lo->block_k;
        q1.d += b;
        if (q1.s)
            q1.s += b;
        q1.sums += b * sums_per_block;
        const uint8_t *pk = (const uint8_t *)packed + (size_t)b * lo->chunk_bytes;
        ref_kernels(lo->ti)->gemm(&l1, pk, &q1, m0, m1, p0, p1, tmp, ldc);
        for (int64_t m = m0; m < m1; m++)
            for (int64_t n = p0 * AMXQ_PANEL_N; n < p1 * AMXQ_PANEL_N && n < lo->n; n++)
                acc[m * ldc + n] += tmp[m * ldc + n];
    }
    for (int64_t m = m0; m < m1; m++)
        for (int64_t n = p0 * AMXQ_PANEL_N; n < p1 * AMXQ_PANEL_N && n < lo->n; n++)
            c[m * ldc + n] = acc[m * ldc + n];
    free(tmp);
    free(acc);
}

static size_t make_grid(struct shape *g, size_t cap);
static int64_t k_of(int kc, amxq_type type);

static int selftest(void)
{
    static const struct {
        const char *name;
        amxq_quantize_fn *q;
        amxq_gemm_fn *g;
    } bad[] = {
        {"quantize-flip", bad_quantize_flip, NULL},
        {"quantize-overrun", bad_quantize_overrun, NULL},
        {"quantize-all-rows", bad_quantize_all_rows, NULL},
        {"gemm-value", NULL, bad_gemm_value},
        {"gemm-gap", NULL, bad_gemm_gap},
        {"gemm-all-rows", NULL, bad_gemm_all_rows},
        {"gemm-before", NULL, bad_gemm_before},
    };
    const amxq_type *types = ca_types;
    int missed = 0;
    for (size_t v = 0; v < sizeof bad / sizeof bad[0]; v++) {
        struct amxq_kernels t;
        amxq_kernels_init_ref(&t);
        for (int ti = 0; ti < AMXQ_NTYPES; ti++) {
            if (bad[v].q) {
                t.t[ti].quantize = bad[v].q;
                t.t[ti].quantize_name = bad[v].name;
            } else {
                t.t[ti].gemm = bad[v].g;
                t.t[ti].gemm_name = bad[v].name;
            }
        }
        for (int ti = 0; ti < AMXQ_NTYPES; ti++) {
            struct ca_ctx ctx;
            memset(&ctx, 0, sizeof ctx);
            ctx.isa = AMXQ_ISA_SCALAR;
            ctx.isa_name = "selftest";
            ctx.t = &t;
            ctx.quiet = 1;
            ctx.no_public = 1;
            struct ca_case cs;
            memset(&cs, 0, sizeof cs);
            cs.index = 1000 + (int)v;
            cs.type = types[ti];
            cs.m = 19;
            cs.n = 40;
            cs.k = 2 * amxq_type_block(types[ti]);
            cs.cls = CA_NORMAL;
            if (case_build(&cs) != 0) {
                printf("selftest: cannot build a case\n");
                return 1;
            }
            ca_check_quantize(&ctx, &cs);
            ca_check_gemm(&ctx, &cs);
            case_free(&cs);
            printf("  selftest %-18s %s: %s (%ld failures reported)\n", bad[v].name,
                   amxq_type_name(types[ti]), ctx.failures ? "caught" : "MISSED", ctx.failures);
            missed += ctx.failures == 0;
        }
    }
    /* On the whole grid: a kernel that rounds in another order must be caught (the checks are
     * exact), and one that follows the contract in another traversal must not be. */
    static const struct {
        const char *name;
        amxq_gemm_fn *g;
        int contract;
    } grid_variants[] = {
        {"gemm-float-order", bad_gemm_float_order, 0},
        {"gemm-rectangles", good_gemm_rectangles, 1},
    };
    long wrongly_rejected = 0;
    static struct shape grid[256];
    const size_t ngrid = make_grid(grid, sizeof grid / sizeof grid[0]);
    for (size_t v = 0; v < sizeof grid_variants / sizeof grid_variants[0]; v++) {
        struct amxq_kernels kt;
        amxq_kernels_init_ref(&kt);
        for (int ti = 0; ti < AMXQ_NTYPES; ti++) {
            kt.t[ti].gemm = grid_variants[v].g;
            kt.t[ti].gemm_name = grid_variants[v].name;
        }
        struct ca_ctx ctx;
        memset(&ctx, 0, sizeof ctx);
        ctx.isa = AMXQ_ISA_SCALAR;
        ctx.isa_name = "selftest";
        ctx.t = &kt;
        ctx.quiet = 1;
        ctx.no_public = 1;
        for (int t = 0; t < AMXQ_NTYPES; t++)
            for (size_t gi = 0; gi < ngrid; gi++) {
                if (grid[gi].cls == CA_SPECIAL)
                    continue;
                struct ca_case cs;
                memset(&cs, 0, sizeof cs);
                cs.index = (int)(t * ngrid + gi);
                cs.type = types[t];
                cs.m = grid[gi].m;
                cs.n = grid[gi].n;
                cs.k = k_of(grid[gi].kc, types[t]);
                cs.cls = grid[gi].cls;
                if (case_build(&cs) != 0)
                    return 1;
                ca_check_gemm(&ctx, &cs);
                case_free(&cs);
            }
        if (grid_variants[v].contract) {
            printf("  selftest %-18s (follows the contract): %ld false failures in %ld checks\n",
                   grid_variants[v].name, ctx.failures, ctx.checks);
            wrongly_rejected += ctx.failures;
        } else {
            printf("  selftest %-18s (breaks the contract): %s (%ld failures in %ld checks)\n",
                   grid_variants[v].name, ctx.failures ? "caught" : "MISSED", ctx.failures,
                   ctx.checks);
            missed += ctx.failures == 0;
        }
    }
    printf("checkasm selftest: %s\n", missed             ? "FAILED, a broken kernel passed"
                                      : wrongly_rejected ? "FAILED, a correct kernel was rejected"
                                                         : "all caught, nothing rejected wrongly");
    missed += wrongly_rejected != 0;
    return missed ? 1 : 0;
}

/* ---- Main ----------------------------------------------------------------------------------- */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int usage(void)
{
    fprintf(
        stderr,
        "usage: checkasm [--seed N | --random-seed] [--isa NAME] [--type TYPE] "
        "[--verbose] [--selftest]\nTYPE: a name amxq_type_name() gives, e.g. q4_0, q5_1, iq4_nl\n");
    return 2;
}

int main(int argc, char **argv)
{
    int only_isa = -1, only_type = -1, verbose = 0, self = 0;
    g_seed = 0x616d7871; /* "amxq" */
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc) {
            g_seed = strtoull(argv[++i], NULL, 0);
        } else if (strcmp(argv[i], "--random-seed") == 0) {
            g_seed = (uint64_t)time(NULL) ^ ((uint64_t)clock() << 32);
        } else if (strcmp(argv[i], "--isa") == 0 && i + 1 < argc) {
            amxq_isa isa;
            if (amxq_isa_parse(argv[++i], &isa) != AMXQ_OK || isa == AMXQ_ISA_AUTO)
                return usage();
            only_isa = (int)isa;
        } else if (strcmp(argv[i], "--type") == 0 && i + 1 < argc) {
            const char *name = argv[++i];
            for (int t = 0; t < AMXQ_NTYPES; t++)
                if (strcmp(name, amxq_type_name(ca_types[t])) == 0)
                    only_type = (int)ca_types[t];
            if (only_type < 0)
                return usage();
        } else if (strcmp(argv[i], "--selftest") == 0) {
            self = 1;
        } else if (strcmp(argv[i], "--verbose") == 0 || strcmp(argv[i], "-v") == 0) {
            verbose = 1;
        } else {
            return usage();
        }
    }
    printf("checkasm: seed %llu\n", (unsigned long long)g_seed);
    if (self)
        return selftest();

    /* the tables that can run here */
    struct ca_ctx ctx[AMXQ_ISA_COUNT];
    double isa_time[AMXQ_ISA_COUNT] = {0};
    int active[AMXQ_ISA_COUNT] = {0};
    /* The scalar table is the reference: checking it against itself would count checks that
     * cannot fail, so it is never among the tables under test. */
    if (only_isa == AMXQ_ISA_SCALAR) {
        printf("checkasm: scalar is the reference itself; nothing to check\n");
        return 77;
    }
    int n_active = 0, rejected = 0;
    for (int isa = AMXQ_ISA_SCALAR + 1; isa <= AMXQ_ISA_AVX512_EMU; isa++) {
        if (only_isa >= 0 && isa != only_isa)
            continue;
        amxq_status why = AMXQ_OK;
        memset(&ctx[isa], 0, sizeof ctx[isa]);
        ctx[isa].isa = (amxq_isa)isa;
        ctx[isa].isa_name = amxq_isa_name((amxq_isa)isa);
        ctx[isa].t = amxq_kernels_get((amxq_isa)isa, &why);
        ctx[isa].verbose = verbose;
        if (!ctx[isa].t && why == AMXQ_ERR_SELFTEST) {
            /* Built and runnable here, but its kernels disagreed with the reference: the library
             * falls back quietly, so only a test can say that a kernel is broken. */
            printf("FAIL %s: %s\n", ctx[isa].isa_name, amxq_status_str(why));
            rejected++;
            continue;
        }
        if (!ctx[isa].t) {
            printf("skip %s: %s\n", ctx[isa].isa_name, amxq_status_str(why));
            continue;
        }
        active[isa] = 1;
        n_active++;
        for (int ti = 0; ti < AMXQ_NTYPES; ti++)
            printf("  %-10s %-6s %-28s %s\n", ctx[isa].isa_name, amxq_type_name(ca_types[ti]),
                   ctx[isa].t->t[ti].quantize_name, ctx[isa].t->t[ti].gemm_name);
    }

    if (n_active == 0 && rejected) {
        printf("checkasm: FAILED, %d kernel table(s) failed their start-up self-test\n", rejected);
        return 1;
    }
    if (n_active == 0) {
        /* Meson's skip code: nothing that runs here is under test, which is not a pass. */
        printf("checkasm: no kernel table to check on this machine and build: skipped\n");
        return 77;
    }

    static struct shape grid[256];
    const size_t ngrid = make_grid(grid, sizeof grid / sizeof grid[0]);
    const amxq_type *types = ca_types;
    int ncases = 0, setup_fail = 0;
    double ref_time = 0;
    for (int t = 0; t < AMXQ_NTYPES; t++) {
        for (size_t gi = 0; gi < ngrid; gi++) {
            /* the index, and so the data, of a case does not depend on the filters */
            const int index = (int)(t * ngrid + gi);
            if (only_type >= 0 && (int)types[t] != only_type)
                continue;
            struct ca_case cs;
            memset(&cs, 0, sizeof cs);
            cs.index = index;
            cs.type = types[t];
            cs.m = grid[gi].m;
            cs.n = grid[gi].n;
            cs.k = k_of(grid[gi].kc, types[t]);
            cs.cls = grid[gi].cls;
            double t0 = now_s();
            if (case_build(&cs) != 0) {
                printf("FAIL case %d: cannot build its data\n", index);
                setup_fail++;
                case_free(&cs);
                continue;
            }
            ref_time += now_s() - t0;
            ncases++;
            for (int isa = AMXQ_ISA_SCALAR + 1; isa <= AMXQ_ISA_AVX512_EMU; isa++) {
                if (!active[isa])
                    continue;
                t0 = now_s();
                ca_check_quantize(&ctx[isa], &cs);
                if (cs.cls != CA_SPECIAL)
                    ca_check_gemm(&ctx[isa], &cs);
                isa_time[isa] += now_s() - t0;
            }
            case_free(&cs);
        }
    }

    long failures = setup_fail + rejected;
    printf("checkasm: %d cases, reference %.2f s\n", ncases, ref_time);
    for (int isa = AMXQ_ISA_SCALAR + 1; isa <= AMXQ_ISA_AVX512_EMU; isa++) {
        if (!active[isa])
            continue;
        printf("  %-10s %6ld checks, %4ld failures, %.2f s\n", ctx[isa].isa_name, ctx[isa].checks,
               ctx[isa].failures, isa_time[isa]);
        failures += ctx[isa].failures;
    }
    if (failures)
        printf("checkasm: FAILED (%ld); replay with --seed %llu\n", failures,
               (unsigned long long)g_seed);
    else
        printf("checkasm: all passed\n");
    return failures ? 1 : 0;
}
