/*
 * CPU and OS feature detection (CPUID, XGETBV) and the Linux AMX permission request. Both are
 * computed once per process and cached; every function here is thread safe.
 */
#ifndef AMXQ_DISPATCH_CPU_H
#define AMXQ_DISPATCH_CPU_H

#include "internal.h"

/* What CPUID and XGETBV report. amx_status and amx_permission_requested are left as they were at
 * detection (AMXQ_ERR_NO_AMX / 0); use amxq_amx_status() for AMX usability. */
const amxq_cpu_info *amxq_cpu_detect(void);

/* Whether this CPU and OS can run the AVX-512 kernels: AVX-512 F, BW, VL, DQ and VNNI, AVX2, FMA
 * and F16C, with ZMM and opmask state enabled in XCR0. */
int amxq_cpu_has_avx512(void);

/* Whether tile instructions may run in this process: CPUID AMX-TILE and AMX-INT8, XCR0 bits
 * 17-18, then on Linux ARCH_GET_XCOMP_PERM, ARCH_REQ_XCOMP_PERM if missing, GET again to confirm.
 * The first answer is cached for the process. AMXQ_OK, AMXQ_ERR_NO_AMX, AMXQ_ERR_AMX_OS or
 * AMXQ_ERR_AMX_PERMISSION. */
amxq_status amxq_amx_status(void);

/* Whether the permission request has run in this process (without running it). */
int amxq_amx_requested(void);

/* Whether the permission request has run in this process and succeeded (without running it). */
int amxq_amx_granted(void);

#endif /* AMXQ_DISPATCH_CPU_H */
