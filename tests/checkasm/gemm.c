/*
 * checkasm family: products on packed weights. A table's gemm slot, given the reference's
 * quantized activations, must agree with the reference gemm to an L2-relative error of
 * CA_GEMM_TOL (DESIGN.md §1), write exactly the outputs of the rows and panels it was asked for
 * (C has ldc > N and guards around it: the gap between N and ldc, the rest of the rows and the
 * memory around C hold canary bytes that must survive), and write neither the weights nor the
 * workspace. The same is then checked through the public amxq_matmul_ex() with the ISA forced,
 * which quantizes with the table's own quantizer.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "tests/checkasm/checkasm.h"

static int is_canary(const float *p)
{
    uint8_t b[sizeof(float)];
    memcpy(b, p, sizeof b);
    for (size_t i = 0; i < sizeof b; i++)
        if (b[i] != CA_CANARY)
            return 0;
    return 1;
}

/* Every element of C outside [0, mw) x [0, nw) must still be canary; and the guards. */
static int check_canaries(struct ca_ctx *ctx, const struct ca_case *cs, const char *kernel,
                          const ca_buf *cb, int64_t mw, int64_t nw, const char *how)
{
    const float *c = (const float *)(const void *)cb->p;
    for (int64_t m = 0; m < cs->m; m++)
        for (int64_t n = 0; n < cs->ldc; n++) {
            if (m < mw && n < nw)
                continue;
            if (!is_canary(&c[m * cs->ldc + n])) {
                ca_fail(ctx, cs, kernel, "%s: stray write at C[%lld][%lld]%s", how, (long long)m,
                        (long long)n, n >= cs->n ? " (between N and ldc)" : "");
                return 1;
            }
        }
    int bad;
    const ptrdiff_t at = ca_buf_guard(cb, &bad);
    if (bad) {
        ca_fail(ctx, cs, kernel, "%s: stray write %s C (byte %td)", how,
                at < 0 ? "before" : "after", at < 0 ? -at : at - (ptrdiff_t)cb->size);
        return 1;
    }
    return 0;
}

static int same_nonfinite(float a, float b)
{
    return (isnan(a) && isnan(b)) || a == b;
}

/*
 * The whole-matrix L2 error lets a few dominant columns hide a wrong one, so each column (one
 * weight row) is checked too, 10x looser, against its own norm plus 1% of the mean square of C
 * (that floor keeps columns that cancel to nearly zero from failing on float rounding).
 */
static int check_columns(struct ca_ctx *ctx, const struct ca_case *cs, const char *kernel,
                         const float *c, const char *how, double den_total)
{
    const double floor_col = 1e-2 * den_total / (double)cs->n;
    for (int64_t n = 0; n < cs->n; n++) {
        double num = 0, den = 0;
        for (int64_t m = 0; m < cs->m; m++) {
            const float v = c[m * cs->ldc + n], r = cs->c_ref[m * cs->n + n];
            if (!isfinite(v) || !isfinite(r))
                continue; /* compared exactly by the caller */
            const double e = (double)v - (double)r;
            num += e * e;
            den += (double)r * r;
        }
        if (num > CA_GEMM_COL_TOL * CA_GEMM_COL_TOL * (den + floor_col)) {
            ca_fail(ctx, cs, kernel,
                    "%s: column n=%lld L2-relative error %.3e > %.0e (matrix within tolerance); "
                    "C[0][%lld] = %.9g, reference %.9g",
                    how, (long long)n, sqrt(num / (den + floor_col)), CA_GEMM_COL_TOL, (long long)n,
                    (double)c[n], (double)cs->c_ref[n]);
            return 1;
        }
    }
    return 0;
}

/* L2-relative error of C against the reference; reports the first bad (m, n) on failure. */
static int compare_c(struct ca_ctx *ctx, const struct ca_case *cs, const char *kernel,
                     const float *c, const char *how)
{
    double num = 0, den = 0, emax = -1;
    int64_t am = 0, an = 0;
    for (int64_t m = 0; m < cs->m; m++)
        for (int64_t n = 0; n < cs->n; n++) {
            const float v = c[m * cs->ldc + n], r = cs->c_ref[m * cs->n + n];
            if (!isfinite(v) || !isfinite(r)) {
                if (!same_nonfinite(v, r)) {
                    ca_fail(ctx, cs, kernel, "%s: C[%lld][%lld] = %g, reference %g", how,
                            (long long)m, (long long)n, (double)v, (double)r);
                    return 1;
                }
                continue;
            }
            const double e = (double)v - (double)r;
            num += e * e;
            den += (double)r * r;
            if (fabs(e) > emax) {
                emax = fabs(e);
                am = m;
                an = n;
            }
        }
    const double l2 = den > 0 ? sqrt(num / den) : sqrt(num);
    if (l2 <= CA_GEMM_TOL)
        return check_columns(ctx, cs, kernel, c, how, den);
    /* first element off by more than the tolerance times the RMS of the reference */
    const double count = (double)(cs->m * cs->n);
    const double lim = CA_GEMM_TOL * (den > 0 ? sqrt(den / count) : 1.0);
    int64_t fm = am, fn = an;
    for (int64_t m = 0, found = 0; m < cs->m && !found; m++)
        for (int64_t n = 0; n < cs->n; n++) {
            const float v = c[m * cs->ldc + n], r = cs->c_ref[m * cs->n + n];
            if (isfinite(v) && isfinite(r) && fabs((double)v - (double)r) > lim) {
                fm = m;
                fn = n;
                found = 1;
                break;
            }
        }
    ca_fail(ctx, cs, kernel,
            "%s: L2-relative error %.3e > %.0e; first bad C[%lld][%lld] = %.9g, reference "
            "%.9g; largest error at C[%lld][%lld]",
            how, l2, CA_GEMM_TOL, (long long)fm, (long long)fn, (double)c[fm * cs->ldc + fn],
            (double)cs->c_ref[fm * cs->n + fn], (long long)am, (long long)an);
    return 1;
}

static void check_inputs_intact(struct ca_ctx *ctx, const struct ca_case *cs, const char *kernel,
                                const char *how)
{
    if (memcmp(cs->packed, cs->packed_copy, cs->packed_size) != 0)
        ca_fail(ctx, cs, kernel, "%s: the packed weights were modified", how);
    if (memcmp(cs->x, cs->x_copy, sizeof(float) * (size_t)(cs->m * cs->ldx)) != 0)
        ca_fail(ctx, cs, kernel, "%s: the activations X were modified", how);
}

/* The slot itself, on the reference's workspace, in three slices of rows and panels. */
static void check_direct(struct ca_ctx *ctx, const struct ca_case *cs)
{
    const char *kernel = ctx->t->t[cs->ti].gemm_name;
    amxq_gemm_fn *g = ctx->t->t[cs->ti].gemm;
    ca_buf ws = ca_buf_new(cs->ws_size);
    memcpy(ws.p, cs->ws_ref, cs->ws_size);
    amxq_qx qx;
    amxq_qx_layout(&qx, cs->type, cs->m, cs->k, ws.p);
    ca_buf cb = ca_buf_new(sizeof(float) * (size_t)(cs->m * cs->ldc));
    float *c = (float *)(void *)cb.p;

    const int64_t np = cs->lo.n_panels;
    const int64_t ms = cs->m > 1 ? (cs->m > 17 ? 17 : cs->m / 2) : cs->m;
    const int64_t ps = np > 1 ? np / 2 : np;
    const int64_t nps = ps * AMXQ_PANEL_N < cs->n ? ps * AMXQ_PANEL_N : cs->n;
    int bad = 0;
    g(&cs->lo, cs->packed, &qx, 0, ms, 0, ps, c, cs->ldc);
    bad |= check_canaries(ctx, cs, kernel, &cb, ms, nps, "rows [0,ms) panels [0,ps)");
    if (!bad && ps < np) {
        g(&cs->lo, cs->packed, &qx, 0, ms, ps, np, c, cs->ldc);
        bad |= check_canaries(ctx, cs, kernel, &cb, ms, cs->n, "rows [0,ms) panels [ps,np)");
    }
    if (!bad && ms < cs->m)
        g(&cs->lo, cs->packed, &qx, ms, cs->m, 0, np, c, cs->ldc);
    ctx->checks++;
    if (!bad)
        bad |= check_canaries(ctx, cs, kernel, &cb, cs->m, cs->n, "all slices");
    if (!bad)
        compare_c(ctx, cs, kernel, c, "table call");
    if (memcmp(ws.p, cs->ws_ref, cs->ws_size) != 0)
        ca_fail(ctx, cs, kernel, "table call: the workspace was modified");
    int wbad;
    const ptrdiff_t at = ca_buf_guard(&ws, &wbad);
    if (wbad)
        ca_fail(ctx, cs, kernel, "table call: wrote outside the workspace (byte %td)", at);
    check_inputs_intact(ctx, cs, kernel, "table call");
    ca_buf_free(&cb);
    ca_buf_free(&ws);
}

/* amxq_matmul_ex() with this ISA forced: quantize + gemm of the table, as an engine calls it. */
static void check_public(struct ca_ctx *ctx, const struct ca_case *cs)
{
    char kernel[160];
    snprintf(kernel, sizeof kernel, "amxq_matmul_ex(%s + %s)", ctx->t->t[cs->ti].quantize_name,
             ctx->t->t[cs->ti].gemm_name);
    ca_buf cb = ca_buf_new(sizeof(float) * (size_t)(cs->m * cs->ldc));
    float *c = (float *)(void *)cb.p;
    /* every other case brings its own (guarded) workspace */
    const int own_ws = cs->index % 2 == 1;
    ca_buf ws = ca_buf_new(own_ws ? cs->ws_size : 64);
    amxq_matmul_params prm;
    memset(&prm, 0, sizeof prm);
    prm.isa = ctx->isa;
    if (own_ws) {
        prm.workspace = ws.p;
        prm.workspace_size = amxq_workspace_size(cs->type, cs->m, cs->k);
    }
    ctx->checks++;
    const amxq_status st = amxq_matmul_ex(cs->packed, cs->x, cs->m, cs->ldx, c, cs->ldc, &prm);
    if (st != AMXQ_OK) {
        ca_fail(ctx, cs, kernel, "returned %s", amxq_status_str(st));
    } else {
        /* TODO(amx helper): for the AMX tables (amx, amx-emu) check here that the calling
         * thread's tile state was released by the call (no AMXQ_KEEP_TILES): real tiles via
         * STTILECFG reading back an all-zero configuration, emulated tiles via the emulator's
         * query. Needs an internal query from src/tile; not checked yet. */
        if (!check_canaries(ctx, cs, kernel, &cb, cs->m, cs->n, "public call"))
            compare_c(ctx, cs, kernel, c, "public call");
    }
    int wbad;
    const ptrdiff_t at = ca_buf_guard(&ws, &wbad);
    if (wbad)
        ca_fail(ctx, cs, kernel, "public call: wrote outside the workspace (byte %td)", at);
    check_inputs_intact(ctx, cs, kernel, "public call");
    ca_buf_free(&ws);
    ca_buf_free(&cb);
}

long ca_check_gemm(struct ca_ctx *ctx, const struct ca_case *cs)
{
    const long before = ctx->failures;
    check_direct(ctx, cs);
    if (!ctx->no_public)
        check_public(ctx, cs);
    return ctx->failures - before;
}
