/*
 * amxq_pack -> amxq_unpack restores ggml's bytes exactly, for every type, on many shapes, with
 * arbitrary bytes (NaN, Inf and subnormal scales included); packing writes exactly
 * amxq_packed_size() bytes, is deterministic, and stays within the 1/16 size budget.
 */
#include "amxq.h"
#include "common/testutil.h"

static const amxq_type types[] = {AMXQ_TYPE_Q4_0, AMXQ_TYPE_Q4_1,  AMXQ_TYPE_Q8_0,   AMXQ_TYPE_Q4_K,
                                  AMXQ_TYPE_Q6_K, AMXQ_TYPE_Q5_K,  AMXQ_TYPE_IQ4_XS, AMXQ_TYPE_Q5_0,
                                  AMXQ_TYPE_Q5_1, AMXQ_TYPE_IQ4_NL};

static void roundtrip(uint64_t *seed, amxq_type type, int64_t n, int64_t k)
{
    const size_t gsize = amxq_ggml_size(type, n, k);
    const size_t psize = amxq_packed_size(type, n, k);
    TU_CHECK(gsize > 0 && psize > 0 && psize % 64 == 0, "%s n=%lld k=%lld sizes %zu %zu",
             amxq_type_name(type), (long long)n, (long long)k, gsize, psize);
    if (!gsize || !psize)
        return;

    uint8_t *src = (uint8_t *)malloc(gsize);
    tu_fill_bytes(seed, src, gsize);
    tu_buf packed = tu_buf_new(psize, 256);
    tu_buf packed2 = tu_buf_new(psize, 0);
    tu_buf back = tu_buf_new(gsize, 256);

    amxq_status st = amxq_pack(type, src, n, k, packed.p, psize);
    TU_CHECK(st == AMXQ_OK, "pack %s n=%lld k=%lld: %s", amxq_type_name(type), (long long)n,
             (long long)k, amxq_status_str(st));
    TU_CHECK(tu_guard_ok(&packed), "pack wrote outside its buffer (%s n=%lld k=%lld)",
             amxq_type_name(type), (long long)n, (long long)k);

    amxq_packed_desc desc;
    st = amxq_packed_info(packed.p, psize, &desc);
    TU_CHECK(st == AMXQ_OK && desc.type == type && desc.n == n && desc.k == k &&
                 desc.bytes == psize && desc.ggml_bytes == gsize,
             "packed_info %s", amxq_status_str(st));

    /* Deterministic: a second pack is byte-identical, padding included. */
    st = amxq_pack(type, src, n, k, packed2.p, psize);
    TU_CHECK(st == AMXQ_OK && memcmp(packed.p, packed2.p, psize) == 0, "pack not deterministic");

    st = amxq_unpack(packed.p, back.p, gsize);
    TU_CHECK(st == AMXQ_OK, "unpack: %s", amxq_status_str(st));
    TU_CHECK(memcmp(src, back.p, gsize) == 0, "round trip differs: %s n=%lld k=%lld",
             amxq_type_name(type), (long long)n, (long long)k);
    TU_CHECK(tu_guard_ok(&back), "unpack wrote outside its buffer");

    /* Size budget (docs/design.md §4): per full panel at most 1/16 over ggml's bytes; the header
     * and the padding of a ragged last panel come on top. */
    const int64_t panels = (n + 15) / 16;
    const double per_panel = (double)(psize - 128) / (double)panels;
    const double ggml_panel = (double)(amxq_ggml_size(type, 1, k)) * 16.0;
    TU_CHECK(per_panel <= ggml_panel * 17.0 / 16.0 + 64.0, "%s k=%lld: %.0f bytes a panel > %.0f",
             amxq_type_name(type), (long long)k, per_panel, ggml_panel * 17.0 / 16.0);

    free(src);
    tu_buf_free(&packed);
    tu_buf_free(&packed2);
    tu_buf_free(&back);
}

/* ggml blocks whose scales are chosen NaN / Inf / subnormal / -0 on purpose. */
static void special_scales(uint64_t *seed, amxq_type type)
{
    static const uint16_t specials[] = {0x7e00, 0x7c01, 0xfc00, 0x7c00,
                                        0x0001, 0x8000, 0x03ff, 0xffff};
    const int64_t n = 17, k = amxq_type_block(type) * 3;
    const size_t gsize = amxq_ggml_size(type, n, k), bsz = amxq_type_block_bytes(type);
    uint8_t *src = (uint8_t *)malloc(gsize);
    tu_fill_bytes(seed, src, gsize);
    for (size_t b = 0; b < gsize / bsz; b++) {
        uint16_t d = specials[b % 8], m = specials[(b + 3) % 8];
        memcpy(src + b * bsz, &d, 2);
        if (type != AMXQ_TYPE_Q4_0 && type != AMXQ_TYPE_Q8_0)
            memcpy(src + b * bsz + 2, &m, 2);
        if (type == AMXQ_TYPE_Q6_K) /* d is the block's last field */
            memcpy(src + b * bsz + 208, &d, 2);
    }
    const size_t psize = amxq_packed_size(type, n, k);
    tu_buf packed = tu_buf_new(psize, 0);
    uint8_t *back = (uint8_t *)malloc(gsize);
    TU_CHECK(amxq_pack(type, src, n, k, packed.p, psize) == AMXQ_OK, "pack specials");
    TU_CHECK(amxq_unpack(packed.p, back, gsize) == AMXQ_OK, "unpack specials");
    TU_CHECK(memcmp(src, back, gsize) == 0, "special scales not preserved (%s)",
             amxq_type_name(type));
    free(src);
    free(back);
    tu_buf_free(&packed);
}

int main(void)
{
    uint64_t seed = 0x9E3779B97F4A7C15ull;
    static const int64_t ns[] = {1, 15, 16, 17, 100, 4096};
    for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
        const int64_t qk = amxq_type_block(types[t]);
        for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++) {
            for (int64_t nb = 1; nb <= 16; nb = nb < 4 ? nb + 1 : nb * 2) {
                const int64_t k = nb * qk;
                if (ns[i] * k > 4096 * 1024)
                    continue; /* keep the largest cases to a few MB */
                roundtrip(&seed, types[t], ns[i], k);
            }
        }
        roundtrip(&seed, types[t], 33, 4096);
        roundtrip(&seed, types[t], 3, 16384);
        special_scales(&seed, types[t]);
    }
    return tu_finish("pack_roundtrip");
}
