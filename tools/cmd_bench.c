/* cmd_bench.c — `mlxn bench`: throughput in the style of llama-bench.
 * ppN: evaluate N prompt tokens in one batch from an empty cache (batch =
 * N); tgN: generate N tokens one decode step at a time (the recorded graph
 * on CUDA) from an empty cache, feeding back the argmax. Token ids are
 * pseudo-random but fixed (never all the same token). With -d D (as
 * llama-bench's --n-depth), each test first fills the cache with D prompt
 * tokens (untimed) and is labelled "tgN @ dD". One untimed warm-up run of
 * each test precedes -r timed repetitions; the table reports mean ±
 * standard deviation of tokens/s, like llama-bench. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli_model.h"
#include "model/generate.h"

#define MAX_TESTS 16

static void bench_help(FILE *f) {
    fprintf(f,
            "usage: mlxn bench [-m MODEL] [options]\n"
            "\n"
            "Measure prompt processing (ppN: N tokens in one batch) and text generation (tgN: N decode\n"
            "steps) throughput, printed as a markdown table like llama-bench (mean ± std over repetitions).\n"
            "\n"
            "  -m, --model PATH        .gguf file or MLX directory (default: SmolLM2-135M-Instruct)\n"
            "  --device cpu|cuda|auto  (default auto)\n"
            "  -t, --threads N         CPU threads (default: all cores)\n"
            "  -p, --n-prompt N[,N..]  prompt sizes (default 512; 0 = skip)\n"
            "  -n, --n-gen N[,N..]     generation lengths (default 128; 0 = skip)\n"
            "  -d, --n-depth N[,N..]   tokens already in the cache when each test starts (default 0)\n"
            "  -r, --repetitions N     timed repetitions per test (default 5)\n"
            "  -c, --ctx-size N        KV cache slots (default: what the largest test needs; a larger\n"
            "                          cache measures decode as in a chat session's cache)\n"
            "  --kv-f32                f32 KV cache on CUDA (default f16)\n"
            "  --no-graph              decode without the recorded graph\n"
            "  -v, --verbose           print every repetition\n"
            "  -h, --help              this help\n");
}

static int parse_list(const char *flag, const char *s, int *out, int *n) {
    *n = 0;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", s);
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        if (*n >= MAX_TESTS) {
            fprintf(stderr, "error: %s: at most %d values\n", flag, MAX_TESTS);
            return 0;
        }
        if (!cli_parse_int(flag, tok, 0, 1 << 20, &out[*n])) return 0;
        (*n)++;
    }
    return 1;
}

static void mean_std(const double *x, int n, double *mean, double *sd) {
    double s = 0, ss = 0;
    for (int i = 0; i < n; i++) s += x[i];
    *mean = s / n;
    for (int i = 0; i < n; i++) ss += (x[i] - *mean) * (x[i] - *mean);
    *sd = n > 1 ? sqrt(ss / (n - 1)) : 0.0;
}

static int argmax(const float *x, int64_t n) {
    int64_t b = 0;
    for (int64_t i = 1; i < n; i++)
        if (x[i] > x[b]) b = i;
    return (int)b;
}

/* One run from an empty cache: D untimed tokens of depth, then ppN (N
 * tokens in one batch) or tgN (one untimed token, then N decode steps).
 * *dt: seconds of the timed part. */
static mlxn_status time_run(mlxn_runner *r, const int32_t *ids, int64_t vocab, int D, int pp, int N, double *dt) {
    mlxn_runner_reset(r);
    const float *lg = NULL;
    mlxn_status st = D > 0 ? mlxn_runner_eval(r, ids, D, &lg) : MLXN_OK;
    double t0 = 0;
    if (st == MLXN_OK && pp) {
        t0 = mlxn_time_now();
        st = mlxn_runner_eval(r, ids + D, N, &lg);
    } else if (st == MLXN_OK) {
        st = mlxn_runner_eval(r, ids + D, 1, &lg);
        int32_t next = st == MLXN_OK ? argmax(lg, vocab) : 0;
        t0 = mlxn_time_now();
        for (int k = 0; k < N && st == MLXN_OK; k++) st = mlxn_runner_step_argmax(r, next, &next);
        if (st == MLXN_OK) st = mlxn_runner_sync(r); /* the speculative step past the last one counts */
    }
    *dt = mlxn_time_now() - t0;
    return st;
}

int mlxn_cmd_bench(int argc, char **argv) {
    const char *model = NULL, *device = "auto";
    int threads = 0, reps = 5, verbose = 0, kv_f32 = 0, use_graph = -1, ctx = 0;
    int pp[MAX_TESTS] = { 512 }, tg[MAX_TESTS] = { 128 }, depth[MAX_TESTS] = { 0 }, n_pp = 1, n_tg = 1, n_depth = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
#define IS(s) (strcmp(a, s) == 0)
#define NEEDV() do { if (!v) { fprintf(stderr, "error: %s needs a value\n", a); return 2; } i++; } while (0)
        if (IS("-h") || IS("--help")) { bench_help(stdout); return 0; }
        else if (IS("-m") || IS("--model")) { NEEDV(); model = v; }
        else if (IS("--device")) { NEEDV(); device = v; }
        else if (IS("-t") || IS("--threads")) { NEEDV(); if (!cli_parse_int(a, v, 0, 4096, &threads)) return 2; }
        else if (IS("-r") || IS("--repetitions")) { NEEDV(); if (!cli_parse_int(a, v, 1, 1000, &reps)) return 2; }
        else if (IS("-p") || IS("--n-prompt")) { NEEDV(); if (!parse_list(a, v, pp, &n_pp)) return 2; }
        else if (IS("-n") || IS("--n-gen")) { NEEDV(); if (!parse_list(a, v, tg, &n_tg)) return 2; }
        else if (IS("-d") || IS("--n-depth")) { NEEDV(); if (!parse_list(a, v, depth, &n_depth)) return 2; }
        else if (IS("-c") || IS("--ctx-size")) { NEEDV(); if (!cli_parse_int(a, v, 1, 1 << 24, &ctx)) return 2; }
        else if (IS("--kv-f32")) kv_f32 = 1;
        else if (IS("--no-graph")) use_graph = 0;
        else if (IS("-v") || IS("--verbose")) verbose = 1;
        else { fprintf(stderr, "error: unknown option '%s' (see mlxn bench --help)\n", a); return 2; }
#undef IS
#undef NEEDV
    }
    int max_pp = 0, max_tg = 0, max_d = 0;
    for (int i = 0; i < n_pp; i++) max_pp = pp[i] > max_pp ? pp[i] : max_pp;
    for (int i = 0; i < n_tg; i++) max_tg = tg[i] > max_tg ? tg[i] : max_tg;
    for (int i = 0; i < n_depth; i++) max_d = depth[i] > max_d ? depth[i] : max_d;
    if (max_pp == 0 && max_tg == 0) {
        fprintf(stderr, "error: nothing to run (-p and -n are all 0)\n");
        return 2;
    }
    cli_loaded L;
    if (cli_load(model, device, threads, 0, verbose, &L)) return 1;
    const mlxn_model_config *c = &L.model->cfg;
    mlxn_runner_opts ro = mlxn_runner_default_opts();
    ro.n_ctx = max_d + (max_pp > max_tg + 1 ? max_pp : max_tg + 1);
    if (ctx > ro.n_ctx) ro.n_ctx = ctx;
    ro.n_batch = max_pp > 0 ? max_pp : max_d > 0 ? (max_d < 512 ? max_d : 512) : 1;
    ro.use_graph = use_graph;
    if (kv_f32) ro.kv_dtype = MLXN_F32;
    mlxn_runner *r = NULL;
    if (mlxn_runner_create(L.model, &ro, &r) != MLXN_OK) {
        fprintf(stderr, "error: %s\n", mlxn_last_error());
        cli_unload(&L);
        return 1;
    }
    int nmax = max_d + (max_pp > 1 ? max_pp : 1);
    int32_t *ids = malloc((size_t)nmax * sizeof(int32_t));
    double *tps = malloc((size_t)reps * sizeof(double));
    if (!ids || !tps) {
        fprintf(stderr, "error: out of memory\n");
        free(ids);
        free(tps);
        mlxn_runner_free(r);
        cli_unload(&L);
        return 1;
    }
    uint64_t x = 0x2545f4914f6cdd1dull;
    for (int i = 0; i < nmax; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        ids[i] = (int32_t)(x % (uint64_t)c->vocab);
    }
    char desc[512], sz[32];
    mlxn_model_describe(L.model, desc, sizeof desc);
    fprintf(stderr, "mlxn bench: %s\nmlxn bench: %s on %s\n", L.path, desc, mlxn_device_description(L.dev));
    const char *base = strrchr(L.path, '/');
    base = base && base[1] ? base + 1 : L.path;
    printf("| model | size | params | backend | threads | test | t/s |\n");
    printf("| ----- | ---: | -----: | ------- | ------: | ---: | --: |\n");
    int rc = 0;
    for (int di = 0; di < n_depth && rc == 0; di++) {
        const int D = depth[di];
        for (int t = 0; t < n_pp + n_tg && rc == 0; t++) {
            const int is_pp = t < n_pp, N = is_pp ? pp[t] : tg[t - n_pp];
            if (N <= 0) continue;
            char test[48];
            if (D > 0) snprintf(test, sizeof test, "%s%d @ d%d", is_pp ? "pp" : "tg", N, D);
            else snprintf(test, sizeof test, "%s%d", is_pp ? "pp" : "tg", N);
            for (int rep = -1; rep < reps; rep++) { /* rep -1: warm-up */
                double dt = 0;
                if (time_run(r, ids, c->vocab, D, is_pp, N, &dt) != MLXN_OK) {
                    fprintf(stderr, "error: %s failed: %s\n", test, mlxn_last_error());
                    rc = 1;
                    break;
                }
                if (rep >= 0) tps[rep] = N / dt;
                if (verbose)
                    fprintf(stderr, "  %s rep %d%s: %.3f s, %.2f tok/s\n", test, rep, rep < 0 ? " (warm-up)" : "", dt,
                            N / dt);
            }
            if (rc) break;
            double mean, sd;
            mean_std(tps, reps, &mean, &sd);
            char thr[16];
            if (threads > 0) snprintf(thr, sizeof thr, "%d", threads);
            else snprintf(thr, sizeof thr, "auto");
            printf("| %s %s | %s | %.2f M | %s%s | %s | %s | %.2f ± %.2f |\n", c->arch->name, base,
                   cli_fmt_bytes((double)L.model->weight_bytes, sz, sizeof sz), (double)L.model->n_params / 1e6,
                   mlxn_device_kind(L.dev), mlxn_runner_uses_graph(r) ? "+graph" : "", thr, test, mean, sd);
            fflush(stdout);
        }
    }
    size_t in_use = 0, peak = 0;
    mlxn_device_memory(L.dev, &in_use, &peak);
    char b1[32], b2[32];
    fprintf(stderr, "mlxn bench: load %.2f s, peak memory: device %s, process RSS %s\n", L.load_s,
            cli_fmt_bytes((double)peak, b1, sizeof b1), cli_fmt_bytes((double)cli_peak_rss(), b2, sizeof b2));
    free(ids);
    free(tps);
    mlxn_runner_free(r);
    cli_unload(&L);
    return rc;
}
