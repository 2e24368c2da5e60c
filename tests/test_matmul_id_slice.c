/*
 * The expert product's slice API (include/amxq.h, amxq_matmul_id_plan / amxq_quantize_id_slice /
 * amxq_matmul_id_slice), run as an engine runs it: nth real threads, each quantizing its share,
 * a barrier, each computing its share.
 *
 * Results: for every amxq type, shapes from one token with one slot to 70 tokens of 4 slots,
 * N from 1 to 200 (odd N, ragged last panel), x_slots = 1 and = n_slots, routings with empty
 * experts, all pairs to one expert, repeated ids and NULL experts no id names, every kernel
 * family this machine runs (AUTO included): C (gaps between rows included) must be bitwise equal
 * to amxq_matmul_id() with the same params, for nth = 1..5 on real threads; also with a quantize
 * step and a compute step of different thread counts, run one slice at a time in reverse order.
 * The workspace is filled with junk first (a slice may rely only on what the quantize step
 * wrote), and guard bytes around the workspace and C must survive.
 *
 * Bad input: every status the header lists for the three calls; on failure the plan, the
 * workspace and C are untouched.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "amxq.h"
#include "common/ggml_data.h"
#include "common/testutil.h"
#include "internal.h"
#include "pack/pack.h"

#define MAX_TH   5
#define MAX_EXP  9
#define GUARD    256
#define WS_FILL  0x5C
#define CANARY_U 0x7fa5a5a5u /* a NaN no kernel produces */

static uint64_t g_rng = 0x736c6963656d6f65ull; /* "slicemoe" */
static long g_checked;

/* ---- Inputs --------------------------------------------------------------------------------- */

/* A packed expert: random ggml blocks with tame fp16 scales (2^-8 .. 2^-7), so C is finite. */
static void *make_expert(amxq_type t, int64_t n, int64_t k)
{
    void *g = tu_random_ggml(&g_rng, t, n, k);
    void *p = g != NULL ? tu_pack_new(t, g, n, k) : NULL;
    TU_CHECK(p != NULL, "pack");
    free(g);
    return p;
}

static void fill_canary(float *c, size_t n)
{
    const uint32_t u = CANARY_U;
    for (size_t i = 0; i < n; i++)
        memcpy(c + i, &u, 4);
}

/* One problem: experts (some NULL), X, the routing, C's layout. */
struct problem {
    amxq_type type;
    int64_t n, k, n_experts;
    void *experts[MAX_EXP];
    int64_t x_slots, ldx_slot, ldx_token;
    int64_t n_slots, ld_ids, n_tokens;
    int64_t ldc_slot, ldc_token;
    float *x;
    int32_t *ids;
    size_t c_elems;
};

enum routing { R_UNIFORM, R_SKEWED, R_TWO_EXPERTS, R_ONE_EXPERT, R_REPEATED, R_COUNT };
static const char *routing_name[R_COUNT] = {"uniform", "skewed", "two experts", "one expert",
                                            "repeated ids"};

/* Experts n_experts - 1 (when n_experts > 2) stays NULL and is never named. */
static void problem_make(struct problem *p, enum routing r, int layout)
{
    const int64_t k = p->k, n = p->n;
    if (layout == 0) { /* ggml's contiguous layout */
        p->ldx_slot = k;
        p->ldx_token = p->x_slots * k;
        p->ld_ids = p->n_slots;
        p->ldc_slot = n;
        p->ldc_token = p->n_slots * n;
    } else { /* padding everywhere; slot-major C */
        p->ldx_slot = k + 3;
        p->ldx_token = p->x_slots * (k + 3) + 5;
        p->ld_ids = p->n_slots + 1;
        p->ldc_token = n + 2;
        p->ldc_slot = p->n_tokens * (n + 2) + 1;
    }
    const int64_t xt = p->n_tokens > 1 ? p->ldx_token : 0, xs = p->x_slots > 1 ? p->ldx_slot : 0;
    const size_t x_elems = (size_t)((p->n_tokens - 1) * xt + (p->x_slots - 1) * xs + k);
    p->x = malloc(x_elems * sizeof(float));
    for (size_t i = 0; i < x_elems; i++)
        p->x[i] = tu_randf(&g_rng) * 4.0f;
    const int64_t it = p->n_tokens > 1 ? p->ld_ids : 0;
    const size_t id_elems = (size_t)((p->n_tokens - 1) * it + p->n_slots);
    p->ids = malloc(id_elems * sizeof(int32_t));
    for (size_t i = 0; i < id_elems; i++)
        p->ids[i] = -3; /* padding: never read */
    const int64_t ct = p->n_tokens > 1 ? p->ldc_token : 0, cs = p->n_slots > 1 ? p->ldc_slot : 0;
    p->c_elems = (size_t)((p->n_tokens - 1) * ct + (p->n_slots - 1) * cs + n);
    const int64_t live = p->n_experts > 2 ? p->n_experts - 1 : p->n_experts;
    for (int64_t e = 0; e < p->n_experts; e++)
        p->experts[e] = e < live ? make_expert(p->type, n, k) : NULL;
    for (int64_t t = 0; t < p->n_tokens; t++)
        for (int64_t s = 0; s < p->n_slots; s++) {
            const uint64_t v = tu_rand(&g_rng);
            int32_t e;
            switch (r) {
            case R_UNIFORM:
                e = (int32_t)(v % (uint64_t)live);
                break;
            case R_SKEWED:
                e = v % 10 < 8 ? (int32_t)(live - 1) : (int32_t)(v % (uint64_t)live);
                break;
            case R_TWO_EXPERTS: /* the others empty */
                e = v % 2 ? 0 : (int32_t)(live / 2);
                break;
            case R_ONE_EXPERT:
                e = (int32_t)(live > 1 ? 1 : 0);
                break;
            default:
                e = (int32_t)((uint64_t)t * 3 % (uint64_t)live);
                break;
            }
            p->ids[t * it + s] = e;
        }
}

static void problem_free(struct problem *p)
{
    for (int64_t e = 0; e < p->n_experts; e++)
        free(p->experts[e]);
    free(p->x);
    free(p->ids);
}

/* ---- Running on real threads ------------------------------------------------------------------
 */

struct run {
    const struct problem *p;
    const amxq_id_plan *plan;
    uint8_t *ws;
    float *c;
    int nth;
    pthread_barrier_t bar;
    amxq_status st_q[MAX_TH], st_c[MAX_TH];
};

struct worker {
    struct run *r;
    int ith;
};

static void *worker_main(void *arg)
{
    const struct worker *w = arg;
    struct run *r = w->r;
    const struct problem *p = r->p;
    r->st_q[w->ith] = amxq_quantize_id_slice(r->plan, p->x, p->ldx_slot, p->ldx_token, r->ws,
                                             r->plan->workspace_size, w->ith, r->nth);
    pthread_barrier_wait(&r->bar);
    r->st_c[w->ith] = amxq_matmul_id_slice(r->plan, (const void *const *)p->experts, p->ids,
                                           p->ld_ids, r->ws, r->plan->workspace_size, r->c,
                                           p->ldc_slot, p->ldc_token, w->ith, r->nth);
    return NULL;
}

/* Buffers with guard bytes: the workspace (junk inside) and C (canaries inside). */
static int run_threads(const struct problem *p, const amxq_id_plan *plan, int nth, float *c_out)
{
    tu_buf ws = tu_buf_new(plan->workspace_size, GUARD);
    memset(ws.p, WS_FILL, plan->workspace_size);
    tu_buf cb = tu_buf_new(p->c_elems * sizeof(float), GUARD);
    fill_canary((float *)(void *)cb.p, p->c_elems);
    struct run r;
    memset(&r, 0, sizeof r);
    r.p = p;
    r.plan = plan;
    r.ws = ws.p;
    r.c = (float *)(void *)cb.p;
    r.nth = nth;
    pthread_barrier_init(&r.bar, NULL, (unsigned)nth);
    pthread_t th[MAX_TH];
    struct worker w[MAX_TH];
    for (int i = 0; i < nth; i++) {
        w[i].r = &r;
        w[i].ith = i;
        if (i > 0)
            TU_CHECK(pthread_create(&th[i], NULL, worker_main, &w[i]) == 0, "pthread_create");
    }
    worker_main(&w[0]);
    for (int i = 1; i < nth; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&r.bar);
    int ok = 1;
    for (int i = 0; i < nth; i++)
        if (r.st_q[i] != AMXQ_OK || r.st_c[i] != AMXQ_OK) {
            TU_CHECK(0, "thread %d of %d: %s / %s", i, nth, amxq_status_str(r.st_q[i]),
                     amxq_status_str(r.st_c[i]));
            ok = 0;
        }
    TU_CHECK(tu_guard_ok(&ws) && tu_guard_ok(&cb), "nth %d: written outside the workspace or C",
             nth);
    memcpy(c_out, cb.p, p->c_elems * sizeof(float));
    tu_buf_free(&ws);
    tu_buf_free(&cb);
    return ok;
}

/* The quantize step on nth_q slices and the compute step on nth_c slices, one at a time on this
 * thread, the compute slices last to first. */
static int run_serial(const struct problem *p, const amxq_id_plan *plan, int nth_q, int nth_c,
                      float *c)
{
    uint8_t *ws = aligned_alloc(AMXQ_ALIGNMENT, plan->workspace_size);
    memset(ws, WS_FILL, plan->workspace_size);
    fill_canary(c, p->c_elems);
    int ok = 1;
    for (int i = 0; i < nth_q; i++)
        ok &= amxq_quantize_id_slice(plan, p->x, p->ldx_slot, p->ldx_token, ws,
                                     plan->workspace_size, i, nth_q) == AMXQ_OK;
    for (int i = nth_c - 1; i >= 0; i--)
        ok &= amxq_matmul_id_slice(plan, (const void *const *)p->experts, p->ids, p->ld_ids, ws,
                                   plan->workspace_size, c, p->ldc_slot, p->ldc_token, i,
                                   nth_c) == AMXQ_OK;
    TU_CHECK(ok, "serial run %d/%d failed", nth_q, nth_c);
    free(ws);
    return ok;
}

static void compare(const char *how, const float *got, const float *want, size_t n)
{
    g_checked++;
    if (memcmp(got, want, n * sizeof(float)) != 0) {
        size_t i = 0;
        while (i < n && memcmp(got + i, want + i, 4) == 0)
            i++;
        TU_CHECK(0, "%s: C[%zu] = %a, amxq_matmul_id gives %a", how, i, (double)got[i],
                 (double)want[i]);
    }
}

static void check_problem(const struct problem *p, const char *name, int slow_families)
{
    float *want = malloc(p->c_elems * sizeof(float));
    float *got = malloc(p->c_elems * sizeof(float));
    for (int isa = AMXQ_ISA_AUTO; isa < AMXQ_ISA_COUNT; isa++) {
        if (isa != AMXQ_ISA_AUTO && amxq_isa_check((amxq_isa)isa) != AMXQ_OK)
            continue;
        if (!slow_families && (isa == AMXQ_ISA_AMX_EMU || isa == AMXQ_ISA_AVX512_EMU))
            continue;
        amxq_matmul_params prm;
        memset(&prm, 0, sizeof prm);
        prm.isa = (amxq_isa)isa;
        fill_canary(want, p->c_elems);
        amxq_status st =
            amxq_matmul_id((const void *const *)p->experts, p->n_experts, p->x, p->x_slots,
                           p->ldx_slot, p->ldx_token, p->ids, p->n_slots, p->ld_ids, p->n_tokens,
                           want, p->ldc_slot, p->ldc_token, &prm);
        TU_CHECK(st == AMXQ_OK, "%s: amxq_matmul_id: %s", name, amxq_status_str(st));
        amxq_id_plan plan;
        st = amxq_matmul_id_plan(p->type, p->n, p->k, p->n_experts, p->x_slots, p->n_slots,
                                 p->n_tokens, MAX_TH, &prm, &plan);
        TU_CHECK(st == AMXQ_OK, "%s: plan: %s", name, amxq_status_str(st));
        if (st != AMXQ_OK)
            continue;
        TU_CHECK(plan.workspace_size % AMXQ_ALIGNMENT == 0, "workspace size %zu",
                 plan.workspace_size);
        char how[256];
        for (int nth = 1; nth <= MAX_TH; nth++) {
            snprintf(how, sizeof how, "%s %s isa %s threads %d", name, amxq_type_name(p->type),
                     amxq_isa_name((amxq_isa)isa), nth);
            if (run_threads(p, &plan, nth, got))
                compare(how, got, want, p->c_elems);
        }
        /* A plan for exactly the compute step's threads; quantize and compute split apart. */
        amxq_id_plan plan3;
        st = amxq_matmul_id_plan(p->type, p->n, p->k, p->n_experts, p->x_slots, p->n_slots,
                                 p->n_tokens, 3, &prm, &plan3);
        TU_CHECK(st == AMXQ_OK && plan3.workspace_size < plan.workspace_size, "plan for 3");
        snprintf(how, sizeof how, "%s %s isa %s quantize 5 / compute 3 serial", name,
                 amxq_type_name(p->type), amxq_isa_name((amxq_isa)isa));
        if (st == AMXQ_OK && run_serial(p, &plan3, 5, 3, got))
            compare(how, got, want, p->c_elems);
        snprintf(how, sizeof how, "%s %s isa %s quantize 2 / compute 3 threads", name,
                 amxq_type_name(p->type), amxq_isa_name((amxq_isa)isa));
        if (st == AMXQ_OK && run_serial(p, &plan3, 2, 3, got))
            compare(how, got, want, p->c_elems);
    }
    free(want);
    free(got);
}

static void check_results(void)
{
    static const struct {
        int64_t n, kb, n_experts, n_tokens, n_slots;
    } shapes[] = {
        {40, 2, 7, 1, 1},  /* M = 1: one token, one slot */
        {17, 1, 5, 1, 4},  /* decode: one token, top-4, odd N */
        {1, 1, 3, 6, 2},   /* N = 1 */
        {72, 2, 9, 7, 2},  /* MoE-like: 8 live experts, top-2, M = 7 */
        {33, 1, 2, 32, 2}, /* two experts, both chosen by every token */
        {200, 1, 7, 70, 4},
    };
    int tested = 0;
    for (int t = 0; t < 64; t++) {
        const amxq_type type = (amxq_type)t;
        if (amxq_type_name(type) == NULL)
            continue;
        tested++;
        const int64_t block = amxq_type_block(type);
        for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++)
            for (int xs = 0; xs < 2; xs++)
                for (int r = 0; r < R_COUNT; r++) {
                    /* The larger shapes: fewer routings and layouts (the emulators are slow). */
                    const int big = shapes[si].n_tokens * shapes[si].n_slots > 64;
                    if (big && r != R_SKEWED && r != R_TWO_EXPERTS)
                        continue;
                    struct problem p;
                    memset(&p, 0, sizeof p);
                    p.type = type;
                    p.n = shapes[si].n;
                    p.k = shapes[si].kb * (block < 64 ? 64 : block);
                    p.n_experts = shapes[si].n_experts;
                    p.n_tokens = shapes[si].n_tokens;
                    p.n_slots = shapes[si].n_slots;
                    p.x_slots = xs ? p.n_slots : 1;
                    const int layout = (int)((si + (size_t)r) % 2);
                    problem_make(&p, (enum routing)r, layout);
                    char name[160];
                    snprintf(name, sizeof name,
                             "N %lld K %lld experts %lld tokens %lld slots %lld x_slots %lld "
                             "layout %d %s",
                             (long long)p.n, (long long)p.k, (long long)p.n_experts,
                             (long long)p.n_tokens, (long long)p.n_slots, (long long)p.x_slots,
                             layout, routing_name[r]);
                    check_problem(&p, name, !big && r < 2);
                    problem_free(&p);
                }
    }
    TU_CHECK(tested >= 7, "only %d amxq types", tested);
}

/* ---- Bad input ------------------------------------------------------------------------------ */

static void expect_plan(const char *what, amxq_status want, amxq_type type, int64_t n, int64_t k,
                        int64_t ne, int64_t xs, int64_t ns, int64_t nt, int nth,
                        const amxq_matmul_params *prm)
{
    amxq_id_plan plan, before;
    memset(&plan, 0xAB, sizeof plan);
    before = plan;
    const amxq_status st = amxq_matmul_id_plan(type, n, k, ne, xs, ns, nt, nth, prm, &plan);
    TU_CHECK(st == want, "plan %s: got %s, want %s", what, amxq_status_str(st),
             amxq_status_str(want));
    TU_CHECK(memcmp(&plan, &before, sizeof plan) == 0, "plan %s: written on failure", what);
}

/* The arguments of both slices, to be broken one at a time. */
struct sargs {
    amxq_id_plan plan;
    const void *const *experts;
    const float *x;
    int64_t ldx_slot, ldx_token;
    const int32_t *ids;
    int64_t ld_ids;
    void *ws;
    size_t ws_size;
    float *c;
    int64_t ldc_slot, ldc_token;
    int ith, nth;
    int null_plan;
};

static amxq_status q_call(const struct sargs *a)
{
    return amxq_quantize_id_slice(a->null_plan ? NULL : &a->plan, a->x, a->ldx_slot, a->ldx_token,
                                  a->ws, a->ws_size, a->ith, a->nth);
}

static amxq_status c_call(const struct sargs *a)
{
    return amxq_matmul_id_slice(a->null_plan ? NULL : &a->plan, a->experts, a->ids, a->ld_ids,
                                a->ws, a->ws_size, a->c, a->ldc_slot, a->ldc_token, a->ith, a->nth);
}

/* `a` must fail with `want`, leaving the regions (the workspace arena, C's arena) untouched. */
static void expect_slice(const char *what, int compute, const struct sargs *a, amxq_status want,
                         uint8_t *r1, size_t n1, uint8_t *r2, size_t n2)
{
    uint8_t *c1 = malloc(n1), *c2 = malloc(n2);
    memcpy(c1, r1, n1);
    memcpy(c2, r2, n2);
    const amxq_status st = compute ? c_call(a) : q_call(a);
    TU_CHECK(st == want, "%s slice, %s: got %s, want %s", compute ? "compute" : "quantize", what,
             amxq_status_str(st), amxq_status_str(want));
    TU_CHECK(memcmp(c1, r1, n1) == 0 && memcmp(c2, r2, n2) == 0, "%s slice, %s: written on failure",
             compute ? "compute" : "quantize", what);
    memcpy(r1, c1, n1);
    memcpy(r2, c2, n2);
    free(c1);
    free(c2);
}

static void check_bad_input(void)
{
    const amxq_type type = AMXQ_TYPE_Q4_0;
    const int64_t n = 32, k = 64, nt = 3, ns = 2, ne = 4;
    amxq_matmul_params prm;
    memset(&prm, 0, sizeof prm);

    /* The plan. */
    expect_plan("isa 99", AMXQ_ERR_ISA_UNKNOWN, type, n, k, ne, 1, ns, nt, 2,
                &(amxq_matmul_params){(amxq_isa)99, 0, NULL, 0});
    expect_plan("flag bit 1", AMXQ_ERR_ARG, type, n, k, ne, 1, ns, nt, 2,
                &(amxq_matmul_params){AMXQ_ISA_AUTO, 2, NULL, 0});
    TU_CHECK(amxq_matmul_id_plan(type, n, k, ne, 1, ns, nt, 2, NULL, NULL) == AMXQ_ERR_NULL,
             "plan NULL");
    expect_plan("type 5", AMXQ_ERR_TYPE, (amxq_type)5, n, k, ne, 1, ns, nt, 2, NULL);
    expect_plan("N 0", AMXQ_ERR_SHAPE, type, 0, k, ne, 1, ns, nt, 2, NULL);
    expect_plan("K -32", AMXQ_ERR_SHAPE, type, n, -32, ne, 1, ns, nt, 2, NULL);
    expect_plan("K 48", AMXQ_ERR_K_BLOCK, type, n, 48, ne, 1, ns, nt, 2, NULL);
    expect_plan("n_experts 0", AMXQ_ERR_SHAPE, type, n, k, 0, 1, ns, nt, 2, NULL);
    expect_plan("n_experts 2^31", AMXQ_ERR_SHAPE, type, n, k, (int64_t)1 << 31, 1, ns, nt, 2, NULL);
    expect_plan("n_slots 0", AMXQ_ERR_SHAPE, type, n, k, ne, 1, 0, nt, 2, NULL);
    expect_plan("n_tokens 0", AMXQ_ERR_SHAPE, type, n, k, ne, 1, ns, 0, 2, NULL);
    expect_plan("pairs 2^31", AMXQ_ERR_SHAPE, type, n, k, ne, 1, 2, (int64_t)1 << 30, 2, NULL);
    expect_plan("x_slots 3", AMXQ_ERR_ARG, type, n, k, ne, 3, ns, nt, 2, NULL);
    expect_plan("x_slots 0", AMXQ_ERR_ARG, type, n, k, ne, 0, ns, nt, 2, NULL);
    expect_plan("n_threads 0", AMXQ_ERR_ARG, type, n, k, ne, 1, ns, nt, 0, NULL);
    expect_plan("n_threads 4097", AMXQ_ERR_ARG, type, n, k, ne, 1, ns, nt, 4097, NULL);
    for (int isa = AMXQ_ISA_SCALAR; isa < AMXQ_ISA_COUNT; isa++) {
        const amxq_status why = amxq_isa_check((amxq_isa)isa);
        if (why != AMXQ_OK)
            expect_plan(amxq_isa_name((amxq_isa)isa), why, type, n, k, ne, 1, ns, nt, 2,
                        &(amxq_matmul_params){(amxq_isa)isa, 0, NULL, 0});
    }

    /* The slices: one arena holds X, ids and C (overlaps point into it), another the workspace
     * with room for an expert inside. */
    void *ex[4];
    for (int e = 0; e < 4; e++)
        ex[e] = make_expert(type, n, k);
    void *other_n = make_expert(type, n + 16, k);
    void *q8[4];
    for (int e = 0; e < 4; e++)
        q8[e] = make_expert(AMXQ_TYPE_Q8_0, n, k);
    const size_t psize = amxq_packed_size(type, n, k);
    uint8_t *corrupt = aligned_alloc(AMXQ_ALIGNMENT, psize);
    memcpy(corrupt, ex[0], psize);
    corrupt[40] ^= 1;
    uint8_t *mis = aligned_alloc(AMXQ_ALIGNMENT, psize + 64);
    memcpy(mis + 8, ex[1], psize);
    const void *experts[4] = {ex[0], ex[1], ex[2], ex[3]};

    amxq_id_plan plan;
    TU_CHECK(amxq_matmul_id_plan(type, n, k, ne, 1, ns, nt, 2, NULL, &plan) == AMXQ_OK, "plan");
    const size_t x_b = (size_t)(nt * k) * 4, ids_b = 64, c_b = (size_t)(nt * ns * n) * 4;
    const size_t arena_b = x_b + ids_b + c_b + 256 + plan.workspace_size;
    uint8_t *arena = aligned_alloc(AMXQ_ALIGNMENT, arena_b);
    float *x = (float *)(void *)arena;
    for (int64_t i = 0; i < nt * k; i++)
        x[i] = tu_randf(&g_rng);
    int32_t *ids = (int32_t *)(void *)(arena + x_b);
    const int32_t ids0[6] = {0, 1, 2, 3, 1, 1};
    memcpy(ids, ids0, sizeof ids0);
    float *c = (float *)(void *)(arena + x_b + ids_b);
    fill_canary(c, (size_t)(arena_b - x_b - ids_b) / 4);
    const size_t wsb = plan.workspace_size + psize + 256;
    uint8_t *wsa = aligned_alloc(AMXQ_ALIGNMENT, wsb);
    memset(wsa, WS_FILL, wsb);

    const struct sargs ok = {plan, experts, x,      k, k, ids, ns, wsa, plan.workspace_size,
                             c,    n,       ns * n, 0, 2, 0};
    TU_CHECK(q_call(&ok) == AMXQ_OK, "the valid quantize slice");
    struct sargs a;
    memset(wsa, WS_FILL, wsb);

#define QBAD(what, want, ...)                                                                      \
    do {                                                                                           \
        a = ok;                                                                                    \
        __VA_ARGS__;                                                                               \
        expect_slice(what, 0, &a, want, wsa, wsb, arena, arena_b);                                 \
    } while (0)
#define CBAD(what, want, ...)                                                                      \
    do {                                                                                           \
        a = ok;                                                                                    \
        __VA_ARGS__;                                                                               \
        expect_slice(what, 1, &a, want, wsa, wsb, arena, arena_b);                                 \
    } while (0)

    /* Both slices: the plan and the thread index. */
    for (int compute = 0; compute < 2; compute++) {
#define BOTH(what, want, ...)                                                                      \
    do {                                                                                           \
        a = ok;                                                                                    \
        __VA_ARGS__;                                                                               \
        expect_slice(what, compute, &a, want, wsa, wsb, arena, arena_b);                           \
    } while (0)
        BOTH("plan NULL", AMXQ_ERR_NULL, a.null_plan = 1);
        BOTH("workspace NULL", AMXQ_ERR_NULL, a.ws = NULL);
        BOTH("ith -1", AMXQ_ERR_ARG, a.ith = -1);
        BOTH("ith == nth", AMXQ_ERR_ARG, a.ith = 2);
        BOTH("nth 0", AMXQ_ERR_ARG, a.nth = 0; a.ith = 0);
        BOTH("plan: workspace_size changed", AMXQ_ERR_ARG, a.plan.workspace_size += 64;
             a.ws_size += 64);
        BOTH("plan: n_tokens changed", AMXQ_ERR_ARG, a.plan.n_tokens = 2);
        BOTH("plan: n_threads changed", AMXQ_ERR_ARG, a.plan.n_threads = 3);
        BOTH("plan: flags", AMXQ_ERR_ARG, a.plan.flags = 2);
        BOTH("plan: isa 99", AMXQ_ERR_ARG, a.plan.isa = (amxq_isa)99);
        BOTH("plan: type 5", AMXQ_ERR_ARG, a.plan.type = (amxq_type)5);
        BOTH("plan: x_slots 3", AMXQ_ERR_ARG, a.plan.x_slots = 3);
        BOTH("workspace short by 64", AMXQ_ERR_BUFFER_SIZE, a.ws_size -= 64);
        BOTH("workspace misaligned", AMXQ_ERR_ALIGNMENT, a.ws = wsa + 8);
#undef BOTH
    }

    /* Quantize. */
    QBAD("x NULL", AMXQ_ERR_NULL, a.x = NULL);
    QBAD("ldx_token < K", AMXQ_ERR_STRIDE, a.ldx_token = k - 1);
    QBAD("ldx_token huge", AMXQ_ERR_STRIDE, a.ldx_token = INT64_MAX / 2);
    {
        amxq_id_plan p2;
        TU_CHECK(amxq_matmul_id_plan(type, n, k, ne, ns, ns, nt, 2, NULL, &p2) == AMXQ_OK, "p2");
        QBAD("ldx_slot < K with x_slots = n_slots", AMXQ_ERR_STRIDE, a.plan = p2;
             a.ws_size = p2.workspace_size; a.ldx_slot = k - 1; a.ldx_token = 2 * k);
    }
    QBAD("workspace on X", AMXQ_ERR_OVERLAP, a.ws = arena; a.ws_size = arena_b);
    /* One token: its unused stride may be anything. */
    {
        amxq_id_plan p1;
        TU_CHECK(amxq_matmul_id_plan(type, n, k, ne, 1, ns, 1, 2, NULL, &p1) == AMXQ_OK, "p1");
        a = ok;
        a.plan = p1;
        a.ws_size = p1.workspace_size;
        a.ldx_token = -9;
        a.ldx_slot = 0;
        TU_CHECK(q_call(&a) == AMXQ_OK, "one token, junk strides");
        memset(wsa, WS_FILL, wsb);
    }

    /* Compute. */
    CBAD("experts NULL", AMXQ_ERR_NULL, a.experts = NULL);
    CBAD("ids NULL", AMXQ_ERR_NULL, a.ids = NULL);
    CBAD("c NULL", AMXQ_ERR_NULL, a.c = NULL);
    CBAD("nth 3 > plan's 2", AMXQ_ERR_ARG, a.nth = 3);
    {
        const void *none[4] = {NULL, NULL, NULL, NULL};
        CBAD("every expert NULL", AMXQ_ERR_NULL, a.experts = none);
        const void *null_used[4] = {ex[0], ex[1], NULL, ex[3]};
        CBAD("a NULL expert chosen", AMXQ_ERR_NULL, a.experts = null_used);
        const void *mixed[4] = {ex[0], other_n, ex[2], ex[3]};
        CBAD("an expert of another N", AMXQ_ERR_BAD_PACKED, a.experts = mixed);
        const void *all_q8[4] = {q8[0], q8[1], q8[2], q8[3]};
        CBAD("experts of another type than the plan's", AMXQ_ERR_BAD_PACKED, a.experts = all_q8);
        const void *bad[4] = {ex[0], ex[1], ex[2], corrupt};
        CBAD("an expert corrupted", AMXQ_ERR_BAD_PACKED, a.experts = bad);
        const void *misal[4] = {ex[0], mis + 8, ex[2], ex[3]};
        CBAD("a misaligned expert", AMXQ_ERR_ALIGNMENT, a.experts = misal);
    }
    {
        int32_t big[6] = {0, 1, 2, 4, 1, 1};
        CBAD("id == n_experts", AMXQ_ERR_ARG, a.ids = big);
        int32_t neg[6] = {0, 1, 2, 3, INT32_MIN, 1};
        CBAD("id INT32_MIN", AMXQ_ERR_ARG, a.ids = neg);
    }
    CBAD("ld_ids < n_slots", AMXQ_ERR_STRIDE, a.ld_ids = ns - 1);
    CBAD("ldc_slot < N", AMXQ_ERR_STRIDE, a.ldc_slot = n - 1);
    CBAD("ldc_token < N", AMXQ_ERR_STRIDE, a.ldc_token = n - 1);
    CBAD("ldc_token huge", AMXQ_ERR_STRIDE, a.ldc_token = INT64_MAX / 2);
    CBAD("rows of C collide", AMXQ_ERR_OVERLAP, a.ldc_token = n);
    CBAD("C on ids", AMXQ_ERR_OVERLAP, a.c = (float *)(void *)ids);
    CBAD("C on an expert", AMXQ_ERR_OVERLAP, a.c = (float *)((uint8_t *)ex[2] + 128));
    CBAD("C on the experts array", AMXQ_ERR_OVERLAP, a.c = (float *)(void *)experts);
    CBAD("workspace on C", AMXQ_ERR_OVERLAP, a.ws = arena + (x_b + ids_b) / 64 * 64;
         a.ws_size = plan.workspace_size);
    CBAD("workspace on ids", AMXQ_ERR_OVERLAP, a.ws = arena + x_b / 64 * 64);
    {
        memcpy(wsa + plan.workspace_size + 64, ex[3], psize);
        const void *inside[4] = {ex[0], ex[1], ex[2], wsa + plan.workspace_size + 64};
        a = ok;
        a.experts = inside;
        a.ws_size = wsb; /* the workspace is as large as it says: the expert is inside */
        const amxq_status st = c_call(&a);
        TU_CHECK(st == AMXQ_OK, "an expert after the plan's workspace is apart: %s",
                 amxq_status_str(st));
        fill_canary(c, (size_t)(arena_b - x_b - ids_b) / 4);
        const void *inside2[4] = {ex[0], ex[1], ex[2], wsa + 64};
        memcpy(wsa + 64, ex[3], psize);
        uint8_t *save = malloc(wsb);
        memcpy(save, wsa, wsb);
        a = ok;
        a.experts = inside2;
        TU_CHECK(c_call(&a) == AMXQ_ERR_OVERLAP, "workspace on an expert");
        TU_CHECK(memcmp(save, wsa, wsb) == 0, "workspace on an expert: written");
        free(save);
        memset(wsa, WS_FILL, wsb);
    }
    for (int isa = AMXQ_ISA_SCALAR; isa < AMXQ_ISA_COUNT; isa++) {
        const amxq_status why = amxq_isa_check((amxq_isa)isa);
        if (why == AMXQ_OK)
            continue;
        /* A plan for a family this machine lacks cannot be made; one edited to name it fails. */
        for (int compute = 0; compute < 2; compute++) {
            a = ok;
            a.plan.isa = (amxq_isa)isa;
            expect_slice(amxq_isa_name((amxq_isa)isa), compute, &a, why, wsa, wsb, arena, arena_b);
        }
    }
    /* A NULL expert no id names is allowed; the valid call after all this still works. */
    {
        int32_t ids_ok[6] = {0, 1, 0, 3, 1, 1};
        const void *null_unused[4] = {ex[0], ex[1], NULL, ex[3]};
        a = ok;
        a.experts = null_unused;
        a.ids = ids_ok;
        TU_CHECK(q_call(&a) == AMXQ_OK && (a.ith = 1, q_call(&a)) == AMXQ_OK &&
                     (a.ith = 0, c_call(&a)) == AMXQ_OK && (a.ith = 1, c_call(&a)) == AMXQ_OK,
                 "a NULL expert no id names");
    }
#undef QBAD
#undef CBAD
    for (int e = 0; e < 4; e++) {
        free(ex[e]);
        free(q8[e]);
    }
    free(other_n);
    free(corrupt);
    free(mis);
    free(arena);
    free(wsa);
}

int main(void)
{
    printf("families:");
    for (int isa = AMXQ_ISA_SCALAR; isa < AMXQ_ISA_COUNT; isa++)
        if (amxq_isa_check((amxq_isa)isa) == AMXQ_OK)
            printf(" %s", amxq_isa_name((amxq_isa)isa));
    printf("\n");
    check_bad_input();
    check_results();
    printf("%ld sliced products checked, %d failures\n", g_checked, tu_failures);
    return tu_failures ? 1 : 0;
}
