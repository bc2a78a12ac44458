/* cpu_quant_kernels.h — the interface between the CPU matmul driver
 * (cpu_matmul.c: format dispatch, threading, the portable dequantize-then-dot
 * path) and the AVX2 kernels (cpu_matmul_avx2.c). Quantized fast paths first
 * quantize each activation row x [K] to int8 per block (like ggml's q8
 * formats: dx = max|x|/127 per block, xq = rint(x/dx)), laid out in the order
 * the weight's packed nibbles come out of a SIMD unpack, and then compute
 * integer dot products (vpmaddubsw/vpmaddwd) per block, scaled in f32.
 * These int8 paths are opt-in (MLXN_CPU_INT8_ACT=1); by default the f32-
 * activation kernels of cpu_matmul_f32act.c run (declared at the end). */
#ifndef MLXN_CPU_QUANT_KERNELS_H
#define MLXN_CPU_QUANT_KERNELS_H

#include <stdint.h>

#include "core/internal.h"

/* Kinds of int8 fast path (what x must look like and which dot kernel runs).
 * x is always quantized in blocks of 32 values (per-block scales over 64 or
 * 128 values cost 2-3x the NMSE on activations with outlier channels). */
typedef enum cpu_qkind {
    CPU_Q_NONE = 0,
    CPU_Q_Q4_0,   /* natural x order */
    CPU_Q_Q4_1,
    CPU_Q_Q8_0,
    CPU_Q_MLX4,   /* MLX affine 4-bit: x permuted to [evens | odds] per 32 (group 32) or 64 (else) chunk */
    CPU_Q_MLX8,
    CPU_Q_Q4_K,
    CPU_Q_Q5_K,
    CPU_Q_Q6_K,   /* needs bs (sums per 16) */
    CPU_Q_MLXB,   /* MLX affine 2/3/5/6-bit: rows unpacked to byte codes first (mlxn_cpu_avx2_dot_codes) */
} cpu_qkind;

/* Quantized activations for M rows. Row m: q + m*K, d/s/t + m*nblk,
 * bs + m*(K/16), sg/ug + m*(K/group), dp + m*(K/256)*8. */
typedef struct cpu_xq {
    int64_t K, nblk;      /* nblk = number of x blocks per row */
    int8_t *q;            // [M, K]
    float *d;             // [M, nblk] block scale dx
    float *s;             // [M, nblk] exact f32 sum of x over the block
    float *t;             // [M, nblk] dx * sum(xq) over the block
    int16_t *bs;          // [M, K/16] sum(xq) per 16 values (Q6_K), or NULL
    float *sg, *ug;       // [M, K/group] MLX4: sum(x), 8*(sum(x) - sum(t)) per group; or NULL
    float *dp;            // [M, K/256, 8] MLX4 group >= 64: dx of blocks {0,2,4,6,1,3,5,7} per 256; or NULL
} cpu_xq;

/* Describes the weight for a kernel. */
typedef struct cpu_wdesc {
    const uint8_t *data; /* row r at data + r*row_bytes */
    int64_t row_bytes, K;
    const uint8_t *scales, *biases; /* MLX only, row r group g at index r*(K/group)+g */
    mlxn_dtype sdt;
    int group;
} cpu_wdesc;

/* AVX2 (+FMA, F16C) kernels; defined only on x86-64. */
int mlxn_cpu_avx2_quantize_x(cpu_qkind kind, const float *x /* [M, K], any alignment */, int64_t M, int64_t K,
                             int group, cpu_xq *xq);
/* y[r*ys] for r in [0, nr) (nr <= 4) = dot of weight row `row` with x rows m0..m0+nr-1. */
void mlxn_cpu_avx2_dot_q(cpu_qkind kind, const cpu_wdesc *w, int64_t row, const cpu_xq *xq, int64_t m0, int nr,
                         float *out /* [nr] */);
/* MLX affine 2/3/5/6-bit: codes [K] = the unpacked codes of weight row `row`. */
void mlxn_cpu_avx2_dot_codes(const cpu_wdesc *w, int64_t row, const uint8_t *codes, const cpu_xq *xq, int64_t m0, int nr,
                             int bits, float *out);
/* Unpack the first codes of an LSB-first stream (bits 3 or 6; else none) to
 * bytes without reading past p + n*bits/8; returns how many were done
 * (a multiple of 32); the caller unpacks the rest. */
int64_t mlxn_cpu_avx2_unpack_codes(const uint8_t *p, int64_t n, int bits, uint8_t *q);
/* Dense rows: out[r] = dot(w row, x row m0+r), w dtype f32/f16/bf16; x rows are f32 with stride K. */
void mlxn_cpu_avx2_dot_dense(mlxn_dtype wt, const uint8_t *wrow, const float *x, int64_t K, int nr, float *out);
/* out[r] = dot(a, x row r) in f32 (a, x aligned or not). */
void mlxn_cpu_avx2_dot_f32(const float *a, const float *x, int64_t K, int nr, float *out);

/* f32-activation AVX2 kernels (cpu_matmul_f32act.c; x86-64 only): weights are
 * decoded in registers and dotted with f32 x, no activation quantization.
 * Supported: CPU_Q_Q4_0, CPU_Q_Q4_1, CPU_Q_Q8_0, CPU_Q_MLX4, CPU_Q_MLX8. */
int mlxn_cpu_f32act_supported(cpu_qkind kind);
/* out[r] = dot(weight row `row`, x row r) for r in [0, nr), nr <= 4; x rows are
 * f32 with stride w->K, any alignment. */
void mlxn_cpu_f32act_dot(cpu_qkind kind, const cpu_wdesc *w, int64_t row, const float *x, int nr, float *out /* [nr] */);
/* Weight rows row0..row0+nrows-1 decoded to f32 into dst [nrows, K] (for M > 4:
 * decode once, then mlxn_cpu_avx2_dot_f32 per tile of activation rows). */
void mlxn_cpu_f32act_dequant_rows(cpu_qkind kind, const cpu_wdesc *w, int64_t row0, int64_t nrows, float *dst);

#endif
