/*
 * AMX tile kernels for Q4_0, Q4_1, Q8_0 and Q4_K on the packed layout (src/internal.h). Compiled
 * twice: with the real tile instructions (names end in _amx) and against the tile emulator and
 * SIMDe (AMXQ_TILE_EMU, AMXQ_SIMD_EMU; names end in _amx_emu). See tileops.h. With the meson
 * option amx_proxy, a third time with no-op tile operations (AMXQ_TILE_PROXY, _amx_proxy): only
 * the vector side runs, for the benchmark (src/tile/proxy.h).
 *
 * Shape (docs/design.md §6). A block of 32 rows of X by 2 panels (32 columns of C) is computed with
 * 2x2 tile blocking, one 32-wide k step (one ggml block, or one Q4_K sub-block) at a time:
 *
 *                 B0 = tmm6 (panel p)    B1 = tmm7 (panel p+1)     B: 8 rows x 64 B, VNNI
 *   A0 = tmm4     C0 = tmm0              C2 = tmm2                 A: rows x 32 B of qx->qs
 *   A1 = tmm5     C1 = tmm1              C3 = tmm3                 C: rows x 16 int32
 *
 * Each unpacked B tile serves two A tiles, each A tile two B tiles. Because every 32-k step has
 * its own scales, the int32 C tiles leave the tile unit after every step: they are stored to a
 * stack buffer and an AVX-512 epilogue applies the numeric contract (docs/design.md §1,
 * include/amxq.h) with the same roundings in the same order as the reference and the VNNI
 * kernels: acc = fma(float(isum), d_w[n] * d_x[m], acc) (then acc = fma(m_w[n], s_x[m], acc) for
 * Q4_1) on a float accumulator kept on the stack, which every 8 steps (256 k, counted from step 0)
 * is added into a double sum and restarted at +0; Q4_K adds each super-block's float term into
 * the double sum directly. Keeping the accumulator in memory between steps changes no bit: only
 * the operations and their order are fixed by the contract, and they are the same.
 * Software pipelining, per iteration t: step t's tile work (zero, load, 4 dot products, store C
 * into buffer t&1), then step t+1's B unpack (into the other B buffer), then step t-1's epilogue
 * (reading C buffer (t-1)&1). The tile unit works on step t while the vector units unpack and
 * finish around it, and no tile load reads lines the vector units have just written.
 *
 * Signedness: Q8_0 and Q4_0 (nibble - 8) use tdpbssd; Q4_1 and Q4_K keep the unsigned nibble
 * and use tdpbsud, with their offsets handled through the scales: Q4_1's m_w * s_x term and
 * Q4_K's dmin * d_x * sum_j m_j * bsums term. Q4_K accumulates sc_j * isum_j exactly in int32
 * across the 8 sub-blocks of a super-block (as ggml does) and converts once per super-block.
 *
 * Ragged edges: the last block of rows configures A/C tiles with fewer rows (a second tile
 * configuration, loaded only when it differs from the live one), so no tile load reads a row of
 * X at or past m1. An odd panel count leaves B1, C2 and C3 idle. The padded rows of the last
 * panel are computed but only columns n < N are stored.
 *
 * Scratch is on the stack only (about 26 KiB). Loop order: 128-row chunks of X (so their 32-k
 * steps stay in L2), then panel pairs, then 32-row blocks.
 */
#include <assert.h>
#include <string.h>

#include "internal.h"
#include "ref/fp16.h"
#include "simd.h"
#include "vec512.h"
#include "tile/tile.h"
#if defined(AMXQ_TILE_PROXY)
#include "tile/proxy.h"
#endif
#include "tile/tileops.h"
#include "dispatch/kernels.h"
#if !defined(AMXQ_TILE_EMU)
#include "dispatch/cpu.h"
#endif

#define MC    128 /* rows of X per chunk */
#define GROUP 8   /* 32-k steps summed in float before adding into double (the contract's group) */

/* ---- B operands ----------------------------------------------------------------------------- */

/* Q4_0 / Q4_1 chunk (4 VNNI lines of packed nibbles) -> 8 tile rows of int8: low nibbles are
 * k = 0..15 (rows 0..3), high nibbles k = 16..31 (rows 4..7). minus8: Q4_0's signed values. */
static inline void unpack_q4(const uint8_t *src, int8_t *dst, int minus8)
{
    const __m512i lo4 = _mm512_set1_epi8(0x0f);
    const __m512i eight = _mm512_set1_epi8(8);
    for (int l = 0; l < 4; l++) {
        const __m512i v = _mm512_loadu_si512(src + 64 * l);
        __m512i lo = _mm512_and_si512(v, lo4);
        __m512i hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), lo4);
        if (minus8) {
            lo = _mm512_sub_epi8(lo, eight);
            hi = _mm512_sub_epi8(hi, eight);
        }
        _mm512_store_si512(dst + 64 * l, lo);
        _mm512_store_si512(dst + 64 * (4 + l), hi);
    }
}

/* Q4_K run (8 VNNI lines): low nibbles are sub-block 2r, high nibbles sub-block 2r+1. */
static inline void unpack_q4k(const uint8_t *src, int8_t *dst, int high)
{
    const __m512i lo4 = _mm512_set1_epi8(0x0f);
    for (int l = 0; l < 8; l++) {
        __m512i v = _mm512_loadu_si512(src + 64 * l);
        if (high)
            v = _mm512_srli_epi16(v, 4);
        _mm512_store_si512(dst + 64 * l, _mm512_and_si512(v, lo4));
    }
}

/* ---- One block of rows x two panels --------------------------------------------------------- */

struct blk {
    const amxq_layout *lo;
    const uint8_t *packed;
    const amxq_qx *qx;
    int64_t mb;    /* first row of X */
    int r0, r1;    /* rows of A0, A1 (r1 may be 0) */
    int64_t p;     /* first panel */
    int np;        /* panels: 1 or 2 */
    int64_t steps; /* 32-k steps */
};

struct scratch {
    _Alignas(64) int32_t cbuf[2][4][16][16]; /* stored C tiles, double-buffered by step */
    _Alignas(64) int8_t bbuf[2][2][8][64];   /* unpacked B tiles, double-buffered by step */
    _Alignas(64) float acc[4][16][16];       /* float sums of a group of steps, C tile q = a + 2b
                                                (unused by Q4_K) */
    _Alignas(64) double dacc[4][16][16];     /* the groups' sums: C before rounding to float */
    _Alignas(64) int32_t iacc[4][16][16];    /* Q4_K: sum_j sc_j * isum_j of a super-block */
    const uint8_t *bptr[2][2];               /* B operand of [step & 1][panel] */
};

static inline int rows_of(const struct blk *k, int a)
{
    return a ? k->r1 : k->r0;
}

/* B operands of step t for the block's panels: Q8_0's packed chunk is a B tile as it stands; the
 * 4-bit types are unpacked into bbuf[t & 1]. Run one step ahead of the tile loads that read them,
 * so the vector stores have drained before TILELOADD reads the lines. */
static inline __attribute__((always_inline)) void prep_b(const struct blk *k, struct scratch *s,
                                                         int64_t t, int ti)
{
    const amxq_layout *lo = k->lo;
    for (int b = 0; b < k->np; b++) {
        const uint8_t *panel = amxq_panel(lo, k->packed, k->p + b);
        int8_t *dst = &s->bbuf[t & 1][b][0][0];
        switch (ti) {
        case AMXQ_TI_Q8_0:
            s->bptr[t & 1][b] = panel + (size_t)t * AMXQ_CHUNK_Q8_0;
            continue;
        case AMXQ_TI_Q4_0:
            unpack_q4(panel + (size_t)t * AMXQ_CHUNK_Q4_0, dst, 1);
            break;
        case AMXQ_TI_Q4_1:
            unpack_q4(panel + (size_t)t * AMXQ_CHUNK_Q4_1, dst, 0);
            break;
        default: /* Q4_K: step t is sub-block t % 8 of super-block t / 8 */
            unpack_q4k(panel + (size_t)(t / 8) * AMXQ_CHUNK_Q4_K + (size_t)((t % 8) / 2) * 512, dst,
                       (int)(t & 1));
            break;
        }
        s->bptr[t & 1][b] = (const uint8_t *)dst;
    }
}

/* Tile work of step t: 4 (or fewer) dot products on the B operands prep_b() made, C tiles into
 * cbuf[t & 1]. */
static inline __attribute__((always_inline)) void tile_step(const struct blk *k, struct scratch *s,
                                                            int64_t t, int ti)
{
    const uint8_t *const *bptr = s->bptr[t & 1];
    const int64_t ld = k->qx->ld_qs;
    const int8_t *a0 = k->qx->qs + k->mb * ld + t * 32;
    const int two_a = k->r1 > 0, two_b = k->np > 1;
    const int ss = ti == AMXQ_TI_Q8_0 || ti == AMXQ_TI_Q4_0;
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
    TILE_LOAD(6, bptr[0], 64);
    if (two_b)
        TILE_LOAD(7, bptr[1], 64);
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

/* Q4_K, end of super-block sb: with I = iacc and J = sum_j m_j*(bsums of sub-block j), both exact,
 * dacc += double(fma(-float(J), dmin*d_x, float(I) * (d*d_x))): the numeric contract's super-block
 * term (docs/design.md §1), straight into the double sums as in the VNNI kernel. */
static inline void q4k_finish(const struct blk *k, struct scratch *s, int64_t sb)
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
            for (int i = 0; i < rows_of(k, a); i++) {
                const int64_t m = k->mb + 16 * a + i;
                const int16_t *bs = qx->sums + m * qx->ld_sums + sb * 16;
                __m512i msum = _mm512_setzero_si512();
                for (int j = 0; j < 8; j++) {
                    int32_t pair; /* bsums 2j (low half) and 2j+1 (high half) */
                    memcpy(&pair, bs + 2 * j, 4);
                    msum = _mm512_add_epi32(msum, vn_madd_i16(mins[j], _mm512_set1_epi32(pair)));
                }
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

/* Vector work of step t: the C tiles in cbuf[t & 1] into the accumulators. */
static inline __attribute__((always_inline)) void epilogue(const struct blk *k, struct scratch *s,
                                                           int64_t t, int ti)
{
    const amxq_layout *lo = k->lo;
    const amxq_qx *qx = k->qx;
    int32_t(*cb)[16][16] = s->cbuf[t & 1];

    if (ti == AMXQ_TI_Q4_K) {
        const int64_t sb = t / 8;
        const int j = (int)(t % 8);
        for (int b = 0; b < k->np; b++) {
            const uint8_t *terms = amxq_panel(lo, k->packed, k->p + b) + lo->terms_offset +
                                   (size_t)sb * lo->terms_bytes;
            const __m512i sc = vn_load_u8_i32(terms + 64 + 16 * j);
            for (int a = 0; a < 2; a++) {
                const int q = a + 2 * b;
                for (int i = 0; i < rows_of(k, a); i++) {
                    __m512i v = _mm512_mullo_epi32(_mm512_load_si512(cb[q][i]), sc);
                    if (j)
                        v = _mm512_add_epi32(v, _mm512_load_si512(s->iacc[q][i]));
                    _mm512_store_si512(s->iacc[q][i], v);
                }
            }
        }
        if (j == 7)
            q4k_finish(k, s, sb);
        return;
    }

    for (int b = 0; b < k->np; b++) {
        const uint8_t *terms =
            amxq_panel(lo, k->packed, k->p + b) + lo->terms_offset + (size_t)t * lo->terms_bytes;
        const __m512 dw = vn_load_ph(terms);
        const __m512 mw = ti == AMXQ_TI_Q4_1 ? vn_load_ph(terms + 32) : _mm512_setzero_ps();
        for (int a = 0; a < 2; a++) {
            const int q = a + 2 * b;
            for (int i = 0; i < rows_of(k, a); i++) {
                const int64_t m = k->mb + 16 * a + i;
                const __m512 f = vn_cvt_i32_ps(_mm512_load_si512(cb[q][i]));
                const __m512 scale = _mm512_mul_ps(dw, _mm512_set1_ps(qx->d[m * qx->ld_d + t]));
                __m512 acc = vn_fmadd_ps(f, scale, _mm512_load_ps(s->acc[q][i]));
                if (ti == AMXQ_TI_Q4_1)
                    acc = vn_fmadd_ps(mw, _mm512_set1_ps(qx->s[m * qx->ld_d + t]), acc);
                _mm512_store_ps(s->acc[q][i], acc);
            }
        }
    }
}

/* Add the float sums of the last group of steps into the double sums and restart them. */
static inline void flush_group(const struct blk *k, struct scratch *s)
{
    for (int b = 0; b < k->np; b++)
        for (int a = 0; a < 2; a++) {
            const int q = a + 2 * b;
            for (int i = 0; i < rows_of(k, a); i++) {
                vn_add_to_f64(s->dacc[q][i], _mm512_load_ps(s->acc[q][i]));
                _mm512_store_ps(s->acc[q][i], _mm512_setzero_ps());
            }
        }
}

static inline __attribute__((always_inline)) void run_block(const struct blk *k, struct scratch *s,
                                                            float *c, int64_t ldc, int ti)
{
    memset(s->acc, 0, sizeof s->acc);
    memset(s->dacc, 0, sizeof s->dacc);
    /* Pipelined: step t's tile work, then step t+1's B operands, then step t-1's epilogue. */
    prep_b(k, s, 0, ti);
    for (int64_t t = 0; t < k->steps; t++) {
        tile_step(k, s, t, ti);
        if (t + 1 < k->steps)
            prep_b(k, s, t + 1, ti);
        if (t > 0) {
            epilogue(k, s, t - 1, ti);
            if (t % GROUP == 0 && ti != AMXQ_TI_Q4_K)
                flush_group(k, s);
        }
    }
    epilogue(k, s, k->steps - 1, ti);
    if (ti != AMXQ_TI_Q4_K) /* Q4_K adds each super-block into dacc itself */
        flush_group(k, s);

    const int64_t n_total = k->lo->n;
    for (int b = 0; b < k->np; b++) {
        const int64_t n0 = (k->p + b) * AMXQ_PANEL_N;
        const int64_t nv = n_total - n0 < AMXQ_PANEL_N ? n_total - n0 : AMXQ_PANEL_N;
        for (int a = 0; a < 2; a++) {
            const int q = a + 2 * b;
            for (int i = 0; i < rows_of(k, a); i++) {
                float *dst = c + (k->mb + 16 * a + i) * ldc + n0;
                for (int64_t j = 0; j < nv; j++)
                    dst[j] = (float)s->dacc[q][i][j];
            }
        }
    }
}

static inline __attribute__((always_inline)) void
gemm_run(const amxq_layout *lo, const void *packed, const amxq_qx *qx, int64_t m0, int64_t m1,
         int64_t p0, int64_t p1, float *c, int64_t ldc, int ti)
{
    assert(lo->ti == ti && qx->wtype == lo->type && qx->k == lo->k);
    assert(m0 >= 0 && m1 <= qx->m && p0 >= 0 && p1 <= lo->n_panels);
    if (m0 >= m1 || p0 >= p1)
        return;
    struct scratch s;
    struct blk k;
    k.lo = lo;
    k.packed = (const uint8_t *)packed;
    k.qx = qx;
    k.steps = lo->k / 32;
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
                    amxq_tilecfg_make(&cfg, k.r0, k.r1);
                    assert(amxq_tilecfg_check(&cfg, NULL, NULL) == NULL);
                    amxq_tile_ensure_config(&cfg);
                    cur_r0 = k.r0;
                    cur_r1 = k.r1;
                }
                run_block(&k, &s, c, ldc, ti);
            }
        }
    }
}

AMXQ_DECL_GEMM_FN(AMXQ_TSFX(amxq_gemm_q4_0))
{
    gemm_run(lo, packed, qx, m0, m1, p0, p1, c, ldc, AMXQ_TI_Q4_0);
}

AMXQ_DECL_GEMM_FN(AMXQ_TSFX(amxq_gemm_q4_1))
{
    gemm_run(lo, packed, qx, m0, m1, p0, p1, c, ldc, AMXQ_TI_Q4_1);
}

AMXQ_DECL_GEMM_FN(AMXQ_TSFX(amxq_gemm_q8_0))
{
    gemm_run(lo, packed, qx, m0, m1, p0, p1, c, ldc, AMXQ_TI_Q8_0);
}

AMXQ_DECL_GEMM_FN(AMXQ_TSFX(amxq_gemm_q4_k))
{
    gemm_run(lo, packed, qx, m0, m1, p0, p1, c, ldc, AMXQ_TI_Q4_K);
}

/* ---- Tile state and the table rung ---------------------------------------------------------- */

#if !defined(AMXQ_TILE_PROXY) /* the proxy's gemms are reached only through src/tile/proxy.h */

void AMXQ_TSFX(amxq_tile_configure)(void)
{
    struct amxq_tilecfg cfg;
    amxq_tilecfg_make(&cfg, 16, 16);
    amxq_tile_ensure_config(&cfg);
}

void AMXQ_TSFX(amxq_tile_release)(void)
{
    TILE_RELEASE();
}

void AMXQ_TSFX(amxq_kernels_init)(struct amxq_kernels *t)
{
#if !defined(AMXQ_TILE_EMU)
    /* The kernels need palette 1's 8 tiles of 16 rows x 64 bytes; keep the lower rung's kernels
     * on a CPU that reports less. */
    const amxq_cpu_info *ci = amxq_cpu_detect();
    if (ci->amx_max_tiles < AMXQ_TILE_COUNT || ci->amx_max_rows < AMXQ_TILE_MAX_ROWS ||
        ci->amx_max_bytes_per_row < AMXQ_TILE_MAX_COLSB)
        return;
#endif
    t->t[AMXQ_TI_Q4_0].gemm = AMXQ_TSFX(amxq_gemm_q4_0);
    t->t[AMXQ_TI_Q4_0].gemm_name = AMXQ_TSFX_STR(amxq_gemm_q4_0);
    t->t[AMXQ_TI_Q4_1].gemm = AMXQ_TSFX(amxq_gemm_q4_1);
    t->t[AMXQ_TI_Q4_1].gemm_name = AMXQ_TSFX_STR(amxq_gemm_q4_1);
    t->t[AMXQ_TI_Q8_0].gemm = AMXQ_TSFX(amxq_gemm_q8_0);
    t->t[AMXQ_TI_Q8_0].gemm_name = AMXQ_TSFX_STR(amxq_gemm_q8_0);
    t->t[AMXQ_TI_Q4_K].gemm = AMXQ_TSFX(amxq_gemm_q4_k);
    t->t[AMXQ_TI_Q4_K].gemm_name = AMXQ_TSFX_STR(amxq_gemm_q4_k);
    t->tile_release = AMXQ_TSFX(amxq_tile_release);
}
#endif /* !AMXQ_TILE_PROXY */
