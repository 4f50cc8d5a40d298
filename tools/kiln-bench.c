/*
 * kiln-bench - throughput of Kiln's kernels against anchors measured in the
 * same run on the same device:
 *   - GEMM (f32) in GFLOP/s against CLBlast's SGEMM on the same OpenCL
 *     device (when the device is an OpenCL one and CLBlast is available);
 *   - elementwise kernels in GB/s against the driver's own buffer copy
 *     (the memory-copy ceiling: clEnqueueCopyBuffer / vkCmdCopyBuffer).
 * Ratios, not absolute numbers, are what compare across machines.
 *
 * usage: kiln-bench [--device SPEC] [--sizes 256,512,1024] [--repeat N]
 *                   [--mib N]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h" /* the driver's buffer copy: the bandwidth anchor */
#include "kiln.h"
#include "kiln_config.h"
#include "tensor.h"

#if KILN_BENCH_CLBLAST
#define CL_TARGET_OPENCL_VERSION 120
#include <clblast_c.h>
#endif

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static kiln_tensor *random_matrix(kiln_context *ctx, int64_t n, unsigned seed)
{
    float *v = malloc((size_t)(n * n) * sizeof *v);
    for (int64_t i = 0; i < n * n; i++) {
        seed = seed * 1664525u + 1013904223u;
        v[i] = (float)(seed >> 8) / 16777216.0f - 0.5f;
    }
    kiln_tensor *t = kiln_tensor_from_data(ctx, KILN_F32, 2,
                                           (int64_t[]){n, n}, v,
                                           (size_t)(n * n) * sizeof *v);
    free(v);
    return t;
}

/* Seconds per C = A B on the context's device. */
static double time_kiln_gemm(kiln_context *ctx, int64_t n, int reps)
{
    kiln_tensor *a = random_matrix(ctx, n, 1), *b = random_matrix(ctx, n, 2);
    kiln_tensor_free(kiln_matmul(a, b)); /* build kernels, warm caches */
    kiln_finish(ctx);
    double t0 = now();
    for (int r = 0; r < reps; r++)
        kiln_tensor_free(kiln_matmul(a, b));
    kiln_finish(ctx);
    double t = (now() - t0) / reps;
    kiln_tensor_free(a);
    kiln_tensor_free(b);
    return kiln_status_of(ctx) == KILN_OK ? t : -1;
}

#if KILN_BENCH_CLBLAST
/* The OpenCL device Kiln lists at @index (same enumeration order). */
static cl_device_id find_cl_device(int index)
{
    cl_uint np = 0;
    if (clGetPlatformIDs(0, NULL, &np) != CL_SUCCESS || np == 0)
        return NULL;
    cl_platform_id *ps = calloc(np, sizeof *ps);
    clGetPlatformIDs(np, ps, NULL);
    cl_device_id found = NULL;
    for (cl_uint p = 0; p < np && !found; p++) {
        cl_uint nd = 0;
        if (clGetDeviceIDs(ps[p], CL_DEVICE_TYPE_ALL, 0, NULL, &nd) !=
                CL_SUCCESS || nd == 0)
            continue;
        cl_device_id *ds = calloc(nd, sizeof *ds);
        clGetDeviceIDs(ps[p], CL_DEVICE_TYPE_ALL, nd, ds, NULL);
        if (index < (int)nd)
            found = ds[index];
        index -= (int)nd;
        free(ds);
    }
    free(ps);
    return found;
}

/* Seconds per CLBlast SGEMM of size n, or -1. */
static double time_clblast(cl_device_id dev, int64_t n, int reps)
{
    cl_int err;
    cl_context c = clCreateContext(NULL, 1, &dev, NULL, NULL, &err);
    if (!c)
        return -1;
    cl_command_queue q = clCreateCommandQueue(c, dev, 0, &err);
    size_t bytes = (size_t)(n * n) * sizeof(float);
    float *host = malloc(bytes);
    for (int64_t i = 0; i < n * n; i++)
        host[i] = (float)(i % 17) * 0.01f;
    cl_mem a = clCreateBuffer(c, CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR,
                              bytes, host, &err);
    cl_mem b = clCreateBuffer(c, CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR,
                              bytes, host, &err);
    cl_mem cc = clCreateBuffer(c, CL_MEM_READ_WRITE, bytes, NULL, &err);
    free(host);
    double t = -1;
    size_t un = (size_t)n;
    if (CLBlastSgemm(CLBlastLayoutRowMajor, CLBlastTransposeNo,
                     CLBlastTransposeNo, un, un, un, 1.0f, a, 0, un, b, 0, un,
                     0.0f, cc, 0, un, &q, NULL) == CLBlastSuccess) {
        clFinish(q);
        double t0 = now();
        for (int r = 0; r < reps; r++)
            CLBlastSgemm(CLBlastLayoutRowMajor, CLBlastTransposeNo,
                         CLBlastTransposeNo, un, un, un, 1.0f, a, 0, un, b, 0,
                         un, 0.0f, cc, 0, un, &q, NULL);
        clFinish(q);
        t = (now() - t0) / reps;
    }
    clReleaseMemObject(a);
    clReleaseMemObject(b);
    clReleaseMemObject(cc);
    clReleaseCommandQueue(q);
    clReleaseContext(c);
    return t;
}
#endif

static void bench_gemm(kiln_context *ctx, const char *sizes, int reps)
{
    const kiln_device_info *d = kiln_context_device(ctx);
    char *list = strdup(sizes);
    for (char *tok = strtok(list, ","); tok; tok = strtok(NULL, ",")) {
        int64_t n = atoll(tok);
        double flop = 2.0 * (double)n * (double)n * (double)n;
        double tk = time_kiln_gemm(ctx, n, reps);
        printf("gemm f32 %5lld: kiln %8.2f GFLOP/s", (long long)n,
               tk > 0 ? flop / tk * 1e-9 : 0.0);
#if KILN_BENCH_CLBLAST
        if (d->backend == KILN_BACKEND_OPENCL) {
            cl_device_id dev = find_cl_device(d->index);
            double tc = dev ? time_clblast(dev, n, reps) : -1;
            if (tc > 0 && tk > 0)
                printf("   CLBlast %8.2f GFLOP/s   kiln/CLBlast %.2f",
                       flop / tc * 1e-9, tc / tk);
        }
#endif
        printf("\n");
    }
    (void)d;
    free(list);
}

/* Bytes per second of the driver's own block copy: the ceiling. */
static double copy_ceiling(kiln_context *ctx, kiln_tensor *src,
                           kiln_tensor *dst, size_t bytes, int reps)
{
    kiln_queue *q = ctx->queue;
    kiln_allocation *s = src->storage->alloc, *d = dst->storage->alloc;
    q->vt->copy(q, s->block, s->offset, d->block, d->offset, bytes);
    q->vt->finish(q);
    double t0 = now();
    for (int r = 0; r < reps; r++)
        q->vt->copy(q, s->block, s->offset, d->block, d->offset, bytes);
    q->vt->finish(q);
    return 2.0 * (double)bytes * reps / (now() - t0);
}

static void bench_bandwidth(kiln_context *ctx, int mib, int reps)
{
    int64_t n = (int64_t)mib * 1024 * 1024 / 4;
    kiln_tensor *a = kiln_tensor_new(ctx, KILN_F32, 1, &n);
    kiln_tensor *b = kiln_tensor_new(ctx, KILN_F32, 1, &n);
    kiln_fill(a, 1.0);
    kiln_fill(b, 2.0);
    if (!a || !b) {
        fprintf(stderr, "kiln-bench: %s\n", kiln_error_message(ctx));
        kiln_tensor_free(a);
        kiln_tensor_free(b);
        return;
    }
    size_t bytes = (size_t)n * 4;
    double ceiling = copy_ceiling(ctx, a, b, bytes, reps);
    printf("copy ceiling (driver buffer copy, %d MiB): %.2f GB/s\n", mib,
           ceiling * 1e-9);
    struct { const char *name; int streams; } ops[] = {{"copy kernel", 2},
                                                       {"add", 3},
                                                       {"relu", 2}};
    for (int o = 0; o < 3; o++) {
        kiln_tensor_free(o == 0 ? kiln_contiguous_copy(a)
                         : o == 1 ? kiln_add(a, b) : kiln_relu(a));
        kiln_finish(ctx);
        double t0 = now();
        for (int r = 0; r < reps; r++)
            kiln_tensor_free(o == 0 ? kiln_contiguous_copy(a)
                             : o == 1 ? kiln_add(a, b) : kiln_relu(a));
        kiln_finish(ctx);
        double bw = (double)ops[o].streams * (double)bytes * reps /
                    (now() - t0);
        printf("  %-12s %8.2f GB/s   of ceiling %.2f\n", ops[o].name,
               bw * 1e-9, bw / ceiling);
    }
    kiln_tensor_free(a);
    kiln_tensor_free(b);
}

int main(int argc, char **argv)
{
    const char *device = NULL, *sizes = "256,512,1024";
    int reps = 5, mib = 64;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--device") && i + 1 < argc)
            device = argv[++i];
        else if (!strcmp(argv[i], "--sizes") && i + 1 < argc)
            sizes = argv[++i];
        else if (!strcmp(argv[i], "--repeat") && i + 1 < argc)
            reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--mib") && i + 1 < argc)
            mib = atoi(argv[++i]);
        else {
            printf("usage: %s [--device SPEC] [--sizes 256,512,1024] "
                   "[--repeat N] [--mib N]\n", argv[0]);
            return strcmp(argv[i], "--help") ? 2 : 0;
        }
    }
    kiln_context *ctx = kiln_context_create(
        &(kiln_context_options){.device = device});
    if (!ctx || kiln_status_of(ctx) != KILN_OK) {
        fprintf(stderr, "kiln-bench: %s\n", kiln_error_message(ctx));
        kiln_context_destroy(ctx);
        return 2;
    }
    const kiln_device_info *d = kiln_context_device(ctx);
    printf("device: %s [%s, %s, %s]\n", d->name, kiln_backend_name(d->backend),
           kiln_device_type_name(d->type), d->driver_version);
    bench_gemm(ctx, sizes, reps);
    bench_bandwidth(ctx, mib, reps);
    int rc = kiln_status_of(ctx) == KILN_OK ? 0 : 1;
    if (rc)
        fprintf(stderr, "kiln-bench: %s\n", kiln_error_message(ctx));
    kiln_context_destroy(ctx);
    return rc;
}
