/* fuzz_gguf.c — libFuzzer target: the input is a GGUF image. Opens it,
 * reads every metadata key with every typed getter, walks string and nested
 * arrays (first 64 elements), touches each tensor's first and last byte and
 * dequantizes small tensors with the host codec. */
#include "io/gguf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    mlxn_gguf *g = NULL;
    if (mlxn_gguf_open_memory(data, size, &g) != MLXN_OK) return 0;
    volatile uint64_t sink = 0;
    for (int64_t i = 0; i < mlxn_gguf_n_kv(g); i++) {
        const char *key = mlxn_gguf_key(g, i);
        if (mlxn_gguf_find_key(g, key) != i) abort();
        uint32_t u32; int32_t i32; uint64_t u64; int64_t i64; float f; int b;
        const char *s; uint64_t len;
        if (mlxn_gguf_get_u32(g, key, &u32) == MLXN_OK) sink += u32;
        if (mlxn_gguf_get_i32(g, key, &i32) == MLXN_OK) sink += (uint64_t)i32;
        if (mlxn_gguf_get_u64(g, key, &u64) == MLXN_OK) sink += u64;
        if (mlxn_gguf_get_i64(g, key, &i64) == MLXN_OK) sink += (uint64_t)i64;
        if (mlxn_gguf_get_f32(g, key, &f) == MLXN_OK) sink += (uint64_t)(f == f);
        if (mlxn_gguf_get_bool(g, key, &b) == MLXN_OK) sink += (uint64_t)b;
        if (mlxn_gguf_get_str(g, key, &s, &len) == MLXN_OK) sink += strlen(s) + len;
        mlxn_gguf_kv_type et;
        uint64_t count;
        const void *arr;
        if (mlxn_gguf_get_arr(g, key, &et, &count, &arr) == MLXN_OK) {
            for (uint64_t k = 0; k < count && k < 64; k++) {
                if (et == MLXN_GGUF_KV_STRING) {
                    if (mlxn_gguf_get_arr_str(g, key, k, &s, &len) != MLXN_OK) abort();
                    if (len) sink += (uint8_t)s[len - 1];
                } else if (et == MLXN_GGUF_KV_ARRAY) {
                    mlxn_gguf_kv_type it;
                    uint64_t ic;
                    const void *id;
                    if (mlxn_gguf_get_arr_arr(g, key, k, &it, &ic, &id) != MLXN_OK) abort();
                    sink += ic;
                } else if (arr && k == count - 1) {
                    sink += ((const uint8_t *)arr)[0];
                }
            }
        }
    }
    for (int64_t i = 0; i < mlxn_gguf_n_tensors(g); i++) {
        mlxn_gguf_tensor_info ti;
        if (mlxn_gguf_tensor(g, i, &ti) != MLXN_OK) abort();
        if (mlxn_gguf_find_tensor(g, ti.name) != i) abort();
        if (ti.nbytes) sink += ((const uint8_t *)ti.data)[0] + ((const uint8_t *)ti.data)[ti.nbytes - 1];
        int64_t n = 1;
        for (int d = 0; d < ti.n_dims; d++)
            if (__builtin_mul_overflow(n, ti.shape[d], &n)) abort(); /* the reader must bound every dim product */
        if (n > 0 && n <= (1 << 16) && ti.type != MLXN_GGUF_F32) {
            float *out = malloc((size_t)n * sizeof(float));
            (void)mlxn_gguf_dequantize(ti.type, ti.data, n, out);
            free(out);
        }
    }
    (void)sink;
    mlxn_gguf_close(g);
    return 0;
}
