/*
 * Aligned allocation with a fault-injection point for tests (see alloc.h).
 */
#define _POSIX_C_SOURCE 200809L

#include <stdatomic.h>
#include <stdlib.h>

#include "alloc.h"

static atomic_long fail_countdown;
static atomic_long alloc_count;

long amxq_alloc_fail_after(long countdown)
{
    atomic_store(&fail_countdown, countdown);
    return atomic_exchange(&alloc_count, 0);
}

void *amxq_alloc_aligned(size_t size, size_t align)
{
    atomic_fetch_add(&alloc_count, 1);
    if (atomic_load(&fail_countdown) > 0 && atomic_fetch_sub(&fail_countdown, 1) == 1)
        return NULL;
    if (size == 0)
        size = align;
    void *p = NULL;
    if (posix_memalign(&p, align, size) != 0)
        return NULL;
    return p;
}

void amxq_free_aligned(void *p)
{
    free(p);
}
