/* cmd_generate.c — `mlxn generate` (one prompt -> streamed continuation on
 * stdout, a timing summary on stderr) and `mlxn chat` (a conversation read
 * line by line from stdin, interactive on a terminal and equally usable
 * under a plain pipe; the KV cache keeps the conversation's prefix so each
 * turn only evaluates the new tokens). Both apply the model's chat template
 * unless told not to, and share the sampling flags. Every failure is a
 * one-line message and a non-zero exit. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "cli_model.h"
#include "model/chat_template.h"
#include "model/generate.h"
#include "model/kv_cache.h"

#define MAX_STOP 16

typedef struct gen_opts {
    const char *model, *device, *prompt, *prompt_file, *system, *chat_format;
    int n_predict, n_ctx, n_batch, threads, raw, ignore_eos, verbose, no_stats, use_graph, kv_f32;
    mlxn_sampler_params sp;
    const char *stop[MAX_STOP];
    int n_stop;
    int seed_given;
} gen_opts;

static void common_help(FILE *f) {
    fprintf(f,
            "model and device:\n"
            "  -m, --model PATH        .gguf file or MLX model directory (default: SmolLM2-135M-Instruct,\n"
            "                          fetched once into ${MLXN_CACHE:-~/.cache/mlxn}/models; or $MLXN_MODEL)\n"
            "  --device cpu|cuda|auto  where to run (default auto: CUDA if usable, else CPU)\n"
            "  -t, --threads N         CPU worker threads (default: all cores)\n"
            "  -c, --ctx-size N        context (KV cache) size in tokens (default: generate: the prompt\n"
            "                          + -n in steps of 256, chat: min(model's, 4096); never above min(model's, 4096))\n"
            "  -b, --batch-size N      prefill chunk in tokens (default 512)\n"
            "  --kv-f32                keep the KV cache in f32 on CUDA (default f16 there; f32 on CPU)\n"
            "  --no-graph              do not record/replay the decode step as a graph\n"
            "prompt formatting:\n"
            "  --raw                   do not apply the model's chat template\n"
            "  --system TEXT           system message (chat template only)\n"
            "  --chat-format NAME      auto|chatml|llama3|gemma|llama2|none (default auto: from the model)\n"
            "sampling (default: greedy):\n"
            "  --temp T                temperature; 0 = greedy (default 0)\n"
            "  --top-k K               keep the K most likely tokens (default 40; 0 = off)\n"
            "  --top-p P               nucleus sampling mass (default 0.95; 1 = off)\n"
            "  --min-p P               drop tokens below P x the best probability (default 0.05; 0 = off)\n"
            "  --repeat-penalty R      penalise the last --repeat-last-n tokens (default 1 = off)\n"
            "  --repeat-last-n N       window of the repetition penalty (default 64; -1 = all)\n"
            "  --seed S                RNG seed (default 42; same seed, same output)\n"
            "stopping:\n"
            "  -n, --n-predict N       generate at most N tokens (default 256 for generate, 1024 per chat turn)\n"
            "  --stop TEXT             stop when TEXT appears (repeatable, up to %d; not printed)\n"
            "  --ignore-eos            keep generating past end-of-generation tokens\n"
            "output:\n"
            "  --no-stats              do not print the timing summary on stderr\n"
            "  -v, --verbose           library log messages on stderr (-vv: debug)\n"
            "  -h, --help              this help\n",
            MAX_STOP);
}

static void generate_help(FILE *f) {
    fprintf(f, "usage: mlxn generate [-m MODEL] -p PROMPT [options]\n"
               "\n"
               "Generate a continuation of PROMPT and stream it to stdout. The timing summary (load time,\n"
               "prefill and decode tokens/s, peak memory) goes to stderr.\n"
               "\n"
               "  -p, --prompt TEXT       the prompt (UTF-8)\n"
               "  -f, --file PATH         read the prompt from a file ('-' = stdin)\n");
    common_help(f);
    fprintf(f, "\nexample:\n  mlxn generate -p \"Write a haiku about GPUs\" -n 64\n");
}

static void chat_help(FILE *f) {
    fprintf(f, "usage: mlxn chat [-m MODEL] [options]\n"
               "\n"
               "Chat with the model: each line read from stdin is a user message; the reply streams to\n"
               "stdout. The conversation is kept (and its KV cache reused) across turns. Works on a terminal\n"
               "and under a plain pipe (e.g. printf 'Hi\\nWhat did I say?\\n' | mlxn chat). Commands:\n"
               "/reset (forget the conversation), /exit or end of input (quit).\n"
               "\n");
    common_help(f);
}

/* Parse argv into o. Returns -1 to continue, else an exit code (help / error). */
static int parse_opts(int argc, char **argv, gen_opts *o, int is_chat) {
    memset(o, 0, sizeof *o);
    o->device = "auto";
    o->n_predict = is_chat ? 1024 : 256;
    o->use_graph = -1;
    o->sp = mlxn_sampler_default_params();
    o->chat_format = "auto";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define IS(s) (strcmp(a, s) == 0)
#define NEEDV() do { if (!v) { fprintf(stderr, "error: %s needs a value (see --help)\n", a); return 2; } i++; } while (0)
        if (IS("-h") || IS("--help")) {
            if (is_chat) chat_help(stdout);
            else generate_help(stdout);
            return 0;
        } else if (IS("-m") || IS("--model")) { NEEDV(); o->model = v; }
        else if (IS("--device")) { NEEDV(); o->device = v; }
        else if (!is_chat && (IS("-p") || IS("--prompt"))) { NEEDV(); o->prompt = v; }
        else if (!is_chat && (IS("-f") || IS("--file"))) { NEEDV(); o->prompt_file = v; }
        else if (IS("--system")) { NEEDV(); o->system = v; }
        else if (IS("--chat-format")) { NEEDV(); o->chat_format = v; }
        else if (IS("--raw")) o->raw = 1;
        else if (IS("--ignore-eos")) o->ignore_eos = 1;
        else if (IS("--no-stats")) o->no_stats = 1;
        else if (IS("--no-graph")) o->use_graph = 0;
        else if (IS("--kv-f32")) o->kv_f32 = 1;
        else if (IS("-v") || IS("--verbose")) o->verbose++;
        else if (IS("-vv")) o->verbose += 2;
        else if (IS("-n") || IS("--n-predict")) { NEEDV(); if (!cli_parse_int(a, v, 0, 1 << 24, &o->n_predict)) return 2; }
        else if (IS("-c") || IS("--ctx-size")) { NEEDV(); if (!cli_parse_int(a, v, 1, 1 << 24, &o->n_ctx)) return 2; }
        else if (IS("-b") || IS("--batch-size")) { NEEDV(); if (!cli_parse_int(a, v, 1, 1 << 16, &o->n_batch)) return 2; }
        else if (IS("-t") || IS("--threads")) { NEEDV(); if (!cli_parse_int(a, v, 0, 4096, &o->threads)) return 2; }
        else if (IS("--temp") || IS("--temperature")) { NEEDV(); if (!cli_parse_float(a, v, 0, 100, &o->sp.temperature)) return 2; }
        else if (IS("--top-k")) { NEEDV(); if (!cli_parse_int(a, v, 0, 1 << 24, &o->sp.top_k)) return 2; }
        else if (IS("--top-p")) { NEEDV(); if (!cli_parse_float(a, v, 1e-6, 1, &o->sp.top_p)) return 2; }
        else if (IS("--min-p")) { NEEDV(); if (!cli_parse_float(a, v, 0, 1, &o->sp.min_p)) return 2; }
        else if (IS("--repeat-penalty")) { NEEDV(); if (!cli_parse_float(a, v, 1e-3, 100, &o->sp.repeat_penalty)) return 2; }
        else if (IS("--repeat-last-n")) { NEEDV(); if (!cli_parse_int(a, v, -1, 1 << 20, &o->sp.repeat_last_n)) return 2; }
        else if (IS("--seed")) { NEEDV(); if (!cli_parse_u64(a, v, &o->sp.seed)) return 2; o->seed_given = 1; }
        else if (IS("--stop")) {
            NEEDV();
            if (o->n_stop >= MAX_STOP) { fprintf(stderr, "error: at most %d --stop strings\n", MAX_STOP); return 2; }
            if (!*v) { fprintf(stderr, "error: --stop needs a non-empty string\n"); return 2; }
            o->stop[o->n_stop++] = v;
        } else {
            fprintf(stderr, "error: unknown option '%s' (see mlxn %s --help)\n", a, is_chat ? "chat" : "generate");
            return 2;
        }
#undef IS
#undef NEEDV
    }
    return -1;
}

typedef struct stream_ctx {
    FILE *out;
    int collect_on;  /* chat: keep the reply text */
    char *collect;
    size_t n, cap;
} stream_ctx;

static int on_text(void *user, int32_t id, const char *text, size_t len) {
    (void)id;
    stream_ctx *c = user;
    if (len) {
        fwrite(text, 1, len, c->out);
        fflush(c->out);
        if (c->collect_on) {
            if (c->n + len + 1 > c->cap) {
                size_t cap = c->cap ? c->cap * 2 : 1024;
                while (cap < c->n + len + 1) cap *= 2;
                char *p = realloc(c->collect, cap);
                if (!p) return 1;
                c->collect = p;
                c->cap = cap;
            }
            memcpy(c->collect + c->n, text, len);
            c->n += len;
            c->collect[c->n] = 0;
        }
    }
    return 0;
}

static void print_stats(const cli_loaded *L, const mlxn_runner *r, const mlxn_gen_stats *gs) {
    size_t in_use = 0, peak = 0;
    mlxn_device_memory(L->dev, &in_use, &peak);
    char b1[32], b2[32];
    double pp = gs->prefill_s > 0 ? gs->n_prompt_eval / gs->prefill_s : 0;
    double tg = gs->decode_s > 0 && gs->n_decode > 0 ? gs->n_decode / gs->decode_s : 0;
    fprintf(stderr,
            "\nmlxn: load %.2f s | prompt %d tok (%d evaluated) %.2f s = %.1f tok/s | generated %d tok, "
            "%d decode steps %.2f s = %.1f tok/s | stop: %s\n"
            "mlxn: peak memory: device %s (%s), process RSS %s | context %d, KV cache %s\n",
            L->load_s, gs->n_prompt, gs->n_prompt_eval, gs->prefill_s, pp, gs->n_gen, gs->n_decode, gs->decode_s, tg,
            gs->stop_reason, cli_fmt_bytes((double)peak, b1, sizeof b1), mlxn_device_kind(L->dev),
            cli_fmt_bytes((double)cli_peak_rss(), b2, sizeof b2), mlxn_runner_n_ctx(r),
            cli_fmt_bytes((double)mlxn_runner_kv_bytes(r), (char[32]){ 0 }, 32));
}

/* Generation parameters from the command-line options, streaming into sc. */
static mlxn_gen_params gen_params(const gen_opts *o, const cli_loaded *L, stream_ctx *sc) {
    mlxn_gen_params gp;
    memset(&gp, 0, sizeof gp);
    gp.max_tokens = o->n_predict;
    gp.sampling = o->sp;
    gp.stop = o->stop;
    gp.n_stop = o->n_stop;
    gp.ignore_eos = o->ignore_eos;
    gp.tok = L->tok;
    gp.on_text = on_text;
    gp.user = sc;
    return gp;
}

/* Loads the model and picks the chat format; with r, also makes the runner
 * (make_runner) with the context o->n_ctx (0: the runner's default). */
static int make_runner(const gen_opts *o, cli_loaded *L, int n_ctx, mlxn_runner **r);
static int setup(const gen_opts *o, cli_loaded *L, mlxn_runner **r, mlxn_chat_format *fmt) {
    if (cli_load(o->model, o->device, o->threads, 1, o->verbose, L)) return 1;
    char desc[512];
    mlxn_model_describe(L->model, desc, sizeof desc);
    if (!o->no_stats)
        fprintf(stderr, "mlxn: %s\nmlxn: %s on %s, loaded in %.2f s\n", L->path, desc,
                mlxn_device_description(L->dev), L->load_s);
    *fmt = MLXN_CHAT_NONE;
    if (!o->raw) {
        mlxn_chat_format f;
        if (mlxn_chat_format_parse(o->chat_format, &f) != MLXN_OK) {
            fprintf(stderr, "error: --chat-format: %s\n", mlxn_last_error());
            return 1;
        }
        if (f == MLXN_CHAT_AUTO) f = mlxn_chat_detect(mlxn_tokenizer_chat_template(L->tok));
        *fmt = f;
    }
    return r ? make_runner(o, L, o->n_ctx, r) : 0;
}

static int make_runner(const gen_opts *o, cli_loaded *L, int n_ctx, mlxn_runner **r) {
    mlxn_runner_opts ro = mlxn_runner_default_opts();
    ro.n_ctx = n_ctx;
    ro.n_batch = o->n_batch;
    ro.use_graph = o->use_graph;
    if (o->kv_f32) ro.kv_dtype = MLXN_F32;
    if (n_ctx > L->model->cfg.max_ctx && L->model->cfg.max_ctx > 0)
        fprintf(stderr, "mlxn: warning: context %d is larger than the model's trained context %d\n", n_ctx,
                L->model->cfg.max_ctx);
    if (mlxn_runner_create(L->model, &ro, r) != MLXN_OK) {
        fprintf(stderr, "error: cannot set up generation: %s\n", mlxn_last_error());
        return 1;
    }
    return 0;
}

/* Render messages (or the raw text) and encode. Returns 0 on success. */
static int encode_prompt(const gen_opts *o, const cli_loaded *L, mlxn_chat_format fmt, const mlxn_chat_msg *msgs,
                         size_t n_msgs, const char *raw_text, int32_t **ids, size_t *n_ids) {
    char *rendered = NULL;
    const char *text = raw_text;
    int add_bos = 1;
    if (fmt != MLXN_CHAT_NONE || !raw_text) {
        const char *tmpl = mlxn_tokenizer_chat_template(L->tok);
        if (mlxn_chat_apply(fmt, tmpl, msgs, n_msgs, 1, &rendered) != MLXN_OK) {
            fprintf(stderr, "error: chat template: %s\n", mlxn_last_error());
            return 1;
        }
        text = rendered;
        if (mlxn_chat_emits_bos(fmt, tmpl)) add_bos = 0;
    }
    if (o->verbose) fprintf(stderr, "mlxn: prompt text: %s\n", text);
    mlxn_status st = mlxn_tokenizer_encode(L->tok, text, strlen(text), add_bos, 1, ids, n_ids);
    free(rendered);
    if (st != MLXN_OK) {
        fprintf(stderr, "error: the prompt cannot be tokenized: %s\n", mlxn_last_error());
        return 1;
    }
    if (*n_ids == 0) {
        fprintf(stderr, "error: the prompt is empty\n");
        return 1;
    }
    return 0;
}

/* position of the first invalid UTF-8 byte, or -1 */
static long utf8_invalid_at(const char *s, size_t n) {
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        unsigned c = p[i];
        size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        if (!len || i + len > n || (len == 2 && c < 0xc2) || (len == 4 && c > 0xf4)) return (long)i;
        for (size_t k = 1; k < len; k++)
            if ((p[i + k] & 0xc0) != 0x80) return (long)i;
        if (len == 3) {
            unsigned cp = ((c & 15u) << 12) | ((p[i + 1] & 63u) << 6) | (p[i + 2] & 63u);
            if (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff)) return (long)i;
        } else if (len == 4) {
            unsigned cp = ((c & 7u) << 18) | ((p[i + 1] & 63u) << 12) | ((p[i + 2] & 63u) << 6) | (p[i + 3] & 63u);
            if (cp < 0x10000 || cp > 0x10ffff) return (long)i;
        }
        i += len;
    }
    return -1;
}

int mlxn_cmd_generate(int argc, char **argv) {
    gen_opts o;
    int rc = parse_opts(argc, argv, &o, 0);
    if (rc >= 0) return rc;
    char *file_text = NULL;
    if (o.prompt && o.prompt_file) {
        fprintf(stderr, "error: give either -p or -f, not both\n");
        return 2;
    }
    if (o.prompt_file) {
        file_text = cli_read_file(o.prompt_file, NULL);
        if (!file_text) return 1;
        o.prompt = file_text;
    }
    if (!o.prompt) {
        fprintf(stderr, "error: no prompt: use -p TEXT or -f FILE (see mlxn generate --help)\n");
        return 2;
    }
    long bad = utf8_invalid_at(o.prompt, strlen(o.prompt));
    if (bad >= 0) {
        fprintf(stderr, "error: the prompt is not valid UTF-8 (invalid byte 0x%02x at offset %ld)\n",
                (unsigned char)o.prompt[bad], bad);
        free(file_text);
        return 1;
    }
    cli_loaded L;
    mlxn_runner *r = NULL;
    mlxn_chat_format fmt;
    if (setup(&o, &L, NULL, &fmt)) {
        cli_unload(&L);
        free(file_text);
        return 1;
    }
    mlxn_chat_msg msgs[2];
    size_t nm = 0;
    if (o.system) msgs[nm++] = (mlxn_chat_msg){ "system", o.system };
    msgs[nm++] = (mlxn_chat_msg){ "user", o.prompt };
    int32_t *ids = NULL;
    size_t n_ids = 0;
    rc = encode_prompt(&o, &L, fmt, msgs, nm, fmt == MLXN_CHAT_NONE ? o.prompt : NULL, &ids, &n_ids);
    /* Without -c the cache holds what this job needs (prompt + -n, in whole
     * 256-token steps) up to the runner's default: a larger cache decodes
     * slower on CUDA, where the decode attention's grid follows its size
     * (H100, SmolLM2-135M shape: 1,930 tok/s at 640 slots, 1,743 at 4,096). */
    if (rc == 0) {
        const int dflt = L.model->cfg.max_ctx > 0 && L.model->cfg.max_ctx < 4096 ? L.model->cfg.max_ctx : 4096;
        int64_t need = ((int64_t)n_ids + o.n_predict + 255) / 256 * 256;
        int n_ctx = o.n_ctx ? o.n_ctx : need < dflt ? (int)need : dflt;
        if (make_runner(&o, &L, n_ctx, &r)) rc = 1;
    }
    if (rc == 0 && (int64_t)n_ids > mlxn_runner_n_ctx(r)) {
        fprintf(stderr,
                "error: the prompt is %zu tokens long but the context holds %d tokens (raise it with -c; "
                "the model was trained for %d)\n",
                n_ids, mlxn_runner_n_ctx(r), L.model->cfg.max_ctx);
        rc = 1;
    }
    if (rc == 0) {
        stream_ctx sc = { stdout, 0, NULL, 0, 0 };
        mlxn_gen_params gp = gen_params(&o, &L, &sc);
        mlxn_gen_stats gs;
        if (o.n_predict > 0 && mlxn_generate(r, ids, (int)n_ids, &gp, &gs, NULL, NULL) != MLXN_OK) {
            fprintf(stderr, "\nerror: generation failed: %s\n", mlxn_last_error());
            rc = 1;
        } else if (o.n_predict > 0) {
            fputc('\n', stdout);
            fflush(stdout);
            if (!o.no_stats) print_stats(&L, r, &gs);
        }
    }
    free(ids);
    mlxn_runner_free(r);
    cli_unload(&L);
    free(file_text);
    return rc;
}

/* ---------------------------------------------------------------- chat */

typedef struct conv {
    mlxn_chat_msg *m;
    char **owned;
    size_t n, cap;
} conv;

static int conv_add(conv *c, const char *role, const char *text) {
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 16;
        mlxn_chat_msg *m = realloc(c->m, cap * sizeof *m);
        if (!m) return 0;
        c->m = m;
        char **o = realloc(c->owned, cap * sizeof *o);
        if (!o) return 0;
        c->owned = o;
        c->cap = cap;
    }
    char *dup = strdup(text);
    if (!dup) return 0;
    c->owned[c->n] = dup;
    c->m[c->n].role = role;
    c->m[c->n].content = dup;
    c->n++;
    return 1;
}

static void conv_drop(conv *c, size_t i, size_t count) {
    for (size_t k = i; k < i + count; k++) free(c->owned[k]);
    memmove(c->m + i, c->m + i + count, (c->n - i - count) * sizeof *c->m);
    memmove(c->owned + i, c->owned + i + count, (c->n - i - count) * sizeof *c->owned);
    c->n -= count;
}

static void conv_free(conv *c) {
    for (size_t k = 0; k < c->n; k++) free(c->owned[k]);
    free(c->m);
    free(c->owned);
}

int mlxn_cmd_chat(int argc, char **argv) {
    gen_opts o;
    int rc = parse_opts(argc, argv, &o, 1);
    if (rc >= 0) return rc;
    cli_loaded L;
    mlxn_runner *r = NULL;
    mlxn_chat_format fmt;
    if (setup(&o, &L, &r, &fmt)) {
        mlxn_runner_free(r);
        cli_unload(&L);
        return 1;
    }
    if (fmt == MLXN_CHAT_NONE)
        fprintf(stderr, "mlxn: note: no chat template (raw mode or none in the model): turns are concatenated\n");
    const int tty = isatty(STDIN_FILENO);
    if (tty) fprintf(stderr, "mlxn: chat ready. /reset forgets the conversation, /exit or Ctrl-D quits.\n");
    conv c = { 0 };
    size_t n_sys = 0;
    if (o.system) {
        conv_add(&c, "system", o.system);
        n_sys = 1;
    }
    char *line = NULL;
    size_t lcap = 0;
    rc = 0;
    for (;;) {
        if (tty) {
            fputs("> ", stdout);
            fflush(stdout);
        }
        ssize_t len = getline(&line, &lcap, stdin);
        if (len < 0) break;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = 0;
        if (len == 0) continue;
        if (!strcmp(line, "/exit") || !strcmp(line, "/quit")) break;
        if (!strcmp(line, "/reset")) {
            conv_drop(&c, n_sys, c.n - n_sys);
            mlxn_runner_reset(r);
            fprintf(stderr, "mlxn: conversation cleared\n");
            continue;
        }
        long bad = utf8_invalid_at(line, (size_t)len);
        if (bad >= 0) {
            fprintf(stderr, "error: this message is not valid UTF-8 (byte offset %ld); ignored\n", bad);
            rc = 1;
            continue;
        }
        if (!conv_add(&c, "user", line)) {
            fprintf(stderr, "error: out of memory\n");
            rc = 1;
            break;
        }
        int32_t *ids = NULL;
        size_t n_ids = 0;
        /* render; drop the oldest turns while the prompt (+ room to answer) does not fit */
        int failed = 0;
        for (;;) {
            free(ids);
            ids = NULL;
            const char *raw = NULL;
            char *joined = NULL;
            if (fmt == MLXN_CHAT_NONE) { /* concatenate the turns */
                size_t tot = 1;
                for (size_t k = 0; k < c.n; k++) tot += strlen(c.m[k].content) + 1;
                joined = malloc(tot);
                if (!joined) { failed = 1; break; }
                joined[0] = 0;
                for (size_t k = 0; k < c.n; k++) {
                    strcat(joined, c.m[k].content);
                    strcat(joined, "\n");
                }
                raw = joined;
            }
            int e = encode_prompt(&o, &L, fmt, c.m, c.n, raw, &ids, &n_ids);
            free(joined);
            if (e) { failed = 1; break; }
            int room = o.n_predict < 64 ? o.n_predict : 64;
            if ((int64_t)n_ids + room <= mlxn_runner_n_ctx(r)) break;
            if (c.n - n_sys <= 1) {
                fprintf(stderr, "error: this message is %zu tokens long; the context holds %d tokens (use -c)\n",
                        n_ids, mlxn_runner_n_ctx(r));
                conv_drop(&c, c.n - 1, 1);
                failed = 1;
                break;
            }
            conv_drop(&c, n_sys, c.n - n_sys >= 2 ? 2 : 1); /* oldest user + assistant */
            fprintf(stderr, "mlxn: context full: dropped the oldest turn\n");
        }
        if (failed) {
            free(ids);
            rc = 1;
            continue;
        }
        stream_ctx sc = { stdout, 1, NULL, 0, 0 };
        mlxn_gen_params gp = gen_params(&o, &L, &sc);
        mlxn_gen_stats gs;
        mlxn_status st = mlxn_generate(r, ids, (int)n_ids, &gp, &gs, NULL, NULL);
        free(ids);
        fputc('\n', stdout);
        fflush(stdout);
        if (st != MLXN_OK) {
            fprintf(stderr, "error: generation failed: %s\n", mlxn_last_error());
            free(sc.collect);
            rc = 1;
            break;
        }
        conv_add(&c, "assistant", sc.collect ? sc.collect : "");
        free(sc.collect);
        if (o.verbose && !o.no_stats) print_stats(&L, r, &gs);
        else if (!o.no_stats)
            fprintf(stderr, "mlxn: [%d prompt tok (%d new) %.1f tok/s, %d tok %.1f tok/s]\n", gs.n_prompt,
                    gs.n_prompt_eval, gs.prefill_s > 0 ? gs.n_prompt_eval / gs.prefill_s : 0.0, gs.n_gen,
                    gs.decode_s > 0 && gs.n_decode ? gs.n_decode / gs.decode_s : 0.0);
    }
    free(line);
    conv_free(&c);
    mlxn_runner_free(r);
    cli_unload(&L);
    return rc;
}
