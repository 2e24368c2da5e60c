/*
 * AMX tile kernels for every type (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, IQ4_NL, Q4_K, Q5_K, Q6_K, IQ4_XS)
 * on the packed layout (src/internal.h). Compiled twice: with the real tile instructions (names end
 * in _amx) and against the tile emulator and SIMDe (AMXQ_TILE_EMU, AMXQ_SIMD_EMU; names end in
 * _amx_emu). See tileops.h. With the meson option amx_proxy, a third time with no-op tile
 * operations (AMXQ_TILE_PROXY, _amx_proxy): only the vector side runs, for the benchmark
 * (src/tile/proxy.h).
 *
 * Shape (docs/design.md §6). A block of 32 rows of X by 2 panels (32 columns of C) is computed with
 * 2x2 tile blocking, one k step (one ggml block or scale sub-block: 32 k, Q6_K's 16) at a time:
 *
 *                 B0 = tmm6 (panel p)    B1 = tmm7 (panel p+1)     B: k/4 rows x 64 B, VNNI
 *   A0 = tmm4     C0 = tmm0              C2 = tmm2                 A: rows x k B of qx->qs
 *   A1 = tmm5     C1 = tmm1              C3 = tmm3                 C: rows x 16 int32
 *
 * Each B tile serves two A tiles, each A tile two B tiles. Because every step has its own
 * scales, the int32 C tiles leave the tile unit after every step (stored to a stack buffer) and an
 * AVX-512 epilogue applies the numeric contract (docs/design.md §1, include/amxq.h) with the same
 * roundings in the same order as the reference and the VNNI kernels:
 * acc = fma(float(isum), d_w[n] * d_x[m], acc) (then acc = fma(m_w[n], s_x[m], acc) for Q4_1),
 * every 8 steps (256 k, counted from step 0) added into a double sum and restarted at +0; the
 * super-block types (Q4_K, Q5_K, Q6_K, IQ4_XS) add each super-block's float term into the double
 * sum directly.
 *
 * The vector side is what bounds these kernels (docs/design.md §6; measured with the amx_proxy
 * build, docs/performance.md), so the loops are arranged to give it as little to do as possible:
 *   - loop order: chunks of up to 4 row blocks (128 rows, so their steps stay in L2), panel
 *     pairs, K-blocks (8 steps: one contract group or super-block; Q6_K's super-block is 16),
 *     row blocks, batches of 4 steps. Each K-block's B operands are unpacked once and serve every
 * row block of the chunk, and the weight stream is prefetched a K-block ahead of the unpack;
 *   - a batch's epilogue takes the rows 4 at a time and keeps each row's float (or super-block
 *     int32) sum in a register across its 4 steps: per row and step a converting load, a multiply
 *     by the broadcast d_x and an FMA (super-blocks: a vpmulld and an add). The sum waits in
 *     memory only between the batches of a K-block;
 *     the double sums are written, not read, by a row block's first group. Holding sums in
 *     registers or memory changes no bit: only the operations and their order are fixed;
 *   - pipelining: batch n's tile work is interleaved with batch n-1's epilogue, one C tile's part
 *     per step (run_batch()). One 16 KiB C buffer serves both because consecutive batches store
 *     their tiles transposed to each other (cslot()).
 * Scratch is on the stack only, about 70 KiB (C tiles 16, unpacked B 16, sums 36).
 *
 * Signedness: Q8_0, Q4_0 (nibble - 8), Q5_0 (5-bit value - 16), IQ4_NL and IQ4_XS (their table's
 * signed levels) use tdpbssd; Q4_1, Q5_1, Q4_K, Q5_K and Q6_K keep unsigned values and use
 * tdpbsud, with their offsets handled through the scales: Q4_1's and Q5_1's m_w * s_x term, Q4_K's
 * and Q5_K's dmin * d_x * sum_j m_j * bsums term, Q6_K's 32 * sum_j sc_j * bsums_j. The
 * super-block types accumulate sc_j * isum_j exactly in int32 across the sub-blocks of a
 * super-block (as ggml does) and convert once per super-block.
 *
 * Ragged edges: a last row block of fewer than 32 rows is a chunk of its own with a tile
 * configuration of fewer rows (loaded only when it differs from the live one), so no tile load
 * reads a row of X at or past m1. An odd panel count leaves B1, C2 and C3 idle. The padded rows
 * of the last panel are computed but only columns n < N are stored. A K that is not a multiple of
 * 256 (32-k types) ends in a short K-block and a short batch.
 *
 * Adding a type: its step depth in kstep() and kc_of(), its B operand in prep_b(), its
 * signedness in tile_dp(), its per-step scale terms in epi_rows_32() or, for a super-block type,
 * its terms in epilogue() and its finish in epi_rows_sb().
 */
#include <assert.h>
#include <string.h>

#include "internal.h"
#include "ref/fp16.h"
#include "simd.h"
#include "vec512.h"
#include "vec512_kx.h"
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

/* Q5_0 / Q5_1 chunk (the qh line, then 4 qs lines, src/internal.h) -> 8 tile rows of the 5-bit
 * values: low nibbles k = 0..15 (rows 0..3), high nibbles k = 16..31. minus16: Q5_0's signed
 * values (-16..15); else Q5_1's 0..31. */
static inline void unpack_q5(const uint8_t *src, int8_t *dst, int minus16)
{
    const __m512i sixteen = _mm512_set1_epi8(16);
    const __m512i qh = _mm512_loadu_si512(src);
    for (int l = 0; l < 4; l++) {
        const __m512i v = _mm512_loadu_si512(src + 64 * (1 + l));
        __m512i lo = vn_q5_k_line(v, qh, 2 * l), hi = vn_q5_k_line(v, qh, 2 * l + 1);
        if (minus16) {
            lo = _mm512_sub_epi8(lo, sixteen);
            hi = _mm512_sub_epi8(hi, sixteen);
        }
        _mm512_store_si512(dst + 64 * l, lo);
        _mm512_store_si512(dst + 64 * (4 + l), hi);
    }
}

/* IQ4_NL chunk (4 VNNI lines of nibbles, as Q4_0's) -> 8 tile rows of ggml's signed int8 levels
 * kvalues_iq4nl[nibble] (vpshufb): low nibbles k = 0..15 (rows 0..3), high nibbles k = 16..31. */
static inline void unpack_iq4nl(const uint8_t *src, int8_t *dst)
{
    const __m512i kv = vn_iq4_table(0);
    for (int l = 0; l < 4; l++) {
        const __m512i v = _mm512_loadu_si512(src + 64 * l);
        _mm512_store_si512(dst + 64 * l, vn_iq4_line(v, kv, 0));
        _mm512_store_si512(dst + 64 * (4 + l), vn_iq4_line(v, kv, 1));
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

/* Q5_K sub-block j (8 VNNI lines): the nibbles of run j / 2 (after the chunk's 8 lines of qh)
 * with bit j of qh, as the values 0..31. */
static inline void unpack_q5k(const uint8_t *chunk, int8_t *dst, int j)
{
    for (int l = 0; l < 8; l++)
        _mm512_store_si512(dst + 64 * l, vn_q5_k_line(vn_load(chunk + 512 * (1 + j / 2) + 64 * l),
                                                      vn_load(chunk + 64 * l), j));
}

/* IQ4_XS sub-block i (4 VNNI lines): low nibbles are k = 0..15 (rows 0..3), high nibbles
 * k = 16..31 (rows 4..7), looked up as ggml's signed levels. */
static inline void unpack_iq4xs(const uint8_t *chunk, int8_t *dst, int i)
{
    const __m512i tbl = vn_iq4_table(0);
    for (int l = 0; l < 4; l++) {
        const __m512i line = vn_load(chunk + 64 * (4 * i + l));
        _mm512_store_si512(dst + 64 * l, vn_iq4_line(line, tbl, 0));
        _mm512_store_si512(dst + 64 * (4 + l), vn_iq4_line(line, tbl, 1));
    }
}

/* Q6_K sub-block j (4 VNNI lines of 16 k): the 6-bit values 0..63 from its ql and qh lines. */
static inline void unpack_q6k(const uint8_t *chunk, int8_t *dst, int j)
{
    const int h = j / 8, c = (j % 8) / 2, g = j % 2;
    for (int i = 0; i < 4; i++) {
        const int l = 4 * g + i;
        _mm512_store_si512(dst + 64 * i,
                           vn_q6_k_line(vn_load(chunk + 64 * (16 * h + 8 * (c & 1) + l)),
                                        vn_load(chunk + 64 * (32 + 8 * h + l)), c));
    }
}

/* ---- Chunks of rows x two panels ------------------------------------------------------------ */

/*
 * Work units (docs/design.md §6). A chunk is up to RB blocks of 32 rows that share one tile
 * configuration; a K-block is KC steps (one group of the numeric contract, one Q4_K super-block);
 * a batch is NB steps of one row block. For each panel pair of a chunk, each K-block's B operands
 * are unpacked once and serve all the chunk's row blocks; per row block the batches run the tile
 * work and the epilogue, whose sums stay in registers across a batch.
 */
#define RB     (MC / 32) /* row blocks per chunk: each unpacked B step serves RB * 2 A tiles */
#define KC_MAX 16        /* steps per K-block: kc_of(ti) */
#define NB     4         /* steps per batch: one per C tile, see run_batch() */

/* k of a step: one ggml block or sub-block with its own scale (Q6_K's sub-blocks are 16 k). */
static inline int kstep(int ti)
{
    return ti == AMXQ_TI_Q6_K ? 16 : 32;
}

/* Steps of a K-block: a group of the numeric contract for the per-block types, a super-block for
 * the K-quants and IQ4_XS (8 sub-blocks of 32, or Q6_K's 16 of 16). */
static inline int kc_of(int ti)
{
    return ti == AMXQ_TI_Q6_K ? 16 : GROUP;
}
_Static_assert(GROUP % NB == 0 && KC_MAX % NB == 0 && GROUP <= KC_MAX,
               "a K-block is whole batches");
_Static_assert(NB == 4, "a batch's epilogue has one part per C tile (q = 0..3)");

struct chunk {
    const amxq_layout *lo;
    const uint8_t *packed;
    const amxq_qx *qx;
    int64_t mb;    /* first row of X */
    int nrb;       /* row blocks, 1..RB */
    int r0, r1;    /* rows of A0, A1 in each of them (r1 may be 0) */
    int64_t p;     /* first panel */
    int np;        /* panels: 1 or 2 */
    int64_t steps; /* steps of kstep(ti) k */
};

/* One batch: steps [t0, t0 + nb) of row block rb. */
struct batch {
    int rb;
    int64_t t0;
    int nb;     /* 0: no batch */
    int bbuf;   /* B operands in bbuf[bbuf] / bptr[bbuf], slots j = t0 % KC + step */
    int tr;     /* C tile layout: 0 cbuf[step][q], 1 cbuf[q][step] (alternates, see run_batch) */
    int mode;   /* EPI_FIRST and / or EPI_LAST: the batch opens / closes a group (a K-block) */
    int dfirst; /* the K-block is the first: the double sums start here */
};
#define EPI_FIRST 1
#define EPI_LAST  2

struct scratch {
    _Alignas(64) int32_t cbuf[NB][4][16][16];     /* C tiles of one batch, see tr */
    _Alignas(64) int8_t bbuf[2][GROUP * 2 * 512]; /* unpacked B of a K-block, by its parity:
                                                    (step, panel) at (2 * step + panel) * B bytes */
    _Alignas(64) float part[4][16][16];           /* a group's sums after its first batch (float;
                                                     Q4_K: int32 sum_j sc_j * isum_j) */
    _Alignas(64) double dacc[RB][4][16][16];      /* the double sums: C before rounding */
    const uint8_t *bptr[2][KC_MAX][2];            /* B operand of [parity][step][panel] */
};

static inline int rows_of(const struct chunk *k, int a)
{
    return a ? k->r1 : k->r0;
}

/* The C tile of (step j, tile q) under layout tr. */
static inline int32_t (*cslot(struct scratch *s, int tr, int j, int q))[16]
{
    return tr ? s->cbuf[q][j] : s->cbuf[j][q];
}

/* B operands of the K-block's steps [t0, t0 + n) into bbuf[buf]: Q8_0's packed chunk is a B tile
 * as it stands; the 4-bit types are unpacked. Made one K-block ahead of the tile loads that read
 * them, so the vector stores have drained before TILELOADD reads the lines. */
static inline __attribute__((always_inline)) void prep_b(const struct chunk *k, struct scratch *s,
                                                         int64_t t0, int n, int buf, int ti)
{
    const amxq_layout *lo = k->lo;
    for (int b = 0; b < k->np; b++) {
        const uint8_t *panel = amxq_panel(lo, k->packed, k->p + b);
        for (int j = 0; j < n; j++) {
            const int64_t t = t0 + j;
            int8_t *dst = &s->bbuf[buf][(2 * j + b) * kstep(ti) * 16];
            switch (ti) {
            case AMXQ_TI_Q8_0:
                s->bptr[buf][j][b] = panel + (size_t)t * AMXQ_CHUNK_Q8_0;
                continue;
            case AMXQ_TI_Q4_0:
                unpack_q4(panel + (size_t)t * AMXQ_CHUNK_Q4_0, dst, 1);
                break;
            case AMXQ_TI_Q4_1:
                unpack_q4(panel + (size_t)t * AMXQ_CHUNK_Q4_1, dst, 0);
                break;
            case AMXQ_TI_Q5_0:
                unpack_q5(panel + (size_t)t * AMXQ_CHUNK_Q5_0, dst, 1);
                break;
            case AMXQ_TI_Q5_1:
                unpack_q5(panel + (size_t)t * AMXQ_CHUNK_Q5_1, dst, 0);
                break;
            case AMXQ_TI_IQ4_NL:
                unpack_iq4nl(panel + (size_t)t * AMXQ_CHUNK_IQ4_NL, dst);
                break;
            case AMXQ_TI_Q4_K: /* step t is sub-block t % 8 of super-block t / 8 */
                unpack_q4k(panel + (size_t)(t / 8) * AMXQ_CHUNK_Q4_K + (size_t)((t % 8) / 2) * 512,
                           dst, (int)(t & 1));
                break;
            case AMXQ_TI_Q5_K:
                unpack_q5k(panel + (size_t)(t / 8) * AMXQ_CHUNK_Q5_K, dst, (int)(t % 8));
                break;
            case AMXQ_TI_IQ4_XS:
                unpack_iq4xs(panel + (size_t)(t / 8) * AMXQ_CHUNK_IQ4_XS, dst, (int)(t % 8));
                break;
            default: /* Q6_K: step t is sub-block t % 16 of super-block t / 16 */
                unpack_q6k(panel + (size_t)(t / 16) * AMXQ_CHUNK_Q6_K, dst, (int)(t % 16));
                break;
            }
            s->bptr[buf][j][b] = (const uint8_t *)dst;
        }
    }
}

/* Tile work of step j of a batch, in two halves: the dot products into C0..C3, then (after the
 * vector work placed between them) the C tiles into their cbuf slots. */
static inline __attribute__((always_inline)) void tile_dp(const struct chunk *k, struct scratch *s,
                                                          const struct batch *bt, int j, int ti)
{
    const int64_t t = bt->t0 + j;
    const uint8_t *const *bptr = s->bptr[bt->bbuf][t % kc_of(ti)];
    const int64_t ld = k->qx->ld_qs;
    const int8_t *a0 = k->qx->qs + (k->mb + 32 * bt->rb) * ld + t * kstep(ti);
    const int two_a = k->r1 > 0, two_b = k->np > 1;

    TILE_ZERO(0);
    if (two_a)
        TILE_ZERO(1);
    if (two_b) {
        TILE_ZERO(2);
        if (two_a)
            TILE_ZERO(3);
    }
    TILE_LOAD_RO(4, a0, ld);
    if (two_a)
        TILE_LOAD_RO(5, a0 + 16 * ld, ld);
    if (ti == AMXQ_TI_Q6_K) { /* 16 k: 4 rows of 64 bytes */
        TILE_LOAD_BUF(6, bptr[0], 256);
        if (two_b)
            TILE_LOAD_BUF(7, bptr[1], 256);
    } else {
        TILE_LOAD_BUF(6, bptr[0], 512);
        if (two_b)
            TILE_LOAD_BUF(7, bptr[1], 512);
    }
    if (ti == AMXQ_TI_Q8_0 || ti == AMXQ_TI_Q4_0 || ti == AMXQ_TI_Q5_0 || ti == AMXQ_TI_IQ4_NL ||
        ti == AMXQ_TI_IQ4_XS) {
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
}

static inline __attribute__((always_inline)) void tile_st(const struct chunk *k, struct scratch *s,
                                                          const struct batch *bt, int j)
{
    const int two_a = k->r1 > 0, two_b = k->np > 1;
    TILE_STORE_BUF(0, cslot(s, bt->tr, j, 0), 1024);
    if (two_a)
        TILE_STORE_BUF(1, cslot(s, bt->tr, j, 1), 1024);
    if (two_b) {
        TILE_STORE_BUF(2, cslot(s, bt->tr, j, 2), 1024);
        if (two_a)
            TILE_STORE_BUF(3, cslot(s, bt->tr, j, 3), 1024);
    }
}

/* dst[0..15] (+)= double(v): the numeric contract's S += a, where the first group's S is +0 (so
 * +0 + v, which turns a -0 into +0 exactly as the reference's sum does). */
static inline __attribute__((always_inline)) void add_f64(double *dst, __m512 v, int first)
{
#if defined(AMXQ_SIMD_EMU)
    float f[16];
    memcpy(f, &v, sizeof f);
    for (int i = 0; i < 16; i++)
        dst[i] = (first ? 0.0 : dst[i]) + (double)f[i];
#else
    const __m512d lo = _mm512_cvtps_pd(_mm512_castps512_ps256(v));
    const __m512d hi =
        _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
    const __m512d z = _mm512_setzero_pd();
    _mm512_store_pd(dst, _mm512_add_pd(first ? z : _mm512_load_pd(dst), lo));
    _mm512_store_pd(dst + 8, _mm512_add_pd(first ? z : _mm512_load_pd(dst + 8), hi));
#endif
}

/* The state one epilogue part shares across its rows. */
struct epi {
    const uint8_t *terms;  /* the panel's terms of the batch's first step (Q4_K: super-block) */
    int32_t (*cb[NB])[16]; /* the C tile of each step */
    float (*part)[16];
    double (*dacc)[16];
    int64_t m0; /* row of X of the tile's row 0 */
};

/* Rows [i, i + R) of a 32-k type's epilogue (see epilogue()); R rows at once so that their FMA
 * chains, whose order the contract fixes, overlap. */
static inline __attribute__((always_inline)) void
epi_rows_32(const struct chunk *k, const struct batch *bt, const struct epi *e, const __m512 *dw,
            const __m512 *mw, int nb, int mode, int i, const int R, int ti)
{
    const amxq_qx *qx = k->qx;
    const int q41 = ti == AMXQ_TI_Q4_1 || ti == AMXQ_TI_Q5_1; /* the m_w * s_x term */
    __m512 acc[4];
    const float *dx[4], *sx[4];
    for (int r = 0; r < R; r++) {
        const int64_t m = e->m0 + i + r;
        dx[r] = qx->d + m * qx->ld_d + bt->t0;
        sx[r] = q41 ? qx->s + m * qx->ld_d + bt->t0 : NULL;
        acc[r] = (mode & EPI_FIRST) ? _mm512_setzero_ps() : _mm512_load_ps(e->part[i + r]);
    }
    for (int j = 0; j < nb; j++)
        for (int r = 0; r < R; r++) {
            const __m512 f = vn_cvt_i32_ps(_mm512_load_si512(e->cb[j][i + r]));
            acc[r] = vn_fmadd_ps(f, _mm512_mul_ps(dw[j], _mm512_set1_ps(dx[r][j])), acc[r]);
            if (q41)
                acc[r] = vn_fmadd_ps(mw[j], _mm512_set1_ps(sx[r][j]), acc[r]);
        }
    for (int r = 0; r < R; r++) {
        if (mode & EPI_LAST)
            add_f64(e->dacc[i + r], acc[r], bt->dfirst);
        else
            _mm512_store_ps(e->part[i + r], acc[r]);
    }
}

/* Rows [i, i + R) of a super-block type's epilogue (Q4_K, Q5_K, IQ4_XS, Q6_K): the batch's part
 * of I, and after the last part the super-block's term (see epilogue()). `mins`: Q4_K's and
 * Q5_K's (m_2j, m_2j+1) int16 pairs, or Q6_K's (sc_2j, sc_2j+1). */
static inline __attribute__((always_inline)) void
epi_rows_sb(const struct chunk *k, const struct batch *bt, const struct epi *e, const __m512i *sc,
            const __m512i *mins, __m512 dw, __m512 dminw, int mode, int i, const int R, int ti)
{
    const amxq_qx *qx = k->qx;
    const int64_t sb = bt->t0 / kc_of(ti);
    __m512i v[4];
    for (int r = 0; r < R; r++) {
        v[r] = (mode & EPI_FIRST) ? _mm512_setzero_si512() : _mm512_load_si512(e->part[i + r]);
        for (int j = 0; j < NB; j++)
            v[r] = _mm512_add_epi32(v[r],
                                    _mm512_mullo_epi32(_mm512_load_si512(e->cb[j][i + r]), sc[j]));
    }
    if (!(mode & EPI_LAST)) {
        for (int r = 0; r < R; r++)
            _mm512_store_si512(e->part[i + r], v[r]);
        return;
    }
    if (ti == AMXQ_TI_Q6_K) {
        /* I -= 32 * sum_j sc_j * bsums_j (the unsigned values' offset), exact in int32: one
         * vpdpwssd per pair of sub-blocks against the pair (bsums_2j, bsums_2j+1). */
        for (int r = 0; r < R; r++) {
            const int16_t *bs = qx->sums + (e->m0 + i + r) * qx->ld_sums + sb * 16;
            __m512i corr = _mm512_setzero_si512();
            for (int j = 0; j < 8; j++)
                corr = _mm512_dpwssd_epi32(corr, mins[j], vn_bcast32(bs + 2 * j));
            v[r] = _mm512_sub_epi32(v[r], _mm512_slli_epi32(corr, 5));
        }
    }
    if (ti != AMXQ_TI_Q4_K && ti != AMXQ_TI_Q5_K) { /* IQ4_XS, Q6_K: v = float(I) * (d * d_x) */
        for (int r = 0; r < R; r++) {
            const __m512 dx = _mm512_set1_ps(qx->d[(e->m0 + i + r) * qx->ld_d + sb]);
            add_f64(e->dacc[i + r], _mm512_mul_ps(vn_cvt_i32_ps(v[r]), _mm512_mul_ps(dw, dx)),
                    bt->dfirst);
        }
        return;
    }
    /* J = sum_j m_j * S_j with S_j = bsums[2j] + bsums[2j+1] (|S_j| <= 4096: int16): one vpmaddwd
     * and a pack give the int16 pairs (S_2i, S_2i+1), and one vpdpwssd per pair against
     * (m_2i, m_2i+1) adds two sub-blocks: 4 instead of 8 on the multiply ports. Exact integers. */
    _Alignas(32) int32_t spair[4][8];
    __m512i msum[4];
    for (int r = 0; r < R; r++) {
        const int16_t *bs = qx->sums + (e->m0 + i + r) * qx->ld_sums + sb * 16;
        const __m256i s = _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)bs),
                                            _mm256_set1_epi16(1)); /* S_0..S_7, int32 */
        /* per 128-bit lane (S_0..S_3 | S_4..S_7) packed to int16: int32 0, 1, 4, 5 are the pairs */
        _mm256_store_si256((__m256i *)spair[r], _mm256_packs_epi32(s, s));
        msum[r] = _mm512_setzero_si512();
    }
    for (int j = 0; j < 4; j++)
        for (int r = 0; r < R; r++)
            msum[r] = _mm512_dpwssd_epi32(msum[r], mins[j],
                                          _mm512_set1_epi32(spair[r][(j & 1) + 4 * (j >> 1)]));
    for (int r = 0; r < R; r++) {
        const __m512 dx = _mm512_set1_ps(qx->d[(e->m0 + i + r) * qx->ld_d + sb]);
        const __m512 scaled = _mm512_mul_ps(vn_cvt_i32_ps(v[r]), _mm512_mul_ps(dw, dx));
        add_f64(e->dacc[i + r],
                vn_fnmadd_ps(vn_cvt_i32_ps(msum[r]), _mm512_mul_ps(dminw, dx), scaled), bt->dfirst);
    }
}

/*
 * Epilogue of C tile q = a + 2b of batch bt (nb steps; mode as in struct batch), from its cbuf
 * slots into the row block's sums. Per row, the sum stays in a register across the batch, starts
 * at +0 when the batch opens a group, waits in `part` between the two batches of a group and is
 * added into the double sums when it closes one. Per row and step: a converting load, a multiply
 * by the broadcast d_x and an FMA (Q4_1 a second FMA): the contract's own operations.
 *
 * Per block (Q4_0, Q4_1, Q8_0): acc = fma(float(isum), d_w * d_x, acc) [acc = fma(m_w, s_x, acc)]
 * and every GROUP steps (counted from step 0) dacc += double(acc), acc = +0.
 * Q4_K: I = sum_j sc_j * isum_j exactly in int32 over the super-block's 8 sub-blocks, then with
 * J = sum_j m_j * (bsums of sub-block j), exact: dacc += double(fma(-float(J), dmin * d_x,
 * float(I) * (d * d_x))), as in the VNNI kernel.
 */
static inline __attribute__((always_inline)) void epilogue(const struct chunk *k, struct scratch *s,
                                                           const struct batch *bt, int nb, int mode,
                                                           int q, int ti)
{
    const int a = q & 1, b = q >> 1;
    if (b >= k->np || rows_of(k, a) == 0)
        return;
    const amxq_layout *lo = k->lo;
    const int rows = rows_of(k, a);
    struct epi e;
    const uint8_t *terms = amxq_panel(lo, k->packed, k->p + b) + lo->terms_offset;
    e.part = s->part[q];
    e.dacc = s->dacc[bt->rb][q];
    e.m0 = k->mb + 32 * bt->rb + 16 * a;
    for (int j = 0; j < NB; j++)
        e.cb[j] = cslot(s, bt->tr, j, q);
    int i = 0;

    if (ti == AMXQ_TI_Q4_K || ti == AMXQ_TI_Q5_K || ti == AMXQ_TI_IQ4_XS || ti == AMXQ_TI_Q6_K) {
        /* A batch is a part of one super-block. Q4_K and Q5_K share their terms' layout (d, dmin,
         * 8 unsigned scales, 8 mins); IQ4_XS and Q6_K have d and signed scales at byte 32. */
        const int has_mins = ti == AMXQ_TI_Q4_K || ti == AMXQ_TI_Q5_K;
        const int j0 = (int)(bt->t0 % kc_of(ti));
        e.terms = terms + (size_t)(bt->t0 / kc_of(ti)) * lo->terms_bytes;
        __m512i sc[NB], mins[8];
        for (int j = 0; j < NB; j++)
            sc[j] = has_mins ? vn_load_u8_i32(e.terms + 64 + 16 * (j0 + j))
                             : vn_load_i8_i32(e.terms + 32 + 16 * (j0 + j));
        __m512 dw = _mm512_setzero_ps(), dminw = _mm512_setzero_ps();
        for (int j = 0; j < 8; j++)
            mins[j] = _mm512_setzero_si512();
        if (mode & EPI_LAST) {
            dw = vn_load_ph(e.terms);
            if (has_mins) {
                dminw = vn_load_ph(e.terms + 32);
                for (int j = 0; j < 4; j++) /* (m_2j, m_2j+1): pairs with (S_2j, S_2j+1) */
                    mins[j] = _mm512_or_si512(
                        vn_load_u8_i32(e.terms + 192 + 16 * (2 * j)),
                        _mm512_slli_epi32(vn_load_u8_i32(e.terms + 192 + 16 * (2 * j + 1)), 16));
            } else if (ti == AMXQ_TI_Q6_K) {
                for (int j = 0; j < 8;
                     j++) /* (sc_2j, sc_2j+1): pairs with (bsums_2j, bsums_2j+1) */
                    mins[j] = vn_pair_i8_i16(e.terms + 32 + 16 * (2 * j),
                                             e.terms + 32 + 16 * (2 * j + 1));
            }
        }
        for (; i + 4 <= rows; i += 4)
            epi_rows_sb(k, bt, &e, sc, mins, dw, dminw, mode, i, 4, ti);
        for (; i < rows; i++)
            epi_rows_sb(k, bt, &e, sc, mins, dw, dminw, mode, i, 1, ti);
        return;
    }

    e.terms = terms + (size_t)bt->t0 * lo->terms_bytes;
    __m512 dw[NB], mw[NB];
    for (int j = 0; j < nb; j++) {
        dw[j] = vn_load_ph(e.terms + (size_t)j * lo->terms_bytes);
        mw[j] = ti == AMXQ_TI_Q4_1 || ti == AMXQ_TI_Q5_1
                    ? vn_load_ph(e.terms + (size_t)j * lo->terms_bytes + 32)
                    : _mm512_setzero_ps();
    }
    for (; i + 4 <= rows; i += 4)
        epi_rows_32(k, bt, &e, dw, mw, nb, mode, i, 4, ti);
    for (; i < rows; i++)
        epi_rows_32(k, bt, &e, dw, mw, nb, mode, i, 1, ti);
}

/* The epilogue with its step count and mode as constants in the common cases, so that its loops
 * unroll without tests. */
static inline __attribute__((always_inline)) void
epilogue_of(const struct chunk *k, struct scratch *s, const struct batch *bt, int q, int ti)
{
    if (bt->nb == NB && bt->mode == EPI_FIRST)
        epilogue(k, s, bt, NB, EPI_FIRST, q, ti);
    else if (bt->nb == NB && bt->mode == EPI_LAST)
        epilogue(k, s, bt, NB, EPI_LAST, q, ti);
    else if (ti == AMXQ_TI_Q6_K && bt->nb == NB && bt->mode == 0) /* its middle batches */
        epilogue(k, s, bt, NB, 0, q, ti);
    else /* a ragged K (not a multiple of 256): only the 32-k types */
        epilogue(k, s, bt, bt->nb, bt->mode, q, ti);
}

/*
 * One pipeline stage: batch `cur`'s tile work interleaved with batch `prev`'s epilogue. Step j's
 * dot products, then the epilogue of prev's C tile q = j, then step j's tile stores, for j = 0..3:
 * the tile unit computes while the vector units finish the previous batch. One C buffer suffices
 * because consecutive batches alternate its layout: cur (layout 1 - L) stores step j's tiles into
 * exactly the four slots that prev's (layout L) part j has just read.
 */
static inline __attribute__((always_inline)) void run_batch(const struct chunk *k,
                                                            struct scratch *s,
                                                            const struct batch *cur,
                                                            const struct batch *prev, int ti)
{
    for (int j = 0; j < NB; j++) {
        if (j < cur->nb)
            tile_dp(k, s, cur, j, ti);
        if (prev->nb > 0)
            epilogue_of(k, s, prev, j, ti);
        if (j < cur->nb)
            tile_st(k, s, cur, j);
    }
}

/* Prefetch what the vector side will read of the steps [t0, t0 + n) of both panels: the 4-bit
 * quants prep_b() unpacks and the terms. The weight stream is read a K-block at a time, far apart
 * per panel, which the hardware prefetchers were seen to miss. (Q8_0's quants are read by
 * TILELOADD only: a prefetch there would be vector work spent on the tile unit's stream.) */
static inline __attribute__((always_inline)) void prefetch_w(const struct chunk *k, int64_t t0,
                                                             int n, int ti)
{
    const amxq_layout *lo = k->lo;
    const size_t per_step = lo->chunk_bytes * (size_t)kstep(ti) / (size_t)lo->block_k;
    const size_t terms_step = lo->terms_bytes * (size_t)kstep(ti) / (size_t)lo->block_k;
    for (int b = 0; b < k->np; b++) {
        const uint8_t *panel = amxq_panel(lo, k->packed, k->p + b);
        const uint8_t *q = panel + (size_t)t0 * per_step;
        for (size_t off = 0; ti != AMXQ_TI_Q8_0 && off < (size_t)n * per_step; off += 64)
            __builtin_prefetch(q + off);
        const uint8_t *tm = panel + lo->terms_offset + (size_t)t0 * terms_step;
        for (size_t off = 0; off < (size_t)n * terms_step; off += 64)
            __builtin_prefetch(tm + off);
    }
}

/* All steps of a chunk by one panel pair, then its C. */
static inline __attribute__((always_inline)) void
run_chunk(const struct chunk *k, struct scratch *s, float *c, int64_t ldc, int ti)
{
    const int kc = kc_of(ti);
    const int64_t nkb = (k->steps + kc - 1) / kc;
    struct batch prev = {0}, cur = {0};
    int tr = 0;
    prep_b(k, s, 0, k->steps < kc ? (int)k->steps : kc, 0, ti);
    for (int64_t kb = 0; kb < nkb; kb++) {
        const int64_t kt = kb * kc;
        const int kn = k->steps - kt < kc ? (int)(k->steps - kt) : kc;
        if (kb + 2 < nkb) {
            const int64_t rest = k->steps - kt - 2 * kc;
            prefetch_w(k, kt + 2 * kc, rest < kc ? (int)rest : kc, ti);
        }
        if (kb + 1 < nkb) {
            const int64_t rest = k->steps - kt - kc;
            prep_b(k, s, kt + kc, rest < kc ? (int)rest : kc, (int)((kb + 1) & 1), ti);
        }
        for (int rb = 0; rb < k->nrb; rb++)
            for (int h = 0; h * NB < kn; h++) {
                cur.rb = rb;
                cur.t0 = kt + h * NB;
                cur.nb = kn - h * NB < NB ? kn - h * NB : NB;
                cur.bbuf = (int)(kb & 1);
                cur.tr = tr;
                cur.mode = (h == 0 ? EPI_FIRST : 0) | ((h + 1) * NB >= kn ? EPI_LAST : 0);
                cur.dfirst = kb == 0;
                run_batch(k, s, &cur, &prev, ti);
                prev = cur;
                tr ^= 1;
            }
    }
    cur.nb = 0;
    run_batch(k, s, &cur, &prev, ti);

    const int64_t n_total = k->lo->n;
    for (int b = 0; b < k->np; b++) {
        const int64_t n0 = (k->p + b) * AMXQ_PANEL_N;
        const int64_t nv = n_total - n0 < AMXQ_PANEL_N ? n_total - n0 : AMXQ_PANEL_N;
        for (int rb = 0; rb < k->nrb; rb++)
            for (int a = 0; a < 2; a++) {
                const int q = a + 2 * b;
                for (int i = 0; i < rows_of(k, a); i++) {
                    float *dst = c + (k->mb + 32 * rb + 16 * a + i) * ldc + n0;
                    for (int64_t j = 0; j < nv; j++)
                        dst[j] = (float)s->dacc[rb][q][i][j];
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
    struct chunk k;
    k.lo = lo;
    k.packed = (const uint8_t *)packed;
    k.qx = qx;
    k.steps = lo->k / kstep(ti);
    int cur_r0 = -1, cur_r1 = -1;
    /* Chunks: up to RB full row blocks; a ragged last block (fewer than 32 rows) is a chunk of its
     * own, with its own tile configuration. */
    const int64_t m_full = m0 + (m1 - m0) / 32 * 32;
    for (int64_t mc = m0; mc < m1;) {
        int rows;
        if (mc < m_full) {
            k.nrb = (int)((m_full - mc) / 32 < RB ? (m_full - mc) / 32 : RB);
            rows = 32;
        } else {
            k.nrb = 1;
            rows = (int)(m1 - mc);
        }
        k.mb = mc;
        k.r0 = rows < 16 ? rows : 16;
        k.r1 = rows - k.r0;
        if (k.r0 != cur_r0 || k.r1 != cur_r1) {
            struct amxq_tilecfg cfg;
            amxq_tilecfg_make_k(&cfg, k.r0, k.r1, kstep(ti));
            assert(amxq_tilecfg_check(&cfg, NULL, NULL) == NULL);
            amxq_tile_ensure_config(&cfg);
            cur_r0 = k.r0;
            cur_r1 = k.r1;
        }
        for (int64_t p = p0; p < p1; p += 2) {
            k.p = p;
            k.np = p1 - p >= 2 ? 2 : 1;
            run_chunk(&k, &s, c, ldc, ti);
        }
        mc += mc < m_full ? 32 * (int64_t)k.nrb : rows;
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

AMXQ_DECL_GEMM_FN(AMXQ_TSFX(amxq_gemm_q5_k))
{
    gemm_run(lo, packed, qx, m0, m1, p0, p1, c, ldc, AMXQ_TI_Q5_K);
}

AMXQ_DECL_GEMM_FN(AMXQ_TSFX(amxq_gemm_iq4_xs))
{
    gemm_run(lo, packed, qx, m0, m1, p0, p1, c, ldc, AMXQ_TI_IQ4_XS);
}

AMXQ_DECL_GEMM_FN(AMXQ_TSFX(amxq_gemm_q6_k))
{
    gemm_run(lo, packed, qx, m0, m1, p0, p1, c, ldc, AMXQ_TI_Q6_K);
}

AMXQ_DECL_GEMM_FN(AMXQ_TSFX(amxq_gemm_q5_0))
{
    gemm_run(lo, packed, qx, m0, m1, p0, p1, c, ldc, AMXQ_TI_Q5_0);
}

AMXQ_DECL_GEMM_FN(AMXQ_TSFX(amxq_gemm_q5_1))
{
    gemm_run(lo, packed, qx, m0, m1, p0, p1, c, ldc, AMXQ_TI_Q5_1);
}

AMXQ_DECL_GEMM_FN(AMXQ_TSFX(amxq_gemm_iq4_nl))
{
    gemm_run(lo, packed, qx, m0, m1, p0, p1, c, ldc, AMXQ_TI_IQ4_NL);
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
    t->t[AMXQ_TI_Q5_K].gemm = AMXQ_TSFX(amxq_gemm_q5_k);
    t->t[AMXQ_TI_Q5_K].gemm_name = AMXQ_TSFX_STR(amxq_gemm_q5_k);
    t->t[AMXQ_TI_IQ4_XS].gemm = AMXQ_TSFX(amxq_gemm_iq4_xs);
    t->t[AMXQ_TI_IQ4_XS].gemm_name = AMXQ_TSFX_STR(amxq_gemm_iq4_xs);
    t->t[AMXQ_TI_Q6_K].gemm = AMXQ_TSFX(amxq_gemm_q6_k);
    t->t[AMXQ_TI_Q6_K].gemm_name = AMXQ_TSFX_STR(amxq_gemm_q6_k);
    t->t[AMXQ_TI_Q5_0].gemm = AMXQ_TSFX(amxq_gemm_q5_0);
    t->t[AMXQ_TI_Q5_0].gemm_name = AMXQ_TSFX_STR(amxq_gemm_q5_0);
    t->t[AMXQ_TI_Q5_1].gemm = AMXQ_TSFX(amxq_gemm_q5_1);
    t->t[AMXQ_TI_Q5_1].gemm_name = AMXQ_TSFX_STR(amxq_gemm_q5_1);
    t->t[AMXQ_TI_IQ4_NL].gemm = AMXQ_TSFX(amxq_gemm_iq4_nl);
    t->t[AMXQ_TI_IQ4_NL].gemm_name = AMXQ_TSFX_STR(amxq_gemm_iq4_nl);
    t->tile_release = AMXQ_TSFX(amxq_tile_release);
}
#endif /* !AMXQ_TILE_PROXY */
