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
 * The whole of @path, malloc'd, its size in *@n.  NULL (and *@n = 0) when it
 * is missing, empty or unreadable, or memory runs out.
 */
void *kiln__read_file(const char *path, size_t *n);

#endif /* KILN_CACHE_FILE_H */
