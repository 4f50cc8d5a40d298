/*
 * test_safetensors.c - checkpoints: kiln_safetensors_save / _open and the
 * kiln_tensor_file_* calls on the device under test.
 *
 *  - round trips are bit-identical (f32 with NaN/inf/-0/denormals, i32
 *    extremes, f64, 0-D, empty and strided views; load_into a view);
 *  - names and metadata with quotes, backslashes, control characters and
 *    non-ASCII text survive, and the header is valid, escaped, padded;
 *  - load_into refuses a missing name, another shape or dtype, naming both;
 *  - failed saves return KILN_ERROR_IO and keep the old file: a missing
 *    directory, a target that is a directory (rename fails), and a write
 *    that fails half-way.  The last uses RLIMIT_FSIZE (writes past the limit
 *    fail with EFBIG, even for root, which chmod-based tests are not);
 *  - damaged files (every truncation of a small file, header lengths
 *    changed, hand-made bad headers, random byte flips) fail with
 *    KILN_ERROR_CORRUPT or KILN_ERROR_IO and a message, never a crash;
 *  - tests/fixtures/torch_small.safetensors (written from PyTorch tensors by
 *    make_safetensors.py) reads back with the right values.
 * With KILN_SAFETENSORS_EXPORT=FILE set, also writes a sample checkpoint
 * there for `make_safetensors.py --check FILE`.
 */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"

static char dir[256];   /* scratch directory, removed at the end */
static int fp64;

static void path_in(char *buf, size_t n, const char *name)
{
    snprintf(buf, n, "%s/%s", dir, name);
}

static void put_file(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, n, f) != n) {
        printf("FAIL: cannot write %s: %s\n", path, strerror(errno));
        exit(1);
    }
    fclose(f);
}

static unsigned char *get_file(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    unsigned char *d = NULL;
    long size;
    *n = 0;
    if (!f)
        return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (size = ftell(f)) >= 0 &&
        fseek(f, 0, SEEK_SET) == 0 && (d = malloc((size_t)size + 1)) &&
        fread(d, 1, (size_t)size, f) == (size_t)size)
        *n = (size_t)size;
    fclose(f);
    return d;
}

/* Number of entries in the scratch directory (leftover temp files). */
static int dir_entries(void)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;
    while (d && (e = readdir(d)))
        n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    if (d)
        closedir(d);
    return n;
}

static kiln_tensor *make(kiln_context *ctx, kiln_dtype dt, int ndim,
                         const int64_t *shape, const void *data)
{
    int64_t n = 1;
    for (int i = 0; i < ndim; i++)
        n *= shape[i];
    return kiln_tensor_from_data(ctx, dt, ndim, shape, data,
                                 (size_t)n * kiln_dtype_size(dt));
}

/* Does @t hold exactly @bytes bytes equal to @want, with @ndim/@shape? */
static int same_tensor(kiln_tensor *t, kiln_dtype dt, int ndim,
                       const int64_t *shape, const void *want, size_t bytes)
{
    int64_t s[KILN_MAX_DIMS];
    if (!t || kiln_tensor_dtype(t) != dt || kiln_tensor_shape(t, s) != ndim)
        return 0;
    for (int i = 0; i < ndim; i++)
        if (s[i] != shape[i])
            return 0;
    unsigned char *got = malloc(bytes + 1);
    int ok = got && kiln_tensor_read(t, got, bytes) == KILN_OK &&
             memcmp(got, want, bytes) == 0;
    free(got);
    return ok;
}

/* ---- round trips -------------------------------------------------------- */

static void test_roundtrip(kiln_context *ctx)
{
    char path[512];
    path_in(path, sizeof path, "round.safetensors");
    float a[12];
    uint32_t bits[4] = {0x7FC00001u, 0xFF800000u, 0x80000000u, 0x00000001u};
    for (int i = 0; i < 12; i++)
        a[i] = (float)i * 0.37f - 2.0f;
    memcpy(a, bits, sizeof bits); /* NaN payload, -inf, -0, a denormal */
    int32_t b[5] = {INT32_MIN, -1, 0, 7, INT32_MAX};
    double c[8] = {1.0 / 3.0, -0.0, 1e-310, 1e300, -2.5, 0, 4, 5};
    double scalar = 6.02214076e23;
    int64_t sa[2] = {3, 4}, sb[1] = {5}, sc[3] = {2, 2, 2}, se[2] = {0, 3};
    kiln_tensor *ta = make(ctx, KILN_F32, 2, sa, a);
    kiln_tensor *tb = make(ctx, KILN_I32, 1, sb, b);
    kiln_tensor *tc = fp64 ? make(ctx, KILN_F64, 3, sc, c) : NULL;
    kiln_tensor *ts = fp64 ? make(ctx, KILN_F64, 0, NULL, &scalar) : NULL;
    kiln_tensor *te = kiln_tensor_new(ctx, KILN_F32, 2, se);
    kiln_tensor *tt = kiln_transpose(ta, 0, 1);      /* strided [4, 3]  */
    kiln_tensor *tl = kiln_slice(tb, 0, 0, 5, 2);    /* stride 2: 3     */
    const char *names[] = {"a", "b", "t", "sl", "empty", "c", "s"};
    kiln_tensor *ts_[] = {ta, tb, tt, tl, te, tc, ts};
    int n = fp64 ? 7 : 5;
    const char *mk[] = {"epoch", "note"}, *mv[] = {"3", "kiln \"test\"\n"};
    kiln_status s = kiln_safetensors_save(ctx, path, n, names, ts_, 2, mk, mv);
    CHECK(s == KILN_OK, "save: %s", kiln_error_message(ctx));

    kiln_tensor_file *f = kiln_safetensors_open(ctx, path);
    CHECK(f != NULL, "open: %s", kiln_error_message(ctx));
    if (!f)
        goto out;
    CHECK(kiln_tensor_file_count(f) == n, "count %d", kiln_tensor_file_count(f));
    for (int i = 1; i < kiln_tensor_file_count(f); i++)
        CHECK(strcmp(kiln_tensor_file_name(f, i - 1),
                     kiln_tensor_file_name(f, i)) < 0, "names not sorted");
    CHECK(kiln_tensor_file_name(f, n) == NULL, "name past the end");
    CHECK(kiln_tensor_file_meta(f, "epoch") &&
              strcmp(kiln_tensor_file_meta(f, "epoch"), "3") == 0, "meta epoch");
    CHECK(kiln_tensor_file_meta(f, "note") &&
              strcmp(kiln_tensor_file_meta(f, "note"), mv[1]) == 0, "meta note");
    CHECK(kiln_tensor_file_meta(f, "nope") == NULL, "meta absent");

    float at[12];
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 3; j++)
            memcpy(&at[i * 3 + j], &a[j * 4 + i], 4);
    int32_t bl[3] = {b[0], b[2], b[4]};
    int64_t st[2] = {4, 3}, sl[1] = {3};
    struct { const char *name; kiln_dtype dt; int nd; const int64_t *sh;
             const void *d; size_t bytes; } want[] = {
        {"a", KILN_F32, 2, sa, a, sizeof a},
        {"b", KILN_I32, 1, sb, b, sizeof b},
        {"t", KILN_F32, 2, st, at, sizeof at},
        {"sl", KILN_I32, 1, sl, bl, sizeof bl},
        {"empty", KILN_F32, 2, se, a, 0},
        {"c", KILN_F64, 3, sc, c, sizeof c},
        {"s", KILN_F64, 0, NULL, &scalar, sizeof scalar},
    };
    for (int i = 0; i < n; i++) {
        kiln_tensor *t = kiln_tensor_file_load(f, want[i].name);
        CHECK(same_tensor(t, want[i].dt, want[i].nd, want[i].sh, want[i].d,
                          want[i].bytes),
              "round trip of \"%s\" differs (%s)", want[i].name,
              kiln_error_message(ctx));
        kiln_tensor_free(t);
    }
    /* load_into a strided view: "a" [3, 4] into the transpose of [4, 3]. */
    kiln_tensor *base = kiln_tensor_new(ctx, KILN_F32, 2, st);
    kiln_tensor *view = kiln_transpose(base, 0, 1);
    s = kiln_tensor_file_load_into(f, "a", view);
    CHECK(s == KILN_OK && same_tensor(base, KILN_F32, 2, st, at, sizeof at),
          "load_into a view: %s", kiln_error_message(ctx));
    kiln_tensor_free(view);
    kiln_tensor_free(base);
    kiln_tensor_file_close(f);
out:
    for (int i = 0; i < 7; i++)
        kiln_tensor_free(ts_[i]);
    kiln_clear_error(ctx);
}

/* Names and metadata that need escaping, and the header's own form. */
static void test_names(kiln_context *ctx)
{
    char path[512];
    path_in(path, sizeof path, "names.safetensors");
    const char *names[] = {"we\"ird\\name", "caf\xc3\xa9 \xe2\x98\x83 \xf0\x9f\x98\x80",
                           "tab\tnew\nline\x01", "layer.0/weight", "{}[]:,"};
    float v[5] = {1, 2, 3, 4, 5};
    int64_t one[1] = {1};
    kiln_tensor *t[5];
    for (int i = 0; i < 5; i++)
        t[i] = make(ctx, KILN_F32, 1, one, &v[i]);
    const char *mk[] = {names[0], names[1], names[2], ""};
    const char *mv[] = {names[2], names[0], names[1], "empty key"};
    CHECK(kiln_safetensors_save(ctx, path, 5, names, t, 4, mk, mv) == KILN_OK,
          "save odd names: %s", kiln_error_message(ctx));
    kiln_tensor_file *f = kiln_safetensors_open(ctx, path);
    CHECK(f != NULL, "open odd names: %s", kiln_error_message(ctx));
    for (int i = 0; f && i < 5; i++) {
        kiln_tensor *l = kiln_tensor_file_load(f, names[i]);
        CHECK(same_tensor(l, KILN_F32, 1, one, &v[i], 4), "name %d: %s", i,
              kiln_error_message(ctx));
        kiln_tensor_free(l);
    }
    for (int i = 0; f && i < 4; i++) {
        const char *m = kiln_tensor_file_meta(f, mk[i]);
        CHECK(m && strcmp(m, mv[i]) == 0, "metadata %d", i);
    }
    kiln_tensor_file_close(f);

    size_t n;
    unsigned char *d = get_file(path, &n);
    uint64_t hl = 0;
    for (int i = 7; d && n >= 8 && i >= 0; i--)
        hl = hl << 8 | d[i];
    CHECK(d && n >= 8 && hl % 8 == 0 && 8 + hl <= n && d[8] == '{',
          "header length %llu not padded to 8 or not an object",
          (unsigned long long)hl);
    int raw_control = 0;
    for (uint64_t i = 8; d && i < 8 + hl && i < n; i++)
        raw_control |= d[i] < 0x20;
    CHECK(!raw_control, "unescaped control character in the header");
    free(d);
    for (int i = 0; i < 5; i++)
        kiln_tensor_free(t[i]);
    kiln_clear_error(ctx);
}

static void expect_error(kiln_context *ctx, kiln_status got, kiln_status want,
                         const char *what, const char *needle1,
                         const char *needle2)
{
    const char *m = kiln_error_message(ctx);
    CHECK(got == want && kiln_status_of(ctx) == want,
          "%s: status %s, want %s (%s)", what, kiln_status_string(got),
          kiln_status_string(want), m);
    CHECK((!needle1 || strstr(m, needle1)) && (!needle2 || strstr(m, needle2)),
          "%s: message \"%s\" lacks \"%s\" / \"%s\"", what, m,
          needle1 ? needle1 : "", needle2 ? needle2 : "");
    kiln_clear_error(ctx);
}

static void test_refusals(kiln_context *ctx)
{
    char path[512], dpath[512];
    path_in(path, sizeof path, "refuse.safetensors");
    int64_t sh[2] = {3, 4}, other[2] = {4, 3};
    kiln_tensor *a = kiln_tensor_new(ctx, KILN_F32, 2, sh);
    kiln_fill(a, 1.5);
    kiln_tensor *ts[2] = {a, a};
    const char *names[] = {"w", "w"};
    CHECK(kiln_safetensors_save(ctx, path, 1, names, ts, 0, NULL, NULL) ==
              KILN_OK, "save: %s", kiln_error_message(ctx));
    kiln_tensor_file *f = kiln_safetensors_open(ctx, path);
    CHECK(f != NULL, "open: %s", kiln_error_message(ctx));
    kiln_tensor *wrong_shape = kiln_tensor_new(ctx, KILN_F32, 2, other);
    kiln_tensor *wrong_dtype = kiln_tensor_new(ctx, KILN_I32, 2, sh);
    expect_error(ctx, kiln_tensor_file_load_into(f, "w", wrong_shape),
                 KILN_ERROR_SHAPE, "load_into shape", "[3, 4]", "[4, 3]");
    expect_error(ctx, kiln_tensor_file_load_into(f, "w", wrong_dtype),
                 KILN_ERROR_DTYPE, "load_into dtype", "F32", "I32");
    expect_error(ctx, kiln_tensor_file_load_into(f, "nope", wrong_shape),
                 KILN_ERROR_INVALID_ARGUMENT, "load_into missing", "\"nope\"",
                 path);
    CHECK(kiln_tensor_file_load(f, "nope") == NULL, "load of a missing name");
    expect_error(ctx, kiln_status_of(ctx), KILN_ERROR_INVALID_ARGUMENT,
                 "load missing", "nope", NULL);
    kiln_tensor_file_close(f);

    /* Bad saves change nothing on disk. */
    path_in(dpath, sizeof dpath, "never.safetensors");
    expect_error(ctx, kiln_safetensors_save(ctx, dpath, 2, names, ts, 0, NULL,
                                            NULL),
                 KILN_ERROR_INVALID_ARGUMENT, "duplicate names", "twice", NULL);
    const char *empty[] = {""}, *reserved[] = {"__metadata__"};
    expect_error(ctx, kiln_safetensors_save(ctx, dpath, 1, empty, ts, 0, NULL,
                                            NULL),
                 KILN_ERROR_INVALID_ARGUMENT, "empty name", "empty", NULL);
    expect_error(ctx, kiln_safetensors_save(ctx, dpath, 1, reserved, ts, 0,
                                            NULL, NULL),
                 KILN_ERROR_INVALID_ARGUMENT, "reserved name", "reserved", NULL);
    kiln_tensor *null_t[1] = {NULL};
    expect_error(ctx, kiln_safetensors_save(ctx, dpath, 1, names, null_t, 0,
                                            NULL, NULL),
                 KILN_ERROR_INVALID_ARGUMENT, "NULL tensor", "NULL", NULL);
    const char *mk[] = {"k", "k"}, *mv[] = {"1", "2"};
    expect_error(ctx, kiln_safetensors_save(ctx, dpath, 1, names, ts, 2, mk,
                                            mv),
                 KILN_ERROR_INVALID_ARGUMENT, "duplicate metadata", "twice",
                 NULL);
    CHECK(access(dpath, F_OK) != 0, "a refused save created a file");
    kiln_tensor_free(a);
    kiln_tensor_free(wrong_shape);
    kiln_tensor_free(wrong_dtype);
}

/* ---- failing saves ------------------------------------------------------ */

static void test_failed_saves(kiln_context *ctx)
{
    char path[512], bad[512];
    int64_t small[1] = {4}, big[1] = {1 << 16};
    kiln_tensor *ts = kiln_tensor_new(ctx, KILN_F32, 1, small);
    kiln_tensor *tb = kiln_tensor_new(ctx, KILN_F32, 1, big);
    kiln_fill(ts, 2.0);
    kiln_fill(tb, 3.0);
    const char *name[] = {"x"};
    int before = dir_entries();

    path_in(bad, sizeof bad, "no/such/dir/x.safetensors");
    expect_error(ctx, kiln_safetensors_save(ctx, bad, 1, name, &ts, 0, NULL,
                                            NULL),
                 KILN_ERROR_IO, "missing directory", bad, strerror(ENOENT));

    /* The target is a directory: writing works, the rename fails. */
    path_in(bad, sizeof bad, "a_directory");
    mkdir(bad, 0755);
    expect_error(ctx, kiln_safetensors_save(ctx, bad, 1, name, &ts, 0, NULL,
                                            NULL),
                 KILN_ERROR_IO, "target is a directory", "rename", bad);
    struct stat sb;
    CHECK(stat(bad, &sb) == 0 && S_ISDIR(sb.st_mode), "directory replaced");
    CHECK(dir_entries() == before + 1, "temporary file left behind");
    rmdir(bad);

    /* A write that fails half-way keeps the previous checkpoint. */
    path_in(path, sizeof path, "keep.safetensors");
    CHECK(kiln_safetensors_save(ctx, path, 1, name, &ts, 0, NULL, NULL) ==
              KILN_OK, "first save: %s", kiln_error_message(ctx));
    size_t n_old, n_now;
    unsigned char *old = get_file(path, &n_old);
    struct rlimit saved, lim;
    void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
    getrlimit(RLIMIT_FSIZE, &saved);
    lim = saved;
    lim.rlim_cur = 4096; /* the new file needs 256 KiB */
    if (setrlimit(RLIMIT_FSIZE, &lim) == 0) {
        kiln_status s = kiln_safetensors_save(ctx, path, 1, name, &tb, 0,
                                              NULL, NULL);
        setrlimit(RLIMIT_FSIZE, &saved);
        expect_error(ctx, s, KILN_ERROR_IO, "write past RLIMIT_FSIZE", path,
                     strerror(EFBIG));
        unsigned char *now = get_file(path, &n_now);
        CHECK(old && now && n_now == n_old && memcmp(old, now, n_old) == 0,
              "the old checkpoint changed after a failed save");
        free(now);
        CHECK(dir_entries() == before + 1, "temporary file left behind");
    } else {
        printf("note: setrlimit failed (%s); half-way failure not tested\n",
               strerror(errno));
    }
    signal(SIGXFSZ, prev);
    free(old);
    /* ... and the old checkpoint still loads. */
    kiln_tensor_file *f = kiln_safetensors_open(ctx, path);
    float two[4] = {2, 2, 2, 2};
    kiln_tensor *l = f ? kiln_tensor_file_load(f, "x") : NULL;
    CHECK(same_tensor(l, KILN_F32, 1, small, two, sizeof two),
          "old checkpoint unreadable: %s", kiln_error_message(ctx));
    kiln_tensor_free(l);
    kiln_tensor_file_close(f);
    /* A successful overwrite replaces it. */
    CHECK(kiln_safetensors_save(ctx, path, 1, name, &tb, 0, NULL, NULL) ==
              KILN_OK, "overwrite: %s", kiln_error_message(ctx));
    free(get_file(path, &n_now));
    CHECK(n_now > n_old, "overwrite did not replace the file");
    kiln_clear_error(ctx);
    kiln_tensor_free(ts);
    kiln_tensor_free(tb);
}

/* ---- damaged files ------------------------------------------------------ */

/* Opening @path must fail with KILN_ERROR_CORRUPT (or IO when @allow_io)
 * and a message.  Returns 1 when it did. */
static int expect_bad_file(kiln_context *ctx, const char *path,
                           const char *what, int allow_io)
{
    kiln_tensor_file *f = kiln_safetensors_open(ctx, path);
    kiln_status s = kiln_status_of(ctx);
    int ok = !f && (s == KILN_ERROR_CORRUPT ||
                    (allow_io && s == KILN_ERROR_IO)) &&
             kiln_error_message(ctx)[0];
    CHECK(ok, "%s: opened %d, status %s, message \"%s\"", what, f != NULL,
          kiln_status_string(s), kiln_error_message(ctx));
    if (getenv("KILN_TEST_VERBOSE"))
        printf("%s: %s\n", what, kiln_error_message(ctx));
    kiln_tensor_file_close(f);
    kiln_clear_error(ctx);
    return ok;
}

/* A file of a @jlen-byte header @json followed by @data zero bytes. */
static void put_header_file(const char *path, const char *json, size_t jlen,
                            size_t data)
{
    size_t n = 8 + jlen + data;
    unsigned char *b = calloc(1, n);
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)((uint64_t)jlen >> (8 * i));
    memcpy(b + 8, json, jlen);
    put_file(path, b, n);
    free(b);
}

#define T2(extra) "{\"a\":{\"dtype\":\"F32\",\"shape\":[2]," extra "}}"
#define OFF08 "\"data_offsets\":[0,8]"

static const struct {
    const char *json;
    size_t data;
} bad_headers[] = {
    {"", 8}, {" ", 8}, {"{", 8}, {"{\"a\"", 8}, {"{\"a\":", 8},
    {"{\"a\":{", 8}, {"{\"a", 8}, {"{\"a\\q\":1}", 8}, {"{\"a\\u12\":1}", 8},
    {"{\"\\ud800\":1}", 8}, {"{\"\\ud800\\u0041\":1}", 8},
    {"{\"\\udc00x\":1}", 8}, {"{\"a\\u0000\":1}", 8}, {"{\"a\\", 8},
    {"{\"\xff\":1}", 8}, {"{\"\xc0\xaf\":1}", 8}, {"{\"\xed\xa0\x80\":1}", 8},
    {"{\"\xe2\x98\":1}", 8}, {"{\"a\":\"x\ny\"}", 8}, {"{\"a\":tru}", 8},
    {"{\"a\":01}", 8}, {"{\"a\":1.}", 8}, {"{\"a\":-}", 8}, {"{\"a\":1e}", 8},
    {"{,}", 8}, {"{\"a\":1,}", 8}, {"{\"a\" 1}", 8}, {"{1:2}", 8},
    {"[1,]", 8}, {"[1 2]", 8},
    {T2(OFF08) " x", 8}, {T2(OFF08) "{}", 8},
    {"[]", 8}, {"null", 8}, {"\"str\"", 8}, {"12", 8}, {"{\"a\":1}", 8},
    {"{\"a\":{\"shape\":[2]," OFF08 "}}", 8},
    {"{\"a\":{\"dtype\":3,\"shape\":[2]," OFF08 "}}", 8},
    {"{\"a\":{\"dtype\":\"F32\"," OFF08 "}}", 8},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":2," OFF08 "}}", 8},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[-2]," OFF08 "}}", 8},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2.0]," OFF08 "}}", 8},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2e0]," OFF08 "}}", 8},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[\"2\"]," OFF08 "}}", 8},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[99999999999999999999]," OFF08 "}}", 8},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296]," OFF08 "}}",
     8},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}", 8},
    {T2("\"data_offsets\":[0]"), 8}, {T2("\"data_offsets\":[0,8,9]"), 8},
    {T2("\"data_offsets\":[8,0]"), 8}, {T2("\"data_offsets\":[0,-8]"), 8},
    {T2("\"data_offsets\":{}"), 8}, {T2("\"data_offsets\":[0,16]"), 8},
    {T2("\"data_offsets\":[0,18446744073709551616]"), 8},
    {T2(OFF08), 12}, {T2(OFF08), 4}, {T2("\"data_offsets\":[4,12]"), 12},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[3]," OFF08 "}}", 8},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2]," OFF08 "},\"b\":{\"dtype\":"
     "\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2]," OFF08 "},\"a\":{\"dtype\":"
     "\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}", 16},
    {"{\"__metadata__\":{\"k\":1}}", 0}, {"{\"__metadata__\":[]}", 0},
    {"{\"__metadata__\":{\"k\":\"v\",\"k\":\"w\"}}", 0},
    {"{}", 8},
};

/* Valid files with entries Kiln lists but cannot load. */
static void test_odd_but_valid(kiln_context *ctx, const char *path)
{
    const char *h = "{\"h\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":"
                    "[0,4]},\"q\":{\"dtype\":\"Q7\",\"shape\":[5],"
                    "\"data_offsets\":[4,7]},\"caf\\u00e9\":{\"dtype\":\"F32\","
                    "\"shape\":[],\"data_offsets\":[7,11]},\"\\ud83d\\ude00\":"
                    "{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1],"
                    "\"data_offsets\":[11,15]},\"__metadata__\":null}   ";
    put_header_file(path, h, strlen(h), 15);
    kiln_tensor_file *f = kiln_safetensors_open(ctx, path);
    CHECK(f && kiln_tensor_file_count(f) == 4, "odd file: %s",
          kiln_error_message(ctx));
    if (!f)
        return;
    CHECK(kiln_tensor_file_load(f, "h") == NULL, "BF16 loaded");
    expect_error(ctx, kiln_status_of(ctx), KILN_ERROR_DTYPE, "BF16", "BF16",
                 NULL);
    CHECK(kiln_tensor_file_load(f, "q") == NULL, "Q7 loaded");
    expect_error(ctx, kiln_status_of(ctx), KILN_ERROR_DTYPE, "Q7", "Q7", NULL);
    kiln_tensor *t = kiln_tensor_file_load(f, "caf\xc3\xa9");
    float zero = 0;
    CHECK(same_tensor(t, KILN_F32, 0, NULL, &zero, 4), "\\u00e9 name: %s",
          kiln_error_message(ctx));
    kiln_tensor_free(t);
    CHECK(kiln_tensor_file_load(f, "\xf0\x9f\x98\x80") == NULL, "7-D loaded");
    expect_error(ctx, kiln_status_of(ctx), KILN_ERROR_SHAPE, "7-D", "7", NULL);
    kiln_tensor_file_close(f);
}

static void test_corrupt(kiln_context *ctx)
{
    char path[512], good[512], what[600];
    path_in(path, sizeof path, "bad.safetensors");
    path_in(good, sizeof good, "good.safetensors");
    expect_bad_file(ctx, dir, "a directory", 1);
    path_in(what, sizeof what, "missing.safetensors");
    expect_bad_file(ctx, what, "a missing file", 1);
    for (size_t i = 0; i < sizeof bad_headers / sizeof bad_headers[0]; i++) {
        put_header_file(path, bad_headers[i].json, strlen(bad_headers[i].json),
                        bad_headers[i].data);
        snprintf(what, sizeof what, "bad header %zu", i);
        expect_bad_file(ctx, path, what, 0);
    }
    put_header_file(path, "{} \0 ", 5, 0);   /* a NUL inside the header */
    expect_bad_file(ctx, path, "NUL in header", 0);
    size_t deep = 100000;                     /* nesting past any limit */
    char *nest = malloc(deep);
    memset(nest, '[', deep);
    put_header_file(path, nest, deep, 0);
    expect_bad_file(ctx, path, "deep nesting", 0);
    free(nest);
    test_odd_but_valid(ctx, path);

    /* A small valid file, then every truncation and header length change. */
    int64_t sh[2] = {2, 3};
    float v[6] = {2, 2, 2, 2, 2, 2};
    kiln_tensor *t = make(ctx, KILN_F32, 2, sh, v);
    const char *names[] = {"w", "b"}, *mk[] = {"k"}, *mv[] = {"v"};
    kiln_tensor *ts[] = {t, t};
    CHECK(kiln_safetensors_save(ctx, good, 2, names, ts, 1, mk, mv) == KILN_OK,
          "save: %s", kiln_error_message(ctx));
    kiln_tensor_free(t);
    size_t n;
    unsigned char *d = get_file(good, &n), *b = malloc(n + 1);
    if (!d || n < 16 || !b) {
        CHECK(0, "cannot read back %s", good);
        free(d);
        free(b);
        return;
    }
    int bad = 0;
    for (size_t len = 0; len < n && bad < 5; len++) {
        put_file(path, d, len);
        snprintf(what, sizeof what, "truncated to %zu of %zu bytes", len, n);
        bad += !expect_bad_file(ctx, path, what, 1);
    }
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--)
        hl = hl << 8 | d[i];
    uint64_t lens[] = {0, 1, hl - 1, hl + 1, hl - 8, hl + 8, n - 8, n,
                       1ull << 40, UINT64_MAX, 100000001};
    for (size_t k = 0; k < sizeof lens / sizeof lens[0] + 8; k++) {
        memcpy(b, d, n);
        if (k < 8)
            b[k] ^= 0xFF;  /* flip each byte of the length */
        else
            for (int i = 0; i < 8; i++)
                b[i] = (unsigned char)(lens[k - 8] >> (8 * i));
        put_file(path, b, n);
        snprintf(what, sizeof what, "header length case %zu", k);
        expect_bad_file(ctx, path, what, 0);
    }

    /* Random byte changes in the header: anything but a crash is fine, and
     * a failure must say why. */
    harness_rng rng = {20240611};
    int odd = 0;
    for (int it = 0; it < 2000; it++) {
        memcpy(b, d, n);
        for (int k = harness_int(&rng, 1, 3); k > 0; k--)
            b[harness_int(&rng, 8, (int)(8 + hl - 1))] =
                (unsigned char)harness_next(&rng);
        put_file(path, b, n);
        kiln_tensor_file *f = kiln_safetensors_open(ctx, path);
        for (int i = 0; f && i < kiln_tensor_file_count(f); i++)
            kiln_tensor_free(kiln_tensor_file_load(f, kiln_tensor_file_name(f, i)));
        kiln_status s = kiln_status_of(ctx);
        if (!f && (s != KILN_ERROR_CORRUPT || !kiln_error_message(ctx)[0]))
            odd++;
        kiln_tensor_file_close(f);
        kiln_clear_error(ctx);
    }
    CHECK(odd == 0, "%d random header changes failed without CORRUPT", odd);
    free(d);
    free(b);
}

/* ---- PyTorch's file ------------------------------------------------------ */

static void test_fixture(kiln_context *ctx, int argc, char **argv)
{
    char path[1024];
    const char *env = getenv("KILN_FIXTURES_DIR");
    const char *src = __FILE__, *slash = strrchr(src, '/');
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], "--fixtures") == 0)
            env = argv[i + 1];
    if (env && *env)
        snprintf(path, sizeof path, "%s/torch_small.safetensors", env);
    else
        snprintf(path, sizeof path, "%.*s%sfixtures/torch_small.safetensors",
                 slash ? (int)(slash - src) : 0, src, slash ? "/" : "");
    printf("fixture: %s\n", path);
    kiln_tensor_file *f = kiln_safetensors_open(ctx, path);
    CHECK(f && kiln_tensor_file_count(f) == 5, "torch file: %s",
          kiln_error_message(ctx));
    if (!f)
        return;
    float w[6] = {-1, -0.5f, 0, 0.5f, 1, 1.5f};
    double bias[3] = {1.0 / 3.0, -2.5, 1e-300};
    int32_t steps = 42;
    int64_t sw[2] = {2, 3}, sb[1] = {3}, se[2] = {0, 4};
    kiln_tensor *t = kiln_tensor_file_load(f, "weight");
    CHECK(same_tensor(t, KILN_F32, 2, sw, w, sizeof w), "weight: %s",
          kiln_error_message(ctx));
    kiln_tensor_free(t);
    t = kiln_tensor_file_load(f, "steps");
    CHECK(same_tensor(t, KILN_I32, 0, NULL, &steps, 4), "steps: %s",
          kiln_error_message(ctx));
    kiln_tensor_free(t);
    t = kiln_tensor_file_load(f, "empty");
    CHECK(same_tensor(t, KILN_F32, 2, se, w, 0), "empty: %s",
          kiln_error_message(ctx));
    kiln_tensor_free(t);
    if (fp64) {
        t = kiln_tensor_file_load(f, "bias");
        CHECK(same_tensor(t, KILN_F64, 1, sb, bias, sizeof bias), "bias: %s",
              kiln_error_message(ctx));
        kiln_tensor_free(t);
    }
    CHECK(kiln_tensor_file_load(f, "half") == NULL, "F16 loaded");
    expect_error(ctx, kiln_status_of(ctx), KILN_ERROR_DTYPE, "F16", "F16",
                 NULL);
    const char *m = kiln_tensor_file_meta(f, "format");
    CHECK(m && strcmp(m, "pt") == 0, "metadata format");
    kiln_tensor_file_close(f);
    kiln_clear_error(ctx);
}

/* A sample for `make_safetensors.py --check` (KILN_SAFETENSORS_EXPORT). */
static void export_sample(kiln_context *ctx)
{
    const char *out = getenv("KILN_SAFETENSORS_EXPORT");
    if (!out || !*out)
        return;
    float a[6] = {1.5f, -2, 0.25f, 3, -0.0f, 1e-3f};
    int32_t b[4] = {INT32_MIN, -7, 0, INT32_MAX};
    double c[2] = {1.0 / 3.0, -1e300}, s = 2.5;
    int64_t sa[2] = {2, 3}, sb[1] = {4}, sc[1] = {2};
    kiln_tensor *t[4] = {make(ctx, KILN_F32, 2, sa, a),
                         make(ctx, KILN_I32, 1, sb, b),
                         fp64 ? make(ctx, KILN_F64, 1, sc, c) : NULL,
                         fp64 ? make(ctx, KILN_F64, 0, NULL, &s) : NULL};
    const char *names[] = {"layer.weight", "ids \"q\"", "dbl", "scalar"};
    const char *mk[] = {"format", "writer"}, *mv[] = {"pt", "kiln"};
    CHECK(kiln_safetensors_save(ctx, out, fp64 ? 4 : 2, names, t, 2, mk, mv) ==
              KILN_OK, "export: %s", kiln_error_message(ctx));
    printf("exported %s\n", out);
    for (int i = 0; i < 4; i++)
        kiln_tensor_free(t[i]);
}

int main(int argc, char **argv)
{
    kiln_context *ctx = harness_open(harness_device(argc, argv), 64);
    fp64 = kiln_context_device(ctx)->fp64;
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/kiln-st-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        printf("FAIL: mkdtemp %s: %s\n", dir, strerror(errno));
        return 1;
    }
    test_roundtrip(ctx);
    test_names(ctx);
    test_refusals(ctx);
    test_failed_saves(ctx);
    test_corrupt(ctx);
    test_fixture(ctx, argc, argv);
    export_sample(ctx);
    CHECK(kiln_check_guards(ctx) == KILN_OK, "guards: %s",
          kiln_error_message(ctx));
    /* Remove the scratch files (names are ours, no subdirectories left). */
    DIR *d = opendir(dir);
    struct dirent *e;
    char p[600];
    while (d && (e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            unlink(p);
        }
    if (d)
        closedir(d);
    rmdir(dir);
    kiln_context_destroy(ctx);
    return harness_exit();
}
