/*
 * amxq_ctx: a small pool of persistent worker threads that runs one product at a time through
 * the slice API, with the calling thread as worker 0.
 *
 * Life of a product (amxq_ctx_matmul): the caller checks every argument exactly as
 * amxq_matmul_ex() does, takes the context's call lock, publishes the job, then all n threads
 * pass the barrier three times: start (workers pick up the job), middle (every row of X is
 * quantized), end (every share of C is written; the caller may return). Nothing can fail after
 * the checks, so workers never report errors.
 *
 * Invariants: only the holder of call_lock publishes a job or shuts the pool down; job fields are
 * written before the start barrier and read after it (the barrier orders them); workers never
 * touch the caller's buffers outside a job. A worker that kept tiles (AMXQ_KEEP_TILES) remembers
 * which tables it ran and releases their tile state when it exits.
 */
#define _GNU_SOURCE /* sched_getaffinity, CPU_SET, pthread_attr_setaffinity_np */

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "amxq_config.h"
#include "internal.h"
#include "parallel/ctx_job.h"
#include "parallel/parallel.h"

#define MAX_THREADS 4096

struct amxq_ctx;

typedef struct worker {
    struct amxq_ctx *ctx;
    int ith;
    unsigned kept_tiles; /* bit i: this worker left tiles of table i (an amxq_isa) configured */
} worker;

struct amxq_ctx {
    int n_threads;
    int node; /* -1: not bound */
    pthread_t *threads;
    worker *workers; /* n_threads entries; [0] is whichever thread calls */
    amxq_barrier bar;

    /* Start-up gate: workers wait for gate != 0 (1: run, -1: exit at once). */
    pthread_mutex_t gate_lock;
    pthread_cond_t gate_cond;
    int gate;

    pthread_mutex_t call_lock; /* one product (or the shutdown) at a time */
    void *ws;                  /* the context's workspace (amxq_packed_alloc), ws_cap bytes */
    size_t ws_cap;

    /* The job, valid between the start and end barriers. */
    int shutdown;
    amxq_plan plan;
    amxq_layout lo;
    const struct amxq_kernels *t;
    const void *packed;
    const amxq_mirror *mirror; /* when set, each thread reads its node's copy instead */
    const float *x;
    int64_t ldx;
    float *c;
    int64_t ldc;
    void *job_ws;
    /* A job other than a dense product (src/parallel/ctx_job.h); NULL for amxq_ctx_matmul. */
    amxq_ctx_job_fn *job_fn;
    void *job_arg;
};

/* Release the tile state of every table this worker kept tiles of. */
static void release_kept(worker *w)
{
    for (int isa = 0; isa < AMXQ_ISA_COUNT; isa++) {
        if (!(w->kept_tiles & (1u << isa)))
            continue;
        const struct amxq_kernels *t = amxq_kernels_get((amxq_isa)isa, NULL);
        if (t != NULL && t->tile_release != NULL)
            t->tile_release();
    }
    w->kept_tiles = 0;
}

/* One thread's part of the current job (between the start and end barriers), of `nth` parts;
 * nth == 1 is the caller doing the whole product alone, with no barrier. */
static void run_job(struct amxq_ctx *ctx, worker *w, int nth)
{
    if (ctx->job_fn != NULL) {
        w->kept_tiles |= ctx->job_fn(ctx->job_arg, ctx->job_ws, ctx, w->ith, nth);
        return;
    }
    amxq_par_quantize(&ctx->plan, ctx->t, ctx->x, ctx->ldx, ctx->job_ws, w->ith, nth);
    if (nth > 1)
        amxq_barrier_wait(&ctx->bar);
    const void *packed = ctx->mirror ? amxq_mirror_local(ctx->mirror) : ctx->packed;
    if (amxq_par_gemm(&ctx->plan, ctx->t, &ctx->lo, packed, ctx->job_ws, ctx->c, ctx->ldc, w->ith,
                      nth) &&
        ctx->t->tile_release != NULL) {
        if (ctx->plan.flags & AMXQ_KEEP_TILES)
            w->kept_tiles |= 1u << ctx->plan.isa;
        else
            ctx->t->tile_release();
    }
}

static void *worker_main(void *arg)
{
    worker *w = (worker *)arg;
    struct amxq_ctx *ctx = w->ctx;
    pthread_mutex_lock(&ctx->gate_lock);
    while (ctx->gate == 0)
        pthread_cond_wait(&ctx->gate_cond, &ctx->gate_lock);
    const int go = ctx->gate;
    pthread_mutex_unlock(&ctx->gate_lock);
    if (go < 0)
        return NULL;
    for (;;) {
        amxq_barrier_wait(&ctx->bar);
        if (ctx->shutdown)
            break;
        run_job(ctx, w, ctx->n_threads);
        amxq_barrier_wait(&ctx->bar);
    }
    release_kept(w);
    return NULL;
}

/* CPUs the calling thread may run on (the default thread count). */
static int allowed_cpus(void)
{
#ifdef __linux__
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0)
        return CPU_COUNT(&set);
#endif
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)(n < MAX_THREADS ? n : MAX_THREADS) : 1;
}

static amxq_status check_params(const amxq_ctx_params *p, int *n_threads, int *node)
{
    static const amxq_ctx_params defaults = {0, NULL, 0, 0, 0};
    const amxq_ctx_params *pp = p ? p : &defaults;
    AMXQ_CHECK((pp->flags & ~AMXQ_CTX_NUMA_NODE) == 0, AMXQ_ERR_ARG);
    AMXQ_CHECK(pp->n_threads >= 0 && pp->n_threads <= MAX_THREADS, AMXQ_ERR_ARG);
    int n = pp->n_threads;
    if (pp->cpus != NULL) {
#ifdef __linux__
        AMXQ_CHECK(pp->n_cpus >= 1 && pp->n_cpus >= n, AMXQ_ERR_ARG);
        if (n == 0)
            n = pp->n_cpus < MAX_THREADS ? pp->n_cpus : MAX_THREADS;
        cpu_set_t allowed;
        AMXQ_CHECK(sched_getaffinity(0, sizeof allowed, &allowed) == 0, AMXQ_ERR_ARG);
        for (int i = 1; i < n; i++)
            AMXQ_CHECK(pp->cpus[i] >= 0 && pp->cpus[i] < CPU_SETSIZE &&
                           CPU_ISSET(pp->cpus[i], &allowed),
                       AMXQ_ERR_ARG);
#else
        AMXQ_PAR_FAIL(AMXQ_ERR_ARG, "CPU pinning needs Linux");
#endif
    }
    if (n == 0)
        n = allowed_cpus();
    *node = -1;
    if (pp->flags & AMXQ_CTX_NUMA_NODE) {
        AMXQ_CHECK(pp->numa_node >= 0, AMXQ_ERR_ARG);
        AMXQ_CHECK(pp->numa_node < amxq_numa_node_count(), AMXQ_ERR_NUMA);
        *node = pp->numa_node;
    }
    *n_threads = n;
    return AMXQ_OK;
}

/* Affinity for worker i, if any: a pinned CPU, else the node's CPUs. Returns 1 when set. */
static int worker_affinity(const amxq_ctx_params *p, int node, int i, void *setp)
{
#ifdef __linux__
    cpu_set_t *set = (cpu_set_t *)setp;
    CPU_ZERO(set);
    if (p != NULL && p->cpus != NULL) {
        CPU_SET(p->cpus[i], set);
        return 1;
    }
    if (node >= 0) {
        int cpus[CPU_SETSIZE];
        const int nc = amxq_numa_node_cpus(node, cpus, CPU_SETSIZE);
        for (int j = 0; j < nc; j++)
            CPU_SET(cpus[j], set);
        return nc > 0;
    }
#else
    (void)p;
    (void)node;
    (void)i;
    (void)setp;
#endif
    return 0;
}

/* Start worker i; returns 0 or an errno value. Workers block every asynchronous signal, so the
 * engine's handlers run on the engine's own threads, but leave the synchronous fault signals
 * unblocked: a SIGILL, SIGSEGV, SIGBUS or SIGFPE raised by a worker's own instruction must reach
 * the process's handler (an engine's crash reporter; a trap-and-emulate test harness), and a
 * blocked synchronous fault kills the process without running any handler. */
static int start_worker(struct amxq_ctx *ctx, const amxq_ctx_params *p, int i)
{
    pthread_attr_t attr;
    int e = pthread_attr_init(&attr);
    if (e)
        return e;
#ifdef __linux__
    cpu_set_t set;
    if (worker_affinity(p, ctx->node, i, &set))
        e = pthread_attr_setaffinity_np(&attr, sizeof set, &set);
#else
    (void)p;
#endif
    sigset_t all, old;
    sigfillset(&all);
    sigdelset(&all, SIGILL);
    sigdelset(&all, SIGSEGV);
    sigdelset(&all, SIGBUS);
    sigdelset(&all, SIGFPE);
    if (!e)
        e = pthread_sigmask(SIG_SETMASK, &all, &old);
    if (!e) {
        e = pthread_create(&ctx->threads[i], &attr, worker_main, &ctx->workers[i]);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
    }
    pthread_attr_destroy(&attr);
    return e;
}

/* Tear down a context whose first `started` workers (1..started) are running or gated. */
static void teardown(struct amxq_ctx *ctx, int started, int gated)
{
    if (gated) {
        pthread_mutex_lock(&ctx->call_lock);
        ctx->shutdown = 1;
        amxq_barrier_wait(&ctx->bar);
        pthread_mutex_unlock(&ctx->call_lock);
    } else {
        pthread_mutex_lock(&ctx->gate_lock);
        ctx->gate = -1;
        pthread_cond_broadcast(&ctx->gate_cond);
        pthread_mutex_unlock(&ctx->gate_lock);
    }
    for (int i = 1; i <= started; i++)
        pthread_join(ctx->threads[i], NULL);
    amxq_barrier_destroy(&ctx->bar);
    pthread_mutex_destroy(&ctx->call_lock);
    pthread_cond_destroy(&ctx->gate_cond);
    pthread_mutex_destroy(&ctx->gate_lock);
    amxq_packed_free(ctx->ws);
    amxq_free_aligned(ctx->threads);
    amxq_free_aligned(ctx->workers);
    amxq_free_aligned(ctx);
}

static amxq_status errno_status(int e)
{
    return e == ENOMEM ? AMXQ_ERR_NOMEM : AMXQ_ERR_THREAD;
}

amxq_status amxq_ctx_create(const amxq_ctx_params *params, amxq_ctx **out)
{
    AMXQ_CHECK(out != NULL, AMXQ_ERR_NULL);
    *out = NULL;
    int n, node;
    AMXQ_TRY(check_params(params, &n, &node));

    struct amxq_ctx *ctx = amxq_alloc_aligned(sizeof *ctx, AMXQ_ALIGNMENT);
    AMXQ_CHECK(ctx != NULL, AMXQ_ERR_NOMEM);
    memset(ctx, 0, sizeof *ctx);
    ctx->n_threads = n;
    ctx->node = node;
    ctx->workers = amxq_alloc_aligned(sizeof(worker) * (size_t)n, AMXQ_ALIGNMENT);
    ctx->threads = amxq_alloc_aligned(sizeof(pthread_t) * (size_t)n, AMXQ_ALIGNMENT);
    if (ctx->workers == NULL || ctx->threads == NULL) {
        amxq_free_aligned(ctx->workers);
        amxq_free_aligned(ctx->threads);
        amxq_free_aligned(ctx);
        AMXQ_PAR_FAIL(AMXQ_ERR_NOMEM, "ctx arrays");
    }
    for (int i = 0; i < n; i++)
        ctx->workers[i] = (worker){ctx, i, 0};

    /* The sync objects, undone in reverse on failure. */
    int e = pthread_mutex_init(&ctx->gate_lock, NULL);
    int made = 0;
    if (!e) {
        made = 1;
        e = pthread_cond_init(&ctx->gate_cond, NULL);
    }
    if (!e) {
        made = 2;
        e = pthread_mutex_init(&ctx->call_lock, NULL);
    }
    if (!e) {
        made = 3;
        e = amxq_barrier_init(&ctx->bar, n);
    }
    if (e) {
        if (made >= 3)
            pthread_mutex_destroy(&ctx->call_lock);
        if (made >= 2)
            pthread_cond_destroy(&ctx->gate_cond);
        if (made >= 1)
            pthread_mutex_destroy(&ctx->gate_lock);
        amxq_free_aligned(ctx->workers);
        amxq_free_aligned(ctx->threads);
        amxq_free_aligned(ctx);
        AMXQ_PAR_FAIL(errno_status(e), "ctx sync objects");
    }

    int started = 0;
    for (int i = 1; i < n; i++) {
        e = start_worker(ctx, params, i);
        if (e) {
            teardown(ctx, started, 0);
            AMXQ_PAR_FAIL(errno_status(e), "pthread_create");
        }
        started++;
    }
    pthread_mutex_lock(&ctx->gate_lock);
    ctx->gate = 1;
    pthread_cond_broadcast(&ctx->gate_cond);
    pthread_mutex_unlock(&ctx->gate_lock);
    *out = ctx;
    return AMXQ_OK;
}

void amxq_ctx_destroy(amxq_ctx *ctx)
{
    if (ctx != NULL)
        teardown(ctx, ctx->n_threads - 1, 1);
}

int amxq_ctx_threads(const amxq_ctx *ctx)
{
    return ctx ? ctx->n_threads : 0;
}

/* Make the context's workspace hold `bytes`; keeps the old one on failure. */
static amxq_status grow_ws(struct amxq_ctx *ctx, size_t bytes)
{
    if (ctx->ws_cap >= bytes)
        return AMXQ_OK;
    void *ws = NULL;
    const amxq_placement where = ctx->node >= 0 ? AMXQ_PLACE_NODE : AMXQ_PLACE_DEFAULT;
    AMXQ_TRY(amxq_packed_alloc(bytes, where, ctx->node >= 0 ? ctx->node : 0, &ws, NULL));
    amxq_packed_free(ctx->ws);
    ctx->ws = ws;
    ctx->ws_cap = bytes;
    return AMXQ_OK;
}

static amxq_status ctx_run(amxq_ctx *ctx, const void *packed, const amxq_mirror *mirror,
                           const float *x, int64_t m, int64_t ldx, float *c, int64_t ldc,
                           const amxq_matmul_params *params)
{
    amxq_plan plan;
    amxq_layout lo;
    AMXQ_TRY(amxq_par_check_matmul(packed, x, m, ldx, c, ldc, params, &plan, &lo));
    const struct amxq_kernels *t = amxq_kernels_get(plan.isa, NULL);
    AMXQ_CHECK(t != NULL, AMXQ_ERR_ISA_UNSUPPORTED);

    pthread_mutex_lock(&ctx->call_lock);
    void *ws = params != NULL ? params->workspace : NULL;
    if (ws == NULL) {
        amxq_status st = grow_ws(ctx, plan.workspace_size);
        if (st != AMXQ_OK) {
            pthread_mutex_unlock(&ctx->call_lock);
            return st;
        }
        ws = ctx->ws;
    }
    ctx->plan = plan;
    ctx->lo = lo;
    ctx->t = t;
    ctx->packed = packed;
    ctx->mirror = mirror;
    ctx->x = x;
    ctx->ldx = ldx;
    ctx->c = c;
    ctx->ldc = ldc;
    ctx->job_ws = ws;

    /* The caller is worker 0 for this product; it keeps its own tiles only if asked to, and then
     * releases them itself (amxq_tile_release()), as with amxq_matmul_ex(). */
    worker *w0 = &ctx->workers[0];
    if ((uint64_t)plan.m * (uint64_t)plan.n * (uint64_t)plan.k < AMXQ_CTX_SMALL_MACS) {
        /* Waking the workers costs more than such a product: the caller runs it alone (the
         * kernels' results do not depend on the split, so the bits are the same). */
        run_job(ctx, w0, 1);
    } else {
        amxq_barrier_wait(&ctx->bar);
        run_job(ctx, w0, ctx->n_threads);
        amxq_barrier_wait(&ctx->bar);
    }
    w0->kept_tiles = 0;

    ctx->mirror = NULL;
    ctx->x = NULL;
    ctx->c = NULL;
    pthread_mutex_unlock(&ctx->call_lock);
    return AMXQ_OK;
}

amxq_status amxq_ctx_matmul(amxq_ctx *ctx, const void *packed, const float *x, int64_t m,
                            int64_t ldx, float *c, int64_t ldc, const amxq_matmul_params *params)
{
    AMXQ_CHECK(ctx != NULL, AMXQ_ERR_NULL);
    return ctx_run(ctx, packed, NULL, x, m, ldx, c, ldc, params);
}

amxq_status amxq_ctx_matmul_mirror(amxq_ctx *ctx, const amxq_mirror *mirror, const float *x,
                                   int64_t m, int64_t ldx, float *c, int64_t ldc,
                                   const amxq_matmul_params *params)
{
    AMXQ_CHECK(ctx != NULL && mirror != NULL, AMXQ_ERR_NULL);
    return ctx_run(ctx, amxq_mirror_get(mirror, 0), mirror, x, m, ldx, c, ldc, params);
}

/* ---- Jobs other than a dense product (src/parallel/ctx_job.h; amxq_ctx_matmul_id) ----------- */

amxq_status amxq_ctx_job_run(amxq_ctx *ctx, size_t ws_bytes, void *caller_ws, int alone,
                             amxq_ctx_job_fn *fn, void *arg)
{
    pthread_mutex_lock(&ctx->call_lock);
    void *ws = caller_ws;
    if (ws == NULL) {
        amxq_status st = grow_ws(ctx, ws_bytes);
        if (st != AMXQ_OK) {
            pthread_mutex_unlock(&ctx->call_lock);
            return st;
        }
        ws = ctx->ws;
    }
    ctx->job_fn = fn;
    ctx->job_arg = arg;
    ctx->job_ws = ws;
    worker *w0 = &ctx->workers[0];
    if (alone || ctx->n_threads == 1) {
        run_job(ctx, w0, 1);
    } else {
        amxq_barrier_wait(&ctx->bar);
        run_job(ctx, w0, ctx->n_threads);
        amxq_barrier_wait(&ctx->bar);
    }
    w0->kept_tiles = 0; /* the caller releases its own, as after amxq_ctx_matmul */
    ctx->job_fn = NULL;
    ctx->job_arg = NULL;
    pthread_mutex_unlock(&ctx->call_lock);
    return AMXQ_OK;
}

void amxq_ctx_job_sync(amxq_ctx *ctx, int nth)
{
    if (nth > 1)
        amxq_barrier_wait(&ctx->bar);
}
