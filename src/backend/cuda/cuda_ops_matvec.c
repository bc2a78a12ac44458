/* cuda_ops_matvec.c — the fast matmul paths. For 2 <= M <= 64 and MLX
 * 4-bit (group 64/128), Q4_0, Q4_1 or Q8_0 weights it launches the
 * tensor-core matvec (kernels/matvec_mma.cu, f32-grade accuracy). Otherwise it
 * chooses a SIMT kernel from kernels/matvec.cu (MLX affine 4/8-bit, dense
 * f32/f16/bf16, GGUF Q4_0, Q4_1, Q8_0, Q4_K, Q6_K) when the weight's layout
 * allows its vector loads (alignment of data and x, row bytes, group size),
 * with an M tile of 1, 2, 4 or 8 rows of x per launch row (grid.y covers
 * larger M), as warp-per-rows or block-per-rows kernels. Quantized matmuls
 * with larger M (per format, env MLXN_CUDA_MV_MAX_M), or whose layout the
 * matvec kernels can't take, go to the dequantize + cuBLASLt GEMM in
 * cuda_ops_gemm.c when it applies. Tuning switches (env): MLXN_CUDA_MVT
 * (off, or a shape index), MLXN_CUDA_MVT_MIN_M, MLXN_CUDA_MV_WIDE (0/1),
 * MLXN_CUDA_MV_VARIANT (M=1 sweep kernels of matvec_tune.cu),
 * MLXN_CUDA_NO_Q4_1_MV=1 (Q4_1 back to the generic kernel). Sets *done = 0
 * when no fast path applies so the caller runs the generic kernel.
 * One row of x through a large MLX 4-bit weight (or one whose norm is folded
 * in at K > 1024) on sm_90+ takes the streamed int8 tensor-core kernel of
 * kernels/matvec_stream.cu (mvs_plan: launch shape and the size rule; env
 * MLXN_CUDA_MV_STREAM=0 turns it off).
 * MLXN_OP_MATMUL_FUSED (one row of x, the b1 formats) launches the fused
 * kernels (norm prologue for K <= 1024, residual / SwiGLU epilogue) in the
 * row-group shape fused_shape() picks; env
 * MLXN_CUDA_FUSE=0 declines it and every other optional fused op
 * (ROPE_KV_ATTENTION, cuda_ops_attention.c), so the op layer runs the
 * separate ops (A/B runs). */
#include "backend/cuda/cuda_internal.h"

#include <stdlib.h>
#include <string.h>

/* Mirrors struct WP in quant.cu (and wparams in cuda_ops_quant.c). */
typedef struct {
    CUdeviceptr data, scales, biases;
    long long row_bytes, K;
    int fmt, sdt, bits, group, gtype, ddt;
} wparams_mv;

mlxn_status mlxn_cuda_gemm_try(mlxn_session *s, const mlxn_op *op, int *done);

/* The kernels' view of a weight (struct WP), data at device address `data`. */
static wparams_mv wparams_of(const mlxn_weight *w, CUdeviceptr data) {
    const mlxn_weight_desc *d = &w->desc;
    wparams_mv p = {data, mlxn_cuda_addr(d->scales), mlxn_cuda_addr(d->biases), w->row_bytes, d->cols, (int)d->format,
                    d->scales ? (int)d->scales->dtype : 0, d->bits, d->group_size, (int)d->gguf_type,
                    (int)d->data->dtype};
    return p;
}

/* Two kernel shapes (matvec.cu): "m" kernels give each warp 2 weight rows
 * (8 rows per 128-thread block); "b" kernels give the whole block 4 rows (8
 * for one row of x in the formats of mv_wide8) and split K across its 128
 * threads, which keeps more loads in flight per SM and reuses each x load
 * for every row. */
#define MV_ROWS_WARP 8
#define MV_ROWS_WIDE 4
#define MV_TILE_ROWS 32 /* matvec.cu's staged tiles */

/* The Q4_1 fast kernel is on unless MLXN_CUDA_NO_Q4_1_MV is set (not "0"),
 * which sends Q4_1 back to the generic kernel. */
static int q41_fast_enabled(void) {
    const char *e = getenv("MLXN_CUDA_NO_Q4_1_MV");
    return !(e && *e && !(e[0] == '0' && e[1] == 0));
}

static const char *pick(const char *const names[8], int mt, int wide) {
    return names[(mt == 1 ? 0 : mt == 2 ? 1 : mt == 4 ? 2 : 3) + (wide ? 4 : 0)];
}

/* Formats whose one-row wide kernel (b1) takes 8 rows per block. */
static int mv_wide8(const mlxn_weight_desc *d) {
    if (d->format == MLXN_WEIGHT_MLX_AFFINE) return 1;
    return d->format == MLXN_WEIGHT_GGUF && (d->gguf_type == MLXN_GGUF_Q4_0 || d->gguf_type == MLXN_GGUF_Q4_1 ||
                                             d->gguf_type == MLXN_GGUF_Q8_0);
}

/* Whether to use the block-wide kernels: env MLXN_CUDA_MV_WIDE=0/1 forces it.
 * By default one row of x in MLX 4/8-bit, Q4_0, Q4_1 or Q8_0 always goes
 * wide (measured faster on the H100 even for K = 576); otherwise rows of at
 * least 256 load units (16-byte chunks or GGUF blocks) do. */
static int mv_wide(const mlxn_weight_desc *d, int64_t K, int mt) {
    const char *e = getenv("MLXN_CUDA_MV_WIDE");
    if (e && *e) return e[0] != '0';
    if (mt == 1 && mv_wide8(d)) return 1;
    int64_t units;
    if (d->format == MLXN_WEIGHT_MLX_AFFINE) units = K * d->bits / 128;
    else if (d->format == MLXN_WEIGHT_DENSE) units = K * (int64_t)mlxn_dtype_size(d->data->dtype) / 16;
    else units = K / 32;
    return units >= 256;
}

/* Largest M the matvec kernels take before the dequantize + cuBLASLt GEMM
 * gets first try. Chosen per format from H100 measurements at M = 8 (W
 * 4096x14336, µs, matvec vs GEMM): MLX 4-bit 254 vs 367, MLX 8-bit 203 vs
 * 219, Q4_K 250 vs 316, Q6_K 129 vs 350 -> matvec; Q4_0 366 vs 242, Q4_1 360
 * vs 247, Q8_0 267 vs 225 -> GEMM (session 1). MLX 4-bit, Q4_0, Q4_1 and Q8_0
 * at 2 <= M <= 64 normally take the tensor-core matvec before this applies.
 * Env MLXN_CUDA_MV_MAX_M overrides it. */
static int64_t mv_max_m(const mlxn_weight_desc *d) {
    const char *e = getenv("MLXN_CUDA_MV_MAX_M");
    if (e && *e) {
        char *end = NULL;
        long v = strtol(e, &end, 10);
        if (end && *end == 0 && v >= 0) return v;
    }
    if (d->format == MLXN_WEIGHT_GGUF &&
        (d->gguf_type == MLXN_GGUF_Q4_0 || d->gguf_type == MLXN_GGUF_Q4_1 || d->gguf_type == MLXN_GGUF_Q8_0))
        return 7;
    return 8;
}

/* The eight kernels of one format, as string literals (the registry keeps the
 * name pointers): m1 m2 m4 m8 (warp row groups), b1 b2 b4 b8 (block ones). */
#define MV_NAMES(P) {P "_m1", P "_m2", P "_m4", P "_m8", P "_b1", P "_b2", P "_b4", P "_b8"}

/* Kernel set for this weight, or NULL when its layout doesn't allow the fast
 * kernels' vector loads. */
static const char *const *mv_set(const mlxn_weight *w, CUdeviceptr data) {
    static const char *const k_mlx4[8] = MV_NAMES("mv_mlx4");
    static const char *const k_mlx8[8] = MV_NAMES("mv_mlx8");
    static const char *const k_f32[8] = MV_NAMES("mv_f32");
    static const char *const k_f16[8] = MV_NAMES("mv_f16");
    static const char *const k_bf16[8] = MV_NAMES("mv_bf16");
    static const char *const k_q40[8] = MV_NAMES("mv_q4_0");
    static const char *const k_q41[8] = MV_NAMES("mv_q4_1");
    static const char *const k_q80[8] = MV_NAMES("mv_q8_0");
    static const char *const k_q4k[8] = MV_NAMES("mv_q4_k");
    static const char *const k_q6k[8] = MV_NAMES("mv_q6_k");
    const mlxn_weight_desc *d = &w->desc;
    switch (d->format) {
    case MLXN_WEIGHT_DENSE:
        if (data % 16 || w->row_bytes % 16) return NULL;
        return d->data->dtype == MLXN_F32 ? k_f32 : d->data->dtype == MLXN_F16 ? k_f16 : k_bf16;
    case MLXN_WEIGHT_MLX_AFFINE:
        if (data % 16 || w->row_bytes % 16) return NULL;
        if (d->bits != 4 && d->bits != 8) return NULL;
        if (d->group_size % (128 / d->bits)) return NULL;
        return d->bits == 4 ? k_mlx4 : k_mlx8;
    case MLXN_WEIGHT_GGUF:
        switch (d->gguf_type) {
        case MLXN_GGUF_Q4_0: return data % 2 ? NULL : k_q40;
        case MLXN_GGUF_Q4_1: return (data % 4 || w->row_bytes % 4 || !q41_fast_enabled()) ? NULL : k_q41;
        case MLXN_GGUF_Q8_0: return (data % 4 || w->row_bytes % 4) ? NULL : k_q80; /* K % 64 == 0 */
        case MLXN_GGUF_Q4_K: return data % 16 ? NULL : k_q4k;
        case MLXN_GGUF_Q6_K: return data % 2 ? NULL : k_q6k;
        default: return NULL;
        }
    }
    return NULL;
}

/* M=1 tuning variants (matvec_tune.cu "mvx_*", string literals: the registry
 * keeps the name pointers): ids and rows per block. */
static const char k_mvx_ids[] = "dlry";
static const int k_mvx_rows[] = {8, 16, 8, 16};
#define MVX_NAMES(P) {P "_d", P "_l", P "_r", P "_y"}
static const char *const k_mvx_names[3][4] = {MVX_NAMES("mvx_mlx4"), MVX_NAMES("mvx_q4_0"), MVX_NAMES("mvx_q4_1")};

/* Kernel name and rows per block of the variant env MLXN_CUDA_MV_VARIANT
 * names, for M = 1 MLX 4-bit, Q4_0 and Q4_1; 0 when unset or not covered. */
static int mv_variant(const mlxn_weight_desc *d, const char **name) {
    const char *e = getenv("MLXN_CUDA_MV_VARIANT");
    if (!e || !e[0] || e[1]) return 0;
    int f = d->format == MLXN_WEIGHT_MLX_AFFINE && d->bits == 4 ? 0
            : d->format == MLXN_WEIGHT_GGUF && d->gguf_type == MLXN_GGUF_Q4_0 ? 1
            : d->format == MLXN_WEIGHT_GGUF && d->gguf_type == MLXN_GGUF_Q4_1 ? 2
                                                                                : -1;
    const char *hit = f < 0 ? NULL : strchr(k_mvx_ids, e[0]);
    if (!hit) return 0;
    *name = k_mvx_names[f][hit - k_mvx_ids];
    return k_mvx_rows[hit - k_mvx_ids];
}

/* Tensor-core kernels (matvec_mma.cu "mvt_<fmt>_<RT>_<NW>_<UNR>") for MLX
 * 4-bit (group 64/128, 2-byte scales), Q4_0, Q4_1 and Q8_0 at MVT_MIN_M <= M <=
 * MVT_MAX_M (env MLXN_CUDA_MVT_MIN_M overrides the lower bound): rows
 * per block 16·RT, 32·NW threads. Env MLXN_CUDA_MVT=<index> picks a shape
 * (bench sweep), MLXN_CUDA_MVT=off disables them. */
static const struct { int rt, nw, unr; } k_mvt[] = {{1, 4, 2}, {2, 4, 2}, {1, 8, 2}, {2, 8, 2}, {1, 4, 4}, {2, 8, 1}};
#define MVT_NAMES(P) {P "_1_4_2", P "_2_4_2", P "_1_8_2", P "_2_8_2", P "_1_4_4", P "_2_8_1"}
static const char *const k_mvt_names[4][6] = {MVT_NAMES("mvt_mlx4"), MVT_NAMES("mvt_q4_0"), MVT_NAMES("mvt_q4_1"),
                                              MVT_NAMES("mvt_q8_0")};
/* Default shape (2, 8, 1) and M range from the H100 sweep in BENCHMARKS.md:
 * at M = 8 the tensor-core kernels beat the SIMT ones 3.5x (MLX 4-bit) and
 * the bf16 GEMM path 4x (Q4_0/Q4_1); at M = 1 the SIMT b1 kernels win. */
#define MVT_DEFAULT 5
#define MVT_MIN_M 2
#define MVT_MAX_M 64 /* exact (f32-grade) up to here; larger M takes the bf16 GEMM */

/* Launches the tensor-core kernel when the weight and M suit it; *done = 1. */
static mlxn_status mvt_try(mlxn_session *s, const mlxn_weight *w, CUdeviceptr data, CUdeviceptr x, CUdeviceptr y,
                           int64_t M, int64_t N, int64_t K, int *done) {
    const mlxn_weight_desc *d = &w->desc;
    *done = 0;
    const char *e = getenv("MLXN_CUDA_MVT");
    int vi = MVT_DEFAULT;
    if (e && *e) {
        if (strcmp(e, "off") == 0) return MLXN_OK;
        vi = atoi(e);
        if (vi < 0 || vi >= (int)(sizeof k_mvt / sizeof k_mvt[0])) vi = MVT_DEFAULT;
    }
    const char *em = getenv("MLXN_CUDA_MVT_MIN_M");
    const int64_t min_m = em && *em ? atoi(em) : MVT_MIN_M;
    if (M < min_m || M > MVT_MAX_M || x % 16 || K % 32) return MLXN_OK;
    int f;
    if (d->format == MLXN_WEIGHT_MLX_AFFINE) {
        if (d->bits != 4 || (d->group_size != 64 && d->group_size != 128) || !d->biases) return MLXN_OK;
        if (d->scales->dtype == MLXN_F32 || d->biases->dtype != d->scales->dtype) return MLXN_OK;
        if (data % 8 || w->row_bytes % 8 || K % 64) return MLXN_OK;
        f = 0;
    } else if (d->format == MLXN_WEIGHT_GGUF && (d->gguf_type == MLXN_GGUF_Q4_0 || d->gguf_type == MLXN_GGUF_Q4_1 ||
                                                 d->gguf_type == MLXN_GGUF_Q8_0)) {
        if (data % 2 || w->row_bytes % 2) return MLXN_OK;
        f = d->gguf_type == MLXN_GGUF_Q4_0 ? 1 : d->gguf_type == MLXN_GGUF_Q4_1 ? 2 : 3;
    } else {
        return MLXN_OK;
    }
    int64_t rows = 16 * k_mvt[vi].rt;
    int64_t gx = (N + rows - 1) / rows, gy = (M + 7) / 8;
    if (gx > 0x7fffffff) return MLXN_OK;
    wparams_mv p = wparams_of(w, data);
    int Mi = (int)M;
    long long Nl = N;
    void *args[] = {&p, &x, &y, &Mi, &Nl};
    MLXN_TRY(mlxn_cuda_launch(s, "matvec_mma.cu", k_mvt_names[f][vi], (unsigned)gx, (unsigned)gy, 1,
                              (unsigned)(32 * k_mvt[vi].nw), 0, args));
    *done = 1;
    return MLXN_OK;
}

/* ---------------------------------------------------------------- fused one-row matmul */

/* Mirrors struct MVF in matvec.cu. */
typedef struct {
    CUdeviceptr nw, res;
    float eps;
    int mode;
} mvf_params;
#define MVF_RES 1
#define MVF_SWIGLU 2

/* ---------------------------------------------------------------- streamed one-row matmul */

/* Mirrors struct MSP in matvec_stream.cu. */
typedef struct {
    int stages, parts, rounds, work;
} mvs_shape;
#define MVS_ROWS 16      /* weight rows per warp row group (matvec_stream.cu's MS_ROWS) */
#define MVS_SEG 1024     /* values per row per stage (MS_SEG) */
#define MVS_ROWB 544     /* a row's bytes in a stage (MS_ROWB) */
#define MVS_MAX_WARPS 16 /* MS_MAX_WARPS */
#define MVS_STAGES 2     /* copy stages per warp (env MLXN_CUDA_MVS_STAGES) */
#define MVS_BPS 1        /* blocks per SM (env MLXN_CUDA_MVS_BPS) */
#define MVS_HELPERS_MIN_ROUNDS 3 /* fewest rounds that take helper warps (env MLXN_CUDA_MVS_HELPERS_MIN_ROUNDS) */
/* Smallest weight (MB of codes) the streamed kernels take without a norm to
 * fold in, and their longest row (env MLXN_CUDA_MVS_MIN_MB, _MAX_K). H100,
 * µs, streamed vs the b1 kernels: 8B shapes lm_head 104.2 vs 114.8, gate|up
 * 26.7 vs 27.4, but q|k|v (6144 x 4096) 8.8 vs 8.1, o (4096 x 4096) 6.5 vs
 * 4.6 and down (4096 x 14336, x quantized 14 float4s a thread) 18.2 vs 15.5.
 * End to end (8B tg128) q|k|v streamed with its norm folded in gained (403.9
 * vs 390.8 tok/s without it; 395.2 with no streaming), o and down lost
 * (381.1 with every matmul streamed). */
#define MVS_MIN_MB 24
#define MVS_MAX_K 8192

typedef struct {
    mvs_shape sh;
    unsigned grid, threads, smem;
} mvs_launch;

static int64_t norm_fuse_max_k(void);

static int env_int(const char *name, int dflt) {
    const char *e = getenv(name);
    return e && *e ? atoi(e) : dflt;
}

/* The launch of matvec_stream.cu's kernels for one row of x through weight w
 * (swiglu: [gate; up] row pairs), or 0 when they don't apply: sm_90+, MLX
 * affine 4-bit, group 64 or 128, f16/bf16 scales and biases, 16-byte aligned,
 * K % 1024 == 0, x's int8 fragments within shared memory. One block per SM
 * (fewer when there is little work) of up to MVS_MAX_WARPS warps, as many
 * as their stages fit beside x; P warps share a row group when there are
 * fewer groups than warps. Env MLXN_CUDA_MV_STREAM=0 turns them off;
 * MLXN_CUDA_MVS_MIN_MB and _MAX_K set the size rule, _STAGES, _WARPS,
 * _PARTS, _BPS and _HELPERS the shape. */
static int mvs_plan(mlxn_session *s, const mlxn_weight *w, CUdeviceptr data, int swiglu, int norm, mvs_launch *L) {
    const mlxn_weight_desc *d = &w->desc;
    const mlxn_cuda_dev *cd = mlxn_cuda_dev_of(s);
    const char *e = getenv("MLXN_CUDA_MV_STREAM");
    if ((e && e[0] == '0' && e[1] == 0) || cd->cc_major < 9) return 0;
    if (d->format != MLXN_WEIGHT_MLX_AFFINE || d->bits != 4 || !d->scales || !d->biases) return 0;
    if (d->scales->dtype == MLXN_F32 || d->biases->dtype != d->scales->dtype) return 0;
    if (d->group_size != 64 && d->group_size != 128) return 0;
    const CUdeviceptr sc = mlxn_cuda_addr(d->scales), bi = mlxn_cuda_addr(d->biases);
    const int64_t K = d->cols, R = d->rows;
    if (data % 16 || sc % 16 || bi % 16 || w->row_bytes != K / 2 || K % MVS_SEG || R < 1 || (swiglu && R % 2))
        return 0;
    /* every block quantizes all of x before its first MMA, and a call pays a
     * few µs of start-up: rows up to MVS_MAX_K, and weights of MVS_MIN_MB or
     * more unless a norm is folded in (where it saves a separate norm kernel
     * that the b1 kernels need for K > 1024) */
    const int64_t min_mb = env_int("MLXN_CUDA_MVS_MIN_MB", MVS_MIN_MB), max_k = env_int("MLXN_CUDA_MVS_MAX_K", MVS_MAX_K);
    if (K > max_k || (R * K / 2 < min_mb * 1000000 && !(norm && K > norm_fuse_max_k()))) return 0;
    const int S = env_int("MLXN_CUDA_MVS_STAGES", MVS_STAGES);
    if (S < 1 || S > 16) return 0;
    const int64_t gps = MVS_SEG / d->group_size, stage = MVS_ROWS * (MVS_ROWB + 4 * gps);
    const int64_t fixed = K * 4 + K / 64 * 8, per_warp = S * (stage + 8);
    /* blocks per SM (env MLXN_CUDA_MVS_BPS): more than one lets a block's
     * start (x quantized, first copies) overlap another's work */
    int64_t bps = env_int("MLXN_CUDA_MVS_BPS", MVS_BPS);
    if (bps < 1) bps = 1;
    /* shared memory per block: the SM's (the per-block limit + 1 KB reserved) shared by bps blocks,
     * less each block's reserve, its static shared memory and the barrier padding */
    const int64_t avail = ((int64_t)cd->smem_optin + 1024) / bps - 1024 - 1024 - 16;
    int64_t nw_max = (avail - fixed) / per_warp;
    const int wcap = env_int("MLXN_CUDA_MVS_WARPS", MVS_MAX_WARPS);
    if (nw_max > wcap) nw_max = wcap;
    if (nw_max > MVS_MAX_WARPS) nw_max = MVS_MAX_WARPS;
    if (nw_max < 1) return 0;
    const int64_t ngroups = swiglu ? (R / 2 + 7) / 8 : (R + MVS_ROWS - 1) / MVS_ROWS, nseg = K / MVS_SEG;
    const int64_t sm = cd->sm_count * bps; /* block slots */
    /* P: warps per row group, each taking a part of K. The smallest of 2
     * and 4 whose rounds keep at least 85% of the warp slots busy, else the
     * busiest; 1 when K is one segment. (H100, MLX 4-bit, µs: gate|up
     * 28672x4096 P=1 31.8, 2 26.7, 4 29.1; lm_head 128256x4096 113.9 /
     * 104.2 / 111.6; down 4096x14336 51.1 / 27.8 / 18.2.) */
    int64_t P = env_int("MLXN_CUDA_MVS_PARTS", 0);
    if (P <= 0) {
        double best = -1.0;
        for (int64_t cand = 2; cand <= 4; cand *= 2) {
            if (cand > nseg || cand > nw_max) break;
            const int64_t slots = sm * (nw_max / cand), rounds = (ngroups + slots - 1) / slots;
            const double eff = (double)ngroups / (double)(rounds * slots);
            if (best < 0.85 && eff > best + 1e-9) best = eff, P = cand;
        }
        if (P <= 0) P = 1;
    }
    if (P > nseg) P = nseg;
    if (P > nw_max) P = nw_max;
    if (P < 1) P = 1;
    /* warps per block: enough to cover the groups with one block per SM, a multiple of P */
    int64_t nw = (ngroups * P + sm - 1) / sm;
    nw = (nw + P - 1) / P * P;
    if (nw > nw_max) nw = nw_max / P * P;
    int64_t gpb = nw / P, grid = (ngroups + gpb - 1) / gpb < sm ? (ngroups + gpb - 1) / gpb : sm;
    const int64_t rounds = (ngroups + grid * gpb - 1) / (grid * gpb);
    /* helper warps only share the quantization of x: a block launches
     * MVS_MAX_WARPS warps for rows of 4096 or more (env MLXN_CUDA_MVS_HELPERS:
     * warps launched, 0 none). H100 tg128 with 16 vs nw: 8B (K = 4096)
     * 407.6 / 407.3 vs 402.2 / 402.5 tok/s; 1B (K = 2048) 1,523.5 / 1,524.1
     * vs 1,560.7 / 1,559.4 (a full block waits for an empty SM). By default
     * only matmuls of several rounds take them (MVS_HELPERS_MIN_ROUNDS, env
     * MLXN_CUDA_MVS_HELPERS_MIN_ROUNDS): the 8B's q|k|v (2 rounds) runs
     * without, and its smaller block starts beside the down kernel's last
     * blocks: 8B tg128 412.9 / 413.6 vs 410.3 / 410.4 (the gate|up, 3 rounds,
     * also without: 404.0). */
    const int helpers = K >= 4096 && rounds >= env_int("MLXN_CUDA_MVS_HELPERS_MIN_ROUNDS", MVS_HELPERS_MIN_ROUNDS);
    int64_t launched = env_int("MLXN_CUDA_MVS_HELPERS", helpers ? MVS_MAX_WARPS : 0);
    if (launched > MVS_MAX_WARPS) launched = MVS_MAX_WARPS;
    /* Without helpers, the fewest row groups a block (so warps) that keep
     * the number of rounds: the rounds take as long, and a smaller block
     * leaves registers and shared memory for the next kernel's blocks to
     * start beside it (env MLXN_CUDA_MVS_TRIM=0: off). H100 tg128, the 1B's
     * gate|up (1,024 row groups, P = 2) in 8 warps instead of 10 (2 rounds
     * either way): see BENCHMARKS.md, session 10. */
    if (launched <= nw && env_int("MLXN_CUDA_MVS_TRIM", 1)) {
        gpb = (ngroups + grid * rounds - 1) / (grid * rounds);
        nw = gpb * P;
        launched = nw;
    }
    if (launched < nw) launched = nw;
    L->sh.stages = S;
    L->sh.parts = (int)P;
    L->sh.rounds = (int)rounds;
    L->sh.work = (int)nw;
    L->grid = (unsigned)grid;
    L->threads = (unsigned)(32 * launched);
    L->smem = (unsigned)(((nw * S * 8 + 15) & ~15) + fixed + nw * S * stage);
    return 1;
}

static mlxn_status mvs_launch_op(mlxn_session *s, const mlxn_weight *w, CUdeviceptr data, const mvs_launch *L,
                                 CUdeviceptr x, CUdeviceptr y, const mvf_params *f, int norm) {
    wparams_mv p = wparams_of(w, data);
    long long Nl = w->desc.rows;
    mvf_params fp = *f;
    mvs_shape sh = L->sh;
    void *args[] = {&p, &x, &y, &Nl, &fp, &sh};
    return mlxn_cuda_launch(s, "matvec_stream.cu", norm ? "mvs_mlx4fn" : "mvs_mlx4f", L->grid, 1, 1, L->threads,
                            L->smem, args);
}

mlxn_status mlxn_cuda_matmul_fast(mlxn_session *s, const mlxn_op *op, int *done) {
    *done = 0;
    const mlxn_weight *w = op->w;
    const mlxn_weight_desc *d = &w->desc;
    const mlxn_buffer *xb = op->in[0];
    int64_t M = xb->shape[0], K = d->cols, N = d->rows; // x [M, K], W [N, K], y [M, N]
    CUdeviceptr x = mlxn_cuda_addr(xb), y = mlxn_cuda_addr(op->out[0]);
    if (x % 16 || K % 4) return MLXN_OK;

    CUdeviceptr data = mlxn_cuda_addr(d->data);
    mvs_launch L;
    if (M == 1 && mvs_plan(s, w, data, 0, 0, &L)) {
        const mvf_params f = {0, 0, 0.0f, 0};
        MLXN_TRY(mvs_launch_op(s, w, data, &L, x, y, &f, 0));
        *done = 1;
        return MLXN_OK;
    }
    MLXN_TRY(mvt_try(s, w, data, x, y, M, N, K, done));
    if (*done) return MLXN_OK;
    const char *const *set = mv_set(w, data);

    if (!set || M > mv_max_m(d)) {
        MLXN_TRY(mlxn_cuda_gemm_try(s, op, done));
        if (*done) return MLXN_OK;
    }
    if (!set) return MLXN_OK;
    int mt = M == 1 ? 1 : M == 2 ? 2 : M <= 4 ? 4 : 8;
    /* Q4_K's wide kernels spill registers for more than one row of x; the
     * wide MLX kernels read 2-byte scales only */
    const int sc32 = d->format == MLXN_WEIGHT_MLX_AFFINE && d->scales->dtype == MLXN_F32;
    const int wide = mv_wide(d, K, mt) && !sc32 &&
                     !(mt > 1 && d->format == MLXN_WEIGHT_GGUF && d->gguf_type == MLXN_GGUF_Q4_K);
    int64_t gy = (M + mt - 1) / mt;
    int64_t rows_per_block = !wide ? MV_ROWS_WARP : mt == 1 && mv_wide8(d) ? 8 : MV_ROWS_WIDE;
    const char *kname = pick(set, mt, wide), *src = "matvec.cu";
    const char *vname = NULL;
    int vrows = M == 1 && !sc32 ? mv_variant(d, &vname) : 0;
    if (vrows) {
        rows_per_block = vrows;
        kname = vname;
        src = "matvec_tune.cu";
    }
    int64_t gx = (N + rows_per_block - 1) / rows_per_block;
    if (gy > 65535 || gx > 0x7fffffff) return MLXN_OK;
    wparams_mv p = wparams_of(w, data);
    int Mi = (int)M;
    long long Nl = N;
    void *args[] = {&p, &x, &y, &Mi, &Nl};
    MLXN_TRY(mlxn_cuda_launch(s, src, kname, (unsigned)gx, (unsigned)gy, 1, 128, 0, args));
    *done = 1;
    return MLXN_OK;
}

/* The fused kernels of a b1 format, or NULL: pairs of [x, x and the norm
 * weight (the norm prologue)] per row-group shape (matvec.cu): FUSED_BLOCK8
 * a block per 8 rows (NAME_b1f, NAME_b1fn), then a warp per 8 or 2 rows
 * (NAME_w8f(n), NAME_w2f(n)), all reading x through L1, and
 * for Q8_0 only, FUSED_TILE32: tiles of 32 rows staged in shared memory
 * (NAME_t32f(n); NULL for the other formats). */
enum { FUSED_BLOCK8, FUSED_WARP8, FUSED_WARP2, FUSED_TILE32, FUSED_SHAPES };
static const int fused_rows_per_block[FUSED_SHAPES] = {8, 32, 8, MV_TILE_ROWS};
static const char *const *fused_names(const mlxn_weight *w, CUdeviceptr data) {
#define FN(P, ...) {P "_b1f", P "_b1fn", P "_w8f", P "_w8fn", P "_w2f", P "_w2fn", __VA_ARGS__}
    static const char *const k[5][2 * FUSED_SHAPES] = {
        FN("mv_mlx4", NULL, NULL), FN("mv_mlx8", NULL, NULL), FN("mv_q4_0", NULL, NULL), FN("mv_q4_1", NULL, NULL),
        FN("mv_q8_0", "mv_q8_0_t32f", "mv_q8_0_t32fn")};
#undef FN
    const mlxn_weight_desc *d = &w->desc;
    if (!mv_wide8(d) || !mv_set(w, data)) return NULL; /* mv_set: the b1 kernels' alignment rules */
    if (d->format == MLXN_WEIGHT_MLX_AFFINE) {
        if (d->scales->dtype == MLXN_F32 || !d->biases) return NULL; /* b1 MLX kernels read 2-byte scales */
        return k[d->bits == 4 ? 0 : 1];
    }
    return k[d->gguf_type == MLXN_GGUF_Q4_0 ? 2 : d->gguf_type == MLXN_GGUF_Q4_1 ? 3 : 4];
}

/* A shape from env `name` ("b8", "w8", "w2", "t32"), or `dflt`. */
static int fused_shape_env(const char *name, int dflt) {
    static const char *const tag[FUSED_SHAPES] = {"b8", "w8", "w2", "t32"};
    const char *e = getenv(name);
    for (int i = 0; e && i < FUSED_SHAPES; i++)
        if (!strcmp(e, tag[i])) return i;
    return dflt;
}

/* Rows of at most this many load units (16-byte chunks for MLX, 32-value
 * blocks for GGUF) take the warp-per-8-rows fused kernels when there are at
 * least MV_NARROW_MIN_ROWS of them: a block-wide group would leave most of
 * its 128 threads without a unit, but with few rows the 4x fewer blocks
 * leave SMs idle (H100, 135M decode with every short-row matmul narrow:
 * 1,300 vs 1,491 tok/s). Env MLXN_CUDA_MV_NARROW_MAX overrides the unit
 * limit (0: always block-wide). Env MLXN_CUDA_MV_SHAPE, _NORM_SHAPE and
 * _NARROW_SHAPE override the shape (b8, w8, w2, t32) of the other matmuls
 * without and with the norm prologue and of the narrow ones. */
#define MV_NARROW_MIN_ROWS 16384
/* Rows of at most this many load units take the warp-per-2-rows kernels when
 * no norm is folded in: each lane then decodes 2 rows instead of 8 and the
 * reduction is shuffles only. H100 tg128, the o and down matmuls of the
 * 135M shape (18 and 48 units): random MLX 4-bit 1,913 / 1,919 vs 1,850 /
 * 1,848 tok/s, real SmolLM2 Q4_1 1,990 / 1,996 vs 1,993 / 1,985; for longer
 * rows they lose (1B 827 vs 1,413). With the norm prologue every warp reads
 * all of x and the norm weight, and 2 or 4 rows a warp measured no better
 * (random 135M 1,845 vs 1,850 with 4; real 1,899 vs 1,990; the 4-row
 * kernels are gone). */
#define MV_SHORT_UNITS 48
static int64_t narrow_max_units(void) {
    const char *e = getenv("MLXN_CUDA_MV_NARROW_MAX");
    return e && *e ? atoll(e) : 48;
}
/* Dynamic shared memory of a FUSED_TILE32 launch: staged x, then the tile. */
static int64_t tile_smem(const mlxn_weight *w) { return w->desc.cols * 4 + MV_TILE_ROWS * w->row_bytes; }
#define MV_TILE_MAX_SMEM (96 * 1024)

/* The row-group shape of a fused launch (names: fused_names()). Many short
 * rows (a small model's lm_head) take the staged tiles where the format has
 * them (Q8_0, 16-byte aligned data, no SwiGLU, the tile within
 * MV_TILE_MAX_SMEM), else a warp per 8 rows; short rows without a norm a
 * warp per 2 rows; the rest a block per 8 rows. */
static int fused_shape(const mlxn_weight *w, CUdeviceptr data, const char *const *names, int norm, int swiglu) {
    const mlxn_weight_desc *d = &w->desc;
    const int64_t units = d->format == MLXN_WEIGHT_MLX_AFFINE ? d->cols * d->bits / 128 : d->cols / 32;
    const char *e = getenv("MLXN_CUDA_MV_NARROW_MAX");
    const int narrow = units <= narrow_max_units() && (d->rows >= MV_NARROW_MIN_ROWS || (e && *e));
    const int tile_ok = names[2 * FUSED_TILE32] && data % 16 == 0 && !swiglu && tile_smem(w) <= MV_TILE_MAX_SMEM;
    int shape;
    if (narrow) shape = fused_shape_env("MLXN_CUDA_MV_NARROW_SHAPE", tile_ok ? FUSED_TILE32 : FUSED_WARP8);
    else if (norm) shape = fused_shape_env("MLXN_CUDA_MV_NORM_SHAPE", FUSED_BLOCK8);
    else shape = fused_shape_env("MLXN_CUDA_MV_SHAPE", units <= MV_SHORT_UNITS ? FUSED_WARP2 : FUSED_BLOCK8);
    return shape == FUSED_TILE32 && !tile_ok ? FUSED_WARP8 : shape;
}

/* Largest K for the norm prologue. Every block reads all of x and the norm
 * weight, so the prologue's L2 traffic grows with blocks × K and costs more
 * than a separate norm kernel once rows are long. Measured on the H100,
 * tg128 with the norm folded in vs a separate rms_norm (residual and SwiGLU
 * folded in both): K = 576 (SmolLM2-135M shape) gained only 1,497 vs 1,491
 * tok/s while the prologue staged x·w in shared memory; reading through L1
 * it runs at 1,714 against the staged one's 1,630. K = 2048 (Llama-3.2-1B
 * shape) 1,215 vs 1,347; K = 4096 (8B, staged) 335 against 362 for
 * all-separate ops. Env MLXN_CUDA_NORM_FUSE_MAX_K overrides it. */
static int64_t norm_fuse_max_k(void) {
    const char *e = getenv("MLXN_CUDA_NORM_FUSE_MAX_K");
    int64_t v = e && *e ? atoll(e) : 1024;
    return v < 0 ? 0 : v;
}

int mlxn_cuda_fusable(mlxn_session *s, const mlxn_op *op) {
    const char *e = getenv("MLXN_CUDA_FUSE");
    if (e && e[0] == '0' && e[1] == 0) return 0;
    if (op->kind == MLXN_OP_ROPE_KV_ATTENTION) return mlxn_cuda_rope_attention_fusable(s, op);
    if (op->kind != MLXN_OP_MATMUL_FUSED) return 0;
    const mlxn_buffer *x = op->in[0], *nw = op->in[1];
    const int64_t K = x->shape[1];
    if (x->shape[0] != 1 || K % 4 || mlxn_cuda_addr(x) % 16) return 0;
    mvs_launch L;
    const int streamed = mvs_plan(s, op->w, mlxn_cuda_addr(op->w->desc.data), op->i[0], nw != NULL, &L);
    if (nw && (mlxn_cuda_addr(nw) % 16 || (K > norm_fuse_max_k() && !streamed))) return 0;
    if (streamed) return 1;
    const int64_t rows = op->w->desc.rows, gx = op->i[0] ? (rows / 2 + 3) / 4 : (rows + 7) / 8;
    if (gx > 0x7fffffff) return 0;
    return fused_names(op->w, mlxn_cuda_addr(op->w->desc.data)) != NULL;
}

/* Launches a fused one-row kernel: x [1, K] -> y with the norm / residual /
 * swiglu of f, in the row-group shape fused_shape() picks (swiglu: half the
 * rows of a block are gate rows, half the matching up rows). */
static mlxn_status launch_fused(mlxn_session *s, const mlxn_weight *w, CUdeviceptr data, const char *const *names,
                                CUdeviceptr x, CUdeviceptr y, const mvf_params *f, int norm) {
    const mlxn_weight_desc *d = &w->desc;
    mvs_launch L;
    if (mvs_plan(s, w, data, (f->mode & MVF_SWIGLU) != 0, norm, &L)) return mvs_launch_op(s, w, data, &L, x, y, f, norm);
    const int shape = fused_shape(w, data, names, norm, (f->mode & MVF_SWIGLU) != 0);
    const int64_t rb = fused_rows_per_block[shape];
    const unsigned smem = shape == FUSED_TILE32 ? (unsigned)tile_smem(w) : 0;
    wparams_mv p = wparams_of(w, data);
    int Mi = 1;
    long long Nl = d->rows;
    const int64_t gx = (f->mode & MVF_SWIGLU) ? (Nl / 2 + rb / 2 - 1) / (rb / 2) : (Nl + rb - 1) / rb;
    mvf_params fp = *f;
    void *args[] = {&p, &x, &y, &Mi, &Nl, &fp};
    return mlxn_cuda_launch(s, "matvec.cu", names[2 * shape + (norm ? 1 : 0)], (unsigned)gx, 1, 1, 128, smem, args);
}

mlxn_status mlxn_cuda_op_matmul_fused(mlxn_session *s, const mlxn_op *op) {
    const mlxn_weight *w = op->w;
    CUdeviceptr data = mlxn_cuda_addr(w->desc.data);
    const char *const *names = fused_names(w, data);
    if (!mlxn_cuda_fusable(s, op)) /* true only where the streamed kernel or `names` takes it */
        return mlxn_set_error(MLXN_ERR_INTERNAL, "matmul_fused: dispatched to CUDA for weight '%s', which the fused "
                              "kernels do not take", w->desc.name);
    const mlxn_buffer *nw = op->in[1], *res = op->in[2];
    mvf_params f = {nw ? mlxn_cuda_addr(nw) : 0, res ? mlxn_cuda_addr(res) : 0, op->f[0],
                    (res ? MVF_RES : 0) | (op->i[0] ? MVF_SWIGLU : 0)};
    return launch_fused(s, w, data, names, mlxn_cuda_addr(op->in[0]), mlxn_cuda_addr(op->out[0]), &f, nw != NULL);
}
