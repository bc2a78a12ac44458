// matvec.cu — y [M, N] f32 = x [M, K] f32 · Wᵀ for small M (1..8 rows per
// launch tile), the decode path on the SIMT cores. A row group of NT threads
// (a warp: the "m" kernels; the whole 128-thread block: the "b" kernels)
// shares RW weight rows and splits K among its threads; each thread streams
// its weight chunks with 16-byte (GGUF's odd block sizes: 2- or 4-byte) loads
// that skip L1, reads x through L1, decodes each chunk once into registers
// and uses it for all MT rows of x; partial sums are reduced by shuffles (and
// shared memory for block row groups). Quantized values become floats with
// one byte permute: 7-bit codes as 2 + q/64 (bytef7, folded into the scale
// algebra), 8-bit ones as 2^23 + q minus 2^23 (bytef). MLX affine uses
// Σ s·(x·q) + b·Σx per group; GGUF blocks use their own scale/min algebra.
// Sums are f32. The fused one-row kernels (MLXN_OP_MATMUL_FUSED) come in
// several row-group shapes, and for many short Q8_0 rows (a small model's
// lm_head) as tiles staged in shared memory. matvec_mma.cu has the
// tensor-core kernels for 2 <= M <= 64.
#include "common.cu"
#include "quant.cu"

// Block size. A row group of NT threads (32: one warp; MV_THREADS: the whole
// block) shares RW weight rows and splits K among its threads; the wide
// groups suit long rows (K in the thousands), where a warp per row group
// leaves too few loads in flight per SM.
#define MV_THREADS 128

// A code of at most 7 bits in byte `sel` of v as the float 2 + q/64, in one
// byte permute: exponent byte 0x40, q in the mantissa's top byte below the
// exponent's low bit. Dots of x with these give Σ x·q = 64·Σ x·(2 + q/64) −
// 128·Σ x, folded into each format's scale algebra; this saves bytef's
// subtraction per value at a few times f32 rounding (still ~1e-6 relative).
__device__ __forceinline__ float bytef7(u32 v, u32 sel) {
    return __int_as_float((int)__byte_perm(v, 0x40000000u, 0x7054u | (sel << 8)));
}
__device__ __forceinline__ float bytef(u32 v, u32 sel) {
    return __int_as_float((int)__byte_perm(v, 0x4B000000u, 0x7540u | sel)) - 8388608.0f;
}

// x[m][k .. k+3] as a float4 through L1
__device__ __forceinline__ float4 ldx4(const float *x, i64 off) { return __ldg((const float4 *)(x + off)); }

// ---------------------------------------------------------------- fusions (MLXN_OP_MATMUL_FUSED)
// The one-row kernels (MT = 1; NT = MV_THREADS or 32) can fold the decode
// step's neighbours in. NORM (template): x is RMS-normalised on the way in
// -- the kernel reads x·nw and sums x² as it loads x (a row group reads all
// of x exactly once); the reduction that sums the row's partials sums those
// too, and the row's 1/sqrt(mean x² + eps) scales the finished dots (every
// block sees all of x, so nothing is recomputed). mode (run time, uniform): MVF_RES adds res[n] to y[n] (res
// may be y); MVF_SWIGLU gives each row group RW/2 gate rows g0.. and the
// matching up rows half + g0.. (N = 2·half rows) and writes y[g] =
// silu(gate)·up.
// (struct MVF and the mode bits live in quant.cu: matvec_stream.cu shares them.)
// x·nw [k0 + off .. +3] (NORM: x times the norm weight, both through L1,
// adding x² to ss) or x [k0 + off .. +3]. The norm kernels used to stage
// x·nw in shared memory for every block; reading both through L1 measured
// faster for the rows they serve (H100, 135M decode 1,690 vs 1,630 tok/s:
// the copy and its barrier sat before the first FMA).
template <int NORM>
__device__ __forceinline__ float4 ldxn(const float *xr, const float *nw, i64 k0, int off, float &ss) {
    float4 v = ldx4(xr, off);
    if (!NORM) return v;
    ss = fmaf(v.x, v.x, fmaf(v.y, v.y, fmaf(v.z, v.z, fmaf(v.w, v.w, ss))));
    const float4 g = ldx4(nw + k0, off); // nw is NULL in the kernels without a norm
    v.x *= g.x; v.y *= g.y; v.z *= g.z; v.w *= g.w;
    return v;
}
// The RW weight rows of row group gi (n0 = gi·RW): rows n0 + r, or for
// MVF_SWIGLU gate rows g0 + r (r < RW/2, g0 = gi·RW/2) and the up rows
// half + g0 + r - RW/2; clamped to valid rows (the store skips those).
template <int RW>
__device__ __forceinline__ void mv_rows(i64 (&rows)[RW], i64 n0, i64 N, int swiglu) {
    if (swiglu) {
        const i64 half = N / 2, g0 = n0 / 2;
#pragma unroll
        for (int r = 0; r < RW; r++) {
            const i64 g = g0 + (r < RW / 2 ? r : r - RW / 2);
            rows[r] = (g < half ? g : half - 1) + (r < RW / 2 ? 0 : half);
        }
        return;
    }
#pragma unroll
    for (int r = 0; r < RW; r++) rows[r] = n0 + r < N ? n0 + r : N - 1;
}
// Writes one finished value: y[n] = v, plus res[n] for MVF_RES.
__device__ __forceinline__ void mv_put_fused(float *y, i64 n, float v, const MVF &f) {
    y[n] = (f.mode & MVF_RES) ? f.res[n] + v : v;
}
// 1/sqrt(mean x² + eps) from the row's Σ x², in f32 (rsqrtf: at most 2 ulp;
// f64 sqrt and division measured 1.5% slower end to end on the 135M)
__device__ __forceinline__ float norm_inv(float tot, i64 K, const MVF &f) {
    return rsqrtf(tot / (float)K + f.eps);
}
// The block-wide row group's half of mv_store_fused (NT = MV_THREADS).
template <int RW, int NORM>
__device__ __forceinline__ void mv_store_fused_block(float (&acc)[RW][1], float ss, float *y, i64 n0, i64 N, i64 K,
                                                     const MVF &f) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    __shared__ float red[MV_THREADS / 32][RW + 1];
#pragma unroll
    for (int r = 0; r < RW; r++) {
        const float v = warp_sum(acc[r][0]);
        if (lane == 0) red[warp][r] = v;
    }
    if (NORM) {
        const float v = warp_sum(ss);
        if (lane == 0) red[warp][RW] = v;
    }
    __syncthreads();
    const int t = threadIdx.x;
    float inv = 1.0f;
    if (NORM) {
        float tot = 0.0f;
#pragma unroll
        for (int w = 0; w < MV_THREADS / 32; w++) tot += red[w][RW];
        inv = norm_inv(tot, K, f);
    }
    if (f.mode & MVF_SWIGLU) {
        const i64 half = N / 2, g = n0 / 2 + t;
        if (t < RW / 2 && g < half) {
            float a = 0.0f, b = 0.0f;
#pragma unroll
            for (int w = 0; w < MV_THREADS / 32; w++) {
                a += red[w][t];
                b += red[w][t + RW / 2];
            }
            a *= inv;
            b *= inv;
            mv_put_fused(y, g, a / (1.0f + expf(-a)) * b, f);
        }
        return;
    }
    if (t < RW && n0 + t < N) {
        float a = 0.0f;
#pragma unroll
        for (int w = 0; w < MV_THREADS / 32; w++) a += red[w][t];
        mv_put_fused(y, n0 + t, a * inv, f);
    }
}
// The fused kernels' store: reduces the RW dot partials and (NORM) the x²
// partial over the row group (a warp: NT = 32; the block: NT = MV_THREADS),
// then scales by 1/sqrt(mean x² + eps) and applies the mode.
template <int RW, int NT, int NORM>
__device__ __forceinline__ void mv_store_fused(float (&acc)[RW][1], float ss, float *y, i64 n0, i64 N, i64 K,
                                               const MVF &f) {
    const int lane = threadIdx.x & 31;
    if (NT == 32) { // a warp per row group: shuffles (every lane gets the sums)
        float inv = 1.0f;
        if (NORM) inv = norm_inv(warp_sum(ss), K, f); // the warp read all of x once
        const i64 half = N / 2;
#pragma unroll
        for (int r = 0; r < RW; r++) acc[r][0] = warp_sum(acc[r][0]) * inv;
#pragma unroll
        for (int r = 0; r < RW; r++) {
            if (lane != r) continue;
            if (f.mode & MVF_SWIGLU) {
                if (r < RW / 2 && n0 / 2 + r < half) {
                    const float a = acc[r][0], b = acc[r + RW / 2][0];
                    mv_put_fused(y, n0 / 2 + r, a / (1.0f + expf(-a)) * b, f);
                }
            } else if (n0 + r < N) {
                mv_put_fused(y, n0 + r, acc[r][0], f);
            }
        }
    } else {
        mv_store_fused_block<RW, NORM>(acc, ss, y, n0, N, K, f);
    }
}

// Sums each thread's partials over its row group of NT threads and writes
// y[m0 + m, n0 + r]. NT == 32: a warp per row group (shuffles only); NT > 32:
// warps reduce by shuffles, then through shared memory (needs RW*MT <= NT).
template <int RW, int MT, int NT>
__device__ __forceinline__ void mv_store(float (&acc)[RW][MT], float *y, i64 n0, int m0, int M, i64 N) {
    const int lane = threadIdx.x & 31;
    if (NT == 32) {
#pragma unroll
        for (int r = 0; r < RW; r++)
#pragma unroll
            for (int m = 0; m < MT; m++) {
                float s = warp_sum(acc[r][m]);
                if (lane == 0 && n0 + r < N && m0 + m < M) y[(i64)(m0 + m) * N + n0 + r] = s;
            }
        return;
    }
    __shared__ float red[MV_THREADS / 32][RW * MT];
    const int warp = threadIdx.x >> 5;
#pragma unroll
    for (int r = 0; r < RW; r++)
#pragma unroll
        for (int m = 0; m < MT; m++) {
            float s = warp_sum(acc[r][m]);
            if (lane == 0) red[warp][r * MT + m] = s;
        }
    __syncthreads();
    const int t = threadIdx.x % NT, w0 = (threadIdx.x / NT) * (NT / 32);
    if (t < RW * MT) {
        const int r = t / MT, m = t % MT;
        float s = 0.0f;
#pragma unroll
        for (int w = 0; w < NT / 32; w++) s += red[w0 + w][t];
        if (n0 + r < N && m0 + m < M) y[(i64)(m0 + m) * N + n0 + r] = s;
    }
}

// ---------------------------------------------------------------- MLX affine 4/8-bit
// MV_MLX_PREFETCH_SC = 1 loads each chunk's group scale/bias in the same batch
// as the weight loads (so they overlap with them instead of adding a dependent
// global-load latency per chunk); 0 keeps the load-at-use order. Measured on
// the H100 (mlx4 g64 4096x14336, us, off vs on): M=1 37.8 vs 42.5, M=8 364 vs
// 254 -- so it is on only for the 8-row tile.
#define MV_MLX_PREFETCH_SC (PF >= 0 ? PF == 1 : MT == 8)
// A 2-byte (f16 or bf16) scale or bias, converted without branching on the
// dtype (the SC16 kernels: a uniform branch per load would keep the compiler
// from batching the loads).
__device__ __forceinline__ float ld_sc16(const void *p, int dt, i64 i) {
    const u16 v = __ldg((const u16 *)p + i);
    const float fb = __uint_as_float((u32)v << 16), fh = h2f(v);
    return dt == DT_BF16 ? fb : fh;
}
// SC16 = 1: scales and biases are f16 or bf16 (the launcher checks).
// EW = 1: the kernel was entered with PDL_LAUNCH only; each thread issues its
// first weight (and scale) loads, then PDL_WAITs before it reads x, so that
// latency overlaps the previous kernel's tail (weights never depend on it).
// Needs: data 16-byte aligned, row_bytes % 16 == 0, group % (128/BITS) == 0,
// x 16-byte aligned with K % 4 == 0.
// FU: a fused kernel (MT = 1, NT = MV_THREADS or 32): 1 reads x, 2 reads x
// and the norm weight (the norm prologue), both through L1; f gives the norm
// weight, residual and mode.
template <int BITS, int MT, int RW, int NT, int UNR_ = 0, int PF = -1, int SC16 = 0, int EW = 0, int FU = 0>
__device__ void mv_mlx_body(const WP &w, const float *x, float *y, int M, i64 N, const MVF &f = MVF{}) {
    const int NORM = FU == 2;
    const int VALS = 128 / BITS; // values per 16-byte chunk
    const int lane = threadIdx.x % NT; // this thread's place in its row group
    const i64 n0 = ((i64)blockIdx.x * (MV_THREADS / NT) + threadIdx.x / NT) * RW;
    const int m0 = blockIdx.y * MT;
    const i64 nchunks = w.row_bytes / 16;
    const i64 gpr = w.K / w.group;
    const int mt = M - m0 < MT ? M - m0 : MT;
    float acc[RW][MT];
#pragma unroll
    for (int r = 0; r < RW; r++)
#pragma unroll
        for (int m = 0; m < MT; m++) acc[r][m] = 0.0f;
    i64 rows[RW];
    mv_rows<RW>(rows, n0, N, FU && (f.mode & MVF_SWIGLU));
    float ss = 0.0f; // NORM: this thread's Σ x²

    const int UNR = UNR_ ? UNR_ : RW >= 8 ? 2 : 4; // chunks per lane whose loads are issued together
#pragma unroll 1
    for (i64 c0 = lane; c0 < nchunks; c0 += NT * UNR) {
        uint4 qb[UNR][RW];
        float scb[UNR][RW], bib[UNR][RW];
#pragma unroll
        for (int u = 0; u < UNR; u++)
#pragma unroll
            for (int r = 0; r < RW; r++) {
                scb[u][r] = 0.0f;
                bib[u][r] = 0.0f;
                if (c0 + NT * u < nchunks) qb[u][r] = ldg_stream(w.data + rows[r] * w.row_bytes + (c0 + NT * u) * 16);
            }
        if (MV_MLX_PREFETCH_SC) {
#pragma unroll
            for (int u = 0; u < UNR; u++)
#pragma unroll
                for (int r = 0; r < RW; r++)
                    if (c0 + NT * u < nchunks) {
                        const i64 gg = (c0 + NT * u) * VALS / w.group;
                        scb[u][r] = SC16 ? ld_sc16(w.scales, w.sdt, rows[r] * gpr + gg)
                                         : ldf(w.scales, w.sdt, rows[r] * gpr + gg);
                        bib[u][r] = SC16 ? ld_sc16(w.biases, w.sdt, rows[r] * gpr + gg)
                                         : ldf(w.biases, w.sdt, rows[r] * gpr + gg);
                    }
        }
        if (EW && c0 == lane) PDL_WAIT(); // first chunk's loads are out
#pragma unroll
    for (int u = 0; u < UNR; u++) {
        const i64 c = c0 + NT * u;
        if (c >= nchunks) break;
        uint4 q[RW];
#pragma unroll
        for (int r = 0; r < RW; r++) q[r] = qb[u][r];
        const i64 k0 = c * VALS;
        const i64 g = k0 / w.group;
        float sc[RW], bi[RW];
#pragma unroll
        for (int r = 0; r < RW; r++) {
            if (MV_MLX_PREFETCH_SC) {
                sc[r] = scb[u][r];
                bi[r] = bib[u][r];
            } else {
                sc[r] = SC16 ? ld_sc16(w.scales, w.sdt, rows[r] * gpr + g) : ldf(w.scales, w.sdt, rows[r] * gpr + g);
                bi[r] = SC16 ? ld_sc16(w.biases, w.sdt, rows[r] * gpr + g) : ldf(w.biases, w.sdt, rows[r] * gpr + g);
            }
        }
#pragma unroll
        for (int m = 0; m < MT; m++) {
            if (m >= mt) break;
            const float *xr = x + (i64)(m0 + m) * w.K + k0;
            float dot[RW];
#pragma unroll
            for (int r = 0; r < RW; r++) dot[r] = 0.0f;
            float sx = 0.0f;
#pragma unroll
            for (int wi = 0; wi < 4; wi++) {
                if (BITS == 4) {
                    float4 xa = ldxn<NORM>(xr, f.nw, k0, wi * 8, ss), xb = ldxn<NORM>(xr, f.nw, k0, wi * 8 + 4, ss);
                    sx += (xa.x + xa.y) + (xa.z + xa.w) + (xb.x + xb.y) + (xb.z + xb.w);
#pragma unroll
                    for (int r = 0; r < RW; r++) {
                        u32 u = wi == 0 ? q[r].x : wi == 1 ? q[r].y : wi == 2 ? q[r].z : q[r].w;
                        u32 lo = u & 0x0F0F0F0Fu, hi = (u >> 4) & 0x0F0F0F0Fu;
                        float d = dot[r];
                        d = fmaf(xa.x, bytef7(lo, 0), d);
                        d = fmaf(xa.y, bytef7(hi, 0), d);
                        d = fmaf(xa.z, bytef7(lo, 1), d);
                        d = fmaf(xa.w, bytef7(hi, 1), d);
                        d = fmaf(xb.x, bytef7(lo, 2), d);
                        d = fmaf(xb.y, bytef7(hi, 2), d);
                        d = fmaf(xb.z, bytef7(lo, 3), d);
                        d = fmaf(xb.w, bytef7(hi, 3), d);
                        dot[r] = d;
                    }
                } else {
                    float4 xa = ldxn<NORM>(xr, f.nw, k0, wi * 4, ss);
                    sx += (xa.x + xa.y) + (xa.z + xa.w);
#pragma unroll
                    for (int r = 0; r < RW; r++) {
                        u32 u = wi == 0 ? q[r].x : wi == 1 ? q[r].y : wi == 2 ? q[r].z : q[r].w;
                        float d = dot[r];
                        d = fmaf(xa.x, bytef(u, 0), d);
                        d = fmaf(xa.y, bytef(u, 1), d);
                        d = fmaf(xa.z, bytef(u, 2), d);
                        d = fmaf(xa.w, bytef(u, 3), d);
                        dot[r] = d;
                    }
                }
            }
#pragma unroll
            for (int r = 0; r < RW; r++) acc[r][m] += BITS == 4 ? (64.0f * sc[r]) * dot[r] + (bi[r] - 128.0f * sc[r]) * sx
                                                           : sc[r] * dot[r] + bi[r] * sx;
        }
    }
    }
    if (EW && lane >= nchunks) PDL_WAIT(); // threads without a chunk
    if (FU) mv_store_fused<RW, NT, NORM>((float(&)[RW][1])acc, ss, y, n0, N, w.K, f);
    else mv_store<RW, MT, NT>(acc, y, n0, m0, M, N);
}

// ---------------------------------------------------------------- dense f32/f16/bf16
// Needs: data 16-byte aligned, row bytes % 16 == 0, x aligned with K % 4 == 0.
template <int DT, int MT, int RW, int NT>
__device__ void mv_dense_body(const WP &w, const float *x, float *y, int M, i64 N) {
    const int VALS = DT == DT_F32 ? 4 : 8;
    const int lane = threadIdx.x % NT; // this thread's place in its row group
    const i64 n0 = ((i64)blockIdx.x * (MV_THREADS / NT) + threadIdx.x / NT) * RW;
    const int m0 = blockIdx.y * MT;
    const i64 nchunks = w.row_bytes / 16;
    const int mt = M - m0 < MT ? M - m0 : MT;
    float acc[RW][MT];
#pragma unroll
    for (int r = 0; r < RW; r++)
#pragma unroll
        for (int m = 0; m < MT; m++) acc[r][m] = 0.0f;
    i64 rows[RW];
#pragma unroll
    for (int r = 0; r < RW; r++) rows[r] = n0 + r < N ? n0 + r : N - 1;
#pragma unroll 4
    for (i64 c = lane; c < nchunks; c += NT) {
        float wv[RW][VALS];
#pragma unroll
        for (int r = 0; r < RW; r++) {
            uint4 u = ldg_stream(w.data + rows[r] * w.row_bytes + c * 16);
            if (DT == DT_F32) {
                wv[r][0] = __uint_as_float(u.x); wv[r][1] = __uint_as_float(u.y);
                wv[r][2] = __uint_as_float(u.z); wv[r][3] = __uint_as_float(u.w);
            } else {
                u32 uu[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    if (DT == DT_F16) {
                        wv[r][2 * e] = h2f((u16)(uu[e] & 0xffffu));
                        wv[r][2 * e + 1] = h2f((u16)(uu[e] >> 16));
                    } else {
                        wv[r][2 * e] = __uint_as_float(uu[e] << 16);
                        wv[r][2 * e + 1] = __uint_as_float(uu[e] & 0xffff0000u);
                    }
                }
            }
        }
        const i64 k0 = c * VALS;
#pragma unroll
        for (int m = 0; m < MT; m++) {
            if (m >= mt) break;
            const float *xr = x + (i64)(m0 + m) * w.K + k0;
#pragma unroll
            for (int v4 = 0; v4 < VALS; v4 += 4) {
                float4 xa = ldx4(xr, v4);
#pragma unroll
                for (int r = 0; r < RW; r++) {
                    float d = acc[r][m];
                    d = fmaf(xa.x, wv[r][v4], d);
                    d = fmaf(xa.y, wv[r][v4 + 1], d);
                    d = fmaf(xa.z, wv[r][v4 + 2], d);
                    d = fmaf(xa.w, wv[r][v4 + 3], d);
                    acc[r][m] = d;
                }
            }
        }
    }
    mv_store<RW, MT, NT>(acc, y, n0, m0, M, N);
}

// ---------------------------------------------------------------- GGUF Q4_0 / Q4_1 / Q8_0 (lane per 32-value block)
// Q4_1 block (20 bytes): f16 d, f16 m, 16 nibble bytes (low nibbles = values
// 0..15, high = 16..31); y = d*q + m, so Σ x*y = d*Σ x*q + m*Σ x.
// Needs: data 2-byte aligned (Q4_1, Q8_0: data and row bytes 4-byte aligned), x
// aligned with K % 4 == 0.
// Read-only weight loads as volatile asm (issued in program order, so the
// EW kernels' loads go out before their PDL_WAIT).
__device__ __forceinline__ u32 ldw_u16(const void *p) {
    unsigned short v;
    asm volatile("ld.global.nc.u16 %0, [%1];" : "=h"(v) : "l"(p));
    return v;
}
__device__ __forceinline__ u32 ldw_u32(const void *p) {
    u32 v;
    asm volatile("ld.global.nc.u32 %0, [%1];" : "=r"(v) : "l"(p));
    return v;
}
__device__ __forceinline__ u32 ld_u32_2a(const u8 *p) { // 2-byte aligned u32
    return ldw_u16(p) | (ldw_u16(p + 2) << 16);
}

// Q8_0 blocks are 34 bytes (f16 d, 32 int8): with rows 4-byte aligned (the
// launcher checks data and row bytes % 4), a thread loads the 9 aligned
// words around its block -- 9 word loads instead of 17 halfword loads, the
// LSU's work. An even block (byte offset % 4 == 0) has d in word 0's low
// half and its quants 2 bytes into the words (quant word i = bytes 2..3 of
// word i, 0..1 of word i + 1); an odd one has d in word 0's high half and
// its quants in words 1..8.
#define Q8_SEL(odd) ((odd) ? 0x7654u : 0x5432u)

// EW: early weight loads, as in mv_mlx_body.
// FU: fused kernels, as in mv_mlx_body.
template <int TYPE, int MT, int RW, int NT, int UNR_ = 0, int EW = 0, int FU = 0>
__device__ void mv_q8blk_body(const WP &w, const float *x, float *y, int M, i64 N, const MVF &f = MVF{}) {
    const int NORM = FU == 2;
    const int BS = TYPE == GG_Q4_0 ? 18 : TYPE == GG_Q4_1 ? 20 : 34;
    const int QO = TYPE == GG_Q4_1 ? 4 : 2; // byte offset of the quants in a block
    const bool NIB = TYPE != GG_Q8_0;        // 4-bit quants
    const int lane = threadIdx.x % NT; // this thread's place in its row group
    const i64 n0 = ((i64)blockIdx.x * (MV_THREADS / NT) + threadIdx.x / NT) * RW;
    const int m0 = blockIdx.y * MT;
    const i64 nblk = w.K / 32;
    const int mt = M - m0 < MT ? M - m0 : MT;
    float acc[RW][MT];
#pragma unroll
    for (int r = 0; r < RW; r++)
#pragma unroll
        for (int m = 0; m < MT; m++) acc[r][m] = 0.0f;
    i64 rows[RW];
    mv_rows<RW>(rows, n0, N, FU && (f.mode & MVF_SWIGLU));
    float ss = 0.0f; // NORM: this thread's Σ x²
    const int UNR = UNR_ ? UNR_ : (NIB ? 4 : 2) / (RW >= 8 ? 2 : 1), NW = NIB ? 4 : 8;
    const int NWL = TYPE == GG_Q8_0 ? 9 : NW; // words loaded per block and row
#pragma unroll 1
    for (i64 b0 = lane; b0 < nblk; b0 += NT * UNR) {
        u16 db[UNR][RW], mb[UNR][RW];
        u32 qwb[UNR][RW][NWL];
#pragma unroll
        for (int u = 0; u < UNR; u++)
#pragma unroll
            for (int r = 0; r < RW; r++)
                if (b0 + NT * u < nblk) {
                    const u8 *bp = w.data + rows[r] * w.row_bytes + (b0 + NT * u) * BS;
                    if (TYPE == GG_Q4_1) { // 20-byte blocks: 4-byte aligned (launcher checks data % 4)
                        const u32 dm = ldw_u32(bp);
                        db[u][r] = (u16)(dm & 0xffffu);
                        mb[u][r] = (u16)(dm >> 16);
#pragma unroll
                        for (int i = 0; i < NW; i++) qwb[u][r][i] = ldw_u32(bp + QO + 4 * i);
                    } else if (TYPE == GG_Q8_0) { // the 9 aligned words around the block; q8_words decodes
                        const u8 *ap = (const u8 *)((size_t)bp & ~(size_t)3);
#pragma unroll
                        for (int i = 0; i < NWL; i++) qwb[u][r][i] = ldw_u32(ap + 4 * i);
                    } else {
                        db[u][r] = (u16)ldw_u16(bp);
                        mb[u][r] = (u16)0;
#pragma unroll
                        for (int i = 0; i < NW; i++) qwb[u][r][i] = ld_u32_2a(bp + QO + 4 * i);
                    }
                }
        if (EW && b0 == lane) PDL_WAIT(); // first blocks' loads are out
#pragma unroll
    for (int u = 0; u < UNR; u++) {
        const i64 b = b0 + NT * u;
        if (b >= nblk) break;
        float dsc[RW], msc[RW];
        u32 qw[RW][NW];
#pragma unroll
        for (int r = 0; r < RW; r++) {
            if (TYPE == GG_Q8_0) { // quant words are taken from qwb at use
                dsc[r] = h2f((u16)((b & 1) ? qwb[u][r][0] >> 16 : qwb[u][r][0] & 0xffffu));
                msc[r] = 0.0f;
                continue;
            }
            dsc[r] = h2f(db[u][r]);
            msc[r] = TYPE == GG_Q4_1 ? h2f(mb[u][r]) : 0.0f;
#pragma unroll
            for (int i = 0; i < NW; i++) qw[r][i] = qwb[u][r][i];
        }
        const i64 k0 = b * 32;
#pragma unroll
        for (int m = 0; m < MT; m++) {
            if (m >= mt) break;
            const float *xr = x + (i64)(m0 + m) * w.K + k0;
            float dot[RW];
#pragma unroll
            for (int r = 0; r < RW; r++) dot[r] = 0.0f;
            float sx = 0.0f;
            if (NIB) {
#pragma unroll
                for (int i = 0; i < 4; i++) {
                    float4 xl = ldxn<NORM>(xr, f.nw, k0, 4 * i, ss), xh = ldxn<NORM>(xr, f.nw, k0, 16 + 4 * i, ss);
                    sx += (xl.x + xl.y) + (xl.z + xl.w) + (xh.x + xh.y) + (xh.z + xh.w);
#pragma unroll
                    for (int r = 0; r < RW; r++) {
                        u32 lo = qw[r][i] & 0x0F0F0F0Fu, hi = (qw[r][i] >> 4) & 0x0F0F0F0Fu;
                        float d = dot[r];
                        d = fmaf(xl.x, bytef7(lo, 0), d);
                        d = fmaf(xl.y, bytef7(lo, 1), d);
                        d = fmaf(xl.z, bytef7(lo, 2), d);
                        d = fmaf(xl.w, bytef7(lo, 3), d);
                        d = fmaf(xh.x, bytef7(hi, 0), d);
                        d = fmaf(xh.y, bytef7(hi, 1), d);
                        d = fmaf(xh.z, bytef7(hi, 2), d);
                        d = fmaf(xh.w, bytef7(hi, 3), d);
                        dot[r] = d;
                    }
                }
                if (TYPE == GG_Q4_1) {
#pragma unroll
                    for (int r = 0; r < RW; r++) acc[r][m] += (64.0f * dsc[r]) * dot[r] + (msc[r] - 128.0f * dsc[r]) * sx;
                } else {
#pragma unroll
                    for (int r = 0; r < RW; r++) acc[r][m] += dsc[r] * (64.0f * dot[r] - 136.0f * sx);
                }
            } else {
#pragma unroll
                for (int i = 0; i < 8; i++) {
                    float4 xa = ldxn<NORM>(xr, f.nw, k0, 4 * i, ss);
                    sx += (xa.x + xa.y) + (xa.z + xa.w);
#pragma unroll
                    for (int r = 0; r < RW; r++) {
                        const u32 qwi = TYPE == GG_Q8_0 ? __byte_perm(qwb[u][r][i], qwb[u][r][i + 1 < NWL ? i + 1 : i],
                                                                     Q8_SEL(b & 1))
                                                        : qw[r][i];
                        u32 u = qwi ^ 0x80808080u; // signed -> q + 128
                        float d = dot[r];
                        d = fmaf(xa.x, bytef(u, 0), d);
                        d = fmaf(xa.y, bytef(u, 1), d);
                        d = fmaf(xa.z, bytef(u, 2), d);
                        d = fmaf(xa.w, bytef(u, 3), d);
                        dot[r] = d;
                    }
                }
#pragma unroll
                for (int r = 0; r < RW; r++) acc[r][m] += dsc[r] * (dot[r] - 128.0f * sx);
            }
        }
    }
    }
    if (EW && lane >= nblk) PDL_WAIT(); // threads without a block
    if (FU) mv_store_fused<RW, NT, NORM>((float(&)[RW][1])acc, ss, y, n0, N, w.K, f);
    else mv_store<RW, MT, NT>(acc, y, n0, m0, M, N);
}

// ---------------------------------------------------------------- staged tiles (many short Q8_0 rows)
// The lm_head of a small model (49,152 rows of K = 576) in Q8_0: a block
// copies its tile of MV_TILE_ROWS contiguous rows into shared memory with
// 16-byte cp.async (coalesced, before the PDL wait: weights never depend on
// earlier kernels), stages x (times the norm weight, summing x²) once, then
// each warp decodes 8 rows with a lane per 34-byte block, reading the words
// from shared memory. Loading a lane's blocks straight from global memory
// (mv_q8blk_body) spends most of the kernel in the L1 pipe (each word load
// of a warp spans 612 bytes) and holds the bytes in flight in registers,
// which caps the SM at 16 warps; here they wait in shared memory.
// Needs: data 16-byte aligned, row bytes % 4 == 0, K % 32 == 0, x aligned.
#define MV_TILE_ROWS 32
__device__ __forceinline__ void cp_async16(void *dst, const void *src, int src_bytes) {
    const unsigned d = (unsigned)__cvta_generic_to_shared(dst);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(d), "l"(src), "r"(src_bytes) : "memory");
}
__device__ __forceinline__ void cp_async_wait_all() { asm volatile("cp.async.wait_all;" ::: "memory"); }
// float4 slot j (0..7) of 32-value group c in the staged x: swizzled so that
// the 8 lanes of a quarter-warp, reading slot j of groups c..c+7, hit
// distinct banks.
__device__ __forceinline__ int xs_slot(i64 c, int j) { return (int)(c * 8 + (j ^ (int)(c & 7))); }

template <int NORM>
__device__ void mv_q8_tile_body(const WP &w, const float *x, float *y, i64 N, const MVF &f) {
    extern __shared__ __align__(16) u8 mv_smem[];
    float4 *xs = (float4 *)mv_smem;         // [K / 4] x (· norm weight), swizzled slots
    u8 *tile = mv_smem + w.K * 4;           // [MV_TILE_ROWS, row_bytes] the block's rows
    __shared__ float red[MV_THREADS / 32];  // Σ x² per warp
    const int t = threadIdx.x, lane = t & 31, warp = t >> 5;
    const i64 r0 = (i64)blockIdx.x * MV_TILE_ROWS;
    const i64 nrow = N - r0 < MV_TILE_ROWS ? N - r0 : MV_TILE_ROWS;
    const i64 bytes = nrow * w.row_bytes;   // contiguous from data + r0 · row_bytes (16-byte aligned)
    const u8 *src = w.data + r0 * w.row_bytes;
    for (i64 o = (i64)t * 16; o < bytes; o += MV_THREADS * 16)
        cp_async16(tile + o, src + o, bytes - o < 16 ? (int)(bytes - o) : 16);
    asm volatile("cp.async.commit_group;" ::: "memory");
    PDL_WAIT();
    float ss = 0.0f;
    for (i64 q = t; q < w.K / 4; q += MV_THREADS) {
        float4 v = ldx4(x, q * 4);
        if (NORM) {
            ss = fmaf(v.x, v.x, fmaf(v.y, v.y, fmaf(v.z, v.z, fmaf(v.w, v.w, ss))));
            const float4 g = ldx4(f.nw, q * 4);
            v.x *= g.x; v.y *= g.y; v.z *= g.z; v.w *= g.w;
        }
        xs[xs_slot(q >> 3, (int)(q & 7))] = v;
    }
    if (NORM) {
        ss = warp_sum(ss);
        if (lane == 0) red[warp] = ss;
    }
    cp_async_wait_all();
    __syncthreads();
    float tot = 0.0f; // the row's Σ x², held by lane 0 only (mv_store_fused sums it over the warp)
    if (NORM && lane == 0)
#pragma unroll
        for (int i = 0; i < MV_THREADS / 32; i++) tot += red[i];
    float acc[8][1];
#pragma unroll
    for (int r = 0; r < 8; r++) acc[r][0] = 0.0f;
    const i64 nblk = w.K / 32;
    for (i64 b = lane; b < nblk; b += 32) {
        float4 xv[8];
        float sx = 0.0f;
#pragma unroll
        for (int i = 0; i < 8; i++) {
            xv[i] = xs[xs_slot(b, i)];
            sx += (xv[i].x + xv[i].y) + (xv[i].z + xv[i].w);
        }
        const u32 sel = Q8_SEL(b & 1); // row bytes % 4 == 0: the parity is the block's
#pragma unroll
        for (int r = 0; r < 8; r++) {
            const u32 *wp = (const u32 *)((size_t)(tile + (i64)(warp * 8 + r) * w.row_bytes + b * 34) & ~(size_t)3);
            u32 wv[9];
#pragma unroll
            for (int i = 0; i < 9; i++) wv[i] = wp[i];
            const float d = h2f((u16)((b & 1) ? wv[0] >> 16 : wv[0] & 0xffffu));
            float dot = 0.0f;
#pragma unroll
            for (int i = 0; i < 8; i++) {
                const u32 u = __byte_perm(wv[i], wv[i + 1], sel) ^ 0x80808080u; // signed -> q + 128
                dot = fmaf(xv[i].x, bytef(u, 0), dot);
                dot = fmaf(xv[i].y, bytef(u, 1), dot);
                dot = fmaf(xv[i].z, bytef(u, 2), dot);
                dot = fmaf(xv[i].w, bytef(u, 3), dot);
            }
            acc[r][0] += d * (dot - 128.0f * sx);
        }
    }
    mv_store_fused<8, 32, NORM>(acc, tot, y, r0 + warp * 8, N, w.K, f);
}

// ---------------------------------------------------------------- GGUF Q4_K (lane per 64-value chunk)
// Needs: data 16-byte aligned (144-byte blocks keep that), x aligned with K % 4 == 0.
template <int MT, int RW, int NT>
__device__ void mv_q4k_body(const WP &w, const float *x, float *y, int M, i64 N) {
    const int lane = threadIdx.x % NT; // this thread's place in its row group
    const i64 n0 = ((i64)blockIdx.x * (MV_THREADS / NT) + threadIdx.x / NT) * RW;
    const int m0 = blockIdx.y * MT;
    const i64 nch = w.K / 64;
    const int mt = M - m0 < MT ? M - m0 : MT;
    float acc[RW][MT];
#pragma unroll
    for (int r = 0; r < RW; r++)
#pragma unroll
        for (int m = 0; m < MT; m++) acc[r][m] = 0.0f;
    i64 rows[RW];
#pragma unroll
    for (int r = 0; r < RW; r++) rows[r] = n0 + r < N ? n0 + r : N - 1;
    const int UNR = 2;
    for (i64 ch0 = lane; ch0 < nch; ch0 += NT * UNR) {
        uint4 qab[UNR][RW], qbb[UNR][RW];
        uint4 hdr[UNR][RW]; // d, dmin, scales[12]: the block's first 16 bytes
#pragma unroll
        for (int u = 0; u < UNR; u++)
#pragma unroll
            for (int r = 0; r < RW; r++) {
                const i64 chu = ch0 + NT * u;
                if (chu < nch) {
                    const u8 *bp = w.data + rows[r] * w.row_bytes + (chu >> 2) * 144;
                    const int cu = (int)(chu & 3);
                    qab[u][r] = ldg_stream(bp + 16 + 32 * cu);
                    qbb[u][r] = ldg_stream(bp + 32 + 32 * cu);
                    hdr[u][r] = __ldg((const uint4 *)bp);
                }
            }
#pragma unroll
    for (int u = 0; u < UNR; u++) {
        const i64 ch = ch0 + NT * u;
        if (ch >= nch) break;
        const i64 blk = ch >> 2;
        const int c = (int)(ch & 3);
        uint4 qa[RW], qb[RW];
        float d1[RW], m1[RW], d2[RW], m2[RW];
#pragma unroll
        for (int r = 0; r < RW; r++) {
            qa[r] = qab[u][r];
            qb[r] = qbb[u][r];
            u32 dd = hdr[u][r].x, s0 = hdr[u][r].y, s1 = hdr[u][r].z, s2 = hdr[u][r].w;
            u8 sc[12];
#pragma unroll
            for (int i = 0; i < 4; i++) {
                sc[i] = (u8)(s0 >> (8 * i));
                sc[4 + i] = (u8)(s1 >> (8 * i));
                sc[8 + i] = (u8)(s2 >> (8 * i));
            }
            float d = h2f((u16)(dd & 0xffffu)), dmin = h2f((u16)(dd >> 16));
            int a0, b0, a1, b1;
            // sub-blocks 2c and 2c+1 (c is run-time: select without local arrays)
            int j = 2 * c;
            if (j < 4) {
                a0 = (j == 0 ? sc[0] : sc[2]) & 63;
                b0 = (j == 0 ? sc[4] : sc[6]) & 63;
                a1 = (j == 0 ? sc[1] : sc[3]) & 63;
                b1 = (j == 0 ? sc[5] : sc[7]) & 63;
            } else {
                int s8 = j == 4 ? sc[8] : sc[10], s9 = j == 4 ? sc[9] : sc[11];
                int sA = j == 4 ? sc[0] : sc[2], sB = j == 4 ? sc[1] : sc[3];
                int sE = j == 4 ? sc[4] : sc[6], sF = j == 4 ? sc[5] : sc[7];
                a0 = (s8 & 0xF) | ((sA >> 6) << 4);
                b0 = (s8 >> 4) | ((sE >> 6) << 4);
                a1 = (s9 & 0xF) | ((sB >> 6) << 4);
                b1 = (s9 >> 4) | ((sF >> 6) << 4);
            }
            d1[r] = d * (float)a0; m1[r] = dmin * (float)b0;
            d2[r] = d * (float)a1; m2[r] = dmin * (float)b1;
        }
        const i64 k0 = blk * 256 + c * 64;
#pragma unroll
        for (int m = 0; m < MT; m++) {
            if (m >= mt) break;
            const float *xr = x + (i64)(m0 + m) * w.K + k0;
            float dl[RW], dh[RW];
#pragma unroll
            for (int r = 0; r < RW; r++) dl[r] = dh[r] = 0.0f;
            float sxl = 0.0f, sxh = 0.0f;
#pragma unroll
            for (int i = 0; i < 8; i++) {
                float4 xl = ldx4(xr, 4 * i), xh = ldx4(xr, 32 + 4 * i);
                sxl += (xl.x + xl.y) + (xl.z + xl.w);
                sxh += (xh.x + xh.y) + (xh.z + xh.w);
#pragma unroll
                for (int r = 0; r < RW; r++) {
                    uint4 qq = i < 4 ? qa[r] : qb[r];
                    int ii = i & 3;
                    u32 u = ii == 0 ? qq.x : ii == 1 ? qq.y : ii == 2 ? qq.z : qq.w;
                    u32 lo = u & 0x0F0F0F0Fu, hi = (u >> 4) & 0x0F0F0F0Fu;
                    float a = dl[r], b = dh[r];
                    a = fmaf(xl.x, bytef7(lo, 0), a); a = fmaf(xl.y, bytef7(lo, 1), a);
                    a = fmaf(xl.z, bytef7(lo, 2), a); a = fmaf(xl.w, bytef7(lo, 3), a);
                    b = fmaf(xh.x, bytef7(hi, 0), b); b = fmaf(xh.y, bytef7(hi, 1), b);
                    b = fmaf(xh.z, bytef7(hi, 2), b); b = fmaf(xh.w, bytef7(hi, 3), b);
                    dl[r] = a; dh[r] = b;
                }
            }
#pragma unroll
            for (int r = 0; r < RW; r++)
                acc[r][m] += d1[r] * (64.0f * dl[r] - 128.0f * sxl) - m1[r] * sxl + d2[r] * (64.0f * dh[r] - 128.0f * sxh) -
                             m2[r] * sxh;
        }
    }
    }
    mv_store<RW, MT, NT>(acc, y, n0, m0, M, N);
}

// ---------------------------------------------------------------- GGUF Q6_K (lane per 32-value quarter-half)
// Lane takes (block, half nh, l-range of 32): values l, l+32, l+64, l+96 of the half
// for l in [0,32) need ql[l], ql[l+32], qh[l]; we split a half into 4 groups of 8 l's
// so each lane reads 8 + 8 + 8 bytes of ql/qh and covers 32 values. Needs data 2-aligned.
template <int MT, int RW, int NT>
__device__ void mv_q6k_body(const WP &w, const float *x, float *y, int M, i64 N) {
    const int lane = threadIdx.x % NT; // this thread's place in its row group
    const i64 n0 = ((i64)blockIdx.x * (MV_THREADS / NT) + threadIdx.x / NT) * RW;
    const int m0 = blockIdx.y * MT;
    const i64 nu = w.K / 32; // units of 32 values: (block, half, lg)
    const int mt = M - m0 < MT ? M - m0 : MT;
    float acc[RW][MT];
#pragma unroll
    for (int r = 0; r < RW; r++)
#pragma unroll
        for (int m = 0; m < MT; m++) acc[r][m] = 0.0f;
    i64 rows[RW];
#pragma unroll
    for (int r = 0; r < RW; r++) rows[r] = n0 + r < N ? n0 + r : N - 1;
#pragma unroll 4
    for (i64 u = lane; u < nu; u += NT) {
        const i64 blk = u >> 3;
        const int nh = (int)((u >> 2) & 1), lg = (int)(u & 3); // l in [8*lg, 8*lg+8)
        u32 ql0[RW][2], ql1[RW][2], qh[RW][2];
        float dsc[RW][4];
#pragma unroll
        for (int r = 0; r < RW; r++) {
            const u8 *bp = w.data + rows[r] * w.row_bytes + blk * 210;
            const u8 *qlp = bp + nh * 64 + 8 * lg, *qhp = bp + 128 + nh * 32 + 8 * lg;
            ql0[r][0] = ld_u32_2a(qlp); ql0[r][1] = ld_u32_2a(qlp + 4);
            ql1[r][0] = ld_u32_2a(qlp + 32); ql1[r][1] = ld_u32_2a(qlp + 36);
            qh[r][0] = ld_u32_2a(qhp); qh[r][1] = ld_u32_2a(qhp + 4);
            float d = h2f(__ldg((const u16 *)(bp + 208)));
            // scale index is = l/16 + 2*qd: l/16 = lg/2 for all 8 l's of this lane
            const i8 *scp = (const i8 *)(bp + 192) + nh * 8 + (lg >> 1);
#pragma unroll
            for (int qd = 0; qd < 4; qd++) dsc[r][qd] = d * (float)scp[2 * qd];
        }
        const i64 kb = blk * 256 + nh * 128 + 8 * lg;
#pragma unroll
        for (int m = 0; m < MT; m++) {
            if (m >= mt) break;
            const float *xr = x + (i64)(m0 + m) * w.K + kb;
            float dt4[RW][4];
#pragma unroll
            for (int r = 0; r < RW; r++)
#pragma unroll
                for (int qd = 0; qd < 4; qd++) dt4[r][qd] = 0.0f;
            float sx[4] = {0.0f, 0.0f, 0.0f, 0.0f};
#pragma unroll
            for (int h = 0; h < 2; h++) {
                float4 x0 = ldx4(xr, 4 * h), x1 = ldx4(xr, 32 + 4 * h), x2 = ldx4(xr, 64 + 4 * h),
                       x3 = ldx4(xr, 96 + 4 * h);
                sx[0] += (x0.x + x0.y) + (x0.z + x0.w);
                sx[1] += (x1.x + x1.y) + (x1.z + x1.w);
                sx[2] += (x2.x + x2.y) + (x2.z + x2.w);
                sx[3] += (x3.x + x3.y) + (x3.z + x3.w);
#pragma unroll
                for (int r = 0; r < RW; r++) {
                    u32 a = ql0[r][h], b = ql1[r][h], hh = qh[r][h];
                    // 6-bit values per byte lane: q0 = a&15 | (hh&3)<<4, q1 = b&15 | ((hh>>2)&3)<<4,
                    // q2 = a>>4 | ((hh>>4)&3)<<4, q3 = b>>4 | ((hh>>6)&3)<<4
                    u32 q0 = (a & 0x0F0F0F0Fu) | ((hh << 4) & 0x30303030u);
                    u32 q1 = (b & 0x0F0F0F0Fu) | ((hh << 2) & 0x30303030u);
                    u32 q2 = ((a >> 4) & 0x0F0F0F0Fu) | (hh & 0x30303030u);
                    u32 q3 = ((b >> 4) & 0x0F0F0F0Fu) | ((hh >> 2) & 0x30303030u);
                    float t;
                    t = dt4[r][0];
                    t = fmaf(x0.x, bytef7(q0, 0), t); t = fmaf(x0.y, bytef7(q0, 1), t);
                    t = fmaf(x0.z, bytef7(q0, 2), t); t = fmaf(x0.w, bytef7(q0, 3), t);
                    dt4[r][0] = t;
                    t = dt4[r][1];
                    t = fmaf(x1.x, bytef7(q1, 0), t); t = fmaf(x1.y, bytef7(q1, 1), t);
                    t = fmaf(x1.z, bytef7(q1, 2), t); t = fmaf(x1.w, bytef7(q1, 3), t);
                    dt4[r][1] = t;
                    t = dt4[r][2];
                    t = fmaf(x2.x, bytef7(q2, 0), t); t = fmaf(x2.y, bytef7(q2, 1), t);
                    t = fmaf(x2.z, bytef7(q2, 2), t); t = fmaf(x2.w, bytef7(q2, 3), t);
                    dt4[r][2] = t;
                    t = dt4[r][3];
                    t = fmaf(x3.x, bytef7(q3, 0), t); t = fmaf(x3.y, bytef7(q3, 1), t);
                    t = fmaf(x3.z, bytef7(q3, 2), t); t = fmaf(x3.w, bytef7(q3, 3), t);
                    dt4[r][3] = t;
                }
            }
#pragma unroll
            for (int r = 0; r < RW; r++)
#pragma unroll
                for (int qd = 0; qd < 4; qd++) acc[r][m] += dsc[r][qd] * (64.0f * dt4[r][qd] - 160.0f * sx[qd]);
        }
    }
    mv_store<RW, MT, NT>(acc, y, n0, m0, M, N);
}

// ---------------------------------------------------------------- instances
// NAME_m<MT>: warp row groups, 2 rows each. NAME_b<MT>: block row groups
// (K split over 128 threads) of 4 rows; for one row of x (b1) the MLX, Q4_0,
// Q4_1 and Q8_0 kernels take 8 rows with one chunk in flight per row and at
// most 128 registers (4 blocks per SM): the best of the H100 sweep of
// (threads per row group, rows, chunks in flight, registers) in
// BENCHMARKS.md (variant "r" of the mvx_* kernels below).
#define MVK(NAME, BODY, ...)                                                                             \
    extern "C" __global__ void __launch_bounds__(MV_THREADS) NAME(WP w, const float *x, float *y, int M, i64 N) { \
        PDL_ENTER();                                                                                     \
        BODY<__VA_ARGS__>(w, x, y, M, N);                                                                \
    }
#define MVX(NAME, MINB, BODY, ...)                                                                             \
    extern "C" __global__ void __launch_bounds__(MV_THREADS, MINB) NAME(WP w, const float *x, float *y, int M, i64 N) { \
        PDL_ENTER();                                                                                       \
        BODY<__VA_ARGS__>(w, x, y, M, N);                                                                  \
    }
// MVXE: the same with early weight loads (EW = 1 bodies: PDL_WAIT inside).
#define MVXE(NAME, MINB, BODY, ...)                                                                            \
    extern "C" __global__ void __launch_bounds__(MV_THREADS, MINB) NAME(WP w, const float *x, float *y, int M, i64 N) { \
        PDL_LAUNCH();                                                                                      \
        BODY<__VA_ARGS__>(w, x, y, M, N);                                                                  \
    }
#define MV_SET_NARROW(MT)                                                     \
    MVK(mv_mlx4_m##MT, mv_mlx_body, 4, MT, 2, 32)                             \
    MVK(mv_mlx8_m##MT, mv_mlx_body, 8, MT, 2, 32)                             \
    MVK(mv_f32_m##MT, mv_dense_body, DT_F32, MT, 2, 32)                       \
    MVK(mv_f16_m##MT, mv_dense_body, DT_F16, MT, 2, 32)                       \
    MVK(mv_bf16_m##MT, mv_dense_body, DT_BF16, MT, 2, 32)                     \
    MVK(mv_q4_0_m##MT, mv_q8blk_body, GG_Q4_0, MT, 2, 32)                     \
    MVK(mv_q4_1_m##MT, mv_q8blk_body, GG_Q4_1, MT, 2, 32)                     \
    MVK(mv_q8_0_m##MT, mv_q8blk_body, GG_Q8_0, MT, 2, 32)                     \
    MVK(mv_q4_k_m##MT, mv_q4k_body, MT, 2, 32)                                \
    MVK(mv_q6_k_m##MT, mv_q6k_body, MT, 2, 32)
#define MV_SET_WIDE_OTHERS(MT)                                                \
    MVK(mv_f32_b##MT, mv_dense_body, DT_F32, MT, 4, MV_THREADS)               \
    MVK(mv_f16_b##MT, mv_dense_body, DT_F16, MT, 4, MV_THREADS)               \
    MVK(mv_bf16_b##MT, mv_dense_body, DT_BF16, MT, 4, MV_THREADS)             \
    MVK(mv_q4_k_b##MT, mv_q4k_body, MT, 4, MV_THREADS)                        \
    MVK(mv_q6_k_b##MT, mv_q6k_body, MT, 4, MV_THREADS)
#define MV_SET(MT)                                                            \
    MV_SET_NARROW(MT)                                                         \
    MV_SET_WIDE_OTHERS(MT)                                                    \
    MVK(mv_mlx4_b##MT, mv_mlx_body, 4, MT, 4, MV_THREADS, 1, 1, 1)            \
    MVK(mv_mlx8_b##MT, mv_mlx_body, 8, MT, 4, MV_THREADS, 1, 1, 1)            \
    MVK(mv_q4_0_b##MT, mv_q8blk_body, GG_Q4_0, MT, 4, MV_THREADS, 1)          \
    MVK(mv_q4_1_b##MT, mv_q8blk_body, GG_Q4_1, MT, 4, MV_THREADS, 1)          \
    MVK(mv_q8_0_b##MT, mv_q8blk_body, GG_Q8_0, MT, 4, MV_THREADS, 1)
MV_SET_NARROW(1)
MV_SET_WIDE_OTHERS(1)
MVXE(mv_mlx4_b1, 4, mv_mlx_body, 4, 1, 8, MV_THREADS, 1, 1, 1, 1)
MVXE(mv_mlx8_b1, 4, mv_mlx_body, 8, 1, 8, MV_THREADS, 1, 1, 1, 1)
MVXE(mv_q4_0_b1, 4, mv_q8blk_body, GG_Q4_0, 1, 8, MV_THREADS, 1, 1)
MVXE(mv_q4_1_b1, 4, mv_q8blk_body, GG_Q4_1, 1, 8, MV_THREADS, 1, 1)
MVXE(mv_q8_0_b1, 4, mv_q8blk_body, GG_Q8_0, 1, 8, MV_THREADS, 1, 1)
// Fused one-row kernels (MLXN_OP_MATMUL_FUSED), the b1 shapes with early
// weight loads: NAME_b1f (x), NAME_b1fn (x and the norm weight: the norm
// prologue), both through L1. Staging x in shared memory measured slower on
// the H100 (8B decode 340 vs 362 tok/s; with the norm, 135M 1,630 vs 1,690).
#define MVXF(NAME, BODY, ...)                                                                                  \
    extern "C" __global__ void __launch_bounds__(MV_THREADS, 4) NAME(WP w, const float *x, float *y, int M, i64 N, \
                                                                       MVF f) {                              \
        PDL_LAUNCH();                                                                                      \
        BODY<__VA_ARGS__>(w, x, y, M, N, f);                                                               \
    }
// NAME_w<R>f / NAME_w<R>fn: the same with a warp per row group of R rows
// (4R rows a block): R = 8 for many short rows, where a block-wide group
// leaves most threads without a chunk (K = 576 MLX 4-bit: 18 chunks a row for
// 128 threads); R = 2 (two chunks per lane in flight) for short rows without
// a norm: each lane's serial work is shorter and the reduction is shuffles.
// (R = 4 measured between the two everywhere and was dropped: BENCHMARKS.md.)
#define MVXF4(P, BODY, T, ...)                                                                                 \
    MVXF(P##_b1f, BODY, T, 1, 8, MV_THREADS, 1, __VA_ARGS__, 1)                                                \
    MVXF(P##_b1fn, BODY, T, 1, 8, MV_THREADS, 1, __VA_ARGS__, 2)                                               \
    MVXF(P##_w8f, BODY, T, 1, 8, 32, 1, __VA_ARGS__, 1) MVXF(P##_w8fn, BODY, T, 1, 8, 32, 1, __VA_ARGS__, 2)    \
    MVXF(P##_w2f, BODY, T, 1, 2, 32, 2, __VA_ARGS__, 1) MVXF(P##_w2fn, BODY, T, 1, 2, 32, 2, __VA_ARGS__, 2)
MVXF4(mv_mlx4, mv_mlx_body, 4, 1, 1, 1)
MVXF4(mv_mlx8, mv_mlx_body, 8, 1, 1, 1)
MVXF4(mv_q4_0, mv_q8blk_body, GG_Q4_0, 1)
MVXF4(mv_q4_1, mv_q8blk_body, GG_Q4_1, 1)
MVXF4(mv_q8_0, mv_q8blk_body, GG_Q8_0, 1)
// NAME_t32f / NAME_t32fn: the staged-tile kernels (rows of a tile are
// contiguous; dynamic shared memory K·4 + MV_TILE_ROWS·row_bytes).
#define MVXT(NAME, NORM)                                                                                       \
    extern "C" __global__ void __launch_bounds__(MV_THREADS, 6) NAME(WP w, const float *x, float *y, int M, i64 N, \
                                                                       MVF f) {                              \
        PDL_LAUNCH();                                                                                      \
        mv_q8_tile_body<NORM>(w, x, y, N, f);                                                              \
    }
MVXT(mv_q8_0_t32f, 0)
MVXT(mv_q8_0_t32fn, 1)
MV_SET(2)
MV_SET(4)
MV_SET(8)
