/*
 * vk_memory.c - device memory blocks and host transfers.
 *
 * A block is one storage VkBuffer with its own VkDeviceMemory; the core
 * sub-allocates tensors inside it (queue/suballoc.h), so there are few of
 * them.  Memory is the first DEVICE_LOCAL type the buffer accepts.  When that
 * type is also HOST_VISIBLE|HOST_COHERENT (lavapipe, integrated GPUs,
 * resizable BAR) the block stays mapped and transfers are memcpy after the
 * device is idle; otherwise they go through a host-visible staging buffer
 * and vkCmdCopyBuffer.  KILN_VK_FORCE_STAGING=1 takes the staging path
 * everywhere, so it is tested on machines whose memory is all mappable.
 */
#include <stdlib.h>
#include <string.h>

#include "vulkan/vk_internal.h"

static const VkMemoryPropertyFlags mappable =
    VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT;

size_t kiln_vk_max_block(kiln_queue *queue)
{
    kiln_vk_queue *q = (kiln_vk_queue *)queue;
    VkDeviceSize m = q->limits.maxStorageBufferRange;
    if (q->max_allocation && q->max_allocation < m)
        m = q->max_allocation;
    return m > SIZE_MAX ? SIZE_MAX : (size_t)m;
}

/* The first memory type allowed by @bits that has all of @want (preferring
 * one that also has @prefer); -1 when none. */
static int memory_type(const kiln_vk_queue *q, uint32_t bits,
                       VkMemoryPropertyFlags want, VkMemoryPropertyFlags prefer)
{
    int fallback = -1;
    for (uint32_t i = 0; i < q->memory.memoryTypeCount; i++) {
        VkMemoryPropertyFlags f = q->memory.memoryTypes[i].propertyFlags;
        if (!(bits & (1u << i)) || (f & want) != want)
            continue;
        if ((f & prefer) == prefer)
            return (int)i;
        if (fallback < 0)
            fallback = (int)i;
    }
    return fallback;
}

/* Creates buffer + memory of @size bytes.  @host: a staging buffer (host
 * visible, coherent, cached if possible); else device-local. */
static VkResult buffer_create(kiln_vk_queue *q, VkDeviceSize size, int host,
                              kiln_vk_block *b)
{
    memset(b, 0, sizeof *b);
    VkBufferCreateInfo bi = {
        .sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO,
        .size = size,
        .usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT |
                 VK_BUFFER_USAGE_TRANSFER_SRC_BIT |
                 VK_BUFFER_USAGE_TRANSFER_DST_BIT,
        .sharingMode = VK_SHARING_MODE_EXCLUSIVE,
    };
    VkResult r = vkCreateBuffer(q->device, &bi, NULL, &b->buffer);
    if (r != VK_SUCCESS)
        return r;
    VkMemoryRequirements req;
    vkGetBufferMemoryRequirements(q->device, b->buffer, &req);
    int type = host ? memory_type(q, req.memoryTypeBits, mappable,
                                  VK_MEMORY_PROPERTY_HOST_CACHED_BIT)
                    : memory_type(q, req.memoryTypeBits,
                                  VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT, 0);
    if (type < 0 && !host)
        type = memory_type(q, req.memoryTypeBits, 0, 0);
    if (type < 0) {
        r = VK_ERROR_FEATURE_NOT_PRESENT;
        goto fail_buffer;
    }
    VkMemoryAllocateInfo ai = {
        .sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO,
        .allocationSize = req.size,
        .memoryTypeIndex = (uint32_t)type,
    };
    r = vkAllocateMemory(q->device, &ai, NULL, &b->memory);
    if (r != VK_SUCCESS)
        goto fail_buffer;
    r = vkBindBufferMemory(q->device, b->buffer, b->memory, 0);
    if (r != VK_SUCCESS)
        goto fail_memory;
    VkMemoryPropertyFlags f = q->memory.memoryTypes[type].propertyFlags;
    if ((f & mappable) == mappable && (host || !q->force_staging)) {
        r = vkMapMemory(q->device, b->memory, 0, VK_WHOLE_SIZE, 0, &b->mapped);
        if (r != VK_SUCCESS)
            goto fail_memory;
    }
    b->size = size;
    return VK_SUCCESS;

fail_memory:
    vkFreeMemory(q->device, b->memory, NULL);
fail_buffer:
    vkDestroyBuffer(q->device, b->buffer, NULL);
    memset(b, 0, sizeof *b);
    return r;
}

static void buffer_destroy(kiln_vk_queue *q, kiln_vk_block *b)
{
    if (b->mapped)
        vkUnmapMemory(q->device, b->memory);
    if (b->buffer)
        vkDestroyBuffer(q->device, b->buffer, NULL);
    if (b->memory)
        vkFreeMemory(q->device, b->memory, NULL);
    memset(b, 0, sizeof *b);
}

kiln_status kiln_vk_block_alloc(kiln_queue *queue, size_t size,
                                kiln_block *out)
{
    kiln_vk_queue *q = (kiln_vk_queue *)queue;
    size_t max = kiln_vk_max_block(queue);
    if (size == 0 || size > max)
        return kiln__error(queue->ctx, KILN_ERROR_OUT_OF_DEVICE_MEMORY,
                           "vulkan: a block of %zu bytes exceeds the device's "
                           "limit of %zu bytes (maxStorageBufferRange %u, "
                           "maxMemoryAllocationSize %llu)", size, max,
                           q->limits.maxStorageBufferRange,
                           (unsigned long long)q->max_allocation);
    kiln_vk_block *b = calloc(1, sizeof *b);
    if (!b)
        return KILN_ERROR_OUT_OF_HOST_MEMORY;
    /* Whole 4-byte words, so every binding covers its last element. */
    VkResult r = buffer_create(q, (size + 15) / 16 * 16, 0, b);
    if (r != VK_SUCCESS) {
        free(b);
        if (r == VK_ERROR_OUT_OF_DEVICE_MEMORY)
            return KILN_ERROR_OUT_OF_DEVICE_MEMORY; /* the core says which */
        if (r == VK_ERROR_OUT_OF_HOST_MEMORY)
            return KILN_ERROR_OUT_OF_HOST_MEMORY;
        return kiln_vk_fail(q, r, "vulkan block allocation",
                            "vkCreateBuffer/vkAllocateMemory");
    }
    out->handle = b;
    out->size = size;
    return KILN_OK;
}

void kiln_vk_block_free(kiln_queue *queue, kiln_block *block)
{
    kiln_vk_queue *q = (kiln_vk_queue *)queue;
    if (!block->handle)
        return;
    /* A command may still use it: the core frees a tensor whenever the
     * user does, not when the device is done with it.  If waiting fails
     * (other than a lost device, where nothing runs), wait for idle rather
     * than destroy a buffer in use. */
    if (kiln_vk_wait_idle(q) != KILN_OK && !q->lost)
        vkDeviceWaitIdle(q->device);
    buffer_destroy(q, block->handle);
    free(block->handle);
    block->handle = NULL;
}

void kiln_vk_staging_release(kiln_vk_queue *q)
{
    buffer_destroy(q, &q->staging);
}

/* A staging buffer of at least @size bytes (the device is idle). */
static kiln_status staging_reserve(kiln_vk_queue *q, size_t size)
{
    if (q->staging.buffer && q->staging.size >= size)
        return KILN_OK;
    buffer_destroy(q, &q->staging);
    size_t want = size < ((size_t)1 << 20) ? (size_t)1 << 20 : size;
    VkResult r = buffer_create(q, want, 1, &q->staging);
    if (r != VK_SUCCESS)
        return kiln_vk_fail(q, r, "vulkan staging buffer",
                            "vkCreateBuffer/vkAllocateMemory");
    return KILN_OK;
}

/* One vkCmdCopyBuffer between a block range and the staging buffer, then
 * a wait. */
static kiln_status staged_copy(kiln_vk_queue *q, kiln_block *block,
                               size_t offset, size_t size, int to_device)
{
    VkCommandBuffer cb;
    kiln_status s = kiln_vk_cmd_current(q, &cb);
    if (s != KILN_OK)
        return s;
    kiln_binding b = {block, offset, size,
                      to_device ? KILN_ACCESS_WRITE : KILN_ACCESS_READ};
    s = kiln_vk_hazard(q, &q->hazard, cb, &b, 1);
    if (s != KILN_OK)
        return s;
    kiln_vk_block *vb = block->handle;
    VkBufferCopy region = {
        .srcOffset = to_device ? 0 : offset,
        .dstOffset = to_device ? offset : 0,
        .size = size,
    };
    if (to_device)
        vkCmdCopyBuffer(cb, q->staging.buffer, vb->buffer, 1, &region);
    else
        vkCmdCopyBuffer(cb, vb->buffer, q->staging.buffer, 1, &region);
    return kiln_vk_wait_idle(q);
}

/* Copies @n bytes between device-visible memory @dev and @host. */
static void host_copy(void *dev, void *host, size_t n, int to_device)
{
    if (to_device)
        memcpy(dev, host, n);
    else
        memcpy(host, dev, n);
}

/* write (@to_device) and read: @size bytes at @offset in @block from or to
 * @host.  Synchronous: the device is idle first (earlier commands may still
 * use these bytes) and after. */
static kiln_status transfer(kiln_queue *queue, kiln_block *block,
                            size_t offset, void *host, size_t size,
                            int to_device)
{
    kiln_vk_queue *q = (kiln_vk_queue *)queue;
    kiln_vk_block *b = block->handle;
    if (size == 0)
        return KILN_OK;
    kiln_status s = kiln_vk_wait_idle(q);
    if (s != KILN_OK)
        return s;
    if (b->mapped) {
        host_copy((char *)b->mapped + offset, host, size, to_device);
        return KILN_OK;
    }
    for (size_t done = 0; done < size && s == KILN_OK;) {
        size_t chunk = size - done;
        if (chunk > KILN_VK_STAGING_MAX)
            chunk = KILN_VK_STAGING_MAX;
        s = staging_reserve(q, chunk);
        if (s != KILN_OK)
            break;
        if (to_device)
            host_copy(q->staging.mapped, (char *)host + done, chunk, 1);
        s = staged_copy(q, block, offset + done, chunk, to_device);
        if (s == KILN_OK && !to_device)
            host_copy(q->staging.mapped, (char *)host + done, chunk, 0);
        done += chunk;
    }
    return s;
}

kiln_status kiln_vk_write(kiln_queue *queue, kiln_block *dst, size_t offset,
                          const void *src, size_t size)
{
    /* transfer only reads @src when it copies to the device. */
    return transfer(queue, dst, offset, (void *)src, size, 1);
}

kiln_status kiln_vk_read(kiln_queue *queue, kiln_block *src, size_t offset,
                         void *dst, size_t size)
{
    return transfer(queue, src, offset, dst, size, 0);
}

kiln_status kiln_vk_copy(kiln_queue *queue, kiln_block *src, size_t soff,
                         kiln_block *dst, size_t doff, size_t size)
{
    kiln_vk_queue *q = (kiln_vk_queue *)queue;
    if (size == 0)
        return KILN_OK;
    if (src == dst && soff < doff + size && doff < soff + size)
        return kiln__error(queue->ctx, KILN_ERROR_INVALID_ARGUMENT,
                           "vulkan copy: overlapping ranges in one block "
                           "(%zu and %zu, %zu bytes)", soff, doff, size);
    VkCommandBuffer cb;
    kiln_hazard *h = q->recording ? &q->record_hazard : &q->hazard;
    kiln_status s = KILN_OK;
    if (q->recording)
        cb = q->recording->cb;
    else
        s = kiln_vk_cmd_current(q, &cb);
    if (s != KILN_OK)
        return s;
    kiln_binding b[2] = {{src, soff, size, KILN_ACCESS_READ},
                         {dst, doff, size, KILN_ACCESS_WRITE}};
    s = kiln_vk_hazard(q, h, cb, b, 2);
    if (s != KILN_OK)
        return s;
    VkBufferCopy region = {.srcOffset = soff, .dstOffset = doff, .size = size};
    vkCmdCopyBuffer(cb, ((kiln_vk_block *)src->handle)->buffer,
                    ((kiln_vk_block *)dst->handle)->buffer, 1, &region);
    if (!q->recording && ++q->current_commands >= KILN_VK_BATCH)
        return kiln_vk_submit(q);
    return KILN_OK;
}
