/* ops_attention.c — validation and dispatch for scaled dot-product attention
 * over a KV cache (q [T, Hq, D] f32, caches [Hkv, C, D] f32/f16/bf16, GQA,
 * causal mask, sliding window, logit softcap, linear or ring cache), for
 * kv_append (src [T, Hkv, D] -> cache rows at slot positions[t] or
 * positions[t] % C), and for the two ops that fold a step's neighbours
 * together: rope_kv_append (rope of q and k, then both appends) and
 * rope_kv_attention (that, then attention), each run as its parts where the
 * backend has no kernel for the case. Position values live in device memory,
 * so their range is checked by the backend when the op runs (CPU:
 * MLXN_ERR_RANGE). */
#include "ops/ops_common.h"

#include <math.h>

static mlxn_status attention_check(const char *op, mlxn_session *s, const mlxn_buffer *q, const mlxn_buffer *k_cache,
                                   const mlxn_buffer *v_cache, const mlxn_buffer *positions,
                                   const mlxn_attention_params *p, const mlxn_buffer *out) {
    MLXN_TRY(mlxn_opv_session(op, s));
    MLXN_TRY(mlxn_opv_buf(op, s, "q", q));
    MLXN_TRY(mlxn_opv_buf(op, s, "k_cache", k_cache));
    MLXN_TRY(mlxn_opv_buf(op, s, "v_cache", v_cache));
    MLXN_TRY(mlxn_opv_opt_buf(op, s, "positions", positions));
    MLXN_TRY(mlxn_opv_buf(op, s, "out", out));
    if (!p) return mlxn_set_error(MLXN_ERR_INVALID_ARG, "%s: params is NULL", op);
    MLXN_TRY(mlxn_opv_dtype(op, "q", q, MLXN_F32));
    MLXN_TRY(mlxn_opv_dtype(op, "out", out, MLXN_F32));
    MLXN_TRY(mlxn_opv_float(op, "k_cache", k_cache));
    MLXN_TRY(mlxn_opv_same_dtype(op, "k_cache", k_cache, "v_cache", v_cache));
    if (positions) MLXN_TRY(mlxn_opv_dtype(op, "positions", positions, MLXN_I32));
    MLXN_TRY(mlxn_opv_ndim(op, "q", q, 3));
    MLXN_TRY(mlxn_opv_ndim(op, "k_cache", k_cache, 3));
    MLXN_TRY(mlxn_opv_same_shape(op, "k_cache", k_cache, "v_cache", v_cache));
    int64_t T = q->shape[0], Hq = q->shape[1], D = q->shape[2];
    int64_t Hkv = k_cache->shape[0], C = k_cache->shape[1];
    if (k_cache->shape[2] != D)
        return mlxn_set_error(MLXN_ERR_SHAPE, "%s: k_cache head dim %lld does not match q's head dim %lld", op,
                              (long long)k_cache->shape[2], (long long)D);
    if (Hq % Hkv != 0)
        return mlxn_set_error(MLXN_ERR_SHAPE, "%s: query heads (%lld) must be a multiple of KV heads (%lld)", op,
                              (long long)Hq, (long long)Hkv);
    if (D % 2 != 0 || D > 256)
        return mlxn_set_error(MLXN_ERR_SHAPE, "%s: head dim %lld must be even and <= 256", op, (long long)D);
    MLXN_TRY(mlxn_opv_same_shape(op, "q", q, "out", out));
    if (positions) MLXN_TRY(mlxn_opv_numel(op, "positions", positions, T, "one per query row T of q [T, Hq, D]"));
    if (!isfinite(p->scale) || p->scale == 0.0f)
        return mlxn_set_error(MLXN_ERR_INVALID_ARG, "%s: scale must be finite and non-zero, got %g", op,
                              (double)p->scale);
    if (!(p->softcap >= 0.0f) || !isfinite(p->softcap))
        return mlxn_set_error(MLXN_ERR_INVALID_ARG, "%s: softcap must be finite and >= 0 (0 = none), got %g", op,
                              (double)p->softcap);
    if (p->causal != 0 && p->causal != 1)
        return mlxn_set_error(MLXN_ERR_INVALID_ARG, "%s: causal must be 0 or 1, got %d", op, p->causal);
    if (p->ring != 0 && p->ring != 1)
        return mlxn_set_error(MLXN_ERR_INVALID_ARG, "%s: ring must be 0 or 1, got %d", op, p->ring);
    if (p->window < 0)
        return mlxn_set_error(MLXN_ERR_INVALID_ARG, "%s: window must be >= 0 (0 = none), got %d", op, p->window);
    if (p->kv_bound < 0 || p->kv_bound > C || (p->kv_bound > 0 && p->ring))
        return mlxn_set_error(MLXN_ERR_INVALID_ARG, "%s: kv_bound (%lld) must be 0 or in [1, C = %lld] with a linear "
                              "cache (ring = %d)", op, (long long)p->kv_bound, (long long)C, p->ring);
    if (!positions && p->kv_bound > 0 && p->kv_len > p->kv_bound)
        return mlxn_set_error(MLXN_ERR_RANGE, "%s: kv_len (%lld) exceeds kv_bound (%lld)", op, (long long)p->kv_len,
                              (long long)p->kv_bound);
    if (!positions) {
        if (p->kv_len < T)
            return mlxn_set_error(MLXN_ERR_RANGE, "%s: kv_len (%lld) must be >= the number of query rows T (%lld) "
                                  "when positions is NULL", op, (long long)p->kv_len, (long long)T);
        if (!p->ring && p->kv_len > C)
            return mlxn_set_error(MLXN_ERR_RANGE, "%s: kv_len (%lld) exceeds the linear cache capacity C (%lld)", op,
                                  (long long)p->kv_len, (long long)C);
        if (p->kv_len > INT32_MAX)
            return mlxn_set_error(MLXN_ERR_RANGE, "%s: kv_len (%lld) does not fit an i32 position", op,
                                  (long long)p->kv_len);
    }
    MLXN_TRY(mlxn_opv_alias(op, "out", out, "q", q, 0));
    MLXN_TRY(mlxn_opv_alias(op, "out", out, "k_cache", k_cache, 0));
    MLXN_TRY(mlxn_opv_alias(op, "out", out, "v_cache", v_cache, 0));
    MLXN_TRY(mlxn_opv_alias(op, "out", out, "positions", positions, 0));
    return MLXN_OK;
}

mlxn_status mlxn_attention(mlxn_session *s, const mlxn_buffer *q, const mlxn_buffer *k_cache,
                           const mlxn_buffer *v_cache, const mlxn_buffer *positions, const mlxn_attention_params *p,
                           mlxn_buffer *out) {
    MLXN_TRY(attention_check("attention", s, q, k_cache, v_cache, positions, p, out));
    mlxn_op o = {.kind = MLXN_OP_ATTENTION, .in = {q, k_cache, v_cache, positions}, .out = {out}};
    o.p.attn = *p;
    return mlxn_dispatch(s, &o);
}

mlxn_status mlxn_kv_append_check(const char *op, mlxn_session *s, const mlxn_buffer *src, const mlxn_buffer *positions,
                                 int ring, const mlxn_buffer *cache) {
    MLXN_TRY(mlxn_opv_session(op, s));
    MLXN_TRY(mlxn_opv_buf(op, s, "src", src));
    MLXN_TRY(mlxn_opv_buf(op, s, "positions", positions));
    MLXN_TRY(mlxn_opv_buf(op, s, "cache", cache));
    MLXN_TRY(mlxn_opv_float(op, "src", src));
    MLXN_TRY(mlxn_opv_float(op, "cache", cache));
    MLXN_TRY(mlxn_opv_dtype(op, "positions", positions, MLXN_I32));
    MLXN_TRY(mlxn_opv_ndim(op, "src", src, 3));
    MLXN_TRY(mlxn_opv_ndim(op, "cache", cache, 3));
    int64_t T = src->shape[0], Hkv = src->shape[1], D = src->shape[2];
    if (cache->shape[0] != Hkv || cache->shape[2] != D) {
        char ss[MLXN_SHAPE_STR_CAP], sc[MLXN_SHAPE_STR_CAP];
        return mlxn_set_error(MLXN_ERR_SHAPE, "%s: src shape %s [T, Hkv, D] does not fit cache shape %s [Hkv, C, D]", op,
                              mlxn_shape_str(ss, sizeof ss, src->ndim, src->shape),
                              mlxn_shape_str(sc, sizeof sc, cache->ndim, cache->shape));
    }
    MLXN_TRY(mlxn_opv_numel(op, "positions", positions, T, "one per row T of src [T, Hkv, D]"));
    if (ring != 0 && ring != 1) return mlxn_set_error(MLXN_ERR_INVALID_ARG, "%s: ring must be 0 or 1, got %d", op, ring);
    MLXN_TRY(mlxn_opv_alias(op, "cache", cache, "src", src, 0));
    MLXN_TRY(mlxn_opv_alias(op, "cache", cache, "positions", positions, 0));
    return MLXN_OK;
}

mlxn_status mlxn_kv_append(mlxn_session *s, const mlxn_buffer *src, const mlxn_buffer *positions, int ring,
                           mlxn_buffer *cache) {
    MLXN_TRY(mlxn_kv_append_check("kv_append", s, src, positions, ring, cache));
    mlxn_op o = {.kind = MLXN_OP_KV_APPEND, .in = {src, positions}, .out = {cache}, .i = {ring}};
    return mlxn_dispatch(s, &o);
}

/* rope_kv_append's arguments as that op (or its first part) checks them;
 * *rot = the resolved rot_dims */
static mlxn_status rope_kv_append_check(const char *op, mlxn_session *s, const mlxn_buffer *q, const mlxn_buffer *k,
                                        const mlxn_buffer *v, const mlxn_buffer *positions, const mlxn_rope_params *p,
                                        int ring, const mlxn_buffer *k_cache, const mlxn_buffer *v_cache, int *rot) {
    int rot_q = 0, rot_k = 0;
    /* each part as its own op would see it, then what ties them together */
    MLXN_TRY(mlxn_rope_check(op, s, q, positions, p, q, &rot_q));
    MLXN_TRY(mlxn_rope_check(op, s, k, positions, p, k, &rot_k));
    MLXN_TRY(mlxn_kv_append_check(op, s, k, positions, ring, k_cache));
    MLXN_TRY(mlxn_kv_append_check(op, s, v, positions, ring, v_cache));
    MLXN_TRY(mlxn_opv_same_dtype(op, "q", q, "k", k));
    if (q->shape[2] != k->shape[2])
        return mlxn_set_error(MLXN_ERR_SHAPE, "%s: q head dim %lld differs from k head dim %lld", op,
                              (long long)q->shape[2], (long long)k->shape[2]);
    MLXN_TRY(mlxn_opv_alias(op, "k", k, "q", q, 0));
    MLXN_TRY(mlxn_opv_alias(op, "k_cache", k_cache, "q", q, 0));
    MLXN_TRY(mlxn_opv_alias(op, "v_cache", v_cache, "q", q, 0));
    MLXN_TRY(mlxn_opv_alias(op, "v_cache", v_cache, "k", k, 0));
    MLXN_TRY(mlxn_opv_alias(op, "v_cache", v_cache, "k_cache", k_cache, 0));
    *rot = rot_q;
    return MLXN_OK;
}

mlxn_status mlxn_rope_kv_append(mlxn_session *s, mlxn_buffer *q, mlxn_buffer *k, const mlxn_buffer *v,
                                const mlxn_buffer *positions, const mlxn_rope_params *p, int ring, mlxn_buffer *k_cache,
                                mlxn_buffer *v_cache) {
    int rot = 0;
    MLXN_TRY(rope_kv_append_check("rope_kv_append", s, q, k, v, positions, p, ring, k_cache, v_cache, &rot));
    if (!s->device->ops->op[MLXN_OP_ROPE_KV_APPEND]) { /* no fused kernel: the four ops */
        MLXN_TRY(mlxn_rope(s, q, positions, p, q));
        MLXN_TRY(mlxn_rope(s, k, positions, p, k));
        MLXN_TRY(mlxn_kv_append(s, k, positions, ring, k_cache));
        return mlxn_kv_append(s, v, positions, ring, v_cache);
    }
    mlxn_op o = {.kind = MLXN_OP_ROPE_KV_APPEND, .in = {q, k, v, positions}, .out = {k_cache, v_cache}, .i = {ring}};
    o.p.rope = *p;
    o.p.rope.rot_dims = rot;
    return mlxn_dispatch(s, &o);
}

mlxn_status mlxn_rope_kv_attention(mlxn_session *s, mlxn_buffer *q, mlxn_buffer *k, const mlxn_buffer *v,
                                   const mlxn_buffer *positions, const mlxn_rope_params *rp,
                                   const mlxn_attention_params *ap, mlxn_buffer *k_cache, mlxn_buffer *v_cache,
                                   mlxn_buffer *out) {
    const char *op = "rope_kv_attention";
    int rot = 0;
    MLXN_TRY(mlxn_opv_session(op, s));
    if (!ap) return mlxn_set_error(MLXN_ERR_INVALID_ARG, "%s: attention params is NULL", op);
    MLXN_TRY(rope_kv_append_check(op, s, q, k, v, positions, rp, ap->ring, k_cache, v_cache, &rot));
    MLXN_TRY(attention_check(op, s, q, k_cache, v_cache, positions, ap, out));
    MLXN_TRY(mlxn_opv_alias(op, "out", out, "k", k, 0));
    MLXN_TRY(mlxn_opv_alias(op, "out", out, "v", v, 0));
    mlxn_op o = {.kind = MLXN_OP_ROPE_KV_ATTENTION, .in = {q, k, v, positions}, .out = {out, k_cache, v_cache}};
    o.p.rope = *rp;
    o.p.rope.rot_dims = rot;
    o.p.attn = *ap;
    if (mlxn_op_native(s, &o)) return mlxn_dispatch(s, &o);
    MLXN_TRY(mlxn_rope_kv_append(s, q, k, v, positions, rp, ap->ring, k_cache, v_cache));
    return mlxn_attention(s, q, k_cache, v_cache, positions, ap, out);
}
