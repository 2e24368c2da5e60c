/*
 * Start-up self-test of a kernel table (src/dispatch/selftest.c).
 */
#ifndef AMXQ_DISPATCH_SELFTEST_H
#define AMXQ_DISPATCH_SELFTEST_H

#include "internal.h"

/* Run every quantize and gemm slot of `t` once, per type, on a small fixed product (17 rows of X,
 * 17 rows of W: a ragged row block and a ragged panel) and compare with the reference kernels:
 * quantized activations bit for bit, C to an L2-relative 1e-5. AMXQ_OK or AMXQ_ERR_SELFTEST.
 * Not thread safe (static buffers): called once per table, under the tables' pthread_once, and by
 * tests. Releases tiles afterwards when the table has a tile_release. */
amxq_status amxq_kernels_selftest(const struct amxq_kernels *t);

#endif /* AMXQ_DISPATCH_SELFTEST_H */
