// matvec.cu — y [M, N] f32 = x [M, K] f32 · Wᵀ for small M (1..8 rows per
// launch tile), the decode path. Each warp owns RW weight rows and streams them
// with 16-byte (or for GGUF's odd block sizes, 2-byte) loads that skip L1;
// x is read through L1 (it is small and shared by every warp of the SM); each
// loaded weight chunk is decoded once into registers and used for all MT rows
// of x. Quantized values become floats with the byte-permute trick
// (0x4B0000qq as f32 is 2^23 + q), which keeps the integer-conversion pipe
// free. MLX affine uses Σ s·(x·q) + b·Σx per group; GGUF blocks use their own
// scale/min algebra. Sums are f32 (per-chunk partials, then warp reduction).
#include "common.cu"
#include "quant.cu"

#define MV_WARPS 4

__device__ __forceinline__ float bytef(u32 v, u32 sel) {
    return __int_as_float((int)__byte_perm(v, 0x4B000000u, 0x7540u | sel)) - 8388608.0f;
}

// x[m][k .. k+3] as a float4 through L1
__device__ __forceinline__ float4 ldx4(const float *x, i64 off) { return __ldg((const float4 *)(x + off)); }

template <int RW, int MT>
__device__ __forceinline__ void mv_store(float (&acc)[RW][MT], float *y, i64 n0, int m0, int M, i64 N) {
    int lane = threadIdx.x & 31;
#pragma unroll
    for (int r = 0; r < RW; r++)
#pragma unroll
        for (int m = 0; m < MT; m++) {
            float s = warp_sum(acc[r][m]);
            if (lane == 0 && n0 + r < N && m0 + m < M) y[(i64)(m0 + m) * N + n0 + r] = s;
        }
}

// ---------------------------------------------------------------- MLX affine 4/8-bit
// MV_MLX_PREFETCH_SC = 1 loads each chunk's group scale/bias in the same batch
// as the weight loads (so they overlap with them instead of adding a dependent
// global-load latency per chunk); 0 keeps the load-at-use order. Measured on
// the H100 (mlx4 g64 4096x14336, us, off vs on): M=1 37.8 vs 42.5, M=8 364 vs
// 254 -- so it is on only for the 8-row tile.
#define MV_MLX_PREFETCH_SC (MT == 8)
// Needs: data 16-byte aligned, row_bytes % 16 == 0, group % (128/BITS) == 0,
// x 16-byte aligned with K % 4 == 0.
template <int BITS, int MT, int RW>
__device__ void mv_mlx_body(const WP &w, const float *x, float *y, int M, i64 N) {
    const int VALS = 128 / BITS; // values per 16-byte chunk
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const i64 n0 = ((i64)blockIdx.x * MV_WARPS + warp) * RW;
    const int m0 = blockIdx.y * MT;
    if (n0 >= N) return;
    const i64 nchunks = w.row_bytes / 16;
    const i64 gpr = w.K / w.group;
    const int mt = M - m0 < MT ? M - m0 : MT;
    float acc[RW][MT];
#pragma unroll
    for (int r = 0; r < RW; r++)
#pragma unroll
        for (int m = 0; m < MT; m++) acc[r][m] = 0.0f;
    i64 rows[RW];
#pragma unroll
    for (int r = 0; r < RW; r++) rows[r] = n0 + r < N ? n0 + r : N - 1;

    const int UNR = 4; // chunks per lane whose loads are issued together
    for (i64 c0 = lane; c0 < nchunks; c0 += 32 * UNR) {
        uint4 qb[UNR][RW];
        float scb[UNR][RW], bib[UNR][RW];
#pragma unroll
        for (int u = 0; u < UNR; u++)
#pragma unroll
            for (int r = 0; r < RW; r++) {
                scb[u][r] = 0.0f;
                bib[u][r] = 0.0f;
                if (c0 + 32 * u < nchunks) qb[u][r] = ldg_stream(w.data + rows[r] * w.row_bytes + (c0 + 32 * u) * 16);
            }
        if (MV_MLX_PREFETCH_SC) {
#pragma unroll
            for (int u = 0; u < UNR; u++)
#pragma unroll
                for (int r = 0; r < RW; r++)
                    if (c0 + 32 * u < nchunks) {
                        const i64 gg = (c0 + 32 * u) * VALS / w.group;
                        scb[u][r] = ldf(w.scales, w.sdt, rows[r] * gpr + gg);
                        bib[u][r] = ldf(w.biases, w.sdt, rows[r] * gpr + gg);
                    }
        }
#pragma unroll
    for (int u = 0; u < UNR; u++) {
        const i64 c = c0 + 32 * u;
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
                sc[r] = ldf(w.scales, w.sdt, rows[r] * gpr + g);
                bi[r] = ldf(w.biases, w.sdt, rows[r] * gpr + g);
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
                    float4 xa = ldx4(xr, wi * 8), xb = ldx4(xr, wi * 8 + 4);
                    sx += (xa.x + xa.y) + (xa.z + xa.w) + (xb.x + xb.y) + (xb.z + xb.w);
#pragma unroll
                    for (int r = 0; r < RW; r++) {
                        u32 u = wi == 0 ? q[r].x : wi == 1 ? q[r].y : wi == 2 ? q[r].z : q[r].w;
                        u32 lo = u & 0x0F0F0F0Fu, hi = (u >> 4) & 0x0F0F0F0Fu;
                        float d = dot[r];
                        d = fmaf(xa.x, bytef(lo, 0), d);
                        d = fmaf(xa.y, bytef(hi, 0), d);
                        d = fmaf(xa.z, bytef(lo, 1), d);
                        d = fmaf(xa.w, bytef(hi, 1), d);
                        d = fmaf(xb.x, bytef(lo, 2), d);
                        d = fmaf(xb.y, bytef(hi, 2), d);
                        d = fmaf(xb.z, bytef(lo, 3), d);
                        d = fmaf(xb.w, bytef(hi, 3), d);
                        dot[r] = d;
                    }
                } else {
                    float4 xa = ldx4(xr, wi * 4);
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
            for (int r = 0; r < RW; r++) acc[r][m] += sc[r] * dot[r] + bi[r] * sx;
        }
    }
    }
    mv_store<RW, MT>(acc, y, n0, m0, M, N);
}

// ---------------------------------------------------------------- dense f32/f16/bf16
// Needs: data 16-byte aligned, row bytes % 16 == 0, x aligned with K % 4 == 0.
template <int DT, int MT, int RW>
__device__ void mv_dense_body(const WP &w, const float *x, float *y, int M, i64 N) {
    const int VALS = DT == DT_F32 ? 4 : 8;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const i64 n0 = ((i64)blockIdx.x * MV_WARPS + warp) * RW;
    const int m0 = blockIdx.y * MT;
    if (n0 >= N) return;
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
    for (i64 c = lane; c < nchunks; c += 32) {
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
    mv_store<RW, MT>(acc, y, n0, m0, M, N);
}

// ---------------------------------------------------------------- GGUF Q4_0 / Q4_1 / Q8_0 (lane per 32-value block)
// Q4_1 block (20 bytes): f16 d, f16 m, 16 nibble bytes (low nibbles = values
// 0..15, high = 16..31); y = d*q + m, so Σ x*y = d*Σ x*q + m*Σ x.
// Needs: data 2-byte aligned (Q4_1: 4-byte aligned), x aligned with K % 4 == 0.
__device__ __forceinline__ u32 ld_u32_2a(const u8 *p) { // 2-byte aligned u32
    const u16 *h = (const u16 *)p;
    return (u32)__ldg(h) | ((u32)__ldg(h + 1) << 16);
}

template <int TYPE, int MT, int RW>
__device__ void mv_q8blk_body(const WP &w, const float *x, float *y, int M, i64 N) {
    const int BS = TYPE == GG_Q4_0 ? 18 : TYPE == GG_Q4_1 ? 20 : 34;
    const int QO = TYPE == GG_Q4_1 ? 4 : 2; // byte offset of the quants in a block
    const bool NIB = TYPE != GG_Q8_0;        // 4-bit quants
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const i64 n0 = ((i64)blockIdx.x * MV_WARPS + warp) * RW;
    const int m0 = blockIdx.y * MT;
    if (n0 >= N) return;
    const i64 nblk = w.K / 32;
    const int mt = M - m0 < MT ? M - m0 : MT;
    float acc[RW][MT];
#pragma unroll
    for (int r = 0; r < RW; r++)
#pragma unroll
        for (int m = 0; m < MT; m++) acc[r][m] = 0.0f;
    i64 rows[RW];
#pragma unroll
    for (int r = 0; r < RW; r++) rows[r] = n0 + r < N ? n0 + r : N - 1;
    const int UNR = NIB ? 4 : 2, NW = NIB ? 4 : 8;
    for (i64 b0 = lane; b0 < nblk; b0 += 32 * UNR) {
        u16 db[UNR][RW], mb[UNR][RW];
        u32 qwb[UNR][RW][NW];
#pragma unroll
        for (int u = 0; u < UNR; u++)
#pragma unroll
            for (int r = 0; r < RW; r++)
                if (b0 + 32 * u < nblk) {
                    const u8 *bp = w.data + rows[r] * w.row_bytes + (b0 + 32 * u) * BS;
                    if (TYPE == GG_Q4_1) { // 20-byte blocks: 4-byte aligned (launcher checks data % 4)
                        const u32 dm = __ldg((const u32 *)bp);
                        db[u][r] = (u16)(dm & 0xffffu);
                        mb[u][r] = (u16)(dm >> 16);
#pragma unroll
                        for (int i = 0; i < NW; i++) qwb[u][r][i] = __ldg((const u32 *)(bp + QO + 4 * i));
                    } else {
                        db[u][r] = __ldg((const u16 *)bp);
                        mb[u][r] = (u16)0;
#pragma unroll
                        for (int i = 0; i < NW; i++) qwb[u][r][i] = ld_u32_2a(bp + QO + 4 * i);
                    }
                }
#pragma unroll
    for (int u = 0; u < UNR; u++) {
        const i64 b = b0 + 32 * u;
        if (b >= nblk) break;
        float dsc[RW], msc[RW];
        u32 qw[RW][NW];
#pragma unroll
        for (int r = 0; r < RW; r++) {
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
                    float4 xl = ldx4(xr, 4 * i), xh = ldx4(xr, 16 + 4 * i);
                    sx += (xl.x + xl.y) + (xl.z + xl.w) + (xh.x + xh.y) + (xh.z + xh.w);
#pragma unroll
                    for (int r = 0; r < RW; r++) {
                        u32 lo = qw[r][i] & 0x0F0F0F0Fu, hi = (qw[r][i] >> 4) & 0x0F0F0F0Fu;
                        float d = dot[r];
                        d = fmaf(xl.x, bytef(lo, 0), d);
                        d = fmaf(xl.y, bytef(lo, 1), d);
                        d = fmaf(xl.z, bytef(lo, 2), d);
                        d = fmaf(xl.w, bytef(lo, 3), d);
                        d = fmaf(xh.x, bytef(hi, 0), d);
                        d = fmaf(xh.y, bytef(hi, 1), d);
                        d = fmaf(xh.z, bytef(hi, 2), d);
                        d = fmaf(xh.w, bytef(hi, 3), d);
                        dot[r] = d;
                    }
                }
                if (TYPE == GG_Q4_1) {
#pragma unroll
                    for (int r = 0; r < RW; r++) acc[r][m] += dsc[r] * dot[r] + msc[r] * sx;
                } else {
#pragma unroll
                    for (int r = 0; r < RW; r++) acc[r][m] += dsc[r] * (dot[r] - 8.0f * sx);
                }
            } else {
#pragma unroll
                for (int i = 0; i < 8; i++) {
                    float4 xa = ldx4(xr, 4 * i);
                    sx += (xa.x + xa.y) + (xa.z + xa.w);
#pragma unroll
                    for (int r = 0; r < RW; r++) {
                        u32 u = qw[r][i] ^ 0x80808080u; // signed -> q + 128
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
    mv_store<RW, MT>(acc, y, n0, m0, M, N);
}

// ---------------------------------------------------------------- GGUF Q4_K (lane per 64-value chunk)
// Needs: data 16-byte aligned (144-byte blocks keep that), x aligned with K % 4 == 0.
template <int MT, int RW>
__device__ void mv_q4k_body(const WP &w, const float *x, float *y, int M, i64 N) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const i64 n0 = ((i64)blockIdx.x * MV_WARPS + warp) * RW;
    const int m0 = blockIdx.y * MT;
    if (n0 >= N) return;
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
    for (i64 ch0 = lane; ch0 < nch; ch0 += 32 * UNR) {
        uint4 qab[UNR][RW], qbb[UNR][RW];
        uint4 hdr[UNR][RW]; // d, dmin, scales[12]: the block's first 16 bytes
#pragma unroll
        for (int u = 0; u < UNR; u++)
#pragma unroll
            for (int r = 0; r < RW; r++) {
                const i64 chu = ch0 + 32 * u;
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
        const i64 ch = ch0 + 32 * u;
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
                    a = fmaf(xl.x, bytef(lo, 0), a); a = fmaf(xl.y, bytef(lo, 1), a);
                    a = fmaf(xl.z, bytef(lo, 2), a); a = fmaf(xl.w, bytef(lo, 3), a);
                    b = fmaf(xh.x, bytef(hi, 0), b); b = fmaf(xh.y, bytef(hi, 1), b);
                    b = fmaf(xh.z, bytef(hi, 2), b); b = fmaf(xh.w, bytef(hi, 3), b);
                    dl[r] = a; dh[r] = b;
                }
            }
#pragma unroll
            for (int r = 0; r < RW; r++)
                acc[r][m] += d1[r] * dl[r] - m1[r] * sxl + d2[r] * dh[r] - m2[r] * sxh;
        }
    }
    }
    mv_store<RW, MT>(acc, y, n0, m0, M, N);
}

// ---------------------------------------------------------------- GGUF Q6_K (lane per 32-value quarter-half)
// Lane takes (block, half nh, l-range of 32): values l, l+32, l+64, l+96 of the half
// for l in [0,32) need ql[l], ql[l+32], qh[l]; we split a half into 4 groups of 8 l's
// so each lane reads 8 + 8 + 8 bytes of ql/qh and covers 32 values. Needs data 2-aligned.
template <int MT, int RW>
__device__ void mv_q6k_body(const WP &w, const float *x, float *y, int M, i64 N) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const i64 n0 = ((i64)blockIdx.x * MV_WARPS + warp) * RW;
    const int m0 = blockIdx.y * MT;
    if (n0 >= N) return;
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
    for (i64 u = lane; u < nu; u += 32) {
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
                    t = fmaf(x0.x, bytef(q0, 0), t); t = fmaf(x0.y, bytef(q0, 1), t);
                    t = fmaf(x0.z, bytef(q0, 2), t); t = fmaf(x0.w, bytef(q0, 3), t);
                    dt4[r][0] = t;
                    t = dt4[r][1];
                    t = fmaf(x1.x, bytef(q1, 0), t); t = fmaf(x1.y, bytef(q1, 1), t);
                    t = fmaf(x1.z, bytef(q1, 2), t); t = fmaf(x1.w, bytef(q1, 3), t);
                    dt4[r][1] = t;
                    t = dt4[r][2];
                    t = fmaf(x2.x, bytef(q2, 0), t); t = fmaf(x2.y, bytef(q2, 1), t);
                    t = fmaf(x2.z, bytef(q2, 2), t); t = fmaf(x2.w, bytef(q2, 3), t);
                    dt4[r][2] = t;
                    t = dt4[r][3];
                    t = fmaf(x3.x, bytef(q3, 0), t); t = fmaf(x3.y, bytef(q3, 1), t);
                    t = fmaf(x3.z, bytef(q3, 2), t); t = fmaf(x3.w, bytef(q3, 3), t);
                    dt4[r][3] = t;
                }
            }
#pragma unroll
            for (int r = 0; r < RW; r++)
#pragma unroll
                for (int qd = 0; qd < 4; qd++) acc[r][m] += dsc[r][qd] * (dt4[r][qd] - 32.0f * sx[qd]);
        }
    }
    mv_store<RW, MT>(acc, y, n0, m0, M, N);
}

// ---------------------------------------------------------------- instances
#define MV_RW 2
#define MVK(NAME, BODY, ...)                                                                             \
    extern "C" __global__ void __launch_bounds__(128) NAME(WP w, const float *x, float *y, int M, i64 N) { \
        BODY<__VA_ARGS__>(w, x, y, M, N);                                                                \
    }
MVK(mv_mlx4_m1, mv_mlx_body, 4, 1, MV_RW)
MVK(mv_mlx8_m1, mv_mlx_body, 8, 1, MV_RW)
MVK(mv_f32_m1, mv_dense_body, DT_F32, 1, MV_RW)
MVK(mv_f16_m1, mv_dense_body, DT_F16, 1, MV_RW)
MVK(mv_bf16_m1, mv_dense_body, DT_BF16, 1, MV_RW)
MVK(mv_q4_0_m1, mv_q8blk_body, GG_Q4_0, 1, MV_RW)
MVK(mv_q4_1_m1, mv_q8blk_body, GG_Q4_1, 1, MV_RW)
MVK(mv_q8_0_m1, mv_q8blk_body, GG_Q8_0, 1, MV_RW)
MVK(mv_q4_k_m1, mv_q4k_body, 1, MV_RW)
MVK(mv_q6_k_m1, mv_q6k_body, 1, MV_RW)
MVK(mv_mlx4_m2, mv_mlx_body, 4, 2, MV_RW)
MVK(mv_mlx8_m2, mv_mlx_body, 8, 2, MV_RW)
MVK(mv_f32_m2, mv_dense_body, DT_F32, 2, MV_RW)
MVK(mv_f16_m2, mv_dense_body, DT_F16, 2, MV_RW)
MVK(mv_bf16_m2, mv_dense_body, DT_BF16, 2, MV_RW)
MVK(mv_q4_0_m2, mv_q8blk_body, GG_Q4_0, 2, MV_RW)
MVK(mv_q4_1_m2, mv_q8blk_body, GG_Q4_1, 2, MV_RW)
MVK(mv_q8_0_m2, mv_q8blk_body, GG_Q8_0, 2, MV_RW)
MVK(mv_q4_k_m2, mv_q4k_body, 2, MV_RW)
MVK(mv_q6_k_m2, mv_q6k_body, 2, MV_RW)
MVK(mv_mlx4_m4, mv_mlx_body, 4, 4, MV_RW)
MVK(mv_mlx8_m4, mv_mlx_body, 8, 4, MV_RW)
MVK(mv_f32_m4, mv_dense_body, DT_F32, 4, MV_RW)
MVK(mv_f16_m4, mv_dense_body, DT_F16, 4, MV_RW)
MVK(mv_bf16_m4, mv_dense_body, DT_BF16, 4, MV_RW)
MVK(mv_q4_0_m4, mv_q8blk_body, GG_Q4_0, 4, MV_RW)
MVK(mv_q4_1_m4, mv_q8blk_body, GG_Q4_1, 4, MV_RW)
MVK(mv_q8_0_m4, mv_q8blk_body, GG_Q8_0, 4, MV_RW)
MVK(mv_q4_k_m4, mv_q4k_body, 4, MV_RW)
MVK(mv_q6_k_m4, mv_q6k_body, 4, MV_RW)
MVK(mv_mlx4_m8, mv_mlx_body, 4, 8, MV_RW)
MVK(mv_mlx8_m8, mv_mlx_body, 8, 8, MV_RW)
MVK(mv_f32_m8, mv_dense_body, DT_F32, 8, MV_RW)
MVK(mv_f16_m8, mv_dense_body, DT_F16, 8, MV_RW)
MVK(mv_bf16_m8, mv_dense_body, DT_BF16, 8, MV_RW)
MVK(mv_q4_0_m8, mv_q8blk_body, GG_Q4_0, 8, MV_RW)
MVK(mv_q4_1_m8, mv_q8blk_body, GG_Q4_1, 8, MV_RW)
MVK(mv_q8_0_m8, mv_q8blk_body, GG_Q8_0, 8, MV_RW)
MVK(mv_q4_k_m8, mv_q4k_body, 8, MV_RW)
MVK(mv_q6_k_m8, mv_q6k_body, 8, MV_RW)
