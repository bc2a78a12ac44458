/* test_safetensors.c — the safetensors reader and writer: a writer -> reader
 * round trip over every dtype (incl. 0-d and empty tensors, metadata, 8-byte
 * aligned data start, sorted names); files written by the Python
 * `safetensors` package and by MLX (unpadded header -> unaligned data);
 * the hand-made bad files in tests/data/bad (each with its exact error code
 * and message); every truncated prefix of a valid file (must fail cleanly). */
#include "io/safetensors.h"
#include "testutil.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char g_tmp[256];

static const char *tmp_path(const char *name) {
    static char buf[512];
    snprintf(buf, sizeof buf, "%s/%s", g_tmp, name);
    return buf;
}

static void test_round_trip(void) {
    mlxn_st_writer *w = NULL;
    CHECK_OK(mlxn_st_writer_create(&w));
    if (!w) return;
    /* one tensor of every dtype, sized element-size * 3 */
    static uint8_t data[MLXN_ST_DTYPE_COUNT][24];
    for (int d = 0; d < MLXN_ST_DTYPE_COUNT; d++) {
        for (int i = 0; i < 24; i++) data[d][i] = (uint8_t)(d * 31 + i * 7 + 1);
        char name[32];
        snprintf(name, sizeof name, "t_%s", mlxn_st_dtype_name((mlxn_st_dtype)d));
        int64_t shape[1] = {3};
        CHECK_OK(mlxn_st_writer_add(w, name, (mlxn_st_dtype)d, 1, shape, data[d]));
    }
    float scalar = 3.5f;
    CHECK_OK(mlxn_st_writer_add(w, "a_scalar", MLXN_ST_F32, 0, NULL, &scalar));
    int64_t e_shape[2] = {0, 7};
    CHECK_OK(mlxn_st_writer_add(w, "b_empty", MLXN_ST_F16, 2, e_shape, NULL));
    float m4[2 * 3 * 1 * 2];
    for (int i = 0; i < 12; i++) m4[i] = (float)i - 5.5f;
    int64_t s4[4] = {2, 3, 1, 2};
    CHECK_OK(mlxn_st_writer_add(w, "c_4d", MLXN_ST_F32, 4, s4, m4));
    /* writer-side errors */
    CHECK_ERR(mlxn_st_writer_add(w, "c_4d", MLXN_ST_F32, 4, s4, m4), MLXN_ERR_INVALID_ARG, "duplicate tensor name 'c_4d'");
    int64_t s5[5] = {1, 1, 1, 1, 1};
    CHECK_ERR(mlxn_st_writer_add(w, "x5", MLXN_ST_F32, 5, s5, m4), MLXN_ERR_INVALID_ARG, "ndim 5");
    CHECK_ERR(mlxn_st_writer_add(w, "__metadata__", MLXN_ST_F32, 0, NULL, m4), MLXN_ERR_INVALID_ARG, "invalid tensor name");
    CHECK_OK(mlxn_st_writer_set_metadata(w, "format", "pt"));
    CHECK_OK(mlxn_st_writer_set_metadata(w, "format", "mlx")); /* replaces */
    CHECK_OK(mlxn_st_writer_set_metadata(w, "quote\"key", "va\\lue\n"));
    CHECK_OK(mlxn_st_writer_write(w, tmp_path("rt.safetensors")));
    mlxn_st_writer_free(w);

    mlxn_st *st = NULL;
    CHECK_OK(mlxn_st_open(tmp_path("rt.safetensors"), &st));
    if (!st) return;
    CHECK((8 + mlxn_st_header_size(st)) % 8 == 0);
    CHECK(mlxn_st_n_tensors(st) == MLXN_ST_DTYPE_COUNT + 3);
    CHECK(mlxn_st_n_metadata(st) == 2);
    CHECK(mlxn_st_metadata_get(st, "format") && strcmp(mlxn_st_metadata_get(st, "format"), "mlx") == 0);
    CHECK(mlxn_st_metadata_get(st, "quote\"key") && strcmp(mlxn_st_metadata_get(st, "quote\"key"), "va\\lue\n") == 0);
    CHECK(mlxn_st_metadata_get(st, "nope") == NULL);
    /* sorted by name */
    for (int64_t i = 1; i < mlxn_st_n_tensors(st); i++) {
        mlxn_st_tensor_info a, b;
        CHECK_OK(mlxn_st_tensor(st, i - 1, &a));
        CHECK_OK(mlxn_st_tensor(st, i, &b));
        CHECK(strcmp(a.name, b.name) < 0);
    }
    for (int d = 0; d < MLXN_ST_DTYPE_COUNT; d++) {
        char name[32];
        snprintf(name, sizeof name, "t_%s", mlxn_st_dtype_name((mlxn_st_dtype)d));
        int64_t i = mlxn_st_find(st, name);
        CHECK_MSG(i >= 0, "tensor %s missing", name);
        if (i < 0) continue;
        mlxn_st_tensor_info ti;
        CHECK_OK(mlxn_st_tensor(st, i, &ti));
        CHECK(ti.dtype == (mlxn_st_dtype)d && strcmp(ti.dtype_name, mlxn_st_dtype_name((mlxn_st_dtype)d)) == 0);
        CHECK(ti.ndim == 1 && ti.shape[0] == 3);
        CHECK(ti.nbytes == 3 * mlxn_st_dtype_size((mlxn_st_dtype)d));
        t_check_bytes(name, ti.data, data[d], ti.nbytes);
    }
    mlxn_st_tensor_info ti;
    CHECK_OK(mlxn_st_tensor(st, mlxn_st_find(st, "a_scalar"), &ti));
    CHECK(ti.ndim == 0 && ti.nbytes == 4 && memcmp(ti.data, &scalar, 4) == 0);
    CHECK_OK(mlxn_st_tensor(st, mlxn_st_find(st, "b_empty"), &ti));
    CHECK(ti.ndim == 2 && ti.shape[0] == 0 && ti.shape[1] == 7 && ti.nbytes == 0);
    CHECK_OK(mlxn_st_tensor(st, mlxn_st_find(st, "c_4d"), &ti));
    CHECK(ti.ndim == 4 && ti.shape[0] == 2 && ti.shape[1] == 3 && ti.shape[2] == 1 && ti.shape[3] == 2);
    t_check_bytes("c_4d", ti.data, m4, sizeof m4);
    CHECK(mlxn_st_find(st, "zzz") == -1);
    CHECK_ERR(mlxn_st_tensor(st, 999, &ti), MLXN_ERR_RANGE, "out of range");
    /* a reader reference outlives close */
    mlxn_st_retain(st);
    mlxn_st_close(st);
    CHECK(mlxn_st_n_tensors(st) == MLXN_ST_DTYPE_COUNT + 3);
    mlxn_st_release(st);
}

static const mlxn_st_tensor_info *get(mlxn_st *st, const char *name, mlxn_st_tensor_info *ti) {
    int64_t i = mlxn_st_find(st, name);
    CHECK_MSG(i >= 0, "tensor '%s' not found", name);
    if (i < 0 || mlxn_st_tensor(st, i, ti) != MLXN_OK) return NULL;
    return ti;
}

/* File written by safetensors.numpy.save_file (scripts/make_io_fixtures.py). */
static void test_python_file(void) {
    mlxn_st *st = NULL;
    CHECK_OK(mlxn_st_open(t_data_path("io/py_safetensors.safetensors"), &st));
    if (!st) return;
    CHECK(mlxn_st_n_tensors(st) == 10);
    CHECK(mlxn_st_metadata_get(st, "note") && strcmp(mlxn_st_metadata_get(st, "note"), "fixture") == 0);
    mlxn_st_tensor_info ti;
    if (get(st, "c_i32", &ti)) {
        CHECK(ti.dtype == MLXN_ST_I32 && ti.ndim == 2 && ti.shape[0] == 2 && ti.shape[1] == 2);
        int32_t v[4], want[4] = {-2, -1, 0, 1};
        memcpy(v, ti.data, 16);
        t_check_bytes("c_i32", v, want, 16);
    }
    if (get(st, "e_i64", &ti)) {
        int64_t v[2];
        memcpy(v, ti.data, 16);
        CHECK(ti.dtype == MLXN_ST_I64 && v[0] == -(1LL << 40) && v[1] == 7);
    }
    if (get(st, "f_f64", &ti)) {
        double v[3];
        memcpy(v, ti.data, 24);
        CHECK(ti.dtype == MLXN_ST_F64 && v[0] == 1.5 && v[1] == -2.25 && v[2] == 3e10);
    }
    if (get(st, "g_bool", &ti)) {
        const uint8_t *b = ti.data;
        CHECK(ti.dtype == MLXN_ST_BOOL && ti.nbytes == 3 && b[0] == 1 && b[1] == 0 && b[2] == 1);
    }
    if (get(st, "h_empty", &ti)) CHECK(ti.ndim == 2 && ti.shape[0] == 0 && ti.shape[1] == 4 && ti.nbytes == 0);
    if (get(st, "i_scalar", &ti)) {
        float f;
        memcpy(&f, ti.data, 4);
        CHECK(ti.ndim == 0 && f == 2.5f);
    }
    if (get(st, "j_4d", &ti)) {
        CHECK(ti.ndim == 4 && ti.dtype == MLXN_ST_I16 && ti.shape[3] == 4);
        int16_t v[24];
        memcpy(v, ti.data, 48);
        int ok = 1;
        for (int i = 0; i < 24; i++) ok &= v[i] == i;
        CHECK(ok);
    }
    if (get(st, "d_u8", &ti)) CHECK(ti.dtype == MLXN_ST_U8 && ((const uint8_t *)ti.data)[4] == 4);
    mlxn_st_close(st);
}

/* File written by mx.save_safetensors with an odd data start: every tensor is
 * unaligned; values are checked against the f32 copies MLX wrote beside them. */
static void test_mlx_unaligned(void) {
    mlxn_st *st = NULL;
    CHECK_OK(mlxn_st_open(t_data_path("io/mlx_unaligned.safetensors"), &st));
    if (!st) return;
    CHECK((8 + mlxn_st_header_size(st)) % 2 == 1);
    CHECK(mlxn_st_metadata_get(st, "format") && strcmp(mlxn_st_metadata_get(st, "format"), "mlx") == 0);
    const char *pairs[3][2] = {{"x_bf16", "x_as_f32"}, {"y_f32", "y_as_f32"}, {"z_f16", "z_as_f32"}};
    for (int p = 0; p < 3; p++) {
        mlxn_st_tensor_info a, b;
        if (!get(st, pairs[p][0], &a) || !get(st, pairs[p][1], &b)) continue;
        int64_t n = 1;
        for (int d = 0; d < a.ndim; d++) n *= a.shape[d];
        CHECK(b.dtype == MLXN_ST_F32 && (int64_t)b.nbytes == n * 4);
        float got[16], ref[16];
        for (int64_t i = 0; i < n && i < 16; i++) {
            const uint8_t *e = (const uint8_t *)a.data + i * mlxn_st_dtype_size(a.dtype);
            uint16_t h;
            if (a.dtype == MLXN_ST_F32) memcpy(&got[i], e, 4);
            else {
                memcpy(&h, e, 2);
                got[i] = a.dtype == MLXN_ST_F16 ? mlxn_f16_to_f32(h) : mlxn_bf16_to_f32(h);
            }
            memcpy(&ref[i], (const uint8_t *)b.data + 4 * i, 4);
        }
        t_check_bytes(pairs[p][0], got, ref, (size_t)n * 4);
    }
    mlxn_st_close(st);
}

typedef struct bad_case {
    const char *file;
    mlxn_status code;
    const char *msg;
} bad_case;

static const bad_case k_bad[] = {
    {"st_truncated_header.safetensors", MLXN_ERR_FORMAT, "file size 5 is smaller than the 8-byte header length"},
    {"st_header_past_eof.safetensors", MLXN_ERR_FORMAT, "header length 123456 exceeds file size 15"},
    {"st_header_too_big.safetensors", MLXN_ERR_FORMAT, "header length 200000000 exceeds the 100 MB limit"},
    {"st_overlap.safetensors", MLXN_ERR_FORMAT, "tensor 'b' data_offsets [8, 16) overlap the previous tensor 'a' ending at 16"},
    {"st_gap.safetensors", MLXN_ERR_FORMAT, "gap in the data buffer: tensor 'b' starts at 12, expected 8"},
    {"st_size_mismatch.safetensors", MLXN_ERR_FORMAT, "tensor 'a': data_offsets span 12 bytes but shape [4] of F32 needs 16"},
    {"st_dims_overflow.safetensors", MLXN_ERR_FORMAT, "element count overflows"},
    {"st_5dims.safetensors", MLXN_ERR_UNSUPPORTED, "tensor 'a' has 5 dims > 4"},
    {"st_bad_utf8_name.safetensors", MLXN_ERR_FORMAT, "invalid JSON"},
    {"st_duplicate_name.safetensors", MLXN_ERR_FORMAT, "duplicate object key"},
    {"st_unknown_dtype.safetensors", MLXN_ERR_FORMAT, "tensor 'a': unknown dtype 'F12'"},
    {"st_trailing_data.safetensors", MLXN_ERR_FORMAT, "tensors cover 16 bytes of data but the data buffer holds 20"},
    {"st_not_json.safetensors", MLXN_ERR_FORMAT, "invalid JSON at line 1"},
    {"st_metadata_not_string.safetensors", MLXN_ERR_FORMAT, "__metadata__ value of 'format' is not a string"},
    {"st_negative_offset.safetensors", MLXN_ERR_FORMAT, "invalid data_offsets [-2, 0)"},
    {"st_offsets_past_eof.safetensors", MLXN_ERR_FORMAT, "tensors cover 16 bytes of data but the data buffer holds 8"},
};

static void test_bad_files(void) {
    for (size_t i = 0; i < sizeof k_bad / sizeof k_bad[0]; i++) {
        char rel[256];
        snprintf(rel, sizeof rel, "bad/%s", k_bad[i].file);
        const char *path = t_data_path(rel);
        mlxn_st *st = (mlxn_st *)0x1;
        mlxn_status s = mlxn_st_open(path, &st);
        CHECK_MSG(s == k_bad[i].code, "%s: got %s, expected %s (%s)", k_bad[i].file, mlxn_status_name(s),
                  mlxn_status_name(k_bad[i].code), mlxn_last_error());
        CHECK_MSG(t_contains(mlxn_last_error(), k_bad[i].msg), "%s: message '%s' lacks '%s'", k_bad[i].file,
                  mlxn_last_error(), k_bad[i].msg);
        CHECK_MSG(t_contains(mlxn_last_error(), path), "%s: message '%s' does not name the file", k_bad[i].file,
                  mlxn_last_error());
        CHECK(st == NULL);
        if (s == MLXN_OK) mlxn_st_close(st);
    }
    mlxn_st *st = NULL;
    CHECK_ERR(mlxn_st_open(tmp_path("does_not_exist.safetensors"), &st), MLXN_ERR_NOT_FOUND, "does_not_exist.safetensors");
    CHECK_ERR(mlxn_st_open(g_tmp, &st), MLXN_ERR_IO, "not a regular file");
}

/* Every strict prefix of a valid file must fail with a returned error. */
static void test_truncations(void) {
    const char *files[] = {"io/py_safetensors.safetensors", "io/mlx_unaligned.safetensors"};
    for (int f = 0; f < 2; f++) {
        size_t len = 0;
        uint8_t *buf = t_read_file(t_data_path(files[f]), &len);
        CHECK_MSG(buf != NULL, "cannot read %s", files[f]);
        if (!buf) continue;
        int bad = 0;
        for (size_t n = 0; n < len; n++) {
            uint8_t *copy = malloc(n ? n : 1); /* exact-size copy so ASan sees over-reads */
            memcpy(copy, buf, n);
            mlxn_st *st = NULL;
            mlxn_status s = mlxn_st_open_memory(copy, n, "prefix", &st);
            if (s == MLXN_OK) {
                bad++;
                mlxn_st_close(st);
            }
            free(copy);
        }
        CHECK_MSG(bad == 0, "%s: %d truncated prefixes opened successfully", files[f], bad);
        mlxn_st *st = NULL;
        CHECK_OK(mlxn_st_open_memory(buf, len, "full", &st));
        mlxn_st_close(st);
        free(buf);
    }
}

int main(void) {
    snprintf(g_tmp, sizeof g_tmp, "/tmp/mlxn_test_st_XXXXXX");
    if (!mkdtemp(g_tmp)) {
        fprintf(stderr, "mkdtemp failed\n");
        return 1;
    }
    T_RUN(test_round_trip);
    T_RUN(test_python_file);
    T_RUN(test_mlx_unaligned);
    T_RUN(test_bad_files);
    T_RUN(test_truncations);
    unlink(tmp_path("rt.safetensors"));
    rmdir(g_tmp);
    return t_finish();
}
