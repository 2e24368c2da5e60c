/*
 * probe_mem.c — streaming-read bandwidth and the clock (see probes.h). Baseline x86-64 flags.
 *
 * Each thread sums its own contiguous slice of one buffer with eight independent 64-bit
 * accumulators (the compiler vectorises this with plain SSE2); the sum is kept so the reads
 * cannot be removed. The buffer is written once before timing (so every page is backed) and
 * threads start together on one signal; the time runs from the signal until the last thread is
 * joined. Thread creation is outside the timed region; waking the threads is inside it
 * (microseconds against a pass of many milliseconds).
 */
#define _GNU_SOURCE
#include "probes.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

double amxq_bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Start signal shared by the threads of one pass. */
struct mem_go {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int go;
};

struct mem_slice {
    const uint64_t *p;
    size_t n; /* 64-bit words, a multiple of 8 */
    struct mem_go *go;
    uint64_t sum;
};

static uint64_t sum_words(const uint64_t *p, size_t n)
{
    uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0, s4 = 0, s5 = 0, s6 = 0, s7 = 0;
    for (size_t i = 0; i < n; i += 8) {
        s0 += p[i];
        s1 += p[i + 1];
        s2 += p[i + 2];
        s3 += p[i + 3];
        s4 += p[i + 4];
        s5 += p[i + 5];
        s6 += p[i + 6];
        s7 += p[i + 7];
    }
    return s0 + s1 + s2 + s3 + s4 + s5 + s6 + s7;
}

static void *mem_worker(void *arg)
{
    struct mem_slice *s = arg;
    pthread_mutex_lock(&s->go->lock);
    while (!s->go->go)
        pthread_cond_wait(&s->go->cond, &s->go->lock);
    pthread_mutex_unlock(&s->go->lock);
    s->sum = sum_words(s->p, s->n);
    return NULL;
}

/* One timed pass with `threads` threads; seconds from the start signal until the last join, or a
 * negative value when memory or a thread could not be had (the threads made are still joined). */
static double mem_pass(const uint64_t *buf, size_t per, int threads, uint64_t *sum)
{
    struct mem_slice *slices = calloc((size_t)threads, sizeof *slices);
    pthread_t *tid = calloc((size_t)threads, sizeof *tid);
    struct mem_go go = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};
    int made = 0;
    if (slices != NULL && tid != NULL) {
        for (; made < threads; made++) {
            slices[made].p = buf + (size_t)made * per;
            slices[made].n = per;
            slices[made].go = &go;
            if (pthread_create(&tid[made], NULL, mem_worker, &slices[made]) != 0)
                break;
        }
    }
    pthread_mutex_lock(&go.lock);
    go.go = 1;
    pthread_cond_broadcast(&go.cond);
    pthread_mutex_unlock(&go.lock);
    double t0 = amxq_bench_now();
    for (int t = 0; t < made; t++)
        pthread_join(tid[t], NULL);
    double dt = amxq_bench_now() - t0;
    for (int t = 0; t < made; t++)
        *sum += slices[t].sum;
    free(slices);
    free(tid);
    return made == threads ? dt : -1.0;
}

double amxq_bench_probe_mem_read(size_t bytes, int threads, int reps)
{
    if (threads < 1)
        threads = 1;
    bytes &= ~(size_t)4095;
    if (bytes < (size_t)threads * 4096)
        return 0.0;
    uint64_t *buf = aligned_alloc(4096, bytes);
    if (buf == NULL)
        return 0.0;
    size_t words = bytes / sizeof(uint64_t);
    for (size_t i = 0; i < words; i++)
        buf[i] = i;
    uint64_t sum = 0;
    double best = 0.0;
    size_t per = (words / (size_t)threads) & ~(size_t)7;
    for (int r = 0; r < reps; r++) {
        double dt = mem_pass(buf, per, threads, &sum);
        if (dt <= 0) {
            best = 0.0;
            break;
        }
        double bw = (double)per * (double)threads * sizeof(uint64_t) / dt;
        if (bw > best)
            best = bw;
    }
    volatile uint64_t sink = sum;
    (void)sink;
    free(buf);
    return best;
}
