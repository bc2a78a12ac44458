/* cpu_softmax.c — CPU kernel for softmax over the last axis of f32 x [M, N]
 * with a scale and an optional additive mask ([M, N] or [N]). Rows are
 * split across the thread pool; per row: max of scale*x + mask, exp and sum
 * (the sum accumulated in double), normalize. A row whose every logit is
 * -inf (fully masked) yields zeros. y may alias x. */
#include "backend/cpu/cpu_backend.h"

#include <math.h>

typedef struct {
    const float *x, *mask;
    float *y;
    int64_t N;
    int mask_full; /* mask is [M, N] (else [N]) */
    float scale;
} sm_ctx;

static void sm_rows(void *vctx, int64_t begin, int64_t end, int thread) {
    const sm_ctx *c = vctx;
    int64_t N = c->N;
    for (int64_t r = begin; r < end; r++) {
        const float *x = c->x + r * N;
        const float *m = c->mask ? c->mask + (c->mask_full ? r * N : 0) : NULL;
        float *y = c->y + r * N;
        float mx = -INFINITY;
        if (m) {
            for (int64_t j = 0; j < N; j++) {
                float z = c->scale * x[j] + m[j];
                mx = z > mx ? z : mx;
            }
        } else {
            for (int64_t j = 0; j < N; j++) {
                float z = c->scale * x[j];
                mx = z > mx ? z : mx;
            }
        }
        if (mx == -INFINITY) {
            for (int64_t j = 0; j < N; j++) y[j] = 0.0f;
            continue;
        }
        double sum = 0;
        for (int64_t j = 0; j < N; j++) {
            float z = c->scale * x[j] + (m ? m[j] : 0.0f);
            float e = expf(z - mx);
            y[j] = e;
            sum += e;
        }
        float inv = (float)(1.0 / sum);
        for (int64_t j = 0; j < N; j++) y[j] *= inv;
    }
}

MLXN_CPU_OP(softmax) {
    int64_t M, N;
    mlxn_buffer_rows_cols(op->in[0], &M, &N);
    sm_ctx c = {.x = mlxn_buf_ptr(op->in[0]), .y = mlxn_buf_ptr(op->out[0]), .N = N, .scale = op->f[0]};
    if (op->in[1]) {
        c.mask = mlxn_buf_ptr(op->in[1]);
        c.mask_full = mlxn_numel(op->in[1]->ndim, op->in[1]->shape) != N || M == 1;
    }
    mlxn_cpu_parallel_for(mlxn_cpu_sess_dev(s), M, (16384 + N - 1) / N, sm_rows, &c);
    return MLXN_OK;
}
