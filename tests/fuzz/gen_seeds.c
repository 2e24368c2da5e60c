/*
 * Writes the checked-in seed corpora of the fuzz targets (tests/fuzz/corpus/<target>/): a handful
 * of small, meaningful inputs per target, so the replay tests exercise every type, every ISA value
 * and every fault class, and so libFuzzer starts from real packed headers instead of noise.
 * Deterministic: rerunning it rewrites the same bytes. Usage: gen_seeds CORPUS_ROOT (the three
 * target directories must exist). Inputs libFuzzer finds are merged next to these (run-fuzzers.sh
 * --merge), under libFuzzer's hash names.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "amxq.h"

static const char *root;
static int failed;

static void put(const char *target, const char *name, const void *p, size_t n)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s/seed-%s", root, target, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(p, 1, n, f) != n) {
        perror(path);
        failed = 1;
    }
    if (f)
        fclose(f);
}

static uint64_t rng = 0x1234567887654321ull;
static uint8_t rand8(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint8_t)(rng >> 24);
}

static const amxq_type types[4] = {AMXQ_TYPE_Q4_0, AMXQ_TYPE_Q4_1, AMXQ_TYPE_Q8_0, AMXQ_TYPE_Q4_K};

/* ggml rows of random bytes with moderate fp16 scales, or special ones. */
static uint8_t *make_ggml(amxq_type t, int64_t n, int64_t k, int special)
{
    size_t bb = amxq_type_block_bytes(t), size = amxq_ggml_size(t, n, k);
    uint8_t *g = (uint8_t *)malloc(size);
    if (!g)
        exit(2);
    for (size_t i = 0; i < size; i++)
        g[i] = rand8();
    static const uint16_t sp[] = {0x7C00, 0x7E00, 0x0001, 0xFC00, 0x0000, 0x7BFF};
    for (size_t b = 0; b < size / bb; b++) {
        uint16_t d = special ? sp[b % 6] : (uint16_t)(0x1C00 + rand8());
        uint16_t d2 = special ? sp[(b + 3) % 6] : (uint16_t)(0x1800 + rand8());
        memcpy(g + b * bb, &d, 2);
        if (t != AMXQ_TYPE_Q8_0)
            memcpy(g + b * bb + 2, &d2, 2);
        if (t == AMXQ_TYPE_Q6_K) /* its d is the block's last field */
            memcpy(g + b * bb + 208, &d, 2);
    }
    return g;
}

static void *make_packed(amxq_type t, int64_t n, int64_t k, int special, size_t *size)
{
    uint8_t *g = make_ggml(t, n, k, special);
    *size = amxq_packed_size(t, n, k);
    void *p = aligned_alloc(AMXQ_ALIGNMENT, *size);
    if (!p || amxq_pack(t, g, n, k, p, *size) != AMXQ_OK) {
        fprintf(stderr, "pack failed\n");
        exit(2);
    }
    free(g);
    return p;
}

static void seeds_packed(void)
{
    char name[64];
    for (int ti = 0; ti < 4; ti++) {
        const amxq_type t = types[ti];
        const int64_t k = amxq_type_block(t);
        size_t size;
        uint8_t *p = (uint8_t *)make_packed(t, 1, k, 0, &size);
        snprintf(name, sizeof name, "%s-n1-k%lld", amxq_type_name(t), (long long)k);
        put("packed", name, p, size);
        if (t != AMXQ_TYPE_Q4_K) {
            /* Two panels, the second padded; trailing bytes beyond the header's size. */
            free(p);
            p = (uint8_t *)make_packed(t, 17, 2 * k, 0, &size);
            uint8_t *q = (uint8_t *)malloc(size + 7);
            memcpy(q, p, size);
            memset(q + size, 0x3C, 7);
            snprintf(name, sizeof name, "%s-n17-k%lld-trailing", amxq_type_name(t),
                     (long long)(2 * k));
            put("packed", name, q, size + 7);
            free(q);
            free(p);
            p = (uint8_t *)make_packed(t, 3, k, 1, &size);
            snprintf(name, sizeof name, "%s-n3-special-scales", amxq_type_name(t));
            put("packed", name, p, size);
        }
        if (ti == 0) {
            /* Faults: a truncated header, a truncated body, a bad magic, a wrong version, a
             * broken checksum, a header claiming a type it is not. */
            put("packed", "bad-header-truncated", p, 100);
            put("packed", "bad-body-truncated", p, size - 1);
            uint8_t *q = (uint8_t *)malloc(size);
            memcpy(q, p, size);
            q[0] ^= 1;
            put("packed", "bad-magic", q, size);
            memcpy(q, p, size);
            q[8] = 2;
            put("packed", "bad-version", q, size);
            memcpy(q, p, size);
            q[127] ^= 0x80;
            put("packed", "bad-checksum", q, size);
            memcpy(q, p, size);
            q[12] = (uint8_t)AMXQ_TYPE_Q8_0;
            put("packed", "bad-type", q, size);
            free(q);
        }
        free(p);
    }
    put("packed", "empty", "", 0);
}

static void seeds_roundtrip(void)
{
    char name[64];
    static const uint8_t shapes[][5] = {
        /* n-1, kblocks-1, m-1, flags */
        {0, 0, 0, 0}, {16, 1, 3, 0}, {32, 3, 1, 1}, {2, 0, 0, 1}, {5, 1, 2, 3}, {15, 0, 0, 2},
    };
    for (int ti = 0; ti < 4; ti++) {
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
            uint8_t in[5 + 200];
            in[0] = (uint8_t)ti;
            memcpy(in + 1, shapes[s], 4);
            for (size_t i = 5; i < sizeof in; i++)
                in[i] = rand8();
            /* Half the seeds carry whole blocks with special scales written in place. */
            if (s & 1) {
                static const uint16_t sp[] = {0x7C00, 0x7E01, 0x03FF, 0x8000};
                memcpy(in + 5, &sp[s % 4], 2);
            }
            snprintf(name, sizeof name, "%s-%zu", amxq_type_name(types[ti]), s);
            put("roundtrip", name, in, sizeof in);
        }
    }
}

static void seeds_shapes(void)
{
    char name[64];
    /* type, M, N, K, ldx - K + 3, ldc - N + 3, isa index, flags, then the seed. */
    struct {
        const char *name;
        uint8_t b[8];
    } s[] = {
        {"ok-q4_0", {0, 0, 0, 0, 3, 3, 1, 0}},
        {"ok-q4_1-strided", {1, 7, 16, 1, 9, 10, 1, 0}},
        {"ok-q8_0-n33", {2, 15, 32, 3, 4, 5, 1, 0}},
        {"ok-q4_k", {3, 4, 20, 0, 3, 3, 1, 0}},
        {"auto", {0, 5, 23, 2, 3, 3, 0, 0}},
        {"avx512", {1, 3, 17, 1, 3, 3, 2, 0}},
        {"amx", {2, 3, 17, 1, 3, 3, 3, 0}},
        {"amx-emu-q4_0", {0, 15, 39, 3, 5, 4, 4, 0}},
        {"amx-emu-q4_1", {1, 8, 16, 2, 3, 6, 4, 0}},
        {"amx-emu-q8_0", {2, 1, 5, 0, 3, 3, 4, 0}},
        {"amx-emu-q4_k", {3, 12, 33, 0, 4, 3, 4, 0}},
        {"amx-emu-keep-tiles", {0, 4, 18, 1, 3, 3, 8, 1}},
        {"avx512-emu-q4_0", {0, 2, 9, 3, 3, 3, 5, 0}},
        {"avx512-emu-q4_1", {1, 15, 31, 0, 7, 3, 5, 0}},
        {"avx512-emu-q8_0", {2, 6, 16, 2, 3, 3, 9, 0}},
        {"avx512-emu-q4_k", {3, 0, 40, 0, 3, 8, 5, 0}},
        {"isa-6", {0, 1, 1, 0, 3, 3, 10, 0}},
        {"isa-7", {0, 1, 1, 0, 3, 3, 11, 0}},
        {"isa-neg1", {1, 1, 1, 0, 3, 3, 12, 0}},
        {"isa-255", {2, 1, 1, 0, 3, 3, 13, 0}},
        {"isa-intmax", {3, 1, 1, 0, 3, 3, 14, 0}},
        {"isa-intmin", {0, 1, 1, 0, 3, 3, 15, 0}},
        {"bad-type", {250, 1, 1, 0, 3, 3, 1, 0}},
        {"bad-type-255", {254, 1, 1, 0, 3, 3, 1, 0}},
        {"m-zero", {0, 250, 3, 0, 3, 3, 1, 0}},
        {"m-neg", {1, 251, 3, 0, 3, 3, 1, 0}},
        {"m-2p31", {2, 253, 3, 0, 3, 3, 4, 0}},
        {"m-int64min", {3, 254, 3, 0, 3, 3, 1, 0}},
        {"n-zero", {0, 1, 250, 0, 3, 3, 1, 0}},
        {"n-2p31", {0, 1, 253, 0, 3, 3, 1, 0}},
        {"n-int64max", {0, 1, 255, 0, 3, 3, 1, 0}},
        {"k-zero", {0, 1, 1, 250, 3, 3, 1, 0}},
        {"k-neg", {3, 1, 1, 252, 3, 3, 1, 0}},
        {"k-not-block", {0, 1, 1, 240, 3, 3, 1, 0}},
        {"k-not-block-q4_k", {3, 1, 1, 233, 3, 3, 1, 0}},
        {"ldx-short", {0, 3, 5, 1, 2, 3, 1, 0}},
        {"ldx-short-m1", {1, 0, 5, 1, 0, 3, 4, 0}},
        {"ldc-short", {2, 3, 5, 1, 3, 1, 5, 0}},
        {"flags-unknown", {0, 3, 5, 1, 3, 3, 1, 2}},
        {"flags-top", {0, 3, 5, 1, 3, 3, 4, 3}},
        {"ws-exact", {1, 3, 5, 1, 3, 3, 4, 4}},
        {"ws-short", {2, 3, 5, 1, 3, 3, 1, 8}},
        {"ws-misaligned", {3, 3, 5, 0, 3, 3, 5, 12}},
        {"ws-exact-keep", {0, 3, 5, 1, 3, 3, 4, 5}},
        {"many-faults", {251, 250, 250, 240, 0, 0, 12, 14}},
    };
    for (size_t i = 0; i < sizeof s / sizeof s[0]; i++) {
        uint8_t in[16];
        memcpy(in, s[i].b, 8);
        for (int j = 8; j < 16; j++)
            in[j] = rand8();
        snprintf(name, sizeof name, "%s", s[i].name);
        put("shapes", name, in, sizeof in);
    }
}

/* Seeds for the types added after the first four (issue 14), made last so that the seeds above
 * stay byte for byte what they were. A carved type byte of 232 + i names later type i
 * (fz_type_of() in fuzz_common.h). */
static void seeds_later_types(void)
{
    static const amxq_type later[] = {AMXQ_TYPE_Q6_K, AMXQ_TYPE_Q5_K, AMXQ_TYPE_IQ4_XS,
                                      AMXQ_TYPE_Q5_0, AMXQ_TYPE_Q5_1, AMXQ_TYPE_IQ4_NL};
    char name[64];
    for (size_t i = 0; i < sizeof later / sizeof later[0]; i++) {
        const amxq_type t = later[i];
        const char *tn = amxq_type_name(t);
        const uint8_t tb = (uint8_t)(232 + i);
        const int64_t k = amxq_type_block(t);
        size_t size;
        uint8_t *p = (uint8_t *)make_packed(t, 1, k, 0, &size);
        snprintf(name, sizeof name, "%s-n1-k%lld", tn, (long long)k);
        put("packed", name, p, size);
        free(p);
        p = (uint8_t *)make_packed(t, 17, 2 * k, 0, &size);
        snprintf(name, sizeof name, "%s-n17-k%lld", tn, (long long)(2 * k));
        put("packed", name, p, size);
        free(p);
        p = (uint8_t *)make_packed(t, 3, k, 1, &size);
        snprintf(name, sizeof name, "%s-n3-special-scales", tn);
        put("packed", name, p, size);
        free(p);

        static const uint8_t shapes[][4] = {
            {0, 0, 0, 0}, {16, 1, 3, 0}, {2, 0, 0, 1}, {33, 1, 2, 3}};
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
            uint8_t in[5 + 240];
            in[0] = tb;
            memcpy(in + 1, shapes[s], 4);
            for (size_t j = 5; j < sizeof in; j++)
                in[j] = rand8();
            snprintf(name, sizeof name, "%s-%zu", tn, s);
            put("roundtrip", name, in, sizeof in);
        }

        /* type, M, N, K, ldx - K + 3, ldc - N + 3, isa index, flags (as seeds_shapes) */
        static const struct {
            const char *what;
            uint8_t b[7];
        } sh[] = {
            {"ok", {0, 0, 0, 3, 3, 1, 0}},          {"auto-m16", {15, 20, 0, 3, 3, 0, 0}},
            {"avx512", {3, 33, 0, 4, 5, 2, 0}},     {"amx", {3, 17, 0, 3, 3, 3, 0}},
            {"amx-emu", {12, 33, 0, 4, 3, 4, 0}},   {"amx-emu-keep", {4, 18, 0, 3, 3, 8, 1}},
            {"avx512-emu", {6, 40, 0, 3, 8, 5, 0}}, {"k-not-block", {1, 1, 233, 3, 3, 1, 0}},
            {"ws-exact", {3, 5, 0, 3, 3, 4, 4}},
        };
        for (size_t s = 0; s < sizeof sh / sizeof sh[0]; s++) {
            uint8_t in[16];
            in[0] = tb;
            memcpy(in + 1, sh[s].b, 7);
            for (int j = 8; j < 16; j++)
                in[j] = rand8();
            snprintf(name, sizeof name, "%s-%s", tn, sh[s].what);
            put("shapes", name, in, sizeof in);
        }
    }
}

/* Seeds for the slice API in fuzz_shapes (flags bit 4), made last for the same reason. */
static void seeds_slices(void)
{
    /* type, M, N, K, ldx - K + 3, ldc - N + 3, isa index, flags: bits 2-3 the workspace, bit 4
     * the slice API, bits 5-6 and 7 the thread counts (fuzz_shapes.c) */
    static const struct {
        const char *name;
        uint8_t b[8];
    } s[] = {
        {"slice-q4_0-auto-1x1", {0, 15, 39, 3, 3, 3, 0, 4 | 16}},
        {"slice-q4_1-scalar-3x3", {1, 7, 16, 1, 9, 10, 1, 4 | 16 | 2 << 5}},
        {"slice-q8_0-avx512-2x3", {2, 15, 32, 3, 4, 5, 2, 4 | 16 | 1 << 5 | 128}},
        {"slice-q4_k-amx-emu-1x2", {3, 12, 33, 0, 4, 3, 4, 4 | 16 | 128}},
        {"slice-q6_k-avx512-emu-3x4", {232, 6, 40, 0, 3, 8, 5, 4 | 16 | 2 << 5 | 128}},
        {"slice-iq4_nl-amx-emu-keep", {237, 4, 18, 1, 3, 3, 8, 1 | 4 | 16 | 1 << 5}},
        {"slice-amx", {234, 3, 17, 0, 3, 3, 3, 4 | 16 | 1 << 5}},
        {"slice-no-workspace", {0, 3, 5, 1, 3, 3, 1, 16}},
        {"slice-ws-short", {2, 3, 5, 1, 3, 3, 4, 8 | 16}},
        {"slice-ws-misaligned", {3, 3, 5, 0, 3, 3, 5, 12 | 16}},
        {"slice-ldx-short", {0, 3, 5, 1, 2, 3, 1, 4 | 16 | 1 << 5}},
        {"slice-ldc-short", {2, 3, 5, 1, 3, 1, 5, 4 | 16 | 128}},
        {"slice-m-zero", {0, 250, 3, 0, 3, 3, 1, 4 | 16}},
        {"slice-flags-unknown", {0, 3, 5, 1, 3, 3, 1, 2 | 4 | 16}},
        {"slice-isa-255", {2, 1, 1, 0, 3, 3, 13, 4 | 16}},
    };
    for (size_t i = 0; i < sizeof s / sizeof s[0]; i++) {
        uint8_t in[16];
        memcpy(in, s[i].b, 8);
        for (int j = 8; j < 16; j++)
            in[j] = rand8();
        put("shapes", s[i].name, in, sizeof in);
    }
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s CORPUS_ROOT\n", argv[0]);
        return 2;
    }
    root = argv[1];
    seeds_packed();
    seeds_roundtrip();
    seeds_shapes();
    seeds_later_types();
    seeds_slices();
    return failed;
}
