/* cpu_misc.c — CPU kernels for the data-movement and selection ops: cast
 * among f32/f16/bf16 (round to nearest even, bit-identical to the
 * reference), argmax and top-k (ties to the lower index, NaN ranks below
 * every number; a single long row is split across threads and the partial
 * results merged), kv_append into a linear or ring cache (heads split across
 * threads, rows in order so a later row wins a shared ring slot) and
 * im2col_2d_3ch (patches split across threads). */
#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_convert.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- cast */

typedef struct {
    const void *x;
    void *y;
    mlxn_dtype tx, ty;
} cast_ctx;

static void cast_range(void *vctx, int64_t begin, int64_t end, int thread) {
    const cast_ctx *c = vctx;
    if (c->tx == MLXN_F32) {
        mlxn_cpu_narrow((const float *)c->x + begin, c->y, c->ty, begin, end - begin);
    } else if (c->ty == MLXN_F32) {
        mlxn_cpu_widen(c->x, c->tx, begin, end - begin, (float *)c->y + begin);
    } else { /* f16 <-> bf16 through an f32 block (exact widening, one rounding) */
        float buf[512];
        for (int64_t i = begin; i < end; i += 512) {
            int64_t n = end - i < 512 ? end - i : 512;
            mlxn_cpu_widen(c->x, c->tx, i, n, buf);
            mlxn_cpu_narrow(buf, c->y, c->ty, i, n);
        }
    }
}

MLXN_CPU_OP(cast) {
    const mlxn_buffer *x = op->in[0];
    mlxn_buffer *y = op->out[0];
    int64_t n = mlxn_numel(x->ndim, x->shape);
    if (x->dtype == y->dtype) {
        if (mlxn_buf_ptr(x) != mlxn_buf_ptr(y)) memcpy(mlxn_buf_ptr(y), mlxn_buf_ptr(x), (size_t)n * mlxn_dtype_size(x->dtype));
        return MLXN_OK;
    }
    cast_ctx c = {.x = mlxn_buf_ptr(x), .y = mlxn_buf_ptr(y), .tx = x->dtype, .ty = y->dtype};
    mlxn_cpu_parallel_for(mlxn_cpu_sess_dev(s), n, 32768, cast_range, &c);
    return MLXN_OK;
}

/* ---------------------------------------------------------------- argmax, top-k */

/* a (at index ia) ranks above b (at ib): larger; NaN below every number; ties to the lower index. */
static inline int ranks_above(float a, int64_t ia, float b, int64_t ib) {
    if (isnan(a)) return isnan(b) ? ia < ib : 0;
    if (isnan(b)) return 1;
    if (a != b) return a > b;
    return ia < ib;
}

/* Insert candidate (v, i) into the sorted best-first list (vals, idx) of
 * length *cnt <= k. */
static inline void topk_insert(float *vals, int32_t *idx, int *cnt, int k, float v, int32_t i) {
    int n = *cnt;
    /* fast reject: below a numeric last entry (NaN v compares false, and ranks lowest) */
    if (n == k && !(v >= vals[n - 1]) && !isnan(vals[n - 1])) return;
    if (n == k && !ranks_above(v, i, vals[n - 1], idx[n - 1])) return;
    int p = n < k ? n : k - 1; /* slot to fill; shift worse ones down */
    while (p > 0 && ranks_above(v, i, vals[p - 1], idx[p - 1])) {
        vals[p] = vals[p - 1];
        idx[p] = idx[p - 1];
        p--;
    }
    vals[p] = v;
    idx[p] = i;
    if (n < k) *cnt = n + 1;
}

typedef struct {
    const float *x;
    int64_t M, N;
    int k;
    float *vals;    /* [M, k] or NULL */
    int32_t *idx;   /* [M, k] */
    /* split mode (one row across threads): per-chunk lists */
    int64_t row, nchunks;
    float *pv;      /* [max(threads, nchunks), k]: per-thread rows, or per-chunk lists */
    int32_t *pi;    /* [nchunks, k] */
    int *pc;        /* [nchunks] */
} topk_ctx;

static void topk_rows(void *vctx, int64_t begin, int64_t end, int thread) {
    const topk_ctx *c = vctx;
    float *tv = c->pv + (size_t)thread * (size_t)c->k;
    for (int64_t r = begin; r < end; r++) {
        const float *x = c->x + r * c->N;
        int cnt = 0;
        int32_t *oi = c->idx + r * c->k;
        for (int64_t j = 0; j < c->N; j++) topk_insert(tv, oi, &cnt, c->k, x[j], (int32_t)j);
        if (c->vals) memcpy(c->vals + r * c->k, tv, (size_t)c->k * sizeof(float));
    }
}

/* Split mode: item i of [0, nchunks) takes columns [i*N/nchunks, (i+1)*N/nchunks)
 * of row c->row and owns list i, independent of the pool's scheduling. */
static void topk_split(void *vctx, int64_t begin, int64_t end, int thread) {
    const topk_ctx *c = vctx;
    const float *x = c->x + c->row * c->N;
    for (int64_t i = begin; i < end; i++) {
        float *tv = c->pv + (size_t)i * (size_t)c->k;
        int32_t *ti = c->pi + (size_t)i * (size_t)c->k;
        int cnt = 0;
        for (int64_t j = i * c->N / c->nchunks; j < (i + 1) * c->N / c->nchunks; j++)
            topk_insert(tv, ti, &cnt, c->k, x[j], (int32_t)j);
        c->pc[i] = cnt;
    }
}

static mlxn_status run_topk(mlxn_session *s, const float *x, int64_t M, int64_t N, int k, float *vals, int32_t *idx) {
    mlxn_cpu_device *dev = mlxn_cpu_sess_dev(s);
    int nt = dev->n_threads;
    topk_ctx c = {.x = x, .M = M, .N = N, .k = k, .vals = vals, .idx = idx};
    c.nchunks = (N + 2047) / 2048 < nt ? (N + 2047) / 2048 : nt; /* <= nt: the buffers below serve both modes */
    c.pv = malloc((size_t)nt * (size_t)k * sizeof(float));
    c.pi = malloc((size_t)nt * (size_t)k * sizeof(int32_t));
    c.pc = calloc((size_t)nt, sizeof(int));
    if (!c.pv || !c.pi || !c.pc) {
        free(c.pv); free(c.pi); free(c.pc);
        return mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "topk: out of host memory");
    }
    /* rows in parallel when there are enough; otherwise split each long row */
    if (M >= nt || N < 4096 || nt == 1) {
        mlxn_cpu_parallel_for(dev, M, 1, topk_rows, &c);
    } else {
        for (int64_t r = 0; r < M; r++) {
            c.row = r;
            mlxn_cpu_parallel_for(dev, c.nchunks, 1, topk_split, &c);
            float *fv = malloc((size_t)k * sizeof(float));
            if (!fv) { free(c.pv); free(c.pi); free(c.pc); return mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "topk: out of host memory"); }
            int cnt = 0;
            int32_t *oi = idx + r * k;
            for (int64_t t = 0; t < c.nchunks; t++)
                for (int j = 0; j < c.pc[t]; j++)
                    topk_insert(fv, oi, &cnt, k, c.pv[(size_t)t * k + j], c.pi[(size_t)t * k + j]);
            if (vals) memcpy(vals + r * k, fv, (size_t)k * sizeof(float));
            free(fv);
        }
    }
    free(c.pv);
    free(c.pi);
    free(c.pc);
    return MLXN_OK;
}

/* argmax of each row: a strict '>' scan keeps the lowest index among ties and
 * skips NaN; rows with no value above -inf fall back to the full ranking. */
typedef struct {
    const float *x;
    int64_t N;
    int32_t *idx;
} argmax_ctx;

static void argmax_rows(void *vctx, int64_t begin, int64_t end, int thread) {
    const argmax_ctx *c = vctx;
    for (int64_t r = begin; r < end; r++) {
        const float *x = c->x + r * c->N;
        float bv = -INFINITY;
        int64_t best = -1;
        for (int64_t j = 0; j < c->N; j++)
            if (x[j] > bv) { bv = x[j]; best = j; }
        if (best < 0) { /* only -inf and NaN: first -inf, else index 0 */
            best = 0;
            for (int64_t j = 1; j < c->N; j++)
                if (ranks_above(x[j], j, x[best], best)) best = j;
        }
        c->idx[r] = (int32_t)best;
    }
}

MLXN_CPU_OP(argmax) {
    int64_t M, N;
    mlxn_buffer_rows_cols(op->in[0], &M, &N);
    mlxn_cpu_device *dev = mlxn_cpu_sess_dev(s);
    if (M >= dev->n_threads || N < 32768) {
        argmax_ctx c = {.x = mlxn_buf_ptr(op->in[0]), .N = N, .idx = mlxn_buf_ptr(op->out[0])};
        mlxn_cpu_parallel_for(dev, M, (65536 + N - 1) / N, argmax_rows, &c);
        return MLXN_OK;
    }
    return run_topk(s, mlxn_buf_ptr(op->in[0]), M, N, 1, NULL, mlxn_buf_ptr(op->out[0])); /* long rows: split */
}

MLXN_CPU_OP(topk) {
    int64_t M, N;
    mlxn_buffer_rows_cols(op->in[0], &M, &N);
    return run_topk(s, mlxn_buf_ptr(op->in[0]), M, N, op->i[0], op->out[0] ? mlxn_buf_ptr(op->out[0]) : NULL,
                    mlxn_buf_ptr(op->out[1]));
}

/* ---------------------------------------------------------------- kv_append */

typedef struct {
    const void *src;
    void *cache;
    mlxn_dtype ts, tc;
    const int32_t *pos;
    int64_t T, H, D, C;
    int ring;
} kv_ctx;

static void kv_heads(void *vctx, int64_t begin, int64_t end, int thread) {
    const kv_ctx *c = vctx;
    size_t es = mlxn_dtype_size(c->ts), ec = mlxn_dtype_size(c->tc);
    for (int64_t h = begin; h < end; h++)
        for (int64_t t = 0; t < c->T; t++) {
            int64_t slot = c->ring ? c->pos[t] % c->C : c->pos[t];
            int64_t si = (t * c->H + h) * c->D, ci = (h * c->C + slot) * c->D;
            if (c->ts == c->tc) {
                memcpy((char *)c->cache + ci * ec, (const char *)c->src + si * es, (size_t)c->D * es);
            } else if (c->ts == MLXN_F32) {
                mlxn_cpu_narrow((const float *)c->src + si, c->cache, c->tc, ci, c->D);
            } else if (c->tc == MLXN_F32) {
                mlxn_cpu_widen(c->src, c->ts, si, c->D, (float *)c->cache + ci);
            } else {
                float buf[512];
                for (int64_t d = 0; d < c->D; d += 512) {
                    int64_t n = c->D - d < 512 ? c->D - d : 512;
                    mlxn_cpu_widen(c->src, c->ts, si + d, n, buf);
                    mlxn_cpu_narrow(buf, c->cache, c->tc, ci + d, n);
                }
            }
        }
}

MLXN_CPU_OP(kv_append) {
    const mlxn_buffer *src = op->in[0];
    mlxn_buffer *cache = op->out[0];
    kv_ctx c = {.src = mlxn_buf_ptr(src), .cache = mlxn_buf_ptr(cache), .ts = src->dtype, .tc = cache->dtype,
                .pos = mlxn_buf_ptr(op->in[1]), .T = src->shape[0], .H = src->shape[1], .D = src->shape[2],
                .C = cache->shape[1], .ring = op->i[0]};
    for (int64_t t = 0; t < c.T; t++) {
        if (c.pos[t] < 0 || (!c.ring && c.pos[t] >= c.C))
            return mlxn_set_error(MLXN_ERR_RANGE, "kv_append: positions[%lld] = %d is outside [0, %lld) (linear cache capacity)%s",
                                  (long long)t, c.pos[t], (long long)c.C, c.ring ? " (ring: must be >= 0)" : "");
    }
    mlxn_cpu_parallel_for(mlxn_cpu_sess_dev(s), c.H, 1, kv_heads, &c);
    return MLXN_OK;
}

/* ---------------------------------------------------------------- im2col */

typedef struct {
    const float *x;
    float *y;
    int64_t H, W, p;
} im2col_ctx;

static void im2col_patches(void *vctx, int64_t begin, int64_t end, int thread) {
    const im2col_ctx *c = vctx;
    int64_t p = c->p, gw = c->W / p, row = 3 * p * p;
    for (int64_t patch = begin; patch < end; patch++) {
        int64_t py = patch / gw, px = patch % gw;
        float *out = c->y + patch * row;
        for (int64_t ch = 0; ch < 3; ch++)
            for (int64_t dy = 0; dy < p; dy++)
                memcpy(out + (ch * p + dy) * p, c->x + (ch * c->H + py * p + dy) * c->W + px * p, (size_t)p * sizeof(float));
    }
}

MLXN_CPU_OP(im2col_2d_3ch) {
    const mlxn_buffer *img = op->in[0];
    im2col_ctx c = {.x = mlxn_buf_ptr(img), .y = mlxn_buf_ptr(op->out[0]), .H = img->shape[1], .W = img->shape[2],
                    .p = op->i[0]};
    int64_t np = (c.H / c.p) * (c.W / c.p);
    mlxn_cpu_parallel_for(mlxn_cpu_sess_dev(s), np, (4096 + 3 * c.p * c.p - 1) / (3 * c.p * c.p), im2col_patches, &c);
    return MLXN_OK;
}
