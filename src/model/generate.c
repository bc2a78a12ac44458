/* generate.c — the runner (KV cache + forward scratch + session + optional
 * recorded decode graph) and the generation loop (see generate.h). The
 * decode step is recorded once as a graph (CUDA: a CUDA Graph) whose token id
 * and position are read from two device buffers. The graph begins by copying
 * them from a small mapped host buffer (mlxn_buffer_alloc_mapped: the CPU
 * writes the step's id and position there, no DMA copy) and ends by copying
 * its argmax there, so a greedy step is: two stores, one replay, one wait,
 * one load (the two DMA uploads and the download it replaces cost ~20-30 µs
 * per token on an H100, 3% of the 135M's decode step; env MLXN_MAPPED_IO=0
 * brings them back, for A/B). Sampling steps download the logits row. Stop
 * strings are matched on the detokenized text; text that could still become
 * a stop string is held back from the stream. */
#include "model/generate.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/internal.h"
#include "model/kv_cache.h"

struct mlxn_runner {
    const mlxn_model *m;
    mlxn_runner_opts o;
    mlxn_kv_cache *kv;
    mlxn_forward_state *fs;
    mlxn_session *s;
    mlxn_graph *graph;        /* recorded decode step (n = 1) + argmax */
    mlxn_buffer *graph_logits;
    mlxn_buffer *argmax_idx;  /* i32 [1], written by the graph's argmax */
    mlxn_buffer *io;          /* mapped i32 [3]: id, position (in), argmax (out) */
    mlxn_buffer *io_v[3];     /* views of io's three words */
    mlxn_buffer *in_v[2];     /* [1] views of the forward state's ids and positions */
    int upload_io;            /* MLXN_MAPPED_IO=0: upload id/position, download the argmax */
    int use_graph;
    int32_t *tokens;          /* [n_ctx] tokens in the cache */
    int n_tokens;
    float *logits;            /* [vocab] host */
};

double mlxn_time_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

mlxn_runner_opts mlxn_runner_default_opts(void) {
    mlxn_runner_opts o = { 0, 0, -1, -1 };
    return o;
}

mlxn_status mlxn_runner_create(const mlxn_model *m, const mlxn_runner_opts *opts, mlxn_runner **out) {
    if (!m || !out) return mlxn_set_error(MLXN_ERR_INVALID_ARG, "runner_create: NULL argument");
    *out = NULL;
    mlxn_runner_opts o = opts ? *opts : mlxn_runner_default_opts();
    const int is_cuda = strcmp(mlxn_device_kind(m->dev), "cuda") == 0;
    if (o.n_ctx < 0) return mlxn_set_error(MLXN_ERR_INVALID_ARG, "runner: context size %d is negative", o.n_ctx);
    if (o.n_ctx == 0) o.n_ctx = m->cfg.max_ctx > 0 && m->cfg.max_ctx < 4096 ? m->cfg.max_ctx : 4096;
    if (o.n_batch <= 0) o.n_batch = 512;
    if (o.n_batch > o.n_ctx) o.n_batch = o.n_ctx;
    if (o.kv_dtype < 0) o.kv_dtype = is_cuda ? MLXN_F16 : MLXN_F32;
    mlxn_runner *r = calloc(1, sizeof *r);
    if (!r) return mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "runner_create");
    r->m = m;
    r->o = o;
    r->use_graph = o.use_graph < 0 ? is_cuda : o.use_graph;
    r->tokens = malloc((size_t)o.n_ctx * sizeof(int32_t));
    r->logits = malloc((size_t)m->cfg.vocab * sizeof(float));
    mlxn_status st = (r->tokens && r->logits) ? MLXN_OK : mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "runner_create");
    if (st == MLXN_OK)
        st = mlxn_kv_cache_create(m->dev, m->cfg.n_layers, m->cfg.n_kv_heads, m->cfg.head_dim, o.n_ctx,
                                  (mlxn_dtype)o.kv_dtype, &r->kv);
    if (st == MLXN_OK) st = mlxn_forward_state_create(m, o.n_batch, &r->fs);
    if (st == MLXN_OK) st = mlxn_session_begin(m->dev, &r->s);
    if (st != MLXN_OK) {
        mlxn_runner_free(r);
        return st;
    }
    *out = r;
    return MLXN_OK;
}

void mlxn_runner_free(mlxn_runner *r) {
    if (!r) return;
    mlxn_graph_destroy(r->graph);
    mlxn_buffer_release(r->argmax_idx);
    for (int i = 0; i < 3; i++) mlxn_buffer_release(r->io_v[i]);
    for (int i = 0; i < 2; i++) mlxn_buffer_release(r->in_v[i]);
    mlxn_buffer_release(r->io);
    mlxn_session_destroy(r->s);
    mlxn_forward_state_free(r->fs);
    mlxn_kv_cache_free(r->kv);
    free(r->tokens);
    free(r->logits);
    free(r);
}

void mlxn_runner_reset(mlxn_runner *r) {
    if (!r) return;
    r->n_tokens = 0;
    r->kv->n_past = 0;
}

int mlxn_runner_n_ctx(const mlxn_runner *r) { return r ? r->o.n_ctx : 0; }

const int32_t *mlxn_runner_tokens(const mlxn_runner *r, int *n) {
    if (n) *n = r ? r->n_tokens : 0;
    return r ? r->tokens : NULL;
}

size_t mlxn_runner_kv_bytes(const mlxn_runner *r) { return r ? mlxn_kv_cache_nbytes(r->kv) : 0; }

mlxn_status mlxn_runner_eval(mlxn_runner *r, const int32_t *ids, int n, const float **logits) {
    if (!r || !ids || n <= 0) return mlxn_set_error(MLXN_ERR_INVALID_ARG, "runner_eval: no tokens");
    if ((int64_t)r->n_tokens + n > r->o.n_ctx)
        return mlxn_set_error(MLXN_ERR_RANGE,
                              "%d tokens after %d already in the context exceed its size of %d tokens", n,
                              r->n_tokens, r->o.n_ctx);
    r->kv->n_past = r->n_tokens;
    MLXN_TRY(mlxn_forward_tokens(r->m, r->fs, r->kv, r->s, ids, n, r->n_tokens, 0, r->logits));
    memcpy(r->tokens + r->n_tokens, ids, (size_t)n * sizeof(int32_t));
    r->n_tokens += n;
    if (logits) *logits = r->logits;
    return MLXN_OK;
}

/* The mapped step words and the views the graph copies between (made once;
 * on failure nothing is kept, so the next step tries again). */
static mlxn_status make_io(mlxn_runner *r) {
    int64_t three = 3, one = 1;
    mlxn_status st = mlxn_buffer_alloc_mapped(r->m->dev, MLXN_I32, 1, &three, &r->io);
    for (int i = 0; i < 3 && st == MLXN_OK; i++)
        st = mlxn_buffer_view(r->io, (size_t)i * 4, MLXN_I32, 1, &one, &r->io_v[i]);
    if (st == MLXN_OK) st = mlxn_buffer_view(mlxn_forward_state_ids(r->fs), 0, MLXN_I32, 1, &one, &r->in_v[0]);
    if (st == MLXN_OK) st = mlxn_buffer_view(mlxn_forward_state_positions(r->fs), 0, MLXN_I32, 1, &one, &r->in_v[1]);
    if (st == MLXN_OK && !mlxn_buffer_host_ptr(r->io))
        st = mlxn_set_error(MLXN_ERR_INTERNAL, "decode: the mapped step buffer has no host view");
    if (st == MLXN_OK) return MLXN_OK;
    for (int i = 0; i < 3; i++) { mlxn_buffer_release(r->io_v[i]); r->io_v[i] = NULL; }
    for (int i = 0; i < 2; i++) { mlxn_buffer_release(r->in_v[i]); r->in_v[i] = NULL; }
    mlxn_buffer_release(r->io);
    r->io = NULL;
    return st;
}

/* Write id/position to the mapped words, (record once and) replay the decode
 * graph: copy them in, forward, argmax, copy the argmax out. */
static mlxn_status graph_step(mlxn_runner *r, int32_t id) {
    if (r->n_tokens + 1 > r->o.n_ctx)
        return mlxn_set_error(MLXN_ERR_RANGE, "decode: the context of %d tokens is full", r->o.n_ctx);
    if (id < 0 || id >= r->m->cfg.vocab)
        return mlxn_set_error(MLXN_ERR_RANGE, "decode: token id %d outside the vocabulary [0, %lld)", id,
                              (long long)r->m->cfg.vocab);
    if (!r->graph) {
        const char *e = getenv("MLXN_MAPPED_IO");
        r->upload_io = e && e[0] == '0' && e[1] == 0;
    }
    if (r->upload_io) {
        int32_t pos = r->n_tokens;
        MLXN_TRY(mlxn_buffer_upload(mlxn_forward_state_ids(r->fs), 0, &id, sizeof id));
        MLXN_TRY(mlxn_buffer_upload(mlxn_forward_state_positions(r->fs), 0, &pos, sizeof pos));
    } else {
        if (!r->io) MLXN_TRY(make_io(r));
        int32_t *io = mlxn_buffer_host_ptr(r->io);
        io[0] = id;
        io[1] = r->n_tokens;
    }
    if (!r->graph) {
        if (!r->argmax_idx) {
            int64_t one = 1;
            MLXN_TRY(mlxn_buffer_alloc(r->m->dev, MLXN_I32, 1, &one, &r->argmax_idx));
        }
        MLXN_TRY(mlxn_graph_begin_record(r->s));
        mlxn_status st = MLXN_OK;
        /* mapped words: the embedding reads the id and the argmax lands
         * straight in them; the position is copied in (every layer reads it) */
        const char *ed = getenv("MLXN_STEP_DIRECT"); /* 0: copy id and argmax (A/B: 1,829 vs 1,835 tok/s, 135M) */
        const int direct = !r->upload_io && !(ed && ed[0] == '0');
        if (direct) st = mlxn_forward_state_set_step_ids(r->fs, r->io_v[0]);
        else if (!r->upload_io) st = mlxn_copy(r->s, r->io_v[0], r->in_v[0]);
        if (st == MLXN_OK && !r->upload_io) st = mlxn_copy(r->s, r->io_v[1], r->in_v[1]);
        if (st == MLXN_OK) st = mlxn_forward_enqueue(r->m, r->fs, r->kv, r->s, 1, 0, &r->graph_logits);
        if (st == MLXN_OK) st = mlxn_argmax(r->s, r->graph_logits, direct ? r->io_v[2] : r->argmax_idx);
        if (st == MLXN_OK && !r->upload_io && !direct) st = mlxn_copy(r->s, r->argmax_idx, r->io_v[2]);
        mlxn_status st3 = mlxn_forward_state_set_step_ids(r->fs, NULL);
        if (st == MLXN_OK) st = st3;
        mlxn_graph *g = NULL;
        mlxn_status st2 = mlxn_graph_end_record(r->s, &g);
        if (st != MLXN_OK) {
            mlxn_graph_destroy(g);
            return mlxn_error_prefix(st, "recording the decode graph");
        }
        if (st2 != MLXN_OK) return mlxn_error_prefix(st2, "recording the decode graph");
        r->graph = g;
    }
    MLXN_TRY(mlxn_graph_replay(r->s, r->graph));
    MLXN_TRY(mlxn_session_finish(r->s));
    r->tokens[r->n_tokens++] = id;
    r->kv->n_past = r->n_tokens;
    return MLXN_OK;
}

mlxn_status mlxn_runner_step(mlxn_runner *r, int32_t id, const float **logits) {
    if (!r) return mlxn_set_error(MLXN_ERR_INVALID_ARG, "runner_step: NULL runner");
    if (!r->use_graph) return mlxn_runner_eval(r, &id, 1, logits);
    MLXN_TRY(graph_step(r, id));
    MLXN_TRY(mlxn_buffer_download(r->graph_logits, 0, r->logits, (size_t)r->m->cfg.vocab * sizeof(float)));
    if (logits) *logits = r->logits;
    return MLXN_OK;
}

int mlxn_runner_uses_graph(const mlxn_runner *r) { return r && r->use_graph; }

mlxn_status mlxn_runner_step_argmax(mlxn_runner *r, int32_t id, int32_t *next) {
    if (!r || !next) return mlxn_set_error(MLXN_ERR_INVALID_ARG, "runner_step_argmax: NULL argument");
    if (!r->use_graph) {
        const float *lg = NULL;
        MLXN_TRY(mlxn_runner_eval(r, &id, 1, &lg));
        int64_t b = 0;
        for (int64_t i = 1; i < r->m->cfg.vocab; i++)
            if (lg[i] > lg[b]) b = i;
        *next = (int32_t)b;
        return MLXN_OK;
    }
    MLXN_TRY(graph_step(r, id));
    if (r->upload_io) return mlxn_buffer_download(r->argmax_idx, 0, next, sizeof *next);
    *next = ((const int32_t *)mlxn_buffer_host_ptr(r->io))[2];
    return MLXN_OK;
}

size_t mlxn_stop_holdback(const char *text, size_t len, const char *const *stop, int n_stop) {
    size_t best = 0;
    for (int i = 0; i < n_stop; i++) {
        if (!stop[i]) continue;
        size_t sl = strlen(stop[i]);
        for (size_t k = sl > 0 ? sl - 1 : 0; k > best; k--) {
            if (k <= len && memcmp(text + len - k, stop[i], k) == 0) {
                best = k;
                break;
            }
        }
    }
    return best;
}

/* growable text buffer */
typedef struct tbuf {
    char *p;
    size_t n, cap;
} tbuf;

static int tbuf_add(tbuf *b, const char *s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 256;
        while (cap < b->n + n + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) return 0;
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
    return 1;
}

mlxn_status mlxn_generate(mlxn_runner *r, const int32_t *prompt, int n_prompt, const mlxn_gen_params *p,
                          mlxn_gen_stats *stats, int32_t **out_ids, int *n_out) {
    if (out_ids) *out_ids = NULL;
    if (n_out) *n_out = 0;
    if (!r || !prompt || !p) return mlxn_set_error(MLXN_ERR_INVALID_ARG, "generate: NULL argument");
    if (n_prompt <= 0) return mlxn_set_error(MLXN_ERR_INVALID_ARG, "generate: the prompt is empty (0 tokens)");
    if (p->max_tokens < 0) return mlxn_set_error(MLXN_ERR_INVALID_ARG, "generate: max_tokens %d", p->max_tokens);
    if (n_prompt > r->o.n_ctx)
        return mlxn_set_error(MLXN_ERR_RANGE, "the prompt has %d tokens but the context holds only %d", n_prompt,
                              r->o.n_ctx);
    mlxn_gen_stats local;
    mlxn_gen_stats *gs = stats ? stats : &local;
    memset(gs, 0, sizeof *gs);
    gs->n_prompt = n_prompt;
    gs->stop_reason = "length";

    mlxn_sampler *smp = NULL;
    MLXN_TRY(mlxn_sampler_create(&p->sampling, r->m->cfg.vocab, &smp));
    mlxn_detok *dt = NULL;
    mlxn_status st = MLXN_OK;
    if (p->tok) st = mlxn_detok_create(p->tok, &dt);
    int32_t *gen = malloc(((size_t)p->max_tokens + 1) * sizeof(int32_t));
    tbuf text = { 0 };
    size_t emitted = 0;
    if (st == MLXN_OK && !gen) st = mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "generate");
    int n_gen = 0;

    /* reuse the longest common prefix of the cached tokens (keep >= 1 token to evaluate) */
    int keep = 0;
    if (st == MLXN_OK) {
        while (keep < r->n_tokens && keep < n_prompt - 1 && r->tokens[keep] == prompt[keep]) keep++;
        r->n_tokens = keep;
        r->kv->n_past = keep;
        for (int i = 0; i < n_prompt; i++) mlxn_sampler_accept(smp, prompt[i]);
        gs->n_prompt_eval = n_prompt - keep;
        double t0 = mlxn_time_now();
        const float *lg = NULL;
        st = mlxn_runner_eval(r, prompt + keep, n_prompt - keep, &lg);
        gs->prefill_s = mlxn_time_now() - t0;
        double t1 = mlxn_time_now();
        /* greedy with a recorded graph: the device picks the argmax, only 4 bytes come back */
        const int dev_argmax = r->use_graph && mlxn_sampler_is_greedy(smp);
        int32_t next_dev = -1;
        while (st == MLXN_OK && n_gen < p->max_tokens) {
            double ts = mlxn_time_now();
            int32_t id;
            if (dev_argmax && next_dev >= 0) id = next_dev;
            else st = mlxn_sampler_sample(smp, lg, &id);
            gs->sample_s += mlxn_time_now() - ts;
            if (st != MLXN_OK) break;
            mlxn_sampler_accept(smp, id);
            gen[n_gen++] = id;
            if (p->tok && !p->ignore_eos && mlxn_tokenizer_is_eog(p->tok, id)) {
                gs->stop_reason = "eos";
                break;
            }
            const char *piece = NULL;
            size_t plen = 0;
            if (dt) {
                st = mlxn_detok_push(dt, id, &piece, &plen);
                if (st != MLXN_OK) break;
                if (plen && !tbuf_add(&text, piece, plen)) {
                    st = mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "generate: text buffer");
                    break;
                }
            }
            /* stop strings: search the new region of the text */
            int stopped = 0;
            if (p->n_stop > 0 && text.n > emitted) {
                size_t cut = text.n;
                for (int i = 0; i < p->n_stop; i++) {
                    if (!p->stop[i] || !p->stop[i][0]) continue;
                    size_t sl = strlen(p->stop[i]);
                    size_t from = emitted >= sl ? emitted - sl + 1 : 0;
                    for (size_t k = from; k + sl <= text.n; k++)
                        if (memcmp(text.p + k, p->stop[i], sl) == 0) {
                            if (k < cut) cut = k;
                            break;
                        }
                }
                if (cut < text.n) {
                    text.n = cut < emitted ? emitted : cut;
                    stopped = 1;
                }
            }
            size_t hold = stopped ? 0 : mlxn_stop_holdback(text.p ? text.p : "", text.n, p->stop, p->n_stop);
            size_t upto = text.n - hold > emitted ? text.n - hold : emitted;
            if (p->on_text) {
                int stop_cb = p->on_text(p->user, id, text.p ? text.p + emitted : "", upto - emitted);
                if (stop_cb && !stopped) {
                    emitted = upto;
                    gs->stop_reason = "callback";
                    break;
                }
            }
            emitted = upto;
            if (stopped) {
                gs->stop_reason = "stop string";
                break;
            }
            if (n_gen >= p->max_tokens) break;
            if (r->n_tokens >= r->o.n_ctx) {
                gs->stop_reason = "context full";
                break;
            }
            if (dev_argmax) st = mlxn_runner_step_argmax(r, id, &next_dev);
            else st = mlxn_runner_step(r, id, &lg);
            gs->n_decode++;
        }
        gs->decode_s = mlxn_time_now() - t1;
    }
    /* flush held text (end of generation without a stop string) */
    if (st == MLXN_OK && dt && strcmp(gs->stop_reason, "stop string") != 0) {
        const char *piece = NULL;
        size_t plen = 0;
        if (mlxn_detok_flush(dt, &piece, &plen) == MLXN_OK && plen) tbuf_add(&text, piece, plen);
        if (p->on_text && text.n > emitted) p->on_text(p->user, -1, text.p + emitted, text.n - emitted);
    }
    gs->n_gen = n_gen;
    mlxn_detok_free(dt);
    mlxn_sampler_free(smp);
    free(text.p);
    if (st == MLXN_OK && out_ids) {
        *out_ids = gen;
        gen = NULL;
    }
    if (st == MLXN_OK && n_out) *n_out = n_gen;
    free(gen);
    return st;
}
