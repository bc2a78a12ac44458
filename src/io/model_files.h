/* model_files.h — one handle over the files of a model: either a single GGUF
 * file, or an MLX model directory (config.json, model.safetensors or shards
 * listed by model.safetensors.index.json, tokenizer files). It presents the
 * weights as a list of LOGICAL tensors: an MLX affine-quantized module P
 * (P.weight u32 packed, P.scales, P.biases) is one entry named "P.weight"
 * with its bits, group size and mode and its unpacked shape; a GGUF tensor is
 * one entry with its block type. Loading puts a tensor on a device: on the
 * CPU (and ref) device the buffer wraps the mmap'd file data without a copy
 * when the data is suitably aligned (else it is copied); on CUDA the bytes
 * are uploaded straight from the mapping (the mapped pages are dropped from
 * the process afterwards, so peak host memory stays near one tensor, not the
 * model). Buffers that wrap file data hold a reference on the file mapping:
 * weights and buffers stay valid after mlxn_model_files_close.
 *
 * MLX quantization rules (FORMATS.md §2): config.json "quantization" (or
 * "quantization_config") {"group_size", "bits", "mode"?} plus per-module
 * overrides keyed by module path, either an object or `false`; a module is
 * quantized exactly when P.scales exists. P.scales without P.weight, a u32
 * P.weight without P.scales, or shapes that disagree with bits/group_size
 * are MLXN_ERR_FORMAT naming the tensor. Every file error names the path. */
#ifndef MLXN_IO_MODEL_FILES_H
#define MLXN_IO_MODEL_FILES_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include "mlxn.h"
#include "io/gguf.h"
#include "io/safetensors.h"

typedef struct mlxn_model_files mlxn_model_files;

typedef enum mlxn_model_source { MLXN_SRC_GGUF = 0, MLXN_SRC_MLX_DIR = 1 } mlxn_model_source;

/* Open a model: `path` is a .gguf file (any regular file starting with the
 * GGUF magic) or a directory containing config.json. The directory form
 * opens every shard (missing shard: MLXN_ERR_NOT_FOUND naming it) and
 * validates the quantization grouping. */
mlxn_status mlxn_model_files_open(const char *path, mlxn_model_files **out);
/* An MLX model held in memory (for tests and fuzzing): config.json text and
 * n_shards safetensors images (not copied: keep them alive until close).
 * Messages name "<memory>/config.json" and "<memory>/shard-I.safetensors". */
mlxn_status mlxn_model_files_open_memory(const char *config_json, size_t config_len, const void *const *shards,
                                         const size_t *shard_sizes, int n_shards, mlxn_model_files **out);
/* Accepts NULL. Loaded weights/buffers remain valid (they hold references). */
void mlxn_model_files_close(mlxn_model_files *mf);

mlxn_model_source mlxn_model_files_source(const mlxn_model_files *mf);
const char *mlxn_model_files_path(const mlxn_model_files *mf);            /* as given to open */
/* The GGUF handle (NULL for MLX directories). */
const mlxn_gguf *mlxn_model_files_gguf(const mlxn_model_files *mf);
/* config.json root object (NULL for GGUF); owned by the handle. */
const json_t *mlxn_model_files_config(const mlxn_model_files *mf);
/* The directory (MLX) or NULL (GGUF). */
const char *mlxn_model_files_dir(const mlxn_model_files *mf);
/* Paths of tokenizer.json / tokenizer_config.json / generation_config.json
 * in the directory, or NULL when absent (always NULL for GGUF). */
const char *mlxn_model_files_tokenizer_json(const mlxn_model_files *mf);
const char *mlxn_model_files_tokenizer_config_json(const mlxn_model_files *mf);
const char *mlxn_model_files_generation_config_json(const mlxn_model_files *mf);
/* Architecture string: GGUF general.architecture, or config.json
 * "model_type" (falling back to architectures[0]); "" if unknown. */
const char *mlxn_model_files_architecture(const mlxn_model_files *mf);

/* Safetensors shards of an MLX directory (0 for GGUF). */
int mlxn_model_files_n_shards(const mlxn_model_files *mf);
const mlxn_st *mlxn_model_files_shard(const mlxn_model_files *mf, int i);
/* Raw (physical) safetensors tensor by exact name across all shards, e.g.
 * "model.layers.0.mlp.up_proj.scales" (for converters). MLXN_ERR_NOT_FOUND
 * for GGUF sources or unknown names. */
mlxn_status mlxn_model_files_st_tensor(const mlxn_model_files *mf, const char *name, mlxn_st_tensor_info *out);

typedef struct mlxn_model_tensor_info {
    const char *name;          /* file tensor name; for an MLX quantized triple the "P.weight" name */
    int quantized;             /* 1: MLX quantized triple or a GGUF block-quantized type */
    mlxn_weight_format format; /* DENSE, MLX_AFFINE (any MLX quant mode) or GGUF */
    mlxn_dtype dtype;          /* DENSE: its dtype (-1 if it has no mlxn_dtype, e.g. F64/BOOL);
                                  MLX_AFFINE: dtype of scales (f32/f16/bf16; U8 for mxfp/nvfp modes);
                                  GGUF: U8 */
    mlxn_gguf_type gguf_type;  /* GGUF source: the tensor's type (F32/F16/BF16 too); else -1 */
    int bits, group_size;      /* MLX quantized only (else 0) */
    const char *mode;          /* MLX quantized: "affine", "mxfp4", ...; else NULL */
    const char *src_dtype;     /* file dtype name: "BF16", "U32", "Q4_1", ... */
    int ndim;
    int64_t shape[4];          /* LOGICAL shape outermost first (quantized [N, K]: K unpacked) */
    size_t nbytes;             /* bytes of storage (all parts of a triple) */
} mlxn_model_tensor_info;

/* Logical tensors (a quantized triple counts once), in file order (GGUF) or
 * sorted by name (MLX). */
int64_t mlxn_model_files_n_tensors(const mlxn_model_files *mf);
mlxn_status mlxn_model_files_tensor(const mlxn_model_files *mf, int64_t i, mlxn_model_tensor_info *out);
/* Find a logical tensor by name (for an MLX quantized module also accepts
 * the module path "P" itself). MLXN_ERR_NOT_FOUND names the tensor and the file. */
mlxn_status mlxn_model_files_find(const mlxn_model_files *mf, const char *name, mlxn_model_tensor_info *out);
/* Total parameter count (quantized tensors count their logical elements). */
int64_t mlxn_model_files_n_params(const mlxn_model_files *mf);
/* Total storage bytes of all tensors. */
size_t mlxn_model_files_total_bytes(const mlxn_model_files *mf);

/* Load a 2-D matrix (N, K) as a weight on device d: dense f32/f16/bf16 stay
 * in their dtype (DENSE), an MLX affine triple becomes MLX_AFFINE, a GGUF
 * block type GGUF (GGUF F32/F16/BF16 become DENSE). CPU/ref: zero-copy wrap
 * of the mapping when aligned (4 bytes for u32/f32, 2 for f16/bf16), else a
 * copy; CUDA: one upload per part from the mapping. Errors: NOT_FOUND, SHAPE
 * (not 2-D), UNSUPPORTED (e.g. mxfp4 mode, int dtypes), FORMAT. */
mlxn_status mlxn_model_files_load_weight(mlxn_model_files *mf, mlxn_device *d, const char *name,
                                         mlxn_weight **out);
/* Load any float or integer tensor as a plain buffer of dtype `want` with its
 * logical shape. want f32/f16/bf16: float sources (F32/F16/BF16/F64, GGUF
 * F32/F16/BF16) are converted; quantized sources (MLX affine, GGUF blocks)
 * are dequantized. Integer `want` requires the same integer source dtype.
 * When no conversion is needed this is zero-copy on the CPU like load_weight. */
mlxn_status mlxn_model_files_load_buffer(mlxn_model_files *mf, mlxn_device *d, const char *name, mlxn_dtype want,
                                         mlxn_buffer **out);
/* Read a tensor's values into caller memory as f32 (host; dequantizes).
 * `out` holds numel floats. */
mlxn_status mlxn_model_files_read_f32(mlxn_model_files *mf, const char *name, float *out, size_t out_count);

/* MLX quantization config for a module path ("model.layers.3.mlp.down_proj"):
 * sets bits, group_size and mode (any pointer may be NULL) and returns 1 if
 * the config quantizes that module (per-module override, else the global
 * setting); 0 if there is no quantization config or the module's entry is
 * `false`. Always 0 for GGUF. Note: the ground truth for a tensor is whether
 * P.scales exists (see mlxn_model_files_tensor). */
int mlxn_model_files_quant_for(const mlxn_model_files *mf, const char *module_path, int *bits, int *group_size,
                               const char **mode);

#endif /* MLXN_IO_MODEL_FILES_H */
