/*
 * The AMX usability decision (docs/design.md §5), kept apart from the system calls so tests can
 * drive it with fake kernels: CPUID AMX-TILE and AMX-INT8, then XCR0 bits 17-18, then on Linux
 * ARCH_GET_XCOMP_PERM, ARCH_REQ_XCOMP_PERM only when the tile-data bit is missing, and GET again
 * to confirm. src/dispatch/cpu.c runs it once per process with the real arch_prctl and caches the
 * result.
 */
#ifndef AMXQ_DISPATCH_AMX_PERMISSION_H
#define AMXQ_DISPATCH_AMX_PERMISSION_H

#include <stdint.h>

#include "internal.h"

/* Linux arch_prctl codes and the tile-data feature number; older headers lack them. */
#define AMXQ_ARCH_GET_XCOMP_SUPP 0x1021
#define AMXQ_ARCH_GET_XCOMP_PERM 0x1022
#define AMXQ_ARCH_REQ_XCOMP_PERM 0x1023
#define AMXQ_XFEATURE_XTILECFG   17
#define AMXQ_XFEATURE_XTILEDATA  18

/* XCR0 masks. */
#define AMXQ_XCR0_AVX    0x6ull     /* bits 1, 2: XMM, YMM */
#define AMXQ_XCR0_AVX512 0xe0ull    /* bits 5, 6, 7: opmask, ZMM_Hi256, Hi16_ZMM */
#define AMXQ_XCR0_AMX    0x60000ull /* bits 17, 18: XTILECFG, XTILEDATA */

/*
 * One arch_prctl(code, arg) call. For the GET codes `arg` is the address of a uint64_t that
 * receives the mask; for ARCH_REQ_XCOMP_PERM it is the feature number. Returns 0 on success,
 * otherwise the errno value (never 0) of the failure.
 */
typedef int (*amxq_arch_prctl_fn)(void *user, int code, unsigned long arg);

/* Where the decision stopped. */
enum amxq_amx_step {
    AMXQ_AMX_STEP_GRANTED = 0, /* tile data permitted (status AMXQ_OK) */
    AMXQ_AMX_STEP_CPUID,       /* CPUID lacks AMX-TILE or AMX-INT8 */
    AMXQ_AMX_STEP_XCR0,        /* the OS has not enabled XTILECFG / XTILEDATA in XCR0 */
    AMXQ_AMX_STEP_NO_PRCTL,    /* not Linux: no way to ask, so AMX stays off */
    AMXQ_AMX_STEP_GET,         /* the first ARCH_GET_XCOMP_PERM failed (err) */
    AMXQ_AMX_STEP_REQ,         /* ARCH_REQ_XCOMP_PERM failed (err) */
    AMXQ_AMX_STEP_CONFIRM_GET, /* the confirming ARCH_GET_XCOMP_PERM failed (err) */
    AMXQ_AMX_STEP_CONFIRM_BIT  /* REQ succeeded but GET still lacks the tile-data bit */
};

typedef struct amxq_amx_result {
    amxq_status status; /* AMXQ_OK, AMXQ_ERR_NO_AMX, AMXQ_ERR_AMX_OS, AMXQ_ERR_AMX_PERMISSION */
    enum amxq_amx_step step; /* where it stopped */
    int err;                 /* errno of the failing call; 0 when no call failed */
    uint8_t requested;       /* ARCH_REQ_XCOMP_PERM was issued */
    uint8_t n_calls;         /* arch_prctl calls made */
    uint64_t perm_before;    /* first GET's mask (0 when not read) */
    uint64_t perm_after;     /* confirming GET's mask (0 when not read) */
    /* Filled by cpu.c on Linux, not by the decision: the calling thread's alternate signal
     * stack (0 when none) and the kernel's AT_MINSIGSTKSZ (0 when unknown). A stack smaller
     * than the signal frame with tile data makes the request fail with ENOSPC. */
    uint64_t altstack_size;
    uint64_t altstack_min;
} amxq_amx_result;

/* Decide whether tile instructions may run, given what CPUID/XGETBV reported in `info` (the
 * amx_tile, amx_int8 and xcr0 fields) and `prctl` (NULL where the OS has no arch_prctl). Calls
 * prctl at most three times: GET, then REQ and GET only if the first GET lacks bit 18. */
void amxq_amx_decide(const amxq_cpu_info *info, amxq_arch_prctl_fn prctl, void *user,
                     amxq_amx_result *out);

/* Copy the process's cached result into `out` and return 1, or return 0 (out untouched) if the
 * permission request has not run yet. Does not run it. */
int amxq_amx_result_get(amxq_amx_result *out);

#endif /* AMXQ_DISPATCH_AMX_PERMISSION_H */
