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
    if (s != KILN_OK || !r) {
        if (qr)
            ctx->queue->vt->recording_free(ctx->queue, qr);
        free(r);
        kiln__storage_free_chain(ctx->kept);
        ctx->kept = NULL;
        return kiln__error_null(ctx, s != KILN_OK ? s
                                                  : KILN_ERROR_OUT_OF_HOST_MEMORY,
                                "kiln_recording_end: %s",
                                kiln_status_string(s));
    }
    r->ctx = ctx;
    kiln__context_retain(ctx); /* the handle may outlive the user's ref */
    r->rec = qr;
    r->dispatches = ctx->stats.dispatches - ctx->stats_at_record;
    r->kept = ctx->kept;
    ctx->kept = NULL;
    return r;
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
    if (r->ctx->queue && !r->ctx->destroyed) {
        r->ctx->queue->vt->finish(r->ctx->queue); /* a replay may run */
        r->ctx->queue->vt->recording_free(r->ctx->queue, r->rec);
    }
    kiln__storage_free_chain(r->kept);
    kiln__context_release(r->ctx);
    free(r);
}
