/*
 * shape.c - concat, pad, flatten, sum_to_shape.
 *
 * No kernels of their own: concat and pad write their inputs into slice
 * views of a new tensor with kiln_copy (the strided CONVERT kernel), pad
 * fills first with kiln_fill, flatten is a reshape and sum_to_shape a sum
 * over the broadcast axes.  One extra dispatch per input is cheap next to
 * the copies themselves.
 */
#include <string.h>

#include "ops/ops.h"

static int norm_axis(int axis, int ndim)
{
    if (axis < 0)
        axis += ndim;
    return axis >= 0 && axis < ndim ? axis : -1;
}

/* Checks that every input matches ts[0] except along @axis. */
static kiln_status concat_check(kiln_context *ctx, const char *call,
                                kiln_tensor *const *ts, int n, int axis)
{
    const kiln_tensor *a = ts[0];
    for (int i = 1; i < n; i++) {
        const kiln_tensor *b = ts[i];
        int ok = b->dtype == a->dtype && b->ndim == a->ndim;
        for (int d = 0; ok && d < a->ndim; d++)
            ok = d == axis || a->shape[d] == b->shape[d];
        if (ok)
            continue;
        char sa[160], sb[160];
        return kiln__error(ctx, b->dtype != a->dtype ? KILN_ERROR_DTYPE
                                                     : KILN_ERROR_SHAPE,
                           "%s: input %d is %s %s, input 1 is %s %s (only "
                           "axis %d may differ)", call, i + 1,
                           kiln_dtype_name(b->dtype),
                           kiln__shape_string(b->ndim, b->shape, sb, sizeof sb),
                           kiln_dtype_name(a->dtype),
                           kiln__shape_string(a->ndim, a->shape, sa, sizeof sa),
                           axis);
    }
    return KILN_OK;
}

kiln_tensor *kiln_concat(kiln_tensor *const *ts, int n, int axis)
{
    const char *call = "kiln_concat";
    if (!ts || n < 1)
        return NULL; /* no tensor, so no context to report on */
    kiln_context *ctx = kiln__args(call, n, ts);
    if (!ctx)
        return NULL;
    int ax = norm_axis(axis, ts[0]->ndim);
    if (ax < 0)
        return kiln__error_null(ctx, KILN_ERROR_INVALID_ARGUMENT,
                                "%s: axis %d of a %d-D tensor", call, axis,
                                ts[0]->ndim);
    if (concat_check(ctx, call, ts, n, ax) != KILN_OK)
        return NULL;
    int64_t shape[KILN_MAX_DIMS];
    memcpy(shape, ts[0]->shape, sizeof shape);
    shape[ax] = 0;
    for (int i = 0; i < n; i++)
        shape[ax] += ts[i]->shape[ax];
    kiln_tensor *out = kiln__tensor_alloc(ctx, call, ts[0]->dtype,
                                          ts[0]->ndim, shape);
    if (!out)
        return NULL;
    int64_t at = 0;
    for (int i = 0; i < n; i++) {
        int64_t len = ts[i]->shape[ax];
        if (len == 0 || kiln_tensor_numel(ts[i]) == 0) {
            at += len;
            continue;
        }
        kiln_tensor *dst = kiln_slice(out, ax, at, at + len, 1);
        kiln_status s = dst ? kiln_copy(dst, ts[i]) : ctx->status;
        kiln_tensor_free(dst);
        if (s != KILN_OK) {
            kiln_tensor_free(out);
            return NULL;
        }
        at += len;
    }
    return out;
}

/* A view of the interior of @out that holds @t (the pads cut away). */
static kiln_tensor *pad_interior(kiln_tensor *out, const kiln_tensor *t,
                                 int npad, const int64_t *pads)
{
    kiln_tensor *v = kiln_slice(out, 0, 0, out->ndim ? out->shape[0] : 0, 1);
    for (int i = 0; v && i < npad; i++) {
        int d = t->ndim - npad + i;
        kiln_tensor *next = kiln_slice(v, d, pads[2 * i],
                                       pads[2 * i] + t->shape[d], 1);
        kiln_tensor_free(v);
        v = next;
    }
    return v;
}

kiln_tensor *kiln_pad(kiln_tensor *t, int npad, const int64_t *pads,
                      double value)
{
    const char *call = "kiln_pad";
    kiln_context *ctx = kiln__args(call, 1, &t);
    if (!ctx)
        return NULL;
    if (npad < 0 || npad > t->ndim || (npad > 0 && !pads))
        return kiln__error_null(ctx, KILN_ERROR_INVALID_ARGUMENT,
                                "%s: %d padded dimensions for a %d-D tensor",
                                call, npad, t->ndim);
    int64_t shape[KILN_MAX_DIMS];
    memcpy(shape, t->shape, sizeof shape);
    for (int i = 0; i < npad; i++) {
        /* Negative pads (PyTorch's cropping) are a kiln_slice instead. */
        if (pads[2 * i] < 0 || pads[2 * i + 1] < 0)
            return kiln__error_null(ctx, KILN_ERROR_INVALID_ARGUMENT,
                                    "%s: pads %lld, %lld for dimension %d "
                                    "(must be >= 0; crop with kiln_slice)",
                                    call, (long long)pads[2 * i],
                                    (long long)pads[2 * i + 1],
                                    t->ndim - npad + i);
        shape[t->ndim - npad + i] += pads[2 * i] + pads[2 * i + 1];
    }
    kiln_tensor *out = kiln__tensor_alloc(ctx, call, t->dtype, t->ndim,
                                          shape);
    if (!out)
        return NULL;
    if (kiln_fill(out, value) != KILN_OK)
        goto fail;
    if (kiln_tensor_numel(t) == 0)
        return out;
    kiln_status s;
    if (t->ndim == 0) {
        s = kiln_copy(out, t); /* nothing to pad: a copy */
    } else {
        kiln_tensor *inner = pad_interior(out, t, npad, pads);
        s = inner ? kiln_copy(inner, t) : ctx->status;
        kiln_tensor_free(inner);
    }
    if (s == KILN_OK)
        return out;
fail:
    kiln_tensor_free(out);
    return NULL;
}

kiln_tensor *kiln_flatten(kiln_tensor *t, int start, int end)
{
    const char *call = "kiln_flatten";
    kiln_context *ctx = kiln__args(call, 1, &t);
    if (!ctx)
        return NULL;
    /* A scalar flattens to [1], as in PyTorch. */
    int nd = t->ndim ? t->ndim : 1;
    int s = norm_axis(start, nd), e = norm_axis(end, nd);
    if (s < 0 || e < 0 || s > e)
        return kiln__error_null(ctx, KILN_ERROR_INVALID_ARGUMENT,
                                "%s: dimensions %d..%d of a %d-D tensor", call,
                                start, end, t->ndim);
    if (t->ndim == 0) {
        int64_t one = 1;
        return kiln_reshape(t, 1, &one);
    }
    int64_t shape[KILN_MAX_DIMS];
    int n = 0;
    for (int d = 0; d < t->ndim; d++) {
        if (d <= s || d > e)
            shape[n++] = t->shape[d];
        else
            shape[n - 1] *= t->shape[d];
    }
    return kiln_reshape(t, n, shape);
}

int kiln__sum_to_axes(int from_ndim, const int64_t *from, int ndim,
                      const int64_t *shape, int *axes)
{
    int lead = from_ndim - ndim, naxes = 0;
    if (ndim < 0 || lead < 0 || (ndim > 0 && !shape))
        return -1;
    for (int d = 0; d < from_ndim; d++) {
        if (d < lead) {
            axes[naxes++] = d;
            continue;
        }
        int64_t want = shape[d - lead];
        if (want == 1 && from[d] != 1)
            axes[naxes++] = d;
        else if (want != from[d])
            return -1;
    }
    return naxes;
}

kiln_tensor *kiln_sum_to_shape(kiln_tensor *t, int ndim, const int64_t *shape)
{
    const char *call = "kiln_sum_to_shape";
    kiln_context *ctx = kiln__args(call, 1, &t);
    if (!ctx)
        return NULL;
    int axes[KILN_MAX_DIMS];
    int naxes = kiln__sum_to_axes(t->ndim, t->shape, ndim, shape, axes);
    if (naxes < 0) {
        char a[160], b[160];
        return kiln__error_null(ctx, KILN_ERROR_SHAPE,
                                "%s: %s does not broadcast to %s", call,
                                ndim >= 0 && ndim <= KILN_MAX_DIMS && shape
                                    ? kiln__shape_string(ndim, shape, a,
                                                         sizeof a)
                                    : "(bad shape)",
                                kiln__shape_string(t->ndim, t->shape, b,
                                                   sizeof b));
    }
    /* kiln_sum with no axes would reduce everything: copy instead. */
    kiln_tensor *sum = naxes ? kiln_sum(t, naxes, axes, 1)
                             : kiln_contiguous_copy(t);
    kiln_tensor *out = kiln_reshape(sum, ndim, shape);
    kiln_tensor_free(sum);
    return out;
}

kiln_status kiln_split(kiln_tensor *t, int axis, int n, const int64_t *sizes,
                       kiln_tensor **out)
{
    const char *call = "kiln_split";
    for (int i = 0; out && i < n; i++)
        out[i] = NULL;
    kiln_context *ctx = kiln__args(call, 1, &t);
    if (!ctx)
        return t ? kiln_status_of(t->ctx) : KILN_ERROR_INVALID_ARGUMENT;
    int d = norm_axis(axis, t->ndim);
    if (d < 0 || n < 1 || !sizes || !out)
        return kiln__error(ctx, KILN_ERROR_INVALID_ARGUMENT,
                           "%s: axis %d of a %d-D tensor into %d parts", call,
                           axis, t->ndim, n);
    int64_t total = 0;
    for (int i = 0; i < n; i++) {
        if (sizes[i] < 0)
            return kiln__error(ctx, KILN_ERROR_SHAPE,
                               "%s: part %d has negative size %lld", call, i,
                               (long long)sizes[i]);
        total += sizes[i];
    }
    if (total != t->shape[d])
        return kiln__error(ctx, KILN_ERROR_SHAPE,
                           "%s: part sizes add up to %lld, dimension %d has "
                           "%lld", call, (long long)total, d,
                           (long long)t->shape[d]);
    int64_t at = 0;
    for (int i = 0; i < n; i++) {
        out[i] = kiln_slice(t, d, at, at + sizes[i], 1);
        at += sizes[i];
        if (!out[i]) {
            for (int j = 0; j < i; j++) {
                kiln_tensor_free(out[j]);
                out[j] = NULL;
            }
            return ctx->status;
        }
    }
    return KILN_OK;
}

kiln_tensor *kiln_slice_backward(kiln_tensor *dy, int ndim,
                                 const int64_t *shape, int dim, int64_t start,
                                 int64_t stop, int64_t step)
{
    const char *call = "kiln_slice_backward";
    kiln_context *ctx = kiln__args(call, 1, &dy);
    if (!ctx)
        return NULL;
    kiln_tensor *dx = kiln__tensor_alloc(ctx, call, dy->dtype, ndim, shape);
    if (!dx || kiln_fill(dx, 0) != KILN_OK) {
        kiln_tensor_free(dx);
        return NULL;
    }
    kiln_tensor *v = kiln_slice(dx, dim, start, stop, step);
    kiln_status s = v ? kiln_copy(v, dy) : ctx->status;
    kiln_tensor_free(v);
    if (s != KILN_OK) {
        kiln_tensor_free(dx);
        return NULL;
    }
    return dx;
}
