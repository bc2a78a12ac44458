/* safetensors.c — the .safetensors reader (mmap + full validation of the
 * JSON header following the reference implementation's rules) and writer
 * (sorted names, header padded with spaces to an 8-byte data start, optional
 * __metadata__). The header is parsed with jansson (which rejects invalid
 * UTF-8 and, with JSON_REJECT_DUPLICATES, duplicate names); every size
 * computation is overflow-checked. Tensor data pointers point into the
 * mapping and may be unaligned. */
#include "io/safetensors.h"
#include "core/internal.h"
#include "io/json_util.h"

#include <jansson.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ST_MAX_HEADER ((uint64_t)100 * 1000 * 1000)

static const struct {
    const char *name;
    size_t size;
    int mlxn;
} k_dtypes[MLXN_ST_DTYPE_COUNT] = {
    [MLXN_ST_BOOL] = {"BOOL", 1, -1},          [MLXN_ST_U8] = {"U8", 1, MLXN_U8},
    [MLXN_ST_I8] = {"I8", 1, MLXN_I8},         [MLXN_ST_F8_E5M2] = {"F8_E5M2", 1, -1},
    [MLXN_ST_F8_E4M3] = {"F8_E4M3", 1, -1},    [MLXN_ST_F8_E8M0] = {"F8_E8M0", 1, -1},
    [MLXN_ST_I16] = {"I16", 2, MLXN_I16},      [MLXN_ST_U16] = {"U16", 2, MLXN_U16},
    [MLXN_ST_F16] = {"F16", 2, MLXN_F16},      [MLXN_ST_BF16] = {"BF16", 2, MLXN_BF16},
    [MLXN_ST_I32] = {"I32", 4, MLXN_I32},      [MLXN_ST_U32] = {"U32", 4, MLXN_U32},
    [MLXN_ST_F32] = {"F32", 4, MLXN_F32},      [MLXN_ST_F64] = {"F64", 8, -1},
    [MLXN_ST_I64] = {"I64", 8, MLXN_I64},      [MLXN_ST_U64] = {"U64", 8, -1},
    [MLXN_ST_C64] = {"C64", 8, -1},
};

const char *mlxn_st_dtype_name(mlxn_st_dtype t) {
    return ((unsigned)t < MLXN_ST_DTYPE_COUNT) ? k_dtypes[t].name : NULL;
}
size_t mlxn_st_dtype_size(mlxn_st_dtype t) { return ((unsigned)t < MLXN_ST_DTYPE_COUNT) ? k_dtypes[t].size : 0; }
int mlxn_st_dtype_from_name(const char *name) {
    for (int i = 0; i < MLXN_ST_DTYPE_COUNT; i++)
        if (strcmp(k_dtypes[i].name, name) == 0) return i;
    return -1;
}
int mlxn_st_dtype_to_mlxn(mlxn_st_dtype t) { return ((unsigned)t < MLXN_ST_DTYPE_COUNT) ? k_dtypes[t].mlxn : -1; }
mlxn_st_dtype mlxn_st_dtype_from_mlxn(mlxn_dtype t) {
    for (int i = 0; i < MLXN_ST_DTYPE_COUNT; i++)
        if (k_dtypes[i].mlxn == (int)t) return (mlxn_st_dtype)i;
    return MLXN_ST_U8;
}

/* ---------------------------------------------------------------- reader */

typedef struct st_entry {
    char *name;
    mlxn_st_dtype dtype;
    int ndim;
    int64_t shape[4];
    uint64_t begin, end;
} st_entry;

struct mlxn_st {
    _Atomic int refcount;
    char *path;
    mlxn_mapped_file map; /* map.base NULL for memory sources */
    const uint8_t *base;
    size_t size;
    uint64_t header_len;
    st_entry *t;          /* sorted by name */
    int64_t n;
    char **meta_k, **meta_v;
    int64_t n_meta;
};

static void st_free(mlxn_st *st) {
    if (!st) return;
    for (int64_t i = 0; i < st->n; i++) free(st->t[i].name);
    free(st->t);
    for (int64_t i = 0; i < st->n_meta; i++) {
        free(st->meta_k[i]);
        free(st->meta_v[i]);
    }
    free(st->meta_k);
    free(st->meta_v);
    mlxn_unmap_file(&st->map);
    free(st->path);
    free(st);
}

void mlxn_st_retain(mlxn_st *st) {
    if (st) atomic_fetch_add(&st->refcount, 1);
}
void mlxn_st_release(mlxn_st *st) {
    if (st && atomic_fetch_sub(&st->refcount, 1) == 1) st_free(st);
}
void mlxn_st_close(mlxn_st *st) { mlxn_st_release(st); }

static int cmp_entry_name(const void *a, const void *b) {
    return strcmp(((const st_entry *)a)->name, ((const st_entry *)b)->name);
}
static int cmp_entry_ptr_offset(const void *a, const void *b) {
    const st_entry *x = *(const st_entry *const *)a, *y = *(const st_entry *const *)b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return 0;
}

/* Parse one tensor entry `name -> {dtype, shape, data_offsets}`. */
static mlxn_status parse_entry(const char *P, const char *name, json_t *v, st_entry *e) {
    if (!json_is_object(v))
        return mlxn_set_error(MLXN_ERR_FORMAT, "safetensors '%s': tensor '%s': entry is not a JSON object", P, name);
    json_t *jd = json_object_get(v, "dtype"), *js = json_object_get(v, "shape"),
           *jo = json_object_get(v, "data_offsets");
    if (!json_is_string(jd))
        return mlxn_set_error(MLXN_ERR_FORMAT, "safetensors '%s': tensor '%s': missing or non-string \"dtype\"", P, name);
    int dt = mlxn_st_dtype_from_name(json_string_value(jd));
    if (dt < 0)
        return mlxn_set_error(MLXN_ERR_FORMAT, "safetensors '%s': tensor '%s': unknown dtype '%s'", P, name,
                              json_string_value(jd));
    e->dtype = (mlxn_st_dtype)dt;
    if (!json_is_array(js))
        return mlxn_set_error(MLXN_ERR_FORMAT, "safetensors '%s': tensor '%s': missing or non-array \"shape\"", P, name);
    size_t nd = json_array_size(js);
    if (nd > 4)
        return mlxn_set_error(MLXN_ERR_UNSUPPORTED, "safetensors '%s': tensor '%s' has %zu dims > 4", P, name, nd);
    e->ndim = (int)nd;
    uint64_t numel = 1, nonzero = 1; /* nonzero: product of the non-zero dims, bounded too so
                                       * that no multiplication order overflows */
    int overflow = 0;
    for (size_t i = 0; i < nd; i++) {
        json_t *d = json_array_get(js, i);
        if (!json_is_integer(d) || json_integer_value(d) < 0)
            return mlxn_set_error(MLXN_ERR_FORMAT, "safetensors '%s': tensor '%s': shape[%zu] is not a non-negative integer",
                                  P, name, i);
        e->shape[i] = (int64_t)json_integer_value(d);
        if (__builtin_mul_overflow(numel, (uint64_t)e->shape[i], &numel)) overflow = 1;
        if (e->shape[i] > 0 && __builtin_mul_overflow(nonzero, (uint64_t)e->shape[i], &nonzero)) overflow = 1;
    }
    if (nonzero > (uint64_t)INT64_MAX) overflow = 1;
    for (size_t i = nd; i < 4; i++) e->shape[i] = 1;
    char sb[MLXN_SHAPE_STR_CAP];
    uint64_t need;
    if (overflow || numel > (uint64_t)INT64_MAX || __builtin_mul_overflow(numel, (uint64_t)k_dtypes[dt].size, &need))
        return mlxn_set_error(MLXN_ERR_FORMAT, "safetensors '%s': tensor '%s': shape %s element count overflows", P, name,
                              mlxn_shape_str(sb, sizeof sb, e->ndim, e->shape));
    if (!json_is_array(jo) || json_array_size(jo) != 2 || !json_is_integer(json_array_get(jo, 0)) ||
        !json_is_integer(json_array_get(jo, 1)))
        return mlxn_set_error(MLXN_ERR_FORMAT, "safetensors '%s': tensor '%s': \"data_offsets\" must be [begin, end]", P,
                              name);
    json_int_t b = json_integer_value(json_array_get(jo, 0)), en = json_integer_value(json_array_get(jo, 1));
    if (b < 0 || en < b)
        return mlxn_set_error(MLXN_ERR_FORMAT, "safetensors '%s': tensor '%s': invalid data_offsets [%lld, %lld)", P, name,
                              (long long)b, (long long)en);
    e->begin = (uint64_t)b;
    e->end = (uint64_t)en;
    if (e->end - e->begin != need)
        return mlxn_set_error(MLXN_ERR_FORMAT,
                              "safetensors '%s': tensor '%s': data_offsets span %llu bytes but shape %s of %s needs %llu",
                              P, name, (unsigned long long)(e->end - e->begin),
                              mlxn_shape_str(sb, sizeof sb, e->ndim, e->shape), k_dtypes[dt].name,
                              (unsigned long long)need);
    return MLXN_OK;
}

static mlxn_status st_parse(mlxn_st *st) {
    const char *P = st->path;
    if (st->size < 8)
        return mlxn_set_error(MLXN_ERR_FORMAT, "safetensors '%s': file size %zu is smaller than the 8-byte header length",
                              P, st->size);
    uint64_t n;
    memcpy(&n, st->base, 8); /* little-endian host assumed (x86-64, aarch64) */
    if (n > ST_MAX_HEADER)
        return mlxn_set_error(MLXN_ERR_FORMAT, "safetensors '%s': header length %llu exceeds the 100 MB limit", P,
                              (unsigned long long)n);
    if (n > st->size - 8)
        return mlxn_set_error(MLXN_ERR_FORMAT, "safetensors '%s': header length %llu exceeds file size %zu", P,
                              (unsigned long long)n, st->size);
    st->header_len = n;
    if (n < 2 || st->base[8] != '{')
        return mlxn_set_error(MLXN_ERR_FORMAT, "safetensors '%s': header does not start with '{'", P);
    json_t *root = NULL;
    MLXN_TRY(mlxn_json_load_text("safetensors", P, (const char *)st->base + 8, (size_t)n, JSON_REJECT_DUPLICATES,
                                 &root));
    mlxn_status rc = MLXN_OK;
    if (!json_is_object(root)) {
        rc = mlxn_set_error(MLXN_ERR_FORMAT, "safetensors '%s': header is not a JSON object", P);
        goto done;
    }
    size_t cap = json_object_size(root);
    st->t = calloc(cap ? cap : 1, sizeof *st->t);
    if (!st->t) {
        rc = mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "safetensors '%s': out of memory", P);
        goto done;
    }
    const char *key;
    json_t *val;
    json_object_foreach(root, key, val) {
        if (strcmp(key, "__metadata__") == 0) {
            if (json_is_null(val)) continue; /* MLX writes null when there is none (the reference accepts it) */
            if (!json_is_object(val)) {
                rc = mlxn_set_error(MLXN_ERR_FORMAT, "safetensors '%s': __metadata__ is not an object", P);
                goto done;
            }
            size_t m = json_object_size(val);
            st->meta_k = calloc(m ? m : 1, sizeof(char *));
            st->meta_v = calloc(m ? m : 1, sizeof(char *));
            if (!st->meta_k || !st->meta_v) {
                rc = mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "safetensors '%s': out of memory", P);
                goto done;
            }
            const char *mk;
            json_t *mv;
            json_object_foreach(val, mk, mv) {
                if (!json_is_string(mv)) {
                    rc = mlxn_set_error(MLXN_ERR_FORMAT, "safetensors '%s': __metadata__ value of '%s' is not a string", P,
                                        mk);
                    goto done;
                }
                st->meta_k[st->n_meta] = strdup(mk);
                st->meta_v[st->n_meta] = strdup(json_string_value(mv));
                st->n_meta++;
                if (!st->meta_k[st->n_meta - 1] || !st->meta_v[st->n_meta - 1]) {
                    rc = mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "safetensors '%s': out of memory", P);
                    goto done;
                }
            }
            continue;
        }
        st_entry *e = &st->t[st->n];
        rc = parse_entry(P, key, val, e);
        if (rc != MLXN_OK) goto done;
        e->name = strdup(key);
        if (!e->name) {
            rc = mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "safetensors '%s': out of memory", P);
            goto done;
        }
        st->n++;
    }
    /* offsets must tile [0, buffer size) exactly */
    {
        uint64_t buf_size = (uint64_t)st->size - 8 - n;
        st_entry **ord = malloc((size_t)(st->n ? st->n : 1) * sizeof *ord);
        if (!ord) {
            rc = mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "safetensors '%s': out of memory", P);
            goto done;
        }
        for (int64_t i = 0; i < st->n; i++) ord[i] = &st->t[i];
        qsort(ord, (size_t)st->n, sizeof *ord, cmp_entry_ptr_offset);
        uint64_t pos = 0;
        for (int64_t i = 0; i < st->n && rc == MLXN_OK; i++) {
            const st_entry *e = ord[i];
            if (e->begin < pos)
                rc = mlxn_set_error(MLXN_ERR_FORMAT,
                                    "safetensors '%s': tensor '%s' data_offsets [%llu, %llu) overlap the previous tensor "
                                    "'%s' ending at %llu",
                                    P, e->name, (unsigned long long)e->begin, (unsigned long long)e->end,
                                    ord[i - 1]->name, (unsigned long long)pos);
            else if (e->begin > pos)
                rc = mlxn_set_error(MLXN_ERR_FORMAT,
                                    "safetensors '%s': gap in the data buffer: tensor '%s' starts at %llu, expected %llu", P,
                                    e->name, (unsigned long long)e->begin, (unsigned long long)pos);
            pos = e->end;
        }
        free(ord);
        if (rc != MLXN_OK) goto done;
        if (pos != buf_size) {
            rc = mlxn_set_error(MLXN_ERR_FORMAT,
                                "safetensors '%s': tensors cover %llu bytes of data but the data buffer holds %llu (file "
                                "size %zu)",
                                P, (unsigned long long)pos, (unsigned long long)buf_size, st->size);
            goto done;
        }
    }
    qsort(st->t, (size_t)st->n, sizeof *st->t, cmp_entry_name);
done:
    json_decref(root);
    return rc;
}

static mlxn_status st_open_common(mlxn_st *st, mlxn_st **out) {
    mlxn_status rc = st_parse(st);
    if (rc != MLXN_OK) {
        st_free(st);
        return rc;
    }
    *out = st;
    return MLXN_OK;
}

mlxn_status mlxn_st_open(const char *path, mlxn_st **out) {
    if (!path || !out) return mlxn_set_error(MLXN_ERR_INVALID_ARG, "safetensors: path and out must not be NULL");
    *out = NULL;
    mlxn_st *st = calloc(1, sizeof *st);
    if (!st || !(st->path = strdup(path))) {
        free(st);
        return mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "safetensors '%s': out of memory", path);
    }
    atomic_init(&st->refcount, 1);
    mlxn_status rc = mlxn_map_file("safetensors", path, &st->map);
    if (rc != MLXN_OK) {
        st_free(st);
        return rc;
    }
    st->base = st->map.base;
    st->size = st->map.size;
    return st_open_common(st, out);
}

mlxn_status mlxn_st_open_memory(const void *data, size_t size, const char *label, mlxn_st **out) {
    if (!out || (!data && size)) return mlxn_set_error(MLXN_ERR_INVALID_ARG, "safetensors: data and out must not be NULL");
    *out = NULL;
    mlxn_st *st = calloc(1, sizeof *st);
    if (!st || !(st->path = strdup(label ? label : "<memory>"))) {
        free(st);
        return mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "safetensors: out of memory");
    }
    atomic_init(&st->refcount, 1);
    st->base = data;
    st->size = size;
    return st_open_common(st, out);
}

const char *mlxn_st_path(const mlxn_st *st) { return st ? st->path : NULL; }
size_t mlxn_st_file_size(const mlxn_st *st) { return st ? st->size : 0; }
uint64_t mlxn_st_header_size(const mlxn_st *st) { return st ? st->header_len : 0; }
int64_t mlxn_st_n_tensors(const mlxn_st *st) { return st ? st->n : 0; }

mlxn_status mlxn_st_tensor(const mlxn_st *st, int64_t i, mlxn_st_tensor_info *out) {
    if (!st || !out) return mlxn_set_error(MLXN_ERR_INVALID_ARG, "safetensors: NULL argument");
    if (i < 0 || i >= st->n)
        return mlxn_set_error(MLXN_ERR_RANGE, "safetensors '%s': tensor index %lld out of range [0, %lld)", st->path,
                              (long long)i, (long long)st->n);
    const st_entry *e = &st->t[i];
    out->name = e->name;
    out->dtype = e->dtype;
    out->dtype_name = k_dtypes[e->dtype].name;
    out->ndim = e->ndim;
    memcpy(out->shape, e->shape, sizeof out->shape);
    out->begin = e->begin;
    out->nbytes = (size_t)(e->end - e->begin);
    out->data = st->base + 8 + st->header_len + e->begin;
    return MLXN_OK;
}

int64_t mlxn_st_find(const mlxn_st *st, const char *name) {
    if (!st || !name) return -1;
    int64_t lo = 0, hi = st->n - 1;
    while (lo <= hi) {
        int64_t mid = lo + (hi - lo) / 2;
        int c = strcmp(st->t[mid].name, name);
        if (c == 0) return mid;
        if (c < 0) lo = mid + 1;
        else hi = mid - 1;
    }
    return -1;
}

int64_t mlxn_st_n_metadata(const mlxn_st *st) { return st ? st->n_meta : 0; }
const char *mlxn_st_metadata_key(const mlxn_st *st, int64_t i) {
    return (st && i >= 0 && i < st->n_meta) ? st->meta_k[i] : NULL;
}
const char *mlxn_st_metadata_value(const mlxn_st *st, int64_t i) {
    return (st && i >= 0 && i < st->n_meta) ? st->meta_v[i] : NULL;
}
const char *mlxn_st_metadata_get(const mlxn_st *st, const char *key) {
    if (!st || !key) return NULL;
    for (int64_t i = 0; i < st->n_meta; i++)
        if (strcmp(st->meta_k[i], key) == 0) return st->meta_v[i];
    return NULL;
}

/* ---------------------------------------------------------------- writer */

typedef struct wt_entry {
    char *name;
    mlxn_st_dtype dtype;
    int ndim;
    int64_t shape[4];
    const void *data;
    size_t nbytes;
} wt_entry;

struct mlxn_st_writer {
    wt_entry *t;
    size_t n, cap;
    char **mk, **mv;
    size_t n_meta, cap_meta;
};

mlxn_status mlxn_st_writer_create(mlxn_st_writer **out) {
    if (!out) return mlxn_set_error(MLXN_ERR_INVALID_ARG, "safetensors writer: out is NULL");
    *out = calloc(1, sizeof **out);
    return *out ? MLXN_OK : mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "safetensors writer: out of memory");
}

void mlxn_st_writer_free(mlxn_st_writer *w) {
    if (!w) return;
    for (size_t i = 0; i < w->n; i++) free(w->t[i].name);
    for (size_t i = 0; i < w->n_meta; i++) {
        free(w->mk[i]);
        free(w->mv[i]);
    }
    free(w->t);
    free(w->mk);
    free(w->mv);
    free(w);
}

mlxn_status mlxn_st_writer_add(mlxn_st_writer *w, const char *name, mlxn_st_dtype dtype, int ndim,
                               const int64_t *shape, const void *data) {
    if (!w || !name) return mlxn_set_error(MLXN_ERR_INVALID_ARG, "safetensors writer: NULL argument");
    if ((unsigned)dtype >= MLXN_ST_DTYPE_COUNT)
        return mlxn_set_error(MLXN_ERR_INVALID_ARG, "safetensors writer: tensor '%s': invalid dtype %d", name, (int)dtype);
    if (ndim < 0 || ndim > 4 || (ndim && !shape))
        return mlxn_set_error(MLXN_ERR_INVALID_ARG, "safetensors writer: tensor '%s': ndim %d not in [0, 4]", name, ndim);
    if (strcmp(name, "__metadata__") == 0 || !*name)
        return mlxn_set_error(MLXN_ERR_INVALID_ARG, "safetensors writer: invalid tensor name '%s'", name);
    for (size_t i = 0; i < w->n; i++)
        if (strcmp(w->t[i].name, name) == 0)
            return mlxn_set_error(MLXN_ERR_INVALID_ARG, "safetensors writer: duplicate tensor name '%s'", name);
    size_t bytes = k_dtypes[dtype].size;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0 || __builtin_mul_overflow(bytes, (size_t)shape[i], &bytes))
            return mlxn_set_error(MLXN_ERR_INVALID_ARG, "safetensors writer: tensor '%s': invalid shape", name);
    }
    if (bytes && !data) return mlxn_set_error(MLXN_ERR_INVALID_ARG, "safetensors writer: tensor '%s': data is NULL", name);
    if (w->n == w->cap) {
        size_t nc = w->cap ? w->cap * 2 : 16;
        wt_entry *nt = realloc(w->t, nc * sizeof *nt);
        if (!nt) return mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "safetensors writer: out of memory");
        w->t = nt;
        w->cap = nc;
    }
    wt_entry *e = &w->t[w->n];
    memset(e, 0, sizeof *e);
    if (!(e->name = strdup(name))) return mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "safetensors writer: out of memory");
    e->dtype = dtype;
    e->ndim = ndim;
    for (int i = 0; i < ndim; i++) e->shape[i] = shape[i];
    e->data = data;
    e->nbytes = bytes;
    w->n++;
    return MLXN_OK;
}

mlxn_status mlxn_st_writer_set_metadata(mlxn_st_writer *w, const char *key, const char *value) {
    if (!w || !key || !value) return mlxn_set_error(MLXN_ERR_INVALID_ARG, "safetensors writer: NULL argument");
    for (size_t i = 0; i < w->n_meta; i++)
        if (strcmp(w->mk[i], key) == 0) {
            char *v = strdup(value);
            if (!v) return mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "safetensors writer: out of memory");
            free(w->mv[i]);
            w->mv[i] = v;
            return MLXN_OK;
        }
    if (w->n_meta == w->cap_meta) {
        size_t nc = w->cap_meta ? w->cap_meta * 2 : 8;
        char **a = realloc(w->mk, nc * sizeof *a);
        if (!a) return mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "safetensors writer: out of memory");
        w->mk = a;
        char **b = realloc(w->mv, nc * sizeof *b);
        if (!b) return mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "safetensors writer: out of memory");
        w->mv = b;
        w->cap_meta = nc;
    }
    char *k = strdup(key), *v = strdup(value);
    if (!k || !v) {
        free(k);
        free(v);
        return mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "safetensors writer: out of memory");
    }
    w->mk[w->n_meta] = k;
    w->mv[w->n_meta] = v;
    w->n_meta++;
    return MLXN_OK;
}

static int cmp_wt_name(const void *a, const void *b) {
    return strcmp(((const wt_entry *)a)->name, ((const wt_entry *)b)->name);
}

mlxn_status mlxn_st_writer_write(mlxn_st_writer *w, const char *path) {
    if (!w || !path) return mlxn_set_error(MLXN_ERR_INVALID_ARG, "safetensors writer: NULL argument");
    qsort(w->t, w->n, sizeof *w->t, cmp_wt_name);
    json_t *root = json_object();
    mlxn_status rc = MLXN_OK;
    char *hdr = NULL;
    FILE *f = NULL;
    if (!root) return mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "safetensors writer: out of memory");
    if (w->n_meta) {
        json_t *m = json_object();
        if (!m || json_object_set_new(root, "__metadata__", m) != 0) goto oom;
        for (size_t i = 0; i < w->n_meta; i++)
            if (json_object_set_new(m, w->mk[i], json_string(w->mv[i])) != 0) goto oom;
    }
    uint64_t off = 0;
    for (size_t i = 0; i < w->n; i++) {
        const wt_entry *e = &w->t[i];
        json_t *o = json_object(), *sh = json_array(), *of = json_array();
        if (!o || !sh || !of) {
            json_decref(o);
            json_decref(sh);
            json_decref(of);
            goto oom;
        }
        json_object_set_new(o, "dtype", json_string(k_dtypes[e->dtype].name));
        for (int d = 0; d < e->ndim; d++) json_array_append_new(sh, json_integer(e->shape[d]));
        json_object_set_new(o, "shape", sh);
        json_array_append_new(of, json_integer((json_int_t)off));
        json_array_append_new(of, json_integer((json_int_t)(off + e->nbytes)));
        json_object_set_new(o, "data_offsets", of);
        if (json_object_set_new(root, e->name, o) != 0) {
            rc = mlxn_set_error(MLXN_ERR_INVALID_ARG, "safetensors writer '%s': cannot store tensor name '%s' (invalid UTF-8?)",
                                path, e->name);
            goto out;
        }
        off += e->nbytes;
    }
    hdr = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (!hdr) goto oom;
    size_t hl = strlen(hdr);
    size_t padded = (8 + hl + 7) / 8 * 8 - 8;
    f = fopen(path, "wb");
    if (!f) {
        rc = mlxn_set_error(MLXN_ERR_IO, "safetensors writer '%s': cannot create file", path);
        goto out;
    }
    uint64_t n64 = padded;
    int ok = fwrite(&n64, 8, 1, f) == 1 && fwrite(hdr, 1, hl, f) == hl;
    for (size_t i = hl; ok && i < padded; i++) ok = fputc(' ', f) != EOF;
    for (size_t i = 0; ok && i < w->n; i++)
        if (w->t[i].nbytes) ok = fwrite(w->t[i].data, 1, w->t[i].nbytes, f) == w->t[i].nbytes;
    if (fclose(f) != 0) ok = 0;
    f = NULL;
    if (!ok) rc = mlxn_set_error(MLXN_ERR_IO, "safetensors writer '%s': write failed", path);
    goto out;
oom:
    rc = mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "safetensors writer '%s': out of memory", path);
out:
    if (f) fclose(f);
    free(hdr);
    json_decref(root);
    return rc;
}
