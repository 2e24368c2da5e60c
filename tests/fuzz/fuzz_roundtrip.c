/*
 * Fuzz target (b): pack -> unpack round trip of arbitrary ggml block bytes, every type.
 *
 * Input: byte 0 picks the type, byte 1 N (1..34: up to three panels, the last one padded),
 * byte 2 K in blocks, byte 3 M (1..4), byte 4 flags (bit 0: overwrite every block's fp16 scales
 * with NaN / Inf / subnormal / zero / extreme halves chosen by the block's own bytes; bit 1: put
 * NaN and Inf into X too); the rest is the ggml bytes (repeated when short).
 *
 * Properties:
 *   - amxq_pack() reads only the amxq_ggml_size() bytes it is given (exactly sized heap copy),
 *     writes only amxq_packed_size() bytes of a larger destination, and the result passes
 *     amxq_packed_info() with the right description;
 *   - amxq_unpack() restores the input bytes exactly (scales bit for bit, NaN payloads included);
 *   - amxq_matmul_ex() on the packed weight returns AMXQ_OK on every ISA this build can run,
 *     writes only the M x N elements of C, the scalar kernels give the same bits twice, and every
 *     other ISA gives the scalar kernels' bits (the numeric contract, docs/design.md §1; a NaN
 *     matches any NaN, so NaN and Inf scales are compared too);
 *   - where an element's exact value is finite, every ISA's C agrees with an independent double
 *     evaluation of ggml's formula (fuzz_common.h, fz_check_oracle): error within 1e-5 of the
 *     magnitude of the terms, so extreme, subnormal and cancelling scales are checked too.
 */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_reader r = fz_reader_init(data, size);
    const amxq_type type = fz_type_of(fz_u8(&r));
    const int64_t qk = amxq_type_block(type);
    const size_t bb = amxq_type_block_bytes(type);
    const int64_t n = 1 + fz_u8(&r) % 34;
    const int64_t kb = 1 + fz_u8(&r) % (qk == 256 ? 2 : 4);
    const int64_t k = kb * qk;
    const int64_t m = 1 + fz_u8(&r) % 4;
    const uint8_t flags = fz_u8(&r);

    /* The ggml rows, exactly sized so ASan catches a read past them. */
    const size_t gsize = amxq_ggml_size(type, n, k);
    FZ_CHECK(gsize == (size_t)(n * kb) * bb, "ggml size %zu", gsize);
    uint8_t *g = (uint8_t *)malloc(gsize);
    FZ_CHECK(g != NULL, "out of memory");
    const size_t rest = fz_left(&r);
    for (size_t i = 0; i < gsize; i++)
        g[i] = rest ? (uint8_t)(data[r.pos + i % rest] + (uint8_t)(i / rest)) : 0;
    if (flags & 1) {
        /* Scales at offset 0 (d) and 2 (m of Q4_1, dmin of Q4_K); Q8_0 has only d. */
        for (int64_t b = 0; b < n * kb; b++) {
            uint8_t *blk = g + (size_t)b * bb;
            uint16_t d = fz_special_halves[blk[4] % FZ_N_SPECIAL];
            uint16_t d2 = fz_special_halves[blk[5] % FZ_N_SPECIAL];
            memcpy(blk, &d, 2);
            if (type != AMXQ_TYPE_Q8_0)
                memcpy(blk + 2, &d2, 2);
            if (type == AMXQ_TYPE_Q6_K) /* its d is the block's last field */
                memcpy(blk + 208, &d2, 2);
        }
    }

    const size_t psize = amxq_packed_size(type, n, k);
    FZ_CHECK(psize != 0 && psize % AMXQ_ALIGNMENT == 0, "packed size %zu", psize);
    fz_buf p = fz_buf_new(psize + 64);
    amxq_status st = amxq_pack(type, g, n, k, p.p, psize + 64);
    FZ_CHECK(st == AMXQ_OK, "pack: %s", amxq_status_str(st));
    FZ_CHECK(fz_guard_ok(&p) && fz_all(p.p + psize, 64, FZ_PATTERN),
             "pack wrote past amxq_packed_size() = %zu", psize);

    amxq_packed_desc desc;
    st = amxq_packed_info(p.p, psize, &desc);
    FZ_CHECK(st == AMXQ_OK, "packed_info of a fresh pack: %s", amxq_status_str(st));
    FZ_CHECK(desc.type == type && desc.n == n && desc.k == k && desc.bytes == psize &&
                 desc.ggml_bytes == gsize,
             "desc");

    fz_buf u = fz_buf_new(gsize);
    st = amxq_unpack(p.p, u.p, gsize);
    FZ_CHECK(st == AMXQ_OK, "unpack: %s", amxq_status_str(st));
    FZ_CHECK(fz_guard_ok(&u), "unpack wrote outside its buffer");
    if (memcmp(u.p, g, gsize) != 0) {
        size_t i = 0;
        while (u.p[i] == g[i])
            i++;
        FZ_CHECK(0, "%s n=%lld k=%lld: byte %zu (block %zu, offset %zu) is %02x, was %02x",
                 amxq_type_name(type), (long long)n, (long long)k, i, i / bb, i % bb, u.p[i], g[i]);
    }

    /* The product on the packed weight: no crash, nothing written outside C's elements. */
    const int64_t ldx = k + 1, ldc = n + 2;
    fz_buf xb = fz_buf_new((size_t)(m * ldx) * sizeof(float));
    float *x = (float *)xb.p;
    uint64_t seed = (uint64_t)size * 0x9E37u + flags;
    for (int64_t i = 0; i < m * ldx; i++)
        x[i] = fz_randf(&seed) * 8.0f;
    if (flags & 2) {
        x[0] = NAN;
        x[(m - 1) * ldx + k - 1] = INFINITY;
        if (k > 2)
            x[k / 2] = -INFINITY;
    }
    const size_t c_bytes = (size_t)(m * ldc) * sizeof(float);
    fz_buf c0 = fz_buf_new(c_bytes), c1 = fz_buf_new(c_bytes);
    static const amxq_isa isas[] = {AMXQ_ISA_SCALAR, AMXQ_ISA_AVX512, AMXQ_ISA_AMX,
                                    AMXQ_ISA_AMX_EMU, AMXQ_ISA_AVX512_EMU};
    for (size_t i = 0; i < sizeof isas / sizeof isas[0]; i++) {
        if (amxq_isa_check(isas[i]) != AMXQ_OK)
            continue;
        amxq_matmul_params mp = {isas[i], 0, NULL, 0};
        fz_buf *c = i == 0 ? &c0 : &c1;
        st = amxq_matmul_ex(p.p, x, m, ldx, (float *)c->p, ldc, &mp);
        FZ_CHECK(st == AMXQ_OK, "matmul %s: %s", amxq_isa_name(isas[i]), amxq_status_str(st));
        FZ_CHECK(fz_guard_ok(c), "guard bytes around C, isa %s", amxq_isa_name(isas[i]));
        for (int64_t row = 0; row < m; row++)
            FZ_CHECK(fz_all(c->p + (size_t)(row * ldc + n) * 4, (size_t)(ldc - n) * 4, FZ_PATTERN),
                     "C row %lld written between N and ldc, isa %s", (long long)row,
                     amxq_isa_name(isas[i]));
        /* Every ISA against the double oracle where the scales and X are finite (the tolerance
         * is scaled to the terms, so extreme and subnormal scales are fair game). */
        fz_check_oracle(amxq_isa_name(isas[i]), type, g, x, m, n, k, ldx, (const float *)c->p, ldc);
        if (i == 0) {
            memset(c1.p, FZ_PATTERN, c_bytes);
            st = amxq_matmul_ex(p.p, x, m, ldx, (float *)c1.p, ldc, &mp);
            FZ_CHECK(st == AMXQ_OK && memcmp(c0.p, c1.p, c_bytes) == 0,
                     "scalar kernels not repeatable");
        } else {
            const float *f0 = (const float *)c0.p, *f1 = (const float *)c1.p;
            for (int64_t e = 0; e < m * ldc; e++) {
                if (e % ldc >= n)
                    continue;
                FZ_CHECK((isnan(f0[e]) && isnan(f1[e])) || memcmp(f0 + e, f1 + e, 4) == 0,
                         "%s C[%lld][%lld] = %a, scalar kernels %a", amxq_isa_name(isas[i]),
                         (long long)(e / ldc), (long long)(e % ldc), (double)f1[e], (double)f0[e]);
            }
        }
    }
    FZ_CHECK(fz_guard_ok(&xb) && fz_guard_ok(&p), "X or packed guards");

    free(g);
    fz_buf_free(&p);
    fz_buf_free(&u);
    fz_buf_free(&xb);
    fz_buf_free(&c0);
    fz_buf_free(&c1);
    return 0;
}
