/* cpu_norm.c — CPU kernels for rms_norm, rms_norm_residual, layer_norm and
 * l2_norm over the last axis of x [R, D]. Rows are split across the thread
 * pool; f16/bf16 rows are widened into a per-thread f32 scratch row, the
 * statistics use f32 lanes summed into a double, and each output is rounded
 * once to the dtype. f32 sum-of-squares and the scaling pass have AVX2+FMA
 * variants selected at run time. */
#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_convert.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

enum { N_RMS, N_RMS_RES, N_LAYER, N_L2 };

typedef struct {
    int kind;
    mlxn_dtype t;
    int64_t D;
    const void *x, *r;   /* r: residual (N_RMS_RES) */
    const float *w, *b;  /* widened weight/bias [D] or NULL */
    void *sum, *y;
    float *scratch;      /* [threads, 2, D] when t != f32 */
    double eps;
    int avx2;
} norm_ctx;

static double sumsq_scalar(const float *x, int64_t n) {
    float acc[8] = {0};
    int64_t j = 0;
    for (; j + 8 <= n; j += 8)
        for (int l = 0; l < 8; l++) acc[l] += x[j + l] * x[j + l];
    double s = 0;
    for (int l = 0; l < 8; l++) s += acc[l];
    for (; j < n; j++) s += (double)x[j] * x[j];
    return s;
}

/* y = x * inv (* w) */
static void scale_row_scalar(const float *x, float inv, const float *w, float *y, int64_t n) {
    if (w) for (int64_t j = 0; j < n; j++) y[j] = x[j] * inv * w[j];
    else for (int64_t j = 0; j < n; j++) y[j] = x[j] * inv;
}

#if defined(__x86_64__)
__attribute__((target("avx2,fma"))) static double sumsq_avx2(const float *x, int64_t n) {
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
    int64_t j = 0;
    for (; j + 32 <= n; j += 32) {
        __m256 v0 = _mm256_loadu_ps(x + j), v1 = _mm256_loadu_ps(x + j + 8);
        __m256 v2 = _mm256_loadu_ps(x + j + 16), v3 = _mm256_loadu_ps(x + j + 24);
        a0 = _mm256_fmadd_ps(v0, v0, a0);
        a1 = _mm256_fmadd_ps(v1, v1, a1);
        a2 = _mm256_fmadd_ps(v2, v2, a2);
        a3 = _mm256_fmadd_ps(v3, v3, a3);
    }
    for (; j + 8 <= n; j += 8) {
        __m256 v = _mm256_loadu_ps(x + j);
        a0 = _mm256_fmadd_ps(v, v, a0);
    }
    float l[8];
    _mm256_storeu_ps(l, _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
    double s = 0;
    for (int i = 0; i < 8; i++) s += l[i];
    for (; j < n; j++) s += (double)x[j] * x[j];
    return s;
}

__attribute__((target("avx2,fma"))) static void scale_row_avx2(const float *x, float inv, const float *w, float *y,
                                                               int64_t n) {
    __m256 vi = _mm256_set1_ps(inv);
    int64_t j = 0;
    if (w) {
        for (; j + 8 <= n; j += 8)
            _mm256_storeu_ps(y + j, _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(x + j), vi), _mm256_loadu_ps(w + j)));
        for (; j < n; j++) y[j] = x[j] * inv * w[j];
    } else {
        for (; j + 8 <= n; j += 8) _mm256_storeu_ps(y + j, _mm256_mul_ps(_mm256_loadu_ps(x + j), vi));
        for (; j < n; j++) y[j] = x[j] * inv;
    }
}
#endif

static double sumsq(const norm_ctx *c, const float *x, int64_t n) {
#if defined(__x86_64__)
    if (c->avx2) return sumsq_avx2(x, n);
#endif
    return sumsq_scalar(x, n);
}
static void scale_row(const norm_ctx *c, const float *x, float inv, const float *w, float *y, int64_t n) {
#if defined(__x86_64__)
    if (c->avx2) { scale_row_avx2(x, inv, w, y, n); return; }
#endif
    scale_row_scalar(x, inv, w, y, n);
}

static void norm_rows(void *vctx, int64_t begin, int64_t end, int thread) {
    const norm_ctx *c = vctx;
    int64_t D = c->D;
    int f32 = c->t == MLXN_F32;
    float *tmp = f32 ? NULL : c->scratch + (size_t)thread * (size_t)(2 * D), *tmp2 = f32 ? NULL : tmp + D;
    for (int64_t r = begin; r < end; r++) {
        int64_t o = r * D;
        const float *x;
        if (c->kind == N_RMS_RES) {
            /* sum = x + residual, rounded to the dtype and stored; the norm reads the stored values */
            if (f32) {
                const float *a = (const float *)c->x + o, *b = (const float *)c->r + o;
                float *sm = (float *)c->sum + o;
                for (int64_t j = 0; j < D; j++) sm[j] = a[j] + b[j];
                x = sm;
            } else {
                mlxn_cpu_widen(c->x, c->t, o, D, tmp);
                mlxn_cpu_widen(c->r, c->t, o, D, tmp2);
                for (int64_t j = 0; j < D; j++) tmp[j] += tmp2[j];
                mlxn_cpu_narrow(tmp, c->sum, c->t, o, D);
                mlxn_cpu_widen(c->sum, c->t, o, D, tmp); /* the rounded sum */
                x = tmp;
            }
        } else if (f32) {
            x = (const float *)c->x + o;
        } else {
            mlxn_cpu_widen(c->x, c->t, o, D, tmp);
            x = tmp;
        }
        float *y = f32 ? (float *)c->y + o : tmp; /* in place over the scratch row for half types */
        switch (c->kind) {
        case N_RMS:
        case N_RMS_RES: {
            double ms = sumsq(c, x, D) / (double)D;
            float inv = (float)(1.0 / sqrt(ms + c->eps));
            scale_row(c, x, inv, c->w, y, D);
            break;
        }
        case N_L2: {
            double nrm = sqrt(sumsq(c, x, D));
            if (nrm < c->eps) nrm = c->eps;
            scale_row(c, x, (float)(1.0 / nrm), NULL, y, D);
            break;
        }
        case N_LAYER: {
            double mean = 0, var = 0;
            for (int64_t j = 0; j < D; j++) mean += x[j];
            mean /= (double)D;
            float fm = (float)mean;
            for (int64_t j = 0; j < D; j++) {
                double d = (double)x[j] - mean;
                var += d * d;
            }
            float inv = (float)(1.0 / sqrt(var / (double)D + c->eps));
            for (int64_t j = 0; j < D; j++) {
                float v = (x[j] - fm) * inv;
                if (c->w) v *= c->w[j];
                if (c->b) v += c->b[j];
                y[j] = v;
            }
            break;
        }
        }
        if (!f32) mlxn_cpu_narrow(y, c->y, c->t, o, D);
    }
}

/* Widen an optional [D] vector to f32 (a direct pointer when already f32). */
static mlxn_status widen_vec(const mlxn_buffer *v, int64_t D, const float **out, float **owned) {
    *out = NULL;
    *owned = NULL;
    if (!v) return MLXN_OK;
    if (v->dtype == MLXN_F32) { *out = mlxn_buf_ptr(v); return MLXN_OK; }
    float *w = malloc((size_t)D * sizeof *w);
    if (!w) return mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "cpu norm: out of host memory");
    mlxn_cpu_widen(mlxn_buf_ptr(v), v->dtype, 0, D, w);
    *out = w;
    *owned = w;
    return MLXN_OK;
}

static mlxn_status run_norm(mlxn_session *s, const mlxn_op *op, int kind) {
    mlxn_cpu_device *dev = mlxn_cpu_sess_dev(s);
    const mlxn_buffer *x = op->in[0];
    int64_t R, D;
    mlxn_buffer_rows_cols(x, &R, &D);
    norm_ctx c = {.kind = kind, .t = x->dtype, .D = D, .x = mlxn_buf_ptr(x), .eps = op->f[0],
                  .avx2 = dev->feat.avx2 && dev->feat.fma};
    const mlxn_buffer *wb = NULL, *bb = NULL;
    switch (kind) {
    case N_RMS: wb = op->in[1]; c.y = mlxn_buf_ptr(op->out[0]); break;
    case N_RMS_RES:
        c.r = mlxn_buf_ptr(op->in[1]);
        wb = op->in[2];
        c.sum = mlxn_buf_ptr(op->out[0]);
        c.y = mlxn_buf_ptr(op->out[1]);
        break;
    case N_LAYER: wb = op->in[1]; bb = op->in[2]; c.y = mlxn_buf_ptr(op->out[0]); break;
    case N_L2: c.y = mlxn_buf_ptr(op->out[0]); break;
    }
    float *ow = NULL, *ob = NULL;
    mlxn_status st = widen_vec(wb, D, &c.w, &ow);
    if (st == MLXN_OK) st = widen_vec(bb, D, &c.b, &ob);
    if (st == MLXN_OK && c.t != MLXN_F32) {
        c.scratch = malloc((size_t)dev->n_threads * (size_t)(2 * D) * sizeof(float));
        if (!c.scratch) st = mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "%s: out of host memory for scratch rows",
                                            mlxn_op_name(op->kind));
    }
    if (st == MLXN_OK) mlxn_cpu_parallel_for(dev, R, (8192 + D - 1) / D, norm_rows, &c);
    free(c.scratch);
    free(ow);
    free(ob);
    return st;
}

MLXN_CPU_OP(rms_norm) { return run_norm(s, op, N_RMS); }
MLXN_CPU_OP(rms_norm_residual) { return run_norm(s, op, N_RMS_RES); }
MLXN_CPU_OP(layer_norm) { return run_norm(s, op, N_LAYER); }
MLXN_CPU_OP(l2_norm) { return run_norm(s, op, N_L2); }
