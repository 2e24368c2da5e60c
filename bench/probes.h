/*
 * probes.h — in-process peak probes for the benchmark harness (bench/amxq_bench.cpp).
 *
 * The harness states every result as a fraction of what this CPU can do, so it measures the
 * ceilings itself at start-up instead of trusting data sheets:
 *   - compute: a loop of independent `vpdpbusd` (AVX-512 VNNI) or `tdpbssd` (AMX-INT8) with no
 *     memory traffic, on one core;
 *   - memory: a streaming read of a buffer several times the last-level cache, on 1..N threads.
 *
 * Invariants: the ISA probes live in their own files built with that ISA's flags and must only be
 * called after the caller has checked the CPU (and, for AMX, obtained the tile permission):
 * calling them elsewhere raises SIGILL. A probe is only linked where meson built it (the harness
 * sees AMXQ_BENCH_PROBE_VNNI / AMXQ_BENCH_PROBE_AMX); elsewhere it is never referenced.
 * kernel_names.c answers what the kernel table holds, for labels.
 */
#ifndef AMXQ_BENCH_PROBES_H
#define AMXQ_BENCH_PROBES_H

#include <stddef.h>

#include "amxq.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Peak int8 ops a second (2 per multiply-accumulate) of `vpdpbusd zmm` on the calling thread,
 * best of `reps` timed runs. Needs AVX-512F + AVX-512 VNNI with the OS's ZMM state enabled. */
double amxq_bench_probe_vnni_ops(int reps);

/* Peak int8 ops a second of `tdpbssd` on the calling thread with four independent 16x16 int32
 * accumulators and A/B tiles of depth `k`: 32 (the kernels' tiles, 16x32-byte A, 8x64-byte B) or
 * 64 (full 16x64-byte tiles); best of `reps` runs; 0 for another k. Needs AMX-TILE + AMX-INT8 and
 * amxq_request_amx_permission() == AMXQ_OK. Configures the tiles itself and releases them before
 * returning. */
double amxq_bench_probe_amx_ops(int reps, int k);

/* Streaming-read bandwidth in bytes a second over `bytes` (rounded down to whole 4 KiB pages) of
 * freshly allocated memory with `threads` threads, best of `reps` passes; 0 on failure (memory or
 * thread creation). */
double amxq_bench_probe_mem_read(size_t bytes, int threads, int reps);

/* Seconds of a monotonic clock. */
double amxq_bench_now(void);

/* Name of the gemm kernel the `isa` table runs for `type` (e.g. "amxq_gemm_q4_0_ref"), "?" when
 * the table or slot is missing. `isa` must be a concrete family, not AUTO. */
const char *amxq_bench_kernel_name(amxq_isa isa, amxq_type type);

#ifdef __cplusplus
}
#endif

#endif /* AMXQ_BENCH_PROBES_H */
