/* model.h — a decoder-only transformer loaded from a GGUF file or an MLX
 * model directory. Loading normalises the architecture's hyper-parameters
 * (GGUF metadata "<arch>.*" or config.json) into one mlxn_model_config, looks
 * the architecture up in a small table of differences (llama/smollm/mistral:
 * plain; qwen2: q/k/v biases; qwen3: per-head q/k RMSNorm), picks the RoPE
 * layout per source (GGUF llama-arch files have Q/K rows permuted for
 * adjacent-pair RoPE; MLX directories and qwen2/qwen3 GGUFs use half-split),
 * maps tensor names (GGUF "blk.N.attn_q.weight" vs MLX
 * "model.layers.N.self_attn.q_proj.weight") and loads every weight onto the
 * device. When the output projection is absent the token embedding is used
 * as lm_head (tied embeddings). The forward pass itself lives in forward.c
 * and is written once for every architecture. */
#ifndef MLXN_MODEL_MODEL_H
#define MLXN_MODEL_MODEL_H

#include <stddef.h>
#include <stdint.h>
#include "mlxn.h"
#include "io/model_files.h"

struct mlxn_tokenizer;

typedef enum mlxn_arch {
    MLXN_ARCH_LLAMA = 0, /* Llama 1-3.x, SmolLM/SmolLM2, Mistral (no sliding window) */
    MLXN_ARCH_QWEN2 = 1, /* Qwen2 / Qwen2.5: biases on q, k, v projections */
    MLXN_ARCH_QWEN3 = 2, /* Qwen3 dense: per-head RMSNorm on q and k before RoPE */
} mlxn_arch;

/* The table of differences between architectures. */
typedef struct mlxn_arch_info {
    mlxn_arch arch;
    const char *name;        /* canonical name: "llama", "qwen2", "qwen3" */
    int qkv_bias;            /* q/k/v projections carry an additive bias */
    int qk_norm;             /* RMSNorm over each head of q and k (before RoPE) */
    mlxn_rope_mode gguf_rope;/* RoPE layout of this architecture's GGUF files */
} mlxn_arch_info;

/* Look up an architecture by its GGUF general.architecture or config.json
 * model_type ("llama", "smollm", "mistral", "qwen2", "qwen3", ...); NULL if
 * unknown. */
const mlxn_arch_info *mlxn_arch_lookup(const char *name);
/* Comma-separated list of the accepted names, for error messages. */
const char *mlxn_arch_supported_names(void);

/* One struct for every source. */
typedef struct mlxn_model_config {
    const mlxn_arch_info *arch;
    char arch_name[32];     /* as the file spells it */
    mlxn_model_source source; /* MLXN_SRC_GGUF or MLXN_SRC_MLX_DIR (io/model_files.h) */
    int n_layers;
    int d_model;            /* hidden size */
    int n_heads;            /* query heads */
    int n_kv_heads;         /* key/value heads (GQA) */
    int head_dim;
    int d_ff;               /* MLP intermediate size */
    int64_t vocab;          /* rows of the embedding / lm_head */
    int max_ctx;            /* trained context length */
    float norm_eps;
    mlxn_rope_params rope;  /* mode chosen per source; LLAMA3 scaling when present */
    int tied_embeddings;    /* lm_head is the token embedding */
} mlxn_model_config;

/* Fill cfg from GGUF metadata of an open file (struct mlxn_gguf *). The
 * vocabulary size comes from <arch>.vocab_size, else the token list, else the
 * embedding tensor. Errors name the missing key. */
mlxn_status mlxn_model_config_from_gguf(const mlxn_gguf *g, mlxn_model_config *cfg);
/* Fill cfg from a parsed config.json. */
mlxn_status mlxn_model_config_from_json(const json_t *config_json, mlxn_model_config *cfg);
/* Checks shared by both sources (positive sizes, heads divide, even head_dim). */
mlxn_status mlxn_model_config_validate(const mlxn_model_config *cfg);

typedef struct mlxn_layer_weights {
    mlxn_buffer *attn_norm, *ffn_norm;     /* [d_model] f32 */
    mlxn_buffer *q_norm, *k_norm;          /* [head_dim] f32 (qwen3) or NULL */
    mlxn_buffer *q_bias, *k_bias, *v_bias; /* [n_out] f32 (qwen2) or NULL */
    mlxn_weight *wq, *wk, *wv, *wo;        /* [Hq*D, d] [Hkv*D, d] [Hkv*D, d] [d, Hq*D] */
    mlxn_weight *w_gate, *w_up, *w_down;   /* [ff, d] [ff, d] [d, ff] */
    /* Decode (one row) fusions, NULL when off or when the parts differ in
     * format: wq/wk/wv (and w_gate/w_up) are then views into these. */
    mlxn_weight *wqkv;                     /* [Hq*D + 2*Hkv*D, d] */
    mlxn_weight *wgu;                      /* [2*ff, d] */
    mlxn_buffer *qkv_bias;                 /* [Hq*D + 2*Hkv*D] (qwen2) or NULL */
} mlxn_layer_weights;

typedef struct mlxn_model {
    mlxn_model_config cfg;
    mlxn_device *dev;                /* not owned */
    mlxn_model_files *files;         /* owned: the open GGUF / MLX directory */
    mlxn_weight *tok_embd;           /* [vocab, d] */
    mlxn_weight *lm_head;            /* [vocab, d]; == tok_embd when tied */
    mlxn_buffer *out_norm;           /* [d] f32 */
    mlxn_layer_weights *layers;      /* [n_layers] */
    size_t weight_bytes;             /* bytes of all weights on the device */
    int64_t n_params;                /* logical parameter count */
    char path[1024];
} mlxn_model;

typedef struct mlxn_model_load_opts {
    /* Fuse q/k/v and gate/up into one matrix each for the one-row decode
     * step (fewer, larger matmuls; the separate weights become views, so no
     * extra memory on the device; on the CPU the fused rows are copied out
     * of the file mapping). -1 auto: on except on the "ref" device (measured
     * on the 2-core CPU: SmolLM2 decode 14.3 -> 12.4 ms/token); 0 off; 1 on. */
    int fuse;
} mlxn_model_load_opts;

/* Open a .gguf file or an MLX directory and load all weights onto dev.
 * Errors: MLXN_ERR_IO / NOT_FOUND (missing file, names the path),
 * MLXN_ERR_UNSUPPORTED (architecture not in the table, names it and lists the
 * supported ones), MLXN_ERR_FORMAT (missing key/tensor, wrong shape). */
mlxn_status mlxn_model_load(const char *path, mlxn_device *dev, const mlxn_model_load_opts *opts,
                            mlxn_model **out);
void mlxn_model_free(mlxn_model *m);

/* Build the model's tokenizer: from the GGUF tokenizer.ggml.* metadata, or
 * from tokenizer.json (+ tokenizer_config.json) in an MLX directory. */
mlxn_status mlxn_model_tokenizer(const mlxn_model *m, struct mlxn_tokenizer **out);

/* A one-line summary: "llama, 30 layers, d 576, 9/3 heads (hd 64), ff 1536, vocab 49152, tied, rope adjacent". */
void mlxn_model_describe(const mlxn_model *m, char *buf, size_t cap);

/* ---------------------------------------------------------------- forward pass (forward.c) */

struct mlxn_kv_cache;

/* Per-call scratch for the forward pass: activations sized for up to
 * max_tokens rows, allocated once and reused (no allocation per token). */
typedef struct mlxn_forward_state mlxn_forward_state;

mlxn_status mlxn_forward_state_create(const mlxn_model *m, int max_tokens, mlxn_forward_state **out);
void mlxn_forward_state_free(mlxn_forward_state *st);
int mlxn_forward_state_max_tokens(const mlxn_forward_state *st);
/* Device buffers the decode step reads (T = 1): ids i32 [1], positions i32 [1]. */
mlxn_buffer *mlxn_forward_state_ids(mlxn_forward_state *st);
mlxn_buffer *mlxn_forward_state_positions(mlxn_forward_state *st);
/* While set, a one-row forward pass's embedding reads its id from ids (i32
 * [1], e.g. a view of mapped host memory: the decode graph records this)
 * instead of the state's ids buffer; NULL restores that. The state keeps a
 * view of it. */
mlxn_status mlxn_forward_state_set_step_ids(mlxn_forward_state *st, mlxn_buffer *ids);
/* While non-zero, the forward passes' attention ops carry kv_bound = bound
 * (mlxn_attention_params): the caller guarantees every position < bound, so a
 * recorded decode graph sizes its attention to it; 0 restores the default. */
void mlxn_forward_state_set_kv_bound(mlxn_forward_state *st, int64_t bound);

/* Enqueue the forward pass for n tokens (n <= max_tokens) whose ids and
 * positions are already in the state's ids/positions buffers (views of the
 * first n rows are used). all_logits = 0: logits of the last row only ->
 * logits [1, vocab]; 1: every row -> logits [n, vocab]. The K/V of the n
 * tokens are appended to the cache at their positions. Only enqueues ops on
 * s (call mlxn_session_finish, or record this into a graph). *logits points
 * at a buffer owned by the state. */
mlxn_status mlxn_forward_enqueue(const mlxn_model *m, mlxn_forward_state *st, struct mlxn_kv_cache *kv,
                                 mlxn_session *s, int n, int all_logits, mlxn_buffer **logits);

/* Convenience: upload ids/positions pos0..pos0+n-1, run the forward pass in
 * chunks of at most max_tokens, wait, and download the logits of the last
 * token (all_logits = 0: out [vocab]) or every token (out [n, vocab]). */
mlxn_status mlxn_forward_tokens(const mlxn_model *m, mlxn_forward_state *st, struct mlxn_kv_cache *kv,
                                mlxn_session *s, const int32_t *ids, int n, int pos0, int all_logits,
                                float *out);

#endif /* MLXN_MODEL_MODEL_H */
