/*
 * What the two tile kernel libraries export: the real-tile build (suffix _amx, compiled with
 * -mamx-tile -mamx-int8 -mavx512*) and the emulated build (suffix _amx_emu, SIMDe vectors and the
 * tile emulator). Both come from the same sources (gemm.c); the core (tile_api.c, the kernel table)
 * reaches them only through these names. Never call an _amx function unless amxq_amx_status() is
 * AMXQ_OK: it executes tile instructions.
 */
#ifndef AMXQ_TILE_TILE_H
#define AMXQ_TILE_TILE_H

#include "internal.h"

/* Make amxq's full kernel configuration (two 16-row A tiles) live on the calling thread,
 * reloading only when the live configuration differs. */
void amxq_tile_configure_amx(void);
void amxq_tile_configure_amx_emu(void);

/* TILERELEASE on the calling thread (real tiles / emulated tiles). */
void amxq_tile_release_amx(void);
void amxq_tile_release_amx_emu(void);

AMXQ_DECL_GEMM_FN(amxq_gemm_q4_0_amx);
AMXQ_DECL_GEMM_FN(amxq_gemm_q4_1_amx);
AMXQ_DECL_GEMM_FN(amxq_gemm_q8_0_amx);
AMXQ_DECL_GEMM_FN(amxq_gemm_q4_k_amx);
AMXQ_DECL_GEMM_FN(amxq_gemm_q5_k_amx);
AMXQ_DECL_GEMM_FN(amxq_gemm_iq4_xs_amx);
AMXQ_DECL_GEMM_FN(amxq_gemm_q6_k_amx);
AMXQ_DECL_GEMM_FN(amxq_gemm_q5_0_amx);
AMXQ_DECL_GEMM_FN(amxq_gemm_q5_1_amx);
AMXQ_DECL_GEMM_FN(amxq_gemm_iq4_nl_amx);
AMXQ_DECL_GEMM_FN(amxq_gemm_q4_0_amx_emu);
AMXQ_DECL_GEMM_FN(amxq_gemm_q4_1_amx_emu);
AMXQ_DECL_GEMM_FN(amxq_gemm_q8_0_amx_emu);
AMXQ_DECL_GEMM_FN(amxq_gemm_q4_k_amx_emu);
AMXQ_DECL_GEMM_FN(amxq_gemm_q5_k_amx_emu);
AMXQ_DECL_GEMM_FN(amxq_gemm_iq4_xs_amx_emu);
AMXQ_DECL_GEMM_FN(amxq_gemm_q6_k_amx_emu);
AMXQ_DECL_GEMM_FN(amxq_gemm_q5_0_amx_emu);
AMXQ_DECL_GEMM_FN(amxq_gemm_q5_1_amx_emu);
AMXQ_DECL_GEMM_FN(amxq_gemm_iq4_nl_amx_emu);

#endif /* AMXQ_TILE_TILE_H */
