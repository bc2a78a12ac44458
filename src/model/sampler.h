/* sampler.h — choose the next token from a row of logits on the host.
 * Chain (in this order): repetition penalty over the last N tokens (a
 * positive logit is divided by the penalty, a negative one multiplied, as
 * llama.cpp and HF do) -> greedy argmax if temperature <= 0 -> top-k ->
 * temperature -> softmax -> min-p (drop tokens whose probability is below
 * min_p times the best one's) -> top-p (smallest set whose mass reaches p)
 * -> draw from the renormalised distribution with a seeded xoshiro RNG.
 * The same seed, logits and history give the same token on every machine
 * (no floating-point reductions whose order depends on threads). */
#ifndef MLXN_MODEL_SAMPLER_H
#define MLXN_MODEL_SAMPLER_H

#include <stddef.h>
#include <stdint.h>
#include "mlxn.h"

typedef struct mlxn_sampler_params {
    float temperature;    /* <= 0: greedy */
    int top_k;            /* <= 0: off */
    float top_p;          /* >= 1: off */
    float min_p;          /* <= 0: off */
    float repeat_penalty; /* 1: off */
    int repeat_last_n;    /* how many recent tokens the penalty looks at (0: off, -1: all) */
    uint64_t seed;
} mlxn_sampler_params;

/* Defaults: temperature 0 (greedy), top_k 40, top_p 0.95, min_p 0.05,
 * repeat_penalty 1, repeat_last_n 64, seed 42. */
mlxn_sampler_params mlxn_sampler_default_params(void);

typedef struct mlxn_sampler mlxn_sampler;

/* vocab: logits row length. Errors: bad parameter values (named). */
mlxn_status mlxn_sampler_create(const mlxn_sampler_params *p, int64_t vocab, mlxn_sampler **out);
void mlxn_sampler_free(mlxn_sampler *s);
/* Restart the RNG from the seed and forget the history. */
void mlxn_sampler_reset(mlxn_sampler *s);
/* Record a token in the history (prompt tokens and generated ones). */
void mlxn_sampler_accept(mlxn_sampler *s, int32_t id);
/* Pick a token from logits [vocab] (not modified). Does not accept it. */
mlxn_status mlxn_sampler_sample(mlxn_sampler *s, const float *logits, int32_t *id);
/* 1 when the sampler is plain greedy (no penalty): argmax may run on the device. */
int mlxn_sampler_is_greedy(const mlxn_sampler *s);

#endif
