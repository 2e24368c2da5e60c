/*
 * ggml rows <-> packed panels (layout in src/internal.h, docs/packed-format.md).
 *
 * Both directions are byte shuffles: quants move four bytes at a time into the VNNI lines, and
 * scales are copied as raw fp16 bits (so NaN, Inf and subnormals survive). Only the 6-bit scales
 * and mins of Q4_K / Q5_K / IQ4_XS (unpacked to bytes) and the 32 qh bits of Q5_0 / Q5_1
 * (reordered) are transformed; each is a bijection, so unpacking re-encodes it exactly.
 *
 *   ggml row j of the panel, block b:   qs = [q0 q1 q2 q3][q4 q5 q6 q7] ...
 *   packed chunk of block b, line 0:    [row0 q0..q3][row1 q0..q3] ... [row15 q0..q3]
 *                            line 1:    [row0 q4..q7][row1 q4..q7] ... [row15 q4..q7]
 */
#include <string.h>

#include "internal.h"
#include "pack/pack.h"

/* Offsets of the fields inside one ggml block. */
struct block_fields {
    size_t d, m;   /* fp16 d and m / dmin; m == SIZE_MAX when absent */
    size_t scales; /* Q4_K 12-byte scales, SIZE_MAX when absent */
    size_t qs, qs_bytes;
};

static struct block_fields fields_of(amxq_type type)
{
    switch (type) {
    case AMXQ_TYPE_Q4_0:
        return (struct block_fields){0, SIZE_MAX, SIZE_MAX, 2, 16};
    case AMXQ_TYPE_Q4_1:
        return (struct block_fields){0, 2, SIZE_MAX, 4, 16};
    case AMXQ_TYPE_Q8_0:
        return (struct block_fields){0, SIZE_MAX, SIZE_MAX, 2, 32};
    case AMXQ_TYPE_Q5_0: /* d; qh and qs are one run of 20 bytes */
        return (struct block_fields){0, SIZE_MAX, SIZE_MAX, 2, 20};
    case AMXQ_TYPE_Q5_1: /* d, m; qh and qs as Q5_0 */
        return (struct block_fields){0, 2, SIZE_MAX, 4, 20};
    case AMXQ_TYPE_IQ4_NL: /* as Q4_0 */
        return (struct block_fields){0, SIZE_MAX, SIZE_MAX, 2, 16};
    case AMXQ_TYPE_IQ4_XS: /* d, scales_h and scales_l (6 bytes at 2), qs */
        return (struct block_fields){0, SIZE_MAX, 2, 8, 128};
    case AMXQ_TYPE_Q5_K: /* Q4_K's fields; qh and qs are one run of 160 bytes */
        return (struct block_fields){0, 2, 4, 16, 160};
    case AMXQ_TYPE_Q6_K: /* ql and qh are one run of 192 bytes; scales[16] int8; d last */
        return (struct block_fields){208, SIZE_MAX, 192, 0, 192};
    case AMXQ_TYPE_Q4_K:
    default:
        return (struct block_fields){0, 2, 4, 16, 128};
    }
}

size_t amxq_ggml_fp16_fields(amxq_type type, size_t off[2])
{
    const struct block_fields f = fields_of(type);
    off[0] = f.d;
    off[1] = f.m;
    return f.m == SIZE_MAX ? 1 : 2;
}

/* Q4_K: 12 bytes <-> 8 scales and 8 mins of 6 bits (docs/design.md §2). */
static void q4k_scales_decode(const uint8_t s[12], uint8_t sc[8], uint8_t m[8])
{
    for (int j = 0; j < 4; j++) {
        sc[j] = s[j] & 63;
        m[j] = s[j + 4] & 63;
        sc[j + 4] = (uint8_t)((s[j + 8] & 15) | ((s[j] >> 6) << 4));
        m[j + 4] = (uint8_t)((s[j + 8] >> 4) | ((s[j + 4] >> 6) << 4));
    }
}

static void q4k_scales_encode(const uint8_t sc[8], const uint8_t m[8], uint8_t s[12])
{
    for (int j = 0; j < 4; j++) {
        s[j] = (uint8_t)((sc[j] & 63) | ((sc[j + 4] >> 4) << 6));
        s[j + 4] = (uint8_t)((m[j] & 63) | ((m[j + 4] >> 4) << 6));
        s[j + 8] = (uint8_t)((sc[j + 4] & 15) | ((m[j + 4] & 15) << 4));
    }
}

/* IQ4_XS: scales_h (u16) and scales_l[4] <-> the 8 6-bit scales ls_i, stored as ls_i - 32
 * (docs/design.md §2). 48 bits either way: a bijection. */
static void iq4xs_scales_decode(const uint8_t s[6], int8_t ls[8])
{
    const unsigned h = (unsigned)s[0] | (unsigned)s[1] << 8;
    for (int i = 0; i < 8; i++)
        ls[i] =
            (int8_t)((int)(((s[2 + i / 2] >> 4 * (i % 2)) & 15) | ((h >> 2 * i) & 3) << 4) - 32);
}

static void iq4xs_scales_encode(const int8_t ls[8], uint8_t s[6])
{
    unsigned h = 0;
    memset(s, 0, 6);
    for (int i = 0; i < 8; i++) {
        const unsigned v = (unsigned)(ls[i] + 32) & 63;
        s[2 + i / 2] |= (uint8_t)((v & 15) << 4 * (i % 2));
        h |= (v >> 4) << 2 * i;
    }
    s[0] = (uint8_t)h;
    s[1] = (uint8_t)(h >> 8);
}

/* Q5_0, Q5_1: ggml's qh bit g (the fifth bit of weight g) <-> packed qh bit 8i + 2L + h, where
 * g = 16h + 4L + i: the weight sits in nibble h of byte i of qs line L (src/internal.h). Byte B of
 * ggml's qh holds g = 8B + k (k < 8), which goes to bit 8(k & 3) + 2(k >> 2) + 4(B & 1) + (B >> 1):
 * a fixed spread of the byte's bits, shifted by 4(B & 1) + (B >> 1). (Bit by bit, this made
 * packing Q5_0 six times slower than Q4_0.) */
static uint32_t q5_spread8(uint32_t x) /* bit k -> bit 8(k & 3) + 2(k >> 2) */
{
    /* n * 0x204081 puts bit k of a nibble at k, k + 7, k + 14, k + 21: bits 0, 8, 16, 24 are bits
     * 0..3 of n, and no two products meet, so nothing carries */
    const uint32_t lo = ((x & 15u) * 0x204081u) & 0x01010101u;
    const uint32_t hi = ((x >> 4) * 0x204081u) & 0x01010101u;
    return lo | hi << 2;
}

static uint32_t q5_gather8(uint32_t y) /* bit 8(k & 3) + 2(k >> 2) -> bit k */
{
    /* bits 0, 8, 16, 24 times 0x01020408 meet at bits 24..27 (no carries: each column of the
     * product has at most one set bit below bit 28) */
    const uint32_t lo = ((y & 0x01010101u) * 0x01020408u) >> 24 & 15u;
    const uint32_t hi = (((y >> 2) & 0x01010101u) * 0x01020408u) >> 24 & 15u;
    return lo | hi << 4;
}

/* The row's 4 qh bytes, ggml order -> packed order (pack = 1) or back (pack = 0), in place. */
static void q5_qh_reorder(uint8_t qh[4], int pack)
{
    if (pack) {
        const uint32_t out = q5_spread8(qh[0]) | q5_spread8(qh[1]) << 4 | q5_spread8(qh[2]) << 1 |
                             q5_spread8(qh[3]) << 5;
        for (int i = 0; i < 4; i++)
            qh[i] = (uint8_t)(out >> 8 * i);
    } else {
        const uint32_t in =
            (uint32_t)qh[0] | (uint32_t)qh[1] << 8 | (uint32_t)qh[2] << 16 | (uint32_t)qh[3] << 24;
        qh[0] = (uint8_t)q5_gather8(in);
        qh[1] = (uint8_t)q5_gather8(in >> 4);
        qh[2] = (uint8_t)q5_gather8(in >> 1);
        qh[3] = (uint8_t)q5_gather8(in >> 5);
    }
}

void amxq_pack_panels(const amxq_layout *lo, const uint8_t *ggml_rows, uint8_t *packed, int64_t p0,
                      int64_t p1)
{
    const struct block_fields f = fields_of(lo->type);
    const size_t row_bytes = (size_t)lo->k_blocks * lo->block_bytes;
    const size_t lines = f.qs_bytes / 4;

    for (int64_t p = p0; p < p1; p++) {
        uint8_t *panel = packed + lo->panels_offset + (size_t)p * lo->panel_bytes;
        const int64_t n0 = p * AMXQ_PANEL_N;
        const int rows = (int)(lo->n - n0 < AMXQ_PANEL_N ? lo->n - n0 : AMXQ_PANEL_N);
        /* Padding rows and the tail of the panel are zero: kernels may read them. */
        memset(panel, 0, lo->panel_bytes);

        for (int64_t b = 0; b < lo->k_blocks; b++) {
            uint8_t *chunk = panel + (size_t)b * lo->chunk_bytes;
            uint8_t *terms = panel + lo->terms_offset + (size_t)b * lo->terms_bytes;
            for (int j = 0; j < rows; j++) {
                const uint8_t *blk =
                    ggml_rows + (size_t)(n0 + j) * row_bytes + (size_t)b * lo->block_bytes;
                const uint8_t *qs = blk + f.qs;
                for (size_t l = 0; l < lines; l++)
                    memcpy(chunk + l * 64 + 4 * (size_t)j, qs + 4 * l, 4);

                memcpy(terms + 2 * j, blk + f.d, 2); /* d[16] */
                switch (lo->type) {
                case AMXQ_TYPE_Q4_0:
                case AMXQ_TYPE_IQ4_NL:
                    break;
                case AMXQ_TYPE_Q5_1:
                    memcpy(terms + 32 + 2 * j, blk + f.m, 2); /* m[16] */
                    q5_qh_reorder(chunk + 4 * (size_t)j, 1);
                    break;
                case AMXQ_TYPE_Q5_0: /* the qh line's bits in kernel order */
                    q5_qh_reorder(chunk + 4 * (size_t)j, 1);
                    break;
                case AMXQ_TYPE_Q4_1:
                    memcpy(terms + 32 + 2 * j, blk + f.m, 2); /* m[16] */
                    break;
                case AMXQ_TYPE_Q8_0:
                    break;
                case AMXQ_TYPE_IQ4_XS: { /* ls[8][16], int8 ls - 32 */
                    int8_t ls[8];
                    iq4xs_scales_decode(blk + f.scales, ls);
                    for (int s = 0; s < 8; s++)
                        memcpy(&terms[32 + 16 * s + j], &ls[s], 1);
                    break;
                }
                case AMXQ_TYPE_Q6_K: /* sc[16][16], int8 as in ggml */
                    for (int s = 0; s < 16; s++)
                        terms[32 + 16 * s + j] = blk[f.scales + (size_t)s];
                    break;
                case AMXQ_TYPE_Q4_K:
                case AMXQ_TYPE_Q5_K:
                default: {
                    uint8_t sc[8], m[8];
                    memcpy(terms + 32 + 2 * j, blk + f.m, 2); /* dmin[16] */
                    q4k_scales_decode(blk + f.scales, sc, m);
                    for (int s = 0; s < 8; s++) {
                        terms[64 + 16 * s + j] = sc[s]; /* sc[8][16] */
                        terms[192 + 16 * s + j] = m[s]; /* m[8][16] */
                    }
                    break;
                }
                }
            }
        }
    }
}

void amxq_unpack_panels(const amxq_layout *lo, const uint8_t *packed, uint8_t *ggml_rows,
                        int64_t p0, int64_t p1)
{
    const struct block_fields f = fields_of(lo->type);
    const size_t row_bytes = (size_t)lo->k_blocks * lo->block_bytes;
    const size_t lines = f.qs_bytes / 4;

    for (int64_t p = p0; p < p1; p++) {
        const uint8_t *panel = packed + lo->panels_offset + (size_t)p * lo->panel_bytes;
        const int64_t n0 = p * AMXQ_PANEL_N;
        const int rows = (int)(lo->n - n0 < AMXQ_PANEL_N ? lo->n - n0 : AMXQ_PANEL_N);
        for (int64_t b = 0; b < lo->k_blocks; b++) {
            const uint8_t *chunk = panel + (size_t)b * lo->chunk_bytes;
            const uint8_t *terms = panel + lo->terms_offset + (size_t)b * lo->terms_bytes;
            for (int j = 0; j < rows; j++) {
                uint8_t *blk =
                    ggml_rows + (size_t)(n0 + j) * row_bytes + (size_t)b * lo->block_bytes;
                for (size_t l = 0; l < lines; l++)
                    memcpy(blk + f.qs + 4 * l, chunk + l * 64 + 4 * (size_t)j, 4);
                if (lo->type == AMXQ_TYPE_Q5_0 || lo->type == AMXQ_TYPE_Q5_1)
                    q5_qh_reorder(blk + f.qs, 0);
                memcpy(blk + f.d, terms + 2 * j, 2);
                if (lo->type == AMXQ_TYPE_Q4_1 || lo->type == AMXQ_TYPE_Q4_K ||
                    lo->type == AMXQ_TYPE_Q5_K || lo->type == AMXQ_TYPE_Q5_1)
                    memcpy(blk + f.m, terms + 32 + 2 * j, 2);
                if (lo->type == AMXQ_TYPE_Q4_K || lo->type == AMXQ_TYPE_Q5_K) {
                    uint8_t sc[8], m[8];
                    for (int s = 0; s < 8; s++) {
                        sc[s] = terms[64 + 16 * s + j];
                        m[s] = terms[192 + 16 * s + j];
                    }
                    q4k_scales_encode(sc, m, blk + f.scales);
                }
                if (lo->type == AMXQ_TYPE_IQ4_XS) {
                    int8_t ls[8];
                    for (int s = 0; s < 8; s++)
                        memcpy(&ls[s], &terms[32 + 16 * s + j], 1);
                    iq4xs_scales_encode(ls, blk + f.scales);
                }
                if (lo->type == AMXQ_TYPE_Q6_K)
                    for (int s = 0; s < 16; s++)
                        blk[f.scales + (size_t)s] = terms[32 + 16 * s + j];
            }
        }
    }
}
