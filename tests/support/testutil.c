/* testutil.c — implementation of the test helpers declared in testutil.h. */
#include "testutil.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

int t_passed, t_failed;
const char *t_current = "";
static int t_case_failed;

void t_fail(const char *file, int line, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "  FAIL [%s] %s:%d: ", t_current, file, line);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    t_case_failed = 1;
}

int t_selected(const char *name) {
    const char *f = getenv("MLXN_TEST_FILTER");
    if (!f || !*f) return 1;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", f);
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ","))
        if (strstr(name, tok)) return 1;
    return 0;
}

void t_run(const char *name, void (*fn)(void)) {
    if (!t_selected(name)) return;
    t_current = name;
    t_case_failed = 0;
    fn();
    if (t_case_failed) { t_failed++; printf("FAIL %s\n", name); }
    else { t_passed++; printf("ok   %s\n", name); }
    fflush(stdout);
}

int t_finish(void) {
    printf("%d passed, %d failed\n", t_passed, t_failed);
    return t_failed ? 1 : 0;
}

int t_contains(const char *hay, const char *needle) { return hay && needle && strstr(hay, needle) != NULL; }

void t_rng_seed(t_rng *r, uint64_t seed) { r->s = seed * 0x9E3779B97F4A7C15ull + 0x632BE59BD9B4E019ull; }
uint64_t t_rng_u64(t_rng *r) {
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
float t_rng_uniform(t_rng *r, float lo, float hi) {
    double u = (double)(t_rng_u64(r) >> 11) * (1.0 / 9007199254740992.0);
    return (float)(lo + (hi - lo) * u);
}
float t_rng_normal(t_rng *r) {
    double u1 = ((double)(t_rng_u64(r) >> 11) + 1.0) * (1.0 / 9007199254740993.0);
    double u2 = (double)(t_rng_u64(r) >> 11) * (1.0 / 9007199254740992.0);
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}
void t_fill(t_rng *r, float *x, size_t n, float lo, float hi) {
    for (size_t i = 0; i < n; i++) {
        float v;
        do { v = t_rng_uniform(r, lo, hi); } while (v == 0.0f);
        x[i] = v;
    }
}

double t_nmse(const float *a, const float *ref, size_t n, size_t *worst, double *worst_diff) {
    double num = 0, den = 0, wd = -1;
    size_t wi = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - (double)ref[i];
        if (isnan(a[i]) != isnan(ref[i])) d = INFINITY;
        else if (isnan(a[i])) d = 0;
        num += d * d;
        den += (double)ref[i] * (double)ref[i];
        if (fabs(d) > wd || isnan(d)) { wd = fabs(d); wi = i; }
    }
    if (worst) *worst = wi;
    if (worst_diff) *worst_diff = wd;
    if (den < 1e-30) den = 1e-30;
    return num / den;
}

int t_check_nmse(const char *what, const float *got, const float *ref, size_t n, double tol) {
    size_t wi;
    double wd;
    double e = t_nmse(got, ref, n, &wi, &wd);
    if (!(e <= tol)) {
        t_fail(__FILE__, __LINE__, "%s: NMSE %.3g > %.3g over %zu elements; worst [%zu] got %.9g ref %.9g (|diff| %.3g)",
               what, e, tol, n, wi, n ? got[wi] : 0.0, n ? ref[wi] : 0.0, wd);
        return 0;
    }
    return 1;
}

int t_check_bytes(const char *what, const void *got, const void *ref, size_t n) {
    const unsigned char *a = got, *b = ref;
    for (size_t i = 0; i < n; i++) {
        if (a[i] != b[i]) {
            t_fail(__FILE__, __LINE__, "%s: byte %zu of %zu differs: got 0x%02x ref 0x%02x", what, i, n, a[i], b[i]);
            return 0;
        }
    }
    return 1;
}

const char *t_data_path(const char *rel) {
    static char buf[4096];
    const char *d = getenv("MLXN_TEST_DATA");
    snprintf(buf, sizeof buf, "%s/%s", d ? d : "tests/data", rel);
    return buf;
}

void *t_read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    void *p = malloc(n > 0 ? (size_t)n + 1 : 1);
    if (p && n > 0 && fread(p, 1, (size_t)n, f) != (size_t)n) { free(p); p = NULL; }
    if (p) ((char *)p)[n > 0 ? n : 0] = 0;
    fclose(f);
    if (len) *len = n > 0 ? (size_t)n : 0;
    return p;
}
