/*
 * The pool's barrier (src/parallel/parallel.h): spin briefly, then sleep.
 *
 * Invariant: `gen` changes only under `lock`, and a sleeper re-checks it under `lock` before
 * waiting, so the last arrival's broadcast cannot be missed. `count` is reset before `gen` moves,
 * so a thread released early that reaches the next barrier counts into the next round.
 * Sequentially consistent atomics carry every write made before the barrier to every thread
 * after it (the arrivals' read-modify-writes form one release sequence the last arrival reads).
 */
#include <errno.h>

#include "parallel/parallel.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define CPU_RELAX() _mm_pause()
#else
#define CPU_RELAX() ((void)0)
#endif

/* 1000 PAUSEs: about 20 us on Zen (~65 cycles each) to 70 us on Sapphire Rapids (~140 cycles at
 * 2 GHz). Long enough to catch the next product of a busy engine, short enough not to burn a core
 * that another thread needs for long. */
#define SPIN_ITERS 1000

int amxq_barrier_init(amxq_barrier *b, int n)
{
    atomic_init(&b->count, 0);
    atomic_init(&b->gen, 0u);
    b->n = n;
    int e = pthread_mutex_init(&b->lock, NULL);
    if (e)
        return e;
    e = pthread_cond_init(&b->cond, NULL);
    if (e)
        pthread_mutex_destroy(&b->lock);
    return e;
}

void amxq_barrier_destroy(amxq_barrier *b)
{
    pthread_cond_destroy(&b->cond);
    pthread_mutex_destroy(&b->lock);
}

void amxq_barrier_wait(amxq_barrier *b)
{
    if (b->n <= 1)
        return;
    const unsigned gen = atomic_load(&b->gen);
    if (atomic_fetch_add(&b->count, 1) == b->n - 1) {
        atomic_store(&b->count, 0);
        pthread_mutex_lock(&b->lock);
        atomic_store(&b->gen, gen + 1u);
        pthread_cond_broadcast(&b->cond);
        pthread_mutex_unlock(&b->lock);
        return;
    }
    for (int i = 0; i < SPIN_ITERS; i++) {
        if (atomic_load(&b->gen) != gen)
            return;
        CPU_RELAX();
    }
    pthread_mutex_lock(&b->lock);
    while (atomic_load(&b->gen) == gen)
        pthread_cond_wait(&b->cond, &b->lock);
    pthread_mutex_unlock(&b->lock);
}
