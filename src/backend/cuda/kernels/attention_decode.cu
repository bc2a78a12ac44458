// attention_decode.cu — decode attention over a KV cache (T <= 4 query
// rows), split-K ("flash decoding"); the general and prefill paths are
// attention.cu and attention_prefill.cu, with the same semantics (causal,
// window, ring buffer, softcap, positions read from device memory so a
// captured graph replays with new positions, grid sizes that depend on the
// cache capacity C only). Each block of 4 warps takes one query row t, one
// KV head and G query heads sharing it (K/V read once per group) and one
// chunk of keys. Within a warp, LPK lanes own one key (16-byte loads: EPL
// elements per lane), so a warp step covers KPS = 32/LPK keys and U steps are
// loaded at once (K and V, many loads in flight). Every lane group keeps its
// own online softmax (max, sum, V accumulator in registers; scores are
// log2e-prescaled and exponentiated with exp2f), so the key loop has no
// block barrier. The groups then merge in shared memory into one partial
// (max, sum, acc[G][D]) per block; the last block of a (t, KV head group) to
// finish (a counter in device memory, reset by that block) combines the
// partials into out. Each block computes the newest position itself from
// pos[] (no attn_prep launch) and block (0,0,0) reports bad positions in the
// error word.
// attn_decr_* (MLXN_OP_ROPE_KV_ATTENTION, T = 1) fold the step's prologue
// in: the new token's q and k arrive unrotated, every block rotates its q
// heads as it stages them, and the block whose chunk holds the newest
// position rotates the new key itself, appends key and value to the caches
// (the first head group's block writes them) and starts its first lane
// group's softmax with that key from shared memory (its key loop stops one
// short), so no block reads a slot written in this launch.
// Instances per cache dtype, head-dim bound DMAX (64/128/256) and G (1/2/4/8
// query heads per block); every kernel begins with PDL_ENTER(), so this file
// may be listed in cuda_device.c's pdl_source().
#include "common.cu"

#define DEC_NW 4          // warps per decode block
#define DEC_MAXSPLIT 256  // most splits the combine step handles
#define DEC_LOG2E 1.4426950408889634f

struct DecArgs {
    const float *q;      // [T, Hq, D]
    const void *k;       // [Hkv, C, D]
    const void *v;
    const int *pos;      // [T] or NULL
    float *out;          // [T, Hq, D]
    float *part;         // [T, Hq, nsplit, D] partial accumulators
    float *part_ml;      // [T, Hq, nsplit, 2] partial max (log2 domain), sum
    unsigned *counters;  // [T * Hkv * hgroups]
    unsigned *err;       // session error word (bit 4: bad position)
    i64 C;
    i64 kv_len;
    int T, Hq, Hkv, D, G_total, nsplit, chunk, causal, window, ring, full;
    int pipe;            // 1: the key loop loads its next batch while it scores the current one (PIPE kernels)
    float scale, softcap;
};

// NWD raw 32-bit words (EPL = NWD*4/ESZ elements from element offset off) of
// one key/value row; vec: whole aligned vectors (act: this lane's dims exist);
// else element by element with zeros past D
template <int DT, int NWD>
__device__ __forceinline__ void ld_raw(const void *base, i64 off, bool vec, bool act, int d0, int D, u32 (&w)[NWD]) {
    constexpr int ESZ = DT == DT_F32 ? 4 : 2;
    constexpr int EPL = NWD * 4 / ESZ;
    if (vec) {
        if (!act) {
#pragma unroll
            for (int i = 0; i < NWD; i++) w[i] = 0u;
            return;
        }
        const char *p = (const char *)base + off * ESZ;
        if (NWD % 4 == 0) {
#pragma unroll
            for (int i = 0; i < NWD / 4; i++) {
                uint4 t = ldg_stream(p + 16 * i);
                w[4 * i] = t.x; w[4 * i + 1] = t.y; w[4 * i + 2] = t.z; w[4 * i + 3] = t.w;
            }
        } else if (NWD == 2) {
            uint2 t = ldg_stream8(p);
            w[0] = t.x; w[1] = t.y;
        } else {
            w[0] = __ldg((const u32 *)p);
        }
    } else {
#pragma unroll
        for (int i = 0; i < NWD; i++) w[i] = 0u;
#pragma unroll
        for (int e = 0; e < EPL; e++) {
            if (d0 + e < D) {
                if (ESZ == 4) w[e] = ((const u32 *)base)[off + e];
                else w[e >> 1] |= (u32)((const u16 *)base)[off + e] << ((e & 1) * 16);
            }
        }
    }
}

template <int DT>
__device__ __forceinline__ float raw_f(const u32 *w, int e) {
    if (DT == DT_F32) return __uint_as_float(w[e]);
    const u16 h = (u16)(w[e >> 1] >> ((e & 1) * 16));
    return DT == DT_F16 ? h2f(h) : bf2f(h);
}

// The step's prologue for attn_decr_* (T = 1): the new token's key and value
// rows, unrotated, and the rotation (as rope_kv_kernel in elementwise.cu).
struct DecRope {
    const float *k;  // [1, Hkv, D] f32, unrotated
    const float *v;  // [1, Hkv, D] f32
    int rot, mode;   // rotated leading dims (even); 0 adjacent pairs, 1 halves
    double inv[128]; // inverse frequency of each rotated pair (host, f64)
};

// Rotation partner of dim d < r.rot (the other element of its pair).
__device__ __forceinline__ int rope_partner(int d, const DecRope &r) {
    const int half = r.rot / 2;
    return r.mode == 0 ? d ^ 1 : (d < half ? d + half : d - half);
}
// Element d of a row rotated to position p, given xd = x[d] and xo = x[its
// partner]: the same arithmetic as rope_kv_kernel (angle reduced modulo
// 2 pi in f64, sine and cosine in f32), so the fused step stores and uses the
// bits the separate ops would.
__device__ __forceinline__ float rope_apply(float xd, float xo, int d, i64 p, const DecRope &r) {
    if (d >= r.rot) return xd;
    const int half = r.rot / 2;
    const int kk = r.mode == 0 ? d >> 1 : (d < half ? d : d - half);
    const bool first = r.mode == 0 ? (d & 1) == 0 : d < half;
    const double TWO_PI = 6.283185307179586476925286766559;
    const double ang = (double)p * r.inv[kk];
    const double rr = ang - rint(ang * (1.0 / TWO_PI)) * TWO_PI;
    float sn, cs;
    sincosf((float)rr, &sn, &cs);
    return first ? fmaf(xd, cs, -xo * sn) : fmaf(xo, sn, xd * cs);
}

// RP = 1: the fused step (attn_decr_*, T = 1) with r its prologue.
template <int DT, int DMAX, int G, int RP>
__device__ __forceinline__ void dec_body(const DecArgs &a, const DecRope &r) {
    constexpr int ESZ = DT == DT_F32 ? 4 : 2;
    constexpr int VEC = 16 / ESZ;                            // elements per 16-byte load
    constexpr int EV = G >= 8 ? VEC / 2 : VEC;               // G = 8: 8-byte loads (registers)
    constexpr int EPL = DMAX / 32 > EV ? DMAX / 32 : EV;     // elements per lane
    constexpr int LPK = DMAX / EPL;                          // lanes per key
    constexpr int KPS = 32 / LPK;                            // keys per warp step
    constexpr int NWD = EPL * ESZ / 4;                       // raw words per lane and row
    constexpr int U0 = 16 / NWD > 0 ? 16 / NWD : 1;
    constexpr int U = G >= 8 ? (U0 >= 4 ? U0 / 4 : 1) : U0; // warp steps loaded at once
    constexpr int KPW = KPS * U;                             // keys per warp and batch
    constexpr int KPB = KPW * DEC_NW;                        // keys per block and batch
    constexpr int NGRP = DEC_NW * KPS;                       // lane groups per block
    __shared__ __align__(16) float s_q[G][DMAX];   // q * scale (* log2e)
    __shared__ __align__(16) float s_acc[G][DMAX]; // block partial accumulator
    __shared__ float s_m[NGRP][G], s_l[NGRP][G];
    __shared__ float s_M[G], s_L[G];
    __shared__ float s_w[G][DEC_MAXSPLIT];
    __shared__ int s_last;
    __shared__ __align__(16) float s_kn[RP ? DMAX : 1], s_vn[RP ? DMAX : 1]; // RP: the new key and value
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int split = blockIdx.x;
    const int hgroups = a.G_total / G;
    const int kvh = blockIdx.y / hgroups, hg = blockIdx.y % hgroups;
    const int t = blockIdx.z;
    const int h0 = kvh * a.G_total + hg * G; // first query head of this block
    const float NEG_INF = -__int_as_float(0x7f800000);
    const int kk = lane / LPK, d0 = (lane % LPK) * EPL; // this lane's key in a warp step, first dim
    const bool act = d0 < a.D;

    // Loads that do not depend on the positions go out before pos[] is read
    // (each is an L2 round trip on the step's critical path): this thread's
    // q elements (RP: and their rotation partners) and, RP, the new key and
    // value. (Reading the key loop's first batch that early too, where no
    // ring or window makes a chunk's start independent of the positions,
    // measured no faster end to end: 135M 1,572 vs 1,570 tok/s, H100.)
    constexpr int NT = DEC_NW * 32;
    constexpr int QN = (G * DMAX + NT - 1) / NT, KN = (DMAX + NT - 1) / NT;
    float qv[QN], qo[QN], knv[KN], kno[KN], vnv[KN];
#pragma unroll
    for (int j = 0; j < QN; j++) {
        const int i = threadIdx.x + j * NT, g = i / DMAX, dd = i % DMAX;
        const bool ok = i < G * DMAX && dd < a.D;
        const float *qr = a.q + ((i64)t * a.Hq + h0 + g) * a.D;
        qv[j] = ok ? qr[dd] : 0.0f;
        qo[j] = RP && ok && dd < r.rot ? qr[rope_partner(dd, r)] : 0.0f;
    }
#pragma unroll
    for (int j = 0; j < KN; j++) {
        const int dd = threadIdx.x + j * NT;
        const bool ok = RP && dd < a.D;
        const float *kr = r.k + (i64)kvh * a.D;
        knv[j] = ok ? kr[dd] : 0.0f;
        kno[j] = ok && dd < r.rot ? kr[rope_partner(dd, r)] : 0.0f;
        vnv[j] = ok ? r.v[(i64)kvh * a.D + dd] : 0.0f;
    }

    // newest position (T is small: every block reads pos[] itself)
    int mp = -1;
    bool bad = false;
    for (int tt = 0; tt < a.T; tt++) {
        const int p = a.pos ? a.pos[tt] : (int)(a.kv_len - a.T + tt);
        bad |= p < 0;
        mp = max(mp, p);
    }
    // past the capacity, or past the keys the grid covers (the op's kv_bound)
    if (!a.ring && ((i64)mp >= a.C || (i64)mp >= (i64)a.nsplit * a.chunk)) bad = true;
    // bit 2: a bad attention position; RP also appends, so bit 1 as kv_append
    if (bad && blockIdx.x == 0 && blockIdx.y == 0 && blockIdx.z == 0 && threadIdx.x == 0) atomicOr(a.err, RP ? 6u : 4u);
    const i64 maxpos = mp;
    const i64 qpos = a.pos ? (i64)a.pos[t] : a.kv_len - a.T + t;
    i64 hi = maxpos;
    if (!a.ring && hi > a.C - 1) hi = a.C - 1;
    const i64 lo = (a.ring && maxpos - a.C + 1 > 0) ? maxpos - a.C + 1 : 0;
    i64 vlo = lo, vhi = hi;
    if (a.causal && qpos < vhi) vhi = qpos;
    if (a.window > 0 && qpos - a.window + 1 > vlo) vlo = qpos - a.window + 1;
    // this block's chunk, in key positions; position kp (lo <= kp <= hi,
    // hi - lo < C) lives in slot (kp - lo + lo % C) mod C (= kp without ring)
    i64 c0 = lo + (i64)split * a.chunk, c1 = c0 + a.chunk - 1;
    if (c0 < vlo) c0 = vlo;
    if (c1 > vhi) c1 = vhi;
    const i64 r0 = a.ring ? lo % a.C : 0;
    // splits past the newest position hold no keys (grid sizes follow C or
    // the op's kv_bound, not the length): they return at once; the active
    // ones count themselves in and the last of them combines the nact
    // partials (every block computes
    // the same nact). Counting the idle ones in as well cost the 135M's
    // decode at depth 0 1.7% in a 1,153-slot cache, 2% in 4,097 (H100).
    const int nact = hi >= lo ? (int)min((i64)a.nsplit, (hi - lo) / a.chunk + 1) : 1;
    if (split >= nact) return;
    // RP: the last active split holds the newest position (maxpos = qpos);
    // its key loop stops one short and lane group 0 starts with the new key
    const bool newest = RP && split == nact - 1 && hi >= lo && maxpos >= c0 && maxpos <= c1;
    if (newest) c1 = maxpos - 1;
    {

    const bool sc = a.softcap > 0.0f;
    const float qs = sc ? a.scale : a.scale * DEC_LOG2E;
#pragma unroll
    for (int j = 0; j < QN; j++) {
        const int i = threadIdx.x + j * NT, g = i / DMAX, dd = i % DMAX;
        if (i < G * DMAX) {
            s_q[g][dd] = dd < a.D ? (RP ? rope_apply(qv[j], qo[j], dd, qpos, r) : qv[j]) * qs : 0.0f;
            s_acc[g][dd] = 0.0f;
        }
    }
    if (newest) { // the new key (rotated) and value as the cache stores them
        const i64 slot = a.ring ? maxpos % a.C : maxpos;
        const bool put = hg == 0 && !bad;
#pragma unroll
        for (int j = 0; j < KN; j++) {
            const int dd = threadIdx.x + j * NT;
            if (dd >= DMAX) continue;
            const float kv = dd < a.D ? round_dt(DT, rope_apply(knv[j], kno[j], dd, maxpos, r)) : 0.0f;
            const float vv = dd < a.D ? round_dt(DT, vnv[j]) : 0.0f;
            s_kn[dd] = kv;
            s_vn[dd] = vv;
            if (put && dd < a.D) {
                stf((void *)a.k, DT, ((i64)kvh * a.C + slot) * a.D + dd, kv);
                stf((void *)a.v, DT, ((i64)kvh * a.C + slot) * a.D + dd, vv);
            }
        }
    }
    __syncthreads();

    float qf[G][EPL];
#pragma unroll
    for (int g = 0; g < G; g++)
#pragma unroll
        for (int e = 0; e < EPL; e++) qf[g][e] = s_q[g][d0 + e];
    float m[G], l[G], acc[G][EPL];
#pragma unroll
    for (int g = 0; g < G; g++) {
        m[g] = NEG_INF;
        l[g] = 0.0f;
#pragma unroll
        for (int e = 0; e < EPL; e++) acc[g][e] = 0.0f;
    }
    if (newest && warp == 0) { // the new key opens lane group 0's online softmax (its loop skips it)
        float kf[EPL];
#pragma unroll
        for (int e = 0; e < EPL; e++) kf[e] = s_kn[d0 + e];
#pragma unroll
        for (int g = 0; g < G; g++) {
            float dot = 0.0f;
#pragma unroll
            for (int e = 0; e < EPL; e++) dot = fmaf(qf[g][e], kf[e], dot);
#pragma unroll
            for (int o = LPK / 2; o > 0; o >>= 1) dot += __shfl_xor_sync(0xffffffffu, dot, o);
            if (sc) dot = a.softcap * tanhf(dot / a.softcap) * DEC_LOG2E;
            if (kk == 0) {
                m[g] = dot;
                l[g] = 1.0f;
#pragma unroll
                for (int e = 0; e < EPL; e++) acc[g][e] = s_vn[d0 + e];
            }
        }
    }
    const i64 hoff = (i64)kvh * a.C;
    // K/V rows of the U warp steps of the batch at b0 (zeros past c1)
    auto load_batch = [&](i64 b0, u32 (&kr)[U][NWD], u32 (&vr)[U][NWD]) {
#pragma unroll
        for (int u = 0; u < U; u++) {
            const i64 kp = b0 + u * KPS + kk;
            if (kp <= c1) {
                i64 slot = kp - lo + r0;
                if (slot >= a.C) slot -= a.C;
                const i64 off = (hoff + slot) * a.D + d0;
                ld_raw<DT, NWD>(a.k, off, a.full, act, d0, a.D, kr[u]);
                ld_raw<DT, NWD>(a.v, off, a.full, act, d0, a.D, vr[u]);
            } else {
#pragma unroll
                for (int i = 0; i < NWD; i++) kr[u][i] = vr[u][i] = 0u;
            }
        }
    };
    // PIPE (small G·DMAX, where the registers allow): the next batch's
    // loads go out before the current batch is scored, so a chunk of several
    // batches costs about one dependent K/V read
    constexpr bool PIPE = G * DMAX <= 128;
    const bool pipe = PIPE && a.pipe;
    u32 kr[U][NWD], vr[U][NWD];
    if (pipe && c0 + warp * KPW <= c1) load_batch(c0 + warp * KPW, kr, vr);
    for (i64 b0 = c0 + warp * KPW; b0 <= c1; b0 += KPB) {
        u32 kn[PIPE ? U : 1][NWD], vn[PIPE ? U : 1][NWD];
        if (pipe) {
            if (b0 + KPB <= c1) load_batch(b0 + KPB, (u32(&)[U][NWD])kn, (u32(&)[U][NWD])vn);
        } else {
            load_batch(b0, kr, vr);
        }
        // scores (log2 domain), summed over the LPK lanes of each key
        float s[U][G];
#pragma unroll
        for (int u = 0; u < U; u++) {
            float kf[EPL];
#pragma unroll
            for (int e = 0; e < EPL; e++) kf[e] = raw_f<DT>(kr[u], e);
#pragma unroll
            for (int g = 0; g < G; g++) {
                float dot = 0.0f;
#pragma unroll
                for (int e = 0; e < EPL; e++) dot = fmaf(qf[g][e], kf[e], dot);
                s[u][g] = dot;
            }
        }
#pragma unroll
        for (int o = LPK / 2; o > 0; o >>= 1)
#pragma unroll
            for (int u = 0; u < U; u++)
#pragma unroll
                for (int g = 0; g < G; g++) s[u][g] += __shfl_xor_sync(0xffffffffu, s[u][g], o);
#pragma unroll
        for (int u = 0; u < U; u++) {
            const bool ok = b0 + u * KPS + kk <= c1;
#pragma unroll
            for (int g = 0; g < G; g++) {
                float x = s[u][g];
                if (sc) x = a.softcap * tanhf(x / a.softcap) * DEC_LOG2E;
                s[u][g] = ok ? x : NEG_INF;
            }
        }
        // online softmax of this lane group, then V
#pragma unroll
        for (int g = 0; g < G; g++) {
            float bm = s[0][g];
#pragma unroll
            for (int u = 1; u < U; u++) bm = fmaxf(bm, s[u][g]);
            const float mn = fmaxf(m[g], bm);
            const float mr = mn == NEG_INF ? 0.0f : mn;
            const float corr = exp2f(m[g] - mr);
            m[g] = mn;
            float ls = l[g] * corr;
#pragma unroll
            for (int u = 0; u < U; u++) {
                const float p = exp2f(s[u][g] - mr);
                ls += p;
                s[u][g] = p;
            }
            l[g] = ls;
#pragma unroll
            for (int e = 0; e < EPL; e++) acc[g][e] *= corr;
        }
#pragma unroll
        for (int u = 0; u < U; u++) {
#pragma unroll
            for (int e = 0; e < EPL; e++) {
                const float vf = raw_f<DT>(vr[u], e);
#pragma unroll
                for (int g = 0; g < G; g++) acc[g][e] = fmaf(s[u][g], vf, acc[g][e]);
            }
        }
        if (pipe) {
#pragma unroll
            for (int u = 0; u < (PIPE ? U : 0); u++)
#pragma unroll
                for (int i = 0; i < NWD; i++) {
                    kr[u][i] = kn[u][i];
                    vr[u][i] = vn[u][i];
                }
        }
    }

    // merge the NGRP lane groups: block max M, sum L, acc rescaled into s_acc
    const int grp = warp * KPS + kk;
    if (lane % LPK == 0) {
#pragma unroll
        for (int g = 0; g < G; g++) {
            s_m[grp][g] = m[g];
            s_l[grp][g] = l[g];
        }
    }
    __syncthreads();
    if ((int)threadIdx.x < G) {
        const int g = threadIdx.x;
        float M = NEG_INF;
        for (int i = 0; i < NGRP; i++) M = fmaxf(M, s_m[i][g]);
        const float Mr = M == NEG_INF ? 0.0f : M;
        float L = 0.0f;
        for (int i = 0; i < NGRP; i++) L += s_l[i][g] * exp2f(s_m[i][g] - Mr);
        s_M[g] = M;
        s_L[g] = L;
    }
    __syncthreads();
#pragma unroll
    for (int g = 0; g < G; g++) {
        const float M = s_M[g];
        const float f = exp2f(m[g] - (M == NEG_INF ? 0.0f : M));
#pragma unroll
        for (int e = 0; e < EPL; e++) {
            float x = acc[g][e] * f;
#pragma unroll
            for (int o = LPK; o < 32; o <<= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
            if (kk == 0 && d0 + e < DMAX) atomicAdd(&s_acc[g][d0 + e], x);
        }
    }
    __syncthreads();
    if (nact == 1) { // the only split with keys: finish here, no partials
        for (int i = threadIdx.x; i < G * a.D; i += blockDim.x) {
            const int g = i / a.D, d = i % a.D;
            const float den = s_L[g];
            a.out[((i64)t * a.Hq + h0 + g) * a.D + d] = den > 0.0f ? s_acc[g][d] / den : 0.0f;
        }
        return;
    }
    const i64 pbase = ((i64)t * a.Hq + h0) * a.nsplit + split; // + g * nsplit
    for (int i = threadIdx.x; i < G * a.D; i += blockDim.x) {
        const int g = i / a.D, d = i % a.D;
        a.part[(pbase + (i64)g * a.nsplit) * a.D + d] = s_acc[g][d];
    }
    if ((int)threadIdx.x < G) {
        const int g = threadIdx.x;
        a.part_ml[(pbase + (i64)g * a.nsplit) * 2] = s_M[g];
        a.part_ml[(pbase + (i64)g * a.nsplit) * 2 + 1] = s_L[g];
    }
    }
    if (nact == 1) return; // every block computes the same nact: no counting

    // the last block for this (t, kvh, hg) combines the active splits
    __threadfence();
    __syncthreads();
    unsigned *ctr = a.counters + ((i64)t * a.Hkv + kvh) * hgroups + hg;
    if (threadIdx.x == 0) s_last = (atomicAdd(ctr, 1u) == (unsigned)nact - 1);
    __syncthreads();
    if (!s_last) return;
    __threadfence();
    // split weights w_s = exp2(m_s - M) into s_w[g][s], denominators into
    // s_L: a warp per query head (the heads' load chains overlap)
    for (int g = warp; g < G; g += DEC_NW) {
        const i64 b = ((i64)t * a.Hq + h0 + g) * a.nsplit;
        float ml = NEG_INF;
        for (int sp = lane; sp < nact; sp += 32) ml = fmaxf(ml, __ldcg(&a.part_ml[(b + sp) * 2]));
        const float M = warp_max(ml);
        const float Mr = M == NEG_INF ? 0.0f : M;
        float dl = 0.0f;
        for (int sp = lane; sp < nact; sp += 32) {
            const float w = exp2f(__ldcg(&a.part_ml[(b + sp) * 2]) - Mr);
            s_w[g][sp] = w;
            dl += w * __ldcg(&a.part_ml[(b + sp) * 2 + 1]);
        }
        const float den = warp_sum(dl);
        if (lane == 0) s_L[g] = den;
    }
    __syncthreads();
    if (a.D % 4 == 0) {
        const int D4 = a.D / 4, cols = G * D4;
        for (int c = threadIdx.x; c < cols; c += blockDim.x) {
            const int g = c / D4, d = (c % D4) * 4;
            const i64 b = ((i64)t * a.Hq + h0 + g) * a.nsplit;
            const float4 *pp = (const float4 *)(a.part + b * a.D + d);
            float4 num = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
            int sp = 0;
            for (; sp + 8 <= nact; sp += 8) {
                float4 v[8];
#pragma unroll
                for (int u = 0; u < 8; u++) v[u] = __ldcg(pp + (i64)(sp + u) * D4);
#pragma unroll
                for (int u = 0; u < 8; u++) {
                    const float w = s_w[g][sp + u];
                    num.x += w * v[u].x; num.y += w * v[u].y; num.z += w * v[u].z; num.w += w * v[u].w;
                }
            }
            for (; sp < nact; sp++) {
                const float4 v = __ldcg(pp + (i64)sp * D4);
                const float w = s_w[g][sp];
                num.x += w * v.x; num.y += w * v.y; num.z += w * v.z; num.w += w * v.w;
            }
            const float den = s_L[g];
            const float r = den > 0.0f ? 1.0f / den : 0.0f;
            float *o = a.out + ((i64)t * a.Hq + h0 + g) * a.D + d;
            o[0] = num.x * r; o[1] = num.y * r; o[2] = num.z * r; o[3] = num.w * r;
        }
    } else {
        for (int i = threadIdx.x; i < G * a.D; i += blockDim.x) {
            const int g = i / a.D, d = i % a.D;
            const i64 b = ((i64)t * a.Hq + h0 + g) * a.nsplit;
            float num = 0.0f;
            int sp = 0;
            for (; sp + 8 <= nact; sp += 8) {
                float v[8];
#pragma unroll
                for (int u = 0; u < 8; u++) v[u] = __ldcg(&a.part[(b + sp + u) * a.D + d]);
#pragma unroll
                for (int u = 0; u < 8; u++) num += s_w[g][sp + u] * v[u];
            }
            for (; sp < nact; sp++) num += s_w[g][sp] * __ldcg(&a.part[(b + sp) * a.D + d]);
            const float den = s_L[g];
            a.out[((i64)t * a.Hq + h0 + g) * a.D + d] = den > 0.0f ? num / den : 0.0f;
        }
    }
    if (threadIdx.x == 0) *ctr = 0u; // ready for the next launch / graph replay
}

// 3 blocks (12 warps) per SM: <= 168 registers; G * DMAX = 2048 (q and acc
// alone take 128 registers per lane) gets 2
#define DEC_INST(NAME, DT, DMAX, G)                                                                      \
    extern "C" __global__ void __launch_bounds__(DEC_NW * 32, (G) * (DMAX) >= 2048 ? 2 : 3) NAME(DecArgs a) { \
        PDL_ENTER();                                                                                     \
        dec_body<DT, DMAX, G, 0>(a, DecRope{});                                                          \
    }
#define DECR_INST(NAME, DT, DMAX, G)                                                                     \
    extern "C" __global__ void __launch_bounds__(DEC_NW * 32, (G) * (DMAX) >= 2048 ? 2 : 3) NAME(DecArgs a, \
                                                                                              DecRope r) { \
        PDL_ENTER();                                                                                     \
        dec_body<DT, DMAX, G, 1>(a, r);                                                                  \
    }

#define DEC_INST_G(PFX, DT, DMAX)    \
    DEC_INST(PFX##_g1, DT, DMAX, 1)  \
    DEC_INST(PFX##_g2, DT, DMAX, 2)  \
    DEC_INST(PFX##_g4, DT, DMAX, 4)  \
    DEC_INST(PFX##_g8, DT, DMAX, 8)

#define DECR_INST_G(PFX, DT, DMAX)    \
    DECR_INST(PFX##_g1, DT, DMAX, 1)  \
    DECR_INST(PFX##_g2, DT, DMAX, 2)  \
    DECR_INST(PFX##_g4, DT, DMAX, 4)  \
    DECR_INST(PFX##_g8, DT, DMAX, 8)

ATTN_ALL(DEC_INST_G, attn_dec)
ATTN_ALL(DECR_INST_G, attn_decr)
