/* ops_norm.c — validation and dispatch for the row normalizations over the
 * last axis: rms_norm (optional weight), rms_norm_residual (sum = x +
 * residual written out, then rms_norm of the sum), layer_norm (optional
 * weight and bias) and l2_norm. x: [..., D] f32/f16/bf16; weight/bias: [D] of
 * x's dtype; y of x's shape and dtype, may alias x exactly. */
#include "ops/ops_common.h"

#include <math.h>

static mlxn_status check_eps(const char *op, float eps) {
    if (!(eps >= 0.0f) || !isfinite(eps))
        return mlxn_set_error(MLXN_ERR_INVALID_ARG, "%s: eps must be finite and >= 0, got %g", op, (double)eps);
    return MLXN_OK;
}

/* x: [..., D] float; y same shape and dtype (exact alias of x allowed). */
static mlxn_status check_xy(const char *op, mlxn_session *s, const mlxn_buffer *x, mlxn_buffer *y) {
    MLXN_TRY(mlxn_opv_session(op, s));
    MLXN_TRY(mlxn_opv_buf(op, s, "x", x));
    MLXN_TRY(mlxn_opv_buf(op, s, "y", y));
    MLXN_TRY(mlxn_opv_float(op, "x", x));
    MLXN_TRY(mlxn_opv_min_ndim(op, "x", x, 1));
    MLXN_TRY(mlxn_opv_same_dtype(op, "x", x, "y", y));
    MLXN_TRY(mlxn_opv_same_shape(op, "x", x, "y", y));
    MLXN_TRY(mlxn_opv_alias(op, "y", y, "x", x, 1));
    return MLXN_OK;
}

/* An optional per-column vector (weight/bias): [D] of x's dtype, not overlapping y. */
static mlxn_status check_vec(const char *op, mlxn_session *s, const char *name, const mlxn_buffer *v,
                             const mlxn_buffer *x, const mlxn_buffer *y) {
    if (!v) return MLXN_OK;
    MLXN_TRY(mlxn_opv_opt_buf(op, s, name, v));
    MLXN_TRY(mlxn_opv_same_dtype(op, "x", x, name, v));
    int64_t D = x->shape[x->ndim - 1];
    if (v->ndim != 1 || v->shape[0] != D) {
        char sv[MLXN_SHAPE_STR_CAP];
        return mlxn_set_error(MLXN_ERR_SHAPE, "%s: %s shape %s does not match x's last dim %lld", op, name,
                              mlxn_shape_str(sv, sizeof sv, v->ndim, v->shape), (long long)D);
    }
    MLXN_TRY(mlxn_opv_alias(op, "y", y, name, v, 0));
    return MLXN_OK;
}

mlxn_status mlxn_rms_norm(mlxn_session *s, const mlxn_buffer *x, const mlxn_buffer *weight, float eps, mlxn_buffer *y) {
    const char *op = "rms_norm";
    MLXN_TRY(check_xy(op, s, x, y));
    MLXN_TRY(check_vec(op, s, "weight", weight, x, y));
    MLXN_TRY(check_eps(op, eps));
    mlxn_op o = {.kind = MLXN_OP_RMS_NORM, .in = {x, weight}, .out = {y}, .f = {eps}};
    return mlxn_dispatch(s, &o);
}

mlxn_status mlxn_rms_norm_residual(mlxn_session *s, const mlxn_buffer *x, const mlxn_buffer *residual,
                                   const mlxn_buffer *weight, float eps, mlxn_buffer *sum, mlxn_buffer *y) {
    const char *op = "rms_norm_residual";
    MLXN_TRY(check_xy(op, s, x, y));
    MLXN_TRY(mlxn_opv_buf(op, s, "residual", residual));
    MLXN_TRY(mlxn_opv_buf(op, s, "sum", sum));
    MLXN_TRY(mlxn_opv_same_dtype(op, "x", x, "residual", residual));
    MLXN_TRY(mlxn_opv_same_dtype(op, "x", x, "sum", sum));
    MLXN_TRY(mlxn_opv_same_shape(op, "x", x, "residual", residual));
    MLXN_TRY(mlxn_opv_same_shape(op, "x", x, "sum", sum));
    MLXN_TRY(check_vec(op, s, "weight", weight, x, y));
    MLXN_TRY(mlxn_opv_alias(op, "sum", sum, "weight", weight, 0));
    MLXN_TRY(mlxn_opv_alias(op, "sum", sum, "x", x, 1));
    MLXN_TRY(mlxn_opv_alias(op, "sum", sum, "residual", residual, 1));
    MLXN_TRY(mlxn_opv_alias(op, "y", y, "residual", residual, 1));
    MLXN_TRY(mlxn_opv_alias(op, "y", y, "sum", sum, 0));
    MLXN_TRY(check_eps(op, eps));
    mlxn_op o = {.kind = MLXN_OP_RMS_NORM_RESIDUAL, .in = {x, residual, weight}, .out = {sum, y}, .f = {eps}};
    return mlxn_dispatch(s, &o);
}

mlxn_status mlxn_layer_norm(mlxn_session *s, const mlxn_buffer *x, const mlxn_buffer *weight, const mlxn_buffer *bias,
                            float eps, mlxn_buffer *y) {
    const char *op = "layer_norm";
    MLXN_TRY(check_xy(op, s, x, y));
    MLXN_TRY(check_vec(op, s, "weight", weight, x, y));
    MLXN_TRY(check_vec(op, s, "bias", bias, x, y));
    MLXN_TRY(check_eps(op, eps));
    mlxn_op o = {.kind = MLXN_OP_LAYER_NORM, .in = {x, weight, bias}, .out = {y}, .f = {eps}};
    return mlxn_dispatch(s, &o);
}

mlxn_status mlxn_l2_norm(mlxn_session *s, const mlxn_buffer *x, float eps, mlxn_buffer *y) {
    const char *op = "l2_norm";
    MLXN_TRY(check_xy(op, s, x, y));
    MLXN_TRY(check_eps(op, eps));
    mlxn_op o = {.kind = MLXN_OP_L2_NORM, .in = {x}, .out = {y}, .f = {eps}};
    return mlxn_dispatch(s, &o);
}
