// gemm_mma.cu — y [M, N] f32 = x [M, K] f32 · Wᵀ for large M (prefill) on the
// tensor cores, with W [N, K] left quantized in global memory (MLX affine
// 4/8-bit, GGUF Q4_0/Q4_1/Q8_0). The integer codes of W are exact in f16, so
// tiles of codes (not scale·q + bias) are decoded to f16 in shared memory and
// multiplied with mma.sync.m16n8k16 (f16 in, f32 accumulate) into a per-group
// accumulator; at the end of each quantization group it is folded into the
// f32 output accumulator: acc += scale[n,g]·grp + bias[n,g]·Σ_group x[m,:].
// x is prepared by gemm_mma_prep: each row is scaled by a power of two 2^-e
// (max |x| into [2^14, 2^15)) and split into TERMS f16 terms, x_hi = f16(x'),
// x_lo = f16(x' − x_hi); both terms multiply the same weight fragments into
// the same accumulator, so with TERMS = 2 the product carries ~22 bits of x
// (near f32); the prep kernel also writes the scaled group sums of x (for the
// bias/min terms) and the row scale 2^e applied at the output.
// Block tile 64 (M) x 128 (N), k-step 32, 8 warps (2 x 4, 32 x 32 each);
// two shared-memory stages: x by cp.async one step ahead, W codes through two
// register sets (loaded two steps ahead, decoded and stored after the MMAs).
#include "common.cu"
#include "quant.cu"

#define GM_BM 64
#define GM_BN 128
#define GM_BK 32
#define GM_LDS 40 // halfs per shared row: 80 bytes, conflict-free ldmatrix
#define GM_THREADS 256

// Formats (template parameter)
#define GMF_MLX4 0
#define GMF_MLX8 1
#define GMF_Q4_0 2
#define GMF_Q4_1 3
#define GMF_Q8_0 4

template <int TERMS> struct GmStage {
    u16 xs[TERMS][GM_BM][GM_LDS]; // x terms, [m][k] f16
    u16 ws[GM_BN][GM_LDS];        // weight codes, [n][k] f16
    float sc[GM_BN];              // scale of this k-step's group per row n
    float bi[GM_BN];              // bias / min (0 when the format has none)
    float sx[GM_BM];              // Σ x' over the group per row m (scaled)
};

__device__ __forceinline__ u32 smem_addr(const void *p) { return (u32)__cvta_generic_to_shared(p); }

// 16-byte (or 4-byte) async copy global -> shared; ok = 0 fills zeros.
__device__ __forceinline__ void cp_async16(void *dst, const void *src, bool ok) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(smem_addr(dst)), "l"(src), "r"(ok ? 16 : 0));
}
__device__ __forceinline__ void cp_async4(void *dst, const void *src, bool ok) {
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;" ::"r"(smem_addr(dst)), "l"(src), "r"(ok ? 4 : 0));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;" ::: "memory"); }
__device__ __forceinline__ void cp_async_wait_all() { asm volatile("cp.async.wait_group 0;" ::: "memory"); }

__device__ __forceinline__ void ldmatrix_x4(u32 (&r)[4], const void *p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_addr(p)));
}

// d += a (16x16 row-major f16) · b (16x8 col-major f16), f32 accumulate
__device__ __forceinline__ void mma16816(float (&d)[4], const u32 (&a)[4], u32 b0, u32 b1) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Two f16 lanes 1024 + u (u an 8-bit code in the mantissa) minus 1024 + off:
// exact, gives u − off. `w` holds 0x64 in bytes 1 and 3 and the codes in 0, 2.
__device__ __forceinline__ u32 codes_f16x2(u32 w, u32 off) {
    u32 r;
    const u32 k = 0x64006400u | off | (off << 16);
    asm("sub.rn.f16x2 %0, %1, %2;" : "=r"(r) : "r"(w), "r"(k));
    return r;
}
// The 4 bytes of v as 4 f16 codes (byte − off), in order: two words.
__device__ __forceinline__ void bytes_to_f16(u32 v, u32 off, u32 &w0, u32 &w1) {
    w0 = codes_f16x2(__byte_perm(v, 0x64646464u, 0x4140u), off); // [b0, 64, b1, 64]
    w1 = codes_f16x2(__byte_perm(v, 0x64646464u, 0x4342u), off);           // [b2, 64, b3, 64]
}

// 2-byte-aligned little-endian u32 load (GGUF blocks of 18/34 bytes)
__device__ __forceinline__ u32 ld_u32_a2(const u8 *p) {
    const u16 *q = (const u16 *)p;
    return (u32)__ldg(q) | ((u32)__ldg(q + 1) << 16);
}

// Per-thread weight staging: thread t loads row n = t / 2, half h = t % 2 of
// the k-step's 32 codes, plus one scale-ish value.
struct GmWRegs {
    u32 r[4];
    float v;
};

// Load (global -> registers) the raw bits for k-step k0 (multiple of 32) of row `row`.
template <int F>
__device__ __forceinline__ void gm_load_w(const WP &w, i64 row, i64 k0, int h, i64 ngrp, GmWRegs &R) {
    const u8 *rowp = w.data + row * w.row_bytes;
    if (F == GMF_MLX4) { // 16 codes = 8 bytes at k0/2 + h*8
        const uint2 q = __ldg((const uint2 *)(rowp + k0 / 2 + h * 8));
        R.r[0] = q.x;
        R.r[1] = q.y;
        const i64 g = row * ngrp + k0 / w.group;
        R.v = ldf(h == 0 ? w.scales : w.biases, w.sdt, g);
    } else if (F == GMF_MLX8) { // 16 codes = 16 bytes at k0 + h*16
        const uint4 q = __ldg((const uint4 *)(rowp + k0 + h * 16));
        R.r[0] = q.x;
        R.r[1] = q.y;
        R.r[2] = q.z;
        R.r[3] = q.w;
        const i64 g = row * ngrp + k0 / w.group;
        R.v = ldf(h == 0 ? w.scales : w.biases, w.sdt, g);
    } else if (F == GMF_Q4_0 || F == GMF_Q4_1) { // qs bytes h*8 .. h*8+7 (codes j and j+16)
        const int bs = F == GMF_Q4_0 ? 18 : 20, hd = F == GMF_Q4_0 ? 2 : 4;
        const u8 *b = rowp + (k0 / 32) * bs;
        R.r[0] = ld_u32_a2(b + hd + h * 8);
        R.r[1] = ld_u32_a2(b + hd + h * 8 + 4);
        R.v = (F == GMF_Q4_1 || h == 0) ? h2f(__ldg((const u16 *)b + h)) : 0.0f; // d (h 0) or m (h 1)
    } else { // Q8_0: qs bytes h*16 .. h*16+15
        const u8 *b = rowp + (k0 / 32) * 34;
#pragma unroll
        for (int i = 0; i < 4; i++) R.r[i] = ld_u32_a2(b + 2 + h * 16 + 4 * i);
        R.v = h == 0 ? h2f(__ldg((const u16 *)b)) : 0.0f;
    }
}

// Decode the staged bits to f16 codes and store them (registers -> shared).
template <int F, int TERMS>
__device__ __forceinline__ void gm_store_w(GmStage<TERMS> &S, int n, int h, const GmWRegs &R) {
    u32 o[8];
    if (F == GMF_MLX4) { // byte i: low nibble code 2i, high nibble 2i+1
#pragma unroll
        for (int j = 0; j < 2; j++) {
            const u32 v = R.r[j], lo = v & 0x0F0F0F0Fu, hi = (v >> 4) & 0x0F0F0F0Fu;
#pragma unroll
            for (int b = 0; b < 4; b++) {
                const u32 sel = (u32)b | ((u32)b << 4) | ((u32)(4 + b) << 8) | ((u32)(4 + b) << 12);
                o[j * 4 + b] = codes_f16x2((__byte_perm(lo, hi, sel) & 0x00FF00FFu) | 0x64006400u, 0);
            }
        }
        uint4 *d = (uint4 *)&S.ws[n][h * 16];
        d[0] = make_uint4(o[0], o[1], o[2], o[3]);
        d[1] = make_uint4(o[4], o[5], o[6], o[7]);
    } else if (F == GMF_MLX8 || F == GMF_Q8_0) {
        const u32 off = F == GMF_Q8_0 ? 128u : 0u;
#pragma unroll
        for (int i = 0; i < 4; i++) bytes_to_f16(F == GMF_Q8_0 ? R.r[i] ^ 0x80808080u : R.r[i], off, o[2 * i], o[2 * i + 1]);
        uint4 *d = (uint4 *)&S.ws[n][h * 16];
        d[0] = make_uint4(o[0], o[1], o[2], o[3]);
        d[1] = make_uint4(o[4], o[5], o[6], o[7]);
    } else { // Q4_0 / Q4_1: low nibbles -> codes h*8.., high nibbles -> 16 + h*8..
        const u32 off = F == GMF_Q4_0 ? 8u : 0u;
#pragma unroll
        for (int j = 0; j < 2; j++) {
            bytes_to_f16(R.r[j] & 0x0F0F0F0Fu, off, o[2 * j], o[2 * j + 1]);
            bytes_to_f16((R.r[j] >> 4) & 0x0F0F0F0Fu, off, o[4 + 2 * j], o[4 + 2 * j + 1]);
        }
        *(uint4 *)&S.ws[n][h * 8] = make_uint4(o[0], o[1], o[2], o[3]);
        *(uint4 *)&S.ws[n][16 + h * 8] = make_uint4(o[4], o[5], o[6], o[7]);
    }
    if (h == 0) S.sc[n] = R.v;
    else S.bi[n] = (F == GMF_Q4_0 || F == GMF_Q8_0) ? 0.0f : R.v;
}

// xh, xl: [M, K] f16 terms of x·2^-e; sumx: [M, K/group] f32 (scaled group
// sums; unused by Q4_0/Q8_0); rs: [M] 2^e; y: [M, N] f32.
template <int F, int TERMS>
__device__ void gemm_mma_body(const WP &w, const u16 *xh, const u16 *xl, const float *sumx, const float *rs,
                              float *y, int M, int N) {
    __shared__ __align__(16) GmStage<TERMS> st[2];
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int wm = (warp & 1) * 32, wn = (warp >> 1) * 32; // warp's corner in the tile
    const int m0 = blockIdx.y * GM_BM, n0 = blockIdx.x * GM_BN;
    const i64 K = w.K;
    const int G = (F == GMF_MLX4 || F == GMF_MLX8) ? w.group : 32;
    const i64 ngrp = K / G;
    const int nsteps = (int)(K / GM_BK);
    const bool HASB = F == GMF_MLX4 || F == GMF_MLX8 || F == GMF_Q4_1;

    // loader roles
    const int xr = tid >> 2, xc = (tid & 3) * 8; // x: row, 8-half chunk
    const bool xok = m0 + xr < M;
    const i64 xrow = xok ? m0 + xr : 0;
    const int wnl = tid >> 1, wh = tid & 1; // weights: tile row, half
    const i64 wrow = n0 + wnl < N ? n0 + wnl : N - 1;

    auto load_x = [&](int stage, int step) {
        const i64 k0 = (i64)step * GM_BK;
        cp_async16(&st[stage].xs[0][xr][xc], xh + xrow * K + k0 + xc, xok);
        if (TERMS == 2) cp_async16(&st[stage].xs[TERMS - 1][xr][xc], xl + xrow * K + k0 + xc, xok);
        if (HASB && tid < GM_BM) {
            const bool ok = m0 + tid < M;
            cp_async4(&st[stage].sx[tid], sumx + (ok ? (i64)(m0 + tid) * ngrp + k0 / G : 0), ok);
        }
        cp_async_commit();
    };

    float acc[2][4][4], grp[2][4][4];
#pragma unroll
    for (int i = 0; i < 2; i++)
#pragma unroll
        for (int j = 0; j < 4; j++)
#pragma unroll
            for (int e = 0; e < 4; e++) acc[i][j][e] = grp[i][j][e] = 0.0f;

    // Weight codes travel through two register sets: the one for step s+1
    // (loaded during step s-1) is decoded into shared memory after step s's
    // MMAs, while the loads for step s+2 fly, so a load has two steps of
    // MMAs to arrive. x goes straight to shared memory by cp.async, one step ahead.
    GmWRegs R0, R1;
    gm_load_w<F>(w, wrow, 0, wh, ngrp, R0);
    load_x(0, 0);
    if (nsteps > 1) gm_load_w<F>(w, wrow, GM_BK, wh, ngrp, R1);
    gm_store_w<F, TERMS>(st[0], wnl, wh, R0);
    cp_async_wait_all();
    __syncthreads();

    // one k-step: rn holds the codes of step + 1, rf receives those of step + 2
    auto kstep = [&](int step, GmWRegs &rn, GmWRegs &rf) {
        const int cur = step & 1;
        if (step + 1 < nsteps) load_x(cur ^ 1, step + 1);
        if (step + 2 < nsteps) gm_load_w<F>(w, wrow, (i64)(step + 2) * GM_BK, wh, ngrp, rf);
        GmStage<TERMS> &S = st[cur];
#pragma unroll
        for (int kk = 0; kk < GM_BK; kk += 16) {
            u32 b[4][2];
#pragma unroll
            for (int p = 0; p < 2; p++) { // n-tiles 2p, 2p+1
                u32 r[4];
                ldmatrix_x4(r, &S.ws[wn + p * 16 + (lane & 7) + ((lane >> 4) << 3)][kk + ((lane >> 3) & 1) * 8]);
                b[2 * p][0] = r[0];
                b[2 * p][1] = r[1];
                b[2 * p + 1][0] = r[2];
                b[2 * p + 1][1] = r[3];
            }
#pragma unroll
            for (int t = 0; t < TERMS; t++)
#pragma unroll
                for (int i = 0; i < 2; i++) {
                    u32 a[4];
                    ldmatrix_x4(a, &S.xs[t][wm + i * 16 + (lane & 15)][kk + (lane >> 4) * 8]);
#pragma unroll
                    for (int j = 0; j < 4; j++) mma16816(grp[i][j], a, b[j][0], b[j][1]);
                }
        }
        if (((i64)(step + 1) * GM_BK) % G == 0) { // end of a quantization group: fold
            const int g = lane >> 2, t2 = (lane & 3) * 2;
#pragma unroll
            for (int j = 0; j < 4; j++) {
                const int nl = wn + j * 8 + t2;
                const float s0 = S.sc[nl], s1 = S.sc[nl + 1];
                const float b0 = HASB ? S.bi[nl] : 0.0f, b1 = HASB ? S.bi[nl + 1] : 0.0f;
#pragma unroll
                for (int i = 0; i < 2; i++) {
                    const int ml = wm + i * 16 + g;
                    const float x0 = HASB ? S.sx[ml] : 0.0f, x1 = HASB ? S.sx[ml + 8] : 0.0f;
                    float *c = grp[i][j], *a = acc[i][j];
                    a[0] = fmaf(s0, c[0], a[0]);
                    a[1] = fmaf(s1, c[1], a[1]);
                    a[2] = fmaf(s0, c[2], a[2]);
                    a[3] = fmaf(s1, c[3], a[3]);
                    if (HASB) {
                        a[0] = fmaf(b0, x0, a[0]);
                        a[1] = fmaf(b1, x0, a[1]);
                        a[2] = fmaf(b0, x1, a[2]);
                        a[3] = fmaf(b1, x1, a[3]);
                    }
                    c[0] = c[1] = c[2] = c[3] = 0.0f;
                }
            }
        }
        if (step + 1 < nsteps) gm_store_w<F, TERMS>(st[cur ^ 1], wnl, wh, rn);
        cp_async_wait_all();
        __syncthreads();
    };
#pragma unroll 1
    for (int step = 0; step < nsteps; step += 2) {
        kstep(step, R1, R0);
        if (step + 1 < nsteps) kstep(step + 1, R0, R1);
    }

    // epilogue: y = 2^e · acc, masked
    const int g = lane >> 2, t2 = (lane & 3) * 2;
#pragma unroll
    for (int i = 0; i < 2; i++)
#pragma unroll
        for (int hh = 0; hh < 2; hh++) {
            const int m = m0 + wm + i * 16 + g + hh * 8;
            if (m >= M) continue;
            const float r = rs[m];
#pragma unroll
            for (int j = 0; j < 4; j++) {
                const int n = n0 + wn + j * 8 + t2;
                if (n < N) y[(i64)m * N + n] = acc[i][j][hh * 2] * r;
                if (n + 1 < N) y[(i64)m * N + n + 1] = acc[i][j][hh * 2 + 1] * r;
            }
        }
}

#define GEMM_MMA_K(name, F, T)                                                                                        \
    extern "C" __global__ void __launch_bounds__(GM_THREADS, 2) name(WP w, const u16 *xh, const u16 *xl,               \
                                                                  const float *sumx, const float *rs, float *y,     \
                                                                  int M, int N) {                                   \
        gemm_mma_body<F, T>(w, xh, xl, sumx, rs, y, M, N);                                                            \
    }
GEMM_MMA_K(gemm_mma_mlx4_t2, GMF_MLX4, 2)
GEMM_MMA_K(gemm_mma_mlx8_t2, GMF_MLX8, 2)
GEMM_MMA_K(gemm_mma_q4_0_t2, GMF_Q4_0, 2)
GEMM_MMA_K(gemm_mma_q4_1_t2, GMF_Q4_1, 2)
GEMM_MMA_K(gemm_mma_q8_0_t2, GMF_Q8_0, 2)
GEMM_MMA_K(gemm_mma_mlx4_t1, GMF_MLX4, 1)
GEMM_MMA_K(gemm_mma_mlx8_t1, GMF_MLX8, 1)
GEMM_MMA_K(gemm_mma_q4_0_t1, GMF_Q4_0, 1)
GEMM_MMA_K(gemm_mma_q4_1_t1, GMF_Q4_1, 1)
GEMM_MMA_K(gemm_mma_q8_0_t1, GMF_Q8_0, 1)

// Prep: one block (256 threads) per row m of x [M, K] f32 (K % 32 == 0,
// G % 32 == 0). Picks p so that max|x[m,:]|·2^p lies in [2^14, 2^15) (p = 0
// for an all-zero or non-finite row), writes xh = f16(x·2^p), xl = f16(x·2^p −
// xh) (terms == 2), sumx[m, g] = 2^p·Σ x over group g (when sumx != 0) and
// rs[m] = 2^-p.
extern "C" __global__ void __launch_bounds__(256) gemm_mma_prep(const float *x, long long K, int G, int terms,
                                                               u16 *xh, u16 *xl, float *sumx, float *rs) {
    __shared__ float sh[32];
    const i64 m = blockIdx.x;
    const float *xr = x + m * K;
    float mx = 0.0f;
    for (i64 k = threadIdx.x * 4; k < K; k += 256 * 4) {
        const float4 v = *(const float4 *)(xr + k);
        mx = fmaxf(mx, fmaxf(fmaxf(fabsf(v.x), fabsf(v.y)), fmaxf(fabsf(v.z), fabsf(v.w))));
    }
    mx = block_max(mx, sh);
    const int eb = (int)((__float_as_uint(mx) >> 23) & 0xFFu); // fmaxf drops NaN; inf -> 255
    int p = (eb == 0 || eb == 255) ? 0 : 141 - eb;            // 2^(eb-127) * 2^p = 2^14
    p = p > 126 ? 126 : p;
    const float sc = __uint_as_float((u32)(p + 127) << 23), inv = __uint_as_float((u32)(127 - p) << 23);
    if (threadIdx.x == 0) rs[m] = inv;
    for (i64 k = threadIdx.x * 4; k < K; k += 256 * 4) {
        const float4 v = *(const float4 *)(xr + k);
        const float a[4] = {v.x * sc, v.y * sc, v.z * sc, v.w * sc};
        u16 hi[4], lo[4];
#pragma unroll
        for (int i = 0; i < 4; i++) {
            hi[i] = f2h(a[i]);
            lo[i] = f2h(a[i] - h2f(hi[i]));
        }
        *(uint2 *)(xh + m * K + k) = make_uint2(hi[0] | ((u32)hi[1] << 16), hi[2] | ((u32)hi[3] << 16));
        if (terms == 2) *(uint2 *)(xl + m * K + k) = make_uint2(lo[0] | ((u32)lo[1] << 16), lo[2] | ((u32)lo[3] << 16));
    }
    if (sumx) {
        const int lane = threadIdx.x & 31, wp = threadIdx.x >> 5;
        const i64 ng = K / G;
        for (i64 g = wp; g < ng; g += 8) {
            float s = 0.0f;
            for (int k = lane; k < G; k += 32) s += xr[g * G + k];
            s = warp_sum(s);
            if (lane == 0) sumx[m * ng + g] = s * sc;
        }
    }
}
