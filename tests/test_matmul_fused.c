/* test_matmul_fused.c — mlxn_matmul_fused against a scalar double-precision
 * evaluation of its definition (rms_norm prologue; SwiGLU over W's gate and
 * up halves; residual add), written here from the header's contract rather
 * than from the library's ops. Runs on the "cpu" device, where the op is
 * the separate-op path (rms_norm, matmul, per-row silu_mul, add), and on
 * "cuda" when one is present (fused kernels for one row of x there; this
 * test uses dense f32 weights, so CUDA takes the separate ops too — the
 * fused kernels are checked in test_cuda_device). Every mix of the three
 * parts, M = 1 and 3, the residual aliasing y or not. */
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static t_rng g_rng;

/* [r, c] f32 (r = 0: a vector [c]) */
static mlxn_buffer *buf(mlxn_device *d, int64_t r, int64_t c, const float *v) {
    int64_t sh[2] = {r, c};
    mlxn_buffer *b = NULL;
    CHECK_OK(r ? mlxn_buffer_alloc(d, MLXN_F32, 2, sh, &b) : mlxn_buffer_alloc(d, MLXN_F32, 1, sh + 1, &b));
    if (!r) r = 1;
    if (!b) return NULL;
    if (v) CHECK_OK(mlxn_buffer_upload(b, 0, v, (size_t)(r * c) * sizeof(float)));
    else CHECK_OK(mlxn_buffer_fill_bytes(b, 0xFF)); /* NaN poison */
    return b;
}

/* y [M, N] from x [M, K], W [R, K], nw [K] | NULL, res [M, N] | NULL. */
static void expected(const float *x, const float *w, const float *nw, const float *res, int swiglu, int64_t M,
                     int64_t K, int64_t R, double *y) {
    const int64_t N = swiglu ? R / 2 : R;
    double *xn = malloc((size_t)K * sizeof(double)), *p = malloc((size_t)R * sizeof(double));
    for (int64_t m = 0; m < M; m++) {
        const float *xr = x + m * K;
        double ss = 0.0;
        for (int64_t k = 0; k < K; k++) ss += (double)xr[k] * xr[k];
        const double inv = nw ? 1.0 / sqrt(ss / (double)K + 1e-5) : 1.0;
        for (int64_t k = 0; k < K; k++) xn[k] = nw ? xr[k] * inv * nw[k] : xr[k];
        for (int64_t r = 0; r < R; r++) {
            double a = 0.0;
            for (int64_t k = 0; k < K; k++) a += xn[k] * w[r * K + k];
            p[r] = a;
        }
        for (int64_t n = 0; n < N; n++) {
            double v = swiglu ? p[n] / (1.0 + exp(-p[n])) * p[N + n] : p[n];
            y[m * N + n] = (res ? res[m * N + n] : 0.0) + v;
        }
    }
    free(xn);
    free(p);
}

static void run_on(const char *devname) {
    mlxn_device *d = NULL;
    if (mlxn_device_open(devname, NULL, &d) != MLXN_OK) {
        printf("     %s: not available (%s), skipped\n", devname, mlxn_last_error());
        return;
    }
    const int64_t K = 96, R = 42; /* swiglu: 21 gate + 21 up rows */
    float *wv = malloc((size_t)(R * K) * sizeof(float));
    t_fill(&g_rng, wv, (size_t)(R * K), -0.5f, 0.5f);
    mlxn_buffer *wd = buf(d, R, K, wv);
    mlxn_weight_desc desc = {.format = MLXN_WEIGHT_DENSE, .rows = R, .cols = K, .data = wd, .name = "w"};
    mlxn_weight *w = NULL;
    CHECK_OK(mlxn_weight_create(&desc, &w));
    for (int mode = 0; mode < 8 && w; mode++) { /* bits: 1 norm, 2 swiglu, 4 residual */
        for (int mi = 0; mi < 2; mi++) {
            for (int alias = 0; alias < 1 + ((mode & 4) != 0); alias++) {
                const int64_t M = mi ? 3 : 1, N = mode & 2 ? R / 2 : R;
                float *xv = malloc((size_t)(M * K) * 4), *nv = malloc((size_t)K * 4), *rv = malloc((size_t)(M * N) * 4);
                float *got = malloc((size_t)(M * N) * 4);
                double *want = malloc((size_t)(M * N) * sizeof(double));
                t_fill(&g_rng, xv, (size_t)(M * K), -2.0f, 2.0f);
                t_fill(&g_rng, nv, (size_t)K, 0.5f, 1.5f);
                t_fill(&g_rng, rv, (size_t)(M * N), -1.0f, 1.0f);
                expected(xv, wv, mode & 1 ? nv : NULL, mode & 4 ? rv : NULL, (mode & 2) != 0, M, K, R, want);
                mlxn_buffer *x = buf(d, M, K, xv), *nw = buf(d, 0, K, nv), *res = buf(d, M, N, rv);
                mlxn_buffer *y = alias ? res : buf(d, M, N, NULL), *xs = buf(d, M, K, NULL), *ys = buf(d, M, R, NULL);
                mlxn_session *s = NULL;
                CHECK_OK(mlxn_session_begin(d, &s));
                mlxn_matmul_fusion f = {.norm = mode & 1 ? nw : NULL, .norm_eps = 1e-5f, .swiglu = (mode & 2) != 0,
                                        .residual = mode & 4 ? res : NULL, .x_scratch = xs, .y_scratch = ys};
                if (s) {
                    CHECK_OK(mlxn_matmul_fused(s, x, w, &f, y));
                    CHECK_OK(mlxn_session_finish(s));
                    mlxn_session_destroy(s);
                }
                CHECK_OK(mlxn_buffer_download(y, 0, got, (size_t)(M * N) * 4));
                double err = 0.0, sig = 0.0;
                for (int64_t i = 0; i < M * N; i++) {
                    err += (got[i] - want[i]) * (got[i] - want[i]);
                    sig += want[i] * want[i];
                }
                CHECK_MSG(err <= 1e-10 * sig, "%s: matmul_fused mode%s%s%s M=%lld%s: NMSE %.3g (y[0] %g, want %g)",
                          devname, mode & 1 ? " norm" : "", mode & 2 ? " swiglu" : "", mode & 4 ? " residual" : "",
                          (long long)M, alias ? " (in place)" : "", sig > 0 ? err / sig : err, (double)got[0], want[0]);
                mlxn_buffer_release(x);
                mlxn_buffer_release(nw);
                mlxn_buffer_release(res);
                if (!alias) mlxn_buffer_release(y);
                mlxn_buffer_release(xs);
                mlxn_buffer_release(ys);
                free(xv);
                free(nv);
                free(rv);
                free(got);
                free(want);
            }
        }
    }
    mlxn_weight_destroy(w);
    mlxn_buffer_release(wd);
    free(wv);
    mlxn_device_close(d);
}

static void test_matmul_fused_cpu(void) { run_on("cpu"); }
static void test_matmul_fused_ref(void) { run_on("ref"); }
static void test_matmul_fused_cuda(void) { run_on("cuda"); }

int main(void) {
    t_rng_seed(&g_rng, 20261126);
    T_RUN(test_matmul_fused_cpu);
    T_RUN(test_matmul_fused_ref);
    T_RUN(test_matmul_fused_cuda);
    return t_finish();
}
