/* cpu_rope.c — CPU kernel for rotary position embeddings on x [T, H, D].
 * The scaled inverse frequencies are computed once per call in double; the
 * (T*H) heads are split across the thread pool, and each chunk computes the
 * cos/sin table of a row's position in double (rounded to f32) when the row
 * changes, then rotates the pairs of every head of that row in f32:
 * adjacent pairs (2i, 2i+1) or half-split pairs (i, i + rot/2). Dims past
 * rot_dims are copied. */
#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_convert.h"

#include <math.h>
#include <stdlib.h>

typedef struct {
    const mlxn_rope_params *p;
    mlxn_dtype t;
    int64_t H, D, half;
    const void *x;
    void *y;
    const int32_t *pos;
    const double *inv_freq; /* [half] */
    double pos_div;
    float *scratch;         /* [threads, 2*half + D] */
} rope_ctx;

static void rope_range(void *vctx, int64_t begin, int64_t end, int thread) {
    const rope_ctx *c = vctx;
    int64_t H = c->H, D = c->D, half = c->half;
    float *cs = c->scratch + (size_t)thread * (size_t)(2 * half + D), *sn = cs + half, *row = sn + half;
    int64_t cur_t = -1;
    int adj = c->p->mode == MLXN_ROPE_ADJACENT;
    for (int64_t item = begin; item < end; item++) {
        int64_t t = item / H;
        if (t != cur_t) {
            double pos = (double)c->pos[t] / c->pos_div;
            for (int64_t i = 0; i < half; i++) {
                double a = pos * c->inv_freq[i];
                cs[i] = (float)cos(a);
                sn[i] = (float)sin(a);
            }
            cur_t = t;
        }
        int64_t base = item * D;
        const float *x;
        float *y;
        if (c->t == MLXN_F32) {
            x = (const float *)c->x + base;
            y = (float *)c->y + base;
        } else {
            mlxn_cpu_widen(c->x, c->t, base, D, row);
            x = row;
            y = row;
        }
        if (adj) {
            for (int64_t i = 0; i < half; i++) {
                float x0 = x[2 * i], x1 = x[2 * i + 1];
                y[2 * i] = x0 * cs[i] - x1 * sn[i];
                y[2 * i + 1] = x0 * sn[i] + x1 * cs[i];
            }
        } else {
            for (int64_t i = 0; i < half; i++) {
                float x0 = x[i], x1 = x[i + half];
                y[i] = x0 * cs[i] - x1 * sn[i];
                y[i + half] = x0 * sn[i] + x1 * cs[i];
            }
        }
        if (c->t == MLXN_F32) {
            if (y != x) for (int64_t j = 2 * half; j < D; j++) y[j] = x[j];
        } else {
            mlxn_cpu_narrow(row, c->y, c->t, base, D);
        }
    }
}

MLXN_CPU_OP(rope) {
    mlxn_cpu_device *dev = mlxn_cpu_sess_dev(s);
    const mlxn_buffer *x = op->in[0];
    const mlxn_rope_params *p = &op->p.rope;
    int64_t T = x->shape[0], H = x->shape[1], D = x->shape[2], half = p->rot_dims / 2;
    double *inv = malloc((size_t)half * sizeof *inv);
    float *scratch = malloc((size_t)dev->n_threads * (size_t)(2 * half + D) * sizeof(float));
    if (!inv || !scratch) {
        free(inv);
        free(scratch);
        return mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "rope: out of host memory");
    }
    for (int64_t i = 0; i < half; i++) {
        double f = pow((double)p->theta, -2.0 * (double)i / (double)p->rot_dims);
        if (p->scaling == MLXN_ROPE_SCALING_LLAMA3) {
            double lf = p->low_freq_factor, hf = p->high_freq_factor, omp = p->original_max_pos;
            double wl = 2.0 * M_PI / f;
            if (wl > omp / lf) f /= p->factor;
            else if (wl >= omp / hf) {
                double smooth = (omp / wl - lf) / (hf - lf);
                f = (1.0 - smooth) * f / p->factor + smooth * f;
            }
        }
        inv[i] = f;
    }
    rope_ctx c = {.p = p, .t = x->dtype, .H = H, .D = D, .half = half, .x = mlxn_buf_ptr(x),
                  .y = mlxn_buf_ptr(op->out[0]), .pos = mlxn_buf_ptr(op->in[1]), .inv_freq = inv,
                  .pos_div = p->scaling == MLXN_ROPE_SCALING_LINEAR ? (double)p->factor : 1.0, .scratch = scratch};
    mlxn_cpu_parallel_for(dev, T * H, (4096 + D - 1) / D, rope_range, &c);
    free(inv);
    free(scratch);
    return MLXN_OK;
}
