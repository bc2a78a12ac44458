/* test_model_files.c — the unified model loader over MLX directories and
 * GGUF files: config.json quantization (global, per-module overrides,
 * `false`), grouping of quantized triples with their bits/group size and
 * logical shapes, sharded directories (index.json), tokenizer files,
 * dequantized values against mx.dequantize (tests/data/io, written by
 * scripts/make_io_fixtures.py), zero-copy CPU loading from the mmap with
 * weights outliving the handle, the bad directories in tests/data/bad, and
 * (when the SmolLM2 GGUF is in the cache) loading a whole real model onto
 * the CPU with the peak RSS printed against the file size. */
#include "io/model_files.h"
#include "io/safetensors.h"
#include "testutil.h"

#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static char g_tmp[256];
static mlxn_device *g_cpu;

static const char *tmp_path(const char *name) {
    static char buf[512];
    snprintf(buf, sizeof buf, "%s/%s", g_tmp, name);
    return buf;
}

static int ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && strcmp(s + a - b, suf) == 0;
}

typedef struct mod_case {
    const char *name;
    int quantized, bits, gs;
    int64_t n, k;
} mod_case;

static const mod_case k_mods[] = {
    {"model.embed_tokens.weight", 1, 4, 32, 32, 64},
    {"model.layers.0.self_attn.q_proj.weight", 1, 4, 32, 64, 64},
    {"model.layers.0.self_attn.k_proj.weight", 1, 3, 64, 32, 64},
    {"model.layers.0.self_attn.v_proj.weight", 1, 6, 32, 32, 64},
    {"model.layers.0.mlp.down_proj.weight", 1, 8, 64, 64, 128},
    {"model.layers.0.mlp.up_proj.weight", 1, 2, 32, 128, 64},
    {"model.layers.0.mlp.gate_proj.weight", 0, 0, 0, 128, 64},
};

static void check_tiny(mlxn_model_files *mf, int shards) {
    CHECK(mlxn_model_files_source(mf) == MLXN_SRC_MLX_DIR);
    CHECK(strcmp(mlxn_model_files_architecture(mf), "llama") == 0);
    CHECK(mlxn_model_files_gguf(mf) == NULL);
    CHECK(mlxn_model_files_config(mf) && json_is_object(mlxn_model_files_config(mf)));
    CHECK(mlxn_model_files_tokenizer_json(mf) && ends_with(mlxn_model_files_tokenizer_json(mf), "/tokenizer.json"));
    CHECK(mlxn_model_files_tokenizer_config_json(mf) &&
          ends_with(mlxn_model_files_tokenizer_config_json(mf), "/tokenizer_config.json"));
    CHECK(mlxn_model_files_generation_config_json(mf) == NULL);
    CHECK(mlxn_model_files_n_shards(mf) == shards);
    /* 6 quantized modules + gate_proj + input_layernorm + q_proj.bias + norm */
    CHECK_MSG(mlxn_model_files_n_tensors(mf) == 10, "n_tensors %lld", (long long)mlxn_model_files_n_tensors(mf));
    for (size_t i = 0; i < sizeof k_mods / sizeof k_mods[0]; i++) {
        mlxn_model_tensor_info ti;
        CHECK_OK(mlxn_model_files_find(mf, k_mods[i].name, &ti));
        const mod_case *m = &k_mods[i];
        CHECK_MSG(ti.quantized == m->quantized && ti.ndim == 2 && ti.shape[0] == m->n && ti.shape[1] == m->k,
                  "%s: quantized %d shape [%lld, %lld]", m->name, ti.quantized, (long long)ti.shape[0],
                  (long long)ti.shape[1]);
        if (m->quantized) {
            CHECK_MSG(ti.format == MLXN_WEIGHT_MLX_AFFINE && ti.bits == m->bits && ti.group_size == m->gs &&
                          ti.dtype == MLXN_BF16 && ti.mode && strcmp(ti.mode, "affine") == 0 &&
                          strcmp(ti.src_dtype, "U32") == 0,
                      "%s: format %d bits %d gs %d", m->name, (int)ti.format, ti.bits, ti.group_size);
            /* storage: packed u32 + bf16 scales + biases */
            size_t want = (size_t)(m->n * m->k * m->bits / 8) + 2 * (size_t)(m->n * (m->k / m->gs)) * 2;
            CHECK_MSG(ti.nbytes == want, "%s: nbytes %zu, want %zu", m->name, ti.nbytes, want);
        } else {
            CHECK(ti.format == MLXN_WEIGHT_DENSE && ti.dtype == MLXN_BF16 && ti.bits == 0 && ti.mode == NULL);
        }
    }
    int bits = 0, gs = 0;
    const char *mode = NULL;
    CHECK(mlxn_model_files_quant_for(mf, "model.layers.0.self_attn.q_proj", &bits, &gs, &mode) == 1);
    CHECK(bits == 4 && gs == 32 && mode && strcmp(mode, "affine") == 0);
    CHECK(mlxn_model_files_quant_for(mf, "model.layers.0.mlp.down_proj", &bits, &gs, &mode) == 1);
    CHECK(bits == 8 && gs == 64);
    CHECK(mlxn_model_files_quant_for(mf, "model.layers.0.mlp.gate_proj", &bits, &gs, &mode) == 0);
    /* the module path finds the triple; P.bias (singular) is a separate dense tensor */
    mlxn_model_tensor_info ti;
    CHECK_OK(mlxn_model_files_find(mf, "model.layers.0.self_attn.q_proj", &ti));
    CHECK(ti.quantized && strcmp(ti.name, "model.layers.0.self_attn.q_proj.weight") == 0);
    CHECK_OK(mlxn_model_files_find(mf, "model.layers.0.self_attn.q_proj.bias", &ti));
    CHECK(!ti.quantized && ti.dtype == MLXN_F32 && ti.ndim == 1 && ti.shape[0] == 64);
    CHECK_ERR(mlxn_model_files_find(mf, "model.layers.0.self_attn.q_proj.scales", &ti), MLXN_ERR_NOT_FOUND,
              "tensor 'model.layers.0.self_attn.q_proj.scales' not found");
    CHECK_ERR(mlxn_model_files_find(mf, "model.nope", &ti), MLXN_ERR_NOT_FOUND, mlxn_model_files_path(mf));
    mlxn_st_tensor_info raw;
    CHECK_OK(mlxn_model_files_st_tensor(mf, "model.layers.0.self_attn.q_proj.scales", &raw));
    CHECK(raw.dtype == MLXN_ST_BF16 && raw.shape[0] == 64 && raw.shape[1] == 2);
    int64_t np = mlxn_model_files_n_params(mf);
    CHECK_MSG(np == 32 * 64 + 64 * 64 + 32 * 64 * 2 + 64 * 128 + 128 * 64 * 2 + 64 * 3, "n_params %lld", (long long)np);
}

/* Dequantized values (read_f32) vs mx.dequantize of the first 4 rows. */
static void check_values(mlxn_model_files *mf) {
    mlxn_st *exp = NULL;
    CHECK_OK(mlxn_st_open(t_data_path("io/mlx_tiny_expected.safetensors"), &exp));
    if (!exp) return;
    for (size_t i = 0; i < sizeof k_mods / sizeof k_mods[0]; i++) {
        const mod_case *m = &k_mods[i];
        if (!m->quantized) continue;
        float *all = malloc((size_t)(m->n * m->k) * sizeof(float));
        CHECK_OK(mlxn_model_files_read_f32(mf, m->name, all, (size_t)(m->n * m->k)));
        mlxn_st_tensor_info e;
        int64_t ei = mlxn_st_find(exp, m->name);
        CHECK_MSG(ei >= 0, "expected %s missing", m->name);
        if (ei >= 0 && mlxn_st_tensor(exp, ei, &e) == MLXN_OK) {
            CHECK(e.nbytes == (size_t)(4 * m->k) * 4);
            float *ref = malloc(e.nbytes);
            memcpy(ref, e.data, e.nbytes);
            t_check_nmse(m->name, all, ref, (size_t)(4 * m->k), 1e-12);
            free(ref);
        }
        free(all);
    }
    float small[4];
    CHECK_ERR(mlxn_model_files_read_f32(mf, "model.norm.weight", small, 4), MLXN_ERR_RANGE, "has 64 values");
    mlxn_st_close(exp);
}

static void test_mlx_tiny(void) {
    mlxn_model_files *mf = NULL;
    CHECK_OK(mlxn_model_files_open(t_data_path("io/mlx_tiny"), &mf));
    if (!mf) return;
    check_tiny(mf, 1);
    check_values(mf);
    mlxn_model_files_close(mf);
}

static void test_mlx_tiny_sharded(void) {
    mlxn_model_files *a = NULL, *b = NULL;
    CHECK_OK(mlxn_model_files_open(t_data_path("io/mlx_tiny_sharded"), &b));
    CHECK_OK(mlxn_model_files_open(t_data_path("io/mlx_tiny"), &a));
    if (!a || !b) goto out;
    check_tiny(b, 2);
    check_values(b);
    /* same logical tensors and values as the single-file directory */
    for (int64_t i = 0; i < mlxn_model_files_n_tensors(a); i++) {
        mlxn_model_tensor_info x, y;
        CHECK_OK(mlxn_model_files_tensor(a, i, &x));
        CHECK_OK(mlxn_model_files_tensor(b, i, &y));
        CHECK_MSG(strcmp(x.name, y.name) == 0 && x.format == y.format && x.bits == y.bits && x.nbytes == y.nbytes &&
                      memcmp(x.shape, y.shape, sizeof x.shape) == 0,
                  "tensor %lld differs (%s / %s)", (long long)i, x.name, y.name);
        size_t n = 1;
        for (int d = 0; d < x.ndim; d++) n *= (size_t)x.shape[d];
        float *fa = malloc(n * 4), *fb = malloc(n * 4);
        CHECK_OK(mlxn_model_files_read_f32(a, x.name, fa, n));
        CHECK_OK(mlxn_model_files_read_f32(b, y.name, fb, n));
        t_check_bytes(x.name, fa, fb, n * 4);
        free(fa);
        free(fb);
    }
out:
    mlxn_model_files_close(a);
    mlxn_model_files_close(b);
}

/* Weights and buffers on the CPU device: formats, values, dtype conversion. */
static void test_load_cpu(void) {
    if (!g_cpu) {
        printf("  note: no CPU device (%s); skipping\n", mlxn_last_error());
        return;
    }
    mlxn_model_files *mf = NULL;
    CHECK_OK(mlxn_model_files_open(t_data_path("io/mlx_tiny"), &mf));
    if (!mf) return;
    for (size_t i = 0; i < sizeof k_mods / sizeof k_mods[0]; i++) {
        const mod_case *m = &k_mods[i];
        mlxn_weight *w = NULL;
        CHECK_OK(mlxn_model_files_load_weight(mf, g_cpu, m->name, &w));
        if (!w) continue;
        const mlxn_weight_desc *d = mlxn_weight_get_desc(w);
        CHECK(d->rows == m->n && d->cols == m->k);
        size_t n = (size_t)(m->n * m->k);
        float *got = malloc(n * 4), *ref = malloc(n * 4);
        CHECK_OK(mlxn_model_files_read_f32(mf, m->name, ref, n));
        if (m->quantized) {
            CHECK(d->format == MLXN_WEIGHT_MLX_AFFINE && d->bits == m->bits && d->group_size == m->gs);
            CHECK_OK(mlxn_dequantize_affine(mlxn_buffer_host_ptr(d->data), mlxn_buffer_host_ptr(d->scales),
                                            mlxn_buffer_host_ptr(d->biases), mlxn_buffer_dtype(d->scales), m->n, m->k,
                                            m->bits, m->gs, got));
        } else {
            CHECK(d->format == MLXN_WEIGHT_DENSE && mlxn_buffer_dtype(d->data) == MLXN_BF16);
            const uint16_t *h = mlxn_buffer_host_ptr(d->data);
            for (size_t j = 0; j < n; j++) got[j] = mlxn_bf16_to_f32(h[j]);
        }
        t_check_bytes(m->name, got, ref, n * 4);
        free(got);
        free(ref);
        mlxn_weight_destroy(w);
    }
    mlxn_weight *w = NULL;
    CHECK_ERR(mlxn_model_files_load_weight(mf, g_cpu, "model.norm.weight", &w), MLXN_ERR_SHAPE,
              "tensor 'model.norm.weight' has shape [64]; a weight must be 2-D");
    CHECK_ERR(mlxn_model_files_load_weight(mf, g_cpu, "model.missing.weight", &w), MLXN_ERR_NOT_FOUND,
              "tensor 'model.missing.weight' not found");
    /* buffers: bf16 norm -> f32 / as is; quantized embedding -> f32 */
    mlxn_buffer *b = NULL;
    CHECK_OK(mlxn_model_files_load_buffer(mf, g_cpu, "model.layers.0.input_layernorm.weight", MLXN_F32, &b));
    float ref[64];
    CHECK_OK(mlxn_model_files_read_f32(mf, "model.layers.0.input_layernorm.weight", ref, 64));
    if (b) {
        CHECK(mlxn_buffer_dtype(b) == MLXN_F32 && mlxn_buffer_ndim(b) == 1 && mlxn_buffer_dim(b, 0) == 64);
        t_check_bytes("input_layernorm f32", mlxn_buffer_host_ptr(b), ref, sizeof ref);
    }
    mlxn_buffer_release(b);
    b = NULL;
    CHECK_OK(mlxn_model_files_load_buffer(mf, g_cpu, "model.layers.0.input_layernorm.weight", MLXN_BF16, &b));
    if (b) {
        mlxn_st_tensor_info raw;
        CHECK_OK(mlxn_model_files_st_tensor(mf, "model.layers.0.input_layernorm.weight", &raw));
        t_check_bytes("input_layernorm bf16", mlxn_buffer_host_ptr(b), raw.data, 128);
    }
    mlxn_buffer_release(b);
    b = NULL;
    CHECK_OK(mlxn_model_files_load_buffer(mf, g_cpu, "model.embed_tokens.weight", MLXN_F16, &b));
    if (b) {
        CHECK(mlxn_buffer_dtype(b) == MLXN_F16 && mlxn_buffer_dim(b, 0) == 32 && mlxn_buffer_dim(b, 1) == 64);
        float *e = malloc(32 * 64 * 4), *g = malloc(32 * 64 * 4);
        CHECK_OK(mlxn_model_files_read_f32(mf, "model.embed_tokens.weight", e, 32 * 64));
        const uint16_t *h = mlxn_buffer_host_ptr(b);
        for (int i = 0; i < 32 * 64; i++) {
            g[i] = mlxn_f16_to_f32(h[i]);
            e[i] = mlxn_f16_to_f32(mlxn_f32_to_f16(e[i]));
        }
        t_check_bytes("embed f16", g, e, 32 * 64 * 4);
        free(e);
        free(g);
    }
    mlxn_buffer_release(b);
    b = NULL;
    CHECK_ERR(mlxn_model_files_load_buffer(mf, g_cpu, "model.layers.0.self_attn.q_proj.bias", MLXN_I32, &b),
              MLXN_ERR_DTYPE, "cannot be loaded as i32");
    mlxn_model_files_close(mf);
}

/* An MLX directory written by our own writer (8-byte aligned data): CPU
 * loads are zero-copy views of the mapping, and stay valid after close. */
static void test_zero_copy(void) {
    if (!g_cpu) return;
    mlxn_model_files *src = NULL;
    CHECK_OK(mlxn_model_files_open(t_data_path("io/mlx_tiny"), &src));
    if (!src) return;
    const char *names[] = {"model.layers.0.self_attn.q_proj.weight", "model.layers.0.self_attn.q_proj.scales",
                           "model.layers.0.self_attn.q_proj.biases", "model.norm.weight",
                           "model.layers.0.mlp.gate_proj.weight"};
    mlxn_st_writer *w = NULL;
    CHECK_OK(mlxn_st_writer_create(&w));
    void *copies[5];
    size_t sizes[5];
    for (int i = 0; i < 5; i++) {
        mlxn_st_tensor_info ti;
        CHECK_OK(mlxn_model_files_st_tensor(src, names[i], &ti));
        copies[i] = malloc(ti.nbytes);
        memcpy(copies[i], ti.data, ti.nbytes);
        sizes[i] = ti.nbytes;
        CHECK_OK(mlxn_st_writer_add(w, names[i], ti.dtype, ti.ndim, ti.shape, copies[i]));
    }
    CHECK_OK(mlxn_st_writer_set_metadata(w, "format", "mlx"));
    mkdir(tmp_path("zc"), 0755);
    CHECK_OK(mlxn_st_writer_write(w, tmp_path("zc/model.safetensors")));
    mlxn_st_writer_free(w);
    mlxn_model_files_close(src);
    FILE *f = fopen(tmp_path("zc/config.json"), "w");
    fputs("{\"model_type\": \"llama\", \"quantization\": {\"group_size\": 32, \"bits\": 4}}", f);
    fclose(f);

    mlxn_model_files *mf = NULL;
    CHECK_OK(mlxn_model_files_open(tmp_path("zc"), &mf));
    if (!mf) goto out;
    CHECK(mlxn_model_files_tokenizer_json(mf) == NULL);
    mlxn_weight *q = NULL, *g = NULL;
    mlxn_buffer *norm = NULL;
    CHECK_OK(mlxn_model_files_load_weight(mf, g_cpu, "model.layers.0.self_attn.q_proj", &q));
    CHECK_OK(mlxn_model_files_load_weight(mf, g_cpu, "model.layers.0.mlp.gate_proj.weight", &g));
    CHECK_OK(mlxn_model_files_load_buffer(mf, g_cpu, "model.norm.weight", MLXN_BF16, &norm));
    mlxn_st_tensor_info ti;
    CHECK_OK(mlxn_model_files_st_tensor(mf, names[0], &ti));
    if (q) CHECK_MSG(mlxn_buffer_host_ptr(mlxn_weight_get_desc(q)->data) == ti.data, "packed weight was copied");
    CHECK_OK(mlxn_model_files_st_tensor(mf, names[4], &ti));
    if (g) CHECK_MSG(mlxn_buffer_host_ptr(mlxn_weight_get_desc(g)->data) == ti.data, "dense weight was copied");
    CHECK_OK(mlxn_model_files_st_tensor(mf, names[3], &ti));
    if (norm) CHECK_MSG(mlxn_buffer_host_ptr(norm) == ti.data, "norm buffer was copied");
    mlxn_model_files_close(mf); /* weights keep the mapping alive */
    if (q) {
        const mlxn_weight_desc *d = mlxn_weight_get_desc(q);
        t_check_bytes("q packed after close", mlxn_buffer_host_ptr(d->data), copies[0], sizes[0]);
        t_check_bytes("q scales after close", mlxn_buffer_host_ptr(d->scales), copies[1], sizes[1]);
        t_check_bytes("q biases after close", mlxn_buffer_host_ptr(d->biases), copies[2], sizes[2]);
    }
    if (norm) t_check_bytes("norm after close", mlxn_buffer_host_ptr(norm), copies[3], sizes[3]);
    if (g) t_check_bytes("gate after close", mlxn_buffer_host_ptr(mlxn_weight_get_desc(g)->data), copies[4], sizes[4]);
    mlxn_weight_destroy(q);
    mlxn_weight_destroy(g);
    mlxn_buffer_release(norm);
out:
    for (int i = 0; i < 5; i++) free(copies[i]);
    unlink(tmp_path("zc/model.safetensors"));
    unlink(tmp_path("zc/config.json"));
    rmdir(tmp_path("zc"));
}

/* Download a buffer to a malloc'd host copy. */
static void *download(const mlxn_buffer *b) {
    size_t n = mlxn_buffer_nbytes(b);
    void *h = malloc(n ? n : 1);
    CHECK_OK(mlxn_buffer_download(b, 0, h, n));
    return h;
}

static void same_buffer(const char *what, const mlxn_buffer *gpu, const mlxn_buffer *cpu) {
    if (!gpu || !cpu) return;
    CHECK_MSG(mlxn_buffer_nbytes(gpu) == mlxn_buffer_nbytes(cpu) && mlxn_buffer_dtype(gpu) == mlxn_buffer_dtype(cpu) &&
                  mlxn_buffer_ndim(gpu) == mlxn_buffer_ndim(cpu),
              "%s: buffer geometry differs", what);
    void *h = download(gpu);
    t_check_bytes(what, h, mlxn_buffer_host_ptr(cpu), mlxn_buffer_nbytes(cpu));
    free(h);
}

/* CUDA (when usable): every weight and buffer loaded onto the GPU downloads
 * byte-identical to the CPU load (staged uploads, f32/f16 conversion). */
static void test_load_cuda(void) {
    mlxn_device *gpu = NULL;
    if (mlxn_device_open("cuda", NULL, &gpu) != MLXN_OK) {
        printf("  note: no CUDA device (%s); skipping\n", mlxn_last_error());
        return;
    }
    if (!g_cpu) {
        mlxn_device_close(gpu);
        return;
    }
    const char *srcs[2] = {"io/mlx_tiny_sharded", "io/py_gguf.gguf"};
    for (int k = 0; k < 2; k++) {
        mlxn_model_files *mf = NULL;
        CHECK_OK(mlxn_model_files_open(t_data_path(srcs[k]), &mf));
        if (!mf) continue;
        for (int64_t i = 0; i < mlxn_model_files_n_tensors(mf); i++) {
            mlxn_model_tensor_info ti;
            CHECK_OK(mlxn_model_files_tensor(mf, i, &ti));
            if (ti.ndim == 2) {
                mlxn_weight *wg = NULL, *wc = NULL;
                CHECK_OK(mlxn_model_files_load_weight(mf, gpu, ti.name, &wg));
                CHECK_OK(mlxn_model_files_load_weight(mf, g_cpu, ti.name, &wc));
                if (wg && wc) {
                    const mlxn_weight_desc *g = mlxn_weight_get_desc(wg), *c = mlxn_weight_get_desc(wc);
                    CHECK(g->format == c->format && g->rows == c->rows && g->cols == c->cols);
                    CHECK(strcmp(mlxn_device_kind(mlxn_buffer_device(g->data)), "cuda") == 0);
                    same_buffer(ti.name, g->data, c->data);
                    if (c->scales) same_buffer("scales", g->scales, c->scales);
                    if (c->biases) same_buffer("biases", g->biases, c->biases);
                }
                mlxn_weight_destroy(wg);
                mlxn_weight_destroy(wc);
            }
            mlxn_dtype wants[2] = {MLXN_F32, MLXN_F16};
            for (int d = 0; d < 2; d++) {
                mlxn_buffer *bg = NULL, *bc = NULL;
                CHECK_OK(mlxn_model_files_load_buffer(mf, gpu, ti.name, wants[d], &bg));
                CHECK_OK(mlxn_model_files_load_buffer(mf, g_cpu, ti.name, wants[d], &bc));
                same_buffer(ti.name, bg, bc);
                mlxn_buffer_release(bg);
                mlxn_buffer_release(bc);
            }
        }
        mlxn_model_files_close(mf);
    }
    size_t in_use = 0, peak = 0;
    mlxn_device_memory(gpu, &in_use, &peak);
    CHECK_MSG(in_use == 0, "%zu bytes still allocated on the GPU", in_use);
    mlxn_device_close(gpu);
}

/* A GGUF file through the same interface. */
static void test_gguf_source(void) {
    mlxn_model_files *mf = NULL;
    CHECK_OK(mlxn_model_files_open(t_data_path("io/py_gguf.gguf"), &mf));
    if (!mf) return;
    CHECK(mlxn_model_files_source(mf) == MLXN_SRC_GGUF && mlxn_model_files_gguf(mf) != NULL);
    CHECK(mlxn_model_files_config(mf) == NULL && mlxn_model_files_dir(mf) == NULL);
    CHECK(mlxn_model_files_tokenizer_json(mf) == NULL);
    CHECK(strcmp(mlxn_model_files_architecture(mf), "llama") == 0);
    CHECK(mlxn_model_files_n_tensors(mf) == 8);
    CHECK(mlxn_model_files_quant_for(mf, "x", NULL, NULL, NULL) == 0);
    mlxn_model_tensor_info ti;
    CHECK_OK(mlxn_model_files_find(mf, "q4_0_t", &ti));
    CHECK(ti.quantized && ti.format == MLXN_WEIGHT_GGUF && ti.gguf_type == MLXN_GGUF_Q4_0 && ti.shape[0] == 2 &&
          ti.shape[1] == 64 && ti.nbytes == 72 && strcmp(ti.src_dtype, "Q4_0") == 0);
    CHECK_OK(mlxn_model_files_find(mf, "f16_t", &ti));
    CHECK(!ti.quantized && ti.format == MLXN_WEIGHT_DENSE && ti.dtype == MLXN_F16 && ti.gguf_type == MLXN_GGUF_F16);
    mlxn_st *exp = NULL;
    CHECK_OK(mlxn_st_open(t_data_path("io/py_gguf_expected.safetensors"), &exp));
    const char *names[] = {"q4_0_t", "q4_1_t", "q8_0_t", "q4_k_t", "q6_k_t", "f16_t", "f32_3d"};
    for (int i = 0; i < 7 && exp && g_cpu; i++) {
        mlxn_buffer *b = NULL;
        CHECK_OK(mlxn_model_files_load_buffer(mf, g_cpu, names[i], MLXN_F32, &b));
        mlxn_st_tensor_info e;
        if (b && mlxn_st_tensor(exp, mlxn_st_find(exp, names[i]), &e) == MLXN_OK) {
            CHECK(mlxn_buffer_nbytes(b) == e.nbytes);
            float *ref = malloc(e.nbytes);
            memcpy(ref, e.data, e.nbytes);
            t_check_nmse(names[i], mlxn_buffer_host_ptr(b), ref, e.nbytes / 4, 0.0);
            free(ref);
        }
        if (b && i == 6) CHECK(mlxn_buffer_ndim(b) == 3 && mlxn_buffer_dim(b, 0) == 2 && mlxn_buffer_dim(b, 2) == 4);
        mlxn_buffer_release(b);
    }
    mlxn_st_close(exp);
    if (g_cpu) {
        mlxn_weight *w = NULL;
        CHECK_OK(mlxn_model_files_load_weight(mf, g_cpu, "q4_k_t", &w));
        const mlxn_gguf *g = mlxn_model_files_gguf(mf);
        mlxn_gguf_tensor_info gi;
        CHECK_OK(mlxn_gguf_tensor(g, mlxn_gguf_find_tensor(g, "q4_k_t"), &gi));
        if (w) {
            const mlxn_weight_desc *d = mlxn_weight_get_desc(w);
            CHECK(d->format == MLXN_WEIGHT_GGUF && d->gguf_type == MLXN_GGUF_Q4_K && d->rows == 2 && d->cols == 256);
            CHECK_MSG(mlxn_buffer_host_ptr(d->data) == gi.data, "GGUF weight was copied");
        }
        mlxn_model_files_close(mf);
        mf = NULL;
        if (w) {
            float got[512], ref[512];
            const mlxn_weight_desc *d = mlxn_weight_get_desc(w);
            CHECK_OK(mlxn_gguf_dequantize(MLXN_GGUF_Q4_K, mlxn_buffer_host_ptr(d->data), 512, got));
            mlxn_st *e2 = NULL;
            CHECK_OK(mlxn_st_open(t_data_path("io/py_gguf_expected.safetensors"), &e2));
            mlxn_st_tensor_info e;
            if (e2 && mlxn_st_tensor(e2, mlxn_st_find(e2, "q4_k_t"), &e) == MLXN_OK) {
                memcpy(ref, e.data, sizeof ref);
                t_check_nmse("q4_k after close", got, ref, 512, 0.0);
            }
            mlxn_st_close(e2);
        }
        mlxn_weight_destroy(w);
    }
    mlxn_model_files_close(mf);
}

/* The in-memory constructor used by the fuzzers. */
static void test_open_memory(void) {
    size_t cl = 0, sl = 0;
    char *cfg = t_read_file(t_data_path("io/mlx_tiny/config.json"), &cl);
    void *shard = t_read_file(t_data_path("io/mlx_tiny/model.safetensors"), &sl);
    CHECK(cfg && shard);
    if (cfg && shard) {
        const void *shards[1] = {shard};
        mlxn_model_files *mf = NULL;
        CHECK_OK(mlxn_model_files_open_memory(cfg, cl, shards, &sl, 1, &mf));
        if (mf) {
            CHECK(mlxn_model_files_n_tensors(mf) == 10);
            check_values(mf);
        }
        mlxn_model_files_close(mf);
        mf = NULL;
        CHECK_ERR(mlxn_model_files_open_memory("[1, 2]", 6, shards, &sl, 1, &mf), MLXN_ERR_FORMAT,
                  "config '<memory>/config.json': root is not a JSON object");
        size_t short_len = sl - 1;
        CHECK_ERR(mlxn_model_files_open_memory(cfg, cl, shards, &short_len, 1, &mf), MLXN_ERR_FORMAT,
                  "<memory>/shard-0.safetensors");
        CHECK(mf == NULL);
    }
    free(cfg);
    free(shard);
}

/* Non-affine MLX modes (mxfp4: u8 scales, no biases) are grouped and
 * described, and loading them as weights says UNSUPPORTED. */
static void test_mxfp4_mode(void) {
    uint32_t wq[8 * 8];
    uint8_t sc[8 * 2];
    float norm[8];
    for (int i = 0; i < 64; i++) wq[i] = (uint32_t)i * 2654435761u;
    for (int i = 0; i < 16; i++) sc[i] = (uint8_t)(120 + i);
    for (int i = 0; i < 8; i++) norm[i] = 1.0f;
    mlxn_st_writer *w = NULL;
    CHECK_OK(mlxn_st_writer_create(&w));
    int64_t ws[2] = {8, 8}, ss[2] = {8, 2}, ns[1] = {8};
    CHECK_OK(mlxn_st_writer_add(w, "m.weight", MLXN_ST_U32, 2, ws, wq));
    CHECK_OK(mlxn_st_writer_add(w, "m.scales", MLXN_ST_U8, 2, ss, sc));
    CHECK_OK(mlxn_st_writer_add(w, "n.weight", MLXN_ST_F32, 1, ns, norm));
    CHECK_OK(mlxn_st_writer_write(w, tmp_path("mx.safetensors")));
    mlxn_st_writer_free(w);
    size_t sl = 0;
    void *shard = t_read_file(tmp_path("mx.safetensors"), &sl);
    unlink(tmp_path("mx.safetensors"));
    if (!shard) return;
    const char cfg[] = "{\"model_type\": \"gpt_oss\", \"quantization\": {\"group_size\": 32, \"bits\": 4, \"mode\": \"mxfp4\"}}";
    const void *shards[1] = {shard};
    mlxn_model_files *mf = NULL;
    CHECK_OK(mlxn_model_files_open_memory(cfg, sizeof cfg - 1, shards, &sl, 1, &mf));
    if (mf) {
        CHECK(mlxn_model_files_n_tensors(mf) == 2);
        mlxn_model_tensor_info ti;
        CHECK_OK(mlxn_model_files_find(mf, "m", &ti));
        CHECK(ti.quantized && ti.format == MLXN_WEIGHT_MLX_AFFINE && ti.mode && strcmp(ti.mode, "mxfp4") == 0 &&
              ti.bits == 4 && ti.group_size == 32 && ti.dtype == MLXN_U8 && ti.shape[0] == 8 && ti.shape[1] == 64 &&
              ti.nbytes == sizeof wq + sizeof sc);
        if (g_cpu) {
            mlxn_weight *wt = NULL;
            CHECK_ERR(mlxn_model_files_load_weight(mf, g_cpu, "m.weight", &wt), MLXN_ERR_UNSUPPORTED,
                      "uses quantization mode 'mxfp4' (only affine)");
        }
        mlxn_model_files_close(mf);
    }
    free(shard);
}

typedef struct bad_case {
    const char *dir;
    mlxn_status code;
    const char *msg;
} bad_case;

static const bad_case k_bad[] = {
    {"mlx_missing_shard", MLXN_ERR_NOT_FOUND, "shard 'model-00002-of-00002.safetensors' is missing"},
    {"mlx_index_wrong_shard", MLXN_ERR_FORMAT,
     "maps tensor 'model.norm.weight' to 'model-00002-of-00002.safetensors', which does not contain it"},
    {"mlx_scales_without_weight", MLXN_ERR_FORMAT,
     "'model.layers.0.mlp.gate_proj.scales' has no matching 'model.layers.0.mlp.gate_proj.weight'"},
    {"mlx_u32_without_scales", MLXN_ERR_FORMAT,
     "'model.layers.0.mlp.down_proj.weight' is U32 (packed) and config.json quantizes 'model.layers.0.mlp.down_proj', "
     "but 'model.layers.0.mlp.down_proj.scales' is missing"},
    {"mlx_quant_shape_mismatch", MLXN_ERR_FORMAT,
     "'model.layers.0.mlp.up_proj': 64 unpacked columns (4 bits) but scales hold 3 groups of 32"},
    {"mlx_scales_no_quant_config", MLXN_ERR_FORMAT,
     "'model.layers.0.mlp.up_proj.scales' exists but config.json has no quantization for 'model.layers.0.mlp.up_proj'"},
    {"mlx_bad_config_json", MLXN_ERR_FORMAT, "config.json': invalid JSON at line"},
    {"mlx_affine_without_biases", MLXN_ERR_FORMAT,
     "quantized module 'model.layers.0.mlp.up_proj' (affine) has no 'model.layers.0.mlp.up_proj.biases'"},
    {"mlx_bad_shard", MLXN_ERR_FORMAT, "model.safetensors': header length 999999 exceeds file size 10"},
    {"mlx_no_config", MLXN_ERR_NOT_FOUND, "config.json not found"},
    {"does_not_exist", MLXN_ERR_NOT_FOUND, "no such file or directory"},
};

static void test_bad_dirs(void) {
    for (size_t i = 0; i < sizeof k_bad / sizeof k_bad[0]; i++) {
        char rel[256];
        snprintf(rel, sizeof rel, "bad/%s", k_bad[i].dir);
        const char *path = t_data_path(rel);
        mlxn_model_files *mf = (mlxn_model_files *)0x1;
        mlxn_status s = mlxn_model_files_open(path, &mf);
        CHECK_MSG(s == k_bad[i].code, "%s: got %s, expected %s (%s)", k_bad[i].dir, mlxn_status_name(s),
                  mlxn_status_name(k_bad[i].code), mlxn_last_error());
        CHECK_MSG(t_contains(mlxn_last_error(), k_bad[i].msg), "%s: message '%s' lacks '%s'", k_bad[i].dir,
                  mlxn_last_error(), k_bad[i].msg);
        CHECK_MSG(t_contains(mlxn_last_error(), path), "%s: message '%s' does not name the path", k_bad[i].dir,
                  mlxn_last_error());
        CHECK(mf == NULL);
        if (s == MLXN_OK) mlxn_model_files_close(mf);
    }
    /* a bad GGUF through the unified loader names the file too */
    const char *p = t_data_path("bad/gg_ndims5.gguf");
    mlxn_model_files *mf = NULL;
    CHECK_ERR(mlxn_model_files_open(p, &mf), MLXN_ERR_FORMAT, "n_dims 5 > 4");
    CHECK(t_contains(mlxn_last_error(), p));
}

static const char *default_model(void) {
    static char buf[1024];
    const char *e = getenv("MLXN_DEFAULT_MODEL");
    if (e && *e) return e;
    const char *c = getenv("MLXN_CACHE");
    const char *home = getenv("HOME");
    if (c && *c) snprintf(buf, sizeof buf, "%s/models/SmolLM2-135M-Instruct.Q4_1.gguf", c);
    else snprintf(buf, sizeof buf, "%s/.cache/mlxn/models/SmolLM2-135M-Instruct.Q4_1.gguf", home ? home : "");
    return buf;
}

static long maxrss_kb(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

/* Load every tensor of the real SmolLM2 GGUF onto the CPU: matrices as
 * weights (zero-copy), vectors as f32 buffers; report peak RSS vs file size. */
static void test_smollm2_load(void) {
    const char *p = default_model();
    if (access(p, R_OK) != 0) {
        printf("  note: %s not present (run scripts/fetch_default_model.sh); skipping\n", p);
        return;
    }
    if (!g_cpu) return;
    struct stat sb;
    stat(p, &sb);
    long rss0 = maxrss_kb();
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    mlxn_model_files *mf = NULL;
    CHECK_OK(mlxn_model_files_open(p, &mf));
    if (!mf) return;
    CHECK(mlxn_model_files_source(mf) == MLXN_SRC_GGUF && strcmp(mlxn_model_files_architecture(mf), "llama") == 0);
    int64_t n = mlxn_model_files_n_tensors(mf);
    CHECK(n == 272);
    mlxn_weight **ws = calloc((size_t)n, sizeof *ws);
    mlxn_buffer **bs = calloc((size_t)n, sizeof *bs);
    int n_w = 0, n_b = 0, n_zero_copy = 0;
    size_t bytes = 0;
    for (int64_t i = 0; i < n; i++) {
        mlxn_model_tensor_info ti;
        CHECK_OK(mlxn_model_files_tensor(mf, i, &ti));
        if (ti.ndim == 2) {
            CHECK_OK(mlxn_model_files_load_weight(mf, g_cpu, ti.name, &ws[i]));
            if (ws[i]) {
                n_w++;
                bytes += mlxn_weight_nbytes(ws[i]);
                mlxn_gguf_tensor_info gi;
                mlxn_gguf_tensor(mlxn_model_files_gguf(mf), i, &gi);
                n_zero_copy += mlxn_buffer_host_ptr(mlxn_weight_get_desc(ws[i])->data) == gi.data;
            }
        } else {
            CHECK_OK(mlxn_model_files_load_buffer(mf, g_cpu, ti.name, MLXN_F32, &bs[i]));
            if (bs[i]) {
                n_b++;
                bytes += mlxn_buffer_nbytes(bs[i]);
            }
        }
    }
    mlxn_model_files_close(mf);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    long rss1 = maxrss_kb();
    double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
    printf("  SmolLM2 load (cpu): %d weights (%d zero-copy) + %d f32 buffers, %.1f MB of tensors, file %.1f MB, %.1f ms\n",
           n_w, n_zero_copy, n_b, (double)bytes / 1e6, (double)sb.st_size / 1e6, ms);
    printf("  peak RSS (ru_maxrss): %.1f MB before open, %.1f MB after loading (%.2fx the file size)\n",
           (double)rss0 / 1024, (double)rss1 / 1024, (double)rss1 * 1024 / (double)sb.st_size);
    CHECK(n_w == 211 && n_b == 61);
    CHECK(n_zero_copy == n_w);
    CHECK_MSG((double)rss1 * 1024 < 2.0 * (double)sb.st_size, "peak RSS %ld kB is not under twice the file size", rss1);
    /* touch every weight after close: the mapping must still be alive */
    volatile uint8_t sink = 0;
    for (int64_t i = 0; i < n; i++)
        if (ws[i]) sink ^= ((const uint8_t *)mlxn_buffer_host_ptr(mlxn_weight_get_desc(ws[i])->data))[0];
    (void)sink;
    for (int64_t i = 0; i < n; i++) {
        mlxn_weight_destroy(ws[i]);
        mlxn_buffer_release(bs[i]);
    }
    free(ws);
    free(bs);
}

int main(void) {
    snprintf(g_tmp, sizeof g_tmp, "/tmp/mlxn_test_mf_XXXXXX");
    if (!mkdtemp(g_tmp)) {
        fprintf(stderr, "mkdtemp failed\n");
        return 1;
    }
    if (mlxn_device_open("cpu", NULL, &g_cpu) != MLXN_OK) g_cpu = NULL;
    T_RUN(test_mlx_tiny);
    T_RUN(test_mlx_tiny_sharded);
    T_RUN(test_load_cpu);
    T_RUN(test_zero_copy);
    T_RUN(test_load_cuda);
    T_RUN(test_gguf_source);
    T_RUN(test_open_memory);
    T_RUN(test_mxfp4_mode);
    T_RUN(test_bad_dirs);
    T_RUN(test_smollm2_load);
    mlxn_device_close(g_cpu);
    rmdir(g_tmp);
    return t_finish();
}
