/* bench_cuda_ops.c — CUDA kernel benchmarks against the GPU rows of
 * shared/ANCHORS.md (ggml on an H100). Each benchmark records 20 calls of
 * the op into an mlxn graph and replays it; the time per call is the replay
 * time / 20 (CUDA events), the median of 25 replays, with the same buffers
 * reused as ggml's `test-backend-ops perf` does (so inputs under the 50 MB L2
 * may be partly cache-resident). A second figure rotates among enough copies
 * of the inputs (> 150 MB) that every call reads DRAM: the DRAM-bound time,
 * with the bytes it must move and the achieved GB/s. Also measures the
 * device-to-device copy ceiling. Prints a table and writes markdown to
 * argv[1] (default BENCHMARKS.cuda.md). Random, non-zero inputs throughout. */
#include "backend/cuda/cuda_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int CALLS = 20, REPS = 25; /* fewer for the slow (large-M) cases */

static mlxn_device *g_dev;
static const mlxn_cuda_api *g_cu;
static FILE *g_md;
static uint64_t g_seed = 0x9E3779B97F4A7C15ULL;

static uint64_t rnd(void) {
    g_seed ^= g_seed << 13;
    g_seed ^= g_seed >> 7;
    g_seed ^= g_seed << 17;
    return g_seed;
}
static float frnd(float lo, float hi) { return lo + (hi - lo) * (float)((rnd() >> 40) / 16777216.0); }

static void die(const char *what) {
    fprintf(stderr, "bench_cuda_ops: %s: %s\n", what, mlxn_last_error());
    exit(1);
}
#define OK(x) do { if ((x) != MLXN_OK) die(#x); } while (0)

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y;
}

static mlxn_buffer *buf_rand(mlxn_dtype t, int ndim, const int64_t *shape, float lo, float hi) {
    mlxn_buffer *b;
    OK(mlxn_buffer_alloc(g_dev, t, ndim, shape, &b));
    size_t n = mlxn_buffer_nbytes(b);
    uint8_t *h = malloc(n);
    size_t es = mlxn_dtype_size(t);
    for (size_t i = 0; i < n / es; i++) {
        if (t == MLXN_F32 || t == MLXN_F16 || t == MLXN_BF16) mlxn_store_f(h, t, (int64_t)i, frnd(lo, hi));
        else if (t == MLXN_I32) ((int32_t *)h)[i] = (int32_t)lo;
        else memset(h + i * es, (int)(rnd() & 0xff), es);
    }
    OK(mlxn_buffer_upload(b, 0, h, n));
    free(h);
    return b;
}

/* Random weight W [N, K] of a format: packed bytes random, scales sane. */
typedef struct { const char *name; mlxn_weight_format fmt; mlxn_dtype dt; int bits, group; mlxn_gguf_type gt; double anchor[3]; } wkind;

static mlxn_weight *weight_rand(const wkind *k, int64_t N, int64_t K, mlxn_buffer **hold) {
    mlxn_weight_desc d = {0};
    d.format = k->fmt;
    d.rows = N;
    d.cols = K;
    d.bits = k->bits;
    d.group_size = k->group;
    d.gguf_type = k->gt;
    d.name = k->name;
    hold[0] = hold[1] = hold[2] = NULL;
    if (k->fmt == MLXN_WEIGHT_DENSE) {
        int64_t sh[2] = {N, K};
        hold[0] = buf_rand(k->dt, 2, sh, -0.1f, 0.1f);
    } else if (k->fmt == MLXN_WEIGHT_MLX_AFFINE) {
        int64_t sh[1] = {N * K * k->bits / 32}, ss[2] = {N, K / k->group};
        hold[0] = buf_rand(MLXN_U32, 1, sh, 0, 0);
        hold[1] = buf_rand(k->dt, 2, ss, 0.001f, 0.01f);
        hold[2] = buf_rand(k->dt, 2, ss, -0.05f, 0.05f);
    } else {
        int64_t bv, bb;
        mlxn_gguf_type_block(k->gt, &bv, &bb);
        size_t n = (size_t)(N * (K / bv) * bb);
        uint8_t *h = malloc(n);
        for (size_t i = 0; i < n; i++) h[i] = (uint8_t)rnd();
        for (int64_t b = 0; b < N * (K / bv); b++) { /* sane f16 scales: 0x2000-ish = small positive */
            uint8_t *blk = h + b * bb;
            size_t doff = k->gt == MLXN_GGUF_Q6_K ? 208 : 0;
            blk[doff] = (uint8_t)rnd();
            blk[doff + 1] = 0x20;
            if (k->gt == MLXN_GGUF_Q4_1 || k->gt == MLXN_GGUF_Q4_K) { blk[2] = (uint8_t)rnd(); blk[3] = 0x20; }
        }
        int64_t sh[1] = {(int64_t)n};
        OK(mlxn_buffer_alloc(g_dev, MLXN_U8, 1, sh, &hold[0]));
        OK(mlxn_buffer_upload(hold[0], 0, h, n));
        free(h);
    }
    d.data = hold[0];
    d.scales = hold[1];
    d.biases = hold[2];
    mlxn_weight *w;
    OK(mlxn_weight_create(&d, &w));
    return w;
}

/* Time a recorded graph of CALLS calls: returns the median µs per call. */
typedef void (*issue_fn)(mlxn_session *s, void *ctx, int call);

static double time_graph(issue_fn fn, void *ctx) {
    mlxn_session *s;
    OK(mlxn_session_begin(g_dev, &s));
    for (int i = 0; i < 3; i++) fn(s, ctx, i); /* warm-up: compile kernels, fill caches */
    OK(mlxn_session_finish(s));
    mlxn_graph *g;
    OK(mlxn_graph_begin_record(s));
    for (int i = 0; i < CALLS; i++) fn(s, ctx, i);
    OK(mlxn_graph_end_record(s, &g));
    CUstream st = mlxn_cuda_sess_of(s)->stream;
    CUevent e0, e1;
    g_cu->cuEventCreate(&e0, 0);
    g_cu->cuEventCreate(&e1, 0);
    OK(mlxn_graph_replay(s, g));
    OK(mlxn_session_finish(s));
    float t[32];
    for (int r = 0; r < REPS; r++) {
        g_cu->cuEventRecord(e0, st);
        OK(mlxn_graph_replay(s, g));
        g_cu->cuEventRecord(e1, st);
        OK(mlxn_session_finish(s));
        float ms = 0;
        g_cu->cuEventElapsedTime(&ms, e0, e1);
        t[r] = ms * 1000.0f / CALLS;
    }
    qsort(t, REPS, sizeof t[0], cmp_float);
    g_cu->cuEventDestroy(e0);
    g_cu->cuEventDestroy(e1);
    mlxn_graph_destroy(g);
    mlxn_session_destroy(s);
    return t[REPS / 2];
}

static void row(const char *what, double us, double anchor, double us_dram, double bytes) {
    char anc[32] = "-", ratio[32] = "-";
    if (anchor > 0) {
        snprintf(anc, sizeof anc, "%.2f", anchor);
        snprintf(ratio, sizeof ratio, "%.2f", us / anchor);
    }
    double gbs = us_dram > 0 ? bytes / (us_dram * 1e3) : 0;
    printf("%-44s %9.2f %9s %6s %10.2f %8.0f %9.2f\n", what, us, anc, ratio, us_dram, gbs, bytes / 2.93e6);
    fprintf(g_md, "| %s | %.2f | %s | %s | %.2f | %.0f | %.2f |\n", what, us, anc, ratio, us_dram, gbs, bytes / 2.93e6);
    fflush(stdout);
}

/* ---------------------------------------------------------------- matmul */

typedef struct { mlxn_weight **w; int nw; mlxn_buffer *x, *y; } mm_ctx;

static void issue_mm(mlxn_session *s, void *ctx, int call) {
    mm_ctx *c = ctx;
    OK(mlxn_matmul(s, c->x, c->w[call % c->nw], c->y));
}

static void bench_matmul_nk(const wkind *k, int64_t M, int64_t N, int64_t K, const char *tag) {
    enum { MAXW = 8 };
    mlxn_weight *w[MAXW];
    mlxn_buffer *hold[MAXW][3];
    w[0] = weight_rand(k, N, K, hold[0]);
    size_t wbytes = mlxn_weight_nbytes(w[0]);
    int nrot = (int)((150e6 + wbytes - 1) / wbytes) + 1;
    if (nrot > MAXW) nrot = MAXW;
    for (int i = 1; i < nrot; i++) w[i] = weight_rand(k, N, K, hold[i]);
    int64_t xs[2] = {M, K}, ys[2] = {M, N};
    mm_ctx c = {w, 1, buf_rand(MLXN_F32, 2, xs, -1, 1), NULL};
    OK(mlxn_buffer_alloc(g_dev, MLXN_F32, 2, ys, &c.y));
    if (M > 8) { CALLS = 4; REPS = 7; }
    double us = time_graph(issue_mm, &c), us_dram = 0;
    if (M <= 8) {
        c.nw = nrot;
        us_dram = time_graph(issue_mm, &c);
    }
    CALLS = 20;
    REPS = 25;
    double bytes = (double)wbytes + (double)(M * K + M * N) * 4;
    char what[96];
    if (N == 4096 && K == 14336)
        snprintf(what, sizeof what, "matmul %s M=%lld%s", k->name, (long long)M, tag);
    else
        snprintf(what, sizeof what, "matmul %s M=%lld N=%lld K=%lld%s", k->name, (long long)M, (long long)N,
                 (long long)K, tag);
    double anchor = N != 4096 || K != 14336 ? 0 : M == 1 ? k->anchor[0] : M == 8 ? k->anchor[1] : k->anchor[2];
    row(what, us, anchor, us_dram, bytes);
    for (int i = 0; i < nrot; i++) {
        mlxn_weight_destroy(w[i]);
        for (int j = 0; j < 3; j++) mlxn_buffer_release(hold[i][j]);
    }
    mlxn_buffer_release(c.x);
    mlxn_buffer_release(c.y);
}

/* The anchors' shape: W [4096, 14336]. */
static void bench_matmul(const wkind *k, int64_t M) { bench_matmul_nk(k, M, 4096, 14336, ""); }

/* MLXN_BENCH_ONLY=mvsweep: the M=1 kernel variants (env MLXN_CUDA_MV_VARIANT)
 * for MLX 4-bit, Q4_0 and Q4_1, at the anchor shape and at [14336, 4096]. */
static void bench_mv_sweep(const wkind *kinds) {
    static const char *const vs[] = {"", "d", "l", "r", "y"};
    const int fmts[3] = {0, 2, 3}; /* indices of mlx4, Q4_0, Q4_1 in kinds[] */
    for (size_t v = 0; v < sizeof vs / sizeof vs[0]; v++) {
        setenv("MLXN_CUDA_MV_VARIANT", vs[v], 1);
        char tag[16];
        snprintf(tag, sizeof tag, " v=%s", vs[v][0] ? vs[v] : "default");
        for (int f = 0; f < 3; f++) {
            bench_matmul_nk(&kinds[fmts[f]], 1, 4096, 14336, tag);
            bench_matmul_nk(&kinds[fmts[f]], 1, 14336, 4096, tag);
        }
    }
    unsetenv("MLXN_CUDA_MV_VARIANT");
}

/* MLXN_BENCH_ONLY=mvtsweep: the tensor-core kernels (env MLXN_CUDA_MVT=<index>,
 * "off" = the SIMT kernels) for MLX 4-bit at M = 1, 2, 8 and Q4_0 / Q4_1 at
 * M = 1, 8. */
static void bench_mvt_sweep(const wkind *kinds) {
    static const char *const vs[] = {"off", "0", "1", "2", "3", "4", "5"};
    setenv("MLXN_CUDA_MVT_MIN_M", "1", 1); /* let the sweep time M = 1 too */
    for (size_t v = 0; v < sizeof vs / sizeof vs[0]; v++) {
        setenv("MLXN_CUDA_MVT", vs[v], 1);
        char tag[16];
        snprintf(tag, sizeof tag, " mvt=%s", vs[v]);
        const int64_t Ms[3] = {1, 2, 8};
        for (int mi = 0; mi < 3; mi++) {
            bench_matmul_nk(&kinds[0], Ms[mi], 4096, 14336, tag);
            bench_matmul_nk(&kinds[0], Ms[mi], 14336, 4096, tag);
            if (Ms[mi] == 2) continue;
            bench_matmul_nk(&kinds[2], Ms[mi], 4096, 14336, tag); /* Q4_0 */
            bench_matmul_nk(&kinds[3], Ms[mi], 4096, 14336, tag); /* Q4_1 */
        }
    }
    unsetenv("MLXN_CUDA_MVT");
    unsetenv("MLXN_CUDA_MVT_MIN_M");
}

/* MLXN_BENCH_ONLY=mvssweep: the streamed one-row matmul (matvec_stream.cu)
 * on the Llama-3-8B decode shapes (MLX 4-bit g64: down, gate|up, q|k|v, o,
 * lm_head) against the b1 kernels (MLXN_CUDA_MV_STREAM=0), and its launch
 * shape: copy stages, warps per block, warps per row group (parts). */
static void bench_mvs_sweep(const wkind *kinds) {
    static const int64_t nk[5][2] = {{4096, 14336}, {28672, 4096}, {6144, 4096}, {4096, 4096}, {128256, 4096}};
    static const char *const vs[][4] = {/* MV_STREAM, MVS_STAGES, MVS_WARPS, MVS_PARTS */
                                        {"0", NULL, NULL, NULL}, {NULL, NULL, NULL, NULL}, {NULL, "2", NULL, NULL},
                                        {NULL, "3", NULL, NULL}, {NULL, "4", NULL, NULL},  {NULL, NULL, "8", NULL},
                                        {NULL, NULL, NULL, "1"}, {NULL, NULL, NULL, "2"},  {NULL, NULL, NULL, "4"}};
    static const char *const names[4] = {"MLXN_CUDA_MV_STREAM", "MLXN_CUDA_MVS_STAGES", "MLXN_CUDA_MVS_WARPS",
                                         "MLXN_CUDA_MVS_PARTS"};
    static const char *const tags[4] = {"stream", "S", "W", "P"};
    const char *which = getenv("MLXN_BENCH_MVS_SHAPES"); /* e.g. "01": down and gate|up only */
    const char *vsel = getenv("MLXN_BENCH_MVS_VARIANTS"); /* e.g. "15": STREAM=0 and S=3 only */
    setenv("MLXN_CUDA_MVS_MIN_MB", "0", 1); /* the kernel on every shape, whatever the default takes */
    setenv("MLXN_CUDA_MVS_MAX_K", "1000000", 1);
    for (size_t v = 0; v < sizeof vs / sizeof vs[0]; v++) {
        if (vsel && !strchr(vsel, (int)('0' + v))) continue;
        char tag[64] = " ";
        for (int i = 0; i < 4; i++) {
            if (vs[v][i]) {
                setenv(names[i], vs[v][i], 1);
                snprintf(tag + strlen(tag), sizeof tag - strlen(tag), "%s=%s ", tags[i], vs[v][i]);
            } else {
                unsetenv(names[i]);
            }
        }
        if (!strcmp(tag, " ")) snprintf(tag, sizeof tag, " default");
        for (int i = 0; i < 5; i++)
            if (!which || strchr(which, '0' + i)) bench_matmul_nk(&kinds[0], 1, nk[i][0], nk[i][1], tag);
    }
    for (int i = 0; i < 4; i++) unsetenv(names[i]);
    unsetenv("MLXN_CUDA_MVS_MIN_MB");
    unsetenv("MLXN_CUDA_MVS_MAX_K");
}

/* MLXN_BENCH_ONLY=midm: M = 16 and 64 (short prompts) for MLX 4-bit, Q4_0 and
 * Q4_1 on the tensor-core matvec (default) and on the bf16 GEMM path
 * (MLXN_CUDA_MVT=off). */
static void bench_mid_m(const wkind *kinds) {
    const int fk[3] = {0, 2, 3};
    for (int v = 0; v < 2; v++) {
        if (v) setenv("MLXN_CUDA_MVT", "off", 1);
        for (int f = 0; f < 3; f++)
            for (int64_t M = 16; M <= 64; M *= 4) bench_matmul_nk(&kinds[fk[f]], M, 4096, 14336, v ? " mvt=off" : "");
    }
    unsetenv("MLXN_CUDA_MVT");
}

/* ---------------------------------------------------------------- attention */

typedef struct { mlxn_buffer *q, *k[4], *v[4], *pos, *out; int nrot; mlxn_attention_params p; } at_ctx;

static void issue_at(mlxn_session *s, void *ctx, int call) {
    at_ctx *c = ctx;
    int i = call % c->nrot;
    OK(mlxn_attention(s, c->q, c->k[i], c->v[i], c->pos, &c->p, c->out));
}

static void bench_attention(int Hq, int Hkv, int64_t ctxlen, double anchor) {
    const int D = 128;
    at_ctx c = {0};
    int64_t qs[3] = {1, Hq, D}, ks[3] = {Hkv, ctxlen, D}, one = 1;
    c.q = buf_rand(MLXN_F32, 3, qs, -1, 1);
    size_t kvbytes = (size_t)(2 * Hkv * ctxlen * D * 2);
    int nrot = (int)((150e6 + kvbytes - 1) / kvbytes) + 1;
    if (nrot > 4) nrot = 4;
    for (int i = 0; i < nrot; i++) {
        c.k[i] = buf_rand(MLXN_F16, 3, ks, -1, 1);
        c.v[i] = buf_rand(MLXN_F16, 3, ks, -1, 1);
    }
    c.pos = buf_rand(MLXN_I32, 1, &one, (float)(ctxlen - 1), 0);
    OK(mlxn_buffer_alloc(g_dev, MLXN_F32, 3, qs, &c.out));
    c.p.scale = 1.0f / sqrtf((float)D);
    c.p.causal = 1;
    c.nrot = 1;
    double us = time_graph(issue_at, &c);
    c.nrot = nrot;
    double us_dram = time_graph(issue_at, &c);
    char what[96];
    snprintf(what, sizeof what, "attention decode hd128 Hq=%d Hkv=%d ctx=%lld f16", Hq, Hkv, (long long)ctxlen);
    row(what, us, anchor, us_dram, (double)kvbytes + Hq * D * 8.0);
    for (int i = 0; i < nrot; i++) {
        mlxn_buffer_release(c.k[i]);
        mlxn_buffer_release(c.v[i]);
    }
    mlxn_buffer_release(c.q);
    mlxn_buffer_release(c.pos);
    mlxn_buffer_release(c.out);
}

/* Prefill attention: T = 512 query rows at positions 0..511 over an f16
 * cache of C = 4096, causal, hd 128: the prefill kernel (default block
 * order, then MLXN_CUDA_ATTN_PF_ORDER=plain), then the general kernel
 * (MLXN_CUDA_ATTN=general) for A/B. No anchor: "floor" is the causal FLOP
 * count (QKᵀ and PV: 4 * D * Hq * T(T+1)/2 = 2.15 GFLOP for Hq = 32) at an
 * assumed 60 TFLOP/s f32 (H100 SXM FMA peak ~67); ratio = µs / floor. */
static void bench_attention_prefill(int Hq, int Hkv) {
    const int D = 128, T = 512;
    const int64_t C = 4096;
    at_ctx c = {0};
    int64_t qs[3] = {T, Hq, D}, ks[3] = {Hkv, C, D}, tt = T;
    c.q = buf_rand(MLXN_F32, 3, qs, -1, 1);
    c.k[0] = buf_rand(MLXN_F16, 3, ks, -1, 1);
    c.v[0] = buf_rand(MLXN_F16, 3, ks, -1, 1);
    int32_t pv[512];
    for (int t = 0; t < T; t++) pv[t] = t;
    OK(mlxn_buffer_alloc(g_dev, MLXN_I32, 1, &tt, &c.pos));
    OK(mlxn_buffer_upload(c.pos, 0, pv, sizeof pv));
    OK(mlxn_buffer_alloc(g_dev, MLXN_F32, 3, qs, &c.out));
    c.p.scale = 1.0f / sqrtf((float)D);
    c.p.causal = 1;
    c.nrot = 1;
    const double flops = 4.0 * D * Hq * (double)T * (T + 1) / 2, floor_us = flops / 60e12 * 1e6;
    static const char *const tags[3] = {"", " (plain order)", " (general)"};
    for (int v = 0; v < 3; v++) {
        if (v == 1) setenv("MLXN_CUDA_ATTN_PF_ORDER", "plain", 1);
        if (v == 2) setenv("MLXN_CUDA_ATTN", "general", 1);
        CALLS = 10;
        REPS = 11;
        double us = time_graph(issue_at, &c);
        CALLS = 20;
        REPS = 25;
        unsetenv("MLXN_CUDA_ATTN_PF_ORDER");
        unsetenv("MLXN_CUDA_ATTN");
        char what[96];
        snprintf(what, sizeof what, "attention prefill T=%d hd128 Hq=%d Hkv=%d f16%s", T, Hq, Hkv, tags[v]);
        printf("%-44s %9.2f %9s %6.2f %10s %8s %9.2f  (%.2f GFLOP, %.1f TFLOP/s)\n", what, us, "-", us / floor_us, "-",
               "-", floor_us, flops * 1e-9, flops / (us * 1e6));
        fprintf(g_md, "| %s | %.2f | - | %.2f | - | - | %.2f (FLOP floor at 60 TFLOP/s) |\n", what, us, us / floor_us,
                floor_us);
        fflush(stdout);
    }
    mlxn_buffer_release(c.q);
    mlxn_buffer_release(c.k[0]);
    mlxn_buffer_release(c.v[0]);
    mlxn_buffer_release(c.pos);
    mlxn_buffer_release(c.out);
}

/* ---------------------------------------------------------------- rope, copy */

typedef struct { mlxn_buffer *x, *pos, *y; mlxn_rope_params p; } rope_ctx;
static void issue_rope(mlxn_session *s, void *ctx, int call) {
    rope_ctx *c = ctx;
    (void)call;
    OK(mlxn_rope(s, c->x, c->pos, &c->p, c->y));
}

static void bench_rope(void) {
    int64_t sh[3] = {512, 32, 128}, T = 512;
    rope_ctx c = {0};
    c.x = buf_rand(MLXN_F32, 3, sh, -1, 1);
    c.pos = buf_rand(MLXN_I32, 1, &T, 100, 0);
    OK(mlxn_buffer_alloc(g_dev, MLXN_F32, 3, sh, &c.y));
    c.p.mode = MLXN_ROPE_ADJACENT;
    c.p.rot_dims = 128;
    c.p.theta = 10000.0f;
    double us = time_graph(issue_rope, &c);
    row("rope f32 [512 rows, 32 heads, 128]", us, 12.30, 0, 512.0 * 32 * 128 * 8);
    mlxn_buffer_release(c.x);
    mlxn_buffer_release(c.pos);
    mlxn_buffer_release(c.y);
}

static void bench_copy(void) {
    size_t n = (size_t)1 << 30;
    CUdeviceptr a, b;
    if (g_cu->cuMemAlloc(&a, n) != CUDA_SUCCESS || g_cu->cuMemAlloc(&b, n) != CUDA_SUCCESS) die("copy alloc");
    g_cu->cuMemsetD8(a, 0x3c, n);
    CUevent e0, e1;
    g_cu->cuEventCreate(&e0, 0);
    g_cu->cuEventCreate(&e1, 0);
    float t[7];
    for (int r = 0; r < 7; r++) {
        g_cu->cuEventRecord(e0, NULL);
        g_cu->cuMemcpyDtoDAsync(b, a, n, NULL);
        g_cu->cuEventRecord(e1, NULL);
        g_cu->cuEventSynchronize(e1);
        g_cu->cuEventElapsedTime(&t[r], e0, e1);
    }
    qsort(t, 7, sizeof t[0], cmp_float);
    double tbs = 2.0 * n / (t[3] * 1e-3) / 1e12;
    printf("device-to-device copy 1 GiB: %.3f ms, %.2f TB/s (read + write)\n", t[3], tbs);
    fprintf(g_md, "\nDevice-to-device copy, 1 GiB: %.3f ms = %.2f TB/s counting bytes read + written (ANCHORS: 2.93).\n\n",
            t[3], tbs);
    g_cu->cuMemFree(a);
    g_cu->cuMemFree(b);
    g_cu->cuEventDestroy(e0);
    g_cu->cuEventDestroy(e1);
}

int main(int argc, char **argv) {
    /* core/device.c references the CUDA backend weakly; with the static library this
     * strong reference is what links cuda_device.o into this program */
    void *volatile force_link = (void *)&mlxn_cuda_device_open;
    (void)force_link;
    const char *mdpath = argc > 1 ? argv[1] : "BENCHMARKS.cuda.md";
    const char *only = getenv("MLXN_BENCH_ONLY");
    /* every GEMM call casts its x again (the anchors quantize x per call too);
     * without this, repeated calls on one x would reuse the bf16 copy */
    setenv("MLXN_CUDA_GEMM_RECAST", "1", 1);
    if (mlxn_device_open("cuda", NULL, &g_dev) != MLXN_OK) {
        fprintf(stderr, "bench_cuda_ops: no CUDA device: %s\n", mlxn_last_error());
        return 1;
    }
    if (mlxn_cuda_load_driver(&g_cu) != MLXN_OK) die("driver");
    g_md = fopen(mdpath, "w");
    if (!g_md) die("cannot open the markdown output");
    fprintf(g_md, "# CUDA kernel benchmarks\n\nCard: %s. Time per call = replay of a recorded graph of %d calls / %d, "
                  "median of %d replays (CUDA events), same buffers reused (the anchors' method). \"DRAM\" rotates "
                  "among input copies > 150 MB so each call reads device memory; GB/s = bytes that call must move / "
                  "its time; floor = those bytes / 2.93 TB/s.\n",
            mlxn_device_description(g_dev), CALLS, CALLS, REPS);
    bench_copy();
    fprintf(g_md, "| benchmark | µs | anchor µs | ratio | DRAM µs | DRAM GB/s | floor µs |\n|---|---|---|---|---|---|---|\n");
    printf("%-44s %9s %9s %6s %10s %8s %9s\n", "benchmark", "us", "anchor", "ratio", "DRAM us", "GB/s", "floor us");
    static const wkind kinds[] = {
        {"mlx4 g64 bf16", MLXN_WEIGHT_MLX_AFFINE, MLXN_BF16, 4, 64, 0, {14.71, 33.71, 318.46}},
        {"mlx8 g64 bf16", MLXN_WEIGHT_MLX_AFFINE, MLXN_BF16, 8, 64, 0, {27.51, 46.37, 318.84}},
        {"Q4_0", MLXN_WEIGHT_GGUF, MLXN_F16, 0, 0, MLXN_GGUF_Q4_0, {14.71, 33.71, 318.46}},
        {"Q4_1", MLXN_WEIGHT_GGUF, MLXN_F16, 0, 0, MLXN_GGUF_Q4_1, {12.47, 32.30, 350.46}},
        {"Q8_0", MLXN_WEIGHT_GGUF, MLXN_F16, 0, 0, MLXN_GGUF_Q8_0, {27.51, 46.37, 318.84}},
        {"Q4_K", MLXN_WEIGHT_GGUF, MLXN_F16, 0, 0, MLXN_GGUF_Q4_K, {16.75, 67.55, 352.74}},
        {"Q6_K", MLXN_WEIGHT_GGUF, MLXN_F16, 0, 0, MLXN_GGUF_Q6_K, {29.81, 62.29, 425.07}},
        {"f16", MLXN_WEIGHT_DENSE, MLXN_F16, 0, 0, 0, {40.50, 47.09, 136.96}},
        {"bf16", MLXN_WEIGHT_DENSE, MLXN_BF16, 0, 0, 0, {40.21, 47.39, 120.46}},
    };
    if (only && (strcmp(only, "mvsweep") == 0 || strcmp(only, "mvtsweep") == 0 || strcmp(only, "midm") == 0 ||
                 strcmp(only, "mvssweep") == 0)) {
        if (strcmp(only, "mvsweep") == 0) bench_mv_sweep(kinds);
        else if (strcmp(only, "mvssweep") == 0) bench_mvs_sweep(kinds);
        else if (strcmp(only, "midm") == 0) bench_mid_m(kinds);
        else bench_mvt_sweep(kinds);
        fclose(g_md);
        mlxn_device_close(g_dev);
        return 0;
    }
    const int64_t Ms[3] = {1, 8, 512};
    for (int mi = 0; mi < 3; mi++)
        for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
            if (only && !strstr(only, "matmul")) continue;
            /* M=512: the targets only (MLX 4-bit, Q4_0, Q4_K, bf16) */
            if (Ms[mi] == 512 && i != 0 && i != 2 && i != 5 && i != 8) continue;
            bench_matmul(&kinds[i], Ms[mi]);
        }
    if (!only || strstr(only, "attention")) {
        bench_attention(32, 8, 16384, 38.41);
        bench_attention(32, 8, 8192, 23.01);
        bench_attention(32, 8, 4096, 14.11);
        bench_attention(8, 8, 16384, 28.83);
        bench_attention(32, 8, 512, 0);
    }
    if (only && strstr(only, "attng")) { /* decode heads per block (MLXN_CUDA_ATTN_G) */
        static const char *const gs[3] = {"1", "2", "4"};
        for (int i = 0; i < 3; i++) {
            setenv("MLXN_CUDA_ATTN_G", gs[i], 1);
            printf("MLXN_CUDA_ATTN_G=%s\n", gs[i]);
            fprintf(g_md, "| MLXN_CUDA_ATTN_G=%s | | | | | | |\n", gs[i]);
            bench_attention(32, 8, 16384, 38.41);
            bench_attention(32, 8, 4096, 14.11);
            bench_attention(32, 8, 512, 0);
        }
        unsetenv("MLXN_CUDA_ATTN_G");
    }
    if (!only || strstr(only, "prefill")) {
        bench_attention_prefill(32, 8);
        bench_attention_prefill(8, 8);
    }
    if (!only) bench_rope();
    fclose(g_md);
    mlxn_device_close(g_dev);
    return 0;
}
