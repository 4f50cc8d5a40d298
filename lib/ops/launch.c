/*
 * launch.c - from tensors to a kernel dispatch, for every op.
 */
#include <stdio.h>
#include <string.h>

#include "ops/ops.h"

kiln_context *kiln__args(const char *call, int n, kiln_tensor *const *ts)
{
    kiln_context *ctx = NULL;
    int missing = -1;
    for (int i = 0; i < n; i++) {
        if (!ts[i]) {
            if (missing < 0)
                missing = i;
            continue;
        }
        if (!ctx)
            ctx = ts[i]->ctx;
        else if (ts[i]->ctx != ctx) {
            kiln__error(ctx, KILN_ERROR_INVALID_ARGUMENT,
                        "%s: arguments come from different contexts", call);
            return NULL;
        }
    }
    if (missing >= 0) {
        /* No message if an earlier failure explains the NULL already. */
        if (ctx && ctx->status == KILN_OK)
            kiln__error(ctx, KILN_ERROR_INVALID_ARGUMENT,
                        "%s: argument %d is NULL", call, missing + 1);
        return NULL;
    }
    if (!ctx)
        return NULL;
    for (int i = 0; i < n; i++)
        if (!kiln__tensor_ctx(ts[i])) {
            kiln__error(ctx, KILN_ERROR_NO_DEVICE,
                        "%s: the tensor's context was destroyed", call);
            return NULL;
        }
    return ctx;
}

int kiln__broadcast_strides(const kiln_tensor *t, int ndim,
                            const int64_t *shape, int64_t *stride)
{
    int lead = ndim - t->ndim;
    if (lead < 0)
        return -1;
    for (int i = 0; i < ndim; i++) {
        if (i < lead) {
            stride[i] = 0;
            continue;
        }
        int64_t have = t->shape[i - lead];
        if (have == shape[i])
            stride[i] = have == 1 ? 0 : t->stride[i - lead];
        else if (have == 1)
            stride[i] = 0;
        else
            return -1;
    }
    return 0;
}

int kiln__broadcast_shape(kiln_context *ctx, const char *call, int n,
                          kiln_tensor *const *ts, int64_t *shape)
{
    int ndim = 0;
    for (int i = 0; i < n; i++)
        if (ts[i]->ndim > ndim)
            ndim = ts[i]->ndim;
    for (int d = 0; d < ndim; d++)
        shape[d] = 1;
    for (int i = 0; i < n; i++) {
        int lead = ndim - ts[i]->ndim;
        for (int d = 0; d < ts[i]->ndim; d++) {
            int64_t have = ts[i]->shape[d], *want = &shape[lead + d];
            if (have == *want || have == 1)
                continue;
            if (*want == 1) {
                *want = have;
                continue;
            }
            char msg[512];
            size_t at = 0;
            for (int j = 0; j < n && at < sizeof msg; j++) {
                char buf[160];
                at += (size_t)snprintf(msg + at, sizeof msg - at, "%s%s",
                                       j ? " and " : "",
                                       kiln__shape_string(ts[j]->ndim,
                                                          ts[j]->shape, buf,
                                                          sizeof buf));
            }
            kiln__error(ctx, KILN_ERROR_SHAPE,
                        "%s: shapes %s do not broadcast (dimension %d: %lld "
                        "vs %lld)", call, msg, lead + d, (long long)*want,
                        (long long)have);
            return -1;
        }
    }
    return ndim;
}

void kiln__kernel_strides(const kiln_tensor *t, int ndim, const int64_t *shape,
                          int32_t *kshape, int32_t *kstride)
{
    int64_t stride[KILN_MAX_DIMS];
    kiln__broadcast_strides(t, ndim, shape, stride);
    int lead = KILN_KDIMS - ndim;
    for (int i = 0; i < KILN_KDIMS; i++) {
        kshape[i] = i < lead ? 1 : (int32_t)shape[i - lead];
        kstride[i] = i < lead ? 0 : (int32_t)stride[i - lead];
    }
}

void kiln__class_layout(int n, kiln_tensor *const *ts, int ndim,
                        const int64_t *shape, const char *cls,
                        int32_t *kshape, int32_t *const *kstrides,
                        char *kcls)
{
    int64_t st[KILN_MAX_BINDINGS][KILN_MAX_DIMS];  /* per original dim */
    int64_t sh[KILN_MAX_DIMS], kst[KILN_MAX_BINDINGS][KILN_MAX_DIMS];
    char kc[KILN_MAX_DIMS];
    for (int j = 0; j < n; j++)
        kiln__broadcast_strides(ts[j], ndim, shape, st[j]);
    /* Walk from the innermost dim outwards, merging into the last kept
     * dim when it is of the same class and every operand steps over it
     * contiguously. */
    int kept = 0; /* kept dims, innermost first, in sh and kst */
    for (int d = ndim - 1; d >= 0; d--) {
        if (shape[d] == 1)
            continue;
        char c = cls ? cls[d] : 0;
        int merge = kept > 0 && kc[kept - 1] == c;
        for (int j = 0; j < n && merge; j++)
            merge = st[j][d] == kst[j][kept - 1] * sh[kept - 1];
        if (merge) {
            sh[kept - 1] *= shape[d];
            continue;
        }
        sh[kept] = shape[d];
        kc[kept] = c;
        for (int j = 0; j < n; j++)
            kst[j][kept] = st[j][d];
        kept++;
    }
    for (int i = 0; i < KILN_KDIMS; i++) {
        int src = KILN_KDIMS - 1 - i; /* kernel dim i <- kept dim src */
        kshape[i] = src < kept ? (int32_t)sh[src] : 1;
        if (kcls)
            kcls[i] = src < kept ? kc[src] : 0;
        for (int j = 0; j < n; j++)
            kstrides[j][i] = src < kept ? (int32_t)kst[j][src] : 0;
    }
}

void kiln__elementwise_layout(int n, kiln_tensor *const *ts, int ndim,
                              const int64_t *shape, int32_t *kshape,
                              int32_t *const *kstrides)
{
    kiln__class_layout(n, ts, ndim, shape, NULL, kshape, kstrides, NULL);
}

void kiln__window_axis(int64_t in, int64_t k, int64_t s, int64_t d, int pad,
                       kiln_padding_mode mode, int64_t *before, int64_t *out)
{
    int64_t span = (k - 1) * d + 1, total = 2 * (int64_t)pad;
    if (mode == KILN_PAD_VALID)
        total = 0;
    if (mode == KILN_PAD_SAME) {
        int64_t o = (in + s - 1) / s;
        total = (o - 1) * s + span - in;
        if (total < 0)
            total = 0;
    }
    *before = mode == KILN_PAD_EXPLICIT ? pad : total / 2;
    *out = in + total < span ? -1 : (in + total - span) / s + 1;
}

/* Grid-stride kernels cover any n; cap the group count so the grid stays
 * within every device's limit (maxComputeWorkGroupCount >= 65535). */
#define KILN_MAX_GROUPS 65535u

void kiln__dispatch_init(kiln_context *ctx, kiln_dispatch *d,
                         kiln_kernel_id kernel, kiln_dtype dtype, int64_t n)
{
    memset(d, 0, sizeof *d);
    d->kernel = kernel;
    d->dtype = dtype;
    d->dtype2 = dtype;
    uint32_t local = 256;
    if (ctx->device.max_workgroup_size && ctx->device.max_workgroup_size < local)
        local = ctx->device.max_workgroup_size;
    int64_t groups = (n + local - 1) / local;
    if (groups < 1)
        groups = 1;
    if (groups > KILN_MAX_GROUPS)
        groups = KILN_MAX_GROUPS;
    d->local[0] = local;
    d->local[1] = d->local[2] = 1;
    d->groups[0] = (uint32_t)groups;
    d->groups[1] = d->groups[2] = 1;
}

void kiln__bind(kiln_dispatch *d, const kiln_tensor *t, kiln_access access)
{
    d->bindings[d->nbindings++] = kiln__binding(t, access);
}

kiln_status kiln__launch(kiln_context *ctx, const char *call,
                         const kiln_dispatch *d, int op)
{
    kiln_queue *q = ctx->queue;
    if (q->vt->supports && !q->vt->supports(q, d->kernel, d->dtype, op))
        return kiln__error(ctx, KILN_ERROR_UNSUPPORTED,
                           "%s: not available for %s on %s (%s backend)", call,
                           kiln_dtype_name(d->dtype), ctx->device.name,
                           q->vt->name);
    kiln_status s = q->vt->dispatch(q, d);
    if (s != KILN_OK)
        return kiln__error(ctx, s, "%s: %s", call, kiln_status_string(s));
    ctx->stats.dispatches++;
    return KILN_OK;
}

void kiln__scalar_bits(kiln_dtype dtype, double value, uint32_t *lo,
                       uint32_t *hi)
{
    *lo = *hi = 0;
    if (dtype == KILN_F32) {
        float f = (float)value;
        memcpy(lo, &f, 4);
    } else if (dtype == KILN_I32) {
        int32_t i = value != value ? 0
                  : value >= 2147483647.0 ? INT32_MAX
                  : value <= -2147483648.0 ? INT32_MIN : (int32_t)value;
        memcpy(lo, &i, 4);
    } else {
        uint64_t bits;
        memcpy(&bits, &value, 8);
        *lo = (uint32_t)bits;
        *hi = (uint32_t)(bits >> 32);
    }
}
