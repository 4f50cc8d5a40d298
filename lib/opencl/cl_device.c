/*
 * cl_device.c - enumerating OpenCL devices and naming OpenCL errors.
 *
 * Devices are numbered by one running index over every platform, in the
 * order the ICD loader gives them; kiln_cl_queue_create() walks the same
 * order again to open one.  A machine without an ICD loader configuration
 * or without platforms simply has no OpenCL devices: that is not an error.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "opencl/cl_internal.h"

/* Vendor extension queries, from cl_ext.h (not every header has them). */
#define KILN_CL_DEVICE_WARP_SIZE_NV 0x4003
#define KILN_CL_DEVICE_WAVEFRONT_WIDTH_AMD 0x4043
#define KILN_CL_DEVICE_SUB_GROUP_SIZES_INTEL 0x4108
#define KILN_CL_PLATFORM_NOT_FOUND_KHR (-1001)

const char *kiln_cl_error_string(cl_int err)
{
    switch (err) {
#define E(x) case x: return #x
    E(CL_SUCCESS);
    E(CL_DEVICE_NOT_FOUND);
    E(CL_DEVICE_NOT_AVAILABLE);
    E(CL_COMPILER_NOT_AVAILABLE);
    E(CL_MEM_OBJECT_ALLOCATION_FAILURE);
    E(CL_OUT_OF_RESOURCES);
    E(CL_OUT_OF_HOST_MEMORY);
    E(CL_PROFILING_INFO_NOT_AVAILABLE);
    E(CL_MEM_COPY_OVERLAP);
    E(CL_IMAGE_FORMAT_MISMATCH);
    E(CL_IMAGE_FORMAT_NOT_SUPPORTED);
    E(CL_BUILD_PROGRAM_FAILURE);
    E(CL_MAP_FAILURE);
    E(CL_MISALIGNED_SUB_BUFFER_OFFSET);
    E(CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST);
    E(CL_COMPILE_PROGRAM_FAILURE);
    E(CL_LINKER_NOT_AVAILABLE);
    E(CL_LINK_PROGRAM_FAILURE);
    E(CL_DEVICE_PARTITION_FAILED);
    E(CL_KERNEL_ARG_INFO_NOT_AVAILABLE);
    E(CL_INVALID_VALUE);
    E(CL_INVALID_DEVICE_TYPE);
    E(CL_INVALID_PLATFORM);
    E(CL_INVALID_DEVICE);
    E(CL_INVALID_CONTEXT);
    E(CL_INVALID_QUEUE_PROPERTIES);
    E(CL_INVALID_COMMAND_QUEUE);
    E(CL_INVALID_HOST_PTR);
    E(CL_INVALID_MEM_OBJECT);
    E(CL_INVALID_IMAGE_FORMAT_DESCRIPTOR);
    E(CL_INVALID_IMAGE_SIZE);
    E(CL_INVALID_SAMPLER);
    E(CL_INVALID_BINARY);
    E(CL_INVALID_BUILD_OPTIONS);
    E(CL_INVALID_PROGRAM);
    E(CL_INVALID_PROGRAM_EXECUTABLE);
    E(CL_INVALID_KERNEL_NAME);
    E(CL_INVALID_KERNEL_DEFINITION);
    E(CL_INVALID_KERNEL);
    E(CL_INVALID_ARG_INDEX);
    E(CL_INVALID_ARG_VALUE);
    E(CL_INVALID_ARG_SIZE);
    E(CL_INVALID_KERNEL_ARGS);
    E(CL_INVALID_WORK_DIMENSION);
    E(CL_INVALID_WORK_GROUP_SIZE);
    E(CL_INVALID_WORK_ITEM_SIZE);
    E(CL_INVALID_GLOBAL_OFFSET);
    E(CL_INVALID_EVENT_WAIT_LIST);
    E(CL_INVALID_EVENT);
    E(CL_INVALID_OPERATION);
    E(CL_INVALID_GL_OBJECT);
    E(CL_INVALID_BUFFER_SIZE);
    E(CL_INVALID_MIP_LEVEL);
    E(CL_INVALID_GLOBAL_WORK_SIZE);
    E(CL_INVALID_PROPERTY);
    E(CL_INVALID_IMAGE_DESCRIPTOR);
    E(CL_INVALID_COMPILER_OPTIONS);
    E(CL_INVALID_LINKER_OPTIONS);
    E(CL_INVALID_DEVICE_PARTITION_COUNT);
#undef E
    case KILN_CL_PLATFORM_NOT_FOUND_KHR: return "CL_PLATFORM_NOT_FOUND_KHR";
    }
    return "unknown OpenCL error";
}

kiln_status kiln_cl_status(cl_int err)
{
    switch (err) {
    case CL_SUCCESS:
        return KILN_OK;
    case CL_MEM_OBJECT_ALLOCATION_FAILURE:
    case CL_OUT_OF_RESOURCES:
    case CL_INVALID_BUFFER_SIZE:
        return KILN_ERROR_OUT_OF_DEVICE_MEMORY;
    case CL_OUT_OF_HOST_MEMORY:
        return KILN_ERROR_OUT_OF_HOST_MEMORY;
    case CL_DEVICE_NOT_AVAILABLE:
    case CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST:
        return KILN_ERROR_DEVICE_LOST;
    }
    return KILN_ERROR_BACKEND;
}

/* Drivers refuse a buffer shorter than the value, so the value is read
 * whole and then cut to fit (CL_DEVICE_VERSION can outgrow api_version). */
void kiln_cl_device_string(cl_device_id dev, cl_device_info what, char *buf,
                           size_t size)
{
    size_t n = 0;
    char *full = NULL;
    buf[0] = '\0';
    if (clGetDeviceInfo(dev, what, 0, NULL, &n) == CL_SUCCESS &&
        (full = calloc(1, n + 1)) != NULL &&
        clGetDeviceInfo(dev, what, n, full, NULL) == CL_SUCCESS)
        kiln__copy_string(buf, size, full);
    free(full);
}

void kiln_cl_platform_string(cl_platform_id plat, cl_platform_info what,
                             char *buf, size_t size)
{
    size_t n = 0;
    char *full = NULL;
    buf[0] = '\0';
    if (clGetPlatformInfo(plat, what, 0, NULL, &n) == CL_SUCCESS &&
        (full = calloc(1, n + 1)) != NULL &&
        clGetPlatformInfo(plat, what, n, full, NULL) == CL_SUCCESS)
        kiln__copy_string(buf, size, full);
    free(full);
}

/* A device's extension string, malloc'd ("" on failure, NULL without
 * memory). */
static char *device_extensions(cl_device_id dev)
{
    size_t n = 0;
    if (clGetDeviceInfo(dev, CL_DEVICE_EXTENSIONS, 0, NULL, &n) != CL_SUCCESS)
        n = 0;
    char *s = calloc(1, n + 1);
    if (s && n && clGetDeviceInfo(dev, CL_DEVICE_EXTENSIONS, n, s, NULL) !=
                      CL_SUCCESS)
        s[0] = '\0';
    return s;
}

static int has_extension(const char *exts, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = exts; (p = strstr(p, name)) != NULL; p += n)
        if ((p == exts || p[-1] == ' ') && (p[n] == ' ' || p[n] == '\0'))
            return 1;
    return 0;
}

static uint64_t device_u64(cl_device_id dev, cl_device_info what)
{
    cl_ulong v = 0;
    if (clGetDeviceInfo(dev, what, sizeof v, &v, NULL) != CL_SUCCESS)
        return 0;
    return v;
}

static uint32_t device_u32(cl_device_id dev, cl_device_info what)
{
    cl_uint v = 0;
    if (clGetDeviceInfo(dev, what, sizeof v, &v, NULL) != CL_SUCCESS)
        return 0;
    return v;
}

/* Subgroup (warp, wavefront) sizes where a vendor extension reports them;
 * core OpenCL 1.2 has no such query. */
static void fill_subgroups(cl_device_id dev, const char *exts,
                           kiln_device_info *info)
{
    if (has_extension(exts, "cl_nv_device_attribute_query")) {
        info->subgroup_min = info->subgroup_max =
            device_u32(dev, KILN_CL_DEVICE_WARP_SIZE_NV);
    } else if (has_extension(exts, "cl_amd_device_attribute_query")) {
        info->subgroup_min = info->subgroup_max =
            device_u32(dev, KILN_CL_DEVICE_WAVEFRONT_WIDTH_AMD);
    } else if (has_extension(exts, "cl_intel_subgroups") ||
               has_extension(exts, "cl_intel_required_subgroup_size")) {
        size_t sizes[16], n = 0;
        if (clGetDeviceInfo(dev, KILN_CL_DEVICE_SUB_GROUP_SIZES_INTEL,
                            sizeof sizes, sizes, &n) != CL_SUCCESS)
            return;
        n /= sizeof sizes[0];
        for (size_t i = 0; i < n; i++) {
            uint32_t s = (uint32_t)sizes[i];
            if (!info->subgroup_min || s < info->subgroup_min)
                info->subgroup_min = s;
            if (s > info->subgroup_max)
                info->subgroup_max = s;
        }
    }
}

static kiln_device_type device_type(cl_device_id dev)
{
    cl_device_type t = 0;
    cl_bool unified = CL_FALSE;
    clGetDeviceInfo(dev, CL_DEVICE_TYPE, sizeof t, &t, NULL);
    if (!(t & CL_DEVICE_TYPE_GPU))
        return KILN_DEVICE_CPU;
    clGetDeviceInfo(dev, CL_DEVICE_HOST_UNIFIED_MEMORY, sizeof unified,
                    &unified, NULL);
    return unified ? KILN_DEVICE_INTEGRATED_GPU : KILN_DEVICE_DISCRETE_GPU;
}

/* Kiln needs OpenCL 1.2 (its kernels are OpenCL C 1.2) and a compiler. */
static void check_usable(cl_device_id dev, kiln_device_info *info)
{
    int major = 0, minor = 0;
    cl_bool compiler = CL_FALSE, available = CL_FALSE;
    sscanf(info->api_version, "OpenCL %d.%d", &major, &minor);
    clGetDeviceInfo(dev, CL_DEVICE_COMPILER_AVAILABLE, sizeof compiler,
                    &compiler, NULL);
    clGetDeviceInfo(dev, CL_DEVICE_AVAILABLE, sizeof available, &available,
                    NULL);
    info->usable = 0;
    if (major * 10 + minor < 12)
        snprintf(info->unusable_reason, sizeof info->unusable_reason,
                 "needs OpenCL 1.2, device has \"%s\"", info->api_version);
    else if (!compiler)
        kiln__copy_string(info->unusable_reason,
                          sizeof info->unusable_reason,
                          "the driver has no OpenCL C compiler");
    else if (!available)
        kiln__copy_string(info->unusable_reason,
                          sizeof info->unusable_reason,
                          "the driver reports the device unavailable");
    else
        info->usable = 1;
}

static void describe(cl_platform_id plat, cl_device_id dev, int index,
                     kiln_device_info *info)
{
    memset(info, 0, sizeof *info);
    info->backend = KILN_BACKEND_OPENCL;
    info->index = index;
    kiln_cl_device_string(dev, CL_DEVICE_NAME, info->name, sizeof info->name);
    kiln_cl_platform_string(plat, CL_PLATFORM_NAME, info->platform,
                            sizeof info->platform);
    kiln_cl_device_string(dev, CL_DRIVER_VERSION, info->driver_version,
                          sizeof info->driver_version);
    kiln_cl_device_string(dev, CL_DEVICE_VERSION, info->api_version,
                          sizeof info->api_version);
    info->type = device_type(dev);
    info->vendor = kiln__vendor_from_id(device_u32(dev, CL_DEVICE_VENDOR_ID));
    /* A CPU device's PCI id means little (PoCL says 0x8086 on an AMD EPYC):
     * there the vendor string ("AuthenticAMD") is the better witness. */
    if (info->type == KILN_DEVICE_CPU || info->vendor == KILN_VENDOR_OTHER) {
        char vendor[128];
        kiln_cl_device_string(dev, CL_DEVICE_VENDOR, vendor, sizeof vendor);
        kiln_vendor v = kiln__vendor_from_name(vendor);
        if (v == KILN_VENDOR_OTHER)
            v = kiln__vendor_from_name(info->name);
        if (v != KILN_VENDOR_OTHER || info->type == KILN_DEVICE_CPU)
            info->vendor = v;
    }
    info->global_memory = device_u64(dev, CL_DEVICE_GLOBAL_MEM_SIZE);
    info->max_allocation = device_u64(dev, CL_DEVICE_MAX_MEM_ALLOC_SIZE);
    info->compute_units = device_u32(dev, CL_DEVICE_MAX_COMPUTE_UNITS);
    info->local_memory = (uint32_t)device_u64(dev, CL_DEVICE_LOCAL_MEM_SIZE);
    size_t wg = 0;
    clGetDeviceInfo(dev, CL_DEVICE_MAX_WORK_GROUP_SIZE, sizeof wg, &wg, NULL);
    info->max_workgroup_size = (uint32_t)wg;
    char *exts = device_extensions(dev);
    if (exts) {
        fill_subgroups(dev, exts, info);
        info->fp16 = has_extension(exts, "cl_khr_fp16");
        info->fp64 = has_extension(exts, "cl_khr_fp64");
        free(exts);
    }
    if (device_u64(dev, CL_DEVICE_DOUBLE_FP_CONFIG) != 0)
        info->fp64 = 1;
    check_usable(dev, info);
}

/* Calls @fn for every device of every platform, in the running order;
 * stops early when @fn returns nonzero.  Returns the number visited. */
typedef int (*device_visitor)(cl_platform_id, cl_device_id, int, void *);

static int for_each_device(device_visitor fn, void *arg)
{
    cl_uint nplat = 0;
    if (clGetPlatformIDs(0, NULL, &nplat) != CL_SUCCESS || nplat == 0)
        return 0; /* no ICD, no platforms: no OpenCL devices */
    cl_platform_id *plats = calloc(nplat, sizeof *plats);
    if (!plats || clGetPlatformIDs(nplat, plats, NULL) != CL_SUCCESS) {
        free(plats);
        return 0;
    }
    int count = 0, stop = 0;
    for (cl_uint p = 0; p < nplat && !stop; p++) {
        cl_uint ndev = 0;
        if (clGetDeviceIDs(plats[p], CL_DEVICE_TYPE_ALL, 0, NULL, &ndev) !=
                CL_SUCCESS || ndev == 0)
            continue;
        cl_device_id *devs = calloc(ndev, sizeof *devs);
        if (!devs || clGetDeviceIDs(plats[p], CL_DEVICE_TYPE_ALL, ndev, devs,
                                    NULL) != CL_SUCCESS) {
            free(devs);
            continue;
        }
        for (cl_uint d = 0; d < ndev && !stop; d++)
            stop = fn(plats[p], devs[d], count++, arg);
        free(devs);
    }
    free(plats);
    return count;
}

typedef struct list_state {
    kiln_device_info *out;
    int max;
} list_state;

static int list_visit(cl_platform_id plat, cl_device_id dev, int index,
                      void *arg)
{
    list_state *s = arg;
    if (index < s->max)
        describe(plat, dev, index, &s->out[index]);
    return 0;
}

int kiln_cl_list_devices(kiln_device_info *out, int max)
{
    if (kiln__env_long("KILN_DISABLE_OPENCL", 0) == 1)
        return 0;
    list_state s = {out, out ? max : 0};
    return for_each_device(list_visit, &s);
}

typedef struct find_state {
    int index;
    cl_platform_id plat;
    cl_device_id dev;
    int found;
} find_state;

static int find_visit(cl_platform_id plat, cl_device_id dev, int index,
                      void *arg)
{
    find_state *s = arg;
    if (index != s->index)
        return 0;
    s->plat = plat;
    s->dev = dev;
    s->found = 1;
    return 1;
}

cl_int kiln_cl_find_device(int index, cl_platform_id *platform,
                           cl_device_id *device)
{
    find_state s = {index, NULL, NULL, 0};
    for_each_device(find_visit, &s);
    if (!s.found)
        return CL_DEVICE_NOT_FOUND;
    *platform = s.plat;
    *device = s.dev;
    return CL_SUCCESS;
}
