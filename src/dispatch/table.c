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
 * Tables are built lazily, one family at a time, the first time a product (or amxq_isa_check())
 * asks for that family. Every table except the reference then runs its start-up self-test
 * (src/dispatch/selftest.c); one that fails is never used. The emulated families exist only in
 * the test-only library (AMXQ_TEST_BUILD); the installed library answers
 * AMXQ_ERR_ISA_UNSUPPORTED for them. This file and src/amxq.c's ISA resolution are the only places
 * that know which ISAs exist.
 */
#include <pthread.h>
#include <stdatomic.h>

#include "amxq_config.h"
#include "dispatch/cpu.h"
#include "dispatch/kernels.h"
#include "dispatch/selftest.h"
#include "internal.h"

static struct amxq_kernels tables[AMXQ_ISA_COUNT];
static amxq_status table_status[AMXQ_ISA_COUNT];
/* 1 once tables[isa] and table_status[isa] are final (release store, acquire load). */
static atomic_int table_ready[AMXQ_ISA_COUNT];
static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;

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
#if AMXQ_WITH_EMU_AVX512
        amxq_kernels_init_vnni_emu(t);
        return AMXQ_OK;
#else
        return AMXQ_ERR_ISA_UNSUPPORTED;
#endif
    case AMXQ_ISA_AMX:
#if AMXQ_KERNELS_AMX
    {
        /* The AMX kernels use AVX-512 for unpacking and the epilogue; every AMX CPU has it.
         * Checked before the permission request, so a CPU that could not run the kernels anyway
         * never asks for tile state. */
        if (amxq_cpu_detect()->amx_tile && !amxq_cpu_has_avx512())
            return AMXQ_ERR_ISA_UNSUPPORTED;
        /* The only place a product requests tile permission (docs/design.md §5). */
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
        /* Without the AMX kernels in this build there is nothing to ask the kernel for. */
        return AMXQ_ERR_ISA_UNSUPPORTED;
#endif
    case AMXQ_ISA_AMX_EMU:
#if AMXQ_WITH_EMU_AMX
#if AMXQ_WITH_EMU_AVX512
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

/* Build one family's table and run its self-test, once per process, the first time something
 * asks for that family: a process that only ever runs scalar or AVX-512 products never builds
 * the AMX table, so it never requests tile permission and never executes a tile instruction. */
static void build_family(amxq_isa isa)
{
    pthread_mutex_lock(&table_lock);
    if (!atomic_load_explicit(&table_ready[isa], memory_order_relaxed)) {
        amxq_status st = build_table(isa, &tables[isa]);
        /* Every table but the reference itself proves itself once before it is used. */
        if (st == AMXQ_OK && isa != AMXQ_ISA_SCALAR)
            st = amxq_kernels_selftest(&tables[isa]);
        table_status[isa] = st;
        atomic_store_explicit(&table_ready[isa], 1, memory_order_release);
    }
    pthread_mutex_unlock(&table_lock);
}

const struct amxq_kernels *amxq_kernels_get(amxq_isa isa, amxq_status *why)
{
    if ((int)isa <= (int)AMXQ_ISA_AUTO || (int)isa >= AMXQ_ISA_COUNT) {
        if (why)
            *why = AMXQ_ERR_ISA_UNKNOWN;
        return NULL;
    }
    if (!atomic_load_explicit(&table_ready[isa], memory_order_acquire))
        build_family(isa);
    if (why)
        *why = table_status[isa];
    return table_status[isa] == AMXQ_OK ? &tables[isa] : NULL;
}

int amxq_kernels_built(amxq_isa isa)
{
    return (int)isa > (int)AMXQ_ISA_AUTO && (int)isa < AMXQ_ISA_COUNT &&
           atomic_load_explicit(&table_ready[isa], memory_order_acquire);
}
