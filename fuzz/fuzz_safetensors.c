/* fuzz_safetensors.c — libFuzzer target: the input is a .safetensors image.
 * Opens it with the reader, walks every tensor (touching the first and last
 * data byte, so an out-of-bounds offset shows up under ASan) and the
 * metadata; then runs the MLX-directory grouping over it as a single shard
 * with a fixed quantization config and dequantizes every small logical
 * tensor, which exercises the triple checks and the affine codec. */
#include "io/model_files.h"
#include "io/safetensors.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const char k_config[] =
    "{\"model_type\": \"llama\", \"quantization\": {\"group_size\": 32, \"bits\": 4,"
    " \"a\": {\"group_size\": 64, \"bits\": 8}, \"b\": false, \"c\": {\"bits\": 3}}}";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    mlxn_st *st = NULL;
    if (mlxn_st_open_memory(data, size, "fuzz", &st) == MLXN_OK) {
        volatile uint8_t sink = 0;
        for (int64_t i = 0; i < mlxn_st_n_tensors(st); i++) {
            mlxn_st_tensor_info ti;
            if (mlxn_st_tensor(st, i, &ti) != MLXN_OK) abort();
            if (mlxn_st_find(st, ti.name) != i) abort();
            if (ti.nbytes) sink ^= ((const uint8_t *)ti.data)[0] ^ ((const uint8_t *)ti.data)[ti.nbytes - 1];
        }
        for (int64_t i = 0; i < mlxn_st_n_metadata(st); i++)
            sink ^= (uint8_t)strlen(mlxn_st_metadata_value(st, i)) ^ (uint8_t)strlen(mlxn_st_metadata_key(st, i));
        (void)sink;
        mlxn_st_close(st);
    }
    const void *shards[1] = {data};
    mlxn_model_files *mf = NULL;
    if (mlxn_model_files_open_memory(k_config, sizeof k_config - 1, shards, &size, 1, &mf) == MLXN_OK) {
        for (int64_t i = 0; i < mlxn_model_files_n_tensors(mf); i++) {
            mlxn_model_tensor_info ti;
            if (mlxn_model_files_tensor(mf, i, &ti) != MLXN_OK) abort();
            int64_t n = 1;
            for (int d = 0; d < ti.ndim; d++)
                if (__builtin_mul_overflow(n, ti.shape[d], &n)) abort(); /* the reader must bound every dim product */
            if (n > 0 && n <= (1 << 16)) {
                float *out = malloc((size_t)n * sizeof(float));
                (void)mlxn_model_files_read_f32(mf, ti.name, out, (size_t)n);
                free(out);
            }
        }
        mlxn_model_files_close(mf);
    }
    return 0;
}
