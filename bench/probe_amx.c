/*
 * probe_amx.c — peak of `tdpbssd` on one core (see probes.h).
 *
 * Built with the top-level amx_flags only; call it only after amxq_request_amx_permission()
 * returned AMXQ_OK (else the first tile instruction raises SIGILL). The probe owns the tile state
 * while it runs: it loads its own palette-1 configuration and releases the tiles before returning,
 * so it leaves nothing configured for the library. Four accumulator tiles (C0..C3 = A0|A1 x
 * B0|B1) are independent, which is what the tile unit needs to issue back to back; the operands
 * never change, so no memory traffic enters the loop.
 */
#include "probes.h"

#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#define AMX_ITERS 1000000L

/* The 64-byte LDTILECFG operand (palette 1). */
struct probe_tilecfg {
    uint8_t palette;
    uint8_t start_row;
    uint8_t reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
};

double amxq_bench_probe_amx_ops(int reps)
{
    _Alignas(64) struct probe_tilecfg cfg;
    _Alignas(64) int8_t ops_ab[16 * 64];
    _Alignas(64) int32_t out[16 * 16];
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (int t = 0; t < 8; t++) { /* tmm0..3: C (16 x 16 int32), tmm4..7: A and B (16 x 64) */
        cfg.rows[t] = 16;
        cfg.colsb[t] = 64;
    }
    for (int i = 0; i < 16 * 64; i++)
        ops_ab[i] = (int8_t)((i % 7) - 3);

    double best = 0.0;
    _tile_loadconfig(&cfg);
    for (int r = 0; r < reps; r++) {
        _tile_zero(0);
        _tile_zero(1);
        _tile_zero(2);
        _tile_zero(3);
        _tile_loadd(4, ops_ab, 64);
        _tile_loadd(5, ops_ab, 64);
        _tile_loadd(6, ops_ab, 64);
        _tile_loadd(7, ops_ab, 64);
        double t0 = amxq_bench_now();
        for (long i = 0; i < AMX_ITERS; i++) {
            _tile_dpbssd(0, 4, 6);
            _tile_dpbssd(1, 4, 7);
            _tile_dpbssd(2, 5, 6);
            _tile_dpbssd(3, 5, 7);
        }
        double t = amxq_bench_now() - t0;
        _tile_stored(0, out, 64);
        volatile int32_t sink = out[0];
        (void)sink;
        /* 16 x 16 outputs x 64 products per tdpbssd, 2 ops each. */
        double ops = (double)AMX_ITERS * 4.0 * 16.0 * 16.0 * 64.0 * 2.0;
        if (t > 0 && ops / t > best)
            best = ops / t;
    }
    _tile_release();
    return best;
}
