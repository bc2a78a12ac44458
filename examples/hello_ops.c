/* hello_ops.c — the README's API example: open a device, quantize a weight
 * to MLX 4-bit, run RMSNorm then a quantized matmul in one session, and
 * print the result next to a plain-float reference. Built and run by CI. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include "mlxn.h"

#define CHECK(call) do { mlxn_status s_ = (call); if (s_ != MLXN_OK) { \
    fprintf(stderr, "%s failed: %s\n", #call, mlxn_last_error()); return 1; } } while (0)

int main(void) {
    enum { K = 256, N = 4 };
    mlxn_device *dev;
    CHECK(mlxn_device_open("auto", NULL, &dev)); /* CUDA if usable, else the CPU */
    printf("device: %s\n", mlxn_device_description(dev));

    /* W [N, K] float -> MLX affine 4-bit, group 64, f32 scales/biases */
    static float w[N * K], x[K];
    for (int i = 0; i < N * K; i++) w[i] = sinf(0.37f * (float)i);
    for (int i = 0; i < K; i++) x[i] = cosf(0.11f * (float)i);
    static uint8_t packed[N * K / 2];
    static float scales[N * K / 64], biases[N * K / 64];
    CHECK(mlxn_quantize_affine(w, N, K, 4, 64, MLXN_F32, packed, scales, biases));

    int64_t sx[2] = {1, K}, sy[2] = {1, N}, sp[1] = {N * K / 8}, ss[1] = {N * K / 64};
    mlxn_buffer *bx, *bn, *by, *bp, *bs, *bb;
    CHECK(mlxn_buffer_alloc(dev, MLXN_F32, 2, sx, &bx));
    CHECK(mlxn_buffer_alloc(dev, MLXN_F32, 2, sx, &bn));
    CHECK(mlxn_buffer_alloc(dev, MLXN_F32, 2, sy, &by));
    CHECK(mlxn_buffer_alloc(dev, MLXN_U32, 1, sp, &bp));
    CHECK(mlxn_buffer_alloc(dev, MLXN_F32, 1, ss, &bs));
    CHECK(mlxn_buffer_alloc(dev, MLXN_F32, 1, ss, &bb));
    CHECK(mlxn_buffer_upload(bx, 0, x, sizeof x));
    CHECK(mlxn_buffer_upload(bp, 0, packed, sizeof packed));
    CHECK(mlxn_buffer_upload(bs, 0, scales, sizeof scales));
    CHECK(mlxn_buffer_upload(bb, 0, biases, sizeof biases));

    mlxn_weight_desc wd = {.format = MLXN_WEIGHT_MLX_AFFINE, .rows = N, .cols = K, .data = bp,
                           .scales = bs, .biases = bb, .bits = 4, .group_size = 64, .name = "demo"};
    mlxn_weight *wq;
    CHECK(mlxn_weight_create(&wd, &wq));

    mlxn_session *s;
    CHECK(mlxn_session_begin(dev, &s));
    CHECK(mlxn_rms_norm(s, bx, NULL, 1e-5f, bn)); /* ops are queued ... */
    CHECK(mlxn_matmul(s, bn, wq, by));
    CHECK(mlxn_session_finish(s));                /* ... and waited for once */

    float y[N];
    CHECK(mlxn_buffer_download(by, 0, y, sizeof y));
    /* references: the dequantized 4-bit weight (what the kernel computes) and
     * the original float weight (the difference is quantization error) */
    static float wdq[N * K];
    CHECK(mlxn_dequantize_affine(packed, scales, biases, MLXN_F32, N, K, 4, 64, wdq));
    double ms = 0;
    for (int k = 0; k < K; k++) ms += (double)x[k] * x[k];
    double inv = 1.0 / sqrt(ms / K + 1e-5);
    int ok = 1;
    for (int n = 0; n < N; n++) {
        double ref_q = 0, ref_f = 0;
        for (int k = 0; k < K; k++) {
            ref_q += x[k] * inv * wdq[n * K + k];
            ref_f += x[k] * inv * w[n * K + k];
        }
        printf("y[%d] = %9.4f   dequantized-weight reference %9.4f   float-weight reference %9.4f\n", n, y[n],
               ref_q, ref_f);
        if (fabs(y[n] - ref_q) > 1e-3 * (1 + fabs(ref_q))) ok = 0;
    }
    mlxn_session_destroy(s);
    mlxn_weight_destroy(wq);
    mlxn_buffer_release(bx); mlxn_buffer_release(bn); mlxn_buffer_release(by);
    mlxn_buffer_release(bp); mlxn_buffer_release(bs); mlxn_buffer_release(bb);
    mlxn_device_close(dev);
    printf(ok ? "matches the dequantized reference\n" : "MISMATCH\n");
    return ok ? 0 : 1;
}
