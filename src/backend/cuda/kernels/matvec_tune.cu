// matvec_tune.cu — M=1 tuning variants of the matvec kernels, compiled only
// when env MLXN_CUDA_MV_VARIANT asks for one (bench_cuda_ops's "mvsweep"), so
// the kernels the runtime uses (matvec.cu) stay quick to compile. mvx_<fmt>_<v>
// are matvec.cu's bodies with other (threads per row group NT, rows RW,
// chunks in flight UNR, min blocks per SM, scale prefetch PF); software-
// pipelined variants were measured slower and removed;
// cuda_ops_matvec.c's table lists the same ids and rows per block. The
// H100 sweep that chose matvec.cu's b1 shape (variant r) is in BENCHMARKS.md.
#include "matvec.cu"

#define MVX_SET(V, NT, RW, UNR, MINB, PF)                                       \
    MVX(mvx_mlx4_##V, MINB, mv_mlx_body, 4, 1, RW, NT, UNR, PF, 1)               \
    MVX(mvx_q4_0_##V, MINB, mv_q8blk_body, GG_Q4_0, 1, RW, NT, UNR)              \
    MVX(mvx_q4_1_##V, MINB, mv_q8blk_body, GG_Q4_1, 1, RW, NT, UNR)
MVX_SET(d, 128, 8, 1, 1, 1)
MVX_SET(l, 128, 16, 1, 1, 1)
MVX_SET(r, 128, 8, 1, 4, 1)
MVX_SET(y, 128, 16, 1, 2, 1)
