/* test_gguf.c — the GGUF reader and writer: a writer -> reader round trip
 * with every metadata type (incl. nested arrays), versions 2 and 3 and a
 * non-default alignment; a file written by the Python `gguf` package (kv
 * values, shapes reported outermost first, and dequantized tensor data
 * against the package's own dequantizers); the hand-made bad files with
 * their exact error codes and messages; every truncated prefix of a valid
 * file; and, when present, the real SmolLM2-135M Q4_1 GGUF from the cache. */
#include "io/gguf.h"
#include "io/safetensors.h"
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char g_tmp[256];

static const char *tmp_path(const char *name) {
    static char buf[512];
    snprintf(buf, sizeof buf, "%s/%s", g_tmp, name);
    return buf;
}

static void round_trip(uint32_t version, uint32_t alignment) {
    mlxn_gguf_writer *w = NULL;
    CHECK_OK(mlxn_gguf_writer_create(alignment, &w));
    if (!w) return;
    CHECK_OK(mlxn_gguf_writer_set_version(w, version));
    CHECK_OK(mlxn_gguf_writer_add_str(w, "general.architecture", "llama"));
    CHECK_OK(mlxn_gguf_writer_add_u8(w, "k.u8", 250));
    CHECK_OK(mlxn_gguf_writer_add_i8(w, "k.i8", -7));
    CHECK_OK(mlxn_gguf_writer_add_u16(w, "k.u16", 65000));
    CHECK_OK(mlxn_gguf_writer_add_i16(w, "k.i16", -32000));
    CHECK_OK(mlxn_gguf_writer_add_u32(w, "k.u32", 4000000000u));
    CHECK_OK(mlxn_gguf_writer_add_i32(w, "k.i32", -5));
    CHECK_OK(mlxn_gguf_writer_add_u64(w, "k.u64", UINT64_MAX - 1));
    CHECK_OK(mlxn_gguf_writer_add_i64(w, "k.i64", INT64_MIN + 1));
    CHECK_OK(mlxn_gguf_writer_add_f32(w, "k.f32", 1.25f));
    CHECK_OK(mlxn_gguf_writer_add_f64(w, "k.f64", -3.5));
    CHECK_OK(mlxn_gguf_writer_add_bool(w, "k.bool", 1));
    CHECK_ERR(mlxn_gguf_writer_add_bool(w, "k.bool", 0), MLXN_ERR_INVALID_ARG, "duplicate key 'k.bool'");
    int32_t ai[5] = {1, -2, 3, -4, 5};
    CHECK_OK(mlxn_gguf_writer_add_arr(w, "k.arr_i32", MLXN_GGUF_KV_I32, ai, 5));
    const char *strs[3] = {"hello", "", "w\xc3\xb6rld"};
    CHECK_OK(mlxn_gguf_writer_add_arr_str(w, "k.arr_str", strs, NULL, 3));
    /* nested: [[u16 1, 2], [string "x"]] as a raw payload */
    uint8_t nested[256];
    size_t n = 0;
    uint32_t t32;
    uint64_t c64;
    t32 = MLXN_GGUF_KV_ARRAY; memcpy(nested + n, &t32, 4); n += 4;
    c64 = 2; memcpy(nested + n, &c64, 8); n += 8;
    t32 = MLXN_GGUF_KV_U16; memcpy(nested + n, &t32, 4); n += 4;
    c64 = 2; memcpy(nested + n, &c64, 8); n += 8;
    uint16_t u16s[2] = {1, 2}; memcpy(nested + n, u16s, 4); n += 4;
    t32 = MLXN_GGUF_KV_STRING; memcpy(nested + n, &t32, 4); n += 4;
    c64 = 1; memcpy(nested + n, &c64, 8); n += 8;
    c64 = 1; memcpy(nested + n, &c64, 8); n += 8;
    nested[n++] = 'x';
    CHECK_OK(mlxn_gguf_writer_add_raw(w, "k.nested", MLXN_GGUF_KV_ARRAY, nested, n));
    /* tensors: F32 [3, 5], Q4_0 [2, 64] (random blocks), F16 [7] */
    float f[15];
    for (int i = 0; i < 15; i++) f[i] = (float)i * 0.5f - 3.0f;
    int64_t s1[2] = {3, 5};
    CHECK_OK(mlxn_gguf_writer_add_tensor(w, "t.f32", MLXN_GGUF_F32, 2, s1, f, sizeof f));
    uint8_t q[2 * 2 * 18];
    for (size_t i = 0; i < sizeof q; i++) q[i] = (uint8_t)(i * 37 + 11);
    int64_t s2[2] = {2, 64};
    CHECK_OK(mlxn_gguf_writer_add_tensor(w, "t.q4_0", MLXN_GGUF_Q4_0, 2, s2, q, sizeof q));
    int64_t s_bad[2] = {2, 63};
    CHECK_ERR(mlxn_gguf_writer_add_tensor(w, "t.bad", MLXN_GGUF_Q4_0, 2, s_bad, q, sizeof q), MLXN_ERR_INVALID_ARG,
              "row length 63 is not a multiple of the Q4_0 block size 32");
    CHECK_ERR(mlxn_gguf_writer_add_tensor(w, "t.f32", MLXN_GGUF_F32, 2, s1, f, sizeof f), MLXN_ERR_INVALID_ARG,
              "duplicate tensor name");
    uint16_t h[7] = {0x3c00, 0xc000, 1, 2, 3, 4, 5};
    int64_t s3[1] = {7};
    CHECK_OK(mlxn_gguf_writer_add_tensor(w, "t.f16", MLXN_GGUF_F16, 1, s3, h, sizeof h));
    CHECK_OK(mlxn_gguf_writer_write(w, tmp_path("rt.gguf")));
    mlxn_gguf_writer_free(w);

    mlxn_gguf *g = NULL;
    CHECK_OK(mlxn_gguf_open(tmp_path("rt.gguf"), &g));
    if (!g) return;
    CHECK(mlxn_gguf_version(g) == version);
    CHECK(mlxn_gguf_alignment(g) == (alignment ? alignment : 32));
    CHECK(mlxn_gguf_data_offset(g) % mlxn_gguf_alignment(g) == 0);
    CHECK(mlxn_gguf_n_kv(g) == 15 + (alignment && alignment != 32 ? 1 : 0));
    const char *s;
    uint64_t len;
    CHECK_OK(mlxn_gguf_get_str(g, "general.architecture", &s, &len));
    CHECK(strcmp(s, "llama") == 0 && len == 5);
    uint32_t u32;
    int32_t i32;
    uint64_t u64;
    int64_t i64;
    float f32;
    int b;
    CHECK_OK(mlxn_gguf_get_u32(g, "k.u8", &u32)); CHECK(u32 == 250);
    CHECK_OK(mlxn_gguf_get_i32(g, "k.i8", &i32)); CHECK(i32 == -7);
    CHECK_OK(mlxn_gguf_get_u32(g, "k.u16", &u32)); CHECK(u32 == 65000);
    CHECK_OK(mlxn_gguf_get_i32(g, "k.i16", &i32)); CHECK(i32 == -32000);
    CHECK_OK(mlxn_gguf_get_u32(g, "k.u32", &u32)); CHECK(u32 == 4000000000u);
    CHECK_OK(mlxn_gguf_get_i32(g, "k.i32", &i32)); CHECK(i32 == -5);
    CHECK_OK(mlxn_gguf_get_u64(g, "k.u64", &u64)); CHECK(u64 == UINT64_MAX - 1);
    CHECK_OK(mlxn_gguf_get_i64(g, "k.i64", &i64)); CHECK(i64 == INT64_MIN + 1);
    CHECK_OK(mlxn_gguf_get_f32(g, "k.f32", &f32)); CHECK(f32 == 1.25f);
    CHECK_OK(mlxn_gguf_get_f32(g, "k.f64", &f32)); CHECK(f32 == -3.5f);
    CHECK_OK(mlxn_gguf_get_f32(g, "k.i32", &f32)); CHECK(f32 == -5.0f);
    CHECK_OK(mlxn_gguf_get_bool(g, "k.bool", &b)); CHECK(b == 1);
    /* conversions that do not fit / wrong types */
    CHECK_ERR(mlxn_gguf_get_i32(g, "k.u32", &i32), MLXN_ERR_RANGE, "key 'k.u32' value 4000000000 does not fit i32");
    CHECK_ERR(mlxn_gguf_get_u32(g, "k.i8", &u32), MLXN_ERR_RANGE, "value -7 does not fit u32");
    CHECK_ERR(mlxn_gguf_get_u32(g, "k.u64", &u32), MLXN_ERR_RANGE, "does not fit u32");
    CHECK_ERR(mlxn_gguf_get_u32(g, "general.architecture", &u32), MLXN_ERR_FORMAT,
              "key 'general.architecture' has type string, expected u32");
    CHECK_ERR(mlxn_gguf_get_str(g, "k.u8", &s, NULL), MLXN_ERR_FORMAT, "key 'k.u8' has type u8, expected string");
    CHECK_ERR(mlxn_gguf_get_bool(g, "k.u8", &b), MLXN_ERR_FORMAT, "expected bool");
    CHECK_ERR(mlxn_gguf_get_u32(g, "missing.key", &u32), MLXN_ERR_NOT_FOUND, "key 'missing.key' not found");
    CHECK(mlxn_gguf_find_key(g, "missing.key") == -1);
    /* arrays */
    mlxn_gguf_kv_type et;
    const void *data;
    CHECK_OK(mlxn_gguf_get_arr(g, "k.arr_i32", &et, &len, &data));
    CHECK(et == MLXN_GGUF_KV_I32 && len == 5 && data && memcmp(data, ai, sizeof ai) == 0);
    CHECK_OK(mlxn_gguf_get_arr(g, "k.arr_str", &et, &len, &data));
    CHECK(et == MLXN_GGUF_KV_STRING && len == 3 && data == NULL);
    for (int i = 0; i < 3; i++) {
        uint64_t l;
        CHECK_OK(mlxn_gguf_get_arr_str(g, "k.arr_str", (uint64_t)i, &s, &l));
        CHECK(l == strlen(strs[i]) && memcmp(s, strs[i], l) == 0);
    }
    CHECK_ERR(mlxn_gguf_get_arr_str(g, "k.arr_str", 3, &s, &len), MLXN_ERR_RANGE, "index 3 out of range (3 strings)");
    CHECK_ERR(mlxn_gguf_get_arr_str(g, "k.arr_i32", 0, &s, &len), MLXN_ERR_FORMAT, "is not an array of strings");
    CHECK_ERR(mlxn_gguf_get_arr(g, "k.u8", &et, &len, &data), MLXN_ERR_FORMAT, "expected array");
    CHECK_OK(mlxn_gguf_get_arr(g, "k.nested", &et, &len, &data));
    CHECK(et == MLXN_GGUF_KV_ARRAY && len == 2 && data == NULL);
    CHECK_OK(mlxn_gguf_get_arr_arr(g, "k.nested", 0, &et, &len, &data));
    CHECK(et == MLXN_GGUF_KV_U16 && len == 2 && data && memcmp(data, u16s, 4) == 0);
    CHECK_OK(mlxn_gguf_get_arr_arr(g, "k.nested", 1, &et, &len, &data));
    CHECK(et == MLXN_GGUF_KV_STRING && len == 1 && data == NULL);
    /* tensors: shapes come back outermost first */
    CHECK(mlxn_gguf_n_tensors(g) == 3);
    mlxn_gguf_tensor_info ti;
    CHECK_OK(mlxn_gguf_tensor(g, mlxn_gguf_find_tensor(g, "t.f32"), &ti));
    CHECK(ti.type == MLXN_GGUF_F32 && ti.n_dims == 2 && ti.shape[0] == 3 && ti.shape[1] == 5 && ti.nbytes == 60);
    t_check_bytes("t.f32", ti.data, f, sizeof f);
    CHECK(((uintptr_t)ti.data - (uintptr_t)mlxn_gguf_base(g)) % mlxn_gguf_alignment(g) == 0);
    CHECK_OK(mlxn_gguf_tensor(g, mlxn_gguf_find_tensor(g, "t.q4_0"), &ti));
    CHECK(ti.type == MLXN_GGUF_Q4_0 && ti.shape[0] == 2 && ti.shape[1] == 64 && ti.nbytes == sizeof q);
    t_check_bytes("t.q4_0", ti.data, q, sizeof q);
    CHECK(ti.offset % mlxn_gguf_alignment(g) == 0);
    CHECK_OK(mlxn_gguf_tensor(g, mlxn_gguf_find_tensor(g, "t.f16"), &ti));
    CHECK(ti.type == MLXN_GGUF_F16 && ti.n_dims == 1 && ti.shape[0] == 7);
    t_check_bytes("t.f16", ti.data, h, sizeof h);
    CHECK(mlxn_gguf_find_tensor(g, "nope") == -1);
    CHECK_ERR(mlxn_gguf_tensor(g, 3, &ti), MLXN_ERR_RANGE, "tensor index 3 out of range");
    mlxn_gguf_close(g);
}

static void test_round_trip_v3(void) { round_trip(3, 0); }
static void test_round_trip_v2_align64(void) { round_trip(2, 64); }

static float *read_expected(mlxn_st *st, const char *name, int64_t *n) {
    int64_t i = mlxn_st_find(st, name);
    mlxn_st_tensor_info ti;
    if (i < 0 || mlxn_st_tensor(st, i, &ti) != MLXN_OK) return NULL;
    *n = (int64_t)(ti.nbytes / 4);
    float *f = malloc(ti.nbytes ? ti.nbytes : 4);
    memcpy(f, ti.data, ti.nbytes);
    return f;
}

/* File written by the Python gguf package (scripts/make_io_fixtures.py). */
static void test_python_file(void) {
    mlxn_gguf *g = NULL;
    CHECK_OK(mlxn_gguf_open(t_data_path("io/py_gguf.gguf"), &g));
    if (!g) return;
    CHECK(mlxn_gguf_version(g) == 3);
    uint32_t u32;
    int32_t i32;
    uint64_t u64, len;
    int64_t i64;
    float f32;
    int b;
    const char *s;
    CHECK_OK(mlxn_gguf_get_str(g, "general.architecture", &s, NULL)); CHECK(strcmp(s, "llama") == 0);
    CHECK_OK(mlxn_gguf_get_u32(g, "t.u8", &u32)); CHECK(u32 == 200);
    CHECK_OK(mlxn_gguf_get_i32(g, "t.i8", &i32)); CHECK(i32 == -100);
    CHECK_OK(mlxn_gguf_get_u32(g, "t.u16", &u32)); CHECK(u32 == 60000);
    CHECK_OK(mlxn_gguf_get_i32(g, "t.i16", &i32)); CHECK(i32 == -30000);
    CHECK_OK(mlxn_gguf_get_u32(g, "t.u32", &u32)); CHECK(u32 == 4000000000u);
    CHECK_OK(mlxn_gguf_get_i32(g, "t.i32", &i32)); CHECK(i32 == -2000000000);
    CHECK_OK(mlxn_gguf_get_f32(g, "t.f32", &f32)); CHECK(f32 == 0.15625f);
    CHECK_OK(mlxn_gguf_get_bool(g, "t.bool", &b)); CHECK(b == 1);
    CHECK_OK(mlxn_gguf_get_str(g, "t.str", &s, &len)); CHECK(strcmp(s, "h\xc3\xa9llo w\xc3\xb6rld") == 0 && len == 13);
    CHECK_OK(mlxn_gguf_get_u64(g, "t.u64", &u64)); CHECK(u64 == (1ULL << 63) + 5);
    CHECK_OK(mlxn_gguf_get_i64(g, "t.i64", &i64)); CHECK(i64 == -(1LL << 62));
    CHECK_OK(mlxn_gguf_get_f32(g, "t.f64", &f32)); CHECK(fabsf(f32 - 2.7182817f) < 1e-6f);
    CHECK_OK(mlxn_gguf_get_u32(g, "llama.block_count", &u32)); CHECK(u32 == 2);
    CHECK_OK(mlxn_gguf_get_u32(g, "llama.embedding_length", &u32)); CHECK(u32 == 64);
    mlxn_gguf_kv_type et;
    const void *data;
    CHECK_OK(mlxn_gguf_get_arr(g, "t.arr_u32", &et, &len, &data));
    if (et == MLXN_GGUF_KV_U32 && len == 4) {
        uint32_t v[4];
        memcpy(v, data, 16);
        CHECK(v[0] == 1 && v[3] == 4000000000u);
    } else CHECK_MSG(0, "t.arr_u32: type %d count %llu", (int)et, (unsigned long long)len);
    CHECK_OK(mlxn_gguf_get_arr(g, "t.arr_i8", &et, &len, &data));
    CHECK(et == MLXN_GGUF_KV_I8 && len == 3 && ((const int8_t *)data)[2] == -3);
    CHECK_OK(mlxn_gguf_get_arr(g, "t.arr_f32", &et, &len, &data));
    CHECK(et == MLXN_GGUF_KV_F32 && len == 2);
    const char *want_s[4] = {"a", "", "\xc3\xbc" "n" "\xc3\xaf" "code", "<|im_start|>"};
    for (int i = 0; i < 4; i++) {
        CHECK_OK(mlxn_gguf_get_arr_str(g, "t.arr_str", (uint64_t)i, &s, &len));
        CHECK_MSG(len == strlen(want_s[i]) && memcmp(s, want_s[i], len) == 0, "t.arr_str[%d]", i);
    }
    CHECK_OK(mlxn_gguf_get_arr(g, "t.arr_nested", &et, &len, &data));
    CHECK(et == MLXN_GGUF_KV_ARRAY && len == 2);
    CHECK_OK(mlxn_gguf_get_arr_arr(g, "t.arr_nested", 1, &et, &len, &data));
    if (len == 3 && data) {
        int32_t v[3];
        memcpy(v, data, 12);
        CHECK(et == MLXN_GGUF_KV_I32 && v[0] == 3 && v[2] == 5);
    } else CHECK_MSG(0, "t.arr_nested[1] count %llu", (unsigned long long)len);
    CHECK_OK(mlxn_gguf_get_arr_arr(g, "t.arr_nested_str", 0, &et, &len, &data));
    CHECK(et == MLXN_GGUF_KV_STRING && len == 2 && data == NULL);

    /* tensors vs the gguf package's dequantization */
    mlxn_st *exp = NULL;
    CHECK_OK(mlxn_st_open(t_data_path("io/py_gguf_expected.safetensors"), &exp));
    struct { const char *name; mlxn_gguf_type type; int nd; int64_t shape[3]; } want[] = {
        {"f32_t", MLXN_GGUF_F32, 2, {4, 8}},      {"f16_t", MLXN_GGUF_F16, 2, {3, 32}},
        {"q4_0_t", MLXN_GGUF_Q4_0, 2, {2, 64}},   {"q4_1_t", MLXN_GGUF_Q4_1, 2, {2, 32}},
        {"q8_0_t", MLXN_GGUF_Q8_0, 2, {3, 32}},   {"q4_k_t", MLXN_GGUF_Q4_K, 2, {2, 256}},
        {"q6_k_t", MLXN_GGUF_Q6_K, 2, {1, 256}},  {"f32_3d", MLXN_GGUF_F32, 3, {2, 3, 4}},
    };
    CHECK(mlxn_gguf_n_tensors(g) == 8);
    for (size_t k = 0; k < sizeof want / sizeof want[0]; k++) {
        mlxn_gguf_tensor_info ti;
        int64_t idx = mlxn_gguf_find_tensor(g, want[k].name);
        CHECK_MSG(idx >= 0, "tensor %s missing", want[k].name);
        if (idx < 0) continue;
        CHECK_OK(mlxn_gguf_tensor(g, idx, &ti));
        CHECK_MSG(ti.type == want[k].type && ti.n_dims == want[k].nd, "%s: type %d n_dims %d", want[k].name, (int)ti.type,
                  ti.n_dims);
        int64_t numel = 1;
        for (int d = 0; d < want[k].nd; d++) {
            CHECK_MSG(ti.shape[d] == want[k].shape[d], "%s: shape[%d] = %lld, want %lld", want[k].name, d,
                      (long long)ti.shape[d], (long long)want[k].shape[d]);
            numel *= want[k].shape[d];
        }
        if (!exp) continue;
        int64_t ne = 0;
        float *ref = read_expected(exp, want[k].name, &ne);
        CHECK_MSG(ref && ne == numel, "%s: expected data missing", want[k].name);
        if (!ref || ne != numel) { free(ref); continue; }
        float *got = malloc((size_t)numel * sizeof(float));
        if (ti.type == MLXN_GGUF_F32) memcpy(got, ti.data, (size_t)numel * 4);
        else CHECK_OK(mlxn_gguf_dequantize(ti.type, ti.data, numel, got));
        t_check_nmse(want[k].name, got, ref, (size_t)numel, 0.0);
        free(got);
        free(ref);
    }
    mlxn_st_close(exp);
    mlxn_gguf_close(g);
}

typedef struct bad_case {
    const char *file;
    mlxn_status code;
    const char *msg;
} bad_case;

static const bad_case k_bad[] = {
    {"gg_bad_magic.gguf", MLXN_ERR_FORMAT, "bad magic (not a GGUF file)"},
    {"gg_truncated.gguf", MLXN_ERR_FORMAT, "truncated: metadata key needs"},
    {"gg_version1.gguf", MLXN_ERR_UNSUPPORTED, "version 1 is not supported"},
    {"gg_version_bigendian.gguf", MLXN_ERR_UNSUPPORTED, "big-endian file?"},
    {"gg_ndims5.gguf", MLXN_ERR_FORMAT, "tensor 'blk.0.attn_q.weight' n_dims 5 > 4"},
    {"gg_dims_overflow.gguf", MLXN_ERR_FORMAT, "tensor 'a': shape [1099511627776, 1099511627776, 1099511627776]: dims product overflows"},
    {"gg_dim_negative.gguf", MLXN_ERR_FORMAT, "tensor 'a' dim 0 = 18446744073709551612 is negative or too large"},
    {"gg_unknown_type.gguf", MLXN_ERR_UNSUPPORTED, "tensor 'a': unknown ggml type 99"},
    {"gg_unknown_kv_type.gguf", MLXN_ERR_FORMAT, "key 'x': unknown value type 13"},
    {"gg_tensor_past_eof.gguf", MLXN_ERR_FORMAT, "tensor 'a' data [0, 1024) runs past the end of the file (data section holds 64 bytes)"},
    {"gg_overlap.gguf", MLXN_ERR_FORMAT, "tensor 'b' data at 32 overlaps tensor 'a' ending at 64"},
    {"gg_misaligned_offset.gguf", MLXN_ERR_FORMAT, "tensor 'a' offset 4 is not a multiple of the alignment 32"},
    {"gg_duplicate_tensor.gguf", MLXN_ERR_FORMAT, "duplicate tensor name 'a'"},
    {"gg_duplicate_key.gguf", MLXN_ERR_FORMAT, "duplicate metadata key 'general.architecture'"},
    {"gg_huge_kv_count.gguf", MLXN_ERR_FORMAT, "metadata count 1152921504606846976 exceeds what the file can hold"},
    {"gg_huge_tensor_count.gguf", MLXN_ERR_FORMAT, "tensor count 1152921504606846976 exceeds what the file can hold"},
    {"gg_string_past_eof.gguf", MLXN_ERR_FORMAT, "truncated: string value needs 1099511627776 bytes"},
    {"gg_nested_too_deep.gguf", MLXN_ERR_FORMAT, "key 'deep': arrays nested deeper than 16"},
    {"gg_bad_alignment.gguf", MLXN_ERR_FORMAT, "general.alignment 3 is not a power of two"},
    {"gg_row_not_multiple.gguf", MLXN_ERR_FORMAT, "tensor 'a': row length 33 is not a multiple of the Q4_0 block size 32"},
    {"gg_array_past_eof.gguf", MLXN_ERR_FORMAT, "truncated: array data needs"},
    {"gg_bad_utf8_name.gguf", MLXN_ERR_FORMAT, "tensor 0 name is not valid UTF-8"},
    {"gg_nul_in_key.gguf", MLXN_ERR_FORMAT, "metadata key 0 contains a NUL byte"},
};

static void test_bad_files(void) {
    for (size_t i = 0; i < sizeof k_bad / sizeof k_bad[0]; i++) {
        char rel[256];
        snprintf(rel, sizeof rel, "bad/%s", k_bad[i].file);
        const char *path = t_data_path(rel);
        mlxn_gguf *g = (mlxn_gguf *)0x1;
        mlxn_status s = mlxn_gguf_open(path, &g);
        CHECK_MSG(s == k_bad[i].code, "%s: got %s, expected %s (%s)", k_bad[i].file, mlxn_status_name(s),
                  mlxn_status_name(k_bad[i].code), mlxn_last_error());
        CHECK_MSG(t_contains(mlxn_last_error(), k_bad[i].msg), "%s: message '%s' lacks '%s'", k_bad[i].file,
                  mlxn_last_error(), k_bad[i].msg);
        CHECK_MSG(t_contains(mlxn_last_error(), path), "%s: message '%s' does not name the file", k_bad[i].file,
                  mlxn_last_error());
        CHECK(g == NULL);
        if (s == MLXN_OK) mlxn_gguf_close(g);
    }
    mlxn_gguf *g = NULL;
    CHECK_ERR(mlxn_gguf_open(tmp_path("missing.gguf"), &g), MLXN_ERR_NOT_FOUND, "missing.gguf");
}

/* Every strict prefix of valid files must fail with an error (no crash). */
static void test_truncations(void) {
    const char *files[] = {"io/py_gguf.gguf"};
    for (int f = 0; f < 1; f++) {
        size_t len = 0;
        uint8_t *buf = t_read_file(t_data_path(files[f]), &len);
        CHECK_MSG(buf != NULL, "cannot read %s", files[f]);
        if (!buf) continue;
        int bad = 0;
        for (size_t n = 0; n < len; n++) {
            uint8_t *copy = malloc(n ? n : 1);
            memcpy(copy, buf, n);
            mlxn_gguf *g = NULL;
            if (mlxn_gguf_open_memory(copy, n, &g) == MLXN_OK) {
                bad++;
                mlxn_gguf_close(g);
            }
            free(copy);
        }
        CHECK_MSG(bad == 0, "%s: %d truncated prefixes opened successfully", files[f], bad);
        /* single-byte corruptions anywhere in the header: never crash */
        mlxn_gguf *g = NULL;
        CHECK_OK(mlxn_gguf_open_memory(buf, len, &g));
        size_t hdr = g ? (size_t)mlxn_gguf_data_offset(g) : 0;
        mlxn_gguf_close(g);
        int opened = 0;
        for (size_t i = 0; i < hdr; i++) {
            uint8_t *copy = malloc(len);
            memcpy(copy, buf, len);
            copy[i] ^= 0xA5;
            if (mlxn_gguf_open_memory(copy, len, &g) == MLXN_OK) {
                opened++;
                for (int64_t t = 0; t < mlxn_gguf_n_tensors(g); t++) {
                    mlxn_gguf_tensor_info ti;
                    if (mlxn_gguf_tensor(g, t, &ti) == MLXN_OK && ti.nbytes)
                        (void)((const volatile uint8_t *)ti.data)[ti.nbytes - 1]; /* in bounds (ASan) */
                }
                mlxn_gguf_close(g);
            }
            free(copy);
        }
        printf("  %zu header-byte corruptions: %d still open (values changed), none crashed\n", hdr, opened);
        free(buf);
    }
}

static const char *default_model(void) {
    static char buf[1024];
    const char *e = getenv("MLXN_DEFAULT_MODEL");
    if (e && *e) return e;
    const char *c = getenv("MLXN_CACHE");
    const char *home = getenv("HOME");
    if (c && *c) snprintf(buf, sizeof buf, "%s/models/SmolLM2-135M-Instruct.Q4_1.gguf", c);
    else snprintf(buf, sizeof buf, "%s/.cache/mlxn/models/SmolLM2-135M-Instruct.Q4_1.gguf", home ? home : "");
    return buf;
}

static void test_smollm2(void) {
    const char *p = default_model();
    if (access(p, R_OK) != 0) {
        printf("  note: %s not present (run scripts/fetch_default_model.sh); skipping\n", p);
        return;
    }
    mlxn_gguf *g = NULL;
    CHECK_OK(mlxn_gguf_open(p, &g));
    if (!g) return;
    const char *s;
    uint32_t u;
    float f;
    CHECK_OK(mlxn_gguf_get_str(g, "general.architecture", &s, NULL));
    CHECK(strcmp(s, "llama") == 0);
    CHECK_OK(mlxn_gguf_get_u32(g, "llama.block_count", &u)); CHECK(u == 30);
    CHECK_OK(mlxn_gguf_get_u32(g, "llama.embedding_length", &u)); CHECK(u == 576);
    CHECK_OK(mlxn_gguf_get_u32(g, "llama.feed_forward_length", &u)); CHECK(u == 1536);
    CHECK_OK(mlxn_gguf_get_u32(g, "llama.attention.head_count", &u)); CHECK(u == 9);
    CHECK_OK(mlxn_gguf_get_u32(g, "llama.attention.head_count_kv", &u)); CHECK(u == 3);
    CHECK_OK(mlxn_gguf_get_f32(g, "llama.rope.freq_base", &f)); CHECK(f == 100000.0f);
    CHECK_OK(mlxn_gguf_get_str(g, "tokenizer.ggml.model", &s, NULL)); CHECK(strcmp(s, "gpt2") == 0);
    mlxn_gguf_kv_type et;
    uint64_t n, len;
    CHECK_OK(mlxn_gguf_get_arr(g, "tokenizer.ggml.tokens", &et, &n, NULL));
    CHECK(et == MLXN_GGUF_KV_STRING && n == 49152);
    CHECK_OK(mlxn_gguf_get_arr_str(g, "tokenizer.ggml.tokens", 1, &s, &len));
    CHECK(len == 12 && memcmp(s, "<|im_start|>", 12) == 0);
    CHECK_OK(mlxn_gguf_get_arr(g, "tokenizer.ggml.merges", &et, &n, NULL));
    CHECK(et == MLXN_GGUF_KV_STRING && n == 48900);
    CHECK(mlxn_gguf_n_tensors(g) == 272);
    mlxn_gguf_tensor_info ti;
    CHECK_OK(mlxn_gguf_tensor(g, mlxn_gguf_find_tensor(g, "token_embd.weight"), &ti));
    CHECK(ti.type == MLXN_GGUF_Q8_0 && ti.shape[0] == 49152 && ti.shape[1] == 576);
    CHECK_OK(mlxn_gguf_tensor(g, mlxn_gguf_find_tensor(g, "blk.0.ffn_down.weight"), &ti));
    CHECK(ti.type == MLXN_GGUF_Q4_1 && ti.shape[0] == 576 && ti.shape[1] == 1536);
    printf("  %s: v%u, %lld tensors, %lld kv, data at %llu\n", p, mlxn_gguf_version(g),
           (long long)mlxn_gguf_n_tensors(g), (long long)mlxn_gguf_n_kv(g), (unsigned long long)mlxn_gguf_data_offset(g));
    mlxn_gguf_close(g);
}

int main(void) {
    snprintf(g_tmp, sizeof g_tmp, "/tmp/mlxn_test_gguf_XXXXXX");
    if (!mkdtemp(g_tmp)) {
        fprintf(stderr, "mkdtemp failed\n");
        return 1;
    }
    T_RUN(test_round_trip_v3);
    T_RUN(test_round_trip_v2_align64);
    T_RUN(test_python_file);
    T_RUN(test_bad_files);
    T_RUN(test_truncations);
    T_RUN(test_smollm2);
    unlink(tmp_path("rt.gguf"));
    rmdir(g_tmp);
    return t_finish();
}
