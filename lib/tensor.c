/*
 * tensor.c - creating tensors, host transfers, accessors.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/ops.h"
#include "tensor.h"

int64_t kiln__numel(int ndim, const int64_t *shape)
{
    int64_t n = 1;
    for (int i = 0; i < ndim; i++)
        n *= shape[i];
    return n;
}

void kiln__contiguous_strides(int ndim, const int64_t *shape, int64_t *stride)
{
    int64_t s = 1;
    for (int i = ndim - 1; i >= 0; i--) {
        stride[i] = s;
        s *= shape[i] > 0 ? shape[i] : 1;
    }
}

const char *kiln__shape_string(int ndim, const int64_t *shape, char *buf,
                               size_t size)
{
    size_t at = (size_t)snprintf(buf, size, "[");
    for (int i = 0; i < ndim && at < size; i++)
        at += (size_t)snprintf(buf + at, size - at, "%s%lld", i ? ", " : "",
                               (long long)shape[i]);
    if (at < size)
        snprintf(buf + at, size - at, "]");
    return buf;
}

kiln_context *kiln__tensor_ctx(const kiln_tensor *t)
{
    if (!t)
        return NULL;
    if (t->ctx->destroyed || !t->storage->alloc)
        return NULL;
    return t->ctx;
}

int64_t kiln__block_offset(const kiln_tensor *t)
{
    size_t es = kiln_dtype_size(t->dtype);
    return (int64_t)(t->storage->alloc->offset / es) + t->offset;
}

kiln_binding kiln__binding(const kiln_tensor *t, kiln_access access)
{
    const kiln_allocation *a = t->storage->alloc;
    return (kiln_binding){a->block, a->offset, a->size ? a->size : 1, access};
}

static kiln_status check_shape(kiln_context *ctx, const char *call, int ndim,
                               const int64_t *shape)
{
    if (ndim < 0 || ndim > KILN_MAX_DIMS)
        return kiln__error(ctx, KILN_ERROR_SHAPE,
                           "%s: %d dimensions (Kiln supports 0 to %d)", call,
                           ndim, KILN_MAX_DIMS);
    if (ndim > 0 && !shape)
        return kiln__error(ctx, KILN_ERROR_INVALID_ARGUMENT,
                           "%s: shape is NULL", call);
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0)
            return kiln__error(ctx, KILN_ERROR_SHAPE,
                               "%s: dimension %d is negative (%lld)", call, i,
                               (long long)shape[i]);
        if (shape[i] > 0 && n > KILN_MAX_ELEMENTS / shape[i])
            n = KILN_MAX_ELEMENTS + 1;
        else
            n *= shape[i];
    }
    if (n > KILN_MAX_ELEMENTS) {
        char buf[160];
        return kiln__error(ctx, KILN_ERROR_SHAPE,
                           "%s: shape %s has 2^31 or more elements", call,
                           kiln__shape_string(ndim, shape, buf, sizeof buf));
    }
    return KILN_OK;
}

/*
 * Memory freed earlier in the same capture, for a new tensor of @bytes
 * (best fit, at most 4x larger).  Replays run the capture in order, so a
 * later kernel may take over bytes an earlier one is done with (in-order
 * OpenCL queue; the Vulkan hazard tracker records the barrier), and a
 * recorded step needs its peak of live temporaries, not their sum.  Only
 * storages born in this capture qualify: one that existed before holds
 * data the capture's first kernels read again on every replay.
 */
static kiln_storage *take_kept(kiln_context *ctx, size_t bytes)
{
    kiln_storage **best = NULL;
    for (kiln_storage **p = &ctx->kept; *p; p = &(*p)->next_kept) {
        kiln_storage *st = *p;
        if (st->born_in_capture != ctx->capture_serial || !st->alloc ||
            st->alloc->size < bytes || st->alloc->size > 4 * bytes + 256)
            continue;
        if (!best || st->alloc->size < (*best)->alloc->size)
            best = p;
    }
    if (!best)
        return NULL;
    kiln_storage *st = *best;
    *best = st->next_kept;
    st->next_kept = NULL;
    st->refs = 1;
    return st;
}

kiln_tensor *kiln__tensor_alloc(kiln_context *ctx, const char *call,
                                kiln_dtype dtype, int ndim,
                                const int64_t *shape)
{
    if (!ctx)
        return NULL;
    if (ctx->destroyed || !ctx->queue)
        return kiln__error_null(ctx, KILN_ERROR_NO_DEVICE,
                                "%s: the context has no open device", call);
    if ((unsigned)dtype > KILN_F64)
        return kiln__error_null(ctx, KILN_ERROR_DTYPE, "%s: unknown dtype %d",
                                call, (int)dtype);
    if (!kiln__dtype_supported(ctx, dtype))
        return kiln__error_null(ctx, KILN_ERROR_DTYPE,
                                "%s: %s needs a device with fp64; %s has none",
                                call, kiln_dtype_name(dtype), ctx->device.name);
    if (check_shape(ctx, call, ndim, shape) != KILN_OK)
        return NULL;
    kiln_tensor *t = calloc(1, sizeof *t);
    kiln_storage *st = calloc(1, sizeof *st);
    if (!t || !st) {
        free(t);
        free(st);
        return kiln__error_null(ctx, KILN_ERROR_OUT_OF_HOST_MEMORY,
                                "%s: out of host memory", call);
    }
    size_t bytes = (size_t)kiln__numel(ndim, shape) * kiln_dtype_size(dtype);
    kiln_storage *reused = ctx->recording && bytes ? take_kept(ctx, bytes)
                                                   : NULL;
    if (reused) {
        free(st);
        st = reused; /* keeps its context reference */
        goto ready;
    }
    kiln_status s;
    st->alloc = kiln_suballoc_alloc(&ctx->alloc, bytes, &s);
    if (!st->alloc) {
        char buf[160];
        free(t);
        free(st);
        return kiln__error_null(ctx, s, "%s: %s allocating %zu bytes for a %s "
                                "tensor of shape %s on %s", call,
                                kiln_status_string(s), bytes,
                                kiln_dtype_name(dtype),
                                kiln__shape_string(ndim, shape, buf, sizeof buf),
                                ctx->device.name);
    }
    st->ctx = ctx;
    st->refs = 1;
    st->born_in_capture = ctx->recording ? ctx->capture_serial : 0;
    kiln__context_retain(ctx);
ready:
    t->ctx = ctx;
    t->storage = st;
    t->dtype = dtype;
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++)
        t->shape[i] = shape[i];
    kiln__contiguous_strides(ndim, t->shape, t->stride);
    return t;
}

kiln_tensor *kiln_tensor_new(kiln_context *ctx, kiln_dtype dtype, int ndim,
                             const int64_t *shape)
{
    return kiln__tensor_alloc(ctx, "kiln_tensor_new", dtype, ndim, shape);
}

kiln_tensor *kiln_tensor_from_data(kiln_context *ctx, kiln_dtype dtype,
                                   int ndim, const int64_t *shape,
                                   const void *data, size_t bytes)
{
    kiln_tensor *t = kiln__tensor_alloc(ctx, "kiln_tensor_from_data", dtype,
                                        ndim, shape);
    if (t && kiln_tensor_write(t, data, bytes) != KILN_OK) {
        kiln_tensor_free(t);
        return NULL;
    }
    return t;
}

kiln_tensor *kiln__tensor_view(kiln_tensor *src)
{
    kiln_tensor *t = malloc(sizeof *t);
    if (!t)
        return kiln__error_null(src->ctx, KILN_ERROR_OUT_OF_HOST_MEMORY,
                                "kiln: out of host memory for a view");
    *t = *src;
    t->storage->refs++;
    return t;
}

static void storage_free(kiln_storage *st)
{
    if (!st->ctx->destroyed && st->alloc)
        kiln_suballoc_free(&st->ctx->alloc, st->alloc);
    kiln__context_release(st->ctx);
    free(st);
}

void kiln__storage_free_chain(kiln_storage *st)
{
    while (st) {
        kiln_storage *next = st->next_kept;
        storage_free(st);
        st = next;
    }
}

void kiln_tensor_free(kiln_tensor *t)
{
    if (!t)
        return;
    kiln_storage *st = t->storage;
    free(t);
    if (--st->refs > 0)
        return;
    kiln_context *ctx = st->ctx;
    if (ctx->recording && !ctx->destroyed && st->alloc) {
        /* An op's temporary (or a user's tensor) freed mid-capture: the
         * replay will touch these bytes again, so nothing may reuse them
         * until the recording is freed. */
        st->next_kept = ctx->kept;
        ctx->kept = st;
        return;
    }
    storage_free(st);
}

/* Checks common to write and read: never KILN_OK unless the transfer can
 * go ahead (a tensor whose context was destroyed must not read as
 * success). */
static kiln_status transfer_check(kiln_tensor *t, const void *data,
                                  size_t bytes, const char *call)
{
    if (!t)
        return KILN_ERROR_INVALID_ARGUMENT;
    kiln_context *ctx = kiln__tensor_ctx(t);
    if (!ctx)
        return kiln__error(t->ctx, KILN_ERROR_NO_DEVICE,
                           "%s: the tensor's context was destroyed", call);
    size_t want = (size_t)kiln_tensor_numel(t) * kiln_dtype_size(t->dtype);
    if (!data && want)
        return kiln__error(ctx, KILN_ERROR_INVALID_ARGUMENT,
                           "%s: data is NULL", call);
    if (bytes != want) {
        char buf[160];
        return kiln__error(ctx, KILN_ERROR_SHAPE,
                           "%s: %zu bytes given, the %s tensor of shape %s "
                           "holds %zu", call, bytes,
                           kiln_dtype_name(t->dtype),
                           kiln__shape_string(t->ndim, t->shape, buf,
                                              sizeof buf), want);
    }
    if (ctx->recording)
        return kiln__error(ctx, KILN_ERROR_INVALID_ARGUMENT,
                           "%s: host transfers are not allowed while "
                           "recording", call);
    return KILN_OK;
}

kiln_status kiln_tensor_write(kiln_tensor *t, const void *data, size_t bytes)
{
    kiln_status check = transfer_check(t, data, bytes, "kiln_tensor_write");
    if (check != KILN_OK)
        return check;
    kiln_context *ctx = t->ctx;
    if (bytes == 0)
        return KILN_OK;
    if (kiln_tensor_is_contiguous(t)) {
        size_t at = t->storage->alloc->offset +
                    (size_t)t->offset * kiln_dtype_size(t->dtype);
        kiln_status s = ctx->queue->vt->write(ctx->queue,
                                              t->storage->alloc->block, at,
                                              data, bytes);
        return s == KILN_OK ? s
                            : kiln__error(ctx, s, "kiln_tensor_write: %s",
                                          kiln_status_string(s));
    }
    /* A strided view: stage contiguously, then scatter on the device. */
    kiln_tensor *tmp = kiln_tensor_from_data(ctx, t->dtype, t->ndim, t->shape,
                                             data, bytes);
    if (!tmp)
        return ctx->status;
    kiln_status s = kiln_copy(t, tmp);
    kiln_tensor_free(tmp);
    return s;
}

kiln_status kiln_tensor_read(kiln_tensor *t, void *data, size_t bytes)
{
    kiln_status check = transfer_check(t, data, bytes, "kiln_tensor_read");
    if (check != KILN_OK)
        return check;
    kiln_context *ctx = t->ctx;
    if (bytes == 0)
        return KILN_OK;
    kiln_tensor *src = t;
    if (!kiln_tensor_is_contiguous(t)) {
        src = kiln_contiguous_copy(t);
        if (!src)
            return ctx->status;
    }
    size_t at = src->storage->alloc->offset +
                (size_t)src->offset * kiln_dtype_size(src->dtype);
    kiln_status s = ctx->queue->vt->read(ctx->queue, src->storage->alloc->block,
                                         at, data, bytes);
    if (src != t)
        kiln_tensor_free(src);
    return s == KILN_OK ? s
                        : kiln__error(ctx, s, "kiln_tensor_read: %s",
                                      kiln_status_string(s));
}

kiln_context *kiln_tensor_context(const kiln_tensor *t)
{
    return t ? t->ctx : NULL;
}

kiln_dtype kiln_tensor_dtype(const kiln_tensor *t)
{
    return t ? t->dtype : KILN_F32;
}

int kiln_tensor_ndim(const kiln_tensor *t) { return t ? t->ndim : -1; }

int64_t kiln_tensor_dim(const kiln_tensor *t, int dim)
{
    if (!t)
        return -1;
    if (dim < 0)
        dim += t->ndim;
    return dim >= 0 && dim < t->ndim ? t->shape[dim] : -1;
}

int kiln_tensor_shape(const kiln_tensor *t, int64_t *shape)
{
    if (!t)
        return -1;
    for (int i = 0; shape && i < t->ndim; i++)
        shape[i] = t->shape[i];
    return t->ndim;
}

int kiln_tensor_strides(const kiln_tensor *t, int64_t *strides)
{
    if (!t)
        return -1;
    for (int i = 0; strides && i < t->ndim; i++)
        strides[i] = t->stride[i];
    return t->ndim;
}

int64_t kiln_tensor_numel(const kiln_tensor *t)
{
    return t ? kiln__numel(t->ndim, t->shape) : 0;
}

int kiln_tensor_is_contiguous(const kiln_tensor *t)
{
    if (!t)
        return 0;
    int64_t expect = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        if (t->shape[i] == 0)
            return 1;
        if (t->shape[i] != 1 && t->stride[i] != expect)
            return 0;
        expect *= t->shape[i];
    }
    return 1;
}
