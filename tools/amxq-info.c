/*
 * amxq-info: print what this CPU, OS and build allow and what amxq picks — CPUID features, XCR0,
 * the AMX palette, the AMX permission request and, when AMX is absent, why; which kernel families
 * can run, what AUTO resolves to, and the kernel in every table slot. Always exits 0: it reports,
 * it does not judge. It requests AMX permission for itself (as a product would), nothing else.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "amxq.h"
#include "dispatch/amx_permission.h"
#include "internal.h"

static const amxq_type all_types[] = {
#define AMXQ_X_TYPE(T, name, qk, bytes, act) AMXQ_TYPE_##T,
    AMXQ_FOREACH_TYPE(AMXQ_X_TYPE)
#undef AMXQ_X_TYPE
};
#define N_TYPES ((int)(sizeof all_types / sizeof all_types[0]))

static const char *yn(int v)
{
    return v ? "yes" : "no";
}

static const char *isa_name(amxq_isa isa)
{
    const char *s = amxq_isa_name(isa);
    return s ? s : "?";
}

static void print_features(const amxq_cpu_info *ci)
{
    struct {
        const char *name;
        int on;
    } f[] = {
        {"avx2", ci->avx2},
        {"fma", ci->fma},
        {"f16c", ci->f16c},
        {"avx-vnni", ci->avx_vnni},
        {"avx512f", ci->avx512f},
        {"avx512bw", ci->avx512bw},
        {"avx512vl", ci->avx512vl},
        {"avx512dq", ci->avx512dq},
        {"avx512vnni", ci->avx512vnni},
        {"avx512vbmi", ci->avx512vbmi},
        {"avx512bf16", ci->avx512bf16},
        {"amx-tile", ci->amx_tile},
        {"amx-int8", ci->amx_int8},
        {"amx-bf16", ci->amx_bf16},
        {"amx-fp16", ci->amx_fp16},
    };
    printf("CPUID features\n");
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
        printf("  %-11s %s\n", f[i].name, yn(f[i].on));
}

/* Why AVX-512 kernels cannot run here, as a list of what is missing. */
static void print_avx512_missing(const amxq_cpu_info *ci)
{
    struct {
        const char *name;
        int on;
    } need[] = {
        {"avx512f", ci->avx512f},
        {"avx512bw", ci->avx512bw},
        {"avx512vl", ci->avx512vl},
        {"avx512dq", ci->avx512dq},
        {"avx512vnni", ci->avx512vnni},
        {"avx512vbmi", ci->avx512vbmi},
        {"XCR0 opmask/ZMM state (bits 5-7)", ci->os_avx512},
    };
    int missing = 0;
    for (size_t i = 0; i < sizeof need / sizeof need[0]; i++)
        if (!need[i].on) {
            printf("%s%s", missing ? ", " : " (missing: ", need[i].name);
            missing = 1;
        }
    printf("%s\n", missing ? ")" : "");
}

/* EPERM or ENOSYS from arch_prctl: a seccomp filter's usual answers. */
static int is_blocked(int err)
{
    return err == EPERM || err == ENOSYS;
}

static void print_errno_reason(int err)
{
    if (err)
        printf(" (errno %d, %s)", err, strerror(err));
}

/* One sentence on why tile instructions cannot run, from where the decision stopped. */
static void print_amx_reason(const amxq_cpu_info *ci, const amxq_amx_result *r)
{
    printf("AMX: ");
    switch (r->step) {
    case AMXQ_AMX_STEP_GRANTED:
        printf("usable — CPUID, XCR0 and the kernel's permission all allow tile data");
        if (!r->requested)
            printf(" (already granted; no request made)");
        if (!ci->build_amx)
            printf("; but this build has no AMX kernels");
        break;
    case AMXQ_AMX_STEP_CPUID:
        printf("absent — CPUID reports no AMX-TILE/AMX-INT8 (amx-tile %s, amx-int8 %s)",
               yn(ci->amx_tile), yn(ci->amx_int8));
        break;
    case AMXQ_AMX_STEP_XCR0:
        printf("absent — the CPU has AMX but the OS has not enabled tile state in XCR0 "
               "(XTILECFG bit 17 %s, XTILEDATA bit 18 %s): a kernel before 5.16, or a "
               "hypervisor that does not give the guest the state",
               yn((int)((ci->xcr0 >> 17) & 1)), yn((int)((ci->xcr0 >> 18) & 1)));
        break;
    case AMXQ_AMX_STEP_NO_PRCTL:
        printf("absent — amxq asks for tile permission only on Linux (arch_prctl), not here");
        break;
    case AMXQ_AMX_STEP_GET:
        printf("absent — arch_prctl(ARCH_GET_XCOMP_PERM) failed");
        print_errno_reason(r->err);
        if (r->err == EINVAL)
            printf(": a kernel before 5.16 that does not know the request");
        else if (is_blocked(r->err))
            printf(": blocked, probably by a seccomp filter (container)");
        break;
    case AMXQ_AMX_STEP_REQ:
        printf("absent — the kernel refused arch_prctl(ARCH_REQ_XCOMP_PERM, 18)");
        print_errno_reason(r->err);
        if (r->err == ENOSPC)
            printf(": an alternate signal stack (sigaltstack) is too small for the tile state");
        else if (is_blocked(r->err))
            printf(": blocked, probably by a seccomp filter (container)");
        break;
    case AMXQ_AMX_STEP_CONFIRM_GET:
        printf("absent — the confirming arch_prctl(ARCH_GET_XCOMP_PERM) failed");
        print_errno_reason(r->err);
        break;
    case AMXQ_AMX_STEP_CONFIRM_BIT:
        printf("absent — the request returned success but the permission mask still lacks "
               "XTILEDATA");
        break;
    default:
        printf("status %s", amxq_status_str(r->status));
        break;
    }
    printf("\n");
}

static void print_amx(const amxq_cpu_info *ci)
{
    printf("AMX palette 1 (CPUID 0x1D/0x1E)\n");
    if (ci->amx_max_tiles || ci->amx_max_rows || ci->amx_max_bytes_per_row)
        printf("  tiles %u, rows %u, bytes per row %u; TMUL max K %u, max N %u\n",
               (unsigned)ci->amx_max_tiles, (unsigned)ci->amx_max_rows,
               (unsigned)ci->amx_max_bytes_per_row, (unsigned)ci->amx_tmul_maxk,
               (unsigned)ci->amx_tmul_maxn);
    else
        printf("  none reported\n");

    printf("AMX permission request\n");
    amxq_status st = amxq_request_amx_permission();
    printf("  amxq_request_amx_permission() = %d (%s)\n", (int)st, amxq_status_str(st));
    amxq_amx_result r;
    if (amxq_amx_result_get(&r)) {
        printf("  arch_prctl calls %u, ARCH_REQ_XCOMP_PERM made: %s", (unsigned)r.n_calls,
               yn(r.requested));
        if (r.n_calls)
            printf(", mask before 0x%llx", (unsigned long long)r.perm_before);
        if (r.requested)
            printf(", after 0x%llx", (unsigned long long)r.perm_after);
        printf("\n");
        if (r.altstack_min || r.altstack_size) {
            printf("  sigaltstack of this thread: ");
            if (r.altstack_size)
                printf("%llu bytes", (unsigned long long)r.altstack_size);
            else
                printf("none");
            printf(", AT_MINSIGSTKSZ %llu bytes%s\n", (unsigned long long)r.altstack_min,
                   r.altstack_size && r.altstack_size < r.altstack_min ? " — TOO SMALL" : "");
        }
        print_amx_reason(ci, &r);
    } else {
        printf("AMX: %s\n", amxq_status_str(st));
    }
}

static void print_isas(void)
{
    static const amxq_isa concrete[] = {AMXQ_ISA_SCALAR, AMXQ_ISA_AVX512, AMXQ_ISA_AMX,
                                        AMXQ_ISA_AVX512_EMU, AMXQ_ISA_AMX_EMU};
    const size_t n_concrete = sizeof concrete / sizeof concrete[0];

    printf("Kernel families (amxq_isa_check)\n");
    for (size_t i = 0; i < n_concrete; i++) {
        amxq_status st = amxq_isa_check(concrete[i]);
        printf("  %-11s %s\n", isa_name(concrete[i]), st == AMXQ_OK ? "runs" : amxq_status_str(st));
    }

    const char *env = getenv("AMXQ_ISA");
    amxq_status gst = AMXQ_OK;
    amxq_isa g = amxq_get_isa(&gst);
    printf("Process choice: %s (AMXQ_ISA=%s)%s%s\n", isa_name(g), env ? env : "(unset)",
           gst == AMXQ_OK ? "" : " — cannot run: ", gst == AMXQ_OK ? "" : amxq_status_str(gst));

    static const int64_t ms[] = {1, 512};
    printf("AUTO resolves to (amxq_resolve_isa)\n  %-6s", "type");
    for (size_t j = 0; j < sizeof ms / sizeof ms[0]; j++)
        printf(j + 1 < sizeof ms / sizeof ms[0] ? "  M=%-10lld" : "  M=%lld", (long long)ms[j]);
    printf("\n");
    for (int t = 0; t < N_TYPES; t++) {
        printf("  %-6s", amxq_type_name(all_types[t]));
        for (size_t j = 0; j < sizeof ms / sizeof ms[0]; j++) {
            amxq_isa out = AMXQ_ISA_AUTO;
            amxq_status st = amxq_resolve_isa(AMXQ_ISA_AUTO, all_types[t], ms[j], &out);
            printf(j + 1 < sizeof ms / sizeof ms[0] ? "  %-12s" : "  %s",
                   st == AMXQ_OK ? isa_name(out) : amxq_status_str(st));
        }
        printf("\n");
    }

    printf("Kernel tables (runnable families)\n");
    for (size_t i = 0; i < n_concrete; i++) {
        amxq_status why = AMXQ_OK;
        const struct amxq_kernels *k = amxq_kernels_get(concrete[i], &why);
        if (!k)
            continue;
        printf("  %s\n", isa_name(concrete[i]));
        for (int t = 0; t < N_TYPES; t++) {
            int ti = amxq_type_index(all_types[t]);
            if (ti < 0)
                continue;
            const char *qn = k->t[ti].quantize_name, *gn = k->t[ti].gemm_name;
            printf("    %-6s quantize %-28s gemm %s\n", amxq_type_name(all_types[t]),
                   qn ? qn : "(none)", gn ? gn : "(none)");
        }
    }
}

int main(void)
{
    amxq_cpu_info ci;
    memset(&ci, 0, sizeof ci);
    amxq_cpu_info_get(&ci);

    printf("amxq %s (header %s)\n", amxq_version_string(), AMXQ_VERSION_STRING);
    printf("Build: AVX-512 kernels %s, AMX kernels %s, emulated kernels %s\n", yn(ci.build_avx512),
           yn(ci.build_amx), yn(ci.build_emu));
    printf("CPU: %s, %s\n", ci.vendor[0] ? ci.vendor : "(no CPUID)",
           ci.brand[0] ? ci.brand : "(no brand string)");
    printf("  family %u (0x%x), model %u (0x%x), stepping %u\n", (unsigned)ci.family,
           (unsigned)ci.family, (unsigned)ci.model, (unsigned)ci.model, (unsigned)ci.stepping);
    print_features(&ci);

    printf("OS state: XCR0 = 0x%016llx\n", (unsigned long long)ci.xcr0);
    printf("  AVX state (bits 1, 2)         %s\n", ci.os_avx ? "enabled" : "not enabled");
    printf("  AVX-512 state (bits 5, 6, 7)  %s\n", ci.os_avx512 ? "enabled" : "not enabled");
    printf("  tile state: XTILECFG (bit 17) %s, XTILEDATA (bit 18) %s\n",
           (ci.xcr0 >> 17) & 1 ? "enabled" : "not enabled",
           (ci.xcr0 >> 18) & 1 ? "enabled" : "not enabled");

    printf("AVX-512 kernels can run on this CPU: %s",
           (ci.avx512f && ci.avx512bw && ci.avx512vl && ci.avx512dq && ci.avx512vnni &&
            ci.avx512vbmi && ci.os_avx512)
               ? "yes"
               : "no");
    print_avx512_missing(&ci);

    print_amx(&ci);
    print_isas();
    return 0;
}
