/*
 * cl_queue.c - the OpenCL queue: blocks are cl_mem buffers, kernels are the
 * kernels/<family>.cl families (cl_program.c), one in-order command queue.
 *
 * Kernel arguments follow queue.h: argument i is binding i's buffer, the
 * last argument is the 128-byte parameter block by value.  A recording is
 * a list of prepared enqueues (kernel, buffers, parameters, sizes).  Where
 * the device has cl_khr_command_buffer, record_end also builds a command
 * buffer from that list and replay enqueues it: one call instead of one
 * per dispatch.  Otherwise (no extension, building it failed, or
 * KILN_CL_COMMAND_BUFFER=0) replay sets and enqueues each dispatch again,
 * skipping the op layer and the caches.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "opencl/cl_internal.h"
#include <CL/cl_ext.h>

/*
 * cl_khr_command_buffer, declared here rather than taken from CL/cl_ext.h:
 * the extension is provisional and its header declarations change between
 * opencl-headers releases (2024.10 renamed the command property type and
 * gave the other cl*Command*KHR calls new parameters), while a driver
 * implements the version it reports (PoCL 3.1: 0.9.0).  The five entry
 * points used here have the same signature in 0.9.0 to 0.9.7; they are
 * looked up at run time, so there is no link-time dependency.  Values are
 * the extension specification's.
 */
typedef struct kiln_cl_cmdbuf_s *kiln_cl_cmdbuf; /* cl_command_buffer_khr */
typedef cl_uint kiln_cl_sync_point;              /* cl_sync_point_khr     */
typedef cl_ulong kiln_cl_cmdbuf_prop;            /* cl_properties         */
#define KILN_CL_CMDBUF_EXTENSION "cl_khr_command_buffer"
#define KILN_CL_DEVICE_CMDBUF_CAPABILITIES 0x12A9
#define KILN_CL_DEVICE_CMDBUF_REQUIRED_QUEUE_PROPERTIES 0x12AA
#define KILN_CL_CMDBUF_CAPABILITY_SIMULTANEOUS_USE (1u << 2)
#define KILN_CL_CMDBUF_FLAGS 0x1293
#define KILN_CL_CMDBUF_SIMULTANEOUS_USE (1u << 0)
/* OpenCL 3.0 queries, hidden by cl.h below CL_TARGET_OPENCL_VERSION 300. */
#define KILN_CL_DEVICE_EXTENSIONS_WITH_VERSION 0x1060
typedef struct kiln_cl_name_version {
    cl_uint version;
    char name[64];
} kiln_cl_name_version;
#define KILN_CL_VERSION(major, minor, patch)                                  \
    (((cl_uint)(major) << 22) | ((cl_uint)(minor) << 12) | (cl_uint)(patch))

#ifdef CL_COMMAND_BUFFER_FLAGS_KHR /* where the header has them, it agrees */
_Static_assert(CL_COMMAND_BUFFER_FLAGS_KHR == KILN_CL_CMDBUF_FLAGS,
               "CL_COMMAND_BUFFER_FLAGS_KHR");
_Static_assert(CL_DEVICE_COMMAND_BUFFER_CAPABILITIES_KHR ==
                   KILN_CL_DEVICE_CMDBUF_CAPABILITIES,
               "CL_DEVICE_COMMAND_BUFFER_CAPABILITIES_KHR");
#endif

struct cl_cmdbuf_api {
    kiln_cl_cmdbuf(CL_API_CALL *create)(cl_uint, const cl_command_queue *,
                                        const kiln_cl_cmdbuf_prop *,
                                        cl_int *);
    cl_int(CL_API_CALL *finalize)(kiln_cl_cmdbuf);
    cl_int(CL_API_CALL *release)(kiln_cl_cmdbuf);
    cl_int(CL_API_CALL *enqueue)(cl_uint, cl_command_queue *, kiln_cl_cmdbuf,
                                 cl_uint, const cl_event *, cl_event *);
    cl_int(CL_API_CALL *ndrange)(kiln_cl_cmdbuf, cl_command_queue,
                                 const kiln_cl_cmdbuf_prop *, cl_kernel,
                                 cl_uint, const size_t *, const size_t *,
                                 const size_t *, cl_uint,
                                 const kiln_cl_sync_point *,
                                 kiln_cl_sync_point *, void **);
};

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

/* Sets @k's arguments to those of prepared enqueue @r. */
static cl_int set_args(cl_kernel k, const cl_recorded *r)
{
    cl_int err = CL_SUCCESS;
    for (int i = 0; i < r->nargs && err == CL_SUCCESS; i++)
        err = clSetKernelArg(k, (cl_uint)i, sizeof(cl_mem), &r->args[i]);
    if (err == CL_SUCCESS)
        err = clSetKernelArg(k, (cl_uint)r->nargs, KILN_PARAM_BYTES,
                             r->params);
    return err;
}

/* Sets the arguments of one prepared enqueue and enqueues it. */
static kiln_status enqueue(cl_queue *q, const cl_recorded *r)
{
    cl_int err = set_args(r->kernel, r);
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
    /* The dispatches: what the fallback replay enqueues, and what keeps
     * the kernels and buffers alive for the command buffer too. */
    cl_recorded *items;
    size_t count;
    kiln_cl_cmdbuf cb;          /* NULL: replay re-enqueues items          */
    cl_kernel *own;             /* cb's kernels, one per command           */
    int enqueued;               /* cb was enqueued at least once           */
    char why[160];              /* why cb is NULL                          */
    kiln_queue_recording *prev, *next; /* cl_queue.live                    */
};

/* Is @name a whole word of the space-separated list @list? */
static int has_word(const char *list, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = list; (p = strstr(p, name)) != NULL; p += n)
        if ((p == list || p[-1] == ' ') && (p[n] == ' ' || p[n] == '\0'))
            return 1;
    return 0;
}

static int device_has_extension(cl_device_id dev, const char *name)
{
    size_t size = 0;
    int found = 0;
    if (clGetDeviceInfo(dev, CL_DEVICE_EXTENSIONS, 0, NULL, &size) !=
            CL_SUCCESS || size == 0)
        return 0;
    char *list = malloc(size + 1);
    if (list && clGetDeviceInfo(dev, CL_DEVICE_EXTENSIONS, size, list,
                                NULL) == CL_SUCCESS) {
        list[size] = '\0';
        found = has_word(list, name);
    }
    free(list);
    return found;
}

/* The version the device gives extension @name (OpenCL 3.0), or 0. */
static cl_uint extension_version(cl_device_id dev, const char *name)
{
    size_t size = 0;
    cl_uint version = 0;
    if (clGetDeviceInfo(dev, KILN_CL_DEVICE_EXTENSIONS_WITH_VERSION, 0, NULL,
                        &size) != CL_SUCCESS || size == 0)
        return 0;
    kiln_cl_name_version *list = malloc(size);
    if (list && clGetDeviceInfo(dev, KILN_CL_DEVICE_EXTENSIONS_WITH_VERSION,
                                size, list, NULL) == CL_SUCCESS)
        for (size_t i = 0; i < size / sizeof *list; i++)
            if (strncmp(list[i].name, name, sizeof list[i].name) == 0)
                version = list[i].version;
    free(list);
    return version;
}

/* Looks up the five entry points; 0 and q->cmdbuf_why when one is missing. */
static int cmdbuf_lookup(cl_queue *q, struct cl_cmdbuf_api *api)
{
    static const char *const names[] = {
        "clCreateCommandBufferKHR", "clFinalizeCommandBufferKHR",
        "clReleaseCommandBufferKHR", "clEnqueueCommandBufferKHR",
        "clCommandNDRangeKernelKHR"};
    void *fn[5];
    for (int i = 0; i < 5; i++) {
        fn[i] = clGetExtensionFunctionAddressForPlatform(q->platform,
                                                         names[i]);
        if (!fn[i]) {
            snprintf(q->cmdbuf_why, sizeof q->cmdbuf_why,
                     "the platform has no %s", names[i]);
            return 0;
        }
    }
    /* Object to function pointer: what the lookup API is made for. */
    api->create = (kiln_cl_cmdbuf(CL_API_CALL *)(
        cl_uint, const cl_command_queue *, const kiln_cl_cmdbuf_prop *,
        cl_int *))fn[0];
    api->finalize = (cl_int(CL_API_CALL *)(kiln_cl_cmdbuf))fn[1];
    api->release = (cl_int(CL_API_CALL *)(kiln_cl_cmdbuf))fn[2];
    api->enqueue = (cl_int(CL_API_CALL *)(cl_uint, cl_command_queue *,
                                          kiln_cl_cmdbuf, cl_uint,
                                          const cl_event *, cl_event *))fn[3];
    api->ndrange = (cl_int(CL_API_CALL *)(
        kiln_cl_cmdbuf, cl_command_queue, const kiln_cl_cmdbuf_prop *,
        cl_kernel, cl_uint, const size_t *, const size_t *, const size_t *,
        cl_uint, const kiln_cl_sync_point *, kiln_cl_sync_point *,
        void **))fn[4];
    return 1;
}

/*
 * Decides at queue creation whether recordings become command buffers:
 * KILN_CL_COMMAND_BUFFER=0 never, =1 whenever the entry points exist (the
 * first creation failure then falls back), unset where the device lists
 * the extension and our queue has the properties it requires (none).
 *
 * Simultaneous use.  Replays may follow each other with no host wait in
 * between (replay, replay, read), so an enqueue can find the buffer still
 * Pending from the previous one.  Up to version 0.9.6 of the extension
 * (PoCL 3.1 reports 0.9.0) that enqueue is CL_INVALID_OPERATION unless the
 * buffer was created with CL_COMMAND_BUFFER_SIMULTANEOUS_USE_KHR; 0.9.7
 * allows it without the flag and redefines the flag as "executions may
 * overlap".  Executions never overlap here: the queue is in-order, so a
 * replay starts after the previous one ends whatever the flag says.  So:
 * 0.9.7 and later, no flag; older with the capability, the flag (it only
 * lets the enqueue through); older without, no flag, and a replay whose
 * enqueue is refused re-enqueues the dispatches instead (cl_replay).
 */
static void cmdbuf_init(cl_queue *q)
{
    struct cl_cmdbuf_api api;
    cl_bitfield required = 0, caps = 0;
    long mode = kiln__env_long("KILN_CL_COMMAND_BUFFER", -1);
    if (mode == 0) {
        snprintf(q->cmdbuf_why, sizeof q->cmdbuf_why,
                 "disabled by KILN_CL_COMMAND_BUFFER=0");
        return;
    }
    int listed = device_has_extension(q->device, KILN_CL_CMDBUF_EXTENSION);
    if (listed) {
        clGetDeviceInfo(q->device,
                        KILN_CL_DEVICE_CMDBUF_REQUIRED_QUEUE_PROPERTIES,
                        sizeof required, &required, NULL);
        clGetDeviceInfo(q->device, KILN_CL_DEVICE_CMDBUF_CAPABILITIES,
                        sizeof caps, &caps, NULL);
    }
    /* PoCL implements a 0.9.0 draft: measured no faster than re-enqueueing
     * (it re-creates each command per enqueue) and it did not capture
     * kernel arguments at record time, so it is opt-in there. */
    if (mode != 1 && listed &&
        kiln__contains_nocase(q->base.ctx->device.platform,
                              "Portable Computing Language")) {
        snprintf(q->cmdbuf_why, sizeof q->cmdbuf_why,
                 "PoCL's draft cl_khr_command_buffer is opt-in "
                 "(KILN_CL_COMMAND_BUFFER=1): no faster there");
        return;
    }
    if (mode != 1 && (!listed || required != 0)) {
        snprintf(q->cmdbuf_why, sizeof q->cmdbuf_why,
                 !listed ? "the device does not list cl_khr_command_buffer"
                         : "cl_khr_command_buffer needs queue properties "
                           "0x%llx", (unsigned long long)required);
        return;
    }
    if (!cmdbuf_lookup(q, &api))
        return;
    q->cmdbuf = malloc(sizeof api);
    if (!q->cmdbuf) {
        snprintf(q->cmdbuf_why, sizeof q->cmdbuf_why, "out of host memory");
        return;
    }
    *q->cmdbuf = api;
    cl_uint version = extension_version(q->device, KILN_CL_CMDBUF_EXTENSION);
    q->cmdbuf_simultaneous =
        version < KILN_CL_VERSION(0, 9, 7) &&
        (caps & KILN_CL_CMDBUF_CAPABILITY_SIMULTANEOUS_USE);
}

/* Releases @r's command buffer and its kernels, if any. */
static void cmdbuf_drop(cl_queue *q, kiln_queue_recording *r)
{
    if (r->cb)
        q->cmdbuf->release(r->cb);
    r->cb = NULL;
    for (size_t i = 0; r->own && i < r->count; i++)
        if (r->own[i])
            clReleaseKernel(r->own[i]);
    free(r->own);
    r->own = NULL;
}

/* A new kernel object for @k's function in @k's program. */
static cl_kernel clone_kernel(cl_kernel k, cl_int *err)
{
    cl_program prog;
    char name[256];
    *err = clGetKernelInfo(k, CL_KERNEL_PROGRAM, sizeof prog, &prog, NULL);
    if (*err == CL_SUCCESS)
        *err = clGetKernelInfo(k, CL_KERNEL_FUNCTION_NAME, sizeof name, name,
                               NULL);
    return *err == CL_SUCCESS ? clCreateKernel(prog, name, err) : NULL;
}

/*
 * Builds @r's command buffer from its dispatches; on failure leaves r->cb
 * NULL and says why in r->why (replay then re-enqueues: not an error).
 *
 * The spec captures a command's kernel arguments when it is recorded, so
 * one cl_kernel could serve several commands.  PoCL 3.1 does not: its
 * commands read the arguments the kernel object has when the buffer runs
 * (checked: one kernel recorded 8 times with different arguments ran 8
 * times with the last ones).  So every command gets a kernel object
 * of its own, its arguments set once here and never again; clCreateKernel
 * by name rather than clCloneKernel, which needs OpenCL 2.1.  The cached
 * kernels that eager dispatches re-set are never recorded.
 */
static void cmdbuf_build(cl_queue *q, kiln_queue_recording *r)
{
    const struct cl_cmdbuf_api *api = q->cmdbuf;
    const kiln_cl_cmdbuf_prop simultaneous[] = {
        KILN_CL_CMDBUF_FLAGS, KILN_CL_CMDBUF_SIMULTANEOUS_USE, 0};
    kiln_cl_sync_point prev = 0, sp = 0;
    const char *call = "clCreateCommandBufferKHR";
    cl_int err = CL_OUT_OF_HOST_MEMORY;

    if (!api || r->count == 0) {
        snprintf(r->why, sizeof r->why, "%s",
                 api ? "the recording is empty" : q->cmdbuf_why);
        return;
    }
    r->own = calloc(r->count, sizeof *r->own);
    if (!r->own)
        goto fail;
    r->cb = api->create(1, &q->queue,
                        q->cmdbuf_simultaneous ? simultaneous : NULL, &err);
    if (!r->cb || err != CL_SUCCESS)
        goto fail;
    for (size_t i = 0; i < r->count; i++) {
        const cl_recorded *d = &r->items[i];
        call = "clCreateKernel (a kernel per command)";
        r->own[i] = clone_kernel(d->kernel, &err);
        if (!r->own[i])
            goto fail;
        call = "clSetKernelArg";
        err = set_args(r->own[i], d);
        if (err != CL_SUCCESS)
            goto fail;
        /* Each command waits for the one before, as on the in-order
         * queue: we do not rely on how an implementation orders the
         * commands of a buffer recorded for an in-order queue. */
        call = "clCommandNDRangeKernelKHR";
        err = api->ndrange(r->cb, NULL, NULL, r->own[i], 3, NULL, d->global,
                           d->local, i ? 1 : 0, i ? &prev : NULL, &sp, NULL);
        if (err != CL_SUCCESS)
            goto fail;
        prev = sp;
    }
    call = "clFinalizeCommandBufferKHR";
    err = api->finalize(r->cb);
    if (err != CL_SUCCESS)
        goto fail;
    return;
fail:
    snprintf(r->why, sizeof r->why, "%s failed: %s", call,
             kiln_cl_error_string(err));
    cmdbuf_drop(q, r);
}

int kiln_cl_recording_uses_command_buffer(const kiln_queue_recording *r,
                                          const char **why)
{
    if (why)
        *why = r ? r->why : "no recording";
    return r && r->cb;
}

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
    memset(r, 0, sizeof *r);
    r->items = q->rec;
    r->count = q->nrec;
    q->rec = NULL;
    q->nrec = q->caprec = 0;
    q->recording = 0;
    r->next = q->live;
    if (q->live)
        q->live->prev = r;
    q->live = r;
    cmdbuf_build(q, r);
    *out = r;
    return KILN_OK;
}

static kiln_status cl_replay(kiln_queue *base, kiln_queue_recording *r)
{
    cl_queue *q = (cl_queue *)base;
    if (r->cb) {
        cl_int err = q->cmdbuf->enqueue(0, NULL, r->cb, 0, NULL, NULL);
        if (err == CL_SUCCESS) {
            r->enqueued = 1;
            return KILN_OK;
        }
        /* Refused, e.g. CL_INVALID_OPERATION for a buffer still Pending
         * without simultaneous use (cmdbuf_init): the list below runs the
         * same dispatches in the same order, with no host wait. */
    }
    for (size_t i = 0; i < r->count; i++) {
        kiln_status s = enqueue(q, &r->items[i]);
        if (s != KILN_OK)
            return s;
    }
    return KILN_OK;
}

static void cl_recording_free(kiln_queue *base, kiln_queue_recording *r)
{
    cl_queue *q = (cl_queue *)base;
    /* The spec defers deleting a released command buffer until it has
     * run, but PoCL 3.1 implements the 0.9.0 draft: do not lean on it. */
    if (r->enqueued)
        clFinish(q->queue);
    cmdbuf_drop(q, r);
    for (size_t i = 0; i < r->count; i++)
        recorded_release(&r->items[i]);
    free(r->items);
    if (r->prev)
        r->prev->next = r->next;
    else
        q->live = r->next;
    if (r->next)
        r->next->prev = r->prev;
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
    /* Recordings the user did not free before kiln_context_destroy (the
     * core no longer calls recording_free then): command buffers go
     * before the queue and context they were made for. */
    while (q->live)
        cl_recording_free(base, q->live);
    free(q->cmdbuf);
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
    cmdbuf_init(q);
    return &q->base;
fail:
    cl_destroy(&q->base);
    return NULL;
}
