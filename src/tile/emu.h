/*
 * The tile emulator (docs/design.md §7): a software model of the calling thread's eight AMX tile
 * registers (16 rows x 64 bytes) and its tile configuration, with the instructions amxq's kernels
 * use. The state is thread-local because the hardware state it models is per thread.
 *
 * Every operation checks what the hardware faults on (LDTILECFG: palette, reserved bytes, rows
 * and bytes beyond palette 1; all others: tiles not configured, tile numbers beyond the palette,
 * an unconfigured tile, dot-product shapes that do not agree) and then faults: the message names
 * the instruction and the offending value, and by default is printed to stderr before abort().
 * The model is stricter than the hardware in one way: using a tile whose rows are 0 faults.
 *
 * Only built into the amx-emu kernel library; never used by the real-tile build.
 */
#ifndef AMXQ_TILE_EMU_H
#define AMXQ_TILE_EMU_H

#include <stddef.h>
#include <stdint.h>

#include "tile/tilecfg.h"

/* Dot-product signedness: A (first source) then B (second source). */
enum amxq_temu_dp { AMXQ_TEMU_SS, AMXQ_TEMU_SU, AMXQ_TEMU_US, AMXQ_TEMU_UU };

void amxq_temu_ldtilecfg(const void *cfg);
void amxq_temu_sttilecfg(void *cfg);
void amxq_temu_tilerelease(void);
void amxq_temu_tilezero(int t);
void amxq_temu_tileloadd(int t, const void *base, size_t stride);
void amxq_temu_tilestored(int t, void *base, size_t stride);
void amxq_temu_tdp(enum amxq_temu_dp kind, int c, int a, int b);

/* ---- Test hooks ----------------------------------------------------------------------------- */

/* Called with the fault message instead of print-and-abort. The handler may longjmp out; if it
 * returns, the faulting instruction has no effect. NULL restores the default. Process-wide; set it
 * before other threads use the emulator. */
typedef void (*amxq_temu_fault_fn)(const char *message);
void amxq_temu_set_fault_handler(amxq_temu_fault_fn fn);

/* Whether the calling thread's emulated tiles are configured (TILES_CONFIGURED), and, if so and
 * `cfg` is not NULL, its configuration. */
int amxq_temu_configured(struct amxq_tilecfg *cfg);

/* LDTILECFG instructions the calling thread has executed (palette 0 included). */
unsigned long amxq_temu_ldtilecfg_count(void);

/* Raw view of tile t's 16 x 64 bytes on the calling thread (tests only). */
const uint8_t *amxq_temu_tile_data(int t);

#endif /* AMXQ_TILE_EMU_H */
