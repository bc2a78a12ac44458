/* session.c — sessions (ordered op batches with one wait), the dispatcher
 * that every validated op goes through, and recorded graphs. A backend with
 * graph hooks (CUDA) captures natively; otherwise the core records the op
 * records (retaining their buffers and weights) and replays them through the
 * backend's op table. */
#include "core/internal.h"

#include <stdlib.h>
#include <string.h>

mlxn_status mlxn_session_begin(mlxn_device *d, mlxn_session **out) {
    if (!d || !out) return mlxn_set_error(MLXN_ERR_INVALID_ARG, "session_begin: device and out must not be NULL");
    *out = NULL;
    mlxn_session *s = calloc(1, sizeof *s);
    if (!s) return mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "session_begin: out of host memory");
    s->device = d;
    if (d->ops->session_begin) {
        mlxn_status st = d->ops->session_begin(s);
        if (st != MLXN_OK) { free(s); return st; }
    }
    *out = s;
    return MLXN_OK;
}

mlxn_status mlxn_session_finish(mlxn_session *s) {
    if (!s) return mlxn_set_error(MLXN_ERR_INVALID_ARG, "session_finish: session is NULL");
    if (s->recording) return mlxn_set_error(MLXN_ERR_STATE, "session_finish: a graph is being recorded; end it first");
    if (s->device->ops->session_finish) return s->device->ops->session_finish(s);
    return MLXN_OK;
}

static void op_release_refs(mlxn_op *op) {
    for (int i = 0; i < 4; i++) mlxn_buffer_release((mlxn_buffer *)op->in[i]);
    for (int i = 0; i < MLXN_OP_MAX_OUT; i++) mlxn_buffer_release(op->out[i]);
    /* weights are not refcounted: the caller keeps them alive while the graph lives */
}

static void op_retain_refs(mlxn_op *op) {
    for (int i = 0; i < 4; i++) mlxn_buffer_retain((mlxn_buffer *)op->in[i]);
    for (int i = 0; i < MLXN_OP_MAX_OUT; i++) mlxn_buffer_retain(op->out[i]);
}

static void clear_recording(mlxn_session *s) {
    for (size_t i = 0; i < s->rec_count; i++) op_release_refs(&s->rec_ops[i]);
    free(s->rec_ops);
    s->rec_ops = NULL;
    s->rec_count = s->rec_cap = 0;
}

void mlxn_session_destroy(mlxn_session *s) {
    if (!s) return;
    if (s->recording && s->device->ops->graph_begin) {
        void *g = NULL;
        if (s->device->ops->graph_end(s, &g) == MLXN_OK && g) s->device->ops->graph_destroy(g);
    }
    clear_recording(s);
    if (s->device->ops->session_destroy) s->device->ops->session_destroy(s);
    free(s);
}

mlxn_device *mlxn_session_device(const mlxn_session *s) { return s ? s->device : NULL; }

const char *mlxn_op_name(mlxn_op_kind k) {
    static const char *names[MLXN_OP_COUNT] = {
        [MLXN_OP_ADD] = "add", [MLXN_OP_MUL] = "mul", [MLXN_OP_SCALE] = "scale", [MLXN_OP_SILU] = "silu",
        [MLXN_OP_GELU] = "gelu", [MLXN_OP_SILU_MUL] = "silu_mul", [MLXN_OP_GELU_MUL] = "gelu_mul",
        [MLXN_OP_SOFTCAP] = "softcap", [MLXN_OP_CAST] = "cast", [MLXN_OP_RMS_NORM] = "rms_norm",
        [MLXN_OP_RMS_NORM_RESIDUAL] = "rms_norm_residual", [MLXN_OP_LAYER_NORM] = "layer_norm",
        [MLXN_OP_L2_NORM] = "l2_norm", [MLXN_OP_ROPE] = "rope", [MLXN_OP_SOFTMAX] = "softmax",
        [MLXN_OP_ARGMAX] = "argmax", [MLXN_OP_TOPK] = "topk", [MLXN_OP_EMBEDDING] = "embedding",
        [MLXN_OP_MATMUL] = "matmul", [MLXN_OP_DEQUANTIZE] = "dequantize", [MLXN_OP_ATTENTION] = "attention",
        [MLXN_OP_KV_APPEND] = "kv_append", [MLXN_OP_IM2COL_2D_3CH] = "im2col_2d_3ch",
        [MLXN_OP_ROPE_KV_APPEND] = "rope_kv_append", [MLXN_OP_MATMUL_FUSED] = "matmul_fused",
        [MLXN_OP_ROPE_KV_ATTENTION] = "rope_kv_attention", [MLXN_OP_COPY] = "copy",
    };
    return (unsigned)k < MLXN_OP_COUNT && names[k] ? names[k] : "unknown-op";
}

mlxn_status mlxn_dispatch(mlxn_session *s, const mlxn_op *op) {
    const mlxn_backend_ops *ops = s->device->ops;
    mlxn_op_fn fn = ops->op[op->kind];
    if (!fn) {
        const mlxn_buffer *b = op->in[0] ? op->in[0] : op->out[0];
        return mlxn_set_error(MLXN_ERR_UNSUPPORTED, "%s: not supported by the %s backend (dtype %s)", mlxn_op_name(op->kind),
                              ops->name, b ? mlxn_dtype_name(b->dtype) : "-");
    }
    if (ops->op_supported) MLXN_TRY(ops->op_supported(s->device, op));
    if (s->recording && !ops->graph_begin) {
        if (s->rec_count == s->rec_cap) {
            size_t cap = s->rec_cap ? s->rec_cap * 2 : 64;
            mlxn_op *n = realloc(s->rec_ops, cap * sizeof *n);
            if (!n) return mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "%s: out of memory while recording a graph", mlxn_op_name(op->kind));
            s->rec_ops = n;
            s->rec_cap = cap;
        }
        mlxn_op *r = &s->rec_ops[s->rec_count++];
        *r = *op;
        op_retain_refs(r);
        return MLXN_OK;
    }
    return fn(s, op);
}

mlxn_status mlxn_graph_begin_record(mlxn_session *s) {
    if (!s) return mlxn_set_error(MLXN_ERR_INVALID_ARG, "graph_begin_record: session is NULL");
    if (s->recording) return mlxn_set_error(MLXN_ERR_STATE, "graph_begin_record: already recording");
    if (s->device->ops->graph_begin) MLXN_TRY(s->device->ops->graph_begin(s));
    s->recording = 1;
    return MLXN_OK;
}

mlxn_status mlxn_graph_end_record(mlxn_session *s, mlxn_graph **out) {
    if (!s || !out) return mlxn_set_error(MLXN_ERR_INVALID_ARG, "graph_end_record: session and out must not be NULL");
    *out = NULL;
    if (!s->recording) return mlxn_set_error(MLXN_ERR_STATE, "graph_end_record: not recording");
    s->recording = 0;
    mlxn_graph *g = calloc(1, sizeof *g);
    if (!g) { clear_recording(s); return mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "graph_end_record: out of host memory"); }
    g->device = s->device;
    if (s->device->ops->graph_begin) {
        mlxn_status st = s->device->ops->graph_end(s, &g->impl);
        if (st != MLXN_OK) { free(g); return st; }
    } else {
        g->ops = s->rec_ops;
        g->count = s->rec_count;
        s->rec_ops = NULL;
        s->rec_count = s->rec_cap = 0;
    }
    *out = g;
    return MLXN_OK;
}

mlxn_status mlxn_graph_replay(mlxn_session *s, const mlxn_graph *g) {
    if (!s || !g) return mlxn_set_error(MLXN_ERR_INVALID_ARG, "graph_replay: session and graph must not be NULL");
    if (g->device != s->device) return mlxn_set_error(MLXN_ERR_INVALID_ARG, "graph_replay: graph recorded on another device");
    if (s->recording) return mlxn_set_error(MLXN_ERR_STATE, "graph_replay: cannot replay while recording");
    if (g->impl) return s->device->ops->graph_replay(s, g->impl);
    for (size_t i = 0; i < g->count; i++) MLXN_TRY(s->device->ops->op[g->ops[i].kind](s, &g->ops[i]));
    return MLXN_OK;
}

void mlxn_graph_destroy(mlxn_graph *g) {
    if (!g) return;
    if (g->impl && g->device->ops->graph_destroy) g->device->ops->graph_destroy(g->impl);
    for (size_t i = 0; i < g->count; i++) op_release_refs(&g->ops[i]);
    free(g->ops);
    free(g);
}
