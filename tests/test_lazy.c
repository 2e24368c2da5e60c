/*
 * Lazy, per-family start-up (docs/design.md §3, §5): a kernel family's table is built and
 * self-tested the first time a product resolves to it, and tile permission is requested only
 * when an AMX product is about to run or the caller asks for it. A process that runs only scalar
 * or AVX-512 products never calls arch_prctl and never builds the AMX table (so it never
 * executes a tile instruction).
 *
 * Each scenario runs in a fresh child process (the state is per process). Detection is made to
 * report an AMX CPU (the test-only library's hook), and arch_prctl is replaced by a counting fake
 * that refuses the request, so the permission logic runs exactly as on an AMX machine while no
 * tile instruction can ever run here.
 */
#define _POSIX_C_SOURCE 200809L /* unsetenv, fork */

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "amxq.h"
#include "common/testutil.h"
#include "dispatch/amx_permission.h"
#include "dispatch/cpu.h"
#include "dispatch/test_hooks.h"
#include "internal.h"
#include "pack/pack.h"

#define N 40
#define K 256

/* arch_prctl as a kernel that has tile state but refuses to grant it (e.g. a seccomp filter or a
 * small sigaltstack), counting the calls. */
static int n_calls;

static int refusing_prctl(void *user, int code, unsigned long arg)
{
    (void)user;
    n_calls++;
    if (code == AMXQ_ARCH_GET_XCOMP_PERM) {
        *(uint64_t *)(uintptr_t)arg = 1ull << AMXQ_XFEATURE_XTILECFG;
        return 0;
    }
    return ENOSPC;
}

static const amxq_type types[] = {AMXQ_TYPE_Q4_0, AMXQ_TYPE_Q4_1,  AMXQ_TYPE_Q8_0,   AMXQ_TYPE_Q4_K,
                                  AMXQ_TYPE_Q6_K, AMXQ_TYPE_Q5_K,  AMXQ_TYPE_IQ4_XS, AMXQ_TYPE_Q5_0,
                                  AMXQ_TYPE_Q5_1, AMXQ_TYPE_IQ4_NL};

/* One product of every type with M rows through `isa`; all must succeed. */
static void products(amxq_isa isa, int64_t m)
{
    uint64_t seed = 7;
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        const amxq_type t = types[i];
        const size_t gsz = amxq_ggml_size(t, N, K), psz = amxq_packed_size(t, N, K);
        uint8_t *g = malloc(gsz);
        void *w = aligned_alloc(AMXQ_ALIGNMENT, psz);
        float *x = malloc(sizeof(float) * (size_t)(m * K));
        float *c = malloc(sizeof(float) * (size_t)(m * N));
        if (!g || !w || !x || !c) {
            fprintf(stderr, "out of memory\n");
            exit(2);
        }
        tu_fill_bytes(&seed, g, gsz);
        const size_t bb = amxq_type_block_bytes(t);
        size_t off[2];
        const size_t nf = amxq_ggml_fp16_fields(t, off);
        for (size_t b = 0; b < gsz / bb; b++) { /* finite, small scales */
            const uint16_t d = 0x2000;
            for (size_t f = 0; f < nf; f++)
                memcpy(g + b * bb + off[f], &d, 2);
        }
        for (int64_t j = 0; j < m * K; j++)
            x[j] = tu_randf(&seed);
        TU_CHECK(amxq_pack(t, g, N, K, w, psz) == AMXQ_OK, "pack %s", amxq_type_name(t));
        amxq_matmul_params prm = {isa, 0, NULL, 0};
        const amxq_status st = amxq_matmul_ex(w, x, m, K, c, N, &prm);
        TU_CHECK(st == AMXQ_OK, "%s product, M = %lld, isa %s: %s", amxq_type_name(t), (long long)m,
                 amxq_isa_name(isa), amxq_status_str(st));
        free(g);
        free(w);
        free(x);
        free(c);
    }
}

static void expect_built(const char *when, int scalar, int avx512, int amx)
{
    TU_CHECK(amxq_kernels_built(AMXQ_ISA_SCALAR) == scalar, "%s: scalar table built %d", when,
             amxq_kernels_built(AMXQ_ISA_SCALAR));
    TU_CHECK(amxq_kernels_built(AMXQ_ISA_AVX512) == avx512, "%s: avx512 table built %d", when,
             amxq_kernels_built(AMXQ_ISA_AVX512));
    TU_CHECK(amxq_kernels_built(AMXQ_ISA_AMX) == amx, "%s: amx table built %d", when,
             amxq_kernels_built(AMXQ_ISA_AMX));
    TU_CHECK(!amxq_kernels_built(AMXQ_ISA_AMX_EMU) && !amxq_kernels_built(AMXQ_ISA_AVX512_EMU),
             "%s: an emulated table was built", when);
}

/* Scalar and AVX-512 products, and AUTO below the AMX threshold: no arch_prctl, no AMX table. */
static int scenario_no_amx_products(void)
{
    amxq_test_fake_amx_cpuid();
    amxq_test_set_arch_prctl(refusing_prctl, NULL);
    const int avx512 = amxq_cpu_has_avx512();
    expect_built("at start", 0, 0, 0);

    products(AMXQ_ISA_SCALAR, 3);
    expect_built("after scalar products", 1, 0, 0);
    if (avx512) {
        products(AMXQ_ISA_AVX512, 3);
        expect_built("after avx512 products", 1, 1, 0);
    }
    products(AMXQ_ISA_AUTO, 1); /* below every AMX threshold: VNNI or scalar */
    TU_CHECK(n_calls == 0, "arch_prctl called %d times by non-AMX products", n_calls);
    TU_CHECK(!amxq_amx_requested(), "permission requested by non-AMX products");
    expect_built("after AUTO M = 1", 1, avx512, 0);

    /* Queries that must not ask either. */
    amxq_isa r;
    TU_CHECK(amxq_resolve_isa(AMXQ_ISA_AUTO, AMXQ_TYPE_Q4_0, 1, &r) == AMXQ_OK, "resolve");
    TU_CHECK(amxq_tile_release() == AMXQ_OK, "tile_release");
    TU_CHECK(n_calls == 0, "arch_prctl called %d times by resolve/tile_release", n_calls);
    TU_CHECK(!amxq_kernels_built(AMXQ_ISA_AMX), "AMX table built by a query");
    return tu_finish("lazy: scalar/avx512 only");
}

/* AUTO at a large M chooses AMX: the permission is requested then (and refused here), once;
 * the product falls back to the next family and still succeeds. */
static int scenario_auto_large_m(void)
{
    amxq_test_fake_amx_cpuid();
    amxq_test_set_arch_prctl(refusing_prctl, NULL);
    const int avx512 = amxq_cpu_has_avx512();
    products(AMXQ_ISA_AUTO, 1);
    TU_CHECK(n_calls == 0, "arch_prctl called %d times before an AMX-sized product", n_calls);
    products(AMXQ_ISA_AUTO, 64);
    if (avx512) {
        /* GET (tile data missing), REQ (refused); cached from then on. */
        TU_CHECK(n_calls == 2, "arch_prctl called %d times, want GET + REQ", n_calls);
        TU_CHECK(amxq_amx_requested(), "AMX-sized AUTO product did not request permission");
        TU_CHECK(amxq_isa_check(AMXQ_ISA_AMX) == AMXQ_ERR_AMX_PERMISSION, "amx check: %s",
                 amxq_status_str(amxq_isa_check(AMXQ_ISA_AMX)));
    } else {
        /* The AMX kernels need AVX-512: without it there is nothing to ask for. */
        TU_CHECK(n_calls == 0, "arch_prctl called %d times on a CPU without AVX-512", n_calls);
    }
    products(AMXQ_ISA_AUTO, 64);
    TU_CHECK(n_calls == (avx512 ? 2 : 0), "the refusal was not cached: %d calls", n_calls);
    return tu_finish("lazy: AUTO at large M");
}

/* The caller asks explicitly. */
static int scenario_explicit_request(void)
{
    amxq_test_fake_amx_cpuid();
    amxq_test_set_arch_prctl(refusing_prctl, NULL);
    TU_CHECK(amxq_request_amx_permission() == AMXQ_ERR_AMX_PERMISSION, "explicit request");
    TU_CHECK(n_calls == 2, "explicit request made %d arch_prctl calls, want 2", n_calls);
    TU_CHECK(!amxq_kernels_built(AMXQ_ISA_AMX), "explicit request built the AMX table");
    return tu_finish("lazy: explicit request");
}

/* No fakes: a process whose products are forced scalar asks the real kernel nothing either. */
static int scenario_real_scalar(void)
{
    products(AMXQ_ISA_SCALAR, 5);
    TU_CHECK(!amxq_amx_requested(), "scalar products requested AMX permission");
    expect_built("real, scalar only", 1, 0, 0);
    return tu_finish("lazy: real detection, scalar only");
}

static int run(int (*fn)(void))
{
    fflush(NULL);
    const pid_t pid = fork();
    if (pid == 0)
        _exit(fn());
    int status = 0;
    if (pid < 0 || waitpid(pid, &status, 0) != pid)
        return 1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}

int main(void)
{
    /* This test decides which families run; an inherited AMXQ_ISA would change that. */
    unsetenv("AMXQ_ISA");
    int failed = 0;
    failed += run(scenario_no_amx_products) != 0;
    failed += run(scenario_auto_large_m) != 0;
    failed += run(scenario_explicit_request) != 0;
    failed += run(scenario_real_scalar) != 0;
    printf("test_lazy: %d of 4 scenarios failed\n", failed);
    return failed ? 1 : 0;
}
