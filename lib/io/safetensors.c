/*
 * safetensors.c - checkpoints in the safetensors format (kiln.h,
 * "Checkpoints"), readable by PyTorch and the safetensors libraries.
 *
 * Layout: an 8-byte little-endian header length N, N bytes of UTF-8 JSON
 * mapping each tensor name to {"dtype", "shape", "data_offsets": [begin,
 * end]} plus an optional "__metadata__" object of strings, then the data:
 * little-endian, row-major, tensors packed with no gaps, offsets relative
 * to the first byte after the header.
 *
 * Writing: header keys sorted by name (as the reference writer does), the
 * data ordered by element size (largest first) then name so that every
 * tensor starts aligned to its element size, the header padded with spaces
 * to a multiple of 8.  The file goes through a temporary file, fsync and a
 * rename (cache_file.h), so a failed save leaves the previous file alone.
 *
 * Reading trusts nothing: the header length, the JSON, every field, every
 * offset (in range, matching dtype size * element count, covering the data
 * exactly with no overlap or gap, as the reference reader demands).  Data
 * is read on load with pread, so opening a large file is cheap.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cache_file.h"
#include "internal.h"
#include "io/json.h"
#include "tensor.h"

/* The reference implementation's limit; a larger header is corruption. */
#define HEADER_MAX 100000000ull
/* More dimensions than any real tensor has: a damaged header. */
#define FILE_MAX_DIMS 64

typedef struct st_entry {
    char *name;
    char *dtype;          /* as written in the file ("F32", "BF16", ...)  */
    size_t elem;          /* its element size; 0 for a dtype Kiln does not
                             know (listed, refused on load)               */
    int ndim;
    int64_t *shape;
    uint64_t begin, end;  /* relative to the data section                 */
} st_entry;

struct kiln_tensor_file {
    kiln_context *ctx;    /* retained while the file is open              */
    int fd;
    char *path;
    uint64_t data_start;  /* 8 + N                                        */
    uint64_t data_size;
    int n;
    st_entry *e;          /* sorted by name                               */
    int nmeta;
    char **meta_keys, **meta_values;
};

static const struct {
    const char *name;
    size_t size;
} st_dtypes[] = {
    {"BOOL", 1}, {"U8", 1},  {"I8", 1},   {"F8_E5M2", 1}, {"F8_E4M3", 1},
    {"I16", 2},  {"U16", 2}, {"F16", 2},  {"BF16", 2},    {"I32", 4},
    {"U32", 4},  {"F32", 4}, {"F64", 8},  {"I64", 8},     {"U64", 8},
    {"C64", 8},
};

static size_t st_dtype_size(const char *name)
{
    for (size_t i = 0; i < sizeof st_dtypes / sizeof st_dtypes[0]; i++)
        if (strcmp(st_dtypes[i].name, name) == 0)
            return st_dtypes[i].size;
    return 0;
}

static const char *st_dtype_of(kiln_dtype d)
{
    return d == KILN_F32 ? "F32" : d == KILN_I32 ? "I32" : "F64";
}

/* The file is little-endian; swap in place on a big-endian host. */
static void to_little_endian(void *data, size_t bytes, size_t elem)
{
    const uint16_t probe = 1;
    if (*(const unsigned char *)&probe == 1 || elem < 2)
        return;
    unsigned char *p = data;
    for (size_t i = 0; i + elem <= bytes; i += elem)
        for (size_t a = i, b = i + elem - 1; a < b; a++, b--) {
            unsigned char t = p[a];
            p[a] = p[b];
            p[b] = t;
        }
}

/* ======================================================================== */
/* Reading                                                                  */
/* ======================================================================== */

/* pread of exactly @n bytes: 0, 1 at end of file, -1 with errno. */
static int read_at(int fd, uint64_t at, void *buf, size_t n)
{
    char *p = buf;
    while (n) {
        ssize_t r = pread(fd, p, n, (off_t)at);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -1;
        if (r == 0)
            return 1;
        p += r;
        at += (uint64_t)r;
        n -= (size_t)r;
    }
    return 0;
}

static void entry_free(st_entry *e)
{
    free(e->name);
    free(e->dtype);
    free(e->shape);
}

void kiln_tensor_file_close(kiln_tensor_file *f)
{
    if (!f)
        return;
    for (int i = 0; i < f->n; i++)
        entry_free(&f->e[i]);
    for (int i = 0; i < f->nmeta; i++) {
        free(f->meta_keys[i]);
        free(f->meta_values[i]);
    }
    free(f->e);
    free(f->meta_keys);
    free(f->meta_values);
    if (f->fd >= 0)
        close(f->fd);
    free(f->path);
    kiln__context_release(f->ctx);
    free(f);
}

#define CORRUPT(...) kiln__error(f->ctx, KILN_ERROR_CORRUPT, __VA_ARGS__)
#define OOM() \
    kiln__error(f->ctx, KILN_ERROR_OUT_OF_HOST_MEMORY, OPEN ": out of memory")
#define OPEN "kiln_safetensors_open"

static kiln_status parse_metadata(kiln_tensor_file *f, const kiln_json *m)
{
    if (m->type == KILN_JSON_NULL)
        return KILN_OK;
    if (m->type != KILN_JSON_OBJECT)
        return CORRUPT(OPEN ": %s: \"__metadata__\" is not an object",
                       f->path);
    f->meta_keys = calloc((size_t)m->n + 1, sizeof(char *));
    f->meta_values = calloc((size_t)m->n + 1, sizeof(char *));
    if (!f->meta_keys || !f->meta_values)
        return OOM();
    for (int i = 0; i < m->n; i++) {
        if (m->items[i].type != KILN_JSON_STRING)
            return CORRUPT(OPEN ": %s: metadata \"%.80s\" is not a string",
                           f->path, m->keys[i]);
        f->meta_keys[i] = strdup(m->keys[i]);
        f->meta_values[i] = strdup(m->items[i].str);
        f->nmeta++; /* counted now so that close frees them */
        if (!f->meta_keys[i] || !f->meta_values[i])
            return OOM();
    }
    return KILN_OK;
}

/* Reads "shape" into @e and returns its byte size in *@bytes (when the
 * dtype is known), refusing sizes that overflow 64 bits. */
static kiln_status parse_shape(kiln_tensor_file *f, st_entry *e,
                               const kiln_json *s, uint64_t *bytes)
{
    if (!s || s->type != KILN_JSON_ARRAY)
        return CORRUPT(OPEN ": %s: tensor \"%.80s\": \"shape\" is %s",
                       f->path, e->name, s ? "not an array" : "missing");
    if (s->n > FILE_MAX_DIMS)
        return CORRUPT(OPEN ": %s: tensor \"%.80s\" has %d dimensions",
                       f->path, e->name, s->n);
    e->shape = malloc(((size_t)s->n + 1) * sizeof *e->shape);
    if (!e->shape)
        return OOM();
    int zero = 0, overflow = 0;
    uint64_t size = e->elem;
    for (int i = 0; i < s->n; i++) {
        uint64_t d;
        const kiln_json *v = &s->items[i];
        if (kiln__json_uint(v, (uint64_t)INT64_MAX, &d) != 0)
            return CORRUPT(OPEN ": %s: tensor \"%.80s\": dimension %d (%.40s) "
                           "is not an integer from 0 to 2^63-1", f->path,
                           e->name, i,
                           v->type == KILN_JSON_NUMBER ? v->str : "not a number");
        e->shape[e->ndim++] = (int64_t)d;
        zero |= d == 0;
        if (d && size > UINT64_MAX / d)
            overflow = 1;
        else
            size *= d;
    }
    if (overflow && !zero)
        return CORRUPT(OPEN ": %s: tensor \"%.80s\": shape too large",
                       f->path, e->name);
    *bytes = zero ? 0 : size;
    return KILN_OK;
}

static kiln_status parse_entry(kiln_tensor_file *f, st_entry *e,
                               const char *name, const kiln_json *v)
{
    uint64_t bytes = 0, off[2];
    char shp[160];
    if (!(e->name = strdup(name)))
        return OOM();
    if (v->type != KILN_JSON_OBJECT)
        return CORRUPT(OPEN ": %s: tensor \"%.80s\" is not an object",
                       f->path, name);
    const kiln_json *dt = kiln__json_get(v, "dtype");
    if (!dt || dt->type != KILN_JSON_STRING)
        return CORRUPT(OPEN ": %s: tensor \"%.80s\": \"dtype\" is %s",
                       f->path, name, dt ? "not a string" : "missing");
    if (!(e->dtype = strdup(dt->str)))
        return OOM();
    e->elem = st_dtype_size(e->dtype);
    kiln_status s = parse_shape(f, e, kiln__json_get(v, "shape"), &bytes);
    if (s != KILN_OK)
        return s;
    const kiln_json *o = kiln__json_get(v, "data_offsets");
    if (!o || o->type != KILN_JSON_ARRAY || o->n != 2 ||
        kiln__json_uint(&o->items[0], UINT64_MAX, &off[0]) != 0 ||
        kiln__json_uint(&o->items[1], UINT64_MAX, &off[1]) != 0)
        return CORRUPT(OPEN ": %s: tensor \"%.80s\": \"data_offsets\" is %s",
                       f->path, name, o ? "not two non-negative integers"
                                        : "missing");
    e->begin = off[0];
    e->end = off[1];
    if (e->begin > e->end || e->end > f->data_size)
        return CORRUPT(OPEN ": %s: tensor \"%.80s\": data_offsets [%llu, "
                       "%llu] lie outside the %llu data bytes", f->path, name,
                       (unsigned long long)e->begin,
                       (unsigned long long)e->end,
                       (unsigned long long)f->data_size);
    if (e->elem && e->end - e->begin != bytes)
        return CORRUPT(OPEN ": %s: tensor \"%.80s\": data_offsets [%llu, "
                       "%llu] hold %llu bytes, but %s of shape %s needs %llu",
                       f->path, name, (unsigned long long)e->begin,
                       (unsigned long long)e->end,
                       (unsigned long long)(e->end - e->begin), e->dtype,
                       kiln__shape_string(e->ndim, e->shape, shp, sizeof shp),
                       (unsigned long long)bytes);
    return KILN_OK;
}

static int cmp_begin(const void *a, const void *b)
{
    const st_entry *x = *(st_entry *const *)a, *y = *(st_entry *const *)b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(((const st_entry *)a)->name, ((const st_entry *)b)->name);
}

/* The tensors must tile the data section exactly: no overlap, no gap. */
static kiln_status check_tiling(kiln_tensor_file *f)
{
    st_entry **by = malloc(((size_t)f->n + 1) * sizeof *by);
    kiln_status s = KILN_OK;
    uint64_t at = 0;
    if (!by)
        return OOM();
    for (int i = 0; i < f->n; i++)
        by[i] = &f->e[i];
    qsort(by, (size_t)f->n, sizeof *by, cmp_begin);
    for (int i = 0; i < f->n && s == KILN_OK; i++) {
        if (by[i]->begin != at)
            s = CORRUPT(OPEN ": %s: tensor \"%.80s\" starts at data byte %llu "
                        "where %llu was expected (%s)", f->path, by[i]->name,
                        (unsigned long long)by[i]->begin,
                        (unsigned long long)at,
                        by[i]->begin < at ? "tensors overlap" : "a gap");
        at = by[i]->end;
    }
    if (s == KILN_OK && at != f->data_size)
        s = CORRUPT(OPEN ": %s: the tensors cover %llu data bytes, the file "
                    "holds %llu after the header", f->path,
                    (unsigned long long)at, (unsigned long long)f->data_size);
    free(by);
    return s;
}

static kiln_status parse_header(kiln_tensor_file *f, const kiln_json *root)
{
    if (root->type != KILN_JSON_OBJECT)
        return CORRUPT(OPEN ": %s: the header is not a JSON object", f->path);
    f->e = calloc((size_t)root->n + 1, sizeof *f->e);
    if (!f->e)
        return OOM();
    for (int i = 0; i < root->n; i++) {
        kiln_status s;
        if (strcmp(root->keys[i], "__metadata__") == 0)
            s = parse_metadata(f, &root->items[i]);
        else
            s = parse_entry(f, &f->e[f->n++], root->keys[i],
                            &root->items[i]);
        if (s != KILN_OK)
            return s;
    }
    kiln_status s = check_tiling(f);
    qsort(f->e, (size_t)f->n, sizeof *f->e, cmp_name);
    return s;
}

/* Reads and parses the header of the open file @f. */
static kiln_status read_header(kiln_tensor_file *f, uint64_t file_size)
{
    unsigned char len8[8];
    char err[256];
    uint64_t n = 0;
    int r;
    if (file_size < 8)
        return CORRUPT(OPEN ": %s is %llu bytes, too short for the 8-byte "
                       "header length", f->path, (unsigned long long)file_size);
    if ((r = read_at(f->fd, 0, len8, 8)) != 0)
        goto read_error;
    for (int i = 7; i >= 0; i--)
        n = (n << 8) | len8[i];
    if (n > HEADER_MAX)
        return CORRUPT(OPEN ": %s: header length %llu is over the %llu-byte "
                       "limit", f->path, (unsigned long long)n, HEADER_MAX);
    if (n > file_size - 8)
        return CORRUPT(OPEN ": %s: header length %llu runs past the end of "
                       "the %llu-byte file", f->path, (unsigned long long)n,
                       (unsigned long long)file_size);
    f->data_start = 8 + n;
    f->data_size = file_size - f->data_start;
    char *text = malloc(n ? n : 1);
    if (!text)
        return kiln__error(f->ctx, KILN_ERROR_OUT_OF_HOST_MEMORY,
                           OPEN ": out of host memory for a %llu-byte header",
                           (unsigned long long)n);
    if ((r = read_at(f->fd, 8, text, n)) != 0) {
        free(text);
        goto read_error;
    }
    kiln_json *root = kiln__json_parse(text, n, err, sizeof err);
    free(text);
    if (!root)
        return CORRUPT(OPEN ": %s: bad JSON header (%llu bytes): %s", f->path,
                       (unsigned long long)n, err);
    kiln_status s = parse_header(f, root);
    kiln__json_free(root);
    return s;

read_error:
    return kiln__error(f->ctx, KILN_ERROR_IO, OPEN ": cannot read %s: %s",
                       f->path, r > 0 ? "unexpected end of file"
                                      : strerror(errno));
}

kiln_tensor_file *kiln_safetensors_open(kiln_context *ctx, const char *path)
{
    struct stat st;
    if (!ctx)
        return NULL;
    if (!path)
        return kiln__error_null(ctx, KILN_ERROR_INVALID_ARGUMENT,
                                OPEN ": path is NULL");
    kiln_tensor_file *f = calloc(1, sizeof *f);
    char *p = strdup(path);
    if (!f || !p) {
        free(f);
        free(p);
        return kiln__error_null(ctx, KILN_ERROR_OUT_OF_HOST_MEMORY,
                                OPEN ": out of host memory");
    }
    kiln__context_retain(ctx);
    f->ctx = ctx;
    f->path = p;
    /* O_NONBLOCK: a FIFO must not hang the open; no effect on files. */
    f->fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (f->fd < 0 || fstat(f->fd, &st) != 0) {
        kiln__error(ctx, KILN_ERROR_IO, OPEN ": cannot open %s: %s", path,
                    strerror(errno));
        goto fail;
    }
    if (!S_ISREG(st.st_mode)) {
        kiln__error(ctx, KILN_ERROR_IO, OPEN ": %s is not a regular file",
                    path);
        goto fail;
    }
    if (read_header(f, (uint64_t)st.st_size) != KILN_OK)
        goto fail;
    return f;

fail:
    kiln_tensor_file_close(f);
    return NULL;
}

#undef CORRUPT
#undef OOM

int kiln_tensor_file_count(const kiln_tensor_file *f)
{
    return f ? f->n : 0;
}

const char *kiln_tensor_file_name(const kiln_tensor_file *f, int i)
{
    return f && i >= 0 && i < f->n ? f->e[i].name : NULL;
}

const char *kiln_tensor_file_meta(const kiln_tensor_file *f, const char *key)
{
    if (!f || !key)
        return NULL;
    for (int i = 0; i < f->nmeta; i++)
        if (strcmp(f->meta_keys[i], key) == 0)
            return f->meta_values[i];
    return NULL;
}

/* The entry @name, recording an error naming @call when absent. */
static const st_entry *find_entry(kiln_tensor_file *f, const char *call,
                                  const char *name)
{
    st_entry key = {.name = (char *)name};
    const st_entry *e = NULL;
    if (!name)
        kiln__error(f->ctx, KILN_ERROR_INVALID_ARGUMENT, "%s: name is NULL",
                    call);
    else if (!(e = bsearch(&key, f->e, (size_t)f->n, sizeof *f->e, cmp_name)))
        kiln__error(f->ctx, KILN_ERROR_INVALID_ARGUMENT,
                    "%s: %s has no tensor named \"%.80s\"", call, f->path,
                    name);
    return e;
}

/* Can Kiln hold entry @e?  Its kiln dtype in *@dt. */
static kiln_status check_loadable(kiln_tensor_file *f, const char *call,
                                  const st_entry *e, kiln_dtype *dt)
{
    if (strcmp(e->dtype, "F32") == 0)
        *dt = KILN_F32;
    else if (strcmp(e->dtype, "I32") == 0)
        *dt = KILN_I32;
    else if (strcmp(e->dtype, "F64") == 0)
        *dt = KILN_F64;
    else
        return kiln__error(f->ctx, KILN_ERROR_DTYPE,
                           "%s: tensor \"%.80s\" in %s has dtype %.20s; Kiln "
                           "loads F32, I32 and F64", call, e->name, f->path,
                           e->dtype);
    if (e->ndim > KILN_MAX_DIMS)
        return kiln__error(f->ctx, KILN_ERROR_SHAPE,
                           "%s: tensor \"%.80s\" in %s has %d dimensions, "
                           "more than Kiln's %d", call, e->name, f->path,
                           e->ndim, KILN_MAX_DIMS);
    return KILN_OK;
}

/* The entry's bytes in host byte order, malloc'd. */
static void *read_entry(kiln_tensor_file *f, const char *call,
                        const st_entry *e)
{
    size_t bytes = (size_t)(e->end - e->begin);
    void *buf = malloc(bytes ? bytes : 1);
    if (!buf)
        return kiln__error_null(f->ctx, KILN_ERROR_OUT_OF_HOST_MEMORY,
                                "%s: out of host memory for %zu bytes", call,
                                bytes);
    int r = read_at(f->fd, f->data_start + e->begin, buf, bytes);
    if (r != 0) {
        free(buf);
        /* A file that shrank after it was opened and checked. */
        return kiln__error_null(f->ctx, r > 0 ? KILN_ERROR_CORRUPT
                                              : KILN_ERROR_IO,
                                "%s: cannot read tensor \"%.80s\" from %s: %s",
                                call, e->name, f->path,
                                r > 0 ? "the file is truncated"
                                      : strerror(errno));
    }
    to_little_endian(buf, bytes, e->elem);
    return buf;
}

kiln_tensor *kiln_tensor_file_load(kiln_tensor_file *f, const char *name)
{
    const char *call = "kiln_tensor_file_load";
    kiln_dtype dt;
    if (!f)
        return NULL;
    const st_entry *e = find_entry(f, call, name);
    if (!e || check_loadable(f, call, e, &dt) != KILN_OK)
        return NULL;
    void *data = read_entry(f, call, e);
    if (!data)
        return NULL;
    kiln_tensor *t = kiln__tensor_alloc(f->ctx, call, dt, e->ndim, e->shape);
    if (t && kiln_tensor_write(t, data, (size_t)(e->end - e->begin)) != KILN_OK) {
        kiln_tensor_free(t);
        t = NULL;
    }
    free(data);
    return t;
}

kiln_status kiln_tensor_file_load_into(kiln_tensor_file *f, const char *name,
                                       kiln_tensor *dst)
{
    const char *call = "kiln_tensor_file_load_into";
    char a[160], b[160];
    kiln_dtype dt;
    if (!f)
        return KILN_ERROR_INVALID_ARGUMENT;
    if (!dst) /* NULL propagates: keep an earlier error, else report it */
        return f->ctx->status != KILN_OK
                   ? f->ctx->status
                   : kiln__error(f->ctx, KILN_ERROR_INVALID_ARGUMENT,
                                 "%s: the destination tensor is NULL", call);
    const st_entry *e = find_entry(f, call, name);
    if (!e)
        return f->ctx->status;
    kiln_status s = check_loadable(f, call, e, &dt);
    if (s != KILN_OK)
        return s;
    int same = e->ndim == dst->ndim;
    for (int i = 0; same && i < e->ndim; i++)
        same = e->shape[i] == dst->shape[i];
    if (!same || dt != dst->dtype)
        return kiln__error(f->ctx, same ? KILN_ERROR_DTYPE : KILN_ERROR_SHAPE,
                           "%s: tensor \"%.80s\" in %s is %s of shape %s; the "
                           "destination is %s of shape %s", call, name,
                           f->path, e->dtype,
                           kiln__shape_string(e->ndim, e->shape, a, sizeof a),
                           st_dtype_of(dst->dtype),
                           kiln__shape_string(dst->ndim, dst->shape, b,
                                              sizeof b));
    void *data = read_entry(f, call, e);
    if (!data)
        return f->ctx->status;
    s = kiln_tensor_write(dst, data, (size_t)(e->end - e->begin));
    free(data);
    return s;
}

/* ======================================================================== */
/* Writing                                                                  */
/* ======================================================================== */

#define SAVE "kiln_safetensors_save"

typedef struct save_item {
    const char *name;
    kiln_tensor *t;
    uint64_t bytes, begin;
} save_item;

static int cmp_item_name(const void *a, const void *b)
{
    return strcmp(((const save_item *)a)->name, ((const save_item *)b)->name);
}

/* Data order: larger elements first (keeps every tensor aligned), then name. */
static int cmp_item_layout(const void *a, const void *b)
{
    const save_item *x = *(save_item *const *)a, *y = *(save_item *const *)b;
    size_t sx = kiln_dtype_size(x->t->dtype), sy = kiln_dtype_size(y->t->dtype);
    if (sx != sy)
        return sx > sy ? -1 : 1;
    return strcmp(x->name, y->name);
}

static int cmp_str_index(const void *a, const void *b)
{
    return strcmp(**(const char *const *const *)a,
                  **(const char *const *const *)b);
}

/* Checks one name or metadata string. */
static kiln_status check_string(kiln_context *ctx, const char *what, int i,
                                const char *s, int allow_empty)
{
    if (!s)
        return kiln__error(ctx, KILN_ERROR_INVALID_ARGUMENT,
                           SAVE ": %s %d is NULL", what, i);
    if (!allow_empty && !*s)
        return kiln__error(ctx, KILN_ERROR_INVALID_ARGUMENT,
                           SAVE ": %s %d is empty", what, i);
    if (!kiln__utf8_valid(s, strlen(s)))
        return kiln__error(ctx, KILN_ERROR_INVALID_ARGUMENT,
                           SAVE ": %s %d is not valid UTF-8", what, i);
    return KILN_OK;
}

static kiln_status check_items(kiln_context *ctx, int n, save_item *it)
{
    for (int i = 0; i < n; i++) {
        kiln_status s = check_string(ctx, "name", i, it[i].name, 0);
        if (s != KILN_OK)
            return s;
        if (strcmp(it[i].name, "__metadata__") == 0)
            return kiln__error(ctx, KILN_ERROR_INVALID_ARGUMENT,
                               SAVE ": \"__metadata__\" is reserved by the "
                               "format and cannot name a tensor");
        if (!it[i].t) /* NULL propagates an earlier failure */
            return ctx->status != KILN_OK
                       ? ctx->status
                       : kiln__error(ctx, KILN_ERROR_INVALID_ARGUMENT,
                                     SAVE ": tensor \"%.80s\" is NULL",
                                     it[i].name);
        if (it[i].t->ctx != ctx || !kiln__tensor_ctx(it[i].t))
            return kiln__error(ctx, KILN_ERROR_INVALID_ARGUMENT,
                               SAVE ": tensor \"%.80s\" belongs to another "
                               "or a destroyed context", it[i].name);
        it[i].bytes = (uint64_t)kiln_tensor_numel(it[i].t) *
                      kiln_dtype_size(it[i].t->dtype);
    }
    qsort(it, (size_t)n, sizeof *it, cmp_item_name);
    for (int i = 1; i < n; i++)
        if (strcmp(it[i - 1].name, it[i].name) == 0)
            return kiln__error(ctx, KILN_ERROR_INVALID_ARGUMENT,
                               SAVE ": the name \"%.80s\" is used twice",
                               it[i].name);
    return KILN_OK;
}

/* Metadata strings checked and their key order (sorted) in @order. */
static kiln_status check_meta(kiln_context *ctx, int nmeta,
                              const char *const *keys,
                              const char *const *values, const char ***order)
{
    for (int i = 0; i < nmeta; i++) {
        kiln_status s = check_string(ctx, "metadata key", i, keys[i], 1);
        if (s == KILN_OK)
            s = check_string(ctx, "metadata value", i, values[i], 1);
        if (s != KILN_OK)
            return s;
    }
    for (int i = 0; i < nmeta; i++)
        order[i] = (const char **)&keys[i];
    qsort(order, (size_t)nmeta, sizeof *order, cmp_str_index);
    for (int i = 1; i < nmeta; i++)
        if (strcmp(*order[i - 1], *order[i]) == 0)
            return kiln__error(ctx, KILN_ERROR_INVALID_ARGUMENT,
                               SAVE ": the metadata key \"%.80s\" is used "
                               "twice", *order[i]);
    return KILN_OK;
}

/* The JSON header (items sorted by name, begin offsets set), padded. */
static void build_header(kiln_buf *h, int n, const save_item *it, int nmeta,
                         const char *const *keys, const char *const *values,
                         const char ***order)
{
    kiln__buf_add(h, "{", 1);
    if (nmeta) {
        kiln__buf_add(h, "\"__metadata__\":{", 16);
        for (int i = 0; i < nmeta; i++) {
            size_t k = (size_t)(order[i] - (const char **)keys);
            if (i)
                kiln__buf_add(h, ",", 1);
            kiln__buf_json_string(h, keys[k]);
            kiln__buf_add(h, ":", 1);
            kiln__buf_json_string(h, values[k]);
        }
        kiln__buf_add(h, n ? "}," : "}", n ? 2 : 1);
    }
    for (int i = 0; i < n; i++) {
        kiln__buf_json_string(h, it[i].name);
        kiln__buf_printf(h, ":{\"dtype\":\"%s\",\"shape\":[",
                         st_dtype_of(it[i].t->dtype));
        for (int d = 0; d < it[i].t->ndim; d++)
            kiln__buf_printf(h, "%s%lld", d ? "," : "",
                             (long long)it[i].t->shape[d]);
        kiln__buf_printf(h, "],\"data_offsets\":[%llu,%llu]}%s",
                         (unsigned long long)it[i].begin,
                         (unsigned long long)(it[i].begin + it[i].bytes),
                         i + 1 < n ? "," : "");
    }
    kiln__buf_add(h, "}", 1);
    while (h->len % 8)
        kiln__buf_add(h, " ", 1);
}

/* Streams header and tensors into the temporary file. */
static kiln_status write_all(kiln_context *ctx, kiln_atomic_file *af,
                             const kiln_buf *h, int n, save_item **layout)
{
    unsigned char len8[8];
    for (int i = 0; i < 8; i++)
        len8[i] = (unsigned char)((uint64_t)h->len >> (8 * i));
    if (fwrite(len8, 1, 8, af->f) != 8 ||
        fwrite(h->data, 1, h->len, af->f) != h->len)
        goto io_error;
    for (int i = 0; i < n; i++) {
        save_item *it = layout[i];
        if (!it->bytes)
            continue;
        void *buf = malloc((size_t)it->bytes);
        if (!buf)
            return kiln__error(ctx, KILN_ERROR_OUT_OF_HOST_MEMORY,
                               SAVE ": out of host memory for tensor "
                               "\"%.80s\"", it->name);
        kiln_status s = kiln_tensor_read(it->t, buf, (size_t)it->bytes);
        if (s == KILN_OK) {
            to_little_endian(buf, (size_t)it->bytes,
                             kiln_dtype_size(it->t->dtype));
            if (fwrite(buf, 1, (size_t)it->bytes, af->f) != it->bytes) {
                free(buf);
                goto io_error;
            }
        }
        free(buf);
        if (s != KILN_OK)
            return s;
    }
    return KILN_OK;

io_error:
    return kiln__error(ctx, KILN_ERROR_IO, SAVE ": cannot write %s (for "
                       "%s): %s", af->tmp, af->path, strerror(errno));
}

kiln_status kiln_safetensors_save(kiln_context *ctx, const char *path, int n,
                                  const char *const *names,
                                  kiln_tensor *const *tensors, int nmeta,
                                  const char *const *meta_keys,
                                  const char *const *meta_values)
{
    kiln_buf h = {0};
    kiln_atomic_file af;
    const char *step;
    if (!ctx)
        return KILN_ERROR_INVALID_ARGUMENT;
    if (!path || !*path || n < 0 || nmeta < 0 || (n && (!names || !tensors)) ||
        (nmeta && (!meta_keys || !meta_values)))
        return kiln__error(ctx, KILN_ERROR_INVALID_ARGUMENT,
                           SAVE ": bad arguments (path %s, %d tensors, %d "
                           "metadata pairs, or a NULL array)",
                           path ? path : "NULL", n, nmeta);
    save_item *it = calloc((size_t)n + 1, sizeof *it);
    save_item **layout = calloc((size_t)n + 1, sizeof *layout);
    const char ***order = calloc((size_t)nmeta + 1, sizeof *order);
    kiln_status s = KILN_ERROR_OUT_OF_HOST_MEMORY;
    if (!it || !layout || !order) {
        kiln__error(ctx, s, SAVE ": out of host memory");
        goto out;
    }
    for (int i = 0; i < n; i++) {
        it[i].name = names[i];
        it[i].t = tensors[i];
    }
    if ((s = check_items(ctx, n, it)) != KILN_OK ||
        (s = check_meta(ctx, nmeta, meta_keys, meta_values, order)) != KILN_OK)
        goto out;
    for (int i = 0; i < n; i++)
        layout[i] = &it[i];
    qsort(layout, (size_t)n, sizeof *layout, cmp_item_layout);
    for (uint64_t at = 0, i = 0; i < (uint64_t)n; i++) {
        layout[i]->begin = at;
        at += layout[i]->bytes;
    }
    build_header(&h, n, it, nmeta, meta_keys, meta_values, order);
    if (h.failed) {
        s = kiln__error(ctx, KILN_ERROR_OUT_OF_HOST_MEMORY,
                        SAVE ": out of host memory for the header");
        goto out;
    }
    if (kiln__atomic_begin(&af, path, 0666) != 0) {
        s = kiln__error(ctx, KILN_ERROR_IO, SAVE ": cannot create a temporary "
                        "file beside %s: %s", path, strerror(errno));
        goto out;
    }
    s = write_all(ctx, &af, &h, n, layout);
    if (s != KILN_OK) {
        kiln__atomic_abort(&af);
        goto out;
    }
    if (kiln__atomic_commit(&af, 1, &step) != 0)
        s = kiln__error(ctx, KILN_ERROR_IO, SAVE ": %s failed writing %s: %s",
                        step, path, strerror(errno));
out:
    kiln__buf_free(&h);
    free(it);
    free(layout);
    free(order);
    return s;
}
