// attention.cu — scaled dot-product attention over a KV cache, split-K
// ("flash decoding"), the general path (attn_*: prefill rows that the
// tiled prefill kernel does not take, and MLXN_CUDA_ATTN=general); the
// decode path (T <= 4) is attention_decode.cu. Same semantics on both
// (causal, window, ring buffer, softcap, positions read from device memory
// so a captured graph replays with new positions, grid sizes that depend on
// the cache capacity C only). attn_prep finds the newest position; each
// block takes one query row t, one KV head and a group of G query heads
// sharing it (GQA), walks one chunk of the cache in tiles of 256 keys (8
// warps) (scores in shared memory, block-wide running max, V accumulated per
// lane), and writes a partial (max, sum, acc[D]); the last block of a (t,
// KV head) to finish (a counter in device memory, reset by that block)
// combines the partials into out.
// Kernels are instantiated per cache dtype, a head-dim bound DMAX (64/128/256)
// and G (1/2/4/8 query heads per block). Every kernel begins with PDL_ENTER(),
// so this file may be listed in cuda_device.c's pdl_source().
#include "common.cu"

#define TILE 256 // keys per tile; also the most splits the combine step handles
#define NWARP 8

struct AttnArgs {
    const float *q;      // [T, Hq, D]
    const void *k;       // [Hkv, C, D]
    const void *v;
    const int *pos;      // [T] or NULL
    float *out;          // [T, Hq, D]
    float *part;         // [T, Hq, nsplit, D] partial accumulators
    float *part_ml;      // [T, Hq, nsplit, 2] partial max, sum
    unsigned *counters;  // [T * Hkv * hgroups]
    const int *maxpos;   // [1] newest position (attn_prep)
    i64 C;
    i64 kv_len;
    int T, Hq, Hkv, D, G_total, nsplit, chunk, causal, window, ring, full;
    float scale, softcap;
};

extern "C" __global__ void attn_prep(const int *pos, int T, i64 kv_len, i64 C, int ring, int *maxpos,
                                     unsigned *err) {
    PDL_ENTER();
    int m = -1;
    for (int t = threadIdx.x; t < T; t += blockDim.x) {
        int p = pos ? pos[t] : (int)(kv_len - T + t);
        if (p < 0) atomicOr(err, 4u);
        m = max(m, p);
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) m = max(m, __shfl_xor_sync(0xffffffffu, m, o));
    __shared__ int sh[32];
    if ((threadIdx.x & 31) == 0) sh[threadIdx.x >> 5] = m;
    __syncthreads();
    if (threadIdx.x == 0) {
        for (int w = 1; w < (int)(blockDim.x >> 5); w++) m = max(m, sh[w]);
        m = max(m, sh[0]);
        if (!ring && (i64)m >= C) atomicOr(err, 4u);
        *maxpos = m;
    }
}

// one step of the transpose-reduction: lanes with bit O set keep the upper O
// values, the others the lower O; each adds its partner's copy of what it keeps
template <int O>
__device__ __forceinline__ void tr_step(float (&v)[32], int lane) {
    const bool up = (lane & O) != 0;
#pragma unroll
    for (int i = 0; i < O; i++) {
        float send = up ? v[i] : v[i + O];
        float keep = up ? v[i + O] : v[i];
        v[i] = keep + __shfl_xor_sync(0xffffffffu, send, O);
    }
}

template <int DT, int EPL>
__device__ __forceinline__ void load_vec(const void *base, i64 off, bool full, int d0, int D, float *o) {
    if (full) {
        if (DT == DT_F32) {
            const float *p = (const float *)base + off;
            if (EPL == 2) {
                float2 t = *(const float2 *)p;
                o[0] = t.x; o[1] = t.y;
            } else {
#pragma unroll
                for (int e = 0; e < EPL; e += 4) {
                    float4 t = *(const float4 *)(p + e);
                    o[e] = t.x; o[e + 1] = t.y; o[e + 2] = t.z; o[e + 3] = t.w;
                }
            }
        } else {
            const u16 *p = (const u16 *)base + off;
            u32 w[EPL / 2];
            if (EPL == 2) {
                w[0] = *(const u32 *)p;
            } else if (EPL == 4) {
                uint2 t = *(const uint2 *)p;
                w[0] = t.x; w[1] = t.y;
            } else {
                uint4 t = *(const uint4 *)p;
                w[0] = t.x; w[1] = t.y; w[2] = t.z; w[3] = t.w;
            }
#pragma unroll
            for (int e = 0; e < EPL / 2; e++) {
                u16 lo = (u16)(w[e] & 0xffffu), hi = (u16)(w[e] >> 16);
                o[2 * e] = DT == DT_F16 ? h2f(lo) : bf2f(lo);
                o[2 * e + 1] = DT == DT_F16 ? h2f(hi) : bf2f(hi);
            }
        }
    } else {
#pragma unroll
        for (int e = 0; e < EPL; e++) o[e] = (d0 + e < D) ? ldf(base, DT, off + e) : 0.0f;
    }
}

template <int DT, int DMAX, int G>
__device__ void attn_body(const AttnArgs &a) {
    const int EPL = DMAX / 32;
    __shared__ float s_sc[G][TILE];
    __shared__ float s_red[NWARP][G];
    __shared__ float s_acc[NWARP / 2][G][DMAX];
    __shared__ int s_last;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int split = blockIdx.x;
    const int hgroups = a.G_total / G;
    const int kvh = blockIdx.y / hgroups, hg = blockIdx.y % hgroups;
    const int t = blockIdx.z;
    const int h0 = kvh * a.G_total + hg * G; // first query head of this block
    const float NEG_INF = -__int_as_float(0x7f800000);

    const i64 maxpos = *a.maxpos;
    const i64 qpos = a.pos ? (i64)a.pos[t] : a.kv_len - a.T + t;
    i64 hi = maxpos;
    if (!a.ring && hi > a.C - 1) hi = a.C - 1;
    i64 lo = (a.ring && maxpos - a.C + 1 > 0) ? maxpos - a.C + 1 : 0;
    i64 vlo = lo, vhi = hi;
    if (a.causal && qpos < vhi) vhi = qpos;
    if (a.window > 0 && qpos - a.window + 1 > vlo) vlo = qpos - a.window + 1;
    // this block's chunk, in key positions
    i64 c0 = lo + (i64)split * a.chunk, c1 = c0 + a.chunk - 1;
    if (c0 < vlo) c0 = vlo;
    if (c1 > vhi) c1 = vhi;

    // q for the G heads, this lane's dims, pre-scaled
    const int d0 = lane * EPL;
    float qv[G][EPL];
#pragma unroll
    for (int g = 0; g < G; g++) {
        const float *qr = a.q + ((i64)t * a.Hq + h0 + g) * a.D;
#pragma unroll
        for (int e = 0; e < EPL; e++) qv[g][e] = (d0 + e < a.D) ? qr[d0 + e] * a.scale : 0.0f;
    }
    float acc[G][EPL];
    float m_run[G], l_run[G];
#pragma unroll
    for (int g = 0; g < G; g++) {
        m_run[g] = NEG_INF;
        l_run[g] = 0.0f;
#pragma unroll
        for (int e = 0; e < EPL; e++) acc[g][e] = 0.0f;
    }
    const i64 head_off = (i64)kvh * a.C;
    for (i64 tb = c0; tb <= c1; tb += TILE) {
        int n = (int)((c1 - tb + 1) < TILE ? (c1 - tb + 1) : TILE);
        // scores: each warp loads UN keys at once (loads in flight), then reduces
        // UN*G dot products; for G > 1 a transpose-reduction leaves one (key, head)
        // sum per lane (31 shuffles for 32 sums instead of 5 each)
        {
            const int UN = G == 1 ? 8 : 32 / G;
            for (int j0 = warp * UN; j0 < n; j0 += NWARP * UN) {
                float kv[UN][EPL];
#pragma unroll
                for (int u = 0; u < UN; u++) {
                    int j = j0 + u;
                    if (j < n) {
                        i64 kpos = tb + j;
                        i64 slot = a.ring ? kpos % a.C : kpos;
                        load_vec<DT, EPL>(a.k, (head_off + slot) * a.D + d0, a.full, d0, a.D, kv[u]);
                    } else {
#pragma unroll
                        for (int e = 0; e < EPL; e++) kv[u][e] = 0.0f;
                    }
                }
                if (G == 1) {
#pragma unroll
                    for (int u = 0; u < UN; u++) {
                        float sdot = 0.0f;
#pragma unroll
                        for (int e = 0; e < EPL; e++) sdot += qv[0][e] * kv[u][e];
                        sdot = warp_sum(sdot);
                        if (a.softcap > 0.0f) sdot = a.softcap * tanhf(sdot / a.softcap);
                        if (lane == 0 && j0 + u < n) s_sc[0][j0 + u] = sdot;
                    }
                } else {
                    float v[32];
#pragma unroll
                    for (int u = 0; u < UN; u++)
#pragma unroll
                        for (int g = 0; g < G; g++) {
                            float sdot = 0.0f;
#pragma unroll
                            for (int e = 0; e < EPL; e++) sdot += qv[g][e] * kv[u][e];
                            v[u * G + g] = sdot;
                        }
                    tr_step<16>(v, lane);
                    tr_step<8>(v, lane);
                    tr_step<4>(v, lane);
                    tr_step<2>(v, lane);
                    tr_step<1>(v, lane);
                    float sdot = v[0]; // (key lane / G, head lane % G)
                    if (a.softcap > 0.0f) sdot = a.softcap * tanhf(sdot / a.softcap);
                    const int u = lane / G, g = lane % G;
                    if (j0 + u < n) s_sc[g][j0 + u] = sdot;
                }
            }
        }
        __syncthreads();
        // tile max per head (block-wide), rescale running state
        float m_new[G], corr[G];
#pragma unroll
        for (int g = 0; g < G; g++) {
            float m = NEG_INF;
            for (int j = threadIdx.x; j < n; j += blockDim.x) m = fmaxf(m, s_sc[g][j]);
            m = warp_max(m);
            if (lane == 0) s_red[warp][g] = m;
        }
        __syncthreads();
#pragma unroll
        for (int g = 0; g < G; g++) {
            float m = s_red[0][g];
#pragma unroll
            for (int w = 1; w < NWARP; w++) m = fmaxf(m, s_red[w][g]);
            m_new[g] = fmaxf(m_run[g], m);
            corr[g] = m_run[g] == NEG_INF ? 0.0f : expf(m_run[g] - m_new[g]);
            m_run[g] = m_new[g];
            l_run[g] *= corr[g];
#pragma unroll
            for (int e = 0; e < EPL; e++) acc[g][e] *= corr[g];
        }
        __syncthreads(); // everyone has read s_red
        for (int j = threadIdx.x; j < n; j += blockDim.x) {
#pragma unroll
            for (int g = 0; g < G; g++) s_sc[g][j] = expf(s_sc[g][j] - m_new[g]);
        }
        __syncthreads();
        // V accumulation: warp w takes UV consecutive keys per step, loads first
        float lsum[G];
#pragma unroll
        for (int g = 0; g < G; g++) lsum[g] = 0.0f;
        {
            const int UV = EPL >= 8 ? 4 : 8;
            for (int j0 = warp * UV; j0 < n; j0 += NWARP * UV) {
                float vv[UV][EPL];
#pragma unroll
                for (int u = 0; u < UV; u++) {
                    int j = j0 + u;
                    if (j < n) {
                        i64 kpos = tb + j;
                        i64 slot = a.ring ? kpos % a.C : kpos;
                        load_vec<DT, EPL>(a.v, (head_off + slot) * a.D + d0, a.full, d0, a.D, vv[u]);
                    }
                }
#pragma unroll
                for (int u = 0; u < UV; u++) {
                    if (j0 + u >= n) break;
#pragma unroll
                    for (int g = 0; g < G; g++) {
                        float p = s_sc[g][j0 + u];
                        lsum[g] += p;
#pragma unroll
                        for (int e = 0; e < EPL; e++) acc[g][e] += p * vv[u][e];
                    }
                }
            }
        }
#pragma unroll
        for (int g = 0; g < G; g++) l_run[g] += lsum[g]; // per-warp partial sums (combined below)
        __syncthreads(); // s_sc reused by the next tile
    }
    // combine the warps (every warp used the same running max): the upper half
    // stores, the lower half adds, then the NWARP/2 slots are summed
    const int HW = NWARP / 2;
    if (warp >= HW) {
#pragma unroll
        for (int g = 0; g < G; g++)
#pragma unroll
            for (int e = 0; e < EPL; e++)
                if (d0 + e < DMAX) s_acc[warp - HW][g][d0 + e] = acc[g][e];
    }
#pragma unroll
    for (int g = 0; g < G; g++)
        if (lane == 0) s_red[warp][g] = l_run[g];
    __syncthreads();
    if (warp < HW) {
#pragma unroll
        for (int g = 0; g < G; g++)
#pragma unroll
            for (int e = 0; e < EPL; e++)
                if (d0 + e < DMAX) s_acc[warp][g][d0 + e] += acc[g][e];
    }
    __syncthreads();
    const i64 pbase = ((i64)t * a.Hq + h0) * a.nsplit + split; // + g * nsplit
    for (int i = threadIdx.x; i < G * a.D; i += blockDim.x) {
        int g = i / a.D, d = i % a.D;
        float sacc = 0.0f;
#pragma unroll
        for (int w = 0; w < HW; w++) sacc += s_acc[w][g][d];
        a.part[(pbase + (i64)g * a.nsplit) * a.D + d] = sacc;
    }
    if (threadIdx.x < G) {
        int g = threadIdx.x;
        float l = 0.0f;
#pragma unroll
        for (int w = 0; w < NWARP; w++) l += s_red[w][g];
        a.part_ml[(pbase + (i64)g * a.nsplit) * 2] = (c0 <= c1) ? m_run[g] : NEG_INF;
        a.part_ml[(pbase + (i64)g * a.nsplit) * 2 + 1] = l;
    }
    // the last block for this (t, kvh, hg) combines all splits
    __threadfence();
    __syncthreads();
    unsigned *ctr = a.counters + ((i64)t * a.Hkv + kvh) * hgroups + hg;
    if (threadIdx.x == 0) s_last = (atomicAdd(ctr, 1u) == (unsigned)a.nsplit - 1);
    __syncthreads();
    if (!s_last) return;
    __threadfence();
    // split weights w_s = exp(m_s - M) into s_sc[g][s] (nsplit <= TILE), den per head
    __shared__ float s_den[G];
    for (int g = 0; g < G; g++) {
        const i64 b = ((i64)t * a.Hq + h0 + g) * a.nsplit;
        float m = NEG_INF, l = 0.0f;
        if ((int)threadIdx.x < a.nsplit) {
            m = __ldcg(&a.part_ml[(b + threadIdx.x) * 2]);
            l = __ldcg(&a.part_ml[(b + threadIdx.x) * 2 + 1]);
        }
        float M = block_max(m, &s_red[0][0]);
        float wgt = (m == NEG_INF || M == NEG_INF) ? 0.0f : expf(m - M);
        if ((int)threadIdx.x < a.nsplit) s_sc[g][threadIdx.x] = wgt;
        float den = block_sum(wgt * l, &s_red[0][0]);
        if (threadIdx.x == 0) s_den[g] = den;
    }
    __syncthreads();
    for (int i = threadIdx.x; i < G * a.D; i += blockDim.x) {
        const int g = i / a.D, d = i % a.D;
        const i64 b = ((i64)t * a.Hq + h0 + g) * a.nsplit;
        float num = 0.0f;
        int sp = 0;
        for (; sp + 8 <= a.nsplit; sp += 8) {
            float v[8];
#pragma unroll
            for (int u = 0; u < 8; u++) v[u] = __ldcg(&a.part[(b + sp + u) * a.D + d]);
#pragma unroll
            for (int u = 0; u < 8; u++) num += s_sc[g][sp + u] * v[u];
        }
        for (; sp < a.nsplit; sp++) num += s_sc[g][sp] * __ldcg(&a.part[(b + sp) * a.D + d]);
        const float den = s_den[g];
        a.out[((i64)t * a.Hq + h0 + g) * a.D + d] = den > 0.0f ? num / den : 0.0f;
    }
    if (threadIdx.x == 0) *ctr = 0u; // ready for the next launch / graph replay
}

#define ATTN_INST(NAME, DT, DMAX, G) \
    extern "C" __global__ void __launch_bounds__(256, ((DMAX) == 256 || (G) == 8) ? 1 : 2) NAME(AttnArgs a) { \
        PDL_ENTER();                                                                                        \
        attn_body<DT, DMAX, G>(a);                                                                          \
    }

#define ATTN_INST_G(PFX, DT, DMAX)          \
    ATTN_INST(PFX##_g1, DT, DMAX, 1)        \
    ATTN_INST(PFX##_g2, DT, DMAX, 2)        \
    ATTN_INST(PFX##_g4, DT, DMAX, 4)        \
    ATTN_INST(PFX##_g8, DT, DMAX, 8)

ATTN_ALL(ATTN_INST_G, attn)
