/* test_chat_template.c — the native chat renderers against prompts rendered
 * by jinja2 from the real templates (scripts/gen_tokenizer_fixtures.py,
 * tests/data/tokenizer/chat/: SmolLM2's template as shipped in its GGUF,
 * Qwen2's, Qwen3's and a plain ChatML, Llama 3, Llama 3.2, Gemma 1/2, Gemma 3, Llama 2), six conversations
 * each with and without the generation prompt; plus detection, the format
 * override, name parsing and the refusals the templates make. */
#include "testutil.h"

#include "model/chat_template.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static char *read_template(const char *name) {
    char rel[256];
    snprintf(rel, sizeof rel, "tokenizer/chat/%s.jinja", name);
    size_t len;
    char *t = t_read_file(t_data_path(rel), &len);
    if (!t) return NULL;
    char *z = realloc(t, len + 1);
    if (!z) {
        free(t);
        return NULL;
    }
    z[len] = 0;
    return z;
}

static mlxn_chat_format family_of(const char *name) {
    if (strncmp(name, "chatml", 6) == 0 || strncmp(name, "smollm2", 7) == 0) return MLXN_CHAT_CHATML;
    if (strncmp(name, "llama3", 6) == 0) return MLXN_CHAT_LLAMA3;
    if (strncmp(name, "gemma", 5) == 0) return MLXN_CHAT_GEMMA;
    if (strncmp(name, "llama2", 6) == 0) return MLXN_CHAT_LLAMA2;
    return MLXN_CHAT_NONE;
}

static void test_against_jinja(void) {
    json_error_t err;
    size_t len;
    char *text = t_read_file(t_data_path("tokenizer/chat/expected.jsonl"), &len);
    CHECK_MSG(text != NULL, "missing tokenizer/chat/expected.jsonl");
    if (!text) return;
    size_t n_cases = 0, n_ok = 0;
    int seen_smollm = 0, seen[6] = {0};
    for (char *line = text, *end = text + len; line < end;) {
        char *nl = memchr(line, '\n', (size_t)(end - line));
        if (!nl) nl = end;
        json_t *c = json_loadb(line, (size_t)(nl - line), 0, &err);
        line = nl + 1;
        if (!c) {
            t_fail(__FILE__, __LINE__, "expected.jsonl: %s", err.text);
            continue;
        }
        const char *name = json_string_value(json_object_get(c, "template"));
        const char *want = json_string_value(json_object_get(c, "expected"));
        json_t *msgs = json_object_get(c, "messages");
        int agp = json_is_true(json_object_get(c, "add_generation_prompt"));
        char *tmpl = name ? read_template(name) : NULL;
        CHECK_MSG(tmpl && want, "case %zu: template '%s' or expected text missing", n_cases, name ? name : "?");
        if (tmpl && want) {
            mlxn_chat_format fam = family_of(name);
            CHECK_MSG(mlxn_chat_detect(tmpl) == fam, "%s: detected %s, want %s", name,
                      mlxn_chat_format_name(mlxn_chat_detect(tmpl)), mlxn_chat_format_name(fam));
            seen[fam] = 1;
            seen_smollm |= strcmp(name, "smollm2") == 0;
            size_t n = json_array_size(msgs);
            mlxn_chat_msg m[8];
            for (size_t i = 0; i < n && i < 8; i++) {
                m[i].role = json_string_value(json_object_get(json_array_get(msgs, i), "role"));
                m[i].content = json_string_value(json_object_get(json_array_get(msgs, i), "content"));
            }
            char *got = NULL, *want_today = NULL;
            CHECK_OK(mlxn_chat_apply(MLXN_CHAT_AUTO, tmpl, m, n, agp, &got));
            if (strstr(tmpl, "strftime_now") && strstr(want, "Today Date: 26 Jul 2024")) {
                /* jinja2 rendered without strftime_now (its fallback date); transformers and mlxn use today's */
                char today[64];
                time_t now = time(NULL);
                struct tm tm;
                localtime_r(&now, &tm);
                strftime(today, sizeof today, "%d %b %Y", &tm);
                const char *at = strstr(want, "26 Jul 2024");
                size_t wl = strlen(want), tl = strlen(today);
                want_today = malloc(wl + tl + 1);
                memcpy(want_today, want, (size_t)(at - want));
                memcpy(want_today + (at - want), today, tl);
                strcpy(want_today + (at - want) + tl, at + 11);
                want = want_today;
            }
            if (got && strcmp(got, want) == 0) n_ok++;
            else t_fail(__FILE__, __LINE__, "%s conv %lld agp %d:\n--- got\n%s\n--- want\n%s", name,
                        (long long)json_integer_value(json_object_get(c, "conversation")), agp, got ? got : "(null)", want);
            CHECK(mlxn_chat_emits_bos(MLXN_CHAT_AUTO, tmpl) == (fam != MLXN_CHAT_CHATML));
            free(got);
            free(want_today);
        }
        free(tmpl);
        json_decref(c);
        n_cases++;
    }
    free(text);
    printf("  %zu/%zu rendered prompts identical to jinja2\n", n_ok, n_cases);
    CHECK(n_cases >= 40);
    CHECK_MSG(seen_smollm, "the SmolLM2 template (from its GGUF) is not among the fixtures");
    CHECK(seen[MLXN_CHAT_CHATML] && seen[MLXN_CHAT_LLAMA3] && seen[MLXN_CHAT_GEMMA] && seen[MLXN_CHAT_LLAMA2]);
}

static void test_smollm2_default_system(void) {
    char *tmpl = read_template("smollm2");
    CHECK(tmpl != NULL);
    if (!tmpl) return;
    mlxn_chat_msg m[1] = {{"user", "Hi"}};
    char *got = NULL;
    CHECK_OK(mlxn_chat_apply(MLXN_CHAT_AUTO, tmpl, m, 1, 1, &got));
    CHECK(got && strcmp(got, "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
                             "Face<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n") == 0);
    free(got);
    /* override: the same conversation as Llama 3 ignores ChatML's default system message */
    CHECK_OK(mlxn_chat_apply(MLXN_CHAT_LLAMA3, tmpl, m, 1, 1, &got));
    CHECK(got && strcmp(got, "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
                             "<|start_header_id|>assistant<|end_header_id|>\n\n") == 0);
    free(got);
    /* no template: ChatML without a default system message */
    CHECK_OK(mlxn_chat_apply(MLXN_CHAT_CHATML, NULL, m, 1, 0, &got));
    CHECK(got && strcmp(got, "<|im_start|>user\nHi<|im_end|>\n") == 0);
    free(got);
    CHECK_OK(mlxn_chat_apply(MLXN_CHAT_NONE, NULL, m, 1, 1, &got));
    CHECK(got && strcmp(got, "Hi") == 0);
    free(got);
    CHECK_OK(mlxn_chat_apply(MLXN_CHAT_AUTO, tmpl, NULL, 0, 1, &got));
    CHECK(got && strcmp(got, "<|im_start|>assistant\n") == 0);
    free(got);
    free(tmpl);
}

static void test_detect_parse_refuse(void) {
    CHECK(mlxn_chat_detect(NULL) == MLXN_CHAT_NONE);
    CHECK(mlxn_chat_detect("{{ messages }}") == MLXN_CHAT_NONE);
    for (int f = MLXN_CHAT_AUTO; f <= MLXN_CHAT_NONE; f++) {
        mlxn_chat_format g = MLXN_CHAT_AUTO;
        CHECK_OK(mlxn_chat_format_parse(mlxn_chat_format_name((mlxn_chat_format)f), &g));
        CHECK(g == (mlxn_chat_format)f);
    }
    mlxn_chat_format g;
    CHECK_OK(mlxn_chat_format_parse("Qwen", &g));
    CHECK(g == MLXN_CHAT_CHATML);
    CHECK_ERR(mlxn_chat_format_parse("vicuna", &g), MLXN_ERR_INVALID_ARG, "vicuna");
    char *tmpl = read_template("gemma"), *got = NULL;
    mlxn_chat_msg sys[2] = {{"system", "Be brief."}, {"user", "Hi"}};
    CHECK_ERR(mlxn_chat_apply(MLXN_CHAT_AUTO, tmpl, sys, 2, 1, &got), MLXN_ERR_INVALID_ARG, "system");
    /* Gemma 3 style (no refusal in the template): the system text opens the first user turn */
    CHECK_OK(mlxn_chat_apply(MLXN_CHAT_GEMMA, NULL, sys, 2, 1, &got));
    CHECK(got && strcmp(got, "<bos><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\n") == 0);
    free(got);
    mlxn_chat_msg two_users[2] = {{"user", "a"}, {"user", "b"}};
    CHECK_ERR(mlxn_chat_apply(MLXN_CHAT_AUTO, tmpl, two_users, 2, 1, &got), MLXN_ERR_INVALID_ARG, "alternate");
    CHECK_ERR(mlxn_chat_apply(MLXN_CHAT_LLAMA2, NULL, two_users, 2, 1, &got), MLXN_ERR_INVALID_ARG, "alternate");
    mlxn_chat_msg bad[1] = {{"user", NULL}};
    CHECK_ERR(mlxn_chat_apply(MLXN_CHAT_CHATML, NULL, bad, 1, 1, &got), MLXN_ERR_INVALID_ARG, "NULL");
    /* trim removes Unicode whitespace like Python's str.strip */
    mlxn_chat_msg ws[1] = {{"user", "\xE3\x80\x80 x\xC2\xA0\n"}};
    CHECK_OK(mlxn_chat_apply(MLXN_CHAT_LLAMA3, NULL, ws, 1, 0, &got));
    CHECK(got && strstr(got, "\n\nx<|eot_id|>"));
    free(got);
    free(tmpl);
}

/* Qwen3's assistant-turn rules beyond the fixture conversations (expected strings from jinja2 3.1.6). */
static void test_qwen3_cases(void) {
    char *tmpl = read_template("chatml_qwen3"), *got = NULL;
    CHECK(tmpl != NULL);
    if (!tmpl) return;
    mlxn_chat_msg a[2] = {{"user", "Q"}, {"assistant", "\nA"}};
    CHECK_OK(mlxn_chat_apply(MLXN_CHAT_AUTO, tmpl, a, 2, 0, &got));
    CHECK(got && strcmp(got, "<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\nA<|im_end|>\n") == 0);
    free(got);
    mlxn_chat_msg b[2] = {{"user", "<tool_response>x</tool_response>"}, {"assistant", "A"}};
    CHECK_OK(mlxn_chat_apply(MLXN_CHAT_AUTO, tmpl, b, 2, 0, &got));
    CHECK(got && strcmp(got, "<|im_start|>user\n<tool_response>x</tool_response><|im_end|>\n<|im_start|>assistant\nA<|im_end|>\n") == 0);
    free(got);
    free(tmpl);
}

int main(void) {
    T_RUN(test_against_jinja);
    T_RUN(test_smollm2_default_system);
    T_RUN(test_detect_parse_refuse);
    T_RUN(test_qwen3_cases);
    return t_finish();
}
