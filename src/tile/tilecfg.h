/*
 * The 64-byte AMX tile configuration (LDTILECFG / STTILECFG operand) as a typed struct, the
 * palette-1 limits, and the one configuration shape amxq's tile kernels use. Shared by the real
 * and the emulated kernels, the emulator (which checks configurations the way LDTILECFG does) and
 * the tests.
 *
 * Byte layout (Intel SDM, LDTILECFG): 0 palette_id, 1 start_row, 2..15 reserved (zero),
 * 16..47 colsb[16] (bytes per row, uint16), 48..63 rows[16]. Palette 1 has 8 tiles of at most 16
 * rows of 64 bytes; entries 8..15 must be zero.
 */
#ifndef AMXQ_TILE_TILECFG_H
#define AMXQ_TILE_TILECFG_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define AMXQ_TILE_PALETTE   1
#define AMXQ_TILE_COUNT     8  /* palette 1: tmm0..tmm7 */
#define AMXQ_TILE_MAX_ROWS  16 /* palette 1 */
#define AMXQ_TILE_MAX_COLSB 64 /* palette 1: bytes per row */
#define AMXQ_TMUL_MAXK      16 /* TMUL: rows of B (K/4) */
#define AMXQ_TMUL_MAXN      16 /* TMUL: int32 columns of C */

struct amxq_tilecfg {
    uint8_t palette;
    uint8_t start_row;
    uint8_t reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
};
_Static_assert(sizeof(struct amxq_tilecfg) == 64, "the tile configuration is 64 bytes");
_Static_assert(offsetof(struct amxq_tilecfg, colsb) == 16, "colsb at byte 16");
_Static_assert(offsetof(struct amxq_tilecfg, rows) == 48, "rows at byte 48");

/*
 * amxq's kernel shape (2x2 tile blocking, src/tile/gemm.c):
 *
 *                 B0 = tmm6        B1 = tmm7          B: 8 rows x 64 B (K = 32, 16 columns VNNI)
 *   A0 = tmm4     C0 = tmm0        C2 = tmm2          A: r rows x 32 B (K = 32 int8)
 *   A1 = tmm5     C1 = tmm1        C3 = tmm3          C: r rows x 64 B (16 int32)
 *
 * r0 = rows of A0 (1..16), r1 = rows of A1 (0..16; 0 leaves A1, C1, C3 unconfigured).
 */
#define AMXQ_TILE_C0 0
#define AMXQ_TILE_C1 1
#define AMXQ_TILE_C2 2
#define AMXQ_TILE_C3 3
#define AMXQ_TILE_A0 4
#define AMXQ_TILE_A1 5
#define AMXQ_TILE_B0 6
#define AMXQ_TILE_B1 7

static inline void amxq_tilecfg_set(struct amxq_tilecfg *cfg, int tile, int rows, int colsb)
{
    cfg->rows[tile] = (uint8_t)rows;
    cfg->colsb[tile] = (uint16_t)(rows ? colsb : 0);
}

/*
 * Check `cfg` against palette 1 the way LDTILECFG does. Returns NULL when it is valid, else a
 * static description of the first problem; *field and *value (may be NULL) receive the offending
 * byte offset in the 64-byte block and its value. Palette 0 is valid (it means "release").
 */
static inline const char *amxq_tilecfg_check(const struct amxq_tilecfg *cfg, int *field,
                                             unsigned *value)
{
    int f = 0;
    unsigned v = 0;
    const char *why = NULL;
    if (cfg->palette > AMXQ_TILE_PALETTE) {
        why = "palette_id not supported (only 0 and 1)";
        v = cfg->palette;
    } else if (cfg->palette == 0) {
        why = NULL;
    } else {
        for (int i = 0; i < 14 && !why; i++)
            if (cfg->reserved[i]) {
                why = "reserved byte set";
                f = 2 + i;
                v = cfg->reserved[i];
            }
        for (int t = 0; t < 16 && !why; t++) {
            if (t >= AMXQ_TILE_COUNT && (cfg->rows[t] || cfg->colsb[t])) {
                why = "tile beyond the palette's 8 configured";
                f = cfg->rows[t] ? 48 + t : 16 + 2 * t;
                v = cfg->rows[t] ? cfg->rows[t] : cfg->colsb[t];
            } else if (cfg->rows[t] > AMXQ_TILE_MAX_ROWS) {
                why = "rows beyond the palette's 16";
                f = 48 + t;
                v = cfg->rows[t];
            } else if (cfg->colsb[t] > AMXQ_TILE_MAX_COLSB) {
                why = "bytes per row beyond the palette's 64";
                f = 16 + 2 * t;
                v = cfg->colsb[t];
            } else if ((cfg->rows[t] == 0) != (cfg->colsb[t] == 0)) {
                why = "rows and bytes per row must be both zero or both non-zero";
                f = cfg->rows[t] ? 16 + 2 * t : 48 + t;
                v = 0;
            }
        }
        if (!why && cfg->start_row >= AMXQ_TILE_MAX_ROWS) {
            why = "start_row beyond the palette's rows";
            f = 1;
            v = cfg->start_row;
        }
    }
    if (field)
        *field = f;
    if (value)
        *value = v;
    return why;
}

/* The kernel configuration for A0/A1 row counts r0 (1..16) and r1 (0..16) and steps of kb k (32,
 * or Q6_K's 16): A r x kb bytes, B kb / 4 rows x 64 bytes, C r x 64 bytes (r1 = 0 leaves A1, C1
 * and C3 unconfigured). */
static inline void amxq_tilecfg_make_k(struct amxq_tilecfg *cfg, int r0, int r1, int kb)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->palette = AMXQ_TILE_PALETTE;
    amxq_tilecfg_set(cfg, AMXQ_TILE_C0, r0, 64);
    amxq_tilecfg_set(cfg, AMXQ_TILE_C1, r1, 64);
    amxq_tilecfg_set(cfg, AMXQ_TILE_C2, r0, 64);
    amxq_tilecfg_set(cfg, AMXQ_TILE_C3, r1, 64);
    amxq_tilecfg_set(cfg, AMXQ_TILE_A0, r0, kb);
    amxq_tilecfg_set(cfg, AMXQ_TILE_A1, r1, kb);
    amxq_tilecfg_set(cfg, AMXQ_TILE_B0, kb / 4, 64);
    amxq_tilecfg_set(cfg, AMXQ_TILE_B1, kb / 4, 64);
}

/* The configuration of the 32-k steps. */
static inline void amxq_tilecfg_make(struct amxq_tilecfg *cfg, int r0, int r1)
{
    amxq_tilecfg_make_k(cfg, r0, r1, 32);
}

#endif /* AMXQ_TILE_TILECFG_H */
