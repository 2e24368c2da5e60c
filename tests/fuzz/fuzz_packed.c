/*
 * Fuzz target (a): arbitrary bytes presented as a packed weight.
 *
 * Properties, for every input:
 *   - amxq_packed_info(data, size) returns AMXQ_OK or AMXQ_ERR_BAD_PACKED, never reads past
 *     `size` (the input is copied into an exactly sized heap block, so ASan sees an over-read) and
 *     leaves the description untouched on failure;
 *   - when it says OK, the description is self-consistent (a known type, N and K that the type
 *     allows, bytes == amxq_packed_size(), bytes <= size) and a shorter size is refused;
 *   - then amxq_unpack() succeeds on it (sized exactly; one byte less is AMXQ_ERR_BUFFER_SIZE),
 *     packing those ggml bytes again and unpacking gives the same ggml bytes (a fixed point), and
 *     amxq_matmul_ex() on a 64-aligned copy succeeds on every ISA this build can run, writes
 *     only the M x N elements of C (guard bytes and the gap between N and ldc stay untouched) and
 *     gives the same bits when run twice on the scalar kernels, and on every other ISA the
 *     scalar kernels' bits (a NaN matches any NaN).
 * Each input also runs a second time with its header checksum recomputed (when it has 128 bytes),
 * so mutations of the header fields are checked against the layout rules, not only the checksum.
 * Buffers that pass validation may hold any panel bytes (the header checksum covers the header
 * only): NaN, Inf and garbage scales must flow through the kernels without a crash.
 */
#include "fuzz_common.h"

/* Bounded so the emulated kernels keep the fuzzer fast: the biggest packed input is the
 * fuzzer's -max_len, so N and K are small anyway; M is carved from the last input byte. */
#define FZ_MAX_M 4

static void check_matmul(const uint8_t *data, size_t size, const amxq_packed_desc *desc)
{
    /* A 64-aligned copy of exactly the header's total bytes (matmul trusts the header's size). */
    fz_buf w = fz_buf_new(desc->bytes);
    memcpy(w.p, data, desc->bytes);

    const int64_t m = 1 + (size ? data[size - 1] : 0) % FZ_MAX_M;
    const int64_t n = desc->n, k = desc->k;
    const int64_t ldx = k + 3, ldc = n + 5;
    fz_buf xb = fz_buf_new((size_t)(m * ldx) * sizeof(float));
    float *x = (float *)xb.p;
    uint64_t seed = size ^ ((uint64_t)data[0] << 8);
    for (int64_t i = 0; i < m * ldx; i++)
        x[i] = fz_randf(&seed) * 4.0f;

    const size_t c_bytes = (size_t)(m * ldc) * sizeof(float);
    fz_buf c0 = fz_buf_new(c_bytes), c1 = fz_buf_new(c_bytes);
    static const amxq_isa isas[] = {AMXQ_ISA_SCALAR, AMXQ_ISA_AUTO,    AMXQ_ISA_AVX512,
                                    AMXQ_ISA_AMX,    AMXQ_ISA_AMX_EMU, AMXQ_ISA_AVX512_EMU};
    for (size_t i = 0; i < sizeof isas / sizeof isas[0]; i++) {
        const amxq_isa isa = isas[i];
        const amxq_status can = isa == AMXQ_ISA_AUTO ? AMXQ_OK : amxq_isa_check(isa);
        amxq_matmul_params mp = {isa, 0, NULL, 0};
        fz_buf *c = i == 0 ? &c0 : &c1;
        memset(c->p, FZ_PATTERN, c_bytes);
        amxq_status st = amxq_matmul_ex(w.p, x, m, ldx, (float *)c->p, ldc, &mp);
        if (can != AMXQ_OK) {
            FZ_CHECK(st == can, "isa %s: got %s, isa_check said %s", amxq_isa_name(isa),
                     amxq_status_str(st), amxq_status_str(can));
            FZ_CHECK(fz_all(c->p, c_bytes, FZ_PATTERN), "C written on failure");
            continue;
        }
        FZ_CHECK(st == AMXQ_OK, "matmul on a buffer packed_info accepted, isa %s: %s",
                 amxq_isa_name(isa), amxq_status_str(st));
        FZ_CHECK(fz_guard_ok(c), "guard bytes around C, isa %s", amxq_isa_name(isa));
        for (int64_t r = 0; r < m; r++)
            FZ_CHECK(fz_all(c->p + (size_t)(r * ldc + n) * 4, (size_t)(ldc - n) * 4, FZ_PATTERN),
                     "C row %lld written between N and ldc, isa %s", (long long)r,
                     amxq_isa_name(isa));
        if (isa == AMXQ_ISA_SCALAR) {
            /* Determinism: the scalar kernels twice give the same bits (NaN payloads too). */
            memset(c1.p, FZ_PATTERN, c_bytes);
            st = amxq_matmul_ex(w.p, x, m, ldx, (float *)c1.p, ldc, &mp);
            FZ_CHECK(st == AMXQ_OK && memcmp(c0.p, c1.p, c_bytes) == 0, "scalar not repeatable");
        } else {
            /* The numeric contract (docs/design.md §1): every ISA gives the scalar kernels' bits,
             * whatever the scales hold; a NaN matches any NaN. */
            const float *f0 = (const float *)c0.p, *f1 = (const float *)c1.p;
            for (int64_t e = 0; e < m * ldc; e++)
                FZ_CHECK(e % ldc >= n || (isnan(f0[e]) && isnan(f1[e])) ||
                             memcmp(f0 + e, f1 + e, 4) == 0,
                         "isa %s: C[%lld][%lld] = %a, scalar kernels %a", amxq_isa_name(isa),
                         (long long)(e / ldc), (long long)(e % ldc), (double)f1[e], (double)f0[e]);
        }
    }
    FZ_CHECK(fz_guard_ok(&w) && memcmp(w.p, data, desc->bytes) == 0, "packed buffer written");
    FZ_CHECK(fz_guard_ok(&xb), "X guard");
    fz_buf_free(&w);
    fz_buf_free(&xb);
    fz_buf_free(&c0);
    fz_buf_free(&c1);
}

static void check_unpack(const uint8_t *buf, const amxq_packed_desc *desc)
{
    fz_buf g = fz_buf_new(desc->ggml_bytes);
    FZ_CHECK(amxq_unpack(buf, g.p, desc->ggml_bytes - 1) == AMXQ_ERR_BUFFER_SIZE,
             "unpack into one byte less");
    FZ_CHECK(fz_all(g.p, desc->ggml_bytes, FZ_PATTERN), "unpack wrote on failure");
    amxq_status st = amxq_unpack(buf, g.p, desc->ggml_bytes);
    FZ_CHECK(st == AMXQ_OK, "unpack of a buffer packed_info accepted: %s", amxq_status_str(st));
    FZ_CHECK(fz_guard_ok(&g), "unpack wrote outside its %zu bytes", desc->ggml_bytes);

    /* Pack those ggml bytes again: unpacking the result must give the same ggml bytes. (The
     * repacked buffer itself may differ from the input: derived terms and padding in the input
     * panels are not covered by the header checksum.) */
    fz_buf p = fz_buf_new(desc->bytes);
    st = amxq_pack(desc->type, g.p, desc->n, desc->k, p.p, desc->bytes);
    FZ_CHECK(st == AMXQ_OK, "repack: %s", amxq_status_str(st));
    FZ_CHECK(fz_guard_ok(&p), "pack wrote outside its buffer");
    fz_buf g2 = fz_buf_new(desc->ggml_bytes);
    FZ_CHECK(amxq_unpack(p.p, g2.p, desc->ggml_bytes) == AMXQ_OK, "unpack of repack");
    FZ_CHECK(memcmp(g.p, g2.p, desc->ggml_bytes) == 0, "unpack(pack(unpack(b))) != unpack(b)");
    fz_buf_free(&g);
    fz_buf_free(&g2);
    fz_buf_free(&p);
}

static void run_one(const uint8_t *data, size_t size)
{
    /* Exactly `size` bytes on the heap: any read past them is an ASan report. */
    uint8_t *buf = (uint8_t *)malloc(size ? size : 1);
    FZ_CHECK(buf != NULL, "out of memory");
    if (size)
        memcpy(buf, data, size);

    amxq_packed_desc desc, untouched;
    memset(&desc, 0x5A, sizeof desc);
    memcpy(&untouched, &desc, sizeof desc);
    FZ_CHECK(amxq_packed_info(NULL, size, &desc) == AMXQ_ERR_NULL, "NULL buffer");
    FZ_CHECK(amxq_packed_info(buf, size, NULL) == AMXQ_ERR_NULL, "NULL desc");
    amxq_status st = amxq_packed_info(buf, size, &desc);
    if (st != AMXQ_OK) {
        FZ_CHECK(st == AMXQ_ERR_BAD_PACKED, "packed_info: %s", amxq_status_str(st));
        FZ_CHECK(memcmp(&desc, &untouched, sizeof desc) == 0, "desc written on failure");
        free(buf);
        return;
    }

    FZ_CHECK(amxq_type_name(desc.type) != NULL, "type %d", (int)desc.type);
    FZ_CHECK(desc.n > 0 && desc.k > 0 && desc.k % amxq_type_block(desc.type) == 0,
             "shape n=%lld k=%lld", (long long)desc.n, (long long)desc.k);
    FZ_CHECK(desc.bytes == amxq_packed_size(desc.type, desc.n, desc.k) && desc.bytes <= size,
             "bytes %zu, size %zu", desc.bytes, size);
    FZ_CHECK(desc.ggml_bytes == amxq_ggml_size(desc.type, desc.n, desc.k), "ggml bytes");
    FZ_CHECK(desc.format_version == AMXQ_PACKED_FORMAT_VERSION && desc.panel_n == 16,
             "version %u panel %u", desc.format_version, desc.panel_n);
    /* Any size short of the header's total is refused. */
    amxq_packed_desc d2;
    FZ_CHECK(amxq_packed_info(buf, desc.bytes - 1, &d2) == AMXQ_ERR_BAD_PACKED, "short size");
    FZ_CHECK(amxq_packed_info(buf, 0, &d2) == AMXQ_ERR_BAD_PACKED, "size 0");

    check_unpack(buf, &desc);
    check_matmul(buf, size, &desc);
    free(buf);
}

/* FNV-1a 64 (the header checksum, docs/packed-format.md) of the 120 bytes before the checksum. */
static uint64_t header_checksum(const uint8_t *h)
{
    uint64_t x = 0xcbf29ce484222325ull;
    for (int i = 0; i < 120; i++)
        x = (x ^ h[i]) * 0x100000001b3ull;
    return x;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    run_one(data, size);
    /* A forged header: the same bytes with the checksum made right, so that mutated header
     * fields get past the checksum and reach the field-by-field validation (a hostile model file
     * can compute FNV-1a as easily as amxq). */
    if (size >= 128) {
        uint8_t *forged = (uint8_t *)malloc(size);
        FZ_CHECK(forged != NULL, "out of memory");
        memcpy(forged, data, size);
        uint64_t sum = header_checksum(forged);
        if (memcmp(forged + 120, &sum, 8) != 0) {
            memcpy(forged + 120, &sum, 8);
            run_one(forged, size);
        }
        free(forged);
    }
    return 0;
}
