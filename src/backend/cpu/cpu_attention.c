/* cpu_attention.c — CPU kernel for scaled dot-product attention over a KV
 * cache (the semantics of mlxn.h / ref_attention.c). Work items are (query
 * row t, KV head) pairs split across the thread pool; one item serves all
 * Hq/Hkv query heads that share the KV head (GQA), so each K/V row is read
 * once per item. The visible keys of a query form one contiguous position
 * range (causal upper bound, window lower bound, oldest ring entry), walked in
 * blocks of BLK keys with an online (flash-style) softmax in f32: scores for
 * the block, new running max, rescale of the running sum and accumulator,
 * then acc += p * v. K/V may be f32, f16 or bf16; the AVX2+FMA(+F16C) dot
 * and axpy variants are selected at run time, with scalar fallbacks. Each
 * item is computed by one thread in a fixed order, so results do not depend
 * on the thread count. */
#include "backend/cpu/cpu_backend.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#define BLK 64

typedef struct {
    const float *q;      /* [T, Hq, D] */
    const void *k, *v;   /* [Hkv, C, D] */
    mlxn_dtype kt;
    float *out;          /* [T, Hq, D] */
    const mlxn_attention_params *p;
    const int32_t *pos;  /* [T] or NULL */
    int64_t T, Hq, Hkv, C, D, group, lo, maxpos;
    float *scratch;
    size_t per_thread;   /* floats of scratch per thread */
    int simd;            /* 1: AVX2+FMA (and F16C for f16 caches) */
} attn_ctx;

/* ---------------------------------------------------------------- scalar primitives */

static float dot_scalar(const float *q, const void *k, mlxn_dtype t, int64_t off, int64_t D) {
    float acc[4] = {0, 0, 0, 0};
    int64_t d = 0;
    for (; d + 4 <= D; d += 4)
        for (int l = 0; l < 4; l++) acc[l] += q[d + l] * mlxn_load_f(k, t, off + d + l);
    for (; d < D; d++) acc[0] += q[d] * mlxn_load_f(k, t, off + d);
    return (acc[0] + acc[1]) + (acc[2] + acc[3]);
}

static void axpy_scalar(float *acc, float a, const void *v, mlxn_dtype t, int64_t off, int64_t D) {
    for (int64_t d = 0; d < D; d++) acc[d] += a * mlxn_load_f(v, t, off + d);
}

/* ---------------------------------------------------------------- AVX2 primitives */

#if defined(__x86_64__)
__attribute__((target("avx2,fma,f16c"))) static inline __m256 load8(const void *p, mlxn_dtype t, int64_t i) {
    if (t == MLXN_F32) return _mm256_loadu_ps((const float *)p + i);
    __m128i h = _mm_loadu_si128((const __m128i *)((const uint16_t *)p + i));
    if (t == MLXN_F16) return _mm256_cvtph_ps(h);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

__attribute__((target("avx2,fma,f16c"))) static float dot_avx2(const float *q, const void *k, mlxn_dtype t, int64_t off,
                                                                int64_t D) {
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    int64_t d = 0;
    for (; d + 16 <= D; d += 16) {
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + d), load8(k, t, off + d), a0);
        a1 = _mm256_fmadd_ps(_mm256_loadu_ps(q + d + 8), load8(k, t, off + d + 8), a1);
    }
    for (; d + 8 <= D; d += 8) a0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + d), load8(k, t, off + d), a0);
    __m256 a = _mm256_add_ps(a0, a1);
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    float r = _mm_cvtss_f32(s);
    for (; d < D; d++) r += q[d] * mlxn_load_f(k, t, off + d);
    return r;
}

__attribute__((target("avx2,fma,f16c"))) static void axpy_avx2(float *acc, float a, const void *v, mlxn_dtype t,
                                                                int64_t off, int64_t D) {
    __m256 va = _mm256_set1_ps(a);
    int64_t d = 0;
    for (; d + 8 <= D; d += 8)
        _mm256_storeu_ps(acc + d, _mm256_fmadd_ps(va, load8(v, t, off + d), _mm256_loadu_ps(acc + d)));
    for (; d < D; d++) acc[d] += a * mlxn_load_f(v, t, off + d);
}

/* exp for f32 lanes (Cephes-style polynomial, ~1 ulp; clamped to [-87.3, 88.3]). */
__attribute__((target("avx2,fma"))) static inline __m256 exp8(__m256 x) {
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
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(k), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

/* s[j] = exp(s[j] - m) for j < n; returns the sum (f32 lanes, then scalar tail). */
__attribute__((target("avx2,fma"))) static float exp_sub_sum_avx2(float *s, int64_t n, float m) {
    __m256 vm = _mm256_set1_ps(m), acc = _mm256_setzero_ps();
    int64_t j = 0;
    for (; j + 8 <= n; j += 8) {
        __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(s + j), vm));
        _mm256_storeu_ps(s + j, e);
        acc = _mm256_add_ps(acc, e);
    }
    float l[8];
    _mm256_storeu_ps(l, acc);
    float r = ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]));
    for (; j < n; j++) {
        s[j] = expf(s[j] - m);
        r += s[j];
    }
    return r;
}
#endif

static inline float dot(const attn_ctx *c, const float *q, const void *k, int64_t off) {
#if defined(__x86_64__)
    if (c->simd) return dot_avx2(q, k, c->kt, off, c->D);
#endif
    return dot_scalar(q, k, c->kt, off, c->D);
}
static inline void axpy(const attn_ctx *c, float *acc, float a, const void *v, int64_t off) {
#if defined(__x86_64__)
    if (c->simd) { axpy_avx2(acc, a, v, c->kt, off, c->D); return; }
#endif
    axpy_scalar(acc, a, v, c->kt, off, c->D);
}
static inline float exp_sub_sum(const attn_ctx *c, float *s, int64_t n, float m) {
#if defined(__x86_64__)
    if (c->simd) return exp_sub_sum_avx2(s, n, m);
#endif
    float r = 0;
    for (int64_t j = 0; j < n; j++) {
        s[j] = expf(s[j] - m);
        r += s[j];
    }
    return r;
}

/* ---------------------------------------------------------------- kernel */

static void attn_items(void *vctx, int64_t begin, int64_t end, int thread) {
    const attn_ctx *c = vctx;
    const mlxn_attention_params *p = c->p;
    int64_t D = c->D, G = c->group, C = c->C;
    float *acc = c->scratch + (size_t)thread * c->per_thread; /* [G, D] */
    float *sc = acc + G * D;                                  /* [G, BLK] */
    float *mrun = sc + G * BLK, *lrun = mrun + G;             /* [G] each */
    int64_t *slot = (int64_t *)(void *)(lrun + G);            /* [BLK]; float offset is even, so 8-byte aligned */
    for (int64_t item = begin; item < end; item++) {
        int64_t t = item / c->Hkv, kvh = item % c->Hkv;
        int64_t qpos = c->pos ? c->pos[t] : p->kv_len - c->T + t;
        int64_t k0 = c->lo, k1 = c->maxpos; /* visible key positions [k0, k1] */
        if (p->causal && qpos < k1) k1 = qpos;
        if (p->window > 0 && qpos - p->window + 1 > k0) k0 = qpos - p->window + 1;
        const float *qg = c->q + (t * c->Hq + kvh * G) * D; /* the G query heads of this KV head */
        float *og = c->out + (t * c->Hq + kvh * G) * D;
        if (k0 > k1) {
            memset(og, 0, (size_t)(G * D) * sizeof(float));
            continue;
        }
        memset(acc, 0, (size_t)(G * D) * sizeof(float));
        for (int64_t g = 0; g < G; g++) { mrun[g] = -INFINITY; lrun[g] = 0.0f; }
        int64_t kvbase = kvh * C * D;
        for (int64_t kb = k0; kb <= k1; kb += BLK) {
            int64_t nb = k1 - kb + 1 < BLK ? k1 - kb + 1 : BLK;
            for (int64_t j = 0; j < nb; j++) slot[j] = p->ring ? (kb + j) % C : kb + j;
            /* scores [G, nb] */
            for (int64_t j = 0; j < nb; j++) {
                int64_t off = kvbase + slot[j] * D;
                for (int64_t g = 0; g < G; g++) {
                    float s = dot(c, qg + g * D, c->k, off) * p->scale;
                    if (p->softcap > 0) s = p->softcap * tanhf(s / p->softcap);
                    sc[g * BLK + j] = s;
                }
            }
            /* online softmax update per head */
            for (int64_t g = 0; g < G; g++) {
                float *s = sc + g * BLK, bm = -INFINITY;
                for (int64_t j = 0; j < nb; j++) bm = s[j] > bm ? s[j] : bm;
                float m = mrun[g] > bm ? mrun[g] : bm;
                float corr = mrun[g] == -INFINITY ? 0.0f : expf(mrun[g] - m);
                if (corr != 1.0f) {
                    float *a = acc + g * D;
                    for (int64_t d = 0; d < D; d++) a[d] *= corr;
                }
                lrun[g] = lrun[g] * corr + exp_sub_sum(c, s, nb, m);
                mrun[g] = m;
            }
            /* acc[g] += p[g, j] * v_j, each V row read once for the G heads */
            for (int64_t j = 0; j < nb; j++) {
                int64_t off = kvbase + slot[j] * D;
                for (int64_t g = 0; g < G; g++) axpy(c, acc + g * D, sc[g * BLK + j], c->v, off);
            }
        }
        for (int64_t g = 0; g < G; g++) {
            float inv = 1.0f / lrun[g];
            for (int64_t d = 0; d < D; d++) og[g * D + d] = acc[g * D + d] * inv;
        }
    }
}

MLXN_CPU_OP(attention) {
    mlxn_cpu_device *dev = mlxn_cpu_sess_dev(s);
    const mlxn_buffer *q = op->in[0], *kc = op->in[1], *pb = op->in[3];
    const mlxn_attention_params *p = &op->p.attn;
    attn_ctx c = {.q = mlxn_buf_ptr(q), .k = mlxn_buf_ptr(kc), .v = mlxn_buf_ptr(op->in[2]), .kt = kc->dtype,
                  .out = mlxn_buf_ptr(op->out[0]), .p = p, .pos = pb ? mlxn_buf_ptr(pb) : NULL, .T = q->shape[0],
                  .Hq = q->shape[1], .D = q->shape[2], .Hkv = kc->shape[0], .C = kc->shape[1]};
    c.group = c.Hq / c.Hkv;
    c.maxpos = -1;
    for (int64_t t = 0; t < c.T; t++) {
        int64_t qp = c.pos ? c.pos[t] : p->kv_len - c.T + t;
        if (qp < 0)
            return mlxn_set_error(MLXN_ERR_RANGE, "attention: positions[%lld] = %lld is negative", (long long)t, (long long)qp);
        if (qp > c.maxpos) c.maxpos = qp;
    }
    if (!p->ring && c.maxpos >= c.C)
        return mlxn_set_error(MLXN_ERR_RANGE, "attention: position %lld is outside the linear cache capacity C = %lld",
                              (long long)c.maxpos, (long long)c.C);
    c.lo = p->ring && c.maxpos - c.C + 1 > 0 ? c.maxpos - c.C + 1 : 0;
    c.simd = dev->feat.avx2 && dev->feat.fma && (c.kt != MLXN_F16 || dev->feat.f16c);
    c.per_thread = (size_t)(c.group * c.D + c.group * BLK + 2 * c.group + 2 + 2 * BLK);
    c.per_thread = (c.per_thread + 15) & ~(size_t)15;
    c.scratch = aligned_alloc(64, (size_t)dev->n_threads * c.per_thread * sizeof(float));
    if (!c.scratch) return mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "attention: out of host memory for scratch");
    mlxn_cpu_parallel_for(dev, c.T * c.Hkv, 1, attn_items, &c);
    free(c.scratch);
    return MLXN_OK;
}
