/*
 * Vectorized activation quantization into the kernel workspace (struct amxq_qx), bit-identical
 * to src/ref/quantize.c (and so to ggml's x86 CPU path): the same float operations in the same
 * rounding, only done 16 lanes at a time.
 *
 * Q8_0 / Q8_1 (blocks of 32): amax = max |x| (order-free without NaN), d = fp16(amax / 127),
 * id = 127 / amax (0 for amax 0), q = sat8(cvtps2dq(x * id)) with round-to-nearest-even,
 * s = fp16(d_f32 * sum of q), sums = sum of the stored q. A block with NaN, an infinite amax or an
 * infinite id (amax tiny) is where ggml's fixed comparison order, saturation and
 * "integer indefinite" decide the bytes; such blocks are rare and are handed to the reference
 * block quantizer, so the rule lives in one place.
 *
 * Q8_K (blocks of 256): amax over non-NaN |x|, max = the first x with |x| == amax, iscale =
 * -127 / max, q = min(nearest_int(iscale * x), 127) with ggml's magic-add nearest_int, stored as
 * the low byte, bsums from the stored bytes, d = 1 / iscale. Every step is lane-wise IEEE or
 * integer arithmetic, so NaN and Inf give the reference's bytes with no special case.
 *
 * Block sums come from the stored bytes: vpdpbusd against ones gives 4-byte sums, two rounds of
 * pack + vpmaddwd fold them to 16-byte sums (vn_sums16), with no horizontal reduction per block.
 */
#include "ref/fp16.h"
#include "ref/ref.h"
#include "vec512.h"
#include "vnni/vnni.h"

/* Sums of the 16 runs of 16 int8 at p (256 bytes, any alignment); lane g = run g. */
VN_INLINE __m512i vn_sums16(const int8_t *p)
{
    const __m512i ones8 = _mm512_set1_epi8(1), ones16 = _mm512_set1_epi16(1);
    const __m512i z = _mm512_setzero_si512();
    /* D_z dword 4l+i = bytes 4i..4i+3 of run 4z+l (128-bit lane l of load z) */
    const __m512i d0 = _mm512_dpbusd_epi32(z, ones8, vn_load(p));
    const __m512i d1 = _mm512_dpbusd_epi32(z, ones8, vn_load(p + 64));
    const __m512i d2 = _mm512_dpbusd_epi32(z, ones8, vn_load(p + 128));
    const __m512i d3 = _mm512_dpbusd_epi32(z, ones8, vn_load(p + 192));
    /* per 128-bit lane l: [run l, run 4+l] then [run 8+l, run 12+l] partial pairs (|v| <= 1024) */
    const __m512i m01 = vn_madd_i16(_mm512_packs_epi32(d0, d1), ones16);
    const __m512i m23 = vn_madd_i16(_mm512_packs_epi32(d2, d3), ones16);
    /* dword 4l+t = run 4t+l */
    const __m512i r = vn_madd_i16(_mm512_packs_epi32(m01, m23), ones16);
    const __m512i idx = _mm512_set_epi32(15, 11, 7, 3, 14, 10, 6, 2, 13, 9, 5, 1, 12, 8, 4, 0);
    return _mm512_permutexvar_epi32(idx, r);
}

/* ---- Q8_0 / Q8_1 ---------------------------------------------------------------------------- */

#define VN_CHUNK 8 /* blocks of 32 per pass: 256 bytes of quants, one vn_sums16 */

static void quantize_row_32(const float *x, int64_t k, int8_t *qs, float *d, float *s,
                            int16_t *sums)
{
    const int64_t nb = k / AMXQ_QK;
    for (int64_t i0 = 0; i0 < nb; i0 += VN_CHUNK) {
        const int n = (int)(nb - i0 < VN_CHUNK ? nb - i0 : VN_CHUNK);
        float amax[VN_CHUNK] = {0};
        unsigned special = 0;
        amxq_block_q8_1 sp[VN_CHUNK]; /* reference results of the special blocks */
        for (int i = 0; i < n; i++) {
            const float *xb = x + (i0 + i) * AMXQ_QK;
            int8_t *qb = qs + (i0 + i) * AMXQ_QK;
            const __m512 v0 = _mm512_loadu_ps(xb), v1 = _mm512_loadu_ps(xb + 16);
            const __mmask16 nan = (__mmask16)(_mm512_cmp_ps_mask(v0, v0, _CMP_UNORD_Q) |
                                              _mm512_cmp_ps_mask(v1, v1, _CMP_UNORD_Q));
            const float am =
                nan ? 0.0f : vn_reduce_max_ps(_mm512_max_ps(vn_abs_ps(v0), vn_abs_ps(v1)));
            const float id = am != 0.0f ? 127.0f / am : 0.0f;
            if (nan || !(am <= 3.4028234664e38f) || !(id <= 3.4028234664e38f)) {
                amxq_quantize_row_q8_1_ggml(xb, AMXQ_QK, &sp[i]);
                memcpy(qb, sp[i].qs, AMXQ_QK);
                special |= 1u << i;
                continue;
            }
            /* |x * id| <= 127 (1 + 2^-23): every value rounds into [-127, 127], no saturation */
            const __m512 mul = _mm512_set1_ps(id);
            vn_store_i32_sat_i8(qb, vn_cvt_ps_i32(_mm512_mul_ps(v0, mul)));
            vn_store_i32_sat_i8(qb + 16, vn_cvt_ps_i32(_mm512_mul_ps(v1, mul)));
            amax[i] = am;
        }

        /* block sums from the stored quants (a short last chunk goes through a padded copy) */
        int32_t run[16];
        if (n == VN_CHUNK) {
            _mm512_storeu_si512(run, vn_sums16(qs + i0 * AMXQ_QK));
        } else {
            int8_t tmp[VN_CHUNK * AMXQ_QK] = {0};
            memcpy(tmp, qs + i0 * AMXQ_QK, (size_t)n * AMXQ_QK);
            _mm512_storeu_si512(run, vn_sums16(tmp));
        }
        int32_t bsum[VN_CHUNK];
        for (int i = 0; i < VN_CHUNK; i++)
            bsum[i] = run[2 * i] + run[2 * i + 1];

        /* d = fp16(amax / 127) and s = fp16(d * sum), eight blocks at a time (F16C, exact) */
        const __m256 dv = _mm256_div_ps(_mm256_loadu_ps(amax), _mm256_set1_ps(127.0f));
        const __m256 sv =
            _mm256_mul_ps(dv, _mm256_cvtepi32_ps(_mm256_loadu_si256((const __m256i *)bsum)));
        float df[VN_CHUNK], sf[VN_CHUNK];
        _mm256_storeu_ps(df, _mm256_cvtph_ps(_mm256_cvtps_ph(dv, _MM_FROUND_TO_NEAREST_INT)));
        _mm256_storeu_ps(sf, _mm256_cvtph_ps(_mm256_cvtps_ph(sv, _MM_FROUND_TO_NEAREST_INT)));
        for (int i = 0; i < n; i++) {
            if (special >> i & 1u) {
                df[i] = amxq_fp16_to_fp32(sp[i].d);
                sf[i] = amxq_fp16_to_fp32(sp[i].s);
            }
            d[i0 + i] = df[i];
            if (s)
                s[i0 + i] = sf[i];
            sums[i0 + i] = (int16_t)bsum[i]; /* |sum| <= 32 * 128 */
        }
    }
}

static void quantize_ws_32(const float *x, int64_t ldx, int64_t m0, int64_t m1, const amxq_qx *qx)
{
    for (int64_t m = m0; m < m1; m++)
        quantize_row_32(x + m * ldx, qx->k, qx->qs + m * qx->ld_qs, qx->d + m * qx->ld_d,
                        qx->s ? qx->s + m * qx->ld_d : NULL, qx->sums + m * qx->ld_sums);
}

AMXQ_DECL_QUANTIZE_FN(AMXQ_VNNI(amxq_quantize_q8_0))
{
    quantize_ws_32(x, ldx, m0, m1, qx);
}

AMXQ_DECL_QUANTIZE_FN(AMXQ_VNNI(amxq_quantize_q8_1))
{
    quantize_ws_32(x, ldx, m0, m1, qx);
}

/* ---- Q8_K ----------------------------------------------------------------------------------- */

static void quantize_block_256(const float *x, int8_t *qs, float *d, int16_t *bsums)
{
    /* maxps(new, acc) keeps acc when the new lane is NaN: NaN never becomes the max, as in the
     * reference's strict `ax > amax` */
    __m512 acc = _mm512_setzero_ps();
    for (int v = 0; v < 16; v++)
        acc = _mm512_max_ps(vn_abs_ps(_mm512_loadu_ps(x + 16 * v)), acc);
    const float amax = vn_reduce_max_ps(acc);
    if (amax == 0.0f) {
        memset(qs, 0, AMXQ_QK_K);
        *d = 0.0f;
        memset(bsums, 0, 16 * sizeof *bsums);
        return;
    }
    /* the first x whose magnitude is amax gives the sign */
    int first = 0;
    const __m512 am = _mm512_set1_ps(amax);
    for (int v = 0; v < 16; v++) {
        const __mmask16 eq =
            _mm512_cmp_ps_mask(vn_abs_ps(_mm512_loadu_ps(x + 16 * v)), am, _CMP_EQ_OQ);
        if (eq) {
            first = 16 * v + __builtin_ctz((unsigned)eq);
            break;
        }
    }
    const float iscale = -127.0f / x[first];
    const __m512 sc = _mm512_set1_ps(iscale);
    const __m512 magic = _mm512_set1_ps(12582912.0f); /* 1.5 * 2^23 */
    const __m512i mant = _mm512_set1_epi32(0x007fffff), bias = _mm512_set1_epi32(0x00400000);
    const __m512i top = _mm512_set1_epi32(127);
    for (int v = 0; v < 16; v++) {
        const __m512 t = _mm512_add_ps(_mm512_mul_ps(sc, _mm512_loadu_ps(x + 16 * v)), magic);
        __m512i q = _mm512_sub_epi32(_mm512_and_si512(_mm512_castps_si512(t), mant), bias);
        q = _mm512_min_epi32(q, top);
        vn_store_i32_as_i8(qs + 16 * v, q); /* the low byte, as ggml's int -> int8_t store */
    }
    vn_store_i32_as_i16(bsums, vn_sums16(qs)); /* |bsum| <= 16 * 128 */
    *d = 1.0f / iscale;
}

AMXQ_DECL_QUANTIZE_FN(AMXQ_VNNI(amxq_quantize_q8_k))
{
    const int64_t nb = qx->k / AMXQ_QK_K;
    for (int64_t m = m0; m < m1; m++) {
        const float *xr = x + m * ldx;
        for (int64_t i = 0; i < nb; i++)
            quantize_block_256(xr + i * AMXQ_QK_K, qx->qs + m * qx->ld_qs + i * AMXQ_QK_K,
                               qx->d + m * qx->ld_d + i, qx->sums + m * qx->ld_sums + i * 16);
    }
}
