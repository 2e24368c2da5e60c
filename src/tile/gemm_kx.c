/*
 * AMX tile kernels for the weight types added in issue 14 (Q6_K, Q5_K, IQ4_XS so far), on the tile
 * layer (tileops.h) and registered by their own rung hook (amxq_kernels_init_kx_amx / _amx_emu,
 * called by src/dispatch/table.c after the AMX rung of gemm.c). Compiled twice like gemm.c: real
 * tiles (names end in _amx) and the tile emulator with SIMDe (_amx_emu).
 *
 * Q6_K scales every 16 weights, so a step is one sub-block of K = 16: A tiles are r rows x 16 B
 * of qx->qs, B tiles 4 rows x 64 B (the sub-block's four packed lines, unpacked to the 6-bit
 * values 0..63), and tdpbsud (signed activations, unsigned weights) gives each (row, column)'s
 * exact sum q_w * q_x over the sub-block. Blocking as in gemm.c: 32 rows of X x 2 panels with
 * 2 x 2 tiles (C in tmm0-3, A in tmm4-5, B in tmm6-7), so each B tile serves two A tiles. After
 * every step the C tiles are stored and the AVX-512 epilogue adds sc_j * C into an int32
 * super-block sum; at the end of a super-block it subtracts 32 * sum_j sc_j * bsums[j] and applies
 * the numeric contract's Q6_K step (docs/design.md §1, include/amxq.h):
 *   v = float(I) * (d_w * d_x),  dacc += double(v)
 * with the same integers and the same two roundings as the reference and the VNNI kernel. The
 * loop is pipelined like gemm.c's: step t's tile work, then step t+1's B unpack into the other
 * buffer, then step t-1's epilogue.
 *
 * Q5_K is Q4_K with a fifth bit: steps of K = 32 (one sub-block), gemm.c's tile configuration,
 * B unpacked to the 5-bit values 0..31 (nibble of run j / 2 or'ed with bit j of qh), tdpbsud, and
 * Q4_K's epilogue: iacc += sc_j * C_j, then per super-block with J = sum_j m_j * (bsums of j)
 *   v = fma(-float(J), dmin_w * d_x, float(I) * (d_w * d_x)),  dacc += double(v).
 *
 * IQ4_XS: steps of K = 32 (one sub-block), B unpacked through ggml's kvalues_iq4nl table into
 * signed levels (vpshufb), tdpbssd, and per step iacc += (ls_i - 32) * C_i; per super-block
 * v = float(I) * (d_w * d_x) into double, as for Q6_K.
 *
 * Ragged edges as in gemm.c: the last block of rows configures A/C tiles with fewer rows, so no
 * tile load reads a row of X at or past m1; an odd panel count leaves B1, C2, C3 idle; only
 * columns n < N are stored. Scratch on the stack, about 22 KiB.
 */
#include <assert.h>
#include <string.h>

#include "internal.h"
#include "simd.h"
#include "vec512.h"
#include "vec512_kx.h"
#include "tile/tile.h"
#include "tile/tileops.h"
#if !defined(AMXQ_TILE_EMU)
#include "dispatch/cpu.h"
#endif

#define MC 128 /* rows of X per chunk, so their steps stay in L2 */

void AMXQ_TSFX(amxq_kernels_init_kx)(struct amxq_kernels *t);
AMXQ_DECL_GEMM_FN(AMXQ_TSFX(amxq_gemm_q6_k));
AMXQ_DECL_GEMM_FN(AMXQ_TSFX(amxq_gemm_q5_k));
AMXQ_DECL_GEMM_FN(AMXQ_TSFX(amxq_gemm_iq4_xs));

/* The types of this file, and the k bytes of one step of each (one scale's sub-block). */
enum { KX_Q6_K, KX_Q5_K, KX_IQ4_XS };
#define KX_STEP(T) ((T) == KX_Q6_K ? 16 : 32)

/* The configuration of a step of kb = 16 or 32 k: A r x kb B, B kb/4 x 64 B, C r x 64 B (r0, r1
 * as in tilecfg.h's amxq_tilecfg_make, which this equals for kb = 32; r1 = 0 leaves A1, C1, C3
 * unconfigured). */
static void kx_tilecfg(struct amxq_tilecfg *cfg, int r0, int r1, int kb)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->palette = AMXQ_TILE_PALETTE;
    amxq_tilecfg_set(cfg, AMXQ_TILE_C0, r0, 64);
    amxq_tilecfg_set(cfg, AMXQ_TILE_C1, r1, 64);
    amxq_tilecfg_set(cfg, AMXQ_TILE_C2, r0, 64);
    amxq_tilecfg_set(cfg, AMXQ_TILE_C3, r1, 64);
    amxq_tilecfg_set(cfg, AMXQ_TILE_A0, r0, kb);
    amxq_tilecfg_set(cfg, AMXQ_TILE_A1, r1, kb);
    amxq_tilecfg_set(cfg, AMXQ_TILE_B0, kb / 4, 64);
    amxq_tilecfg_set(cfg, AMXQ_TILE_B1, kb / 4, 64);
}

struct kx_blk {
    const amxq_layout *lo;
    const uint8_t *packed;
    const amxq_qx *qx;
    int64_t mb;    /* first row of X */
    int r0, r1;    /* rows of A0, A1 (r1 may be 0) */
    int64_t p;     /* first panel */
    int np;        /* panels: 1 or 2 */
    int64_t steps; /* steps of KX_STEP(type) k */
};

struct kx_scratch {
    _Alignas(64) int32_t cbuf[2][4][16][16]; /* stored C tiles, double-buffered by step */
    _Alignas(64) int8_t bbuf[2][2][8][64];   /* unpacked B tiles, [step & 1][panel] */
    _Alignas(64) int32_t iacc[4][16][16];    /* sum_j sc_j * C_j of the super-block */
    _Alignas(64) double dacc[4][16][16];     /* C before rounding to float */
};

static inline int kx_rows(const struct kx_blk *k, int a)
{
    return a ? k->r1 : k->r0;
}

/* Q6_K step t = sub-block j = t % 16 of super-block t / 16: its four packed lines unpacked into
 * the 4 B tile rows of each panel. */
static inline void q6k_prep_b(const struct kx_blk *k, struct kx_scratch *s, int64_t t)
{
    const int j = (int)(t % 16), h = j / 8, c = (j % 8) / 2, g = j % 2;
    for (int b = 0; b < k->np; b++) {
        const uint8_t *chunk =
            amxq_panel(k->lo, k->packed, k->p + b) + (size_t)(t / 16) * AMXQ_CHUNK_Q6_K;
        for (int i = 0; i < 4; i++) {
            const int L = 4 * g + i;
            const __m512i ql = vn_load(chunk + 64 * (16 * h + 8 * (c & 1) + L));
            const __m512i qh = vn_load(chunk + 64 * (32 + 8 * h + L));
            _mm512_store_si512(s->bbuf[t & 1][b][i], vn_q6_k_line(ql, qh, c));
        }
    }
}

/* Q5_K step t = sub-block j = t % 8 of super-block t / 8: its 8 packed lines of run j / 2 with
 * qh's 8 lines, unpacked into the 8 B tile rows of each panel. */
static inline void q5k_prep_b(const struct kx_blk *k, struct kx_scratch *s, int64_t t)
{
    const int j = (int)(t % 8);
    for (int b = 0; b < k->np; b++) {
        const uint8_t *chunk =
            amxq_panel(k->lo, k->packed, k->p + b) + (size_t)(t / 8) * AMXQ_CHUNK_Q5_K;
        for (int l = 0; l < 8; l++) {
            const __m512i qs = vn_load(chunk + 512 * (1 + j / 2) + 64 * l);
            const __m512i qh = vn_load(chunk + 64 * l);
            _mm512_store_si512(s->bbuf[t & 1][b][l], vn_q5_k_line(qs, qh, j));
        }
    }
}

/* IQ4_XS step t = sub-block i = t % 8 of super-block t / 8: its 4 packed lines, low nibbles to
 * B rows 0..3 (k = 0..15) and high nibbles to rows 4..7, as signed levels. */
static inline void iq4xs_prep_b(const struct kx_blk *k, struct kx_scratch *s, int64_t t)
{
    const int i = (int)(t % 8);
    const __m512i tbl = vn_iq4_table(0);
    for (int b = 0; b < k->np; b++) {
        const uint8_t *chunk =
            amxq_panel(k->lo, k->packed, k->p + b) + (size_t)(t / 8) * AMXQ_CHUNK_IQ4_XS;
        for (int l = 0; l < 4; l++) {
            const __m512i line = vn_load(chunk + 64 * (4 * i + l));
            _mm512_store_si512(s->bbuf[t & 1][b][l], vn_iq4_line(line, tbl, 0));
            _mm512_store_si512(s->bbuf[t & 1][b][4 + l], vn_iq4_line(line, tbl, 1));
        }
    }
}

/* Tile work of a step of kb k: up to 4 tdpbsud (tdpbssd when ss), C tiles into cbuf[t & 1]. */
static inline void kx_tile_step(const struct kx_blk *k, struct kx_scratch *s, int64_t t, int kb,
                                int ss)
{
    const int64_t ld = k->qx->ld_qs;
    const int8_t *a0 = k->qx->qs + k->mb * ld + t * kb;
    const int two_a = k->r1 > 0, two_b = k->np > 1;
    int32_t(*cb)[16][16] = s->cbuf[t & 1];

    TILE_ZERO(0);
    if (two_a)
        TILE_ZERO(1);
    if (two_b) {
        TILE_ZERO(2);
        if (two_a)
            TILE_ZERO(3);
    }
    TILE_LOAD(4, a0, ld);
    if (two_a)
        TILE_LOAD(5, a0 + 16 * ld, ld);
    TILE_LOAD(6, s->bbuf[t & 1][0], 64);
    if (two_b)
        TILE_LOAD(7, s->bbuf[t & 1][1], 64);
    if (ss) {
        TILE_DPBSSD(0, 4, 6);
        if (two_a)
            TILE_DPBSSD(1, 5, 6);
        if (two_b) {
            TILE_DPBSSD(2, 4, 7);
            if (two_a)
                TILE_DPBSSD(3, 5, 7);
        }
    } else {
        TILE_DPBSUD(0, 4, 6);
        if (two_a)
            TILE_DPBSUD(1, 5, 6);
        if (two_b) {
            TILE_DPBSUD(2, 4, 7);
            if (two_a)
                TILE_DPBSUD(3, 5, 7);
        }
    }
    TILE_STORE(0, cb[0], 64);
    if (two_a)
        TILE_STORE(1, cb[1], 64);
    if (two_b) {
        TILE_STORE(2, cb[2], 64);
        if (two_a)
            TILE_STORE(3, cb[3], 64);
    }
}

/* Q6_K, end of super-block sb: I = iacc - 32 * sum_j sc_j * bsums[j] (exact), then the contract's
 * v = float(I) * (d * d_x) into the double sums. */
static inline void q6k_finish(const struct kx_blk *k, struct kx_scratch *s, int64_t sb)
{
    const amxq_layout *lo = k->lo;
    const amxq_qx *qx = k->qx;
    for (int b = 0; b < k->np; b++) {
        const uint8_t *terms =
            amxq_panel(lo, k->packed, k->p + b) + lo->terms_offset + (size_t)sb * lo->terms_bytes;
        const __m512 dw = vn_load_ph(terms);
        __m512i pairs[8];
        for (int i = 0; i < 8; i++)
            pairs[i] = vn_pair_i8_i16(terms + 32 + 16 * (2 * i), terms + 32 + 16 * (2 * i + 1));
        for (int a = 0; a < 2; a++) {
            const int q = a + 2 * b;
            for (int i = 0; i < kx_rows(k, a); i++) {
                const int64_t m = k->mb + 16 * a + i;
                const int16_t *bs = qx->sums + m * qx->ld_sums + sb * 16;
                __m512i corr = _mm512_setzero_si512();
                for (int u = 0; u < 8; u++)
                    corr = _mm512_add_epi32(corr, vn_madd_i16(pairs[u], vn_bcast32(bs + 2 * u)));
                const __m512i itot =
                    _mm512_sub_epi32(_mm512_load_si512(s->iacc[q][i]), _mm512_slli_epi32(corr, 5));
                const __m512 dd = _mm512_mul_ps(dw, _mm512_set1_ps(qx->d[m * qx->ld_d + sb]));
                vn_add_to_f64(s->dacc[q][i], _mm512_mul_ps(vn_cvt_i32_ps(itot), dd));
            }
        }
    }
}

/* Vector work of step t: iacc += sc_j * C (restarting at the super-block's first sub-block). */
static inline void q6k_epilogue(const struct kx_blk *k, struct kx_scratch *s, int64_t t)
{
    const amxq_layout *lo = k->lo;
    const int64_t sb = t / 16;
    const int j = (int)(t % 16);
    int32_t(*cb)[16][16] = s->cbuf[t & 1];
    for (int b = 0; b < k->np; b++) {
        const uint8_t *terms =
            amxq_panel(lo, k->packed, k->p + b) + lo->terms_offset + (size_t)sb * lo->terms_bytes;
        const __m512i sc = vn_load_i8_i32(terms + 32 + 16 * j);
        for (int a = 0; a < 2; a++) {
            const int q = a + 2 * b;
            for (int i = 0; i < kx_rows(k, a); i++) {
                __m512i v = _mm512_mullo_epi32(_mm512_load_si512(cb[q][i]), sc);
                if (j)
                    v = _mm512_add_epi32(v, _mm512_load_si512(s->iacc[q][i]));
                _mm512_store_si512(s->iacc[q][i], v);
            }
        }
    }
    if (j == 15)
        q6k_finish(k, s, sb);
}

/* Q5_K, end of super-block sb: gemm.c's Q4_K term, with I = iacc and J = sum_j m_j * (bsums of
 * sub-block j), both exact: dacc += double(fma(-float(J), dmin*d_x, float(I) * (d*d_x))). */
static inline void q5k_finish(const struct kx_blk *k, struct kx_scratch *s, int64_t sb)
{
    const amxq_layout *lo = k->lo;
    const amxq_qx *qx = k->qx;
    for (int b = 0; b < k->np; b++) {
        const uint8_t *terms =
            amxq_panel(lo, k->packed, k->p + b) + lo->terms_offset + (size_t)sb * lo->terms_bytes;
        const __m512 dw = vn_load_ph(terms);
        const __m512 dminw = vn_load_ph(terms + 32);
        __m512i mins[8]; /* int32 lanes holding m_j twice as int16: pairs with two bsums */
        for (int j = 0; j < 8; j++) {
            const __m512i mj = vn_load_u8_i32(terms + 192 + 16 * j);
            mins[j] = _mm512_or_si512(mj, _mm512_slli_epi32(mj, 16));
        }
        for (int a = 0; a < 2; a++) {
            const int q = a + 2 * b;
            for (int i = 0; i < kx_rows(k, a); i++) {
                const int64_t m = k->mb + 16 * a + i;
                const int16_t *bs = qx->sums + m * qx->ld_sums + sb * 16;
                __m512i msum = _mm512_setzero_si512();
                for (int j = 0; j < 8; j++)
                    msum = _mm512_add_epi32(msum, vn_madd_i16(mins[j], vn_bcast32(bs + 2 * j)));
                const __m512 dx = _mm512_set1_ps(qx->d[m * qx->ld_d + sb]);
                const __m512i isc = _mm512_load_si512(s->iacc[q][i]);
                const __m512 scaled = _mm512_mul_ps(vn_cvt_i32_ps(isc), _mm512_mul_ps(dw, dx));
                const __m512 v =
                    vn_fnmadd_ps(vn_cvt_i32_ps(msum), _mm512_mul_ps(dminw, dx), scaled);
                vn_add_to_f64(s->dacc[q][i], v);
            }
        }
    }
}

/* Q5_K vector work of step t: iacc += sc_j * C (unsigned 6-bit scales). */
static inline void q5k_epilogue(const struct kx_blk *k, struct kx_scratch *s, int64_t t)
{
    const amxq_layout *lo = k->lo;
    const int64_t sb = t / 8;
    const int j = (int)(t % 8);
    int32_t(*cb)[16][16] = s->cbuf[t & 1];
    for (int b = 0; b < k->np; b++) {
        const uint8_t *terms =
            amxq_panel(lo, k->packed, k->p + b) + lo->terms_offset + (size_t)sb * lo->terms_bytes;
        const __m512i sc = vn_load_u8_i32(terms + 64 + 16 * j);
        for (int a = 0; a < 2; a++) {
            const int q = a + 2 * b;
            for (int i = 0; i < kx_rows(k, a); i++) {
                __m512i v = _mm512_mullo_epi32(_mm512_load_si512(cb[q][i]), sc);
                if (j)
                    v = _mm512_add_epi32(v, _mm512_load_si512(s->iacc[q][i]));
                _mm512_store_si512(s->iacc[q][i], v);
            }
        }
    }
    if (j == 7)
        q5k_finish(k, s, sb);
}

/* IQ4_XS, end of super-block sb: I = iacc (exact), v = float(I) * (d * d_x) into double. */
static inline void iq4xs_finish(const struct kx_blk *k, struct kx_scratch *s, int64_t sb)
{
    const amxq_layout *lo = k->lo;
    const amxq_qx *qx = k->qx;
    for (int b = 0; b < k->np; b++) {
        const uint8_t *terms =
            amxq_panel(lo, k->packed, k->p + b) + lo->terms_offset + (size_t)sb * lo->terms_bytes;
        const __m512 dw = vn_load_ph(terms);
        for (int a = 0; a < 2; a++) {
            const int q = a + 2 * b;
            for (int i = 0; i < kx_rows(k, a); i++) {
                const int64_t m = k->mb + 16 * a + i;
                const __m512 dd = _mm512_mul_ps(dw, _mm512_set1_ps(qx->d[m * qx->ld_d + sb]));
                const __m512i itot = _mm512_load_si512(s->iacc[q][i]);
                vn_add_to_f64(s->dacc[q][i], _mm512_mul_ps(vn_cvt_i32_ps(itot), dd));
            }
        }
    }
}

/* IQ4_XS vector work of step t: iacc += (ls_i - 32) * C. */
static inline void iq4xs_epilogue(const struct kx_blk *k, struct kx_scratch *s, int64_t t)
{
    const amxq_layout *lo = k->lo;
    const int64_t sb = t / 8;
    const int j = (int)(t % 8);
    int32_t(*cb)[16][16] = s->cbuf[t & 1];
    for (int b = 0; b < k->np; b++) {
        const uint8_t *terms =
            amxq_panel(lo, k->packed, k->p + b) + lo->terms_offset + (size_t)sb * lo->terms_bytes;
        const __m512i sc = vn_load_i8_i32(terms + 32 + 16 * j);
        for (int a = 0; a < 2; a++) {
            const int q = a + 2 * b;
            for (int i = 0; i < kx_rows(k, a); i++) {
                __m512i v = _mm512_mullo_epi32(_mm512_load_si512(cb[q][i]), sc);
                if (j)
                    v = _mm512_add_epi32(v, _mm512_load_si512(s->iacc[q][i]));
                _mm512_store_si512(s->iacc[q][i], v);
            }
        }
    }
    if (j == 7)
        iq4xs_finish(k, s, sb);
}

static inline void kx_prep_b(const struct kx_blk *k, struct kx_scratch *s, int64_t t, int type)
{
    if (type == KX_Q6_K)
        q6k_prep_b(k, s, t);
    else if (type == KX_Q5_K)
        q5k_prep_b(k, s, t);
    else
        iq4xs_prep_b(k, s, t);
}

static inline void kx_epilogue(const struct kx_blk *k, struct kx_scratch *s, int64_t t, int type)
{
    if (type == KX_Q6_K)
        q6k_epilogue(k, s, t);
    else if (type == KX_Q5_K)
        q5k_epilogue(k, s, t);
    else
        iq4xs_epilogue(k, s, t);
}

static inline void kx_run_block(const struct kx_blk *k, struct kx_scratch *s, float *c, int64_t ldc,
                                int type)
{
    memset(s->dacc, 0, sizeof s->dacc);
    kx_prep_b(k, s, 0, type);
    for (int64_t t = 0; t < k->steps; t++) {
        kx_tile_step(k, s, t, KX_STEP(type), type == KX_IQ4_XS);
        if (t + 1 < k->steps)
            kx_prep_b(k, s, t + 1, type);
        if (t > 0)
            kx_epilogue(k, s, t - 1, type);
    }
    kx_epilogue(k, s, k->steps - 1, type);

    for (int b = 0; b < k->np; b++) {
        const int64_t n0 = (k->p + b) * AMXQ_PANEL_N;
        const int64_t nv = k->lo->n - n0 < AMXQ_PANEL_N ? k->lo->n - n0 : AMXQ_PANEL_N;
        for (int a = 0; a < 2; a++) {
            const int q = a + 2 * b;
            for (int i = 0; i < kx_rows(k, a); i++) {
                float *dst = c + (k->mb + 16 * a + i) * ldc + n0;
                for (int64_t j = 0; j < nv; j++)
                    dst[j] = (float)s->dacc[q][i][j];
            }
        }
    }
}

static inline void kx_gemm(const amxq_layout *lo, const void *packed, const amxq_qx *qx, int64_t m0,
                           int64_t m1, int64_t p0, int64_t p1, float *c, int64_t ldc, int type)
{
    assert(qx->wtype == lo->type && qx->k == lo->k);
    assert(m0 >= 0 && m1 <= qx->m && p0 >= 0 && p1 <= lo->n_panels);
    if (m0 >= m1 || p0 >= p1)
        return;
    struct kx_scratch s;
    struct kx_blk k;
    k.lo = lo;
    k.packed = (const uint8_t *)packed;
    k.qx = qx;
    k.steps = lo->k / KX_STEP(type);
    int cur_r0 = -1, cur_r1 = -1;
    for (int64_t mc = m0; mc < m1; mc += MC) {
        const int64_t mce = m1 - mc < MC ? m1 : mc + MC;
        for (int64_t p = p0; p < p1; p += 2) {
            k.p = p;
            k.np = p1 - p >= 2 ? 2 : 1;
            for (int64_t mb = mc; mb < mce; mb += 32) {
                const int rows = (int)(mce - mb < 32 ? mce - mb : 32);
                k.mb = mb;
                k.r0 = rows < 16 ? rows : 16;
                k.r1 = rows - k.r0;
                if (k.r0 != cur_r0 || k.r1 != cur_r1) {
                    struct amxq_tilecfg cfg;
                    kx_tilecfg(&cfg, k.r0, k.r1, KX_STEP(type));
                    assert(amxq_tilecfg_check(&cfg, NULL, NULL) == NULL);
                    amxq_tile_ensure_config(&cfg);
                    cur_r0 = k.r0;
                    cur_r1 = k.r1;
                }
                kx_run_block(&k, &s, c, ldc, type);
            }
        }
    }
}

AMXQ_DECL_GEMM_FN(AMXQ_TSFX(amxq_gemm_q6_k))
{
    assert(lo->type == AMXQ_TYPE_Q6_K);
    kx_gemm(lo, packed, qx, m0, m1, p0, p1, c, ldc, KX_Q6_K);
}

AMXQ_DECL_GEMM_FN(AMXQ_TSFX(amxq_gemm_q5_k))
{
    assert(lo->type == AMXQ_TYPE_Q5_K);
    kx_gemm(lo, packed, qx, m0, m1, p0, p1, c, ldc, KX_Q5_K);
}

AMXQ_DECL_GEMM_FN(AMXQ_TSFX(amxq_gemm_iq4_xs))
{
    assert(lo->type == AMXQ_TYPE_IQ4_XS);
    kx_gemm(lo, packed, qx, m0, m1, p0, p1, c, ldc, KX_IQ4_XS);
}

/* The rung hook: after gemm.c's AMX rung, install the kernels of this file. */
void AMXQ_TSFX(amxq_kernels_init_kx)(struct amxq_kernels *t)
{
#if !defined(AMXQ_TILE_EMU)
    /* palette 1's 8 tiles of 16 rows x 64 bytes, as gemm.c requires; else keep the VNNI kernels */
    const amxq_cpu_info *ci = amxq_cpu_detect();
    if (ci->amx_max_tiles < AMXQ_TILE_COUNT || ci->amx_max_rows < AMXQ_TILE_MAX_ROWS ||
        ci->amx_max_bytes_per_row < AMXQ_TILE_MAX_COLSB)
        return;
#endif
    t->t[AMXQ_TI_Q6_K].gemm = AMXQ_TSFX(amxq_gemm_q6_k);
    t->t[AMXQ_TI_Q6_K].gemm_name = AMXQ_TSFX_STR(amxq_gemm_q6_k);
    t->t[AMXQ_TI_Q5_K].gemm = AMXQ_TSFX(amxq_gemm_q5_k);
    t->t[AMXQ_TI_Q5_K].gemm_name = AMXQ_TSFX_STR(amxq_gemm_q5_k);
    t->t[AMXQ_TI_IQ4_XS].gemm = AMXQ_TSFX(amxq_gemm_iq4_xs);
    t->t[AMXQ_TI_IQ4_XS].gemm_name = AMXQ_TSFX_STR(amxq_gemm_iq4_xs);
}
