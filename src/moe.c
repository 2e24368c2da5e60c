/*
 * Mixture-of-experts products on packed weights (ggml's MUL_MAT_ID): amxq_matmul_id and
 * amxq_ctx_matmul_id (include/amxq.h, "Mixture-of-experts products").
 *
 * How: every argument is checked first (nothing is written to C before the last check passes).
 * The (token, slot) pairs are then grouped by expert with a counting sort, each distinct row of X
 * is quantized once, and each expert's rows go through the dense gemm kernels: gathered, a chunk
 * at a time, into a small quantized block, multiplied into a small temporary C, scattered to
 * their places in C. The numeric contract (include/amxq.h) makes C[m][n] a function of row m and
 * the weight alone, so the grouping, the chunking, the per-expert kernel family (AUTO by the
 * expert's row count, docs/design.md §6) and the thread split cannot change a bit: every element
 * is what amxq_matmul() gives for that row and expert (tests/test_matmul_id.c).
 *
 * Threads (docs/design.md §8): the grid of (used expert, panel, row) cells is cut into nth equal
 * runs, like the slice split, each cut moved to a multiple of 32 rows or a panel edge. Decode
 * (one row per expert) thus hands each thread whole experts, a prompt hands it experts and row
 * blocks, and one busy expert is shared by panels.
 */
#include <string.h>

#include "alloc.h"
#include "internal.h"
#include "parallel/ctx_job.h"
#include "parallel/parallel.h"

/* Rows of the per-thread gather block and temporary C: about 1 MiB of C (it stays in L2 or L3
 * between the kernel writing it and the scatter reading it), at least two AMX row steps, at most
 * two of the AMX kernel's 128-row chunks. An expert with more rows is run a chunk at a time. */
#define MOE_TMP_BYTES ((int64_t)1 << 20)
#define MOE_MIN_ROWS  32
#define MOE_MAX_ROWS  256

#define MAX31 ((int64_t)1 << 31)

/* One used expert: its index, its rows [off, off + cnt) of the grouped order, its kernel family. */
typedef struct moe_used {
    int32_t e;
    int32_t isa;
    int64_t off, cnt;
} moe_used;

/* Everything a thread needs, filled once the checks have passed. */
typedef struct moe_job {
    amxq_layout lo;
    const void *const *experts;
    const float *x;
    int64_t x_slots, ldx_slot, ldx_token;
    int64_t n_slots, n_tokens;
    float *c;
    int64_t ldc_slot, ldc_token;
    unsigned flags;
    const struct amxq_kernels *qtab; /* quantizes the distinct rows */
    const moe_used *used;
    int64_t n_used, n_pairs;
    const int32_t *order; /* pair index t * n_slots + s, grouped by expert, in pair order */
    int64_t chunk;        /* rows of a thread's gather block */
    int64_t ld_tmp;       /* row stride of the temporary C */
    size_t off_src, off_scratch, scratch_bytes;
} moe_job;

/* ---- Sizes ------------------------------------------------------------------------------------
 */

typedef struct moe_sizes {
    int64_t chunk, ld_tmp;
    size_t src, counts, order, used, scratch, total;
    size_t off_src, off_counts, off_order, off_used, off_scratch;
} moe_sizes;

static int add_sz(size_t *acc, size_t v)
{
    return !__builtin_add_overflow(*acc, v, acc);
}

static size_t round64(size_t v)
{
    return v > SIZE_MAX - 63 ? 0 : (v + 63) & ~(size_t)63;
}

/* The workspace of a product, pieces 64-byte aligned. Returns 0 (and *s undefined) if the shape is
 * impossible or the size overflows. */
static int moe_sizes_of(amxq_type type, int64_t n, int64_t k, int64_t n_experts, int64_t x_slots,
                        int64_t n_slots, int64_t n_tokens, int n_threads, moe_sizes *s)
{
    amxq_layout lo;
    if (amxq_layout_init(&lo, type, n, k) != AMXQ_OK)
        return 0;
    if (n_experts <= 0 || n_experts >= MAX31 || n_slots <= 0 || n_slots >= MAX31 || n_tokens <= 0 ||
        n_tokens >= MAX31 || n_threads < 1 || (x_slots != 1 && x_slots != n_slots) ||
        n_tokens > (MAX31 - 1) / n_slots)
        return 0;
    const int64_t n_pairs = n_tokens * n_slots;
    s->ld_tmp = AMXQ_ROUND_UP(n, 16);
    int64_t ch = MOE_TMP_BYTES / (s->ld_tmp * 4) / 32 * 32;
    ch = ch < MOE_MIN_ROWS ? MOE_MIN_ROWS : ch > MOE_MAX_ROWS ? MOE_MAX_ROWS : ch;
    s->chunk = ch < n_pairs ? ch : n_pairs; /* decode: a block of a few rows, not 256 */
    s->src = amxq_qx_size(type, n_tokens * x_slots, k);
    const size_t gather = amxq_qx_size(type, s->chunk, k);
    if (s->src == 0 || gather == 0)
        return 0;
    const int64_t max_used = n_experts < n_pairs ? n_experts : n_pairs;
    s->counts = round64((size_t)n_experts * sizeof(int32_t));
    s->order = round64((size_t)n_pairs * sizeof(int32_t));
    s->used = round64((size_t)max_used * sizeof(moe_used));
    size_t tmp = 0;
    if (__builtin_mul_overflow((size_t)s->chunk, (size_t)s->ld_tmp * 4, &tmp))
        return 0;
    s->scratch = round64(tmp);
    if (s->counts == 0 || s->order == 0 || s->used == 0 || s->scratch == 0 ||
        !add_sz(&s->scratch, gather))
        return 0;
    size_t acc = 0;
    s->off_src = acc;
    s->off_counts = s->src;
    acc = s->src;
    if (!add_sz(&acc, s->counts))
        return 0;
    s->off_order = acc;
    if (!add_sz(&acc, s->order))
        return 0;
    s->off_used = acc;
    if (!add_sz(&acc, s->used))
        return 0;
    s->off_scratch = acc;
    size_t all_scratch;
    if (__builtin_mul_overflow(s->scratch, (size_t)n_threads, &all_scratch) ||
        !add_sz(&acc, all_scratch))
        return 0;
    s->total = acc;
    return 1;
}

size_t amxq_matmul_id_workspace_size(amxq_type type, int64_t n, int64_t k, int64_t n_experts,
                                     int64_t x_slots, int64_t n_slots, int64_t n_tokens,
                                     int n_threads)
{
    moe_sizes s;
    return moe_sizes_of(type, n, k, n_experts, x_slots, n_slots, n_tokens, n_threads, &s) ? s.total
                                                                                          : 0;
}

/* ---- Checks -----------------------------------------------------------------------------------
 */

/* Whether two rows (t, s) != (t', s') of N floats at offsets t*a + s*b (t < nt, s < ns) can share
 * an element, given a >= n when nt > 1 and b >= n when ns > 1 and every offset fits in int64.
 * Same slot, other token: |dt*a| >= a >= n. Otherwise, for each ds != 0 the dt that brings
 * dt*a + ds*b closest to 0 is one of the two around -ds*b/a. O(min(nt, ns)) with the loop on
 * the smaller dimension. */
static int rows_collide(int64_t nt, int64_t a, int64_t ns, int64_t b, int64_t n)
{
    if (nt > ns) { /* symmetric: loop over the smaller count */
        int64_t t = nt;
        nt = ns;
        ns = t;
        t = a;
        a = b;
        b = t;
    }
    /* now loop over dt in 1..nt-1 (the dt = 0 case is covered by b >= n) */
    for (int64_t dt = 1; dt < nt; dt++) {
        const int64_t v = dt * a; /* >= a >= n; b >= n too, since ns >= nt > 1 */
        const int64_t q = v / b;
        for (int64_t ds = q; ds <= q + 1; ds++) {
            if (ds >= ns)
                continue;
            const int64_t d = v - ds * b; /* dt*a - ds*b: the pair (dt, -ds) */
            if ((d < 0 ? -d : d) < n)
                return 1;
        }
    }
    return 0;
}

/* Offsets of a lattice of rows: (n1-1)*l1 + (n2-1)*l2 + row, in floats, as bytes; 0 on overflow.
 * Strides of a dimension with one element are not used (taken as 0). */
static size_t lattice_bytes(int64_t n1, int64_t l1, int64_t n2, int64_t l2, int64_t row,
                            size_t elem)
{
    uint64_t a = 0, b = 0, t;
    if (n1 > 1 && __builtin_mul_overflow((uint64_t)(n1 - 1), (uint64_t)l1, &a))
        return 0;
    if (n2 > 1 && __builtin_mul_overflow((uint64_t)(n2 - 1), (uint64_t)l2, &b))
        return 0;
    if (__builtin_add_overflow(a, b, &t) || __builtin_add_overflow(t, (uint64_t)row, &t) ||
        t > (uint64_t)(INT64_MAX / 8) || t > SIZE_MAX / elem)
        return 0;
    return (size_t)t * elem;
}

/* The experts array, O(n_experts): the first non-NULL expert fixes type, N and K; the others
 * must carry the same header, which the library recomputes from (type, N, K) on validation
 * (docs/design.md §4), so equal bytes mean valid and the same weight shape. */
static amxq_status moe_check_experts(const void *const *experts, int64_t n_experts, amxq_layout *lo)
{
    const void *first = NULL;
    for (int64_t e = 0; e < n_experts && first == NULL; e++)
        first = experts[e];
    AMXQ_CHECK(first != NULL, AMXQ_ERR_NULL); /* every id would name a NULL expert */
    AMXQ_CHECK(amxq_is_aligned(first), AMXQ_ERR_ALIGNMENT);
    AMXQ_TRY(amxq_layout_read(lo, first, SIZE_MAX));
    for (int64_t e = 0; e < n_experts; e++) {
        const void *w = experts[e];
        if (w == NULL)
            continue; /* allowed as long as no id names it (moe_check_ids) */
        AMXQ_CHECK(amxq_is_aligned(w), AMXQ_ERR_ALIGNMENT);
        AMXQ_CHECK(w == first || memcmp(w, first, AMXQ_HEADER_BYTES) == 0, AMXQ_ERR_BAD_PACKED);
    }
    return AMXQ_OK;
}

/* C (c_bytes from c) apart from the ids, the experts array and every expert buffer. */
static amxq_status moe_check_c_apart(const float *c, size_t c_bytes, const int32_t *ids,
                                     size_t ids_bytes, const void *const *experts,
                                     int64_t n_experts, size_t expert_bytes)
{
    AMXQ_CHECK(!amxq_overlaps(c, c_bytes, ids, ids_bytes), AMXQ_ERR_OVERLAP);
    AMXQ_CHECK(!amxq_overlaps(c, c_bytes, experts, (size_t)n_experts * sizeof(void *)),
               AMXQ_ERR_OVERLAP);
    for (int64_t e = 0; e < n_experts; e++)
        AMXQ_CHECK(!amxq_overlaps(c, c_bytes, experts[e], expert_bytes), AMXQ_ERR_OVERLAP);
    return AMXQ_OK;
}

/* The routing, O(n_tokens * n_slots): every id in range and naming a non-NULL expert. */
static amxq_status moe_check_ids(const int32_t *ids, int64_t ld_ids, int64_t n_tokens,
                                 int64_t n_slots, const void *const *experts, int64_t n_experts)
{
    for (int64_t t = 0; t < n_tokens; t++) {
        const int32_t *row = ids + t * (n_tokens > 1 ? ld_ids : 0);
        for (int64_t s = 0; s < n_slots; s++) {
            const int32_t e = row[s];
            AMXQ_CHECK(e >= 0 && e < n_experts, AMXQ_ERR_ARG);
            AMXQ_CHECK(experts[e] != NULL, AMXQ_ERR_NULL);
        }
    }
    return AMXQ_OK;
}

typedef struct moe_args {
    const void *const *experts;
    int64_t n_experts;
    const float *x;
    int64_t x_slots, ldx_slot, ldx_token;
    const int32_t *ids;
    int64_t n_slots, ld_ids, n_tokens;
    float *c;
    int64_t ldc_slot, ldc_token;
    const amxq_matmul_params *params;
} moe_args;

/* What the checks establish. */
typedef struct moe_checked {
    amxq_layout lo;
    amxq_isa isa; /* params' isa (AUTO or forced), validated */
    unsigned flags;
    size_t x_bytes, c_bytes, ids_bytes;
} moe_checked;

/*
 * Every check, before anything is written. Costs: O(1) for the params, shapes and strides;
 * O(n_experts) for the expert array (each non-NULL buffer: alignment, a 128-byte compare with the
 * first one's validated header, overlap with C and the workspace); O(n_tokens * n_slots) for the
 * ids (range, NULL expert chosen); O(min(n_tokens, n_slots)) for rows of C overlapping each other.
 */
static amxq_status moe_check(const moe_args *a, moe_checked *ck)
{
    static const amxq_matmul_params defaults = {AMXQ_ISA_AUTO, 0, NULL, 0};
    const amxq_matmul_params *pp = a->params ? a->params : &defaults;
    AMXQ_CHECK((int)pp->isa >= 0 && (int)pp->isa < AMXQ_ISA_COUNT, AMXQ_ERR_ISA_UNKNOWN);
    AMXQ_CHECK((pp->flags & ~AMXQ_KEEP_TILES) == 0, AMXQ_ERR_ARG);
    AMXQ_CHECK(a->experts != NULL && a->x != NULL && a->ids != NULL && a->c != NULL, AMXQ_ERR_NULL);
    AMXQ_CHECK(a->n_experts > 0 && a->n_experts < MAX31, AMXQ_ERR_SHAPE);
    AMXQ_CHECK(a->n_slots > 0 && a->n_slots < MAX31, AMXQ_ERR_SHAPE);
    AMXQ_CHECK(a->n_tokens > 0 && a->n_tokens < MAX31, AMXQ_ERR_SHAPE);
    AMXQ_CHECK(a->n_tokens <= (MAX31 - 1) / a->n_slots, AMXQ_ERR_SHAPE);
    AMXQ_CHECK(a->x_slots == 1 || a->x_slots == a->n_slots, AMXQ_ERR_ARG);

    AMXQ_TRY(moe_check_experts(a->experts, a->n_experts, &ck->lo));
    const int64_t n = ck->lo.n, k = ck->lo.k;

    /* Strides: only those of a dimension with more than one element are used and checked. */
    AMXQ_CHECK(a->n_tokens == 1 || a->ldx_token >= k, AMXQ_ERR_STRIDE);
    AMXQ_CHECK(a->x_slots == 1 || a->ldx_slot >= k, AMXQ_ERR_STRIDE);
    AMXQ_CHECK(a->n_tokens == 1 || a->ld_ids >= a->n_slots, AMXQ_ERR_STRIDE);
    AMXQ_CHECK(a->n_slots == 1 || a->ldc_slot >= n, AMXQ_ERR_STRIDE);
    AMXQ_CHECK(a->n_tokens == 1 || a->ldc_token >= n, AMXQ_ERR_STRIDE);
    ck->x_bytes = lattice_bytes(a->n_tokens, a->ldx_token, a->x_slots, a->ldx_slot, k, 4);
    ck->c_bytes = lattice_bytes(a->n_tokens, a->ldc_token, a->n_slots, a->ldc_slot, n, 4);
    ck->ids_bytes = lattice_bytes(a->n_tokens, a->ld_ids, 1, 0, a->n_slots, 4);
    AMXQ_CHECK(ck->x_bytes != 0 && ck->c_bytes != 0 && ck->ids_bytes != 0, AMXQ_ERR_STRIDE);

    /* Outputs: rows of C must not share elements, nor C any input. */
    AMXQ_CHECK(!rows_collide(a->n_tokens, a->n_tokens > 1 ? a->ldc_token : n, a->n_slots,
                             a->n_slots > 1 ? a->ldc_slot : n, n),
               AMXQ_ERR_OVERLAP);
    AMXQ_CHECK(!amxq_overlaps(a->c, ck->c_bytes, a->x, ck->x_bytes), AMXQ_ERR_OVERLAP);
    AMXQ_TRY(moe_check_c_apart(a->c, ck->c_bytes, a->ids, ck->ids_bytes, a->experts, a->n_experts,
                               ck->lo.total_bytes));
    AMXQ_TRY(moe_check_ids(a->ids, a->ld_ids, a->n_tokens, a->n_slots, a->experts, a->n_experts));

    /* The ISA: a forced family must run here; AUTO must have a usable process-wide choice. Per
     * expert it resolves later, for the expert's row count, and cannot fail then. */
    amxq_isa probe;
    AMXQ_TRY(amxq_resolve_isa(pp->isa, ck->lo.type, 1, &probe));
    AMXQ_CHECK(amxq_kernels_get(probe, NULL) != NULL, AMXQ_ERR_ISA_UNSUPPORTED);
    ck->isa = pp->isa;
    ck->flags = pp->flags;
    return AMXQ_OK;
}

/* A caller workspace: big enough, aligned, and apart from every input and from C. */
static amxq_status moe_check_ws(const moe_args *a, const moe_checked *ck, const void *ws,
                                size_t ws_size, size_t need)
{
    AMXQ_CHECK(ws_size >= need, AMXQ_ERR_BUFFER_SIZE);
    AMXQ_CHECK(amxq_is_aligned(ws), AMXQ_ERR_ALIGNMENT);
    AMXQ_CHECK(!amxq_overlaps(ws, need, a->x, ck->x_bytes) &&
                   !amxq_overlaps(ws, need, a->c, ck->c_bytes) &&
                   !amxq_overlaps(ws, need, a->ids, ck->ids_bytes) &&
                   !amxq_overlaps(ws, need, a->experts, (size_t)a->n_experts * sizeof(void *)),
               AMXQ_ERR_OVERLAP);
    for (int64_t e = 0; e < a->n_experts; e++)
        AMXQ_CHECK(!amxq_overlaps(ws, need, a->experts[e], ck->lo.total_bytes), AMXQ_ERR_OVERLAP);
    return AMXQ_OK;
}

/* ---- Set-up: grouping, per-expert ISA ------------------------------------------------------- */

/* Group the (token, slot) pairs by expert with a counting sort: order[] receives the pair indices
 * t * n_slots + s, expert by expert in index order and in pair order within an expert; used[] one
 * entry per expert some id names, with its family resolved from `isa` for its row count (cannot
 * fail once the checks passed: resolving another M only changes the family). Returns the number
 * of used experts. Deterministic: a function of the ids alone. */
static int64_t moe_group(const int32_t *ids, int64_t ld_ids, int64_t n_tokens, int64_t n_slots,
                         int64_t n_experts, amxq_isa isa, amxq_type type, int32_t *counts,
                         int32_t *order, moe_used *used)
{
    if (n_tokens == 1)
        ld_ids = 0;
    memset(counts, 0, (size_t)n_experts * sizeof(int32_t));
    for (int64_t t = 0; t < n_tokens; t++)
        for (int64_t s = 0; s < n_slots; s++)
            counts[ids[t * ld_ids + s]]++;
    /* Used experts in index order; counts become each one's write cursor. */
    int64_t n_used = 0, off = 0;
    for (int64_t e = 0; e < n_experts; e++) {
        if (counts[e] == 0)
            continue;
        amxq_isa fam = AMXQ_ISA_SCALAR;
        amxq_resolve_isa(isa, type, counts[e], &fam);
        used[n_used++] = (moe_used){(int32_t)e, (int32_t)fam, off, counts[e]};
        const int64_t c = counts[e];
        counts[e] = (int32_t)off;
        off += c;
    }
    for (int64_t t = 0; t < n_tokens; t++)
        for (int64_t s = 0; s < n_slots; s++)
            order[counts[ids[t * ld_ids + s]]++] = (int32_t)(t * n_slots + s);
    return n_used;
}

/* Group the pairs into the workspace and fill the job. Cannot fail after moe_check. */
static void moe_setup(const moe_args *a, const moe_checked *ck, const moe_sizes *sz, void *ws,
                      moe_job *job)
{
    uint8_t *base = (uint8_t *)ws;
    int32_t *counts = (int32_t *)(void *)(base + sz->off_counts);
    int32_t *order = (int32_t *)(void *)(base + sz->off_order);
    moe_used *used = (moe_used *)(void *)(base + sz->off_used);
    const int64_t n_used = moe_group(a->ids, a->ld_ids, a->n_tokens, a->n_slots, a->n_experts,
                                     ck->isa, ck->lo.type, counts, order, used);

    job->lo = ck->lo;
    job->experts = a->experts;
    job->x = a->x;
    job->x_slots = a->x_slots;
    job->ldx_slot = a->x_slots > 1 ? a->ldx_slot : 0;
    job->ldx_token = a->n_tokens > 1 ? a->ldx_token : 0;
    job->n_slots = a->n_slots;
    job->n_tokens = a->n_tokens;
    job->c = a->c;
    job->ldc_slot = a->n_slots > 1 ? a->ldc_slot : 0;
    job->ldc_token = a->n_tokens > 1 ? a->ldc_token : 0;
    job->flags = ck->flags;
    amxq_isa qisa = AMXQ_ISA_SCALAR;
    amxq_resolve_isa(ck->isa, ck->lo.type, a->n_tokens * a->x_slots, &qisa);
    job->qtab = amxq_kernels_get(qisa, NULL);
    job->used = used;
    job->n_used = n_used;
    job->n_pairs = a->n_tokens * a->n_slots;
    job->order = order;
    job->chunk = sz->chunk;
    job->ld_tmp = sz->ld_tmp;
    job->off_src = sz->off_src;
    job->off_scratch = sz->off_scratch;
    job->scratch_bytes = sz->scratch;
}

/* Whether every used expert's table exists (it was resolved to a family that builds; checked so
 * that a table failing its self-test between check and run is reported, not dereferenced). */
static amxq_status moe_tables_ok(const moe_job *job)
{
    AMXQ_CHECK(job->qtab != NULL, AMXQ_ERR_ISA_UNSUPPORTED);
    for (int64_t u = 0; u < job->n_used; u++)
        AMXQ_CHECK(amxq_kernels_get((amxq_isa)job->used[u].isa, NULL) != NULL,
                   AMXQ_ERR_ISA_UNSUPPORTED);
    return AMXQ_OK;
}

/* ---- Work ---------------------------------------------------------------------------------------
 */

/* The source rows' view for token t: x_slots rows starting at row t * x_slots. */
static amxq_qx qx_rows(const amxq_qx *q, int64_t r0, int64_t rows)
{
    amxq_qx v = *q;
    v.m = rows;
    v.qs += r0 * q->ld_qs;
    v.d += r0 * q->ld_d;
    if (v.s)
        v.s += r0 * q->ld_d;
    v.sums += r0 * q->ld_sums;
    return v;
}

/* Thread ith of nth quantizes its share of the tokens' distinct rows. */
static void moe_quantize(const moe_job *job, void *ws, int ith, int nth)
{
    int64_t t0, t1;
    amxq_slice_rows(job->n_tokens, ith, nth, &t0, &t1);
    if (t0 >= t1)
        return;
    amxq_qx src;
    amxq_qx_layout(&src, job->lo.type, job->n_tokens * job->x_slots, job->lo.k,
                   (uint8_t *)ws + job->off_src);
    amxq_quantize_fn *q = job->qtab->t[job->lo.ti].quantize;
    if (job->x_slots == 1 || job->ldx_token == job->x_slots * job->ldx_slot) {
        /* One stride over all the rows: one call. */
        const int64_t ld = job->x_slots == 1 ? job->ldx_token : job->ldx_slot;
        q(job->x, ld > 0 ? ld : job->lo.k, t0 * job->x_slots, t1 * job->x_slots, &src);
        return;
    }
    for (int64_t t = t0; t < t1; t++) {
        const amxq_qx v = qx_rows(&src, t * job->x_slots, job->x_slots);
        q(job->x + t * job->ldx_token, job->ldx_slot, 0, job->x_slots, &v);
    }
}

/* Rows [m0, m1) of used expert u, panels [p0, p1): gathered a chunk at a time, multiplied, and
 * scattered. Returns the bit of the table that ran. */
static unsigned moe_rect(const moe_job *job, const amxq_qx *src, uint8_t *scratch, int64_t u,
                         int64_t m0, int64_t m1, int64_t p0, int64_t p1)
{
    const moe_used *ue = &job->used[u];
    const struct amxq_kernels *t = amxq_kernels_get((amxq_isa)ue->isa, NULL);
    amxq_gemm_fn *gemm = t->t[job->lo.ti].gemm;
    const void *w = job->experts[ue->e];
    float *tmp = (float *)(void *)scratch;
    amxq_qx g;
    amxq_qx_layout(&g, job->lo.type, job->chunk, job->lo.k,
                   scratch + round64((size_t)job->chunk * (size_t)job->ld_tmp * 4));
    const int64_t n0 = p0 * AMXQ_PANEL_N;
    const int64_t n1 = p1 * AMXQ_PANEL_N < job->lo.n ? p1 * AMXQ_PANEL_N : job->lo.n;
    const size_t d_bytes = (size_t)src->ld_d * 4, sums_bytes = (size_t)src->ld_sums * 2;
    for (int64_t r0 = m0; r0 < m1; r0 += job->chunk) {
        const int64_t rows = m1 - r0 < job->chunk ? m1 - r0 : job->chunk;
        const int32_t *pairs = job->order + ue->off + r0;
        for (int64_t i = 0; i < rows; i++) {
            const int64_t tk = pairs[i] / job->n_slots, sl = pairs[i] % job->n_slots;
            const int64_t sr = tk * job->x_slots + sl % job->x_slots;
            memcpy(g.qs + i * g.ld_qs, src->qs + sr * src->ld_qs, (size_t)src->ld_qs);
            memcpy(g.d + i * g.ld_d, src->d + sr * src->ld_d, d_bytes);
            if (g.s)
                memcpy(g.s + i * g.ld_d, src->s + sr * src->ld_d, d_bytes);
            memcpy(g.sums + i * g.ld_sums, src->sums + sr * src->ld_sums, sums_bytes);
        }
        g.m = rows;
        gemm(&job->lo, w, &g, 0, rows, p0, p1, tmp, job->ld_tmp);
        for (int64_t i = 0; i < rows; i++) {
            const int64_t tk = pairs[i] / job->n_slots, sl = pairs[i] % job->n_slots;
            memcpy(job->c + tk * job->ldc_token + sl * job->ldc_slot + n0,
                   tmp + i * job->ld_tmp + n0, (size_t)(n1 - n0) * 4);
        }
    }
    return 1u << ue->isa;
}

/* floor(total * i / nth) without overflow (total < 2^62). */
static int64_t cut(int64_t total, int i, int nth)
{
    const int64_t q = total / nth, r = total % nth;
    return q * i + r * i / nth;
}

/* A position in the grid of (used expert, panel, row) cells. */
typedef struct moe_pos {
    int64_t u, p, r;
} moe_pos;

/* The i-th of nth cuts: cell floor(total * i / nth), its row moved to the nearest multiple of
 * AMXQ_SLICE_ROWS (or the panel's end), normalised so that the end of an expert is the start of
 * the next. Monotone in i, so the runs partition the grid. */
static moe_pos moe_cut(const moe_job *job, int i, int nth)
{
    const int64_t np = job->lo.n_panels;
    const int64_t b = cut(job->n_pairs * np, i, nth);
    moe_pos p = {job->n_used, 0, 0};
    if (b >= job->n_pairs * np)
        return p;
    int64_t lo = 0, hi = job->n_used - 1; /* the used expert holding cell b */
    while (lo < hi) {
        const int64_t mid = (lo + hi + 1) / 2;
        if (job->used[mid].off * np <= b)
            lo = mid;
        else
            hi = mid - 1;
    }
    const int64_t cnt = job->used[lo].cnt, local = b - job->used[lo].off * np;
    p.u = lo;
    p.p = local / cnt;
    p.r = (local % cnt + AMXQ_SLICE_ROWS / 2) / AMXQ_SLICE_ROWS * AMXQ_SLICE_ROWS;
    if (p.r >= cnt) {
        p.p++;
        p.r = 0;
    }
    if (p.p >= np) {
        p.u++;
        p.p = 0;
    }
    return p;
}

/* Thread ith of nth: its run of the grid, rectangle by rectangle. Returns the tables it ran. */
static unsigned moe_compute(const moe_job *job, void *ws, int ith, int nth)
{
    const moe_pos a = moe_cut(job, ith, nth), b = moe_cut(job, ith + 1, nth);
    const int64_t np = job->lo.n_panels;
    amxq_qx src;
    amxq_qx_layout(&src, job->lo.type, job->n_tokens * job->x_slots, job->lo.k,
                   (uint8_t *)ws + job->off_src);
    uint8_t *scratch = (uint8_t *)ws + job->off_scratch + (size_t)ith * job->scratch_bytes;
    unsigned ran = 0;
    for (int64_t u = a.u; u <= b.u && u < job->n_used; u++) {
        const int64_t cnt = job->used[u].cnt;
        int64_t ps = 0, rs = 0, pe = np, re = 0;
        if (u == a.u) {
            ps = a.p;
            rs = a.r;
        }
        if (u == b.u) {
            pe = b.p;
            re = b.r;
        }
        if (ps * cnt + rs >= pe * cnt + re)
            continue;
        if (ps == pe) {
            ran |= moe_rect(job, &src, scratch, u, rs, re, ps, ps + 1);
            continue;
        }
        if (rs > 0) {
            ran |= moe_rect(job, &src, scratch, u, rs, cnt, ps, ps + 1);
            ps++;
        }
        if (pe > ps)
            ran |= moe_rect(job, &src, scratch, u, 0, cnt, ps, pe);
        if (re > 0)
            ran |= moe_rect(job, &src, scratch, u, 0, re, pe, pe + 1);
    }
    return ran;
}

/* Release the tile state of the tables in `ran` unless asked to keep it; returns what was kept. */
static unsigned moe_tiles(const moe_job *job, unsigned ran)
{
    unsigned kept = 0;
    for (int isa = 0; isa < AMXQ_ISA_COUNT; isa++) {
        if (!(ran & (1u << isa)))
            continue;
        const struct amxq_kernels *t = amxq_kernels_get((amxq_isa)isa, NULL);
        if (t == NULL || t->tile_release == NULL)
            continue;
        if (job->flags & AMXQ_KEEP_TILES)
            kept |= 1u << isa;
        else
            t->tile_release();
    }
    return kept;
}

/* The whole of one thread's part: quantize, meet, compute, tiles. */
static unsigned moe_thread(void *arg, void *ws, amxq_ctx *ctx, int ith, int nth)
{
    const moe_job *job = (const moe_job *)arg;
    moe_quantize(job, ws, ith, nth);
    if (ctx != NULL)
        amxq_ctx_job_sync(ctx, nth); /* every distinct row is quantized */
    return moe_tiles(job, moe_compute(job, ws, ith, nth));
}

/* ---- Entry points ------------------------------------------------------------------------------
 */

amxq_status amxq_matmul_id(const void *const *experts, int64_t n_experts, const float *x,
                           int64_t x_slots, int64_t ldx_slot, int64_t ldx_token, const int32_t *ids,
                           int64_t n_slots, int64_t ld_ids, int64_t n_tokens, float *c,
                           int64_t ldc_slot, int64_t ldc_token, const amxq_matmul_params *params)
{
    const moe_args a = {experts, n_experts, x,        x_slots, ldx_slot, ldx_token, ids,
                        n_slots, ld_ids,    n_tokens, c,       ldc_slot, ldc_token, params};
    moe_checked ck;
    AMXQ_TRY(moe_check(&a, &ck));
    moe_sizes sz;
    AMXQ_CHECK(
        moe_sizes_of(ck.lo.type, ck.lo.n, ck.lo.k, n_experts, x_slots, n_slots, n_tokens, 1, &sz),
        AMXQ_ERR_SHAPE);
    void *const given = params ? params->workspace : NULL;
    if (given != NULL)
        AMXQ_TRY(moe_check_ws(&a, &ck, given, params->workspace_size, sz.total));
    void *ws = given;
    if (ws == NULL) {
        ws = amxq_alloc_aligned(sz.total, AMXQ_ALIGNMENT);
        AMXQ_CHECK(ws != NULL, AMXQ_ERR_NOMEM);
    }
    moe_job job;
    moe_setup(&a, &ck, &sz, ws, &job);
    amxq_status st = moe_tables_ok(&job);
    if (st == AMXQ_OK)
        moe_thread(&job, ws, NULL, 0, 1);
    if (ws != given)
        amxq_free_aligned(ws);
    return st;
}

/* State of one context product between the checks and the pool. */
typedef struct moe_ctx_job {
    const moe_args *a;
    const moe_checked *ck;
    const moe_sizes *sz;
    moe_job job;
    amxq_status st;
} moe_ctx_job;

/* The context's job. The workspace exists only inside the job (it may be the context's own), so
 * thread 0 groups the pairs into it while the others wait, then all quantize, meet, compute. */
static unsigned moe_ctx_thread(void *arg, void *ws, amxq_ctx *ctx, int ith, int nth)
{
    moe_ctx_job *cj = (moe_ctx_job *)arg;
    if (ith == 0) {
        moe_setup(cj->a, cj->ck, cj->sz, ws, &cj->job);
        cj->st = moe_tables_ok(&cj->job);
    }
    amxq_ctx_job_sync(ctx, nth); /* the job is set up */
    if (cj->st != AMXQ_OK)
        return 0;
    return moe_thread(&cj->job, ws, ctx, ith, nth);
}

amxq_status amxq_ctx_matmul_id(amxq_ctx *ctx, const void *const *experts, int64_t n_experts,
                               const float *x, int64_t x_slots, int64_t ldx_slot, int64_t ldx_token,
                               const int32_t *ids, int64_t n_slots, int64_t ld_ids,
                               int64_t n_tokens, float *c, int64_t ldc_slot, int64_t ldc_token,
                               const amxq_matmul_params *params)
{
    AMXQ_CHECK(ctx != NULL, AMXQ_ERR_NULL);
    const moe_args a = {experts, n_experts, x,        x_slots, ldx_slot, ldx_token, ids,
                        n_slots, ld_ids,    n_tokens, c,       ldc_slot, ldc_token, params};
    moe_checked ck;
    AMXQ_TRY(moe_check(&a, &ck));
    const int nth = amxq_ctx_threads(ctx);
    moe_sizes sz;
    AMXQ_CHECK(
        moe_sizes_of(ck.lo.type, ck.lo.n, ck.lo.k, n_experts, x_slots, n_slots, n_tokens, nth, &sz),
        AMXQ_ERR_SHAPE);
    void *const given = params ? params->workspace : NULL;
    if (given != NULL)
        AMXQ_TRY(moe_check_ws(&a, &ck, given, params->workspace_size, sz.total));
    /* Small products run on the caller alone, as amxq_ctx_matmul's do (same bits). */
    const uint64_t macs = (uint64_t)(n_tokens * n_slots) * (uint64_t)ck.lo.n * (uint64_t)ck.lo.k;
    moe_ctx_job cj;
    memset(&cj, 0, sizeof cj);
    cj.a = &a;
    cj.ck = &ck;
    cj.sz = &sz;
    AMXQ_TRY(
        amxq_ctx_job_run(ctx, sz.total, given, macs < AMXQ_CTX_SMALL_MACS, moe_ctx_thread, &cj));
    return cj.st;
}

/* ---- The slice API for an engine's threads ------------------------------------------------------
 *
 * amxq_matmul_id_plan / amxq_quantize_id_slice / the engine's barrier / amxq_matmul_id_slice
 * (include/amxq.h, docs/design.md §8). The workspace holds the quantized distinct rows, shared,
 * then one block per thread of the compute step: its own copy of the grouping and its gather
 * block and temporary C. Each compute slice groups the pairs itself from the ids (the same
 * counting sort as above, a function of the ids alone, O(n_tokens * n_slots + n_experts), what
 * the checks cost anyway), so the one barrier needs to publish only the quantized rows, and no
 * address written by a slice ever comes from the shared workspace: a workspace that was not
 * quantized gives wrong numbers, never a write outside C. The cut of the grid is moe_cut()'s,
 * so every element has the bits of amxq_matmul_id() whatever nth. */

/* Threads a plan may name; amxq_ctx_create()'s limit. */
#define MOE_MAX_THREADS 4096

/* The slice workspace: the shared rows, then n_threads blocks of `per` bytes, each [scratch of
 * moe_rect][counts][order][used]. 0 if impossible. */
static int moe_slice_sizes(amxq_type type, int64_t n, int64_t k, int64_t n_experts, int64_t x_slots,
                           int64_t n_slots, int64_t n_tokens, int n_threads, moe_sizes *s,
                           size_t *per, size_t *total)
{
    if (n_threads < 1 || n_threads > MOE_MAX_THREADS ||
        !moe_sizes_of(type, n, k, n_experts, x_slots, n_slots, n_tokens, 1, s))
        return 0;
    size_t p = s->scratch, all;
    if (!add_sz(&p, s->counts) || !add_sz(&p, s->order) || !add_sz(&p, s->used) ||
        __builtin_mul_overflow(p, (size_t)n_threads, &all))
        return 0;
    size_t t = s->src;
    if (!add_sz(&t, all))
        return 0;
    *per = p;
    *total = t;
    return 1;
}

amxq_status amxq_matmul_id_plan(amxq_type type, int64_t n, int64_t k, int64_t n_experts,
                                int64_t x_slots, int64_t n_slots, int64_t n_tokens, int n_threads,
                                const amxq_matmul_params *params, amxq_id_plan *plan)
{
    static const amxq_matmul_params defaults = {AMXQ_ISA_AUTO, 0, NULL, 0};
    const amxq_matmul_params *pp = params ? params : &defaults;
    AMXQ_CHECK((int)pp->isa >= 0 && (int)pp->isa < AMXQ_ISA_COUNT, AMXQ_ERR_ISA_UNKNOWN);
    AMXQ_CHECK((pp->flags & ~AMXQ_KEEP_TILES) == 0, AMXQ_ERR_ARG);
    AMXQ_CHECK(plan != NULL, AMXQ_ERR_NULL);
    amxq_layout lo;
    AMXQ_TRY(amxq_layout_init(&lo, type, n, k));
    AMXQ_CHECK(n_experts > 0 && n_experts < MAX31, AMXQ_ERR_SHAPE);
    AMXQ_CHECK(n_slots > 0 && n_slots < MAX31, AMXQ_ERR_SHAPE);
    AMXQ_CHECK(n_tokens > 0 && n_tokens < MAX31, AMXQ_ERR_SHAPE);
    AMXQ_CHECK(n_tokens <= (MAX31 - 1) / n_slots, AMXQ_ERR_SHAPE);
    AMXQ_CHECK(x_slots == 1 || x_slots == n_slots, AMXQ_ERR_ARG);
    AMXQ_CHECK(n_threads >= 1 && n_threads <= MOE_MAX_THREADS, AMXQ_ERR_ARG);
    moe_sizes sz;
    size_t per, total;
    AMXQ_CHECK(moe_slice_sizes(type, n, k, n_experts, x_slots, n_slots, n_tokens, n_threads, &sz,
                               &per, &total),
               AMXQ_ERR_SHAPE);
    amxq_isa probe;
    AMXQ_TRY(amxq_resolve_isa(pp->isa, type, 1, &probe));
    AMXQ_CHECK(amxq_kernels_get(probe, NULL) != NULL, AMXQ_ERR_ISA_UNSUPPORTED);
    plan->type = type;
    plan->n = n;
    plan->k = k;
    plan->n_experts = n_experts;
    plan->x_slots = x_slots;
    plan->n_slots = n_slots;
    plan->n_tokens = n_tokens;
    plan->n_threads = n_threads;
    plan->isa = pp->isa;
    plan->flags = pp->flags;
    plan->workspace_size = total;
    return AMXQ_OK;
}

/* A plan as amxq_matmul_id_plan() writes it: its layout and workspace pieces. */
static amxq_status moe_check_plan(const amxq_id_plan *plan, int ith, int nth, amxq_layout *lo,
                                  moe_sizes *sz, size_t *per)
{
    AMXQ_CHECK(nth >= 1 && ith >= 0 && ith < nth, AMXQ_ERR_ARG);
    AMXQ_CHECK(amxq_layout_init(lo, plan->type, plan->n, plan->k) == AMXQ_OK, AMXQ_ERR_ARG);
    size_t total;
    AMXQ_CHECK(moe_slice_sizes(plan->type, plan->n, plan->k, plan->n_experts, plan->x_slots,
                               plan->n_slots, plan->n_tokens, plan->n_threads, sz, per, &total) &&
                   total == plan->workspace_size,
               AMXQ_ERR_ARG);
    AMXQ_CHECK((plan->flags & ~AMXQ_KEEP_TILES) == 0, AMXQ_ERR_ARG);
    AMXQ_CHECK((int)plan->isa >= 0 && (int)plan->isa < AMXQ_ISA_COUNT, AMXQ_ERR_ARG);
    return AMXQ_OK;
}

amxq_status amxq_quantize_id_slice(const amxq_id_plan *plan, const float *x, int64_t ldx_slot,
                                   int64_t ldx_token, void *workspace, size_t workspace_size,
                                   int ith, int nth)
{
    AMXQ_CHECK(plan != NULL && x != NULL && workspace != NULL, AMXQ_ERR_NULL);
    amxq_layout lo;
    moe_sizes sz;
    size_t per;
    AMXQ_TRY(moe_check_plan(plan, ith, nth, &lo, &sz, &per));
    AMXQ_CHECK(plan->n_tokens == 1 || ldx_token >= plan->k, AMXQ_ERR_STRIDE);
    AMXQ_CHECK(plan->x_slots == 1 || ldx_slot >= plan->k, AMXQ_ERR_STRIDE);
    const size_t x_bytes =
        lattice_bytes(plan->n_tokens, ldx_token, plan->x_slots, ldx_slot, plan->k, 4);
    AMXQ_CHECK(x_bytes != 0, AMXQ_ERR_STRIDE);
    AMXQ_CHECK(workspace_size >= plan->workspace_size, AMXQ_ERR_BUFFER_SIZE);
    AMXQ_CHECK(amxq_is_aligned(workspace), AMXQ_ERR_ALIGNMENT);
    AMXQ_CHECK(!amxq_overlaps(workspace, plan->workspace_size, x, x_bytes), AMXQ_ERR_OVERLAP);
    /* Quantized bytes are the same for every family (the numeric contract); this one is the
     * family amxq_matmul_id() quantizes with. */
    amxq_isa qisa;
    AMXQ_TRY(amxq_resolve_isa(plan->isa, plan->type, plan->n_tokens * plan->x_slots, &qisa));
    amxq_status why = AMXQ_ERR_ISA_UNSUPPORTED;
    moe_job job;
    memset(&job, 0, sizeof job);
    job.qtab = amxq_kernels_get(qisa, &why);
    AMXQ_CHECK(job.qtab != NULL, why);
    job.lo = lo;
    job.x = x;
    job.x_slots = plan->x_slots;
    job.ldx_slot = plan->x_slots > 1 ? ldx_slot : 0;
    job.ldx_token = plan->n_tokens > 1 ? ldx_token : 0;
    job.n_slots = plan->n_slots;
    job.n_tokens = plan->n_tokens;
    job.off_src = sz.off_src;
    moe_quantize(&job, workspace, ith, nth);
    return AMXQ_OK;
}

amxq_status amxq_matmul_id_slice(const amxq_id_plan *plan, const void *const *experts,
                                 const int32_t *ids, int64_t ld_ids, void *workspace,
                                 size_t workspace_size, float *c, int64_t ldc_slot,
                                 int64_t ldc_token, int ith, int nth)
{
    AMXQ_CHECK(plan != NULL && experts != NULL && ids != NULL && workspace != NULL && c != NULL,
               AMXQ_ERR_NULL);
    amxq_layout plo;
    moe_sizes sz;
    size_t per;
    AMXQ_TRY(moe_check_plan(plan, ith, nth, &plo, &sz, &per));
    AMXQ_CHECK(nth <= plan->n_threads, AMXQ_ERR_ARG);
    const int64_t n_experts = plan->n_experts, n_slots = plan->n_slots;
    const int64_t n_tokens = plan->n_tokens, n = plan->n;

    amxq_layout lo;
    AMXQ_TRY(moe_check_experts(experts, n_experts, &lo));
    AMXQ_CHECK(lo.type == plan->type && lo.n == n && lo.k == plan->k, AMXQ_ERR_BAD_PACKED);

    AMXQ_CHECK(n_tokens == 1 || ld_ids >= n_slots, AMXQ_ERR_STRIDE);
    AMXQ_CHECK(n_slots == 1 || ldc_slot >= n, AMXQ_ERR_STRIDE);
    AMXQ_CHECK(n_tokens == 1 || ldc_token >= n, AMXQ_ERR_STRIDE);
    const size_t c_bytes = lattice_bytes(n_tokens, ldc_token, n_slots, ldc_slot, n, 4);
    const size_t ids_bytes = lattice_bytes(n_tokens, ld_ids, 1, 0, n_slots, 4);
    AMXQ_CHECK(c_bytes != 0 && ids_bytes != 0, AMXQ_ERR_STRIDE);

    AMXQ_CHECK(workspace_size >= plan->workspace_size, AMXQ_ERR_BUFFER_SIZE);
    AMXQ_CHECK(amxq_is_aligned(workspace), AMXQ_ERR_ALIGNMENT);

    AMXQ_CHECK(!rows_collide(n_tokens, n_tokens > 1 ? ldc_token : n, n_slots,
                             n_slots > 1 ? ldc_slot : n, n),
               AMXQ_ERR_OVERLAP);
    AMXQ_TRY(moe_check_c_apart(c, c_bytes, ids, ids_bytes, experts, n_experts, lo.total_bytes));
    /* The workspace is written (this thread's block): apart from C and every input. */
    const size_t wsz = plan->workspace_size;
    AMXQ_CHECK(!amxq_overlaps(workspace, wsz, c, c_bytes) &&
                   !amxq_overlaps(workspace, wsz, ids, ids_bytes) &&
                   !amxq_overlaps(workspace, wsz, experts, (size_t)n_experts * sizeof(void *)),
               AMXQ_ERR_OVERLAP);
    for (int64_t e = 0; e < n_experts; e++)
        AMXQ_CHECK(!amxq_overlaps(workspace, wsz, experts[e], lo.total_bytes), AMXQ_ERR_OVERLAP);
    AMXQ_TRY(moe_check_ids(ids, ld_ids, n_tokens, n_slots, experts, n_experts));

    amxq_isa probe;
    AMXQ_TRY(amxq_resolve_isa(plan->isa, plan->type, 1, &probe));
    AMXQ_CHECK(amxq_kernels_get(probe, NULL) != NULL, AMXQ_ERR_ISA_UNSUPPORTED);

    /* Every check passed: group into this thread's block, then compute its run of the grid. */
    uint8_t *block = (uint8_t *)workspace + sz.src + (size_t)ith * per;
    int32_t *counts = (int32_t *)(void *)(block + sz.scratch);
    int32_t *order = (int32_t *)(void *)(block + sz.scratch + sz.counts);
    moe_used *used = (moe_used *)(void *)(block + sz.scratch + sz.counts + sz.order);
    moe_job job;
    memset(&job, 0, sizeof job);
    job.n_used = moe_group(ids, ld_ids, n_tokens, n_slots, n_experts, plan->isa, plan->type, counts,
                           order, used);
    job.lo = lo;
    job.experts = experts;
    job.x_slots = plan->x_slots;
    job.n_slots = n_slots;
    job.n_tokens = n_tokens;
    job.c = c;
    job.ldc_slot = n_slots > 1 ? ldc_slot : 0;
    job.ldc_token = n_tokens > 1 ? ldc_token : 0;
    job.flags = plan->flags;
    job.qtab = amxq_kernels_get(probe, NULL); /* not used here; moe_tables_ok wants one */
    job.used = used;
    job.n_pairs = n_tokens * n_slots;
    job.order = order;
    job.chunk = sz.chunk;
    job.ld_tmp = sz.ld_tmp;
    job.off_src = sz.off_src;
    job.off_scratch = sz.src; /* moe_compute: thread ith's scratch at off_scratch + ith * per */
    job.scratch_bytes = per;
    AMXQ_TRY(moe_tables_ok(&job));
    moe_tiles(&job, moe_compute(&job, workspace, ith, nth));
    return AMXQ_OK;
}
