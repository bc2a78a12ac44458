/* fuzz_tokenizer_json.c — libFuzzer target: the input is a Hugging Face
 * tokenizer.json. It goes through the tokenizer's own loader
 * (mlxn_tokenizer_from_json_text, src/model/tokenizer_load.c); a tokenizer
 * that loads then encodes and decodes a fixed text with special tokens,
 * digits, unicode and spaces, and streams the ids through the detokenizer. */
#include "model/tokenizer.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const char k_text[] = "Hello  world! <|im_start|>user\n123456 \xc3\xbcn\xc3\xaf" "c\xc3\xb6" "de \xe2\x96\x81x\t<s>";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    mlxn_tokenizer *t = NULL;
    if (mlxn_tokenizer_from_json_text((const char *)data, size, &t) != MLXN_OK) return 0;
    int32_t *ids = NULL;
    size_t n = 0;
    for (int special = 0; special < 2; special++) {
        if (mlxn_tokenizer_encode(t, k_text, sizeof k_text - 1, 1, special, &ids, &n) == MLXN_OK) {
            char *out = NULL;
            size_t len = 0;
            if (mlxn_tokenizer_decode(t, ids, n, special, &out, &len) == MLXN_OK) free(out);
            mlxn_detok *d = NULL;
            if (mlxn_detok_create(t, &d) == MLXN_OK) {
                const char *s;
                size_t sl;
                for (size_t i = 0; i < n; i++) (void)mlxn_detok_push(d, ids[i], &s, &sl);
                (void)mlxn_detok_flush(d, &s, &sl);
                mlxn_detok_free(d);
            }
            free(ids);
            ids = NULL;
        }
    }
    int64_t nv = mlxn_tokenizer_n_vocab(t);
    for (int32_t id = 0; id < nv && id < 512; id++) {
        const char *b;
        size_t bl;
        (void)mlxn_tokenizer_token_bytes(t, id, &b, &bl);
    }
    mlxn_tokenizer_free(t);
    return 0;
}
