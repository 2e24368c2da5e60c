/*
 * The test-only library's hooks (src/dispatch/test_hooks.h). Compiled only into that library.
 */
#if !defined(_GNU_SOURCE)
#define _GNU_SOURCE /* RTLD_DEFAULT */
#endif

#include <dlfcn.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "dispatch/amx_permission.h"
#include "dispatch/cpu.h"
#include "dispatch/test_hooks.h"

typedef unsigned long long (*amxtrap_count_fn)(void);

static amxtrap_count_fn amxtrap_counter(void)
{
    /* amxtrap is preloaded (or linked in), so its symbol is in the global scope. A function
     * pointer through dlsym's void * is what POSIX prescribes for this lookup. */
    void *sym = dlsym(RTLD_DEFAULT, "amxtrap_count");
    amxtrap_count_fn fn;
    *(void **)&fn = sym;
    return fn;
}

int amxq_test_amxtrap_active(void)
{
    return amxtrap_counter() != NULL;
}

unsigned long long amxq_test_amxtrap_count(void)
{
    amxtrap_count_fn fn = amxtrap_counter();
    return fn ? fn() : 0;
}

static atomic_int amx_faked;

int amxq_test_amx_faked(void)
{
    return atomic_load(&amx_faked);
}

/* ---- A model of Linux's tile permission, for amxtrap mode ------------------------------------ */

static _Atomic uint64_t model_perm = 1ull << AMXQ_XFEATURE_XTILECFG;

static int model_arch_prctl(void *user, int code, unsigned long arg)
{
    (void)user;
    switch (code) {
    case AMXQ_ARCH_GET_XCOMP_PERM:
        *(uint64_t *)(uintptr_t)arg = atomic_load(&model_perm);
        return 0;
    case AMXQ_ARCH_REQ_XCOMP_PERM:
        if (arg != AMXQ_XFEATURE_XTILEDATA)
            return EINVAL;
        atomic_fetch_or(&model_perm, 1ull << AMXQ_XFEATURE_XTILEDATA);
        return 0;
    default:
        return EINVAL;
    }
}

static amxq_arch_prctl_fn hook_fn;
static void *hook_user;

void amxq_test_set_arch_prctl(amxq_arch_prctl_fn fn, void *user)
{
    hook_fn = fn;
    hook_user = user;
}

amxq_arch_prctl_fn amxq_test_arch_prctl(void **user)
{
    if (hook_fn != NULL) {
        *user = hook_user;
        return hook_fn;
    }
    if (amxq_test_amx_faked()) {
        *user = NULL;
        return model_arch_prctl;
    }
    return NULL;
}

static atomic_int fake_cpuid;

void amxq_test_fake_amx_cpuid(void)
{
    atomic_store(&fake_cpuid, 1);
}

void amxq_test_adjust_cpu(amxq_cpu_info *ci)
{
    /* The AMX kernels' epilogue is AVX-512: without it amxtrap could not run them anyway. */
    const int avx512 = ci->avx512f && ci->avx512bw && ci->avx512vl && ci->avx512dq &&
                       ci->avx512vnni && ci->os_avx512;
    if (ci->amx_tile)
        return;
    if (!atomic_load(&fake_cpuid) && (!avx512 || !amxq_test_amxtrap_active()))
        return;
    ci->amx_tile = 1;
    ci->amx_int8 = 1;
    ci->xcr0 |= AMXQ_XCR0_AMX;
    ci->os_amx = 1;
    ci->amx_max_tiles = 8; /* palette 1 */
    ci->amx_max_rows = 16;
    ci->amx_max_bytes_per_row = 64;
    ci->amx_tmul_maxk = 16;
    ci->amx_tmul_maxn = 64;
    atomic_store(&amx_faked, 1);
}

/* ---- AMXQ_TEST_EXPECT_AMXTRAP --------------------------------------------------------------- */

static void check_amxtrap_ran(void)
{
    const amxq_cpu_info *ci = amxq_cpu_detect();
    if (ci->amx_tile && !amxq_test_amx_faked())
        return; /* a real AMX CPU: the real instructions ran without a trap */
    const unsigned long long n = amxq_test_amxtrap_count();
    if (!amxq_test_amxtrap_active() || n == 0) {
        fprintf(stderr, "AMXQ_TEST_EXPECT_AMXTRAP: %s\n",
                amxq_test_amxtrap_active() ? "amxtrap emulated no tile instruction"
                                           : "amxtrap is not loaded");
        fflush(NULL);
        _exit(1);
    }
    fprintf(stderr, "amxtrap: %llu tile instructions ran\n", n);
}

__attribute__((constructor)) static void expect_amxtrap_at_exit(void)
{
    const char *e = getenv("AMXQ_TEST_EXPECT_AMXTRAP");
    if (e == NULL || e[0] != '1')
        return;
    const amxq_cpu_info *ci = amxq_cpu_detect();
    if (!ci->amx_tile && !amxq_cpu_has_avx512()) {
        /* Neither real AMX nor the AVX-512 half the trapped kernels need: Meson's skip code. */
        printf("skipped: this CPU has neither AMX nor the AVX-512 the AMX kernels need\n");
        fflush(NULL);
        _exit(77);
    }
    atexit(check_amxtrap_ran);
}
