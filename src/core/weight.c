/* weight.c — the weight object: one logical matrix W [N, K] stored dense
 * (f32/f16/bf16), as an MLX affine triple (packed u32 + scales + biases) or
 * as rows of GGUF blocks. Creation validates the format parameters and that
 * every buffer is large enough, and retains the buffers. */
#include "core/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int gguf_matmul_type(mlxn_gguf_type t) {
    switch (t) {
    case MLXN_GGUF_Q4_0: case MLXN_GGUF_Q4_1: case MLXN_GGUF_Q5_0: case MLXN_GGUF_Q5_1: case MLXN_GGUF_Q8_0:
    case MLXN_GGUF_Q2_K: case MLXN_GGUF_Q3_K: case MLXN_GGUF_Q4_K: case MLXN_GGUF_Q5_K: case MLXN_GGUF_Q6_K:
        return 1;
    default: return 0;
    }
}

/* Bytes per row; 0 if the desc's format parameters are invalid. */
static int64_t desc_row_bytes(const mlxn_weight_desc *d) {
    switch (d->format) {
    case MLXN_WEIGHT_DENSE:
        return d->data ? d->cols * (int64_t)mlxn_dtype_size(d->data->dtype) : 0;
    case MLXN_WEIGHT_MLX_AFFINE:
        return d->cols * d->bits / 8;
    case MLXN_WEIGHT_GGUF: {
        int64_t bv, bb;
        mlxn_gguf_type_block(d->gguf_type, &bv, &bb);
        return bv ? d->cols / bv * bb : 0;
    }
    }
    return 0;
}

static mlxn_status need_bytes(const char *wname, const char *part, const mlxn_buffer *b, int64_t need) {
    if (!b) return mlxn_set_error(MLXN_ERR_INVALID_ARG, "weight '%s': %s buffer is NULL", wname, part);
    if ((int64_t)mlxn_buffer_nbytes(b) < need)
        return mlxn_set_error(MLXN_ERR_SHAPE, "weight '%s': %s buffer holds %zu bytes, expected %lld", wname, part,
                              mlxn_buffer_nbytes(b), (long long)need);
    return MLXN_OK;
}

mlxn_status mlxn_weight_create(const mlxn_weight_desc *d, mlxn_weight **out) {
    if (!d || !out) return mlxn_set_error(MLXN_ERR_INVALID_ARG, "weight_create: desc and out must not be NULL");
    *out = NULL;
    const char *nm = d->name ? d->name : "(unnamed)";
    if (d->rows <= 0 || d->cols <= 0)
        return mlxn_set_error(MLXN_ERR_SHAPE, "weight '%s': rows (%lld) and cols (%lld) must be > 0", nm,
                              (long long)d->rows, (long long)d->cols);
    if (!d->data) return mlxn_set_error(MLXN_ERR_INVALID_ARG, "weight '%s': data buffer is NULL", nm);
    int64_t total;
    switch (d->format) {
    case MLXN_WEIGHT_DENSE:
        if (d->data->dtype != MLXN_F32 && d->data->dtype != MLXN_F16 && d->data->dtype != MLXN_BF16)
            return mlxn_set_error(MLXN_ERR_DTYPE, "weight '%s': dense data must be f32, f16 or bf16, got %s", nm,
                                  mlxn_dtype_name(d->data->dtype));
        break;
    case MLXN_WEIGHT_MLX_AFFINE: {
        int b = d->bits, g = d->group_size;
        if (!(b == 2 || b == 3 || b == 4 || b == 5 || b == 6 || b == 8))
            return mlxn_set_error(MLXN_ERR_UNSUPPORTED, "weight '%s': MLX affine bits %d not in {2,3,4,5,6,8}", nm, b);
        if (!(g == 32 || g == 64 || g == 128))
            return mlxn_set_error(MLXN_ERR_UNSUPPORTED, "weight '%s': MLX affine group_size %d not in {32,64,128}", nm, g);
        if (d->cols % g)
            return mlxn_set_error(MLXN_ERR_SHAPE, "weight '%s': cols %lld is not a multiple of group_size %d", nm,
                                  (long long)d->cols, g);
        if (!d->scales || !d->biases)
            return mlxn_set_error(MLXN_ERR_INVALID_ARG, "weight '%s': MLX affine weight needs scales and biases", nm);
        mlxn_dtype st = d->scales->dtype;
        if (st != MLXN_F32 && st != MLXN_F16 && st != MLXN_BF16)
            return mlxn_set_error(MLXN_ERR_DTYPE, "weight '%s': scales must be f32, f16 or bf16, got %s", nm, mlxn_dtype_name(st));
        if (d->biases->dtype != st)
            return mlxn_set_error(MLXN_ERR_DTYPE, "weight '%s': biases dtype %s differs from scales dtype %s", nm,
                                  mlxn_dtype_name(d->biases->dtype), mlxn_dtype_name(st));
        int64_t ng = d->rows * (d->cols / g);
        MLXN_TRY(need_bytes(nm, "scales", d->scales, ng * (int64_t)mlxn_dtype_size(st)));
        MLXN_TRY(need_bytes(nm, "biases", d->biases, ng * (int64_t)mlxn_dtype_size(st)));
        break;
    }
    case MLXN_WEIGHT_GGUF: {
        if (!gguf_matmul_type(d->gguf_type))
            return mlxn_set_error(MLXN_ERR_UNSUPPORTED, "weight '%s': GGUF type %s (%d) is not a supported block type", nm,
                                  mlxn_gguf_type_name(d->gguf_type), (int)d->gguf_type);
        int64_t bv;
        mlxn_gguf_type_block(d->gguf_type, &bv, NULL);
        if (d->cols % bv)
            return mlxn_set_error(MLXN_ERR_SHAPE, "weight '%s': cols %lld is not a multiple of the %s block size %lld", nm,
                                  (long long)d->cols, mlxn_gguf_type_name(d->gguf_type), (long long)bv);
        break;
    }
    default:
        return mlxn_set_error(MLXN_ERR_INVALID_ARG, "weight '%s': unknown format %d", nm, (int)d->format);
    }
    int64_t rb = desc_row_bytes(d);
    if (mlxn_mul_overflow_i64(rb, d->rows, &total))
        return mlxn_set_error(MLXN_ERR_SHAPE, "weight '%s': size overflows", nm);
    MLXN_TRY(need_bytes(nm, "data", d->data, total));
    if (d->scales && d->scales->storage->device != d->data->storage->device)
            return mlxn_set_error(MLXN_ERR_INVALID_ARG, "weight '%s': scales live on another device than data", nm);
    if (d->biases && d->biases->storage->device != d->data->storage->device)
        return mlxn_set_error(MLXN_ERR_INVALID_ARG, "weight '%s': biases live on another device than data", nm);

    mlxn_weight *w = calloc(1, sizeof *w);
    if (!w) return mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "weight_create: out of host memory");
    w->desc = *d;
    if (d->format != MLXN_WEIGHT_MLX_AFFINE) { w->desc.scales = NULL; w->desc.biases = NULL; }
    snprintf(w->name_buf, sizeof w->name_buf, "%s", nm);
    w->desc.name = w->name_buf;
    w->row_bytes = rb;
    mlxn_buffer_retain(w->desc.data);
    mlxn_buffer_retain(w->desc.scales);
    mlxn_buffer_retain(w->desc.biases);
    *out = w;
    return MLXN_OK;
}

void mlxn_weight_destroy(mlxn_weight *w) {
    if (!w) return;
    if (w->backend_cache && w->backend_cache_free) w->backend_cache_free(w->backend_cache);
    mlxn_buffer_release(w->desc.data);
    mlxn_buffer_release(w->desc.scales);
    mlxn_buffer_release(w->desc.biases);
    free(w);
}

const mlxn_weight_desc *mlxn_weight_get_desc(const mlxn_weight *w) { return w ? &w->desc : NULL; }

size_t mlxn_weight_nbytes(const mlxn_weight *w) {
    if (!w) return 0;
    size_t n = (size_t)(w->row_bytes * w->desc.rows);
    if (w->desc.format == MLXN_WEIGHT_MLX_AFFINE) {
        size_t ng = (size_t)(w->desc.rows * (w->desc.cols / w->desc.group_size));
        n += 2 * ng * mlxn_dtype_size(w->desc.scales->dtype);
    }
    return n;
}
