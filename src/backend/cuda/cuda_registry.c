/* cuda_registry.c — the CUDA kernel registry. Kernel sources (.cu files under
 * src/backend/cuda/kernels) are embedded in the library at build time; the
 * first use of a kernel compiles its whole source file with NVRTC for the
 * device's architecture (every embedded file is offered to NVRTC as an
 * includable header, so kernels `#include "common.cu"`), loads the cubin with
 * cuModuleLoadData and caches the module in memory. Cubins are also cached on
 * disk under <cache_dir>/cuda/<key>.cubin, the key a 128-bit hash of the
 * source texts, architecture, compile options and NVRTC version; the cache
 * dir is opts->cache_dir, else $MLXN_CACHE_DIR ("off" disables it), else
 * $XDG_CACHE_HOME/mlxn, else ~/.cache/mlxn. A compile failure returns
 * MLXN_ERR_INTERNAL carrying the NVRTC log. mlxn_cuda_compile_source is the
 * compile-only entry point (no GPU needed) that the CI test uses. */
#define _GNU_SOURCE
#include "backend/cuda/cuda_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const k_opts_common[] = {"-std=c++17", "-lineinfo", "--fmad=true"};
#define N_OPTS_COMMON 3

const char *mlxn_cuda_source_name(int i) {
    for (int k = 0; mlxn_cuda_sources[k].name; k++)
        if (k == i) return mlxn_cuda_sources[k].name;
    return NULL;
}

static const mlxn_embedded_source *find_source(const char *name) {
    for (int k = 0; mlxn_cuda_sources[k].name; k++)
        if (strcmp(mlxn_cuda_sources[k].name, name) == 0) return &mlxn_cuda_sources[k];
    return NULL;
}

mlxn_status mlxn_cuda_compile_source(const char *source_name, const char *arch, void **cubin, size_t *cubin_size) {
    *cubin = NULL;
    *cubin_size = 0;
    const mlxn_nvrtc_api *nv;
    MLXN_TRY(mlxn_cuda_load_nvrtc(&nv));
    const mlxn_embedded_source *src = find_source(source_name);
    if (!src) return mlxn_set_error(MLXN_ERR_NOT_FOUND, "cuda: no embedded kernel source named '%s'", source_name);
    int nh = 0;
    while (mlxn_cuda_sources[nh].name) nh++;
    const char **hdr_src = malloc(sizeof(char *) * (size_t)(nh + 1));
    const char **hdr_names = malloc(sizeof(char *) * (size_t)(nh + 1));
    if (!hdr_src || !hdr_names) {
        free(hdr_src);
        free(hdr_names);
        return mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "cuda: out of memory compiling %s", source_name);
    }
    for (int k = 0; k < nh; k++) {
        hdr_src[k] = mlxn_cuda_sources[k].source;
        hdr_names[k] = mlxn_cuda_sources[k].name;
    }
    nvrtcProgram prog = NULL;
    nvrtcResult r = nv->nvrtcCreateProgram(&prog, src->source, src->name, nh, hdr_src, hdr_names);
    free(hdr_src);
    free(hdr_names);
    if (r != 0)
        return mlxn_set_error(MLXN_ERR_INTERNAL, "cuda: nvrtcCreateProgram(%s) failed: %s", source_name,
                              nv->nvrtcGetErrorString(r));
    char archopt[48];
    snprintf(archopt, sizeof archopt, "--gpu-architecture=%s", arch);
    const char *opts[N_OPTS_COMMON + 1];
    opts[0] = archopt;
    for (int k = 0; k < N_OPTS_COMMON; k++) opts[k + 1] = k_opts_common[k];
    r = nv->nvrtcCompileProgram(prog, N_OPTS_COMMON + 1, opts);
    if (r != 0) {
        size_t ls = 0;
        nv->nvrtcGetProgramLogSize(prog, &ls);
        char *log = malloc(ls + 1);
        if (log) {
            log[0] = 0;
            nv->nvrtcGetProgramLog(prog, log);
            log[ls] = 0;
        }
        mlxn_status st = mlxn_set_error(MLXN_ERR_INTERNAL, "cuda: NVRTC %d.%d failed to compile %s for %s: %s\n%s",
                                        nv->major, nv->minor, source_name, arch, nv->nvrtcGetErrorString(r),
                                        log ? log : "(no log)");
        free(log);
        nv->nvrtcDestroyProgram(&prog);
        return st;
    }
    size_t n = 0;
    r = nv->nvrtcGetCUBINSize(prog, &n);
    void *bin = (r == 0 && n) ? malloc(n) : NULL;
    if (!bin || nv->nvrtcGetCUBIN(prog, bin) != 0) {
        free(bin);
        nv->nvrtcDestroyProgram(&prog);
        return mlxn_set_error(MLXN_ERR_INTERNAL, "cuda: NVRTC produced no cubin for %s (%s)", source_name, arch);
    }
    nv->nvrtcDestroyProgram(&prog);
    *cubin = bin;
    *cubin_size = n;
    return MLXN_OK;
}

/* ---------------------------------------------------------------- disk cache */

static uint64_t fnv1a(uint64_t h, const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

static void cache_key(const char *source_name, const char *arch, uint64_t key[2]) {
    const mlxn_nvrtc_api *nv = NULL;
    (void)mlxn_cuda_load_nvrtc(&nv);
    uint64_t seeds[2] = {0xcbf29ce484222325ULL, 0x84222325cbf29ce4ULL};
    for (int s = 0; s < 2; s++) {
        uint64_t h = seeds[s];
        h = fnv1a(h, source_name, strlen(source_name) + 1);
        h = fnv1a(h, arch, strlen(arch) + 1);
        for (int k = 0; k < N_OPTS_COMMON; k++) h = fnv1a(h, k_opts_common[k], strlen(k_opts_common[k]) + 1);
        int ver[2] = {nv ? nv->major : 0, nv ? nv->minor : 0};
        h = fnv1a(h, ver, sizeof ver);
        for (int k = 0; mlxn_cuda_sources[k].name; k++) {
            h = fnv1a(h, mlxn_cuda_sources[k].name, strlen(mlxn_cuda_sources[k].name) + 1);
            h = fnv1a(h, mlxn_cuda_sources[k].source, strlen(mlxn_cuda_sources[k].source));
        }
        key[s] = h;
    }
}

static void mkdir_p(const char *path) {
    char tmp[512];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *p = tmp + 1; *p; p++) {
        if (*p == '/') {
            *p = 0;
            mkdir(tmp, 0755);
            *p = '/';
        }
    }
    mkdir(tmp, 0755);
}

static const char k_magic[8] = {'M', 'L', 'X', 'N', 'C', 'U', 'B', '1'};

static void *cache_read(const char *dir, const uint64_t key[2], size_t *size) {
    char path[640];
    snprintf(path, sizeof path, "%s/%016llx%016llx.cubin", dir, (unsigned long long)key[0],
             (unsigned long long)key[1]);
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char magic[8];
    uint64_t k2[2], n = 0;
    void *bin = NULL;
    if (fread(magic, 1, 8, f) == 8 && memcmp(magic, k_magic, 8) == 0 && fread(k2, 8, 2, f) == 2 &&
        k2[0] == key[0] && k2[1] == key[1] && fread(&n, 8, 1, f) == 1 && n > 0 && n < (1ull << 30)) {
        bin = malloc(n);
        if (bin && fread(bin, 1, n, f) != n) {
            free(bin);
            bin = NULL;
        }
    }
    fclose(f);
    if (bin) *size = (size_t)n;
    return bin;
}

static void cache_write(const char *dir, const uint64_t key[2], const void *bin, size_t n) {
    mkdir_p(dir);
    char path[640], tmp[700];
    snprintf(path, sizeof path, "%s/%016llx%016llx.cubin", dir, (unsigned long long)key[0],
             (unsigned long long)key[1]);
    snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        mlxn_log(1, "cuda: cannot write kernel cache %s: %s", tmp, strerror(errno));
        return;
    }
    uint64_t n64 = n;
    int ok = fwrite(k_magic, 1, 8, f) == 8 && fwrite(key, 8, 2, f) == 2 && fwrite(&n64, 8, 1, f) == 1 &&
             fwrite(bin, 1, n, f) == n;
    ok = (fclose(f) == 0) && ok;
    if (!ok || rename(tmp, path) != 0) {
        mlxn_log(1, "cuda: cannot write kernel cache %s", path);
        unlink(tmp);
    }
}

/* ---------------------------------------------------------------- registry */

mlxn_status mlxn_cuda_registry_init(mlxn_cuda_dev *d, const char *cache_dir) {
    mlxn_cuda_registry *r = &d->reg;
    memset(r, 0, sizeof *r);
    pthread_mutex_init(&r->mu, NULL);
    snprintf(r->arch, sizeof r->arch, "sm_%d%d", d->cc_major, d->cc_minor);
    const char *env = getenv("MLXN_CACHE_DIR");
    char base[480] = "";
    if (cache_dir && *cache_dir) snprintf(base, sizeof base, "%s", cache_dir);
    else if (env && *env) {
        if (strcmp(env, "off") != 0) snprintf(base, sizeof base, "%s", env);
    } else if (getenv("XDG_CACHE_HOME") && *getenv("XDG_CACHE_HOME")) {
        snprintf(base, sizeof base, "%s/mlxn", getenv("XDG_CACHE_HOME"));
    } else if (getenv("HOME") && *getenv("HOME")) {
        snprintf(base, sizeof base, "%s/.cache/mlxn", getenv("HOME"));
    }
    if (base[0]) snprintf(r->cache_dir, sizeof r->cache_dir, "%s/cuda", base);
    /* NVRTC must be present to compile anything: fail the open early with the reason */
    const mlxn_nvrtc_api *nv;
    return mlxn_cuda_load_nvrtc(&nv);
}

void mlxn_cuda_registry_destroy(mlxn_cuda_dev *d) {
    mlxn_cuda_registry *r = &d->reg;
    for (int i = 0; i < r->n_modules; i++)
        if (r->modules[i].module) d->cu->cuModuleUnload(r->modules[i].module);
    r->n_modules = 0;
    pthread_mutex_destroy(&r->mu);
}

static mlxn_status load_module(mlxn_cuda_dev *d, const char *source, CUmodule *out) {
    mlxn_cuda_registry *r = &d->reg;
    for (int i = 0; i < r->n_modules; i++)
        if (strcmp(r->modules[i].source_name, source) == 0) {
            *out = r->modules[i].module;
            return MLXN_OK;
        }
    if (r->n_modules >= MLXN_CUDA_MAX_MODULES)
        return mlxn_set_error(MLXN_ERR_INTERNAL, "cuda: too many kernel modules (%d)", r->n_modules);
    const mlxn_embedded_source *src = find_source(source);
    if (!src) return mlxn_set_error(MLXN_ERR_NOT_FOUND, "cuda: no embedded kernel source named '%s'", source);
    uint64_t key[2];
    cache_key(source, r->arch, key);
    size_t n = 0;
    void *bin = r->cache_dir[0] ? cache_read(r->cache_dir, key, &n) : NULL;
    if (bin) {
        r->disk_hits++;
    } else {
        MLXN_TRY(mlxn_cuda_compile_source(source, r->arch, &bin, &n));
        r->compiles++;
        if (r->cache_dir[0]) cache_write(r->cache_dir, key, bin, n);
    }
    CUmodule m = NULL;
    CUresult cr = d->cu->cuModuleLoadData(&m, bin);
    free(bin);
    if (cr != CUDA_SUCCESS) {
        char what[128];
        snprintf(what, sizeof what, "cuModuleLoadData(%s, %s)", source, r->arch);
        return mlxn_cuda_error(d->cu, cr, what);
    }
    r->modules[r->n_modules].source_name = src->name;
    r->modules[r->n_modules].module = m;
    r->n_modules++;
    *out = m;
    return MLXN_OK;
}

mlxn_status mlxn_cuda_get_function(mlxn_cuda_dev *d, const char *source, const char *name, CUfunction *out) {
    mlxn_cuda_registry *r = &d->reg;
    uintptr_t h = ((uintptr_t)name >> 3) * 0x9E3779B97F4A7C15ULL;
    unsigned slot = (unsigned)(h >> 20) % MLXN_CUDA_FN_SLOTS;
    pthread_mutex_lock(&r->mu);
    for (unsigned probe = 0; probe < MLXN_CUDA_FN_SLOTS; probe++) {
        mlxn_cuda_fn_entry *e = &r->fns[(slot + probe) % MLXN_CUDA_FN_SLOTS];
        if (!e->name) {
            CUmodule m = NULL;
            mlxn_status st = load_module(d, source, &m);
            if (st == MLXN_OK) {
                CUfunction fn;
                CUresult cr = d->cu->cuModuleGetFunction(&fn, m, name);
                if (cr != CUDA_SUCCESS) {
                    char what[160];
                    snprintf(what, sizeof what, "cuModuleGetFunction(%s in %s)", name, source);
                    st = mlxn_cuda_error(d->cu, cr, what);
                } else {
                    e->name = name;
                    e->fn = fn;
                    *out = fn;
                }
            }
            pthread_mutex_unlock(&r->mu);
            return st;
        }
        if (e->name == name || strcmp(e->name, name) == 0) {
            *out = e->fn;
            pthread_mutex_unlock(&r->mu);
            return MLXN_OK;
        }
    }
    pthread_mutex_unlock(&r->mu);
    return mlxn_set_error(MLXN_ERR_INTERNAL, "cuda: kernel table full looking up %s", name);
}
