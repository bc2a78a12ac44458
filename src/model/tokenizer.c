/* tokenizer.c — byte-level BPE and SentencePiece-style tokenizers (see
 * tokenizer.h). Encoding: validate UTF-8; cut the text at added tokens
 * (special ones only when asked); normalize each remaining segment (Prepend,
 * Replace, Metaspace); pre-tokenize it into pieces with a chain of PCRE2
 * regex splits (GPT-2 / Llama 3 / Qwen2 patterns with Unicode classes,
 * individual digits); then run BPE on each piece: symbols start as bytes
 * (byte-level) or characters (with <0xAB> byte fallback) and the best
 * adjacent pair is merged repeatedly, chosen from a binary heap by merge rank
 * (tokenizer.json, GGUF "gpt2") or by the merged piece's score (GGUF "llama",
 * SentencePiece). Lookups use open-addressing hash maps: token text -> id and
 * (left id, right id) -> (rank, merged id). Decoding maps each token back to
 * raw bytes once at load time. Loaders for tokenizer.json(+config) and for
 * GGUF metadata live in tokenizer_load.c. */
#include "model/tokenizer_impl.h"

#include <stdlib.h>
#include <string.h>
#ifdef MLXN_HAVE_UTF8PROC
#include <utf8proc.h>
#endif

/* ---------------------------------------------------------------- hashing */

static uint64_t fnv1a(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (uint8_t)s[i];
        h *= 1099511628211ull;
    }
    return h;
}

static uint64_t mix64(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

static uint32_t pow2_at_least(size_t n) {
    uint32_t c = 16;
    while (c < n * 2) c <<= 1;
    return c;
}

mlxn_status tk_strmap_init(tk_strmap *m, size_t n) {
    m->cap = pow2_at_least(n);
    m->slots = malloc(sizeof(int32_t) * m->cap);
    if (!m->slots) return mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "tokenizer: vocabulary map (%zu entries)", n);
    for (uint32_t i = 0; i < m->cap; i++) m->slots[i] = -1;
    return MLXN_OK;
}

/* Insert id under its token text; keeps an existing entry with the same text. */
void tk_strmap_put(tk_strmap *m, const tk_token *toks, int32_t id) {
    const tk_token *t = &toks[id];
    uint32_t mask = m->cap - 1, i = (uint32_t)fnv1a(t->text, t->len) & mask;
    while (m->slots[i] >= 0) {
        const tk_token *o = &toks[m->slots[i]];
        if (o->len == t->len && memcmp(o->text, t->text, t->len) == 0) return;
        i = (i + 1) & mask;
    }
    m->slots[i] = id;
}

int32_t tk_strmap_get(const tk_strmap *m, const tk_token *toks, const char *s, size_t n) {
    if (!m->slots) return -1;
    uint32_t mask = m->cap - 1, i = (uint32_t)fnv1a(s, n) & mask;
    while (m->slots[i] >= 0) {
        const tk_token *o = &toks[m->slots[i]];
        if (o->len == n && memcmp(o->text, s, n) == 0) return m->slots[i];
        i = (i + 1) & mask;
    }
    return -1;
}

mlxn_status tk_pairmap_init(tk_pairmap *m, size_t n) {
    m->cap = pow2_at_least(n);
    m->keys = malloc(sizeof(uint64_t) * m->cap);
    m->rank = malloc(sizeof(int32_t) * m->cap);
    m->res = malloc(sizeof(int32_t) * m->cap);
    if (!m->keys || !m->rank || !m->res)
        return mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "tokenizer: merge map (%zu merges)", n);
    for (uint32_t i = 0; i < m->cap; i++) m->rank[i] = -1;
    return MLXN_OK;
}

/* Returns 0 if the pair was already present (the first, lower rank wins). */
int tk_pairmap_put(tk_pairmap *m, int32_t a, int32_t b, int32_t rank, int32_t res) {
    uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    uint32_t mask = m->cap - 1, i = (uint32_t)mix64(key) & mask;
    while (m->rank[i] >= 0) {
        if (m->keys[i] == key) return 0;
        i = (i + 1) & mask;
    }
    m->keys[i] = key;
    m->rank[i] = rank;
    m->res[i] = res;
    return 1;
}

static int pairmap_get(const tk_pairmap *m, int32_t a, int32_t b, int32_t *rank, int32_t *res) {
    if (!m->keys) return 0;
    uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    uint32_t mask = m->cap - 1, i = (uint32_t)mix64(key) & mask;
    while (m->rank[i] >= 0) {
        if (m->keys[i] == key) {
            *rank = m->rank[i];
            *res = m->res[i];
            return 1;
        }
        i = (i + 1) & mask;
    }
    return 0;
}

/* ---------------------------------------------------------------- UTF-8 */

/* Length of the valid UTF-8 sequence at s[0..n), or 0 if invalid/incomplete
 * (*incomplete set when the bytes so far are a valid prefix). */
static size_t utf8_seq(const uint8_t *s, size_t n, int *incomplete) {
    *incomplete = 0;
    uint8_t c = s[0];
    if (c < 0x80) return 1;
    size_t len;
    uint32_t lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) len = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F; /* no surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else
        return 0;
    for (size_t i = 1; i < len; i++) {
        if (i >= n) {
            *incomplete = 1;
            return 0;
        }
        uint8_t d = s[i];
        if (i == 1 ? (d < lo || d > hi) : (d < 0x80 || d > 0xBF)) return 0;
    }
    return len;
}

size_t tk_utf8_len(uint8_t c) {
    return c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
}

static mlxn_status validate_utf8(const char *text, size_t len) {
    const uint8_t *s = (const uint8_t *)text;
    for (size_t i = 0; i < len;) {
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        int inc;
        size_t k = utf8_seq(s + i, len - i, &inc);
        if (!k)
            return mlxn_set_error(MLXN_ERR_INVALID_ARG,
                                  "tokenizer_encode: invalid UTF-8 at byte offset %zu (byte 0x%02X%s)", i, s[i],
                                  inc ? ", truncated sequence" : "");
        i += k;
    }
    return MLXN_OK;
}

/* GPT-2's byte <-> printable code point table. */
void tk_bytes_to_unicode(uint32_t cp[256]) {
    int n = 0;
    for (int b = 0; b < 256; b++) {
        if ((b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF)) cp[b] = (uint32_t)b;
        else cp[b] = 256u + (uint32_t)n++;
    }
}

size_t tk_utf8_encode(uint32_t c, char *out) {
    if (c < 0x80) {
        out[0] = (char)c;
        return 1;
    }
    if (c < 0x800) {
        out[0] = (char)(0xC0 | (c >> 6));
        out[1] = (char)(0x80 | (c & 0x3F));
        return 2;
    }
    if (c < 0x10000) {
        out[0] = (char)(0xE0 | (c >> 12));
        out[1] = (char)(0x80 | ((c >> 6) & 0x3F));
        out[2] = (char)(0x80 | (c & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (c >> 18));
    out[1] = (char)(0x80 | ((c >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((c >> 6) & 0x3F));
    out[3] = (char)(0x80 | (c & 0x3F));
    return 4;
}

/* ---------------------------------------------------------------- regex */

/* Rewrite \s and \S to White_Space explicitly: HF tokenizers' regex engine
 * (Oniguruma) counts U+0085 (NEL) as \s, PCRE2 10.42 with UCP does not. */
static char *rewrite_ws(const char *re, size_t n, size_t *out_n) {
    static const char in_class[] = "\\t-\\r\\x{20}\\x{85}\\p{Z}";
    static const char sp[] = "[\\t-\\r\\x{20}\\x{85}\\p{Z}]";
    static const char nsp[] = "[^\\t-\\r\\x{20}\\x{85}\\p{Z}]";
    char *o = malloc(n * 24 + 1);
    if (!o) return NULL;
    size_t k = 0;
    int cls = 0;
    for (size_t i = 0; i < n; i++) {
        char c = re[i];
        if (c == '\\' && i + 1 < n) {
            char d = re[i + 1];
            if (d == 's') {
                const char *r = cls ? in_class : sp;
                memcpy(o + k, r, strlen(r));
                k += strlen(r);
            } else if (d == 'S' && !cls) {
                memcpy(o + k, nsp, strlen(nsp));
                k += strlen(nsp);
            } else {
                o[k++] = c;
                o[k++] = d;
            }
            i++;
            continue;
        }
        if (c == '[' && !cls) {
            cls = 1;
            o[k++] = c;
            if (i + 1 < n && re[i + 1] == '^') o[k++] = re[++i];
            if (i + 1 < n && re[i + 1] == ']') o[k++] = re[++i]; /* literal ] first in class */
            continue;
        }
        if (c == ']' && cls) cls = 0;
        o[k++] = c;
    }
    o[k] = 0;
    *out_n = k;
    return o;
}

mlxn_status tk_regex_compile(const char *re, size_t n, int literal, pcre2_code **out) {
    size_t rn = n;
    char *r = literal ? NULL : rewrite_ws(re, n, &rn);
    if (!literal && !r) return mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "tokenizer: regex");
    int err;
    PCRE2_SIZE off;
    uint32_t opt = PCRE2_UTF | PCRE2_UCP | PCRE2_NO_UTF_CHECK | (literal ? PCRE2_LITERAL : 0);
    pcre2_code *c = pcre2_compile((PCRE2_SPTR)(literal ? re : r), rn, opt, &err, &off, NULL);
    free(r);
    if (!c) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(err, msg, sizeof msg);
        return mlxn_set_error(MLXN_ERR_FORMAT, "tokenizer: pre-tokenizer regex '%.*s' does not compile: %s at %zu",
                              (int)(n > 200 ? 200 : n), re, (const char *)msg, (size_t)off);
    }
    (void)pcre2_jit_compile(c, PCRE2_JIT_COMPLETE); /* falls back to the interpreter if JIT is unavailable */
    *out = c;
    return MLXN_OK;
}

/* ---------------------------------------------------------------- encode scratch */

typedef struct {
    uint32_t off, len;
} range;

typedef struct {
    int32_t id;
    int32_t prev, next;
    uint32_t start, len; /* byte span in the piece (score mode) */
} sym;

typedef struct {
    double key; /* larger first: -rank or score */
    int32_t pos;
    int32_t a, b; /* rank mode: left/right ids; score mode: a = merged length */
} hent;

typedef struct {
    const mlxn_tokenizer *t;
    int32_t *ids;
    size_t n, cap;
    char *nb; /* normalized segment */
    size_t nb_cap;
    range *r[2];
    size_t r_cap[2];
    sym *s;
    size_t s_cap;
    hent *h;
    size_t h_n, h_cap;
    char *tmp;
    size_t tmp_cap;
    pcre2_match_data *md;
} enc;

static int grow(void **p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return 1;
    size_t c = *cap ? *cap : 64;
    while (c < need) c *= 2;
    void *q = realloc(*p, c * elem);
    if (!q) return 0;
    *p = q;
    *cap = c;
    return 1;
}

#define OOM() mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "tokenizer_encode: out of memory")

static mlxn_status emit(enc *e, int32_t id) {
    if (!grow((void **)&e->ids, &e->cap, e->n + 1, sizeof(int32_t))) return OOM();
    e->ids[e->n++] = id;
    return MLXN_OK;
}

static int hless(const hent *x, const hent *y) { /* x has lower priority than y */
    if (x->key != y->key) return x->key < y->key;
    return x->pos > y->pos;
}

static int heap_push(enc *e, hent v) {
    if (!grow((void **)&e->h, &e->h_cap, e->h_n + 1, sizeof(hent))) return 0;
    size_t i = e->h_n++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!hless(&e->h[p], &v)) break;
        e->h[i] = e->h[p];
        i = p;
    }
    e->h[i] = v;
    return 1;
}

static hent heap_pop(enc *e) {
    hent top = e->h[0], last = e->h[--e->h_n];
    size_t i = 0, n = e->h_n;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        const hent *best = &last;
        if (l < n && hless(best, &e->h[l])) {
            m = l;
            best = &e->h[l];
        }
        if (r < n && hless(best, &e->h[r])) m = r;
        if (m == i) break;
        e->h[i] = e->h[m];
        i = m;
    }
    if (n) e->h[i] = last;
    return top;
}

/* ---------------------------------------------------------------- BPE */

static int try_pair_rank(enc *e, int32_t l) {
    const sym *s = e->s;
    int32_t r = s[l].next;
    if (r < 0 || s[l].id < 0 || s[r].id < 0) return 1;
    int32_t rank, res;
    if (!pairmap_get(&e->t->merges, s[l].id, s[r].id, &rank, &res)) return 1;
    hent h = {-(double)rank, l, s[l].id, s[r].id};
    return heap_push(e, h);
}

static int try_pair_score(enc *e, const char *p, int32_t l) {
    const sym *s = e->s;
    int32_t r = s[l].next;
    if (r < 0) return 1;
    const mlxn_tokenizer *t = e->t;
    int32_t id = tk_strmap_get(&t->vocab, t->tok, p + s[l].start, s[l].len + s[r].len);
    if (id < 0 || !(t->tok[id].type == MLXN_TOKTYPE_NORMAL || t->tok[id].type == MLXN_TOKTYPE_USER_DEFINED)) return 1;
    hent h = {t->tok[id].score, l, (int32_t)(s[l].len + s[r].len), 0};
    return heap_push(e, h);
}

/* Symbol for an unknown character: byte-fallback tokens or <unk> (fused). */
static mlxn_status push_unknown(enc *e, const char *c, size_t n, size_t *ns) {
    const mlxn_tokenizer *t = e->t;
    if (t->byte_fallback) {
        int ok = 1;
        for (size_t i = 0; i < n; i++) ok &= t->byte_tok[(uint8_t)c[i]] >= 0;
        if (ok) {
            for (size_t i = 0; i < n; i++) e->s[(*ns)++] = (sym){t->byte_tok[(uint8_t)c[i]], 0, 0, 0, 0};
            return MLXN_OK;
        }
    }
    if (t->unk < 0 || t->no_unk_in_bpe) return MLXN_OK; /* HF without <unk>, llama.cpp: dropped */
    if (t->fuse_unk && *ns > 0 && e->s[*ns - 1].id == t->unk) return MLXN_OK;
    e->s[(*ns)++] = (sym){t->unk, 0, 0, 0, 0};
    return MLXN_OK;
}

static void link_syms(sym *s, size_t ns) {
    for (size_t i = 0; i < ns; i++) {
        s[i].prev = (int32_t)i - 1;
        s[i].next = i + 1 < ns ? (int32_t)i + 1 : -1;
    }
}

/* Merge by rank on one piece (tokenizer.json BPE and GGUF "gpt2"). */
static mlxn_status bpe_rank(enc *e, const char *p, size_t n) {
    const mlxn_tokenizer *t = e->t;
    if (t->ignore_merges) {
        const char *q = p;
        size_t qn = n;
        if (t->byte_level) {
            if (!grow((void **)&e->tmp, &e->tmp_cap, n * 2 + 1, 1)) return OOM();
            qn = 0;
            for (size_t i = 0; i < n; i++) {
                memcpy(e->tmp + qn, t->bl_chars[(uint8_t)p[i]], t->bl_len[(uint8_t)p[i]]);
                qn += t->bl_len[(uint8_t)p[i]];
            }
            q = e->tmp;
        }
        int32_t id = tk_strmap_get(&t->vocab, t->tok, q, qn);
        if (id >= 0) return emit(e, id);
    }
    /* worst case: every byte its own symbol (byte fallback) */
    if (!grow((void **)&e->s, &e->s_cap, n + 1, sizeof(sym))) return OOM();
    size_t ns = 0;
    if (t->byte_level) {
        for (size_t i = 0; i < n; i++) {
            int32_t id = t->byte_tok[(uint8_t)p[i]];
            if (id >= 0) e->s[ns++] = (sym){id, 0, 0, 0, 0};
            else MLXN_TRY(push_unknown(e, p + i, 1, &ns));
        }
    } else {
        for (size_t i = 0; i < n;) {
            size_t k = tk_utf8_len((uint8_t)p[i]);
            if (k > n - i) k = n - i;
            int32_t id = tk_strmap_get(&t->vocab, t->tok, p + i, k);
            if (id >= 0) e->s[ns++] = (sym){id, 0, 0, 0, 0};
            else MLXN_TRY(push_unknown(e, p + i, k, &ns));
            i += k;
        }
    }
    sym *s = e->s;
    link_syms(s, ns);
    e->h_n = 0;
    for (size_t i = 0; i + 1 < ns; i++)
        if (!try_pair_rank(e, (int32_t)i)) return OOM();
    while (e->h_n) {
        hent h = heap_pop(e);
        int32_t l = h.pos, r = s[l].next;
        if (s[l].id != h.a || r < 0 || s[r].id != h.b) continue; /* stale */
        int32_t rank = 0, res = -1;
        if (!pairmap_get(&t->merges, h.a, h.b, &rank, &res)) continue;
        s[l].id = res;
        s[l].next = s[r].next;
        if (s[r].next >= 0) s[s[r].next].prev = l;
        s[r].id = -2; /* dead */
        if (s[l].prev >= 0 && !try_pair_rank(e, s[l].prev)) return OOM();
        if (!try_pair_rank(e, l)) return OOM();
    }
    for (int32_t i = ns ? 0 : -1; i >= 0; i = s[i].next) MLXN_TRY(emit(e, s[i].id));
    return MLXN_OK;
}

/* Merge by score on one piece (SentencePiece BPE; GGUF "llama"). */
static mlxn_status bpe_score(enc *e, const char *p, size_t n) {
    const mlxn_tokenizer *t = e->t;
    if (!grow((void **)&e->s, &e->s_cap, n + 1, sizeof(sym))) return OOM();
    size_t ns = 0;
    for (size_t i = 0; i < n;) {
        size_t k = tk_utf8_len((uint8_t)p[i]);
        if (k > n - i) k = n - i;
        e->s[ns++] = (sym){0, 0, 0, (uint32_t)i, (uint32_t)k};
        i += k;
    }
    sym *s = e->s;
    link_syms(s, ns);
    e->h_n = 0;
    for (size_t i = 0; i + 1 < ns; i++)
        if (!try_pair_score(e, p, (int32_t)i)) return OOM();
    while (e->h_n) {
        hent h = heap_pop(e);
        int32_t l = h.pos, r = s[l].next;
        if (s[l].len == 0 || r < 0 || s[l].len + s[r].len != (uint32_t)h.a) continue; /* stale */
        s[l].len += s[r].len;
        s[r].len = 0;
        s[l].next = s[r].next;
        if (s[r].next >= 0) s[s[r].next].prev = l;
        if (s[l].prev >= 0 && !try_pair_score(e, p, s[l].prev)) return OOM();
        if (!try_pair_score(e, p, l)) return OOM();
    }
    if (!ns) return MLXN_OK;
    for (int32_t i = 0; i >= 0; i = s[i].next) {
        int32_t id = tk_strmap_get(&t->vocab, t->tok, p + s[i].start, s[i].len);
        if (id >= 0 && t->tok[id].type != MLXN_TOKTYPE_CONTROL && t->tok[id].type != MLXN_TOKTYPE_UNUSED) {
            MLXN_TRY(emit(e, id));
            continue;
        }
        int ok = 1;
        for (uint32_t j = 0; j < s[i].len; j++) ok &= t->byte_tok[(uint8_t)p[s[i].start + j]] >= 0;
        if (ok) {
            for (uint32_t j = 0; j < s[i].len; j++) MLXN_TRY(emit(e, t->byte_tok[(uint8_t)p[s[i].start + j]]));
        } else if (t->unk >= 0) {
            MLXN_TRY(emit(e, t->unk));
        }
    }
    return MLXN_OK;
}

/* ---------------------------------------------------------------- normalize + pre-tokenize */

static int nb_append(enc *e, size_t *k, const char *s, size_t n) {
    if (!grow((void **)&e->nb, &e->nb_cap, *k + n + 1, 1)) return 0;
    memcpy(e->nb + *k, s, n);
    *k += n;
    return 1;
}

/* Apply the normalizer chain (and a leading Metaspace) to one segment into e->nb. */
static mlxn_status normalize(enc *e, const char *text, size_t len, int at_start, size_t *out_len) {
    const mlxn_tokenizer *t = e->t;
    size_t k = 0;
    if (!nb_append(e, &k, text, len)) return OOM();
    for (size_t si = 0; si < t->n_norm; si++) {
        const tk_norm *st = &t->norm[si];
        if (st->kind == TK_NORM_PREPEND) {
            if (k == 0) continue;
            if (!grow((void **)&e->tmp, &e->tmp_cap, k + st->a_len + 1, 1)) return OOM();
            memcpy(e->tmp, st->a, st->a_len);
            memcpy(e->tmp + st->a_len, e->nb, k);
            size_t nk = k + st->a_len;
            k = 0;
            if (!nb_append(e, &k, e->tmp, nk)) return OOM();
        } else if (st->kind == TK_NORM_REPLACE || st->kind == TK_NORM_METASPACE) {
            const char *from = st->kind == TK_NORM_REPLACE ? st->a : " ";
            size_t from_len = st->kind == TK_NORM_REPLACE ? st->a_len : 1;
            const char *to = st->kind == TK_NORM_REPLACE ? st->b : st->a;
            size_t to_len = st->kind == TK_NORM_REPLACE ? st->b_len : st->a_len;
            if (!grow((void **)&e->tmp, &e->tmp_cap, k * (to_len + 1) + st->a_len + 1, 1)) return OOM();
            size_t m = 0;
            if (st->kind == TK_NORM_METASPACE && k > 0 &&
                (st->prepend == TK_PREPEND_ALWAYS || (st->prepend == TK_PREPEND_FIRST && at_start)) &&
                !(k >= st->a_len && memcmp(e->nb, st->a, st->a_len) == 0) && e->nb[0] != ' ') {
                memcpy(e->tmp, st->a, st->a_len);
                m = st->a_len;
            }
            for (size_t i = 0; i < k;) {
                if (from_len && i + from_len <= k && memcmp(e->nb + i, from, from_len) == 0) {
                    memcpy(e->tmp + m, to, to_len);
                    m += to_len;
                    i += from_len;
                } else
                    e->tmp[m++] = e->nb[i++];
            }
            k = 0;
            if (!nb_append(e, &k, e->tmp, m)) return OOM();
        }
        else if (st->kind == TK_NORM_NFC) {
#ifdef MLXN_HAVE_UTF8PROC
            int ascii = 1;
            for (size_t i = 0; i < k && ascii; i++) ascii = (uint8_t)e->nb[i] < 0x80;
            if (ascii) continue; /* ASCII is already NFC */
            utf8proc_uint8_t *o = NULL;
            utf8proc_ssize_t m = utf8proc_map((const utf8proc_uint8_t *)e->nb, (utf8proc_ssize_t)k, &o,
                                              UTF8PROC_STABLE | UTF8PROC_COMPOSE);
            if (m < 0) {
                free(o);
                return mlxn_set_error(MLXN_ERR_INTERNAL, "tokenizer_encode: NFC failed: %s", utf8proc_errmsg(m));
            }
            k = 0;
            int ok = nb_append(e, &k, (const char *)o, (size_t)m);
            free(o);
            if (!ok) return OOM();
#endif /* without utf8proc NFC is the identity (see tokenizer.h) */
        }
    }
    *out_len = k;
    return MLXN_OK;
}

/* One pre-tokenizer step: refine ranges src[ns] into dst. */
static mlxn_status pre_step(enc *e, const tk_pre *st, const char *buf, const range *src, size_t ns, range **dst,
                            size_t *dst_cap, size_t *nd) {
    size_t k = 0;
#define PUSH(o, l)                                                                \
    do {                                                                          \
        if ((l) > 0) {                                                            \
            if (!grow((void **)dst, dst_cap, k + 1, sizeof(range))) return OOM(); \
            (*dst)[k++] = (range){(uint32_t)(o), (uint32_t)(l)};                  \
        }                                                                         \
    } while (0)
    if (st->kind == TK_PRE_METASPACE_SPLIT) {
        for (size_t i = 0; i < ns; i++) {
            size_t a = src[i].off, end = a + src[i].len, start = a;
            for (size_t j = a; j < end; j++) {
                if (j > start && j + st->a_len <= end && memcmp(buf + j, st->a, st->a_len) == 0) {
                    PUSH(start, j - start);
                    start = j;
                }
            }
            PUSH(start, end - start);
        }
        *nd = k;
        return MLXN_OK;
    }
    if (!e->md && !(e->md = pcre2_match_data_create(1, NULL))) return OOM(); /* only the whole match is read */
    pcre2_match_data *md = e->md;
    for (size_t i = 0; i < ns; i++) {
        const char *p = buf + src[i].off;
        size_t n = src[i].len, pos = 0, last = 0;
        while (pos <= n) {
            int rc = pcre2_match(st->re, (PCRE2_SPTR)p, n, pos, PCRE2_NO_UTF_CHECK, md, NULL);
            if (rc < 0) {
                if (rc == PCRE2_ERROR_NOMATCH) break;
                return mlxn_set_error(MLXN_ERR_INTERNAL, "tokenizer_encode: pre-tokenizer regex failed (pcre2 %d)", rc);
            }
            PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
            size_t ms = ov[0], me = ov[1];
            if (me == ms) { /* empty match: step one character */
                if (ms >= n) break;
                pos = ms + tk_utf8_len((uint8_t)p[ms]);
                continue;
            }
            if (st->behavior == TK_SPLIT_REMOVED) {
                PUSH(src[i].off + last, ms - last);
            } else if (st->behavior == TK_SPLIT_MERGED_PREV) {
                PUSH(src[i].off + last, me - last);
            } else if (st->behavior == TK_SPLIT_MERGED_NEXT) {
                PUSH(src[i].off + last, ms - last);
                last = ms; /* the match starts the next piece */
                pos = me;
                continue;
            } else { /* isolated */
                PUSH(src[i].off + last, ms - last);
                PUSH(src[i].off + ms, me - ms);
            }
            last = me;
            pos = me;
        }
        PUSH(src[i].off + last, n - last);
    }
#undef PUSH
    *nd = k;
    return MLXN_OK;
}

/* Normalize, pre-tokenize and BPE one text segment (no added tokens inside). */
static mlxn_status encode_segment(enc *e, const char *text, size_t len, int at_start) {
    const mlxn_tokenizer *t = e->t;
    if (len == 0) return MLXN_OK;
    size_t n = 0;
    MLXN_TRY(normalize(e, text, len, at_start, &n));
    if (n == 0) return MLXN_OK;
    if (!grow((void **)&e->r[0], &e->r_cap[0], 1, sizeof(range))) return OOM();
    e->r[0][0] = (range){0, (uint32_t)n};
    size_t nr = 1, cur = 0;
    for (size_t si = 0; si < t->n_pre; si++) {
        size_t nd = 0;
        MLXN_TRY(pre_step(e, &t->pre[si], e->nb, e->r[cur], nr, &e->r[1 - cur], &e->r_cap[1 - cur], &nd));
        cur = 1 - cur;
        nr = nd;
    }
    for (size_t i = 0; i < nr; i++) {
        const char *p = e->nb + e->r[cur][i].off;
        if (t->score_merges) MLXN_TRY(bpe_score(e, p, e->r[cur][i].len));
        else MLXN_TRY(bpe_rank(e, p, e->r[cur][i].len));
    }
    return MLXN_OK;
}

static int is_ws(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* Longest added token starting at text[i] (special ones only if parse_special). */
static int32_t match_added(const mlxn_tokenizer *t, const char *text, size_t len, size_t i, int parse_special) {
    uint8_t c = (uint8_t)text[i];
    for (uint32_t j = t->added_first[c]; j < t->added_first[c + 1]; j++) {
        int32_t id = t->added[j];
        const tk_token *tk = &t->tok[id];
        if (!parse_special && tk->special) continue;
        if (tk->len <= len - i && memcmp(text + i, tk->text, tk->len) == 0) return id; /* sorted longest first */
    }
    return -1;
}

static void enc_free(enc *e) {
    pcre2_match_data_free(e->md);
    free(e->nb);
    free(e->r[0]);
    free(e->r[1]);
    free(e->s);
    free(e->h);
    free(e->tmp);
}

mlxn_status mlxn_tokenizer_encode(const mlxn_tokenizer *t, const char *text, size_t len, int add_bos,
                                  int parse_special, int32_t **ids, size_t *n_ids) {
    if (!t || !ids || !n_ids || (!text && len))
        return mlxn_set_error(MLXN_ERR_INVALID_ARG, "tokenizer_encode: NULL argument");
    *ids = NULL;
    *n_ids = 0;
    if (len > (size_t)INT32_MAX / 4)
        return mlxn_set_error(MLXN_ERR_RANGE, "tokenizer_encode: text of %zu bytes is too long (max %d)", len,
                              INT32_MAX / 4);
    if (len) MLXN_TRY(validate_utf8(text, len));
    enc e = {0};
    e.t = t;
    mlxn_status st = MLXN_OK;
    if (add_bos && t->add_bos && t->bos >= 0) st = emit(&e, t->bos);
    size_t seg = 0, i = 0;
    while (st == MLXN_OK && i < len) {
        int32_t id = t->n_added ? match_added(t, text, len, i, parse_special) : -1;
        if (id < 0) {
            i++;
            continue;
        }
        size_t end = i;
        if (t->tok[id].lstrip)
            while (end > seg && is_ws(text[end - 1])) end--;
        st = encode_segment(&e, text + seg, end - seg, seg == 0);
        if (st == MLXN_OK) st = emit(&e, id);
        i += t->tok[id].len;
        if (t->tok[id].rstrip)
            while (i < len && is_ws(text[i])) i++;
        seg = i;
    }
    if (st == MLXN_OK) st = encode_segment(&e, text + seg, len - seg, seg == 0);
    enc_free(&e);
    if (st != MLXN_OK) {
        free(e.ids);
        return st;
    }
    *ids = e.ids;
    *n_ids = e.n;
    return MLXN_OK;
}

/* ---------------------------------------------------------------- decode */

mlxn_status mlxn_tokenizer_token_bytes(const mlxn_tokenizer *t, int32_t id, const char **bytes, size_t *len) {
    if (!t || !bytes || !len) return mlxn_set_error(MLXN_ERR_INVALID_ARG, "tokenizer_token_bytes: NULL argument");
    if (id < 0 || id >= t->n_vocab)
        return mlxn_set_error(MLXN_ERR_RANGE, "tokenizer_token_bytes: id %d outside the vocabulary [0, %lld)", id,
                              (long long)t->n_vocab);
    *bytes = t->tok[id].dec ? t->tok[id].dec : "";
    *len = t->tok[id].dec_len;
    return MLXN_OK;
}

mlxn_status mlxn_tokenizer_decode(const mlxn_tokenizer *t, const int32_t *ids, size_t n, int skip_special, char **out,
                                  size_t *len) {
    if (!t || !out || (!ids && n)) return mlxn_set_error(MLXN_ERR_INVALID_ARG, "tokenizer_decode: NULL argument");
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= t->n_vocab)
            return mlxn_set_error(MLXN_ERR_RANGE, "tokenizer_decode: ids[%zu] = %d outside the vocabulary [0, %lld)",
                                  i, ids[i], (long long)t->n_vocab);
        total += t->tok[ids[i]].dec_len;
    }
    char *o = malloc(total + 1);
    if (!o) return mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "tokenizer_decode: %zu bytes", total + 1);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const tk_token *tk = &t->tok[ids[i]];
        if (skip_special && tk->special) continue;
        if (tk->dec_len) memcpy(o + k, tk->dec, tk->dec_len);
        k += tk->dec_len;
    }
    size_t start = (t->strip_leading_space && k > 0 && o[0] == ' ') ? 1 : 0;
    if (start) memmove(o, o + 1, --k);
    o[k] = 0;
    *out = o;
    if (len) *len = k;
    return MLXN_OK;
}

struct mlxn_detok {
    const mlxn_tokenizer *t;
    char pend[8];
    size_t n_pend;
    char *out;
    size_t out_cap;
};

mlxn_status mlxn_detok_create(const mlxn_tokenizer *t, mlxn_detok **out) {
    if (!t || !out) return mlxn_set_error(MLXN_ERR_INVALID_ARG, "detok_create: NULL argument");
    mlxn_detok *d = calloc(1, sizeof *d);
    if (!d) return mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "detok_create");
    d->t = t;
    *out = d;
    return MLXN_OK;
}

void mlxn_detok_free(mlxn_detok *d) {
    if (!d) return;
    free(d->out);
    free(d);
}

/* Append src to the pending bytes and move every complete character to out;
 * invalid bytes become U+FFFD, a valid incomplete tail stays pending. */
static mlxn_status detok_feed(mlxn_detok *d, const char *src, size_t n, int flush, const char **text, size_t *len) {
    size_t total = d->n_pend + n;
    if (!grow((void **)&d->out, &d->out_cap, total * 3 + 8, 1))
        return mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "detok_push");
    char *in = d->out + total * 2 + 4; /* staging area after room for the expanded output */
    memcpy(in, d->pend, d->n_pend);
    if (n) memcpy(in + d->n_pend, src, n);
    size_t k = 0, i = 0;
    d->n_pend = 0;
    while (i < total) {
        const uint8_t *s = (const uint8_t *)in + i;
        if (*s < 0x80) {
            d->out[k++] = (char)*s;
            i++;
            continue;
        }
        int inc;
        size_t m = utf8_seq(s, total - i, &inc);
        if (m) {
            memmove(d->out + k, s, m);
            k += m;
            i += m;
        } else if (inc && !flush) {
            memcpy(d->pend, s, total - i);
            d->n_pend = total - i;
            break;
        } else {
            memcpy(d->out + k, "\xEF\xBF\xBD", 3);
            k += 3;
            i++;
            if (inc) break; /* flushing a truncated sequence: one replacement character */
        }
    }
    *text = d->out;
    *len = k;
    return MLXN_OK;
}

mlxn_status mlxn_detok_push(mlxn_detok *d, int32_t id, const char **text, size_t *len) {
    if (!d || !text || !len) return mlxn_set_error(MLXN_ERR_INVALID_ARG, "detok_push: NULL argument");
    const char *b = NULL;
    size_t n = 0;
    MLXN_TRY(mlxn_tokenizer_token_bytes(d->t, id, &b, &n));
    return detok_feed(d, b, n, 0, text, len);
}

mlxn_status mlxn_detok_flush(mlxn_detok *d, const char **text, size_t *len) {
    if (!d || !text || !len) return mlxn_set_error(MLXN_ERR_INVALID_ARG, "detok_flush: NULL argument");
    return detok_feed(d, NULL, 0, 1, text, len);
}

/* ---------------------------------------------------------------- queries */

int64_t mlxn_tokenizer_n_vocab(const mlxn_tokenizer *t) { return t ? t->n_vocab : 0; }
int32_t mlxn_tokenizer_bos(const mlxn_tokenizer *t) { return t ? t->bos : -1; }
int32_t mlxn_tokenizer_eos(const mlxn_tokenizer *t) { return t ? t->eos : -1; }
int mlxn_tokenizer_adds_bos(const mlxn_tokenizer *t) { return t && t->add_bos && t->bos >= 0; }
mlxn_tokenizer_kind mlxn_tokenizer_get_kind(const mlxn_tokenizer *t) {
    return t && !t->byte_level ? MLXN_TOK_SPM : MLXN_TOK_BPE_BYTELEVEL;
}
const char *mlxn_tokenizer_chat_template(const mlxn_tokenizer *t) { return t ? t->chat_template : NULL; }

int mlxn_tokenizer_is_eog(const mlxn_tokenizer *t, int32_t id) {
    if (!t || id < 0 || id >= t->n_vocab) return 0;
    return id == t->eos || t->tok[id].eog;
}

int mlxn_tokenizer_has_nfc(void) {
#ifdef MLXN_HAVE_UTF8PROC
    return 1;
#else
    return 0;
#endif
}

int mlxn_tokenizer_is_special(const mlxn_tokenizer *t, int32_t id) {
    if (!t || id < 0 || id >= t->n_vocab) return 0;
    return t->tok[id].special;
}

int32_t mlxn_tokenizer_find(const mlxn_tokenizer *t, const char *token_text) {
    if (!t || !token_text) return -1;
    return tk_strmap_get(&t->vocab, t->tok, token_text, strlen(token_text));
}

void mlxn_tokenizer_free(mlxn_tokenizer *t) {
    if (!t) return;
    if (t->tok) {
        for (int64_t i = 0; i < t->n_vocab; i++) {
            if (t->tok[i].dec != t->tok[i].text) free(t->tok[i].dec);
            free(t->tok[i].text);
        }
    }
    free(t->tok);
    free(t->vocab.slots);
    free(t->merges.keys);
    free(t->merges.rank);
    free(t->merges.res);
    for (size_t i = 0; i < t->n_norm; i++) {
        free(t->norm[i].a);
        free(t->norm[i].b);
    }
    free(t->norm);
    for (size_t i = 0; i < t->n_pre; i++) {
        pcre2_code_free(t->pre[i].re);
        free(t->pre[i].a);
    }
    free(t->pre);
    free(t->added);
    free(t->chat_template);
    free(t);
}
