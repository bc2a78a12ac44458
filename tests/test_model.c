/* test_model.c — the model runner end to end, on the CPU backend:
 *  - the architecture table and config normalisation (config.json variants,
 *    Llama-3 RoPE scaling, unsupported architectures);
 *  - the sampler (greedy, top-k/top-p/min-p, repetition penalty, seeds,
 *    sampled frequencies against the softmax) and stop-string hold-back;
 *  - SmolLM2-135M-Instruct as the shipped Q4_1 GGUF: last-position logits on
 *    four prompts against llama.cpp (fixtures from
 *    scripts/gen_model_fixtures.py) and greedy 32-token continuations
 *    identical to llama.cpp's; the same for the MLX directory produced from
 *    the GGUF by mlxn_convert (lossless Q4_1/Q8_0 -> MLX affine, Q/K rows
 *    un-permuted, so it exercises half-split RoPE);
 *  - decode by recorded graph == eager decode == one batched prefill;
 *  - bad input: missing file, unsupported architecture, prompt longer than
 *    the context, non-UTF-8 prompt: clear errors, no crash.
 * The SmolLM2 GGUF is looked up in $MLXN_SMOLLM2_GGUF, $MLXN_DEFAULT_MODEL, then in
 * ${MLXN_CACHE:-~/.cache/mlxn}/models/ (scripts/fetch_default_model.sh puts
 * it there). When it is absent those cases print "SKIP" with the reason and
 * FAIL (a missing oracle input must not look like a pass). */
#define _GNU_SOURCE
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/convert.h"
#include "io/gguf.h"
#include "model/generate.h"
#include "model/kv_cache.h"
#include "model/model.h"
#include "model/sampler.h"
#include "model/tokenizer.h"
#include "testutil.h"

/* ---- tolerances (stated once) ----
 * Two oracles (scripts/gen_model_fixtures.py):
 *  - mlx-lm in float32 on the gguf-package-dequantized weights: exact
 *    arithmetic, no activation quantization. Our "ref" backend (f64
 *    accumulation) must match it to EXACT_MAX_ABS (measured < 1e-4) and give
 *    the identical greedy 32-token continuation, through the GGUF file
 *    (adjacent-pair RoPE) and through the MLX directory converted from it
 *    (half-split RoPE).
 *  - llama.cpp's CPU backend, which quantizes activations to 8 bits before
 *    each quantized matmul (and so do our CPU backend's int8 kernels): each
 *    side carries ~0.6 of max logit noise independently (measured: llama.cpp
 *    vs mlx-lm max 0.65 / rms 0.18; our cpu vs mlx-lm up to max 0.84 / rms
 *    0.25; our cpu vs llama.cpp up to max 1.49 / rms 0.64 over the builds
 *    seen). For scale, the same model with the wrong RoPE layout gives rms
 *    1.73 / max 6.2 against llama.cpp on prompt 0, so these bounds still
 *    separate a broken model from activation noise.
 *    On the fast device (cpu, or cuda in the GPU script) we require against
 *    both oracles: max |Δlogit| <= FAST_MAX_ABS, RMS <= FAST_RMS, same argmax,
 *    and greedy 32-token continuations identical up to the first near tie:
 *    they may part only at a step where the two candidates are within
 *    TIE_MARGIN of each other in our logits (noise of this size flips such
 *    steps; the printed lines show where). */
#define EXACT_MAX_ABS 1e-2
#define FAST_MAX_ABS 2.5
#define FAST_RMS 0.8
#define TIE_MARGIN 1.0
/* MLX directory converted losslessly from the same GGUF vs our GGUF path, on
 * the ref backend: the same weights, only the RoPE layout differs. */
#define MLX_VS_GGUF_MAX_ABS 1e-3

static mlxn_device *g_dev;
static char g_gguf[4096];
static int g_have_gguf;
static json_t *g_ref;
static char g_mlx_dir[4096];
static int g_have_mlx;

static int file_exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0;
}

static void find_gguf(void) {
    const char *e = getenv("MLXN_SMOLLM2_GGUF");
    if (!(e && file_exists(e))) e = getenv("MLXN_DEFAULT_MODEL"); /* set by scripts/test.sh */
    if (e && file_exists(e)) {
        snprintf(g_gguf, sizeof g_gguf, "%s", e);
        g_have_gguf = 1;
        return;
    }
    const char *c = getenv("MLXN_CACHE");
    if (c && *c) snprintf(g_gguf, sizeof g_gguf, "%s/models/SmolLM2-135M-Instruct.Q4_1.gguf", c);
    else snprintf(g_gguf, sizeof g_gguf, "%s/.cache/mlxn/models/SmolLM2-135M-Instruct.Q4_1.gguf",
                  getenv("HOME") ? getenv("HOME") : ".");
    g_have_gguf = file_exists(g_gguf);
}

static int skip_no_model(void) {
    if (g_have_gguf && g_ref) return 0;
    printf("SKIP %s: SmolLM2 GGUF not found (%s; set MLXN_SMOLLM2_GGUF or run scripts/fetch_default_model.sh)\n",
           t_current, g_gguf);
    CHECK_MSG(0, "required model file missing (see SKIP line)");
    return 1;
}

/* f16 (llama.cpp) or f32 (mlx-lm) little-endian logits -> f32 */
static float *load_ref_logits(const char *file, int64_t n, int is_f32) {
    if (!file) return NULL;
    char rel[256];
    snprintf(rel, sizeof rel, "model/%s", file);
    size_t len = 0;
    uint8_t *h = t_read_file(t_data_path(rel), &len);
    if (!h || len != (size_t)n * (is_f32 ? 4 : 2)) {
        free(h);
        return NULL;
    }
    float *f = malloc((size_t)n * sizeof(float));
    for (int64_t i = 0; i < n; i++) {
        if (is_f32) memcpy(&f[i], h + 4 * i, 4);
        else {
            uint16_t v;
            memcpy(&v, h + 2 * i, 2);
            f[i] = mlxn_f16_to_f32(v);
        }
    }
    free(h);
    return f;
}

static int32_t *json_ids(json_t *arr, int *n) {
    *n = (int)json_array_size(arr);
    int32_t *ids = malloc((size_t)(*n ? *n : 1) * sizeof(int32_t));
    for (int i = 0; i < *n; i++) ids[i] = (int32_t)json_integer_value(json_array_get(arr, (size_t)i));
    return ids;
}

static int argmax_f(const float *x, int64_t n) {
    int64_t b = 0;
    for (int64_t i = 1; i < n; i++)
        if (x[i] > x[b]) b = i;
    return (int)b;
}

/* ---------------------------------------------------------------- config / arch */

static void test_arch_table(void) {
    CHECK(mlxn_arch_lookup("llama")->arch == MLXN_ARCH_LLAMA);
    CHECK(mlxn_arch_lookup("smollm")->arch == MLXN_ARCH_LLAMA);
    CHECK(mlxn_arch_lookup("qwen2")->qkv_bias == 1);
    CHECK(mlxn_arch_lookup("qwen3")->qk_norm == 1);
    CHECK(mlxn_arch_lookup("qwen3")->gguf_rope == MLXN_ROPE_HALF_SPLIT);
    CHECK(mlxn_arch_lookup("llama")->gguf_rope == MLXN_ROPE_ADJACENT);
    CHECK(mlxn_arch_lookup("gpt2") == NULL);
    CHECK(mlxn_arch_lookup(NULL) == NULL);
}

static json_t *js(const char *text) {
    json_error_t e;
    json_t *j = json_loads(text, 0, &e);
    if (!j) t_fail(__FILE__, __LINE__, "bad test json: %s", e.text);
    return j;
}

static void test_config_json(void) {
    mlxn_model_config c;
    json_t *j = js("{\"model_type\":\"qwen3\",\"hidden_size\":64,\"num_hidden_layers\":2,"
                   "\"num_attention_heads\":4,\"num_key_value_heads\":2,\"head_dim\":64,\"intermediate_size\":128,"
                   "\"vocab_size\":512,\"rms_norm_eps\":1e-6,\"rope_theta\":1000000.0,\"max_position_embeddings\":512,"
                   "\"tie_word_embeddings\":false}");
    CHECK_OK(mlxn_model_config_from_json(j, &c));
    CHECK(c.arch->arch == MLXN_ARCH_QWEN3);
    CHECK(c.head_dim == 64 && c.n_heads == 4 && c.n_kv_heads == 2 && c.d_model == 64);
    CHECK(c.rope.mode == MLXN_ROPE_HALF_SPLIT);
    CHECK(fabsf(c.rope.theta - 1e6f) < 1.0f);
    CHECK(fabsf(c.norm_eps - 1e-6f) < 1e-9f);
    json_decref(j);

    j = js("{\"model_type\":\"llama\",\"hidden_size\":4096,\"num_hidden_layers\":32,\"num_attention_heads\":32,"
           "\"num_key_value_heads\":8,\"intermediate_size\":14336,\"vocab_size\":128256,\"rope_theta\":500000.0,"
           "\"rope_scaling\":{\"factor\":8.0,\"low_freq_factor\":1.0,\"high_freq_factor\":4.0,"
           "\"original_max_position_embeddings\":8192,\"rope_type\":\"llama3\"}}");
    CHECK_OK(mlxn_model_config_from_json(j, &c));
    CHECK(c.head_dim == 128);
    CHECK(c.rope.scaling == MLXN_ROPE_SCALING_LLAMA3);
    CHECK(c.rope.factor == 8.0f && c.rope.high_freq_factor == 4.0f && c.rope.original_max_pos == 8192);
    json_decref(j);

    j = js("{\"model_type\":\"gpt_neox\",\"hidden_size\":64,\"num_hidden_layers\":2,\"num_attention_heads\":4,"
           "\"intermediate_size\":128,\"vocab_size\":512}");
    CHECK_ERR(mlxn_model_config_from_json(j, &c), MLXN_ERR_UNSUPPORTED, "gpt_neox");
    json_decref(j);

    j = js("{\"model_type\":\"llama\",\"hidden_size\":64,\"num_attention_heads\":4,\"intermediate_size\":128,"
           "\"vocab_size\":512}");
    CHECK_ERR(mlxn_model_config_from_json(j, &c), MLXN_ERR_FORMAT, "num_hidden_layers");
    json_decref(j);

    j = js("{\"model_type\":\"llama\",\"hidden_size\":64,\"num_hidden_layers\":2,\"num_attention_heads\":4,"
           "\"num_key_value_heads\":3,\"intermediate_size\":128,\"vocab_size\":512}");
    CHECK_ERR(mlxn_model_config_from_json(j, &c), MLXN_ERR_FORMAT, "kv heads");
    json_decref(j);
}

/* ---------------------------------------------------------------- sampler */

static void test_sampler(void) {
    enum { V = 1000 };
    float *l = malloc(V * sizeof(float));
    t_rng r;
    t_rng_seed(&r, 7);
    for (int i = 0; i < V; i++) l[i] = t_rng_normal(&r) * 2.0f;
    l[123] = 12.0f; /* clear winner */
    int best = argmax_f(l, V);
    mlxn_sampler_params p = mlxn_sampler_default_params();
    mlxn_sampler *s = NULL;
    int32_t id = -1;
    CHECK_OK(mlxn_sampler_create(&p, V, &s));
    CHECK_OK(mlxn_sampler_sample(s, l, &id));
    CHECK(id == best);
    CHECK(mlxn_sampler_is_greedy(s));
    mlxn_sampler_free(s);

    /* repetition penalty: 123 seen -> 12/20 = 0.6 < runner-up */
    p.repeat_penalty = 20.0f;
    CHECK_OK(mlxn_sampler_create(&p, V, &s));
    mlxn_sampler_accept(s, 123);
    CHECK_OK(mlxn_sampler_sample(s, l, &id));
    CHECK(id != 123);
    CHECK(!mlxn_sampler_is_greedy(s));
    mlxn_sampler_free(s);

    /* top_k = 1 with a temperature is greedy */
    p = mlxn_sampler_default_params();
    p.temperature = 1.5f;
    p.top_k = 1;
    CHECK_OK(mlxn_sampler_create(&p, V, &s));
    for (int k = 0; k < 20; k++) {
        CHECK_OK(mlxn_sampler_sample(s, l, &id));
        CHECK(id == best);
    }
    mlxn_sampler_free(s);

    /* same seed -> same sequence; different seed -> (almost surely) different */
    for (int i = 0; i < V; i++) l[i] = t_rng_normal(&r) * 0.5f;
    p = mlxn_sampler_default_params();
    p.temperature = 1.0f;
    p.top_k = 0;
    p.top_p = 1.0f;
    p.min_p = 0.0f;
    int32_t a[64], b[64], c[64];
    mlxn_sampler *s1, *s2, *s3;
    CHECK_OK(mlxn_sampler_create(&p, V, &s1));
    CHECK_OK(mlxn_sampler_create(&p, V, &s2));
    p.seed = 43;
    CHECK_OK(mlxn_sampler_create(&p, V, &s3));
    int same = 1, diff = 0;
    for (int k = 0; k < 64; k++) {
        mlxn_sampler_sample(s1, l, &a[k]);
        mlxn_sampler_sample(s2, l, &b[k]);
        mlxn_sampler_sample(s3, l, &c[k]);
        same &= a[k] == b[k];
        diff += a[k] != c[k];
    }
    CHECK(same);
    CHECK(diff > 32);
    mlxn_sampler_reset(s1);
    int32_t again;
    mlxn_sampler_sample(s1, l, &again);
    CHECK(again == a[0]);
    mlxn_sampler_free(s1);
    mlxn_sampler_free(s2);
    mlxn_sampler_free(s3);

    /* frequencies follow softmax(l / T) on a 4-token vocabulary */
    float l4[4] = { 1.0f, 0.0f, -1.0f, 0.5f };
    p = mlxn_sampler_default_params();
    p.temperature = 0.8f;
    p.top_k = 0;
    p.top_p = 1.0f;
    p.min_p = 0.0f;
    CHECK_OK(mlxn_sampler_create(&p, 4, &s));
    int cnt[4] = { 0 };
    const int N = 40000;
    for (int k = 0; k < N; k++) {
        mlxn_sampler_sample(s, l4, &id);
        CHECK(id >= 0 && id < 4);
        if (id >= 0 && id < 4) cnt[id]++;
    }
    double z = 0, pr[4];
    for (int i = 0; i < 4; i++) z += exp(l4[i] / 0.8);
    for (int i = 0; i < 4; i++) {
        pr[i] = exp(l4[i] / 0.8) / z;
        double f = (double)cnt[i] / N, sd = sqrt(pr[i] * (1 - pr[i]) / N);
        CHECK_MSG(fabs(f - pr[i]) < 5 * sd, "token %d: frequency %.4f vs probability %.4f", i, f, pr[i]);
    }
    mlxn_sampler_free(s);

    /* min_p 0.5 keeps tokens with p >= 0.5 p_max: only 0 and 3 (exp(-0.625)=0.53) */
    p.min_p = 0.5f;
    CHECK_OK(mlxn_sampler_create(&p, 4, &s));
    for (int k = 0; k < 2000; k++) {
        mlxn_sampler_sample(s, l4, &id);
        CHECK(id == 0 || id == 3);
    }
    mlxn_sampler_free(s);
    /* top_p 0.3: the best token alone holds more than 0.3 of the mass */
    p.min_p = 0.0f;
    p.top_p = 0.3f;
    CHECK_OK(mlxn_sampler_create(&p, 4, &s));
    for (int k = 0; k < 200; k++) {
        mlxn_sampler_sample(s, l4, &id);
        CHECK(id == 0);
    }
    mlxn_sampler_free(s);

    /* bad parameters are named */
    p = mlxn_sampler_default_params();
    p.top_p = 0.0f;
    CHECK_ERR(mlxn_sampler_create(&p, 4, &s), MLXN_ERR_INVALID_ARG, "top_p");
    p = mlxn_sampler_default_params();
    p.repeat_penalty = -1.0f;
    CHECK_ERR(mlxn_sampler_create(&p, 4, &s), MLXN_ERR_INVALID_ARG, "repeat_penalty");
    free(l);
}

static void test_stop_holdback(void) {
    const char *stop[2] = { "</s>", "STOP" };
    CHECK(mlxn_stop_holdback("hello <", 7, stop, 2) == 1);
    CHECK(mlxn_stop_holdback("hello </", 8, stop, 2) == 2);
    CHECK(mlxn_stop_holdback("hello ST", 8, stop, 2) == 2);
    CHECK(mlxn_stop_holdback("hello", 5, stop, 2) == 0);
    CHECK(mlxn_stop_holdback("", 0, stop, 2) == 0);
}

/* ---------------------------------------------------------------- SmolLM2 vs llama.cpp / mlx-lm */

static void logit_diff(const float *a, const float *b, int64_t n, double *maxd, double *rms) {
    double m = 0, ss = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        m = d > m ? d : m;
        ss += d * d;
    }
    *maxd = m;
    *rms = sqrt(ss / (double)n);
}

/* Greedy decode of ng tokens recording the top-2 margin of each step. */
static int greedy_with_margins(mlxn_runner *r, const int32_t *ids, int n, int ng, int32_t *out, float *margin,
                               int64_t V) {
    mlxn_runner_reset(r);
    const float *lg = NULL;
    if (mlxn_runner_eval(r, ids, n, &lg) != MLXN_OK) return 0;
    for (int k = 0; k < ng; k++) {
        int b = argmax_f(lg, V);
        float second = -INFINITY;
        for (int64_t i = 0; i < V; i++)
            if (i != b && lg[i] > second) second = lg[i];
        out[k] = b;
        margin[k] = lg[b] - second;
        if (k + 1 < ng && mlxn_runner_step(r, b, &lg) != MLXN_OK) return 0;
    }
    return 1;
}

/* exact: compare with the mlx-lm f32 oracle tightly (ref backend);
 * otherwise the fast-device tolerances against both oracles. */
static void compare_model_with_ref(mlxn_device *dev, const char *path, const char *label, int exact,
                                   int greedy_cases) {
    mlxn_model *m = NULL;
    CHECK_OK(mlxn_model_load(path, dev, NULL, &m));
    if (!m) return;
    char desc[512];
    mlxn_model_describe(m, desc, sizeof desc);
    printf("  %s: %s\n", label, desc);
    const int64_t V = m->cfg.vocab;
    mlxn_runner_opts ro = mlxn_runner_default_opts();
    ro.n_ctx = 128;
    mlxn_runner *r = NULL;
    CHECK_OK(mlxn_runner_create(m, &ro, &r));
    json_t *cases = json_object_get(g_ref, "cases");
    for (size_t ci = 0; r && ci < json_array_size(cases); ci++) {
        json_t *cs = json_array_get(cases, ci);
        const char *mlx_file = json_string_value(json_object_get(cs, "mlx_logits_file"));
        if (exact && !mlx_file) continue;
        int n = 0, ng = 0, ngm = 0;
        int32_t *ids = json_ids(json_object_get(cs, "tokens"), &n);
        int32_t *g_llama = json_ids(json_object_get(cs, "greedy"), &ng);
        int32_t *g_mlx = mlx_file ? json_ids(json_object_get(cs, "mlx_greedy"), &ngm) : NULL;
        float *ref_llama = load_ref_logits(json_string_value(json_object_get(cs, "logits_file")), V, 0);
        float *ref_mlx = mlx_file ? load_ref_logits(mlx_file, V, 1) : NULL;
        CHECK_MSG(ref_llama && (!mlx_file || ref_mlx), "fixture logits missing for case %zu", ci);
        mlxn_runner_reset(r);
        const float *lg = NULL;
        CHECK_OK(mlxn_runner_eval(r, ids, n, &lg));
        if (lg && ref_llama) {
            double md, rms, md2 = 0, rms2 = 0;
            logit_diff(lg, ref_llama, V, &md, &rms);
            if (ref_mlx) logit_diff(lg, ref_mlx, V, &md2, &rms2);
            int a = argmax_f(lg, V), b = argmax_f(ref_llama, V);
            printf("  %s case %zu (%d tokens): vs llama.cpp max|d| %.4f rms %.4f; vs mlx-lm %s; argmax %d (llama.cpp %d)\n",
                   label, ci, n, md, rms, ref_mlx ? "" : "-", a, b);
            if (ref_mlx) printf("      vs mlx-lm f32: max|d| %.2e rms %.2e\n", md2, rms2);
            if (exact) {
                CHECK_MSG(md2 <= EXACT_MAX_ABS, "case %zu: max |dlogit| vs mlx-lm %.3e > %.0e", ci, md2, EXACT_MAX_ABS);
                CHECK_MSG(a == argmax_f(ref_mlx, V), "case %zu: argmax %d vs mlx-lm %d", ci, a, argmax_f(ref_mlx, V));
            } else {
                CHECK_MSG(md <= FAST_MAX_ABS && rms <= FAST_RMS, "case %zu: vs llama.cpp max %.3f rms %.3f", ci, md, rms);
                if (ref_mlx)
                    CHECK_MSG(md2 <= FAST_MAX_ABS && rms2 <= FAST_RMS, "case %zu: vs mlx-lm max %.3f rms %.3f", ci,
                              md2, rms2);
                CHECK_MSG(a == b, "case %zu: argmax %d vs llama.cpp %d", ci, a, b);
            }
        }
        int32_t out[64];
        float margin[64];
        int want = exact ? ngm : ng;
        CHECK(want > 0 && want <= 64);
        if (exact && --greedy_cases < 0) want = 0; /* the slow ref backend: logits only for the rest */
        if (exact && want > 8 && getenv("MLXN_SANITIZER_RUN")) {
            printf("      (sanitizer run: exact greedy check shortened to 8 tokens)\n");
            want = 8;
        }
        if (want > 0 && want <= 64 && greedy_with_margins(r, ids, n, want, out, margin, V)) {
            for (int which = 0; which < 2; which++) {
                const int32_t *g = which == 0 ? g_mlx : g_llama;
                const char *oname = which == 0 ? "mlx-lm" : "llama.cpp";
                if (!g || (exact && which == 1)) continue;
                int k = 0;
                while (k < want && out[k] == g[k]) k++;
                if (k == want) {
                    printf("      greedy %d tokens identical to %s\n", want, oname);
                    continue;
                }
                printf("      greedy vs %s: first difference at %d (%d vs %d), our top-2 margin there %.3f\n", oname,
                       k, out[k], g[k], margin[k]);
                if (exact) CHECK_MSG(0, "case %zu: greedy differs from %s at token %d", ci, oname, k);
                else CHECK_MSG(margin[k] < TIE_MARGIN, "case %zu: greedy differs from %s at token %d with margin %.3f",
                               ci, oname, k, margin[k]);
            }
        } else if (want > 0) {
            CHECK_MSG(0, "case %zu: greedy decode failed: %s", ci, mlxn_last_error());
        }
        /* the generation loop gives the same greedy tokens as the manual loop */
        if (!exact && ci == 0) {
            mlxn_gen_params gp;
            memset(&gp, 0, sizeof gp);
            gp.max_tokens = want;
            gp.sampling = mlxn_sampler_default_params();
            gp.ignore_eos = 1;
            int32_t *gen = NULL;
            int ngen = 0;
            mlxn_gen_stats gs;
            mlxn_runner_reset(r);
            CHECK_OK(mlxn_generate(r, ids, n, &gp, &gs, &gen, &ngen));
            CHECK(ngen == want && gen && memcmp(gen, out, (size_t)want * sizeof(int32_t)) == 0);
            free(gen);
        }
        free(ids);
        free(g_llama);
        free(g_mlx);
        free(ref_llama);
        free(ref_mlx);
    }
    mlxn_runner_free(r);
    mlxn_model_free(m);
}

static void test_smollm2_gguf_fast(void) {
    if (skip_no_model()) return;
    compare_model_with_ref(g_dev, g_gguf, "gguf", 0, 99);
}

static void test_smollm2_gguf_exact(void) {
    if (skip_no_model()) return;
    mlxn_device *ref = NULL;
    CHECK_OK(mlxn_device_open("ref", NULL, &ref));
    if (ref) compare_model_with_ref(ref, g_gguf, "gguf/ref", 1, 1);
    mlxn_device_close(ref);
}

static void ensure_mlx_dir(void) {
    if (g_have_mlx || !g_have_gguf) return;
    char tmpl[] = "/tmp/mlxn_test_model_XXXXXX";
    char *d = mkdtemp(tmpl);
    if (!d) return;
    snprintf(g_mlx_dir, sizeof g_mlx_dir, "%s/smollm2-mlx", d);
    mlxn_convert_opts o;
    mlxn_convert_opts_init(&o);
    mlxn_status st = mlxn_convert(g_gguf, g_mlx_dir, &o, NULL);
    CHECK_MSG(st == MLXN_OK, "mlxn_convert(%s) failed: %s", g_gguf, mlxn_last_error());
    g_have_mlx = st == MLXN_OK;
}

static void test_smollm2_mlx_fast(void) {
    if (skip_no_model()) return;
    ensure_mlx_dir();
    if (!g_have_mlx) return;
    compare_model_with_ref(g_dev, g_mlx_dir, "mlx", 0, 99);
}

static void test_smollm2_mlx_exact(void) {
    if (skip_no_model()) return;
    ensure_mlx_dir();
    if (!g_have_mlx) return;
    mlxn_device *ref = NULL;
    CHECK_OK(mlxn_device_open("ref", NULL, &ref));
    if (ref) compare_model_with_ref(ref, g_mlx_dir, "mlx/ref", 1, 1);
    mlxn_device_close(ref);
}

/* Our GGUF (adjacent RoPE) and MLX (half-split RoPE) paths agree closely. */
/* Our GGUF (adjacent RoPE) and MLX (half-split RoPE) paths agree (ref backend). */
static void test_smollm2_mlx_vs_gguf(void) {
    if (skip_no_model()) return;
    ensure_mlx_dir();
    if (!g_have_mlx) return;
    mlxn_model *a = NULL, *b = NULL;
    mlxn_device *ref = NULL;
    CHECK_OK(mlxn_device_open("ref", NULL, &ref));
    if (!ref) return;
    CHECK_OK(mlxn_model_load(g_gguf, ref, NULL, &a));
    CHECK_OK(mlxn_model_load(g_mlx_dir, ref, NULL, &b));
    if (!a || !b) goto out;
    CHECK(a->cfg.rope.mode == MLXN_ROPE_ADJACENT);
    CHECK(b->cfg.rope.mode == MLXN_ROPE_HALF_SPLIT);
    CHECK(b->cfg.tied_embeddings == a->cfg.tied_embeddings);
    mlxn_runner *ra = NULL, *rb = NULL;
    mlxn_runner_opts ro = mlxn_runner_default_opts();
    ro.n_ctx = 64;
    CHECK_OK(mlxn_runner_create(a, &ro, &ra));
    CHECK_OK(mlxn_runner_create(b, &ro, &rb));
    int n = 0;
    int32_t *ids = json_ids(json_object_get(json_array_get(json_object_get(g_ref, "cases"), 3), "tokens"), &n);
    const float *la = NULL, *lb = NULL;
    float *copy = malloc((size_t)a->cfg.vocab * sizeof(float));
    if (ra && rb) {
        CHECK_OK(mlxn_runner_eval(ra, ids, n, &la));
        if (la) memcpy(copy, la, (size_t)a->cfg.vocab * sizeof(float));
        CHECK_OK(mlxn_runner_eval(rb, ids, n, &lb));
        if (la && lb) {
            double maxd = 0;
            for (int64_t i = 0; i < a->cfg.vocab; i++) {
                double d = fabs((double)copy[i] - lb[i]);
                maxd = d > maxd ? d : maxd;
            }
            printf("  gguf vs mlx dir: max|dlogit| %.2e\n", maxd);
            CHECK_MSG(maxd <= MLX_VS_GGUF_MAX_ABS, "max |dlogit| %.3e > %.1e", maxd, MLX_VS_GGUF_MAX_ABS);
        }
    }
    free(copy);
    free(ids);
    mlxn_runner_free(ra);
    mlxn_runner_free(rb);
out:
    mlxn_model_free(a);
    mlxn_model_free(b);
    mlxn_device_close(ref);
}

/* Prefill of n tokens (all logits) == n decode steps (eager) == n graph
 * replays; the decode steps run the fused one-row path, prefill the separate
 * weights (views of the same storage). */
static void decode_paths_agree(const char *path, int relative) {
    /* decode graphs per bucket of 4 positions (4, 8, 16, 32): the 12 steps
     * below cross three bucket bounds (attention sized to each bound) */
    setenv("MLXN_DECODE_BUCKET", "4", 1);
    mlxn_model *m = NULL;
    mlxn_model_load_opts lo = { 1 }; /* decode steps use the fused q|k|v and gate|up weights */
    CHECK_OK(mlxn_model_load(path, g_dev, &lo, &m));
    if (!m) return;
    const int n = 12;
    const int64_t V = m->cfg.vocab;
    int32_t ids[12] = { 504, 3575, 282, 4649, 314, 7042, 30, 378, 1345, 28, 260, 2114 };
    float *all = malloc((size_t)n * V * sizeof(float));
    float *step = malloc((size_t)V * sizeof(float));
    mlxn_kv_cache *kv = NULL;
    mlxn_forward_state *fs = NULL;
    mlxn_session *s = NULL;
    CHECK_OK(mlxn_kv_cache_create(g_dev, m->cfg.n_layers, m->cfg.n_kv_heads, m->cfg.head_dim, 32, MLXN_F32, &kv));
    CHECK_OK(mlxn_forward_state_create(m, 16, &fs));
    CHECK_OK(mlxn_session_begin(g_dev, &s));
    int32_t greedy_eager[10] = { 0 }, seq_eager[10] = { 0 };
    if (kv && fs && s) {
        CHECK_OK(mlxn_forward_tokens(m, fs, kv, s, ids, n, 0, 1, all));
        double scale = 1.0; /* relative: the largest |logit| of the prefill */
        for (size_t i = 0; relative && i < (size_t)n * V; i++) scale = fabs(all[i]) > scale ? fabs(all[i]) : scale;
        for (int mode = 0; mode < 2; mode++) {
            mlxn_runner_opts ro = mlxn_runner_default_opts();
            ro.n_ctx = 32;
            ro.use_graph = mode;
            ro.kv_dtype = MLXN_F32; /* like the batched prefill above (CUDA's default cache is f16) */
            mlxn_runner *r = NULL;
            CHECK_OK(mlxn_runner_create(m, &ro, &r));
            if (!r) break;
            const float *lg = NULL;
            double worst = 0;
            CHECK_OK(mlxn_runner_eval(r, ids, 1, &lg));
            CHECK(lg != NULL);
            for (int t = 0; t < n && lg; t++) {
                for (int64_t i = 0; i < V; i++) {
                    double d = fabs((double)lg[i] - all[(size_t)t * V + i]);
                    worst = d > worst ? d : worst;
                }
                if (t + 1 < n) CHECK_OK(mlxn_runner_step(r, ids[t + 1], &lg));
            }
            printf("  %s decode vs batched prefill: max|dlogit| %.2e (largest |logit| %.2f)\n", mode ? "graph" : "eager",
                   worst, relative ? scale : 0.0);
            CHECK_MSG(worst < 2e-3 * scale, "%s decode differs from prefill by %.3e", mode ? "graph" : "eager", worst);
            int nt = 0;
            mlxn_runner_tokens(r, &nt);
            CHECK(nt == n);
            CHECK(mlxn_runner_uses_graph(r) == mode);
            /* greedy generation: graph mode takes the device-argmax path */
            mlxn_gen_params gp;
            memset(&gp, 0, sizeof gp);
            gp.max_tokens = 10;
            gp.sampling = mlxn_sampler_default_params();
            gp.ignore_eos = 1;
            mlxn_runner_reset(r);
            int32_t *gen = NULL;
            int ngen = 0;
            CHECK_OK(mlxn_generate(r, ids, 5, &gp, NULL, &gen, &ngen));
            if (mode == 0 && gen) memcpy(greedy_eager, gen, sizeof greedy_eager);
            if (mode == 1 && gen)
                CHECK_MSG(ngen == 10 && memcmp(gen, greedy_eager, sizeof greedy_eager) == 0,
                          "graph greedy generation differs from eager");
            free(gen);
            /* greedy steps fed now their own prediction (graph mode: the step
             * enqueued ahead is used), now another id (it is dropped and the
             * position redone), and once a logits step in between */
            int32_t seq[10] = { 0 }, id = ids[2], nx = 0;
            mlxn_runner_reset(r);
            CHECK_OK(mlxn_runner_eval(r, ids, 2, &lg));
            for (int t = 0; t < 10 && lg; t++) {
                if (t == 5) {
                    CHECK_OK(mlxn_runner_step(r, id, &lg));
                    nx = 0;
                    for (int64_t i = 1; lg && i < V; i++)
                        if (lg[i] > lg[nx]) nx = (int32_t)i;
                } else {
                    CHECK_OK(mlxn_runner_step_argmax(r, id, &nx));
                }
                seq[t] = nx;
                id = t % 3 == 1 ? ids[3 + t % 9] : nx;
            }
            if (mode == 0) memcpy(seq_eager, seq, sizeof seq);
            else CHECK_MSG(memcmp(seq, seq_eager, sizeof seq) == 0, "graph steps with forced ids differ from eager");
            mlxn_runner_free(r);
        }
    }
    mlxn_session_destroy(s);
    mlxn_forward_state_free(fs);
    mlxn_kv_cache_free(kv);
    free(all);
    free(step);
    mlxn_model_free(m);
    unsetenv("MLXN_DECODE_BUCKET");
}

static void test_decode_paths_agree(void) {
    if (skip_no_model()) return;
    decode_paths_agree(g_gguf, 0);
}

/* The same on an MLX 4-bit model named by MLXN_TEST_DECODE_MODEL (tools/gpu-
 * test.sh: a random Llama-3.2-1B-shaped directory, whose decode step runs the
 * streamed int8-MMA matmuls on sm_90, which the SmolLM2 GGUF never reaches),
 * to 2e-3 of its largest |logit|. */
static void test_decode_paths_agree_mlx4(void) {
    const char *p = getenv("MLXN_TEST_DECODE_MODEL");
    if (!p || !*p) {
        printf("  skipped: MLXN_TEST_DECODE_MODEL not set\n");
        return;
    }
    decode_paths_agree(p, 1);
}

/* Tokenizer + chat prefix reuse: a second generate on an extended prompt
 * only evaluates the new tokens and gives the same result as from scratch. */
static void test_prefix_reuse(void) {
    if (skip_no_model()) return;
    mlxn_model *m = NULL;
    CHECK_OK(mlxn_model_load(g_gguf, g_dev, NULL, &m));
    if (!m) return;
    mlxn_runner *r = NULL;
    mlxn_runner_opts ro = mlxn_runner_default_opts();
    ro.n_ctx = 128;
    CHECK_OK(mlxn_runner_create(m, &ro, &r));
    int32_t p1[6] = { 504, 3575, 282, 4649, 314, 7042 };
    int32_t p2[9] = { 504, 3575, 282, 4649, 314, 7042, 30, 378, 1345 };
    mlxn_gen_params gp;
    memset(&gp, 0, sizeof gp);
    gp.max_tokens = 4;
    gp.sampling = mlxn_sampler_default_params();
    mlxn_gen_stats gs;
    int32_t *o1 = NULL, *o2 = NULL;
    int n1 = 0, n2 = 0;
    if (r) {
        CHECK_OK(mlxn_generate(r, p1, 6, &gp, &gs, NULL, NULL));
        CHECK(gs.n_prompt_eval == 6);
        /* the cache now holds p1 + 3 generated tokens (the 4th is not evaluated) */
        int nc = 0;
        const int32_t *cached = mlxn_runner_tokens(r, &nc);
        CHECK(nc == 9);
        int common = 0;
        while (common < nc && common < 8 && cached[common] == p2[common]) common++;
        CHECK(common >= 6);
        CHECK_OK(mlxn_generate(r, p2, 9, &gp, &gs, &o1, &n1));
        CHECK_MSG(gs.n_prompt_eval == 9 - common, "evaluated %d prompt tokens, expected %d (prefix reuse)",
                  gs.n_prompt_eval, 9 - common);
        mlxn_runner_reset(r);
        CHECK_OK(mlxn_generate(r, p2, 9, &gp, &gs, &o2, &n2));
        CHECK(gs.n_prompt_eval == 9);
        CHECK(n1 == n2 && n1 == 4 && o1 && o2 && memcmp(o1, o2, (size_t)n1 * sizeof(int32_t)) == 0);
    }
    free(o1);
    free(o2);
    mlxn_runner_free(r);
    mlxn_model_free(m);
}

/* Streaming with a tokenizer: the streamed text equals decode(ids) up to a
 * stop string, which is cut and not emitted. */
typedef struct {
    char buf[4096];
    size_t n;
} sink;
static int sink_cb(void *u, int32_t id, const char *t, size_t len) {
    (void)id;
    sink *s = u;
    if (s->n + len < sizeof s->buf) {
        memcpy(s->buf + s->n, t, len);
        s->n += len;
        s->buf[s->n] = 0;
    }
    return 0;
}

static void test_stream_and_stop(void) {
    if (skip_no_model()) return;
    mlxn_model *m = NULL;
    mlxn_tokenizer *tok = NULL;
    mlxn_runner *r = NULL;
    CHECK_OK(mlxn_model_load(g_gguf, g_dev, NULL, &m));
    if (m) CHECK_OK(mlxn_model_tokenizer(m, &tok));
    mlxn_runner_opts ro = mlxn_runner_default_opts();
    ro.n_ctx = 128;
    if (m) CHECK_OK(mlxn_runner_create(m, &ro, &r));
    if (!m || !tok || !r) goto out;
    const char *prompt = "The capital of France is";
    int32_t *ids = NULL;
    size_t n = 0;
    CHECK_OK(mlxn_tokenizer_encode(tok, prompt, strlen(prompt), 0, 1, &ids, &n));
    json_t *c0 = json_array_get(json_object_get(g_ref, "cases"), 0);
    int nref = 0;
    int32_t *ref_ids = json_ids(json_object_get(c0, "tokens"), &nref);
    CHECK_MSG((int)n == nref && ids && memcmp(ids, ref_ids, n * sizeof(int32_t)) == 0,
              "tokenizer gives %zu ids for the prompt, llama.cpp %d", n, nref);
    free(ref_ids);
    sink s1 = { .n = 0 };
    mlxn_gen_params gp;
    memset(&gp, 0, sizeof gp);
    gp.max_tokens = 16;
    gp.sampling = mlxn_sampler_default_params();
    gp.tok = tok;
    gp.on_text = sink_cb;
    gp.user = &s1;
    gp.ignore_eos = 1;
    int32_t *out = NULL;
    int nout = 0;
    mlxn_gen_stats gs;
    CHECK_OK(mlxn_generate(r, ids, (int)n, &gp, &gs, &out, &nout));
    char *dec = NULL;
    size_t dl = 0;
    if (out) CHECK_OK(mlxn_tokenizer_decode(tok, out, (size_t)nout, 0, &dec, &dl));
    CHECK_MSG(dec && strcmp(dec, s1.buf) == 0, "streamed '%s' vs decoded '%s'", s1.buf, dec ? dec : "");
    printf("  streamed: %s\n", s1.buf);
    /* stop at the first "." that follows (the fixture continuation is " Paris.\n\n...") */
    const char *stop[1] = { "." };
    sink s2 = { .n = 0 };
    gp.user = &s2;
    gp.stop = stop;
    gp.n_stop = 1;
    CHECK_OK(mlxn_generate(r, ids, (int)n, &gp, &gs, NULL, NULL));
    CHECK(strcmp(gs.stop_reason, "stop string") == 0);
    const char *dot = dec ? strchr(dec, '.') : NULL;
    if (dot) CHECK_MSG(strlen(s2.buf) == (size_t)(dot - dec) && strncmp(s2.buf, dec, (size_t)(dot - dec)) == 0,
                       "with stop '.': streamed '%s'", s2.buf);
    free(dec);
    free(out);
    free(ids);
out:
    mlxn_runner_free(r);
    mlxn_tokenizer_free(tok);
    mlxn_model_free(m);
}


/* Load path on dev with decode fusion forced on, prefill ids[0..T-2], decode
 * ids[T-1] with the recorded-graph step (fused q|k|v, gate|up, one rope) and
 * compare its logits with row T-1 of ref [T, V]. */
static void check_fused_decode(mlxn_device *dev, const char *path, const int32_t *ids, int T, const float *ref,
                               double tol, const char *label) {
    mlxn_model_load_opts lo = { 1 };
    mlxn_model *m = NULL;
    CHECK_OK(mlxn_model_load(path, dev, &lo, &m));
    if (!m) return;
    CHECK_MSG(m->layers[0].wqkv && m->layers[0].wgu, "%s: fusion not applied", label);
    CHECK(!m->layers[0].q_bias || m->layers[0].qkv_bias);
    mlxn_runner_opts ro = mlxn_runner_default_opts();
    ro.n_ctx = 32;
    ro.use_graph = 1;
    mlxn_runner *r = NULL;
    CHECK_OK(mlxn_runner_create(m, &ro, &r));
    const float *lg = NULL;
    if (r) CHECK_OK(mlxn_runner_eval(r, ids, T - 1, &lg));
    if (r && lg) CHECK_OK(mlxn_runner_step(r, ids[T - 1], &lg));
    if (r && lg) {
        const int64_t V = m->cfg.vocab;
        size_t worst;
        double wd, nmse = t_nmse(lg, ref + (size_t)(T - 1) * (size_t)V, (size_t)V, &worst, &wd);
        printf("  %s: fused graph decode of the last token: NMSE %.3e vs mlx-lm, limit %.0e\n", label, nmse, tol);
        CHECK_MSG(nmse <= tol, "%s: fused decode NMSE %.3e > %.0e", label, nmse, tol);
    }
    mlxn_runner_free(r);
    mlxn_model_free(m);
}

/* ---------------------------------------------------------------- Qwen3 (random tiny model) */

/* tests/data/qwen3_tiny (scripts/make_qwen3_tiny.py + gen_qwen3_fixtures.py):
 * a 2-layer Qwen3 with random weights (q/k RMSNorm, head_dim 64, untied
 * lm_head) as a bf16 HF directory, mlx-lm's 4-bit conversion of it, and
 * mlx-lm logits [T, V] for one prompt. Tolerances (NMSE over all T x V
 * logits, measured values in the printed lines):
 *  - ref backend vs mlx-lm in f32 on the same weights: QWEN_EXACT_NMSE
 *    (measured ~1e-12: the same arithmetic up to summation order);
 * *  - the fast device (int8 activations on CPU) vs the same: QWEN_FAST_NMSE
 *    (measured 1.3e-4);
 *  - 4-bit model vs the unquantized bf16 weights in f32 (quantization error;
 *    mlx-lm itself measures NMSE 0.045 between the two): QWEN_QUANT_NMSE. */
#define QWEN_EXACT_NMSE 1e-8
#define QWEN_FAST_NMSE 1e-3
#define QWEN_QUANT_NMSE 0.1

static json_t *g_qwen;

static float *qwen_logits_file(const char *key, int64_t n) {
    const char *f = json_string_value(json_object_get(json_object_get(g_qwen, "logits_files"), key));
    if (!f) return NULL;
    char rel[256];
    snprintf(rel, sizeof rel, "qwen3_tiny/%s", f);
    size_t len = 0;
    float *x = t_read_file(t_data_path(rel), &len);
    if (!x || len != (size_t)n * sizeof(float)) {
        free(x);
        return NULL;
    }
    return x;
}

/* All-position logits [T, V] of the model at path on dev. */
static float *qwen_run(mlxn_device *dev, const char *path, int *T_out, int64_t *V_out) {
    mlxn_model *m = NULL;
    CHECK_OK(mlxn_model_load(path, dev, NULL, &m));
    if (!m) return NULL;
    int T = 0;
    int32_t *ids = json_ids(json_object_get(g_qwen, "tokens"), &T);
    const int64_t V = m->cfg.vocab;
    float *out = malloc((size_t)T * (size_t)V * sizeof(float));
    mlxn_kv_cache *kv = NULL;
    mlxn_forward_state *fs = NULL;
    mlxn_session *s = NULL;
    CHECK(m->cfg.arch->arch == MLXN_ARCH_QWEN3 && m->cfg.head_dim == 64 && !m->cfg.tied_embeddings);
    CHECK_OK(mlxn_kv_cache_create(dev, m->cfg.n_layers, m->cfg.n_kv_heads, m->cfg.head_dim, 64, MLXN_F32, &kv));
    CHECK_OK(mlxn_forward_state_create(m, 8, &fs)); /* 8 < T: exercises chunked prefill */
    CHECK_OK(mlxn_session_begin(dev, &s));
    int ok = 0;
    if (kv && fs && s) {
        mlxn_status st = mlxn_forward_tokens(m, fs, kv, s, ids, T, 0, 1, out);
        CHECK_OK(st);
        ok = st == MLXN_OK;
    }
    mlxn_session_destroy(s);
    mlxn_forward_state_free(fs);
    mlxn_kv_cache_free(kv);
    mlxn_model_free(m);
    free(ids);
    if (!ok) {
        free(out);
        return NULL;
    }
    *T_out = T;
    *V_out = V;
    return out;
}

static void qwen_check(const char *label, const float *got, const char *ref_key, int64_t n, double tol) {
    float *ref = qwen_logits_file(ref_key, n);
    CHECK_MSG(ref != NULL, "qwen3 fixture %s missing", ref_key);
    if (!ref || !got) {
        free(ref);
        return;
    }
    size_t worst;
    double wd;
    double nmse = t_nmse(got, ref, (size_t)n, &worst, &wd);
    printf("  %s vs %s: NMSE %.3e (max |d| %.3e at %zu), limit %.0e\n", label, ref_key, nmse, wd, worst, tol);
    CHECK_MSG(nmse <= tol, "%s vs %s: NMSE %.3e > %.0e", label, ref_key, nmse, tol);
    free(ref);
}

static void test_qwen3_tiny(void) {
    if (!g_qwen) {
        CHECK_MSG(0, "tests/data/qwen3_tiny/fixtures.json missing");
        return;
    }
    char hf[1024], q4[1024];
    snprintf(hf, sizeof hf, "%s", t_data_path("qwen3_tiny/hf"));
    snprintf(q4, sizeof q4, "%s", t_data_path("qwen3_tiny/mlx_q4"));
    mlxn_device *ref = NULL;
    CHECK_OK(mlxn_device_open("ref", NULL, &ref));
    if (!ref) return;
    int T = 0;
    int64_t V = 0;
    /* unquantized bf16 weights */
    float *a = qwen_run(ref, hf, &T, &V);
    if (a) {
        qwen_check("hf bf16 (ref)", a, "logits_bf16_f32", (int64_t)T * V, QWEN_EXACT_NMSE);
        qwen_check("hf bf16 (ref)", a, "logits_numpy_f32", (int64_t)T * V, QWEN_EXACT_NMSE);
    }
    free(a);
    /* mlx-lm's own 4-bit directory */
    a = qwen_run(ref, q4, &T, &V);
    if (a) {
        qwen_check("mlx-lm q4 dir (ref)", a, "logits_mlx_q4_f32", (int64_t)T * V, QWEN_EXACT_NMSE);
        qwen_check("mlx-lm q4 dir (ref)", a, "logits_bf16_f32", (int64_t)T * V, QWEN_QUANT_NMSE);
    }
    free(a);
    a = qwen_run(g_dev, q4, &T, &V);
    if (a) qwen_check("mlx-lm q4 dir (fast)", a, "logits_mlx_q4_f32", (int64_t)T * V, QWEN_FAST_NMSE);
    free(a);
    {
        int nt = 0;
        int32_t *ids = json_ids(json_object_get(g_qwen, "tokens"), &nt);
        float *lr = qwen_logits_file("logits_mlx_q4_f32", (int64_t)nt * 512);
        if (ids && lr) check_fused_decode(g_dev, q4, ids, nt, lr, QWEN_FAST_NMSE, "qwen3 mlx-lm q4 dir");
        free(ids);
        free(lr);
    }
    /* mlxn convert of the HF directory to MLX 4-bit (g64), as `mlxn convert` does */
    char tmpl[] = "/tmp/mlxn_test_qwen_XXXXXX";
    char *d = mkdtemp(tmpl);
    if (d) {
        char out[1100];
        snprintf(out, sizeof out, "%s/q4", d);
        mlxn_convert_opts o;
        mlxn_convert_opts_init(&o);
        o.bits = 4;
        o.group_size = 64;
        mlxn_status st = mlxn_convert(hf, out, &o, NULL);
        CHECK_MSG(st == MLXN_OK, "mlxn_convert(%s): %s", hf, mlxn_last_error());
        if (st == MLXN_OK) {
            a = qwen_run(ref, out, &T, &V);
            if (a) {
                qwen_check("mlxn-converted q4 (ref)", a, "logits_mlx_q4_f32", (int64_t)T * V, QWEN_EXACT_NMSE);
                qwen_check("mlxn-converted q4 (ref)", a, "logits_bf16_f32", (int64_t)T * V, QWEN_QUANT_NMSE);
            }
            free(a);
            a = qwen_run(g_dev, out, &T, &V);
            if (a) qwen_check("mlxn-converted q4 (fast)", a, "logits_mlx_q4_f32", (int64_t)T * V, QWEN_FAST_NMSE);
            free(a);
        }
        char cmd[1200];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", d);
        if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", d);
    }
    mlxn_device_close(ref);
}


/* ---------------------------------------------------------------- Qwen2 biases, Llama-3 RoPE scaling */

/* tests/data/model/{qwen2_tiny,llama3_tiny} (scripts/make_tiny_arch_models.py):
 * random 2-layer models as a bf16 HF directory and as a GGUF (llama: Q/K
 * rows permuted + rope_freqs table; qwen2: q/k/v biases), with mlx-lm f32
 * logits [T, V]. Both files must reproduce them on the ref backend
 * (TINY_EXACT_NMSE; the GGUF stores matrices as f16, exact for these
 * bf16-rounded values up to rare subnormals) and on the fast device
 * (TINY_FAST_NMSE: these are dense f16/bf16 weights, no int8 activations). */
#define TINY_EXACT_NMSE 1e-8
#define TINY_FAST_NMSE 1e-5


static void tiny_arch_case(const char *name, mlxn_arch arch, mlxn_rope_scaling scaling, int tied) {
    char rel[256], hf[1024], gg[1024];
    snprintf(rel, sizeof rel, "model/%s/hf", name);
    snprintf(hf, sizeof hf, "%s", t_data_path(rel));
    snprintf(rel, sizeof rel, "model/%s/%s.gguf", name, name);
    snprintf(gg, sizeof gg, "%s", t_data_path(rel));
    snprintf(rel, sizeof rel, "model/%s/tokens.i32", name);
    size_t tl = 0;
    int32_t *ids = t_read_file(t_data_path(rel), &tl);
    snprintf(rel, sizeof rel, "model/%s/logits_f32.f32", name);
    size_t ll = 0;
    float *ref = t_read_file(t_data_path(rel), &ll);
    CHECK_MSG(ids && ref, "%s fixtures missing", name);
    if (!ids || !ref) {
        free(ids);
        free(ref);
        return;
    }
    const int T = (int)(tl / 4);
    mlxn_device *refdev = NULL;
    CHECK_OK(mlxn_device_open("ref", NULL, &refdev));
    const char *paths[2] = { hf, gg };
    for (int which = 0; which < 2; which++) {
        for (int d = 0; d < 2 && refdev; d++) {
            mlxn_device *dev = d == 0 ? refdev : g_dev;
            mlxn_model *m = NULL;
            CHECK_OK(mlxn_model_load(paths[which], dev, NULL, &m));
            if (!m) continue;
            CHECK(m->cfg.arch->arch == arch);
            CHECK(m->cfg.rope.scaling == scaling);
            CHECK(m->cfg.tied_embeddings == tied);
            CHECK(m->cfg.rope.mode == (which == 1 && arch == MLXN_ARCH_LLAMA ? MLXN_ROPE_ADJACENT : MLXN_ROPE_HALF_SPLIT));
            if (scaling == MLXN_ROPE_SCALING_LLAMA3)
                CHECK(m->cfg.rope.factor == 8.0f && m->cfg.rope.original_max_pos == 64);
            const int64_t V = m->cfg.vocab;
            CHECK((size_t)T * (size_t)V * 4 == ll);
            float *out = malloc((size_t)T * (size_t)V * sizeof(float));
            mlxn_kv_cache *kv = NULL;
            mlxn_forward_state *fs = NULL;
            mlxn_session *s = NULL;
            CHECK_OK(mlxn_kv_cache_create(dev, m->cfg.n_layers, m->cfg.n_kv_heads, m->cfg.head_dim, 32, MLXN_F32, &kv));
            CHECK_OK(mlxn_forward_state_create(m, 16, &fs));
            CHECK_OK(mlxn_session_begin(dev, &s));
            if (kv && fs && s && (size_t)T * (size_t)V * 4 == ll) {
                mlxn_status st = mlxn_forward_tokens(m, fs, kv, s, ids, T, 0, 1, out);
                CHECK_OK(st);
                if (st == MLXN_OK) {
                    size_t worst;
                    double wd, nmse = t_nmse(out, ref, (size_t)T * (size_t)V, &worst, &wd);
                    double tol = d == 0 ? TINY_EXACT_NMSE : TINY_FAST_NMSE;
                    printf("  %s %s on %s: NMSE %.3e vs mlx-lm (max |d| %.2e), limit %.0e\n", name,
                           which ? "gguf" : "hf", mlxn_device_kind(dev), nmse, wd, tol);
                    CHECK_MSG(nmse <= tol, "%s %s on %s: NMSE %.3e > %.0e", name, which ? "gguf" : "hf",
                              mlxn_device_kind(dev), nmse, tol);
                }
            }
            mlxn_session_destroy(s);
            mlxn_forward_state_free(fs);
            mlxn_kv_cache_free(kv);
            free(out);
            mlxn_model_free(m);
        }
    }
    if ((size_t)T * 96 * 4 == ll) {
        check_fused_decode(g_dev, hf, ids, T, ref, TINY_FAST_NMSE, name);
        check_fused_decode(g_dev, gg, ids, T, ref, TINY_FAST_NMSE, name);
    }
    mlxn_device_close(refdev);
    free(ids);
    free(ref);
}

static void test_qwen2_tiny(void) { tiny_arch_case("qwen2_tiny", MLXN_ARCH_QWEN2, MLXN_ROPE_SCALING_NONE, 0); }
static void test_llama3_tiny(void) { tiny_arch_case("llama3_tiny", MLXN_ARCH_LLAMA, MLXN_ROPE_SCALING_LLAMA3, 1); }

/* ---------------------------------------------------------------- bad input */

static void test_bad_input(void) {
    mlxn_model *m = NULL;
    mlxn_status st = mlxn_model_load("/nonexistent/dir/model.gguf", g_dev, NULL, &m);
    CHECK(st != MLXN_OK && m == NULL);
    CHECK_MSG(t_contains(mlxn_last_error(), "/nonexistent/dir/model.gguf"), "message '%s' lacks the path",
              mlxn_last_error());

    /* a GGUF of an architecture we do not run */
    char path[] = "/tmp/mlxn_test_arch_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    if (fd >= 0) close(fd);
    mlxn_gguf_writer *w = NULL;
    CHECK_OK(mlxn_gguf_writer_create(0, &w));
    if (w) {
        mlxn_gguf_writer_add_str(w, "general.architecture", "gpt2");
        mlxn_gguf_writer_add_u32(w, "gpt2.block_count", 1);
        float data[32] = { 1.0f };
        int64_t shape[2] = { 1, 32 };
        mlxn_gguf_writer_add_tensor(w, "token_embd.weight", MLXN_GGUF_F32, 2, shape, data, sizeof data);
        CHECK_OK(mlxn_gguf_writer_write(w, path));
        mlxn_gguf_writer_free(w);
        CHECK_ERR(mlxn_model_load(path, g_dev, NULL, &m), MLXN_ERR_UNSUPPORTED, "gpt2");
        CHECK(t_contains(mlxn_last_error(), "qwen3")); /* lists what is supported */
    }
    unlink(path);

    /* an MLX directory with an unsupported model_type */
    char dir[] = "/tmp/mlxn_test_cfg_XXXXXX";
    if (mkdtemp(dir)) {
        char cfg[512];
        snprintf(cfg, sizeof cfg, "%s/config.json", dir);
        FILE *f = fopen(cfg, "w");
        if (f) {
            fputs("{\"model_type\":\"mamba\",\"hidden_size\":64}", f);
            fclose(f);
        }
        st = mlxn_model_load(dir, g_dev, NULL, &m);
        CHECK_MSG(st != MLXN_OK && (t_contains(mlxn_last_error(), "mamba") ||
                                    t_contains(mlxn_last_error(), "safetensors")),
                  "unsupported mlx dir: %s (%s)", mlxn_status_name(st), mlxn_last_error());
        unlink(cfg);
        rmdir(dir);
    }

    if (skip_no_model()) return;
    CHECK_OK(mlxn_model_load(g_gguf, g_dev, NULL, &m));
    if (!m) return;
    /* prompt longer than the context */
    mlxn_runner_opts ro = mlxn_runner_default_opts();
    ro.n_ctx = 8;
    mlxn_runner *r = NULL;
    CHECK_OK(mlxn_runner_create(m, &ro, &r));
    int32_t ids[20];
    for (int i = 0; i < 20; i++) ids[i] = 100 + i;
    mlxn_gen_params gp;
    memset(&gp, 0, sizeof gp);
    gp.max_tokens = 4;
    gp.sampling = mlxn_sampler_default_params();
    if (r) {
        CHECK_ERR(mlxn_generate(r, ids, 20, &gp, NULL, NULL, NULL), MLXN_ERR_RANGE, "context");
        CHECK_ERR(mlxn_runner_eval(r, ids, 9, NULL), MLXN_ERR_RANGE, "8 tokens");
        /* generation that runs into the end of the context stops cleanly */
        mlxn_gen_stats gs;
        gp.max_tokens = 50;
        gp.ignore_eos = 1;
        CHECK_OK(mlxn_generate(r, ids, 6, &gp, &gs, NULL, NULL));
        CHECK(strcmp(gs.stop_reason, "context full") == 0);
        /* a token id outside the vocabulary */
        mlxn_runner_reset(r);
        int32_t bad = (int32_t)m->cfg.vocab;
        CHECK_ERR(mlxn_runner_eval(r, &bad, 1, NULL), MLXN_ERR_RANGE, "vocabulary");
    }
    mlxn_runner_free(r);
    /* a non-UTF-8 prompt */
    mlxn_tokenizer *tok = NULL;
    CHECK_OK(mlxn_model_tokenizer(m, &tok));
    if (tok) {
        const char badtxt[] = "hello \xff\xfe world";
        int32_t *out = NULL;
        size_t n = 0;
        CHECK_ERR(mlxn_tokenizer_encode(tok, badtxt, sizeof badtxt - 1, 0, 1, &out, &n), MLXN_ERR_INVALID_ARG, "6");
        free(out);
    }
    mlxn_tokenizer_free(tok);
    mlxn_model_free(m);
}

int main(void) {
    const char *devname = getenv("MLXN_TEST_DEVICE"); /* default cpu; "cuda" in the GPU script */
    CHECK_OK(mlxn_device_open(devname && *devname ? devname : "cpu", NULL, &g_dev));
    if (!g_dev) return 1;
    find_gguf();
    json_error_t je;
    g_ref = json_load_file(t_data_path("model/smollm2_ref.json"), 0, &je);
    if (!g_ref) fprintf(stderr, "cannot read model/smollm2_ref.json: %s\n", je.text);
    g_qwen = json_load_file(t_data_path("qwen3_tiny/fixtures.json"), 0, &je);
    T_RUN(test_arch_table);
    T_RUN(test_config_json);
    T_RUN(test_sampler);
    T_RUN(test_stop_holdback);
    T_RUN(test_bad_input);
    T_RUN(test_qwen3_tiny);
    T_RUN(test_qwen2_tiny);
    T_RUN(test_llama3_tiny);
    T_RUN(test_smollm2_gguf_fast);
    T_RUN(test_smollm2_gguf_exact);
    T_RUN(test_decode_paths_agree);
    T_RUN(test_decode_paths_agree_mlx4);
    T_RUN(test_prefix_reuse);
    T_RUN(test_stream_and_stop);
    T_RUN(test_smollm2_mlx_fast);
    T_RUN(test_smollm2_mlx_exact);
    T_RUN(test_smollm2_mlx_vs_gguf);
    json_decref(g_ref);
    json_decref(g_qwen);
    if (g_have_mlx) { /* remove the converted directory (mkdtemp parent) */
        char cmd[4200];
        char *slash = strrchr(g_mlx_dir, '/');
        if (slash) *slash = 0;
        if (strncmp(g_mlx_dir, "/tmp/mlxn_test_model_", 21) == 0) {
            snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_mlx_dir);
            if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", g_mlx_dir);
        }
    }
    mlxn_device_close(g_dev);
    return t_finish();
}
