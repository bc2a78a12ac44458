/* bench_cpu_ops.c — times the CPU matmul rows of ANCHORS.md: W [4096 out,
 * 14336 in] (a Llama-3-8B FFN down projection) in f16, bf16, GGUF Q4_0,
 * Q4_1, Q8_0, Q4_K, Q6_K and MLX affine 4-bit g64 (f16 scales), x [M, 14336]
 * f32 for M = 1 and M = 8, through the public API on the "cpu" device with
 * 1 and with 2 threads (the anchors' machine has 2 cores). Random non-zero data (GGUF blocks are random
 * bytes with sane f16 scales), warm-up, then the median of many runs, the
 * same buffers reused run after run (like ggml's test-backend-ops perf). It
 * also measures this machine's memory bandwidth (a 512 MiB memcpy, bytes
 * read + written, and a read-only sum) and prints, per row: µs per call,
 * GB/s of weight bytes, the ratio to the ggml anchor and the fraction of the
 * measured read bandwidth (1 and 2 threads). Output is a Markdown table.
 * --rotate R cycles through R independent copies of W (R * 33 MB for the
 * 4-bit formats), so the weights come from DRAM rather than the 32 MB L3: the
 * DRAM-bound figure; the default (R = 1) reuses one W like ggml's harness.
 * Usage: bench_cpu_ops [--threads N] [--quick] [--only NAME] [--rotate R] */
#include "mlxn.h"

#include <immintrin.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static double cpu_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static uint64_t g_rng = 0x9E3779B97F4A7C15ull;
static uint64_t rng(void) {
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return g_rng;
}
static float frand(float lo, float hi) {
    float v;
    do { v = lo + (hi - lo) * (float)((rng() >> 40) * (1.0 / 16777216.0)); } while (v == 0.0f);
    return v;
}
static void fill_bytes(uint8_t *p, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) { uint64_t v = rng(); memcpy(p + i, &v, 8); }
    for (; i < n; i++) p[i] = (uint8_t)rng();
}

/* ---------------------------------------------------------------- memory bandwidth */

__attribute__((target("avx2"))) static double read_sum(const uint8_t *p, size_t n) {
    __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
    for (size_t i = 0; i + 128 <= n; i += 128) {
        a0 = _mm256_add_epi64(a0, _mm256_loadu_si256((const __m256i *)(const void *)(p + i)));
        a1 = _mm256_add_epi64(a1, _mm256_loadu_si256((const __m256i *)(const void *)(p + i + 32)));
        a2 = _mm256_add_epi64(a2, _mm256_loadu_si256((const __m256i *)(const void *)(p + i + 64)));
        a3 = _mm256_add_epi64(a3, _mm256_loadu_si256((const __m256i *)(const void *)(p + i + 96)));
    }
    a0 = _mm256_add_epi64(_mm256_add_epi64(a0, a1), _mm256_add_epi64(a2, a3));
    long long v[4];
    _mm256_storeu_si256((__m256i *)(void *)v, a0);
    return (double)(v[0] + v[1] + v[2] + v[3]);
}

typedef struct { const uint8_t *p; size_t n; double sum; } rd_arg;
static void *rd_thread(void *a) {
    rd_arg *r = a;
    r->sum = read_sum(r->p, r->n);
    return NULL;
}

/* Read-only bandwidth with nt threads (each reads its own contiguous part). */
static double read_bw_threads(const uint8_t *a, size_t n, int nt) {
    double best = 1e9;
    for (int it = 0; it < 5; it++) {
        pthread_t th[16];
        rd_arg args[16];
        double t = now_s();
        for (int i = 0; i < nt; i++) {
            args[i] = (rd_arg){a + n / nt * i, n / nt, 0};
            pthread_create(&th[i], NULL, rd_thread, &args[i]);
        }
        for (int i = 0; i < nt; i++) pthread_join(th[i], NULL);
        t = now_s() - t;
        if (t < best) best = t;
    }
    return (double)n / best / 1e9;
}

static double g_read2_gbs;

static void measure_bandwidth(double *copy_gbs, double *read_gbs) {
    const size_t n = (size_t)512 << 20;
    uint8_t *a = malloc(n), *b = malloc(n);
    if (!a || !b) { *copy_gbs = *read_gbs = 0; free(a); free(b); return; }
    memset(a, 1, n);
    memset(b, 2, n);
    double best = 1e9;
    for (int i = 0; i < 5; i++) {
        double t = now_s();
        memcpy(b, a, n);
        t = now_s() - t;
        if (t < best) best = t;
    }
    *copy_gbs = 2.0 * (double)n / best / 1e9;
    best = 1e9;
    volatile double sink = 0;
    for (int i = 0; i < 5; i++) {
        double t = now_s();
        sink += read_sum(a, n);
        t = now_s() - t;
        if (t < best) best = t;
    }
    (void)sink;
    *read_gbs = (double)n / best / 1e9;
    g_read2_gbs = read_bw_threads(a, n, 2);
    free(a);
    free(b);
}

/* ---------------------------------------------------------------- weights */

typedef struct fmt {
    const char *name;
    mlxn_weight_format wf;
    mlxn_dtype dt;      /* dense dtype / MLX scale dtype */
    mlxn_gguf_type gt;
    double anchor_m1, anchor_m8; /* ggml CPU µs (ANCHORS.md), 0 = none */
    int bits;                    /* MLX affine */
} fmt;

static const fmt g_fmts[] = {
    {"f16", MLXN_WEIGHT_DENSE, MLXN_F16, 0, 2559, 0, 0},
    {"bf16", MLXN_WEIGHT_DENSE, MLXN_BF16, 0, 2374, 8410, 0},
    {"Q4_0", MLXN_WEIGHT_GGUF, 0, MLXN_GGUF_Q4_0, 1383, 9859, 0},
    {"Q4_1", MLXN_WEIGHT_GGUF, 0, MLXN_GGUF_Q4_1, 1836, 0, 0},
    {"Q8_0", MLXN_WEIGHT_GGUF, 0, MLXN_GGUF_Q8_0, 1442, 9308, 0},
    {"Q4_K", MLXN_WEIGHT_GGUF, 0, MLXN_GGUF_Q4_K, 906, 6835, 0},
    {"Q6_K", MLXN_WEIGHT_GGUF, 0, MLXN_GGUF_Q6_K, 1202, 0, 0},
    {"MLX 4-bit g64", MLXN_WEIGHT_MLX_AFFINE, MLXN_F16, 0, 1383, 9859, 4}, /* anchor: ggml Q4_0 */
    /* not in ANCHORS.md: a K-quant with a fast path, and an MLX width without one */
    {"Q5_K", MLXN_WEIGHT_GGUF, 0, MLXN_GGUF_Q5_K, 0, 0, 0},
    {"MLX 6-bit g64", MLXN_WEIGHT_MLX_AFFINE, MLXN_F16, 0, 0, 0, 6},
};

/* f16 scale fields of each GGUF block type (byte offsets). */
static void gguf_scale_offsets(mlxn_gguf_type t, int offs[2]) {
    offs[0] = offs[1] = -1;
    switch (t) {
    case MLXN_GGUF_Q4_0: case MLXN_GGUF_Q8_0: offs[0] = 0; break;
    case MLXN_GGUF_Q4_1: case MLXN_GGUF_Q4_K: case MLXN_GGUF_Q5_K: offs[0] = 0; offs[1] = 2; break;
    case MLXN_GGUF_Q6_K: offs[0] = 208; break;
    default: break;
    }
}

static mlxn_status make_weight(mlxn_device *d, const fmt *f, int64_t N, int64_t K, mlxn_weight **out) {
    mlxn_buffer *data = NULL, *sc = NULL, *bi = NULL;
    mlxn_status st;
    if (f->wf == MLXN_WEIGHT_DENSE) {
        int64_t n = N * K;
        if ((st = mlxn_buffer_alloc(d, f->dt, 1, &n, &data))) return st;
        uint16_t *p = mlxn_buffer_host_ptr(data);
        for (int64_t i = 0; i < n; i++) {
            float v = frand(-1, 1);
            p[i] = f->dt == MLXN_F16 ? mlxn_f32_to_f16(v) : mlxn_f32_to_bf16(v);
        }
    } else if (f->wf == MLXN_WEIGHT_GGUF) {
        int64_t bv, bb;
        mlxn_gguf_type_block(f->gt, &bv, &bb);
        int64_t nblk = N * K / bv, n = nblk * bb;
        if ((st = mlxn_buffer_alloc(d, MLXN_U8, 1, &n, &data))) return st;
        uint8_t *p = mlxn_buffer_host_ptr(data);
        fill_bytes(p, (size_t)n);
        int offs[2];
        gguf_scale_offsets(f->gt, offs);
        for (int64_t b = 0; b < nblk; b++)
            for (int j = 0; j < 2; j++)
                if (offs[j] >= 0) {
                    uint16_t h = mlxn_f32_to_f16(frand(-0.02f, 0.02f));
                    memcpy(p + b * bb + offs[j], &h, 2);
                }
    } else {
        int64_t n = N * K * f->bits / 8, ng = N * K / 64;
        if ((st = mlxn_buffer_alloc(d, MLXN_U8, 1, &n, &data))) return st;
        fill_bytes(mlxn_buffer_host_ptr(data), (size_t)n);
        if ((st = mlxn_buffer_alloc(d, f->dt, 1, &ng, &sc)) || (st = mlxn_buffer_alloc(d, f->dt, 1, &ng, &bi))) {
            mlxn_buffer_release(data); mlxn_buffer_release(sc);
            return st;
        }
        uint16_t *ps = mlxn_buffer_host_ptr(sc), *pb = mlxn_buffer_host_ptr(bi);
        for (int64_t i = 0; i < ng; i++) { ps[i] = mlxn_f32_to_f16(frand(-0.02f, 0.02f)); pb[i] = mlxn_f32_to_f16(frand(-0.1f, 0.1f)); }
    }
    mlxn_weight_desc wd = {.format = f->wf, .rows = N, .cols = K, .data = data, .scales = sc, .biases = bi,
                           .bits = f->bits, .group_size = 64, .gguf_type = f->gt, .name = f->name};
    st = mlxn_weight_create(&wd, out);
    mlxn_buffer_release(data);
    mlxn_buffer_release(sc);
    mlxn_buffer_release(bi);
    return st;
}

/* Median wall µs per matmul call over `runs` after `warm` warm-up calls;
 * *cpu_us: median process CPU µs per call (all threads; on a shared machine
 * this is what the work costs when a core is not taken away from us). */
static double time_matmul(mlxn_device *d, mlxn_weight **ws, int nw, int64_t M, int64_t K, int64_t N, int warm,
                          int runs, double *cpu_us) {
    int64_t xs[2] = {M, K}, ys[2] = {M, N};
    mlxn_buffer *x = NULL, *y = NULL;
    mlxn_session *s = NULL;
    if (mlxn_buffer_alloc(d, MLXN_F32, 2, xs, &x) || mlxn_buffer_alloc(d, MLXN_F32, 2, ys, &y) ||
        mlxn_session_begin(d, &s)) {
        fprintf(stderr, "setup failed: %s\n", mlxn_last_error());
        return -1;
    }
    float *px = mlxn_buffer_host_ptr(x);
    for (int64_t i = 0; i < M * K; i++) px[i] = frand(-1, 1);
    double *t = malloc(sizeof(double) * (size_t)runs), *tc = malloc(sizeof(double) * (size_t)runs);
    double med = -1;
    for (int i = 0; i < warm + runs; i++) {
        double c0 = cpu_s(), t0 = now_s();
        mlxn_status st = mlxn_matmul(s, x, ws[i % nw], y);
        if (st == MLXN_OK) st = mlxn_session_finish(s);
        double dt = now_s() - t0, dc = cpu_s() - c0;
        if (st != MLXN_OK) { fprintf(stderr, "matmul failed: %s\n", mlxn_last_error()); goto done; }
        if (i >= warm) { t[i - warm] = dt; tc[i - warm] = dc; }
    }
    qsort(t, (size_t)runs, sizeof *t, cmp_d);
    qsort(tc, (size_t)runs, sizeof *tc, cmp_d);
    med = t[runs / 2] * 1e6;
    *cpu_us = tc[runs / 2] * 1e6;
done:
    free(t);
    free(tc);
    mlxn_session_destroy(s);
    mlxn_buffer_release(x);
    mlxn_buffer_release(y);
    return med;
}

int main(int argc, char **argv) {
    int threads_list[2] = {1, 2}, n_thr = 2, quick = 0, rotate = 1;
    const char *only = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc) { threads_list[0] = atoi(argv[++i]); n_thr = 1; }
        else if (!strcmp(argv[i], "--quick")) quick = 1;
        else if (!strcmp(argv[i], "--only") && i + 1 < argc) only = argv[++i];
        else if (!strcmp(argv[i], "--rotate") && i + 1 < argc) {
            rotate = atoi(argv[++i]);
            if (rotate < 1 || rotate > 16) rotate = 1;
        }
        else { fprintf(stderr, "usage: %s [--threads N] [--quick] [--only NAME] [--rotate R]\n", argv[0]); return 2; }
    }
    const int64_t N = 4096, K = 14336;
    double copy_gbs, read_gbs;
    measure_bandwidth(&copy_gbs, &read_gbs);
    printf("memory bandwidth: memcpy %.1f GB/s (read + write), read-only %.1f GB/s (1 thread), %.1f GB/s (2 threads)\n\n",
           copy_gbs, read_gbs, g_read2_gbs);
    for (int ti = 0; ti < n_thr; ti++) {
        mlxn_device_opts o = {.n_threads = threads_list[ti]};
        mlxn_device *d = NULL;
        if (mlxn_device_open("cpu", &o, &d)) { fprintf(stderr, "cpu: %s\n", mlxn_last_error()); return 1; }
        printf("device: %s%s\n\n", mlxn_device_description(d), rotate > 1 ? " (weights rotated)" : "");
        const double bw = threads_list[ti] == 1 ? read_gbs : g_read2_gbs;
        printf("| W 4096x14336 | M | µs/call | CPU µs/call | weight GB/s | anchor µs | anchor/ours | of read BW (%.1f GB/s) |\n", bw);
        printf("|---|---|---|---|---|---|---|---|\n");
        for (size_t fi = 0; fi < sizeof g_fmts / sizeof g_fmts[0]; fi++) {
            const fmt *f = &g_fmts[fi];
            if (only && strcmp(only, f->name)) continue;
            mlxn_weight *ws[16] = {0};
            int nw = 0;
            for (; nw < rotate; nw++)
                if (make_weight(d, f, N, K, &ws[nw])) { fprintf(stderr, "%s: %s\n", f->name, mlxn_last_error()); break; }
            if (nw < rotate) {
                for (int i = 0; i < nw; i++) mlxn_weight_destroy(ws[i]);
                continue;
            }
            mlxn_weight *w = ws[0];
            const double wbytes = (double)mlxn_weight_nbytes(w);
            for (int mi = 0; mi < 2; mi++) {
                const int64_t M = mi == 0 ? 1 : 8;
                int runs = quick ? 7 : (M == 1 ? 41 : 15);
                double cus = 0, us = time_matmul(d, ws, nw, M, K, N, 3, runs, &cus);
                double gbs = wbytes / (us * 1e-6) / 1e9;
                double anchor = M == 1 ? f->anchor_m1 : f->anchor_m8;
                char a1[32] = "-", a2[32] = "-";
                if (anchor > 0) { snprintf(a1, sizeof a1, "%.0f", anchor); snprintf(a2, sizeof a2, "%.2fx", anchor / us); }
                printf("| %s | %lld | %.0f | %.0f | %.1f | %s | %s | %.0f%% |\n", f->name, (long long)M, us, cus, gbs, a1, a2,
                       100.0 * gbs / bw);
                fflush(stdout);
            }
            for (int i = 0; i < nw; i++) mlxn_weight_destroy(ws[i]);
        }
        printf("\n");
        mlxn_device_close(d);
    }
    return 0;
}
