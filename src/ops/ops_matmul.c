/* ops_matmul.c — validation and dispatch for the ops that take a weight:
 * mlxn_matmul (y [M, N] f32 = x [M, K] f32 · Wᵀ), mlxn_matmul_fused (the same
 * with an RMS-norm prologue and a SwiGLU / residual epilogue, run as one
 * kernel where the backend can and as the separate ops through the caller's
 * scratch elsewhere), mlxn_embedding (gather rows
 * of W by i32 ids) and mlxn_dequantize (W -> dense [N, K]). The weight's own
 * format parameters were validated by mlxn_weight_create; here we check that
 * it lives on the session's device and that the activations fit it. */
#include "ops/ops_common.h"

#include <math.h>

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

/* The separate ops of mlxn_matmul_fused (validated arguments): rms_norm into
 * x_scratch; matmul into y (plain) or y_scratch; per row of x, silu_mul of
 * the gate and up halves and/or the residual add into y. */
static mlxn_status matmul_fused_split(mlxn_session *s, const mlxn_buffer *x, const mlxn_weight *w,
                                      const mlxn_matmul_fusion *f, mlxn_buffer *y) {
    const mlxn_buffer *xin = x;
    if (f->norm) {
        MLXN_TRY(mlxn_rms_norm(s, x, f->norm, f->norm_eps, f->x_scratch)); // [M, K]
        xin = f->x_scratch;
    }
    if (!f->swiglu && !f->residual) return mlxn_matmul(s, xin, w, y);
    MLXN_TRY(mlxn_matmul(s, xin, w, f->y_scratch)); // [M, R]
    if (!f->swiglu) return mlxn_add(s, f->y_scratch, f->residual, y);
    const int64_t M = x->shape[0], N = w->desc.rows / 2;
    mlxn_status st = MLXN_OK;
    for (int64_t m = 0; m < M && st == MLXN_OK; m++) { /* y_scratch row m = [gate (N) | up (N)] */
        mlxn_buffer *gate = NULL, *up = NULL, *ym = NULL, *rm = NULL;
        int64_t sh[2] = {1, N};
        size_t row = (size_t)(2 * N) * sizeof(float) * (size_t)m, half = (size_t)N * sizeof(float);
        st = mlxn_buffer_view(f->y_scratch, row, MLXN_F32, 2, sh, &gate);
        if (st == MLXN_OK) st = mlxn_buffer_view(f->y_scratch, row + half, MLXN_F32, 2, sh, &up);
        if (st == MLXN_OK) st = mlxn_buffer_view(y, (size_t)m * half, MLXN_F32, 2, sh, &ym);
        if (st == MLXN_OK && f->residual)
            st = mlxn_buffer_view((mlxn_buffer *)f->residual, (size_t)m * half, MLXN_F32, 2, sh, &rm);
        if (st == MLXN_OK) st = mlxn_silu_mul(s, gate, up, f->residual ? gate : ym);
        if (st == MLXN_OK && f->residual) st = mlxn_add(s, gate, rm, ym);
        mlxn_buffer_release(gate);
        mlxn_buffer_release(up);
        mlxn_buffer_release(ym);
        mlxn_buffer_release(rm);
    }
    return st;
}

/* A caller-given scratch buffer of mlxn_matmul_fused: f32 of `shape`, sharing
 * no byte with the weight or with the first n of the op's other buffers
 * (NULLs pass). */
static mlxn_status check_scratch(const char *op, mlxn_session *s, const char *name, const mlxn_buffer *b,
                                 const int64_t shape[2], const char *expect, const mlxn_weight *w,
                                 const mlxn_buffer *const others[], const char *const other_names[], int n) {
    MLXN_TRY(mlxn_opv_buf(op, s, name, b));
    MLXN_TRY(mlxn_opv_dtype(op, name, b, MLXN_F32));
    MLXN_TRY(mlxn_opv_shape(op, name, b, 2, shape, expect));
    for (int i = 0; i < n; i++) MLXN_TRY(mlxn_opv_alias(op, name, b, other_names[i], others[i], 0));
    return check_weight_alias(op, name, b, w);
}

/* The op record of a validated mlxn_matmul_fused call. */
static mlxn_op fused_op(const mlxn_buffer *x, const mlxn_weight *w, const mlxn_matmul_fusion *f, const mlxn_buffer *y) {
    mlxn_op o = {.kind = MLXN_OP_MATMUL_FUSED, .w = w, .in = {x, f->norm, f->residual}, .out = {(mlxn_buffer *)y},
                 .f = {f->norm_eps}, .i = {f->swiglu}};
    return o;
}

mlxn_status mlxn_matmul_fused(mlxn_session *s, const mlxn_buffer *x, const mlxn_weight *w,
                              const mlxn_matmul_fusion *f, mlxn_buffer *y) {
    const char *op = "matmul_fused";
    MLXN_TRY(mlxn_opv_session(op, s));
    if (!f) return mlxn_set_error(MLXN_ERR_INVALID_ARG, "matmul_fused: fusion parameters are NULL");
    MLXN_TRY(check_weight(op, s, w));
    MLXN_TRY(mlxn_opv_buf(op, s, "x", x));
    MLXN_TRY(mlxn_opv_buf(op, s, "y", y));
    MLXN_TRY(mlxn_opv_dtype(op, "x", x, MLXN_F32));
    MLXN_TRY(mlxn_opv_dtype(op, "y", y, MLXN_F32));
    MLXN_TRY(mlxn_opv_ndim(op, "x", x, 2));
    const int64_t M = x->shape[0], K = x->shape[1], R = w->desc.rows;
    if (K != w->desc.cols)
        return mlxn_set_error(MLXN_ERR_SHAPE,
                              "matmul_fused: x's last dim %lld does not match weight '%s' cols %lld (W is [%lld, %lld])",
                              (long long)K, w->desc.name, (long long)w->desc.cols, (long long)R,
                              (long long)w->desc.cols);
    if (f->swiglu != 0 && f->swiglu != 1)
        return mlxn_set_error(MLXN_ERR_INVALID_ARG, "matmul_fused: swiglu must be 0 or 1, got %d", f->swiglu);
    if (f->swiglu && R % 2)
        return mlxn_set_error(MLXN_ERR_SHAPE, "matmul_fused: swiglu needs an even row count ([gate; up]); weight '%s' has %lld",
                              w->desc.name, (long long)R);
    const int64_t N = f->swiglu ? R / 2 : R;
    int64_t ys[2] = {M, N}, xs[2] = {M, K}, rs[2] = {M, R};
    MLXN_TRY(mlxn_opv_shape(op, "y", y, 2, ys, f->swiglu ? "[M, rows/2] =" : "[M, rows] ="));
    MLXN_TRY(mlxn_opv_alias(op, "y", y, "x", x, 0));
    MLXN_TRY(check_weight_alias(op, "y", y, w));
    /* what a scratch buffer must not overlap (x_scratch: the first four) */
    const mlxn_buffer *const others[5] = {x, y, f->norm, f->residual, f->x_scratch};
    const char *const other_names[5] = {"x", "y", "norm", "residual", "x_scratch"};
    if (f->norm) {
        MLXN_TRY(mlxn_opv_buf(op, s, "norm", f->norm));
        MLXN_TRY(mlxn_opv_dtype(op, "norm", f->norm, MLXN_F32));
        MLXN_TRY(mlxn_opv_shape(op, "norm", f->norm, 1, &K, "[K] ="));
        if (!isfinite(f->norm_eps) || f->norm_eps < 0.0f)
            return mlxn_set_error(MLXN_ERR_INVALID_ARG, "matmul_fused: norm_eps must be finite and >= 0, got %g",
                                  (double)f->norm_eps);
        MLXN_TRY(mlxn_opv_alias(op, "y", y, "norm", f->norm, 0));
        if (!f->x_scratch)
            return mlxn_set_error(MLXN_ERR_INVALID_ARG, "matmul_fused: norm needs x_scratch [%lld, %lld] f32",
                                  (long long)M, (long long)K);
        MLXN_TRY(check_scratch(op, s, "x_scratch", f->x_scratch, xs, "[M, K] =", w, others, other_names, 4));
    }
    if (f->residual) {
        MLXN_TRY(mlxn_opv_buf(op, s, "residual", f->residual));
        MLXN_TRY(mlxn_opv_dtype(op, "residual", f->residual, MLXN_F32));
        MLXN_TRY(mlxn_opv_shape(op, "residual", f->residual, 2, ys, "[M, N] = y's shape"));
        MLXN_TRY(mlxn_opv_alias(op, "y", y, "residual", f->residual, 1));
        MLXN_TRY(mlxn_opv_alias(op, "x", x, "residual", f->residual, 0));
    }
    if (f->swiglu || f->residual) {
        if (!f->y_scratch)
            return mlxn_set_error(MLXN_ERR_INVALID_ARG, "matmul_fused: %s needs y_scratch [%lld, %lld] f32",
                                  f->swiglu ? "swiglu" : "residual", (long long)M, (long long)R);
        MLXN_TRY(check_scratch(op, s, "y_scratch", f->y_scratch, rs, "[M, rows] =", w, others, other_names, 5));
    }
    if (!mlxn_matmul_fused_native(s, x, w, f, y)) return matmul_fused_split(s, x, w, f, y);
    mlxn_op o = fused_op(x, w, f, y);
    return mlxn_dispatch(s, &o);
}

int mlxn_matmul_fused_native(mlxn_session *s, const mlxn_buffer *x, const mlxn_weight *w, const mlxn_matmul_fusion *f,
                             const mlxn_buffer *y) {
    if (!s || !x || !w || !f || !y || x->ndim != 2) return 0;
    mlxn_op o = fused_op(x, w, f, y);
    return mlxn_op_native(s, &o);
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
