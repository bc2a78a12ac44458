/* cpu_convert.c — bulk f32 <-> f16/bf16 conversions for the CPU kernels (see
 * cpu_convert.h). f16 uses F16C (vcvtps2ph with round to nearest even is
 * what mlxn_f32_to_f16 computes, NaN included: quiet bit set, top payload
 * bits kept; vcvtph2ps, whose NaN lanes are rebuilt to keep signalling NaNs
 * as the scalar widening does); bf16 uses integer AVX2: widen is a 16-bit shift,
 * narrow adds 0x7fff + lsb (round to nearest even) and quiets NaN with 0x40
 * like mlxn_f32_to_bf16. Tails and machines without AVX2/F16C use the scalar
 * functions. */
#include "backend/cpu/cpu_convert.h"

#if defined(__x86_64__)
#include <immintrin.h>

__attribute__((target("avx2,f16c"))) static int64_t widen_simd(const void *src, mlxn_dtype t, int64_t i0, int64_t n,
                                                                float *dst) {
    const uint16_t *s = (const uint16_t *)src + i0;
    int64_t j = 0;
    if (t == MLXN_F16) {
        /* vcvtph2ps quiets signalling NaNs; the scalar conversion keeps the payload as is, so NaN lanes are
         * rebuilt from the bits: sign | 0x7f800000 | mantissa << 13 */
        const __m256i sgn = _mm256_set1_epi32(0x8000), man = _mm256_set1_epi32(0x3ff), inf = _mm256_set1_epi32(0x7f800000);
        for (; j + 8 <= n; j += 8) {
            __m128i h = _mm_loadu_si128((const __m128i *)(s + j));
            __m256 v = _mm256_cvtph_ps(h);
            __m256 isnan = _mm256_cmp_ps(v, v, _CMP_UNORD_Q);
            if (!_mm256_testz_ps(isnan, isnan)) {
                __m256i w = _mm256_cvtepu16_epi32(h);
                __m256i bits = _mm256_or_si256(_mm256_or_si256(_mm256_slli_epi32(_mm256_and_si256(w, sgn), 16), inf),
                                               _mm256_slli_epi32(_mm256_and_si256(w, man), 13));
                v = _mm256_blendv_ps(v, _mm256_castsi256_ps(bits), isnan);
            }
            _mm256_storeu_ps(dst + j, v);
        }
    } else {
        for (; j + 8 <= n; j += 8) {
            __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(s + j)));
            _mm256_storeu_ps(dst + j, _mm256_castsi256_ps(_mm256_slli_epi32(w, 16)));
        }
    }
    return j;
}

__attribute__((target("avx2,f16c"))) static int64_t narrow_simd(const float *src, void *dst, mlxn_dtype t, int64_t i0,
                                                                 int64_t n) {
    uint16_t *d = (uint16_t *)dst + i0;
    int64_t j = 0;
    if (t == MLXN_F16) {
        for (; j + 8 <= n; j += 8)
            _mm_storeu_si128((__m128i *)(d + j), _mm256_cvtps_ph(_mm256_loadu_ps(src + j), _MM_FROUND_TO_NEAREST_INT));
    } else {
        const __m256i one = _mm256_set1_epi32(1), bias = _mm256_set1_epi32(0x7fff), quiet = _mm256_set1_epi32(0x40);
        for (; j + 8 <= n; j += 8) {
            __m256 v = _mm256_loadu_ps(src + j);
            __m256i u = _mm256_castps_si256(v);
            __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), one);
            __m256i r = _mm256_srli_epi32(_mm256_add_epi32(u, _mm256_add_epi32(bias, lsb)), 16);
            __m256i nanv = _mm256_or_si256(_mm256_srli_epi32(u, 16), quiet);
            __m256i isnan = _mm256_castps_si256(_mm256_cmp_ps(v, v, _CMP_UNORD_Q));
            r = _mm256_blendv_epi8(r, nanv, isnan);
            /* pack the 8 low halves: packus works per 128-bit lane, then fix the lane order */
            __m256i pk = _mm256_packus_epi32(r, r);
            pk = _mm256_permute4x64_epi64(pk, 0x08); /* lanes [0, 2] hold the 8 results */
            _mm_storeu_si128((__m128i *)(d + j), _mm256_castsi256_si128(pk));
        }
    }
    return j;
}
#endif

static int simd_ok(void) {
#if defined(__x86_64__)
    const mlxn_cpu_features *f = mlxn_cpu_detect_features();
    return f->avx2 && f->f16c;
#else
    return 0;
#endif
}

void mlxn_cpu_widen(const void *src, mlxn_dtype t, int64_t i0, int64_t n, float *dst) {
    int64_t j = 0;
    if (t == MLXN_F32) {
        const float *s = (const float *)src + i0;
        for (; j < n; j++) dst[j] = s[j];
        return;
    }
#if defined(__x86_64__)
    if (simd_ok()) j = widen_simd(src, t, i0, n, dst);
#endif
    for (; j < n; j++) dst[j] = mlxn_load_f(src, t, i0 + j);
}

void mlxn_cpu_narrow(const float *src, void *dst, mlxn_dtype t, int64_t i0, int64_t n) {
    int64_t j = 0;
    if (t == MLXN_F32) {
        float *d = (float *)dst + i0;
        for (; j < n; j++) d[j] = src[j];
        return;
    }
#if defined(__x86_64__)
    if (simd_ok()) j = narrow_simd(src, dst, t, i0, n);
#endif
    for (; j < n; j++) mlxn_store_f(dst, t, i0 + j, src[j]);
}
