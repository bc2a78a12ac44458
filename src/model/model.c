/* model.c — loading a decoder-only model (see model.h): the architecture
 * table, config normalisation from GGUF metadata or config.json into one
 * mlxn_model_config, the per-source tensor names, weight loading with shape
 * checks, tied embeddings, Llama-3 RoPE scaling (config.json "rope_scaling",
 * or a GGUF "rope_freqs.weight" table that is recognised as the Llama-3
 * formula), and the tokenizer built from the same source. */
#include "model/model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "io/json_util.h"
#include "model/tokenizer.h"

/* ---------------------------------------------------------------- architecture table */

static const mlxn_arch_info ARCHS[] = {
    { MLXN_ARCH_LLAMA, "llama", 0, 0, MLXN_ROPE_ADJACENT },
    { MLXN_ARCH_QWEN2, "qwen2", 1, 0, MLXN_ROPE_HALF_SPLIT },
    { MLXN_ARCH_QWEN3, "qwen3", 0, 1, MLXN_ROPE_HALF_SPLIT },
};

/* names as files spell them -> table entry */
static const struct {
    const char *alias;
    int idx;
} ARCH_ALIASES[] = {
    { "llama", 0 },   { "smollm", 0 },  { "smollm2", 0 },  { "mistral", 0 }, { "LlamaForCausalLM", 0 },
    { "qwen2", 1 },   { "Qwen2ForCausalLM", 1 },
    { "qwen3", 2 },   { "Qwen3ForCausalLM", 2 },
};

const mlxn_arch_info *mlxn_arch_lookup(const char *name) {
    if (!name) return NULL;
    for (size_t i = 0; i < sizeof ARCH_ALIASES / sizeof ARCH_ALIASES[0]; i++)
        if (strcmp(name, ARCH_ALIASES[i].alias) == 0) return &ARCHS[ARCH_ALIASES[i].idx];
    return NULL;
}

const char *mlxn_arch_supported_names(void) { return "llama (smollm, mistral), qwen2, qwen3"; }

static const char *rope_mode_name(mlxn_rope_mode m) { return m == MLXN_ROPE_ADJACENT ? "adjacent" : "half-split"; }

/* ---------------------------------------------------------------- config */

mlxn_status mlxn_model_config_validate(const mlxn_model_config *c) {
    if (c->n_layers <= 0 || c->d_model <= 0 || c->n_heads <= 0 || c->n_kv_heads <= 0 || c->head_dim <= 0 ||
        c->d_ff <= 0 || c->vocab <= 0)
        return mlxn_set_error(MLXN_ERR_FORMAT,
                              "model config: sizes must be positive (layers %d, hidden %d, heads %d, kv heads %d, "
                              "head dim %d, ff %d, vocab %lld)",
                              c->n_layers, c->d_model, c->n_heads, c->n_kv_heads, c->head_dim, c->d_ff,
                              (long long)c->vocab);
    if (c->n_heads % c->n_kv_heads != 0)
        return mlxn_set_error(MLXN_ERR_FORMAT, "model config: %d query heads not a multiple of %d kv heads",
                              c->n_heads, c->n_kv_heads);
    if (c->head_dim % 2 != 0 || c->head_dim > 256)
        return mlxn_set_error(MLXN_ERR_UNSUPPORTED, "model config: head dim %d (must be even and <= 256)",
                              c->head_dim);
    if (c->rope.rot_dims < 0 || c->rope.rot_dims > c->head_dim || c->rope.rot_dims % 2 != 0)
        return mlxn_set_error(MLXN_ERR_FORMAT, "model config: rope dims %d (head dim %d)", c->rope.rot_dims,
                              c->head_dim);
    if (!(c->norm_eps > 0.0f) || !(c->rope.theta > 0.0f))
        return mlxn_set_error(MLXN_ERR_FORMAT, "model config: norm eps %g and rope theta %g must be positive",
                              (double)c->norm_eps, (double)c->rope.theta);
    return MLXN_OK;
}

/* GGUF metadata getters with "<arch>." prefix; missing required key -> error naming it */
static mlxn_status gg_u32(const mlxn_gguf *g, const char *arch, const char *key, int required, uint32_t def,
                          int *out) {
    char full[128];
    snprintf(full, sizeof full, "%s.%s", arch, key);
    uint32_t v;
    mlxn_status st = mlxn_gguf_get_u32(g, full, &v);
    if (st == MLXN_ERR_NOT_FOUND && !required) {
        mlxn_clear_error();
        *out = (int)def;
        return MLXN_OK;
    }
    if (st != MLXN_OK) return st;
    if (v > INT32_MAX) return mlxn_set_error(MLXN_ERR_RANGE, "gguf: %s = %u is too large", full, v);
    *out = (int)v;
    return MLXN_OK;
}

static float gg_f32(const mlxn_gguf *g, const char *arch, const char *key, float def) {
    char full[128];
    snprintf(full, sizeof full, "%s.%s", arch, key);
    float v;
    if (mlxn_gguf_get_f32(g, full, &v) != MLXN_OK) {
        mlxn_clear_error();
        return def;
    }
    return v;
}

mlxn_status mlxn_model_config_from_gguf(const mlxn_gguf *g, mlxn_model_config *c) {
    if (!g || !c) return mlxn_set_error(MLXN_ERR_INVALID_ARG, "model_config_from_gguf: NULL argument");
    memset(c, 0, sizeof *c);
    c->source = MLXN_SRC_GGUF;
    const char *arch = NULL;
    mlxn_status st = mlxn_gguf_get_str(g, "general.architecture", &arch, NULL);
    if (st != MLXN_OK) return mlxn_error_prefix(st, "gguf '%s'", mlxn_gguf_path(g));
    snprintf(c->arch_name, sizeof c->arch_name, "%s", arch);
    c->arch = mlxn_arch_lookup(arch);
    if (!c->arch)
        return mlxn_set_error(MLXN_ERR_UNSUPPORTED, "gguf '%s': architecture '%s' is not supported (supported: %s)",
                              mlxn_gguf_path(g), arch, mlxn_arch_supported_names());
    int ctx = 0, rot = 0;
    if ((st = gg_u32(g, arch, "block_count", 1, 0, &c->n_layers)) != MLXN_OK ||
        (st = gg_u32(g, arch, "embedding_length", 1, 0, &c->d_model)) != MLXN_OK ||
        (st = gg_u32(g, arch, "feed_forward_length", 1, 0, &c->d_ff)) != MLXN_OK ||
        (st = gg_u32(g, arch, "attention.head_count", 1, 0, &c->n_heads)) != MLXN_OK)
        return mlxn_error_prefix(st, "gguf '%s'", mlxn_gguf_path(g));
    if ((st = gg_u32(g, arch, "attention.head_count_kv", 0, (uint32_t)c->n_heads, &c->n_kv_heads)) != MLXN_OK ||
        (st = gg_u32(g, arch, "attention.key_length", 0,
                     c->n_heads > 0 ? (uint32_t)(c->d_model / c->n_heads) : 0, &c->head_dim)) != MLXN_OK ||
        (st = gg_u32(g, arch, "context_length", 0, 2048, &ctx)) != MLXN_OK ||
        (st = gg_u32(g, arch, "rope.dimension_count", 0, 0, &rot)) != MLXN_OK)
        return mlxn_error_prefix(st, "gguf '%s'", mlxn_gguf_path(g));
    c->max_ctx = ctx;
    c->norm_eps = gg_f32(g, arch, "attention.layer_norm_rms_epsilon", 1e-5f);
    c->rope.mode = c->arch->gguf_rope;
    c->rope.rot_dims = rot == c->head_dim ? 0 : rot;
    c->rope.theta = gg_f32(g, arch, "rope.freq_base", 10000.0f);
    c->rope.scaling = MLXN_ROPE_SCALING_NONE;
    char key[128];
    snprintf(key, sizeof key, "%s.rope.scaling.type", arch);
    const char *stype = NULL;
    if (mlxn_gguf_get_str(g, key, &stype, NULL) == MLXN_OK && stype && strcmp(stype, "none") != 0) {
        if (strcmp(stype, "linear") == 0) {
            c->rope.scaling = MLXN_ROPE_SCALING_LINEAR;
            c->rope.factor = gg_f32(g, arch, "rope.scaling.factor", 1.0f);
        } else {
            return mlxn_set_error(MLXN_ERR_UNSUPPORTED, "gguf '%s': rope scaling type '%s' is not supported",
                                  mlxn_gguf_path(g), stype);
        }
    }
    mlxn_clear_error();
    /* vocabulary: <arch>.vocab_size, else the token list, else the embedding rows */
    int vocab = 0;
    gg_u32(g, arch, "vocab_size", 0, 0, &vocab);
    c->vocab = vocab;
    if (c->vocab <= 0) {
        mlxn_gguf_kv_type et;
        uint64_t cnt = 0;
        const void *data;
        if (mlxn_gguf_get_arr(g, "tokenizer.ggml.tokens", &et, &cnt, &data) == MLXN_OK) c->vocab = (int64_t)cnt;
        mlxn_clear_error();
    }
    int64_t ti = mlxn_gguf_find_tensor(g, "token_embd.weight");
    if (ti >= 0) {
        mlxn_gguf_tensor_info info;
        if (mlxn_gguf_tensor(g, ti, &info) == MLXN_OK && info.n_dims == 2) c->vocab = info.shape[0];
    }
    c->tied_embeddings = mlxn_gguf_find_tensor(g, "output.weight") < 0;
    return mlxn_model_config_validate(c);
}

static int js_int(const json_t *o, const char *k, int def) {
    int64_t v;
    return mlxn_json_get_int(o, k, &v) && v >= INT32_MIN && v <= INT32_MAX ? (int)v : def;
}

static double js_num(const json_t *o, const char *k, double def) {
    json_t *v = json_object_get(o, k);
    return json_is_number(v) ? json_number_value(v) : def;
}

mlxn_status mlxn_model_config_from_json(const json_t *j, mlxn_model_config *c) {
    if (!j || !c) return mlxn_set_error(MLXN_ERR_INVALID_ARG, "model_config_from_json: NULL argument");
    if (!json_is_object(j)) return mlxn_set_error(MLXN_ERR_FORMAT, "config.json: root is not an object");
    memset(c, 0, sizeof *c);
    c->source = MLXN_SRC_MLX_DIR;
    const char *mt = mlxn_json_get_str(j, "model_type");
    if (!mt) {
        json_t *a = json_object_get(j, "architectures");
        if (json_is_array(a) && json_is_string(json_array_get(a, 0))) mt = json_string_value(json_array_get(a, 0));
    }
    if (!mt) return mlxn_set_error(MLXN_ERR_FORMAT, "config.json: no \"model_type\" (or \"architectures\")");
    snprintf(c->arch_name, sizeof c->arch_name, "%s", mt);
    c->arch = mlxn_arch_lookup(mt);
    if (!c->arch)
        return mlxn_set_error(MLXN_ERR_UNSUPPORTED, "config.json: architecture '%s' is not supported (supported: %s)",
                              mt, mlxn_arch_supported_names());
    static const char *const required[] = { "hidden_size", "num_hidden_layers", "num_attention_heads",
                                            "intermediate_size", "vocab_size" };
    for (size_t i = 0; i < sizeof required / sizeof required[0]; i++)
        if (js_int(j, required[i], -1) < 0)
            return mlxn_set_error(MLXN_ERR_FORMAT, "config.json: missing or invalid integer \"%s\"", required[i]);
    c->d_model = js_int(j, "hidden_size", 0);
    c->n_layers = js_int(j, "num_hidden_layers", 0);
    c->n_heads = js_int(j, "num_attention_heads", 0);
    c->n_kv_heads = js_int(j, "num_key_value_heads", c->n_heads);
    c->head_dim = js_int(j, "head_dim", c->n_heads > 0 ? c->d_model / c->n_heads : 0);
    c->d_ff = js_int(j, "intermediate_size", 0);
    c->vocab = js_int(j, "vocab_size", 0);
    c->max_ctx = js_int(j, "max_position_embeddings", 2048);
    c->norm_eps = (float)js_num(j, "rms_norm_eps", 1e-6);
    c->rope.mode = MLXN_ROPE_HALF_SPLIT; /* HF row order in safetensors */
    c->rope.theta = (float)js_num(j, "rope_theta", 10000.0);
    c->rope.rot_dims = 0;
    double prf = js_num(j, "partial_rotary_factor", 1.0);
    if (prf < 1.0) c->rope.rot_dims = ((int)(prf * c->head_dim)) & ~1;
    json_t *rs = json_object_get(j, "rope_scaling");
    if (json_is_object(rs)) {
        const char *t = mlxn_json_get_str(rs, "rope_type");
        if (!t) t = mlxn_json_get_str(rs, "type");
        if (!t || strcmp(t, "default") == 0) {
            /* nothing */
        } else if (strcmp(t, "llama3") == 0) {
            c->rope.scaling = MLXN_ROPE_SCALING_LLAMA3;
            c->rope.factor = (float)js_num(rs, "factor", 8.0);
            c->rope.low_freq_factor = (float)js_num(rs, "low_freq_factor", 1.0);
            c->rope.high_freq_factor = (float)js_num(rs, "high_freq_factor", 4.0);
            c->rope.original_max_pos = js_int(rs, "original_max_position_embeddings", 8192);
        } else if (strcmp(t, "linear") == 0) {
            c->rope.scaling = MLXN_ROPE_SCALING_LINEAR;
            c->rope.factor = (float)js_num(rs, "factor", 1.0);
        } else {
            return mlxn_set_error(MLXN_ERR_UNSUPPORTED, "config.json: rope_scaling type '%s' is not supported "
                                  "(supported: llama3, linear)", t);
        }
    }
    json_t *tie = json_object_get(j, "tie_word_embeddings");
    c->tied_embeddings = json_is_boolean(tie) ? json_is_true(tie) : 0; /* corrected by the files at load */
    return mlxn_model_config_validate(c);
}

/* ---------------------------------------------------------------- tensor names */

enum {
    T_ATTN_NORM, T_Q, T_K, T_V, T_O, T_Q_NORM, T_K_NORM, T_FFN_NORM, T_GATE, T_UP, T_DOWN, T_BQ, T_BK, T_BV,
    T_COUNT
};

static const char *const GGUF_LAYER[T_COUNT] = {
    "attn_norm.weight", "attn_q.weight",   "attn_k.weight",      "attn_v.weight", "attn_output.weight",
    "attn_q_norm.weight", "attn_k_norm.weight", "ffn_norm.weight", "ffn_gate.weight", "ffn_up.weight",
    "ffn_down.weight", "attn_q.bias", "attn_k.bias", "attn_v.bias",
};
static const char *const MLX_LAYER[T_COUNT] = {
    "input_layernorm.weight", "self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight",
    "self_attn.o_proj.weight", "self_attn.q_norm.weight", "self_attn.k_norm.weight",
    "post_attention_layernorm.weight", "mlp.gate_proj.weight", "mlp.up_proj.weight", "mlp.down_proj.weight",
    "self_attn.q_proj.bias", "self_attn.k_proj.bias", "self_attn.v_proj.bias",
};

static void layer_name(const mlxn_model *m, int l, int t, char *buf, size_t cap) {
    if (m->cfg.source == MLXN_SRC_GGUF) snprintf(buf, cap, "blk.%d.%s", l, GGUF_LAYER[t]);
    else snprintf(buf, cap, "model.layers.%d.%s", l, MLX_LAYER[t]);
}

static const char *global_name(const mlxn_model *m, int which) {
    static const char *const g[3] = { "token_embd.weight", "output_norm.weight", "output.weight" };
    static const char *const x[3] = { "model.embed_tokens.weight", "model.norm.weight", "lm_head.weight" };
    return m->cfg.source == MLXN_SRC_GGUF ? g[which] : x[which];
}

static int has_tensor(const mlxn_model *m, const char *name) {
    mlxn_model_tensor_info info;
    int ok = mlxn_model_files_find(m->files, name, &info) == MLXN_OK;
    if (!ok) mlxn_clear_error();
    return ok;
}

static mlxn_status load_matrix(mlxn_model *m, const char *name, int64_t rows, int64_t cols, mlxn_weight **out) {
    mlxn_status st = mlxn_model_files_load_weight(m->files, m->dev, name, out);
    if (st != MLXN_OK) return st;
    const mlxn_weight_desc *d = mlxn_weight_get_desc(*out);
    if (d->rows != rows || d->cols != cols)
        return mlxn_set_error(MLXN_ERR_FORMAT, "model '%s': tensor %s is [%lld, %lld], expected [%lld, %lld]",
                              m->path, name, (long long)d->rows, (long long)d->cols, (long long)rows,
                              (long long)cols);
    m->weight_bytes += mlxn_weight_nbytes(*out);
    return MLXN_OK;
}

static mlxn_status load_vector(mlxn_model *m, const char *name, int64_t n, mlxn_buffer **out) {
    mlxn_status st = mlxn_model_files_load_buffer(m->files, m->dev, name, MLXN_F32, out);
    if (st != MLXN_OK) return st;
    if (mlxn_buffer_numel(*out) != n)
        return mlxn_set_error(MLXN_ERR_FORMAT, "model '%s': tensor %s has %lld elements, expected %lld", m->path,
                              name, (long long)mlxn_buffer_numel(*out), (long long)n);
    /* view it as 1-D [n] whatever its stored shape ([n] or [1, n]) */
    if (mlxn_buffer_ndim(*out) != 1) {
        mlxn_buffer *v;
        int64_t shape[1] = { n };
        MLXN_TRY(mlxn_buffer_view(*out, 0, MLXN_F32, 1, shape, &v));
        mlxn_buffer_release(*out);
        *out = v;
    }
    m->weight_bytes += mlxn_buffer_nbytes(*out);
    return MLXN_OK;
}

/* GGUF Llama 3: rope_freqs.weight [rot/2] holds per-frequency divisors. Accept
 * it when it equals the Llama-3 formula for some factor (its maximum), the
 * usual low/high factors 1/4 and an original context taken from the metadata,
 * implied by the table itself, or 8192; anything else is unsupported rather
 * than silently wrong. */
static mlxn_status gguf_rope_freqs(mlxn_model *m) {
    const char *name = "rope_freqs.weight";
    mlxn_model_tensor_info info;
    if (mlxn_model_files_find(m->files, name, &info) != MLXN_OK) {
        mlxn_clear_error();
        return MLXN_OK;
    }
    int rot = m->cfg.rope.rot_dims ? m->cfg.rope.rot_dims : m->cfg.head_dim;
    int64_t n = 1;
    for (int i = 0; i < info.ndim; i++) n *= info.shape[i];
    if (n != rot / 2)
        return mlxn_set_error(MLXN_ERR_FORMAT, "model '%s': %s has %lld values, expected %d", m->path, name,
                              (long long)n, rot / 2);
    float *f = malloc((size_t)n * sizeof(float));
    if (!f) return mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "rope_freqs");
    mlxn_status st = mlxn_model_files_read_f32(m->files, name, f, (size_t)n);
    if (st != MLXN_OK) {
        free(f);
        return st;
    }
    float factor = 1.0f;
    for (int64_t i = 0; i < n; i++) factor = f[i] > factor ? f[i] : factor;
    const double lo = 1.0, hi = 4.0, pi = 3.14159265358979323846;
    /* candidates for the original context: the metadata key, the value implied
     * by the first entry strictly inside the smooth band, and 8192 */
    int cand[3] = { 0, 0, 8192 };
    const mlxn_gguf *g = mlxn_model_files_gguf(m->files);
    char key[128];
    snprintf(key, sizeof key, "%s.rope.scaling.original_context_length", m->cfg.arch_name);
    uint32_t u;
    if (mlxn_gguf_get_u32(g, key, &u) == MLXN_OK && u > 0 && u < (1u << 30)) cand[0] = (int)u;
    mlxn_clear_error();
    for (int64_t i = 0; i < n && factor > 1.0f; i++) {
        if (f[i] > 1.0f + 1e-4f && f[i] < factor * (1.0f - 1e-4f)) {
            /* 1/f = (1-s)/factor + s  ->  s;  s = (orig/wl - lo)/(hi - lo)  ->  orig */
            double inv = pow((double)m->cfg.rope.theta, -2.0 * (double)i / rot), wl = 2 * pi / inv;
            double sm = (1.0 / f[i] - 1.0 / factor) / (1.0 - 1.0 / factor);
            cand[1] = (int)floor(wl * (sm * (hi - lo) + lo) + 0.5);
            break;
        }
    }
    int orig = 0;
    for (int c = 0; c < 3 && !orig; c++) {
        if (cand[c] <= 0) continue;
        int ok = 1;
        for (int64_t i = 0; i < n && ok; i++) {
            double inv = pow((double)m->cfg.rope.theta, -2.0 * (double)i / rot), wl = 2 * pi / inv, want;
            if (wl < cand[c] / hi) want = 1.0;
            else if (wl > cand[c] / lo) want = factor;
            else {
                double smooth = (cand[c] / wl - lo) / (hi - lo);
                want = 1.0 / ((1.0 - smooth) / factor + smooth);
            }
            ok = fabs(want - f[i]) <= 1e-3 * want;
        }
        if (ok) orig = cand[c];
    }
    free(f);
    if (factor == 1.0f) return MLXN_OK; /* all ones: no scaling */
    if (!orig)
        return mlxn_set_error(MLXN_ERR_UNSUPPORTED,
                              "model '%s': %s is not the Llama-3 frequency scaling (factor %g, low 1, high 4, "
                              "any original context); other tables are not supported",
                              m->path, name, (double)factor);
    m->cfg.rope.scaling = MLXN_ROPE_SCALING_LLAMA3;
    m->cfg.rope.factor = factor;
    m->cfg.rope.low_freq_factor = (float)lo;
    m->cfg.rope.high_freq_factor = (float)hi;
    m->cfg.rope.original_max_pos = orig;
    return MLXN_OK;
}

/* fuse: leave q/k/v and gate/up to fuse_layers (loaded once, fused). */
static mlxn_status load_weights(mlxn_model *m, int fuse) {
    const mlxn_model_config *c = &m->cfg;
    const int64_t d = c->d_model, qd = (int64_t)c->n_heads * c->head_dim, kvd = (int64_t)c->n_kv_heads * c->head_dim;
    MLXN_TRY(load_matrix(m, global_name(m, 0), c->vocab, d, &m->tok_embd));
    MLXN_TRY(load_vector(m, global_name(m, 1), d, &m->out_norm));
    if (has_tensor(m, global_name(m, 2))) {
        MLXN_TRY(load_matrix(m, global_name(m, 2), c->vocab, d, &m->lm_head));
        m->cfg.tied_embeddings = 0;
    } else {
        m->lm_head = m->tok_embd; /* tied */
        m->cfg.tied_embeddings = 1;
    }
    m->layers = calloc((size_t)c->n_layers, sizeof(mlxn_layer_weights));
    if (!m->layers) return mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "model: layer table");
    char name[160];
    for (int l = 0; l < c->n_layers; l++) {
        mlxn_layer_weights *L = &m->layers[l];
#define NAME(t) (layer_name(m, l, (t), name, sizeof name), name)
        MLXN_TRY(load_vector(m, NAME(T_ATTN_NORM), d, &L->attn_norm));
        MLXN_TRY(load_vector(m, NAME(T_FFN_NORM), d, &L->ffn_norm));
        if (!fuse) {
            MLXN_TRY(load_matrix(m, NAME(T_Q), qd, d, &L->wq));
            MLXN_TRY(load_matrix(m, NAME(T_K), kvd, d, &L->wk));
            MLXN_TRY(load_matrix(m, NAME(T_V), kvd, d, &L->wv));
            MLXN_TRY(load_matrix(m, NAME(T_GATE), c->d_ff, d, &L->w_gate));
            MLXN_TRY(load_matrix(m, NAME(T_UP), c->d_ff, d, &L->w_up));
        }
        MLXN_TRY(load_matrix(m, NAME(T_O), d, qd, &L->wo));
        MLXN_TRY(load_matrix(m, NAME(T_DOWN), d, c->d_ff, &L->w_down));
        if (c->arch->qk_norm) {
            MLXN_TRY(load_vector(m, NAME(T_Q_NORM), c->head_dim, &L->q_norm));
            MLXN_TRY(load_vector(m, NAME(T_K_NORM), c->head_dim, &L->k_norm));
        }
        if (c->arch->qkv_bias) {
            MLXN_TRY(load_vector(m, NAME(T_BQ), qd, &L->q_bias));
            MLXN_TRY(load_vector(m, NAME(T_BK), kvd, &L->k_bias));
            MLXN_TRY(load_vector(m, NAME(T_BV), kvd, &L->v_bias));
        }
#undef NAME
    }
    return MLXN_OK;
}


/* ---------------------------------------------------------------- decode fusion */

/* Row bytes of the data / scales parts of a weight desc. */
static int64_t part_row_bytes(const mlxn_weight_desc *d, int scales) {
    if (scales) return d->format == MLXN_WEIGHT_MLX_AFFINE ? d->cols / d->group_size *
                                                               (int64_t)mlxn_dtype_size(mlxn_buffer_dtype(d->scales)) : 0;
    return mlxn_weight_row_bytes(d);
}

static int same_layout(const mlxn_weight_desc *a, const mlxn_weight_desc *b) {
    if (a->format != b->format || a->cols != b->cols) return 0;
    switch (a->format) {
    case MLXN_WEIGHT_DENSE: return mlxn_buffer_dtype(a->data) == mlxn_buffer_dtype(b->data);
    case MLXN_WEIGHT_MLX_AFFINE:
        return a->bits == b->bits && a->group_size == b->group_size &&
               mlxn_buffer_dtype(a->scales) == mlxn_buffer_dtype(b->scales);
    case MLXN_WEIGHT_GGUF: return a->gguf_type == b->gguf_type;
    }
    return 0;
}

/* A view of rows [r0, r0+rows) of a fused part buffer, typed for a weight desc. */
static mlxn_status row_view(mlxn_buffer *fused, int64_t r0, int64_t rows, int64_t row_bytes, mlxn_dtype t,
                            mlxn_buffer **out) {
    int64_t shape[2] = { rows, row_bytes / (int64_t)mlxn_dtype_size(t) };
    return mlxn_buffer_view(fused, (size_t)(r0 * row_bytes), t, 2, shape, out);
}

/* Load the n matrices `names` (expected [rows[i], cols]) on the host device
 * (zero-copy views of the file), check they share a layout, concatenate their
 * rows into one weight on the model's device (*fused) and make parts[i]
 * views into it. When the layouts differ there is no fusion: *fused = NULL
 * and parts[i] are loaded onto the device one by one. */
static mlxn_status fuse_rows(mlxn_model *m, mlxn_device *host, const char *const *names, const int64_t *rows,
                             int64_t cols, int n, const char *fname, mlxn_weight **fused, mlxn_weight **parts) {
    mlxn_weight *hw[3] = { 0 };
    mlxn_buffer *fb[3] = { 0 }; /* fused data, scales, biases */
    mlxn_status st = MLXN_OK;
    *fused = NULL;
    for (int i = 0; i < n && st == MLXN_OK; i++) {
        st = mlxn_model_files_load_weight(m->files, host, names[i], &hw[i]);
        if (st != MLXN_OK) break;
        const mlxn_weight_desc *di = mlxn_weight_get_desc(hw[i]);
        if (di->rows != rows[i] || di->cols != cols)
            st = mlxn_set_error(MLXN_ERR_FORMAT, "model '%s': tensor %s is [%lld, %lld], expected [%lld, %lld]",
                                m->path, names[i], (long long)di->rows, (long long)di->cols, (long long)rows[i],
                                (long long)cols);
    }
    int ok = st == MLXN_OK;
    for (int i = 1; i < n && ok; i++) ok = same_layout(mlxn_weight_get_desc(hw[0]), mlxn_weight_get_desc(hw[i]));
    if (st == MLXN_OK && !ok) /* no fusion: the parts go to the device as they are */
        for (int i = 0; i < n && st == MLXN_OK; i++) st = load_matrix(m, names[i], rows[i], cols, &parts[i]);
    if (ok) {
        const mlxn_weight_desc *d0 = mlxn_weight_get_desc(hw[0]);
        int64_t R = 0;
        for (int i = 0; i < n; i++) R += mlxn_weight_get_desc(hw[i])->rows;
        const int nparts = d0->format == MLXN_WEIGHT_MLX_AFFINE ? 3 : 1;
        for (int p = 0; p < nparts && st == MLXN_OK; p++) {
            const int64_t rb = part_row_bytes(d0, p > 0);
            const mlxn_dtype t = p == 0 ? (d0->format == MLXN_WEIGHT_DENSE ? mlxn_buffer_dtype(d0->data) : MLXN_U8)
                                        : mlxn_buffer_dtype(d0->scales);
            int64_t shape[2] = { R, rb / (int64_t)mlxn_dtype_size(t) };
            st = mlxn_buffer_alloc(m->dev, t, 2, shape, &fb[p]);
            int64_t r0 = 0;
            for (int i = 0; i < n && st == MLXN_OK; i++) {
                const mlxn_weight_desc *di = mlxn_weight_get_desc(hw[i]);
                const mlxn_buffer *src = p == 0 ? di->data : p == 1 ? di->scales : di->biases;
                const void *hp = mlxn_buffer_host_ptr(src);
                if (!hp) st = mlxn_set_error(MLXN_ERR_INTERNAL, "fuse %s: host weight not host-visible", fname);
                else st = mlxn_buffer_upload(fb[p], (size_t)(r0 * rb), hp, (size_t)(di->rows * rb));
                r0 += di->rows;
            }
        }
        if (st == MLXN_OK) {
            mlxn_weight_desc fd = *d0;
            fd.rows = R;
            fd.data = fb[0];
            fd.scales = fb[1];
            fd.biases = fb[2];
            fd.name = fname;
            st = mlxn_weight_create(&fd, fused);
        }
        /* the parts become views of the fused storage */
        int64_t r0 = 0;
        for (int i = 0; i < n && st == MLXN_OK; i++) {
            const mlxn_weight_desc *di = mlxn_weight_get_desc(hw[i]);
            mlxn_weight_desc pd = *di;
            mlxn_buffer *v[3] = { 0 };
            const mlxn_dtype t0 = d0->format == MLXN_WEIGHT_DENSE ? mlxn_buffer_dtype(d0->data) : MLXN_U8;
            st = row_view(fb[0], r0, di->rows, part_row_bytes(d0, 0), t0, &v[0]);
            if (st == MLXN_OK && nparts == 3) {
                st = row_view(fb[1], r0, di->rows, part_row_bytes(d0, 1), mlxn_buffer_dtype(d0->scales), &v[1]);
                if (st == MLXN_OK)
                    st = row_view(fb[2], r0, di->rows, part_row_bytes(d0, 1), mlxn_buffer_dtype(d0->scales), &v[2]);
            }
            pd.data = v[0];
            pd.scales = v[1];
            pd.biases = v[2];
            pd.name = names[i];
            mlxn_weight *pw = NULL;
            if (st == MLXN_OK) st = mlxn_weight_create(&pd, &pw);
            for (int k = 0; k < 3; k++) mlxn_buffer_release(v[k]);
            if (st == MLXN_OK) {
                if (parts[i]) m->weight_bytes -= mlxn_weight_nbytes(parts[i]);
                mlxn_weight_destroy(parts[i]);
                parts[i] = pw;
            }
            r0 += di->rows;
        }
        if (st == MLXN_OK) m->weight_bytes += mlxn_weight_nbytes(*fused);
        else {
            mlxn_weight_destroy(*fused);
            *fused = NULL;
        }
    }
    for (int i = 0; i < 3; i++) {
        mlxn_weight_destroy(hw[i]);
        mlxn_buffer_release(fb[i]);
    }
    return st;
}

static mlxn_status fuse_layers(mlxn_model *m) {
    mlxn_device *host = NULL;
    mlxn_device_opts o = { 1, NULL };
    MLXN_TRY(mlxn_device_open("cpu", &o, &host));
    const mlxn_model_config *c = &m->cfg;
    mlxn_status st = MLXN_OK;
    char n0[160], n1[160], n2[160], fname[160];
    for (int l = 0; l < c->n_layers && st == MLXN_OK; l++) {
        mlxn_layer_weights *L = &m->layers[l];
        layer_name(m, l, T_Q, n0, sizeof n0);
        layer_name(m, l, T_K, n1, sizeof n1);
        layer_name(m, l, T_V, n2, sizeof n2);
        const char *qkv[3] = { n0, n1, n2 };
        const int64_t qd = (int64_t)c->n_heads * c->head_dim, kvd = (int64_t)c->n_kv_heads * c->head_dim;
        const int64_t qkv_rows[3] = { qd, kvd, kvd }, gu_rows[2] = { c->d_ff, c->d_ff };
        mlxn_weight *parts[3] = { L->wq, L->wk, L->wv };
        snprintf(fname, sizeof fname, "layer %d q|k|v (fused)", l);
        st = fuse_rows(m, host, qkv, qkv_rows, c->d_model, 3, fname, &L->wqkv, parts);
        L->wq = parts[0];
        L->wk = parts[1];
        L->wv = parts[2];
        if (st == MLXN_OK && L->wqkv && L->q_bias) {
            int64_t shape[1] = { qd + 2 * kvd };
            float *tmp = malloc((size_t)(qd + 2 * kvd) * sizeof(float));
            if (!tmp) st = mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "fuse qkv bias");
            if (st == MLXN_OK) st = mlxn_buffer_download(L->q_bias, 0, tmp, (size_t)qd * 4);
            if (st == MLXN_OK) st = mlxn_buffer_download(L->k_bias, 0, tmp + qd, (size_t)kvd * 4);
            if (st == MLXN_OK) st = mlxn_buffer_download(L->v_bias, 0, tmp + qd + kvd, (size_t)kvd * 4);
            if (st == MLXN_OK) st = mlxn_buffer_alloc(m->dev, MLXN_F32, 1, shape, &L->qkv_bias);
            if (st == MLXN_OK) st = mlxn_buffer_upload(L->qkv_bias, 0, tmp, (size_t)(qd + 2 * kvd) * 4);
            free(tmp);
        }
        if (st != MLXN_OK) break;
        layer_name(m, l, T_GATE, n0, sizeof n0);
        layer_name(m, l, T_UP, n1, sizeof n1);
        const char *gu[2] = { n0, n1 };
        mlxn_weight *gparts[2] = { L->w_gate, L->w_up };
        snprintf(fname, sizeof fname, "layer %d gate|up (fused)", l);
        st = fuse_rows(m, host, gu, gu_rows, c->d_model, 2, fname, &L->wgu, gparts);
        L->w_gate = gparts[0];
        L->w_up = gparts[1];
    }
    mlxn_device_close(host);
    return st;
}

mlxn_status mlxn_model_load(const char *path, mlxn_device *dev, const mlxn_model_load_opts *opts, mlxn_model **out) {
    if (!path || !dev || !out) return mlxn_set_error(MLXN_ERR_INVALID_ARG, "model_load: NULL argument");
    *out = NULL;
    mlxn_model *m = calloc(1, sizeof *m);
    if (!m) return mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "model_load: out of memory");
    snprintf(m->path, sizeof m->path, "%s", path);
    m->dev = dev;
    mlxn_status st = mlxn_model_files_open(path, &m->files);
    if (st == MLXN_OK) {
        if (mlxn_model_files_source(m->files) == MLXN_SRC_GGUF)
            st = mlxn_model_config_from_gguf(mlxn_model_files_gguf(m->files), &m->cfg);
        else
            st = mlxn_model_config_from_json(mlxn_model_files_config(m->files), &m->cfg);
        if (st != MLXN_OK && mlxn_model_files_source(m->files) != MLXN_SRC_GGUF)
            st = mlxn_error_prefix(st, "model '%s'", path);
    }
    if (st == MLXN_OK && m->cfg.source == MLXN_SRC_GGUF) st = gguf_rope_freqs(m);
    int fuse = opts ? opts->fuse : -1;
    if (fuse < 0) fuse = strcmp(mlxn_device_kind(dev), "ref") != 0; /* the oracle stays plain */
    if (st == MLXN_OK) st = load_weights(m, fuse);
    if (st == MLXN_OK && fuse) st = fuse_layers(m);
    if (st != MLXN_OK) {
        mlxn_model_free(m);
        return st;
    }
    m->n_params = mlxn_model_files_n_params(m->files);
    *out = m;
    return MLXN_OK;
}

void mlxn_model_free(mlxn_model *m) {
    if (!m) return;
    if (m->layers) {
        for (int l = 0; l < m->cfg.n_layers; l++) {
            mlxn_layer_weights *L = &m->layers[l];
            mlxn_buffer_release(L->attn_norm);
            mlxn_buffer_release(L->ffn_norm);
            mlxn_buffer_release(L->q_norm);
            mlxn_buffer_release(L->k_norm);
            mlxn_buffer_release(L->q_bias);
            mlxn_buffer_release(L->k_bias);
            mlxn_buffer_release(L->v_bias);
            mlxn_weight_destroy(L->wq);
            mlxn_weight_destroy(L->wk);
            mlxn_weight_destroy(L->wv);
            mlxn_weight_destroy(L->wo);
            mlxn_weight_destroy(L->w_gate);
            mlxn_weight_destroy(L->w_up);
            mlxn_weight_destroy(L->w_down);
            mlxn_weight_destroy(L->wqkv);
            mlxn_weight_destroy(L->wgu);
            mlxn_buffer_release(L->qkv_bias);
        }
        free(m->layers);
    }
    if (m->lm_head != m->tok_embd) mlxn_weight_destroy(m->lm_head);
    mlxn_weight_destroy(m->tok_embd);
    mlxn_buffer_release(m->out_norm);
    mlxn_model_files_close(m->files);
    free(m);
}

void mlxn_model_describe(const mlxn_model *m, char *buf, size_t cap) {
    const mlxn_model_config *c = &m->cfg;
    const char *sc = c->rope.scaling == MLXN_ROPE_SCALING_LLAMA3 ? ", llama3 rope scaling"
                     : c->rope.scaling == MLXN_ROPE_SCALING_LINEAR ? ", linear rope scaling" : "";
    snprintf(buf, cap,
             "%s (%s), %d layers, d %d, %d/%d heads (hd %d), ff %d, vocab %lld, %s, rope %s theta %g%s, "
             "%.1f M params, %.1f MiB",
             c->arch->name, c->source == MLXN_SRC_GGUF ? "gguf" : "mlx", c->n_layers, c->d_model, c->n_heads,
             c->n_kv_heads, c->head_dim, c->d_ff, (long long)c->vocab, c->tied_embeddings ? "tied" : "untied",
             rope_mode_name(c->rope.mode), (double)c->rope.theta, sc, (double)m->n_params / 1e6,
             (double)m->weight_bytes / (1024.0 * 1024.0));
}

/* ---------------------------------------------------------------- tokenizer */

static mlxn_status tokenizer_from_gguf(const mlxn_model *m, mlxn_tokenizer **out) {
    const mlxn_gguf *g = mlxn_model_files_gguf(m->files);
    const char *path = mlxn_gguf_path(g);
    mlxn_tokenizer_vocab_desc d;
    memset(&d, 0, sizeof d);
    d.bos_id = d.eos_id = d.unk_id = d.pad_id = -1;
    d.add_bos = -1;
    if (mlxn_gguf_get_str(g, "tokenizer.ggml.model", &d.model, NULL) != MLXN_OK)
        return mlxn_set_error(MLXN_ERR_FORMAT, "gguf '%s': no tokenizer (tokenizer.ggml.model missing)", path);
    if (mlxn_gguf_get_str(g, "tokenizer.ggml.pre", &d.pre, NULL) != MLXN_OK) d.pre = NULL;
    mlxn_gguf_kv_type et;
    uint64_t nt = 0, nm = 0;
    const void *data;
    mlxn_status st = mlxn_gguf_get_arr(g, "tokenizer.ggml.tokens", &et, &nt, &data);
    if (st != MLXN_OK) return st;
    if (et != MLXN_GGUF_KV_STRING)
        return mlxn_set_error(MLXN_ERR_FORMAT, "gguf '%s': tokenizer.ggml.tokens is not a string array", path);
    if (mlxn_gguf_get_arr(g, "tokenizer.ggml.merges", &et, &nm, &data) != MLXN_OK || et != MLXN_GGUF_KV_STRING)
        nm = 0;
    mlxn_clear_error();
    const char **toks = calloc(nt ? nt : 1, sizeof(char *));
    size_t *tlens = calloc(nt ? nt : 1, sizeof(size_t));
    const char **merges = calloc(nm ? nm : 1, sizeof(char *));
    size_t *mlens = calloc(nm ? nm : 1, sizeof(size_t));
    int32_t *types = NULL;
    float *scores = NULL;
    st = (toks && tlens && merges && mlens) ? MLXN_OK : mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "tokenizer vocab");
    for (uint64_t i = 0; st == MLXN_OK && i < nt; i++) {
        uint64_t len;
        st = mlxn_gguf_get_arr_str(g, "tokenizer.ggml.tokens", i, &toks[i], &len);
        tlens[i] = (size_t)len;
    }
    for (uint64_t i = 0; st == MLXN_OK && i < nm; i++) {
        uint64_t len;
        st = mlxn_gguf_get_arr_str(g, "tokenizer.ggml.merges", i, &merges[i], &len);
        mlens[i] = (size_t)len;
    }
    uint64_t cnt;
    if (st == MLXN_OK && mlxn_gguf_get_arr(g, "tokenizer.ggml.token_type", &et, &cnt, &data) == MLXN_OK &&
        cnt == nt && (et == MLXN_GGUF_KV_I32 || et == MLXN_GGUF_KV_U32)) {
        types = malloc(nt * sizeof(int32_t) + 1);
        if (types) memcpy(types, data, nt * sizeof(int32_t));
    }
    if (st == MLXN_OK && mlxn_gguf_get_arr(g, "tokenizer.ggml.scores", &et, &cnt, &data) == MLXN_OK && cnt == nt &&
        et == MLXN_GGUF_KV_F32) {
        scores = malloc(nt * sizeof(float) + 1);
        if (scores) memcpy(scores, data, nt * sizeof(float));
    }
    mlxn_clear_error();
    if (st == MLXN_OK) {
        uint32_t u;
        int b;
        if (mlxn_gguf_get_u32(g, "tokenizer.ggml.bos_token_id", &u) == MLXN_OK) d.bos_id = (int32_t)u;
        if (mlxn_gguf_get_u32(g, "tokenizer.ggml.eos_token_id", &u) == MLXN_OK) d.eos_id = (int32_t)u;
        if (mlxn_gguf_get_u32(g, "tokenizer.ggml.unknown_token_id", &u) == MLXN_OK) d.unk_id = (int32_t)u;
        if (mlxn_gguf_get_u32(g, "tokenizer.ggml.padding_token_id", &u) == MLXN_OK) d.pad_id = (int32_t)u;
        if (mlxn_gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &b) == MLXN_OK) d.add_bos = b;
        if (mlxn_gguf_get_str(g, "tokenizer.chat_template", &d.chat_template, NULL) != MLXN_OK)
            d.chat_template = NULL;
        mlxn_clear_error();
        d.n_tokens = (int64_t)nt;
        d.tokens = toks;
        d.token_lens = tlens;
        d.token_types = types;
        d.scores = scores;
        d.n_merges = (int64_t)nm;
        d.merges = merges;
        d.merge_lens = mlens;
        st = mlxn_tokenizer_from_vocab(&d, out);
        if (st != MLXN_OK) st = mlxn_error_prefix(st, "gguf '%s' tokenizer", path);
    }
    free(toks);
    free(tlens);
    free(merges);
    free(mlens);
    free(types);
    free(scores);
    return st;
}

mlxn_status mlxn_model_tokenizer(const mlxn_model *m, mlxn_tokenizer **out) {
    if (!m || !out) return mlxn_set_error(MLXN_ERR_INVALID_ARG, "model_tokenizer: NULL argument");
    *out = NULL;
    if (m->cfg.source == MLXN_SRC_GGUF) return tokenizer_from_gguf(m, out);
    const char *tj = mlxn_model_files_tokenizer_json(m->files);
    if (!tj)
        return mlxn_set_error(MLXN_ERR_NOT_FOUND, "model '%s': no tokenizer.json in the directory", m->path);
    return mlxn_tokenizer_from_json(tj, mlxn_model_files_tokenizer_config_json(m->files), out);
}
