/* cuda_ops_gemm.c — large-M matmul (prefill): the weight is dequantized to
 * bf16 and x cast to bf16 in session scratch, then cuBLASLt (opened with
 * dlopen, optional: without it this path is skipped) multiplies them on the
 * tensor cores with f32 accumulation and f32 output. Used for M >= 8 and the
 * formats whose accuracy contract allows bf16 operands (MLX affine 4/8-bit,
 * GGUF Q4_0, Q4_1, Q8_0, Q4_K, Q6_K: NMSE <= 1e-4, the same contract as the
 * CPU's int8 activation path; dense bf16, read in place, and dense f16,
 * rounded to bf16, for M >= 65); dense f32 and the other quantized formats keep the exact
 * f32 kernels. MLX 4/8-bit and Q4_0/Q4_1/Q8_0 dequantize with 16-byte loads
 * and stores (dequant_bf16_kernel). Consecutive GEMMs on one x (q, k, v;
 * gate, up) cast it once. cuBLAS is column-major: y^T [N, M] = W [K, N]^T x^T,
 * i.e. A = W (K x N, ld K, transposed), B = x^T (K x M, ld K). */
#define _GNU_SOURCE
#include "backend/cuda/cuda_internal.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef int cublasStatus_t;
typedef struct cublasLtContext *cublasLtHandle_t;
typedef struct cublasLtMatmulDescOpaque *cublasLtMatmulDesc_t;
typedef struct cublasLtMatrixLayoutOpaque *cublasLtMatrixLayout_t;
typedef struct cublasLtMatmulPreferenceOpaque *cublasLtMatmulPreference_t;
typedef struct { uint64_t data[8]; } cublasLtMatmulAlgo_t;
typedef struct {
    cublasLtMatmulAlgo_t algo;
    size_t workspaceSize;
    cublasStatus_t state;
    float wavesCount;
    int reserved[4];
} cublasLtMatmulHeuristicResult_t;

#define CUBLAS_COMPUTE_32F 68
#define CUDA_R_32F 0
#define CUDA_R_16BF 14
#define CUBLASLT_MATMUL_DESC_TRANSA 3
#define CUBLASLT_MATMUL_DESC_TRANSB 4
#define CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES 1
#define CUBLAS_OP_N 0
#define CUBLAS_OP_T 1
#define LT_WORKSPACE ((size_t)32 << 20)
#define GEMM_MIN_M 8
/* dense weights: up to 64 rows of x stay on the exact f32 kernels (memory
 * bound there, and the model tests' bf16 models keep f32-grade logits) */
#define GEMM_DENSE_MIN_M 65

static struct {
    void *lib;
    cublasStatus_t (*create)(cublasLtHandle_t *);
    cublasStatus_t (*destroy)(cublasLtHandle_t);
    cublasStatus_t (*desc_create)(cublasLtMatmulDesc_t *, int, int);
    cublasStatus_t (*desc_destroy)(cublasLtMatmulDesc_t);
    cublasStatus_t (*desc_set)(cublasLtMatmulDesc_t, int, const void *, size_t);
    cublasStatus_t (*layout_create)(cublasLtMatrixLayout_t *, int, uint64_t, uint64_t, int64_t);
    cublasStatus_t (*layout_destroy)(cublasLtMatrixLayout_t);
    cublasStatus_t (*pref_create)(cublasLtMatmulPreference_t *);
    cublasStatus_t (*pref_destroy)(cublasLtMatmulPreference_t);
    cublasStatus_t (*pref_set)(cublasLtMatmulPreference_t, int, const void *, size_t);
    cublasStatus_t (*heuristic)(cublasLtHandle_t, cublasLtMatmulDesc_t, cublasLtMatrixLayout_t, cublasLtMatrixLayout_t,
                                cublasLtMatrixLayout_t, cublasLtMatrixLayout_t, cublasLtMatmulPreference_t, int,
                                cublasLtMatmulHeuristicResult_t *, int *);
    cublasStatus_t (*matmul)(cublasLtHandle_t, cublasLtMatmulDesc_t, const void *, const void *,
                             cublasLtMatrixLayout_t, const void *, cublasLtMatrixLayout_t, const void *, const void *,
                             cublasLtMatrixLayout_t, void *, cublasLtMatrixLayout_t, const cublasLtMatmulAlgo_t *,
                             void *, size_t, CUstream);
} g_lt;
static pthread_once_t g_lt_once = PTHREAD_ONCE_INIT;
static int g_lt_ok;

#define LT_SYM(field, name)                                  \
    do {                                                     \
        void *p_ = dlsym(lib, name);                         \
        if (!p_) return 0;                                   \
        memcpy(&g_lt.field, &p_, sizeof p_);                 \
    } while (0)

static int lt_bind(void *lib) {
    LT_SYM(create, "cublasLtCreate");
    LT_SYM(destroy, "cublasLtDestroy");
    LT_SYM(desc_create, "cublasLtMatmulDescCreate");
    LT_SYM(desc_destroy, "cublasLtMatmulDescDestroy");
    LT_SYM(desc_set, "cublasLtMatmulDescSetAttribute");
    LT_SYM(layout_create, "cublasLtMatrixLayoutCreate");
    LT_SYM(layout_destroy, "cublasLtMatrixLayoutDestroy");
    LT_SYM(pref_create, "cublasLtMatmulPreferenceCreate");
    LT_SYM(pref_destroy, "cublasLtMatmulPreferenceDestroy");
    LT_SYM(pref_set, "cublasLtMatmulPreferenceSetAttribute");
    LT_SYM(heuristic, "cublasLtMatmulAlgoGetHeuristic");
    LT_SYM(matmul, "cublasLtMatmul");
    g_lt.lib = lib;
    return 1;
}

static void lt_load(void) {
    if (getenv("MLXN_NO_CUBLASLT")) return;
    const char *names[] = {"libcublasLt.so.13", "libcublasLt.so.12", "libcublasLt.so", NULL};
    char path[600];
    const char *ch = getenv("CUDA_HOME");
    for (int pass = 0; pass < 3 && !g_lt_ok; pass++) {
        for (int i = 0; names[i] && !g_lt_ok; i++) {
            if (pass == 0) snprintf(path, sizeof path, "%s", names[i]);
            else if (pass == 1 && ch && *ch) snprintf(path, sizeof path, "%s/lib64/%s", ch, names[i]);
            else if (pass == 2) snprintf(path, sizeof path, "/usr/local/cuda/lib64/%s", names[i]);
            else continue;
            void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
            if (!lib) continue;
            if (lt_bind(lib)) g_lt_ok = 1;
            else dlclose(lib);
        }
    }
}

typedef struct mlxn_cuda_lt_plan {
    int64_t M, N, K;
    cublasLtMatmulDesc_t desc;
    cublasLtMatrixLayout_t a, b, c;
    cublasLtMatmulAlgo_t algo;
    size_t ws;
    struct mlxn_cuda_lt_plan *next;
} lt_plan;

void mlxn_cuda_gemm_release(mlxn_cuda_dev *d) {
    lt_plan *p = d->lt_plans;
    while (p) {
        lt_plan *n = p->next;
        g_lt.layout_destroy(p->a);
        g_lt.layout_destroy(p->b);
        g_lt.layout_destroy(p->c);
        g_lt.desc_destroy(p->desc);
        free(p);
        p = n;
    }
    d->lt_plans = NULL;
    if (d->lt_handle) g_lt.destroy((cublasLtHandle_t)d->lt_handle);
    d->lt_handle = NULL;
}

/* Find or build the plan for (M, N, K); NULL when cuBLASLt can't do it. */
static lt_plan *get_plan(mlxn_cuda_dev *d, int64_t M, int64_t N, int64_t K) {
    pthread_once(&g_lt_once, lt_load);
    if (!g_lt_ok) return NULL;
    pthread_mutex_lock(&d->lt_mu);
    lt_plan *p = NULL;
    if (d->lt_state == 0) {
        cublasLtHandle_t h = NULL;
        d->lt_state = g_lt.create(&h) == 0 ? 1 : -1;
        d->lt_handle = h;
    }
    if (d->lt_state != 1) goto out;
    for (p = d->lt_plans; p; p = p->next)
        if (p->M == M && p->N == N && p->K == K) goto out;
    p = calloc(1, sizeof *p);
    if (!p) goto out;
    p->M = M;
    p->N = N;
    p->K = K;
    int opT = CUBLAS_OP_T, opN = CUBLAS_OP_N;
    int ok = g_lt.desc_create(&p->desc, CUBLAS_COMPUTE_32F, CUDA_R_32F) == 0;
    ok = ok && g_lt.desc_set(p->desc, CUBLASLT_MATMUL_DESC_TRANSA, &opT, sizeof opT) == 0;
    ok = ok && g_lt.desc_set(p->desc, CUBLASLT_MATMUL_DESC_TRANSB, &opN, sizeof opN) == 0;
    ok = ok && g_lt.layout_create(&p->a, CUDA_R_16BF, (uint64_t)K, (uint64_t)N, K) == 0;
    ok = ok && g_lt.layout_create(&p->b, CUDA_R_16BF, (uint64_t)K, (uint64_t)M, K) == 0;
    ok = ok && g_lt.layout_create(&p->c, CUDA_R_32F, (uint64_t)N, (uint64_t)M, N) == 0;
    cublasLtMatmulPreference_t pref = NULL;
    size_t wsmax = LT_WORKSPACE;
    ok = ok && g_lt.pref_create(&pref) == 0;
    ok = ok && g_lt.pref_set(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &wsmax, sizeof wsmax) == 0;
    cublasLtMatmulHeuristicResult_t res;
    memset(&res, 0, sizeof res);
    int nres = 0;
    ok = ok && g_lt.heuristic((cublasLtHandle_t)d->lt_handle, p->desc, p->a, p->b, p->c, p->c, pref, 1, &res, &nres) == 0 &&
         nres > 0 && res.state == 0;
    if (pref) g_lt.pref_destroy(pref);
    if (!ok) {
        if (p->a) g_lt.layout_destroy(p->a);
        if (p->b) g_lt.layout_destroy(p->b);
        if (p->c) g_lt.layout_destroy(p->c);
        if (p->desc) g_lt.desc_destroy(p->desc);
        free(p);
        p = NULL;
        goto out;
    }
    p->algo = res.algo;
    p->ws = res.workspaceSize;
    p->next = d->lt_plans;
    d->lt_plans = p;
out:
    pthread_mutex_unlock(&d->lt_mu);
    return p;
}

/* Mirrors struct WP in quant.cu. */
typedef struct {
    CUdeviceptr data, scales, biases;
    long long row_bytes, K;
    int fmt, sdt, bits, group, gtype, ddt;
} wparams_g;

static int gemm_format_ok(const mlxn_weight_desc *d) {
    if (d->format == MLXN_WEIGHT_MLX_AFFINE) return d->bits == 4 || d->bits == 8;
    if (d->format == MLXN_WEIGHT_GGUF)
        return d->gguf_type == MLXN_GGUF_Q4_0 || d->gguf_type == MLXN_GGUF_Q4_1 || d->gguf_type == MLXN_GGUF_Q8_0 ||
               d->gguf_type == MLXN_GGUF_Q4_K || d->gguf_type == MLXN_GGUF_Q6_K;
    if (d->format == MLXN_WEIGHT_DENSE) return d->data->dtype == MLXN_BF16 || d->data->dtype == MLXN_F16;
    return 0;
}

/* dequant_bf16_kernel's preconditions (quant.cu): its formats, whole 32-value
 * runs, and rows aligned for its word loads. */
static int vector_dequant_ok(const mlxn_weight_desc *d, int64_t row_bytes, int64_t K) {
    uintptr_t base = (uintptr_t)mlxn_cuda_addr(d->data);
    if (K % 32) return 0;
    if (d->format == MLXN_WEIGHT_MLX_AFFINE)
        return (d->bits == 4 || d->bits == 8) && d->group_size > 0 && d->group_size % 32 == 0 &&
               K % d->group_size == 0 && base % 16 == 0 && row_bytes % 16 == 0;
    if (d->format == MLXN_WEIGHT_GGUF)
        return (d->gguf_type == MLXN_GGUF_Q4_0 || d->gguf_type == MLXN_GGUF_Q4_1 || d->gguf_type == MLXN_GGUF_Q8_0) &&
               base % 2 == 0;
    return 0;
}

mlxn_status mlxn_cuda_gemm_try(mlxn_session *s, const mlxn_op *op, int *done) {
    *done = 0;
    const mlxn_weight *w = op->w;
    const mlxn_weight_desc *d = &w->desc;
    int64_t M = op->in[0]->shape[0], K = d->cols, N = d->rows;
    if (M < GEMM_MIN_M || !gemm_format_ok(d) || K % 8 || N % 8 || N > 0x7fffffff) return MLXN_OK;
    if (d->format == MLXN_WEIGHT_DENSE && M < GEMM_DENSE_MIN_M) return MLXN_OK;
    mlxn_cuda_dev *cd = mlxn_cuda_dev_of(s);
    lt_plan *p = get_plan(cd, M, N, K);
    if (!p) return MLXN_OK;
    /* scratch: [x bf16 M*K][W bf16 N*K (not for dense bf16: used in place)][workspace]. x first: the
     * next GEMM on the same x (q, k, v; gate, up) finds its bf16 copy there */
    const int w_in_place = d->format == MLXN_WEIGHT_DENSE && d->data->dtype == MLXN_BF16 &&
                           mlxn_cuda_addr(d->data) % 16 == 0;
    size_t wbytes = w_in_place ? 0 : (size_t)(N * K) * 2, xbytes = (size_t)(M * K) * 2;
    size_t wpad = (wbytes + 255) & ~(size_t)255, xpad = (xbytes + 255) & ~(size_t)255;
    CUdeviceptr scr;
    MLXN_TRY(mlxn_cuda_scratch(s, wpad + xpad + p->ws + 256, &scr));
    CUdeviceptr xb = scr, wb = scr + xpad, ws = scr + xpad + wpad;
    CUdeviceptr x = mlxn_cuda_addr(op->in[0]);
    long long nx = M * K;
    mlxn_cuda_sess *ss = mlxn_cuda_sess_of(s);
    const int x_ready = ss->xcast_src == x && ss->xcast_dst == xb && ss->xcast_n == nx &&
                        ss->xcast_launches == ss->launches && ss->xcast_writes == atomic_load(&cd->host_writes) &&
                        !getenv("MLXN_CUDA_GEMM_RECAST");
    /* dequantize W -> bf16 [N, K] */
    wparams_g wp = {mlxn_cuda_addr(d->data), mlxn_cuda_addr(d->scales), mlxn_cuda_addr(d->biases), w->row_bytes, K,
                    (int)d->format, d->scales ? (int)d->scales->dtype : 0, d->bits, d->group_size,
                    (int)d->gguf_type, (int)d->data->dtype};
    unsigned g = (unsigned)(cd->sm_count * 16);
    if (w_in_place) {
        wb = mlxn_cuda_addr(d->data);
    } else if (vector_dequant_ok(d, w->row_bytes, K)) {
        long long Nl = N;
        void *vargs[] = {&wp, &Nl, &wb};
        MLXN_TRY(mlxn_cuda_launch(s, "quant.cu", "dequant_bf16_kernel", g, 1, 1, 256, 0, vargs));
    } else {
        CUdeviceptr ids = 0, err = 0;
        int nrows = (int)N, ydt = MLXN_BF16;
        long long Nl = N;
        void *dargs[] = {&wp, &ids, &nrows, &Nl, &wb, &ydt, &err};
        MLXN_TRY(mlxn_cuda_launch(s, "quant.cu", "dequant_rows_kernel", g, 1, 1, 256, 0, dargs));
    }
    /* x f32 -> bf16, unless the previous op made this copy */
    if (!x_ready && (x & 15) == 0 && nx % 4 == 0) {
        long long n4 = nx / 4;
        void *cargs[] = {&x, &xb, &n4};
        MLXN_TRY(mlxn_cuda_launch(s, "quant.cu", "cast_f32_bf16_kernel", g, 1, 1, 256, 0, cargs));
    } else if (!x_ready) {
        int sdt = MLXN_F32, ddt = MLXN_BF16;
        void *cargs[] = {&sdt, &ddt, &x, &xb, &nx};
        MLXN_TRY(mlxn_cuda_launch(s, "elementwise.cu", "cast_kernel", g, 1, 1, 256, 0, cargs));
    }
    float alpha = 1.0f, beta = 0.0f;
    CUdeviceptr y = mlxn_cuda_addr(op->out[0]);
    cublasStatus_t r = g_lt.matmul((cublasLtHandle_t)cd->lt_handle, p->desc, &alpha, (const void *)(uintptr_t)wb, p->a,
                                   (const void *)(uintptr_t)xb, p->b, &beta, (const void *)(uintptr_t)y, p->c,
                                   (void *)(uintptr_t)y, p->c, &p->algo, (void *)(uintptr_t)ws, p->ws,
                                   mlxn_cuda_sess_of(s)->stream);
    if (r != 0)
        return mlxn_set_error(MLXN_ERR_DEVICE, "matmul (cuda): cublasLtMatmul failed with status %d (M=%lld N=%lld K=%lld)",
                              r, (long long)M, (long long)N, (long long)K);
    ss->xcast_src = x;
    ss->xcast_dst = xb;
    ss->xcast_n = nx;
    ss->xcast_launches = ss->launches;
    ss->xcast_writes = atomic_load(&cd->host_writes);
    *done = 1;
    return MLXN_OK;
}
