/* MUL_MAT in a ggml graph with the weight in the CPU buffer, in CPU_REPACK (where this ggml
 * repacks the type) and in AMXQ: milliseconds per graph, same process, same inputs.
 * Usage: bench-ggml-amxq [N_K] [threads...]   (defaults: 4096, threads 1 2)
 *        bench-ggml-amxq moe [threads...]     (MUL_MAT_ID: experts [K, N, 8] of N = K = 2048,
 *                                              top-2 routing, T = 1, 32, 128 tokens)
 * Prints a Markdown table; integrations/ggml/README.md holds one of each. */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#include "ggml-amxq-util.h"

#include <amxq.h>

#include <time.h>

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* The placements of one row are timed round-robin (one run of each per round, after a warm-up)
 * and each keeps its best: on a shared machine, load then hits all of them alike, and short
 * products get many rounds to find runs no other process interrupted. */
enum { P_CPU, P_REPACK, P_AMXQ, P_COUNT };

/* The round-robin loop itself: run(arg, p) runs placement p's graph once; ok[p] says whether it
 * was built and ran in the warm-up. */
static void time_round_robin(const int ok[P_COUNT], void (*run)(void *arg, int p), void *arg,
                             double best[P_COUNT])
{
    for (int p = 0; p < P_COUNT; p++)
        best[p] = -1;
    const double start = now_ms();
    for (int r = 0; r < 200 && (r < 5 || now_ms() - start < 2000); r++)
        for (int p = 0; p < P_COUNT; p++) {
            if (!ok[p])
                continue;
            const double t0 = now_ms();
            run(arg, p);
            const double t = now_ms() - t0;
            if (best[p] < 0 || t < best[p])
                best[p] = t;
        }
}

struct mm_timed {
    ggml_backend_t be;
    int nth;
    struct gmm g[P_COUNT];
};

static void run_mm(void *arg, int p)
{
    struct mm_timed *a = arg;
    gmm_run(&a->g[p], a->be, a->nth, NULL, NULL);
}

static void time_row(ggml_backend_t be, struct ggml_tensor *const w[P_COUNT], int64_t m, int nth,
                     const float *x, double best[P_COUNT])
{
    struct mm_timed a;
    a.be = be;
    a.nth = nth;
    int ok[P_COUNT];
    for (int p = 0; p < P_COUNT; p++)
        ok[p] =
            w[p] != NULL && gmm_new(&a.g[p], be, w[p], m, 1) && gmm_run(&a.g[p], be, nth, x, NULL);
    time_round_robin(ok, run_mm, &a, best);
    for (int p = 0; p < P_COUNT; p++)
        if (w[p] != NULL)
            gmm_free(&a.g[p]);
}

struct id_timed {
    ggml_backend_t be;
    int nth;
    struct gid g[P_COUNT];
};

static void run_id(void *arg, int p)
{
    struct id_timed *a = arg;
    gid_run(&a->g[p], a->be, a->nth, NULL, NULL, NULL);
}

/* The same for MUL_MAT_ID: Y = mul_mat_id(w, X, ids), X one row per token. */
static void time_row_id(ggml_backend_t be, struct ggml_tensor *const w[P_COUNT], int64_t n_used,
                        int64_t t, int nth, const float *x, const int32_t *ids,
                        double best[P_COUNT])
{
    struct id_timed a;
    a.be = be;
    a.nth = nth;
    int ok[P_COUNT];
    for (int p = 0; p < P_COUNT; p++)
        ok[p] = w[p] != NULL && gid_new(&a.g[p], be, w[p], 1, n_used, t) &&
                gid_run(&a.g[p], be, nth, x, ids, NULL);
    time_round_robin(ok, run_id, &a, best);
    for (int p = 0; p < P_COUNT; p++)
        if (w[p] != NULL)
            gid_free(&a.g[p]);
}

static void cell(double ms)
{
    if (ms < 0)
        printf(" — |");
    else
        printf(" %.3g |", ms);
}

static void row_end(double tc, double tr, double ta)
{
    const double best = tr > 0 && tr < tc ? tr : tc;
    cell(tc);
    cell(tr);
    cell(ta);
    printf(" %.2f× | %.2f× |\n", tc / ta, best / ta);
    fflush(stdout);
}

/* MUL_MAT_ID: 8 experts of N = K = 2048, top-2, T tokens, for every amxq type. */
static int bench_moe(ggml_backend_t be, ggml_backend_dev_t dev, ggml_backend_buffer_type_t amxq,
                     ggml_backend_buffer_type_t repack, const enum ggml_type *types, size_t n_types,
                     const int *threads, int n_threads)
{
    enum { NE = 8, TOPK = 2, NK = 2048, MAX_T = 128 };
    static const int64_t ts[] = {1, 32, MAX_T};
    float *x = (float *)malloc(sizeof(float) * NK * MAX_T);
    int32_t *ids = (int32_t *)malloc(sizeof(int32_t) * TOPK * MAX_T);
    g_fill(x, (size_t)NK * MAX_T, 3);
    printf("MUL_MAT_ID: %d experts of N = K = %d, top-%d, one activation row per token; ms per "
           "graph, best of 5-200 round-robin runs\n\n",
           NE, NK, TOPK);
    printf("| type | tokens | threads | CPU | CPU_REPACK | AMXQ | AMXQ vs CPU | AMXQ vs best ggml "
           "|\n");
    printf("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
    for (size_t ti = 0; ti < n_types; ti++) {
        void *bytes = g_weights(types[ti], (int64_t)NK * NE, NK, 42);
        struct gw wc = {NULL, NULL, NULL}, wa = {NULL, NULL, NULL}, wr = {NULL, NULL, NULL};
        gw_new(&wc, types[ti], NK, NK, NE, ggml_backend_cpu_buffer_type(), bytes);
        gw_new(&wa, types[ti], NK, NK, NE, amxq, bytes);
        for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++) {
            g_route(ids, TOPK, ts[i], NE, 100 + (uint64_t)i);
            int use_repack = 0;
            if (repack != NULL) {
                struct ggml_context *c = gw_ctx(8);
                struct ggml_tensor *w = ggml_new_tensor_3d(c, types[ti], NK, NK, NE);
                struct ggml_tensor *xt = ggml_new_tensor_3d(c, GGML_TYPE_F32, NK, 1, ts[i]);
                struct ggml_tensor *it = ggml_new_tensor_2d(c, GGML_TYPE_I32, TOPK, ts[i]);
                use_repack = g_buft_supports(dev, repack, ggml_mul_mat_id(c, w, xt, it));
                ggml_free(c);
            }
            if (use_repack && wr.t == NULL)
                gw_new(&wr, types[ti], NK, NK, NE, repack, bytes);
            for (int t = 0; t < n_threads; t++) {
                struct ggml_tensor *const w[P_COUNT] = {wc.t, use_repack ? wr.t : NULL, wa.t};
                double ms_[P_COUNT];
                time_row_id(be, w, TOPK, ts[i], threads[t], x, ids, ms_);
                printf("| %s | %lld | %d |", ggml_type_name(types[ti]), (long long)ts[i],
                       threads[t]);
                row_end(ms_[P_CPU], ms_[P_REPACK], ms_[P_AMXQ]);
            }
        }
        if (wr.t != NULL)
            gw_free(&wr);
        gw_free(&wa);
        gw_free(&wc);
        free(bytes);
    }
    free(x);
    free(ids);
    return 0;
}

int main(int argc, char **argv)
{
    const int moe = argc > 1 && strcmp(argv[1], "moe") == 0;
    const int64_t nk = argc > 1 && !moe ? atoll(argv[1]) : 4096;
    int threads[8] = {1, 2}, n_threads = 2;
    if (argc > 2) {
        n_threads = 0;
        for (int i = 2; i < argc && n_threads < 8; i++)
            threads[n_threads++] = atoi(argv[i]);
    }
    /* Every type amxq packs (the buffer type's rule). */
    enum ggml_type types[GGML_TYPE_COUNT];
    size_t n_types = 0;
    for (int t = 0; t < GGML_TYPE_COUNT; t++)
        if (amxq_type_name((amxq_type)t) != NULL)
            types[n_types++] = (enum ggml_type)t;
    static const int64_t ms[] = {1, 32, 512};
    ggml_backend_t be = ggml_backend_cpu_init();
    ggml_backend_dev_t dev = ggml_backend_get_device(be);
    ggml_backend_buffer_type_t amxq = ggml_backend_amxq_buffer_type();
    ggml_backend_buffer_type_t repack = g_extra_buft(dev, "CPU_REPACK");
    if (be == NULL || amxq == NULL) {
        fprintf(stderr, "no CPU backend or no AMXQ buffer type\n");
        return 1;
    }
    if (moe) {
        const int rc = bench_moe(be, dev, amxq, repack, types, n_types, threads, n_threads);
        ggml_backend_free(be);
        return rc;
    }
    float *x = (float *)malloc(sizeof(float) * (size_t)(nk * 512));
    g_fill(x, (size_t)(nk * 512), 3);
    printf("N = K = %lld, ms per graph (MUL_MAT only), best of 5-200 round-robin runs\n\n",
           (long long)nk);
    printf("| type | M | threads | CPU | CPU_REPACK | AMXQ | AMXQ vs CPU | AMXQ vs best ggml |\n");
    printf("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
    for (size_t ti = 0; ti < n_types; ti++) {
        void *bytes = g_weights(types[ti], nk, nk, 42);
        struct gw wc = {NULL, NULL, NULL}, wa = {NULL, NULL, NULL}, wr = {NULL, NULL, NULL};
        gw_new(&wc, types[ti], nk, nk, 1, ggml_backend_cpu_buffer_type(), bytes);
        gw_new(&wa, types[ti], nk, nk, 1, amxq, bytes);
        for (size_t mi = 0; mi < sizeof ms / sizeof ms[0]; mi++) {
            /* CPU_REPACK only where it would take this op (as an engine would ask). */
            int use_repack = 0;
            if (repack != NULL) {
                struct ggml_context *c = gw_ctx(4);
                struct ggml_tensor *w = ggml_new_tensor_2d(c, types[ti], nk, nk);
                struct ggml_tensor *xt = ggml_new_tensor_2d(c, GGML_TYPE_F32, nk, ms[mi]);
                use_repack = g_buft_supports(dev, repack, ggml_mul_mat(c, w, xt));
                ggml_free(c);
            }
            if (use_repack && wr.t == NULL)
                gw_new(&wr, types[ti], nk, nk, 1, repack, bytes);
            for (int t = 0; t < n_threads; t++) {
                struct ggml_tensor *const w[P_COUNT] = {wc.t, use_repack ? wr.t : NULL, wa.t};
                double ms_[P_COUNT];
                time_row(be, w, ms[mi], threads[t], x, ms_);
                printf("| %s | %lld | %d |", ggml_type_name(types[ti]), (long long)ms[mi],
                       threads[t]);
                row_end(ms_[P_CPU], ms_[P_REPACK], ms_[P_AMXQ]);
            }
        }
        if (wr.t != NULL)
            gw_free(&wr);
        gw_free(&wa);
        gw_free(&wc);
        free(bytes);
    }
    free(x);
    ggml_backend_free(be);
    return 0;
}
