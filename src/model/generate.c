/* generate.c — the runner (KV cache + forward scratch + session + recorded
 * decode graphs) and the generation loop (see generate.h). On CUDA a decode
 * step is a recorded graph that reads its token id and position from a small
 * mapped host buffer (mlxn_buffer_alloc_mapped: the CPU writes them there, no
 * DMA copy; the two DMA uploads and the download they replaced cost ~20-30 µs
 * per token on an H100) and writes its argmax there. There are three such
 * graphs, one per position mod 3: graph j reads id word W_j and position
 * word P_j and writes its argmax into W_{j+1}, the next graph's id. So a
 * greedy step can enqueue the following step before the host has read its
 * own result ("decode ahead"): the host writes P_{j+1}, replays graph j+1
 * (which takes its id from the device) and then waits for W_{j+1}. The host
 * round trip between steps (8.7 µs per token, 1.7% of the 135M's step) then
 * overlaps the GPU's work; a caller that passes another id than the
 * predicted one makes the runner wait for the speculative step and redo the
 * position. Env MLXN_DECODE_AHEAD=0 turns it off, MLXN_MAPPED_IO=0 brings
 * the DMA copies (one graph) back, both for A/B. The graphs are recorded
 * per bucket of positions (see NBUCKET), each sizing its attention to its
 * bucket. Sampling steps download the logits row. Stop strings are matched
 * on the detokenized text; text that could still become a stop string is
 * held back from the stream. */
#include "model/generate.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/internal.h"
#include "model/kv_cache.h"

#define RING 3 /* decode graphs in the ring (see the top of this file) */
/* Decode graphs are recorded per bucket of positions: bucket b serves
 * positions below bound(b) = bucket0 << b (the last: the whole cache), and
 * its attention covers only those keys (mlxn_attention_params.kv_bound). A
 * graph sized for the whole cache runs idle attention blocks over slots not
 * yet written: H100, SmolLM2-135M, 4,096 vs 512 slots decoded ~6-10% slower. */
#define NBUCKET 12
#define BUCKET0 256 /* env MLXN_DECODE_BUCKET: the first bound (0: one bucket, the whole cache) */

struct mlxn_runner {
    const mlxn_model *m;
    mlxn_runner_opts o;
    mlxn_kv_cache *kv;
    mlxn_forward_state *fs;
    mlxn_session *s;
    mlxn_graph *graph[NBUCKET];     /* MLXN_MAPPED_IO=0: the decode step (n = 1) + argmax, per bucket */
    mlxn_graph *ring[NBUCKET][RING]; /* mapped words: graph j for positions = j (mod RING), per bucket */
    int bucket0;                     /* the first bucket's bound */
    mlxn_buffer *graph_logits;
    mlxn_buffer *argmax_idx;  /* i32 [1], written by the MLXN_MAPPED_IO=0 graph's argmax */
    mlxn_buffer *io;          /* mapped i32 [2 * RING]: W_j (token id) and P_j (position) of graph j */
    mlxn_buffer *io_v[2 * RING]; /* views of io's words */
    mlxn_buffer *pos_v;       /* [1] view of the forward state's position (set up at the first step) */
    int upload_io;            /* MLXN_MAPPED_IO=0: upload id/position, download the argmax */
    int ahead;                /* decode ahead (greedy steps enqueue the next step) */
    int ahead_pos;            /* position of the enqueued speculative step, or -1 */
    int32_t ahead_id;         /* the token id it reads (the argmax the host returned last) */
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
    const char *eb = getenv("MLXN_DECODE_BUCKET");
    r->bucket0 = eb && *eb ? atoi(eb) : BUCKET0;
    if (r->bucket0 <= 0 || r->bucket0 > o.n_ctx) r->bucket0 = o.n_ctx;
    r->ahead_pos = -1;
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

/* Waits for a speculative decode step still on the device and forgets it
 * (its K/V at the next position get overwritten by whatever comes next). */
mlxn_status mlxn_runner_sync(mlxn_runner *r) {
    if (!r || r->ahead_pos < 0) return MLXN_OK;
    r->ahead_pos = -1;
    return mlxn_session_finish(r->s);
}

void mlxn_runner_free(mlxn_runner *r) {
    if (!r) return;
    (void)mlxn_runner_sync(r);
    for (int b = 0; b < NBUCKET; b++) {
        mlxn_graph_destroy(r->graph[b]);
        for (int j = 0; j < RING; j++) mlxn_graph_destroy(r->ring[b][j]);
    }
    mlxn_buffer_release(r->argmax_idx);
    for (int i = 0; i < 2 * RING; i++) mlxn_buffer_release(r->io_v[i]);
    mlxn_buffer_release(r->pos_v);
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
    (void)mlxn_runner_sync(r); /* a failure surfaces at the session's next use */
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
    MLXN_TRY(mlxn_runner_sync(r));
    r->kv->n_past = r->n_tokens;
    MLXN_TRY(mlxn_forward_tokens(r->m, r->fs, r->kv, r->s, ids, n, r->n_tokens, 0, r->logits));
    memcpy(r->tokens + r->n_tokens, ids, (size_t)n * sizeof(int32_t));
    r->n_tokens += n;
    if (logits) *logits = r->logits;
    return MLXN_OK;
}

/* The mapped step words and the views the graphs read (made once; on
 * failure nothing is kept, so the next step tries again). */
static mlxn_status make_io(mlxn_runner *r) {
    int64_t nw = 2 * RING, one = 1;
    mlxn_status st = mlxn_buffer_alloc_mapped(r->m->dev, MLXN_I32, 1, &nw, &r->io);
    for (int i = 0; i < 2 * RING && st == MLXN_OK; i++)
        st = mlxn_buffer_view(r->io, (size_t)i * 4, MLXN_I32, 1, &one, &r->io_v[i]);
    if (st == MLXN_OK && !mlxn_buffer_host_ptr(r->io))
        st = mlxn_set_error(MLXN_ERR_INTERNAL, "decode: the mapped step buffer has no host view");
    if (st == MLXN_OK) return MLXN_OK;
    for (int i = 0; i < 2 * RING; i++) { mlxn_buffer_release(r->io_v[i]); r->io_v[i] = NULL; }
    mlxn_buffer_release(r->io);
    r->io = NULL;
    return st;
}

/* Bucket b's bound: the positions its decode graphs serve are below it. */
static int64_t bucket_bound(const mlxn_runner *r, int b) {
    int64_t v = (int64_t)r->bucket0 << b;
    return b == NBUCKET - 1 || v > r->o.n_ctx ? r->o.n_ctx : v;
}

/* The bucket whose graphs serve position pos. */
static int bucket_of(const mlxn_runner *r, int pos) {
    int b = 0;
    while (b < NBUCKET - 1 && bucket_bound(r, b) < (int64_t)pos + 1) b++;
    return b;
}

/* Records one decode graph: the forward of one token, then the argmax. Ring
 * graph j (j >= 0) reads the id from W_j (the embedding reads the mapped
 * word), copies P_j into the forward state's position (every layer reads
 * it) and writes the argmax to W_{j+1}; j < 0: the MLXN_MAPPED_IO=0 graph
 * (id and position uploaded into the forward state, argmax to argmax_idx). */
static mlxn_status record_step(mlxn_runner *r, int j, int bucket, mlxn_graph **out) {
    MLXN_TRY(mlxn_graph_begin_record(r->s));
    mlxn_status st = MLXN_OK;
    mlxn_forward_state_set_kv_bound(r->fs, bucket_bound(r, bucket));
    if (j >= 0) {
        st = mlxn_forward_state_set_step_ids(r->fs, r->io_v[2 * j]);
        if (st == MLXN_OK) st = mlxn_copy(r->s, r->io_v[2 * j + 1], r->pos_v);
    }
    if (st == MLXN_OK) st = mlxn_forward_enqueue(r->m, r->fs, r->kv, r->s, 1, 0, &r->graph_logits);
    if (st == MLXN_OK)
        st = mlxn_argmax(r->s, r->graph_logits, j >= 0 ? r->io_v[2 * ((j + 1) % RING)] : r->argmax_idx);
    mlxn_forward_state_set_kv_bound(r->fs, 0);
    mlxn_status st3 = mlxn_forward_state_set_step_ids(r->fs, NULL);
    if (st == MLXN_OK) st = st3;
    mlxn_graph *g = NULL;
    mlxn_status st2 = mlxn_graph_end_record(r->s, &g);
    if (st != MLXN_OK) {
        mlxn_graph_destroy(g);
        return mlxn_error_prefix(st, "recording the decode graph");
    }
    if (st2 != MLXN_OK) return mlxn_error_prefix(st2, "recording the decode graph");
    *out = g;
    return MLXN_OK;
}

/* First-use setup of the decode graphs (which path; the position view). */
static mlxn_status graph_setup(mlxn_runner *r) {
    if (r->pos_v) return MLXN_OK;
    const char *e = getenv("MLXN_MAPPED_IO");
    r->upload_io = e && e[0] == '0' && e[1] == 0;
    const char *ea = getenv("MLXN_DECODE_AHEAD");
    r->ahead = !r->upload_io && !(ea && ea[0] == '0' && ea[1] == 0);
    int64_t one = 1;
    return mlxn_buffer_view(mlxn_forward_state_positions(r->fs), 0, MLXN_I32, 1, &one, &r->pos_v);
}

static mlxn_status check_step(const mlxn_runner *r, int32_t id) {
    if (r->n_tokens + 1 > r->o.n_ctx)
        return mlxn_set_error(MLXN_ERR_RANGE, "decode: the context of %d tokens is full", r->o.n_ctx);
    if (id < 0 || id >= r->m->cfg.vocab)
        return mlxn_set_error(MLXN_ERR_RANGE, "decode: token id %d outside the vocabulary [0, %lld)", id,
                              (long long)r->m->cfg.vocab);
    return MLXN_OK;
}

/* The step's token is in the cache now. */
static void step_done(mlxn_runner *r, int32_t id) {
    r->tokens[r->n_tokens++] = id;
    r->kv->n_past = r->n_tokens;
}

/* MLXN_MAPPED_IO=0: upload id and position, replay, wait. */
static mlxn_status upload_step(mlxn_runner *r, int32_t id) {
    int32_t pos = r->n_tokens;
    MLXN_TRY(mlxn_buffer_upload(mlxn_forward_state_ids(r->fs), 0, &id, sizeof id));
    MLXN_TRY(mlxn_buffer_upload(mlxn_forward_state_positions(r->fs), 0, &pos, sizeof pos));
    const int b = bucket_of(r, pos);
    if (!r->graph[b]) {
        if (!r->argmax_idx) {
            int64_t one = 1;
            MLXN_TRY(mlxn_buffer_alloc(r->m->dev, MLXN_I32, 1, &one, &r->argmax_idx));
        }
        MLXN_TRY(record_step(r, -1, b, &r->graph[b]));
    }
    MLXN_TRY(mlxn_graph_replay(r->s, r->graph[b]));
    MLXN_TRY(mlxn_session_finish(r->s));
    step_done(r, id);
    return MLXN_OK;
}

/* Waits until the mapped word w (which the host set to -1) holds the argmax
 * of the step enqueued before it. Spins on the word; after a second without
 * it (a failed kernel never writes it), waits for the stream instead, which
 * reports the failure. */
static mlxn_status wait_word(mlxn_runner *r, volatile int32_t *w, int32_t *out) {
    const double t0 = mlxn_time_now();
    for (unsigned spin = 0; *w < 0; spin++)
        if ((spin & 1023) == 1023 && mlxn_time_now() - t0 > 1.0) {
            r->ahead_pos = -1;
            MLXN_TRY(mlxn_session_finish(r->s));
            if (*w < 0) return mlxn_set_error(MLXN_ERR_INTERNAL, "decode: the step wrote no argmax");
            break;
        }
    *out = *w;
    return MLXN_OK;
}

/* Bucket b's ring of graphs, recorded when first needed with nothing
 * running (a queued speculative step is waited for, and kept). */
static mlxn_status ensure_ring(mlxn_runner *r, int b) {
    if (r->ring[b][RING - 1]) return MLXN_OK; /* recorded in order: all there */
    MLXN_TRY(mlxn_session_finish(r->s));
    for (int g = 0; g < RING; g++)
        if (!r->ring[b][g]) MLXN_TRY(record_step(r, g, b, &r->ring[b][g]));
    return MLXN_OK;
}

/* One decode step through the graph ring at position n = n_tokens (graph
 * j = n mod RING of n's bucket). Unless the step was already enqueued
 * speculatively for this id, writes W_j = id, P_j = n, W_{j+1} = -1 and
 * replays graph j. With `ahead` (greedy) and room in the cache, then
 * enqueues step n + 1 (P_{j+1}, W_{j+2} = -1, graph j + 1 of n + 1's bucket,
 * which reads W_{j+1} on the device). Every word the host writes belongs to
 * a graph that has finished: W_{j+2} is the input of step n - 1, whose
 * output the host has already read. Returns step n's argmax in *next (if
 * next is NULL, waits for the stream; nothing enqueued). */
static mlxn_status ring_step(mlxn_runner *r, int32_t id, int ahead, int32_t *next) {
    const int n = r->n_tokens, j = n % RING, j1 = (n + 1) % RING, j2 = (n + 2) % RING;
    if (!r->io) MLXN_TRY(make_io(r));
    volatile int32_t *io = mlxn_buffer_host_ptr(r->io);
    const int go_ahead = ahead && next && n + 2 <= r->o.n_ctx;
    const int b = bucket_of(r, n), b1 = go_ahead ? bucket_of(r, n + 1) : b;
    MLXN_TRY(ensure_ring(r, b));
    if (b1 != b) MLXN_TRY(ensure_ring(r, b1));
    const int queued = r->ahead_pos == n && r->ahead_id == id;
    if (!queued) {
        MLXN_TRY(mlxn_runner_sync(r)); /* a speculative step for another id (or position) */
        io[2 * j] = id;
        io[2 * j + 1] = n;
        io[2 * j1] = -1;
        MLXN_TRY(mlxn_graph_replay(r->s, r->ring[b][j]));
    }
    r->ahead_pos = -1;
    if (go_ahead) {
        io[2 * j1 + 1] = n + 1;
        io[2 * j2] = -1;
        MLXN_TRY(mlxn_graph_replay(r->s, r->ring[b1][j1]));
        r->ahead_pos = n + 1;
        MLXN_TRY(wait_word(r, &io[2 * j1], next));
        r->ahead_id = *next;
    } else {
        MLXN_TRY(mlxn_session_finish(r->s));
        if (next) *next = io[2 * j1];
    }
    step_done(r, id);
    return MLXN_OK;
}

mlxn_status mlxn_runner_step(mlxn_runner *r, int32_t id, const float **logits) {
    if (!r) return mlxn_set_error(MLXN_ERR_INVALID_ARG, "runner_step: NULL runner");
    if (!r->use_graph) return mlxn_runner_eval(r, &id, 1, logits);
    MLXN_TRY(check_step(r, id));
    MLXN_TRY(graph_setup(r));
    if (r->upload_io) MLXN_TRY(upload_step(r, id));
    else MLXN_TRY(ring_step(r, id, 0, NULL));
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
    MLXN_TRY(check_step(r, id));
    MLXN_TRY(graph_setup(r));
    if (!r->upload_io) return ring_step(r, id, r->ahead, next);
    MLXN_TRY(upload_step(r, id));
    return mlxn_buffer_download(r->argmax_idx, 0, next, sizeof *next);
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
    if (st == MLXN_OK) st = mlxn_runner_sync(r);
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
        /* a speculative step past the last token still counts (it ran) */
        mlxn_status sst = mlxn_runner_sync(r);
        if (st == MLXN_OK) st = sst;
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
