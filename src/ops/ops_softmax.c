/* ops_softmax.c — validation and dispatch for softmax over the last axis
 * (scale and optional additive mask [M, N] or [N]), argmax (i32 index per
 * row) and top-k (values and i32 indices per row, sorted descending). x is
 * f32 [..., N]; rows are all leading dims. */
#include "ops/ops_common.h"

#include <math.h>

mlxn_status mlxn_softmax(mlxn_session *s, const mlxn_buffer *x, const mlxn_buffer *mask, float scale, mlxn_buffer *y) {
    const char *op = "softmax";
    MLXN_TRY(mlxn_opv_session(op, s));
    MLXN_TRY(mlxn_opv_buf(op, s, "x", x));
    MLXN_TRY(mlxn_opv_opt_buf(op, s, "mask", mask));
    MLXN_TRY(mlxn_opv_buf(op, s, "y", y));
    MLXN_TRY(mlxn_opv_dtype(op, "x", x, MLXN_F32));
    MLXN_TRY(mlxn_opv_dtype(op, "y", y, MLXN_F32));
    MLXN_TRY(mlxn_opv_min_ndim(op, "x", x, 1));
    MLXN_TRY(mlxn_opv_same_shape(op, "x", x, "y", y));
    if (mask) {
        MLXN_TRY(mlxn_opv_dtype(op, "mask", mask, MLXN_F32));
        int64_t N = x->shape[x->ndim - 1];
        int row_mask = mask->ndim == 1 && mask->shape[0] == N;
        int full = mask->ndim == x->ndim;
        for (int i = 0; full && i < x->ndim; i++) full = mask->shape[i] == x->shape[i];
        if (!row_mask && !full) {
            char sm[MLXN_SHAPE_STR_CAP], sx[MLXN_SHAPE_STR_CAP];
            return mlxn_set_error(MLXN_ERR_SHAPE, "softmax: mask shape %s is neither x's shape %s nor [%lld]",
                                  mlxn_shape_str(sm, sizeof sm, mask->ndim, mask->shape),
                                  mlxn_shape_str(sx, sizeof sx, x->ndim, x->shape), (long long)N);
        }
        MLXN_TRY(mlxn_opv_alias(op, "y", y, "mask", mask, 0));
    }
    MLXN_TRY(mlxn_opv_alias(op, "y", y, "x", x, 1));
    if (!isfinite(scale))
        return mlxn_set_error(MLXN_ERR_INVALID_ARG, "softmax: scale must be finite, got %g", (double)scale);
    mlxn_op o = {.kind = MLXN_OP_SOFTMAX, .in = {x, mask}, .out = {y}, .f = {scale}};
    return mlxn_dispatch(s, &o);
}

mlxn_status mlxn_argmax(mlxn_session *s, const mlxn_buffer *x, mlxn_buffer *idx) {
    const char *op = "argmax";
    MLXN_TRY(mlxn_opv_session(op, s));
    MLXN_TRY(mlxn_opv_buf(op, s, "x", x));
    MLXN_TRY(mlxn_opv_buf(op, s, "idx", idx));
    MLXN_TRY(mlxn_opv_dtype(op, "x", x, MLXN_F32));
    MLXN_TRY(mlxn_opv_dtype(op, "idx", idx, MLXN_I32));
    MLXN_TRY(mlxn_opv_min_ndim(op, "x", x, 1));
    int64_t M, N;
    mlxn_buffer_rows_cols(x, &M, &N);
    if (N > INT32_MAX)
        return mlxn_set_error(MLXN_ERR_SHAPE, "argmax: row length %lld does not fit an i32 index", (long long)N);
    MLXN_TRY(mlxn_opv_numel(op, "idx", idx, M, "one per row of x"));
    MLXN_TRY(mlxn_opv_alias(op, "idx", idx, "x", x, 0));
    mlxn_op o = {.kind = MLXN_OP_ARGMAX, .in = {x}, .out = {idx}};
    return mlxn_dispatch(s, &o);
}

mlxn_status mlxn_topk(mlxn_session *s, const mlxn_buffer *x, int k, mlxn_buffer *values, mlxn_buffer *idx) {
    const char *op = "topk";
    MLXN_TRY(mlxn_opv_session(op, s));
    MLXN_TRY(mlxn_opv_buf(op, s, "x", x));
    MLXN_TRY(mlxn_opv_opt_buf(op, s, "values", values));
    MLXN_TRY(mlxn_opv_buf(op, s, "idx", idx));
    MLXN_TRY(mlxn_opv_dtype(op, "x", x, MLXN_F32));
    MLXN_TRY(mlxn_opv_dtype(op, "idx", idx, MLXN_I32));
    if (values) MLXN_TRY(mlxn_opv_dtype(op, "values", values, MLXN_F32));
    MLXN_TRY(mlxn_opv_min_ndim(op, "x", x, 1));
    int64_t N = x->shape[x->ndim - 1];
    if (N > INT32_MAX)
        return mlxn_set_error(MLXN_ERR_SHAPE, "topk: row length %lld does not fit an i32 index", (long long)N);
    if (k < 1 || k > N)
        return mlxn_set_error(MLXN_ERR_INVALID_ARG, "topk: k (%d) must be in [1, %lld] (x's last dim)", k, (long long)N);
    int64_t want[MLXN_MAX_DIMS];
    for (int i = 0; i < x->ndim; i++) want[i] = x->shape[i];
    want[x->ndim - 1] = k;
    MLXN_TRY(mlxn_opv_shape(op, "idx", idx, x->ndim, want, "x's shape with last dim k:"));
    if (values) MLXN_TRY(mlxn_opv_shape(op, "values", values, x->ndim, want, "x's shape with last dim k:"));
    MLXN_TRY(mlxn_opv_alias(op, "idx", idx, "x", x, 0));
    MLXN_TRY(mlxn_opv_alias(op, "values", values, "x", x, 0));
    MLXN_TRY(mlxn_opv_alias(op, "values", values, "idx", idx, 0));
    mlxn_op o = {.kind = MLXN_OP_TOPK, .in = {x}, .out = {values, idx}, .i = {k}};
    return mlxn_dispatch(s, &o);
}
