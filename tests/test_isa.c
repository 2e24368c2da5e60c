/*
 * ISA detection and choice: the AMX permission decision driven by fake kernels, ISA names, the
 * AMXQ_ISA environment variable (one child process per value, since it is read once per
 * process), amxq_set_isa(), per-call forced ISAs, and CPU detection checked against raw CPUID and
 * /proc/cpuinfo. Expectations are derived from what this machine and build offer, never
 * hard-coded, so the test passes with and without AVX-512 or AMX.
 *
 * Usage: test_isa                  run everything (spawns itself for the child parts)
 *        test_isa --child-env V    (internal) AMXQ_ISA=V is set; check the process choice
 *        test_isa --child-perm     (internal) fresh process: the permission request
 *        test_isa --child-threads  (internal) fresh process: concurrent permission requests
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "amxq.h"
#include "amxq_config.h"
#include "dispatch/amx_permission.h"
#include "dispatch/cpu.h"
#include "dispatch/test_hooks.h"
#include "internal.h"
#include "ref/fp16.h"

#if AMXQ_X86_64 && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#define HAVE_CPUID 1
#else
#define HAVE_CPUID 0
#endif

static int failures;

#define EXPECT(cond, ...)                                                                          \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            failures++;                                                                            \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                        \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
        }                                                                                          \
    } while (0)

static const char *st_name(amxq_status st)
{
    return amxq_status_str(st);
}

/* ---- (a) the permission decision with fake kernels ------------------------------------------ */

/* A scripted arch_prctl: GET number i answers get_err[i] or get_mask[i] (the last entry repeats).
 */
struct fake_script {
    int get_err[2];
    uint64_t get_mask[2];
    int req_err;
};

struct fake_kernel {
    struct fake_script s;
    int n_get, n_req, n_other;
    unsigned long req_arg;
};

static int fake_prctl(void *user, int code, unsigned long arg)
{
    struct fake_kernel *f = user;
    if (code == AMXQ_ARCH_GET_XCOMP_PERM) {
        int i = f->n_get < 2 ? f->n_get : 1;
        f->n_get++;
        if (f->s.get_err[i])
            return f->s.get_err[i];
        *(uint64_t *)(uintptr_t)arg = f->s.get_mask[i];
        return 0;
    }
    if (code == AMXQ_ARCH_REQ_XCOMP_PERM) {
        f->n_req++;
        f->req_arg = arg;
        return f->s.req_err;
    }
    f->n_other++;
    return EINVAL;
}

/* Default Linux permission without tile data: x87..AVX-512 state plus XTILECFG. */
#define PERM_NO_TILEDATA (0x2e7ull | (1ull << 17))
#define PERM_TILEDATA    (PERM_NO_TILEDATA | (1ull << 18))

struct perm_case {
    const char *what;
    uint8_t amx_tile, amx_int8;
    uint64_t xcr0;
    int use_prctl;
    struct fake_script k;
    amxq_status want;
    enum amxq_amx_step want_step;
    int want_err;
    int want_get, want_req;
};

static void test_permission_decision(void)
{
    const uint64_t xcr0_amx = 0xe7ull | AMXQ_XCR0_AMX;
    const struct perm_case cases[] = {
        {"already granted: no request",
         1,
         1,
         xcr0_amx,
         1,
         {{0, 0}, {PERM_TILEDATA, 0}, 0},
         AMXQ_OK,
         AMXQ_AMX_STEP_GRANTED,
         0,
         1,
         0},
        {"granted on request",
         1,
         1,
         xcr0_amx,
         1,
         {{0, 0}, {PERM_NO_TILEDATA, PERM_TILEDATA}, 0},
         AMXQ_OK,
         AMXQ_AMX_STEP_GRANTED,
         0,
         2,
         1},
        {"kernel too old: GET EINVAL",
         1,
         1,
         xcr0_amx,
         1,
         {{EINVAL, 0}, {0, 0}, 0},
         AMXQ_ERR_AMX_PERMISSION,
         AMXQ_AMX_STEP_GET,
         EINVAL,
         1,
         0},
        {"seccomp: GET EPERM",
         1,
         1,
         xcr0_amx,
         1,
         {{EPERM, 0}, {0, 0}, 0},
         AMXQ_ERR_AMX_PERMISSION,
         AMXQ_AMX_STEP_GET,
         EPERM,
         1,
         0},
        {"seccomp: REQ EPERM",
         1,
         1,
         xcr0_amx,
         1,
         {{0, 0}, {PERM_NO_TILEDATA, 0}, EPERM},
         AMXQ_ERR_AMX_PERMISSION,
         AMXQ_AMX_STEP_REQ,
         EPERM,
         1,
         1},
        {"REQ refused: sigaltstack too small (ENOSPC)",
         1,
         1,
         xcr0_amx,
         1,
         {{0, 0}, {PERM_NO_TILEDATA, 0}, ENOSPC},
         AMXQ_ERR_AMX_PERMISSION,
         AMXQ_AMX_STEP_REQ,
         ENOSPC,
         1,
         1},
        {"REQ refused: EINVAL",
         1,
         1,
         xcr0_amx,
         1,
         {{0, 0}, {PERM_NO_TILEDATA, 0}, EINVAL},
         AMXQ_ERR_AMX_PERMISSION,
         AMXQ_AMX_STEP_REQ,
         EINVAL,
         1,
         1},
        {"REQ 'succeeds' but GET still lacks bit 18",
         1,
         1,
         xcr0_amx,
         1,
         {{0, 0}, {PERM_NO_TILEDATA, PERM_NO_TILEDATA}, 0},
         AMXQ_ERR_AMX_PERMISSION,
         AMXQ_AMX_STEP_CONFIRM_BIT,
         0,
         2,
         1},
        {"confirming GET fails",
         1,
         1,
         xcr0_amx,
         1,
         {{0, EFAULT}, {PERM_NO_TILEDATA, 0}, 0},
         AMXQ_ERR_AMX_PERMISSION,
         AMXQ_AMX_STEP_CONFIRM_GET,
         EFAULT,
         2,
         1},
        {"no AMX in CPUID",
         0,
         0,
         xcr0_amx,
         1,
         {{0, 0}, {PERM_TILEDATA, 0}, 0},
         AMXQ_ERR_NO_AMX,
         AMXQ_AMX_STEP_CPUID,
         0,
         0,
         0},
        {"AMX-TILE without AMX-INT8",
         1,
         0,
         xcr0_amx,
         1,
         {{0, 0}, {PERM_TILEDATA, 0}, 0},
         AMXQ_ERR_NO_AMX,
         AMXQ_AMX_STEP_CPUID,
         0,
         0,
         0},
        {"AMX-INT8 without AMX-TILE",
         0,
         1,
         xcr0_amx,
         1,
         {{0, 0}, {PERM_TILEDATA, 0}, 0},
         AMXQ_ERR_NO_AMX,
         AMXQ_AMX_STEP_CPUID,
         0,
         0,
         0},
        {"OS without tile state",
         1,
         1,
         0xe7,
         1,
         {{0, 0}, {PERM_TILEDATA, 0}, 0},
         AMXQ_ERR_AMX_OS,
         AMXQ_AMX_STEP_XCR0,
         0,
         0,
         0},
        {"OS with XTILECFG only",
         1,
         1,
         0xe7ull | (1ull << 17),
         1,
         {{0, 0}, {PERM_TILEDATA, 0}, 0},
         AMXQ_ERR_AMX_OS,
         AMXQ_AMX_STEP_XCR0,
         0,
         0,
         0},
        {"OS with XTILEDATA only",
         1,
         1,
         0xe7ull | (1ull << 18),
         1,
         {{0, 0}, {PERM_TILEDATA, 0}, 0},
         AMXQ_ERR_AMX_OS,
         AMXQ_AMX_STEP_XCR0,
         0,
         0,
         0},
        {"no arch_prctl (not Linux)",
         1,
         1,
         xcr0_amx,
         0,
         {{0, 0}, {0, 0}, 0},
         AMXQ_ERR_AMX_PERMISSION,
         AMXQ_AMX_STEP_NO_PRCTL,
         0,
         0,
         0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct perm_case *pc = &cases[i];
        amxq_cpu_info info;
        memset(&info, 0, sizeof info);
        info.amx_tile = pc->amx_tile;
        info.amx_int8 = pc->amx_int8;
        info.xcr0 = pc->xcr0;
        info.os_amx = (pc->xcr0 & AMXQ_XCR0_AMX) == AMXQ_XCR0_AMX;
        struct fake_kernel k;
        memset(&k, 0, sizeof k);
        k.s = pc->k;
        amxq_amx_result r;
        memset(&r, 0x5a, sizeof r);
        amxq_amx_decide(&info, pc->use_prctl ? fake_prctl : NULL, &k, &r);
        EXPECT(r.status == pc->want, "%s: status %s, want %s", pc->what, st_name(r.status),
               st_name(pc->want));
        EXPECT(r.step == pc->want_step, "%s: step %d, want %d", pc->what, (int)r.step,
               (int)pc->want_step);
        EXPECT(r.err == pc->want_err, "%s: err %d, want %d", pc->what, r.err, pc->want_err);
        EXPECT(k.n_get == pc->want_get, "%s: %d GET calls, want %d", pc->what, k.n_get,
               pc->want_get);
        EXPECT(k.n_req == pc->want_req, "%s: %d REQ calls, want %d", pc->what, k.n_req,
               pc->want_req);
        EXPECT(k.n_other == 0, "%s: %d calls with an unexpected code", pc->what, k.n_other);
        EXPECT(r.requested == (pc->want_req > 0), "%s: requested flag %d", pc->what,
               (int)r.requested);
        EXPECT(r.n_calls == pc->want_get + pc->want_req, "%s: n_calls %d", pc->what,
               (int)r.n_calls);
        if (pc->want_req)
            EXPECT(k.req_arg == AMXQ_XFEATURE_XTILEDATA, "%s: REQ asked for feature %lu", pc->what,
                   k.req_arg);
        if (pc->want_get && !pc->k.get_err[0])
            EXPECT(r.perm_before == pc->k.get_mask[0], "%s: perm_before 0x%llx", pc->what,
                   (unsigned long long)r.perm_before);
    }
}

/* ---- (b) ISA names -------------------------------------------------------------------------- */

static void test_isa_names(void)
{
    static const char *const names[AMXQ_ISA_COUNT] = {
        [AMXQ_ISA_AUTO] = "auto",       [AMXQ_ISA_SCALAR] = "scalar",
        [AMXQ_ISA_AVX512] = "avx512",   [AMXQ_ISA_AMX] = "amx",
        [AMXQ_ISA_AMX_EMU] = "amx-emu", [AMXQ_ISA_AVX512_EMU] = "avx512-emu",
    };
    for (int i = 0; i < AMXQ_ISA_COUNT; i++) {
        const char *n = amxq_isa_name((amxq_isa)i);
        EXPECT(n && strcmp(n, names[i]) == 0, "amxq_isa_name(%d) = %s, want %s", i, n ? n : "NULL",
               names[i]);
        amxq_isa back = (amxq_isa)-1;
        amxq_status st = amxq_isa_parse(names[i], &back);
        EXPECT(st == AMXQ_OK && back == (amxq_isa)i, "amxq_isa_parse(\"%s\") = %s, isa %d",
               names[i], st_name(st), (int)back);
    }
    EXPECT(amxq_isa_name((amxq_isa)-1) == NULL, "name of -1");
    EXPECT(amxq_isa_name((amxq_isa)AMXQ_ISA_COUNT) == NULL, "name of AMXQ_ISA_COUNT");
    EXPECT(amxq_isa_name((amxq_isa)1000) == NULL, "name of 1000");

    static const char *const bad[] = {"",         "bogus", "amx ",   " amx",    "amx-",
                                      "amx-emu2", "avx",   "avx51",  "avx512x", "scalar\n",
                                      "amx_emu",  "emu",   "auto-1", "sc"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        amxq_isa isa = AMXQ_ISA_SCALAR;
        amxq_status st = amxq_isa_parse(bad[i], &isa);
        EXPECT(st == AMXQ_ERR_ISA_UNKNOWN, "amxq_isa_parse(\"%s\") = %s, want ISA_UNKNOWN", bad[i],
               st_name(st));
    }
    amxq_isa isa;
    EXPECT(amxq_isa_parse(NULL, &isa) == AMXQ_ERR_NULL, "parse(NULL, &isa)");
    EXPECT(amxq_isa_parse("amx", NULL) == AMXQ_ERR_NULL, "parse(\"amx\", NULL)");
}

/* ---- What this machine and build can run, derived independently of amxq_isa_check() ---------- */

static int cpu_avx512_ok(const amxq_cpu_info *ci)
{
    return ci->avx512f && ci->avx512bw && ci->avx512vl && ci->avx512dq && ci->avx512vnni &&
           ci->avx2 && ci->fma && ci->f16c && ci->os_avx512;
}

static int expect_runnable(amxq_isa isa)
{
    amxq_cpu_info ci;
    amxq_cpu_info_get(&ci);
    switch (isa) {
    case AMXQ_ISA_AUTO:
    case AMXQ_ISA_SCALAR:
        return 1;
    case AMXQ_ISA_AVX512:
        return AMXQ_KERNELS_AVX512 && cpu_avx512_ok(&ci);
    case AMXQ_ISA_AVX512_EMU:
        return AMXQ_KERNELS_AVX512_EMU;
    case AMXQ_ISA_AMX:
        return AMXQ_KERNELS_AMX && cpu_avx512_ok(&ci) && amxq_request_amx_permission() == AMXQ_OK;
    case AMXQ_ISA_AMX_EMU:
        return AMXQ_KERNELS_AMX_EMU;
    default:
        return 0;
    }
}

/* ---- Small products ------------------------------------------------------------------------- */

static uint64_t rng_next(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

static float rng_unit(uint64_t *s) /* [0, 1) */
{
    return (float)(rng_next(s) >> 40) / (float)(1u << 24);
}

#define CANARY 0xa5

struct problem {
    amxq_type type;
    int64_t m, n, k, ldx, ldc;
    void *packed;
    float *x;
    float *ref; /* the scalar kernels' answer */
};

static void put_half(uint8_t *p, float v)
{
    uint16_t h = amxq_fp32_to_fp16(v);
    memcpy(p, &h, 2);
}

/* Random ggml weights with sane scales; returns 0 if the library refuses to pack them. */
static int problem_init(struct problem *p, amxq_type type, int64_t m, uint64_t seed)
{
    memset(p, 0, sizeof *p);
    p->type = type;
    p->m = m;
    p->n = 40; /* not a multiple of the panel width */
    p->k = 512;
    p->ldx = p->k + 3;
    p->ldc = p->n + 5;
    uint64_t s = seed * 0x9e3779b97f4a7c15ull + 1;

    const size_t gsize = amxq_ggml_size(type, p->n, p->k);
    const size_t bb = amxq_type_block_bytes(type);
    const int64_t nblocks = p->n * p->k / amxq_type_block(type);
    EXPECT(gsize == (size_t)nblocks * bb && gsize > 0, "ggml size of %s", amxq_type_name(type));
    uint8_t *g = malloc(gsize);
    if (!g)
        return 0;
    for (size_t i = 0; i < gsize; i++)
        g[i] = (uint8_t)rng_next(&s);
    for (int64_t b = 0; b < nblocks; b++) {
        uint8_t *blk = g + (size_t)b * bb;
        put_half(blk + (type == AMXQ_TYPE_Q6_K ? 208 : 0), 0.002f + 0.01f * rng_unit(&s)); /* d */
        if (type == AMXQ_TYPE_Q4_1 || type == AMXQ_TYPE_Q4_K || type == AMXQ_TYPE_Q5_K ||
            type == AMXQ_TYPE_Q5_1)
            put_half(blk + 2, (rng_unit(&s) - 0.5f) * 0.02f); /* m or dmin */
    }

    const size_t psize = amxq_packed_size(type, p->n, p->k);
    p->packed = psize ? aligned_alloc(AMXQ_ALIGNMENT, psize) : NULL;
    p->x = malloc(sizeof(float) * (size_t)(p->m * p->ldx));
    p->ref = malloc(sizeof(float) * (size_t)(p->m * p->ldc));
    int ok = p->packed && p->x && p->ref;
    if (ok) {
        for (int64_t i = 0; i < p->m * p->ldx; i++)
            p->x[i] = 2.0f * rng_unit(&s) - 1.0f;
        amxq_status st = amxq_pack(type, g, p->n, p->k, p->packed, psize);
        EXPECT(st == AMXQ_OK, "pack %s: %s", amxq_type_name(type), st_name(st));
        ok = st == AMXQ_OK;
    }
    if (ok) {
        amxq_matmul_params prm;
        memset(&prm, 0, sizeof prm);
        prm.isa = AMXQ_ISA_SCALAR;
        memset(p->ref, CANARY, sizeof(float) * (size_t)(p->m * p->ldc));
        amxq_status st = amxq_matmul_ex(p->packed, p->x, p->m, p->ldx, p->ref, p->ldc, &prm);
        EXPECT(st == AMXQ_OK, "scalar product %s M=%lld: %s", amxq_type_name(type), (long long)m,
               st_name(st));
        ok = st == AMXQ_OK;
    }
    free(g);
    return ok;
}

static void problem_free(struct problem *p)
{
    free(p->packed);
    free(p->x);
    free(p->ref);
}

static int all_canary(const float *c, size_t count)
{
    const unsigned char *b = (const unsigned char *)c;
    for (size_t i = 0; i < count * sizeof(float); i++)
        if (b[i] != CANARY)
            return 0;
    return 1;
}

/* Run one product (params NULL: amxq_matmul(), the process choice). If `want_ok`, expect AMXQ_OK,
 * an answer within 1e-5 L2-relative of the scalar one and the row padding untouched; otherwise
 * expect `want_err` (or AMXQ_ERR_ISA_UNSUPPORTED for a known ISA) and C untouched. */
static void check_product(const struct problem *p, const amxq_matmul_params *prm, int want_ok,
                          amxq_status want_err, const char *label)
{
    const size_t count = (size_t)(p->m * p->ldc);
    float *c = malloc(sizeof(float) * count);
    if (!c) {
        EXPECT(c != NULL, "out of memory");
        return;
    }
    memset(c, CANARY, sizeof(float) * count);
    amxq_status st = prm ? amxq_matmul_ex(p->packed, p->x, p->m, p->ldx, c, p->ldc, prm)
                         : amxq_matmul(p->packed, p->x, p->m, p->ldx, c, p->ldc);
    const char *tn = amxq_type_name(p->type);
    if (want_ok) {
        EXPECT(st == AMXQ_OK, "%s %s M=%lld: %s", label, tn, (long long)p->m, st_name(st));
        if (st == AMXQ_OK) {
            double num = 0, den = 0;
            int pad_ok = 1;
            for (int64_t i = 0; i < p->m; i++) {
                for (int64_t j = 0; j < p->n; j++) {
                    double d = (double)c[i * p->ldc + j] - (double)p->ref[i * p->ldc + j];
                    num += d * d;
                    den += (double)p->ref[i * p->ldc + j] * (double)p->ref[i * p->ldc + j];
                }
                pad_ok &= all_canary(c + i * p->ldc + p->n, (size_t)(p->ldc - p->n));
            }
            double rel = den > 0 ? sqrt(num / den) : sqrt(num);
            EXPECT(rel <= 1e-5, "%s %s M=%lld: L2-relative error %.3g vs scalar", label, tn,
                   (long long)p->m, rel);
            EXPECT(pad_ok, "%s %s M=%lld: wrote between N and ldc", label, tn, (long long)p->m);
        }
    } else {
        /* The documented refusal is ISA_UNSUPPORTED; the more precise reason that
         * amxq_isa_check() gives (NO_AMX, AMX_OS, AMX_PERMISSION) is accepted too. */
        EXPECT(st == want_err ||
                   (st == AMXQ_ERR_ISA_UNSUPPORTED && want_err != AMXQ_ERR_ISA_UNKNOWN),
               "%s %s M=%lld: %s, want %s", label, tn, (long long)p->m, st_name(st),
               st_name(want_err));
        EXPECT(all_canary(c, count), "%s %s M=%lld: C written by a failing call", label, tn,
               (long long)p->m);
    }
    free(c);
}

static const amxq_type all_types[] = {
    AMXQ_TYPE_Q4_0, AMXQ_TYPE_Q4_1,   AMXQ_TYPE_Q8_0, AMXQ_TYPE_Q4_K, AMXQ_TYPE_Q6_K,
    AMXQ_TYPE_Q5_K, AMXQ_TYPE_IQ4_XS, AMXQ_TYPE_Q5_0, AMXQ_TYPE_Q5_1, AMXQ_TYPE_IQ4_NL};
static const int64_t test_ms[] = {1, 20};

/* Every type, small and large M, with `prm` (NULL: the process choice). */
static void check_products(const amxq_matmul_params *prm, int want_ok, amxq_status want_err,
                           const char *label)
{
    for (size_t t = 0; t < sizeof all_types / sizeof all_types[0]; t++)
        for (size_t i = 0; i < sizeof test_ms / sizeof test_ms[0]; i++) {
            struct problem p;
            if (problem_init(&p, all_types[t], test_ms[i], 17 * t + i + 1))
                check_product(&p, prm, want_ok, want_err, label);
            problem_free(&p);
        }
}

/* ---- (c) AMXQ_ISA, in a child process per value --------------------------------------------- */

static int child_env(const char *value)
{
    const char *env = getenv("AMXQ_ISA");
    EXPECT(env && strcmp(env, value) == 0, "child started without AMXQ_ISA=%s", value);

    amxq_status gst = AMXQ_OK;
    amxq_isa got = amxq_get_isa(&gst); /* the first call into amxq in this process */
    amxq_isa want = AMXQ_ISA_AUTO;
    amxq_status pst = amxq_isa_parse(value, &want);
    printf("  AMXQ_ISA=%-10s get_isa -> %s (%s)\n", value,
           amxq_isa_name(got) ? amxq_isa_name(got) : "?", st_name(gst));

    if (pst != AMXQ_OK) {
        /* Names no ISA: the choice reports it and products refuse to run. */
        EXPECT(gst == AMXQ_ERR_ISA_UNKNOWN, "AMXQ_ISA=%s: get_isa status %s, want ISA_UNKNOWN",
               value, st_name(gst));
        check_products(NULL, 0, AMXQ_ERR_ISA_UNKNOWN, "AMXQ_ISA=bogus amxq_matmul");
    } else if (expect_runnable(want)) {
        EXPECT(got == want, "AMXQ_ISA=%s: get_isa %d, want %d", value, (int)got, (int)want);
        EXPECT(gst == AMXQ_OK, "AMXQ_ISA=%s: get_isa status %s", value, st_name(gst));
        /* A forced family applies to every M; AUTO picks a concrete family. */
        for (size_t t = 0; t < sizeof all_types / sizeof all_types[0]; t++)
            for (size_t i = 0; i < sizeof test_ms / sizeof test_ms[0]; i++) {
                amxq_isa r = AMXQ_ISA_AUTO;
                amxq_status rs = amxq_resolve_isa(AMXQ_ISA_AUTO, all_types[t], test_ms[i], &r);
                EXPECT(rs == AMXQ_OK, "AMXQ_ISA=%s: resolve %s", value, st_name(rs));
                if (want != AMXQ_ISA_AUTO)
                    EXPECT(r == want, "AMXQ_ISA=%s: AUTO resolves to %s", value,
                           amxq_isa_name(r) ? amxq_isa_name(r) : "?");
                else
                    EXPECT(r != AMXQ_ISA_AUTO && expect_runnable(r),
                           "AUTO resolves to %d, which cannot run", (int)r);
            }
        check_products(NULL, 1, AMXQ_OK, value);
    } else {
        /* A forced ISA this machine or build cannot run: reported, never a crash. */
        amxq_status cst = amxq_isa_check(want);
        EXPECT(cst != AMXQ_OK, "AMXQ_ISA=%s: amxq_isa_check says OK but it cannot run", value);
        EXPECT(gst != AMXQ_OK, "AMXQ_ISA=%s: get_isa status OK for an ISA that cannot run", value);
        EXPECT(got == want || got == AMXQ_ISA_AUTO, "AMXQ_ISA=%s: get_isa %d", value, (int)got);
        check_products(NULL, 0, cst, value);
    }

    /* Whatever the process choice, a per-call scalar request runs. */
    amxq_matmul_params prm;
    memset(&prm, 0, sizeof prm);
    prm.isa = AMXQ_ISA_SCALAR;
    check_products(&prm, 1, AMXQ_OK, "per-call scalar under AMXQ_ISA");
    return failures ? 1 : 0;
}

static const char *self_argv0;

/* Run this binary again with `mode` [arg], AMXQ_ISA set to `env_isa` (NULL: unset). Returns 0 if
 * the child passed. */
static int run_child(const char *mode, const char *arg, const char *env_isa)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        return -1;
    }
    if (pid == 0) {
        if (env_isa)
            setenv("AMXQ_ISA", env_isa, 1);
        else
            unsetenv("AMXQ_ISA");
        char *args[4] = {(char *)self_argv0, (char *)mode, (char *)arg, NULL};
#if AMXQ_LINUX
        execv("/proc/self/exe", args);
#endif
        execv(self_argv0, args);
        perror("execv");
        _exit(127);
    }
    int wst = 0;
    while (waitpid(pid, &wst, 0) < 0)
        if (errno != EINTR) {
            perror("waitpid");
            return -1;
        }
    if (WIFSIGNALED(wst)) {
        fprintf(stderr, "child %s %s killed by signal %d\n", mode, arg ? arg : "", WTERMSIG(wst));
        return -1;
    }
    return WIFEXITED(wst) ? WEXITSTATUS(wst) : -1;
}

static void test_env_values(void)
{
    static const char *const values[] = {"amx",    "amx-emu", "avx512", "avx512-emu",
                                         "scalar", "auto",    "bogus"};
    printf("AMXQ_ISA values (child processes):\n");
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        int rc = run_child("--child-env", values[i], values[i]);
        EXPECT(rc == 0, "child with AMXQ_ISA=%s failed (%d)", values[i], rc);
    }
}

/* ---- (d) amxq_set_isa, amxq_isa_check, per-call ISAs ---------------------------------------- */

static void test_set_isa(void)
{
    static const amxq_isa concrete[] = {AMXQ_ISA_SCALAR, AMXQ_ISA_AVX512, AMXQ_ISA_AMX,
                                        AMXQ_ISA_AMX_EMU, AMXQ_ISA_AVX512_EMU};
    amxq_status st;
    EXPECT(amxq_get_isa(&st) == AMXQ_ISA_AUTO && st == AMXQ_OK,
           "AMXQ_ISA unset: choice not AUTO/OK (%s)", st_name(st));

    /* amxq_isa_check agrees with what this machine and build offer. */
    printf("ISA checks:\n");
    int n_unsupported = 0;
    for (size_t i = 0; i < sizeof concrete / sizeof concrete[0]; i++) {
        amxq_status cst = amxq_isa_check(concrete[i]);
        int want = expect_runnable(concrete[i]);
        printf("  %-11s %s (expected %s)\n", amxq_isa_name(concrete[i]), st_name(cst),
               want ? "runnable" : "not runnable");
        EXPECT((cst == AMXQ_OK) == want, "amxq_isa_check(%s) = %s", amxq_isa_name(concrete[i]),
               st_name(cst));
        n_unsupported += cst != AMXQ_OK;
        amxq_status why = AMXQ_OK;
        const struct amxq_kernels *k = amxq_kernels_get(concrete[i], &why);
        EXPECT((k != NULL) == want, "amxq_kernels_get(%s) = %p (%s)", amxq_isa_name(concrete[i]),
               (const void *)k, st_name(why));
    }
    if (!expect_runnable(AMXQ_ISA_AMX)) {
        amxq_cpu_info ci;
        amxq_cpu_info_get(&ci);
        amxq_status cst = amxq_isa_check(AMXQ_ISA_AMX);
        /* Without AMX usable, the check names the reason when it lies in the CPU or OS. */
        if (!ci.amx_tile || !ci.amx_int8)
            EXPECT(cst == AMXQ_ERR_NO_AMX, "check(amx) without AMX: %s", st_name(cst));
        else if (!ci.os_amx)
            EXPECT(cst == AMXQ_ERR_AMX_OS, "check(amx) without OS tile state: %s", st_name(cst));
    }
    EXPECT(amxq_isa_check((amxq_isa)AMXQ_ISA_COUNT) == AMXQ_ERR_ISA_UNKNOWN, "check(COUNT)");
    EXPECT(amxq_isa_check((amxq_isa)-1) == AMXQ_ERR_ISA_UNKNOWN, "check(-1)");

    /* set_isa: a failing choice leaves the previous one in place. */
    EXPECT(amxq_set_isa(AMXQ_ISA_SCALAR) == AMXQ_OK, "set_isa(scalar)");
    EXPECT(amxq_get_isa(&st) == AMXQ_ISA_SCALAR && st == AMXQ_OK, "get_isa after scalar");
    for (size_t i = 0; i < sizeof concrete / sizeof concrete[0]; i++) {
        amxq_status cst = amxq_isa_check(concrete[i]);
        if (cst == AMXQ_OK)
            continue;
        amxq_status sst = amxq_set_isa(concrete[i]);
        EXPECT(sst == cst, "set_isa(%s) = %s, check says %s", amxq_isa_name(concrete[i]),
               st_name(sst), st_name(cst));
        EXPECT(amxq_get_isa(&st) == AMXQ_ISA_SCALAR && st == AMXQ_OK,
               "set_isa(%s) failed but changed the choice", amxq_isa_name(concrete[i]));
    }
    if (!n_unsupported)
        printf("  every ISA runs here: set_isa refusal checked with unknown values only\n");
    EXPECT(amxq_set_isa((amxq_isa)99) == AMXQ_ERR_ISA_UNKNOWN, "set_isa(99)");
    EXPECT(amxq_set_isa((amxq_isa)-3) == AMXQ_ERR_ISA_UNKNOWN, "set_isa(-3)");
    EXPECT(amxq_get_isa(&st) == AMXQ_ISA_SCALAR && st == AMXQ_OK, "unknown set changed choice");
    EXPECT(amxq_get_isa(NULL) == AMXQ_ISA_SCALAR, "get_isa(NULL)");

    /* Every runnable ISA, forced via set_isa, gives the scalar answer. */
    for (size_t i = 0; i < sizeof concrete / sizeof concrete[0]; i++) {
        if (amxq_isa_check(concrete[i]) != AMXQ_OK)
            continue;
        EXPECT(amxq_set_isa(concrete[i]) == AMXQ_OK, "set_isa(%s)", amxq_isa_name(concrete[i]));
        check_products(NULL, 1, AMXQ_OK, amxq_isa_name(concrete[i]));
    }
    EXPECT(amxq_set_isa(AMXQ_ISA_AUTO) == AMXQ_OK, "set_isa(auto)");
    EXPECT(amxq_get_isa(&st) == AMXQ_ISA_AUTO && st == AMXQ_OK, "get_isa after auto");

    /* Per-call ISAs: runnable ones match scalar, the rest refuse without touching C. */
    amxq_matmul_params prm;
    memset(&prm, 0, sizeof prm);
    for (int i = 0; i < AMXQ_ISA_COUNT; i++) {
        prm.isa = (amxq_isa)i;
        char label[64];
        snprintf(label, sizeof label, "per-call %s", amxq_isa_name((amxq_isa)i));
        int want = expect_runnable((amxq_isa)i);
        check_products(&prm, want, want ? AMXQ_OK : amxq_isa_check((amxq_isa)i), label);
    }
    prm.isa = (amxq_isa)42;
    check_products(&prm, 0, AMXQ_ERR_ISA_UNKNOWN, "per-call isa 42");
}

/* ---- (e) detection and the real permission request ------------------------------------------ */

#if AMXQ_LINUX
/* Whether /proc/cpuinfo's first "flags" line lists `flag`; -1 if it cannot be read. */
static int proc_flag(const char *flag)
{
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f)
        return -1;
    static char line[8192];
    int found = -1;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "flags", 5) != 0)
            continue;
        found = 0;
        size_t fl = strlen(flag);
        for (char *p = strchr(line, ':'); p && *p; p++) {
            if ((p[-1] == ' ' || p[-1] == ':') && strncmp(p, flag, fl) == 0 &&
                (p[fl] == ' ' || p[fl] == '\n' || p[fl] == '\0')) {
                found = 1;
                break;
            }
        }
        break;
    }
    fclose(f);
    return found;
}
#endif

static void test_detection(void)
{
    amxq_cpu_info ci;
    memset(&ci, 0, sizeof ci);
    EXPECT(amxq_cpu_info_get(NULL) == AMXQ_ERR_NULL, "cpu_info_get(NULL)");
    EXPECT(amxq_cpu_info_get(&ci) == AMXQ_OK, "cpu_info_get");
    EXPECT(memchr(ci.vendor, '\0', sizeof ci.vendor) != NULL, "vendor not terminated");
    EXPECT(memchr(ci.brand, '\0', sizeof ci.brand) != NULL, "brand not terminated");
    printf("CPU: %s, %s, family %u model %u stepping %u, XCR0 0x%llx\n", ci.vendor, ci.brand,
           (unsigned)ci.family, (unsigned)ci.model, (unsigned)ci.stepping,
           (unsigned long long)ci.xcr0);
    EXPECT(amxq_cpu_has_avx512() == cpu_avx512_ok(&ci), "has_avx512 disagrees with the fields");
    EXPECT(ci.os_avx == ((ci.xcr0 & 6) == 6), "os_avx vs XCR0");
    EXPECT(ci.os_avx512 == ((ci.xcr0 & 0xe6) == 0xe6), "os_avx512 vs XCR0");
    EXPECT(ci.os_amx == ((ci.xcr0 & 0x60000) == 0x60000), "os_amx vs XCR0");
    EXPECT(ci.build_avx512 == AMXQ_KERNELS_AVX512, "build_avx512");
    EXPECT(ci.build_amx == AMXQ_KERNELS_AMX, "build_amx");
    EXPECT(ci.build_emu == (AMXQ_KERNELS_AMX_EMU || AMXQ_KERNELS_AVX512_EMU), "build_emu");
    if (ci.amx_tile)
        EXPECT(ci.amx_max_tiles >= 8 && ci.amx_max_rows >= 16 && ci.amx_max_bytes_per_row >= 64,
               "AMX palette %u tiles %u rows %u bytes", (unsigned)ci.amx_max_tiles,
               (unsigned)ci.amx_max_rows, (unsigned)ci.amx_max_bytes_per_row);
    else
        EXPECT(!ci.amx_max_tiles && !ci.amx_max_rows && !ci.amx_max_bytes_per_row &&
                   !ci.amx_tmul_maxk && !ci.amx_tmul_maxn,
               "palette reported without AMX-TILE");
    EXPECT(amxq_cpu_detect()->amx_int8 == ci.amx_int8, "detect vs info");

#if HAVE_CPUID
    /* Raw CPUID, read here independently of cpu.c. */
    unsigned a, b, c, d;
    __cpuid(0, a, b, c, d);
    EXPECT(ci.vendor[0] != '\0', "empty vendor on x86");
    if (a >= 7) {
        __cpuid_count(7, 0, a, b, c, d);
        EXPECT(ci.avx2 == ((b >> 5) & 1), "avx2");
        EXPECT(ci.avx512f == ((b >> 16) & 1), "avx512f");
        EXPECT(ci.avx512bw == ((b >> 30) & 1), "avx512bw");
        EXPECT(ci.avx512vnni == ((c >> 11) & 1), "avx512vnni");
        /* Under amxtrap the test-only library reports AMX that CPUID does not have. */
        if (!amxq_test_amx_faked()) {
            EXPECT(ci.amx_tile == ((d >> 24) & 1), "amx_tile");
            EXPECT(ci.amx_int8 == ((d >> 25) & 1), "amx_int8");
        }
        EXPECT(ci.amx_bf16 == ((d >> 22) & 1), "amx_bf16");
    }
    __cpuid(1, a, b, c, d);
    EXPECT(ci.fma == ((c >> 12) & 1) && ci.f16c == ((c >> 29) & 1), "fma/f16c");
    if (!((c >> 27) & 1))
        EXPECT(ci.xcr0 == 0, "XCR0 read without OSXSAVE");
#endif
#if AMXQ_LINUX
    /* The kernel lists a flag only when the CPU has it, so a listed flag must be detected. */
    static const struct {
        const char *flag;
        size_t off;
    } flags[] = {
        {"avx2", offsetof(amxq_cpu_info, avx2)},
        {"fma", offsetof(amxq_cpu_info, fma)},
        {"f16c", offsetof(amxq_cpu_info, f16c)},
        {"avx512f", offsetof(amxq_cpu_info, avx512f)},
        {"avx512bw", offsetof(amxq_cpu_info, avx512bw)},
        {"avx512vl", offsetof(amxq_cpu_info, avx512vl)},
        {"avx512dq", offsetof(amxq_cpu_info, avx512dq)},
        {"avx512_vnni", offsetof(amxq_cpu_info, avx512vnni)},
        {"avx512vbmi", offsetof(amxq_cpu_info, avx512vbmi)},
        {"avx512_bf16", offsetof(amxq_cpu_info, avx512bf16)},
        {"avx_vnni", offsetof(amxq_cpu_info, avx_vnni)},
        {"amx_tile", offsetof(amxq_cpu_info, amx_tile)},
        {"amx_int8", offsetof(amxq_cpu_info, amx_int8)},
        {"amx_bf16", offsetof(amxq_cpu_info, amx_bf16)},
    };
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++) {
        int listed = proc_flag(flags[i].flag);
        uint8_t have = ((const uint8_t *)&ci)[flags[i].off];
        if (listed == 1)
            EXPECT(have == 1, "/proc/cpuinfo lists %s but amxq does not detect it", flags[i].flag);
    }
#endif
}

/* In a fresh process: nothing requested before the call; the answer follows CPUID and XCR0;
 * it is cached. */
static int child_perm(void)
{
    amxq_cpu_info before, after;
    EXPECT(amxq_cpu_info_get(&before) == AMXQ_OK, "cpu_info_get");
    EXPECT(!before.amx_permission_requested, "permission requested before asking");
    EXPECT(!amxq_amx_requested(), "amxq_amx_requested() before asking");
    amxq_amx_result r;
    EXPECT(amxq_amx_result_get(&r) == 0, "result available before asking");

    int hw = before.amx_tile && before.amx_int8;
    amxq_status st = amxq_request_amx_permission();
    printf("  amxq_request_amx_permission() = %s (amx-tile %d, amx-int8 %d, XCR0 tile bits "
           "%d%d)\n",
           st_name(st), before.amx_tile, before.amx_int8, (int)((before.xcr0 >> 17) & 1),
           (int)((before.xcr0 >> 18) & 1));
    if (!hw) {
        EXPECT(st == AMXQ_ERR_NO_AMX, "no AMX in CPUID but %s", st_name(st));
        EXPECT(before.amx_status == AMXQ_ERR_NO_AMX, "pre-request status %s",
               st_name(before.amx_status));
    } else if (!before.os_amx) {
        EXPECT(st == AMXQ_ERR_AMX_OS, "no tile state in XCR0 but %s", st_name(st));
        EXPECT(before.amx_status == AMXQ_ERR_AMX_OS, "pre-request status %s",
               st_name(before.amx_status));
    } else {
        /* Hardware and OS allow it; the kernel may still refuse (seccomp, sigaltstack). */
        EXPECT(st == AMXQ_OK || st == AMXQ_ERR_AMX_PERMISSION, "AMX present: %s", st_name(st));
    }
    EXPECT(amxq_request_amx_permission() == st, "second request differs");
    EXPECT(amxq_amx_status() == st, "amxq_amx_status differs");
    EXPECT(amxq_amx_requested(), "amxq_amx_requested() after asking");
    EXPECT(amxq_amx_result_get(&r) == 1 && r.status == st, "cached result");
    EXPECT(amxq_cpu_info_get(&after) == AMXQ_OK, "cpu_info_get");
    EXPECT(after.amx_permission_requested == 1, "requested flag after asking");
    EXPECT(after.amx_status == st, "info amx_status %s vs %s", st_name(after.amx_status),
           st_name(st));
    if (!after.amx_int8)
        EXPECT(st == AMXQ_ERR_NO_AMX, "this machine has no AMX-INT8: want NO_AMX");
    return failures ? 1 : 0;
}

#define N_THREADS 8

static void *perm_thread(void *arg)
{
    *(amxq_status *)arg = amxq_request_amx_permission();
    return NULL;
}

/* In a fresh process: racing first requests all get the same answer. */
static int child_threads(void)
{
    pthread_t th[N_THREADS];
    amxq_status st[N_THREADS];
    int started = 0;
    for (int i = 0; i < N_THREADS; i++)
        if (pthread_create(&th[i], NULL, perm_thread, &st[i]) == 0)
            started++;
        else
            break;
    for (int i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    EXPECT(started > 1, "could not start threads");
    for (int i = 1; i < started; i++)
        EXPECT(st[i] == st[0], "thread %d got %s, thread 0 %s", i, st_name(st[i]), st_name(st[0]));
    if (started)
        EXPECT(amxq_request_amx_permission() == st[0], "cached answer differs");
    return failures ? 1 : 0;
}

int main(int argc, char **argv)
{
    self_argv0 = argv[0];
    if (argc >= 3 && strcmp(argv[1], "--child-env") == 0)
        return child_env(argv[2]);
    if (argc >= 2 && strcmp(argv[1], "--child-perm") == 0)
        return child_perm();
    if (argc >= 2 && strcmp(argv[1], "--child-threads") == 0)
        return child_threads();

    unsetenv("AMXQ_ISA"); /* before the first call into amxq: this process tests AUTO */

    printf("(e) permission request in a fresh process:\n");
    EXPECT(run_child("--child-perm", NULL, NULL) == 0, "permission child failed");
    EXPECT(run_child("--child-threads", NULL, NULL) == 0, "threads child failed");
    test_permission_decision();
    test_isa_names();
    test_detection();
    test_set_isa();
    test_env_values();

    if (failures) {
        fprintf(stderr, "test_isa: %d failure(s)\n", failures);
        return 1;
    }
    printf("test_isa: all passed\n");
    return 0;
}
