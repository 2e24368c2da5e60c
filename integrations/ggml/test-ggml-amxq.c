/* The AMXQ buffer type inside ggml, in ggml's own terms: graphs built with ggml's API, the weight
 * in the AMXQ buffer against the same weight in ggml's plain CPU buffer.
 *
 *   - MUL_MAT for every amxq type (amxq_type_name() != NULL) x M in {1, 7, 32, 100} x threads {1,
 * 2, 3}: L2-relative error <= 1e-4 against ggml's own result, bitwise equal across thread counts,
 * and bitwise equal to amxq_matmul() on the packed bytes (so amxq, not ggml, computed it);
 *   - get_tensor gives ggml's bytes back, whole and in part; get_alloc_size is amxq's;
 *   - MUL_MAT_ID on an expert stack [K, N, 8] (packed expert by expert; get_tensor round trip of
 * the 3-D tensor, whole and across experts) with MoE routing (top-2 of 8, expert 7 never chosen)
 * for every amxq type x tokens {1, 7, 32} x one activation row per token or per slot x threads
 * {1, 2, 3}: L2-relative error <= 1e-4 against ggml with the experts in its CPU buffer, bitwise
 * equal across thread counts and to amxq_matmul_id() on the packed experts; once more with X a
 * strided view;
 *   - the registration hook put AMXQ first among the CPU device's extra buffer types;
 *   - what amxq cannot take (F16 weight, strided activation rows, a 3-D weight in a batched
 *     MUL_MAT, MUL_MAT_ID broadcasting activations over slots by another factor) is refused by
 *     supports_op, an engine's choice puts it elsewhere, and it still computes. */
#include "ggml-amxq-util.h"

#include <amxq.h>

#include <math.h>

static int failures;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            failures++;                                                                            \
            printf("FAIL %s:%d: ", __FILE__, __LINE__);                                            \
            printf(__VA_ARGS__);                                                                   \
            printf("\n");                                                                          \
        }                                                                                          \
    } while (0)

static double l2_rel(const float *a, const float *ref, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        const double d = (double)a[i] - (double)ref[i];
        num += d * d;
        den += (double)ref[i] * (double)ref[i];
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

/* N = 72 is four and a half 16-row panels, so a partial panel is always exercised. */
enum { N = 72, K = 512, MAX_M = 100, MAX_B = 2 };

static ggml_backend_t be;
static ggml_backend_dev_t dev;
static ggml_backend_buffer_type_t amxq_buft;
static ggml_backend_buffer_type_t cpu_buft;

static void test_hook(void)
{
    amxq_buft = ggml_backend_amxq_buffer_type();
    CHECK(amxq_buft != NULL, "no AMXQ buffer type");
    if (amxq_buft == NULL)
        return;
    CHECK(strcmp(ggml_backend_buft_name(amxq_buft), "AMXQ") == 0, "name %s",
          ggml_backend_buft_name(amxq_buft));
    CHECK(ggml_backend_buft_is_amxq(amxq_buft), "is_amxq");
    CHECK(!ggml_backend_buft_is_amxq(ggml_backend_cpu_buffer_type()), "CPU is not AMXQ");
    CHECK(g_extra_bufts(dev)[0] == amxq_buft, "AMXQ is not the first extra buffer type");
    CHECK(ggml_backend_dev_supports_buft(dev, amxq_buft), "the CPU device refuses AMXQ");
    CHECK(!ggml_backend_buft_is_host(amxq_buft), "packed bytes are not host layout");
}

/* One type: round trip, then every M and thread count. */
static void test_type(enum ggml_type type)
{
    const char *tn = ggml_type_name(type);
    void *bytes = g_weights(type, N, K, (uint64_t)type);
    struct gw wc = {NULL, NULL, NULL}, wa = {NULL, NULL, NULL};
    if (bytes == NULL || !gw_new(&wc, type, K, N, 1, ggml_backend_cpu_buffer_type(), bytes) ||
        !gw_new(&wa, type, K, N, 1, amxq_buft, bytes)) {
        CHECK(0, "%s: weights", tn);
        return;
    }
    const size_t nb = ggml_nbytes(wa.t);

    CHECK(ggml_backend_buft_get_alloc_size(amxq_buft, wa.t) ==
              amxq_packed_size((amxq_type)type, N, K),
          "%s: alloc size", tn);
    amxq_packed_desc desc;
    CHECK(amxq_packed_info(wa.t->data, amxq_packed_size((amxq_type)type, N, K), &desc) == AMXQ_OK &&
              desc.n == N && desc.k == K && desc.type == (amxq_type)type,
          "%s: the tensor's bytes are not a packed weight", tn);

    /* get_tensor: whole, and a part that straddles rows. */
    unsigned char *back = (unsigned char *)malloc(nb);
    memset(back, 0xA5, nb);
    ggml_backend_tensor_get(wa.t, back, 0, nb);
    CHECK(memcmp(back, bytes, nb) == 0, "%s: get_tensor differs from the bytes set", tn);
    const size_t off = ggml_row_size(type, K) * 3 + 5, part = ggml_row_size(type, K) * 2 + 7;
    memset(back, 0xA5, nb);
    ggml_backend_tensor_get(wa.t, back, off, part);
    CHECK(memcmp(back, (const unsigned char *)bytes + off, part) == 0, "%s: partial get_tensor",
          tn);
    free(back);

    static const int ms[] = {1, 7, 32, 100};
    float *x = (float *)malloc(sizeof(float) * K * MAX_M * MAX_B);
    float *ref = (float *)malloc(sizeof(float) * N * MAX_M * MAX_B);
    float *got1 = (float *)malloc(sizeof(float) * N * MAX_M * MAX_B);
    float *got = (float *)malloc(sizeof(float) * N * MAX_M * MAX_B);
    float *direct = (float *)malloc(sizeof(float) * N * MAX_M * MAX_B);
    for (int mi = 0; mi < 5; mi++) {
        /* The fifth case: M = 7 in two batches of a 2-D weight, which ggml broadcasts. */
        const int64_t m = mi < 4 ? ms[mi] : 7, b = mi < 4 ? 1 : 2;
        const size_t ny = (size_t)(N * m * b);
        g_fill(x, (size_t)(K * m * b), 1000 + (uint64_t)mi);
        struct gmm gc, ga;
        if (!gmm_new(&gc, be, wc.t, m, b) || !gmm_new(&ga, be, wa.t, m, b)) {
            CHECK(0, "%s: graph", tn);
            continue;
        }
        CHECK(ggml_backend_dev_supports_op(dev, ga.y), "%s M=%lld: AMXQ refused MUL_MAT", tn,
              (long long)m);
        CHECK(gmm_run(&gc, be, 1, x, ref), "%s: ggml compute", tn);
        CHECK(amxq_matmul(wa.t->data, x, m * b, K, direct, N) == AMXQ_OK, "%s: amxq_matmul", tn);
        for (int nth = 1; nth <= 3; nth++) {
            memset(got, 0xFF, sizeof(float) * ny);
            CHECK(gmm_run(&ga, be, nth, x, got), "%s: AMXQ compute", tn);
            const double e = l2_rel(got, ref, ny);
            CHECK(e <= 1e-4, "%s M=%lld B=%lld threads=%d: L2-rel %.3g vs ggml", tn, (long long)m,
                  (long long)b, nth, e);
            if (nth == 1)
                memcpy(got1, got, sizeof(float) * ny);
            else
                CHECK(memcmp(got, got1, sizeof(float) * ny) == 0,
                      "%s M=%lld threads=%d: not bitwise equal to 1 thread", tn, (long long)m, nth);
            CHECK(memcmp(got, direct, sizeof(float) * ny) == 0,
                  "%s M=%lld threads=%d: not what amxq_matmul gives", tn, (long long)m, nth);
            if (nth == 3)
                printf("%-5s M=%3lld B=%lld  L2-rel vs ggml %.2e, threads 1/2/3 bitwise equal\n",
                       tn, (long long)m, (long long)b, e);
        }
        gmm_free(&ga);
        gmm_free(&gc);
    }
    free(x);
    free(ref);
    free(got1);
    free(got);
    free(direct);
    gw_free(&wa);
    gw_free(&wc);
    free(bytes);
}

/* ---- MUL_MAT_ID ------------------------------------------------------------------------------ */

enum { E = 8, TOP = 2 };

static void test_moe(enum ggml_type type)
{
    const char *tn = ggml_type_name(type);
    void *bytes = g_weights(type, N * E, K, 500 + (uint64_t)type);
    struct gw wc = {NULL, NULL, NULL}, wa = {NULL, NULL, NULL};
    if (bytes == NULL || !gw_new(&wc, type, K, N, E, cpu_buft, bytes) ||
        !gw_new(&wa, type, K, N, E, amxq_buft, bytes)) {
        CHECK(0, "%s: expert weights", tn);
        return;
    }
    const size_t p1 = amxq_packed_size((amxq_type)type, N, K), g1 = ggml_row_size(type, K) * N;
    const size_t nb = ggml_nbytes(wa.t);
    CHECK(nb == g1 * E, "%s: experts' ggml size", tn);
    CHECK(ggml_backend_buft_get_alloc_size(amxq_buft, wa.t) == p1 * E, "%s: experts' alloc size",
          tn);
    const void *experts[E];
    for (int e = 0; e < E; e++) {
        experts[e] = (const char *)wa.t->data + (size_t)e * p1;
        amxq_packed_desc d;
        CHECK(amxq_packed_info(experts[e], p1, &d) == AMXQ_OK && d.n == N && d.k == K,
              "%s: expert %d is not a packed weight", tn, e);
    }
    /* get_tensor: whole, and a part from inside expert 2 to inside expert 4. */
    unsigned char *back = (unsigned char *)malloc(nb);
    memset(back, 0xA5, nb);
    ggml_backend_tensor_get(wa.t, back, 0, nb);
    CHECK(memcmp(back, bytes, nb) == 0, "%s: 3-D get_tensor differs from the bytes set", tn);
    const size_t off = g1 * 2 + 77, part = g1 * 2 + 301;
    memset(back, 0xA5, nb);
    ggml_backend_tensor_get(wa.t, back, off, part);
    CHECK(memcmp(back, (const unsigned char *)bytes + off, part) == 0, "%s: partial 3-D get_tensor",
          tn);
    free(back);

    static const int ts[] = {1, 7, 32};
    const int64_t max_t = 32;
    float *x = (float *)malloc(sizeof(float) * K * TOP * max_t);
    int32_t *ids = (int32_t *)malloc(sizeof(int32_t) * TOP * max_t);
    float *ref = (float *)malloc(sizeof(float) * N * TOP * max_t);
    float *got = (float *)malloc(sizeof(float) * N * TOP * max_t);
    float *got1 = (float *)malloc(sizeof(float) * N * TOP * max_t);
    float *direct = (float *)malloc(sizeof(float) * N * TOP * max_t);
    for (int ti = 0; ti < 3; ti++)
        for (int64_t xs = 1; xs <= TOP; xs += TOP - 1) {
            const int64_t t = ts[ti];
            const size_t ny = (size_t)(N * TOP * t);
            g_fill(x, (size_t)(K * xs * t), 2000 + (uint64_t)(ti * 2 + xs));
            g_route(ids, TOP, t, E - 1, (uint64_t)(ti * 2 + xs)); /* expert 7: never */
            struct gid gc, ga;
            if (!gid_new(&gc, be, wc.t, xs, TOP, t) || !gid_new(&ga, be, wa.t, xs, TOP, t)) {
                CHECK(0, "%s: MUL_MAT_ID graph", tn);
                continue;
            }
            CHECK(ggml_backend_dev_supports_op(dev, ga.y), "%s T=%lld: AMXQ refused MUL_MAT_ID", tn,
                  (long long)t);
            CHECK(g_pick_buft(dev, ga.y) == amxq_buft, "%s T=%lld: an engine would not pick AMXQ",
                  tn, (long long)t);
            CHECK(gid_run(&gc, be, 1, x, ids, ref), "%s: ggml MUL_MAT_ID", tn);
            CHECK(amxq_matmul_id(experts, E, x, xs, K, K * xs, ids, TOP, TOP, t, direct, N, N * TOP,
                                 NULL) == AMXQ_OK,
                  "%s: amxq_matmul_id", tn);
            for (int nth = 1; nth <= 3; nth++) {
                memset(got, 0xFF, sizeof(float) * ny);
                CHECK(gid_run(&ga, be, nth, x, ids, got), "%s: AMXQ MUL_MAT_ID", tn);
                const double e = l2_rel(got, ref, ny);
                CHECK(e <= 1e-4, "%s T=%lld x_slots=%lld threads=%d: L2-rel %.3g vs ggml", tn,
                      (long long)t, (long long)xs, nth, e);
                if (nth == 1)
                    memcpy(got1, got, sizeof(float) * ny);
                else
                    CHECK(memcmp(got, got1, sizeof(float) * ny) == 0,
                          "%s T=%lld threads=%d: MUL_MAT_ID not bitwise equal to 1 thread", tn,
                          (long long)t, nth);
                CHECK(memcmp(got, direct, sizeof(float) * ny) == 0,
                      "%s T=%lld threads=%d: not what amxq_matmul_id gives", tn, (long long)t, nth);
                if (nth == 3)
                    printf("%-6s MUL_MAT_ID top-%d of %d, T=%2lld, x rows/token %lld  L2-rel vs "
                           "ggml %.2e, threads 1/2/3 bitwise equal\n",
                           tn, TOP, E, (long long)t, (long long)xs, e);
            }
            gid_free(&ga);
            gid_free(&gc);
        }
    free(x);
    free(ids);
    free(ref);
    free(got);
    free(got1);
    free(direct);
    gw_free(&wa);
    gw_free(&wc);
    free(bytes);
}

/* MUL_MAT_ID on a strided view of the activations (rows of K floats inside rows of K + 32, the
 * gaps poisoned), one row per slot: AMXQ takes it and matches ggml. */
static void test_moe_strided(void)
{
    enum { PAD = 32, T = 7 };
    const enum ggml_type type = GGML_TYPE_Q4_0;
    void *bytes = g_weights(type, N * E, K, 901);
    struct gw wc = {NULL, NULL, NULL}, wa = {NULL, NULL, NULL};
    if (bytes == NULL || !gw_new(&wc, type, K, N, E, cpu_buft, bytes) ||
        !gw_new(&wa, type, K, N, E, amxq_buft, bytes)) {
        CHECK(0, "strided MUL_MAT_ID: weights");
        free(bytes);
        return;
    }
    float *xw = (float *)malloc(sizeof(float) * (K + PAD) * TOP * T);
    g_fill(xw, (size_t)((K + PAD) * TOP * T), 31);
    for (int64_t r = 0; r < TOP * T; r++)
        for (int64_t l = K; l < K + PAD; l++)
            xw[r * (K + PAD) + l] = 1e30f; /* never read */
    int32_t ids[TOP * T];
    g_route(ids, TOP, T, E, 5);
    float *y[2];
    for (int p = 0; p < 2; p++) {
        struct gw *w = p ? &wa : &wc;
        struct ggml_context *ctx = gw_ctx(8);
        struct ggml_tensor *xs = ggml_new_tensor_3d(ctx, GGML_TYPE_F32, K + PAD, TOP, T);
        struct ggml_tensor *xv = ggml_view_3d(ctx, xs, K, TOP, T, xs->nb[1], xs->nb[2], 0);
        struct ggml_tensor *it = ggml_new_tensor_2d(ctx, GGML_TYPE_I32, TOP, T);
        struct ggml_tensor *op = ggml_mul_mat_id(ctx, w->t, xv, it);
        struct ggml_cgraph *gf = ggml_new_graph(ctx);
        ggml_build_forward_expand(gf, op);
        ggml_backend_buffer_t buf = ggml_backend_alloc_ctx_tensors(ctx, be);
        ggml_backend_tensor_set(xs, xw, 0, ggml_nbytes(xs));
        ggml_backend_tensor_set(it, ids, 0, sizeof ids);
        if (p)
            CHECK(ggml_backend_dev_supports_op(dev, op), "strided MUL_MAT_ID: AMXQ refused it");
        ggml_backend_cpu_set_n_threads(be, 2);
        CHECK(ggml_backend_graph_compute(be, gf) == GGML_STATUS_SUCCESS,
              "strided MUL_MAT_ID: compute");
        y[p] = (float *)malloc(ggml_nbytes(op));
        ggml_backend_tensor_get(op, y[p], 0, ggml_nbytes(op));
        ggml_backend_buffer_free(buf);
        ggml_free(ctx);
    }
    const double e = l2_rel(y[1], y[0], (size_t)(N * TOP * T));
    CHECK(e <= 1e-4, "strided MUL_MAT_ID: L2-rel %.3g vs ggml", e);
    printf("q4_0   MUL_MAT_ID, X a strided view (rows K of K + %d), one row per slot  L2-rel vs "
           "ggml %.2e\n",
           PAD, e);
    free(y[0]);
    free(y[1]);
    free(xw);
    gw_free(&wa);
    gw_free(&wc);
    free(bytes);
}

/* What AMXQ must refuse: the op is built against an unallocated weight, AMXQ says no, an
 * engine's choice (g_pick_buft) is not AMXQ, and with the weight in ggml's plain CPU buffer the
 * graph computes ggml's own result. */
static void refused(const char *what, struct ggml_tensor *op, struct ggml_tensor *w,
                    const void *bytes, struct ggml_context *ctx, const float *expect, double tol)
{
    CHECK(!g_buft_supports(dev, amxq_buft, op), "%s: AMXQ accepted it", what);
    ggml_backend_buffer_type_t pick = g_pick_buft(dev, op);
    CHECK(pick != amxq_buft, "%s: picked AMXQ", what);
    ggml_backend_buffer_t wbuf = ggml_backend_buft_alloc_buffer(
        cpu_buft, ggml_backend_buft_get_alloc_size(cpu_buft, w) + 256);
    struct ggml_tallocr ta = ggml_tallocr_new(wbuf);
    ggml_tallocr_alloc(&ta, w);
    ggml_backend_tensor_set(w, bytes, 0, ggml_nbytes(w));
    ggml_backend_buffer_t rest = ggml_backend_alloc_ctx_tensors(ctx, be);
    struct ggml_cgraph *gf = ggml_new_graph(ctx);
    ggml_build_forward_expand(gf, op);
    for (int i = 1; i < GGML_MAX_SRC && op->src[i] != NULL; i++) {
        struct ggml_tensor *s = op->src[i];
        if (s->view_src != NULL)
            s = s->view_src;
        if (s->type == GGML_TYPE_F32) {
            float *v = (float *)malloc(ggml_nbytes(s));
            g_fill(v, (size_t)ggml_nelements(s), 77);
            ggml_backend_tensor_set(s, v, 0, ggml_nbytes(s));
            free(v);
        } else if (s->type == GGML_TYPE_I32) {
            int32_t *v = (int32_t *)malloc(ggml_nbytes(s));
            for (int64_t j = 0; j < ggml_nelements(s); j++)
                v[j] = (int32_t)(j % w->ne[2]);
            ggml_backend_tensor_set(s, v, 0, ggml_nbytes(s));
            free(v);
        }
    }
    ggml_backend_cpu_set_n_threads(be, 2);
    CHECK(ggml_backend_graph_compute(be, gf) == GGML_STATUS_SUCCESS, "%s: compute", what);
    if (expect != NULL) {
        float *y = (float *)malloc(ggml_nbytes(op));
        ggml_backend_tensor_get(op, y, 0, ggml_nbytes(op));
        const double e = l2_rel(y, expect, (size_t)ggml_nelements(op));
        CHECK(e <= tol, "%s: L2-rel %.3g", what, e);
        free(y);
    }
    printf("%-36s refused by AMXQ (engine's pick: %s), computed in CPU\n", what,
           ggml_backend_buft_name(pick));
    ggml_backend_buffer_free(rest);
    ggml_backend_buffer_free(wbuf);
}

static void test_refusals(void)
{
    const int64_t m = 7;
    float *x = (float *)malloc(sizeof(float) * K * m);
    float *y = (float *)malloc(sizeof(float) * N * m);
    g_fill(x, (size_t)(K * m), 77); /* what refused() puts into the f32 inputs */

    /* An F16 weight: not an amxq type. Expected: f64 product of the f16 weights; ggml rounds
     * the activations to f16 on this path, hence the looser bound. */
    {
        float *wf = (float *)malloc(sizeof(float) * N * K);
        ggml_fp16_t *wh = (ggml_fp16_t *)malloc(sizeof(ggml_fp16_t) * N * K);
        g_fill(wf, (size_t)(N * K), 5);
        ggml_fp32_to_fp16_row(wf, wh, N * K);
        for (int64_t i = 0; i < m; i++)
            for (int64_t j = 0; j < N; j++) {
                double s = 0;
                for (int64_t l = 0; l < K; l++)
                    s += (double)ggml_fp16_to_fp32(wh[j * K + l]) * x[i * K + l];
                y[i * N + j] = (float)s;
            }
        struct ggml_context *ctx = gw_ctx(8);
        struct ggml_tensor *w = ggml_new_tensor_2d(ctx, GGML_TYPE_F16, K, N);
        struct ggml_context *ctx2 = gw_ctx(8);
        struct ggml_tensor *xt = ggml_new_tensor_2d(ctx2, GGML_TYPE_F32, K, m);
        refused("F16 weight", ggml_mul_mat(ctx2, w, xt), w, wh, ctx2, y, 5e-3);
        ggml_free(ctx2);
        ggml_free(ctx);
        free(wf);
        free(wh);
    }

    void *q = g_weights(GGML_TYPE_Q4_0, N, K, 9);
    /* The ggml result with contiguous activations, for the strided case. */
    {
        struct gw wc;
        struct gmm g;
        gw_new(&wc, GGML_TYPE_Q4_0, K, N, 1, cpu_buft, q);
        gmm_new(&g, be, wc.t, m, 1);
        gmm_run(&g, be, 1, x, y);
        gmm_free(&g);
        gw_free(&wc);
    }
    /* Non-contiguous activations: the rows of X are K floats of wider rows (a view, as of one
     * part of a fused tensor). ggml's path takes strided rows; AMXQ takes contiguous X only. */
    {
        enum { PAD = 32 };
        struct ggml_context *ctx = gw_ctx(8);
        struct ggml_tensor *w = ggml_new_tensor_2d(ctx, GGML_TYPE_Q4_0, K, N);
        struct ggml_context *ctx2 = gw_ctx(8);
        struct ggml_tensor *xs = ggml_new_tensor_2d(ctx2, GGML_TYPE_F32, K + PAD, m);
        struct ggml_tensor *xv = ggml_view_2d(ctx2, xs, K, m, xs->nb[1], 0);
        struct ggml_tensor *op = ggml_mul_mat(ctx2, w, xv);
        CHECK(!ggml_is_contiguous(op->src[1]), "the view is contiguous");
        CHECK(!g_buft_supports(dev, amxq_buft, op), "strided X: AMXQ accepted it");
        ggml_backend_buffer_type_t pick = g_pick_buft(dev, op);
        CHECK(pick != amxq_buft, "strided X: picked AMXQ");
        ggml_backend_buffer_t wbuf = ggml_backend_buft_alloc_buffer(
            cpu_buft, ggml_backend_buft_get_alloc_size(cpu_buft, w) + 256);
        struct ggml_tallocr ta = ggml_tallocr_new(wbuf);
        ggml_tallocr_alloc(&ta, w);
        ggml_backend_tensor_set(w, q, 0, ggml_nbytes(w));
        ggml_backend_buffer_t rest = ggml_backend_alloc_ctx_tensors(ctx2, be);
        float *xw = (float *)malloc(sizeof(float) * (K + PAD) * m);
        for (int64_t i = 0; i < m; i++)
            for (int64_t l = 0; l < K + PAD; l++)
                xw[i * (K + PAD) + l] = l < K ? x[i * K + l] : 1e30f; /* poison the gaps */
        ggml_backend_tensor_set(xs, xw, 0, ggml_nbytes(xs));
        struct ggml_cgraph *gf = ggml_new_graph(ctx2);
        ggml_build_forward_expand(gf, op);
        ggml_backend_cpu_set_n_threads(be, 2);
        CHECK(ggml_backend_graph_compute(be, gf) == GGML_STATUS_SUCCESS, "strided X: compute");
        float *got = (float *)malloc(sizeof(float) * N * m);
        ggml_backend_tensor_get(op, got, 0, ggml_nbytes(op));
        const double e = l2_rel(got, y, (size_t)(N * m));
        CHECK(e <= 1e-4, "strided X: L2-rel %.3g", e);
        printf("%-36s refused by AMXQ (engine's pick: %s), computed in CPU, L2-rel %.1e\n",
               "Q4_0 weight, strided rows of X", ggml_backend_buft_name(pick), e);
        free(got);
        free(xw);
        ggml_backend_buffer_free(rest);
        ggml_backend_buffer_free(wbuf);
        ggml_free(ctx2);
        ggml_free(ctx);
    }
    free(q);

    /* A 3-D weight (a stack of two matrices multiplied batch by batch), and MUL_MAT_ID with
     * activations broadcast over the slots by a factor amxq does not take (2 rows per token for
     * 4 slots: ggml allows any divisor of n_used, amxq 1 or n_used). */
    q = g_weights(GGML_TYPE_Q8_0, N * 2, K, 11);
    {
        struct ggml_context *ctx = gw_ctx(8);
        struct ggml_tensor *w = ggml_new_tensor_3d(ctx, GGML_TYPE_Q8_0, K, N, 2);
        struct ggml_context *ctx2 = gw_ctx(8);
        struct ggml_tensor *xt = ggml_new_tensor_3d(ctx2, GGML_TYPE_F32, K, m, 2);
        refused("Q8_0 3-D weight (batched MUL_MAT)", ggml_mul_mat(ctx2, w, xt), w, q, ctx2, NULL,
                0);
        ggml_free(ctx2);
        ggml_free(ctx);
    }
    {
        struct ggml_context *ctx = gw_ctx(8);
        struct ggml_tensor *w = ggml_new_tensor_3d(ctx, GGML_TYPE_Q8_0, K, N, 2);
        struct ggml_context *ctx2 = gw_ctx(8);
        struct ggml_tensor *xt = ggml_new_tensor_3d(ctx2, GGML_TYPE_F32, K, 2, m);
        struct ggml_tensor *ids = ggml_new_tensor_2d(ctx2, GGML_TYPE_I32, 4, m);
        refused("Q8_0 experts, MUL_MAT_ID, X 2 of 4", ggml_mul_mat_id(ctx2, w, xt, ids), w, q, ctx2,
                NULL, 0);
        ggml_free(ctx2);
        ggml_free(ctx);
    }
    free(q);
    free(x);
    free(y);
}

int main(void)
{
    be = ggml_backend_cpu_init();
    if (be == NULL) {
        printf("FAIL: no CPU backend\n");
        return 1;
    }
    dev = ggml_backend_get_device(be);
    cpu_buft = ggml_backend_cpu_buffer_type();
    test_hook();
    if (amxq_buft != NULL) {
        /* Every type amxq packs, as the buffer type decides it (amxq_type_name()); at least
         * the four of amxq 0.1. */
        int tested = 0;
        for (int t = 0; t < GGML_TYPE_COUNT; t++)
            if (amxq_type_name((amxq_type)t) != NULL) {
                test_type((enum ggml_type)t);
                test_moe((enum ggml_type)t);
                tested += t == GGML_TYPE_Q4_0 || t == GGML_TYPE_Q4_1 || t == GGML_TYPE_Q8_0 ||
                          t == GGML_TYPE_Q4_K;
            }
        CHECK(tested == 4, "only %d of Q4_0, Q4_1, Q8_0, Q4_K are amxq types", tested);
        test_moe_strided();
        test_refusals();
    }
    ggml_backend_free(be);
    printf("%s (%d failure%s)\n", failures ? "FAILED" : "ok", failures, failures == 1 ? "" : "s");
    return failures ? 1 : 0;
}
