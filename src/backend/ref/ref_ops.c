/* ref_ops.c — the naive reference for every op of the catalog except
 * matmul/embedding/dequantize (ref_quant) and attention (ref_attention.c):
 * elementwise, cast, normalizations, rope, softmax, argmax, top-k, kv_append
 * and im2col. Straight loops over elements, math in double, each result
 * rounded once to the output dtype. It is the oracle the other backends are
 * tested against; keep it obviously right rather than fast. */
#include "backend/ref/ref_backend.h"

#include <math.h>
#include <string.h>

#define IN(op, i) mlxn_buf_ptr((op)->in[i])
#define OUT(op, i) mlxn_buf_ptr((op)->out[i])

/* ---------------------------------------------------------------- elementwise */

static double silu_d(double x) { return x / (1.0 + exp(-x)); }
static double gelu_d(double x, int kind) {
    if (kind == MLXN_GELU_TANH) {
        double k = sqrt(2.0 / M_PI);
        return 0.5 * x * (1.0 + tanh(k * (x + 0.044715 * x * x * x)));
    }
    return 0.5 * x * (1.0 + erf(x / sqrt(2.0)));
}

/* a op b with b of a's shape or broadcast [D] over a's rows. */
static mlxn_status ref_binary(const mlxn_op *op, int is_mul) {
    const mlxn_buffer *a = op->in[0], *b = op->in[1];
    mlxn_dtype t = a->dtype;
    int64_t n = mlxn_numel(a->ndim, a->shape);
    int64_t nb = mlxn_numel(b->ndim, b->shape); /* n, or D when broadcast */
    const void *pa = IN(op, 0), *pb = IN(op, 1);
    void *py = OUT(op, 0);
    for (int64_t i = 0; i < n; i++) {
        double x = mlxn_load_f(pa, t, i), y = mlxn_load_f(pb, t, i % nb);
        mlxn_store_f(py, t, i, (float)(is_mul ? x * y : x + y));
    }
    return MLXN_OK;
}

MLXN_REF_OP(add) { return ref_binary(op, 0); }
MLXN_REF_OP(mul) { return ref_binary(op, 1); }

/* y = f(x) elementwise; kind selects the function. */
enum { U_SCALE, U_SILU, U_GELU, U_SOFTCAP };
static mlxn_status ref_unary(const mlxn_op *op, int fn) {
    const mlxn_buffer *x = op->in[0];
    mlxn_dtype t = x->dtype;
    int64_t n = mlxn_numel(x->ndim, x->shape);
    const void *px = IN(op, 0);
    void *py = OUT(op, 0);
    for (int64_t i = 0; i < n; i++) {
        double v = mlxn_load_f(px, t, i), r = 0;
        switch (fn) {
        case U_SCALE: r = (double)op->f[0] * v; break;
        case U_SILU: r = silu_d(v); break;
        case U_GELU: r = gelu_d(v, op->i[0]); break;
        case U_SOFTCAP: r = (double)op->f[0] * tanh(v / (double)op->f[0]); break;
        }
        mlxn_store_f(py, t, i, (float)r);
    }
    return MLXN_OK;
}

MLXN_REF_OP(scale) { return ref_unary(op, U_SCALE); }
MLXN_REF_OP(silu) { return ref_unary(op, U_SILU); }
MLXN_REF_OP(gelu) { return ref_unary(op, U_GELU); }
MLXN_REF_OP(softcap) { return ref_unary(op, U_SOFTCAP); }

static mlxn_status ref_glu(const mlxn_op *op, int gelu) {
    const mlxn_buffer *g = op->in[0];
    mlxn_dtype t = g->dtype;
    int64_t n = mlxn_numel(g->ndim, g->shape);
    const void *pg = IN(op, 0), *pu = IN(op, 1);
    void *py = OUT(op, 0);
    for (int64_t i = 0; i < n; i++) {
        double a = mlxn_load_f(pg, t, i), u = mlxn_load_f(pu, t, i);
        double act = gelu ? gelu_d(a, op->i[0]) : silu_d(a);
        mlxn_store_f(py, t, i, (float)(act * u));
    }
    return MLXN_OK;
}

MLXN_REF_OP(silu_mul) { return ref_glu(op, 0); }
MLXN_REF_OP(gelu_mul) { return ref_glu(op, 1); }

/* byte copy (the CPU backend uses it too) */
MLXN_REF_OP(copy) {
    (void)s;
    memcpy(OUT(op, 0), IN(op, 0), mlxn_buffer_nbytes(op->in[0]));
    return MLXN_OK;
}

MLXN_REF_OP(cast) {
    const mlxn_buffer *x = op->in[0];
    mlxn_buffer *y = op->out[0];
    int64_t n = mlxn_numel(x->ndim, x->shape);
    if (x->dtype == y->dtype) {
        memmove(OUT(op, 0), IN(op, 0), (size_t)n * mlxn_dtype_size(x->dtype));
        return MLXN_OK;
    }
    /* every f16 and bf16 value is exact in f32, so one rounding at the store */
    for (int64_t i = 0; i < n; i++) mlxn_store_f(OUT(op, 0), y->dtype, i, mlxn_load_f(IN(op, 0), x->dtype, i));
    return MLXN_OK;
}

/* ---------------------------------------------------------------- normalization */

/* y_row = x_row / sqrt(mean(x²) + eps) * w ; x_row read from (px, t) */
static void rms_row(const void *px, mlxn_dtype t, int64_t r, int64_t D, const void *pw, double eps, void *py) {
    double ss = 0;
    for (int64_t j = 0; j < D; j++) {
        double v = mlxn_load_f(px, t, r * D + j);
        ss += v * v;
    }
    double inv = 1.0 / sqrt(ss / (double)D + eps);
    for (int64_t j = 0; j < D; j++) {
        double v = mlxn_load_f(px, t, r * D + j) * inv;
        if (pw) v *= mlxn_load_f(pw, t, j);
        mlxn_store_f(py, t, r * D + j, (float)v);
    }
}

MLXN_REF_OP(rms_norm) {
    int64_t R, D;
    mlxn_buffer_rows_cols(op->in[0], &R, &D);
    const void *pw = op->in[1] ? IN(op, 1) : NULL;
    for (int64_t r = 0; r < R; r++) rms_row(IN(op, 0), op->in[0]->dtype, r, D, pw, op->f[0], OUT(op, 0));
    return MLXN_OK;
}

MLXN_REF_OP(rms_norm_residual) {
    int64_t R, D;
    mlxn_buffer_rows_cols(op->in[0], &R, &D);
    mlxn_dtype t = op->in[0]->dtype;
    const void *pw = op->in[2] ? IN(op, 2) : NULL;
    void *psum = OUT(op, 0);
    for (int64_t r = 0; r < R; r++) {
        /* sum is rounded to the dtype, stored, and the norm reads the stored values */
        for (int64_t j = 0; j < D; j++) {
            double v = (double)mlxn_load_f(IN(op, 0), t, r * D + j) + (double)mlxn_load_f(IN(op, 1), t, r * D + j);
            mlxn_store_f(psum, t, r * D + j, (float)v);
        }
        rms_row(psum, t, r, D, pw, op->f[0], OUT(op, 1));
    }
    return MLXN_OK;
}

MLXN_REF_OP(layer_norm) {
    int64_t R, D;
    mlxn_buffer_rows_cols(op->in[0], &R, &D);
    mlxn_dtype t = op->in[0]->dtype;
    const void *px = IN(op, 0), *pw = op->in[1] ? IN(op, 1) : NULL, *pb = op->in[2] ? IN(op, 2) : NULL;
    for (int64_t r = 0; r < R; r++) {
        double mean = 0, var = 0;
        for (int64_t j = 0; j < D; j++) mean += mlxn_load_f(px, t, r * D + j);
        mean /= (double)D;
        for (int64_t j = 0; j < D; j++) {
            double d = mlxn_load_f(px, t, r * D + j) - mean;
            var += d * d;
        }
        var /= (double)D;
        double inv = 1.0 / sqrt(var + op->f[0]);
        for (int64_t j = 0; j < D; j++) {
            double v = (mlxn_load_f(px, t, r * D + j) - mean) * inv;
            if (pw) v *= mlxn_load_f(pw, t, j);
            if (pb) v += mlxn_load_f(pb, t, j);
            mlxn_store_f(OUT(op, 0), t, r * D + j, (float)v);
        }
    }
    return MLXN_OK;
}

MLXN_REF_OP(l2_norm) {
    int64_t R, D;
    mlxn_buffer_rows_cols(op->in[0], &R, &D);
    mlxn_dtype t = op->in[0]->dtype;
    const void *px = IN(op, 0);
    for (int64_t r = 0; r < R; r++) {
        double ss = 0;
        for (int64_t j = 0; j < D; j++) {
            double v = mlxn_load_f(px, t, r * D + j);
            ss += v * v;
        }
        double nrm = sqrt(ss);
        if (nrm < op->f[0]) nrm = op->f[0];
        for (int64_t j = 0; j < D; j++) mlxn_store_f(OUT(op, 0), t, r * D + j, (float)(mlxn_load_f(px, t, r * D + j) / nrm));
    }
    return MLXN_OK;
}

/* ---------------------------------------------------------------- rope */

/* Inverse frequency of pair i (0 <= i < rot/2), in double: theta^(-2i/rot),
 * then Llama-3 frequency-dependent scaling (as Hugging Face's
 * _compute_llama3_parameters). Linear scaling divides positions instead. */
static double rope_inv_freq(const mlxn_rope_params *p, int i) {
    double inv = pow((double)p->theta, -2.0 * i / (double)p->rot_dims);
    if (p->scaling == MLXN_ROPE_SCALING_LLAMA3) {
        double lf = p->low_freq_factor, hf = p->high_freq_factor, omp = p->original_max_pos;
        double low_wl = omp / lf, high_wl = omp / hf;
        double wl = 2.0 * M_PI / inv;
        if (wl > low_wl) {
            inv = inv / p->factor;
        } else if (wl >= high_wl) { /* medium band: smooth interpolation */
            double smooth = (omp / wl - lf) / (hf - lf);
            inv = (1.0 - smooth) * inv / p->factor + smooth * inv;
        }
    }
    return inv;
}

MLXN_REF_OP(rope) {
    const mlxn_buffer *x = op->in[0];
    const mlxn_rope_params *p = &op->p.rope;
    int64_t T = x->shape[0], H = x->shape[1], D = x->shape[2], rot = p->rot_dims, half = rot / 2;
    mlxn_dtype t = x->dtype;
    const int32_t *pos = IN(op, 1);
    const void *px = IN(op, 0);
    void *py = OUT(op, 0);
    double pos_div = p->scaling == MLXN_ROPE_SCALING_LINEAR ? (double)p->factor : 1.0;
    for (int64_t r = 0; r < T; r++) {
        for (int64_t h = 0; h < H; h++) {
            int64_t base = (r * H + h) * D;
            /* each pair is read before it is written, so y may alias x */
            for (int64_t i = 0; i < half; i++) {
                int64_t i0 = p->mode == MLXN_ROPE_ADJACENT ? 2 * i : i;
                int64_t i1 = p->mode == MLXN_ROPE_ADJACENT ? 2 * i + 1 : i + half;
                double ang = (double)pos[r] / pos_div * rope_inv_freq(p, (int)i);
                double c = cos(ang), s = sin(ang);
                double x0 = mlxn_load_f(px, t, base + i0), x1 = mlxn_load_f(px, t, base + i1);
                mlxn_store_f(py, t, base + i0, (float)(x0 * c - x1 * s));
                mlxn_store_f(py, t, base + i1, (float)(x0 * s + x1 * c));
            }
            for (int64_t j = rot; j < D; j++) mlxn_store_f(py, t, base + j, mlxn_load_f(px, t, base + j));
        }
    }
    return MLXN_OK;
}

/* ---------------------------------------------------------------- softmax, argmax, top-k */

MLXN_REF_OP(softmax) {
    int64_t M, N;
    mlxn_buffer_rows_cols(op->in[0], &M, &N);
    const float *x = IN(op, 0);
    const float *mask = op->in[1] ? IN(op, 1) : NULL;
    int64_t mask_rows = op->in[1] ? mlxn_numel(op->in[1]->ndim, op->in[1]->shape) / N : 0;
    float *y = OUT(op, 0);
    double scale = op->f[0];
    for (int64_t r = 0; r < M; r++) {
        const float *mr = mask ? mask + (mask_rows == 1 ? 0 : r) * N : NULL;
        double mx = -INFINITY;
        for (int64_t j = 0; j < N; j++) {
            double z = scale * x[r * N + j] + (mr ? mr[j] : 0.0);
            if (z > mx) mx = z;
        }
        if (mx == -INFINITY) { /* fully masked row */
            for (int64_t j = 0; j < N; j++) y[r * N + j] = 0.0f;
            continue;
        }
        double sum = 0;
        for (int64_t j = 0; j < N; j++) sum += exp(scale * x[r * N + j] + (mr ? mr[j] : 0.0) - mx);
        /* element j is read before it is written (y may alias x) */
        for (int64_t j = 0; j < N; j++) {
            double z = scale * x[r * N + j] + (mr ? mr[j] : 0.0);
            y[r * N + j] = (float)(exp(z - mx) / sum);
        }
    }
    return MLXN_OK;
}

/* Ranking used by argmax and top-k: a beats b if larger; NaN ranks below
 * every number; equal values go to the lower index. */
static int ranks_above(float a, int64_t ia, float b, int64_t ib) {
    if (isnan(a)) return isnan(b) ? ia < ib : 0;
    if (isnan(b)) return 1;
    if (a != b) return a > b;
    return ia < ib;
}

MLXN_REF_OP(argmax) {
    int64_t M, N;
    mlxn_buffer_rows_cols(op->in[0], &M, &N);
    const float *x = IN(op, 0);
    int32_t *idx = OUT(op, 0);
    for (int64_t r = 0; r < M; r++) {
        int64_t best = 0;
        for (int64_t j = 1; j < N; j++)
            if (ranks_above(x[r * N + j], j, x[r * N + best], best)) best = j;
        idx[r] = (int32_t)best;
    }
    return MLXN_OK;
}

MLXN_REF_OP(topk) {
    int64_t M, N;
    mlxn_buffer_rows_cols(op->in[0], &M, &N);
    int k = op->i[0];
    const float *x = IN(op, 0);
    float *vals = op->out[0] ? OUT(op, 0) : NULL;
    int32_t *idx = OUT(op, 1);
    for (int64_t r = 0; r < M; r++) {
        const float *xr = x + r * N;
        /* selection: the j-th pick is the best element that ranks below pick j-1 */
        int64_t prev = -1;
        for (int j = 0; j < k; j++) {
            int64_t best = -1;
            for (int64_t c = 0; c < N; c++) {
                if (prev >= 0 && !ranks_above(xr[prev], prev, xr[c], c)) continue; /* already taken */
                if (best < 0 || ranks_above(xr[c], c, xr[best], best)) best = c;
            }
            idx[r * k + j] = (int32_t)best;
            if (vals) vals[r * k + j] = xr[best];
            prev = best;
        }
    }
    return MLXN_OK;
}

/* ---------------------------------------------------------------- kv cache, im2col */

MLXN_REF_OP(kv_append) {
    const mlxn_buffer *src = op->in[0];
    mlxn_buffer *cache = op->out[0];
    int64_t T = src->shape[0], H = src->shape[1], D = src->shape[2], C = cache->shape[1];
    const int32_t *pos = IN(op, 1);
    int ring = op->i[0];
    for (int64_t t = 0; t < T; t++) {
        if (pos[t] < 0 || (!ring && pos[t] >= C))
            return mlxn_set_error(MLXN_ERR_RANGE, "kv_append: positions[%lld] = %d is outside [0, %lld) (linear cache capacity)%s",
                                  (long long)t, pos[t], (long long)C, ring ? " (ring: must be >= 0)" : "");
    }
    for (int64_t t = 0; t < T; t++) { /* in order: with a ring, a later row wins a shared slot */
        int64_t slot = ring ? pos[t] % C : pos[t];
        for (int64_t h = 0; h < H; h++) {
            int64_t si = (t * H + h) * D, ci = (h * C + slot) * D;
            if (src->dtype == cache->dtype) {
                size_t es = mlxn_dtype_size(src->dtype);
                memcpy((char *)OUT(op, 0) + ci * es, (const char *)IN(op, 0) + si * es, (size_t)D * es);
            } else {
                for (int64_t d = 0; d < D; d++)
                    mlxn_store_f(OUT(op, 0), cache->dtype, ci + d, mlxn_load_f(IN(op, 0), src->dtype, si + d));
            }
        }
    }
    return MLXN_OK;
}

MLXN_REF_OP(im2col_2d_3ch) {
    const mlxn_buffer *img = op->in[0];
    int64_t H = img->shape[1], W = img->shape[2], p = op->i[0];
    int64_t gw = W / p, gh = H / p, row = 3 * p * p;
    const float *x = IN(op, 0);
    float *y = OUT(op, 0);
    for (int64_t py = 0; py < gh; py++)
        for (int64_t px = 0; px < gw; px++) {
            int64_t patch = py * gw + px;
            for (int64_t c = 0; c < 3; c++)
                for (int64_t dy = 0; dy < p; dy++)
                    for (int64_t dx = 0; dx < p; dx++)
                        y[patch * row + (c * p + dy) * p + dx] = x[(c * H + py * p + dy) * W + px * p + dx];
        }
    return MLXN_OK;
}
