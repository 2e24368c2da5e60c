/*
 * Hooks of the test-only library (AMXQ_TEST_BUILD, src/meson.build). The installed library
 * contains none of this: these let the suite drive CPU detection and the AMX permission request
 * the way a real machine would, without an AMX CPU.
 *
 * amxtrap mode: when the process has amxtrap loaded (the SIGILL handler that carries out real
 * AMX-TILE / AMX-INT8 instructions in software; tests load it with LD_PRELOAD), and the CPU runs
 * the AVX-512 half of the AMX kernels, detection reports AMX-TILE, AMX-INT8, the XCR0 tile bits
 * and palette 1, and the permission request talks to a model of Linux's arch_prctl that grants
 * it. The native `amx` family then runs its real machine code, trapped instruction by
 * instruction. CPUID itself still says "no AMX": tests that cross-check detection against CPUID
 * ask amxq_test_amx_faked() first.
 *
 * AMXQ_TEST_EXPECT_AMXTRAP=1 in the environment makes the process fail at exit (status 1, with a
 * message) unless amxtrap was loaded and emulated at least one tile instruction: a test that is
 * meant to run the real AMX code cannot pass without running it. On a CPU with neither AMX nor
 * AVX-512 the process exits at start-up with Meson's skip code (77) instead. On a real AMX CPU it
 * checks nothing.
 */
#ifndef AMXQ_DISPATCH_TEST_HOOKS_H
#define AMXQ_DISPATCH_TEST_HOOKS_H

#include "dispatch/amx_permission.h"
#include "internal.h"

/* Whether amxtrap's handler is loaded in this process. */
int amxq_test_amxtrap_active(void);

/* Tile instructions amxtrap has emulated so far (0 when it is not loaded). */
unsigned long long amxq_test_amxtrap_count(void);

/* Whether detection reported AMX because of amxtrap rather than because CPUID said so. */
int amxq_test_amx_faked(void);

/* Make detection report AMX-TILE, AMX-INT8, the XCR0 tile bits and palette 1 even without
 * amxtrap, so tests can drive the permission logic as on an AMX machine (with a fake arch_prctl:
 * the tile instructions themselves would fault). Call before anything in the process detects. */
void amxq_test_fake_amx_cpuid(void);

/* Called by detection, once, with what CPUID and XGETBV reported. */
void amxq_test_adjust_cpu(amxq_cpu_info *ci);

/* Replace the arch_prctl that the permission request and the read-only peek call (NULL restores
 * the default). Must be called before anything in the process asks for AMX: the request runs
 * once per process. */
void amxq_test_set_arch_prctl(amxq_arch_prctl_fn fn, void *user);

/* The arch_prctl to use instead of the system's, or NULL for the system's. */
amxq_arch_prctl_fn amxq_test_arch_prctl(void **user);

#endif /* AMXQ_DISPATCH_TEST_HOOKS_H */
