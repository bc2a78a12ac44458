/* cpu_backend.h — the CPU backend's private interface: the persistent
 * thread pool (parallel_for over an index range, deterministic split for a
 * fixed thread count), run-time SIMD feature flags, and the per-op entry
 * points that cpu_device.c puts in the backend table. Op implementations
 * live in cpu_*.c files beside this one. */
#ifndef MLXN_CPU_BACKEND_H
#define MLXN_CPU_BACKEND_H

#include "core/internal.h"

typedef struct mlxn_cpu_features {
    int avx2, fma, f16c, avx512f, avx512bw, avx512vl, avx512vnni, avx512bf16, avxvnni;
} mlxn_cpu_features;

typedef struct mlxn_cpu_pool mlxn_cpu_pool;

typedef struct mlxn_cpu_device {
    mlxn_cpu_features feat;
    int n_threads;
    mlxn_cpu_pool *pool;
} mlxn_cpu_device;

static inline mlxn_cpu_device *mlxn_cpu_dev(mlxn_device *d) { return (mlxn_cpu_device *)d->impl; }
static inline mlxn_cpu_device *mlxn_cpu_sess_dev(mlxn_session *s) { return (mlxn_cpu_device *)s->device->impl; }

/* Run fn(ctx, begin, end, thread_index) over [0, n) split into contiguous
 * chunks of at least `grain` items across the pool's threads (the caller
 * thread takes part). Chunk boundaries depend only on n, grain and the thread
 * count, so results are deterministic for a fixed thread count. Blocks until
 * all chunks are done. Not reentrant: do not call from inside fn. */
typedef void (*mlxn_cpu_range_fn)(void *ctx, int64_t begin, int64_t end, int thread);
void mlxn_cpu_parallel_for(mlxn_cpu_device *dev, int64_t n, int64_t grain, mlxn_cpu_range_fn fn, void *ctx);

/* Detected once per process. */
const mlxn_cpu_features *mlxn_cpu_detect_features(void);

/* Per-op entry points, listed in cpu_device.c's backend table. */
#define MLXN_CPU_OP(name) mlxn_status mlxn_cpu_##name(mlxn_session *s, const mlxn_op *op)
MLXN_CPU_OP(add); MLXN_CPU_OP(mul); MLXN_CPU_OP(scale); MLXN_CPU_OP(silu); MLXN_CPU_OP(gelu);
MLXN_CPU_OP(silu_mul); MLXN_CPU_OP(gelu_mul); MLXN_CPU_OP(softcap); MLXN_CPU_OP(cast);
MLXN_CPU_OP(rms_norm); MLXN_CPU_OP(rms_norm_residual); MLXN_CPU_OP(layer_norm); MLXN_CPU_OP(l2_norm);
MLXN_CPU_OP(rope); MLXN_CPU_OP(softmax); MLXN_CPU_OP(argmax); MLXN_CPU_OP(topk);
MLXN_CPU_OP(embedding); MLXN_CPU_OP(matmul); MLXN_CPU_OP(dequantize);
MLXN_CPU_OP(attention); MLXN_CPU_OP(kv_append); MLXN_CPU_OP(im2col_2d_3ch);

#endif
