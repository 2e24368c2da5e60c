/*
 * Fuzz target (c): shapes, strides, forced ISA, flags and workspace carved from the input, with
 * random weights (sane fp16 scales) and activations, against the scalar reference.
 *
 * Input bytes: 0 type (a few values are types amxq does not know), 1 M, 2 N, 3 K (mostly valid,
 * sometimes zero, negative, huge or not a multiple of the block), 4 ldx - K, 5 ldc - N (both may be
 * short by up to 3), 6 the forced amxq_isa (every value 0..5 plus 6, 7, -1, 255, INT_MAX, INT_MIN),
 * 7 flags (bits 0-1: params.flags 0, KEEP_TILES, an unknown bit, the top bit; bits 2-3: no
 * workspace, an exact one, one 64 bytes short, a misaligned one; bit 4: the slice API instead of
 * amxq_matmul_ex(), with 1 + (bits 5-6) % 3 quantize slices in order and that many plus bit 7
 * compute slices, last to first), 8.. the data seed.
 *
 * Properties:
 *   - amxq_pack() of a bad (type, N, K) returns a status the header names for that fault
 *     (AMXQ_ERR_TYPE, AMXQ_ERR_SHAPE, AMXQ_ERR_K_BLOCK) and the size queries return 0;
 *   - amxq_matmul_ex() returns AMXQ_OK exactly when no rule of include/amxq.h is broken, and
 *     otherwise one of the statuses those rules give for the faults present (with one fault, that
 *     status exactly); on failure C is untouched;
 *   - on success only the M x N elements of C are written (guard bytes around C, and the gap
 *     between N and ldc, keep their pattern; X is read only within its rows: it is an exactly
 *     sized heap block); C equals the scalar kernels' bits whichever ISA ran (the numeric
 *     contract, docs/design.md §1); and the scalar kernels' C agrees with an independent
 *     double-precision evaluation of ggml's per-block formula (from the ggml bytes and
 * amxq_quantize_row()'s activation blocks): the L2 norm of the error at most 1e-5 times the L2 norm
 * of the magnitudes of the float terms (an L2-relative 1e-5 wherever nothing cancels);
 *   - without AMXQ_KEEP_TILES the calling thread's emulated tiles are released after the call;
 *   - the slice API (amxq_matmul_plan, amxq_quantize_slice, amxq_matmul_slice) keeps the same
 *     properties with its own statuses (no workspace is AMXQ_ERR_NULL there), whatever the two
 *     thread counts.
 * Shapes stay small (M <= 16, N <= 40, K <= 128, or 256 for Q4_K): the emulated ISAs are slow.
 */
#include <limits.h>

#include "fuzz_common.h"
#ifdef FZ_HAVE_TEMU
#include "tile/emu.h"
#endif

/* A set of acceptable statuses, indexed by -status. */
typedef uint32_t fz_set;
#define FZ_BIT(st) ((fz_set)1 << (-(int)(st)))

static int64_t pick_dim(uint8_t b, int64_t valid, const int64_t *specials, int n_specials)
{
    return b < 256 - n_specials ? valid : specials[b - (256 - n_specials)];
}

static int known_type(amxq_type t)
{
    for (int i = 0; i < FZ_NTYPES; i++)
        if (fz_types[i] == t)
            return 1;
    return 0;
}

/* Random ggml rows with finite, moderate fp16 scales (2^-10 .. 2^-4 in magnitude). */
static void fill_ggml(uint8_t *g, size_t blocks, size_t bb, amxq_type type, uint64_t *seed)
{
    for (size_t i = 0; i < blocks * bb; i++)
        g[i] = (uint8_t)fz_rand(seed);
    for (size_t b = 0; b < blocks; b++) {
        for (int s = 0; s < (type == AMXQ_TYPE_Q8_0 || type == AMXQ_TYPE_Q6_K ? 1 : 2); s++) {
            uint64_t r = fz_rand(seed);
            uint16_t h =
                (uint16_t)(((r & 1) << 15) | ((5 + (r >> 1) % 7) << 10) | ((r >> 8) & 0x3FF));
            if (type == AMXQ_TYPE_Q4_1 && s == 1)
                h &= 0x7FFF; /* ggml's Q4_1 min is usually the row minimum; either sign is fine */
            /* Q6_K's only scale, d, is the block's last field */
            memcpy(g + b * bb + (type == AMXQ_TYPE_Q6_K ? 208 : 2 * (size_t)s), &h, 2);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_reader r = fz_reader_init(data, size);
    const uint8_t tb = fz_u8(&r), mb = fz_u8(&r), nb = fz_u8(&r), kb = fz_u8(&r);
    const uint8_t ldxb = fz_u8(&r), ldcb = fz_u8(&r), isab = fz_u8(&r), fb = fz_u8(&r);
    uint64_t seed = fz_u64(&r);

    static const int bad_types[] = {0, 1, 4, 7, 13, -1, 255, INT_MAX};
    const amxq_type type = tb < 248 ? fz_type_of(tb) : (amxq_type)bad_types[tb - 248];
    const int64_t qk = known_type(type) ? amxq_type_block(type) : 32;
    static const int64_t bad_dims[] = {0, -1, -16, (int64_t)1 << 31, INT64_MIN, INT64_MAX};
    const int64_t m = pick_dim(mb, 1 + mb % 16, bad_dims, 6);
    const int64_t n = pick_dim(nb, 1 + nb % 40, bad_dims, 6);
    int64_t k = pick_dim(kb, (1 + kb % (qk == 256 ? 1 : 4)) * qk, bad_dims, 6);
    if (kb >= 232 && kb < 250)
        k = qk * (1 + kb % 3) + 1 + kb % 31; /* not a multiple of the block */
    static const int isa_vals[16] = {0, 1, 2, 3, 4, 5, 0, 1, 4, 5, 6, 7, -1, 255, INT_MAX, INT_MIN};
    const amxq_isa isa = (amxq_isa)isa_vals[isab % 16];
    static const unsigned flag_vals[4] = {0, AMXQ_KEEP_TILES, 2u, 0x80000000u};
    const unsigned flags = flag_vals[fb & 3];
    const int ws_mode = (fb >> 2) & 3;
    const int use_slice = (fb >> 4) & 1;
    const int q_nth = 1 + ((fb >> 5) & 3) % 3, c_nth = q_nth + (fb >> 7);

    /* ---- Packing: the bad shapes stop here. ---- */
    fz_set pack_bad = 0;
    if (!known_type(type))
        pack_bad |= FZ_BIT(AMXQ_ERR_TYPE);
    if (n <= 0 || k <= 0 || n >= ((int64_t)1 << 31) || k >= ((int64_t)1 << 31))
        pack_bad |= FZ_BIT(AMXQ_ERR_SHAPE);
    else if (k % qk != 0)
        pack_bad |= FZ_BIT(AMXQ_ERR_K_BLOCK);
    if (pack_bad) {
        fz_buf dummy = fz_buf_new(4096);
        amxq_status st = amxq_pack(type, dummy.p + 2048, n, k, dummy.p, 2048);
        FZ_CHECK(st != AMXQ_OK && (pack_bad & FZ_BIT(st)), "pack type %d n=%lld k=%lld: %s",
                 (int)type, (long long)n, (long long)k, amxq_status_str(st));
        FZ_CHECK(fz_all(dummy.p, 2048, FZ_PATTERN) && fz_guard_ok(&dummy), "pack wrote on failure");
        FZ_CHECK(amxq_packed_size(type, n, k) == 0 && amxq_ggml_size(type, n, k) == 0,
                 "size queries of a bad shape");
        fz_buf_free(&dummy);
        return 0;
    }

    const size_t bb = amxq_type_block_bytes(type);
    const size_t gsize = amxq_ggml_size(type, n, k), psize = amxq_packed_size(type, n, k);
    FZ_CHECK(gsize == (size_t)(n * (k / qk)) * bb && psize != 0, "size queries");
    uint8_t *g = (uint8_t *)malloc(gsize);
    FZ_CHECK(g != NULL, "out of memory");
    fill_ggml(g, (size_t)(n * (k / qk)), bb, type, &seed);
    fz_buf w = fz_buf_new(psize);
    FZ_CHECK(amxq_pack(type, g, n, k, w.p, psize) == AMXQ_OK, "pack");

    /* ---- The product (N and K are small and valid from here on). ---- */
    const int64_t ldx = k + (int64_t)(ldxb % 11) - 3;
    const int64_t ldc = n + (int64_t)(ldcb % 11) - 3;
    const int m_ok = m > 0 && m < ((int64_t)1 << 31);
    const int64_t rows = m_ok ? m : 1;
    const int strides_ok = ldx >= k && ldc >= n;
    /* X: exactly the floats the rows span, so ASan sees a read past the last row's K. By ldx
     * alone: amxq_quantize_slice() reads X before amxq_matmul_slice() sees a short ldc. */
    const size_t x_elems = ldx >= k ? (size_t)((rows - 1) * ldx + k) : (size_t)(rows * k);
    float *x = (float *)malloc(x_elems * sizeof(float));
    FZ_CHECK(x != NULL, "out of memory");
    for (size_t i = 0; i < x_elems; i++)
        x[i] = fz_randf(&seed) * 3.0f;
    const int64_t ldc_a = ldc > n ? ldc : n;
    const size_t c_bytes = (size_t)(rows * ldc_a) * sizeof(float);
    fz_buf c = fz_buf_new(c_bytes);

    const size_t ws_need = amxq_workspace_size(type, m, k);
    FZ_CHECK((ws_need != 0) == m_ok, "workspace_size for m=%lld", (long long)m);
    fz_buf ws = fz_buf_new((ws_need ? ws_need : 64) + 64);
    amxq_matmul_params mp = {isa, flags, NULL, 0};
    fz_set bad = 0;
    if ((int)isa < 0 || (int)isa >= AMXQ_ISA_COUNT)
        bad |= FZ_BIT(AMXQ_ERR_ISA_UNKNOWN);
    if (flags & ~AMXQ_KEEP_TILES)
        bad |= FZ_BIT(AMXQ_ERR_ARG);
    if (!m_ok)
        bad |= FZ_BIT(AMXQ_ERR_SHAPE);
    if (!strides_ok)
        bad |= FZ_BIT(AMXQ_ERR_STRIDE);
    if (!(bad & FZ_BIT(AMXQ_ERR_ISA_UNKNOWN))) {
        amxq_status can = AMXQ_OK;
        if (isa == AMXQ_ISA_AUTO)
            amxq_get_isa(&can); /* the process-wide choice (AMXQ_ISA) may be unusable */
        else
            can = amxq_isa_check(isa);
        if (can != AMXQ_OK)
            bad |= FZ_BIT(can);
    }
    switch (ws_mode) {
    case 1:
        mp.workspace = ws.p;
        mp.workspace_size = ws_need;
        break;
    case 2:
        mp.workspace = ws.p;
        mp.workspace_size = ws_need >= 64 ? ws_need - 64 : 0;
        bad |= FZ_BIT(AMXQ_ERR_BUFFER_SIZE);
        break;
    case 3:
        mp.workspace = ws.p + 8;
        mp.workspace_size = ws_need + 56;
        bad |= FZ_BIT(AMXQ_ERR_ALIGNMENT);
        break;
    default:
        break;
    }

    amxq_status st;
    if (!use_slice) {
        st = amxq_matmul_ex(w.p, x, m, ldx, (float *)c.p, ldc, &mp);
    } else {
        /* An engine's threads, one after the other: a plan, the quantize slices, the barrier,
         * the compute slices (another thread count, last to first). */
        if (ws_mode == 0)
            bad |= FZ_BIT(AMXQ_ERR_NULL);
        const amxq_matmul_params pp = {isa, flags, NULL, 0};
        amxq_plan plan;
        st = amxq_matmul_plan(w.p, m, &pp, &plan);
        for (int i = 0; st == AMXQ_OK && i < q_nth; i++)
            st = amxq_quantize_slice(&plan, x, ldx, mp.workspace, mp.workspace_size, i, q_nth);
        for (int i = c_nth - 1; st == AMXQ_OK && i >= 0; i--)
            st = amxq_matmul_slice(&plan, w.p, mp.workspace, mp.workspace_size, (float *)c.p, ldc,
                                   i, c_nth);
    }
    FZ_CHECK(fz_guard_ok(&c) && fz_guard_ok(&w) && fz_guard_ok(&ws), "guard bytes");
    if (bad) {
        FZ_CHECK(
            st != AMXQ_OK && (bad & FZ_BIT(st)),
            "%s m=%lld n=%lld k=%lld ldx=%lld ldc=%lld isa=%d flags=%#x ws=%d slice=%d: got %s",
            amxq_type_name(type), (long long)m, (long long)n, (long long)k, (long long)ldx,
            (long long)ldc, (int)isa, flags, ws_mode, use_slice, amxq_status_str(st));
        FZ_CHECK(fz_all(c.p, c_bytes, FZ_PATTERN), "C written on failure (%s)",
                 amxq_status_str(st));
    } else {
        FZ_CHECK(st == AMXQ_OK,
                 "%s m=%lld n=%lld k=%lld ldx=%lld ldc=%lld isa=%s ws=%d slice=%d/%d/%d: %s",
                 amxq_type_name(type), (long long)m, (long long)n, (long long)k, (long long)ldx,
                 (long long)ldc, amxq_isa_name(isa), ws_mode, use_slice, q_nth, c_nth,
                 amxq_status_str(st));
        const float *cf = (const float *)c.p;
        for (int64_t i = 0; i < m; i++)
            FZ_CHECK(fz_all(cf + i * ldc + n, (size_t)(ldc - n) * 4, FZ_PATTERN),
                     "C row %lld written between N and ldc", (long long)i);
#ifdef FZ_HAVE_TEMU
        if (!(flags & AMXQ_KEEP_TILES))
            FZ_CHECK(!amxq_temu_configured(NULL), "emulated tiles left configured, isa %s",
                     amxq_isa_name(isa));
#endif
        /* The scalar reference. */
        float *ref = (float *)malloc((size_t)(m * n) * sizeof(float));
        FZ_CHECK(ref != NULL, "out of memory");
        amxq_matmul_params sp = {AMXQ_ISA_SCALAR, 0, NULL, 0};
        FZ_CHECK(amxq_matmul_ex(w.p, x, m, ldx, ref, n, &sp) == AMXQ_OK, "scalar reference");
        amxq_isa ran;
        FZ_CHECK(amxq_resolve_isa(isa, type, m, &ran) == AMXQ_OK, "resolve");
        for (int64_t i = 0; i < m * n; i++)
            FZ_CHECK(isfinite(ref[i]) && isfinite(cf[(i / n) * ldc + i % n]), "non-finite C");
        for (int64_t i = 0; i < m; i++)
            FZ_CHECK(memcmp(cf + i * ldc, ref + i * n, (size_t)n * 4) == 0,
                     "%s differs from the scalar kernels in row %lld", amxq_isa_name(ran),
                     (long long)i);
        /* The contract's accuracy against the oracle, with a tolerance scaled to the terms, not
         * to the result: where the terms cancel (Q4_K's scale and min parts), float roundings
         * in any order differ by more than 1e-5 of what is left. The call's C has the same
         * bits, so one check covers both. */
        fz_check_oracle("scalar", type, g, x, m, n, k, ldx, ref, n);
        free(ref);
    }
    if (flags & AMXQ_KEEP_TILES) {
        amxq_tile_release();
#ifdef FZ_HAVE_TEMU
        FZ_CHECK(!amxq_temu_configured(NULL), "amxq_tile_release left emulated tiles configured");
#endif
    }

    free(g);
    free(x);
    fz_buf_free(&c);
    fz_buf_free(&w);
    fz_buf_free(&ws);
    return 0;
}
