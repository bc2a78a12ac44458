/* cuda_internal.h — private declarations of the CUDA backend: the minimal
 * CUDA driver API and NVRTC types we use (declared here so the library builds
 * with no CUDA toolkit installed), the table of entry points filled by
 * dlopen/dlsym in cuda_loader.c, the device/session/graph state, the kernel
 * registry (NVRTC compile + memory and disk cache, cuda_registry.c) and the
 * launch helpers used by the op launchers (cuda_ops_*.c). Nothing outside
 * src/backend/cuda, tests and benchmarks includes it. */
#ifndef MLXN_CUDA_INTERNAL_H
#define MLXN_CUDA_INTERNAL_H

#include "core/internal.h"

#include <pthread.h>
#include <stdint.h>

/* ---------------------------------------------------------------- driver API types */

typedef int CUresult;
typedef int CUdevice;
typedef unsigned long long CUdeviceptr;
typedef struct CUctx_st *CUcontext;
typedef struct CUmod_st *CUmodule;
typedef struct CUfunc_st *CUfunction;
typedef struct CUstream_st *CUstream;
typedef struct CUevent_st *CUevent;
typedef struct CUgraph_st *CUgraph;
typedef struct CUgraphExec_st *CUgraphExec;

#define CUDA_SUCCESS 0
#define CUDA_ERROR_NO_DEVICE 100
#define CUDA_ERROR_INSUFFICIENT_DRIVER 35
#define CUDA_ERROR_NOT_READY 600
#define CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK 8
#define CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT 16
#define CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE 38
#define CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR 75
#define CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR 76
#define CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN 97
#define CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES 8
#define CU_FUNC_ATTRIBUTE_PREFERRED_SHARED_MEMORY_CARVEOUT 9
#define CU_STREAM_NON_BLOCKING 1
#define CU_STREAM_CAPTURE_MODE_RELAXED 2
#define CU_MEMHOSTALLOC_PORTABLE 1
#define CU_MEMHOSTALLOC_DEVICEMAP 2
#define CU_EVENT_DEFAULT 0

/* driver entry points, resolved with dlsym (versioned names where the header maps them) */
/* Driver ABI of cuLaunchKernelEx (cuda.h: CUlaunchAttribute, CUlaunchConfig). */
#define MLXN_CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION 6
#define MLXN_CU_LAUNCH_ATTRIBUTE_PREFERRED_SHARED_MEMORY_CARVEOUT 14
typedef struct mlxn_cu_launch_attr {
    int id;
    char pad[4];
    union { char pad[64]; int value; } v;
} mlxn_cu_launch_attr;
typedef struct mlxn_cu_launch_config {
    unsigned grid_x, grid_y, grid_z, block_x, block_y, block_z, smem;
    CUstream stream;
    mlxn_cu_launch_attr *attrs;
    unsigned n_attrs;
} mlxn_cu_launch_config;

typedef struct mlxn_cuda_api {
    void *lib;
    CUresult (*cuInit)(unsigned);
    CUresult (*cuDriverGetVersion)(int *);
    CUresult (*cuDeviceGetCount)(int *);
    CUresult (*cuDeviceGet)(CUdevice *, int);
    CUresult (*cuDeviceGetName)(char *, int, CUdevice);
    CUresult (*cuDeviceGetAttribute)(int *, int, CUdevice);
    CUresult (*cuDeviceTotalMem)(size_t *, CUdevice);
    CUresult (*cuDevicePrimaryCtxRetain)(CUcontext *, CUdevice);
    CUresult (*cuDevicePrimaryCtxRelease)(CUdevice);
    CUresult (*cuCtxSetCurrent)(CUcontext);
    CUresult (*cuCtxSynchronize)(void);
    CUresult (*cuGetErrorName)(CUresult, const char **);
    CUresult (*cuGetErrorString)(CUresult, const char **);
    CUresult (*cuMemAlloc)(CUdeviceptr *, size_t);
    CUresult (*cuMemFree)(CUdeviceptr);
    CUresult (*cuMemGetInfo)(size_t *, size_t *);
    CUresult (*cuMemHostAlloc)(void **, size_t, unsigned);
    CUresult (*cuMemFreeHost)(void *);
    CUresult (*cuMemHostGetDevicePointer)(CUdeviceptr *, void *, unsigned);
    CUresult (*cuMemcpyHtoD)(CUdeviceptr, const void *, size_t);
    CUresult (*cuMemcpyDtoH)(void *, CUdeviceptr, size_t);
    CUresult (*cuMemcpyHtoDAsync)(CUdeviceptr, const void *, size_t, CUstream);
    CUresult (*cuMemcpyDtoHAsync)(void *, CUdeviceptr, size_t, CUstream);
    CUresult (*cuMemcpyDtoDAsync)(CUdeviceptr, CUdeviceptr, size_t, CUstream);
    CUresult (*cuMemsetD8)(CUdeviceptr, unsigned char, size_t);
    CUresult (*cuMemsetD8Async)(CUdeviceptr, unsigned char, size_t, CUstream);
    CUresult (*cuMemsetD32Async)(CUdeviceptr, unsigned, size_t, CUstream);
    CUresult (*cuStreamCreate)(CUstream *, unsigned);
    CUresult (*cuStreamDestroy)(CUstream);
    CUresult (*cuStreamSynchronize)(CUstream);
    CUresult (*cuEventCreate)(CUevent *, unsigned);
    CUresult (*cuEventDestroy)(CUevent);
    CUresult (*cuEventRecord)(CUevent, CUstream);
    CUresult (*cuEventSynchronize)(CUevent);
    CUresult (*cuEventElapsedTime)(float *, CUevent, CUevent);
    CUresult (*cuModuleLoadData)(CUmodule *, const void *);
    CUresult (*cuModuleUnload)(CUmodule);
    CUresult (*cuModuleGetFunction)(CUfunction *, CUmodule, const char *);
    CUresult (*cuFuncSetAttribute)(CUfunction, int, int);
    CUresult (*cuLaunchKernel)(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned,
                               unsigned, CUstream, void **, void **);
    /* optional (NULL when the driver lacks it): launches with attributes,
     * used for programmatic dependent launch on sm_90+ */
    CUresult (*cuLaunchKernelEx)(const struct mlxn_cu_launch_config *, CUfunction, void **, void **);
    CUresult (*cuStreamBeginCapture)(CUstream, int);
    CUresult (*cuStreamEndCapture)(CUstream, CUgraph *);
    CUresult (*cuGraphInstantiateWithFlags)(CUgraphExec *, CUgraph, unsigned long long);
    CUresult (*cuGraphLaunch)(CUgraphExec, CUstream);
    CUresult (*cuGraphExecDestroy)(CUgraphExec);
    CUresult (*cuGraphDestroy)(CUgraph);
} mlxn_cuda_api;

/* ---------------------------------------------------------------- NVRTC types */

typedef int nvrtcResult;
typedef struct _nvrtcProgram *nvrtcProgram;

typedef struct mlxn_nvrtc_api {
    void *lib;
    char path[512];
    int major, minor;
    const char *(*nvrtcGetErrorString)(nvrtcResult);
    nvrtcResult (*nvrtcVersion)(int *, int *);
    nvrtcResult (*nvrtcCreateProgram)(nvrtcProgram *, const char *, const char *, int, const char *const *,
                                      const char *const *);
    nvrtcResult (*nvrtcDestroyProgram)(nvrtcProgram *);
    nvrtcResult (*nvrtcCompileProgram)(nvrtcProgram, int, const char *const *);
    nvrtcResult (*nvrtcGetProgramLogSize)(nvrtcProgram, size_t *);
    nvrtcResult (*nvrtcGetProgramLog)(nvrtcProgram, char *);
    nvrtcResult (*nvrtcGetCUBINSize)(nvrtcProgram, size_t *);
    nvrtcResult (*nvrtcGetCUBIN)(nvrtcProgram, char *);
} mlxn_nvrtc_api;

/* Load libcuda.so.1 once per process (thread-safe). On failure returns
 * MLXN_ERR_UNSUPPORTED with the reason. */
mlxn_status mlxn_cuda_load_driver(const mlxn_cuda_api **out);
/* Load libnvrtc once per process: loader path, $CUDA_HOME/lib64,
 * /usr/local/cuda/lib64, the PyPI nvidia-cuda-nvrtc wheel (python site dirs).
 * On failure MLXN_ERR_UNSUPPORTED naming the places tried. */
mlxn_status mlxn_cuda_load_nvrtc(const mlxn_nvrtc_api **out);
/* Set MLXN_ERR_DEVICE with "what: cuXxx failed: NAME (string)". */
mlxn_status mlxn_cuda_error(const mlxn_cuda_api *cu, CUresult r, const char *what);

/* ---------------------------------------------------------------- embedded kernel sources */

typedef struct { const char *name; const char *source; } mlxn_embedded_source;
extern const mlxn_embedded_source mlxn_cuda_sources[];

/* ---------------------------------------------------------------- registry */

typedef struct mlxn_cuda_module_entry {
    const char *source_name; /* embedded file name, e.g. "elementwise.cu" */
    CUmodule module;
} mlxn_cuda_module_entry;

typedef struct mlxn_cuda_fn_entry {
    const char *name; /* kernel name (string literal; keyed by pointer, then by text) */
    CUfunction fn;
} mlxn_cuda_fn_entry;

#define MLXN_CUDA_MAX_MODULES 32
#define MLXN_CUDA_FN_SLOTS 512

typedef struct mlxn_cuda_registry {
    pthread_mutex_t mu;
    char arch[16];          /* "sm_90" */
    char cache_dir[512];    /* "" = no disk cache */
    mlxn_cuda_module_entry modules[MLXN_CUDA_MAX_MODULES];
    int n_modules;
    mlxn_cuda_fn_entry fns[MLXN_CUDA_FN_SLOTS];
    int compiles, disk_hits; /* statistics (tests) */
} mlxn_cuda_registry;

/* Compile one embedded source with NVRTC for `arch` ("sm_80", "sm_90"). On
 * success cubin and cubin_size (malloc'd) are set; on failure the status
 * carries the NVRTC log. Needs no GPU and no driver. */
mlxn_status mlxn_cuda_compile_source(const char *source_name, const char *arch, void **cubin, size_t *cubin_size);
/* Number of embedded sources and the i-th name (NULL past the end). */
const char *mlxn_cuda_source_name(int i);

/* ---------------------------------------------------------------- device state */

typedef struct mlxn_cuda_dev {
    const mlxn_cuda_api *cu;
    _Atomic unsigned long long host_writes; /* uploads and fills so far (invalidates cuda_ops_gemm.c's x cache) */
    CUdevice dev;
    CUcontext ctx;
    int ordinal;
    int cc_major, cc_minor;
    int sm_count;
    int l2_bytes;
    int smem_optin;
    int pdl; /* programmatic dependent launch for kernels whose source opts in (sm_90+, MLXN_CUDA_PDL != 0) */
    int carveout_near; /* launches after a large-shared-memory one that keep its carveout (MLXN_CUDA_CARVEOUT_NEAR) */
    size_t total_mem;
    mlxn_cuda_registry reg;
    /* pinned staging for uploads/downloads (2 halves, double-buffered) */
    pthread_mutex_t staging_mu;
    void *staging;
    size_t staging_bytes;
    CUstream copy_stream;
    CUevent staging_ev[2];
    /* cached freed blocks (power-of-two buckets) to avoid cuMemFree stalls */
    pthread_mutex_t cache_mu;
    struct mlxn_cuda_block *free_blocks[64]; /* bucket b: blocks of 2^b bytes */
    size_t cached_bytes;
    struct mlxn_cuda_block *live[1024]; /* live allocations (ptr -> size), chained by ptr hash */
    /* cuBLASLt (optional, cuda_ops_gemm.c): handle and a small plan cache */
    pthread_mutex_t lt_mu;
    void *lt_handle;
    int lt_state; /* 0 untried, 1 ready, -1 unavailable */
    struct mlxn_cuda_lt_plan *lt_plans;
} mlxn_cuda_dev;

typedef struct mlxn_cuda_block {
    CUdeviceptr ptr;
    size_t bytes;
    struct mlxn_cuda_block *next;
} mlxn_cuda_block;

/* Per-session state: one stream, a device error word, scratch memory that
 * only grows (old blocks kept alive until the session is destroyed, so a
 * captured graph that points at them stays valid). */
typedef struct mlxn_cuda_sess {
    mlxn_cuda_dev *dev;
    CUstream stream;
    volatile uint32_t *err_host; /* mapped pinned word: bit flags raised by kernels */
    CUdeviceptr err_word;        /* its device address */
    CUdeviceptr scratch;
    size_t scratch_bytes;
    CUdeviceptr old_scratch[40]; /* outgrown blocks, still referenced by a capture in progress */
    int n_old_scratch;
    int capturing;
    CUdeviceptr counters; /* MLXN_CUDA_COUNTERS zeroed u32s (lazy); kernels that use one leave it zero */
    int big_smem_recent; /* launches left that keep the largest carveout (mlxn_cuda_launch) */
    unsigned long long launches; /* kernels launched through mlxn_cuda_launch */
    const char *last_kernel;     /* name of the latest of them (tests check which path ran) */
    /* the GEMM path's bf16 copy of x (cuda_ops_gemm.c): valid while nothing
     * was launched, uploaded or filled since it was made */
    CUdeviceptr xcast_src, xcast_dst;
    long long xcast_n;
    unsigned long long xcast_launches, xcast_writes;
} mlxn_cuda_sess;

#define MLXN_CUDA_COUNTERS (1u << 20)
/* Launches after a kernel of more than 16 KB of dynamic shared memory (which
 * asks for the largest carveout) that ask for it too (env
 * MLXN_CUDA_CARVEOUT_NEAR, 0: off): in the decode step those are the
 * attention, o and down kernels between the streamed matmuls, and an SM then
 * keeps one L1 / shared-memory split across the step. H100, tg128 tok/s, 4
 * vs 0: 8B shape 410.2 / 410.5 vs 407.0 / 407.3 (2: 410.6, 8: 410.3), 1B
 * 1,557 / 1,565 vs 1,557 / 1,558, real SmolLM2 (no such kernel) 2,064 /
 * 2,067 both; 8B pp512 16,792 / 16,801 vs 16,847 ± 32. The largest carveout
 * for every kernel instead: 8B 410.3, 135M 1,971 vs 1,989 (the one-row
 * matmuls read x through what is left of L1). */
#define MLXN_CUDA_CARVEOUT_NEAR 4
#define MLXN_CUDA_ERR_EMBED_RANGE 1u
#define MLXN_CUDA_ERR_KV_RANGE 2u
#define MLXN_CUDA_ERR_ATTN_RANGE 4u

static inline mlxn_cuda_dev *mlxn_cuda_dev_of(const mlxn_session *s) { return (mlxn_cuda_dev *)s->device->impl; }
static inline mlxn_cuda_sess *mlxn_cuda_sess_of(const mlxn_session *s) { return (mlxn_cuda_sess *)s->impl; }

/* Registry: initialise / tear down for a device; look up (compile or load on
 * first use) a kernel from an embedded source. */
mlxn_status mlxn_cuda_registry_init(mlxn_cuda_dev *d, const char *cache_dir);
void mlxn_cuda_registry_destroy(mlxn_cuda_dev *d);
mlxn_status mlxn_cuda_get_function(mlxn_cuda_dev *d, const char *source, const char *name, CUfunction *out);

/* Launch helper: resolve + launch on the session's stream. */
mlxn_status mlxn_cuda_launch(mlxn_session *s, const char *source, const char *name, unsigned gx, unsigned gy,
                             unsigned gz, unsigned bx, unsigned smem, void **args);
/* The session's zeroed block counters (MLXN_CUDA_COUNTERS u32s), made on first use. */
mlxn_status mlxn_cuda_counters(mlxn_session *s, CUdeviceptr *out);
/* Scratch of at least `bytes` for one op (valid until the next op of the
 * session that asks for scratch; blocks are never freed while the session lives). */
mlxn_status mlxn_cuda_scratch(mlxn_session *s, size_t bytes, CUdeviceptr *out);

static inline CUdeviceptr mlxn_cuda_addr(const mlxn_buffer *b) {
    return b ? (CUdeviceptr)mlxn_buf_addr(b) : (CUdeviceptr)0;
}

/* cuBLASLt plans and handle of a device (cuda_ops_gemm.c), released at close */
void mlxn_cuda_gemm_release(mlxn_cuda_dev *d);

/* op launchers (cuda_ops_*.c) */
void mlxn_cuda_register_ops(mlxn_backend_ops *ops);
mlxn_status mlxn_cuda_op_elementwise(mlxn_session *s, const mlxn_op *op);
mlxn_status mlxn_cuda_op_cast(mlxn_session *s, const mlxn_op *op);
mlxn_status mlxn_cuda_op_norm(mlxn_session *s, const mlxn_op *op);
mlxn_status mlxn_cuda_op_rope(mlxn_session *s, const mlxn_op *op);
mlxn_status mlxn_cuda_op_softmax(mlxn_session *s, const mlxn_op *op);
mlxn_status mlxn_cuda_op_argmax(mlxn_session *s, const mlxn_op *op);
mlxn_status mlxn_cuda_op_topk(mlxn_session *s, const mlxn_op *op);
mlxn_status mlxn_cuda_op_kv_append(mlxn_session *s, const mlxn_op *op);
mlxn_status mlxn_cuda_op_rope_kv_append(mlxn_session *s, const mlxn_op *op);
mlxn_status mlxn_cuda_op_im2col(mlxn_session *s, const mlxn_op *op);
mlxn_status mlxn_cuda_op_embedding(mlxn_session *s, const mlxn_op *op);
mlxn_status mlxn_cuda_op_dequantize(mlxn_session *s, const mlxn_op *op);
mlxn_status mlxn_cuda_op_matmul(mlxn_session *s, const mlxn_op *op);
mlxn_status mlxn_cuda_op_matmul_fused(mlxn_session *s, const mlxn_op *op);
int mlxn_cuda_fusable(mlxn_session *s, const mlxn_op *op);
mlxn_status mlxn_cuda_op_attention(mlxn_session *s, const mlxn_op *op);
mlxn_status mlxn_cuda_op_rope_kv_attention(mlxn_session *s, const mlxn_op *op);
mlxn_status mlxn_cuda_op_copy(mlxn_session *s, const mlxn_op *op);
/* 1 when the decode attention kernel takes this ROPE_KV_ATTENTION op. */
int mlxn_cuda_rope_attention_fusable(mlxn_session *s, const mlxn_op *op);
/* Inverse frequency of rotated pair k of p (rot resolved), f64 (cuda_ops_basic.c). */
double mlxn_cuda_rope_inv_freq(const mlxn_rope_params *p, int rot, int k);

#endif /* MLXN_CUDA_INTERNAL_H */
