/*
 * vk_pipeline.c - layouts, shader modules and compute pipelines.
 *
 * Every kernel uses the same interface, so there is ONE descriptor-set
 * layout (KILN_MAX_BINDINGS storage buffers, pushed with
 * VK_KHR_push_descriptor: no pools, no sets to track) and ONE pipeline
 * layout (that set plus 128 bytes of push constants: the kernel's parameter
 * block).  Shader modules come from the SPIR-V embedded at build time, one
 * per (kernel, T, U), named after the kernel table (queue/kernel_table.h);
 * pipelines are created on first use and cached per (kernel, dtypes,
 * workgroup size, tuning constants), which reach the shader as
 * specialization constants 0-2 (local size) and 10-13 (consts).  The fused
 * kernels' pipelines are also keyed by their program: constants 20
 * (length), 21-36 (the words) and 37 (the input count) of
 * shaders/fused_program.glsl.
 * A VkPipelineCache is saved in the cache directory (cache_file.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache_file.h"
#include "embedded.h"
#include "queue/kernel_table.h"
#include "queue/kernels_fused.h"
#include "vulkan/vk_internal.h"

/* ------------------------------------------------------------------------ */
/* Pipeline cache on disk                                                   */
/* ------------------------------------------------------------------------ */

/* One file per device and driver build (pipelineCacheUUID), in the cache
 * directory; its name (58 bytes) fits the KILN_CACHE_NAME_MAX bytes that
 * kiln__cache_dir leaves free. */
static void cache_path(kiln_vk_queue *q)
{
    if (kiln__cache_dir(q->cache_path, sizeof q->cache_path) != 0)
        return;
    VkPhysicalDeviceProperties p;
    vkGetPhysicalDeviceProperties(q->phys, &p);
    char uuid[2 * VK_UUID_SIZE + 1];
    for (unsigned i = 0; i < VK_UUID_SIZE; i++)
        snprintf(uuid + 2 * i, 3, "%02x", p.pipelineCacheUUID[i]);
    size_t len = strlen(q->cache_path);
    snprintf(q->cache_path + len, sizeof q->cache_path - len,
             "/kiln-vulkan-%04x-%04x-%s.bin", p.vendorID, p.deviceID, uuid);
}

/* Written atomically, so a reader never sees half a file.  Failures are
 * ignored: the cache only saves time. */
static void cache_save(kiln_vk_queue *q)
{
    size_t size = 0;
    if (!q->cache_path[0] || !q->cache ||
        vkGetPipelineCacheData(q->device, q->cache, &size, NULL) !=
            VK_SUCCESS || !size)
        return;
    void *data = malloc(size);
    if (data &&
        vkGetPipelineCacheData(q->device, q->cache, &size, data) ==
            VK_SUCCESS)
        kiln__write_file_atomic(q->cache_path, data, size);
    free(data);
}

/* ------------------------------------------------------------------------ */
/* Layouts                                                                  */
/* ------------------------------------------------------------------------ */

kiln_status kiln_vk_pipelines_init(kiln_vk_queue *q)
{
    VkDescriptorSetLayoutBinding b[KILN_MAX_BINDINGS];
    for (int i = 0; i < KILN_MAX_BINDINGS; i++)
        b[i] = (VkDescriptorSetLayoutBinding){
            .binding = (uint32_t)i,
            .descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
            .descriptorCount = 1,
            .stageFlags = VK_SHADER_STAGE_COMPUTE_BIT,
        };
    VkDescriptorSetLayoutCreateInfo si = {
        .sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO,
        .flags = VK_DESCRIPTOR_SET_LAYOUT_CREATE_PUSH_DESCRIPTOR_BIT_KHR,
        .bindingCount = KILN_MAX_BINDINGS,
        .pBindings = b,
    };
    VkResult r = vkCreateDescriptorSetLayout(q->device, &si, NULL,
                                             &q->set_layout);
    if (r != VK_SUCCESS)
        return kiln_vk_fail(q, r, "kiln_context_create",
                            "vkCreateDescriptorSetLayout");
    VkPushConstantRange pc = {
        .stageFlags = VK_SHADER_STAGE_COMPUTE_BIT,
        .offset = 0,
        .size = KILN_PARAM_BYTES,
    };
    VkPipelineLayoutCreateInfo li = {
        .sType = VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO,
        .setLayoutCount = 1,
        .pSetLayouts = &q->set_layout,
        .pushConstantRangeCount = 1,
        .pPushConstantRanges = &pc,
    };
    r = vkCreatePipelineLayout(q->device, &li, NULL, &q->layout);
    if (r != VK_SUCCESS)
        return kiln_vk_fail(q, r, "kiln_context_create",
                            "vkCreatePipelineLayout");

    /* A damaged or foreign file is harmless: the driver checks the header
     * and ignores data it does not recognise. */
    cache_path(q);
    size_t size = 0;
    void *data = q->cache_path[0] ? kiln__read_file(q->cache_path, &size)
                                  : NULL;
    VkPipelineCacheCreateInfo ci = {
        .sType = VK_STRUCTURE_TYPE_PIPELINE_CACHE_CREATE_INFO,
        .initialDataSize = size,
        .pInitialData = data,
    };
    r = vkCreatePipelineCache(q->device, &ci, NULL, &q->cache);
    if (r != VK_SUCCESS && data) { /* retry without the saved data */
        ci.initialDataSize = 0;
        ci.pInitialData = NULL;
        r = vkCreatePipelineCache(q->device, &ci, NULL, &q->cache);
    }
    free(data);
    if (r != VK_SUCCESS)
        return kiln_vk_fail(q, r, "kiln_context_create",
                            "vkCreatePipelineCache");
    return KILN_OK;
}

void kiln_vk_pipelines_release(kiln_vk_queue *q)
{
    if (!q->device)
        return;
    for (size_t i = 0; i < q->pipeline_capacity; i++)
        if (q->pipelines[i].pipeline)
            vkDestroyPipeline(q->device, q->pipelines[i].pipeline, NULL);
    free(q->pipelines);
    q->pipelines = NULL;
    q->npipelines = q->pipeline_capacity = 0;
    for (int k = 0; k < KILN_KERNEL_COUNT; k++)
        for (int t = 0; t < 3; t++)
            for (int u = 0; u < 3; u++)
                if (q->modules[k][t][u])
                    vkDestroyShaderModule(q->device, q->modules[k][t][u],
                                          NULL);
    memset(q->modules, 0, sizeof q->modules);
    if (q->cache) {
        cache_save(q);
        vkDestroyPipelineCache(q->device, q->cache, NULL);
    }
    if (q->layout)
        vkDestroyPipelineLayout(q->device, q->layout, NULL);
    if (q->set_layout)
        vkDestroyDescriptorSetLayout(q->device, q->set_layout, NULL);
    q->cache = VK_NULL_HANDLE;
    q->layout = VK_NULL_HANDLE;
    q->set_layout = VK_NULL_HANDLE;
}

/* ------------------------------------------------------------------------ */
/* Modules and pipelines                                                    */
/* ------------------------------------------------------------------------ */

static VkShaderModule module_get(kiln_vk_queue *q, const kiln_vk_pipeline_key *k,
                                 kiln_status *status)
{
    /* The key's dtype2 is 0 unless the kernel has (T, U) variants. */
    VkShaderModule *slot = &q->modules[k->kernel][k->dtype][k->dtype2];
    if (*slot)
        return *slot;
    const kiln_kernel_desc *desc = kiln_kernel_describe(k->kernel);
    char name[64];
    int n = snprintf(name, sizeof name, "%s_%s", desc->name,
                     kiln_dtype_name((kiln_dtype)k->dtype));
    if (desc->uses_dtype2)
        snprintf(name + n, sizeof name - (size_t)n, "_%s",
                 kiln_dtype_name((kiln_dtype)k->dtype2));
    const kiln_embedded_file *f = kiln_embedded_find(kiln_spirv_modules, name);
    if (!f) {
        *status = kiln__error(q->base.ctx, KILN_ERROR_UNSUPPORTED,
                              "vulkan: no shader %s in this build", name);
        return VK_NULL_HANDLE;
    }
    VkShaderModuleCreateInfo mi = {
        .sType = VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO,
        .codeSize = f->size,
        .pCode = (const uint32_t *)(const void *)f->data,
    };
    VkResult r = vkCreateShaderModule(q->device, &mi, NULL, slot);
    if (r != VK_SUCCESS) {
        *slot = VK_NULL_HANDLE;
        *status = kiln_vk_fail(q, r, name, "vkCreateShaderModule");
    }
    return *slot;
}

static uint64_t key_hash(const kiln_vk_pipeline_key *k)
{
    const unsigned char *p = (const void *)k;
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < sizeof *k; i++)
        h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

static kiln_vk_pipeline *table_slot(kiln_vk_pipeline *t, size_t cap,
                                    const kiln_vk_pipeline_key *k)
{
    size_t i = (size_t)key_hash(k) & (cap - 1);
    while (t[i].pipeline && memcmp(&t[i].key, k, sizeof *k) != 0)
        i = (i + 1) & (cap - 1);
    return &t[i];
}

/* Keeps the table at most half full. */
static kiln_status table_grow(kiln_vk_queue *q)
{
    if (2 * (q->npipelines + 1) <= q->pipeline_capacity)
        return KILN_OK;
    size_t cap = q->pipeline_capacity ? 2 * q->pipeline_capacity : 64;
    kiln_vk_pipeline *t = calloc(cap, sizeof *t);
    if (!t)
        return kiln__error(q->base.ctx, KILN_ERROR_OUT_OF_HOST_MEMORY,
                           "vulkan: out of host memory for pipelines");
    for (size_t i = 0; i < q->pipeline_capacity; i++)
        if (q->pipelines[i].pipeline)
            *table_slot(t, cap, &q->pipelines[i].key) = q->pipelines[i];
    free(q->pipelines);
    q->pipelines = t;
    q->pipeline_capacity = cap;
    return KILN_OK;
}

static VkPipeline pipeline_create(kiln_vk_queue *q,
                                  const kiln_vk_pipeline_key *k,
                                  kiln_status *status)
{
    VkShaderModule m = module_get(q, k, status);
    if (!m)
        return VK_NULL_HANDLE;
    /* Specialization data: local size (ids 0-2), then consts (10-...),
     * then for the fused kernel its program (20: length, 21-36: words,
     * 37: input count). */
    enum { BASE = 3 + KILN_MAX_CONSTS, FUSED = 2 + KILN_FUSED_MAX_INSTRS };
    uint32_t data[BASE + FUSED];
    VkSpecializationMapEntry e[BASE + FUSED];
    _Static_assert(sizeof k->local + sizeof k->consts ==
                       BASE * sizeof data[0],
                   "specialization data is local[3] then consts[]");
    _Static_assert(sizeof k->program ==
                       KILN_FUSED_MAX_INSTRS * sizeof data[0],
                   "the key holds a whole fused program");
    memcpy(data, k->local, sizeof k->local);
    memcpy(data + 3, k->consts, sizeof k->consts);
    data[BASE] = (uint32_t)k->program_len;
    memcpy(data + BASE + 1, k->program, sizeof k->program);
    data[BASE + FUSED - 1] = (uint32_t)k->ninputs;
    uint32_t count = kiln_kernel_describe(k->kernel)->has_program
                         ? BASE + FUSED : BASE;
    for (uint32_t i = 0; i < count; i++)
        e[i] = (VkSpecializationMapEntry){
            .constantID = i < 3 ? i : i < BASE ? 10 + i - 3 : 20 + i - BASE,
            .offset = i * (uint32_t)sizeof data[0],
            .size = sizeof data[0],
        };
    VkSpecializationInfo spec = {
        .mapEntryCount = count,
        .pMapEntries = e,
        .dataSize = sizeof data,
        .pData = data,
    };
    VkComputePipelineCreateInfo ci = {
        .sType = VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO,
        .stage = {
            .sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO,
            .stage = VK_SHADER_STAGE_COMPUTE_BIT,
            .module = m,
            .pName = "main",
            .pSpecializationInfo = &spec,
        },
        .layout = q->layout,
    };
    VkPipeline p = VK_NULL_HANDLE;
    VkResult r = vkCreateComputePipelines(q->device, q->cache, 1, &ci, NULL,
                                          &p);
    if (r != VK_SUCCESS) {
        char what[160];
        snprintf(what, sizeof what,
                 "vkCreateComputePipelines(%s %s, local %ux%ux%u)",
                 kiln_kernel_describe(k->kernel)->name,
                 kiln_dtype_name((kiln_dtype)k->dtype),
                 k->local[0], k->local[1], k->local[2]);
        *status = kiln_vk_fail(q, r, "vulkan dispatch", what);
        if (*status == KILN_ERROR_BACKEND)
            *status = KILN_ERROR_KERNEL_BUILD;
        return VK_NULL_HANDLE;
    }
    q->base.ctx->stats.programs_built++;
    return p;
}

VkPipeline kiln_vk_pipeline_get(kiln_vk_queue *q, const kiln_dispatch *d,
                                kiln_status *status)
{
    const kiln_kernel_desc *desc = kiln_kernel_describe(d->kernel);
    if (!desc) { /* vk_dispatch checked already; this is for other callers */
        *status = kiln__error(q->base.ctx, KILN_ERROR_UNSUPPORTED,
                              "vulkan: no kernel with id %d in this build",
                              (int)d->kernel);
        return VK_NULL_HANDLE;
    }
    kiln_vk_pipeline_key k;
    memset(&k, 0, sizeof k);
    k.kernel = d->kernel;
    k.dtype = d->dtype;
    k.dtype2 = desc->uses_dtype2 ? (int32_t)d->dtype2 : 0;
    memcpy(k.local, d->local, sizeof k.local);
    memcpy(k.consts, d->consts, sizeof k.consts);
    if (desc->has_program) {
        k.ninputs = kiln_kernel_program_inputs(d);
        k.program_len = d->program_len;
        if (d->program_len >= 1 && d->program_len <= KILN_FUSED_MAX_INSTRS)
            memcpy(k.program, d->program,
                   sizeof(uint32_t) * (size_t)d->program_len);
    }
    *status = KILN_OK;
    if (q->pipeline_capacity) {
        kiln_vk_pipeline *hit = table_slot(q->pipelines, q->pipeline_capacity,
                                           &k);
        if (hit->pipeline)
            return hit->pipeline;
    }
    *status = table_grow(q);
    if (*status != KILN_OK)
        return VK_NULL_HANDLE;
    VkPipeline p = pipeline_create(q, &k, status);
    if (!p)
        return VK_NULL_HANDLE;
    kiln_vk_pipeline *slot = table_slot(q->pipelines, q->pipeline_capacity,
                                        &k);
    slot->key = k;
    slot->pipeline = p;
    q->npipelines++;
    return p;
}
