// matvec_stream.cu — y [1, N] f32 = x [1, K] f32 · Wᵀ for MLX affine 4-bit
// weights (group 64 or 128, 2-byte scales) on sm_90+: the decode step's large
// matmuls, streamed through shared memory and multiplied on the integer
// tensor cores.
//
// Streaming: one persistent block per SM; each warp owns row groups of 16
// weight rows and pulls them segment by segment (1024 values a row) into its
// own ring of S shared-memory stages with cp.async.bulk copies completing on
// an mbarrier. The first S stages are requested before the PDL wait (weights
// never depend on the previous kernel) and each consumed stage is refilled at
// once, so the bytes in flight sit in shared memory, not in registers. With
// fewer row groups than warps, P warps share a group, each taking a part of
// K; their sums meet in shared memory in a fixed order.
//
// Arithmetic (f32-grade): the block first turns x (times the norm weight for the
// norm prologue) into, per 64-value block, a power of two 2^E and four signed
// int8 terms, x = 2^E·(t0 + t1/128 + t2/128² + t3/128³) to 28 bits of the
// block's largest value. mma.sync m16n8k32 (u8 codes × s8 terms, s32
// accumulate: exact) multiplies 16 rows by 8 columns = two x blocks × four
// terms; the codes cost one lop3 (low nibbles) or a shift and a lop3 (high
// nibbles) per four values, and an MMA's k order is permuted so that a lane's
// 8-byte code load matches its x fragment. Per block and row the four term
// sums are combined in f32 and folded with the group's scale and bias:
// acc += s·2^E·Σ q·t + b·Σ x. The epilogue applies matvec.cu's fused modes
// (struct MVF: residual, SwiGLU over [gate; up] pairs, the norm's 1/rms).
// Needs (cuda_ops_matvec.c checks): K % 1024 == 0, data/scales/biases
// 16-byte aligned, x 16-byte aligned.
#include "common.cu"
#include "quant.cu"

#define MS_ROWS 16                // weight rows per row group (the MMA's M)
#define MS_SEG 1024               // values per row per stage
#define MS_SEGB (MS_SEG / 2)      // their bytes
#define MS_ROWB (MS_SEGB + 32)    // a row's stride in a stage: conflict-free 8-byte lane loads
#define MS_BLK 64                 // x block: one 2^E, four int8 terms
#define MS_MAX_WARPS 16           // the launcher's cap (blockDim.x <= 512)

// Launch shape (mirrors mvs_shape in cuda_ops_matvec.c): copy stages per
// warp, warps per row group, row-group rounds per block (the same for every
// warp of a block: P > 1 combines each round's parts at a barrier).
struct MSP {
    int stages, parts, rounds, work; // work: warps that stream (0: all); the others only quantize x
};

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
__device__ __forceinline__ u32 smem_addr(const void *p) { return (u32)__cvta_generic_to_shared(p); }
__device__ __forceinline__ void mbar_init(u32 bar, u32 count) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(bar), "r"(count) : "memory");
}
// arrive (the phase's one arrival) and expect `bytes` of copies on it
__device__ __forceinline__ void mbar_expect(u32 bar, u32 bytes) {
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(bar), "r"(bytes) : "memory");
}
__device__ __forceinline__ void mbar_wait(u32 bar, u32 parity) {
    asm volatile("{\n"
                 ".reg .pred p;\n"
                 "MS_WAIT:\n"
                 "mbarrier.try_wait.parity.shared::cta.b64 p, [%0], %1;\n"
                 "@!p bra MS_WAIT;\n"
                 "}\n" ::"r"(bar),
                 "r"(parity)
                 : "memory");
}
// global -> shared bulk copy completing on mbarrier `bar`, with an L2 policy
__device__ __forceinline__ void bulk_g2s(u32 dst, const void *src, u32 bytes, u32 bar, u64 pol) {
    asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes.L2::cache_hint"
                 " [%0], [%1], %2, [%3], %4;" ::"r"(dst),
                 "l"(src), "r"(bytes), "r"(bar), "l"(pol)
                 : "memory");
}
// C[16x8] += A[16x32] (u8 codes) · B[32x8] (s8 x terms), exact s32
__device__ __forceinline__ void mma_u8s8(int (&c)[4], u32 a0, u32 a1, u32 a2, u32 a3, u32 b0, u32 b1) {
    asm("mma.sync.aligned.m16n8k32.row.col.s32.u8.s8.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
        : "+r"(c[0]), "+r"(c[1]), "+r"(c[2]), "+r"(c[3])
        : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}
#endif

// Weight row r (0..15) of row group g: rows 16g + r, or for SwiGLU gate rows
// 8g + r (r < 8) and the matching up rows half + 8g + r - 8 (so an MMA lane's
// rows g and g + 8 are one output's gate and up); clamped to valid rows (the
// epilogue skips those outputs).
__device__ __forceinline__ i64 ms_row(i64 g, int r, i64 N, int swiglu) {
    if (swiglu) {
        const i64 half = N / 2, gr = 8 * g + (r & 7);
        return (gr < half ? gr : half - 1) + (r < 8 ? 0 : half);
    }
    const i64 n = MS_ROWS * g + r;
    return n < N ? n : N - 1;
}

// The block's threads turn x (· nw for NORM) into the MMA's B fragments, a
// float4 of x per thread and step; the 16 lanes of a half-warp hold one
// 64-value block. Per block: 2^E, then per term t and lane quad c the 16
// bytes that lane (g, c) of a warp loads for the two k32 MMAs over the block
// (k order: code word m of the lane's 8-byte load holds k = 16c + 8m + 0..7;
// low nibbles the even ones, high the odd ones). xq: [K/64][4 terms][4
// quads][16 B]; meta[b] = (2^E, Σ x·nw). Returns this thread's Σ x² (NORM).
// Rounding to an integer and taking its low byte use the 1.5·2^23 trick
// (|r| <= 64 here).
template <int NORM>
__device__ __forceinline__ float ms_quantize_x(const float *x, const float *nw, i64 K, u8 *xq, float2 *meta) {
    const float MAGIC = 12582912.0f;
    float ss = 0.0f;
    for (i64 i = threadIdx.x; i < K / 4; i += blockDim.x) { // blockDim.x % 32 == 0: a block per half-warp
        float4 v = __ldg((const float4 *)x + i);
        if (NORM) {
            ss = fmaf(v.x, v.x, fmaf(v.y, v.y, fmaf(v.z, v.z, fmaf(v.w, v.w, ss))));
            const float4 n = __ldg((const float4 *)nw + i);
            v.x *= n.x; v.y *= n.y; v.z *= n.z; v.w *= n.w;
        }
        float m = fmaxf(fmaxf(fabsf(v.x), fabsf(v.y)), fmaxf(fabsf(v.z), fabsf(v.w)));
        float s = (v.x + v.y) + (v.z + v.w);
#pragma unroll
        for (int o = 8; o > 0; o >>= 1) { // over the half-warp's 16 float4s, a fixed order
            m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));
            s += __shfl_xor_sync(0xffffffffu, s, o);
        }
        int e = 0;
        float scale = 1.0f, p2 = 1.0f; // v·scale in [-64, 64]; p2 = 1/scale
        if (!(m <= 3.0e38f) || !(s == s)) { // (fmaxf drops NaN; the sum keeps it)
            p2 = __int_as_float(0x7fc00000); // inf / NaN in x: the block's products are NaN
            scale = 0.0f;
        } else if (m > 0.0f) {
            e = ((__float_as_int(m) >> 23) & 0xff) - 126 - 6; // m = f·2^(exp-126), f in [0.5, 1): m·2^-e < 64
            e = e < -120 ? -120 : e > 120 ? 120 : e;
            scale = __int_as_float((127 - e) << 23);
            p2 = __int_as_float((127 + e) << 23);
        }
        const i64 b = i / 16;
        const int q = (int)(i & 3), c = (int)((i >> 2) & 3);
        if ((i & 15) == 0) meta[b] = make_float2(p2, s);
        float r0 = v.x * scale, r1 = v.y * scale, r2 = v.z * scale, r3 = v.w * scale;
        // values 4q .. 4q+3 of quad c: words 2(q/2) (even k) and +1 (odd k), bytes 2(q%2), +1
        u8 *dst = xq + (b * 16 + c) * 16 + (q >> 1) * 8 + (q & 1) * 2;
#pragma unroll
        for (int t = 0; t < 4; t++, dst += 64) {
            const float a0 = r0 + MAGIC, a1 = r1 + MAGIC, a2 = r2 + MAGIC, a3 = r3 + MAGIC;
            r0 = (r0 - (a0 - MAGIC)) * 128.0f; r1 = (r1 - (a1 - MAGIC)) * 128.0f; // exact
            r2 = (r2 - (a2 - MAGIC)) * 128.0f; r3 = (r3 - (a3 - MAGIC)) * 128.0f;
            *(u16 *)dst = (u16)__byte_perm(__float_as_uint(a0), __float_as_uint(a2), 0x0040u);
            *(u16 *)(dst + 4) = (u16)__byte_perm(__float_as_uint(a1), __float_as_uint(a3), 0x0040u);
        }
    }
    return ss;
}

template <int NORM>
__device__ void mvs_body(const WP &w, const float *x, float *y, i64 N, const MVF &f, const MSP &sp) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    extern __shared__ __align__(16) u8 ms_smem[];
    __shared__ float red[32];                         // block_sum
    __shared__ float part_sum[MS_MAX_WARPS][MS_ROWS]; // P > 1: each warp's row sums
    const int S = sp.stages, P = sp.parts, nwarp = sp.work > 0 ? sp.work : blockDim.x >> 5;
    const int t = threadIdx.x, lane = t & 31, warp = t >> 5, g = lane >> 2, c = lane & 3;
    const i64 K = w.K, nblk = K / MS_BLK, nseg = K / MS_SEG, gpr = K / w.group;
    const int gps = MS_SEG / w.group;                   // scale groups per segment
    const u32 scb = (u32)gps * 2;                       // scale (or bias) bytes per row segment
    const u32 stage_bytes = MS_ROWS * (MS_ROWB + 2 * scb);
    const int swiglu = (f.mode & MVF_SWIGLU) != 0;
    // shared memory: [mbarriers nwarp·S][xq K/64 · 256 B][meta K/64 float2][stages nwarp·S]
    u64 *bars = (u64 *)ms_smem;
    uint4 *xq = (uint4 *)(ms_smem + (((u32)(nwarp * S) * 8 + 15) & ~15u));
    float2 *meta = (float2 *)(xq + nblk * 16);
    u8 *stages = (u8 *)(meta + nblk) + (size_t)warp * S * stage_bytes; // this warp's ring
    const u32 bar0 = smem_addr(bars + warp * S), stage0 = smem_addr(stages);

    // this warp's work: row groups gfirst + i·stride (i < nvalid), segments [seg0, seg0 + nsp)
    const i64 ngroups = swiglu ? (N / 2 + 7) / 8 : (N + MS_ROWS - 1) / MS_ROWS;
    const int part = warp % P;
    const i64 stride = (i64)gridDim.x * (nwarp / P);
    const i64 gfirst = (i64)(warp / P) * gridDim.x + blockIdx.x;
    const int worker = warp < nwarp; // helper warps (past sp.work) only quantize x
    const i64 nvalid = worker && gfirst < ngroups ? (ngroups - 1 - gfirst) / stride + 1 : 0;
    const int seg0 = (int)(part * nseg / P), nsp = (int)((part + 1) * nseg / P) - seg0;
    const i64 nst = nvalid * nsp; // stages this warp consumes
    u64 pol;
    asm("createpolicy.fractional.L2::evict_first.b64 %0, 1.0;" : "=l"(pol));

    // producer: the next stage to request, as (row-group round, segment); 48
    // copies a stage (16 row segments, their scales, their biases)
    i64 p_round = 0;
    int p_seg = 0, p_slot = 0;
    auto issue = [&]() {
        const u32 bar = bar0 + 8 * p_slot, dst = stage0 + (u32)p_slot * stage_bytes;
        if (lane == 0) mbar_expect(bar, MS_ROWS * (MS_SEGB + 2 * scb));
        __syncwarp();
        const i64 grp = gfirst + p_round * stride, seg = seg0 + p_seg;
#pragma unroll
        for (int i = lane; i < 3 * MS_ROWS; i += 32) {
            const int r = i & 15, kind = i >> 4; // 0 codes, 1 scales, 2 biases
            const i64 row = ms_row(grp, r, N, swiglu);
            if (kind == 0) bulk_g2s(dst + r * MS_ROWB, w.data + row * w.row_bytes + seg * MS_SEGB, MS_SEGB, bar, pol);
            else
                bulk_g2s(dst + MS_ROWS * MS_ROWB + (kind - 1) * MS_ROWS * scb + r * scb,
                         (const u8 *)(kind == 1 ? w.scales : w.biases) + (row * gpr + seg * gps) * 2, scb, bar, pol);
        }
        if (++p_seg == nsp) p_seg = 0, p_round++;
        if (++p_slot == S) p_slot = 0;
    };

    PDL_LAUNCH();
    if (lane == 0 && worker) {
        for (int i = 0; i < S; i++) mbar_init(bar0 + 8 * i, 1);
        asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
    }
    __syncwarp();
    for (i64 i = 0; i < S && i < nst; i++) issue();
    PDL_WAIT(); // x comes from the previous kernel

    // x' = x (· norm weight) as int8 terms per 64-value block; Σ x²
    const float ss = ms_quantize_x<NORM>(x, f.nw, K, (u8 *)xq, meta);
    float inv = 1.0f;
    if (NORM) inv = rsqrtf(block_sum(ss, red) / (float)K + f.eps); // as matvec.cu's norm_inv
    __syncthreads();

    const int bf = w.sdt == DT_BF16, gsh = w.group == 128; // block -> scale group: bl >> gsh
    const int lrow = (c & 1) ? g + 8 : g; // the row and block this lane folds
    // term weights of this lane's accumulator columns 2c, 2c+1 (terms 2c % 4, 2c % 4 + 1)
    const float tw0 = (c & 1) ? 1.0f / 16384.0f : 1.0f, tw1 = (c & 1) ? 1.0f / 2097152.0f : 1.0f / 128.0f;
    float acc = 0.0f; // row lrow, blocks of parity c >> 1
    int slot = 0;
    u32 phase = 0;
    i64 st = 0;
    const i64 rounds = P > 1 ? sp.rounds : nvalid;
    for (i64 rd = 0; rd < rounds; rd++) {
        if (rd < nvalid) {
            for (int j = 0; j < nsp; j++, st++) {
                mbar_wait(bar0 + 8 * slot, phase);
                const u8 *sb = stages + (size_t)slot * stage_bytes;
                const u16 *scp = (const u16 *)(sb + MS_ROWS * MS_ROWB) + lrow * gps;
                const u16 *bip = scp + MS_ROWS * gps;
                const i64 blk0 = (i64)(seg0 + j) * (MS_SEG / MS_BLK);
#pragma unroll
                for (int p = 0; p < MS_SEG / MS_BLK / 2; p++) { // pairs of x blocks
                    const u8 *ra = sb + g * MS_ROWB + p * 64 + 8 * c, *rb = ra + 8 * MS_ROWB;
                    const uint2 wga = *(const uint2 *)ra, wha = *(const uint2 *)rb;               // block 2p
                    const uint2 wgb = *(const uint2 *)(ra + 32), whb = *(const uint2 *)(rb + 32); // block 2p + 1
                    const uint4 xb = xq[((blk0 + 2 * p + (g >> 2)) * 4 + (g & 3)) * 4 + c];
                    const u32 ma = g < 4 ? ~0u : 0u, mb = ~ma; // column g's block: 2p (g < 4) or 2p + 1
                    int C[4] = {0, 0, 0, 0};
#define MS_LO(u) ((u) & 0x0F0F0F0Fu)
#define MS_HI(u) (((u) >> 4) & 0x0F0F0F0Fu)
                    mma_u8s8(C, MS_LO(wga.x), MS_LO(wha.x), MS_HI(wga.x), MS_HI(wha.x), xb.x & ma, xb.y & ma);
                    mma_u8s8(C, MS_LO(wga.y), MS_LO(wha.y), MS_HI(wga.y), MS_HI(wha.y), xb.z & ma, xb.w & ma);
                    mma_u8s8(C, MS_LO(wgb.x), MS_LO(whb.x), MS_HI(wgb.x), MS_HI(whb.x), xb.x & mb, xb.y & mb);
                    mma_u8s8(C, MS_LO(wgb.y), MS_LO(whb.y), MS_HI(wgb.y), MS_HI(whb.y), xb.z & mb, xb.w & mb);
#undef MS_LO
#undef MS_HI
                    // lane c holds columns 2c, 2c+1 (block 2p + c/2, terms (2c) % 4 and +1) of rows g, g + 8
                    float f0 = (float)C[0] * tw0 + (float)C[1] * tw1, f1 = (float)C[2] * tw0 + (float)C[3] * tw1;
                    f0 += __shfl_xor_sync(0xffffffffu, f0, 1); // all four terms
                    f1 += __shfl_xor_sync(0xffffffffu, f1, 1);
                    const int bl = 2 * p + (c >> 1); // this lane's block within the segment
                    const float2 mt = meta[blk0 + bl];
                    const int gi = bl >> gsh;
                    const u16 sv = scp[gi], bv = bip[gi];
                    const float sc = bf ? bf2f(sv) : h2f(sv), bi = bf ? bf2f(bv) : h2f(bv);
                    acc = fmaf(sc * mt.x, (c & 1) ? f1 : f0, fmaf(bi, mt.y, acc));
                }
                __syncwarp(); // every lane is done with this slot before it is refilled
                if (st + S < nst) issue();
                if (++slot == S) slot = 0, phase ^= 1;
            }
        }
        // round rd's row group: lanes c and c ^ 2 hold row lrow's two block parities
        float tot = acc + __shfl_xor_sync(0xffffffffu, acc, 2);
        acc = 0.0f;
        if (P > 1) {
            if (c < 2) part_sum[warp][lrow] = tot;
            __syncthreads();
            if (part == 0 && c < 2) {
                tot = 0.0f;
                for (int q = 0; q < P; q++) tot += part_sum[warp + q][lrow]; // parts in order
            }
            __syncthreads(); // part_sum is reused next round
        }
        if (part == 0 && rd < nvalid) {
            const i64 grp = gfirst + rd * stride;
            const int res = (f.mode & MVF_RES) != 0;
            const float upv = __shfl_down_sync(0xffffffffu, tot, 1) * inv; // lane c = 0: row g + 8 (up)
            if (swiglu) {
                const i64 n = 8 * grp + g;
                if (c == 0 && n < N / 2) {
                    const float a = tot * inv, o = a / (1.0f + expf(-a)) * upv;
                    y[n] = res ? f.res[n] + o : o;
                }
            } else {
                const i64 n = MS_ROWS * grp + lrow;
                if (c < 2 && n < N) y[n] = res ? f.res[n] + tot * inv : tot * inv;
            }
        }
    }
#endif
}

// mvs_mlx4f: x as given; mvs_mlx4fn: the norm prologue (f.nw).
#define MVSK(NAME, NORM)                                                                                          \
    extern "C" __global__ void __launch_bounds__(32 * MS_MAX_WARPS, 1)                                           \
        NAME(WP w, const float *x, float *y, long long N, MVF f, MSP sp) {                                        \
        mvs_body<NORM>(w, x, y, N, f, sp);                                                                        \
    }
MVSK(mvs_mlx4f, 0)
MVSK(mvs_mlx4fn, 1)
