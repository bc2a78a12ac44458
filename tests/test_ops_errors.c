/* test_ops_errors.c — bad-argument tests for every op of the catalog:
 * NULL session/buffers, buffers of another device, wrong dtypes, shape
 * mismatches, too-small buffers, zero dims, bad parameters and forbidden
 * aliasing. Each asserts the status code and a substring of the message
 * (which must name the op and the offending values), and that a failed call
 * leaves the session usable. Runs on the "cpu" device (validation is shared
 * by all backends), with a "ref" device as the foreign one. */
#include "testutil.h"

#include <math.h>
#include <string.h>

static mlxn_device *D, *OTHER;
static mlxn_session *S;

#define MAXKEEP 1024
static mlxn_buffer *g_keep[MAXKEEP];
static int g_nkeep;

/* Allocate a buffer on `dev` filled with a small non-zero pattern; released at the end. */
static mlxn_buffer *bufd(mlxn_device *dev, mlxn_dtype t, int ndim, int64_t d0, int64_t d1, int64_t d2, int64_t d3) {
    int64_t sh[4] = {d0, d1, d2, d3};
    mlxn_buffer *b = NULL;
    if (mlxn_buffer_alloc(dev, t, ndim, sh, &b) != MLXN_OK) {
        t_fail(__FILE__, __LINE__, "alloc failed: %s", mlxn_last_error());
        return NULL;
    }
    if (mlxn_buffer_nbytes(b)) mlxn_buffer_fill_bytes(b, t == MLXN_I32 ? 0 : 0x3c);
    if (g_nkeep < MAXKEEP) g_keep[g_nkeep++] = b;
    return b;
}
#define B1(t, a) bufd(D, t, 1, a, 0, 0, 0)
#define B2(t, a, b) bufd(D, t, 2, a, b, 0, 0)
#define B3(t, a, b, c) bufd(D, t, 3, a, b, c, 0)

static void release_kept(void) {
    for (int i = 0; i < g_nkeep; i++) mlxn_buffer_release(g_keep[i]);
    g_nkeep = 0;
}

/* A valid op still runs after the failures. */
static void check_session_usable(void) {
    mlxn_buffer *x = B2(MLXN_F32, 2, 8), *y = B2(MLXN_F32, 2, 8);
    CHECK_OK(mlxn_scale(S, x, 2.0f, y));
    CHECK_OK(mlxn_session_finish(S));
}

static void test_elementwise_errors(void) {
    mlxn_buffer *a = B2(MLXN_F32, 3, 8), *b = B2(MLXN_F32, 3, 8), *y = B2(MLXN_F32, 3, 8);
    mlxn_buffer *a16 = B2(MLXN_F16, 3, 8), *ai = B2(MLXN_I32, 3, 8), *b7 = B1(MLXN_F32, 7), *y2 = B2(MLXN_F32, 2, 8);
    mlxn_buffer *z = bufd(D, MLXN_F32, 2, 3, 0, 0, 0), *foreign = bufd(OTHER, MLXN_F32, 2, 3, 8, 0, 0);
    CHECK_ERR(mlxn_add(NULL, a, b, y), MLXN_ERR_INVALID_ARG, "add: session is NULL");
    CHECK_ERR(mlxn_add(S, NULL, b, y), MLXN_ERR_INVALID_ARG, "add: a is NULL");
    CHECK_ERR(mlxn_add(S, a, NULL, y), MLXN_ERR_INVALID_ARG, "add: b is NULL");
    CHECK_ERR(mlxn_add(S, a, b, NULL), MLXN_ERR_INVALID_ARG, "add: y is NULL");
    CHECK_ERR(mlxn_add(S, a, foreign, y), MLXN_ERR_INVALID_ARG, "add: b lives on device 'ref'");
    CHECK_ERR(mlxn_add(S, ai, ai, ai), MLXN_ERR_DTYPE, "add: a must be f32, f16 or bf16, got i32");
    CHECK_ERR(mlxn_add(S, a, a16, y), MLXN_ERR_DTYPE, "add: b dtype f16 differs from a dtype f32");
    CHECK_ERR(mlxn_add(S, a, b7, y), MLXN_ERR_SHAPE, "add: b shape [7] matches neither a shape [3, 8] nor its last dim 8");
    CHECK_ERR(mlxn_add(S, a, b, y2), MLXN_ERR_SHAPE, "add: y shape [2, 8] does not match a shape [3, 8]");
    CHECK_ERR(mlxn_add(S, z, z, z), MLXN_ERR_SHAPE, "add: a has a zero dim (shape [3, 0])");
    CHECK_ERR(mlxn_mul(S, a, b, a16), MLXN_ERR_DTYPE, "mul: y dtype f16 differs from a dtype f32");
    CHECK_ERR(mlxn_mul(S, a, B2(MLXN_F32, 8, 3), y), MLXN_ERR_SHAPE, "mul: b shape [8, 3] does not match a shape [3, 8]");
    /* partial overlap: a and y are views of one storage, 4 bytes apart */
    mlxn_buffer *big = B2(MLXN_F32, 4, 8), *va = NULL, *vy = NULL;
    int64_t vs[2] = {3, 8};
    CHECK_OK(mlxn_buffer_view(big, 0, MLXN_F32, 2, vs, &va));
    CHECK_OK(mlxn_buffer_view(big, 4, MLXN_F32, 2, vs, &vy));
    CHECK_ERR(mlxn_add(S, va, b, vy), MLXN_ERR_INVALID_ARG, "add: y partially overlaps a (bytes [4, 100) vs [0, 96)");
    CHECK_OK(mlxn_add(S, va, b, va)); /* exact aliasing is allowed */
    mlxn_buffer_release(va);
    mlxn_buffer_release(vy);
    CHECK_ERR(mlxn_scale(S, a, NAN, y), MLXN_ERR_INVALID_ARG, "scale: alpha must be finite, got nan");
    CHECK_ERR(mlxn_scale(S, a, 1.0f, a16), MLXN_ERR_DTYPE, "scale: y dtype f16 differs from x dtype f32");
    CHECK_ERR(mlxn_silu(S, a, y2), MLXN_ERR_SHAPE, "silu: y shape [2, 8] does not match x shape [3, 8]");
    CHECK_ERR(mlxn_silu(S, ai, ai), MLXN_ERR_DTYPE, "silu: x must be f32, f16 or bf16, got i32");
    CHECK_ERR(mlxn_gelu(S, a, (mlxn_gelu_kind)7, y), MLXN_ERR_INVALID_ARG, "gelu: unknown gelu kind 7");
    CHECK_ERR(mlxn_gelu(S, z, MLXN_GELU_ERF, z), MLXN_ERR_SHAPE, "gelu: x has a zero dim");
    CHECK_ERR(mlxn_silu_mul(S, a, y2, y), MLXN_ERR_SHAPE, "silu_mul: up shape [2, 8] does not match gate shape [3, 8]");
    CHECK_ERR(mlxn_silu_mul(S, a, b7, y), MLXN_ERR_SHAPE, "silu_mul: up shape [7] does not match gate shape [3, 8]");
    CHECK_ERR(mlxn_gelu_mul(S, a, a16, MLXN_GELU_TANH, y), MLXN_ERR_DTYPE, "gelu_mul: up dtype f16 differs from gate dtype f32");
    CHECK_ERR(mlxn_gelu_mul(S, a, b, (mlxn_gelu_kind)-1, y), MLXN_ERR_INVALID_ARG, "gelu_mul: unknown gelu kind -1");
    CHECK_ERR(mlxn_softcap(S, a, 0.0f, y), MLXN_ERR_INVALID_ARG, "softcap: cap must be finite and > 0, got 0");
    CHECK_ERR(mlxn_softcap(S, a, -3.0f, y), MLXN_ERR_INVALID_ARG, "got -3");
    CHECK_ERR(mlxn_cast(S, ai, y), MLXN_ERR_DTYPE, "cast: x must be f32, f16 or bf16, got i32");
    CHECK_ERR(mlxn_cast(S, a, ai), MLXN_ERR_DTYPE, "cast: y must be f32, f16 or bf16, got i32");
    CHECK_ERR(mlxn_cast(S, a, B2(MLXN_F16, 8, 3)), MLXN_ERR_SHAPE, "cast: y shape [8, 3] does not match x shape [3, 8]");
    /* cast in place with a different element size is a partial overlap */
    mlxn_buffer *half_view = NULL;
    CHECK_OK(mlxn_buffer_view(a, 0, MLXN_F16, 2, (int64_t[]){3, 8}, &half_view));
    CHECK_ERR(mlxn_cast(S, a, half_view), MLXN_ERR_INVALID_ARG, "cast: y partially overlaps x");
    mlxn_buffer_release(half_view);
    check_session_usable();
}

static void test_norm_errors(void) {
    mlxn_buffer *x = B2(MLXN_F32, 4, 6), *y = B2(MLXN_F32, 4, 6), *w = B1(MLXN_F32, 6), *w5 = B1(MLXN_F32, 5);
    mlxn_buffer *w16 = B1(MLXN_F16, 6), *r = B2(MLXN_F32, 4, 6), *sum = B2(MLXN_F32, 4, 6);
    CHECK_ERR(mlxn_rms_norm(NULL, x, w, 1e-5f, y), MLXN_ERR_INVALID_ARG, "rms_norm: session is NULL");
    CHECK_ERR(mlxn_rms_norm(S, NULL, w, 1e-5f, y), MLXN_ERR_INVALID_ARG, "rms_norm: x is NULL");
    CHECK_ERR(mlxn_rms_norm(S, x, w5, 1e-5f, y), MLXN_ERR_SHAPE, "rms_norm: weight shape [5] does not match x's last dim 6");
    CHECK_ERR(mlxn_rms_norm(S, x, B2(MLXN_F32, 1, 6), 1e-5f, y), MLXN_ERR_SHAPE, "rms_norm: weight shape [1, 6] does not match x's last dim 6");
    CHECK_ERR(mlxn_rms_norm(S, x, w16, 1e-5f, y), MLXN_ERR_DTYPE, "rms_norm: weight dtype f16 differs from x dtype f32");
    CHECK_ERR(mlxn_rms_norm(S, x, w, -1.0f, y), MLXN_ERR_INVALID_ARG, "rms_norm: eps must be finite and >= 0, got -1");
    CHECK_ERR(mlxn_rms_norm(S, x, w, 1e-5f, B2(MLXN_F32, 4, 5)), MLXN_ERR_SHAPE, "rms_norm: y shape [4, 5] does not match x shape [4, 6]");
    CHECK_ERR(mlxn_rms_norm(S, x, w, 1e-5f, B2(MLXN_BF16, 4, 6)), MLXN_ERR_DTYPE, "rms_norm: y dtype bf16 differs from x dtype f32");
    CHECK_ERR(mlxn_rms_norm(S, bufd(D, MLXN_F32, 2, 0, 6, 0, 0), NULL, 1e-5f, y), MLXN_ERR_SHAPE, "rms_norm: x has a zero dim (shape [0, 6])");
    CHECK_ERR(mlxn_rms_norm(S, bufd(D, MLXN_F32, 0, 0, 0, 0, 0), NULL, 1e-5f, bufd(D, MLXN_F32, 0, 0, 0, 0, 0)),
              MLXN_ERR_SHAPE, "rms_norm: x needs at least 1 dim(s), got shape []");
    CHECK_ERR(mlxn_rms_norm(S, x, bufd(OTHER, MLXN_F32, 1, 6, 0, 0, 0), 1e-5f, y), MLXN_ERR_INVALID_ARG,
              "rms_norm: weight lives on device 'ref' but the session runs on 'cpu'");
    CHECK_ERR(mlxn_rms_norm(S, x, y, 1e-5f, y), MLXN_ERR_SHAPE, "rms_norm: weight shape [4, 6]");
    CHECK_ERR(mlxn_rms_norm_residual(S, x, NULL, w, 1e-5f, sum, y), MLXN_ERR_INVALID_ARG, "rms_norm_residual: residual is NULL");
    CHECK_ERR(mlxn_rms_norm_residual(S, x, r, w, 1e-5f, NULL, y), MLXN_ERR_INVALID_ARG, "rms_norm_residual: sum is NULL");
    CHECK_ERR(mlxn_rms_norm_residual(S, x, B2(MLXN_F32, 4, 5), w, 1e-5f, sum, y), MLXN_ERR_SHAPE,
              "rms_norm_residual: residual shape [4, 5] does not match x shape [4, 6]");
    CHECK_ERR(mlxn_rms_norm_residual(S, x, r, w, 1e-5f, B2(MLXN_F16, 4, 6), y), MLXN_ERR_DTYPE,
              "rms_norm_residual: sum dtype f16 differs from x dtype f32");
    CHECK_ERR(mlxn_rms_norm_residual(S, x, r, w, 1e-5f, y, y), MLXN_ERR_INVALID_ARG, "rms_norm_residual: y must not alias sum");
    CHECK_OK(mlxn_rms_norm_residual(S, x, r, w, 1e-5f, x, r)); /* sum over x, y over residual: allowed */
    CHECK_ERR(mlxn_layer_norm(S, x, w, w5, 1e-5f, y), MLXN_ERR_SHAPE, "layer_norm: bias shape [5] does not match x's last dim 6");
    CHECK_ERR(mlxn_layer_norm(S, x, w16, NULL, 1e-5f, y), MLXN_ERR_DTYPE, "layer_norm: weight dtype f16 differs from x dtype f32");
    CHECK_ERR(mlxn_layer_norm(S, x, w, w, INFINITY, y), MLXN_ERR_INVALID_ARG, "layer_norm: eps must be finite");
    CHECK_ERR(mlxn_l2_norm(S, B2(MLXN_I32, 4, 6), 1e-6f, y), MLXN_ERR_DTYPE, "l2_norm: x must be f32, f16 or bf16, got i32");
    CHECK_ERR(mlxn_l2_norm(S, x, NAN, y), MLXN_ERR_INVALID_ARG, "l2_norm: eps must be finite and >= 0, got nan");
    CHECK_ERR(mlxn_l2_norm(S, x, 1e-6f, NULL), MLXN_ERR_INVALID_ARG, "l2_norm: y is NULL");
    check_session_usable();
}

static void test_rope_errors(void) {
    mlxn_buffer *x = B3(MLXN_F32, 5, 4, 64), *y = B3(MLXN_F32, 5, 4, 64), *pos = B1(MLXN_I32, 5);
    mlxn_rope_params p = {.mode = MLXN_ROPE_HALF_SPLIT, .theta = 10000.0f};
    CHECK_OK(mlxn_rope(S, x, pos, &p, y));
    CHECK_ERR(mlxn_rope(NULL, x, pos, &p, y), MLXN_ERR_INVALID_ARG, "rope: session is NULL");
    CHECK_ERR(mlxn_rope(S, x, pos, NULL, y), MLXN_ERR_INVALID_ARG, "rope: params is NULL");
    CHECK_ERR(mlxn_rope(S, x, NULL, &p, y), MLXN_ERR_INVALID_ARG, "rope: positions is NULL");
    CHECK_ERR(mlxn_rope(S, x, B1(MLXN_F32, 5), &p, y), MLXN_ERR_DTYPE, "rope: positions must be i32, got f32");
    CHECK_ERR(mlxn_rope(S, x, B1(MLXN_I32, 4), &p, y), MLXN_ERR_SHAPE, "rope: positions has 4 elements (shape [4]), expected 5");
    CHECK_ERR(mlxn_rope(S, B2(MLXN_F32, 5, 256), pos, &p, B2(MLXN_F32, 5, 256)), MLXN_ERR_SHAPE, "rope: x must be 3-D, got shape [5, 256]");
    CHECK_ERR(mlxn_rope(S, x, pos, &p, B3(MLXN_F16, 5, 4, 64)), MLXN_ERR_DTYPE, "rope: y dtype f16 differs from x dtype f32");
    CHECK_ERR(mlxn_rope(S, x, pos, &p, B3(MLXN_F32, 5, 4, 32)), MLXN_ERR_SHAPE, "rope: y shape [5, 4, 32] does not match x shape [5, 4, 64]");
    mlxn_rope_params q = p;
    q.rot_dims = 33;
    CHECK_ERR(mlxn_rope(S, x, pos, &q, y), MLXN_ERR_INVALID_ARG, "rope: rot_dims 33 must be even and in [2, head_dim 64]");
    q.rot_dims = 66;
    CHECK_ERR(mlxn_rope(S, x, pos, &q, y), MLXN_ERR_INVALID_ARG, "rope: rot_dims 66");
    q = p;
    q.theta = 0.0f;
    CHECK_ERR(mlxn_rope(S, x, pos, &q, y), MLXN_ERR_INVALID_ARG, "rope: theta must be finite and > 0, got 0");
    q = p;
    q.mode = (mlxn_rope_mode)5;
    CHECK_ERR(mlxn_rope(S, x, pos, &q, y), MLXN_ERR_INVALID_ARG, "rope: unknown mode 5");
    q = p;
    q.scaling = MLXN_ROPE_SCALING_LINEAR;
    CHECK_ERR(mlxn_rope(S, x, pos, &q, y), MLXN_ERR_INVALID_ARG, "rope: linear scaling factor must be finite and > 0, got 0");
    q.scaling = MLXN_ROPE_SCALING_LLAMA3;
    q.factor = 8.0f;
    q.low_freq_factor = 4.0f;
    q.high_freq_factor = 1.0f;
    q.original_max_pos = 8192;
    CHECK_ERR(mlxn_rope(S, x, pos, &q, y), MLXN_ERR_INVALID_ARG, "rope: llama3 scaling needs 0 < low_freq_factor < high_freq_factor, got 4 and 1");
    q.low_freq_factor = 1.0f;
    q.high_freq_factor = 4.0f;
    q.original_max_pos = 0;
    CHECK_ERR(mlxn_rope(S, x, pos, &q, y), MLXN_ERR_INVALID_ARG, "rope: llama3 scaling needs original_max_pos > 0, got 0");
    q.scaling = (mlxn_rope_scaling)9;
    CHECK_ERR(mlxn_rope(S, x, pos, &q, y), MLXN_ERR_INVALID_ARG, "rope: unknown scaling 9");
    CHECK_ERR(mlxn_rope(S, bufd(D, MLXN_F32, 3, 5, 0, 64, 0), pos, &p, y), MLXN_ERR_SHAPE, "rope: x has a zero dim (shape [5, 0, 64])");
    check_session_usable();
}

static void test_softmax_errors(void) {
    mlxn_buffer *x = B2(MLXN_F32, 3, 10), *y = B2(MLXN_F32, 3, 10), *idx = B1(MLXN_I32, 3), *vals = B2(MLXN_F32, 3, 4);
    mlxn_buffer *ik = B2(MLXN_I32, 3, 4);
    CHECK_ERR(mlxn_softmax(NULL, x, NULL, 1.0f, y), MLXN_ERR_INVALID_ARG, "softmax: session is NULL");
    CHECK_ERR(mlxn_softmax(S, B2(MLXN_F16, 3, 10), NULL, 1.0f, y), MLXN_ERR_DTYPE, "softmax: x must be f32, got f16");
    CHECK_ERR(mlxn_softmax(S, x, B1(MLXN_F32, 9), 1.0f, y), MLXN_ERR_SHAPE, "softmax: mask shape [9] is neither x's shape [3, 10] nor [10]");
    CHECK_ERR(mlxn_softmax(S, x, B2(MLXN_F32, 2, 10), 1.0f, y), MLXN_ERR_SHAPE, "softmax: mask shape [2, 10]");
    CHECK_ERR(mlxn_softmax(S, x, B1(MLXN_F16, 10), 1.0f, y), MLXN_ERR_DTYPE, "softmax: mask must be f32, got f16");
    CHECK_ERR(mlxn_softmax(S, x, NULL, INFINITY, y), MLXN_ERR_INVALID_ARG, "softmax: scale must be finite, got inf");
    CHECK_ERR(mlxn_softmax(S, x, NULL, 1.0f, B2(MLXN_F32, 3, 9)), MLXN_ERR_SHAPE, "softmax: y shape [3, 9] does not match x shape [3, 10]");
    CHECK_ERR(mlxn_softmax(S, x, y, 1.0f, y), MLXN_ERR_INVALID_ARG, "softmax: y must not alias mask");
    CHECK_ERR(mlxn_argmax(S, x, NULL), MLXN_ERR_INVALID_ARG, "argmax: idx is NULL");
    CHECK_ERR(mlxn_argmax(S, x, B1(MLXN_F32, 3)), MLXN_ERR_DTYPE, "argmax: idx must be i32, got f32");
    CHECK_ERR(mlxn_argmax(S, x, B1(MLXN_I32, 2)), MLXN_ERR_SHAPE, "argmax: idx has 2 elements (shape [2]), expected 3");
    CHECK_ERR(mlxn_argmax(S, B2(MLXN_BF16, 3, 10), idx), MLXN_ERR_DTYPE, "argmax: x must be f32, got bf16");
    CHECK_ERR(mlxn_argmax(S, bufd(D, MLXN_F32, 2, 3, 0, 0, 0), idx), MLXN_ERR_SHAPE, "argmax: x has a zero dim");
    CHECK_ERR(mlxn_topk(S, x, 0, vals, ik), MLXN_ERR_INVALID_ARG, "topk: k (0) must be in [1, 10]");
    CHECK_ERR(mlxn_topk(S, x, 11, NULL, B2(MLXN_I32, 3, 11)), MLXN_ERR_INVALID_ARG, "topk: k (11) must be in [1, 10]");
    CHECK_ERR(mlxn_topk(S, x, 4, vals, B2(MLXN_I32, 3, 5)), MLXN_ERR_SHAPE, "topk: idx shape [3, 5], expected x's shape with last dim k: [3, 4]");
    CHECK_ERR(mlxn_topk(S, x, 4, B2(MLXN_F32, 3, 3), ik), MLXN_ERR_SHAPE, "topk: values shape [3, 3]");
    CHECK_ERR(mlxn_topk(S, x, 4, B2(MLXN_F16, 3, 4), ik), MLXN_ERR_DTYPE, "topk: values must be f32, got f16");
    CHECK_ERR(mlxn_topk(S, x, 4, vals, vals), MLXN_ERR_DTYPE, "topk: idx must be i32, got f32");
    CHECK_ERR(mlxn_topk(S, x, 4, vals, NULL), MLXN_ERR_INVALID_ARG, "topk: idx is NULL");
    mlxn_buffer *v2 = NULL;
    CHECK_OK(mlxn_buffer_view(ik, 0, MLXN_F32, 2, (int64_t[]){3, 4}, &v2));
    CHECK_ERR(mlxn_topk(S, x, 4, v2, ik), MLXN_ERR_INVALID_ARG, "topk: values must not alias idx");
    mlxn_buffer_release(v2);
    CHECK_OK(mlxn_topk(S, x, 4, NULL, ik));
    check_session_usable();
}

static void test_attention_errors(void) {
    mlxn_buffer *q = B3(MLXN_F32, 2, 8, 64), *k = B3(MLXN_F16, 2, 32, 64), *v = B3(MLXN_F16, 2, 32, 64);
    mlxn_buffer *o = B3(MLXN_F32, 2, 8, 64), *pos = B1(MLXN_I32, 2);
    mlxn_attention_params p = {.scale = 0.125f, .causal = 1, .kv_len = 10};
    CHECK_OK(mlxn_attention(S, q, k, v, NULL, &p, o));
    CHECK_OK(mlxn_attention(S, q, k, v, pos, &p, o));
    CHECK_ERR(mlxn_attention(NULL, q, k, v, pos, &p, o), MLXN_ERR_INVALID_ARG, "attention: session is NULL");
    CHECK_ERR(mlxn_attention(S, q, k, v, pos, NULL, o), MLXN_ERR_INVALID_ARG, "attention: params is NULL");
    CHECK_ERR(mlxn_attention(S, NULL, k, v, pos, &p, o), MLXN_ERR_INVALID_ARG, "attention: q is NULL");
    CHECK_ERR(mlxn_attention(S, q, k, NULL, pos, &p, o), MLXN_ERR_INVALID_ARG, "attention: v_cache is NULL");
    CHECK_ERR(mlxn_attention(S, B3(MLXN_F16, 2, 8, 64), k, v, pos, &p, o), MLXN_ERR_DTYPE, "attention: q must be f32, got f16");
    CHECK_ERR(mlxn_attention(S, q, k, B3(MLXN_BF16, 2, 32, 64), pos, &p, o), MLXN_ERR_DTYPE, "attention: v_cache dtype bf16 differs from k_cache dtype f16");
    CHECK_ERR(mlxn_attention(S, q, B3(MLXN_I32, 2, 32, 64), v, pos, &p, o), MLXN_ERR_DTYPE, "attention: k_cache must be f32, f16 or bf16, got i32");
    CHECK_ERR(mlxn_attention(S, q, k, B3(MLXN_F16, 2, 31, 64), pos, &p, o), MLXN_ERR_SHAPE, "attention: v_cache shape [2, 31, 64] does not match k_cache shape [2, 32, 64]");
    CHECK_ERR(mlxn_attention(S, q, B3(MLXN_F16, 2, 32, 128), B3(MLXN_F16, 2, 32, 128), pos, &p, o), MLXN_ERR_SHAPE,
              "attention: k_cache head dim 128 does not match q's head dim 64");
    CHECK_ERR(mlxn_attention(S, q, B3(MLXN_F16, 3, 32, 64), B3(MLXN_F16, 3, 32, 64), pos, &p, o), MLXN_ERR_SHAPE,
              "attention: query heads (8) must be a multiple of KV heads (3)");
    CHECK_ERR(mlxn_attention(S, B3(MLXN_F32, 2, 8, 63), B3(MLXN_F16, 2, 32, 63), B3(MLXN_F16, 2, 32, 63), pos, &p, B3(MLXN_F32, 2, 8, 63)),
              MLXN_ERR_SHAPE, "attention: head dim 63 must be even and <= 256");
    CHECK_ERR(mlxn_attention(S, B3(MLXN_F32, 1, 2, 512), B3(MLXN_F16, 2, 4, 512), B3(MLXN_F16, 2, 4, 512), B1(MLXN_I32, 1), &p,
                             B3(MLXN_F32, 1, 2, 512)), MLXN_ERR_SHAPE, "attention: head dim 512 must be even and <= 256");
    CHECK_ERR(mlxn_attention(S, q, k, v, pos, &p, B3(MLXN_F32, 2, 8, 32)), MLXN_ERR_SHAPE, "attention: out shape [2, 8, 32] does not match q shape [2, 8, 64]");
    CHECK_ERR(mlxn_attention(S, q, k, v, B1(MLXN_I32, 3), &p, o), MLXN_ERR_SHAPE, "attention: positions has 3 elements (shape [3]), expected 2");
    CHECK_ERR(mlxn_attention(S, q, k, v, B1(MLXN_F32, 2), &p, o), MLXN_ERR_DTYPE, "attention: positions must be i32, got f32");
    CHECK_ERR(mlxn_attention(S, q, k, v, pos, &p, q), MLXN_ERR_INVALID_ARG, "attention: out must not alias q");
    CHECK_ERR(mlxn_attention(S, B2(MLXN_F32, 8, 64), k, v, pos, &p, o), MLXN_ERR_SHAPE, "attention: q must be 3-D, got shape [8, 64]");
    mlxn_attention_params b = p;
    b.scale = NAN;
    CHECK_ERR(mlxn_attention(S, q, k, v, pos, &b, o), MLXN_ERR_INVALID_ARG, "attention: scale must be finite and non-zero, got nan");
    b = p;
    b.softcap = -1;
    CHECK_ERR(mlxn_attention(S, q, k, v, pos, &b, o), MLXN_ERR_INVALID_ARG, "attention: softcap must be finite and >= 0 (0 = none), got -1");
    b = p;
    b.window = -4;
    CHECK_ERR(mlxn_attention(S, q, k, v, pos, &b, o), MLXN_ERR_INVALID_ARG, "attention: window must be >= 0 (0 = none), got -4");
    b = p;
    b.causal = 2;
    CHECK_ERR(mlxn_attention(S, q, k, v, pos, &b, o), MLXN_ERR_INVALID_ARG, "attention: causal must be 0 or 1, got 2");
    b = p;
    b.ring = 3;
    CHECK_ERR(mlxn_attention(S, q, k, v, pos, &b, o), MLXN_ERR_INVALID_ARG, "attention: ring must be 0 or 1, got 3");
    b = p;
    b.kv_len = 1;
    CHECK_ERR(mlxn_attention(S, q, k, v, NULL, &b, o), MLXN_ERR_RANGE, "attention: kv_len (1) must be >= the number of query rows T (2)");
    b.kv_len = 33;
    CHECK_ERR(mlxn_attention(S, q, k, v, NULL, &b, o), MLXN_ERR_RANGE, "attention: kv_len (33) exceeds the linear cache capacity C (32)");
    b.ring = 1;
    CHECK_OK(mlxn_attention(S, q, k, v, NULL, &b, o)); /* a ring holds the last C of more positions */
    b = p;
    b.kv_bound = 33;
    CHECK_ERR(mlxn_attention(S, q, k, v, pos, &b, o), MLXN_ERR_INVALID_ARG, "attention: kv_bound (33) must be 0 or in [1, C = 32] with a linear cache (ring = 0)");
    b.kv_bound = 16;
    b.ring = 1;
    CHECK_ERR(mlxn_attention(S, q, k, v, pos, &b, o), MLXN_ERR_INVALID_ARG, "attention: kv_bound (16) must be 0 or in [1, C = 32] with a linear cache (ring = 1)");
    b.ring = 0;
    b.kv_len = 17;
    CHECK_ERR(mlxn_attention(S, q, k, v, NULL, &b, o), MLXN_ERR_RANGE, "attention: kv_len (17) exceeds kv_bound (16)");
    b.kv_len = 16;
    CHECK_OK(mlxn_attention(S, q, k, v, NULL, &b, o));
    CHECK_ERR(mlxn_attention(S, q, k, bufd(OTHER, MLXN_F16, 3, 2, 32, 64, 0), pos, &p, o), MLXN_ERR_INVALID_ARG,
              "attention: v_cache lives on device 'ref'");
    check_session_usable();
}

static void test_kv_append_errors(void) {
    mlxn_buffer *src = B3(MLXN_F32, 3, 2, 64), *cache = B3(MLXN_F16, 2, 16, 64), *pos = B1(MLXN_I32, 3);
    CHECK_OK(mlxn_kv_append(S, src, pos, 0, cache));
    CHECK_ERR(mlxn_kv_append(NULL, src, pos, 0, cache), MLXN_ERR_INVALID_ARG, "kv_append: session is NULL");
    CHECK_ERR(mlxn_kv_append(S, NULL, pos, 0, cache), MLXN_ERR_INVALID_ARG, "kv_append: src is NULL");
    CHECK_ERR(mlxn_kv_append(S, src, NULL, 0, cache), MLXN_ERR_INVALID_ARG, "kv_append: positions is NULL");
    CHECK_ERR(mlxn_kv_append(S, src, pos, 0, NULL), MLXN_ERR_INVALID_ARG, "kv_append: cache is NULL");
    CHECK_ERR(mlxn_kv_append(S, src, B1(MLXN_I32, 2), 0, cache), MLXN_ERR_SHAPE, "kv_append: positions has 2 elements (shape [2]), expected 3");
    CHECK_ERR(mlxn_kv_append(S, src, B1(MLXN_U32, 3), 0, cache), MLXN_ERR_DTYPE, "kv_append: positions must be i32, got u32");
    CHECK_ERR(mlxn_kv_append(S, src, pos, 0, B3(MLXN_F16, 3, 16, 64)), MLXN_ERR_SHAPE,
              "kv_append: src shape [3, 2, 64] [T, Hkv, D] does not fit cache shape [3, 16, 64] [Hkv, C, D]");
    CHECK_ERR(mlxn_kv_append(S, src, pos, 0, B3(MLXN_F16, 2, 16, 32)), MLXN_ERR_SHAPE, "does not fit cache shape [2, 16, 32]");
    CHECK_ERR(mlxn_kv_append(S, src, pos, 0, B3(MLXN_I8, 2, 16, 64)), MLXN_ERR_DTYPE, "kv_append: cache must be f32, f16 or bf16, got i8");
    CHECK_ERR(mlxn_kv_append(S, B2(MLXN_F32, 3, 128), pos, 0, cache), MLXN_ERR_SHAPE, "kv_append: src must be 3-D, got shape [3, 128]");
    CHECK_ERR(mlxn_kv_append(S, src, pos, 2, cache), MLXN_ERR_INVALID_ARG, "kv_append: ring must be 0 or 1, got 2");
    CHECK_ERR(mlxn_kv_append(S, src, pos, 0, bufd(D, MLXN_F16, 3, 2, 0, 64, 0)), MLXN_ERR_SHAPE, "kv_append: cache has a zero dim (shape [2, 0, 64])");
    mlxn_buffer *alias = NULL;
    CHECK_OK(mlxn_buffer_view(cache, 0, MLXN_F16, 3, (int64_t[]){3, 2, 64}, &alias));
    CHECK_ERR(mlxn_kv_append(S, alias, pos, 0, cache), MLXN_ERR_INVALID_ARG, "kv_append: cache partially overlaps src");
    mlxn_buffer_release(alias);
    check_session_usable();
}

static void test_rope_kv_append_errors(void) {
    mlxn_buffer *q = B3(MLXN_F32, 3, 4, 64), *k = B3(MLXN_F32, 3, 2, 64), *v = B3(MLXN_F32, 3, 2, 64),
                *kc = B3(MLXN_F16, 2, 16, 64), *vc = B3(MLXN_F16, 2, 16, 64), *pos = B1(MLXN_I32, 3);
    mlxn_rope_params p = {.mode = MLXN_ROPE_HALF_SPLIT, .theta = 10000.0f};
    CHECK_OK(mlxn_rope_kv_append(S, q, k, v, pos, &p, 0, kc, vc));
    CHECK_ERR(mlxn_rope_kv_append(NULL, q, k, v, pos, &p, 0, kc, vc), MLXN_ERR_INVALID_ARG,
              "rope_kv_append: session is NULL");
    CHECK_ERR(mlxn_rope_kv_append(S, q, k, NULL, pos, &p, 0, kc, vc), MLXN_ERR_INVALID_ARG,
              "rope_kv_append: src is NULL");
    CHECK_ERR(mlxn_rope_kv_append(S, q, k, v, pos, NULL, 0, kc, vc), MLXN_ERR_INVALID_ARG,
              "rope_kv_append: params is NULL");
    CHECK_ERR(mlxn_rope_kv_append(S, q, B3(MLXN_F32, 2, 2, 64), v, pos, &p, 0, kc, vc), MLXN_ERR_SHAPE,
              "rope_kv_append: positions has 3 elements (shape [3]), expected 2");
    CHECK_ERR(mlxn_rope_kv_append(S, q, B3(MLXN_F16, 3, 2, 64), v, pos, &p, 0, kc, vc), MLXN_ERR_DTYPE,
              "rope_kv_append: k dtype f16 differs from q dtype f32");
    CHECK_ERR(mlxn_rope_kv_append(S, B3(MLXN_F32, 3, 4, 32), k, v, pos, &p, 0, kc, vc), MLXN_ERR_SHAPE,
              "rope_kv_append: q head dim 32 differs from k head dim 64");
    CHECK_ERR(mlxn_rope_kv_append(S, q, k, v, pos, &p, 0, kc, B3(MLXN_F16, 2, 16, 32)), MLXN_ERR_SHAPE,
              "rope_kv_append: src shape [3, 2, 64] [T, Hkv, D] does not fit cache shape [2, 16, 32]");
    CHECK_ERR(mlxn_rope_kv_append(S, q, k, v, pos, &p, 3, kc, vc), MLXN_ERR_INVALID_ARG,
              "rope_kv_append: ring must be 0 or 1, got 3");
    CHECK_ERR(mlxn_rope_kv_append(S, q, k, v, pos, &p, 0, kc, kc), MLXN_ERR_INVALID_ARG,
              "rope_kv_append: v_cache");
    check_session_usable();
}

/* rope_kv_attention: both parts' checks under its own name, and what ties them */
static void test_rope_kv_attention_errors(void) {
    mlxn_buffer *q = B3(MLXN_F32, 1, 4, 64), *k = B3(MLXN_F32, 1, 2, 64), *v = B3(MLXN_F32, 1, 2, 64),
                *kc = B3(MLXN_F16, 2, 16, 64), *vc = B3(MLXN_F16, 2, 16, 64), *pos = B1(MLXN_I32, 1),
                *out = B3(MLXN_F32, 1, 4, 64);
    int32_t p0 = 3;
    CHECK_OK(mlxn_buffer_upload(pos, 0, &p0, 4));
    mlxn_rope_params rp = {.mode = MLXN_ROPE_HALF_SPLIT, .theta = 10000.0f};
    mlxn_attention_params ap = {.scale = 0.125f, .causal = 1};
    CHECK_OK(mlxn_rope_kv_attention(S, q, k, v, pos, &rp, &ap, kc, vc, out));
    CHECK_ERR(mlxn_rope_kv_attention(NULL, q, k, v, pos, &rp, &ap, kc, vc, out), MLXN_ERR_INVALID_ARG,
              "rope_kv_attention: session is NULL");
    CHECK_ERR(mlxn_rope_kv_attention(S, q, k, v, pos, &rp, NULL, kc, vc, out), MLXN_ERR_INVALID_ARG,
              "rope_kv_attention: attention params is NULL");
    CHECK_ERR(mlxn_rope_kv_attention(S, q, k, v, pos, NULL, &ap, kc, vc, out), MLXN_ERR_INVALID_ARG,
              "rope_kv_attention: params is NULL");
    CHECK_ERR(mlxn_rope_kv_attention(S, q, k, v, NULL, &rp, &ap, kc, vc, out), MLXN_ERR_INVALID_ARG,
              "rope_kv_attention: positions is NULL");
    CHECK_ERR(mlxn_rope_kv_attention(S, q, k, v, pos, &rp, &ap, kc, vc, NULL), MLXN_ERR_INVALID_ARG,
              "rope_kv_attention: out is NULL");
    CHECK_ERR(mlxn_rope_kv_attention(S, q, k, v, pos, &rp, &ap, kc, vc, B3(MLXN_F32, 1, 4, 32)), MLXN_ERR_SHAPE,
              "rope_kv_attention: out shape [1, 4, 32] does not match q shape [1, 4, 64]");
    CHECK_ERR(mlxn_rope_kv_attention(S, B3(MLXN_F32, 1, 3, 64), k, v, pos, &rp, &ap, kc, vc, B3(MLXN_F32, 1, 3, 64)),
              MLXN_ERR_SHAPE, "rope_kv_attention: query heads (3) must be a multiple of KV heads (2)");
    mlxn_attention_params bad = ap;
    bad.ring = 2;
    CHECK_ERR(mlxn_rope_kv_attention(S, q, k, v, pos, &rp, &bad, kc, vc, out), MLXN_ERR_INVALID_ARG,
              "rope_kv_attention: ring must be 0 or 1, got 2");
    bad = ap;
    bad.scale = 0.0f;
    CHECK_ERR(mlxn_rope_kv_attention(S, q, k, v, pos, &rp, &bad, kc, vc, out), MLXN_ERR_INVALID_ARG,
              "rope_kv_attention: scale must be finite and non-zero, got 0");
    mlxn_buffer *big = B1(MLXN_F32, 256), *ok = NULL, *oo = NULL; /* out over k's bytes */
    CHECK_OK(mlxn_buffer_view(big, 0, MLXN_F32, 3, (int64_t[]){1, 2, 64}, &ok));
    CHECK_OK(mlxn_buffer_view(big, 0, MLXN_F32, 3, (int64_t[]){1, 4, 64}, &oo));
    CHECK_ERR(mlxn_rope_kv_attention(S, q, ok, v, pos, &rp, &ap, kc, vc, oo), MLXN_ERR_INVALID_ARG,
              "rope_kv_attention: out");
    mlxn_buffer_release(ok);
    mlxn_buffer_release(oo);
    mlxn_buffer *kq = NULL; /* k over q's bytes */
    CHECK_OK(mlxn_buffer_view(q, 0, MLXN_F32, 3, (int64_t[]){1, 2, 64}, &kq));
    CHECK_ERR(mlxn_rope_kv_attention(S, q, kq, v, pos, &rp, &ap, kc, vc, out), MLXN_ERR_INVALID_ARG,
              "rope_kv_attention: k");
    mlxn_buffer_release(kq);
    check_session_usable();
}

static void test_im2col_errors(void) {
    mlxn_buffer *img = B3(MLXN_F32, 3, 32, 48), *out = B2(MLXN_F32, 24, 192);
    CHECK_OK(mlxn_im2col_2d_3ch(S, img, 8, out));
    CHECK_ERR(mlxn_im2col_2d_3ch(NULL, img, 8, out), MLXN_ERR_INVALID_ARG, "im2col_2d_3ch: session is NULL");
    CHECK_ERR(mlxn_im2col_2d_3ch(S, NULL, 8, out), MLXN_ERR_INVALID_ARG, "im2col_2d_3ch: image is NULL");
    CHECK_ERR(mlxn_im2col_2d_3ch(S, img, 8, NULL), MLXN_ERR_INVALID_ARG, "im2col_2d_3ch: out is NULL");
    CHECK_ERR(mlxn_im2col_2d_3ch(S, img, 0, out), MLXN_ERR_INVALID_ARG, "im2col_2d_3ch: H (32), W (48) and patch_size (0) must all be > 0");
    CHECK_ERR(mlxn_im2col_2d_3ch(S, img, -8, out), MLXN_ERR_INVALID_ARG, "must all be > 0");
    CHECK_ERR(mlxn_im2col_2d_3ch(S, bufd(D, MLXN_F32, 3, 3, 0, 48, 0), 8, out), MLXN_ERR_INVALID_ARG,
              "im2col_2d_3ch: H (0), W (48) and patch_size (8) must all be > 0");
    CHECK_ERR(mlxn_im2col_2d_3ch(S, bufd(D, MLXN_F32, 3, 3, 16, 0, 0), 8, out), MLXN_ERR_INVALID_ARG, "W (0)");
    CHECK_ERR(mlxn_im2col_2d_3ch(S, B3(MLXN_F32, 3, 17, 16), 8, out), MLXN_ERR_SHAPE,
              "im2col_2d_3ch: pixel grid (17x16) must be divisible by patch_size (8)");
    CHECK_ERR(mlxn_im2col_2d_3ch(S, B3(MLXN_F32, 3, 16, 20), 8, out), MLXN_ERR_SHAPE, "pixel grid (16x20) must be divisible by patch_size (8)");
    CHECK_ERR(mlxn_im2col_2d_3ch(S, B3(MLXN_F32, 1, 32, 48), 8, out), MLXN_ERR_SHAPE,
              "im2col_2d_3ch: pixel buffer too small: expected 18432 bytes ([3, 32, 48] f32), got 6144 bytes");
    CHECK_ERR(mlxn_im2col_2d_3ch(S, img, 8, B2(MLXN_F32, 23, 192)), MLXN_ERR_SHAPE,
              "im2col_2d_3ch: output buffer too small: expected 18432 bytes ([24, 192] f32), got 17664 bytes");
    CHECK_ERR(mlxn_im2col_2d_3ch(S, img, 8, B2(MLXN_F32, 192, 24)), MLXN_ERR_SHAPE, "im2col_2d_3ch: out shape [192, 24], expected");
    CHECK_ERR(mlxn_im2col_2d_3ch(S, img, 8, B2(MLXN_F16, 24, 192)), MLXN_ERR_DTYPE, "im2col_2d_3ch: out must be f32, got f16");
    CHECK_ERR(mlxn_im2col_2d_3ch(S, B3(MLXN_BF16, 3, 32, 48), 8, out), MLXN_ERR_DTYPE, "im2col_2d_3ch: image must be f32, got bf16");
    CHECK_ERR(mlxn_im2col_2d_3ch(S, B3(MLXN_F32, 4, 32, 48), 8, out), MLXN_ERR_SHAPE, "im2col_2d_3ch: image has 4 channels, expected 3");
    CHECK_ERR(mlxn_im2col_2d_3ch(S, B2(MLXN_F32, 32, 48), 8, out), MLXN_ERR_SHAPE, "im2col_2d_3ch: image must be 3-D, got shape [32, 48]");
    CHECK_ERR(mlxn_im2col_2d_3ch(S, bufd(OTHER, MLXN_F32, 3, 3, 32, 48, 0), 8, out), MLXN_ERR_INVALID_ARG,
              "im2col_2d_3ch: image lives on device 'ref'");
    check_session_usable();
}

/* matmul / embedding / dequantize: argument checks of src/ops/ops_matmul.c */
static void test_weight_op_errors(void) {
    mlxn_buffer *wd = B2(MLXN_F32, 16, 32);
    mlxn_weight_desc desc = {.format = MLXN_WEIGHT_DENSE, .rows = 16, .cols = 32, .data = wd, .name = "w"};
    mlxn_weight *w = NULL;
    CHECK_OK(mlxn_weight_create(&desc, &w));
    if (!w) return;
    mlxn_buffer *x = B2(MLXN_F32, 3, 32), *y = B2(MLXN_F32, 3, 16), *ids = B1(MLXN_I32, 3), *e = B2(MLXN_F32, 3, 32);
    CHECK_ERR(mlxn_matmul(NULL, x, w, y), MLXN_ERR_INVALID_ARG, "matmul: session is NULL");
    CHECK_ERR(mlxn_matmul(S, x, NULL, y), MLXN_ERR_INVALID_ARG, "matmul: weight is NULL");
    CHECK_ERR(mlxn_matmul(S, B2(MLXN_F32, 3, 31), w, y), MLXN_ERR_SHAPE, "matmul: x's last dim 31 does not match weight 'w' cols 32");
    CHECK_ERR(mlxn_matmul(S, x, w, B2(MLXN_F32, 3, 15)), MLXN_ERR_SHAPE, "matmul: y shape [3, 15], expected [M, N] = [3, 16]");
    CHECK_ERR(mlxn_matmul(S, B2(MLXN_F16, 3, 32), w, y), MLXN_ERR_DTYPE, "matmul: x must be f32, got f16");
    CHECK_ERR(mlxn_matmul(S, x, w, B2(MLXN_BF16, 3, 16)), MLXN_ERR_DTYPE, "matmul: y must be f32, got bf16");
    CHECK_ERR(mlxn_matmul(S, B1(MLXN_F32, 32), w, y), MLXN_ERR_SHAPE, "matmul: x must be 2-D, got shape [32]");
    CHECK_ERR(mlxn_matmul(S, bufd(D, MLXN_F32, 2, 0, 32, 0, 0), w, y), MLXN_ERR_SHAPE, "matmul: x has a zero dim");
    CHECK_ERR(mlxn_embedding(S, w, bufd(D, MLXN_F32, 1, 3, 0, 0, 0), e), MLXN_ERR_DTYPE, "embedding: ids must be i32, got f32");
    CHECK_ERR(mlxn_embedding(S, w, ids, B2(MLXN_F32, 3, 31)), MLXN_ERR_SHAPE, "embedding: y shape [3, 31], expected [T, K] = [3, 32]");
    CHECK_ERR(mlxn_embedding(S, w, ids, B2(MLXN_I32, 3, 32)), MLXN_ERR_DTYPE, "embedding: y must be f32, f16 or bf16, got i32");
    CHECK_ERR(mlxn_embedding(S, NULL, ids, e), MLXN_ERR_INVALID_ARG, "embedding: weight is NULL");
    CHECK_ERR(mlxn_dequantize(S, w, B2(MLXN_F32, 16, 31)), MLXN_ERR_SHAPE, "dequantize: y shape [16, 31], expected [N, K] = [16, 32]");
    CHECK_ERR(mlxn_dequantize(S, w, wd), MLXN_ERR_INVALID_ARG, "dequantize: y must not alias weight data");
    mlxn_weight *wo = NULL;
    mlxn_weight_desc od = desc;
    od.data = bufd(OTHER, MLXN_F32, 2, 16, 32, 0, 0);
    CHECK_OK(mlxn_weight_create(&od, &wo));
    CHECK_ERR(mlxn_matmul(S, x, wo, y), MLXN_ERR_INVALID_ARG, "matmul: weight 'w' data lives on device 'ref'");
    mlxn_weight_destroy(wo);
    mlxn_weight_destroy(w);
    check_session_usable();
}

static void test_matmul_fused_errors(void) {
    mlxn_buffer *wd = B2(MLXN_F32, 16, 32);
    mlxn_weight_desc desc = {.format = MLXN_WEIGHT_DENSE, .rows = 16, .cols = 32, .data = wd, .name = "wgu"};
    mlxn_weight *w = NULL;
    CHECK_OK(mlxn_weight_create(&desc, &w));
    if (!w) return;
    mlxn_buffer *x = B2(MLXN_F32, 2, 32), *nw = B1(MLXN_F32, 32), *y = B2(MLXN_F32, 2, 8), *res = B2(MLXN_F32, 2, 8);
    mlxn_buffer *xs = B2(MLXN_F32, 2, 32), *ys = B2(MLXN_F32, 2, 16);
    mlxn_matmul_fusion f = {.norm = nw, .norm_eps = 1e-5f, .swiglu = 1, .residual = res, .x_scratch = xs, .y_scratch = ys};
    CHECK_OK(mlxn_matmul_fused(S, x, w, &f, y));
    CHECK_OK(mlxn_matmul_fused(S, x, w, &(mlxn_matmul_fusion){.norm = nw, .swiglu = 1, .residual = y, .x_scratch = xs,
                                                               .y_scratch = ys}, y));
    CHECK_ERR(mlxn_matmul_fused(S, x, w, NULL, y), MLXN_ERR_INVALID_ARG, "matmul_fused: fusion parameters are NULL");
    CHECK_ERR(mlxn_matmul_fused(NULL, x, w, &f, y), MLXN_ERR_INVALID_ARG, "matmul_fused: session is NULL");
    CHECK_ERR(mlxn_matmul_fused(S, x, w, &f, B2(MLXN_F32, 2, 16)), MLXN_ERR_SHAPE,
              "matmul_fused: y shape [2, 16], expected [M, rows/2] = [2, 8]");
    mlxn_matmul_fusion g = f;
    g.x_scratch = NULL;
    CHECK_ERR(mlxn_matmul_fused(S, x, w, &g, y), MLXN_ERR_INVALID_ARG, "matmul_fused: norm needs x_scratch [2, 32] f32");
    g = f;
    g.y_scratch = NULL;
    CHECK_ERR(mlxn_matmul_fused(S, x, w, &g, y), MLXN_ERR_INVALID_ARG, "matmul_fused: swiglu needs y_scratch [2, 16] f32");
    g = f;
    g.y_scratch = B2(MLXN_F32, 2, 8);
    CHECK_ERR(mlxn_matmul_fused(S, x, w, &g, y), MLXN_ERR_SHAPE, "matmul_fused: y_scratch shape [2, 8], expected [M, rows] = [2, 16]");
    g = f;
    g.norm = B1(MLXN_F32, 31);
    CHECK_ERR(mlxn_matmul_fused(S, x, w, &g, y), MLXN_ERR_SHAPE, "matmul_fused: norm shape [31], expected [K] = [32]");
    g = f;
    g.norm_eps = -1.0f;
    CHECK_ERR(mlxn_matmul_fused(S, x, w, &g, y), MLXN_ERR_INVALID_ARG, "matmul_fused: norm_eps must be finite and >= 0, got -1");
    g = f;
    g.swiglu = 2;
    CHECK_ERR(mlxn_matmul_fused(S, x, w, &g, y), MLXN_ERR_INVALID_ARG, "matmul_fused: swiglu must be 0 or 1, got 2");
    g = f;
    g.residual = B2(MLXN_F32, 2, 16);
    CHECK_ERR(mlxn_matmul_fused(S, x, w, &g, y), MLXN_ERR_SHAPE, "matmul_fused: residual shape [2, 16], expected [M, N] = y's shape [2, 8]");
    g = f;
    g.x_scratch = x;
    CHECK_ERR(mlxn_matmul_fused(S, x, w, &g, y), MLXN_ERR_INVALID_ARG, "matmul_fused: x_scratch must not alias x");
    g = f;
    g.y_scratch = ys;
    g.swiglu = 0;
    g.residual = B2(MLXN_F32, 2, 16);
    CHECK_ERR(mlxn_matmul_fused(S, x, w, &g, ys), MLXN_ERR_INVALID_ARG, "matmul_fused: y_scratch must not alias y");
    /* odd row count with swiglu */
    mlxn_weight_desc od = {.format = MLXN_WEIGHT_DENSE, .rows = 15, .cols = 32, .data = B2(MLXN_F32, 15, 32), .name = "w15"};
    mlxn_weight *w15 = NULL;
    CHECK_OK(mlxn_weight_create(&od, &w15));
    CHECK_ERR(mlxn_matmul_fused(S, x, w15, &f, y), MLXN_ERR_SHAPE,
              "matmul_fused: swiglu needs an even row count ([gate; up]); weight 'w15' has 15");
    mlxn_weight_destroy(w15);
    mlxn_weight_destroy(w);
    check_session_usable();
}


/* The same four mistakes applied to every op: the main input in a dtype the
 * op does not take, an output one row too small, a zero dim in the main
 * input, and a NULL output. Each must fail with the expected code and a
 * message that starts with the op's name. */
enum { M_DTYPE, M_SMALL, M_ZERO, M_NULL, M_COUNT };
static const char *mistake_name[M_COUNT] = {"wrong dtype", "output too small", "zero dim", "NULL output"};

static mlxn_status call_op(int op, int mistake, const char **name) {
    int d = mistake == M_DTYPE, small = mistake == M_SMALL, zero = mistake == M_ZERO, null = mistake == M_NULL;
    mlxn_dtype ft = d ? MLXN_I32 : MLXN_F32;
    int64_t R = zero ? 0 : 4;
    mlxn_buffer *x = bufd(D, ft, 2, R, 16, 0, 0), *x2 = bufd(D, MLXN_F32, 2, 4, 16, 0, 0);
    mlxn_buffer *y = null ? NULL : bufd(D, MLXN_F32, 2, small ? 3 : 4, 16, 0, 0);
    mlxn_buffer *pos = B1(MLXN_I32, 4), *w = B1(MLXN_F32, 16);
    mlxn_rope_params rp = {.mode = MLXN_ROPE_ADJACENT, .theta = 10000.0f};
    mlxn_attention_params ap = {.scale = 0.25f, .causal = 1, .kv_len = 4};
    switch (op) {
    case 0: *name = "add"; return mlxn_add(S, x, x2, y);
    case 1: *name = "mul"; return mlxn_mul(S, x, x2, y);
    case 2: *name = "scale"; return mlxn_scale(S, x, 2.0f, y);
    case 3: *name = "silu"; return mlxn_silu(S, x, y);
    case 4: *name = "gelu"; return mlxn_gelu(S, x, MLXN_GELU_TANH, y);
    case 5: *name = "silu_mul"; return mlxn_silu_mul(S, x, x2, y);
    case 6: *name = "gelu_mul"; return mlxn_gelu_mul(S, x, x2, MLXN_GELU_ERF, y);
    case 7: *name = "softcap"; return mlxn_softcap(S, x, 3.0f, y);
    case 8: *name = "cast"; return mlxn_cast(S, x, y);
    case 9: *name = "rms_norm"; return mlxn_rms_norm(S, x, w, 1e-5f, y);
    case 10: *name = "rms_norm_residual"; return mlxn_rms_norm_residual(S, x, x2, w, 1e-5f, B2(MLXN_F32, 4, 16), y);
    case 11: *name = "layer_norm"; return mlxn_layer_norm(S, x, w, w, 1e-5f, y);
    case 12: *name = "l2_norm"; return mlxn_l2_norm(S, x, 1e-6f, y);
    case 13: *name = "softmax"; return mlxn_softmax(S, x, NULL, 1.0f, y);
    case 14: *name = "argmax"; return mlxn_argmax(S, x, null ? NULL : bufd(D, MLXN_I32, 1, small ? 3 : 4, 0, 0, 0));
    case 15: *name = "topk"; return mlxn_topk(S, x, 2, NULL, null ? NULL : bufd(D, MLXN_I32, 2, small ? 3 : 4, 2, 0, 0));
    case 16: {
        *name = "rope";
        mlxn_buffer *x3 = bufd(D, ft, 3, R, 2, 8, 0);
        return mlxn_rope(S, x3, pos, &rp, null ? NULL : bufd(D, MLXN_F32, 3, small ? 3 : 4, 2, 8, 0));
    }
    case 17: {
        *name = "attention";
        mlxn_buffer *q = bufd(D, ft, 3, R, 2, 8, 0), *k = bufd(D, MLXN_F32, 3, 1, 8, 8, 0);
        return mlxn_attention(S, q, k, k, NULL, &ap, null ? NULL : bufd(D, MLXN_F32, 3, small ? 3 : 4, 2, 8, 0));
    }
    case 18: {
        *name = "kv_append";
        mlxn_buffer *src = bufd(D, d ? MLXN_I32 : MLXN_F32, 3, R, 1, 8, 0);
        return mlxn_kv_append(S, src, pos, 0, null ? NULL : bufd(D, MLXN_F32, 3, small ? 2 : 1, 8, 8, 0));
    }
    case 19: {
        *name = "im2col_2d_3ch";
        mlxn_buffer *img = bufd(D, ft, 3, 3, zero ? 0 : 8, 8, 0);
        return mlxn_im2col_2d_3ch(S, img, 4, null ? NULL : bufd(D, MLXN_F32, 2, small ? 3 : 4, 48, 0, 0));
    }
    }
    *name = "?";
    return MLXN_OK;
}

static void test_every_op_mistakes(void) {
    for (int op = 0; op < 20; op++) {
        for (int m = 0; m < M_COUNT; m++) {
            const char *name = "";
            mlxn_status st = call_op(op, m, &name);
            mlxn_status want = m == M_DTYPE ? MLXN_ERR_DTYPE : m == M_NULL ? MLXN_ERR_INVALID_ARG : MLXN_ERR_SHAPE;
            if (op == 18 && m == M_SMALL) want = MLXN_ERR_SHAPE; /* cache [2, 8, 8] does not fit src's one KV head */
            if (op == 19 && m == M_ZERO) want = MLXN_ERR_INVALID_ARG; /* "... must all be > 0" */
            char prefix[64];
            snprintf(prefix, sizeof prefix, "%s: ", name);
            CHECK_MSG(st == want, "%s with %s -> %s, expected %s (%s)", name, mistake_name[m], mlxn_status_name(st),
                      mlxn_status_name(want), mlxn_last_error());
            CHECK_MSG(strncmp(mlxn_last_error(), prefix, strlen(prefix)) == 0, "%s with %s: message '%s' does not start with '%s'",
                      name, mistake_name[m], mlxn_last_error(), prefix);
        }
        release_kept();
    }
    check_session_usable();
}

int main(void) {
    if (mlxn_device_open("cpu", NULL, &D) != MLXN_OK || mlxn_device_open("ref", NULL, &OTHER) != MLXN_OK ||
        mlxn_session_begin(D, &S) != MLXN_OK) {
        fprintf(stderr, "setup failed: %s\n", mlxn_last_error());
        return 1;
    }
    T_RUN(test_elementwise_errors);
    T_RUN(test_norm_errors);
    T_RUN(test_rope_errors);
    T_RUN(test_softmax_errors);
    T_RUN(test_attention_errors);
    T_RUN(test_kv_append_errors);
    T_RUN(test_rope_kv_append_errors);
    T_RUN(test_rope_kv_attention_errors);
    T_RUN(test_im2col_errors);
    T_RUN(test_weight_op_errors);
    T_RUN(test_matmul_fused_errors);
    T_RUN(test_every_op_mistakes);
    release_kept();
    mlxn_session_destroy(S);
    mlxn_device_close(D);
    mlxn_device_close(OTHER);
    return t_finish();
}
