/*
 * Bad input for every public call: each gets its own status and nothing outside the given buffers
 * (nor the buffers themselves, on failure) is written. Also the small pure functions: version,
 * status strings, type metadata, the log callback.
 */
#include <stdint.h>

#include "amxq.h"
#include "common/testutil.h"
#include "pack/pack.h"

static const amxq_type types[] = {AMXQ_TYPE_Q4_0, AMXQ_TYPE_Q4_1,  AMXQ_TYPE_Q8_0,   AMXQ_TYPE_Q4_K,
                                  AMXQ_TYPE_Q6_K, AMXQ_TYPE_Q5_K,  AMXQ_TYPE_IQ4_XS, AMXQ_TYPE_Q5_0,
                                  AMXQ_TYPE_Q5_1, AMXQ_TYPE_IQ4_NL};
#define NTYPES ((int)(sizeof types / sizeof types[0]))

/* FNV-1a 64, the header checksum (docs/packed-format.md), to forge headers on purpose. */
static uint64_t fnv1a64(const uint8_t *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

static void reseal(uint8_t *hdr)
{
    uint64_t h = fnv1a64(hdr, 120);
    memcpy(hdr + 120, &h, 8);
}

static int log_calls;
static void count_log(void *user, const char *msg)
{
    (void)user;
    (void)msg;
    log_calls++;
}

static void test_metadata(void)
{
    TU_CHECK(amxq_version_number() == AMXQ_VERSION_NUMBER, "version number skew");
    TU_CHECK(strcmp(amxq_version_string(), AMXQ_VERSION_STRING) == 0, "version string skew");
    for (int s = 0; s >= -19; s--)
        TU_CHECK(amxq_status_str((amxq_status)s) != NULL &&
                     strcmp(amxq_status_str((amxq_status)s), "unknown amxq status") != 0,
                 "status %d has no description", s);
    TU_CHECK(strcmp(amxq_status_str((amxq_status)-999), "unknown amxq status") == 0, "unknown");
    TU_CHECK(strcmp(amxq_status_str((amxq_status)5), "unknown amxq status") == 0, "unknown +");

    static const char *names[] = {"q4_0", "q4_1",   "q8_0", "q4_k", "q6_k",
                                  "q5_k", "iq4_xs", "q5_0", "q5_1", "iq4_nl"};
    static const int64_t blocks[] = {32, 32, 32, 256, 256, 256, 256, 32, 32, 32};
    static const size_t bytes[] = {18, 20, 34, 144, 210, 176, 136, 22, 24, 18};
    static const int ggml_ids[] = {2, 3, 8, 12, 14, 13, 23, 6, 7, 20};
    for (int i = 0; i < NTYPES; i++) {
        TU_CHECK((int)types[i] == ggml_ids[i], "type %d is not ggml's id", i);
        TU_CHECK(strcmp(amxq_type_name(types[i]), names[i]) == 0, "type name %d", i);
        TU_CHECK(amxq_type_block(types[i]) == blocks[i], "block %d", i);
        TU_CHECK(amxq_type_block_bytes(types[i]) == bytes[i], "block bytes %d", i);
        TU_CHECK(amxq_ggml_size(types[i], 3, blocks[i] * 2) == 6 * bytes[i], "ggml size %d", i);
    }
    TU_CHECK(amxq_type_name((amxq_type)0) == NULL && amxq_type_block((amxq_type)1) == 0 &&
                 amxq_type_block_bytes((amxq_type)99) == 0,
             "unknown type metadata");
}

static void test_sizes(void)
{
    for (int i = 0; i < NTYPES; i++) {
        const amxq_type t = types[i];
        const int64_t qk = amxq_type_block(t);
        TU_CHECK(amxq_packed_size(t, 16, qk) > 0, "valid size");
        TU_CHECK(amxq_packed_size(t, 0, qk) == 0, "n = 0");
        TU_CHECK(amxq_packed_size(t, -1, qk) == 0, "n < 0");
        TU_CHECK(amxq_packed_size(t, 16, 0) == 0, "k = 0");
        TU_CHECK(amxq_packed_size(t, 16, -qk) == 0, "k < 0");
        TU_CHECK(amxq_packed_size(t, 16, qk + 16) == 0, "k not a multiple");
        TU_CHECK(amxq_packed_size(t, (int64_t)1 << 31, qk) == 0, "n too large");
        TU_CHECK(amxq_packed_size(t, 16, (int64_t)qk << 40) == 0, "k too large");
        TU_CHECK(amxq_packed_size(t, INT64_MAX, INT64_MAX / qk * qk) == 0, "overflow");
        TU_CHECK(amxq_ggml_size(t, 16, qk + 16) == 0, "ggml size k not a multiple");
        TU_CHECK(amxq_workspace_size(t, 0, qk) == 0 && amxq_workspace_size(t, 1, qk + 1) == 0 &&
                     amxq_workspace_size(t, 3, qk) % 64 == 0 && amxq_workspace_size(t, 3, qk) > 0,
                 "workspace size");
    }
    TU_CHECK(amxq_packed_size((amxq_type)9, 16, 32) == 0, "unknown type");
}

/* Pack a random weight of `type`; returns the packed buffer (caller frees base). */
static tu_buf make_packed(uint64_t *seed, amxq_type type, int64_t n, int64_t k, uint8_t **ggml)
{
    const size_t gsize = amxq_ggml_size(type, n, k);
    *ggml = (uint8_t *)malloc(gsize);
    tu_fill_bytes(seed, *ggml, gsize);
    /* Sane scales: small positive halves, so products are finite. */
    const size_t bsz = amxq_type_block_bytes(type);
    size_t off[2];
    const size_t nf = amxq_ggml_fp16_fields(type, off);
    for (size_t b = 0; b < gsize / bsz; b++) {
        uint16_t h = (uint16_t)(0x2000 + (tu_rand(seed) & 0x3ff));
        for (size_t f = 0; f < nf; f++)
            memcpy(*ggml + b * bsz + off[f], &h, 2);
    }
    tu_buf p = tu_buf_new(amxq_packed_size(type, n, k), 64);
    if (amxq_pack(type, *ggml, n, k, p.p, p.size) != AMXQ_OK) {
        fprintf(stderr, "make_packed failed\n");
        exit(2);
    }
    return p;
}

static void test_pack_errors(uint64_t *seed)
{
    const amxq_type t = AMXQ_TYPE_Q4_0;
    const int64_t n = 20, k = 64;
    const size_t gsize = amxq_ggml_size(t, n, k), psize = amxq_packed_size(t, n, k);
    uint8_t *src = (uint8_t *)malloc(gsize + 64);
    tu_fill_bytes(seed, src, gsize + 64);
    tu_buf out = tu_buf_new(psize + 64, 64);

#define PACK_FAILS(expect, ...)                                                                    \
    do {                                                                                           \
        memset(out.p, 0x5A, out.size);                                                             \
        amxq_status st_ = amxq_pack(__VA_ARGS__);                                                  \
        TU_CHECK(st_ == (expect), "pack(%s) gave %s", #__VA_ARGS__, amxq_status_str(st_));         \
        TU_CHECK(tu_all_bytes(out.p, out.size, 0x5A) && tu_guard_ok(&out),                         \
                 "failed pack wrote to its buffer");                                               \
    } while (0)

    PACK_FAILS(AMXQ_ERR_NULL, t, NULL, n, k, out.p, psize);
    PACK_FAILS(AMXQ_ERR_NULL, t, src, n, k, NULL, psize);
    PACK_FAILS(AMXQ_ERR_TYPE, (amxq_type)0, src, n, k, out.p, psize);
    PACK_FAILS(AMXQ_ERR_TYPE, (amxq_type)15, src, n, k, out.p, psize); /* ggml Q8_K */
    PACK_FAILS(AMXQ_ERR_SHAPE, t, src, 0, k, out.p, psize);
    PACK_FAILS(AMXQ_ERR_SHAPE, t, src, -5, k, out.p, psize);
    PACK_FAILS(AMXQ_ERR_SHAPE, t, src, n, 0, out.p, psize);
    PACK_FAILS(AMXQ_ERR_SHAPE, t, src, n, -32, out.p, psize);
    PACK_FAILS(AMXQ_ERR_K_BLOCK, t, src, n, 48, out.p, psize);
    PACK_FAILS(AMXQ_ERR_K_BLOCK, AMXQ_TYPE_Q4_K, src, 1, 32, out.p, psize);
    PACK_FAILS(AMXQ_ERR_ALIGNMENT, t, src, n, k, out.p + 8, psize);
    PACK_FAILS(AMXQ_ERR_BUFFER_SIZE, t, src, n, k, out.p, psize - 1);
    PACK_FAILS(AMXQ_ERR_BUFFER_SIZE, t, src, n, k, out.p, 0);
    /* Source inside the destination. */
    memcpy(out.p + 64, src, 64);
    {
        amxq_status st = amxq_pack(t, out.p + 64, 1, 32, out.p, psize);
        TU_CHECK(st == AMXQ_ERR_OVERLAP, "overlap gave %s", amxq_status_str(st));
    }
    TU_CHECK(amxq_pack(t, src, n, k, out.p, psize) == AMXQ_OK, "valid pack");
    TU_CHECK(tu_all_bytes(out.p + psize, 64, 0x5A) && tu_guard_ok(&out),
             "pack wrote past amxq_packed_size()");
#undef PACK_FAILS
    free(src);
    tu_buf_free(&out);
}

static void test_packed_validation(uint64_t *seed)
{
    for (int ti = 0; ti < NTYPES; ti++) {
        const amxq_type t = types[ti];
        const int64_t n = 33, k = amxq_type_block(t) * 2;
        uint8_t *ggml;
        tu_buf p = make_packed(seed, t, n, k, &ggml);
        const size_t gsize = amxq_ggml_size(t, n, k);
        uint8_t *back = (uint8_t *)malloc(gsize + 16);
        amxq_packed_desc desc;
        memset(&desc, 0x77, sizeof desc);

        TU_CHECK(amxq_packed_info(NULL, p.size, &desc) == AMXQ_ERR_NULL, "info NULL");
        TU_CHECK(amxq_packed_info(p.p, p.size, NULL) == AMXQ_ERR_NULL, "info NULL desc");
        TU_CHECK(amxq_packed_info(p.p, 127, &desc) == AMXQ_ERR_BAD_PACKED, "short header");
        TU_CHECK(amxq_packed_info(p.p, p.size - 1, &desc) == AMXQ_ERR_BAD_PACKED, "truncated");
        TU_CHECK(tu_all_bytes(&desc, sizeof desc, 0x77), "failed info wrote desc");
        TU_CHECK(amxq_packed_info(p.p + 1, p.size - 1, &desc) == AMXQ_ERR_BAD_PACKED, "shifted");
        TU_CHECK(amxq_packed_info(ggml, gsize, &desc) == AMXQ_ERR_BAD_PACKED,
                 "plain ggml bytes accepted as packed");

        /* Flip each header byte in turn: always refused, by matmul and unpack as well. */
        uint8_t saved[128];
        memcpy(saved, p.p, 128);
        for (int i = 0; i < 128; i++) {
            p.p[i] ^= 0x10;
            TU_CHECK(amxq_packed_info(p.p, p.size, &desc) == AMXQ_ERR_BAD_PACKED,
                     "%s: corrupt header byte %d accepted", amxq_type_name(t), i);
            TU_CHECK(amxq_unpack(p.p, back, gsize) == AMXQ_ERR_BAD_PACKED, "unpack corrupt %d", i);
            memcpy(p.p, saved, 128);
        }
        /* Forged headers with a valid checksum: wrong version, wrong layout fields, reserved. */
        static const int offsets[] = {8, 12, 40, 44, 48, 52, 56, 64, 72, 80, 88, 96, 100};
        for (size_t i = 0; i < sizeof offsets / sizeof offsets[0]; i++) {
            p.p[offsets[i]] ^= 0x01;
            reseal(p.p);
            amxq_status st = amxq_packed_info(p.p, p.size, &desc);
            TU_CHECK(st == AMXQ_ERR_BAD_PACKED, "%s: forged field at %d accepted (%s)",
                     amxq_type_name(t), offsets[i], amxq_status_str(st));
            memcpy(p.p, saved, 128);
        }
        /* A header that claims a different shape of the same size class must not be accepted
         * unless it is exactly consistent; a bigger N than the buffer holds is refused. */
        {
            int64_t bign = n * 4;
            memcpy(p.p + 16, &bign, 8);
            reseal(p.p);
            TU_CHECK(amxq_packed_info(p.p, p.size, &desc) == AMXQ_ERR_BAD_PACKED, "bigger N");
            memcpy(p.p, saved, 128);
        }
        TU_CHECK(amxq_packed_info(p.p, p.size, &desc) == AMXQ_OK && desc.n == n && desc.k == k &&
                     desc.type == t && desc.panel_n == 16 && desc.format_version == 1,
                 "valid info");

        /* unpack: statuses and no writes on failure. */
        memset(back, 0x33, gsize + 16);
        TU_CHECK(amxq_unpack(NULL, back, gsize) == AMXQ_ERR_NULL, "unpack NULL");
        TU_CHECK(amxq_unpack(p.p, NULL, gsize) == AMXQ_ERR_NULL, "unpack NULL dst");
        TU_CHECK(amxq_unpack(p.p, back, gsize - 1) == AMXQ_ERR_BUFFER_SIZE, "unpack small");
        TU_CHECK(amxq_unpack(p.p, p.p + 64, gsize) == AMXQ_ERR_OVERLAP, "unpack overlap");
        TU_CHECK(tu_all_bytes(back, gsize + 16, 0x33), "failed unpack wrote");
        TU_CHECK(memcmp(p.p, saved, 128) == 0, "overlapping unpack wrote");
        TU_CHECK(amxq_unpack(p.p, back, gsize + 16) == AMXQ_OK && memcmp(back, ggml, gsize) == 0,
                 "unpack");
        TU_CHECK(tu_all_bytes(back + gsize, 16, 0x33), "unpack wrote past the ggml size");
        free(back);
        free(ggml);
        tu_buf_free(&p);
    }
}

static void test_matmul_errors(uint64_t *seed)
{
    const amxq_type t = AMXQ_TYPE_Q8_0;
    const int64_t n = 17, k = 64, m = 5, ldx = 70, ldc = 20;
    uint8_t *ggml;
    tu_buf p = make_packed(seed, t, n, k, &ggml);
    float *x = (float *)malloc(sizeof(float) * (size_t)(m * ldx));
    for (int64_t i = 0; i < m * ldx; i++)
        x[i] = tu_randf(seed);
    tu_buf c = tu_buf_new(sizeof(float) * (size_t)(m * ldc), 64);

#define MM_FAILS(expect, params, ...)                                                              \
    do {                                                                                           \
        memset(c.p, 0x5A, c.size);                                                                 \
        amxq_status st_ = amxq_matmul_ex(__VA_ARGS__, params);                                     \
        TU_CHECK(st_ == (expect), "matmul(%s) gave %s", #__VA_ARGS__, amxq_status_str(st_));       \
        TU_CHECK(tu_all_bytes(c.p, c.size, 0x5A) && tu_guard_ok(&c), "failed matmul wrote C");     \
    } while (0)

    float *cp = (float *)(void *)c.p;
    MM_FAILS(AMXQ_ERR_NULL, NULL, NULL, x, m, ldx, cp, ldc);
    MM_FAILS(AMXQ_ERR_NULL, NULL, p.p, NULL, m, ldx, cp, ldc);
    MM_FAILS(AMXQ_ERR_NULL, NULL, p.p, x, m, ldx, NULL, ldc);
    MM_FAILS(AMXQ_ERR_ALIGNMENT, NULL, p.p + 4, x, m, ldx, cp, ldc);
    MM_FAILS(AMXQ_ERR_BAD_PACKED, NULL, p.p + 64, x, m, ldx, cp, ldc);
    MM_FAILS(AMXQ_ERR_SHAPE, NULL, p.p, x, 0, ldx, cp, ldc);
    MM_FAILS(AMXQ_ERR_SHAPE, NULL, p.p, x, -1, ldx, cp, ldc);
    MM_FAILS(AMXQ_ERR_SHAPE, NULL, p.p, x, (int64_t)1 << 31, ldx, cp, ldc);
    MM_FAILS(AMXQ_ERR_STRIDE, NULL, p.p, x, m, k - 1, cp, ldc);
    MM_FAILS(AMXQ_ERR_STRIDE, NULL, p.p, x, m, ldx, cp, n - 1);
    MM_FAILS(AMXQ_ERR_STRIDE, NULL, p.p, x, m, INT64_MAX / 2, cp, ldc);
    MM_FAILS(AMXQ_ERR_OVERLAP, NULL, p.p, cp, m, ldx, cp + 3, ldc);

    amxq_matmul_params prm;
    memset(&prm, 0, sizeof prm);
    prm.isa = (amxq_isa)77;
    MM_FAILS(AMXQ_ERR_ISA_UNKNOWN, &prm, p.p, x, m, ldx, cp, ldc);
    prm.isa = (amxq_isa)-1;
    MM_FAILS(AMXQ_ERR_ISA_UNKNOWN, &prm, p.p, x, m, ldx, cp, ldc);
    prm.isa = AMXQ_ISA_AUTO;
    prm.flags = 2;
    MM_FAILS(AMXQ_ERR_ARG, &prm, p.p, x, m, ldx, cp, ldc);
    prm.flags = 0;

    const size_t wsz = amxq_workspace_size(t, m, k);
    tu_buf ws = tu_buf_new(wsz + 64, 64);
    prm.workspace = ws.p;
    prm.workspace_size = wsz - 1;
    MM_FAILS(AMXQ_ERR_BUFFER_SIZE, &prm, p.p, x, m, ldx, cp, ldc);
    prm.workspace = ws.p + 16;
    prm.workspace_size = wsz;
    MM_FAILS(AMXQ_ERR_ALIGNMENT, &prm, p.p, x, m, ldx, cp, ldc);
    prm.workspace = c.p;
    prm.workspace_size = wsz;
    MM_FAILS(AMXQ_ERR_OVERLAP, &prm, p.p, x, m, ldx, cp, ldc);

    /* Success: with and without a workspace, same numbers; C's gaps (n..ldc) untouched. */
    memset(c.p, 0x5A, c.size);
    TU_CHECK(amxq_matmul(p.p, x, m, ldx, cp, ldc) == AMXQ_OK, "matmul");
    float *ref = (float *)malloc(c.size);
    memcpy(ref, c.p, c.size);
    for (int64_t r = 0; r < m; r++)
        TU_CHECK(tu_all_bytes(cp + r * ldc + n, (size_t)(ldc - n) * 4, 0x5A),
                 "matmul wrote between N and ldc in row %lld", (long long)r);
    TU_CHECK(tu_guard_ok(&c), "matmul wrote outside C");
    memset(c.p, 0x5A, c.size);
    prm.workspace = ws.p;
    prm.workspace_size = wsz;
    TU_CHECK(amxq_matmul_ex(p.p, x, m, ldx, cp, ldc, &prm) == AMXQ_OK, "matmul with workspace");
    TU_CHECK(memcmp(ref, c.p, c.size) == 0, "workspace result differs");
    TU_CHECK(tu_guard_ok(&ws), "workspace overrun");

#undef MM_FAILS
    free(ref);
    free(x);
    free(ggml);
    tu_buf_free(&ws);
    tu_buf_free(&p);
    tu_buf_free(&c);
}

static void test_quantize_row(void)
{
    float x[512];
    for (int i = 0; i < 512; i++)
        x[i] = (float)(i % 37) - 18.0f;
    uint8_t out[2048];
    memset(out, 0x11, sizeof out);
    TU_CHECK(amxq_quantize_row(AMXQ_TYPE_Q4_0, NULL, 64, out, sizeof out) == AMXQ_ERR_NULL, "x");
    TU_CHECK(amxq_quantize_row(AMXQ_TYPE_Q4_0, x, 64, NULL, sizeof out) == AMXQ_ERR_NULL, "dst");
    TU_CHECK(amxq_quantize_row((amxq_type)4, x, 64, out, sizeof out) == AMXQ_ERR_TYPE, "type");
    TU_CHECK(amxq_quantize_row(AMXQ_TYPE_Q4_0, x, 0, out, sizeof out) == AMXQ_ERR_SHAPE, "k");
    TU_CHECK(amxq_quantize_row(AMXQ_TYPE_Q4_0, x, 40, out, sizeof out) == AMXQ_ERR_K_BLOCK, "kb");
    TU_CHECK(amxq_quantize_row(AMXQ_TYPE_Q4_K, x, 128, out, sizeof out) == AMXQ_ERR_K_BLOCK, "kk");
    TU_CHECK(amxq_quantize_row(AMXQ_TYPE_Q4_0, x, 64, out, 67) == AMXQ_ERR_BUFFER_SIZE, "size");
    TU_CHECK(amxq_quantize_row(AMXQ_TYPE_Q4_1, x, 64, out, 71) == AMXQ_ERR_BUFFER_SIZE, "size1");
    TU_CHECK(amxq_quantize_row(AMXQ_TYPE_Q4_K, x, 512, out, 583) == AMXQ_ERR_BUFFER_SIZE, "sizek");
    TU_CHECK(tu_all_bytes(out, sizeof out, 0x11), "failed quantize wrote");
    TU_CHECK(amxq_quantize_row(AMXQ_TYPE_Q4_0, x, 64, out, 68) == AMXQ_OK, "q8_0");
    TU_CHECK(tu_all_bytes(out + 68, sizeof out - 68, 0x11), "q8_0 wrote past 2 blocks");
    TU_CHECK(amxq_quantize_row(AMXQ_TYPE_Q4_1, x, 64, out, 72) == AMXQ_OK, "q8_1");
    TU_CHECK(amxq_quantize_row(AMXQ_TYPE_Q4_K, x, 512, out, 584) == AMXQ_OK, "q8_k");
    TU_CHECK(tu_all_bytes(out + 584, sizeof out - 584, 0x11), "q8_k wrote past 2 blocks");
    TU_CHECK(amxq_quantize_row(AMXQ_TYPE_Q6_K, x, 512, out, 583) == AMXQ_ERR_BUFFER_SIZE, "q6k");
    TU_CHECK(amxq_quantize_row(AMXQ_TYPE_Q6_K, x, 512, out, 584) == AMXQ_OK, "q6_k -> q8_k");
    TU_CHECK(amxq_quantize_row(AMXQ_TYPE_Q5_K, x, 512, out, 584) == AMXQ_OK, "q5_k -> q8_k");
    TU_CHECK(amxq_quantize_row(AMXQ_TYPE_IQ4_XS, x, 512, out, 584) == AMXQ_OK, "iq4_xs -> q8_k");
    TU_CHECK(amxq_quantize_row(AMXQ_TYPE_Q5_0, x, 64, out, 67) == AMXQ_ERR_BUFFER_SIZE, "q5_0");
    TU_CHECK(amxq_quantize_row(AMXQ_TYPE_Q5_0, x, 64, out, 68) == AMXQ_OK, "q5_0 -> q8_0");
    TU_CHECK(amxq_quantize_row(AMXQ_TYPE_Q5_1, x, 64, out, 71) == AMXQ_ERR_BUFFER_SIZE, "q5_1");
    TU_CHECK(amxq_quantize_row(AMXQ_TYPE_Q5_1, x, 64, out, 72) == AMXQ_OK, "q5_1 -> q8_1");
    TU_CHECK(amxq_quantize_row(AMXQ_TYPE_IQ4_NL, x, 64, out, 67) == AMXQ_ERR_BUFFER_SIZE, "iq4nl");
    TU_CHECK(amxq_quantize_row(AMXQ_TYPE_IQ4_NL, x, 64, out, 68) == AMXQ_OK, "iq4_nl -> q8_0");
}

static void test_isa_api(void)
{
    amxq_isa isa = AMXQ_ISA_AVX512;
    TU_CHECK(amxq_isa_parse(NULL, &isa) == AMXQ_ERR_NULL, "parse NULL");
    TU_CHECK(amxq_isa_parse("scalar", NULL) == AMXQ_ERR_NULL, "parse NULL out");
    TU_CHECK(amxq_isa_parse("sse9", &isa) == AMXQ_ERR_ISA_UNKNOWN && isa == AMXQ_ISA_AVX512,
             "parse unknown");
    TU_CHECK(amxq_isa_check((amxq_isa)42) == AMXQ_ERR_ISA_UNKNOWN, "check unknown");
    TU_CHECK(amxq_isa_check(AMXQ_ISA_SCALAR) == AMXQ_OK, "scalar runs everywhere");
    TU_CHECK(amxq_resolve_isa(AMXQ_ISA_AUTO, (amxq_type)1, 1, &isa) == AMXQ_ERR_TYPE, "resolve");
    TU_CHECK(amxq_resolve_isa(AMXQ_ISA_AUTO, AMXQ_TYPE_Q4_0, 0, &isa) == AMXQ_ERR_SHAPE, "m=0");
    TU_CHECK(amxq_resolve_isa(AMXQ_ISA_AUTO, AMXQ_TYPE_Q4_0, 1, NULL) == AMXQ_ERR_NULL, "null");
    TU_CHECK(amxq_set_isa((amxq_isa)9) == AMXQ_ERR_ISA_UNKNOWN, "set unknown");
}

static void test_log(void)
{
    amxq_set_log(count_log, NULL);
    log_calls = 0;
    TU_CHECK(amxq_pack(AMXQ_TYPE_Q4_0, NULL, 1, 32, NULL, 0) != AMXQ_OK, "fails");
    TU_CHECK(log_calls == 1, "log callback called %d times", log_calls);
    amxq_set_log(NULL, NULL);
    TU_CHECK(amxq_pack(AMXQ_TYPE_Q4_0, NULL, 1, 32, NULL, 0) != AMXQ_OK && log_calls == 1,
             "log after removal");
}

int main(void)
{
    uint64_t seed = 12345;
    test_metadata();
    test_sizes();
    test_pack_errors(&seed);
    test_packed_validation(&seed);
    test_matmul_errors(&seed);
    test_quantize_row();
    test_isa_api();
    test_log();
    return tu_finish("api");
}
