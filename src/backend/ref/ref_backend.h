/* ref_backend.h — the reference backend ("ref" device): naive scalar loops
 * with double accumulation, no threads, no SIMD, no cleverness. It is the
 * oracle every other backend is tested against, and is itself checked
 * against MLX / gguf golden fixtures. Memory is plain host memory. */
#ifndef MLXN_REF_BACKEND_H
#define MLXN_REF_BACKEND_H

#include "core/internal.h"

#define MLXN_REF_OP(name) mlxn_status mlxn_ref_##name(mlxn_session *s, const mlxn_op *op)
MLXN_REF_OP(add); MLXN_REF_OP(mul); MLXN_REF_OP(scale); MLXN_REF_OP(silu); MLXN_REF_OP(gelu);
MLXN_REF_OP(silu_mul); MLXN_REF_OP(gelu_mul); MLXN_REF_OP(softcap); MLXN_REF_OP(cast);
MLXN_REF_OP(rms_norm); MLXN_REF_OP(rms_norm_residual); MLXN_REF_OP(layer_norm); MLXN_REF_OP(l2_norm);
MLXN_REF_OP(rope); MLXN_REF_OP(softmax); MLXN_REF_OP(argmax); MLXN_REF_OP(topk);
MLXN_REF_OP(embedding); MLXN_REF_OP(matmul); MLXN_REF_OP(dequantize);
MLXN_REF_OP(attention); MLXN_REF_OP(kv_append); MLXN_REF_OP(im2col_2d_3ch); MLXN_REF_OP(copy);

#endif
