/*
 * probe_amx.c — peak of `tdpbssd` on one core (see probes.h).
 *
 * Built with the top-level amx_flags only; call it only after amxq_request_amx_permission()
 * returned AMXQ_OK (else the first tile instruction raises SIGILL). Written against the library's
 * own tile layer (src/tile/tileops.h, tilecfg.h), not raw intrinsics: GCC 12's intrinsics do not
 * tell the compiler which memory LDTILECFG and tile loads read, and the layer's barriers do
 * (docs/design.md §5); its configuration is also the one the kernels load.
 *
 * Two operand shapes, reported separately because they need not cost the same per instruction:
 *   K = 32: the kernels' configuration, amxq_tilecfg_make(16, 16) — A 16 rows x 32 bytes, B 8 rows
 *           x 64 bytes (one 32-weight ggml block per tdpbssd, so the scales can be applied after
 *           each block, docs/design.md §6). The ceiling the kernels can reach.
 *   K = 64: full 16 x 64-byte A and B tiles, the data-sheet peak; twice the work per instruction.
 * The probe owns the tile state while it runs: it loads its configuration and releases the tiles
 * before returning, so it leaves nothing configured for the library. Four accumulator tiles
 * (C0..C3 = A0|A1 x B0|B1) are independent, which is what the tile unit needs to issue back to
 * back; the operands never change, so no memory traffic enters the loop.
 */
#include "probes.h"

#include <stdint.h>
#include <string.h>

#include "tile/tilecfg.h"
#include "tile/tileops.h"

#ifndef AMX_ITERS /* overridable to run the probe under a trapping emulator */
#define AMX_ITERS 1000000L
#endif

double amxq_bench_probe_amx_ops(int reps, int k)
{
    if (k != 32 && k != 64)
        return 0.0;
    _Alignas(64) struct amxq_tilecfg cfg;
    _Alignas(64) int8_t ops_ab[16 * 64];
    _Alignas(64) int32_t out[16 * 16];
    amxq_tilecfg_make(&cfg, 16, 16);
    if (k == 64) {
        amxq_tilecfg_set(&cfg, AMXQ_TILE_A0, 16, 64);
        amxq_tilecfg_set(&cfg, AMXQ_TILE_A1, 16, 64);
        amxq_tilecfg_set(&cfg, AMXQ_TILE_B0, 16, 64);
        amxq_tilecfg_set(&cfg, AMXQ_TILE_B1, 16, 64);
    }
    if (amxq_tilecfg_check(&cfg, NULL, NULL) != NULL)
        return 0.0; /* LDTILECFG would raise #GP */
    for (int i = 0; i < 16 * 64; i++)
        ops_ab[i] = (int8_t)((i % 7) - 3);

    double best = 0.0;
    TILE_LOADCONFIG(&cfg);
    for (int r = 0; r < reps; r++) {
        TILE_ZERO(AMXQ_TILE_C0);
        TILE_ZERO(AMXQ_TILE_C1);
        TILE_ZERO(AMXQ_TILE_C2);
        TILE_ZERO(AMXQ_TILE_C3);
        /* Every operand from the same 64-byte-stride buffer: each tile reads what it configured. */
        TILE_LOAD(AMXQ_TILE_A0, ops_ab, 64);
        TILE_LOAD(AMXQ_TILE_A1, ops_ab, 64);
        TILE_LOAD(AMXQ_TILE_B0, ops_ab, 64);
        TILE_LOAD(AMXQ_TILE_B1, ops_ab, 64);
        double t0 = amxq_bench_now();
        for (long i = 0; i < AMX_ITERS; i++) {
            TILE_DPBSSD(AMXQ_TILE_C0, AMXQ_TILE_A0, AMXQ_TILE_B0);
            TILE_DPBSSD(AMXQ_TILE_C1, AMXQ_TILE_A1, AMXQ_TILE_B0);
            TILE_DPBSSD(AMXQ_TILE_C2, AMXQ_TILE_A0, AMXQ_TILE_B1);
            TILE_DPBSSD(AMXQ_TILE_C3, AMXQ_TILE_A1, AMXQ_TILE_B1);
        }
        double t = amxq_bench_now() - t0;
        TILE_STORE(AMXQ_TILE_C0, out, 64);
        volatile int32_t sink = out[0];
        (void)sink;
        /* 16 x 16 outputs x K products per tdpbssd, 2 ops each. */
        double ops = (double)AMX_ITERS * 4.0 * 16.0 * 16.0 * (double)k * 2.0;
        if (t > 0 && ops / t > best)
            best = ops / t;
    }
    TILE_RELEASE();
    return best;
}
