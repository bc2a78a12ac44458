/* forward.c — the transformer forward pass, written once for every
 * architecture in the table (model.h) using only the public op API:
 *
 *   x = embedding(ids)                                   // [T, d]
 *   per layer:  h = rms_norm(x (+ previous MLP output))  // fused residual add
 *               q, k, v = h·Wqᵀ, h·Wkᵀ, h·Wvᵀ (+ bias: qwen2)
 *               q, k = rms_norm per head (qwen3)         // on [T*H, D]
 *               q, k = rope(q, k, positions); cache[pos] = k, v   // one op
 *               a = attention(q, cache, positions)
 *               x += a·Woᵀ ; h = rms_norm(x)             // one fused op
 *               x += (silu(h·Wgᵀ) * h·Wuᵀ)·Wdᵀ          // added by the next norm
 *   logits = rms_norm(x[last]) · lm_headᵀ                 // or every row
 *
 * Activations live in buffers allocated once per state for max_tokens rows;
 * views of the first n rows are cached for n = 1 (decode) and for the last
 * prefill size, so a decode step allocates nothing. Positions and ids are
 * read from device buffers, so one recorded decode step can be replayed with
 * new values (CUDA graphs). When the model was loaded with fusion, the
 * one-row step computes q|k|v and gate|up with one matmul each (views into
 * one buffer). RoPE and the cache writes are one op (mlxn_rope_kv_append);
 * in that one-row step, RoPE, the cache writes and attention are one op
 * (mlxn_rope_kv_attention: one kernel on CUDA). Where the backend runs
 * mlxn_matmul_fused as one kernel (CUDA, one row), the one-row step also
 * folds SiLU·mul into gate|up, the residual adds into the o and down
 * projections and, where the backend takes it (CUDA: rows up to 1024), each
 * pre-norm into the q|k|v, gate|up and lm_head matmuls: per layer q|k|v,
 * attention (with rope+cache), o, gate|up, down. */
#include "model/model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "model/kv_cache.h"

/* Views of the state's buffers for n rows. */
typedef struct fwd_views {
    int n;
    mlxn_buffer *ids, *pos;            /* i32 [n] */
    mlxn_buffer *x, *h;                /* [n, d] */
    mlxn_buffer *q2, *k2, *v2;         /* [n, Hq*D] [n, Hkv*D] [n, Hkv*D] */
    mlxn_buffer *q3, *k3, *v3;         /* [n, Hq, D] [n, Hkv, D] [n, Hkv, D] */
    mlxn_buffer *qh, *kh;              /* [n*Hq, D] [n*Hkv, D] (per-head norm) */
    mlxn_buffer *a3, *a2;              /* [n, Hq, D] / [n, Hq*D] attention output */
    mlxn_buffer *o;                    /* [n, d] */
    mlxn_buffer *gate, *up;            /* [n, ff] */
    mlxn_buffer *down;                 /* [n, d] */
    mlxn_buffer *x_last, *h_last, *down_last; /* [1, d] row n-1 */
    mlxn_buffer *logits_all;           /* [n, vocab] (NULL until asked) */
} fwd_views;

/* Views for the fused one-row decode step (NULL when the model has no fusion). */
typedef struct fused_views {
    mlxn_buffer *qkv;      /* [1, Hq*D + 2*Hkv*D] */
    mlxn_buffer *q3, *k3, *v3; /* [1,Hq,D] [1,Hkv,D] [1,Hkv,D] */
    mlxn_buffer *qh, *kh;  /* [Hq, D] [Hkv, D] */
    mlxn_buffer *gu;       /* [1, 2*ff] */
    mlxn_buffer *gate, *up;/* [1, ff] each */
} fused_views;

struct mlxn_forward_state {
    int max_t;
    int64_t d, qd, kvd, ff, vocab;
    int hq, hkv, hd;
    mlxn_buffer *ids, *pos;                 /* i32 [max_t] */
    mlxn_buffer *x, *h, *q, *k, *v, *a, *o, *gate, *up, *down; /* [max_t, ...] f32 */
    mlxn_buffer *logits1;                   /* [1, vocab] */
    mlxn_buffer *logits_all;                /* [max_t, vocab], lazily */
    fwd_views one, last;                    /* cached views for n = 1 and the last n > 1 */
    fused_views fu;
    mlxn_buffer *qkv_store, *gu_store;      /* storage of the fused views */
    mlxn_buffer *step_ids;                  /* i32 [1] the one-row embedding reads, or NULL: one.ids */
    int64_t kv_bound;                       /* attention's kv_bound (0: none) */
};

static void fused_release(fused_views *f) {
    mlxn_buffer *b[] = { f->qkv, f->q3, f->k3, f->v3, f->qh, f->kh, f->gu, f->gate, f->up };
    for (size_t i = 0; i < sizeof b / sizeof b[0]; i++) mlxn_buffer_release(b[i]);
    memset(f, 0, sizeof *f);
}

static mlxn_status viewn(mlxn_buffer *base, int64_t off_elems, int nd, int64_t a, int64_t b, int64_t c,
                         mlxn_buffer **out) {
    int64_t shape[3] = { a, b, c };
    return mlxn_buffer_view(base, (size_t)off_elems * sizeof(float), MLXN_F32, nd, shape, out);
}

static mlxn_status fused_build(mlxn_forward_state *st, mlxn_device *dev, int has_qkv, int has_gu) {
    mlxn_status s = MLXN_OK;
    fused_views *f = &st->fu;
#define T(x) do { if (s == MLXN_OK) s = (x); } while (0)
    if (has_qkv) {
        int64_t sh[2] = { 1, st->qd + 2 * st->kvd };
        T(mlxn_buffer_alloc(dev, MLXN_F32, 2, sh, &st->qkv_store));
        T(viewn(st->qkv_store, 0, 2, 1, st->qd + 2 * st->kvd, 0, &f->qkv));
        T(viewn(st->qkv_store, 0, 3, 1, st->hq, st->hd, &f->q3));
        T(viewn(st->qkv_store, st->qd, 3, 1, st->hkv, st->hd, &f->k3));
        T(viewn(st->qkv_store, st->qd + st->kvd, 3, 1, st->hkv, st->hd, &f->v3));
        T(viewn(st->qkv_store, 0, 2, st->hq, st->hd, 0, &f->qh));
        T(viewn(st->qkv_store, st->qd, 2, st->hkv, st->hd, 0, &f->kh));
    }
    if (has_gu) {
        int64_t sh[2] = { 1, 2 * st->ff };
        T(mlxn_buffer_alloc(dev, MLXN_F32, 2, sh, &st->gu_store));
        T(viewn(st->gu_store, 0, 2, 1, 2 * st->ff, 0, &f->gu));
        T(viewn(st->gu_store, 0, 2, 1, st->ff, 0, &f->gate));
        T(viewn(st->gu_store, st->ff, 2, 1, st->ff, 0, &f->up));
    }
#undef T
    return s;
}

static void views_release(fwd_views *v) {
    mlxn_buffer **b[] = { &v->ids, &v->pos, &v->x, &v->h, &v->q2, &v->k2, &v->v2, &v->q3, &v->k3, &v->v3,
                          &v->qh, &v->kh, &v->a3, &v->a2, &v->o, &v->gate, &v->up, &v->down, &v->x_last,
                          &v->h_last, &v->down_last, &v->logits_all };
    for (size_t i = 0; i < sizeof b / sizeof b[0]; i++) {
        mlxn_buffer_release(*b[i]);
        *b[i] = NULL;
    }
    v->n = 0;
}

static mlxn_status view2(mlxn_buffer *base, int64_t row0, int64_t rows, int64_t cols, mlxn_buffer **out) {
    int64_t shape[2] = { rows, cols };
    size_t esz = mlxn_dtype_size(mlxn_buffer_dtype(base));
    return mlxn_buffer_view(base, (size_t)(row0 * cols) * esz, mlxn_buffer_dtype(base), 2, shape, out);
}

static mlxn_status view3(mlxn_buffer *base, int64_t a, int64_t b, int64_t c, mlxn_buffer **out) {
    int64_t shape[3] = { a, b, c };
    return mlxn_buffer_view(base, 0, mlxn_buffer_dtype(base), 3, shape, out);
}

static mlxn_status views_build(mlxn_forward_state *st, int n, fwd_views *v) {
    views_release(v);
    int64_t shape1[1] = { n };
    mlxn_status s = MLXN_OK;
#define T(x) do { if (s == MLXN_OK) s = (x); } while (0)
    T(mlxn_buffer_view(st->ids, 0, MLXN_I32, 1, shape1, &v->ids));
    T(mlxn_buffer_view(st->pos, 0, MLXN_I32, 1, shape1, &v->pos));
    T(view2(st->x, 0, n, st->d, &v->x));
    T(view2(st->h, 0, n, st->d, &v->h));
    T(view2(st->q, 0, n, st->qd, &v->q2));
    T(view2(st->k, 0, n, st->kvd, &v->k2));
    T(view2(st->v, 0, n, st->kvd, &v->v2));
    T(view3(st->q, n, st->hq, st->hd, &v->q3));
    T(view3(st->k, n, st->hkv, st->hd, &v->k3));
    T(view3(st->v, n, st->hkv, st->hd, &v->v3));
    T(view2(st->q, 0, (int64_t)n * st->hq, st->hd, &v->qh));
    T(view2(st->k, 0, (int64_t)n * st->hkv, st->hd, &v->kh));
    T(view3(st->a, n, st->hq, st->hd, &v->a3));
    T(view2(st->a, 0, n, st->qd, &v->a2));
    T(view2(st->o, 0, n, st->d, &v->o));
    T(view2(st->gate, 0, n, st->ff, &v->gate));
    T(view2(st->up, 0, n, st->ff, &v->up));
    T(view2(st->down, 0, n, st->d, &v->down));
    T(view2(st->x, n - 1, 1, st->d, &v->x_last));
    T(view2(st->h, n - 1, 1, st->d, &v->h_last));
    T(view2(st->down, n - 1, 1, st->d, &v->down_last));
#undef T
    if (s != MLXN_OK) {
        views_release(v);
        return s;
    }
    v->n = n;
    return MLXN_OK;
}

mlxn_status mlxn_forward_state_create(const mlxn_model *m, int max_tokens, mlxn_forward_state **out) {
    if (!m || !out) return mlxn_set_error(MLXN_ERR_INVALID_ARG, "forward_state_create: NULL argument");
    *out = NULL;
    if (max_tokens <= 0 || max_tokens > 1 << 20)
        return mlxn_set_error(MLXN_ERR_INVALID_ARG, "forward_state_create: max_tokens %d out of range", max_tokens);
    mlxn_forward_state *st = calloc(1, sizeof *st);
    if (!st) return mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "forward_state_create");
    const mlxn_model_config *c = &m->cfg;
    st->max_t = max_tokens;
    st->d = c->d_model;
    st->hq = c->n_heads;
    st->hkv = c->n_kv_heads;
    st->hd = c->head_dim;
    st->qd = (int64_t)c->n_heads * c->head_dim;
    st->kvd = (int64_t)c->n_kv_heads * c->head_dim;
    st->ff = c->d_ff;
    st->vocab = c->vocab;
    mlxn_device *dev = m->dev;
    int64_t T = max_tokens;
    mlxn_status s = MLXN_OK;
#define A2(buf, cols) do { int64_t sh[2] = { T, (cols) }; if (s == MLXN_OK) s = mlxn_buffer_alloc(dev, MLXN_F32, 2, sh, &(buf)); } while (0)
    {
        int64_t sh[1] = { T };
        s = mlxn_buffer_alloc(dev, MLXN_I32, 1, sh, &st->ids);
        if (s == MLXN_OK) s = mlxn_buffer_alloc(dev, MLXN_I32, 1, sh, &st->pos);
    }
    A2(st->x, st->d);
    A2(st->h, st->d);
    A2(st->q, st->qd);
    A2(st->k, st->kvd);
    A2(st->v, st->kvd);
    A2(st->a, st->qd);
    A2(st->o, st->d);
    A2(st->gate, st->ff);
    A2(st->up, st->ff);
    A2(st->down, st->d);
#undef A2
    if (s == MLXN_OK) {
        int64_t sh[2] = { 1, st->vocab };
        s = mlxn_buffer_alloc(dev, MLXN_F32, 2, sh, &st->logits1);
    }
    if (s == MLXN_OK) s = views_build(st, 1, &st->one);
    if (s == MLXN_OK && c->n_layers > 0 && (m->layers[0].wqkv || m->layers[0].wgu))
        s = fused_build(st, dev, m->layers[0].wqkv != NULL, m->layers[0].wgu != NULL);
    if (s != MLXN_OK) {
        mlxn_forward_state_free(st);
        return mlxn_error_prefix(s, "forward state (%d tokens)", max_tokens);
    }
    *out = st;
    return MLXN_OK;
}

void mlxn_forward_state_free(mlxn_forward_state *st) {
    if (!st) return;
    views_release(&st->one);
    views_release(&st->last);
    fused_release(&st->fu);
    mlxn_buffer_release(st->qkv_store);
    mlxn_buffer_release(st->gu_store);
    mlxn_buffer_release(st->step_ids);
    mlxn_buffer *b[] = { st->ids, st->pos, st->x, st->h, st->q, st->k, st->v, st->a, st->o,
                         st->gate, st->up, st->down, st->logits1, st->logits_all };
    for (size_t i = 0; i < sizeof b / sizeof b[0]; i++) mlxn_buffer_release(b[i]);
    free(st);
}

int mlxn_forward_state_max_tokens(const mlxn_forward_state *st) { return st ? st->max_t : 0; }
mlxn_buffer *mlxn_forward_state_ids(mlxn_forward_state *st) { return st->one.ids; }
mlxn_buffer *mlxn_forward_state_positions(mlxn_forward_state *st) { return st->one.pos; }

void mlxn_forward_state_set_kv_bound(mlxn_forward_state *st, int64_t bound) {
    if (st) st->kv_bound = bound > 0 ? bound : 0;
}

mlxn_status mlxn_forward_state_set_step_ids(mlxn_forward_state *st, mlxn_buffer *ids) {
    if (!st) return mlxn_set_error(MLXN_ERR_INVALID_ARG, "forward_state_set_step_ids: NULL state");
    mlxn_buffer *v = NULL;
    if (ids) {
        if (mlxn_buffer_dtype(ids) != MLXN_I32 || mlxn_buffer_numel(ids) != 1)
            return mlxn_set_error(MLXN_ERR_SHAPE, "forward_state_set_step_ids: ids must be one i32");
        int64_t one = 1;
        MLXN_TRY(mlxn_buffer_view(ids, 0, MLXN_I32, 1, &one, &v));
    }
    mlxn_buffer_release(st->step_ids);
    st->step_ids = v;
    return MLXN_OK;
}

static mlxn_status get_views(mlxn_forward_state *st, int n, int all_logits, fwd_views **out) {
    fwd_views *v = n == 1 ? &st->one : &st->last;
    if (v->n != n) MLXN_TRY(views_build(st, n, v));
    if (all_logits && !v->logits_all) {
        if (!st->logits_all) {
            int64_t sh[2] = { st->max_t, st->vocab };
            MLXN_TRY(mlxn_buffer_alloc(mlxn_buffer_device(st->x), MLXN_F32, 2, sh, &st->logits_all));
        }
        MLXN_TRY(view2(st->logits_all, 0, n, st->vocab, &v->logits_all));
    }
    *out = v;
    return MLXN_OK;
}

/* h = rms_norm(x), first adding a pending branch output into x (x += pend). */
static mlxn_status norm_pending(mlxn_session *s, const mlxn_buffer *pend, mlxn_buffer *x, const mlxn_buffer *w,
                                float eps, mlxn_buffer *h) {
    if (!pend) return mlxn_rms_norm(s, x, w, eps, h);
    return mlxn_rms_norm_residual(s, pend, x, w, eps, x, h);
}

/* A sub-block's output projection x += in·Wᵀ: one fused kernel for one row
 * where the backend has it; else out = in·Wᵀ, left pending (*pend = out) for
 * the next norm to add. */
static mlxn_status project_residual(mlxn_session *s, int one, const mlxn_buffer *in, const mlxn_weight *w,
                                    mlxn_buffer *x, mlxn_buffer *out, mlxn_buffer **pend) {
    mlxn_matmul_fusion fr = {.residual = x, .y_scratch = out};
    if (one && mlxn_matmul_fused_native(s, in, w, &fr, x)) {
        *pend = NULL;
        return mlxn_matmul_fused(s, in, w, &fr, x);
    }
    *pend = out;
    return mlxn_matmul(s, in, w, out);
}

mlxn_status mlxn_forward_enqueue(const mlxn_model *m, mlxn_forward_state *st, mlxn_kv_cache *kv, mlxn_session *s,
                                 int n, int all_logits, mlxn_buffer **logits) {
    if (!m || !st || !kv || !s || !logits) return mlxn_set_error(MLXN_ERR_INVALID_ARG, "forward: NULL argument");
    if (n <= 0 || n > st->max_t)
        return mlxn_set_error(MLXN_ERR_RANGE, "forward: %d tokens (state holds 1..%d)", n, st->max_t);
    const mlxn_model_config *c = &m->cfg;
    if (kv->n_layers != c->n_layers || kv->n_kv_heads != c->n_kv_heads || kv->head_dim != c->head_dim)
        return mlxn_set_error(MLXN_ERR_SHAPE, "forward: kv cache (%d layers, %d heads, dim %d) does not fit the "
                              "model (%d, %d, %d)", kv->n_layers, kv->n_kv_heads, kv->head_dim, c->n_layers,
                              c->n_kv_heads, c->head_dim);
    fwd_views *v;
    MLXN_TRY(get_views(st, n, all_logits, &v));
    const float eps = c->norm_eps;
    mlxn_attention_params ap;
    memset(&ap, 0, sizeof ap);
    ap.scale = 1.0f / sqrtf((float)c->head_dim);
    ap.causal = 1;
    ap.kv_bound = st->kv_bound < kv->capacity ? st->kv_bound : 0;

    MLXN_TRY(mlxn_embedding(s, m->tok_embd, n == 1 && st->step_ids ? st->step_ids : v->ids, v->x)); // x [n, d]
    const fused_views *f = &st->fu;
    const int one = n == 1;
    /* pend: a branch output not yet added to x (the separate-op path adds it
     * with the next norm); NULL when the fused matmul already added it */
    mlxn_buffer *pend = NULL;
    for (int l = 0; l < c->n_layers; l++) {
        const mlxn_layer_weights *L = &m->layers[l];
        /* ---- attention: q|k|v = rms_norm(x)·Wqkvᵀ in one kernel where the backend can */
        mlxn_matmul_fusion fq = {.norm = L->attn_norm, .norm_eps = eps, .x_scratch = v->h};
        const int fused_qkv = one && L->wqkv && f->qkv;
        if (fused_qkv && !pend && mlxn_matmul_fused_native(s, v->x, L->wqkv, &fq, f->qkv)) {
            MLXN_TRY(mlxn_matmul_fused(s, v->x, L->wqkv, &fq, f->qkv));      // [1, Hq*D + 2*Hkv*D]
        } else {
            MLXN_TRY(norm_pending(s, pend, v->x, L->attn_norm, eps, v->h));  // x += pend; h = norm(x)
            pend = NULL;
            if (fused_qkv) {
                MLXN_TRY(mlxn_matmul(s, v->h, L->wqkv, f->qkv));
            } else {
                MLXN_TRY(mlxn_matmul(s, v->h, L->wq, v->q2));               // [n, Hq*D]
                MLXN_TRY(mlxn_matmul(s, v->h, L->wk, v->k2));               // [n, Hkv*D]
                MLXN_TRY(mlxn_matmul(s, v->h, L->wv, v->v2));               // [n, Hkv*D]
            }
        }
        if (fused_qkv) { /* one row: views of the q|k|v buffer; rope over q and k at once */
            if (L->qkv_bias) MLXN_TRY(mlxn_add(s, f->qkv, L->qkv_bias, f->qkv));
            if (L->q_norm) {
                MLXN_TRY(mlxn_rms_norm(s, f->qh, L->q_norm, eps, f->qh));    // [Hq, D]
                MLXN_TRY(mlxn_rms_norm(s, f->kh, L->k_norm, eps, f->kh));    // [Hkv, D]
            }
            /* rope, both cache appends and attention: one kernel on CUDA */
            MLXN_TRY(mlxn_rope_kv_attention(s, f->q3, f->k3, f->v3, v->pos, &c->rope, &ap, kv->k[l], kv->v[l],
                                            v->a3));                                      // [1, Hq, D]
        } else {
            if (L->q_bias) {
                MLXN_TRY(mlxn_add(s, v->q2, L->q_bias, v->q2));
                MLXN_TRY(mlxn_add(s, v->k2, L->k_bias, v->k2));
                MLXN_TRY(mlxn_add(s, v->v2, L->v_bias, v->v2));
            }
            if (L->q_norm) {
                MLXN_TRY(mlxn_rms_norm(s, v->qh, L->q_norm, eps, v->qh));    // [n*Hq, D]
                MLXN_TRY(mlxn_rms_norm(s, v->kh, L->k_norm, eps, v->kh));    // [n*Hkv, D]
            }
            MLXN_TRY(mlxn_rope_kv_append(s, v->q3, v->k3, v->v3, v->pos, &c->rope, 0, kv->k[l], kv->v[l]));
            MLXN_TRY(mlxn_attention(s, v->q3, kv->k[l], kv->v[l], v->pos, &ap, v->a3)); // [n, Hq, D]
        }
        MLXN_TRY(project_residual(s, one, v->a2, L->wo, v->x, v->o, &pend));  // x += a·Woᵀ (now or pending)
        /* ---- MLP: silu(h·Wgᵀ) * h·Wuᵀ, with h = rms_norm(x) */
        mlxn_matmul_fusion fg = {.norm = L->ffn_norm, .norm_eps = eps, .swiglu = 1, .x_scratch = v->h,
                                 .y_scratch = f->gu};
        const int fused_gu = one && L->wgu && f->gu;
        if (fused_gu && !pend && mlxn_matmul_fused_native(s, v->x, L->wgu, &fg, v->gate)) {
            MLXN_TRY(mlxn_matmul_fused(s, v->x, L->wgu, &fg, v->gate));      // [1, ff]
        } else {
            MLXN_TRY(norm_pending(s, pend, v->x, L->ffn_norm, eps, v->h));
            pend = NULL;
            mlxn_matmul_fusion fs = {.swiglu = 1, .y_scratch = f->gu};
            if (fused_gu && mlxn_matmul_fused_native(s, v->h, L->wgu, &fs, v->gate)) {
                MLXN_TRY(mlxn_matmul_fused(s, v->h, L->wgu, &fs, v->gate)); // [1, ff]: silu(gate) * up
            } else if (fused_gu) { /* the cached views, so the step allocates nothing */
                MLXN_TRY(mlxn_matmul(s, v->h, L->wgu, f->gu));              // [1, 2*ff]
                MLXN_TRY(mlxn_silu_mul(s, f->gate, f->up, v->gate));        // [1, ff]
            } else {
                MLXN_TRY(mlxn_matmul(s, v->h, L->w_gate, v->gate));         // [n, ff]
                MLXN_TRY(mlxn_matmul(s, v->h, L->w_up, v->up));             // [n, ff]
                MLXN_TRY(mlxn_silu_mul(s, v->gate, v->up, v->gate));
            }
        }
        MLXN_TRY(project_residual(s, one, v->gate, L->w_down, v->x, v->down, &pend)); // x += mlp·Wdᵀ
    }
    if (all_logits) {
        MLXN_TRY(norm_pending(s, pend, v->x, m->out_norm, eps, v->h));
        MLXN_TRY(mlxn_matmul(s, v->h, m->lm_head, v->logits_all));          // [n, vocab]
        *logits = v->logits_all;
        return MLXN_OK;
    }
    mlxn_matmul_fusion fl = {.norm = m->out_norm, .norm_eps = eps, .x_scratch = v->h_last};
    if (!pend && mlxn_matmul_fused_native(s, v->x_last, m->lm_head, &fl, st->logits1)) {
        MLXN_TRY(mlxn_matmul_fused(s, v->x_last, m->lm_head, &fl, st->logits1)); // [1, vocab]
    } else {
        MLXN_TRY(norm_pending(s, pend ? v->down_last : NULL, v->x_last, m->out_norm, eps, v->h_last));
        MLXN_TRY(mlxn_matmul(s, v->h_last, m->lm_head, st->logits1));       // [1, vocab]
    }
    *logits = st->logits1;
    return MLXN_OK;
}

mlxn_status mlxn_forward_tokens(const mlxn_model *m, mlxn_forward_state *st, mlxn_kv_cache *kv, mlxn_session *s,
                                const int32_t *ids, int n, int pos0, int all_logits, float *out) {
    if (!m || !st || !kv || !s || !ids || !out)
        return mlxn_set_error(MLXN_ERR_INVALID_ARG, "forward_tokens: NULL argument");
    if (n <= 0) return mlxn_set_error(MLXN_ERR_INVALID_ARG, "forward_tokens: no tokens");
    if (pos0 < 0 || (int64_t)pos0 + n > kv->capacity)
        return mlxn_set_error(MLXN_ERR_RANGE, "forward: positions %d..%d do not fit the context of %d tokens",
                              pos0, pos0 + n - 1, kv->capacity);
    for (int i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= m->cfg.vocab)
            return mlxn_set_error(MLXN_ERR_RANGE, "forward: token id %d at index %d outside the vocabulary [0, %lld)",
                                  ids[i], i, (long long)m->cfg.vocab);
    int32_t *pos = malloc((size_t)st->max_t * sizeof(int32_t));
    if (!pos) return mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "forward_tokens");
    mlxn_status r = MLXN_OK;
    for (int done = 0; done < n && r == MLXN_OK;) {
        int chunk = n - done < st->max_t ? n - done : st->max_t;
        for (int i = 0; i < chunk; i++) pos[i] = pos0 + done + i;
        mlxn_buffer *lg = NULL;
        r = mlxn_buffer_upload(st->ids, 0, ids + done, (size_t)chunk * sizeof(int32_t));
        if (r == MLXN_OK) r = mlxn_buffer_upload(st->pos, 0, pos, (size_t)chunk * sizeof(int32_t));
        int last = done + chunk == n;
        if (r == MLXN_OK) r = mlxn_forward_enqueue(m, st, kv, s, chunk, all_logits, &lg);
        if (r == MLXN_OK) r = mlxn_session_finish(s);
        if (r == MLXN_OK) {
            if (all_logits)
                r = mlxn_buffer_download(lg, 0, out + (size_t)done * (size_t)st->vocab,
                                         (size_t)chunk * (size_t)st->vocab * sizeof(float));
            else if (last)
                r = mlxn_buffer_download(lg, 0, out, (size_t)st->vocab * sizeof(float));
        }
        done += chunk;
        if (r == MLXN_OK && kv->n_past < pos0 + done) kv->n_past = pos0 + done;
    }
    free(pos);
    return r;
}
