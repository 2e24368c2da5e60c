/*
 * The numeric contract's promise (docs/design.md §1, include/amxq.h "Numeric contract"): C[m][n]
 * depends only on row m of X and the packed weights. Every product here is computed once by the
 * scalar reference (amxq_matmul_ex, all rows) and then again through every kernel family this
 * machine can run (amxq_isa_check() says which; AUTO included), by a context of 1, 2 and 3
 * threads (amxq_ctx_matmul) and by the plain amxq_matmul_ex, each as
 *   - all M rows in one call,
 *   - every row alone (M = 1),
 *   - two uneven batches (the first third of the rows, then the rest),
 * and every result must have the reference's bits (a NaN matches any NaN; the data here gives
 * none). The products are every golden file of ggml's data (tests/data/ggml-golden; files of
 * weight types amxq does not pack are skipped and counted) and seeded random shapes of every
 * type, large enough that the contexts really split them over their threads.
 */
#define _POSIX_C_SOURCE 200809L

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "amxq.h"
#include "common/ggml_data.h"

#define MAX_THREADS 3

static amxq_ctx *g_ctx[MAX_THREADS + 1]; /* g_ctx[t]: t threads */
static long g_products, g_failures;

/* ---- Inputs --------------------------------------------------------------------------------- */

struct product {
    char name[96];
    amxq_type type;
    int64_t m, n, k, ldx, ldc;
    void *packed;
    const float *x; /* m rows, stride ldx */
};

static uint64_t g_rng = 0x696e7661726e63ull; /* "invarnc" */

static uint64_t rnd(void)
{
    uint64_t z = (g_rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double rnd_u(void) /* [-1, 1) */
{
    return (double)(rnd() >> 11) * (2.0 / 9007199254740992.0) - 1.0;
}

/* A normal half with exponent 2^(e - 15), e in [lo, hi], a random mantissa and the given sign. */
static void put_half(uint8_t *p, int lo, int hi, int negative)
{
    const unsigned e = (unsigned)(lo + (int)(rnd() % (uint64_t)(hi - lo + 1)));
    const unsigned h = (negative ? 0x8000u : 0u) | e << 10 | (unsigned)(rnd() & 1023u);
    p[0] = (uint8_t)h;
    p[1] = (uint8_t)(h >> 8);
}

/* N ggml rows of K weights of `type`: random quants, realistic scales (ggml's layouts,
 * docs/design.md §2). */
static uint8_t *make_ggml(amxq_type type, int64_t n, int64_t k)
{
    const size_t bytes = amxq_ggml_size(type, n, k);
    uint8_t *w = malloc(bytes);
    if (!w)
        return NULL;
    for (size_t i = 0; i < bytes; i++)
        w[i] = (uint8_t)rnd();
    const size_t bb = amxq_type_block_bytes(type);
    for (size_t b = 0; b < bytes / bb; b++) {
        uint8_t *blk = w + b * bb;
        put_half(blk + (type == AMXQ_TYPE_Q6_K ? 208 : 0), 4, 9, 0); /* d: 2^-11 .. 2^-6 */
        if (type == AMXQ_TYPE_Q4_1 || type == AMXQ_TYPE_Q5_1)
            put_half(blk + 2, 4, 9, 1); /* m: negative, as ggml's minima mostly are */
        if (type == AMXQ_TYPE_Q4_K || type == AMXQ_TYPE_Q5_K)
            put_half(blk + 2, 2, 7, 0); /* dmin */
    }
    return w;
}

/* M rows of K activations, stride ldx, uniform in [-1, 1) with a few outliers. */
static float *make_x(int64_t m, int64_t k, int64_t ldx)
{
    float *x = malloc(sizeof(float) * (size_t)(m * ldx));
    if (!x)
        return NULL;
    for (int64_t i = 0; i < m * ldx; i++)
        x[i] = (float)(rnd() % 97 == 0 ? 40.0 * rnd_u() : rnd_u());
    (void)k;
    return x;
}

/* ---- Checks --------------------------------------------------------------------------------- */

static int same_bits(float a, float b)
{
    return (isnan(a) && isnan(b)) || memcmp(&a, &b, sizeof a) == 0;
}

/* Compare C (m x n, stride ldc) with the reference (dense); report the first difference. */
static void compare(const struct product *p, const char *how, const float *c, const float *ref)
{
    g_products++;
    for (int64_t m = 0; m < p->m; m++)
        for (int64_t n = 0; n < p->n; n++) {
            const float v = c[m * p->ldc + n], r = ref[m * p->n + n];
            if (!same_bits(v, r)) {
                g_failures++;
                printf("  FAIL %s, %s: C[%lld][%lld] = %a, reference %a\n", p->name, how,
                       (long long)m, (long long)n, (double)v, (double)r);
                return;
            }
        }
}

/* One product of rows [r0, r1) into C's rows [r0, r1): plain call (ctx NULL) or a context's. */
static amxq_status run(const struct product *p, amxq_ctx *ctx, amxq_isa isa, int64_t r0, int64_t r1,
                       float *c)
{
    amxq_matmul_params prm;
    memset(&prm, 0, sizeof prm);
    prm.isa = isa;
    const float *x = p->x + r0 * p->ldx;
    float *cr = c + r0 * p->ldc;
    return ctx ? amxq_ctx_matmul(ctx, p->packed, x, r1 - r0, p->ldx, cr, p->ldc, &prm)
               : amxq_matmul_ex(p->packed, x, r1 - r0, p->ldx, cr, p->ldc, &prm);
}

static void check_product(const struct product *p)
{
    float *ref = malloc(sizeof(float) * (size_t)(p->m * p->n));
    float *c = malloc(sizeof(float) * (size_t)(p->m * p->ldc));
    if (!ref || !c) {
        printf("  FAIL %s: out of memory\n", p->name);
        g_failures++;
        free(ref);
        free(c);
        return;
    }
    /* the reference, dense */
    amxq_matmul_params prm;
    memset(&prm, 0, sizeof prm);
    prm.isa = AMXQ_ISA_SCALAR;
    amxq_status st = amxq_matmul_ex(p->packed, p->x, p->m, p->ldx, ref, p->n, &prm);
    if (st != AMXQ_OK) {
        printf("  FAIL %s: reference: %s\n", p->name, amxq_status_str(st));
        g_failures++;
        free(ref);
        free(c);
        return;
    }
    const long before = g_failures;
    long runs = 0;
    for (int isa = AMXQ_ISA_AUTO; isa < AMXQ_ISA_COUNT; isa++) {
        if (isa != AMXQ_ISA_AUTO && amxq_isa_check((amxq_isa)isa) != AMXQ_OK)
            continue;
        const char *iname = amxq_isa_name((amxq_isa)isa);
        for (int t = 0; t <= MAX_THREADS; t++) { /* t = 0: amxq_matmul_ex, no context */
            amxq_ctx *ctx = t ? g_ctx[t] : NULL;
            const int64_t split = p->m / 3 > 0 ? p->m / 3 : 1;
            for (int mode = 0; mode < 3; mode++) {
                if (mode == 2 && p->m < 2)
                    continue; /* one row: no second batch */
                char how[96];
                snprintf(how, sizeof how, "%s, %s, %s", iname,
                         t ? (t == 1   ? "1 thread"
                              : t == 2 ? "2 threads"
                                       : "3 threads")
                           : "amxq_matmul_ex",
                         mode == 0   ? "all rows"
                         : mode == 1 ? "each row alone"
                                     : "two batches");
                for (int64_t i = 0; i < p->m * p->ldc; i++)
                    c[i] = NAN; /* every output must be written */
                st = AMXQ_OK;
                if (mode == 0) {
                    st = run(p, ctx, (amxq_isa)isa, 0, p->m, c);
                } else if (mode == 1) {
                    for (int64_t r = 0; r < p->m && st == AMXQ_OK; r++)
                        st = run(p, ctx, (amxq_isa)isa, r, r + 1, c);
                } else {
                    st = run(p, ctx, (amxq_isa)isa, 0, split, c);
                    if (st == AMXQ_OK)
                        st = run(p, ctx, (amxq_isa)isa, split, p->m, c);
                }
                runs++;
                if (st != AMXQ_OK) {
                    printf("  FAIL %s, %s: %s\n", p->name, how, amxq_status_str(st));
                    g_failures++;
                    g_products++;
                    continue;
                }
                compare(p, how, c, ref);
            }
        }
    }
    printf("%-44s %s: %ld runs, %s\n", p->name, amxq_type_name(p->type), runs,
           g_failures == before ? "identical bits" : "FAIL");
    free(ref);
    free(c);
}

/* ---- Golden files --------------------------------------------------------------------------- */

static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static int parse_type(const char *s, amxq_type *t)
{
    static const amxq_type all[] = {
        AMXQ_TYPE_Q4_0, AMXQ_TYPE_Q4_1,   AMXQ_TYPE_Q8_0, AMXQ_TYPE_Q4_K, AMXQ_TYPE_Q6_K,
        AMXQ_TYPE_Q5_K, AMXQ_TYPE_IQ4_XS, AMXQ_TYPE_Q5_0, AMXQ_TYPE_Q5_1, AMXQ_TYPE_IQ4_NL};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (strcmp(s, amxq_type_name(all[i])) == 0) {
            *t = all[i];
            return 0;
        }
    return -1;
}

/* One golden file (format: tests/data/ggml-golden/README.md; parsed as tests/test_golden.c
 * does). Returns 1 if it was run, 0 if its weight type is not amxq's, -1 on a bad file. */
static int golden_file(const char *dir, const char *name)
{
    char path[8192];
    const int plen = snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = plen > 0 && (size_t)plen < sizeof path ? fopen(path, "rb") : NULL;
    if (!f)
        return -1;
    fseek(f, 0, SEEK_END);
    const long len = ftell(f);
    rewind(f);
    uint8_t *buf = len > 48 ? malloc((size_t)len) : NULL;
    if (!buf || fread(buf, 1, (size_t)len, f) != (size_t)len) {
        fclose(f);
        free(buf);
        return -1;
    }
    fclose(f);
    if (memcmp(buf, "AMXQGOLD", 8) != 0 || rd32(buf + 8) != 1) {
        free(buf);
        return -1;
    }
    char wtype[9];
    memcpy(wtype, buf + 12, 8);
    wtype[8] = 0;
    amxq_type type;
    if (parse_type(wtype, &type) != 0) {
        free(buf);
        return 0;
    }
    const size_t m = rd32(buf + 28), n = rd32(buf + 32), k = rd32(buf + 36);
    const size_t wrow = rd32(buf + 40), arow = rd32(buf + 44);
    const size_t off_wq = 48 + 4 * n * k, off_x = off_wq + wrow * n;
    if (off_x + 4 * m * k + arow * m + 4 * m * n != (size_t)len ||
        amxq_ggml_size(type, 1, (int64_t)k) != wrow) {
        free(buf);
        return -1;
    }
    struct product p;
    memset(&p, 0, sizeof p);
    snprintf(p.name, sizeof p.name, "%s", name);
    p.type = type;
    p.m = (int64_t)m;
    p.n = (int64_t)n;
    p.k = (int64_t)k;
    p.ldx = p.k;
    p.ldc = p.n + 3; /* a gap between N and ldc that nobody may write */
    p.packed = tu_pack_new(type, buf + off_wq, p.n, p.k);
    float *x = malloc(4 * m * k);
    int ret = -1;
    if (p.packed && x) {
        memcpy(x, buf + off_x, 4 * m * k);
        p.x = x;
        check_product(&p);
        ret = 1;
    }
    free(x);
    free(p.packed);
    free(buf);
    return ret;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Every .bin file of the golden directory; returns failures (bad files). */
static int golden_all(long *run, long *skipped)
{
    const char *env = getenv("AMXQ_TEST_DATA");
    if (!env || !*env) {
        printf("AMXQ_TEST_DATA is not set (run through meson test)\n");
        return 1;
    }
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/ggml-golden", env);
    DIR *d = opendir(dir);
    if (!d) {
        snprintf(dir, sizeof dir, "%s", env);
        d = opendir(dir);
    }
    if (!d) {
        printf("cannot open %s/ggml-golden or %s\n", env, env);
        return 1;
    }
    char *names[256];
    size_t count = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && count < sizeof names / sizeof names[0]) {
        const size_t l = strlen(e->d_name);
        if (l > 4 && strcmp(e->d_name + l - 4, ".bin") == 0 && (names[count] = malloc(l + 1)))
            memcpy(names[count++], e->d_name, l + 1);
    }
    closedir(d);
    qsort(names, count, sizeof names[0], cmp_str);
    int bad = 0;
    for (size_t i = 0; i < count; i++) {
        const int r = golden_file(dir, names[i]);
        if (r < 0) {
            printf("  FAIL %s: unreadable or malformed golden file\n", names[i]);
            bad++;
        }
        *run += r == 1;
        *skipped += r == 0;
        free(names[i]);
    }
    if (*run == 0) {
        printf("no golden file of an amxq type in %s\n", dir);
        bad++;
    }
    return bad;
}

/* ---- Random shapes -------------------------------------------------------------------------- */

static void random_products(void)
{
    static const amxq_type types[] = {
        AMXQ_TYPE_Q4_0, AMXQ_TYPE_Q4_1,   AMXQ_TYPE_Q8_0, AMXQ_TYPE_Q4_K, AMXQ_TYPE_Q6_K,
        AMXQ_TYPE_Q5_K, AMXQ_TYPE_IQ4_XS, AMXQ_TYPE_Q5_0, AMXQ_TYPE_Q5_1, AMXQ_TYPE_IQ4_NL};
    /* M x N x K: rows crossing the kernels' row groups (VNNI 4, AMX 16 / 32 / 128), ragged
     * panels, K with a partial last group of 8 blocks; each above the contexts' single-thread
     * limit (2^18 multiply-adds) so that the threads split it. */
    static const int64_t shapes[][3] = {{1, 1000, 1280}, {37, 100, 768}, {133, 47, 256}};
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++)
        for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
            const amxq_type type = types[ti];
            struct product p;
            memset(&p, 0, sizeof p);
            p.type = type;
            p.m = shapes[si][0];
            p.n = shapes[si][1];
            p.k = shapes[si][2];
            if (amxq_type_block(type) == 32 && si == 1)
                p.k = 13 * 32; /* 13 blocks: one full group of 8 and a partial one */
            p.ldx = p.k + 5;
            p.ldc = p.n + 7;
            snprintf(p.name, sizeof p.name, "random %lldx%lldx%lld", (long long)p.m, (long long)p.n,
                     (long long)p.k);
            uint8_t *ggml = make_ggml(type, p.n, p.k);
            float *x = make_x(p.m, p.k, p.ldx);
            p.packed = ggml ? tu_pack_new(type, ggml, p.n, p.k) : NULL;
            p.x = x;
            if (p.packed && x) {
                check_product(&p);
            } else {
                printf("  FAIL %s: cannot build the case\n", p.name);
                g_failures++;
            }
            free(p.packed);
            free(x);
            free(ggml);
        }
}

int main(void)
{
    if (amxq_numeric_contract_version() != AMXQ_NUMERIC_CONTRACT_VERSION) {
        printf("library numeric contract %d, header %d\n", amxq_numeric_contract_version(),
               AMXQ_NUMERIC_CONTRACT_VERSION);
        return 1;
    }
    for (int t = 1; t <= MAX_THREADS; t++) {
        amxq_ctx_params cp;
        memset(&cp, 0, sizeof cp);
        cp.n_threads = t;
        const amxq_status st = amxq_ctx_create(&cp, &g_ctx[t]);
        if (st != AMXQ_OK) {
            printf("amxq_ctx_create(%d threads): %s\n", t, amxq_status_str(st));
            return 1;
        }
    }
    printf("families:");
    for (int isa = AMXQ_ISA_SCALAR; isa < AMXQ_ISA_COUNT; isa++) {
        const amxq_status st = amxq_isa_check((amxq_isa)isa);
        printf(" %s (%s)", amxq_isa_name((amxq_isa)isa), st == AMXQ_OK ? "runs" : "skipped");
    }
    printf(", and auto\n");

    long golden_run = 0, golden_skipped = 0;
    const int bad_files = golden_all(&golden_run, &golden_skipped);
    random_products();
    for (int t = 1; t <= MAX_THREADS; t++)
        amxq_ctx_destroy(g_ctx[t]);
    printf("%ld golden files (%ld of other weight types skipped), %ld products compared, %ld "
           "failures\n",
           golden_run, golden_skipped, g_products, g_failures + bad_files);
    return g_failures + bad_files ? 1 : 0;
}
