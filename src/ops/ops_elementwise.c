/* ops_elementwise.c — validation and dispatch for the elementwise ops: add,
 * mul (b same shape as a, or [D] broadcast over a's rows), scale, silu, gelu
 * (erf and tanh forms), silu_mul (SwiGLU), gelu_mul (GeGLU), softcap and
 * cast. Inputs and output share one float dtype (f32, f16, bf16) except for
 * cast; y may alias an input of equal shape exactly, never partially. */
#include "ops/ops_common.h"

#include <math.h>

/* One float input x and output y of x's shape (and dtype unless `cast`). */
static mlxn_status check_unary(const char *op, mlxn_session *s, const mlxn_buffer *x, mlxn_buffer *y, int cast) {
    MLXN_TRY(mlxn_opv_session(op, s));
    MLXN_TRY(mlxn_opv_buf(op, s, "x", x));
    MLXN_TRY(mlxn_opv_buf(op, s, "y", y));
    MLXN_TRY(mlxn_opv_float(op, "x", x));
    MLXN_TRY(mlxn_opv_float(op, "y", y));
    if (!cast) MLXN_TRY(mlxn_opv_same_dtype(op, "x", x, "y", y));
    MLXN_TRY(mlxn_opv_same_shape(op, "x", x, "y", y));
    MLXN_TRY(mlxn_opv_alias(op, "y", y, "x", x, 1));
    return MLXN_OK;
}

/* Two float inputs of one shape (or b broadcast [D] when allow_bcast) -> y of a's shape. */
static mlxn_status check_binary(const char *op, mlxn_session *s, const char *na, const mlxn_buffer *a,
                                const char *nb, const mlxn_buffer *b, mlxn_buffer *y, int allow_bcast) {
    MLXN_TRY(mlxn_opv_session(op, s));
    MLXN_TRY(mlxn_opv_buf(op, s, na, a));
    MLXN_TRY(mlxn_opv_buf(op, s, nb, b));
    MLXN_TRY(mlxn_opv_buf(op, s, "y", y));
    MLXN_TRY(mlxn_opv_float(op, na, a));
    MLXN_TRY(mlxn_opv_same_dtype(op, na, a, nb, b));
    MLXN_TRY(mlxn_opv_same_dtype(op, na, a, "y", y));
    int bcast = allow_bcast && a->ndim >= 2 && b->ndim == 1 && b->shape[0] == a->shape[a->ndim - 1];
    if (!bcast) {
        if (allow_bcast && a->ndim >= 2 && b->ndim == 1) {
            char sa[MLXN_SHAPE_STR_CAP];
            return mlxn_set_error(MLXN_ERR_SHAPE, "%s: %s shape [%lld] matches neither %s shape %s nor its last dim %lld",
                                  op, nb, (long long)b->shape[0], na, mlxn_shape_str(sa, sizeof sa, a->ndim, a->shape),
                                  (long long)a->shape[a->ndim - 1]);
        }
        MLXN_TRY(mlxn_opv_same_shape(op, na, a, nb, b));
    }
    MLXN_TRY(mlxn_opv_same_shape(op, na, a, "y", y));
    MLXN_TRY(mlxn_opv_alias(op, "y", y, na, a, 1));
    MLXN_TRY(mlxn_opv_alias(op, "y", y, nb, b, 1));
    return MLXN_OK;
}

mlxn_status mlxn_add(mlxn_session *s, const mlxn_buffer *a, const mlxn_buffer *b, mlxn_buffer *y) {
    MLXN_TRY(check_binary("add", s, "a", a, "b", b, y, 1));
    mlxn_op o = {.kind = MLXN_OP_ADD, .in = {a, b}, .out = {y}};
    return mlxn_dispatch(s, &o);
}

mlxn_status mlxn_mul(mlxn_session *s, const mlxn_buffer *a, const mlxn_buffer *b, mlxn_buffer *y) {
    MLXN_TRY(check_binary("mul", s, "a", a, "b", b, y, 1));
    mlxn_op o = {.kind = MLXN_OP_MUL, .in = {a, b}, .out = {y}};
    return mlxn_dispatch(s, &o);
}

mlxn_status mlxn_scale(mlxn_session *s, const mlxn_buffer *x, float alpha, mlxn_buffer *y) {
    MLXN_TRY(check_unary("scale", s, x, y, 0));
    if (!isfinite(alpha)) return mlxn_set_error(MLXN_ERR_INVALID_ARG, "scale: alpha must be finite, got %g", (double)alpha);
    mlxn_op o = {.kind = MLXN_OP_SCALE, .in = {x}, .out = {y}, .f = {alpha}};
    return mlxn_dispatch(s, &o);
}

mlxn_status mlxn_silu(mlxn_session *s, const mlxn_buffer *x, mlxn_buffer *y) {
    MLXN_TRY(check_unary("silu", s, x, y, 0));
    mlxn_op o = {.kind = MLXN_OP_SILU, .in = {x}, .out = {y}};
    return mlxn_dispatch(s, &o);
}

static mlxn_status check_gelu_kind(const char *op, mlxn_gelu_kind kind) {
    if (kind != MLXN_GELU_ERF && kind != MLXN_GELU_TANH)
        return mlxn_set_error(MLXN_ERR_INVALID_ARG, "%s: unknown gelu kind %d (expected 0 = erf or 1 = tanh)", op, (int)kind);
    return MLXN_OK;
}

mlxn_status mlxn_gelu(mlxn_session *s, const mlxn_buffer *x, mlxn_gelu_kind kind, mlxn_buffer *y) {
    MLXN_TRY(check_unary("gelu", s, x, y, 0));
    MLXN_TRY(check_gelu_kind("gelu", kind));
    mlxn_op o = {.kind = MLXN_OP_GELU, .in = {x}, .out = {y}, .i = {(int)kind}};
    return mlxn_dispatch(s, &o);
}

mlxn_status mlxn_silu_mul(mlxn_session *s, const mlxn_buffer *gate, const mlxn_buffer *up, mlxn_buffer *y) {
    MLXN_TRY(check_binary("silu_mul", s, "gate", gate, "up", up, y, 0));
    mlxn_op o = {.kind = MLXN_OP_SILU_MUL, .in = {gate, up}, .out = {y}};
    return mlxn_dispatch(s, &o);
}

mlxn_status mlxn_gelu_mul(mlxn_session *s, const mlxn_buffer *gate, const mlxn_buffer *up, mlxn_gelu_kind kind,
                          mlxn_buffer *y) {
    MLXN_TRY(check_binary("gelu_mul", s, "gate", gate, "up", up, y, 0));
    MLXN_TRY(check_gelu_kind("gelu_mul", kind));
    mlxn_op o = {.kind = MLXN_OP_GELU_MUL, .in = {gate, up}, .out = {y}, .i = {(int)kind}};
    return mlxn_dispatch(s, &o);
}

mlxn_status mlxn_softcap(mlxn_session *s, const mlxn_buffer *x, float cap, mlxn_buffer *y) {
    MLXN_TRY(check_unary("softcap", s, x, y, 0));
    if (!(cap > 0.0f) || !isfinite(cap))
        return mlxn_set_error(MLXN_ERR_INVALID_ARG, "softcap: cap must be finite and > 0, got %g", (double)cap);
    mlxn_op o = {.kind = MLXN_OP_SOFTCAP, .in = {x}, .out = {y}, .f = {cap}};
    return mlxn_dispatch(s, &o);
}

mlxn_status mlxn_copy(mlxn_session *s, const mlxn_buffer *src, mlxn_buffer *dst) {
    const char *op = "copy";
    MLXN_TRY(mlxn_opv_session(op, s));
    MLXN_TRY(mlxn_opv_buf(op, s, "src", src));
    MLXN_TRY(mlxn_opv_buf(op, s, "dst", dst));
    MLXN_TRY(mlxn_opv_same_dtype(op, "src", src, "dst", dst));
    MLXN_TRY(mlxn_opv_numel(op, "dst", dst, mlxn_numel(src->ndim, src->shape), "as many as src"));
    MLXN_TRY(mlxn_opv_alias(op, "dst", dst, "src", src, 0));
    mlxn_op o = {.kind = MLXN_OP_COPY, .in = {src}, .out = {dst}};
    return mlxn_dispatch(s, &o);
}

mlxn_status mlxn_cast(mlxn_session *s, const mlxn_buffer *x, mlxn_buffer *y) {
    MLXN_TRY(check_unary("cast", s, x, y, 1));
    mlxn_op o = {.kind = MLXN_OP_CAST, .in = {x}, .out = {y}};
    return mlxn_dispatch(s, &o);
}
