/* gguf.c — GGUF v2/v3 reader and v3 (or v2) writer. The reader walks the
 * whole header once at open with a bounds-checked cursor: every metadata
 * value (nested arrays up to depth 16), every tensor info (n_dims <= 4, dims
 * non-negative with an overflow-checked product, known ggml type, row length
 * a multiple of the block, offset aligned, data inside the file, tensors not
 * overlapping, names unique). It keeps NUL-terminated copies of keys, tensor
 * names and string values, and an offset index for string/array arrays, so
 * lookups never re-parse. The writer collects encoded metadata and tensor
 * descriptors (tensor data referenced, not copied) and writes the file in
 * one pass with aligned tensor data. */
#include "io/gguf.h"
#include "core/internal.h"
#include "io/json_util.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GG_MAX_DEPTH 16
#define GG_DEFAULT_ALIGN 32

static const size_t k_kv_size[MLXN_GGUF_KV_TYPE_COUNT] = {
    [MLXN_GGUF_KV_U8] = 1,  [MLXN_GGUF_KV_I8] = 1,  [MLXN_GGUF_KV_U16] = 2,  [MLXN_GGUF_KV_I16] = 2,
    [MLXN_GGUF_KV_U32] = 4, [MLXN_GGUF_KV_I32] = 4, [MLXN_GGUF_KV_F32] = 4,  [MLXN_GGUF_KV_BOOL] = 1,
    [MLXN_GGUF_KV_STRING] = 0, [MLXN_GGUF_KV_ARRAY] = 0, [MLXN_GGUF_KV_U64] = 8, [MLXN_GGUF_KV_I64] = 8,
    [MLXN_GGUF_KV_F64] = 8,
};
static const char *const k_kv_name[MLXN_GGUF_KV_TYPE_COUNT] = {
    "u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "string", "array", "u64", "i64", "f64",
};

const char *mlxn_gguf_kv_type_name(mlxn_gguf_kv_type t) {
    return ((unsigned)t < MLXN_GGUF_KV_TYPE_COUNT) ? k_kv_name[t] : "?";
}

/* ---------------------------------------------------------------- reader state */

typedef struct gg_kv {
    char *key;
    mlxn_gguf_kv_type type;
    size_t off;               /* payload offset in the file (after the type) */
    char *str;                /* STRING: NUL-terminated copy */
    uint64_t str_len;
    mlxn_gguf_kv_type elem_type; /* ARRAY */
    uint64_t count;
    size_t data_off;          /* ARRAY: first element */
    uint64_t *elem_off;       /* ARRAY of STRING/ARRAY: offset of each element */
} gg_kv;

typedef struct gg_tensor {
    char *name;
    mlxn_gguf_type type;
    int n_dims;
    int64_t shape[4]; /* outermost first */
    uint64_t offset;
    size_t nbytes;
} gg_tensor;

struct mlxn_gguf {
    _Atomic int refcount;
    char *path;
    mlxn_mapped_file map;
    const uint8_t *base;
    size_t size;
    uint32_t version;
    uint64_t alignment;
    uint64_t data_offset;
    gg_kv *kv;
    int64_t n_kv;
    gg_tensor *t;
    int64_t n_t;
    int64_t *t_sorted; /* tensor indices sorted by name */
    int64_t *kv_sorted;
};

typedef struct cursor {
    const uint8_t *base;
    size_t size, pos;
    const char *path;
} cursor;

static mlxn_status need(cursor *c, uint64_t n, const char *what) {
    if (n > c->size - c->pos)
        return mlxn_set_error(MLXN_ERR_FORMAT, "gguf '%s': truncated: %s needs %llu bytes at offset %zu, file size %zu",
                              c->path, what, (unsigned long long)n, c->pos, c->size);
    return MLXN_OK;
}
static mlxn_status rd_u32(cursor *c, uint32_t *v, const char *what) {
    MLXN_TRY(need(c, 4, what));
    memcpy(v, c->base + c->pos, 4);
    c->pos += 4;
    return MLXN_OK;
}
static mlxn_status rd_u64(cursor *c, uint64_t *v, const char *what) {
    MLXN_TRY(need(c, 8, what));
    memcpy(v, c->base + c->pos, 8);
    c->pos += 8;
    return MLXN_OK;
}
/* A string: u64 length + bytes. Returns its byte offset and length. */
static mlxn_status rd_str(cursor *c, size_t *off, uint64_t *len, const char *what) {
    MLXN_TRY(rd_u64(c, len, what));
    MLXN_TRY(need(c, *len, what));
    *off = c->pos;
    c->pos += (size_t)*len;
    return MLXN_OK;
}
static char *dup_bytes(const uint8_t *p, uint64_t n) {
    if (n >= SIZE_MAX) return NULL;
    char *s = malloc((size_t)n + 1);
    if (!s) return NULL;
    memcpy(s, p, (size_t)n);
    s[n] = 0;
    return s;
}

static void gguf_free(mlxn_gguf *g) {
    if (!g) return;
    for (int64_t i = 0; i < g->n_kv; i++) {
        free(g->kv[i].key);
        free(g->kv[i].str);
        free(g->kv[i].elem_off);
    }
    free(g->kv);
    for (int64_t i = 0; i < g->n_t; i++) free(g->t[i].name);
    free(g->t);
    free(g->t_sorted);
    free(g->kv_sorted);
    mlxn_unmap_file(&g->map);
    free(g->path);
    free(g);
}

void mlxn_gguf_retain(mlxn_gguf *g) {
    if (g) atomic_fetch_add(&g->refcount, 1);
}
void mlxn_gguf_release(mlxn_gguf *g) {
    if (g && atomic_fetch_sub(&g->refcount, 1) == 1) gguf_free(g);
}
void mlxn_gguf_close(mlxn_gguf *g) { mlxn_gguf_release(g); }

/* Validate (and skip) a value of type `type` at the cursor. If kv is
 * non-NULL (top level) and the value is an array of strings/arrays, the element offsets
 * are stored there (malloc'd). */
static mlxn_status skip_value(cursor *c, uint32_t type, int depth, const char *key, gg_kv *kv) {
    if (type >= MLXN_GGUF_KV_TYPE_COUNT)
        return mlxn_set_error(MLXN_ERR_FORMAT, "gguf '%s': key '%s': unknown value type %u", c->path, key, type);
    if (type == MLXN_GGUF_KV_STRING) {
        size_t off;
        uint64_t len;
        return rd_str(c, &off, &len, "string value");
    }
    if (type != MLXN_GGUF_KV_ARRAY) {
        MLXN_TRY(need(c, k_kv_size[type], "value"));
        c->pos += k_kv_size[type];
        return MLXN_OK;
    }
    if (depth >= GG_MAX_DEPTH)
        return mlxn_set_error(MLXN_ERR_FORMAT, "gguf '%s': key '%s': arrays nested deeper than %d", c->path, key,
                              GG_MAX_DEPTH);
    uint32_t et;
    uint64_t count;
    MLXN_TRY(rd_u32(c, &et, "array element type"));
    MLXN_TRY(rd_u64(c, &count, "array count"));
    if (et >= MLXN_GGUF_KV_TYPE_COUNT)
        return mlxn_set_error(MLXN_ERR_FORMAT, "gguf '%s': key '%s': unknown array element type %u", c->path, key, et);
    if (kv) {
        kv->elem_type = (mlxn_gguf_kv_type)et;
        kv->count = count;
        kv->data_off = c->pos;
    }
    if (et != MLXN_GGUF_KV_STRING && et != MLXN_GGUF_KV_ARRAY) {
        uint64_t bytes;
        if (__builtin_mul_overflow(count, (uint64_t)k_kv_size[et], &bytes))
            return mlxn_set_error(MLXN_ERR_FORMAT, "gguf '%s': key '%s': array of %llu %s overflows", c->path, key,
                                  (unsigned long long)count, k_kv_name[et]);
        MLXN_TRY(need(c, bytes, "array data"));
        c->pos += (size_t)bytes;
        return MLXN_OK;
    }
    /* every string/array element takes at least 8 bytes */
    uint64_t min_el = et == MLXN_GGUF_KV_STRING ? 8 : 12;
    if (count > (c->size - c->pos) / min_el)
        return mlxn_set_error(MLXN_ERR_FORMAT, "gguf '%s': key '%s': array count %llu exceeds the remaining %zu bytes",
                              c->path, key, (unsigned long long)count, c->size - c->pos);
    uint64_t *offs = NULL;
    if (kv) {
        offs = malloc((size_t)(count ? count : 1) * sizeof *offs);
        if (!offs) return mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "gguf '%s': out of memory", c->path);
        kv->elem_off = offs;
    }
    for (uint64_t i = 0; i < count; i++) {
        if (offs) offs[i] = c->pos;
        MLXN_TRY(skip_value(c, et, depth + 1, key, NULL));
    }
    return MLXN_OK;
}

/* Sorting helpers (plain qsort over (key, index) pairs: portable). */
typedef struct name_idx {
    const char *name;
    uint64_t off;
    int64_t idx;
} name_idx;
static int cmp_name_idx(const void *a, const void *b) {
    return strcmp(((const name_idx *)a)->name, ((const name_idx *)b)->name);
}
static int cmp_off_idx(const void *a, const void *b) {
    uint64_t x = ((const name_idx *)a)->off, y = ((const name_idx *)b)->off;
    return x < y ? -1 : x > y ? 1 : 0;
}

static mlxn_status gguf_parse(mlxn_gguf *g) {
    cursor c = {g->base, g->size, 0, g->path};
    const char *P = g->path;
    if (g->size < 4 || memcmp(g->base, "GGUF", 4) != 0)
        return mlxn_set_error(MLXN_ERR_FORMAT, "gguf '%s': bad magic (not a GGUF file)", P);
    c.pos = 4;
    MLXN_TRY(rd_u32(&c, &g->version, "version"));
    if (g->version != 2 && g->version != 3) {
        if (g->version == 1)
            return mlxn_set_error(MLXN_ERR_UNSUPPORTED, "gguf '%s': version 1 is not supported (only 2 and 3)", P);
        return mlxn_set_error(MLXN_ERR_UNSUPPORTED, "gguf '%s': version %u is not supported (only 2 and 3%s)", P,
                              g->version, (g->version & 0xffff) == 0 ? "; big-endian file?" : "");
    }
    uint64_t n_t, n_kv;
    MLXN_TRY(rd_u64(&c, &n_t, "tensor count"));
    MLXN_TRY(rd_u64(&c, &n_kv, "metadata count"));
    if (n_kv > (c.size - c.pos) / 13)
        return mlxn_set_error(MLXN_ERR_FORMAT, "gguf '%s': metadata count %llu exceeds what the file can hold", P,
                              (unsigned long long)n_kv);
    g->kv = calloc((size_t)(n_kv ? n_kv : 1), sizeof *g->kv);
    g->kv_sorted = malloc((size_t)(n_kv ? n_kv : 1) * sizeof(int64_t));
    if (!g->kv || !g->kv_sorted) return mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "gguf '%s': out of memory", P);
    g->alignment = GG_DEFAULT_ALIGN;
    for (uint64_t i = 0; i < n_kv; i++) {
        gg_kv *kv = &g->kv[i];
        size_t koff;
        uint64_t klen;
        MLXN_TRY(rd_str(&c, &koff, &klen, "metadata key"));
        if (memchr(g->base + koff, 0, (size_t)klen))
            return mlxn_set_error(MLXN_ERR_FORMAT, "gguf '%s': metadata key %llu contains a NUL byte", P,
                                  (unsigned long long)i);
        if (!mlxn_utf8_valid((const char *)g->base + koff, (size_t)klen))
            return mlxn_set_error(MLXN_ERR_FORMAT, "gguf '%s': metadata key %llu is not valid UTF-8", P,
                                  (unsigned long long)i);
        if (!(kv->key = dup_bytes(g->base + koff, klen)))
            return mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "gguf '%s': out of memory", P);
        g->n_kv++;
        uint32_t type;
        MLXN_TRY(rd_u32(&c, &type, "metadata value type"));
        if (type >= MLXN_GGUF_KV_TYPE_COUNT)
            return mlxn_set_error(MLXN_ERR_FORMAT, "gguf '%s': key '%s': unknown value type %u", P, kv->key, type);
        kv->type = (mlxn_gguf_kv_type)type;
        kv->off = c.pos;
        if (type == MLXN_GGUF_KV_STRING) {
            size_t so;
            uint64_t sl;
            MLXN_TRY(rd_str(&c, &so, &sl, "string value"));
            kv->str_len = sl;
            if (!(kv->str = dup_bytes(g->base + so, sl)))
                return mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "gguf '%s': out of memory", P);
        } else {
            mlxn_status st = skip_value(&c, type, 0, kv->key, kv);
            if (st != MLXN_OK) {
                if (st == MLXN_ERR_FORMAT && !strstr(mlxn_last_error(), kv->key))
                    mlxn_error_prefix(st, "key '%s'", kv->key);
                return st;
            }
        }
    }
    {
        name_idx *tmp = malloc((size_t)(g->n_kv ? g->n_kv : 1) * sizeof *tmp);
        if (!tmp) return mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "gguf '%s': out of memory", P);
        for (int64_t i = 0; i < g->n_kv; i++) tmp[i] = (name_idx){g->kv[i].key, 0, i};
        qsort(tmp, (size_t)g->n_kv, sizeof *tmp, cmp_name_idx);
        for (int64_t i = 0; i < g->n_kv; i++) g->kv_sorted[i] = tmp[i].idx;
        free(tmp);
    }
    for (int64_t i = 1; i < g->n_kv; i++)
        if (strcmp(g->kv[g->kv_sorted[i]].key, g->kv[g->kv_sorted[i - 1]].key) == 0)
            return mlxn_set_error(MLXN_ERR_FORMAT, "gguf '%s': duplicate metadata key '%s'", P, g->kv[g->kv_sorted[i]].key);
    int64_t ai = mlxn_gguf_find_key(g, "general.alignment");
    if (ai >= 0) {
        const gg_kv *kv = &g->kv[ai];
        uint32_t a = 0;
        if (kv->type != MLXN_GGUF_KV_U32)
            return mlxn_set_error(MLXN_ERR_FORMAT, "gguf '%s': general.alignment has type %s, expected u32", P,
                                  k_kv_name[kv->type]);
        memcpy(&a, g->base + kv->off, 4);
        if (a == 0 || (a & (a - 1)))
            return mlxn_set_error(MLXN_ERR_FORMAT, "gguf '%s': general.alignment %u is not a power of two", P, a);
        g->alignment = a;
    }
    /* tensor infos */
    if (n_t > (c.size - c.pos) / 24)
        return mlxn_set_error(MLXN_ERR_FORMAT, "gguf '%s': tensor count %llu exceeds what the file can hold", P,
                              (unsigned long long)n_t);
    g->t = calloc((size_t)(n_t ? n_t : 1), sizeof *g->t);
    g->t_sorted = malloc((size_t)(n_t ? n_t : 1) * sizeof(int64_t));
    if (!g->t || !g->t_sorted) return mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "gguf '%s': out of memory", P);
    for (uint64_t i = 0; i < n_t; i++) {
        gg_tensor *t = &g->t[i];
        size_t no;
        uint64_t nl;
        MLXN_TRY(rd_str(&c, &no, &nl, "tensor name"));
        if (memchr(g->base + no, 0, (size_t)nl))
            return mlxn_set_error(MLXN_ERR_FORMAT, "gguf '%s': tensor %llu name contains a NUL byte", P,
                                  (unsigned long long)i);
        if (!mlxn_utf8_valid((const char *)g->base + no, (size_t)nl))
            return mlxn_set_error(MLXN_ERR_FORMAT, "gguf '%s': tensor %llu name is not valid UTF-8", P,
                                  (unsigned long long)i);
        if (!(t->name = dup_bytes(g->base + no, nl)))
            return mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "gguf '%s': out of memory", P);
        g->n_t++;
        uint32_t nd;
        MLXN_TRY(rd_u32(&c, &nd, "tensor n_dims"));
        if (nd > 4)
            return mlxn_set_error(MLXN_ERR_FORMAT, "gguf '%s': tensor '%s' n_dims %u > 4", P, t->name, nd);
        t->n_dims = (int)nd;
        uint64_t dims[4] = {1, 1, 1, 1};
        for (uint32_t d = 0; d < nd; d++) {
            MLXN_TRY(rd_u64(&c, &dims[d], "tensor dims"));
            if (dims[d] > (uint64_t)INT64_MAX)
                return mlxn_set_error(MLXN_ERR_FORMAT, "gguf '%s': tensor '%s' dim %u = %llu is negative or too large", P,
                                      t->name, d, (unsigned long long)dims[d]);
        }
        for (int d = 0; d < 4; d++) t->shape[d] = 1;
        for (uint32_t d = 0; d < nd; d++) t->shape[nd - 1 - d] = (int64_t)dims[d];
        uint32_t type;
        MLXN_TRY(rd_u32(&c, &type, "tensor type"));
        t->type = (mlxn_gguf_type)type;
        MLXN_TRY(rd_u64(&c, &t->offset, "tensor offset"));
        size_t nb;
        mlxn_status st = mlxn_gguf_tensor_nbytes(t->type, t->n_dims, t->shape, &nb);
        if (st != MLXN_OK) return mlxn_error_prefix(st, "gguf '%s': tensor '%s'", P, t->name);
        t->nbytes = nb;
        if (t->offset % g->alignment)
            return mlxn_set_error(MLXN_ERR_FORMAT, "gguf '%s': tensor '%s' offset %llu is not a multiple of the alignment %llu",
                                  P, t->name, (unsigned long long)t->offset, (unsigned long long)g->alignment);
    }
    {
        name_idx *tmp = malloc((size_t)(g->n_t ? g->n_t : 1) * sizeof *tmp);
        if (!tmp) return mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "gguf '%s': out of memory", P);
        for (int64_t i = 0; i < g->n_t; i++) tmp[i] = (name_idx){g->t[i].name, 0, i};
        qsort(tmp, (size_t)g->n_t, sizeof *tmp, cmp_name_idx);
        for (int64_t i = 0; i < g->n_t; i++) g->t_sorted[i] = tmp[i].idx;
        free(tmp);
    }
    for (int64_t i = 1; i < g->n_t; i++)
        if (strcmp(g->t[g->t_sorted[i]].name, g->t[g->t_sorted[i - 1]].name) == 0)
            return mlxn_set_error(MLXN_ERR_FORMAT, "gguf '%s': duplicate tensor name '%s'", P, g->t[g->t_sorted[i]].name);
    /* data section */
    uint64_t pos = c.pos, al = g->alignment;
    g->data_offset = (pos + al - 1) / al * al;
    if (g->n_t == 0) return MLXN_OK;
    if (g->data_offset > g->size)
        return mlxn_set_error(MLXN_ERR_FORMAT, "gguf '%s': data section at %llu is past the end of the file (%zu bytes)", P,
                              (unsigned long long)g->data_offset, g->size);
    uint64_t avail = g->size - g->data_offset;
    name_idx *ord = malloc((size_t)g->n_t * sizeof *ord);
    if (!ord) return mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "gguf '%s': out of memory", P);
    for (int64_t i = 0; i < g->n_t; i++) ord[i] = (name_idx){g->t[i].name, g->t[i].offset, i};
    qsort(ord, (size_t)g->n_t, sizeof *ord, cmp_off_idx);
    mlxn_status rc = MLXN_OK;
    uint64_t end_prev = 0;
    const char *prev = NULL;
    for (int64_t k = 0; k < g->n_t && rc == MLXN_OK; k++) {
        const gg_tensor *t = &g->t[ord[k].idx];
        if (t->offset > avail || t->nbytes > avail - t->offset)
            rc = mlxn_set_error(MLXN_ERR_FORMAT,
                                "gguf '%s': tensor '%s' data [%llu, %llu) runs past the end of the file (data section "
                                "holds %llu bytes)",
                                P, t->name, (unsigned long long)t->offset, (unsigned long long)(t->offset + t->nbytes),
                                (unsigned long long)avail);
        else if (prev && t->offset < end_prev)
            rc = mlxn_set_error(MLXN_ERR_FORMAT, "gguf '%s': tensor '%s' data at %llu overlaps tensor '%s' ending at %llu",
                                P, t->name, (unsigned long long)t->offset, prev, (unsigned long long)end_prev);
        end_prev = t->offset + t->nbytes;
        prev = t->name;
    }
    free(ord);
    return rc;
}

mlxn_status mlxn_gguf_tensor_nbytes(mlxn_gguf_type t, int n_dims, const int64_t *shape, size_t *out) {
    int64_t bv, bb;
    mlxn_gguf_type_block(t, &bv, &bb);
    if (bv <= 0 || bb <= 0) return mlxn_set_error(MLXN_ERR_UNSUPPORTED, "unknown ggml type %u", (unsigned)t);
    char sb[MLXN_SHAPE_STR_CAP];
    int64_t row = n_dims ? shape[n_dims - 1] : 1;
    uint64_t total;
    if (row < 0) return mlxn_set_error(MLXN_ERR_FORMAT, "negative dim in shape %s", mlxn_shape_str(sb, sizeof sb, n_dims, shape));
    if (row % bv)
        return mlxn_set_error(MLXN_ERR_FORMAT, "row length %lld is not a multiple of the %s block size %lld",
                              (long long)row, mlxn_gguf_type_name(t), (long long)bv);
    total = (uint64_t)(row / bv) * (uint64_t)bb; /* row/bv <= 2^63/32, times bb <= 292: fits? check */
    if (row / bv > 0 && total / (uint64_t)bb != (uint64_t)(row / bv)) goto overflow;
    {
        uint64_t numel = (uint64_t)row;
        for (int d = 0; d < n_dims - 1; d++) {
            if (shape[d] < 0)
                return mlxn_set_error(MLXN_ERR_FORMAT, "negative dim in shape %s", mlxn_shape_str(sb, sizeof sb, n_dims, shape));
            if (__builtin_mul_overflow(total, (uint64_t)shape[d], &total)) goto overflow;
            if (__builtin_mul_overflow(numel, (uint64_t)shape[d], &numel)) goto overflow;
        }
        if (numel > (uint64_t)INT64_MAX || total > (uint64_t)SIZE_MAX) goto overflow;
        /* a zero dim makes numel 0, but a reader multiplying the dims in
         * another order must not overflow either: bound the product of the
         * non-zero dims too */
        uint64_t nz = 1;
        for (int d = 0; d < n_dims; d++)
            if (shape[d] > 0 && __builtin_mul_overflow(nz, (uint64_t)shape[d], &nz)) goto overflow;
        if (nz > (uint64_t)INT64_MAX) goto overflow;
    }
    *out = (size_t)total;
    return MLXN_OK;
overflow:
    return mlxn_set_error(MLXN_ERR_FORMAT, "shape %s: dims product overflows", mlxn_shape_str(sb, sizeof sb, n_dims, shape));
}

static mlxn_status gguf_open_common(mlxn_gguf *g, mlxn_gguf **out) {
    mlxn_status rc = gguf_parse(g);
    if (rc != MLXN_OK) {
        gguf_free(g);
        return rc;
    }
    *out = g;
    return MLXN_OK;
}

mlxn_status mlxn_gguf_open(const char *path, mlxn_gguf **out) {
    if (!path || !out) return mlxn_set_error(MLXN_ERR_INVALID_ARG, "gguf: path and out must not be NULL");
    *out = NULL;
    mlxn_gguf *g = calloc(1, sizeof *g);
    if (!g || !(g->path = strdup(path))) {
        free(g);
        return mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "gguf '%s': out of memory", path);
    }
    atomic_init(&g->refcount, 1);
    mlxn_status rc = mlxn_map_file("gguf", path, &g->map);
    if (rc != MLXN_OK) {
        gguf_free(g);
        return rc;
    }
    g->base = g->map.base;
    g->size = g->map.size;
    return gguf_open_common(g, out);
}

mlxn_status mlxn_gguf_open_memory(const void *data, size_t size, mlxn_gguf **out) {
    if (!out || (!data && size)) return mlxn_set_error(MLXN_ERR_INVALID_ARG, "gguf: data and out must not be NULL");
    *out = NULL;
    mlxn_gguf *g = calloc(1, sizeof *g);
    if (!g || !(g->path = strdup("<memory>"))) {
        free(g);
        return mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "gguf: out of memory");
    }
    atomic_init(&g->refcount, 1);
    g->base = data;
    g->size = size;
    return gguf_open_common(g, out);
}

const char *mlxn_gguf_path(const mlxn_gguf *g) { return g ? g->path : NULL; }
uint32_t mlxn_gguf_version(const mlxn_gguf *g) { return g ? g->version : 0; }
uint64_t mlxn_gguf_alignment(const mlxn_gguf *g) { return g ? g->alignment : 0; }
uint64_t mlxn_gguf_data_offset(const mlxn_gguf *g) { return g ? g->data_offset : 0; }
size_t mlxn_gguf_file_size(const mlxn_gguf *g) { return g ? g->size : 0; }
const void *mlxn_gguf_base(const mlxn_gguf *g) { return g ? g->base : NULL; }
int64_t mlxn_gguf_n_kv(const mlxn_gguf *g) { return g ? g->n_kv : 0; }

int64_t mlxn_gguf_find_key(const mlxn_gguf *g, const char *key) {
    if (!g || !key) return -1;
    int64_t lo = 0, hi = g->n_kv - 1;
    while (lo <= hi) {
        int64_t mid = lo + (hi - lo) / 2;
        int c = strcmp(g->kv[g->kv_sorted[mid]].key, key);
        if (c == 0) return g->kv_sorted[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid - 1;
    }
    return -1;
}
const char *mlxn_gguf_key(const mlxn_gguf *g, int64_t i) { return (g && i >= 0 && i < g->n_kv) ? g->kv[i].key : NULL; }
mlxn_gguf_kv_type mlxn_gguf_kv_type_of(const mlxn_gguf *g, int64_t i) {
    return (g && i >= 0 && i < g->n_kv) ? g->kv[i].type : (mlxn_gguf_kv_type)-1;
}

static mlxn_status get_kv(const mlxn_gguf *g, const char *key, const gg_kv **kv) {
    if (!g || !key) return mlxn_set_error(MLXN_ERR_INVALID_ARG, "gguf: NULL argument");
    int64_t i = mlxn_gguf_find_key(g, key);
    if (i < 0) return mlxn_set_error(MLXN_ERR_NOT_FOUND, "gguf '%s': key '%s' not found", g->path, key);
    *kv = &g->kv[i];
    return MLXN_OK;
}
static mlxn_status wrong_type(const mlxn_gguf *g, const gg_kv *kv, const char *want) {
    return mlxn_set_error(MLXN_ERR_FORMAT, "gguf '%s': key '%s' has type %s, expected %s", g->path, kv->key,
                          k_kv_name[kv->type], want);
}

/* Read an integer kv as (is_signed, value). */
static int read_int(const mlxn_gguf *g, const gg_kv *kv, int *neg, uint64_t *mag) {
    const uint8_t *p = g->base + kv->off;
    int64_t s = 0;
    uint64_t u = 0;
    int is_s = 0;
    switch (kv->type) {
    case MLXN_GGUF_KV_U8: u = p[0]; break;
    case MLXN_GGUF_KV_BOOL: u = p[0] != 0; break;
    case MLXN_GGUF_KV_I8: { int8_t v; memcpy(&v, p, 1); s = v; is_s = 1; } break;
    case MLXN_GGUF_KV_U16: { uint16_t v; memcpy(&v, p, 2); u = v; } break;
    case MLXN_GGUF_KV_I16: { int16_t v; memcpy(&v, p, 2); s = v; is_s = 1; } break;
    case MLXN_GGUF_KV_U32: { uint32_t v; memcpy(&v, p, 4); u = v; } break;
    case MLXN_GGUF_KV_I32: { int32_t v; memcpy(&v, p, 4); s = v; is_s = 1; } break;
    case MLXN_GGUF_KV_U64: memcpy(&u, p, 8); break;
    case MLXN_GGUF_KV_I64: memcpy(&s, p, 8); is_s = 1; break;
    default: return 0;
    }
    if (is_s && s < 0) {
        *neg = 1;
        *mag = (uint64_t)(-(s + 1)) + 1;
    } else {
        *neg = 0;
        *mag = is_s ? (uint64_t)s : u;
    }
    return 1;
}

static mlxn_status get_int(const mlxn_gguf *g, const char *key, int64_t lo, uint64_t hi, const char *want,
                           int *neg, uint64_t *mag) {
    const gg_kv *kv;
    MLXN_TRY(get_kv(g, key, &kv));
    if (!read_int(g, kv, neg, mag)) return wrong_type(g, kv, want);
    if ((*neg && (lo >= 0 || *mag > (uint64_t)(-(lo + 1)) + 1)) || (!*neg && *mag > hi))
        return mlxn_set_error(MLXN_ERR_RANGE, "gguf '%s': key '%s' value %s%llu does not fit %s", g->path, key,
                              *neg ? "-" : "", (unsigned long long)*mag, want);
    return MLXN_OK;
}

mlxn_status mlxn_gguf_get_u32(const mlxn_gguf *g, const char *key, uint32_t *out) {
    int n = 0; uint64_t m = 0;
    MLXN_TRY(get_int(g, key, 0, UINT32_MAX, "u32", &n, &m));
    *out = (uint32_t)m;
    return MLXN_OK;
}
mlxn_status mlxn_gguf_get_u64(const mlxn_gguf *g, const char *key, uint64_t *out) {
    int n = 0; uint64_t m = 0;
    MLXN_TRY(get_int(g, key, 0, UINT64_MAX, "u64", &n, &m));
    *out = m;
    return MLXN_OK;
}
mlxn_status mlxn_gguf_get_i32(const mlxn_gguf *g, const char *key, int32_t *out) {
    int n = 0; uint64_t m = 0;
    MLXN_TRY(get_int(g, key, INT32_MIN, INT32_MAX, "i32", &n, &m));
    *out = n ? (int32_t)(-(int64_t)(m - 1) - 1) : (int32_t)m;
    return MLXN_OK;
}
mlxn_status mlxn_gguf_get_i64(const mlxn_gguf *g, const char *key, int64_t *out) {
    int n = 0; uint64_t m = 0;
    MLXN_TRY(get_int(g, key, INT64_MIN, INT64_MAX, "i64", &n, &m));
    *out = n ? -(int64_t)(m - 1) - 1 : (int64_t)m;
    return MLXN_OK;
}
mlxn_status mlxn_gguf_get_f32(const mlxn_gguf *g, const char *key, float *out) {
    const gg_kv *kv;
    MLXN_TRY(get_kv(g, key, &kv));
    const uint8_t *p = g->base + kv->off;
    if (kv->type == MLXN_GGUF_KV_F32) { memcpy(out, p, 4); return MLXN_OK; }
    if (kv->type == MLXN_GGUF_KV_F64) { double d; memcpy(&d, p, 8); *out = (float)d; return MLXN_OK; }
    int n = 0; uint64_t m = 0;
    if (kv->type != MLXN_GGUF_KV_BOOL && read_int(g, kv, &n, &m)) {
        *out = n ? -(float)m : (float)m;
        return MLXN_OK;
    }
    return wrong_type(g, kv, "f32");
}
mlxn_status mlxn_gguf_get_bool(const mlxn_gguf *g, const char *key, int *out) {
    const gg_kv *kv;
    MLXN_TRY(get_kv(g, key, &kv));
    if (kv->type != MLXN_GGUF_KV_BOOL) return wrong_type(g, kv, "bool");
    *out = g->base[kv->off] != 0;
    return MLXN_OK;
}
mlxn_status mlxn_gguf_get_str(const mlxn_gguf *g, const char *key, const char **out, uint64_t *len) {
    const gg_kv *kv;
    MLXN_TRY(get_kv(g, key, &kv));
    if (kv->type != MLXN_GGUF_KV_STRING) return wrong_type(g, kv, "string");
    *out = kv->str;
    if (len) *len = kv->str_len;
    return MLXN_OK;
}

mlxn_status mlxn_gguf_get_arr(const mlxn_gguf *g, const char *key, mlxn_gguf_kv_type *elem_type, uint64_t *count,
                              const void **data) {
    const gg_kv *kv;
    MLXN_TRY(get_kv(g, key, &kv));
    if (kv->type != MLXN_GGUF_KV_ARRAY) return wrong_type(g, kv, "array");
    if (elem_type) *elem_type = kv->elem_type;
    if (count) *count = kv->count;
    if (data)
        *data = (kv->elem_type == MLXN_GGUF_KV_STRING || kv->elem_type == MLXN_GGUF_KV_ARRAY) ? NULL
                                                                                           : g->base + kv->data_off;
    return MLXN_OK;
}

mlxn_status mlxn_gguf_get_arr_str(const mlxn_gguf *g, const char *key, uint64_t i, const char **s, uint64_t *len) {
    const gg_kv *kv;
    MLXN_TRY(get_kv(g, key, &kv));
    if (kv->type != MLXN_GGUF_KV_ARRAY || kv->elem_type != MLXN_GGUF_KV_STRING)
        return mlxn_set_error(MLXN_ERR_FORMAT, "gguf '%s': key '%s' is not an array of strings", g->path, key);
    if (i >= kv->count)
        return mlxn_set_error(MLXN_ERR_RANGE, "gguf '%s': key '%s': index %llu out of range (%llu strings)", g->path, key,
                              (unsigned long long)i, (unsigned long long)kv->count);
    uint64_t l;
    memcpy(&l, g->base + kv->elem_off[i], 8);
    *s = (const char *)g->base + kv->elem_off[i] + 8;
    if (len) *len = l;
    return MLXN_OK;
}

mlxn_status mlxn_gguf_get_arr_arr(const mlxn_gguf *g, const char *key, uint64_t i, mlxn_gguf_kv_type *elem_type,
                                  uint64_t *count, const void **data) {
    const gg_kv *kv;
    MLXN_TRY(get_kv(g, key, &kv));
    if (kv->type != MLXN_GGUF_KV_ARRAY || kv->elem_type != MLXN_GGUF_KV_ARRAY)
        return mlxn_set_error(MLXN_ERR_FORMAT, "gguf '%s': key '%s' is not an array of arrays", g->path, key);
    if (i >= kv->count)
        return mlxn_set_error(MLXN_ERR_RANGE, "gguf '%s': key '%s': index %llu out of range (%llu arrays)", g->path, key,
                              (unsigned long long)i, (unsigned long long)kv->count);
    uint32_t et;
    uint64_t n;
    memcpy(&et, g->base + kv->elem_off[i], 4);
    memcpy(&n, g->base + kv->elem_off[i] + 4, 8);
    if (elem_type) *elem_type = (mlxn_gguf_kv_type)et;
    if (count) *count = n;
    if (data)
        *data = (et == MLXN_GGUF_KV_STRING || et == MLXN_GGUF_KV_ARRAY) ? NULL : g->base + kv->elem_off[i] + 12;
    return MLXN_OK;
}

int64_t mlxn_gguf_n_tensors(const mlxn_gguf *g) { return g ? g->n_t : 0; }

mlxn_status mlxn_gguf_tensor(const mlxn_gguf *g, int64_t i, mlxn_gguf_tensor_info *out) {
    if (!g || !out) return mlxn_set_error(MLXN_ERR_INVALID_ARG, "gguf: NULL argument");
    if (i < 0 || i >= g->n_t)
        return mlxn_set_error(MLXN_ERR_RANGE, "gguf '%s': tensor index %lld out of range [0, %lld)", g->path,
                              (long long)i, (long long)g->n_t);
    const gg_tensor *t = &g->t[i];
    out->name = t->name;
    out->type = t->type;
    out->n_dims = t->n_dims;
    memcpy(out->shape, t->shape, sizeof out->shape);
    out->offset = t->offset;
    out->nbytes = t->nbytes;
    out->data = g->base + g->data_offset + t->offset;
    return MLXN_OK;
}

int64_t mlxn_gguf_find_tensor(const mlxn_gguf *g, const char *name) {
    if (!g || !name) return -1;
    int64_t lo = 0, hi = g->n_t - 1;
    while (lo <= hi) {
        int64_t mid = lo + (hi - lo) / 2;
        int c = strcmp(g->t[g->t_sorted[mid]].name, name);
        if (c == 0) return g->t_sorted[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid - 1;
    }
    return -1;
}

/* ---------------------------------------------------------------- writer */

typedef struct gw_kv {
    char *key;
    uint32_t type;
    uint8_t *payload;
    size_t bytes;
} gw_kv;

typedef struct gw_tensor {
    char *name;
    mlxn_gguf_type type;
    int n_dims;
    int64_t shape[4];
    const void *data;
    size_t nbytes;
} gw_tensor;

struct mlxn_gguf_writer {
    uint32_t alignment, version;
    gw_kv *kv;
    size_t n_kv, cap_kv;
    gw_tensor *t;
    size_t n_t, cap_t;
};

mlxn_status mlxn_gguf_writer_create(uint32_t alignment, mlxn_gguf_writer **out) {
    if (!out) return mlxn_set_error(MLXN_ERR_INVALID_ARG, "gguf writer: out is NULL");
    *out = NULL;
    if (alignment == 0) alignment = GG_DEFAULT_ALIGN;
    if (alignment & (alignment - 1))
        return mlxn_set_error(MLXN_ERR_INVALID_ARG, "gguf writer: alignment %u is not a power of two", alignment);
    mlxn_gguf_writer *w = calloc(1, sizeof *w);
    if (!w) return mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "gguf writer: out of memory");
    w->alignment = alignment;
    w->version = 3;
    *out = w;
    return MLXN_OK;
}

void mlxn_gguf_writer_free(mlxn_gguf_writer *w) {
    if (!w) return;
    for (size_t i = 0; i < w->n_kv; i++) {
        free(w->kv[i].key);
        free(w->kv[i].payload);
    }
    for (size_t i = 0; i < w->n_t; i++) free(w->t[i].name);
    free(w->kv);
    free(w->t);
    free(w);
}

mlxn_status mlxn_gguf_writer_set_version(mlxn_gguf_writer *w, uint32_t version) {
    if (!w || (version != 2 && version != 3))
        return mlxn_set_error(MLXN_ERR_INVALID_ARG, "gguf writer: version %u not supported (2 or 3)", version);
    w->version = version;
    return MLXN_OK;
}

mlxn_status mlxn_gguf_writer_add_raw(mlxn_gguf_writer *w, const char *key, mlxn_gguf_kv_type type,
                                     const void *payload, size_t payload_bytes) {
    if (!w || !key || (!payload && payload_bytes))
        return mlxn_set_error(MLXN_ERR_INVALID_ARG, "gguf writer: NULL argument");
    if ((unsigned)type >= MLXN_GGUF_KV_TYPE_COUNT)
        return mlxn_set_error(MLXN_ERR_INVALID_ARG, "gguf writer: key '%s': invalid type %d", key, (int)type);
    for (size_t i = 0; i < w->n_kv; i++)
        if (strcmp(w->kv[i].key, key) == 0)
            return mlxn_set_error(MLXN_ERR_INVALID_ARG, "gguf writer: duplicate key '%s'", key);
    if (w->n_kv == w->cap_kv) {
        size_t nc = w->cap_kv ? w->cap_kv * 2 : 16;
        gw_kv *n = realloc(w->kv, nc * sizeof *n);
        if (!n) return mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "gguf writer: out of memory");
        w->kv = n;
        w->cap_kv = nc;
    }
    gw_kv *kv = &w->kv[w->n_kv];
    kv->key = strdup(key);
    kv->payload = malloc(payload_bytes ? payload_bytes : 1);
    if (!kv->key || !kv->payload) {
        free(kv->key);
        free(kv->payload);
        return mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "gguf writer: out of memory");
    }
    if (payload_bytes) memcpy(kv->payload, payload, payload_bytes);
    kv->bytes = payload_bytes;
    kv->type = (uint32_t)type;
    w->n_kv++;
    return MLXN_OK;
}

#define GW_SCALAR(fn, ctype, kt)                                                       \
    mlxn_status fn(mlxn_gguf_writer *w, const char *key, ctype v) {                   \
        return mlxn_gguf_writer_add_raw(w, key, kt, &v, sizeof v);                     \
    }
GW_SCALAR(mlxn_gguf_writer_add_u8, uint8_t, MLXN_GGUF_KV_U8)
GW_SCALAR(mlxn_gguf_writer_add_i8, int8_t, MLXN_GGUF_KV_I8)
GW_SCALAR(mlxn_gguf_writer_add_u16, uint16_t, MLXN_GGUF_KV_U16)
GW_SCALAR(mlxn_gguf_writer_add_i16, int16_t, MLXN_GGUF_KV_I16)
GW_SCALAR(mlxn_gguf_writer_add_u32, uint32_t, MLXN_GGUF_KV_U32)
GW_SCALAR(mlxn_gguf_writer_add_i32, int32_t, MLXN_GGUF_KV_I32)
GW_SCALAR(mlxn_gguf_writer_add_u64, uint64_t, MLXN_GGUF_KV_U64)
GW_SCALAR(mlxn_gguf_writer_add_i64, int64_t, MLXN_GGUF_KV_I64)
GW_SCALAR(mlxn_gguf_writer_add_f32, float, MLXN_GGUF_KV_F32)
GW_SCALAR(mlxn_gguf_writer_add_f64, double, MLXN_GGUF_KV_F64)

mlxn_status mlxn_gguf_writer_add_bool(mlxn_gguf_writer *w, const char *key, int v) {
    uint8_t b = v != 0;
    return mlxn_gguf_writer_add_raw(w, key, MLXN_GGUF_KV_BOOL, &b, 1);
}

mlxn_status mlxn_gguf_writer_add_str(mlxn_gguf_writer *w, const char *key, const char *v) {
    if (!v) return mlxn_set_error(MLXN_ERR_INVALID_ARG, "gguf writer: key '%s': NULL string", key ? key : "?");
    uint64_t n = strlen(v);
    uint8_t *p = malloc(8 + n);
    if (!p) return mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "gguf writer: out of memory");
    memcpy(p, &n, 8);
    memcpy(p + 8, v, n);
    mlxn_status st = mlxn_gguf_writer_add_raw(w, key, MLXN_GGUF_KV_STRING, p, 8 + n);
    free(p);
    return st;
}

mlxn_status mlxn_gguf_writer_add_arr(mlxn_gguf_writer *w, const char *key, mlxn_gguf_kv_type et, const void *data,
                                     uint64_t count) {
    if ((unsigned)et >= MLXN_GGUF_KV_TYPE_COUNT || et == MLXN_GGUF_KV_STRING || et == MLXN_GGUF_KV_ARRAY)
        return mlxn_set_error(MLXN_ERR_INVALID_ARG, "gguf writer: key '%s': add_arr takes scalar element types",
                              key ? key : "?");
    size_t bytes;
    if (__builtin_mul_overflow((size_t)count, k_kv_size[et], &bytes) || bytes > SIZE_MAX - 12)
        return mlxn_set_error(MLXN_ERR_INVALID_ARG, "gguf writer: key '%s': array too large", key ? key : "?");
    uint8_t *p = malloc(12 + bytes);
    if (!p) return mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "gguf writer: out of memory");
    uint32_t t = (uint32_t)et;
    memcpy(p, &t, 4);
    memcpy(p + 4, &count, 8);
    if (bytes) memcpy(p + 12, data, bytes);
    mlxn_status st = mlxn_gguf_writer_add_raw(w, key, MLXN_GGUF_KV_ARRAY, p, 12 + bytes);
    free(p);
    return st;
}

mlxn_status mlxn_gguf_writer_add_arr_str(mlxn_gguf_writer *w, const char *key, const char *const *strs,
                                         const size_t *lens, uint64_t count) {
    size_t bytes = 12;
    for (uint64_t i = 0; i < count; i++) {
        size_t l = lens ? lens[i] : strlen(strs[i]);
        if (__builtin_add_overflow(bytes, 8 + l, &bytes))
            return mlxn_set_error(MLXN_ERR_INVALID_ARG, "gguf writer: key '%s': array too large", key ? key : "?");
    }
    uint8_t *p = malloc(bytes);
    if (!p) return mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "gguf writer: out of memory");
    uint32_t t = MLXN_GGUF_KV_STRING;
    memcpy(p, &t, 4);
    memcpy(p + 4, &count, 8);
    size_t o = 12;
    for (uint64_t i = 0; i < count; i++) {
        uint64_t l = lens ? lens[i] : strlen(strs[i]);
        memcpy(p + o, &l, 8);
        if (l) memcpy(p + o + 8, strs[i], (size_t)l);
        o += 8 + (size_t)l;
    }
    mlxn_status st = mlxn_gguf_writer_add_raw(w, key, MLXN_GGUF_KV_ARRAY, p, bytes);
    free(p);
    return st;
}

mlxn_status mlxn_gguf_writer_add_tensor(mlxn_gguf_writer *w, const char *name, mlxn_gguf_type type, int n_dims,
                                        const int64_t *shape, const void *data, size_t nbytes) {
    if (!w || !name || (n_dims && !shape)) return mlxn_set_error(MLXN_ERR_INVALID_ARG, "gguf writer: NULL argument");
    if (n_dims < 0 || n_dims > 4)
        return mlxn_set_error(MLXN_ERR_INVALID_ARG, "gguf writer: tensor '%s': n_dims %d not in [0, 4]", name, n_dims);
    size_t need_b;
    mlxn_status st = mlxn_gguf_tensor_nbytes(type, n_dims, shape, &need_b);
    if (st != MLXN_OK) return mlxn_error_prefix(MLXN_ERR_INVALID_ARG, "gguf writer: tensor '%s'", name);
    if (need_b != nbytes)
        return mlxn_set_error(MLXN_ERR_INVALID_ARG, "gguf writer: tensor '%s': %zu bytes given, %s needs %zu", name, nbytes,
                              mlxn_gguf_type_name(type), need_b);
    if (nbytes && !data) return mlxn_set_error(MLXN_ERR_INVALID_ARG, "gguf writer: tensor '%s': data is NULL", name);
    for (size_t i = 0; i < w->n_t; i++)
        if (strcmp(w->t[i].name, name) == 0)
            return mlxn_set_error(MLXN_ERR_INVALID_ARG, "gguf writer: duplicate tensor name '%s'", name);
    if (w->n_t == w->cap_t) {
        size_t nc = w->cap_t ? w->cap_t * 2 : 16;
        gw_tensor *n = realloc(w->t, nc * sizeof *n);
        if (!n) return mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "gguf writer: out of memory");
        w->t = n;
        w->cap_t = nc;
    }
    gw_tensor *t = &w->t[w->n_t];
    if (!(t->name = strdup(name))) return mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "gguf writer: out of memory");
    t->type = type;
    t->n_dims = n_dims;
    for (int d = 0; d < 4; d++) t->shape[d] = d < n_dims ? shape[d] : 1;
    t->data = data;
    t->nbytes = nbytes;
    w->n_t++;
    return MLXN_OK;
}

static int w_str(FILE *f, const char *s) {
    uint64_t n = strlen(s);
    return fwrite(&n, 8, 1, f) == 1 && fwrite(s, 1, (size_t)n, f) == n;
}
static int w_pad(FILE *f, uint64_t *pos, uint64_t al) {
    while (*pos % al) {
        if (fputc(0, f) == EOF) return 0;
        (*pos)++;
    }
    return 1;
}

mlxn_status mlxn_gguf_writer_write(mlxn_gguf_writer *w, const char *path) {
    if (!w || !path) return mlxn_set_error(MLXN_ERR_INVALID_ARG, "gguf writer: NULL argument");
    int add_align = w->alignment != GG_DEFAULT_ALIGN;
    for (size_t i = 0; i < w->n_kv; i++)
        if (strcmp(w->kv[i].key, "general.alignment") == 0) {
            uint32_t a = 0;
            if (w->kv[i].type != MLXN_GGUF_KV_U32 || (memcpy(&a, w->kv[i].payload, 4), a != w->alignment))
                return mlxn_set_error(MLXN_ERR_INVALID_ARG,
                                      "gguf writer '%s': general.alignment metadata disagrees with the writer alignment %u",
                                      path, w->alignment);
            add_align = 0;
        }
    FILE *f = fopen(path, "wb");
    if (!f) return mlxn_set_error(MLXN_ERR_IO, "gguf writer '%s': cannot create file", path);
    uint64_t nt = w->n_t, nkv = w->n_kv + (size_t)add_align, pos = 0;
    int ok = fwrite("GGUF", 1, 4, f) == 4 && fwrite(&w->version, 4, 1, f) == 1 && fwrite(&nt, 8, 1, f) == 1 &&
             fwrite(&nkv, 8, 1, f) == 1;
    pos = 24;
    if (ok && add_align) {
        uint32_t t = MLXN_GGUF_KV_U32;
        ok = w_str(f, "general.alignment") && fwrite(&t, 4, 1, f) == 1 && fwrite(&w->alignment, 4, 1, f) == 1;
        pos += 8 + strlen("general.alignment") + 8;
    }
    for (size_t i = 0; ok && i < w->n_kv; i++) {
        ok = w_str(f, w->kv[i].key) && fwrite(&w->kv[i].type, 4, 1, f) == 1 &&
             (w->kv[i].bytes == 0 || fwrite(w->kv[i].payload, 1, w->kv[i].bytes, f) == w->kv[i].bytes);
        pos += 8 + strlen(w->kv[i].key) + 4 + w->kv[i].bytes;
    }
    uint64_t off = 0;
    for (size_t i = 0; ok && i < w->n_t; i++) {
        const gw_tensor *t = &w->t[i];
        uint32_t nd = (uint32_t)t->n_dims, ty = (uint32_t)t->type;
        ok = w_str(f, t->name) && fwrite(&nd, 4, 1, f) == 1;
        for (int d = t->n_dims - 1; ok && d >= 0; d--) {
            uint64_t v = (uint64_t)t->shape[d];
            ok = fwrite(&v, 8, 1, f) == 1;
        }
        ok = ok && fwrite(&ty, 4, 1, f) == 1 && fwrite(&off, 8, 1, f) == 1;
        pos += 8 + strlen(t->name) + 4 + 8 * (uint64_t)t->n_dims + 4 + 8;
        off += t->nbytes;
        off = (off + w->alignment - 1) / w->alignment * w->alignment;
    }
    if (ok && w->n_t) ok = w_pad(f, &pos, w->alignment);
    for (size_t i = 0; ok && i < w->n_t; i++) {
        const gw_tensor *t = &w->t[i];
        ok = t->nbytes == 0 || fwrite(t->data, 1, t->nbytes, f) == t->nbytes;
        pos += t->nbytes;
        if (ok) ok = w_pad(f, &pos, w->alignment);
    }
    if (fclose(f) != 0) ok = 0;
    if (!ok) return mlxn_set_error(MLXN_ERR_IO, "gguf writer '%s': write failed", path);
    return MLXN_OK;
}
