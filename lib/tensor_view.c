/*
 * tensor_view.c - reshape, permute, transpose, slice, broadcast_to: new
 * headers on the same storage, no device work (except reshape of a
 * non-contiguous tensor, which copies first).
 */
#include <stdio.h>
#include <string.h>

#include "ops/ops.h"
#include "tensor.h"

static int normalise_dim(int dim, int ndim)
{
    if (dim < 0)
        dim += ndim;
    return dim >= 0 && dim < ndim ? dim : -1;
}

kiln_tensor *kiln_reshape(kiln_tensor *t, int ndim, const int64_t *shape)
{
    kiln_context *ctx = kiln__tensor_ctx(t);
    if (!ctx)
        return NULL;
    if (ndim < 0 || ndim > KILN_MAX_DIMS || (ndim && !shape))
        return kiln__error_null(ctx, KILN_ERROR_SHAPE,
                                "kiln_reshape: %d dimensions (0 to %d allowed)",
                                ndim, KILN_MAX_DIMS);
    int64_t out[KILN_MAX_DIMS], known = 1;
    int infer = -1;
    for (int i = 0; i < ndim; i++) {
        out[i] = shape[i];
        if (shape[i] == -1 && infer < 0) {
            infer = i;
        } else if (shape[i] < 0) {
            return kiln__error_null(ctx, KILN_ERROR_SHAPE,
                                    "kiln_reshape: dimension %d is %lld", i,
                                    (long long)shape[i]);
        } else {
            known *= shape[i];
        }
    }
    int64_t n = kiln_tensor_numel(t);
    if (infer >= 0)
        out[infer] = known ? n / known : 0;
    if (kiln__numel(ndim, out) != n) {
        char a[160], b[160];
        return kiln__error_null(ctx, KILN_ERROR_SHAPE,
                                "kiln_reshape: cannot view %s (%lld elements) "
                                "as %s", kiln__shape_string(t->ndim, t->shape,
                                                            a, sizeof a),
                                (long long)n,
                                kiln__shape_string(ndim, shape, b, sizeof b));
    }
    kiln_tensor *src = t;
    if (!kiln_tensor_is_contiguous(t)) {
        src = kiln_contiguous_copy(t);
        if (!src)
            return NULL;
    }
    kiln_tensor *v = kiln__tensor_view(src);
    if (src != t)
        kiln_tensor_free(src);
    if (!v)
        return NULL;
    v->ndim = ndim;
    memcpy(v->shape, out, sizeof(int64_t) * (size_t)ndim);
    kiln__contiguous_strides(ndim, v->shape, v->stride);
    return v;
}

kiln_tensor *kiln_permute(kiln_tensor *t, const int *perm)
{
    kiln_context *ctx = kiln__tensor_ctx(t);
    if (!ctx)
        return NULL;
    if (!perm && t->ndim)
        return kiln__error_null(ctx, KILN_ERROR_INVALID_ARGUMENT,
                                "kiln_permute: perm is NULL");
    int seen[KILN_MAX_DIMS] = {0};
    for (int i = 0; i < t->ndim; i++) {
        int d = normalise_dim(perm[i], t->ndim);
        if (d < 0 || seen[d]++)
            return kiln__error_null(ctx, KILN_ERROR_INVALID_ARGUMENT,
                                    "kiln_permute: entry %d (%d) is not a "
                                    "permutation of 0..%d", i, perm[i],
                                    t->ndim - 1);
    }
    kiln_tensor *v = kiln__tensor_view(t);
    if (!v)
        return NULL;
    for (int i = 0; i < t->ndim; i++) {
        int d = normalise_dim(perm[i], t->ndim);
        v->shape[i] = t->shape[d];
        v->stride[i] = t->stride[d];
    }
    return v;
}

kiln_tensor *kiln_transpose(kiln_tensor *t, int dim0, int dim1)
{
    kiln_context *ctx = kiln__tensor_ctx(t);
    if (!ctx)
        return NULL;
    int a = normalise_dim(dim0, t->ndim), b = normalise_dim(dim1, t->ndim);
    if (a < 0 || b < 0)
        return kiln__error_null(ctx, KILN_ERROR_INVALID_ARGUMENT,
                                "kiln_transpose: dimensions %d and %d of a "
                                "%d-D tensor", dim0, dim1, t->ndim);
    int perm[KILN_MAX_DIMS];
    for (int i = 0; i < t->ndim; i++)
        perm[i] = i;
    perm[a] = b;
    perm[b] = a;
    return kiln_permute(t, perm);
}

kiln_tensor *kiln_slice(kiln_tensor *t, int dim, int64_t start, int64_t stop,
                        int64_t step)
{
    kiln_context *ctx = kiln__tensor_ctx(t);
    if (!ctx)
        return NULL;
    int d = normalise_dim(dim, t->ndim);
    if (d < 0 || step < 1)
        return kiln__error_null(ctx, KILN_ERROR_INVALID_ARGUMENT,
                                "kiln_slice: dimension %d of a %d-D tensor, "
                                "step %lld (must be >= 1)", dim, t->ndim,
                                (long long)step);
    int64_t n = t->shape[d];
    if (start < 0)
        start += n;
    if (stop < 0)
        stop += n;
    start = start < 0 ? 0 : start > n ? n : start;
    stop = stop < start ? start : stop > n ? n : stop;
    kiln_tensor *v = kiln__tensor_view(t);
    if (!v)
        return NULL;
    v->offset += start * t->stride[d];
    v->shape[d] = (stop - start + step - 1) / step;
    v->stride[d] = t->stride[d] * step;
    return v;
}

kiln_tensor *kiln_broadcast_to(kiln_tensor *t, int ndim, const int64_t *shape)
{
    kiln_context *ctx = kiln__tensor_ctx(t);
    if (!ctx)
        return NULL;
    if (ndim < t->ndim || ndim > KILN_MAX_DIMS || (ndim && !shape))
        return kiln__error_null(ctx, KILN_ERROR_SHAPE,
                                "kiln_broadcast_to: cannot broadcast a %d-D "
                                "tensor to %d dimensions", t->ndim, ndim);
    int64_t stride[KILN_MAX_DIMS];
    if (kiln__broadcast_strides(t, ndim, shape, stride) != 0) {
        char a[160], b[160];
        return kiln__error_null(ctx, KILN_ERROR_SHAPE,
                                "kiln_broadcast_to: shape %s does not "
                                "broadcast to %s",
                                kiln__shape_string(t->ndim, t->shape, a,
                                                   sizeof a),
                                kiln__shape_string(ndim, shape, b, sizeof b));
    }
    kiln_tensor *v = kiln__tensor_view(t);
    if (!v)
        return NULL;
    v->ndim = ndim;
    memcpy(v->shape, shape, sizeof(int64_t) * (size_t)ndim);
    memcpy(v->stride, stride, sizeof(int64_t) * (size_t)ndim);
    return v;
}
