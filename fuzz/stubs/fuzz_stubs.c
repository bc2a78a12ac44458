/* fuzz_stubs.c — the backend entry points for the fuzz build, which leaves
 * src/backend/ out (the parsers never touch a device): opening any device
 * reports MLXN_ERR_UNSUPPORTED. */
#include "core/internal.h"

mlxn_status mlxn_cpu_device_open(const mlxn_device_opts *opts, mlxn_device *d) {
    (void)opts; (void)d;
    return mlxn_set_error(MLXN_ERR_UNSUPPORTED, "fuzz build: no CPU backend");
}
mlxn_status mlxn_ref_device_open(const mlxn_device_opts *opts, mlxn_device *d) {
    (void)opts; (void)d;
    return mlxn_set_error(MLXN_ERR_UNSUPPORTED, "fuzz build: no reference backend");
}
mlxn_status mlxn_cuda_device_open(int ordinal, const mlxn_device_opts *opts, mlxn_device *d) {
    (void)ordinal; (void)opts; (void)d;
    return mlxn_set_error(MLXN_ERR_UNSUPPORTED, "fuzz build: no CUDA backend");
}
