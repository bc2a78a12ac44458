/* ref_matmul.c — the reference ("ref" device) matmul, embedding and
 * dequantize for every weight format: each weight row is dequantized to f32
 * by the host codec (src/core/quant_codecs.c, itself checked against MLX and
 * gguf golden fixtures), and dot products are accumulated in double. No
 * threads, no SIMD; buffers are read and written through memcpy so wrapped,
 * unaligned host memory is fine. It is the oracle the CPU and CUDA backends
 * are tested against. */
#include "backend/ref/ref_backend.h"

#include <stdlib.h>
#include <string.h>

static mlxn_status row_alloc(const char *op, int64_t n, float **out) {
    *out = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    if (!*out) return mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "%s (ref): cannot allocate %lld floats", op, (long long)n);
    return MLXN_OK;
}

/* Store f32 v as element i of a (possibly unaligned) f32/f16/bf16 array. */
static void store_any(void *p, mlxn_dtype t, int64_t i, float v) {
    uint8_t *b = p;
    if (t == MLXN_F32) { memcpy(b + 4 * i, &v, 4); return; }
    uint16_t h = t == MLXN_F16 ? mlxn_f32_to_f16(v) : mlxn_f32_to_bf16(v);
    memcpy(b + 2 * i, &h, 2);
}

/* MATMUL: x [M, K] f32 (all leading dims are rows), w [N, K] -> y [M, N] f32. */
mlxn_status mlxn_ref_matmul(mlxn_session *s, const mlxn_op *op) {
    const mlxn_weight *w = op->w;
    const int64_t N = w->desc.rows, K = w->desc.cols;
    int64_t M, xk;
    mlxn_buffer_rows_cols(op->in[0], &M, &xk);
    const uint8_t *x = mlxn_buf_ptr(op->in[0]);
    uint8_t *y = mlxn_buf_ptr(op->out[0]);
    float *xf = NULL, *wr = NULL;
    mlxn_status st = row_alloc("matmul", M * K, &xf);
    if (st == MLXN_OK) st = row_alloc("matmul", K, &wr);
    if (st != MLXN_OK) { free(xf); return st; }
    memcpy(xf, x, (size_t)(M * K) * sizeof(float)); // [M, K]
    for (int64_t n = 0; n < N && st == MLXN_OK; n++) {
        st = mlxn_weight_dequant_rows_host(w, n, 1, wr); // [K]
        if (st != MLXN_OK) break;
        for (int64_t m = 0; m < M; m++) {
            const float *xr = xf + m * K;
            double acc = 0.0;
            for (int64_t k = 0; k < K; k++) acc += (double)xr[k] * (double)wr[k];
            float v = (float)acc;
            memcpy(y + (size_t)(m * N + n) * 4, &v, 4);
        }
    }
    free(xf);
    free(wr);
    return st;
}

/* EMBEDDING: ids i32 [T] -> y [T, K] (f32, f16 or bf16) = dequantized rows of w. */
mlxn_status mlxn_ref_embedding(mlxn_session *s, const mlxn_op *op) {
    const mlxn_weight *w = op->w;
    const int64_t N = w->desc.rows, K = w->desc.cols;
    const int64_t T = mlxn_buffer_numel(op->in[0]);
    const uint8_t *ids = mlxn_buf_ptr(op->in[0]);
    mlxn_buffer *yb = op->out[0];
    uint8_t *y = mlxn_buf_ptr(yb);
    const size_t es = mlxn_dtype_size(yb->dtype);
    for (int64_t t = 0; t < T; t++) { /* check every id before writing anything */
        int32_t id;
        memcpy(&id, ids + 4 * t, 4);
        if (id < 0 || id >= N)
            return mlxn_set_error(MLXN_ERR_RANGE, "embedding (ref): ids[%lld] = %d is outside [0, %lld) of weight '%s'",
                                  (long long)t, id, (long long)N, w->desc.name ? w->desc.name : "");
    }
    float *wr;
    MLXN_TRY(row_alloc("embedding", K, &wr));
    mlxn_status st = MLXN_OK;
    for (int64_t t = 0; t < T && st == MLXN_OK; t++) {
        int32_t id;
        memcpy(&id, ids + 4 * t, 4);
        st = mlxn_weight_dequant_rows_host(w, id, 1, wr); // [K]
        for (int64_t k = 0; k < K && st == MLXN_OK; k++) store_any(y + (size_t)(t * K) * es, yb->dtype, k, wr[k]);
    }
    free(wr);
    return st;
}

/* DEQUANTIZE: w [N, K] -> y [N, K] (f32, f16 or bf16). */
mlxn_status mlxn_ref_dequantize(mlxn_session *s, const mlxn_op *op) {
    const mlxn_weight *w = op->w;
    const int64_t N = w->desc.rows, K = w->desc.cols;
    mlxn_buffer *yb = op->out[0];
    uint8_t *y = mlxn_buf_ptr(yb);
    const size_t es = mlxn_dtype_size(yb->dtype);
    float *wr;
    MLXN_TRY(row_alloc("dequantize", K, &wr));
    mlxn_status st = MLXN_OK;
    for (int64_t n = 0; n < N && st == MLXN_OK; n++) {
        st = mlxn_weight_dequant_rows_host(w, n, 1, wr); // [K]
        for (int64_t k = 0; k < K && st == MLXN_OK; k++) store_any(y + (size_t)(n * K) * es, yb->dtype, k, wr[k]);
    }
    free(wr);
    return st;
}
