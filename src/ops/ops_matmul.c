/* ops_matmul.c — validation and dispatch for the ops that take a weight:
 * mlxn_matmul (y [M, N] f32 = x [M, K] f32 · Wᵀ), mlxn_embedding (gather rows
 * of W by i32 ids) and mlxn_dequantize (W -> dense [N, K]). The weight's own
 * format parameters were validated by mlxn_weight_create; here we check that
 * it lives on the session's device and that the activations fit it. */
#include "ops/ops_common.h"

static mlxn_status check_weight(const char *op, const mlxn_session *s, const mlxn_weight *w) {
    if (!w) return mlxn_set_error(MLXN_ERR_INVALID_ARG, "%s: weight is NULL", op);
    const mlxn_buffer *parts[3] = {w->desc.data, w->desc.scales, w->desc.biases};
    const char *pname[3] = {"data", "scales", "biases"};
    if (!w->desc.data) return mlxn_set_error(MLXN_ERR_INVALID_ARG, "%s: weight '%s' has no data buffer", op, w->desc.name);
    for (int i = 0; i < 3; i++) {
        if (!parts[i]) continue;
        if (parts[i]->storage->device != s->device)
            return mlxn_set_error(MLXN_ERR_INVALID_ARG,
                                  "%s: weight '%s' %s lives on device '%s' (%p) but the session runs on '%s' (%p)", op,
                                  w->desc.name, pname[i], parts[i]->storage->device->kind,
                                  (void *)parts[i]->storage->device, s->device->kind, (void *)s->device);
    }
    return MLXN_OK;
}

/* out must not share bytes with any of the weight's buffers. */
static mlxn_status check_weight_alias(const char *op, const char *nout, const mlxn_buffer *out, const mlxn_weight *w) {
    MLXN_TRY(mlxn_opv_alias(op, nout, out, "weight data", w->desc.data, 0));
    MLXN_TRY(mlxn_opv_alias(op, nout, out, "weight scales", w->desc.scales, 0));
    MLXN_TRY(mlxn_opv_alias(op, nout, out, "weight biases", w->desc.biases, 0));
    return MLXN_OK;
}

mlxn_status mlxn_matmul(mlxn_session *s, const mlxn_buffer *x, const mlxn_weight *w, mlxn_buffer *y) {
    const char *op = "matmul";
    MLXN_TRY(mlxn_opv_session(op, s));
    MLXN_TRY(check_weight(op, s, w));
    MLXN_TRY(mlxn_opv_buf(op, s, "x", x));
    MLXN_TRY(mlxn_opv_buf(op, s, "y", y));
    MLXN_TRY(mlxn_opv_dtype(op, "x", x, MLXN_F32));
    MLXN_TRY(mlxn_opv_dtype(op, "y", y, MLXN_F32));
    MLXN_TRY(mlxn_opv_ndim(op, "x", x, 2));
    int64_t M = x->shape[0], K = x->shape[1], N = w->desc.rows;
    if (K != w->desc.cols)
        return mlxn_set_error(MLXN_ERR_SHAPE, "matmul: x's last dim %lld does not match weight '%s' cols %lld (W is [%lld, %lld])",
                              (long long)K, w->desc.name, (long long)w->desc.cols, (long long)w->desc.rows,
                              (long long)w->desc.cols);
    int64_t ys[2] = {M, N};
    MLXN_TRY(mlxn_opv_shape(op, "y", y, 2, ys, "[M, N] ="));
    MLXN_TRY(mlxn_opv_alias(op, "y", y, "x", x, 0));
    MLXN_TRY(check_weight_alias(op, "y", y, w));
    mlxn_op o = {.kind = MLXN_OP_MATMUL, .w = w, .in = {x}, .out = {y}};
    return mlxn_dispatch(s, &o);
}

mlxn_status mlxn_embedding(mlxn_session *s, const mlxn_weight *w, const mlxn_buffer *ids, mlxn_buffer *y) {
    const char *op = "embedding";
    MLXN_TRY(mlxn_opv_session(op, s));
    MLXN_TRY(check_weight(op, s, w));
    MLXN_TRY(mlxn_opv_buf(op, s, "ids", ids));
    MLXN_TRY(mlxn_opv_buf(op, s, "y", y));
    MLXN_TRY(mlxn_opv_dtype(op, "ids", ids, MLXN_I32));
    MLXN_TRY(mlxn_opv_float(op, "y", y));
    int64_t T = mlxn_numel(ids->ndim, ids->shape);
    int64_t ys[2] = {T, w->desc.cols};
    MLXN_TRY(mlxn_opv_shape(op, "y", y, 2, ys, "[T, K] ="));
    MLXN_TRY(mlxn_opv_alias(op, "y", y, "ids", ids, 0));
    MLXN_TRY(check_weight_alias(op, "y", y, w));
    mlxn_op o = {.kind = MLXN_OP_EMBEDDING, .w = w, .in = {ids}, .out = {y}};
    return mlxn_dispatch(s, &o);
}

mlxn_status mlxn_dequantize(mlxn_session *s, const mlxn_weight *w, mlxn_buffer *y) {
    const char *op = "dequantize";
    MLXN_TRY(mlxn_opv_session(op, s));
    MLXN_TRY(check_weight(op, s, w));
    MLXN_TRY(mlxn_opv_buf(op, s, "y", y));
    MLXN_TRY(mlxn_opv_float(op, "y", y));
    int64_t ys[2] = {w->desc.rows, w->desc.cols};
    MLXN_TRY(mlxn_opv_shape(op, "y", y, 2, ys, "[N, K] ="));
    MLXN_TRY(check_weight_alias(op, "y", y, w));
    mlxn_op o = {.kind = MLXN_OP_DEQUANTIZE, .w = w, .out = {y}};
    return mlxn_dispatch(s, &o);
}
