/*
 * The kernel tables: one per concrete ISA, built once. Every table starts from the reference
 * kernels, then each rung of the ladder overwrites the slots it implements (as BLIS's contexts
 * and dav1d's DSP init do), so every slot always holds something that works.
 *
 *   scalar      ref
 *   avx512      ref -> vnni
 *   avx512-emu  ref -> vnni (SIMDe)
 *   amx         ref -> vnni -> amx
 *   amx-emu     ref -> vnni (SIMDe), where built -> amx (tile emulator)
 *
 * Every table except the reference then runs its start-up self-test (src/dispatch/selftest.c);
 * one that fails is never used. This file and src/amxq.c's ISA resolution are the only places
 * that know which ISAs exist.
 */
#include <pthread.h>

#include "amxq_config.h"
#include "dispatch/cpu.h"
#include "dispatch/kernels.h"
#include "dispatch/selftest.h"
#include "internal.h"

static struct amxq_kernels tables[AMXQ_ISA_COUNT];
static amxq_status table_status[AMXQ_ISA_COUNT];
static pthread_once_t tables_once = PTHREAD_ONCE_INIT;

static amxq_status build_table(amxq_isa isa, struct amxq_kernels *t)
{
    amxq_kernels_init_ref(t);
    t->isa = isa;
    switch (isa) {
    case AMXQ_ISA_SCALAR:
        return AMXQ_OK;
    case AMXQ_ISA_AVX512:
#if AMXQ_KERNELS_AVX512
        if (!amxq_cpu_has_avx512())
            return AMXQ_ERR_ISA_UNSUPPORTED;
        amxq_kernels_init_vnni(t);
        return AMXQ_OK;
#else
        return AMXQ_ERR_ISA_UNSUPPORTED;
#endif
    case AMXQ_ISA_AVX512_EMU:
#if AMXQ_KERNELS_AVX512_EMU
        amxq_kernels_init_vnni_emu(t);
        return AMXQ_OK;
#else
        return AMXQ_ERR_ISA_UNSUPPORTED;
#endif
    case AMXQ_ISA_AMX:
#if AMXQ_KERNELS_AMX
    {
        /* The AMX kernels use AVX-512 for unpacking and the epilogue; every AMX CPU has it. */
        amxq_status st = amxq_amx_status();
        if (st != AMXQ_OK)
            return st;
        if (!amxq_cpu_has_avx512())
            return AMXQ_ERR_ISA_UNSUPPORTED;
#if AMXQ_KERNELS_AVX512
        amxq_kernels_init_vnni(t);
#endif
        amxq_kernels_init_amx(t);
        return AMXQ_OK;
    }
#else
        return amxq_amx_status() == AMXQ_OK ? AMXQ_ERR_ISA_UNSUPPORTED : amxq_amx_status();
#endif
    case AMXQ_ISA_AMX_EMU:
#if AMXQ_KERNELS_AMX_EMU
#if AMXQ_KERNELS_AVX512_EMU
        amxq_kernels_init_vnni_emu(t);
#endif
        amxq_kernels_init_amx_emu(t);
        return AMXQ_OK;
#else
        return AMXQ_ERR_ISA_UNSUPPORTED;
#endif
    case AMXQ_ISA_AUTO:
    default:
        return AMXQ_ERR_ISA_UNKNOWN;
    }
}

static void build_tables(void)
{
    for (int i = AMXQ_ISA_SCALAR; i < AMXQ_ISA_COUNT; i++) {
        table_status[i] = build_table((amxq_isa)i, &tables[i]);
        /* Every table but the reference itself proves itself once before it is used. */
        if (table_status[i] == AMXQ_OK && i != AMXQ_ISA_SCALAR)
            table_status[i] = amxq_kernels_selftest(&tables[i]);
    }
}

const struct amxq_kernels *amxq_kernels_get(amxq_isa isa, amxq_status *why)
{
    if ((int)isa <= (int)AMXQ_ISA_AUTO || (int)isa >= AMXQ_ISA_COUNT) {
        if (why)
            *why = AMXQ_ERR_ISA_UNKNOWN;
        return NULL;
    }
    pthread_once(&tables_once, build_tables);
    if (why)
        *why = table_status[isa];
    return table_status[isa] == AMXQ_OK ? &tables[isa] : NULL;
}
