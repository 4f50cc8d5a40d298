/*
 * vk_internal.h - what the Vulkan backend's files share.
 *
 * The backend is split along its seams:
 *   vk_device.c    instances, physical-device listing, logical device
 *   vk_memory.c    blocks (one VkBuffer + VkDeviceMemory each), transfers
 *   vk_pipeline.c  the one descriptor-set/pipeline layout, shader modules,
 *                  pipelines cached per specialisation
 *   vk_queue.c     command buffers, barriers, dispatch, recording, the vtable
 *
 * Synchronisation model: every submission gets a serial number; a fence
 * signal covers all earlier submissions on the queue, so "serial s is done"
 * is one number (completed).  Barriers between commands are placed by the
 * hazard tracker (queue/hazard.h) and it survives submissions: a barrier's
 * first scope covers earlier submissions too.  Only a host wait for
 * everything resets it.
 */
#ifndef KILN_VK_INTERNAL_H
#define KILN_VK_INTERNAL_H

#include <vulkan/vulkan.h>

#include "internal.h"
#include "queue/hazard.h"

#define KILN_VK_RING 4       /* command buffers in flight                 */
#define KILN_VK_BATCH 256    /* commands per submission (keeps it busy)   */
#define KILN_VK_STAGING_MAX ((size_t)64 << 20) /* staging chunk limit      */

/** A device memory block; kiln_block.handle points at one. */
typedef struct kiln_vk_block {
    VkBuffer buffer;
    VkDeviceMemory memory;
    void *mapped;            /* persistent map when host-coherent, or NULL */
    VkDeviceSize size;
} kiln_vk_block;

/** One command buffer of the submission ring. */
typedef struct kiln_vk_cmd {
    VkCommandBuffer cb;
    VkFence fence;
    uint64_t serial;         /* of its last submission; 0 = never         */
} kiln_vk_cmd;

/** What makes two pipelines different. */
typedef struct kiln_vk_pipeline_key {
    int32_t kernel, dtype, dtype2;
    uint32_t local[3];
    int32_t consts[KILN_MAX_CONSTS];
    /* KILN_K_FUSED: the program and the input count, specialization
     * constants 20-37 of shaders/fused.comp; 0 for every other kernel. */
    int32_t program_len, ninputs;
    uint32_t program[16];
} kiln_vk_pipeline_key;

typedef struct kiln_vk_pipeline {
    kiln_vk_pipeline_key key;
    VkPipeline pipeline;     /* VK_NULL_HANDLE = empty slot               */
} kiln_vk_pipeline;

struct kiln_queue_recording {
    VkCommandBuffer cb;
    VkFence fence;
    uint64_t serial;         /* of its last submission; 0 = never         */
    uint64_t dispatches;
};

typedef struct kiln_vk_queue {
    kiln_queue base;

    /* Device.  owns_device = 0 is reserved for wrapping an application's
     * VkDevice/VkQueue: then the lock callbacks guard vkQueueSubmit. */
    VkInstance instance;
    VkDebugUtilsMessengerEXT messenger;
    VkPhysicalDevice phys;
    VkDevice device;
    VkQueue queue;
    uint32_t family;
    int owns_device;
    void (*lock)(void *user);
    void (*unlock)(void *user);
    void *lock_user;
    PFN_vkCmdPushDescriptorSetKHR push_descriptor;
    VkPhysicalDeviceLimits limits;
    VkPhysicalDeviceMemoryProperties memory;
    VkDeviceSize max_allocation;  /* maxMemoryAllocationSize             */
    int fp64;
    int lost;                     /* VK_ERROR_DEVICE_LOST seen            */
    int force_staging;            /* KILN_VK_FORCE_STAGING=1: for tests   */

    /* Submission. */
    VkCommandPool pool;
    kiln_vk_cmd ring[KILN_VK_RING];
    int current;                  /* ring slot being recorded, or -1      */
    int next;                     /* ring slot to use next                */
    uint32_t current_commands;
    uint64_t submitted, completed;
    VkFence last_fence;           /* fence of submission `submitted`      */
    kiln_hazard hazard;

    /* Staging buffer for devices whose blocks are not host-mapped. */
    kiln_vk_block staging;

    /* Pipelines. */
    VkDescriptorSetLayout set_layout;
    VkPipelineLayout layout;
    VkPipelineCache cache;
    char cache_path[512];         /* "" = no on-disk cache                */
    VkShaderModule modules[KILN_KERNEL_COUNT][3][3]; /* [kernel][T][U]   */
    kiln_vk_pipeline *pipelines;  /* open-addressing table                */
    size_t npipelines, pipeline_capacity;

    /* Recording (kiln_recording_begin .. end). */
    kiln_queue_recording *recording;
    kiln_hazard record_hazard;
} kiln_vk_queue;

/* vk_device.c */
const char *kiln_vk_result_name(VkResult r);
/** Maps @r to a kiln_status and records "@call: @what failed: VK_...". */
kiln_status kiln_vk_fail(kiln_vk_queue *q, VkResult r, const char *call,
                         const char *what);
kiln_status kiln_vk_device_open(kiln_vk_queue *q,
                                const kiln_device_info *info,
                                int validation);
void kiln_vk_device_close(kiln_vk_queue *q);

/* vk_memory.c */
kiln_status kiln_vk_block_alloc(kiln_queue *q, size_t size, kiln_block *out);
void kiln_vk_block_free(kiln_queue *q, kiln_block *block);
kiln_status kiln_vk_write(kiln_queue *q, kiln_block *dst, size_t offset,
                          const void *src, size_t size);
kiln_status kiln_vk_read(kiln_queue *q, kiln_block *src, size_t offset,
                         void *dst, size_t size);
kiln_status kiln_vk_copy(kiln_queue *q, kiln_block *src, size_t src_offset,
                         kiln_block *dst, size_t dst_offset, size_t size);
void kiln_vk_staging_release(kiln_vk_queue *q);
/** The largest block this queue can allocate and bind whole: the minimum of
 *  maxStorageBufferRange and maxMemoryAllocationSize.  For
 *  kiln_suballoc_init's max_block. */
size_t kiln_vk_max_block(kiln_queue *q);

/* vk_pipeline.c */
kiln_status kiln_vk_pipelines_init(kiln_vk_queue *q);
void kiln_vk_pipelines_release(kiln_vk_queue *q);
/** The pipeline for @d, created on first use; VK_NULL_HANDLE on error
 *  (reported). */
VkPipeline kiln_vk_pipeline_get(kiln_vk_queue *q, const kiln_dispatch *d,
                                kiln_status *status);

/* vk_queue.c */
/** The ring command buffer being recorded, begun on demand. */
kiln_status kiln_vk_cmd_current(kiln_vk_queue *q, VkCommandBuffer *out);
/** Records a barrier in @cb if touching @b conflicts with @h, then notes
 *  @b in @h. */
kiln_status kiln_vk_hazard(kiln_vk_queue *q, kiln_hazard *h,
                           VkCommandBuffer cb, const kiln_binding *b, int n);
/** Submits the ring command buffer being recorded (if any). */
kiln_status kiln_vk_submit(kiln_vk_queue *q);
/** Submits and waits for everything; resets the hazard tracker. */
kiln_status kiln_vk_wait_idle(kiln_vk_queue *q);

#endif /* KILN_VK_INTERNAL_H */
