/* cpu_matmul.c — the CPU backend's matmul (y [M, N] = x [M, K] · Wᵀ),
 * embedding (gather dequantized rows) and dequantize ops for every weight
 * format. Work is split over the N weight rows with mlxn_cpu_parallel_for
 * (deterministic for a fixed thread count); each weight row is decoded once
 * and applied to up to 4 activation rows at a time, over blocks of 8 weight
 * rows so an x tile and a W tile stay in L2. By default activations stay f32
 * (MLX's semantics; matches the f64 reference to f32 rounding, NMSE ~1e-14):
 *  - with AVX2+FMA+F16C, GGUF Q4_0, Q4_1, Q8_0 and MLX affine 4/8-bit weights
 *    are decoded in registers and FMA-dotted with f32 x (path 3,
 *    cpu_matmul_f32act.c);
 *  - dense f32/f16/bf16 weights use f32 FMA dot products on converted rows
 *    (path 1);
 *  - every other format (and everything without AVX2) is dequantized row by
 *    row with the host codec and dotted in f32 (path 0).
 * MLXN_CPU_INT8_ACT=1 in the environment opts into int8 activations (path 2,
 * cpu_matmul_avx2.c) for GGUF Q4_0, Q4_1, Q8_0, Q4_K, Q5_K, Q6_K and MLX
 * affine weights (4- and 8-bit directly, 2/3/5/6-bit after unpacking each
 * row's codes to bytes): x quantized per 32 values like ggml's q8 formats,
 * integer dot products; faster, but NMSE vs the f64 reference ~3e-5 on
 * Gaussian x, ~7e-5 with outlier channels (tests allow 1e-4), which flips
 * greedy choices of small 4-bit models.
 * Activations and outputs are accessed with memcpy/unaligned loads (wrapped
 * host buffers may be unaligned). */
#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_quant_kernels.h"

#include <stdlib.h>
#include <string.h>

#define MR 4 /* activation rows per kernel call */
#define NB 8 /* weight rows per tile */

static int have_simd(void) {
#if defined(__x86_64__)
    const mlxn_cpu_features *f = mlxn_cpu_detect_features();
    return f->avx2 && f->fma && f->f16c;
#else
    return 0;
#endif
}

static cpu_qkind weight_qkind(const mlxn_weight *w) {
    const mlxn_weight_desc *d = &w->desc;
    if (d->format == MLXN_WEIGHT_MLX_AFFINE) {
        if (d->bits == 4) return CPU_Q_MLX4;
        if (d->bits == 8) return CPU_Q_MLX8;
        return CPU_Q_MLXB; /* 2, 3, 5, 6 */
    }
    if (d->format == MLXN_WEIGHT_GGUF) {
        switch (d->gguf_type) {
        case MLXN_GGUF_Q4_0: return CPU_Q_Q4_0;
        case MLXN_GGUF_Q4_1: return CPU_Q_Q4_1;
        case MLXN_GGUF_Q8_0: return CPU_Q_Q8_0;
        case MLXN_GGUF_Q4_K: return CPU_Q_Q4_K;
        case MLXN_GGUF_Q5_K: return CPU_Q_Q5_K;
        case MLXN_GGUF_Q6_K: return CPU_Q_Q6_K;
        default: return CPU_Q_NONE;
        }
    }
    return CPU_Q_NONE;
}

/* Portable f32 dot of a with rows of x (x row r at x + r*K). */
static void dot_f32_scalar(const float *a, const float *x, int64_t K, int nr, float *out) {
    for (int r = 0; r < nr; r++) {
        const float *xr = x + r * K;
        float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        int64_t k = 0;
        for (; k + 4 <= K; k += 4) {
            s0 += a[k] * xr[k];
            s1 += a[k + 1] * xr[k + 1];
            s2 += a[k + 2] * xr[k + 2];
            s3 += a[k + 3] * xr[k + 3];
        }
        for (; k < K; k++) s0 += a[k] * xr[k];
        out[r] = (s0 + s1) + (s2 + s3);
    }
}

/* ---------------------------------------------------------------- matmul */

typedef struct mm_ctx {
    const mlxn_weight *w;
    int64_t M, N, K;
    const float *xf;  // [M, K] aligned copy of x
    uint8_t *y;       // [M, N] f32, any alignment
    int path;         /* 0 generic (dequantize rows), 1 dense SIMD, 2 int8 SIMD, 3 f32-activation SIMD */
    cpu_qkind kind;
    cpu_xq xq;
    cpu_wdesc wd;
    float *scratch;   // [n_threads, NB, K] dequantized rows (generic path)
    uint8_t *codes;   // [n_threads, NB, K] unpacked MLX codes (CPU_Q_MLXB)
} mm_ctx;

static void store_y(mm_ctx *c, int64_t m, int64_t n, float v) { memcpy(c->y + (size_t)(m * c->N + n) * 4, &v, 4); }

static void mm_range(void *vctx, int64_t n0, int64_t n1, int thread) {
    mm_ctx *c = vctx;
    const int64_t M = c->M, K = c->K;
    float out[MR];
    for (int64_t nb = n0; nb < n1; nb += NB) {
        const int64_t ne = nb + NB < n1 ? nb + NB : n1;
        float *rows = NULL;
        uint8_t *codes = NULL;
        if (c->kind == CPU_Q_MLXB) {
            codes = c->codes + (size_t)thread * NB * (size_t)K;
            const int bits = c->w->desc.bits;
            for (int64_t n = nb; n < ne; n++) {
                const uint8_t *src = c->wd.data + n * c->wd.row_bytes;
                uint8_t *dst = codes + (n - nb) * K;
                int64_t done = 0;
#if defined(__x86_64__)
                done = mlxn_cpu_avx2_unpack_codes(src, K, bits, dst); /* path 2 implies AVX2 */
#endif
                mlxn_unpack_codes(src + done * bits / 8, K - done, bits, dst + done);
            }
        }
        (void)codes; /* only read by the x86-64 kernels */
        if (c->path == 0) {
            rows = c->scratch + (size_t)thread * NB * (size_t)K;
            /* validated before the parallel region: cannot fail here */
            (void)mlxn_weight_dequant_rows_host(c->w, nb, ne - nb, rows);
        }
        const int predecoded = c->path == 3 && c->scratch; /* M > MR: decode the tile once */
#if defined(__x86_64__)
        if (predecoded) {
            rows = c->scratch + (size_t)thread * NB * (size_t)K;
            mlxn_cpu_f32act_dequant_rows(c->kind, &c->wd, nb, ne - nb, rows);
        }
#endif
        for (int64_t m0 = 0; m0 < M; m0 += MR) {
            const int nr = (int)(M - m0 < MR ? M - m0 : MR);
            for (int64_t n = nb; n < ne; n++) {
                if (c->path == 3 && !predecoded) {
#if defined(__x86_64__)
                    mlxn_cpu_f32act_dot(c->kind, &c->wd, n, c->xf + m0 * K, nr, out);
#endif
                } else if (c->path == 2) {
#if defined(__x86_64__)
                    if (c->kind == CPU_Q_MLXB)
                        mlxn_cpu_avx2_dot_codes(&c->wd, n, codes + (n - nb) * K, &c->xq, m0, nr, c->w->desc.bits, out);
                    else
                        mlxn_cpu_avx2_dot_q(c->kind, &c->wd, n, &c->xq, m0, nr, out);
#endif
                } else if (c->path == 1) {
#if defined(__x86_64__)
                    mlxn_cpu_avx2_dot_dense(c->wd.sdt, c->wd.data + n * c->wd.row_bytes, c->xf + m0 * K, K, nr, out);
#endif
                } else {
                    const float *wr = rows + (n - nb) * K;
#if defined(__x86_64__)
                    if (have_simd()) mlxn_cpu_avx2_dot_f32(wr, c->xf + m0 * K, K, nr, out);
                    else
#endif
                        dot_f32_scalar(wr, c->xf + m0 * K, K, nr, out);
                }
                for (int r = 0; r < nr; r++) store_y(c, m0 + r, n, out[r]);
            }
        }
    }
}

static void xq_free(cpu_xq *q) {
    free(q->q);
    free(q->d);
    free(q->s);
    free(q->t);
    free(q->bs);
    free(q->sg);
    free(q->dp);
    free(q->ug);
}

/* Check that host dequantization of this weight works (so worker threads cannot fail). */
static mlxn_status check_codec(const char *op, const mlxn_weight *w) {
    const mlxn_weight_desc *d = &w->desc;
    if (d->format == MLXN_WEIGHT_GGUF) {
        switch (d->gguf_type) {
        case MLXN_GGUF_Q4_0: case MLXN_GGUF_Q4_1: case MLXN_GGUF_Q5_0: case MLXN_GGUF_Q5_1: case MLXN_GGUF_Q8_0:
        case MLXN_GGUF_Q2_K: case MLXN_GGUF_Q3_K: case MLXN_GGUF_Q4_K: case MLXN_GGUF_Q5_K: case MLXN_GGUF_Q6_K:
            return MLXN_OK;
        default:
            return mlxn_set_error(MLXN_ERR_UNSUPPORTED, "%s (cpu): GGUF type %s of weight '%s' is not supported", op,
                                  mlxn_gguf_type_name(d->gguf_type), d->name ? d->name : "");
        }
    }
    if (d->format == MLXN_WEIGHT_DENSE && d->data->dtype != MLXN_F32 && d->data->dtype != MLXN_F16 &&
        d->data->dtype != MLXN_BF16)
        return mlxn_set_error(MLXN_ERR_DTYPE, "%s (cpu): dense weight '%s' has dtype %s", op, d->name ? d->name : "",
                              mlxn_dtype_name(d->data->dtype));
    return MLXN_OK;
}

mlxn_status mlxn_cpu_matmul(mlxn_session *s, const mlxn_op *op) {
    mlxn_cpu_device *dev = mlxn_cpu_sess_dev(s);
    const mlxn_weight *w = op->w;
    MLXN_TRY(check_codec("matmul", w));
    mm_ctx c;
    memset(&c, 0, sizeof c);
    c.w = w;
    c.N = w->desc.rows;
    c.K = w->desc.cols;
    int64_t xk;
    mlxn_buffer_rows_cols(op->in[0], &c.M, &xk);
    c.y = mlxn_buf_ptr(op->out[0]);
    const int64_t M = c.M, K = c.K;
    const int simd = have_simd();
    /* Quantized weights use f32 activations (MLX's semantics) unless
     * MLXN_CPU_INT8_ACT=1 asks for int8 activations (ggml-style q8 dots:
     * faster, NMSE ~3e-5..7e-5 per matmul, enough to flip greedy choices of
     * small 4-bit models). */
    const char *int8 = getenv("MLXN_CPU_INT8_ACT");
    const int exact_act = !(int8 && int8[0] && strcmp(int8, "0") != 0);
    c.kind = simd ? weight_qkind(w) : CPU_Q_NONE;
    if (c.kind != CPU_Q_NONE && exact_act) {
        int f32act = 0;
#if defined(__x86_64__)
        f32act = mlxn_cpu_f32act_supported(c.kind);
#endif
        c.path = f32act ? 3 : 0;
        if (!f32act) c.kind = CPU_Q_NONE;
    } else {
        c.path = c.kind != CPU_Q_NONE ? 2 : (simd && w->desc.format == MLXN_WEIGHT_DENSE ? 1 : 0);
    }
    c.wd.data = mlxn_buf_ptr(w->desc.data);
    c.wd.row_bytes = w->row_bytes > 0 ? w->row_bytes : mlxn_weight_row_bytes(&w->desc);
    c.wd.K = K;
    if (w->desc.format == MLXN_WEIGHT_MLX_AFFINE) {
        c.wd.scales = mlxn_buf_ptr(w->desc.scales);
        c.wd.biases = mlxn_buf_ptr(w->desc.biases);
        c.wd.sdt = w->desc.scales->dtype;
        c.wd.group = w->desc.group_size;
    } else if (w->desc.format == MLXN_WEIGHT_DENSE) {
        c.wd.sdt = w->desc.data->dtype; /* dense: the row dtype */
    }
    const int nt = dev->n_threads > 0 ? dev->n_threads : 1;
    mlxn_status st = MLXN_OK;
    float *xf = malloc((size_t)(M * K) * sizeof(float));
    if (!xf) return mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "matmul (cpu): cannot allocate %lld floats", (long long)(M * K));
    memcpy(xf, mlxn_buf_ptr(op->in[0]), (size_t)(M * K) * sizeof(float)); // [M, K]
    c.xf = xf;
    if (c.path == 2) {
        const int64_t nblk = K / 32;
        c.xq.q = malloc((size_t)(M * K));
        c.xq.d = malloc((size_t)(M * nblk) * sizeof(float));
        c.xq.s = malloc((size_t)(M * nblk) * sizeof(float));
        c.xq.t = malloc((size_t)(M * nblk) * sizeof(float));
        const int need_bs = c.kind == CPU_Q_Q6_K;
        if (need_bs) c.xq.bs = malloc((size_t)(M * (K / 16)) * sizeof(int16_t));
        const int need_sg = c.kind == CPU_Q_MLX4, need_dp = need_sg && c.wd.group >= 64 && K >= 256;
        if (need_sg) {
            c.xq.sg = malloc((size_t)(M * (K / c.wd.group)) * sizeof(float));
            c.xq.ug = malloc((size_t)(M * (K / c.wd.group)) * sizeof(float));
        }
        if (need_dp) c.xq.dp = malloc((size_t)(M * (K / 256) * 8) * sizeof(float));
        if (!c.xq.q || !c.xq.d || !c.xq.s || !c.xq.t || (need_bs && !c.xq.bs) ||
            (need_sg && (!c.xq.sg || !c.xq.ug)) || (need_dp && !c.xq.dp))
            st = mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "matmul (cpu): cannot allocate quantized activations");
        if (st == MLXN_OK && c.kind == CPU_Q_MLXB) {
            c.codes = malloc((size_t)nt * NB * (size_t)K);
            if (!c.codes) st = mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "matmul (cpu): cannot allocate code scratch");
        }
#if defined(__x86_64__)
        if (st == MLXN_OK) mlxn_cpu_avx2_quantize_x(c.kind, xf, M, K, c.wd.group, &c.xq);
#endif
    } else if (c.path == 0 || (c.path == 3 && M > MR && (K <= 4096 || M >= 32))) {
        /* path 3 with several activation tiles: decode each weight tile once
         * into scratch (unless a big-K tile would not stay in L2 for few rows) */
        c.scratch = malloc((size_t)nt * NB * (size_t)K * sizeof(float));
        if (!c.scratch) st = mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "matmul (cpu): cannot allocate row scratch");
    }
    if (st == MLXN_OK) {
        /* enough rows per thread that the split is worth it */
        int64_t grain = (M * K) >= (1 << 16) ? NB : 64;
        mlxn_cpu_parallel_for(dev, c.N, grain, mm_range, &c);
    }
    xq_free(&c.xq);
    free(c.scratch);
    free(c.codes);
    free(xf);
    return st;
}

/* ---------------------------------------------------------------- embedding and dequantize */

typedef struct rows_ctx {
    const mlxn_weight *w;
    const uint8_t *ids; /* NULL: dequantize (row i = weight row i) */
    uint8_t *y;
    mlxn_dtype yt;
    int64_t K;
    float *scratch; // [n_threads, K]
} rows_ctx;

static void rows_range(void *vctx, int64_t i0, int64_t i1, int thread) {
    rows_ctx *c = vctx;
    const int64_t K = c->K;
    const size_t es = mlxn_dtype_size(c->yt);
    const mlxn_weight_desc *d = &c->w->desc;
    float *tmp = c->scratch + (size_t)thread * (size_t)K;
    for (int64_t i = i0; i < i1; i++) {
        int64_t r = i;
        if (c->ids) {
            int32_t id;
            memcpy(&id, c->ids + 4 * i, 4);
            r = id;
        }
        uint8_t *dst = c->y + (size_t)(i * K) * es;
        if (d->format == MLXN_WEIGHT_DENSE && d->data->dtype == c->yt) { /* same dtype: a plain row copy */
            memcpy(dst, (const uint8_t *)mlxn_buf_ptr(d->data) + r * c->w->row_bytes, (size_t)K * es);
            continue;
        }
        (void)mlxn_weight_dequant_rows_host(c->w, r, 1, tmp); /* validated: cannot fail */
        if (c->yt == MLXN_F32) {
            memcpy(dst, tmp, (size_t)K * 4);
        } else {
            for (int64_t k = 0; k < K; k++) {
                uint16_t h = c->yt == MLXN_F16 ? mlxn_f32_to_f16(tmp[k]) : mlxn_f32_to_bf16(tmp[k]);
                memcpy(dst + 2 * k, &h, 2);
            }
        }
    }
}

static mlxn_status run_rows(mlxn_session *s, const mlxn_weight *w, const uint8_t *ids, int64_t count, mlxn_buffer *y) {
    mlxn_cpu_device *dev = mlxn_cpu_sess_dev(s);
    const int nt = dev->n_threads > 0 ? dev->n_threads : 1;
    rows_ctx c = {.w = w, .ids = ids, .y = mlxn_buf_ptr(y), .yt = y->dtype, .K = w->desc.cols};
    c.scratch = malloc((size_t)nt * (size_t)c.K * sizeof(float));
    if (!c.scratch)
        return mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "%s (cpu): cannot allocate %lld floats", ids ? "embedding" : "dequantize",
                              (long long)(nt * c.K));
    int64_t grain = c.K >= 4096 ? 1 : 4096 / c.K;
    mlxn_cpu_parallel_for(dev, count, grain, rows_range, &c);
    free(c.scratch);
    return MLXN_OK;
}

mlxn_status mlxn_cpu_embedding(mlxn_session *s, const mlxn_op *op) {
    const mlxn_weight *w = op->w;
    MLXN_TRY(check_codec("embedding", w));
    const int64_t T = mlxn_buffer_numel(op->in[0]), N = w->desc.rows;
    const uint8_t *ids = mlxn_buf_ptr(op->in[0]);
    for (int64_t t = 0; t < T; t++) {
        int32_t id;
        memcpy(&id, ids + 4 * t, 4);
        if (id < 0 || id >= N)
            return mlxn_set_error(MLXN_ERR_RANGE, "embedding (cpu): ids[%lld] = %d is outside [0, %lld) of weight '%s'",
                                  (long long)t, id, (long long)N, w->desc.name ? w->desc.name : "");
    }
    return run_rows(s, w, ids, T, op->out[0]);
}

mlxn_status mlxn_cpu_dequantize(mlxn_session *s, const mlxn_op *op) {
    MLXN_TRY(check_codec("dequantize", op->w));
    return run_rows(s, op->w, NULL, op->w->desc.rows, op->out[0]);
}
