/* safetensors.h — reader and writer for .safetensors files. The reader mmaps
 * the file (or wraps caller memory) and validates it the way the reference
 * implementation does: header length <= 100 MB and 8 + N <= file size, the
 * header is a UTF-8 JSON object, each entry has a known dtype, a shape of at
 * most 4 (non-negative) dims whose product does not overflow, data_offsets
 * [begin, end) with end - begin == numel * dtype size, the entries tile the
 * data buffer exactly (no gaps, no overlaps, sorted by offset they cover
 * [0, buffer size)), no duplicate names; "__metadata__" is an optional
 * string -> string object. Tensor data may be unaligned (MLX writes
 * unpadded headers): never cast the data pointer to a wider type without
 * checking. Errors name the file ("safetensors 'path': ...").
 * The writer sorts tensors by name, pads the header with spaces so the data
 * starts 8-byte aligned, and writes __metadata__ when any was set. */
#ifndef MLXN_IO_SAFETENSORS_H
#define MLXN_IO_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>
#include "mlxn.h"

/* Every dtype the format knows (plus MLX's F8_E8M0 and C64). */
typedef enum mlxn_st_dtype {
    MLXN_ST_BOOL = 0,
    MLXN_ST_U8,
    MLXN_ST_I8,
    MLXN_ST_F8_E5M2,
    MLXN_ST_F8_E4M3,
    MLXN_ST_F8_E8M0,
    MLXN_ST_I16,
    MLXN_ST_U16,
    MLXN_ST_F16,
    MLXN_ST_BF16,
    MLXN_ST_I32,
    MLXN_ST_U32,
    MLXN_ST_F32,
    MLXN_ST_F64,
    MLXN_ST_I64,
    MLXN_ST_U64,
    MLXN_ST_C64,
    MLXN_ST_DTYPE_COUNT
} mlxn_st_dtype;

/* "F32", "BF16", ...; NULL for out-of-range values. */
const char *mlxn_st_dtype_name(mlxn_st_dtype t);
/* Element size in bytes (0 if unknown). */
size_t mlxn_st_dtype_size(mlxn_st_dtype t);
/* Parse a dtype string; returns -1 if unknown. */
int mlxn_st_dtype_from_name(const char *name);
/* The mlxn_dtype of a safetensors dtype (F32, F16, BF16, U8, I8, U16, I16,
 * U32, I32, I64); returns -1 when there is none (BOOL, F8*, F64, U64, C64). */
int mlxn_st_dtype_to_mlxn(mlxn_st_dtype t);
/* The safetensors dtype of an mlxn_dtype. */
mlxn_st_dtype mlxn_st_dtype_from_mlxn(mlxn_dtype t);

/* ---------------------------------------------------------------- reader */

typedef struct mlxn_st mlxn_st;

typedef struct mlxn_st_tensor_info {
    const char *name;       /* NUL-terminated, owned by the handle */
    const char *dtype_name; /* "F32", ... */
    mlxn_st_dtype dtype;
    int ndim;               /* 0..4 */
    int64_t shape[4];       /* outermost first */
    uint64_t begin;         /* data_offsets[0], relative to the data buffer */
    size_t nbytes;          /* end - begin */
    const void *data;       /* pointer into the mapping; MAY BE UNALIGNED */
} mlxn_st_tensor_info;

/* Open and mmap a file and validate it (see above). Errors: MLXN_ERR_IO
 * (open/stat/mmap), MLXN_ERR_FORMAT (malformed: names the tensor and the rule
 * broken; an unknown dtype string is FORMAT too), MLXN_ERR_UNSUPPORTED (a
 * valid tensor with more than 4 dims), MLXN_ERR_OUT_OF_MEMORY. */
mlxn_status mlxn_st_open(const char *path, mlxn_st **out);
/* Same over caller memory (no copy; keep `data` alive until close).
 * `label` names it in messages (NULL = "<memory>"). */
mlxn_status mlxn_st_open_memory(const void *data, size_t size, const char *label, mlxn_st **out);
/* Accepts NULL; same as mlxn_st_release. */
void mlxn_st_close(mlxn_st *st);
/* Extra references keep the mapping alive (e.g. for zero-copy buffers). */
void mlxn_st_retain(mlxn_st *st);
void mlxn_st_release(mlxn_st *st);

const char *mlxn_st_path(const mlxn_st *st);
size_t mlxn_st_file_size(const mlxn_st *st);
uint64_t mlxn_st_header_size(const mlxn_st *st); /* N; data buffer starts at 8 + N */

/* Tensors in the order of their header entries sorted by name. */
int64_t mlxn_st_n_tensors(const mlxn_st *st);
/* MLXN_ERR_RANGE if i is out of range. */
mlxn_status mlxn_st_tensor(const mlxn_st *st, int64_t i, mlxn_st_tensor_info *out);
/* Index of `name`, or -1 (binary search). */
int64_t mlxn_st_find(const mlxn_st *st, const char *name);

/* __metadata__ entries (0 if absent). */
int64_t mlxn_st_n_metadata(const mlxn_st *st);
/* Key/value of entry i (NULL if out of range). */
const char *mlxn_st_metadata_key(const mlxn_st *st, int64_t i);
const char *mlxn_st_metadata_value(const mlxn_st *st, int64_t i);
/* Value of `key`, or NULL. */
const char *mlxn_st_metadata_get(const mlxn_st *st, const char *key);

/* ---------------------------------------------------------------- writer */

typedef struct mlxn_st_writer mlxn_st_writer;

mlxn_status mlxn_st_writer_create(mlxn_st_writer **out);
void mlxn_st_writer_free(mlxn_st_writer *w);
/* Add a tensor (name unique, not "__metadata__"; ndim 0..4; dims >= 0).
 * `data` (numel * dtype size bytes) is referenced, not copied: keep it alive
 * until mlxn_st_writer_write returns. */
mlxn_status mlxn_st_writer_add(mlxn_st_writer *w, const char *name, mlxn_st_dtype dtype, int ndim,
                               const int64_t *shape, const void *data);
/* Set a __metadata__ entry (copied; a second call with the same key replaces it). */
mlxn_status mlxn_st_writer_set_metadata(mlxn_st_writer *w, const char *key, const char *value);
/* Write the file: tensors sorted by name, 8-byte aligned data start. */
mlxn_status mlxn_st_writer_write(mlxn_st_writer *w, const char *path);

#endif /* MLXN_IO_SAFETENSORS_H */
