/*
 * recording.c - capture a sequence of ops once, replay it many times.
 *
 * Small networks are launch-bound (~17.5 us per OpenCL enqueue on NVIDIA,
 * ~40 kernels per LeNet step): replaying a captured sequence avoids
 * rebuilding every dispatch on the host.  The backends decide how to replay
 * (a Vulkan command buffer submitted again, an OpenCL enqueue list).
 */
#include <stdlib.h>

#include "internal.h"
#include "tensor.h"

struct kiln_recording {
    kiln_context *ctx;
    kiln_queue_recording *rec;
    uint64_t dispatches;
    kiln_storage *kept;      /* storages freed during the capture */
    kiln_recording *prev, *next; /* the context's live recordings */
};

kiln_status kiln_recording_begin(kiln_context *ctx)
{
    if (!ctx)
        return KILN_ERROR_INVALID_ARGUMENT;
    if (!ctx->queue)
        return kiln__error(ctx, KILN_ERROR_NO_DEVICE,
                           "kiln_recording_begin: the context has no device");
    if (ctx->recording)
        return kiln__error(ctx, KILN_ERROR_INVALID_ARGUMENT,
                           "kiln_recording_begin: already recording");
    kiln_status s = ctx->queue->vt->record_begin(ctx->queue);
    if (s != KILN_OK)
        return kiln__error(ctx, s, "kiln_recording_begin: %s",
                           kiln_status_string(s));
    ctx->recording = 1;
    ctx->capture_serial++;
    ctx->stats_at_record = ctx->stats.dispatches;
    return KILN_OK;
}

kiln_recording *kiln_recording_end(kiln_context *ctx)
{
    if (!ctx)
        return NULL;
    if (!ctx->recording)
        return kiln__error_null(ctx, KILN_ERROR_INVALID_ARGUMENT,
                                "kiln_recording_end: not recording");
    ctx->recording = 0;
    kiln_recording *r = calloc(1, sizeof *r);
    kiln_queue_recording *qr = NULL;
    kiln_status s = ctx->queue->vt->record_end(ctx->queue, &qr);
    if (s == KILN_OK && !r)
        s = KILN_ERROR_OUT_OF_HOST_MEMORY;
    if (s != KILN_OK) {
        if (qr)
            ctx->queue->vt->recording_free(ctx->queue, qr);
        free(r);
        kiln__storage_free_chain(ctx->kept);
        ctx->kept = NULL;
        return kiln__error_null(ctx, s, "kiln_recording_end: %s",
                                kiln_status_string(s));
    }
    r->ctx = ctx;
    kiln__context_retain(ctx); /* the handle may outlive the user's ref */
    r->rec = qr;
    r->dispatches = ctx->stats.dispatches - ctx->stats_at_record;
    r->kept = ctx->kept;
    ctx->kept = NULL;
    r->next = ctx->recordings;
    if (r->next)
        r->next->prev = r;
    ctx->recordings = r;
    return r;
}

/* The device half of @r and the memory it kept, while the device lives. */
static void release_device_side(kiln_recording *r)
{
    kiln_queue *q = r->ctx->queue;
    if (r->rec) {
        q->vt->finish(q); /* a replay may still run */
        q->vt->recording_free(q, r->rec);
        r->rec = NULL;
    }
    kiln__storage_free_chain(r->kept);
    r->kept = NULL;
}

void kiln__recordings_release(kiln_context *ctx)
{
    for (kiln_recording *r = ctx->recordings; r; r = r->next)
        release_device_side(r);
    /* The handles stay valid; kiln_recording_free frees them later. */
    for (kiln_recording *r = ctx->recordings, *next; r; r = next) {
        next = r->next;
        r->prev = r->next = NULL;
    }
    ctx->recordings = NULL;
}

kiln_status kiln_recording_replay(kiln_recording *r)
{
    if (!r)
        return KILN_ERROR_INVALID_ARGUMENT;
    kiln_context *ctx = r->ctx;
    if (!ctx->queue || ctx->destroyed)
        return kiln__error(ctx, KILN_ERROR_NO_DEVICE,
                           "kiln_recording_replay: the context has no device");
    if (ctx->recording)
        return kiln__error(ctx, KILN_ERROR_INVALID_ARGUMENT,
                           "kiln_recording_replay: cannot replay while "
                           "recording");
    kiln_status s = ctx->queue->vt->replay(ctx->queue, r->rec);
    if (s != KILN_OK)
        return kiln__error(ctx, s, "kiln_recording_replay: %s",
                           kiln_status_string(s));
    ctx->stats.dispatches += r->dispatches;
    return KILN_OK;
}

uint64_t kiln_recording_dispatches(const kiln_recording *r)
{
    return r ? r->dispatches : 0;
}

void kiln_recording_free(kiln_recording *r)
{
    if (!r)
        return;
    kiln_context *ctx = r->ctx;
    if (ctx->queue && !ctx->destroyed) {
        release_device_side(r);
        if (r->prev)
            r->prev->next = r->next;
        else
            ctx->recordings = r->next;
        if (r->next)
            r->next->prev = r->prev;
    }
    /* After kiln_context_destroy the device side is already gone. */
    kiln__context_release(ctx);
    free(r);
}
