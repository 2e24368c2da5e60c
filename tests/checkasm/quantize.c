/*
 * checkasm family: activation quantizers. A table's quantize slot must fill the workspace exactly
 * as the reference does: every defined element of qs, d, s (Q8_1) and sums bit for bit, only the
 * rows it was asked for, and nothing outside the workspace. The workspace starts filled with
 * canary bytes, so a kernel that relies on zeroed memory fails too.
 */
#include <stdio.h>
#include <string.h>

#include "tests/checkasm/checkasm.h"

/* Elements per row of each array for this case. */
static void row_counts(const struct ca_case *cs, int64_t *nd, int64_t *nsums)
{
    const int is_k = amxq_type_act_q8_k(cs->type);
    *nd = cs->k / (is_k ? AMXQ_QK_K : AMXQ_QK);
    *nsums = cs->k / (is_k ? 16 : AMXQ_QK);
}

/* First difference between the reference workspace and `qx` in rows [0, m); 0 if none. */
static int compare_qx(struct ca_ctx *ctx, const struct ca_case *cs, const char *kernel,
                      const amxq_qx *qx, const char *how)
{
    const amxq_qx *rf = &cs->qx_ref;
    int64_t nd, nsums;
    row_counts(cs, &nd, &nsums);
    for (int64_t m = 0; m < cs->m; m++) {
        const int8_t *a = qx->qs + m * qx->ld_qs, *b = rf->qs + m * rf->ld_qs;
        for (int64_t j = 0; j < cs->k; j++)
            if (a[j] != b[j]) {
                ca_fail(ctx, cs, kernel, "%s: qs[%lld][%lld] = %d, reference %d", how, (long long)m,
                        (long long)j, a[j], b[j]);
                return 1;
            }
        for (int64_t j = 0; j < nd; j++) {
            const float *da = qx->d + m * qx->ld_d, *db = rf->d + m * rf->ld_d;
            if (memcmp(&da[j], &db[j], sizeof(float)) != 0) {
                ca_fail(ctx, cs, kernel, "%s: d[%lld][%lld] = %a, reference %a", how, (long long)m,
                        (long long)j, (double)da[j], (double)db[j]);
                return 1;
            }
            if (rf->s) {
                const float *sa = qx->s + m * qx->ld_d, *sb = rf->s + m * rf->ld_d;
                if (memcmp(&sa[j], &sb[j], sizeof(float)) != 0) {
                    ca_fail(ctx, cs, kernel, "%s: s[%lld][%lld] = %a, reference %a", how,
                            (long long)m, (long long)j, (double)sa[j], (double)sb[j]);
                    return 1;
                }
            }
        }
        const int16_t *sa = qx->sums + m * qx->ld_sums, *sb = rf->sums + m * rf->ld_sums;
        for (int64_t j = 0; j < nsums; j++)
            if (sa[j] != sb[j]) {
                ca_fail(ctx, cs, kernel, "%s: sums[%lld][%lld] = %d, reference %d", how,
                        (long long)m, (long long)j, sa[j], sb[j]);
                return 1;
            }
    }
    return 0;
}

/* Whether rows [m0, m) of qs still hold only canary bytes. */
static int64_t first_touched_row(const amxq_qx *qx, int64_t m0, int64_t m)
{
    for (int64_t r = m0; r < m; r++) {
        const uint8_t *p = (const uint8_t *)(qx->qs + r * qx->ld_qs);
        for (int64_t j = 0; j < qx->k; j++)
            if (p[j] != CA_CANARY)
                return r;
    }
    return -1;
}

long ca_check_quantize(struct ca_ctx *ctx, const struct ca_case *cs)
{
    const long before = ctx->failures;
    const char *kernel = ctx->t->t[cs->ti].quantize_name;
    amxq_quantize_fn *q = ctx->t->t[cs->ti].quantize;
    ca_buf ws = ca_buf_new(cs->ws_size);
    amxq_qx qx;
    amxq_qx_layout(&qx, cs->type, cs->m, cs->k, ws.p);

    /* two slices, as threads would call it: the second half must be left alone by the first */
    const int64_t h = cs->m > 1 ? cs->m / 2 + (cs->m > 17 ? 1 : 0) : cs->m;
    q(cs->x, cs->ldx, 0, h, &qx);
    const int64_t r = first_touched_row(&qx, h, cs->m);
    if (r >= 0)
        ca_fail(ctx, cs, kernel, "quantizing rows [0, %lld) wrote qs row %lld", (long long)h,
                (long long)r);
    if (h < cs->m)
        q(cs->x, cs->ldx, h, cs->m, &qx);
    ctx->checks++;
    compare_qx(ctx, cs, kernel, &qx, "table call");
    int bad;
    const ptrdiff_t at = ca_buf_guard(&ws, &bad);
    if (bad)
        ca_fail(ctx, cs, kernel, "wrote outside the workspace (byte %td of %zu)", at, ws.size);
    if (memcmp(cs->x, cs->x_copy, sizeof(float) * (size_t)(cs->m * cs->ldx)) != 0)
        ca_fail(ctx, cs, kernel, "the activations X were modified");
    ca_buf_free(&ws);
    return ctx->failures - before;
}
