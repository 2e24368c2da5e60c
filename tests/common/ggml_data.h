/*
 * Random ggml weights for tests, and packing them: ggml's block bytes with every fp16 field (d, and
 * m / dmin where the type has one) replaced by a tame positive scale in 2^-8 .. 2^-7, so products
 * stay finite. Uses the library's own table of fp16 field offsets (src/pack/pack.h), so it covers
 * every type.
 */
#ifndef AMXQ_TEST_GGML_DATA_H
#define AMXQ_TEST_GGML_DATA_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "amxq.h"
#include "common/testutil.h"
#include "pack/pack.h"

/* n rows of k weights of type t (malloc'd, the caller frees; NULL when out of memory). */
static inline void *tu_random_ggml(uint64_t *rng, amxq_type t, int64_t n, int64_t k)
{
    const size_t bytes = amxq_ggml_size(t, n, k), bb = amxq_type_block_bytes(t);
    uint8_t *g = malloc(bytes);
    if (g == NULL)
        return NULL;
    tu_fill_bytes(rng, g, bytes);
    size_t off[2];
    const size_t halves = amxq_ggml_fp16_fields(t, off);
    for (size_t b = 0; b < bytes / bb; b++)
        for (size_t h = 0; h < halves; h++) {
            const uint16_t v = (uint16_t)(0x1c00 | (tu_rand(rng) & 0x3ff));
            memcpy(g + b * bb + off[h], &v, 2);
        }
    return g;
}

/* n rows of ggml weights of type t packed into a new AMXQ_ALIGNMENT-aligned buffer (the caller
 * frees); NULL when the size query, the allocation or amxq_pack() fails. */
static inline void *tu_pack_new(amxq_type t, const void *ggml, int64_t n, int64_t k)
{
    const size_t size = amxq_packed_size(t, n, k);
    void *p = size ? aligned_alloc(AMXQ_ALIGNMENT, size) : NULL;
    if (p != NULL && amxq_pack(t, ggml, n, k, p, size) != AMXQ_OK) {
        free(p);
        p = NULL;
    }
    return p;
}

#endif /* AMXQ_TEST_GGML_DATA_H */
