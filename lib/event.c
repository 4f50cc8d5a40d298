/*
 * event.c - completion markers on a context's queue.
 *
 * Backends with native events (OpenCL markers, Vulkan fences) implement the
 * optional vtable slots; for the others the core waits at record time, so
 * the marker is complete as soon as it exists.
 */
#include <stdlib.h>

#include "internal.h"
#include "tensor.h"

struct kiln_event {
    kiln_context *ctx;
    kiln_queue_event *native;   /* NULL: completed when recorded */
};

kiln_event *kiln_event_record(kiln_context *ctx)
{
    if (!ctx)
        return NULL;
    if (!ctx->queue || ctx->destroyed)
        return kiln__error_null(ctx, KILN_ERROR_NO_DEVICE,
                                "kiln_event_record: the context has no device");
    if (ctx->recording)
        return kiln__error_null(ctx, KILN_ERROR_INVALID_ARGUMENT,
                                "kiln_event_record: not allowed while "
                                "recording");
    kiln_event *ev = calloc(1, sizeof *ev);
    if (!ev)
        return kiln__error_null(ctx, KILN_ERROR_OUT_OF_HOST_MEMORY,
                                "kiln_event_record: out of host memory");
    kiln_queue *q = ctx->queue;
    kiln_status s = q->vt->event_record ? q->vt->event_record(q, &ev->native)
                                        : q->vt->finish(q);
    if (s != KILN_OK) {
        free(ev);
        return kiln__error_null(ctx, s, "kiln_event_record: %s",
                                kiln_status_string(s));
    }
    ev->ctx = ctx;
    kiln__context_retain(ctx);
    return ev;
}

static int alive(const kiln_event *ev)
{
    return ev->ctx->queue && !ev->ctx->destroyed;
}

kiln_status kiln_event_wait(kiln_event *ev)
{
    if (!ev)
        return KILN_ERROR_INVALID_ARGUMENT;
    if (!ev->native)
        return KILN_OK;
    if (!alive(ev))
        return KILN_ERROR_NO_DEVICE;
    kiln_queue *q = ev->ctx->queue;
    kiln_status s = q->vt->event_wait(q, ev->native);
    return s == KILN_OK ? s
                        : kiln__error(ev->ctx, s, "kiln_event_wait: %s",
                                      kiln_status_string(s));
}

int kiln_event_query(kiln_event *ev)
{
    if (!ev)
        return -KILN_ERROR_INVALID_ARGUMENT;
    if (!ev->native)
        return 1;
    if (!alive(ev))
        return -KILN_ERROR_NO_DEVICE;
    return ev->ctx->queue->vt->event_query(ev->ctx->queue, ev->native);
}

void kiln_event_free(kiln_event *ev)
{
    if (!ev)
        return;
    if (ev->native && alive(ev))
        ev->ctx->queue->vt->event_free(ev->ctx->queue, ev->native);
    kiln__context_release(ev->ctx);
    free(ev);
}
