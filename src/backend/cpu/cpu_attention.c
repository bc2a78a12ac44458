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
#include "backend/cpu/cpu_simd.h"

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


/* s[j] = exp(s[j] - m) for j < n; returns the sum (f32 lanes, then scalar tail). */
__attribute__((target("avx2,fma"))) static float exp_sub_sum_avx2(float *s, int64_t n, float m) {
    __m256 vm = _mm256_set1_ps(m), acc = _mm256_setzero_ps();
    int64_t j = 0;
    for (; j + 8 <= n; j += 8) {
        __m256 e = mlxn_cpu_exp8(_mm256_sub_ps(_mm256_loadu_ps(s + j), vm));
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

/* ---------------------------------------------------------------- kernel
 * A range kernel accumulates keys [k0, k1] of KV head kvh for the G query
 * heads at qg into acc [G, D] (unnormalized), running max m [G] and running
 * sum l [G], all initialized by the caller; ws is the thread's workspace. */

typedef void (*range_fn)(const attn_ctx *c, float *ws, int64_t kvh, const float *qg, int64_t k0, int64_t k1,
                         float *acc, float *mrun, float *lrun);

/* Generic kernel: any even D, per-key dot/axpy primitives (AVX2 when available). */
static void range_generic(const attn_ctx *c, float *ws, int64_t kvh, const float *qg, int64_t k0, int64_t k1,
                          float *acc, float *mrun, float *lrun) {
    const mlxn_attention_params *p = c->p;
    int64_t D = c->D, G = c->group, C = c->C;
    float *sc = ws;                                  /* [G, BLK] */
    int64_t *slot = (int64_t *)(void *)(sc + G * BLK); /* [BLK]; G*BLK is even, so 8-byte aligned */
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
}

#if defined(__x86_64__)
/* ---------------------------------------------------------------- AVX2 item kernel (D % 16 == 0)
 * Per block of BLK2 keys: K and V rows are widened to f32 once (shared by the
 * G query heads), scores are computed for up to 4 heads at a time with one K
 * load per 4 FMAs, and the P·V update keeps a 16-float slice of up to 4 heads'
 * accumulators in registers while streaming the block's V rows. */
#define BLK2 32

__attribute__((target("avx2,fma"))) static inline float hsum8(__m256 a) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* Rows j < nb of a block as f32 pointers: direct for f32 caches, else widened into buf [nb, D]. */
__attribute__((target("avx2,fma,f16c"))) static void block_rows(const void *cache, mlxn_dtype t, const int64_t *off,
                                                                 int64_t nb, int64_t D, float *buf,
                                                                 const float **rows) {
    for (int64_t j = 0; j < nb; j++) {
        if (t == MLXN_F32) { rows[j] = (const float *)cache + off[j]; continue; }
        float *dst = buf + j * D;
        for (int64_t d = 0; d < D; d += 8) _mm256_storeu_ps(dst + d, load8(cache, t, off[j] + d));
        rows[j] = dst;
    }
}

/* s[g*BLK2 + j] = q_g · k_j for NG heads starting at q (rows of D). */
__attribute__((target("avx2,fma"), always_inline)) static inline void scores_ng(const int NG, const float *q, int64_t D,
                                                                                 const float *const *krows, int64_t nb,
                                                                                 float *s) {
    for (int64_t j = 0; j < nb; j++) {
        const float *k = krows[j];
        __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
        for (int64_t d = 0; d < D; d += 8) {
            __m256 kv = _mm256_loadu_ps(k + d);
            a0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + d), kv, a0);
            if (NG > 1) a1 = _mm256_fmadd_ps(_mm256_loadu_ps(q + D + d), kv, a1);
            if (NG > 2) a2 = _mm256_fmadd_ps(_mm256_loadu_ps(q + 2 * D + d), kv, a2);
            if (NG > 3) a3 = _mm256_fmadd_ps(_mm256_loadu_ps(q + 3 * D + d), kv, a3);
        }
        s[j] = hsum8(a0);
        if (NG > 1) s[BLK2 + j] = hsum8(a1);
        if (NG > 2) s[2 * BLK2 + j] = hsum8(a2);
        if (NG > 3) s[3 * BLK2 + j] = hsum8(a3);
    }
}

/* acc_g += sum_j p[g*BLK2 + j] * v_j for NG heads (acc rows of D). */
__attribute__((target("avx2,fma"), always_inline)) static inline void pv_ng(const int NG, float *acc, int64_t D,
                                                                             const float *const *vrows, int64_t nb,
                                                                             const float *p) {
    for (int64_t d = 0; d < D; d += 16) {
        __m256 c00 = _mm256_loadu_ps(acc + d), c01 = _mm256_loadu_ps(acc + d + 8);
        __m256 c10 = c00, c11 = c01, c20 = c00, c21 = c01, c30 = c00, c31 = c01;
        if (NG > 1) { c10 = _mm256_loadu_ps(acc + D + d); c11 = _mm256_loadu_ps(acc + D + d + 8); }
        if (NG > 2) { c20 = _mm256_loadu_ps(acc + 2 * D + d); c21 = _mm256_loadu_ps(acc + 2 * D + d + 8); }
        if (NG > 3) { c30 = _mm256_loadu_ps(acc + 3 * D + d); c31 = _mm256_loadu_ps(acc + 3 * D + d + 8); }
        for (int64_t j = 0; j < nb; j++) {
            __m256 v0 = _mm256_loadu_ps(vrows[j] + d), v1 = _mm256_loadu_ps(vrows[j] + d + 8);
            __m256 w = _mm256_broadcast_ss(p + j);
            c00 = _mm256_fmadd_ps(w, v0, c00);
            c01 = _mm256_fmadd_ps(w, v1, c01);
            if (NG > 1) { w = _mm256_broadcast_ss(p + BLK2 + j); c10 = _mm256_fmadd_ps(w, v0, c10); c11 = _mm256_fmadd_ps(w, v1, c11); }
            if (NG > 2) { w = _mm256_broadcast_ss(p + 2 * BLK2 + j); c20 = _mm256_fmadd_ps(w, v0, c20); c21 = _mm256_fmadd_ps(w, v1, c21); }
            if (NG > 3) { w = _mm256_broadcast_ss(p + 3 * BLK2 + j); c30 = _mm256_fmadd_ps(w, v0, c30); c31 = _mm256_fmadd_ps(w, v1, c31); }
        }
        _mm256_storeu_ps(acc + d, c00);
        _mm256_storeu_ps(acc + d + 8, c01);
        if (NG > 1) { _mm256_storeu_ps(acc + D + d, c10); _mm256_storeu_ps(acc + D + d + 8, c11); }
        if (NG > 2) { _mm256_storeu_ps(acc + 2 * D + d, c20); _mm256_storeu_ps(acc + 2 * D + d + 8, c21); }
        if (NG > 3) { _mm256_storeu_ps(acc + 3 * D + d, c30); _mm256_storeu_ps(acc + 3 * D + d + 8, c31); }
    }
}

__attribute__((target("avx2,fma,f16c"))) static void range_avx2(const attn_ctx *c, float *ws, int64_t kvh,
                                                                 const float *qg, int64_t k0, int64_t k1, float *acc,
                                                                 float *mrun, float *lrun) {
    const mlxn_attention_params *p = c->p;
    int64_t D = c->D, G = c->group, C = c->C;
    float *kb = ws;                /* [BLK2, D] widened K rows */
    float *vb = kb + BLK2 * D;     /* [BLK2, D] widened V rows */
    float *sc = vb + BLK2 * D;     /* [G, BLK2] */
    int64_t off[BLK2];
    const float *krows[BLK2], *vrows[BLK2];
    int64_t kvbase = kvh * C * D;
    for (int64_t kb0 = k0; kb0 <= k1; kb0 += BLK2) {
        int64_t nb = k1 - kb0 + 1 < BLK2 ? k1 - kb0 + 1 : BLK2;
        for (int64_t j = 0; j < nb; j++) off[j] = kvbase + (p->ring ? (kb0 + j) % C : kb0 + j) * D;
        block_rows(c->k, c->kt, off, nb, D, kb, krows);
        for (int64_t g = 0; g < G; g += 4) {
            int64_t ng = G - g < 4 ? G - g : 4;
            float *s = sc + g * BLK2;
            const float *q = qg + g * D;
            if (ng == 4) scores_ng(4, q, D, krows, nb, s);
            else if (ng == 3) scores_ng(3, q, D, krows, nb, s);
            else if (ng == 2) scores_ng(2, q, D, krows, nb, s);
            else scores_ng(1, q, D, krows, nb, s);
        }
        for (int64_t g = 0; g < G; g++) {
            float *s = sc + g * BLK2, bm = -INFINITY;
            for (int64_t j = 0; j < nb; j++) {
                float v = s[j] * p->scale;
                if (p->softcap > 0) v = p->softcap * tanhf(v / p->softcap);
                s[j] = v;
                bm = v > bm ? v : bm;
            }
            float m = mrun[g] > bm ? mrun[g] : bm;
            float corr = mrun[g] == -INFINITY ? 0.0f : expf(mrun[g] - m);
            if (corr != 1.0f) {
                float *a = acc + g * D;
                __m256 vc = _mm256_set1_ps(corr);
                for (int64_t d = 0; d < D; d += 8) _mm256_storeu_ps(a + d, _mm256_mul_ps(vc, _mm256_loadu_ps(a + d)));
            }
            lrun[g] = lrun[g] * corr + exp_sub_sum_avx2(s, nb, m);
            mrun[g] = m;
        }
        block_rows(c->v, c->kt, off, nb, D, vb, vrows);
        for (int64_t g = 0; g < G; g += 4) {
            int64_t ng = G - g < 4 ? G - g : 4;
            float *a = acc + g * D;
            const float *pp = sc + g * BLK2;
            if (ng == 4) pv_ng(4, a, D, vrows, nb, pp);
            else if (ng == 3) pv_ng(3, a, D, vrows, nb, pp);
            else if (ng == 2) pv_ng(2, a, D, vrows, nb, pp);
            else pv_ng(1, a, D, vrows, nb, pp);
        }
    }
}
#endif

/* ---------------------------------------------------------------- driver
 * Work units are (query row t, KV head, part): with few (t, KV head) items
 * and many threads, each item's visible key range is split into `parts`
 * contiguous pieces (flash-decoding) whose partial (acc, m, l) are merged
 * afterwards in a fixed order. The split depends only on the thread count,
 * so results are deterministic for a given thread count. */

typedef struct {
    const attn_ctx *c;
    range_fn fn;
    int64_t parts;
    float *pacc, *pm, *pl; /* parts > 1: [units, G, D], [units, G], [units, G] */
} attn_run;

/* Visible key positions [*k0, *k1] of query row t (empty when *k0 > *k1). */
static void visible(const attn_ctx *c, int64_t t, int64_t *k0, int64_t *k1) {
    const mlxn_attention_params *p = c->p;
    int64_t qpos = c->pos ? c->pos[t] : p->kv_len - c->T + t;
    *k0 = c->lo;
    *k1 = c->maxpos;
    if (p->causal && qpos < *k1) *k1 = qpos;
    if (p->window > 0 && qpos - p->window + 1 > *k0) *k0 = qpos - p->window + 1;
}

static void attn_units(void *vctx, int64_t begin, int64_t end, int thread) {
    const attn_run *r = vctx;
    const attn_ctx *c = r->c;
    int64_t D = c->D, G = c->group;
    float *ws = c->scratch + (size_t)thread * c->per_thread;
    float *acc0 = ws, *m0 = acc0 + G * D, *l0 = m0 + G, *kws = l0 + G; /* kernel workspace; float offset G*D + 2G is even */
    for (int64_t u = begin; u < end; u++) {
        int64_t item = u / r->parts, part = u % r->parts;
        int64_t t = item / c->Hkv, kvh = item % c->Hkv;
        const float *qg = c->q + (t * c->Hq + kvh * G) * D; /* the G query heads of this KV head */
        int64_t k0, k1;
        visible(c, t, &k0, &k1);
        float *acc = r->parts > 1 ? r->pacc + u * G * D : acc0;
        float *m = r->parts > 1 ? r->pm + u * G : m0, *l = r->parts > 1 ? r->pl + u * G : l0;
        memset(acc, 0, (size_t)(G * D) * sizeof(float));
        for (int64_t g = 0; g < G; g++) { m[g] = -INFINITY; l[g] = 0.0f; }
        if (k0 <= k1) {
            int64_t len = k1 - k0 + 1;
            int64_t a = k0 + part * len / r->parts, b = k0 + (part + 1) * len / r->parts - 1;
            if (a <= b) r->fn(c, kws, kvh, qg, a, b, acc, m, l);
        }
        if (r->parts == 1) {
            float *og = c->out + (t * c->Hq + kvh * G) * D;
            for (int64_t g = 0; g < G; g++) {
                float inv = l[g] > 0 ? 1.0f / l[g] : 0.0f; /* no visible key: zeros */
                for (int64_t d = 0; d < D; d++) og[g * D + d] = acc[g * D + d] * inv;
            }
        }
    }
}

/* Merge the parts of each item: out = sum_s acc_s e^(m_s - M) / sum_s l_s e^(m_s - M). */
static void attn_merge(void *vctx, int64_t begin, int64_t end, int thread) {
    const attn_run *r = vctx;
    const attn_ctx *c = r->c;
    int64_t D = c->D, G = c->group, S = r->parts;
    for (int64_t item = begin; item < end; item++) {
        int64_t t = item / c->Hkv, kvh = item % c->Hkv;
        float *og = c->out + (t * c->Hq + kvh * G) * D;
        for (int64_t g = 0; g < G; g++) {
            float M = -INFINITY;
            for (int64_t sp = 0; sp < S; sp++) M = fmaxf(M, r->pm[(item * S + sp) * G + g]);
            float *o = og + g * D;
            if (M == -INFINITY) {
                memset(o, 0, (size_t)D * sizeof(float));
                continue;
            }
            float L = 0;
            memset(o, 0, (size_t)D * sizeof(float));
            for (int64_t sp = 0; sp < S; sp++) {
                int64_t u = item * S + sp;
                float mm = r->pm[u * G + g];
                if (mm == -INFINITY) continue;
                float w = expf(mm - M);
                L += r->pl[u * G + g] * w;
                const float *a = r->pacc + (u * G + g) * D;
                for (int64_t d = 0; d < D; d++) o[d] += a[d] * w;
            }
            float inv = 1.0f / L;
            for (int64_t d = 0; d < D; d++) o[d] *= inv;
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
    attn_run r = {.c = &c, .fn = range_generic, .parts = 1};
    size_t kernel_ws = (size_t)(c.group * BLK + 2 * BLK);
#if defined(__x86_64__)
    if (c.simd && c.D % 16 == 0) {
        r.fn = range_avx2;
        kernel_ws = (size_t)(2 * BLK2 * c.D + c.group * BLK2);
    }
#endif
    int64_t items = c.T * c.Hkv, nt = dev->n_threads, span = c.maxpos - c.lo + 1;
    if (items < 2 * nt && span >= 512) {
        r.parts = (2 * nt + items - 1) / items;
        if (r.parts > span / 256) r.parts = span / 256;
        if (r.parts < 1) r.parts = 1;
    }
    c.per_thread = (size_t)(c.group * c.D + 2 * c.group + 2) + kernel_ws;
    c.per_thread = (c.per_thread + 15) & ~(size_t)15;
    c.scratch = aligned_alloc(64, (size_t)nt * c.per_thread * sizeof(float));
    if (r.parts > 1) {
        size_t units = (size_t)(items * r.parts);
        r.pacc = malloc(units * (size_t)(c.group * c.D) * sizeof(float));
        r.pm = malloc(units * (size_t)c.group * sizeof(float));
        r.pl = malloc(units * (size_t)c.group * sizeof(float));
    }
    if (!c.scratch || (r.parts > 1 && (!r.pacc || !r.pm || !r.pl))) {
        free(c.scratch); free(r.pacc); free(r.pm); free(r.pl);
        return mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "attention: out of host memory for scratch");
    }
    mlxn_cpu_parallel_for(dev, items * r.parts, 1, attn_units, &r);
    if (r.parts > 1) mlxn_cpu_parallel_for(dev, items, 1, attn_merge, &r);
    free(r.pacc);
    free(r.pm);
    free(r.pl);
    free(c.scratch);
    return MLXN_OK;
}
