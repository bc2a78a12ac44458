/* chat_template.h — render a conversation into a prompt string in the
 * model's own chat format. Instead of a Jinja interpreter, mlxn recognises the
 * common families from the template text (ChatML as used by SmolLM2 and Qwen,
 * Llama 3, Gemma, Llama 2) and renders them natively, reproducing what the
 * model's Jinja template produces (including a default system prompt where
 * the template adds one, e.g. SmolLM2's). A caller-chosen format overrides
 * detection. */
#ifndef MLXN_MODEL_CHAT_TEMPLATE_H
#define MLXN_MODEL_CHAT_TEMPLATE_H

#include <stddef.h>
#include "mlxn.h"

typedef enum {
    MLXN_CHAT_AUTO,
    MLXN_CHAT_CHATML,
    MLXN_CHAT_LLAMA3,
    MLXN_CHAT_GEMMA,
    MLXN_CHAT_LLAMA2,
    MLXN_CHAT_NONE, /* plain concatenation of message contents */
} mlxn_chat_format;

typedef struct {
    const char *role;    /* "system", "user", "assistant" */
    const char *content;
} mlxn_chat_msg;

/* Recognise the family from the Jinja text; NULL or unrecognised -> MLXN_CHAT_NONE. */
mlxn_chat_format mlxn_chat_detect(const char *template_text);
/* "auto", "chatml", "llama3", "gemma", "llama2", "none". */
const char *mlxn_chat_format_name(mlxn_chat_format f);
/* Inverse of mlxn_chat_format_name (case-insensitive); unknown -> MLXN_ERR_INVALID_ARG listing the names. */
mlxn_status mlxn_chat_format_parse(const char *name, mlxn_chat_format *out);

/* Render msgs[n] into a malloc'd NUL-terminated prompt in format f (AUTO ->
 * detect from template_text; template_text may be NULL otherwise, and is also
 * consulted for a family's default system prompt, e.g. SmolLM2's). The
 * BOS token text is included where the template emits it (Llama 3's
 * "<|begin_of_text|>", Gemma's "<bos>", Llama 2's "<s>"); encode the result
 * with parse_special=1 and add_bos=0 in that case.
 * add_generation_prompt appends the assistant header. */
mlxn_status mlxn_chat_apply(mlxn_chat_format f, const char *template_text, const mlxn_chat_msg *msgs, size_t n,
                            int add_generation_prompt, char **out);

/* 1 if the rendered prompt for this format/template already begins with the BOS text
 * (so the caller must not add BOS again). */
int mlxn_chat_emits_bos(mlxn_chat_format f, const char *template_text);

#endif
