/*
 * probe_vnni.c — peak of `vpdpbusd zmm` on one core (see probes.h).
 *
 * Built with the top-level avx512_flags only; never call it on a CPU without AVX-512 VNNI (the
 * harness checks amxq_cpu_info first). The loop is written in assembly so that it holds exactly
 * twelve independent accumulator chains and nothing else (compiled intrinsics added register
 * moves between them): twelve chains hide the instruction's latency (about 5 cycles at up to two
 * a cycle on Intel cores), and the operands stay in registers, so the loop measures the execution
 * ports, not memory. It ends with vzeroupper, as compiled AVX-512 code does.
 */
#include "probes.h"

#include <stdint.h>

#define VNNI_ACC   12
#define VNNI_ITERS 2000000L

#define VNNI_STEP(acc) "vpdpbusd %%zmm13, %%zmm12, %%zmm" #acc "\n\t"

double amxq_bench_probe_vnni_ops(int reps)
{
    double best = 0.0;
    for (int r = 0; r < reps; r++) {
        long n = VNNI_ITERS;
        double t0 = amxq_bench_now();
        /* clang-format off */
        __asm__ volatile("vpternlogd $0xff, %%zmm12, %%zmm12, %%zmm12\n\t"
                         "vmovdqa64 %%zmm12, %%zmm13\n\t"
                         "vpxord %%zmm0, %%zmm0, %%zmm0\n\t"
                         "vmovdqa64 %%zmm0, %%zmm1\n\t"
                         "vmovdqa64 %%zmm0, %%zmm2\n\t"
                         "vmovdqa64 %%zmm0, %%zmm3\n\t"
                         "vmovdqa64 %%zmm0, %%zmm4\n\t"
                         "vmovdqa64 %%zmm0, %%zmm5\n\t"
                         "vmovdqa64 %%zmm0, %%zmm6\n\t"
                         "vmovdqa64 %%zmm0, %%zmm7\n\t"
                         "vmovdqa64 %%zmm0, %%zmm8\n\t"
                         "vmovdqa64 %%zmm0, %%zmm9\n\t"
                         "vmovdqa64 %%zmm0, %%zmm10\n\t"
                         "vmovdqa64 %%zmm0, %%zmm11\n\t"
                         "1:\n\t"
                         VNNI_STEP(0) VNNI_STEP(1) VNNI_STEP(2) VNNI_STEP(3)
                         VNNI_STEP(4) VNNI_STEP(5) VNNI_STEP(6) VNNI_STEP(7)
                         VNNI_STEP(8) VNNI_STEP(9) VNNI_STEP(10) VNNI_STEP(11)
                         "dec %0\n\t"
                         "jnz 1b\n\t"
                         "vzeroupper\n\t"
                         : "+r"(n)
                         :
                         : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8",
                           "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "cc");
        /* clang-format on */
        double t = amxq_bench_now() - t0;
        /* 64 multiply-accumulates (16 lanes x 4 bytes) per instruction, 2 ops each. */
        double ops = (double)VNNI_ITERS * VNNI_ACC * 64.0 * 2.0;
        if (t > 0 && ops / t > best)
            best = ops / t;
    }
    return best;
}
