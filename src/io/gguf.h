/* gguf.h — reader and writer for GGUF files (versions 2 and 3). The reader
 * maps the file (or wraps caller memory), validates the whole header up front
 * (every key/value including nested arrays, every tensor info: n_dims <= 4,
 * known type, row length a multiple of the block size, offsets aligned and
 * inside the file, no overlaps, no duplicate names, checked size arithmetic)
 * and then answers lookups without further parsing. Tensor shapes are exposed
 * OUTERMOST FIRST (numpy order): the file's dims (innermost first) reversed.
 * Strings in the file are not NUL-terminated; the reader keeps NUL-terminated
 * copies of keys and tensor names, and returns string values as NUL-terminated
 * copies too (mlxn_gguf_get_str) or as pointer+length (array elements).
 * Every error message names the file ("gguf 'path': ..."). The writer builds
 * a GGUF v3 file in memory-light fashion: metadata and tensor descriptors are
 * collected, data pointers are referenced (not copied) until write. */
#ifndef MLXN_IO_GGUF_H
#define MLXN_IO_GGUF_H

#include <stddef.h>
#include <stdint.h>
#include "mlxn.h"

typedef struct mlxn_gguf mlxn_gguf;

/* Metadata value types (the GGUF spec's codes). */
typedef enum mlxn_gguf_kv_type {
    MLXN_GGUF_KV_U8 = 0,
    MLXN_GGUF_KV_I8 = 1,
    MLXN_GGUF_KV_U16 = 2,
    MLXN_GGUF_KV_I16 = 3,
    MLXN_GGUF_KV_U32 = 4,
    MLXN_GGUF_KV_I32 = 5,
    MLXN_GGUF_KV_F32 = 6,
    MLXN_GGUF_KV_BOOL = 7,
    MLXN_GGUF_KV_STRING = 8,
    MLXN_GGUF_KV_ARRAY = 9,
    MLXN_GGUF_KV_U64 = 10,
    MLXN_GGUF_KV_I64 = 11,
    MLXN_GGUF_KV_F64 = 12,
    MLXN_GGUF_KV_TYPE_COUNT
} mlxn_gguf_kv_type;

/* "u8", "string", "array", ... ("?" if unknown). */
const char *mlxn_gguf_kv_type_name(mlxn_gguf_kv_type t);

/* ---------------------------------------------------------------- reader */

/* Open and mmap a GGUF file; validates the header, metadata and tensor infos.
 * Errors: MLXN_ERR_IO (open/mmap), MLXN_ERR_FORMAT (malformed; names the
 * field/tensor), MLXN_ERR_UNSUPPORTED (version other than 2/3, unknown
 * tensor type), MLXN_ERR_OUT_OF_MEMORY. */
mlxn_status mlxn_gguf_open(const char *path, mlxn_gguf **out);
/* Same over caller memory (no copy; the caller keeps `data` alive and
 * unchanged until close). Used by tests and fuzzing; messages say "<memory>". */
mlxn_status mlxn_gguf_open_memory(const void *data, size_t size, mlxn_gguf **out);
/* Accepts NULL. Drops the handle's reference; the mapping stays alive while
 * mlxn_gguf_retain'ed references exist (see below). */
void mlxn_gguf_close(mlxn_gguf *g);
/* Take / drop an extra reference (e.g. a weight buffer that wraps mmap'd
 * data keeps the file mapped). mlxn_gguf_close is the same as release. */
void mlxn_gguf_retain(mlxn_gguf *g);
void mlxn_gguf_release(mlxn_gguf *g);

const char *mlxn_gguf_path(const mlxn_gguf *g);   /* the path, or "<memory>" */
uint32_t mlxn_gguf_version(const mlxn_gguf *g);
uint64_t mlxn_gguf_alignment(const mlxn_gguf *g);  /* general.alignment or 32 */
uint64_t mlxn_gguf_data_offset(const mlxn_gguf *g); /* file offset of the data section */
size_t mlxn_gguf_file_size(const mlxn_gguf *g);
const void *mlxn_gguf_base(const mlxn_gguf *g);    /* start of the mapping */

/* ---- metadata */
int64_t mlxn_gguf_n_kv(const mlxn_gguf *g);
/* Index of `key`, or -1 if missing. */
int64_t mlxn_gguf_find_key(const mlxn_gguf *g, const char *key);
/* Key name and type of entry i (0 <= i < n_kv); NULL / -1 if out of range. */
const char *mlxn_gguf_key(const mlxn_gguf *g, int64_t i);
mlxn_gguf_kv_type mlxn_gguf_kv_type_of(const mlxn_gguf *g, int64_t i);

/* Typed getters. MLXN_ERR_NOT_FOUND if the key is missing; MLXN_ERR_FORMAT
 * if it has an incompatible type (message names key, actual and wanted type).
 * Integer getters accept any integer kv type (and bool) whose value fits;
 * out-of-range values are MLXN_ERR_RANGE. get_f32 accepts f32, f64 and
 * integer types. get_str returns a NUL-terminated copy owned by the handle
 * (a string containing NUL bytes is returned truncated; *len, if non-NULL,
 * is the full length). */
mlxn_status mlxn_gguf_get_u32(const mlxn_gguf *g, const char *key, uint32_t *out);
mlxn_status mlxn_gguf_get_i32(const mlxn_gguf *g, const char *key, int32_t *out);
mlxn_status mlxn_gguf_get_u64(const mlxn_gguf *g, const char *key, uint64_t *out);
mlxn_status mlxn_gguf_get_i64(const mlxn_gguf *g, const char *key, int64_t *out);
mlxn_status mlxn_gguf_get_f32(const mlxn_gguf *g, const char *key, float *out);
mlxn_status mlxn_gguf_get_bool(const mlxn_gguf *g, const char *key, int *out);
mlxn_status mlxn_gguf_get_str(const mlxn_gguf *g, const char *key, const char **out, uint64_t *len);

/* Array value: element type, count, and a pointer to the packed little-endian
 * elements in the file (possibly unaligned: read with memcpy) for scalar
 * element types, or NULL for string and nested-array elements (use
 * mlxn_gguf_get_arr_str for strings). MLXN_ERR_FORMAT if not an array. */
mlxn_status mlxn_gguf_get_arr(const mlxn_gguf *g, const char *key, mlxn_gguf_kv_type *elem_type,
                              uint64_t *count, const void **data);
/* Element i of a string array: pointer into the file (not NUL-terminated)
 * and its length. O(1) (the reader indexes string arrays at open).
 * MLXN_ERR_FORMAT if not a string array, MLXN_ERR_RANGE if i >= count. */
mlxn_status mlxn_gguf_get_arr_str(const mlxn_gguf *g, const char *key, uint64_t i, const char **s,
                                  uint64_t *len);
/* Nested arrays: element i of an array of arrays, described the same way as
 * mlxn_gguf_get_arr (data NULL if that inner array holds strings/arrays). */
mlxn_status mlxn_gguf_get_arr_arr(const mlxn_gguf *g, const char *key, uint64_t i, mlxn_gguf_kv_type *elem_type,
                                  uint64_t *count, const void **data);

/* ---- tensors */
typedef struct mlxn_gguf_tensor_info {
    const char *name;     /* NUL-terminated, owned by the handle */
    mlxn_gguf_type type;
    int n_dims;           /* 0..4 (0: a scalar, numel 1) */
    int64_t shape[4];     /* OUTERMOST first: shape[n_dims-1] is the contiguous row length */
    uint64_t offset;      /* relative to the data section */
    size_t nbytes;        /* storage bytes */
    const void *data;     /* pointer into the mapping (aligned to the file's alignment
                             relative to the file start; the mapping itself is page-aligned) */
} mlxn_gguf_tensor_info;

int64_t mlxn_gguf_n_tensors(const mlxn_gguf *g);
/* Info of tensor i; MLXN_ERR_RANGE if i is out of range. */
mlxn_status mlxn_gguf_tensor(const mlxn_gguf *g, int64_t i, mlxn_gguf_tensor_info *out);
/* Index of the tensor named `name`, or -1. */
int64_t mlxn_gguf_find_tensor(const mlxn_gguf *g, const char *name);

/* ---------------------------------------------------------------- writer */

typedef struct mlxn_gguf_writer mlxn_gguf_writer;

/* alignment: 0 = default 32 (written as general.alignment only when not 32). */
mlxn_status mlxn_gguf_writer_create(uint32_t alignment, mlxn_gguf_writer **out);
void mlxn_gguf_writer_free(mlxn_gguf_writer *w);
/* Set the version written (2 or 3, default 3). */
mlxn_status mlxn_gguf_writer_set_version(mlxn_gguf_writer *w, uint32_t version);

/* Add metadata (keys must be unique: MLXN_ERR_INVALID_ARG otherwise). All
 * values are copied. */
mlxn_status mlxn_gguf_writer_add_u8(mlxn_gguf_writer *w, const char *key, uint8_t v);
mlxn_status mlxn_gguf_writer_add_i8(mlxn_gguf_writer *w, const char *key, int8_t v);
mlxn_status mlxn_gguf_writer_add_u16(mlxn_gguf_writer *w, const char *key, uint16_t v);
mlxn_status mlxn_gguf_writer_add_i16(mlxn_gguf_writer *w, const char *key, int16_t v);
mlxn_status mlxn_gguf_writer_add_u32(mlxn_gguf_writer *w, const char *key, uint32_t v);
mlxn_status mlxn_gguf_writer_add_i32(mlxn_gguf_writer *w, const char *key, int32_t v);
mlxn_status mlxn_gguf_writer_add_u64(mlxn_gguf_writer *w, const char *key, uint64_t v);
mlxn_status mlxn_gguf_writer_add_i64(mlxn_gguf_writer *w, const char *key, int64_t v);
mlxn_status mlxn_gguf_writer_add_f32(mlxn_gguf_writer *w, const char *key, float v);
mlxn_status mlxn_gguf_writer_add_f64(mlxn_gguf_writer *w, const char *key, double v);
mlxn_status mlxn_gguf_writer_add_bool(mlxn_gguf_writer *w, const char *key, int v);
mlxn_status mlxn_gguf_writer_add_str(mlxn_gguf_writer *w, const char *key, const char *v);
/* Array of a scalar element type (u8..f64, bool as one byte each); `data`
 * holds count packed host-endian (little-endian) elements. */
mlxn_status mlxn_gguf_writer_add_arr(mlxn_gguf_writer *w, const char *key, mlxn_gguf_kv_type elem_type,
                                     const void *data, uint64_t count);
/* Array of strings; lens may be NULL (then strlen each). */
mlxn_status mlxn_gguf_writer_add_arr_str(mlxn_gguf_writer *w, const char *key, const char *const *strs,
                                         const size_t *lens, uint64_t count);
/* Raw encoded value (type + payload bytes exactly as in a file, without the
 * key): for nested arrays and round-tripping. `payload` is copied. */
mlxn_status mlxn_gguf_writer_add_raw(mlxn_gguf_writer *w, const char *key, mlxn_gguf_kv_type type,
                                     const void *payload, size_t payload_bytes);

/* Add a tensor: shape outermost first (written reversed, innermost first).
 * The last dim must be a multiple of the type's block size; nbytes must equal
 * the computed storage size. `data` is referenced, not copied: keep it alive
 * until mlxn_gguf_writer_write returns. Names must be unique. */
mlxn_status mlxn_gguf_writer_add_tensor(mlxn_gguf_writer *w, const char *name, mlxn_gguf_type type, int n_dims,
                                        const int64_t *shape, const void *data, size_t nbytes);
/* Write the file (metadata in insertion order, tensors in insertion order,
 * each tensor's data aligned). MLXN_ERR_IO names the path. */
mlxn_status mlxn_gguf_writer_write(mlxn_gguf_writer *w, const char *path);

/* Storage bytes of a tensor of type t with shape (outermost first); checks
 * the row is a multiple of the block size and that nothing overflows.
 * Returns MLXN_ERR_FORMAT / MLXN_ERR_UNSUPPORTED with a message (no file name). */
mlxn_status mlxn_gguf_tensor_nbytes(mlxn_gguf_type t, int n_dims, const int64_t *shape, size_t *out);

#endif /* MLXN_IO_GGUF_H */
