/* kv_cache.c — allocation and bookkeeping of the per-layer K/V buffers
 * (see kv_cache.h). The buffers are left uninitialised: attention only reads
 * positions that kv_append has written. */
#include "model/kv_cache.h"

#include <stdlib.h>

#include "core/internal.h"

mlxn_status mlxn_kv_cache_create(mlxn_device *dev, int n_layers, int n_kv_heads, int head_dim, int capacity,
                                 mlxn_dtype dtype, mlxn_kv_cache **out) {
    if (!dev || !out) return mlxn_set_error(MLXN_ERR_INVALID_ARG, "kv_cache_create: NULL argument");
    *out = NULL;
    if (n_layers <= 0 || n_kv_heads <= 0 || head_dim <= 0 || capacity <= 0)
        return mlxn_set_error(MLXN_ERR_INVALID_ARG,
                              "kv_cache_create: sizes must be positive (layers %d, kv heads %d, head dim %d, "
                              "capacity %d)", n_layers, n_kv_heads, head_dim, capacity);
    if (dtype != MLXN_F32 && dtype != MLXN_F16 && dtype != MLXN_BF16)
        return mlxn_set_error(MLXN_ERR_DTYPE, "kv_cache_create: dtype %s (want f32, f16 or bf16)",
                              mlxn_dtype_name(dtype));
    mlxn_kv_cache *kv = calloc(1, sizeof(*kv));
    if (!kv) return mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "kv_cache_create: out of host memory");
    kv->n_layers = n_layers;
    kv->n_kv_heads = n_kv_heads;
    kv->head_dim = head_dim;
    kv->capacity = capacity;
    kv->dtype = dtype;
    kv->k = calloc((size_t)n_layers, sizeof(mlxn_buffer *));
    kv->v = calloc((size_t)n_layers, sizeof(mlxn_buffer *));
    if (!kv->k || !kv->v) {
        mlxn_kv_cache_free(kv);
        return mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "kv_cache_create: out of host memory");
    }
    int64_t shape[3] = { n_kv_heads, capacity, head_dim }; // [Hkv, C, D]
    for (int l = 0; l < n_layers; l++) {
        mlxn_status st = mlxn_buffer_alloc(dev, dtype, 3, shape, &kv->k[l]);
        if (st == MLXN_OK) st = mlxn_buffer_alloc(dev, dtype, 3, shape, &kv->v[l]);
        if (st != MLXN_OK) {
            size_t per = (size_t)n_kv_heads * (size_t)capacity * (size_t)head_dim * mlxn_dtype_size(dtype);
            mlxn_kv_cache_free(kv);
            return mlxn_error_prefix(st, "kv cache (%d layers x 2 x %zu bytes, context %d)", n_layers, per,
                                     capacity);
        }
    }
    *out = kv;
    return MLXN_OK;
}

void mlxn_kv_cache_free(mlxn_kv_cache *kv) {
    if (!kv) return;
    for (int l = 0; l < kv->n_layers; l++) {
        if (kv->k) mlxn_buffer_release(kv->k[l]);
        if (kv->v) mlxn_buffer_release(kv->v[l]);
    }
    free(kv->k);
    free(kv->v);
    free(kv);
}

void mlxn_kv_cache_truncate(mlxn_kv_cache *kv, int n) {
    if (kv && n >= 0 && n < kv->n_past) kv->n_past = n;
}

size_t mlxn_kv_cache_nbytes(const mlxn_kv_cache *kv) {
    if (!kv) return 0;
    return (size_t)kv->n_layers * 2 * (size_t)kv->n_kv_heads * (size_t)kv->capacity * (size_t)kv->head_dim *
           mlxn_dtype_size(kv->dtype);
}
