/* convert.c — conversion of GGUF files and float safetensors directories into
 * MLX model directories (see convert.h). The conversion first builds a plan:
 * one item per output tensor with its kind (float / lossless / quantized),
 * bits, group size, output dtype and exact output size; items are assigned
 * to shards of at most opts.shard_bytes like mlx-lm's make_shards. Then each
 * shard's items are executed (source read from the mmap'd input, converted
 * into malloc'd output buffers), written with the safetensors writer
 * (metadata {"format": "mlx"}) and freed, so peak memory is about one shard
 * plus one tensor in f32. Finally model.safetensors.index.json, config.json
 * (with "quantization" + "quantization_config") and the tokenizer files are
 * written: copied from a Hugging Face directory, or generated from GGUF
 * metadata by convert_tokenizer.c. */
#include "io/convert.h"
#include "io/convert_internal.h"

#include <errno.h>
#include <fnmatch.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <limits.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "core/internal.h"
#include "io/gguf.h"
#include "io/json_util.h"
#include "io/model_files.h"
#include "io/safetensors.h"

#define DEFAULT_SHARD_BYTES (5ull << 30)
#define NAME_CAP 192

/* ---------------------------------------------------------------- small helpers */

void mlxn_convert_opts_init(mlxn_convert_opts *o) {
    memset(o, 0, sizeof *o);
    o->bits = 0;       /* 0: HF 4, GGUF re-quantization per type */
    o->group_size = 0; /* 0: HF 64, GGUF re-quantization 32 */
    o->dtype = -1;
    o->quantize = 1;
}

void mlxn_convert_report_free(mlxn_convert_report *r) {
    if (!r) return;
    free(r->tensors);
    r->tensors = NULL;
}

static int is_float_dtype(mlxn_dtype t) { return t == MLXN_F32 || t == MLXN_F16 || t == MLXN_BF16; }

/* Store n f32 values as dtype t (f32, f16, bf16; round to nearest even). */
static void store_floats(const float *x, int64_t n, mlxn_dtype t, void *dst) {
    if (t == MLXN_F32) {
        memcpy(dst, x, (size_t)n * 4);
    } else if (t == MLXN_F16) {
        uint16_t *d = dst;
        for (int64_t i = 0; i < n; i++) d[i] = mlxn_f32_to_f16(x[i]);
    } else {
        uint16_t *d = dst;
        for (int64_t i = 0; i < n; i++) d[i] = mlxn_f32_to_bf16(x[i]);
    }
}

static int valid_bits(int b) { return b == 2 || b == 3 || b == 4 || b == 5 || b == 6 || b == 8; }
static int valid_group(int g) { return g == 32 || g == 64 || g == 128; }

/* mkdir -p */
static mlxn_status make_dirs(const char *path) {
    char buf[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof buf) return mlxn_set_error(MLXN_ERR_INVALID_ARG, "convert: bad output path '%s'", path);
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] == '/' || buf[i] == 0) {
            char c = buf[i];
            buf[i] = 0;
            if (mkdir(buf, 0755) != 0 && errno != EEXIST)
                return mlxn_set_error(MLXN_ERR_IO, "convert: cannot create directory '%s': %s", buf, strerror(errno));
            buf[i] = c;
        }
    }
    if (!mlxn_path_is_dir(path)) return mlxn_set_error(MLXN_ERR_IO, "convert: '%s' is not a directory", path);
    return MLXN_OK;
}

static int dir_is_empty(const char *path) {
    DIR *d = opendir(path);
    if (!d) return 1;
    struct dirent *e;
    int empty = 1;
    while ((e = readdir(d))) {
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) { empty = 0; break; }
    }
    closedir(d);
    return empty;
}

/* Remove stale weight files (model*.safetensors, the index) from an output dir (force mode). */
static void remove_old_weights(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        int st = l > 12 && !strncmp(e->d_name, "model", 5) && !strcmp(e->d_name + l - 12, ".safetensors");
        if (st || !strcmp(e->d_name, "model.safetensors.index.json")) {
            char *p = mlxn_path_join(dir, e->d_name);
            if (p) remove(p);
            free(p);
        }
    }
    closedir(d);
}

static mlxn_status copy_file(const char *src, const char *dst) {
    FILE *in = fopen(src, "rb");
    if (!in) return mlxn_set_error(MLXN_ERR_IO, "convert: cannot open '%s': %s", src, strerror(errno));
    FILE *out = fopen(dst, "wb");
    if (!out) {
        fclose(in);
        return mlxn_set_error(MLXN_ERR_IO, "convert: cannot create '%s': %s", dst, strerror(errno));
    }
    char buf[65536];
    size_t n;
    mlxn_status st = MLXN_OK;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0) {
        if (fwrite(buf, 1, n, out) != n) { st = mlxn_set_error(MLXN_ERR_IO, "convert: write to '%s' failed", dst); break; }
    }
    if (ferror(in)) st = mlxn_set_error(MLXN_ERR_IO, "convert: read of '%s' failed", src);
    fclose(in);
    if (fclose(out) != 0 && st == MLXN_OK) st = mlxn_set_error(MLXN_ERR_IO, "convert: closing '%s' failed", dst);
    return st;
}

mlxn_status mlxn_convert_write_json(const json_t *j, const char *dir, const char *name, size_t flags) {
    char *p = mlxn_path_join(dir, name);
    if (!p) return mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "convert: out of memory");
    mlxn_status st = MLXN_OK;
    if (json_dump_file(j, p, flags | JSON_REAL_PRECISION(15)) != 0)
        st = mlxn_set_error(MLXN_ERR_IO, "convert: cannot write '%s'", p);
    free(p);
    return st;
}

/* f32 metadata value as the shortest-looking double (1e-05, not 9.99999974e-06). */
static double tidy_f32(float v) {
    char b[32];
    snprintf(b, sizeof b, "%.7g", (double)v);
    return strtod(b, NULL);
}

/* ---------------------------------------------------------------- names */

int mlxn_convert_gguf_name_to_hf(const char *g, char *out, size_t cap) {
    static const struct { const char *gg, *hf; } top[] = {
        {"token_embd", "model.embed_tokens"},
        {"output_norm", "model.norm"},
        {"output", "lm_head"},
    };
    static const struct { const char *gg, *hf; } blk[] = {
        {"attn_norm", "input_layernorm"},          {"ffn_norm", "post_attention_layernorm"},
        {"attn_q", "self_attn.q_proj"},            {"attn_k", "self_attn.k_proj"},
        {"attn_v", "self_attn.v_proj"},            {"attn_output", "self_attn.o_proj"},
        {"attn_q_norm", "self_attn.q_norm"},       {"attn_k_norm", "self_attn.k_norm"},
        {"ffn_gate", "mlp.gate_proj"},             {"ffn_up", "mlp.up_proj"},
        {"ffn_down", "mlp.down_proj"},
    };
    const char *dot = strrchr(g, '.');
    if (!dot || (strcmp(dot, ".weight") && strcmp(dot, ".bias"))) return 0;
    size_t base_len = (size_t)(dot - g);
    int n;
    for (size_t i = 0; i < sizeof top / sizeof top[0]; i++) {
        if (strlen(top[i].gg) == base_len && !strncmp(g, top[i].gg, base_len)) {
            n = snprintf(out, cap, "%s%s", top[i].hf, dot);
            return n > 0 && (size_t)n < cap;
        }
    }
    if (strncmp(g, "blk.", 4)) return 0;
    char *end;
    long layer = strtol(g + 4, &end, 10);
    if (end == g + 4 || *end != '.' || layer < 0) return 0;
    const char *part = end + 1;
    size_t part_len = (size_t)(dot - part);
    for (size_t i = 0; i < sizeof blk / sizeof blk[0]; i++) {
        if (strlen(blk[i].gg) == part_len && !strncmp(part, blk[i].gg, part_len)) {
            n = snprintf(out, cap, "model.layers.%ld.%s%s", layer, blk[i].hf, dot);
            return n > 0 && (size_t)n < cap;
        }
    }
    return 0;
}

/* ---------------------------------------------------------------- lossless GGUF blocks */

int mlxn_convert_gguf_is_lossless(mlxn_gguf_type t) {
    return t == MLXN_GGUF_Q4_0 || t == MLXN_GGUF_Q4_1 || t == MLXN_GGUF_Q8_0 || t == MLXN_GGUF_Q5_0 ||
           t == MLXN_GGUF_Q5_1;
}

static int lossless_bits(mlxn_gguf_type t) {
    return t == MLXN_GGUF_Q8_0 ? 8 : (t == MLXN_GGUF_Q5_0 || t == MLXN_GGUF_Q5_1) ? 5 : 4;
}

static float rd_f16(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return mlxn_f16_to_f32(h);
}

/* Write one scale/bias pair at index i in dtype t; returns 0 when an f16 value overflows. */
static int put_scale(void *arr, mlxn_dtype t, int64_t i, float v) {
    if (t == MLXN_F32) {
        memcpy((char *)arr + i * 4, &v, 4);
        return 1;
    }
    uint16_t h = mlxn_f32_to_f16(v);
    memcpy((char *)arr + i * 2, &h, 2);
    return isfinite(mlxn_f16_to_f32(h)) || !isfinite(v);
}

mlxn_status mlxn_convert_gguf_block_to_mlx(mlxn_gguf_type t, const void *blocks, int64_t rows, int64_t cols,
                                           mlxn_dtype scale_dtype, void *packed, void *scales, void *biases,
                                           int *bits_out) {
    if (!blocks || !packed || !scales || !biases)
        return mlxn_set_error(MLXN_ERR_INVALID_ARG, "convert_gguf_block_to_mlx: NULL pointer");
    if (!mlxn_convert_gguf_is_lossless(t))
        return mlxn_set_error(MLXN_ERR_UNSUPPORTED, "convert_gguf_block_to_mlx: %s has no lossless MLX form",
                              mlxn_gguf_type_name(t));
    if (scale_dtype != MLXN_F16 && scale_dtype != MLXN_F32)
        return mlxn_set_error(MLXN_ERR_DTYPE, "convert_gguf_block_to_mlx: scale dtype %s is not f16 or f32",
                              mlxn_dtype_name(scale_dtype));
    if (rows <= 0 || cols <= 0 || cols % 32)
        return mlxn_set_error(MLXN_ERR_SHAPE, "convert_gguf_block_to_mlx: shape [%lld, %lld] (cols must be a multiple of 32)",
                              (long long)rows, (long long)cols);
    const int bits = lossless_bits(t);
    int64_t bv, bb;
    mlxn_gguf_type_block(t, &bv, &bb);
    const int64_t nblk = rows * (cols / 32);
    const uint8_t *src = blocks;
    uint8_t *dst = packed;
    const int64_t out_blk_bytes = 32 * bits / 8; // 16, 20 or 32
    for (int64_t b = 0; b < nblk; b++) {
        const uint8_t *blk = src + b * bb;
        uint8_t q[32];
        float d = rd_f16(blk), scale = d, bias;
        switch (t) {
        case MLXN_GGUF_Q4_0:
        case MLXN_GGUF_Q4_1: {
            const uint8_t *qs = blk + (t == MLXN_GGUF_Q4_0 ? 2 : 4);
            for (int j = 0; j < 16; j++) { q[j] = qs[j] & 15; q[j + 16] = qs[j] >> 4; }
            bias = t == MLXN_GGUF_Q4_0 ? -8.0f * d : rd_f16(blk + 2);
            break;
        }
        case MLXN_GGUF_Q5_0:
        case MLXN_GGUF_Q5_1: {
            const int off = t == MLXN_GGUF_Q5_0 ? 2 : 4;
            uint32_t qh;
            memcpy(&qh, blk + off, 4);
            const uint8_t *qs = blk + off + 4;
            for (int j = 0; j < 16; j++) {
                q[j] = (uint8_t)((qs[j] & 15) | (((qh >> j) & 1) << 4));
                q[j + 16] = (uint8_t)((qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4));
            }
            bias = t == MLXN_GGUF_Q5_0 ? -16.0f * d : rd_f16(blk + 2);
            break;
        }
        default: { /* Q8_0: d * int8 == d * (u8 ^ 0x80) - 128 d */
            for (int j = 0; j < 32; j++) q[j] = blk[2 + j] ^ 0x80;
            bias = -128.0f * d;
            break;
        }
        }
        uint8_t *o = dst + b * out_blk_bytes;
        memset(o, 0, (size_t)out_blk_bytes);
        for (int j = 0; j < 32; j++) { // LSB-first bit stream
            int bit = j * bits;
            o[bit >> 3] |= (uint8_t)(q[j] << (bit & 7));
            if ((bit & 7) + bits > 8) o[(bit >> 3) + 1] |= (uint8_t)(q[j] >> (8 - (bit & 7)));
        }
        if (!put_scale(scales, scale_dtype, b, scale) || !put_scale(biases, scale_dtype, b, bias))
            return mlxn_set_error(MLXN_ERR_RANGE,
                                  "convert_gguf_block_to_mlx: %s block %lld: scale %g / bias %g overflow f16 (use f32 scales)",
                                  mlxn_gguf_type_name(t), (long long)b, (double)scale, (double)bias);
    }
    if (bits_out) *bits_out = bits;
    return MLXN_OK;
}

mlxn_status mlxn_convert_unpermute_rope_rows(const void *src, void *dst, int64_t rows, size_t row_bytes, int n_head) {
    if (!src || !dst || src == dst) return mlxn_set_error(MLXN_ERR_INVALID_ARG, "unpermute_rope_rows: bad pointers");
    if (n_head <= 0 || rows <= 0 || rows % n_head || (rows / n_head) % 2)
        return mlxn_set_error(MLXN_ERR_SHAPE, "unpermute_rope_rows: %lld rows do not split into %d heads of even size",
                              (long long)rows, n_head);
    const int64_t hd = rows / n_head, half = hd / 2;
    for (int64_t h = 0; h < n_head; h++)
        for (int64_t j = 0; j < 2; j++)
            for (int64_t i = 0; i < half; i++) {
                int64_t d = h * hd + j * half + i, s = h * hd + 2 * i + j;
                memcpy((char *)dst + d * row_bytes, (const char *)src + s * row_bytes, row_bytes);
            }
    return MLXN_OK;
}

/* Q4_K / Q5_K -> MLX affine g32 (4 / 5 bits) directly: every 32-value
 * sub-block is an affine grid d*sc*q - dmin*m, so scale = d*sc and
 * bias = -dmin*m with the same q. Exact with f32 scales; with f16 only the
 * rounding of those two products is lost. */
static void kq_scale_min(int j, const uint8_t *q, uint8_t *d, uint8_t *m) {
    if (j < 4) {
        *d = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *d = (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
        *m = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

static int kquant_direct_ok(mlxn_gguf_type t, int bits, int group) {
    return group == 32 && ((t == MLXN_GGUF_Q4_K && bits == 4) || (t == MLXN_GGUF_Q5_K && bits == 5));
}

static void kquant_to_mlx(mlxn_gguf_type t, const void *blocks, int64_t n, mlxn_dtype sdt, uint8_t *packed,
                          void *scales, void *biases) {
    const int bits = t == MLXN_GGUF_Q4_K ? 4 : 5;
    const int64_t bb = t == MLXN_GGUF_Q4_K ? 144 : 176;
    for (int64_t b = 0; b < n / 256; b++) {
        const uint8_t *blk = (const uint8_t *)blocks + b * bb;
        float d = rd_f16(blk), dmin = rd_f16(blk + 2);
        const uint8_t *sc = blk + 4, *qh = blk + 16, *qs = blk + (t == MLXN_GGUF_Q4_K ? 16 : 48);
        for (int sb = 0; sb < 8; sb++) { /* sub-block sb: chunk sb/2, low (even) or high (odd) nibbles */
            uint8_t s, m;
            kq_scale_min(sb, sc, &s, &m);
            const uint8_t *q = qs + (sb / 2) * 32;
            uint8_t v[32];
            for (int l = 0; l < 32; l++) {
                v[l] = (sb & 1) ? (q[l] >> 4) : (q[l] & 15);
                if (t == MLXN_GGUF_Q5_K && (qh[l] & (1u << sb))) v[l] += 16;
            }
            int64_t g = b * 8 + sb;
            uint8_t *o = packed + g * 32 * bits / 8;
            memset(o, 0, (size_t)(32 * bits / 8));
            for (int j = 0; j < 32; j++) {
                int bit = j * bits;
                o[bit >> 3] |= (uint8_t)(v[j] << (bit & 7));
                if ((bit & 7) + bits > 8) o[(bit >> 3) + 1] |= (uint8_t)(v[j] >> (8 - (bit & 7)));
            }
            float fs = d * (float)s, fb = -(dmin * (float)m);
            if (sdt == MLXN_F32) {
                memcpy((char *)scales + g * 4, &fs, 4);
                memcpy((char *)biases + g * 4, &fb, 4);
            } else {
                uint16_t hs = sdt == MLXN_F16 ? mlxn_f32_to_f16(fs) : mlxn_f32_to_bf16(fs);
                uint16_t hb = sdt == MLXN_F16 ? mlxn_f32_to_f16(fb) : mlxn_f32_to_bf16(fb);
                memcpy((char *)scales + g * 2, &hs, 2);
                memcpy((char *)biases + g * 2, &hb, 2);
            }
        }
    }
}

/* ---------------------------------------------------------------- recipes and overrides */

static int layer_index_of(const char *path) {
    const char *p = path;
    while (*p) {
        const char *e = strchr(p, '.');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        int digits = n > 0;
        for (size_t i = 0; i < n; i++) if (p[i] < '0' || p[i] > '9') digits = 0;
        if (digits) return atoi(p);
        if (!e) break;
        p = e + 1;
    }
    return 0;
}

int mlxn_convert_recipe_bits(const char *recipe, const char *path, int n_layers, int default_bits) {
    if (!recipe || !*recipe || !strcmp(recipe, "uniform")) return default_bits;
    int low, high = 6;
    if (!strcmp(recipe, "mixed_2_6")) low = 2;
    else if (!strcmp(recipe, "mixed_3_4")) { low = 3; high = 4; }
    else if (!strcmp(recipe, "mixed_3_6")) low = 3;
    else if (!strcmp(recipe, "mixed_4_6")) low = 4;
    else return 0;
    int idx = layer_index_of(path);
    int n8 = n_layers / 8;
    int more = idx < n8 || idx >= 7 * n_layers / 8 || (idx - n8) % 3 == 2;
    if ((strstr(path, "v_proj") || strstr(path, "v_a_proj") || strstr(path, "v_b_proj")) && more) return high;
    if (strstr(path, "down_proj") && more) return high;
    if (strstr(path, "lm_head")) return high;
    return low;
}

static int override_matches(const char *pattern, const char *module) {
    if (!strcmp(pattern, module)) return 1;
    size_t lp = strlen(pattern), lm = strlen(module);
    if (lm > lp && module[lm - lp - 1] == '.' && !strcmp(module + lm - lp, pattern)) return 1;
    return fnmatch(pattern, module, 0) == 0;
}

/* ---------------------------------------------------------------- plan */

typedef struct plan_item {
    char name[NAME_CAP];     /* output tensor name */
    char src_name[NAME_CAP]; /* source name (GGUF or safetensors logical name) */
    int64_t src;             /* GGUF tensor index */
    mlxn_convert_kind kind;
    int bits, group;
    mlxn_dtype dtype;        /* float output dtype / scale dtype */
    int raw;                 /* FLOAT: copy source bytes unchanged (same dtype, non-float ints too) */
    int st_dtype;            /* raw copies: safetensors dtype of the output */
    int ndim;
    int64_t shape[4];
    int rope_heads;          /* > 0: un-permute rows */
    int config_entry;        /* 1: write a per-module quantization entry; 2: write `false` */
    uint64_t bytes_in, bytes_out;
    int shard;
} plan_item;

typedef struct plan {
    plan_item *items;
    int64_t n, cap;
} plan;

static plan_item *plan_add(plan *p) {
    if (p->n == p->cap) {
        int64_t nc = p->cap ? p->cap * 2 : 64;
        plan_item *ni = realloc(p->items, (size_t)nc * sizeof *ni);
        if (!ni) return NULL;
        p->items = ni;
        p->cap = nc;
    }
    plan_item *it = &p->items[p->n++];
    memset(it, 0, sizeof *it);
    return it;
}

static uint64_t quant_bytes(int64_t rows, int64_t cols, int bits, int group, mlxn_dtype sdt) {
    return (uint64_t)(rows * cols * bits / 8) + 2ull * (uint64_t)(rows * cols / group) * mlxn_dtype_size(sdt);
}

static void module_of(const char *name, char *out, size_t cap) {
    snprintf(out, cap, "%s", name);
    size_t l = strlen(out);
    if (l > 7 && !strcmp(out + l - 7, ".weight")) out[l - 7] = 0;
}

/* ---------------------------------------------------------------- output tensors */

typedef struct out_tensor {
    char name[NAME_CAP + 8];
    mlxn_st_dtype dt;
    int ndim;
    int64_t shape[4];
    void *data;
} out_tensor;

typedef struct outs {
    out_tensor *t;
    int n, cap;
} outs;

static mlxn_status outs_add(outs *o, const char *name, mlxn_st_dtype dt, int ndim, const int64_t *shape, void *data) {
    if (o->n == o->cap) {
        int nc = o->cap ? o->cap * 2 : 32;
        out_tensor *nt = realloc(o->t, (size_t)nc * sizeof *nt);
        if (!nt) { free(data); return mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "convert: out of memory"); }
        o->t = nt;
        o->cap = nc;
    }
    out_tensor *t = &o->t[o->n++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->dt = dt;
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++) t->shape[i] = shape[i];
    t->data = data;
    return MLXN_OK;
}

static void outs_clear(outs *o) {
    for (int i = 0; i < o->n; i++) free(o->t[i].data);
    o->n = 0;
}

/* ---------------------------------------------------------------- execution */


/* Quantize w [rows, cols] into a triple; measure the error against w. */
typedef struct conv_ctx {
    const mlxn_convert_opts *opts;
    mlxn_gguf *g;           /* GGUF source */
    mlxn_model_files *mf;   /* HF source */
    plan pl;
    mlxn_convert_report *rep;
    int n_shards;
} conv_ctx;

/* One thread's share of a quantization: rows [r0, r1) quantized (or mapped
 * directly from K-quant blocks), dequantized again in chunks and compared. */
typedef struct quant_job {
    const float *w;
    int64_t r0, r1, cols;
    int bits, group;
    mlxn_dtype sdt;
    const void *direct;
    mlxn_gguf_type direct_type;
    uint8_t *packed, *sc, *bi; /* whole-tensor outputs */
    double num, den, mx;
    mlxn_status st;
    char err[256];
    int threaded; /* 1: runs on its own pthread */
} quant_job;

static void *quant_worker(void *arg) {
    quant_job *j = arg;
    const int64_t rows = j->r1 - j->r0, cols = j->cols;
    if (rows <= 0) return NULL;
    const size_t ss = mlxn_dtype_size(j->sdt);
    uint8_t *pk = j->packed + j->r0 * cols * j->bits / 8;
    uint8_t *sc = j->sc + j->r0 * (cols / j->group) * (int64_t)ss, *bi = j->bi + j->r0 * (cols / j->group) * (int64_t)ss;
    const float *w = j->w + j->r0 * cols;
    if (j->direct) {
        const int64_t bb = j->direct_type == MLXN_GGUF_Q4_K ? 144 : 176;
        kquant_to_mlx(j->direct_type, (const uint8_t *)j->direct + j->r0 * (cols / 256) * bb, rows * cols, j->sdt, pk, sc, bi);
    } else {
        j->st = mlxn_quantize_affine(w, rows, cols, j->bits, j->group, j->sdt, pk, sc, bi);
    }
    int64_t chunk = cols >= 65536 ? 1 : 65536 / cols; /* rows per dequantization chunk */
    float *back = j->st == MLXN_OK ? malloc((size_t)(chunk * cols) * sizeof(float)) : NULL;
    if (!back && j->st == MLXN_OK) j->st = MLXN_ERR_OUT_OF_MEMORY;
    for (int64_t r = 0; r < rows && j->st == MLXN_OK; r += chunk) {
        int64_t n = rows - r < chunk ? rows - r : chunk;
        int64_t gpr = cols / j->group;
        j->st = mlxn_dequantize_affine(pk + r * cols * j->bits / 8, sc + r * gpr * (int64_t)ss, bi + r * gpr * (int64_t)ss,
                                       j->sdt, n, cols, j->bits, j->group, back);
        for (int64_t i = 0; i < n * cols && j->st == MLXN_OK; i++) {
            double x = w[r * cols + i], d = x - back[i];
            j->num += d * d;
            j->den += x * x;
            if (fabs(d) > j->mx) j->mx = fabs(d);
        }
    }
    if (j->st != MLXN_OK) snprintf(j->err, sizeof j->err, "%s", mlxn_last_error());
    free(back);
    return NULL;
}

static int convert_threads(const mlxn_convert_opts *o) {
    int n = o->n_threads > 0 ? o->n_threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > 64 ? 64 : n;
}

/* Quantize w [rows, cols] into a triple (or map K-quant blocks directly);
 * measure the error against w. Rows are split over threads. */
static mlxn_status emit_quantized(conv_ctx *c, outs *o, plan_item *it, const float *w, int64_t rows, int64_t cols,
                                  mlxn_convert_tensor_report *tr, const void *direct, mlxn_gguf_type direct_type) {
    if (!valid_bits(it->bits) || !valid_group(it->group) || cols % it->group || (direct && cols % 256))
        return mlxn_set_error(MLXN_ERR_INVALID_ARG, "convert '%s': cannot quantize [%lld, %lld] at %d bits, group %d",
                              it->name, (long long)rows, (long long)cols, it->bits, it->group);
    size_t pb = (size_t)(rows * cols * it->bits / 8);
    int64_t ng = rows * cols / it->group;
    size_t sb = (size_t)ng * mlxn_dtype_size(it->dtype);
    uint8_t *packed = malloc(pb), *sc = malloc(sb), *bi = malloc(sb);
    mlxn_status st = MLXN_OK;
    int nt = convert_threads(c->opts);
    if (rows * cols < (1 << 12)) nt = 1;
    if (nt > rows) nt = (int)rows;
    quant_job *jobs = calloc((size_t)nt, sizeof *jobs);
    pthread_t *tid = calloc((size_t)nt, sizeof *tid);
    if (!packed || !sc || !bi || !jobs || !tid) {
        st = mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "convert: out of memory quantizing '%s'", it->name);
        goto fail;
    }
    for (int t = 0; t < nt; t++) {
        quant_job *j = &jobs[t];
        *j = (quant_job){w, rows * t / nt, rows * (t + 1) / nt, cols, it->bits, it->group, it->dtype, direct, direct_type,
                         packed, sc, bi, 0, 0, 0, MLXN_OK, {0}, 0};
        if (t > 0 && pthread_create(&tid[t], NULL, quant_worker, j) == 0) j->threaded = 1;
    }
    quant_worker(&jobs[0]);
    for (int t = 1; t < nt; t++) {
        if (jobs[t].threaded) pthread_join(tid[t], NULL);
        else quant_worker(&jobs[t]); /* thread creation failed: do it here */
    }
    double num = 0, den = 0, mx = 0;
    for (int t = 0; t < nt; t++) {
        if (jobs[t].st != MLXN_OK && st == MLXN_OK)
            st = mlxn_set_error(jobs[t].st, "convert '%s': %s", it->name, jobs[t].err);
        num += jobs[t].num;
        den += jobs[t].den;
        if (jobs[t].mx > mx) mx = jobs[t].mx;
    }
    if (st) goto fail;
    tr->nmse = den > 0 ? num / den : (num > 0 ? INFINITY : 0);
    tr->max_abs_err = mx;
    char mod[NAME_CAP], nm[NAME_CAP + 8];
    module_of(it->name, mod, sizeof mod);
    int64_t shp[2] = {rows, cols * it->bits / 32}, gsh[2] = {rows, cols / it->group};
    mlxn_st_dtype sdt = mlxn_st_dtype_from_mlxn(it->dtype);
    snprintf(nm, sizeof nm, "%s.weight", mod);
    st = outs_add(o, nm, MLXN_ST_U32, 2, shp, packed);
    packed = NULL;
    if (st) goto fail;
    snprintf(nm, sizeof nm, "%s.scales", mod);
    st = outs_add(o, nm, sdt, 2, gsh, sc);
    sc = NULL;
    if (st) goto fail;
    snprintf(nm, sizeof nm, "%s.biases", mod);
    st = outs_add(o, nm, sdt, 2, gsh, bi);
    bi = NULL;
fail:
    free(packed);
    free(sc);
    free(bi);
    free(jobs);
    free(tid);
    return st;
}

static mlxn_status emit_float(outs *o, plan_item *it, const float *w) {
    int64_t n = mlxn_numel(it->ndim, it->shape);
    void *d = malloc((size_t)n * mlxn_dtype_size(it->dtype) + 1);
    if (!d) return mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "convert: out of memory for '%s'", it->name);
    store_floats(w, n, it->dtype, d);
    return outs_add(o, it->name, mlxn_st_dtype_from_mlxn(it->dtype), it->ndim, it->shape, d);
}

static mlxn_status exec_gguf_item(conv_ctx *c, outs *o, plan_item *it, mlxn_convert_tensor_report *tr) {
    mlxn_gguf_tensor_info ti;
    MLXN_TRY(mlxn_gguf_tensor(c->g, it->src, &ti));
    int64_t rows = ti.n_dims >= 2 ? mlxn_numel(ti.n_dims - 1, ti.shape) : 1;
    int64_t cols = ti.shape[ti.n_dims - 1];
    const void *data = ti.data;
    void *perm = NULL;
    mlxn_status st = MLXN_OK;
    if (it->rope_heads > 0) {
        perm = malloc(ti.nbytes ? ti.nbytes : 1);
        if (!perm) return mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "convert: out of memory for '%s'", ti.name);
        st = mlxn_convert_unpermute_rope_rows(ti.data, perm, rows, ti.nbytes / (size_t)rows, it->rope_heads);
        if (st) { free(perm); return mlxn_error_prefix(st, "convert '%s'", ti.name); }
        data = perm;
    }
    if (it->kind == MLXN_CONVERT_LOSSLESS) {
        for (int attempt = 0; attempt < 2; attempt++) {
            size_t pb = (size_t)(rows * cols * it->bits / 8), sb = (size_t)(rows * cols / 32) * mlxn_dtype_size(it->dtype);
            uint8_t *packed = malloc(pb), *sc = malloc(sb), *bi = malloc(sb);
            if (!packed || !sc || !bi) {
                free(packed); free(sc); free(bi);
                st = mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "convert: out of memory for '%s'", ti.name);
                break;
            }
            st = mlxn_convert_gguf_block_to_mlx(ti.type, data, rows, cols, it->dtype, packed, sc, bi, NULL);
            if (st == MLXN_ERR_RANGE && it->dtype == MLXN_F16) { /* f16 bias overflow: retry with f32 scales */
                free(packed); free(sc); free(bi);
                it->dtype = MLXN_F32;
                continue;
            }
            if (st) {
                free(packed); free(sc); free(bi);
                mlxn_error_prefix(st, "convert '%s'", ti.name);
                break;
            }
            char mod[NAME_CAP], nm[NAME_CAP + 8];
            module_of(it->name, mod, sizeof mod);
            int64_t shp[2] = {rows, cols * it->bits / 32}, gsh[2] = {rows, cols / 32};
            mlxn_st_dtype sdt = mlxn_st_dtype_from_mlxn(it->dtype);
            snprintf(nm, sizeof nm, "%s.weight", mod);
            st = outs_add(o, nm, MLXN_ST_U32, 2, shp, packed);
            snprintf(nm, sizeof nm, "%s.scales", mod);
            if (!st) st = outs_add(o, nm, sdt, 2, gsh, sc); else free(sc);
            snprintf(nm, sizeof nm, "%s.biases", mod);
            if (!st) st = outs_add(o, nm, sdt, 2, gsh, bi); else free(bi);
            break;
        }
        free(perm);
        return st;
    }
    if (it->raw) {
        void *d = malloc(ti.nbytes ? ti.nbytes : 1);
        if (!d) st = mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "convert: out of memory for '%s'", ti.name);
        else {
            memcpy(d, data, ti.nbytes);
            st = outs_add(o, it->name, (mlxn_st_dtype)it->st_dtype, it->ndim, it->shape, d);
        }
        free(perm);
        return st;
    }
    float *w = malloc((size_t)(rows * cols) * sizeof(float));
    if (!w) {
        free(perm);
        return mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "convert: out of memory for '%s'", ti.name);
    }
    st = mlxn_gguf_dequantize(ti.type, data, rows * cols, w);
    if (st) { free(w); free(perm); return mlxn_error_prefix(st, "convert '%s'", ti.name); }
    if (it->kind == MLXN_CONVERT_QUANTIZED)
        st = emit_quantized(c, o, it, w, rows, cols, tr, kquant_direct_ok(ti.type, it->bits, it->group) ? data : NULL, ti.type);
    else st = emit_float(o, it, w);
    free(perm);
    free(w);
    return st;
}

static mlxn_status exec_hf_item(conv_ctx *c, outs *o, plan_item *it, mlxn_convert_tensor_report *tr) {
    if (it->raw) {
        mlxn_st_tensor_info si;
        MLXN_TRY(mlxn_model_files_st_tensor(c->mf, it->src_name, &si));
        void *d = malloc(si.nbytes ? si.nbytes : 1);
        if (!d) return mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "convert: out of memory for '%s'", it->name);
        memcpy(d, si.data, si.nbytes);
        return outs_add(o, it->name, si.dtype, si.ndim, si.shape, d);
    }
    int64_t n = mlxn_numel(it->ndim, it->shape);
    float *w = malloc((size_t)(n ? n : 1) * sizeof(float));
    if (!w) return mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "convert: out of memory for '%s'", it->name);
    mlxn_status st = mlxn_model_files_read_f32(c->mf, it->src_name, w, (size_t)n);
    if (st == MLXN_OK) {
        if (it->kind == MLXN_CONVERT_QUANTIZED)
            st = emit_quantized(c, o, it, w, it->shape[0], it->shape[1], tr, NULL, MLXN_GGUF_F32);
        else st = emit_float(o, it, w);
    }
    free(w);
    return st;
}

/* ---------------------------------------------------------------- planning: GGUF */

static int arch_permutes_rope(const char *arch) {
    return !strcmp(arch, "llama") || !strcmp(arch, "mistral") || !strcmp(arch, "granite");
}

static int default_requant_bits(mlxn_gguf_type t) {
    switch (t) {
    case MLXN_GGUF_Q2_K: case MLXN_GGUF_Q3_K: case MLXN_GGUF_Q4_K: return 4;
    case MLXN_GGUF_Q5_K: return 5;
    case MLXN_GGUF_Q6_K: return 6;
    default: return 8;
    }
}

static mlxn_status gguf_key_u32(const mlxn_gguf *g, const char *arch, const char *suffix, uint32_t *out, int required) {
    char key[160];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    mlxn_status st = mlxn_gguf_get_u32(g, key, out);
    if (st == MLXN_ERR_NOT_FOUND && !required) { mlxn_clear_error(); return MLXN_ERR_NOT_FOUND; }
    if (st) return mlxn_error_prefix(st, "convert: gguf '%s'", mlxn_gguf_path(g));
    return MLXN_OK;
}

static mlxn_status plan_gguf(conv_ctx *c, int *n_head, int *n_kv) {
    const mlxn_convert_opts *op = c->opts;
    const char *arch = NULL;
    mlxn_status st = mlxn_gguf_get_str(c->g, "general.architecture", &arch, NULL);
    if (st) return mlxn_error_prefix(st, "convert: gguf '%s'", mlxn_gguf_path(c->g));
    if (strcmp(arch, "llama") && strcmp(arch, "mistral") && strcmp(arch, "qwen2") && strcmp(arch, "qwen3"))
        return mlxn_set_error(MLXN_ERR_UNSUPPORTED,
                              "convert: gguf '%s': architecture '%s' is not supported (llama, mistral, qwen2, qwen3)",
                              mlxn_gguf_path(c->g), arch);
    uint32_t h, hkv;
    MLXN_TRY(gguf_key_u32(c->g, arch, "attention.head_count", &h, 1));
    if (gguf_key_u32(c->g, arch, "attention.head_count_kv", &hkv, 0) != MLXN_OK) hkv = h;
    *n_head = (int)h;
    *n_kv = (int)hkv;
    const int permute = arch_permutes_rope(arch);
    int64_t nt = mlxn_gguf_n_tensors(c->g);
    for (int64_t i = 0; i < nt; i++) {
        mlxn_gguf_tensor_info ti;
        MLXN_TRY(mlxn_gguf_tensor(c->g, i, &ti));
        if (!strcmp(ti.name, "rope_freqs.weight")) {
            mlxn_log(1, "convert: dropping '%s' (rope scaling frequencies are not carried into config.json)", ti.name);
            continue;
        }
        plan_item *it = plan_add(&c->pl);
        if (!it) return mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "convert: out of memory");
        if (!mlxn_convert_gguf_name_to_hf(ti.name, it->name, sizeof it->name))
            return mlxn_set_error(MLXN_ERR_UNSUPPORTED, "convert: gguf '%s': tensor '%s' has no known Hugging Face name",
                                  mlxn_gguf_path(c->g), ti.name);
        snprintf(it->src_name, sizeof it->src_name, "%s", ti.name);
        it->src = i;
        it->ndim = ti.n_dims;
        for (int d = 0; d < ti.n_dims; d++) it->shape[d] = ti.shape[d];
        it->bytes_in = ti.nbytes;
        int64_t rows = ti.n_dims >= 2 ? mlxn_numel(ti.n_dims - 1, ti.shape) : 1, cols = ti.shape[ti.n_dims - 1];
        if (permute && ti.n_dims == 2 && (strstr(ti.name, ".attn_q.") || strstr(ti.name, ".attn_k.")))
            it->rope_heads = strstr(ti.name, ".attn_q.") ? *n_head : *n_kv;
        int is_float = ti.type == MLXN_GGUF_F32 || ti.type == MLXN_GGUF_F16 || ti.type == MLXN_GGUF_BF16;
        if (is_float) {
            mlxn_dtype src = ti.type == MLXN_GGUF_F32 ? MLXN_F32 : ti.type == MLXN_GGUF_F16 ? MLXN_F16 : MLXN_BF16;
            it->kind = MLXN_CONVERT_FLOAT;
            it->dtype = op->dtype >= 0 ? (mlxn_dtype)op->dtype : src;
            it->raw = it->dtype == src;
            it->st_dtype = mlxn_st_dtype_from_mlxn(src);
            it->bytes_out = (uint64_t)(rows * cols) * mlxn_dtype_size(it->dtype);
        } else if (mlxn_convert_gguf_is_lossless(ti.type)) {
            if (ti.n_dims != 2)
                return mlxn_set_error(MLXN_ERR_UNSUPPORTED, "convert: gguf tensor '%s' (%s) has %d dims (2 expected)",
                                      ti.name, mlxn_gguf_type_name(ti.type), ti.n_dims);
            it->kind = MLXN_CONVERT_LOSSLESS;
            it->bits = lossless_bits(ti.type);
            it->group = 32;
            it->dtype = MLXN_F16;
            it->bytes_out = quant_bytes(rows, cols, it->bits, 32, MLXN_F16);
        } else {
            if (ti.n_dims != 2)
                return mlxn_set_error(MLXN_ERR_UNSUPPORTED, "convert: gguf tensor '%s' (%s) has %d dims (2 expected)",
                                      ti.name, mlxn_gguf_type_name(ti.type), ti.n_dims);
            char mod[NAME_CAP];
            module_of(it->name, mod, sizeof mod);
            it->kind = MLXN_CONVERT_QUANTIZED;
            it->bits = op->bits > 0 ? op->bits : default_requant_bits(ti.type);
            it->group = op->group_size > 0 ? op->group_size : 32;
            for (int k = 0; k < op->n_overrides; k++) {
                if (!override_matches(op->overrides[k].pattern, mod)) continue;
                if (op->overrides[k].bits > 0) it->bits = op->overrides[k].bits;
                if (op->overrides[k].group_size > 0) it->group = op->overrides[k].group_size;
            }
            if (cols % it->group) it->group = 32;
            it->dtype = op->dtype >= 0 ? (mlxn_dtype)op->dtype : MLXN_F16;
            it->bytes_out = quant_bytes(rows, cols, it->bits, it->group, it->dtype);
        }
    }
    return MLXN_OK;
}

/* ---------------------------------------------------------------- planning: HF */

static int config_int(const json_t *cfg, const char *key, int64_t *out) {
    if (mlxn_json_get_int(cfg, key, out)) return 1;
    const json_t *tc = json_object_get(cfg, "text_config");
    return tc && mlxn_json_get_int(tc, key, out);
}

static int dtype_from_torch(const char *s) {
    if (!s) return -1;
    if (!strcmp(s, "float16")) return MLXN_F16;
    if (!strcmp(s, "bfloat16")) return MLXN_BF16;
    if (!strcmp(s, "float32")) return MLXN_F32;
    return -1;
}

static mlxn_status plan_hf(conv_ctx *c) {
    const mlxn_convert_opts *op = c->opts;
    const json_t *cfg = mlxn_model_files_config(c->mf);
    int64_t n_layers = 0;
    config_int(cfg, "num_hidden_layers", &n_layers);
    int tie = json_is_true(json_object_get(cfg, "tie_word_embeddings"));
    int cfg_dtype = dtype_from_torch(mlxn_json_get_str(cfg, "torch_dtype"));
    if (cfg_dtype < 0) cfg_dtype = dtype_from_torch(mlxn_json_get_str(cfg, "dtype"));
    int want_dtype = op->dtype >= 0 ? op->dtype : cfg_dtype;
    int recipe = op->recipe && *op->recipe && strcmp(op->recipe, "uniform");
    if (recipe && !mlxn_convert_recipe_bits(op->recipe, "x", 1, op->bits))
        return mlxn_set_error(MLXN_ERR_INVALID_ARG,
                              "convert: unknown recipe '%s' (uniform, mixed_2_6, mixed_3_4, mixed_3_6, mixed_4_6)",
                              op->recipe);
    int64_t nt = mlxn_model_files_n_tensors(c->mf);
    for (int64_t i = 0; i < nt; i++) {
        mlxn_model_tensor_info ti;
        MLXN_TRY(mlxn_model_files_tensor(c->mf, i, &ti));
        if (strstr(ti.name, "rotary_emb.inv_freq")) continue;
        if (tie && !strcmp(ti.name, "lm_head.weight")) continue;
        if (ti.quantized)
            return mlxn_set_error(MLXN_ERR_UNSUPPORTED,
                                  "convert: '%s': tensor '%s' is already quantized (%s); re-quantizing an MLX "
                                  "quantized directory is not supported",
                                  mlxn_model_files_path(c->mf), ti.name, ti.src_dtype);
        plan_item *it = plan_add(&c->pl);
        if (!it) return mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "convert: out of memory");
        snprintf(it->name, sizeof it->name, "%s", ti.name);
        snprintf(it->src_name, sizeof it->src_name, "%s", ti.name);
        it->ndim = ti.ndim;
        for (int d = 0; d < ti.ndim; d++) it->shape[d] = ti.shape[d];
        it->bytes_in = ti.nbytes;
        int64_t numel = mlxn_numel(ti.ndim, ti.shape);
        int fl = (int)ti.dtype >= 0 && is_float_dtype(ti.dtype);
        char mod[NAME_CAP];
        module_of(ti.name, mod, sizeof mod);
        size_t ln = strlen(ti.name);
        int quantizable = op->quantize && fl && ti.ndim == 2 && ln > 7 && !strcmp(ti.name + ln - 7, ".weight") &&
                          !strstr(mod, "norm");
        int bits = op->bits, group = op->group_size, explicit_entry = 0, off = 0;
        if (quantizable) {
            if (recipe) {
                bits = mlxn_convert_recipe_bits(op->recipe, mod, (int)n_layers, op->bits);
                explicit_entry = 1;
            }
            for (int k = 0; k < op->n_overrides; k++) {
                if (!override_matches(op->overrides[k].pattern, mod)) continue;
                explicit_entry = 1;
                if (op->overrides[k].bits <= 0) { off = 1; continue; }
                off = 0;
                bits = op->overrides[k].bits;
                group = op->overrides[k].group_size > 0 ? op->overrides[k].group_size : op->group_size;
            }
            if (!off && ti.shape[1] % group) quantizable = 0, explicit_entry = 0; /* mlx-lm leaves it in float */
            if (off) quantizable = 0;
        }
        mlxn_dtype src_dt = fl ? ti.dtype : MLXN_F32;
        it->dtype = fl ? (want_dtype >= 0 ? (mlxn_dtype)want_dtype : src_dt) : src_dt;
        if (quantizable) {
            if (!valid_bits(bits) || !valid_group(group))
                return mlxn_set_error(MLXN_ERR_INVALID_ARG, "convert: module '%s': bits %d / group %d not supported", mod,
                                      bits, group);
            it->kind = MLXN_CONVERT_QUANTIZED;
            it->bits = bits;
            it->group = group;
            it->config_entry = explicit_entry;
            it->bytes_out = quant_bytes(ti.shape[0], ti.shape[1], bits, group, it->dtype);
        } else {
            it->kind = MLXN_CONVERT_FLOAT;
            it->config_entry = off ? 2 : 0;
            it->raw = !fl || it->dtype == src_dt;
            it->bytes_out = fl ? (uint64_t)numel * mlxn_dtype_size(it->dtype) : ti.nbytes;
        }
    }
    return MLXN_OK;
}

/* ---------------------------------------------------------------- config and tokenizer */

/* Most common (bits, group) among quantized items -> *bits, *group; 0 if none. */
static int dominant_quant(const plan *p, int *bits, int *group) {
    int best = 0;
    *bits = 0;
    *group = 0;
    for (int64_t i = 0; i < p->n; i++) {
        const plan_item *a = &p->items[i];
        if (a->kind == MLXN_CONVERT_FLOAT) continue;
        int cnt = 0;
        for (int64_t j = 0; j < p->n; j++)
            if (p->items[j].kind != MLXN_CONVERT_FLOAT && p->items[j].bits == a->bits && p->items[j].group == a->group) cnt++;
        if (cnt > best) { best = cnt; *bits = a->bits; *group = a->group; }
        if (best * 2 > p->n) break;
    }
    return best > 0;
}

static json_t *quant_entry(int bits, int group) {
    return json_pack("{s:i, s:i, s:s}", "group_size", group, "bits", bits, "mode", "affine");
}

/* Build the "quantization" object; NULL when nothing is quantized. gguf: write
 * entries for every quantized module whose (bits, group) differ from the global. */
static json_t *build_quant_config(const plan *p, int gguf, int global_bits, int global_group) {
    int qb, qg;
    int any = dominant_quant(p, &qb, &qg);
    int any_off = 0;
    for (int64_t i = 0; i < p->n; i++) any_off |= p->items[i].config_entry == 2;
    if (!any && !any_off) return NULL;
    if (!gguf) { qb = global_bits; qg = global_group; }
    json_t *q = quant_entry(qb, qg);
    for (int64_t i = 0; i < p->n && q; i++) {
        const plan_item *it = &p->items[i];
        char mod[NAME_CAP];
        module_of(it->name, mod, sizeof mod);
        if (it->config_entry == 2) json_object_set_new(q, mod, json_false());
        else if (it->kind != MLXN_CONVERT_FLOAT &&
                 (it->config_entry == 1 || it->bits != qb || it->group != qg))
            json_object_set_new(q, mod, quant_entry(it->bits, it->group));
    }
    return q;
}


static mlxn_status write_gguf_config(conv_ctx *c, const char *out_dir, int n_head, int n_kv, json_t *quant) {
    const mlxn_gguf *g = c->g;
    const char *arch = NULL;
    MLXN_TRY(mlxn_gguf_get_str(g, "general.architecture", &arch, NULL));
    uint32_t d_model = 0, n_layer = 0, d_ff = 0, ctx = 0, kl = 0;
    MLXN_TRY(gguf_key_u32(g, arch, "embedding_length", &d_model, 1));
    MLXN_TRY(gguf_key_u32(g, arch, "block_count", &n_layer, 1));
    MLXN_TRY(gguf_key_u32(g, arch, "feed_forward_length", &d_ff, 1));
    if (gguf_key_u32(g, arch, "context_length", &ctx, 0) != MLXN_OK) ctx = 2048;
    if (gguf_key_u32(g, arch, "attention.key_length", &kl, 0) != MLXN_OK) kl = n_head > 0 ? d_model / (uint32_t)n_head : 0;
    char key[160];
    float eps = 1e-5f, theta = 10000.0f;
    snprintf(key, sizeof key, "%s.attention.layer_norm_rms_epsilon", arch);
    if (mlxn_gguf_get_f32(g, key, &eps) != MLXN_OK) mlxn_clear_error();
    snprintf(key, sizeof key, "%s.rope.freq_base", arch);
    if (mlxn_gguf_get_f32(g, key, &theta) != MLXN_OK) mlxn_clear_error();
    int64_t emb = mlxn_gguf_find_tensor(g, "token_embd.weight");
    int64_t vocab = 0;
    if (emb >= 0) {
        mlxn_gguf_tensor_info ti;
        MLXN_TRY(mlxn_gguf_tensor(g, emb, &ti));
        vocab = ti.shape[0];
    }
    int tied = mlxn_gguf_find_tensor(g, "output.weight") < 0;
    const char *mt = !strcmp(arch, "mistral") ? "llama" : arch;
    const char *cls = !strcmp(mt, "llama") ? "LlamaForCausalLM" : !strcmp(mt, "qwen2") ? "Qwen2ForCausalLM" : "Qwen3ForCausalLM";
    int has_bias = 0;
    int64_t nt = mlxn_gguf_n_tensors(g);
    for (int64_t i = 0; i < nt; i++) {
        mlxn_gguf_tensor_info ti;
        if (mlxn_gguf_tensor(g, i, &ti) == MLXN_OK && strstr(ti.name, ".attn_q.bias")) has_bias = 1;
    }
    json_t *cfg = json_pack("{s:[s], s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:f, s:f, s:b, s:s, s:b, s:b, s:s}",
                            "architectures", cls, "model_type", mt, "hidden_size", (json_int_t)d_model,
                            "intermediate_size", (json_int_t)d_ff, "num_hidden_layers", (json_int_t)n_layer,
                            "num_attention_heads", (json_int_t)n_head, "num_key_value_heads", (json_int_t)n_kv,
                            "head_dim", (json_int_t)kl, "vocab_size", (json_int_t)vocab, "max_position_embeddings",
                            (json_int_t)ctx, "rms_norm_eps", tidy_f32(eps), "rope_theta", tidy_f32(theta),
                            "tie_word_embeddings", tied, "hidden_act", "silu", "attention_bias", has_bias, "mlp_bias", 0,
                            "torch_dtype", "float16");
    if (!cfg) return mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "convert: out of memory");
    int64_t bos = mlxn_convert_gguf_opt_id(g, "tokenizer.ggml.bos_token_id"), eos = mlxn_convert_gguf_opt_id(g, "tokenizer.ggml.eos_token_id");
    if (bos >= 0) json_object_set_new(cfg, "bos_token_id", json_integer(bos));
    if (eos >= 0) json_object_set_new(cfg, "eos_token_id", json_integer(eos));
    if (quant) {
        json_object_set(cfg, "quantization", quant);
        json_object_set(cfg, "quantization_config", quant);
    }
    mlxn_status st = mlxn_convert_write_json(cfg, out_dir, "config.json", JSON_INDENT(4) | JSON_SORT_KEYS);
    json_decref(cfg);
    return st;
}

static mlxn_status write_hf_config_and_tokenizer(conv_ctx *c, const char *out_dir, json_t *quant) {
    json_t *cfg = json_deep_copy(mlxn_model_files_config(c->mf));
    if (!cfg) return mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "convert: out of memory");
    json_object_del(cfg, "_name_or_path");
    json_object_del(cfg, "quantization");
    json_object_del(cfg, "quantization_config");
    if (quant) {
        json_object_set(cfg, "quantization", quant);
        json_object_set(cfg, "quantization_config", quant);
    }
    mlxn_status st = mlxn_convert_write_json(cfg, out_dir, "config.json", JSON_INDENT(4) | JSON_SORT_KEYS);
    json_decref(cfg);
    if (st) return st;
    static const char *files[] = {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                                  "generation_config.json", "vocab.json", "merges.txt", "tokenizer.model",
                                  "added_tokens.json", "chat_template.jinja", "chat_template.json"};
    const char *src_dir = mlxn_model_files_dir(c->mf);
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char *s = mlxn_path_join(src_dir, files[i]), *d = mlxn_path_join(out_dir, files[i]);
        if (!s || !d) st = mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "convert: out of memory");
        else if (mlxn_path_is_file(s) && strcmp(s, d)) st = copy_file(s, d);
        free(s);
        free(d);
        if (st) return st;
    }
    return MLXN_OK;
}

/* ---------------------------------------------------------------- driver */

static void progress(conv_ctx *c, mlxn_convert_stage stage, int64_t idx, uint64_t done, uint64_t total, int shard,
                     const char *name) {
    if (!c->opts->progress) return;
    mlxn_convert_progress p = {stage, idx, c->pl.n, done, total, shard, c->n_shards, name, NULL};
    c->opts->progress(&p, c->opts->progress_user);
}

static mlxn_status write_shards(conv_ctx *c, const char *out_dir, json_t *weight_map, uint64_t *total_out) {
    uint64_t total_in = 0, done = 0;
    for (int64_t i = 0; i < c->pl.n; i++) total_in += c->pl.items[i].bytes_in;
    progress(c, MLXN_CONVERT_STAGE_PLAN, 0, 0, total_in, 0, NULL);
    outs o = {0};
    mlxn_status st = MLXN_OK;
    int64_t done_items = 0;
    for (int s = 0; s < c->n_shards && !st; s++) {
        for (int64_t i = 0; i < c->pl.n && !st; i++) {
            plan_item *it = &c->pl.items[i];
            if (it->shard != s) continue;
            mlxn_convert_tensor_report tr;
            memset(&tr, 0, sizeof tr);
            int first = o.n;
            st = c->g ? exec_gguf_item(c, &o, it, &tr) : exec_hf_item(c, &o, it, &tr);
            if (st) break;
            if (c->rep) {
                mlxn_convert_tensor_report *r = &c->rep->tensors[i];
                *r = tr;
                snprintf(r->name, sizeof r->name, "%s", it->name);
                if (c->g) {
                    mlxn_gguf_tensor_info ti;
                    if (mlxn_gguf_tensor(c->g, it->src, &ti) == MLXN_OK)
                        snprintf(r->src_type, sizeof r->src_type, "%s", mlxn_gguf_type_name(ti.type));
                } else {
                    mlxn_model_tensor_info mi;
                    if (mlxn_model_files_find(c->mf, it->src_name, &mi) == MLXN_OK)
                        snprintf(r->src_type, sizeof r->src_type, "%s", mi.src_dtype);
                }
                r->kind = it->kind;
                r->bits = it->bits;
                r->group_size = it->group;
                r->dtype = it->dtype;
                r->bytes_in = it->bytes_in;
                uint64_t bo = 0;
                for (int k = first; k < o.n; k++)
                    bo += (uint64_t)mlxn_numel(o.t[k].ndim, o.t[k].shape) * mlxn_st_dtype_size(o.t[k].dt);
                r->bytes_out = bo;
            }
            done += it->bytes_in;
            progress(c, MLXN_CONVERT_STAGE_TENSOR, ++done_items, done, total_in, s, it->name);
        }
        if (st) break;
        char fname[64];
        if (c->n_shards == 1) snprintf(fname, sizeof fname, "model.safetensors");
        else snprintf(fname, sizeof fname, "model-%05d-of-%05d.safetensors", s + 1, c->n_shards);
        mlxn_st_writer *w = NULL;
        st = mlxn_st_writer_create(&w);
        for (int k = 0; k < o.n && !st; k++) {
            st = mlxn_st_writer_add(w, o.t[k].name, o.t[k].dt, o.t[k].ndim, o.t[k].shape, o.t[k].data);
            *total_out += (uint64_t)mlxn_numel(o.t[k].ndim, o.t[k].shape) * mlxn_st_dtype_size(o.t[k].dt);
            json_object_set_new(weight_map, o.t[k].name, json_string(fname));
        }
        if (!st) st = mlxn_st_writer_set_metadata(w, "format", "mlx");
        char *path = mlxn_path_join(out_dir, fname);
        if (!st && !path) st = mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "convert: out of memory");
        if (!st) st = mlxn_st_writer_write(w, path);
        free(path);
        mlxn_st_writer_free(w);
        outs_clear(&o);
        if (!st) progress(c, MLXN_CONVERT_STAGE_WRITE, done_items, done, total_in, s, NULL);
    }
    outs_clear(&o);
    free(o.t);
    return st;
}

mlxn_status mlxn_convert(const char *in, const char *out_dir, const mlxn_convert_opts *opts,
                         mlxn_convert_report *report) {
    if (!in || !out_dir) return mlxn_set_error(MLXN_ERR_INVALID_ARG, "convert: NULL input or output path");
    mlxn_convert_opts defaults;
    mlxn_convert_opts_init(&defaults);
    if (!opts) opts = &defaults;
    if (opts->bits != 0 && !valid_bits(opts->bits))
        return mlxn_set_error(MLXN_ERR_INVALID_ARG, "convert: bits %d not in {2,3,4,5,6,8}", opts->bits);
    if (opts->group_size != 0 && !valid_group(opts->group_size))
        return mlxn_set_error(MLXN_ERR_INVALID_ARG, "convert: group size %d not in {32,64,128}", opts->group_size);
    if (opts->dtype >= 0 && !is_float_dtype((mlxn_dtype)opts->dtype))
        return mlxn_set_error(MLXN_ERR_INVALID_ARG, "convert: dtype %d is not f32, f16 or bf16", opts->dtype);
    for (int k = 0; k < opts->n_overrides; k++) {
        const mlxn_convert_override *ov = &opts->overrides[k];
        if (!ov->pattern || !*ov->pattern || (ov->bits != 0 && !valid_bits(ov->bits)) ||
            (ov->group_size != 0 && !valid_group(ov->group_size)))
            return mlxn_set_error(MLXN_ERR_INVALID_ARG, "convert: override %d ('%s' = %d bits, group %d) is invalid", k,
                                  ov->pattern ? ov->pattern : "(null)", ov->bits, ov->group_size);
    }
    if (report) memset(report, 0, sizeof *report);
    {
        char *ri = realpath(in, NULL), *ro = realpath(out_dir, NULL);
        int same = ri && ro && !strcmp(ri, ro);
        free(ri);
        free(ro);
        if (same)
            return mlxn_set_error(MLXN_ERR_INVALID_ARG, "convert: output directory '%s' is the input itself", out_dir);
    }
    if (mlxn_path_is_dir(out_dir) && !dir_is_empty(out_dir) && !opts->force)
        return mlxn_set_error(MLXN_ERR_INVALID_ARG, "convert: output directory '%s' exists and is not empty (--force overwrites)",
                              out_dir);

    conv_ctx c;
    memset(&c, 0, sizeof c);
    c.opts = opts;
    c.rep = report;
    mlxn_status st;
    int n_head = 0, n_kv = 0, is_gguf = 0;
    if (mlxn_path_is_dir(in)) {
        st = mlxn_model_files_open(in, &c.mf);
        if (!st && mlxn_model_files_source(c.mf) != MLXN_SRC_MLX_DIR)
            st = mlxn_set_error(MLXN_ERR_FORMAT, "convert: '%s' is not a safetensors model directory", in);
        if (!st) {
            mlxn_convert_opts o2 = *opts;
            if (o2.bits == 0) o2.bits = 4;
            if (o2.group_size == 0) o2.group_size = 64;
            c.opts = &o2;
            st = plan_hf(&c);
            c.opts = opts;
        }
    } else {
        is_gguf = 1;
        st = mlxn_gguf_open(in, &c.g);
        if (!st) st = plan_gguf(&c, &n_head, &n_kv);
    }
    if (st) goto done;
    if (c.pl.n == 0) { st = mlxn_set_error(MLXN_ERR_FORMAT, "convert: '%s' holds no tensors to convert", in); goto done; }

    /* shards */
    uint64_t limit = opts->shard_bytes ? opts->shard_bytes : DEFAULT_SHARD_BYTES, cur = 0;
    int shard = -1;
    for (int64_t i = 0; i < c.pl.n; i++) {
        if (shard < 0 || cur + c.pl.items[i].bytes_out > limit) { shard++; cur = 0; }
        c.pl.items[i].shard = shard;
        cur += c.pl.items[i].bytes_out;
    }
    c.n_shards = shard + 1;
    if (report) {
        report->tensors = calloc((size_t)c.pl.n, sizeof *report->tensors);
        if (!report->tensors) { st = mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "convert: out of memory"); goto done; }
        report->n_tensors = c.pl.n;
        report->n_shards = c.n_shards;
        for (int64_t i = 0; i < c.pl.n; i++) report->rope_unpermuted += c.pl.items[i].rope_heads > 0;
    }
    st = make_dirs(out_dir);
    if (st) goto done;
    if (opts->force) remove_old_weights(out_dir);

    json_t *weight_map = json_object();
    uint64_t total_out = 0;
    st = weight_map ? write_shards(&c, out_dir, weight_map, &total_out)
                    : mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "convert: out of memory");
    if (!st) {
        json_t *idx = json_pack("{s:{s:I}, s:o}", "metadata", "total_size", (json_int_t)total_out, "weight_map", weight_map);
        weight_map = NULL;
        st = idx ? mlxn_convert_write_json(idx, out_dir, "model.safetensors.index.json", JSON_INDENT(4) | JSON_SORT_KEYS)
                 : mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "convert: out of memory");
        json_decref(idx);
    }
    json_decref(weight_map);
    if (st) goto done;

    json_t *quant = build_quant_config(&c.pl, is_gguf, opts->bits ? opts->bits : 4, opts->group_size ? opts->group_size : 64);
    if (is_gguf) {
        st = write_gguf_config(&c, out_dir, n_head, n_kv, quant);
        uint32_t ctx = 0;
        const char *arch = NULL;
        if (!st && mlxn_gguf_get_str(c.g, "general.architecture", &arch, NULL) == MLXN_OK &&
            gguf_key_u32(c.g, arch, "context_length", &ctx, 0) != MLXN_OK)
            ctx = 0;
        if (!st) st = mlxn_convert_write_gguf_tokenizer(c.g, out_dir, ctx, c.rep ? &c.rep->tokenizer_written : NULL);
    } else {
        st = write_hf_config_and_tokenizer(&c, out_dir, quant);
    }
    json_decref(quant);
    if (st) goto done;

    if (report) {
        report->worst_nmse = 0;
        for (int64_t i = 0; i < report->n_tensors; i++) {
            mlxn_convert_tensor_report *r = &report->tensors[i];
            report->bytes_in += r->bytes_in;
            report->bytes_out += r->bytes_out;
            if (r->kind == MLXN_CONVERT_FLOAT) report->n_float++;
            else if (r->kind == MLXN_CONVERT_LOSSLESS) report->n_lossless++;
            else {
                report->n_quantized++;
                if (r->nmse >= report->worst_nmse) {
                    report->worst_nmse = r->nmse;
                    snprintf(report->worst_name, sizeof report->worst_name, "%s", r->name);
                }
            }
        }
    }
    progress(&c, MLXN_CONVERT_STAGE_DONE, c.pl.n, 0, 0, c.n_shards - 1, NULL);
done:
    if (st && report) mlxn_convert_report_free(report);
    free(c.pl.items);
    mlxn_gguf_close(c.g);
    mlxn_model_files_close(c.mf);
    return st;
}
