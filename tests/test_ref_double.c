/*
 * The reference product (amxq_matmul_ex forced to the scalar ISA) against a double-precision
 * dequantize-then-multiply written here from docs/design.md §2 alone, on seeded random shapes:
 *
 * (i)  dequantized W times the dequantized *quantized* activations (amxq_quantize_row's ggml
 *      blocks), in double. This keeps the numeric contract itself accurate (docs/design.md §1,
 *      include/amxq.h): every family has the reference's bits, so only the contract's float
 *      roundings are left. Per block of 32 it rounds d_w*d_x and one fma into an f32 sum of at
 *      most 8 blocks (Q4_1 a second fma); per Q4_K super-block d*d_x, dmin*d_x, float(I) *
 *      (d*d_x) and one fma; each within 2^-24 relative of what it rounds. The f32 group sums are
 *      added in double and the result rounded to float once (6e-8), so the error does not grow
 *      with K: random, independent roundings give an L2-relative error of a few 1e-7 at most;
 *      the test demands 1e-6 (observed values are printed), also on long rows (K = 32768).
 *      Observed worst over 12 seeds: 1.9e-7 (Q8_0), 1.6e-7 (Q4_1), 1.2e-7 (Q4_0), 1.1e-7 (Q4_K).
 *      Q4_1 pairs with Q8_1, whose blocks carry s = d*sum(q) rounded to fp16; ggml (and amxq)
 *      use that stored s for the min term, so this model does too: a Q4_1 block contributes
 *      sum_k d_w*q_w*x^_k + m_w*s_x. (Using the exact sum instead differs by up to ~6e-4.)
 * (ii) dequantized W times the original f32 X: the error is then that of 8-bit activation
 *      quantization. For X uniform in [-a, a) each activation moves by at most d/2 with
 *      d = amax/127 (about a/127), uniform, so its standard deviation is about a/440 against an
 *      RMS of a/sqrt(3) = a/1.73: a relative error of about 3.9e-3 per element, and the same for
 *      the dot products (independent errors); the fp16 rounding of d adds at most 2.4e-4. The
 *      test demands 1e-2. X here has no outliers, which would make this bound meaningless, and
 *      neither X rows nor W rows have different scales, so that no few dominant outputs turn
 *      the measured L2 value into a noisy estimate (with them, 1.2e-2 was seen for M=4, N=16).
 *      Observed worst over 12 seeds x 24 shapes (ii): 6.8e-3 (Q4_K, whose offset weights weigh
 *      the rounding errors unevenly; up to 5.2e-3 for the other types).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "amxq.h"

#define TOL_QUANTIZED 1e-6
#define TOL_F32       1e-2

static uint64_t rng_state;

static uint64_t rnd(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double rnd_u(void) /* [-1, 1) */
{
    return (double)(rnd() >> 11) * (2.0 / 9007199254740992.0) - 1.0;
}

/* IEEE half -> double, from the definition (independent of src/ref/fp16.h). */
static double half(const uint8_t *p)
{
    const unsigned h = (unsigned)p[0] | (unsigned)p[1] << 8;
    const int e = (int)((h >> 10) & 31);
    const double man = (double)(h & 1023);
    const double v = e == 0 ? ldexp(man, -24) : e == 31 ? INFINITY : ldexp(1024.0 + man, e - 25);
    return (h & 0x8000) ? -v : v;
}

/* A half close to f (truncated, finite inputs only): good enough to make test scales. */
static void put_half(uint8_t *p, double f)
{
    unsigned s = f < 0 ? 0x8000u : 0;
    f = fabs(f);
    int e;
    double m = frexp(f, &e); /* f = m * 2^e, m in [0.5, 1) */
    unsigned h;
    if (f == 0)
        h = 0;
    else if (e - 1 < -14)
        h = (unsigned)(f * 16777216.0); /* subnormal: units of 2^-24 */
    else
        h = (unsigned)((e - 1 + 15) << 10) | ((unsigned)(m * 2048.0) & 1023u);
    h |= s;
    p[0] = (uint8_t)h;
    p[1] = (uint8_t)(h >> 8);
}

/* ---- Dequantizers, from docs/design.md §2 -----------------------------------------------------
 */

static void deq_weights(amxq_type t, const uint8_t *b, int64_t k, double *w)
{
    if (t == AMXQ_TYPE_Q6_K) { /* as ggml's dequantize_row_q6_K walks it: halves of 128 */
        for (int64_t i = 0; i < k / 256; i++, b += 210) {
            const double d = half(b + 208);
            for (int h = 0; h < 2; h++) {
                const uint8_t *ql = b + 64 * h, *qh = b + 128 + 32 * h;
                const int8_t *sc = (const int8_t *)(const void *)(b + 192 + 8 * h);
                double *y = w + 256 * i + 128 * h;
                for (int l = 0; l < 32; l++) {
                    const int is = l / 16;
                    y[l] = d * sc[is] * (((ql[l] & 15) | ((qh[l] & 3) << 4)) - 32);
                    y[l + 32] =
                        d * sc[is + 2] * (((ql[l + 32] & 15) | (((qh[l] >> 2) & 3) << 4)) - 32);
                    y[l + 64] = d * sc[is + 4] * (((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32);
                    y[l + 96] = d * sc[is + 6] * (((ql[l + 32] >> 4) | ((qh[l] >> 6) << 4)) - 32);
                }
            }
        }
        return;
    }
    if (t == AMXQ_TYPE_IQ4_XS) { /* as ggml's dequantize_row_iq4_xs */
        static const int kv[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                   1,    13,   25,  38,  53,  69,  89,  113};
        for (int64_t i = 0; i < k / 256; i++, b += 136) {
            const double d = half(b);
            const unsigned sh = (unsigned)b[2] | (unsigned)b[3] << 8;
            for (int ib = 0; ib < 8; ib++) {
                const int ls = ((b[4 + ib / 2] >> 4 * (ib % 2)) & 15) | ((sh >> 2 * ib) & 3) << 4;
                const double dl = d * (ls - 32);
                const uint8_t *qs = b + 8 + 16 * ib;
                for (int j = 0; j < 16; j++) {
                    w[256 * i + 32 * ib + j] = dl * kv[qs[j] & 15];
                    w[256 * i + 32 * ib + 16 + j] = dl * kv[qs[j] >> 4];
                }
            }
        }
        return;
    }
    if (t == AMXQ_TYPE_Q5_K) { /* as ggml's dequantize_row_q5_K walks it: masks u1, u2 on qh */
        for (int64_t i = 0; i < k / 256; i++, b += 176) {
            const double d = half(b), dmin = half(b + 2);
            const uint8_t *sc = b + 4, *qh = b + 16, *ql = b + 48;
            unsigned u1 = 1, u2 = 2;
            for (int j = 0; j < 8; j += 2, ql += 32, u1 <<= 2, u2 <<= 2) {
                int s[2], m[2];
                for (int h = 0; h < 2; h++) {
                    const int jj = j + h;
                    if (jj < 4) {
                        s[h] = sc[jj] & 63;
                        m[h] = sc[jj + 4] & 63;
                    } else {
                        s[h] = (sc[jj + 4] & 15) | ((sc[jj - 4] >> 6) << 4);
                        m[h] = (sc[jj + 4] >> 4) | ((sc[jj] >> 6) << 4);
                    }
                }
                for (int l = 0; l < 32; l++) {
                    w[256 * i + 32 * j + l] =
                        d * s[0] * ((ql[l] & 15) + (qh[l] & u1 ? 16 : 0)) - dmin * m[0];
                    w[256 * i + 32 * j + 32 + l] =
                        d * s[1] * ((ql[l] >> 4) + (qh[l] & u2 ? 16 : 0)) - dmin * m[1];
                }
            }
        }
        return;
    }
    if (t == AMXQ_TYPE_Q4_K) {
        for (int64_t i = 0; i < k / 256; i++, b += 144) {
            const double d = half(b), dmin = half(b + 2);
            const uint8_t *sc = b + 4, *qs = b + 16;
            for (int j = 0; j < 8; j++) {
                int s, m;
                if (j < 4) {
                    s = sc[j] & 63;
                    m = sc[j + 4] & 63;
                } else {
                    s = (sc[j + 4] & 15) | ((sc[j - 4] >> 6) << 4);
                    m = (sc[j + 4] >> 4) | ((sc[j] >> 6) << 4);
                }
                for (int l = 0; l < 32; l++) {
                    const uint8_t byte = qs[32 * (j / 2) + l];
                    const int q = (j & 1) ? byte >> 4 : byte & 15;
                    w[256 * i + 32 * j + l] = d * s * q - dmin * m;
                }
            }
        }
        return;
    }
    const size_t bb = (size_t)amxq_type_block_bytes(t);
    for (int64_t i = 0; i < k / 32; i++, b += bb) {
        const double d = half(b);
        double *o = w + 32 * i;
        if (t == AMXQ_TYPE_Q8_0) {
            for (int l = 0; l < 32; l++)
                o[l] = d * (double)(int8_t)b[2 + l];
        } else if (t == AMXQ_TYPE_Q4_0) {
            for (int l = 0; l < 16; l++) {
                o[l] = d * ((b[2 + l] & 15) - 8);
                o[l + 16] = d * ((b[2 + l] >> 4) - 8);
            }
        } else if (t == AMXQ_TYPE_IQ4_NL) { /* as ggml's dequantize_row_iq4_nl */
            static const int kv[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                       1,    13,   25,  38,  53,  69,  89,  113};
            for (int l = 0; l < 16; l++) {
                o[l] = d * kv[b[2 + l] & 15];
                o[l + 16] = d * kv[b[2 + l] >> 4];
            }
        } else if (t == AMXQ_TYPE_Q5_0 || t == AMXQ_TYPE_Q5_1) {
            /* as ggml's dequantize_row_q5_0 / _q5_1: bit l of qh; Q5_1 the d*q part only, its min
             * m is added per block with the block sum as Q4_1's */
            const int q51 = t == AMXQ_TYPE_Q5_1, off = q51 ? 4 : 2, z = q51 ? 0 : 16;
            const uint32_t qh = (uint32_t)b[off] | (uint32_t)b[off + 1] << 8 |
                                (uint32_t)b[off + 2] << 16 | (uint32_t)b[off + 3] << 24;
            for (int l = 0; l < 16; l++) {
                const uint8_t q = b[off + 4 + l];
                o[l] = d * ((int)((q & 15) | ((qh >> l) & 1) << 4) - z);
                o[l + 16] = d * ((int)((q >> 4) | ((qh >> (l + 16)) & 1) << 4) - z);
            }
        } else { /* Q4_1: the d*q part only; the min m is added per block with the block sum */
            for (int l = 0; l < 16; l++) {
                o[l] = d * (b[4 + l] & 15);
                o[l + 16] = d * (b[4 + l] >> 4);
            }
        }
    }
}

/* Activation row: values, and for Q8_1 the stored s per block (NULL otherwise). */
static void deq_acts(amxq_type wt, const uint8_t *b, int64_t k, double *x, double *s)
{
    if (amxq_type_block(wt) == 256) {
        for (int64_t i = 0; i < k / 256; i++, b += 292) {
            float d;
            memcpy(&d, b, 4);
            for (int l = 0; l < 256; l++)
                x[256 * i + l] = (double)d * (int8_t)b[4 + l];
        }
        return;
    }
    const int q81 = wt == AMXQ_TYPE_Q4_1 || wt == AMXQ_TYPE_Q5_1;
    const size_t bb = q81 ? 36 : 34, qoff = q81 ? 4 : 2;
    for (int64_t i = 0; i < k / 32; i++, b += bb) {
        const double d = half(b);
        if (q81)
            s[i] = half(b + 2);
        for (int l = 0; l < 32; l++)
            x[32 * i + l] = d * (int8_t)b[qoff + l];
    }
}

/* Q4_1 / Q5_1 mins of one weight row (blocks of bb bytes), one per block. */
static void block_mins(const uint8_t *b, size_t bb, int64_t k, double *m)
{
    for (int64_t i = 0; i < k / 32; i++)
        m[i] = half(b + bb * (size_t)i + 2);
}

/* ---- Data ---------------------------------------------------------------------------------- */

static void gen_weights(amxq_type t, uint8_t *g, int64_t n, int64_t k, int varied)
{
    const size_t bb = amxq_type_block_bytes(t);
    const int64_t nb = k / amxq_type_block(t);
    for (int64_t r = 0; r < n; r++) {
        const double rs = !varied ? 1.0 : r % 5 == 1 ? 8.0 : r % 5 == 3 ? 0.1 : 1.0;
        for (int64_t i = 0; i < nb; i++) {
            uint8_t *b = g + (size_t)(r * nb + i) * bb;
            for (size_t j = 0; j < bb; j++)
                b[j] = (uint8_t)(rnd() >> 56);
            const double d = rs * 0.003 * (0.25 + fabs(rnd_u())) * (rnd() & 1 ? 1 : -1);
            put_half(b, t == AMXQ_TYPE_Q8_0     ? d / 16
                        : t == AMXQ_TYPE_Q5_0   ? d / 2
                        : t == AMXQ_TYPE_IQ4_NL ? d / 16
                        : t == AMXQ_TYPE_Q4_K   ? d / 8
                        : t == AMXQ_TYPE_Q5_K   ? d / 16
                        : t == AMXQ_TYPE_IQ4_XS ? d / 64
                                                : d);
            if (t == AMXQ_TYPE_Q4_1 || t == AMXQ_TYPE_Q5_1)
                put_half(b + 2, -8 * d * fabs(rnd_u()));
            if (t == AMXQ_TYPE_Q4_K || t == AMXQ_TYPE_Q5_K)
                put_half(b + 2, rs * 0.0003 * fabs(rnd_u()));
            if (t == AMXQ_TYPE_Q6_K) /* d last; |sc * (q - 32)| reaches 4096 */
                put_half(b + 208, d / 64);
        }
    }
}

static void gen_x(float *x, int64_t m, int64_t k, int outliers)
{
    for (int64_t r = 0; r < m; r++) {
        const double scale = !outliers ? 1.0 : r % 3 == 0 ? 1.0 : r % 3 == 1 ? 0.01 : 30.0;
        for (int64_t j = 0; j < k; j++)
            x[r * k + j] = (float)(scale * rnd_u());
        if (outliers && r % 4 == 2)
            x[r * k + (int64_t)(rnd() % (uint64_t)k)] = (float)(40 * scale);
        if (outliers && r % 7 == 5)
            memset(x + r * k, 0, sizeof(float) * 32); /* a zero block */
    }
}

/* ---- One case ------------------------------------------------------------------------------ */

struct errs {
    double quantized, f32;
};

static int run_case(amxq_type t, int64_t m, int64_t n, int64_t k, int outliers, struct errs *e)
{
    const size_t gsize = amxq_ggml_size(t, n, k), psize = amxq_packed_size(t, n, k);
    const int64_t qk = amxq_type_block(t), nb = k / qk;
    const int with_m = t == AMXQ_TYPE_Q4_1 || t == AMXQ_TYPE_Q5_1; /* Q8_1 and a min per block */
    const size_t arow = (size_t)nb * (amxq_type_block(t) == 256 ? 292 : with_m ? 36 : 34);
    uint8_t *g = malloc(gsize), *aq = malloc(arow);
    void *packed = aligned_alloc(AMXQ_ALIGNMENT, psize);
    float *x = malloc(sizeof(float) * (size_t)(m * k)),
          *c = malloc(sizeof(float) * (size_t)(m * n));
    double *w = malloc(sizeof(double) * (size_t)(n * k)), *xd = malloc(sizeof(double) * (size_t)k);
    double *s = malloc(sizeof(double) * (size_t)nb), *mins = malloc(sizeof(double) * (size_t)nb);
    int rc = 1;
    if (!g || !aq || !packed || !x || !c || !w || !xd || !s || !mins)
        goto out;
    gen_weights(t, g, n, k, outliers);
    gen_x(x, m, k, outliers);
    for (int64_t r = 0; r < n; r++)
        deq_weights(t, g + (size_t)r * (gsize / (size_t)n), k, w + r * k);

    amxq_matmul_params prm;
    memset(&prm, 0, sizeof prm);
    prm.isa = AMXQ_ISA_SCALAR;
    amxq_status st = amxq_pack(t, g, n, k, packed, psize);
    if (st == AMXQ_OK)
        st = amxq_matmul_ex(packed, x, m, k, c, n, &prm);
    if (st != AMXQ_OK) {
        printf("  FAIL %s: %s\n", amxq_type_name(t), amxq_status_str(st));
        goto out;
    }
    double num_q = 0, num_f = 0, den_q = 0, den_f = 0;
    for (int64_t r = 0; r < m; r++) {
        st = amxq_quantize_row(t, x + r * k, k, aq, arow);
        if (st != AMXQ_OK) {
            printf("  FAIL amxq_quantize_row: %s\n", amxq_status_str(st));
            goto out;
        }
        deq_acts(t, aq, k, xd, s);
        for (int64_t col = 0; col < n; col++) {
            const double *wr = w + col * k;
            double dq = 0, df = 0;
            if (with_m)
                block_mins(g + (size_t)col * (gsize / (size_t)n), amxq_type_block_bytes(t), k,
                           mins);
            for (int64_t j = 0; j < k; j++) {
                dq += wr[j] * xd[j];
                df += wr[j] * (double)x[r * k + j];
            }
            if (with_m)
                for (int64_t i = 0; i < nb; i++) {
                    double xs = 0;
                    for (int l = 0; l < 32; l++)
                        xs += (double)x[r * k + 32 * i + l];
                    dq += mins[i] * s[i];
                    df += mins[i] * xs;
                }
            const double v = (double)c[r * n + col];
            num_q += (v - dq) * (v - dq);
            den_q += dq * dq;
            num_f += (v - df) * (v - df);
            den_f += df * df;
        }
    }
    e->quantized = den_q > 0 ? sqrt(num_q / den_q) : sqrt(num_q);
    e->f32 = den_f > 0 ? sqrt(num_f / den_f) : sqrt(num_f);
    rc = 0;
out:
    free(g);
    free(aq);
    free(packed);
    free(x);
    free(c);
    free(w);
    free(xd);
    free(s);
    free(mins);
    return rc;
}

int main(int argc, char **argv)
{
    rng_state = argc > 1 ? strtoull(argv[1], NULL, 0) : 20261123;
    printf("test_ref_double: seed %llu\n", (unsigned long long)rng_state);
    static const amxq_type types[] = {
        AMXQ_TYPE_Q4_0, AMXQ_TYPE_Q4_1,   AMXQ_TYPE_Q8_0, AMXQ_TYPE_Q4_K, AMXQ_TYPE_Q6_K,
        AMXQ_TYPE_Q5_K, AMXQ_TYPE_IQ4_XS, AMXQ_TYPE_Q5_0, AMXQ_TYPE_Q5_1, AMXQ_TYPE_IQ4_NL};
    int fails = 0;
    for (int ti = 0; ti < (int)(sizeof types / sizeof types[0]); ti++) {
        const amxq_type t = types[ti];
        double worst_q = 0, worst_f = 0;
        for (int i = 0; i < 24; i++) {
            const int64_t m = 1 + (int64_t)(rnd() % 40), n = 16 + (int64_t)(rnd() % 55);
            const int64_t k =
                amxq_type_block(t) * (1 + (int64_t)(rnd() % (amxq_type_block(t) == 256 ? 6 : 40)));
            /* (i) on data with outliers, zero blocks, varied row scales; (ii) needs plain data */
            struct errs eo, ec;
            if (run_case(t, m, n, k, 1, &eo) != 0 || run_case(t, m, n, k, 0, &ec) != 0) {
                fails++;
                continue;
            }
            const double eq = eo.quantized > ec.quantized ? eo.quantized : ec.quantized;
            const int bad = !(eq <= TOL_QUANTIZED) || !(ec.f32 <= TOL_F32);
            if (bad)
                printf("  FAIL %s M=%lld N=%lld K=%lld: vs quantized X %.3e (tol %.0e), vs f32 X "
                       "%.3e (tol %.0e)\n",
                       amxq_type_name(t), (long long)m, (long long)n, (long long)k, eq,
                       TOL_QUANTIZED, ec.f32, TOL_F32);
            fails += bad;
            worst_q = eq > worst_q ? eq : worst_q;
            worst_f = ec.f32 > worst_f ? ec.f32 : worst_f;
        }
        /* long rows: hundreds of the contract's f32 groups summed in double */
        for (int i = 0; i < 2; i++) {
            const int64_t m = 2 + i, n = 16 + 7 * i, k = 32768;
            struct errs el;
            if (run_case(t, m, n, k, i, &el) != 0) {
                fails++;
                continue;
            }
            const int bad = !(el.quantized <= TOL_QUANTIZED);
            if (bad)
                printf("  FAIL %s M=%lld N=%lld K=%lld: vs quantized X %.3e (tol %.0e)\n",
                       amxq_type_name(t), (long long)m, (long long)n, (long long)k, el.quantized,
                       TOL_QUANTIZED);
            fails += bad;
            worst_q = el.quantized > worst_q ? el.quantized : worst_q;
        }
        printf("%s: 24 shapes + 2 with K = 32768; worst L2-rel vs double with quantized X %.3e "
               "(tol %.0e), with f32 X "
               "%.3e (tol %.0e)\n",
               amxq_type_name(t), worst_q, TOL_QUANTIZED, worst_f, TOL_F32);
    }
    printf("test_ref_double: %s\n", fails ? "FAILED" : "passed");
    return fails ? 1 : 0;
}
