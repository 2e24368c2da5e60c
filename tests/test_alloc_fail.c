/*
 * Allocation failure in every call that allocates: amxq_matmul() / amxq_matmul_ex() without a
 * workspace, and in src/parallel context creation, the context's workspace growth,
 * amxq_packed_alloc() and mirrors (plain and, where the build has libnuma, the libnuma
 * path forced on). For each call, the 1st, 2nd, ... allocation is made to fail in turn
 * (amxq_alloc_fail_after, src/alloc.h) until the call no longer reaches the failing one: every
 * failure must be AMXQ_ERR_NOMEM with the out-parameters reset and the caller's buffers untouched,
 * nothing may leak (ASan, leak check on in tests/meson.build), and the same call must then work.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "amxq.h"
#include "common/testutil.h"
#include "parallel/parallel.h"

static void *packed_w;
static float x[5 * 64], ref[5 * 40];

/* Each op sets itself up, arms the failure at allocation `at` (0: none) just before the call
 * under test, disarms right after, checks and cleans up. Returns the call's status and, through
 * *made, how many allocations the call made (or tried). */
typedef amxq_status (*op_fn)(long at, long *made);

static amxq_status op_ctx_create(long at, long *made)
{
    amxq_ctx_params cp = {4, NULL, 0, 0, 0};
    amxq_ctx *ctx = (amxq_ctx *)&cp;
    amxq_alloc_fail_after(at);
    amxq_status st = amxq_ctx_create(&cp, &ctx);
    *made = amxq_alloc_fail_after(0);
    TU_CHECK((st == AMXQ_OK) == (ctx != NULL), "ctx out on %s", amxq_status_str(st));
    amxq_ctx_destroy(ctx);
    return st;
}

static amxq_status op_ctx_node(long at, long *made)
{
    amxq_ctx_params cp = {2, NULL, 0, 0, AMXQ_CTX_NUMA_NODE};
    amxq_ctx *ctx = NULL;
    amxq_alloc_fail_after(at);
    amxq_status st = amxq_ctx_create(&cp, &ctx);
    *made = amxq_alloc_fail_after(0);
    amxq_ctx_destroy(ctx);
    return st;
}

/* The context's workspace grows on its first product. */
static amxq_status op_ctx_matmul(long at, long *made)
{
    amxq_ctx_params cp = {3, NULL, 0, 0, 0};
    amxq_ctx *ctx = NULL;
    if (amxq_ctx_create(&cp, &ctx) != AMXQ_OK)
        return AMXQ_ERR_THREAD;
    float c[5 * 40];
    memset(c, 0x5a, sizeof c);
    amxq_matmul_params mp = {AMXQ_ISA_SCALAR, 0, NULL, 0};
    amxq_alloc_fail_after(at);
    amxq_status st = amxq_ctx_matmul(ctx, packed_w, x, 5, 64, c, 40, &mp);
    *made = amxq_alloc_fail_after(0);
    if (st == AMXQ_OK)
        TU_CHECK(memcmp(c, ref, sizeof c) == 0, "product after growth");
    else
        TU_CHECK(tu_all_bytes(c, sizeof c, 0x5a), "C written on failure");
    /* The context stays usable */
    TU_CHECK(amxq_ctx_matmul(ctx, packed_w, x, 5, 64, c, 40, &mp) == AMXQ_OK &&
                 memcmp(c, ref, sizeof c) == 0,
             "next product");
    amxq_ctx_destroy(ctx);
    return st;
}

static amxq_status alloc_op(amxq_placement pl, long at, long *made)
{
    void *p = (void *)1;
    int placed = 9;
    amxq_alloc_fail_after(at);
    amxq_status st = amxq_packed_alloc(1000, pl, 0, &p, &placed);
    *made = amxq_alloc_fail_after(0);
    TU_CHECK((st == AMXQ_OK) == (p != NULL) && placed != 9, "packed_alloc outs");
    if (p)
        memset(p, 1, 1000);
    amxq_packed_free(p);
    return st;
}

static amxq_status op_alloc_default(long at, long *made)
{
    return alloc_op(AMXQ_PLACE_DEFAULT, at, made);
}

static amxq_status op_alloc_node(long at, long *made)
{
    return alloc_op(AMXQ_PLACE_NODE, at, made);
}

static amxq_status op_alloc_interleave(long at, long *made)
{
    return alloc_op(AMXQ_PLACE_INTERLEAVE, at, made);
}

static amxq_status op_mirror(long at, long *made)
{
    amxq_mirror *mi = (amxq_mirror *)&at;
    amxq_alloc_fail_after(at);
    amxq_status st = amxq_mirror_create(packed_w, &mi, NULL);
    *made = amxq_alloc_fail_after(0);
    TU_CHECK((st == AMXQ_OK) == (mi != NULL), "mirror out");
    if (mi) {
        float c[5 * 40];
        amxq_matmul_params mp = {AMXQ_ISA_SCALAR, 0, NULL, 0};
        TU_CHECK(amxq_matmul_ex(amxq_mirror_local(mi), x, 5, 64, c, 40, &mp) == AMXQ_OK &&
                     memcmp(c, ref, sizeof c) == 0,
                 "mirror copy");
    }
    amxq_mirror_destroy(mi);
    return st;
}

/* amxq_matmul_ex without a workspace allocates one; C must stay untouched when that fails. */
static amxq_status op_matmul(long at, long *made)
{
    float c[5 * 40];
    memset(c, 0x5a, sizeof c);
    amxq_matmul_params mp = {AMXQ_ISA_SCALAR, 0, NULL, 0};
    amxq_alloc_fail_after(at);
    amxq_status st = amxq_matmul_ex(packed_w, x, 5, 64, c, 40, &mp);
    *made = amxq_alloc_fail_after(0);
    if (st == AMXQ_OK)
        TU_CHECK(memcmp(c, ref, sizeof c) == 0, "matmul result");
    else
        TU_CHECK(tu_all_bytes(c, sizeof c, 0x5a), "failed matmul wrote C");
    return st;
}

static amxq_status op_matmul_auto(long at, long *made)
{
    float c[5 * 40];
    amxq_alloc_fail_after(at);
    amxq_status st = amxq_matmul(packed_w, x, 5, 64, c, 40);
    *made = amxq_alloc_fail_after(0);
    return st;
}

static void fail_each(const char *name, op_fn op)
{
    long at = 1, made = 0, failures = 0;
    for (;; at++) {
        amxq_status st = op(at, &made);
        if (made < at) { /* the armed allocation was never reached: the call must succeed */
            TU_CHECK(st == AMXQ_OK, "%s: no failure injected, got %s", name, amxq_status_str(st));
            break;
        }
        TU_CHECK(st == AMXQ_ERR_NOMEM, "%s: allocation %ld failed, got %s", name, at,
                 amxq_status_str(st));
        failures++;
        TU_CHECK(op(0, &made) == AMXQ_OK, "%s: next call after failure %ld", name, at);
        if (at > 100) {
            TU_CHECK(0, "%s: more than 100 allocations?", name);
            break;
        }
    }
    printf("%s: %ld allocation(s), each failure -> AMXQ_ERR_NOMEM\n", name, failures);
}

int main(void)
{
    const size_t bytes = amxq_packed_size(AMXQ_TYPE_Q4_0, 40, 64);
    packed_w = aligned_alloc(64, bytes);
    uint8_t g[40 * 2 * 18];
    uint64_t seed = 1;
    tu_fill_bytes(&seed, g, sizeof g);
    for (size_t b = 0; b < sizeof g / 18; b++) {
        uint16_t v = 0x2000;
        memcpy(g + b * 18, &v, 2);
    }
    if (amxq_pack(AMXQ_TYPE_Q4_0, g, 40, 64, packed_w, bytes) != AMXQ_OK)
        return 2;
    for (int i = 0; i < 5 * 64; i++)
        x[i] = tu_randf(&seed);
    amxq_matmul_params mp = {AMXQ_ISA_SCALAR, 0, NULL, 0};
    if (amxq_matmul_ex(packed_w, x, 5, 64, ref, 40, &mp) != AMXQ_OK)
        return 2;

    fail_each("matmul_ex workspace", op_matmul);
    fail_each("matmul", op_matmul_auto);
    for (int forced = 0; forced < 2; forced++) {
        amxq_numa_force_libnuma(forced);
        printf("-- libnuma path %s\n", forced ? "forced (where built and supported)" : "default");
        fail_each("ctx_create", op_ctx_create);
        fail_each("ctx_create on a node", op_ctx_node);
        fail_each("ctx_matmul workspace", op_ctx_matmul);
        fail_each("packed_alloc default", op_alloc_default);
        fail_each("packed_alloc node", op_alloc_node);
        fail_each("packed_alloc interleave", op_alloc_interleave);
        fail_each("mirror_create", op_mirror);
    }
    amxq_numa_force_libnuma(0);
    free(packed_w);
    return tu_finish("test_alloc_fail");
}
