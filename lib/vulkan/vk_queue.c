/*
 * vk_queue.c - the Vulkan queue: command buffers, barriers, dispatch,
 * recording and replay.
 *
 * Commands are recorded into a ring of KILN_VK_RING primary command
 * buffers.  The current one is submitted (with its fence) when the host
 * needs results (finish, read, write) or after KILN_VK_BATCH commands, so
 * the device starts early on long sequences.  Barriers are placed only on a
 * real hazard (queue/hazard.h): one global VkMemoryBarrier from compute and
 * transfer writes to compute and transfer reads and writes.  A recording is
 * a separate command buffer that starts and ends with such a barrier and is
 * submitted again by replay (after its previous submission has finished,
 * since it is not created for simultaneous use).
 * ctx->stats.barriers counts the hazard barriers only, not the fixed ones
 * at the ends of a recording or before the host reads.
 */
#include <stdlib.h>
#include <string.h>

#include "queue/kernel_table.h"
#include "queue/kernels_fused.h"
#include "vulkan/vk_internal.h"

#define SHADER_STAGES (VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | \
                       VK_PIPELINE_STAGE_TRANSFER_BIT)

/* Makes compute/transfer writes visible to later compute/transfer work and,
 * with @host, to host reads after a fence wait. */
static void memory_barrier(VkCommandBuffer cb, int host)
{
    VkMemoryBarrier mb = {
        .sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
        .srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT |
                         VK_ACCESS_TRANSFER_WRITE_BIT,
        .dstAccessMask = VK_ACCESS_SHADER_READ_BIT |
                         VK_ACCESS_SHADER_WRITE_BIT |
                         VK_ACCESS_TRANSFER_READ_BIT |
                         VK_ACCESS_TRANSFER_WRITE_BIT,
    };
    VkPipelineStageFlags dst = SHADER_STAGES;
    if (host) {
        mb.dstAccessMask |= VK_ACCESS_HOST_READ_BIT;
        dst |= VK_PIPELINE_STAGE_HOST_BIT;
    }
    vkCmdPipelineBarrier(cb, SHADER_STAGES, dst, 0, 1, &mb, 0, NULL, 0,
                         NULL);
}

static kiln_status lost(kiln_vk_queue *q)
{
    return kiln__error(q->base.ctx, KILN_ERROR_DEVICE_LOST,
                       "vulkan: the device was lost earlier");
}

static kiln_status wait_fence(kiln_vk_queue *q, VkFence fence,
                              uint64_t serial)
{
    VkResult r = vkWaitForFences(q->device, 1, &fence, VK_TRUE, UINT64_MAX);
    if (r != VK_SUCCESS)
        return kiln_vk_fail(q, r, "vulkan", "vkWaitForFences");
    if (serial > q->completed)
        q->completed = serial;
    return KILN_OK;
}

/* vkQueueSubmit needs external synchronisation; a wrapped application
 * queue brings its own lock. */
static kiln_status submit(kiln_vk_queue *q, VkCommandBuffer cb, VkFence fence,
                          uint64_t *serial)
{
    VkSubmitInfo si = {
        .sType = VK_STRUCTURE_TYPE_SUBMIT_INFO,
        .commandBufferCount = 1,
        .pCommandBuffers = &cb,
    };
    if (q->lock)
        q->lock(q->lock_user);
    VkResult r = vkQueueSubmit(q->queue, 1, &si, fence);
    if (q->unlock)
        q->unlock(q->lock_user);
    if (r != VK_SUCCESS)
        return kiln_vk_fail(q, r, "vulkan", "vkQueueSubmit");
    *serial = ++q->submitted;
    q->last_fence = fence;
    return KILN_OK;
}

/* Waits for the fence's previous submission (if any) and resets it. */
static kiln_status fence_reuse(kiln_vk_queue *q, VkFence fence,
                               uint64_t serial)
{
    if (!serial)
        return KILN_OK;
    kiln_status s = wait_fence(q, fence, serial);
    if (s != KILN_OK)
        return s;
    VkResult r = vkResetFences(q->device, 1, &fence);
    return r == VK_SUCCESS ? KILN_OK : kiln_vk_fail(q, r, "vulkan",
                                                    "vkResetFences");
}

kiln_status kiln_vk_cmd_current(kiln_vk_queue *q, VkCommandBuffer *out)
{
    if (q->lost)
        return lost(q);
    if (q->current < 0) {
        kiln_vk_cmd *c = &q->ring[q->next];
        kiln_status s = fence_reuse(q, c->fence, c->serial);
        if (s != KILN_OK)
            return s;
        c->serial = 0;
        VkCommandBufferBeginInfo bi = {
            .sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO,
            .flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT,
        };
        VkResult r = vkBeginCommandBuffer(c->cb, &bi);
        if (r != VK_SUCCESS)
            return kiln_vk_fail(q, r, "vulkan", "vkBeginCommandBuffer");
        q->current = q->next;
        q->next = (q->next + 1) % KILN_VK_RING;
        q->current_commands = 0;
    }
    *out = q->ring[q->current].cb;
    return KILN_OK;
}

kiln_status kiln_vk_submit(kiln_vk_queue *q)
{
    if (q->current < 0)
        return KILN_OK;
    kiln_vk_cmd *c = &q->ring[q->current];
    q->current = -1;
    memory_barrier(c->cb, 1);
    /* That full barrier orders everything after it in submission order, so
     * nothing recorded so far can conflict with later commands. */
    kiln_hazard_reset(&q->hazard);
    VkResult r = vkEndCommandBuffer(c->cb);
    if (r != VK_SUCCESS)
        return kiln_vk_fail(q, r, "vulkan", "vkEndCommandBuffer");
    return submit(q, c->cb, c->fence, &c->serial);
}

kiln_status kiln_vk_wait_idle(kiln_vk_queue *q)
{
    if (q->lost)
        return lost(q);
    kiln_status s = kiln_vk_submit(q);
    if (s == KILN_OK && q->submitted > q->completed)
        s = wait_fence(q, q->last_fence, q->submitted);
    if (s == KILN_OK)
        kiln_hazard_reset(&q->hazard);
    return s;
}

kiln_status kiln_vk_hazard(kiln_vk_queue *q, kiln_hazard *h,
                           VkCommandBuffer cb, const kiln_binding *b, int n)
{
    if (kiln_hazard_conflicts(h, b, n)) {
        memory_barrier(cb, 0);
        q->base.ctx->stats.barriers++;
        kiln_hazard_reset(h);
    }
    if (kiln_hazard_add(h, b, n) != KILN_OK)
        return kiln__error(q->base.ctx, KILN_ERROR_OUT_OF_HOST_MEMORY,
                           "vulkan: out of host memory tracking hazards");
    return KILN_OK;
}

/* ------------------------------------------------------------------------ */
/* Dispatch                                                                 */
/* ------------------------------------------------------------------------ */

/* The workgroup size against the device's limits. */
static kiln_status check_local(kiln_vk_queue *q, const kiln_dispatch *d)
{
    kiln_context *ctx = q->base.ctx;
    const VkPhysicalDeviceLimits *l = &q->limits;
    uint64_t threads = 1;
    for (int i = 0; i < 3; i++) {
        if (!d->local[i] || d->local[i] > l->maxComputeWorkGroupSize[i])
            return kiln__error(ctx, KILN_ERROR_INVALID_ARGUMENT,
                               "vulkan dispatch: workgroup size %ux%ux%u "
                               "outside the device limit %ux%ux%u",
                               d->local[0], d->local[1], d->local[2],
                               l->maxComputeWorkGroupSize[0],
                               l->maxComputeWorkGroupSize[1],
                               l->maxComputeWorkGroupSize[2]);
        threads *= d->local[i];
    }
    if (threads > l->maxComputeWorkGroupInvocations)
        return kiln__error(ctx, KILN_ERROR_INVALID_ARGUMENT,
                           "vulkan dispatch: %llu invocations per workgroup "
                           "exceed the device's %u",
                           (unsigned long long)threads,
                           l->maxComputeWorkGroupInvocations);
    return KILN_OK;
}

static kiln_status check_dispatch(kiln_vk_queue *q, const kiln_dispatch *d)
{
    kiln_context *ctx = q->base.ctx;
    const kiln_kernel_desc *desc = kiln_kernel_describe(d->kernel);
    if (!desc)
        return kiln__error(ctx, KILN_ERROR_UNSUPPORTED,
                           "vulkan dispatch: no kernel with id %d in this "
                           "build", (int)d->kernel);
    if (d->nbindings < 0 || d->nbindings > KILN_MAX_BINDINGS ||
        (unsigned)d->dtype > KILN_F64 || (unsigned)d->dtype2 > KILN_F64)
        return kiln__error(ctx, KILN_ERROR_INVALID_ARGUMENT,
                           "vulkan dispatch: malformed dispatch (%s)",
                           desc->name);
    if ((d->dtype == KILN_F64 || (desc->uses_dtype2 &&
                                  d->dtype2 == KILN_F64)) && !q->fp64)
        return kiln__error(ctx, KILN_ERROR_DTYPE,
                           "vulkan dispatch: the device has no f64");
    if (!kiln_kernel_has_variant(d->kernel, d->dtype))
        return kiln__error(ctx, KILN_ERROR_DTYPE,
                           "vulkan dispatch: %s has no i32 variant",
                           desc->name);
    kiln_status s = check_local(q, d);
    if (s != KILN_OK)
        return s;
    const char *bad = kiln_kernel_invalid(desc, d);
    if (bad)
        return kiln__error(ctx, KILN_ERROR_INVALID_ARGUMENT,
                           "vulkan dispatch: %s", bad);
    uint64_t shared = kiln_kernel_shared_bytes(desc, d);
    if (shared > q->limits.maxComputeSharedMemorySize)
        return kiln__error(ctx, KILN_ERROR_UNSUPPORTED,
                           "vulkan dispatch: %s needs %llu bytes of shared "
                           "memory, the device has %u", desc->name,
                           (unsigned long long)shared,
                           q->limits.maxComputeSharedMemorySize);
    for (int i = 0; i < d->nbindings; i++)
        if (!d->bindings[i].block || !d->bindings[i].block->handle)
            return kiln__error(ctx, KILN_ERROR_INVALID_ARGUMENT,
                               "vulkan dispatch: binding %d has no block", i);
    return KILN_OK;
}

/* How many bindings @d's shader declares and uses statically: its own
 * bindings, except for the fused shaders, which declare one per possible
 * input plus the output whatever the program (the output's binding is the
 * input count).  Every one must hold a valid descriptor. */
static int declared_bindings(const kiln_dispatch *d)
{
    if (kiln_kernel_program_inputs(d) > 0 && d->nbindings > 0)
        return KILN_FUSED_MAX_INPUTS + 1;
    return d->nbindings;
}

static void record_dispatch(kiln_vk_queue *q, VkCommandBuffer cb,
                            VkPipeline pipeline, const kiln_dispatch *d,
                            const uint32_t groups[3])
{
    VkDescriptorBufferInfo bi[KILN_MAX_BINDINGS];
    VkWriteDescriptorSet w[KILN_MAX_BINDINGS];
    int n = declared_bindings(d);
    for (int i = 0; i < n; i++) {
        /* Slots beyond the dispatch's bindings get binding 0's buffer,
         * which the shader never touches through them (no hazard). */
        const kiln_binding *src = &d->bindings[i < d->nbindings ? i : 0];
        const kiln_vk_block *b = src->block->handle;
        bi[i] = (VkDescriptorBufferInfo){b->buffer, 0, VK_WHOLE_SIZE};
        w[i] = (VkWriteDescriptorSet){
            .sType = VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET,
            .dstBinding = (uint32_t)i,
            .descriptorCount = 1,
            .descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
            .pBufferInfo = &bi[i],
        };
    }
    vkCmdBindPipeline(cb, VK_PIPELINE_BIND_POINT_COMPUTE, pipeline);
    if (n)
        q->push_descriptor(cb, VK_PIPELINE_BIND_POINT_COMPUTE, q->layout, 0,
                           (uint32_t)n, w);
    vkCmdPushConstants(cb, q->layout, VK_SHADER_STAGE_COMPUTE_BIT, 0,
                       KILN_PARAM_BYTES, d->params);
    vkCmdDispatch(cb, groups[0], groups[1], groups[2]);
}

static kiln_status vk_dispatch(kiln_queue *queue, const kiln_dispatch *d)
{
    kiln_vk_queue *q = (kiln_vk_queue *)queue;
    if (q->lost)
        return lost(q);
    kiln_status s = check_dispatch(q, d);
    if (s != KILN_OK)
        return s;
    /* The grid is a hint (kernels loop grid-stride): clamp to the limits. */
    uint32_t groups[3];
    for (int i = 0; i < 3; i++) {
        groups[i] = d->groups[i];
        if (groups[i] > q->limits.maxComputeWorkGroupCount[i])
            groups[i] = q->limits.maxComputeWorkGroupCount[i];
        if (!groups[i])
            return KILN_OK; /* nothing to do */
    }
    VkPipeline pipeline = kiln_vk_pipeline_get(q, d, &s);
    if (!pipeline)
        return s;
    VkCommandBuffer cb;
    kiln_hazard *h = q->recording ? &q->record_hazard : &q->hazard;
    if (q->recording)
        cb = q->recording->cb;
    else if ((s = kiln_vk_cmd_current(q, &cb)) != KILN_OK)
        return s;
    s = kiln_vk_hazard(q, h, cb, d->bindings, d->nbindings);
    if (s != KILN_OK)
        return s;
    record_dispatch(q, cb, pipeline, d, groups);
    if (q->recording) {
        q->recording->dispatches++;
        return KILN_OK;
    }
    if (++q->current_commands >= KILN_VK_BATCH)
        return kiln_vk_submit(q);
    return KILN_OK;
}

/* shaders/common.glsl brings exp/log/tanh/pow in f64, so dtype and the
 * kernel table decide.  Float-only op codes on i32 are refused by the op
 * layer (and the i32 shaders return 0 for them: no undefined behaviour). */
static int vk_supports(kiln_queue *queue, kiln_kernel_id kernel,
                       kiln_dtype dtype, int op)
{
    kiln_vk_queue *q = (kiln_vk_queue *)queue;
    (void)op;
    return kiln_kernel_has_variant(kernel, dtype) &&
           (dtype != KILN_F64 || q->fp64);
}

/* ------------------------------------------------------------------------ */
/* Recording                                                                */
/* ------------------------------------------------------------------------ */

/* A primary command buffer from the pool and an unsignalled fence; on
 * failure *@what names the call and the handles not created are null
 * (the caller frees what was). */
static VkResult cmd_create(kiln_vk_queue *q, VkCommandBuffer *cb,
                           VkFence *fence, const char **what)
{
    VkCommandBufferAllocateInfo ai = {
        .sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO,
        .commandPool = q->pool,
        .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY,
        .commandBufferCount = 1,
    };
    VkFenceCreateInfo fi = {.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
    *fence = VK_NULL_HANDLE;
    *what = "vkAllocateCommandBuffers";
    VkResult r = vkAllocateCommandBuffers(q->device, &ai, cb);
    if (r != VK_SUCCESS) {
        *cb = VK_NULL_HANDLE;
        return r;
    }
    *what = "vkCreateFence";
    r = vkCreateFence(q->device, &fi, NULL, fence);
    if (r != VK_SUCCESS)
        *fence = VK_NULL_HANDLE;
    return r;
}

static void recording_destroy(kiln_vk_queue *q, kiln_queue_recording *r)
{
    if (r->cb)
        vkFreeCommandBuffers(q->device, q->pool, 1, &r->cb);
    if (r->fence)
        vkDestroyFence(q->device, r->fence, NULL);
    free(r);
}

static kiln_status vk_record_begin(kiln_queue *queue)
{
    kiln_vk_queue *q = (kiln_vk_queue *)queue;
    if (q->lost)
        return lost(q);
    if (q->recording)
        return kiln__error(queue->ctx, KILN_ERROR_INVALID_ARGUMENT,
                           "kiln_recording_begin: already recording");
    kiln_queue_recording *r = calloc(1, sizeof *r);
    if (!r)
        return kiln__error(queue->ctx, KILN_ERROR_OUT_OF_HOST_MEMORY,
                           "kiln_recording_begin: out of host memory");
    VkCommandBufferBeginInfo bi = {
        .sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO};
    const char *what;
    VkResult r1 = cmd_create(q, &r->cb, &r->fence, &what);
    if (r1 == VK_SUCCESS) {
        r1 = vkBeginCommandBuffer(r->cb, &bi);
        what = "vkBeginCommandBuffer";
    }
    if (r1 != VK_SUCCESS) {
        recording_destroy(q, r);
        return kiln_vk_fail(q, r1, "kiln_recording_begin", what);
    }
    /* Ordered after whatever runs before each replay. */
    memory_barrier(r->cb, 0);
    kiln_hazard_reset(&q->record_hazard);
    q->recording = r;
    return KILN_OK;
}

static kiln_status vk_record_end(kiln_queue *queue,
                                 kiln_queue_recording **out)
{
    kiln_vk_queue *q = (kiln_vk_queue *)queue;
    kiln_queue_recording *r = q->recording;
    if (!r)
        return kiln__error(queue->ctx, KILN_ERROR_INVALID_ARGUMENT,
                           "kiln_recording_end: not recording");
    q->recording = NULL;
    memory_barrier(r->cb, 1); /* ... and before whatever runs after */
    VkResult res = vkEndCommandBuffer(r->cb);
    if (res != VK_SUCCESS) {
        recording_destroy(q, r);
        return kiln_vk_fail(q, res, "kiln_recording_end",
                            "vkEndCommandBuffer");
    }
    *out = r;
    return KILN_OK;
}

static kiln_status vk_replay(kiln_queue *queue, kiln_queue_recording *r)
{
    kiln_vk_queue *q = (kiln_vk_queue *)queue;
    if (q->lost)
        return lost(q);
    if (q->recording)
        return kiln__error(queue->ctx, KILN_ERROR_INVALID_ARGUMENT,
                           "kiln_recording_replay: cannot replay while "
                           "recording");
    /* Not a simultaneous-use command buffer: its last run must be over. */
    kiln_status s = fence_reuse(q, r->fence, r->serial);
    if (s == KILN_OK)
        s = kiln_vk_submit(q); /* work enqueued before it goes first */
    if (s == KILN_OK)
        s = submit(q, r->cb, r->fence, &r->serial);
    if (s == KILN_OK)
        kiln_hazard_reset(&q->hazard); /* it ends with a full barrier */
    return s;
}

static void vk_recording_free(kiln_queue *queue, kiln_queue_recording *r)
{
    kiln_vk_queue *q = (kiln_vk_queue *)queue;
    if (!r)
        return;
    /* Never free a command buffer the device may still run: if the fence
     * wait fails for a reason other than a lost device, wait for idle. */
    if (r->serial && !q->lost && wait_fence(q, r->fence, r->serial) != KILN_OK &&
        !q->lost)
        vkDeviceWaitIdle(q->device);
    recording_destroy(q, r);
}

/* ------------------------------------------------------------------------ */
/* Events                                                                   */
/* ------------------------------------------------------------------------ */

/* An event is a ring submission: its serial and slot.  The slot's fence is
 * reused only after a wait that makes `completed` reach the serial, so a
 * slot whose serial moved on means the event is done. */
struct kiln_queue_event {
    uint64_t serial;
    int slot;
};

static kiln_status vk_event_record(kiln_queue *queue, kiln_queue_event **out)
{
    kiln_vk_queue *q = (kiln_vk_queue *)queue;
    kiln_queue_event *ev = calloc(1, sizeof *ev);
    if (!ev)
        return kiln__error(queue->ctx, KILN_ERROR_OUT_OF_HOST_MEMORY,
                           "kiln_event_record: out of host memory");
    VkCommandBuffer cb;
    kiln_status s = kiln_vk_cmd_current(q, &cb); /* maybe an empty one */
    if (s == KILN_OK) {
        ev->slot = q->current;
        s = kiln_vk_submit(q);
    }
    if (s != KILN_OK) {
        free(ev);
        return s;
    }
    ev->serial = q->ring[ev->slot].serial;
    *out = ev;
    return KILN_OK;
}

static int event_pending(kiln_vk_queue *q, const kiln_queue_event *ev)
{
    return ev->serial > q->completed && q->ring[ev->slot].serial == ev->serial;
}

static kiln_status vk_event_wait(kiln_queue *queue, kiln_queue_event *ev)
{
    kiln_vk_queue *q = (kiln_vk_queue *)queue;
    if (q->lost)
        return lost(q);
    if (!event_pending(q, ev))
        return KILN_OK;
    return wait_fence(q, q->ring[ev->slot].fence, ev->serial);
}

static int vk_event_query(kiln_queue *queue, kiln_queue_event *ev)
{
    kiln_vk_queue *q = (kiln_vk_queue *)queue;
    if (q->lost)
        return -(int)lost(q);
    if (!event_pending(q, ev))
        return 1;
    VkResult r = vkGetFenceStatus(q->device, q->ring[ev->slot].fence);
    if (r == VK_NOT_READY)
        return 0;
    if (r != VK_SUCCESS)
        return -(int)kiln_vk_fail(q, r, "kiln_event_query",
                                  "vkGetFenceStatus");
    if (ev->serial > q->completed)
        q->completed = ev->serial;
    return 1;
}

static void vk_event_free(kiln_queue *queue, kiln_queue_event *ev)
{
    (void)queue;
    free(ev);
}

/* ------------------------------------------------------------------------ */
/* Life cycle                                                               */
/* ------------------------------------------------------------------------ */

static kiln_status vk_finish(kiln_queue *queue)
{
    return kiln_vk_wait_idle((kiln_vk_queue *)queue);
}

static void vk_destroy(kiln_queue *queue)
{
    kiln_vk_queue *q = (kiln_vk_queue *)queue;
    if (!q)
        return;
    if (q->device) {
        if (!q->lost)
            kiln_vk_wait_idle(q);
        vkDeviceWaitIdle(q->device);
        if (q->recording)
            recording_destroy(q, q->recording);
        for (int i = 0; i < KILN_VK_RING; i++) {
            if (q->ring[i].cb)
                vkFreeCommandBuffers(q->device, q->pool, 1, &q->ring[i].cb);
            if (q->ring[i].fence)
                vkDestroyFence(q->device, q->ring[i].fence, NULL);
        }
        if (q->pool)
            vkDestroyCommandPool(q->device, q->pool, NULL);
        kiln_vk_staging_release(q);
        kiln_vk_pipelines_release(q);
    }
    kiln_hazard_release(&q->hazard);
    kiln_hazard_release(&q->record_hazard);
    kiln_vk_device_close(q);
    free(q);
}

static kiln_status ring_init(kiln_vk_queue *q)
{
    VkCommandPoolCreateInfo pi = {
        .sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO,
        .flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT,
        .queueFamilyIndex = q->family,
    };
    VkResult r = vkCreateCommandPool(q->device, &pi, NULL, &q->pool);
    if (r != VK_SUCCESS)
        return kiln_vk_fail(q, r, "kiln_context_create",
                            "vkCreateCommandPool");
    for (int i = 0; i < KILN_VK_RING; i++) {
        const char *what;
        r = cmd_create(q, &q->ring[i].cb, &q->ring[i].fence, &what);
        if (r != VK_SUCCESS) /* vk_destroy frees what was made */
            return kiln_vk_fail(q, r, "kiln_context_create", what);
    }
    return KILN_OK;
}

static const kiln_queue_vtable vk_vtable = {
    .name = "vulkan",
    .block_alloc = kiln_vk_block_alloc,
    .block_free = kiln_vk_block_free,
    .write = kiln_vk_write,
    .read = kiln_vk_read,
    .copy = kiln_vk_copy,
    .supports = vk_supports,
    .dispatch = vk_dispatch,
    .record_begin = vk_record_begin,
    .record_end = vk_record_end,
    .replay = vk_replay,
    .recording_free = vk_recording_free,
    .finish = vk_finish,
    .event_record = vk_event_record,
    .event_wait = vk_event_wait,
    .event_query = vk_event_query,
    .event_free = vk_event_free,
    .destroy = vk_destroy,
};

kiln_queue *kiln_vk_queue_create(kiln_context *ctx,
                                 const kiln_device_info *info, int validation)
{
    if (!info->usable)
        return kiln__error_null(ctx, KILN_ERROR_UNSUPPORTED,
                                "kiln_context_create: Vulkan device %s is not "
                                "usable: %s", info->name,
                                info->unusable_reason);
    kiln_vk_queue *q = calloc(1, sizeof *q);
    if (!q)
        return kiln__error_null(ctx, KILN_ERROR_OUT_OF_HOST_MEMORY,
                                "kiln_context_create: out of host memory");
    q->base.vt = &vk_vtable;
    q->base.ctx = ctx;
    q->current = -1;
    q->force_staging = kiln__env_long("KILN_VK_FORCE_STAGING", 0) == 1;
    kiln_hazard_init(&q->hazard);
    kiln_hazard_init(&q->record_hazard);
    kiln_status s = kiln_vk_device_open(q, info, validation);
    if (s == KILN_OK)
        s = kiln_vk_pipelines_init(q);
    if (s == KILN_OK)
        s = ring_init(q);
    if (s != KILN_OK) {
        vk_destroy(&q->base);
        return NULL;
    }
    q->base.max_block = kiln_vk_max_block(&q->base);
    return &q->base;
}
