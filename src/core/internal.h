/* internal.h — the library's private core: error reporting helpers, the
 * concrete layout of devices, buffers, weights and sessions, the op record
 * that every validated op becomes, and the backend interface (a table of
 * function pointers; a NULL entry means the backend does not support that
 * op). Backends (cpu/, cuda/, ref/) include this; nothing public does. */
#ifndef MLXN_INTERNAL_H
#define MLXN_INTERNAL_H

#include "mlxn.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---------------------------------------------------------------- errors */

/* Set the thread-local error detail (printf-style) and return `code`. */
mlxn_status mlxn_set_error(mlxn_status code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prefix the current detail with "context: " (e.g. a file or tensor name); returns code. */
mlxn_status mlxn_error_prefix(mlxn_status code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void mlxn_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int mlxn_log_enabled(int level);

#define MLXN_TRY(expr)                      \
    do {                                    \
        mlxn_status _st = (expr);           \
        if (_st != MLXN_OK) return _st;     \
    } while (0)

#ifdef NDEBUG
#define MLXN_ASSERT(c) ((void)0)
#else
#include <assert.h>
#define MLXN_ASSERT(c) assert(c)
#endif

/* Format a shape as "[2, 3, 4]" into buf (returns buf). */
const char *mlxn_shape_str(char *buf, size_t cap, int ndim, const int64_t *shape);
#define MLXN_SHAPE_STR_CAP 96

/* Checked size arithmetic: return false on overflow. */
static inline bool mlxn_mul_overflow_i64(int64_t a, int64_t b, int64_t *out) {
    return __builtin_mul_overflow(a, b, out);
}
static inline bool mlxn_mul_overflow_size(size_t a, size_t b, size_t *out) {
    return __builtin_mul_overflow(a, b, out);
}

/* ---------------------------------------------------------------- half floats (host) */

static inline float mlxn_half_to_float_inline(uint16_t h);
static inline float mlxn_bf16_to_float_inline(uint16_t b) {
    union { uint32_t u; float f; } v = { (uint32_t)b << 16 };
    return v.f;
}

/* ---------------------------------------------------------------- objects */

typedef struct mlxn_backend_ops mlxn_backend_ops;

struct mlxn_device {
    const mlxn_backend_ops *ops;
    char kind[16];          /* "cpu", "cuda", "ref" */
    char description[160];
    void *impl;             /* backend state */
    _Atomic size_t mem_in_use;
    _Atomic size_t mem_peak;
};

/* One device allocation, shared by a buffer and its views. */
typedef struct mlxn_storage {
    _Atomic int refcount;
    mlxn_device *device;
    void *ptr;              /* host pointer (cpu/ref) or device address (cuda, as uintptr) */
    size_t bytes;
    void (*release)(void *ctx); /* wrapped host memory: called on last release */
    void *release_ctx;
    int owned;              /* 1: free through the backend; 0: wrapped or pool-owned */
    void *mapped_host;      /* mapped storage (cuda): the CPU's view of ptr; freed by free_mapped */
    struct mlxn_pool *pool; /* non-NULL: storage is a pool block (pool frees it) */
} mlxn_storage;

struct mlxn_buffer {
    _Atomic int refcount;
    mlxn_storage *storage;
    size_t offset;          /* bytes from storage->ptr */
    mlxn_dtype dtype;
    int ndim;
    int64_t shape[MLXN_MAX_DIMS];
};

/* Storage helpers shared by buffer.c and pool.c. */
mlxn_status mlxn_storage_alloc_internal(mlxn_device *d, size_t bytes, mlxn_storage **out);
void mlxn_storage_retain_internal(mlxn_storage *st);
void mlxn_storage_release_internal(mlxn_storage *st);

/* Address of a buffer's first byte (host pointer, or device address cast). */
static inline void *mlxn_buf_ptr(const mlxn_buffer *b) {
    return (char *)b->storage->ptr + b->offset;
}
static inline uintptr_t mlxn_buf_addr(const mlxn_buffer *b) {
    return (uintptr_t)b->storage->ptr + b->offset;
}
int64_t mlxn_numel(int ndim, const int64_t *shape);
/* rows = product of all but the last dim; cols = last dim (1 and numel for ndim 0). */
void mlxn_buffer_rows_cols(const mlxn_buffer *b, int64_t *rows, int64_t *cols);

struct mlxn_weight {
    mlxn_weight_desc desc;  /* buffers retained; name points at name_buf */
    char name_buf[128];
    int64_t row_bytes;      /* bytes of one row of `data` */
    void *backend_cache;    /* backend-owned prepared form (e.g. a repacked layout) */
    void (*backend_cache_free)(void *);
};

/* ---------------------------------------------------------------- op records */

typedef enum mlxn_op_kind {
    MLXN_OP_ADD,
    MLXN_OP_MUL,
    MLXN_OP_SCALE,
    MLXN_OP_SILU,
    MLXN_OP_GELU,
    MLXN_OP_SILU_MUL,
    MLXN_OP_GELU_MUL,
    MLXN_OP_SOFTCAP,
    MLXN_OP_CAST,
    MLXN_OP_RMS_NORM,
    MLXN_OP_RMS_NORM_RESIDUAL,
    MLXN_OP_LAYER_NORM,
    MLXN_OP_L2_NORM,
    MLXN_OP_ROPE,
    MLXN_OP_SOFTMAX,
    MLXN_OP_ARGMAX,
    MLXN_OP_TOPK,
    MLXN_OP_EMBEDDING,
    MLXN_OP_MATMUL,
    MLXN_OP_DEQUANTIZE,
    MLXN_OP_ATTENTION,
    MLXN_OP_KV_APPEND,
    MLXN_OP_IM2COL_2D_3CH,
    MLXN_OP_ROPE_KV_APPEND,
    MLXN_OP_MATMUL_FUSED,
    MLXN_OP_ROPE_KV_ATTENTION,
    MLXN_OP_COPY,
    MLXN_OP_COUNT
} mlxn_op_kind;

const char *mlxn_op_name(mlxn_op_kind k);

#define MLXN_OP_MAX_OUT 3

/* A validated op: inputs, outputs and parameters. Field use per op:
 *  ADD, MUL:           in[0]=a, in[1]=b, out[0]=y
 *  SCALE, SOFTCAP:     in[0]=x, f[0]=alpha|cap, out[0]=y
 *  SILU, CAST:         in[0]=x, out[0]=y
 *  COPY:               in[0]=src, out[0]=dst (same dtype and element count, no overlap)
 *  GELU:               in[0]=x, i[0]=kind, out[0]=y
 *  SILU_MUL:           in[0]=gate, in[1]=up, out[0]=y
 *  GELU_MUL:           in[0]=gate, in[1]=up, i[0]=kind, out[0]=y
 *  RMS_NORM:           in[0]=x, in[1]=weight|NULL, f[0]=eps, out[0]=y
 *  RMS_NORM_RESIDUAL:  in[0]=x, in[1]=residual, in[2]=weight|NULL, f[0]=eps, out[0]=sum, out[1]=y
 *  LAYER_NORM:         in[0]=x, in[1]=weight|NULL, in[2]=bias|NULL, f[0]=eps, out[0]=y
 *  L2_NORM:            in[0]=x, f[0]=eps, out[0]=y
 *  ROPE:               in[0]=x [T,H,D], in[1]=positions, p.rope, out[0]=y
 *  SOFTMAX:            in[0]=x, in[1]=mask|NULL, f[0]=scale, out[0]=y
 *  ARGMAX:             in[0]=x, out[0]=idx
 *  TOPK:               in[0]=x, i[0]=k, out[0]=values|NULL, out[1]=idx
 *  EMBEDDING:          w, in[0]=ids, out[0]=y
 *  MATMUL:             w, in[0]=x, out[0]=y
 *  DEQUANTIZE:         w, out[0]=y
 *  ATTENTION:          in[0]=q, in[1]=k_cache, in[2]=v_cache, in[3]=positions|NULL, p.attn, out[0]=out
 *  KV_APPEND:          in[0]=src, in[1]=positions, i[0]=ring, out[0]=cache
 *  IM2COL_2D_3CH:      in[0]=image, i[0]=patch_size, out[0]=out
 *  ROPE_KV_APPEND:     in[0]=q, in[1]=k (both rotated in place), in[2]=v, in[3]=positions, p.rope (rot_dims
 *                      resolved), i[0]=ring, out[0]=k_cache, out[1]=v_cache. Optional: without a backend
 *                      kernel the op layer runs rope, rope, kv_append, kv_append.
 *  MATMUL_FUSED:       w, in[0]=x, in[1]=norm|NULL, in[2]=residual|NULL, f[0]=norm eps, i[0]=swiglu,
 *                      out[0]=y. Optional: the op layer dispatches it only where the backend's
 *                      fusable() says yes, and otherwise runs rms_norm, matmul, silu_mul, add.
 *  ROPE_KV_ATTENTION:  in[0]=q, in[1]=k (their contents afterwards unspecified), in[2]=v,
 *                      in[3]=positions, p.rope (rot_dims resolved), p.attn (p.attn.ring also
 *                      the append's), out[0]=out, out[1]=k_cache, out[2]=v_cache. Optional,
 *                      like MATMUL_FUSED: otherwise rope_kv_append, then attention.
 * Validation guarantees the shapes/dtypes documented in mlxn.h. */
typedef struct mlxn_op {
    mlxn_op_kind kind;
    const mlxn_buffer *in[4];
    mlxn_buffer *out[MLXN_OP_MAX_OUT];
    const mlxn_weight *w;
    float f[2];
    int i[2];
    struct { /* ROPE_KV_ATTENTION uses both */
        mlxn_rope_params rope;
        mlxn_attention_params attn;
    } p;
} mlxn_op;

/* ---------------------------------------------------------------- backend interface */

typedef mlxn_status (*mlxn_op_fn)(mlxn_session *s, const mlxn_op *op);

struct mlxn_backend_ops {
    const char *name;
    /* memory */
    mlxn_status (*alloc)(mlxn_device *d, size_t bytes, void **ptr);
    void (*free)(mlxn_device *d, void *ptr);
    mlxn_status (*upload)(mlxn_device *d, void *dst, const void *src, size_t bytes);
    mlxn_status (*download)(mlxn_device *d, void *dst, const void *src, size_t bytes);
    mlxn_status (*fill_bytes)(mlxn_device *d, void *dst, uint8_t byte, size_t bytes);
    /* Optional: host memory the device reads and writes in place (*ptr: the
     * device's address, *host: the CPU's); NULL = ordinary allocations are
     * host memory already (cpu/ref). */
    mlxn_status (*alloc_mapped)(mlxn_device *d, size_t bytes, void **ptr, void **host);
    void (*free_mapped)(mlxn_device *d, void *host);
    void (*close)(mlxn_device *d);
    /* sessions: begin creates backend state in s->impl; finish waits. */
    mlxn_status (*session_begin)(mlxn_session *s);
    mlxn_status (*session_finish)(mlxn_session *s);
    void (*session_destroy)(mlxn_session *s);
    /* graphs (optional; NULL = the core records an op list and replays it
     * through op[]): begin/end capture on the session; replay; destroy. */
    mlxn_status (*graph_begin)(mlxn_session *s);
    mlxn_status (*graph_end)(mlxn_session *s, void **graph_impl);
    mlxn_status (*graph_replay)(mlxn_session *s, void *graph_impl);
    void (*graph_destroy)(void *graph_impl);
    /* ops, indexed by mlxn_op_kind; NULL = unsupported */
    mlxn_op_fn op[MLXN_OP_COUNT];
    /* Optional: the backend may reject an op it cannot run with these dtypes
     * or sizes before it is enqueued (return MLXN_ERR_UNSUPPORTED + message). */
    mlxn_status (*op_supported)(mlxn_device *d, const mlxn_op *op);
    /* Optional: 1 when the backend runs this validated optional fused op
     * (MATMUL_FUSED, ROPE_KV_ATTENTION) itself; 0 sends it to the op
     * layer's decomposition. Must depend only on the op's shapes, dtypes,
     * formats and addresses (graphs replay the choice). Sets no error. */
    int (*fusable)(mlxn_session *s, const mlxn_op *op);
};

struct mlxn_session {
    mlxn_device *device;
    void *impl;               /* backend state */
    int recording;            /* between graph_begin_record and graph_end_record */
    /* core-recorded op list (backends without graph hooks) */
    mlxn_op *rec_ops;
    size_t rec_count, rec_cap;
    mlxn_status deferred;     /* first error raised while recording */
};

struct mlxn_graph {
    mlxn_device *device;
    void *impl;               /* backend graph, or NULL for a core op list */
    mlxn_op *ops;             /* core op list (buffers/weights retained) */
    size_t count;
};

/* Backend entry points (each returns MLXN_ERR_UNSUPPORTED with the reason if unusable). */
mlxn_status mlxn_cpu_device_open(const mlxn_device_opts *opts, mlxn_device *d);
mlxn_status mlxn_ref_device_open(const mlxn_device_opts *opts, mlxn_device *d);
mlxn_status mlxn_cuda_device_open(int ordinal, const mlxn_device_opts *opts, mlxn_device *d);

/* 1 when mlxn_matmul_fused(s, x, w, f, y) runs as one backend kernel rather
 * than as the separate ops (the model runner plans its decode step by it). */
int mlxn_matmul_fused_native(mlxn_session *s, const mlxn_buffer *x, const mlxn_weight *w, const mlxn_matmul_fusion *f,
                             const mlxn_buffer *y);

/* Dispatch a validated op (used by src/ops/): records or runs it. */
mlxn_status mlxn_dispatch(mlxn_session *s, const mlxn_op *op);

/* ---------------------------------------------------------------- shared numeric helpers */

/* Geometry of a weight row in bytes (for MLX: packed bytes; GGUF: blocks). */
int64_t mlxn_weight_row_bytes(const mlxn_weight_desc *d);

/* Unpack n LSB-first `bits`-wide MLX codes (bits 2..8; n a multiple of 8)
 * from p into one byte each. */
void mlxn_unpack_codes(const uint8_t *p, int64_t n, int bits, uint8_t *q);

/* Dequantize rows [r0, r0+nrows) of a weight whose storage is host-visible
 * (CPU/ref). out: [nrows, cols] f32. */
mlxn_status mlxn_weight_dequant_rows_host(const mlxn_weight *w, int64_t r0, int64_t nrows, float *out);

static inline float mlxn_half_to_float_inline(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t mant = h & 0x3ffu;
    union { uint32_t u; float f; } v;
    if (exp == 0) {
        if (mant == 0) { v.u = sign; return v.f; }
        /* subnormal: value = mant * 2^-24 */
        float f = (float)mant * 5.9604644775390625e-8f;
        return sign ? -f : f;
    } else if (exp == 31) {
        v.u = sign | 0x7f800000u | (mant << 13);
        return v.f;
    }
    v.u = sign | ((exp + 112u) << 23) | (mant << 13);
    return v.f;
}

/* Load element i of a float buffer of dtype t (f32/f16/bf16) as f32 (host). */
static inline float mlxn_load_f(const void *p, mlxn_dtype t, int64_t i) {
    switch (t) {
    case MLXN_F32: return ((const float *)p)[i];
    case MLXN_F16: return mlxn_half_to_float_inline(((const uint16_t *)p)[i]);
    case MLXN_BF16: return mlxn_bf16_to_float_inline(((const uint16_t *)p)[i]);
    default: return 0.0f;
    }
}
/* Store f32 v as element i of dtype t (f32/f16/bf16, round to nearest even). */
static inline void mlxn_store_f(void *p, mlxn_dtype t, int64_t i, float v) {
    switch (t) {
    case MLXN_F32: ((float *)p)[i] = v; break;
    case MLXN_F16: ((uint16_t *)p)[i] = mlxn_f32_to_f16(v); break;
    case MLXN_BF16: ((uint16_t *)p)[i] = mlxn_f32_to_bf16(v); break;
    default: break;
    }
}

#endif /* MLXN_INTERNAL_H */
