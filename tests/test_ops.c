/* test_ops.c — the cross-backend op table. Every case (op × shape × dtype ×
 * parameters × tolerance) builds its inputs from a fixed seed, runs on the
 * "ref" oracle and on every other available device ("cpu" always, "cuda"
 * when mlxn_device_open("cuda") succeeds; MLXN_TEST_DEVICES="cpu,cuda"
 * restricts the list), with every output poisoned with 0xFF bytes before the
 * run, and compares: NMSE per dtype for float results, byte identity for
 * data movement (cast, kv_append, im2col) and for argmax/top-k indices.
 * Failure messages name the op, case, shape, dtype, device and the worst
 * element. The table is plain data so another backend reuses it unchanged. */
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* NMSE limits. f32 kernels compute in f32 against a double reference, so
 * elementwise/norm/rope errors are a few ulp (NMSE ~1e-14); 1e-10 leaves
 * room for different f32 summation orders. f16/bf16 outputs are rounded
 * once from f32 by both sides; the two roundings may differ by one ulp on
 * elements whose f32 values straddle a rounding boundary, hence 1e-6 (f16,
 * 2^-11 ulp) and 1e-4 (bf16, 2^-8 ulp). */
#define TOL_F32 1e-10
#define TOL_F16 1e-6
#define TOL_BF16 1e-4
/* Softmax and attention: exp of f32 logits and online-softmax rescaling in
 * f32 give the largest f32 errors of the table (measured on the CPU backend:
 * <= 7e-13 for attention, 5e-14 for softmax), still far under the common
 * f32 limit, so they use it too. Kept as its own name so a backend with a
 * legitimately different summation order (e.g. split-K on a GPU) has one
 * place to loosen, with a justification. */
#define TOL_F32_EXP 1e-10
#define BYTES 0.0 /* tolerance 0 = byte identity */

enum fam {
    F_ADD, F_MUL, F_SCALE, F_SILU, F_GELU, F_SILU_MUL, F_GELU_MUL, F_SOFTCAP, F_CAST,
    F_RMS, F_RMS_RES, F_LAYER, F_L2, F_ROPE, F_SOFTMAX, F_ARGMAX, F_TOPK, F_ATTN, F_KV, F_IM2COL
};

/* One case. Field use per family:
 *  elementwise: shape = a/x; a = 1: b is broadcast [D]; a = gelu kind; fp = alpha/cap
 *  cast: shape, dt -> dt2 (a = 1: inputs include inf/nan/subnormal/overflow values;
 *        a = 2: a 16-bit source holds every bit pattern)
 *  norms: shape [.., D]; a = 1: weight (+ bias for layer_norm); fp = eps
 *  rope: shape [T, H, D]; a = mode, b = rot_dims, c = scaling (factor fp)
 *  softmax: shape [M, N]; a = 0 none / 1 full mask / 2 row mask; fp = scale
 *  argmax: shape [M, N]; a = 1: plant ties and NaNs
 *  topk: shape [M, N]; a = k; b = 1: values NULL; c = 1: plant ties
 *  attention: shape [T, Hq, Hkv, D]; b = C; dt2 = cache dtype; at = params;
 *             pos = positions (NULL: kv_len = at.kv_len)
 *  kv_append: shape [T, Hkv, D]; b = C; a = ring; dt -> dt2 (cache); pos
 *  im2col: shape [H, W]; a = patch size */
typedef struct {
    const char *name;
    enum fam fam;
    int ndim;
    int64_t shape[4];
    mlxn_dtype dt, dt2;
    int a, b, c;
    float fp;
    double tol; /* < 0: by dtype (f32/f16/bf16 limits above) */
    mlxn_attention_params at;
    const int32_t *pos;
    int npos;
} op_case;

#define E(...) {__VA_ARGS__}
static const int32_t pos_prefill37[37] = {100, 101, 102, 103, 104, 105, 106, 107, 108, 109, 110, 111, 112,
                                          113, 114, 115, 116, 117, 118, 119, 120, 121, 122, 123, 124, 125,
                                          126, 127, 128, 129, 130, 131, 132, 133, 134, 135, 136};
static const int32_t pos_scatter3[3] = {5, 50, 17};
static const int32_t pos_decode100[1] = {100};
static const int32_t pos_decode517[1] = {517};
static const int32_t pos_ring20[20] = {90, 91, 92, 93, 94, 95, 96, 97, 98, 99,
                                       100, 101, 102, 103, 104, 105, 106, 107, 108, 109};
static const int32_t pos_kv5[5] = {3, 0, 7, 1, 6};
static const int32_t pos_kv_ring[7] = {10, 11, 12, 13, 14, 15, 16}; /* C = 4: slots wrap, later rows win */
static const int32_t pos_kv_dup[4] = {2, 2, 5, 2};                  /* repeated slot: the last row wins */

static const op_case CASES[] = {
    /* elementwise */
    {"add_1", F_ADD, 1, {1}, MLXN_F32, .tol = -1},
    {"add_odd", F_ADD, 2, {3, 37}, MLXN_F32, .tol = -1},
    {"add_big", F_ADD, 3, {2, 5, 4099}, MLXN_F32, .tol = -1},
    {"add_f16", F_ADD, 2, {7, 513}, MLXN_F16, .tol = -1},
    {"add_bf16", F_ADD, 2, {7, 513}, MLXN_BF16, .tol = -1},
    {"add_bcast", F_ADD, 2, {9, 77}, MLXN_F32, .a = 1, .tol = -1},
    {"add_bcast_bf16", F_ADD, 3, {2, 3, 300}, MLXN_BF16, .a = 1, .tol = -1},
    {"mul_odd", F_MUL, 2, {5, 1001}, MLXN_F32, .tol = -1},
    {"mul_f16", F_MUL, 1, {4097}, MLXN_F16, .tol = -1},
    {"mul_bcast", F_MUL, 2, {31, 129}, MLXN_F32, .a = 1, .tol = -1},
    {"mul_bcast_f16", F_MUL, 2, {3, 65}, MLXN_F16, .a = 1, .tol = -1},
    {"scale", F_SCALE, 2, {3, 1027}, MLXN_F32, .fp = -0.37f, .tol = -1},
    {"scale_bf16", F_SCALE, 1, {999}, MLXN_BF16, .fp = 3.5f, .tol = -1},
    {"silu", F_SILU, 2, {4, 1031}, MLXN_F32, .tol = -1},
    {"silu_f16", F_SILU, 1, {257}, MLXN_F16, .tol = -1},
    {"silu_bf16", F_SILU, 2, {3, 100}, MLXN_BF16, .tol = -1},
    {"gelu_erf", F_GELU, 2, {3, 515}, MLXN_F32, .a = MLXN_GELU_ERF, .tol = -1},
    {"gelu_tanh", F_GELU, 2, {3, 515}, MLXN_F32, .a = MLXN_GELU_TANH, .tol = -1},
    {"gelu_tanh_f16", F_GELU, 1, {333}, MLXN_F16, .a = MLXN_GELU_TANH, .tol = -1},
    {"gelu_erf_bf16", F_GELU, 1, {333}, MLXN_BF16, .a = MLXN_GELU_ERF, .tol = -1},
    {"silu_mul", F_SILU_MUL, 2, {2, 14337}, MLXN_F32, .tol = -1},
    {"silu_mul_odd", F_SILU_MUL, 1, {13}, MLXN_F32, .tol = -1},
    {"silu_mul_bf16", F_SILU_MUL, 2, {5, 301}, MLXN_BF16, .tol = -1},
    {"silu_mul_f16", F_SILU_MUL, 2, {5, 301}, MLXN_F16, .tol = -1},
    {"gelu_mul_tanh", F_GELU_MUL, 2, {3, 1025}, MLXN_F32, .a = MLXN_GELU_TANH, .tol = -1},
    {"gelu_mul_erf_f16", F_GELU_MUL, 2, {3, 99}, MLXN_F16, .a = MLXN_GELU_ERF, .tol = -1},
    {"softcap", F_SOFTCAP, 2, {3, 517}, MLXN_F32, .fp = 1.5f, .tol = -1},
    {"softcap_bf16", F_SOFTCAP, 1, {517}, MLXN_BF16, .fp = 30.0f, .tol = -1},
    /* cast: byte identity */
    {"cast_f32_f16", F_CAST, 2, {3, 1001}, MLXN_F32, MLXN_F16, .tol = BYTES},
    {"cast_f32_bf16", F_CAST, 2, {3, 1001}, MLXN_F32, MLXN_BF16, .tol = BYTES},
    {"cast_f16_f32", F_CAST, 1, {777}, MLXN_F16, MLXN_F32, .tol = BYTES},
    {"cast_bf16_f32", F_CAST, 1, {777}, MLXN_BF16, MLXN_F32, .tol = BYTES},
    {"cast_f16_bf16", F_CAST, 2, {5, 33}, MLXN_F16, MLXN_BF16, .tol = BYTES},
    {"cast_bf16_f16", F_CAST, 2, {5, 33}, MLXN_BF16, MLXN_F16, .tol = BYTES},
    {"cast_f32_f32", F_CAST, 1, {65}, MLXN_F32, MLXN_F32, .tol = BYTES},
    {"cast_special_f32_f16", F_CAST, 1, {64}, MLXN_F32, MLXN_F16, .a = 1, .tol = BYTES},
    {"cast_special_f32_bf16", F_CAST, 1, {64}, MLXN_F32, MLXN_BF16, .a = 1, .tol = BYTES},
    {"cast_all_f16_f32", F_CAST, 1, {65536}, MLXN_F16, MLXN_F32, .a = 2, .tol = BYTES},
    {"cast_all_bf16_f32", F_CAST, 1, {65536}, MLXN_BF16, MLXN_F32, .a = 2, .tol = BYTES},
    {"cast_all_f16_bf16", F_CAST, 2, {256, 256}, MLXN_F16, MLXN_BF16, .a = 2, .tol = BYTES},
    {"cast_all_bf16_f16", F_CAST, 2, {256, 256}, MLXN_BF16, MLXN_F16, .a = 2, .tol = BYTES},
    /* normalization */
    {"rms_norm", F_RMS, 2, {5, 4096}, MLXN_F32, .a = 1, .fp = 1e-5f, .tol = -1},
    {"rms_norm_odd", F_RMS, 2, {3, 77}, MLXN_F32, .a = 1, .fp = 1e-6f, .tol = -1},
    {"rms_norm_noweight", F_RMS, 3, {2, 3, 130}, MLXN_F32, .a = 0, .fp = 1e-5f, .tol = -1},
    {"rms_norm_f16", F_RMS, 2, {4, 576}, MLXN_F16, .a = 1, .fp = 1e-5f, .tol = -1},
    {"rms_norm_bf16", F_RMS, 2, {4, 1000}, MLXN_BF16, .a = 1, .fp = 1e-5f, .tol = -1},
    {"rms_norm_1", F_RMS, 1, {1}, MLXN_F32, .a = 1, .fp = 1e-5f, .tol = -1},
    {"rms_norm_res", F_RMS_RES, 2, {3, 2049}, MLXN_F32, .a = 1, .fp = 1e-5f, .tol = -1},
    {"rms_norm_res_bf16", F_RMS_RES, 2, {3, 576}, MLXN_BF16, .a = 1, .fp = 1e-6f, .tol = -1},
    {"rms_norm_res_f16_nw", F_RMS_RES, 2, {2, 33}, MLXN_F16, .a = 0, .fp = 1e-6f, .tol = -1},
    {"layer_norm", F_LAYER, 2, {4, 768}, MLXN_F32, .a = 1, .fp = 1e-5f, .tol = -1},
    {"layer_norm_odd_nw", F_LAYER, 2, {3, 61}, MLXN_F32, .a = 0, .fp = 1e-5f, .tol = -1},
    {"layer_norm_f16", F_LAYER, 2, {3, 257}, MLXN_F16, .a = 1, .fp = 1e-5f, .tol = -1},
    {"layer_norm_bf16", F_LAYER, 2, {3, 257}, MLXN_BF16, .a = 1, .fp = 1e-5f, .tol = -1},
    {"l2_norm", F_L2, 2, {6, 129}, MLXN_F32, .fp = 1e-6f, .tol = -1},
    {"l2_norm_bf16", F_L2, 2, {2, 64}, MLXN_BF16, .fp = 1e-6f, .tol = -1},
    /* rope */
    {"rope_adj", F_ROPE, 3, {5, 4, 64}, MLXN_F32, .a = MLXN_ROPE_ADJACENT, .tol = -1},
    {"rope_half", F_ROPE, 3, {5, 4, 64}, MLXN_F32, .a = MLXN_ROPE_HALF_SPLIT, .tol = -1},
    {"rope_half_partial", F_ROPE, 3, {3, 3, 96}, MLXN_F32, .a = MLXN_ROPE_HALF_SPLIT, .b = 32, .tol = -1},
    {"rope_adj_partial", F_ROPE, 3, {3, 2, 80}, MLXN_F32, .a = MLXN_ROPE_ADJACENT, .b = 40, .tol = -1},
    {"rope_half_f16", F_ROPE, 3, {7, 9, 128}, MLXN_F16, .a = MLXN_ROPE_HALF_SPLIT, .tol = -1},
    {"rope_adj_bf16", F_ROPE, 3, {7, 3, 128}, MLXN_BF16, .a = MLXN_ROPE_ADJACENT, .tol = -1},
    {"rope_linear", F_ROPE, 3, {4, 2, 64}, MLXN_F32, .a = MLXN_ROPE_HALF_SPLIT, .c = MLXN_ROPE_SCALING_LINEAR,
     .fp = 4.0f, .tol = -1},
    {"rope_llama3", F_ROPE, 3, {6, 4, 128}, MLXN_F32, .a = MLXN_ROPE_HALF_SPLIT, .c = MLXN_ROPE_SCALING_LLAMA3,
     .fp = 8.0f, .tol = -1},
    {"rope_decode", F_ROPE, 3, {1, 32, 128}, MLXN_F32, .a = MLXN_ROPE_HALF_SPLIT, .tol = -1},
    /* softmax, argmax, topk */
    {"softmax", F_SOFTMAX, 2, {4, 1000}, MLXN_F32, .a = 0, .fp = 1.0f, .tol = TOL_F32_EXP},
    {"softmax_scale_odd", F_SOFTMAX, 2, {3, 17}, MLXN_F32, .a = 0, .fp = 0.125f, .tol = TOL_F32_EXP},
    {"softmax_mask_full", F_SOFTMAX, 2, {6, 130}, MLXN_F32, .a = 1, .fp = 0.5f, .tol = TOL_F32_EXP},
    {"softmax_mask_row", F_SOFTMAX, 2, {5, 64}, MLXN_F32, .a = 2, .fp = 2.0f, .tol = TOL_F32_EXP},
    {"softmax_vocab", F_SOFTMAX, 2, {1, 50001}, MLXN_F32, .a = 0, .fp = 1.0f, .tol = TOL_F32_EXP},
    {"softmax_vocab_mask", F_SOFTMAX, 2, {2, 30011}, MLXN_F32, .a = 2, .fp = 0.7f, .tol = TOL_F32_EXP},
    {"softmax_1", F_SOFTMAX, 1, {1}, MLXN_F32, .a = 0, .fp = 1.0f, .tol = TOL_F32_EXP},
    {"argmax", F_ARGMAX, 2, {7, 1001}, MLXN_F32, .tol = BYTES},
    {"argmax_vocab", F_ARGMAX, 2, {1, 49153}, MLXN_F32, .tol = BYTES},
    {"argmax_ties_nan", F_ARGMAX, 2, {4, 100}, MLXN_F32, .a = 1, .tol = BYTES},
    {"argmax_1", F_ARGMAX, 1, {1}, MLXN_F32, .tol = BYTES},
    {"topk", F_TOPK, 2, {5, 300}, MLXN_F32, .a = 10, .tol = BYTES},
    {"topk_vocab", F_TOPK, 2, {1, 50001}, MLXN_F32, .a = 40, .tol = BYTES},
    {"topk_all", F_TOPK, 2, {3, 33}, MLXN_F32, .a = 33, .tol = BYTES},
    {"topk_novalues", F_TOPK, 2, {2, 100}, MLXN_F32, .a = 5, .b = 1, .tol = BYTES},
    {"topk_ties", F_TOPK, 2, {3, 200}, MLXN_F32, .a = 12, .c = 1, .tol = BYTES},
    /* attention: shape = {T, Hq, Hkv, D}, b = C */
    {"attn_decode_f32_d64", F_ATTN, 4, {1, 8, 2, 64}, MLXN_F32, MLXN_F32, .b = 257, .tol = TOL_F32_EXP,
     .at = {.scale = 0.125f, .causal = 1, .kv_len = 200}},
    {"attn_decode_f16_d128_gqa8", F_ATTN, 4, {1, 16, 2, 128}, MLXN_F32, MLXN_F16, .b = 2100, .tol = TOL_F32_EXP,
     .at = {.scale = 0.08838834764831845f, .causal = 1, .kv_len = 2000}},
    {"attn_decode_bf16_d256", F_ATTN, 4, {1, 4, 1, 256}, MLXN_F32, MLXN_BF16, .b = 300, .tol = TOL_F32_EXP,
     .at = {.scale = 0.0625f, .causal = 1, .kv_len = 300}},
    {"attn_prefill_f16_d128", F_ATTN, 4, {37, 4, 4, 128}, MLXN_F32, MLXN_F16, .b = 160, .tol = TOL_F32_EXP,
     .at = {.scale = 0.08838834764831845f, .causal = 1}, .pos = pos_prefill37, .npos = 37},
    {"attn_prefill_kvlen", F_ATTN, 4, {9, 6, 2, 64}, MLXN_F32, MLXN_F32, .b = 40, .tol = TOL_F32_EXP,
     .at = {.scale = 0.125f, .causal = 1, .kv_len = 33}},
    {"attn_noncausal_bf16", F_ATTN, 4, {5, 2, 1, 256}, MLXN_F32, MLXN_BF16, .b = 50, .tol = TOL_F32_EXP,
     .at = {.scale = 0.0625f, .causal = 0, .kv_len = 50}},
    {"attn_window", F_ATTN, 4, {9, 4, 2, 64}, MLXN_F32, MLXN_F32, .b = 80, .tol = TOL_F32_EXP,
     .at = {.scale = 0.125f, .causal = 1, .window = 16, .kv_len = 70}},
    {"attn_softcap", F_ATTN, 4, {3, 8, 4, 128}, MLXN_F32, MLXN_F16, .b = 90, .tol = TOL_F32_EXP,
     .at = {.scale = 0.5f, .softcap = 30.0f, .causal = 1, .kv_len = 90}},
    {"attn_scatter_pos", F_ATTN, 4, {3, 4, 2, 64}, MLXN_F32, MLXN_F32, .b = 64, .tol = TOL_F32_EXP,
     .at = {.scale = 0.125f, .causal = 1}, .pos = pos_scatter3, .npos = 3},
    {"attn_ring_decode", F_ATTN, 4, {1, 4, 2, 64}, MLXN_F32, MLXN_F16, .b = 32, .tol = TOL_F32_EXP,
     .at = {.scale = 0.125f, .causal = 1, .window = 32, .ring = 1}, .pos = pos_decode100, .npos = 1},
    {"attn_ring_prefill", F_ATTN, 4, {20, 2, 1, 128}, MLXN_F32, MLXN_F32, .b = 32, .tol = TOL_F32_EXP,
     .at = {.scale = 0.088f, .causal = 1, .window = 24, .ring = 1}, .pos = pos_ring20, .npos = 20},
    {"attn_ring_kvlen", F_ATTN, 4, {2, 2, 2, 64}, MLXN_F32, MLXN_BF16, .b = 16, .tol = TOL_F32_EXP,
     .at = {.scale = 0.125f, .causal = 1, .window = 16, .ring = 1, .kv_len = 45}},
    {"attn_d72_split", F_ATTN, 4, {1, 6, 3, 72}, MLXN_F32, MLXN_F16, .b = 1100, .tol = TOL_F32_EXP,
     .at = {.scale = 0.1f, .causal = 1, .kv_len = 1000}},
    {"attn_ring_split", F_ATTN, 4, {1, 4, 1, 64}, MLXN_F32, MLXN_BF16, .b = 1024, .tol = TOL_F32_EXP,
     .at = {.scale = 0.125f, .causal = 1, .window = 1000, .ring = 1, .kv_len = 3001}},
    {"attn_d80", F_ATTN, 4, {2, 3, 3, 80}, MLXN_F32, MLXN_F32, .b = 20, .tol = TOL_F32_EXP,
     .at = {.scale = 0.11f, .causal = 1, .kv_len = 20}},
    /* decode path (T <= 4 on CUDA: one block per KV head and chunk for all the
     * group's query heads): no GQA, odd G = 3 and head dim 96 with window and
     * softcap, G = 8 with a position, T = 4 non-causal, ring with softcap */
    {"attn_dec_g1_f16_d128", F_ATTN, 4, {1, 4, 4, 128}, MLXN_F32, MLXN_F16, .b = 700, .tol = TOL_F32_EXP,
     .at = {.scale = 0.08838834764831845f, .causal = 1, .kv_len = 613}},
    {"attn_dec_g3_d96_win_cap", F_ATTN, 4, {1, 6, 2, 96}, MLXN_F32, MLXN_F32, .b = 300, .tol = TOL_F32_EXP,
     .at = {.scale = 0.1f, .softcap = 20.0f, .causal = 1, .window = 77, .kv_len = 250}},
    {"attn_dec_g8_bf16_d128_pos", F_ATTN, 4, {1, 8, 1, 128}, MLXN_F32, MLXN_BF16, .b = 600, .tol = TOL_F32_EXP,
     .at = {.scale = 0.08838834764831845f, .causal = 1}, .pos = pos_decode517, .npos = 1},
    {"attn_dec_t4_noncausal_f16", F_ATTN, 4, {4, 4, 2, 64}, MLXN_F32, MLXN_F16, .b = 130, .tol = TOL_F32_EXP,
     .at = {.scale = 0.125f, .causal = 0, .kv_len = 130}},
    {"attn_dec_ring_cap_f32_g4", F_ATTN, 4, {1, 8, 2, 128}, MLXN_F32, MLXN_F32, .b = 256, .tol = TOL_F32_EXP,
     .at = {.scale = 0.09f, .softcap = 25.0f, .causal = 1, .window = 200, .ring = 1, .kv_len = 1001}},
    /* kv_append: shape {T, Hkv, D}, b = C */
    {"kv_f32_f32", F_KV, 3, {5, 2, 64}, MLXN_F32, MLXN_F32, .b = 8, .tol = BYTES, .pos = pos_kv5, .npos = 5},
    {"kv_f32_f16", F_KV, 3, {5, 3, 128}, MLXN_F32, MLXN_F16, .b = 9, .tol = BYTES, .pos = pos_kv5, .npos = 5},
    {"kv_f32_bf16", F_KV, 3, {5, 1, 256}, MLXN_F32, MLXN_BF16, .b = 8, .tol = BYTES, .pos = pos_kv5, .npos = 5},
    {"kv_f16_f16", F_KV, 3, {5, 2, 66}, MLXN_F16, MLXN_F16, .b = 8, .tol = BYTES, .pos = pos_kv5, .npos = 5},
    {"kv_bf16_f32", F_KV, 3, {5, 2, 64}, MLXN_BF16, MLXN_F32, .b = 8, .tol = BYTES, .pos = pos_kv5, .npos = 5},
    {"kv_ring_wrap", F_KV, 3, {7, 2, 64}, MLXN_F32, MLXN_F16, .b = 4, .a = 1, .tol = BYTES, .pos = pos_kv_ring, .npos = 7},
    {"kv_dup_slot", F_KV, 3, {4, 3, 64}, MLXN_F32, MLXN_F32, .b = 6, .tol = BYTES, .pos = pos_kv_dup, .npos = 4},
    /* im2col: shape {H, W}, a = p */
    {"im2col_128x128_p16", F_IM2COL, 2, {128, 128}, MLXN_F32, .a = 16, .tol = BYTES},
    {"im2col_64x128_p16", F_IM2COL, 2, {64, 128}, MLXN_F32, .a = 16, .tol = BYTES},
    {"im2col_128x64_p16", F_IM2COL, 2, {128, 64}, MLXN_F32, .a = 16, .tol = BYTES},
    {"im2col_32x48_p4", F_IM2COL, 2, {32, 48}, MLXN_F32, .a = 4, .tol = BYTES},
    {"im2col_32x48_p8", F_IM2COL, 2, {32, 48}, MLXN_F32, .a = 8, .tol = BYTES},
    {"im2col_32x48_p16", F_IM2COL, 2, {32, 48}, MLXN_F32, .a = 16, .tol = BYTES},
};
#define N_CASES (sizeof CASES / sizeof CASES[0])

/* ---------------------------------------------------------------- helpers */

/* Host data of one buffer: values as f32 (for dtype conversion) or raw bytes. */
typedef struct {
    mlxn_dtype dt;
    int ndim;
    int64_t shape[4];
    void *bytes;
    size_t nbytes;
} host_t;

static size_t numel_of(int ndim, const int64_t *shape) {
    size_t n = 1;
    for (int i = 0; i < ndim; i++) n *= (size_t)shape[i];
    return n;
}

static host_t host_floats(mlxn_dtype dt, int ndim, const int64_t *shape, const float *v) {
    host_t h = {.dt = dt, .ndim = ndim};
    memcpy(h.shape, shape, sizeof(int64_t) * (size_t)ndim);
    size_t n = numel_of(ndim, shape);
    h.nbytes = n * mlxn_dtype_size(dt);
    h.bytes = malloc(h.nbytes ? h.nbytes : 1);
    for (size_t i = 0; i < n; i++) {
        if (dt == MLXN_F32) ((float *)h.bytes)[i] = v[i];
        else if (dt == MLXN_F16) ((uint16_t *)h.bytes)[i] = mlxn_f32_to_f16(v[i]);
        else ((uint16_t *)h.bytes)[i] = mlxn_f32_to_bf16(v[i]);
    }
    return h;
}

static host_t host_random(t_rng *r, mlxn_dtype dt, int ndim, const int64_t *shape, float lo, float hi) {
    size_t n = numel_of(ndim, shape);
    float *v = malloc(n * sizeof *v + 1);
    t_fill(r, v, n, lo, hi);
    host_t h = host_floats(dt, ndim, shape, v);
    free(v);
    return h;
}

static host_t host_i32(int ndim, const int64_t *shape, const int32_t *v) {
    host_t h = {.dt = MLXN_I32, .ndim = ndim};
    memcpy(h.shape, shape, sizeof(int64_t) * (size_t)ndim);
    h.nbytes = numel_of(ndim, shape) * 4;
    h.bytes = malloc(h.nbytes);
    memcpy(h.bytes, v, h.nbytes);
    return h;
}

static mlxn_buffer *upload(mlxn_device *d, const host_t *h) {
    mlxn_buffer *b = NULL;
    if (mlxn_buffer_alloc(d, h->dt, h->ndim, h->shape, &b) != MLXN_OK) return NULL;
    if (mlxn_buffer_upload(b, 0, h->bytes, h->nbytes) != MLXN_OK) { mlxn_buffer_release(b); return NULL; }
    return b;
}

static mlxn_buffer *alloc_poisoned(mlxn_device *d, mlxn_dtype dt, int ndim, const int64_t *shape) {
    mlxn_buffer *b = NULL;
    if (mlxn_buffer_alloc(d, dt, ndim, shape, &b) != MLXN_OK) return NULL;
    mlxn_buffer_fill_bytes(b, 0xFF);
    return b;
}

/* The result of running one case on one device: up to 2 outputs. */
typedef struct {
    int n;
    host_t out[2];
    const char *names[2];
    mlxn_status st;
    char err[512];
} result_t;

static void result_free(result_t *r) {
    for (int i = 0; i < r->n; i++) free(r->out[i].bytes);
}

static void grab(result_t *r, const char *name, const mlxn_buffer *b) {
    host_t *h = &r->out[r->n];
    h->dt = mlxn_buffer_dtype(b);
    h->ndim = mlxn_buffer_ndim(b);
    for (int i = 0; i < h->ndim; i++) h->shape[i] = mlxn_buffer_dim(b, i);
    h->nbytes = mlxn_buffer_nbytes(b);
    h->bytes = malloc(h->nbytes ? h->nbytes : 1);
    mlxn_buffer_download(b, 0, h->bytes, h->nbytes);
    r->names[r->n++] = name;
}

/* ---------------------------------------------------------------- running a case */

#define MAXB 8
typedef struct {
    mlxn_buffer *b[MAXB];
    int n;
} bufset;
static mlxn_buffer *keep(bufset *s, mlxn_buffer *b) {
    if (s->n < MAXB) s->b[s->n++] = b;
    return b;
}
static void release_all(bufset *s) {
    for (int i = 0; i < s->n; i++) mlxn_buffer_release(s->b[i]);
}

/* Inputs are regenerated from the case index on every device, so each
 * backend sees the same bytes. */
static void run_case(mlxn_device *d, const op_case *c, uint64_t seed, result_t *res) {
    memset(res, 0, sizeof *res);
    t_rng rng;
    t_rng_seed(&rng, seed);
    mlxn_session *s = NULL;
    bufset bs = {0};
    host_t hs[6];
    int nh = 0;
    mlxn_status st = mlxn_session_begin(d, &s);
    if (st != MLXN_OK) goto done;
    const int64_t *sh = c->shape;
    int nd = c->ndim;
    int64_t D = sh[nd - 1];
    switch (c->fam) {
    case F_ADD: case F_MUL: case F_SILU_MUL: case F_GELU_MUL: {
        int64_t bsh[1] = {D};
        hs[nh++] = host_random(&rng, c->dt, nd, sh, -3, 3);
        hs[nh++] = c->a == 1 && (c->fam == F_ADD || c->fam == F_MUL) ? host_random(&rng, c->dt, 1, bsh, -2, 2)
                                                                      : host_random(&rng, c->dt, nd, sh, -2, 2);
        mlxn_buffer *a = keep(&bs, upload(d, &hs[0])), *b = keep(&bs, upload(d, &hs[1]));
        mlxn_buffer *y = keep(&bs, alloc_poisoned(d, c->dt, nd, sh));
        if (c->fam == F_ADD) st = mlxn_add(s, a, b, y);
        else if (c->fam == F_MUL) st = mlxn_mul(s, a, b, y);
        else if (c->fam == F_SILU_MUL) st = mlxn_silu_mul(s, a, b, y);
        else st = mlxn_gelu_mul(s, a, b, (mlxn_gelu_kind)c->a, y);
        if (st == MLXN_OK) st = mlxn_session_finish(s);
        if (st == MLXN_OK) grab(res, "y", y);
        break;
    }
    case F_SCALE: case F_SILU: case F_GELU: case F_SOFTCAP: {
        hs[nh++] = host_random(&rng, c->dt, nd, sh, -6, 6);
        mlxn_buffer *x = keep(&bs, upload(d, &hs[0]));
        mlxn_buffer *y = keep(&bs, alloc_poisoned(d, c->dt, nd, sh));
        if (c->fam == F_SCALE) st = mlxn_scale(s, x, c->fp, y);
        else if (c->fam == F_SILU) st = mlxn_silu(s, x, y);
        else if (c->fam == F_GELU) st = mlxn_gelu(s, x, (mlxn_gelu_kind)c->a, y);
        else st = mlxn_softcap(s, x, c->fp, y);
        if (st == MLXN_OK) st = mlxn_session_finish(s);
        if (st == MLXN_OK) grab(res, "y", y);
        break;
    }
    case F_CAST: {
        size_t n = numel_of(nd, sh);
        float *v = malloc(n * sizeof *v);
        t_fill(&rng, v, n, -100, 100);
        if (c->a == 1) { /* values that exercise rounding edges */
            const float sp[] = {INFINITY, -INFINITY, NAN, 65504.0f, 65520.0f, 1e6f, -1e6f, 6.1e-5f, 5.96e-8f,
                                2.98e-8f, 1e-10f, -3e-7f, 1.0f + 1.0f / 2048, 1.0f + 3.0f / 4096, 1.00390625f,
                                1.005859375f, 3.4e38f, -0.0f, 0.0f, 1.17549435e-38f, 1e-39f};
            for (size_t i = 0; i < sizeof sp / sizeof sp[0] && i < n; i++) v[i] = sp[i];
        }
        hs[nh++] = host_floats(c->dt, nd, sh, v);
        free(v);
        if (c->a == 2) /* every 16-bit pattern (NaNs, infinities, subnormals included) */
            for (size_t i = 0; i < n && mlxn_dtype_size(c->dt) == 2; i++) ((uint16_t *)hs[0].bytes)[i] = (uint16_t)i;
        mlxn_buffer *x = keep(&bs, upload(d, &hs[0]));
        mlxn_buffer *y = keep(&bs, alloc_poisoned(d, c->dt2, nd, sh));
        st = mlxn_cast(s, x, y);
        if (st == MLXN_OK) st = mlxn_session_finish(s);
        if (st == MLXN_OK) grab(res, "y", y);
        break;
    }
    case F_RMS: case F_RMS_RES: case F_LAYER: case F_L2: {
        int64_t wsh[1] = {D};
        hs[nh++] = host_random(&rng, c->dt, nd, sh, -2, 2);
        hs[nh++] = host_random(&rng, c->dt, nd, sh, -1, 1); /* residual */
        hs[nh++] = host_random(&rng, c->dt, 1, wsh, 0.5f, 1.5f);
        hs[nh++] = host_random(&rng, c->dt, 1, wsh, -0.5f, 0.5f);
        mlxn_buffer *x = keep(&bs, upload(d, &hs[0]));
        mlxn_buffer *w = c->a ? keep(&bs, upload(d, &hs[2])) : NULL;
        mlxn_buffer *y = keep(&bs, alloc_poisoned(d, c->dt, nd, sh));
        if (c->fam == F_RMS) st = mlxn_rms_norm(s, x, w, c->fp, y);
        else if (c->fam == F_L2) st = mlxn_l2_norm(s, x, c->fp, y);
        else if (c->fam == F_LAYER) {
            mlxn_buffer *b = c->a ? keep(&bs, upload(d, &hs[3])) : NULL;
            st = mlxn_layer_norm(s, x, w, b, c->fp, y);
        } else {
            mlxn_buffer *r = keep(&bs, upload(d, &hs[1]));
            mlxn_buffer *sum = keep(&bs, alloc_poisoned(d, c->dt, nd, sh));
            st = mlxn_rms_norm_residual(s, x, r, w, c->fp, sum, y);
            if (st == MLXN_OK) st = mlxn_session_finish(s);
            if (st == MLXN_OK) grab(res, "sum", sum);
        }
        if (st == MLXN_OK) st = mlxn_session_finish(s);
        if (st == MLXN_OK) grab(res, "y", y);
        break;
    }
    case F_ROPE: {
        int32_t *pos = malloc((size_t)sh[0] * sizeof *pos);
        for (int64_t t = 0; t < sh[0]; t++) pos[t] = (int32_t)(t_rng_u64(&rng) % 9000);
        int64_t psh[1] = {sh[0]};
        hs[nh++] = host_random(&rng, c->dt, nd, sh, -2, 2);
        hs[nh++] = host_i32(1, psh, pos);
        free(pos);
        mlxn_buffer *x = keep(&bs, upload(d, &hs[0])), *p = keep(&bs, upload(d, &hs[1]));
        mlxn_buffer *y = keep(&bs, alloc_poisoned(d, c->dt, nd, sh));
        mlxn_rope_params rp = {.mode = (mlxn_rope_mode)c->a, .rot_dims = c->b, .theta = 10000.0f,
                               .scaling = (mlxn_rope_scaling)c->c, .factor = c->fp};
        if (c->c == MLXN_ROPE_SCALING_LLAMA3) {
            rp.theta = 500000.0f;
            rp.low_freq_factor = 1.0f;
            rp.high_freq_factor = 4.0f;
            rp.original_max_pos = 8192;
        }
        st = mlxn_rope(s, x, p, &rp, y);
        if (st == MLXN_OK) st = mlxn_session_finish(s);
        if (st == MLXN_OK) grab(res, "y", y);
        break;
    }
    case F_SOFTMAX: {
        int64_t M = nd == 2 ? sh[0] : 1, N = D;
        hs[nh++] = host_random(&rng, MLXN_F32, nd, sh, -8, 8);
        size_t nm = c->a == 1 ? (size_t)(M * N) : (size_t)N;
        float *m = malloc(nm * sizeof *m);
        t_fill(&rng, m, nm, -3, 1);
        for (size_t i = 0; i < nm; i++)
            if (t_rng_u64(&rng) % 4 == 0) m[i] = -INFINITY;
        if (c->a == 1) for (int64_t j = 0; j < N; j++) m[N + j] = -INFINITY; /* row 1 fully masked */
        int64_t msh[2] = {M, N}, rsh[1] = {N};
        hs[nh++] = c->a == 1 ? host_floats(MLXN_F32, 2, msh, m) : host_floats(MLXN_F32, 1, rsh, m);
        free(m);
        mlxn_buffer *x = keep(&bs, upload(d, &hs[0]));
        mlxn_buffer *mask = c->a ? keep(&bs, upload(d, &hs[1])) : NULL;
        mlxn_buffer *y = keep(&bs, alloc_poisoned(d, MLXN_F32, nd, sh));
        st = mlxn_softmax(s, x, mask, c->fp, y);
        if (st == MLXN_OK) st = mlxn_session_finish(s);
        if (st == MLXN_OK) grab(res, "y", y);
        break;
    }
    case F_ARGMAX: case F_TOPK: {
        size_t n = numel_of(nd, sh);
        float *v = malloc(n * sizeof *v);
        t_fill(&rng, v, n, -10, 10);
        if ((c->fam == F_ARGMAX && c->a == 1) || (c->fam == F_TOPK && c->c == 1)) {
            /* quantize to few levels (many ties) and plant NaNs; row 0 ties at the max */
            for (size_t i = 0; i < n; i++) v[i] = floorf(v[i] / 4.0f);
            for (size_t i = 3; i < n; i += 17) v[i] = NAN;
            v[5] = 100.0f;
            v[9] = 100.0f;
            if (n > 2 * (size_t)D) for (int64_t j = 0; j < D; j++) v[D + j] = NAN; /* row 1 all NaN */
            if (n > 3 * (size_t)D) { /* row 2: NaN, then -inf everywhere but one NaN */
                for (int64_t j = 0; j < D; j++) v[2 * D + j] = -INFINITY;
                v[2 * D] = NAN;
                v[2 * D + 7] = NAN;
            }
        }
        hs[nh++] = host_floats(MLXN_F32, nd, sh, v);
        free(v);
        mlxn_buffer *x = keep(&bs, upload(d, &hs[0]));
        int64_t M = (int64_t)(n / (size_t)D);
        if (c->fam == F_ARGMAX) {
            int64_t ish[1] = {M};
            mlxn_buffer *idx = keep(&bs, alloc_poisoned(d, MLXN_I32, 1, ish));
            st = mlxn_argmax(s, x, idx);
            if (st == MLXN_OK) st = mlxn_session_finish(s);
            if (st == MLXN_OK) grab(res, "idx", idx);
        } else {
            int64_t ksh[4];
            memcpy(ksh, sh, sizeof ksh);
            ksh[nd - 1] = c->a;
            mlxn_buffer *idx = keep(&bs, alloc_poisoned(d, MLXN_I32, nd, ksh));
            mlxn_buffer *vals = c->b ? NULL : keep(&bs, alloc_poisoned(d, MLXN_F32, nd, ksh));
            st = mlxn_topk(s, x, c->a, vals, idx);
            if (st == MLXN_OK) st = mlxn_session_finish(s);
            if (st == MLXN_OK) grab(res, "idx", idx);
            if (st == MLXN_OK && vals) grab(res, "values", vals);
        }
        break;
    }
    case F_ATTN: {
        int64_t T = sh[0], Hq = sh[1], Hkv = sh[2], Dh = sh[3], C = c->b;
        int64_t qsh[3] = {T, Hq, Dh}, ksh[3] = {Hkv, C, Dh}, psh[1] = {T};
        hs[nh++] = host_random(&rng, MLXN_F32, 3, qsh, -1.5f, 1.5f);
        hs[nh++] = host_random(&rng, c->dt2, 3, ksh, -1.5f, 1.5f);
        hs[nh++] = host_random(&rng, c->dt2, 3, ksh, -2, 2);
        mlxn_buffer *q = keep(&bs, upload(d, &hs[0])), *k = keep(&bs, upload(d, &hs[1]));
        mlxn_buffer *v = keep(&bs, upload(d, &hs[2]));
        mlxn_buffer *p = NULL;
        if (c->pos) {
            hs[nh++] = host_i32(1, psh, c->pos);
            p = keep(&bs, upload(d, &hs[3]));
        }
        mlxn_buffer *o = keep(&bs, alloc_poisoned(d, MLXN_F32, 3, qsh));
        st = mlxn_attention(s, q, k, v, p, &c->at, o);
        if (st == MLXN_OK) st = mlxn_session_finish(s);
        if (st == MLXN_OK) grab(res, "out", o);
        break;
    }
    case F_KV: {
        int64_t T = sh[0], H = sh[1], Dh = sh[2], C = c->b;
        int64_t csh[3] = {H, C, Dh}, psh[1] = {T};
        hs[nh++] = host_random(&rng, c->dt, 3, sh, -70000, 70000); /* f16 overflow and rounding edges too */
        hs[nh++] = host_i32(1, psh, c->pos);
        mlxn_buffer *src = keep(&bs, upload(d, &hs[0])), *p = keep(&bs, upload(d, &hs[1]));
        mlxn_buffer *cache = keep(&bs, alloc_poisoned(d, c->dt2, 3, csh)); /* untouched slots stay 0xFF on both */
        st = mlxn_kv_append(s, src, p, c->a, cache);
        if (st == MLXN_OK) st = mlxn_session_finish(s);
        if (st == MLXN_OK) grab(res, "cache", cache);
        break;
    }
    case F_IM2COL: {
        int64_t H = sh[0], W = sh[1], P = c->a;
        int64_t ish[3] = {3, H, W}, osh[2] = {(H / P) * (W / P), 3 * P * P};
        hs[nh++] = host_random(&rng, MLXN_F32, 3, ish, -1, 1);
        mlxn_buffer *img = keep(&bs, upload(d, &hs[0]));
        mlxn_buffer *o = keep(&bs, alloc_poisoned(d, MLXN_F32, 2, osh));
        st = mlxn_im2col_2d_3ch(s, img, (int)P, o);
        if (st == MLXN_OK) st = mlxn_session_finish(s);
        if (st == MLXN_OK) grab(res, "out", o);
        break;
    }
    }
done:
    res->st = st;
    if (st != MLXN_OK) snprintf(res->err, sizeof res->err, "%s", mlxn_last_error());
    for (int i = 0; i < nh; i++) free(hs[i].bytes);
    release_all(&bs);
    mlxn_session_destroy(s);
}

/* ---------------------------------------------------------------- comparison */

static const char *mlxn_op_name_for_test(enum fam f) {
    static const char *n[] = {"add", "mul", "scale", "silu", "gelu", "silu_mul", "gelu_mul", "softcap", "cast",
                              "rms_norm", "rms_norm_residual", "layer_norm", "l2_norm", "rope", "softmax", "argmax",
                              "topk", "attention", "kv_append", "im2col_2d_3ch"};
    return n[f];
}

static double tol_for(const op_case *c, mlxn_dtype out_dt) {
    if (c->tol >= 0 && out_dt == MLXN_F32) return c->tol;
    if (c->tol == 0) return 0;
    switch (out_dt) {
    case MLXN_F16: return TOL_F16;
    case MLXN_BF16: return TOL_BF16;
    default: return TOL_F32;
    }
}

static void widen(const host_t *h, float *out) {
    size_t n = h->nbytes / mlxn_dtype_size(h->dt);
    for (size_t i = 0; i < n; i++) {
        if (h->dt == MLXN_F32) out[i] = ((const float *)h->bytes)[i];
        else if (h->dt == MLXN_F16) out[i] = mlxn_f16_to_f32(((const uint16_t *)h->bytes)[i]);
        else if (h->dt == MLXN_BF16) out[i] = mlxn_bf16_to_f32(((const uint16_t *)h->bytes)[i]);
        else out[i] = (float)((const int32_t *)h->bytes)[i];
    }
}

static void compare(const op_case *c, const char *dev, const result_t *got, const result_t *ref) {
    char sh[96];
    size_t n = 0;
    n += (size_t)snprintf(sh + n, sizeof sh - n, "[");
    for (int i = 0; i < c->ndim; i++) n += (size_t)snprintf(sh + n, sizeof sh - n, i ? ", %lld" : "%lld", (long long)c->shape[i]);
    snprintf(sh + n, sizeof sh - n, "]");
    if (ref->st != MLXN_OK) {
        t_fail(__FILE__, __LINE__, "%s (%s) shape %s dtype %s: ref failed: %s", c->name, mlxn_op_name_for_test(c->fam), sh,
               mlxn_dtype_name(c->dt), ref->err);
        return;
    }
    if (got->st != MLXN_OK) {
        t_fail(__FILE__, __LINE__, "%s (%s) shape %s dtype %s on %s: %s: %s", c->name, mlxn_op_name_for_test(c->fam), sh,
               mlxn_dtype_name(c->dt), dev, mlxn_status_name(got->st), got->err);
        return;
    }
    for (int i = 0; i < ref->n; i++) {
        char what[768];
        snprintf(what, sizeof what, "op %s case %s shape %s dtype %s->%s output '%s' on %s vs ref",
                 mlxn_op_name_for_test(c->fam), c->name, sh, mlxn_dtype_name(c->dt),
                 mlxn_dtype_name(ref->out[i].dt), ref->names[i], dev);
        if (got->out[i].nbytes != ref->out[i].nbytes) {
            t_fail(__FILE__, __LINE__, "%s: %zu bytes vs %zu", what, got->out[i].nbytes, ref->out[i].nbytes);
            continue;
        }
        int exact = tol_for(c, ref->out[i].dt) == 0 || ref->out[i].dt == MLXN_I32;
        if (exact) {
            if (!t_check_bytes(what, got->out[i].bytes, ref->out[i].bytes, ref->out[i].nbytes)) {
                /* name the worst element too */
                size_t es = mlxn_dtype_size(ref->out[i].dt), ne = ref->out[i].nbytes / es;
                for (size_t e = 0; e < ne; e++)
                    if (memcmp((char *)got->out[i].bytes + e * es, (char *)ref->out[i].bytes + e * es, es)) {
                        float g, r;
                        host_t hg = got->out[i], hr = ref->out[i];
                        hg.bytes = (char *)hg.bytes + e * es; hg.nbytes = es;
                        hr.bytes = (char *)hr.bytes + e * es; hr.nbytes = es;
                        widen(&hg, &g);
                        widen(&hr, &r);
                        t_fail(__FILE__, __LINE__, "%s: first differing element [%zu]: got %.9g ref %.9g", what, e, g, r);
                        break;
                    }
            }
        } else {
            size_t ne = ref->out[i].nbytes / mlxn_dtype_size(ref->out[i].dt);
            float *g = malloc(ne * sizeof *g), *r = malloc(ne * sizeof *r);
            widen(&got->out[i], g);
            widen(&ref->out[i], r);
            t_check_nmse(what, g, r, ne, tol_for(c, ref->out[i].dt));
            if (getenv("MLXN_TEST_VERBOSE")) printf("    %s: NMSE %.3g (limit %.3g)\n", what, t_nmse(g, r, ne, NULL, NULL),
                                                   tol_for(c, ref->out[i].dt));
            free(g);
            free(r);
        }
    }
}

/* ---------------------------------------------------------------- devices and main */

typedef struct {
    char label[48];
    mlxn_device *dev;
} test_dev;

static mlxn_device *g_ref;
static test_dev g_devs[8];
static int g_ndev;
static size_t g_case;
static char g_missing[600]; /* a device that was asked for but did not open */

static int wanted(const char *kind) {
    const char *env = getenv("MLXN_TEST_DEVICES");
    if (!env || !*env) return 1;
    return strstr(env, kind) != NULL;
}

static void open_devices(void) {
    mlxn_device *d = NULL;
    if (mlxn_device_open("ref", NULL, &g_ref) != MLXN_OK) {
        fprintf(stderr, "cannot open the ref device: %s\n", mlxn_last_error());
        exit(1);
    }
    if (wanted("cpu")) {
        /* the default thread count, plus 1 and 3 threads: results must not depend on the split */
        int threads[3] = {0, 1, 3};
        for (int i = 0; i < 3; i++) {
            mlxn_device_opts o = {.n_threads = threads[i]};
            if (mlxn_device_open("cpu", &o, &d) == MLXN_OK) {
                snprintf(g_devs[g_ndev].label, sizeof g_devs[0].label, threads[i] ? "cpu(%d threads)" : "cpu", threads[i]);
                g_devs[g_ndev++].dev = d;
            }
        }
    }
    if (wanted("cuda")) {
        /* required when named in MLXN_TEST_DEVICES or with MLXN_REQUIRE_CUDA=1; optional otherwise */
        const char *env = getenv("MLXN_TEST_DEVICES"), *req = getenv("MLXN_REQUIRE_CUDA");
        int required = (env && strstr(env, "cuda")) || (req && strcmp(req, "1") == 0);
        if (mlxn_device_open("cuda", NULL, &d) == MLXN_OK) {
            snprintf(g_devs[g_ndev].label, sizeof g_devs[0].label, "cuda");
            g_devs[g_ndev++].dev = d;
        } else if (required) {
            snprintf(g_missing, sizeof g_missing, "cuda was required but did not open: %s", mlxn_last_error());
        } else {
            printf("note: cuda not available (%s); testing the other devices only\n", mlxn_last_error());
        }
    }
}

static void one_case(void) {
    const op_case *c = &CASES[g_case];
    uint64_t seed = 1000 + g_case;
    result_t ref;
    run_case(g_ref, c, seed, &ref);
    for (int i = 0; i < g_ndev; i++) {
        result_t got;
        run_case(g_devs[i].dev, c, seed, &got);
        compare(c, g_devs[i].label, &got, &ref);
        result_free(&got);
    }
    result_free(&ref);
}

/* In-place use (y aliasing x exactly) gives the same result as out-of-place. */
static void test_in_place(void) {
    for (int i = 0; i < g_ndev; i++) {
        mlxn_device *d = g_devs[i].dev;
        t_rng r;
        t_rng_seed(&r, 77);
        int64_t sh[3] = {3, 4, 64}, psh[1] = {3};
        host_t hx = host_random(&r, MLXN_F32, 3, sh, -2, 2), hy = host_random(&r, MLXN_F32, 3, sh, -2, 2);
        int32_t pv[3] = {7, 100, 3};
        host_t hp = host_i32(1, psh, pv);
        mlxn_session *s = NULL;
        CHECK_OK(mlxn_session_begin(d, &s));
        mlxn_buffer *x = upload(d, &hx), *y = upload(d, &hy), *p = upload(d, &hp);
        mlxn_buffer *o1 = alloc_poisoned(d, MLXN_F32, 3, sh), *o2 = alloc_poisoned(d, MLXN_F32, 3, sh);
        mlxn_rope_params rp = {.mode = MLXN_ROPE_HALF_SPLIT, .theta = 10000.0f};
        size_t nb = hx.nbytes;
        float *a = malloc(nb), *b = malloc(nb);
        /* add, silu_mul, rms_norm, rope, softmax, rms_norm_residual: out-of-place into o1, then in place */
        for (int op = 0; op < 6; op++) {
            mlxn_buffer_upload(x, 0, hx.bytes, nb);
            mlxn_buffer_upload(y, 0, hy.bytes, nb);
            mlxn_status s1, s2;
            switch (op) {
            case 0: s1 = mlxn_add(s, x, y, o1); s2 = mlxn_add(s, x, y, x); break;
            case 1: s1 = mlxn_silu_mul(s, x, y, o1); s2 = mlxn_silu_mul(s, x, y, y); break;
            case 2: s1 = mlxn_rms_norm(s, x, NULL, 1e-5f, o1); s2 = mlxn_rms_norm(s, x, NULL, 1e-5f, x); break;
            case 3: s1 = mlxn_rope(s, x, p, &rp, o1); s2 = mlxn_rope(s, x, p, &rp, x); break;
            case 4: s1 = mlxn_softmax(s, x, NULL, 0.5f, o1); s2 = mlxn_softmax(s, x, NULL, 0.5f, x); break;
            default: s1 = mlxn_rms_norm_residual(s, x, y, NULL, 1e-5f, o2, o1);
                     s2 = mlxn_rms_norm_residual(s, x, y, NULL, 1e-5f, y, x); break;
            }
            CHECK_OK(s1);
            CHECK_OK(s2);
            CHECK_OK(mlxn_session_finish(s));
            mlxn_buffer_download(o1, 0, a, nb);
            mlxn_buffer_download(op == 1 ? y : x, 0, b, nb); /* silu_mul wrote into up */
            char what[160];
            snprintf(what, sizeof what, "in-place op #%d on %.47s (y)", op, g_devs[i].label);
            t_check_bytes(what, b, a, nb);
            if (op == 5) { /* the sum went into y (aliasing the residual) */
                mlxn_buffer_download(o2, 0, a, nb);
                mlxn_buffer_download(y, 0, b, nb);
                snprintf(what, sizeof what, "in-place rms_norm_residual on %.47s (sum)", g_devs[i].label);
                t_check_bytes(what, b, a, nb);
            }
        }
        free(a);
        free(b);
        free(hx.bytes);
        free(hy.bytes);
        free(hp.bytes);
        mlxn_buffer_release(x); mlxn_buffer_release(y); mlxn_buffer_release(p);
        mlxn_buffer_release(o1); mlxn_buffer_release(o2);
        mlxn_session_destroy(s);
    }
}

/* Out-of-range positions are MLXN_ERR_RANGE on host backends, before anything is written. */
static void test_position_range(void) {
    mlxn_device *all[9] = {g_ref};
    int n = 1;
    for (int i = 0; i < g_ndev; i++)
        if (strcmp(mlxn_device_kind(g_devs[i].dev), "cuda") != 0) all[n++] = g_devs[i].dev;
    for (int i = 0; i < n; i++) {
        mlxn_device *d = all[i];
        mlxn_session *s = NULL;
        CHECK_OK(mlxn_session_begin(d, &s));
        int64_t ssh[3] = {2, 1, 8}, csh[3] = {1, 4, 8}, psh[1] = {2};
        mlxn_buffer *src = NULL, *cache = NULL, *pos = NULL, *q = NULL, *o = NULL;
        CHECK_OK(mlxn_buffer_alloc(d, MLXN_F32, 3, ssh, &src));
        CHECK_OK(mlxn_buffer_alloc(d, MLXN_F32, 3, csh, &cache));
        CHECK_OK(mlxn_buffer_alloc(d, MLXN_I32, 1, psh, &pos));
        CHECK_OK(mlxn_buffer_alloc(d, MLXN_F32, 3, ssh, &q));
        CHECK_OK(mlxn_buffer_alloc(d, MLXN_F32, 3, ssh, &o));
        mlxn_buffer_fill_bytes(src, 0x3c);
        mlxn_buffer_fill_bytes(q, 0x3c);
        mlxn_buffer_fill_bytes(cache, 0x11);
        int32_t bad[2] = {1, 4};
        mlxn_buffer_upload(pos, 0, bad, sizeof bad);
        CHECK_ERR(mlxn_kv_append(s, src, pos, 0, cache), MLXN_ERR_RANGE, "positions[1] = 4");
        unsigned char chk[128];
        mlxn_buffer_download(cache, 0, chk, sizeof chk);
        int untouched = 1;
        for (size_t k = 0; k < sizeof chk; k++) untouched &= chk[k] == 0x11;
        CHECK_MSG(untouched, "kv_append wrote rows before reporting a range error on %s", mlxn_device_kind(d));
        CHECK_OK(mlxn_kv_append(s, src, pos, 1, cache)); /* ring: 4 % 4 = slot 0 */
        mlxn_attention_params ap = {.scale = 0.3f, .causal = 1};
        CHECK_ERR(mlxn_attention(s, q, cache, cache, pos, &ap, o), MLXN_ERR_RANGE, "capacity");
        int32_t neg[2] = {-1, 0};
        mlxn_buffer_upload(pos, 0, neg, sizeof neg);
        CHECK_ERR(mlxn_attention(s, q, cache, cache, pos, &ap, o), MLXN_ERR_RANGE, "negative");
        CHECK_ERR(mlxn_kv_append(s, src, pos, 1, cache), MLXN_ERR_RANGE, "positions[0] = -1");
        mlxn_buffer_release(src); mlxn_buffer_release(cache); mlxn_buffer_release(pos);
        mlxn_buffer_release(q); mlxn_buffer_release(o);
        mlxn_session_destroy(s);
    }
}

/* Recording a graph and replaying it gives the eager result (positions read at replay time). */
static void test_graph_replay(void) {
    for (int i = 0; i < g_ndev; i++) {
        mlxn_device *d = g_devs[i].dev;
        mlxn_session *s = NULL;
        CHECK_OK(mlxn_session_begin(d, &s));
        t_rng r;
        t_rng_seed(&r, 5);
        int64_t xsh[3] = {1, 2, 64}, psh[1] = {1};
        host_t hx = host_random(&r, MLXN_F32, 3, xsh, -1, 1);
        mlxn_buffer *x = upload(d, &hx), *y = alloc_poisoned(d, MLXN_F32, 3, xsh), *p = NULL, *y2 = alloc_poisoned(d, MLXN_F32, 3, xsh);
        int32_t pv = 3;
        host_t hp = host_i32(1, psh, &pv);
        p = upload(d, &hp);
        mlxn_rope_params rp = {.mode = MLXN_ROPE_ADJACENT, .theta = 10000.0f};
        CHECK_OK(mlxn_graph_begin_record(s));
        CHECK_OK(mlxn_rope(s, x, p, &rp, y));
        mlxn_graph *g = NULL;
        CHECK_OK(mlxn_graph_end_record(s, &g));
        pv = 42;
        mlxn_buffer_upload(p, 0, &pv, 4);
        CHECK_OK(mlxn_graph_replay(s, g));
        CHECK_OK(mlxn_rope(s, x, p, &rp, y2));
        CHECK_OK(mlxn_session_finish(s));
        float a[128], b[128];
        mlxn_buffer_download(y, 0, a, sizeof a);
        mlxn_buffer_download(y2, 0, b, sizeof b);
        t_check_bytes("graph replay vs eager rope", a, b, sizeof a);
        mlxn_graph_destroy(g);
        free(hx.bytes);
        free(hp.bytes);
        mlxn_buffer_release(x); mlxn_buffer_release(y); mlxn_buffer_release(y2); mlxn_buffer_release(p);
        mlxn_session_destroy(s);
    }
}

/* The run must test something: every requested device opened, and at least one. */
static void test_devices_present(void) {
    CHECK_MSG(g_missing[0] == 0, "%s", g_missing);
    CHECK_MSG(g_ndev > 0, "no device under test (MLXN_TEST_DEVICES=%s)", getenv("MLXN_TEST_DEVICES") ? getenv("MLXN_TEST_DEVICES") : "");
}

int main(void) {
    open_devices();
    T_RUN(test_devices_present);
    printf("devices under test:");
    for (int i = 0; i < g_ndev; i++) printf(" %s", g_devs[i].label);
    printf(" (oracle: ref)\n");
    for (g_case = 0; g_case < N_CASES; g_case++) t_run(CASES[g_case].name, one_case);
    T_RUN(test_in_place);
    T_RUN(test_position_range);
    T_RUN(test_graph_replay);
    for (int i = 0; i < g_ndev; i++) mlxn_device_close(g_devs[i].dev);
    mlxn_device_close(g_ref);
    return t_finish();
}
