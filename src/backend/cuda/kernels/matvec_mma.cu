// matvec_mma.cu — y [M, N] f32 = x [M, K] f32 · Wᵀ for MLX affine 4-bit
// weights (group 64 or 128), GGUF Q4_0, Q4_1 and Q8_0, and a few rows of x, on the tensor cores: each
// warp multiplies 16·RT weight rows by an 8-row tile of x with
// mma.sync.m16n8k16 (bf16 in, f32 accumulate), so the 4-bit codes cost one
// shift + one lop3 per two values instead of an f32 FMA per value per row
// of x. Codes are exact in bf16 ((0x4300 | q) is 128 + q; one packed fma
// removes the 128). x is split into three bf16 terms (x = t0 + t1 + t2 to
// 24 bits, the f32 range kept), multiplied by the same code fragments, so the
// product carries f32 precision. Each 64-value k block ("superstep") is
// folded into the f32 accumulators with its group's scale and bias:
// acc += s·Σ x·q + b·Σ x (Σ x from the x fragments, by shuffles).
// K order inside a superstep is permuted so that a lane's 16 contiguous codes
// (one 8-byte load per weight row) and its 16 contiguous x values (four
// float4 loads) land in matching fragment slots: lane quad c (lane % 4) owns
// k = 16c .. 16c+15; in mma step s its A/B slot pairs (2c, 2c+1) and
// (2c+8, 2c+9) hold the nibble pairs (j, j+4) that one lop3 extracts.
// The block's NW warps split K (supersteps w, w+NW, ...) and reduce through
// shared memory. Needs: data and row_bytes 8-byte aligned, K % 64 == 0,
// group 64 or 128, 2-byte scales/biases, x 16-byte aligned.
#include "common.cu"
#include "quant.cu"

__device__ __forceinline__ void mma_bf16(float (&d)[4], const u32 (&a)[4], u32 b0, u32 b1) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// bf16x2 (q_j, q_{j+4}) for the nibbles j and j+4 of w (after w >>= 4·j):
// (0x4300 | q) is the bf16 128 + q; the fma subtracts 128 exactly.
__device__ __forceinline__ u32 nib_pair(u32 w) {
    u32 t = (w & 0x000F000Fu) | 0x43004300u, r;
    asm("fma.rn.bf16x2 %0, %1, %2, %3;" : "=r"(r) : "r"(t), "r"(0x3F803F80u), "r"(0xC300C300u));
    return r;
}

// pack (lo, hi) as bf16x2 (lo in the low half), round to nearest
__device__ __forceinline__ u32 pack_bf16x2(float lo, float hi) {
    u32 r;
    asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
    return r;
}
__device__ __forceinline__ float bf_lo(u32 v) { return __uint_as_float(v << 16); }
__device__ __forceinline__ float bf_hi(u32 v) { return __uint_as_float(v & 0xFFFF0000u); }

// Three-term bf16 split of the pair (a, b): t[0] + t[1] + t[2] == (a, b) to 24 bits.
__device__ __forceinline__ void split3(float a, float b, u32 (&t)[3]) {
    t[0] = pack_bf16x2(a, b);
    a -= bf_lo(t[0]);
    b -= bf_hi(t[0]);
    t[1] = pack_bf16x2(a, b);
    a -= bf_lo(t[1]);
    b -= bf_hi(t[1]);
    t[2] = pack_bf16x2(a, b);
}

// a 2-byte (f16 or bf16) scale or bias
__device__ __forceinline__ float ld_sc16_mma(const void *p, int dt, i64 i) {
    const u16 v = __ldg((const u16 *)p + i);
    const float fb = __uint_as_float((u32)v << 16), fh = h2f(v);
    return dt == DT_BF16 ? fb : fh;
}

// Formats of the tensor-core kernels: a "superstep" is one quantization
// group's worth of k (MLX: 64 values, its group 64 or half of 128; GGUF: one
// 32-value block) that is folded with one (A, B) pair per row:
// acc += A·Σ x·q + B·Σ x (MLX: s, b; Q4_1: d, m; Q4_0: d, -8d).
#define MVT_MLX4 0
#define MVT_Q4_0 GG_Q4_0
#define MVT_Q4_1 GG_Q4_1
#define MVT_Q8_0 GG_Q8_0

template <int FMT> struct MvtFmt {
    static const int KS = FMT == MVT_MLX4 ? 64 : 32;              // k per superstep
    static const int NWD = FMT == MVT_Q8_0 ? 2 : KS / 32;         // u32 code words per lane per row
    static const int NX = KS / 16;                                // float4 of x per lane
};

// bf16x2 of the signed bytes b and b+1 of w (integers: exact)
__device__ __forceinline__ u32 i8_pair(u32 w, int b) {
    return pack_bf16x2((float)(signed char)(w >> (8 * b)), (float)(signed char)(w >> (8 * b + 8)));
}

// Loads the lane's code words of one row for superstep ss, and its (A, B).
template <int FMT>
__device__ __forceinline__ void mvt_load_row(const WP &w, i64 row, i64 ss, int c, i64 gpr, int sps,
                                             u32 (&cw)[MvtFmt<FMT>::NWD], float &fa, float &fb) {
    if (FMT == MVT_MLX4) {
        // codes k = 64·ss + 16c .. +15: 8 bytes
        const uint2 v = __ldg((const uint2 *)(w.data + row * w.row_bytes + ss * 32 + 8 * c));
        cw[0] = v.x;
        cw[MvtFmt<FMT>::NWD - 1] = v.y;
        const i64 gi = row * gpr + ss / sps;
        fa = ld_sc16_mma(w.scales, w.sdt, gi);
        fb = ld_sc16_mma(w.biases, w.sdt, gi);
    } else if (FMT == MVT_Q8_0) {
        // block ss: f16 d then 32 int8; the lane takes codes 8c .. 8c+7 (2-byte aligned)
        const u8 *bp = w.data + row * w.row_bytes + ss * 34;
        const u16 *q16 = (const u16 *)(bp + 2 + 8 * c);
        cw[0] = (u32)__ldg(q16) | ((u32)__ldg(q16 + 1) << 16);
        cw[MvtFmt<FMT>::NWD - 1] = (u32)__ldg(q16 + 2) | ((u32)__ldg(q16 + 3) << 16);
        fa = h2f(__ldg((const u16 *)bp));
        fb = 0.0f;
    } else {
        // block ss: [f16 d (, f16 m)] then 16 bytes of nibbles; the lane takes bytes 4c .. 4c+3
        // (codes 4c+i in the low nibbles, 4c+16+i in the high ones)
        const int BS = FMT == MVT_Q4_0 ? 18 : 20, QO = FMT == MVT_Q4_0 ? 2 : 4;
        const u8 *bp = w.data + row * w.row_bytes + ss * BS;
        const u16 *q16 = (const u16 *)(bp + QO + 4 * c);
        cw[0] = (u32)__ldg(q16) | ((u32)__ldg(q16 + 1) << 16);
        const float d = h2f(__ldg((const u16 *)bp));
        fa = d;
        fb = FMT == MVT_Q4_0 ? -8.0f * d : h2f(__ldg((const u16 *)bp + 1));
    }
}

// RT: 16-row tiles per warp; NW: warps per block (split K); UNR: supersteps
// whose loads are issued together.
template <int FMT, int RT, int NW, int UNR>
__device__ void mvt_body(const WP &w, const float *x, float *y, int M, i64 N) {
    typedef MvtFmt<FMT> F;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int g = lane >> 2, c = lane & 3;
    const i64 rbase = (i64)blockIdx.x * (16 * RT);
    const int m0 = blockIdx.y * 8;
    const int tok = m0 + g;          // the x row this lane loads (B fragment column)
    const bool tok_ok = tok < M;
    const i64 nss = w.K / F::KS;     // supersteps per row
    const int sps = FMT == MVT_MLX4 ? w.group / 64 : 1; // supersteps per group
    const i64 gpr = FMT == MVT_MLX4 ? w.K / w.group : 0;
    i64 rows[RT][2];
#pragma unroll
    for (int t = 0; t < RT; t++)
#pragma unroll
        for (int h = 0; h < 2; h++) {
            i64 r = rbase + 16 * t + g + 8 * h;
            rows[t][h] = r < N ? r : N - 1;
        }
    float acc[RT][4];
#pragma unroll
    for (int t = 0; t < RT; t++)
#pragma unroll
        for (int i = 0; i < 4; i++) acc[t][i] = 0.0f;
    // MLX: the lane's x are k = 16c .. 16c+15 of the superstep; Q4_0/Q4_1: 4c .. 4c+3 and
    // 16+4c .. 16+4c+3; Q8_0: 8c .. 8c+7
    const float *xr = x + (i64)(tok_ok ? tok : 0) * w.K + (FMT == MVT_MLX4 ? 16 * c : FMT == MVT_Q8_0 ? 8 * c : 4 * c);

#pragma unroll 1
    for (i64 s0 = warp; s0 < nss; s0 += NW * UNR) {
        u32 cb[UNR][RT][2][F::NWD];
        float4 xb[UNR][F::NX];
        float fab[UNR][RT][2], fbb[UNR][RT][2];
#pragma unroll
        for (int u = 0; u < UNR; u++) {
            const i64 ss = s0 + (i64)NW * u;
            if (ss >= nss) break;
#pragma unroll
            for (int t = 0; t < RT; t++)
#pragma unroll
                for (int h = 0; h < 2; h++)
                    mvt_load_row<FMT>(w, rows[t][h], ss, c, gpr, sps, cb[u][t][h], fab[u][t][h], fbb[u][t][h]);
#pragma unroll
            for (int q = 0; q < F::NX; q++) {
                const i64 off = ss * F::KS + (FMT == MVT_Q4_0 || FMT == MVT_Q4_1 ? 16 * q : 4 * q);
                xb[u][q] = tok_ok ? __ldg((const float4 *)(xr + off)) : make_float4(0.f, 0.f, 0.f, 0.f);
            }
        }
#pragma unroll
        for (int u = 0; u < UNR; u++) {
            const i64 ss = s0 + (i64)NW * u;
            if (ss >= nss) break;
            // Σ x over the superstep for this lane's token, then for the two
            // tokens (2c, 2c+1) of this lane's C fragment columns
            float px = 0.0f;
#pragma unroll
            for (int q = 0; q < F::NX; q++) px += (xb[u][q].x + xb[u][q].y) + (xb[u][q].z + xb[u][q].w);
            px += __shfl_xor_sync(0xffffffffu, px, 1);
            px += __shfl_xor_sync(0xffffffffu, px, 2);
            const float sx0 = __shfl_sync(0xffffffffu, px, (2 * c) * 4);
            const float sx1 = __shfl_sync(0xffffffffu, px, (2 * c + 1) * 4);
            float xv[4 * F::NX];
#pragma unroll
            for (int q = 0; q < F::NX; q++) {
                xv[4 * q] = xb[u][q].x;
                xv[4 * q + 1] = xb[u][q].y;
                xv[4 * q + 2] = xb[u][q].z;
                xv[4 * q + 3] = xb[u][q].w;
            }
            float tmp[RT][4];
#pragma unroll
            for (int t = 0; t < RT; t++)
#pragma unroll
                for (int i = 0; i < 4; i++) tmp[t][i] = 0.0f;
#pragma unroll
            for (int s = 0; s < F::KS / 16; s++) {
                // Nibble pairs (j, j+4) of a code word come out of one lop3 as
                // P(i), i = 0..3 for word 0 (and 4..7 for word 1). Step s puts
                // P(2s) in slots (2c, 2c+1) and P(2s+1) in (2c+8, 2c+9); the
                // x values at the same k go to the B slots.
                //   MLX: nibble j of word wd is k = 16c + 8·wd + j (x index the same).
                //   GGUF: nibble 2i is k = 4c + i (x index i), 2i+1 is k = 4c+16+i (x index 4+i).
                //   Q8_0: word s holds codes 4s .. 4s+3 (x indices the same), bytes (0, 1)
                //   go to slots (2c, 2c+1) and bytes (2, 3) to (2c+8, 2c+9).
                const int wd = FMT == MVT_MLX4 ? s >> 1 : FMT == MVT_Q8_0 ? s : 0;
                const int j0 = 2 * (s & 1), j1 = j0 + 1; // nibble of the pair's first element in the word
                int x00, x01, x10, x11;                  // x indices of (P(2s).first, .second), (P(2s+1)...)
                if (FMT == MVT_MLX4) {
                    x00 = 8 * wd + j0; x01 = x00 + 4; x10 = 8 * wd + j1; x11 = x10 + 4;
                } else if (FMT == MVT_Q8_0) {
                    x00 = 4 * s; x01 = x00 + 1; x10 = x00 + 2; x11 = x00 + 3;
                } else { // nibble n: even -> x index n/2, odd -> 4 + n/2
                    x00 = j0 >> 1; x01 = (j0 + 4) >> 1;
                    x10 = 4 + (j1 >> 1); x11 = 4 + ((j1 + 4) >> 1);
                }
                u32 bx0[3], bx1[3];
                split3(xv[x00], xv[x01], bx0);
                split3(xv[x10], xv[x11], bx1);
#pragma unroll
                for (int t = 0; t < RT; t++) {
                    const u32 w0 = cb[u][t][0][wd], w8 = cb[u][t][1][wd];
                    u32 a[4];
                    if (FMT == MVT_Q8_0) {
                        a[0] = i8_pair(w0, 0);
                        a[1] = i8_pair(w8, 0);
                        a[2] = i8_pair(w0, 2);
                        a[3] = i8_pair(w8, 2);
                    } else {
                        a[0] = nib_pair(w0 >> (4 * j0)); // row g,   slots (2c, 2c+1)
                        a[1] = nib_pair(w8 >> (4 * j0)); // row g+8, slots (2c, 2c+1)
                        a[2] = nib_pair(w0 >> (4 * j1)); // row g,   slots (2c+8, 2c+9)
                        a[3] = nib_pair(w8 >> (4 * j1)); // row g+8, slots (2c+8, 2c+9)
                    }
#pragma unroll
                    for (int term = 0; term < 3; term++) mma_bf16(tmp[t], a, bx0[term], bx1[term]);
                }
            }
#pragma unroll
            for (int t = 0; t < RT; t++) {
                acc[t][0] += fab[u][t][0] * tmp[t][0] + fbb[u][t][0] * sx0;
                acc[t][1] += fab[u][t][0] * tmp[t][1] + fbb[u][t][0] * sx1;
                acc[t][2] += fab[u][t][1] * tmp[t][2] + fbb[u][t][1] * sx0;
                acc[t][3] += fab[u][t][1] * tmp[t][3] + fbb[u][t][1] * sx1;
            }
        }
    }
    // reduce the NW warps' partials: [NW][RT][4][32]
    __shared__ float red[NW][RT][4][32];
#pragma unroll
    for (int t = 0; t < RT; t++)
#pragma unroll
        for (int i = 0; i < 4; i++) red[warp][t][i][lane] = acc[t][i];
    __syncthreads();
    if (warp == 0) {
#pragma unroll
        for (int t = 0; t < RT; t++)
#pragma unroll
            for (int i = 0; i < 4; i++) {
                float v = 0.0f;
#pragma unroll
                for (int ww = 0; ww < NW; ww++) v += red[ww][t][i][lane];
                const i64 row = rbase + 16 * t + g + (i >= 2 ? 8 : 0);
                const int m = m0 + 2 * c + (i & 1);
                if (row < N && m < M) y[(i64)m * N + row] = v;
            }
    }
}

// mvt_<fmt>_<RT>_<NW>_<UNR>: rows per block = 16·RT; block = 32·NW threads.
#define MVT(NAME, FMT, RT, NW, UNR)                                                                             \
    extern "C" __global__ void __launch_bounds__(32 * NW) NAME##_##RT##_##NW##_##UNR(WP w, const float *x,      \
                                                                                    float *y, int M, i64 N) {   \
        PDL_ENTER();                                                                                            \
        mvt_body<FMT, RT, NW, UNR>(w, x, y, M, N);                                                             \
    }
#define MVT_SET(RT, NW, UNR)                \
    MVT(mvt_mlx4, MVT_MLX4, RT, NW, UNR)    \
    MVT(mvt_q4_0, MVT_Q4_0, RT, NW, UNR)    \
    MVT(mvt_q4_1, MVT_Q4_1, RT, NW, UNR)    \
    MVT(mvt_q8_0, MVT_Q8_0, RT, NW, UNR)
MVT_SET(1, 4, 2)
MVT_SET(2, 4, 2)
MVT_SET(1, 8, 2)
MVT_SET(2, 8, 2)
MVT_SET(1, 4, 4)
MVT_SET(2, 8, 1)
