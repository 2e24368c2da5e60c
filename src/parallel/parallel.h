/*
 * Internal pieces of src/parallel: how a product is split over threads, the argument checks the
 * slice entry points share with the context, the barrier the context's pool uses, and the NUMA
 * helpers. Nothing here is installed.
 *
 * The split (amxq_slice_split) is a pure function of (m, n_panels, ith, nth): every thread of a
 * product computes its own share without talking to the others, and the shares of 0..nth-1
 * partition the (panel, row) grid exactly.
 */
#ifndef AMXQ_PARALLEL_H
#define AMXQ_PARALLEL_H

#include <stdatomic.h>
#include <pthread.h>

#include "internal.h"

/* Log `what` as a failed check and return `status` (for failures found after the fact). */
#define AMXQ_PAR_FAIL(status, what)                                                                \
    do {                                                                                           \
        amxq_log_failure(__FILE__, __LINE__, what);                                                \
        return (status);                                                                           \
    } while (0)

/* ---- The split --------------------------------------------------------------------------------
 */

/* Rows are split between threads only at multiples of this (except at M itself), so each share
 * keeps whole row tiles of the AMX kernels (16 rows a tile, 2 tiles of A per step). */
#define AMXQ_SLICE_ROWS 32

/* One rectangle of work: rows [m0, m1) of panels [p0, p1). */
typedef struct amxq_slice_part {
    int64_t m0, m1, p0, p1;
} amxq_slice_part;

/*
 * Thread ith's share of an m x n_panels product: at most 3 rectangles (a tail of rows of its first
 * panel, whole panels, a head of rows of its last panel), written to parts[]; returns how many
 * (0 when the thread has nothing to do). Panels come in one contiguous range per thread.
 */
int amxq_slice_split(int64_t m, int64_t n_panels, int ith, int nth, amxq_slice_part parts[3]);

/* Rows [*m0, *m1) of m that thread ith of nth quantizes (balanced, possibly empty). */
void amxq_slice_rows(int64_t m, int ith, int nth, int64_t *m0, int64_t *m1);

/* ---- Checks shared by the slice entry points and the context ------------------------------------
 */

/* amxq_matmul_check() (the checks of amxq_matmul_ex()), then *plan filled for the product. */
amxq_status amxq_par_check_matmul(const void *packed, const float *x, int64_t m, int64_t ldx,
                                  float *c, int64_t ldc, const amxq_matmul_params *params,
                                  amxq_plan *plan, amxq_layout *lo);

/* Quantize / compute one thread's share once every argument has been checked. The matmul returns
 * whether it ran any kernel (so the caller knows whether it may have touched tile state). */
void amxq_par_quantize(const amxq_plan *plan, const struct amxq_kernels *t, const float *x,
                       int64_t ldx, void *ws, int ith, int nth);
int amxq_par_gemm(const amxq_plan *plan, const struct amxq_kernels *t, const amxq_layout *lo,
                  const void *packed, const void *ws, float *c, int64_t ldc, int ith, int nth);

/* ---- Barrier -------------------------------------------------------------------------------- */

/*
 * A reusable barrier for n threads: arrivals count up an atomic; the last one resets the count
 * and bumps the generation, which the others wait for, first spinning a little (products on warm
 * threads follow each other within microseconds), then sleeping on a condition variable. Every
 * write made before amxq_barrier_wait() by any thread is visible to every thread after it.
 */
typedef struct amxq_barrier {
    atomic_int count;
    atomic_uint gen;
    int n;
    pthread_mutex_t lock;
    pthread_cond_t cond;
} amxq_barrier;

/* Returns 0, or an errno value from the pthread initialisers. */
int amxq_barrier_init(amxq_barrier *b, int n);
void amxq_barrier_destroy(amxq_barrier *b);
void amxq_barrier_wait(amxq_barrier *b);

/* ---- NUMA ----------------------------------------------------------------------------------- */

/* The node of the CPU the calling thread runs on now; 0 without libnuma or on failure. */
int amxq_numa_current_node(void);

/* The node of `cpu`, or -1 if unknown (no libnuma, or libnuma cannot say). */
int amxq_numa_node_of_cpu(int cpu);

/* The CPUs of `node` (at most `max`, into cpus[]); returns how many. 0 when the calls do not take
 * the libnuma path (no libnuma, one node): then there is nothing to bind to. */
int amxq_numa_node_cpus(int node, int *cpus, int max);

/* Testing: nonzero makes the NUMA calls take the libnuma path even on a one-node machine (when
 * the build has libnuma and the kernel supports NUMA), so tests exercise mbind and move_pages. */
void amxq_numa_force_libnuma(int on);

/* Products of fewer multiply-adds (M * N * K) than this run on the calling thread alone in
 * amxq_ctx_matmul: a pool wake-up (tens of microseconds, more on a loaded machine) would cost
 * more than the product (1 x 512 x 512 takes a few microseconds on the fast kernels). */
#define AMXQ_CTX_SMALL_MACS ((uint64_t)1 << 18)

#endif /* AMXQ_PARALLEL_H */
