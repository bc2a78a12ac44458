/* convert.h — model conversion into MLX model directories (the library side
 * of `mlxn convert`). Two inputs:
 *  - a GGUF file: Q4_0 / Q4_1 / Q8_0 / Q5_0 / Q5_1 tensors become MLX affine
 *    group-32 triples losslessly (4, 4, 8, 5, 5 bits; FORMATS.md §3);
 *    F32/F16/BF16 tensors are kept (or cast with opts.dtype); K-quants and
 *    other block types are dequantized and re-quantized to MLX affine at a
 *    chosen bits/group with the error measured and reported. Names are mapped
 *    back to Hugging Face names (token_embd -> model.embed_tokens, ...), the
 *    Q/K row permutation llama.cpp applies to llama-architecture models is
 *    undone (so the directory uses half-split RoPE like every MLX model), and
 *    config.json, tokenizer.json (byte-level BPE vocabularies),
 *    tokenizer_config.json and generation_config.json are written the way
 *    mlx-lm writes them.
 *  - a Hugging Face / MLX safetensors directory with float weights
 *    (f32/f16/bf16): quantized to MLX affine with global bits/group size,
 *    mlx-lm's mixed recipes (mixed_2_6, mixed_3_4, mixed_3_6, mixed_4_6, the
 *    same layer choices as mlx_lm.convert --quant-predicate) and per-module
 *    overrides; or only cast (quantize = 0).
 * Output: model.safetensors (or model-0000i-of-0000N.safetensors shards of
 * at most opts.shard_bytes) with metadata {"format": "mlx"}, always a
 * model.safetensors.index.json, config.json with "quantization" and
 * "quantization_config". Progress goes through a callback; failures return
 * an mlxn_status with a message naming the file/tensor. */
#ifndef MLXN_IO_CONVERT_H
#define MLXN_IO_CONVERT_H

#include <stddef.h>
#include <stdint.h>
#include "mlxn.h"

/* One per-module override. `pattern` matches a module path (the tensor name
 * without ".weight") when it equals it, when the path ends with "." pattern
 * (e.g. "lm_head", "mlp.down_proj"), or as an fnmatch(3) glob
 * ("model.layers.*.self_attn.v_proj"). bits 0 = leave the module in float.
 * group_size 0 = the global group size. Later overrides win. */
typedef struct mlxn_convert_override {
    const char *pattern;
    int bits;
    int group_size;
} mlxn_convert_override;

typedef enum mlxn_convert_stage {
    MLXN_CONVERT_STAGE_PLAN = 0,   /* inputs opened, plan made (n_tensors, bytes_total known) */
    MLXN_CONVERT_STAGE_TENSOR = 1, /* one tensor converted (tensor_name, index) */
    MLXN_CONVERT_STAGE_WRITE = 2,  /* one shard written (shard_index/n_shards) */
    MLXN_CONVERT_STAGE_DONE = 3,
} mlxn_convert_stage;

typedef struct mlxn_convert_progress {
    mlxn_convert_stage stage;
    int64_t index, n_tensors;    /* tensors done so far, total */
    uint64_t bytes_done, bytes_total; /* source bytes processed so far, total */
    int shard_index, n_shards;
    const char *tensor_name;     /* output name of the tensor just done (STAGE_TENSOR) */
    const char *message;         /* a warning/notice, or NULL */
} mlxn_convert_progress;

typedef void (*mlxn_convert_progress_fn)(const mlxn_convert_progress *p, void *user);

typedef struct mlxn_convert_opts {
    int bits;                  /* 0 = default: HF 4; GGUF re-quantization per type (Q2_K..Q4_K 4,
                                  Q5_K 5, Q6_K 6, others 8). Set: used for both. */
    int group_size;            /* 0 = default: HF 64; GGUF re-quantization 32 */
    const char *recipe;        /* NULL or "uniform", "mixed_2_6", "mixed_3_4", "mixed_3_6", "mixed_4_6" */
    const mlxn_convert_override *overrides;
    int n_overrides;
    int dtype;                 /* -1: keep (HF: config torch_dtype/dtype, else the source dtype;
                                  GGUF: source float types); else MLXN_F32 / MLXN_F16 / MLXN_BF16 for
                                  float tensors and for the scales of newly quantized tensors */
    int quantize;              /* HF input: 1 quantize (default), 0 only cast */
    int force;                 /* 1: write into an existing non-empty output directory */
    uint64_t shard_bytes;      /* 0 = 5 GiB (mlx-lm's default) */
    int n_threads;             /* quantization threads; 0 = online cores */
    mlxn_convert_progress_fn progress;
    void *progress_user;
} mlxn_convert_opts;

/* Fill the defaults (bits 0, group 0 = per-input defaults, uniform, dtype keep, quantize 1). */
void mlxn_convert_opts_init(mlxn_convert_opts *o);

typedef enum mlxn_convert_kind {
    MLXN_CONVERT_FLOAT = 0,     /* kept/cast float tensor */
    MLXN_CONVERT_LOSSLESS = 1,  /* GGUF block type mapped exactly onto MLX affine */
    MLXN_CONVERT_QUANTIZED = 2, /* quantized (HF) or re-quantized (GGUF K-quants) with error measured */
} mlxn_convert_kind;

typedef struct mlxn_convert_tensor_report {
    char name[192];            /* output name ("model.layers.0.mlp.down_proj.weight") */
    char src_type[16];         /* "BF16", "Q4_1", "Q6_K", ... */
    mlxn_convert_kind kind;
    int bits, group_size;      /* quantized outputs */
    mlxn_dtype dtype;          /* float dtype of the output / of its scales */
    uint64_t bytes_in, bytes_out;
    double nmse;               /* QUANTIZED: sum((w-ŵ)²)/sum(w²) against the source values; else 0 */
    double max_abs_err;        /* QUANTIZED: max |w-ŵ|; else 0 */
} mlxn_convert_tensor_report;

typedef struct mlxn_convert_report {
    int64_t n_tensors;         /* output tensors (a quantized triple counts once) */
    int64_t n_float, n_lossless, n_quantized;
    uint64_t bytes_in, bytes_out;
    int n_shards;
    double worst_nmse;         /* over QUANTIZED tensors */
    char worst_name[192];
    int tokenizer_written;     /* GGUF: tokenizer.json written */
    int rope_unpermuted;       /* GGUF: number of Q/K tensors whose rows were un-permuted */
    mlxn_convert_tensor_report *tensors; /* [n_tensors], malloc'd */
} mlxn_convert_report;

void mlxn_convert_report_free(mlxn_convert_report *r);

/* Convert `in` (a .gguf file or a directory with config.json + safetensors)
 * into the MLX directory `out_dir` (created if missing). `report` may be NULL.
 * Errors: MLXN_ERR_INVALID_ARG (bad options; output exists and force = 0),
 * MLXN_ERR_NOT_FOUND / MLXN_ERR_IO / MLXN_ERR_FORMAT (inputs),
 * MLXN_ERR_UNSUPPORTED (a GGUF architecture, tensor name or type this
 * converter does not know, naming it). */
mlxn_status mlxn_convert(const char *in, const char *out_dir, const mlxn_convert_opts *opts,
                         mlxn_convert_report *report);

/* ---- pieces exposed for tests */

/* Lossless GGUF -> MLX affine for one matrix [rows, cols] of type t (Q4_0,
 * Q4_1, Q8_0, Q5_0, Q5_1): packed gets rows*cols*bits/8 bytes, scales and
 * biases rows*cols/32 elements of scale_dtype (MLXN_F16 or MLXN_F32; F16 is
 * exact unless a scale*8 / scale*128 / scale*16 bias overflows f16, which
 * returns MLXN_ERR_RANGE: use F32 then). *bits receives 4, 8 or 5. */
mlxn_status mlxn_convert_gguf_block_to_mlx(mlxn_gguf_type t, const void *blocks, int64_t rows, int64_t cols,
                                           mlxn_dtype scale_dtype, void *packed, void *scales, void *biases,
                                           int *bits);
/* 1 if t converts losslessly (see above). */
int mlxn_convert_gguf_is_lossless(mlxn_gguf_type t);
/* Undo llama.cpp's Q/K permutation: dst row (h, j, i) of a head of size
 * head_dim = rows / n_head (j in {0,1}, i < head_dim/2, HF order
 * h*head_dim + j*head_dim/2 + i) = src row h*head_dim + 2*i + j.
 * Rows are opaque byte strings of row_bytes (works on block-quantized rows). */
mlxn_status mlxn_convert_unpermute_rope_rows(const void *src, void *dst, int64_t rows, size_t row_bytes,
                                             int n_head);
/* mlx-lm's mixed recipe choice for one module path, or the uniform choice:
 * returns the bits for `path` (group size is the global one). n_layers is
 * the number of transformer layers. Returns 0 for an unknown recipe. */
int mlxn_convert_recipe_bits(const char *recipe, const char *path, int n_layers, int default_bits);
/* GGUF tensor name -> Hugging Face name ("blk.3.attn_q.weight" ->
 * "model.layers.3.self_attn.q_proj.weight"); returns 0 if unknown. */
int mlxn_convert_gguf_name_to_hf(const char *gguf_name, char *out, size_t cap);

#endif /* MLXN_IO_CONVERT_H */
