/*
 * device.c - listing every device Kiln can use and choosing one.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "kiln_config.h"

static void reference_info(kiln_device_info *d, int index)
{
    memset(d, 0, sizeof *d);
    d->backend = KILN_BACKEND_REFERENCE;
    d->index = index;
    kiln__copy_string(d->name, sizeof d->name, "Kiln C reference");
    kiln__copy_string(d->platform, sizeof d->platform, "kiln");
    snprintf(d->driver_version, sizeof d->driver_version, "%d.%d.%d",
             KILN_VERSION_MAJOR, KILN_VERSION_MINOR, KILN_VERSION_PATCH);
    kiln__copy_string(d->api_version, sizeof d->api_version, "C11");
    d->vendor = KILN_VENDOR_OTHER;
    d->type = KILN_DEVICE_REFERENCE;
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    d->global_memory = pages > 0 && page > 0 ? (uint64_t)pages * page : 0;
    d->max_allocation = d->global_memory;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    d->compute_units = cpus > 0 ? (uint32_t)cpus : 1;
    d->max_workgroup_size = 1;
    d->fp64 = 1;
    d->usable = 1;
}

int kiln_device_list(kiln_device_info *out, int max)
{
    int total = 0;
#if KILN_HAVE_OPENCL
    total += kiln_cl_list_devices(out, max);
#endif
#if KILN_HAVE_VULKAN
    {
        int room = max - total;
        total += kiln_vk_list_devices(room > 0 ? out + total : NULL,
                                      room > 0 ? room : 0);
    }
#endif
    if (total < max)
        reference_info(&out[total], 0);
    return total + 1;
}

const char *kiln_backend_name(kiln_backend b)
{
    switch (b) {
    case KILN_BACKEND_REFERENCE: return "reference";
    case KILN_BACKEND_OPENCL: return "opencl";
    case KILN_BACKEND_VULKAN: return "vulkan";
    }
    return "?";
}

const char *kiln_vendor_name(kiln_vendor v)
{
    switch (v) {
    case KILN_VENDOR_AMD: return "AMD";
    case KILN_VENDOR_INTEL: return "Intel";
    case KILN_VENDOR_NVIDIA: return "NVIDIA";
    case KILN_VENDOR_OTHER: return "other";
    }
    return "?";
}

const char *kiln_device_type_name(kiln_device_type t)
{
    switch (t) {
    case KILN_DEVICE_DISCRETE_GPU: return "discrete GPU";
    case KILN_DEVICE_INTEGRATED_GPU: return "integrated GPU";
    case KILN_DEVICE_CPU: return "CPU";
    case KILN_DEVICE_REFERENCE: return "reference";
    }
    return "?";
}

/* Higher is better.  Type dominates; at equal type Vulkan wins on GPUs
 * (lower launch cost, cooperative matrices) and OpenCL on CPUs (PoCL
 * vectorises across work-items better than lavapipe runs compute). */
static int rank(const kiln_device_info *d)
{
    static const int by_type[] = {
        [KILN_DEVICE_DISCRETE_GPU] = 400, [KILN_DEVICE_INTEGRATED_GPU] = 300,
        [KILN_DEVICE_CPU] = 200, [KILN_DEVICE_REFERENCE] = 100};
    int r = by_type[d->type];
    int gpu = d->type == KILN_DEVICE_DISCRETE_GPU ||
              d->type == KILN_DEVICE_INTEGRATED_GPU;
    if (d->backend == (gpu ? KILN_BACKEND_VULKAN : KILN_BACKEND_OPENCL))
        r += 10;
    return r;
}

static int best_of(const kiln_device_info *devs, int n, int backend)
{
    int best = -1;
    for (int i = 0; i < n; i++) {
        if (!devs[i].usable || (backend >= 0 && (int)devs[i].backend != backend))
            continue;
        if (best < 0 || rank(&devs[i]) > rank(&devs[best]))
            best = i;
    }
    return best;
}

static int parse_backend(const char *s, size_t len)
{
    static const char *names[] = {"reference", "opencl", "vulkan"};
    for (int b = 0; b < 3; b++)
        if (strlen(names[b]) == len && strncmp(s, names[b], len) == 0)
            return b;
    if ((len == 3 && strncmp(s, "ref", 3) == 0) ||
        (len == 7 && strncmp(s, "cpu-ref", 7) == 0))
        return KILN_BACKEND_REFERENCE;
    if (len == 2 && strncmp(s, "cl", 2) == 0)
        return KILN_BACKEND_OPENCL;
    if (len == 2 && strncmp(s, "vk", 2) == 0)
        return KILN_BACKEND_VULKAN;
    return -1;
}

static int fail(char *why, size_t size, const char *fmt, const char *spec)
{
    if (why && size)
        snprintf(why, size, fmt, spec);
    return -1;
}

/* Index within a backend or name match; returns the list index or -1. */
static int match(const kiln_device_info *devs, int n, int backend,
                 const char *rest)
{
    char *end;
    long idx = strtol(rest, &end, 10);
    int numeric = *rest && !*end;
    for (int i = 0; i < n; i++) {
        if (backend >= 0 && (int)devs[i].backend != backend)
            continue;
        if (numeric ? devs[i].index == idx
                    : kiln__contains_nocase(devs[i].name, rest))
            return i;
    }
    return -1;
}

int kiln_device_select(const kiln_device_info *devs, int n, const char *spec,
                       char *why, size_t why_size)
{
    if (!devs || n <= 0)
        return fail(why, why_size, "no devices listed%s", "");
    if (!spec || !*spec || strcmp(spec, "auto") == 0) {
        int i = best_of(devs, n, -1);
        return i >= 0 ? i : fail(why, why_size, "no usable device%s", "");
    }
    const char *colon = strchr(spec, ':');
    int backend = parse_backend(spec, colon ? (size_t)(colon - spec)
                                            : strlen(spec));
    int i;
    if (backend >= 0 && !colon) {
        i = best_of(devs, n, backend);
        if (i < 0)
            return fail(why, why_size,
                        "no usable %s device (driver missing, or disabled "
                        "by KILN_DISABLE_*)", spec);
        return i;
    }
    if (colon && backend < 0)
        return fail(why, why_size,
                    "unknown backend in '%s' (use reference, opencl or "
                    "vulkan)", spec);
    i = match(devs, n, backend, colon ? colon + 1 : spec);
    if (i < 0)
        return fail(why, why_size, "no device matches '%s' (kiln-info lists "
                    "them)", spec);
    if (!devs[i].usable)
        return fail(why, why_size, "device '%s' is listed but not usable",
                    spec);
    return i;
}
