/* mlxn.h — the public C API of mlxn: devices, buffers, a scratch pool,
 * sessions (batches of op dispatches with one wait), recorded graphs, the
 * weight abstraction (dense, MLX affine, GGUF block types) and the op
 * catalog. Every fallible call returns an mlxn_status; on failure a
 * human-readable detail naming the op/file/tensor and the offending values is
 * available from mlxn_last_error() (thread-local, valid until the next failing
 * call on the same thread). The library never exits, aborts or prints.
 *
 * Conventions: shapes are outermost first (numpy order), at most 4 dims,
 * buffers are contiguous (a view is a byte offset plus a shape). Ops take the
 * session first, then inputs, then outputs; parameters beyond two scalars go
 * in a const params struct. Destroy/release functions accept NULL. */
#ifndef MLXN_H
#define MLXN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#define MLXN_API
#else
#define MLXN_API __attribute__((visibility("default")))
#endif

#define MLXN_VERSION_MAJOR 0
#define MLXN_VERSION_MINOR 1
#define MLXN_VERSION_PATCH 0
#define MLXN_MAX_DIMS 4

/* ---------------------------------------------------------------- status */

typedef enum mlxn_status {
    MLXN_OK = 0,
    MLXN_ERR_INVALID_ARG = 1, /* a NULL pointer, a bad parameter value */
    MLXN_ERR_SHAPE = 2,       /* shapes do not match what the op needs */
    MLXN_ERR_DTYPE = 3,       /* a dtype the op does not take */
    MLXN_ERR_OUT_OF_MEMORY = 4,
    MLXN_ERR_IO = 5,          /* open/read/write/mmap failed */
    MLXN_ERR_FORMAT = 6,      /* a file's content is malformed or corrupt */
    MLXN_ERR_UNSUPPORTED = 7, /* valid, but not implemented here (names op, dtype, backend) */
    MLXN_ERR_DEVICE = 8,      /* a device/driver call failed */
    MLXN_ERR_NOT_FOUND = 9,   /* a named tensor, key, file or device is missing */
    MLXN_ERR_RANGE = 10,      /* an index or size out of range (e.g. prompt longer than context) */
    MLXN_ERR_STATE = 11,      /* call not valid in the object's current state */
    MLXN_ERR_INTERNAL = 12,
} mlxn_status;

/* Detail of the last failure on this thread ("" if none). */
MLXN_API const char *mlxn_last_error(void);
/* Symbolic name of a status, e.g. "MLXN_ERR_SHAPE". */
MLXN_API const char *mlxn_status_name(mlxn_status s);
MLXN_API void mlxn_clear_error(void);

/* Log callback: the library reports progress and diagnostics only through it.
 * Default: none (silent). level: 0 error, 1 warn, 2 info, 3 debug. */
typedef void (*mlxn_log_fn)(int level, const char *msg, void *user);
MLXN_API void mlxn_set_log(mlxn_log_fn fn, void *user, int max_level);

/* ---------------------------------------------------------------- dtypes */

typedef enum mlxn_dtype {
    MLXN_F32 = 0,
    MLXN_F16 = 1,
    MLXN_BF16 = 2,
    MLXN_U8 = 3,
    MLXN_I8 = 4,
    MLXN_U16 = 5,
    MLXN_I16 = 6,
    MLXN_U32 = 7,
    MLXN_I32 = 8,
    MLXN_I64 = 9,
    MLXN_DTYPE_COUNT
} mlxn_dtype;

MLXN_API size_t mlxn_dtype_size(mlxn_dtype t);
MLXN_API const char *mlxn_dtype_name(mlxn_dtype t);

/* Host-side scalar conversions (round to nearest even; NaN preserved). */
MLXN_API uint16_t mlxn_f32_to_f16(float f);
MLXN_API float mlxn_f16_to_f32(uint16_t h);
MLXN_API uint16_t mlxn_f32_to_bf16(float f);
MLXN_API float mlxn_bf16_to_f32(uint16_t b);

/* GGUF / ggml block types (values are the ggml type codes). */
typedef enum mlxn_gguf_type {
    MLXN_GGUF_F32 = 0,
    MLXN_GGUF_F16 = 1,
    MLXN_GGUF_Q4_0 = 2,
    MLXN_GGUF_Q4_1 = 3,
    MLXN_GGUF_Q5_0 = 6,
    MLXN_GGUF_Q5_1 = 7,
    MLXN_GGUF_Q8_0 = 8,
    MLXN_GGUF_Q8_1 = 9,
    MLXN_GGUF_Q2_K = 10,
    MLXN_GGUF_Q3_K = 11,
    MLXN_GGUF_Q4_K = 12,
    MLXN_GGUF_Q5_K = 13,
    MLXN_GGUF_Q6_K = 14,
    MLXN_GGUF_Q8_K = 15,
    MLXN_GGUF_I8 = 24,
    MLXN_GGUF_I16 = 25,
    MLXN_GGUF_I32 = 26,
    MLXN_GGUF_I64 = 27,
    MLXN_GGUF_F64 = 28,
    MLXN_GGUF_BF16 = 30,
    MLXN_GGUF_MXFP4 = 39,
} mlxn_gguf_type;

/* Block geometry of a GGUF type: values per block and bytes per block.
 * Returns 0 for both when the type is unknown. */
MLXN_API void mlxn_gguf_type_block(mlxn_gguf_type t, int64_t *block_values, int64_t *block_bytes);
MLXN_API const char *mlxn_gguf_type_name(mlxn_gguf_type t);

/* ---------------------------------------------------------------- devices */

typedef struct mlxn_device mlxn_device;
typedef struct mlxn_buffer mlxn_buffer;
typedef struct mlxn_pool mlxn_pool;
typedef struct mlxn_session mlxn_session;
typedef struct mlxn_graph mlxn_graph;
typedef struct mlxn_weight mlxn_weight;

typedef struct mlxn_device_opts {
    int n_threads;         /* CPU: worker threads; 0 = online cores */
    const char *cache_dir; /* CUDA: kernel cache dir; NULL = $MLXN_CACHE_DIR or ~/.cache/mlxn */
} mlxn_device_opts;

/* name: "cpu", "cuda", "cuda:N", "auto" (CUDA if usable, else CPU), or "ref"
 * (the naive scalar reference backend used as the test oracle; slow).
 * opts may be NULL. Without a usable GPU "cuda" fails with
 * MLXN_ERR_UNSUPPORTED and the reason. */
MLXN_API mlxn_status mlxn_device_open(const char *name, const mlxn_device_opts *opts, mlxn_device **out);
MLXN_API void mlxn_device_close(mlxn_device *d);
/* "cpu", "cuda", "ref" */
MLXN_API const char *mlxn_device_kind(const mlxn_device *d);
/* Human-readable description, e.g. "NVIDIA H100 80GB HBM3 (sm_90, 132 SMs)". */
MLXN_API const char *mlxn_device_description(const mlxn_device *d);
/* Bytes currently allocated on the device by mlxn, and the peak. */
MLXN_API void mlxn_device_memory(const mlxn_device *d, size_t *in_use, size_t *peak);

/* ---------------------------------------------------------------- buffers */

/* Allocate an uninitialised contiguous buffer. ndim in [0, 4]; ndim 0 is a scalar. */
MLXN_API mlxn_status mlxn_buffer_alloc(mlxn_device *d, mlxn_dtype t, int ndim, const int64_t *shape,
                                       mlxn_buffer **out);
/* A view sharing b's storage: byte_offset from b's start, new dtype and shape;
 * must lie inside b. Holds a reference on the storage. */
MLXN_API mlxn_status mlxn_buffer_view(mlxn_buffer *b, size_t byte_offset, mlxn_dtype t, int ndim,
                                      const int64_t *shape, mlxn_buffer **out);
/* CPU/ref devices only: wrap caller memory (no copy). release(ctx) runs when
 * the last reference goes away (may be NULL). ptr needs no particular alignment. */
MLXN_API mlxn_status mlxn_buffer_wrap_host(mlxn_device *d, void *ptr, mlxn_dtype t, int ndim,
                                           const int64_t *shape, void (*release)(void *ctx), void *ctx,
                                           mlxn_buffer **out);
/* Host memory that kernels read and write in place (CUDA: pinned and
 * mapped; CPU/ref: an ordinary buffer). mlxn_buffer_host_ptr gives the CPU's
 * view on every device: write inputs there before a session's ops run and
 * read outputs after mlxn_session_finish, never while the device may touch
 * it. For a few words per step (token ids, positions, a sampled id), which
 * mlxn_buffer_upload/download would move by DMA copies that cost tens of
 * microseconds each; device reads of it cross PCIe, so copy it into an
 * ordinary buffer (mlxn_copy) before many kernels read it. */
MLXN_API mlxn_status mlxn_buffer_alloc_mapped(mlxn_device *d, mlxn_dtype t, int ndim, const int64_t *shape,
                                              mlxn_buffer **out);
MLXN_API void mlxn_buffer_retain(mlxn_buffer *b);
MLXN_API void mlxn_buffer_release(mlxn_buffer *b);
/* Copy host bytes into the buffer at byte offset; bytes + offset <= nbytes. Synchronous. */
MLXN_API mlxn_status mlxn_buffer_upload(mlxn_buffer *b, size_t offset, const void *src, size_t bytes);
MLXN_API mlxn_status mlxn_buffer_download(const mlxn_buffer *b, size_t offset, void *dst, size_t bytes);
/* Fill every byte with `byte`. Synchronous. */
MLXN_API mlxn_status mlxn_buffer_fill_bytes(mlxn_buffer *b, uint8_t byte);

MLXN_API mlxn_dtype mlxn_buffer_dtype(const mlxn_buffer *b);
MLXN_API int mlxn_buffer_ndim(const mlxn_buffer *b);
MLXN_API int64_t mlxn_buffer_dim(const mlxn_buffer *b, int axis); /* negative axis counts from the end */
MLXN_API int64_t mlxn_buffer_numel(const mlxn_buffer *b);
MLXN_API size_t mlxn_buffer_nbytes(const mlxn_buffer *b);
MLXN_API mlxn_device *mlxn_buffer_device(const mlxn_buffer *b);
/* Host pointer for CPU/ref buffers and mapped buffers (and views of them);
 * NULL for other buffers on GPU devices. */
MLXN_API void *mlxn_buffer_host_ptr(const mlxn_buffer *b);

/* ---------------------------------------------------------------- pool */

/* A scratch arena with power-of-two size buckets. Buffers taken from it stay
 * valid until the next mlxn_pool_reset (then their storage is recycled; the
 * handles must still be released). */
MLXN_API mlxn_status mlxn_pool_create(mlxn_device *d, mlxn_pool **out);
MLXN_API void mlxn_pool_destroy(mlxn_pool *p);
MLXN_API mlxn_status mlxn_pool_alloc(mlxn_pool *p, mlxn_dtype t, int ndim, const int64_t *shape,
                                     mlxn_buffer **out);
MLXN_API void mlxn_pool_reset(mlxn_pool *p);
MLXN_API size_t mlxn_pool_reserved_bytes(const mlxn_pool *p);

/* ---------------------------------------------------------------- sessions and graphs */

/* A session is an ordered batch of op dispatches on one device (one CUDA
 * stream). Ops may run asynchronously; mlxn_session_finish waits for all of
 * them and returns the first asynchronous error. A session is reusable after
 * finish. Op calls validate before enqueueing: a failed call leaves the
 * session usable. */
MLXN_API mlxn_status mlxn_session_begin(mlxn_device *d, mlxn_session **out);
MLXN_API mlxn_status mlxn_session_finish(mlxn_session *s);
MLXN_API void mlxn_session_destroy(mlxn_session *s);
MLXN_API mlxn_device *mlxn_session_device(const mlxn_session *s);

/* Record the ops dispatched between begin and end into a graph instead of
 * running them; replay runs them again with the same buffers (whose contents
 * may change between replays: per-step values such as positions are read
 * from device memory). CUDA: CUDA Graph capture; CPU: an op list. */
MLXN_API mlxn_status mlxn_graph_begin_record(mlxn_session *s);
MLXN_API mlxn_status mlxn_graph_end_record(mlxn_session *s, mlxn_graph **out);
MLXN_API mlxn_status mlxn_graph_replay(mlxn_session *s, const mlxn_graph *g);
MLXN_API void mlxn_graph_destroy(mlxn_graph *g);

/* ---------------------------------------------------------------- weights */

typedef enum mlxn_weight_format {
    MLXN_WEIGHT_DENSE = 0,      /* data: [N, K] f32 | f16 | bf16 */
    MLXN_WEIGHT_MLX_AFFINE = 1, /* data: u32 [N, K*bits/32]; scales, biases: [N, K/group] f32|f16|bf16 */
    MLXN_WEIGHT_GGUF = 2,       /* data: u8 [N, K/block_values*block_bytes] rows of ggml blocks */
} mlxn_weight_format;

/* A weight is a logical matrix W [rows=N, cols=K] (matmul computes x·Wᵀ, an
 * embedding gathers rows). The desc's buffers are retained by the weight. */
typedef struct mlxn_weight_desc {
    mlxn_weight_format format;
    int64_t rows, cols;          /* N, K */
    mlxn_buffer *data;           /* see mlxn_weight_format; the buffer's own shape is not used */
    mlxn_buffer *scales;         /* MLX affine only */
    mlxn_buffer *biases;         /* MLX affine only */
    int bits;                    /* MLX affine: 2, 3, 4, 5, 6, 8 */
    int group_size;              /* MLX affine: 32, 64, 128 */
    mlxn_gguf_type gguf_type;    /* GGUF: Q4_0, Q4_1, Q8_0, Q4_K, Q5_K, Q6_K (F32/F16/BF16: use DENSE) */
    const char *name;            /* optional, for error messages (copied) */
} mlxn_weight_desc;

MLXN_API mlxn_status mlxn_weight_create(const mlxn_weight_desc *desc, mlxn_weight **out);
MLXN_API void mlxn_weight_destroy(mlxn_weight *w);
MLXN_API const mlxn_weight_desc *mlxn_weight_get_desc(const mlxn_weight *w);
/* Total bytes of the weight's storage (data + scales + biases). */
MLXN_API size_t mlxn_weight_nbytes(const mlxn_weight *w);

/* ---------------------------------------------------------------- ops: elementwise
 * Float ops take f32, f16 or bf16 (inputs and output of one dtype unless
 * stated), compute in f32, and allow y to alias an input of equal shape. */

/* y = a + b / a * b. b has a's shape, or b is [D] with D = a's last dim
 * (broadcast over rows). */
MLXN_API mlxn_status mlxn_add(mlxn_session *s, const mlxn_buffer *a, const mlxn_buffer *b, mlxn_buffer *y);
MLXN_API mlxn_status mlxn_mul(mlxn_session *s, const mlxn_buffer *a, const mlxn_buffer *b, mlxn_buffer *y);
/* y = alpha * x */
MLXN_API mlxn_status mlxn_scale(mlxn_session *s, const mlxn_buffer *x, float alpha, mlxn_buffer *y);
/* y = x * sigmoid(x) */
MLXN_API mlxn_status mlxn_silu(mlxn_session *s, const mlxn_buffer *x, mlxn_buffer *y);

typedef enum mlxn_gelu_kind { MLXN_GELU_ERF = 0, MLXN_GELU_TANH = 1 } mlxn_gelu_kind;
MLXN_API mlxn_status mlxn_gelu(mlxn_session *s, const mlxn_buffer *x, mlxn_gelu_kind kind, mlxn_buffer *y);
/* SwiGLU: y = silu(gate) * up; GeGLU: y = gelu(gate) * up. Same shapes. */
MLXN_API mlxn_status mlxn_silu_mul(mlxn_session *s, const mlxn_buffer *gate, const mlxn_buffer *up,
                                   mlxn_buffer *y);
MLXN_API mlxn_status mlxn_gelu_mul(mlxn_session *s, const mlxn_buffer *gate, const mlxn_buffer *up,
                                   mlxn_gelu_kind kind, mlxn_buffer *y);
/* y = cap * tanh(x / cap), cap > 0 */
MLXN_API mlxn_status mlxn_softcap(mlxn_session *s, const mlxn_buffer *x, float cap, mlxn_buffer *y);
/* y = x converted to y's dtype (f32, f16, bf16 in any direction; round to nearest even). */
MLXN_API mlxn_status mlxn_cast(mlxn_session *s, const mlxn_buffer *x, mlxn_buffer *y);
/* dst = src byte for byte: any dtype, same dtype and element count (shapes
 * may differ); src and dst must not overlap. */
MLXN_API mlxn_status mlxn_copy(mlxn_session *s, const mlxn_buffer *src, mlxn_buffer *dst);

/* ---------------------------------------------------------------- ops: normalization
 * x: [..., D]; rows are all leading dims. weight/bias: [D], may be NULL. */

/* y = x / sqrt(mean(x²) + eps) * weight */
MLXN_API mlxn_status mlxn_rms_norm(mlxn_session *s, const mlxn_buffer *x, const mlxn_buffer *weight, float eps,
                                   mlxn_buffer *y);
/* sum = x + residual (written, may alias x or residual); y = rms_norm(sum) * weight */
MLXN_API mlxn_status mlxn_rms_norm_residual(mlxn_session *s, const mlxn_buffer *x, const mlxn_buffer *residual,
                                            const mlxn_buffer *weight, float eps, mlxn_buffer *sum,
                                            mlxn_buffer *y);
/* y = (x - mean) / sqrt(var + eps) * weight + bias */
MLXN_API mlxn_status mlxn_layer_norm(mlxn_session *s, const mlxn_buffer *x, const mlxn_buffer *weight,
                                     const mlxn_buffer *bias, float eps, mlxn_buffer *y);
/* y = x / max(sqrt(sum(x²)), eps) */
MLXN_API mlxn_status mlxn_l2_norm(mlxn_session *s, const mlxn_buffer *x, float eps, mlxn_buffer *y);

/* ---------------------------------------------------------------- ops: rope */

typedef enum mlxn_rope_mode {
    MLXN_ROPE_ADJACENT = 0,   /* rotate pairs (2i, 2i+1): GGUF llama ("normal") */
    MLXN_ROPE_HALF_SPLIT = 1, /* rotate pairs (i, i + rot_dims/2): HF / MLX / neox */
} mlxn_rope_mode;

typedef enum mlxn_rope_scaling {
    MLXN_ROPE_SCALING_NONE = 0,
    MLXN_ROPE_SCALING_LINEAR = 1, /* positions divided by factor */
    MLXN_ROPE_SCALING_LLAMA3 = 2, /* Llama 3.x frequency-dependent scaling */
} mlxn_rope_scaling;

typedef struct mlxn_rope_params {
    mlxn_rope_mode mode;
    int rot_dims;          /* rotated leading dims of each head (even, <= head_dim); 0 = head_dim */
    float theta;           /* base, e.g. 10000 or 500000 */
    mlxn_rope_scaling scaling;
    float factor;          /* LINEAR and LLAMA3 */
    float low_freq_factor; /* LLAMA3 (e.g. 1) */
    float high_freq_factor;/* LLAMA3 (e.g. 4) */
    int original_max_pos;  /* LLAMA3 (e.g. 8192) */
} mlxn_rope_params;

/* x, y: [T, H, D] (f32, f16 or bf16, same dtype; y may alias x);
 * positions: i32 [T]. inv_freq[i] = theta^(-2i/rot_dims) (then scaled);
 * angle = pos * inv_freq[i]. Dims past rot_dims pass through unchanged. */
MLXN_API mlxn_status mlxn_rope(mlxn_session *s, const mlxn_buffer *x, const mlxn_buffer *positions,
                               const mlxn_rope_params *p, mlxn_buffer *y);

/* ---------------------------------------------------------------- ops: softmax, argmax, top-k */

/* x, y: [M, N] f32; y = softmax(scale * x + mask) over the last axis.
 * mask: NULL or f32 [M, N] or [N] (additive, -INFINITY allowed; a row that is
 * fully masked yields zeros). */
MLXN_API mlxn_status mlxn_softmax(mlxn_session *s, const mlxn_buffer *x, const mlxn_buffer *mask, float scale,
                                  mlxn_buffer *y);
/* x: [M, N] f32 -> idx: i32 [M]; ties go to the lowest index; NaN is ignored. */
MLXN_API mlxn_status mlxn_argmax(mlxn_session *s, const mlxn_buffer *x, mlxn_buffer *idx);
/* x: [M, N] f32 -> values f32 [M, k], idx i32 [M, k], sorted descending, ties to
 * the lower index; 1 <= k <= N. values may be NULL. */
MLXN_API mlxn_status mlxn_topk(mlxn_session *s, const mlxn_buffer *x, int k, mlxn_buffer *values,
                               mlxn_buffer *idx);

/* ---------------------------------------------------------------- ops: embedding, matmul */

/* ids: i32 [T] -> y: [T, K] (f32, f16 or bf16) = rows of w, dequantized.
 * An id outside [0, N) is an asynchronous error on GPUs (row zeroed) and a
 * returned MLXN_ERR_RANGE on CPU. */
MLXN_API mlxn_status mlxn_embedding(mlxn_session *s, const mlxn_weight *w, const mlxn_buffer *ids,
                                    mlxn_buffer *y);
/* y [M, N] f32 = x [M, K] f32 · Wᵀ, W [N, K] any weight format. */
MLXN_API mlxn_status mlxn_matmul(mlxn_session *s, const mlxn_buffer *x, const mlxn_weight *w, mlxn_buffer *y);
/* The decode step's matmul with its neighbours folded in:
 *   y = epilogue(prologue(x) · Wᵀ), x [M, K] f32, W [R, K] any weight format.
 * Prologue: with f->norm ([K] f32), x is RMS-normalised first, exactly
 * mlxn_rms_norm(x, f->norm, f->norm_eps). Epilogue: with f->swiglu, W's rows
 * are [gate; up] (R = 2N) and y [M, N] = silu(x·Wgateᵀ) * (x·Wupᵀ); else
 * y [M, N = R]. With f->residual ([M, N] f32, may alias y, not x), y =
 * residual + that. The results equal those separate ops (f32 rounding
 * aside). Backends without a fused kernel for the case (CUDA fuses one row
 * of x in MLX 4/8-bit, Q4_0, Q4_1 and Q8_0) run the separate ops through
 * scratch the caller gives: x_scratch [M, K] f32 when norm is set,
 * y_scratch [M, R] f32 when swiglu or residual is; their contents afterwards
 * are unspecified. */
typedef struct mlxn_matmul_fusion {
    const mlxn_buffer *norm;     /* [K] f32 RMS-norm weight, or NULL */
    float norm_eps;
    int swiglu;                  /* 1: y = silu(gate) * up over W's two row halves */
    const mlxn_buffer *residual; /* [M, N] f32 added to the result, or NULL */
    mlxn_buffer *x_scratch;      /* [M, K] f32 (with norm) */
    mlxn_buffer *y_scratch;      /* [M, R] f32 (with swiglu or residual) */
} mlxn_matmul_fusion;
MLXN_API mlxn_status mlxn_matmul_fused(mlxn_session *s, const mlxn_buffer *x, const mlxn_weight *w,
                                       const mlxn_matmul_fusion *f, mlxn_buffer *y);
/* y [N, K] (f32, f16 or bf16) = W dequantized. */
MLXN_API mlxn_status mlxn_dequantize(mlxn_session *s, const mlxn_weight *w, mlxn_buffer *y);

/* ---------------------------------------------------------------- ops: attention and KV cache */

typedef struct mlxn_attention_params {
    float scale;        /* usually 1/sqrt(head_dim) */
    float softcap;      /* 0 = none; else scores = softcap * tanh(scores / softcap) */
    int causal;         /* 1: key position <= query position */
    int window;         /* 0 = none; else keys with qpos - kpos >= window are masked */
    int ring;           /* 0: linear cache (slot = position); 1: ring buffer (slot = position % capacity) */
    int64_t kv_len;     /* used only when positions == NULL: keys 0..kv_len-1 */
    int64_t kv_bound;   /* 0, or a linear cache's bound B the caller guarantees: every position < B.
                         * A backend may size its work to B instead of the capacity (CUDA's decode
                         * kernel: its split grid, so a graph recorded with B serves every length up
                         * to B); on CUDA a position >= B raises an error (keys past it ignored) */
} mlxn_attention_params;

/* q: [T, Hq, D] f32; k_cache, v_cache: [Hkv, C, D] (f32, f16 or bf16, same);
 * positions: i32 [T], the absolute position of each query row, or NULL
 * (then query t sits at kv_len - T + t). The keys present are positions
 * 0..max(positions) (linear), or the last C of them (ring). Hq % Hkv == 0
 * (GQA: query head h reads KV head h / (Hq/Hkv)); D in {64, 128, 256} on the
 * fast paths (other even D up to 256 work). out: [T, Hq, D] f32. */
MLXN_API mlxn_status mlxn_attention(mlxn_session *s, const mlxn_buffer *q, const mlxn_buffer *k_cache,
                                    const mlxn_buffer *v_cache, const mlxn_buffer *positions,
                                    const mlxn_attention_params *p, mlxn_buffer *out);
/* Write new rows into a cache: src [T, Hkv, D] (f32, f16 or bf16) -> cache
 * [Hkv, C, D] (f32, f16 or bf16) at slot positions[t] (ring=0; must be < C)
 * or positions[t] % C (ring=1). */
MLXN_API mlxn_status mlxn_kv_append(mlxn_session *s, const mlxn_buffer *src, const mlxn_buffer *positions,
                                    int ring, mlxn_buffer *cache);
/* The attention prologue of one step as one op: rotates q [T, Hq, D] and
 * k [T, Hkv, D] in place (as mlxn_rope with p), then appends k and
 * v [T, Hkv, D] to k_cache and v_cache [Hkv, C, D] (as mlxn_kv_append with
 * ring). q and k share a dtype (f32, f16 or bf16); q, k and v may be views of
 * one buffer (a fused q|k|v projection). Same results as those four calls,
 * which is what backends without a fused kernel run; CUDA does it in one
 * launch for T <= 8. */
MLXN_API mlxn_status mlxn_rope_kv_append(mlxn_session *s, mlxn_buffer *q, mlxn_buffer *k, const mlxn_buffer *v,
                                         const mlxn_buffer *positions, const mlxn_rope_params *p, int ring,
                                         mlxn_buffer *k_cache, mlxn_buffer *v_cache);

/* A decode step's attention as one op: mlxn_rope_kv_append(q, k, v,
 * positions, rp, ap->ring, k_cache, v_cache), then mlxn_attention(q,
 * k_cache, v_cache, positions, ap, out), same arguments and results (f32
 * rounding aside). positions is required. Afterwards q and k hold unspecified
 * values (the separate ops leave them rotated; a fused kernel may not touch
 * them). Backends without a kernel for the case run those two ops; CUDA
 * folds the rotation and the appends into the decode attention kernel for
 * T = 1 with q, k and v f32. */
MLXN_API mlxn_status mlxn_rope_kv_attention(mlxn_session *s, mlxn_buffer *q, mlxn_buffer *k, const mlxn_buffer *v,
                                            const mlxn_buffer *positions, const mlxn_rope_params *rp,
                                            const mlxn_attention_params *ap, mlxn_buffer *k_cache,
                                            mlxn_buffer *v_cache, mlxn_buffer *out);

/* ---------------------------------------------------------------- ops: vision */

/* image: f32 [3, H, W] channel-major -> out f32 [(H/p)*(W/p), 3*p*p]; patches
 * in row-major patch order, each row ordered channel, then dy, then dx. */
MLXN_API mlxn_status mlxn_im2col_2d_3ch(mlxn_session *s, const mlxn_buffer *image, int patch_size,
                                        mlxn_buffer *out);

/* ---------------------------------------------------------------- host quant codecs
 * Plain host functions over caller memory (no device). */

/* MLX affine quantize of w [rows, cols] f32, exactly as mx.quantize does:
 * packed: rows*cols*bits/8 bytes; scales, biases: rows*cols/group_size
 * elements of scale_dtype (f32, f16 or bf16). */
MLXN_API mlxn_status mlxn_quantize_affine(const float *w, int64_t rows, int64_t cols, int bits, int group_size,
                                          mlxn_dtype scale_dtype, void *packed, void *scales, void *biases);
MLXN_API mlxn_status mlxn_dequantize_affine(const void *packed, const void *scales, const void *biases,
                                            mlxn_dtype scale_dtype, int64_t rows, int64_t cols, int bits,
                                            int group_size, float *out);
/* GGUF: dequantize n values (n % block_values == 0) of type t. */
MLXN_API mlxn_status mlxn_gguf_dequantize(mlxn_gguf_type t, const void *blocks, int64_t n, float *out);
/* GGUF quantize (Q4_0, Q8_0), as ggml's reference quantizers. */
MLXN_API mlxn_status mlxn_gguf_quantize(mlxn_gguf_type t, const float *x, int64_t n, void *blocks);

#ifdef __cplusplus
}
#endif
#endif /* MLXN_H */
