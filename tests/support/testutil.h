/* testutil.h — a minimal test framework for mlxn's C tests: CHECK macros
 * that record failures without stopping, a seeded RNG for non-zero random
 * data, NMSE comparison that names the worst element, and a closing line
 * "N passed, N failed" (the format CI's log reader understands). Each test
 * executable calls T_RUN for its cases and returns t_finish(). */
#ifndef MLXN_TESTUTIL_H
#define MLXN_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "mlxn.h"

extern int t_passed, t_failed;
extern const char *t_current;

void t_fail(const char *file, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Run one case: prints "ok"/"FAIL" with the case name. */
void t_run(const char *name, void (*fn)(void));
/* MLXN_TEST_FILTER=a,b: run only the cases whose names contain a or b (T_RUN skips the others). */
int t_selected(const char *name);
#define T_RUN(fn) t_run(#fn, fn)
int t_finish(void); /* prints "N passed, N failed"; returns 0 if none failed */

#define CHECK(c) do { if (!(c)) t_fail(__FILE__, __LINE__, "CHECK(%s)", #c); } while (0)
#define CHECK_MSG(c, ...) do { if (!(c)) t_fail(__FILE__, __LINE__, __VA_ARGS__); } while (0)
/* Expect MLXN_OK; on failure report mlxn_last_error(). */
#define CHECK_OK(expr) do { mlxn_status _s = (expr); if (_s != MLXN_OK) \
    t_fail(__FILE__, __LINE__, "%s -> %s: %s", #expr, mlxn_status_name(_s), mlxn_last_error()); } while (0)
/* Expect a given error code and that mlxn_last_error() contains `substr`. */
#define CHECK_ERR(expr, code, substr) do { mlxn_status _s = (expr); \
    if (_s != (code)) t_fail(__FILE__, __LINE__, "%s -> %s, expected %s (msg: %s)", #expr, mlxn_status_name(_s), mlxn_status_name(code), mlxn_last_error()); \
    else if (!t_contains(mlxn_last_error(), (substr))) t_fail(__FILE__, __LINE__, "%s: message '%s' lacks '%s'", #expr, mlxn_last_error(), (substr)); } while (0)

int t_contains(const char *hay, const char *needle);

/* Deterministic RNG (splitmix64/xorshift). */
typedef struct { uint64_t s; } t_rng;
void t_rng_seed(t_rng *r, uint64_t seed);
uint64_t t_rng_u64(t_rng *r);
float t_rng_uniform(t_rng *r, float lo, float hi); /* never exactly 0 for lo<0<hi ranges is not guaranteed; see t_fill */
float t_rng_normal(t_rng *r);
/* Fill n floats uniformly in [lo, hi], replacing exact zeros. */
void t_fill(t_rng *r, float *x, size_t n, float lo, float hi);

/* NMSE = sum((a-b)^2) / max(sum(b^2), tiny). Fills worst index and |diff|. */
double t_nmse(const float *a, const float *ref, size_t n, size_t *worst, double *worst_diff);
/* Check NMSE <= tol; on failure report `what`, n, the NMSE and the worst element. */
int t_check_nmse(const char *what, const float *got, const float *ref, size_t n, double tol);
/* Byte identity; on failure report first differing byte index. */
int t_check_bytes(const char *what, const void *got, const void *ref, size_t n);

/* Path under tests/data ($MLXN_TEST_DATA); returns a static buffer. */
const char *t_data_path(const char *rel);
/* Read a whole file (malloc'd); returns NULL if missing. */
void *t_read_file(const char *path, size_t *len);

#endif
