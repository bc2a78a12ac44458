/* ref_device.c — the "ref" device: host memory and the naive reference op
 * table (ref_*.c). Single-threaded; sessions run ops eagerly. */
#include "backend/ref/ref_backend.h"

#include <stdio.h>

mlxn_status mlxn_host_alloc(mlxn_device *d, size_t bytes, void **ptr);
void mlxn_host_free(mlxn_device *d, void *ptr);
mlxn_status mlxn_host_copy(mlxn_device *d, void *dst, const void *src, size_t bytes);
mlxn_status mlxn_host_fill(mlxn_device *d, void *dst, uint8_t byte, size_t bytes);

static const mlxn_backend_ops ref_ops = {
    .name = "ref",
    .alloc = mlxn_host_alloc,
    .free = mlxn_host_free,
    .upload = mlxn_host_copy,
    .download = mlxn_host_copy,
    .fill_bytes = mlxn_host_fill,
    .op = {
        [MLXN_OP_ADD] = mlxn_ref_add, [MLXN_OP_MUL] = mlxn_ref_mul, [MLXN_OP_SCALE] = mlxn_ref_scale,
        [MLXN_OP_SILU] = mlxn_ref_silu, [MLXN_OP_GELU] = mlxn_ref_gelu, [MLXN_OP_SILU_MUL] = mlxn_ref_silu_mul,
        [MLXN_OP_GELU_MUL] = mlxn_ref_gelu_mul, [MLXN_OP_SOFTCAP] = mlxn_ref_softcap, [MLXN_OP_CAST] = mlxn_ref_cast,
        [MLXN_OP_RMS_NORM] = mlxn_ref_rms_norm, [MLXN_OP_RMS_NORM_RESIDUAL] = mlxn_ref_rms_norm_residual,
        [MLXN_OP_LAYER_NORM] = mlxn_ref_layer_norm, [MLXN_OP_L2_NORM] = mlxn_ref_l2_norm, [MLXN_OP_ROPE] = mlxn_ref_rope,
        [MLXN_OP_SOFTMAX] = mlxn_ref_softmax, [MLXN_OP_ARGMAX] = mlxn_ref_argmax, [MLXN_OP_TOPK] = mlxn_ref_topk,
        [MLXN_OP_EMBEDDING] = mlxn_ref_embedding, [MLXN_OP_MATMUL] = mlxn_ref_matmul,
        [MLXN_OP_DEQUANTIZE] = mlxn_ref_dequantize, [MLXN_OP_ATTENTION] = mlxn_ref_attention,
        [MLXN_OP_KV_APPEND] = mlxn_ref_kv_append, [MLXN_OP_IM2COL_2D_3CH] = mlxn_ref_im2col_2d_3ch,
        [MLXN_OP_COPY] = mlxn_ref_copy,
    },
};

mlxn_status mlxn_ref_device_open(const mlxn_device_opts *opts, mlxn_device *d) {
    d->ops = &ref_ops;
    d->impl = NULL;
    snprintf(d->kind, sizeof d->kind, "ref");
    snprintf(d->description, sizeof d->description, "reference (naive scalar loops, f64 accumulation)");
    return MLXN_OK;
}
