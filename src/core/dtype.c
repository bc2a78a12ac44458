/* dtype.c — element sizes and names of mlxn dtypes, host f16/bf16
 * conversions (round to nearest even, NaN kept quiet), and the block geometry
 * and names of the GGUF (ggml) quantized types. */
#include "core/internal.h"

#include <string.h>

size_t mlxn_dtype_size(mlxn_dtype t) {
    switch (t) {
    case MLXN_F32: case MLXN_U32: case MLXN_I32: return 4;
    case MLXN_F16: case MLXN_BF16: case MLXN_U16: case MLXN_I16: return 2;
    case MLXN_U8: case MLXN_I8: return 1;
    case MLXN_I64: return 8;
    default: return 0;
    }
}

const char *mlxn_dtype_name(mlxn_dtype t) {
    static const char *names[] = {"f32", "f16", "bf16", "u8", "i8", "u16", "i16", "u32", "i32", "i64"};
    return (unsigned)t < MLXN_DTYPE_COUNT ? names[t] : "invalid-dtype";
}

static inline uint32_t f32_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static inline float bits_f32(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

uint16_t mlxn_f32_to_f16(float f) {
    uint32_t x = f32_bits(f);
    uint32_t sign = (x >> 16) & 0x8000u;
    uint32_t absx = x & 0x7fffffffu;
    if (absx >= 0x7f800000u) { /* inf or nan */
        if (absx > 0x7f800000u) return (uint16_t)(sign | 0x7e00u | ((absx >> 13) & 0x3ffu));
        return (uint16_t)(sign | 0x7c00u);
    }
    if (absx >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* rounds to >= 65520: inf */
    if (absx < 0x38800000u) { /* below the smallest normal half: subnormal or zero */
        /* value * 2^24 rounded to nearest even integer = mantissa of the subnormal */
        float a = bits_f32(absx);
        float scaled = a * 16777216.0f; /* exact: power of two */
        /* round to nearest even via the float addition trick */
        float r = (scaled + 8388608.0f) - 8388608.0f;
        return (uint16_t)(sign | (uint32_t)r);
    }
    uint32_t mant = absx & 0x7fffffu;
    uint32_t exp = (absx >> 23) - 112u;
    uint32_t h = (exp << 10) | (mant >> 13);
    uint32_t rem = mant & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) h++;
    return (uint16_t)(sign | h);
}

float mlxn_f16_to_f32(uint16_t h) { return mlxn_half_to_float_inline(h); }

uint16_t mlxn_f32_to_bf16(float f) {
    uint32_t x = f32_bits(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40u); /* quiet NaN */
    uint32_t lsb = (x >> 16) & 1u;
    x += 0x7fffu + lsb;
    return (uint16_t)(x >> 16);
}

float mlxn_bf16_to_f32(uint16_t b) { return mlxn_bf16_to_float_inline(b); }

void mlxn_gguf_type_block(mlxn_gguf_type t, int64_t *block_values, int64_t *block_bytes) {
    int64_t v = 0, b = 0;
    switch (t) {
    case MLXN_GGUF_F32: v = 1; b = 4; break;
    case MLXN_GGUF_F16: v = 1; b = 2; break;
    case MLXN_GGUF_BF16: v = 1; b = 2; break;
    case MLXN_GGUF_I8: v = 1; b = 1; break;
    case MLXN_GGUF_I16: v = 1; b = 2; break;
    case MLXN_GGUF_I32: v = 1; b = 4; break;
    case MLXN_GGUF_I64: v = 1; b = 8; break;
    case MLXN_GGUF_F64: v = 1; b = 8; break;
    case MLXN_GGUF_Q4_0: v = 32; b = 18; break;
    case MLXN_GGUF_Q4_1: v = 32; b = 20; break;
    case MLXN_GGUF_Q5_0: v = 32; b = 22; break;
    case MLXN_GGUF_Q5_1: v = 32; b = 24; break;
    case MLXN_GGUF_Q8_0: v = 32; b = 34; break;
    case MLXN_GGUF_Q8_1: v = 32; b = 36; break;
    case MLXN_GGUF_Q2_K: v = 256; b = 84; break;
    case MLXN_GGUF_Q3_K: v = 256; b = 110; break;
    case MLXN_GGUF_Q4_K: v = 256; b = 144; break;
    case MLXN_GGUF_Q5_K: v = 256; b = 176; break;
    case MLXN_GGUF_Q6_K: v = 256; b = 210; break;
    case MLXN_GGUF_Q8_K: v = 256; b = 292; break;
    case MLXN_GGUF_MXFP4: v = 32; b = 17; break;
    }
    if (block_values) *block_values = v;
    if (block_bytes) *block_bytes = b;
}

const char *mlxn_gguf_type_name(mlxn_gguf_type t) {
    switch (t) {
    case MLXN_GGUF_F32: return "F32";
    case MLXN_GGUF_F16: return "F16";
    case MLXN_GGUF_BF16: return "BF16";
    case MLXN_GGUF_I8: return "I8";
    case MLXN_GGUF_I16: return "I16";
    case MLXN_GGUF_I32: return "I32";
    case MLXN_GGUF_I64: return "I64";
    case MLXN_GGUF_F64: return "F64";
    case MLXN_GGUF_Q4_0: return "Q4_0";
    case MLXN_GGUF_Q4_1: return "Q4_1";
    case MLXN_GGUF_Q5_0: return "Q5_0";
    case MLXN_GGUF_Q5_1: return "Q5_1";
    case MLXN_GGUF_Q8_0: return "Q8_0";
    case MLXN_GGUF_Q8_1: return "Q8_1";
    case MLXN_GGUF_Q2_K: return "Q2_K";
    case MLXN_GGUF_Q3_K: return "Q3_K";
    case MLXN_GGUF_Q4_K: return "Q4_K";
    case MLXN_GGUF_Q5_K: return "Q5_K";
    case MLXN_GGUF_Q6_K: return "Q6_K";
    case MLXN_GGUF_Q8_K: return "Q8_K";
    case MLXN_GGUF_MXFP4: return "MXFP4";
    }
    return "unknown";
}
