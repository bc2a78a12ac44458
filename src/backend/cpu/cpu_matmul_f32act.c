/* cpu_matmul_f32act.c — AVX2/FMA/F16C matmul kernels with f32 activations
 * (MLX's semantics: no activation quantization) for GGUF Q4_0, Q4_1, Q8_0
 * and MLX affine 4-bit and 8-bit weights (any group 32/64/128, f16/bf16/f32
 * scales and biases, negative scales allowed). Each step decodes 32 weights
 * of one row in registers (load packed bytes, widen the codes to 4 x 8 int32,
 * cvtepi32_ps, then one multiply or FMA with the block's scale/min or the
 * group's scale/bias: the same f32 weight values as the host codec, up to FMA
 * rounding) and applies them to up to 4 activation rows with FMA (the M tile),
 * so for M <= 4 no dequantized row is ever written to memory (for larger M
 * the driver decodes a tile of rows once with mlxn_cpu_f32act_dequant_rows
 * and reuses it for every group of 4 activation rows). Results differ from the f64
 * reference only by f32 rounding and summation order (NMSE ~1e-14), and are
 * deterministic (a fixed accumulation order per output). The code is compiled
 * with per-function target attributes (no -march needed); cpu_matmul.c calls
 * it only when mlxn_cpu_detect_features() reports avx2+fma+f16c. All loads are
 * unaligned: weights and activations may sit at any byte offset. */
#include "backend/cpu/cpu_quant_kernels.h"

#if defined(__x86_64__)

#include <immintrin.h>
#include <string.h>

#define TGT __attribute__((target("avx2,fma,f16c")))
#define AI static inline __attribute__((always_inline, target("avx2,fma,f16c")))

AI float f16_ld(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}

/* Element i of an f32/f16/bf16 array at p. */
AI float scale_ld(const uint8_t *p, mlxn_dtype t, int64_t i) {
    if (t == MLXN_F32) {
        float f;
        memcpy(&f, p + 4 * i, 4);
        return f;
    }
    if (t == MLXN_F16) return f16_ld(p + 2 * i);
    uint16_t h;
    memcpy(&h, p + 2 * i, 2);
    const uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

AI float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* 8 bytes at p widened to 8 int32 lanes (zero- or sign-extended). */
AI __m256i u8x8(const uint8_t *p) { return _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(const void *)p)); }
AI __m256i i8x8(const uint8_t *p) { return _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(const void *)p)); }

/* Decode weights k..k+31 (k a multiple of 32) of a weight row (bytes at row)
 * into v[0..3] (natural element order). MLX: s, bb = the group's scale and
 * bias broadcast (unused for GGUF, whose scales live in the block). */
AI void decode32(cpu_qkind kind, const uint8_t *row, int64_t k, __m256 s, __m256 bb, __m256 v[4]) {
    const __m256i m4 = _mm256_set1_epi32(0x0F);
    switch (kind) {
    case CPU_Q_Q4_0:   /* block: f16 d, 16 bytes (low nibbles = elements 0..15, high = 16..31); w = (q - 8) d */
    case CPU_Q_Q4_1: { /* block: f16 d, f16 m, 16 bytes; w = q d + m */
        const int q41 = kind == CPU_Q_Q4_1;
        const uint8_t *b = row + (k / 32) * (q41 ? 20 : 18);
        const __m256 d = _mm256_set1_ps(f16_ld(b));
        const __m256 m = q41 ? _mm256_set1_ps(f16_ld(b + 2)) : _mm256_set1_ps(-8.0f * f16_ld(b));
        const uint8_t *qs = b + (q41 ? 4 : 2);
        const __m256i c0 = u8x8(qs), c1 = u8x8(qs + 8);
        v[0] = _mm256_cvtepi32_ps(_mm256_and_si256(c0, m4));
        v[1] = _mm256_cvtepi32_ps(_mm256_and_si256(c1, m4));
        v[2] = _mm256_cvtepi32_ps(_mm256_srli_epi32(c0, 4));
        v[3] = _mm256_cvtepi32_ps(_mm256_srli_epi32(c1, 4));
        /* Q4_0: q d - 8 d = (q - 8) d exactly (q - 8 and 8d are exact, one rounding) */
        for (int j = 0; j < 4; j++) v[j] = _mm256_fmadd_ps(v[j], d, m);
        break;
    }
    case CPU_Q_Q8_0: { /* block: f16 d, 32 int8; w = q d */
        const uint8_t *b = row + (k / 32) * 34;
        const __m256 d = _mm256_set1_ps(f16_ld(b));
        for (int j = 0; j < 4; j++) v[j] = _mm256_mul_ps(_mm256_cvtepi32_ps(i8x8(b + 2 + 8 * j)), d);
        break;
    }
    case CPU_Q_MLX4: { /* 4 bytes = 8 codes LSB-first (byte j = elements 2j, 2j+1): broadcast and shift per lane */
        const __m256i sh = _mm256_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28);
        for (int j = 0; j < 4; j++) {
            int32_t wd;
            memcpy(&wd, row + k / 2 + 4 * j, 4);
            const __m256i c = _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32(wd), sh), m4);
            v[j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(c), s, bb);
        }
        break;
    }
    case CPU_Q_MLX8:
        for (int j = 0; j < 4; j++) v[j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(u8x8(row + k + 8 * j)), s, bb);
        break;
    default:
        for (int j = 0; j < 4; j++) v[j] = _mm256_setzero_ps();
        break;
    }
}

/* out[r] = dot(weight row n, x row r) for r < NR; x rows have stride K. One
 * row uses 4 accumulators (latency), more rows 2 each (register budget). */
AI void dot_rows(cpu_qkind kind, const cpu_wdesc *w, int64_t n, const float *x, const int NR, float *out) {
    const int64_t K = w->K;
    const uint8_t *row = w->data + n * w->row_bytes;
    const int A = NR == 1 ? 4 : 2;
    const int mlx = kind == CPU_Q_MLX4 || kind == CPU_Q_MLX8;
    const int64_t step = mlx ? w->group : 32, ng = K / step;
    __m256 acc[4][4];
    for (int r = 0; r < NR; r++)
        for (int a = 0; a < A; a++) acc[r][a] = _mm256_setzero_ps();
    for (int64_t g = 0; g < ng; g++) {
        __m256 s = _mm256_setzero_ps(), bb = _mm256_setzero_ps();
        if (mlx) { /* MLX group g of row n: scale and bias */
            s = _mm256_set1_ps(scale_ld(w->scales, w->sdt, n * ng + g));
            bb = _mm256_set1_ps(scale_ld(w->biases, w->sdt, n * ng + g));
        }
        for (int64_t k = g * step; k < (g + 1) * step; k += 32) {
            __m256 v[4];
            decode32(kind, row, k, s, bb, v);
            for (int r = 0; r < NR; r++) {
                const float *xr = x + r * K + k;
                for (int j = 0; j < 4; j++) acc[r][j % A] = _mm256_fmadd_ps(v[j], _mm256_loadu_ps(xr + 8 * j), acc[r][j % A]);
            }
        }
    }
    for (int r = 0; r < NR; r++) {
        __m256 sum = acc[r][0];
        for (int a = 1; a < A; a++) sum = _mm256_add_ps(sum, acc[r][a]);
        out[r] = hsum8(sum);
    }
}

#define DOT_KIND(KIND)                                                                                               \
    TGT static void dot_##KIND(const cpu_wdesc *w, int64_t n, const float *x, int nr, float *out) {                  \
        switch (nr) {                                                                                                \
        case 1: dot_rows(KIND, w, n, x, 1, out); break;                                                              \
        case 2: dot_rows(KIND, w, n, x, 2, out); break;                                                              \
        case 3: dot_rows(KIND, w, n, x, 3, out); break;                                                              \
        default: dot_rows(KIND, w, n, x, 4, out); break;                                                             \
        }                                                                                                            \
    }
DOT_KIND(CPU_Q_Q4_0)
DOT_KIND(CPU_Q_Q4_1)
DOT_KIND(CPU_Q_Q8_0)
DOT_KIND(CPU_Q_MLX4)
DOT_KIND(CPU_Q_MLX8)
#undef DOT_KIND

int mlxn_cpu_f32act_supported(cpu_qkind kind) {
    return kind == CPU_Q_Q4_0 || kind == CPU_Q_Q4_1 || kind == CPU_Q_Q8_0 || kind == CPU_Q_MLX4 || kind == CPU_Q_MLX8;
}

/* Weight rows row0..row0+nrows-1 decoded to f32 (the same values dot_rows uses). */
AI void dequant_rows(cpu_qkind kind, const cpu_wdesc *w, int64_t row0, int64_t nrows, float *dst) {
    const int64_t K = w->K;
    const int mlx = kind == CPU_Q_MLX4 || kind == CPU_Q_MLX8;
    const int64_t step = mlx ? w->group : 32, ng = K / step;
    for (int64_t i = 0; i < nrows; i++) {
        const int64_t n = row0 + i;
        const uint8_t *row = w->data + n * w->row_bytes;
        float *out = dst + i * K;
        for (int64_t g = 0; g < ng; g++) {
            __m256 s = _mm256_setzero_ps(), bb = _mm256_setzero_ps();
            if (mlx) {
                s = _mm256_set1_ps(scale_ld(w->scales, w->sdt, n * ng + g));
                bb = _mm256_set1_ps(scale_ld(w->biases, w->sdt, n * ng + g));
            }
            for (int64_t k = g * step; k < (g + 1) * step; k += 32) {
                __m256 v[4];
                decode32(kind, row, k, s, bb, v);
                for (int j = 0; j < 4; j++) _mm256_storeu_ps(out + k + 8 * j, v[j]);
            }
        }
    }
}

#define DEQ_KIND(KIND) \
    TGT static void deq_##KIND(const cpu_wdesc *w, int64_t r0, int64_t nr, float *dst) { dequant_rows(KIND, w, r0, nr, dst); }
DEQ_KIND(CPU_Q_Q4_0)
DEQ_KIND(CPU_Q_Q4_1)
DEQ_KIND(CPU_Q_Q8_0)
DEQ_KIND(CPU_Q_MLX4)
DEQ_KIND(CPU_Q_MLX8)
#undef DEQ_KIND

TGT void mlxn_cpu_f32act_dequant_rows(cpu_qkind kind, const cpu_wdesc *w, int64_t row0, int64_t nrows, float *dst) {
    switch (kind) {
    case CPU_Q_Q4_0: deq_CPU_Q_Q4_0(w, row0, nrows, dst); break;
    case CPU_Q_Q4_1: deq_CPU_Q_Q4_1(w, row0, nrows, dst); break;
    case CPU_Q_Q8_0: deq_CPU_Q_Q8_0(w, row0, nrows, dst); break;
    case CPU_Q_MLX4: deq_CPU_Q_MLX4(w, row0, nrows, dst); break;
    case CPU_Q_MLX8: deq_CPU_Q_MLX8(w, row0, nrows, dst); break;
    default: memset(dst, 0, (size_t)(nrows * w->K) * sizeof(float)); break; /* not reached */
    }
}

TGT void mlxn_cpu_f32act_dot(cpu_qkind kind, const cpu_wdesc *w, int64_t row, const float *x, int nr, float *out) {
    switch (kind) {
    case CPU_Q_Q4_0: dot_CPU_Q_Q4_0(w, row, x, nr, out); break;
    case CPU_Q_Q4_1: dot_CPU_Q_Q4_1(w, row, x, nr, out); break;
    case CPU_Q_Q8_0: dot_CPU_Q_Q8_0(w, row, x, nr, out); break;
    case CPU_Q_MLX4: dot_CPU_Q_MLX4(w, row, x, nr, out); break;
    case CPU_Q_MLX8: dot_CPU_Q_MLX8(w, row, x, nr, out); break;
    default:
        for (int r = 0; r < nr; r++) out[r] = 0.0f; /* not reached: callers check mlxn_cpu_f32act_supported */
        break;
    }
}

#else
typedef int mlxn_cpu_f32act_unused; /* keep the translation unit non-empty off x86-64 */
#endif
