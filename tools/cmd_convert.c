/* cmd_convert.c — `mlxn convert`: turn a GGUF file or a Hugging Face
 * safetensors directory into an MLX model directory (library side in
 * src/io/convert.c). Parses the flags, shows a progress bar on a terminal
 * (plain periodic lines when stderr is not a TTY), and ends with a summary:
 * tensor counts per kind, bytes in/out, and the measured error of every
 * quantized or re-quantized tensor (the worst ones listed). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "io/convert.h"
#include "mlxn.h"

#define MAX_OVERRIDES 64

static void usage(FILE *f) {
    fprintf(f,
            "usage: mlxn convert -i IN -o OUTDIR [options]\n"
            "\n"
            "IN is a .gguf file or a Hugging Face safetensors directory (config.json + *.safetensors, f32/f16/bf16).\n"
            "OUTDIR becomes an MLX model directory (loads with mlx_lm.load and mlxn).\n"
            "\n"
            "GGUF: Q4_0/Q4_1/Q8_0/Q5_0/Q5_1 -> MLX affine group 32 losslessly; F32/F16/BF16 kept; K-quants\n"
            "      re-quantized (default bits per type: Q2_K..Q4_K 4, Q5_K 5, Q6_K 6; group 32) with the error\n"
            "      reported; llama Q/K RoPE permutation undone; tokenizer.json/config.json generated.\n"
            "HF:   quantized to MLX affine (default 4-bit, group 64), mlx-lm recipes and per-module overrides.\n"
            "\n"
            "options:\n"
            "  -i, --input PATH          input .gguf file or directory\n"
            "  -o, --output DIR          output directory\n"
            "  --bits N                  2,3,4,5,6,8 (HF default 4; GGUF: bits for re-quantized K-quants)\n"
            "  --group-size N            32, 64, 128 (HF default 64; GGUF re-quantization default 32)\n"
            "  --recipe R                uniform (default), mixed_2_6, mixed_3_4, mixed_3_6, mixed_4_6\n"
            "                            (mlx-lm's choices: more bits for v_proj/down_proj in some layers, lm_head)\n"
            "  --override MOD=BITS[:G]   per-module bits (and group); MOD is a module path, a suffix such as\n"
            "                            lm_head or mlp.down_proj, or a glob; BITS 0 or 'float' keeps it float.\n"
            "                            Repeatable; later ones win.\n"
            "  --dtype bf16|f16|f32      dtype of float tensors and of new scales (default: keep / config torch_dtype)\n"
            "  --no-quantize             HF input: only cast (write a float MLX directory)\n"
            "  --shard-size GB           maximum shard size (default 5)\n"
            "  --force                   write into an existing non-empty directory\n"
            "  -q, --quiet               no progress output, one summary line\n"
            "  -v, --verbose             list every tensor in the summary\n"
            "  -h, --help                this help\n");
}

typedef struct prog_state {
    int tty, quiet;
    double t0, last;
    int last_pct;
} prog_state;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void human(double b, char *buf, size_t cap) {
    const char *u[] = {"B", "KB", "MB", "GB", "TB"};
    int i = 0;
    while (b >= 1000 && i < 4) { b /= 1000; i++; }
    snprintf(buf, cap, i ? "%.2f %s" : "%.0f %s", b, u[i]);
}

static void on_progress(const mlxn_convert_progress *p, void *user) {
    prog_state *s = user;
    if (s->quiet) return;
    double t = now_s();
    if (p->stage == MLXN_CONVERT_STAGE_PLAN) {
        char b[32];
        human((double)p->bytes_total, b, sizeof b);
        fprintf(stderr, "convert: %lld tensors, %s to read, %d shard%s\n", (long long)p->n_tensors, b, p->n_shards,
                p->n_shards == 1 ? "" : "s");
        s->t0 = s->last = t;
        s->last_pct = -1;
        return;
    }
    if (p->stage == MLXN_CONVERT_STAGE_DONE) {
        if (s->tty) fputc('\n', stderr);
        return;
    }
    if (p->stage == MLXN_CONVERT_STAGE_WRITE) {
        if (!s->tty) fprintf(stderr, "convert: wrote shard %d/%d\n", p->shard_index + 1, p->n_shards);
        return;
    }
    double frac = p->bytes_total ? (double)p->bytes_done / (double)p->bytes_total : 1.0;
    int pct = (int)(frac * 100.0);
    double el = t - s->t0, rate = el > 0 ? (double)p->bytes_done / el : 0;
    char rb[32];
    human(rate, rb, sizeof rb);
    if (s->tty) {
        if (t - s->last < 0.05 && p->index != p->n_tensors) return;
        s->last = t;
        const int W = 30;
        char bar[W + 1];
        int fill = (int)(frac * W);
        for (int i = 0; i < W; i++) bar[i] = i < fill ? '#' : '.';
        bar[W] = 0;
        const char *nm = p->tensor_name ? p->tensor_name : "";
        size_t l = strlen(nm);
        if (l > 40) nm += l - 40;
        fprintf(stderr, "\r\033[K[%s] %3d%% %lld/%lld %s/s %s", bar, pct, (long long)p->index, (long long)p->n_tensors,
                rb, nm);
        fflush(stderr);
    } else if (pct / 10 != s->last_pct / 10 || t - s->last > 5.0 || p->index == p->n_tensors) {
        s->last = t;
        s->last_pct = pct;
        fprintf(stderr, "convert: %3d%% %lld/%lld tensors (%s/s)\n", pct, (long long)p->index, (long long)p->n_tensors, rb);
    }
}

static const char *kind_name(mlxn_convert_kind k) {
    return k == MLXN_CONVERT_FLOAT ? "float" : k == MLXN_CONVERT_LOSSLESS ? "lossless" : "quantized";
}

static int cmp_nmse(const void *a, const void *b) {
    const mlxn_convert_tensor_report *x = *(const mlxn_convert_tensor_report *const *)a;
    const mlxn_convert_tensor_report *y = *(const mlxn_convert_tensor_report *const *)b;
    return (x->nmse < y->nmse) - (x->nmse > y->nmse);
}

static void print_summary(const mlxn_convert_report *r, const char *out, double secs, int verbose, int quiet) {
    char bi[32], bo[32];
    human((double)r->bytes_in, bi, sizeof bi);
    human((double)r->bytes_out, bo, sizeof bo);
    printf("wrote %s: %lld tensors (%lld lossless, %lld quantized, %lld float), %d shard%s, %s -> %s in %.1f s\n", out,
           (long long)r->n_tensors, (long long)r->n_lossless, (long long)r->n_quantized, (long long)r->n_float,
           r->n_shards, r->n_shards == 1 ? "" : "s", bi, bo, secs);
    if (quiet) {
        if (r->n_quantized) printf("worst quantization NMSE %.3e (%s)\n", r->worst_nmse, r->worst_name);
        return;
    }
    if (r->rope_unpermuted) printf("undid the llama Q/K RoPE row permutation in %d tensors\n", r->rope_unpermuted);
    if (r->n_quantized) {
        const mlxn_convert_tensor_report **v = malloc((size_t)r->n_quantized * sizeof *v);
        int64_t n = 0;
        double sum = 0;
        for (int64_t i = 0; i < r->n_tensors && v; i++)
            if (r->tensors[i].kind == MLXN_CONVERT_QUANTIZED) { v[n++] = &r->tensors[i]; sum += r->tensors[i].nmse; }
        if (v) {
            qsort(v, (size_t)n, sizeof *v, cmp_nmse);
            printf("measured error of quantized tensors (NMSE = sum((w-q)^2)/sum(w^2) vs. the source): mean %.3e, worst %.3e (%s)\n",
                   n ? sum / (double)n : 0.0, r->worst_nmse, r->worst_name);
            int64_t show = verbose ? n : (n < 8 ? n : 8);
            for (int64_t i = 0; i < show; i++)
                printf("  %-52s %-6s -> %d-bit g%-3d %s  nmse %.3e  max|err| %.3e\n", v[i]->name, v[i]->src_type,
                       v[i]->bits, v[i]->group_size, mlxn_dtype_name(v[i]->dtype), v[i]->nmse, v[i]->max_abs_err);
            if (show < n) printf("  ... %lld more (-v lists all)\n", (long long)(n - show));
            free(v);
        }
    }
    if (verbose)
        for (int64_t i = 0; i < r->n_tensors; i++) {
            const mlxn_convert_tensor_report *t = &r->tensors[i];
            printf("  %-52s %-6s %-9s", t->name, t->src_type, kind_name(t->kind));
            if (t->kind != MLXN_CONVERT_FLOAT) printf(" %d-bit g%d", t->bits, t->group_size);
            printf(" %s %llu -> %llu bytes\n", mlxn_dtype_name(t->dtype), (unsigned long long)t->bytes_in,
                   (unsigned long long)t->bytes_out);
        }
}

static void log_to_stderr(int level, const char *msg, void *user) {
    (void)user;
    fprintf(stderr, "%s%s\n", level == 0 ? "error: " : level == 1 ? "warning: " : "", msg);
}

static int parse_int(const char *s, int *out) {
    char *e;
    long v = strtol(s, &e, 10);
    if (e == s || *e) return 0;
    *out = (int)v;
    return 1;
}

int mlxn_cmd_convert(int argc, char **argv) {
    const char *in = NULL, *out = NULL;
    mlxn_convert_opts o;
    mlxn_convert_opts_init(&o);
    mlxn_convert_override ov[MAX_OVERRIDES];
    int n_ov = 0, quiet = 0, verbose = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define NEED_ARG()                                                        \
    do {                                                                  \
        if (!v) { fprintf(stderr, "mlxn convert: %s needs a value\n", a); return 2; } \
        i++;                                                              \
    } while (0)
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); return 0; }
        else if (!strcmp(a, "-i") || !strcmp(a, "--input")) { NEED_ARG(); in = v; }
        else if (!strcmp(a, "-o") || !strcmp(a, "--output")) { NEED_ARG(); out = v; }
        else if (!strcmp(a, "--bits")) {
            NEED_ARG();
            if (!parse_int(v, &o.bits)) { fprintf(stderr, "mlxn convert: bad --bits '%s'\n", v); return 2; }
        } else if (!strcmp(a, "--group-size")) {
            NEED_ARG();
            if (!parse_int(v, &o.group_size)) { fprintf(stderr, "mlxn convert: bad --group-size '%s'\n", v); return 2; }
        } else if (!strcmp(a, "--recipe")) { NEED_ARG(); o.recipe = v; }
        else if (!strcmp(a, "--override")) {
            NEED_ARG();
            if (n_ov == MAX_OVERRIDES) { fprintf(stderr, "mlxn convert: too many --override (max %d)\n", MAX_OVERRIDES); return 2; }
            char *eq = strrchr(v, '=');
            if (!eq || eq == v) { fprintf(stderr, "mlxn convert: --override wants MODULE=BITS[:GROUP], got '%s'\n", v); return 2; }
            *eq = 0;
            const char *spec = eq + 1;
            int bits = 0, group = 0;
            if (strcmp(spec, "float") && strcmp(spec, "none")) {
                char buf[32];
                snprintf(buf, sizeof buf, "%s", spec);
                char *colon = strchr(buf, ':');
                if (colon) {
                    *colon = 0;
                    if (!parse_int(colon + 1, &group)) { fprintf(stderr, "mlxn convert: bad group in --override '%s'\n", spec); return 2; }
                }
                if (!parse_int(buf, &bits)) { fprintf(stderr, "mlxn convert: bad bits in --override '%s'\n", spec); return 2; }
            }
            ov[n_ov++] = (mlxn_convert_override){v, bits, group};
        } else if (!strcmp(a, "--dtype")) {
            NEED_ARG();
            if (!strcmp(v, "bf16") || !strcmp(v, "bfloat16")) o.dtype = MLXN_BF16;
            else if (!strcmp(v, "f16") || !strcmp(v, "float16")) o.dtype = MLXN_F16;
            else if (!strcmp(v, "f32") || !strcmp(v, "float32")) o.dtype = MLXN_F32;
            else { fprintf(stderr, "mlxn convert: --dtype must be bf16, f16 or f32 (got '%s')\n", v); return 2; }
        } else if (!strcmp(a, "--shard-size")) {
            NEED_ARG();
            double gb = strtod(v, NULL);
            if (!(gb > 0)) { fprintf(stderr, "mlxn convert: bad --shard-size '%s'\n", v); return 2; }
            o.shard_bytes = (uint64_t)(gb * (double)(1ull << 30));
        } else if (!strcmp(a, "--no-quantize")) o.quantize = 0;
        else if (!strcmp(a, "--force")) o.force = 1;
        else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) quiet = 1;
        else if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) verbose = 1;
        else { fprintf(stderr, "mlxn convert: unknown option '%s' (try --help)\n", a); return 2; }
#undef NEED_ARG
    }
    if (!in || !out) {
        fprintf(stderr, "mlxn convert: -i IN and -o OUTDIR are required\n\n");
        usage(stderr);
        return 2;
    }
    o.overrides = ov;
    o.n_overrides = n_ov;
    prog_state ps = {isatty(2), quiet, 0, 0, -1};
    o.progress = on_progress;
    o.progress_user = &ps;
    mlxn_set_log(log_to_stderr, NULL, quiet ? 0 : 1);
    mlxn_convert_report rep;
    double t0 = now_s();
    mlxn_status st = mlxn_convert(in, out, &o, &rep);
    if (st != MLXN_OK) {
        if (ps.tty && !quiet) fputc('\n', stderr);
        fprintf(stderr, "mlxn convert: %s: %s\n", mlxn_status_name(st), mlxn_last_error());
        return 1;
    }
    print_summary(&rep, out, now_s() - t0, verbose, quiet);
    mlxn_convert_report_free(&rep);
    return 0;
}
