/* errors.c — thread-local error detail behind mlxn_last_error(), status
 * names, and the optional log callback through which the library reports
 * (it never prints on its own). */
#include "core/internal.h"

#include <stdio.h>
#include <string.h>

#define MLXN_ERR_CAP 1024
static _Thread_local char tls_error[MLXN_ERR_CAP];

static mlxn_log_fn g_log_fn;
static void *g_log_user;
static int g_log_level = -1;

const char *mlxn_last_error(void) { return tls_error; }
void mlxn_clear_error(void) { tls_error[0] = 0; }

mlxn_status mlxn_set_error(mlxn_status code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tls_error, sizeof tls_error, fmt, ap);
    va_end(ap);
    return code;
}

mlxn_status mlxn_error_prefix(mlxn_status code, const char *fmt, ...) {
    char prefix[512], old[MLXN_ERR_CAP];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, tls_error, sizeof old);
    snprintf(tls_error, sizeof tls_error, "%s: %s", prefix, old);
    return code;
}

const char *mlxn_status_name(mlxn_status s) {
    switch (s) {
    case MLXN_OK: return "MLXN_OK";
    case MLXN_ERR_INVALID_ARG: return "MLXN_ERR_INVALID_ARG";
    case MLXN_ERR_SHAPE: return "MLXN_ERR_SHAPE";
    case MLXN_ERR_DTYPE: return "MLXN_ERR_DTYPE";
    case MLXN_ERR_OUT_OF_MEMORY: return "MLXN_ERR_OUT_OF_MEMORY";
    case MLXN_ERR_IO: return "MLXN_ERR_IO";
    case MLXN_ERR_FORMAT: return "MLXN_ERR_FORMAT";
    case MLXN_ERR_UNSUPPORTED: return "MLXN_ERR_UNSUPPORTED";
    case MLXN_ERR_DEVICE: return "MLXN_ERR_DEVICE";
    case MLXN_ERR_NOT_FOUND: return "MLXN_ERR_NOT_FOUND";
    case MLXN_ERR_RANGE: return "MLXN_ERR_RANGE";
    case MLXN_ERR_STATE: return "MLXN_ERR_STATE";
    case MLXN_ERR_INTERNAL: return "MLXN_ERR_INTERNAL";
    }
    return "MLXN_ERR_UNKNOWN";
}

void mlxn_set_log(mlxn_log_fn fn, void *user, int max_level) {
    g_log_fn = fn;
    g_log_user = user;
    g_log_level = fn ? max_level : -1;
}

int mlxn_log_enabled(int level) { return g_log_fn != NULL && level <= g_log_level; }

void mlxn_log(int level, const char *fmt, ...) {
    if (!mlxn_log_enabled(level)) return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    g_log_fn(level, msg, g_log_user);
}

const char *mlxn_shape_str(char *buf, size_t cap, int ndim, const int64_t *shape) {
    size_t n = 0;
    n += (size_t)snprintf(buf + n, cap - n, "[");
    for (int i = 0; i < ndim && n < cap; i++)
        n += (size_t)snprintf(buf + n, cap - n, i ? ", %lld" : "%lld", (long long)shape[i]);
    if (n < cap) snprintf(buf + n, cap - n, "]");
    return buf;
}
