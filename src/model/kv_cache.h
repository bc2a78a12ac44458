/* kv_cache.h — the key/value cache of a decoder: for every layer one K and
 * one V buffer [n_kv_heads, capacity, head_dim] on the model's device, in
 * f32, f16 or bf16, written by mlxn_kv_append at each token's absolute
 * position (slot = position; no ring) and read by mlxn_attention. The cache
 * only tracks how many positions are filled (n_past); keeping, trimming or
 * clearing a prefix is a matter of setting n_past, because attention reads
 * keys 0..max(query position). */
#ifndef MLXN_MODEL_KV_CACHE_H
#define MLXN_MODEL_KV_CACHE_H

#include <stddef.h>
#include <stdint.h>
#include "mlxn.h"

typedef struct mlxn_kv_cache {
    int n_layers, n_kv_heads, head_dim;
    int capacity;         /* positions per layer */
    int n_past;           /* positions 0..n_past-1 hold valid K/V */
    mlxn_dtype dtype;
    mlxn_buffer **k;      /* [n_layers] each [Hkv, C, D] */
    mlxn_buffer **v;      /* [n_layers] each [Hkv, C, D] */
} mlxn_kv_cache;

/* dtype: MLXN_F32, MLXN_F16 or MLXN_BF16. Errors name the sizes when the
 * allocation fails. */
mlxn_status mlxn_kv_cache_create(mlxn_device *dev, int n_layers, int n_kv_heads, int head_dim, int capacity,
                                 mlxn_dtype dtype, mlxn_kv_cache **out);
void mlxn_kv_cache_free(mlxn_kv_cache *kv);
/* Forget everything after the first n positions (n <= n_past). */
void mlxn_kv_cache_truncate(mlxn_kv_cache *kv, int n);
size_t mlxn_kv_cache_nbytes(const mlxn_kv_cache *kv);

#endif
