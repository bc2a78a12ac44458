/* model_files.c — the unified model-file handle: a GGUF file or an MLX model
 * directory (config.json + safetensors shards + tokenizer files). Opening a
 * directory loads config.json, resolves the shards (index.json weight_map,
 * model.safetensors, or every *.safetensors), builds a sorted name map of
 * all physical tensors across shards, and groups MLX quantized modules
 * (P.weight + P.scales [+ P.biases]) into one logical tensor each, checking
 * their shapes against bits / group_size from the quantization config.
 * Loading wraps mmap'd data zero-copy on host devices when aligned (the
 * buffer's release callback drops a reference on the shard/GGUF mapping) or
 * copies/uploads it, dropping uploaded pages from the resident set so that
 * peak host memory stays far below the model size. */
#include "io/model_files.h"
#include "core/internal.h"
#include "io/json_util.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A physical tensor in one shard. */
typedef struct raw_entry {
    const char *name; /* owned by the shard */
    int shard;
    int64_t idx;
} raw_entry;

/* A logical tensor. */
typedef struct mf_tensor {
    char *name;
    int shard;            /* MLX: shard of the main part; GGUF: -1 */
    int64_t idx;          /* index in the shard / GGUF */
    int s_shard, b_shard; /* MLX quantized: scales / biases (-1 if none) */
    int64_t s_idx, b_idx;
    mlxn_model_tensor_info info; /* name/mode/src_dtype pointers filled on query */
    char *mode;
} mf_tensor;

struct mlxn_model_files {
    mlxn_model_source src;
    char *path, *dir;
    mlxn_gguf *gguf;
    json_t *config;
    const json_t *qcfg; /* borrowed from config */
    mlxn_st **shards;
    char **shard_names;
    int n_shards;
    char *tok_json, *tok_cfg, *gen_cfg;
    char arch[128];
    raw_entry *raw;
    int64_t n_raw;
    mf_tensor *t;
    int64_t n_t;
};

void mlxn_model_files_close(mlxn_model_files *mf) {
    if (!mf) return;
    for (int64_t i = 0; i < mf->n_t; i++) {
        free(mf->t[i].name);
        free(mf->t[i].mode);
    }
    free(mf->t);
    free(mf->raw);
    for (int i = 0; i < mf->n_shards; i++) {
        mlxn_st_release(mf->shards[i]);
        free(mf->shard_names[i]);
    }
    free(mf->shards);
    free(mf->shard_names);
    mlxn_gguf_release(mf->gguf);
    json_decref(mf->config);
    free(mf->tok_json);
    free(mf->tok_cfg);
    free(mf->gen_cfg);
    free(mf->path);
    free(mf->dir);
    free(mf);
}

static mlxn_status oom(const char *path) {
    return mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "model '%s': out of memory", path);
}

static int ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && memcmp(s + a - b, suf, b) == 0;
}

/* Join "P" + suffix into a malloc'd string (NULL on OOM). */
static char *cat2(const char *p, size_t plen, const char *suffix) {
    size_t sl = strlen(suffix);
    char *s = malloc(plen + sl + 1);
    if (!s) return NULL;
    memcpy(s, p, plen);
    memcpy(s + plen, suffix, sl + 1);
    return s;
}

/* ---------------------------------------------------------------- GGUF source */

static mlxn_status open_gguf(mlxn_model_files *mf) {
    MLXN_TRY(mlxn_gguf_open(mf->path, &mf->gguf));
    const char *arch = NULL;
    if (mlxn_gguf_get_str(mf->gguf, "general.architecture", &arch, NULL) == MLXN_OK)
        snprintf(mf->arch, sizeof mf->arch, "%s", arch);
    mlxn_clear_error();
    int64_t n = mlxn_gguf_n_tensors(mf->gguf);
    mf->t = calloc((size_t)(n ? n : 1), sizeof *mf->t);
    if (!mf->t) return oom(mf->path);
    for (int64_t i = 0; i < n; i++) {
        mlxn_gguf_tensor_info ti;
        MLXN_TRY(mlxn_gguf_tensor(mf->gguf, i, &ti));
        mf_tensor *t = &mf->t[i];
        if (!(t->name = strdup(ti.name))) return oom(mf->path);
        mf->n_t++;
        t->shard = -1;
        t->idx = i;
        t->s_shard = t->b_shard = -1;
        mlxn_model_tensor_info *o = &t->info;
        o->gguf_type = ti.type;
        o->ndim = ti.n_dims;
        memcpy(o->shape, ti.shape, sizeof o->shape);
        o->nbytes = ti.nbytes;
        o->format = MLXN_WEIGHT_DENSE;
        switch (ti.type) {
        case MLXN_GGUF_F32: o->dtype = MLXN_F32; break;
        case MLXN_GGUF_F16: o->dtype = MLXN_F16; break;
        case MLXN_GGUF_BF16: o->dtype = MLXN_BF16; break;
        case MLXN_GGUF_I8: o->dtype = MLXN_I8; break;
        case MLXN_GGUF_I16: o->dtype = MLXN_I16; break;
        case MLXN_GGUF_I32: o->dtype = MLXN_I32; break;
        case MLXN_GGUF_I64: o->dtype = MLXN_I64; break;
        case MLXN_GGUF_F64: o->dtype = (mlxn_dtype)-1; break;
        default:
            o->format = MLXN_WEIGHT_GGUF;
            o->quantized = 1;
            o->dtype = MLXN_U8;
        }
    }
    return MLXN_OK;
}

/* ---------------------------------------------------------------- MLX directory */

static int cmp_raw(const void *a, const void *b) {
    return strcmp(((const raw_entry *)a)->name, ((const raw_entry *)b)->name);
}
static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static const raw_entry *raw_find(const mlxn_model_files *mf, const char *name) {
    raw_entry key = {name, 0, 0};
    return mf->n_raw ? bsearch(&key, mf->raw, (size_t)mf->n_raw, sizeof key, cmp_raw) : NULL;
}

static mlxn_status add_shard_name(mlxn_model_files *mf, const char *name, int *cap) {
    for (int i = 0; i < mf->n_shards; i++)
        if (strcmp(mf->shard_names[i], name) == 0) return MLXN_OK;
    if (mf->n_shards == *cap) {
        int nc = *cap ? *cap * 2 : 8;
        char **n = realloc(mf->shard_names, (size_t)nc * sizeof *n);
        if (!n) return oom(mf->path);
        mf->shard_names = n;
        *cap = nc;
    }
    if (!(mf->shard_names[mf->n_shards] = strdup(name))) return oom(mf->path);
    mf->n_shards++;
    return MLXN_OK;
}

static int bad_shard_name(const char *s) { return !*s || s[0] == '/' || strstr(s, "..") != NULL; }

static mlxn_status find_shards(mlxn_model_files *mf, json_t **index_out) {
    int cap = 0;
    *index_out = NULL;
    char *ip = mlxn_path_join(mf->dir, "model.safetensors.index.json");
    if (!ip) return oom(mf->path);
    if (mlxn_path_is_file(ip)) {
        json_t *idx = NULL;
        mlxn_status st = mlxn_json_load_file("index", ip, &idx);
        if (st != MLXN_OK) {
            free(ip);
            return st;
        }
        json_t *wm = json_object_get(idx, "weight_map");
        if (!json_is_object(wm)) {
            json_decref(idx);
            st = mlxn_set_error(MLXN_ERR_FORMAT, "index '%s': missing \"weight_map\" object", ip);
            free(ip);
            return st;
        }
        const char *k;
        json_t *v;
        json_object_foreach(wm, k, v) {
            if (!json_is_string(v) || bad_shard_name(json_string_value(v))) {
                st = mlxn_set_error(MLXN_ERR_FORMAT, "index '%s': weight_map entry '%s' has an invalid shard file name", ip, k);
                json_decref(idx);
                free(ip);
                return st;
            }
            if ((st = add_shard_name(mf, json_string_value(v), &cap)) != MLXN_OK) {
                json_decref(idx);
                free(ip);
                return st;
            }
        }
        free(ip);
        *index_out = idx;
    } else {
        free(ip);
        char *single = mlxn_path_join(mf->dir, "model.safetensors");
        if (!single) return oom(mf->path);
        int have = mlxn_path_is_file(single);
        free(single);
        if (have) {
            MLXN_TRY(add_shard_name(mf, "model.safetensors", &cap));
        } else {
            DIR *d = opendir(mf->dir);
            if (!d) return mlxn_set_error(MLXN_ERR_IO, "model dir '%s': cannot list directory", mf->dir);
            struct dirent *de;
            mlxn_status st = MLXN_OK;
            while (st == MLXN_OK && (de = readdir(d)) != NULL)
                if (ends_with(de->d_name, ".safetensors") && de->d_name[0] != '.')
                    st = add_shard_name(mf, de->d_name, &cap);
            closedir(d);
            MLXN_TRY(st);
        }
    }
    if (mf->n_shards == 0)
        return mlxn_set_error(MLXN_ERR_NOT_FOUND,
                              "model dir '%s': no weights (no model.safetensors.index.json, model.safetensors or "
                              "*.safetensors)",
                              mf->dir);
    qsort(mf->shard_names, (size_t)mf->n_shards, sizeof(char *), cmp_str);
    return MLXN_OK;
}

static mlxn_status index_raw(mlxn_model_files *mf, json_t *index);

static mlxn_status open_shards(mlxn_model_files *mf, json_t *index) {
    mf->shards = calloc((size_t)mf->n_shards, sizeof *mf->shards);
    if (!mf->shards) return oom(mf->path);
    for (int i = 0; i < mf->n_shards; i++) {
        char *p = mlxn_path_join(mf->dir, mf->shard_names[i]);
        if (!p) return oom(mf->path);
        mlxn_status st = mlxn_st_open(p, &mf->shards[i]);
        if (st == MLXN_ERR_NOT_FOUND) {
            st = mlxn_set_error(MLXN_ERR_NOT_FOUND, "model dir '%s': shard '%s' is missing (%s)", mf->dir,
                                mf->shard_names[i], index ? "listed in model.safetensors.index.json" : "expected");
        }
        free(p);
        MLXN_TRY(st);
    }
    return index_raw(mf, index);
}

/* Build the sorted name map over all opened shards; check the index. */
static mlxn_status index_raw(mlxn_model_files *mf, json_t *index) {
    int64_t total = 0;
    for (int i = 0; i < mf->n_shards; i++) total += mlxn_st_n_tensors(mf->shards[i]);
    mf->raw = calloc((size_t)(total ? total : 1), sizeof *mf->raw);
    if (!mf->raw) return oom(mf->path);
    for (int i = 0; i < mf->n_shards; i++)
        for (int64_t j = 0; j < mlxn_st_n_tensors(mf->shards[i]); j++) {
            mlxn_st_tensor_info ti;
            MLXN_TRY(mlxn_st_tensor(mf->shards[i], j, &ti));
            mf->raw[mf->n_raw++] = (raw_entry){ti.name, i, j};
        }
    qsort(mf->raw, (size_t)mf->n_raw, sizeof *mf->raw, cmp_raw);
    for (int64_t i = 1; i < mf->n_raw; i++)
        if (strcmp(mf->raw[i].name, mf->raw[i - 1].name) == 0)
            return mlxn_set_error(MLXN_ERR_FORMAT, "model dir '%s': tensor '%s' appears in both '%s' and '%s'", mf->dir,
                                  mf->raw[i].name, mf->shard_names[mf->raw[i - 1].shard], mf->shard_names[mf->raw[i].shard]);
    if (index) {
        const char *k;
        json_t *v;
        json_t *wm = json_object_get(index, "weight_map");
        json_object_foreach(wm, k, v) {
            const raw_entry *r = raw_find(mf, k);
            if (!r || strcmp(mf->shard_names[r->shard], json_string_value(v)) != 0)
                return mlxn_set_error(MLXN_ERR_FORMAT,
                                      "model dir '%s': model.safetensors.index.json maps tensor '%s' to '%s', which does "
                                      "not contain it",
                                      mf->dir, k, json_string_value(v));
        }
    }
    return MLXN_OK;
}

int mlxn_model_files_quant_for(const mlxn_model_files *mf, const char *module_path, int *bits, int *group_size,
                               const char **mode) {
    if (!mf || !mf->qcfg || !module_path) return 0;
    const json_t *q = mf->qcfg;
    int64_t b = 0, g = 0;
    int has_b = mlxn_json_get_int(q, "bits", &b), has_g = mlxn_json_get_int(q, "group_size", &g);
    const char *m = mlxn_json_get_str(q, "mode");
    json_t *ov = json_object_get(q, module_path);
    if (json_is_false(ov)) return 0;
    if (json_is_object(ov)) {
        int64_t v;
        if (mlxn_json_get_int(ov, "bits", &v)) { b = v; has_b = 1; }
        if (mlxn_json_get_int(ov, "group_size", &v)) { g = v; has_g = 1; }
        if (mlxn_json_get_str(ov, "mode")) m = mlxn_json_get_str(ov, "mode");
    }
    if (!has_b || !has_g || b <= 0 || b > 32 || g <= 0 || g > 1 << 20) return 0;
    if (bits) *bits = (int)b;
    if (group_size) *group_size = (int)g;
    if (mode) *mode = m ? m : "affine";
    return 1;
}

/* Fill `o` from a dense raw tensor. */
static void dense_info(const mlxn_st_tensor_info *ti, mlxn_model_tensor_info *o) {
    o->format = MLXN_WEIGHT_DENSE;
    o->dtype = (mlxn_dtype)mlxn_st_dtype_to_mlxn(ti->dtype);
    o->gguf_type = (mlxn_gguf_type)-1;
    o->ndim = ti->ndim;
    memcpy(o->shape, ti->shape, sizeof o->shape);
    o->nbytes = ti->nbytes;
}

static mlxn_status raw_info(const mlxn_model_files *mf, const raw_entry *r, mlxn_st_tensor_info *ti) {
    return mlxn_st_tensor(mf->shards[r->shard], r->idx, ti);
}

/* Group a quantized module P (P.weight = w, P.scales = s). */
static mlxn_status group_quant(mlxn_model_files *mf, const char *P, const raw_entry *w, const raw_entry *s,
                               mf_tensor *t) {
    const char *D = mf->dir;
    int bits = 0, gs = 0;
    const char *mode = NULL;
    if (!mlxn_model_files_quant_for(mf, P, &bits, &gs, &mode))
        return mlxn_set_error(MLXN_ERR_FORMAT,
                              "model dir '%s': '%s.scales' exists but config.json has no quantization for '%s'", D, P, P);
    mlxn_st_tensor_info wi, si, bi;
    MLXN_TRY(raw_info(mf, w, &wi));
    MLXN_TRY(raw_info(mf, s, &si));
    char *bname = cat2(P, strlen(P), ".biases");
    if (!bname) return oom(mf->path);
    const raw_entry *b = raw_find(mf, bname);
    free(bname);
    int affine = strcmp(mode, "affine") == 0;
    if (affine && !b)
        return mlxn_set_error(MLXN_ERR_FORMAT, "model dir '%s': quantized module '%s' (affine) has no '%s.biases'", D, P, P);
    if (wi.dtype != MLXN_ST_U32)
        return mlxn_set_error(MLXN_ERR_FORMAT, "model dir '%s': quantized '%s.weight' has dtype %s, expected U32", D, P,
                              wi.dtype_name);
    if (wi.ndim < 1 || si.ndim != wi.ndim)
        return mlxn_set_error(MLXN_ERR_FORMAT, "model dir '%s': '%s.weight' has %d dims but '%s.scales' has %d", D, P,
                              wi.ndim, P, si.ndim);
    for (int d = 0; d + 1 < wi.ndim; d++)
        if (wi.shape[d] != si.shape[d])
            return mlxn_set_error(MLXN_ERR_FORMAT, "model dir '%s': '%s.weight' and '%s.scales' differ in dim %d (%lld vs %lld)",
                                  D, P, P, d, (long long)wi.shape[d], (long long)si.shape[d]);
    int64_t kp = wi.shape[wi.ndim - 1], ng = si.shape[si.ndim - 1];
    int64_t kbits;
    if (__builtin_mul_overflow(kp, (int64_t)32, &kbits) || kbits % bits)
        return mlxn_set_error(MLXN_ERR_FORMAT, "model dir '%s': '%s.weight' row of %lld u32 words is not a whole number of %d-bit values",
                              D, P, (long long)kp, bits);
    int64_t K = kbits / bits, gK;
    if (__builtin_mul_overflow(ng, (int64_t)gs, &gK) || gK != K)
        return mlxn_set_error(MLXN_ERR_FORMAT,
                              "model dir '%s': '%s': %lld unpacked columns (%d bits) but scales hold %lld groups of %d",
                              D, P, (long long)K, bits, (long long)ng, gs);
    size_t nbytes = wi.nbytes + si.nbytes;
    if (b) {
        MLXN_TRY(raw_info(mf, b, &bi));
        if (bi.dtype != si.dtype || bi.ndim != si.ndim || memcmp(bi.shape, si.shape, sizeof bi.shape) != 0)
            return mlxn_set_error(MLXN_ERR_FORMAT, "model dir '%s': '%s.biases' (%s) does not match '%s.scales' (%s) in dtype/shape",
                                  D, P, bi.dtype_name, P, si.dtype_name);
        nbytes += bi.nbytes;
    }
    if (affine && si.dtype != MLXN_ST_F32 && si.dtype != MLXN_ST_F16 && si.dtype != MLXN_ST_BF16)
        return mlxn_set_error(MLXN_ERR_FORMAT, "model dir '%s': '%s.scales' has dtype %s, expected F32, F16 or BF16", D, P,
                              si.dtype_name);
    t->shard = w->shard;
    t->idx = w->idx;
    t->s_shard = s->shard;
    t->s_idx = s->idx;
    t->b_shard = b ? b->shard : -1;
    t->b_idx = b ? b->idx : -1;
    if (!(t->mode = strdup(mode))) return oom(mf->path);
    mlxn_model_tensor_info *o = &t->info;
    o->quantized = 1;
    o->format = MLXN_WEIGHT_MLX_AFFINE;
    o->dtype = (mlxn_dtype)mlxn_st_dtype_to_mlxn(si.dtype);
    o->gguf_type = (mlxn_gguf_type)-1;
    o->bits = bits;
    o->group_size = gs;
    o->ndim = wi.ndim;
    memcpy(o->shape, wi.shape, sizeof o->shape);
    o->shape[wi.ndim - 1] = K;
    o->nbytes = nbytes;
    return MLXN_OK;
}

/* Classify one physical tensor: skip it (part of a triple), or append a
 * logical entry (dense or a quantized triple). */
static mlxn_status logical_one(mlxn_model_files *mf, const raw_entry *r) {
    const char *D = mf->dir, *name = r->name;
    size_t len = strlen(name);
    int is_w = ends_with(name, ".weight"), is_s = ends_with(name, ".scales"), is_b = ends_with(name, ".biases");
    char *P = NULL, *sn = NULL, *wn = NULL;
    const raw_entry *s = NULL, *w = NULL;
    mlxn_status st = MLXN_OK;
    if (is_w || is_s || is_b) {
        P = cat2(name, len - 7, "");
        sn = cat2(name, len - 7, ".scales");
        wn = cat2(name, len - 7, ".weight");
        if (!P || !sn || !wn) {
            st = oom(mf->path);
            goto out;
        }
        s = raw_find(mf, sn);
        w = raw_find(mf, wn);
    }
    if (is_s || is_b) {
        if (is_s && !w) {
            st = mlxn_set_error(MLXN_ERR_FORMAT, "model dir '%s': '%s' has no matching '%s'", D, name, wn);
            goto out;
        }
        if (s && w) goto out; /* part of a triple, listed under P.weight */
        if (is_b && w) {
            mlxn_st_tensor_info wi;
            if ((st = raw_info(mf, w, &wi)) != MLXN_OK) goto out;
            if (wi.dtype == MLXN_ST_U32) {
                st = mlxn_set_error(MLXN_ERR_FORMAT, "model dir '%s': '%s' exists but '%s' is missing", D, name, sn);
                goto out;
            }
        }
    }
    mf_tensor *t = &mf->t[mf->n_t];
    t->s_shard = t->b_shard = -1;
    t->s_idx = t->b_idx = -1;
    if (!(t->name = strdup(name))) {
        st = oom(mf->path);
        goto out;
    }
    mf->n_t++;
    if (is_w && s) {
        st = group_quant(mf, P, r, s, t);
        goto out;
    }
    if (is_w) {
        mlxn_st_tensor_info wi;
        if ((st = raw_info(mf, r, &wi)) != MLXN_OK) goto out;
        if (wi.dtype == MLXN_ST_U32 && mlxn_model_files_quant_for(mf, P, NULL, NULL, NULL)) {
            st = mlxn_set_error(MLXN_ERR_FORMAT,
                                "model dir '%s': '%s' is U32 (packed) and config.json quantizes '%s', but '%s' is missing",
                                D, name, P, sn);
            goto out;
        }
        if (mf->qcfg && json_is_object(json_object_get(mf->qcfg, P))) {
            st = mlxn_set_error(MLXN_ERR_FORMAT,
                                "model dir '%s': config.json has a quantization entry for '%s' but '%s' is missing", D, P,
                                sn);
            goto out;
        }
    }
    t->shard = r->shard;
    t->idx = r->idx;
    mlxn_st_tensor_info ti;
    if ((st = raw_info(mf, r, &ti)) == MLXN_OK) dense_info(&ti, &t->info);
out:
    free(P);
    free(sn);
    free(wn);
    return st;
}

static mlxn_status build_logical(mlxn_model_files *mf) {
    mf->t = calloc((size_t)(mf->n_raw ? mf->n_raw : 1), sizeof *mf->t);
    if (!mf->t) return oom(mf->path);
    for (int64_t i = 0; i < mf->n_raw; i++) MLXN_TRY(logical_one(mf, &mf->raw[i]));
    return MLXN_OK;
}

static char *maybe_file(const char *dir, const char *name) {
    char *p = mlxn_path_join(dir, name);
    if (p && !mlxn_path_is_file(p)) {
        free(p);
        p = NULL;
    }
    return p;
}

/* Pick the quantization object and the architecture out of config.json. */
static void config_keys(mlxn_model_files *mf) {
    const json_t *q = json_object_get(mf->config, "quantization");
    if (!json_is_object(q)) q = json_object_get(mf->config, "quantization_config");
    if (json_is_object(q)) mf->qcfg = q;
    const char *mt = mlxn_json_get_str(mf->config, "model_type");
    if (!mt) {
        json_t *a = json_object_get(mf->config, "architectures");
        if (json_is_array(a) && json_is_string(json_array_get(a, 0))) mt = json_string_value(json_array_get(a, 0));
    }
    if (mt) snprintf(mf->arch, sizeof mf->arch, "%s", mt);
}

static mlxn_status open_mlx_dir(mlxn_model_files *mf) {
    if (!(mf->dir = strdup(mf->path))) return oom(mf->path);
    char *cp = mlxn_path_join(mf->dir, "config.json");
    if (!cp) return oom(mf->path);
    if (!mlxn_path_is_file(cp)) {
        free(cp);
        return mlxn_set_error(MLXN_ERR_NOT_FOUND, "model dir '%s': config.json not found (not an MLX model directory)",
                              mf->dir);
    }
    mlxn_status st = mlxn_json_load_file("config", cp, &mf->config);
    if (st == MLXN_OK && !json_is_object(mf->config))
        st = mlxn_set_error(MLXN_ERR_FORMAT, "config '%s': root is not a JSON object", cp);
    free(cp);
    MLXN_TRY(st);
    config_keys(mf);
    mf->tok_json = maybe_file(mf->dir, "tokenizer.json");
    mf->tok_cfg = maybe_file(mf->dir, "tokenizer_config.json");
    mf->gen_cfg = maybe_file(mf->dir, "generation_config.json");
    json_t *index = NULL;
    st = find_shards(mf, &index);
    if (st == MLXN_OK) st = open_shards(mf, index);
    json_decref(index);
    MLXN_TRY(st);
    return build_logical(mf);
}

mlxn_status mlxn_model_files_open(const char *path, mlxn_model_files **out) {
    if (!path || !out) return mlxn_set_error(MLXN_ERR_INVALID_ARG, "model_files_open: path and out must not be NULL");
    *out = NULL;
    mlxn_model_files *mf = calloc(1, sizeof *mf);
    if (!mf || !(mf->path = strdup(path))) {
        free(mf);
        return mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "model '%s': out of memory", path);
    }
    mlxn_status st;
    if (mlxn_path_is_dir(path)) {
        mf->src = MLXN_SRC_MLX_DIR;
        st = open_mlx_dir(mf);
    } else if (mlxn_path_is_file(path)) {
        mf->src = MLXN_SRC_GGUF;
        st = open_gguf(mf);
    } else {
        st = mlxn_set_error(MLXN_ERR_NOT_FOUND, "model '%s': no such file or directory", path);
    }
    if (st != MLXN_OK) {
        mlxn_model_files_close(mf);
        return st;
    }
    *out = mf;
    return MLXN_OK;
}

mlxn_status mlxn_model_files_open_memory(const char *config_json, size_t config_len, const void *const *shards,
                                         const size_t *shard_sizes, int n_shards, mlxn_model_files **out) {
    if (!config_json || !out || n_shards < 0 || (n_shards && (!shards || !shard_sizes)))
        return mlxn_set_error(MLXN_ERR_INVALID_ARG, "model_files_open_memory: invalid arguments");
    *out = NULL;
    mlxn_model_files *mf = calloc(1, sizeof *mf);
    if (!mf || !(mf->path = strdup("<memory>")) || !(mf->dir = strdup("<memory>"))) {
        mlxn_model_files_close(mf);
        return mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "model '<memory>': out of memory");
    }
    mf->src = MLXN_SRC_MLX_DIR;
    mlxn_status st = mlxn_json_load_text("config", "<memory>/config.json", config_json, config_len, 0, &mf->config);
    if (st == MLXN_OK && !json_is_object(mf->config))
        st = mlxn_set_error(MLXN_ERR_FORMAT, "config '<memory>/config.json': root is not a JSON object");
    if (st == MLXN_OK) {
        config_keys(mf);
        mf->shards = calloc((size_t)(n_shards ? n_shards : 1), sizeof *mf->shards);
        mf->shard_names = calloc((size_t)(n_shards ? n_shards : 1), sizeof *mf->shard_names);
        if (!mf->shards || !mf->shard_names) st = oom(mf->path);
    }
    for (int i = 0; st == MLXN_OK && i < n_shards; i++) {
        char name[64];
        snprintf(name, sizeof name, "shard-%d.safetensors", i);
        if (!(mf->shard_names[i] = strdup(name))) {
            st = oom(mf->path);
            break;
        }
        mf->n_shards++;
        char label[96];
        snprintf(label, sizeof label, "<memory>/%s", name);
        st = mlxn_st_open_memory(shards[i], shard_sizes[i], label, &mf->shards[i]);
    }
    if (st == MLXN_OK) st = index_raw(mf, NULL);
    if (st == MLXN_OK) st = build_logical(mf);
    if (st != MLXN_OK) {
        mlxn_model_files_close(mf);
        return st;
    }
    *out = mf;
    return MLXN_OK;
}

/* ---------------------------------------------------------------- queries */

mlxn_model_source mlxn_model_files_source(const mlxn_model_files *mf) { return mf->src; }
const char *mlxn_model_files_path(const mlxn_model_files *mf) { return mf ? mf->path : NULL; }
const mlxn_gguf *mlxn_model_files_gguf(const mlxn_model_files *mf) { return mf ? mf->gguf : NULL; }
const json_t *mlxn_model_files_config(const mlxn_model_files *mf) { return mf ? mf->config : NULL; }
const char *mlxn_model_files_dir(const mlxn_model_files *mf) { return mf ? mf->dir : NULL; }
const char *mlxn_model_files_tokenizer_json(const mlxn_model_files *mf) { return mf ? mf->tok_json : NULL; }
const char *mlxn_model_files_tokenizer_config_json(const mlxn_model_files *mf) { return mf ? mf->tok_cfg : NULL; }
const char *mlxn_model_files_generation_config_json(const mlxn_model_files *mf) { return mf ? mf->gen_cfg : NULL; }
const char *mlxn_model_files_architecture(const mlxn_model_files *mf) { return mf ? mf->arch : ""; }
int mlxn_model_files_n_shards(const mlxn_model_files *mf) { return mf ? mf->n_shards : 0; }
const mlxn_st *mlxn_model_files_shard(const mlxn_model_files *mf, int i) {
    return (mf && i >= 0 && i < mf->n_shards) ? mf->shards[i] : NULL;
}

mlxn_status mlxn_model_files_st_tensor(const mlxn_model_files *mf, const char *name, mlxn_st_tensor_info *out) {
    if (!mf || !name || !out) return mlxn_set_error(MLXN_ERR_INVALID_ARG, "model_files_st_tensor: NULL argument");
    const raw_entry *r = mf->src == MLXN_SRC_MLX_DIR ? raw_find(mf, name) : NULL;
    if (!r) return mlxn_set_error(MLXN_ERR_NOT_FOUND, "model '%s': safetensors tensor '%s' not found", mf->path, name);
    return raw_info(mf, r, out);
}

int64_t mlxn_model_files_n_tensors(const mlxn_model_files *mf) { return mf ? mf->n_t : 0; }

static void fill_info(const mlxn_model_files *mf, const mf_tensor *t, mlxn_model_tensor_info *out) {
    *out = t->info;
    out->name = t->name;
    out->mode = t->mode;
    if (mf->src == MLXN_SRC_GGUF) {
        out->src_dtype = mlxn_gguf_type_name(t->info.gguf_type);
    } else {
        mlxn_st_tensor_info ti;
        out->src_dtype = mlxn_st_tensor(mf->shards[t->shard], t->idx, &ti) == MLXN_OK ? ti.dtype_name : "?";
    }
}

mlxn_status mlxn_model_files_tensor(const mlxn_model_files *mf, int64_t i, mlxn_model_tensor_info *out) {
    if (!mf || !out) return mlxn_set_error(MLXN_ERR_INVALID_ARG, "model_files_tensor: NULL argument");
    if (i < 0 || i >= mf->n_t)
        return mlxn_set_error(MLXN_ERR_RANGE, "model '%s': tensor index %lld out of range [0, %lld)", mf->path,
                              (long long)i, (long long)mf->n_t);
    fill_info(mf, &mf->t[i], out);
    return MLXN_OK;
}

static const mf_tensor *find_t(const mlxn_model_files *mf, const char *name) {
    if (mf->src == MLXN_SRC_GGUF) {
        int64_t i = mlxn_gguf_find_tensor(mf->gguf, name);
        return i >= 0 ? &mf->t[i] : NULL;
    }
    int64_t lo = 0, hi = mf->n_t - 1;
    while (lo <= hi) {
        int64_t mid = lo + (hi - lo) / 2;
        int c = strcmp(mf->t[mid].name, name);
        if (c == 0) return &mf->t[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid - 1;
    }
    return NULL;
}

static mlxn_status lookup(const mlxn_model_files *mf, const char *name, const mf_tensor **out) {
    const mf_tensor *t = find_t(mf, name);
    if (!t && mf->src == MLXN_SRC_MLX_DIR) {
        char *nm = cat2(name, strlen(name), ".weight");
        if (!nm) return oom(mf->path);
        t = find_t(mf, nm);
        free(nm);
        if (t && !t->info.quantized) t = NULL;
    }
    if (!t) return mlxn_set_error(MLXN_ERR_NOT_FOUND, "model '%s': tensor '%s' not found", mf->path, name);
    *out = t;
    return MLXN_OK;
}

mlxn_status mlxn_model_files_find(const mlxn_model_files *mf, const char *name, mlxn_model_tensor_info *out) {
    if (!mf || !name || !out) return mlxn_set_error(MLXN_ERR_INVALID_ARG, "model_files_find: NULL argument");
    const mf_tensor *t;
    MLXN_TRY(lookup(mf, name, &t));
    fill_info(mf, t, out);
    return MLXN_OK;
}

int64_t mlxn_model_files_n_params(const mlxn_model_files *mf) {
    int64_t n = 0;
    for (int64_t i = 0; mf && i < mf->n_t; i++) n += mlxn_numel(mf->t[i].info.ndim, mf->t[i].info.shape);
    return n;
}

size_t mlxn_model_files_total_bytes(const mlxn_model_files *mf) {
    size_t n = 0;
    for (int64_t i = 0; mf && i < mf->n_t; i++) n += mf->t[i].info.nbytes;
    return n;
}

/* ---------------------------------------------------------------- loading */

/* One stored part of a tensor: its bytes in a mapping and the mapping's owner. */
typedef struct part {
    const void *data;
    size_t nbytes;
    mlxn_st *st;     /* owner (one of these) */
    mlxn_gguf *gg;
} part;

static mlxn_status get_part(const mlxn_model_files *mf, int shard, int64_t idx, part *p) {
    memset(p, 0, sizeof *p);
    if (mf->src == MLXN_SRC_GGUF) {
        mlxn_gguf_tensor_info ti;
        MLXN_TRY(mlxn_gguf_tensor(mf->gguf, idx, &ti));
        p->data = ti.data;
        p->nbytes = ti.nbytes;
        p->gg = mf->gguf;
        return MLXN_OK;
    }
    mlxn_st_tensor_info ti;
    MLXN_TRY(mlxn_st_tensor(mf->shards[shard], idx, &ti));
    p->data = ti.data;
    p->nbytes = ti.nbytes;
    p->st = mf->shards[shard];
    return MLXN_OK;
}

static void release_st(void *ctx) { mlxn_st_release(ctx); }
static void release_gguf(void *ctx) { mlxn_gguf_release(ctx); }

static int host_device(mlxn_device *d) {
    const char *k = mlxn_device_kind(d);
    return k && (strcmp(k, "cpu") == 0 || strcmp(k, "ref") == 0);
}

#define UPLOAD_CHUNK ((size_t)64 << 20)

/* Upload host bytes into b at offset, in chunks, dropping the source pages
 * from the resident set after each chunk when `drop` (file-backed data). */
static mlxn_status upload_chunked(mlxn_buffer *b, size_t off, const void *src, size_t n, int drop) {
    const char *s = src;
    for (size_t done = 0; done < n;) {
        size_t c = n - done < UPLOAD_CHUNK ? n - done : UPLOAD_CHUNK;
        MLXN_TRY(mlxn_buffer_upload(b, off + done, s + done, c));
        if (drop) mlxn_map_drop_pages(s + done, c);
        done += c;
    }
    return MLXN_OK;
}

/* A buffer over a stored part with dtype t and shape: zero-copy on host
 * devices when aligned, else a copy/upload. */
static mlxn_status part_buffer(mlxn_device *d, const part *p, mlxn_dtype t, int ndim, const int64_t *shape,
                               mlxn_buffer **out) {
    size_t es = mlxn_dtype_size(t);
    if (host_device(d) && ((uintptr_t)p->data % es) == 0) {
        void (*rel)(void *) = p->st ? release_st : release_gguf;
        void *ctx = p->st ? (void *)p->st : (void *)p->gg;
        if (p->st) mlxn_st_retain(p->st);
        else mlxn_gguf_retain(p->gg);
        mlxn_status st = mlxn_buffer_wrap_host(d, (void *)p->data, t, ndim, shape, rel, ctx, out);
        if (st != MLXN_OK) rel(ctx);
        return st;
    }
    MLXN_TRY(mlxn_buffer_alloc(d, t, ndim, shape, out));
    if (mlxn_buffer_nbytes(*out) != p->nbytes) {
        size_t have = mlxn_buffer_nbytes(*out);
        mlxn_buffer_release(*out);
        *out = NULL;
        return mlxn_set_error(MLXN_ERR_INTERNAL, "model loader: buffer size mismatch (%zu vs %zu bytes)", have,
                              p->nbytes);
    }
    mlxn_status st = upload_chunked(*out, 0, p->data, p->nbytes, !host_device(d));
    if (st != MLXN_OK) {
        mlxn_buffer_release(*out);
        *out = NULL;
    }
    return st;
}

mlxn_status mlxn_model_files_load_weight(mlxn_model_files *mf, mlxn_device *d, const char *name, mlxn_weight **out) {
    if (!mf || !d || !name || !out) return mlxn_set_error(MLXN_ERR_INVALID_ARG, "model_files_load_weight: NULL argument");
    *out = NULL;
    const mf_tensor *t;
    MLXN_TRY(lookup(mf, name, &t));
    const mlxn_model_tensor_info *in = &t->info;
    char sb[MLXN_SHAPE_STR_CAP];
    if (in->ndim != 2)
        return mlxn_set_error(MLXN_ERR_SHAPE, "model '%s': tensor '%s' has shape %s; a weight must be 2-D", mf->path,
                              t->name, mlxn_shape_str(sb, sizeof sb, in->ndim, in->shape));
    int64_t N = in->shape[0], K = in->shape[1];
    mlxn_weight_desc desc;
    memset(&desc, 0, sizeof desc);
    desc.format = in->format;
    desc.rows = N;
    desc.cols = K;
    desc.name = t->name;
    part p;
    mlxn_status st = MLXN_OK;
    switch (in->format) {
    case MLXN_WEIGHT_DENSE:
        if ((int)in->dtype != MLXN_F32 && in->dtype != MLXN_F16 && in->dtype != MLXN_BF16)
            return mlxn_set_error(MLXN_ERR_UNSUPPORTED, "model '%s': tensor '%s' has dtype %s; weights must be F32, F16 or BF16",
                                  mf->path, t->name, (int)in->dtype >= 0 ? mlxn_dtype_name(in->dtype) : "non-mlxn");
        MLXN_TRY(get_part(mf, t->shard, t->idx, &p));
        MLXN_TRY(part_buffer(d, &p, in->dtype, 2, in->shape, &desc.data));
        break;
    case MLXN_WEIGHT_MLX_AFFINE: {
        if (strcmp(t->mode, "affine") != 0)
            return mlxn_set_error(MLXN_ERR_UNSUPPORTED, "model '%s': tensor '%s' uses quantization mode '%s' (only affine)",
                                  mf->path, t->name, t->mode);
        desc.bits = in->bits;
        desc.group_size = in->group_size;
        int64_t pshape[2] = {N, K * in->bits / 32}, sshape[2] = {N, K / in->group_size};
        MLXN_TRY(get_part(mf, t->shard, t->idx, &p));
        st = part_buffer(d, &p, MLXN_U32, 2, pshape, &desc.data);
        if (st == MLXN_OK) st = get_part(mf, t->s_shard, t->s_idx, &p);
        if (st == MLXN_OK) st = part_buffer(d, &p, in->dtype, 2, sshape, &desc.scales);
        if (st == MLXN_OK) st = get_part(mf, t->b_shard, t->b_idx, &p);
        if (st == MLXN_OK) st = part_buffer(d, &p, in->dtype, 2, sshape, &desc.biases);
        break;
    }
    case MLXN_WEIGHT_GGUF: {
        desc.gguf_type = in->gguf_type;
        int64_t bv, bb;
        mlxn_gguf_type_block(in->gguf_type, &bv, &bb);
        int64_t shape[2] = {N, K / bv * bb};
        MLXN_TRY(get_part(mf, t->shard, t->idx, &p));
        MLXN_TRY(part_buffer(d, &p, MLXN_U8, 2, shape, &desc.data));
        break;
    }
    }
    if (st == MLXN_OK) {
        st = mlxn_weight_create(&desc, out);
        if (st != MLXN_OK) mlxn_error_prefix(st, "model '%s'", mf->path);
    }
    mlxn_buffer_release(desc.data);
    mlxn_buffer_release(desc.scales);
    mlxn_buffer_release(desc.biases);
    return st;
}

/* Convert rows [r0, r0+nr) of tensor t (viewed as [rows, K]) to f32. */
static mlxn_status read_rows_f32(const mlxn_model_files *mf, const mf_tensor *t, int64_t K, int64_t r0, int64_t nr,
                                 float *out) {
    const mlxn_model_tensor_info *in = &t->info;
    part p;
    MLXN_TRY(get_part(mf, t->shard, t->idx, &p));
    int64_t n = nr * K, off = r0 * K;
    if (in->format == MLXN_WEIGHT_GGUF) {
        int64_t bv, bb;
        mlxn_gguf_type_block(in->gguf_type, &bv, &bb);
        mlxn_status st = mlxn_gguf_dequantize(in->gguf_type, (const uint8_t *)p.data + off / bv * bb, n, out);
        return st == MLXN_OK ? st : mlxn_error_prefix(st, "model '%s': tensor '%s'", mf->path, t->name);
    }
    if (in->format == MLXN_WEIGHT_MLX_AFFINE) {
        if (strcmp(t->mode, "affine") != 0)
            return mlxn_set_error(MLXN_ERR_UNSUPPORTED, "model '%s': tensor '%s' uses quantization mode '%s' (only affine)",
                                  mf->path, t->name, t->mode);
        part s, b;
        MLXN_TRY(get_part(mf, t->s_shard, t->s_idx, &s));
        MLXN_TRY(get_part(mf, t->b_shard, t->b_idx, &b));
        int64_t ng = K / in->group_size;
        size_t es = mlxn_dtype_size(in->dtype);
        mlxn_status st = mlxn_dequantize_affine((const uint8_t *)p.data + (size_t)(r0 * K * in->bits / 8),
                                                (const uint8_t *)s.data + (size_t)(r0 * ng) * es,
                                                (const uint8_t *)b.data + (size_t)(r0 * ng) * es, in->dtype, nr, K,
                                                in->bits, in->group_size, out);
        return st == MLXN_OK ? st : mlxn_error_prefix(st, "model '%s': tensor '%s'", mf->path, t->name);
    }
    /* dense: element type from the source */
    const uint8_t *src = p.data;
    int stype = mf->src == MLXN_SRC_GGUF ? -1 : 0;
    mlxn_st_tensor_info ti;
    if (stype == 0) {
        MLXN_TRY(mlxn_st_tensor(mf->shards[t->shard], t->idx, &ti));
        stype = (int)ti.dtype;
    } else {
        switch (in->gguf_type) {
        case MLXN_GGUF_F32: stype = MLXN_ST_F32; break;
        case MLXN_GGUF_F16: stype = MLXN_ST_F16; break;
        case MLXN_GGUF_BF16: stype = MLXN_ST_BF16; break;
        case MLXN_GGUF_F64: stype = MLXN_ST_F64; break;
        case MLXN_GGUF_I8: stype = MLXN_ST_I8; break;
        case MLXN_GGUF_I16: stype = MLXN_ST_I16; break;
        case MLXN_GGUF_I32: stype = MLXN_ST_I32; break;
        case MLXN_GGUF_I64: stype = MLXN_ST_I64; break;
        default: stype = -1;
        }
    }
    size_t es = mlxn_st_dtype_size((mlxn_st_dtype)stype);
    if (stype < 0 || es == 0)
        return mlxn_set_error(MLXN_ERR_UNSUPPORTED, "model '%s': tensor '%s': cannot convert its dtype to f32", mf->path,
                              t->name);
    src += (size_t)off * es;
    for (int64_t i = 0; i < n; i++) {
        const uint8_t *e = src + (size_t)i * es;
        float v;
        switch ((mlxn_st_dtype)stype) {
        case MLXN_ST_F32: memcpy(&v, e, 4); break;
        case MLXN_ST_F16: { uint16_t h; memcpy(&h, e, 2); v = mlxn_f16_to_f32(h); } break;
        case MLXN_ST_BF16: { uint16_t h; memcpy(&h, e, 2); v = mlxn_bf16_to_f32(h); } break;
        case MLXN_ST_F64: { double x; memcpy(&x, e, 8); v = (float)x; } break;
        case MLXN_ST_BOOL: case MLXN_ST_U8: v = e[0]; break;
        case MLXN_ST_I8: v = (int8_t)e[0]; break;
        case MLXN_ST_U16: { uint16_t x; memcpy(&x, e, 2); v = x; } break;
        case MLXN_ST_I16: { int16_t x; memcpy(&x, e, 2); v = x; } break;
        case MLXN_ST_U32: { uint32_t x; memcpy(&x, e, 4); v = (float)x; } break;
        case MLXN_ST_I32: { int32_t x; memcpy(&x, e, 4); v = (float)x; } break;
        case MLXN_ST_U64: { uint64_t x; memcpy(&x, e, 8); v = (float)x; } break;
        case MLXN_ST_I64: { int64_t x; memcpy(&x, e, 8); v = (float)x; } break;
        default:
            return mlxn_set_error(MLXN_ERR_UNSUPPORTED, "model '%s': tensor '%s': dtype %s cannot be converted to f32",
                                  mf->path, t->name, mlxn_st_dtype_name((mlxn_st_dtype)stype));
        }
        out[i] = v;
    }
    return MLXN_OK;
}

static void tensor_rows_cols(const mlxn_model_tensor_info *in, int64_t *rows, int64_t *K) {
    *K = in->ndim ? in->shape[in->ndim - 1] : 1;
    *rows = 1;
    for (int d = 0; d + 1 < in->ndim; d++) *rows *= in->shape[d];
}

mlxn_status mlxn_model_files_read_f32(mlxn_model_files *mf, const char *name, float *out, size_t out_count) {
    if (!mf || !name || !out) return mlxn_set_error(MLXN_ERR_INVALID_ARG, "model_files_read_f32: NULL argument");
    const mf_tensor *t;
    MLXN_TRY(lookup(mf, name, &t));
    int64_t rows, K;
    tensor_rows_cols(&t->info, &rows, &K);
    if ((uint64_t)(rows * K) > out_count)
        return mlxn_set_error(MLXN_ERR_RANGE, "model '%s': tensor '%s' has %lld values, output holds %zu", mf->path,
                              t->name, (long long)(rows * K), out_count);
    if (rows * K == 0) return MLXN_OK;
    return read_rows_f32(mf, t, K, 0, rows, out);
}

mlxn_status mlxn_model_files_load_buffer(mlxn_model_files *mf, mlxn_device *d, const char *name, mlxn_dtype want,
                                         mlxn_buffer **out) {
    if (!mf || !d || !name || !out) return mlxn_set_error(MLXN_ERR_INVALID_ARG, "model_files_load_buffer: NULL argument");
    *out = NULL;
    if ((unsigned)want >= MLXN_DTYPE_COUNT)
        return mlxn_set_error(MLXN_ERR_INVALID_ARG, "model_files_load_buffer: invalid dtype %d", (int)want);
    const mf_tensor *t;
    MLXN_TRY(lookup(mf, name, &t));
    const mlxn_model_tensor_info *in = &t->info;
    int ndim = in->ndim;
    int64_t shape[4];
    memcpy(shape, in->shape, sizeof shape);
    if (in->format == MLXN_WEIGHT_DENSE && (int)in->dtype == (int)want) {
        part p;
        MLXN_TRY(get_part(mf, t->shard, t->idx, &p));
        return part_buffer(d, &p, want, ndim, shape, out);
    }
    if (want != MLXN_F32 && want != MLXN_F16 && want != MLXN_BF16)
        return mlxn_set_error(MLXN_ERR_DTYPE, "model '%s': tensor '%s' (%s) cannot be loaded as %s", mf->path, t->name,
                              (int)in->dtype >= 0 ? mlxn_dtype_name(in->dtype) : "?", mlxn_dtype_name(want));
    int64_t rows, K;
    tensor_rows_cols(in, &rows, &K);
    MLXN_TRY(mlxn_buffer_alloc(d, want, ndim, shape, out));
    if (rows * K == 0) return MLXN_OK;
    /* convert in row chunks of ~4M values through a staging buffer */
    int64_t chunk = (int64_t)(4 << 20) / (K > 0 ? K : 1);
    if (chunk < 1) chunk = 1;
    if (chunk > rows) chunk = rows;
    float *tmp = malloc((size_t)(chunk * K) * sizeof(float));
    void *stage = host_device(d) ? NULL : malloc((size_t)(chunk * K) * mlxn_dtype_size(want));
    mlxn_status st = MLXN_OK;
    if (!tmp || (!host_device(d) && !stage)) st = oom(mf->path);
    size_t es = mlxn_dtype_size(want);
    for (int64_t r0 = 0; st == MLXN_OK && r0 < rows; r0 += chunk) {
        int64_t nr = rows - r0 < chunk ? rows - r0 : chunk;
        st = read_rows_f32(mf, t, K, r0, nr, tmp);
        if (st != MLXN_OK) break;
        void *dst = host_device(d) ? (char *)mlxn_buffer_host_ptr(*out) + (size_t)(r0 * K) * es : stage;
        for (int64_t i = 0; i < nr * K; i++) mlxn_store_f(dst, want, i, tmp[i]);
        if (!host_device(d)) st = mlxn_buffer_upload(*out, (size_t)(r0 * K) * es, stage, (size_t)(nr * K) * es);
    }
    free(tmp);
    free(stage);
    if (st != MLXN_OK) {
        mlxn_buffer_release(*out);
        *out = NULL;
    }
    return st;
}
