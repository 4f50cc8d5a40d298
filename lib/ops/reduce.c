/*
 * reduce.c - sum, mean, max, min over chosen axes; argmax and argmin.
 *
 * The input is split into outer dimensions (kept, one output each) and
 * reduced dimensions, each side passed to the kernel as shape + strides, so
 * any axes of any strided view reduce without a copy.
 */
#include <math.h>
#include <string.h>

#include "ops/ops.h"

typedef struct reduce_plan {
    int nout_dims, nred_dims;
    int64_t out_shape[KILN_MAX_DIMS], out_stride[KILN_MAX_DIMS];
    int64_t red_shape[KILN_MAX_DIMS], red_stride[KILN_MAX_DIMS];
    int result_ndim;
    int64_t result_shape[KILN_MAX_DIMS];
    int64_t nout, nred;
} reduce_plan;

static kiln_status plan_reduce(kiln_context *ctx, const char *call,
                               const kiln_tensor *t, int naxes,
                               const int *axes, int keepdims, reduce_plan *pl)
{
    int mask[KILN_MAX_DIMS] = {0};
    if (naxes < 0 || naxes > t->ndim || (naxes > 0 && !axes))
        return kiln__error(ctx, KILN_ERROR_INVALID_ARGUMENT,
                           "%s: %d axes for a %d-D tensor", call, naxes,
                           t->ndim);
    for (int i = 0; i < naxes; i++) {
        int a = axes[i] < 0 ? axes[i] + t->ndim : axes[i];
        if (a < 0 || a >= t->ndim || mask[a])
            return kiln__error(ctx, KILN_ERROR_INVALID_ARGUMENT,
                               "%s: axis %d is out of range or repeated for a "
                               "%d-D tensor", call, axes[i], t->ndim);
        mask[a] = 1;
    }
    if (naxes == 0)
        for (int i = 0; i < t->ndim; i++)
            mask[i] = 1;
    memset(pl, 0, sizeof *pl);
    pl->nout = pl->nred = 1;
    for (int i = 0; i < t->ndim; i++) {
        if (mask[i]) {
            pl->red_shape[pl->nred_dims] = t->shape[i];
            pl->red_stride[pl->nred_dims++] = t->stride[i];
            pl->nred *= t->shape[i];
            if (keepdims)
                pl->result_shape[pl->result_ndim++] = 1;
        } else {
            pl->out_shape[pl->nout_dims] = t->shape[i];
            pl->out_stride[pl->nout_dims++] = t->stride[i];
            pl->nout *= t->shape[i];
            pl->result_shape[pl->result_ndim++] = t->shape[i];
        }
    }
    return KILN_OK;
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

/* Workgroup size for reducing @nred elements: enough threads to share the
 * work, a power of two within the device's limit. */
static uint32_t reduce_local(const kiln_context *ctx, int64_t nred)
{
    uint32_t local = nred >= 4096 ? 256 : nred >= 256 ? 128 : 32;
    uint32_t max = ctx->device.max_workgroup_size;
    while (max && local > max)
        local /= 2;
    return local ? local : 1;
}

static kiln_tensor *launch_reduce(kiln_context *ctx, const char *call,
                                  kiln_tensor *t, const reduce_plan *pl,
                                  kiln_kernel_id kernel, int op,
                                  kiln_dtype out_dtype, double scale)
{
    kiln_tensor *out = kiln__tensor_alloc(ctx, call, out_dtype,
                                          pl->result_ndim, pl->result_shape);
    if (!out || pl->nout == 0)
        return out;
    kiln_dispatch d;
    kiln__dispatch_init(ctx, &d, kernel, t->dtype, pl->nout);
    d.local[0] = reduce_local(ctx, pl->nred);
    d.groups[0] = (uint32_t)(pl->nout < 65535 ? pl->nout : 65535);
    kiln_reduce_params *p = (kiln_reduce_params *)d.params;
    p->nout = (int32_t)pl->nout;
    p->nred = (int32_t)pl->nred;
    p->op = op;
    p->off_in = (int32_t)kiln__block_offset(t);
    p->off_out = (int32_t)kiln__block_offset(out);
    to_kernel(pl->nout_dims, pl->out_shape, pl->out_stride, p->outer_shape,
              p->outer_stride);
    to_kernel(pl->nred_dims, pl->red_shape, pl->red_stride, p->red_shape,
              p->red_stride);
    kiln__scalar_bits(t->dtype, scale, &p->scale_lo, &p->scale_hi);
    kiln__bind(&d, t, KILN_ACCESS_READ);
    kiln__bind(&d, out, KILN_ACCESS_WRITE);
    if (kiln__launch(ctx, call, &d, op) != KILN_OK) {
        kiln_tensor_free(out);
        return NULL;
    }
    return out;
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
    if ((unsigned)op > KILN_REDUCE_MIN)
        return kiln__error_null(ctx, KILN_ERROR_INVALID_ARGUMENT,
                                "%s: unknown reduction %d", call, (int)op);
    if (op == KILN_REDUCE_MEAN && t->dtype == KILN_I32)
        return kiln__error_null(ctx, KILN_ERROR_DTYPE,
                                "%s: needs f32 or f64, got i32 (cast first)",
                                call);
    reduce_plan pl;
    if (plan_reduce(ctx, call, t, naxes, axes, keepdims, &pl) != KILN_OK)
        return NULL;
    if (pl.nred == 0 && (op == KILN_REDUCE_MAX || op == KILN_REDUCE_MIN))
        return kiln__error_null(ctx, KILN_ERROR_SHAPE,
                                "%s: reducing over an empty dimension has no "
                                "%s", call, op == KILN_REDUCE_MAX ? "maximum"
                                                                  : "minimum");
    static const int kop[] = {KILN_KREDUCE_SUM, KILN_KREDUCE_SUM,
                              KILN_KREDUCE_MAX, KILN_KREDUCE_MIN};
    double scale = 1.0;
    if (op == KILN_REDUCE_MEAN)
        scale = pl.nred ? 1.0 / (double)pl.nred : NAN;
    return launch_reduce(ctx, call, t, &pl, KILN_K_REDUCE, kop[op], t->dtype,
                         scale);
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
    reduce_plan pl;
    if (t->ndim == 0)
        return kiln__error_null(ctx, KILN_ERROR_SHAPE,
                                "%s: a scalar has no axis", call);
    if (plan_reduce(ctx, call, t, 1, &axis, keepdims, &pl) != KILN_OK)
        return NULL;
    if (pl.nred == 0)
        return kiln__error_null(ctx, KILN_ERROR_SHAPE,
                                "%s: axis %d is empty", call, axis);
    return launch_reduce(ctx, call, t, &pl, KILN_K_ARGREDUCE, op, KILN_I32,
                         1.0);
}

kiln_tensor *kiln_argmax(kiln_tensor *t, int axis, int keepdims)
{
    return argreduce(t, axis, keepdims, KILN_KARG_MAX, "kiln_argmax");
}

kiln_tensor *kiln_argmin(kiln_tensor *t, int axis, int keepdims)
{
    return argreduce(t, axis, keepdims, KILN_KARG_MIN, "kiln_argmin");
}
