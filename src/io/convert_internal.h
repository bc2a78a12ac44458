/* convert_internal.h — functions shared by convert.c (planning, tensors,
 * shards, config) and convert_tokenizer.c (tokenizer files from GGUF
 * metadata). Not part of the public API. */
#ifndef MLXN_CONVERT_INTERNAL_H
#define MLXN_CONVERT_INTERNAL_H

#include <jansson.h>
#include <stdint.h>

#include "mlxn.h"
#include "io/gguf.h"

/* Write j as DIR/NAME (jansson flags | 15-digit reals). */
mlxn_status mlxn_convert_write_json(const json_t *j, const char *dir, const char *name, size_t flags);
/* A GGUF token-id key (e.g. tokenizer.ggml.bos_token_id), or -1 if absent. */
int64_t mlxn_convert_gguf_opt_id(const mlxn_gguf *g, const char *key);
/* Write tokenizer.json + tokenizer_config.json into out_dir from g's
 * tokenizer.ggml.* metadata (a GGUF without a tokenizer writes nothing and
 * succeeds). *written (may be NULL) is set to 1 when files were written. */
mlxn_status mlxn_convert_write_gguf_tokenizer(const mlxn_gguf *g, const char *out_dir, int64_t ctx_len, int *written);

#endif
