/* cpu_device.c — the CPU backend's device: host memory (64-byte aligned),
 * run-time SIMD feature detection, the persistent thread pool behind
 * mlxn_cpu_parallel_for, and the backend table. A NULL table entry
 * would mean unsupported; the CPU implements every op. */
#include "backend/cpu/cpu_backend.h"
#include "backend/ref/ref_backend.h" /* mlxn_ref_copy */

#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

/* ---------------------------------------------------------------- features */

static mlxn_cpu_features g_feat;
static pthread_once_t g_feat_once = PTHREAD_ONCE_INIT;

static void detect(void) {
#if defined(__x86_64__) || defined(__i386__)
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return;
    int osxsave = (c >> 27) & 1, avx = (c >> 28) & 1;
    g_feat.fma = (c >> 12) & 1;
    g_feat.f16c = (c >> 29) & 1;
    unsigned long long xcr0 = 0;
    if (osxsave) {
        unsigned lo, hi;
        __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
        xcr0 = ((unsigned long long)hi << 32) | lo;
    }
    int ymm = avx && (xcr0 & 6) == 6, zmm = ymm && (xcr0 & 0xe0) == 0xe0;
    if (!ymm) { g_feat.fma = g_feat.f16c = 0; return; }
    if (__get_cpuid_count(7, 0, &a, &b, &c, &d)) {
        g_feat.avx2 = (b >> 5) & 1;
        if (zmm) {
            g_feat.avx512f = (b >> 16) & 1;
            g_feat.avx512bw = (b >> 30) & 1;
            g_feat.avx512vl = (b >> 31) & 1;
            g_feat.avx512vnni = (c >> 11) & 1;
        }
        unsigned a1, b1, c1, d1;
        if (__get_cpuid_count(7, 1, &a1, &b1, &c1, &d1)) {
            g_feat.avxvnni = (a1 >> 4) & 1;
            if (zmm) g_feat.avx512bf16 = (a1 >> 5) & 1;
        }
    }
    if (getenv("MLXN_CPU_NO_SIMD")) memset(&g_feat, 0, sizeof g_feat); /* scalar fallbacks, for tests */
    else if (getenv("MLXN_CPU_NO_AVX512")) {
        g_feat.avx512f = g_feat.avx512bw = g_feat.avx512vl = g_feat.avx512vnni = g_feat.avx512bf16 = 0;
    }
#endif
}

const mlxn_cpu_features *mlxn_cpu_detect_features(void) {
    pthread_once(&g_feat_once, detect);
    return &g_feat;
}

/* ---------------------------------------------------------------- thread pool */

/* Workers spin on the job generation for a short while before sleeping on
 * the condition variable, so the many small ops of a decode step do not each
 * pay a sleep/wake-up (tens of µs); the caller spins for the workers'
 * completion. */
#define POOL_SPIN_ITERS 20000

struct mlxn_cpu_pool {
    int n_threads; /* including the caller */
    pthread_t *threads;
    pthread_mutex_t mu;
    pthread_cond_t work_cv;
    /* current job (written by the caller before generation is bumped) */
    mlxn_cpu_range_fn fn;
    void *ctx;
    int64_t n, chunk;
    int n_chunks;
    _Atomic int generation;
    _Atomic int pending; /* workers still running this generation */
    _Atomic int stop;
    int sleepers;        /* workers waiting on work_cv (under mu) */
};

typedef struct { mlxn_cpu_pool *pool; int index; } worker_arg;

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static void run_chunks(mlxn_cpu_pool *p, int t) {
    /* static assignment: thread t runs chunk t (deterministic) */
    if (t < p->n_chunks) {
        int64_t b = (int64_t)t * p->chunk, e = b + p->chunk;
        if (e > p->n) e = p->n;
        if (b < e) p->fn(p->ctx, b, e, t);
    }
}

static void *worker_main(void *arg) {
    worker_arg *wa = arg;
    mlxn_cpu_pool *p = wa->pool;
    int idx = wa->index;
    free(wa);
    int seen = 0;
    for (;;) {
        int spins = 0;
        while (atomic_load_explicit(&p->generation, memory_order_acquire) == seen &&
               !atomic_load_explicit(&p->stop, memory_order_acquire) && spins < POOL_SPIN_ITERS) {
            cpu_relax();
            spins++;
        }
        if (atomic_load_explicit(&p->generation, memory_order_acquire) == seen &&
            !atomic_load_explicit(&p->stop, memory_order_acquire)) {
            pthread_mutex_lock(&p->mu);
            p->sleepers++;
            while (!atomic_load(&p->stop) && atomic_load(&p->generation) == seen) pthread_cond_wait(&p->work_cv, &p->mu);
            p->sleepers--;
            pthread_mutex_unlock(&p->mu);
        }
        if (atomic_load(&p->stop)) break;
        seen = atomic_load_explicit(&p->generation, memory_order_acquire);
        run_chunks(p, idx);
        atomic_fetch_sub_explicit(&p->pending, 1, memory_order_acq_rel);
    }
    return NULL;
}

static mlxn_status pool_create(int n_threads, mlxn_cpu_pool **out) {
    mlxn_cpu_pool *p = calloc(1, sizeof *p);
    if (!p) return mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "cpu: out of host memory");
    p->n_threads = n_threads;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->work_cv, NULL);
    atomic_init(&p->generation, 0);
    atomic_init(&p->pending, 0);
    atomic_init(&p->stop, 0);
    if (n_threads > 1) {
        p->threads = calloc((size_t)n_threads, sizeof *p->threads);
        if (!p->threads) { free(p); return mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "cpu: out of host memory"); }
        for (int i = 1; i < n_threads; i++) {
            worker_arg *wa = malloc(sizeof *wa);
            if (wa) { wa->pool = p; wa->index = i; }
            int rc = wa ? pthread_create(&p->threads[i], NULL, worker_main, wa) : -1;
            if (rc != 0) {
                free(wa);
                p->n_threads = i; /* keep the ones that started */
                break;
            }
        }
    }
    *out = p;
    return MLXN_OK;
}

static void pool_destroy(mlxn_cpu_pool *p) {
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->stop, 1);
    pthread_cond_broadcast(&p->work_cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i < p->n_threads; i++) pthread_join(p->threads[i], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->work_cv);
    free(p->threads);
    free(p);
}

void mlxn_cpu_parallel_for(mlxn_cpu_device *dev, int64_t n, int64_t grain, mlxn_cpu_range_fn fn, void *ctx) {
    if (n <= 0) return;
    if (grain < 1) grain = 1;
    mlxn_cpu_pool *p = dev->pool;
    int nt = p ? p->n_threads : 1;
    int64_t max_chunks = (n + grain - 1) / grain;
    int chunks = nt < max_chunks ? nt : (int)max_chunks;
    if (chunks <= 1) { fn(ctx, 0, n, 0); return; }
    int64_t chunk = (n + chunks - 1) / chunks;
    p->fn = fn;
    p->ctx = ctx;
    p->n = n;
    p->chunk = chunk;
    p->n_chunks = chunks;
    atomic_store_explicit(&p->pending, nt - 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&p->generation, 1, memory_order_release);
    pthread_mutex_lock(&p->mu);
    if (p->sleepers) pthread_cond_broadcast(&p->work_cv);
    pthread_mutex_unlock(&p->mu);
    run_chunks(p, 0);
    /* spin, then yield: a descheduled worker (oversubscribed machine) must not
     * cost the caller its whole time slice */
    for (int spins = 0; atomic_load_explicit(&p->pending, memory_order_acquire) > 0; spins++) {
        if (spins < POOL_SPIN_ITERS) cpu_relax();
        else sched_yield();
    }
}

/* ---------------------------------------------------------------- memory (shared with ref) */

mlxn_status mlxn_host_alloc(mlxn_device *d, size_t bytes, void **ptr) {
    void *p = NULL;
    size_t rounded = (bytes + 63) & ~(size_t)63;
    if (rounded < bytes || posix_memalign(&p, 64, rounded ? rounded : 64) != 0)
        return mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "%s: cannot allocate %zu bytes of host memory", d->kind, bytes);
    *ptr = p;
    return MLXN_OK;
}
void mlxn_host_free(mlxn_device *d, void *ptr) { free(ptr); }
mlxn_status mlxn_host_copy(mlxn_device *d, void *dst, const void *src, size_t bytes) {
    memmove(dst, src, bytes);
    return MLXN_OK;
}
mlxn_status mlxn_host_fill(mlxn_device *d, void *dst, uint8_t byte, size_t bytes) {
    memset(dst, byte, bytes);
    return MLXN_OK;
}

/* ---------------------------------------------------------------- device */

static void cpu_close(mlxn_device *d) {
    mlxn_cpu_device *c = d->impl;
    if (!c) return;
    pool_destroy(c->pool);
    free(c);
    d->impl = NULL;
}

static const mlxn_backend_ops cpu_ops = {
    .name = "cpu",
    .alloc = mlxn_host_alloc,
    .free = mlxn_host_free,
    .upload = mlxn_host_copy,
    .download = mlxn_host_copy,
    .fill_bytes = mlxn_host_fill,
    .close = cpu_close,
    .op = {
        [MLXN_OP_ADD] = mlxn_cpu_add, [MLXN_OP_MUL] = mlxn_cpu_mul, [MLXN_OP_SCALE] = mlxn_cpu_scale,
        [MLXN_OP_SILU] = mlxn_cpu_silu, [MLXN_OP_GELU] = mlxn_cpu_gelu, [MLXN_OP_SILU_MUL] = mlxn_cpu_silu_mul,
        [MLXN_OP_GELU_MUL] = mlxn_cpu_gelu_mul, [MLXN_OP_SOFTCAP] = mlxn_cpu_softcap, [MLXN_OP_CAST] = mlxn_cpu_cast,
        [MLXN_OP_RMS_NORM] = mlxn_cpu_rms_norm, [MLXN_OP_RMS_NORM_RESIDUAL] = mlxn_cpu_rms_norm_residual,
        [MLXN_OP_LAYER_NORM] = mlxn_cpu_layer_norm, [MLXN_OP_L2_NORM] = mlxn_cpu_l2_norm, [MLXN_OP_ROPE] = mlxn_cpu_rope,
        [MLXN_OP_SOFTMAX] = mlxn_cpu_softmax, [MLXN_OP_ARGMAX] = mlxn_cpu_argmax, [MLXN_OP_TOPK] = mlxn_cpu_topk,
        [MLXN_OP_EMBEDDING] = mlxn_cpu_embedding, [MLXN_OP_MATMUL] = mlxn_cpu_matmul,
        [MLXN_OP_DEQUANTIZE] = mlxn_cpu_dequantize, [MLXN_OP_ATTENTION] = mlxn_cpu_attention,
        [MLXN_OP_KV_APPEND] = mlxn_cpu_kv_append, [MLXN_OP_IM2COL_2D_3CH] = mlxn_cpu_im2col_2d_3ch,
        [MLXN_OP_COPY] = mlxn_ref_copy, /* a memcpy */
    },
};

mlxn_status mlxn_cpu_device_open(const mlxn_device_opts *opts, mlxn_device *d) {
    mlxn_cpu_device *c = calloc(1, sizeof *c);
    if (!c) return mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "cpu: out of host memory");
    c->feat = *mlxn_cpu_detect_features();
    int nt = opts && opts->n_threads > 0 ? opts->n_threads : 0;
    if (!nt) {
        const char *env = getenv("MLXN_THREADS");
        nt = env ? atoi(env) : 0;
    }
    if (nt <= 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        nt = n > 0 ? (int)n : 1;
    }
    if (nt > 256) nt = 256;
    mlxn_status s = pool_create(nt, &c->pool);
    if (s != MLXN_OK) { free(c); return s; }
    c->n_threads = c->pool->n_threads;
    d->ops = &cpu_ops;
    d->impl = c;
    snprintf(d->kind, sizeof d->kind, "cpu");
    const mlxn_cpu_features *f = &c->feat;
    snprintf(d->description, sizeof d->description, "CPU, %d threads (%s%s%s%s)", c->n_threads,
             f->avx512f ? "AVX-512" : f->avx2 ? "AVX2" : "scalar", f->avx512vnni ? "+VNNI" : "",
             f->avx512bf16 ? "+BF16" : "", f->fma ? "+FMA" : "");
    return MLXN_OK;
}
