/*
 * kiln-bench - throughput of Kiln's kernels against anchors measured in the
 * same run on the same device:
 *   - GEMM (f32) in GFLOP/s against CLBlast's SGEMM on the same OpenCL
 *     device (when the device is an OpenCL one and CLBlast is available);
 *   - elementwise kernels in GB/s against the driver's own buffer copy
 *     (the memory-copy ceiling: clEnqueueCopyBuffer / vkCmdCopyBuffer);
 *   - the graph scheduler: a 5-op elementwise chain fused vs unfused (time
 *     ratio, effective GB/s = the chain's minimum traffic / time, against
 *     the same copy ceiling) and kernels per LeNet-5 training step fused
 *     vs unfused.
 * Ratios, not absolute numbers, are what compare across machines.
 *
 * usage: kiln-bench [--device SPEC] [--sizes 256,512,1024] [--repeat N]
 *                   [--mib N] [--only gemm|bandwidth|fusion]
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

/* A variable of @shape with small deterministic values. */
static kiln_node *bench_param(kiln_graph *g, kiln_context *ctx, int ndim,
                              const int64_t *shape, uint64_t seed)
{
    kiln_tensor *t = kiln_tensor_new(ctx, KILN_F32, ndim, shape);
    kiln_init(t, ndim > 1 ? KILN_INIT_XAVIER_UNIFORM : KILN_INIT_ZEROS, 0, 0,
              seed, 0);
    kiln_node *v = kiln_g_variable(g, "p", t);
    kiln_tensor_free(t);
    return v;
}

/* LeNet-5 on 28x28 digits, batch 64: conv5x5x6 SAME, relu, pool 2,
 * conv5x5x16, relu, pool 2, dense 120, relu, dense 84, relu, dense 10,
 * softmax cross-entropy; one training step = loss + every gradient. */
static void bench_lenet_kernels(kiln_context *ctx)
{
    uint64_t kernels[2] = {0, 0}, fused_kernels = 0, peak[2] = {0, 0},
             all[2] = {0, 0};
    double secs[2] = {0, 0};
    for (int fused = 0; fused <= 1; fused++) {
        kiln_graph *g = kiln_graph_new(ctx);
        kiln_graph_set_fusion(g, fused);
        kiln_node *x = kiln_g_input(g, "x", KILN_F32, 4,
                                    (int64_t[]){-1, 1, 28, 28});
        kiln_node *y = kiln_g_input(g, "y", KILN_I32, 1, (int64_t[]){-1});
        kiln_node *p[10] = {
            bench_param(g, ctx, 4, (int64_t[]){6, 1, 5, 5}, 1),
            bench_param(g, ctx, 1, (int64_t[]){6}, 0),
            bench_param(g, ctx, 4, (int64_t[]){16, 6, 5, 5}, 2),
            bench_param(g, ctx, 1, (int64_t[]){16}, 0),
            bench_param(g, ctx, 2, (int64_t[]){400, 120}, 3),
            bench_param(g, ctx, 2, (int64_t[]){1, 120}, 0),
            bench_param(g, ctx, 2, (int64_t[]){120, 84}, 4),
            bench_param(g, ctx, 2, (int64_t[]){1, 84}, 0),
            bench_param(g, ctx, 2, (int64_t[]){84, 10}, 5),
            bench_param(g, ctx, 2, (int64_t[]){1, 10}, 0)};
        kiln_conv2d_params same = {.mode = KILN_PAD_SAME};
        kiln_pool2d_params pool = {.kernel = {2, 2}};
        kiln_node *h = kiln_g_relu(kiln_g_conv2d(x, p[0], p[1], &same));
        h = kiln_g_max_pool2d(h, &pool);
        h = kiln_g_relu(kiln_g_conv2d(h, p[2], p[3], NULL));
        h = kiln_g_flatten(kiln_g_max_pool2d(h, &pool), 1, 3);
        h = kiln_g_relu(kiln_g_add(kiln_g_matmul(h, p[4]), p[5]));
        h = kiln_g_relu(kiln_g_add(kiln_g_matmul(h, p[6]), p[7]));
        kiln_node *logits = kiln_g_add(kiln_g_matmul(h, p[8]), p[9]);
        kiln_node *loss = kiln_g_softmax_cross_entropy(logits, y);
        kiln_node *fetch[11];
        fetch[0] = loss;
        kiln_g_gradients(loss, 10, p, fetch + 1);
        kiln_tensor *xv = kiln_tensor_new(ctx, KILN_F32, 4,
                                          (int64_t[]){64, 1, 28, 28});
        kiln_random_uniform(xv, 7, 0, 0, 1);
        int32_t labels[64];
        for (int i = 0; i < 64; i++)
            labels[i] = i % 10;
        kiln_tensor *yv = kiln_tensor_from_data(ctx, KILN_I32, 1,
                                                (int64_t[]){64}, labels,
                                                sizeof labels);
        kiln_feed feeds[2] = {{x, xv}, {y, yv}};
        kiln_tensor *out[11];
        int reps = 3;
        for (int r = 0; r <= reps; r++) {
            if (r == 1) {
                kiln_finish(ctx);
                secs[fused] = now();
            }
            if (kiln_graph_run(g, 2, feeds, 11, fetch, out) != KILN_OK)
                break;
            for (int i = 0; i < 11; i++)
                kiln_tensor_free(out[i]);
        }
        kiln_finish(ctx);
        secs[fused] = (now() - secs[fused]) / reps;
        kiln_graph_stats st;
        kiln_graph_get_stats(g, &st);
        kernels[fused] = st.kernels;
        peak[fused] = st.peak_bytes;
        all[fused] = st.intermediate_bytes;
        if (fused)
            fused_kernels = st.fused_kernels;
        kiln_tensor_free(xv);
        kiln_tensor_free(yv);
        kiln_graph_free(g);
    }
    if (kiln_status_of(ctx) != KILN_OK)
        return;
    printf("LeNet-5 training step (batch 64, forward + loss + gradients):\n");
    for (int fused = 1; fused >= 0; fused--)
        printf("  %-8s %4llu kernels %8.2f ms   peak %6.2f MiB of %6.2f MiB "
               "intermediates\n", fused ? "fused" : "unfused",
               (unsigned long long)kernels[fused], secs[fused] * 1e3,
               peak[fused] / 1048576.0, all[fused] / 1048576.0);
    printf("  fused groups in the fused step (generated kernels, reductions "
           "with a prologue, GEMM and conv epilogues): %llu\n",
           (unsigned long long)fused_kernels);
}

/* The 5-op chain ((x * y + 1) relu * 0.5 - y): reads x and y, writes the
 * result, so its least traffic is 3 values per element. */
static kiln_node *chain5(kiln_node *x, kiln_node *y)
{
    kiln_node *a = kiln_g_add_scalar(kiln_g_mul(x, y), 1.0);
    return kiln_g_sub(kiln_g_scale(kiln_g_relu(a), 0.5), y);
}

/* mean((x - y)^2), a loss: a reduction with a 2-op prologue; reads x and
 * y, so 2 values per element. */
static kiln_node *mse(kiln_node *x, kiln_node *y)
{
    return kiln_g_mean(kiln_g_square(kiln_g_sub(x, y)), 0, NULL, 0);
}

/* Times the graph @build(x, y) over @xv, @yv fused and unfused and prints
 * both against the copy @ceiling, counting @values values of traffic per
 * element. */
static void bench_graph(kiln_context *ctx, const char *what,
                        kiln_node *(*build)(kiln_node *, kiln_node *),
                        double values, kiln_tensor *xv, kiln_tensor *yv,
                        int64_t n, double ceiling, int reps)
{
    double secs[2] = {0, 0};
    uint64_t kernels[2] = {0, 0};
    for (int fused = 0; fused <= 1; fused++) {
        kiln_graph *g = kiln_graph_new(ctx);
        kiln_graph_set_fusion(g, fused);
        kiln_node *x = kiln_g_input(g, "x", KILN_F32, 1, &n);
        kiln_node *y = kiln_g_input(g, "y", KILN_F32, 1, &n);
        kiln_node *out = build(x, y);
        kiln_feed feeds[2] = {{x, xv}, {y, yv}};
        kiln_tensor *r = NULL;
        kiln_graph_run(g, 2, feeds, 1, &out, &r); /* build, warm up */
        kiln_tensor_free(r);
        kiln_finish(ctx);
        double t0 = now();
        for (int i = 0; i < reps; i++) {
            kiln_graph_run(g, 2, feeds, 1, &out, &r);
            kiln_tensor_free(r);
        }
        kiln_finish(ctx);
        secs[fused] = (now() - t0) / reps;
        kiln_graph_stats st;
        kiln_graph_get_stats(g, &st);
        kernels[fused] = st.kernels;
        kiln_graph_free(g);
    }
    if (kiln_status_of(ctx) != KILN_OK)
        return;
    double traffic = values * (double)n * 4;
    printf("%s:\n", what);
    for (int fused = 1; fused >= 0; fused--)
        printf("  %-8s %3llu kernels %9.3f ms  effective %8.2f GB/s   "
               "of ceiling %.2f\n", fused ? "fused" : "unfused",
               (unsigned long long)kernels[fused], secs[fused] * 1e3,
               traffic / secs[fused] * 1e-9, traffic / secs[fused] / ceiling);
    printf("  fused/unfused time ratio %.3f (speed-up %.2fx)\n",
           secs[1] / secs[0], secs[0] / secs[1]);
}

static void bench_fusion(kiln_context *ctx, int mib, int reps)
{
    int64_t n = (int64_t)mib * 1024 * 1024 / 4;
    kiln_tensor *xv = kiln_tensor_new(ctx, KILN_F32, 1, &n);
    kiln_tensor *yv = kiln_tensor_new(ctx, KILN_F32, 1, &n);
    kiln_fill(xv, 1.5);
    kiln_fill(yv, -0.25);
    size_t bytes = (size_t)n * 4;
    double ceiling = xv && yv ? copy_ceiling(ctx, xv, yv, bytes, reps) : 0;
    if (kiln_status_of(ctx) == KILN_OK && ceiling > 0) {
        char what[96];
        snprintf(what, sizeof what, "5-op chain f32, %d MiB per operand "
                 "(copy ceiling %.2f GB/s)", mib, ceiling * 1e-9);
        bench_graph(ctx, what, chain5, 3, xv, yv, n, ceiling, reps);
        snprintf(what, sizeof what, "MSE loss mean((x - y)^2) f32, %d MiB "
                 "per operand (a reduction's prologue)", mib);
        bench_graph(ctx, what, mse, 2, xv, yv, n, ceiling, reps);
    }
    kiln_tensor_free(xv);
    kiln_tensor_free(yv);
    bench_lenet_kernels(ctx);
}

int main(int argc, char **argv)
{
    const char *device = NULL, *sizes = "256,512,1024";
    const char *only = NULL;
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
        else if (!strcmp(argv[i], "--only") && i + 1 < argc)
            only = argv[++i];
        else {
            printf("usage: %s [--device SPEC] [--sizes 256,512,1024] "
                   "[--repeat N] [--mib N] [--only gemm|bandwidth|fusion]\n",
                   argv[0]);
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
    if (!only || !strcmp(only, "gemm"))
        bench_gemm(ctx, sizes, reps);
    if (!only || !strcmp(only, "bandwidth"))
        bench_bandwidth(ctx, mib, reps);
    if (!only || !strcmp(only, "fusion"))
        bench_fusion(ctx, mib, reps);
    int rc = kiln_status_of(ctx) == KILN_OK ? 0 : 1;
    if (rc)
        fprintf(stderr, "kiln-bench: %s\n", kiln_error_message(ctx));
    kiln_context_destroy(ctx);
    return rc;
}
