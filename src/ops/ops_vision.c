/* ops_vision.c — validation and dispatch for im2col_2d_3ch: unfold an f32
 * [3, H, W] channel-major image into [(H/p)*(W/p), 3*p*p] patch rows (row-major
 * patch order; each row ordered channel, then dy, then dx). */
#include "ops/ops_common.h"

mlxn_status mlxn_im2col_2d_3ch(mlxn_session *s, const mlxn_buffer *image, int patch_size, mlxn_buffer *out) {
    const char *op = "im2col_2d_3ch";
    MLXN_TRY(mlxn_opv_session(op, s));
    if (!image) return mlxn_set_error(MLXN_ERR_INVALID_ARG, "im2col_2d_3ch: image is NULL");
    if (!out) return mlxn_set_error(MLXN_ERR_INVALID_ARG, "im2col_2d_3ch: out is NULL");
    MLXN_TRY(mlxn_opv_ndim(op, "image", image, 3));
    int64_t C = image->shape[0], H = image->shape[1], W = image->shape[2], p = patch_size;
    if (H <= 0 || W <= 0 || p <= 0)
        return mlxn_set_error(MLXN_ERR_INVALID_ARG, "im2col_2d_3ch: H (%lld), W (%lld) and patch_size (%lld) must all be > 0",
                              (long long)H, (long long)W, (long long)p);
    if (H % p != 0 || W % p != 0)
        return mlxn_set_error(MLXN_ERR_SHAPE, "im2col_2d_3ch: pixel grid (%lldx%lld) must be divisible by patch_size (%lld)",
                              (long long)H, (long long)W, (long long)p);
    MLXN_TRY(mlxn_opv_dtype(op, "image", image, MLXN_F32));
    MLXN_TRY(mlxn_opv_dtype(op, "out", out, MLXN_F32));
    size_t need_px = (size_t)(3 * H * W) * sizeof(float), got_px = mlxn_buffer_nbytes(image);
    if (C < 3)
        return mlxn_set_error(MLXN_ERR_SHAPE, "im2col_2d_3ch: pixel buffer too small: expected %zu bytes ([3, %lld, %lld] f32), got %zu bytes",
                              need_px, (long long)H, (long long)W, got_px);
    if (C != 3)
        return mlxn_set_error(MLXN_ERR_SHAPE, "im2col_2d_3ch: image has %lld channels, expected 3 ([3, H, W])", (long long)C);
    int64_t np = (H / p) * (W / p), row = 3 * p * p;
    size_t need_out = (size_t)(np * row) * sizeof(float), got_out = mlxn_buffer_nbytes(out);
    if (got_out < need_out)
        return mlxn_set_error(MLXN_ERR_SHAPE, "im2col_2d_3ch: output buffer too small: expected %zu bytes ([%lld, %lld] f32), got %zu bytes",
                              need_out, (long long)np, (long long)row, got_out);
    int64_t want[2] = {np, row};
    MLXN_TRY(mlxn_opv_shape(op, "out", out, 2, want, "[(H/p)*(W/p), 3*p*p] ="));
    MLXN_TRY(mlxn_opv_buf(op, s, "image", image));
    MLXN_TRY(mlxn_opv_buf(op, s, "out", out));
    MLXN_TRY(mlxn_opv_alias(op, "out", out, "image", image, 0));
    mlxn_op o = {.kind = MLXN_OP_IM2COL_2D_3CH, .in = {image}, .out = {out}, .i = {patch_size}};
    return mlxn_dispatch(s, &o);
}
