/*
 * Internal contracts shared by every part of the library: the quant-type list, the ggml block
 * structs, the packed layout, the quantized-activation workspace, the kernel table and the
 * argument-check macros. Nothing here is installed.
 *
 * Invariants the kernels may rely on (checked at the entry points, src/amxq.c):
 *   - a packed buffer reached a kernel only after its header was validated, so the layout struct
 *     matches the bytes;
 *   - 1 <= m, n, k < 2^31, k a multiple of the type's block; strides are >= a row;
 *   - the activation workspace holds rows [0, m) quantized for this weight type.
 */
#ifndef AMXQ_INTERNAL_H
#define AMXQ_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "amxq.h"
#include "amxq_config.h"

/* Set (to 1) only when compiling the test-only library (src/meson.build): it adds the emulated
 * kernel families and the test hooks (src/dispatch/test_hooks.h). The installed library is built
 * without it and contains none of that code (docs/design.md §3). */
#ifndef AMXQ_TEST_BUILD
#define AMXQ_TEST_BUILD 0
#endif
#define AMXQ_WITH_EMU_AMX    (AMXQ_TEST_BUILD && AMXQ_KERNELS_AMX_EMU)
#define AMXQ_WITH_EMU_AVX512 (AMXQ_TEST_BUILD && AMXQ_KERNELS_AVX512_EMU)

/* ---- Quant types ---------------------------------------------------------------------------- */

/* X(TYPE, name, weights per ggml block, bytes per ggml block, activation type) */
#define AMXQ_FOREACH_TYPE(X)                                                                       \
    X(Q4_0, q4_0, 32, 18, q8_0)                                                                    \
    X(Q4_1, q4_1, 32, 20, q8_1)                                                                    \
    X(Q8_0, q8_0, 32, 34, q8_0)                                                                    \
    X(Q4_K, q4_k, 256, 144, q8_k)                                                                  \
    X(Q6_K, q6_k, 256, 210, q8_k)                                                                  \
    X(Q5_K, q5_k, 256, 176, q8_k)                                                                  \
    X(IQ4_XS, iq4_xs, 256, 136, q8_k)                                                              \
    X(Q5_0, q5_0, 32, 22, q8_0)                                                                    \
    X(Q5_1, q5_1, 32, 24, q8_1)                                                                    \
    X(IQ4_NL, iq4_nl, 32, 18, q8_0)

/* Dense index of a type, for table slots. */
enum amxq_type_index {
#define AMXQ_X_INDEX(T, name, qk, bytes, act) AMXQ_TI_##T,
    AMXQ_FOREACH_TYPE(AMXQ_X_INDEX)
#undef AMXQ_X_INDEX
        AMXQ_NTYPES
};

/* Index of `type`, or -1 if it is not an amxq_type. */
int amxq_type_index(amxq_type type);

/* The activation type ggml's x86 path pairs with a weight type (docs/design.md §1): Q8_K for the
 * super-block types, Q8_1 for the types with a min, else Q8_0. */
static inline int amxq_type_act_q8_k(amxq_type type)
{
    return type == AMXQ_TYPE_Q4_K || type == AMXQ_TYPE_Q5_K || type == AMXQ_TYPE_Q6_K ||
           type == AMXQ_TYPE_IQ4_XS;
}
static inline int amxq_type_act_q8_1(amxq_type type)
{
    return type == AMXQ_TYPE_Q4_1 || type == AMXQ_TYPE_Q5_1;
}

/* ---- ggml block formats (docs/design.md §2) ------------------------------------------------- */

/* These describe ggml's bytes. ggml rows handed to amxq may be unaligned: read them with memcpy,
 * never by dereferencing these structs at an arbitrary address. */
typedef struct {
    uint16_t d;
    uint8_t qs[16];
} amxq_block_q4_0;
typedef struct {
    uint16_t d, m;
    uint8_t qs[16];
} amxq_block_q4_1;
typedef struct {
    uint16_t d;
    int8_t qs[32];
} amxq_block_q8_0;
typedef struct {
    uint16_t d, s;
    int8_t qs[32];
} amxq_block_q8_1;
typedef struct {
    uint16_t d;
    uint8_t qh[4]; /* little-endian u32: bit j is the fifth bit of weight j */
    uint8_t qs[16];
} amxq_block_q5_0;
typedef struct {
    uint16_t d, m;
    uint8_t qh[4]; /* as Q5_0 */
    uint8_t qs[16];
} amxq_block_q5_1;
typedef struct {
    uint16_t d, dmin;
    uint8_t scales[12];
    uint8_t qs[128];
} amxq_block_q4_k;
typedef struct {
    float d;
    int8_t qs[256];
    int16_t bsums[16];
} amxq_block_q8_k;
typedef struct {
    uint8_t ql[128]; /* low 4 bits of the 6-bit quants */
    uint8_t qh[64];  /* high 2 bits */
    int8_t scales[16];
    uint16_t d;
} amxq_block_q6_k;

#define AMXQ_QK   32  /* weights per block of the 32-k types and of Q8_0/Q8_1 activations */
#define AMXQ_QK_K 256 /* weights per Q4_K / Q8_K super-block */

/* ---- Packed layout (docs/design.md §4, docs/packed-format.md) ------------------------------- */

#define AMXQ_PANEL_N      16  /* output rows (columns of C) per panel: one tile's width */
#define AMXQ_HEADER_BYTES 128 /* the header, padded; panels start here */
#define AMXQ_PACKED_MAGIC "AMXQPAK1"

/*
 * The header, little-endian, exactly AMXQ_HEADER_BYTES bytes. `checksum` is FNV-1a 64 over the
 * bytes before it. Every field is also recomputed from (type, n, k) on validation, so a buffer
 * is accepted only if it is exactly the layout this library would produce.
 */
typedef struct amxq_packed_header {
    char magic[8];           /* AMXQ_PACKED_MAGIC, not NUL-terminated */
    uint32_t format_version; /* AMXQ_PACKED_FORMAT_VERSION */
    uint32_t type;           /* amxq_type */
    int64_t n, k;
    uint32_t panel_n;     /* AMXQ_PANEL_N */
    uint32_t block_k;     /* weights per ggml block: 32 or 256 */
    uint32_t block_bytes; /* bytes per ggml block */
    uint32_t chunk_bytes; /* packed quant bytes of one ggml block of one panel */
    uint32_t terms_bytes; /* packed per-block terms (scales, ...) of one ggml block of one panel */
    uint32_t reserved0;   /* 0 */
    uint64_t n_panels;
    uint64_t k_blocks;      /* ggml blocks per row */
    uint64_t panel_bytes;   /* stride between panels, multiple of 64 */
    uint64_t panels_offset; /* AMXQ_HEADER_BYTES */
    uint64_t total_bytes;
    uint8_t reserved[24]; /* 0 */
    uint64_t checksum;
} amxq_packed_header;

/* The layout of one packed weight, derived from (type, n, k). */
typedef struct amxq_layout {
    amxq_type type;
    int ti; /* amxq_type_index(type) */
    int64_t n, k;
    int64_t n_panels;     /* ceil(n / AMXQ_PANEL_N) */
    int64_t k_blocks;     /* k / block_k */
    int64_t block_k;      /* 32 or 256 */
    size_t block_bytes;   /* ggml bytes per block */
    size_t chunk_bytes;   /* quant bytes per block per panel */
    size_t terms_bytes;   /* term bytes per block per panel */
    size_t terms_offset;  /* within a panel: k_blocks * chunk_bytes */
    size_t panel_bytes;   /* multiple of 64 */
    size_t panels_offset; /* AMXQ_HEADER_BYTES */
    size_t total_bytes;
} amxq_layout;

/* Fill `lo` for (type, n, k). Returns AMXQ_OK, AMXQ_ERR_TYPE, AMXQ_ERR_SHAPE or AMXQ_ERR_K_BLOCK.
 */
amxq_status amxq_layout_init(amxq_layout *lo, amxq_type type, int64_t n, int64_t k);

/* Validate the header at `packed` (at most `size` bytes readable; SIZE_MAX to trust the header's
 * total) and derive its layout. Returns AMXQ_OK or AMXQ_ERR_BAD_PACKED. */
amxq_status amxq_layout_read(amxq_layout *lo, const void *packed, size_t size);

/* Pointer to panel p of a validated packed buffer. */
static inline const uint8_t *amxq_panel(const amxq_layout *lo, const void *packed, int64_t p)
{
    return (const uint8_t *)packed + lo->panels_offset + (size_t)p * lo->panel_bytes;
}

/*
 * Inside a panel (16 output rows n0..n0+15; rows past N are zero padding):
 *
 *   [ quants of block 0 | quants of block 1 | ... ][ terms of block 0 | terms of block 1 | ... ]
 *
 * Quants: ggml's quant bytes of the 16 rows, interleaved four bytes at a time, so that each 64-byte
 * line holds 4 consecutive bytes of each of the 16 rows — the VNNI layout a tile B operand (and a
 * vpdpbusd operand) wants:
 *
 *     line L, byte 4*j + i  =  qs_of_row(n0 + j)[4*L + i]        (j < 16, i < 4)
 *
 *   Q4_0, Q4_1: qs is 16 bytes a block -> 4 lines (256 B). Low nibbles of the 4 lines are the
 *               B tile rows for k = 0..15, high nibbles for k = 16..31 (ggml's nibble order).
 *   Q8_0:       qs is 32 int8 a block  -> 8 lines (512 B): exactly a 8 x 64 B tile B operand.
 *   Q5_0:       ggml's qh (4 B) and qs (16 B), contiguous in the block, as one run of 20 bytes
 *               -> 5 lines (320 B): line 0 qh with its 32 bits reordered, lines 1..4 Q4_0's qs.
 *               Bit 2L + h of byte i of a row's qh dword is the fifth bit of the weight in the
 *               low (h = 0) or high (h = 1) nibble of byte i of qs line 1 + L, i.e. ggml's qh bit
 *               16h + 4L + i; so qs line 1 + L and the qh line unpack as Q5_K's run L / sub-blocks
 *               2L, 2L + 1 do (vn_q5_k_line, src/vec512_kx.h).
 *   Q5_1:       as Q5_0.
 *   IQ4_NL:     as Q4_0; each nibble an index into ggml's kvalues_iq4nl.
 *   Q4_K:       each of ggml's four 32-byte runs -> 8 lines (512 B); 2048 B a super-block.
 *               Low nibbles of run r are sub-block 2r, high nibbles sub-block 2r+1.
 *   Q5_K:       ggml's qh (32 B) and qs (128 B), contiguous in the block, as one run of 160 bytes
 *               -> 40 lines (2560 B): lines 0..7 qh, then Q4_K's four runs of 8 lines. Sub-block
 *               j's weight l is the nibble of run j / 2 with bit j of qh[l] as bit 4.
 *   IQ4_XS:     qs (128 B) -> 32 lines (2048 B); sub-block i (32 weights) is lines 4i..4i+3,
 *               low nibbles its weights 0..15, high nibbles 16..31 (Q4_0's order), each an index
 *               into ggml's kvalues_iq4nl.
 *   Q6_K:       ggml's ql (128 B) and qh (64 B), contiguous in the block, as one run of 192
 *               bytes -> 48 lines (3072 B): lines 0..31 ql, 32..47 qh. In half h (128 weights),
 *               line L < 8 of ql (16h + L), ql (16h + 8 + L) and qh (32 + 8h + L) hold the same
 *               four l = 4L..4L+3 of each row: weight 128h + 32c + l is nibble c/2 of the ql line
 *               of quarter c%2 with bits 2c..2c+1 of the qh line as bits 4-5 (docs/design.md §2).
 *
 * Terms (16 values of each field, so one vector load serves the panel):
 *   Q4_0: uint16 d[16] (fp16 bits)                                              32 B
 *   Q4_1: uint16 d[16], uint16 m[16]                                             64 B
 *   Q8_0: uint16 d[16]                                                              32 B
 *   Q5_0: uint16 d[16]                                                              32 B
 *   Q5_1: uint16 d[16], uint16 m[16]                                             64 B
 *   IQ4_NL: uint16 d[16]                                                            32 B
 *   Q4_K: uint16 d[16], uint16 dmin[16], uint8 sc[8][16], uint8 m[8][16]         320 B
 *         (sc, m: the 6-bit sub-block scales and mins, unpacked; [sub-block][row])
 *   Q5_K: as Q4_K                                                                  320 B
 *   Q6_K: uint16 d[16], int8 sc[16][16] ([sub-block of 16][row])                 288 B
 *   IQ4_XS: uint16 d[16], int8 ls[8][16] (the 6-bit scales minus 32, unpacked)   160 B
 */
#define AMXQ_CHUNK_Q4_0   256
#define AMXQ_CHUNK_Q4_1   256
#define AMXQ_CHUNK_Q8_0   512
#define AMXQ_CHUNK_Q4_K   2048
#define AMXQ_TERMS_Q4_0   32
#define AMXQ_TERMS_Q4_1   64
#define AMXQ_TERMS_Q8_0   32
#define AMXQ_TERMS_Q4_K   320
#define AMXQ_CHUNK_Q6_K   3072
#define AMXQ_TERMS_Q6_K   288
#define AMXQ_CHUNK_Q5_K   2560
#define AMXQ_TERMS_Q5_K   320
#define AMXQ_CHUNK_IQ4_XS 2048
#define AMXQ_TERMS_IQ4_XS 160
#define AMXQ_CHUNK_Q5_0   320
#define AMXQ_TERMS_Q5_0   32
#define AMXQ_CHUNK_Q5_1   320
#define AMXQ_TERMS_Q5_1   64
#define AMXQ_CHUNK_IQ4_NL 256
#define AMXQ_TERMS_IQ4_NL 32

/* ---- Quantized activations (the workspace) -------------------------------------------------- */

/*
 * Activations quantized for one product, laid out for the kernels rather than as ggml blocks:
 *
 *   qs    m rows of k int8, row stride ld_qs bytes (k rounded up to 64)
 *   d     m rows of per-block scales as f32 (the fp16 scale converted exactly for Q8_0/Q8_1; the
 *         f32 scale for Q8_K), one per 32 (Q8_0, Q8_1) or 256 (Q8_K); row stride ld_d floats
 *   s     Q8_1 only: ggml's fp16 `s` converted to f32, one per 32; row stride ld_d; else NULL
 *   sums  int16: Q8_0 and Q8_1 the sum of each block's 32 qs; Q8_K ggml's bsums (one per 16);
 *         row stride ld_sums elements
 *
 * amxq_qx_layout() places the arrays in one AMXQ_ALIGNMENT-aligned workspace; every array and
 * every row starts on a 64-byte boundary.
 */
typedef struct amxq_qx {
    amxq_type wtype; /* the weight type these activations pair with */
    int64_t m, k;
    int64_t ld_qs, ld_d, ld_sums;
    int8_t *qs;
    float *d;
    float *s;
    int16_t *sums;
} amxq_qx;

/* Bytes of workspace for m rows of k activations for weight type `type`; 0 if impossible. */
size_t amxq_qx_size(amxq_type type, int64_t m, int64_t k);

/* Point `qx` into `ws` (at least amxq_qx_size() bytes, 64-byte aligned). */
void amxq_qx_layout(amxq_qx *qx, amxq_type type, int64_t m, int64_t k, void *ws);

/* ---- Kernel table --------------------------------------------------------------------------- */

/* Quantize rows [m0, m1) of x (row stride ldx floats, qx->k columns) into qx. */
#define AMXQ_DECL_QUANTIZE_FN(name)                                                                \
    void name(const float *x, int64_t ldx, int64_t m0, int64_t m1, const amxq_qx *qx)

/*
 * C[m][n] for m in [m0, m1) and n in panels [p0, p1) (clipped to n < N). `packed` is a validated
 * buffer described by `lo`; `c` points at C[0][0], row stride ldc floats. Writes no other element.
 * Determinism: the bits of C[m][n] must not depend on the rectangle a call covers (only on m, n
 * and the inputs), so that any split over threads (src/parallel) gives the single-call result.
 */
#define AMXQ_DECL_GEMM_FN(name)                                                                    \
    void name(const amxq_layout *lo, const void *packed, const amxq_qx *qx, int64_t m0,            \
              int64_t m1, int64_t p0, int64_t p1, float *c, int64_t ldc)

typedef AMXQ_DECL_QUANTIZE_FN(amxq_quantize_fn);
typedef AMXQ_DECL_GEMM_FN(amxq_gemm_fn);

struct amxq_type_kernels {
    amxq_quantize_fn *quantize;
    const char *quantize_name;
    amxq_gemm_fn *gemm;
    const char *gemm_name;
};

struct amxq_kernels {
    amxq_isa isa; /* the family this table was built for */
    struct amxq_type_kernels t[AMXQ_NTYPES];
    /* Called by the entry point after a product unless AMXQ_KEEP_TILES: releases the tile state
     * the kernels of this table may have configured. NULL when they use no tiles. */
    void (*tile_release)(void);
};

/* The table for a concrete ISA (not AUTO), or NULL if this build or CPU cannot run it; `why`
 * (may be NULL) receives the reason. Tables are built once, thread safely. */
const struct amxq_kernels *amxq_kernels_get(amxq_isa isa, amxq_status *why);

/* Whether the table of `isa` has been built (and self-tested) in this process; builds nothing. */
int amxq_kernels_built(amxq_isa isa);

/* Ladder rungs: each fills or overwrites the slots its ISA implements. */
void amxq_kernels_init_ref(struct amxq_kernels *t);

/* ---- Argument checks and logging ------------------------------------------------------------ */

void amxq_log_failure(const char *file, int line, const char *cond);

/* Return `status` from the enclosing function when `cond` does not hold, logging where. */
#define AMXQ_CHECK(cond, status)                                                                   \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            amxq_log_failure(__FILE__, __LINE__, #cond);                                           \
            return (status);                                                                       \
        }                                                                                          \
    } while (0)

/* Forward a failing status. */
#define AMXQ_TRY(expr)                                                                             \
    do {                                                                                           \
        amxq_status amxq_try_st_ = (expr);                                                         \
        if (amxq_try_st_ != AMXQ_OK)                                                               \
            return amxq_try_st_;                                                                   \
    } while (0)

/* Whether [a, a+na) and [b, b+nb) share a byte. */
static inline int amxq_overlaps(const void *a, size_t na, const void *b, size_t nb)
{
    uintptr_t pa = (uintptr_t)a, pb = (uintptr_t)b;
    return na && nb && pa < pb + nb && pb < pa + na;
}

#define AMXQ_ROUND_UP(x, a) ((((x) + (a)-1) / (a)) * (a))

static inline int amxq_is_aligned(const void *p)
{
    return ((uintptr_t)p & (AMXQ_ALIGNMENT - 1)) == 0;
}

/* Bytes spanned by `rows` rows of `cols` floats at stride `ld` (rows >= 1), or 0 on overflow. */
size_t amxq_span_bytes(int64_t rows, int64_t cols, int64_t ld);

/*
 * Every check amxq_matmul_ex() makes before it runs (src/amxq.c), shared with the context's
 * matmul (src/parallel): params (NULL = defaults), pointers, the packed header, M, strides,
 * overlaps, the ISA (resolved into a runnable table) and a caller workspace if one is given.
 * On success fills the layout, the concrete ISA and the workspace bytes the product needs.
 */
amxq_status amxq_matmul_check(const void *packed, const float *x, int64_t m, int64_t ldx,
                              const float *c, int64_t ldc, const amxq_matmul_params *params,
                              amxq_layout *lo, amxq_isa *isa, size_t *ws_bytes);

#endif /* AMXQ_INTERNAL_H */
