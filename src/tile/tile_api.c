/*
 * The public tile calls, amxq_tile_configure() and amxq_tile_release(). Part of the portable core
 * (baseline x86-64 flags): it executes no tile instruction itself but calls into the real-tile
 * library only when that library was built and amxq_amx_status() says tile instructions may run
 * (the permission request has succeeded), and into the emulator when it was built.
 */
#include "amxq_config.h"
#include "dispatch/cpu.h"
#include "internal.h"
#include "tile/tile.h"

amxq_status amxq_tile_configure(void)
{
    amxq_status choice_st;
    if (amxq_get_isa(&choice_st) == AMXQ_ISA_AMX_EMU) {
#if AMXQ_WITH_EMU_AMX
        amxq_tile_configure_amx_emu();
        return AMXQ_OK;
#else
        return AMXQ_ERR_ISA_UNSUPPORTED;
#endif
    }
    (void)choice_st;
    AMXQ_TRY(amxq_isa_check(AMXQ_ISA_AMX));
#if AMXQ_KERNELS_AMX
    if (amxq_amx_status() != AMXQ_OK) /* amxq_isa_check() said yes; never run tiles without it */
        return amxq_amx_status();
    amxq_tile_configure_amx();
    return AMXQ_OK;
#else
    return AMXQ_ERR_ISA_UNSUPPORTED;
#endif
}

amxq_status amxq_tile_release(void)
{
#if AMXQ_KERNELS_AMX
    /* Only once this process's own permission request has succeeded: without the permission
     * TILERELEASE itself would fault, and releasing must never be what makes the request (a
     * process that never ran an AMX product makes no arch_prctl call, docs/design.md §5). Tiles
     * amxq configured imply that the request has run. */
    if (amxq_amx_granted())
        amxq_tile_release_amx();
#endif
#if AMXQ_WITH_EMU_AMX
    amxq_tile_release_amx_emu();
#endif
    return AMXQ_OK;
}
