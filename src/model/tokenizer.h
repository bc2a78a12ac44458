/* tokenizer.h — text <-> token ids for the model runner. Two tokenizer
 * families: byte-level BPE (GPT-2 style: a pre-tokenizer regex splits the
 * text, each piece's bytes are mapped to printable code points and merged by
 * merge rank; used by SmolLM2, Llama 3, Qwen2/3) and SentencePiece-style
 * vocabularies (Llama-1/2: '▁' for spaces, merges by score or rank, <0xAB>
 * byte-fallback tokens). A tokenizer is built either from a Hugging Face
 * tokenizer.json (+ optional tokenizer_config.json for the chat template and
 * BOS/EOS settings) or from GGUF metadata (tokenizer.ggml.*). Added/special
 * tokens ("<|im_start|>") are matched in the text when asked. Decoding is
 * per-token raw bytes plus a streaming detokenizer that holds back an
 * incomplete UTF-8 sequence until its last byte arrives. A tokenizer is
 * immutable after creation and may be shared by threads. */
#ifndef MLXN_MODEL_TOKENIZER_H
#define MLXN_MODEL_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>
#include "mlxn.h"

typedef struct mlxn_tokenizer mlxn_tokenizer;

typedef enum { MLXN_TOK_BPE_BYTELEVEL, MLXN_TOK_SPM } mlxn_tokenizer_kind;

/* GGUF token types (tokenizer.ggml.token_type). */
enum {
    MLXN_TOKTYPE_NORMAL = 1,
    MLXN_TOKTYPE_UNKNOWN = 2,
    MLXN_TOKTYPE_CONTROL = 3,
    MLXN_TOKTYPE_USER_DEFINED = 4,
    MLXN_TOKTYPE_UNUSED = 5,
    MLXN_TOKTYPE_BYTE = 6,
};

/* Vocabulary as stored in GGUF metadata (tokenizer.ggml.*). All pointers are
 * only read during mlxn_tokenizer_from_vocab (the tokenizer copies what it
 * keeps). */
typedef struct mlxn_tokenizer_vocab_desc {
    const char *model; /* "gpt2" (byte-level BPE) or "llama" (SentencePiece) */
    const char *pre;   /* tokenizer.ggml.pre: "smollm", "default", "llama-bpe", "llama3", "qwen2",
                          "gpt2", ... -> pre-tokenizer regex; NULL = gpt2 */
    int64_t n_tokens;
    const char *const *tokens; /* [n_tokens] token strings (not NUL-terminated) */
    const size_t *token_lens;  /* [n_tokens] */
    const int32_t *token_types; /* [n_tokens] may be NULL (MLXN_TOKTYPE_*) */
    const float *scores;        /* [n_tokens] SPM scores, may be NULL */
    int64_t n_merges;
    const char *const *merges; /* [n_merges] "a b" */
    const size_t *merge_lens;  /* [n_merges] */
    int32_t bos_id, eos_id, unk_id, pad_id; /* -1 if absent */
    int add_bos;               /* tokenizer.ggml.add_bos_token; -1 unknown -> model default */
    const char *chat_template; /* may be NULL */
    int no_space_prefix;       /* "llama" only: 1 if tokenizer.ggml.add_space_prefix is false (Gemma);
                                  0 (default) prepends '▁' to the text like SentencePiece */
} mlxn_tokenizer_vocab_desc;

mlxn_status mlxn_tokenizer_from_vocab(const mlxn_tokenizer_vocab_desc *d, mlxn_tokenizer **out);
/* All of the above read from an open GGUF file (tokenizer.ggml.* and
 * tokenizer.chat_template); errors name the file. */
struct mlxn_gguf;
mlxn_status mlxn_tokenizer_from_gguf(const struct mlxn_gguf *g, mlxn_tokenizer **out);
/* tokenizer_config_json_path may be NULL. */
mlxn_status mlxn_tokenizer_from_json(const char *tokenizer_json_path, const char *tokenizer_config_json_path,
                                     mlxn_tokenizer **out);
/* tokenizer.json content in memory (no config); used by tests and fuzzing. */
mlxn_status mlxn_tokenizer_from_json_text(const char *json, size_t len, mlxn_tokenizer **out);
void mlxn_tokenizer_free(mlxn_tokenizer *t);

mlxn_tokenizer_kind mlxn_tokenizer_get_kind(const mlxn_tokenizer *t);

/* Normalizers supported from tokenizer.json: Prepend, Replace (string
 * pattern), NFC (Qwen2/3 declare it). NFC needs utf8proc (built with
 * MLXN_HAVE_UTF8PROC, see mlxn_tokenizer_has_nfc); without it NFC is the
 * identity, so text that is not already NFC may tokenize differently from HF.
 * Pre-tokenizers: ByteLevel (add_prefix_space=false), Split (regex/string;
 * Isolated, Removed, MergedWithPrevious, MergedWithNext), Digits, Metaspace
 * (first step only). Model: BPE (merges by rank, byte_fallback, fuse_unk,
 * ignore_merges). Anything else is MLXN_ERR_UNSUPPORTED naming it. Added
 * tokens are matched on the raw text (their "normalized" and "single_word"
 * flags are ignored; lstrip/rstrip are honoured). A byte or character the
 * vocabulary cannot represent becomes <unk> if the tokenizer.json names one,
 * else it is dropped (as HF does, and as llama.cpp does for GGUF "gpt2").
 *
 * Encode UTF-8 text. add_bos: prepend BOS if the tokenizer adds it by default
 * (pass 0 to never add it). parse_special: recognise special/added tokens such
 * as "<|im_start|>" in the text (otherwise they are encoded as plain text;
 * non-special added tokens are always matched, as HF tokenizers does).
 * Invalid UTF-8 -> MLXN_ERR_INVALID_ARG naming the byte offset. *ids is
 * malloc'd (caller frees with free(); may be NULL when *n_ids == 0). */
mlxn_status mlxn_tokenizer_encode(const mlxn_tokenizer *t, const char *text, size_t len, int add_bos,
                                  int parse_special, int32_t **ids, size_t *n_ids);

/* Raw bytes of one token's text: byte-level decoded / SPM '▁'->' ', <0xAB>
 * byte tokens -> that byte; special tokens render as their text. Points to
 * internal storage valid for the tokenizer's lifetime. */
mlxn_status mlxn_tokenizer_token_bytes(const mlxn_tokenizer *t, int32_t id, const char **bytes, size_t *len);

/* Decode a whole id sequence to a malloc'd NUL-terminated string (*len
 * excludes the NUL). skip_special: drop control/special tokens. One leading
 * space is removed when the tokenizer adds a dummy prefix (SPM: a Strip or
 * Metaspace decoder, GGUF add_space_prefix), as HF does. Invalid UTF-8 in the
 * result is kept as is (bytes), not replaced. */
mlxn_status mlxn_tokenizer_decode(const mlxn_tokenizer *t, const int32_t *ids, size_t n, int skip_special,
                                  char **out, size_t *len);

/* Streaming detokenizer: feed ids, get only complete UTF-8 out (bytes of a
 * split character are held until complete; an invalid byte is emitted as
 * U+FFFD). For valid text the concatenated output equals
 * mlxn_tokenizer_decode(skip_special=0) except that the dummy-prefix space is
 * kept: generated tokens continue a prompt, so " Paris" must stay " Paris". */
typedef struct mlxn_detok mlxn_detok;
mlxn_status mlxn_detok_create(const mlxn_tokenizer *t, mlxn_detok **out);
void mlxn_detok_free(mlxn_detok *d);
/* *text valid until the next push/flush/free; *len may be 0. */
mlxn_status mlxn_detok_push(mlxn_detok *d, int32_t id, const char **text, size_t *len);
/* Emit whatever is still held (an incomplete sequence becomes U+FFFD). */
mlxn_status mlxn_detok_flush(mlxn_detok *d, const char **text, size_t *len);

int64_t mlxn_tokenizer_n_vocab(const mlxn_tokenizer *t);
int32_t mlxn_tokenizer_bos(const mlxn_tokenizer *t); /* -1 if none */
int32_t mlxn_tokenizer_eos(const mlxn_tokenizer *t); /* -1 if none */
/* 1 if the tokenizer adds BOS by default (encode with add_bos=1 prepends it). */
int mlxn_tokenizer_adds_bos(const mlxn_tokenizer *t);
/* End-of-generation: eos, eot, <|im_end|>, <|eot_id|>, <|end_of_text|>, <end_of_turn>, <|endoftext|> ... */
int mlxn_tokenizer_is_eog(const mlxn_tokenizer *t, int32_t id);
/* 1 if this build applies NFC normalization (utf8proc); 0: NFC is the identity. */
int mlxn_tokenizer_has_nfc(void);
/* 1 if id is a special/control token (skipped by decode(skip_special=1)). */
int mlxn_tokenizer_is_special(const mlxn_tokenizer *t, int32_t id);
/* Exact token text (as stored in the vocabulary) -> id; -1 if absent. */
int32_t mlxn_tokenizer_find(const mlxn_tokenizer *t, const char *token_text);
/* From tokenizer_config.json or GGUF; may be NULL. */
const char *mlxn_tokenizer_chat_template(const mlxn_tokenizer *t);

#endif
