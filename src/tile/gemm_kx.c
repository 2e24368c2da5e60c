/*
 * The AMX tile kernel for Q6_K, whose 16-k sub-blocks need their own tile configuration and loop
 * (the 32-k types, Q5_K and IQ4_XS included, are in gemm.c), on the tile layer (tileops.h) and
 * registered by its own rung hook (amxq_kernels_init_kx_amx / _amx_emu, called by
 * src/dispatch/table.c after the AMX rung of gemm.c). Compiled like gemm.c: real tiles (names end
 * in _amx), the tile emulator with SIMDe (_amx_emu) and, with amx_proxy, no-op tiles (_amx_proxy).
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

#define KX_STEP 16 /* k of one step: one Q6_K sub-block (one scale) */

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

/* Tile work of a step of kb k: up to 4 tdpbsud, C tiles into cbuf[t & 1]. */
static inline void kx_tile_step(const struct kx_blk *k, struct kx_scratch *s, int64_t t, int kb)
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
    TILE_DPBSUD(0, 4, 6);
    if (two_a)
        TILE_DPBSUD(1, 5, 6);
    if (two_b) {
        TILE_DPBSUD(2, 4, 7);
        if (two_a)
            TILE_DPBSUD(3, 5, 7);
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

static inline void kx_run_block(const struct kx_blk *k, struct kx_scratch *s, float *c, int64_t ldc)
{
    memset(s->dacc, 0, sizeof s->dacc);
    q6k_prep_b(k, s, 0);
    for (int64_t t = 0; t < k->steps; t++) {
        kx_tile_step(k, s, t, KX_STEP);
        if (t + 1 < k->steps)
            q6k_prep_b(k, s, t + 1);
        if (t > 0)
            q6k_epilogue(k, s, t - 1);
    }
    q6k_epilogue(k, s, k->steps - 1);

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
                           int64_t m1, int64_t p0, int64_t p1, float *c, int64_t ldc)
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
    k.steps = lo->k / KX_STEP;
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
                    kx_tilecfg(&cfg, k.r0, k.r1, KX_STEP);
                    assert(amxq_tilecfg_check(&cfg, NULL, NULL) == NULL);
                    amxq_tile_ensure_config(&cfg);
                    cur_r0 = k.r0;
                    cur_r1 = k.r1;
                }
                kx_run_block(&k, &s, c, ldc);
            }
        }
    }
}

AMXQ_DECL_GEMM_FN(AMXQ_TSFX(amxq_gemm_q6_k))
{
    assert(lo->type == AMXQ_TYPE_Q6_K);
    kx_gemm(lo, packed, qx, m0, m1, p0, p1, c, ldc);
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
}
