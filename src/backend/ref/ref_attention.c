/* ref_attention.c — the naive reference for scaled dot-product attention over
 * a KV cache, following mlxn.h exactly: query row t sits at positions[t] (or
 * kv_len - T + t when positions is NULL); the keys present are positions
 * 0..maxpos (linear cache, slot = position) or the last C of them (ring,
 * slot = position % C); a key is masked if causal and kpos > qpos, or if a
 * window is set and qpos - kpos >= window. GQA: query head h reads KV head
 * h / (Hq / Hkv). Scores, softmax and the weighted sum are in double, with a
 * separate pass per stage; a fully masked row yields zeros. */
#include "backend/ref/ref_backend.h"

#include <math.h>
#include <stdlib.h>

MLXN_REF_OP(attention) {
    const mlxn_buffer *q = op->in[0], *kc = op->in[1], *vc = op->in[2], *pb = op->in[3];
    const mlxn_attention_params *p = &op->p.attn;
    int64_t T = q->shape[0], Hq = q->shape[1], D = q->shape[2];
    int64_t Hkv = kc->shape[0], C = kc->shape[1], group = Hq / Hkv;
    mlxn_dtype kt = kc->dtype;
    const float *qp = mlxn_buf_ptr(q);
    const void *kp = mlxn_buf_ptr(kc), *vp = mlxn_buf_ptr(vc);
    const int32_t *pos = pb ? mlxn_buf_ptr(pb) : NULL;
    float *out = mlxn_buf_ptr(op->out[0]);

    int64_t maxpos = -1;
    for (int64_t t = 0; t < T; t++) {
        int64_t qp_t = pos ? pos[t] : p->kv_len - T + t;
        if (qp_t < 0)
            return mlxn_set_error(MLXN_ERR_RANGE, "attention: positions[%lld] = %lld is negative", (long long)t, (long long)qp_t);
        if (qp_t > maxpos) maxpos = qp_t;
    }
    if (!p->ring && maxpos >= C)
        return mlxn_set_error(MLXN_ERR_RANGE, "attention: position %lld is outside the linear cache capacity C = %lld",
                              (long long)maxpos, (long long)C);
    int64_t lo = p->ring && maxpos - C + 1 > 0 ? maxpos - C + 1 : 0; /* oldest key present */
    int64_t nk = maxpos - lo + 1;
    double *score = malloc((size_t)nk * sizeof *score);
    if (!score) return mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "attention: out of host memory (%lld keys)", (long long)nk);

    for (int64_t t = 0; t < T; t++) {
        int64_t qpos = pos ? pos[t] : p->kv_len - T + t;
        for (int64_t h = 0; h < Hq; h++) {
            int64_t kvh = h / group;
            const float *qrow = qp + (t * Hq + h) * D;
            double mx = -INFINITY;
            for (int64_t j = 0; j < nk; j++) {
                int64_t kpos = lo + j;
                int masked = (p->causal && kpos > qpos) || (p->window > 0 && qpos - kpos >= p->window);
                if (masked) { score[j] = -INFINITY; continue; }
                int64_t slot = p->ring ? kpos % C : kpos;
                int64_t kb = (kvh * C + slot) * D;
                double dot = 0;
                for (int64_t d = 0; d < D; d++) dot += (double)qrow[d] * mlxn_load_f(kp, kt, kb + d);
                double sc = dot * p->scale;
                if (p->softcap > 0) sc = p->softcap * tanh(sc / p->softcap);
                score[j] = sc;
                if (sc > mx) mx = sc;
            }
            float *orow = out + (t * Hq + h) * D;
            if (mx == -INFINITY) { /* no key visible */
                for (int64_t d = 0; d < D; d++) orow[d] = 0.0f;
                continue;
            }
            double sum = 0;
            for (int64_t j = 0; j < nk; j++) {
                score[j] = score[j] == -INFINITY ? 0.0 : exp(score[j] - mx);
                sum += score[j];
            }
            for (int64_t d = 0; d < D; d++) {
                double acc = 0;
                for (int64_t j = 0; j < nk; j++) {
                    if (score[j] == 0.0) continue;
                    int64_t slot = p->ring ? (lo + j) % C : lo + j;
                    acc += score[j] * mlxn_load_f(vp, kt, (kvh * C + slot) * D + d);
                }
                orow[d] = (float)(acc / sum);
            }
        }
    }
    free(score);
    return MLXN_OK;
}
