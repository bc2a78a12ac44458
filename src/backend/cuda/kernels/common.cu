// common.cu — shared device helpers for every mlxn CUDA kernel file (included
// as a header: NVRTC is given every embedded source as an includable file).
// No toolkit headers: f16/bf16 conversions are inline PTX or bit operations,
// so a machine with only the driver and libnvrtc can compile them. Dtype codes
// match mlxn_dtype (0 f32, 1 f16, 2 bf16).
#ifndef MLXN_CUDA_COMMON_CU
#define MLXN_CUDA_COMMON_CU

typedef unsigned char u8;
typedef signed char i8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long long u64;
typedef long long i64;

#define DT_F32 0
#define DT_F16 1
#define DT_BF16 2

__device__ __forceinline__ float h2f(u16 h) {
    float f;
    asm("{ cvt.f32.f16 %0, %1; }" : "=f"(f) : "h"(h));
    return f;
}
__device__ __forceinline__ u16 f2h(float f) {
    u16 h;
    asm("{ cvt.rn.f16.f32 %0, %1; }" : "=h"(h) : "f"(f));
    return h;
}
__device__ __forceinline__ float bf2f(u16 b) { return __uint_as_float(((u32)b) << 16); }
__device__ __forceinline__ u16 f2bf(float f) {
    u32 u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (u16)((u >> 16) | 0x40u); // NaN stays NaN (quiet)
    u += 0x7fffu + ((u >> 16) & 1u);                                       // round to nearest even
    return (u16)(u >> 16);
}

// Bit-exact twins of the host conversions (core/dtype.c): the hardware
// conversions agree for every finite value and infinity but canonicalise NaN,
// while the host keeps sign and payload; data-movement ops (cast, kv_append,
// embedding) must be byte-identical, so NaNs take the host's path.
__device__ __forceinline__ float h2f_exact(u16 h) {
    if ((h & 0x7c00u) == 0x7c00u && (h & 0x3ffu))
        return __uint_as_float(((u32)(h & 0x8000u) << 16) | 0x7f800000u | ((u32)(h & 0x3ffu) << 13));
    return h2f(h);
}
__device__ __forceinline__ u16 f2h_exact(float f) {
    u32 x = __float_as_uint(f), absx = x & 0x7fffffffu;
    if (absx > 0x7f800000u) return (u16)(((x >> 16) & 0x8000u) | 0x7e00u | ((absx >> 13) & 0x3ffu));
    return f2h(f);
}

// load element i of a buffer of dtype dt as f32
__device__ __forceinline__ float ldf(const void *p, int dt, i64 i) {
    if (dt == DT_F32) return ((const float *)p)[i];
    if (dt == DT_F16) return h2f_exact(((const u16 *)p)[i]);
    return bf2f(((const u16 *)p)[i]);
}
__device__ __forceinline__ void stf(void *p, int dt, i64 i, float v) {
    if (dt == DT_F32) ((float *)p)[i] = v;
    else if (dt == DT_F16) ((u16 *)p)[i] = f2h_exact(v);
    else ((u16 *)p)[i] = f2bf(v);
}

// v rounded to dtype dt and back: what ldf returns after stf(v), without
// the memory round trip.
__device__ __forceinline__ float round_dt(int dt, float v) {
    if (dt == DT_F32) return v;
    if (dt == DT_F16) return h2f_exact(f2h_exact(v));
    return __uint_as_float(((u32)f2bf(v)) << 16);
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}
__device__ __forceinline__ double warp_sum_d(double v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

// block-wide sum (blockDim.x a multiple of 32, <= 1024); all threads get the result.
// `sh` needs 32 floats; the function synchronises before returning.
__device__ __forceinline__ float block_sum(float v, float *sh) {
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = warp_sum(v);
    __syncthreads();
    if (lane == 0) sh[w] = v;
    __syncthreads();
    float t = lane < nw ? sh[lane] : 0.0f;
    t = warp_sum(t);
    return t;
}
__device__ __forceinline__ double block_sum_d(double v, double *sh) {
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = warp_sum_d(v);
    __syncthreads();
    if (lane == 0) sh[w] = v;
    __syncthreads();
    double t = lane < nw ? sh[lane] : 0.0;
    t = warp_sum_d(t);
    return t;
}
__device__ __forceinline__ float block_max(float v, float *sh) {
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = warp_max(v);
    __syncthreads();
    if (lane == 0) sh[w] = v;
    __syncthreads();
    float t = lane < nw ? sh[lane] : -__int_as_float(0x7f800000);
    t = warp_max(t);
    return t;
}

// Programmatic dependent launch (sm_90+): the launcher may start a grid
// before the previous kernel in the stream has finished. Every kernel of a
// source file listed in cuda_device.c's pdl_source() begins with PDL_ENTER():
// wait until the previous grid has completed and its writes are visible, then
// let the next grid be scheduled. Kernels that skip the wait must not be in
// such a file (a later grid's wait would then not cover its predecessors).
// PDL_LAUNCH + PDL_WAIT split it for kernels that first read memory no
// earlier kernel writes (weights: matvec.cu's b1 kernels issue their first
// weight loads, then wait).
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
#define PDL_WAIT() asm volatile("griddepcontrol.wait;" ::: "memory")
#define PDL_LAUNCH() asm volatile("griddepcontrol.launch_dependents;" :::)
#else
#define PDL_WAIT() do { } while (0)
#define PDL_LAUNCH() do { } while (0)
#endif
#define PDL_ENTER()    \
    do {               \
        PDL_WAIT();    \
        PDL_LAUNCH();  \
    } while (0)

// 16-byte read-only load that bypasses L1 allocation (streamed weights).
// volatile: stays in program order with PDL_WAIT, so loads written before
// the wait are issued before it.
__device__ __forceinline__ uint4 ldg_stream(const void *p) {
    uint4 r;
    asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];"
                 : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w)
                 : "l"(p));
    return r;
}
__device__ __forceinline__ uint2 ldg_stream8(const void *p) {
    uint2 r;
    asm("ld.global.nc.L1::no_allocate.v2.u32 {%0,%1}, [%2];" : "=r"(r.x), "=r"(r.y) : "l"(p));
    return r;
}

// Attention kernels (attention.cu, attention_decode.cu): the nine (cache
// dtype, head-dim bound) instance sets of a kernel family, named
// PFX_<dtype>_d<bound>_g<heads> (cuda_ops_attention.c's ATTN_NAMES).
#define ATTN_ALL(INST_G, PFX)               \
    INST_G(PFX##_f32_d64, DT_F32, 64)       \
    INST_G(PFX##_f32_d128, DT_F32, 128)     \
    INST_G(PFX##_f32_d256, DT_F32, 256)     \
    INST_G(PFX##_f16_d64, DT_F16, 64)       \
    INST_G(PFX##_f16_d128, DT_F16, 128)     \
    INST_G(PFX##_f16_d256, DT_F16, 256)     \
    INST_G(PFX##_bf16_d64, DT_BF16, 64)     \
    INST_G(PFX##_bf16_d128, DT_BF16, 128)   \
    INST_G(PFX##_bf16_d256, DT_BF16, 256)

#endif
