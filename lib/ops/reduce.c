/*
 * reduce.c - sum, mean, max, min over chosen axes; argmax and argmin.
 *
 * The input is split into outer dimensions (kept, one output each) and
 * reduced dimensions, each side passed to the kernel as shape + strides, so
 * any axes of any strided view reduce without a copy.  kiln__reduction
 * (what a reduction means: checks, shapes, workgroup) is shared with the
 * fused reduction (fused_reduce.c), so both fold in the same order.
 */
#include <math.h>
#include <string.h>

#include "ops/ops.h"

typedef struct reduce_plan {
    int nout_dims, nred_dims;
    int64_t out_shape[KILN_MAX_DIMS], out_stride[KILN_MAX_DIMS];
    int64_t red_shape[KILN_MAX_DIMS], red_stride[KILN_MAX_DIMS];
} reduce_plan;

uint32_t kiln__reduce_local(const kiln_context *ctx, int64_t nred)
{
    uint32_t local = nred >= 4096 ? 256 : nred >= 256 ? 128 : 32;
    uint32_t max = ctx->device.max_workgroup_size;
    while (max && local > max)
        local /= 2;
    return local ? local : 1;
}

/* Slices per output (kernels.h): enough workgroups to fill the device
 * when a few outputs each reduce many elements (a loss's mean would
 * otherwise run on one workgroup), each slice at least 4 x local
 * elements.  The reference never splits: it is the exact oracle. */
static int64_t reduce_split(const kiln_context *ctx, int64_t nout,
                            int64_t nred, uint32_t local)
{
    int64_t want = 4 * (int64_t)(ctx->device.compute_units
                                     ? ctx->device.compute_units
                                     : 1);
    if (ctx->device.backend == KILN_BACKEND_REFERENCE || nout == 0 ||
        nout >= want)
        return 1;
    int64_t split = (want + nout - 1) / nout;
    int64_t most = nred / (4 * (int64_t)local);
    if (split > most)
        split = most;
    if (split > 4096)
        split = 4096;
    return split > 1 ? split : 1;
}

static kiln_status reduction_axes(kiln_context *ctx, const char *call,
                                  int ndim, int naxes, const int *axes,
                                  char *reduced)
{
    memset(reduced, 0, KILN_MAX_DIMS);
    if (naxes < 0 || naxes > ndim || (naxes > 0 && !axes))
        return kiln__error(ctx, KILN_ERROR_INVALID_ARGUMENT,
                           "%s: %d axes for a %d-D tensor", call, naxes,
                           ndim);
    for (int i = 0; i < naxes; i++) {
        int a = axes[i] < 0 ? axes[i] + ndim : axes[i];
        if (a < 0 || a >= ndim || reduced[a])
            return kiln__error(ctx, KILN_ERROR_INVALID_ARGUMENT,
                               "%s: axis %d is out of range or repeated for a "
                               "%d-D tensor", call, axes[i], ndim);
        reduced[a] = 1;
    }
    if (naxes == 0)
        memset(reduced, 1, (size_t)ndim);
    return KILN_OK;
}

kiln_status kiln__reduction(kiln_context *ctx, const char *call,
                            kiln_reduce_op op, kiln_dtype dtype, int ndim,
                            const int64_t *shape, int naxes, const int *axes,
                            int keepdims, kiln_reduction *r)
{
    memset(r, 0, sizeof *r);
    if ((unsigned)op > KILN_REDUCE_MIN)
        return kiln__error(ctx, KILN_ERROR_INVALID_ARGUMENT,
                           "%s: unknown reduction %d", call, (int)op);
    if (op == KILN_REDUCE_MEAN && dtype == KILN_I32)
        return kiln__error(ctx, KILN_ERROR_DTYPE,
                           "%s: needs f32 or f64, got i32 (cast first)", call);
    kiln_status s = reduction_axes(ctx, call, ndim, naxes, axes, r->reduced);
    if (s != KILN_OK)
        return s;
    r->nout = r->nred = 1;
    for (int i = 0; i < ndim; i++) {
        if (r->reduced[i]) {
            r->nred *= shape[i];
            if (keepdims)
                r->result_shape[r->result_ndim++] = 1;
        } else {
            r->nout *= shape[i];
            r->result_shape[r->result_ndim++] = shape[i];
        }
    }
    if (r->nred == 0 && (op == KILN_REDUCE_MAX || op == KILN_REDUCE_MIN))
        return kiln__error(ctx, KILN_ERROR_SHAPE,
                           "%s: reducing over an empty dimension has no %s",
                           call, op == KILN_REDUCE_MAX ? "maximum"
                                                       : "minimum");
    static const int kop[] = {KILN_KREDUCE_SUM, KILN_KREDUCE_SUM,
                              KILN_KREDUCE_MAX, KILN_KREDUCE_MIN};
    r->kop = kop[op];
    r->scale = 1.0;
    if (op == KILN_REDUCE_MEAN)
        r->scale = r->nred ? 1.0 / (double)r->nred : NAN;
    r->local = kiln__reduce_local(ctx, r->nred);
    r->split = reduce_split(ctx, r->nout, r->nred, r->local);
    return KILN_OK;
}

/* Appends a dimension to one side of a plan: size-1 dimensions are
 * dropped and one that continues the previous one contiguously (the
 * previous stride = this one's stride times its size) merges into it,
 * which keeps the row-major order of the side's index. */
static void side_push(int *n, int64_t *shape, int64_t *stride, int64_t size,
                      int64_t step)
{
    if (size == 1)
        return;
    if (*n > 0 && stride[*n - 1] == step * size) {
        shape[*n - 1] *= size;
        stride[*n - 1] = step;
        return;
    }
    shape[*n] = size;
    stride[(*n)++] = step;
}

/* The kept and reduced sides of @t's dimensions as shape + strides, each
 * side's contiguous runs merged (mostly one reduced dimension: the
 * kernels' fast path). */
static void plan_reduce(const kiln_tensor *t, const kiln_reduction *r,
                        reduce_plan *pl)
{
    memset(pl, 0, sizeof *pl);
    for (int i = 0; i < t->ndim; i++) {
        if (r->reduced[i])
            side_push(&pl->nred_dims, pl->red_shape, pl->red_stride,
                      t->shape[i], t->stride[i]);
        else
            side_push(&pl->nout_dims, pl->out_shape, pl->out_stride,
                      t->shape[i], t->stride[i]);
    }
}

/* Right-aligns a plan side into KILN_KDIMS kernel arrays. */
static void to_kernel(int n, const int64_t *shape, const int64_t *stride,
                      int32_t *kshape, int32_t *kstride)
{
    int lead = KILN_KDIMS - n;
    for (int i = 0; i < KILN_KDIMS; i++) {
        kshape[i] = i < lead ? 1 : (int32_t)shape[i - lead];
        kstride[i] = i < lead ? 0 : (int32_t)stride[i - lead];
    }
}

void kiln__reduce_dispatch(kiln_context *ctx, kiln_dispatch *d,
                           kiln_kernel_id kernel, kiln_dtype dtype,
                           const kiln_reduction *r)
{
    int64_t groups = r->nout * r->split;
    kiln__dispatch_init(ctx, d, kernel, dtype, groups);
    d->local[0] = r->local;
    d->groups[0] = (uint32_t)(groups < 65535 ? groups : 65535);
}

kiln_tensor *kiln__reduce_alloc(kiln_context *ctx, const char *call,
                                kiln_dtype dtype, const kiln_reduction *r)
{
    if (r->split <= 1)
        return kiln__tensor_alloc(ctx, call, dtype, r->result_ndim,
                                  r->result_shape);
    int64_t n = r->nout * r->split;
    return kiln__tensor_alloc(ctx, call, dtype, 1, &n);
}

kiln_tensor *kiln__reduce_finish(kiln_context *ctx, const char *call,
                                 kiln_tensor *partial, const kiln_reduction *r)
{
    if (!partial || r->split <= 1)
        return partial;
    kiln_tensor *out = kiln__tensor_alloc(ctx, call, partial->dtype,
                                          r->result_ndim, r->result_shape);
    if (!out) {
        kiln_tensor_free(partial);
        return NULL;
    }
    /* Output o combines its r->split partial results, contiguous. */
    kiln_reduction fin = *r;
    fin.nred = r->split;
    fin.split = 1;
    fin.local = kiln__reduce_local(ctx, r->split);
    kiln_dispatch d;
    kiln__reduce_dispatch(ctx, &d, KILN_K_REDUCE, partial->dtype, &fin);
    kiln_reduce_params *p = (kiln_reduce_params *)d.params;
    *p = (kiln_reduce_params){.nout = (int32_t)r->nout,
                              .nred = (int32_t)r->split,
                              .op = r->kop,
                              .off_in = (int32_t)kiln__block_offset(partial),
                              .off_out = (int32_t)kiln__block_offset(out),
                              .split = 1};
    to_kernel(1, &r->nout, &r->split, p->outer_shape, p->outer_stride);
    to_kernel(1, &r->split, (const int64_t[]){1}, p->red_shape,
              p->red_stride);
    kiln__scalar_bits(partial->dtype, r->scale, &p->scale_lo, &p->scale_hi);
    kiln__bind(&d, partial, KILN_ACCESS_READ);
    kiln__bind(&d, out, KILN_ACCESS_WRITE);
    kiln_status s = kiln__launch(ctx, call, &d, r->kop);
    kiln_tensor_free(partial);
    if (s != KILN_OK) {
        kiln_tensor_free(out);
        return NULL;
    }
    return out;
}

static kiln_tensor *launch_reduce(kiln_context *ctx, const char *call,
                                  kiln_tensor *t, const kiln_reduction *r,
                                  kiln_kernel_id kernel, int op,
                                  kiln_dtype out_dtype)
{
    kiln_tensor *out = kiln__reduce_alloc(ctx, call, out_dtype, r);
    if (!out || r->nout == 0)
        return out;
    reduce_plan pl;
    plan_reduce(t, r, &pl);
    kiln_dispatch d;
    kiln__reduce_dispatch(ctx, &d, kernel, t->dtype, r);
    kiln_reduce_params *p = (kiln_reduce_params *)d.params;
    p->nout = (int32_t)r->nout;
    p->nred = (int32_t)r->nred;
    p->op = op;
    p->off_in = (int32_t)kiln__block_offset(t);
    p->off_out = (int32_t)kiln__block_offset(out);
    p->split = (int32_t)r->split;
    to_kernel(pl.nout_dims, pl.out_shape, pl.out_stride, p->outer_shape,
              p->outer_stride);
    to_kernel(pl.nred_dims, pl.red_shape, pl.red_stride, p->red_shape,
              p->red_stride);
    /* Split: the slices' partial sums are scaled when they are combined. */
    kiln__scalar_bits(t->dtype, r->split > 1 ? 1.0 : r->scale, &p->scale_lo,
                      &p->scale_hi);
    kiln__bind(&d, t, KILN_ACCESS_READ);
    kiln__bind(&d, out, KILN_ACCESS_WRITE);
    if (kiln__launch(ctx, call, &d, op) != KILN_OK) {
        kiln_tensor_free(out);
        return NULL;
    }
    return kiln__reduce_finish(ctx, call, out, r);
}

static const char *const reduce_names[] = {"kiln_sum", "kiln_mean", "kiln_max",
                                           "kiln_min"};

kiln_tensor *kiln_reduce(kiln_tensor *t, kiln_reduce_op op, int naxes,
                         const int *axes, int keepdims)
{
    const char *call = (unsigned)op <= KILN_REDUCE_MIN ? reduce_names[op]
                                                       : "kiln_reduce";
    kiln_context *ctx = kiln__args(call, 1, &t);
    if (!ctx)
        return NULL;
    kiln_reduction r;
    if (kiln__reduction(ctx, call, op, t->dtype, t->ndim, t->shape, naxes,
                        axes, keepdims, &r) != KILN_OK)
        return NULL;
    return launch_reduce(ctx, call, t, &r, KILN_K_REDUCE, r.kop, t->dtype);
}

kiln_tensor *kiln_sum(kiln_tensor *t, int naxes, const int *axes, int keepdims)
{
    return kiln_reduce(t, KILN_REDUCE_SUM, naxes, axes, keepdims);
}
kiln_tensor *kiln_mean(kiln_tensor *t, int naxes, const int *axes, int keepdims)
{
    return kiln_reduce(t, KILN_REDUCE_MEAN, naxes, axes, keepdims);
}
kiln_tensor *kiln_max(kiln_tensor *t, int naxes, const int *axes, int keepdims)
{
    return kiln_reduce(t, KILN_REDUCE_MAX, naxes, axes, keepdims);
}
kiln_tensor *kiln_min(kiln_tensor *t, int naxes, const int *axes, int keepdims)
{
    return kiln_reduce(t, KILN_REDUCE_MIN, naxes, axes, keepdims);
}

static kiln_tensor *argreduce(kiln_tensor *t, int axis, int keepdims, int op,
                              const char *call)
{
    kiln_context *ctx = kiln__args(call, 1, &t);
    if (!ctx)
        return NULL;
    if (t->ndim == 0)
        return kiln__error_null(ctx, KILN_ERROR_SHAPE,
                                "%s: a scalar has no axis", call);
    kiln_reduction r; /* the shapes of a sum over the axis */
    if (kiln__reduction(ctx, call, KILN_REDUCE_SUM, t->dtype, t->ndim,
                        t->shape, 1, &axis, keepdims, &r) != KILN_OK)
        return NULL;
    if (r.nred == 0)
        return kiln__error_null(ctx, KILN_ERROR_SHAPE,
                                "%s: axis %d is empty", call, axis);
    r.split = 1; /* the index of the extreme needs one pass */
    return launch_reduce(ctx, call, t, &r, KILN_K_ARGREDUCE, op, KILN_I32);
}

kiln_tensor *kiln_argmax(kiln_tensor *t, int axis, int keepdims)
{
    return argreduce(t, axis, keepdims, KILN_KARG_MAX, "kiln_argmax");
}

kiln_tensor *kiln_argmin(kiln_tensor *t, int axis, int keepdims)
{
    return argreduce(t, axis, keepdims, KILN_KARG_MIN, "kiln_argmin");
}
