// quant.cu — element-wise weight decoding for every weight format (dense
// f32/f16/bf16, MLX affine 2..8 bits with f32/f16/bf16 scales and biases, GGUF
// Q4_0/Q4_1/Q8_0/Q4_K/Q5_K/Q6_K) and the kernels built on it: dequantize,
// embedding (row gather with an out-of-range flag) and the generic matmul used
// for any format or shape that no fast path in matvec.cu/gemm.cu covers.
#include "common.cu"

#define FMT_DENSE 0
#define FMT_MLX 1
#define FMT_GGUF 2

#define GG_Q4_0 2
#define GG_Q4_1 3
#define GG_Q5_0 6
#define GG_Q5_1 7
#define GG_Q8_0 8
#define GG_Q4_K 12
#define GG_Q5_K 13
#define GG_Q6_K 14

// Weight description passed by value; layout mirrors mlxn_cuda_wparams in cuda_ops_quant.c.
struct WP {
    const u8 *data;
    const void *scales;
    const void *biases;
    i64 row_bytes;
    i64 K;
    int fmt, sdt, bits, group, gtype, ddt;
};

// The fused one-row matmuls' extras (matvec.cu, matvec_stream.cu), passed by
// value; mirrors mvf_params in cuda_ops_matvec.c. MVF_RES: y[n] += res[n]
// (res may be y); MVF_SWIGLU: W is [gate; up] and y[g] = silu(gate)·up.
#define MVF_RES 1
#define MVF_SWIGLU 2
struct MVF {
    const float *nw;  // [K] norm weight (NORM kernels)
    const float *res; // [N] residual (MVF_RES)
    float eps;
    int mode;
};

__device__ __forceinline__ float ld_h_unaligned(const u8 *p) { return h2f((u16)(p[0] | (p[1] << 8))); }

__device__ __forceinline__ void k4_scale_min(int j, const u8 *q, int &sc, int &mn) {
    if (j < 4) {
        sc = q[j] & 63;
        mn = q[j + 4] & 63;
    } else {
        sc = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
        mn = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

// W[n, k] as f32
__device__ float wp_get(const WP &w, i64 n, int k) {
    const u8 *row = w.data + n * w.row_bytes;
    if (w.fmt == FMT_DENSE) return ldf(w.data, w.ddt, n * w.K + k);
    if (w.fmt == FMT_MLX) {
        int bit = k * w.bits;
        const u8 *p = row + (bit >> 3);
        int sh = bit & 7;
        u32 v = p[0];
        if (sh + w.bits > 8) v |= (u32)p[1] << 8;
        u32 q = (v >> sh) & ((1u << w.bits) - 1u);
        i64 g = n * (i64)((int)w.K / w.group) + k / w.group;
        return __fadd_rn(__fmul_rn(ldf(w.scales, w.sdt, g), (float)q), ldf(w.biases, w.sdt, g));
    }
    switch (w.gtype) {
    case GG_Q4_0: {
        const u8 *b = row + (k / 32) * 18;
        int j = k % 32;
        int q = j < 16 ? (b[2 + j] & 15) : (b[2 + j - 16] >> 4);
        return ld_h_unaligned(b) * (float)(q - 8);
    }
    case GG_Q4_1: {
        const u8 *b = row + (k / 32) * 20;
        int j = k % 32;
        int q = j < 16 ? (b[4 + j] & 15) : (b[4 + j - 16] >> 4);
        return __fadd_rn(__fmul_rn((float)q, ld_h_unaligned(b)), ld_h_unaligned(b + 2));
    }
    case GG_Q5_0:
    case GG_Q5_1: {
        int bs = w.gtype == GG_Q5_0 ? 22 : 24, o = w.gtype == GG_Q5_0 ? 2 : 4;
        const u8 *b = row + (k / 32) * bs;
        int j = k % 32;
        u32 qh = (u32)b[o] | ((u32)b[o + 1] << 8) | ((u32)b[o + 2] << 16) | ((u32)b[o + 3] << 24);
        int q = j < 16 ? (b[o + 4 + j] & 15) : (b[o + 4 + j - 16] >> 4);
        q |= (int)((qh >> j) & 1u) << 4;
        if (w.gtype == GG_Q5_0) return ld_h_unaligned(b) * (float)(q - 16);
        return __fadd_rn(__fmul_rn((float)q, ld_h_unaligned(b)), ld_h_unaligned(b + 2));
    }
    case GG_Q8_0: {
        const u8 *b = row + (k / 32) * 34;
        return ld_h_unaligned(b) * (float)(i8)b[2 + k % 32];
    }
    case GG_Q4_K: {
        const u8 *b = row + (k / 256) * 144;
        int j = k % 256, c = j / 64, within = j % 64, l = within % 32;
        int sb = 2 * c + (within >= 32);
        int sc, mn;
        k4_scale_min(sb, b + 4, sc, mn);
        u8 byte = b[16 + c * 32 + l];
        int q = within < 32 ? (byte & 15) : (byte >> 4);
        return __fsub_rn(__fmul_rn(__fmul_rn(ld_h_unaligned(b), (float)sc), (float)q),
                         __fmul_rn(ld_h_unaligned(b + 2), (float)mn));
    }
    case GG_Q5_K: {
        const u8 *b = row + (k / 256) * 176;
        int j = k % 256, c = j / 64, within = j % 64, l = within % 32;
        int sb = 2 * c + (within >= 32);
        int sc, mn;
        k4_scale_min(sb, b + 4, sc, mn);
        u8 byte = b[48 + c * 32 + l];
        int q = within < 32 ? (byte & 15) : (byte >> 4);
        if (b[16 + l] & (1 << sb)) q += 16;
        return __fsub_rn(__fmul_rn(__fmul_rn(ld_h_unaligned(b), (float)sc), (float)q),
                         __fmul_rn(ld_h_unaligned(b + 2), (float)mn));
    }
    default: { // GG_Q6_K
        const u8 *b = row + (k / 256) * 210;
        int j = k % 256, nh = j / 128, w128 = j % 128, l = w128 % 32, qd = w128 / 32;
        const u8 *ql = b + nh * 64, *qh = b + 128 + nh * 32;
        const i8 *sc = (const i8 *)(b + 192) + nh * 8;
        int lo = (qd & 1) ? ql[l + 32] : ql[l];
        lo = (qd >= 2) ? (lo >> 4) : (lo & 15);
        int hi = (qh[l] >> (2 * qd)) & 3;
        int q = (lo | (hi << 4)) - 32;
        return ld_h_unaligned(b + 208) * (float)sc[l / 16 + 2 * qd] * (float)q;
    }
    }
}

// y [nrows, K] (ydt) = rows ids[r] (or r when ids == NULL) of W, dequantized:
// a block per row (grid-stride over rows), threads across the row; MLX 4/8-bit
// rows decode a 32-bit word (8 or 4 values) per thread. An id outside [0, N)
// zeroes its row and raises flag 1 in *err.
extern "C" __global__ void dequant_rows_kernel(WP w, const int *ids, int nrows, i64 N, void *y, int ydt,
                                               unsigned *err) {
    PDL_ENTER();
    const int K = (int)w.K;
    const bool mlx_words = w.fmt == FMT_MLX && (w.bits == 4 || w.bits == 8) &&
                           (((unsigned long long)w.data) & 3ull) == 0 && (w.row_bytes & 3) == 0;
    for (int r = blockIdx.x; r < nrows; r += gridDim.x) {
        const i64 n = ids ? (i64)ids[r] : (i64)r;
        const bool bad = n < 0 || n >= N;
        if (bad && threadIdx.x == 0 && err) atomicOr(err, 1u);
        const i64 base = (i64)r * K;
        if (!bad && mlx_words) {
            const int vpw = 32 / w.bits, nwords = K / vpw, gpr = K / w.group;
            const u32 mask = (1u << w.bits) - 1u;
            const u32 *row = (const u32 *)(w.data + n * w.row_bytes);
            for (int wi = threadIdx.x; wi < nwords; wi += blockDim.x) {
                const u32 u = row[wi];
                const int k0 = wi * vpw;
                const i64 g = n * gpr + k0 / w.group;
                const float sc = ldf(w.scales, w.sdt, g), bi = ldf(w.biases, w.sdt, g);
                for (int e = 0; e < vpw; e++)
                    stf(y, ydt, base + k0 + e, __fadd_rn(__fmul_rn(sc, (float)((u >> (e * w.bits)) & mask)), bi));
            }
        } else {
            for (int k = threadIdx.x; k < K; k += blockDim.x) stf(y, ydt, base + k, bad ? 0.0f : wp_get(w, n, k));
        }
    }
}

// Generic y [M, N] f32 = x [M, K] f32 · Wᵀ: a warp per output column n, 8 rows
// of x per block in y; each lane decodes every 32nd weight once and uses it 8 times.
extern "C" __global__ void matmul_generic_kernel(WP w, const float *x, float *y, int M, i64 N) {
    PDL_ENTER();
    const int MT = 8;
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    i64 n = (i64)blockIdx.x * (blockDim.x >> 5) + warp;
    int m0 = blockIdx.y * MT;
    if (n >= N) return;
    float acc[MT];
#pragma unroll
    for (int i = 0; i < MT; i++) acc[i] = 0.0f;
    for (int k = lane; k < (int)w.K; k += 32) {
        float wv = wp_get(w, n, k);
#pragma unroll
        for (int i = 0; i < MT; i++)
            if (m0 + i < M) acc[i] += wv * x[(i64)(m0 + i) * w.K + k];
    }
#pragma unroll
    for (int i = 0; i < MT; i++) {
        float s = warp_sum(acc[i]);
        if (lane == 0 && m0 + i < M) y[(i64)(m0 + i) * N + n] = s;
    }
}

// W [N, K] -> bf16 [N, K] for the GEMM path (cuda_ops_gemm.c), for the
// formats whose runs are contiguous: MLX affine 4/8-bit and GGUF
// Q4_0/Q4_1/Q8_0. A thread takes one 16-byte code load (MLX 4-bit: 32
// values; 8-bit: 16) or one 32-value GGUF block and writes 16-byte stores of
// 8 bf16 each (the per-element dequant_rows_kernel writes 2 bytes per store,
// 16 bytes apart). Same arithmetic as wp_get, so the bytes are identical.
// Preconditions (checked by the launcher): K % 32 == 0; MLX: group % 32 == 0,
// data and rows 16-byte aligned; GGUF: data 2-byte aligned.
__device__ __forceinline__ u32 pack_bf2(float a, float b) { return (u32)f2bf(a) | ((u32)f2bf(b) << 16); }
__device__ __forceinline__ uint4 pack_bf8(const float *v) {
    return make_uint4(pack_bf2(v[0], v[1]), pack_bf2(v[2], v[3]), pack_bf2(v[4], v[5]), pack_bf2(v[6], v[7]));
}

extern "C" __global__ void dequant_bf16_kernel(WP w, i64 N, uint4 *y) {
    PDL_ENTER();
    const int K = (int)w.K;
    const int per = w.fmt == FMT_MLX && w.bits == 8 ? 16 : 32; // values per item
    const int ipr = K / per;
    const i64 total = N * (i64)ipr;
    for (i64 it = (i64)blockIdx.x * blockDim.x + threadIdx.x; it < total; it += (i64)gridDim.x * blockDim.x) {
        const i64 n = it / ipr;
        const int k0 = (int)(it - n * ipr) * per;
        const u8 *row = w.data + n * w.row_bytes;
        uint4 *out = y + (n * K + k0) / 8;
        float v[8];
        if (w.fmt == FMT_MLX) {
            const i64 g = n * (i64)(K / w.group) + k0 / w.group;
            const float sc = ldf(w.scales, w.sdt, g), bi = ldf(w.biases, w.sdt, g);
            const uint4 u = ldg_stream(row + (w.bits == 4 ? k0 >> 1 : k0));
            const u32 wd[4] = {u.x, u.y, u.z, u.w};
            if (w.bits == 4) {
#pragma unroll
                for (int wi = 0; wi < 4; wi++) {
#pragma unroll
                    for (int e = 0; e < 8; e++) v[e] = __fadd_rn(__fmul_rn(sc, (float)((wd[wi] >> (4 * e)) & 15u)), bi);
                    out[wi] = pack_bf8(v);
                }
            } else {
#pragma unroll
                for (int h = 0; h < 2; h++) {
#pragma unroll
                    for (int e = 0; e < 8; e++)
                        v[e] = __fadd_rn(__fmul_rn(sc, (float)((wd[2 * h + (e >> 2)] >> (8 * (e & 3))) & 255u)), bi);
                    out[h] = pack_bf8(v);
                }
            }
        } else if (w.gtype == GG_Q8_0) {
            const u8 *b = row + (k0 >> 5) * 34;
            const u16 *q = (const u16 *)(b + 2);
            const float d = h2f(*(const u16 *)b);
            u16 qv[16];
#pragma unroll
            for (int i = 0; i < 16; i++) qv[i] = q[i];
#pragma unroll
            for (int o = 0; o < 4; o++) {
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    v[2 * e] = d * (float)(i8)(qv[4 * o + e] & 255);
                    v[2 * e + 1] = d * (float)(i8)(qv[4 * o + e] >> 8);
                }
                out[o] = pack_bf8(v);
            }
        } else { // Q4_0 (18-byte blocks) or Q4_1 (20-byte blocks)
            const bool q41 = w.gtype == GG_Q4_1;
            const u8 *b = row + (k0 >> 5) * (q41 ? 20 : 18);
            const u16 *q = (const u16 *)(b + (q41 ? 4 : 2));
            const float d = h2f(*(const u16 *)b), m = q41 ? h2f(*(const u16 *)(b + 2)) : 0.0f;
            u16 qv[8];
#pragma unroll
            for (int i = 0; i < 8; i++) qv[i] = q[i];
            // values 0..15: low nibbles of qs[0..15]; 16..31: high nibbles
#pragma unroll
            for (int o = 0; o < 4; o++) {
                const int sh = o >= 2 ? 4 : 0, w0 = (o & 1) * 4;
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    const u16 p = qv[w0 + e];
                    const int q0 = ((p & 255) >> sh) & 15, q1 = ((p >> 8) >> sh) & 15;
                    if (q41) {
                        v[2 * e] = __fadd_rn(__fmul_rn((float)q0, d), m);
                        v[2 * e + 1] = __fadd_rn(__fmul_rn((float)q1, d), m);
                    } else {
                        v[2 * e] = d * (float)(q0 - 8);
                        v[2 * e + 1] = d * (float)(q1 - 8);
                    }
                }
                out[o] = pack_bf8(v);
            }
        }
    }
}

// x f32 [n] -> bf16 [n], 4 values per thread (n % 4 == 0, 16-byte aligned x).
extern "C" __global__ void cast_f32_bf16_kernel(const float4 *x, uint2 *y, i64 n4) {
    PDL_ENTER();
    for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < n4; i += (i64)gridDim.x * blockDim.x) {
        const float4 f = x[i];
        y[i] = make_uint2(pack_bf2(f.x, f.y), pack_bf2(f.z, f.w));
    }
}
