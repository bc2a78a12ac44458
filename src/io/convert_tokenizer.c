/* convert_tokenizer.c — the tokenizer half of GGUF → MLX conversion:
 * builds tokenizer.json (byte-level BPE with the pre-tokenizer that matches
 * tokenizer.ggml.pre, or a SentencePiece-style BPE with byte fallback) and
 * tokenizer_config.json (special tokens, chat template) from the GGUF's
 * tokenizer.ggml.* metadata, the way mlx-lm / Hugging Face write them. */
#include "io/convert_internal.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "io/gguf.h"

static const char *LLAMA3_REGEX =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|"
    "\\s+(?!\\S)|\\s+";
static const char *QWEN2_REGEX =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|"
    "\\s+(?!\\S)|\\s+";

static json_t *byte_level(int use_regex) {
    return json_pack("{s:s, s:b, s:b, s:b}", "type", "ByteLevel", "add_prefix_space", 0, "trim_offsets", 1, "use_regex",
                     use_regex);
}

static json_t *pre_tokenizer_for(const char *pre) {
    const char *regex = NULL;
    if (pre && (!strcmp(pre, "llama-bpe") || !strcmp(pre, "llama3") || !strcmp(pre, "llama-v3"))) regex = LLAMA3_REGEX;
    else if (pre && !strcmp(pre, "qwen2")) regex = QWEN2_REGEX;
    if (regex)
        return json_pack("{s:s, s:[{s:s, s:{s:s}, s:s, s:b}, o]}", "type", "Sequence", "pretokenizers", "type", "Split",
                         "pattern", "Regex", regex, "behavior", "Isolated", "invert", 0, byte_level(0));
    if (pre && !strcmp(pre, "smollm"))
        return json_pack("{s:s, s:[{s:s, s:b}, o]}", "type", "Sequence", "pretokenizers", "type", "Digits",
                         "individual_digits", 1, byte_level(1));
    if (pre && strcmp(pre, "gpt2") && strcmp(pre, "default"))
        mlxn_log(1, "convert: tokenizer.ggml.pre '%s' unknown; using the GPT-2 byte-level pre-tokenizer", pre);
    return byte_level(1);
}

static const char *tok_str(const mlxn_gguf *g, int64_t id, int64_t n, char *buf, size_t cap) {
    const char *s;
    uint64_t len;
    if (id < 0 || id >= n || mlxn_gguf_get_arr_str(g, "tokenizer.ggml.tokens", (uint64_t)id, &s, &len)) return NULL;
    if (len >= cap) len = cap - 1;
    memcpy(buf, s, len);
    buf[len] = 0;
    return buf;
}

int64_t mlxn_convert_gguf_opt_id(const mlxn_gguf *g, const char *key) {
    uint32_t v;
    if (mlxn_gguf_get_u32(g, key, &v) != MLXN_OK) { mlxn_clear_error(); return -1; }
    return v;
}

typedef struct spm_merge {
    float score;
    int32_t a, b;
} spm_merge;

static int cmp_spm_merge(const void *x, const void *y) {
    const spm_merge *p = x, *q = y;
    if (p->score != q->score) return p->score > q->score ? -1 : 1;
    if (p->a != q->a) return p->a < q->a ? -1 : 1;
    return (p->b > q->b) - (p->b < q->b);
}

static int32_t tok_type_at(const void *types, mlxn_gguf_kv_type tt, uint64_t n_types, uint64_t i) {
    int32_t type = 1;
    if (types && i < n_types && (tt == MLXN_GGUF_KV_I32 || tt == MLXN_GGUF_KV_U32)) memcpy(&type, (const char *)types + i * 4, 4);
    return type;
}

/* SentencePiece vocabulary -> BPE merges the way Hugging Face's LlamaConverter
 * derives them: every split of a normal piece into two normal pieces is a
 * merge, ranked by the merged piece's score (descending), then by the ids of
 * the two halves. Appends [a, b] pairs to `merges`. */
static mlxn_status spm_merges(const mlxn_gguf *g, json_t *vocab, const void *types, mlxn_gguf_kv_type tt,
                              uint64_t n_types, uint64_t n_tok, json_t *merges) {
    const void *scores = NULL;
    mlxn_gguf_kv_type st_t;
    uint64_t n_sc = 0;
    if (mlxn_gguf_get_arr(g, "tokenizer.ggml.scores", &st_t, &n_sc, &scores) != MLXN_OK || st_t != MLXN_GGUF_KV_F32) {
        mlxn_clear_error();
        scores = NULL;
    }
    size_t cap = 1024, n = 0;
    spm_merge *m = malloc(cap * sizeof *m);
    if (!m) return mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "convert: out of memory");
    char buf[1024];
    for (uint64_t i = 0; i < n_tok; i++) {
        if (tok_type_at(types, tt, n_types, i) != 1) continue;
        const char *s;
        uint64_t len;
        if (mlxn_gguf_get_arr_str(g, "tokenizer.ggml.tokens", i, &s, &len) != MLXN_OK) { free(m); return MLXN_ERR_FORMAT; }
        if (len >= sizeof buf) continue;
        float sc = 0;
        if (scores && i < n_sc) memcpy(&sc, (const char *)scores + i * 4, 4);
        for (uint64_t k = 1; k < len; k++) {
            if (((unsigned char)s[k] & 0xC0) == 0x80) continue; /* split only at UTF-8 character boundaries */
            memcpy(buf, s, k);
            buf[k] = 0;
            json_t *ja = json_object_get(vocab, buf);
            memcpy(buf, s + k, len - k);
            buf[len - k] = 0;
            json_t *jb = json_object_get(vocab, buf);
            if (!ja || !jb) continue;
            int32_t ia = (int32_t)json_integer_value(ja), ib = (int32_t)json_integer_value(jb);
            if (tok_type_at(types, tt, n_types, (uint64_t)ia) != 1 || tok_type_at(types, tt, n_types, (uint64_t)ib) != 1) continue;
            if (n == cap) {
                spm_merge *nm = realloc(m, 2 * cap * sizeof *m);
                if (!nm) { free(m); return mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "convert: out of memory"); }
                m = nm;
                cap *= 2;
            }
            m[n++] = (spm_merge){sc, ia, ib};
        }
    }
    qsort(m, n, sizeof *m, cmp_spm_merge);
    for (size_t i = 0; i < n; i++) {
        const char *a, *b;
        uint64_t la, lb;
        if (mlxn_gguf_get_arr_str(g, "tokenizer.ggml.tokens", (uint64_t)m[i].a, &a, &la) ||
            mlxn_gguf_get_arr_str(g, "tokenizer.ggml.tokens", (uint64_t)m[i].b, &b, &lb)) {
            free(m);
            return MLXN_ERR_FORMAT;
        }
        json_array_append_new(merges, json_pack("[s%, s%]", a, (size_t)la, b, (size_t)lb));
    }
    free(m);
    return MLXN_OK;
}

/* tokenizer.json + tokenizer_config.json + generation_config.json from GGUF
 * metadata: "gpt2" (byte-level BPE: vocab, merges, pre-tokenizer chosen by
 * tokenizer.ggml.pre) and "llama" (SentencePiece BPE with byte fallback,
 * merges derived from the scores as Hugging Face's converter does). */
mlxn_status mlxn_convert_write_gguf_tokenizer(const mlxn_gguf *g, const char *out_dir, int64_t ctx_len, int *written) {
    const char *model = NULL, *pre = NULL, *tmpl = NULL;
    if (mlxn_gguf_get_str(g, "tokenizer.ggml.model", &model, NULL) != MLXN_OK) {
        mlxn_clear_error();
        mlxn_log(1, "convert: no tokenizer in the GGUF; tokenizer.json not written");
        return MLXN_OK;
    }
    const int spm = !strcmp(model, "llama");
    if (!spm && strcmp(model, "gpt2")) {
        mlxn_log(1, "convert: tokenizer model '%s' is not supported (gpt2, llama); tokenizer.json not written", model);
        return MLXN_OK;
    }
    if (mlxn_gguf_get_str(g, "tokenizer.ggml.pre", &pre, NULL) != MLXN_OK) { mlxn_clear_error(); pre = NULL; }
    if (mlxn_gguf_get_str(g, "tokenizer.chat_template", &tmpl, NULL) != MLXN_OK) { mlxn_clear_error(); tmpl = NULL; }
    mlxn_gguf_kv_type et;
    uint64_t n_tok = 0, n_merges = 0, n_types = 0;
    const void *dummy;
    mlxn_status st = mlxn_gguf_get_arr(g, "tokenizer.ggml.tokens", &et, &n_tok, &dummy);
    if (st) return mlxn_error_prefix(st, "convert: gguf '%s'", mlxn_gguf_path(g));
    const void *types = NULL;
    mlxn_gguf_kv_type tt = MLXN_GGUF_KV_I32;
    if (mlxn_gguf_get_arr(g, "tokenizer.ggml.token_type", &tt, &n_types, &types) != MLXN_OK) { mlxn_clear_error(); types = NULL; }
    if (spm || mlxn_gguf_get_arr(g, "tokenizer.ggml.merges", &et, &n_merges, &dummy) != MLXN_OK) { mlxn_clear_error(); n_merges = 0; }

    json_t *vocab = json_object(), *merges = json_array(), *added = json_array();
    if (!vocab || !merges || !added) { st = mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "convert: out of memory"); goto done; }
    char key[1024];
    for (uint64_t i = 0; i < n_tok; i++) {
        const char *s;
        uint64_t len;
        st = mlxn_gguf_get_arr_str(g, "tokenizer.ggml.tokens", i, &s, &len);
        if (st) goto done;
        if (len >= sizeof key || memchr(s, 0, len)) continue;
        memcpy(key, s, len);
        key[len] = 0;
        json_object_set_new(vocab, key, json_integer((json_int_t)i));
        int32_t type = tok_type_at(types, tt, n_types, i);
        if (type == 3 || type == 4 || (spm && type == 2))
            json_array_append_new(added, json_pack("{s:I, s:s%, s:b, s:b, s:b, s:b, s:b}", "id", (json_int_t)i, "content", s,
                                                   (size_t)len, "single_word", 0, "lstrip", 0, "rstrip", 0,
                                                   "normalized", type == 4, "special", type != 4));
    }
    if (spm) {
        st = spm_merges(g, vocab, types, tt, n_types, n_tok, merges);
        if (st) { mlxn_error_prefix(st, "convert: gguf '%s': tokenizer merges", mlxn_gguf_path(g)); goto done; }
    }
    for (uint64_t i = 0; i < n_merges; i++) {
        const char *s;
        uint64_t len;
        st = mlxn_gguf_get_arr_str(g, "tokenizer.ggml.merges", i, &s, &len);
        if (st) goto done;
        json_array_append_new(merges, json_stringn(s, len));
    }
    int add_bos = spm, space_prefix = 1;
    if (mlxn_gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &add_bos) != MLXN_OK) { mlxn_clear_error(); add_bos = spm; }
    if (mlxn_gguf_get_bool(g, "tokenizer.ggml.add_space_prefix", &space_prefix) != MLXN_OK) { mlxn_clear_error(); space_prefix = 1; }
    int64_t bos = mlxn_convert_gguf_opt_id(g, "tokenizer.ggml.bos_token_id"), eos = mlxn_convert_gguf_opt_id(g, "tokenizer.ggml.eos_token_id");
    int64_t unk = mlxn_convert_gguf_opt_id(g, "tokenizer.ggml.unknown_token_id"), pad = mlxn_convert_gguf_opt_id(g, "tokenizer.ggml.padding_token_id");
    char bb[512], eb[512], ub[512], pb[512];
    const char *bos_s = tok_str(g, bos, (int64_t)n_tok, bb, sizeof bb), *eos_s = tok_str(g, eos, (int64_t)n_tok, eb, sizeof eb);
    const char *unk_s = tok_str(g, unk, (int64_t)n_tok, ub, sizeof ub), *pad_s = tok_str(g, pad, (int64_t)n_tok, pb, sizeof pb);
    json_t *post;
    if (add_bos && bos_s)
        post = json_pack("{s:s, s:[{s:{s:s, s:i}}, {s:{s:s, s:i}}], s:[{s:{s:s, s:i}}, {s:{s:s, s:i}}, {s:{s:s, s:i}}, {s:{s:s, s:i}}],"
                         " s:{s:{s:s, s:[I], s:[s]}}}",
                         "type", "TemplateProcessing", "single", "SpecialToken", "id", bos_s, "type_id", 0, "Sequence", "id",
                         "A", "type_id", 0, "pair", "SpecialToken", "id", bos_s, "type_id", 0, "Sequence", "id", "A",
                         "type_id", 0, "SpecialToken", "id", bos_s, "type_id", 1, "Sequence", "id", "B", "type_id", 1,
                         "special_tokens", bos_s, "id", bos_s, "ids", (json_int_t)bos, "tokens", bos_s);
    else if (spm)
        post = json_null();
    else
        post = json_pack("{s:s, s:b, s:b, s:b}", "type", "ByteLevel", "add_prefix_space", 1, "trim_offsets", 0,
                         "use_regex", 1);
    json_t *normalizer, *pre_tok, *decoder;
    if (spm) {
        json_t *rep = json_pack("{s:s, s:{s:s}, s:s}", "type", "Replace", "pattern", "String", " ", "content", "\xe2\x96\x81");
        normalizer = space_prefix ? json_pack("{s:s, s:[{s:s, s:s}, o]}", "type", "Sequence", "normalizers", "type", "Prepend",
                                              "prepend", "\xe2\x96\x81", rep)
                                  : json_pack("{s:s, s:[o]}", "type", "Sequence", "normalizers", rep);
        pre_tok = json_null();
        json_t *dec = json_pack("[{s:s, s:{s:s}, s:s}, {s:s}, {s:s}]", "type", "Replace", "pattern", "String", "\xe2\x96\x81",
                                "content", " ", "type", "ByteFallback", "type", "Fuse");
        if (dec && space_prefix)
            json_array_append_new(dec, json_pack("{s:s, s:s, s:i, s:i}", "type", "Strip", "content", " ", "start", 1, "stop", 0));
        decoder = json_pack("{s:s, s:o}", "type", "Sequence", "decoders", dec);
    } else {
        normalizer = json_null();
        pre_tok = pre_tokenizer_for(pre);
        decoder = json_pack("{s:s, s:b, s:b, s:b}", "type", "ByteLevel", "add_prefix_space", 1, "trim_offsets", 1, "use_regex", 1);
    }
    json_t *tok = json_pack("{s:s, s:n, s:n, s:o, s:o, s:o, s:o, s:o, s:{s:s, s:n, s:o, s:n, s:n, s:b, s:b, s:b, s:o, s:o}}",
                            "version", "1.0", "truncation", "padding", "added_tokens", added, "normalizer", normalizer,
                            "pre_tokenizer", pre_tok, "post_processor", post, "decoder", decoder, "model", "type", "BPE",
                            "dropout", "unk_token", spm && unk_s ? json_string(unk_s) : json_null(),
                            "continuing_subword_prefix", "end_of_word_suffix", "fuse_unk", spm, "byte_fallback", spm,
                            "ignore_merges", 0, "vocab", vocab, "merges", merges);
    vocab = merges = added = NULL;
    if (!tok) { st = mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "convert: building tokenizer.json failed"); goto done; }
    st = mlxn_convert_write_json(tok, out_dir, "tokenizer.json", JSON_INDENT(2));
    json_decref(tok);
    if (st) goto done;
    json_t *tc = json_pack("{s:b, s:b, s:b, s:s, s:I}", "add_bos_token", add_bos, "add_prefix_space", 0,
                           "clean_up_tokenization_spaces", 0, "tokenizer_class", "PreTrainedTokenizerFast",
                           "model_max_length", (json_int_t)(ctx_len > 0 ? ctx_len : 2048));
    if (!tc) { st = mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "convert: out of memory"); goto done; }
    if (spm) json_object_set_new(tc, "legacy", json_false());
    json_object_set_new(tc, "bos_token", bos_s ? json_string(bos_s) : json_null());
    json_object_set_new(tc, "eos_token", eos_s ? json_string(eos_s) : json_null());
    json_object_set_new(tc, "unk_token", unk_s ? json_string(unk_s) : json_null());
    json_object_set_new(tc, "pad_token", pad_s ? json_string(pad_s) : json_null());
    if (tmpl) json_object_set_new(tc, "chat_template", json_string(tmpl));
    st = mlxn_convert_write_json(tc, out_dir, "tokenizer_config.json", JSON_INDENT(2) | JSON_SORT_KEYS);
    json_decref(tc);
    if (st) goto done;
    json_t *gc = json_object();
    if (bos >= 0) json_object_set_new(gc, "bos_token_id", json_integer(bos));
    if (eos >= 0) json_object_set_new(gc, "eos_token_id", json_integer(eos));
    if (pad >= 0) json_object_set_new(gc, "pad_token_id", json_integer(pad));
    st = mlxn_convert_write_json(gc, out_dir, "generation_config.json", JSON_INDENT(2) | JSON_SORT_KEYS);
    json_decref(gc);
    if (written && !st) *written = 1;
done:
    json_decref(vocab);
    json_decref(merges);
    json_decref(added);
    return st;
}
