/* Helpers shared by the ggml test and bench of the AMXQ buffer type: weights in a chosen buffer
 * type, one MUL_MAT graph, and the buffer-type choice an engine makes. Test code only. */
#ifndef GGML_AMXQ_UTIL_H_5B0D3A61
#define GGML_AMXQ_UTIL_H_5B0D3A61

#include "ggml-amxq.h"

#include "ggml-alloc.h"
#include "ggml-backend.h"
#include "ggml-cpu.h"
#include "ggml.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A weight tensor of its own context, allocated in one buffer type. */
struct gw {
    struct ggml_context *ctx;
    ggml_backend_buffer_t buf;
    struct ggml_tensor *t;
};

static inline struct ggml_context *gw_ctx(size_t n_tensors)
{
    struct ggml_init_params ip = {ggml_tensor_overhead() * n_tensors + ggml_graph_overhead(), NULL,
                                  true};
    return ggml_init(ip);
}

/* ne: K, N[, E]; bytes: ggml's bytes of the whole tensor (NULL: leave unwritten). */
static inline int gw_new(struct gw *w, enum ggml_type type, int64_t k, int64_t n, int64_t e,
                         ggml_backend_buffer_type_t buft, const void *bytes)
{
    w->ctx = gw_ctx(1);
    w->t =
        e > 1 ? ggml_new_tensor_3d(w->ctx, type, k, n, e) : ggml_new_tensor_2d(w->ctx, type, k, n);
    ggml_set_name(w->t, "weight");
    w->buf = ggml_backend_alloc_ctx_tensors_from_buft(w->ctx, buft);
    if (w->buf == NULL)
        return 0;
    ggml_backend_buffer_set_usage(w->buf, GGML_BACKEND_BUFFER_USAGE_WEIGHTS);
    if (bytes != NULL)
        ggml_backend_tensor_set(w->t, bytes, 0, ggml_nbytes(w->t));
    return 1;
}

static inline void gw_free(struct gw *w)
{
    if (w->buf != NULL)
        ggml_backend_buffer_free(w->buf);
    ggml_free(w->ctx);
    memset(w, 0, sizeof *w);
}

/* Whether `dev` would run `op` with src[0] placed in `buft`: what llama.cpp asks before it places
 * a weight (a zero-sized buffer of that type stands in for the real one). */
static inline int g_buft_supports(ggml_backend_dev_t dev, ggml_backend_buffer_type_t buft,
                                  struct ggml_tensor *op)
{
    struct ggml_tensor *w = op->src[0];
    ggml_backend_buffer_t saved = w->buffer;
    ggml_backend_buffer_t dummy = ggml_backend_buft_alloc_buffer(buft, 0);
    w->buffer = dummy;
    const int ok = ggml_backend_dev_supports_op(dev, op);
    w->buffer = saved;
    ggml_backend_buffer_free(dummy);
    return ok;
}

/* The CPU device's extra buffer types, in ggml's order, NULL-terminated. */
static inline ggml_backend_buffer_type_t *g_extra_bufts(ggml_backend_dev_t dev)
{
    void *p = ggml_backend_reg_get_proc_address(ggml_backend_cpu_reg(),
                                                "ggml_backend_dev_get_extra_bufts");
    ggml_backend_dev_get_extra_bufts_t get;
    memcpy(&get, &p, sizeof get); /* ISO C has no cast from object to function pointer */
    static ggml_backend_buffer_type_t none[1] = {NULL};
    return get != NULL ? get(dev) : none;
}

/* An engine's choice for the weight of `op`: the first extra buffer type that supports the op,
 * else the plain CPU buffer. */
static inline ggml_backend_buffer_type_t g_pick_buft(ggml_backend_dev_t dev, struct ggml_tensor *op)
{
    for (ggml_backend_buffer_type_t *b = g_extra_bufts(dev); *b != NULL; b++)
        if (g_buft_supports(dev, *b, op))
            return *b;
    return ggml_backend_cpu_buffer_type();
}

/* One extra buffer type by name, or NULL. */
static inline ggml_backend_buffer_type_t g_extra_buft(ggml_backend_dev_t dev, const char *name)
{
    for (ggml_backend_buffer_type_t *b = g_extra_bufts(dev); *b != NULL; b++)
        if (strcmp(ggml_backend_buft_name(*b), name) == 0)
            return *b;
    return NULL;
}

/* A graph computing Y = mul_mat(w, X) for X of K x M (x B) f32, its tensors in the CPU buffer. */
struct gmm {
    struct ggml_context *ctx;
    ggml_backend_buffer_t buf;
    struct ggml_tensor *x, *y;
    struct ggml_cgraph *gf;
};

static inline int gmm_new(struct gmm *g, ggml_backend_t be, struct ggml_tensor *w, int64_t m,
                          int64_t b)
{
    g->ctx = gw_ctx(8);
    g->x = ggml_new_tensor_3d(g->ctx, GGML_TYPE_F32, w->ne[0], m, b);
    ggml_set_name(g->x, "x");
    g->y = ggml_mul_mat(g->ctx, w, g->x);
    ggml_set_name(g->y, "y");
    g->gf = ggml_new_graph(g->ctx);
    ggml_build_forward_expand(g->gf, g->y);
    g->buf = ggml_backend_alloc_ctx_tensors(g->ctx, be);
    return g->buf != NULL;
}

static inline void gmm_free(struct gmm *g)
{
    if (g->buf != NULL)
        ggml_backend_buffer_free(g->buf);
    ggml_free(g->ctx);
    memset(g, 0, sizeof *g);
}

/* Runs the graph on `nth` threads: x in, y out. */
static inline int gmm_run(struct gmm *g, ggml_backend_t be, int nth, const float *x, float *y)
{
    ggml_backend_cpu_set_n_threads(be, nth);
    if (x != NULL)
        ggml_backend_tensor_set(g->x, x, 0, ggml_nbytes(g->x));
    if (ggml_backend_graph_compute(be, g->gf) != GGML_STATUS_SUCCESS)
        return 0;
    if (y != NULL)
        ggml_backend_tensor_get(g->y, y, 0, ggml_nbytes(g->y));
    return 1;
}

/* A graph computing Y = mul_mat_id(w, X, ids) for experts w [K, N, E], X [K, x_slots, T] f32 and
 * ids [n_used, T] i32, its tensors in the CPU buffer. */
struct gid {
    struct ggml_context *ctx;
    ggml_backend_buffer_t buf;
    struct ggml_tensor *x, *ids, *y;
    struct ggml_cgraph *gf;
};

static inline int gid_new(struct gid *g, ggml_backend_t be, struct ggml_tensor *w, int64_t x_slots,
                          int64_t n_used, int64_t t)
{
    g->ctx = gw_ctx(8);
    g->x = ggml_new_tensor_3d(g->ctx, GGML_TYPE_F32, w->ne[0], x_slots, t);
    ggml_set_name(g->x, "x");
    g->ids = ggml_new_tensor_2d(g->ctx, GGML_TYPE_I32, n_used, t);
    ggml_set_name(g->ids, "ids");
    g->y = ggml_mul_mat_id(g->ctx, w, g->x, g->ids);
    ggml_set_name(g->y, "y");
    g->gf = ggml_new_graph(g->ctx);
    ggml_build_forward_expand(g->gf, g->y);
    g->buf = ggml_backend_alloc_ctx_tensors(g->ctx, be);
    return g->buf != NULL;
}

/* Runs the graph on `nth` threads: x and ids in (NULL: as they are), y out (NULL: not read). */
static inline int gid_run(struct gid *g, ggml_backend_t be, int nth, const float *x,
                          const int32_t *ids, float *y)
{
    ggml_backend_cpu_set_n_threads(be, nth);
    if (x != NULL)
        ggml_backend_tensor_set(g->x, x, 0, ggml_nbytes(g->x));
    if (ids != NULL)
        ggml_backend_tensor_set(g->ids, ids, 0, ggml_nbytes(g->ids));
    if (ggml_backend_graph_compute(be, g->gf) != GGML_STATUS_SUCCESS)
        return 0;
    if (y != NULL)
        ggml_backend_tensor_get(g->y, y, 0, ggml_nbytes(g->y));
    return 1;
}

static inline void gid_free(struct gid *g)
{
    if (g->buf != NULL)
        ggml_backend_buffer_free(g->buf);
    ggml_free(g->ctx);
    memset(g, 0, sizeof *g);
}

/* A MoE router's output: for each of T tokens, n_used different experts of 0 .. n_pick - 1
 * (n_used <= n_pick), pseudo-random from `seed`. */
static inline void g_route(int32_t *ids, int64_t n_used, int64_t t, int64_t n_pick, uint64_t seed)
{
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 7;
    for (int64_t i = 0; i < t; i++)
        for (int64_t j = 0; j < n_used;) {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            const int32_t e = (int32_t)(s % (uint64_t)n_pick);
            int dup = 0;
            for (int64_t l = 0; l < j; l++)
                dup |= ids[i * n_used + l] == e;
            if (!dup)
                ids[i * n_used + j++] = e;
        }
}

/* Deterministic values in [-1, 1). */
static inline void g_fill(float *v, size_t n, uint64_t seed)
{
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
    for (size_t i = 0; i < n; i++) {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        v[i] = (float)((double)(s >> 11) / (double)(1ull << 53) * 2.0 - 1.0);
    }
}

/* ggml's bytes of N rows of K random weights of `type`. */
static inline void *g_weights(enum ggml_type type, int64_t n, int64_t k, uint64_t seed)
{
    float *f = (float *)malloc((size_t)(n * k) * sizeof(float));
    void *q = malloc(ggml_row_size(type, k) * (size_t)n);
    if (f == NULL || q == NULL) {
        free(f);
        free(q);
        return NULL;
    }
    g_fill(f, (size_t)(n * k), seed);
    ggml_quantize_chunk(type, f, q, 0, n, k, NULL);
    free(f);
    return q;
}

#endif
