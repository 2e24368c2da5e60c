/*
 * amxq_matmul_id and amxq_ctx_matmul_id (include/amxq.h, "Mixture-of-experts products").
 *
 * Results: for every weight type, routings of several kinds (uniform, skewed, experts no token
 * chose, every pair to one expert, one id repeated in a row, one token), x_slots = 1 and
 * = n_slots, padded and slot-major output layouts, every kernel family this machine runs
 * (amxq_isa_check(); AUTO included) and as the plain call, with a caller workspace, and on
 * contexts of 1, 2 and 3 threads: every element of C must have the bits of amxq_matmul() of that
 * row with that expert (AUTO, M = 1) and of the scalar reference (forced scalar), which the
 * numeric contract makes equal; elements between the rows of C keep their canary.
 *
 * Bad input: every status the header lists, for the plain and the context call, with C (gaps
 * included) untouched; unused strides and NULL experts no id names are accepted; the workspace
 * query; allocation failure.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "amxq.h"
#include "common/ggml_data.h"
#include "common/testutil.h"
#include "pack/pack.h"

#define N_EXPERTS 7 /* expert 6 stays NULL: allowed while no id names it */
#define MAX_CTX   3

static const amxq_type types[] = {AMXQ_TYPE_Q4_0, AMXQ_TYPE_Q4_1,  AMXQ_TYPE_Q8_0,   AMXQ_TYPE_Q4_K,
                                  AMXQ_TYPE_Q6_K, AMXQ_TYPE_Q5_K,  AMXQ_TYPE_IQ4_XS, AMXQ_TYPE_Q5_0,
                                  AMXQ_TYPE_Q5_1, AMXQ_TYPE_IQ4_NL};
#define N_TYPES (int)(sizeof types / sizeof types[0])
static amxq_ctx *g_ctx[MAX_CTX + 1];
static uint64_t g_rng = 0x6d61746d756c6964ull; /* "matmulid" */
static long g_checked;

static const uint32_t CANARY = 0x7fa5a5a5u; /* a NaN no kernel produces */

/* ---- Inputs --------------------------------------------------------------------------------- */

static void put_half(uint8_t *p, int lo, int hi, int negative)
{
    const unsigned e = (unsigned)(lo + (int)(tu_rand(&g_rng) % (uint64_t)(hi - lo + 1)));
    const unsigned h = (negative ? 0x8000u : 0u) | e << 10 | (unsigned)(tu_rand(&g_rng) & 1023u);
    p[0] = (uint8_t)h;
    p[1] = (uint8_t)(h >> 8);
}

/* A packed expert of random quants with realistic scales (docs/design.md §2): every block's d in
 * 2^-11 .. 2^-6; its second fp16 field, where it has one, is Q4_1's and Q5_1's min (negative, as in
 * real models) or the K types' dmin. */
static void *make_expert(amxq_type type, int64_t n, int64_t k)
{
    const size_t gbytes = amxq_ggml_size(type, n, k), bb = amxq_type_block_bytes(type);
    const int neg_min = type == AMXQ_TYPE_Q4_1 || type == AMXQ_TYPE_Q5_1;
    size_t off[2];
    const size_t halves = amxq_ggml_fp16_fields(type, off);
    uint8_t *g = malloc(gbytes);
    TU_CHECK(g != NULL && halves >= 1, "oom");
    tu_fill_bytes(&g_rng, g, gbytes);
    for (size_t b = 0; b < gbytes / bb; b++) {
        put_half(g + b * bb + off[0], 4, 9, 0);
        if (halves > 1)
            put_half(g + b * bb + off[1], neg_min ? 4 : 2, neg_min ? 9 : 7, neg_min);
    }
    void *p = tu_pack_new(type, g, n, k);
    TU_CHECK(p != NULL, "pack");
    free(g);
    return p;
}

static void fill_canary(float *c, size_t n)
{
    for (size_t i = 0; i < n; i++)
        memcpy(c + i, &CANARY, 4);
}

static int is_canary(const float *c)
{
    uint32_t u;
    memcpy(&u, c, 4);
    return u == CANARY;
}

static int same_bits(float a, float b)
{
    return (isnan(a) && isnan(b)) || memcmp(&a, &b, 4) == 0;
}

/* One MUL_MAT_ID problem: the experts, X, the routing, C's layout. */
struct problem {
    const char *name;
    amxq_type type;
    int64_t n, k;
    void *experts[N_EXPERTS];
    int64_t x_slots, ldx_slot, ldx_token;
    int64_t n_slots, ld_ids, n_tokens;
    int64_t ldc_slot, ldc_token;
    float *x;
    size_t x_elems;
    int32_t *ids;
    size_t c_elems;
};

/* X sized to its layout (exactly, so ASan sees a read past it), ids, and C's extent. */
static void problem_alloc(struct problem *p)
{
    const int64_t xt = p->n_tokens > 1 ? p->ldx_token : 0, xs = p->x_slots > 1 ? p->ldx_slot : 0;
    p->x_elems = (size_t)((p->n_tokens - 1) * xt + (p->x_slots - 1) * xs + p->k);
    p->x = malloc(p->x_elems * sizeof(float));
    for (size_t i = 0; i < p->x_elems; i++)
        p->x[i] = (float)(tu_rand(&g_rng) % 97 == 0 ? 40.0 * tu_randf(&g_rng) : tu_randf(&g_rng));
    const int64_t it = p->n_tokens > 1 ? p->ld_ids : 0;
    p->ids = malloc(sizeof(int32_t) * (size_t)((p->n_tokens - 1) * it + p->n_slots));
    for (size_t i = 0; i < (size_t)((p->n_tokens - 1) * it + p->n_slots); i++)
        p->ids[i] = -7; /* padding between rows of ids: never read */
    const int64_t ct = p->n_tokens > 1 ? p->ldc_token : 0, cs = p->n_slots > 1 ? p->ldc_slot : 0;
    p->c_elems = (size_t)((p->n_tokens - 1) * ct + (p->n_slots - 1) * cs + p->n);
}

static void problem_free(struct problem *p)
{
    free(p->x);
    free(p->ids);
}

static int32_t *id_at(const struct problem *p, int64_t t, int64_t s)
{
    return p->ids + t * (p->n_tokens > 1 ? p->ld_ids : 0) + s;
}

/* Routings. Experts 0..5 exist; 6 is NULL. */
enum routing { R_UNIFORM, R_SKEWED, R_SOME_EMPTY, R_ONE_EXPERT, R_REPEATED, R_COUNT };
static const char *routing_name[R_COUNT] = {"uniform", "skewed", "empty experts", "one expert",
                                            "repeated ids"};

static void route(struct problem *p, enum routing r)
{
    for (int64_t t = 0; t < p->n_tokens; t++)
        for (int64_t s = 0; s < p->n_slots; s++) {
            const uint64_t v = tu_rand(&g_rng);
            int32_t e;
            switch (r) {
            case R_UNIFORM:
                e = (int32_t)(v % 6);
                break;
            case R_SKEWED: /* most pairs to expert 4, the rest spread */
                e = v % 10 < 8 ? 4 : (int32_t)(v % 6);
                break;
            case R_SOME_EMPTY: /* only experts 1 and 3 */
                e = v % 2 ? 1 : 3;
                break;
            case R_ONE_EXPERT:
                e = 2;
                break;
            default: /* one id for the whole row, different per token */
                e = (int32_t)((uint64_t)t * 5 % 6);
                break;
            }
            *id_at(p, t, s) = e;
        }
}

/* ---- Running -------------------------------------------------------------------------------- */

static amxq_status run(const struct problem *p, amxq_ctx *ctx, const amxq_matmul_params *prm,
                       float *c)
{
    const void *const *ex = (const void *const *)p->experts;
    if (ctx)
        return amxq_ctx_matmul_id(ctx, ex, N_EXPERTS, p->x, p->x_slots, p->ldx_slot, p->ldx_token,
                                  p->ids, p->n_slots, p->ld_ids, p->n_tokens, c, p->ldc_slot,
                                  p->ldc_token, prm);
    return amxq_matmul_id(ex, N_EXPERTS, p->x, p->x_slots, p->ldx_slot, p->ldx_token, p->ids,
                          p->n_slots, p->ld_ids, p->n_tokens, c, p->ldc_slot, p->ldc_token, prm);
}

static float *c_row(const struct problem *p, float *c, int64_t t, int64_t s)
{
    return c + t * (p->n_tokens > 1 ? p->ldc_token : 0) + s * (p->n_slots > 1 ? p->ldc_slot : 0);
}

/* The expected C: per row, amxq_matmul (AUTO, M = 1); checked against the scalar reference
 * (forced scalar) as well. Elements outside the rows stay canaries. */
static float *expected(const struct problem *p)
{
    float *e = malloc(p->c_elems * sizeof(float)), *r = malloc((size_t)p->n * sizeof(float));
    fill_canary(e, p->c_elems);
    amxq_matmul_params sp;
    memset(&sp, 0, sizeof sp);
    sp.isa = AMXQ_ISA_SCALAR;
    for (int64_t t = 0; t < p->n_tokens; t++)
        for (int64_t s = 0; s < p->n_slots; s++) {
            const int32_t ex = *id_at(p, t, s);
            const float *xr = p->x + t * (p->n_tokens > 1 ? p->ldx_token : 0) +
                              (s % p->x_slots) * (p->x_slots > 1 ? p->ldx_slot : 0);
            float *dst = c_row(p, e, t, s);
            TU_CHECK(amxq_matmul(p->experts[ex], xr, 1, p->k, dst, p->n) == AMXQ_OK, "matmul");
            TU_CHECK(amxq_matmul_ex(p->experts[ex], xr, 1, p->k, r, p->n, &sp) == AMXQ_OK,
                     "scalar");
            for (int64_t j = 0; j < p->n; j++)
                if (!same_bits(dst[j], r[j])) {
                    TU_CHECK(0, "%s: per-row amxq_matmul differs from the scalar reference",
                             p->name);
                    break;
                }
        }
    free(r);
    return e;
}

/* Compare every element (rows and gaps) with the expectation. */
static void compare(const struct problem *p, const char *how, const float *c, const float *want)
{
    g_checked++;
    for (size_t i = 0; i < p->c_elems; i++)
        if (!same_bits(c[i], want[i]) || is_canary(c + i) != is_canary(want + i)) {
            TU_CHECK(0, "%s %s (%s): C[%zu] = %a, expected %a", p->name, amxq_type_name(p->type),
                     how, i, (double)c[i], (double)want[i]);
            return;
        }
}

/* Every runnable family (and AUTO), plain and on 1..3 threads, with and without a workspace. */
static void check_problem(const struct problem *p, int families_all)
{
    float *want = expected(p);
    float *c = malloc(p->c_elems * sizeof(float));
    for (int isa = AMXQ_ISA_AUTO; isa < AMXQ_ISA_COUNT; isa++) {
        if (isa != AMXQ_ISA_AUTO && amxq_isa_check((amxq_isa)isa) != AMXQ_OK)
            continue;
        if (!families_all && (isa == AMXQ_ISA_AMX_EMU || isa == AMXQ_ISA_AVX512_EMU))
            continue;
        for (int t = 0; t <= MAX_CTX; t++) {
            for (int with_ws = 0; with_ws < 2; with_ws++) {
                amxq_matmul_params prm;
                memset(&prm, 0, sizeof prm);
                prm.isa = (amxq_isa)isa;
                void *ws = NULL;
                if (with_ws) {
                    prm.workspace_size = amxq_matmul_id_workspace_size(
                        p->type, p->n, p->k, N_EXPERTS, p->x_slots, p->n_slots, p->n_tokens,
                        t ? amxq_ctx_threads(g_ctx[t]) : 1);
                    TU_CHECK(prm.workspace_size % AMXQ_ALIGNMENT == 0 && prm.workspace_size,
                             "workspace size");
                    ws = aligned_alloc(AMXQ_ALIGNMENT, prm.workspace_size);
                    prm.workspace = ws;
                }
                char how[128];
                snprintf(how, sizeof how, "%s, %s%d, %s", amxq_isa_name((amxq_isa)isa),
                         t ? "ctx threads " : "plain ", t, with_ws ? "workspace" : "allocated");
                fill_canary(c, p->c_elems);
                const amxq_status st = run(p, t ? g_ctx[t] : NULL, &prm, c);
                TU_CHECK(st == AMXQ_OK, "%s %s: %s", p->name, how, amxq_status_str(st));
                if (st == AMXQ_OK)
                    compare(p, how, c, want);
                free(ws);
            }
        }
    }
    free(c);
    free(want);
}

/* The problems of one type: every routing, both x_slots, a few layouts. `all_shapes` 0: only the
 * 9-token shape (3 slots, padded strides). The routing and layout logic is the same for every
 * type, and the suite also runs under amxtrap, where every tile instruction traps: the first four
 * types (one of each kernel shape: 32-k signed, 32-k with a min, Q8_0, super-block) take the whole
 * grid. */
static void check_type(amxq_type type, int all_shapes)
{
    const int64_t n = 40, k = amxq_type_block(type) == 256 ? 256 : 64; /* 3 panels, last ragged */
    struct problem base;
    memset(&base, 0, sizeof base);
    base.type = type;
    base.n = n;
    base.k = k;
    for (int e = 0; e < 6; e++)
        base.experts[e] = make_expert(type, n, k);
    base.experts[6] = NULL;

    static const struct {
        int64_t n_tokens, n_slots;
        int layout; /* 0 packed rows, 1 padded, 2 slot-major, 3 unused strides junk (1 token) */
    } shapes[] = {{1, 1, 3}, {1, 4, 3}, {5, 2, 0}, {9, 3, 1}, {17, 4, 2}, {70, 4, 1}};
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        if (!all_shapes && si != 3) /* {9, 3, 1} */
            continue;
        for (int xs_per_slot = 0; xs_per_slot < 2; xs_per_slot++) {
            for (int r = 0; r < R_COUNT; r++) {
                struct problem p = base;
                char name[160];
                p.n_tokens = shapes[si].n_tokens;
                p.n_slots = shapes[si].n_slots;
                p.x_slots = xs_per_slot ? p.n_slots : 1;
                const int lay = shapes[si].layout;
                if (lay == 0) { /* ggml's contiguous layout */
                    p.ldx_slot = k;
                    p.ldx_token = p.x_slots * k;
                    p.ld_ids = p.n_slots;
                    p.ldc_slot = n;
                    p.ldc_token = p.n_slots * n;
                } else if (lay == 1) { /* padding everywhere; X rows of a token not one stride */
                    p.ldx_slot = k + 5;
                    p.ldx_token = p.x_slots * (k + 5) + 3;
                    p.ld_ids = p.n_slots + 2;
                    p.ldc_slot = n + 3;
                    p.ldc_token = p.n_slots * (n + 3) + 1;
                } else if (lay == 2) { /* slot-major C and X: token rows interleave */
                    p.ldx_token = k;
                    p.ldx_slot = p.n_tokens * k;
                    p.ld_ids = p.n_slots;
                    p.ldc_token = n + 1;
                    p.ldc_slot = p.n_tokens * (n + 1);
                } else { /* one token: the unused strides may be anything */
                    p.ldx_token = -5;
                    p.ldx_slot = p.x_slots > 1 ? k : 0;
                    p.ld_ids = 0;
                    p.ldc_token = -1;
                    p.ldc_slot = p.n_slots > 1 ? n : 12345;
                }
                snprintf(name, sizeof name, "tokens %lld slots %lld x_slots %lld layout %d %s",
                         (long long)p.n_tokens, (long long)p.n_slots, (long long)p.x_slots, lay,
                         routing_name[r]);
                p.name = name;
                problem_alloc(&p);
                route(&p, (enum routing)r);
                /* The emulated families are slow: every routing on the small shapes, one on the
                 * large one. */
                check_problem(&p, p.n_tokens < 70 || r == R_SKEWED);
                problem_free(&p);
            }
        }
    }
    for (int e = 0; e < 6; e++)
        free(base.experts[e]);
}

/* ---- Bad input ------------------------------------------------------------------------------ */

/* A valid call's arguments, to be broken one at a time. */
struct call {
    const void *const *experts;
    int64_t n_experts;
    const float *x;
    int64_t x_slots, ldx_slot, ldx_token;
    const int32_t *ids;
    int64_t n_slots, ld_ids, n_tokens;
    float *c;
    int64_t ldc_slot, ldc_token;
    amxq_matmul_params prm;
    int use_prm;
};

static amxq_status call_run(const struct call *a, amxq_ctx *ctx)
{
    const amxq_matmul_params *prm = a->use_prm ? &a->prm : NULL;
    if (ctx)
        return amxq_ctx_matmul_id(ctx, a->experts, a->n_experts, a->x, a->x_slots, a->ldx_slot,
                                  a->ldx_token, a->ids, a->n_slots, a->ld_ids, a->n_tokens, a->c,
                                  a->ldc_slot, a->ldc_token, prm);
    return amxq_matmul_id(a->experts, a->n_experts, a->x, a->x_slots, a->ldx_slot, a->ldx_token,
                          a->ids, a->n_slots, a->ld_ids, a->n_tokens, a->c, a->ldc_slot,
                          a->ldc_token, prm);
}

/* Run `a` plain and on a 2-thread context: it must fail with `want` and leave `guard` bytes at
 * `region` (C's whole buffer) untouched. */
static void expect_fail(const char *what, const struct call *a, amxq_status want, uint8_t *region,
                        size_t region_bytes)
{
    uint8_t *copy = malloc(region_bytes);
    memcpy(copy, region, region_bytes);
    for (int t = 0; t < 2; t++) {
        const amxq_status st = call_run(a, t ? g_ctx[2] : NULL);
        TU_CHECK(st == want, "%s (%s): got %s, want %s", what, t ? "ctx" : "plain",
                 amxq_status_str(st), amxq_status_str(want));
        TU_CHECK(memcmp(copy, region, region_bytes) == 0, "%s (%s): C written on failure", what,
                 t ? "ctx" : "plain");
        memcpy(region, copy, region_bytes);
    }
    free(copy);
}

static void check_bad_input(void)
{
    const amxq_type type = AMXQ_TYPE_Q4_0;
    const int64_t n = 32, k = 64, n_tok = 3, n_sl = 2;
    void *ex[4];
    for (int e = 0; e < 4; e++)
        ex[e] = make_expert(type, n, k);
    void *other_n = make_expert(type, n + 16, k);
    void *other_t = make_expert(AMXQ_TYPE_Q8_0, n, k);
    const size_t psize = amxq_packed_size(type, n, k);
    uint8_t *corrupt = aligned_alloc(AMXQ_ALIGNMENT, psize);
    memcpy(corrupt, ex[0], psize);
    corrupt[40] ^= 1; /* a header byte: checksum fails */
    uint8_t *mis = aligned_alloc(AMXQ_ALIGNMENT, psize + 64);
    memcpy(mis + 8, ex[0], psize);

    /* One arena for X, ids and C, so overlaps can be made by pointing into it. */
    const size_t x_f = (size_t)(n_tok * k), c_f = (size_t)(n_tok * n_sl * n);
    float *xbuf = malloc(x_f * 4);
    for (size_t i = 0; i < x_f; i++)
        xbuf[i] = tu_randf(&g_rng);
    int32_t ids[6] = {0, 1, 2, 3, 1, 1};
    float *cbuf = malloc((c_f + 64) * 4);
    fill_canary(cbuf, c_f + 64);
    const void *experts[4] = {ex[0], ex[1], ex[2], ex[3]};

    struct call ok = {experts, 4,    xbuf,  1,    k, k,        ids,
                      n_sl,    n_sl, n_tok, cbuf, n, n_sl * n, {AMXQ_ISA_AUTO, 0, NULL, 0},
                      1};
    TU_CHECK(call_run(&ok, NULL) == AMXQ_OK, "the valid call");
    fill_canary(cbuf, c_f + 64);
    uint8_t *region = (uint8_t *)cbuf;
    const size_t rb = (c_f + 64) * 4;
    struct call a;

#define BAD(what, want, ...)                                                                       \
    do {                                                                                           \
        a = ok;                                                                                    \
        __VA_ARGS__;                                                                               \
        expect_fail(what, &a, want, region, rb);                                                   \
    } while (0)

    BAD("isa 99", AMXQ_ERR_ISA_UNKNOWN, a.prm.isa = (amxq_isa)99);
    BAD("isa -1", AMXQ_ERR_ISA_UNKNOWN, a.prm.isa = (amxq_isa)-1);
    BAD("flag bit 1", AMXQ_ERR_ARG, a.prm.flags = 2);
    BAD("experts NULL", AMXQ_ERR_NULL, a.experts = NULL);
    BAD("x NULL", AMXQ_ERR_NULL, a.x = NULL);
    BAD("ids NULL", AMXQ_ERR_NULL, a.ids = NULL);
    BAD("n_experts 0", AMXQ_ERR_SHAPE, a.n_experts = 0);
    BAD("n_experts -1", AMXQ_ERR_SHAPE, a.n_experts = -1);
    BAD("n_experts 2^31", AMXQ_ERR_SHAPE, a.n_experts = (int64_t)1 << 31);
    BAD("n_slots 0", AMXQ_ERR_SHAPE, a.n_slots = 0);
    BAD("n_tokens 0", AMXQ_ERR_SHAPE, a.n_tokens = 0);
    BAD("n_tokens * n_slots 2^31", AMXQ_ERR_SHAPE, a.n_tokens = (int64_t)1 << 30; a.n_slots = 2);
    BAD("x_slots 3", AMXQ_ERR_ARG, a.x_slots = 3);
    BAD("x_slots 0", AMXQ_ERR_ARG, a.x_slots = 0);
    {
        const void *none[4] = {NULL, NULL, NULL, NULL};
        BAD("every expert NULL", AMXQ_ERR_NULL, a.experts = none);
        const void *mixed[4] = {ex[0], other_n, ex[2], ex[3]};
        BAD("an expert of another N", AMXQ_ERR_BAD_PACKED, a.experts = mixed);
        const void *mixed_t[4] = {ex[0], ex[1], other_t, ex[3]};
        BAD("an expert of another type", AMXQ_ERR_BAD_PACKED, a.experts = mixed_t);
        const void *bad_first[4] = {corrupt, ex[1], ex[2], ex[3]};
        BAD("first expert corrupted", AMXQ_ERR_BAD_PACKED, a.experts = bad_first);
        /* every buffer is validated, used or not: a fifth expert no id names, corrupted */
        const void *unused_bad[5] = {ex[0], ex[1], ex[2], ex[3], corrupt};
        BAD("an unused expert corrupted", AMXQ_ERR_BAD_PACKED, a.experts = unused_bad;
            a.n_experts = 5);
        void *foreign = aligned_alloc(AMXQ_ALIGNMENT, psize);
        memset(foreign, 0x5a, psize);
        const void *with_foreign[4] = {ex[0], ex[1], foreign, ex[3]};
        BAD("a foreign buffer", AMXQ_ERR_BAD_PACKED, a.experts = with_foreign);
        const void *misal[4] = {ex[0], mis + 8, ex[2], ex[3]};
        BAD("a misaligned expert", AMXQ_ERR_ALIGNMENT, a.experts = misal);
        const void *null_used[4] = {ex[0], ex[1], NULL, ex[3]};
        BAD("a NULL expert chosen", AMXQ_ERR_NULL, a.experts = null_used);
        int32_t ids_ok5[6] = {0, 1, 0, 3, 1, 1};
        const void *null_unused[4] = {ex[0], ex[1], NULL, ex[3]};
        a = ok;
        a.experts = null_unused;
        a.ids = ids_ok5;
        TU_CHECK(call_run(&a, NULL) == AMXQ_OK && call_run(&a, g_ctx[2]) == AMXQ_OK,
                 "a NULL expert no id names is allowed");
        fill_canary(cbuf, c_f + 64);
        free(foreign);
    }
    {
        int32_t bad_ids[6] = {0, 1, 2, 4, 1, 1};
        BAD("id == n_experts", AMXQ_ERR_ARG, a.ids = bad_ids);
        int32_t neg_ids[6] = {0, 1, 2, 3, -1, 1};
        BAD("id -1", AMXQ_ERR_ARG, a.ids = neg_ids);
        int32_t big_ids[6] = {0, 1, 2, 3, 1, INT32_MIN};
        BAD("id INT32_MIN", AMXQ_ERR_ARG, a.ids = big_ids);
    }
    BAD("ldx_token < K", AMXQ_ERR_STRIDE, a.ldx_token = k - 1);
    BAD("ldx_slot < K with x_slots = n_slots", AMXQ_ERR_STRIDE, a.x_slots = n_sl;
        a.ldx_slot = k - 1; a.ldx_token = 2 * k);
    BAD("ld_ids < n_slots", AMXQ_ERR_STRIDE, a.ld_ids = n_sl - 1);
    BAD("ldc_slot < N", AMXQ_ERR_STRIDE, a.ldc_slot = n - 1);
    BAD("ldc_token < N", AMXQ_ERR_STRIDE, a.ldc_token = n - 1);
    BAD("ldc_token negative", AMXQ_ERR_STRIDE, a.ldc_token = -n);
    BAD("ldx_token huge", AMXQ_ERR_STRIDE, a.ldx_token = INT64_MAX / 2);
    BAD("ldc_slot huge", AMXQ_ERR_STRIDE, a.ldc_slot = INT64_MAX / 2);
    BAD("rows of C collide (ldc_token = ldc_slot = N)", AMXQ_ERR_OVERLAP, a.ldc_token = n);
    BAD("rows of C collide (ldc_token = N + 7, slot-major too short)", AMXQ_ERR_OVERLAP,
        a.ldc_token = n + 7;
        a.ldc_slot = 2 * n);
    BAD("C on X", AMXQ_ERR_OVERLAP, a.c = (float *)(uintptr_t)a.x + 5);
    BAD("C on ids", AMXQ_ERR_OVERLAP, a.c = (float *)(void *)ids);
    BAD("C on an expert", AMXQ_ERR_OVERLAP, a.c = (float *)((uint8_t *)ex[1] + 256));
    BAD("C on the experts array", AMXQ_ERR_OVERLAP, a.c = (float *)(void *)experts);
    {
        const size_t need = amxq_matmul_id_workspace_size(type, n, k, 4, 1, n_sl, n_tok, 1);
        const size_t need2 = amxq_matmul_id_workspace_size(type, n, k, 4, 1, n_sl, n_tok, 2);
        TU_CHECK(need != 0 && need2 > need, "workspace sizes %zu %zu", need, need2);
        uint8_t *ws = aligned_alloc(AMXQ_ALIGNMENT, need2 + 64);
        /* the context needs the 2-thread size: check the plain call with its own sizes */
        a = ok;
        a.prm.workspace = ws;
        a.prm.workspace_size = need - 64;
        TU_CHECK(call_run(&a, NULL) == AMXQ_ERR_BUFFER_SIZE, "workspace short by 64");
        a.prm.workspace_size = need;
        TU_CHECK(call_run(&a, NULL) == AMXQ_OK, "workspace exact");
        a.prm.workspace_size = need;
        TU_CHECK(call_run(&a, g_ctx[2]) == AMXQ_ERR_BUFFER_SIZE, "ctx: one thread's workspace");
        a.prm.workspace_size = need2;
        TU_CHECK(call_run(&a, g_ctx[2]) == AMXQ_OK, "ctx workspace exact");
        fill_canary(cbuf, c_f + 64);
        BAD("workspace misaligned", AMXQ_ERR_ALIGNMENT, a.prm.workspace = ws + 8;
            a.prm.workspace_size = need2 + 56);
        BAD("workspace too small", AMXQ_ERR_BUFFER_SIZE, a.prm.workspace = ws;
            a.prm.workspace_size = 64);
        {
            /* the workspace starts 64 bytes before C ends */
            const size_t cb = (c_f * 4 + 63) / 64 * 64;
            uint8_t *arena = aligned_alloc(AMXQ_ALIGNMENT, cb + need2);
            float *c_in = (float *)(void *)arena;
            fill_canary(c_in, c_f);
            a = ok;
            a.prm.workspace = arena + cb - 64;
            a.prm.workspace_size = need2;
            a.c = c_in;
            expect_fail("workspace on C", &a, AMXQ_ERR_OVERLAP, (uint8_t *)c_in, c_f * 4);
            free(arena);
        }
        void *big = aligned_alloc(AMXQ_ALIGNMENT, need2 + psize + 64);
        memcpy((uint8_t *)big + 64, ex[3], psize); /* an expert inside the workspace */
        const void *inside[4] = {ex[0], ex[1], ex[2], (uint8_t *)big + 64};
        BAD("workspace on an expert", AMXQ_ERR_OVERLAP, a.experts = inside; a.prm.workspace = big;
            a.prm.workspace_size = need2);
        free(big);
        free(ws);
    }
    {
        /* A forced family this machine cannot run: amxq_isa_check()'s answer. */
        for (int isa = AMXQ_ISA_SCALAR; isa < AMXQ_ISA_COUNT; isa++) {
            const amxq_status why = amxq_isa_check((amxq_isa)isa);
            if (why != AMXQ_OK)
                BAD(amxq_isa_name((amxq_isa)isa), why, a.prm.isa = (amxq_isa)isa);
        }
    }
    /* NULL context; the C NULL case (nothing to guard). */
    TU_CHECK(amxq_ctx_matmul_id(NULL, experts, 4, xbuf, 1, k, k, ids, n_sl, n_sl, n_tok, cbuf, n,
                                n_sl * n, NULL) == AMXQ_ERR_NULL,
             "NULL ctx");
    a = ok;
    a.c = NULL;
    TU_CHECK(call_run(&a, NULL) == AMXQ_ERR_NULL && call_run(&a, g_ctx[2]) == AMXQ_ERR_NULL,
             "c NULL");
    TU_CHECK(is_canary(cbuf) && is_canary(cbuf + c_f - 1), "canaries");

    /* Allocation failure: NOMEM, C untouched, nothing leaks (ASan). */
    a = ok;
    a.use_prm = 0;
    amxq_alloc_fail_after(1);
    const amxq_status st = call_run(&a, NULL);
    amxq_alloc_fail_after(0);
    TU_CHECK(st == AMXQ_ERR_NOMEM, "allocation failure: %s", amxq_status_str(st));
    TU_CHECK(is_canary(cbuf) && is_canary(cbuf + c_f - 1), "C written on NOMEM");

    /* The size query refuses what the call refuses. */
    TU_CHECK(amxq_matmul_id_workspace_size(type, n, k, 0, 1, 1, 1, 1) == 0, "n_experts 0");
    TU_CHECK(amxq_matmul_id_workspace_size(type, n, k, 4, 3, 2, 1, 1) == 0, "x_slots 3");
    TU_CHECK(amxq_matmul_id_workspace_size(type, n, k, 4, 1, 2, 1, 0) == 0, "0 threads");
    TU_CHECK(amxq_matmul_id_workspace_size(type, n, k + 1, 4, 1, 2, 1, 1) == 0, "K block");
    TU_CHECK(amxq_matmul_id_workspace_size((amxq_type)5, n, k, 4, 1, 2, 1, 1) == 0, "type");
    TU_CHECK(
        amxq_matmul_id_workspace_size(type, n, k, 4, 1, (int64_t)1 << 20, (int64_t)1 << 11, 1) == 0,
        "pairs 2^31");
#undef BAD
    for (int e = 0; e < 4; e++)
        free(ex[e]);
    free(other_n);
    free(other_t);
    free(corrupt);
    free(mis);
    free(xbuf);
    free(cbuf);
}

/* A product large enough that the contexts split experts, panels and rows between threads (above
 * the 2^18 multiply-add cut-off), AUTO and scalar, against per-row amxq_matmul; for the first four
 * types (the split does not depend on the type; see check_type). */
static void check_large(void)
{
    for (int ti = 0; ti < 4; ti++) {
        struct problem p;
        memset(&p, 0, sizeof p);
        p.type = types[ti];
        p.n = 200;
        p.k = amxq_type_block(types[ti]) == 256 ? 512 : 256;
        for (int e = 0; e < 6; e++)
            p.experts[e] = make_expert(p.type, p.n, p.k);
        p.n_tokens = 150;
        p.n_slots = 3;
        p.x_slots = 1;
        p.ldx_slot = p.k;
        p.ldx_token = p.k;
        p.ld_ids = p.n_slots;
        p.ldc_slot = p.n;
        p.ldc_token = p.n * p.n_slots;
        p.name = "large skewed";
        problem_alloc(&p);
        route(&p, R_SKEWED);
        check_problem(&p, 0);
        problem_free(&p);
        for (int e = 0; e < 6; e++)
            free(p.experts[e]);
    }
}

int main(void)
{
    for (int t = 1; t <= MAX_CTX; t++) {
        amxq_ctx_params cp;
        memset(&cp, 0, sizeof cp);
        cp.n_threads = t;
        if (amxq_ctx_create(&cp, &g_ctx[t]) != AMXQ_OK) {
            fprintf(stderr, "amxq_ctx_create(%d) failed\n", t);
            return 1;
        }
    }
    printf("families:");
    for (int isa = AMXQ_ISA_SCALAR; isa < AMXQ_ISA_COUNT; isa++)
        if (amxq_isa_check((amxq_isa)isa) == AMXQ_OK)
            printf(" %s", amxq_isa_name((amxq_isa)isa));
    printf("\n");
    check_bad_input();
    for (int ti = 0; ti < N_TYPES; ti++)
        check_type(types[ti], ti < 4);
    check_large();
    for (int t = 1; t <= MAX_CTX; t++)
        amxq_ctx_destroy(g_ctx[t]);
    printf("%ld products checked, %d failures\n", g_checked, tu_failures);
    return tu_failures ? 1 : 0;
}
