/* json_util.c — file mapping, JSON loading with file-naming messages, and
 * small path helpers used by the safetensors, GGUF and model-directory
 * readers. */
#include "io/json_util.h"
#include "core/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

mlxn_status mlxn_map_file(const char *what, const char *path, mlxn_mapped_file *out) {
    out->base = NULL;
    out->size = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        return mlxn_set_error(e == ENOENT ? MLXN_ERR_NOT_FOUND : MLXN_ERR_IO, "%s '%s': cannot open: %s", what, path,
                              strerror(e));
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int e = errno;
        close(fd);
        return mlxn_set_error(MLXN_ERR_IO, "%s '%s': cannot stat: %s", what, path, strerror(e));
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return mlxn_set_error(MLXN_ERR_IO, "%s '%s': not a regular file", what, path);
    }
    if (sb.st_size < 0 || (uint64_t)sb.st_size > (uint64_t)SIZE_MAX) {
        close(fd);
        return mlxn_set_error(MLXN_ERR_IO, "%s '%s': file size %lld not mappable", what, path, (long long)sb.st_size);
    }
    size_t size = (size_t)sb.st_size;
    if (size == 0) {
        close(fd);
        return MLXN_OK;
    }
    void *p = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    if (p == MAP_FAILED)
        return mlxn_set_error(MLXN_ERR_IO, "%s '%s': mmap of %zu bytes failed: %s", what, path, size, strerror(e));
    out->base = p;
    out->size = size;
    return MLXN_OK;
}

void mlxn_unmap_file(mlxn_mapped_file *m) {
    if (m && m->base) munmap(m->base, m->size);
    if (m) {
        m->base = NULL;
        m->size = 0;
    }
}

void mlxn_map_drop_pages(const void *p, size_t n) {
    long ps = sysconf(_SC_PAGESIZE);
    if (ps <= 0 || !p || !n) return;
    uintptr_t a = (uintptr_t)p, e = a + n;
    uintptr_t a2 = (a + (uintptr_t)ps - 1) & ~((uintptr_t)ps - 1);
    uintptr_t e2 = e & ~((uintptr_t)ps - 1);
    if (e2 > a2) (void)madvise((void *)a2, e2 - a2, MADV_DONTNEED);
}

mlxn_status mlxn_json_load_text(const char *what, const char *label, const char *text, size_t len, size_t flags,
                                json_t **out) {
    json_error_t err;
    *out = NULL;
    json_t *root = json_loadb(text, len, flags, &err);
    if (!root)
        return mlxn_set_error(MLXN_ERR_FORMAT, "%s '%s': invalid JSON at line %d column %d: %s", what, label, err.line,
                              err.column, err.text);
    *out = root;
    return MLXN_OK;
}

mlxn_status mlxn_json_load_file(const char *what, const char *path, json_t **out) {
    mlxn_mapped_file m;
    *out = NULL;
    MLXN_TRY(mlxn_map_file(what, path, &m));
    mlxn_status st = mlxn_json_load_text(what, path, m.base ? (const char *)m.base : "", m.size, 0, out);
    mlxn_unmap_file(&m);
    return st;
}

int mlxn_json_get_int(const json_t *obj, const char *key, int64_t *out) {
    json_t *v = json_object_get(obj, key);
    if (json_is_integer(v)) {
        *out = (int64_t)json_integer_value(v);
        return 1;
    }
    if (json_is_real(v)) {
        double d = json_real_value(v);
        if (d >= -9.2e18 && d <= 9.2e18 && (double)(int64_t)d == d) {
            *out = (int64_t)d;
            return 1;
        }
    }
    return 0;
}

const char *mlxn_json_get_str(const json_t *obj, const char *key) {
    json_t *v = json_object_get(obj, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

char *mlxn_path_join(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    int slash = a > 0 && dir[a - 1] != '/';
    char *p = malloc(a + b + 2);
    if (!p) return NULL;
    memcpy(p, dir, a);
    if (slash) p[a++] = '/';
    memcpy(p + a, name, b + 1);
    return p;
}

int mlxn_path_is_file(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

int mlxn_path_is_dir(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

int mlxn_utf8_valid(const char *s, size_t n) {
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        unsigned c = p[i];
        if (c < 0x80) { i++; continue; }
        size_t len;
        unsigned min;
        if ((c & 0xe0) == 0xc0) { len = 2; c &= 0x1f; min = 0x80; }
        else if ((c & 0xf0) == 0xe0) { len = 3; c &= 0x0f; min = 0x800; }
        else if ((c & 0xf8) == 0xf0) { len = 4; c &= 0x07; min = 0x10000; }
        else return 0;
        if (n - i < len) return 0;
        for (size_t k = 1; k < len; k++) {
            if ((p[i + k] & 0xc0) != 0x80) return 0;
            c = (c << 6) | (p[i + k] & 0x3f);
        }
        if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff)) return 0;
        i += len;
    }
    return 1;
}
