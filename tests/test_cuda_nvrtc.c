/* test_cuda_nvrtc.c — CI check (no GPU needed): every CUDA kernel source
 * embedded in the library compiles with NVRTC for sm_80 and sm_90, so a
 * syntax or template error never first shows up on a GPU. libnvrtc must be
 * loadable (CI installs the toolkit's NVRTC or the nvidia-cuda-nvrtc wheel):
 * if it cannot be found this test FAILS rather than skips. Also checks that
 * the registry reports an unknown source by name. */
#include "backend/cuda/cuda_internal.h"
#include "testutil.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void test_nvrtc_loads(void) {
    const mlxn_nvrtc_api *nv = NULL;
    mlxn_status st = mlxn_cuda_load_nvrtc(&nv);
    CHECK_MSG(st == MLXN_OK, "libnvrtc must be loadable in CI: %s", mlxn_last_error());
    if (st == MLXN_OK) {
        printf("     NVRTC %d.%d from %s\n", nv->major, nv->minor, nv->path);
        CHECK(nv->major >= 11);
    }
}

/* one compile job per (source, arch), run on its own thread: NVRTC is thread-safe */
typedef struct {
    const char *name, *arch;
    mlxn_status st;
    size_t size;
    int elf;
    char err[4096];
} job;

static void *compile_job(void *arg) {
    job *j = arg;
    void *bin = NULL;
    j->st = mlxn_cuda_compile_source(j->name, j->arch, &bin, &j->size);
    if (j->st != MLXN_OK) snprintf(j->err, sizeof j->err, "%s", mlxn_last_error());
    j->elf = bin && j->size > 16 && memcmp(bin, "\177ELF", 4) == 0;
    free(bin);
    return NULL;
}

static void test_every_kernel_compiles(void) {
    const char *archs[2] = {"sm_80", "sm_90"};
    int n = 0;
    while (mlxn_cuda_source_name(n)) n++;
    job *jobs = calloc((size_t)n * 2, sizeof *jobs);
    pthread_t *th = calloc((size_t)n * 2, sizeof *th);
    for (int i = 0; i < n * 2; i++) {
        jobs[i].name = mlxn_cuda_source_name(i / 2);
        jobs[i].arch = archs[i % 2];
        if (pthread_create(&th[i], NULL, compile_job, &jobs[i]) != 0) compile_job(&jobs[i]), th[i] = 0;
    }
    for (int i = 0; i < n * 2; i++) {
        if (th[i]) pthread_join(th[i], NULL);
        CHECK_MSG(jobs[i].st == MLXN_OK, "%s for %s: %s", jobs[i].name, jobs[i].arch, jobs[i].err);
        if (jobs[i].st == MLXN_OK) {
            CHECK_MSG(jobs[i].elf, "%s for %s: not an ELF cubin", jobs[i].name, jobs[i].arch);
            printf("     %-18s %s  %7zu bytes\n", jobs[i].name, jobs[i].arch, jobs[i].size);
        }
    }
    free(jobs);
    free(th);
    /* the kernel files this backend's launchers reference must all be embedded */
    const char *needed[] = {"common.cu", "elementwise.cu", "quant.cu", "matvec.cu", "attention.cu"};
    for (size_t k = 0; k < sizeof needed / sizeof needed[0]; k++) {
        int found = 0;
        for (int i = 0; mlxn_cuda_source_name(i); i++) found |= strcmp(mlxn_cuda_source_name(i), needed[k]) == 0;
        CHECK_MSG(found, "kernel source %s is not embedded", needed[k]);
    }
    CHECK(n >= 5);
}

static void test_unknown_source(void) {
    void *bin = NULL;
    size_t size = 0;
    CHECK_ERR(mlxn_cuda_compile_source("no_such_file.cu", "sm_90", &bin, &size), MLXN_ERR_NOT_FOUND, "no_such_file.cu");
    CHECK(bin == NULL);
}

int main(void) {
    T_RUN(test_nvrtc_loads);
    T_RUN(test_every_kernel_compiles);
    T_RUN(test_unknown_source);
    return t_finish();
}
