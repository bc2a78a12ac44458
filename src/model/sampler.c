/* sampler.c — host-side token sampling (see sampler.h for the chain). The
 * candidate list is built once per call in a buffer owned by the sampler
 * (no allocation per token); top-k uses a partial selection so a 150k-entry
 * vocabulary is not fully sorted unless no k is given. */
#include "model/sampler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"

typedef struct cand {
    float logit;
    int32_t id;
} cand;

struct mlxn_sampler {
    mlxn_sampler_params p;
    int64_t vocab;
    cand *cands;        /* [vocab] */
    float *work;        /* [vocab] penalised logits */
    int32_t *hist;      /* ring of recent tokens */
    int hist_cap, hist_n, hist_pos;
    uint64_t rng[4];
};

mlxn_sampler_params mlxn_sampler_default_params(void) {
    mlxn_sampler_params p = { 0 };
    p.temperature = 0.0f;
    p.top_k = 40;
    p.top_p = 0.95f;
    p.min_p = 0.05f;
    p.repeat_penalty = 1.0f;
    p.repeat_last_n = 64;
    p.seed = 42;
    return p;
}

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

/* xoshiro256** */
static uint64_t rng_next(uint64_t *s) {
    uint64_t r = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return r;
}

/* uniform in [0, 1) with 53 bits */
static double rng_uniform(uint64_t *s) { return (double)(rng_next(s) >> 11) * (1.0 / 9007199254740992.0); }

void mlxn_sampler_reset(mlxn_sampler *s) {
    if (!s) return;
    uint64_t x = s->p.seed;
    for (int i = 0; i < 4; i++) s->rng[i] = splitmix64(&x);
    s->hist_n = 0;
    s->hist_pos = 0;
}

mlxn_status mlxn_sampler_create(const mlxn_sampler_params *p, int64_t vocab, mlxn_sampler **out) {
    if (!p || !out) return mlxn_set_error(MLXN_ERR_INVALID_ARG, "sampler_create: NULL argument");
    *out = NULL;
    if (vocab <= 0 || vocab > INT32_MAX)
        return mlxn_set_error(MLXN_ERR_INVALID_ARG, "sampler_create: vocab %lld out of range", (long long)vocab);
    if (!(p->temperature == p->temperature) || p->temperature > 100.0f)
        return mlxn_set_error(MLXN_ERR_INVALID_ARG, "sampler: temperature %g out of range [0, 100]",
                              (double)p->temperature);
    if (!(p->top_p > 0.0f && p->top_p <= 1.0f))
        return mlxn_set_error(MLXN_ERR_INVALID_ARG, "sampler: top_p %g out of range (0, 1]", (double)p->top_p);
    if (!(p->min_p >= 0.0f && p->min_p <= 1.0f))
        return mlxn_set_error(MLXN_ERR_INVALID_ARG, "sampler: min_p %g out of range [0, 1]", (double)p->min_p);
    if (!(p->repeat_penalty > 0.0f))
        return mlxn_set_error(MLXN_ERR_INVALID_ARG, "sampler: repeat_penalty %g must be > 0",
                              (double)p->repeat_penalty);
    if (p->repeat_last_n < -1)
        return mlxn_set_error(MLXN_ERR_INVALID_ARG, "sampler: repeat_last_n %d must be >= -1", p->repeat_last_n);
    mlxn_sampler *s = calloc(1, sizeof(*s));
    if (!s) return mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "sampler_create: out of memory");
    s->p = *p;
    s->vocab = vocab;
    s->hist_cap = p->repeat_last_n == -1 ? 8192 : (p->repeat_last_n > 0 ? p->repeat_last_n : 1);
    s->cands = malloc((size_t)vocab * sizeof(cand));
    s->work = malloc((size_t)vocab * sizeof(float));
    s->hist = malloc((size_t)s->hist_cap * sizeof(int32_t));
    if (!s->cands || !s->work || !s->hist) {
        mlxn_sampler_free(s);
        return mlxn_set_error(MLXN_ERR_OUT_OF_MEMORY, "sampler_create: out of memory (vocab %lld)",
                              (long long)vocab);
    }
    mlxn_sampler_reset(s);
    *out = s;
    return MLXN_OK;
}

void mlxn_sampler_free(mlxn_sampler *s) {
    if (!s) return;
    free(s->cands);
    free(s->work);
    free(s->hist);
    free(s);
}

void mlxn_sampler_accept(mlxn_sampler *s, int32_t id) {
    if (!s) return;
    s->hist[s->hist_pos] = id;
    s->hist_pos = (s->hist_pos + 1) % s->hist_cap;
    if (s->hist_n < s->hist_cap) s->hist_n++;
}

int mlxn_sampler_is_greedy(const mlxn_sampler *s) {
    return s && s->p.temperature <= 0.0f && (s->p.repeat_penalty == 1.0f || s->p.repeat_last_n == 0);
}

/* descending by logit, ties to the lower id (deterministic) */
static int cand_cmp(const void *a, const void *b) {
    const cand *x = a, *y = b;
    if (x->logit > y->logit) return -1;
    if (x->logit < y->logit) return 1;
    return (x->id > y->id) - (x->id < y->id);
}

static int cand_before(const cand *x, const cand *y) {
    return x->logit > y->logit || (x->logit == y->logit && x->id < y->id);
}

/* Partial quickselect: afterwards c[0..k) hold the k best (unsorted). */
static void select_top(cand *c, int64_t n, int64_t k) {
    int64_t lo = 0, hi = n - 1;
    while (lo < hi) {
        cand pivot = c[lo + (hi - lo) / 2];
        int64_t i = lo, j = hi;
        while (i <= j) {
            while (cand_before(&c[i], &pivot)) i++;
            while (cand_before(&pivot, &c[j])) j--;
            if (i <= j) {
                cand t = c[i];
                c[i] = c[j];
                c[j] = t;
                i++;
                j--;
            }
        }
        if (k - 1 <= j) hi = j;
        else if (k - 1 >= i) lo = i;
        else break;
    }
}

mlxn_status mlxn_sampler_sample(mlxn_sampler *s, const float *logits, int32_t *id) {
    if (!s || !logits || !id) return mlxn_set_error(MLXN_ERR_INVALID_ARG, "sampler_sample: NULL argument");
    const int64_t V = s->vocab;
    const float *l = logits;
    /* repetition penalty on a private copy */
    if (s->p.repeat_penalty != 1.0f && s->p.repeat_last_n != 0 && s->hist_n > 0) {
        memcpy(s->work, logits, (size_t)V * sizeof(float));
        for (int i = 0; i < s->hist_n; i++) {
            int32_t t = s->hist[i];
            if (t < 0 || t >= V) continue;
            /* each distinct token once: skip if seen earlier in the ring */
            int dup = 0;
            for (int j = 0; j < i && !dup; j++) dup = s->hist[j] == t;
            if (dup) continue;
            float v = s->work[t];
            s->work[t] = v > 0.0f ? v / s->p.repeat_penalty : v * s->p.repeat_penalty;
        }
        l = s->work;
    }
    if (s->p.temperature <= 0.0f) {
        int64_t best = -1;
        for (int64_t i = 0; i < V; i++)
            if (l[i] == l[i] && (best < 0 || l[i] > l[best])) best = i;
        if (best < 0) return mlxn_set_error(MLXN_ERR_RANGE, "sampler: every logit is NaN");
        *id = (int32_t)best;
        return MLXN_OK;
    }
    int64_t n = 0;
    for (int64_t i = 0; i < V; i++) {
        if (l[i] != l[i] || l[i] == -INFINITY) continue;
        s->cands[n].logit = l[i];
        s->cands[n].id = (int32_t)i;
        n++;
    }
    if (n == 0) return mlxn_set_error(MLXN_ERR_RANGE, "sampler: no finite logit to sample from");
    if (s->p.top_k > 0 && s->p.top_k < n) {
        select_top(s->cands, n, s->p.top_k);
        n = s->p.top_k;
    }
    qsort(s->cands, (size_t)n, sizeof(cand), cand_cmp);
    /* softmax with temperature, in double, in sorted order */
    const double inv_t = 1.0 / (double)s->p.temperature;
    const double m = s->cands[0].logit;
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double pi = exp(((double)s->cands[i].logit - m) * inv_t);
        s->cands[i].logit = (float)pi; /* now an unnormalised probability */
        sum += pi;
    }
    /* min-p: keep p_i >= min_p * p_max (p_max's unnormalised value is 1) */
    if (s->p.min_p > 0.0f) {
        int64_t keep = 1;
        while (keep < n && (double)s->cands[keep].logit >= (double)s->p.min_p) keep++;
        if (keep < n) {
            n = keep;
            sum = 0.0;
            for (int64_t i = 0; i < n; i++) sum += s->cands[i].logit;
        }
    }
    /* top-p: smallest prefix whose mass reaches top_p */
    if (s->p.top_p < 1.0f) {
        double acc = 0.0, target = (double)s->p.top_p * sum;
        int64_t keep = n;
        for (int64_t i = 0; i < n; i++) {
            acc += s->cands[i].logit;
            if (acc >= target) {
                keep = i + 1;
                break;
            }
        }
        n = keep;
        sum = 0.0;
        for (int64_t i = 0; i < n; i++) sum += s->cands[i].logit;
    }
    double r = rng_uniform(s->rng) * sum, acc = 0.0;
    for (int64_t i = 0; i < n; i++) {
        acc += s->cands[i].logit;
        if (r < acc) {
            *id = s->cands[i].id;
            return MLXN_OK;
        }
    }
    *id = s->cands[n - 1].id;
    return MLXN_OK;
}
