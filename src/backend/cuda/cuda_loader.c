/* cuda_loader.c — opens the CUDA driver (libcuda.so.1) and NVRTC (libnvrtc)
 * with dlopen at run time and resolves the entry points the backend uses, so
 * libmlxn has no link-time CUDA dependency and one build serves machines with
 * and without a GPU. NVRTC is searched on the loader path, then under
 * $MLXN_NVRTC_PATH (a file), $CUDA_HOME/lib64, /usr/local/cuda/lib64, and
 * the PyPI nvidia-cuda-nvrtc wheel layouts (nvidia/cu13/lib,
 * nvidia/cuda_nvrtc/lib) under the usual Python site directories. Each
 * library is loaded once per process; failures come back as
 * MLXN_ERR_UNSUPPORTED naming what was tried. */
#define _GNU_SOURCE
#include "backend/cuda/cuda_internal.h"

#include <dlfcn.h>
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static pthread_mutex_t g_load_mu = PTHREAD_MUTEX_INITIALIZER;
static mlxn_cuda_api g_cu;
static int g_cu_state; /* 0 untried, 1 ok, -1 failed */
static char g_cu_err[384];
static mlxn_nvrtc_api g_nvrtc;
static int g_nvrtc_state;
static char g_nvrtc_err[1024];

static void *sym_any(void *lib, const char *const *names) {
    for (int i = 0; names[i]; i++) {
        void *p = dlsym(lib, names[i]);
        if (p) return p;
    }
    return NULL;
}

#define LOAD_CU(field, ...)                                                               \
    do {                                                                                  \
        static const char *const nm_[] = {__VA_ARGS__, NULL};                             \
        void *p_ = sym_any(g_cu.lib, nm_);                                                \
        if (!p_) {                                                                        \
            snprintf(g_cu_err, sizeof g_cu_err,                                           \
                     "cuda: the driver library lacks %s (driver too old for mlxn)", nm_[0]); \
            return -1;                                                                    \
        }                                                                                 \
        memcpy(&g_cu.field, &p_, sizeof p_);                                              \
    } while (0)

static int load_cu_symbols(void) {
    LOAD_CU(cuInit, "cuInit");
    LOAD_CU(cuDriverGetVersion, "cuDriverGetVersion");
    LOAD_CU(cuDeviceGetCount, "cuDeviceGetCount");
    LOAD_CU(cuDeviceGet, "cuDeviceGet");
    LOAD_CU(cuDeviceGetName, "cuDeviceGetName");
    LOAD_CU(cuDeviceGetAttribute, "cuDeviceGetAttribute");
    LOAD_CU(cuDeviceTotalMem, "cuDeviceTotalMem_v2");
    LOAD_CU(cuDevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain");
    LOAD_CU(cuDevicePrimaryCtxRelease, "cuDevicePrimaryCtxRelease_v2", "cuDevicePrimaryCtxRelease");
    LOAD_CU(cuCtxSetCurrent, "cuCtxSetCurrent");
    LOAD_CU(cuCtxSynchronize, "cuCtxSynchronize");
    LOAD_CU(cuGetErrorName, "cuGetErrorName");
    LOAD_CU(cuGetErrorString, "cuGetErrorString");
    LOAD_CU(cuMemAlloc, "cuMemAlloc_v2");
    LOAD_CU(cuMemFree, "cuMemFree_v2");
    LOAD_CU(cuMemGetInfo, "cuMemGetInfo_v2");
    LOAD_CU(cuMemHostAlloc, "cuMemHostAlloc");
    LOAD_CU(cuMemFreeHost, "cuMemFreeHost");
    LOAD_CU(cuMemHostGetDevicePointer, "cuMemHostGetDevicePointer_v2");
    LOAD_CU(cuMemcpyHtoD, "cuMemcpyHtoD_v2");
    LOAD_CU(cuMemcpyDtoH, "cuMemcpyDtoH_v2");
    LOAD_CU(cuMemcpyHtoDAsync, "cuMemcpyHtoDAsync_v2");
    LOAD_CU(cuMemcpyDtoHAsync, "cuMemcpyDtoHAsync_v2");
    LOAD_CU(cuMemcpyDtoDAsync, "cuMemcpyDtoDAsync_v2");
    LOAD_CU(cuMemsetD8, "cuMemsetD8_v2");
    LOAD_CU(cuMemsetD8Async, "cuMemsetD8Async");
    LOAD_CU(cuMemsetD32Async, "cuMemsetD32Async");
    LOAD_CU(cuStreamCreate, "cuStreamCreate");
    LOAD_CU(cuStreamDestroy, "cuStreamDestroy_v2");
    LOAD_CU(cuStreamSynchronize, "cuStreamSynchronize");
    LOAD_CU(cuEventCreate, "cuEventCreate");
    LOAD_CU(cuEventDestroy, "cuEventDestroy_v2");
    LOAD_CU(cuEventRecord, "cuEventRecord");
    LOAD_CU(cuEventSynchronize, "cuEventSynchronize");
    LOAD_CU(cuEventElapsedTime, "cuEventElapsedTime_v2", "cuEventElapsedTime");
    LOAD_CU(cuModuleLoadData, "cuModuleLoadData");
    LOAD_CU(cuModuleUnload, "cuModuleUnload");
    LOAD_CU(cuModuleGetFunction, "cuModuleGetFunction");
    LOAD_CU(cuFuncSetAttribute, "cuFuncSetAttribute");
    LOAD_CU(cuLaunchKernel, "cuLaunchKernel");
    {
        static const char *const nm_ex[] = {"cuLaunchKernelEx", NULL};
        void *p_ = sym_any(g_cu.lib, nm_ex); /* optional: CUDA 11.8+ drivers */
        memcpy(&g_cu.cuLaunchKernelEx, &p_, sizeof p_);
    }
    LOAD_CU(cuStreamBeginCapture, "cuStreamBeginCapture_v2");
    LOAD_CU(cuStreamEndCapture, "cuStreamEndCapture");
    LOAD_CU(cuGraphInstantiateWithFlags, "cuGraphInstantiateWithFlags");
    LOAD_CU(cuGraphLaunch, "cuGraphLaunch");
    LOAD_CU(cuGraphExecDestroy, "cuGraphExecDestroy");
    LOAD_CU(cuGraphDestroy, "cuGraphDestroy");
    return 0;
}

mlxn_status mlxn_cuda_load_driver(const mlxn_cuda_api **out) {
    pthread_mutex_lock(&g_load_mu);
    if (g_cu_state == 0) {
        g_cu_state = -1;
        g_cu.lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
        char first[256] = "not found";
        if (!g_cu.lib) {
            const char *e = dlerror();
            if (e) snprintf(first, sizeof first, "%s", e);
            g_cu.lib = dlopen("libcuda.so", RTLD_NOW | RTLD_LOCAL);
        }
        if (!g_cu.lib) {
            snprintf(g_cu_err, sizeof g_cu_err, "cuda: no NVIDIA driver (dlopen: %s)", first);
        } else if (load_cu_symbols() == 0) {
            int ver = 0;
            CUresult r = g_cu.cuInit(0);
            if (r == CUDA_ERROR_NO_DEVICE) {
                snprintf(g_cu_err, sizeof g_cu_err, "cuda: the driver reports no CUDA device (cuInit: error %d)", r);
            } else if (r == CUDA_ERROR_INSUFFICIENT_DRIVER) {
                snprintf(g_cu_err, sizeof g_cu_err, "cuda: the driver is too old for this GPU (cuInit: error %d)", r);
            } else if (r != CUDA_SUCCESS) {
                snprintf(g_cu_err, sizeof g_cu_err, "cuda: cuInit failed with error %d (no usable GPU)", r);
            } else if (g_cu.cuDriverGetVersion(&ver) != CUDA_SUCCESS || ver < 12000) {
                snprintf(g_cu_err, sizeof g_cu_err,
                         "cuda: driver too old (CUDA driver API %d.%d; mlxn needs 12.0 or newer)", ver / 1000,
                         (ver % 1000) / 10);
            } else {
                g_cu_state = 1;
            }
        }
    }
    int st = g_cu_state;
    pthread_mutex_unlock(&g_load_mu);
    if (st != 1) return mlxn_set_error(MLXN_ERR_UNSUPPORTED, "%s", g_cu_err);
    *out = &g_cu;
    return MLXN_OK;
}

mlxn_status mlxn_cuda_error(const mlxn_cuda_api *cu, CUresult r, const char *what) {
    const char *name = NULL, *str = NULL;
    if (cu && cu->cuGetErrorName) cu->cuGetErrorName(r, &name);
    if (cu && cu->cuGetErrorString) cu->cuGetErrorString(r, &str);
    mlxn_status code = (r == 2 /* CUDA_ERROR_OUT_OF_MEMORY */) ? MLXN_ERR_OUT_OF_MEMORY : MLXN_ERR_DEVICE;
    return mlxn_set_error(code, "cuda: %s failed: %s (%s)", what, name ? name : "CUDA_ERROR_?", str ? str : "?");
}

/* ---------------------------------------------------------------- NVRTC */

#define LOAD_NV(field, name)                                      \
    do {                                                          \
        void *p_ = dlsym(lib, name);                              \
        if (!p_) return 0;                                        \
        memcpy(&api->field, &p_, sizeof p_);                      \
    } while (0)

static int nvrtc_bind(void *lib, mlxn_nvrtc_api *api) {
    LOAD_NV(nvrtcGetErrorString, "nvrtcGetErrorString");
    LOAD_NV(nvrtcVersion, "nvrtcVersion");
    LOAD_NV(nvrtcCreateProgram, "nvrtcCreateProgram");
    LOAD_NV(nvrtcDestroyProgram, "nvrtcDestroyProgram");
    LOAD_NV(nvrtcCompileProgram, "nvrtcCompileProgram");
    LOAD_NV(nvrtcGetProgramLogSize, "nvrtcGetProgramLogSize");
    LOAD_NV(nvrtcGetProgramLog, "nvrtcGetProgramLog");
    LOAD_NV(nvrtcGetCUBINSize, "nvrtcGetCUBINSize");
    LOAD_NV(nvrtcGetCUBIN, "nvrtcGetCUBIN");
    api->lib = lib;
    return 1;
}

static int try_nvrtc(const char *path) {
    void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!lib) return 0;
    if (!nvrtc_bind(lib, &g_nvrtc)) {
        dlclose(lib);
        return 0;
    }
    snprintf(g_nvrtc.path, sizeof g_nvrtc.path, "%s", path);
    if (g_nvrtc.nvrtcVersion(&g_nvrtc.major, &g_nvrtc.minor) != 0) g_nvrtc.major = g_nvrtc.minor = 0;
    return 1;
}

static const char *const k_nvrtc_names[] = {"libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so", NULL};

static int try_dir(const char *dir) {
    char path[600];
    for (int i = 0; k_nvrtc_names[i]; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, k_nvrtc_names[i]);
        if (try_nvrtc(path)) return 1;
    }
    return 0;
}

static int try_glob(const char *pattern) {
    glob_t g;
    int ok = 0;
    if (glob(pattern, 0, NULL, &g) == 0) {
        for (size_t i = 0; i < g.gl_pathc && !ok; i++) ok = try_nvrtc(g.gl_pathv[i]);
        globfree(&g);
    }
    return ok;
}

static int find_nvrtc(void) {
    const char *e = getenv("MLXN_NVRTC_PATH");
    if (e && *e && try_nvrtc(e)) return 1;
    for (int i = 0; k_nvrtc_names[i]; i++)
        if (try_nvrtc(k_nvrtc_names[i])) return 1;
    char dir[600];
    const char *ch = getenv("CUDA_HOME");
    if (!ch || !*ch) ch = getenv("CUDA_PATH");
    if (ch && *ch) {
        snprintf(dir, sizeof dir, "%s/lib64", ch);
        if (try_dir(dir)) return 1;
        snprintf(dir, sizeof dir, "%s/lib", ch);
        if (try_dir(dir)) return 1;
    }
    if (try_dir("/usr/local/cuda/lib64")) return 1;
    /* PyPI wheels: nvidia-cuda-nvrtc (cu13: nvidia/cu13/lib; cu12: nvidia/cuda_nvrtc/lib) */
    const char *venv = getenv("VIRTUAL_ENV");
    const char *home = getenv("HOME");
    const char *roots[6] = {venv, "/usr/local/lib", "/usr/lib", NULL, NULL, NULL};
    char homebuf[512];
    if (home) {
        snprintf(homebuf, sizeof homebuf, "%s/.local/lib", home);
        roots[3] = homebuf;
    }
    for (int r = 0; r < 4; r++) {
        if (!roots[r]) continue;
        const char *const subs[] = {"python3*/site-packages/nvidia/cu13/lib/libnvrtc.so*",
                                    "python3*/dist-packages/nvidia/cu13/lib/libnvrtc.so*",
                                    "python3*/site-packages/nvidia/cuda_nvrtc/lib/libnvrtc.so*",
                                    "python3*/dist-packages/nvidia/cuda_nvrtc/lib/libnvrtc.so*", NULL};
        for (int k = 0; subs[k]; k++) {
            char pat[700];
            snprintf(pat, sizeof pat, "%s/%s%s", roots[r], r == 0 ? "lib/" : "", subs[k]);
            if (try_glob(pat)) return 1;
        }
    }
    return 0;
}

mlxn_status mlxn_cuda_load_nvrtc(const mlxn_nvrtc_api **out) {
    pthread_mutex_lock(&g_load_mu);
    if (g_nvrtc_state == 0) {
        g_nvrtc_state = find_nvrtc() ? 1 : -1;
        if (g_nvrtc_state < 0)
            snprintf(g_nvrtc_err, sizeof g_nvrtc_err,
                     "cuda: libnvrtc not found (tried $MLXN_NVRTC_PATH, the loader path, $CUDA_HOME/lib64, "
                     "/usr/local/cuda/lib64 and the nvidia-cuda-nvrtc Python wheel layout); install the CUDA "
                     "toolkit's NVRTC or `pip install nvidia-cuda-nvrtc`");
    }
    int st = g_nvrtc_state;
    pthread_mutex_unlock(&g_load_mu);
    if (st != 1) return mlxn_set_error(MLXN_ERR_UNSUPPORTED, "%s", g_nvrtc_err);
    *out = &g_nvrtc;
    return MLXN_OK;
}
