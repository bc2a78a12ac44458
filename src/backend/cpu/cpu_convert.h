/* cpu_convert.h — bulk conversions between f32 and the half types (f16,
 * bf16) for the CPU kernels: widen n elements to f32, narrow n f32 values
 * with round-to-nearest-even. Results are bit-identical to the scalar
 * mlxn_f32_to_f16 / mlxn_f32_to_bf16 (NaN: quiet bit set, payload kept);
 * F16C / AVX2 paths are chosen at run time. */
#ifndef MLXN_CPU_CONVERT_H
#define MLXN_CPU_CONVERT_H

#include "backend/cpu/cpu_backend.h"

/* dst[j] = element (i0 + j) of src (dtype t: f32, f16 or bf16), j < n. */
void mlxn_cpu_widen(const void *src, mlxn_dtype t, int64_t i0, int64_t n, float *dst);
/* element (i0 + j) of dst (dtype t) = src[j] rounded, j < n. */
void mlxn_cpu_narrow(const float *src, void *dst, mlxn_dtype t, int64_t i0, int64_t n);

#endif
