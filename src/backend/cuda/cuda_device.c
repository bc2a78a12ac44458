/* cuda_device.c — the CUDA device: opening a GPU through the dlopen'd driver
 * (primary context, description "NAME (sm_XY, N SMs)"), device memory with
 * cuMemAlloc (never managed memory) behind a cache of freed blocks in
 * power-of-two buckets (cuMemFree stalls the whole device), synchronous
 * uploads through double-buffered pinned staging, sessions (one CUDA stream
 * each, one synchronisation per finish, a mapped pinned error word that
 * kernels raise flags in), graphs (CUDA Graph stream capture; the graph takes
 * ownership of the scratch memory its kernels point at) and the launch and
 * scratch helpers the op launchers use. Copies run on the legacy default
 * stream and session streams are blocking streams, so an upload or download
 * is ordered after the work already enqueued on any session. */
#define _GNU_SOURCE
#include "backend/cuda/cuda_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STAGING_HALF (8u << 20)            /* bytes per staging half */
#define SMALL_COPY (256u << 10)            /* below this, plain synchronous copies */
#define CACHE_MAX_BLOCK ((size_t)1 << 28)  /* blocks up to 256 MiB are rounded to 2^k and cached */
#define CACHE_LIMIT ((size_t)2 << 30)      /* at most 2 GiB kept in the free cache */

static inline CUresult ctx_set(mlxn_cuda_dev *cd) { return cd->cu->cuCtxSetCurrent(cd->ctx); }

/* ---------------------------------------------------------------- memory */

static int bucket_of(size_t bytes) {
    int b = 8; /* 256 bytes minimum */
    while (((size_t)1 << b) < bytes) b++;
    return b;
}

static unsigned live_hash(CUdeviceptr p) { return (unsigned)((p >> 8) * 2654435761u) % 1024u; }

static mlxn_status cuda_alloc(mlxn_device *d, size_t bytes, void **ptr) {
    mlxn_cuda_dev *cd = d->impl;
    const mlxn_cuda_api *cu = cd->cu;
    if (bytes == 0) bytes = 1;
    size_t want = bytes;
    int b = -1;
    if (bytes <= CACHE_MAX_BLOCK) {
        b = bucket_of(bytes);
        want = (size_t)1 << b;
    }
    mlxn_cuda_block *blk = NULL;
    pthread_mutex_lock(&cd->cache_mu);
    if (b >= 0 && cd->free_blocks[b]) {
        blk = cd->free_blocks[b];
        cd->free_blocks[b] = blk->next;
        cd->cached_bytes -= blk->bytes;
    }
    pthread_mutex_unlock(&cd->cache_mu);
    if (!blk) {
        blk = malloc(sizeof *blk);
        if (!blk) return mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "cuda: out of host memory");
        ctx_set(cd);
        CUresult r = cu->cuMemAlloc(&blk->ptr, want);
        if (r != CUDA_SUCCESS) {
            /* release the cache and retry once */
            pthread_mutex_lock(&cd->cache_mu);
            for (int k = 0; k < 64; k++) {
                while (cd->free_blocks[k]) {
                    mlxn_cuda_block *f = cd->free_blocks[k];
                    cd->free_blocks[k] = f->next;
                    cu->cuMemFree(f->ptr);
                    free(f);
                }
            }
            cd->cached_bytes = 0;
            pthread_mutex_unlock(&cd->cache_mu);
            r = cu->cuMemAlloc(&blk->ptr, want);
        }
        if (r != CUDA_SUCCESS) {
            free(blk);
            size_t fr = 0, tot = 0;
            cu->cuMemGetInfo(&fr, &tot);
            return mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY,
                                  "cuda: cuMemAlloc of %zu bytes failed (error %d; %zu of %zu bytes free)", want, r,
                                  fr, tot);
        }
        blk->bytes = want;
    }
    pthread_mutex_lock(&cd->cache_mu);
    unsigned h = live_hash(blk->ptr);
    blk->next = cd->live[h];
    cd->live[h] = blk;
    pthread_mutex_unlock(&cd->cache_mu);
    *ptr = (void *)(uintptr_t)blk->ptr;
    return MLXN_OK;
}

/* Pinned host memory mapped into the device's address space. */
static mlxn_status cuda_alloc_mapped(mlxn_device *d, size_t bytes, void **ptr, void **host) {
    mlxn_cuda_dev *cd = d->impl;
    const mlxn_cuda_api *cu = cd->cu;
    void *h = NULL;
    CUdeviceptr p = 0;
    ctx_set(cd);
    CUresult r = cu->cuMemHostAlloc(&h, bytes, CU_MEMHOSTALLOC_DEVICEMAP | CU_MEMHOSTALLOC_PORTABLE);
    if (r == CUDA_SUCCESS) r = cu->cuMemHostGetDevicePointer(&p, h, 0);
    if (r != CUDA_SUCCESS) {
        if (h) cu->cuMemFreeHost(h);
        return mlxn_cuda_error(cu, r, "buffer_alloc_mapped: cuMemHostAlloc (mapped)");
    }
    memset(h, 0, bytes);
    *ptr = (void *)(uintptr_t)p;
    *host = h;
    return MLXN_OK;
}

static void cuda_free_mapped(mlxn_device *d, void *host) {
    mlxn_cuda_dev *cd = d->impl;
    ctx_set(cd);
    cd->cu->cuMemFreeHost(host);
}

static void cuda_free(mlxn_device *d, void *ptr) {
    if (!ptr) return;
    mlxn_cuda_dev *cd = d->impl;
    CUdeviceptr p = (CUdeviceptr)(uintptr_t)ptr;
    pthread_mutex_lock(&cd->cache_mu);
    unsigned h = live_hash(p);
    mlxn_cuda_block **pp = &cd->live[h], *blk = NULL;
    while (*pp) {
        if ((*pp)->ptr == p) {
            blk = *pp;
            *pp = blk->next;
            break;
        }
        pp = &(*pp)->next;
    }
    if (blk && blk->bytes <= CACHE_MAX_BLOCK && cd->cached_bytes + blk->bytes <= CACHE_LIMIT) {
        int b = bucket_of(blk->bytes);
        blk->next = cd->free_blocks[b];
        cd->free_blocks[b] = blk;
        cd->cached_bytes += blk->bytes;
        blk = NULL;
    }
    pthread_mutex_unlock(&cd->cache_mu);
    if (blk) {
        ctx_set(cd);
        cd->cu->cuMemFree(blk->ptr);
        free(blk);
    }
}

static mlxn_status cuda_upload(mlxn_device *d, void *dst, const void *src, size_t bytes) {
    mlxn_cuda_dev *cd = d->impl;
    const mlxn_cuda_api *cu = cd->cu;
    CUdeviceptr to = (CUdeviceptr)(uintptr_t)dst;
    ctx_set(cd);
    atomic_fetch_add(&cd->host_writes, 1);
    if (bytes < SMALL_COPY || !cd->staging) {
        CUresult r = cu->cuMemcpyHtoD(to, src, bytes);
        return r == CUDA_SUCCESS ? MLXN_OK : mlxn_cuda_error(cu, r, "upload: cuMemcpyHtoD");
    }
    /* double-buffered: fill one pinned half while the other is copied */
    pthread_mutex_lock(&cd->staging_mu);
    mlxn_status st = MLXN_OK;
    size_t done = 0;
    int half = 0;
    int used[2] = {0, 0};
    while (done < bytes) {
        size_t n = bytes - done < STAGING_HALF ? bytes - done : STAGING_HALF;
        char *stage = (char *)cd->staging + (size_t)half * STAGING_HALF;
        if (used[half]) {
            CUresult r = cu->cuEventSynchronize(cd->staging_ev[half]);
            if (r != CUDA_SUCCESS) { st = mlxn_cuda_error(cu, r, "upload: cuEventSynchronize"); break; }
        }
        memcpy(stage, (const char *)src + done, n);
        CUresult r = cu->cuMemcpyHtoDAsync(to + done, stage, n, NULL);
        if (r == CUDA_SUCCESS) r = cu->cuEventRecord(cd->staging_ev[half], NULL);
        if (r != CUDA_SUCCESS) { st = mlxn_cuda_error(cu, r, "upload: cuMemcpyHtoDAsync"); break; }
        used[half] = 1;
        done += n;
        half ^= 1;
    }
    CUresult r = cu->cuStreamSynchronize(NULL);
    if (st == MLXN_OK && r != CUDA_SUCCESS) st = mlxn_cuda_error(cu, r, "upload: cuStreamSynchronize");
    pthread_mutex_unlock(&cd->staging_mu);
    return st;
}

static mlxn_status cuda_download(mlxn_device *d, void *dst, const void *src, size_t bytes) {
    mlxn_cuda_dev *cd = d->impl;
    ctx_set(cd);
    CUresult r = cd->cu->cuMemcpyDtoH(dst, (CUdeviceptr)(uintptr_t)src, bytes);
    return r == CUDA_SUCCESS ? MLXN_OK : mlxn_cuda_error(cd->cu, r, "download: cuMemcpyDtoH");
}

static mlxn_status cuda_fill_bytes(mlxn_device *d, void *dst, uint8_t byte, size_t bytes) {
    mlxn_cuda_dev *cd = d->impl;
    ctx_set(cd);
    atomic_fetch_add(&cd->host_writes, 1);
    CUresult r = cd->cu->cuMemsetD8((CUdeviceptr)(uintptr_t)dst, byte, bytes);
    if (r == CUDA_SUCCESS) r = cd->cu->cuStreamSynchronize(NULL);
    return r == CUDA_SUCCESS ? MLXN_OK : mlxn_cuda_error(cd->cu, r, "fill_bytes: cuMemsetD8");
}

static void cuda_close(mlxn_device *d) {
    mlxn_cuda_dev *cd = d->impl;
    if (!cd) return;
    const mlxn_cuda_api *cu = cd->cu;
    ctx_set(cd);
    cu->cuCtxSynchronize();
    mlxn_cuda_gemm_release(cd);
    mlxn_cuda_registry_destroy(cd);
    for (int k = 0; k < 64; k++) {
        while (cd->free_blocks[k]) {
            mlxn_cuda_block *f = cd->free_blocks[k];
            cd->free_blocks[k] = f->next;
            cu->cuMemFree(f->ptr);
            free(f);
        }
    }
    for (int h = 0; h < 1024; h++) {
        while (cd->live[h]) { /* leaked buffers: free them with the context */
            mlxn_cuda_block *f = cd->live[h];
            cd->live[h] = f->next;
            cu->cuMemFree(f->ptr);
            free(f);
        }
    }
    for (int i = 0; i < 2; i++)
        if (cd->staging_ev[i]) cu->cuEventDestroy(cd->staging_ev[i]);
    if (cd->staging) cu->cuMemFreeHost(cd->staging);
    cu->cuDevicePrimaryCtxRelease(cd->dev);
    pthread_mutex_destroy(&cd->staging_mu);
    pthread_mutex_destroy(&cd->cache_mu);
    pthread_mutex_destroy(&cd->lt_mu);
    free(cd);
    d->impl = NULL;
}

/* ---------------------------------------------------------------- sessions */

/* Zeroed u32 counters for kernels that count finished blocks (attention), made
 * on first use: the zeroing is enqueued on the session stream, so inside a
 * capture it becomes part of the graph and every replay starts from zero. */
mlxn_status mlxn_cuda_counters(mlxn_session *s, CUdeviceptr *out) {
    mlxn_cuda_sess *ss = s->impl;
    const mlxn_cuda_api *cu = ss->dev->cu;
    if (!ss->counters) {
        CUresult r = cu->cuMemAlloc(&ss->counters, (size_t)MLXN_CUDA_COUNTERS * 4);
        if (r != CUDA_SUCCESS) {
            ss->counters = 0;
            return mlxn_cuda_error(cu, r, "counters: cuMemAlloc");
        }
        r = cu->cuMemsetD32Async(ss->counters, 0, MLXN_CUDA_COUNTERS, ss->stream);
        if (r != CUDA_SUCCESS) return mlxn_cuda_error(cu, r, "counters: cuMemsetD32Async");
    }
    *out = ss->counters;
    return MLXN_OK;
}

static mlxn_status cuda_session_begin(mlxn_session *s) {
    mlxn_cuda_dev *cd = s->device->impl;
    const mlxn_cuda_api *cu = cd->cu;
    mlxn_cuda_sess *ss = calloc(1, sizeof *ss);
    if (!ss) return mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "cuda: out of host memory (session)");
    ss->dev = cd;
    ctx_set(cd);
    CUresult r = cu->cuStreamCreate(&ss->stream, 0 /* blocking: ordered with legacy-stream copies */);
    if (r != CUDA_SUCCESS) {
        free(ss);
        return mlxn_cuda_error(cu, r, "session_begin: cuStreamCreate");
    }
    void *h = NULL;
    r = cu->cuMemHostAlloc(&h, 64, CU_MEMHOSTALLOC_DEVICEMAP | CU_MEMHOSTALLOC_PORTABLE);
    if (r == CUDA_SUCCESS) r = cu->cuMemHostGetDevicePointer(&ss->err_word, h, 0);
    if (r != CUDA_SUCCESS) {
        if (h) cu->cuMemFreeHost(h);
        cu->cuStreamDestroy(ss->stream);
        free(ss);
        return mlxn_cuda_error(cu, r, "session_begin: mapped error word");
    }
    ss->err_host = h;
    *ss->err_host = 0;
    s->impl = ss;
    return MLXN_OK;
}

static mlxn_status check_err_word(mlxn_cuda_sess *ss) {
    uint32_t e = *ss->err_host;
    if (!e) return MLXN_OK;
    *ss->err_host = 0;
    if (e & MLXN_CUDA_ERR_EMBED_RANGE)
        return mlxn_set_error(MLXN_ERR_RANGE, "embedding (cuda): a token id was outside [0, rows) (row zeroed)");
    if (e & MLXN_CUDA_ERR_KV_RANGE)
        return mlxn_set_error(MLXN_ERR_RANGE,
                              "kv_append (cuda): a position was outside [0, capacity) of a linear cache (row skipped)");
    if (e & MLXN_CUDA_ERR_ATTN_RANGE)
        return mlxn_set_error(MLXN_ERR_RANGE, "attention (cuda): a position was negative or outside the linear cache "
                                              "capacity or the op's kv_bound (keys past them ignored)");
    return mlxn_set_error(MLXN_ERR_INTERNAL, "cuda: kernel raised error flags 0x%x", e);
}

static mlxn_status cuda_session_finish(mlxn_session *s) {
    mlxn_cuda_sess *ss = s->impl;
    ctx_set(ss->dev);
    CUresult r = ss->dev->cu->cuStreamSynchronize(ss->stream);
    if (r != CUDA_SUCCESS) return mlxn_cuda_error(ss->dev->cu, r, "session_finish: cuStreamSynchronize");
    return check_err_word(ss);
}

static void free_scratch_list(mlxn_cuda_dev *cd, CUdeviceptr main, CUdeviceptr *old, int n) {
    if (main) cd->cu->cuMemFree(main);
    for (int i = 0; i < n; i++)
        if (old[i]) cd->cu->cuMemFree(old[i]);
}

static void cuda_session_destroy(mlxn_session *s) {
    mlxn_cuda_sess *ss = s->impl;
    if (!ss) return;
    mlxn_cuda_dev *cd = ss->dev;
    ctx_set(cd);
    if (ss->capturing) {
        CUgraph g = NULL;
        cd->cu->cuStreamEndCapture(ss->stream, &g);
        if (g) cd->cu->cuGraphDestroy(g);
    }
    cd->cu->cuStreamSynchronize(ss->stream);
    free_scratch_list(cd, ss->scratch, ss->old_scratch, ss->n_old_scratch);
    if (ss->counters) cd->cu->cuMemFree(ss->counters);
    cd->cu->cuStreamDestroy(ss->stream);
    cd->cu->cuMemFreeHost((void *)ss->err_host);
    free(ss);
    s->impl = NULL;
}

mlxn_status mlxn_cuda_scratch(mlxn_session *s, size_t bytes, CUdeviceptr *out) {
    mlxn_cuda_sess *ss = s->impl;
    if (bytes <= ss->scratch_bytes && ss->scratch) {
        *out = ss->scratch;
        return MLXN_OK;
    }
    mlxn_cuda_dev *cd = ss->dev;
    size_t want = 1 << 20;
    while (want < bytes) want <<= 1;
    CUdeviceptr p = 0;
    ctx_set(cd);
    CUresult r = cd->cu->cuMemAlloc(&p, want);
    if (r != CUDA_SUCCESS) return mlxn_cuda_error(cd->cu, r, "scratch: cuMemAlloc");
    if (ss->scratch) {
        if (ss->capturing || ss->n_old_scratch > 0) {
            /* the capture (or a capture's ops still queued) may reference the old block */
            if (ss->n_old_scratch >= (int)(sizeof ss->old_scratch / sizeof ss->old_scratch[0])) {
                cd->cu->cuMemFree(p);
                return mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "cuda: too many scratch regrowths in one session");
            }
            ss->old_scratch[ss->n_old_scratch++] = ss->scratch;
        } else {
            cd->cu->cuStreamSynchronize(ss->stream);
            cd->cu->cuMemFree(ss->scratch);
        }
    }
    ss->scratch = p;
    ss->scratch_bytes = want;
    *out = p;
    return MLXN_OK;
}

/* ---------------------------------------------------------------- graphs */

typedef struct cuda_graph {
    mlxn_cuda_dev *dev;
    CUgraphExec exec;
    CUdeviceptr scratch;
    CUdeviceptr old_scratch[40];
    int n_old;
    CUdeviceptr counters;
} cuda_graph;

static mlxn_status cuda_graph_begin(mlxn_session *s) {
    mlxn_cuda_sess *ss = s->impl;
    ctx_set(ss->dev);
    if (ss->capturing) return mlxn_set_error(MLXN_ERR_STATE, "cuda: graph capture already in progress");
    CUresult r = ss->dev->cu->cuStreamBeginCapture(ss->stream, CU_STREAM_CAPTURE_MODE_RELAXED);
    if (r != CUDA_SUCCESS) return mlxn_cuda_error(ss->dev->cu, r, "graph_begin: cuStreamBeginCapture");
    ss->capturing = 1;
    return MLXN_OK;
}

static mlxn_status cuda_graph_end(mlxn_session *s, void **graph_impl) {
    mlxn_cuda_sess *ss = s->impl;
    mlxn_cuda_dev *cd = ss->dev;
    const mlxn_cuda_api *cu = cd->cu;
    ctx_set(cd);
    if (!ss->capturing) return mlxn_set_error(MLXN_ERR_STATE, "cuda: graph_end without graph_begin");
    CUgraph g = NULL;
    CUresult r = cu->cuStreamEndCapture(ss->stream, &g);
    ss->capturing = 0;
    if (r != CUDA_SUCCESS) return mlxn_cuda_error(cu, r, "graph_end: cuStreamEndCapture");
    cuda_graph *cg = calloc(1, sizeof *cg);
    if (!cg) {
        cu->cuGraphDestroy(g);
        return mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "cuda: out of host memory (graph)");
    }
    r = cu->cuGraphInstantiateWithFlags(&cg->exec, g, 0);
    cu->cuGraphDestroy(g);
    if (r != CUDA_SUCCESS) {
        free(cg);
        return mlxn_cuda_error(cu, r, "graph_end: cuGraphInstantiateWithFlags");
    }
    /* the graph's kernels point at this session's scratch: the graph owns it now */
    cg->dev = cd;
    cg->scratch = ss->scratch;
    memcpy(cg->old_scratch, ss->old_scratch, sizeof cg->old_scratch);
    cg->n_old = ss->n_old_scratch;
    cg->counters = ss->counters; /* the graph's kernels use these; the session makes new ones when needed */
    ss->counters = 0;
    ss->scratch = 0;
    ss->scratch_bytes = 0;
    ss->n_old_scratch = 0;
    *graph_impl = cg;
    return MLXN_OK;
}

static mlxn_status cuda_graph_replay(mlxn_session *s, void *graph_impl) {
    mlxn_cuda_sess *ss = s->impl;
    cuda_graph *cg = graph_impl;
    ctx_set(ss->dev);
    CUresult r = ss->dev->cu->cuGraphLaunch(cg->exec, ss->stream);
    return r == CUDA_SUCCESS ? MLXN_OK : mlxn_cuda_error(ss->dev->cu, r, "graph_replay: cuGraphLaunch");
}

static void cuda_graph_destroy(void *graph_impl) {
    cuda_graph *cg = graph_impl;
    if (!cg) return;
    ctx_set(cg->dev);
    cg->dev->cu->cuCtxSynchronize(); /* a replay may still be running */
    cg->dev->cu->cuGraphExecDestroy(cg->exec);
    free_scratch_list(cg->dev, cg->scratch, cg->old_scratch, cg->n_old);
    if (cg->counters) cg->dev->cu->cuMemFree(cg->counters);
    free(cg);
}

/* ---------------------------------------------------------------- launch */

/* Kernel sources whose every kernel begins with PDL_ENTER() (common.cu), so
 * they may be launched as programmatic dependents of the kernel before. */
static int pdl_source(const char *source) {
    static const char *const ok[] = {"matvec.cu",    "matvec_tune.cu",      "matvec_mma.cu", "matvec_stream.cu",
                                      "elementwise.cu", "quant.cu",          "attention.cu",
                                      "attention_decode.cu", "attention_prefill.cu"};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        if (strcmp(source, ok[i]) == 0) return 1;
    return 0;
}

mlxn_status mlxn_cuda_launch(mlxn_session *s, const char *source, const char *name, unsigned gx, unsigned gy,
                             unsigned gz, unsigned bx, unsigned smem, void **args) {
    mlxn_cuda_sess *ss = s->impl;
    mlxn_cuda_dev *cd = ss->dev;
    if (gx == 0 || gy == 0 || gz == 0) return MLXN_OK; /* nothing to do */
    ss->launches++;
    ss->last_kernel = name;
    CUfunction fn;
    ctx_set(cd);
    MLXN_TRY(mlxn_cuda_get_function(cd, source, name, &fn));
    if ((int)smem > cd->smem_optin)
        return mlxn_set_error(MLXN_ERR_UNSUPPORTED, "cuda: %s needs %u bytes of shared memory (device max %d)", name,
                              smem, cd->smem_optin);
    /* past 48 KB in all (static included) a kernel must opt in; the static
     * part is not known here, so any large dynamic request opts in, and asks
     * for the largest shared-memory carveout (a hint: such kernels run
     * several blocks of tens of KB per SM) */
    int keep_carveout = 0;
    if (smem > 16 * 1024) {
        cd->cu->cuFuncSetAttribute(fn, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, (int)smem);
        cd->cu->cuFuncSetAttribute(fn, CU_FUNC_ATTRIBUTE_PREFERRED_SHARED_MEMORY_CARVEOUT, 100);
        ss->big_smem_recent = cd->carveout_near;
    } else if (ss->big_smem_recent > 0) {
        /* The few launches after a large-shared-memory kernel (the decode
         * step's streamed matmuls) keep the largest carveout too, so that an
         * SM need not change its L1 / shared split between neighbours. H100,
         * tg128: see MLXN_CUDA_CARVEOUT_NEAR in cuda_internal.h. */
        ss->big_smem_recent--;
        keep_carveout = 1;
    }
    CUresult r;
    const int pdl = cd->pdl && pdl_source(source);
    if (pdl || keep_carveout) {
        /* pdl: programmatic dependent launch: this grid may be scheduled
         * while the previous kernel in the stream still runs; its kernels wait
         * for that kernel's completion (griddepcontrol.wait in PDL_ENTER)
         * before they touch memory, so only the launch latency overlaps */
        mlxn_cu_launch_attr attr[2];
        memset(attr, 0, sizeof attr);
        unsigned n = 0;
        if (pdl) {
            attr[n].id = MLXN_CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION;
            attr[n++].v.value = 1;
        }
        if (keep_carveout) {
            attr[n].id = MLXN_CU_LAUNCH_ATTRIBUTE_PREFERRED_SHARED_MEMORY_CARVEOUT;
            attr[n++].v.value = 100;
        }
        mlxn_cu_launch_config cfg = {gx, gy, gz, bx, 1, 1, smem, ss->stream, attr, n};
        r = cd->cu->cuLaunchKernelEx(&cfg, fn, args, NULL);
    } else {
        r = cd->cu->cuLaunchKernel(fn, gx, gy, gz, bx, 1, 1, smem, ss->stream, args, NULL);
    }
    if (r != CUDA_SUCCESS) {
        char what[160];
        snprintf(what, sizeof what, "launch %s (grid %u x %u x %u, block %u)", name, gx, gy, gz, bx);
        return mlxn_cuda_error(cd->cu, r, what);
    }
    return MLXN_OK;
}

/* ---------------------------------------------------------------- open */

static mlxn_backend_ops g_ops;
static pthread_once_t g_ops_once = PTHREAD_ONCE_INIT;

static void init_ops(void) {
    g_ops.name = "cuda";
    g_ops.alloc = cuda_alloc;
    g_ops.free = cuda_free;
    g_ops.alloc_mapped = cuda_alloc_mapped;
    g_ops.free_mapped = cuda_free_mapped;
    g_ops.upload = cuda_upload;
    g_ops.download = cuda_download;
    g_ops.fill_bytes = cuda_fill_bytes;
    g_ops.close = cuda_close;
    g_ops.session_begin = cuda_session_begin;
    g_ops.session_finish = cuda_session_finish;
    g_ops.session_destroy = cuda_session_destroy;
    g_ops.graph_begin = cuda_graph_begin;
    g_ops.graph_end = cuda_graph_end;
    g_ops.graph_replay = cuda_graph_replay;
    g_ops.graph_destroy = cuda_graph_destroy;
    mlxn_cuda_register_ops(&g_ops);
}

mlxn_status mlxn_cuda_device_open(int ordinal, const mlxn_device_opts *opts, mlxn_device *d) {
    const mlxn_cuda_api *cu;
    MLXN_TRY(mlxn_cuda_load_driver(&cu));
    int count = 0;
    CUresult r = cu->cuDeviceGetCount(&count);
    if (r != CUDA_SUCCESS || count == 0)
        return mlxn_set_error(MLXN_ERR_UNSUPPORTED, "cuda: no CUDA device found (cuDeviceGetCount: %d devices, error %d)",
                              count, r);
    if (ordinal < 0 || ordinal >= count)
        return mlxn_set_error(MLXN_ERR_NOT_FOUND, "cuda: device ordinal %d out of range (%d device%s)", ordinal, count,
                              count == 1 ? "" : "s");
    mlxn_cuda_dev *cd = calloc(1, sizeof *cd);
    if (!cd) return mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "cuda: out of host memory");
    cd->cu = cu;
    cd->ordinal = ordinal;
    pthread_mutex_init(&cd->staging_mu, NULL);
    pthread_mutex_init(&cd->cache_mu, NULL);
    pthread_mutex_init(&cd->lt_mu, NULL);
    mlxn_status st = MLXN_OK;
    char name[128] = "?";
    if ((r = cu->cuDeviceGet(&cd->dev, ordinal)) != CUDA_SUCCESS) {
        st = mlxn_cuda_error(cu, r, "cuDeviceGet");
        goto fail;
    }
    cu->cuDeviceGetName(name, sizeof name, cd->dev);
    cu->cuDeviceGetAttribute(&cd->cc_major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, cd->dev);
    cu->cuDeviceGetAttribute(&cd->cc_minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, cd->dev);
    cu->cuDeviceGetAttribute(&cd->sm_count, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, cd->dev);
    cu->cuDeviceGetAttribute(&cd->l2_bytes, CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE, cd->dev);
    cu->cuDeviceGetAttribute(&cd->smem_optin, CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN, cd->dev);
    {
        const char *e = getenv("MLXN_CUDA_PDL");
        int want = !(e && e[0] == '0' && e[1] == 0);
        cd->pdl = want && cd->cc_major >= 9 && cu->cuLaunchKernelEx != NULL;
        /* the per-launch carveout attribute: drivers of CUDA 12.8 and later */
        const char *n = getenv("MLXN_CUDA_CARVEOUT_NEAR");
        int ver = 0;
        const int can = cu->cuLaunchKernelEx != NULL && cu->cuDriverGetVersion(&ver) == CUDA_SUCCESS && ver >= 12080;
        cd->carveout_near = !can ? 0 : n && *n ? atoi(n) : MLXN_CUDA_CARVEOUT_NEAR;
    }
    cu->cuDeviceTotalMem(&cd->total_mem, cd->dev);
    if (cd->cc_major < 8) {
        st = mlxn_set_error(MLXN_ERR_UNSUPPORTED,
                            "cuda: %s has compute capability %d.%d; mlxn needs 8.0 (Ampere) or newer", name,
                            cd->cc_major, cd->cc_minor);
        goto fail;
    }
    if ((r = cu->cuDevicePrimaryCtxRetain(&cd->ctx, cd->dev)) != CUDA_SUCCESS) {
        st = mlxn_cuda_error(cu, r, "cuDevicePrimaryCtxRetain");
        goto fail;
    }
    ctx_set(cd);
    st = mlxn_cuda_registry_init(cd, opts ? opts->cache_dir : NULL);
    if (st != MLXN_OK) {
        cu->cuDevicePrimaryCtxRelease(cd->dev);
        goto fail;
    }
    if (cu->cuMemHostAlloc(&cd->staging, 2 * (size_t)STAGING_HALF, CU_MEMHOSTALLOC_PORTABLE) != CUDA_SUCCESS)
        cd->staging = NULL; /* fall back to plain copies */
    else if (cu->cuEventCreate(&cd->staging_ev[0], CU_EVENT_DEFAULT) != CUDA_SUCCESS ||
             cu->cuEventCreate(&cd->staging_ev[1], CU_EVENT_DEFAULT) != CUDA_SUCCESS) {
        cu->cuMemFreeHost(cd->staging);
        cd->staging = NULL;
    }
    pthread_once(&g_ops_once, init_ops);
    d->ops = &g_ops;
    d->impl = cd;
    snprintf(d->kind, sizeof d->kind, "cuda");
    snprintf(d->description, sizeof d->description, "%s (sm_%d%d, %d SMs)", name, cd->cc_major, cd->cc_minor,
             cd->sm_count);
    return MLXN_OK;
fail:
    pthread_mutex_destroy(&cd->staging_mu);
    pthread_mutex_destroy(&cd->cache_mu);
    pthread_mutex_destroy(&cd->lt_mu);
    free(cd);
    return st;
}
