/* quant_codecs.c — host-side quantization codecs, scalar and exact: MLX
 * affine quantize/dequantize as mx.quantize/mx.dequantize compute them (f32
 * arithmetic, scales possibly negative, rows packed as LSB-first bit streams
 * for bits 2..8), GGUF dequantization of the ggml block types Q4_0, Q4_1,
 * Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K (following ggml's
 * dequantize_row_* reference code), GGUF quantization of Q4_0 and Q8_0 (as
 * ggml's quantize_row_q4_0_ref / q8_0_ref), plus the internal helpers that
 * give the byte length of one weight row and dequantize rows of any
 * host-visible mlxn_weight to f32. These are the numeric ground truth the
 * reference backend uses; SIMD kernels live in src/backend/cpu/. */
#include "core/internal.h"

#include <math.h>
#include <string.h>

/* ---------------------------------------------------------------- small helpers */

static inline uint16_t rd_u16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return v; }
static inline uint32_t rd_u32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static inline float rd_f16(const uint8_t *p) { return mlxn_half_to_float_inline(rd_u16(p)); }

/* Element i of an f32/f16/bf16 array that may be unaligned (memcpy loads/stores). */
static inline float ld_scale(const void *p, mlxn_dtype t, int64_t i) {
    const uint8_t *b = p;
    if (t == MLXN_F32) { float v; memcpy(&v, b + 4 * i, 4); return v; }
    if (t == MLXN_F16) return rd_f16(b + 2 * i);
    return mlxn_bf16_to_float_inline(rd_u16(b + 2 * i));
}
static inline void st_scale(void *p, mlxn_dtype t, int64_t i, float v) {
    uint8_t *b = p;
    if (t == MLXN_F32) { memcpy(b + 4 * i, &v, 4); return; }
    uint16_t h = t == MLXN_F16 ? mlxn_f32_to_f16(v) : mlxn_f32_to_bf16(v);
    memcpy(b + 2 * i, &h, 2);
}

static int valid_bits(int bits) { return bits == 2 || bits == 3 || bits == 4 || bits == 5 || bits == 6 || bits == 8; }
static int valid_group(int g) { return g == 32 || g == 64 || g == 128; }
static int valid_scale_dtype(mlxn_dtype t) { return t == MLXN_F32 || t == MLXN_F16 || t == MLXN_BF16; }

/* Little-endian load of a B-byte pack (B = 2, 3, 5, 6) into a register (no
 * stack round trip: a variable-size memcpy into a uint64 stalls on store
 * forwarding and made unpacking 6x slower). */
static inline uint64_t ld_pack(const uint8_t *p, int B) {
    uint32_t a32;
    uint16_t a16, b16;
    switch (B) {
    case 2: memcpy(&a16, p, 2); return a16;
    case 3: memcpy(&a16, p, 2); return a16 | ((uint64_t)p[2] << 16);
    case 5: memcpy(&a32, p, 4); return a32 | ((uint64_t)p[4] << 32);
    default: memcpy(&a32, p, 4); memcpy(&b16, p + 4, 2); return a32 | ((uint64_t)b16 << 32);
    }
}

/* GCC's auto-vectorized version of the unpack loops is 2x slower than scalar. */
#if defined(__GNUC__) && !defined(__clang__)
#define NO_VECTORIZE __attribute__((optimize("no-tree-vectorize")))
#else
#define NO_VECTORIZE
#endif

/* Unpack `n` consecutive fields starting at field 0 of p into q (n multiple of 8). */
NO_VECTORIZE void mlxn_unpack_codes(const uint8_t *p, int64_t n, int bits, uint8_t *q) {
    switch (bits) {
    case 8: memcpy(q, p, (size_t)n); return;
    case 4:
        for (int64_t j = 0; j < n / 2; j++) { q[2 * j] = p[j] & 15; q[2 * j + 1] = p[j] >> 4; }
        return;
    case 2:
        for (int64_t j = 0; j < n / 4; j++) {
            uint8_t b = p[j];
            q[4 * j] = b & 3; q[4 * j + 1] = (b >> 2) & 3; q[4 * j + 2] = (b >> 4) & 3; q[4 * j + 3] = b >> 6;
        }
        return;
    default:
        /* 3, 5, 6 bits: packs of 8 elements in `bits` bytes (constant-size
         * copies so the compiler inlines them) */
#define UNPACK_PACKS(B)                                                                          \
    for (int64_t j = 0; j < n / 8; j++) {                                                        \
        const uint64_t v = ld_pack(p + j * (B), (B));                                            \
        const uint64_t m_ = (1u << (B)) - 1u;                                                    \
        uint8_t *o_ = q + 8 * j;                                                                 \
        o_[0] = (uint8_t)(v & m_);                o_[1] = (uint8_t)((v >> (B)) & m_);            \
        o_[2] = (uint8_t)((v >> (2 * (B))) & m_); o_[3] = (uint8_t)((v >> (3 * (B))) & m_);      \
        o_[4] = (uint8_t)((v >> (4 * (B))) & m_); o_[5] = (uint8_t)((v >> (5 * (B))) & m_);      \
        o_[6] = (uint8_t)((v >> (6 * (B))) & m_); o_[7] = (uint8_t)((v >> (7 * (B))) & m_);      \
    }
        if (bits == 3) { UNPACK_PACKS(3) }
        else if (bits == 5) { UNPACK_PACKS(5) }
        else { UNPACK_PACKS(6) }
#undef UNPACK_PACKS
        return;
    }
}

/* ---------------------------------------------------------------- MLX affine */

mlxn_status mlxn_quantize_affine(const float *w, int64_t rows, int64_t cols, int bits, int group_size,
                                 mlxn_dtype scale_dtype, void *packed, void *scales, void *biases) {
    if (!w || !packed || !scales || !biases)
        return mlxn_set_error(MLXN_ERR_INVALID_ARG, "quantize_affine: NULL pointer (w=%p packed=%p scales=%p biases=%p)",
                              (const void *)w, packed, scales, biases);
    if (!valid_bits(bits)) return mlxn_set_error(MLXN_ERR_INVALID_ARG, "quantize_affine: bits %d not in {2,3,4,5,6,8}", bits);
    if (!valid_group(group_size))
        return mlxn_set_error(MLXN_ERR_INVALID_ARG, "quantize_affine: group_size %d not in {32,64,128}", group_size);
    if (!valid_scale_dtype(scale_dtype))
        return mlxn_set_error(MLXN_ERR_DTYPE, "quantize_affine: scale dtype %s is not f32, f16 or bf16",
                              mlxn_dtype_name(scale_dtype));
    if (rows <= 0 || cols <= 0)
        return mlxn_set_error(MLXN_ERR_SHAPE, "quantize_affine: rows (%lld) and cols (%lld) must be positive",
                              (long long)rows, (long long)cols);
    if (cols % group_size)
        return mlxn_set_error(MLXN_ERR_SHAPE, "quantize_affine: cols (%lld) is not a multiple of group_size (%d)",
                              (long long)cols, group_size);
    const float n_bins = (float)((1 << bits) - 1);
    const float eps = 1e-7f;
    const int64_t groups_per_row = cols / group_size;
    const int64_t group_bytes = (int64_t)group_size * bits / 8;
    uint8_t *out = packed;
    for (int64_t r = 0; r < rows; r++) {
        for (int64_t g = 0; g < groups_per_row; g++) {
            const float *x = w + r * cols + g * group_size; // [group_size]
            float lo = INFINITY, hi = -INFINITY;
            for (int j = 0; j < group_size; j++) {
                /* std::max/min semantics: NaN inputs are not propagated specially */
                if (x[j] > hi) hi = x[j];
                if (x[j] < lo) lo = x[j];
            }
            int mask = fabsf(lo) > fabsf(hi);
            float s = (hi - lo) / n_bins;
            if (!(s > eps)) s = eps;
            s = mask ? s : -s;
            float edge = mask ? lo : hi;
            float q0 = rintf(edge / s);
            float bias = 0.0f;
            if (q0 != 0.0f) {
                s = edge / q0;
                bias = edge;
            }
            uint8_t *dst = out + (r * groups_per_row + g) * group_bytes;
            memset(dst, 0, (size_t)group_bytes);
            for (int j = 0; j < group_size; j++) {
                float q = rintf((x[j] - bias) / s);
                if (q < 0.0f) q = 0.0f;
                if (q > n_bins) q = n_bins;
                uint32_t qi = (uint32_t)q;
                int64_t bit = (int64_t)j * bits;
                dst[bit >> 3] |= (uint8_t)(qi << (bit & 7));
                if ((bit & 7) + bits > 8) dst[(bit >> 3) + 1] |= (uint8_t)(qi >> (8 - (bit & 7)));
            }
            int64_t si = r * groups_per_row + g;
            st_scale(scales, scale_dtype, si, s);
            st_scale(biases, scale_dtype, si, bias);
        }
    }
    return MLXN_OK;
}

/* Dequantize one row of `cols` elements (MLX affine). sc/bi point at the
 * row's first scale/bias (index 0 = first group). */
static void dequant_affine_row(const uint8_t *p, const void *sc, const void *bi, mlxn_dtype sdt, int64_t cols,
                               int bits, int group_size, float *out) {
    uint8_t q[128];
    const int64_t ng = cols / group_size;
    const int64_t group_bytes = (int64_t)group_size * bits / 8;
    for (int64_t g = 0; g < ng; g++) {
        float s = ld_scale(sc, sdt, g), b = ld_scale(bi, sdt, g);
        mlxn_unpack_codes(p + g * group_bytes, group_size, bits, q);
        float *o = out + g * group_size;
        for (int j = 0; j < group_size; j++) o[j] = s * (float)q[j] + b;
    }
}

mlxn_status mlxn_dequantize_affine(const void *packed, const void *scales, const void *biases, mlxn_dtype scale_dtype,
                                   int64_t rows, int64_t cols, int bits, int group_size, float *out) {
    if (!packed || !scales || !biases || !out)
        return mlxn_set_error(MLXN_ERR_INVALID_ARG, "dequantize_affine: NULL pointer");
    if (!valid_bits(bits)) return mlxn_set_error(MLXN_ERR_INVALID_ARG, "dequantize_affine: bits %d not in {2,3,4,5,6,8}", bits);
    if (!valid_group(group_size))
        return mlxn_set_error(MLXN_ERR_INVALID_ARG, "dequantize_affine: group_size %d not in {32,64,128}", group_size);
    if (!valid_scale_dtype(scale_dtype))
        return mlxn_set_error(MLXN_ERR_DTYPE, "dequantize_affine: scale dtype %s is not f32, f16 or bf16",
                              mlxn_dtype_name(scale_dtype));
    if (rows <= 0 || cols <= 0 || cols % group_size)
        return mlxn_set_error(MLXN_ERR_SHAPE,
                              "dequantize_affine: rows %lld, cols %lld: need positive sizes and cols a multiple of group_size %d",
                              (long long)rows, (long long)cols, group_size);
    const int64_t row_bytes = cols * bits / 8, ng = cols / group_size;
    const size_t es = mlxn_dtype_size(scale_dtype);
    for (int64_t r = 0; r < rows; r++)
        dequant_affine_row((const uint8_t *)packed + r * row_bytes, (const uint8_t *)scales + (size_t)(r * ng) * es,
                           (const uint8_t *)biases + (size_t)(r * ng) * es, scale_dtype, cols, bits, group_size,
                           out + r * cols);
    return MLXN_OK;
}

/* ---------------------------------------------------------------- GGUF dequantize (per block) */

static void dq_q4_0(const uint8_t *b, float *y) {
    float d = rd_f16(b);
    const uint8_t *qs = b + 2;
    for (int j = 0; j < 16; j++) {
        y[j] = (float)((qs[j] & 15) - 8) * d;
        y[j + 16] = (float)((qs[j] >> 4) - 8) * d;
    }
}
static void dq_q4_1(const uint8_t *b, float *y) {
    float d = rd_f16(b), m = rd_f16(b + 2);
    const uint8_t *qs = b + 4;
    for (int j = 0; j < 16; j++) {
        y[j] = (float)(qs[j] & 15) * d + m;
        y[j + 16] = (float)(qs[j] >> 4) * d + m;
    }
}
static void dq_q5_0(const uint8_t *b, float *y) {
    float d = rd_f16(b);
    uint32_t qh = rd_u32(b + 2);
    const uint8_t *qs = b + 6;
    for (int j = 0; j < 16; j++) {
        uint8_t xh0 = (uint8_t)(((qh >> j) << 4) & 0x10);
        uint8_t xh1 = (uint8_t)((qh >> (j + 12)) & 0x10);
        int x0 = ((qs[j] & 15) | xh0) - 16, x1 = ((qs[j] >> 4) | xh1) - 16;
        y[j] = (float)x0 * d;
        y[j + 16] = (float)x1 * d;
    }
}
static void dq_q5_1(const uint8_t *b, float *y) {
    float d = rd_f16(b), m = rd_f16(b + 2);
    uint32_t qh = rd_u32(b + 4);
    const uint8_t *qs = b + 8;
    for (int j = 0; j < 16; j++) {
        uint8_t xh0 = (uint8_t)(((qh >> j) << 4) & 0x10);
        uint8_t xh1 = (uint8_t)((qh >> (j + 12)) & 0x10);
        int x0 = (qs[j] & 15) | xh0, x1 = (qs[j] >> 4) | xh1;
        y[j] = (float)x0 * d + m;
        y[j + 16] = (float)x1 * d + m;
    }
}
static void dq_q8_0(const uint8_t *b, float *y) {
    float d = rd_f16(b);
    const int8_t *qs = (const int8_t *)(b + 2);
    for (int j = 0; j < 32; j++) y[j] = (float)qs[j] * d;
}
static void dq_q2_k(const uint8_t *b, float *y) {
    const uint8_t *scales = b, *q = b + 16;
    float d = rd_f16(b + 80), dmin = rd_f16(b + 82);
    int is = 0;
    for (int n = 0; n < 256; n += 128) {
        int shift = 0;
        for (int j = 0; j < 4; j++) {
            uint8_t sc = scales[is++];
            float dl = d * (float)(sc & 15), ml = dmin * (float)(sc >> 4);
            for (int l = 0; l < 16; l++) *y++ = dl * (float)((q[l] >> shift) & 3) - ml;
            sc = scales[is++];
            dl = d * (float)(sc & 15); ml = dmin * (float)(sc >> 4);
            for (int l = 0; l < 16; l++) *y++ = dl * (float)((q[l + 16] >> shift) & 3) - ml;
            shift += 2;
        }
        q += 32;
    }
}
static void dq_q3_k(const uint8_t *b, float *y) {
    const uint8_t *hm = b, *q = b + 32;
    float d_all = rd_f16(b + 108);
    uint32_t aux[4];
    memcpy(aux, b + 96, 12);
    const uint32_t kmask1 = 0x03030303u, kmask2 = 0x0f0f0f0fu;
    uint32_t tmp = aux[2];
    aux[2] = ((aux[0] >> 4) & kmask2) | (((tmp >> 4) & kmask1) << 4);
    aux[3] = ((aux[1] >> 4) & kmask2) | (((tmp >> 6) & kmask1) << 4);
    aux[0] = (aux[0] & kmask2) | (((tmp >> 0) & kmask1) << 4);
    aux[1] = (aux[1] & kmask2) | (((tmp >> 2) & kmask1) << 4);
    int8_t scales[16];
    memcpy(scales, aux, 16);
    int is = 0;
    uint8_t m = 1;
    for (int n = 0; n < 256; n += 128) {
        int shift = 0;
        for (int j = 0; j < 4; j++) {
            float dl = d_all * (float)(scales[is++] - 32);
            for (int l = 0; l < 16; l++) *y++ = dl * (float)(((q[l] >> shift) & 3) - ((hm[l] & m) ? 0 : 4));
            dl = d_all * (float)(scales[is++] - 32);
            for (int l = 0; l < 16; l++) *y++ = dl * (float)(((q[l + 16] >> shift) & 3) - ((hm[l + 16] & m) ? 0 : 4));
            shift += 2;
            m = (uint8_t)(m << 1);
        }
        q += 32;
    }
}
static inline void scale_min_k4(int j, const uint8_t *q, uint8_t *d, uint8_t *m) {
    if (j < 4) {
        *d = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *d = (uint8_t)((q[j + 4] & 15) | ((q[j - 4] >> 6) << 4));
        *m = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}
static void dq_q4_k(const uint8_t *b, float *y) {
    float d = rd_f16(b), dmin = rd_f16(b + 2);
    const uint8_t *scales = b + 4, *q = b + 16;
    int is = 0;
    for (int j = 0; j < 256; j += 64) {
        uint8_t sc, m;
        scale_min_k4(is, scales, &sc, &m);
        float d1 = d * (float)sc, m1 = dmin * (float)m;
        scale_min_k4(is + 1, scales, &sc, &m);
        float d2 = d * (float)sc, m2 = dmin * (float)m;
        for (int l = 0; l < 32; l++) *y++ = d1 * (float)(q[l] & 15) - m1;
        for (int l = 0; l < 32; l++) *y++ = d2 * (float)(q[l] >> 4) - m2;
        q += 32;
        is += 2;
    }
}
static void dq_q5_k(const uint8_t *b, float *y) {
    float d = rd_f16(b), dmin = rd_f16(b + 2);
    const uint8_t *scales = b + 4, *qh = b + 16, *ql = b + 48;
    int is = 0;
    uint8_t u1 = 1, u2 = 2;
    for (int j = 0; j < 256; j += 64) {
        uint8_t sc, m;
        scale_min_k4(is, scales, &sc, &m);
        float d1 = d * (float)sc, m1 = dmin * (float)m;
        scale_min_k4(is + 1, scales, &sc, &m);
        float d2 = d * (float)sc, m2 = dmin * (float)m;
        for (int l = 0; l < 32; l++) *y++ = d1 * (float)((ql[l] & 15) + (qh[l] & u1 ? 16 : 0)) - m1;
        for (int l = 0; l < 32; l++) *y++ = d2 * (float)((ql[l] >> 4) + (qh[l] & u2 ? 16 : 0)) - m2;
        ql += 32;
        is += 2;
        u1 = (uint8_t)(u1 << 2);
        u2 = (uint8_t)(u2 << 2);
    }
}
static void dq_q6_k(const uint8_t *b, float *y) {
    const uint8_t *ql = b, *qh = b + 128;
    const int8_t *sc = (const int8_t *)(b + 192);
    float d = rd_f16(b + 208);
    for (int n = 0; n < 256; n += 128) {
        for (int l = 0; l < 32; l++) {
            int is = l / 16;
            int q1 = (int8_t)((ql[l] & 15) | (((qh[l] >> 0) & 3) << 4)) - 32;
            int q2 = (int8_t)((ql[l + 32] & 15) | (((qh[l] >> 2) & 3) << 4)) - 32;
            int q3 = (int8_t)((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
            int q4 = (int8_t)((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
            y[l] = d * (float)sc[is] * (float)q1;
            y[l + 32] = d * (float)sc[is + 2] * (float)q2;
            y[l + 64] = d * (float)sc[is + 4] * (float)q3;
            y[l + 96] = d * (float)sc[is + 6] * (float)q4;
        }
        y += 128;
        ql += 64;
        qh += 32;
        sc += 8;
    }
}

typedef void (*dq_block_fn)(const uint8_t *b, float *y);

static dq_block_fn gguf_block_fn(mlxn_gguf_type t) {
    switch (t) {
    case MLXN_GGUF_Q4_0: return dq_q4_0;
    case MLXN_GGUF_Q4_1: return dq_q4_1;
    case MLXN_GGUF_Q5_0: return dq_q5_0;
    case MLXN_GGUF_Q5_1: return dq_q5_1;
    case MLXN_GGUF_Q8_0: return dq_q8_0;
    case MLXN_GGUF_Q2_K: return dq_q2_k;
    case MLXN_GGUF_Q3_K: return dq_q3_k;
    case MLXN_GGUF_Q4_K: return dq_q4_k;
    case MLXN_GGUF_Q5_K: return dq_q5_k;
    case MLXN_GGUF_Q6_K: return dq_q6_k;
    default: return NULL;
    }
}

/* Dequantize n values (a whole number of blocks, already validated). */
static void gguf_dequant_n(mlxn_gguf_type t, const uint8_t *src, int64_t n, float *out) {
    int64_t bv, bb;
    mlxn_gguf_type_block(t, &bv, &bb);
    if (t == MLXN_GGUF_F32) { memcpy(out, src, (size_t)n * 4); return; }
    if (t == MLXN_GGUF_F16) { for (int64_t i = 0; i < n; i++) out[i] = rd_f16(src + 2 * i); return; }
    if (t == MLXN_GGUF_BF16) {
        for (int64_t i = 0; i < n; i++) out[i] = mlxn_bf16_to_float_inline(rd_u16(src + 2 * i));
        return;
    }
    dq_block_fn fn = gguf_block_fn(t);
    for (int64_t i = 0; i < n / bv; i++) fn(src + i * bb, out + i * bv);
}

static int gguf_dequant_supported(mlxn_gguf_type t) {
    return t == MLXN_GGUF_F32 || t == MLXN_GGUF_F16 || t == MLXN_GGUF_BF16 || gguf_block_fn(t) != NULL;
}

mlxn_status mlxn_gguf_dequantize(mlxn_gguf_type t, const void *blocks, int64_t n, float *out) {
    if (!blocks || !out) return mlxn_set_error(MLXN_ERR_INVALID_ARG, "gguf_dequantize: NULL pointer");
    if (!gguf_dequant_supported(t))
        return mlxn_set_error(MLXN_ERR_UNSUPPORTED, "gguf_dequantize: type %s (%d) is not supported",
                              mlxn_gguf_type_name(t), (int)t);
    int64_t bv, bb;
    mlxn_gguf_type_block(t, &bv, &bb);
    if (n <= 0 || n % bv)
        return mlxn_set_error(MLXN_ERR_SHAPE, "gguf_dequantize: n (%lld) must be a positive multiple of %lld for %s",
                              (long long)n, (long long)bv, mlxn_gguf_type_name(t));
    gguf_dequant_n(t, blocks, n, out);
    return MLXN_OK;
}

/* ---------------------------------------------------------------- GGUF quantize (Q4_0, Q8_0) */

static void wr_f16(uint8_t *p, float v) { uint16_t h = mlxn_f32_to_f16(v); memcpy(p, &h, 2); }

mlxn_status mlxn_gguf_quantize(mlxn_gguf_type t, const float *x, int64_t n, void *blocks) {
    if (!x || !blocks) return mlxn_set_error(MLXN_ERR_INVALID_ARG, "gguf_quantize: NULL pointer");
    if (t != MLXN_GGUF_Q4_0 && t != MLXN_GGUF_Q8_0)
        return mlxn_set_error(MLXN_ERR_UNSUPPORTED, "gguf_quantize: type %s (%d) is not supported (Q4_0, Q8_0 only)",
                              mlxn_gguf_type_name(t), (int)t);
    if (n <= 0 || n % 32)
        return mlxn_set_error(MLXN_ERR_SHAPE, "gguf_quantize: n (%lld) must be a positive multiple of 32",
                              (long long)n);
    uint8_t *out = blocks;
    for (int64_t i = 0; i < n / 32; i++) {
        const float *v = x + i * 32; // [32]
        if (t == MLXN_GGUF_Q4_0) {
            uint8_t *b = out + i * 18;
            float amax = 0.0f, max = 0.0f;
            for (int j = 0; j < 32; j++)
                if (amax < fabsf(v[j])) { amax = fabsf(v[j]); max = v[j]; }
            const float d = max / -8;
            const float id = d != 0.0f ? 1.0f / d : 0.0f;
            wr_f16(b, d);
            for (int j = 0; j < 16; j++) {
                const float x0 = v[j] * id, x1 = v[16 + j] * id;
                int8_t i0 = (int8_t)(x0 + 8.5f), i1 = (int8_t)(x1 + 8.5f);
                uint8_t q0 = (uint8_t)(i0 < 15 ? i0 : 15), q1 = (uint8_t)(i1 < 15 ? i1 : 15);
                b[2 + j] = (uint8_t)(q0 | (q1 << 4));
            }
        } else {
            uint8_t *b = out + i * 34;
            float amax = 0.0f;
            for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(v[j]));
            const float d = amax / 127;
            const float id = d != 0.0f ? 1.0f / d : 0.0f;
            wr_f16(b, d);
            for (int j = 0; j < 32; j++) b[2 + j] = (uint8_t)(int8_t)roundf(v[j] * id);
        }
    }
    return MLXN_OK;
}

/* ---------------------------------------------------------------- weights (internal) */

int64_t mlxn_weight_row_bytes(const mlxn_weight_desc *d) {
    if (!d) return 0;
    switch (d->format) {
    case MLXN_WEIGHT_DENSE:
        if (!d->data) return 0;
        return d->cols * (int64_t)mlxn_dtype_size(d->data->dtype);
    case MLXN_WEIGHT_MLX_AFFINE:
        if (!valid_bits(d->bits)) return 0;
        return d->cols * d->bits / 8;
    case MLXN_WEIGHT_GGUF: {
        int64_t bv, bb;
        mlxn_gguf_type_block(d->gguf_type, &bv, &bb);
        if (bv <= 0 || d->cols % bv) return 0;
        return d->cols / bv * bb;
    }
    default: return 0;
    }
}

mlxn_status mlxn_weight_dequant_rows_host(const mlxn_weight *w, int64_t r0, int64_t nrows, float *out) {
    const mlxn_weight_desc *d = &w->desc;
    if (r0 < 0 || nrows < 0 || r0 + nrows > d->rows)
        return mlxn_set_error(MLXN_ERR_RANGE, "dequantize rows [%lld, %lld) of weight '%s' with %lld rows",
                              (long long)r0, (long long)(r0 + nrows), d->name ? d->name : "", (long long)d->rows);
    const int64_t K = d->cols;
    const int64_t rb = w->row_bytes > 0 ? w->row_bytes : mlxn_weight_row_bytes(d);
    const uint8_t *base = (const uint8_t *)mlxn_buf_ptr(d->data);
    switch (d->format) {
    case MLXN_WEIGHT_DENSE: {
        mlxn_dtype t = d->data->dtype;
        for (int64_t r = 0; r < nrows; r++) {
            const uint8_t *row = base + (r0 + r) * rb;
            float *o = out + r * K;
            if (t == MLXN_F32) memcpy(o, row, (size_t)K * 4);
            else if (t == MLXN_F16) for (int64_t k = 0; k < K; k++) o[k] = rd_f16(row + 2 * k);
            else if (t == MLXN_BF16) for (int64_t k = 0; k < K; k++) o[k] = mlxn_bf16_to_float_inline(rd_u16(row + 2 * k));
            else return mlxn_set_error(MLXN_ERR_DTYPE, "weight '%s': dense dtype %s is not f32, f16 or bf16",
                                       d->name ? d->name : "", mlxn_dtype_name(t));
        }
        return MLXN_OK;
    }
    case MLXN_WEIGHT_MLX_AFFINE: {
        mlxn_dtype sdt = d->scales->dtype;
        const size_t es = mlxn_dtype_size(sdt);
        const int64_t ng = K / d->group_size;
        const uint8_t *sc = mlxn_buf_ptr(d->scales), *bi = mlxn_buf_ptr(d->biases);
        for (int64_t r = 0; r < nrows; r++) {
            int64_t rr = r0 + r;
            const uint8_t *srow = sc + (size_t)(rr * ng) * es, *brow = bi + (size_t)(rr * ng) * es;
            uint8_t q[128];
            for (int64_t g = 0; g < ng; g++) {
                float s = ld_scale(srow, sdt, g), b = ld_scale(brow, sdt, g); /* may be unaligned */
                mlxn_unpack_codes(base + rr * rb + g * d->group_size * d->bits / 8, d->group_size, d->bits, q);
                float *o = out + r * K + g * d->group_size;
                for (int j = 0; j < d->group_size; j++) o[j] = s * (float)q[j] + b;
            }
        }
        return MLXN_OK;
    }
    case MLXN_WEIGHT_GGUF:
        if (!gguf_dequant_supported(d->gguf_type))
            return mlxn_set_error(MLXN_ERR_UNSUPPORTED, "weight '%s': GGUF type %s is not supported",
                                  d->name ? d->name : "", mlxn_gguf_type_name(d->gguf_type));
        for (int64_t r = 0; r < nrows; r++) gguf_dequant_n(d->gguf_type, base + (r0 + r) * rb, K, out + r * K);
        return MLXN_OK;
    }
    return mlxn_set_error(MLXN_ERR_INVALID_ARG, "weight '%s': unknown format %d", d->name ? d->name : "", (int)d->format);
}
