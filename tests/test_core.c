/* test_core.c — the core runtime: status/error reporting, dtype conversions,
 * device open by name, buffers (alloc, views, upload/download, wrap,
 * refcounts), the scratch pool, sessions, graph record/replay on the CPU
 * op list, and weight creation validation. */
#include "testutil.h"
#include "core/internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static void test_status_and_errors(void) {
    mlxn_device *d = NULL;
    CHECK_ERR(mlxn_device_open("tpu", NULL, &d), MLXN_ERR_INVALID_ARG, "unknown device 'tpu'");
    CHECK(d == NULL);
    CHECK_ERR(mlxn_device_open("cuda:x", NULL, &d), MLXN_ERR_INVALID_ARG, "bad device name 'cuda:x'");
    CHECK(strcmp(mlxn_status_name(MLXN_ERR_SHAPE), "MLXN_ERR_SHAPE") == 0);
    mlxn_clear_error();
    CHECK(mlxn_last_error()[0] == 0);
}

static void test_f16_bf16_conversions(void) {
    /* exhaustive f16 round trip: every finite half converts to f32 and back unchanged */
    for (uint32_t h = 0; h < 0x10000; h++) {
        float f = mlxn_f16_to_f32((uint16_t)h);
        if (isnan(f)) { CHECK(isnan(mlxn_f16_to_f32(mlxn_f32_to_f16(f)))); continue; }
        if (mlxn_f32_to_f16(f) != (uint16_t)h) { CHECK_MSG(0, "f16 0x%04x -> %g -> 0x%04x", h, f, mlxn_f32_to_f16(f)); break; }
    }
    CHECK(mlxn_f32_to_f16(1.0f) == 0x3c00);
    CHECK(mlxn_f32_to_f16(65504.0f) == 0x7bff);
    CHECK(mlxn_f32_to_f16(65520.0f) == 0x7c00);          /* rounds to inf */
    CHECK(mlxn_f32_to_f16(1.0f + 1.0f / 2048) == 0x3c00); /* tie to even (down) */
    CHECK(mlxn_f32_to_f16(1.0f + 3.0f / 2048) == 0x3c02); /* tie to even (up) */
    CHECK(mlxn_f32_to_f16(5.960464477539063e-08f) == 0x0001); /* smallest subnormal */
    CHECK(mlxn_f32_to_f16(2.98e-08f) == 0x0000 || mlxn_f32_to_f16(2.98e-08f) == 0x0001);
    CHECK(mlxn_f32_to_bf16(1.0f) == 0x3f80);
    CHECK(mlxn_f32_to_bf16(1.00390625f) == 0x3f80);      /* tie to even (down) */
    CHECK(mlxn_f32_to_bf16(1.01171875f) == 0x3f82);      /* tie to even (up) */
    CHECK(isnan(mlxn_bf16_to_f32(mlxn_f32_to_bf16(NAN))));
    for (uint32_t b = 0; b < 0x10000; b += 7) {
        float f = mlxn_bf16_to_f32((uint16_t)b);
        if (!isnan(f)) CHECK(mlxn_f32_to_bf16(f) == (uint16_t)b);
    }
}

static void test_buffers(void) {
    mlxn_device *d;
    CHECK_OK(mlxn_device_open("cpu", NULL, &d));
    if (!d) return;
    CHECK(strcmp(mlxn_device_kind(d), "cpu") == 0);
    int64_t shape[2] = {3, 5};
    mlxn_buffer *b;
    CHECK_OK(mlxn_buffer_alloc(d, MLXN_F32, 2, shape, &b));
    CHECK(mlxn_buffer_numel(b) == 15 && mlxn_buffer_nbytes(b) == 60);
    CHECK(mlxn_buffer_dim(b, -1) == 5 && mlxn_buffer_dim(b, 0) == 3 && mlxn_buffer_dim(b, 2) == -1);
    float src[15], dst[15];
    for (int i = 0; i < 15; i++) src[i] = (float)i + 0.5f;
    CHECK_OK(mlxn_buffer_upload(b, 0, src, sizeof src));
    CHECK_OK(mlxn_buffer_download(b, 0, dst, sizeof dst));
    CHECK(memcmp(src, dst, sizeof src) == 0);
    CHECK_ERR(mlxn_buffer_upload(b, 8, src, sizeof src), MLXN_ERR_RANGE, "60 bytes at offset 8 exceed the 60-byte buffer");
    /* view of row 1 */
    mlxn_buffer *v;
    int64_t vs[1] = {5};
    CHECK_OK(mlxn_buffer_view(b, 20, MLXN_F32, 1, vs, &v));
    float row[5];
    CHECK_OK(mlxn_buffer_download(v, 0, row, sizeof row));
    CHECK(row[0] == 5.5f && row[4] == 9.5f);
    mlxn_buffer *bad = (mlxn_buffer *)1;
    int64_t big[1] = {11};
    CHECK_ERR(mlxn_buffer_view(b, 20, MLXN_F32, 1, big, &bad), MLXN_ERR_RANGE, "exceeds the 60-byte buffer");
    CHECK(bad == NULL);
    mlxn_buffer_release(b); /* the view keeps the storage alive */
    CHECK_OK(mlxn_buffer_download(v, 0, row, sizeof row));
    CHECK(row[1] == 6.5f);
    mlxn_buffer_release(v);
    /* bad shapes */
    int64_t neg[2] = {2, -1};
    CHECK_ERR(mlxn_buffer_alloc(d, MLXN_F32, 2, neg, &b), MLXN_ERR_SHAPE, "dim 1 is negative (-1)");
    int64_t huge[3] = {INT64_MAX / 2, 4, 4};
    CHECK_ERR(mlxn_buffer_alloc(d, MLXN_F32, 3, huge, &b), MLXN_ERR_SHAPE, "overflows");
    CHECK_ERR(mlxn_buffer_alloc(d, MLXN_F32, 5, shape, &b), MLXN_ERR_SHAPE, "ndim 5 outside [0, 4]");
    /* wrap: alignment enforced, release callback runs */
    static int released;
    released = 0;
    char *mem = malloc(64);
    mlxn_buffer *w;
    int64_t ws[1] = {4};
    CHECK_ERR(mlxn_buffer_wrap_host(d, mem + 1, MLXN_F32, 1, ws, NULL, NULL, &w), MLXN_ERR_INVALID_ARG, "not aligned");
    void rel(void *p);
    CHECK_OK(mlxn_buffer_wrap_host(d, mem, MLXN_F32, 1, ws, rel, &released, &w));
    CHECK(mlxn_buffer_host_ptr(w) == mem);
    mlxn_buffer_release(w);
    CHECK(released == 1);
    free(mem);
    size_t in_use, peak;
    mlxn_device_memory(d, &in_use, &peak);
    CHECK(in_use == 0 && peak >= 60);
    mlxn_device_close(d);
}
void rel(void *p) { (*(int *)p)++; }

static void test_pool(void) {
    mlxn_device *d;
    CHECK_OK(mlxn_device_open("cpu", NULL, &d));
    mlxn_pool *p;
    CHECK_OK(mlxn_pool_create(d, &p));
    int64_t s1[1] = {100}, s2[1] = {1000};
    mlxn_buffer *a, *b, *c;
    CHECK_OK(mlxn_pool_alloc(p, MLXN_F32, 1, s1, &a));
    CHECK_OK(mlxn_pool_alloc(p, MLXN_F32, 1, s1, &b));
    CHECK(mlxn_buffer_host_ptr(a) != mlxn_buffer_host_ptr(b));
    size_t reserved = mlxn_pool_reserved_bytes(p);
    CHECK(reserved == 2 * 512);
    void *pa = mlxn_buffer_host_ptr(a);
    mlxn_buffer_release(a);
    mlxn_buffer_release(b);
    mlxn_pool_reset(p);
    CHECK_OK(mlxn_pool_alloc(p, MLXN_F32, 1, s1, &c));
    CHECK(mlxn_buffer_host_ptr(c) == pa); /* recycled */
    CHECK(mlxn_pool_reserved_bytes(p) == reserved);
    mlxn_buffer_release(c);
    CHECK_OK(mlxn_pool_alloc(p, MLXN_F32, 1, s2, &c));
    CHECK(mlxn_pool_reserved_bytes(p) == reserved + 4096);
    mlxn_pool_destroy(p); /* c keeps its block alive */
    float x[1000] = {1};
    CHECK_OK(mlxn_buffer_upload(c, 0, x, sizeof x));
    mlxn_buffer_release(c);
    mlxn_device_close(d);
}

static void test_session_and_graph(void) {
    mlxn_device *d;
    CHECK_OK(mlxn_device_open("cpu", NULL, &d));
    mlxn_session *s;
    CHECK_OK(mlxn_session_begin(d, &s));
    int64_t sh[1] = {7};
    mlxn_buffer *x, *y;
    CHECK_OK(mlxn_buffer_alloc(d, MLXN_F32, 1, sh, &x));
    CHECK_OK(mlxn_buffer_alloc(d, MLXN_F32, 1, sh, &y));
    float v[7] = {1, 2, 3, 4, 5, 6, 7}, out[7];
    CHECK_OK(mlxn_buffer_upload(x, 0, v, sizeof v));
    mlxn_graph *g = NULL;
    CHECK_OK(mlxn_graph_begin_record(s));
    CHECK_ERR(mlxn_session_finish(s), MLXN_ERR_STATE, "being recorded");
    CHECK_OK(mlxn_scale(s, x, 2.0f, y));
    CHECK_OK(mlxn_add(s, y, x, y));
    CHECK_OK(mlxn_graph_end_record(s, &g));
    /* nothing ran while recording */
    CHECK_OK(mlxn_buffer_fill_bytes(y, 0));
    CHECK_OK(mlxn_session_finish(s));
    CHECK_OK(mlxn_buffer_download(y, 0, out, sizeof out));
    CHECK(out[3] == 0.0f);
    for (int rep = 1; rep <= 3; rep++) {
        for (int i = 0; i < 7; i++) v[i] = (float)(i * rep);
        CHECK_OK(mlxn_buffer_upload(x, 0, v, sizeof v));
        CHECK_OK(mlxn_graph_replay(s, g));
        CHECK_OK(mlxn_session_finish(s));
        CHECK_OK(mlxn_buffer_download(y, 0, out, sizeof out));
        for (int i = 0; i < 7; i++) CHECK(out[i] == 3.0f * (float)(i * rep));
    }
    mlxn_buffer_release(x); /* the graph retains its buffers */
    mlxn_buffer_release(y);
    CHECK_OK(mlxn_graph_replay(s, g));
    mlxn_graph_destroy(g);
    CHECK_ERR(mlxn_graph_end_record(s, &g), MLXN_ERR_STATE, "not recording");
    mlxn_session_destroy(s);
    mlxn_device_close(d);
}

/* mapped buffers (on the CPU: ordinary host buffers with a host view) and
 * the copy op, in a recorded graph as the runner uses them: the host writes
 * the mapped words, the graph copies them in, works, copies a result out */
static void test_mapped_and_copy(void) {
    mlxn_device *d;
    CHECK_OK(mlxn_device_open("cpu", NULL, &d));
    if (!d) return;
    int64_t three = 3, one = 1, four = 4;
    mlxn_buffer *io = NULL, *in = NULL, *out = NULL, *x = NULL, *y = NULL;
    CHECK_OK(mlxn_buffer_alloc_mapped(d, MLXN_I32, 1, &three, &io));
    int32_t *h = io ? mlxn_buffer_host_ptr(io) : NULL;
    CHECK(h != NULL);
    if (!h) { mlxn_buffer_release(io); mlxn_device_close(d); return; }
    CHECK_OK(mlxn_buffer_view(io, 0, MLXN_I32, 1, &one, &in));
    CHECK_OK(mlxn_buffer_view(io, 8, MLXN_I32, 1, &one, &out));
    CHECK(mlxn_buffer_host_ptr(out) == (void *)(h + 2));
    CHECK_OK(mlxn_buffer_alloc(d, MLXN_I32, 1, &one, &x));
    CHECK_OK(mlxn_buffer_alloc(d, MLXN_F32, 1, &four, &y));
    mlxn_session *s = NULL;
    CHECK_OK(mlxn_session_begin(d, &s));
    mlxn_graph *g = NULL;
    CHECK_OK(mlxn_graph_begin_record(s));
    CHECK_OK(mlxn_copy(s, in, x));
    CHECK_OK(mlxn_copy(s, x, out));
    CHECK_OK(mlxn_graph_end_record(s, &g));
    for (int rep = 0; rep < 3; rep++) {
        h[0] = 1000 + rep;
        CHECK_OK(mlxn_graph_replay(s, g));
        CHECK_OK(mlxn_session_finish(s));
        CHECK(h[2] == 1000 + rep);
    }
    CHECK_ERR(mlxn_copy(s, in, y), MLXN_ERR_DTYPE, "copy: dst dtype f32 differs from src dtype i32");
    CHECK_ERR(mlxn_copy(s, x, io), MLXN_ERR_SHAPE, "copy: dst has 3 elements");
    CHECK_ERR(mlxn_copy(s, io, io), MLXN_ERR_INVALID_ARG, "copy: dst");
    mlxn_graph_destroy(g);
    mlxn_session_destroy(s);
    mlxn_buffer_release(io); /* the views keep the storage */
    CHECK(h[2] == 1002);
    mlxn_buffer_release(in);
    mlxn_buffer_release(out);
    mlxn_buffer_release(x);
    mlxn_buffer_release(y);
    CHECK_ERR(mlxn_buffer_alloc_mapped(d, MLXN_F32, 1, (int64_t[]){-2}, &io), MLXN_ERR_SHAPE, "dim 0 is negative");
    mlxn_device_close(d);
}

static void test_weight_validation(void) {
    mlxn_device *d;
    CHECK_OK(mlxn_device_open("cpu", NULL, &d));
    int64_t s_data[1] = {64 * 8 / 4}, s_sc[1] = {8};
    mlxn_buffer *data, *sc, *bi, *sc16;
    CHECK_OK(mlxn_buffer_alloc(d, MLXN_U32, 1, s_data, &data)); /* 4 rows x 64 cols x 4 bits... */
    CHECK_OK(mlxn_buffer_alloc(d, MLXN_F32, 1, s_sc, &sc));
    CHECK_OK(mlxn_buffer_alloc(d, MLXN_F32, 1, s_sc, &bi));
    CHECK_OK(mlxn_buffer_alloc(d, MLXN_F16, 1, s_sc, &sc16));
    mlxn_weight_desc wd = {.format = MLXN_WEIGHT_MLX_AFFINE, .rows = 8, .cols = 64, .data = data, .scales = sc,
                           .biases = bi, .bits = 4, .group_size = 64, .name = "layers.0.q_proj"};
    mlxn_weight *w;
    CHECK_OK(mlxn_weight_create(&wd, &w));
    CHECK(mlxn_weight_nbytes(w) == 8 * 32 + 2 * 8 * 4);
    mlxn_weight_destroy(w);
    wd.bits = 7;
    CHECK_ERR(mlxn_weight_create(&wd, &w), MLXN_ERR_UNSUPPORTED, "'layers.0.q_proj': MLX affine bits 7");
    wd.bits = 4;
    wd.group_size = 48;
    CHECK_ERR(mlxn_weight_create(&wd, &w), MLXN_ERR_UNSUPPORTED, "group_size 48");
    wd.group_size = 32; /* needs 16 scales */
    CHECK_ERR(mlxn_weight_create(&wd, &w), MLXN_ERR_SHAPE, "scales buffer holds 32 bytes, expected 64");
    wd.group_size = 64;
    wd.biases = sc16;
    CHECK_ERR(mlxn_weight_create(&wd, &w), MLXN_ERR_DTYPE, "biases dtype f16 differs from scales dtype f32");
    wd.biases = bi;
    wd.rows = 16;
    CHECK_ERR(mlxn_weight_create(&wd, &w), MLXN_ERR_SHAPE, "expected");
    mlxn_weight_desc gd = {.format = MLXN_WEIGHT_GGUF, .rows = 2, .cols = 48, .data = data, .gguf_type = MLXN_GGUF_Q4_0, .name = "t"};
    CHECK_ERR(mlxn_weight_create(&gd, &w), MLXN_ERR_SHAPE, "cols 48 is not a multiple of the Q4_0 block size 32");
    gd.gguf_type = (mlxn_gguf_type)99;
    CHECK_ERR(mlxn_weight_create(&gd, &w), MLXN_ERR_UNSUPPORTED, "GGUF type unknown (99)");
    mlxn_buffer_release(data);
    mlxn_buffer_release(sc);
    mlxn_buffer_release(bi);
    mlxn_buffer_release(sc16);
    mlxn_device_close(d);
}

static void test_threads_option(void) {
    mlxn_device_opts o = {.n_threads = 3};
    mlxn_device *d;
    CHECK_OK(mlxn_device_open("cpu", &o, &d));
    CHECK(t_contains(mlxn_device_description(d), "3 threads"));
    mlxn_device_close(d);
    CHECK_OK(mlxn_device_open("auto", NULL, &d)); /* no GPU here: falls back to the CPU */
    CHECK(d != NULL);
    mlxn_device_close(d);
    mlxn_device_close(NULL);
}

int main(void) {
    T_RUN(test_status_and_errors);
    T_RUN(test_f16_bf16_conversions);
    T_RUN(test_buffers);
    T_RUN(test_pool);
    T_RUN(test_session_and_graph);
    T_RUN(test_mapped_and_copy);
    T_RUN(test_weight_validation);
    T_RUN(test_threads_option);
    return t_finish();
}
