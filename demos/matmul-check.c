/*
 * matmul-check - a small end-to-end Kiln program: computes C = A*B and
 * relu(A + B) for random square f32 matrices on a device, checks both against
 * the host, and reports the matmul rate.
 *
 * usage: matmul-check [--device SPEC] [--size N]
 *
 *   --device SPEC  "auto", "reference", "opencl", "vulkan", "vulkan:0",
 *                  or part of a device name (see kiln-info); default: the
 *                  KILN_DEVICE environment variable, else "auto"
 *   --size N       matrix size, default 512
 *
 * Exit status: 0 pass, 1 wrong results (or an op failed), 2 set-up error.
 * It uses only the public API in kiln.h, so it can be copied as a start.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#endif

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kiln.h"

#define MATMUL_TOLERANCE 1e-4 /* max |error| relative to max |C| */
#define ELEMENTWISE_TOLERANCE 1e-6

static void usage(FILE *f)
{
    fprintf(f, "usage: matmul-check [--device SPEC] [--size N]\n");
}

static double now_seconds(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* A fixed linear congruential generator, so every run sees the same data. */
static float next_uniform(uint64_t *state)
{
    *state = *state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (float)((double)(*state >> 40) / (double)(1ULL << 24)) * 2.0f -
           1.0f; /* [-1, 1) */
}

/*
 * Max |C_dev - C_host| / max |C_host| with C_host computed in double.  Large
 * sizes check an even sample of rows to keep the host part quick.
 */
static double matmul_error(const float *a, const float *b, const float *c,
                           size_t n)
{
    size_t step = n <= 1024 ? 1 : (n + 255) / 256;
    double *row = malloc(n * sizeof *row);
    double max_err = 0.0, max_ref = 0.0;

    if (!row)
        return INFINITY;
    for (size_t i = 0; i < n; i += step) {
        memset(row, 0, n * sizeof *row);
        for (size_t k = 0; k < n; k++) {
            double aik = a[i * n + k];
            const float *bk = b + k * n;
            for (size_t j = 0; j < n; j++)
                row[j] += aik * bk[j];
        }
        for (size_t j = 0; j < n; j++) {
            double err = fabs((double)c[i * n + j] - row[j]);
            if (!(err <= max_err)) /* also catches NaN */
                max_err = err;
            if (fabs(row[j]) > max_ref)
                max_ref = fabs(row[j]);
        }
    }
    free(row);
    return max_ref > 0.0 ? max_err / max_ref : max_err;
}

/* Max |relu(a + b) - r| over every element. */
static double relu_add_error(const float *a, const float *b, const float *r,
                             size_t count)
{
    double max_err = 0.0;

    for (size_t i = 0; i < count; i++) {
        float sum = a[i] + b[i];
        float want = sum > 0.0f ? sum : 0.0f;
        double err = fabs((double)r[i] - (double)want);
        if (!(err <= max_err))
            max_err = err;
    }
    return max_err;
}

/* Prints the context's error and returns @code. */
static int report_error(kiln_context *ctx, const char *what, int code)
{
    fprintf(stderr, "matmul-check: %s: %s (%s)\n", what,
            kiln_error_message(ctx), kiln_status_string(kiln_status_of(ctx)));
    return code;
}

/* Runs C = A*B on the device and reads it into @c; returns the seconds the
 * matmul and the read took, or a negative value on error. */
static double timed_matmul(kiln_tensor *ta, kiln_tensor *tb, float *c,
                           size_t bytes)
{
    double start = now_seconds();
    kiln_tensor *tc = kiln_matmul(ta, tb);
    kiln_status st = tc ? kiln_tensor_read(tc, c, bytes) : KILN_ERROR_BACKEND;
    double seconds = now_seconds() - start;

    kiln_tensor_free(tc);
    return st == KILN_OK ? seconds : -1.0;
}

int main(int argc, char **argv)
{
    const char *device = NULL;
    long size = 512;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--device") == 0 && i + 1 < argc) {
            device = argv[++i];
        } else if (strcmp(argv[i], "--size") == 0 && i + 1 < argc) {
            char *end;
            size = strtol(argv[++i], &end, 10);
            if (*end || size < 1 || size > 32768) {
                fprintf(stderr, "matmul-check: --size wants 1..32768\n");
                return 2;
            }
        } else if (strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        } else {
            usage(stderr);
            return 2;
        }
    }

    int n = (int)size;
    size_t count = (size_t)n * (size_t)n, bytes = count * sizeof(float);
    int64_t shape[2] = {n, n};
    int rc = 2;
    kiln_tensor *ta = NULL, *tb = NULL, *tsum = NULL, *trelu = NULL;
    float *a = malloc(bytes), *b = malloc(bytes), *c = malloc(bytes);
    float *r = malloc(bytes);

    kiln_context_options options = {0};
    options.device = device; /* NULL: KILN_DEVICE, else "auto" */
    kiln_context *ctx = kiln_context_create(&options);

    if (!ctx || !a || !b || !c || !r) {
        fprintf(stderr, "matmul-check: out of host memory\n");
        goto out;
    }
    if (kiln_status_of(ctx) != KILN_OK) {
        rc = report_error(ctx, "cannot open the device", 2);
        goto out;
    }
    const kiln_device_info *dev = kiln_context_device(ctx);
    printf("device: %s (%s, %s)\n", dev->name, kiln_backend_name(dev->backend),
           kiln_device_type_name(dev->type));

    uint64_t seed = 12345;
    for (size_t i = 0; i < count; i++)
        a[i] = next_uniform(&seed);
    for (size_t i = 0; i < count; i++)
        b[i] = next_uniform(&seed);

    ta = kiln_tensor_from_data(ctx, KILN_F32, 2, shape, a, bytes);
    tb = kiln_tensor_from_data(ctx, KILN_F32, 2, shape, b, bytes);
    if (!ta || !tb) {
        rc = report_error(ctx, "cannot upload the inputs", 2);
        goto out;
    }

    /* The first run builds kernels and pipelines; time the second. */
    double seconds = timed_matmul(ta, tb, c, bytes);
    if (seconds >= 0.0)
        seconds = timed_matmul(ta, tb, c, bytes);
    if (seconds < 0.0) {
        rc = report_error(ctx, "FAIL: matmul", 1);
        goto out;
    }

    /* NULL propagates through the chain: one check at the end suffices. */
    tsum = kiln_add(ta, tb);
    trelu = kiln_relu(tsum);
    if (!trelu || kiln_tensor_read(trelu, r, bytes) != KILN_OK) {
        rc = report_error(ctx, "FAIL: relu(add)", 1);
        goto out;
    }

    /* Guard bytes (KILN_GUARD_BYTES) and validation messages
     * (KILN_VULKAN_VALIDATION=1) report through the context's status. */
    if (kiln_check_guards(ctx) != KILN_OK || kiln_status_of(ctx) != KILN_OK) {
        rc = report_error(ctx, "FAIL", 1);
        goto out;
    }

    double mm_err = matmul_error(a, b, c, (size_t)n);
    double ew_err = relu_add_error(a, b, r, count);
    double gflops = 2.0 * (double)n * n * n / seconds * 1e-9;
    int ok = mm_err <= MATMUL_TOLERANCE && ew_err <= ELEMENTWISE_TOLERANCE;

    printf("matmul %dx%d: %.3f ms (with read-back), %.2f GFLOP/s\n", n, n,
           seconds * 1e3, gflops);
    printf("matmul relative error %.3g (tolerance %.0e)\n", mm_err,
           MATMUL_TOLERANCE);
    printf("relu(add) max error %.3g (tolerance %.0e)\n", ew_err,
           ELEMENTWISE_TOLERANCE);
    printf("%s\n", ok ? "PASS" : "FAIL");
    rc = ok ? 0 : 1;

out:
    kiln_tensor_free(trelu);
    kiln_tensor_free(tsum);
    kiln_tensor_free(tb);
    kiln_tensor_free(ta);
    kiln_context_destroy(ctx);
    free(r);
    free(c);
    free(b);
    free(a);
    return rc;
}
