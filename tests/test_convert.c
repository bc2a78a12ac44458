/* test_convert.c — tests of the model converter (src/io/convert.c).
 *  - GGUF -> MLX lossless: small llama-architecture GGUFs written with our
 *    GGUF writer holding Q4_0, Q4_1, Q8_0, Q5_0, Q5_1 tensors; the converted
 *    directory's weights, dequantized, equal the GGUF dequantization bit for
 *    bit (after the RoPE un-permutation for attn_q/attn_k).
 *  - RoPE: an HF matrix permuted with llama.cpp's formula (GGUF row
 *    h*hd + 2i + j = HF row h*hd + j*hd/2 + i) comes back exactly.
 *  - K-quants are re-quantized with the default bits and the reported error
 *    matches the error measured here.
 *  - HF -> MLX: converting tests/data/qwen3_tiny/hf at 4 bits / group 64 gives
 *    the same tensors, byte for byte, as mlx_lm.convert did
 *    (tests/data/qwen3_tiny/mlx_q4, made by scripts/gen_qwen3_fixtures.py);
 *    the mixed_4_6 recipe gives mlx-lm's per-module bits; overrides work.
 *  - config.json / tokenizer.json generated from GGUF metadata; error cases. */
#define _GNU_SOURCE
#include <ftw.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/convert.h"
#include "io/gguf.h"
#include "io/model_files.h"
#include "io/safetensors.h"
#include "testutil.h"

/* ---------------------------------------------------------------- helpers */

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb; (void)flag; (void)ftw;
    return remove(p);
}
static void rm_rf(const char *dir) { nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS); }

static char *tmpdir(void) {
    char *d = strdup("/tmp/mlxn_test_convert_XXXXXX");
    if (!mkdtemp(d)) { free(d); return NULL; }
    return d;
}
static char *join(const char *a, const char *b) {
    size_t n = strlen(a) + strlen(b) + 2;
    char *p = malloc(n);
    snprintf(p, n, "%s/%s", a, b);
    return p;
}

/* Value-exact comparison (-0.0 == +0.0; NaN never equal): reports the first mismatch. */
static void check_values_equal(const char *what, const float *got, const float *ref, size_t n) {
    size_t bad = 0, first = 0;
    for (size_t i = 0; i < n; i++)
        if (!(got[i] == ref[i])) { if (!bad) first = i; bad++; }
    CHECK_MSG(bad == 0, "%s: %zu of %zu values differ; first at %zu: got %.9g ref %.9g", what, bad, n, first,
              bad ? got[first] : 0.0, bad ? ref[first] : 0.0);
}

static void put_f16(uint8_t *p, float v) { uint16_t h = mlxn_f32_to_f16(v); memcpy(p, &h, 2); }

/* Random blocks of type t for n values (any byte pattern is a valid block;
 * the f16 scale fields are set to sane values). */
static void *random_blocks(t_rng *r, mlxn_gguf_type t, int64_t n, size_t *nbytes) {
    int64_t bv, bb;
    mlxn_gguf_type_block(t, &bv, &bb);
    size_t sz = (size_t)(n / bv * bb);
    uint8_t *b = malloc(sz);
    for (size_t i = 0; i < sz; i++) b[i] = (uint8_t)t_rng_u64(r);
    for (int64_t k = 0; k < n / bv; k++) {
        uint8_t *blk = b + k * bb;
        float d = t_rng_uniform(r, 0.001f, 0.05f) * (t_rng_u64(r) & 1 ? 1.f : -1.f);
        switch (t) {
        case MLXN_GGUF_Q4_0: case MLXN_GGUF_Q8_0: case MLXN_GGUF_Q5_0: put_f16(blk, d); break;
        case MLXN_GGUF_Q4_1: case MLXN_GGUF_Q5_1: put_f16(blk, fabsf(d)); put_f16(blk + 2, t_rng_uniform(r, -0.5f, 0.1f)); break;
        case MLXN_GGUF_Q4_K: case MLXN_GGUF_Q5_K: put_f16(blk, fabsf(d) * 0.1f); put_f16(blk + 2, fabsf(d) * 0.05f); break;
        case MLXN_GGUF_Q6_K: put_f16(blk + bb - 2, d * 0.05f); break;
        default: break;
        }
    }
    *nbytes = sz;
    return b;
}

/* A minimal llama GGUF: metadata for 1 layer, d_model = cols, heads as given. */
static mlxn_gguf_writer *llama_writer(const char *arch, int64_t d_model, int n_head, int n_kv) {
    mlxn_gguf_writer *w = NULL;
    CHECK_OK(mlxn_gguf_writer_create(0, &w));
    char k[128];
    mlxn_gguf_writer_add_str(w, "general.architecture", arch);
#define KEY(s) (snprintf(k, sizeof k, "%s.%s", arch, s), k)
    mlxn_gguf_writer_add_u32(w, KEY("block_count"), 1);
    mlxn_gguf_writer_add_u32(w, KEY("context_length"), 256);
    mlxn_gguf_writer_add_u32(w, KEY("embedding_length"), (uint32_t)d_model);
    mlxn_gguf_writer_add_u32(w, KEY("feed_forward_length"), 96);
    mlxn_gguf_writer_add_u32(w, KEY("attention.head_count"), (uint32_t)n_head);
    mlxn_gguf_writer_add_u32(w, KEY("attention.head_count_kv"), (uint32_t)n_kv);
    mlxn_gguf_writer_add_f32(w, KEY("rope.freq_base"), 100000.0f);
    mlxn_gguf_writer_add_f32(w, KEY("attention.layer_norm_rms_epsilon"), 1e-5f);
#undef KEY
    return w;
}

static float *dequant_rows_permuted(mlxn_gguf_type t, const void *blocks, int64_t rows, int64_t cols, int n_head) {
    float *src = malloc((size_t)(rows * cols) * 4), *dst = malloc((size_t)(rows * cols) * 4);
    CHECK_OK(mlxn_gguf_dequantize(t, blocks, rows * cols, src));
    if (n_head <= 0) { free(dst); return src; }
    int64_t hd = rows / n_head, half = hd / 2;
    for (int64_t r = 0; r < rows; r++) { /* independent formulation of the inverse permutation */
        int64_t h = r / hd, w = r % hd;
        int64_t s = h * hd + (w < half ? 2 * w : 2 * (w - half) + 1);
        memcpy(dst + r * cols, src + s * cols, (size_t)cols * 4);
    }
    free(src);
    return dst;
}

/* ---------------------------------------------------------------- GGUF lossless */

typedef struct { const char *gguf_name, *hf_name; mlxn_gguf_type type; int64_t rows, cols; int rope_heads; } tcase;

static void test_gguf_lossless(void) {
    const int n_head = 4, n_kv = 2, hd = 16;
    const int64_t d = 64;
    tcase cases[] = {
        {"token_embd.weight", "model.embed_tokens.weight", MLXN_GGUF_Q8_0, 40, d, 0},
        {"blk.0.attn_q.weight", "model.layers.0.self_attn.q_proj.weight", MLXN_GGUF_Q4_1, n_head * hd, d, n_head},
        {"blk.0.attn_k.weight", "model.layers.0.self_attn.k_proj.weight", MLXN_GGUF_Q4_0, n_kv * hd, d, n_kv},
        {"blk.0.attn_v.weight", "model.layers.0.self_attn.v_proj.weight", MLXN_GGUF_Q5_0, n_kv * hd, d, 0},
        {"blk.0.attn_output.weight", "model.layers.0.self_attn.o_proj.weight", MLXN_GGUF_Q5_1, d, n_head * hd, 0},
        {"blk.0.ffn_gate.weight", "model.layers.0.mlp.gate_proj.weight", MLXN_GGUF_Q4_1, 96, d, 0},
        {"blk.0.ffn_up.weight", "model.layers.0.mlp.up_proj.weight", MLXN_GGUF_Q4_0, 96, d, 0},
        {"blk.0.ffn_down.weight", "model.layers.0.mlp.down_proj.weight", MLXN_GGUF_Q8_0, d, 96, 0},
    };
    const int nc = sizeof cases / sizeof cases[0];
    t_rng r;
    t_rng_seed(&r, 11);
    void *blocks[16];
    size_t nb[16];
    mlxn_gguf_writer *w = llama_writer("llama", d, n_head, n_kv);
    for (int i = 0; i < nc; i++) {
        blocks[i] = random_blocks(&r, cases[i].type, cases[i].rows * cases[i].cols, &nb[i]);
        int64_t shp[2] = {cases[i].rows, cases[i].cols};
        CHECK_OK(mlxn_gguf_writer_add_tensor(w, cases[i].gguf_name, cases[i].type, 2, shp, blocks[i], nb[i]));
    }
    float norm[64];
    t_fill(&r, norm, 64, 0.5f, 1.5f);
    int64_t ns[1] = {d};
    CHECK_OK(mlxn_gguf_writer_add_tensor(w, "blk.0.attn_norm.weight", MLXN_GGUF_F32, 1, ns, norm, sizeof norm));
    CHECK_OK(mlxn_gguf_writer_add_tensor(w, "blk.0.ffn_norm.weight", MLXN_GGUF_F32, 1, ns, norm, sizeof norm));
    CHECK_OK(mlxn_gguf_writer_add_tensor(w, "output_norm.weight", MLXN_GGUF_F32, 1, ns, norm, sizeof norm));
    char *dir = tmpdir();
    char *gpath = join(dir, "m.gguf"), *out = join(dir, "out");
    CHECK_OK(mlxn_gguf_writer_write(w, gpath));
    mlxn_gguf_writer_free(w);

    mlxn_convert_opts o;
    mlxn_convert_opts_init(&o);
    mlxn_convert_report rep;
    CHECK_OK(mlxn_convert(gpath, out, &o, &rep));
    CHECK(rep.n_lossless == nc);
    CHECK(rep.n_float == 3);
    CHECK(rep.n_quantized == 0);
    CHECK(rep.rope_unpermuted == 2);
    mlxn_convert_report_free(&rep);

    mlxn_model_files *mf = NULL;
    CHECK_OK(mlxn_model_files_open(out, &mf));
    if (mf) {
        for (int i = 0; i < nc; i++) {
            mlxn_model_tensor_info ti;
            CHECK_OK(mlxn_model_files_find(mf, cases[i].hf_name, &ti));
            int want_bits = cases[i].type == MLXN_GGUF_Q8_0 ? 8 : (cases[i].type == MLXN_GGUF_Q5_0 || cases[i].type == MLXN_GGUF_Q5_1) ? 5 : 4;
            CHECK_MSG(ti.format == MLXN_WEIGHT_MLX_AFFINE && ti.bits == want_bits && ti.group_size == 32 && ti.dtype == MLXN_F16,
                      "%s: format %d bits %d group %d dtype %d", cases[i].hf_name, ti.format, ti.bits, ti.group_size, ti.dtype);
            CHECK(ti.shape[0] == cases[i].rows && ti.shape[1] == cases[i].cols);
            int64_t n = cases[i].rows * cases[i].cols;
            float *got = malloc((size_t)n * 4);
            CHECK_OK(mlxn_model_files_read_f32(mf, cases[i].hf_name, got, (size_t)n));
            float *ref = dequant_rows_permuted(cases[i].type, blocks[i], cases[i].rows, cases[i].cols, cases[i].rope_heads);
            check_values_equal(cases[i].hf_name, got, ref, (size_t)n);
            free(got);
            free(ref);
            int bits = 0, gs = 0;
            const char *mode = NULL;
            char mod[128];
            snprintf(mod, sizeof mod, "%.*s", (int)(strlen(cases[i].hf_name) - 7), cases[i].hf_name);
            CHECK(mlxn_model_files_quant_for(mf, mod, &bits, &gs, &mode) == 1);
            CHECK_MSG(bits == want_bits && gs == 32, "%s: config says %d bits g%d", mod, bits, gs);
        }
        float got[64];
        CHECK_OK(mlxn_model_files_read_f32(mf, "model.layers.0.input_layernorm.weight", got, 64));
        t_check_bytes("norm kept f32", got, norm, sizeof norm);
        mlxn_model_tensor_info ti;
        CHECK_OK(mlxn_model_files_find(mf, "model.norm.weight", &ti));
        CHECK(ti.dtype == MLXN_F32 && ti.format == MLXN_WEIGHT_DENSE);
        const json_t *cfg = mlxn_model_files_config(mf);
        CHECK(!strcmp(json_string_value(json_object_get(cfg, "model_type")), "llama"));
        CHECK(json_integer_value(json_object_get(cfg, "num_attention_heads")) == n_head);
        CHECK(json_integer_value(json_object_get(cfg, "num_key_value_heads")) == n_kv);
        CHECK(json_integer_value(json_object_get(cfg, "hidden_size")) == d);
        CHECK(json_integer_value(json_object_get(cfg, "vocab_size")) == 40);
        CHECK(json_is_true(json_object_get(cfg, "tie_word_embeddings")));
        CHECK(fabs(json_number_value(json_object_get(cfg, "rope_theta")) - 100000.0) < 1e-6);
        CHECK(fabs(json_number_value(json_object_get(cfg, "rms_norm_eps")) - 1e-5) < 1e-12);
        CHECK(json_is_object(json_object_get(cfg, "quantization_config")));
        mlxn_model_files_close(mf);
    }
    /* the safetensors carry {"format": "mlx"} */
    char *st_path = join(out, "model.safetensors");
    mlxn_st *st = NULL;
    CHECK_OK(mlxn_st_open(st_path, &st));
    if (st) {
        const char *fmt = mlxn_st_metadata_get(st, "format");
        CHECK(fmt && !strcmp(fmt, "mlx"));
        mlxn_st_close(st);
    }
    free(st_path);
    /* output exists -> refused without force, accepted with it */
    CHECK_ERR(mlxn_convert(gpath, out, &o, NULL), MLXN_ERR_INVALID_ARG, "not empty");
    o.force = 1;
    CHECK_OK(mlxn_convert(gpath, out, &o, NULL));
    for (int i = 0; i < nc; i++) free(blocks[i]);
    rm_rf(dir);
    free(gpath); free(out); free(dir);
}

/* llama.cpp permutes HF rows; converting back must restore the HF matrix exactly. */
static void test_rope_unpermute_roundtrip(void) {
    const int n_head = 3, n_kv = 1, hd = 8;
    const int64_t d = 32, rq = n_head * hd, rk = n_kv * hd;
    t_rng r;
    t_rng_seed(&r, 5);
    float *hq = malloc((size_t)(rq * d) * 4), *gq = malloc((size_t)(rq * d) * 4);
    float *hk = malloc((size_t)(rk * d) * 4), *gk = malloc((size_t)(rk * d) * 4);
    t_fill(&r, hq, (size_t)(rq * d), -1, 1);
    t_fill(&r, hk, (size_t)(rk * d), -1, 1);
    /* forward permutation as convert_hf_to_gguf.py: reshape(n_head, 2, hd/2, K).swapaxes(1, 2) */
    for (int pass = 0; pass < 2; pass++) {
        float *h = pass ? hk : hq, *g = pass ? gk : gq;
        int nh = pass ? n_kv : n_head;
        for (int hh = 0; hh < nh; hh++)
            for (int i = 0; i < hd / 2; i++)
                for (int j = 0; j < 2; j++)
                    memcpy(g + (hh * hd + i * 2 + j) * d, h + (hh * hd + j * (hd / 2) + i) * d, (size_t)d * 4);
    }
    mlxn_gguf_writer *w = llama_writer("llama", d, n_head, n_kv);
    int64_t sq[2] = {rq, d}, sk[2] = {rk, d};
    CHECK_OK(mlxn_gguf_writer_add_tensor(w, "blk.0.attn_q.weight", MLXN_GGUF_F32, 2, sq, gq, (size_t)(rq * d) * 4));
    CHECK_OK(mlxn_gguf_writer_add_tensor(w, "blk.0.attn_k.weight", MLXN_GGUF_F32, 2, sk, gk, (size_t)(rk * d) * 4));
    char *dir = tmpdir();
    char *gpath = join(dir, "m.gguf"), *out = join(dir, "out");
    CHECK_OK(mlxn_gguf_writer_write(w, gpath));
    mlxn_gguf_writer_free(w);
    CHECK_OK(mlxn_convert(gpath, out, NULL, NULL));
    mlxn_model_files *mf = NULL;
    CHECK_OK(mlxn_model_files_open(out, &mf));
    if (mf) {
        float *got = malloc((size_t)(rq * d) * 4);
        CHECK_OK(mlxn_model_files_read_f32(mf, "model.layers.0.self_attn.q_proj.weight", got, (size_t)(rq * d)));
        t_check_bytes("q_proj un-permuted", got, hq, (size_t)(rq * d) * 4);
        CHECK_OK(mlxn_model_files_read_f32(mf, "model.layers.0.self_attn.k_proj.weight", got, (size_t)(rk * d)));
        t_check_bytes("k_proj un-permuted", got, hk, (size_t)(rk * d) * 4);
        free(got);
        mlxn_model_files_close(mf);
    }
    /* qwen3 GGUFs are not permuted: rows must pass through unchanged */
    w = llama_writer("qwen3", d, n_head, n_kv);
    CHECK_OK(mlxn_gguf_writer_add_tensor(w, "blk.0.attn_q.weight", MLXN_GGUF_F32, 2, sq, gq, (size_t)(rq * d) * 4));
    CHECK_OK(mlxn_gguf_writer_write(w, gpath));
    mlxn_gguf_writer_free(w);
    mlxn_convert_opts o;
    mlxn_convert_opts_init(&o);
    o.force = 1;
    CHECK_OK(mlxn_convert(gpath, out, &o, NULL));
    CHECK_OK(mlxn_model_files_open(out, &mf));
    if (mf) {
        float *got = malloc((size_t)(rq * d) * 4);
        CHECK_OK(mlxn_model_files_read_f32(mf, "model.layers.0.self_attn.q_proj.weight", got, (size_t)(rq * d)));
        t_check_bytes("qwen3 q_proj unchanged", got, gq, (size_t)(rq * d) * 4);
        free(got);
        CHECK(!strcmp(json_string_value(json_object_get(mlxn_model_files_config(mf), "model_type")), "qwen3"));
        mlxn_model_files_close(mf);
    }
    /* the pure function on its own: odd head size is an error */
    CHECK_ERR(mlxn_convert_unpermute_rope_rows(gq, gk, 9, 4, 3), MLXN_ERR_SHAPE, "heads");
    rm_rf(dir);
    free(gpath); free(out); free(dir);
    free(hq); free(gq); free(hk); free(gk);
}

/* Q8_0 with a large d: -128 d overflows f16, so the converter must fall back to f32 scales. */
static void test_f16_overflow_fallback(void) {
    const int64_t rows = 2, cols = 64;
    uint8_t blocks[4 * 34];
    t_rng r;
    t_rng_seed(&r, 3);
    for (size_t i = 0; i < sizeof blocks; i++) blocks[i] = (uint8_t)t_rng_u64(&r);
    for (int b = 0; b < 4; b++) put_f16(blocks + b * 34, b == 2 ? 1000.0f : 0.01f);
    uint8_t packed[rows * cols], sc[16], bi[16];
    CHECK_ERR(mlxn_convert_gguf_block_to_mlx(MLXN_GGUF_Q8_0, blocks, rows, cols, MLXN_F16, packed, sc, bi, NULL),
              MLXN_ERR_RANGE, "overflow");
    float sc32[4], bi32[4], got[128], ref[128];
    int bits = 0;
    CHECK_OK(mlxn_convert_gguf_block_to_mlx(MLXN_GGUF_Q8_0, blocks, rows, cols, MLXN_F32, packed, sc32, bi32, &bits));
    CHECK(bits == 8);
    CHECK_OK(mlxn_dequantize_affine(packed, sc32, bi32, MLXN_F32, rows, cols, 8, 32, got));
    CHECK_OK(mlxn_gguf_dequantize(MLXN_GGUF_Q8_0, blocks, rows * cols, ref));
    check_values_equal("Q8_0 f32 scales", got, ref, 128);

    mlxn_gguf_writer *w = llama_writer("llama", cols, 1, 1);
    int64_t shp[2] = {rows, cols};
    CHECK_OK(mlxn_gguf_writer_add_tensor(w, "blk.0.ffn_up.weight", MLXN_GGUF_Q8_0, 2, shp, blocks, sizeof blocks));
    char *dir = tmpdir();
    char *gpath = join(dir, "m.gguf"), *out = join(dir, "out");
    CHECK_OK(mlxn_gguf_writer_write(w, gpath));
    mlxn_gguf_writer_free(w);
    CHECK_OK(mlxn_convert(gpath, out, NULL, NULL));
    mlxn_model_files *mf = NULL;
    CHECK_OK(mlxn_model_files_open(out, &mf));
    if (mf) {
        mlxn_model_tensor_info ti;
        CHECK_OK(mlxn_model_files_find(mf, "model.layers.0.mlp.up_proj.weight", &ti));
        CHECK(ti.dtype == MLXN_F32);
        CHECK_OK(mlxn_model_files_read_f32(mf, "model.layers.0.mlp.up_proj.weight", got, 128));
        check_values_equal("converted Q8_0 with f32 scales", got, ref, 128);
        mlxn_model_files_close(mf);
    }
    rm_rf(dir);
    free(gpath); free(out); free(dir);
}

/* ---------------------------------------------------------------- K-quants */

static void test_gguf_kquant_requant(void) {
    const int64_t d = 256;
    t_rng r;
    t_rng_seed(&r, 21);
    size_t n4, n6;
    void *b4 = random_blocks(&r, MLXN_GGUF_Q4_K, 8 * d, &n4), *b6 = random_blocks(&r, MLXN_GGUF_Q6_K, 8 * d, &n6);
    mlxn_gguf_writer *w = llama_writer("llama", d, 1, 1);
    int64_t shp[2] = {8, d};
    CHECK_OK(mlxn_gguf_writer_add_tensor(w, "blk.0.ffn_up.weight", MLXN_GGUF_Q4_K, 2, shp, b4, n4));
    CHECK_OK(mlxn_gguf_writer_add_tensor(w, "output.weight", MLXN_GGUF_Q6_K, 2, shp, b6, n6));
    char *dir = tmpdir();
    char *gpath = join(dir, "m.gguf"), *out = join(dir, "out"), *out2 = join(dir, "out2");
    CHECK_OK(mlxn_gguf_writer_write(w, gpath));
    mlxn_gguf_writer_free(w);
    mlxn_convert_report rep;
    CHECK_OK(mlxn_convert(gpath, out, NULL, &rep));
    CHECK(rep.n_quantized == 2);
    mlxn_model_files *mf = NULL;
    CHECK_OK(mlxn_model_files_open(out, &mf));
    const char *names[2] = {"model.layers.0.mlp.up_proj.weight", "lm_head.weight"};
    const void *src[2] = {b4, b6};
    const mlxn_gguf_type types[2] = {MLXN_GGUF_Q4_K, MLXN_GGUF_Q6_K};
    const int want_bits[2] = {4, 6};
    for (int i = 0; i < 2 && mf; i++) {
        mlxn_model_tensor_info ti;
        CHECK_OK(mlxn_model_files_find(mf, names[i], &ti));
        CHECK_MSG(ti.bits == want_bits[i] && ti.group_size == 32 && ti.dtype == MLXN_F16, "%s: %d bits g%d", names[i],
                  ti.bits, ti.group_size);
        float got[8 * 256], ref[8 * 256];
        CHECK_OK(mlxn_model_files_read_f32(mf, names[i], got, 8 * 256));
        CHECK_OK(mlxn_gguf_dequantize(types[i], src[i], 8 * d, ref));
        double num = 0, den = 0;
        for (int k = 0; k < 8 * 256; k++) { num += ((double)got[k] - ref[k]) * ((double)got[k] - ref[k]); den += (double)ref[k] * ref[k]; }
        double e = num / den;
        const mlxn_convert_tensor_report *tr = NULL;
        for (int64_t k = 0; k < rep.n_tensors; k++) if (!strcmp(rep.tensors[k].name, names[i])) tr = &rep.tensors[k];
        CHECK(tr != NULL);
        if (tr) {
            CHECK(tr->kind == MLXN_CONVERT_QUANTIZED);
            CHECK_MSG(fabs(tr->nmse - e) <= 1e-6 * e + 1e-12, "%s: reported nmse %.6e, measured %.6e", names[i], tr->nmse, e);
            CHECK(!strcmp(tr->src_type, i ? "Q6_K" : "Q4_K"));
        }
        /* Q4_K sub-blocks of 32 are affine 4-bit grids mapped directly (only the f16 rounding of d*sc and
         * dmin*m is lost); Q6_K goes through the MLX quantizer at 6 bits */
        CHECK_MSG(e < (i == 0 ? 1e-6 : 1e-2), "%s: nmse %.3e too large", names[i], e);
    }
    mlxn_model_files_close(mf);
    CHECK(!rep.tensors || rep.worst_nmse >= rep.tensors[0].nmse);
    mlxn_convert_report_free(&rep);
    /* explicit bits/group and an override */
    mlxn_convert_opts o;
    mlxn_convert_opts_init(&o);
    o.bits = 8;
    o.group_size = 64;
    mlxn_convert_override ov = {"lm_head", 3, 128};
    o.overrides = &ov;
    o.n_overrides = 1;
    o.dtype = MLXN_BF16;
    CHECK_OK(mlxn_convert(gpath, out2, &o, NULL));
    CHECK_OK(mlxn_model_files_open(out2, &mf));
    if (mf) {
        mlxn_model_tensor_info ti;
        CHECK_OK(mlxn_model_files_find(mf, names[0], &ti));
        CHECK(ti.bits == 8 && ti.group_size == 64 && ti.dtype == MLXN_BF16);
        CHECK_OK(mlxn_model_files_find(mf, names[1], &ti));
        CHECK(ti.bits == 3 && ti.group_size == 128);
        int bits = 0, gs = 0;
        CHECK(mlxn_model_files_quant_for(mf, "lm_head", &bits, &gs, NULL) == 1);
        CHECK(bits == 3 && gs == 128);
        mlxn_model_files_close(mf);
    }
    /* f32 scales: Q4_K -> 4-bit g32 is exact */
    char *out3 = join(dir, "out3");
    mlxn_convert_opts_init(&o);
    o.dtype = MLXN_F32;
    CHECK_OK(mlxn_convert(gpath, out3, &o, NULL));
    CHECK_OK(mlxn_model_files_open(out3, &mf));
    if (mf) {
        float got[8 * 256], ref[8 * 256];
        CHECK_OK(mlxn_model_files_read_f32(mf, names[0], got, 8 * 256));
        CHECK_OK(mlxn_gguf_dequantize(MLXN_GGUF_Q4_K, b4, 8 * d, ref));
        check_values_equal("Q4_K -> MLX 4-bit g32 f32 scales", got, ref, 8 * 256);
        mlxn_model_files_close(mf);
    }
    free(out3);
    free(b4); free(b6);
    rm_rf(dir);
    free(gpath); free(out); free(out2); free(dir);
}

/* ---------------------------------------------------------------- tokenizer / config from GGUF */

static void test_gguf_tokenizer(void) {
    mlxn_gguf_writer *w = llama_writer("llama", 32, 2, 2);
    const char *toks[] = {"<|endoftext|>", "<|im_start|>", "<|im_end|>", "a", "b", "ab", "\xc4\xa0", "\xc4\xa0\x61\x62"};
    int32_t types[] = {3, 3, 3, 1, 1, 1, 1, 1};
    const char *merges[] = {"a b", "\xc4\xa0 ab"};
    CHECK_OK(mlxn_gguf_writer_add_str(w, "tokenizer.ggml.model", "gpt2"));
    CHECK_OK(mlxn_gguf_writer_add_str(w, "tokenizer.ggml.pre", "smollm"));
    CHECK_OK(mlxn_gguf_writer_add_arr_str(w, "tokenizer.ggml.tokens", toks, NULL, 8));
    CHECK_OK(mlxn_gguf_writer_add_arr(w, "tokenizer.ggml.token_type", MLXN_GGUF_KV_I32, types, 8));
    CHECK_OK(mlxn_gguf_writer_add_arr_str(w, "tokenizer.ggml.merges", merges, NULL, 2));
    CHECK_OK(mlxn_gguf_writer_add_u32(w, "tokenizer.ggml.bos_token_id", 1));
    CHECK_OK(mlxn_gguf_writer_add_u32(w, "tokenizer.ggml.eos_token_id", 2));
    CHECK_OK(mlxn_gguf_writer_add_bool(w, "tokenizer.ggml.add_bos_token", 0));
    CHECK_OK(mlxn_gguf_writer_add_str(w, "tokenizer.chat_template", "{{ messages }}"));
    float emb[8 * 32];
    t_rng r;
    t_rng_seed(&r, 1);
    t_fill(&r, emb, 256, -1, 1);
    int64_t shp[2] = {8, 32};
    CHECK_OK(mlxn_gguf_writer_add_tensor(w, "token_embd.weight", MLXN_GGUF_F32, 2, shp, emb, sizeof emb));
    CHECK_OK(mlxn_gguf_writer_add_tensor(w, "output.weight", MLXN_GGUF_F32, 2, shp, emb, sizeof emb));
    char *dir = tmpdir();
    char *gpath = join(dir, "m.gguf"), *out = join(dir, "out");
    CHECK_OK(mlxn_gguf_writer_write(w, gpath));
    mlxn_gguf_writer_free(w);
    mlxn_convert_report rep;
    CHECK_OK(mlxn_convert(gpath, out, NULL, &rep));
    CHECK(rep.tokenizer_written == 1);
    mlxn_convert_report_free(&rep);
    char *tj = join(out, "tokenizer.json"), *tc = join(out, "tokenizer_config.json"), *cj = join(out, "config.json");
    json_error_t err;
    json_t *t = json_load_file(tj, 0, &err);
    CHECK_MSG(t != NULL, "tokenizer.json: %s", err.text);
    if (t) {
        json_t *model = json_object_get(t, "model");
        CHECK(!strcmp(json_string_value(json_object_get(model, "type")), "BPE"));
        json_t *vocab = json_object_get(model, "vocab");
        CHECK(json_object_size(vocab) == 8);
        CHECK(json_integer_value(json_object_get(vocab, "\xc4\xa0\x61\x62")) == 7);
        json_t *m = json_object_get(model, "merges");
        CHECK(json_array_size(m) == 2 && !strcmp(json_string_value(json_array_get(m, 1)), "\xc4\xa0 ab"));
        json_t *added = json_object_get(t, "added_tokens");
        CHECK(json_array_size(added) == 3);
        CHECK(json_is_true(json_object_get(json_array_get(added, 2), "special")));
        json_t *pre = json_object_get(t, "pre_tokenizer");
        CHECK(!strcmp(json_string_value(json_object_get(pre, "type")), "Sequence"));
        CHECK(!strcmp(json_string_value(json_object_get(json_array_get(json_object_get(pre, "pretokenizers"), 0), "type")), "Digits"));
        json_decref(t);
    }
    t = json_load_file(tc, 0, &err);
    CHECK(t != NULL);
    if (t) {
        CHECK(!strcmp(json_string_value(json_object_get(t, "eos_token")), "<|im_end|>"));
        CHECK(!strcmp(json_string_value(json_object_get(t, "chat_template")), "{{ messages }}"));
        CHECK(json_is_false(json_object_get(t, "add_bos_token")));
        json_decref(t);
    }
    t = json_load_file(cj, 0, &err);
    CHECK(t != NULL);
    if (t) {
        CHECK(json_is_false(json_object_get(t, "tie_word_embeddings")));
        CHECK(json_integer_value(json_object_get(t, "eos_token_id")) == 2);
        CHECK(json_object_get(t, "quantization") == NULL); /* all float: no quantization block */
        json_decref(t);
    }
    free(tj); free(tc); free(cj);
    rm_rf(dir);
    free(gpath); free(out); free(dir);
}

/* A SentencePiece vocabulary (tests/data/tokenizer/spm_tiny.vocab.json, trained
 * by sentencepiece) converted to tokenizer.json must give the vocabulary and
 * the merge list of spm_tiny.json (Hugging Face's LlamaConverter algorithm,
 * whose ids match sentencepiece's; scripts/gen_tokenizer_fixtures.py). */
static void test_gguf_spm_tokenizer(void) {
    json_error_t err;
    char *vp = strdup(t_data_path("tokenizer/spm_tiny.vocab.json")), *rp = strdup(t_data_path("tokenizer/spm_tiny.json"));
    json_t *v = json_load_file(vp, 0, &err), *ref = json_load_file(rp, 0, &err);
    CHECK_MSG(v && ref, "spm fixtures missing: %s", err.text);
    if (!v || !ref) { json_decref(v); json_decref(ref); free(vp); free(rp); return; }
    json_t *jt = json_object_get(v, "tokens"), *js = json_object_get(v, "scores"), *jy = json_object_get(v, "token_types");
    size_t n = json_array_size(jt);
    const char **toks = calloc(n, sizeof *toks);
    float *scores = calloc(n, sizeof *scores);
    int32_t *types = calloc(n, sizeof *types);
    for (size_t i = 0; i < n; i++) {
        toks[i] = json_string_value(json_array_get(jt, i));
        scores[i] = (float)json_number_value(json_array_get(js, i));
        types[i] = (int32_t)json_integer_value(json_array_get(jy, i));
    }
    mlxn_gguf_writer *w = llama_writer("llama", 32, 2, 2);
    CHECK_OK(mlxn_gguf_writer_add_str(w, "tokenizer.ggml.model", "llama"));
    CHECK_OK(mlxn_gguf_writer_add_arr_str(w, "tokenizer.ggml.tokens", toks, NULL, n));
    CHECK_OK(mlxn_gguf_writer_add_arr(w, "tokenizer.ggml.scores", MLXN_GGUF_KV_F32, scores, n));
    CHECK_OK(mlxn_gguf_writer_add_arr(w, "tokenizer.ggml.token_type", MLXN_GGUF_KV_I32, types, n));
    CHECK_OK(mlxn_gguf_writer_add_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)json_integer_value(json_object_get(v, "bos_id"))));
    CHECK_OK(mlxn_gguf_writer_add_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)json_integer_value(json_object_get(v, "eos_id"))));
    CHECK_OK(mlxn_gguf_writer_add_u32(w, "tokenizer.ggml.unknown_token_id", (uint32_t)json_integer_value(json_object_get(v, "unk_id"))));
    CHECK_OK(mlxn_gguf_writer_add_bool(w, "tokenizer.ggml.add_bos_token", json_is_true(json_object_get(v, "add_bos"))));
    float emb[32 * 32] = {0.5f};
    int64_t shp[2] = {32, 32};
    CHECK_OK(mlxn_gguf_writer_add_tensor(w, "token_embd.weight", MLXN_GGUF_F32, 2, shp, emb, sizeof emb));
    char *dir = tmpdir();
    char *gpath = join(dir, "m.gguf"), *out = join(dir, "out");
    CHECK_OK(mlxn_gguf_writer_write(w, gpath));
    mlxn_gguf_writer_free(w);
    CHECK_OK(mlxn_convert(gpath, out, NULL, NULL));
    char *tj = join(out, "tokenizer.json");
    json_t *got = json_load_file(tj, 0, &err);
    CHECK_MSG(got != NULL, "tokenizer.json: %s", err.text);
    if (got) {
        json_t *gm = json_object_get(got, "model"), *rm = json_object_get(ref, "model");
        CHECK(json_equal(json_object_get(gm, "vocab"), json_object_get(rm, "vocab")));
        json_t *gmer = json_object_get(gm, "merges"), *rmer = json_object_get(rm, "merges");
        CHECK_MSG(json_array_size(gmer) == json_array_size(rmer), "merges: %zu vs %zu", json_array_size(gmer),
                  json_array_size(rmer));
        size_t bad = 0, first = 0;
        for (size_t i = 0; i < json_array_size(rmer); i++)
            if (!json_equal(json_array_get(gmer, i), json_array_get(rmer, i))) { if (!bad) first = i; bad++; }
        CHECK_MSG(bad == 0, "%zu merges differ from the HF converter's order, first at %zu", bad, first);
        CHECK(json_is_true(json_object_get(gm, "byte_fallback")));
        CHECK(!strcmp(json_string_value(json_object_get(gm, "unk_token")), "<unk>"));
        CHECK(json_equal(json_object_get(got, "normalizer"), json_object_get(ref, "normalizer")));
        CHECK(json_equal(json_object_get(got, "decoder"), json_object_get(ref, "decoder")));
        CHECK(json_equal(json_object_get(got, "post_processor"), json_object_get(ref, "post_processor")));
        CHECK(json_equal(json_object_get(got, "added_tokens"), json_object_get(ref, "added_tokens")));
        json_decref(got);
    }
    json_decref(v);
    json_decref(ref);
    free(toks); free(scores); free(types);
    free(tj); free(vp); free(rp);
    rm_rf(dir);
    free(gpath); free(out); free(dir);
}

/* ---------------------------------------------------------------- HF -> MLX vs mlx-lm */

/* Compare every tensor of mlx-lm's file with ours: same names, dtype, shape and bytes. */
static void compare_dirs_bytes(const char *ours_dir, const char *ref_file) {
    char *ours = join(ours_dir, "model.safetensors");
    mlxn_st *a = NULL, *b = NULL;
    CHECK_OK(mlxn_st_open(ours, &a));
    CHECK_OK(mlxn_st_open(ref_file, &b));
    if (a && b) {
        CHECK_MSG(mlxn_st_n_tensors(a) == mlxn_st_n_tensors(b), "tensor count %lld vs mlx-lm %lld",
                  (long long)mlxn_st_n_tensors(a), (long long)mlxn_st_n_tensors(b));
        for (int64_t i = 0; i < mlxn_st_n_tensors(b); i++) {
            mlxn_st_tensor_info tb, ta;
            CHECK_OK(mlxn_st_tensor(b, i, &tb));
            int64_t j = mlxn_st_find(a, tb.name);
            CHECK_MSG(j >= 0, "mlx-lm tensor '%s' missing from ours", tb.name);
            if (j < 0) continue;
            CHECK_OK(mlxn_st_tensor(a, j, &ta));
            CHECK_MSG(ta.dtype == tb.dtype && ta.ndim == tb.ndim && ta.nbytes == tb.nbytes, "'%s': %s vs mlx-lm %s",
                      tb.name, ta.dtype_name, tb.dtype_name);
            if (ta.nbytes != tb.nbytes) continue;
            size_t diff = 0;
            for (size_t k = 0; k < ta.nbytes; k++) diff += ((const uint8_t *)ta.data)[k] != ((const uint8_t *)tb.data)[k];
            CHECK_MSG(diff == 0, "'%s': %zu of %zu bytes differ from mlx-lm", tb.name, diff, ta.nbytes);
        }
        const char *fmt = mlxn_st_metadata_get(a, "format");
        CHECK(fmt && !strcmp(fmt, "mlx"));
    }
    mlxn_st_close(a);
    mlxn_st_close(b);
    free(ours);
}

static void test_hf_q4_matches_mlx_lm(void) {
    char *hf = strdup(t_data_path("qwen3_tiny/hf"));
    char *ref = strdup(t_data_path("qwen3_tiny/mlx_q4/model.safetensors"));
    char *dir = tmpdir(), *out = join(dir, "q4");
    mlxn_convert_opts o;
    mlxn_convert_opts_init(&o);
    o.bits = 4;
    o.group_size = 64;
    o.n_threads = 3; /* rows split unevenly over threads: results must not depend on it */
    mlxn_convert_report rep;
    CHECK_OK(mlxn_convert(hf, out, &o, &rep));
    CHECK(rep.n_quantized == 16); /* embed, lm_head, 7 linears x 2 layers */
    CHECK(rep.n_float == 9);      /* 2x(2 norms + q_norm + k_norm) + final norm */
    CHECK(rep.worst_nmse > 1e-4 && rep.worst_nmse < 2e-2);
    mlxn_convert_report_free(&rep);
    compare_dirs_bytes(out, ref);
    mlxn_model_files *mf = NULL;
    CHECK_OK(mlxn_model_files_open(out, &mf));
    if (mf) {
        int bits = 0, gs = 0;
        CHECK(mlxn_model_files_quant_for(mf, "model.layers.1.mlp.down_proj", &bits, &gs, NULL) == 1);
        CHECK(bits == 4 && gs == 64);
        CHECK(mlxn_model_files_tokenizer_json(mf) != NULL);
        const json_t *cfg = mlxn_model_files_config(mf);
        CHECK(!strcmp(json_string_value(json_object_get(cfg, "model_type")), "qwen3"));
        mlxn_model_files_close(mf);
    }
    rm_rf(dir);
    free(hf); free(ref); free(out); free(dir);
}

/* Small shards: several model-0000i-of-0000N files plus the index; the
 * directory opens and every tensor still equals mlx-lm's. */
static void test_hf_shards(void) {
    char *hf = strdup(t_data_path("qwen3_tiny/hf"));
    char *ref = strdup(t_data_path("qwen3_tiny/mlx_q4/model.safetensors"));
    char *dir = tmpdir(), *out = join(dir, "sh");
    mlxn_convert_opts o;
    mlxn_convert_opts_init(&o);
    o.shard_bytes = 40000;
    mlxn_convert_report rep;
    CHECK_OK(mlxn_convert(hf, out, &o, &rep));
    CHECK_MSG(rep.n_shards >= 3, "%d shards", rep.n_shards);
    char fname[64];
    snprintf(fname, sizeof fname, "model-%05d-of-%05d.safetensors", rep.n_shards, rep.n_shards);
    char *last = join(out, fname), *single = join(out, "model.safetensors");
    const int n_shards = rep.n_shards;
    FILE *f = fopen(last, "rb");
    CHECK_MSG(f != NULL, "%s missing", last);
    if (f) fclose(f);
    f = fopen(single, "rb");
    CHECK(f == NULL); /* sharded output has no model.safetensors */
    if (f) fclose(f);
    mlxn_convert_report_free(&rep);
    mlxn_model_files *mf = NULL;
    mlxn_st *b = NULL;
    CHECK_OK(mlxn_model_files_open(out, &mf));
    CHECK_OK(mlxn_st_open(ref, &b));
    if (mf && b) {
        CHECK(mlxn_model_files_n_shards(mf) == n_shards);
        for (int64_t i = 0; i < mlxn_st_n_tensors(b); i++) {
            mlxn_st_tensor_info tb, ta;
            CHECK_OK(mlxn_st_tensor(b, i, &tb));
            if (mlxn_model_files_st_tensor(mf, tb.name, &ta) != MLXN_OK) { CHECK_MSG(0, "'%s' missing", tb.name); continue; }
            CHECK_MSG(ta.nbytes == tb.nbytes && !memcmp(ta.data, tb.data, ta.nbytes), "'%s' differs", tb.name);
        }
    }
    mlxn_st_close(b);
    mlxn_model_files_close(mf);
    rm_rf(dir);
    free(last); free(single);
    free(hf); free(ref); free(out); free(dir);
}

static void test_hf_mixed_recipe(void) {
    char *hf = strdup(t_data_path("qwen3_tiny/hf"));
    char *qpath = strdup(t_data_path("qwen3_tiny/mixed_4_6_quantization.json"));
    char *dir = tmpdir(), *out = join(dir, "mixed");
    mlxn_convert_opts o;
    mlxn_convert_opts_init(&o);
    o.recipe = "mixed_4_6";
    CHECK_OK(mlxn_convert(hf, out, &o, NULL));
    json_error_t err;
    json_t *ref = json_load_file(qpath, 0, &err);
    CHECK_MSG(ref != NULL, "%s: %s", qpath, err.text);
    char *cj = join(out, "config.json");
    json_t *cfg = json_load_file(cj, 0, &err);
    CHECK(cfg != NULL);
    if (ref && cfg) {
        json_t *q = json_object_get(cfg, "quantization");
        CHECK(json_equal(q, json_object_get(cfg, "quantization_config")));
        const char *k;
        json_t *v;
        int n_mod = 0;
        json_object_foreach(ref, k, v) {
            json_t *mine = json_object_get(q, k);
            CHECK_MSG(mine != NULL, "mixed_4_6: module '%s' missing", k);
            if (!json_is_object(v) || !mine) continue;
            n_mod++;
            CHECK_MSG(json_integer_value(json_object_get(mine, "bits")) == json_integer_value(json_object_get(v, "bits")),
                      "mixed_4_6 '%s': bits %lld vs mlx-lm %lld", k, (long long)json_integer_value(json_object_get(mine, "bits")),
                      (long long)json_integer_value(json_object_get(v, "bits")));
        }
        CHECK(n_mod == 16);
        CHECK(json_object_size(q) == json_object_size(ref));
    }
    json_decref(ref);
    json_decref(cfg);
    mlxn_model_files *mf = NULL;
    CHECK_OK(mlxn_model_files_open(out, &mf));
    if (mf) {
        mlxn_model_tensor_info ti;
        CHECK_OK(mlxn_model_files_find(mf, "lm_head.weight", &ti));
        CHECK(ti.bits == 6 && ti.group_size == 64);
        CHECK_OK(mlxn_model_files_find(mf, "model.layers.1.mlp.down_proj.weight", &ti));
        CHECK(ti.bits == 6);
        CHECK_OK(mlxn_model_files_find(mf, "model.layers.0.mlp.down_proj.weight", &ti));
        CHECK(ti.bits == 4);
        mlxn_model_files_close(mf);
    }
    /* overrides: 8-bit g32 lm_head, up_proj left in float (config entry false) */
    char *out2 = join(dir, "ovr");
    mlxn_convert_override ov[2] = {{"lm_head", 8, 32}, {"model.layers.*.mlp.up_proj", 0, 0}};
    mlxn_convert_opts_init(&o);
    o.overrides = ov;
    o.n_overrides = 2;
    o.dtype = MLXN_F32;
    CHECK_OK(mlxn_convert(hf, out2, &o, NULL));
    CHECK_OK(mlxn_model_files_open(out2, &mf));
    if (mf) {
        mlxn_model_tensor_info ti;
        CHECK_OK(mlxn_model_files_find(mf, "lm_head.weight", &ti));
        CHECK(ti.bits == 8 && ti.group_size == 32 && ti.dtype == MLXN_F32);
        CHECK_OK(mlxn_model_files_find(mf, "model.layers.1.mlp.up_proj.weight", &ti));
        CHECK(ti.format == MLXN_WEIGHT_DENSE && ti.dtype == MLXN_F32);
        CHECK(mlxn_model_files_quant_for(mf, "model.layers.1.mlp.up_proj", NULL, NULL, NULL) == 0);
        CHECK_OK(mlxn_model_files_find(mf, "model.layers.1.mlp.gate_proj.weight", &ti));
        CHECK(ti.bits == 4 && ti.group_size == 64);
        mlxn_model_files_close(mf);
    }
    rm_rf(dir);
    free(hf); free(qpath); free(out); free(out2); free(cj); free(dir);
}

/* ---------------------------------------------------------------- errors */

static void test_errors(void) {
    char *dir = tmpdir(), *gpath = join(dir, "m.gguf"), *out = join(dir, "out");
    mlxn_convert_opts o;
    mlxn_convert_opts_init(&o);
    o.bits = 7;
    CHECK_ERR(mlxn_convert(gpath, out, &o, NULL), MLXN_ERR_INVALID_ARG, "bits 7");
    mlxn_convert_opts_init(&o);
    o.group_size = 48;
    CHECK_ERR(mlxn_convert(gpath, out, &o, NULL), MLXN_ERR_INVALID_ARG, "group size 48");
    mlxn_convert_opts_init(&o);
    CHECK(mlxn_convert(gpath, out, &o, NULL) == MLXN_ERR_NOT_FOUND); /* no such input */
    mlxn_convert_opts_init(&o);
    o.recipe = "mixed_9_9";
    char *hf = strdup(t_data_path("qwen3_tiny/hf"));
    CHECK_ERR(mlxn_convert(hf, out, &o, NULL), MLXN_ERR_INVALID_ARG, "mixed_9_9");
    mlxn_convert_opts_init(&o);
    o.force = 1;
    CHECK_ERR(mlxn_convert(hf, hf, &o, NULL), MLXN_ERR_INVALID_ARG, "is the input");
    mlxn_convert_override bad = {"lm_head", 7, 0};
    o.overrides = &bad;
    o.n_overrides = 1;
    CHECK_ERR(mlxn_convert(hf, out, &o, NULL), MLXN_ERR_INVALID_ARG, "lm_head");
    free(hf);
    char *q4 = strdup(t_data_path("qwen3_tiny/mlx_q4"));
    CHECK_ERR(mlxn_convert(q4, out, NULL, NULL), MLXN_ERR_UNSUPPORTED, "already quantized");
    free(q4);

    float x[64] = {1};
    int64_t shp[2] = {2, 32};
    mlxn_gguf_writer *w = llama_writer("gemma3", 32, 1, 1);
    CHECK_OK(mlxn_gguf_writer_add_tensor(w, "blk.0.ffn_up.weight", MLXN_GGUF_F32, 2, shp, x, sizeof x));
    CHECK_OK(mlxn_gguf_writer_write(w, gpath));
    mlxn_gguf_writer_free(w);
    CHECK_ERR(mlxn_convert(gpath, out, NULL, NULL), MLXN_ERR_UNSUPPORTED, "gemma3");
    w = llama_writer("llama", 32, 1, 1);
    CHECK_OK(mlxn_gguf_writer_add_tensor(w, "blk.0.mystery.weight", MLXN_GGUF_F32, 2, shp, x, sizeof x));
    CHECK_OK(mlxn_gguf_writer_write(w, gpath));
    mlxn_gguf_writer_free(w);
    CHECK_ERR(mlxn_convert(gpath, out, NULL, NULL), MLXN_ERR_UNSUPPORTED, "blk.0.mystery.weight");
    /* a garbage file is a format error naming it */
    FILE *f = fopen(gpath, "wb");
    fputs("not a model", f);
    fclose(f);
    mlxn_status st = mlxn_convert(gpath, out, NULL, NULL);
    CHECK(st == MLXN_ERR_FORMAT || st == MLXN_ERR_UNSUPPORTED);
    CHECK(t_contains(mlxn_last_error(), "m.gguf"));
    /* names */
    char buf[128];
    CHECK(mlxn_convert_gguf_name_to_hf("blk.12.ffn_down.weight", buf, sizeof buf) && !strcmp(buf, "model.layers.12.mlp.down_proj.weight"));
    CHECK(mlxn_convert_gguf_name_to_hf("blk.3.attn_q.bias", buf, sizeof buf) && !strcmp(buf, "model.layers.3.self_attn.q_proj.bias"));
    CHECK(mlxn_convert_gguf_name_to_hf("output.weight", buf, sizeof buf) && !strcmp(buf, "lm_head.weight"));
    CHECK(!mlxn_convert_gguf_name_to_hf("blk.x.attn_q.weight", buf, sizeof buf));
    CHECK(!mlxn_convert_gguf_name_to_hf("blk.1.attn_q", buf, sizeof buf));
    /* recipe choices (mlx-lm: 30 layers -> more bits for layers < 3, >= 26 and (i - 3) % 3 == 2) */
    CHECK(mlxn_convert_recipe_bits("mixed_4_6", "model.layers.0.self_attn.v_proj", 30, 4) == 6);
    CHECK(mlxn_convert_recipe_bits("mixed_4_6", "model.layers.5.self_attn.v_proj", 30, 4) == 6);
    CHECK(mlxn_convert_recipe_bits("mixed_4_6", "model.layers.6.self_attn.v_proj", 30, 4) == 4);
    CHECK(mlxn_convert_recipe_bits("mixed_4_6", "model.layers.6.self_attn.q_proj", 30, 4) == 4);
    CHECK(mlxn_convert_recipe_bits("mixed_3_4", "model.layers.29.mlp.down_proj", 30, 4) == 4);
    CHECK(mlxn_convert_recipe_bits("mixed_2_6", "lm_head", 30, 4) == 6);
    CHECK(mlxn_convert_recipe_bits("uniform", "lm_head", 30, 5) == 5);
    CHECK(mlxn_convert_recipe_bits("bogus", "lm_head", 30, 5) == 0);
    rm_rf(dir);
    free(gpath); free(out); free(dir);
}

int main(void) {
    T_RUN(test_gguf_lossless);
    T_RUN(test_rope_unpermute_roundtrip);
    T_RUN(test_f16_overflow_fallback);
    T_RUN(test_gguf_kquant_requant);
    T_RUN(test_gguf_tokenizer);
    T_RUN(test_gguf_spm_tokenizer);
    T_RUN(test_hf_q4_matches_mlx_lm);
    T_RUN(test_hf_shards);
    T_RUN(test_hf_mixed_recipe);
    T_RUN(test_errors);
    return t_finish();
}
