/* cuda_ops_basic.c — launchers for the small CUDA ops (kernels in
 * kernels/elementwise.cu): elementwise arithmetic and activations, cast, the
 * normalisations, RoPE, softmax, argmax, top-k, KV-cache append, the fused
 * RoPE + KV-cache append of a decode step, and im2col,
 * plus the backend's op table. Arguments were validated by src/ops/; these
 * functions only size grids (by tensor bounds, never by values read from the
 * device, so captured graphs stay valid) and pack kernel parameters. */
#include "backend/cuda/cuda_internal.h"

#include <limits.h>
#include <math.h>
#include <string.h>

#define EWSRC "elementwise.cu"

static unsigned grid_for(mlxn_session *s, int64_t n, unsigned block) {
    mlxn_cuda_dev *cd = mlxn_cuda_dev_of(s);
    int64_t g = (n + block - 1) / block;
    int64_t cap = (int64_t)cd->sm_count * 16;
    if (g > cap) g = cap;
    if (g < 1) g = 1;
    return (unsigned)g;
}

static int64_t numel(const mlxn_buffer *b) { return mlxn_numel(b->ndim, b->shape); }

mlxn_status mlxn_cuda_op_elementwise(mlxn_session *s, const mlxn_op *op) {
    int code;
    switch (op->kind) {
    case MLXN_OP_ADD: code = 0; break;
    case MLXN_OP_MUL: code = 1; break;
    case MLXN_OP_SCALE: code = 2; break;
    case MLXN_OP_SILU: code = 3; break;
    case MLXN_OP_GELU: code = 4; break;
    case MLXN_OP_SILU_MUL: code = 5; break;
    case MLXN_OP_GELU_MUL: code = 6; break;
    case MLXN_OP_SOFTCAP: code = 7; break;
    default: return mlxn_set_error(MLXN_ERR_INTERNAL, "cuda: %s is not an elementwise op", mlxn_op_name(op->kind));
    }
    int dt = (int)op->in[0]->dtype;
    CUdeviceptr a = mlxn_cuda_addr(op->in[0]), b = mlxn_cuda_addr(op->in[1]), y = mlxn_cuda_addr(op->out[0]);
    long long n = numel(op->in[0]);
    long long bn = op->in[1] ? numel(op->in[1]) : n;
    float f0 = op->f[0];
    int i0 = op->i[0];
    void *args[] = {&code, &dt, &a, &b, &y, &n, &bn, &f0, &i0};
    return mlxn_cuda_launch(s, EWSRC, "ew_kernel", grid_for(s, n, 256), 1, 1, 256, 0, args);
}

mlxn_status mlxn_cuda_op_cast(mlxn_session *s, const mlxn_op *op) {
    int sdt = (int)op->in[0]->dtype, ddt = (int)op->out[0]->dtype;
    CUdeviceptr x = mlxn_cuda_addr(op->in[0]), y = mlxn_cuda_addr(op->out[0]);
    long long n = numel(op->in[0]);
    void *args[] = {&sdt, &ddt, &x, &y, &n};
    return mlxn_cuda_launch(s, EWSRC, "cast_kernel", grid_for(s, n, 256), 1, 1, 256, 0, args);
}

mlxn_status mlxn_cuda_op_copy(mlxn_session *s, const mlxn_op *op) {
    CUdeviceptr x = mlxn_cuda_addr(op->in[0]), y = mlxn_cuda_addr(op->out[0]);
    long long n = (long long)mlxn_buffer_nbytes(op->in[0]);
    void *args[] = {&x, &y, &n};
    return mlxn_cuda_launch(s, EWSRC, "copy_kernel", grid_for(s, (n + 15) / 16, 256), 1, 1, 256, 0, args);
}

mlxn_status mlxn_cuda_op_norm(mlxn_session *s, const mlxn_op *op) {
    int kind;
    const mlxn_buffer *x = op->in[0], *res = NULL, *w = NULL, *bias = NULL;
    mlxn_buffer *sum = NULL, *y = op->out[0];
    switch (op->kind) {
    case MLXN_OP_RMS_NORM: kind = 0; w = op->in[1]; break;
    case MLXN_OP_RMS_NORM_RESIDUAL:
        kind = 1;
        res = op->in[1];
        w = op->in[2];
        sum = op->out[0];
        y = op->out[1];
        break;
    case MLXN_OP_LAYER_NORM: kind = 2; w = op->in[1]; bias = op->in[2]; break;
    case MLXN_OP_L2_NORM: kind = 3; break;
    default: return mlxn_set_error(MLXN_ERR_INTERNAL, "cuda: %s is not a norm", mlxn_op_name(op->kind));
    }
    int64_t rows, cols;
    mlxn_buffer_rows_cols(x, &rows, &cols);
    if (rows > INT_MAX || cols > INT_MAX)
        return mlxn_set_error(MLXN_ERR_UNSUPPORTED, "%s (cuda): %lld rows of %lld exceed the kernel's int range",
                              mlxn_op_name(op->kind), (long long)rows, (long long)cols);
    int dt = (int)x->dtype, wdt = w ? (int)w->dtype : (bias ? (int)bias->dtype : dt);
    CUdeviceptr px = mlxn_cuda_addr(x), pr = mlxn_cuda_addr(res), pw = mlxn_cuda_addr(w), pb = mlxn_cuda_addr(bias),
                ps = mlxn_cuda_addr(sum), py = mlxn_cuda_addr(y);
    int D = (int)cols;
    float eps = op->f[0];
    /* one-pass f32 kernel: NORM_V (elementwise.cu) float4s per thread */
    int64_t d4 = cols / 4, per = (d4 + 3) / 4;
    if (kind <= 1 && dt == MLXN_F32 && cols % 4 == 0 && per <= 1024 && ((px | pr | ps | py) & 15) == 0) {
        unsigned nt = (unsigned)((per + 31) / 32 * 32);
        void *vargs[] = {&kind, &wdt, &px, &pr, &pw, &ps, &py, &D, &eps};
        return mlxn_cuda_launch(s, EWSRC, "norm_f32v_kernel", (unsigned)rows, 1, 1, nt, 0, vargs);
    }
    unsigned block = cols >= 1024 ? 512 : cols >= 256 ? 256 : 128;
    void *args[] = {&kind, &dt, &wdt, &px, &pr, &pw, &pb, &ps, &py, &D, &eps};
    return mlxn_cuda_launch(s, EWSRC, "norm_kernel", (unsigned)rows, 1, 1, block, 0, args);
}

mlxn_status mlxn_cuda_op_rope(mlxn_session *s, const mlxn_op *op) {
    const mlxn_buffer *x = op->in[0];
    const mlxn_rope_params *p = &op->p.rope;
    int T = (int)x->shape[0], H = (int)x->shape[1], D = (int)x->shape[2];
    int rot = p->rot_dims > 0 ? p->rot_dims : D;
    int dt = (int)x->dtype, mode = (int)p->mode, scaling = (int)p->scaling;
    double theta = p->theta, factor = p->factor, lff = p->low_freq_factor, hff = p->high_freq_factor,
           omp = p->original_max_pos;
    CUdeviceptr px = mlxn_cuda_addr(x), pp = mlxn_cuda_addr(op->in[1]), py = mlxn_cuda_addr(op->out[0]);
    int64_t per = rot / 2 + (px != py ? D - rot : 0);
    int64_t hgroups = (H + 7) / 8; /* ROPE_HG in elementwise.cu */
    void *args[] = {&dt, &px, &pp, &py, &T, &H, &D, &rot, &mode, &theta, &scaling, &factor, &lff, &hff, &omp};
    return mlxn_cuda_launch(s, EWSRC, "rope_kernel", grid_for(s, (int64_t)T * hgroups * per, 128), 1, 1, 128, 0,
                            args);
}

mlxn_status mlxn_cuda_op_softmax(mlxn_session *s, const mlxn_op *op) {
    int64_t M, N;
    mlxn_buffer_rows_cols(op->in[0], &M, &N);
    const mlxn_buffer *mask = op->in[1];
    int mask_rows = mask ? (int)(numel(mask) / N) : 0;
    CUdeviceptr px = mlxn_cuda_addr(op->in[0]), pm = mlxn_cuda_addr(mask), py = mlxn_cuda_addr(op->out[0]);
    int n = (int)N;
    float scale = op->f[0];
    unsigned block = N >= 2048 ? 1024 : N >= 256 ? 256 : 128;
    void *args[] = {&px, &pm, &mask_rows, &py, &n, &scale};
    return mlxn_cuda_launch(s, EWSRC, "softmax_kernel", (unsigned)M, 1, 1, block, 0, args);
}

mlxn_status mlxn_cuda_op_argmax(mlxn_session *s, const mlxn_op *op) {
    int64_t M, N;
    mlxn_buffer_rows_cols(op->in[0], &M, &N);
    CUdeviceptr px = mlxn_cuda_addr(op->in[0]), pi = mlxn_cuda_addr(op->out[0]);
    int n = (int)N;
    unsigned block = N >= 4096 ? 1024 : N >= 256 ? 256 : 64;
    void *args[] = {&px, &pi, &n};
    return mlxn_cuda_launch(s, EWSRC, "argmax_kernel", (unsigned)M, 1, 1, block, 0, args);
}

mlxn_status mlxn_cuda_op_topk(mlxn_session *s, const mlxn_op *op) {
    int64_t M, N;
    mlxn_buffer_rows_cols(op->in[0], &M, &N);
    CUdeviceptr px = mlxn_cuda_addr(op->in[0]), pv = mlxn_cuda_addr(op->out[0]), pi = mlxn_cuda_addr(op->out[1]);
    int n = (int)N, k = op->i[0];
    unsigned block = N >= 4096 ? 1024 : N >= 256 ? 256 : 64;
    void *args[] = {&px, &pv, &pi, &n, &k};
    return mlxn_cuda_launch(s, EWSRC, "topk_kernel", (unsigned)M, 1, 1, block, 0, args);
}

mlxn_status mlxn_cuda_op_kv_append(mlxn_session *s, const mlxn_op *op) {
    const mlxn_buffer *src = op->in[0];
    mlxn_buffer *cache = op->out[0];
    int T = (int)src->shape[0], H = (int)src->shape[1], D = (int)src->shape[2];
    long long C = cache->shape[1];
    int sdt = (int)src->dtype, cdt = (int)cache->dtype, ring = op->i[0];
    CUdeviceptr ps = mlxn_cuda_addr(src), pp = mlxn_cuda_addr(op->in[1]), pc = mlxn_cuda_addr(cache);
    CUdeviceptr err = mlxn_cuda_sess_of(s)->err_word;
    void *args[] = {&sdt, &cdt, &ps, &pp, &pc, &T, &H, &D, &C, &ring, &err};
    unsigned rows = T < 65535 ? (unsigned)T : 65535u; /* one block per row (grid-stride) */
    return mlxn_cuda_launch(s, EWSRC, "kv_append_kernel", rows, 1, 1, 256, 0, args);
}

/* Inverse frequency of rotated pair k: the same f64 formula as rope_kernel
 * (elementwise.cu) and the reference. */
double mlxn_cuda_rope_inv_freq(const mlxn_rope_params *p, int rot, int k) {
    double inv = pow((double)p->theta, -2.0 * k / (double)rot);
    if (p->scaling == MLXN_ROPE_SCALING_LINEAR) {
        inv /= (double)p->factor;
    } else if (p->scaling == MLXN_ROPE_SCALING_LLAMA3) {
        const double PI = 3.14159265358979323846;
        double omp = (double)p->original_max_pos, lff = p->low_freq_factor, hff = p->high_freq_factor;
        double wavelen = 2.0 * PI / inv, low_wl = omp / lff, high_wl = omp / hff;
        if (wavelen < high_wl) {
        } else if (wavelen > low_wl) {
            inv = inv / (double)p->factor;
        } else {
            double smooth = (omp / wavelen - lff) / (hff - lff);
            inv = (1.0 - smooth) * inv / (double)p->factor + smooth * inv;
        }
    }
    return inv;
}

/* Mirrors struct RopeFreqs in elementwise.cu. */
typedef struct {
    double inv[128];
} rope_freqs;

#define ROPE_KV_TMAX 8 /* one launch up to this many rows; longer prefills take the four ops */

mlxn_status mlxn_cuda_op_rope_kv_append(mlxn_session *s, const mlxn_op *op) {
    const mlxn_buffer *q = op->in[0], *k = op->in[1], *v = op->in[2], *pos = op->in[3];
    mlxn_buffer *kc = op->out[0], *vc = op->out[1];
    const mlxn_rope_params *p = &op->p.rope;
    int T = (int)q->shape[0], Hq = (int)q->shape[1], Hkv = (int)k->shape[1], D = (int)q->shape[2];
    int rot = p->rot_dims, ring = op->i[0];
    if (T > ROPE_KV_TMAX || rot / 2 > 128) {
        mlxn_op o = {.kind = MLXN_OP_ROPE, .in = {q, pos}, .out = {(mlxn_buffer *)q}};
        o.p.rope = *p;
        MLXN_TRY(mlxn_cuda_op_rope(s, &o));
        o.in[0] = k;
        o.out[0] = (mlxn_buffer *)k;
        MLXN_TRY(mlxn_cuda_op_rope(s, &o));
        mlxn_op a = {.kind = MLXN_OP_KV_APPEND, .in = {k, pos}, .out = {kc}, .i = {ring}};
        MLXN_TRY(mlxn_cuda_op_kv_append(s, &a));
        a.in[0] = v;
        a.out[0] = vc;
        return mlxn_cuda_op_kv_append(s, &a);
    }
    rope_freqs f;
    memset(&f, 0, sizeof f);
    for (int i = 0; i < rot / 2; i++) f.inv[i] = mlxn_cuda_rope_inv_freq(p, rot, i);
    int dt = (int)q->dtype, vdt = (int)v->dtype, kcdt = (int)kc->dtype, vcdt = (int)vc->dtype, mode = (int)p->mode;
    long long C = kc->shape[1];
    CUdeviceptr pq = mlxn_cuda_addr(q), pk = mlxn_cuda_addr(k), pv = mlxn_cuda_addr(v), pp = mlxn_cuda_addr(pos),
                pkc = mlxn_cuda_addr(kc), pvc = mlxn_cuda_addr(vc), err = mlxn_cuda_sess_of(s)->err_word;
    void *args[] = {&f, &dt, &pq, &pk, &vdt, &pv, &pp, &kcdt, &pkc, &vcdt, &pvc, &T, &Hq, &Hkv, &D, &rot, &mode, &C,
                    &ring, &err};
    int64_t items = (int64_t)(Hq + Hkv) * (rot / 2) + (int64_t)Hkv * (D - rot) + (int64_t)Hkv * D;
    unsigned bx = (unsigned)((items + 255) / 256);
    return mlxn_cuda_launch(s, EWSRC, "rope_kv_kernel", bx, (unsigned)T, 1, 256, 0, args);
}

mlxn_status mlxn_cuda_op_im2col(mlxn_session *s, const mlxn_op *op) {
    const mlxn_buffer *img = op->in[0];
    int H = (int)img->shape[1], W = (int)img->shape[2], p = op->i[0];
    CUdeviceptr pi = mlxn_cuda_addr(img), po = mlxn_cuda_addr(op->out[0]);
    void *args[] = {&pi, &po, &H, &W, &p};
    return mlxn_cuda_launch(s, EWSRC, "im2col_kernel", grid_for(s, numel(op->out[0]), 256), 1, 1, 256, 0, args);
}

void mlxn_cuda_register_ops(mlxn_backend_ops *ops) {
    for (int k = MLXN_OP_ADD; k <= MLXN_OP_SOFTCAP; k++) ops->op[k] = mlxn_cuda_op_elementwise;
    ops->op[MLXN_OP_CAST] = mlxn_cuda_op_cast;
    ops->op[MLXN_OP_COPY] = mlxn_cuda_op_copy;
    ops->op[MLXN_OP_RMS_NORM] = mlxn_cuda_op_norm;
    ops->op[MLXN_OP_RMS_NORM_RESIDUAL] = mlxn_cuda_op_norm;
    ops->op[MLXN_OP_LAYER_NORM] = mlxn_cuda_op_norm;
    ops->op[MLXN_OP_L2_NORM] = mlxn_cuda_op_norm;
    ops->op[MLXN_OP_ROPE] = mlxn_cuda_op_rope;
    ops->op[MLXN_OP_SOFTMAX] = mlxn_cuda_op_softmax;
    ops->op[MLXN_OP_ARGMAX] = mlxn_cuda_op_argmax;
    ops->op[MLXN_OP_TOPK] = mlxn_cuda_op_topk;
    ops->op[MLXN_OP_EMBEDDING] = mlxn_cuda_op_embedding;
    ops->op[MLXN_OP_MATMUL] = mlxn_cuda_op_matmul;
    ops->op[MLXN_OP_DEQUANTIZE] = mlxn_cuda_op_dequantize;
    ops->op[MLXN_OP_ATTENTION] = mlxn_cuda_op_attention;
    ops->op[MLXN_OP_ROPE_KV_ATTENTION] = mlxn_cuda_op_rope_kv_attention;
    ops->op[MLXN_OP_KV_APPEND] = mlxn_cuda_op_kv_append;
    ops->op[MLXN_OP_IM2COL_2D_3CH] = mlxn_cuda_op_im2col;
    ops->op[MLXN_OP_ROPE_KV_APPEND] = mlxn_cuda_op_rope_kv_append;
    ops->op[MLXN_OP_MATMUL_FUSED] = mlxn_cuda_op_matmul_fused;
    ops->fusable = mlxn_cuda_fusable;
}
