/* ops_common.h — shared argument validation for the public op entry points
 * in src/ops/: NULL checks, device membership, dtype and shape checks,
 * aliasing rules. Every helper sets a message that starts with the op's name
 * and names the offending argument and values, and returns the status to pass
 * straight back to the caller (MLXN_OK when the check passes). */
#ifndef MLXN_OPS_COMMON_H
#define MLXN_OPS_COMMON_H

#include "core/internal.h"

/* The session is non-NULL. */
mlxn_status mlxn_opv_session(const char *op, const mlxn_session *s);
/* b is non-NULL, lives on the session's device and has no zero dim. */
mlxn_status mlxn_opv_buf(const char *op, const mlxn_session *s, const char *name, const mlxn_buffer *b);
/* Like mlxn_opv_buf, but NULL is accepted (optional argument). */
mlxn_status mlxn_opv_opt_buf(const char *op, const mlxn_session *s, const char *name, const mlxn_buffer *b);
/* b's dtype is f32, f16 or bf16. */
mlxn_status mlxn_opv_float(const char *op, const char *name, const mlxn_buffer *b);
/* b's dtype is exactly `want`. */
mlxn_status mlxn_opv_dtype(const char *op, const char *name, const mlxn_buffer *b, mlxn_dtype want);
/* a and b have the same dtype. */
mlxn_status mlxn_opv_same_dtype(const char *op, const char *na, const mlxn_buffer *a, const char *nb,
                                const mlxn_buffer *b);
/* a and b have identical shapes (ndim and every dim). */
mlxn_status mlxn_opv_same_shape(const char *op, const char *na, const mlxn_buffer *a, const char *nb,
                                const mlxn_buffer *b);
/* b has exactly `ndim` dims. */
mlxn_status mlxn_opv_ndim(const char *op, const char *name, const mlxn_buffer *b, int ndim);
/* b has at least one dim. */
mlxn_status mlxn_opv_min_ndim(const char *op, const char *name, const mlxn_buffer *b, int ndim);
/* b is a vector of n elements (any ndim whose element count is n: a flat
 * [n], or e.g. [1, n]); `what` describes the expected meaning of n. */
mlxn_status mlxn_opv_numel(const char *op, const char *name, const mlxn_buffer *b, int64_t n, const char *what);
/* b is exactly `ndim`-D with the given shape; `expect_desc` explains it, e.g. "[T, Hq, D]". */
mlxn_status mlxn_opv_shape(const char *op, const char *name, const mlxn_buffer *b, int ndim, const int64_t *shape,
                           const char *expect_desc);
/* Byte ranges of out and in must not overlap, except (allow_exact) when they
 * are the same bytes (same storage, offset and size). NULL buffers pass. */
mlxn_status mlxn_opv_alias(const char *op, const char *nout, const mlxn_buffer *out, const char *nin,
                           const mlxn_buffer *in, int allow_exact);

/* 1 if a and b share any byte. */
int mlxn_buffers_overlap(const mlxn_buffer *a, const mlxn_buffer *b);

/* Argument checks shared by an op and the fused ops built on it (op names the
 * caller in messages). */
mlxn_status mlxn_rope_check(const char *op, mlxn_session *s, const mlxn_buffer *x, const mlxn_buffer *positions,
                            const mlxn_rope_params *p, const mlxn_buffer *y, int *rot_out);
mlxn_status mlxn_kv_append_check(const char *op, mlxn_session *s, const mlxn_buffer *src, const mlxn_buffer *positions,
                                 int ring, const mlxn_buffer *cache);

/* 1 when the session's backend runs this validated optional fused op
 * (MATMUL_FUSED, ROPE_KV_ATTENTION) as one kernel: it has the op and its
 * fusable() says yes; else the op layer runs the op's parts. */
int mlxn_op_native(mlxn_session *s, const mlxn_op *o);

#endif
