/* test_cuda_device.c — GPU tests of the CUDA backend, each op compared with
 * the "ref" backend on the same random inputs (outputs poisoned with NaN
 * first): elementwise ops, cast, norms, RoPE (both layouts, Llama-3 and
 * linear scaling), softmax, argmax/top-k (ties, NaN), embedding/dequantize
 * (byte-identical) and matmul over every weight format at M = 1, 3, 8, 33
 * (aligned and from odd byte offsets), attention (decode, prefill, GQA,
 * ring, window, softcap, head dims 64/96/128, f32/f16/bf16 caches),
 * kv_append and im2col (byte-identical); plus device-level behaviour:
 * upload/download through the staging path, fill, the pool, the disk kernel
 * cache, asynchronous range errors reported at finish, and a recorded graph
 * replayed for several decode steps with positions changed in device memory.
 * Without a usable GPU it prints why and passes, unless MLXN_REQUIRE_CUDA=1
 * (tools/gpu-test.sh sets it), where the skip is a failure. */
#include "backend/cuda/cuda_internal.h"
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static mlxn_device *g_cuda, *g_ref;
static t_rng g_rng;

/* ---------------------------------------------------------------- helpers */

typedef struct { mlxn_buffer *c, *r; } pb; /* the same tensor on cuda and ref */

static void to_dtype(mlxn_dtype dt, const float *v, void *out, int64_t n) {
    for (int64_t i = 0; i < n; i++) mlxn_store_f(out, dt, i, v[i]);
}

static mlxn_buffer *mk1(mlxn_device *d, mlxn_dtype dt, int ndim, const int64_t *shape, const void *bytes) {
    mlxn_buffer *b = NULL;
    CHECK_OK(mlxn_buffer_alloc(d, dt, ndim, shape, &b));
    if (!b) return NULL;
    if (bytes) CHECK_OK(mlxn_buffer_upload(b, 0, bytes, mlxn_buffer_nbytes(b)));
    else CHECK_OK(mlxn_buffer_fill_bytes(b, 0xFF));
    return b;
}

/* float values converted to dt (vals NULL: NaN poison) */
static pb pb_f(mlxn_dtype dt, int ndim, const int64_t *shape, const float *vals) {
    int64_t n = mlxn_numel(ndim, shape);
    void *tmp = NULL;
    if (vals) {
        tmp = malloc((size_t)n * 4 + 4);
        to_dtype(dt, vals, tmp, n);
    }
    pb p = {mk1(g_cuda, dt, ndim, shape, tmp), mk1(g_ref, dt, ndim, shape, tmp)};
    free(tmp);
    return p;
}
static pb pb_raw(mlxn_dtype dt, int ndim, const int64_t *shape, const void *bytes) {
    pb p = {mk1(g_cuda, dt, ndim, shape, bytes), mk1(g_ref, dt, ndim, shape, bytes)};
    return p;
}
static pb pb_rand(mlxn_dtype dt, int ndim, const int64_t *shape, float lo, float hi) {
    int64_t n = mlxn_numel(ndim, shape);
    float *v = malloc((size_t)n * 4 + 4);
    t_fill(&g_rng, v, (size_t)n, lo, hi);
    pb p = pb_f(dt, ndim, shape, v);
    free(v);
    return p;
}
static void pb_free(pb p) {
    mlxn_buffer_release(p.c);
    mlxn_buffer_release(p.r);
}

static float *dl_f(const mlxn_buffer *b) {
    int64_t n = mlxn_buffer_numel(b);
    size_t nb = mlxn_buffer_nbytes(b);
    void *raw = malloc(nb + 4);
    float *f = malloc((size_t)n * 4 + 4);
    CHECK_OK(mlxn_buffer_download(b, 0, raw, nb));
    for (int64_t i = 0; i < n; i++) f[i] = mlxn_load_f(raw, mlxn_buffer_dtype(b), i);
    free(raw);
    return f;
}

static double tol_for(mlxn_dtype dt) { return dt == MLXN_F32 ? 1e-10 : dt == MLXN_F16 ? 1e-6 : 1e-4; }

static void cmp_f(const char *what, pb p, double tol) {
    if (!p.c || !p.r) return;
    float *a = dl_f(p.c), *b = dl_f(p.r);
    t_check_nmse(what, a, b, (size_t)mlxn_buffer_numel(p.c), tol);
    free(a);
    free(b);
}
static void cmp_bytes(const char *what, pb p) {
    if (!p.c || !p.r) return;
    size_t n = mlxn_buffer_nbytes(p.c);
    void *a = malloc(n + 1), *b = malloc(n + 1);
    CHECK_OK(mlxn_buffer_download(p.c, 0, a, n));
    CHECK_OK(mlxn_buffer_download(p.r, 0, b, n));
    t_check_bytes(what, a, b, n);
    free(a);
    free(b);
}

/* run the same op on both devices: the macro takes an expression in `s`, `X(p)` picks p.c / p.r */
#define BOTH(expr)                                                           \
    do {                                                                     \
        for (int side_ = 0; side_ < 2; side_++) {                            \
            mlxn_session *s = NULL;                                          \
            CHECK_OK(mlxn_session_begin(side_ ? g_ref : g_cuda, &s));        \
            if (!s) break;                                                   \
            CHECK_OK(expr);                                                  \
            CHECK_OK(mlxn_session_finish(s));                                \
            mlxn_session_destroy(s);                                         \
        }                                                                    \
    } while (0)
#define X(p) (side_ ? (p).r : (p).c)

static const mlxn_dtype k_fdt[3] = {MLXN_F32, MLXN_F16, MLXN_BF16};

/* ---------------------------------------------------------------- elementwise, cast, norms */

static void test_elementwise(void) {
    int64_t sh[2] = {7, 129}, shb[1] = {129};
    for (int di = 0; di < 3; di++) {
        mlxn_dtype dt = k_fdt[di];
        pb a = pb_rand(dt, 2, sh, -3, 3), b = pb_rand(dt, 2, sh, -2, 2), bb = pb_rand(dt, 1, shb, -2, 2);
        char w[96];
        for (int op = 0; op < 11; op++) {
            pb y = pb_f(dt, 2, sh, NULL);
            switch (op) {
            case 0: BOTH(mlxn_add(s, X(a), X(b), X(y))); break;
            case 1: BOTH(mlxn_add(s, X(a), X(bb), X(y))); break;
            case 2: BOTH(mlxn_mul(s, X(a), X(b), X(y))); break;
            case 3: BOTH(mlxn_mul(s, X(a), X(bb), X(y))); break;
            case 4: BOTH(mlxn_scale(s, X(a), -0.37f, X(y))); break;
            case 5: BOTH(mlxn_silu(s, X(a), X(y))); break;
            case 6: BOTH(mlxn_gelu(s, X(a), MLXN_GELU_ERF, X(y))); break;
            case 7: BOTH(mlxn_gelu(s, X(a), MLXN_GELU_TANH, X(y))); break;
            case 8: BOTH(mlxn_silu_mul(s, X(a), X(b), X(y))); break;
            case 9: BOTH(mlxn_gelu_mul(s, X(a), X(b), MLXN_GELU_TANH, X(y))); break;
            case 10: BOTH(mlxn_softcap(s, X(a), 1.7f, X(y))); break;
            }
            snprintf(w, sizeof w, "elementwise op %d %s", op, mlxn_dtype_name(dt));
            cmp_f(w, y, tol_for(dt));
            pb_free(y);
        }
        /* y aliasing x */
        pb z = pb_rand(dt, 2, sh, -3, 3);
        BOTH(mlxn_silu(s, X(z), X(z)));
        snprintf(w, sizeof w, "silu in place %s", mlxn_dtype_name(dt));
        cmp_f(w, z, tol_for(dt));
        pb_free(z);
        for (int dj = 0; dj < 3; dj++) {
            pb c = pb_f(k_fdt[dj], 2, sh, NULL);
            BOTH(mlxn_cast(s, X(a), X(c)));
            snprintf(w, sizeof w, "cast %s -> %s", mlxn_dtype_name(dt), mlxn_dtype_name(k_fdt[dj]));
            cmp_bytes(w, c);
            pb_free(c);
        }
        pb_free(a);
        pb_free(b);
        pb_free(bb);
    }
}

static void test_norms(void) {
    /* f32 rows with D % 4 == 0 and D <= 16384 take the one-pass kernel */
    const int64_t shapes[5][2] = {{5, 1000}, {3, 4096}, {2, 576}, {1, 16384}, {2, 1002}};
    for (int si = 0; si < 5; si++)
        for (int di = 0; di < 3; di++) {
            mlxn_dtype dt = k_fdt[di];
            const int64_t *sh = shapes[si];
            int64_t D = sh[1];
            pb x = pb_rand(dt, 2, sh, -2, 2), r = pb_rand(dt, 2, sh, -1, 1), wgt = pb_rand(dt, 1, &D, 0.5f, 1.5f),
               bias = pb_rand(dt, 1, &D, -0.5f, 0.5f);
            char w[96];
            for (int op = 0; op < 5; op++) {
                pb y = pb_f(dt, 2, sh, NULL), sum = pb_f(dt, 2, sh, NULL);
                switch (op) {
                case 0: BOTH(mlxn_rms_norm(s, X(x), X(wgt), 1e-5f, X(y))); break;
                case 1: BOTH(mlxn_rms_norm(s, X(x), NULL, 1e-6f, X(y))); break;
                case 2: BOTH(mlxn_rms_norm_residual(s, X(x), X(r), X(wgt), 1e-5f, X(sum), X(y))); break;
                case 3: BOTH(mlxn_layer_norm(s, X(x), X(wgt), X(bias), 1e-5f, X(y))); break;
                case 4: BOTH(mlxn_l2_norm(s, X(x), 1e-6f, X(y))); break;
                }
                snprintf(w, sizeof w, "norm %d %s D=%lld", op, mlxn_dtype_name(dt), (long long)D);
                cmp_f(w, y, tol_for(dt));
                if (op == 2) cmp_f("rms_norm_residual sum", sum, tol_for(dt));
                pb_free(y);
                pb_free(sum);
            }
            pb_free(x); pb_free(r); pb_free(wgt); pb_free(bias);
        }
}

/* Llama-3 (factor 8, low/high 1/4, original 8192) or linear (factor 4) frequency scaling. */
static void rope_scaling(mlxn_rope_params *p, int scaling) {
    p->scaling = (mlxn_rope_scaling)scaling;
    if (scaling == MLXN_ROPE_SCALING_LLAMA3) {
        p->factor = 8;
        p->low_freq_factor = 1;
        p->high_freq_factor = 4;
        p->original_max_pos = 8192;
    } else if (scaling == MLXN_ROPE_SCALING_LINEAR) {
        p->factor = 4;
    }
}

static void test_rope(void) {
    int64_t sh[3] = {5, 3, 64}, T = 5;
    int32_t posv[5] = {0, 1, 17, 4095, 70000};
    pb pos = pb_raw(MLXN_I32, 1, &T, posv);
    for (int di = 0; di < 3; di += 2) {
        mlxn_dtype dt = k_fdt[di];
        for (int cfg = 0; cfg < 5; cfg++) {
            mlxn_rope_params p = {0};
            p.mode = cfg & 1 ? MLXN_ROPE_HALF_SPLIT : MLXN_ROPE_ADJACENT;
            p.rot_dims = cfg == 2 ? 32 : 64;
            p.theta = cfg >= 3 ? 500000.0f : 10000.0f;
            rope_scaling(&p, cfg == 3 ? MLXN_ROPE_SCALING_LLAMA3 : cfg == 4 ? MLXN_ROPE_SCALING_LINEAR : 0);
            pb x = pb_rand(dt, 3, sh, -1, 1), y = pb_f(dt, 3, sh, NULL);
            BOTH(mlxn_rope(s, X(x), X(pos), &p, X(y)));
            char w[96];
            snprintf(w, sizeof w, "rope cfg %d %s", cfg, mlxn_dtype_name(dt));
            cmp_f(w, y, tol_for(dt));
            BOTH(mlxn_rope(s, X(x), X(pos), &p, X(x))); /* in place */
            snprintf(w, sizeof w, "rope in place cfg %d %s", cfg, mlxn_dtype_name(dt));
            cmp_f(w, x, tol_for(dt));
            pb_free(x);
            pb_free(y);
        }
    }
    pb_free(pos);
}

static void test_softmax_argmax_topk(void) {
    int64_t sh[2] = {6, 3001}, N = 3001;
    float *v = malloc(6 * 3001 * 4), *m = malloc(6 * 3001 * 4);
    t_fill(&g_rng, v, 6 * 3001, -4, 4);
    for (int i = 0; i < 6 * 3001; i++) m[i] = (i % 7 == 0) ? -INFINITY : t_rng_uniform(&g_rng, -1, 0);
    for (int j = 0; j < 3001; j++) m[4 * 3001 + j] = -INFINITY; /* fully masked row */
    v[3001 + 5] = v[3001 + 900] = 50.0f;                        /* tie: lower index wins */
    v[2 * 3001 + 0] = NAN;                                        /* NaN ignored */
    for (int j = 0; j < 3001; j++) v[5 * 3001 + j] = (float)(j % 13); /* many ties */
    pb x = pb_f(MLXN_F32, 2, sh, v), mk = pb_f(MLXN_F32, 2, sh, m), mr = pb_f(MLXN_F32, 1, &N, m);
    pb y = pb_f(MLXN_F32, 2, sh, NULL);
    v[2 * 3001] = 1.5f; /* softmax input without the NaN (a NaN row is NaN on both sides) */
    pb xs = pb_f(MLXN_F32, 2, sh, v);
    BOTH(mlxn_softmax(s, X(xs), NULL, 0.7f, X(y)));
    cmp_f("softmax", y, 1e-10);
    BOTH(mlxn_softmax(s, X(xs), X(mk), 1.0f, X(y)));
    cmp_f("softmax mask [M,N]", y, 1e-10);
    BOTH(mlxn_softmax(s, X(xs), X(mr), 1.0f, X(y)));
    cmp_f("softmax mask [N]", y, 1e-10);
    pb_free(xs);
    int64_t M = 6;
    pb idx = pb_f(MLXN_I32, 1, &M, NULL);
    BOTH(mlxn_argmax(s, X(x), X(idx)));
    cmp_bytes("argmax", idx);
    { /* vocabulary-sized rows, 16-byte aligned (the vector path): a tie
       * across float4 lanes and loads, a NaN row start, an all-NaN row */
        int64_t vs[2] = {3, 49152}, M3 = 3;
        float *w = malloc(3 * 49152 * 4);
        t_fill(&g_rng, w, 3 * 49152, -4, 4);
        w[49151] = w[7 * 1024 * 4 + 2] = 9.0f;
        w[49152] = NAN;
        w[49152 + 40000] = 8.0f;
        for (int j = 0; j < 49152; j++) w[2 * 49152 + j] = NAN;
        pb xv = pb_f(MLXN_F32, 2, vs, w), iv = pb_f(MLXN_I32, 1, &M3, NULL);
        BOTH(mlxn_argmax(s, X(xv), X(iv)));
        cmp_bytes("argmax [3, 49152]", iv);
        pb_free(xv);
        pb_free(iv);
        free(w);
    }
    const int ks[3] = {1, 7, 3001};
    for (int i = 0; i < 3; i++) {
        int64_t ksh[2] = {6, ks[i]};
        pb tv = pb_f(MLXN_F32, 2, ksh, NULL), ti = pb_f(MLXN_I32, 2, ksh, NULL);
        BOTH(mlxn_topk(s, X(x), ks[i], X(tv), X(ti)));
        char w[64];
        snprintf(w, sizeof w, "topk k=%d idx", ks[i]);
        cmp_bytes(w, ti);
        snprintf(w, sizeof w, "topk k=%d values", ks[i]);
        cmp_bytes(w, tv);
        pb_free(tv);
        pb_free(ti);
    }
    pb_free(x); pb_free(mk); pb_free(mr); pb_free(y); pb_free(idx);
    free(v);
    free(m);
}

/* ---------------------------------------------------------------- weights */

typedef struct {
    const char *name;
    mlxn_weight_format fmt;
    mlxn_dtype dt; /* dense dtype or scale dtype */
    int bits, group;
    mlxn_gguf_type gt;
} wspec;

typedef struct {
    void *data, *scales, *biases;
    size_t data_bytes, sb_bytes;
} wbytes;

static void f16_into(uint8_t *p, float v) {
    uint16_t h = mlxn_f32_to_f16(v);
    memcpy(p, &h, 2);
}

static void make_wbytes(const wspec *sp, int64_t N, int64_t K, wbytes *wb) {
    memset(wb, 0, sizeof *wb);
    float *w = malloc((size_t)(N * K) * 4);
    for (int64_t i = 0; i < N * K; i++) w[i] = t_rng_normal(&g_rng) * 0.5f;
    if (sp->fmt == MLXN_WEIGHT_DENSE) {
        wb->data_bytes = (size_t)(N * K) * mlxn_dtype_size(sp->dt);
        wb->data = malloc(wb->data_bytes);
        to_dtype(sp->dt, w, wb->data, N * K);
    } else if (sp->fmt == MLXN_WEIGHT_MLX_AFFINE) {
        wb->data_bytes = (size_t)(N * K * sp->bits / 8);
        wb->sb_bytes = (size_t)(N * (K / sp->group)) * mlxn_dtype_size(sp->dt);
        wb->data = malloc(wb->data_bytes);
        wb->scales = malloc(wb->sb_bytes);
        wb->biases = malloc(wb->sb_bytes);
        CHECK_OK(mlxn_quantize_affine(w, N, K, sp->bits, sp->group, sp->dt, wb->data, wb->scales, wb->biases));
    } else {
        int64_t bv, bb;
        mlxn_gguf_type_block(sp->gt, &bv, &bb);
        wb->data_bytes = (size_t)(N * (K / bv) * bb);
        wb->data = malloc(wb->data_bytes);
        if (sp->gt == MLXN_GGUF_Q4_0 || sp->gt == MLXN_GGUF_Q8_0) {
            CHECK_OK(mlxn_gguf_quantize(sp->gt, w, N * K, wb->data));
        } else { /* random blocks with sane f16 scales */
            uint8_t *d = wb->data;
            for (size_t i = 0; i < wb->data_bytes; i++) d[i] = (uint8_t)t_rng_u64(&g_rng);
            for (int64_t b = 0; b < N * (K / bv); b++) {
                uint8_t *blk = d + b * bb;
                switch (sp->gt) {
                case MLXN_GGUF_Q4_1: case MLXN_GGUF_Q5_1:
                    f16_into(blk, t_rng_uniform(&g_rng, 0.01f, 0.1f));
                    f16_into(blk + 2, t_rng_uniform(&g_rng, -0.5f, 0.5f));
                    break;
                case MLXN_GGUF_Q5_0: f16_into(blk, t_rng_uniform(&g_rng, 0.01f, 0.1f)); break;
                case MLXN_GGUF_Q4_K: case MLXN_GGUF_Q5_K:
                    f16_into(blk, t_rng_uniform(&g_rng, 0.001f, 0.01f));
                    f16_into(blk + 2, t_rng_uniform(&g_rng, 0.001f, 0.01f));
                    break;
                case MLXN_GGUF_Q6_K: f16_into(blk + 208, t_rng_uniform(&g_rng, 0.0005f, 0.005f)); break;
                default: break;
                }
            }
        }
    }
    free(w);
}

static void free_wbytes(wbytes *wb) {
    free(wb->data);
    free(wb->scales);
    free(wb->biases);
}

/* Build the weight on device d; `offset` bytes of lead-in make the data (and
 * scales) start at an odd address. holds[] keep the storage alive. */
static mlxn_weight *make_weight(mlxn_device *d, const wspec *sp, int64_t N, int64_t K, const wbytes *wb,
                                size_t offset, mlxn_buffer *holds[3]) {
    memset(holds, 0, sizeof(mlxn_buffer *) * 3);
    mlxn_weight_desc desc = {0};
    desc.format = sp->fmt;
    desc.rows = N;
    desc.cols = K;
    desc.bits = sp->bits;
    desc.group_size = sp->group;
    desc.gguf_type = sp->gt;
    desc.name = sp->name;
    const void *parts[3] = {wb->data, wb->scales, wb->biases};
    size_t sizes[3] = {wb->data_bytes, wb->sb_bytes, wb->sb_bytes};
    mlxn_buffer *views[3] = {0};
    for (int i = 0; i < 3; i++) {
        if (!parts[i]) continue;
        mlxn_dtype vt = i == 0 ? (sp->fmt == MLXN_WEIGHT_DENSE ? sp->dt : MLXN_U8) : sp->dt;
        /* packed bytes from an odd address; floats 4-byte aligned but not 16 */
        size_t off = (sp->fmt == MLXN_WEIGHT_DENSE || i > 0) ? (offset ? 4 : 0) : offset;
        int64_t total = (int64_t)(sizes[i] + off);
        CHECK_OK(mlxn_buffer_alloc(d, MLXN_U8, 1, &total, &holds[i]));
        if (!holds[i]) return NULL;
        CHECK_OK(mlxn_buffer_upload(holds[i], off, parts[i], sizes[i]));
        int64_t n = (int64_t)(sizes[i] / mlxn_dtype_size(vt));
        CHECK_OK(mlxn_buffer_view(holds[i], off, vt, 1, &n, &views[i]));
    }
    desc.data = views[0];
    desc.scales = views[1];
    desc.biases = views[2];
    mlxn_weight *w = NULL;
    CHECK_OK(mlxn_weight_create(&desc, &w));
    for (int i = 0; i < 3; i++) mlxn_buffer_release(views[i]);
    return w;
}

static void free_weight(mlxn_weight *w, mlxn_buffer *holds[3]) {
    mlxn_weight_destroy(w);
    for (int i = 0; i < 3; i++) mlxn_buffer_release(holds[i]);
}

static int build_specs(wspec *out) {
    int n = 0;
    static char names[128][48];
    for (int i = 0; i < 3; i++) {
        snprintf(names[n], 48, "dense_%s", mlxn_dtype_name(k_fdt[i]));
        out[n] = (wspec){names[n], MLXN_WEIGHT_DENSE, k_fdt[i], 0, 0, 0};
        n++;
    }
    const int bits[6] = {2, 3, 4, 5, 6, 8}, gs[3] = {32, 64, 128};
    for (int b = 0; b < 6; b++)
        for (int g = 0; g < 3; g++) {
            mlxn_dtype sdt = k_fdt[(b + g) % 3];
            snprintf(names[n], 48, "mlx_b%d_g%d_%s", bits[b], gs[g], mlxn_dtype_name(sdt));
            out[n] = (wspec){names[n], MLXN_WEIGHT_MLX_AFFINE, sdt, bits[b], gs[g], 0};
            n++;
        }
    const mlxn_gguf_type gt[8] = {MLXN_GGUF_Q4_0, MLXN_GGUF_Q4_1, MLXN_GGUF_Q5_0, MLXN_GGUF_Q5_1,
                                  MLXN_GGUF_Q8_0, MLXN_GGUF_Q4_K, MLXN_GGUF_Q5_K, MLXN_GGUF_Q6_K};
    for (int i = 0; i < 8; i++) {
        snprintf(names[n], 48, "gguf_%s", mlxn_gguf_type_name(gt[i]));
        out[n] = (wspec){names[n], MLXN_WEIGHT_GGUF, MLXN_F16, 0, 0, gt[i]};
        n++;
    }
    return n;
}

static void test_matmul_all_formats(void) {
    wspec specs[64];
    int ns = build_specs(specs);
    const int64_t Ms[4] = {1, 3, 8, 33};
    for (int i = 0; i < ns; i++) {
        const wspec *sp = &specs[i];
        for (int shape = 0; shape < 3; shape++) {
            /* shape 2: rows long enough for the block-wide matvec kernels */
            int64_t N = shape == 2 ? 67 : shape ? 301 : 37, K = shape == 2 ? 8448 : shape ? 2048 : 512;
            if (shape && sp->fmt == MLXN_WEIGHT_MLX_AFFINE && sp->group != 64) continue;
            wbytes wb;
            make_wbytes(sp, N, K, &wb);
            for (int unal = 0; unal < 2; unal++) {
                if (shape && unal) continue;
                mlxn_buffer *hc[3], *hr[3];
                mlxn_weight *wc = make_weight(g_cuda, sp, N, K, &wb, unal ? 1 : 0, hc);
                mlxn_weight *wr = make_weight(g_ref, sp, N, K, &wb, 0, hr);
                for (int mi = 0; mi < 4 && wc && wr; mi++) {
                    int64_t M = Ms[mi];
                    if (shape && M > 8) continue;
                    int64_t xs[2] = {M, K}, ys[2] = {M, N};
                    pb x = pb_rand(MLXN_F32, 2, xs, -1, 1), y = pb_f(MLXN_F32, 2, ys, NULL);
                    for (int side_ = 0; side_ < 2; side_++) {
                        mlxn_session *s = NULL;
                        CHECK_OK(mlxn_session_begin(side_ ? g_ref : g_cuda, &s));
                        CHECK_OK(mlxn_matmul(s, X(x), side_ ? wr : wc, X(y)));
                        CHECK_OK(mlxn_session_finish(s));
                        mlxn_session_destroy(s);
                    }
                    char w[128];
                    snprintf(w, sizeof w, "matmul %s M=%lld N=%lld K=%lld%s", sp->name, (long long)M, (long long)N,
                             (long long)K, unal ? " (odd offset)" : "");
                    cmp_f(w, y, 1e-9);
                    pb_free(x);
                    pb_free(y);
                }
                /* embedding (some ids) and dequantize: byte-identical to ref */
                if (wc && wr && !shape) {
                    int32_t ids[5] = {0, 36, 5, 5, 17};
                    int64_t T = 5;
                    pb pid = pb_raw(MLXN_I32, 1, &T, ids);
                    for (int di = 0; di < 3; di++) {
                        int64_t es[2] = {T, K}, ds[2] = {N, K};
                        pb e = pb_f(k_fdt[di], 2, es, NULL), dq = pb_f(k_fdt[di], 2, ds, NULL);
                        for (int side_ = 0; side_ < 2; side_++) {
                            mlxn_session *s = NULL;
                            CHECK_OK(mlxn_session_begin(side_ ? g_ref : g_cuda, &s));
                            CHECK_OK(mlxn_embedding(s, side_ ? wr : wc, X(pid), X(e)));
                            CHECK_OK(mlxn_dequantize(s, side_ ? wr : wc, X(dq)));
                            CHECK_OK(mlxn_session_finish(s));
                            mlxn_session_destroy(s);
                        }
                        char w[128];
                        snprintf(w, sizeof w, "embedding %s -> %s%s", sp->name, mlxn_dtype_name(k_fdt[di]),
                                 unal ? " (odd offset)" : "");
                        cmp_bytes(w, e);
                        snprintf(w, sizeof w, "dequantize %s -> %s%s", sp->name, mlxn_dtype_name(k_fdt[di]),
                                 unal ? " (odd offset)" : "");
                        cmp_bytes(w, dq);
                        pb_free(e);
                        pb_free(dq);
                    }
                    pb_free(pid);
                }
                free_weight(wc, hc);
                free_weight(wr, hr);
            }
            free_wbytes(&wb);
        }
    }
}

/* The buffers of one mlxn_matmul_fused case on both devices: x [M, K],
 * norm weight [K], residual [M, N], y (the residual itself when alias),
 * scratch x [M, K] and y [M, R]. */
typedef struct { pb x, nw, res, y, xsc, ysc; int alias; } fused_bufs;
static fused_bufs fused_bufs_make(int64_t M, int64_t K, int64_t N, int64_t R, int alias) {
    int64_t xs[2] = {M, K}, ys[2] = {M, N}, rs[2] = {M, R}, ks = K;
    fused_bufs b = {.alias = alias};
    b.x = pb_rand(MLXN_F32, 2, xs, -1, 1);
    b.nw = pb_rand(MLXN_F32, 1, &ks, 0.5f, 1.5f);
    b.res = pb_rand(MLXN_F32, 2, ys, -2, 2);
    b.y = alias ? b.res : pb_f(MLXN_F32, 2, ys, NULL);
    b.xsc = pb_f(MLXN_F32, 2, xs, NULL);
    b.ysc = pb_f(MLXN_F32, 2, rs, NULL);
    return b;
}
static void fused_bufs_free(fused_bufs *b) {
    pb_free(b->x);
    pb_free(b->nw);
    pb_free(b->res);
    if (!b->alias) pb_free(b->y);
    pb_free(b->xsc);
    pb_free(b->ysc);
}

/* mlxn_matmul_fused: CUDA's fused one-row kernels (MLX 4/8-bit, Q4_0, Q4_1,
 * Q8_0; warp and block row groups; the norm prologue at K = 576 by default
 * and at K = 2048 with env MLXN_CUDA_NORM_FUSE_MAX_K) and its separate-op
 * path (M = 3; MLX 3-bit, Q4_K, dense f16; env MLXN_CUDA_FUSE=0) against the
 * reference backend, which always runs the separate ops (rms_norm, matmul,
 * silu_mul, add). Every mix of norm, swiglu
 * and residual (aliasing y or not), on rows counts that leave partial row
 * groups (swiglu halves of 37 and 65 rows). */
static void test_matmul_fused(void) {
    const wspec specs[] = {{"mlx_b4_g64_bf16", MLXN_WEIGHT_MLX_AFFINE, MLXN_BF16, 4, 64, 0},
                           {"mlx_b4_g32_f16", MLXN_WEIGHT_MLX_AFFINE, MLXN_F16, 4, 32, 0},
                           {"mlx_b8_g64_f16", MLXN_WEIGHT_MLX_AFFINE, MLXN_F16, 8, 64, 0},
                           {"mlx_b3_g64_bf16", MLXN_WEIGHT_MLX_AFFINE, MLXN_BF16, 3, 64, 0},
                           {"gguf_q4_0", MLXN_WEIGHT_GGUF, MLXN_F16, 0, 0, MLXN_GGUF_Q4_0},
                           {"gguf_q4_1", MLXN_WEIGHT_GGUF, MLXN_F16, 0, 0, MLXN_GGUF_Q4_1},
                           {"gguf_q8_0", MLXN_WEIGHT_GGUF, MLXN_F16, 0, 0, MLXN_GGUF_Q8_0},
                           {"gguf_q4_k", MLXN_WEIGHT_GGUF, MLXN_F16, 0, 0, MLXN_GGUF_Q4_K},
                           {"dense_f16", MLXN_WEIGHT_DENSE, MLXN_F16, 0, 0, 0}};
    const int64_t shapes[2][2] = {{74, 576}, {130, 2048}}; /* rows R, K */
    for (size_t si = 0; si < sizeof specs / sizeof specs[0]; si++) {
        const wspec *sp = &specs[si];
        for (int sh = 0; sh < 2; sh++) {
            const int64_t R = shapes[sh][0], K = shapes[sh][1];
            if (sp->gt == MLXN_GGUF_Q4_K && K % 256) continue;
            wbytes wb;
            make_wbytes(sp, R, K, &wb);
            mlxn_buffer *hc[3], *hr[3];
            mlxn_weight *wc = make_weight(g_cuda, sp, R, K, &wb, 0, hc), *wr = make_weight(g_ref, sp, R, K, &wb, 0, hr);
            for (int mode = 1; mode < 8 && wc && wr; mode++) { /* bits: 1 norm, 2 swiglu, 4 residual */
                for (int mi = 0; mi < 2; mi++) {
                    const int64_t M = mi ? 3 : 1, N = mode & 2 ? R / 2 : R;
                    const int alias = (mode & 4) && mi == 0; /* residual is y (the decode step's x += ...) */
                    /* variants: 0 defaults; 1 env MLXN_CUDA_FUSE=0; 2 norm folded in at any K;
                     * 3 the many-short-rows shape (a small model's lm_head: Q8_0 staged tiles, else warp row
                     * groups of 8 rows); 4 warp row groups of 2 rows; 5 as 3 with warp row groups */
                    static const char *const shape_env[6] = {NULL, NULL, NULL, NULL, "w2", NULL};
                    for (int var = 0; var < 6; var++) {
                        if ((var == 1 && (mode != 7 || mi)) || (var == 2 && (!(mode & 1) || mi)) || (var >= 3 && mi))
                            continue;
                        fused_bufs fb = fused_bufs_make(M, K, N, R, alias);
                        pb x = fb.x, nw = fb.nw, res = fb.res, y = fb.y, xsc = fb.xsc, ysc = fb.ysc;
                        if (var == 1) setenv("MLXN_CUDA_FUSE", "0", 1);
                        if (var == 2) setenv("MLXN_CUDA_NORM_FUSE_MAX_K", "12288", 1);
                        if (var == 3 || var == 5) setenv("MLXN_CUDA_MV_NARROW_MAX", "100000", 1); /* at any size */
                        if (var == 5) setenv("MLXN_CUDA_MV_NARROW_SHAPE", "w8", 1);
                        if (shape_env[var]) setenv("MLXN_CUDA_MV_SHAPE", shape_env[var], 1);
                        for (int side_ = 0; side_ < 2; side_++) {
                            mlxn_session *s = NULL;
                            CHECK_OK(mlxn_session_begin(side_ ? g_ref : g_cuda, &s));
                            if (!s) break;
                            mlxn_matmul_fusion f = {.norm = mode & 1 ? X(nw) : NULL, .norm_eps = 1e-5f,
                                                    .swiglu = (mode & 2) != 0, .residual = mode & 4 ? X(res) : NULL,
                                                    .x_scratch = X(xsc), .y_scratch = X(ysc)};
                            CHECK_OK(mlxn_matmul_fused(s, X(x), side_ ? wr : wc, &f, X(y)));
                            CHECK_OK(mlxn_session_finish(s));
                            mlxn_session_destroy(s);
                        }
                        unsetenv("MLXN_CUDA_FUSE");
                        unsetenv("MLXN_CUDA_NORM_FUSE_MAX_K");
                        unsetenv("MLXN_CUDA_MV_NARROW_MAX");
                        unsetenv("MLXN_CUDA_MV_SHAPE");
                        unsetenv("MLXN_CUDA_MV_NARROW_SHAPE");
                        char w[160];
                        snprintf(w, sizeof w, "matmul_fused %s R=%lld K=%lld M=%lld%s%s%s%s%s", sp->name, (long long)R,
                                 (long long)K, (long long)M, mode & 1 ? " norm" : "", mode & 2 ? " swiglu" : "",
                                 mode & 4 ? " residual" : "", alias ? " (in place)" : "",
                                 var == 1 ? " FUSE=0" : var == 2 ? " NORM_FUSE_MAX_K=12288" : var == 3 ? " narrow"
                                 : var == 4 ? " MV_SHAPE=w2" : var == 5 ? " narrow w8" : "");
                        cmp_f(w, y, 1e-9);
                        fused_bufs_free(&fb);
                    }
                }
            }
            free_weight(wc, hc);
            free_weight(wr, hr);
            free_wbytes(&wb);
        }
    }
}

/* The streamed one-row matmul (matvec_stream.cu, sm_90+): MLX 4-bit (group
 * 64 and 128) with K % 1024 == 0, plain (mlxn_matmul) and every
 * fused mode (norm at any K, swiglu, residual in place), against the
 * reference, in shapes that give partial row groups (R = 130, swiglu halves
 * of 65), several rounds per warp (4200 rows with 1 or 2 warps a block) and
 * uneven K parts (K = 3072: 3 segments over 2 parts); env variants: 1 and 2
 * copy stages (every slot reused), forced parts, helper warps. Where the GPU is sm_90+ the
 * kernel that ran must be an mvs_* one. */
static void test_matmul_streamed(void) {
    const wspec specs[] = {{"mlx_b4_g64_bf16", MLXN_WEIGHT_MLX_AFFINE, MLXN_BF16, 4, 64, 0},
                           {"mlx_b4_g64_f16", MLXN_WEIGHT_MLX_AFFINE, MLXN_F16, 4, 64, 0},
                           {"mlx_b4_g128_bf16", MLXN_WEIGHT_MLX_AFFINE, MLXN_BF16, 4, 128, 0}};
    const int64_t shapes[3][2] = {{130, 2048}, {4200, 1024}, {66, 3072}}; /* rows R, K */
    /* env variants: stages, warps cap, parts, warps launched (the extra ones only quantize x) */
    static const char *const var_env[6][4] = {{NULL, NULL, NULL, NULL}, {"1", NULL, NULL, NULL},
                                              {"2", "1", NULL, NULL},    {NULL, "2", "2", NULL},
                                              {"3", "6", "3", NULL},     {NULL, "2", "2", "16"}};
    const int sm90 = ((mlxn_cuda_dev *)g_cuda->impl)->cc_major >= 9;
    setenv("MLXN_CUDA_MVS_MIN_MB", "0", 1); /* small weights too (by default only >= 24 MB) */
    for (size_t si = 0; si < sizeof specs / sizeof specs[0]; si++) {
        const wspec *sp = &specs[si];
        for (int sh = 0; sh < 3; sh++) {
            const int64_t R = shapes[sh][0], K = shapes[sh][1];
            wbytes wb;
            make_wbytes(sp, R, K, &wb);
            mlxn_buffer *hc[3], *hr[3];
            mlxn_weight *wc = make_weight(g_cuda, sp, R, K, &wb, 0, hc), *wr = make_weight(g_ref, sp, R, K, &wb, 0, hr);
            for (int mode = 0; mode < 8 && wc && wr; mode++) { /* 0 plain matmul; bits: 1 norm, 2 swiglu, 4 residual */
                for (int var = 0; var < 6; var++) {
                    if (var && sh != 1 && mode != 7 && mode != 0) continue;
                    const int64_t N = mode & 2 ? R / 2 : R;
                    const int alias = (mode & 4) != 0;
                    fused_bufs fb = fused_bufs_make(1, K, N, R, alias);
                    pb x = fb.x, nw = fb.nw, res = fb.res, y = fb.y, xsc = fb.xsc, ysc = fb.ysc;
                    static const char *const names[4] = {"MLXN_CUDA_MVS_STAGES", "MLXN_CUDA_MVS_WARPS",
                                                         "MLXN_CUDA_MVS_PARTS", "MLXN_CUDA_MVS_HELPERS"};
                    for (int i = 0; i < 4; i++)
                        if (var_env[var][i]) setenv(names[i], var_env[var][i], 1);
                    for (int side_ = 0; side_ < 2; side_++) {
                        mlxn_session *s = NULL;
                        CHECK_OK(mlxn_session_begin(side_ ? g_ref : g_cuda, &s));
                        if (!s) break;
                        if (mode) {
                            mlxn_matmul_fusion f = {.norm = mode & 1 ? X(nw) : NULL, .norm_eps = 1e-5f,
                                                    .swiglu = (mode & 2) != 0, .residual = mode & 4 ? X(res) : NULL,
                                                    .x_scratch = X(xsc), .y_scratch = X(ysc)};
                            CHECK_OK(mlxn_matmul_fused(s, X(x), side_ ? wr : wc, &f, X(y)));
                        } else {
                            CHECK_OK(mlxn_matmul(s, X(x), side_ ? wr : wc, X(y)));
                        }
                        if (!side_ && sm90) {
                            const char *k = mlxn_cuda_sess_of(s)->last_kernel;
                            CHECK_MSG(k && strncmp(k, "mvs_", 4) == 0, "%s R=%lld K=%lld mode %d: ran %s, not mvs_*",
                                      sp->name, (long long)R, (long long)K, mode, k ? k : "nothing");
                        }
                        CHECK_OK(mlxn_session_finish(s));
                        mlxn_session_destroy(s);
                    }
                    for (int i = 0; i < 4; i++) unsetenv(names[i]);
                    char w[224];
                    snprintf(w, sizeof w, "streamed %s R=%lld K=%lld%s%s%s%s stages=%s warps=%s parts=%s launched=%s",
                             sp->name,
                             (long long)R, (long long)K, mode ? "" : " plain", mode & 1 ? " norm" : "",
                             mode & 2 ? " swiglu" : "", mode & 4 ? " residual (in place)" : "",
                             var_env[var][0] ? var_env[var][0] : "-", var_env[var][1] ? var_env[var][1] : "-",
                             var_env[var][2] ? var_env[var][2] : "-", var_env[var][3] ? var_env[var][3] : "-");
                    cmp_f(w, y, 1e-9);
                    fused_bufs_free(&fb);
                }
            }
            free_weight(wc, hc);
            free_weight(wr, hr);
            free_wbytes(&wb);
        }
    }
    unsetenv("MLXN_CUDA_MVS_MIN_MB");
}

/* Large M (prefill): the bf16 tensor-core path where cuBLASLt is present, held
 * to the 1e-4 NMSE contract of the formats it serves. */
static void test_matmul_large_m(void) {
    wspec specs[64];
    int ns = build_specs(specs);
    const int64_t N = 256, K = 512;
    for (int mi = 0; mi < 2; mi++)
    for (int i = 0; i < ns; i++) {
        const int64_t M = mi ? 128 : 8;
        const wspec *sp = &specs[i];
        int fast = (sp->fmt == MLXN_WEIGHT_DENSE && sp->dt != MLXN_F32) ||
                   (sp->fmt == MLXN_WEIGHT_MLX_AFFINE && (sp->bits == 4 || sp->bits == 8) && sp->group == 64) ||
                   (sp->fmt == MLXN_WEIGHT_GGUF && sp->gt != MLXN_GGUF_Q5_0 && sp->gt != MLXN_GGUF_Q5_1 &&
                    sp->gt != MLXN_GGUF_Q5_K);
        if (!fast) continue;
        wbytes wb;
        make_wbytes(sp, N, K, &wb);
        mlxn_buffer *hc[3], *hr[3];
        mlxn_weight *wc = make_weight(g_cuda, sp, N, K, &wb, 0, hc), *wr = make_weight(g_ref, sp, N, K, &wb, 0, hr);
        int64_t xs[2] = {M, K}, ys[2] = {M, N};
        pb x = pb_rand(MLXN_F32, 2, xs, -1, 1), y = pb_f(MLXN_F32, 2, ys, NULL);
        for (int side_ = 0; side_ < 2 && wc && wr; side_++) {
            mlxn_session *s = NULL;
            CHECK_OK(mlxn_session_begin(side_ ? g_ref : g_cuda, &s));
            CHECK_OK(mlxn_matmul(s, X(x), side_ ? wr : wc, X(y)));
            CHECK_OK(mlxn_session_finish(s));
            mlxn_session_destroy(s);
        }
        char w[128];
        snprintf(w, sizeof w, "matmul (large M) %s M=%lld N=%lld K=%lld", sp->name, (long long)M, (long long)N, (long long)K);
        cmp_f(w, y, 1e-4);
        pb_free(x);
        pb_free(y);
        free_weight(wc, hc);
        free_weight(wr, hr);
        free_wbytes(&wb);
    }
}

/* The GEMM path casts x to bf16 once for consecutive matmuls on the same x
 * (q, k, v): two weights on one x, new values uploaded into x (after a
 * finish; the session goes on), a third matmul, a kernel writing x in place,
 * a fourth — each checked against the reference. */
static void test_gemm_x_reuse(void) {
    const wspec sp = {"mlx_b4_g64", MLXN_WEIGHT_MLX_AFFINE, MLXN_BF16, 4, 64, 0};
    const int64_t M = 96, K = 512, Ns[2] = {256, 128};
    wbytes wb[2];
    mlxn_buffer *hc[2][3], *hr[2][3];
    mlxn_weight *wc[2], *wr[2];
    for (int i = 0; i < 2; i++) {
        make_wbytes(&sp, Ns[i], K, &wb[i]);
        wc[i] = make_weight(g_cuda, &sp, Ns[i], K, &wb[i], 0, hc[i]);
        wr[i] = make_weight(g_ref, &sp, Ns[i], K, &wb[i], 0, hr[i]);
    }
    int64_t xs[2] = {M, K}, y0s[2] = {M, Ns[0]}, y1s[2] = {M, Ns[1]};
    pb x = pb_rand(MLXN_F32, 2, xs, -1, 1), y[4] = {pb_f(MLXN_F32, 2, y0s, NULL), pb_f(MLXN_F32, 2, y1s, NULL),
                                                    pb_f(MLXN_F32, 2, y0s, NULL), pb_f(MLXN_F32, 2, y1s, NULL)};
    float *nv = malloc((size_t)(M * K) * 4);
    t_fill(&g_rng, nv, (size_t)(M * K), -2, 2);
    for (int side_ = 0; side_ < 2 && wc[0] && wc[1] && wr[0] && wr[1]; side_++) {
        mlxn_session *s = NULL;
        CHECK_OK(mlxn_session_begin(side_ ? g_ref : g_cuda, &s));
        if (!s) break;
        CHECK_OK(mlxn_matmul(s, X(x), side_ ? wr[0] : wc[0], X(y[0])));
        CHECK_OK(mlxn_matmul(s, X(x), side_ ? wr[1] : wc[1], X(y[1])));
        CHECK_OK(mlxn_session_finish(s)); /* the session goes on; an upload between its ops */
        CHECK_OK(mlxn_buffer_upload(X(x), 0, nv, (size_t)(M * K) * 4));
        CHECK_OK(mlxn_matmul(s, X(x), side_ ? wr[0] : wc[0], X(y[2])));
        CHECK_OK(mlxn_scale(s, X(x), 0.5f, X(x)));
        CHECK_OK(mlxn_matmul(s, X(x), side_ ? wr[1] : wc[1], X(y[3])));
        CHECK_OK(mlxn_session_finish(s));
        mlxn_session_destroy(s);
    }
    const char *what[4] = {"gemm x reuse: first", "gemm x reuse: second weight", "gemm x reuse: after upload",
                           "gemm x reuse: after an in-place kernel"};
    for (int i = 0; i < 4; i++) {
        cmp_f(what[i], y[i], 1e-4);
        pb_free(y[i]);
    }
    pb_free(x);
    free(nv);
    for (int i = 0; i < 2; i++) {
        free_weight(wc[i], hc[i]);
        free_weight(wr[i], hr[i]);
        free_wbytes(&wb[i]);
    }
}

/* ---------------------------------------------------------------- attention, kv cache, im2col */

typedef struct {
    int T, Hq, Hkv, D;
    int64_t C;
    mlxn_dtype kdt;
    int causal, window, ring, use_pos;
    float softcap;
    int32_t pos0; /* positions pos0 .. pos0+T-1 */
    int64_t kv_bound; /* mlxn_attention_params.kv_bound (0: none) */
} attn_case;

/* shuffle: positions are a random permutation of pos0 .. pos0+T-1 (rows out
 * of order: each block of the prefill kernel must find its own key range);
 * general: MLXN_CUDA_ATTN=general, the general kernel for T > 4 */
static void run_attn_case(const attn_case *ac, int shuffle, int general) {
    int64_t qs[3] = {ac->T, ac->Hq, ac->D}, ks[3] = {ac->Hkv, ac->C, ac->D}, T = ac->T;
    pb q = pb_rand(MLXN_F32, 3, qs, -1, 1), k = pb_rand(ac->kdt, 3, ks, -1, 1), v = pb_rand(ac->kdt, 3, ks, -1, 1);
    int32_t *pv = malloc((size_t)T * 4);
    for (int t = 0; t < ac->T; t++) pv[t] = ac->pos0 + t;
    for (int t = ac->T - 1; shuffle && t > 0; t--) {
        int j = (int)(t_rng_u64(&g_rng) % (uint64_t)(t + 1)), x = pv[t];
        pv[t] = pv[j];
        pv[j] = x;
    }
    pb pos = pb_raw(MLXN_I32, 1, &T, pv);
    pb out = pb_f(MLXN_F32, 3, qs, NULL);
    mlxn_attention_params p = {0};
    p.scale = 1.0f / sqrtf((float)ac->D);
    p.softcap = ac->softcap;
    p.causal = ac->causal;
    p.window = ac->window;
    p.ring = ac->ring;
    p.kv_len = ac->pos0 + ac->T;
    p.kv_bound = ac->kv_bound;
    if (general) setenv("MLXN_CUDA_ATTN", "general", 1);
    BOTH(mlxn_attention(s, X(q), X(k), X(v), ac->use_pos ? X(pos) : NULL, &p, X(out)));
    if (general) unsetenv("MLXN_CUDA_ATTN");
    char w[200];
    snprintf(w, sizeof w,
             "attention T=%d Hq=%d Hkv=%d D=%d C=%lld %s causal=%d window=%d ring=%d softcap=%g pos0=%d bound=%lld%s%s%s",
             ac->T, ac->Hq, ac->Hkv, ac->D, (long long)ac->C, mlxn_dtype_name(ac->kdt), ac->causal, ac->window,
             ac->ring, (double)ac->softcap, ac->pos0, (long long)ac->kv_bound, ac->use_pos ? "" : " (kv_len)",
             shuffle ? " shuffled" : "", general ? " [general]" : "");
    cmp_f(w, out, 1e-9);
    pb_free(q); pb_free(k); pb_free(v); pb_free(pos); pb_free(out);
    free(pv);
}

static void test_attention(void) {
    const attn_case cases[] = {
        {1, 32, 8, 128, 4096, MLXN_F16, 1, 0, 0, 1, 0, 3000, 0},
        {1, 32, 8, 128, 4096, MLXN_BF16, 1, 0, 0, 1, 0, 4095, 0},
        {1, 8, 8, 128, 1000, MLXN_F32, 1, 0, 0, 1, 0, 999, 0},
        {4, 8, 2, 64, 700, MLXN_F16, 1, 0, 0, 1, 0, 300, 0},
        {4, 8, 2, 64, 700, MLXN_F16, 1, 0, 0, 0, 0, 300, 0},
        {3, 6, 2, 96, 300, MLXN_F32, 1, 0, 0, 1, 0, 10, 0},
        {2, 12, 2, 128, 256, MLXN_F16, 1, 0, 1, 1, 0, 1000, 0},   /* ring, wrapped */
        {2, 4, 1, 128, 2048, MLXN_BF16, 1, 100, 0, 1, 0, 1500, 0}, /* sliding window */
        {1, 4, 4, 256, 512, MLXN_F16, 1, 0, 0, 1, 30.0f, 511, 0},  /* softcap, D=256 */
        {5, 4, 2, 64, 64, MLXN_F32, 0, 0, 0, 1, 0, 20, 0},         /* not causal */
        {1, 16, 2, 128, 16384, MLXN_F16, 1, 0, 0, 1, 0, 16383, 0}, /* G = 8 */
        {1, 10, 2, 64, 128, MLXN_F32, 1, 0, 0, 1, 0, 0, 0},        /* G = 5 (group of 1), first token */
        /* kv_bound: the decode grid covers the bound, not the capacity */
        {1, 32, 8, 128, 4096, MLXN_F16, 1, 0, 0, 1, 0, 200, 256},
        {4, 8, 2, 64, 700, MLXN_F16, 1, 0, 0, 1, 0, 300, 304},      /* the last position at the bound */
        {1, 16, 2, 128, 16384, MLXN_F16, 1, 0, 0, 1, 0, 1000, 1024}, /* G = 8: heads per block by the bound */
        {1, 8, 8, 128, 1000, MLXN_F32, 1, 0, 0, 0, 0, 99, 100},     /* positions from kv_len */
        /* T > 4: the prefill kernel (attention_prefill.cu: tiles of 64 items,
         * 64 keys) where it applies, else the general path */
        {5, 8, 2, 64, 64, MLXN_F16, 1, 0, 0, 1, 0, 0, 0},          /* G = 4: 16 rows per block */
        {37, 8, 8, 128, 600, MLXN_BF16, 1, 0, 0, 1, 0, 100, 0},    /* G = 1, chunked prefill */
        {130, 16, 8, 64, 1024, MLXN_F32, 1, 0, 0, 1, 0, 0, 0},     /* G = 2 */
        {130, 32, 8, 128, 4096, MLXN_F16, 1, 0, 0, 1, 0, 381, 0},  /* G = 4, C >> keys */
        {70, 16, 2, 128, 300, MLXN_F16, 1, 0, 0, 0, 0, 200, 0},    /* G = 8, positions from kv_len */
        {40, 6, 2, 64, 128, MLXN_BF16, 1, 0, 0, 1, 0, 7, 0},       /* G = 3: one head per block */
        {100, 8, 2, 128, 256, MLXN_BF16, 0, 0, 0, 1, 0, 40, 0},    /* not causal */
        {90, 8, 4, 64, 512, MLXN_F16, 1, 33, 0, 1, 0, 300, 0},     /* sliding window */
        {77, 8, 4, 128, 256, MLXN_F16, 0, 33, 0, 1, 0, 100, 0},    /* not causal, window */
        {65, 4, 4, 128, 192, MLXN_BF16, 1, 0, 0, 1, 30.0f, 10, 0}, /* softcap */
        {64, 8, 2, 64, 64, MLXN_F32, 1, 0, 0, 1, 0, 0, 0},         /* C = T: the whole cache */
        {256, 32, 8, 128, 1024, MLXN_F16, 1, 0, 0, 1, 0, 0, 0},    /* the 8B-model shape, first chunk */
        {20, 8, 2, 128, 64, MLXN_F16, 1, 0, 1, 1, 0, 100, 0},      /* ring: general path */
        {20, 4, 2, 96, 100, MLXN_F32, 1, 0, 0, 1, 0, 30, 0},       /* D = 96: general path */
        {12, 4, 1, 256, 64, MLXN_BF16, 1, 0, 0, 1, 0, 5, 0},       /* D = 256: general path */
    };
    const size_t n = sizeof cases / sizeof cases[0];
    for (size_t i = 0; i < n; i++) run_attn_case(&cases[i], 0, 0);
    /* T > 4 again: rows out of order, and the general kernel (A/B path) */
    for (size_t i = 0; i < n; i++) {
        if (cases[i].T <= 4) continue;
        if (cases[i].use_pos) run_attn_case(&cases[i], 1, 0);
        run_attn_case(&cases[i], 0, 1);
    }
}

/* A decode position at or past the op's kv_bound is an error (the grid
 * does not cover its keys), reported by the session; at bound - 1 it is not. */
static void test_attention_bound_error(void) {
    const int64_t qs[3] = {1, 8, 64}, ks[3] = {2, 1024, 64}, one = 1;
    mlxn_buffer *q = mk1(g_cuda, MLXN_F32, 3, qs, NULL), *k = mk1(g_cuda, MLXN_F16, 3, ks, NULL);
    mlxn_buffer *v = mk1(g_cuda, MLXN_F16, 3, ks, NULL), *out = mk1(g_cuda, MLXN_F32, 3, qs, NULL);
    CHECK_OK(mlxn_buffer_fill_bytes(q, 0));
    CHECK_OK(mlxn_buffer_fill_bytes(k, 0));
    CHECK_OK(mlxn_buffer_fill_bytes(v, 0));
    for (int past = 0; past < 2; past++) {
        int32_t pv = past ? 256 : 255;
        mlxn_buffer *pos = mk1(g_cuda, MLXN_I32, 1, &one, &pv);
        mlxn_attention_params p = {.scale = 0.125f, .causal = 1, .kv_bound = 256};
        mlxn_session *s = NULL;
        CHECK_OK(mlxn_session_begin(g_cuda, &s));
        if (!s) break;
        CHECK_OK(mlxn_attention(s, q, k, v, pos, &p, out));
        mlxn_status st = mlxn_session_finish(s);
        if (past)
            CHECK_MSG(st == MLXN_ERR_RANGE && t_contains(mlxn_last_error(), "kv_bound"),
                      "position 256 with kv_bound 256: status %d (%s)", (int)st, mlxn_last_error());
        else
            CHECK_MSG(st == MLXN_OK, "position 255 with kv_bound 256: %s", mlxn_last_error());
        mlxn_session_destroy(s);
        mlxn_buffer_release(pos);
    }
    mlxn_buffer_release(q);
    mlxn_buffer_release(k);
    mlxn_buffer_release(v);
    mlxn_buffer_release(out);
}

/* rope_kv_append: the one-launch kernel (T <= 8) and the four-op fallback
 * (T > 8) against the reference's rope, rope, kv_append, kv_append. Caches
 * start random (untouched rows must stay), cfg 3 writes one slot twice (the
 * later row wins), cfg 1 rotates part of each head. */
static void test_rope_kv_append(void) {
    const int Hq = 6, Hkv = 2;
    const int64_t C = 40;
    for (int cfg = 0; cfg < 5; cfg++) {
        int64_t T = cfg == 4 ? 12 : cfg == 3 ? 3 : 1, D = cfg == 1 ? 96 : 64;
        int ring = cfg >= 2;
        int32_t pv[12];
        for (int t = 0; t < T; t++) pv[t] = cfg == 0 ? 5 : cfg == 1 ? 39 : cfg == 2 ? 70000 : 100 + t;
        if (cfg == 3) { pv[0] = 41; pv[1] = 81; pv[2] = 50; } /* slots 1, 1, 10 */
        mlxn_rope_params p = {0};
        p.mode = cfg & 1 ? MLXN_ROPE_HALF_SPLIT : MLXN_ROPE_ADJACENT;
        p.rot_dims = cfg == 1 ? 32 : 0;
        p.theta = cfg == 2 ? 500000.0f : 10000.0f;
        rope_scaling(&p, cfg == 2 ? MLXN_ROPE_SCALING_LLAMA3 : cfg == 3 ? MLXN_ROPE_SCALING_LINEAR : 0);
        mlxn_dtype kcdt = k_fdt[(cfg + 1) % 3], vcdt = k_fdt[cfg % 3], vdt = cfg == 3 ? MLXN_BF16 : MLXN_F32;
        int64_t qs[3] = {T, Hq, D}, ks[3] = {T, Hkv, D}, cs[3] = {Hkv, C, D};
        pb pos = pb_raw(MLXN_I32, 1, &T, pv);
        pb q = pb_rand(MLXN_F32, 3, qs, -1, 1), k = pb_rand(MLXN_F32, 3, ks, -1, 1), v = pb_rand(vdt, 3, ks, -1, 1);
        pb kc = pb_rand(kcdt, 3, cs, -1, 1), vc = pb_rand(vcdt, 3, cs, -1, 1);
        BOTH(mlxn_rope_kv_append(s, X(q), X(k), X(v), X(pos), &p, ring, X(kc), X(vc)));
        char w[96];
        snprintf(w, sizeof w, "rope_kv_append cfg %d T=%lld q", cfg, (long long)T);
        cmp_f(w, q, 1e-10);
        snprintf(w, sizeof w, "rope_kv_append cfg %d T=%lld k", cfg, (long long)T);
        cmp_f(w, k, 1e-10);
        snprintf(w, sizeof w, "rope_kv_append cfg %d T=%lld k cache %s", cfg, (long long)T, mlxn_dtype_name(kcdt));
        cmp_f(w, kc, tol_for(kcdt) * 1e-2);
        snprintf(w, sizeof w, "rope_kv_append cfg %d T=%lld v cache %s", cfg, (long long)T, mlxn_dtype_name(vcdt));
        cmp_bytes(w, vc);
        pb_free(pos); pb_free(q); pb_free(k); pb_free(v); pb_free(kc); pb_free(vc);
    }
}

/* rope_kv_attention: CUDA's fused decode step (attn_decr_*: rotation, both
 * appends and attention in one kernel) against the reference's rope_kv_append
 * + attention. Cases put the newest position first in its chunk, mid-chunk,
 * in the last cache slot, in a wrapped ring, behind a window, with several
 * head groups per KV head (only the first writes the cache) and with the
 * whole group per block; T = 2 and MLXN_CUDA_ROPE_ATTN=0 take the separate
 * ops on CUDA too. Caches start random; out, both caches compared (the new
 * key to the rotation's tolerance, values byte for byte). */
static void test_rope_kv_attention(void) {
    typedef struct {
        int T, Hq, Hkv, D, rot, mode, scaling;
        int64_t C;
        mlxn_dtype kdt;
        int window, ring, off;
        float softcap;
        int32_t pos0;
    } rk_case;
    const rk_case cases[] = {
        {1, 9, 3, 64, 0, 0, 0, 256, MLXN_F16, 0, 0, 0, 0, 0},           /* 135M shape, first token */
        {1, 9, 3, 64, 0, 0, 0, 256, MLXN_F16, 0, 0, 0, 0, 100},
        {1, 32, 8, 128, 0, 1, 2, 4096, MLXN_F16, 0, 0, 0, 0, 3000},     /* 8B shape, 4 head groups */
        {1, 32, 8, 128, 0, 1, 2, 4096, MLXN_BF16, 0, 0, 0, 0, 4095},    /* last slot */
        {1, 32, 8, 128, 0, 1, 0, 4096, MLXN_F16, 0, 0, 0, 0, 128},      /* first key of a (128-key) chunk */
        {1, 32, 8, 128, 0, 1, 0, 4096, MLXN_F16, 0, 0, 0, 0, 127},
        {1, 9, 3, 64, 0, 0, 0, 256, MLXN_F16, 0, 0, 0, 0, 200},         /* 135M shape, two active splits */
        {1, 8, 8, 128, 0, 0, 1, 1000, MLXN_F32, 0, 0, 0, 0, 999},
        {1, 12, 2, 128, 0, 1, 0, 256, MLXN_F16, 0, 1, 0, 0, 1000},      /* ring, wrapped */
        {1, 4, 1, 128, 0, 1, 0, 2048, MLXN_BF16, 100, 0, 0, 0, 1500},   /* sliding window */
        {1, 4, 4, 256, 0, 1, 0, 512, MLXN_F16, 0, 0, 0, 30.0f, 511},    /* softcap, D = 256 */
        {1, 16, 2, 128, 0, 1, 2, 16384, MLXN_F16, 0, 0, 0, 0, 9000},    /* G = 8 per block */
        {1, 6, 2, 96, 32, 1, 0, 300, MLXN_F32, 0, 0, 0, 0, 77},         /* partial rotation, D = 96 */
        {1, 10, 2, 64, 48, 0, 1, 128, MLXN_BF16, 0, 0, 0, 0, 5},        /* G = 5, adjacent, partial */
        {1, 9, 3, 64, 0, 1, 0, 256, MLXN_F16, 0, 0, 1, 0, 40},          /* MLXN_CUDA_ROPE_ATTN=0 */
        {2, 8, 2, 64, 0, 1, 0, 256, MLXN_F16, 0, 0, 0, 0, 30},          /* T = 2: separate ops */
    };
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        const rk_case *c = &cases[ci];
        int64_t T = c->T, qs[3] = {T, c->Hq, c->D}, ks[3] = {T, c->Hkv, c->D}, cs[3] = {c->Hkv, c->C, c->D};
        int32_t pv[2] = {c->pos0, c->pos0 + 1};
        pb pos = pb_raw(MLXN_I32, 1, &T, pv);
        pb q = pb_rand(MLXN_F32, 3, qs, -1, 1), k = pb_rand(MLXN_F32, 3, ks, -1, 1);
        pb v = pb_rand(MLXN_F32, 3, ks, -1, 1);
        pb kc = pb_rand(c->kdt, 3, cs, -1, 1), vc = pb_rand(c->kdt, 3, cs, -1, 1), out = pb_f(MLXN_F32, 3, qs, NULL);
        mlxn_rope_params rp = {0};
        rp.mode = c->mode ? MLXN_ROPE_HALF_SPLIT : MLXN_ROPE_ADJACENT;
        rp.rot_dims = c->rot;
        rp.theta = c->scaling == 2 ? 500000.0f : 10000.0f;
        rope_scaling(&rp, c->scaling == 2 ? MLXN_ROPE_SCALING_LLAMA3 : c->scaling == 1 ? MLXN_ROPE_SCALING_LINEAR : 0);
        mlxn_attention_params ap = {0};
        ap.scale = 1.0f / sqrtf((float)c->D);
        ap.softcap = c->softcap;
        ap.causal = 1;
        ap.window = c->window;
        ap.ring = c->ring;
        if (c->off) setenv("MLXN_CUDA_ROPE_ATTN", "0", 1);
        BOTH(mlxn_rope_kv_attention(s, X(q), X(k), X(v), X(pos), &rp, &ap, X(kc), X(vc), X(out)));
        if (c->off) unsetenv("MLXN_CUDA_ROPE_ATTN");
        char w[200];
        snprintf(w, sizeof w, "rope_kv_attention case %zu T=%d Hq=%d Hkv=%d D=%d C=%lld %s pos0=%d", ci, c->T, c->Hq,
                 c->Hkv, c->D, (long long)c->C, mlxn_dtype_name(c->kdt), c->pos0);
        char wo[240];
        snprintf(wo, sizeof wo, "%s out", w);
        cmp_f(wo, out, 1e-9);
        snprintf(wo, sizeof wo, "%s k cache", w);
        cmp_f(wo, kc, tol_for(c->kdt) * 1e-2);
        snprintf(wo, sizeof wo, "%s v cache", w);
        cmp_bytes(wo, vc);
        pb_free(pos); pb_free(q); pb_free(k); pb_free(v); pb_free(kc); pb_free(vc); pb_free(out);
    }
}

static void test_kv_append_im2col(void) {
    for (int ring = 0; ring < 2; ring++) {
        int64_t ss[3] = {3, 2, 64}, cs[3] = {2, 50, 64}, T = 3;
        int32_t pv[3] = {ring ? 77 : 7, ring ? 78 : 8, ring ? 127 : 49};
        pb pos = pb_raw(MLXN_I32, 1, &T, pv);
        for (int di = 0; di < 3; di++)
            for (int dj = 0; dj < 3; dj += 1) {
                pb src = pb_rand(k_fdt[di], 3, ss, -1, 1), cache = pb_rand(k_fdt[dj], 3, cs, -1, 1);
                BOTH(mlxn_kv_append(s, X(src), X(pos), ring, X(cache)));
                char w[64];
                snprintf(w, sizeof w, "kv_append ring=%d %s -> %s", ring, mlxn_dtype_name(k_fdt[di]),
                         mlxn_dtype_name(k_fdt[dj]));
                cmp_bytes(w, cache);
                pb_free(src);
                pb_free(cache);
            }
        pb_free(pos);
    }
    int64_t is[3] = {3, 48, 32}, os[2] = {(48 / 8) * (32 / 8), 3 * 64};
    pb img = pb_rand(MLXN_F32, 3, is, -1, 1), out = pb_f(MLXN_F32, 2, os, NULL);
    BOTH(mlxn_im2col_2d_3ch(s, X(img), 8, X(out)));
    cmp_bytes("im2col", out);
    pb_free(img);
    pb_free(out);
}

/* ---------------------------------------------------------------- device behaviour */

/* mapped buffers: the host writes, a recorded graph copies in (mlxn_copy),
 * runs an op and copies out, the host reads after finish; views' host
 * pointers; upload/download work on them too; copy of odd and aligned sizes
 * byte-identical */
static void test_mapped_copy(void) {
    int64_t three = 3, one = 1;
    mlxn_buffer *io = NULL, *in = NULL, *out = NULL, *x = NULL;
    CHECK_OK(mlxn_buffer_alloc_mapped(g_cuda, MLXN_I32, 1, &three, &io));
    int32_t *h = io ? mlxn_buffer_host_ptr(io) : NULL;
    CHECK(h != NULL);
    if (!h) { mlxn_buffer_release(io); return; }
    CHECK_OK(mlxn_buffer_view(io, 0, MLXN_I32, 1, &one, &in));
    CHECK_OK(mlxn_buffer_view(io, 8, MLXN_I32, 1, &one, &out));
    CHECK(mlxn_buffer_host_ptr(out) == (void *)(h + 2));
    CHECK_OK(mlxn_buffer_alloc(g_cuda, MLXN_I32, 1, &one, &x));
    mlxn_session *s = NULL;
    CHECK_OK(mlxn_session_begin(g_cuda, &s));
    mlxn_graph *g = NULL;
    CHECK_OK(mlxn_graph_begin_record(s));
    CHECK_OK(mlxn_copy(s, in, x));
    CHECK_OK(mlxn_copy(s, x, out));
    CHECK_OK(mlxn_graph_end_record(s, &g));
    for (int rep = 0; rep < 3; rep++) {
        h[0] = -7 + 1000 * rep;
        CHECK_OK(mlxn_graph_replay(s, g));
        CHECK_OK(mlxn_session_finish(s));
        CHECK(h[2] == -7 + 1000 * rep);
    }
    int32_t up = 4242, down = 0;
    CHECK_OK(mlxn_buffer_upload(io, 4, &up, 4));
    CHECK(h[1] == 4242);
    h[1] = 77;
    CHECK_OK(mlxn_buffer_download(io, 4, &down, 4));
    CHECK(down == 77);
    mlxn_graph_destroy(g);
    mlxn_session_destroy(s);
    mlxn_buffer_release(io);
    mlxn_buffer_release(in);
    mlxn_buffer_release(out);
    mlxn_buffer_release(x);
    /* plain copies, odd and 16-byte sizes, through the device */
    const int64_t ns[3] = {7, 4096, 1000003};
    for (int i = 0; i < 3; i++) {
        int64_t n = ns[i];
        pb a = pb_rand(MLXN_F16, 1, &n, -1, 1), b = pb_f(MLXN_F16, 1, &n, NULL);
        BOTH(mlxn_copy(s, X(a), X(b)));
        char w[64];
        snprintf(w, sizeof w, "copy %lld f16", (long long)n);
        cmp_bytes(w, b);
        pb_free(a);
        pb_free(b);
    }
}

static void test_upload_download_pool(void) {
    size_t n = (size_t)40 << 20; /* through the pinned staging path */
    uint8_t *a = malloc(n), *b = malloc(n);
    for (size_t i = 0; i < n; i++) a[i] = (uint8_t)(i * 2654435761u >> 13);
    int64_t sh = (int64_t)n;
    mlxn_buffer *buf = NULL;
    CHECK_OK(mlxn_buffer_alloc(g_cuda, MLXN_U8, 1, &sh, &buf));
    if (buf) {
        CHECK_OK(mlxn_buffer_upload(buf, 0, a, n));
        CHECK_OK(mlxn_buffer_download(buf, 0, b, n));
        t_check_bytes("40 MiB upload/download", b, a, n);
        CHECK_OK(mlxn_buffer_upload(buf, 12345, a + 7, 1000)); /* offset upload */
        memset(b, 0, 1000);
        CHECK_OK(mlxn_buffer_download(buf, 12345, b, 1000));
        t_check_bytes("offset upload", b, a + 7, 1000);
        CHECK_OK(mlxn_buffer_fill_bytes(buf, 0x5A));
        CHECK_OK(mlxn_buffer_download(buf, n - 4096, b, 4096));
        int ok = 1;
        for (int i = 0; i < 4096; i++) ok &= b[i] == 0x5A;
        CHECK_MSG(ok, "fill_bytes did not reach the end of the buffer");
        CHECK(mlxn_buffer_host_ptr(buf) == NULL);
    }
    mlxn_buffer_release(buf);
    /* freed blocks are reused (the allocation cache) and memory accounting returns */
    size_t in_use0, peak0;
    mlxn_device_memory(g_cuda, &in_use0, &peak0);
    for (int i = 0; i < 50; i++) {
        int64_t s2 = 1000 + i * 37;
        mlxn_buffer *t = NULL;
        CHECK_OK(mlxn_buffer_alloc(g_cuda, MLXN_F32, 1, &s2, &t));
        mlxn_buffer_release(t);
    }
    size_t in_use1, peak1;
    mlxn_device_memory(g_cuda, &in_use1, &peak1);
    CHECK(in_use1 == in_use0);
    mlxn_pool *pool = NULL;
    CHECK_OK(mlxn_pool_create(g_cuda, &pool));
    if (pool) {
        mlxn_buffer *p1 = NULL, *p2 = NULL;
        int64_t s1 = 1000, s2 = 3000;
        CHECK_OK(mlxn_pool_alloc(pool, MLXN_F32, 1, &s1, &p1));
        CHECK_OK(mlxn_pool_alloc(pool, MLXN_F32, 1, &s2, &p2));
        if (p1 && p2) {
            float v[3000];
            for (int i = 0; i < 3000; i++) v[i] = (float)i;
            CHECK_OK(mlxn_buffer_upload(p2, 0, v, sizeof v));
            CHECK_OK(mlxn_buffer_upload(p1, 0, v + 5, 4000));
            float r[3000];
            CHECK_OK(mlxn_buffer_download(p2, 0, r, sizeof r));
            t_check_bytes("pool buffers do not overlap", r, v, sizeof v);
        }
        mlxn_buffer_release(p1);
        mlxn_buffer_release(p2);
        mlxn_pool_reset(pool);
        CHECK_OK(mlxn_pool_alloc(pool, MLXN_F32, 1, &s1, &p1));
        mlxn_buffer_release(p1);
        CHECK(mlxn_pool_reserved_bytes(pool) > 0);
        mlxn_pool_destroy(pool);
    }
    free(a);
    free(b);
}

static void test_errors(void) {
    mlxn_device *d = NULL;
    CHECK_ERR(mlxn_device_open("cuda:99", NULL, &d), MLXN_ERR_NOT_FOUND, "ordinal 99");
    /* embedding id out of range: asynchronous, reported by finish; the session stays usable */
    wspec sp = {"emb", MLXN_WEIGHT_DENSE, MLXN_F32, 0, 0, 0};
    wbytes wb;
    make_wbytes(&sp, 10, 64, &wb);
    mlxn_buffer *h[3];
    mlxn_weight *w = make_weight(g_cuda, &sp, 10, 64, &wb, 0, h);
    int32_t ids[2] = {3, 10};
    int64_t T = 2, ys[2] = {2, 64};
    mlxn_buffer *bid = mk1(g_cuda, MLXN_I32, 1, &T, ids), *y = mk1(g_cuda, MLXN_F32, 2, ys, NULL);
    mlxn_session *s = NULL;
    CHECK_OK(mlxn_session_begin(g_cuda, &s));
    if (s && w && bid && y) {
        CHECK_OK(mlxn_embedding(s, w, bid, y));
        CHECK_ERR(mlxn_session_finish(s), MLXN_ERR_RANGE, "token id");
        float row[64];
        CHECK_OK(mlxn_buffer_download(y, 64 * 4, row, sizeof row));
        CHECK(row[0] == 0.0f && row[63] == 0.0f); /* out-of-range row zeroed */
        ids[1] = 9;
        CHECK_OK(mlxn_buffer_upload(bid, 0, ids, sizeof ids));
        CHECK_OK(mlxn_embedding(s, w, bid, y));
        CHECK_OK(mlxn_session_finish(s));
        /* kv_append past a linear cache's capacity */
        int64_t ss[3] = {1, 1, 8}, cs[3] = {1, 4, 8}, one = 1;
        int32_t p = 4;
        mlxn_buffer *src = mk1(g_cuda, MLXN_F32, 3, ss, NULL), *cache = mk1(g_cuda, MLXN_F32, 3, cs, NULL),
                    *pos = mk1(g_cuda, MLXN_I32, 1, &one, &p);
        CHECK_OK(mlxn_kv_append(s, src, pos, 0, cache));
        CHECK_ERR(mlxn_session_finish(s), MLXN_ERR_RANGE, "kv_append");
        mlxn_buffer_release(src);
        mlxn_buffer_release(cache);
        mlxn_buffer_release(pos);
    }
    mlxn_session_destroy(s);
    mlxn_buffer_release(bid);
    mlxn_buffer_release(y);
    free_weight(w, h);
    free_wbytes(&wb);
}

static void test_disk_cache(void) {
    char dir[] = "/tmp/mlxn_cuda_cache_XXXXXX";
    if (!mkdtemp(dir)) { CHECK_MSG(0, "mkdtemp failed"); return; }
    mlxn_device_opts o = {0};
    o.cache_dir = dir;
    for (int round = 0; round < 2; round++) {
        mlxn_device *d = NULL;
        CHECK_OK(mlxn_device_open("cuda", &o, &d));
        if (!d) return;
        int64_t sh[1] = {100};
        mlxn_buffer *a = mk1(d, MLXN_F32, 1, sh, NULL);
        mlxn_session *s = NULL;
        CHECK_OK(mlxn_session_begin(d, &s));
        CHECK_OK(mlxn_scale(s, a, 2.0f, a));
        CHECK_OK(mlxn_session_finish(s));
        mlxn_cuda_dev *cd = d->impl;
        if (round == 0) CHECK_MSG(cd->reg.compiles == 1 && cd->reg.disk_hits == 0, "round 0: %d compiles, %d hits", cd->reg.compiles, cd->reg.disk_hits);
        else CHECK_MSG(cd->reg.compiles == 0 && cd->reg.disk_hits == 1, "round 1: %d compiles, %d hits", cd->reg.compiles, cd->reg.disk_hits);
        mlxn_session_destroy(s);
        mlxn_buffer_release(a);
        mlxn_device_close(d);
    }
}

/* One decode step = kv_append of the new K/V rows at `pos`, RoPE of q at
 * `pos`, attention over the cache. Recorded once; replayed with new
 * positions and inputs uploaded between replays; checked against ref run
 * eagerly on the same data. */
static void test_graph_replay(void) {
    const int Hq = 8, Hkv = 2, D = 128;
    const int64_t C = 1024;
    int64_t qs[3] = {1, Hq, D}, kvs[3] = {1, Hkv, D}, cs[3] = {Hkv, C, D}, one = 1;
    pb q = pb_rand(MLXN_F32, 3, qs, -1, 1), kn = pb_rand(MLXN_F16, 3, kvs, -1, 1), vn = pb_rand(MLXN_F16, 3, kvs, -1, 1);
    pb kc = pb_rand(MLXN_F16, 3, cs, -1, 1), vc = pb_rand(MLXN_F16, 3, cs, -1, 1);
    int32_t p0 = 0;
    pb pos = pb_raw(MLXN_I32, 1, &one, &p0), qr = pb_f(MLXN_F32, 3, qs, NULL), out = pb_f(MLXN_F32, 3, qs, NULL);
    mlxn_rope_params rp = {0};
    rp.mode = MLXN_ROPE_HALF_SPLIT;
    rp.rot_dims = D;
    rp.theta = 10000.0f;
    mlxn_attention_params ap = {0};
    ap.scale = 1.0f / sqrtf((float)D);
    ap.causal = 1;
    mlxn_session *s = NULL;
    CHECK_OK(mlxn_session_begin(g_cuda, &s));
    mlxn_graph *g = NULL;
    if (s) {
        CHECK_OK(mlxn_graph_begin_record(s));
        CHECK_OK(mlxn_kv_append(s, kn.c, pos.c, 0, kc.c));
        CHECK_OK(mlxn_kv_append(s, vn.c, pos.c, 0, vc.c));
        CHECK_OK(mlxn_rope(s, q.c, pos.c, &rp, qr.c));
        CHECK_OK(mlxn_attention(s, qr.c, kc.c, vc.c, pos.c, &ap, out.c));
        CHECK_OK(mlxn_graph_end_record(s, &g));
    }
    const int32_t steps[5] = {0, 1, 2, 500, 1023};
    for (int i = 0; i < 5 && g; i++) {
        int32_t p = steps[i];
        float qv[Hq * D], kv[Hkv * D], vv[Hkv * D];
        t_fill(&g_rng, qv, Hq * D, -1, 1);
        t_fill(&g_rng, kv, Hkv * D, -1, 1);
        t_fill(&g_rng, vv, Hkv * D, -1, 1);
        uint16_t kh[Hkv * D], vh[Hkv * D];
        to_dtype(MLXN_F16, kv, kh, Hkv * D);
        to_dtype(MLXN_F16, vv, vh, Hkv * D);
        for (int side = 0; side < 2; side++) {
            mlxn_buffer *bq = side ? q.r : q.c, *bk = side ? kn.r : kn.c, *bv = side ? vn.r : vn.c,
                        *bp = side ? pos.r : pos.c;
            CHECK_OK(mlxn_buffer_upload(bq, 0, qv, sizeof qv));
            CHECK_OK(mlxn_buffer_upload(bk, 0, kh, sizeof kh));
            CHECK_OK(mlxn_buffer_upload(bv, 0, vh, sizeof vh));
            CHECK_OK(mlxn_buffer_upload(bp, 0, &p, 4));
        }
        CHECK_OK(mlxn_graph_replay(s, g));
        CHECK_OK(mlxn_session_finish(s));
        mlxn_session *sr = NULL;
        CHECK_OK(mlxn_session_begin(g_ref, &sr));
        CHECK_OK(mlxn_kv_append(sr, kn.r, pos.r, 0, kc.r));
        CHECK_OK(mlxn_kv_append(sr, vn.r, pos.r, 0, vc.r));
        CHECK_OK(mlxn_rope(sr, q.r, pos.r, &rp, qr.r));
        CHECK_OK(mlxn_attention(sr, qr.r, kc.r, vc.r, pos.r, &ap, out.r));
        CHECK_OK(mlxn_session_finish(sr));
        mlxn_session_destroy(sr);
        char w[64];
        snprintf(w, sizeof w, "graph replay step pos=%d", p);
        cmp_f(w, out, 1e-9);
        cmp_bytes("graph replay k cache", kc);
    }
    mlxn_graph_destroy(g);
    mlxn_session_destroy(s);
    pb_free(q); pb_free(kn); pb_free(vn); pb_free(kc); pb_free(vc); pb_free(pos); pb_free(qr); pb_free(out);
}

static char g_open_error[512];
static void test_cuda_required(void) {
    CHECK_MSG(0, "MLXN_REQUIRE_CUDA=1 but cuda is unavailable: %s", g_open_error);
}

/* MLXN_TEST_FILTER=a,b runs only the cases whose name contains a or b (the sanitizer runs use it) */
/* Each case draws its data from a generator seeded by its name, so a
 * filtered run (the sanitizers) sees the same data as the full run. */
static uint64_t name_seed(const char *name) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *name; name++) h = (h ^ (uint8_t)*name) * 0x100000001b3ull;
    return h;
}
#define RUN(fn) do { if (t_selected(#fn)) { t_rng_seed(&g_rng, name_seed(#fn)); T_RUN(fn); } } while (0)

int main(void) {
    /* core/device.c references the CUDA backend weakly; with the static library this
     * strong reference is what links cuda_device.o into this program */
    void *volatile force_link = (void *)&mlxn_cuda_device_open;
    (void)force_link;
    const char *req = getenv("MLXN_REQUIRE_CUDA");
    mlxn_status st = mlxn_device_open("cuda", NULL, &g_cuda);
    if (st != MLXN_OK) {
        printf("     no usable CUDA device: %s\n", mlxn_last_error());
        if (req && strcmp(req, "1") == 0) {
            snprintf(g_open_error, sizeof g_open_error, "%s", mlxn_last_error());
            T_RUN(test_cuda_required);
        } else {
            CHECK_MSG(st == MLXN_ERR_UNSUPPORTED || st == MLXN_ERR_NOT_FOUND, "unexpected status %s",
                      mlxn_status_name(st));
            printf("     skipping the CUDA device tests (set MLXN_REQUIRE_CUDA=1 to make this a failure)\n");
        }
        return t_finish();
    }
    printf("     device: %s\n", mlxn_device_description(g_cuda));
    CHECK_OK(mlxn_device_open("ref", NULL, &g_ref));
    if (!g_ref) return t_finish();
    t_rng_seed(&g_rng, 20261125);
    RUN(test_upload_download_pool);
    RUN(test_elementwise);
    RUN(test_norms);
    RUN(test_rope);
    RUN(test_softmax_argmax_topk);
    RUN(test_kv_append_im2col);
    RUN(test_rope_kv_append);
    RUN(test_rope_kv_attention);
    RUN(test_mapped_copy);
    RUN(test_attention);
    RUN(test_matmul_all_formats);
    RUN(test_matmul_fused);
    RUN(test_matmul_streamed);
    RUN(test_attention_bound_error);
    RUN(test_matmul_large_m);
    RUN(test_gemm_x_reuse);
    RUN(test_graph_replay);
    RUN(test_errors);
    RUN(test_disk_cache);
    mlxn_device_close(g_ref);
    mlxn_device_close(g_cuda);
    return t_finish();
}
