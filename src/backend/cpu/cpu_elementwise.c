/* cpu_elementwise.c — CPU kernels for the elementwise ops: add, mul (with
 * row broadcast of b [D]), scale, silu, gelu (erf/tanh), silu_mul, gelu_mul
 * and softcap. The element range is split across the thread pool; each chunk
 * is processed in blocks of BLK elements: f16/bf16 inputs are widened to f32
 * in a block buffer (cpu_convert.c), the math runs in f32, and the result is rounded once to
 * the output dtype. All but the erf GELU have AVX2+FMA variants (on the f32
 * blocks, so for every dtype) chosen at run time, built on a polynomial exp
 * (~1 ulp) and a Cephes-style tanh (~2 ulp); the erf GELU and machines
 * without AVX2 use the scalar libm loops. */
#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_convert.h"

#include <math.h>
#include <string.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#define BLK 256

enum { EW_ADD, EW_MUL, EW_SCALE, EW_SILU, EW_GELU, EW_SILU_MUL, EW_GELU_MUL, EW_SOFTCAP };

typedef struct {
    int kind;
    mlxn_dtype t;
    const void *a, *b; /* b: second input (NULL for unary) */
    int64_t nb;        /* elements of b: n, or D when broadcast over rows */
    int bcast;         /* nb != n */
    void *y;
    float f;           /* alpha / cap */
    int gelu_kind;
    int avx2;
} ew_ctx;

static inline float silu_f(float x) { return x / (1.0f + expf(-x)); }
static inline float gelu_f(float x, int kind) {
    if (kind == MLXN_GELU_TANH) {
        const float k = 0.7978845608028654f; /* sqrt(2/pi) */
        return 0.5f * x * (1.0f + tanhf(k * (x + 0.044715f * x * x * x)));
    }
    return 0.5f * x * (1.0f + erff(x * 0.7071067811865476f));
}

/* Widen n elements starting at i0 of (p, t) into buf, or return a direct
 * pointer for f32. */
static inline const float *load_block(const void *p, mlxn_dtype t, int64_t i0, int64_t n, float *buf) {
    if (t == MLXN_F32) return (const float *)p + i0;
    mlxn_cpu_widen(p, t, i0, n, buf);
    return buf;
}

#if defined(__x86_64__)
/* exp(x) for f32 lanes: range reduction x = k ln2 + r, degree-6 polynomial
 * on r, scaled by 2^k; inputs clamped to [-88, 88] (results underflow to ~0
 * and overflow to ~1e38 there, which silu tolerates). */
__attribute__((target("avx2,fma"))) static inline __m256 exp_avx2(__m256 x) {
    x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.3f)), _mm256_set1_ps(88.3f));
    __m256 k = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(k, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(k, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500E-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507E-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073E-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894E-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459E-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201E-1f));
    __m256 r2 = _mm256_mul_ps(r, r);
    p = _mm256_fmadd_ps(p, r2, _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(k), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

/* tanh for f32 lanes, as Cephes tanhf: an odd polynomial for |x| <= 0.625,
 * else 1 - 2 / (exp(2|x|) + 1); the sign of x is applied last (~2 ulp). */
__attribute__((target("avx2,fma"))) static inline __m256 tanh_avx2(__m256 x) {
    const __m256 signbit = _mm256_set1_ps(-0.0f);
    __m256 z = _mm256_andnot_ps(signbit, x);
    __m256 e = exp_avx2(_mm256_add_ps(z, z));
    __m256 big = _mm256_sub_ps(_mm256_set1_ps(1.0f), _mm256_div_ps(_mm256_set1_ps(2.0f), _mm256_add_ps(e, _mm256_set1_ps(1.0f))));
    __m256 z2 = _mm256_mul_ps(z, z);
    __m256 p = _mm256_set1_ps(-5.70498872745E-3f);
    p = _mm256_fmadd_ps(p, z2, _mm256_set1_ps(2.06390887954E-2f));
    p = _mm256_fmadd_ps(p, z2, _mm256_set1_ps(-5.37397155531E-2f));
    p = _mm256_fmadd_ps(p, z2, _mm256_set1_ps(1.33314422036E-1f));
    p = _mm256_fmadd_ps(p, z2, _mm256_set1_ps(-3.33332819422E-1f));
    __m256 small = _mm256_fmadd_ps(_mm256_mul_ps(p, z2), z, z);
    __m256 r = _mm256_blendv_ps(small, big, _mm256_cmp_ps(z, _mm256_set1_ps(0.625f), _CMP_GT_OQ));
    return _mm256_or_ps(r, _mm256_and_ps(signbit, x));
}

/* y[i] = f(a[i], b[i]) for f32, n elements; returns how many it handled (a multiple of 8). */
__attribute__((target("avx2,fma"))) static int64_t ew_f32_avx2(int kind, int gelu_kind, const float *a, const float *b,
                                                               float *y, int64_t n, float f) {
    int64_t i = 0;
    __m256 one = _mm256_set1_ps(1.0f), alpha = _mm256_set1_ps(f);
    if ((kind == EW_GELU || kind == EW_GELU_MUL) && gelu_kind != MLXN_GELU_TANH) return 0; /* erf: scalar */
    for (; i + 8 <= n; i += 8) {
        __m256 x = _mm256_loadu_ps(a + i), r;
        switch (kind) {
        case EW_ADD: r = _mm256_add_ps(x, _mm256_loadu_ps(b + i)); break;
        case EW_MUL: r = _mm256_mul_ps(x, _mm256_loadu_ps(b + i)); break;
        case EW_SCALE: r = _mm256_mul_ps(x, alpha); break;
        case EW_SILU:
        case EW_SILU_MUL: {
            __m256 e = exp_avx2(_mm256_sub_ps(_mm256_setzero_ps(), x));
            r = _mm256_div_ps(x, _mm256_add_ps(one, e));
            if (kind == EW_SILU_MUL) r = _mm256_mul_ps(r, _mm256_loadu_ps(b + i));
            break;
        }
        case EW_GELU:
        case EW_GELU_MUL: {
            /* 0.5x(1 + tanh(u)) = x * sigmoid(2u), u = sqrt(2/pi)(x + 0.044715x^3): no cancellation */
            __m256 x3 = _mm256_mul_ps(_mm256_mul_ps(x, x), x);
            __m256 u2 = _mm256_mul_ps(_mm256_set1_ps(-2.0f * 0.7978845608028654f),
                                      _mm256_fmadd_ps(_mm256_set1_ps(0.044715f), x3, x));
            r = _mm256_div_ps(x, _mm256_add_ps(one, exp_avx2(u2)));
            if (kind == EW_GELU_MUL) r = _mm256_mul_ps(r, _mm256_loadu_ps(b + i));
            break;
        }
        case EW_SOFTCAP: r = _mm256_mul_ps(alpha, tanh_avx2(_mm256_div_ps(x, alpha))); break;
        default: return 0;
        }
        _mm256_storeu_ps(y + i, r);
    }
    return i;
}
#endif

static void ew_range(void *vctx, int64_t begin, int64_t end, int thread) {
    const ew_ctx *c = vctx;
    float ba[BLK], bb[BLK], by[BLK];
    for (int64_t i0 = begin; i0 < end; i0 += BLK) {
        int64_t n = end - i0 < BLK ? end - i0 : BLK;
        const float *a = load_block(c->a, c->t, i0, n, ba);
        const float *b = NULL;
        if (c->b && !c->bcast) {
            b = load_block(c->b, c->t, i0, n, bb);
        } else if (c->b) { /* broadcast [D] over rows: gather b[i % D] */
            for (int64_t i = 0; i < n; i++) bb[i] = mlxn_load_f(c->b, c->t, (i0 + i) % c->nb);
            b = bb;
        }
        float *y = c->t == MLXN_F32 ? (float *)c->y + i0 : by;
        int64_t i = 0;
#if defined(__x86_64__)
        if (c->avx2) i = ew_f32_avx2(c->kind, c->gelu_kind, a, b, y, n, c->f);
#endif
        switch (c->kind) {
        case EW_ADD: for (; i < n; i++) y[i] = a[i] + b[i]; break;
        case EW_MUL: for (; i < n; i++) y[i] = a[i] * b[i]; break;
        case EW_SCALE: for (; i < n; i++) y[i] = c->f * a[i]; break;
        case EW_SILU: for (; i < n; i++) y[i] = silu_f(a[i]); break;
        case EW_GELU: for (; i < n; i++) y[i] = gelu_f(a[i], c->gelu_kind); break;
        case EW_SILU_MUL: for (; i < n; i++) y[i] = silu_f(a[i]) * b[i]; break;
        case EW_GELU_MUL: for (; i < n; i++) y[i] = gelu_f(a[i], c->gelu_kind) * b[i]; break;
        case EW_SOFTCAP: for (; i < n; i++) y[i] = c->f * tanhf(a[i] / c->f); break;
        }
        if (c->t != MLXN_F32) mlxn_cpu_narrow(by, c->y, c->t, i0, n);
    }
}

static mlxn_status run_ew(mlxn_session *s, const mlxn_op *op, int kind) {
    const mlxn_buffer *a = op->in[0];
    ew_ctx c = {.kind = kind, .t = a->dtype, .a = mlxn_buf_ptr(a), .y = mlxn_buf_ptr(op->out[0]), .f = op->f[0],
                .gelu_kind = op->i[0]};
    int64_t n = mlxn_numel(a->ndim, a->shape);
    if (op->in[1]) {
        c.b = mlxn_buf_ptr(op->in[1]);
        c.nb = mlxn_numel(op->in[1]->ndim, op->in[1]->shape);
        c.bcast = c.nb != n;
    }
    const mlxn_cpu_device *dev = mlxn_cpu_sess_dev(s);
    c.avx2 = dev->feat.avx2 && dev->feat.fma; /* the math runs on f32 blocks for every dtype */
    mlxn_cpu_parallel_for(mlxn_cpu_sess_dev(s), n, 16384, ew_range, &c);
    return MLXN_OK;
}

MLXN_CPU_OP(add) { return run_ew(s, op, EW_ADD); }
MLXN_CPU_OP(mul) { return run_ew(s, op, EW_MUL); }
MLXN_CPU_OP(scale) { return run_ew(s, op, EW_SCALE); }
MLXN_CPU_OP(silu) { return run_ew(s, op, EW_SILU); }
MLXN_CPU_OP(gelu) { return run_ew(s, op, EW_GELU); }
MLXN_CPU_OP(silu_mul) { return run_ew(s, op, EW_SILU_MUL); }
MLXN_CPU_OP(gelu_mul) { return run_ew(s, op, EW_GELU_MUL); }
MLXN_CPU_OP(softcap) { return run_ew(s, op, EW_SOFTCAP); }
