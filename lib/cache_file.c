/*
 * cache_file.c - cache directory resolution and whole-file reads and
 * atomic writes (cache_file.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cache_file.h"

/* mkdir -p; @path is restored before returning. */
static int mkdir_p(char *path)
{
    for (char *p = path + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        int r = mkdir(path, 0755);
        *p = '/';
        if (r != 0 && errno != EEXIST)
            return -1;
    }
    if (mkdir(path, 0755) != 0 && errno != EEXIST)
        return -1;
    return access(path, W_OK | X_OK);
}

int kiln__cache_dir(char *buf, size_t n)
{
    const char *dir = getenv("KILN_CACHE_DIR");
    const char *xdg = getenv("XDG_CACHE_HOME");
    const char *home = getenv("HOME");
    int len = -1;
    if (n <= KILN_CACHE_NAME_MAX)
        goto none;
    if (dir && *dir)
        len = snprintf(buf, n, "%s", dir);
    else if (xdg && *xdg)
        len = snprintf(buf, n, "%s/kiln", xdg);
    else if (home && *home)
        len = snprintf(buf, n, "%s/.cache/kiln", home);
    /* No place for a cache, or a path too long to add file names to. */
    if (len <= 0 || (size_t)len >= n - KILN_CACHE_NAME_MAX)
        goto none;
    if (mkdir_p(buf) == 0)
        return 0;
none:
    if (n)
        buf[0] = '\0';
    return -1;
}

kiln_status kiln__write_file_atomic(const char *path, const void *data,
                                    size_t n)
{
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 8);
    FILE *f;
    int fd, ok;
    if (!tmp)
        return KILN_ERROR_BACKEND;
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".XXXXXX", 8);
    fd = mkstemp(tmp);
    if (fd < 0)
        goto fail_name;
    f = fdopen(fd, "wb");
    if (!f)
        goto fail_fd;
    ok = fwrite(data, 1, n, f) == n;
    ok = fclose(f) == 0 && ok; /* closes fd too */
    if (!ok || rename(tmp, path) != 0)
        goto fail_file;
    free(tmp);
    return KILN_OK;

fail_fd:
    close(fd);
fail_file:
    unlink(tmp);
fail_name:
    free(tmp);
    return KILN_ERROR_BACKEND;
}

void *kiln__read_file(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    void *data = NULL;
    long size;
    *n = 0;
    if (!f)
        return NULL;
    if (fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) <= 0 ||
        fseek(f, 0, SEEK_SET) != 0)
        goto out;
    data = malloc((size_t)size);
    if (data && fread(data, 1, (size_t)size, f) != (size_t)size) {
        free(data);
        data = NULL;
    }
    if (data)
        *n = (size_t)size;
out:
    fclose(f);
    return data;
}
