/*
 * amxq's checkasm-style driver (STYLE.md): every kernel slot of every kernel table that can run
 * here is compared with the scalar reference on seeded data, through the table directly and
 * through the public entry point, with guard bytes around every output. Shared declarations of
 * the driver (checkasm.c) and the two families it checks (quantize.c, gemm.c).
 */
#ifndef AMXQ_CHECKASM_H
#define AMXQ_CHECKASM_H

#include <stddef.h>
#include <stdint.h>

#include "internal.h"

/* Tolerance of docs/design.md §1: kernels agree with the reference to this L2-relative error. */
#define CA_GEMM_TOL 1e-6
/* Per output column (weight row), with a floor: see gemm.c. */
#define CA_GEMM_COL_TOL 1e-5

/* Byte that fills every guard and every output element before a call. */
#define CA_CANARY 0xA5

/* Data classes: what the seeded inputs look like. */
enum ca_class {
    CA_NORMAL,  /* golden-like data with sprinkled zero/large/subnormal scales and zero blocks */
    CA_ZERO,    /* mostly zero scales, zero blocks, zero rows */
    CA_EXTREME, /* fp16 scales at the ends of the range (65504, subnormal), wide activation range */
    CA_OUTLIER, /* every activation row has a large outlier; one weight row per panel 64x larger */
    CA_SPECIAL, /* quantizers only: NaN, Inf, exact ties, subnormal and huge inputs */
    CA_NCLASSES
};

/* One test case: shape and data, shared by every ISA. */
struct ca_case {
    int index;
    amxq_type type;
    int ti;
    int64_t m, n, k;
    int64_t ldx, ldc;
    enum ca_class cls;
    uint64_t seed;
    /* inputs */
    float *x;      /* m rows, stride ldx */
    float *x_copy; /* to prove nothing writes the activations */
    void *packed;  /* amxq_pack() of the ggml weights (NULL for CA_SPECIAL) */
    size_t packed_size;
    uint8_t *packed_copy; /* to prove nothing writes the weights */
    amxq_layout lo;
    /* the reference's answers */
    void *ws_ref;
    size_t ws_size;
    amxq_qx qx_ref;
    float *c_ref; /* m x n, dense */
};

/* The table under test and where failures are reported. */
struct ca_ctx {
    amxq_isa isa;
    const char *isa_name;
    const struct amxq_kernels *t;
    int verbose;
    int quiet;     /* count failures without printing them (--selftest) */
    int no_public; /* skip the amxq_matmul_ex() path (--selftest: the table is not registered) */
    long failures;
    long checks;
};

/* A 64-byte aligned buffer with CA_GUARD guard bytes each side, everything CA_CANARY. */
#define CA_GUARD 256
typedef struct {
    uint8_t *base;
    uint8_t *p;
    size_t size;
} ca_buf;

ca_buf ca_buf_new(size_t size);
void ca_buf_free(ca_buf *b);
/* Offset (from p) of the first damaged guard byte, or 0 if both guards are intact (a damaged byte
 * before p gives a negative offset, after it an offset >= size). *bad receives 1 if damaged. */
ptrdiff_t ca_buf_guard(const ca_buf *b, int *bad);

/* Report a failure of `kernel` on case `cs` (printf-style message); counts it. */
void ca_fail(struct ca_ctx *ctx, const struct ca_case *cs, const char *kernel, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;

const char *ca_class_name(enum ca_class cls);

/* The families. Each returns the number of failures it reported. */
long ca_check_quantize(struct ca_ctx *ctx, const struct ca_case *cs);
long ca_check_gemm(struct ca_ctx *ctx, const struct ca_case *cs);

#endif /* AMXQ_CHECKASM_H */
