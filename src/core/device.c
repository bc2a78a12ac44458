/* device.c — opening a device by name ("cpu", "ref", "cuda", "cuda:N",
 * "auto"), closing it, and its descriptive accessors. Backends fill the
 * device's op table in their *_device_open functions. */
#include "core/internal.h"

#include <stdlib.h>
#include <string.h>


static mlxn_status open_kind(const char *name, const mlxn_device_opts *opts, mlxn_device *d) {
    if (strcmp(name, "cpu") == 0) return mlxn_cpu_device_open(opts, d);
    if (strcmp(name, "ref") == 0) return mlxn_ref_device_open(opts, d);
    if (strncmp(name, "cuda", 4) == 0 && (name[4] == 0 || name[4] == ':')) {
        int ordinal = 0;
        if (name[4] == ':') {
            char *end;
            long v = strtol(name + 5, &end, 10);
            if (end == name + 5 || *end || v < 0 || v > 1024)
                return mlxn_set_error(MLXN_ERR_INVALID_ARG, "device_open: bad device name '%s' (expected cuda:N)", name);
            ordinal = (int)v;
        }
        return mlxn_cuda_device_open(ordinal, opts, d);
    }
    return mlxn_set_error(MLXN_ERR_INVALID_ARG, "device_open: unknown device '%s' (expected cpu, cuda, cuda:N, auto or ref)",
                          name);
}

mlxn_status mlxn_device_open(const char *name, const mlxn_device_opts *opts, mlxn_device **out) {
    if (!out) return mlxn_set_error(MLXN_ERR_INVALID_ARG, "device_open: out is NULL");
    *out = NULL;
    if (!name) name = "auto";
    mlxn_device *d = calloc(1, sizeof *d);
    if (!d) return mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "device_open: out of host memory");
    atomic_init(&d->mem_in_use, 0);
    atomic_init(&d->mem_peak, 0);
    mlxn_status s;
    if (strcmp(name, "auto") == 0) {
        s = open_kind("cuda", opts, d);
        if (s != MLXN_OK) {
            mlxn_log(2, "device auto: CUDA not usable (%s); using the CPU", mlxn_last_error());
            memset(d, 0, sizeof *d);
            s = open_kind("cpu", opts, d);
        }
    } else {
        s = open_kind(name, opts, d);
    }
    if (s != MLXN_OK) { free(d); return s; }
    *out = d;
    return MLXN_OK;
}

void mlxn_device_close(mlxn_device *d) {
    if (!d) return;
    if (d->ops && d->ops->close) d->ops->close(d);
    free(d);
}

const char *mlxn_device_kind(const mlxn_device *d) { return d ? d->kind : ""; }
const char *mlxn_device_description(const mlxn_device *d) { return d ? d->description : ""; }
void mlxn_device_memory(const mlxn_device *d, size_t *in_use, size_t *peak) {
    if (in_use) *in_use = d ? atomic_load(&((mlxn_device *)d)->mem_in_use) : 0;
    if (peak) *peak = d ? atomic_load(&((mlxn_device *)d)->mem_peak) : 0;
}
