/*
 * Process and thread lifetimes around amxq's per-thread and per-process state (issue 8, part 4):
 *
 *   1. fork(): a child uses the library after the parent has (pack, products on every ISA this
 *      build runs, the process-wide ISA choice, a thread pool of its own) and gets the parent's
 *      bytes and bits exactly; a child forked while the parent's thread holds kept (emulated) tiles
 *      and while the parent owns a running pool works too. The whole program runs once more in an
 *      exec'd child with AMXQ_ISA=amx-emu, so plain amxq_matmul() takes the emulated tile path in
 *      parent and forked grandchild alike.
 *   2. Threads that exit holding tiles (amxq_matmul_ex with AMXQ_KEEP_TILES, no release): the
 *      process goes on, threads running products at the same time are unaffected, and new
 *      threads start with their tiles released.
 *   3. Every public call that may run tile kernels leaves the calling thread's emulated tile state
 *      released, unless AMXQ_KEEP_TILES (queried from the emulator, src/tile/emu.h).
 *
 * Results are compared bit for bit: the same kernels on the same bytes must give the same bits in
 * any process or thread. TSan-clean by construction: forks that start threads in the child happen
 * before the parent has any thread of its own (TSan does not support threads after a
 * multi-threaded fork).
 */
#define _POSIX_C_SOURCE 200809L /* fork, setenv, waitpid under -std=c11 */

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "amxq.h"
#include "amxq_config.h"
#include "common/testutil.h"
#if AMXQ_KERNELS_AMX_EMU
#include "tile/emu.h"
#define HAVE_TEMU 1
#else
#define HAVE_TEMU 0
#endif

#define M      5
#define N      37 /* three panels, the last one padded */
#define LDX    300
#define LDC    40
#define NTYPES 10
#define NVAR   5

static const amxq_type types[NTYPES] = {
    AMXQ_TYPE_Q4_0, AMXQ_TYPE_Q4_1,   AMXQ_TYPE_Q8_0, AMXQ_TYPE_Q4_K, AMXQ_TYPE_Q6_K,
    AMXQ_TYPE_Q5_K, AMXQ_TYPE_IQ4_XS, AMXQ_TYPE_Q5_0, AMXQ_TYPE_Q5_1, AMXQ_TYPE_IQ4_NL};
/* The per-call ISA variants compared across processes and threads. */
static const amxq_isa variants[NVAR] = {AMXQ_ISA_SCALAR, AMXQ_ISA_AUTO, AMXQ_ISA_AMX_EMU,
                                        AMXQ_ISA_AVX512_EMU, AMXQ_ISA_AMX};

static const char *self_argv0;
static int64_t kdim[NTYPES];
static uint8_t *ggml[NTYPES];
static void *packed[NTYPES];
static size_t packed_size[NTYPES];
static float x[M * LDX];
static float want[NTYPES][NVAR][M * LDC]; /* the parent's results */
static int runs[NVAR];                    /* whether the variant's ISA runs here */

/* Emulated tile state of the calling thread: 1 configured, 0 released, -1 not observable. */
static int temu_state(void)
{
#if HAVE_TEMU
    return amxq_temu_configured(NULL);
#else
    return -1;
#endif
}

static void setup(void)
{
    uint64_t s = 0x5EEDF0C4ull;
    for (int t = 0; t < NTYPES; t++) {
        kdim[t] = amxq_type_block(types[t]) == 256 ? 256 : 64;
        size_t gs = amxq_ggml_size(types[t], N, kdim[t]), bb = amxq_type_block_bytes(types[t]);
        ggml[t] = (uint8_t *)malloc(gs);
        tu_fill_bytes(&s, ggml[t], gs);
        for (size_t b = 0; b < gs / bb; b++) { /* moderate fp16 scales */
            uint16_t d = (uint16_t)(0x1C00 + (tu_rand(&s) >> 54)), d2 = (uint16_t)(d - 0x400);
            memcpy(ggml[t] + b * bb, &d, 2);
            if (types[t] != AMXQ_TYPE_Q8_0)
                memcpy(ggml[t] + b * bb + 2, &d2, 2);
            if (types[t] == AMXQ_TYPE_Q6_K) /* d is the block's last field */
                memcpy(ggml[t] + b * bb + 208, &d2, 2);
        }
        packed_size[t] = amxq_packed_size(types[t], N, kdim[t]);
        packed[t] = aligned_alloc(AMXQ_ALIGNMENT, packed_size[t]);
        if (!ggml[t] || !packed[t] ||
            amxq_pack(types[t], ggml[t], N, kdim[t], packed[t], packed_size[t]) != AMXQ_OK) {
            fprintf(stderr, "setup failed\n");
            exit(2);
        }
    }
    for (int i = 0; i < M * LDX; i++)
        x[i] = tu_randf(&s);
    for (int v = 0; v < NVAR; v++)
        runs[v] = variants[v] == AMXQ_ISA_AUTO || amxq_isa_check(variants[v]) == AMXQ_OK;
}

/* One product into `c` (M x LDC, gaps filled with a pattern that must survive). */
static amxq_status product(int t, amxq_isa isa, unsigned flags, float *c)
{
    memset(c, 0x7F, sizeof(float) * M * LDC);
    amxq_matmul_params mp = {isa, flags, NULL, 0};
    amxq_status st = amxq_matmul_ex(packed[t], x, M, LDX, c, LDC, &mp);
    for (int i = 0; i < M; i++)
        if (!tu_all_bytes(c + i * LDC + N, (LDC - N) * sizeof(float), 0x7F))
            return AMXQ_ERR_ARG; /* a write between N and ldc: report as a failed call */
    return st;
}

static int same(const float *a, const float *b)
{
    return memcmp(a, b, sizeof(float) * M * LDC) == 0;
}

/* Recompute every variant and compare with the parent's bits. Returns failures found. */
static int recheck_all(const char *who)
{
    int before = tu_failures;
    static float c[M * LDC];
    for (int t = 0; t < NTYPES; t++)
        for (int v = 0; v < NVAR; v++) {
            if (!runs[v])
                continue;
            amxq_status st = product(t, variants[v], 0, c);
            TU_CHECK(st == AMXQ_OK && same(c, want[t][v]), "%s: %s on %s: %s, bits %s", who,
                     amxq_type_name(types[t]), amxq_isa_name(variants[v]), amxq_status_str(st),
                     same(c, want[t][v]) ? "same" : "differ");
            TU_CHECK(temu_state() != 1, "%s: tiles left configured by %s", who,
                     amxq_isa_name(variants[v]));
        }
    return tu_failures - before;
}

/* Fork, run `fn` in the child (its failures become the exit status), wait. */
static void in_child(const char *name, int (*fn)(void))
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        tu_failures++;
        return;
    }
    if (pid == 0) {
        const int before = tu_failures; /* the parent's count is inherited: report only ours */
        _exit(fn() > before ? 1 : 0);
    }
    int wst = 0;
    while (waitpid(pid, &wst, 0) < 0)
        if (errno != EINTR) {
            perror("waitpid");
            tu_failures++;
            return;
        }
    TU_CHECK(WIFEXITED(wst) && WEXITSTATUS(wst) == 0, "child '%s' %s %d", name,
             WIFSIGNALED(wst) ? "killed by signal" : "exited with",
             WIFSIGNALED(wst) ? WTERMSIG(wst) : WEXITSTATUS(wst));
}

/* ---- 1. fork ----------------------------------------------------------------------------------
 */

/* The child packs the same ggml bytes again, recomputes everything, sets the process-wide ISA,
 * and starts a pool of its own. */
static int child_plain(void)
{
    for (int t = 0; t < NTYPES; t++) {
        void *p = aligned_alloc(AMXQ_ALIGNMENT, packed_size[t]);
        TU_CHECK(p && amxq_pack(types[t], ggml[t], N, kdim[t], p, packed_size[t]) == AMXQ_OK &&
                     memcmp(p, packed[t], packed_size[t]) == 0,
                 "child: repack of %s differs", amxq_type_name(types[t]));
        free(p);
    }
    recheck_all("child");
    static float c[M * LDC];
    if (runs[2]) {
        const amxq_isa prev = amxq_get_isa(NULL); /* AMXQ_ISA's choice in the exec'd run */
        TU_CHECK(amxq_set_isa(AMXQ_ISA_AMX_EMU) == AMXQ_OK, "child: set_isa amx-emu");
        for (int t = 0; t < NTYPES; t++) {
            TU_CHECK(product(t, AMXQ_ISA_AUTO, 0, c) == AMXQ_OK && same(c, want[t][2]),
                     "child: process-wide amx-emu, %s", amxq_type_name(types[t]));
            TU_CHECK(temu_state() != 1, "child: tiles left configured");
        }
        amxq_set_isa(prev);
    }
    /* A pool started in the child (the parent has no threads at this point). */
    amxq_ctx_params cp = {3, NULL, 0, 0, 0};
    amxq_ctx *ctx = NULL;
    amxq_status st = amxq_ctx_create(&cp, &ctx);
    TU_CHECK(st == AMXQ_OK, "child: ctx_create %s", amxq_status_str(st));
    for (int t = 0; ctx && t < NTYPES; t++)
        for (int v = 0; v < NVAR; v++) {
            if (!runs[v])
                continue;
            memset(c, 0x7F, sizeof c);
            amxq_matmul_params mp = {variants[v], 0, NULL, 0};
            st = amxq_ctx_matmul(ctx, packed[t], x, M, LDX, c, LDC, &mp);
            TU_CHECK(st == AMXQ_OK && same(c, want[t][v]), "child: ctx_matmul %s %s: %s",
                     amxq_type_name(types[t]), amxq_isa_name(variants[v]), amxq_status_str(st));
        }
    amxq_ctx_destroy(ctx);
    return tu_failures;
}

/* Forked while the parent's thread held kept emulated tiles: the child inherits the forking
 * thread's tile state (as the hardware's would be), and the next public call releases it. */
static int child_kept_tiles(void)
{
    TU_CHECK(temu_state() == 1, "child: inherited tile state %d, want configured", temu_state());
    static float c[M * LDC];
    TU_CHECK(product(0, AMXQ_ISA_AMX_EMU, 0, c) == AMXQ_OK && same(c, want[0][2]),
             "child: product after inheriting kept tiles");
    TU_CHECK(temu_state() == 0, "child: still configured after a product without KEEP_TILES");
    recheck_all("child (kept tiles)");
    return tu_failures;
}

/* Forked while the parent runs a pool: single-threaded use only (threads after a multi-threaded
 * fork are outside what POSIX and TSan allow). */
static int child_of_pool(void)
{
    recheck_all("child of a pool owner");
    return tu_failures;
}

static void test_fork(void)
{
    static float c[M * LDC];
    for (int t = 0; t < NTYPES; t++)
        for (int v = 0; v < NVAR; v++) {
            if (!runs[v])
                continue;
            amxq_status st = product(t, variants[v], 0, want[t][v]);
            TU_CHECK(st == AMXQ_OK, "parent %s %s: %s", amxq_type_name(types[t]),
                     amxq_isa_name(variants[v]), amxq_status_str(st));
        }
    in_child("plain", child_plain);
    recheck_all("parent after child");

    if (runs[2] && HAVE_TEMU) {
        TU_CHECK(product(0, AMXQ_ISA_AMX_EMU, AMXQ_KEEP_TILES, c) == AMXQ_OK && same(c, want[0][2]),
                 "parent: KEEP_TILES product");
        TU_CHECK(temu_state() == 1, "parent: KEEP_TILES left tiles %d", temu_state());
        in_child("kept tiles", child_kept_tiles);
        TU_CHECK(temu_state() == 1, "parent: the child's release reached the parent");
        amxq_tile_release();
        TU_CHECK(temu_state() == 0, "parent: amxq_tile_release");
    }

    amxq_ctx_params cp = {2, NULL, 0, 0, 0};
    amxq_ctx *ctx = NULL;
    TU_CHECK(amxq_ctx_create(&cp, &ctx) == AMXQ_OK, "parent: ctx_create");
    if (ctx) {
        amxq_matmul_params mp = {AMXQ_ISA_SCALAR, 0, NULL, 0};
        /* The gap pattern product() leaves between N and LDC, which the call must not touch
         * (without the tile emulator nothing above has put it into `c` yet). */
        memset(c, 0x7F, sizeof c);
        TU_CHECK(amxq_ctx_matmul(ctx, packed[1], x, M, LDX, c, LDC, &mp) == AMXQ_OK &&
                     same(c, want[1][0]),
                 "parent: ctx_matmul before fork");
        in_child("child of a pool owner", child_of_pool);
        memset(c, 0x7F, sizeof c);
        TU_CHECK(amxq_ctx_matmul(ctx, packed[1], x, M, LDX, c, LDC, &mp) == AMXQ_OK &&
                     same(c, want[1][0]),
                 "parent: ctx_matmul after fork");
        amxq_ctx_destroy(ctx);
    }
    printf("fork: children matched the parent bit for bit\n");
}

/* ---- 2. threads that exit holding tiles ---------------------------------------------------------
 */

struct job {
    amxq_isa isa;
    int keep_and_exit; /* 1: one KEEP_TILES product, then exit without release */
    int rounds;
    int fails;
    int state_before, state_after;
};

static void *worker(void *arg)
{
    struct job *j = (struct job *)arg;
    static _Thread_local float c[M * LDC];
    const int vi = j->isa == AMXQ_ISA_AMX ? 4 : 2;
    j->state_before = temu_state();
    for (int r = 0; r < j->rounds; r++) {
        const int t = r % NTYPES;
        if (product(t, j->isa, j->keep_and_exit ? AMXQ_KEEP_TILES : 0, c) != AMXQ_OK ||
            !same(c, want[t][vi]))
            j->fails++;
    }
    j->state_after = temu_state();
    return NULL; /* tiles kept by keep_and_exit threads are never released */
}

static void test_threads_exit_holding_tiles(void)
{
    static const amxq_isa tile_isas[2] = {AMXQ_ISA_AMX_EMU, AMXQ_ISA_AMX};
    for (int i = 0; i < 2; i++) {
        const amxq_isa isa = tile_isas[i];
        if (amxq_isa_check(isa) != AMXQ_OK)
            continue;
        const int emu = isa == AMXQ_ISA_AMX_EMU && HAVE_TEMU;
        for (int wave = 0; wave < 3; wave++) {
            enum { NT = 6 };
            pthread_t th[NT];
            struct job jobs[NT];
            for (int t = 0; t < NT; t++) {
                jobs[t] = (struct job){isa, t % 2 == 0, t % 2 == 0 ? 1 : 8, 0, 0, 0};
                if (pthread_create(&th[t], NULL, worker, &jobs[t]) != 0) {
                    TU_CHECK(0, "pthread_create");
                    jobs[t].rounds = -1;
                }
            }
            for (int t = 0; t < NT; t++) {
                if (jobs[t].rounds < 0)
                    continue;
                pthread_join(th[t], NULL);
                TU_CHECK(jobs[t].fails == 0, "%s wave %d thread %d: %d bad products",
                         amxq_isa_name(isa), wave, t, jobs[t].fails);
                if (emu) {
                    TU_CHECK(jobs[t].state_before == 0, "new thread starts with tiles %d",
                             jobs[t].state_before);
                    TU_CHECK(jobs[t].state_after == jobs[t].keep_and_exit,
                             "%s thread: tiles %d after its products",
                             jobs[t].keep_and_exit ? "keeping" : "releasing", jobs[t].state_after);
                }
            }
            /* The calling thread is unaffected by what the exited threads left behind. */
            TU_CHECK(temu_state() != 1, "main thread's tiles configured by other threads");
            TU_CHECK(recheck_all("main after threads exited holding tiles") == 0, "recheck");
        }
    }
    printf("threads exiting with kept tiles: process unaffected\n");
}

/* ---- 3. public calls leave tiles released unless asked ------------------------------------------
 */

static void test_release_rule(void)
{
#if HAVE_TEMU
    if (amxq_isa_check(AMXQ_ISA_AMX_EMU) != AMXQ_OK)
        return;
    static float c[M * LDC];
    const amxq_isa prev = amxq_get_isa(NULL);
    for (int t = 0; t < NTYPES; t++) {
        for (int keep = 0; keep < 2; keep++) {
            const unsigned fl = keep ? AMXQ_KEEP_TILES : 0;
            /* amxq_matmul_ex, allocating and with a workspace. */
            TU_CHECK(product(t, AMXQ_ISA_AMX_EMU, fl, c) == AMXQ_OK && same(c, want[t][2]),
                     "matmul_ex");
            TU_CHECK(temu_state() == keep, "matmul_ex keep=%d: tiles %d", keep, temu_state());
            amxq_tile_release();
            size_t wsz = amxq_workspace_size(types[t], M, kdim[t]);
            void *ws = aligned_alloc(AMXQ_ALIGNMENT, wsz);
            amxq_matmul_params mp = {AMXQ_ISA_AMX_EMU, fl, ws, wsz};
            TU_CHECK(amxq_matmul_ex(packed[t], x, M, LDX, c, LDC, &mp) == AMXQ_OK &&
                         same(c, want[t][2]),
                     "matmul_ex with workspace");
            TU_CHECK(temu_state() == keep, "matmul_ex+ws keep=%d: tiles %d", keep, temu_state());
            amxq_tile_release();
            /* The slice API, one thread. */
            amxq_plan plan;
            TU_CHECK(amxq_matmul_plan(packed[t], M, &mp, &plan) == AMXQ_OK, "plan");
            TU_CHECK(amxq_quantize_slice(&plan, x, LDX, ws, wsz, 0, 1) == AMXQ_OK, "quantize");
            TU_CHECK(temu_state() == 0, "quantize_slice configured tiles");
            memset(c, 0x7F, sizeof c);
            TU_CHECK(amxq_matmul_slice(&plan, packed[t], ws, wsz, c, LDC, 0, 1) == AMXQ_OK &&
                         same(c, want[t][2]),
                     "matmul_slice");
            TU_CHECK(temu_state() == keep, "matmul_slice keep=%d: tiles %d", keep, temu_state());
            amxq_tile_release();
            free(ws);
        }
        /* Plain amxq_matmul with the process-wide choice. */
        TU_CHECK(amxq_set_isa(AMXQ_ISA_AMX_EMU) == AMXQ_OK, "set_isa");
        memset(c, 0x7F, sizeof c);
        TU_CHECK(amxq_matmul(packed[t], x, M, LDX, c, LDC) == AMXQ_OK && same(c, want[t][2]),
                 "matmul (process-wide amx-emu)");
        TU_CHECK(temu_state() == 0, "amxq_matmul left tiles configured");
        /* amxq_ctx_matmul: the calling thread is worker 0. */
        amxq_ctx_params cp = {2, NULL, 0, 0, 0};
        amxq_ctx *ctx = NULL;
        if (amxq_ctx_create(&cp, &ctx) == AMXQ_OK) {
            amxq_matmul_params mp = {AMXQ_ISA_AMX_EMU, 0, NULL, 0};
            memset(c, 0x7F, sizeof c);
            TU_CHECK(amxq_ctx_matmul(ctx, packed[t], x, M, LDX, c, LDC, &mp) == AMXQ_OK &&
                         same(c, want[t][2]),
                     "ctx_matmul");
            TU_CHECK(temu_state() == 0, "ctx_matmul left the caller's tiles configured");
            mp.flags = AMXQ_KEEP_TILES;
            TU_CHECK(amxq_ctx_matmul(ctx, packed[t], x, M, LDX, c, LDC, &mp) == AMXQ_OK, "ctx");
            TU_CHECK(temu_state() == 1, "ctx_matmul KEEP_TILES: caller's tiles released");
            amxq_tile_release();
            amxq_ctx_destroy(ctx); /* releases the workers' kept tiles */
        } else {
            TU_CHECK(0, "ctx_create");
        }
        /* amxq_tile_configure / amxq_tile_release with the process-wide emulated choice. */
        TU_CHECK(amxq_tile_configure() == AMXQ_OK && temu_state() == 1, "tile_configure");
        TU_CHECK(amxq_tile_release() == AMXQ_OK && temu_state() == 0, "tile_release");
        amxq_set_isa(prev);
    }
    printf("release rule: every public call leaves tiles released unless AMXQ_KEEP_TILES\n");
#else
    printf("release rule: skipped (no tile emulator in this build)\n");
#endif
}

/* ---- AMXQ_ISA=amx-emu: the same program, exec'd with the variable set --------------------------
 */

static void test_env_amx_emu(void)
{
    if (getenv("AMXQ_FORK_ENV_CHILD") || amxq_isa_check(AMXQ_ISA_AMX_EMU) != AMXQ_OK)
        return;
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        tu_failures++;
        return;
    }
    if (pid == 0) {
        setenv("AMXQ_ISA", "amx-emu", 1);
        setenv("AMXQ_FORK_ENV_CHILD", "1", 1);
        char *args[2] = {(char *)self_argv0, NULL};
        execv("/proc/self/exe", args);
        execv(self_argv0, args);
        perror("execv");
        _exit(127);
    }
    int wst = 0;
    while (waitpid(pid, &wst, 0) < 0)
        if (errno != EINTR)
            break;
    TU_CHECK(WIFEXITED(wst) && WEXITSTATUS(wst) == 0, "run with AMXQ_ISA=amx-emu failed (%d)",
             WIFEXITED(wst) ? WEXITSTATUS(wst) : -WTERMSIG(wst));
}

int main(int argc, char **argv)
{
    (void)argc;
    self_argv0 = argv[0];
    setvbuf(stdout, NULL, _IOLBF, 0);
    const char *env = getenv("AMXQ_ISA");
    printf("test_fork (AMXQ_ISA=%s)\n", env ? env : "unset");
    if (env && getenv("AMXQ_FORK_ENV_CHILD")) {
        amxq_status st;
        TU_CHECK(amxq_get_isa(&st) == AMXQ_ISA_AMX_EMU && st == AMXQ_OK, "AMXQ_ISA read");
    }
    setup();
    test_fork(); /* first: its children start threads, so the parent must have none yet */
    test_threads_exit_holding_tiles();
    test_release_rule();
    test_env_amx_emu();
    return tu_finish("test_fork");
}
