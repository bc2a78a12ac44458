/* cuda_ops_attention.c — launcher for attention (kernels/attention.cu,
 * attention_decode.cu and attention_prefill.cu): picks the path (decode
 * kernel attn_dec_* for T <= DEC_TMAX query rows, one launch; prefill kernel
 * attn_pf_* for more rows on a linear cache with D 64 or 128 and 16-byte
 * aligned buffers: blocks of 64 (query row, head) items sharing one KV head,
 * K/V tiles in shared memory;
 * else attn_prep + the general attn_* kernel) and the instance (cache dtype,
 * head-dim bound 64/128/256, GQA group 1/2/4/8 per block), sizes the split-K
 * grid from the cache capacity C (the decode path: the op's kv_bound where
 * set) and the number of (query row, KV head group)
 * pairs (decode: 3-4 blocks of 4 warps per SM, chunks of whole 64-key units;
 * general: ~2 blocks of 8 warps per SM, whole 256-key tiles), and lays out
 * the per-split partials in session scratch. The grid never depends on
 * positions (they are read on the device), so a captured graph replays for
 * every decode step. ROPE_KV_ATTENTION (one query row, f32 q/k/v) runs the
 * decode kernel's attn_decr_* variant, which rotates q and the new key and
 * appends key and value itself (one launch for the step's attention).
 * Env MLXN_CUDA_ATTN=general forces the general path (no decode or prefill
 * kernel, and no fused step); MLXN_CUDA_ROPE_ATTN=0 declines the fused step
 * (rope_kv_append + attention, A/B); MLXN_CUDA_ATTN_BPS=n sets the decode
 * path's target blocks per SM; MLXN_CUDA_ATTN_ONE_SPLIT=N its one-split
 * limit (0: off); MLXN_CUDA_ATTN_PF_ORDER=plain gives the
 * prefill kernel a plain latest-rows-first block order (A/B). */
#include "backend/cuda/cuda_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Mirrors struct AttnArgs in attention.cu (pointers and i64 first, then ints and floats). */
typedef struct {
    CUdeviceptr q, k, v, pos, out, part, part_ml, counters, maxpos;
    long long C, kv_len;
    int T, Hq, Hkv, D, G_total, nsplit, chunk, causal, window, ring, full;
    float scale, softcap;
} attn_args;

/* Mirrors struct DecArgs in attention_decode.cu. */
typedef struct {
    CUdeviceptr q, k, v, pos, out, part, part_ml, counters, err;
    long long C, kv_len;
    int T, Hq, Hkv, D, G_total, nsplit, chunk, causal, window, ring, full, pipe;
    float scale, softcap;
} attn_dec_args;

/* Mirrors struct DecRope in attention_decode.cu. */
typedef struct {
    CUdeviceptr k, v;
    int rot, mode;
    double inv[128];
} attn_dec_rope;

/* Kernel names of a family (attention.cu's ATTN_ALL), as string literals
 * (the registry keys kernels by these pointers): [cache dtype f32/f16/bf16]
 * [head-dim bound 64/128/256][query heads per block 1/2/4/8]. */
#define ATTN_G4(P) {P "_g1", P "_g2", P "_g4", P "_g8"}
#define ATTN_D3(P) {ATTN_G4(P "_d64"), ATTN_G4(P "_d128"), ATTN_G4(P "_d256")}
#define ATTN_NAMES(P) {ATTN_D3(P "_f32"), ATTN_D3(P "_f16"), ATTN_D3(P "_bf16")}

#define DEC_TMAX 4       /* decode path for T <= this */
#define DEC_THREADS 128  /* attention.cu's DEC_NW warps */
#define DEC_UNIT 64      /* chunk granularity (keys) */
/* Fewest keys per split. A second split costs the partials' round trip and
 * the combine (fence, counter, two dependent reads) in the last block; a
 * block's second 64-key batch costs one more dependent K/V read. H100,
 * SmolLM2-135M shape (9 query heads, 3 KV heads, hd 64), tg128 tok/s at
 * depth 0 / 1024 / 3000 for 64, 128, 256, 512 keys: 1,711 / 1,515 / 1,400;
 * 1,814 / 1,497 / 1,433; 1,830 / 1,358 / 1,345; – / 1,170 / 1,141. 8B
 * shape, depth 0: 386 (64) vs 390 (256). */
#define DEC_MIN_CHUNK 128
/* Grids over at most DEC_ONE_SPLIT keys (a short cache, the first decode
 * bucket) take one split when they have at most DEC_ONE_SPLIT_PAIRS (row,
 * head group) pairs (env MLXN_CUDA_ATTN_ONE_SPLIT=N sets the first, 0: off).
 * H100 tg128, one split vs two of 128 keys: real SmolLM2 (9 pairs) 2,044.1 /
 * 2,045.1 vs 1,989.4 / 1,989.8, in a 4,096-slot cache 2,037.8 vs 1,973.7;
 * random 1B (32 pairs) 1,530.7 / 1,527.0 vs 1,555.5, 8B (32) 407.7 vs
 * 408.1: hence the pair limit. */
#define DEC_ONE_SPLIT 256
#define DEC_ONE_SPLIT_PAIRS 16
/* target blocks of 4 warps per SM: 4 for caches up to 8192 slots, else 3
 * (H100, hd 128, 32/8 heads, µs at 3 vs 4: 4k 22.9 vs 20.6, 8k 35.2 vs 29.0,
 * 16k 48.6 vs 68.2 — chunks round to whole 64-key units) */
#define DEC_PER_SM(C) ((C) <= 8192 ? 4 : 3)
#define DEC_MAXSPLIT 256 /* attention.cu's DEC_MAXSPLIT */

/* The keys a decode grid covers: the op's kv_bound (linear caches), else
 * the capacity C. */
static int64_t decode_grid_keys(const mlxn_attention_params *p, int64_t C) {
    return p->kv_bound > 0 && p->kv_bound < C && !p->ring ? p->kv_bound : C;
}

/* The decode kernel over q [T, Hq, D] and the caches; rope != NULL: the
 * fused step's variant (T = 1) with that prologue. */
static mlxn_status attention_decode(mlxn_session *s, const mlxn_op *op, const mlxn_buffer *q, const mlxn_buffer *kc,
                                    const mlxn_buffer *vc, const mlxn_buffer *pos, const mlxn_buffer *out,
                                    const attn_dec_rope *rope, int dmax, int gb, int hgroups) {
    const mlxn_attention_params *p = &op->p.attn;
    mlxn_cuda_dev *cd = mlxn_cuda_dev_of(s);
    mlxn_cuda_sess *ss = mlxn_cuda_sess_of(s);
    int T = (int)q->shape[0], Hq = (int)q->shape[1], D = (int)q->shape[2];
    int Hkv = (int)kc->shape[0];
    const int64_t C = kc->shape[1], Cg = decode_grid_keys(p, C);
    static const char *const names[3][3][4] = ATTN_NAMES("attn_dec");
    static const char *const rnames[3][3][4] = ATTN_NAMES("attn_decr");
    int di = kc->dtype == MLXN_F32 ? 0 : kc->dtype == MLXN_F16 ? 1 : 2;
    int dmi = dmax == 64 ? 0 : dmax == 128 ? 1 : 2;
    int gi = gb == 1 ? 0 : gb == 2 ? 1 : gb == 4 ? 2 : 3;
    const char *kname = rope ? rnames[di][dmi][gi] : names[di][dmi][gi];

    int64_t pairs = (int64_t)T * Hkv * hgroups;
    if (pairs > MLXN_CUDA_COUNTERS)
        return mlxn_set_error(MLXN_ERR_UNSUPPORTED, "attention (cuda): %lld (row, head) pairs exceed %u",
                              (long long)pairs, MLXN_CUDA_COUNTERS);
    /* splits: ~DEC_PER_SM blocks per SM over all pairs, chunks of whole
     * DEC_UNIT keys and at least DEC_MIN_CHUNK, at most DEC_MAXSPLIT splits */
    int per_sm = DEC_PER_SM(Cg);
    const char *eb = getenv("MLXN_CUDA_ATTN_BPS"); /* tuning: target blocks per SM (1..32) */
    if (eb && atoi(eb) >= 1 && atoi(eb) <= 32) per_sm = atoi(eb);
    int64_t want = ((int64_t)cd->sm_count * per_sm + pairs - 1) / pairs;
    if (want < 1) want = 1;
    int64_t chunk = (Cg + want - 1) / want;
    if (chunk < (Cg + DEC_MAXSPLIT - 1) / DEC_MAXSPLIT) chunk = (Cg + DEC_MAXSPLIT - 1) / DEC_MAXSPLIT;
    const char *em = getenv("MLXN_CUDA_ATTN_MIN_CHUNK"); /* tuning: fewest keys per split */
    const int min_env = em && atoll(em) > 0;
    int64_t min_chunk = min_env ? atoll(em) : DEC_MIN_CHUNK;
    /* a grid over at most DEC_ONE_SPLIT keys (a short cache, the first decode
     * bucket): one split, no idle blocks */
    const char *eo = getenv("MLXN_CUDA_ATTN_ONE_SPLIT");
    const int64_t one_split = eo && *eo ? atoll(eo) : DEC_ONE_SPLIT;
    if (!min_env && Cg <= one_split && pairs <= DEC_ONE_SPLIT_PAIRS) min_chunk = Cg;
    if (chunk < min_chunk) chunk = min_chunk;
    chunk = (chunk + DEC_UNIT - 1) / DEC_UNIT * DEC_UNIT;
    int64_t nsplit = (Cg + chunk - 1) / chunk;
    if (nsplit > DEC_MAXSPLIT || chunk > INT32_MAX)
        return mlxn_set_error(MLXN_ERR_INTERNAL, "attention (cuda): %lld splits of %lld keys", (long long)nsplit,
                              (long long)chunk);

    size_t part_floats = (size_t)T * Hq * nsplit * (size_t)D;
    size_t ml_floats = ((size_t)T * Hq * nsplit * 2 + 3) / 4 * 4; /* keeps part 16-byte aligned */
    size_t bytes = (part_floats + ml_floats) * 4;
    CUdeviceptr scr;
    MLXN_TRY(mlxn_cuda_scratch(s, bytes, &scr));
    CUdeviceptr counters;
    MLXN_TRY(mlxn_cuda_counters(s, &counters));

    attn_dec_args a = {0};
    a.q = mlxn_cuda_addr(q);
    a.k = mlxn_cuda_addr(kc);
    a.v = mlxn_cuda_addr(vc);
    a.pos = mlxn_cuda_addr(pos);
    a.out = mlxn_cuda_addr(out);
    a.part_ml = scr;
    a.part = scr + ml_floats * 4;
    a.counters = counters;
    a.err = ss->err_word;
    a.C = C;
    a.kv_len = p->kv_len;
    a.T = T;
    a.Hq = Hq;
    a.Hkv = Hkv;
    a.D = D;
    a.G_total = Hq / Hkv;
    a.nsplit = (int)nsplit;
    a.chunk = (int)chunk;
    a.causal = p->causal;
    a.window = p->window;
    a.ring = p->ring;
    /* whole vectors: lane vectors of up to 16 bytes (8 elements) start at
     * multiples of 8 elements of 16-byte aligned rows */
    size_t esz = mlxn_dtype_size(kc->dtype);
    a.full = D % 8 == 0 && a.k % 16 == 0 && a.v % 16 == 0 && ((size_t)D * esz) % 16 == 0;
    /* 0: no next-batch prefetch (H100 135M tg128 1,804 vs 1,835 tok/s with it; 1B unchanged) */
    const char *ep = getenv("MLXN_CUDA_ATTN_PIPE");
    a.pipe = !(ep && ep[0] == '0');
    a.scale = p->scale;
    a.softcap = p->softcap;
    attn_dec_rope r = rope ? *rope : (attn_dec_rope){0};
    void *args_plain[] = {&a}, *args_rope[] = {&a, &r};
    return mlxn_cuda_launch(s, "attention_decode.cu", kname, (unsigned)nsplit, (unsigned)(Hkv * hgroups),
                            (unsigned)T, DEC_THREADS, 0, rope ? args_rope : args_plain);
}

/* Query heads per decode block: one for caches up to 4096 slots (more
 * blocks; a block's serial work is what costs at short contexts), two up to
 * 8192, else the whole group, which reads each K/V row once (H200, hd 128,
 * GQA 4, µs for 1/2/4 heads: 512 keys 9.5/12.1/18.0, 4096 22.0/22.4/24.7,
 * 16384 62.9/52.1/46.2). MLXN_CUDA_ATTN_G=n (1, 2, 4 or 8 dividing G)
 * overrides it. gb: the largest of 8/4/2/1 dividing G. */
static int decode_heads_per_block(int G, int gb, int64_t C) {
    const char *eg = getenv("MLXN_CUDA_ATTN_G");
    int ng = eg ? atoi(eg) : 0;
    if (!((ng == 1 || ng == 2 || ng == 4 || ng == 8) && G % ng == 0))
        ng = C <= 4096 ? 1 : C <= 8192 && gb >= 2 ? 2 : gb;
    return ng;
}

static int force_general(void) {
    const char *ev = getenv("MLXN_CUDA_ATTN");
    return ev && strcmp(ev, "general") == 0;
}

int mlxn_cuda_rope_attention_fusable(mlxn_session *s, const mlxn_op *op) {
    (void)s;
    const mlxn_buffer *q = op->in[0], *k = op->in[1], *v = op->in[2], *kc = op->out[1];
    const char *e = getenv("MLXN_CUDA_ROPE_ATTN");
    if ((e && e[0] == '0' && e[1] == 0) || force_general()) return 0;
    int64_t T = q->shape[0], Hkv = kc->shape[0], G = q->shape[1] / Hkv;
    int gb = G % 8 == 0 ? 8 : G % 4 == 0 ? 4 : G % 2 == 0 ? 2 : 1;
    int64_t pairs = Hkv * (G / decode_heads_per_block((int)G, gb, kc->shape[1]));
    return T == 1 && q->dtype == MLXN_F32 && k->dtype == MLXN_F32 && v->dtype == MLXN_F32 &&
           op->p.rope.rot_dims / 2 <= 128 && q->shape[2] <= 256 && pairs <= MLXN_CUDA_COUNTERS;
}

static mlxn_status attention_dispatch(mlxn_session *s, const mlxn_op *op, const mlxn_buffer *q, const mlxn_buffer *kc,
                                      const mlxn_buffer *vc, const mlxn_buffer *pos, const mlxn_buffer *out,
                                      const attn_dec_rope *rope);

mlxn_status mlxn_cuda_op_rope_kv_attention(mlxn_session *s, const mlxn_op *op) {
    const mlxn_buffer *q = op->in[0], *k = op->in[1], *v = op->in[2], *pos = op->in[3];
    if (!mlxn_cuda_rope_attention_fusable(s, op))
        return mlxn_set_error(MLXN_ERR_INTERNAL, "rope_kv_attention: dispatched to CUDA for a case the decode kernel "
                              "does not take (T %lld)", (long long)q->shape[0]);
    attn_dec_rope r;
    memset(&r, 0, sizeof r);
    r.k = mlxn_cuda_addr(k);
    r.v = mlxn_cuda_addr(v);
    r.rot = op->p.rope.rot_dims;
    r.mode = (int)op->p.rope.mode;
    for (int i = 0; i < r.rot / 2; i++) r.inv[i] = mlxn_cuda_rope_inv_freq(&op->p.rope, r.rot, i);
    return attention_dispatch(s, op, q, op->out[1], op->out[2], pos, op->out[0], &r);
}

/* Mirrors struct PfArgs in attention_prefill.cu. */
typedef struct {
    CUdeviceptr q, k, v, pos, out, err;
    long long C, kv_len;
    int T, Hq, Hkv, G, gq, causal, window, nsm;
    float scale, softcap;
} attn_pf_args;

#define PF_BQ 64   /* attention_prefill.cu's PF_BQ items per block */
#define PF_BK 64   /* its PF_BK keys per tile */
#define PF_NT 256  /* its PF_NT threads per block */
#define PF_SMEM(DMAX) ((PF_BQ * ((DMAX) + 4) + PF_BK * ((DMAX) + 4) + PF_BK * (PF_BQ + 4)) * 4)

/* The prefill kernel, when it applies: linear cache, D 64 or 128, q/k/v/out
 * 16-byte aligned, positions and keys within int range, enough shared memory.
 * *done = 0 (and MLXN_OK) sends the op to the general path. Each block takes
 * gq query heads (the largest of 8/4/2/1 dividing the group) of one KV head
 * and 64 / gq query rows: the GQA group shares each staged K/V tile (64
 * query vectors per tile whatever the group), and T = 512, Hq = 32, Hkv = 8
 * still makes 256 blocks (~2 per SM, the kernel's occupancy). 1-D grid of
 * row tiles x head groups; the kernel orders the work units itself (heavy
 * and light paired per SM, given the SM count). */
static mlxn_status attention_prefill(mlxn_session *s, const mlxn_op *op, int *done) {
    const mlxn_buffer *q = op->in[0], *kc = op->in[1], *vc = op->in[2], *pos = op->in[3];
    const mlxn_attention_params *p = &op->p.attn;
    mlxn_cuda_dev *cd = mlxn_cuda_dev_of(s);
    mlxn_cuda_sess *ss = mlxn_cuda_sess_of(s);
    int T = (int)q->shape[0], Hq = (int)q->shape[1], D = (int)q->shape[2];
    int Hkv = (int)kc->shape[0];
    int64_t C = kc->shape[1];
    *done = 0;
    if (p->ring || (D != 64 && D != 128) || Hkv <= 0 || Hq % Hkv != 0) return MLXN_OK;
    if (C > INT32_MAX - 2 * PF_BK || p->window < 0) return MLXN_OK;
    if (!pos && (p->kv_len > INT32_MAX || p->kv_len < T)) return MLXN_OK;
    if (kc->dtype != MLXN_F32 && kc->dtype != MLXN_F16 && kc->dtype != MLXN_BF16) return MLXN_OK;
    CUdeviceptr qa = mlxn_cuda_addr(q), ka = mlxn_cuda_addr(kc), va = mlxn_cuda_addr(vc), oa = mlxn_cuda_addr(op->out[0]);
    if ((qa | ka | va | oa) % 16 != 0) return MLXN_OK;
    unsigned smem = PF_SMEM(D);
    if ((int)smem > cd->smem_optin) return MLXN_OK;
    int G = Hq / Hkv;
    int gq = G % 8 == 0 ? 8 : G % 4 == 0 ? 4 : G % 2 == 0 ? 2 : 1;
    int tp = PF_BQ / gq;
    int64_t nblk = (int64_t)((T + tp - 1) / tp) * Hkv * (G / gq); /* row tiles x head groups */
    if (nblk > INT32_MAX) return MLXN_OK;
    /* string literals: the registry keys kernels by these pointers */
    static const char *const names[3][2] = {{"attn_pf_f32_d64", "attn_pf_f32_d128"},
                                            {"attn_pf_f16_d64", "attn_pf_f16_d128"},
                                            {"attn_pf_bf16_d64", "attn_pf_bf16_d128"}};
    int di = kc->dtype == MLXN_F32 ? 0 : kc->dtype == MLXN_F16 ? 1 : 2;
    const char *kname = names[di][D == 128];
    attn_pf_args a = {0};
    a.q = qa;
    a.k = ka;
    a.v = va;
    a.pos = mlxn_cuda_addr(pos);
    a.out = oa;
    a.err = ss->err_word;
    a.C = C;
    a.kv_len = p->kv_len;
    a.T = T;
    a.Hq = Hq;
    a.Hkv = Hkv;
    a.G = G;
    a.gq = gq;
    a.causal = p->causal;
    a.window = p->window;
    /* block order: heavy/light pairs per SM in the first two waves;
     * MLXN_CUDA_ATTN_PF_ORDER=plain: latest row tiles first only (A/B) */
    const char *eo = getenv("MLXN_CUDA_ATTN_PF_ORDER");
    a.nsm = eo && strcmp(eo, "plain") == 0 ? 0 : cd->sm_count;
    a.scale = p->scale;
    a.softcap = p->softcap;
    /* two blocks of ~85 KB per SM (mlxn_cuda_launch opts in to the largest
     * shared-memory carveout for dynamic requests of this size) */
    void *args[] = {&a};
    *done = 1;
    return mlxn_cuda_launch(s, "attention_prefill.cu", kname, (unsigned)nblk, 1, 1, PF_NT, smem, args);
}

mlxn_status mlxn_cuda_op_attention(mlxn_session *s, const mlxn_op *op) {
    return attention_dispatch(s, op, op->in[0], op->in[1], op->in[2], op->in[3], op->out[0], NULL);
}

/* The path for attention over q and the caches (rope: the fused step, always
 * the decode kernel). */
static mlxn_status attention_dispatch(mlxn_session *s, const mlxn_op *op, const mlxn_buffer *q, const mlxn_buffer *kc,
                                      const mlxn_buffer *vc, const mlxn_buffer *pos, const mlxn_buffer *out,
                                      const attn_dec_rope *rope) {
    const mlxn_attention_params *p = &op->p.attn;
    mlxn_cuda_dev *cd = mlxn_cuda_dev_of(s);
    mlxn_cuda_sess *ss = mlxn_cuda_sess_of(s);
    int T = (int)q->shape[0], Hq = (int)q->shape[1], D = (int)q->shape[2];
    int Hkv = (int)kc->shape[0];
    int64_t C = kc->shape[1];
    int G = Hq / Hkv;
    if (D > 256)
        return mlxn_set_error(MLXN_ERR_UNSUPPORTED, "attention (cuda): head dim %d > 256 is not supported", D);
    int dmax = D <= 64 ? 64 : D <= 128 ? 128 : 256;
    int gb = G % 8 == 0 ? 8 : G % 4 == 0 ? 4 : G % 2 == 0 ? 2 : 1;
    int hgroups = G / gb;
    /* MLXN_CUDA_ATTN=general forces the general kernel (A/B benchmarks) */
    const int general = force_general();
    if (rope || (T <= DEC_TMAX && !general)) {
        gb = decode_heads_per_block(G, gb, decode_grid_keys(&op->p.attn, C));
        hgroups = G / gb;
        return attention_decode(s, op, q, kc, vc, pos, out, rope, dmax, gb, hgroups);
    }
    if (!general) {
        int done = 0;
        mlxn_status st = attention_prefill(s, op, &done);
        if (st != MLXN_OK || done) return st;
    }
    /* string literals: the registry keys kernels by these pointers */
    static const char *const names[3][3][4] = ATTN_NAMES("attn");
    int di = kc->dtype == MLXN_F32 ? 0 : kc->dtype == MLXN_F16 ? 1 : 2;
    int dmi = dmax == 64 ? 0 : dmax == 128 ? 1 : 2;
    int gi = gb == 1 ? 0 : gb == 2 ? 1 : gb == 4 ? 2 : 3;
    const char *kname = names[di][dmi][gi];

    /* split count: ~2 blocks (of 8 warps) per SM; chunks are whole tiles of 256
     * keys; at most 256 splits (the combine step's limit) */
    int64_t pairs = (int64_t)T * Hkv * hgroups;
    if (pairs > MLXN_CUDA_COUNTERS)
        return mlxn_set_error(MLXN_ERR_UNSUPPORTED, "attention (cuda): %lld (row, head) pairs exceed %u",
                              (long long)pairs, MLXN_CUDA_COUNTERS);
    int64_t want = ((int64_t)cd->sm_count * 2 + pairs - 1) / pairs;
    int64_t nsplit = want < 1 ? 1 : want;
    int64_t chunk = (C + nsplit - 1) / nsplit;
    if (chunk < (C + 255) / 256) chunk = (C + 255) / 256;
    chunk = (chunk + 255) / 256 * 256;
    nsplit = (C + chunk - 1) / chunk;
    if (nsplit > 256) return mlxn_set_error(MLXN_ERR_INTERNAL, "attention (cuda): %lld splits", (long long)nsplit);

    size_t part_floats = (size_t)T * Hq * nsplit * (size_t)D;
    size_t ml_floats = (size_t)T * Hq * nsplit * 2;
    size_t bytes = 256 + (part_floats + ml_floats) * 4;
    CUdeviceptr scr;
    MLXN_TRY(mlxn_cuda_scratch(s, bytes, &scr));
    CUdeviceptr counters;
    MLXN_TRY(mlxn_cuda_counters(s, &counters));

    attn_args a = {0};
    a.q = mlxn_cuda_addr(q);
    a.k = mlxn_cuda_addr(kc);
    a.v = mlxn_cuda_addr(vc);
    a.pos = mlxn_cuda_addr(pos);
    a.out = mlxn_cuda_addr(op->out[0]);
    a.maxpos = scr;
    a.part_ml = scr + 256;
    a.part = a.part_ml + ml_floats * 4;
    a.counters = counters;
    a.C = C;
    a.kv_len = p->kv_len;
    a.T = T;
    a.Hq = Hq;
    a.Hkv = Hkv;
    a.D = D;
    a.G_total = G;
    a.nsplit = (int)nsplit;
    a.chunk = (int)chunk;
    a.causal = p->causal;
    a.window = p->window;
    a.ring = p->ring;
    size_t esz = mlxn_dtype_size(kc->dtype);
    a.full = D == dmax && a.k % 16 == 0 && a.v % 16 == 0 && ((size_t)D * esz) % 16 == 0;
    a.scale = p->scale;
    a.softcap = p->softcap;

    long long kvl = p->kv_len, CC = C;
    int ring = p->ring;
    CUdeviceptr posp = a.pos, mp = a.maxpos, err = ss->err_word;
    void *pargs[] = {&posp, &T, &kvl, &CC, &ring, &mp, &err};
    MLXN_TRY(mlxn_cuda_launch(s, "attention.cu", "attn_prep", 1, 1, 1, 256, 0, pargs));
    void *args[] = {&a};
    return mlxn_cuda_launch(s, "attention.cu", kname, (unsigned)nsplit, (unsigned)(Hkv * hgroups), (unsigned)T, 256,
                            0, args);
}
