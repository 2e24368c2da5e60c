/*
 * The library's only allocator: aligned blocks for workspaces, contexts and pools. Tests can make
 * the n-th allocation fail to prove every caller returns AMXQ_ERR_NOMEM and leaks nothing.
 */
#ifndef AMXQ_ALLOC_H
#define AMXQ_ALLOC_H

#include <stddef.h>

/* `size` bytes aligned to `align` (a power of two >= sizeof(void *)), or NULL. */
void *amxq_alloc_aligned(size_t size, size_t align);
void amxq_free_aligned(void *p);

/* Testing: make the allocation `countdown` calls from now fail (1 = the next one); 0 disables.
 * Returns how many allocations have been made since the last call. Process-wide, not for use
 * while other threads allocate through amxq. */
long amxq_alloc_fail_after(long countdown);

#endif /* AMXQ_ALLOC_H */
