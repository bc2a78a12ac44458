/* ops_rope.c — validation and dispatch for rotary position embeddings:
 * x, y [T, H, D] (f32/f16/bf16, one dtype; y may alias x), positions i32 [T],
 * adjacent-pair or half-split rotation of the first rot_dims dims of each
 * head, base theta, optional linear or Llama-3 frequency scaling. The op
 * record carries the parameters with rot_dims resolved (0 -> D). */
#include "ops/ops_common.h"

#include <math.h>

mlxn_status mlxn_rope_check(const char *op, mlxn_session *s, const mlxn_buffer *x, const mlxn_buffer *positions,
                            const mlxn_rope_params *p, const mlxn_buffer *y, int *rot_out) {
    MLXN_TRY(mlxn_opv_session(op, s));
    MLXN_TRY(mlxn_opv_buf(op, s, "x", x));
    MLXN_TRY(mlxn_opv_buf(op, s, "positions", positions));
    MLXN_TRY(mlxn_opv_buf(op, s, "y", y));
    if (!p) return mlxn_set_error(MLXN_ERR_INVALID_ARG, "%s: params is NULL", op);
    MLXN_TRY(mlxn_opv_float(op, "x", x));
    MLXN_TRY(mlxn_opv_same_dtype(op, "x", x, "y", y));
    MLXN_TRY(mlxn_opv_dtype(op, "positions", positions, MLXN_I32));
    MLXN_TRY(mlxn_opv_ndim(op, "x", x, 3));
    MLXN_TRY(mlxn_opv_same_shape(op, "x", x, "y", y));
    int64_t T = x->shape[0], D = x->shape[2];
    MLXN_TRY(mlxn_opv_numel(op, "positions", positions, T, "one per row T of x [T, H, D]"));
    MLXN_TRY(mlxn_opv_alias(op, "y", y, "x", x, 1));
    MLXN_TRY(mlxn_opv_alias(op, "y", y, "positions", positions, 0));
    if (p->mode != MLXN_ROPE_ADJACENT && p->mode != MLXN_ROPE_HALF_SPLIT)
        return mlxn_set_error(MLXN_ERR_INVALID_ARG, "%s: unknown mode %d (expected 0 = adjacent, 1 = half-split)",
                              op, (int)p->mode);
    int64_t rot = p->rot_dims ? p->rot_dims : D;
    if (p->rot_dims < 0 || rot > D || rot % 2 != 0)
        return mlxn_set_error(MLXN_ERR_INVALID_ARG, "%s: rot_dims %d must be even and in [2, head_dim %lld] (0 = head_dim)",
                              op, p->rot_dims, (long long)D);
    if (!(p->theta > 0.0f) || !isfinite(p->theta))
        return mlxn_set_error(MLXN_ERR_INVALID_ARG, "%s: theta must be finite and > 0, got %g", op, (double)p->theta);
    switch (p->scaling) {
    case MLXN_ROPE_SCALING_NONE: break;
    case MLXN_ROPE_SCALING_LINEAR:
        if (!(p->factor > 0.0f) || !isfinite(p->factor))
            return mlxn_set_error(MLXN_ERR_INVALID_ARG, "%s: linear scaling factor must be finite and > 0, got %g",
                                  op, (double)p->factor);
        break;
    case MLXN_ROPE_SCALING_LLAMA3:
        if (!(p->factor > 0.0f) || !isfinite(p->factor))
            return mlxn_set_error(MLXN_ERR_INVALID_ARG, "%s: llama3 scaling factor must be finite and > 0, got %g",
                                  op, (double)p->factor);
        if (!(p->low_freq_factor > 0.0f) || !(p->high_freq_factor > p->low_freq_factor) || !isfinite(p->high_freq_factor))
            return mlxn_set_error(MLXN_ERR_INVALID_ARG,
                                  "%s: llama3 scaling needs 0 < low_freq_factor < high_freq_factor, got %g and %g",
                                  op, (double)p->low_freq_factor, (double)p->high_freq_factor);
        if (p->original_max_pos <= 0)
            return mlxn_set_error(MLXN_ERR_INVALID_ARG, "%s: llama3 scaling needs original_max_pos > 0, got %d",
                                  op, p->original_max_pos);
        break;
    default:
        return mlxn_set_error(MLXN_ERR_INVALID_ARG, "%s: unknown scaling %d (expected 0 none, 1 linear, 2 llama3)",
                              op, (int)p->scaling);
    }
    *rot_out = (int)rot;
    return MLXN_OK;
}

mlxn_status mlxn_rope(mlxn_session *s, const mlxn_buffer *x, const mlxn_buffer *positions, const mlxn_rope_params *p,
                      mlxn_buffer *y) {
    int rot = 0;
    MLXN_TRY(mlxn_rope_check("rope", s, x, positions, p, y, &rot));
    mlxn_op o = {.kind = MLXN_OP_ROPE, .in = {x, positions}, .out = {y}};
    o.p.rope = *p;
    o.p.rope.rot_dims = rot;
    return mlxn_dispatch(s, &o);
}
