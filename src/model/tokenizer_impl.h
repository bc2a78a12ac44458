/* tokenizer_impl.h — private layout of mlxn_tokenizer shared by the encoder
 * (tokenizer.c) and the loaders (tokenizer_load.c): the token table, the two
 * hash maps (text -> id, id pair -> merge), the normalizer and pre-tokenizer
 * chains, and the added-token index. Not part of any public surface. */
#ifndef MLXN_MODEL_TOKENIZER_IMPL_H
#define MLXN_MODEL_TOKENIZER_IMPL_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdint.h>

#include "core/internal.h"
#include "model/tokenizer.h"

typedef struct {
    char *text;     /* token string as in the vocabulary (byte-level / '▁' form), NUL-terminated */
    uint32_t len;
    char *dec;      /* raw bytes it decodes to (may alias text) */
    uint32_t dec_len;
    float score;
    int8_t type;    /* MLXN_TOKTYPE_* */
    uint8_t special, added, lstrip, rstrip, eog;
} tk_token;

typedef struct {
    int32_t *slots; /* token ids, -1 empty */
    uint32_t cap;
} tk_strmap;

typedef struct {
    uint64_t *keys; /* (left id << 32) | right id */
    int32_t *rank;  /* -1 empty */
    int32_t *res;   /* merged token id */
    uint32_t cap;
} tk_pairmap;

enum { TK_NORM_PREPEND, TK_NORM_REPLACE, TK_NORM_METASPACE, TK_NORM_NFC };
enum { TK_PREPEND_ALWAYS, TK_PREPEND_FIRST, TK_PREPEND_NEVER };
typedef struct {
    int kind;
    char *a, *b;          /* PREPEND: a; REPLACE: a -> b; METASPACE: a = replacement */
    size_t a_len, b_len;
    int prepend;          /* METASPACE: TK_PREPEND_* */
} tk_norm;

enum { TK_PRE_REGEX, TK_PRE_METASPACE_SPLIT };
enum { TK_SPLIT_ISOLATED, TK_SPLIT_REMOVED, TK_SPLIT_MERGED_PREV, TK_SPLIT_MERGED_NEXT };
typedef struct {
    int kind;
    pcre2_code *re;  /* TK_PRE_REGEX */
    int behavior;    /* TK_SPLIT_* */
    char *a;         /* TK_PRE_METASPACE_SPLIT: the replacement character */
    size_t a_len;
} tk_pre;

struct mlxn_tokenizer {
    int64_t n_vocab;
    tk_token *tok;           /* [n_vocab] (holes have text "" and len 0) */
    tk_strmap vocab;
    tk_pairmap merges;
    int byte_level;          /* GPT-2 byte <-> code point mapping */
    int score_merges;        /* SentencePiece: merge by piece score, not by merge rank */
    int byte_fallback, fuse_unk, ignore_merges;
    int no_unk_in_bpe;       /* GGUF byte-level: a byte without a token is dropped (llama.cpp), not <unk> */
    int strip_leading_space; /* decode drops one leading ' ' (SPM dummy prefix) */
    int32_t byte_tok[256];   /* byte-level: token of each byte's char; SPM: <0xXX> tokens; -1 absent */
    char bl_chars[256][2];   /* byte-level: UTF-8 of each byte's code point */
    uint8_t bl_len[256];
    int32_t bos, eos, unk, pad;
    int add_bos;
    tk_norm *norm;
    size_t n_norm;
    tk_pre *pre;
    size_t n_pre;
    int32_t *added;          /* ids of added tokens grouped by first byte, longest first */
    size_t n_added;
    uint32_t added_first[257];
    char *chat_template;
};

mlxn_status tk_strmap_init(tk_strmap *m, size_t n);
void tk_strmap_put(tk_strmap *m, const tk_token *toks, int32_t id);
int32_t tk_strmap_get(const tk_strmap *m, const tk_token *toks, const char *s, size_t n);
mlxn_status tk_pairmap_init(tk_pairmap *m, size_t n);
int tk_pairmap_put(tk_pairmap *m, int32_t a, int32_t b, int32_t rank, int32_t res);
size_t tk_utf8_len(uint8_t c);
size_t tk_utf8_encode(uint32_t c, char *out);
void tk_bytes_to_unicode(uint32_t cp[256]);
/* Compile a pre-tokenizer regex (literal: a plain string pattern). */
mlxn_status tk_regex_compile(const char *re, size_t n, int literal, pcre2_code **out);

#endif
