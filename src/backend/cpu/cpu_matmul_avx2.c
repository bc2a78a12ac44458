/* cpu_matmul_avx2.c — AVX2/FMA/F16C kernels for the CPU matmul: activation
 * quantization to int8 blocks (per-block scale dx = max|x|/127, values
 * rounded to nearest even), integer block dot products for GGUF Q4_0, Q4_1,
 * Q8_0, Q4_K, Q6_K and MLX affine 4-bit and 8-bit weights (vpmaddubsw with
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

#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")

#define AI static inline __attribute__((always_inline))

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
        if (xq->dv)
            for (int64_t cc = 0; cc < K / 64; cc++)
                for (int l = 0; l < 8; l++) xq->dv[m * (K / 8) + cc * 8 + l] = xq->d[m * nblk + 2 * cc + (l >= 4)];
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
    __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(bp + (T == 0 ? 2 : 4)));
    return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(v, 4), v), _mm256_set1_epi8(0x0F));
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

/* Load 8 consecutive scales/biases (f32, f16 or bf16) as f32. */
AI __m256 load8_scales(const uint8_t *p, mlxn_dtype t, int64_t i) {
    return load8_f(p + i * (t == MLXN_F32 ? 4 : 2), t);
}

/* MLX affine 4-bit. Group 32: one 16-byte load -> [low nibbles | high
 * nibbles] = [even | odd elements] of one x block. Group >= 64: 32-byte
 * loads; the low nibbles are the even elements of two x blocks (one per
 * 128-bit lane), so the f32 scale vector is s * {dx0 x4, dx1 x4}.
 * Centred: w = s(q-8) + (b+8s), so y = sum_g s*dot((q), xq)*dx - 8 s t + (b+8s) S
 * = [int part] + sum_g b*S_g + s*8*(S_g - T_g); the last two terms are
 * vector dot products over 8 groups at a time. */
AI void mlx4_groups(const uint8_t *wr, const cpu_xq *xq, int64_t m0, const int NR, const int G, int64_t g0,
                    int ng, const float *sf, __m256 *acc) {
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    const __m256i ones = _mm256_set1_epi16(1);
    for (int j = 0; j < ng; j++) {
        const int64_t g = g0 + j;
        const uint8_t *gp = wr + g * (G / 2);
        if (G == 32) {
            __m128i v = _mm_loadu_si128((const __m128i *)(const void *)gp);
            __m256i q = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(v, 4), v), m4);
            for (int r = 0; r < NR; r++) {
                const int64_t m = m0 + r;
                const int8_t *xr = xq->q + m * xq->K + g * 32;
                __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(q, _mm256_loadu_si256((const __m256i *)(const void *)xr)), ones);
                acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(sf[j] * xq->d[m * xq->nblk + g]), _mm256_cvtepi32_ps(p), acc[r]);
            }
        } else {
            const __m256 sv = _mm256_broadcast_ss(sf + j);
            for (int c = 0; c < G / 64; c++) {
                __m256i v = _mm256_loadu_si256((const __m256i *)(const void *)(gp + 32 * c));
                __m256i lo = _mm256_and_si256(v, m4), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
                const int64_t cc = g * (G / 64) + c;
                for (int r = 0; r < NR; r++) {
                    const int64_t m = m0 + r;
                    const int8_t *xr = xq->q + m * xq->K + cc * 64;
                    __m256i a = _mm256_maddubs_epi16(lo, _mm256_loadu_si256((const __m256i *)(const void *)xr));
                    __m256i b = _mm256_maddubs_epi16(hi, _mm256_loadu_si256((const __m256i *)(const void *)(xr + 32)));
                    /* |lane| <= 2*15*127 = 3810 per maddubs: the sum fits in i16 */
                    __m256i p = _mm256_madd_epi16(_mm256_add_epi16(a, b), ones);
                    __m256 dv = _mm256_mul_ps(sv, _mm256_loadu_ps(xq->dv + m * (xq->K / 8) + cc * 8));
                    acc[r] = _mm256_fmadd_ps(dv, _mm256_cvtepi32_ps(p), acc[r]);
                }
            }
        }
    }
}

AI void dot_mlx4(const cpu_wdesc *w, int64_t row, const cpu_xq *xq, int64_t m0, const int NR, const int G,
                 float *out) {
    const uint8_t *wr = w->data + row * w->row_bytes;
    const int64_t ng = w->K / G;
    const uint8_t *sc = w->scales, *bi = w->biases;
    const int64_t sbase = row * ng;
    const mlxn_dtype sdt = w->sdt;
    __m256 acc[4], cacc[4];
    for (int r = 0; r < NR; r++) { acc[r] = _mm256_setzero_ps(); cacc[r] = _mm256_setzero_ps(); }
    float sf[8];
    int64_t g = 0;
    for (; g + 8 <= ng; g += 8) {
        const __m256 svec = load8_scales(sc, sdt, sbase + g), bvec = load8_scales(bi, sdt, sbase + g);
        _mm256_storeu_ps(sf, svec);
        mlx4_groups(wr, xq, m0, NR, G, g, 8, sf, acc);
        for (int r = 0; r < NR; r++) {
            const int64_t gi = (m0 + r) * ng + g;
            cacc[r] = _mm256_fmadd_ps(bvec, _mm256_loadu_ps(xq->sg + gi), cacc[r]);
            cacc[r] = _mm256_fmadd_ps(svec, _mm256_loadu_ps(xq->ug + gi), cacc[r]);
        }
    }
    float corr[4] = {0, 0, 0, 0};
    for (; g < ng; g++) {
        sf[0] = scale_at(sc, sdt, sbase + g);
        const float bb = scale_at(bi, sdt, sbase + g);
        mlx4_groups(wr, xq, m0, NR, G, g, 1, sf, acc);
        for (int r = 0; r < NR; r++) {
            const int64_t gi = (m0 + r) * ng + g;
            corr[r] += bb * xq->sg[gi] + sf[0] * xq->ug[gi];
        }
    }
    for (int r = 0; r < NR; r++) out[r] = hsum8(_mm256_add_ps(acc[r], cacc[r])) + corr[r];
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

AI void scale_min_k4(int j, const uint8_t *q, int *d, int *m) {
    if (j < 4) {
        *d = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *d = (q[j + 4] & 15) | ((q[j - 4] >> 6) << 4);
        *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

/* Q4_K: w = d*sc*q - dmin*m per sub-block of 32, centred as
 * d*sc*(q-8) + (8*d*sc - dmin*m) so the int8 error term is small. */
AI void dot_q4_k(const cpu_wdesc *w, int64_t row, const cpu_xq *xq, int64_t m0, const int NR, float *out) {
    const uint8_t *wr = w->data + row * w->row_bytes;
    const int64_t nb = w->K / 256;
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 acc[4];
    float corr[4];
    for (int r = 0; r < NR; r++) { acc[r] = _mm256_setzero_ps(); corr[r] = 0.0f; }
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *bp = wr + b * 144;
        const float d = f16_at(bp), dmin = f16_at(bp + 2);
        int sc[8], mn[8];
        for (int j = 0; j < 8; j++) scale_min_k4(j, bp + 4, &sc[j], &mn[j]);
        for (int j = 0; j < 4; j++) {
            __m256i v = _mm256_loadu_si256((const __m256i *)(const void *)(bp + 16 + 32 * j));
            __m256i lo = _mm256_and_si256(v, m4), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
            const float d1 = d * (float)sc[2 * j], d2 = d * (float)sc[2 * j + 1];
            for (int r = 0; r < NR; r++) {
                const int64_t m = m0 + r, xb = m * xq->nblk + b * 8 + 2 * j;
                const int8_t *xr = xq->q + m * xq->K + b * 256 + 64 * j;
                __m256i a = _mm256_madd_epi16(_mm256_maddubs_epi16(lo, _mm256_loadu_si256((const __m256i *)(const void *)xr)), ones);
                __m256i c = _mm256_madd_epi16(_mm256_maddubs_epi16(hi, _mm256_loadu_si256((const __m256i *)(const void *)(xr + 32))), ones);
                acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(d1 * xq->d[xb]), _mm256_cvtepi32_ps(a), acc[r]);
                acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(d2 * xq->d[xb + 1]), _mm256_cvtepi32_ps(c), acc[r]);
                corr[r] += (8.0f * d1 - dmin * (float)mn[2 * j]) * xq->s[xb] - 8.0f * d1 * xq->t[xb] +
                           (8.0f * d2 - dmin * (float)mn[2 * j + 1]) * xq->s[xb + 1] - 8.0f * d2 * xq->t[xb + 1];
            }
        }
    }
    for (int r = 0; r < NR; r++) out[r] = hsum8(acc[r]) + corr[r];
}

/* Q6_K: 6-bit codes q (0..63) from ql/qh, w = d*sc16*(q-32) with one int8
 * scale per 16 values (vpmaddwd by {sc_a x8, sc_b x8}). */
AI void dot_q6_k(const cpu_wdesc *w, int64_t row, const cpu_xq *xq, int64_t m0, const int NR, float *out) {
    const uint8_t *wr = w->data + row * w->row_bytes;
    const int64_t nb = w->K / 256;
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    const __m256i m03 = _mm256_set1_epi8(0x03), m0c = _mm256_set1_epi8(0x0C), m30 = _mm256_set1_epi8(0x30),
                  mc0 = _mm256_set1_epi8((char)0xC0);
    __m256 acc[4];
    float corr[4];
    for (int r = 0; r < NR; r++) { acc[r] = _mm256_setzero_ps(); corr[r] = 0.0f; }
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *bp = wr + b * 210;
        const int8_t *scs = (const int8_t *)(bp + 192);
        const float d = f16_at(bp + 208);
        for (int h = 0; h < 2; h++) {
            const uint8_t *ql = bp + 64 * h, *qh = bp + 128 + 32 * h;
            __m256i l0 = _mm256_loadu_si256((const __m256i *)(const void *)ql);
            __m256i l1 = _mm256_loadu_si256((const __m256i *)(const void *)(ql + 32));
            __m256i hv = _mm256_loadu_si256((const __m256i *)(const void *)qh);
            __m256i qv[4];
            qv[0] = _mm256_or_si256(_mm256_and_si256(l0, m4), _mm256_slli_epi16(_mm256_and_si256(hv, m03), 4));
            qv[1] = _mm256_or_si256(_mm256_and_si256(l1, m4), _mm256_slli_epi16(_mm256_and_si256(hv, m0c), 2));
            qv[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4), _mm256_and_si256(hv, m30));
            qv[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4),
                                    _mm256_srli_epi16(_mm256_and_si256(hv, mc0), 2));
            for (int i = 0; i < 4; i++) {
                const int8_t *sp = scs + 8 * h + 2 * i;
                const __m256i sv = _mm256_set_m128i(_mm_set1_epi16(sp[1]), _mm_set1_epi16(sp[0]));
                for (int r = 0; r < NR; r++) {
                    const int64_t m = m0 + r, xb = b * 8 + 4 * h + i;
                    const int8_t *xr = xq->q + m * xq->K + xb * 32;
                    __m256i p = _mm256_maddubs_epi16(qv[i], _mm256_loadu_si256((const __m256i *)(const void *)xr));
                    const float dd = d * xq->d[m * xq->nblk + xb];
                    acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(dd), _mm256_cvtepi32_ps(_mm256_madd_epi16(p, sv)), acc[r]);
                    const int16_t *bs = xq->bs + m * (xq->K / 16) + 2 * xb;
                    corr[r] += dd * 32.0f * (float)(sp[0] * bs[0] + sp[1] * bs[1]); /* q - 32 */
                }
            }
        }
    }
    for (int r = 0; r < NR; r++) out[r] = hsum8(acc[r]) - corr[r];
}

#define NR_SWITCH(call)                          \
    switch (nr) {                                \
    case 1: call(1); break;                      \
    case 2: call(2); break;                      \
    case 3: call(3); break;                      \
    default: call(4); break;                     \
    }

void mlxn_cpu_avx2_dot_q(cpu_qkind kind, const cpu_wdesc *w, int64_t row, const cpu_xq *xq, int64_t m0, int nr,
                         float *out) {
    switch (kind) {
#define C_Q40(n) dot_q32(w, row, xq, m0, n, 0, out)
#define C_Q41(n) dot_q32(w, row, xq, m0, n, 1, out)
#define C_Q80(n) dot_q32(w, row, xq, m0, n, 2, out)
#define C_Q4K(n) dot_q4_k(w, row, xq, m0, n, out)
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

/* ---------------------------------------------------------------- dense */

AI void dot_dense(mlxn_dtype wt, const uint8_t *wrow, const float *x, int64_t K, const int NR, float *out) {
    const size_t es = wt == MLXN_F32 ? 4 : 2;
    __m256 a0[4], a1[4];
    for (int r = 0; r < NR; r++) { a0[r] = _mm256_setzero_ps(); a1[r] = _mm256_setzero_ps(); }
    int64_t k = 0;
    for (; k + 16 <= K; k += 16) {
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

#pragma GCC pop_options

#endif /* __x86_64__ */
