// elementwise.cu — the small ops: elementwise arithmetic and activations,
// cast, the four normalisations, RoPE, softmax, argmax, top-k, KV-cache append
// and im2col. Float tensors are f32/f16/bf16 selected by a run-time dtype code
// (these kernels are memory-bound; the uniform branch costs nothing measurable);
// arithmetic is f32, reductions that feed a normalisation are f64.
#include "common.cu"

#define EW_ADD 0
#define EW_MUL 1
#define EW_SCALE 2
#define EW_SILU 3
#define EW_GELU 4
#define EW_SILU_MUL 5
#define EW_GELU_MUL 6
#define EW_SOFTCAP 7

__device__ __forceinline__ float silu_f(float x) { return x / (1.0f + expf(-x)); }
__device__ __forceinline__ float gelu_f(float x, int kind) {
    if (kind == 0) return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f));
    const float c = 0.7978845608028654f; // sqrt(2/pi)
    return 0.5f * x * (1.0f + tanhf(c * (x + 0.044715f * x * x * x)));
}

// y[i] = f(a[i], b[i % bn]) for i < n; all three of dtype dt.
extern "C" __global__ void ew_kernel(int op, int dt, const void *a, const void *b, void *y, i64 n, i64 bn, float f0,
                                     int i0) {
    PDL_ENTER();
    for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (i64)gridDim.x * blockDim.x) {
        float x = ldf(a, dt, i), r;
        switch (op) {
        case EW_ADD: r = x + ldf(b, dt, bn == n ? i : i % bn); break;
        case EW_MUL: r = x * ldf(b, dt, bn == n ? i : i % bn); break;
        case EW_SCALE: r = f0 * x; break;
        case EW_SILU: r = silu_f(x); break;
        case EW_GELU: r = gelu_f(x, i0); break;
        case EW_SILU_MUL: r = silu_f(x) * ldf(b, dt, i); break;
        case EW_GELU_MUL: r = gelu_f(x, i0) * ldf(b, dt, i); break;
        default: r = f0 * tanhf(x / f0); break; // EW_SOFTCAP
        }
        stf(y, dt, i, r);
    }
}

// dst = src, n bytes (16-byte words when both are aligned so)
extern "C" __global__ void copy_kernel(const unsigned char *src, unsigned char *dst, i64 n) {
    PDL_ENTER();
    const i64 t = (i64)blockIdx.x * blockDim.x + threadIdx.x, step = (i64)gridDim.x * blockDim.x;
    if ((((unsigned long long)src | (unsigned long long)dst | (unsigned long long)n) & 15) == 0) {
        for (i64 i = t; i < n / 16; i += step) ((uint4 *)dst)[i] = ((const uint4 *)src)[i];
    } else {
        for (i64 i = t; i < n; i += step) dst[i] = src[i];
    }
}

extern "C" __global__ void cast_kernel(int sdt, int ddt, const void *x, void *y, i64 n) {
    PDL_ENTER();
    for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (i64)gridDim.x * blockDim.x)
        stf(y, ddt, i, ldf(x, sdt, i));
}

// ---------------------------------------------------------------- normalisation
// One block per row. kind: 0 rms, 1 rms + residual (writes sum), 2 layer, 3 l2.
// x, res, sum, y: [rows, D] of dtype dt; w, bias: [D] of dtype wdt (may be NULL).
extern "C" __global__ void norm_kernel(int kind, int dt, int wdt, const void *x, const void *res, const void *w,
                                       const void *bias, void *sum, void *y, int D, float eps) {
    PDL_ENTER();
    __shared__ double shd[32];
    i64 row = blockIdx.x;
    i64 base = row * (i64)D;
    double s1 = 0.0, s2 = 0.0;
    for (int j = threadIdx.x; j < D; j += blockDim.x) {
        float v = ldf(x, dt, base + j);
        if (kind == 1) {
            v += ldf(res, dt, base + j);
        }
        s1 += v;
        s2 += (double)v * v;
    }
    double mean = 0.0;
    if (kind == 2) {
        mean = block_sum_d(s1, shd) / D;
        // second pass for the variance about the mean (exact in f64)
        s2 = 0.0;
        for (int j = threadIdx.x; j < D; j += blockDim.x) {
            double v = (double)ldf(x, dt, base + j) - mean;
            s2 += v * v;
        }
    }
    double tot = block_sum_d(s2, shd);
    float inv;
    if (kind == 3) inv = (float)(1.0 / fmax(sqrt(tot), (double)eps));
    else inv = (float)(1.0 / sqrt(tot / D + (double)eps));
    for (int j = threadIdx.x; j < D; j += blockDim.x) {
        float v = ldf(x, dt, base + j);
        if (kind == 1) {
            v += ldf(res, dt, base + j);
            stf(sum, dt, base + j, v);
            v = round_dt(dt, v); // normalise the stored (rounded) sum, as the reference does
        }
        float o;
        if (kind == 2) o = (float)((v - mean) * inv);
        else o = v * inv;
        if (w) o *= ldf(w, wdt, j);
        if (kind == 2 && bias) o += ldf(bias, wdt, j);
        stf(y, dt, base + j, o);
    }
}

// RMS norm (kind 0) and RMS norm with residual (kind 1) for f32 rows with
// D % 4 == 0 and 16-byte aligned rows, in one pass: each thread keeps its
// (up to NORM_V) float4s in registers between the reduction and the output,
// so a decode row (one block) costs one load latency instead of two; the
// weights are loaded before waiting for the previous kernel (PDL). Same
// arithmetic as norm_kernel (f64 block sum; (v * inv) * w).
#define NORM_V 4
extern "C" __global__ void norm_f32v_kernel(int kind, int wdt, const float4 *x, const float4 *res, const void *w,
                                            float4 *sum, float4 *y, int D, float eps) {
    PDL_LAUNCH(); // PDL_WAIT after the weight loads (no kernel writes w)
    __shared__ double shd[32];
    const int D4 = D >> 2;
    const i64 base = (i64)blockIdx.x * D4;
    float4 v[NORM_V], wv[NORM_V];
    double s2 = 0.0;
#pragma unroll
    for (int i = 0; i < NORM_V; i++) { // the weights load with x (they do not depend on the sum)
        const int j = threadIdx.x + i * blockDim.x;
        if (j < D4 && w)
            wv[i] = make_float4(ldf(w, wdt, 4 * j), ldf(w, wdt, 4 * j + 1), ldf(w, wdt, 4 * j + 2), ldf(w, wdt, 4 * j + 3));
    }
    PDL_WAIT();
#pragma unroll
    for (int i = 0; i < NORM_V; i++) {
        const int j = threadIdx.x + i * blockDim.x;
        if (j < D4) {
            float4 a = x[base + j];
            if (kind == 1) {
                const float4 r = res[base + j];
                a.x += r.x; a.y += r.y; a.z += r.z; a.w += r.w;
                sum[base + j] = a;
            }
            v[i] = a;
            s2 += (double)a.x * a.x + (double)a.y * a.y + (double)a.z * a.z + (double)a.w * a.w;
        }
    }
    const double tot = block_sum_d(s2, shd);
    const float inv = (float)(1.0 / sqrt(tot / D + (double)eps));
#pragma unroll
    for (int i = 0; i < NORM_V; i++) {
        const int j = threadIdx.x + i * blockDim.x;
        if (j < D4) {
            float4 o = make_float4(v[i].x * inv, v[i].y * inv, v[i].z * inv, v[i].w * inv);
            if (w) {
                o.x *= wv[i].x; o.y *= wv[i].y; o.z *= wv[i].z; o.w *= wv[i].w;
            }
            y[base + j] = o;
        }
    }
}

// ---------------------------------------------------------------- rope
// x, y: [T, H, D]; pos: i32 [T]. One thread per (t, rotated pair k, group of
// ROPE_HG heads): the frequency and the f64 sin/cos of the angle are
// computed once and applied to every head of the group; threads past the
// pairs copy the pass-through dims when y != x.
#define ROPE_HG 8
extern "C" __global__ void rope_kernel(int dt, const void *x, const int *pos, void *y, int T, int H, int D, int rot,
                                       int mode, double theta, int scaling, double factor, double lff, double hff,
                                       double omp) {
    PDL_ENTER();
    int half = rot / 2;
    int extra = D - rot;
    i64 per_t = half + (x != y ? extra : 0); // work items per (t, head group)
    int hgroups = (H + ROPE_HG - 1) / ROPE_HG;
    i64 total = (i64)T * hgroups * per_t;
    for (i64 g = (i64)blockIdx.x * blockDim.x + threadIdx.x; g < total; g += (i64)gridDim.x * blockDim.x) {
        int k = (int)(g % per_t);
        i64 tg = g / per_t;
        int hg = (int)(tg % hgroups), t = (int)(tg / hgroups);
        int h0 = hg * ROPE_HG, h1 = min(H, h0 + ROPE_HG);
        if (k >= half) { // pass-through
            int d = rot + (k - half);
            for (int h = h0; h < h1; h++) {
                i64 base = ((i64)t * H + h) * D;
                stf(y, dt, base + d, ldf(x, dt, base + d));
            }
            continue;
        }
        double inv = pow(theta, -2.0 * k / (double)rot);
        if (scaling == 1) {
            inv /= factor;
        } else if (scaling == 2) {
            const double PI = 3.14159265358979323846;
            double wavelen = 2.0 * PI / inv;
            double low_wl = omp / lff, high_wl = omp / hff;
            if (wavelen < high_wl) {
            } else if (wavelen > low_wl) {
                inv = inv / factor;
            } else {
                double smooth = (omp / wavelen - lff) / (hff - lff);
                inv = (1.0 - smooth) * inv / factor + smooth * inv;
            }
        }
        double ang = (double)pos[t] * inv;
        double sn, cs;
        sincos(ang, &sn, &cs);
        int d0, d1;
        if (mode == 0) {
            d0 = 2 * k;
            d1 = 2 * k + 1;
        } else {
            d0 = k;
            d1 = k + half;
        }
#pragma unroll 8
        for (int h = h0; h < h1; h++) {
            i64 base = ((i64)t * H + h) * D;
            double x0 = ldf(x, dt, base + d0), x1 = ldf(x, dt, base + d1);
            stf(y, dt, base + d0, (float)(x0 * cs - x1 * sn));
            stf(y, dt, base + d1, (float)(x0 * sn + x1 * cs));
        }
    }
}

// ---------------------------------------------------------------- softmax
// x, y: [M, N] f32; mask: NULL, [M, N] (mask_rows = M) or [N] (mask_rows = 1).
extern "C" __global__ void softmax_kernel(const float *x, const float *mask, int mask_rows, float *y, int N,
                                          float scale) {
    PDL_ENTER();
    __shared__ float sh[32];
    i64 row = blockIdx.x;
    const float *xr = x + row * N;
    const float *mr = mask ? mask + (mask_rows == 1 ? 0 : row * N) : 0;
    float *yr = y + row * N;
    const float NEG_INF = -__int_as_float(0x7f800000);
    float m = NEG_INF;
    for (int j = threadIdx.x; j < N; j += blockDim.x) {
        float v = scale * xr[j] + (mr ? mr[j] : 0.0f);
        m = fmaxf(m, v);
    }
    m = block_max(m, sh);
    if (m == NEG_INF) { // fully masked row
        for (int j = threadIdx.x; j < N; j += blockDim.x) yr[j] = 0.0f;
        return;
    }
    float s = 0.0f;
    for (int j = threadIdx.x; j < N; j += blockDim.x) {
        float v = scale * xr[j] + (mr ? mr[j] : 0.0f);
        s += expf(v - m);
    }
    s = block_sum(s, sh);
    float inv = 1.0f / s;
    for (int j = threadIdx.x; j < N; j += blockDim.x) {
        float v = scale * xr[j] + (mr ? mr[j] : 0.0f);
        yr[j] = expf(v - m) * inv;
    }
}

// ---------------------------------------------------------------- argmax / top-k
// Order: larger value first, then lower index; NaN after every number.
__device__ __forceinline__ bool better(float va, int ia, float vb, int ib) {
    bool na = va != va, nb = vb != vb;
    if (na != nb) return nb;
    if (!na && va != vb) return va > vb;
    return ia < ib;
}

__device__ void block_best(float &v, int &i, float *shv, int *shi) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        float v2 = __shfl_xor_sync(0xffffffffu, v, o);
        int i2 = __shfl_xor_sync(0xffffffffu, i, o);
        if (better(v2, i2, v, i)) { v = v2; i = i2; }
    }
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
    __syncthreads();
    if (lane == 0) { shv[w] = v; shi[w] = i; }
    __syncthreads();
    const float NAN_ = __int_as_float(0x7fffffff);
    v = lane < nw ? shv[lane] : NAN_;
    i = lane < nw ? shi[lane] : 0x7fffffff;
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        float v2 = __shfl_xor_sync(0xffffffffu, v, o);
        int i2 = __shfl_xor_sync(0xffffffffu, i, o);
        if (better(v2, i2, v, i)) { v = v2; i = i2; }
    }
}

// x: [M, N] f32 -> idx: i32 [M]. NaN is ignored (an all-NaN row gives index 0).
extern "C" __global__ void argmax_kernel(const float *x, int *idx, int N) {
    PDL_ENTER();
    __shared__ float shv[32];
    __shared__ int shi[32];
    const float *xr = x + (i64)blockIdx.x * N;
    float bv = __int_as_float(0x7fffffff);
    int bi = 0x7fffffff;
    int j0 = 0; // first element left to the scalar loop
    if (((unsigned long long)xr & 15) == 0) {
        // 16-byte loads, 8 per thread in flight (a 49,152-entry vocabulary
        // is 12 per thread of 1,024: two dependent L2 round trips, not 48)
        const float4 *x4 = (const float4 *)xr;
        const int n4 = N / 4;
        for (int b = threadIdx.x; b < n4; b += 8 * blockDim.x) {
            float4 v[8];
#pragma unroll
            for (int u = 0; u < 8; u++) {
                const int k = b + u * blockDim.x;
                v[u] = k < n4 ? x4[k] : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
            }
#pragma unroll
            for (int u = 0; u < 8; u++) {
                const int k = b + u * blockDim.x;
                if (k >= n4) break;
                if (better(v[u].x, 4 * k, bv, bi)) { bv = v[u].x; bi = 4 * k; }
                if (better(v[u].y, 4 * k + 1, bv, bi)) { bv = v[u].y; bi = 4 * k + 1; }
                if (better(v[u].z, 4 * k + 2, bv, bi)) { bv = v[u].z; bi = 4 * k + 2; }
                if (better(v[u].w, 4 * k + 3, bv, bi)) { bv = v[u].w; bi = 4 * k + 3; }
            }
        }
        j0 = 4 * n4;
    }
    for (int j = j0 + threadIdx.x; j < N; j += blockDim.x) {
        float v = xr[j];
        if (better(v, j, bv, bi)) { bv = v; bi = j; }
    }
    block_best(bv, bi, shv, shi);
    if (threadIdx.x == 0) idx[blockIdx.x] = (bv != bv) ? 0 : bi;
}

// x: [M, N] -> values [M, k] (may be NULL), idx [M, k]: k rounds, each picks the
// best element ordered strictly after the previous pick (no scratch needed).
extern "C" __global__ void topk_kernel(const float *x, float *values, int *idx, int N, int k) {
    PDL_ENTER();
    __shared__ float shv[32];
    __shared__ int shi[32];
    const float *xr = x + (i64)blockIdx.x * N;
    float pv = 0.0f;
    int pi = -1;
    for (int r = 0; r < k; r++) {
        float bv = __int_as_float(0x7fffffff);
        int bi = 0x7fffffff;
        for (int j = threadIdx.x; j < N; j += blockDim.x) {
            float v = xr[j];
            if ((pi < 0 || better(pv, pi, v, j)) && better(v, j, bv, bi)) { bv = v; bi = j; }
        }
        block_best(bv, bi, shv, shi);
        if (threadIdx.x == 0) {
            if (values) values[(i64)blockIdx.x * k + r] = bv;
            idx[(i64)blockIdx.x * k + r] = bi;
        }
        pv = bv;
        pi = bi;
    }
}

// ---------------------------------------------------------------- kv append
// src [T, Hkv, D] (sdt) -> cache [Hkv, C, D] (cdt) at slot pos[t] (ring: pos % C).
// One block per row t (grid-stride over rows): the block first decides, once
// for the row, whether a later row writes the same slot (rows are written in
// order, so the later one wins), then copies the row's Hkv*D values.
extern "C" __global__ void kv_append_kernel(int sdt, int cdt, const void *src, const int *pos, void *cache, int T,
                                            int Hkv, int D, i64 C, int ring, unsigned *err) {
    PDL_ENTER();
    const i64 row_n = (i64)Hkv * D;
    for (int t = blockIdx.x; t < T; t += gridDim.x) {
        const i64 p = pos[t];
        if (p < 0 || (!ring && p >= C)) {
            if (threadIdx.x == 0) atomicOr(err, 2u);
            continue; // uniform per block
        }
        const i64 slot = ring ? p % C : p;
        int later = 0;
        for (int t2 = t + 1 + threadIdx.x; t2 < T && !later; t2 += blockDim.x) {
            const i64 p2 = pos[t2];
            if (p2 >= 0 && (ring || p2 < C)) later = (ring ? p2 % C : p2) == slot;
        }
        if (__syncthreads_or(later)) continue;
        for (i64 e = threadIdx.x; e < row_n; e += blockDim.x) {
            const int h = (int)(e / D), d = (int)(e % D);
            stf(cache, cdt, ((i64)h * C + slot) * D + d, ldf(src, sdt, (i64)t * row_n + e));
        }
    }
}

// ---------------------------------------------------------------- rope + kv_append
// One step's attention prologue (MLXN_OP_ROPE_KV_APPEND) in one launch:
// q [T, Hq, D] and k [T, Hkv, D] (dtype dt) rotated in place, then k and
// v [T, Hkv, D] (vdt) written to the caches [Hkv, C, D] (kcdt, vcdt) at slot
// pos[t] (ring: pos[t] % C). The inverse frequency of each rotated pair comes
// from the host in f64 (RopeFreqs, rot / 2 <= 128); the angle is reduced
// modulo 2 pi in f64 and its sine and cosine taken in f32 (absolute error
// ~1e-7, against f64 in rope_kernel). blockIdx.y = t; threads over q pairs,
// k pairs (also writing the cache), k pass-through dims, v elements. Like
// kv_append: a row whose slot a later row also writes is skipped, and a
// position outside a linear cache sets bit 2 of *err.
struct RopeFreqs {
    double inv[128];
};

extern "C" __global__ void rope_kv_kernel(RopeFreqs f, int dt, void *q, void *k, int vdt, const void *v,
                                          const int *pos, int kcdt, void *kc, int vcdt, void *vc, int T, int Hq,
                                          int Hkv, int D, int rot, int mode, i64 C, int ring, unsigned *err) {
    PDL_ENTER();
    const int t = blockIdx.y, half = rot / 2, pass = D - rot;
    const i64 p = pos[t];
    bool ok = p >= 0 && (ring || p < C);
    const i64 slot = ok ? (ring ? p % C : p) : 0;
    for (int t2 = t + 1; t2 < T && ok; t2++) { // a later row wins the slot
        const i64 p2 = pos[t2];
        if (p2 >= 0 && (ring || p2 < C) && (ring ? p2 % C : p2) == slot) ok = false;
    }
    if (!(p >= 0 && (ring || p < C)) && blockIdx.x == 0 && threadIdx.x == 0) atomicOr(err, 2u);
    const int nq = Hq * half, nk = Hkv * half, npk = Hkv * pass, nv = Hkv * D;
    const int total = nq + nk + npk + nv;
    for (int e = blockIdx.x * blockDim.x + threadIdx.x; e < total; e += gridDim.x * blockDim.x) {
        if (e < nq + nk) {
            const int h = e / half, kk = e % half;
            const bool isk = h >= Hq;
            const i64 base = isk ? ((i64)t * Hkv + (h - Hq)) * D : ((i64)t * Hq + h) * D;
            void *x = isk ? k : q;
            const int d0 = mode == 0 ? 2 * kk : kk, d1 = mode == 0 ? 2 * kk + 1 : kk + half;
            const double TWO_PI = 6.283185307179586476925286766559;
            const double ang = (double)p * f.inv[kk];
            const double r = ang - rint(ang * (1.0 / TWO_PI)) * TWO_PI;
            float sn, cs;
            sincosf((float)r, &sn, &cs);
            const float x0 = ldf(x, dt, base + d0), x1 = ldf(x, dt, base + d1);
            const float y0 = fmaf(x0, cs, -x1 * sn), y1 = fmaf(x0, sn, x1 * cs);
            stf(x, dt, base + d0, y0);
            stf(x, dt, base + d1, y1);
            if (isk && ok) {
                const i64 cb = ((i64)(h - Hq) * C + slot) * D;
                stf(kc, kcdt, cb + d0, round_dt(dt, y0));
                stf(kc, kcdt, cb + d1, round_dt(dt, y1));
            }
        } else if (e < nq + nk + npk) {
            if (!ok) continue;
            const int i = e - nq - nk, hk = i / pass, d = rot + i % pass;
            stf(kc, kcdt, ((i64)hk * C + slot) * D + d, ldf(k, dt, ((i64)t * Hkv + hk) * D + d));
        } else {
            if (!ok) continue;
            const int i = e - nq - nk - npk, hk = i / D, d = i % D;
            stf(vc, vcdt, ((i64)hk * C + slot) * D + d, ldf(v, vdt, ((i64)t * Hkv + hk) * D + d));
        }
    }
}

// ---------------------------------------------------------------- im2col
// image f32 [3, H, W] -> out f32 [(H/p)*(W/p), 3*p*p] (channel, dy, dx order).
extern "C" __global__ void im2col_kernel(const float *img, float *out, int H, int W, int p) {
    PDL_ENTER();
    int pw = W / p;
    int cols = 3 * p * p;
    i64 total = (i64)(H / p) * pw * cols;
    for (i64 g = (i64)blockIdx.x * blockDim.x + threadIdx.x; g < total; g += (i64)gridDim.x * blockDim.x) {
        i64 r = g / cols;
        int c = (int)(g % cols);
        int ch = c / (p * p), dy = (c / p) % p, dx = c % p;
        int py = (int)(r / pw), px = (int)(r % pw);
        out[g] = img[((i64)ch * H + py * p + dy) * W + px * p + dx];
    }
}
