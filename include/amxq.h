/*
 * amxq — Intel AMX int8 kernels for ggml-quantized matrix products.
 *
 * This is the whole public API. It computes
 *
 *     C[m][n] = sum_k X[m][k] * W[n][k]        (m < M, n < N, k < K)
 *
 * for f32 activations X and weights W given in ggml's block formats (Q4_0,
 * Q4_1, Q8_0, Q4_K). Weights are packed once into a self-describing layout
 * made for AMX tiles and AVX-512 VNNI; every product then runs on the best
 * kernel this CPU and OS allow (AMX, AVX-512 VNNI, or portable C), chosen at
 * run time. Numerics follow ggml's CPU path: activations are quantized per
 * row into the type ggml pairs with the weight type (Q8_0, Q8_1 or Q8_K).
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
#define AMXQ_VERSION_MINOR 1
#define AMXQ_VERSION_PATCH 0
#define AMXQ_VERSION_NUMBER                                                                        \
    (AMXQ_VERSION_MAJOR * 10000 + AMXQ_VERSION_MINOR * 100 + AMXQ_VERSION_PATCH)
#define AMXQ_STRINGIFY_(x) #x
#define AMXQ_STRINGIFY(x) AMXQ_STRINGIFY_(x)
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

/** amxq_version_string() : the library's AMXQ_VERSION_STRING, e.g. "0.1.0". Never NULL. */
AMXQ_API const char *amxq_version_string(void);

/* ---- Status --------------------------------------------------------------------------------- */

/* Values are pinned: they never change meaning between releases. */
typedef enum amxq_status {
    AMXQ_OK = 0,
    AMXQ_ERR_NULL = -1,            /* a required pointer argument is NULL */
    AMXQ_ERR_TYPE = -2,            /* not an amxq_type this library supports */
    AMXQ_ERR_SHAPE = -3,           /* M, N or K is zero, negative or too large */
    AMXQ_ERR_K_BLOCK = -4,         /* K is not a multiple of the type's block size */
    AMXQ_ERR_STRIDE = -5,          /* ldx < K or ldc < N */
    AMXQ_ERR_BUFFER_SIZE = -6,     /* a buffer is smaller than the call needs */
    AMXQ_ERR_BAD_PACKED = -7,      /* not a packed weight: magic, version, checksum or layout */
    AMXQ_ERR_ALIGNMENT = -8,       /* a buffer is not AMXQ_ALIGNMENT-byte aligned */
    AMXQ_ERR_NOMEM = -9,           /* memory allocation failed */
    AMXQ_ERR_ISA_UNKNOWN = -10,    /* an ISA name or value amxq does not know */
    AMXQ_ERR_ISA_UNSUPPORTED = -11, /* the ISA asked for cannot run on this CPU / OS / build */
    AMXQ_ERR_NO_AMX = -12,         /* CPUID reports no AMX-TILE / AMX-INT8 */
    AMXQ_ERR_AMX_OS = -13,         /* the OS has not enabled tile state (XCR0 bits 17, 18) */
    AMXQ_ERR_AMX_PERMISSION = -14, /* the kernel refused the tile-data permission request */
    AMXQ_ERR_ARG = -15,            /* another argument is out of range (named in the docs) */
    AMXQ_ERR_THREAD = -16,         /* creating or joining a thread failed */
    AMXQ_ERR_NUMA = -17,           /* a NUMA request the system cannot satisfy */
    AMXQ_ERR_OVERLAP = -18         /* an output buffer overlaps an input buffer */
} amxq_status;

/** amxq_status_str() : a short English description of `status`. Never NULL; unknown values give
 *  "unknown amxq status". */
AMXQ_API const char *amxq_status_str(amxq_status status);

/* ---- Types -------------------------------------------------------------------------------- */

/* The weight types. The values are ggml's `enum ggml_type` values, so an engine can pass its own
 * type through unchanged. */
typedef enum amxq_type {
    AMXQ_TYPE_Q4_0 = 2,  /* 32 weights in 18 bytes; activations as Q8_0 */
    AMXQ_TYPE_Q4_1 = 3,  /* 32 weights in 20 bytes; activations as Q8_1 */
    AMXQ_TYPE_Q8_0 = 8,  /* 32 weights in 34 bytes; activations as Q8_0 */
    AMXQ_TYPE_Q4_K = 12  /* 256 weights in 144 bytes; activations as Q8_K */
} amxq_type;

/** amxq_type_name() : "q4_0", "q4_1", "q8_0", "q4_k"; NULL for a value that is not an amxq_type. */
AMXQ_API const char *amxq_type_name(amxq_type type);

/** amxq_type_block() : weights per ggml block (32, or 256 for Q4_K); 0 for an unknown type. */
AMXQ_API int64_t amxq_type_block(amxq_type type);

/** amxq_type_block_bytes() : bytes per ggml block (18, 20, 34, 144); 0 for an unknown type. */
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
 *          AMXQ_ERR_STRIDE, AMXQ_ERR_OVERLAP, AMXQ_ERR_NOMEM, AMXQ_ERR_ISA_UNSUPPORTED (a forced
 *          ISA this CPU cannot run), AMXQ_ERR_ISA_UNKNOWN (AMXQ_ISA names no ISA).
 *  On failure C is untouched. Tiles, if used, are released before returning. */
AMXQ_API amxq_status amxq_matmul(const void *packed, const float *x, int64_t m, int64_t ldx,
                                 float *c, int64_t ldc);

/* Which kernels to run. AUTO is the process-wide choice; the others force one kernel family. */
typedef enum amxq_isa {
    AMXQ_ISA_AUTO = 0,       /* best for this CPU and M (process-wide override applies) */
    AMXQ_ISA_SCALAR = 1,     /* portable C reference ("scalar") */
    AMXQ_ISA_AVX512 = 2,     /* AVX-512 VNNI ("avx512") */
    AMXQ_ISA_AMX = 3,        /* AMX-INT8 tiles ("amx") */
    AMXQ_ISA_AMX_EMU = 4,    /* AMX kernels on the tile emulator ("amx-emu"); for testing */
    AMXQ_ISA_AVX512_EMU = 5  /* AVX-512 kernels on emulated vectors ("avx512-emu"); for testing */
} amxq_isa;
#define AMXQ_ISA_COUNT 6

/* Flags for amxq_matmul_params.flags. */
#define AMXQ_KEEP_TILES 1u /* leave this thread's tile configuration loaded on return (hot loops);
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
 *  AMXQ_ERR_ISA_UNSUPPORTED; an isa value outside amxq_isa returns AMXQ_ERR_ISA_UNKNOWN; unknown
 *  flag bits return AMXQ_ERR_ARG; a workspace that is too small AMXQ_ERR_BUFFER_SIZE, misaligned
 *  AMXQ_ERR_ALIGNMENT, overlapping x, c or packed AMXQ_ERR_OVERLAP. */
AMXQ_API amxq_status amxq_matmul_ex(const void *packed, const float *x, int64_t m, int64_t ldx,
                                    float *c, int64_t ldc, const amxq_matmul_params *params);

/* ---- Activation quantization ---------------------------------------------------------------- */

/** amxq_quantize_row() : quantize K floats into the ggml activation blocks ggml's x86 CPU path
 *  pairs with `weight_type` (Q8_0 for Q4_0/Q8_0, Q8_1 for Q4_1, Q8_K for Q4_K), byte for byte as
 *  ggml writes them: 34, 36 or 292 bytes per block.
 *  @param dst       destination; dst_size must be >= (K / block) * block bytes.
 *  @return AMXQ_OK; AMXQ_ERR_NULL, AMXQ_ERR_TYPE, AMXQ_ERR_SHAPE, AMXQ_ERR_K_BLOCK,
 *          AMXQ_ERR_BUFFER_SIZE. */
AMXQ_API amxq_status amxq_quantize_row(amxq_type weight_type, const float *x, int64_t k,
                                       void *dst, size_t dst_size);

/* ---- ISA choice ----------------------------------------------------------------------------- */

/** amxq_isa_name() : "auto", "scalar", "avx512", "amx", "amx-emu", "avx512-emu"; NULL if unknown. */
AMXQ_API const char *amxq_isa_name(amxq_isa isa);

/** amxq_isa_parse() : the amxq_isa named by `name` (the names of amxq_isa_name()).
 *  @return AMXQ_OK; AMXQ_ERR_NULL, AMXQ_ERR_ISA_UNKNOWN. */
AMXQ_API amxq_status amxq_isa_parse(const char *name, amxq_isa *isa);

/** amxq_isa_check() : whether kernels of `isa` can run here (CPU, OS permission and build).
 *  @return AMXQ_OK; AMXQ_ERR_ISA_UNKNOWN, AMXQ_ERR_ISA_UNSUPPORTED, or for AMX the reason:
 *          AMXQ_ERR_NO_AMX, AMXQ_ERR_AMX_OS, AMXQ_ERR_AMX_PERMISSION. May request AMX permission. */
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
    char vendor[13];      /* CPUID leaf 0, e.g. "GenuineIntel" */
    char brand[49];       /* CPUID 0x80000002..4 */
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
     * AMXQ_ERR_NO_AMX, AMXQ_ERR_AMX_OS or AMXQ_ERR_AMX_PERMISSION. Filled by amxq_cpu_info_get()
     * only after amxq_request_amx_permission() has run (it is not requested just to answer). */
    amxq_status amx_status;
    uint8_t amx_permission_requested; /* whether the request has been made in this process */
    uint8_t build_avx512;             /* the library was built with its AVX-512 kernels */
    uint8_t build_amx;                /* the library was built with its AMX kernels */
    uint8_t build_emu;                /* the library was built with its emulated kernels */
} amxq_cpu_info;

/** amxq_cpu_info_get() : what this CPU, OS and build offer. Does not request AMX permission.
 *  @return AMXQ_OK; AMXQ_ERR_NULL. */
AMXQ_API amxq_status amxq_cpu_info_get(amxq_cpu_info *info);

/** amxq_request_amx_permission() : make tile instructions usable in this process (on Linux,
 *  arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) if not yet granted, then re-read to
 *  confirm). Idempotent and thread safe: the first answer is cached for the process.
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
