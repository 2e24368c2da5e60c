/*
 * NUMA placement: node count, amxq_packed_alloc() for every placement, amxq_numa_node_of(),
 * mirrors and amxq_ctx_matmul_mirror(), and bad arguments. The expectations follow what the build
 * and machine offer: without libnuma (-Dnuma=disabled) or on one node every call must still work
 * on plain memory and report placed = 0. Where the build has libnuma and the kernel supports NUMA,
 * the libnuma path (mmap + mbind, move_pages) is also forced on, one node or not, and checked.
 */
#define _GNU_SOURCE

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "amxq.h"
#include "amxq_config.h"
#include "common/testutil.h"
#include "internal.h"
#include "parallel/parallel.h"

#if AMXQ_HAVE_NUMA
#include <numa.h>
#endif

static void *make_packed(amxq_type t, int64_t n, int64_t k, uint64_t seed)
{
    const size_t gb = amxq_ggml_size(t, n, k), bb = amxq_type_block_bytes(t);
    uint8_t *g = malloc(gb);
    tu_fill_bytes(&seed, g, gb);
    for (size_t b = 0; b < gb / bb; b++) {
        uint16_t v = (uint16_t)(0x1c00 | (tu_rand(&seed) & 0x3ff));
        memcpy(g + b * bb, &v, 2);
    }
    const size_t bytes = amxq_packed_size(t, n, k);
    void *p = aligned_alloc(64, bytes);
    if (amxq_pack(t, g, n, k, p, bytes) != AMXQ_OK)
        exit(2);
    free(g);
    return p;
}

/* Allocate with `placement`, write every byte, check alignment and node; expect `want_placed`. */
static void check_alloc(amxq_placement placement, int node, int want_placed, const char *what)
{
    const size_t size = 3 * 4096 + 100;
    void *p = (void *)1;
    int placed = -1;
    amxq_status st = amxq_packed_alloc(size, placement, node, &p, &placed);
    TU_CHECK(st == AMXQ_OK && p != NULL && ((uintptr_t)p & 63) == 0, "%s: %s", what,
             amxq_status_str(st));
    if (st != AMXQ_OK)
        return;
    TU_CHECK(placed == want_placed, "%s: placed %d, expected %d", what, placed, want_placed);
    memset(p, 0x42, size);
    int where = -1;
    st = amxq_numa_node_of(p, &where);
    TU_CHECK(st == AMXQ_OK && where >= 0 && where < amxq_numa_node_count(), "%s: node_of %s %d",
             what, amxq_status_str(st), where);
    if (placement == AMXQ_PLACE_NODE && placed)
        TU_CHECK(where == node, "%s: on node %d, asked %d", what, where, node);
    st = amxq_numa_node_of((char *)p + size - 1, &where);
    TU_CHECK(st == AMXQ_OK, "%s: node_of last byte", what);
    amxq_packed_free(p);
}

static void check_mirror(int want_placed, const char *what)
{
    const int64_t m = 7, n = 40, k = 256;
    void *w = make_packed(AMXQ_TYPE_Q4_K, n, k, 9);
    const size_t bytes = amxq_packed_size(AMXQ_TYPE_Q4_K, n, k);
    amxq_mirror *mi = (amxq_mirror *)w;
    int placed = -1;
    amxq_status st = amxq_mirror_create(w, &mi, &placed);
    TU_CHECK(st == AMXQ_OK && mi != NULL && placed == want_placed, "%s: mirror %s placed %d", what,
             amxq_status_str(st), placed);
    if (st != AMXQ_OK) {
        free(w);
        return;
    }
    for (int node = -1; node <= amxq_numa_node_count(); node++) {
        const void *copy = amxq_mirror_get(mi, node);
        TU_CHECK(copy != NULL && ((uintptr_t)copy & 63) == 0 && memcmp(copy, w, bytes) == 0,
                 "%s: copy for node %d", what, node);
    }
    const void *local = amxq_mirror_local(mi);
    TU_CHECK(local != NULL && memcmp(local, w, bytes) == 0, "%s: local copy", what);
    int where = -1;
    TU_CHECK(amxq_numa_node_of(amxq_mirror_get(mi, 0), &where) == AMXQ_OK && where == 0,
             "%s: copy 0 on node %d", what, where);

    /* Products through the mirror: identical to the plain weight. */
    uint64_t seed = 4;
    float *x = malloc(sizeof(float) * (size_t)(m * k));
    for (int64_t i = 0; i < m * k; i++)
        x[i] = tu_randf(&seed);
    float ref[7 * 40], c[7 * 40];
    amxq_matmul_params mp = {AMXQ_ISA_SCALAR, 0, NULL, 0};
    TU_CHECK(amxq_matmul_ex(w, x, m, k, ref, n, &mp) == AMXQ_OK, "reference");
    free(w); /* the mirror does not keep it */
    amxq_ctx_params cp = {3, NULL, 0, 0, 0};
    amxq_ctx *ctx = NULL;
    TU_CHECK(amxq_ctx_create(&cp, &ctx) == AMXQ_OK, "ctx");
    memset(c, 0, sizeof c);
    st = amxq_ctx_matmul_mirror(ctx, mi, x, m, k, c, n, &mp);
    TU_CHECK(st == AMXQ_OK && memcmp(c, ref, sizeof c) == 0, "%s: ctx_matmul_mirror %s", what,
             amxq_status_str(st));
    memset(c, 0, sizeof c);
    TU_CHECK(amxq_matmul_ex(amxq_mirror_local(mi), x, m, k, c, n, &mp) == AMXQ_OK &&
                 memcmp(c, ref, sizeof c) == 0,
             "%s: matmul_ex on the local copy", what);
    amxq_ctx_destroy(ctx);
    free(x);
    amxq_mirror_destroy(mi);
}

static void test_bad_args(void)
{
    void *p = (void *)1;
    int placed = 7;
    TU_CHECK(amxq_packed_alloc(64, AMXQ_PLACE_DEFAULT, 0, NULL, NULL) == AMXQ_ERR_NULL, "out");
    TU_CHECK(amxq_packed_alloc(0, AMXQ_PLACE_DEFAULT, 0, &p, &placed) == AMXQ_ERR_ARG &&
                 p == NULL && placed == 0,
             "size 0");
    TU_CHECK(amxq_packed_alloc(64, (amxq_placement)3, 0, &p, NULL) == AMXQ_ERR_ARG, "placement");
    TU_CHECK(amxq_packed_alloc(64, AMXQ_PLACE_NODE, -1, &p, NULL) == AMXQ_ERR_ARG, "node < 0");
    TU_CHECK(amxq_packed_alloc(64, AMXQ_PLACE_NODE, amxq_numa_node_count(), &p, NULL) ==
                 AMXQ_ERR_NUMA,
             "no such node");
    TU_CHECK(amxq_packed_alloc(SIZE_MAX - 8, AMXQ_PLACE_DEFAULT, 0, &p, NULL) == AMXQ_ERR_NOMEM &&
                 p == NULL,
             "huge");
    /* AMXQ_PLACE_DEFAULT ignores node */
    TU_CHECK(amxq_packed_alloc(64, AMXQ_PLACE_DEFAULT, -5, &p, NULL) == AMXQ_OK, "default node");
    amxq_packed_free(p);
    amxq_packed_free(NULL);
    int node;
    TU_CHECK(amxq_numa_node_of(NULL, &node) == AMXQ_ERR_NULL, "node_of NULL");
    TU_CHECK(amxq_numa_node_of(&node, NULL) == AMXQ_ERR_NULL, "node_of out NULL");

    amxq_mirror *mi = (amxq_mirror *)&node;
    uint8_t junk[256] __attribute__((aligned(64)));
    memset(junk, 0, sizeof junk);
    TU_CHECK(amxq_mirror_create(NULL, &mi, NULL) == AMXQ_ERR_NULL, "mirror NULL");
    TU_CHECK(amxq_mirror_create(junk, NULL, NULL) == AMXQ_ERR_NULL, "mirror out NULL");
    TU_CHECK(amxq_mirror_create(junk, &mi, &placed) == AMXQ_ERR_BAD_PACKED && mi == NULL &&
                 placed == 0,
             "mirror of junk");
    TU_CHECK(amxq_mirror_get(NULL, 0) == NULL && amxq_mirror_local(NULL) == NULL, "get NULL");
    amxq_mirror_destroy(NULL);
}

static void test_ctx_node(void)
{
    amxq_ctx_params cp = {2, NULL, 0, 0, AMXQ_CTX_NUMA_NODE};
    amxq_ctx *ctx = NULL;
    TU_CHECK(amxq_ctx_create(&cp, &ctx) == AMXQ_OK, "ctx on node 0");
    void *w = make_packed(AMXQ_TYPE_Q8_0, 33, 64, 3);
    float x[2 * 64], c[2 * 33], ref[2 * 33];
    for (int i = 0; i < 2 * 64; i++)
        x[i] = (float)(i % 13) - 6.0f;
    amxq_matmul_params mp = {AMXQ_ISA_SCALAR, 0, NULL, 0};
    TU_CHECK(amxq_matmul_ex(w, x, 2, 64, ref, 33, &mp) == AMXQ_OK, "ref");
    TU_CHECK(ctx && amxq_ctx_matmul(ctx, w, x, 2, 64, c, 33, &mp) == AMXQ_OK &&
                 memcmp(c, ref, sizeof c) == 0,
             "ctx on node 0: product");
    amxq_ctx_destroy(ctx);
    free(w);
}

int main(void)
{
    const int nodes = amxq_numa_node_count();
#if AMXQ_HAVE_NUMA
    const int kernel_numa = numa_available() >= 0;
#else
    const int kernel_numa = 0;
#endif
    printf("libnuma in build: %d, kernel NUMA: %d, nodes: %d\n", AMXQ_HAVE_NUMA, kernel_numa,
           nodes);
    TU_CHECK(nodes >= 1, "node count %d", nodes);
    if (!AMXQ_HAVE_NUMA || !kernel_numa)
        TU_CHECK(nodes == 1, "without libnuma there is one node, not %d", nodes);
    const int multi = kernel_numa && nodes > 1;

    check_alloc(AMXQ_PLACE_DEFAULT, 0, 0, "default");
    check_alloc(AMXQ_PLACE_NODE, 0, multi, "node 0");
    check_alloc(AMXQ_PLACE_NODE, nodes - 1, multi, "last node");
    check_alloc(AMXQ_PLACE_INTERLEAVE, 0, multi, "interleave");
    check_mirror(multi, "mirror");
    test_bad_args();
    test_ctx_node();

    /* The libnuma path on this machine, whatever its node count. */
    amxq_numa_force_libnuma(1);
    check_alloc(AMXQ_PLACE_DEFAULT, 0, 0, "forced: default");
    check_alloc(AMXQ_PLACE_NODE, 0, kernel_numa, "forced: node 0");
    check_alloc(AMXQ_PLACE_INTERLEAVE, 0, kernel_numa, "forced: interleave");
    check_mirror(kernel_numa, "forced: mirror");
    test_ctx_node();
    int node = -1;
    int on_stack = 1;
    TU_CHECK(amxq_numa_node_of(&on_stack, &node) == AMXQ_OK && node >= 0, "stack page node");
    if (kernel_numa) {
        /* A page never mapped: the kernel cannot say. */
        TU_CHECK(amxq_numa_node_of((void *)(uintptr_t)4096, &node) == AMXQ_ERR_NUMA,
                 "unmapped page");
        const int cpu_node = amxq_numa_node_of_cpu(0);
        TU_CHECK(cpu_node >= 0 && cpu_node < nodes, "node of CPU 0: %d", cpu_node);
        int cpus[8];
        TU_CHECK(amxq_numa_node_cpus(cpu_node, cpus, 8) >= 1, "CPUs of node %d", cpu_node);
    }
    amxq_numa_force_libnuma(0);
    return tu_finish("test_numa");
}
