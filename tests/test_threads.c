/*
 * Threads: the slice API and the context's pool against the single-threaded amxq_matmul_ex().
 *
 *   - the split itself: every (panel, row) cell covered exactly once, one contiguous panel range
 *     per thread, balanced to within the rounding;
 *   - slices bitwise identical to amxq_matmul_ex() with the same ISA for every nth 1..17 (slices
 *     run one after another here, so any ith/nth mix-up shows), odd shapes, every ISA that runs;
 *   - an engine's own threads (pthread barrier) driving the slice API, and a context's pool;
 *   - several threads using one packed weight at once, many iterations, identical results;
 *   - context create/destroy in a loop (leaks show under ASan), pinning, a context shared by two
 *     threads, and the statuses of bad arguments (nothing written on failure).
 *
 * C is pre-filled with a canary pattern and has guard columns (ldc > N), so an element a slice
 * forgets or writes twice elsewhere fails the bitwise comparison or the guard check.
 */
#define _GNU_SOURCE

#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "amxq.h"
#include "common/ggml_data.h"
#include "common/testutil.h"
#include "internal.h"
#include "pack/pack.h"
#include "parallel/parallel.h"

static const amxq_type types[] = {AMXQ_TYPE_Q4_0, AMXQ_TYPE_Q4_1,  AMXQ_TYPE_Q8_0,   AMXQ_TYPE_Q4_K,
                                  AMXQ_TYPE_Q6_K, AMXQ_TYPE_Q5_K,  AMXQ_TYPE_IQ4_XS, AMXQ_TYPE_Q5_0,
                                  AMXQ_TYPE_Q5_1, AMXQ_TYPE_IQ4_NL};
#define NTYPES (sizeof types / sizeof types[0])
static const uint32_t CANARY = 0x7fc0dead; /* a NaN no kernel produces */

static amxq_isa isas[AMXQ_ISA_COUNT];
static int n_isas;

static void *make_packed(amxq_type t, int64_t n, int64_t k, uint64_t seed)
{
    void *g = tu_random_ggml(&seed, t, n, k);
    void *p = g != NULL ? tu_pack_new(t, g, n, k) : NULL;
    if (p == NULL) {
        fprintf(stderr, "pack %s n=%lld k=%lld failed\n", amxq_type_name(t), (long long)n,
                (long long)k);
        exit(2);
    }
    free(g);
    return p;
}

static float *make_x(int64_t m, int64_t ldx, uint64_t seed)
{
    float *x = malloc(sizeof(float) * (size_t)(m * ldx));
    for (int64_t i = 0; i < m * ldx; i++)
        x[i] = tu_randf(&seed) * 4.0f;
    return x;
}

/* C with ldc = n + 3 guard columns, every element the canary. */
static float *make_c(int64_t m, int64_t ldc)
{
    float *c = malloc(sizeof(float) * (size_t)(m * ldc));
    for (int64_t i = 0; i < m * ldc; i++)
        memcpy(&c[i], &CANARY, 4);
    return c;
}

static int guards_ok(const float *c, int64_t m, int64_t n, int64_t ldc)
{
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = n; j < ldc; j++)
            if (memcmp(&c[i * ldc + j], &CANARY, 4) != 0)
                return 0;
    return 1;
}

/* First element where a and b differ bitwise, or -1. */
static int64_t first_diff(const float *a, const float *b, int64_t m, int64_t n, int64_t ldc)
{
    for (int64_t i = 0; i < m; i++)
        if (memcmp(a + i * ldc, b + i * ldc, sizeof(float) * (size_t)n) != 0)
            for (int64_t j = 0; j < n; j++)
                if (memcmp(&a[i * ldc + j], &b[i * ldc + j], 4) != 0)
                    return i * n + j;
    return -1;
}

static float *reference(const void *w, const float *x, int64_t m, int64_t ldx, int64_t n,
                        int64_t ldc, amxq_isa isa)
{
    float *c = make_c(m, ldc);
    (void)n; /* C's width comes from the packed weight */
    amxq_matmul_params p = {isa, 0, NULL, 0};
    amxq_status st = amxq_matmul_ex(w, x, m, ldx, c, ldc, &p);
    TU_CHECK(st == AMXQ_OK, "reference matmul_ex: %s", amxq_status_str(st));
    return c;
}

/* ---- The split ------------------------------------------------------------------------------ */

static void test_split(void)
{
    static const int64_t ms[] = {1, 2, 15, 16, 17, 31, 32, 33, 63, 64, 100, 257, 512, 1000};
    static const int64_t ps[] = {1, 2, 3, 5, 16, 17, 64, 256, 257};
    int cells_checked = 0;
    for (size_t a = 0; a < sizeof ms / sizeof ms[0]; a++)
        for (size_t b = 0; b < sizeof ps / sizeof ps[0]; b++)
            for (int nth = 1; nth <= 40; nth++) {
                const int64_t m = ms[a], np = ps[b];
                unsigned char *seen = calloc((size_t)(m * np), 1);
                int64_t max_cells = 0;
                for (int ith = 0; ith < nth; ith++) {
                    amxq_slice_part parts[3];
                    const int k = amxq_slice_split(m, np, ith, nth, parts);
                    int64_t cells = 0, last_p = -1;
                    for (int i = 0; i < k; i++) {
                        const amxq_slice_part *q = &parts[i];
                        TU_CHECK(q->m0 >= 0 && q->m0 < q->m1 && q->m1 <= m && q->p0 >= 0 &&
                                     q->p0 < q->p1 && q->p1 <= np,
                                 "part out of range m=%lld np=%lld nth=%d", (long long)m,
                                 (long long)np, nth);
                        /* contiguous panels: each part starts where the last ended, or on it */
                        TU_CHECK(last_p < 0 || q->p0 == last_p, "panels not contiguous");
                        last_p = q->p1;
                        TU_CHECK((q->m0 == 0 || q->m0 % AMXQ_SLICE_ROWS == 0) &&
                                     (q->m1 == m || q->m1 % AMXQ_SLICE_ROWS == 0),
                                 "row cut not on a multiple of %d", AMXQ_SLICE_ROWS);
                        for (int64_t p = q->p0; p < q->p1; p++)
                            for (int64_t r = q->m0; r < q->m1; r++) {
                                seen[p * m + r]++;
                                cells++;
                            }
                    }
                    if (cells > max_cells)
                        max_cells = cells;
                }
                for (int64_t i = 0; i < m * np; i++)
                    if (seen[i] != 1) {
                        TU_CHECK(seen[i] == 1, "cell covered %d times (m=%lld np=%lld nth=%d)",
                                 seen[i], (long long)m, (long long)np, nth);
                        break;
                    }
                /* Balance: nobody gets more than its fair share plus one rounding step (a row
                 * block, or a whole panel when rows cannot be cut) on each side. */
                const int64_t step = m <= AMXQ_SLICE_ROWS ? m : AMXQ_SLICE_ROWS;
                const int64_t fair = (m * np + nth - 1) / nth;
                TU_CHECK(max_cells <= fair + 2 * step, "unbalanced: %lld > %lld + 2*%lld",
                         (long long)max_cells, (long long)fair, (long long)step);
                cells_checked += (int)(m * np);
                free(seen);
            }
    printf("split: %d cells checked\n", cells_checked);

    /* The rows each thread quantizes: a partition too. */
    for (int64_t m = 1; m < 70; m++)
        for (int nth = 1; nth <= 17; nth++) {
            int64_t next = 0;
            for (int ith = 0; ith < nth; ith++) {
                int64_t m0, m1;
                amxq_slice_rows(m, ith, nth, &m0, &m1);
                TU_CHECK(m0 == next && m1 >= m0 && m1 - m0 <= (m + nth - 1) / nth, "rows split");
                next = m1;
            }
            TU_CHECK(next == m, "rows not covered");
        }
}

/* ---- Slices, sequentially ---------------------------------------------------------------------
 */

typedef struct shape {
    int64_t m, n, kblocks;
} shape;

/* Run the product as nth slices (quantize with nth_q threads, compute with nth) on one thread. */
static amxq_status run_slices(const amxq_plan *plan, const void *w, const float *x, int64_t ldx,
                              float *c, int64_t ldc, int nth_q, int nth, void *ws, size_t wsz)
{
    for (int i = 0; i < nth_q; i++)
        AMXQ_TRY(amxq_quantize_slice(plan, x, ldx, ws, wsz, i, nth_q));
    /* Reverse order, so a slice that relied on a neighbour having run first would show. */
    for (int i = nth - 1; i >= 0; i--)
        AMXQ_TRY(amxq_matmul_slice(plan, w, ws, wsz, c, ldc, i, nth));
    return AMXQ_OK;
}

static void test_slices_sequential(void)
{
    static const shape small[] = {{1, 16, 1},   {1, 17, 2},  {1, 100, 1}, {3, 33, 1},
                                  {16, 1, 1},   {33, 40, 1}, {64, 17, 2}, {257, 17, 1},
                                  {257, 48, 1}, {5, 250, 1}};
    static const shape big[] = {{1, 4096, 1}, {70, 1000, 1}};
    int compared = 0;
    for (int ii = 0; ii < n_isas; ii++) {
        const amxq_isa isa = isas[ii];
        const int emulated = isa == AMXQ_ISA_AMX_EMU || isa == AMXQ_ISA_AVX512_EMU;
        for (size_t ti = 0; ti < NTYPES; ti++) {
            const amxq_type t = types[ti];
            const int64_t qk = amxq_type_block(t);
            const size_t n_small = sizeof small / sizeof small[0];
            const size_t n_all = n_small + (emulated ? 0 : sizeof big / sizeof big[0]);
            for (size_t si = 0; si < n_all; si++) {
                const shape s = si < n_small ? small[si] : big[si - n_small];
                const int64_t k = s.kblocks * qk, ldx = k + 5, ldc = s.n + 3;
                void *w = make_packed(t, s.n, k, 1000 + si * 7 + ti);
                float *x = make_x(s.m, ldx, 77 + si);
                float *ref = reference(w, x, s.m, ldx, s.n, ldc, isa);
                amxq_matmul_params mp = {isa, 0, NULL, 0};
                amxq_plan plan;
                amxq_status st = amxq_matmul_plan(w, s.m, &mp, &plan);
                TU_CHECK(st == AMXQ_OK && plan.isa == isa && plan.m == s.m && plan.n == s.n &&
                             plan.k == k && plan.workspace_size == amxq_workspace_size(t, s.m, k),
                         "plan: %s", amxq_status_str(st));
                void *ws = aligned_alloc(64, plan.workspace_size);
                const int max_nth = emulated ? 5 : 17;
                for (int nth = 1; nth <= max_nth; nth++) {
                    const int nth_q = (nth * 5) % 7 + 1; /* quantize with another count */
                    float *c = make_c(s.m, ldc);
                    st = run_slices(&plan, w, x, ldx, c, ldc, nth_q, nth, ws, plan.workspace_size);
                    const int64_t d = first_diff(c, ref, s.m, s.n, ldc);
                    TU_CHECK(st == AMXQ_OK && d < 0 && guards_ok(c, s.m, s.n, ldc),
                             "%s %s m=%lld n=%lld k=%lld nth=%d: %s, first diff at %lld",
                             amxq_isa_name(isa), amxq_type_name(t), (long long)s.m, (long long)s.n,
                             (long long)k, nth, amxq_status_str(st), (long long)d);
                    compared++;
                    free(c);
                }
                free(ws);
                free(ref);
                free(x);
                free(w);
            }
        }
    }
    printf("slices: %d sliced products bitwise equal to amxq_matmul_ex\n", compared);
}

/* ---- An engine's own threads ------------------------------------------------------------------
 */

typedef struct engine_job {
    const amxq_plan *plan;
    const void *w;
    const float *x;
    int64_t ldx;
    float *c;
    int64_t ldc;
    void *ws;
    int nth;
    pthread_barrier_t *bar;
    amxq_status st[32];
} engine_job;

typedef struct engine_arg {
    engine_job *job;
    int ith;
} engine_arg;

/* What each of an engine's threads does for one product (docs/threads.md shows the same). */
static void *engine_thread(void *p)
{
    engine_arg *a = p;
    engine_job *j = a->job;
    amxq_status st =
        amxq_quantize_slice(j->plan, j->x, j->ldx, j->ws, j->plan->workspace_size, a->ith, j->nth);
    pthread_barrier_wait(j->bar); /* every row of X quantized */
    if (st == AMXQ_OK)
        st = amxq_matmul_slice(j->plan, j->w, j->ws, j->plan->workspace_size, j->c, j->ldc, a->ith,
                               j->nth);
    j->st[a->ith] = st;
    return NULL;
}

static int run_engine(engine_job *j)
{
    pthread_t th[32];
    engine_arg args[32];
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, NULL, (unsigned)j->nth);
    j->bar = &bar;
    for (int i = 0; i < j->nth; i++) {
        args[i] = (engine_arg){j, i};
        if (i > 0)
            pthread_create(&th[i], NULL, engine_thread, &args[i]);
    }
    engine_thread(&args[0]);
    for (int i = 1; i < j->nth; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&bar);
    for (int i = 0; i < j->nth; i++)
        if (j->st[i] != AMXQ_OK)
            return 0;
    return 1;
}

static void test_engine_threads(void)
{
    static const shape shapes[] = {{1, 4096 / 8, 2}, {37, 300, 1}, {257, 17, 1}};
    static const int nths[] = {1, 2, 3, 4, 7, 17};
    for (int ii = 0; ii < n_isas; ii++)
        for (size_t ti = 0; ti < NTYPES; ti++)
            for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
                const amxq_isa isa = isas[ii];
                const amxq_type t = types[ti];
                const shape s = shapes[si];
                const int64_t k = s.kblocks * amxq_type_block(t), ldx = k, ldc = s.n + 3;
                void *w = make_packed(t, s.n, k, 5 + si);
                float *x = make_x(s.m, ldx, 6 + si);
                float *ref = reference(w, x, s.m, ldx, s.n, ldc, isa);
                amxq_matmul_params mp = {isa, 0, NULL, 0};
                amxq_plan plan;
                TU_CHECK(amxq_matmul_plan(w, s.m, &mp, &plan) == AMXQ_OK, "plan");
                void *ws = aligned_alloc(64, plan.workspace_size);
                for (size_t ni = 0; ni < sizeof nths / sizeof nths[0]; ni++) {
                    float *c = make_c(s.m, ldc);
                    engine_job j = {&plan, w, x, ldx, c, ldc, ws, nths[ni], NULL, {AMXQ_OK}};
                    const int ok = run_engine(&j);
                    TU_CHECK(ok && first_diff(c, ref, s.m, s.n, ldc) < 0 &&
                                 guards_ok(c, s.m, s.n, ldc),
                             "engine threads %s %s m=%lld n=%lld nth=%d", amxq_isa_name(isa),
                             amxq_type_name(t), (long long)s.m, (long long)s.n, nths[ni]);
                    free(c);
                }
                free(ws);
                free(ref);
                free(x);
                free(w);
            }
}

/* ---- The context -------------------------------------------------------------------------- */

static void test_ctx_matmul(void)
{
    static const shape shapes[] = {{1, 17, 1}, {1, 600, 2}, {40, 33, 1}, {257, 64, 1}};
    static const int threads[] = {1, 2, 3, 5, 17};
    for (size_t hi = 0; hi < sizeof threads / sizeof threads[0]; hi++) {
        amxq_ctx_params cp = {threads[hi], NULL, 0, 0, 0};
        amxq_ctx *ctx = NULL;
        amxq_status st = amxq_ctx_create(&cp, &ctx);
        TU_CHECK(st == AMXQ_OK && ctx != NULL && amxq_ctx_threads(ctx) == threads[hi],
                 "ctx_create(%d): %s", threads[hi], amxq_status_str(st));
        if (ctx == NULL)
            continue;
        for (int ii = 0; ii < n_isas; ii++)
            for (size_t ti = 0; ti < NTYPES; ti++)
                for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
                    const amxq_isa isa = isas[ii];
                    const amxq_type t = types[ti];
                    const shape s = shapes[si];
                    const int64_t k = s.kblocks * amxq_type_block(t), ldx = k + 1, ldc = s.n + 3;
                    void *w = make_packed(t, s.n, k, 50 + si);
                    float *x = make_x(s.m, ldx, 60 + si);
                    float *ref = reference(w, x, s.m, ldx, s.n, ldc, isa);
                    amxq_matmul_params mp = {isa, 0, NULL, 0};
                    float *c = make_c(s.m, ldc);
                    st = amxq_ctx_matmul(ctx, w, x, s.m, ldx, c, ldc, &mp);
                    TU_CHECK(st == AMXQ_OK && first_diff(c, ref, s.m, s.n, ldc) < 0 &&
                                 guards_ok(c, s.m, s.n, ldc),
                             "ctx(%d) %s %s m=%lld n=%lld: %s", threads[hi], amxq_isa_name(isa),
                             amxq_type_name(t), (long long)s.m, (long long)s.n,
                             amxq_status_str(st));
                    /* With the caller's workspace and AMXQ_KEEP_TILES: same bits. */
                    const size_t wsz = amxq_workspace_size(t, s.m, k);
                    void *ws = aligned_alloc(64, wsz);
                    amxq_matmul_params mp2 = {isa, AMXQ_KEEP_TILES, ws, wsz};
                    float *c2 = make_c(s.m, ldc);
                    st = amxq_ctx_matmul(ctx, w, x, s.m, ldx, c2, ldc, &mp2);
                    TU_CHECK(st == AMXQ_OK && first_diff(c2, ref, s.m, s.n, ldc) < 0,
                             "ctx with workspace: %s", amxq_status_str(st));
                    free(c2);
                    free(ws);
                    free(c);
                    free(ref);
                    free(x);
                    free(w);
                }
        amxq_ctx_destroy(ctx);
    }
}

static void test_ctx_lifecycle(void)
{
    /* Create and destroy in a loop, some with a product in between (ASan: no leak). */
    void *w = make_packed(AMXQ_TYPE_Q4_0, 40, 64, 3);
    float *x = make_x(3, 64, 4);
    float *ref = reference(w, x, 3, 64, 40, 40, AMXQ_ISA_SCALAR);
    amxq_matmul_params mp = {AMXQ_ISA_SCALAR, 0, NULL, 0};
    for (int i = 0; i < 60; i++) {
        amxq_ctx_params cp = {1 + i % 6, NULL, 0, 0, 0};
        amxq_ctx *ctx = NULL;
        TU_CHECK(amxq_ctx_create(&cp, &ctx) == AMXQ_OK, "create %d", i);
        if (i % 2 && ctx) {
            float c[3 * 40];
            TU_CHECK(amxq_ctx_matmul(ctx, w, x, 3, 64, c, 40, &mp) == AMXQ_OK &&
                         memcmp(c, ref, sizeof c) == 0,
                     "product %d", i);
        }
        amxq_ctx_destroy(ctx);
    }

    /* Defaults: one thread per CPU this process may use. */
    amxq_ctx *ctx = NULL;
    TU_CHECK(amxq_ctx_create(NULL, &ctx) == AMXQ_OK && amxq_ctx_threads(ctx) >= 1, "defaults");
    amxq_ctx_destroy(ctx);

    /* Pinning: workers on the CPUs this process may use (cpus[0], the caller's, not applied). */
    cpu_set_t set;
    int cpus[8], nc = 0;
    if (sched_getaffinity(0, sizeof set, &set) == 0)
        for (int c = 0; c < CPU_SETSIZE && nc < 8; c++)
            if (CPU_ISSET(c, &set))
                cpus[nc++] = c;
    if (nc > 0) {
        int list[6];
        for (int i = 0; i < 6; i++)
            list[i] = cpus[i % nc];
        amxq_ctx_params cp = {0, list, 6, 0, 0};
        ctx = NULL;
        TU_CHECK(amxq_ctx_create(&cp, &ctx) == AMXQ_OK && amxq_ctx_threads(ctx) == 6, "pinned");
        float c[3 * 40];
        TU_CHECK(ctx && amxq_ctx_matmul(ctx, w, x, 3, 64, c, 40, &mp) == AMXQ_OK &&
                     memcmp(c, ref, sizeof c) == 0,
                 "pinned product");
        amxq_ctx_destroy(ctx);
    }

    /* Bad parameters. */
    amxq_ctx_params bad;
    ctx = (amxq_ctx *)&bad; /* must be reset to NULL on failure */
    bad = (amxq_ctx_params){-1, NULL, 0, 0, 0};
    TU_CHECK(amxq_ctx_create(&bad, &ctx) == AMXQ_ERR_ARG && ctx == NULL, "n_threads < 0");
    bad = (amxq_ctx_params){5000, NULL, 0, 0, 0};
    TU_CHECK(amxq_ctx_create(&bad, &ctx) == AMXQ_ERR_ARG, "n_threads too many");
    bad = (amxq_ctx_params){2, NULL, 0, 0, 0x100};
    TU_CHECK(amxq_ctx_create(&bad, &ctx) == AMXQ_ERR_ARG, "flags");
    int neg[2] = {0, -1}, huge[2] = {0, 1 << 20};
    bad = (amxq_ctx_params){2, neg, 2, 0, 0};
    TU_CHECK(amxq_ctx_create(&bad, &ctx) == AMXQ_ERR_ARG, "negative cpu");
    bad = (amxq_ctx_params){2, huge, 2, 0, 0};
    TU_CHECK(amxq_ctx_create(&bad, &ctx) == AMXQ_ERR_ARG, "cpu id too large");
    bad = (amxq_ctx_params){3, neg, 2, 0, 0};
    TU_CHECK(amxq_ctx_create(&bad, &ctx) == AMXQ_ERR_ARG, "n_cpus < n_threads");
    bad = (amxq_ctx_params){2, NULL, 0, -1, AMXQ_CTX_NUMA_NODE};
    TU_CHECK(amxq_ctx_create(&bad, &ctx) == AMXQ_ERR_ARG, "node < 0");
    bad = (amxq_ctx_params){2, NULL, 0, amxq_numa_node_count(), AMXQ_CTX_NUMA_NODE};
    TU_CHECK(amxq_ctx_create(&bad, &ctx) == AMXQ_ERR_NUMA, "no such node");
    TU_CHECK(amxq_ctx_create(NULL, NULL) == AMXQ_ERR_NULL, "out NULL");
    TU_CHECK(ctx == NULL, "ctx left non-NULL");
    amxq_ctx_destroy(NULL);
    TU_CHECK(amxq_ctx_threads(NULL) == 0, "threads(NULL)");

    /* Bad products are refused before any thread runs, with matmul_ex's statuses. */
    amxq_ctx_params cp = {3, NULL, 0, 0, 0};
    TU_CHECK(amxq_ctx_create(&cp, &ctx) == AMXQ_OK, "create");
    float c[3 * 40];
    memset(c, 0x5a, sizeof c);
    amxq_matmul_params badp = {(amxq_isa)99, 0, NULL, 0};
    TU_CHECK(amxq_ctx_matmul(NULL, w, x, 3, 64, c, 40, NULL) == AMXQ_ERR_NULL, "ctx NULL");
    TU_CHECK(amxq_ctx_matmul(ctx, NULL, x, 3, 64, c, 40, NULL) == AMXQ_ERR_NULL, "w NULL");
    TU_CHECK(amxq_ctx_matmul(ctx, w, x, 0, 64, c, 40, NULL) == AMXQ_ERR_SHAPE, "m = 0");
    TU_CHECK(amxq_ctx_matmul(ctx, w, x, 3, 63, c, 40, NULL) == AMXQ_ERR_STRIDE, "ldx");
    TU_CHECK(amxq_ctx_matmul(ctx, w, x, 3, 64, c, 39, NULL) == AMXQ_ERR_STRIDE, "ldc");
    TU_CHECK(amxq_ctx_matmul(ctx, (char *)w + 16, x, 3, 64, c, 40, NULL) == AMXQ_ERR_ALIGNMENT,
             "misaligned w");
    TU_CHECK(amxq_ctx_matmul(ctx, w, x, 3, 64, c, 40, &badp) == AMXQ_ERR_ISA_UNKNOWN, "isa");
    badp = (amxq_matmul_params){AMXQ_ISA_SCALAR, 0x80, NULL, 0};
    TU_CHECK(amxq_ctx_matmul(ctx, w, x, 3, 64, c, 40, &badp) == AMXQ_ERR_ARG, "flags");
    badp = (amxq_matmul_params){AMXQ_ISA_SCALAR, 0, c, sizeof c};
    TU_CHECK(amxq_ctx_matmul(ctx, w, x, 3, 64, c, 40, &badp) != AMXQ_OK, "workspace = c");
    TU_CHECK(amxq_ctx_matmul(ctx, w, c, 3, 64, c, 40, NULL) == AMXQ_ERR_OVERLAP, "x = c");
    TU_CHECK(amxq_ctx_matmul_mirror(ctx, NULL, x, 3, 64, c, 40, NULL) == AMXQ_ERR_NULL, "mirror");
    TU_CHECK(tu_all_bytes(c, sizeof c, 0x5a), "C written on failure");
    /* and the context still works */
    TU_CHECK(amxq_ctx_matmul(ctx, w, x, 3, 64, c, 40, &mp) == AMXQ_OK &&
                 memcmp(c, ref, sizeof c) == 0,
             "ctx after failures");
    amxq_ctx_destroy(ctx);
    free(ref);
    free(x);
    free(w);
}

/* ---- Concurrency: one packed weight, many threads, many iterations ----------------------------
 */

typedef struct conc_arg {
    const void *w;
    const float *x;
    const float *ref;
    int64_t m, n, k;
    amxq_isa isa;
    amxq_ctx *shared_ctx;
    int mode; /* 0: matmul_ex, 1: own ctx, 2: shared ctx, 3: own slices (nth 3, sequential) */
    int iters;
    int bad;
} conc_arg;

static void *conc_thread(void *p)
{
    conc_arg *a = p;
    float *c = malloc(sizeof(float) * (size_t)(a->m * a->n));
    amxq_matmul_params mp = {a->isa, 0, NULL, 0};
    amxq_ctx *own = NULL;
    if (a->mode == 1) {
        amxq_ctx_params cp = {2, NULL, 0, 0, 0};
        if (amxq_ctx_create(&cp, &own) != AMXQ_OK)
            a->bad++;
    }
    amxq_plan plan;
    void *ws = NULL;
    if (a->mode == 3 && amxq_matmul_plan(a->w, a->m, &mp, &plan) == AMXQ_OK)
        ws = aligned_alloc(64, plan.workspace_size);
    for (int it = 0; it < a->iters; it++) {
        memset(c, 0xff, sizeof(float) * (size_t)(a->m * a->n));
        amxq_status st = AMXQ_ERR_ARG;
        switch (a->mode) {
        case 0:
            st = amxq_matmul_ex(a->w, a->x, a->m, a->k, c, a->n, &mp);
            break;
        case 1:
            st = own ? amxq_ctx_matmul(own, a->w, a->x, a->m, a->k, c, a->n, &mp) : st;
            break;
        case 2:
            st = amxq_ctx_matmul(a->shared_ctx, a->w, a->x, a->m, a->k, c, a->n, &mp);
            break;
        case 3:
            st = ws ? run_slices(&plan, a->w, a->x, a->k, c, a->n, 3, 3, ws, plan.workspace_size)
                    : st;
            break;
        }
        if (st != AMXQ_OK || memcmp(c, a->ref, sizeof(float) * (size_t)(a->m * a->n)) != 0)
            a->bad++;
    }
    free(ws);
    amxq_ctx_destroy(own);
    free(c);
    return NULL;
}

static void test_concurrency(void)
{
    enum { NT = 8 };
    for (int ii = 0; ii < n_isas; ii++) {
        const amxq_isa isa = isas[ii];
        const int emulated = isa == AMXQ_ISA_AMX_EMU || isa == AMXQ_ISA_AVX512_EMU;
        const amxq_type t = AMXQ_TYPE_Q4_K;
        const int64_t m = 5, n = 80, k = 512;
        void *w = make_packed(t, n, k, 11);
        float *x = make_x(m, k, 12);
        float *ref = reference(w, x, m, k, n, n, isa);
        amxq_ctx_params cp = {3, NULL, 0, 0, 0};
        amxq_ctx *shared = NULL;
        TU_CHECK(amxq_ctx_create(&cp, &shared) == AMXQ_OK, "shared ctx");
        pthread_t th[NT];
        conc_arg args[NT];
        for (int i = 0; i < NT; i++) {
            args[i] = (conc_arg){w, x, ref, m, n, k, isa, shared, i % 4, emulated ? 10 : 60, 0};
            pthread_create(&th[i], NULL, conc_thread, &args[i]);
        }
        int bad = 0;
        for (int i = 0; i < NT; i++) {
            pthread_join(th[i], NULL);
            bad += args[i].bad;
        }
        TU_CHECK(bad == 0, "%s: %d concurrent products differ or failed", amxq_isa_name(isa), bad);
        amxq_ctx_destroy(shared);
        free(ref);
        free(x);
        free(w);
    }
}

/* ---- Statuses of the slice API ----------------------------------------------------------------
 */

static void test_slice_errors(void)
{
    const int64_t m = 4, n = 20, k = 64;
    void *w = make_packed(AMXQ_TYPE_Q8_0, n, k, 21);
    void *w2 = make_packed(AMXQ_TYPE_Q8_0, n + 16, k, 22);
    float *x = make_x(m, k, 23);
    amxq_plan plan, untouched;
    memset(&untouched, 0x33, sizeof untouched);
    plan = untouched;
    amxq_matmul_params mp = {AMXQ_ISA_SCALAR, 0, NULL, 0};

    TU_CHECK(amxq_matmul_plan(NULL, m, &mp, &plan) == AMXQ_ERR_NULL, "plan: w NULL");
    TU_CHECK(amxq_matmul_plan(w, m, &mp, NULL) == AMXQ_ERR_NULL, "plan: out NULL");
    TU_CHECK(amxq_matmul_plan((char *)w + 8, m, &mp, &plan) == AMXQ_ERR_ALIGNMENT, "plan: align");
    TU_CHECK(amxq_matmul_plan(x, m, &mp, &plan) != AMXQ_OK, "plan: not packed");
    TU_CHECK(amxq_matmul_plan(w, 0, &mp, &plan) == AMXQ_ERR_SHAPE, "plan: m = 0");
    TU_CHECK(amxq_matmul_plan(w, (int64_t)1 << 31, &mp, &plan) == AMXQ_ERR_SHAPE, "plan: m big");
    amxq_matmul_params bp = {(amxq_isa)-1, 0, NULL, 0};
    TU_CHECK(amxq_matmul_plan(w, m, &bp, &plan) == AMXQ_ERR_ISA_UNKNOWN, "plan: isa");
    bp = (amxq_matmul_params){AMXQ_ISA_SCALAR, 2, NULL, 0};
    TU_CHECK(amxq_matmul_plan(w, m, &bp, &plan) == AMXQ_ERR_ARG, "plan: flags");
    for (int i = AMXQ_ISA_SCALAR; i < AMXQ_ISA_COUNT; i++)
        if (amxq_isa_check((amxq_isa)i) != AMXQ_OK) {
            bp = (amxq_matmul_params){(amxq_isa)i, 0, NULL, 0};
            TU_CHECK(amxq_matmul_plan(w, m, &bp, &plan) == amxq_isa_check((amxq_isa)i),
                     "plan: unsupported isa %s", amxq_isa_name((amxq_isa)i));
        }
    TU_CHECK(memcmp(&plan, &untouched, sizeof plan) == 0, "plan written on failure");
    TU_CHECK(amxq_matmul_plan(w, m, NULL, &plan) == AMXQ_OK && plan.isa != AMXQ_ISA_AUTO, "auto");
    TU_CHECK(amxq_matmul_plan(w, m, &mp, &plan) == AMXQ_OK && plan.n_panels == 2, "plan");

    const size_t wsz = plan.workspace_size;
    uint8_t *wsb = aligned_alloc(64, wsz + 64);
    void *ws = wsb;
    memset(wsb, 0x11, wsz + 64);
    /* quantize_slice */
    TU_CHECK(amxq_quantize_slice(NULL, x, k, ws, wsz, 0, 1) == AMXQ_ERR_NULL, "q: plan NULL");
    TU_CHECK(amxq_quantize_slice(&plan, NULL, k, ws, wsz, 0, 1) == AMXQ_ERR_NULL, "q: x NULL");
    TU_CHECK(amxq_quantize_slice(&plan, x, k, NULL, wsz, 0, 1) == AMXQ_ERR_NULL, "q: ws NULL");
    TU_CHECK(amxq_quantize_slice(&plan, x, k, ws, wsz, 0, 0) == AMXQ_ERR_ARG, "q: nth 0");
    TU_CHECK(amxq_quantize_slice(&plan, x, k, ws, wsz, 2, 2) == AMXQ_ERR_ARG, "q: ith = nth");
    TU_CHECK(amxq_quantize_slice(&plan, x, k, ws, wsz, -1, 2) == AMXQ_ERR_ARG, "q: ith < 0");
    TU_CHECK(amxq_quantize_slice(&plan, x, k - 1, ws, wsz, 0, 1) == AMXQ_ERR_STRIDE, "q: ldx");
    TU_CHECK(amxq_quantize_slice(&plan, x, k, ws, wsz - 1, 0, 1) == AMXQ_ERR_BUFFER_SIZE,
             "q: ws small");
    TU_CHECK(amxq_quantize_slice(&plan, x, k, wsb + 8, wsz, 0, 1) == AMXQ_ERR_ALIGNMENT,
             "q: ws misaligned");
    TU_CHECK(amxq_quantize_slice(&plan, (float *)ws, k, ws, wsz, 0, 1) == AMXQ_ERR_OVERLAP,
             "q: x overlaps ws");
    amxq_plan bad = plan;
    bad.m = 0;
    TU_CHECK(amxq_quantize_slice(&bad, x, k, ws, wsz, 0, 1) == AMXQ_ERR_ARG, "q: plan m");
    bad = plan;
    bad.workspace_size = wsz / 2;
    TU_CHECK(amxq_quantize_slice(&bad, x, k, ws, wsz, 0, 1) == AMXQ_ERR_ARG, "q: plan ws");
    bad = plan;
    bad.isa = AMXQ_ISA_AUTO;
    TU_CHECK(amxq_quantize_slice(&bad, x, k, ws, wsz, 0, 1) == AMXQ_ERR_ARG, "q: plan auto");
    bad = plan;
    bad.type = (amxq_type)5;
    TU_CHECK(amxq_quantize_slice(&bad, x, k, ws, wsz, 0, 1) == AMXQ_ERR_ARG, "q: plan type");
    bad = plan;
    bad.n_panels = 3;
    TU_CHECK(amxq_quantize_slice(&bad, x, k, ws, wsz, 0, 1) == AMXQ_ERR_ARG, "q: plan panels");
    TU_CHECK(tu_all_bytes(wsb, wsz + 64, 0x11), "workspace written on failure");

    /* matmul_slice, after a good quantization */
    for (int i = 0; i < 3; i++)
        TU_CHECK(amxq_quantize_slice(&plan, x, k, ws, wsz, i, 3) == AMXQ_OK, "q %d", i);
    float c[4 * 24];
    memset(c, 0x5a, sizeof c);
    TU_CHECK(amxq_matmul_slice(NULL, w, ws, wsz, c, n, 0, 1) == AMXQ_ERR_NULL, "s: plan NULL");
    TU_CHECK(amxq_matmul_slice(&plan, NULL, ws, wsz, c, n, 0, 1) == AMXQ_ERR_NULL, "s: w NULL");
    TU_CHECK(amxq_matmul_slice(&plan, w, NULL, wsz, c, n, 0, 1) == AMXQ_ERR_NULL, "s: ws NULL");
    TU_CHECK(amxq_matmul_slice(&plan, w, ws, wsz, NULL, n, 0, 1) == AMXQ_ERR_NULL, "s: c NULL");
    TU_CHECK(amxq_matmul_slice(&plan, w, ws, wsz, c, n, 1, 1) == AMXQ_ERR_ARG, "s: ith");
    TU_CHECK(amxq_matmul_slice(&plan, w, ws, wsz, c, n, 0, -3) == AMXQ_ERR_ARG, "s: nth");
    TU_CHECK(amxq_matmul_slice(&plan, (char *)w + 32, ws, wsz, c, n, 0, 1) == AMXQ_ERR_ALIGNMENT,
             "s: w misaligned");
    TU_CHECK(amxq_matmul_slice(&plan, w2, ws, wsz, c, n, 0, 1) == AMXQ_ERR_BAD_PACKED,
             "s: another weight");
    TU_CHECK(amxq_matmul_slice(&plan, ws, ws, wsz, c, n, 0, 1) == AMXQ_ERR_BAD_PACKED,
             "s: not packed");
    TU_CHECK(amxq_matmul_slice(&plan, w, ws, wsz, c, n - 1, 0, 1) == AMXQ_ERR_STRIDE, "s: ldc");
    TU_CHECK(amxq_matmul_slice(&plan, w, ws, wsz - 64, c, n, 0, 1) == AMXQ_ERR_BUFFER_SIZE,
             "s: ws small");
    TU_CHECK(amxq_matmul_slice(&plan, w, wsb + 4, wsz, c, n, 0, 1) == AMXQ_ERR_ALIGNMENT,
             "s: ws misaligned");
    TU_CHECK(amxq_matmul_slice(&plan, w, ws, wsz, (float *)wsb, n, 0, 1) == AMXQ_ERR_OVERLAP,
             "s: c overlaps ws");
    TU_CHECK(amxq_matmul_slice(&plan, w, ws, wsz, (float *)w, n, 0, 1) == AMXQ_ERR_OVERLAP,
             "s: c overlaps w");
    TU_CHECK(tu_all_bytes(c, sizeof c, 0x5a), "C written on failure");

    /* and then it works: with ldc = 24 */
    float *ref = reference(w, x, m, k, n, 24, AMXQ_ISA_SCALAR);
    float *cc = make_c(m, 24);
    for (int i = 0; i < 5; i++)
        TU_CHECK(amxq_matmul_slice(&plan, w, ws, wsz, cc, 24, i, 5) == AMXQ_OK, "s %d", i);
    TU_CHECK(first_diff(cc, ref, m, n, 24) < 0 && guards_ok(cc, m, n, 24), "after errors");
    free(cc);
    free(ref);
    free(wsb);
    free(x);
    free(w2);
    free(w);
}

int main(void)
{
    for (int i = AMXQ_ISA_SCALAR; i < AMXQ_ISA_COUNT; i++)
        if (amxq_isa_check((amxq_isa)i) == AMXQ_OK)
            isas[n_isas++] = (amxq_isa)i;
    printf("ISAs tested:");
    for (int i = 0; i < n_isas; i++)
        printf(" %s", amxq_isa_name(isas[i]));
    printf("\n");

    static const struct {
        const char *name;
        void (*fn)(void);
    } parts[] = {{"split", test_split},
                 {"slices", test_slices_sequential},
                 {"engine threads", test_engine_threads},
                 {"ctx matmul", test_ctx_matmul},
                 {"ctx lifecycle", test_ctx_lifecycle},
                 {"concurrency", test_concurrency},
                 {"slice errors", test_slice_errors}};
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        parts[i].fn();
        clock_gettime(CLOCK_MONOTONIC, &t1);
        printf("  %-15s %.2f s\n", parts[i].name,
               (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec));
    }
    return tu_finish("test_threads");
}
