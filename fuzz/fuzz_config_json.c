/* fuzz_config_json.c — libFuzzer target: the input is an MLX config.json.
 * It is paired with a fixed in-memory shard holding a 4-bit g32 triple
 * ("a"), a lone U32 weight ("b") and a float weight ("c"), so the fuzzer
 * drives the quantization-config logic (global settings, per-module
 * overrides, `false`, odd types) through open and through quant_for on
 * every key of the quantization object. */
#include "io/model_files.h"
#include "io/safetensors.h"

#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static uint8_t *g_shard;
static size_t g_shard_size;

/* Build the safetensors image by hand (the reader under test must not be
 * needed to make its own input). */
static void build_shard(void) {
    static const char hdr[] =
        "{\"a.biases\":{\"dtype\":\"F16\",\"shape\":[8,2],\"data_offsets\":[0,32]},"
        "\"a.scales\":{\"dtype\":\"F16\",\"shape\":[8,2],\"data_offsets\":[32,64]},"
        "\"a.weight\":{\"dtype\":\"U32\",\"shape\":[8,8],\"data_offsets\":[64,320]},"
        "\"b.weight\":{\"dtype\":\"U32\",\"shape\":[8,8],\"data_offsets\":[320,576]},"
        "\"c.weight\":{\"dtype\":\"F32\",\"shape\":[4,8],\"data_offsets\":[576,704]}}";
    size_t hl = sizeof hdr - 1, data = 704;
    g_shard_size = 8 + hl + data;
    g_shard = calloc(1, g_shard_size);
    uint64_t n = hl;
    memcpy(g_shard, &n, 8);
    memcpy(g_shard + 8, hdr, hl);
    for (size_t i = 0; i < data; i++) g_shard[8 + hl + i] = (uint8_t)(i * 13 + 5);
    for (size_t i = 0; i < 32; i++) g_shard[8 + hl + 32 + i] = (i & 1) ? 0x3c : 0x00; /* scales = 1.0 */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!g_shard) build_shard();
    const void *shards[1] = {g_shard};
    mlxn_model_files *mf = NULL;
    if (mlxn_model_files_open_memory((const char *)data, size, shards, &g_shard_size, 1, &mf) != MLXN_OK) return 0;
    volatile int sink = 0;
    const char *fixed[] = {"a", "b", "c", "", "model.layers.0.mlp.down_proj"};
    for (int i = 0; i < 5; i++) {
        int bits = 0, gs = 0;
        const char *mode = NULL;
        if (mlxn_model_files_quant_for(mf, fixed[i], &bits, &gs, &mode)) sink += bits + gs + (int)strlen(mode);
    }
    const json_t *cfg = mlxn_model_files_config(mf);
    const json_t *q = json_object_get(cfg, "quantization");
    if (!json_is_object(q)) q = json_object_get(cfg, "quantization_config");
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)q, key, v) {
        int bits = 0, gs = 0;
        const char *mode = NULL;
        if (mlxn_model_files_quant_for(mf, key, &bits, &gs, &mode)) sink += bits + gs + (int)strlen(mode);
    }
    for (int64_t i = 0; i < mlxn_model_files_n_tensors(mf); i++) {
        mlxn_model_tensor_info ti;
        if (mlxn_model_files_tensor(mf, i, &ti) != MLXN_OK) abort();
        float out[64];
        (void)mlxn_model_files_read_f32(mf, ti.name, out, 64);
    }
    sink += (int)strlen(mlxn_model_files_architecture(mf));
    (void)sink;
    mlxn_model_files_close(mf);
    return 0;
}
