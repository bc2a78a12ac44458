/* pool.c — a scratch arena with power-of-two size buckets. Blocks are
 * device allocations kept across resets; mlxn_pool_alloc hands out a view of
 * a free block of the smallest fitting bucket (allocating one if none is
 * free), mlxn_pool_reset marks every block free again. Views hold a reference
 * on their block's storage, so a released pool never frees memory in use. */
#include "core/internal.h"

#include <stdlib.h>

#define POOL_MIN_LOG2 8 /* 256-byte minimum block (keeps every view 256-byte aligned) */
#define POOL_BUCKETS 48

typedef struct pool_block {
    mlxn_buffer *whole; /* u8 [2^log2] */
    int in_use;
} pool_block;

typedef struct pool_bucket {
    pool_block *blocks;
    int count, cap;
} pool_bucket;

struct mlxn_pool {
    mlxn_device *device;
    pool_bucket buckets[POOL_BUCKETS];
    size_t reserved;
};

mlxn_status mlxn_pool_create(mlxn_device *d, mlxn_pool **out) {
    if (!d || !out) return mlxn_set_error(MLXN_ERR_INVALID_ARG, "pool_create: device and out must not be NULL");
    mlxn_pool *p = calloc(1, sizeof *p);
    if (!p) return mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "pool_create: out of host memory");
    p->device = d;
    *out = p;
    return MLXN_OK;
}

void mlxn_pool_destroy(mlxn_pool *p) {
    if (!p) return;
    for (int b = 0; b < POOL_BUCKETS; b++) {
        for (int i = 0; i < p->buckets[b].count; i++) mlxn_buffer_release(p->buckets[b].blocks[i].whole);
        free(p->buckets[b].blocks);
    }
    free(p);
}

mlxn_status mlxn_pool_alloc(mlxn_pool *p, mlxn_dtype t, int ndim, const int64_t *shape, mlxn_buffer **out) {
    if (!p || !out) return mlxn_set_error(MLXN_ERR_INVALID_ARG, "pool_alloc: pool and out must not be NULL");
    *out = NULL;
    if ((unsigned)t >= MLXN_DTYPE_COUNT) return mlxn_set_error(MLXN_ERR_DTYPE, "pool_alloc: invalid dtype %d", (int)t);
    if (ndim < 0 || ndim > MLXN_MAX_DIMS || (ndim && !shape))
        return mlxn_set_error(MLXN_ERR_SHAPE, "pool_alloc: ndim %d outside [0, %d] or shape NULL", ndim, MLXN_MAX_DIMS);
    int64_t n = 1;
    for (int i = 0; i < ndim; i++)
        if (shape[i] < 0 || mlxn_mul_overflow_i64(n, shape[i], &n))
            return mlxn_set_error(MLXN_ERR_SHAPE, "pool_alloc: bad or overflowing dim %d (%lld)", i, (long long)shape[i]);
    size_t bytes;
    if (mlxn_mul_overflow_size((size_t)n, mlxn_dtype_size(t), &bytes))
        return mlxn_set_error(MLXN_ERR_SHAPE, "pool_alloc: byte size overflows");
    int lg = POOL_MIN_LOG2;
    while (lg < POOL_BUCKETS && ((size_t)1 << lg) < bytes) lg++;
    if (lg >= POOL_BUCKETS) return mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "pool_alloc: %zu bytes is too large", bytes);
    pool_bucket *bk = &p->buckets[lg];
    pool_block *blk = NULL;
    for (int i = 0; i < bk->count; i++)
        if (!bk->blocks[i].in_use) { blk = &bk->blocks[i]; break; }
    if (!blk) {
        if (bk->count == bk->cap) {
            int cap = bk->cap ? bk->cap * 2 : 4;
            pool_block *nb = realloc(bk->blocks, (size_t)cap * sizeof *nb);
            if (!nb) return mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "pool_alloc: out of host memory");
            bk->blocks = nb;
            bk->cap = cap;
        }
        int64_t sz = (int64_t)1 << lg;
        mlxn_buffer *whole;
        MLXN_TRY(mlxn_buffer_alloc(p->device, MLXN_U8, 1, &sz, &whole));
        blk = &bk->blocks[bk->count++];
        blk->whole = whole;
        blk->in_use = 0;
        p->reserved += (size_t)sz;
    }
    MLXN_TRY(mlxn_buffer_view(blk->whole, 0, t, ndim, shape, out));
    blk->in_use = 1;
    return MLXN_OK;
}

void mlxn_pool_reset(mlxn_pool *p) {
    if (!p) return;
    for (int b = 0; b < POOL_BUCKETS; b++)
        for (int i = 0; i < p->buckets[b].count; i++) p->buckets[b].blocks[i].in_use = 0;
}

size_t mlxn_pool_reserved_bytes(const mlxn_pool *p) { return p ? p->reserved : 0; }
