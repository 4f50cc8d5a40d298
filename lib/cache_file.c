/*
 * cache_file.c - cache directory resolution and whole-file reads and
 * atomic writes (cache_file.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
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

/* A hard-to-guess suffix for temporary names, without process-wide state:
 * time, process id, a stack address and the attempt, mixed (splitmix64). */
static uint32_t temp_suffix(const void *where, int attempt)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t z = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 30) ^
                 ((uint64_t)getpid() << 40) ^ (uint64_t)(uintptr_t)where ^
                 (uint64_t)attempt * 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return (uint32_t)(z ^ (z >> 31));
}

int kiln__atomic_begin(kiln_atomic_file *af, const char *path, int mode)
{
    size_t plen = strlen(path);
    int fd = -1;
    af->f = NULL;
    af->path = path;
    af->tmp = malloc(plen + 16);
    if (!af->tmp) {
        errno = ENOMEM;
        return -1;
    }
    /* O_EXCL rather than mkstemp so that the umask applies to @mode. */
    for (int attempt = 0; fd < 0 && attempt < 100; attempt++) {
        snprintf(af->tmp, plen + 16, "%s.tmp-%08x", path,
                 (unsigned)temp_suffix(&fd, attempt));
        fd = open(af->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
        if (fd < 0 && errno != EEXIST)
            break;
    }
    if (fd >= 0 && (af->f = fdopen(fd, "wb")) != NULL)
        return 0;
    int err = errno;
    if (fd >= 0) {
        close(fd);
        unlink(af->tmp);
    }
    free(af->tmp);
    af->tmp = NULL;
    errno = err;
    return -1;
}

void kiln__atomic_abort(kiln_atomic_file *af)
{
    int err = errno;
    if (af->f)
        fclose(af->f);
    if (af->tmp)
        unlink(af->tmp);
    free(af->tmp);
    af->f = NULL;
    af->tmp = NULL;
    errno = err;
}

/* fsync of the directory holding @path, so the rename itself is durable.
 * Best effort: the new file is already in place when this runs. */
static void sync_dir(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *dir = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path))
                      : strdup(".");
    int fd = dir ? open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
    free(dir);
}

int kiln__atomic_commit(kiln_atomic_file *af, int durable, const char **step)
{
    FILE *f = af->f;
    af->f = NULL;
    errno = 0;
    *step = "write";
    if (ferror(f) || fflush(f) != 0)
        goto fail;
    *step = "fsync";
    if (durable && fsync(fileno(f)) != 0)
        goto fail;
    *step = "close";
    if (fclose(f) != 0) {
        f = NULL;
        goto fail;
    }
    f = NULL;
    *step = "rename";
    if (rename(af->tmp, af->path) != 0)
        goto fail;
    free(af->tmp);
    af->tmp = NULL;
    if (durable)
        sync_dir(af->path);
    return 0;

fail:
    if (errno == 0) /* an earlier fwrite failed; its errno is gone */
        errno = EIO;
    af->f = f;
    kiln__atomic_abort(af);
    return -1;
}

kiln_status kiln__write_file_atomic(const char *path, const void *data,
                                    size_t n)
{
    kiln_atomic_file af;
    const char *step;
    /* 0600: cache files are private, as they were with mkstemp. */
    if (kiln__atomic_begin(&af, path, 0600) != 0)
        return KILN_ERROR_BACKEND;
    if (fwrite(data, 1, n, af.f) != n) {
        kiln__atomic_abort(&af);
        return KILN_ERROR_BACKEND;
    }
    /* Not durable: a cache lost in a crash is rebuilt, and fsync is slow. */
    return kiln__atomic_commit(&af, 0, &step) == 0 ? KILN_OK
                                                   : KILN_ERROR_BACKEND;
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
