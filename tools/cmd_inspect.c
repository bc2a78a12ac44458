/* cmd_inspect.c — `mlxn inspect PATH`: describe a model without running it.
 * PATH is a GGUF file, an MLX model directory (config.json + safetensors)
 * or a single .safetensors file. Prints the source, architecture and its key
 * hyper-parameters, the parameter count, a quantization summary (tensors and
 * bytes per storage type) and a table of tensors (name, dtype or quant type,
 * shape, bytes); --json prints the same as one JSON object. --load DEVICE
 * additionally loads every tensor onto a device (matrices as weights, the
 * rest as f32 buffers) and reports the time and the peak host memory
 * (ru_maxrss) against the model size — the loader's memory check. */
#include "cli.h"
#include "io/gguf.h"
#include "io/model_files.h"
#include "io/safetensors.h"
#include "mlxn.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>

static void usage(FILE *f) {
    fprintf(f,
            "usage: mlxn inspect [options] PATH\n"
            "  PATH              a .gguf file, an MLX model directory, or a .safetensors file\n"
            "options:\n"
            "  --json            print one JSON object instead of text\n"
            "  --no-tensors      omit the tensor table\n"
            "  --load DEVICE     also load every tensor onto DEVICE (cpu, cuda, ref, auto) and report\n"
            "                    the load time and peak host memory\n"
            "  -h, --help        this help\n");
}

static const char *human_bytes(char *buf, size_t cap, double b) {
    const char *u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int i = 0;
    while (b >= 1024 && i < 4) {
        b /= 1024;
        i++;
    }
    snprintf(buf, cap, i ? "%.2f %s" : "%.0f %s", b, u[i]);
    return buf;
}

static const char *human_count(char *buf, size_t cap, double n) {
    if (n >= 1e9) snprintf(buf, cap, "%.2fB", n / 1e9);
    else if (n >= 1e6) snprintf(buf, cap, "%.2fM", n / 1e6);
    else if (n >= 1e3) snprintf(buf, cap, "%.2fK", n / 1e3);
    else snprintf(buf, cap, "%.0f", n);
    return buf;
}

static void shape_str(char *buf, size_t cap, int ndim, const int64_t *shape) {
    size_t n = (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < ndim && n < cap; i++) n += (size_t)snprintf(buf + n, cap - n, i ? ", %lld" : "%lld", (long long)shape[i]);
    if (n < cap) snprintf(buf + n, cap - n, "]");
}

static json_t *shape_json(int ndim, const int64_t *shape) {
    json_t *a = json_array();
    for (int i = 0; i < ndim; i++) json_array_append_new(a, json_integer(shape[i]));
    return a;
}

/* One row of the tensor table. */
typedef struct row {
    const char *name;
    char type[48];
    int ndim;
    int64_t shape[4];
    size_t bytes;
    int quantized, bits, group_size;
    const char *mode;
} row;

/* Quantization summary: storage type -> tensors, bytes, params. */
typedef struct qsum {
    char type[48];
    int64_t count, params;
    size_t bytes;
} qsum;

static void add_sum(qsum **s, int *n, const row *r) {
    int64_t p = 1;
    for (int d = 0; d < r->ndim; d++) p *= r->shape[d];
    for (int i = 0; i < *n; i++)
        if (strcmp((*s)[i].type, r->type) == 0) {
            (*s)[i].count++;
            (*s)[i].bytes += r->bytes;
            (*s)[i].params += p;
            return;
        }
    qsum *ns = realloc(*s, (size_t)(*n + 1) * sizeof *ns);
    if (!ns) return;
    *s = ns;
    memset(&ns[*n], 0, sizeof ns[*n]);
    snprintf(ns[*n].type, sizeof ns[*n].type, "%s", r->type);
    ns[*n].count = 1;
    ns[*n].bytes = r->bytes;
    ns[*n].params = p;
    (*n)++;
}

static int cmp_sum(const void *a, const void *b) {
    const qsum *x = a, *y = b;
    return x->bytes < y->bytes ? 1 : x->bytes > y->bytes ? -1 : strcmp(x->type, y->type);
}

static json_t *gguf_kv_json(const mlxn_gguf *g, int64_t i) {
    const char *key = mlxn_gguf_key(g, i);
    mlxn_gguf_kv_type t = mlxn_gguf_kv_type_of(g, i);
    switch (t) {
    case MLXN_GGUF_KV_STRING: {
        const char *s;
        uint64_t len;
        if (mlxn_gguf_get_str(g, key, &s, &len) != MLXN_OK) return json_null();
        return json_stringn_nocheck(s, strlen(s));
    }
    case MLXN_GGUF_KV_F32:
    case MLXN_GGUF_KV_F64: {
        float f;
        return mlxn_gguf_get_f32(g, key, &f) == MLXN_OK ? json_real(f) : json_null();
    }
    case MLXN_GGUF_KV_BOOL: {
        int b;
        return mlxn_gguf_get_bool(g, key, &b) == MLXN_OK ? json_boolean(b) : json_null();
    }
    case MLXN_GGUF_KV_U64: {
        uint64_t u;
        if (mlxn_gguf_get_u64(g, key, &u) != MLXN_OK) return json_null();
        return u > (uint64_t)INT64_MAX ? json_real((double)u) : json_integer((json_int_t)u);
    }
    case MLXN_GGUF_KV_ARRAY: {
        mlxn_gguf_kv_type et;
        uint64_t n;
        if (mlxn_gguf_get_arr(g, key, &et, &n, NULL) != MLXN_OK) return json_null();
        return json_pack("{s:s, s:s, s:I}", "type", "array", "elem", mlxn_gguf_kv_type_name(et), "count", (json_int_t)n);
    }
    default: {
        int64_t v;
        return mlxn_gguf_get_i64(g, key, &v) == MLXN_OK ? json_integer(v) : json_null();
    }
    }
}

static void print_gguf_kv(const mlxn_gguf *g, int64_t i) {
    json_t *v = gguf_kv_json(g, i);
    char *s = NULL;
    if (json_is_string(v)) {
        const char *str = json_string_value(v);
        size_t len = strlen(str);
        const char *nl = strchr(str, '\n');
        if (len > 60 || nl) printf("  %-44s \"%.*s...\" (%zu bytes)\n", mlxn_gguf_key(g, i), (int)((nl && nl - str < 60) ? nl - str : 60), str, len);
        else printf("  %-44s \"%s\"\n", mlxn_gguf_key(g, i), str);
    } else {
        if (json_is_real(v)) printf("  %-44s %g\n", mlxn_gguf_key(g, i), json_real_value(v));
        else {
            s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
            printf("  %-44s %s\n", mlxn_gguf_key(g, i), s ? s : "?");
        }
    }
    free(s);
    json_decref(v);
}

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

static long maxrss_kb(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

/* Load every logical tensor onto `dev_name`; fills a JSON report. */
static int do_load(mlxn_model_files *mf, const char *dev_name, json_t *report) {
    mlxn_device *d = NULL;
    if (mlxn_device_open(dev_name, NULL, &d) != MLXN_OK) {
        fprintf(stderr, "mlxn inspect: cannot open device '%s': %s\n", dev_name, mlxn_last_error());
        json_object_set_new(report, "device", json_string(dev_name));
        json_object_set_new(report, "ok", json_false());
        json_object_set_new(report, "error", json_string(mlxn_last_error()));
        return 1;
    }
    int64_t n = mlxn_model_files_n_tensors(mf);
    mlxn_weight **ws = calloc((size_t)(n ? n : 1), sizeof *ws);
    mlxn_buffer **bs = calloc((size_t)(n ? n : 1), sizeof *bs);
    long rss0 = maxrss_kb();
    double t0 = now_ms();
    int rc = 0, n_w = 0, n_b = 0;
    for (int64_t i = 0; i < n && rc == 0; i++) {
        mlxn_model_tensor_info ti;
        if (mlxn_model_files_tensor(mf, i, &ti) != MLXN_OK) { rc = 1; break; }
        mlxn_status st;
        if (ti.ndim == 2 && ti.dtype != MLXN_I32 && ti.dtype != MLXN_I64) {
            st = mlxn_model_files_load_weight(mf, d, ti.name, &ws[i]);
            n_w += st == MLXN_OK;
        } else {
            st = mlxn_model_files_load_buffer(mf, d, ti.name, MLXN_F32, &bs[i]);
            n_b += st == MLXN_OK;
        }
        if (st != MLXN_OK) {
            fprintf(stderr, "mlxn inspect: loading '%s' failed: %s\n", ti.name, mlxn_last_error());
            rc = 1;
        }
    }
    double ms = now_ms() - t0;
    long rss1 = maxrss_kb();
    size_t in_use = 0, peak = 0;
    mlxn_device_memory(d, &in_use, &peak);
    size_t model = mlxn_model_files_total_bytes(mf);
    json_object_set_new(report, "device", json_string(mlxn_device_description(d)));
    json_object_set_new(report, "ok", json_boolean(rc == 0));
    json_object_set_new(report, "weights", json_integer(n_w));
    json_object_set_new(report, "buffers", json_integer(n_b));
    json_object_set_new(report, "load_ms", json_real(ms));
    json_object_set_new(report, "maxrss_before_bytes", json_integer((json_int_t)rss0 * 1024));
    json_object_set_new(report, "maxrss_after_bytes", json_integer((json_int_t)rss1 * 1024));
    json_object_set_new(report, "model_bytes", json_integer((json_int_t)model));
    json_object_set_new(report, "peak_rss_over_model", json_real(model ? (double)rss1 * 1024 / (double)model : 0));
    json_object_set_new(report, "device_bytes_in_use", json_integer((json_int_t)in_use));
    for (int64_t i = 0; i < n; i++) {
        mlxn_weight_destroy(ws[i]);
        mlxn_buffer_release(bs[i]);
    }
    free(ws);
    free(bs);
    mlxn_device_close(d);
    return rc;
}

static int is_dir(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
}

static int ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && strcmp(s + a - b, suf) == 0;
}

/* A lone .safetensors file (no config): list its tensors. */
static int inspect_safetensors(const char *path, int as_json, int tensors) {
    mlxn_st *st = NULL;
    if (mlxn_st_open(path, &st) != MLXN_OK) {
        fprintf(stderr, "mlxn inspect: %s\n", mlxn_last_error());
        return 1;
    }
    json_t *root = json_object(), *arr = json_array(), *meta = json_object();
    int64_t params = 0;
    size_t bytes = 0;
    qsum *sums = NULL;
    int n_sums = 0;
    for (int64_t i = 0; i < mlxn_st_n_tensors(st); i++) {
        mlxn_st_tensor_info ti;
        mlxn_st_tensor(st, i, &ti);
        row r = {0};
        r.name = ti.name;
        snprintf(r.type, sizeof r.type, "%s", ti.dtype_name);
        r.ndim = ti.ndim;
        memcpy(r.shape, ti.shape, sizeof r.shape);
        r.bytes = ti.nbytes;
        add_sum(&sums, &n_sums, &r);
        int64_t p = 1;
        for (int d = 0; d < ti.ndim; d++) p *= ti.shape[d];
        params += p;
        bytes += ti.nbytes;
        json_array_append_new(arr, json_pack("{s:s, s:s, s:o, s:I}", "name", ti.name, "type", ti.dtype_name, "shape",
                                             shape_json(ti.ndim, ti.shape), "bytes", (json_int_t)ti.nbytes));
    }
    for (int64_t i = 0; i < mlxn_st_n_metadata(st); i++)
        json_object_set_new(meta, mlxn_st_metadata_key(st, i), json_string(mlxn_st_metadata_value(st, i)));
    char b1[32], b2[32];
    if (sums) qsort(sums, (size_t)n_sums, sizeof *sums, cmp_sum);
    if (as_json) {
        json_t *q = json_object();
        for (int i = 0; i < n_sums; i++)
            json_object_set_new(q, sums[i].type, json_pack("{s:I, s:I, s:I}", "tensors", (json_int_t)sums[i].count,
                                                           "bytes", (json_int_t)sums[i].bytes, "params",
                                                           (json_int_t)sums[i].params));
        json_object_set_new(root, "path", json_string(path));
        json_object_set_new(root, "source", json_string("safetensors"));
        json_object_set_new(root, "n_params", json_integer(params));
        json_object_set_new(root, "total_bytes", json_integer((json_int_t)bytes));
        json_object_set_new(root, "metadata", meta);
        json_object_set_new(root, "types", q);
        if (tensors) json_object_set_new(root, "tensors", arr);
        else json_decref(arr);
        json_dumpf(root, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(9));
        printf("\n");
    } else {
        printf("%s\n  source:       safetensors file (%lld tensors, header %llu bytes)\n", path,
               (long long)mlxn_st_n_tensors(st), (unsigned long long)mlxn_st_header_size(st));
        printf("  parameters:   %s\n  tensor bytes: %s\n", human_count(b1, sizeof b1, (double)params),
               human_bytes(b2, sizeof b2, (double)bytes));
        for (int64_t i = 0; i < mlxn_st_n_metadata(st); i++)
            printf("  metadata:     %s = %s\n", mlxn_st_metadata_key(st, i), mlxn_st_metadata_value(st, i));
        for (int i = 0; i < n_sums; i++)
            printf("  %-12s  %6lld tensors  %12s\n", sums[i].type, (long long)sums[i].count,
                   human_bytes(b1, sizeof b1, (double)sums[i].bytes));
        if (tensors) {
            printf("\n%-60s %-10s %-24s %12s\n", "name", "type", "shape", "bytes");
            for (size_t i = 0; i < json_array_size(arr); i++) {
                json_t *t = json_array_get(arr, i);
                char sh[96];
                char *s = json_dumps(json_object_get(t, "shape"), JSON_COMPACT);
                snprintf(sh, sizeof sh, "%s", s ? s : "?");
                free(s);
                printf("%-60s %-10s %-24s %12lld\n", json_string_value(json_object_get(t, "name")),
                       json_string_value(json_object_get(t, "type")), sh,
                       (long long)json_integer_value(json_object_get(t, "bytes")));
            }
        }
        json_decref(arr);
        json_decref(meta);
    }
    json_decref(root);
    free(sums);
    mlxn_st_close(st);
    return 0;
}

static const char *const k_cfg_keys[] = {
    "hidden_size", "num_hidden_layers", "intermediate_size", "num_attention_heads", "num_key_value_heads",
    "head_dim", "vocab_size", "max_position_embeddings", "rms_norm_eps", "rope_theta", "tie_word_embeddings",
    "num_local_experts", "num_experts", "num_experts_per_tok", "sliding_window", NULL};

int mlxn_cmd_inspect(int argc, char **argv) {
    int as_json = 0, tensors = 1;
    const char *path = NULL, *load = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) as_json = 1;
        else if (strcmp(argv[i], "--no-tensors") == 0) tensors = 0;
        else if (strcmp(argv[i], "--load") == 0 && i + 1 < argc) load = argv[++i];
        else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "mlxn inspect: unknown option '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        } else if (!path) path = argv[i];
        else {
            fprintf(stderr, "mlxn inspect: more than one PATH given\n");
            return 2;
        }
    }
    if (!path) {
        usage(stderr);
        return 2;
    }
    if (!is_dir(path) && ends_with(path, ".safetensors") && !load) return inspect_safetensors(path, as_json, tensors);

    mlxn_model_files *mf = NULL;
    if (mlxn_model_files_open(path, &mf) != MLXN_OK) {
        fprintf(stderr, "mlxn inspect: %s\n", mlxn_last_error());
        return 1;
    }
    int gguf = mlxn_model_files_source(mf) == MLXN_SRC_GGUF;
    const mlxn_gguf *g = mlxn_model_files_gguf(mf);
    int64_t n = mlxn_model_files_n_tensors(mf);
    row *rows = calloc((size_t)(n ? n : 1), sizeof *rows);
    qsum *sums = NULL;
    int n_sums = 0;
    for (int64_t i = 0; i < n && rows; i++) {
        mlxn_model_tensor_info ti;
        mlxn_model_files_tensor(mf, i, &ti);
        row *r = &rows[i];
        r->name = ti.name;
        r->ndim = ti.ndim;
        memcpy(r->shape, ti.shape, sizeof r->shape);
        r->bytes = ti.nbytes;
        r->quantized = ti.quantized;
        if (ti.format == MLXN_WEIGHT_MLX_AFFINE) {
            r->bits = ti.bits;
            r->group_size = ti.group_size;
            r->mode = ti.mode;
            if (strcmp(ti.mode, "affine") == 0) snprintf(r->type, sizeof r->type, "Q%d g%d", ti.bits, ti.group_size);
            else snprintf(r->type, sizeof r->type, "%s g%d", ti.mode, ti.group_size);
        } else {
            snprintf(r->type, sizeof r->type, "%s", ti.src_dtype ? ti.src_dtype : "?");
        }
        add_sum(&sums, &n_sums, r);
    }
    if (sums) qsort(sums, (size_t)n_sums, sizeof *sums, cmp_sum);
    int64_t params = mlxn_model_files_n_params(mf);
    size_t total = mlxn_model_files_total_bytes(mf);
    json_t *load_report = NULL;
    int rc = 0;
    if (load) {
        load_report = json_object();
        rc = do_load(mf, load, load_report);
    }
    char b1[32], b2[32], b3[32];
    if (as_json) {
        json_t *root = json_object();
        json_object_set_new(root, "path", json_string(path));
        json_object_set_new(root, "source", json_string(gguf ? "gguf" : "mlx_dir"));
        json_object_set_new(root, "architecture", json_string(mlxn_model_files_architecture(mf)));
        json_object_set_new(root, "n_params", json_integer(params));
        json_object_set_new(root, "total_bytes", json_integer((json_int_t)total));
        json_object_set_new(root, "n_tensors", json_integer(n));
        json_t *q = json_object();
        for (int i = 0; i < n_sums; i++)
            json_object_set_new(q, sums[i].type, json_pack("{s:I, s:I, s:I}", "tensors", (json_int_t)sums[i].count,
                                                           "bytes", (json_int_t)sums[i].bytes, "params",
                                                           (json_int_t)sums[i].params));
        json_object_set_new(root, "types", q);
        if (gguf) {
            json_t *m = json_object();
            for (int64_t i = 0; i < mlxn_gguf_n_kv(g); i++) json_object_set_new(m, mlxn_gguf_key(g, i), gguf_kv_json(g, i));
            json_object_set_new(root, "gguf_version", json_integer(mlxn_gguf_version(g)));
            json_object_set_new(root, "metadata", m);
        } else {
            json_object_set_new(root, "config", json_deep_copy(mlxn_model_files_config(mf)));
            json_object_set_new(root, "shards", json_integer(mlxn_model_files_n_shards(mf)));
            const char *tj = mlxn_model_files_tokenizer_json(mf), *tc = mlxn_model_files_tokenizer_config_json(mf);
            json_object_set_new(root, "tokenizer_json", tj ? json_string(tj) : json_null());
            json_object_set_new(root, "tokenizer_config_json", tc ? json_string(tc) : json_null());
        }
        if (tensors) {
            json_t *arr = json_array();
            for (int64_t i = 0; i < n; i++) {
                const row *r = &rows[i];
                json_t *t = json_pack("{s:s, s:s, s:o, s:I, s:b}", "name", r->name, "type", r->type, "shape",
                                      shape_json(r->ndim, r->shape), "bytes", (json_int_t)r->bytes, "quantized",
                                      r->quantized);
                if (r->bits)
                    json_object_set_new(t, "quant", json_pack("{s:i, s:i, s:s}", "bits", r->bits, "group_size",
                                                              r->group_size, "mode", r->mode));
                json_array_append_new(arr, t);
            }
            json_object_set_new(root, "tensors", arr);
        }
        if (load_report) json_object_set(root, "load", load_report);
        json_dumpf(root, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(9));
        printf("\n");
        json_decref(root);
    } else {
        printf("%s\n", path);
        if (gguf)
            printf("  source:        GGUF v%u (%lld metadata keys, alignment %llu)\n", mlxn_gguf_version(g),
                   (long long)mlxn_gguf_n_kv(g), (unsigned long long)mlxn_gguf_alignment(g));
        else
            printf("  source:        MLX model directory (%d safetensors shard%s)\n", mlxn_model_files_n_shards(mf),
                   mlxn_model_files_n_shards(mf) == 1 ? "" : "s");
        printf("  architecture:  %s\n", *mlxn_model_files_architecture(mf) ? mlxn_model_files_architecture(mf) : "(unknown)");
        printf("  parameters:    %s (%lld)\n", human_count(b1, sizeof b1, (double)params), (long long)params);
        printf("  tensor bytes:  %s in %lld tensors (%.2f bits/param)\n", human_bytes(b2, sizeof b2, (double)total),
               (long long)n, params ? 8.0 * (double)total / (double)params : 0.0);
        printf("\nquantization:\n");
        for (int i = 0; i < n_sums; i++)
            printf("  %-14s %5lld tensors  %10s params  %12s\n", sums[i].type, (long long)sums[i].count,
                   human_count(b1, sizeof b1, (double)sums[i].params), human_bytes(b2, sizeof b2, (double)sums[i].bytes));
        if (gguf) {
            printf("\nmetadata:\n");
            for (int64_t i = 0; i < mlxn_gguf_n_kv(g); i++) print_gguf_kv(g, i);
        } else {
            const json_t *cfg = mlxn_model_files_config(mf);
            printf("\nconfig.json:\n");
            for (int k = 0; k_cfg_keys[k]; k++) {
                json_t *v = json_object_get(cfg, k_cfg_keys[k]);
                if (!v) continue;
                char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
                printf("  %-28s %s\n", k_cfg_keys[k], s ? s : "?");
                free(s);
            }
            const char *tj = mlxn_model_files_tokenizer_json(mf), *tc = mlxn_model_files_tokenizer_config_json(mf);
            printf("  %-28s %s\n", "tokenizer.json", tj ? tj : "(missing)");
            printf("  %-28s %s\n", "tokenizer_config.json", tc ? tc : "(missing)");
        }
        if (tensors) {
            printf("\n%-56s %-10s %-22s %12s\n", "name", "type", "shape", "bytes");
            for (int64_t i = 0; i < n; i++) {
                char sh[96];
                shape_str(sh, sizeof sh, rows[i].ndim, rows[i].shape);
                printf("%-56s %-10s %-22s %12zu\n", rows[i].name, rows[i].type, sh, rows[i].bytes);
            }
        }
        if (load_report && json_object_get(load_report, "error")) {
            printf("\nload onto %s: FAILED: %s\n", json_string_value(json_object_get(load_report, "device")),
                   json_string_value(json_object_get(load_report, "error")));
        } else if (load_report) {
            printf("\nload onto %s: %s, %lld weights + %lld buffers in %.1f ms\n",
                   json_string_value(json_object_get(load_report, "device")),
                   json_is_true(json_object_get(load_report, "ok")) ? "ok" : "FAILED",
                   (long long)json_integer_value(json_object_get(load_report, "weights")),
                   (long long)json_integer_value(json_object_get(load_report, "buffers")),
                   json_real_value(json_object_get(load_report, "load_ms")));
            printf("  peak host RSS %s (before loading %s) vs model %s: %.2fx\n",
                   human_bytes(b1, sizeof b1, (double)json_integer_value(json_object_get(load_report, "maxrss_after_bytes"))),
                   human_bytes(b2, sizeof b2, (double)json_integer_value(json_object_get(load_report, "maxrss_before_bytes"))),
                   human_bytes(b3, sizeof b3, (double)total),
                   json_real_value(json_object_get(load_report, "peak_rss_over_model")));
        }
    }
    json_decref(load_report);
    free(rows);
    free(sums);
    mlxn_model_files_close(mf);
    return rc;
}
