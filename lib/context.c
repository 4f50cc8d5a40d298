/*
 * context.c - opening a device, the error state, statistics.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "kiln_config.h"
#include "tensor.h"

static kiln_queue *open_queue(kiln_context *ctx, int validation)
{
    switch (ctx->device.backend) {
    case KILN_BACKEND_REFERENCE:
        return kiln_cpu_queue_create(ctx, &ctx->device);
    case KILN_BACKEND_OPENCL:
#if KILN_HAVE_OPENCL
        return kiln_cl_queue_create(ctx, &ctx->device);
#else
        break;
#endif
    case KILN_BACKEND_VULKAN:
#if KILN_HAVE_VULKAN
        return kiln_vk_queue_create(ctx, &ctx->device, validation);
#else
        break;
#endif
    }
    (void)validation;
    return kiln__error_null(ctx, KILN_ERROR_NO_DEVICE,
                            "kiln_context_create: Kiln was built without the "
                            "%s backend", kiln_backend_name(ctx->device.backend));
}

/* Chooses the device named by @spec; fills ctx->device or records why not. */
static kiln_status choose_device(kiln_context *ctx, const char *spec)
{
    int n = kiln_device_list(NULL, 0);
    kiln_device_info *devs = calloc((size_t)n, sizeof *devs);
    if (!devs)
        return kiln__error(ctx, KILN_ERROR_OUT_OF_HOST_MEMORY,
                           "kiln_context_create: out of host memory");
    n = kiln_device_list(devs, n);
    char why[256];
    int i = kiln_device_select(devs, n, spec, why, sizeof why);
    if (i >= 0)
        ctx->device = devs[i];
    free(devs);
    if (i < 0)
        return kiln__error(ctx, KILN_ERROR_NO_DEVICE,
                           "kiln_context_create: device '%s': %s", spec, why);
    return KILN_OK;
}

kiln_context *kiln_context_create(const kiln_context_options *options)
{
    kiln_context_options defaults = {0};
    const kiln_context_options *o = options ? options : &defaults;
    kiln_context *ctx = calloc(1, sizeof *ctx);
    if (!ctx)
        return NULL;
    ctx->refs = 1;
    const char *spec = o->device;
    if (!spec)
        spec = getenv("KILN_DEVICE");
    if (!spec || !*spec)
        spec = "auto";
    if (choose_device(ctx, spec) != KILN_OK)
        return ctx;
    int validation = o->vulkan_validation ||
                     kiln__env_long("KILN_VULKAN_VALIDATION", 0) != 0;
    ctx->queue = open_queue(ctx, validation);
    if (!ctx->queue) {
        if (ctx->status == KILN_OK)
            kiln__error(ctx, KILN_ERROR_BACKEND,
                        "kiln_context_create: could not open %s",
                        ctx->device.name);
        return ctx;
    }
    long guard = o->guard_bytes ? (long)o->guard_bytes
                                : kiln__env_long("KILN_GUARD_BYTES", 0);
    kiln_suballoc_init(&ctx->alloc, ctx->queue, KILN_BLOCK_SIZE,
                       ctx->queue->max_block, guard > 0 ? (size_t)guard : 0);
    return ctx;
}

void kiln__context_retain(kiln_context *ctx) { ctx->refs++; }

void kiln__context_release(kiln_context *ctx)
{
    if (--ctx->refs == 0)
        free(ctx);
}

void kiln_context_destroy(kiln_context *ctx)
{
    if (!ctx || ctx->destroyed)
        return;
    /* Storages an unfinished capture kept: freed while the device lives. */
    kiln_storage *kept = ctx->kept;
    ctx->kept = NULL;
    ctx->recording = 0;
    kiln__storage_free_chain(kept);
    if (ctx->queue)
        kiln__recordings_release(ctx);
    ctx->destroyed = 1;
    if (ctx->queue) {
        ctx->queue->vt->finish(ctx->queue);
        kiln_suballoc_release(&ctx->alloc);
        ctx->queue->vt->destroy(ctx->queue);
        ctx->queue = NULL;
    }
    kiln__context_release(ctx);
}

const kiln_device_info *kiln_context_device(const kiln_context *ctx)
{
    return ctx ? &ctx->device : NULL;
}

kiln_status kiln_status_of(const kiln_context *ctx)
{
    return ctx ? ctx->status : KILN_ERROR_INVALID_ARGUMENT;
}

const char *kiln_error_message(const kiln_context *ctx)
{
    if (!ctx)
        return "kiln: NULL context";
    return ctx->message;
}

void kiln_clear_error(kiln_context *ctx)
{
    if (!ctx)
        return;
    ctx->status = KILN_OK;
    ctx->message[0] = '\0';
}

/* Entry check for calls that need a working device. */
static kiln_status usable(kiln_context *ctx, const char *call)
{
    if (!ctx)
        return KILN_ERROR_INVALID_ARGUMENT;
    if (!ctx->queue)
        return kiln__error(ctx, KILN_ERROR_NO_DEVICE,
                           "%s: the context has no open device", call);
    return KILN_OK;
}

kiln_status kiln_finish(kiln_context *ctx)
{
    kiln_status s = usable(ctx, "kiln_finish");
    if (s != KILN_OK)
        return s;
    s = ctx->queue->vt->finish(ctx->queue);
    if (s != KILN_OK)
        return kiln__error(ctx, s, "kiln_finish: %s", kiln_status_string(s));
    return KILN_OK;
}

uint64_t kiln_validation_message_count(const kiln_context *ctx)
{
    return ctx ? ctx->validation_messages : 0;
}

kiln_status kiln_check_guards(kiln_context *ctx)
{
    kiln_status s = usable(ctx, "kiln_check_guards");
    if (s != KILN_OK)
        return s;
    kiln_allocation *bad = kiln_suballoc_check_guards(&ctx->alloc, &s);
    if (bad && s == KILN_ERROR_CORRUPT)
        return kiln__error(ctx, s,
                           "kiln_check_guards: the guard bytes around the %zu-"
                           "byte allocation at offset %zu of a device block "
                           "were overwritten (an out-of-bounds write)",
                           bad->size, bad->offset);
    if (s != KILN_OK)
        return kiln__error(ctx, s, "kiln_check_guards: reading guards: %s",
                           kiln_status_string(s));
    return KILN_OK;
}

void kiln_context_get_stats(const kiln_context *ctx, kiln_context_stats *out)
{
    if (!out)
        return;
    memset(out, 0, sizeof *out);
    if (!ctx)
        return;
    *out = ctx->stats;
    out->device_blocks = ctx->alloc.nblocks;
    out->device_bytes = ctx->alloc.block_bytes;
    out->live_allocations = ctx->alloc.nlive;
}

int kiln__dtype_supported(const kiln_context *ctx, kiln_dtype dtype)
{
    switch (dtype) {
    case KILN_F32:
    case KILN_I32:
        return 1;
    case KILN_F64:
        return ctx->device.fp64;
    }
    return 0;
}
