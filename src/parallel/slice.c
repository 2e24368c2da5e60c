/*
 * The slice API (include/amxq.h, "Threads and NUMA"): a plan made once, then each of nth threads
 * quantizes its rows of X and, after the engine's barrier, computes its share of C.
 *
 * Why the results are bitwise those of amxq_matmul_ex(): activation quantization is per row, and
 * a gemm slot computes each C[m][n] from row m of the workspace and the panel holding column n
 * alone, in an order that does not depend on which rows and panels the call covers (the contract
 * of AMXQ_DECL_GEMM_FN). Splitting over whole rows and whole panels therefore changes only who
 * computes an element, never how. tests/test_threads.c checks it for every ISA that runs.
 *
 * The split: the (panel, row) grid is walked panel by panel, each panel's rows in order, and cut
 * into nth runs of equal cells, each cut moved to the nearest multiple of AMXQ_SLICE_ROWS rows
 * (or the panel's edge). A thread thus gets one contiguous range of panels, whole except possibly
 * the first and the last, and the same number of cells as the others up to that rounding: uneven
 * N and M balance without ever cutting a panel's 16 columns apart.
 */
#include <string.h>

#include "internal.h"
#include "parallel/parallel.h"

/* floor(total * i / nth) without overflow for total < 2^62, 0 <= i <= nth. */
static int64_t cut(int64_t total, int i, int nth)
{
    const int64_t q = total / nth, r = total % nth;
    return q * i + r * i / nth;
}

void amxq_slice_rows(int64_t m, int ith, int nth, int64_t *m0, int64_t *m1)
{
    *m0 = cut(m, ith, nth);
    *m1 = cut(m, ith + 1, nth);
}

/* The i-th cut of the grid as (panel, row), rounded as described above. */
static void grid_cut(int64_t m, int64_t n_panels, int i, int nth, int64_t *p, int64_t *r)
{
    const int64_t b = cut(m * n_panels, i, nth);
    int64_t pp = b / m, rr = b % m;
    rr = (rr + AMXQ_SLICE_ROWS / 2) / AMXQ_SLICE_ROWS * AMXQ_SLICE_ROWS;
    if (rr >= m) {
        pp++;
        rr = 0;
    }
    *p = pp;
    *r = rr;
}

int amxq_slice_split(int64_t m, int64_t n_panels, int ith, int nth, amxq_slice_part parts[3])
{
    int64_t ps, rs, pe, re;
    grid_cut(m, n_panels, ith, nth, &ps, &rs);
    grid_cut(m, n_panels, ith + 1, nth, &pe, &re);
    if (ps * m + rs >= pe * m + re)
        return 0;
    if (ps == pe) {
        parts[0] = (amxq_slice_part){rs, re, ps, ps + 1};
        return 1;
    }
    int np = 0;
    if (rs > 0) {
        parts[np++] = (amxq_slice_part){rs, m, ps, ps + 1};
        ps++;
    }
    if (pe > ps)
        parts[np++] = (amxq_slice_part){0, m, ps, pe};
    if (re > 0)
        parts[np++] = (amxq_slice_part){0, re, pe, pe + 1};
    return np;
}

/* ---- Checks ------------------------------------------------------------------------------------
 */

/* Resolve params' ISA for (type, m) into a concrete table. */
static amxq_status resolve(const amxq_matmul_params *pp, amxq_type type, int64_t m, amxq_isa *isa)
{
    AMXQ_TRY(amxq_resolve_isa(pp->isa, type, m, isa));
    AMXQ_CHECK(amxq_kernels_get(*isa, NULL) != NULL, AMXQ_ERR_ISA_UNSUPPORTED);
    return AMXQ_OK;
}

static void fill_plan(amxq_plan *plan, const amxq_layout *lo, int64_t m, amxq_isa isa,
                      unsigned flags)
{
    plan->type = lo->type;
    plan->m = m;
    plan->n = lo->n;
    plan->k = lo->k;
    plan->n_panels = lo->n_panels;
    plan->isa = isa;
    plan->flags = flags;
    plan->workspace_size = amxq_qx_size(lo->type, m, lo->k);
}

static const amxq_matmul_params default_params = {AMXQ_ISA_AUTO, 0, NULL, 0};

amxq_status amxq_matmul_plan(const void *packed, int64_t m, const amxq_matmul_params *params,
                             amxq_plan *plan)
{
    const amxq_matmul_params *pp = params ? params : &default_params;
    AMXQ_CHECK((int)pp->isa >= 0 && (int)pp->isa < AMXQ_ISA_COUNT, AMXQ_ERR_ISA_UNKNOWN);
    AMXQ_CHECK((pp->flags & ~AMXQ_KEEP_TILES) == 0, AMXQ_ERR_ARG);
    AMXQ_CHECK(packed != NULL && plan != NULL, AMXQ_ERR_NULL);
    AMXQ_CHECK(amxq_is_aligned(packed), AMXQ_ERR_ALIGNMENT);
    amxq_layout lo;
    AMXQ_TRY(amxq_layout_read(&lo, packed, SIZE_MAX));
    AMXQ_CHECK(m > 0 && m < ((int64_t)1 << 31), AMXQ_ERR_SHAPE);
    AMXQ_CHECK(amxq_qx_size(lo.type, m, lo.k) != 0, AMXQ_ERR_SHAPE);
    amxq_isa isa;
    AMXQ_TRY(resolve(pp, lo.type, m, &isa));
    fill_plan(plan, &lo, m, isa, pp->flags);
    return AMXQ_OK;
}

/* A plan as amxq_matmul_plan() writes it, and its kernel table. */
static amxq_status check_plan(const amxq_plan *plan, int ith, int nth,
                              const struct amxq_kernels **t)
{
    AMXQ_CHECK(nth >= 1 && ith >= 0 && ith < nth, AMXQ_ERR_ARG);
    amxq_layout lo;
    AMXQ_CHECK(amxq_layout_init(&lo, plan->type, plan->n, plan->k) == AMXQ_OK, AMXQ_ERR_ARG);
    AMXQ_CHECK(plan->m > 0 && plan->m < ((int64_t)1 << 31), AMXQ_ERR_ARG);
    AMXQ_CHECK(plan->n_panels == lo.n_panels, AMXQ_ERR_ARG);
    AMXQ_CHECK(plan->workspace_size == amxq_qx_size(plan->type, plan->m, plan->k), AMXQ_ERR_ARG);
    AMXQ_CHECK((plan->flags & ~AMXQ_KEEP_TILES) == 0, AMXQ_ERR_ARG);
    AMXQ_CHECK((int)plan->isa > (int)AMXQ_ISA_AUTO && (int)plan->isa < AMXQ_ISA_COUNT,
               AMXQ_ERR_ARG);
    amxq_status why = AMXQ_ERR_ISA_UNSUPPORTED;
    *t = amxq_kernels_get(plan->isa, &why);
    AMXQ_CHECK(*t != NULL, why);
    return AMXQ_OK;
}

amxq_status amxq_quantize_slice(const amxq_plan *plan, const float *x, int64_t ldx, void *workspace,
                                size_t workspace_size, int ith, int nth)
{
    AMXQ_CHECK(plan != NULL && x != NULL && workspace != NULL, AMXQ_ERR_NULL);
    const struct amxq_kernels *t;
    AMXQ_TRY(check_plan(plan, ith, nth, &t));
    AMXQ_CHECK(ldx >= plan->k, AMXQ_ERR_STRIDE);
    const size_t x_bytes = amxq_span_bytes(plan->m, plan->k, ldx);
    AMXQ_CHECK(x_bytes != 0, AMXQ_ERR_STRIDE);
    AMXQ_CHECK(workspace_size >= plan->workspace_size, AMXQ_ERR_BUFFER_SIZE);
    AMXQ_CHECK(amxq_is_aligned(workspace), AMXQ_ERR_ALIGNMENT);
    AMXQ_CHECK(!amxq_overlaps(workspace, plan->workspace_size, x, x_bytes), AMXQ_ERR_OVERLAP);
    amxq_par_quantize(plan, t, x, ldx, workspace, ith, nth);
    return AMXQ_OK;
}

amxq_status amxq_matmul_slice(const amxq_plan *plan, const void *packed, const void *workspace,
                              size_t workspace_size, float *c, int64_t ldc, int ith, int nth)
{
    AMXQ_CHECK(plan != NULL && packed != NULL && workspace != NULL && c != NULL, AMXQ_ERR_NULL);
    const struct amxq_kernels *t;
    AMXQ_TRY(check_plan(plan, ith, nth, &t));
    AMXQ_CHECK(amxq_is_aligned(packed), AMXQ_ERR_ALIGNMENT);
    amxq_layout lo;
    AMXQ_TRY(amxq_layout_read(&lo, packed, SIZE_MAX));
    AMXQ_CHECK(lo.type == plan->type && lo.n == plan->n && lo.k == plan->k, AMXQ_ERR_BAD_PACKED);
    AMXQ_CHECK(ldc >= plan->n, AMXQ_ERR_STRIDE);
    const size_t c_bytes = amxq_span_bytes(plan->m, plan->n, ldc);
    AMXQ_CHECK(c_bytes != 0, AMXQ_ERR_STRIDE);
    AMXQ_CHECK(workspace_size >= plan->workspace_size, AMXQ_ERR_BUFFER_SIZE);
    AMXQ_CHECK(amxq_is_aligned(workspace), AMXQ_ERR_ALIGNMENT);
    AMXQ_CHECK(!amxq_overlaps(c, c_bytes, packed, lo.total_bytes), AMXQ_ERR_OVERLAP);
    AMXQ_CHECK(!amxq_overlaps(c, c_bytes, workspace, plan->workspace_size), AMXQ_ERR_OVERLAP);
    if (amxq_par_gemm(plan, t, &lo, packed, workspace, c, ldc, ith, nth) &&
        t->tile_release != NULL && !(plan->flags & AMXQ_KEEP_TILES))
        t->tile_release();
    return AMXQ_OK;
}

/* ---- Work ------------------------------------------------------------------------------------ */

void amxq_par_quantize(const amxq_plan *plan, const struct amxq_kernels *t, const float *x,
                       int64_t ldx, void *ws, int ith, int nth)
{
    int64_t m0, m1;
    amxq_slice_rows(plan->m, ith, nth, &m0, &m1);
    if (m0 >= m1)
        return;
    amxq_qx qx;
    amxq_qx_layout(&qx, plan->type, plan->m, plan->k, ws);
    const int ti = amxq_type_index(plan->type);
    t->t[ti].quantize(x, ldx, m0, m1, &qx);
}

int amxq_par_gemm(const amxq_plan *plan, const struct amxq_kernels *t, const amxq_layout *lo,
                  const void *packed, const void *ws, float *c, int64_t ldc, int ith, int nth)
{
    amxq_slice_part parts[3];
    const int np = amxq_slice_split(plan->m, plan->n_panels, ith, nth, parts);
    if (np == 0)
        return 0;
    /* The kernels take a non-const workspace view; they only read it. */
    amxq_qx qx;
    amxq_qx_layout(&qx, plan->type, plan->m, plan->k, (void *)(uintptr_t)ws);
    amxq_gemm_fn *gemm = t->t[lo->ti].gemm;
    for (int i = 0; i < np; i++)
        gemm(lo, packed, &qx, parts[i].m0, parts[i].m1, parts[i].p0, parts[i].p1, c, ldc);
    return 1;
}

/* ---- The checks of amxq_matmul_ex(), for the context ------------------------------------------
 */

amxq_status amxq_par_check_matmul(const void *packed, const float *x, int64_t m, int64_t ldx,
                                  float *c, int64_t ldc, const amxq_matmul_params *params,
                                  amxq_plan *plan, amxq_layout *lo)
{
    amxq_isa isa;
    size_t ws_bytes;
    AMXQ_TRY(amxq_matmul_check(packed, x, m, ldx, c, ldc, params, lo, &isa, &ws_bytes));
    fill_plan(plan, lo, m, isa, params ? params->flags : 0);
    return AMXQ_OK;
}
