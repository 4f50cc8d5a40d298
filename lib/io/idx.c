/*
 * idx.c - kiln_dataset_load_idx: MNIST-style IDX image and label files,
 * gzip-compressed or raw (zlib's gzread reads both, telling them apart
 * from the bytes).
 *
 * Format: a big-endian magic 0x0000TTNN (TT = 0x08, unsigned bytes; NN =
 * the number of dimensions), NN big-endian uint32 sizes, then the bytes,
 * row-major.  Images are 0x00000803 (count, rows, cols), labels
 * 0x00000801 (count).
 *
 * Nothing in the files is trusted: magics, sizes (the sample count times
 * the image size must stay below 2^31 values), the exact length of the
 * decompressed data (short is truncation, more is trailing garbage) and the
 * gzip stream itself (a stream cut short, even only its trailer, or a bad
 * CRC is corruption).  Buffers grow as data arrives rather than from the
 * header's claim, so a small damaged file cannot make us allocate gigabytes.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "internal.h"

#define CALL "kiln_dataset_load_idx"
/* Largest single gzread and the first buffer size for the body. */
#define READ_CHUNK (1u << 24)
/* Values in one data set: below 2^31, so int indexing and float sums of
 * counts stay safe everywhere downstream. */
#define MAX_VALUES ((uint64_t)1 << 31)

typedef struct idx_file {
    kiln_context *ctx;
    const char *path;
    gzFile gz;
    uint64_t pos;             /* decompressed bytes read so far           */
    uint32_t dims[3];
} idx_file;

/* A short or failed gzread: an I/O error, a damaged gzip stream, or a file
 * that simply ends too early. */
static kiln_status idx_short(idx_file *f, int r, uint64_t expected)
{
    int errnum = Z_OK;
    const char *msg = gzerror(f->gz, &errnum);
    /* zlib prefixes its message with the path, which ours already has. */
    size_t plen = strlen(f->path);
    if (strncmp(msg, f->path, plen) == 0 && strncmp(msg + plen, ": ", 2) == 0)
        msg += plen + 2;
    if (errnum == Z_ERRNO)
        return kiln__error(f->ctx, KILN_ERROR_IO, CALL ": cannot read %s: %s",
                           f->path, strerror(errno));
    if (r < 0 || errnum != Z_OK)
        return kiln__error(f->ctx, KILN_ERROR_CORRUPT,
                           CALL ": %s: damaged or truncated gzip data after "
                           "%llu bytes: %s", f->path,
                           (unsigned long long)f->pos, msg);
    return kiln__error(f->ctx, KILN_ERROR_CORRUPT,
                       CALL ": %s is truncated: %llu bytes, expected %llu",
                       f->path, (unsigned long long)f->pos,
                       (unsigned long long)expected);
}

/* Reads exactly @n bytes; @expected is the whole length, for messages. */
static kiln_status idx_read(idx_file *f, void *buf, size_t n,
                            uint64_t expected)
{
    size_t got = 0;
    while (got < n) {
        size_t want = n - got < READ_CHUNK ? n - got : READ_CHUNK;
        int r = gzread(f->gz, (char *)buf + got, (unsigned)want);
        if (r <= 0)
            return idx_short(f, r, expected);
        got += (size_t)r;
        f->pos += (uint64_t)r;
    }
    return KILN_OK;
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
           (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* Opens @f->path and reads its magic and @ndims sizes into f->dims. */
static kiln_status idx_open(idx_file *f, int ndims, const char *what)
{
    errno = 0;
    f->gz = gzopen(f->path, "rb");
    if (!f->gz)
        return kiln__error(f->ctx, errno ? KILN_ERROR_IO
                                         : KILN_ERROR_OUT_OF_HOST_MEMORY,
                           CALL ": cannot open %s: %s", f->path,
                           errno ? strerror(errno) : "out of memory");
    gzbuffer(f->gz, 1u << 17);
    uint8_t head[16];
    size_t head_len = 4 + 4 * (size_t)ndims;
    /* The magic first, so that a wrong kind of file is named as such. */
    kiln_status st = idx_read(f, head, 4, head_len);
    if (st)
        return st;
    uint32_t magic = be32(head), want = 0x00000800u | (uint32_t)ndims;
    if (magic != want)
        return kiln__error(f->ctx, KILN_ERROR_CORRUPT,
                           CALL ": %s: wrong magic 0x%08x, expected 0x%08x "
                           "(an IDX %s file)", f->path, magic, want, what);
    st = idx_read(f, head + 4, head_len - 4, head_len);
    if (st)
        return st;
    for (int i = 0; i < ndims; i++)
        f->dims[i] = be32(head + 4 + 4 * i);
    return KILN_OK;
}

/* Reads the @n data bytes that follow the header, then insists on the end
 * of the data (and, for gzip, an intact trailer). */
static kiln_status idx_body(idx_file *f, uint64_t n, uint8_t **out)
{
    uint64_t expected = f->pos + n;
    size_t cap = n < READ_CHUNK ? (size_t)n : READ_CHUNK, got = 0;
    uint8_t *buf = malloc(cap ? cap : 1);
    if (!buf)
        goto oom;
    while (got < n) {
        if (got == cap) {
            size_t ncap = n - cap < cap ? (size_t)n : 2 * cap;
            uint8_t *nb = realloc(buf, ncap);
            if (!nb)
                goto oom;
            buf = nb;
            cap = ncap;
        }
        kiln_status st = idx_read(f, buf + got, cap - got, expected);
        if (st) {
            free(buf);
            return st;
        }
        got = cap;
    }
    char extra;
    int r = gzread(f->gz, &extra, 1);
    int errnum = Z_OK;
    gzerror(f->gz, &errnum);
    if (r < 0 || errnum != Z_OK) {
        free(buf);
        return idx_short(f, r, expected);
    }
    if (r > 0) {
        free(buf);
        return kiln__error(f->ctx, KILN_ERROR_CORRUPT,
                           CALL ": %s: trailing bytes after the %llu the "
                           "header describes", f->path,
                           (unsigned long long)expected);
    }
    *out = buf;
    return KILN_OK;
oom:
    free(buf);
    return kiln__error(f->ctx, KILN_ERROR_OUT_OF_HOST_MEMORY,
                       CALL ": out of memory reading %s", f->path);
}

/* Header sizes that describe no real data set. */
static kiln_status idx_check_sizes(const idx_file *img, const idx_file *lab)
{
    uint64_t count = img->dims[0], rows = img->dims[1], cols = img->dims[2];
    if (count != lab->dims[0])
        return kiln__error(img->ctx, KILN_ERROR_CORRUPT,
                           CALL ": %s holds %llu images but %s holds %llu "
                           "labels", img->path, (unsigned long long)count,
                           lab->path, (unsigned long long)lab->dims[0]);
    if (count == 0 || rows == 0 || cols == 0)
        return kiln__error(img->ctx, KILN_ERROR_CORRUPT,
                           CALL ": %s: empty images (%llu x %llu x %llu)",
                           img->path, (unsigned long long)count,
                           (unsigned long long)rows, (unsigned long long)cols);
    /* rows * cols < 2^64; checking it first keeps count * it from
     * overflowing too. */
    if (rows * cols >= MAX_VALUES || count * (rows * cols) >= MAX_VALUES)
        return kiln__error(img->ctx, KILN_ERROR_CORRUPT,
                           CALL ": %s: absurd size %llu x %llu x %llu "
                           "(2^31 values at most)", img->path,
                           (unsigned long long)count, (unsigned long long)rows,
                           (unsigned long long)cols);
    return KILN_OK;
}

kiln_status kiln_dataset_load_idx(kiln_context *ctx, const char *images_path,
                                  const char *labels_path, kiln_dataset *out)
{
    if (!out || !images_path || !labels_path)
        return kiln__error(ctx, KILN_ERROR_INVALID_ARGUMENT,
                           CALL ": NULL %s", !out ? "out" : "path");
    memset(out, 0, sizeof *out);
    idx_file img = {.ctx = ctx, .path = images_path};
    idx_file lab = {.ctx = ctx, .path = labels_path};
    uint8_t *pixels = NULL, *labels = NULL;
    float *x = NULL;
    int32_t *y = NULL;
    kiln_status st = idx_open(&lab, 1, "ubyte label");
    if (!st)
        st = idx_open(&img, 3, "ubyte image");
    if (!st)
        st = idx_check_sizes(&img, &lab);
    if (st)
        goto cleanup;
    uint64_t count = img.dims[0], size = (uint64_t)img.dims[1] * img.dims[2];
    st = idx_body(&lab, count, &labels);
    if (!st)
        st = idx_body(&img, count * size, &pixels);
    if (st)
        goto cleanup;
    x = malloc(count * size * sizeof *x);
    y = malloc(count * sizeof *y);
    if (!x || !y) {
        st = kiln__error(ctx, KILN_ERROR_OUT_OF_HOST_MEMORY,
                         CALL ": out of memory for %llu images",
                         (unsigned long long)count);
        goto cleanup;
    }
    int max_label = 0;
    for (uint64_t i = 0; i < count; i++) {
        y[i] = labels[i];
        if (labels[i] > max_label)
            max_label = labels[i];
    }
    for (uint64_t i = 0; i < count * size; i++)
        x[i] = (float)pixels[i] / 255.0f; /* 255 -> exactly 1 */
    *out = (kiln_dataset){.count = (int64_t)count, .ndim = 3,
                          .shape = {1, img.dims[1], img.dims[2]},
                          .x = x, .y = y, .classes = max_label + 1};
    x = NULL;
    y = NULL;
cleanup:
    free(x);
    free(y);
    free(pixels);
    free(labels);
    if (img.gz)
        gzclose(img.gz);
    if (lab.gz)
        gzclose(lab.gz);
    return st;
}
