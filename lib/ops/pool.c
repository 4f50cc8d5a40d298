/*
 * pool.c - max and average pooling over NCHW images and their gradients;
 * global average pooling (a mean over H and W, no kernel of its own).
 *
 * POOL runs one work-item per output; the average gradient gathers, per
 * input element, over the windows that contain it.  The max gradient gets
 * only dy, the indices and x's shape (no window geometry), so it cannot
 * find an element's windows: it runs one work-item per (n, c) plane that
 * adds dy at the recorded indices in output order - deterministic, linear
 * in the plane's size, parallel over N*C only.
 */
#include <string.h>

#include "ops/ops.h"
#include "queue/kernels_conv.h"

typedef struct pool_geom {
    int64_t n, c, h, w;
    int64_t kh, kw, sh, sw, pt, pl, oh, ow;
    int count_include_pad;
} pool_geom;

static kiln_status check_image(kiln_context *ctx, const char *call,
                               const kiln_tensor *t, const char *what)
{
    char s[160];
    if (t->ndim != 4 || !kiln__is_float(t->dtype))
        return kiln__error(ctx, t->ndim != 4 ? KILN_ERROR_SHAPE
                                             : KILN_ERROR_DTYPE,
                           "%s: %s must be a 4-D f32 or f64 tensor, got %s %s",
                           call, what, kiln_dtype_name(t->dtype),
                           kiln__shape_string(t->ndim, t->shape, s, sizeof s));
    return KILN_OK;
}

static kiln_status pool_geometry(kiln_context *ctx, const char *call,
                                 const kiln_pool2d_params *p,
                                 const int64_t *xs, pool_geom *g)
{
    if (!p)
        return kiln__error(ctx, KILN_ERROR_INVALID_ARGUMENT,
                           "%s: pooling parameters are NULL", call);
    int ok = (unsigned)p->mode <= KILN_PAD_VALID;
    for (int i = 0; i < 2; i++)
        ok = ok && p->kernel[i] >= 1 && p->stride[i] >= 0 &&
             p->padding[i] >= 0 &&
             (p->mode != KILN_PAD_EXPLICIT ||
              2 * p->padding[i] <= p->kernel[i]);
    if (!ok)
        return kiln__error(ctx, KILN_ERROR_INVALID_ARGUMENT,
                           "%s: kernel %dx%d, stride %dx%d, padding %dx%d, "
                           "mode %d: kernel must be >= 1, stride >= 0, "
                           "padding at most half the kernel", call,
                           p->kernel[0], p->kernel[1], p->stride[0],
                           p->stride[1], p->padding[0], p->padding[1],
                           (int)p->mode);
    *g = (pool_geom){
        .n = xs[0], .c = xs[1], .h = xs[2], .w = xs[3],
        .kh = p->kernel[0], .kw = p->kernel[1],
        .sh = p->stride[0] ? p->stride[0] : p->kernel[0],
        .sw = p->stride[1] ? p->stride[1] : p->kernel[1],
        .count_include_pad = p->count_include_pad != 0};
    kiln__window_axis(g->h, g->kh, g->sh, 1, p->padding[0], p->mode, &g->pt,
                      &g->oh);
    kiln__window_axis(g->w, g->kw, g->sw, 1, p->padding[1], p->mode, &g->pl,
                      &g->ow);
    if (g->oh < 1 || g->ow < 1)
        return kiln__error(ctx, KILN_ERROR_SHAPE,
                           "%s: the %lldx%lld window does not fit the padded "
                           "%lldx%lld input", call, (long long)g->kh,
                           (long long)g->kw, (long long)g->h,
                           (long long)g->w);
    return KILN_OK;
}

/* Fills the parameter block; @in is the strided input (x or dy). */
static void pool_params(kiln_pool_params *p, const pool_geom *g, int op,
                        int64_t n, const kiln_tensor *in,
                        const kiln_tensor *out, const kiln_tensor *idx)
{
    *p = (kiln_pool_params){
        .n = (int32_t)n, .op = op,
        .count_include_pad = g->count_include_pad,
        .off_in = (int32_t)kiln__block_offset(in),
        .off_out = (int32_t)kiln__block_offset(out),
        .off_idx = idx ? (int32_t)kiln__block_offset(idx) : 0,
        .channels = (int32_t)g->c, .height = (int32_t)g->h,
        .width = (int32_t)g->w, .out_h = (int32_t)g->oh,
        .out_w = (int32_t)g->ow, .kernel_h = (int32_t)g->kh,
        .kernel_w = (int32_t)g->kw, .stride_h = (int32_t)g->sh,
        .stride_w = (int32_t)g->sw, .pad_top = (int32_t)g->pt,
        .pad_left = (int32_t)g->pl};
    for (int i = 0; i < 4; i++)
        p->in_stride[i] = (int32_t)in->stride[i];
}

/* One POOL or POOL_BACKWARD dispatch over @n work-items.  Without @idx
 * (average) the output is bound again in its slot: the kernels declare
 * three bindings and never touch the third for averages. */
static kiln_status launch_pool(kiln_context *ctx, const char *call,
                               kiln_kernel_id kernel, const pool_geom *g,
                               int op, int64_t n, kiln_tensor *in,
                               kiln_tensor *out, kiln_tensor *idx)
{
    if (n == 0)
        return KILN_OK;
    kiln_dispatch d;
    kiln__dispatch_init(ctx, &d, kernel, in->dtype, n);
    pool_params((kiln_pool_params *)d.params, g, op, n, in, out, idx);
    int fwd = kernel == KILN_K_POOL;
    kiln__bind(&d, in, KILN_ACCESS_READ);
    kiln__bind(&d, out, KILN_ACCESS_WRITE);
    if (idx)
        kiln__bind(&d, idx, fwd ? KILN_ACCESS_WRITE : KILN_ACCESS_READ);
    else
        kiln__bind(&d, out, KILN_ACCESS_WRITE);
    return kiln__launch(ctx, call, &d, -1);
}

static kiln_tensor *pool_forward(const char *call, kiln_tensor *x,
                                 const kiln_pool2d_params *p, int op,
                                 kiln_tensor **indices)
{
    kiln_context *ctx = kiln__args(call, 1, &x);
    pool_geom g;
    if (indices)
        *indices = NULL;
    if (!ctx || check_image(ctx, call, x, "x") != KILN_OK ||
        pool_geometry(ctx, call, p, x->shape, &g) != KILN_OK)
        return NULL;
    int64_t ys[4] = {g.n, g.c, g.oh, g.ow};
    kiln_tensor *y = kiln__tensor_alloc(ctx, call, x->dtype, 4, ys);
    kiln_tensor *idx = NULL;
    if (y && op == KILN_KPOOL_MAX)
        idx = kiln__tensor_alloc(ctx, call, KILN_I32, 4, ys);
    if (!y || (op == KILN_KPOOL_MAX && !idx) ||
        launch_pool(ctx, call, KILN_K_POOL, &g, op, kiln_tensor_numel(y), x,
                    y, idx) != KILN_OK) {
        kiln_tensor_free(y);
        kiln_tensor_free(idx);
        return NULL;
    }
    if (indices)
        *indices = idx;
    else
        kiln_tensor_free(idx);
    return y;
}

kiln_tensor *kiln_max_pool2d(kiln_tensor *x, const kiln_pool2d_params *p,
                             kiln_tensor **indices)
{
    return pool_forward("kiln_max_pool2d", x, p, KILN_KPOOL_MAX, indices);
}

kiln_tensor *kiln_avg_pool2d(kiln_tensor *x, const kiln_pool2d_params *p)
{
    return pool_forward("kiln_avg_pool2d", x, p, KILN_KPOOL_AVG, NULL);
}

static kiln_status check_x_shape(kiln_context *ctx, const char *call,
                                 const int64_t *xs, const kiln_tensor *dy)
{
    if (!xs)
        return kiln__error(ctx, KILN_ERROR_INVALID_ARGUMENT,
                           "%s: x_shape is NULL", call);
    if (xs[0] != dy->shape[0] || xs[1] != dy->shape[1] || xs[2] < 0 ||
        xs[3] < 0) {
        char a[160], b[160];
        return kiln__error(ctx, KILN_ERROR_SHAPE,
                           "%s: gradient %s does not fit input shape %s", call,
                           kiln__shape_string(4, dy->shape, a, sizeof a),
                           kiln__shape_string(4, xs, b, sizeof b));
    }
    return KILN_OK;
}

kiln_tensor *kiln_max_pool2d_backward(kiln_tensor *dy, kiln_tensor *indices,
                                      const int64_t *x_shape)
{
    const char *call = "kiln_max_pool2d_backward";
    kiln_tensor *args[2] = {dy, indices};
    kiln_context *ctx = kiln__args(call, 2, args);
    if (!ctx || check_image(ctx, call, dy, "dy") != KILN_OK ||
        check_x_shape(ctx, call, x_shape, dy) != KILN_OK)
        return NULL;
    if (indices->dtype != KILN_I32 || indices->ndim != 4 ||
        memcmp(indices->shape, dy->shape, 4 * sizeof(int64_t)) != 0)
        return kiln__error_null(ctx, KILN_ERROR_SHAPE,
                                "%s: indices must be i32 of dy's shape", call);
    /* Only the sizes matter: the scatter follows the indices. */
    pool_geom g = {.n = x_shape[0], .c = x_shape[1], .h = x_shape[2],
                   .w = x_shape[3], .kh = 1, .kw = 1, .sh = 1, .sw = 1,
                   .oh = dy->shape[2], .ow = dy->shape[3]};
    kiln_tensor *dx = kiln__tensor_alloc(ctx, call, dy->dtype, 4, x_shape);
    kiln_tensor *idx = dx ? (kiln_tensor_is_contiguous(indices)
                                 ? indices
                                 : kiln_contiguous_copy(indices))
                          : NULL;
    kiln_status s = idx ? launch_pool(ctx, call, KILN_K_POOL_BACKWARD, &g,
                                      KILN_KPOOL_MAX,
                                      kiln_tensor_numel(dx) ? g.n * g.c : 0,
                                      dy, dx, idx)
                        : KILN_ERROR_OUT_OF_HOST_MEMORY;
    if (idx && idx != indices)
        kiln_tensor_free(idx);
    if (s != KILN_OK) {
        kiln_tensor_free(dx);
        return NULL;
    }
    return dx;
}

kiln_tensor *kiln_avg_pool2d_backward(kiln_tensor *dy, const int64_t *x_shape,
                                      const kiln_pool2d_params *p)
{
    const char *call = "kiln_avg_pool2d_backward";
    kiln_context *ctx = kiln__args(call, 1, &dy);
    pool_geom g;
    if (!ctx || check_image(ctx, call, dy, "dy") != KILN_OK ||
        check_x_shape(ctx, call, x_shape, dy) != KILN_OK ||
        pool_geometry(ctx, call, p, x_shape, &g) != KILN_OK)
        return NULL;
    if (g.oh != dy->shape[2] || g.ow != dy->shape[3]) {
        char a[160], b[160];
        return kiln__error_null(ctx, KILN_ERROR_SHAPE,
                                "%s: gradient %s is not the pooling output "
                                "of %s", call,
                                kiln__shape_string(4, dy->shape, a, sizeof a),
                                kiln__shape_string(4, x_shape, b, sizeof b));
    }
    kiln_tensor *dx = kiln__tensor_alloc(ctx, call, dy->dtype, 4, x_shape);
    if (dx && launch_pool(ctx, call, KILN_K_POOL_BACKWARD, &g, KILN_KPOOL_AVG,
                          kiln_tensor_numel(dx), dy, dx, NULL) != KILN_OK) {
        kiln_tensor_free(dx);
        return NULL;
    }
    return dx;
}

kiln_tensor *kiln_global_avg_pool2d(kiln_tensor *x)
{
    const char *call = "kiln_global_avg_pool2d";
    kiln_context *ctx = kiln__args(call, 1, &x);
    if (!ctx || check_image(ctx, call, x, "x") != KILN_OK)
        return NULL;
    return kiln_mean(x, 2, (const int[]){2, 3}, 1);
}
