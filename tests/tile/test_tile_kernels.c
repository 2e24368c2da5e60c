/*
 * The AMX kernels on the tile emulator (amx-emu), beyond what tests/checkasm covers:
 *   - slices: rows [m0, m1) and panels [p0, p1) that start and end anywhere, checked against the
 *     scalar reference (L2-relative <= 1e-6) with every element outside the slice untouched, and
 *     the workspace allocated to the exact byte so that a tile load past the last row is caught
 *     (the emulator copies only configured rows, and ASan sees an overread);
 *   - tile state through the public API: released after a call, kept with AMXQ_KEEP_TILES, not
 *     reloaded when the live configuration already matches, and a foreign configuration loaded
 *     between two calls (as another library on the thread would) detected, replaced, and the
 *     results still right;
 *   - amxq_tile_configure() / amxq_tile_release() with the process choice amx-emu.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "ref/fp16.h"
#include "tests/common/testutil.h"
#include "tile/emu.h"
#include "tile/tile.h"
#include "tile/tilecfg.h"

static uint64_t seed = 0xa11ce5eedull;

static const amxq_type types[] = {AMXQ_TYPE_Q4_0, AMXQ_TYPE_Q4_1,  AMXQ_TYPE_Q8_0,   AMXQ_TYPE_Q4_K,
                                  AMXQ_TYPE_Q6_K, AMXQ_TYPE_Q5_K,  AMXQ_TYPE_IQ4_XS, AMXQ_TYPE_Q5_0,
                                  AMXQ_TYPE_Q5_1, AMXQ_TYPE_IQ4_NL};

/* Random ggml rows with small finite scales. */
static uint8_t *make_ggml(amxq_type type, int64_t n, int64_t k)
{
    const size_t bb = amxq_type_block_bytes(type);
    const int64_t blocks = n * (k / amxq_type_block(type));
    uint8_t *g = (uint8_t *)malloc((size_t)blocks * bb);
    if (!g)
        exit(2);
    tu_fill_bytes(&seed, g, (size_t)blocks * bb);
    for (int64_t i = 0; i < blocks; i++) {
        uint16_t d = amxq_fp32_to_fp16(tu_randf(&seed) * 0.02f);
        uint16_t m = amxq_fp32_to_fp16(tu_randf(&seed) * 0.02f);
        memcpy(g + (size_t)i * bb + (type == AMXQ_TYPE_Q6_K ? 208 : 0), &d, 2);
        if (type == AMXQ_TYPE_Q4_1 || type == AMXQ_TYPE_Q4_K || type == AMXQ_TYPE_Q5_K ||
            type == AMXQ_TYPE_Q5_1)
            memcpy(g + (size_t)i * bb + 2, &m, 2);
    }
    return g;
}

static void *make_packed(amxq_type type, int64_t n, int64_t k)
{
    uint8_t *g = make_ggml(type, n, k);
    const size_t ps = amxq_packed_size(type, n, k);
    void *p = aligned_alloc(AMXQ_ALIGNMENT, ps);
    if (!p || amxq_pack(type, g, n, k, p, ps) != AMXQ_OK)
        exit(2);
    free(g);
    return p;
}

static double l2_rel(const float *ref, const float *got, int64_t m, int64_t n, int64_t ldc)
{
    double num = 0, den = 0;
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) {
            const double a = ref[i * ldc + j], b = got[i * ldc + j];
            num += (a - b) * (a - b);
            den += a * a;
        }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

/* ---- Slices directly through the kernel table ------------------------------------------------ */

static void check_slice(const struct amxq_kernels *emu, const struct amxq_kernels *ref,
                        amxq_type type, int64_t m, int64_t n, int64_t k, int64_t m0, int64_t m1,
                        int64_t p0, int64_t p1)
{
    void *packed = make_packed(type, n, k);
    amxq_layout lo;
    if (amxq_layout_read(&lo, packed, SIZE_MAX) != AMXQ_OK)
        exit(2);
    const int64_t ldx = k + 7, ldc = n + 3;
    float *x = (float *)malloc(sizeof(float) * (size_t)(m * ldx));
    for (int64_t i = 0; i < m * ldx; i++)
        x[i] = tu_randf(&seed);
    /* the workspace to the exact byte (malloc, not rounded up): over-reads are ASan errors */
    const size_t ws_bytes = amxq_qx_size(type, m, k);
    void *ws = aligned_alloc(AMXQ_ALIGNMENT, ws_bytes);
    amxq_qx qx;
    amxq_qx_layout(&qx, type, m, k, ws);
    ref->t[lo.ti].quantize(x, ldx, 0, m, &qx);

    const float canary = -777.25f;
    float *c_ref = (float *)malloc(sizeof(float) * (size_t)(m * ldc));
    float *c_emu = (float *)malloc(sizeof(float) * (size_t)(m * ldc));
    for (int64_t i = 0; i < m * ldc; i++)
        c_ref[i] = c_emu[i] = canary;
    ref->t[lo.ti].gemm(&lo, packed, &qx, m0, m1, p0, p1, c_ref, ldc);
    emu->t[lo.ti].gemm(&lo, packed, &qx, m0, m1, p0, p1, c_emu, ldc);

    int outside = 0;
    const int64_t n0 = p0 * AMXQ_PANEL_N, n1 = p1 * AMXQ_PANEL_N < n ? p1 * AMXQ_PANEL_N : n;
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < ldc; j++)
            if (!(i >= m0 && i < m1 && j >= n0 && j < n1) && c_emu[i * ldc + j] != canary)
                outside++;
    const double rel = l2_rel(c_ref + m0 * ldc + n0, c_emu + m0 * ldc + n0, m1 - m0, n1 - n0, ldc);
    TU_CHECK(rel <= 1e-6 && outside == 0,
             "%s %s M=%lld N=%lld K=%lld rows [%lld,%lld) panels [%lld,%lld): L2 rel %.3g, %d "
             "writes outside",
             emu->t[lo.ti].gemm_name, amxq_type_name(type), (long long)m, (long long)n,
             (long long)k, (long long)m0, (long long)m1, (long long)p0, (long long)p1, rel,
             outside);
    free(packed);
    free(x);
    free(ws);
    free(c_ref);
    free(c_emu);
}

static void test_slices(void)
{
    const struct amxq_kernels *emu = amxq_kernels_get(AMXQ_ISA_AMX_EMU, NULL);
    const struct amxq_kernels *ref = amxq_kernels_get(AMXQ_ISA_SCALAR, NULL);
    TU_CHECK(emu != NULL && ref != NULL, "amx-emu and scalar tables");
    if (!emu || !ref)
        return;
    for (int ti = 0; ti < (int)(sizeof types / sizeof types[0]); ti++) {
        const amxq_type t = types[ti];
        const int64_t k = amxq_type_block(t) * (amxq_type_block(t) == 256 ? 2 : 5);
        TU_CHECK(strstr(emu->t[ti].gemm_name, "_amx_emu") != NULL, "slot %d holds %s", ti,
                 emu->t[ti].gemm_name);
        check_slice(emu, ref, t, 45, 83, k, 0, 45, 0, 6);   /* whole: ragged rows and panels */
        check_slice(emu, ref, t, 45, 83, k, 3, 38, 1, 4);   /* interior, odd starts */
        check_slice(emu, ref, t, 45, 83, k, 44, 45, 5, 6);  /* last row, padded last panel */
        check_slice(emu, ref, t, 200, 40, k, 7, 200, 0, 3); /* several 128-row chunks */
        check_slice(emu, ref, t, 1, 16, amxq_type_block(t), 0, 1, 0, 1); /* smallest */
    }
    amxq_tile_release_amx_emu();
}

/* ---- Tile state through the public API ------------------------------------------------------- */

static void test_state(void)
{
    const amxq_type type = AMXQ_TYPE_Q4_0;
    const int64_t m = 40, n = 50, k = 128;
    void *packed = make_packed(type, n, k);
    float *x = (float *)malloc(sizeof(float) * (size_t)(m * k));
    for (int64_t i = 0; i < m * k; i++)
        x[i] = tu_randf(&seed);
    float *c_ref = (float *)calloc((size_t)(m * n), sizeof(float));
    float *c = (float *)calloc((size_t)(m * n), sizeof(float));

    amxq_matmul_params pr = {AMXQ_ISA_SCALAR, 0, NULL, 0};
    TU_CHECK(amxq_matmul_ex(packed, x, m, k, c_ref, n, &pr) == AMXQ_OK, "scalar matmul");

    /* a plain call leaves the tiles released */
    amxq_matmul_params pe = {AMXQ_ISA_AMX_EMU, 0, NULL, 0};
    TU_CHECK(amxq_matmul_ex(packed, x, m, k, c, n, &pe) == AMXQ_OK, "amx-emu matmul");
    TU_CHECK(l2_rel(c_ref, c, m, n, n) <= 1e-6, "amx-emu result");
    TU_CHECK(amxq_temu_configured(NULL) == 0, "tiles released after a call");

    /* KEEP_TILES: configured on return; a second call finds its configuration live and does not
     * reload it (M = 40 ends on a 8-row tail block, so that is the live configuration) */
    pe.flags = AMXQ_KEEP_TILES;
    TU_CHECK(amxq_matmul_ex(packed, x, m, k, c, n, &pe) == AMXQ_OK, "keep 1");
    struct amxq_tilecfg live, tail;
    amxq_tilecfg_make(&tail, 8, 0);
    TU_CHECK(amxq_temu_configured(&live) && memcmp(&live, &tail, 64) == 0,
             "tiles kept with amxq's tail configuration");
    const int64_t m32 = 32; /* one full block: a single configuration per call */
    TU_CHECK(amxq_matmul_ex(packed, x, m32, k, c, n, &pe) == AMXQ_OK, "keep 2");
    const unsigned long loads = amxq_temu_ldtilecfg_count();
    memset(c, 0, sizeof(float) * (size_t)(m * n));
    TU_CHECK(amxq_matmul_ex(packed, x, m32, k, c, n, &pe) == AMXQ_OK, "keep 3");
    TU_CHECK(amxq_temu_ldtilecfg_count() == loads, "live configuration matched: no reload");
    TU_CHECK(l2_rel(c_ref, c, m32, n, n) <= 1e-6, "result with kept tiles");

    /* a foreign configuration, as another library on this thread would load: every tile a
     * different shape, and tile data that is not ours */
    struct amxq_tilecfg foreign;
    memset(&foreign, 0, sizeof foreign);
    foreign.palette = 1;
    for (int t = 0; t < 8; t++)
        amxq_tilecfg_set(&foreign, t, 16 - t, 64);
    amxq_temu_ldtilecfg(&foreign);
    uint8_t junk[1024];
    tu_fill_bytes(&seed, junk, sizeof junk);
    for (int t = 0; t < 8; t++)
        amxq_temu_tileloadd(t, junk, 64);
    const unsigned long before = amxq_temu_ldtilecfg_count();
    memset(c, 0, sizeof(float) * (size_t)(m * n));
    TU_CHECK(amxq_matmul_ex(packed, x, m32, k, c, n, &pe) == AMXQ_OK, "after foreign");
    struct amxq_tilecfg full;
    amxq_tilecfg_make(&full, 16, 16);
    TU_CHECK(amxq_temu_ldtilecfg_count() == before + 1, "foreign configuration replaced once");
    TU_CHECK(amxq_temu_configured(&live) && memcmp(&live, &full, 64) == 0,
             "amxq's configuration live after the call");
    TU_CHECK(l2_rel(c_ref, c, m32, n, n) <= 1e-6, "result after a foreign configuration");

    /* same shapes as amxq's but loaded by someone else: nothing to reload, data is reloaded by
     * the kernel anyway */
    amxq_temu_ldtilecfg(&full);
    for (int t = 0; t < 8; t++)
        amxq_temu_tileloadd(t, junk, 64);
    memset(c, 0, sizeof(float) * (size_t)(m * n));
    pe.flags = 0;
    TU_CHECK(amxq_matmul_ex(packed, x, m, k, c, n, &pe) == AMXQ_OK, "after foreign data");
    TU_CHECK(l2_rel(c_ref, c, m, n, n) <= 1e-6, "result after foreign tile data");
    TU_CHECK(amxq_temu_configured(NULL) == 0, "released again without KEEP_TILES");

    free(packed);
    free(x);
    free(c_ref);
    free(c);
}

static void test_public_configure(void)
{
    amxq_status st = amxq_set_isa(AMXQ_ISA_AMX_EMU);
    TU_CHECK(st == AMXQ_OK, "amxq_set_isa(amx-emu): %s", amxq_status_str(st));
    if (st != AMXQ_OK)
        return;
    amxq_temu_tilerelease();
    TU_CHECK(amxq_tile_configure() == AMXQ_OK, "amxq_tile_configure");
    struct amxq_tilecfg live, full;
    amxq_tilecfg_make(&full, 16, 16);
    TU_CHECK(amxq_temu_configured(&live) && memcmp(&live, &full, 64) == 0,
             "amxq_tile_configure loads amxq's configuration on the emulated tiles");
    const unsigned long loads = amxq_temu_ldtilecfg_count();
    TU_CHECK(amxq_tile_configure() == AMXQ_OK, "amxq_tile_configure again");
    TU_CHECK(amxq_temu_ldtilecfg_count() == loads, "no reload when already live");
    TU_CHECK(amxq_tile_release() == AMXQ_OK, "amxq_tile_release");
    TU_CHECK(amxq_temu_configured(NULL) == 0, "amxq_tile_release releases the emulated tiles");
    TU_CHECK(amxq_tile_release() == AMXQ_OK, "amxq_tile_release twice");
    TU_CHECK(amxq_set_isa(AMXQ_ISA_AUTO) == AMXQ_OK, "back to auto");
}

int main(void)
{
    test_slices();
    test_state();
    test_public_configure();
    return tu_finish("tile_kernels");
}
