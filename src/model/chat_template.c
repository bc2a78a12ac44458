/* chat_template.c — native renderers for the common chat formats (see
 * chat_template.h). Detection looks for each family's marker tokens in the
 * Jinja text; rendering reproduces the reference templates exactly:
 *   ChatML  "<|im_start|>{role}\n{content}<|im_end|>\n" per message (content
 *           untrimmed); a default system message when the template carries a
 *           literal one (SmolLM2: "You are a helpful AI assistant named SmolLM,
 *           trained by Hugging Face"; Qwen2: "You are a helpful assistant.")
 *           and the conversation has none. Qwen3 templates (they handle
 *           "reasoning_content") also drop the <think>...</think> part of
 *           assistant turns before the last user message and re-wrap the
 *           reasoning of later ones, exactly as their Jinja does.
 *   Llama 3 "<|begin_of_text|>" then "<|start_header_id|>{role}<|end_header_id|>\n\n
 *           {content|trim}<|eot_id|>" per message. Llama 3.1/3.2 templates
 *           (recognised by "Cutting Knowledge Date:") always open with a system
 *           turn "Cutting Knowledge Date: December 2023\nToday Date: {date}\n\n
 *           {system|trim}": date = today ("%d %b %Y") when the template calls
 *           strftime_now (as transformers provides it), else the template's
 *           default date_string literal (3.1: "26 Jul 2024").
 *   Gemma   "<bos>" then "<start_of_turn>{user|model}\n{content|trim}<end_of_turn>\n";
 *           a system message is refused when the template refuses it (Gemma 1/2)
 *           and otherwise opens the first user turn as "{system}\n\n" (Gemma 3).
 *   Llama 2 "<s>[INST] {<<SYS>>...}{content.strip()} [/INST]" for users and
 *           " {content.strip()} </s>" for the assistant.
 * Jinja's trim / Python's strip remove Unicode whitespace (str.isspace). */
#include "model/chat_template.h"
#include "core/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static const char *const NAMES[] = {"auto", "chatml", "llama3", "gemma", "llama2", "none"};

const char *mlxn_chat_format_name(mlxn_chat_format f) {
    return (unsigned)f < sizeof NAMES / sizeof NAMES[0] ? NAMES[f] : "?";
}

mlxn_status mlxn_chat_format_parse(const char *name, mlxn_chat_format *out) {
    if (!name || !out) return mlxn_set_error(MLXN_ERR_INVALID_ARG, "chat_format_parse: NULL argument");
    static const struct {
        const char *alias;
        mlxn_chat_format f;
    } aliases[] = {{"qwen", MLXN_CHAT_CHATML},   {"smollm", MLXN_CHAT_CHATML}, {"llama-3", MLXN_CHAT_LLAMA3},
                   {"llama-2", MLXN_CHAT_LLAMA2}, {"raw", MLXN_CHAT_NONE}};
    for (size_t i = 0; i < sizeof NAMES / sizeof NAMES[0]; i++)
        if (strcasecmp(name, NAMES[i]) == 0) {
            *out = (mlxn_chat_format)i;
            return MLXN_OK;
        }
    for (size_t i = 0; i < sizeof aliases / sizeof aliases[0]; i++)
        if (strcasecmp(name, aliases[i].alias) == 0) {
            *out = aliases[i].f;
            return MLXN_OK;
        }
    return mlxn_set_error(MLXN_ERR_INVALID_ARG,
                          "chat format '%s' is unknown (auto, chatml, llama3, gemma, llama2, none)", name);
}

mlxn_chat_format mlxn_chat_detect(const char *tmpl) {
    if (!tmpl) return MLXN_CHAT_NONE;
    if (strstr(tmpl, "<|im_start|>")) return MLXN_CHAT_CHATML;
    if (strstr(tmpl, "<|start_header_id|>")) return MLXN_CHAT_LLAMA3;
    if (strstr(tmpl, "<start_of_turn>")) return MLXN_CHAT_GEMMA;
    if (strstr(tmpl, "[INST]")) return MLXN_CHAT_LLAMA2;
    return MLXN_CHAT_NONE;
}

int mlxn_chat_emits_bos(mlxn_chat_format f, const char *template_text) {
    if (f == MLXN_CHAT_AUTO) f = mlxn_chat_detect(template_text);
    return f == MLXN_CHAT_LLAMA3 || f == MLXN_CHAT_GEMMA || f == MLXN_CHAT_LLAMA2;
}

/* ---------------------------------------------------------------- string builder */

typedef struct {
    char *s;
    size_t n, cap;
    int oom;
} sb;

static void put(sb *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t c = b->cap ? b->cap : 256;
        while (c < b->n + n + 1) c *= 2;
        char *p = realloc(b->s, c);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->s = p;
        b->cap = c;
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = 0;
}

static void puts_(sb *b, const char *s) { put(b, s, strlen(s)); }

/* Python str.isspace() for the code point starting at s (length in *len). */
static int py_space(const unsigned char *s, size_t avail, size_t *len) {
    *len = 1;
    unsigned c = s[0];
    if (c == ' ' || (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x1F)) return 1;
    if (c < 0x80) return 0;
    uint32_t cp;
    if (c >= 0xC0 && c < 0xE0 && avail >= 2) {
        cp = ((c & 0x1Fu) << 6) | (s[1] & 0x3Fu);
        *len = 2;
    } else if (c >= 0xE0 && c < 0xF0 && avail >= 3) {
        cp = ((c & 0x0Fu) << 12) | ((s[1] & 0x3Fu) << 6) | (s[2] & 0x3Fu);
        *len = 3;
    } else {
        return 0;
    }
    return cp == 0x85 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 ||
           cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

/* Trim Unicode whitespace at both ends: returns the start, *n the trimmed length. */
static const char *trim(const char *s, size_t *n) {
    size_t len = strlen(s), a = 0, k;
    while (a < len && py_space((const unsigned char *)s + a, len - a, &k)) a += k;
    size_t e = len;
    while (e > a) {
        /* step back one code point */
        size_t p = e - 1;
        while (p > a && ((unsigned char)s[p] & 0xC0) == 0x80) p--;
        if (!py_space((const unsigned char *)s + p, e - p, &k) || p + k != e) break;
        e = p;
    }
    *n = e - a;
    return s + a;
}

static void put_trim(sb *b, const char *s) {
    size_t n;
    const char *t = trim(s, &n);
    put(b, t, n);
}

/* ChatML default system message: the literal after "<|im_start|>system\n" in a template string, up to
 * "<|im_end|>", when it is plain text (Jinja escapes \n \t \' \" \\ resolved). NULL if none. */
static char *chatml_default_system(const char *tmpl) {
    static const char key[] = "<|im_start|>system";
    for (const char *p = tmpl ? strstr(tmpl, key) : NULL; p; p = strstr(p + 1, key)) {
        const char *q = p + sizeof key - 1;
        if (q[0] == '\n') q += 1;
        else if (q[0] == '\\' && q[1] == 'n') q += 2;
        else continue;
        const char *end = strstr(q, "<|im_end|>");
        if (!end || end <= q) continue;
        int plain = 1;
        for (const char *c = q; c < end && plain; c++)
            if (*c == '\'' || *c == '"' || *c == '{' || *c == '}' || *c == '+') plain = 0;
        if (!plain) continue;
        size_t len = strlen(q) - strlen(end);
        char *o = malloc(len + 1);
        if (!o) return NULL;
        size_t k = 0;
        for (const char *c = q; c < end; c++) {
            if (*c == '\\' && c + 1 < end) {
                c++;
                o[k++] = *c == 'n' ? '\n' : *c == 't' ? '\t' : *c;
            } else
                o[k++] = *c;
        }
        o[k] = 0;
        return o;
    }
    return NULL;
}

/* Llama 3.1/3.2: the date shown in the system turn (see the file comment). */
static void llama31_date(const char *tmpl, char *out, size_t cap) {
    snprintf(out, cap, "26 Jul 2024");
    if (strstr(tmpl, "strftime_now")) {
        time_t now = time(NULL);
        struct tm tm;
        if (localtime_r(&now, &tm) && strftime(out, cap, "%d %b %Y", &tm) > 0) return;
    }
    const char *p = strstr(tmpl, "set date_string = \"");
    if (p) {
        p += strlen("set date_string = \"");
        const char *e = strchr(p, '"');
        if (e && (size_t)(e - p) < cap) snprintf(out, cap, "%.*s", (int)(e - p), p);
    }
}

/* Last occurrence of pat in s[0..n), or NULL. */
static const char *find_last(const char *s, size_t n, const char *pat) {
    size_t m = strlen(pat);
    for (size_t i = n >= m ? n - m + 1 : 0; i-- > 0;)
        if (memcmp(s + i, pat, m) == 0) return s + i;
    return NULL;
}

static int is_role(const mlxn_chat_msg *m, const char *r) { return m->role && strcmp(m->role, r) == 0; }

/* user/assistant alternation starting with user, as the Gemma and Llama 2 templates require. */
static mlxn_status check_alternation(const char *fmt, const mlxn_chat_msg *msgs, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (is_role(&msgs[i], "user") != (i % 2 == 0) || !(is_role(&msgs[i], "user") || is_role(&msgs[i], "assistant")))
            return mlxn_set_error(MLXN_ERR_INVALID_ARG,
                                  "chat_apply(%s): message %zu has role '%s'; roles must alternate user/assistant/... "
                                  "(after an optional first system message)", fmt, i, msgs[i].role);
    return MLXN_OK;
}

mlxn_status mlxn_chat_apply(mlxn_chat_format f, const char *template_text, const mlxn_chat_msg *msgs, size_t n,
                            int add_generation_prompt, char **out) {
    if (!out || (!msgs && n)) return mlxn_set_error(MLXN_ERR_INVALID_ARG, "chat_apply: NULL argument");
    *out = NULL;
    for (size_t i = 0; i < n; i++)
        if (!msgs[i].role || !msgs[i].content)
            return mlxn_set_error(MLXN_ERR_INVALID_ARG, "chat_apply: message %zu has a NULL role or content", i);
    if (f == MLXN_CHAT_AUTO) f = mlxn_chat_detect(template_text);
    if ((unsigned)f > MLXN_CHAT_NONE) return mlxn_set_error(MLXN_ERR_INVALID_ARG, "chat_apply: format %d unknown", (int)f);
    sb b = {0};
    put(&b, "", 0);
    mlxn_status st = MLXN_OK;
    switch (f) {
    case MLXN_CHAT_CHATML: {
        if (n > 0 && !is_role(&msgs[0], "system")) {
            char *sys = chatml_default_system(template_text);
            if (sys) {
                puts_(&b, "<|im_start|>system\n");
                puts_(&b, sys);
                puts_(&b, "<|im_end|>\n");
                free(sys);
            }
        }
        int qwen3 = template_text && strstr(template_text, "reasoning_content") && strstr(template_text, "</think>");
        size_t last_query = n ? n - 1 : 0; /* the last user turn that is not a tool response */
        for (size_t i = n; qwen3 && i-- > 0;) {
            const char *c = msgs[i].content;
            size_t cl = strlen(c);
            int tool_resp = strncmp(c, "<tool_response>", 15) == 0 && cl >= 16 &&
                            strcmp(c + cl - 16, "</tool_response>") == 0;
            if (is_role(&msgs[i], "user") && !tool_resp) {
                last_query = i;
                break;
            }
        }
        for (size_t i = 0; i < n; i++) {
            const char *c = msgs[i].content;
            if (!qwen3 || !is_role(&msgs[i], "assistant")) {
                puts_(&b, "<|im_start|>");
                puts_(&b, msgs[i].role);
                puts_(&b, "\n");
                puts_(&b, c);
                puts_(&b, "<|im_end|>\n");
                continue;
            }
            /* content = c.split('</think>')[-1].lstrip('\n');
             * reasoning = c.split('</think>')[0].rstrip('\n').split('<think>')[-1].lstrip('\n') */
            size_t cl = strlen(c), rl = 0;
            const char *content = c, *reason = "";
            const char *close_first = strstr(c, "</think>");
            if (close_first) {
                content = find_last(c, cl, "</think>") + 8;
                while (*content == '\n') content++;
                size_t bl = (size_t)(close_first - c);
                while (bl > 0 && c[bl - 1] == '\n') bl--;
                const char *open = find_last(c, bl, "<think>");
                reason = open ? open + 7 : c;
                rl = bl - (size_t)(reason - c);
                while (rl > 0 && *reason == '\n') reason++, rl--;
            }
            puts_(&b, "<|im_start|>assistant\n");
            if (i > last_query && (i == n - 1 || rl > 0)) {
                while (rl > 0 && *reason == '\n') reason++, rl--; /* .strip('\n') */
                while (rl > 0 && reason[rl - 1] == '\n') rl--;
                while (*content == '\n') content++;
                puts_(&b, "<think>\n");
                put(&b, reason, rl);
                puts_(&b, "\n</think>\n\n");
            }
            puts_(&b, content);
            puts_(&b, "<|im_end|>\n");
        }
        if (add_generation_prompt) puts_(&b, "<|im_start|>assistant\n");
        break;
    }
    case MLXN_CHAT_LLAMA3: {
        size_t first = 0;
        int bos_done = 0;
        if (template_text && strstr(template_text, "Cutting Knowledge Date:")) {
            bos_done = 1;
            char date[64];
            llama31_date(template_text, date, sizeof date);
            puts_(&b, "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
                      "Cutting Knowledge Date: December 2023\nToday Date: ");
            puts_(&b, date);
            puts_(&b, "\n\n");
            if (n > 0 && is_role(&msgs[0], "system")) {
                put_trim(&b, msgs[0].content);
                first = 1;
            }
            puts_(&b, "<|eot_id|>");
        }
        for (size_t i = first; i < n; i++) {
            if (i == 0 && !bos_done) puts_(&b, "<|begin_of_text|>");
            puts_(&b, "<|start_header_id|>");
            puts_(&b, msgs[i].role);
            puts_(&b, "<|end_header_id|>\n\n");
            put_trim(&b, msgs[i].content);
            puts_(&b, "<|eot_id|>");
        }
        if (add_generation_prompt) puts_(&b, "<|start_header_id|>assistant<|end_header_id|>\n\n");
        break;
    }
    case MLXN_CHAT_GEMMA: {
        size_t first = 0;
        const char *sys = NULL;
        if (n > 0 && is_role(&msgs[0], "system")) {
            if (template_text && strstr(template_text, "System role not supported")) {
                st = mlxn_set_error(MLXN_ERR_INVALID_ARG, "chat_apply(gemma): this model's template does not support "
                                    "a system message");
                break;
            }
            sys = msgs[0].content;
            first = 1;
        }
        if ((st = check_alternation("gemma", msgs + first, n - first)) != MLXN_OK) break;
        puts_(&b, "<bos>");
        for (size_t i = first; i < n; i++) {
            puts_(&b, "<start_of_turn>");
            puts_(&b, is_role(&msgs[i], "assistant") ? "model" : msgs[i].role);
            puts_(&b, "\n");
            if (i == first && sys) { /* Gemma 3: the system text (untrimmed) + "\n\n" opens the first user turn */
                puts_(&b, sys);
                puts_(&b, "\n\n");
            }
            put_trim(&b, msgs[i].content);
            puts_(&b, "<end_of_turn>\n");
        }
        if (add_generation_prompt) puts_(&b, "<start_of_turn>model\n");
        break;
    }
    case MLXN_CHAT_LLAMA2: {
        size_t first = 0;
        const char *sys = NULL;
        if (n > 0 && is_role(&msgs[0], "system")) {
            sys = msgs[0].content;
            first = 1;
        }
        if ((st = check_alternation("llama2", msgs + first, n - first)) != MLXN_OK) break;
        for (size_t i = first; i < n; i++) {
            sb c = {0};
            if (i == first && sys) {
                puts_(&c, "<<SYS>>\n");
                puts_(&c, sys);
                puts_(&c, "\n<</SYS>>\n\n");
            }
            puts_(&c, msgs[i].content);
            if (c.oom) {
                free(c.s);
                b.oom = 1;
                break;
            }
            if (is_role(&msgs[i], "user")) {
                puts_(&b, "<s>[INST] ");
                put_trim(&b, c.s);
                puts_(&b, " [/INST]");
            } else {
                puts_(&b, " ");
                put_trim(&b, c.s);
                puts_(&b, " </s>");
            }
            free(c.s);
        }
        break;
    }
    default: /* NONE: the contents as they are */
        for (size_t i = 0; i < n; i++) puts_(&b, msgs[i].content);
        break;
    }
    if (st == MLXN_OK && b.oom) st = mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "chat_apply: prompt of %zu bytes", b.n);
    if (st != MLXN_OK) {
        free(b.s);
        return st;
    }
    *out = b.s;
    return MLXN_OK;
}
