/*
 * Public entry points: validate every argument, then hand over to the kernel table. Kernels
 * never see unchecked input (the invariants are listed in src/internal.h), and nothing here
 * knows how a kernel is implemented.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "dispatch/thresholds.h"
#include "internal.h"
#include "pack/pack.h"
#include "ref/ref.h"

/* ---- Version, status, log ------------------------------------------------------------------- */

unsigned amxq_version_number(void)
{
    return AMXQ_VERSION_NUMBER;
}

const char *amxq_version_string(void)
{
    return AMXQ_VERSION_STRING;
}

const char *amxq_status_str(amxq_status status)
{
    switch (status) {
    case AMXQ_OK:
        return "success";
    case AMXQ_ERR_NULL:
        return "a required pointer is NULL";
    case AMXQ_ERR_TYPE:
        return "unknown or unsupported weight type";
    case AMXQ_ERR_SHAPE:
        return "M, N or K is zero, negative or too large";
    case AMXQ_ERR_K_BLOCK:
        return "K is not a multiple of the type's block size";
    case AMXQ_ERR_STRIDE:
        return "row stride smaller than a row (ldx < K or ldc < N)";
    case AMXQ_ERR_BUFFER_SIZE:
        return "buffer too small";
    case AMXQ_ERR_BAD_PACKED:
        return "not a valid amxq packed weight (magic, version, checksum or layout)";
    case AMXQ_ERR_ALIGNMENT:
        return "buffer not 64-byte aligned";
    case AMXQ_ERR_NOMEM:
        return "out of memory";
    case AMXQ_ERR_ISA_UNKNOWN:
        return "unknown ISA name or value";
    case AMXQ_ERR_ISA_UNSUPPORTED:
        return "ISA not available on this CPU, OS or build";
    case AMXQ_ERR_NO_AMX:
        return "CPU has no AMX-TILE/AMX-INT8";
    case AMXQ_ERR_AMX_OS:
        return "OS has not enabled AMX tile state (XCR0 bits 17-18)";
    case AMXQ_ERR_AMX_PERMISSION:
        return "kernel refused AMX tile-data permission (arch_prctl)";
    case AMXQ_ERR_ARG:
        return "argument out of range";
    case AMXQ_ERR_THREAD:
        return "thread creation or join failed";
    case AMXQ_ERR_NUMA:
        return "NUMA request cannot be satisfied";
    case AMXQ_ERR_OVERLAP:
        return "output buffer overlaps an input";
    case AMXQ_ERR_SELFTEST:
        return "ISA's kernels failed their start-up self-test against the reference";
    }
    return "unknown amxq status";
}

static amxq_log_fn log_fn;
static void *log_user;

void amxq_set_log(amxq_log_fn fn, void *user)
{
    log_fn = fn;
    log_user = user;
}

void amxq_log_failure(const char *file, int line, const char *cond)
{
    if (!log_fn)
        return;
    char msg[256];
    snprintf(msg, sizeof msg, "%s:%d: check failed: %s", file, line, cond);
    log_fn(log_user, msg);
}

/* ---- Packing ------------------------------------------------------------------------------- */

amxq_status amxq_pack(amxq_type type, const void *ggml_rows, int64_t n, int64_t k, void *packed,
                      size_t packed_size)
{
    amxq_layout lo;
    AMXQ_TRY(amxq_layout_init(&lo, type, n, k));
    AMXQ_CHECK(ggml_rows != NULL && packed != NULL, AMXQ_ERR_NULL);
    AMXQ_CHECK(amxq_is_aligned(packed), AMXQ_ERR_ALIGNMENT);
    AMXQ_CHECK(packed_size >= lo.total_bytes, AMXQ_ERR_BUFFER_SIZE);
    const size_t ggml_bytes = amxq_ggml_size(type, n, k);
    AMXQ_CHECK(ggml_bytes != 0, AMXQ_ERR_SHAPE);
    AMXQ_CHECK(!amxq_overlaps(ggml_rows, ggml_bytes, packed, lo.total_bytes), AMXQ_ERR_OVERLAP);

    amxq_header_write(packed, &lo);
    amxq_pack_panels(&lo, (const uint8_t *)ggml_rows, (uint8_t *)packed, 0, lo.n_panels);
    return AMXQ_OK;
}

amxq_status amxq_unpack(const void *packed, void *ggml_rows, size_t ggml_size)
{
    amxq_layout lo;
    AMXQ_CHECK(packed != NULL && ggml_rows != NULL, AMXQ_ERR_NULL);
    AMXQ_TRY(amxq_layout_read(&lo, packed, SIZE_MAX));
    const size_t need = amxq_ggml_size(lo.type, lo.n, lo.k);
    AMXQ_CHECK(need != 0, AMXQ_ERR_BAD_PACKED);
    AMXQ_CHECK(ggml_size >= need, AMXQ_ERR_BUFFER_SIZE);
    AMXQ_CHECK(!amxq_overlaps(packed, lo.total_bytes, ggml_rows, need), AMXQ_ERR_OVERLAP);
    amxq_unpack_panels(&lo, (const uint8_t *)packed, (uint8_t *)ggml_rows, 0, lo.n_panels);
    return AMXQ_OK;
}

amxq_status amxq_packed_info(const void *packed, size_t size, amxq_packed_desc *desc)
{
    amxq_layout lo;
    AMXQ_CHECK(packed != NULL && desc != NULL, AMXQ_ERR_NULL);
    AMXQ_TRY(amxq_layout_read(&lo, packed, size));
    desc->type = lo.type;
    desc->n = lo.n;
    desc->k = lo.k;
    desc->bytes = lo.total_bytes;
    desc->ggml_bytes = amxq_ggml_size(lo.type, lo.n, lo.k);
    desc->format_version = AMXQ_PACKED_FORMAT_VERSION;
    desc->panel_n = AMXQ_PANEL_N;
    return AMXQ_OK;
}

/* ---- ISA choice ---------------------------------------------------------------------------- */

static const char *const isa_names[AMXQ_ISA_COUNT] = {
    [AMXQ_ISA_AUTO] = "auto", [AMXQ_ISA_SCALAR] = "scalar",   [AMXQ_ISA_AVX512] = "avx512",
    [AMXQ_ISA_AMX] = "amx",   [AMXQ_ISA_AMX_EMU] = "amx-emu", [AMXQ_ISA_AVX512_EMU] = "avx512-emu",
};

const char *amxq_isa_name(amxq_isa isa)
{
    return (int)isa >= 0 && (int)isa < AMXQ_ISA_COUNT ? isa_names[isa] : NULL;
}

amxq_status amxq_isa_parse(const char *name, amxq_isa *isa)
{
    AMXQ_CHECK(name != NULL && isa != NULL, AMXQ_ERR_NULL);
    for (int i = 0; i < AMXQ_ISA_COUNT; i++) {
        if (strcmp(name, isa_names[i]) == 0) {
            *isa = (amxq_isa)i;
            return AMXQ_OK;
        }
    }
    return AMXQ_ERR_ISA_UNKNOWN;
}

amxq_status amxq_isa_check(amxq_isa isa)
{
    AMXQ_CHECK((int)isa >= 0 && (int)isa < AMXQ_ISA_COUNT, AMXQ_ERR_ISA_UNKNOWN);
    if (isa == AMXQ_ISA_AUTO)
        return AMXQ_OK;
    amxq_status why;
    amxq_kernels_get(isa, &why);
    return why;
}

/*
 * The process-wide choice: which ISA (AUTO unless forced) and whether it can run, packed into one
 * atomic word so readers never see a half-updated pair: bits 0-7 the isa, bits 8+ minus the status.
 */
static atomic_int isa_choice;
static pthread_once_t isa_env_once = PTHREAD_ONCE_INIT;

static int choice_encode(amxq_isa isa, amxq_status st)
{
    return (int)isa | ((-(int)st) << 8);
}

static void isa_from_env(void)
{
    const char *env = getenv("AMXQ_ISA");
    amxq_isa isa = AMXQ_ISA_AUTO;
    amxq_status st = AMXQ_OK;
    if (env != NULL && env[0] != '\0') {
        st = amxq_isa_parse(env, &isa);
        if (st == AMXQ_OK)
            st = amxq_isa_check(isa);
        else
            isa = AMXQ_ISA_AUTO; /* keeps the error: every product reports it */
    }
    atomic_store(&isa_choice, choice_encode(isa, st));
}

amxq_isa amxq_get_isa(amxq_status *status)
{
    pthread_once(&isa_env_once, isa_from_env);
    int v = atomic_load(&isa_choice);
    if (status)
        *status = (amxq_status)(-(v >> 8));
    return (amxq_isa)(v & 0xff);
}

amxq_status amxq_set_isa(amxq_isa isa)
{
    AMXQ_TRY(amxq_isa_check(isa));
    pthread_once(&isa_env_once, isa_from_env); /* so a later first read cannot undo this */
    atomic_store(&isa_choice, choice_encode(isa, AMXQ_OK));
    return AMXQ_OK;
}

amxq_status amxq_resolve_isa(amxq_isa isa, amxq_type type, int64_t m, amxq_isa *out)
{
    const int ti = amxq_type_index(type);
    AMXQ_CHECK(out != NULL, AMXQ_ERR_NULL);
    AMXQ_CHECK(ti >= 0, AMXQ_ERR_TYPE);
    AMXQ_CHECK(m > 0, AMXQ_ERR_SHAPE);
    AMXQ_CHECK((int)isa >= 0 && (int)isa < AMXQ_ISA_COUNT, AMXQ_ERR_ISA_UNKNOWN);
    if (isa == AMXQ_ISA_AUTO) {
        amxq_status st;
        isa = amxq_get_isa(&st);
        AMXQ_TRY(st);
    }
    if (isa != AMXQ_ISA_AUTO) {
        AMXQ_TRY(amxq_isa_check(isa));
        *out = isa;
        return AMXQ_OK;
    }
    /* Automatic: AMX for large M, AVX-512 VNNI below it and without AMX, else portable C.
     * The emulated ISAs are for testing and are never chosen automatically. */
    if (m >= amxq_amx_min_m[ti] && amxq_kernels_get(AMXQ_ISA_AMX, NULL) != NULL)
        *out = AMXQ_ISA_AMX;
    else if (amxq_kernels_get(AMXQ_ISA_AVX512, NULL) != NULL)
        *out = AMXQ_ISA_AVX512;
    else
        *out = AMXQ_ISA_SCALAR;
    return AMXQ_OK;
}

/* ---- Products ------------------------------------------------------------------------------ */

size_t amxq_workspace_size(amxq_type type, int64_t m, int64_t k)
{
    return amxq_qx_size(type, m, k);
}

size_t amxq_span_bytes(int64_t rows, int64_t cols, int64_t ld)
{
    uint64_t elems;
    if (__builtin_mul_overflow((uint64_t)(rows - 1), (uint64_t)ld, &elems) ||
        __builtin_add_overflow(elems, (uint64_t)cols, &elems) || elems > SIZE_MAX / 4)
        return 0;
    return (size_t)elems * 4;
}

amxq_status amxq_matmul_check(const void *packed, const float *x, int64_t m, int64_t ldx,
                              const float *c, int64_t ldc, const amxq_matmul_params *params,
                              amxq_layout *lo, amxq_isa *isa, size_t *ws_bytes)
{
    static const amxq_matmul_params defaults = {AMXQ_ISA_AUTO, 0, NULL, 0};
    const amxq_matmul_params *pp = params ? params : &defaults;
    AMXQ_CHECK((int)pp->isa >= 0 && (int)pp->isa < AMXQ_ISA_COUNT, AMXQ_ERR_ISA_UNKNOWN);
    AMXQ_CHECK((pp->flags & ~AMXQ_KEEP_TILES) == 0, AMXQ_ERR_ARG);
    AMXQ_CHECK(packed != NULL && x != NULL && c != NULL, AMXQ_ERR_NULL);
    AMXQ_CHECK(amxq_is_aligned(packed), AMXQ_ERR_ALIGNMENT);

    AMXQ_TRY(amxq_layout_read(lo, packed, SIZE_MAX));
    AMXQ_CHECK(m > 0 && m < ((int64_t)1 << 31), AMXQ_ERR_SHAPE);
    AMXQ_CHECK(ldx >= lo->k && ldc >= lo->n, AMXQ_ERR_STRIDE);
    const size_t x_bytes = amxq_span_bytes(m, lo->k, ldx);
    const size_t c_bytes = amxq_span_bytes(m, lo->n, ldc);
    AMXQ_CHECK(x_bytes != 0 && c_bytes != 0, AMXQ_ERR_STRIDE);
    AMXQ_CHECK(!amxq_overlaps(c, c_bytes, x, x_bytes), AMXQ_ERR_OVERLAP);
    AMXQ_CHECK(!amxq_overlaps(c, c_bytes, packed, lo->total_bytes), AMXQ_ERR_OVERLAP);

    AMXQ_TRY(amxq_resolve_isa(pp->isa, lo->type, m, isa));
    AMXQ_CHECK(amxq_kernels_get(*isa, NULL) != NULL, AMXQ_ERR_ISA_UNSUPPORTED);

    *ws_bytes = amxq_qx_size(lo->type, m, lo->k);
    AMXQ_CHECK(*ws_bytes != 0, AMXQ_ERR_SHAPE);
    const void *ws = pp->workspace;
    if (ws != NULL) {
        AMXQ_CHECK(pp->workspace_size >= *ws_bytes, AMXQ_ERR_BUFFER_SIZE);
        AMXQ_CHECK(amxq_is_aligned(ws), AMXQ_ERR_ALIGNMENT);
        AMXQ_CHECK(!amxq_overlaps(ws, *ws_bytes, x, x_bytes) &&
                       !amxq_overlaps(ws, *ws_bytes, c, c_bytes) &&
                       !amxq_overlaps(ws, *ws_bytes, packed, lo->total_bytes),
                   AMXQ_ERR_OVERLAP);
    }
    return AMXQ_OK;
}

amxq_status amxq_matmul_ex(const void *packed, const float *x, int64_t m, int64_t ldx, float *c,
                           int64_t ldc, const amxq_matmul_params *params)
{
    amxq_layout lo;
    amxq_isa isa;
    size_t ws_bytes;
    AMXQ_TRY(amxq_matmul_check(packed, x, m, ldx, c, ldc, params, &lo, &isa, &ws_bytes));
    const struct amxq_kernels *t = amxq_kernels_get(isa, NULL);
    const unsigned flags = params ? params->flags : 0;
    void *const given = params ? params->workspace : NULL;
    void *ws = given;
    if (ws == NULL) {
        ws = amxq_alloc_aligned(ws_bytes, AMXQ_ALIGNMENT);
        AMXQ_CHECK(ws != NULL, AMXQ_ERR_NOMEM);
    }

    amxq_qx qx;
    amxq_qx_layout(&qx, lo.type, m, lo.k, ws);
    const struct amxq_type_kernels *kt = &t->t[lo.ti];
    kt->quantize(x, ldx, 0, m, &qx);
    kt->gemm(&lo, packed, &qx, 0, m, 0, lo.n_panels, c, ldc);
    if (t->tile_release != NULL && !(flags & AMXQ_KEEP_TILES))
        t->tile_release();

    if (ws != given)
        amxq_free_aligned(ws);
    return AMXQ_OK;
}

amxq_status amxq_matmul(const void *packed, const float *x, int64_t m, int64_t ldx, float *c,
                        int64_t ldc)
{
    return amxq_matmul_ex(packed, x, m, ldx, c, ldc, NULL);
}

/* ---- Activation quantization --------------------------------------------------------------- */

amxq_status amxq_quantize_row(amxq_type weight_type, const float *x, int64_t k, void *dst,
                              size_t dst_size)
{
    const int64_t qk = amxq_type_block(weight_type);
    AMXQ_CHECK(qk != 0, AMXQ_ERR_TYPE);
    AMXQ_CHECK(x != NULL && dst != NULL, AMXQ_ERR_NULL);
    AMXQ_CHECK(k > 0 && k < ((int64_t)1 << 31), AMXQ_ERR_SHAPE);
    AMXQ_CHECK(k % qk == 0, AMXQ_ERR_K_BLOCK);
    const int act_k = amxq_type_act_q8_k(weight_type), act_1 = amxq_type_act_q8_1(weight_type);
    const size_t block_bytes = act_k   ? sizeof(amxq_block_q8_k)
                               : act_1 ? sizeof(amxq_block_q8_1)
                                       : sizeof(amxq_block_q8_0);
    AMXQ_CHECK(dst_size / block_bytes >= (size_t)(k / qk), AMXQ_ERR_BUFFER_SIZE);
    AMXQ_CHECK(!amxq_overlaps(x, (size_t)k * 4, dst, (size_t)(k / qk) * block_bytes),
               AMXQ_ERR_OVERLAP);
    if (act_k)
        amxq_quantize_row_q8_k_ggml(x, k, dst);
    else if (act_1)
        amxq_quantize_row_q8_1_ggml(x, k, dst);
    else
        amxq_quantize_row_q8_0_ggml(x, k, dst);
    return AMXQ_OK;
}
