/* json_util.h — small utilities shared by the file readers in src/io/: a
 * read-only file mapping (mmap with a stat'd size; zero-length files map to
 * nothing), loading a JSON file with jansson into a root value with an error
 * message that names the file, line and column, and typed JSON getters that
 * explain what they expected. None of these print; failures return an
 * mlxn_status with the message set. */
#ifndef MLXN_IO_JSON_UTIL_H
#define MLXN_IO_JSON_UTIL_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include "mlxn.h"

/* A read-only private mapping of a whole file. */
typedef struct mlxn_mapped_file {
    void *base;   /* NULL when size == 0 */
    size_t size;
} mlxn_mapped_file;

/* Map `path` read-only. `what` prefixes messages ("safetensors", "gguf").
 * MLXN_ERR_NOT_FOUND if the file does not exist, MLXN_ERR_IO otherwise. */
mlxn_status mlxn_map_file(const char *what, const char *path, mlxn_mapped_file *out);
void mlxn_unmap_file(mlxn_mapped_file *m);
/* Drop the pages of [p, p+n) from this process's resident set (the data is
 * re-read from the file on next access). Only whole pages inside the range
 * are affected; no-op on failure. */
void mlxn_map_drop_pages(const void *p, size_t n);

/* Load a JSON file (object or any value). MLXN_ERR_NOT_FOUND if missing,
 * MLXN_ERR_FORMAT with "<what> '<path>': line L column C: <reason>". */
mlxn_status mlxn_json_load_file(const char *what, const char *path, json_t **out);
/* Parse JSON text from memory with the same message style (label names it). */
mlxn_status mlxn_json_load_text(const char *what, const char *label, const char *text, size_t len, size_t flags,
                                json_t **out);

/* Integer member `key` of object `obj` (a JSON integer, or a real with an
 * integral value); returns 1 on success, 0 if absent or not an integer. */
int mlxn_json_get_int(const json_t *obj, const char *key, int64_t *out);
/* String member (NULL if absent or not a string). */
const char *mlxn_json_get_str(const json_t *obj, const char *key);

/* 1 if [s, s+n) is well-formed UTF-8 (no overlongs, no surrogates, <= U+10FFFF). */
int mlxn_utf8_valid(const char *s, size_t n);

/* Join a directory and a file name into a malloc'd path (NULL on OOM). */
char *mlxn_path_join(const char *dir, const char *name);
/* 1 if `path` is an existing regular file / directory. */
int mlxn_path_is_file(const char *path);
int mlxn_path_is_dir(const char *path);

#endif /* MLXN_IO_JSON_UTIL_H */
