/* buffer.c — device buffers: allocation through the device's backend,
 * views that share a refcounted storage at a byte offset, wrapping of caller
 * host memory (CPU/ref only), mapped host memory the device reads and writes
 * in place (a decode step's few input and output words without copies),
 * synchronous upload/download/fill and shape accessors. Buffers are
 * contiguous; a view is an offset plus a shape. */
#include "core/internal.h"

#include <stdlib.h>
#include <string.h>

int64_t mlxn_numel(int ndim, const int64_t *shape) {
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    return n;
}

void mlxn_buffer_rows_cols(const mlxn_buffer *b, int64_t *rows, int64_t *cols) {
    if (b->ndim == 0) { *rows = 1; *cols = 1; return; }
    *cols = b->shape[b->ndim - 1];
    *rows = mlxn_numel(b->ndim - 1, b->shape);
}

/* Validate dtype/ndim/shape and compute the byte size. */
static mlxn_status shape_bytes(const char *what, mlxn_dtype t, int ndim, const int64_t *shape, size_t *bytes) {
    if ((unsigned)t >= MLXN_DTYPE_COUNT)
        return mlxn_set_error(MLXN_ERR_DTYPE, "%s: invalid dtype %d", what, (int)t);
    if (ndim < 0 || ndim > MLXN_MAX_DIMS)
        return mlxn_set_error(MLXN_ERR_SHAPE, "%s: ndim %d outside [0, %d]", what, ndim, MLXN_MAX_DIMS);
    if (ndim > 0 && !shape) return mlxn_set_error(MLXN_ERR_INVALID_ARG, "%s: shape is NULL", what);
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0)
            return mlxn_set_error(MLXN_ERR_SHAPE, "%s: dim %d is negative (%lld)", what, i, (long long)shape[i]);
        if (mlxn_mul_overflow_i64(n, shape[i], &n))
            return mlxn_set_error(MLXN_ERR_SHAPE, "%s: element count overflows at dim %d", what, i);
    }
    size_t b;
    if (mlxn_mul_overflow_size((size_t)n, mlxn_dtype_size(t), &b))
        return mlxn_set_error(MLXN_ERR_SHAPE, "%s: byte size overflows", what);
    *bytes = b;
    return MLXN_OK;
}

static mlxn_buffer *new_buffer(mlxn_storage *st, size_t offset, mlxn_dtype t, int ndim, const int64_t *shape) {
    mlxn_buffer *b = calloc(1, sizeof *b);
    if (!b) return NULL;
    atomic_init(&b->refcount, 1);
    b->storage = st;
    b->offset = offset;
    b->dtype = t;
    b->ndim = ndim;
    for (int i = 0; i < ndim; i++) b->shape[i] = shape[i];
    return b;
}

static void storage_release(mlxn_storage *st) {
    if (!st) return;
    if (atomic_fetch_sub(&st->refcount, 1) != 1) return;
    mlxn_device *d = st->device;
    if (st->mapped_host) {
        d->ops->free_mapped(d, st->mapped_host);
    } else if (st->owned && st->ptr) {
        d->ops->free(d, st->ptr);
        atomic_fetch_sub(&d->mem_in_use, st->bytes);
    }
    if (st->release) st->release(st->release_ctx);
    free(st);
}

void mlxn_storage_retain_internal(mlxn_storage *st) { atomic_fetch_add(&st->refcount, 1); }

mlxn_status mlxn_storage_alloc_internal(mlxn_device *d, size_t bytes, mlxn_storage **out) {
    mlxn_storage *st = calloc(1, sizeof *st);
    if (!st) return mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "buffer_alloc: out of host memory");
    atomic_init(&st->refcount, 1);
    st->device = d;
    st->bytes = bytes;
    st->owned = 1;
    mlxn_status s = d->ops->alloc(d, bytes ? bytes : 1, &st->ptr);
    if (s != MLXN_OK) { free(st); return s; }
    size_t now = atomic_fetch_add(&d->mem_in_use, bytes) + bytes;
    size_t peak = atomic_load(&d->mem_peak);
    while (now > peak && !atomic_compare_exchange_weak(&d->mem_peak, &peak, now)) {}
    *out = st;
    return MLXN_OK;
}

void mlxn_storage_release_internal(mlxn_storage *st) { storage_release(st); }

mlxn_status mlxn_buffer_alloc(mlxn_device *d, mlxn_dtype t, int ndim, const int64_t *shape, mlxn_buffer **out) {
    if (!d || !out) return mlxn_set_error(MLXN_ERR_INVALID_ARG, "buffer_alloc: device and out must not be NULL");
    *out = NULL;
    size_t bytes;
    MLXN_TRY(shape_bytes("buffer_alloc", t, ndim, shape, &bytes));
    mlxn_storage *st;
    MLXN_TRY(mlxn_storage_alloc_internal(d, bytes, &st));
    mlxn_buffer *b = new_buffer(st, 0, t, ndim, shape);
    if (!b) { storage_release(st); return mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "buffer_alloc: out of host memory"); }
    *out = b;
    return MLXN_OK;
}

mlxn_status mlxn_buffer_alloc_mapped(mlxn_device *d, mlxn_dtype t, int ndim, const int64_t *shape,
                                     mlxn_buffer **out) {
    if (!d || !out)
        return mlxn_set_error(MLXN_ERR_INVALID_ARG, "buffer_alloc_mapped: device and out must not be NULL");
    *out = NULL;
    if (!d->ops->alloc_mapped) return mlxn_buffer_alloc(d, t, ndim, shape, out); /* host memory already */
    size_t bytes;
    MLXN_TRY(shape_bytes("buffer_alloc_mapped", t, ndim, shape, &bytes));
    mlxn_storage *st = calloc(1, sizeof *st);
    if (!st) return mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "buffer_alloc_mapped: out of host memory");
    atomic_init(&st->refcount, 1);
    st->device = d;
    st->bytes = bytes;
    mlxn_status s = d->ops->alloc_mapped(d, bytes ? bytes : 1, &st->ptr, &st->mapped_host);
    if (s != MLXN_OK) { free(st); return s; }
    mlxn_buffer *b = new_buffer(st, 0, t, ndim, shape);
    if (!b) {
        storage_release(st);
        return mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "buffer_alloc_mapped: out of host memory");
    }
    *out = b;
    return MLXN_OK;
}

mlxn_status mlxn_buffer_view(mlxn_buffer *src, size_t byte_offset, mlxn_dtype t, int ndim, const int64_t *shape,
                             mlxn_buffer **out) {
    if (!src || !out) return mlxn_set_error(MLXN_ERR_INVALID_ARG, "buffer_view: buffer and out must not be NULL");
    *out = NULL;
    size_t bytes, have = mlxn_buffer_nbytes(src);
    MLXN_TRY(shape_bytes("buffer_view", t, ndim, shape, &bytes));
    if (byte_offset > have || bytes > have - byte_offset)
        return mlxn_set_error(MLXN_ERR_RANGE, "buffer_view: view of %zu bytes at offset %zu exceeds the %zu-byte buffer",
                              bytes, byte_offset, have);
    mlxn_buffer *b = new_buffer(src->storage, src->offset + byte_offset, t, ndim, shape);
    if (!b) return mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "buffer_view: out of host memory");
    atomic_fetch_add(&src->storage->refcount, 1);
    *out = b;
    return MLXN_OK;
}

mlxn_status mlxn_buffer_wrap_host(mlxn_device *d, void *ptr, mlxn_dtype t, int ndim, const int64_t *shape,
                                  void (*release)(void *ctx), void *ctx, mlxn_buffer **out) {
    if (!d || !out) return mlxn_set_error(MLXN_ERR_INVALID_ARG, "buffer_wrap_host: device and out must not be NULL");
    *out = NULL;
    if (strcmp(d->kind, "cpu") != 0 && strcmp(d->kind, "ref") != 0)
        return mlxn_set_error(MLXN_ERR_UNSUPPORTED, "buffer_wrap_host: device '%s' cannot wrap host memory (cpu/ref only)",
                              d->kind);
    size_t bytes;
    MLXN_TRY(shape_bytes("buffer_wrap_host", t, ndim, shape, &bytes));
    if (!ptr && bytes) return mlxn_set_error(MLXN_ERR_INVALID_ARG, "buffer_wrap_host: ptr is NULL");
    size_t align = mlxn_dtype_size(t);
    if (((uintptr_t)ptr) % align)
        return mlxn_set_error(MLXN_ERR_INVALID_ARG,
                              "buffer_wrap_host: pointer %p is not aligned to %zu bytes for dtype %s (copy the data instead)",
                              ptr, align, mlxn_dtype_name(t));
    mlxn_storage *st = calloc(1, sizeof *st);
    if (!st) return mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "buffer_wrap_host: out of host memory");
    atomic_init(&st->refcount, 1);
    st->device = d;
    st->ptr = ptr;
    st->bytes = bytes;
    st->release = release;
    st->release_ctx = ctx;
    st->owned = 0;
    mlxn_buffer *b = new_buffer(st, 0, t, ndim, shape);
    if (!b) { st->release = NULL; storage_release(st); return mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "buffer_wrap_host: out of host memory"); }
    *out = b;
    return MLXN_OK;
}

void mlxn_buffer_retain(mlxn_buffer *b) {
    if (b) atomic_fetch_add(&b->refcount, 1);
}

void mlxn_buffer_release(mlxn_buffer *b) {
    if (!b) return;
    if (atomic_fetch_sub(&b->refcount, 1) != 1) return;
    storage_release(b->storage);
    free(b);
}

static mlxn_status check_range(const char *what, const mlxn_buffer *b, size_t offset, size_t bytes) {
    size_t have = mlxn_buffer_nbytes(b);
    if (offset > have || bytes > have - offset)
        return mlxn_set_error(MLXN_ERR_RANGE, "%s: %zu bytes at offset %zu exceed the %zu-byte buffer", what, bytes,
                              offset, have);
    return MLXN_OK;
}

mlxn_status mlxn_buffer_upload(mlxn_buffer *b, size_t offset, const void *src, size_t bytes) {
    if (!b || (!src && bytes)) return mlxn_set_error(MLXN_ERR_INVALID_ARG, "buffer_upload: buffer or source is NULL");
    MLXN_TRY(check_range("buffer_upload", b, offset, bytes));
    if (!bytes) return MLXN_OK;
    mlxn_device *d = b->storage->device;
    return d->ops->upload(d, (char *)mlxn_buf_ptr(b) + offset, src, bytes);
}

mlxn_status mlxn_buffer_download(const mlxn_buffer *b, size_t offset, void *dst, size_t bytes) {
    if (!b || (!dst && bytes)) return mlxn_set_error(MLXN_ERR_INVALID_ARG, "buffer_download: buffer or destination is NULL");
    MLXN_TRY(check_range("buffer_download", b, offset, bytes));
    if (!bytes) return MLXN_OK;
    mlxn_device *d = b->storage->device;
    return d->ops->download(d, dst, (const char *)mlxn_buf_ptr(b) + offset, bytes);
}

mlxn_status mlxn_buffer_fill_bytes(mlxn_buffer *b, uint8_t byte) {
    if (!b) return mlxn_set_error(MLXN_ERR_INVALID_ARG, "buffer_fill_bytes: buffer is NULL");
    size_t n = mlxn_buffer_nbytes(b);
    if (!n) return MLXN_OK;
    mlxn_device *d = b->storage->device;
    return d->ops->fill_bytes(d, mlxn_buf_ptr(b), byte, n);
}

mlxn_dtype mlxn_buffer_dtype(const mlxn_buffer *b) { return b ? b->dtype : MLXN_DTYPE_COUNT; }
int mlxn_buffer_ndim(const mlxn_buffer *b) { return b ? b->ndim : -1; }
int64_t mlxn_buffer_dim(const mlxn_buffer *b, int axis) {
    if (!b) return -1;
    if (axis < 0) axis += b->ndim;
    if (axis < 0 || axis >= b->ndim) return -1;
    return b->shape[axis];
}
int64_t mlxn_buffer_numel(const mlxn_buffer *b) { return b ? mlxn_numel(b->ndim, b->shape) : 0; }
size_t mlxn_buffer_nbytes(const mlxn_buffer *b) {
    return b ? (size_t)mlxn_numel(b->ndim, b->shape) * mlxn_dtype_size(b->dtype) : 0;
}
mlxn_device *mlxn_buffer_device(const mlxn_buffer *b) { return b ? b->storage->device : NULL; }
void *mlxn_buffer_host_ptr(const mlxn_buffer *b) {
    if (!b) return NULL;
    if (b->storage->mapped_host) return (char *)b->storage->mapped_host + b->offset;
    const char *k = b->storage->device->kind;
    if (strcmp(k, "cpu") != 0 && strcmp(k, "ref") != 0) return NULL;
    return mlxn_buf_ptr(b);
}
