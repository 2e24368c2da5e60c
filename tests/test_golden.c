/*
 * amxq against ggml itself: every .bin file in tests/data/ggml-golden (format in its README.md) is
 * one product ggml computed. For each file
 *   (a) the reference activation quantizer (and the public amxq_quantize_row) reproduces ggml's
 *       quantized X byte for byte: agreeing to 1e-4 is only possible that way;
 *   (b) amxq_pack + amxq_matmul on ggml's weight bytes and f32 X give C within an L2-relative
 *       error of GOLDEN_TOL of ggml's C, through the process choice and through every ISA that
 *       can run here (amxq_matmul_ex with a forced isa). The design allows 1e-4
 *       (docs/design.md §1); with the activations byte-identical the only difference left is the
 *       float epilogue (ggml's order of roundings against amxq's numeric contract), and on the
 *       16 files the worst is 3.7e-7 (Q4_1 33x96x1024; 1.8e-7 for the other types), so the bound
 *       is 1e-6: tight enough that a wrong scale or a dropped block term fails. Every family
 *       gives the same bits (tests/test_invariance.c), so they all print the same error.
 * The data directory comes from the environment (AMXQ_TEST_DATA, set by tests/meson.build): either
 * the directory holding ggml-golden/ or ggml-golden itself.
 */
#define _POSIX_C_SOURCE 200809L

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "amxq.h"
#include "ref/ref.h"

#define GOLDEN_TOL 1e-6

struct golden {
    char wtype[9], atype[9];
    uint32_t m, n, k, wrow, arow;
    const float *wf;   /* f32 weights (unused here; kept for diagnostics) */
    const uint8_t *wq; /* ggml weight bytes, N rows */
    const float *x;    /* M x K */
    const uint8_t *xq; /* ggml activation bytes, M rows */
    const float *c;    /* M x N */
    float *own;        /* X and C copied to aligned memory (rows of 210 B leave them unaligned) */
};

static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Parse `buf` (len bytes) into g; 0 on success. Float sections are copied into aligned memory
 * by the caller's buffer being malloc'd and the sections 4-byte aligned (checked). */
static int parse(const uint8_t *buf, size_t len, struct golden *g)
{
    if (len < 48 || memcmp(buf, "AMXQGOLD", 8) != 0 || rd32(buf + 8) != 1)
        return -1;
    memcpy(g->wtype, buf + 12, 8);
    g->wtype[8] = 0;
    memcpy(g->atype, buf + 20, 8);
    g->atype[8] = 0;
    g->m = rd32(buf + 28);
    g->n = rd32(buf + 32);
    g->k = rd32(buf + 36);
    g->wrow = rd32(buf + 40);
    g->arow = rd32(buf + 44);
    const size_t m = g->m, n = g->n, k = g->k;
    size_t off = 48;
    const size_t want = off + 4 * n * k + g->wrow * n + 4 * m * k + g->arow * m + 4 * m * n;
    if (want != len || g->arow % 4)
        return -1;
    g->wf = (const float *)(const void *)(buf + off);
    off += 4 * n * k;
    g->wq = buf + off;
    off += g->wrow * n;
    g->own = malloc(4 * (m * k + m * n));
    if (!g->own)
        return -1;
    memcpy(g->own, buf + off, 4 * m * k);
    g->x = g->own;
    off += 4 * m * k;
    g->xq = buf + off;
    off += g->arow * m;
    memcpy(g->own + m * k, buf + off, 4 * m * n);
    g->c = g->own + m * k;
    return 0;
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

static double l2_rel(const float *c, const float *ref, size_t count)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < count; i++) {
        const double e = (double)c[i] - (double)ref[i];
        num += e * e;
        den += (double)ref[i] * ref[i];
    }
    if (!(num == num))
        return INFINITY; /* a NaN anywhere fails */
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

/* Quantize every row with the reference and with the public API; count differing bytes. */
static long check_quant(const struct golden *g, amxq_type t)
{
    uint8_t *mine = malloc(g->arow), *pub = malloc(g->arow);
    long bad = 0;
    for (uint32_t r = 0; r < g->m && mine && pub; r++) {
        const float *xr = g->x + (size_t)r * g->k;
        const uint8_t *want = g->xq + (size_t)r * g->arow;
        if (strcmp(g->atype, "q8_K") == 0)
            amxq_quantize_row_q8_k_ggml(xr, g->k, mine);
        else if (strcmp(g->atype, "q8_1") == 0)
            amxq_quantize_row_q8_1_ggml(xr, g->k, mine);
        else
            amxq_quantize_row_q8_0_ggml(xr, g->k, mine);
        amxq_status st = amxq_quantize_row(t, xr, g->k, pub, g->arow);
        if (st != AMXQ_OK) {
            printf("    amxq_quantize_row: %s\n", amxq_status_str(st));
            bad++;
        }
        for (uint32_t i = 0; i < g->arow; i++) {
            if (mine[i] != want[i] || (st == AMXQ_OK && pub[i] != want[i])) {
                if (bad < 5)
                    printf("    row %u byte %u: ggml %02x, ref %02x, amxq_quantize_row %02x\n", r,
                           i, want[i], mine[i], pub[i]);
                bad++;
            }
        }
    }
    if (!mine || !pub)
        bad = -1;
    free(mine);
    free(pub);
    return bad;
}

static int run_file(const char *dir, const char *name)
{
    char path[8192];
    const int plen = snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = plen > 0 && (size_t)plen < sizeof path ? fopen(path, "rb") : NULL;
    if (!f) {
        printf("FAIL %s: cannot open\n", path);
        return 1;
    }
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    rewind(f);
    uint8_t *buf = len > 0 ? malloc((size_t)len) : NULL;
    if (!buf || fread(buf, 1, (size_t)len, f) != (size_t)len) {
        fclose(f);
        free(buf);
        printf("FAIL %s: cannot read\n", name);
        return 1;
    }
    fclose(f);

    int fails = 0;
    struct golden g;
    amxq_type t;
    g.own = NULL;
    if (parse(buf, (size_t)len, &g) != 0 || parse_type(g.wtype, &t) != 0) {
        printf("FAIL %s: malformed golden file\n", name);
        free(g.own);
        free(buf);
        return 1;
    }
    printf("%s: %s x %s, M=%u N=%u K=%u\n", name, g.wtype, g.atype, g.m, g.n, g.k);
    if (amxq_ggml_size(t, 1, g.k) != g.wrow) {
        printf("  FAIL weight row size %u, amxq says %zu\n", g.wrow, amxq_ggml_size(t, 1, g.k));
        free(g.own);
        free(buf);
        return 1;
    }

    /* (a) activations byte for byte */
    long qbad = check_quant(&g, t);
    printf("  quantized X: %s (%ld differing bytes)\n", qbad == 0 ? "identical" : "FAIL", qbad);
    fails += qbad != 0;

    /* (b) pack + matmul */
    const size_t psize = amxq_packed_size(t, g.n, g.k);
    void *packed = psize ? aligned_alloc(AMXQ_ALIGNMENT, psize) : NULL;
    float *c = malloc(sizeof(float) * g.m * g.n);
    amxq_status st = packed && c ? amxq_pack(t, g.wq, g.n, g.k, packed, psize) : AMXQ_ERR_NOMEM;
    if (st != AMXQ_OK) {
        printf("  FAIL amxq_pack: %s\n", amxq_status_str(st));
        fails++;
    } else {
        st = amxq_matmul(packed, g.x, g.m, g.k, c, g.n);
        double e = st == AMXQ_OK ? l2_rel(c, g.c, (size_t)g.m * g.n) : INFINITY;
        int ok = st == AMXQ_OK && e <= GOLDEN_TOL;
        printf("  %-10s L2-rel %.3e %s%s\n", "default", e, ok ? "ok" : "FAIL ",
               st == AMXQ_OK ? "" : amxq_status_str(st));
        fails += !ok;
        for (int isa = AMXQ_ISA_SCALAR; isa <= AMXQ_ISA_AVX512_EMU; isa++) {
            const char *iname = amxq_isa_name((amxq_isa)isa);
            amxq_status cst = amxq_isa_check((amxq_isa)isa);
            if (cst != AMXQ_OK) {
                printf("  %-10s skipped: %s\n", iname, amxq_status_str(cst));
                continue;
            }
            amxq_matmul_params prm;
            memset(&prm, 0, sizeof prm);
            prm.isa = (amxq_isa)isa;
            for (size_t i = 0; i < (size_t)g.m * g.n; i++)
                c[i] = NAN; /* every output must be written */
            st = amxq_matmul_ex(packed, g.x, g.m, g.k, c, g.n, &prm);
            e = st == AMXQ_OK ? l2_rel(c, g.c, (size_t)g.m * g.n) : INFINITY;
            ok = st == AMXQ_OK && e <= GOLDEN_TOL;
            printf("  %-10s L2-rel %.3e %s%s\n", iname, e, ok ? "ok" : "FAIL ",
                   st == AMXQ_OK ? "" : amxq_status_str(st));
            fails += !ok;
        }
    }
    free(c);
    free(packed);
    free(g.own);
    free(buf);
    return fails;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

int main(void)
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
        size_t l = strlen(e->d_name);
        if (l > 4 && strcmp(e->d_name + l - 4, ".bin") == 0) {
            names[count] = malloc(l + 1);
            if (names[count])
                memcpy(names[count++], e->d_name, l + 1);
        }
    }
    closedir(d);
    if (count == 0) {
        printf("no golden files in %s\n", dir);
        return 1;
    }
    qsort(names, count, sizeof names[0], cmp_str);
    int fails = 0;
    for (size_t i = 0; i < count; i++) {
        fails += run_file(dir, names[i]);
        free(names[i]);
    }
    printf("%zu golden files, %d failures (tolerance L2-rel %.0e)\n", count, fails, GOLDEN_TOL);
    return fails ? 1 : 0;
}
