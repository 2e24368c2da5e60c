/*
 * checkasm family: products on packed weights. A table's gemm slot, given the reference's
 * quantized activations, must reproduce the reference gemm bit for bit (the numeric contract,
 * docs/design.md §1: no tolerance; NaN matches NaN), write exactly the outputs of the rows and
 * panels it was asked for (C has ldc > N and guards around it: the gap between N and ldc, the rest
 * of the rows and the memory around C hold canary bytes that must survive), and write neither the
 * weights nor the workspace. The same is then checked through the public amxq_matmul_ex() with the
 * ISA forced, which quantizes with the table's own quantizer.
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

/* The numeric contract's equality: the same bits, except that a NaN matches any NaN (the
 * contract does not fix NaN payloads or signs). */
static int same_bits(float a, float b)
{
    return (isnan(a) && isnan(b)) || memcmp(&a, &b, sizeof a) == 0;
}

/* C must be the reference's bit for bit (include/amxq.h, "Numeric contract"); on a mismatch
 * report the first element, the count and the largest difference in units in the last place. */
static int compare_c(struct ca_ctx *ctx, const struct ca_case *cs, const char *kernel,
                     const float *c, const char *how)
{
    int64_t bad = 0, fm = 0, fn = 0;
    double worst = 0;
    for (int64_t m = 0; m < cs->m; m++)
        for (int64_t n = 0; n < cs->n; n++) {
            const float v = c[m * cs->ldc + n], r = cs->c_ref[m * cs->n + n];
            if (same_bits(v, r))
                continue;
            if (bad++ == 0) {
                fm = m;
                fn = n;
            }
            const double ulps =
                isfinite(r) && r != 0
                    ? fabs((double)v - (double)r) / ldexp(1.0, ilogb(r) - 23) /* one ulp of r */
                    : INFINITY;
            worst = ulps > worst ? ulps : worst;
        }
    if (!bad)
        return 0;
    ca_fail(ctx, cs, kernel,
            "%s: %lld of %lld outputs differ from the reference; first C[%lld][%lld] = %a, "
            "reference %a; largest difference %.3g ulp",
            how, (long long)bad, (long long)(cs->m * cs->n), (long long)fm, (long long)fn,
            (double)c[fm * cs->ldc + fn], (double)cs->c_ref[fm * cs->n + fn], worst);
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
