/*
 * Start-up self-test: before a table is first used, its kernels compute one small product of
 * every type and must reproduce the reference: the activations and C bit for bit (the numeric
 * contract, docs/design.md §1). The kernels of the native ISAs are tested on
 * every change only through emulators (tests/checkasm); this check is the last line of defence
 * against anything the emulators do not model (a compiler treating an intrinsic differently, a
 * CPU erratum): an ISA that fails it is never used, and amxq_isa_check() says why, instead of an
 * engine computing silently wrong numbers.
 *
 * The buffers are static: the test runs under the tables' pthread_once (single-threaded), and
 * must not allocate, so that it cannot fail for a reason that has nothing to do with the kernels.
 */
#include <string.h>

#include "dispatch/selftest.h"
#include "pack/pack.h"
#include "ref/ref.h"

#define ST_M     17
#define ST_N     17
#define ST_K_MAX 256 /* one Q4_K super-block; two blocks of the 32-weight types */

static _Alignas(64) uint8_t st_packed[AMXQ_HEADER_BYTES + 2 * 3392];
static uint8_t st_ggml[ST_N * 210];
static float st_x[ST_M * ST_K_MAX];
static _Alignas(64) uint8_t st_ws_ref[8192], st_ws[8192];
static float st_c_ref[ST_M * ST_N], st_c[ST_M * ST_N];

static uint32_t st_rand(uint32_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

/* Random quants, small positive scales (finite products), as ggml rows of `type`. */
static void make_weights(amxq_type type, int64_t k, uint32_t *seed)
{
    const size_t bytes = amxq_ggml_size(type, ST_N, k), bsz = amxq_type_block_bytes(type);
    for (size_t i = 0; i < bytes; i++)
        st_ggml[i] = (uint8_t)st_rand(seed);
    size_t off[2];
    const size_t nf = amxq_ggml_fp16_fields(type, off);
    for (size_t b = 0; b < bytes / bsz; b++) {
        const uint16_t d = (uint16_t)(0x2000 + (st_rand(seed) & 0x3ff));
        for (size_t f = 0; f < nf; f++)
            memcpy(st_ggml + b * bsz + off[f], &d, 2);
    }
}

static int same_floats(const float *a, const float *b, size_t n)
{
    return memcmp(a, b, n * sizeof *a) == 0;
}

/* The quantized activations the gemm reads, compared element by element (padding is free). */
static int same_qx(const amxq_qx *a, const amxq_qx *b)
{
    const int is_k = amxq_type_act_q8_k(a->wtype);
    const int64_t nd = a->k / (is_k ? AMXQ_QK_K : AMXQ_QK), nsums = a->k / (is_k ? 16 : AMXQ_QK);
    for (int64_t m = 0; m < a->m; m++) {
        if (memcmp(a->qs + m * a->ld_qs, b->qs + m * b->ld_qs, (size_t)a->k) != 0 ||
            !same_floats(a->d + m * a->ld_d, b->d + m * b->ld_d, (size_t)nd) ||
            memcmp(a->sums + m * a->ld_sums, b->sums + m * b->ld_sums, (size_t)nsums * 2) != 0)
            return 0;
        if (a->s && !same_floats(a->s + m * a->ld_d, b->s + m * b->ld_d, (size_t)nd))
            return 0;
    }
    return 1;
}

amxq_status amxq_kernels_selftest(const struct amxq_kernels *t)
{
    struct amxq_kernels ref;
    amxq_kernels_init_ref(&ref);
    uint32_t seed = 0x9e3779b9u;
    amxq_status result = AMXQ_OK;

    for (int ti = 0; ti < AMXQ_NTYPES && result == AMXQ_OK; ti++) {
        static const amxq_type types[AMXQ_NTYPES] = {
#define ST_X_TYPE(T, name, qk, bytes, act) AMXQ_TYPE_##T,
            AMXQ_FOREACH_TYPE(ST_X_TYPE)
#undef ST_X_TYPE
        };
        const amxq_type type = types[ti];
        const int64_t k = amxq_type_block(type) == 256 ? 256 : 64;
        amxq_layout lo;
        if (amxq_layout_init(&lo, type, ST_N, k) != AMXQ_OK || lo.total_bytes > sizeof st_packed ||
            amxq_qx_size(type, ST_M, k) > sizeof st_ws)
            return AMXQ_ERR_SELFTEST; /* the buffers above are sized for these shapes */
        make_weights(type, k, &seed);
        amxq_header_write(st_packed, &lo);
        amxq_pack_panels(&lo, st_ggml, st_packed, 0, lo.n_panels);
        for (int64_t i = 0; i < ST_M * k; i++)
            st_x[i] = (float)((int32_t)(st_rand(&seed) >> 8) - (1 << 23)) / (float)(1 << 23);

        amxq_qx qref, qt;
        memset(st_ws_ref, 0, sizeof st_ws_ref);
        memset(st_ws, 0, sizeof st_ws);
        amxq_qx_layout(&qref, type, ST_M, k, st_ws_ref);
        amxq_qx_layout(&qt, type, ST_M, k, st_ws);
        ref.t[ti].quantize(st_x, k, 0, ST_M, &qref);
        t->t[ti].quantize(st_x, k, 0, ST_M, &qt);
        if (!same_qx(&qt, &qref)) {
            result = AMXQ_ERR_SELFTEST;
            break;
        }
        /* Both gemms read the reference's activations: only the gemm is under test here. */
        ref.t[ti].gemm(&lo, st_packed, &qref, 0, ST_M, 0, lo.n_panels, st_c_ref, ST_N);
        t->t[ti].gemm(&lo, st_packed, &qref, 0, ST_M, 0, lo.n_panels, st_c, ST_N);
        /* The numeric contract (docs/design.md §1): C is the reference's bit for bit. The data
         * gives finite outputs, so this comparison of bytes is the whole check. */
        if (!same_floats(st_c, st_c_ref, (size_t)ST_M * ST_N))
            result = AMXQ_ERR_SELFTEST;
    }
    if (t->tile_release != NULL)
        t->tile_release();
    return result;
}
