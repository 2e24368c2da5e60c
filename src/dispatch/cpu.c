/*
 * CPU and OS feature detection (CPUID, XGETBV) and the Linux AMX permission request
 * (docs/design.md §5). Compiled for baseline x86-64: nothing here may use an instruction the oldest
 * x86-64 lacks, except CPUID and, once CPUID says OSXSAVE, XGETBV.
 *
 * Invariants:
 *   - detection runs once per process (pthread_once) and is never re-run; the result is const;
 *   - the permission decision runs once per process; its first answer is cached, whatever it is,
 *     so a refusal is never retried (a retry could not succeed without the caller changing the
 *     process, and would cost a syscall per product);
 *   - on architectures other than x86-64 every feature reads absent and AMX is AMXQ_ERR_NO_AMX.
 * Nothing here prints.
 */
#if !defined(_GNU_SOURCE)
#define _GNU_SOURCE /* syscall(), sigaltstack(), getauxval() under -std=c11 */
#endif

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "amxq_config.h"
#include "dispatch/amx_permission.h"
#include "dispatch/cpu.h"
#include "internal.h"
#if AMXQ_TEST_BUILD
#include "dispatch/test_hooks.h"
#endif

#if AMXQ_X86_64 && (defined(__GNUC__) || defined(__clang__))
#define AMXQ_HAVE_CPUID 1
#include <cpuid.h>
#else
#define AMXQ_HAVE_CPUID 0
#endif

#if AMXQ_X86_64 && AMXQ_LINUX
#include <errno.h>
#include <signal.h>
#include <sys/auxv.h>
#include <sys/syscall.h>
#include <unistd.h>
#ifndef AT_MINSIGSTKSZ
#define AT_MINSIGSTKSZ 51
#endif
#if defined(SYS_arch_prctl)
#define AMXQ_HAVE_ARCH_PRCTL 1
#endif
#endif
#ifndef AMXQ_HAVE_ARCH_PRCTL
#define AMXQ_HAVE_ARCH_PRCTL 0
#endif

/* ---- Detection ------------------------------------------------------------------------------ */

static amxq_cpu_info detected;
static pthread_once_t detect_once = PTHREAD_ONCE_INIT;

static void fill_build_flags(amxq_cpu_info *ci)
{
    ci->build_avx512 = AMXQ_KERNELS_AVX512 ? 1 : 0;
    ci->build_amx = AMXQ_KERNELS_AMX ? 1 : 0;
    ci->build_emu = (AMXQ_WITH_EMU_AMX || AMXQ_WITH_EMU_AVX512) ? 1 : 0;
}

#if AMXQ_HAVE_CPUID
static void cpuid(uint32_t leaf, uint32_t sub, uint32_t r[4])
{
    unsigned a, b, c, d;
    __cpuid_count(leaf, sub, a, b, c, d);
    r[0] = a;
    r[1] = b;
    r[2] = c;
    r[3] = d;
}

static uint64_t xgetbv0(void)
{
    uint32_t lo, hi;
    /* Only reached when CPUID.1:ECX.OSXSAVE is set; otherwise XGETBV raises #UD. */
    __asm__ __volatile__("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}

static uint8_t bit(uint32_t reg, unsigned b)
{
    return (uint8_t)((reg >> b) & 1u);
}

/* Copy the 48 brand bytes, trimmed of the padding spaces vendors put around them. */
static void set_brand(amxq_cpu_info *ci, const char raw[48])
{
    size_t start = 0, end = strnlen(raw, 48);
    while (start < end && raw[start] == ' ')
        start++;
    while (end > start && raw[end - 1] == ' ')
        end--;
    memcpy(ci->brand, raw + start, end - start);
    ci->brand[end - start] = '\0';
}

static void detect_x86(amxq_cpu_info *ci)
{
    uint32_t r[4];

    cpuid(0, 0, r);
    const uint32_t max_leaf = r[0];
    memcpy(ci->vendor + 0, &r[1], 4); /* EBX, EDX, ECX spell the vendor */
    memcpy(ci->vendor + 4, &r[3], 4);
    memcpy(ci->vendor + 8, &r[2], 4);
    ci->vendor[12] = '\0';

    uint8_t osxsave = 0;
    if (max_leaf >= 1) {
        cpuid(1, 0, r);
        const uint32_t base_family = (r[0] >> 8) & 0xf, base_model = (r[0] >> 4) & 0xf;
        ci->stepping = r[0] & 0xf;
        ci->family = base_family;
        ci->model = base_model;
        if (base_family == 0xf)
            ci->family += (r[0] >> 20) & 0xff;
        if (base_family == 0x6 || base_family == 0xf)
            ci->model += ((r[0] >> 16) & 0xf) << 4;
        ci->fma = bit(r[2], 12);
        ci->f16c = bit(r[2], 29);
        osxsave = bit(r[2], 27);
    }

    if (max_leaf >= 7) {
        cpuid(7, 0, r);
        const uint32_t max_sub7 = r[0];
        ci->avx2 = bit(r[1], 5);
        ci->avx512f = bit(r[1], 16);
        ci->avx512dq = bit(r[1], 17);
        ci->avx512bw = bit(r[1], 30);
        ci->avx512vl = bit(r[1], 31);
        ci->avx512vbmi = bit(r[2], 1);
        ci->avx512vnni = bit(r[2], 11);
        ci->amx_bf16 = bit(r[3], 22);
        ci->amx_tile = bit(r[3], 24);
        ci->amx_int8 = bit(r[3], 25);
        if (max_sub7 >= 1) {
            cpuid(7, 1, r);
            ci->avx_vnni = bit(r[0], 4);
            ci->avx512bf16 = bit(r[0], 5);
            ci->amx_fp16 = bit(r[0], 21);
        }
    }

    /* Palette 1 of leaf 0x1D and the TMUL limits of leaf 0x1E. */
    if (ci->amx_tile && max_leaf >= 0x1d) {
        cpuid(0x1d, 0, r);
        if (r[0] >= 1) { /* highest palette */
            cpuid(0x1d, 1, r);
            ci->amx_max_bytes_per_row = (uint16_t)(r[1] & 0xffff);
            ci->amx_max_tiles = (uint16_t)(r[1] >> 16);
            ci->amx_max_rows = (uint16_t)(r[2] & 0xffff);
        }
        if (max_leaf >= 0x1e) {
            cpuid(0x1e, 0, r);
            ci->amx_tmul_maxk = (uint16_t)(r[1] & 0xff);
            ci->amx_tmul_maxn = (uint16_t)((r[1] >> 8) & 0xffff);
        }
    }

    cpuid(0x80000000u, 0, r);
    if (r[0] >= 0x80000004u) {
        char raw[48];
        for (uint32_t i = 0; i < 3; i++) {
            cpuid(0x80000002u + i, 0, r);
            memcpy(raw + 16 * i, r, 16);
        }
        set_brand(ci, raw);
    }

    if (osxsave) {
        const uint64_t x = xgetbv0();
        ci->xcr0 = x;
        ci->os_avx = (x & AMXQ_XCR0_AVX) == AMXQ_XCR0_AVX;
        ci->os_avx512 =
            (x & (AMXQ_XCR0_AVX | AMXQ_XCR0_AVX512)) == (AMXQ_XCR0_AVX | AMXQ_XCR0_AVX512);
        ci->os_amx = (x & AMXQ_XCR0_AMX) == AMXQ_XCR0_AMX;
    }
}
#endif /* AMXQ_HAVE_CPUID */

static void detect(void)
{
    amxq_cpu_info *ci = &detected;
    memset(ci, 0, sizeof *ci);
#if AMXQ_HAVE_CPUID
    detect_x86(ci);
#endif
    ci->amx_status = AMXQ_ERR_NO_AMX; /* usability is amxq_amx_status()'s business */
    ci->amx_permission_requested = 0;
    fill_build_flags(ci);
#if AMXQ_TEST_BUILD
    amxq_test_adjust_cpu(ci); /* the test-only library may model AMX under amxtrap */
#endif
}

const amxq_cpu_info *amxq_cpu_detect(void)
{
    pthread_once(&detect_once, detect);
    return &detected;
}

int amxq_cpu_has_avx512(void)
{
    /* Exactly the extensions the AVX-512 objects are compiled for (avx512_flags in meson.build;
     * tests/check_isa_objects.py checks their disassembly against this list). No VBMI: Cascade
     * Lake and Cooper Lake have VNNI without it. */
    const amxq_cpu_info *ci = amxq_cpu_detect();
    return ci->avx512f && ci->avx512bw && ci->avx512vl && ci->avx512dq && ci->avx512vnni &&
           ci->avx2 && ci->fma && ci->f16c && ci->os_avx512;
}

/* ---- AMX permission ------------------------------------------------------------------------- */

static void fail(amxq_amx_result *out, amxq_status st, enum amxq_amx_step step, int err)
{
    out->status = st;
    out->step = step;
    out->err = err;
}

void amxq_amx_decide(const amxq_cpu_info *info, amxq_arch_prctl_fn prctl, void *user,
                     amxq_amx_result *out)
{
    memset(out, 0, sizeof *out);
    if (!info->amx_tile || !info->amx_int8) {
        fail(out, AMXQ_ERR_NO_AMX, AMXQ_AMX_STEP_CPUID, 0);
        return;
    }
    if ((info->xcr0 & AMXQ_XCR0_AMX) != AMXQ_XCR0_AMX) {
        fail(out, AMXQ_ERR_AMX_OS, AMXQ_AMX_STEP_XCR0, 0);
        return;
    }
    if (!prctl) {
        fail(out, AMXQ_ERR_AMX_PERMISSION, AMXQ_AMX_STEP_NO_PRCTL, 0);
        return;
    }

    const uint64_t tiledata = 1ull << AMXQ_XFEATURE_XTILEDATA;
    uint64_t mask = 0;
    int err = prctl(user, AMXQ_ARCH_GET_XCOMP_PERM, (unsigned long)(uintptr_t)&mask);
    out->n_calls++;
    if (err) { /* EINVAL: a kernel before 5.16 that does not know the code; EPERM: seccomp */
        fail(out, AMXQ_ERR_AMX_PERMISSION, AMXQ_AMX_STEP_GET, err);
        return;
    }
    out->perm_before = mask;
    if (mask & tiledata) { /* already granted (by us earlier, the engine, or a parent's fork) */
        fail(out, AMXQ_OK, AMXQ_AMX_STEP_GRANTED, 0);
        return;
    }

    out->requested = 1;
    err = prctl(user, AMXQ_ARCH_REQ_XCOMP_PERM, (unsigned long)AMXQ_XFEATURE_XTILEDATA);
    out->n_calls++;
    if (err) { /* ENOSPC: some thread's sigaltstack is too small; EOPNOTSUPP: not offered */
        fail(out, AMXQ_ERR_AMX_PERMISSION, AMXQ_AMX_STEP_REQ, err);
        return;
    }

    /* Trust the kernel's record, not the REQ's return value. */
    mask = 0;
    err = prctl(user, AMXQ_ARCH_GET_XCOMP_PERM, (unsigned long)(uintptr_t)&mask);
    out->n_calls++;
    if (err) {
        fail(out, AMXQ_ERR_AMX_PERMISSION, AMXQ_AMX_STEP_CONFIRM_GET, err);
        return;
    }
    out->perm_after = mask;
    if (!(mask & tiledata)) {
        fail(out, AMXQ_ERR_AMX_PERMISSION, AMXQ_AMX_STEP_CONFIRM_BIT, 0);
        return;
    }
    fail(out, AMXQ_OK, AMXQ_AMX_STEP_GRANTED, 0);
}

#if AMXQ_HAVE_ARCH_PRCTL
static int real_arch_prctl(void *user, int code, unsigned long arg)
{
    (void)user;
    errno = 0;
    long r = syscall(SYS_arch_prctl, code, arg);
    if (r == 0)
        return 0;
    return errno ? errno : EIO;
}

/* The arch_prctl the permission logic calls: the system's, or in the test-only library a hook a
 * test installed (to count calls or to model a kernel). */
static amxq_arch_prctl_fn process_arch_prctl(void **user)
{
    *user = NULL;
#if AMXQ_TEST_BUILD
    amxq_arch_prctl_fn hook = amxq_test_arch_prctl(user);
    if (hook != NULL)
        return hook;
#endif
    return real_arch_prctl;
}

static void fill_altstack(amxq_amx_result *r)
{
    stack_t ss;
    if (sigaltstack(NULL, &ss) == 0 && !(ss.ss_flags & SS_DISABLE))
        r->altstack_size = (uint64_t)ss.ss_size;
    r->altstack_min = (uint64_t)getauxval(AT_MINSIGSTKSZ);
}
#endif

static amxq_amx_result amx_result;
static atomic_int amx_done; /* 1 once amx_result is final (release store) */
static pthread_once_t amx_once = PTHREAD_ONCE_INIT;

static void amx_request_once(void)
{
    amxq_amx_result r;
#if AMXQ_HAVE_ARCH_PRCTL
    void *user;
    amxq_arch_prctl_fn prctl = process_arch_prctl(&user);
    amxq_amx_decide(amxq_cpu_detect(), prctl, user, &r);
    fill_altstack(&r);
#else
    amxq_amx_decide(amxq_cpu_detect(), NULL, NULL, &r);
#endif
    amx_result = r;
    atomic_store_explicit(&amx_done, 1, memory_order_release);
}

amxq_status amxq_amx_status(void)
{
    pthread_once(&amx_once, amx_request_once);
    return amx_result.status;
}

int amxq_amx_requested(void)
{
    return atomic_load_explicit(&amx_done, memory_order_acquire);
}

int amxq_amx_granted(void)
{
    return amxq_amx_requested() && amx_result.status == AMXQ_OK;
}

int amxq_amx_result_get(amxq_amx_result *out)
{
    if (!amxq_amx_requested())
        return 0;
    *out = amx_result;
    return 1;
}

/* The AMX status without requesting anything: CPUID, XCR0, and on Linux one read of the
 * permission mask (which someone else in the process may already have granted). */
static amxq_status amx_status_peek(const amxq_cpu_info *ci)
{
    if (!ci->amx_tile || !ci->amx_int8)
        return AMXQ_ERR_NO_AMX;
    if (!ci->os_amx)
        return AMXQ_ERR_AMX_OS;
#if AMXQ_HAVE_ARCH_PRCTL
    uint64_t mask = 0;
    void *user;
    amxq_arch_prctl_fn prctl = process_arch_prctl(&user);
    if (prctl(user, AMXQ_ARCH_GET_XCOMP_PERM, (unsigned long)(uintptr_t)&mask) == 0 &&
        (mask & (1ull << AMXQ_XFEATURE_XTILEDATA)))
        return AMXQ_OK;
#endif
    return AMXQ_ERR_AMX_PERMISSION;
}

/* ---- Public entry points -------------------------------------------------------------------- */

amxq_status amxq_cpu_info_get(amxq_cpu_info *info)
{
    AMXQ_CHECK(info != NULL, AMXQ_ERR_NULL);
    amxq_cpu_info ci = *amxq_cpu_detect();
    fill_build_flags(&ci);
    if (amxq_amx_requested()) {
        ci.amx_status = amx_result.status;
        ci.amx_permission_requested = 1;
    } else {
        ci.amx_status = amx_status_peek(&ci);
        ci.amx_permission_requested = 0;
    }
    *info = ci;
    return AMXQ_OK;
}

amxq_status amxq_request_amx_permission(void)
{
    return amxq_amx_status();
}
