/* cuda_ops_quant.c — launchers for the ops that take a weight: embedding and
 * dequantize (kernels/quant.cu) and matmul, which picks the fastest kernel
 * for the weight format and the row count M: the warp-per-rows matvec family
 * (kernels/matvec.cu: MLX affine 4/8-bit, dense f16/bf16/f32, GGUF Q4_0,
 * Q8_0, Q4_K, Q6_K) for small M, the tensor-core GEMM (kernels/gemm.cu) for
 * large M where it exists, and the generic decode-per-element kernel for
 * everything else (every format the weight object accepts except GGUF
 * Q2_K/Q3_K, which return MLXN_ERR_UNSUPPORTED). */
#include "backend/cuda/cuda_internal.h"

#include <stdlib.h>

/* Mirrors struct WP in quant.cu. */
typedef struct {
    CUdeviceptr data, scales, biases;
    long long row_bytes, K;
    int fmt, sdt, bits, group, gtype, ddt;
} wparams;

static mlxn_status make_wparams(const char *opname, const mlxn_weight *w, wparams *p) {
    const mlxn_weight_desc *d = &w->desc;
    p->data = mlxn_cuda_addr(d->data);
    p->scales = mlxn_cuda_addr(d->scales);
    p->biases = mlxn_cuda_addr(d->biases);
    p->row_bytes = w->row_bytes;
    p->K = d->cols;
    p->fmt = (int)d->format;
    p->sdt = d->scales ? (int)d->scales->dtype : 0;
    p->bits = d->bits;
    p->group = d->group_size;
    p->gtype = (int)d->gguf_type;
    p->ddt = (int)d->data->dtype;
    if (d->format == MLXN_WEIGHT_GGUF) {
        switch (d->gguf_type) {
        case MLXN_GGUF_Q4_0: case MLXN_GGUF_Q4_1: case MLXN_GGUF_Q5_0: case MLXN_GGUF_Q5_1: case MLXN_GGUF_Q8_0:
        case MLXN_GGUF_Q4_K: case MLXN_GGUF_Q5_K: case MLXN_GGUF_Q6_K:
            break;
        default:
            return mlxn_set_error(MLXN_ERR_UNSUPPORTED, "%s (cuda): weight '%s' has GGUF type %s, not supported on cuda",
                                  opname, d->name, mlxn_gguf_type_name(d->gguf_type));
        }
    }
    return MLXN_OK;
}

/* dequant_rows_kernel: a block per row, grid-stride over rows */
static unsigned grid_rows(mlxn_session *s, int64_t rows) {
    int64_t cap = (int64_t)mlxn_cuda_dev_of(s)->sm_count * 16;
    return (unsigned)(rows > cap ? cap : rows < 1 ? 1 : rows);
}

mlxn_status mlxn_cuda_op_embedding(mlxn_session *s, const mlxn_op *op) {
    wparams p;
    MLXN_TRY(make_wparams("embedding", op->w, &p));
    CUdeviceptr ids = mlxn_cuda_addr(op->in[0]), y = mlxn_cuda_addr(op->out[0]);
    int nrows = (int)mlxn_numel(op->in[0]->ndim, op->in[0]->shape);
    long long N = op->w->desc.rows;
    int ydt = (int)op->out[0]->dtype;
    CUdeviceptr err = mlxn_cuda_sess_of(s)->err_word;
    void *args[] = {&p, &ids, &nrows, &N, &y, &ydt, &err};
    return mlxn_cuda_launch(s, "quant.cu", "dequant_rows_kernel", grid_rows(s, nrows), 1, 1, 256,
                            0, args);
}

mlxn_status mlxn_cuda_op_dequantize(mlxn_session *s, const mlxn_op *op) {
    wparams p;
    MLXN_TRY(make_wparams("dequantize", op->w, &p));
    CUdeviceptr ids = 0, y = mlxn_cuda_addr(op->out[0]), err = 0;
    long long N = op->w->desc.rows;
    if (N > 0x7fffffff) return mlxn_set_error(MLXN_ERR_UNSUPPORTED, "dequantize (cuda): too many rows");
    int nrows = (int)N;
    int ydt = (int)op->out[0]->dtype;
    void *args[] = {&p, &ids, &nrows, &N, &y, &ydt, &err};
    return mlxn_cuda_launch(s, "quant.cu", "dequant_rows_kernel", grid_rows(s, N), 1, 1, 256, 0, args);
}

/* fast paths, cuda_ops_matvec.c */
mlxn_status mlxn_cuda_matmul_fast(mlxn_session *s, const mlxn_op *op, int *done);

mlxn_status mlxn_cuda_op_matmul(mlxn_session *s, const mlxn_op *op) {
    wparams p;
    MLXN_TRY(make_wparams("matmul", op->w, &p));
    int done = 0;
    MLXN_TRY(mlxn_cuda_matmul_fast(s, op, &done));
    if (done) return MLXN_OK;
    CUdeviceptr x = mlxn_cuda_addr(op->in[0]), y = mlxn_cuda_addr(op->out[0]);
    int M = (int)op->in[0]->shape[0];
    long long N = op->w->desc.rows;
    void *args[] = {&p, &x, &y, &M, &N};
    unsigned gx = (unsigned)((N + 3) / 4), gy = (unsigned)((M + 7) / 8);
    if (gy > 65535) return mlxn_set_error(MLXN_ERR_UNSUPPORTED, "matmul (cuda): M = %d too large", M);
    return mlxn_cuda_launch(s, "quant.cu", "matmul_generic_kernel", gx, gy, 1, 128, 0, args);
}
