/*
 * vk_device.c - Vulkan instances, the physical-device list and the logical
 * device a queue runs on.
 *
 * Listing uses a temporary instance so that kiln_device_list() leaves
 * nothing behind; each queue owns its own instance (with the validation
 * layer when asked), so two contexts never share Vulkan state.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vulkan/vk_internal.h"

const char *kiln_vk_result_name(VkResult r)
{
    switch (r) {
#define CASE(x) case x: return #x
    CASE(VK_SUCCESS);
    CASE(VK_NOT_READY);
    CASE(VK_TIMEOUT);
    CASE(VK_INCOMPLETE);
    CASE(VK_ERROR_OUT_OF_HOST_MEMORY);
    CASE(VK_ERROR_OUT_OF_DEVICE_MEMORY);
    CASE(VK_ERROR_INITIALIZATION_FAILED);
    CASE(VK_ERROR_DEVICE_LOST);
    CASE(VK_ERROR_MEMORY_MAP_FAILED);
    CASE(VK_ERROR_LAYER_NOT_PRESENT);
    CASE(VK_ERROR_EXTENSION_NOT_PRESENT);
    CASE(VK_ERROR_FEATURE_NOT_PRESENT);
    CASE(VK_ERROR_INCOMPATIBLE_DRIVER);
    CASE(VK_ERROR_TOO_MANY_OBJECTS);
    CASE(VK_ERROR_FORMAT_NOT_SUPPORTED);
    CASE(VK_ERROR_FRAGMENTED_POOL);
    CASE(VK_ERROR_UNKNOWN);
    CASE(VK_ERROR_OUT_OF_POOL_MEMORY);
    CASE(VK_ERROR_INVALID_EXTERNAL_HANDLE);
    CASE(VK_ERROR_FRAGMENTATION);
    CASE(VK_PIPELINE_COMPILE_REQUIRED);
#undef CASE
    default: return "unknown VkResult";
    }
}

kiln_status kiln_vk_fail(kiln_vk_queue *q, VkResult r, const char *call,
                         const char *what)
{
    kiln_status s;
    switch (r) {
    case VK_ERROR_OUT_OF_HOST_MEMORY: s = KILN_ERROR_OUT_OF_HOST_MEMORY; break;
    case VK_ERROR_OUT_OF_DEVICE_MEMORY:
        s = KILN_ERROR_OUT_OF_DEVICE_MEMORY;
        break;
    case VK_ERROR_DEVICE_LOST:
        s = KILN_ERROR_DEVICE_LOST;
        q->lost = 1;
        break;
    default: s = KILN_ERROR_BACKEND; break;
    }
    return kiln__error(q->base.ctx, s, "%s: %s failed: %s (%d)", call, what,
                       kiln_vk_result_name(r), (int)r);
}

/* ------------------------------------------------------------------------ */
/* Instances                                                                */
/* ------------------------------------------------------------------------ */

static int has_extension(const VkExtensionProperties *e, uint32_t n,
                         const char *name)
{
    for (uint32_t i = 0; i < n; i++)
        if (strcmp(e[i].extensionName, name) == 0)
            return 1;
    return 0;
}

static int has_layer(const char *name)
{
    uint32_t n = 0;
    if (vkEnumerateInstanceLayerProperties(&n, NULL) != VK_SUCCESS || !n)
        return 0;
    VkLayerProperties *l = calloc(n, sizeof *l);
    int found = 0;
    if (l && vkEnumerateInstanceLayerProperties(&n, l) >= 0)
        for (uint32_t i = 0; i < n && !found; i++)
            found = strcmp(l[i].layerName, name) == 0;
    free(l);
    return found;
}

/* The instance API version: 1.0 loaders lack vkEnumerateInstanceVersion. */
static uint32_t instance_version(void)
{
    PFN_vkEnumerateInstanceVersion f = (PFN_vkEnumerateInstanceVersion)
        vkGetInstanceProcAddr(NULL, "vkEnumerateInstanceVersion");
    uint32_t v = VK_API_VERSION_1_0;
    if (f && f(&v) != VK_SUCCESS)
        v = VK_API_VERSION_1_0;
    return v;
}

static VkBool32 VKAPI_PTR
debug_callback(VkDebugUtilsMessageSeverityFlagBitsEXT severity,
               VkDebugUtilsMessageTypeFlagsEXT types,
               const VkDebugUtilsMessengerCallbackDataEXT *data, void *user)
{
    (void)types;
    kiln_context *ctx = user;
    if (severity & (VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT |
                    VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT)) {
        ctx->validation_messages++;
        kiln__error(ctx, KILN_ERROR_BACKEND, "vulkan validation: %s",
                    data && data->pMessage ? data->pMessage : "(no text)");
    }
    return VK_FALSE;
}

static void messenger_info(VkDebugUtilsMessengerCreateInfoEXT *m,
                           kiln_context *ctx)
{
    memset(m, 0, sizeof *m);
    m->sType = VK_STRUCTURE_TYPE_DEBUG_UTILS_MESSENGER_CREATE_INFO_EXT;
    m->messageSeverity = VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT |
                         VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT;
    m->messageType = VK_DEBUG_UTILS_MESSAGE_TYPE_GENERAL_BIT_EXT |
                     VK_DEBUG_UTILS_MESSAGE_TYPE_VALIDATION_BIT_EXT |
                     VK_DEBUG_UTILS_MESSAGE_TYPE_PERFORMANCE_BIT_EXT;
    m->pfnUserCallback = debug_callback;
    m->pUserData = ctx;
}

/*
 * Creates an instance of API 1.1 or newer (capped at 1.3, what the headers
 * know).  With @ctx, also the validation layer, synchronisation validation
 * and a messenger reporting to @ctx.  Returns a VkResult; for a missing
 * layer VK_ERROR_LAYER_NOT_PRESENT.
 */
static VkResult create_instance(kiln_context *ctx, VkInstance *out)
{
    uint32_t api = instance_version();
    if (api < VK_API_VERSION_1_1)
        return VK_ERROR_INCOMPATIBLE_DRIVER;
    if (api > VK_API_VERSION_1_3)
        api = VK_API_VERSION_1_3;
    if (ctx && !has_layer("VK_LAYER_KHRONOS_validation"))
        return VK_ERROR_LAYER_NOT_PRESENT;

    uint32_t n = 0;
    VkExtensionProperties *ext = NULL;
    if (vkEnumerateInstanceExtensionProperties(NULL, &n, NULL) == VK_SUCCESS &&
        n) {
        ext = calloc(n, sizeof *ext);
        if (!ext)
            return VK_ERROR_OUT_OF_HOST_MEMORY;
        if (vkEnumerateInstanceExtensionProperties(NULL, &n, ext) < 0)
            n = 0;
    }
    const char *names[3];
    uint32_t nnames = 0;
    VkInstanceCreateFlags flags = 0;
    if (has_extension(ext, n, VK_KHR_PORTABILITY_ENUMERATION_EXTENSION_NAME)) {
        names[nnames++] = VK_KHR_PORTABILITY_ENUMERATION_EXTENSION_NAME;
        flags |= VK_INSTANCE_CREATE_ENUMERATE_PORTABILITY_BIT_KHR;
    }
    free(ext);

    VkApplicationInfo app = {
        .sType = VK_STRUCTURE_TYPE_APPLICATION_INFO,
        .pApplicationName = "kiln",
        .pEngineName = "kiln",
        .engineVersion = VK_MAKE_API_VERSION(0, KILN_VERSION_MAJOR,
                                             KILN_VERSION_MINOR,
                                             KILN_VERSION_PATCH),
        .apiVersion = api,
    };
    VkInstanceCreateInfo ci = {
        .sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO,
        .flags = flags,
        .pApplicationInfo = &app,
    };
    const char *layer = "VK_LAYER_KHRONOS_validation";
    VkDebugUtilsMessengerCreateInfoEXT dbg;
    /* Synchronisation validation checks the barriers the hazard tracker
     * places, but it assumes a dispatch touches every byte of each bound
     * buffer, and Kiln binds whole blocks shared by many tensors: two
     * kernels writing disjoint tensors of one block would be reported.  So
     * it is opt-in (KILN_VK_SYNC_VALIDATION=1), for tests that give every
     * tensor its own block. */
    VkValidationFeatureEnableEXT enables[] = {
        VK_VALIDATION_FEATURE_ENABLE_SYNCHRONIZATION_VALIDATION_EXT};
    VkValidationFeaturesEXT features = {
        .sType = VK_STRUCTURE_TYPE_VALIDATION_FEATURES_EXT,
        .enabledValidationFeatureCount = 1,
        .pEnabledValidationFeatures = enables,
    };
    if (ctx) {
        /* The layer provides both extensions. */
        names[nnames++] = VK_EXT_DEBUG_UTILS_EXTENSION_NAME;
        names[nnames++] = VK_EXT_VALIDATION_FEATURES_EXTENSION_NAME;
        ci.enabledLayerCount = 1;
        ci.ppEnabledLayerNames = &layer;
        messenger_info(&dbg, ctx);
        if (kiln__env_long("KILN_VK_SYNC_VALIDATION", 0) == 1)
            dbg.pNext = &features;
        ci.pNext = &dbg;
    }
    ci.enabledExtensionCount = nnames;
    ci.ppEnabledExtensionNames = names;
    return vkCreateInstance(&ci, NULL, out);
}

static VkResult physical_devices(VkInstance inst, VkPhysicalDevice **out,
                                 uint32_t *count)
{
    *out = NULL;
    *count = 0;
    VkResult r = vkEnumeratePhysicalDevices(inst, count, NULL);
    if (r != VK_SUCCESS || !*count)
        return r;
    *out = calloc(*count, sizeof **out);
    if (!*out)
        return VK_ERROR_OUT_OF_HOST_MEMORY;
    r = vkEnumeratePhysicalDevices(inst, count, *out);
    return r == VK_INCOMPLETE ? VK_SUCCESS : r;
}

static VkExtensionProperties *device_extensions(VkPhysicalDevice pd,
                                                uint32_t *n)
{
    *n = 0;
    if (vkEnumerateDeviceExtensionProperties(pd, NULL, n, NULL) != VK_SUCCESS)
        return NULL;
    VkExtensionProperties *e = calloc(*n ? *n : 1, sizeof *e);
    if (e && vkEnumerateDeviceExtensionProperties(pd, NULL, n, e) < 0)
        *n = 0;
    if (!e)
        *n = 0;
    return e;
}

static int compute_family(VkPhysicalDevice pd, uint32_t *family)
{
    uint32_t n = 0;
    vkGetPhysicalDeviceQueueFamilyProperties(pd, &n, NULL);
    VkQueueFamilyProperties *f = calloc(n ? n : 1, sizeof *f);
    int found = 0;
    if (f) {
        vkGetPhysicalDeviceQueueFamilyProperties(pd, &n, f);
        for (uint32_t i = 0; i < n && !found; i++) {
            if (f[i].queueFlags & VK_QUEUE_COMPUTE_BIT && f[i].queueCount) {
                *family = i;
                found = 1;
            }
        }
    }
    free(f);
    return found;
}

/* ------------------------------------------------------------------------ */
/* Listing                                                                  */
/* ------------------------------------------------------------------------ */

static void driver_version(char *out, size_t size, uint32_t vendor,
                           uint32_t v)
{
    if (vendor == 0x10de) /* NVIDIA packs 10.8.8.6 bits */
        snprintf(out, size, "%u.%u.%u.%u", v >> 22, (v >> 14) & 0xff,
                 (v >> 6) & 0xff, v & 0x3f);
    else
        snprintf(out, size, "%u.%u.%u", VK_API_VERSION_MAJOR(v),
                 VK_API_VERSION_MINOR(v), VK_API_VERSION_PATCH(v));
}

static kiln_device_type device_type(VkPhysicalDeviceType t)
{
    switch (t) {
    case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU: return KILN_DEVICE_DISCRETE_GPU;
    case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU:
        return KILN_DEVICE_INTEGRATED_GPU;
    default: return KILN_DEVICE_CPU; /* CPU, virtual, other */
    }
}

static void largest_device_heap(VkPhysicalDevice pd, kiln_device_info *d)
{
    VkPhysicalDeviceMemoryProperties m;
    vkGetPhysicalDeviceMemoryProperties(pd, &m);
    for (uint32_t i = 0; i < m.memoryHeapCount; i++)
        if (m.memoryHeaps[i].flags & VK_MEMORY_HEAP_DEVICE_LOCAL_BIT &&
            m.memoryHeaps[i].size > d->global_memory)
            d->global_memory = m.memoryHeaps[i].size;
}

/* Fills @d from the properties and features chains of @pd. */
/* fp16 and fp64 arithmetic support. */
static void describe_features(VkPhysicalDevice pd,
                              const VkExtensionProperties *ext, uint32_t next,
                              uint32_t api, kiln_device_info *d)
{
    VkPhysicalDeviceShaderFloat16Int8Features f16 = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_FLOAT16_INT8_FEATURES};
    VkPhysicalDeviceFeatures2 f2 = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2};
    if (api >= VK_API_VERSION_1_2 ||
        has_extension(ext, next, "VK_KHR_shader_float16_int8"))
        f2.pNext = &f16;
    if (api >= VK_API_VERSION_1_1)
        vkGetPhysicalDeviceFeatures2(pd, &f2);
    else
        vkGetPhysicalDeviceFeatures(pd, &f2.features);
    d->fp16 = f2.pNext ? (int)f16.shaderFloat16 : 0;
    d->fp64 = (int)f2.features.shaderFloat64;
}

/* What Kiln needs of a device: Vulkan 1.1, push descriptors, compute. */
static void describe_usability(VkPhysicalDevice pd,
                               const VkExtensionProperties *ext, uint32_t next,
                               uint32_t api, kiln_device_info *d)
{
    uint32_t family;
    const char *why = NULL;
    if (api < VK_API_VERSION_1_1)
        why = "needs Vulkan 1.1";
    else if (!has_extension(ext, next, VK_KHR_PUSH_DESCRIPTOR_EXTENSION_NAME))
        why = "no VK_KHR_push_descriptor";
    else if (!compute_family(pd, &family))
        why = "no compute queue";
    d->usable = why == NULL;
    kiln__copy_string(d->unusable_reason, sizeof d->unusable_reason, why);
}

static void describe(VkPhysicalDevice pd, int index, kiln_device_info *d)
{
    uint32_t next = 0;
    VkExtensionProperties *ext = device_extensions(pd, &next);
    VkPhysicalDeviceProperties base;
    vkGetPhysicalDeviceProperties(pd, &base);
    uint32_t api = base.apiVersion;

    VkPhysicalDeviceMaintenance3Properties m3 = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MAINTENANCE_3_PROPERTIES};
    VkPhysicalDeviceSubgroupProperties sg = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_PROPERTIES,
        .pNext = &m3};
    VkPhysicalDeviceDriverProperties drv = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_DRIVER_PROPERTIES};
    VkPhysicalDeviceSubgroupSizeControlProperties sgc = {
        .sType =
            VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_SIZE_CONTROL_PROPERTIES};
    VkPhysicalDeviceShaderCorePropertiesAMD amd = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_CORE_PROPERTIES_AMD};
    VkPhysicalDeviceShaderSMBuiltinsPropertiesNV nv = {
        .sType =
            VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_SM_BUILTINS_PROPERTIES_NV};
    VkPhysicalDeviceProperties2 p2 = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2, .pNext = &sg};
    void **tail = &m3.pNext;
    int have_drv = api >= VK_API_VERSION_1_2 ||
                   has_extension(ext, next, "VK_KHR_driver_properties");
    int have_sgc = api >= VK_API_VERSION_1_3 ||
                   has_extension(ext, next, "VK_EXT_subgroup_size_control");
    int have_amd = has_extension(ext, next, "VK_AMD_shader_core_properties");
    int have_nv = has_extension(ext, next, "VK_NV_shader_sm_builtins");
#define LINK(s) do { *tail = &s; tail = &s.pNext; } while (0)
    if (have_drv)
        LINK(drv);
    if (have_sgc)
        LINK(sgc);
    if (have_amd)
        LINK(amd);
    if (have_nv)
        LINK(nv);
#undef LINK
    if (api >= VK_API_VERSION_1_1)
        vkGetPhysicalDeviceProperties2(pd, &p2);

    d->backend = KILN_BACKEND_VULKAN;
    d->index = index;
    kiln__copy_string(d->name, sizeof d->name, base.deviceName);
    kiln__copy_string(d->platform, sizeof d->platform,
                      have_drv ? drv.driverName : "");
    driver_version(d->driver_version, sizeof d->driver_version,
                   base.vendorID, base.driverVersion);
    snprintf(d->api_version, sizeof d->api_version, "%u.%u.%u",
             VK_API_VERSION_MAJOR(api), VK_API_VERSION_MINOR(api),
             VK_API_VERSION_PATCH(api));
    d->vendor = kiln__vendor_from_id(base.vendorID);
    d->type = device_type(base.deviceType);
    largest_device_heap(pd, d);
    d->max_allocation = m3.maxMemoryAllocationSize ? m3.maxMemoryAllocationSize
                                                   : d->global_memory;
    if (have_amd)
        d->compute_units = amd.shaderEngineCount *
                           amd.shaderArraysPerEngineCount *
                           amd.computeUnitsPerShaderArray;
    else if (have_nv)
        d->compute_units = nv.shaderSMCount;
    d->subgroup_min = have_sgc ? sgc.minSubgroupSize : sg.subgroupSize;
    d->subgroup_max = have_sgc ? sgc.maxSubgroupSize : sg.subgroupSize;
    d->local_memory = base.limits.maxComputeSharedMemorySize;
    d->max_workgroup_size = base.limits.maxComputeWorkGroupInvocations;
    describe_features(pd, ext, next, api, d);
    describe_usability(pd, ext, next, api, d);
    free(ext);
}

int kiln_vk_list_devices(kiln_device_info *out, int max)
{
    if (kiln__env_long("KILN_DISABLE_VULKAN", 0) == 1)
        return 0;
    VkInstance inst;
    if (create_instance(NULL, &inst) != VK_SUCCESS)
        return 0; /* no loader, no driver: not an error, just no devices */
    VkPhysicalDevice *pds;
    uint32_t n;
    if (physical_devices(inst, &pds, &n) != VK_SUCCESS)
        n = 0;
    for (uint32_t i = 0; i < n && (int)i < max; i++) {
        memset(&out[i], 0, sizeof out[i]);
        describe(pds[i], (int)i, &out[i]);
    }
    free(pds);
    vkDestroyInstance(inst, NULL);
    return (int)n;
}

/* ------------------------------------------------------------------------ */
/* Opening a device                                                         */
/* ------------------------------------------------------------------------ */

static kiln_status open_instance(kiln_vk_queue *q, int validation)
{
    kiln_context *ctx = q->base.ctx;
    VkResult r = create_instance(validation ? ctx : NULL, &q->instance);
    if (r == VK_ERROR_LAYER_NOT_PRESENT && validation)
        return kiln__error(ctx, KILN_ERROR_UNSUPPORTED,
                           "kiln_context_create: Vulkan validation requested "
                           "but VK_LAYER_KHRONOS_validation is not installed");
    if (r != VK_SUCCESS) {
        q->instance = VK_NULL_HANDLE;
        return kiln_vk_fail(q, r, "kiln_context_create", "vkCreateInstance");
    }
    if (!validation)
        return KILN_OK;
    PFN_vkCreateDebugUtilsMessengerEXT create =
        (PFN_vkCreateDebugUtilsMessengerEXT)vkGetInstanceProcAddr(
            q->instance, "vkCreateDebugUtilsMessengerEXT");
    VkDebugUtilsMessengerCreateInfoEXT mi;
    messenger_info(&mi, ctx);
    r = create ? create(q->instance, &mi, NULL, &q->messenger)
               : VK_ERROR_EXTENSION_NOT_PRESENT;
    if (r != VK_SUCCESS)
        return kiln_vk_fail(q, r, "kiln_context_create",
                            "vkCreateDebugUtilsMessengerEXT");
    return KILN_OK;
}

static kiln_status pick_physical(kiln_vk_queue *q, const kiln_device_info *info)
{
    VkPhysicalDevice *pds;
    uint32_t n;
    VkResult r = physical_devices(q->instance, &pds, &n);
    if (r != VK_SUCCESS) {
        free(pds);
        return kiln_vk_fail(q, r, "kiln_context_create",
                            "vkEnumeratePhysicalDevices");
    }
    if (info->index < 0 || (uint32_t)info->index >= n) {
        free(pds);
        return kiln__error(q->base.ctx, KILN_ERROR_NO_DEVICE,
                           "kiln_context_create: Vulkan device %d (%s) is "
                           "gone (%u devices now)", info->index, info->name, n);
    }
    q->phys = pds[info->index];
    free(pds);
    if (!compute_family(q->phys, &q->family))
        return kiln__error(q->base.ctx, KILN_ERROR_UNSUPPORTED,
                           "kiln_context_create: %s has no compute queue",
                           info->name);
    return KILN_OK;
}

static kiln_status create_device(kiln_vk_queue *q)
{
    uint32_t next = 0;
    VkExtensionProperties *ext = device_extensions(q->phys, &next);
    const char *names[2];
    uint32_t nnames = 0;
    int push = has_extension(ext, next, VK_KHR_PUSH_DESCRIPTOR_EXTENSION_NAME);
    if (push)
        names[nnames++] = VK_KHR_PUSH_DESCRIPTOR_EXTENSION_NAME;
    /* Required whenever the implementation exposes it (MoltenVK). */
    if (has_extension(ext, next, "VK_KHR_portability_subset"))
        names[nnames++] = "VK_KHR_portability_subset";
    free(ext);
    if (!push)
        return kiln__error(q->base.ctx, KILN_ERROR_UNSUPPORTED,
                           "kiln_context_create: the Vulkan device lacks "
                           "VK_KHR_push_descriptor");

    VkPhysicalDeviceFeatures have;
    vkGetPhysicalDeviceFeatures(q->phys, &have);
    VkPhysicalDeviceFeatures want = {0};
    want.shaderFloat64 = have.shaderFloat64;
    q->fp64 = (int)have.shaderFloat64;

    float priority = 1.0f;
    VkDeviceQueueCreateInfo qi = {
        .sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO,
        .queueFamilyIndex = q->family,
        .queueCount = 1,
        .pQueuePriorities = &priority,
    };
    VkDeviceCreateInfo di = {
        .sType = VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO,
        .queueCreateInfoCount = 1,
        .pQueueCreateInfos = &qi,
        .enabledExtensionCount = nnames,
        .ppEnabledExtensionNames = names,
        .pEnabledFeatures = &want,
    };
    VkResult r = vkCreateDevice(q->phys, &di, NULL, &q->device);
    if (r != VK_SUCCESS) {
        q->device = VK_NULL_HANDLE;
        return kiln_vk_fail(q, r, "kiln_context_create", "vkCreateDevice");
    }
    vkGetDeviceQueue(q->device, q->family, 0, &q->queue);
    q->push_descriptor = (PFN_vkCmdPushDescriptorSetKHR)vkGetDeviceProcAddr(
        q->device, "vkCmdPushDescriptorSetKHR");
    if (!q->push_descriptor)
        return kiln__error(q->base.ctx, KILN_ERROR_BACKEND,
                           "kiln_context_create: vkCmdPushDescriptorSetKHR "
                           "not found");
    return KILN_OK;
}

static void query_limits(kiln_vk_queue *q)
{
    VkPhysicalDeviceMaintenance3Properties m3 = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MAINTENANCE_3_PROPERTIES};
    VkPhysicalDeviceProperties2 p2 = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2, .pNext = &m3};
    vkGetPhysicalDeviceProperties2(q->phys, &p2);
    q->limits = p2.properties.limits;
    vkGetPhysicalDeviceMemoryProperties(q->phys, &q->memory);
    q->max_allocation = m3.maxMemoryAllocationSize;
    if (!q->max_allocation) /* a driver that leaves it 0: the largest heap */
        for (uint32_t i = 0; i < q->memory.memoryHeapCount; i++)
            if (q->memory.memoryHeaps[i].size > q->max_allocation)
                q->max_allocation = q->memory.memoryHeaps[i].size;
}

kiln_status kiln_vk_device_open(kiln_vk_queue *q,
                                const kiln_device_info *info, int validation)
{
    q->owns_device = 1; /* instance and device are ours to destroy */
    kiln_status s = open_instance(q, validation);
    if (s == KILN_OK)
        s = pick_physical(q, info);
    if (s == KILN_OK)
        s = create_device(q);
    if (s == KILN_OK)
        query_limits(q);
    return s;
}

void kiln_vk_device_close(kiln_vk_queue *q)
{
    if (q->device && q->owns_device)
        vkDestroyDevice(q->device, NULL);
    q->device = VK_NULL_HANDLE;
    if (q->messenger) {
        PFN_vkDestroyDebugUtilsMessengerEXT destroy =
            (PFN_vkDestroyDebugUtilsMessengerEXT)vkGetInstanceProcAddr(
                q->instance, "vkDestroyDebugUtilsMessengerEXT");
        if (destroy)
            destroy(q->instance, q->messenger, NULL);
        q->messenger = VK_NULL_HANDLE;
    }
    if (q->instance && q->owns_device)
        vkDestroyInstance(q->instance, NULL);
    q->instance = VK_NULL_HANDLE;
}
