/* cpu_matmul_avx2.c — AVX2/FMA/F16C kernels for the CPU matmul: activation
 * quantization to int8 blocks (per-block scale dx = max|x|/127, values
 * rounded to nearest even), integer block dot products for GGUF Q4_0, Q4_1,
 * Q8_0, Q4_K, Q5_K, Q6_K and MLX affine 4-bit and 8-bit weights (vpmaddubsw with
 * the unsigned weight codes against the signed activations, vpmaddwd to
 * int32, one f32 FMA per block/group), and f32 FMA dot products for dense
 * f32/f16/bf16 rows. Each kernel decodes a weight row once and applies it to
 * up to 4 activation rows (the M tile). Compiled with per-function target
 * attributes, so the build needs no -march flag; cpu_matmul.c calls these
 * only when mlxn_cpu_detect_features() reports avx2+fma+f16c. All loads are
 * unaligned (_mm256_loadu_*, memcpy): weights may sit at any byte offset. */
#include "backend/cpu/cpu_quant_kernels.h"

#if defined(__x86_64__)

#include <immintrin.h>
#include <string.h>

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma,f16c"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")
#endif

#define AI static inline __attribute__((always_inline))
#ifndef PF_DIST
#define PF_DIST 2048
#endif /* bytes of weight data prefetched ahead */

AI float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}
AI int hsum8i(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
}
AI float f16_at(const uint8_t *p) { uint16_t h; memcpy(&h, p, 2); return _cvtsh_ss(h); }
AI float scale_at(const uint8_t *p, mlxn_dtype t, int64_t i) {
    if (t == MLXN_F32) { float f; memcpy(&f, p + 4 * i, 4); return f; }
    uint16_t h;
    memcpy(&h, p + 2 * i, 2);
    if (t == MLXN_F16) return _cvtsh_ss(h);
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}
AI __m256 load8_f(const uint8_t *p, mlxn_dtype t) {
    if (t == MLXN_F32) return _mm256_loadu_ps((const float *)(const void *)p);
    __m128i h = _mm_loadu_si128((const __m128i *)(const void *)p);
    if (t == MLXN_F16) return _mm256_cvtph_ps(h);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}
AI float load1_f(const uint8_t *p, mlxn_dtype t) { return scale_at(p, t, 0); }

/* ---------------------------------------------------------------- activation quantization */

/* Quantize n (multiple of 32) values of x into q (natural order); returns dx,
 * writes the exact f32 sum to *sum and the integer sum of q to *isum. */
static float quant_block(const float *x, int64_t n, int8_t *q, float *sum, int *isum) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 mx = _mm256_setzero_ps(), sm = _mm256_setzero_ps();
    for (int64_t i = 0; i < n; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        mx = _mm256_max_ps(mx, _mm256_andnot_ps(sign, v));
        sm = _mm256_add_ps(sm, v);
    }
    __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(mx), _mm256_extractf128_ps(mx, 1));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
    const float amax = _mm_cvtss_f32(m4);
    const float dx = amax / 127.0f;
    const __m256 id = _mm256_set1_ps(amax > 0.0f ? 127.0f / amax : 0.0f);
    const __m256i perm = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    __m256i isv = _mm256_setzero_si256();
    for (int64_t i = 0; i < n; i += 32) {
        __m256i a = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + i), id));
        __m256i b = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + i + 8), id));
        __m256i c = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + i + 16), id));
        __m256i d = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + i + 24), id));
        isv = _mm256_add_epi32(isv, _mm256_add_epi32(_mm256_add_epi32(a, b), _mm256_add_epi32(c, d)));
        __m256i ab = _mm256_packs_epi32(a, b), cd = _mm256_packs_epi32(c, d);
        __m256i r = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(ab, cd), perm);
        _mm256_storeu_si256((__m256i *)(void *)(q + i), r);
    }
    *sum = hsum8(sm);
    *isum = hsum8i(isv);
    return dx;
}

int mlxn_cpu_avx2_quantize_x(cpu_qkind kind, const float *x, int64_t M, int64_t K, int group, cpu_xq *xq) {
    const int64_t nblk = K / 32;
    xq->K = K;
    xq->nblk = nblk;
    const int64_t c = group == 32 ? 32 : 64; /* MLX4 permutation chunk */
    int8_t tmp[64];
    for (int64_t m = 0; m < M; m++) {
        const float *xr = x + m * K;
        int8_t *qr = xq->q + m * K;
        for (int64_t b = 0; b < nblk; b++) {
            float sum;
            int isum;
            int8_t *dst = kind == CPU_Q_MLX4 ? tmp + (b * 32) % c : qr + b * 32;
            float dx = quant_block(xr + b * 32, 32, dst, &sum, &isum);
            xq->d[m * nblk + b] = dx;
            xq->s[m * nblk + b] = sum;
            xq->t[m * nblk + b] = dx * (float)isum;
            if (kind == CPU_Q_MLX4 && ((b + 1) * 32) % c == 0) {
                /* chunk of c values complete: store as [even elements | odd elements] */
                int8_t *out = qr + (b + 1) * 32 - c;
                for (int64_t j = 0; j < c / 2; j++) {
                    out[j] = tmp[2 * j];
                    out[c / 2 + j] = tmp[2 * j + 1];
                }
            }
            if (xq->bs) {
                const int8_t *src = qr + b * 32;
                for (int j = 0; j < 2; j++) {
                    int a = 0;
                    for (int l = 0; l < 16; l++) a += src[16 * j + l];
                    xq->bs[m * (K / 16) + 2 * b + j] = (int16_t)a;
                }
            }
        }
        if (xq->sg)
            for (int64_t g = 0; g < K / group; g++) {
                float S = 0.0f, T = 0.0f;
                for (int64_t j = g * (group / 32); j < (g + 1) * (group / 32); j++) { S += xq->s[m * nblk + j]; T += xq->t[m * nblk + j]; }
                xq->sg[m * (K / group) + g] = S;
                xq->ug[m * (K / group) + g] = 8.0f * (S - T);
            }
        if (xq->dp) /* per 256 values: dx of blocks {0,2,4,6,1,3,5,7} */
            for (int64_t q = 0; q < K / 256; q++)
                for (int l = 0; l < 8; l++) xq->dp[m * (K / 256) * 8 + q * 8 + l] = xq->d[m * nblk + q * 8 + (l < 4 ? 2 * l : 2 * (l - 4) + 1)];
    }
    return 1;
}

/* ---------------------------------------------------------------- block dot kernels (NR <= 4) */

/* The 32-value block types Q4_0 (T=0), Q4_1 (T=1) and Q8_0 (T=2), four blocks
 * per step: the four int32x8 block dots are reduced with vphaddd to one
 * int32x4, converted once and scaled by {d_k * dx_k} in one FMA. */
#define Q32_BYTES(T) ((T) == 0 ? 18 : (T) == 1 ? 20 : 34)

AI __m256i q32_codes(const uint8_t *bp, const int T) {
    if (T == 2) return _mm256_loadu_si256((const __m256i *)(const void *)(bp + 2));
    /* [v | v] >> {0 x4, 4 x4} & 15 = [low nibbles | high nibbles]: one load uop + 2 ALU ops */
    __m256i v = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(const void *)(bp + (T == 0 ? 2 : 4))));
    return _mm256_and_si256(_mm256_srlv_epi32(v, _mm256_setr_epi32(0, 0, 0, 0, 4, 4, 4, 4)), _mm256_set1_epi8(0x0F));
}
AI __m256i q32_dot(__m256i q, const int8_t *x, const int T) {
    const __m256i ones = _mm256_set1_epi16(1);
    __m256i xv = _mm256_loadu_si256((const __m256i *)(const void *)x);
    if (T == 2) return _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_sign_epi8(q, q), _mm256_sign_epi8(xv, q)), ones);
    return _mm256_madd_epi16(_mm256_maddubs_epi16(q, xv), ones);
}
AI __m128i reduce4(__m256i p0, __m256i p1, __m256i p2, __m256i p3) {
    __m256i h = _mm256_hadd_epi32(_mm256_hadd_epi32(p0, p1), _mm256_hadd_epi32(p2, p3));
    return _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
}
AI uint16_t u16_at(const uint8_t *p) { uint16_t h; memcpy(&h, p, 2); return h; }

AI void dot_q32(const cpu_wdesc *w, int64_t row, const cpu_xq *xq, int64_t m0, const int NR, const int T, float *out) {
    const int BB = Q32_BYTES(T);
    const uint8_t *wr = w->data + row * w->row_bytes;
    const int64_t nb = w->K / 32;
    __m128 acc[4], cacc[4];
    for (int r = 0; r < NR; r++) { acc[r] = _mm_setzero_ps(); cacc[r] = _mm_setzero_ps(); }
    int64_t b = 0;
    for (; b + 4 <= nb; b += 4) {
        const uint8_t *bp = wr + b * BB;
        for (int l = 0; l < 4 * BB; l += 64) _mm_prefetch((const char *)(bp + PF_DIST + l), _MM_HINT_T0);
        const __m128 dw = _mm_cvtph_ps(_mm_setr_epi16((short)u16_at(bp), (short)u16_at(bp + BB), (short)u16_at(bp + 2 * BB),
                                                      (short)u16_at(bp + 3 * BB), 0, 0, 0, 0));
        __m128 mw = _mm_setzero_ps();
        if (T == 1)
            mw = _mm_cvtph_ps(_mm_setr_epi16((short)u16_at(bp + 2), (short)u16_at(bp + BB + 2), (short)u16_at(bp + 2 * BB + 2),
                                             (short)u16_at(bp + 3 * BB + 2), 0, 0, 0, 0));
        const __m256i q0 = q32_codes(bp, T), q1 = q32_codes(bp + BB, T), q2 = q32_codes(bp + 2 * BB, T),
                      q3 = q32_codes(bp + 3 * BB, T);
        for (int r = 0; r < NR; r++) {
            const int64_t m = m0 + r, xb = m * xq->nblk + b;
            const int8_t *xr = xq->q + m * xq->K + b * 32;
            __m128i p = reduce4(q32_dot(q0, xr, T), q32_dot(q1, xr + 32, T), q32_dot(q2, xr + 64, T), q32_dot(q3, xr + 96, T));
            acc[r] = _mm_fmadd_ps(_mm_mul_ps(dw, _mm_loadu_ps(xq->d + xb)), _mm_cvtepi32_ps(p), acc[r]);
            if (T == 0) { /* sum((q-8) xq) dx = dot dx - 8 t */
                cacc[r] = _mm_fmadd_ps(dw, _mm_loadu_ps(xq->t + xb), cacc[r]);
            } else if (T == 1) { /* centred: w = d(q-8) + (m+8d) */
                const __m128 d8 = _mm_mul_ps(dw, _mm_set1_ps(8.0f));
                cacc[r] = _mm_fmadd_ps(_mm_add_ps(mw, d8), _mm_loadu_ps(xq->s + xb), cacc[r]);
                cacc[r] = _mm_fnmadd_ps(d8, _mm_loadu_ps(xq->t + xb), cacc[r]);
            }
        }
    }
    float tail[4] = {0, 0, 0, 0};
    for (; b < nb; b++) {
        const uint8_t *bp = wr + b * BB;
        const float d = f16_at(bp), mn = T == 1 ? f16_at(bp + 2) : 0.0f;
        const __m256i q = q32_codes(bp, T);
        for (int r = 0; r < NR; r++) {
            const int64_t m = m0 + r, xb = m * xq->nblk + b;
            float v = (float)hsum8i(q32_dot(q, xq->q + m * xq->K + b * 32, T)) * d * xq->d[xb];
            if (T == 0) v -= 8.0f * d * xq->t[xb];
            else if (T == 1) v += (mn + 8.0f * d) * xq->s[xb] - 8.0f * d * xq->t[xb];
            tail[r] += v;
        }
    }
    for (int r = 0; r < NR; r++) {
        __m128 v = T == 0 ? _mm_fnmadd_ps(_mm_set1_ps(8.0f), cacc[r], acc[r]) : _mm_add_ps(acc[r], cacc[r]);
        v = _mm_add_ps(v, _mm_movehl_ps(v, v));
        v = _mm_add_ss(v, _mm_movehdup_ps(v));
        out[r] = _mm_cvtss_f32(v) + tail[r];
    }
}

/* Sum each of 8 int32x8 vectors: lane j of the result = sum of p[j]. */
AI __m256i reduce8(const __m256i *p) {
    __m256i a = _mm256_hadd_epi32(_mm256_hadd_epi32(p[0], p[1]), _mm256_hadd_epi32(p[2], p[3]));
    __m256i b = _mm256_hadd_epi32(_mm256_hadd_epi32(p[4], p[5]), _mm256_hadd_epi32(p[6], p[7]));
    return _mm256_add_epi32(_mm256_permute2x128_si256(a, b, 0x20), _mm256_permute2x128_si256(a, b, 0x31));
}

/* Load 8 consecutive scales/biases (f32, f16 or bf16) as f32. */
AI __m256 load8_scales(const uint8_t *p, mlxn_dtype t, int64_t i) {
    return load8_f(p + i * (t == MLXN_F32 ? 4 : 2), t);
}

/* Load 4 consecutive scales (f32, f16 or bf16) as f32. */
AI __m128 load4_scales(const uint8_t *p, mlxn_dtype t, int64_t i) {
    if (t == MLXN_F32) return _mm_loadu_ps((const float *)(const void *)(p + 4 * i));
    __m128i h = _mm_loadl_epi64((const __m128i *)(const void *)(p + 2 * i));
    if (t == MLXN_F16) return _mm_cvtph_ps(h);
    return _mm_castsi128_ps(_mm_slli_epi32(_mm_cvtepu16_epi32(h), 16));
}

/* MLX affine 4-bit, x in blocks of 32.
 * Group 32: one 16-byte load -> [low nibbles | high nibbles] = [even | odd
 * elements] of one x block; one FMA per group.
 * Group >= 64: a 32-byte load holds 64 values; its low nibbles are the even
 * elements, its high nibbles the odd ones, and 128-bit lane 0 / 1 belongs to
 * x block 2c / 2c+1. Two vphaddd of four chunk dots give the 8 block sums
 * [A0..A3 | B0..B3] of 4 chunks, scaled in one FMA by s * dx (dx stored in
 * that order as xq->dp).
 * Centred: w = s(q-8) + (b+8s), so y = sum s*dx*dot(q, xq) + b*S_g +
 * s*8*(S_g - T_g); the last two terms are vector dot products over groups. */
AI void dot_mlx4(const cpu_wdesc *w, int64_t row, const cpu_xq *xq, int64_t m0, const int NR, const int G,
                 float *out) {
    const uint8_t *wr = w->data + row * w->row_bytes;
    const int64_t ng = w->K / G;
    const uint8_t *sc = w->scales, *bi = w->biases;
    const int64_t sbase = row * ng;
    const mlxn_dtype sdt = w->sdt;
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 acc[4];
    float tail[4] = {0, 0, 0, 0};
    for (int r = 0; r < NR; r++) acc[r] = _mm256_setzero_ps();
    if (G == 32) {
        for (int64_t g = 0; g < ng; g++) {
            if ((g & 7) == 0) _mm_prefetch((const char *)(wr + g * 16 + PF_DIST), _MM_HINT_T0);
            const float s = scale_at(sc, sdt, sbase + g);
            __m256i v = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(const void *)(wr + g * 16)));
            __m256i q = _mm256_and_si256(_mm256_srlv_epi32(v, _mm256_setr_epi32(0, 0, 0, 0, 4, 4, 4, 4)), m4);
            for (int r = 0; r < NR; r++) {
                const int64_t m = m0 + r;
                __m256i xv = _mm256_loadu_si256((const __m256i *)(const void *)(xq->q + m * xq->K + g * 32));
                __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(q, xv), ones);
                acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(s * xq->d[m * xq->nblk + g]), _mm256_cvtepi32_ps(p), acc[r]);
            }
        }
    } else {
        const int64_t nch = w->K / 64;
        int64_t c = 0;
        for (; c + 4 <= nch; c += 4) {
            const uint8_t *cp = wr + c * 32;
            _mm_prefetch((const char *)(cp + PF_DIST), _MM_HINT_T0);
            _mm_prefetch((const char *)(cp + PF_DIST + 64), _MM_HINT_T0);
            __m128 s4;
            if (G == 64) s4 = load4_scales(sc, sdt, sbase + c);
            else {
                const float s0 = scale_at(sc, sdt, sbase + c / 2), s1 = scale_at(sc, sdt, sbase + c / 2 + 1);
                s4 = _mm_setr_ps(s0, s0, s1, s1);
            }
            const __m256 sv = _mm256_set_m128(s4, s4);
            __m256i lo[4], hi[4];
            for (int k = 0; k < 4; k++) {
                __m256i v = _mm256_loadu_si256((const __m256i *)(const void *)(cp + 32 * k));
                lo[k] = _mm256_and_si256(v, m4);
                hi[k] = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
            }
            for (int r = 0; r < NR; r++) {
                const int64_t m = m0 + r;
                const int8_t *xr = xq->q + m * xq->K + c * 64;
                __m256i p[4];
                for (int k = 0; k < 4; k++) {
                    __m256i a = _mm256_maddubs_epi16(lo[k], _mm256_loadu_si256((const __m256i *)(const void *)(xr + 64 * k)));
                    __m256i b = _mm256_maddubs_epi16(hi[k], _mm256_loadu_si256((const __m256i *)(const void *)(xr + 64 * k + 32)));
                    /* |lane| <= 2*15*127 = 3810 per maddubs: the sum fits in int16 */
                    p[k] = _mm256_madd_epi16(_mm256_add_epi16(a, b), ones);
                }
                __m256i h = _mm256_hadd_epi32(_mm256_hadd_epi32(p[0], p[1]), _mm256_hadd_epi32(p[2], p[3]));
                __m256 dxv = _mm256_loadu_ps(xq->dp + m * (xq->K / 256) * 8 + (c / 4) * 8);
                acc[r] = _mm256_fmadd_ps(_mm256_mul_ps(sv, dxv), _mm256_cvtepi32_ps(h), acc[r]);
            }
        }
        for (; c < nch; c++) { /* tail chunks */
            const float s = scale_at(sc, sdt, sbase + c * 64 / G);
            __m256i v = _mm256_loadu_si256((const __m256i *)(const void *)(wr + c * 32));
            __m256i lo = _mm256_and_si256(v, m4), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
            for (int r = 0; r < NR; r++) {
                const int64_t m = m0 + r;
                const int8_t *xr = xq->q + m * xq->K + c * 64;
                __m256i a = _mm256_maddubs_epi16(lo, _mm256_loadu_si256((const __m256i *)(const void *)xr));
                __m256i b = _mm256_maddubs_epi16(hi, _mm256_loadu_si256((const __m256i *)(const void *)(xr + 32)));
                __m256i p = _mm256_madd_epi16(_mm256_add_epi16(a, b), ones);
                __m128i pa = _mm256_castsi256_si128(p), pb = _mm256_extracti128_si256(p, 1);
                pa = _mm_add_epi32(pa, _mm_shuffle_epi32(pa, 0x4e));
                pa = _mm_add_epi32(pa, _mm_shuffle_epi32(pa, 0xb1));
                pb = _mm_add_epi32(pb, _mm_shuffle_epi32(pb, 0x4e));
                pb = _mm_add_epi32(pb, _mm_shuffle_epi32(pb, 0xb1));
                tail[r] += s * (xq->d[m * xq->nblk + 2 * c] * (float)_mm_cvtsi128_si32(pa) +
                                xq->d[m * xq->nblk + 2 * c + 1] * (float)_mm_cvtsi128_si32(pb));
            }
        }
    }
    /* bias and centring terms: sum_g b*S_g + s*U_g */
    __m256 cacc[4];
    for (int r = 0; r < NR; r++) cacc[r] = _mm256_setzero_ps();
    int64_t g = 0;
    for (; g + 8 <= ng; g += 8) {
        const __m256 svec = load8_scales(sc, sdt, sbase + g), bvec = load8_scales(bi, sdt, sbase + g);
        for (int r = 0; r < NR; r++) {
            const int64_t gi = (m0 + r) * ng + g;
            cacc[r] = _mm256_fmadd_ps(bvec, _mm256_loadu_ps(xq->sg + gi), cacc[r]);
            cacc[r] = _mm256_fmadd_ps(svec, _mm256_loadu_ps(xq->ug + gi), cacc[r]);
        }
    }
    for (; g < ng; g++) {
        const float s = scale_at(sc, sdt, sbase + g), bb = scale_at(bi, sdt, sbase + g);
        for (int r = 0; r < NR; r++) {
            const int64_t gi = (m0 + r) * ng + g;
            tail[r] += bb * xq->sg[gi] + s * xq->ug[gi];
        }
    }
    for (int r = 0; r < NR; r++) out[r] = hsum8(_mm256_add_ps(acc[r], cacc[r])) + tail[r];
}

/* MLX affine 8-bit: q - 128 as signed bytes, sign trick for vpmaddubsw. */
AI void dot_mlx8(const cpu_wdesc *w, int64_t row, const cpu_xq *xq, int64_t m0, const int NR, const int G,
                 float *out) {
    const uint8_t *wr = w->data + row * w->row_bytes;
    const int64_t ng = w->K / G;
    const uint8_t *sc = w->scales, *bi = w->biases;
    const int64_t sbase = row * ng;
    const mlxn_dtype sdt = w->sdt;
    const __m256i x80 = _mm256_set1_epi8((char)0x80);
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 acc[4];
    float corr[4];
    for (int r = 0; r < NR; r++) { acc[r] = _mm256_setzero_ps(); corr[r] = 0.0f; }
    for (int64_t g = 0; g < ng; g++) {
        const float s = scale_at(sc, sdt, sbase + g), bb = scale_at(bi, sdt, sbase + g);
        for (int c = 0; c < G / 32; c++) {
            __m256i q = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(const void *)(wr + g * G + 32 * c)), x80);
            __m256i aq = _mm256_sign_epi8(q, q); /* |q-128| <= 128 (0x80 reads as 128 unsigned) */
            const int64_t blk = g * (G / 32) + c;
            for (int r = 0; r < NR; r++) {
                const int64_t m = m0 + r;
                __m256i xv = _mm256_loadu_si256((const __m256i *)(const void *)(xq->q + m * xq->K + blk * 32));
                __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(aq, _mm256_sign_epi8(xv, q)), ones);
                acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(s * xq->d[m * xq->nblk + blk]), _mm256_cvtepi32_ps(p), acc[r]);
                corr[r] += (bb + 128.0f * s) * xq->s[m * xq->nblk + blk];
            }
        }
    }
    for (int r = 0; r < NR; r++) out[r] = hsum8(acc[r]) + corr[r];
}

/* Q4_K (Q5 = 0) and Q5_K (Q5 = 1): w = d*sc*q - dmin*m per sub-block of 32
 * (6-bit sc, m; q 4-bit, or 5-bit with the fifth bit from qh), centred as
 * d*sc*(q-C) + (C*d*sc - dmin*m), C = 8 or 16, so the int8 error term is
 * small. The 8 sub-block dots are reduced to one int32x8 and scaled by
 * {d*sc_j*dx_j}. */
AI void dot_qk45(const cpu_wdesc *w, int64_t row, const cpu_xq *xq, int64_t m0, const int NR, const int Q5, float *out) {
    const int BB = Q5 ? 176 : 144, QS = Q5 ? 48 : 16;
    const uint8_t *wr = w->data + row * w->row_bytes;
    const int64_t nb = w->K / 256;
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    const __m256i ones = _mm256_set1_epi16(1);
    const __m256 eight = _mm256_set1_ps(Q5 ? 16.0f : 8.0f); /* the centre C */
    const __m256i m1 = _mm256_set1_epi8(1);
    __m256 acc[4];
    for (int r = 0; r < NR; r++) acc[r] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *bp = wr + b * BB;
        for (int l = 0; l < BB; l += 64) _mm_prefetch((const char *)(bp + PF_DIST + l), _MM_HINT_T0);
        /* unpack the 12 scale bytes into 8 scales and 8 mins (as ggml does) */
        uint32_t u[4];
        memcpy(u, bp + 4, 12);
        const uint32_t km1 = 0x3f3f3f3fu, km2 = 0x0f0f0f0fu, km3 = 0x03030303u;
        u[3] = ((u[2] >> 4) & km2) | (((u[1] >> 6) & km3) << 4);
        const uint32_t ua = u[1] & km1;
        u[1] = (u[2] & km2) | (((u[0] >> 6) & km3) << 4);
        u[2] = ua;
        u[0] &= km1;
        const __m256 scv = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_set_epi32(0, 0, (int)u[1], (int)u[0])));
        const __m256 mnv = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_set_epi32(0, 0, (int)u[3], (int)u[2])));
        const __m256 dsc = _mm256_mul_ps(_mm256_set1_ps(f16_at(bp)), scv);
        const __m256 cs = _mm256_fnmadd_ps(_mm256_set1_ps(f16_at(bp + 2)), mnv, _mm256_mul_ps(eight, dsc));
        __m256i lo[4], hi[4];
        const __m256i qhv = Q5 ? _mm256_loadu_si256((const __m256i *)(const void *)(bp + 16)) : _mm256_setzero_si256();
        for (int j = 0; j < 4; j++) {
            __m256i v = _mm256_loadu_si256((const __m256i *)(const void *)(bp + QS + 32 * j));
            lo[j] = _mm256_and_si256(v, m4);
            hi[j] = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
            if (Q5) { /* fifth bit: bit 2j (first 32 values) and 2j+1 (next 32) of qh[l] */
                lo[j] = _mm256_or_si256(lo[j], _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qhv, 2 * j), m1), 4));
                hi[j] = _mm256_or_si256(hi[j], _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qhv, 2 * j + 1), m1), 4));
            }
        }
        for (int r = 0; r < NR; r++) {
            const int64_t m = m0 + r, xb = m * xq->nblk + b * 8;
            const int8_t *xr = xq->q + m * xq->K + b * 256;
            __m256i p[8];
            for (int j = 0; j < 4; j++) {
                p[2 * j] = _mm256_madd_epi16(_mm256_maddubs_epi16(lo[j], _mm256_loadu_si256((const __m256i *)(const void *)(xr + 64 * j))), ones);
                p[2 * j + 1] = _mm256_madd_epi16(_mm256_maddubs_epi16(hi[j], _mm256_loadu_si256((const __m256i *)(const void *)(xr + 64 * j + 32))), ones);
            }
            const __m256 P = _mm256_cvtepi32_ps(reduce8(p));
            acc[r] = _mm256_fmadd_ps(_mm256_mul_ps(dsc, _mm256_loadu_ps(xq->d + xb)), P, acc[r]);
            acc[r] = _mm256_fmadd_ps(cs, _mm256_loadu_ps(xq->s + xb), acc[r]);
            acc[r] = _mm256_fnmadd_ps(_mm256_mul_ps(eight, dsc), _mm256_loadu_ps(xq->t + xb), acc[r]);
        }
    }
    for (int r = 0; r < NR; r++) out[r] = hsum8(acc[r]);
}

/* Q6_K: 6-bit codes q (0..63) from ql/qh, w = d*sc16*(q-32) with one int8
 * scale per 16 values (vpmaddwd by {sc_a x8, sc_b x8}); the 8 chunk dots of
 * 32 values are reduced to one int32x8 scaled by {d*dx_c}. */
AI void dot_q6_k(const cpu_wdesc *w, int64_t row, const cpu_xq *xq, int64_t m0, const int NR, float *out) {
    const uint8_t *wr = w->data + row * w->row_bytes;
    const int64_t nb = w->K / 256;
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    const __m256i m03 = _mm256_set1_epi8(0x03), m0c = _mm256_set1_epi8(0x0C), m30 = _mm256_set1_epi8(0x30),
                  mc0 = _mm256_set1_epi8((char)0xC0);
    const __m256 k32 = _mm256_set1_ps(32.0f);
    __m256 acc[4];
    for (int r = 0; r < NR; r++) acc[r] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *bp = wr + b * 210;
        for (int l = 0; l < 210; l += 64) _mm_prefetch((const char *)(bp + PF_DIST + l), _MM_HINT_T0);
        const __m128i sc8 = _mm_loadu_si128((const __m128i *)(const void *)(bp + 192)); /* 16 x i8 */
        const __m256i sc16 = _mm256_cvtepi8_epi16(sc8);
        const __m256 dv = _mm256_set1_ps(f16_at(bp + 208));
        __m256i qv[8], sv[8];
        for (int h = 0; h < 2; h++) {
            const uint8_t *ql = bp + 64 * h, *qh = bp + 128 + 32 * h;
            __m256i l0 = _mm256_loadu_si256((const __m256i *)(const void *)ql);
            __m256i l1 = _mm256_loadu_si256((const __m256i *)(const void *)(ql + 32));
            __m256i hv = _mm256_loadu_si256((const __m256i *)(const void *)qh);
            qv[4 * h + 0] = _mm256_or_si256(_mm256_and_si256(l0, m4), _mm256_slli_epi16(_mm256_and_si256(hv, m03), 4));
            qv[4 * h + 1] = _mm256_or_si256(_mm256_and_si256(l1, m4), _mm256_slli_epi16(_mm256_and_si256(hv, m0c), 2));
            qv[4 * h + 2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4), _mm256_and_si256(hv, m30));
            qv[4 * h + 3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4),
                                            _mm256_srli_epi16(_mm256_and_si256(hv, mc0), 2));
        }
        for (int c = 0; c < 8; c++) {
            const __m128i ctl = _mm_setr_epi8((char)(2 * c), (char)(2 * c), (char)(2 * c), (char)(2 * c), (char)(2 * c),
                                              (char)(2 * c), (char)(2 * c), (char)(2 * c), (char)(2 * c + 1), (char)(2 * c + 1),
                                              (char)(2 * c + 1), (char)(2 * c + 1), (char)(2 * c + 1), (char)(2 * c + 1),
                                              (char)(2 * c + 1), (char)(2 * c + 1));
            sv[c] = _mm256_cvtepi8_epi16(_mm_shuffle_epi8(sc8, ctl));
        }
        for (int r = 0; r < NR; r++) {
            const int64_t m = m0 + r, xb = m * xq->nblk + b * 8;
            const int8_t *xr = xq->q + m * xq->K + b * 256;
            __m256i p[8];
            for (int c = 0; c < 8; c++)
                p[c] = _mm256_madd_epi16(_mm256_maddubs_epi16(qv[c], _mm256_loadu_si256((const __m256i *)(const void *)(xr + 32 * c))), sv[c]);
            const __m256 D = _mm256_mul_ps(dv, _mm256_loadu_ps(xq->d + xb));
            /* q - 32: subtract 32 * sum_j sc_j * bs_j per chunk (lane c = sub-blocks 2c, 2c+1) */
            const __m256i cb = _mm256_madd_epi16(sc16, _mm256_loadu_si256((const __m256i *)(const void *)(xq->bs + m * (xq->K / 16) + b * 16)));
            const __m256 P = _mm256_fnmadd_ps(k32, _mm256_cvtepi32_ps(cb), _mm256_cvtepi32_ps(reduce8(p)));
            acc[r] = _mm256_fmadd_ps(D, P, acc[r]);
        }
    }
    for (int r = 0; r < NR; r++) out[r] = hsum8(acc[r]);
}

#define NR_SWITCH(call)                          \
    switch (nr) {                                \
    case 1: call(1); break;                      \
    case 2: call(2); break;                      \
    case 3: call(3); break;                      \
    default: call(4); break;                     \
    }

/* MLX affine 2/3/5/6-bit from unpacked codes (one byte per weight, natural
 * order, q <= 63 so vpmaddubsw cannot saturate), centred at C = 2^(bits-1):
 * w = s(q-C) + (b+Cs). */
AI void dot_mlxb(const cpu_wdesc *w, int64_t row, const uint8_t *codes, const cpu_xq *xq, int64_t m0, const int NR,
                 const int G, float C, float *out) {
    const int64_t ng = w->K / G;
    const uint8_t *sc = w->scales, *bi = w->biases;
    const int64_t sbase = row * ng;
    const mlxn_dtype sdt = w->sdt;
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 acc[4];
    float corr[4];
    for (int r = 0; r < NR; r++) { acc[r] = _mm256_setzero_ps(); corr[r] = 0.0f; }
    for (int64_t g = 0; g < ng; g++) {
        const float s = scale_at(sc, sdt, sbase + g), bb = scale_at(bi, sdt, sbase + g);
        for (int c = 0; c < G / 32; c++) {
            const int64_t blk = g * (G / 32) + c;
            __m256i q = _mm256_loadu_si256((const __m256i *)(const void *)(codes + blk * 32));
            for (int r = 0; r < NR; r++) {
                const int64_t m = m0 + r, bi2 = m * xq->nblk + blk;
                __m256i xv = _mm256_loadu_si256((const __m256i *)(const void *)(xq->q + m * xq->K + blk * 32));
                __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(q, xv), ones);
                acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(s * xq->d[bi2]), _mm256_cvtepi32_ps(p), acc[r]);
                corr[r] += (bb + C * s) * xq->s[bi2] - C * s * xq->t[bi2];
            }
        }
    }
    for (int r = 0; r < NR; r++) out[r] = hsum8(acc[r]) + corr[r];
}

void mlxn_cpu_avx2_dot_codes(const cpu_wdesc *w, int64_t row, const uint8_t *codes, const cpu_xq *xq, int64_t m0, int nr,
                             int bits, float *out) {
    const float C = (float)(1 << (bits - 1));
#define C_MB(n) dot_mlxb(w, row, codes, xq, m0, n, G_, C, out)
    if (w->group == 32) {
        enum { G_ = 32 };
        NR_SWITCH(C_MB);
    } else if (w->group == 64) {
        enum { G_ = 64 };
        NR_SWITCH(C_MB);
    } else {
        enum { G_ = 128 };
        NR_SWITCH(C_MB);
    }
#undef C_MB
}

void mlxn_cpu_avx2_dot_q(cpu_qkind kind, const cpu_wdesc *w, int64_t row, const cpu_xq *xq, int64_t m0, int nr,
                         float *out) {
    switch (kind) {
#define C_Q40(n) dot_q32(w, row, xq, m0, n, 0, out)
#define C_Q41(n) dot_q32(w, row, xq, m0, n, 1, out)
#define C_Q80(n) dot_q32(w, row, xq, m0, n, 2, out)
#define C_Q4K(n) dot_qk45(w, row, xq, m0, n, 0, out)
#define C_Q5K(n) dot_qk45(w, row, xq, m0, n, 1, out)
#define C_Q6K(n) dot_q6_k(w, row, xq, m0, n, out)
#define C_M4_32(n) dot_mlx4(w, row, xq, m0, n, 32, out)
#define C_M4_64(n) dot_mlx4(w, row, xq, m0, n, 64, out)
#define C_M4_128(n) dot_mlx4(w, row, xq, m0, n, 128, out)
#define C_M8_32(n) dot_mlx8(w, row, xq, m0, n, 32, out)
#define C_M8_64(n) dot_mlx8(w, row, xq, m0, n, 64, out)
#define C_M8_128(n) dot_mlx8(w, row, xq, m0, n, 128, out)
    case CPU_Q_Q4_0: NR_SWITCH(C_Q40); break;
    case CPU_Q_Q4_1: NR_SWITCH(C_Q41); break;
    case CPU_Q_Q8_0: NR_SWITCH(C_Q80); break;
    case CPU_Q_Q4_K: NR_SWITCH(C_Q4K); break;
    case CPU_Q_Q5_K: NR_SWITCH(C_Q5K); break;
    case CPU_Q_Q6_K: NR_SWITCH(C_Q6K); break;
    case CPU_Q_MLX4:
        if (w->group == 32) { NR_SWITCH(C_M4_32); }
        else if (w->group == 64) { NR_SWITCH(C_M4_64); }
        else { NR_SWITCH(C_M4_128); }
        break;
    case CPU_Q_MLX8:
        if (w->group == 32) { NR_SWITCH(C_M8_32); }
        else if (w->group == 64) { NR_SWITCH(C_M8_64); }
        else { NR_SWITCH(C_M8_128); }
        break;
    default: break;
    }
}

/* ---------------------------------------------------------------- MLX 3/6-bit code unpacking */

/* Unpack codes [j0, n) of an LSB-first bit stream p (bits 3 or 6) to bytes,
 * 32 codes per step, never reading at or past p + n*bits/8; returns the
 * number of codes done (a multiple of 32; the caller finishes the rest). */
int64_t mlxn_cpu_avx2_unpack_codes(const uint8_t *p, int64_t n, int bits, uint8_t *q) {
    const int64_t nbytes = n * bits / 8;
    int64_t j = 0;
    if (bits == 6) {
        /* 4 codes per 3 bytes: each dword gets bytes [3i, 3i+1, 3i+2] = a 24-bit
         * value v; the output dword is v&63 | (v>>6&63)<<8 | (v>>12&63)<<16 | (v>>18)<<24 */
        const __m256i ctl = _mm256_setr_epi8(0, 1, 2, -1, 3, 4, 5, -1, 6, 7, 8, -1, 9, 10, 11, -1,
                                             0, 1, 2, -1, 3, 4, 5, -1, 6, 7, 8, -1, 9, 10, 11, -1);
        const __m256i k0 = _mm256_set1_epi32(0x3F), k1 = _mm256_set1_epi32(0x3F00), k2 = _mm256_set1_epi32(0x3F0000),
                      k3 = _mm256_set1_epi32(0x3F000000);
        for (; j + 32 <= n && (j / 32) * 24 + 28 <= nbytes; j += 32) {
            const uint8_t *src = p + (j / 32) * 24;
            __m256i v = _mm256_loadu2_m128i((const __m128i *)(const void *)(src + 12), (const __m128i *)(const void *)src);
            v = _mm256_shuffle_epi8(v, ctl);
            __m256i o = _mm256_or_si256(_mm256_and_si256(v, k0), _mm256_and_si256(_mm256_slli_epi32(v, 2), k1));
            o = _mm256_or_si256(o, _mm256_and_si256(_mm256_slli_epi32(v, 4), k2));
            o = _mm256_or_si256(o, _mm256_and_si256(_mm256_slli_epi32(v, 6), k3));
            _mm256_storeu_si256((__m256i *)(void *)(q + j), o);
        }
    } else if (bits == 3) {
        /* 8 codes per 3 bytes: each qword gets bytes [3i, 3i+1, 3i+2]; output byte k = (v >> 3k) & 7 */
        const __m256i ctl = _mm256_setr_epi8(0, 1, 2, -1, -1, -1, -1, -1, 3, 4, 5, -1, -1, -1, -1, -1,
                                             6, 7, 8, -1, -1, -1, -1, -1, 9, 10, 11, -1, -1, -1, -1, -1);
        for (; j + 32 <= n && (j / 32) * 12 + 16 <= nbytes; j += 32) {
            const uint8_t *src = p + (j / 32) * 12;
            __m256i v = _mm256_shuffle_epi8(_mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(const void *)src)), ctl);
            __m256i o = _mm256_and_si256(v, _mm256_set1_epi64x(7));
            o = _mm256_or_si256(o, _mm256_and_si256(_mm256_slli_epi64(v, 5), _mm256_set1_epi64x(7ll << 8)));
            o = _mm256_or_si256(o, _mm256_and_si256(_mm256_slli_epi64(v, 10), _mm256_set1_epi64x(7ll << 16)));
            o = _mm256_or_si256(o, _mm256_and_si256(_mm256_slli_epi64(v, 15), _mm256_set1_epi64x(7ll << 24)));
            o = _mm256_or_si256(o, _mm256_and_si256(_mm256_slli_epi64(v, 20), _mm256_set1_epi64x(7ll << 32)));
            o = _mm256_or_si256(o, _mm256_and_si256(_mm256_slli_epi64(v, 25), _mm256_set1_epi64x(7ll << 40)));
            o = _mm256_or_si256(o, _mm256_and_si256(_mm256_slli_epi64(v, 30), _mm256_set1_epi64x(7ll << 48)));
            o = _mm256_or_si256(o, _mm256_and_si256(_mm256_slli_epi64(v, 35), _mm256_set1_epi64x(7ll << 56)));
            _mm256_storeu_si256((__m256i *)(void *)(q + j), o);
        }
    }
    return j;
}

/* ---------------------------------------------------------------- dense */

AI void dot_dense(mlxn_dtype wt, const uint8_t *wrow, const float *x, int64_t K, const int NR, float *out) {
    const size_t es = wt == MLXN_F32 ? 4 : 2;
    __m256 a0[4], a1[4];
    for (int r = 0; r < NR; r++) { a0[r] = _mm256_setzero_ps(); a1[r] = _mm256_setzero_ps(); }
    int64_t k = 0;
    for (; k + 16 <= K; k += 16) {
        _mm_prefetch((const char *)(wrow + k * es + 2 * PF_DIST), _MM_HINT_T0);
        if (es == 4) _mm_prefetch((const char *)(wrow + k * es + 2 * PF_DIST + 32), _MM_HINT_T0);
        __m256 w0 = load8_f(wrow + k * es, wt), w1 = load8_f(wrow + (k + 8) * es, wt);
        for (int r = 0; r < NR; r++) {
            a0[r] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x + r * K + k), a0[r]);
            a1[r] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(x + r * K + k + 8), a1[r]);
        }
    }
    for (int r = 0; r < NR; r++) {
        float s = hsum8(_mm256_add_ps(a0[r], a1[r]));
        for (int64_t kk = k; kk < K; kk++) s += load1_f(wrow + kk * es, wt) * x[r * K + kk];
        out[r] = s;
    }
}

void mlxn_cpu_avx2_dot_dense(mlxn_dtype wt, const uint8_t *wrow, const float *x, int64_t K, int nr, float *out) {
#define C_DD(n) dot_dense(wt, wrow, x, K, n, out)
    NR_SWITCH(C_DD);
}

void mlxn_cpu_avx2_dot_f32(const float *a, const float *x, int64_t K, int nr, float *out) {
#define C_DF(n) dot_dense(MLXN_F32, (const uint8_t *)a, x, K, n, out)
    NR_SWITCH(C_DF);
}

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

#endif /* __x86_64__ */
