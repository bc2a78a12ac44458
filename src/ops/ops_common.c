/* ops_common.c — implementation of the shared op-argument checks declared in
 * ops_common.h, and the rule that sends an optional fused op to its backend
 * kernel (mlxn_op_native). Messages follow one pattern: "<op>: <argument> <problem>
 * (<values>)", e.g. "rms_norm: weight shape [5] does not match x's last dim 6". */
#include "ops/ops_common.h"

#include <stdio.h>
#include <string.h>

static const char *dev_kind(const mlxn_device *d) { return d ? d->kind : "?"; }

mlxn_status mlxn_opv_session(const char *op, const mlxn_session *s) {
    if (!s) return mlxn_set_error(MLXN_ERR_INVALID_ARG, "%s: session is NULL", op);
    return MLXN_OK;
}

mlxn_status mlxn_opv_opt_buf(const char *op, const mlxn_session *s, const char *name, const mlxn_buffer *b) {
    if (!b) return MLXN_OK;
    if (!b->storage || !b->storage->device)
        return mlxn_set_error(MLXN_ERR_INVALID_ARG, "%s: %s is not a valid buffer", op, name);
    if (b->storage->device != s->device) {
        if (strcmp(b->storage->device->kind, s->device->kind) == 0)
            return mlxn_set_error(MLXN_ERR_INVALID_ARG,
                                  "%s: %s lives on another %s device than the session's", op, name,
                                  dev_kind(s->device));
        return mlxn_set_error(MLXN_ERR_INVALID_ARG, "%s: %s lives on device '%s' but the session runs on '%s'", op,
                              name, dev_kind(b->storage->device), dev_kind(s->device));
    }
    if ((unsigned)b->dtype >= MLXN_DTYPE_COUNT)
        return mlxn_set_error(MLXN_ERR_DTYPE, "%s: %s has an invalid dtype %d", op, name, (int)b->dtype);
    for (int i = 0; i < b->ndim; i++) {
        if (b->shape[i] <= 0) {
            char sh[MLXN_SHAPE_STR_CAP];
            return mlxn_set_error(MLXN_ERR_SHAPE, "%s: %s has a zero dim (shape %s); all dims must be > 0", op, name,
                                  mlxn_shape_str(sh, sizeof sh, b->ndim, b->shape));
        }
    }
    return MLXN_OK;
}

mlxn_status mlxn_opv_buf(const char *op, const mlxn_session *s, const char *name, const mlxn_buffer *b) {
    if (!b) return mlxn_set_error(MLXN_ERR_INVALID_ARG, "%s: %s is NULL", op, name);
    return mlxn_opv_opt_buf(op, s, name, b);
}

mlxn_status mlxn_opv_float(const char *op, const char *name, const mlxn_buffer *b) {
    if (b->dtype != MLXN_F32 && b->dtype != MLXN_F16 && b->dtype != MLXN_BF16)
        return mlxn_set_error(MLXN_ERR_DTYPE, "%s: %s must be f32, f16 or bf16, got %s", op, name,
                              mlxn_dtype_name(b->dtype));
    return MLXN_OK;
}

mlxn_status mlxn_opv_dtype(const char *op, const char *name, const mlxn_buffer *b, mlxn_dtype want) {
    if (b->dtype != want)
        return mlxn_set_error(MLXN_ERR_DTYPE, "%s: %s must be %s, got %s", op, name, mlxn_dtype_name(want),
                              mlxn_dtype_name(b->dtype));
    return MLXN_OK;
}

mlxn_status mlxn_opv_same_dtype(const char *op, const char *na, const mlxn_buffer *a, const char *nb,
                                const mlxn_buffer *b) {
    if (a->dtype != b->dtype)
        return mlxn_set_error(MLXN_ERR_DTYPE, "%s: %s dtype %s differs from %s dtype %s", op, nb,
                              mlxn_dtype_name(b->dtype), na, mlxn_dtype_name(a->dtype));
    return MLXN_OK;
}

static int same_shape(const mlxn_buffer *a, const mlxn_buffer *b) {
    if (a->ndim != b->ndim) return 0;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i]) return 0;
    return 1;
}

mlxn_status mlxn_opv_same_shape(const char *op, const char *na, const mlxn_buffer *a, const char *nb,
                                const mlxn_buffer *b) {
    if (!same_shape(a, b)) {
        char sa[MLXN_SHAPE_STR_CAP], sb[MLXN_SHAPE_STR_CAP];
        return mlxn_set_error(MLXN_ERR_SHAPE, "%s: %s shape %s does not match %s shape %s", op, nb,
                              mlxn_shape_str(sb, sizeof sb, b->ndim, b->shape), na,
                              mlxn_shape_str(sa, sizeof sa, a->ndim, a->shape));
    }
    return MLXN_OK;
}

mlxn_status mlxn_opv_ndim(const char *op, const char *name, const mlxn_buffer *b, int ndim) {
    if (b->ndim != ndim) {
        char sh[MLXN_SHAPE_STR_CAP];
        return mlxn_set_error(MLXN_ERR_SHAPE, "%s: %s must be %d-D, got shape %s", op, name, ndim,
                              mlxn_shape_str(sh, sizeof sh, b->ndim, b->shape));
    }
    return MLXN_OK;
}

mlxn_status mlxn_opv_min_ndim(const char *op, const char *name, const mlxn_buffer *b, int ndim) {
    if (b->ndim < ndim) {
        char sh[MLXN_SHAPE_STR_CAP];
        return mlxn_set_error(MLXN_ERR_SHAPE, "%s: %s needs at least %d dim(s), got shape %s", op, name, ndim,
                              mlxn_shape_str(sh, sizeof sh, b->ndim, b->shape));
    }
    return MLXN_OK;
}

mlxn_status mlxn_opv_numel(const char *op, const char *name, const mlxn_buffer *b, int64_t n, const char *what) {
    int64_t got = mlxn_numel(b->ndim, b->shape);
    if (got != n) {
        char sh[MLXN_SHAPE_STR_CAP];
        return mlxn_set_error(MLXN_ERR_SHAPE, "%s: %s has %lld elements (shape %s), expected %lld (%s)", op, name,
                              (long long)got, mlxn_shape_str(sh, sizeof sh, b->ndim, b->shape), (long long)n, what);
    }
    return MLXN_OK;
}

mlxn_status mlxn_opv_shape(const char *op, const char *name, const mlxn_buffer *b, int ndim, const int64_t *shape,
                           const char *expect_desc) {
    int ok = b->ndim == ndim;
    for (int i = 0; ok && i < ndim; i++) ok = b->shape[i] == shape[i];
    if (!ok) {
        char sg[MLXN_SHAPE_STR_CAP], se[MLXN_SHAPE_STR_CAP];
        return mlxn_set_error(MLXN_ERR_SHAPE, "%s: %s shape %s, expected %s %s", op, name,
                              mlxn_shape_str(sg, sizeof sg, b->ndim, b->shape), expect_desc,
                              mlxn_shape_str(se, sizeof se, ndim, shape));
    }
    return MLXN_OK;
}

int mlxn_buffers_overlap(const mlxn_buffer *a, const mlxn_buffer *b) {
    if (!a || !b || a->storage != b->storage) return 0;
    size_t na = mlxn_buffer_nbytes(a), nb = mlxn_buffer_nbytes(b);
    if (na == 0 || nb == 0) return 0;
    return a->offset < b->offset + nb && b->offset < a->offset + na;
}

mlxn_status mlxn_opv_alias(const char *op, const char *nout, const mlxn_buffer *out, const char *nin,
                           const mlxn_buffer *in, int allow_exact) {
    if (!mlxn_buffers_overlap(out, in)) return MLXN_OK;
    int exact = out->offset == in->offset && mlxn_buffer_nbytes(out) == mlxn_buffer_nbytes(in) &&
                mlxn_dtype_size(out->dtype) == mlxn_dtype_size(in->dtype);
    if (exact && allow_exact) return MLXN_OK;
    if (exact)
        return mlxn_set_error(MLXN_ERR_INVALID_ARG, "%s: %s must not alias %s (same memory)", op, nout, nin);
    return mlxn_set_error(MLXN_ERR_INVALID_ARG,
                          "%s: %s partially overlaps %s (bytes [%zu, %zu) vs [%zu, %zu) of one storage)%s", op, nout,
                          nin, out->offset, out->offset + mlxn_buffer_nbytes(out), in->offset,
                          in->offset + mlxn_buffer_nbytes(in), allow_exact ? "; only exact aliasing is allowed" : "");
}

int mlxn_op_native(mlxn_session *s, const mlxn_op *o) {
    const mlxn_backend_ops *ops = s->device->ops;
    return ops->op[o->kind] && ops->fusable && ops->fusable(s, o);
}
