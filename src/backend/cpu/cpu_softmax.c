/* cpu_softmax.c — CPU kernel for softmax over the last axis of f32 x [M, N]
 * with a scale and an optional additive mask ([M, N] or [N]). Three passes
 * per row: max of z = scale*x + mask, y = exp(z - max) with the sum (f32
 * lanes folded into a double every 1024 elements), y *= 1/sum. With enough
 * rows the rows are split across the thread pool; a few long rows (vocab
 * logits) are instead split into column chunks (one per thread), each pass a
 * parallel_for over the chunks whose maxima and sums are combined in chunk
 * order (deterministic for a fixed thread count). AVX2+FMA variants (polynomial exp, ~1 ulp) are chosen
 * at run time. A row whose every logit is -inf (fully masked) yields zeros.
 * y may alias x. */
#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_simd.h"

#include <math.h>
#include <stdlib.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

/* ---------------------------------------------------------------- scalar passes */

static float max_scalar(const float *x, const float *m, float scale, int64_t n) {
    float mx = -INFINITY;
    for (int64_t j = 0; j < n; j++) {
        float z = scale * x[j] + (m ? m[j] : 0.0f);
        mx = z > mx ? z : mx;
    }
    return mx;
}

static double exp_scalar(const float *x, const float *m, float scale, float mx, float *y, int64_t n) {
    double sum = 0;
    for (int64_t j = 0; j < n; j++) {
        float e = expf(scale * x[j] + (m ? m[j] : 0.0f) - mx);
        y[j] = e;
        sum += e;
    }
    return sum;
}

static void mul_scalar(float *y, float s, int64_t n) {
    for (int64_t j = 0; j < n; j++) y[j] *= s;
}

/* ---------------------------------------------------------------- AVX2 passes */

#if defined(__x86_64__)

__attribute__((target("avx2,fma"))) static float max_avx2(const float *x, const float *m, float scale, int64_t n) {
    __m256 vs = _mm256_set1_ps(scale), vm = _mm256_set1_ps(-INFINITY);
    int64_t j = 0;
    for (; j + 8 <= n; j += 8) {
        __m256 z = _mm256_mul_ps(vs, _mm256_loadu_ps(x + j));
        if (m) z = _mm256_add_ps(z, _mm256_loadu_ps(m + j));
        vm = _mm256_max_ps(vm, z);
    }
    float l[8];
    _mm256_storeu_ps(l, vm);
    float mx = -INFINITY;
    for (int i = 0; i < 8; i++) mx = l[i] > mx ? l[i] : mx;
    float t = max_scalar(x + j, m ? m + j : NULL, scale, n - j);
    return t > mx ? t : mx;
}

__attribute__((target("avx2,fma"))) static double exp_avx2(const float *x, const float *m, float scale, float mx,
                                                            float *y, int64_t n) {
    __m256 vs = _mm256_set1_ps(scale), vmx = _mm256_set1_ps(mx);
    double sum = 0;
    int64_t j = 0;
    while (j + 8 <= n) {
        __m256 acc = _mm256_setzero_ps();
        int64_t stop = j + 1024 < n ? j + 1024 : n;
        for (; j + 8 <= stop; j += 8) {
            __m256 z = _mm256_mul_ps(vs, _mm256_loadu_ps(x + j));
            if (m) z = _mm256_add_ps(z, _mm256_loadu_ps(m + j));
            __m256 e = mlxn_cpu_exp8(_mm256_sub_ps(z, vmx));
            _mm256_storeu_ps(y + j, e);
            acc = _mm256_add_ps(acc, e);
        }
        float l[8];
        _mm256_storeu_ps(l, acc);
        sum += ((double)l[0] + l[1]) + ((double)l[2] + l[3]) + ((double)l[4] + l[5]) + ((double)l[6] + l[7]);
    }
    return sum + exp_scalar(x + j, m ? m + j : NULL, scale, mx, y + j, n - j);
}

__attribute__((target("avx2,fma"))) static void mul_avx2(float *y, float s, int64_t n) {
    __m256 vs = _mm256_set1_ps(s);
    int64_t j = 0;
    for (; j + 8 <= n; j += 8) _mm256_storeu_ps(y + j, _mm256_mul_ps(vs, _mm256_loadu_ps(y + j)));
    mul_scalar(y + j, s, n - j);
}
#endif

/* ---------------------------------------------------------------- driver */

typedef struct {
    const float *x, *mask;
    float *y;
    int64_t N;
    int mask_full; /* mask is [M, N] (else [N]) */
    float scale;
    int avx2;
    /* column-split mode: the row being processed and per-chunk results */
    int64_t row;
    float row_max, row_inv;
    int64_t nchunks;
    float *cmax;   /* [nchunks] */
    double *csum;  /* [nchunks] */
} sm_ctx;

static float pass_max(const sm_ctx *c, const float *x, const float *m, int64_t n) {
#if defined(__x86_64__)
    if (c->avx2) return max_avx2(x, m, c->scale, n);
#endif
    return max_scalar(x, m, c->scale, n);
}
static double pass_exp(const sm_ctx *c, const float *x, const float *m, float mx, float *y, int64_t n) {
#if defined(__x86_64__)
    if (c->avx2) return exp_avx2(x, m, c->scale, mx, y, n);
#endif
    return exp_scalar(x, m, c->scale, mx, y, n);
}
static void pass_mul(const sm_ctx *c, float *y, float s, int64_t n) {
#if defined(__x86_64__)
    if (c->avx2) { mul_avx2(y, s, n); return; }
#endif
    mul_scalar(y, s, n);
}

static const float *row_mask(const sm_ctx *c, int64_t r) {
    return c->mask ? c->mask + (c->mask_full ? r * c->N : 0) : NULL;
}

static void sm_rows(void *vctx, int64_t begin, int64_t end, int thread) {
    const sm_ctx *c = vctx;
    int64_t N = c->N;
    for (int64_t r = begin; r < end; r++) {
        const float *x = c->x + r * N, *m = row_mask(c, r);
        float *y = c->y + r * N;
        float mx = pass_max(c, x, m, N);
        if (mx == -INFINITY) { /* fully masked row */
            for (int64_t j = 0; j < N; j++) y[j] = 0.0f;
            continue;
        }
        double sum = pass_exp(c, x, m, mx, y, N);
        pass_mul(c, y, (float)(1.0 / sum), N);
    }
}

/* Column-split passes over row c->row: item i of [0, nchunks) covers columns
 * [i*N/nchunks, (i+1)*N/nchunks) and owns slot i of cmax/csum, so the result
 * does not depend on how the pool schedules the items. */
static void chunk_cols(const sm_ctx *c, int64_t i, int64_t *b, int64_t *e) {
    *b = i * c->N / c->nchunks;
    *e = (i + 1) * c->N / c->nchunks;
}
static void cs_max(void *vctx, int64_t begin, int64_t end, int thread) {
    sm_ctx *c = vctx;
    const float *m = row_mask(c, c->row);
    for (int64_t i = begin; i < end; i++) {
        int64_t b, e;
        chunk_cols(c, i, &b, &e);
        c->cmax[i] = pass_max(c, c->x + c->row * c->N + b, m ? m + b : NULL, e - b);
    }
}
static void cs_exp(void *vctx, int64_t begin, int64_t end, int thread) {
    sm_ctx *c = vctx;
    const float *m = row_mask(c, c->row);
    for (int64_t i = begin; i < end; i++) {
        int64_t b, e;
        chunk_cols(c, i, &b, &e);
        c->csum[i] = pass_exp(c, c->x + c->row * c->N + b, m ? m + b : NULL, c->row_max, c->y + c->row * c->N + b, e - b);
    }
}
static void cs_mul(void *vctx, int64_t begin, int64_t end, int thread) {
    sm_ctx *c = vctx;
    for (int64_t i = begin; i < end; i++) {
        int64_t b, e;
        chunk_cols(c, i, &b, &e);
        pass_mul(c, c->y + c->row * c->N + b, c->row_inv, e - b);
    }
}

MLXN_CPU_OP(softmax) {
    mlxn_cpu_device *dev = mlxn_cpu_sess_dev(s);
    int64_t M, N;
    mlxn_buffer_rows_cols(op->in[0], &M, &N);
    sm_ctx c = {.x = mlxn_buf_ptr(op->in[0]), .y = mlxn_buf_ptr(op->out[0]), .N = N, .scale = op->f[0],
                .avx2 = dev->feat.avx2 && dev->feat.fma};
    if (op->in[1]) {
        c.mask = mlxn_buf_ptr(op->in[1]);
        c.mask_full = mlxn_numel(op->in[1]->ndim, op->in[1]->shape) != N || M == 1;
    }
    int nt = dev->n_threads;
    if (M >= nt || N < 16384 || nt == 1) {
        mlxn_cpu_parallel_for(dev, M, (16384 + N - 1) / N, sm_rows, &c);
        return MLXN_OK;
    }
    c.nchunks = (N + 4095) / 4096 < nt ? (N + 4095) / 4096 : nt;
    c.cmax = malloc((size_t)c.nchunks * sizeof *c.cmax);
    c.csum = malloc((size_t)c.nchunks * sizeof *c.csum);
    if (!c.cmax || !c.csum) {
        free(c.cmax);
        free(c.csum);
        return mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "softmax: out of host memory");
    }
    for (int64_t r = 0; r < M; r++) {
        c.row = r;
        mlxn_cpu_parallel_for(dev, c.nchunks, 1, cs_max, &c);
        float mx = -INFINITY;
        for (int64_t i = 0; i < c.nchunks; i++) mx = c.cmax[i] > mx ? c.cmax[i] : mx;
        if (mx == -INFINITY) {
            float *y = c.y + r * N;
            for (int64_t j = 0; j < N; j++) y[j] = 0.0f;
            continue;
        }
        c.row_max = mx;
        mlxn_cpu_parallel_for(dev, c.nchunks, 1, cs_exp, &c);
        double sum = 0;
        for (int64_t i = 0; i < c.nchunks; i++) sum += c.csum[i];
        c.row_inv = (float)(1.0 / sum);
        mlxn_cpu_parallel_for(dev, c.nchunks, 1, cs_mul, &c);
    }
    free(c.cmax);
    free(c.csum);
    return MLXN_OK;
}
