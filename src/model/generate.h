/* generate.h — text generation over a loaded model: a runner owns the KV
 * cache, the forward-pass scratch, one session and (on CUDA) recorded
 * decode-step graphs (greedy steps run one step ahead: generate.c);
 * mlxn_generate prefills a prompt in batches (reusing the
 * longest prefix already in the cache, which is what keeps a chat
 * conversation cheap), then decodes token by token with the sampler,
 * streaming text through a callback, stopping on end-of-generation tokens,
 * stop strings, a token budget or a full context, and reports timings. */
#ifndef MLXN_MODEL_GENERATE_H
#define MLXN_MODEL_GENERATE_H

#include <stddef.h>
#include <stdint.h>
#include "mlxn.h"
#include "model/model.h"
#include "model/sampler.h"
#include "model/tokenizer.h"

typedef struct mlxn_runner_opts {
    int n_ctx;          /* KV capacity in tokens; 0 = min(model context, 4096) */
    int n_batch;        /* prefill chunk (rows per forward); 0 = 512 */
    int kv_dtype;       /* -1 = auto (f16 on CUDA, f32 elsewhere), else an mlxn_dtype */
    int use_graph;      /* -1 = auto (on for CUDA), 0 = off, 1 = on (also on CPU: an op list) */
} mlxn_runner_opts;

mlxn_runner_opts mlxn_runner_default_opts(void);

typedef struct mlxn_runner mlxn_runner;

mlxn_status mlxn_runner_create(const mlxn_model *m, const mlxn_runner_opts *opts, mlxn_runner **out);
void mlxn_runner_free(mlxn_runner *r);
/* Forget the cached tokens (the next generate prefills everything). */
void mlxn_runner_reset(mlxn_runner *r);
int mlxn_runner_n_ctx(const mlxn_runner *r);
/* Tokens whose K/V are in the cache, in order. */
const int32_t *mlxn_runner_tokens(const mlxn_runner *r, int *n);
size_t mlxn_runner_kv_bytes(const mlxn_runner *r);

/* Append n tokens to the cache (batched prefill) and leave the last token's
 * logits in *logits (host, [vocab], owned by the runner, valid until the
 * next call). MLXN_ERR_RANGE if the cache would overflow. */
mlxn_status mlxn_runner_eval(mlxn_runner *r, const int32_t *ids, int n, const float **logits);
/* One decode step for token `id` at the next position (uses the recorded
 * graph when enabled). */
mlxn_status mlxn_runner_step(mlxn_runner *r, int32_t id, const float **logits);

/* One decode step that only returns the argmax of the new logits (greedy):
 * with a recorded graph the argmax runs on the device and 4 bytes come
 * back; without one it is computed on the host. The host logits are not
 * updated. */
mlxn_status mlxn_runner_step_argmax(mlxn_runner *r, int32_t id, int32_t *next);
int mlxn_runner_uses_graph(const mlxn_runner *r);
/* Waits for the speculative step a greedy step_argmax may have left on the
 * device (decode ahead; generate.c) and drops it. Every other runner call
 * does this itself; a caller timing step_argmax loops calls it to count
 * that step's time. */
mlxn_status mlxn_runner_sync(mlxn_runner *r);

/* Streaming callback: text is the newly completed UTF-8 (may be empty when a
 * token only completes part of a character or is held back as a possible
 * stop-string prefix); id the sampled token, or -1 for the final flush of
 * held-back text after generation ended. Return nonzero to stop. */
typedef int (*mlxn_gen_text_fn)(void *user, int32_t id, const char *text, size_t len);

typedef struct mlxn_gen_params {
    int max_tokens;                 /* tokens to generate at most (> 0) */
    mlxn_sampler_params sampling;
    const char *const *stop;        /* stop strings (not emitted); may be NULL */
    int n_stop;
    int ignore_eos;                 /* keep going past end-of-generation tokens */
    const mlxn_tokenizer *tok;      /* for EOG and text; NULL: ids only, no EOG */
    mlxn_gen_text_fn on_text;       /* may be NULL */
    void *user;
} mlxn_gen_params;

typedef struct mlxn_gen_stats {
    int n_prompt;          /* prompt tokens */
    int n_prompt_eval;     /* of which were evaluated (the rest reused from the cache) */
    int n_gen;             /* tokens sampled (incl. an EOG token that stopped generation) */
    int n_decode;          /* decode steps run */
    double prefill_s;      /* prompt evaluation until the first logits */
    double decode_s;       /* decode steps */
    double sample_s;       /* host sampling time (included in decode_s) */
    const char *stop_reason; /* "eos", "stop string", "length", "context full", "callback" */
} mlxn_gen_stats;

/* Generate a continuation of prompt[n_prompt]. *out_ids (may be NULL)
 * receives the sampled ids, malloc'd (caller frees), *n_out their count.
 * Errors: MLXN_ERR_RANGE when the prompt does not fit the context (names
 * both sizes); MLXN_ERR_INVALID_ARG for bad parameters. */
mlxn_status mlxn_generate(mlxn_runner *r, const int32_t *prompt, int n_prompt, const mlxn_gen_params *p,
                          mlxn_gen_stats *stats, int32_t **out_ids, int *n_out);

/* Monotonic clock in seconds. */
double mlxn_time_now(void);

/* Helper shared by generate and the CLI: the length of the longest suffix of
 * text[0..len) that is a proper prefix of one of the stop strings (text that
 * must be held back while streaming). */
size_t mlxn_stop_holdback(const char *text, size_t len, const char *const *stop, int n_stop);

#endif /* MLXN_MODEL_GENERATE_H */
