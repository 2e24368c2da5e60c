/*
 * Type metadata and the packed layout: sizes from (type, n, k), the header, and its validation.
 * A packed buffer is accepted only when every header field equals what this file would compute
 * for the buffer's (type, n, k), so no kernel ever sees a layout it did not expect.
 */
#include <string.h>

#include "internal.h"
#include "pack/pack.h"

static const struct {
    amxq_type type;
    const char *name;
    int64_t block_k;
    size_t block_bytes;
    size_t chunk_bytes;
    size_t terms_bytes;
} type_info[AMXQ_NTYPES] = {
#define AMXQ_X_INFO(T, name, qk, bytes, act)                                                       \
    {AMXQ_TYPE_##T, #name, qk, bytes, AMXQ_CHUNK_##T, AMXQ_TERMS_##T},
    AMXQ_FOREACH_TYPE(AMXQ_X_INFO)
#undef AMXQ_X_INFO
};

/* Packed per-block bytes per panel must stay within ggml's bytes plus 1/16 (docs/design.md §4). */
#define AMXQ_X_BUDGET(T, name, qk, bytes, act)                                                     \
    _Static_assert((AMXQ_CHUNK_##T + AMXQ_TERMS_##T) * 16 <= AMXQ_PANEL_N * (bytes)*17,            \
                   #name " packed layout exceeds the 1/16 size budget");
AMXQ_FOREACH_TYPE(AMXQ_X_BUDGET)
#undef AMXQ_X_BUDGET
_Static_assert(sizeof(amxq_packed_header) == AMXQ_HEADER_BYTES, "header must be 128 bytes");

int amxq_type_index(amxq_type type)
{
    for (int i = 0; i < AMXQ_NTYPES; i++)
        if (type_info[i].type == type)
            return i;
    return -1;
}

const char *amxq_type_name(amxq_type type)
{
    int i = amxq_type_index(type);
    return i < 0 ? NULL : type_info[i].name;
}

int64_t amxq_type_block(amxq_type type)
{
    int i = amxq_type_index(type);
    return i < 0 ? 0 : type_info[i].block_k;
}

size_t amxq_type_block_bytes(amxq_type type)
{
    int i = amxq_type_index(type);
    return i < 0 ? 0 : type_info[i].block_bytes;
}

/* Largest N or K accepted: keeps every index product within 64 bits and int32 loop counters. */
#define AMXQ_MAX_DIM (((int64_t)1 << 31) - 1)

amxq_status amxq_layout_init(amxq_layout *lo, amxq_type type, int64_t n, int64_t k)
{
    int ti = amxq_type_index(type);
    AMXQ_CHECK(ti >= 0, AMXQ_ERR_TYPE);
    AMXQ_CHECK(n > 0 && k > 0 && n <= AMXQ_MAX_DIM && k <= AMXQ_MAX_DIM, AMXQ_ERR_SHAPE);
    AMXQ_CHECK(k % type_info[ti].block_k == 0, AMXQ_ERR_K_BLOCK);

    memset(lo, 0, sizeof *lo);
    lo->type = type;
    lo->ti = ti;
    lo->n = n;
    lo->k = k;
    lo->block_k = type_info[ti].block_k;
    lo->block_bytes = type_info[ti].block_bytes;
    lo->chunk_bytes = type_info[ti].chunk_bytes;
    lo->terms_bytes = type_info[ti].terms_bytes;
    lo->n_panels = (n + AMXQ_PANEL_N - 1) / AMXQ_PANEL_N;
    lo->k_blocks = k / lo->block_k;

    /* k_blocks < 2^31 and chunk + terms < 2^12: the panel size fits in 44 bits. */
    uint64_t terms_offset = (uint64_t)lo->k_blocks * lo->chunk_bytes;
    uint64_t panel = AMXQ_ROUND_UP(terms_offset + (uint64_t)lo->k_blocks * lo->terms_bytes, 64);
    /* n_panels < 2^27, so the product fits in 71 bits at worst: check before multiplying. */
    AMXQ_CHECK(panel <= (UINT64_MAX - AMXQ_HEADER_BYTES) / (uint64_t)lo->n_panels, AMXQ_ERR_SHAPE);
    uint64_t total = AMXQ_HEADER_BYTES + panel * (uint64_t)lo->n_panels;
    AMXQ_CHECK(total <= (uint64_t)SIZE_MAX, AMXQ_ERR_SHAPE);
    lo->terms_offset = (size_t)terms_offset;
    lo->panel_bytes = (size_t)panel;
    lo->panels_offset = AMXQ_HEADER_BYTES;
    lo->total_bytes = (size_t)total;
    return AMXQ_OK;
}

size_t amxq_ggml_size(amxq_type type, int64_t n, int64_t k)
{
    amxq_layout lo;
    if (amxq_layout_init(&lo, type, n, k) != AMXQ_OK)
        return 0;
    uint64_t bytes = (uint64_t)lo.k_blocks * lo.block_bytes;
    if (bytes > (uint64_t)SIZE_MAX / (uint64_t)n)
        return 0;
    return (size_t)(bytes * (uint64_t)n);
}

size_t amxq_packed_size(amxq_type type, int64_t n, int64_t k)
{
    amxq_layout lo;
    return amxq_layout_init(&lo, type, n, k) == AMXQ_OK ? lo.total_bytes : 0;
}

/* FNV-1a, 64-bit: cheap, and enough to catch a corrupted or foreign header. */
static uint64_t fnv1a64(const void *p, size_t n)
{
    const uint8_t *b = (const uint8_t *)p;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

static void header_fill(amxq_packed_header *h, const amxq_layout *lo)
{
    memset(h, 0, sizeof *h);
    memcpy(h->magic, AMXQ_PACKED_MAGIC, sizeof h->magic);
    h->format_version = AMXQ_PACKED_FORMAT_VERSION;
    h->type = (uint32_t)lo->type;
    h->n = lo->n;
    h->k = lo->k;
    h->panel_n = AMXQ_PANEL_N;
    h->block_k = (uint32_t)lo->block_k;
    h->block_bytes = (uint32_t)lo->block_bytes;
    h->chunk_bytes = (uint32_t)lo->chunk_bytes;
    h->terms_bytes = (uint32_t)lo->terms_bytes;
    h->n_panels = (uint64_t)lo->n_panels;
    h->k_blocks = (uint64_t)lo->k_blocks;
    h->panel_bytes = lo->panel_bytes;
    h->panels_offset = lo->panels_offset;
    h->total_bytes = lo->total_bytes;
    h->checksum = fnv1a64(h, offsetof(amxq_packed_header, checksum));
}

void amxq_header_write(void *dst, const amxq_layout *lo)
{
    amxq_packed_header h;
    header_fill(&h, lo);
    memcpy(dst, &h, sizeof h);
}

amxq_status amxq_layout_read(amxq_layout *lo, const void *packed, size_t size)
{
    amxq_packed_header h, want;
    AMXQ_CHECK(size >= sizeof h, AMXQ_ERR_BAD_PACKED);
    memcpy(&h, packed, sizeof h); /* any alignment */
    AMXQ_CHECK(memcmp(h.magic, AMXQ_PACKED_MAGIC, sizeof h.magic) == 0, AMXQ_ERR_BAD_PACKED);
    AMXQ_CHECK(h.format_version == AMXQ_PACKED_FORMAT_VERSION, AMXQ_ERR_BAD_PACKED);
    AMXQ_CHECK(h.checksum == fnv1a64(&h, offsetof(amxq_packed_header, checksum)),
               AMXQ_ERR_BAD_PACKED);
    /* The checksum only proves the header is intact; it must also be the layout we would make. */
    AMXQ_CHECK(amxq_layout_init(lo, (amxq_type)h.type, h.n, h.k) == AMXQ_OK, AMXQ_ERR_BAD_PACKED);
    header_fill(&want, lo);
    AMXQ_CHECK(memcmp(&h, &want, sizeof h) == 0, AMXQ_ERR_BAD_PACKED);
    AMXQ_CHECK(lo->total_bytes <= size, AMXQ_ERR_BAD_PACKED);
    return AMXQ_OK;
}
