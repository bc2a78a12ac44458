// attention_prefill.cu — prefill attention (many query rows) over a linear KV
// cache, flash-attention-2 style in f32 SIMT arithmetic. A block of 256
// threads owns PF_BQ = 64 "items" (query row, query head): PF_BQ / gq query
// rows times the gq query heads (1/2/4/8, a divisor of the GQA group) that
// share one KV head, so every K/V tile staged in shared memory serves 64
// query vectors. The block walks key tiles of PF_BK = 64 keys from the lowest
// key any of its rows can see (window) to the highest (causal: the newest of
// its own rows' positions; else the newest position of all rows), both found
// on the device from pos[], so the grid depends on T and the heads only. Per
// tile: K (converted to f32) goes into shared memory, S = Q Kᵀ is computed
// with a 4 query x 4 key register micro-tile per thread (thread (ty, tx)
// owns items ty*4..ty*4+3 and keys tx + 16j), masked (causal, window, keys
// past the range) and soft-capped, the online softmax (log2 domain, running
// max and sum per item, the max shared by the 16 lanes of an item row) turns
// it into P (shared memory), then V replaces K in the same buffer and
// O += P V (4 items x 4*DMAX/64 dims per thread). The next tile's K and this
// tile's V are loaded into registers while the previous phase computes. At
// the end O / l is written (zeros for an item that saw no key, like the
// reference). Blocks run latest row tiles first (they have the most keys),
// the second wave mirrored so each SM pairs a heavy and a light unit. Positions
// outside [0, C) raise bit 4 of the error word. Every kernel begins with
// PDL_ENTER(). Instances: cache dtype x DMAX in {64, 128} (D == DMAX).
#include "common.cu"

#define PF_BQ 64  // items (query row, head) per block
#define PF_BK 64  // keys per tile
#define PF_NT 256 // threads per block: 16 x 16, each 4 items x 4 keys
#define PF_LOG2E 1.4426950408889634f

struct PfArgs {
    const float *q;     // [T, Hq, D]
    const void *k;      // [Hkv, C, D]
    const void *v;      // [Hkv, C, D]
    const int *pos;     // [T] or NULL (query t at kv_len - T + t)
    float *out;         // [T, Hq, D]
    unsigned *err;      // session error word
    i64 C;
    i64 kv_len;
    int T, Hq, Hkv, G, gq, causal, window;
    int nsm; // SMs (block order, see pf_body); 0: plain latest-first order
    float scale, softcap;
};

// dynamic shared memory bytes of an instance (the launcher mirrors this)
#define PF_SMEM(DMAX) ((PF_BQ * ((DMAX) + 4) + PF_BK * ((DMAX) + 4) + PF_BK * (PF_BQ + 4)) * 4)

// NV 16-byte vectors per thread of a PF_BK x DMAX tile starting at key kb;
// rows past key kend are zeros
template <int DT, int DMAX, int NV>
__device__ __forceinline__ void pf_load(const char *base, int kb, int kend, uint4 (&w)[NV]) {
    constexpr int ESZ = DT == DT_F32 ? 4 : 2;
    constexpr int VPR = DMAX * ESZ / 16; // vectors per key row
#pragma unroll
    for (int u = 0; u < NV; u++) {
        const int idx = threadIdx.x + u * PF_NT, n = idx / VPR, c = idx % VPR;
        const int kp = kb + n;
        if (kp <= kend) w[u] = __ldg((const uint4 *)(base + ((i64)kp * DMAX * ESZ + c * 16)));
        else w[u] = make_uint4(0u, 0u, 0u, 0u);
    }
}

// the registers of pf_load into the f32 tile buf [PF_BK][DMAX + 4]
template <int DT, int DMAX, int NV>
__device__ __forceinline__ void pf_store(float *buf, const uint4 (&w)[NV]) {
    constexpr int ESZ = DT == DT_F32 ? 4 : 2;
    constexpr int VPR = DMAX * ESZ / 16;
    constexpr int EPV = 16 / ESZ; // elements per vector
    constexpr int SQ = DMAX + 4;
#pragma unroll
    for (int u = 0; u < NV; u++) {
        const int idx = threadIdx.x + u * PF_NT, n = idx / VPR, c = idx % VPR;
        float *dst = buf + n * SQ + c * EPV;
        if (DT == DT_F32) {
            *(float4 *)dst = make_float4(__uint_as_float(w[u].x), __uint_as_float(w[u].y), __uint_as_float(w[u].z),
                                         __uint_as_float(w[u].w));
        } else {
            const u32 r[4] = {w[u].x, w[u].y, w[u].z, w[u].w};
            float f[8];
#pragma unroll
            for (int e = 0; e < 4; e++) {
                const u16 lo = (u16)(r[e] & 0xffffu), hi = (u16)(r[e] >> 16);
                f[2 * e] = DT == DT_F16 ? h2f(lo) : bf2f(lo);
                f[2 * e + 1] = DT == DT_F16 ? h2f(hi) : bf2f(hi);
            }
            *(float4 *)dst = make_float4(f[0], f[1], f[2], f[3]);
            *(float4 *)(dst + 4) = make_float4(f[4], f[5], f[6], f[7]);
        }
    }
}

template <int DT, int DMAX>
__device__ void pf_body(const PfArgs &a) {
    constexpr int ESZ = DT == DT_F32 ? 4 : 2;
    constexpr int SQ = DMAX + 4;                  // row stride of Qs and KVs (floats)
    constexpr int SP = PF_BQ + 4;                 // row stride of Ps
    constexpr int NC = DMAX / 64;                 // 4-dim chunks per thread in O
    constexpr int NV = PF_BK * DMAX * ESZ / 16 / PF_NT; // 16-byte vectors per thread and tile
    extern __shared__ __align__(16) float pf_smem[];
    float *Qs = pf_smem;              // [PF_BQ][SQ] q * scale (* log2e)
    float *KVs = Qs + PF_BQ * SQ;     // [PF_BK][SQ] K, then V of the tile
    float *Ps = KVs + PF_BK * SQ;     // [PF_BK][SP] P transposed (key-major)
    __shared__ int s_pos[PF_BQ];      // positions of this block's query rows
    __shared__ int s_max;             // newest position of all rows (non-causal)
    __shared__ int s_lo[PF_BQ], s_hi[PF_BQ]; // item r sees keys s_lo[r] <= kpos <= s_hi[r]
    const float NEG_INF = -__int_as_float(0x7f800000);

    const int tid = threadIdx.x, tx = tid & 15, ty = tid >> 4;
    const int gq = a.gq, TP = PF_BQ / gq;             // heads, query rows per block
    const int hgroups = a.G / gq, ny = a.Hkv * hgroups; // head groups
    // work unit u (descending work: latest row tiles first) of block b. The
    // first nsm blocks land on distinct SMs and the next ones take the second
    // slot of each SM in the same order: block nsm + k runs the unit mirrored
    // in the first two waves (W - 1 - k), pairing heavy with light per SM;
    // later blocks fill freed slots in descending order
    const int b = blockIdx.x, nb = gridDim.x;
    int u = b;
    if (a.nsm > 0) {
        const int W = min(nb, 2 * a.nsm);
        if (b >= a.nsm && b < W) u = W - 1 - (b - a.nsm);
    }
    const int t0 = (nb / ny - 1 - u / ny) * TP;
    const int kvh = (u % ny) / hgroups;
    const int h0 = kvh * a.G + (u % hgroups) * gq; // first query head
    const int nrow = min(TP, a.T - t0);

    if (tid < nrow) {
        const int t = t0 + tid;
        const int p = a.pos ? a.pos[t] : (int)(a.kv_len - a.T + t);
        s_pos[tid] = p;
        if (u % ny == 0 && (p < 0 || (i64)p >= a.C)) atomicOr(a.err, 4u);
    }
    if (tid == 0) s_max = -1;
    __syncthreads();
    if (!a.causal) {
        int m = -1;
        for (int t = tid; t < a.T; t += PF_NT) m = max(m, a.pos ? a.pos[t] : (int)(a.kv_len - a.T + t));
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) m = max(m, __shfl_xor_sync(0xffffffffu, m, o));
        if ((tid & 31) == 0) atomicMax(&s_max, m);
    }
    // q tile (zeros for rows past T), pre-scaled
    const float qs = a.softcap > 0.0f ? a.scale : a.scale * PF_LOG2E;
    for (int i = tid; i < PF_BQ * (DMAX / 4); i += PF_NT) {
        const int r = i / (DMAX / 4), d = (i % (DMAX / 4)) * 4, tr = r / gq;
        float4 v = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        if (tr < nrow) {
            v = *(const float4 *)(a.q + ((i64)(t0 + tr) * a.Hq + h0 + r % gq) * DMAX + d);
            v.x *= qs; v.y *= qs; v.z *= qs; v.w *= qs;
        }
        *(float4 *)&Qs[r * SQ + d] = v;
    }
    __syncthreads();
    // key range of the block [klo, khi] and of each of this thread's items
    int qmin = 0x7fffffff, qmax = -1;
    for (int r = 0; r < nrow; r++) {
        qmin = min(qmin, s_pos[r]);
        qmax = max(qmax, s_pos[r]);
    }
    i64 hi = a.causal ? (i64)qmax : (i64)s_max;
    if (hi > a.C - 1) hi = a.C - 1;
    i64 lo = 0;
    if (a.window > 0 && (i64)qmin - a.window + 1 > 0) lo = (i64)qmin - a.window + 1;
    const int khi = (int)hi, klo = (int)lo;
    if (tid < PF_BQ) {
        const int tr = tid / gq;
        int ilo = 0, ihi = -1;
        if (tr < nrow) {
            const int p = s_pos[tr];
            ihi = a.causal ? min(p, khi) : khi;
            if (a.window > 0 && (i64)p - a.window + 1 > 0) ilo = (int)((i64)p - a.window + 1);
        }
        s_lo[tid] = ilo;
        s_hi[tid] = ihi;
    }

    float m[4], l[4], acc[4][NC * 4];
#pragma unroll
    for (int i = 0; i < 4; i++) {
        m[i] = NEG_INF;
        l[i] = 0.0f;
#pragma unroll
        for (int e = 0; e < NC * 4; e++) acc[i][e] = 0.0f;
    }
    const int ntile = khi >= klo ? (khi - klo) / PF_BK + 1 : 0;
    const char *kbase = (const char *)a.k + (i64)kvh * a.C * DMAX * ESZ;
    const char *vbase = (const char *)a.v + (i64)kvh * a.C * DMAX * ESZ;
    const bool sc = a.softcap > 0.0f;
    uint4 pre[NV];
    if (ntile > 0) pf_load<DT, DMAX, NV>(kbase, klo, khi, pre);
    for (int it = 0; it < ntile; it++) {
        const int kb = klo + it * PF_BK;
        __syncthreads(); // the previous tile's P V is done with KVs and Ps
        pf_store<DT, DMAX, NV>(KVs, pre);
        pf_load<DT, DMAX, NV>(vbase, kb, khi, pre);
        __syncthreads();
        // S = Q Kᵀ: items ty*4+i, keys tx+16j
        float s[4][4];
#pragma unroll
        for (int i = 0; i < 4; i++)
#pragma unroll
            for (int j = 0; j < 4; j++) s[i][j] = 0.0f;
#pragma unroll 4
        for (int d = 0; d < DMAX; d += 4) {
            float4 qf[4], kf[4];
#pragma unroll
            for (int i = 0; i < 4; i++) qf[i] = *(const float4 *)&Qs[(ty * 4 + i) * SQ + d];
#pragma unroll
            for (int j = 0; j < 4; j++) kf[j] = *(const float4 *)&KVs[(tx + 16 * j) * SQ + d];
#pragma unroll
            for (int i = 0; i < 4; i++)
#pragma unroll
                for (int j = 0; j < 4; j++) {
                    float x = s[i][j];
                    x = fmaf(qf[i].x, kf[j].x, x);
                    x = fmaf(qf[i].y, kf[j].y, x);
                    x = fmaf(qf[i].z, kf[j].z, x);
                    x = fmaf(qf[i].w, kf[j].w, x);
                    s[i][j] = x;
                }
        }
        // mask, softcap, online softmax (the 16 lanes tx of an item row share m)
#pragma unroll
        for (int i = 0; i < 4; i++) {
            const int ilo = s_lo[ty * 4 + i], ihi = s_hi[ty * 4 + i];
            float bm = NEG_INF;
#pragma unroll
            for (int j = 0; j < 4; j++) {
                const int kp = kb + tx + 16 * j;
                float x = s[i][j];
                if (sc) x = a.softcap * tanhf(x / a.softcap) * PF_LOG2E;
                x = (kp >= ilo && kp <= ihi) ? x : NEG_INF;
                s[i][j] = x;
                bm = fmaxf(bm, x);
            }
#pragma unroll
            for (int o = 8; o > 0; o >>= 1) bm = fmaxf(bm, __shfl_xor_sync(0xffffffffu, bm, o));
            const float mn = fmaxf(m[i], bm);
            const float mr = mn == NEG_INF ? 0.0f : mn;
            const float corr = exp2f(m[i] - mr);
            m[i] = mn;
            float ls = l[i] * corr;
#pragma unroll
            for (int j = 0; j < 4; j++) {
                const float p = exp2f(s[i][j] - mr);
                s[i][j] = p;
                ls += p;
            }
            l[i] = ls;
#pragma unroll
            for (int e = 0; e < NC * 4; e++) acc[i][e] *= corr;
        }
#pragma unroll
        for (int j = 0; j < 4; j++)
            *(float4 *)&Ps[(tx + 16 * j) * SP + ty * 4] = make_float4(s[0][j], s[1][j], s[2][j], s[3][j]);
        __syncthreads(); // S done with K; P complete
        pf_store<DT, DMAX, NV>(KVs, pre);
        if (it + 1 < ntile) pf_load<DT, DMAX, NV>(kbase, kb + PF_BK, khi, pre);
        __syncthreads();
        // O += P V: items ty*4+i, dims tx*4 + 64c + e; keys past khi (zeros, P = 0)
        // are skipped
        const int kn = min(PF_BK, khi - kb + 1);
#pragma unroll 8
        for (int k = 0; k < kn; k++) {
            const float4 pf = *(const float4 *)&Ps[k * SP + ty * 4];
            const float pv[4] = {pf.x, pf.y, pf.z, pf.w};
#pragma unroll
            for (int c = 0; c < NC; c++) {
                const float4 vf = *(const float4 *)&KVs[k * SQ + c * 64 + tx * 4];
#pragma unroll
                for (int i = 0; i < 4; i++) {
                    acc[i][c * 4] = fmaf(pv[i], vf.x, acc[i][c * 4]);
                    acc[i][c * 4 + 1] = fmaf(pv[i], vf.y, acc[i][c * 4 + 1]);
                    acc[i][c * 4 + 2] = fmaf(pv[i], vf.z, acc[i][c * 4 + 2]);
                    acc[i][c * 4 + 3] = fmaf(pv[i], vf.w, acc[i][c * 4 + 3]);
                }
            }
        }
    }
    // out = O / l (l summed over the 16 lanes of the row; zeros if no key)
#pragma unroll
    for (int i = 0; i < 4; i++) {
        float ls = l[i];
#pragma unroll
        for (int o = 8; o > 0; o >>= 1) ls += __shfl_xor_sync(0xffffffffu, ls, o);
        const int r = ty * 4 + i, tr = r / gq;
        if (tr < nrow) {
            const float inv = ls > 0.0f ? 1.0f / ls : 0.0f;
            float *o = a.out + ((i64)(t0 + tr) * a.Hq + h0 + r % gq) * DMAX + tx * 4;
#pragma unroll
            for (int c = 0; c < NC; c++)
                *(float4 *)(o + c * 64) = make_float4(acc[i][c * 4] * inv, acc[i][c * 4 + 1] * inv,
                                                      acc[i][c * 4 + 2] * inv, acc[i][c * 4 + 3] * inv);
        }
    }
}

// 2 blocks (16 warps) per SM: <= 128 registers; shared memory PF_SMEM(128) =
// 85 KB per block
#define PF_INST(NAME, DT, DMAX)                                                       \
    extern "C" __global__ void __launch_bounds__(PF_NT, 2) NAME(PfArgs a) {          \
        PDL_ENTER();                                                                  \
        pf_body<DT, DMAX>(a);                                                         \
    }

PF_INST(attn_pf_f32_d64, DT_F32, 64)
PF_INST(attn_pf_f32_d128, DT_F32, 128)
PF_INST(attn_pf_f16_d64, DT_F16, 64)
PF_INST(attn_pf_f16_d128, DT_F16, 128)
PF_INST(attn_pf_bf16_d64, DT_BF16, 64)
PF_INST(attn_pf_bf16_d128, DT_BF16, 128)
