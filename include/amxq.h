/*
 * amxq — Intel AMX int8 kernels for ggml-quantized matrix products.
 *
 * This is the whole public API. It computes
 *
 *     C[m][n] = sum_k X[m][k] * W[n][k]        (m < M, n < N, k < K)
 *
 * for f32 activations X and weights W given in ggml's block formats (Q4_0,
 * Q4_1, Q5_0, Q5_1, Q8_0, IQ4_NL, Q4_K, Q5_K, Q6_K, IQ4_XS). Weights are packed once into a
 * self-describing layout made for AMX tiles and AVX-512 VNNI; every product then runs on the best
 * kernel this CPU and OS allow (AMX, AVX-512 VNNI, or portable C), chosen at run time. Numerics
 * follow ggml's CPU path: activations are quantized per row into the type ggml pairs with the
 * weight type (Q8_0, Q8_1 or Q8_K).
 *
 * Conventions
 *   - Every call returns an amxq_status (AMXQ_OK == 0, failures negative),
 *     except the size queries, which return 0 for an impossible request.
 *   - Shapes and strides are counted in elements, sizes in bytes.
 *   - Memory belongs to the caller. The library keeps no hidden scratch; the
 *     all-in-one amxq_matmul() allocates its activation workspace and frees it
 *     before returning (use amxq_matmul_ex() with a workspace to avoid that).
 *   - The library never prints and never aborts. Bad input gets a status and
 *     nothing is written outside the buffers the caller passed.
 *   - All calls are thread safe. A packed weight is read-only after packing
 *     and may be used by any number of threads at once.
 *   - Kernels keep their per-call scratch on the calling thread's stack: up
 *     to about 80 KiB for the AMX kernels. Threads that run products need a
 *     stack of at least 256 KiB (glibc's default is 8 MiB; musl's is 128 KiB).
 *
 * Example: pack a Q4_0 weight of N rows by K, then multiply M rows of X.
 *
 * @code
 *   size_t bytes = amxq_packed_size(AMXQ_TYPE_Q4_0, n, k);
 *   void *w = aligned_alloc(AMXQ_ALIGNMENT, bytes);    // bytes is a multiple of 64
 *   amxq_status st = amxq_pack(AMXQ_TYPE_Q4_0, ggml_rows, n, k, w, bytes);
 *   if (st == AMXQ_OK)
 *       st = amxq_matmul(w, x, m, k, c, n);              // C = X * W^T
 *   if (st != AMXQ_OK)
 *       fprintf(stderr, "amxq: %s\n", amxq_status_str(st));
 *   free(w);
 * @endcode
 */
#ifndef AMXQ_H_6A1F0C3E
#define AMXQ_H_6A1F0C3E

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Visibility ----------------------------------------------------------------------------- */

#ifndef AMXQ_VISIBLE
#if defined(__GNUC__) && (__GNUC__ >= 4)
#define AMXQ_VISIBLE __attribute__((visibility("default")))
#else
#define AMXQ_VISIBLE
#endif
#endif

#ifndef AMXQ_API
#if defined(_WIN32) && defined(AMXQ_BUILDING_DLL)
#define AMXQ_API __declspec(dllexport) AMXQ_VISIBLE
#elif defined(_WIN32) && defined(AMXQ_USING_DLL)
#define AMXQ_API __declspec(dllimport) AMXQ_VISIBLE
#else
#define AMXQ_API AMXQ_VISIBLE
#endif
#endif

/* ---- Version -------------------------------------------------------------------------------- */

/* MAJOR changes break the API or ABI; MINOR adds to them; PATCH fixes. The build reads these
 * three lines to version the shared library, so keep their form. */
#define AMXQ_VERSION_MAJOR 0
#define AMXQ_VERSION_MINOR 2
#define AMXQ_VERSION_PATCH 0
#define AMXQ_VERSION_NUMBER                                                                        \
    (AMXQ_VERSION_MAJOR * 10000 + AMXQ_VERSION_MINOR * 100 + AMXQ_VERSION_PATCH)
#define AMXQ_STRINGIFY_(x) #x
#define AMXQ_STRINGIFY(x)  AMXQ_STRINGIFY_(x)
#define AMXQ_VERSION_STRING                                                                        \
    AMXQ_STRINGIFY(AMXQ_VERSION_MAJOR)                                                             \
    "." AMXQ_STRINGIFY(AMXQ_VERSION_MINOR) "." AMXQ_STRINGIFY(AMXQ_VERSION_PATCH)

/* Version of the packed-weight layout. A buffer packed by another layout version is refused with
 * AMXQ_ERR_BAD_PACKED; repack from the ggml bytes (amxq_unpack() reads the versions it knows). */
#define AMXQ_PACKED_FORMAT_VERSION 1

/* Alignment, in bytes, required of packed buffers and workspaces. */
#define AMXQ_ALIGNMENT 64

/** amxq_version_number() : the library's AMXQ_VERSION_NUMBER, to catch header/library skew. */
AMXQ_API unsigned amxq_version_number(void);

/** amxq_version_string() : the library's AMXQ_VERSION_STRING, e.g. "0.2.0". Never NULL. */
AMXQ_API const char *amxq_version_string(void);

/* ---- Status --------------------------------------------------------------------------------- */

/* Values are pinned: they never change meaning between releases. */
typedef enum amxq_status {
    AMXQ_OK = 0,
    AMXQ_ERR_NULL = -1,             /* a required pointer argument is NULL */
    AMXQ_ERR_TYPE = -2,             /* not an amxq_type this library supports */
    AMXQ_ERR_SHAPE = -3,            /* M, N or K is zero, negative or too large */
    AMXQ_ERR_K_BLOCK = -4,          /* K is not a multiple of the type's block size */
    AMXQ_ERR_STRIDE = -5,           /* ldx < K or ldc < N */
    AMXQ_ERR_BUFFER_SIZE = -6,      /* a buffer is smaller than the call needs */
    AMXQ_ERR_BAD_PACKED = -7,       /* not a packed weight: magic, version, checksum or layout */
    AMXQ_ERR_ALIGNMENT = -8,        /* a buffer is not AMXQ_ALIGNMENT-byte aligned */
    AMXQ_ERR_NOMEM = -9,            /* memory allocation failed */
    AMXQ_ERR_ISA_UNKNOWN = -10,     /* an ISA name or value amxq does not know */
    AMXQ_ERR_ISA_UNSUPPORTED = -11, /* the ISA asked for cannot run on this CPU / OS / build */
    AMXQ_ERR_NO_AMX = -12,          /* CPUID reports no AMX-TILE / AMX-INT8 */
    AMXQ_ERR_AMX_OS = -13,          /* the OS has not enabled tile state (XCR0 bits 17, 18) */
    AMXQ_ERR_AMX_PERMISSION = -14,  /* the kernel refused the tile-data permission request */
    AMXQ_ERR_ARG = -15,             /* another argument is out of range (named in the docs) */
    AMXQ_ERR_THREAD = -16,          /* creating or joining a thread failed */
    AMXQ_ERR_NUMA = -17,            /* a NUMA request the system cannot satisfy */
    AMXQ_ERR_OVERLAP = -18,         /* an output buffer overlaps an input buffer */
    AMXQ_ERR_SELFTEST = -19         /* an ISA's kernels disagreed with the reference at start-up */
} amxq_status;

/** amxq_status_str() : a short English description of `status`. Never NULL; unknown values give
 *  "unknown amxq status". */
AMXQ_API const char *amxq_status_str(amxq_status status);

/* ---- Types -------------------------------------------------------------------------------- */

/* The weight types. The values are ggml's `enum ggml_type` values, so an engine can pass its own
 * type through unchanged. */
typedef enum amxq_type {
    AMXQ_TYPE_Q4_0 = 2,    /* 32 weights in 18 bytes; activations as Q8_0 */
    AMXQ_TYPE_Q4_1 = 3,    /* 32 weights in 20 bytes; activations as Q8_1 */
    AMXQ_TYPE_Q5_0 = 6,    /* 32 weights in 22 bytes; activations as Q8_0 */
    AMXQ_TYPE_Q5_1 = 7,    /* 32 weights in 24 bytes; activations as Q8_1 */
    AMXQ_TYPE_Q8_0 = 8,    /* 32 weights in 34 bytes; activations as Q8_0 */
    AMXQ_TYPE_Q4_K = 12,   /* 256 weights in 144 bytes; activations as Q8_K */
    AMXQ_TYPE_Q5_K = 13,   /* 256 weights in 176 bytes; activations as Q8_K */
    AMXQ_TYPE_Q6_K = 14,   /* 256 weights in 210 bytes; activations as Q8_K */
    AMXQ_TYPE_IQ4_NL = 20, /* 32 weights in 18 bytes; activations as Q8_0 */
    AMXQ_TYPE_IQ4_XS = 23  /* 256 weights in 136 bytes; activations as Q8_K */
} amxq_type;

/** amxq_type_name() : "q4_0", "q4_1", "q5_0", "q5_1", "q8_0", "q4_k", "q5_k", "q6_k", "iq4_nl",
 *  "iq4_xs"; NULL for a value that is not an amxq_type. */
AMXQ_API const char *amxq_type_name(amxq_type type);

/** amxq_type_block() : weights per ggml block (32; 256 for the K types); 0 for an unknown type. */
AMXQ_API int64_t amxq_type_block(amxq_type type);

/** amxq_type_block_bytes() : bytes per ggml block (18, 20, 22, 24, 34, 144, 176, 210, 18,
 *  136); 0 for an unknown type. */
AMXQ_API size_t amxq_type_block_bytes(amxq_type type);

/** amxq_ggml_size() : bytes of N ggml rows of K weights; 0 for an impossible shape (N or K not
 *  positive, K not a multiple of the block, or a size that overflows). */
AMXQ_API size_t amxq_ggml_size(amxq_type type, int64_t n, int64_t k);

/* ---- Packing -------------------------------------------------------------------------------- */

/** amxq_packed_size() : bytes needed to pack N rows of K weights of `type`. Always a multiple of
 *  AMXQ_ALIGNMENT. Returns 0 for an impossible shape (unknown type, N or K not positive, K not a
 *  multiple of the type's block, N or K above 2^31, or a size that overflows size_t). */
AMXQ_API size_t amxq_packed_size(amxq_type type, int64_t n, int64_t k);

/** amxq_pack() : repack ggml blocks into amxq's packed layout.
 *  @param type        the weight type.
 *  @param ggml_rows   N rows of K/block ggml blocks, rows contiguous: ggml's bytes for a tensor
 *                     with ne0 = K, ne1 = N (amxq_ggml_size() bytes). Any alignment.
 *  @param n, k        rows (output features) and weights per row.
 *  @param packed      destination, AMXQ_ALIGNMENT-byte aligned, must not overlap ggml_rows.
 *  @param packed_size bytes available at `packed`; at least amxq_packed_size(type, n, k).
 *  Only the first amxq_packed_size() bytes of `packed` are written. Scales are copied bit for bit
 *  (NaN, Inf and subnormal halves included), so amxq_unpack() restores the exact input.
 *  @return AMXQ_OK; AMXQ_ERR_TYPE, AMXQ_ERR_NULL, AMXQ_ERR_SHAPE, AMXQ_ERR_K_BLOCK,
 *          AMXQ_ERR_ALIGNMENT, AMXQ_ERR_BUFFER_SIZE, AMXQ_ERR_OVERLAP.
 *  Thread safe; concurrent packs into distinct buffers are fine. */
AMXQ_API amxq_status amxq_pack(amxq_type type, const void *ggml_rows, int64_t n, int64_t k,
                               void *packed, size_t packed_size);

/** amxq_unpack() : restore the exact ggml bytes a packed weight was made from.
 *  @param packed     a buffer made by amxq_pack() (any alignment).
 *  @param ggml_rows  destination for N rows of ggml blocks; must not overlap `packed`.
 *  @param ggml_size  bytes available; at least amxq_ggml_size(type, n, k).
 *  @return AMXQ_OK; AMXQ_ERR_NULL, AMXQ_ERR_BAD_PACKED, AMXQ_ERR_BUFFER_SIZE, AMXQ_ERR_OVERLAP.
 *  The header is validated first (magic, version, checksum, layout). This call trusts the header's
 *  total size; use amxq_packed_info() first on bytes of unknown length. */
AMXQ_API amxq_status amxq_unpack(const void *packed, void *ggml_rows, size_t ggml_size);

/* What a packed buffer says about itself. */
typedef struct amxq_packed_desc {
    amxq_type type;
    int64_t n;               /* rows of W (output features) */
    int64_t k;               /* weights per row */
    size_t bytes;            /* total size of the packed buffer */
    size_t ggml_bytes;       /* amxq_ggml_size(type, n, k) */
    uint32_t format_version; /* AMXQ_PACKED_FORMAT_VERSION */
    uint32_t panel_n;        /* output rows per panel (16) */
} amxq_packed_desc;

/** amxq_packed_info() : validate a packed buffer and describe it.
 *  @param packed  the buffer (any alignment).
 *  @param size    bytes readable at `packed`. Nothing beyond them is read: a buffer whose header
 *                 claims more than `size` is AMXQ_ERR_BAD_PACKED.
 *  @param desc    receives the description (untouched on failure).
 *  @return AMXQ_OK; AMXQ_ERR_NULL, AMXQ_ERR_BAD_PACKED. */
AMXQ_API amxq_status amxq_packed_info(const void *packed, size_t size, amxq_packed_desc *desc);

/* ---- Matrix product ------------------------------------------------------------------------- */

/** amxq_matmul() : C = X * W^T with W packed.
 *  @param packed  a packed weight (amxq_pack()), AMXQ_ALIGNMENT-byte aligned.
 *  @param x       M rows of K floats, row m at x + m * ldx.
 *  @param m       rows of X and C, 1 <= m < 2^31.
 *  @param ldx     row stride of X in floats, >= K.
 *  @param c       M rows of N floats, overwritten; row m at c + m * ldc. Must not overlap x or
 *                 packed. Elements between N and ldc are not touched.
 *  @param ldc     row stride of C in floats, >= N.
 *  Activations are quantized per row as ggml's CPU does (Q8_0, Q8_1 or Q8_K), into a workspace
 *  this call allocates and frees. The kernel is the process-wide choice (amxq_set_isa(), the
 *  AMXQ_ISA environment variable, or the best this CPU allows for this M).
 *  @return AMXQ_OK; AMXQ_ERR_NULL, AMXQ_ERR_BAD_PACKED, AMXQ_ERR_ALIGNMENT, AMXQ_ERR_SHAPE,
 *          AMXQ_ERR_STRIDE, AMXQ_ERR_OVERLAP, AMXQ_ERR_NOMEM; for a forced ISA this CPU cannot
 *          run, amxq_isa_check()'s answer: AMXQ_ERR_ISA_UNSUPPORTED, or for AMX the reason
 *          (AMXQ_ERR_NO_AMX, AMXQ_ERR_AMX_OS, AMXQ_ERR_AMX_PERMISSION); AMXQ_ERR_ISA_UNKNOWN
 *          when AMXQ_ISA names no ISA.
 *  On failure C is untouched. Tiles, if used, are released before returning. */
AMXQ_API amxq_status amxq_matmul(const void *packed, const float *x, int64_t m, int64_t ldx,
                                 float *c, int64_t ldc);

/* Which kernels to run. AUTO is the process-wide choice; the others force one kernel family. */
typedef enum amxq_isa {
    AMXQ_ISA_AUTO = 0,      /* best for this CPU and M (process-wide override applies) */
    AMXQ_ISA_SCALAR = 1,    /* portable C reference ("scalar") */
    AMXQ_ISA_AVX512 = 2,    /* AVX-512 VNNI ("avx512") */
    AMXQ_ISA_AMX = 3,       /* AMX-INT8 tiles ("amx") */
    AMXQ_ISA_AMX_EMU = 4,   /* AMX kernels on the tile emulator ("amx-emu"); test builds only */
    AMXQ_ISA_AVX512_EMU = 5 /* AVX-512 kernels on emulated vectors ("avx512-emu"); test builds */
} amxq_isa;
#define AMXQ_ISA_COUNT 6

/* Flags for amxq_matmul_params.flags. */
#define AMXQ_KEEP_TILES                                                                            \
    1u /* leave this thread's tile configuration loaded on return (hot loops);                     \
          release it later with amxq_tile_release() */

/* Options for amxq_matmul_ex(). Zero-initialise, then set what you need. */
typedef struct amxq_matmul_params {
    amxq_isa isa;          /* AMXQ_ISA_AUTO, or a forced kernel family for this call only */
    unsigned flags;        /* AMXQ_KEEP_TILES */
    void *workspace;       /* NULL: allocate; else AMXQ_ALIGNMENT-aligned, workspace_size bytes */
    size_t workspace_size; /* >= amxq_workspace_size(type, m, k) when workspace is given */
} amxq_matmul_params;

/** amxq_workspace_size() : bytes of workspace amxq_matmul_ex() needs for M rows of K activations
 *  quantized for weights of `type` (a multiple of AMXQ_ALIGNMENT). 0 for an impossible shape. */
AMXQ_API size_t amxq_workspace_size(amxq_type type, int64_t m, int64_t k);

/** amxq_matmul_ex() : amxq_matmul() with options; `params` may be NULL (same as amxq_matmul()).
 *  With a workspace, the call allocates nothing. A forced ISA the CPU cannot run returns
 *  amxq_isa_check()'s answer (AMXQ_ERR_ISA_UNSUPPORTED, or AMXQ_ERR_NO_AMX / AMXQ_ERR_AMX_OS /
 *  AMXQ_ERR_AMX_PERMISSION for AMX); an isa value outside amxq_isa returns AMXQ_ERR_ISA_UNKNOWN;
 *  unknown
 *  flag bits return AMXQ_ERR_ARG; a workspace that is too small AMXQ_ERR_BUFFER_SIZE, misaligned
 *  AMXQ_ERR_ALIGNMENT, overlapping x, c or packed AMXQ_ERR_OVERLAP. */
AMXQ_API amxq_status amxq_matmul_ex(const void *packed, const float *x, int64_t m, int64_t ldx,
                                    float *c, int64_t ldc, const amxq_matmul_params *params);

/* ---- Numeric contract ----------------------------------------------------------------------- */

/*
 * Every product (amxq_matmul, amxq_matmul_ex, amxq_ctx_matmul, amxq_matmul_slice, mirrors) gives
 * C[m][n] bits that depend only on row m of X, the packed weight and the contract version below:
 * not on M or the row's position in the batch, the strides, the kernel family (scalar, avx512,
 * amx, the emulators; forced, AUTO or AMXQ_ISA), the thread count or slice split, the workspace
 * or AMXQ_KEEP_TILES. An engine gets the same logits for a prompt run alone or in a batch of 16,
 * on AMX or AVX-512, on 1 thread or 48.
 *
 * How, version 1. Row m of X is first quantized exactly as ggml does (amxq_quantize_row()'s
 * bytes): int8 q_x, a per-block f32 scale d_x (Q8_0/Q8_1: the fp16 scale converted), Q8_1's s_x
 * (fp16, converted), Q8_K's 16 bsums. Weight scales are the packed fp16 values converted to f32.
 * Each block's integer sum is exact; then, with every f32 operation rounded once to nearest-even
 * and fma(a, b, c) = a*b + c rounded once:
 *
 *   Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, IQ4_NL (blocks b of 32 weights, b = 0, 1, ...):
 *     i  = sum q_w * q_x                        int32 (Q4_0: q_w = nibble - 8; Q4_1: nibble;
 *                                               Q5_0: the 5-bit value - 16; Q5_1: 5-bit value;
 *                                               IQ4_NL: kv[nibble], kv ggml's kvalues_iq4nl)
 *     a  = fma((float)i, d_w * d_x, a)          f32; (float)i is exact
 *     a  = fma(m_w, s_x, a)                     Q4_1 and Q5_1 only
 *     after blocks 7, 15, 23, ... and after the last block: S = S + (double)a, then a = +0
 *   Q4_K, Q5_K (super-blocks of 256, sub-blocks j = 0..7; Q5_K's q_w has 5 bits):
 *     I  = sum_j sc_j * (sum q_w * q_x over j)  int32
 *     J  = sum_j m_j * (bsums[2j] + bsums[2j+1])  int32
 *     v  = fma(-(float)J, dmin * d_x, (float)I * (d * d_x))    (float)I rounds when >= 2^24
 *     S  = S + (double)v
 *   Q6_K (super-blocks of 256, sub-blocks j = 0..15 of 16 weights, signed 8-bit scales sc_j):
 *     I  = sum_j sc_j * (sum (q_w - 32) * q_x over j)     int32 (q_w the 6-bit value, 0..63)
 *     v  = (float)I * (d * d_x)                            (float)I rounds when >= 2^24
 *     S  = S + (double)v
 *   IQ4_XS (super-blocks of 256, sub-blocks i = 0..7 of 32, 6-bit scales ls_i, levels kv[]):
 *     I  = sum_i (ls_i - 32) * (sum kv[q_w] * q_x over i)     int32 (kv: ggml's kvalues_iq4nl)
 *     v  = (float)I * (d * d_x),  S = S + (double)v           as Q6_K
 *   C[m][n] = (float)S                          a and S start at +0
 *
 * This holds in the default floating-point environment (round to nearest, MXCSR's FTZ and DAZ
 * off). Where C[m][n] is a NaN every family gives a NaN, of unspecified sign and payload.
 * What is not invariant: another weight type or another quantization of the same weights (they
 * are different inputs), and another AMXQ_NUMERIC_CONTRACT_VERSION: a library that changes any
 * step above changes the version; libraries with the same version give the same bits. The
 * result is not ggml's bits (ggml sums in another order): it agrees with ggml to an L2-relative
 * error below 1e-6 on ggml's own outputs (tests/test_golden.c) and with a double-precision
 * recomputation to a few 1e-7 whatever K (tests/test_ref_double.c).
 */
#define AMXQ_NUMERIC_CONTRACT_VERSION 1

/** amxq_numeric_contract_version() : the library's AMXQ_NUMERIC_CONTRACT_VERSION. Compare it with
 *  the header's (or a value stored next to cached results) to know whether results are bitwise
 *  reproducible with this library. */
AMXQ_API int amxq_numeric_contract_version(void);

/* ---- Activation quantization ---------------------------------------------------------------- */

/** amxq_quantize_row() : quantize K floats into the ggml activation blocks ggml's x86 CPU path
 *  pairs with `weight_type` (Q8_0 for Q4_0/Q5_0/Q8_0/IQ4_NL, Q8_1 for Q4_1/Q5_1, Q8_K for the K
 * types and IQ4_XS), byte for byte as ggml writes them: 34, 36 or 292 bytes per block.
 *  @param dst       destination; dst_size must be >= (K / block) * block bytes.
 *  @return AMXQ_OK; AMXQ_ERR_NULL, AMXQ_ERR_TYPE, AMXQ_ERR_SHAPE, AMXQ_ERR_K_BLOCK,
 *          AMXQ_ERR_BUFFER_SIZE. */
AMXQ_API amxq_status amxq_quantize_row(amxq_type weight_type, const float *x, int64_t k, void *dst,
                                       size_t dst_size);

/* ---- ISA choice ----------------------------------------------------------------------------- */

/** amxq_isa_name() : "auto", "scalar", "avx512", "amx", "amx-emu", "avx512-emu"; NULL if unknown.
 */
AMXQ_API const char *amxq_isa_name(amxq_isa isa);

/** amxq_isa_parse() : the amxq_isa named by `name` (the names of amxq_isa_name()).
 *  @return AMXQ_OK; AMXQ_ERR_NULL, AMXQ_ERR_ISA_UNKNOWN. */
AMXQ_API amxq_status amxq_isa_parse(const char *name, amxq_isa *isa);

/** amxq_isa_check() : whether kernels of `isa` can run here (CPU, OS permission and build).
 *  Each family's kernel table is built the first time a product (or this call) needs that
 *  family, and before its first use its kernels run once on a small product of every type and are
 *  compared with the reference; a family whose kernels disagree is never used and reports
 *  AMXQ_ERR_SELFTEST. Families nothing asked for are never built, tested or run. The emulated
 *  families (amx-emu, avx512-emu) exist only in amxq's test builds: the installed library
 *  reports AMXQ_ERR_ISA_UNSUPPORTED for them.
 *  @return AMXQ_OK; AMXQ_ERR_ISA_UNKNOWN, AMXQ_ERR_ISA_UNSUPPORTED, AMXQ_ERR_SELFTEST, or for AMX
 *          the reason: AMXQ_ERR_NO_AMX, AMXQ_ERR_AMX_OS, AMXQ_ERR_AMX_PERMISSION. May request AMX
 *          permission.
 */
AMXQ_API amxq_status amxq_isa_check(amxq_isa isa);

/** amxq_set_isa() : set the process-wide kernel choice used when a call asks for AMXQ_ISA_AUTO.
 *  Overrides the AMXQ_ISA environment variable (read once, at the first call into amxq).
 *  AMXQ_ISA_AUTO restores the automatic choice (ignoring AMXQ_ISA).
 *  @return AMXQ_OK; AMXQ_ERR_ISA_UNKNOWN; or amxq_isa_check()'s failure, in which case the choice
 *          is unchanged. Thread safe; calls already running keep the kernels they started with. */
AMXQ_API amxq_status amxq_set_isa(amxq_isa isa);

/** amxq_get_isa() : the process-wide choice (AMXQ_ISA_AUTO unless forced).
 *  @param status  if not NULL, receives the state of the choice: AMXQ_OK, or why a forced choice
 *                 cannot run (e.g. AMXQ_ISA names an ISA this CPU lacks, or no ISA at all). */
AMXQ_API amxq_isa amxq_get_isa(amxq_status *status);

/** amxq_resolve_isa() : the kernel family a product of M rows of `type` would run with `isa`
 *  (AUTO resolves to scalar, avx512 or amx). Writes nothing on failure.
 *  @return AMXQ_OK; the failures of amxq_isa_check(); AMXQ_ERR_TYPE; AMXQ_ERR_SHAPE. */
AMXQ_API amxq_status amxq_resolve_isa(amxq_isa isa, amxq_type type, int64_t m, amxq_isa *out);

/* ---- CPU and OS features -------------------------------------------------------------------- */

typedef struct amxq_cpu_info {
    char vendor[13]; /* CPUID leaf 0, e.g. "GenuineIntel" */
    char brand[49];  /* CPUID 0x80000002..4 */
    uint32_t family, model, stepping;
    /* CPUID feature bits */
    uint8_t avx2, fma, f16c;
    uint8_t avx512f, avx512bw, avx512vl, avx512dq, avx512vnni, avx512vbmi, avx512bf16;
    uint8_t avx_vnni;
    uint8_t amx_tile, amx_int8, amx_bf16, amx_fp16;
    /* OS-enabled state, from XGETBV(0) */
    uint64_t xcr0;
    uint8_t os_avx;    /* XCR0 bits 1, 2 */
    uint8_t os_avx512; /* XCR0 bits 5, 6, 7 */
    uint8_t os_amx;    /* XCR0 bits 17, 18 */
    /* AMX palette 1, from CPUID leaf 0x1D / 0x1E (zero without AMX) */
    uint16_t amx_max_tiles, amx_max_rows, amx_max_bytes_per_row, amx_tmul_maxk, amx_tmul_maxn;
    /* AMX usability: AMXQ_OK when tile instructions may run in this process, else
     * AMXQ_ERR_NO_AMX, AMXQ_ERR_AMX_OS or AMXQ_ERR_AMX_PERMISSION. amxq_cpu_info_get() never
     * makes the request just to answer: before amxq_request_amx_permission() has run it reports
     * NO_AMX / AMX_OS from CPUID and XCR0, or else one read-only ARCH_GET_XCOMP_PERM (AMXQ_OK if
     * something in the process already holds the permission, AMXQ_ERR_AMX_PERMISSION if not). */
    amxq_status amx_status;
    uint8_t amx_permission_requested; /* whether the request has been made in this process */
    uint8_t build_avx512;             /* the library was built with its AVX-512 kernels */
    uint8_t build_amx;                /* the library was built with its AMX kernels */
    uint8_t build_emu; /* the emulated kernels are in this library (test builds only; 0 when
                          installed) */
} amxq_cpu_info;

/** amxq_cpu_info_get() : what this CPU, OS and build offer. Does not request AMX permission.
 *  @return AMXQ_OK; AMXQ_ERR_NULL. */
AMXQ_API amxq_status amxq_cpu_info_get(amxq_cpu_info *info);

/** amxq_request_amx_permission() : make tile instructions usable in this process (on Linux,
 *  arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) if not yet granted, then re-read to
 *  confirm). Idempotent and thread safe: the first answer is cached for the process.
 *
 *  When amxq asks: only here, and when an AMX product is about to run for the first time (AUTO
 *  chose AMX for a large M, or AMX was forced by amxq_set_isa(), AMXQ_ISA or a call's params),
 *  or when amxq_isa_check(AMXQ_ISA_AMX) / amxq_tile_configure() is called. A process that only
 *  runs scalar or AVX-512 products never calls arch_prctl and never executes a tile instruction.
 *
 *  Consequence for engines with their own signal stacks: once the permission is granted, every
 *  signal frame of the process carries the tile state (about 11 KiB more), and Linux then refuses
 *  sigaltstack() with a stack smaller than getauxval(AT_MINSIGSTKSZ) (ENOMEM); conversely, the
 *  request itself fails (AMXQ_ERR_AMX_PERMISSION) while some thread has a smaller alternate
 *  stack installed. Size alternate signal stacks from AT_MINSIGSTKSZ (plus your handler's needs),
 *  not from the MINSIGSTKSZ / SIGSTKSZ constants, in any process that may run AMX products.
 *  @return AMXQ_OK; AMXQ_ERR_NO_AMX, AMXQ_ERR_AMX_OS, AMXQ_ERR_AMX_PERMISSION (kernel too old,
 *          seccomp, hypervisor, or an alternate signal stack too small for the tile state). */
AMXQ_API amxq_status amxq_request_amx_permission(void);

/* ---- Tile configuration --------------------------------------------------------------------- */

/** amxq_tile_configure() : load amxq's tile configuration on the calling thread, for a hot loop of
 *  amxq_matmul_ex(..., AMXQ_KEEP_TILES) calls. The live configuration is read back first and only
 *  reloaded when it differs. With the process choice AMXQ_ISA_AMX_EMU this configures the emulated
 *  tiles of the calling thread.
 *  @return AMXQ_OK; the failures of amxq_isa_check(AMXQ_ISA_AMX). */
AMXQ_API amxq_status amxq_tile_configure(void);

/** amxq_tile_release() : release the calling thread's tile state (TILERELEASE), real and emulated.
 *  Safe to call at any time, also without AMX (then it does nothing).
 *  @return AMXQ_OK. */
AMXQ_API amxq_status amxq_tile_release(void);

/* ---- Threads and NUMA ----------------------------------------------------------------------- */

/*
 * amxq never starts threads on its own. There are two ways to run one product on many cores
 * (docs/threads.md has a complete example):
 *
 *   1. The slice API, for an engine's own threads (ggml's ith / nth convention). One thread calls
 *      amxq_matmul_plan(); every thread then calls amxq_quantize_slice() (each quantizes its share
 *      of the rows of X into one shared workspace), all threads meet at the engine's barrier, and
 *      every thread calls amxq_matmul_slice() to compute its share of C. The shares are contiguous
 *      ranges of whole 16-column panels of W (each thread streams its own part of the weight);
 *      when there are few panels for the threads, the rows of X are split too. The result is
 *      bitwise identical to amxq_matmul_ex() with the same ISA, for any nth. MUL_MAT_ID has its
 *      own slice API of the same shape (amxq_matmul_id_plan(), below amxq_ctx_matmul_id()).
 *   2. An amxq_ctx: a small pool of persistent threads the caller creates and destroys, with a
 *      convenience product, amxq_ctx_matmul(), that drives the slice API itself.
 *
 * With libnuma (the build option `numa`), packed weights can be placed on a NUMA node,
 * interleaved over all nodes, or mirrored (one copy per node, each thread reading its own
 * node's copy). Without libnuma, or on a one-node machine, the same calls return plain aligned
 * memory and say so through their `placed` out-parameter.
 */

/* What the threads of one sliced product share. Filled by amxq_matmul_plan(); treat as
 * read-only (the slices check that it still describes the packed weight they are given). */
typedef struct amxq_plan {
    amxq_type type;        /* weight type */
    int64_t m, n, k;       /* rows of X and C, rows of W, weights per row */
    int64_t n_panels;      /* 16-column panels of W: ceil(n / 16) */
    amxq_isa isa;          /* the concrete kernel family every slice runs (never AUTO) */
    unsigned flags;        /* the amxq_matmul_params flags (AMXQ_KEEP_TILES) */
    size_t workspace_size; /* bytes of the shared workspace: amxq_workspace_size(type, m, k) */
} amxq_plan;

/** amxq_matmul_plan() : prepare a sliced product of M rows of X with a packed weight.
 *  @param packed  a packed weight (amxq_pack()), AMXQ_ALIGNMENT-byte aligned. With a mirror, any
 *                 of its copies (they share one header).
 *  @param m       rows of X and C, 1 <= m < 2^31.
 *  @param params  NULL, or: isa (AUTO resolves here, once, for all threads: every slice of this
 *                 plan runs the same kernels) and flags (AMXQ_KEEP_TILES). Its workspace fields
 *                 are ignored: the slices take the workspace explicitly.
 *  @param plan    receives the plan (untouched on failure).
 *  @return AMXQ_OK; AMXQ_ERR_NULL, AMXQ_ERR_ALIGNMENT, AMXQ_ERR_BAD_PACKED, AMXQ_ERR_SHAPE,
 *          AMXQ_ERR_ARG (unknown flag bits), AMXQ_ERR_ISA_UNKNOWN, AMXQ_ERR_ISA_UNSUPPORTED and
 *          the other failures of amxq_isa_check().
 *  Thread safe. Allocates nothing. */
AMXQ_API amxq_status amxq_matmul_plan(const void *packed, int64_t m,
                                      const amxq_matmul_params *params, amxq_plan *plan);

/** amxq_quantize_slice() : thread `ith` of `nth` quantizes its share of the rows of X (a
 *  contiguous range, possibly empty) into the shared workspace.
 *  @param plan            from amxq_matmul_plan().
 *  @param x               plan->m rows of plan->k floats, row m at x + m * ldx.
 *  @param ldx             row stride of X in floats, >= plan->k.
 *  @param workspace       shared by all threads of the product; AMXQ_ALIGNMENT-byte aligned,
 *                         must not overlap x.
 *  @param workspace_size  bytes at `workspace`, >= plan->workspace_size.
 *  @param ith, nth        this thread's index and the thread count: 1 <= nth, 0 <= ith < nth.
 *  Every thread 0..nth-1 must call it (with the same plan, x, workspace and nth), and all of them
 *  must have returned before any thread calls amxq_matmul_slice() on that workspace: that is the
 *  one point where the engine's threads meet (a barrier). Writes only its own rows' part of the
 *  workspace.
 *  @return AMXQ_OK; AMXQ_ERR_NULL, AMXQ_ERR_ARG (ith or nth out of range, or a plan that is not
 *          from amxq_matmul_plan()), AMXQ_ERR_STRIDE, AMXQ_ERR_BUFFER_SIZE, AMXQ_ERR_ALIGNMENT,
 *          AMXQ_ERR_OVERLAP, AMXQ_ERR_ISA_UNSUPPORTED.
 *  Thread safe: that is its purpose. Allocates nothing. */
AMXQ_API amxq_status amxq_quantize_slice(const amxq_plan *plan, const float *x, int64_t ldx,
                                         void *workspace, size_t workspace_size, int ith, int nth);

/** amxq_matmul_slice() : thread `ith` of `nth` computes its share of C = X * W^T from the
 *  quantized workspace: a contiguous range of whole panels (16 columns of C), some of them for a
 *  part of the rows only when panels are few. The shares of threads 0..nth-1 cover C exactly once.
 *  @param plan            from amxq_matmul_plan().
 *  @param packed          the packed weight the plan was made for (or, with a mirror, this
 *                         thread's node's copy: amxq_mirror_local()). AMXQ_ALIGNMENT-aligned.
 *  @param workspace       the workspace every thread's amxq_quantize_slice() has filled (after
 *                         the barrier). Read only; may be read by all threads at once.
 *  @param workspace_size  bytes at `workspace`, >= plan->workspace_size.
 *  @param c               plan->m rows of plan->n floats, row m at c + m * ldc; this call writes
 *                         only its share. Must not overlap packed or the workspace.
 *  @param ldc             row stride of C in floats, >= plan->n.
 *  @param ith, nth        as for amxq_quantize_slice() (nth may differ from the quantize step's).
 *  Unless plan->flags has AMXQ_KEEP_TILES, a slice that ran tile kernels releases the calling
 *  thread's tile state before it returns; a slice with nothing to compute touches no tile state.
 *  @return AMXQ_OK; AMXQ_ERR_NULL, AMXQ_ERR_ARG (ith or nth out of range, or a bad plan),
 *          AMXQ_ERR_ALIGNMENT, AMXQ_ERR_BAD_PACKED (also: not the weight the plan describes),
 *          AMXQ_ERR_STRIDE, AMXQ_ERR_BUFFER_SIZE, AMXQ_ERR_OVERLAP, AMXQ_ERR_ISA_UNSUPPORTED.
 *          On failure nothing is written.
 *  Thread safe: that is its purpose. Allocates nothing. */
AMXQ_API amxq_status amxq_matmul_slice(const amxq_plan *plan, const void *packed,
                                       const void *workspace, size_t workspace_size, float *c,
                                       int64_t ldc, int ith, int nth);

/* A pool of worker threads and a workspace, for amxq_ctx_matmul(). */
typedef struct amxq_ctx amxq_ctx;

/* Flags for amxq_ctx_params.flags. */
#define AMXQ_CTX_NUMA_NODE 1u /* run the workers on the CPUs of numa_node, workspace there too */

/* Options for amxq_ctx_create(). Zero-initialise, then set what you need. */
typedef struct amxq_ctx_params {
    int n_threads;   /* threads per product, the calling thread included (it is worker 0);
                        0: n_cpus if cpus is given, else the CPUs the caller may run on */
    const int *cpus; /* NULL, or CPU ids: worker i (1 <= i < n_threads) is pinned to cpus[i].
                        cpus[0] is not applied: amxq never changes the calling thread's affinity */
    int n_cpus;      /* entries in cpus; >= n_threads when cpus is given */
    int numa_node;   /* with AMXQ_CTX_NUMA_NODE: the node (< amxq_numa_node_count()) */
    unsigned flags;  /* AMXQ_CTX_NUMA_NODE */
} amxq_ctx_params;

/** amxq_ctx_create() : start a pool of n_threads - 1 worker threads (the thread calling a product
 *  is the n-th, worker 0).
 *  @param params  NULL (defaults: one thread per CPU in the calling thread's affinity mask), or
 *                 options as above.
 *  @param out     receives the context (NULL on failure).
 *  @return AMXQ_OK; AMXQ_ERR_NULL (out NULL), AMXQ_ERR_ARG (n_threads < 0 or > 4096, unknown
 *          flags, cpus with n_cpus < n_threads, a CPU id < 0 or outside the caller's affinity
 *          mask),
 *          AMXQ_ERR_NUMA (a node that does not exist; without libnuma only node 0 exists and
 *          binding to it does nothing), AMXQ_ERR_NOMEM, AMXQ_ERR_THREAD. On failure every
 *          thread already started is joined and nothing leaks.
 *  Worker threads block all signals and wait (spinning briefly, then sleeping) between products.
 *  Thread safe. */
AMXQ_API amxq_status amxq_ctx_create(const amxq_ctx_params *params, amxq_ctx **out);

/** amxq_ctx_destroy() : stop and join the workers, release each worker's tile state, free the
 *  context and its workspace. NULL does nothing. Must not run concurrently with another call on
 *  the same context. */
AMXQ_API void amxq_ctx_destroy(amxq_ctx *ctx);

/** amxq_ctx_threads() : threads per product of `ctx` (the calling thread included); 0 for NULL. */
AMXQ_API int amxq_ctx_threads(const amxq_ctx *ctx);

/** amxq_ctx_matmul() : amxq_matmul_ex() run by the threads of `ctx`: the calling thread and the
 *  workers quantize X and compute C in slices (amxq_quantize_slice(), amxq_matmul_slice()).
 *  Bitwise identical to amxq_matmul_ex() with the same ISA. A product of fewer than 2^18
 *  multiply-adds (M * N * K) runs on the calling thread alone: waking the pool would cost more.
 *  @param params  as for amxq_matmul_ex(). Without a workspace, the context's own is used (grown
 *                 when a product needs more, and then kept; placed on the context's node).
 *                 AMXQ_KEEP_TILES keeps tiles loaded on every thread of the product; the workers
 *                 release theirs when the context is destroyed, the caller with
 *                 amxq_tile_release().
 *  @return AMXQ_OK; the failures of amxq_matmul_ex() (AMXQ_ERR_NOMEM when the workspace cannot
 *          grow; the context stays usable), AMXQ_ERR_NULL for a NULL ctx. On failure C is
 *          untouched.
 *  Thread safe: calls on one context from several threads are serialised (one product at a time
 *  runs on its pool); use one context per engine thread to run products concurrently. */
AMXQ_API amxq_status amxq_ctx_matmul(amxq_ctx *ctx, const void *packed, const float *x, int64_t m,
                                     int64_t ldx, float *c, int64_t ldc,
                                     const amxq_matmul_params *params);

/* A packed weight with one copy per NUMA node (amxq_mirror_create()). */
typedef struct amxq_mirror amxq_mirror;

/** amxq_ctx_matmul_mirror() : amxq_ctx_matmul() where each thread reads the copy of `mirror` on
 *  the node it is running on (amxq_mirror_local()). Same statuses, plus AMXQ_ERR_NULL for a NULL
 *  mirror. */
AMXQ_API amxq_status amxq_ctx_matmul_mirror(amxq_ctx *ctx, const amxq_mirror *mirror,
                                            const float *x, int64_t m, int64_t ldx, float *c,
                                            int64_t ldc, const amxq_matmul_params *params);

/** amxq_numa_node_count() : NUMA nodes amxq can place memory on: numa_max_node() + 1 with a
 *  working libnuma, else 1. Node ids are 0 .. count - 1 (a node id may have no memory). */
AMXQ_API int amxq_numa_node_count(void);

/* Where amxq_packed_alloc() puts memory. */
typedef enum amxq_placement {
    AMXQ_PLACE_DEFAULT = 0,   /* plain aligned memory: the OS's default (first touch) */
    AMXQ_PLACE_NODE = 1,      /* every page on one node (mbind MPOL_BIND) */
    AMXQ_PLACE_INTERLEAVE = 2 /* pages interleaved over the nodes this process may use */
} amxq_placement;

/** amxq_packed_alloc() : allocate `size` bytes, AMXQ_ALIGNMENT-byte aligned, placed as asked, for
 *  a packed weight (or anything else). Pages are placed when first written.
 *  @param size       bytes, >= 1.
 *  @param placement  AMXQ_PLACE_DEFAULT, AMXQ_PLACE_NODE or AMXQ_PLACE_INTERLEAVE.
 *  @param node       for AMXQ_PLACE_NODE: 0 <= node < amxq_numa_node_count(); else ignored.
 *  @param out        receives the memory (NULL on failure); free it with amxq_packed_free().
 *  @param placed     if not NULL: 1 when libnuma placed the pages as asked, 0 when this is plain
 *                    aligned memory (AMXQ_PLACE_DEFAULT, a build without libnuma, a kernel
 *                    without NUMA, or a machine with one node, where placement is moot).
 *  @return AMXQ_OK; AMXQ_ERR_NULL, AMXQ_ERR_ARG (size 0, unknown placement, node < 0),
 *          AMXQ_ERR_NUMA (node >= amxq_numa_node_count(), or the kernel refused the policy),
 *          AMXQ_ERR_NOMEM.
 *  Thread safe. */
AMXQ_API amxq_status amxq_packed_alloc(size_t size, amxq_placement placement, int node, void **out,
                                       int *placed);

/** amxq_packed_free() : free memory from amxq_packed_alloc(). NULL does nothing. */
AMXQ_API void amxq_packed_free(void *p);

/** amxq_numa_node_of() : the node holding the page at `p` (which must have been written).
 *  @param node  receives the node; 0 where libnuma is absent or there is one node.
 *  @return AMXQ_OK; AMXQ_ERR_NULL; AMXQ_ERR_NUMA (the kernel cannot say, e.g. an unmapped or
 *          never-written page). Thread safe. */
AMXQ_API amxq_status amxq_numa_node_of(const void *p, int *node);

/** amxq_mirror_create() : copy a packed weight onto every NUMA node (one copy each, placed with
 *  AMXQ_PLACE_NODE), so that each thread can read its own node's copy. `packed` is not kept: free
 *  it afterwards if you like.
 *  @param packed  a packed weight (any alignment); its header is validated.
 *  @param out     receives the mirror (NULL on failure).
 *  @param placed  if not NULL: 1 when there is one copy per node placed by libnuma, 0 when the
 *                 mirror holds a single plain copy (no libnuma, or one node).
 *  @return AMXQ_OK; AMXQ_ERR_NULL, AMXQ_ERR_BAD_PACKED, AMXQ_ERR_NUMA, AMXQ_ERR_NOMEM.
 *  Thread safe. */
AMXQ_API amxq_status amxq_mirror_create(const void *packed, amxq_mirror **out, int *placed);

/** amxq_mirror_destroy() : free every copy and the mirror. NULL does nothing. */
AMXQ_API void amxq_mirror_destroy(amxq_mirror *mirror);

/** amxq_mirror_get() : the copy on `node` (a packed weight, AMXQ_ALIGNMENT-aligned, read-only);
 *  the first copy when the mirror has none for that node (e.g. a single plain copy). NULL for a
 *  NULL mirror. Thread safe. */
AMXQ_API const void *amxq_mirror_get(const amxq_mirror *mirror, int node);

/** amxq_mirror_local() : amxq_mirror_get() for the node of the CPU the calling thread is running
 *  on now (sched_getcpu()). A thread that can migrate between nodes should be pinned. */
AMXQ_API const void *amxq_mirror_local(const amxq_mirror *mirror);

/* ---- Mixture-of-experts products (MUL_MAT_ID) ---------------------------------------------- */

/** amxq_matmul_id() : ggml's MUL_MAT_ID on packed expert weights. For every token t < n_tokens
 *  and slot s < n_slots, with e = ids[t * ld_ids + s] (0 <= e < n_experts):
 *    C[t * ldc_token + s * ldc_slot + n] =
 *        sum_k X[t * ldx_token + (s % x_slots) * ldx_slot + k] * W_e[n][k],   n < N
 *  experts[e] are packed weights of one type, N and K. x_slots is 1 (one activation row per token,
 *  shared by its slots: the up and gate projections) or n_slots (a row per slot: the down
 *  projection). Strides are in floats.
 *  @param experts    n_experts pointers; each non-NULL one a packed weight, AMXQ_ALIGNMENT-aligned,
 *                    all of the same type, N and K. A NULL expert is allowed if no id names it.
 *  @param n_experts  1 <= n_experts < 2^31.
 *  @param x          the activations, read only at the rows the formula names.
 *  @param x_slots    1 or n_slots.
 *  @param ldx_slot   >= K when x_slots > 1 (else unused).
 *  @param ldx_token  >= K when n_tokens > 1 (else unused).
 *  @param ids        the routing: n_tokens rows of n_slots expert ids, row t at ids + t * ld_ids.
 *                    An id may repeat within a row.
 *  @param n_slots    experts per token (top-k), >= 1.
 *  @param ld_ids     >= n_slots when n_tokens > 1 (else unused).
 *  @param n_tokens   >= 1; n_tokens * n_slots < 2^31.
 *  @param c          n_tokens * n_slots rows of N floats, overwritten; nothing else is written
 *                    (elements between rows keep their values).
 *  @param ldc_slot   >= N when n_slots > 1 (else unused).
 *  @param ldc_token  >= N when n_tokens > 1 (else unused).
 *  @param params     as for amxq_matmul_ex(): isa (AUTO: chosen per expert by its row count, so
 *                    an expert with many rows may run on AMX and one with few on AVX-512 VNNI),
 *                    flags (AMXQ_KEEP_TILES), and an optional workspace of at least
 *                    amxq_matmul_id_workspace_size(type, N, K, n_experts, x_slots, n_slots,
 *                    n_tokens, 1) bytes (without one the call allocates and frees it).
 *
 *  Rows are grouped by expert and each expert's rows run through the kernels of amxq_matmul();
 *  each distinct row of X is quantized once (x_slots = 1: once per token, not once per slot); an
 *  expert no token chose costs only its header check. Every element of C has exactly the bits
 *  amxq_matmul() gives for that row of X and that expert (the numeric contract above), whatever
 *  the routing, the grouping, the kernel family or the threads.
 *
 *  Checks, all made before anything is written (on failure C is untouched). What they cost:
 *    O(1):                  params, shapes, strides, C against X, ids and the experts array;
 *    O(n_experts):          every non-NULL expert: alignment, a valid header equal to the first
 *                           expert's (same type, N, K), no overlap with C (or the workspace);
 *    O(n_tokens * n_slots): every id in range and naming a non-NULL expert;
 *    O(min(n_tokens, n_slots)): rows of C overlapping each other.
 *  @return AMXQ_OK;
 *          AMXQ_ERR_NULL          experts, x, ids or c NULL; every expert NULL; an id names a NULL
 *                                 expert;
 *          AMXQ_ERR_SHAPE         n_experts, n_slots or n_tokens out of range, or their product;
 *          AMXQ_ERR_ARG           x_slots neither 1 nor n_slots; an id < 0 or >= n_experts;
 *                                 unknown flag bits;
 *          AMXQ_ERR_ALIGNMENT     an expert or the workspace not AMXQ_ALIGNMENT-aligned;
 *          AMXQ_ERR_BAD_PACKED    an expert is not a valid packed weight, or differs from the
 *                                 first non-NULL expert in type, N or K;
 *          AMXQ_ERR_STRIDE        a used stride smaller than its row (ldx_* < K, ld_ids < n_slots,
 *                                 ldc_* < N) or an extent that overflows;
 *          AMXQ_ERR_OVERLAP       two rows of C share an element (e.g. ldc_token = ldc_slot = N
 *                                 with n_slots = 2: token 1 slot 0 is token 0 slot 1), or the
 *                                 range C spans meets X, ids, the experts array or an expert
 *                                 buffer; a workspace meeting any of those or C;
 *          AMXQ_ERR_BUFFER_SIZE   a workspace smaller than the size query says;
 *          AMXQ_ERR_NOMEM, and the ISA failures of amxq_matmul_ex() (AMXQ_ERR_ISA_UNKNOWN,
 *          AMXQ_ERR_ISA_UNSUPPORTED, AMXQ_ERR_NO_AMX, ...).
 *  Thread safe. Tiles, if used, are released before returning unless AMXQ_KEEP_TILES. */
AMXQ_API amxq_status amxq_matmul_id(const void *const *experts, int64_t n_experts, const float *x,
                                    int64_t x_slots, int64_t ldx_slot, int64_t ldx_token,
                                    const int32_t *ids, int64_t n_slots, int64_t ld_ids,
                                    int64_t n_tokens, float *c, int64_t ldc_slot, int64_t ldc_token,
                                    const amxq_matmul_params *params);

/** amxq_matmul_id_workspace_size() : bytes of workspace amxq_matmul_id() (n_threads = 1) or
 *  amxq_ctx_matmul_id() (n_threads = amxq_ctx_threads(ctx)) needs for experts of (type, N, K):
 *  the distinct rows quantized, the grouping, and per thread a gather block and a temporary C of
 *  at most 256 rows. A multiple of AMXQ_ALIGNMENT; 0 for an impossible request. */
AMXQ_API size_t amxq_matmul_id_workspace_size(amxq_type type, int64_t n, int64_t k,
                                              int64_t n_experts, int64_t x_slots, int64_t n_slots,
                                              int64_t n_tokens, int n_threads);

/** amxq_ctx_matmul_id() : amxq_matmul_id() run by the threads of `ctx`: they quantize the
 *  distinct rows, then share the grid of (used expert, 16-column panel, row) cells in equal runs
 *  (decode: whole experts per thread; prompts: experts and 32-row blocks; one busy expert: its
 *  panels). Bitwise identical to amxq_matmul_id() with the same params. A product of fewer than
 *  2^18 multiply-adds (n_tokens * n_slots * N * K) runs on the calling thread alone.
 *  The arguments after ctx are amxq_matmul_id()'s; a caller workspace must hold
 *  amxq_matmul_id_workspace_size(..., amxq_ctx_threads(ctx)) bytes, else the context's own is
 *  used (grown and kept, as for amxq_ctx_matmul()).
 *  @return amxq_matmul_id()'s statuses; AMXQ_ERR_NULL for a NULL ctx. On failure C is untouched.
 *  Thread safe: calls on one context are serialised with its other products. */
AMXQ_API amxq_status amxq_ctx_matmul_id(amxq_ctx *ctx, const void *const *experts,
                                        int64_t n_experts, const float *x, int64_t x_slots,
                                        int64_t ldx_slot, int64_t ldx_token, const int32_t *ids,
                                        int64_t n_slots, int64_t ld_ids, int64_t n_tokens, float *c,
                                        int64_t ldc_slot, int64_t ldc_token,
                                        const amxq_matmul_params *params);

/*
 * The expert product on an engine's own threads (ggml's ith / nth, like amxq_matmul_plan() and
 * its slices for the dense product). One thread calls amxq_matmul_id_plan() (shapes only: the
 * ids need not exist yet, so an engine can size its work buffer while planning its graph);
 * every thread calls amxq_quantize_id_slice() (its share of the distinct rows of X into the
 * shared workspace); all threads meet at the engine's barrier; every thread calls
 * amxq_matmul_id_slice(), which groups the (token, slot) pairs by expert on its own (the same
 * grouping on every thread, from the ids alone) and computes its run of the grid of (used expert,
 * panel, row) cells, cut as for amxq_ctx_matmul_id(). Every element of C has the bits
 * amxq_matmul_id() gives with the same params, for any nth (the numeric contract).
 */

/* What the threads of one sliced expert product share. Filled by amxq_matmul_id_plan(); treat as
 * read-only (the slices check that it is still consistent). */
typedef struct amxq_id_plan {
    amxq_type type;        /* the experts' type */
    int64_t n, k;          /* rows of each expert (columns of C), weights per row */
    int64_t n_experts;     /* entries of the experts array */
    int64_t x_slots;       /* 1 or n_slots, as for amxq_matmul_id() */
    int64_t n_slots;       /* experts per token */
    int64_t n_tokens;      /* tokens */
    int n_threads;         /* the most threads of a compute step (its nth <= n_threads) */
    amxq_isa isa;          /* params' isa: AUTO (per expert by its row count) or a forced family */
    unsigned flags;        /* the amxq_matmul_params flags (AMXQ_KEEP_TILES) */
    size_t workspace_size; /* bytes of the shared workspace */
} amxq_id_plan;

/** amxq_matmul_id_plan() : prepare a sliced amxq_matmul_id() for experts of (type, N, K).
 *  @param type, n, k            the experts' type and shape (what amxq_packed_info() says of
 *                               each of them).
 *  @param n_experts, x_slots, n_slots, n_tokens   as for amxq_matmul_id().
 *  @param n_threads             the most threads any compute step of this plan will use,
 *                               1 ... 4096: the workspace holds a block per compute thread.
 *  @param params                NULL, or isa (AUTO or a forced family, checked here and again
 *                               by the slices) and flags (AMXQ_KEEP_TILES); the workspace fields
 *                               are ignored (the slices take the workspace explicitly).
 *  @param plan                  receives the plan (untouched on failure); plan->workspace_size
 *                               is the workspace the slices need: the quantized distinct rows,
 *                               then per compute thread its grouping of the pairs, a gather
 *                               block and a temporary C of at most 256 rows.
 *  @return AMXQ_OK; AMXQ_ERR_ISA_UNKNOWN (params' isa), AMXQ_ERR_ARG (unknown flag bits, x_slots
 *          neither 1 nor n_slots, n_threads out of range), AMXQ_ERR_NULL (plan), AMXQ_ERR_TYPE,
 *          AMXQ_ERR_SHAPE, AMXQ_ERR_K_BLOCK (the experts' shape, or n_experts, n_slots,
 *          n_tokens or their product out of range, or a workspace that overflows), and the
 *          failures of amxq_isa_check() for the ISA.
 *  Thread safe. Allocates nothing. */
AMXQ_API amxq_status amxq_matmul_id_plan(amxq_type type, int64_t n, int64_t k, int64_t n_experts,
                                         int64_t x_slots, int64_t n_slots, int64_t n_tokens,
                                         int n_threads, const amxq_matmul_params *params,
                                         amxq_id_plan *plan);

/** amxq_quantize_id_slice() : thread `ith` of `nth` quantizes the distinct rows of X of its share
 *  of the tokens (a contiguous range, possibly empty) into the shared workspace.
 *  @param plan            from amxq_matmul_id_plan().
 *  @param x               the activations, row (t, s) at x + t * ldx_token + s * ldx_slot for
 *                         s < plan->x_slots: as for amxq_matmul_id().
 *  @param ldx_slot        >= K when plan->x_slots > 1 (else unused).
 *  @param ldx_token       >= K when plan->n_tokens > 1 (else unused).
 *  @param workspace       shared by all threads; AMXQ_ALIGNMENT-aligned, must not overlap x.
 *  @param workspace_size  bytes at `workspace`, >= plan->workspace_size.
 *  @param ith, nth        1 <= nth (any count, not bounded by plan->n_threads), 0 <= ith < nth.
 *  Every thread 0..nth-1 must call it, and all must have returned before any thread calls
 *  amxq_matmul_id_slice() on that workspace (the engine's barrier). Writes only its tokens' rows
 *  of the shared part of the workspace. Needs neither the experts nor the ids.
 *  @return AMXQ_OK; AMXQ_ERR_NULL, AMXQ_ERR_ARG (ith or nth out of range, or a plan that is not
 *          from amxq_matmul_id_plan()), AMXQ_ERR_STRIDE, AMXQ_ERR_BUFFER_SIZE,
 *          AMXQ_ERR_ALIGNMENT, AMXQ_ERR_OVERLAP, the failures of amxq_isa_check() for the ISA.
 *  Thread safe: that is its purpose. Allocates nothing. */
AMXQ_API amxq_status amxq_quantize_id_slice(const amxq_id_plan *plan, const float *x,
                                            int64_t ldx_slot, int64_t ldx_token, void *workspace,
                                            size_t workspace_size, int ith, int nth);

/** amxq_matmul_id_slice() : thread `ith` of `nth` computes its share of C after the barrier.
 *  @param plan            from amxq_matmul_id_plan().
 *  @param experts         plan->n_experts pointers, as for amxq_matmul_id(); every non-NULL one
 *                         of plan's type, N and K.
 *  @param ids, ld_ids     the routing, as for amxq_matmul_id(); the same on every thread.
 *  @param workspace       the workspace every thread's amxq_quantize_id_slice() has filled. Its
 *                         shared part is only read; thread ith writes its own block (grouping,
 *                         gather block, temporary C), so the workspace must not overlap C, the
 *                         ids, the experts array or an expert.
 *  @param workspace_size  bytes at `workspace`, >= plan->workspace_size.
 *  @param c, ldc_slot, ldc_token   as for amxq_matmul_id(); this call writes only its share.
 *  @param ith, nth        1 <= nth <= plan->n_threads, 0 <= ith < nth (nth may differ from the
 *                         quantize step's). Threads 0..nth-1 together write every row of C once.
 *  The share: the grid of (used expert, 16-column panel, row) cells, experts in index order, cut
 *  into nth runs of equal cells with each cut moved to a multiple of 32 rows or a panel edge.
 *  Each slice groups the pairs itself (O(n_tokens * n_slots + n_experts), as its checks), so
 *  nothing it writes is addressed by what another thread wrote. Unless plan->flags has
 *  AMXQ_KEEP_TILES, a slice that ran tile kernels releases the thread's tile state on return.
 *  @return AMXQ_OK; AMXQ_ERR_NULL (a NULL argument, every expert NULL, an id naming a NULL
 *          expert), AMXQ_ERR_ARG (ith or nth out of range, nth > plan->n_threads, a bad plan, an
 *          id out of range), AMXQ_ERR_ALIGNMENT, AMXQ_ERR_BAD_PACKED (also: experts that are not
 *          of the plan's type, N and K), AMXQ_ERR_STRIDE, AMXQ_ERR_BUFFER_SIZE, AMXQ_ERR_OVERLAP
 *          (rows of C sharing an element; C or the workspace meeting an input or each other),
 *          the failures of amxq_isa_check() for the ISA. On failure nothing is written.
 *  Thread safe: that is its purpose. Allocates nothing. */
AMXQ_API amxq_status amxq_matmul_id_slice(const amxq_id_plan *plan, const void *const *experts,
                                          const int32_t *ids, int64_t ld_ids, void *workspace,
                                          size_t workspace_size, float *c, int64_t ldc_slot,
                                          int64_t ldc_token, int ith, int nth);

/* ---- Logging -------------------------------------------------------------------------------- */

/* Receives one line (no newline) describing a failed check: "file:line: condition". */
typedef void (*amxq_log_fn)(void *user, const char *message);

/** amxq_set_log() : install a callback for diagnostic messages (NULL: none, the default). The
 *  library never prints on its own. Not meant to be changed while other threads call amxq. */
AMXQ_API void amxq_set_log(amxq_log_fn fn, void *user);

#ifdef __cplusplus
}
#endif

#endif /* AMXQ_H_6A1F0C3E */
