/* test_quant.c — quantization codecs and the weight ops (matmul, embedding,
 * dequantize). Part 1 checks the host codecs against golden fixtures made by
 * MLX itself (mx.quantize / mx.dequantize / mx.quantized_matmul at every
 * bits x group_size x scale dtype, negative scales included) and by the gguf
 * package (dequantizers for 10 block types, Q4_0/Q8_0 quantizers); see
 * scripts/gen_quant_fixtures.py. Part 2 runs the "cpu" device against the
 * "ref" device through the public API for every weight format and
 * M in {1, 3, 8, 33}, odd N, outputs poisoned with 0xFF before each run.
 * The CPU's int8-activation fast paths (Q4_0, Q4_1, Q8_0, Q4_K, Q5_K, Q6_K,
 * all MLX affine widths) are held to NMSE <= 1e-4 vs the f64 reference; every other path
 * (dense, dequantize-then-dot) to 1e-10. Part 3 checks bad arguments. */
#include "testutil.h"
#include "backend/cpu/cpu_backend.h" /* mlxn_cpu_detect_features */

#include <math.h>
#include <stdlib.h>
#include <string.h>

static mlxn_device *g_cpu, *g_ref;


/* ---------------------------------------------------------------- helpers */

static float src_to_f32(const uint8_t *p, mlxn_dtype t, size_t i) {
    if (t == MLXN_F32) { float f; memcpy(&f, p + 4 * i, 4); return f; }
    uint16_t h;
    memcpy(&h, p + 2 * i, 2);
    return t == MLXN_F16 ? mlxn_f16_to_f32(h) : mlxn_bf16_to_f32(h);
}

static const char *dt_name(mlxn_dtype t) { return t == MLXN_F32 ? "f32" : t == MLXN_F16 ? "f16" : "bf16"; }

/* ---------------------------------------------------------------- part 1: codecs vs MLX */

static void test_affine_fixtures(void) {
    const int bits_list[] = {2, 3, 4, 5, 6, 8}, gs_list[] = {32, 64, 128};
    const mlxn_dtype dts[] = {MLXN_F32, MLXN_F16, MLXN_BF16};
    const int R = 4, C = 256, M = 3;
    int cases = 0, neg_scales = 0;
    for (int bi = 0; bi < 6; bi++)
        for (int gi = 0; gi < 3; gi++)
            for (int di = 0; di < 3; di++) {
                const int bits = bits_list[bi], gs = gs_list[gi];
                const mlxn_dtype dt = dts[di];
                char rel[128], what[160];
                snprintf(rel, sizeof rel, "quant/affine_b%d_g%d_%s.bin", bits, gs, dt_name(dt));
                size_t len;
                uint8_t *blob = t_read_file(t_data_path(rel), &len);
                CHECK_MSG(blob != NULL, "missing fixture %s", rel);
                if (!blob) continue;
                const size_t es = mlxn_dtype_size(dt), ng = (size_t)R * C / gs, pb = (size_t)R * C * bits / 8;
                const size_t o_w = 0, o_p = o_w + (size_t)R * C * es, o_s = o_p + pb, o_b = o_s + ng * es,
                             o_d = o_b + ng * es, o_x = o_d + (size_t)R * C * 4, o_y = o_x + (size_t)M * C * 4,
                             total = o_y + (size_t)M * R * 4;
                CHECK_MSG(len == total, "%s: %zu bytes, expected %zu", rel, len, total);
                if (len != total) { free(blob); continue; }
                float *w = malloc((size_t)R * C * 4), *deq = malloc((size_t)R * C * 4);
                uint8_t *packed = malloc(pb), *sc = malloc(ng * es), *bs = malloc(ng * es);
                for (size_t i = 0; i < (size_t)R * C; i++) w[i] = src_to_f32(blob + o_w, dt, i);
                for (size_t i = 0; i < ng; i++) neg_scales += src_to_f32(blob + o_s, dt, i) < 0.0f;
                /* quantize: byte-identical to mx.quantize */
                CHECK_OK(mlxn_quantize_affine(w, R, C, bits, gs, dt, packed, sc, bs));
                snprintf(what, sizeof what, "%s packed", rel);
                t_check_bytes(what, packed, blob + o_p, pb);
                snprintf(what, sizeof what, "%s scales", rel);
                t_check_bytes(what, sc, blob + o_s, ng * es);
                snprintf(what, sizeof what, "%s biases", rel);
                t_check_bytes(what, bs, blob + o_b, ng * es);
                /* dequantize the fixture's triple: = mx.dequantize (f32 scale*q+bias) */
                CHECK_OK(mlxn_dequantize_affine(blob + o_p, blob + o_s, blob + o_b, dt, R, C, bits, gs, deq));
                float *dref = malloc((size_t)R * C * 4);
                memcpy(dref, blob + o_d, (size_t)R * C * 4);
                snprintf(what, sizeof what, "%s dequantize", rel);
                t_check_nmse(what, deq, dref, (size_t)R * C, 1e-13);
                /* matmul through the ref and cpu devices vs mx.quantized_matmul */
                mlxn_device *devs[2] = {g_ref, g_cpu};
                for (int dv = 0; dv < 2; dv++) {
                    mlxn_device *d = devs[dv];
                    int64_t ps = (int64_t)pb, ss = (int64_t)ng, xs[2] = {M, C}, ys[2] = {M, R};
                    mlxn_buffer *bp = NULL, *bsb = NULL, *bbb = NULL, *bx = NULL, *by = NULL;
                    CHECK_OK(mlxn_buffer_alloc(d, MLXN_U8, 1, &ps, &bp));
                    CHECK_OK(mlxn_buffer_alloc(d, dt, 1, &ss, &bsb));
                    CHECK_OK(mlxn_buffer_alloc(d, dt, 1, &ss, &bbb));
                    CHECK_OK(mlxn_buffer_alloc(d, MLXN_F32, 2, xs, &bx));
                    CHECK_OK(mlxn_buffer_alloc(d, MLXN_F32, 2, ys, &by));
                    if (!bp || !bsb || !bbb || !bx || !by) break;
                    mlxn_buffer_upload(bp, 0, blob + o_p, pb);
                    mlxn_buffer_upload(bsb, 0, blob + o_s, ng * es);
                    mlxn_buffer_upload(bbb, 0, blob + o_b, ng * es);
                    mlxn_buffer_upload(bx, 0, blob + o_x, (size_t)M * C * 4);
                    mlxn_buffer_fill_bytes(by, 0xFF);
                    mlxn_weight_desc wd = {.format = MLXN_WEIGHT_MLX_AFFINE, .rows = R, .cols = C, .data = bp,
                                           .scales = bsb, .biases = bbb, .bits = bits, .group_size = gs, .name = rel};
                    mlxn_weight *wt = NULL;
                    mlxn_session *s = NULL;
                    CHECK_OK(mlxn_weight_create(&wd, &wt));
                    CHECK_OK(mlxn_session_begin(d, &s));
                    if (wt && s) {
                        CHECK_OK(mlxn_matmul(s, bx, wt, by));
                        CHECK_OK(mlxn_session_finish(s));
                        float got[12], yref[12];
                        mlxn_buffer_download(by, 0, got, sizeof got);
                        memcpy(yref, blob + o_y, sizeof yref);
                        snprintf(what, sizeof what, "%s quantized_matmul on %s", rel, mlxn_device_kind(d));
                        /* ref: f64 accumulation vs MLX f32; cpu: int8 activations */
                        double tol = dv == 0 ? 1e-10 : 1e-4;
                        t_check_nmse(what, got, yref, 12, tol);
                    }
                    mlxn_session_destroy(s);
                    mlxn_weight_destroy(wt);
                    mlxn_buffer_release(bp); mlxn_buffer_release(bsb); mlxn_buffer_release(bbb);
                    mlxn_buffer_release(bx); mlxn_buffer_release(by);
                }
                free(dref); free(w); free(deq); free(packed); free(sc); free(bs); free(blob);
                cases++;
            }
    CHECK_MSG(cases == 54, "ran %d of 54 affine fixture cases", cases);
    CHECK_MSG(neg_scales > 20, "fixtures hold only %d negative scales", neg_scales);
}

static const struct { const char *name; mlxn_gguf_type t; } g_gguf_types[] = {
    {"Q4_0", MLXN_GGUF_Q4_0}, {"Q4_1", MLXN_GGUF_Q4_1}, {"Q5_0", MLXN_GGUF_Q5_0}, {"Q5_1", MLXN_GGUF_Q5_1},
    {"Q8_0", MLXN_GGUF_Q8_0}, {"Q2_K", MLXN_GGUF_Q2_K}, {"Q3_K", MLXN_GGUF_Q3_K}, {"Q4_K", MLXN_GGUF_Q4_K},
    {"Q5_K", MLXN_GGUF_Q5_K}, {"Q6_K", MLXN_GGUF_Q6_K},
};

static void test_gguf_dequant_fixtures(void) {
    const int R = 4, C = 512;
    for (size_t i = 0; i < sizeof g_gguf_types / sizeof g_gguf_types[0]; i++) {
        char rel[64];
        snprintf(rel, sizeof rel, "quant/gguf_%s.bin", g_gguf_types[i].name);
        size_t len;
        uint8_t *blob = t_read_file(t_data_path(rel), &len);
        CHECK_MSG(blob != NULL, "missing fixture %s", rel);
        if (!blob) continue;
        int64_t bv, bb;
        mlxn_gguf_type_block(g_gguf_types[i].t, &bv, &bb);
        size_t nbytes = (size_t)(R * C / bv * bb);
        CHECK_MSG(len == nbytes + (size_t)R * C * 4, "%s: size %zu", rel, len);
        if (len != nbytes + (size_t)R * C * 4) { free(blob); continue; }
        float *out = malloc((size_t)R * C * 4), *ref = malloc((size_t)R * C * 4);
        memcpy(ref, blob + nbytes, (size_t)R * C * 4);
        CHECK_OK(mlxn_gguf_dequantize(g_gguf_types[i].t, blob, (int64_t)R * C, out));
        t_check_nmse(rel, out, ref, (size_t)R * C, 1e-12);
        free(out); free(ref); free(blob);
    }
}

static void test_gguf_quantize_fixtures(void) {
    const int R = 4, C = 256;
    const char *names[2] = {"Q4_0", "Q8_0"};
    mlxn_gguf_type ts[2] = {MLXN_GGUF_Q4_0, MLXN_GGUF_Q8_0};
    for (int i = 0; i < 2; i++) {
        char rel[64];
        snprintf(rel, sizeof rel, "quant/gguf_quant_%s.bin", names[i]);
        size_t len;
        uint8_t *blob = t_read_file(t_data_path(rel), &len);
        CHECK_MSG(blob != NULL, "missing fixture %s", rel);
        if (!blob) continue;
        int64_t bv, bb;
        mlxn_gguf_type_block(ts[i], &bv, &bb);
        size_t nbytes = (size_t)(R * C / bv * bb), xb = (size_t)R * C * 4;
        CHECK(len == xb + nbytes);
        if (len == xb + nbytes) {
            float *x = malloc(xb);
            uint8_t *q = malloc(nbytes);
            memcpy(x, blob, xb);
            CHECK_OK(mlxn_gguf_quantize(ts[i], x, (int64_t)R * C, q));
            t_check_bytes(rel, q, blob + xb, nbytes);
            free(x); free(q);
        }
        free(blob);
    }
}

/* Round trip: MLX quantize -> dequantize error is bounded by one step (half a
 * step inside the range; the end opposite the edge may be clamped after the
 * scale is snapped to edge/q0). */
static void test_affine_roundtrip_bound(void) {
    t_rng r;
    t_rng_seed(&r, 7);
    const int R = 3, C = 384;
    float *w = malloc(R * C * 4), *d = malloc(R * C * 4);
    t_fill(&r, w, R * C, -3.0f, 2.0f);
    for (int bits = 2; bits <= 8; bits++) {
        if (bits == 7) continue;
        uint8_t packed[3 * 384];
        float sc[3 * 384 / 32], bi[3 * 384 / 32];
        CHECK_OK(mlxn_quantize_affine(w, R, C, bits, 32, MLXN_F32, packed, sc, bi));
        CHECK_OK(mlxn_dequantize_affine(packed, sc, bi, MLXN_F32, R, C, bits, 32, d));
        int bad = 0;
        for (int i = 0; i < R * C; i++)
            if (fabsf(d[i] - w[i]) > 1.0001f * fabsf(sc[i / 32]) + 1e-6f) bad++;
        CHECK_MSG(bad == 0, "bits %d: %d elements off by more than one step", bits, bad);
    }
    free(w); free(d);
}

/* ---------------------------------------------------------------- part 2: cpu vs ref */

typedef struct wspec {
    char name[64];
    mlxn_weight_format fmt;
    mlxn_dtype dt;      /* dense dtype, or MLX scale dtype */
    int bits, group;
    mlxn_gguf_type gt;
    int64_t K;
    int int8_path;      /* cpu uses int8 activations */
} wspec;

/* Host bytes of a random weight [N, K] in the given format. */
typedef struct wbytes { uint8_t *data, *scales, *biases; size_t nd, ns; } wbytes;

static void make_weight_bytes(const wspec *sp, int64_t N, t_rng *r, wbytes *out) {
    memset(out, 0, sizeof *out);
    const int64_t K = sp->K;
    if (sp->fmt == MLXN_WEIGHT_DENSE) {
        size_t es = mlxn_dtype_size(sp->dt);
        out->nd = (size_t)(N * K) * es;
        out->data = malloc(out->nd);
        for (int64_t i = 0; i < N * K; i++) {
            float v;
            do { v = t_rng_uniform(r, -1.0f, 1.0f); } while (v == 0.0f);
            if (sp->dt == MLXN_F32) memcpy(out->data + 4 * i, &v, 4);
            else {
                uint16_t h = sp->dt == MLXN_F16 ? mlxn_f32_to_f16(v) : mlxn_f32_to_bf16(v);
                memcpy(out->data + 2 * i, &h, 2);
            }
        }
    } else if (sp->fmt == MLXN_WEIGHT_MLX_AFFINE) {
        float *w = malloc((size_t)(N * K) * 4);
        for (int64_t i = 0; i < N * K; i++) w[i] = t_rng_normal(r) * 0.1f + (i % 7 == 0 ? 0.05f : 0.0f);
        size_t es = mlxn_dtype_size(sp->dt), ng = (size_t)(N * K / sp->group);
        out->nd = (size_t)(N * K * sp->bits / 8);
        out->ns = ng * es;
        out->data = malloc(out->nd);
        out->scales = malloc(out->ns);
        out->biases = malloc(out->ns);
        mlxn_quantize_affine(w, N, K, sp->bits, sp->group, sp->dt, out->data, out->scales, out->biases);
        free(w);
    } else {
        int64_t bv, bb;
        mlxn_gguf_type_block(sp->gt, &bv, &bb);
        int64_t nblk = N * K / bv;
        out->nd = (size_t)(nblk * bb);
        out->data = malloc(out->nd);
        for (size_t i = 0; i < out->nd; i++) out->data[i] = (uint8_t)t_rng_u64(r);
        /* sane f16 scale fields */
        int offs[2] = {-1, -1};
        switch (sp->gt) {
        case MLXN_GGUF_Q4_0: case MLXN_GGUF_Q5_0: case MLXN_GGUF_Q8_0: offs[0] = 0; break;
        case MLXN_GGUF_Q4_1: case MLXN_GGUF_Q5_1: case MLXN_GGUF_Q4_K: case MLXN_GGUF_Q5_K: offs[0] = 0; offs[1] = 2; break;
        case MLXN_GGUF_Q2_K: offs[0] = 80; offs[1] = 82; break;
        case MLXN_GGUF_Q3_K: offs[0] = 108; break;
        case MLXN_GGUF_Q6_K: offs[0] = 208; break;
        default: break;
        }
        for (int64_t b = 0; b < nblk; b++)
            for (int j = 0; j < 2; j++) {
                if (offs[j] < 0) continue;
                float v = t_rng_uniform(r, 0.002f, 0.03f) * (t_rng_u64(r) & 1 ? -1.0f : 1.0f);
                uint16_t h = mlxn_f32_to_f16(v);
                memcpy(out->data + b * bb + offs[j], &h, 2);
            }
    }
}

static void free_wbytes(wbytes *b) { free(b->data); free(b->scales); free(b->biases); }

/* Create the weight on device d from host bytes. unaligned: place data and
 * scales at odd byte offsets inside one U8 allocation (views). */
static mlxn_weight *make_weight(mlxn_device *d, const wspec *sp, int64_t N, const wbytes *wb, int unaligned,
                                mlxn_buffer **hold) {
    mlxn_buffer *data = NULL, *sc = NULL, *bi = NULL;
    *hold = NULL;
    if (unaligned) {
        int64_t tot = (int64_t)(wb->nd + 2 * wb->ns + 8);
        mlxn_buffer *all = NULL;
        CHECK_OK(mlxn_buffer_alloc(d, MLXN_U8, 1, &tot, &all));
        if (!all) return NULL;
        size_t o_d = 1, o_s = o_d + wb->nd + 2, o_b = o_s + wb->ns + 2; /* odd offsets */
        mlxn_buffer_upload(all, o_d, wb->data, wb->nd);
        int64_t nd = (int64_t)wb->nd;
        CHECK_OK(mlxn_buffer_view(all, o_d, MLXN_U8, 1, &nd, &data));
        if (wb->scales) {
            mlxn_buffer_upload(all, o_s, wb->scales, wb->ns);
            mlxn_buffer_upload(all, o_b, wb->biases, wb->ns);
            int64_t ns = (int64_t)(wb->ns / mlxn_dtype_size(sp->dt));
            CHECK_OK(mlxn_buffer_view(all, o_s, sp->dt, 1, &ns, &sc));
            CHECK_OK(mlxn_buffer_view(all, o_b, sp->dt, 1, &ns, &bi));
        }
        *hold = all;
    } else {
        mlxn_dtype ddt = sp->fmt == MLXN_WEIGHT_DENSE ? sp->dt : MLXN_U8;
        int64_t nd = (int64_t)(wb->nd / mlxn_dtype_size(ddt));
        CHECK_OK(mlxn_buffer_alloc(d, ddt, 1, &nd, &data));
        if (data) mlxn_buffer_upload(data, 0, wb->data, wb->nd);
        if (wb->scales) {
            int64_t ns = (int64_t)(wb->ns / mlxn_dtype_size(sp->dt));
            CHECK_OK(mlxn_buffer_alloc(d, sp->dt, 1, &ns, &sc));
            CHECK_OK(mlxn_buffer_alloc(d, sp->dt, 1, &ns, &bi));
            if (sc) mlxn_buffer_upload(sc, 0, wb->scales, wb->ns);
            if (bi) mlxn_buffer_upload(bi, 0, wb->biases, wb->ns);
        }
    }
    if (unaligned && sp->fmt == MLXN_WEIGHT_DENSE && data) {
        /* dense data must carry its dtype: re-view with the dense dtype */
        mlxn_buffer *v = NULL;
        int64_t ne = (int64_t)(wb->nd / mlxn_dtype_size(sp->dt));
        CHECK_OK(mlxn_buffer_view(data, 0, sp->dt, 1, &ne, &v));
        mlxn_buffer_release(data);
        data = v;
    }
    mlxn_weight_desc wd = {.format = sp->fmt, .rows = N, .cols = sp->K, .data = data, .scales = sc, .biases = bi,
                           .bits = sp->bits, .group_size = sp->group, .gguf_type = sp->gt, .name = sp->name};
    mlxn_weight *w = NULL;
    if (data) CHECK_OK(mlxn_weight_create(&wd, &w));
    mlxn_buffer_release(data);
    mlxn_buffer_release(sc);
    mlxn_buffer_release(bi);
    return w;
}

static int g_nspecs;
static wspec g_specs[128];

static void build_specs(void) {
    g_nspecs = 0;
    const mlxn_dtype dense[3] = {MLXN_F32, MLXN_F16, MLXN_BF16};
    for (int i = 0; i < 3; i++) {
        wspec *s = &g_specs[g_nspecs++];
        memset(s, 0, sizeof *s);
        snprintf(s->name, sizeof s->name, "dense_%s", dt_name(dense[i]));
        s->fmt = MLXN_WEIGHT_DENSE; s->dt = dense[i]; s->K = 203; /* odd K */
    }
    const int bits[6] = {2, 3, 4, 5, 6, 8}, gs[3] = {32, 64, 128};
    const mlxn_dtype sdt[3] = {MLXN_F16, MLXN_BF16, MLXN_F32};
    for (int b = 0; b < 6; b++)
        for (int g = 0; g < 3; g++)
            for (int t = 0; t < 3; t++) {
                wspec *s = &g_specs[g_nspecs++];
                memset(s, 0, sizeof *s);
                snprintf(s->name, sizeof s->name, "mlx_b%d_g%d_%s", bits[b], gs[g], dt_name(sdt[t]));
                s->fmt = MLXN_WEIGHT_MLX_AFFINE; s->bits = bits[b]; s->group = gs[g]; s->dt = sdt[t];
                s->K = 1152; /* 9 groups of 128: vector and tail paths */
                s->int8_path = 1; /* 4/8-bit direct, 2/3/5/6-bit via unpacked codes */
            }
    for (size_t i = 0; i < sizeof g_gguf_types / sizeof g_gguf_types[0]; i++) {
        wspec *s = &g_specs[g_nspecs++];
        memset(s, 0, sizeof *s);
        snprintf(s->name, sizeof s->name, "gguf_%s", g_gguf_types[i].name);
        s->fmt = MLXN_WEIGHT_GGUF; s->gt = g_gguf_types[i].t;
        int64_t bv;
        mlxn_gguf_type_block(s->gt, &bv, NULL);
        s->K = bv == 256 ? 512 : 224; /* 7 blocks of 32: 4-block and tail paths */
        mlxn_gguf_type t = s->gt;
        s->int8_path = t == MLXN_GGUF_Q4_0 || t == MLXN_GGUF_Q4_1 || t == MLXN_GGUF_Q8_0 || t == MLXN_GGUF_Q4_K ||
                       t == MLXN_GGUF_Q5_K || t == MLXN_GGUF_Q6_K;
    }
}

/* Run matmul on device d: returns malloc'd y [M, N]. */
static float *run_matmul(mlxn_device *d, mlxn_weight *w, const float *x, int64_t M, int64_t K, int64_t N) {
    int64_t xs[2] = {M, K}, ys[2] = {M, N};
    mlxn_buffer *bx = NULL, *by = NULL;
    mlxn_session *s = NULL;
    float *y = malloc((size_t)(M * N) * 4);
    CHECK_OK(mlxn_buffer_alloc(d, MLXN_F32, 2, xs, &bx));
    CHECK_OK(mlxn_buffer_alloc(d, MLXN_F32, 2, ys, &by));
    CHECK_OK(mlxn_session_begin(d, &s));
    if (bx && by && s) {
        mlxn_buffer_upload(bx, 0, x, (size_t)(M * K) * 4);
        mlxn_buffer_fill_bytes(by, 0xFF); /* poison: NaN */
        CHECK_OK(mlxn_matmul(s, bx, w, by));
        CHECK_OK(mlxn_session_finish(s));
        mlxn_buffer_download(by, 0, y, (size_t)(M * N) * 4);
    } else {
        memset(y, 0xFF, (size_t)(M * N) * 4);
    }
    mlxn_session_destroy(s);
    mlxn_buffer_release(bx);
    mlxn_buffer_release(by);
    return y;
}

static double g_worst_int8_nmse;
static char g_worst_what[128];

/* int8 = 1: run with MLXN_CPU_INT8_ACT=1 (the opt-in int8-activation paths,
 * tolerance 1e-4 for formats that have one); else the default f32
 * activations, where every format matches the f64 reference to 1e-10. */
static void matmul_cpu_vs_ref(int int8) {
    build_specs();
    if (int8) setenv("MLXN_CPU_INT8_ACT", "1", 1);
    const int64_t Ms[4] = {1, 3, 8, 33};
    const int64_t N = 37;
    t_rng r;
    t_rng_seed(&r, 1234);
    g_worst_int8_nmse = 0;
    for (int i = 0; i < g_nspecs; i++) {
        const wspec *sp = &g_specs[i];
        wbytes wb;
        make_weight_bytes(sp, N, &r, &wb);
        int unaligned = (i % 3) == 1; /* a third of the formats from odd byte offsets */
        mlxn_buffer *hold_c = NULL, *hold_r = NULL;
        mlxn_weight *wc = make_weight(g_cpu, sp, N, &wb, unaligned, &hold_c);
        mlxn_weight *wr = make_weight(g_ref, sp, N, &wb, 0, &hold_r);
        if (wc && wr) {
            for (int mi = 0; mi < 4; mi++) {
                const int64_t M = Ms[mi], K = sp->K;
                float *x = malloc((size_t)(M * K) * 4);
                for (int64_t j = 0; j < M * K; j++) x[j] = t_rng_normal(&r);
                float *yc = run_matmul(g_cpu, wc, x, M, K, N), *yr = run_matmul(g_ref, wr, x, M, K, N);
                char what[128];
                snprintf(what, sizeof what, "matmul %.60s M=%lld N=%lld K=%lld%s", sp->name, (long long)M, (long long)N,
                         (long long)K, unaligned ? " (unaligned)" : "");
                const int i8 = int8 && sp->int8_path;
                double tol = i8 ? 1e-4 : 1e-10;
                t_check_nmse(what, yc, yr, (size_t)(M * N), tol);
                if (i8) {
                    double e = t_nmse(yc, yr, (size_t)(M * N), NULL, NULL);
                    if (e > g_worst_int8_nmse) { g_worst_int8_nmse = e; snprintf(g_worst_what, sizeof g_worst_what, "%s", what); }
                }
                free(x); free(yc); free(yr);
            }
        }
        mlxn_weight_destroy(wc);
        mlxn_weight_destroy(wr);
        mlxn_buffer_release(hold_c);
        mlxn_buffer_release(hold_r);
        free_wbytes(&wb);
    }
    if (int8) {
        unsetenv("MLXN_CPU_INT8_ACT");
        printf("     worst int8-path NMSE vs f64 reference: %.3g (%s)\n", g_worst_int8_nmse, g_worst_what);
    }
}
static void test_matmul_cpu_vs_ref(void) { matmul_cpu_vs_ref(0); }
static void test_matmul_cpu_vs_ref_int8(void) { matmul_cpu_vs_ref(1); }

/* A bigger shape so the threaded split and multi-block loops are exercised. */
static void matmul_large(int int8) {
    const int64_t N = 301, K = 2048;
    if (int8) setenv("MLXN_CPU_INT8_ACT", "1", 1);
    const int64_t Ms[2] = {1, 5};
    wspec sps[4];
    memset(sps, 0, sizeof sps);
    snprintf(sps[0].name, 64, "mlx_b4_g64_f16"); sps[0].fmt = MLXN_WEIGHT_MLX_AFFINE; sps[0].bits = 4; sps[0].group = 64; sps[0].dt = MLXN_F16; sps[0].K = K; sps[0].int8_path = 1;
    snprintf(sps[1].name, 64, "gguf_Q4_0"); sps[1].fmt = MLXN_WEIGHT_GGUF; sps[1].gt = MLXN_GGUF_Q4_0; sps[1].K = K; sps[1].int8_path = 1;
    snprintf(sps[2].name, 64, "gguf_Q6_K"); sps[2].fmt = MLXN_WEIGHT_GGUF; sps[2].gt = MLXN_GGUF_Q6_K; sps[2].K = K; sps[2].int8_path = 1;
    snprintf(sps[3].name, 64, "dense_bf16"); sps[3].fmt = MLXN_WEIGHT_DENSE; sps[3].dt = MLXN_BF16; sps[3].K = K;
    t_rng r;
    t_rng_seed(&r, 99);
    for (int i = 0; i < 4; i++) {
        wbytes wb;
        make_weight_bytes(&sps[i], N, &r, &wb);
        mlxn_buffer *h1, *h2;
        mlxn_weight *wc = make_weight(g_cpu, &sps[i], N, &wb, 0, &h1), *wr = make_weight(g_ref, &sps[i], N, &wb, 0, &h2);
        for (int mi = 0; mi < 2 && wc && wr; mi++) {
            int64_t M = Ms[mi];
            float *x = malloc((size_t)(M * K) * 4);
            for (int64_t j = 0; j < M * K; j++) x[j] = t_rng_uniform(&r, -1, 1);
            float *yc = run_matmul(g_cpu, wc, x, M, K, N), *yr = run_matmul(g_ref, wr, x, M, K, N);
            char what[128];
            snprintf(what, sizeof what, "matmul %.60s M=%lld N=%lld K=%lld", sps[i].name, (long long)M, (long long)N, (long long)K);
            t_check_nmse(what, yc, yr, (size_t)(M * N), int8 && sps[i].int8_path ? 1e-4 : 1e-10);
            free(x); free(yc); free(yr);
        }
        mlxn_weight_destroy(wc); mlxn_weight_destroy(wr);
        mlxn_buffer_release(h1); mlxn_buffer_release(h2);
        free_wbytes(&wb);
    }
    if (int8) unsetenv("MLXN_CPU_INT8_ACT");
}
static void test_matmul_large(void) { matmul_large(0); }
static void test_matmul_large_int8(void) { matmul_large(1); }

/* By default (and with MLXN_CPU_INT8_ACT=0) the CPU uses f32 activations and
 * matches the f64 reference to f32 rounding; MLXN_CPU_INT8_ACT=1 switches
 * int8-path formats to int8 activations: small but nonzero error. */
static void test_matmul_exact_env(void) {
    wspec sp;
    memset(&sp, 0, sizeof sp);
    snprintf(sp.name, sizeof sp.name, "mlx_b4_g64_f16");
    sp.fmt = MLXN_WEIGHT_MLX_AFFINE; sp.bits = 4; sp.group = 64; sp.dt = MLXN_F16; sp.K = 256;
    const int64_t N = 5, M = 3, K = 256;
    t_rng r;
    t_rng_seed(&r, 4242);
    wbytes wb;
    make_weight_bytes(&sp, N, &r, &wb);
    mlxn_buffer *h1, *h2;
    mlxn_weight *wc = make_weight(g_cpu, &sp, N, &wb, 0, &h1), *wr = make_weight(g_ref, &sp, N, &wb, 0, &h2);
    float x[3 * 256];
    for (int i = 0; i < M * K; i++) x[i] = t_rng_normal(&r);
    if (wc && wr) {
        float *yr = run_matmul(g_ref, wr, x, M, K, N);
        float *ye = run_matmul(g_cpu, wc, x, M, K, N);
        setenv("MLXN_CPU_INT8_ACT", "0", 1);
        float *y0 = run_matmul(g_cpu, wc, x, M, K, N);
        setenv("MLXN_CPU_INT8_ACT", "1", 1);
        float *yq = run_matmul(g_cpu, wc, x, M, K, N);
        unsetenv("MLXN_CPU_INT8_ACT");
        t_check_nmse("default (f32-activation) cpu matmul", ye, yr, (size_t)(M * N), 1e-12);
        t_check_bytes("MLXN_CPU_INT8_ACT=0 equals the default", y0, ye, (size_t)(M * N) * 4);
        free(y0);
        double eq = t_nmse(yq, yr, (size_t)(M * N), NULL, NULL);
        const mlxn_cpu_features *f = mlxn_cpu_detect_features();
        const int int8_path = f->avx2 && f->fma && f->f16c; /* else (e.g. MLXN_CPU_NO_SIMD) f32 everywhere */
        CHECK_MSG(eq < 1e-4 && (!int8_path || eq > 1e-12), "int8-activation NMSE %.3g should be small but nonzero", eq);
        free(yr); free(yq); free(ye);
    }
    mlxn_weight_destroy(wc); mlxn_weight_destroy(wr);
    mlxn_buffer_release(h1); mlxn_buffer_release(h2);
    free_wbytes(&wb);
}

/* Embedding and dequantize: byte-identical between cpu and ref, all output dtypes. */
static void test_embedding_dequant_cpu_vs_ref(void) {
    if (!g_nspecs) build_specs();
    const int64_t N = 37;
    const int32_t ids[6] = {0, 36, 5, 5, 17, 1};
    const mlxn_dtype outs[3] = {MLXN_F32, MLXN_F16, MLXN_BF16};
    t_rng r;
    t_rng_seed(&r, 555);
    for (int i = 0; i < g_nspecs; i++) {
        const wspec *sp = &g_specs[i];
        wbytes wb;
        make_weight_bytes(sp, N, &r, &wb);
        mlxn_buffer *h1, *h2;
        mlxn_weight *w[2] = {make_weight(g_cpu, sp, N, &wb, i % 2, &h1), make_weight(g_ref, sp, N, &wb, 0, &h2)};
        mlxn_device *devs[2] = {g_cpu, g_ref};
        for (int o = 0; o < 3 && w[0] && w[1]; o++) {
            const size_t es = mlxn_dtype_size(outs[o]);
            uint8_t *emb[2], *deq[2];
            for (int dv = 0; dv < 2; dv++) {
                mlxn_device *d = devs[dv];
                int64_t is = 6, es2[2] = {6, sp->K}, ds[2] = {N, sp->K};
                mlxn_buffer *bi = NULL, *be = NULL, *bd = NULL;
                mlxn_session *s = NULL;
                emb[dv] = malloc((size_t)(6 * sp->K) * es);
                deq[dv] = malloc((size_t)(N * sp->K) * es);
                CHECK_OK(mlxn_buffer_alloc(d, MLXN_I32, 1, &is, &bi));
                CHECK_OK(mlxn_buffer_alloc(d, outs[o], 2, es2, &be));
                CHECK_OK(mlxn_buffer_alloc(d, outs[o], 2, ds, &bd));
                CHECK_OK(mlxn_session_begin(d, &s));
                if (bi && be && bd && s) {
                    mlxn_buffer_upload(bi, 0, ids, sizeof ids);
                    mlxn_buffer_fill_bytes(be, 0xFF);
                    mlxn_buffer_fill_bytes(bd, 0xFF);
                    CHECK_OK(mlxn_embedding(s, w[dv], bi, be));
                    CHECK_OK(mlxn_dequantize(s, w[dv], bd));
                    CHECK_OK(mlxn_session_finish(s));
                    mlxn_buffer_download(be, 0, emb[dv], (size_t)(6 * sp->K) * es);
                    mlxn_buffer_download(bd, 0, deq[dv], (size_t)(N * sp->K) * es);
                }
                mlxn_session_destroy(s);
                mlxn_buffer_release(bi); mlxn_buffer_release(be); mlxn_buffer_release(bd);
            }
            char what[128];
            snprintf(what, sizeof what, "embedding %.60s -> %s", sp->name, dt_name(outs[o]));
            t_check_bytes(what, emb[0], emb[1], (size_t)(6 * sp->K) * es);
            snprintf(what, sizeof what, "dequantize %.60s -> %s", sp->name, dt_name(outs[o]));
            t_check_bytes(what, deq[0], deq[1], (size_t)(N * sp->K) * es);
            /* the embedding rows are the dequantized rows */
            for (int t = 0; t < 6; t++)
                if (memcmp(emb[1] + (size_t)(t * sp->K) * es, deq[1] + (size_t)(ids[t] * sp->K) * es, (size_t)sp->K * es)) {
                    CHECK_MSG(0, "%s: embedding row %d differs from dequantized row %d", sp->name, t, ids[t]);
                    break;
                }
            for (int dv = 0; dv < 2; dv++) { free(emb[dv]); free(deq[dv]); }
        }
        mlxn_weight_destroy(w[0]); mlxn_weight_destroy(w[1]);
        mlxn_buffer_release(h1); mlxn_buffer_release(h2);
        free_wbytes(&wb);
    }
}

/* ---------------------------------------------------------------- part 3: bad arguments */

static void test_bad_args_codecs(void) {
    float w[64] = {1};
    uint8_t p[64], s[16], b[16];
    float out[64];
    CHECK_ERR(mlxn_quantize_affine(w, 1, 64, 7, 32, MLXN_F16, p, s, b), MLXN_ERR_INVALID_ARG, "bits 7");
    CHECK_ERR(mlxn_quantize_affine(w, 1, 64, 4, 48, MLXN_F16, p, s, b), MLXN_ERR_INVALID_ARG, "group_size 48");
    CHECK_ERR(mlxn_quantize_affine(w, 1, 48, 4, 32, MLXN_F16, p, s, b), MLXN_ERR_SHAPE, "multiple of group_size");
    CHECK_ERR(mlxn_quantize_affine(w, 0, 64, 4, 32, MLXN_F16, p, s, b), MLXN_ERR_SHAPE, "positive");
    CHECK_ERR(mlxn_quantize_affine(w, 1, 64, 4, 32, MLXN_I32, p, s, b), MLXN_ERR_DTYPE, "i32");
    CHECK_ERR(mlxn_quantize_affine(NULL, 1, 64, 4, 32, MLXN_F16, p, s, b), MLXN_ERR_INVALID_ARG, "NULL");
    CHECK_ERR(mlxn_dequantize_affine(p, s, b, MLXN_F16, 1, 40, 4, 32, out), MLXN_ERR_SHAPE, "multiple of group_size");
    CHECK_ERR(mlxn_gguf_dequantize(MLXN_GGUF_Q4_0, p, 48, out), MLXN_ERR_SHAPE, "multiple of 32");
    CHECK_ERR(mlxn_gguf_dequantize(MLXN_GGUF_Q4_K, p, 32, out), MLXN_ERR_SHAPE, "multiple of 256");
    CHECK_ERR(mlxn_gguf_dequantize(MLXN_GGUF_MXFP4, p, 32, out), MLXN_ERR_UNSUPPORTED, "MXFP4");
    CHECK_ERR(mlxn_gguf_quantize(MLXN_GGUF_Q4_K, w, 256, p), MLXN_ERR_UNSUPPORTED, "Q4_0, Q8_0 only");
    CHECK_ERR(mlxn_gguf_quantize(MLXN_GGUF_Q8_0, w, 33, p), MLXN_ERR_SHAPE, "multiple of 32");
}

static void test_bad_args_ops(void) {
    mlxn_device *d = g_cpu;
    int64_t n_data = 4 * 64 / 2, n_sc = 4 * 64 / 32;
    mlxn_buffer *data = NULL, *sc = NULL, *bi = NULL, *small = NULL;
    CHECK_OK(mlxn_buffer_alloc(d, MLXN_U8, 1, &n_data, &data));
    CHECK_OK(mlxn_buffer_alloc(d, MLXN_F16, 1, &n_sc, &sc));
    CHECK_OK(mlxn_buffer_alloc(d, MLXN_F16, 1, &n_sc, &bi));
    int64_t n_small = 10;
    CHECK_OK(mlxn_buffer_alloc(d, MLXN_U8, 1, &n_small, &small));
    if (!data || !sc || !bi || !small) return;
    mlxn_buffer_fill_bytes(data, 0x11);
    mlxn_buffer_fill_bytes(sc, 0x22);
    mlxn_buffer_fill_bytes(bi, 0x00);
    mlxn_weight_desc wd = {.format = MLXN_WEIGHT_MLX_AFFINE, .rows = 4, .cols = 64, .data = data, .scales = sc,
                           .biases = bi, .bits = 4, .group_size = 32, .name = "wq"};
    mlxn_weight *w = NULL, *bad = NULL;
    /* weight creation checks */
    mlxn_weight_desc e = wd;
    e.cols = 48;
    CHECK_ERR(mlxn_weight_create(&e, &bad), MLXN_ERR_SHAPE, "multiple of group_size");
    e = wd; e.rows = 0;
    CHECK_ERR(mlxn_weight_create(&e, &bad), MLXN_ERR_SHAPE, "must be > 0");
    e = wd; e.data = small;
    CHECK_ERR(mlxn_weight_create(&e, &bad), MLXN_ERR_SHAPE, "data buffer holds 10 bytes");
    e = wd; e.bits = 7;
    CHECK(mlxn_weight_create(&e, &bad) != MLXN_OK && t_contains(mlxn_last_error(), "bits 7"));
    e = (mlxn_weight_desc){.format = MLXN_WEIGHT_GGUF, .rows = 1, .cols = 48, .data = data, .gguf_type = MLXN_GGUF_Q4_0, .name = "g"};
    CHECK_ERR(mlxn_weight_create(&e, &bad), MLXN_ERR_SHAPE, "block size 32");
    CHECK(bad == NULL);
    CHECK_OK(mlxn_weight_create(&wd, &w));
    mlxn_session *s = NULL;
    CHECK_OK(mlxn_session_begin(d, &s));
    int64_t xs[2] = {2, 64}, xbad[2] = {2, 32}, ys[2] = {2, 4}, ybad[2] = {2, 5};
    mlxn_buffer *x = NULL, *xh = NULL, *xk = NULL, *y = NULL, *yb = NULL;
    CHECK_OK(mlxn_buffer_alloc(d, MLXN_F32, 2, xs, &x));
    CHECK_OK(mlxn_buffer_alloc(d, MLXN_F16, 2, xs, &xh));
    CHECK_OK(mlxn_buffer_alloc(d, MLXN_F32, 2, xbad, &xk));
    CHECK_OK(mlxn_buffer_alloc(d, MLXN_F32, 2, ys, &y));
    CHECK_OK(mlxn_buffer_alloc(d, MLXN_F32, 2, ybad, &yb));
    if (w && s && x && xh && xk && y && yb) {
        mlxn_buffer_fill_bytes(x, 0);
        CHECK_ERR(mlxn_matmul(s, xh, w, y), MLXN_ERR_DTYPE, "x");
        CHECK_ERR(mlxn_matmul(s, xk, w, y), MLXN_ERR_SHAPE, "does not match");
        CHECK_ERR(mlxn_matmul(s, x, w, yb), MLXN_ERR_SHAPE, "y");
        CHECK_ERR(mlxn_matmul(s, x, NULL, y), MLXN_ERR_INVALID_ARG, "weight");
        CHECK_OK(mlxn_matmul(s, x, w, y)); /* the session is still usable */
        CHECK_OK(mlxn_session_finish(s));
        /* embedding: ids out of range is a returned MLXN_ERR_RANGE on the CPU */
        int64_t ns = 2, es[2] = {2, 64};
        mlxn_buffer *ids = NULL, *ey = NULL, *idf = NULL;
        CHECK_OK(mlxn_buffer_alloc(d, MLXN_I32, 1, &ns, &ids));
        CHECK_OK(mlxn_buffer_alloc(d, MLXN_F32, 1, &ns, &idf));
        CHECK_OK(mlxn_buffer_alloc(d, MLXN_F32, 2, es, &ey));
        if (ids && ey && idf) {
            int32_t v[2] = {1, 4};
            mlxn_buffer_upload(ids, 0, v, sizeof v);
            mlxn_status st = mlxn_embedding(s, w, ids, ey);
            if (st == MLXN_OK) st = mlxn_session_finish(s);
            CHECK_MSG(st == MLXN_ERR_RANGE && t_contains(mlxn_last_error(), "ids[1] = 4"), "embedding id 4 of 4 rows -> %s: %s",
                      mlxn_status_name(st), mlxn_last_error());
            v[1] = -1;
            mlxn_buffer_upload(ids, 0, v, sizeof v);
            st = mlxn_embedding(s, w, ids, ey);
            if (st == MLXN_OK) st = mlxn_session_finish(s);
            CHECK_MSG(st == MLXN_ERR_RANGE, "embedding id -1 -> %s", mlxn_status_name(st));
            CHECK_ERR(mlxn_embedding(s, w, idf, ey), MLXN_ERR_DTYPE, "ids");
            CHECK_ERR(mlxn_embedding(s, w, ids, y), MLXN_ERR_SHAPE, "y");
            CHECK_ERR(mlxn_dequantize(s, w, y), MLXN_ERR_SHAPE, "y");
        }
        mlxn_buffer_release(ids); mlxn_buffer_release(ey); mlxn_buffer_release(idf);
    }
    mlxn_session_destroy(s);
    mlxn_weight_destroy(w);
    mlxn_buffer_release(x); mlxn_buffer_release(xh); mlxn_buffer_release(xk);
    mlxn_buffer_release(y); mlxn_buffer_release(yb);
    mlxn_buffer_release(data); mlxn_buffer_release(sc); mlxn_buffer_release(bi); mlxn_buffer_release(small);
}

int main(void) {
    CHECK_OK(mlxn_device_open("cpu", NULL, &g_cpu));
    CHECK_OK(mlxn_device_open("ref", NULL, &g_ref));
    if (!g_cpu || !g_ref) { printf("cannot open devices: %s\n", mlxn_last_error()); return t_finish() ? 1 : 1; }
    T_RUN(test_affine_fixtures);
    T_RUN(test_gguf_dequant_fixtures);
    T_RUN(test_gguf_quantize_fixtures);
    T_RUN(test_affine_roundtrip_bound);
    T_RUN(test_matmul_cpu_vs_ref);
    T_RUN(test_matmul_cpu_vs_ref_int8);
    T_RUN(test_matmul_large);
    T_RUN(test_matmul_large_int8);
    T_RUN(test_matmul_exact_env);
    T_RUN(test_embedding_dequant_cpu_vs_ref);
    T_RUN(test_bad_args_codecs);
    T_RUN(test_bad_args_ops);
    mlxn_device_close(g_cpu);
    mlxn_device_close(g_ref);
    return t_finish();
}
