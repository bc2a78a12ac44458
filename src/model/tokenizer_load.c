/* tokenizer_load.c — build an mlxn_tokenizer from a Hugging Face
 * tokenizer.json (+ tokenizer_config.json for the chat template, BOS/EOS and
 * add_bos_token) or from GGUF metadata (tokenizer.ggml.*: "gpt2" = byte-level
 * BPE with merges and a pre-tokenizer preset named by tokenizer.ggml.pre;
 * "llama" = SentencePiece pieces with scores and <0xAB> byte tokens). Every
 * unsupported component (a WordPiece model, a Whitespace pre-tokenizer, an
 * unknown GGUF pre-tokenizer name...) is an MLXN_ERR_UNSUPPORTED naming it;
 * malformed content is MLXN_ERR_FORMAT naming the field. After loading, a
 * common finalize step builds the lookup maps, the byte tables, each token's
 * decoded bytes and the added-token index. */
#include "model/tokenizer_impl.h"
#include "io/gguf.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RE_GPT2 "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"
#define RE_LLAMA3                                                                                   \
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*" \
    "|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RE_QWEN2                                                                                  \
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*" \
    "|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define SPM_SPACE "\xE2\x96\x81" /* U+2581 '▁' */

static const char *const EOG_TEXTS[] = {"<|eot_id|>", "<|im_end|>", "<|end_of_text|>", "<end_of_turn>",
                                        "<|endoftext|>", "<|eom_id|>", "<|end|>", "</s>", "<eos>", "<|return|>"};

/* ---------------------------------------------------------------- construction helpers */

static mlxn_status tk_new(int64_t n, mlxn_tokenizer **out) {
    if (n <= 0 || n > (int64_t)INT32_MAX)
        return mlxn_set_error(MLXN_ERR_FORMAT, "tokenizer: vocabulary size %lld out of range", (long long)n);
    mlxn_tokenizer *t = calloc(1, sizeof *t);
    if (t) t->tok = calloc((size_t)n, sizeof(tk_token));
    if (!t || !t->tok) {
        free(t);
        return mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "tokenizer: %lld tokens", (long long)n);
    }
    t->n_vocab = n;
    t->bos = t->eos = t->unk = t->pad = -1;
    for (int i = 0; i < 256; i++) t->byte_tok[i] = -1;
    *out = t;
    return MLXN_OK;
}

static char *dupn(const char *s, size_t n) {
    char *o = malloc(n + 1);
    if (!o) return NULL;
    memcpy(o, s, n);
    o[n] = 0;
    return o;
}

static mlxn_status set_text(mlxn_tokenizer *t, int64_t id, const char *s, size_t n) {
    if (n > UINT32_MAX) return mlxn_set_error(MLXN_ERR_FORMAT, "tokenizer: token %lld is too long", (long long)id);
    char *c = dupn(s, n);
    if (!c) return mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "tokenizer: token text");
    free(t->tok[id].text);
    t->tok[id].text = c;
    t->tok[id].len = (uint32_t)n;
    return MLXN_OK;
}

static mlxn_status add_norm(mlxn_tokenizer *t, int kind, const char *a, size_t an, const char *b, size_t bn,
                            int prepend) {
    tk_norm *nn = realloc(t->norm, (t->n_norm + 1) * sizeof(tk_norm));
    if (!nn) return mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "tokenizer: normalizer");
    t->norm = nn;
    tk_norm *s = &t->norm[t->n_norm];
    memset(s, 0, sizeof *s);
    s->kind = kind;
    s->prepend = prepend;
    if (a && !(s->a = dupn(a, an))) return mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "tokenizer: normalizer");
    s->a_len = an;
    t->n_norm++;
    if (b && !(s->b = dupn(b, bn))) return mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "tokenizer: normalizer");
    s->b_len = bn;
    return MLXN_OK;
}

static mlxn_status add_pre_regex(mlxn_tokenizer *t, const char *re, size_t n, int literal, int behavior) {
    tk_pre *np = realloc(t->pre, (t->n_pre + 1) * sizeof(tk_pre));
    if (!np) return mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "tokenizer: pre-tokenizer");
    t->pre = np;
    tk_pre *s = &t->pre[t->n_pre];
    memset(s, 0, sizeof *s);
    s->kind = TK_PRE_REGEX;
    s->behavior = behavior;
    MLXN_TRY(tk_regex_compile(re, n, literal, &s->re));
    t->n_pre++;
    return MLXN_OK;
}

static mlxn_status add_pre_metaspace_split(mlxn_tokenizer *t, const char *rep, size_t n) {
    tk_pre *np = realloc(t->pre, (t->n_pre + 1) * sizeof(tk_pre));
    if (!np) return mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "tokenizer: pre-tokenizer");
    t->pre = np;
    tk_pre *s = &t->pre[t->n_pre];
    memset(s, 0, sizeof *s);
    s->kind = TK_PRE_METASPACE_SPLIT;
    if (!(s->a = dupn(rep, n))) return mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "tokenizer: pre-tokenizer");
    s->a_len = n;
    t->n_pre++;
    return MLXN_OK;
}

typedef struct {
    uint8_t first;
    uint32_t len;
    int32_t id;
} added_key;

static int cmp_added(const void *x, const void *y) { /* by first byte, then longest first, then id */
    const added_key *a = x, *b = y;
    if (a->first != b->first) return a->first < b->first ? -1 : 1;
    if (a->len != b->len) return a->len > b->len ? -1 : 1;
    return (a->id > b->id) - (a->id < b->id);
}

/* Decoded bytes of token i: byte-level reverse mapping, or SPM '▁' -> ' ' and <0xAB> -> byte. */
static mlxn_status make_dec(mlxn_tokenizer *t, int64_t i, const int16_t *cp_to_byte) {
    tk_token *k = &t->tok[i];
    k->dec = k->text;
    k->dec_len = k->len;
    if (!k->len) return MLXN_OK;
    char *o = malloc(k->len + 1);
    if (!o) return mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "tokenizer: decode table");
    size_t m = 0;
    const uint8_t *s = (const uint8_t *)k->text;
    int byte_tok = (k->type == MLXN_TOKTYPE_BYTE || (t->byte_fallback && !t->byte_level)) && k->len == 6 &&
                   memcmp(s, "<0x", 3) == 0 && s[5] == '>';
    unsigned v;
    if (byte_tok && sscanf(k->text + 3, "%2X", &v) == 1 && v < 256) {
        o[m++] = (char)v;
    } else if (t->byte_level) {
        for (size_t j = 0; j < k->len;) {
            size_t n = tk_utf8_len(s[j]);
            uint32_t c = s[j];
            if (n == 2 && j + 1 < k->len) c = ((s[j] & 0x1Fu) << 6) | (s[j + 1] & 0x3Fu);
            if ((n != 1 && n != 2) || c >= 512 || cp_to_byte[c] < 0) { /* not byte-level text: raw */
                free(o);
                return MLXN_OK;
            }
            o[m++] = (char)cp_to_byte[c];
            j += n;
        }
    } else {
        for (size_t j = 0; j < k->len;) {
            if (j + 3 <= k->len && memcmp(s + j, SPM_SPACE, 3) == 0) {
                o[m++] = ' ';
                j += 3;
            } else
                o[m++] = (char)s[j++];
        }
    }
    if (m == k->len && memcmp(o, k->text, m) == 0) {
        free(o);
        return MLXN_OK;
    }
    o[m] = 0;
    k->dec = o;
    k->dec_len = (uint32_t)m;
    return MLXN_OK;
}

static mlxn_status finalize(mlxn_tokenizer *t) {
    for (int64_t i = 0; i < t->n_vocab; i++)
        if (!t->tok[i].text) MLXN_TRY(set_text(t, i, "", 0)); /* holes in the id space */
    MLXN_TRY(tk_strmap_init(&t->vocab, (size_t)t->n_vocab));
    for (int64_t i = 0; i < t->n_vocab; i++)
        if (t->tok[i].added && t->tok[i].len) tk_strmap_put(&t->vocab, t->tok, (int32_t)i);
    for (int64_t i = 0; i < t->n_vocab; i++)
        if (t->tok[i].len) tk_strmap_put(&t->vocab, t->tok, (int32_t)i);
    uint32_t cp[256];
    int16_t cp_to_byte[512];
    for (int i = 0; i < 512; i++) cp_to_byte[i] = -1;
    tk_bytes_to_unicode(cp);
    for (int b = 0; b < 256; b++) {
        cp_to_byte[cp[b]] = (int16_t)b;
        t->bl_len[b] = (uint8_t)tk_utf8_encode(cp[b], t->bl_chars[b]);
        if (t->byte_level) {
            t->byte_tok[b] = tk_strmap_get(&t->vocab, t->tok, t->bl_chars[b], t->bl_len[b]);
        } else {
            char name[8];
            snprintf(name, sizeof name, "<0x%02X>", b);
            t->byte_tok[b] = tk_strmap_get(&t->vocab, t->tok, name, 6);
        }
    }
    size_t n_added = 0;
    for (int64_t i = 0; i < t->n_vocab; i++) {
        MLXN_TRY(make_dec(t, i, cp_to_byte));
        tk_token *k = &t->tok[i];
        if (k->added && k->len) n_added++;
        for (size_t j = 0; j < sizeof EOG_TEXTS / sizeof EOG_TEXTS[0]; j++)
            if ((k->special || k->type == MLXN_TOKTYPE_CONTROL) && strcmp(k->text, EOG_TEXTS[j]) == 0) k->eog = 1;
    }
    if (t->eos >= 0) t->tok[t->eos].eog = 1;
    if (n_added) {
        t->added = malloc(n_added * sizeof(int32_t));
        added_key *keys = malloc(n_added * sizeof(added_key));
        if (!t->added || !keys) {
            free(keys);
            return mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "tokenizer: added tokens");
        }
        for (int64_t i = 0; i < t->n_vocab; i++)
            if (t->tok[i].added && t->tok[i].len)
                keys[t->n_added++] = (added_key){(uint8_t)t->tok[i].text[0], t->tok[i].len, (int32_t)i};
        qsort(keys, t->n_added, sizeof(added_key), cmp_added);
        for (size_t i = 0; i < t->n_added; i++) t->added[i] = keys[i].id;
        free(keys);
    }
    size_t j = 0;
    for (int c = 0; c < 256; c++) {
        t->added_first[c] = (uint32_t)j;
        while (j < t->n_added && (uint8_t)t->tok[t->added[j]].text[0] == c) j++;
    }
    t->added_first[256] = (uint32_t)j;
    return MLXN_OK;
}

/* Pre-tokenizer preset for a GGUF tokenizer.ggml.pre name (llama.cpp's names). */
static mlxn_status gguf_pre_preset(mlxn_tokenizer *t, const char *pre) {
    static const char *const gpt2[] = {"gpt2", "gpt-2", "mpt", "olmo", "jais", "trillion", NULL};
    static const char *const llama3[] = {"llama-bpe", "llama3", "llama-v3", "dbrx", "smaug-bpe",
                                         "falcon3", "pixtral", NULL};
    static const char *const qwen2[] = {"qwen2", "stablelm2", "deepseek-r1-qwen", "megrez", NULL};
    static const char *const digits[] = {"smollm", "starcoder", "refact", "command-r", "codeshell", "exaone",
                                         "minerva", NULL};
    static const char *const legacy[] = {"default", NULL};
    const char *const *lists[] = {gpt2, llama3, qwen2, digits, legacy};
    int which = pre ? -1 : 0;
    for (int l = 0; pre && l < 5 && which < 0; l++)
        for (int i = 0; lists[l][i]; i++)
            if (strcmp(pre, lists[l][i]) == 0) which = l;
    switch (which) {
    case 0: return add_pre_regex(t, RE_GPT2, strlen(RE_GPT2), 0, TK_SPLIT_ISOLATED);
    case 1: t->ignore_merges = 1; return add_pre_regex(t, RE_LLAMA3, strlen(RE_LLAMA3), 0, TK_SPLIT_ISOLATED);
    case 2: return add_pre_regex(t, RE_QWEN2, strlen(RE_QWEN2), 0, TK_SPLIT_ISOLATED);
    case 3:
        MLXN_TRY(add_pre_regex(t, "\\p{N}", 5, 0, TK_SPLIT_ISOLATED));
        return add_pre_regex(t, RE_GPT2, strlen(RE_GPT2), 0, TK_SPLIT_ISOLATED);
    case 4: { /* llama.cpp's LLAMA_VOCAB_PRE_TYPE_DEFAULT: four splits in sequence */
        static const char *const re[] = {"[\\p{P}\\$\\+<=>\\^~\\|]+", RE_GPT2, "\\p{N}+", "[0-9][0-9][0-9]"};
        for (int i = 0; i < 4; i++) MLXN_TRY(add_pre_regex(t, re[i], strlen(re[i]), 0, TK_SPLIT_ISOLATED));
        return MLXN_OK;
    }
    default:
        return mlxn_set_error(MLXN_ERR_UNSUPPORTED,
                              "tokenizer: GGUF pre-tokenizer '%s' is not supported (known: gpt2, llama-bpe, "
                              "default, qwen2, smollm, starcoder, ...)", pre);
    }
}

/* ---------------------------------------------------------------- GGUF-style vocabulary */

mlxn_status mlxn_tokenizer_from_vocab(const mlxn_tokenizer_vocab_desc *d, mlxn_tokenizer **out) {
    if (!d || !out || !d->tokens || !d->model)
        return mlxn_set_error(MLXN_ERR_INVALID_ARG, "tokenizer_from_vocab: NULL argument (desc, tokens or model)");
    *out = NULL;
    int spm = strcmp(d->model, "llama") == 0;
    if (!spm && strcmp(d->model, "gpt2") != 0)
        return mlxn_set_error(MLXN_ERR_UNSUPPORTED,
                              "tokenizer_from_vocab: tokenizer model '%s' is not supported (gpt2, llama)", d->model);
    if (!spm && (d->n_merges <= 0 || !d->merges))
        return mlxn_set_error(MLXN_ERR_FORMAT, "tokenizer_from_vocab: a 'gpt2' tokenizer needs merges (got %lld)",
                              (long long)d->n_merges);
    mlxn_tokenizer *t;
    MLXN_TRY(tk_new(d->n_tokens, &t));
    mlxn_status st = MLXN_OK;
    for (int64_t i = 0; i < d->n_tokens && st == MLXN_OK; i++) {
        const char *s = d->tokens[i];
        size_t n = d->token_lens ? d->token_lens[i] : (s ? strlen(s) : 0);
        if (!s && n) st = mlxn_set_error(MLXN_ERR_INVALID_ARG, "tokenizer_from_vocab: token %lld is NULL", (long long)i);
        else st = set_text(t, i, s ? s : "", n);
        tk_token *k = &t->tok[i];
        k->type = (int8_t)(d->token_types ? d->token_types[i] : MLXN_TOKTYPE_NORMAL);
        k->score = d->scores ? d->scores[i] : 0.0f;
        if (k->type == MLXN_TOKTYPE_CONTROL || k->type == MLXN_TOKTYPE_UNKNOWN) k->special = k->added = 1;
        if (k->type == MLXN_TOKTYPE_USER_DEFINED) k->added = 1;
    }
    t->byte_level = !spm;
    t->no_unk_in_bpe = !spm;
    t->score_merges = spm;
    t->byte_fallback = spm;
    int32_t ids[4] = {d->bos_id, d->eos_id, d->unk_id, d->pad_id};
    for (int i = 0; i < 4 && st == MLXN_OK; i++)
        if (ids[i] < -1 || ids[i] >= d->n_tokens)
            st = mlxn_set_error(MLXN_ERR_FORMAT, "tokenizer_from_vocab: special token id %d outside [0, %lld)",
                                ids[i], (long long)d->n_tokens);
    t->bos = d->bos_id;
    t->eos = d->eos_id;
    t->unk = d->unk_id;
    t->pad = d->pad_id;
    t->add_bos = d->add_bos >= 0 ? d->add_bos : spm;
    if (st == MLXN_OK && spm) {
        if (!d->no_space_prefix) {
            st = add_norm(t, TK_NORM_PREPEND, SPM_SPACE, 3, NULL, 0, 0);
            t->strip_leading_space = 1;
        }
        if (st == MLXN_OK) st = add_norm(t, TK_NORM_REPLACE, " ", 1, SPM_SPACE, 3, 0);
    } else if (st == MLXN_OK) {
        st = gguf_pre_preset(t, d->pre);
    }
    if (st == MLXN_OK && d->chat_template && !(t->chat_template = strdup(d->chat_template)))
        st = mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "tokenizer: chat template");
    if (st == MLXN_OK) st = finalize(t);
    if (st == MLXN_OK && !spm) {
        st = tk_pairmap_init(&t->merges, (size_t)d->n_merges);
        for (int64_t i = 0; i < d->n_merges && st == MLXN_OK; i++) {
            const char *m = d->merges[i];
            size_t n = d->merge_lens ? d->merge_lens[i] : (m ? strlen(m) : 0);
            const char *sp = (m && n > 1) ? memchr(m + 1, ' ', n - 1) : NULL;
            int32_t a = -1, b = -1, r = -1;
            if (sp) {
                a = tk_strmap_get(&t->vocab, t->tok, m, (size_t)(sp - m));
                b = tk_strmap_get(&t->vocab, t->tok, sp + 1, n - (size_t)(sp - m) - 1);
                char *cat = malloc(n);
                if (!cat) {
                    st = mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "tokenizer: merges");
                    break;
                }
                memcpy(cat, m, (size_t)(sp - m));
                memcpy(cat + (sp - m), sp + 1, n - (size_t)(sp - m) - 1);
                r = tk_strmap_get(&t->vocab, t->tok, cat, n - 1);
                free(cat);
            }
            if (a < 0 || b < 0 || r < 0)
                st = mlxn_set_error(MLXN_ERR_FORMAT, "tokenizer_from_vocab: merge %lld '%.*s' refers to a token not in "
                                    "the vocabulary", (long long)i, (int)(n > 64 ? 64 : n), m ? m : "");
            else
                tk_pairmap_put(&t->merges, a, b, (int32_t)i, r);
        }
    }
    if (st != MLXN_OK) {
        mlxn_tokenizer_free(t);
        return st;
    }
    *out = t;
    return MLXN_OK;
}

mlxn_status mlxn_tokenizer_from_gguf(const mlxn_gguf *g, mlxn_tokenizer **out) {
    if (!g || !out) return mlxn_set_error(MLXN_ERR_INVALID_ARG, "tokenizer_from_gguf: NULL argument");
    *out = NULL;
    mlxn_tokenizer_vocab_desc d;
    memset(&d, 0, sizeof d);
    d.bos_id = d.eos_id = d.unk_id = d.pad_id = -1;
    d.add_bos = -1;
    const char *pre = NULL, *tmpl = NULL;
    uint64_t n = 0;
    MLXN_TRY(mlxn_gguf_get_str(g, "tokenizer.ggml.model", &d.model, NULL));
    if (mlxn_gguf_find_key(g, "tokenizer.ggml.pre") >= 0) MLXN_TRY(mlxn_gguf_get_str(g, "tokenizer.ggml.pre", &pre, NULL));
    d.pre = pre;
    if (mlxn_gguf_find_key(g, "tokenizer.chat_template") >= 0)
        MLXN_TRY(mlxn_gguf_get_str(g, "tokenizer.chat_template", &tmpl, NULL));
    d.chat_template = tmpl;
    mlxn_gguf_kv_type et;
    const void *data;
    MLXN_TRY(mlxn_gguf_get_arr(g, "tokenizer.ggml.tokens", &et, &n, &data));
    d.n_tokens = (int64_t)n;
    uint64_t n_merges = 0;
    if (mlxn_gguf_find_key(g, "tokenizer.ggml.merges") >= 0)
        MLXN_TRY(mlxn_gguf_get_arr(g, "tokenizer.ggml.merges", &et, &n_merges, &data));
    d.n_merges = (int64_t)n_merges;
    const char **toks = calloc(n + 1, sizeof(char *)), **merges = calloc(n_merges + 1, sizeof(char *));
    size_t *tl = calloc(n + 1, sizeof(size_t)), *ml = calloc(n_merges + 1, sizeof(size_t));
    int32_t *types = NULL;
    float *scores = NULL;
    mlxn_status st = (toks && merges && tl && ml) ? MLXN_OK : mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "tokenizer_from_gguf");
    for (uint64_t i = 0; i < n && st == MLXN_OK; i++) {
        uint64_t len;
        st = mlxn_gguf_get_arr_str(g, "tokenizer.ggml.tokens", i, &toks[i], &len);
        tl[i] = (size_t)len;
    }
    for (uint64_t i = 0; i < n_merges && st == MLXN_OK; i++) {
        uint64_t len;
        st = mlxn_gguf_get_arr_str(g, "tokenizer.ggml.merges", i, &merges[i], &len);
        ml[i] = (size_t)len;
    }
    if (st == MLXN_OK && mlxn_gguf_find_key(g, "tokenizer.ggml.token_type") >= 0) {
        uint64_t c;
        st = mlxn_gguf_get_arr(g, "tokenizer.ggml.token_type", &et, &c, &data);
        if (st == MLXN_OK && (c != n || (et != MLXN_GGUF_KV_I32 && et != MLXN_GGUF_KV_U32)))
            st = mlxn_set_error(MLXN_ERR_FORMAT, "tokenizer_from_gguf: token_type has %llu %s entries, want %llu i32",
                                (unsigned long long)c, mlxn_gguf_kv_type_name(et), (unsigned long long)n);
        if (st == MLXN_OK && !(types = malloc(n * sizeof(int32_t) + 1)))
            st = mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "tokenizer_from_gguf");
        if (st == MLXN_OK) memcpy(types, data, n * sizeof(int32_t));
    }
    if (st == MLXN_OK && mlxn_gguf_find_key(g, "tokenizer.ggml.scores") >= 0) {
        uint64_t c;
        st = mlxn_gguf_get_arr(g, "tokenizer.ggml.scores", &et, &c, &data);
        if (st == MLXN_OK && (c != n || et != MLXN_GGUF_KV_F32))
            st = mlxn_set_error(MLXN_ERR_FORMAT, "tokenizer_from_gguf: scores has %llu %s entries, want %llu f32",
                                (unsigned long long)c, mlxn_gguf_kv_type_name(et), (unsigned long long)n);
        if (st == MLXN_OK && !(scores = malloc(n * sizeof(float) + 1)))
            st = mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "tokenizer_from_gguf");
        if (st == MLXN_OK) memcpy(scores, data, n * sizeof(float));
    }
    static const char *const id_keys[4] = {"tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
                                           "tokenizer.ggml.unknown_token_id", "tokenizer.ggml.padding_token_id"};
    int32_t *id_out[4] = {&d.bos_id, &d.eos_id, &d.unk_id, &d.pad_id};
    for (int i = 0; i < 4 && st == MLXN_OK; i++)
        if (mlxn_gguf_find_key(g, id_keys[i]) >= 0) st = mlxn_gguf_get_i32(g, id_keys[i], id_out[i]);
    if (st == MLXN_OK && mlxn_gguf_find_key(g, "tokenizer.ggml.add_bos_token") >= 0)
        st = mlxn_gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &d.add_bos);
    if (st == MLXN_OK && mlxn_gguf_find_key(g, "tokenizer.ggml.add_space_prefix") >= 0) {
        int v = 1;
        st = mlxn_gguf_get_bool(g, "tokenizer.ggml.add_space_prefix", &v);
        d.no_space_prefix = !v;
    }
    if (st == MLXN_OK) {
        d.tokens = toks;
        d.token_lens = tl;
        d.merges = merges;
        d.merge_lens = ml;
        d.token_types = types;
        d.scores = scores;
        st = mlxn_tokenizer_from_vocab(&d, out);
    }
    free(toks);
    free(tl);
    free(merges);
    free(ml);
    free(types);
    free(scores);
    if (st != MLXN_OK) return mlxn_error_prefix(st, "gguf '%s'", mlxn_gguf_path(g));
    return MLXN_OK;
}

/* ---------------------------------------------------------------- tokenizer.json */

static const char *jstr(json_t *o, const char *key) {
    json_t *v = json_object_get(o, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static int jbool(json_t *o, const char *key, int def) {
    json_t *v = json_object_get(o, key);
    return json_is_boolean(v) ? json_is_true(v) : def;
}

static mlxn_status parse_normalizer(mlxn_tokenizer *t, json_t *n) {
    if (!n || json_is_null(n)) return MLXN_OK;
    const char *type = jstr(n, "type");
    if (!type) return mlxn_set_error(MLXN_ERR_FORMAT, "tokenizer.json: normalizer without a type");
    if (strcmp(type, "Sequence") == 0) {
        json_t *arr = json_object_get(n, "normalizers");
        size_t i;
        json_t *v;
        json_array_foreach(arr, i, v) MLXN_TRY(parse_normalizer(t, v));
        return MLXN_OK;
    }
    if (strcmp(type, "Prepend") == 0) {
        const char *p = jstr(n, "prepend");
        if (!p) return mlxn_set_error(MLXN_ERR_FORMAT, "tokenizer.json: Prepend normalizer without 'prepend'");
        return add_norm(t, TK_NORM_PREPEND, p, strlen(p), NULL, 0, 0);
    }
    if (strcmp(type, "Replace") == 0) {
        const char *from = jstr(json_object_get(n, "pattern"), "String"), *to = jstr(n, "content");
        if (!from || !to)
            return mlxn_set_error(MLXN_ERR_UNSUPPORTED, "tokenizer.json: Replace normalizer supports only a String "
                                  "pattern and a content string");
        return add_norm(t, TK_NORM_REPLACE, from, strlen(from), to, strlen(to), 0);
    }
    if (strcmp(type, "NFC") == 0) return add_norm(t, TK_NORM_NFC, NULL, 0, NULL, 0, 0);
    return mlxn_set_error(MLXN_ERR_UNSUPPORTED, "tokenizer.json: normalizer '%s' is not supported", type);
}

static mlxn_status parse_pre(mlxn_tokenizer *t, json_t *p) {
    if (!p || json_is_null(p)) return MLXN_OK;
    const char *type = jstr(p, "type");
    if (!type) return mlxn_set_error(MLXN_ERR_FORMAT, "tokenizer.json: pre_tokenizer without a type");
    if (strcmp(type, "Sequence") == 0) {
        json_t *arr = json_object_get(p, "pretokenizers");
        size_t i;
        json_t *v;
        json_array_foreach(arr, i, v) MLXN_TRY(parse_pre(t, v));
        return MLXN_OK;
    }
    if (strcmp(type, "ByteLevel") == 0) {
        if (jbool(p, "add_prefix_space", 0))
            return mlxn_set_error(MLXN_ERR_UNSUPPORTED, "tokenizer.json: ByteLevel add_prefix_space=true is not supported");
        t->byte_level = 1;
        if (jbool(p, "use_regex", 1)) return add_pre_regex(t, RE_GPT2, strlen(RE_GPT2), 0, TK_SPLIT_ISOLATED);
        return MLXN_OK;
    }
    if (strcmp(type, "Digits") == 0) {
        int ind = jbool(p, "individual_digits", 0);
        return add_pre_regex(t, ind ? "\\p{N}" : "\\p{N}+", ind ? 5 : 6, 0, TK_SPLIT_ISOLATED);
    }
    if (strcmp(type, "Split") == 0) {
        json_t *pat = json_object_get(p, "pattern");
        const char *re = jstr(pat, "Regex"), *lit = jstr(pat, "String"), *beh = jstr(p, "behavior");
        static const char *const names[] = {"Isolated", "Removed", "MergedWithPrevious", "MergedWithNext"};
        int b = -1;
        for (int i = 0; i < 4 && beh; i++)
            if (strcmp(beh, names[i]) == 0) b = i;
        if ((!re && !lit) || b < 0 || jbool(p, "invert", 0))
            return mlxn_set_error(MLXN_ERR_UNSUPPORTED, "tokenizer.json: Split pre-tokenizer (behavior '%s', invert %d) "
                                  "is not supported", beh ? beh : "?", jbool(p, "invert", 0));
        return add_pre_regex(t, re ? re : lit, strlen(re ? re : lit), re == NULL, b);
    }
    if (strcmp(type, "Metaspace") == 0) {
        if (t->n_pre)
            return mlxn_set_error(MLXN_ERR_UNSUPPORTED, "tokenizer.json: Metaspace is supported only as the first pre-tokenizer");
        const char *rep = jstr(p, "replacement"), *scheme = jstr(p, "prepend_scheme");
        if (!rep) rep = SPM_SPACE;
        int pre = jbool(p, "add_prefix_space", 1) ? TK_PREPEND_ALWAYS : TK_PREPEND_NEVER;
        if (scheme) pre = strcmp(scheme, "first") == 0 ? TK_PREPEND_FIRST : strcmp(scheme, "never") == 0 ? TK_PREPEND_NEVER : TK_PREPEND_ALWAYS;
        MLXN_TRY(add_norm(t, TK_NORM_METASPACE, rep, strlen(rep), NULL, 0, pre));
        if (pre != TK_PREPEND_NEVER) t->strip_leading_space = 1;
        if (jbool(p, "split", 1)) return add_pre_metaspace_split(t, rep, strlen(rep));
        return MLXN_OK;
    }
    return mlxn_set_error(MLXN_ERR_UNSUPPORTED, "tokenizer.json: pre_tokenizer '%s' is not supported", type);
}

/* Decoder: only whether one leading space is stripped (Strip start=1, Metaspace with a prefix). */
static void parse_decoder(mlxn_tokenizer *t, json_t *d) {
    if (!d || json_is_null(d)) return;
    const char *type = jstr(d, "type");
    if (!type) return;
    if (strcmp(type, "Sequence") == 0) {
        size_t i;
        json_t *v;
        json_array_foreach(json_object_get(d, "decoders"), i, v) parse_decoder(t, v);
    } else if (strcmp(type, "Strip") == 0) {
        const char *c = jstr(d, "content");
        json_t *s = json_object_get(d, "start");
        if (c && strcmp(c, " ") == 0 && json_is_integer(s) && json_integer_value(s) >= 1) t->strip_leading_space = 1;
    } else if (strcmp(type, "ByteLevel") == 0) {
        t->byte_level = 1;
    }
}

/* BOS from a TemplateProcessing post-processor whose single template starts with a special token. */
static void parse_post(mlxn_tokenizer *t, json_t *p) {
    if (!p || json_is_null(p)) return;
    const char *type = jstr(p, "type");
    if (!type) return;
    if (strcmp(type, "Sequence") == 0) {
        size_t i;
        json_t *v;
        json_array_foreach(json_object_get(p, "processors"), i, v) parse_post(t, v);
    } else if (strcmp(type, "TemplateProcessing") == 0) {
        json_t *first = json_array_get(json_object_get(p, "single"), 0);
        const char *name = jstr(json_object_get(first, "SpecialToken"), "id");
        if (!name) return;
        json_t *ids = json_object_get(json_object_get(json_object_get(p, "special_tokens"), name), "ids");
        json_t *id = json_array_get(ids, 0);
        if (json_is_integer(id) && json_integer_value(id) >= 0 && json_integer_value(id) < t->n_vocab) {
            t->bos = (int32_t)json_integer_value(id);
            t->add_bos = 1;
        }
    }
}

static mlxn_status parse_model(mlxn_tokenizer **out, json_t *root) {
    json_t *model = json_object_get(root, "model"), *vocab = json_object_get(model, "vocab");
    json_t *merges = json_object_get(model, "merges"), *added = json_object_get(root, "added_tokens");
    const char *type = jstr(model, "type");
    if (type && strcmp(type, "BPE") != 0)
        return mlxn_set_error(MLXN_ERR_UNSUPPORTED, "tokenizer.json: model type '%s' is not supported (BPE only)", type);
    if (!json_is_object(vocab) || !json_is_array(merges))
        return mlxn_set_error(MLXN_ERR_FORMAT, "tokenizer.json: model.vocab (object) and model.merges (array) are required");
    const char *cp = jstr(model, "continuing_subword_prefix"), *ew = jstr(model, "end_of_word_suffix");
    if ((cp && *cp) || (ew && *ew))
        return mlxn_set_error(MLXN_ERR_UNSUPPORTED, "tokenizer.json: BPE continuing_subword_prefix/end_of_word_suffix "
                              "are not supported");
    int64_t n = 0;
    const char *key;
    json_t *v;
    json_object_foreach(vocab, key, v) {
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) >= INT32_MAX)
            return mlxn_set_error(MLXN_ERR_FORMAT, "tokenizer.json: vocab entry '%.64s' has no valid id", key);
        if (json_integer_value(v) + 1 > n) n = json_integer_value(v) + 1;
    }
    size_t i;
    json_array_foreach(added, i, v) {
        json_t *id = json_object_get(v, "id");
        if (!json_is_integer(id) || json_integer_value(id) < 0 || json_integer_value(id) >= INT32_MAX ||
            !jstr(v, "content"))
            return mlxn_set_error(MLXN_ERR_FORMAT, "tokenizer.json: added_tokens[%zu] needs an id and a content", i);
        if (json_integer_value(id) + 1 > n) n = json_integer_value(id) + 1;
    }
    mlxn_tokenizer *t;
    MLXN_TRY(tk_new(n, &t));
    *out = t;
    json_object_foreach(vocab, key, v) {
        int64_t id = json_integer_value(v);
        MLXN_TRY(set_text(t, id, key, strlen(key)));
        t->tok[id].type = MLXN_TOKTYPE_NORMAL;
    }
    json_array_foreach(added, i, v) {
        int64_t id = json_integer_value(json_object_get(v, "id"));
        const char *c = jstr(v, "content");
        MLXN_TRY(set_text(t, id, c, strlen(c)));
        tk_token *k = &t->tok[id];
        k->added = 1;
        k->special = (uint8_t)jbool(v, "special", 0);
        k->lstrip = (uint8_t)jbool(v, "lstrip", 0);
        k->rstrip = (uint8_t)jbool(v, "rstrip", 0);
        k->type = k->special ? MLXN_TOKTYPE_CONTROL : MLXN_TOKTYPE_USER_DEFINED;
    }
    t->byte_fallback = jbool(model, "byte_fallback", 0);
    t->fuse_unk = jbool(model, "fuse_unk", 0);
    t->ignore_merges = jbool(model, "ignore_merges", 0);
    MLXN_TRY(parse_normalizer(t, json_object_get(root, "normalizer")));
    MLXN_TRY(parse_pre(t, json_object_get(root, "pre_tokenizer")));
    parse_decoder(t, json_object_get(root, "decoder"));
    MLXN_TRY(finalize(t));
    const char *unk = jstr(model, "unk_token");
    if (unk) t->unk = tk_strmap_get(&t->vocab, t->tok, unk, strlen(unk));
    parse_post(t, json_object_get(root, "post_processor"));
    MLXN_TRY(tk_pairmap_init(&t->merges, json_array_size(merges)));
    char *cat = NULL;
    size_t cat_cap = 0;
    json_array_foreach(merges, i, v) {
        const char *a, *b;
        size_t an, bn;
        if (json_is_string(v)) {
            a = json_string_value(v);
            const char *sp = strchr(a, ' ');
            if (!sp || strchr(sp + 1, ' ')) {
                free(cat);
                return mlxn_set_error(MLXN_ERR_FORMAT, "tokenizer.json: merges[%zu] '%.64s' is not 'a b'", i, a);
            }
            an = (size_t)(sp - a);
            b = sp + 1;
            bn = strlen(b);
        } else if (json_is_array(v) && json_array_size(v) == 2 && json_is_string(json_array_get(v, 0)) &&
                   json_is_string(json_array_get(v, 1))) {
            a = json_string_value(json_array_get(v, 0));
            b = json_string_value(json_array_get(v, 1));
            an = strlen(a);
            bn = strlen(b);
        } else {
            free(cat);
            return mlxn_set_error(MLXN_ERR_FORMAT, "tokenizer.json: merges[%zu] is neither \"a b\" nor [a, b]", i);
        }
        if (an + bn + 1 > cat_cap) {
            cat_cap = (an + bn + 1) * 2;
            char *nc = realloc(cat, cat_cap);
            if (!nc) {
                free(cat);
                return mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "tokenizer: merges");
            }
            cat = nc;
        }
        memcpy(cat, a, an);
        memcpy(cat + an, b, bn);
        int32_t ia = tk_strmap_get(&t->vocab, t->tok, a, an), ib = tk_strmap_get(&t->vocab, t->tok, b, bn);
        int32_t r = tk_strmap_get(&t->vocab, t->tok, cat, an + bn);
        if (ia < 0 || ib < 0 || r < 0) {
            free(cat);
            return mlxn_set_error(MLXN_ERR_FORMAT, "tokenizer.json: merges[%zu] ('%.*s', '%.*s') uses a token not in "
                                  "the vocabulary", i, (int)(an > 64 ? 64 : an), a, (int)(bn > 64 ? 64 : bn), b);
        }
        tk_pairmap_put(&t->merges, ia, ib, (int32_t)i, r);
    }
    free(cat);
    return MLXN_OK;
}

static mlxn_status from_root(json_t *root, mlxn_tokenizer **out) {
    mlxn_tokenizer *t = NULL;
    mlxn_status st = parse_model(&t, root);
    if (st != MLXN_OK) {
        mlxn_tokenizer_free(t);
        return st;
    }
    *out = t;
    return MLXN_OK;
}

mlxn_status mlxn_tokenizer_from_json_text(const char *json, size_t len, mlxn_tokenizer **out) {
    if (!json || !out) return mlxn_set_error(MLXN_ERR_INVALID_ARG, "tokenizer_from_json_text: NULL argument");
    *out = NULL;
    json_error_t err;
    json_t *root = json_loadb(json, len, 0, &err);
    if (!root)
        return mlxn_set_error(MLXN_ERR_FORMAT, "tokenizer.json: line %d column %d: %s", err.line, err.column, err.text);
    mlxn_status st = json_is_object(root) ? from_root(root, out)
                                          : mlxn_set_error(MLXN_ERR_FORMAT, "tokenizer.json: top level is not an object");
    json_decref(root);
    return st;
}

/* tokenizer_config.json: a token given as "text" or {"content": "text"}. */
static int32_t config_token(const mlxn_tokenizer *t, json_t *cfg, const char *key) {
    json_t *v = json_object_get(cfg, key);
    const char *s = json_is_string(v) ? json_string_value(v) : jstr(v, "content");
    return s ? tk_strmap_get(&t->vocab, t->tok, s, strlen(s)) : -1;
}

static mlxn_status apply_config(mlxn_tokenizer *t, json_t *cfg, const char *path) {
    int32_t id = config_token(t, cfg, "bos_token");
    if (id >= 0) t->bos = id;
    id = config_token(t, cfg, "eos_token");
    if (id >= 0) {
        t->eos = id;
        t->tok[id].eog = 1;
    }
    id = config_token(t, cfg, "pad_token");
    if (id >= 0) t->pad = id;
    id = config_token(t, cfg, "unk_token");
    if (id >= 0 && t->unk < 0) t->unk = id;
    json_t *ab = json_object_get(cfg, "add_bos_token");
    if (json_is_boolean(ab)) t->add_bos = json_is_true(ab);
    json_t *ct = json_object_get(cfg, "chat_template");
    const char *tmpl = NULL;
    if (json_is_string(ct)) {
        tmpl = json_string_value(ct);
    } else if (json_is_array(ct)) { /* [{name, template}, ...]: "default", else the first */
        size_t i;
        json_t *v;
        json_array_foreach(ct, i, v) {
            const char *name = jstr(v, "name");
            if (!tmpl || (name && strcmp(name, "default") == 0)) tmpl = jstr(v, "template");
        }
    } else if (ct && !json_is_null(ct)) {
        return mlxn_set_error(MLXN_ERR_FORMAT, "%s: chat_template is neither a string nor a list", path);
    }
    if (tmpl && !(t->chat_template = strdup(tmpl))) return mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "tokenizer");
    return MLXN_OK;
}

static mlxn_status load_json_file(const char *path, json_t **out) {
    json_error_t err;
    FILE *f = fopen(path, "rb");
    if (!f) return mlxn_set_error(MLXN_ERR_IO, "tokenizer: cannot open '%s'", path);
    json_t *root = json_loadf(f, 0, &err);
    fclose(f);
    if (!root) return mlxn_set_error(MLXN_ERR_FORMAT, "'%s': line %d column %d: %s", path, err.line, err.column, err.text);
    if (!json_is_object(root)) {
        json_decref(root);
        return mlxn_set_error(MLXN_ERR_FORMAT, "'%s': top level is not an object", path);
    }
    *out = root;
    return MLXN_OK;
}

mlxn_status mlxn_tokenizer_from_json(const char *tokenizer_json_path, const char *tokenizer_config_json_path,
                                     mlxn_tokenizer **out) {
    if (!tokenizer_json_path || !out) return mlxn_set_error(MLXN_ERR_INVALID_ARG, "tokenizer_from_json: NULL argument");
    *out = NULL;
    json_t *root = NULL, *cfg = NULL;
    MLXN_TRY(load_json_file(tokenizer_json_path, &root));
    mlxn_tokenizer *t = NULL;
    mlxn_status st = from_root(root, &t);
    json_decref(root);
    if (st != MLXN_OK) return mlxn_error_prefix(st, "'%s'", tokenizer_json_path);
    if (tokenizer_config_json_path) {
        st = load_json_file(tokenizer_config_json_path, &cfg);
        if (st == MLXN_OK) st = apply_config(t, cfg, tokenizer_config_json_path);
        json_decref(cfg);
    }
    if (st != MLXN_OK) {
        mlxn_tokenizer_free(t);
        return st;
    }
    *out = t;
    return MLXN_OK;
}
