/*
 * cache_file.h - the on-disk cache directory and its files, shared by the
 * OpenCL program cache and the Vulkan pipeline cache.
 *
 * The directory is $KILN_CACHE_DIR, else $XDG_CACHE_HOME/kiln, else
 * $HOME/.cache/kiln.  Caches only save time: every failure here means "no
 * cache", so these functions record no error message on the context.
 */
#ifndef KILN_CACHE_FILE_H
#define KILN_CACHE_FILE_H

#include <stddef.h>
#include <stdio.h>

#include "kiln.h"

/** Room a caller must leave after the directory for a file name. */
#define KILN_CACHE_NAME_MAX 128

/**
 * Resolves the cache directory into @buf (@n bytes), creating it and its
 * parents.  Returns 0 when @buf holds a writable directory whose path
 * leaves at least KILN_CACHE_NAME_MAX bytes free in @buf, else -1 with
 * @buf set to "".
 */
int kiln__cache_dir(char *buf, size_t n);

/**
 * Writes @n bytes to @path through a unique temporary file in the same
 * directory and a rename, so a reader (another process too) sees either
 * the old file or the whole new one.  Returns KILN_OK, or
 * KILN_ERROR_BACKEND after removing the temporary file.
 */
kiln_status kiln__write_file_atomic(const char *path, const void *data,
                                    size_t n);

/**
 * A file being written through a temporary file beside its final path
 * (kiln__atomic_begin / _commit / _abort).  Checkpoints use it directly
 * because they stream tensors and need errno for their messages.
 */
typedef struct kiln_atomic_file {
    FILE *f;          /* the temporary file, open for writing             */
    char *tmp;        /* its path: @path + ".tmp-XXXXXXXX"                */
    const char *path; /* the final path (borrowed)                        */
} kiln_atomic_file;

/**
 * Creates a new temporary file (permissions @mode, less the umask) in the
 * directory of @path.  Returns 0, or -1 with errno set and @af cleared.
 */
int kiln__atomic_begin(kiln_atomic_file *af, const char *path, int mode);

/**
 * Flushes the file, fsyncs it when @durable (then the directory too, after
 * the rename), closes it and renames it over the final path.  Returns 0, or
 * -1 with errno set, *@step naming what failed ("write", "fsync",
 * "rename", ...) and the temporary file removed.  Either way @af is spent.
 */
int kiln__atomic_commit(kiln_atomic_file *af, int durable, const char **step);

/** Closes and removes the temporary file; errno is preserved. */
void kiln__atomic_abort(kiln_atomic_file *af);

/**
 * The whole of @path, malloc'd, its size in *@n.  NULL (and *@n = 0) when it
 * is missing, empty or unreadable, or memory runs out.
 */
void *kiln__read_file(const char *path, size_t *n);

#endif /* KILN_CACHE_FILE_H */
