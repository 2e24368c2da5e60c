/*
 * Fuzz target (d): the argument checks of amxq_matmul_id / amxq_ctx_matmul_id and of the expert
 * slice API (amxq_matmul_id_plan, amxq_quantize_id_slice, amxq_matmul_id_slice) (include/amxq.h,
 * "Mixture-of-experts products"), with small random experts and activations.
 *
 * Input bytes: 0 type, 1 N, 2 K, 3 n_experts (some bytes: 0, -1, 2^31), 4 n_slots (some: 0),
 * 5 n_tokens (some: 0, 2^30), 6 x_slots (1, n_slots, 2, 0), 7-11 stride deltas in [-3, 7] on a
 * contiguous layout (ldx_slot, ldx_token, ld_ids, ldc_slot, ldc_token), 12 C's layout and
 * placement (bit 0-2: as is, slot-major, on X, on ids, on an expert, on the experts array;
 * bit 3: the context instead of the plain call; bit 4: the slice API instead of both, on
 * 1 + (bits 5-7) % 3 slices run one after the other, the compute slices last to first; there
 * "on X" is no fault, since X is read before the barrier, and is taken as "as is"; "no
 * workspace" is a NULL workspace, a fault), 13 the forced amxq_isa (every value plus
 * unknown ones), 14 flags and workspace (bits 0-1: flags 0, KEEP_TILES, an unknown bit, the top
 * bit; bits 2-3: no workspace, exact, 64 bytes short, misaligned), 15 an expert fault (none, a
 * NULL expert, another N, another type, a corrupted header, a misaligned pointer) and 16 which
 * expert it hits, 17.. one byte per (token, slot): the id (a few bytes: n_experts, -1), then the
 * data seed.
 *
 * Properties, the faults being worked out here independently of the library (rows of C that
 * collide by brute force over every pair of rows):
 *   - the call returns AMXQ_OK exactly when no rule of the header is broken, and otherwise one
 *     of the statuses the header gives for the faults present;
 *   - on failure C and every buffer it was placed on are untouched;
 *   - on success every row (t, s) of C has the bits of amxq_matmul() of its row of X with its
 *     expert, and every element outside the rows keeps its pattern.
 * Seeds: corpus/matmul_id/seed-*, one per fault class and a few valid calls (named for what
 * they exercise; hand-made, byte layout above).
 */
#include <limits.h>

#include "fuzz_common.h"

typedef uint32_t fz_set;
#define FZ_BIT(st) ((fz_set)1 << (-(int)(st)))
#define MAXE       8

static amxq_ctx *g_ctx;

static void *make_expert(amxq_type type, int64_t n, int64_t k, uint64_t *seed)
{
    const size_t gs = amxq_ggml_size(type, n, k), bb = amxq_type_block_bytes(type);
    uint8_t *g = (uint8_t *)malloc(gs);
    FZ_CHECK(g != NULL, "oom");
    for (size_t i = 0; i < gs; i++)
        g[i] = (uint8_t)fz_rand(seed);
    for (size_t b = 0; b < gs / bb; b++) {
        const uint16_t d = (uint16_t)(0x1800 + (fz_rand(seed) & 0x7ff));
        memcpy(g + b * bb, &d, 2);
        if (type != AMXQ_TYPE_Q8_0)
            memcpy(g + b * bb + 2, &d, 2);
    }
    const size_t ps = amxq_packed_size(type, n, k);
    void *p = aligned_alloc(64, (ps + 64 + 63) / 64 * 64);
    FZ_CHECK(p != NULL && amxq_pack(type, g, n, k, p, ps) == AMXQ_OK, "pack");
    free(g);
    return p;
}

/* Whether rows (t, s) of n floats at t * a + s * b collide, by brute force. */
static int collide(int64_t nt, int64_t a, int64_t ns, int64_t b, int64_t n)
{
    for (int64_t i = 0; i < nt * ns; i++)
        for (int64_t j = i + 1; j < nt * ns; j++) {
            const int64_t oi = (i / ns) * a + (i % ns) * b, oj = (j / ns) * a + (j % ns) * b;
            if ((oi > oj ? oi - oj : oj - oi) < n)
                return 1;
        }
    return 0;
}

static int64_t dim(uint8_t b, int64_t valid, const int64_t *sp, int nsp)
{
    return b >= 256 - nsp ? sp[b - (256 - nsp)] : valid;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_reader r = fz_reader_init(data, size);
    uint8_t hb[17];
    for (int i = 0; i < 17; i++)
        hb[i] = fz_u8(&r);
    const amxq_type type = fz_types[hb[0] % 4];
    const int64_t qk = amxq_type_block(type);
    const int64_t n = 1 + hb[1] % 40, k = (1 + hb[2] % (qk == 256 ? 1 : 4)) * qk;
    static const int64_t sp_e[] = {0, -1, (int64_t)1 << 31};
    const int64_t n_experts = dim(hb[3], 1 + hb[3] % MAXE, sp_e, 3);
    static const int64_t sp_s[] = {0};
    const int64_t n_slots = dim(hb[4], 1 + hb[4] % 4, sp_s, 1);
    static const int64_t sp_t[] = {0, -3, (int64_t)1 << 31};
    const int64_t n_tokens = dim(hb[5], 1 + hb[5] % 12, sp_t, 3);
    static const int64_t xs_vals[4] = {1, -1, 2, 0};
    const int64_t x_slots = xs_vals[hb[6] % 4] == -1 ? n_slots : xs_vals[hb[6] % 4];
    const int64_t d[5] = {(int64_t)(hb[7] % 11) - 3, (int64_t)(hb[8] % 11) - 3,
                          (int64_t)(hb[9] % 11) - 3, (int64_t)(hb[10] % 11) - 3,
                          (int64_t)(hb[11] % 11) - 3};
    const int use_slice = (hb[12] >> 4) & 1, slice_nth = 1 + (hb[12] >> 5) % 3;
    const int use_ctx = !use_slice && ((hb[12] >> 3) & 1);
    int place = (hb[12] & 7) % 6;
    if (use_slice && place == 2)
        place = 0;
    static const int isa_vals[16] = {0, 0, 0, 1, 2, 3, 4, 5, 0, 1, 2, 4, 6, -1, INT_MAX, 255};
    const amxq_isa isa = (amxq_isa)isa_vals[hb[13] % 16];
    static const unsigned flag_vals[4] = {0, AMXQ_KEEP_TILES, 2u, 0x80000000u};
    const unsigned flags = flag_vals[hb[14] & 3];
    const int ws_mode = (hb[14] >> 2) & 3;
    int fault = hb[15] % 6;
    uint64_t seed = 0;

    const int shape_ok =
        n_experts >= 1 && n_experts <= MAXE && n_slots >= 1 && n_tokens >= 1 && n_tokens <= 12;
    fz_set bad = 0;
    if (!shape_ok)
        bad |= FZ_BIT(AMXQ_ERR_SHAPE);
    const int64_t ns = shape_ok ? n_slots : 1, nt = shape_ok ? n_tokens : 1;
    const int64_t ne = shape_ok ? n_experts : 1;
    if (x_slots != 1 && x_slots != n_slots)
        bad |= FZ_BIT(AMXQ_ERR_ARG);
    const int64_t xs = x_slots >= 1 && x_slots <= ns ? x_slots : 1;

    /* ids, then the seed */
    int32_t ids_store[12 * 4 + 16];
    int32_t used[MAXE] = {0};
    for (int64_t i = 0; i < nt * ns; i++) {
        const uint8_t b = fz_u8(&r);
        const int32_t e = b == 255 ? (int32_t)ne : b == 254 ? -1 : (int32_t)(b % ne);
        ids_store[i] = e;
        if (e < 0 || e >= ne)
            bad |= FZ_BIT(AMXQ_ERR_ARG);
        else
            used[e] = 1;
    }
    seed = fz_u64(&r);

    /* experts */
    void *ex_store[MAXE] = {0};
    const void *ex[MAXE];
    for (int64_t e = 0; e < ne; e++)
        ex[e] = ex_store[e] = make_expert(type, n, k, &seed);
    void *odd = NULL;
    const int64_t fe = hb[16] % ne;
    if (ne == 1 && (fault == 2 || fault == 3))
        fault = 0; /* a lone expert of another shape is simply the weight */
    switch (fault) {
    case 1:
        ex[fe] = NULL;
        if (used[fe])
            bad |= FZ_BIT(AMXQ_ERR_NULL);
        {
            int any = 0;
            for (int64_t e = 0; e < ne; e++)
                any |= ex[e] != NULL;
            if (!any)
                bad |= FZ_BIT(AMXQ_ERR_NULL);
        }
        break;
    case 2:
        ex[fe] = odd = make_expert(type, n + 16, k, &seed);
        if (ne > 1)
            bad |= FZ_BIT(AMXQ_ERR_BAD_PACKED);
        break;
    case 3:
        ex[fe] = odd = make_expert(type == AMXQ_TYPE_Q8_0 ? AMXQ_TYPE_Q4_0 : AMXQ_TYPE_Q8_0, n,
                                   type == AMXQ_TYPE_Q4_K ? 256 : k, &seed);
        if (ne > 1)
            bad |= FZ_BIT(AMXQ_ERR_BAD_PACKED);
        break;
    case 4:
        ((uint8_t *)ex_store[fe])[20] ^= 0x40;
        bad |= FZ_BIT(AMXQ_ERR_BAD_PACKED);
        break;
    case 5:
        odd = aligned_alloc(64, amxq_packed_size(type, n, k) + 64);
        FZ_CHECK(odd != NULL, "oom");
        memcpy((uint8_t *)odd + 16, ex_store[fe], amxq_packed_size(type, n, k));
        ex[fe] = (uint8_t *)odd + 16;
        bad |= FZ_BIT(AMXQ_ERR_ALIGNMENT);
        break;
    default:
        break;
    }
    const size_t psize = amxq_packed_size(type, n, k);

    /* strides on a contiguous layout, or slot-major C */
    int64_t ldx_slot = k + d[0], ldx_token = xs * k + d[1], ld_ids = ns + d[2];
    int64_t ldc_slot = n + d[3], ldc_token = ns * n + d[4];
    if (place == 1) {
        ldc_token = n + d[4];
        ldc_slot = nt * n + d[3];
    }
    if ((nt > 1 && ldx_token < k) || (xs > 1 && ldx_slot < k) || (nt > 1 && ld_ids < ns) ||
        (ns > 1 && ldc_slot < n) || (nt > 1 && ldc_token < n))
        bad |= FZ_BIT(AMXQ_ERR_STRIDE);
    const int strides_ok = !(bad & FZ_BIT(AMXQ_ERR_STRIDE));
    const int64_t ct = nt > 1 ? ldc_token : 0, cs = ns > 1 ? ldc_slot : 0;
    if (strides_ok && collide(nt, ct, ns, cs, n))
        bad |= FZ_BIT(AMXQ_ERR_OVERLAP);

    /* X, ids and C in one arena, so C can be put on the others */
    const int64_t xt = nt > 1 && ldx_token > 0 ? ldx_token : 0, xss = xs > 1 ? ldx_slot : 0;
    const size_t x_el = (size_t)((nt - 1) * xt + (xs - 1) * (xss > 0 ? xss : 0) + k);
    const size_t ids_el = (size_t)((nt - 1) * (nt > 1 && ld_ids > 0 ? ld_ids : 0) + ns);
    const size_t c_el = strides_ok ? (size_t)((nt - 1) * ct + (ns - 1) * cs + n) : (size_t)n;
    const size_t x_off = 0, ids_off = (x_el + 15) / 16 * 16,
                 c_off = ids_off + (ids_el + 15) / 16 * 16;
    fz_buf arena = fz_buf_new((c_off + c_el) * 4);
    float *x = (float *)(void *)arena.p;
    for (size_t i = 0; i < x_el; i++)
        x[x_off + i] = fz_randf(&seed) * 3.0f;
    int32_t *ids = (int32_t *)(void *)(arena.p + ids_off * 4);
    for (size_t i = 0; i < ids_el; i++)
        ids[i] = -9; /* between rows: never read */
    for (int64_t t = 0; t < nt; t++)
        for (int64_t s = 0; s < ns; s++)
            ids[t * (nt > 1 && ld_ids > 0 ? ld_ids : 0) + s] = ids_store[t * ns + s];
    float *c = (float *)(void *)(arena.p + c_off * 4);
    fz_buf far_c = fz_buf_new(c_el * 4 + 4096); /* for C placed on an expert or the array */
    const void **exarr = ex;
    switch (place) {
    case 2:
        c = x + 1;
        bad |= FZ_BIT(AMXQ_ERR_OVERLAP);
        break;
    case 3:
        c = (float *)(void *)ids;
        bad |= FZ_BIT(AMXQ_ERR_OVERLAP);
        break;
    case 4:
        if (ex[0] != NULL && (fault == 0 || fe != 0)) { /* a copy, so a write would show */
            memcpy(far_c.p, ex[0], psize < far_c.size ? psize : far_c.size);
            if (((uintptr_t)far_c.p & 63) == 0 && psize <= far_c.size) {
                ex[0] = far_c.p;
                c = (float *)(void *)(far_c.p + 128);
                bad |= FZ_BIT(AMXQ_ERR_OVERLAP);
            }
        }
        break;
    case 5:
        memcpy(far_c.p, ex, sizeof(void *) * (size_t)ne);
        exarr = (const void **)(void *)far_c.p;
        c = (float *)(void *)(far_c.p + 4); /* inside the first pointer */
        bad |= FZ_BIT(AMXQ_ERR_OVERLAP);
        break;
    default:
        break;
    }

    if ((int)isa < 0 || (int)isa >= AMXQ_ISA_COUNT)
        bad |= FZ_BIT(AMXQ_ERR_ISA_UNKNOWN);
    else {
        amxq_status can = AMXQ_OK;
        if (isa == AMXQ_ISA_AUTO)
            amxq_get_isa(&can);
        else
            can = amxq_isa_check(isa);
        if (can != AMXQ_OK)
            bad |= FZ_BIT(can);
    }
    if (flags & ~AMXQ_KEEP_TILES)
        bad |= FZ_BIT(AMXQ_ERR_ARG);

    if (use_ctx && g_ctx == NULL) {
        amxq_ctx_params cp;
        memset(&cp, 0, sizeof cp);
        cp.n_threads = 2;
        FZ_CHECK(amxq_ctx_create(&cp, &g_ctx) == AMXQ_OK, "ctx");
    }
    const size_t need = amxq_matmul_id_workspace_size(type, n, k, n_experts, x_slots, n_slots,
                                                      n_tokens, use_ctx ? 2 : 1);
    FZ_CHECK((need != 0) == (shape_ok && (x_slots == 1 || x_slots == n_slots)),
             "workspace size %zu", need);
    fz_buf ws = fz_buf_new((need ? need : 64) + 64);
    amxq_matmul_params prm = {isa, flags, NULL, 0};
    if (ws_mode == 1 && need) {
        prm.workspace = ws.p;
        prm.workspace_size = need;
    } else if (ws_mode == 2) {
        prm.workspace = ws.p;
        prm.workspace_size = need >= 64 ? need - 64 : 0;
        bad |= FZ_BIT(AMXQ_ERR_BUFFER_SIZE);
    } else if (ws_mode == 3) {
        prm.workspace = ws.p + 8;
        prm.workspace_size = need + 56;
        bad |= FZ_BIT(AMXQ_ERR_ALIGNMENT);
    }
    if (use_slice && ws_mode == 0)
        bad |= FZ_BIT(AMXQ_ERR_NULL); /* the slices need a workspace */

    /* snapshot of everything C may sit on */
    uint8_t *snap_a = (uint8_t *)malloc(arena.size + 1), *snap_f = (uint8_t *)malloc(far_c.size);
    FZ_CHECK(snap_a && snap_f, "oom");
    memcpy(snap_a, arena.p, arena.size);
    memcpy(snap_f, far_c.p, far_c.size);
    amxq_status st;
    if (use_slice) {
        const amxq_matmul_params pp = {isa, flags, NULL, 0};
        amxq_id_plan plan;
        st = amxq_matmul_id_plan(type, n, k, n_experts, x_slots, n_slots, n_tokens, slice_nth, &pp,
                                 &plan);
        fz_buf sws = fz_buf_new(st == AMXQ_OK ? plan.workspace_size + 64 : 64);
        uint8_t *wp = ws_mode == 0 ? NULL : ws_mode == 3 ? sws.p + 8 : sws.p;
        size_t wsz = 0;
        if (st == AMXQ_OK)
            wsz = ws_mode == 2   ? plan.workspace_size - 64
                  : ws_mode == 3 ? plan.workspace_size + 56
                                 : plan.workspace_size;
        for (int i = 0; st == AMXQ_OK && i < slice_nth; i++)
            st = amxq_quantize_id_slice(&plan, x, ldx_slot, ldx_token, wp, wsz, i, slice_nth);
        for (int i = slice_nth - 1; st == AMXQ_OK && i >= 0; i--)
            st = amxq_matmul_id_slice(&plan, exarr, ids, ld_ids, wp, wsz, c, ldc_slot, ldc_token, i,
                                      slice_nth);
        FZ_CHECK(fz_guard_ok(&sws), "slice workspace guard bytes");
        fz_buf_free(&sws);
    } else if (use_ctx)
        st = amxq_ctx_matmul_id(g_ctx, exarr, n_experts, x, x_slots, ldx_slot, ldx_token, ids,
                                n_slots, ld_ids, n_tokens, c, ldc_slot, ldc_token, &prm);
    else
        st = amxq_matmul_id(exarr, n_experts, x, x_slots, ldx_slot, ldx_token, ids, n_slots, ld_ids,
                            n_tokens, c, ldc_slot, ldc_token, &prm);
    FZ_CHECK(fz_guard_ok(&arena) && fz_guard_ok(&far_c) && fz_guard_ok(&ws), "guard bytes");
    if (bad) {
        FZ_CHECK(st != AMXQ_OK && (bad & FZ_BIT(st)),
                 "%s n=%lld k=%lld e=%lld slots=%lld tokens=%lld x_slots=%lld place=%d fault=%d "
                 "isa=%d ws=%d: got %s (faults %#x)",
                 amxq_type_name(type), (long long)n, (long long)k, (long long)n_experts,
                 (long long)n_slots, (long long)n_tokens, (long long)x_slots, place, fault,
                 (int)isa, ws_mode, amxq_status_str(st), bad);
        FZ_CHECK(memcmp(snap_a, arena.p, arena.size) == 0 &&
                     memcmp(snap_f, far_c.p, far_c.size) == 0,
                 "written on failure (%s)", amxq_status_str(st));
    } else {
        FZ_CHECK(st == AMXQ_OK,
                 "%s n=%lld k=%lld e=%lld slots=%lld tokens=%lld x_slots=%lld place=%d isa=%d: %s",
                 amxq_type_name(type), (long long)n, (long long)k, (long long)n_experts,
                 (long long)n_slots, (long long)n_tokens, (long long)x_slots, place, (int)isa,
                 amxq_status_str(st));
        /* rows: per-row amxq_matmul bits; elsewhere the arena's pattern */
        uint8_t *written = (uint8_t *)calloc(c_el, 1);
        float *row = (float *)malloc((size_t)n * 4);
        FZ_CHECK(written && row, "oom");
        for (int64_t t = 0; t < nt; t++)
            for (int64_t s = 0; s < ns; s++) {
                const float *xr =
                    x + t * (nt > 1 ? ldx_token : 0) + (s % xs) * (xs > 1 ? ldx_slot : 0);
                const int64_t off = t * ct + s * cs;
                FZ_CHECK(amxq_matmul(exarr[ids_store[t * ns + s]], xr, 1, k, row, n) == AMXQ_OK,
                         "per-row matmul");
                FZ_CHECK(memcmp(row, c + off, (size_t)n * 4) == 0,
                         "row (%lld, %lld) differs from amxq_matmul", (long long)t, (long long)s);
                memset(written + off, 1, (size_t)n);
            }
        for (size_t i = 0; i < c_el; i++)
            FZ_CHECK(written[i] || fz_all(c + i, 4, FZ_PATTERN), "C[%zu] written outside the rows",
                     i);
        free(written);
        free(row);
    }
    if (flags & AMXQ_KEEP_TILES)
        amxq_tile_release();

    free(snap_a);
    free(snap_f);
    fz_buf_free(&ws);
    fz_buf_free(&far_c);
    fz_buf_free(&arena);
    for (int64_t e = 0; e < ne; e++)
        free(ex_store[e]);
    free(odd);
    return 0;
}
