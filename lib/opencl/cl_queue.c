/*
 * cl_queue.c - the OpenCL queue: blocks are cl_mem buffers, kernels are the
 * kernels/<family>.cl families (cl_program.c), one in-order command queue.
 *
 * Kernel arguments follow queue.h: argument i is binding i's buffer, the
 * last argument is the 128-byte parameter block by value.  A recording is
 * a list of prepared enqueues (kernel, buffers, parameters, sizes) that
 * replay sets and enqueues again, skipping the op layer and the caches.
 */
#include <stdlib.h>
#include <string.h>

#include "opencl/cl_internal.h"

static kiln_status cl_fail(cl_queue *q, const char *call, cl_int err)
{
    return kiln__error(q->base.ctx, kiln_cl_status(err),
                       "opencl: %s failed: %s", call,
                       kiln_cl_error_string(err));
}

static kiln_status cl_block_alloc(kiln_queue *base, size_t size,
                                  kiln_block *out)
{
    cl_queue *q = (cl_queue *)base;
    cl_int err;
    if (size == 0)
        size = 1;
    /* Too big is out of memory, not an invalid argument: the core then
     * reports it with the tensor's shape. */
    if (q->max_alloc && size > q->max_alloc)
        return KILN_ERROR_OUT_OF_DEVICE_MEMORY;
    cl_mem mem = clCreateBuffer(q->context, CL_MEM_READ_WRITE, size, NULL,
                                &err);
    if (err != CL_SUCCESS)
        return kiln_cl_status(err) == KILN_ERROR_OUT_OF_DEVICE_MEMORY
                   ? KILN_ERROR_OUT_OF_DEVICE_MEMORY
                   : cl_fail(q, "clCreateBuffer", err);
    /* Many drivers allocate at first use: touch one byte now so a full
     * device fails here, where the caller can say which tensor it was. */
    unsigned char zero = 0;
    err = clEnqueueWriteBuffer(q->queue, mem, CL_TRUE, 0, 1, &zero, 0, NULL,
                               NULL);
    if (err != CL_SUCCESS) {
        clReleaseMemObject(mem);
        return kiln_cl_status(err) == KILN_ERROR_OUT_OF_DEVICE_MEMORY
                   ? KILN_ERROR_OUT_OF_DEVICE_MEMORY
                   : cl_fail(q, "clEnqueueWriteBuffer (first touch)", err);
    }
    out->handle = mem;
    out->size = size;
    return KILN_OK;
}

static void cl_block_free(kiln_queue *base, kiln_block *b)
{
    (void)base;
    if (b->handle)
        clReleaseMemObject((cl_mem)b->handle);
    b->handle = NULL;
}

static kiln_status cl_write(kiln_queue *base, kiln_block *dst, size_t offset,
                            const void *src, size_t size)
{
    cl_queue *q = (cl_queue *)base;
    if (size == 0)
        return KILN_OK;
    cl_int err = clEnqueueWriteBuffer(q->queue, (cl_mem)dst->handle, CL_TRUE,
                                      offset, size, src, 0, NULL, NULL);
    return err == CL_SUCCESS ? KILN_OK : cl_fail(q, "clEnqueueWriteBuffer",
                                                 err);
}

static kiln_status cl_read(kiln_queue *base, kiln_block *src, size_t offset,
                           void *dst, size_t size)
{
    cl_queue *q = (cl_queue *)base;
    if (size == 0)
        return KILN_OK;
    cl_int err = clEnqueueReadBuffer(q->queue, (cl_mem)src->handle, CL_TRUE,
                                     offset, size, dst, 0, NULL, NULL);
    return err == CL_SUCCESS ? KILN_OK : cl_fail(q, "clEnqueueReadBuffer",
                                                 err);
}

static kiln_status cl_copy(kiln_queue *base, kiln_block *src, size_t soff,
                           kiln_block *dst, size_t doff, size_t size)
{
    cl_queue *q = (cl_queue *)base;
    if (size == 0)
        return KILN_OK;
    cl_int err = clEnqueueCopyBuffer(q->queue, (cl_mem)src->handle,
                                     (cl_mem)dst->handle, soff, doff, size, 0,
                                     NULL, NULL);
    return err == CL_SUCCESS ? KILN_OK : cl_fail(q, "clEnqueueCopyBuffer",
                                                 err);
}

static int cl_supports(kiln_queue *base, kiln_kernel_id kernel,
                       kiln_dtype dtype, int op)
{
    (void)kernel;
    (void)op;
    return dtype != KILN_F64 || ((cl_queue *)base)->fp64;
}

/* Sets the arguments of one prepared enqueue and enqueues it. */
static kiln_status enqueue(cl_queue *q, const cl_recorded *r)
{
    cl_int err = CL_SUCCESS;
    for (int i = 0; i < r->nargs && err == CL_SUCCESS; i++)
        err = clSetKernelArg(r->kernel, (cl_uint)i, sizeof(cl_mem),
                             &r->args[i]);
    if (err == CL_SUCCESS)
        err = clSetKernelArg(r->kernel, (cl_uint)r->nargs, KILN_PARAM_BYTES,
                             r->params);
    if (err != CL_SUCCESS)
        return cl_fail(q, "clSetKernelArg", err);
    err = clEnqueueNDRangeKernel(q->queue, r->kernel, 3, NULL, r->global,
                                 r->local, 0, NULL, NULL);
    return err == CL_SUCCESS ? KILN_OK : cl_fail(q, "clEnqueueNDRangeKernel",
                                                 err);
}

static void recorded_release(cl_recorded *r)
{
    for (int i = 0; i < r->nargs; i++)
        clReleaseMemObject(r->args[i]);
    clReleaseKernel(r->kernel);
}

static kiln_status cl_dispatch(kiln_queue *base, const kiln_dispatch *d)
{
    cl_queue *q = (cl_queue *)base;
    kiln_status s = KILN_OK;
    cl_recorded r;
    if (d->nbindings < 0 || d->nbindings > KILN_MAX_BINDINGS)
        return kiln__error(base->ctx, KILN_ERROR_INVALID_ARGUMENT,
                           "opencl: dispatch with %d bindings",
                           d->nbindings);
    r.kernel = kiln_cl_get_kernel(q, d, &s);
    if (!r.kernel)
        return s;
    r.nargs = d->nbindings;
    for (int i = 0; i < d->nbindings; i++)
        r.args[i] = (cl_mem)d->bindings[i].block->handle;
    memcpy(r.params, d->params, sizeof r.params);
    for (int i = 0; i < 3; i++) {
        r.local[i] = d->local[i] ? d->local[i] : 1;
        r.global[i] = (size_t)d->groups[i] * r.local[i];
        if (r.global[i] == 0)
            return KILN_OK; /* an empty grid: nothing to do */
    }
    if (!q->recording)
        return enqueue(q, &r);

    if (q->nrec == q->caprec) {
        size_t cap = q->caprec ? 2 * q->caprec : 16;
        cl_recorded *grown = realloc(q->rec, cap * sizeof *grown);
        if (!grown)
            return kiln__error(base->ctx, KILN_ERROR_OUT_OF_HOST_MEMORY,
                               "opencl: out of host memory recording");
        q->rec = grown;
        q->caprec = cap;
    }
    /* The recording keeps its kernel and buffers alive on its own. */
    clRetainKernel(r.kernel);
    for (int i = 0; i < r.nargs; i++)
        clRetainMemObject(r.args[i]);
    q->rec[q->nrec++] = r;
    return KILN_OK;
}

struct kiln_queue_recording {
    cl_recorded *items;
    size_t count;
};

static void drop_capture(cl_queue *q)
{
    for (size_t i = 0; i < q->nrec; i++)
        recorded_release(&q->rec[i]);
    free(q->rec);
    q->rec = NULL;
    q->nrec = q->caprec = 0;
}

static kiln_status cl_record_begin(kiln_queue *base)
{
    cl_queue *q = (cl_queue *)base;
    drop_capture(q);
    q->recording = 1;
    return KILN_OK;
}

static kiln_status cl_record_end(kiln_queue *base, kiln_queue_recording **out)
{
    cl_queue *q = (cl_queue *)base;
    kiln_queue_recording *r = malloc(sizeof *r);
    if (!r)
        return kiln__error(base->ctx, KILN_ERROR_OUT_OF_HOST_MEMORY,
                           "opencl: out of host memory ending a recording");
    r->items = q->rec;
    r->count = q->nrec;
    q->rec = NULL;
    q->nrec = q->caprec = 0;
    q->recording = 0;
    *out = r;
    return KILN_OK;
}

static kiln_status cl_replay(kiln_queue *base, kiln_queue_recording *r)
{
    cl_queue *q = (cl_queue *)base;
    for (size_t i = 0; i < r->count; i++) {
        kiln_status s = enqueue(q, &r->items[i]);
        if (s != KILN_OK)
            return s;
    }
    return KILN_OK;
}

static void cl_recording_free(kiln_queue *base, kiln_queue_recording *r)
{
    (void)base;
    for (size_t i = 0; i < r->count; i++)
        recorded_release(&r->items[i]);
    free(r->items);
    free(r);
}

static kiln_status cl_finish(kiln_queue *base)
{
    cl_queue *q = (cl_queue *)base;
    cl_int err = clFinish(q->queue);
    return err == CL_SUCCESS ? KILN_OK : cl_fail(q, "clFinish", err);
}

static void cl_destroy(kiln_queue *base)
{
    cl_queue *q = (cl_queue *)base;
    if (q->queue)
        clFinish(q->queue);
    drop_capture(q);
    kiln_cl_release_programs(q);
    if (q->queue)
        clReleaseCommandQueue(q->queue);
    if (q->context)
        clReleaseContext(q->context);
    free(q);
}

static const kiln_queue_vtable cl_vtable = {
    .name = "opencl",
    .block_alloc = cl_block_alloc,
    .block_free = cl_block_free,
    .write = cl_write,
    .read = cl_read,
    .copy = cl_copy,
    .supports = cl_supports,
    .dispatch = cl_dispatch,
    .record_begin = cl_record_begin,
    .record_end = cl_record_end,
    .replay = cl_replay,
    .recording_free = cl_recording_free,
    .finish = cl_finish,
    .destroy = cl_destroy,
};

/* Finds @info's device again and checks it is still the one listed. */
static kiln_status open_device(cl_queue *q, const kiln_device_info *info)
{
    kiln_context *ctx = q->base.ctx;
    cl_int err = kiln_cl_find_device(info->index, &q->platform, &q->device);
    if (err != CL_SUCCESS)
        return kiln__error(ctx, KILN_ERROR_NO_DEVICE,
                           "kiln_context_create: OpenCL device %d (%s) not "
                           "found", info->index, info->name);
    kiln_cl_device_string(q->device, CL_DEVICE_NAME, q->device_name,
                          sizeof q->device_name);
    if (strncmp(q->device_name, info->name, sizeof info->name - 1) != 0)
        return kiln__error(ctx, KILN_ERROR_NO_DEVICE,
                           "kiln_context_create: OpenCL device %d is now "
                           "\"%s\", not \"%s\"", info->index, q->device_name,
                           info->name);
    kiln_cl_device_string(q->device, CL_DRIVER_VERSION, q->driver_version,
                          sizeof q->driver_version);
    kiln_cl_platform_string(q->platform, CL_PLATFORM_VERSION,
                            q->platform_version, sizeof q->platform_version);
    cl_ulong max_alloc = 0;
    clGetDeviceInfo(q->device, CL_DEVICE_MAX_MEM_ALLOC_SIZE, sizeof max_alloc,
                    &max_alloc, NULL);
    q->max_alloc = max_alloc;
    return KILN_OK;
}

kiln_queue *kiln_cl_queue_create(kiln_context *ctx,
                                 const kiln_device_info *info)
{
    cl_queue *q = calloc(1, sizeof *q);
    if (!q)
        return kiln__error_null(ctx, KILN_ERROR_OUT_OF_HOST_MEMORY,
                                "kiln_context_create: out of host memory");
    q->base.vt = &cl_vtable;
    q->base.ctx = ctx;
    if (open_device(q, info) != KILN_OK)
        goto fail;
    cl_int err;
    cl_context_properties props[] = {
        CL_CONTEXT_PLATFORM, (cl_context_properties)q->platform, 0};
    q->context = clCreateContext(props, 1, &q->device, NULL, NULL, &err);
    if (err != CL_SUCCESS) {
        kiln__error(ctx, kiln_cl_status(err),
                    "kiln_context_create: clCreateContext (%s) failed: %s",
                    info->name, kiln_cl_error_string(err));
        goto fail;
    }
    q->queue = clCreateCommandQueue(q->context, q->device, 0, &err);
    if (err != CL_SUCCESS) {
        kiln__error(ctx, kiln_cl_status(err),
                    "kiln_context_create: clCreateCommandQueue (%s) failed: "
                    "%s", info->name, kiln_cl_error_string(err));
        goto fail;
    }
    q->fp64 = info->fp64;
    kiln_cl_cache_init(q);
    return &q->base;
fail:
    cl_destroy(&q->base);
    return NULL;
}
