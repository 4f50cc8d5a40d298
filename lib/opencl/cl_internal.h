/*
 * cl_internal.h - what the OpenCL backend's files share.
 *
 * cl_device.c enumerates devices and names errors, cl_program.c builds
 * the kernels/<family>.cl families (in-memory and on-disk caches),
 * cl_queue.c is the queue vtable.  Everything lives in the cl_queue
 * object: no globals, so two contexts never share a program or a cache
 * entry in memory.
 */
#ifndef KILN_CL_INTERNAL_H
#define KILN_CL_INTERNAL_H

#define CL_TARGET_OPENCL_VERSION 120
#define CL_USE_DEPRECATED_OPENCL_1_2_APIS
#include <CL/cl.h>

#include "internal.h"

/* One built program: a kernel family for one set of build options. */
typedef struct cl_program_entry {
    const char *family;         /* kiln_kernel_desc.cl_family             */
    char *options;
    cl_program program;
} cl_program_entry;

/* One kernel object, found by what a dispatch asks for. */
typedef struct cl_kernel_key {
    kiln_kernel_id kernel;
    kiln_dtype dtype, dtype2;
    uint32_t local[3];
    int32_t consts[KILN_MAX_CONSTS];
    /* KILN_K_FUSED: the program and the input count the kernel is written
     * from (cl_fused.c); 0 for every other kernel. */
    int32_t program_len, ninputs;
    uint32_t program[16];
} cl_kernel_key;

typedef struct cl_kernel_entry {
    cl_kernel_key key;
    cl_kernel kernel;
} cl_kernel_entry;

/* One captured dispatch; holds its own references on kernel and buffers. */
typedef struct cl_recorded {
    cl_kernel kernel;
    int nargs;
    cl_mem args[KILN_MAX_BINDINGS];
    uint32_t params[KILN_PARAM_BYTES / 4];
    size_t global[3], local[3];
} cl_recorded;

typedef struct cl_queue {
    kiln_queue base;
    cl_platform_id platform;
    cl_device_id device;
    cl_context context;
    cl_command_queue queue;
    uint64_t max_alloc;
    int fp64;                   /* the device computes in double      */
    /* Identify the compiler for the disk cache key. */
    char device_name[128];
    char driver_version[128];
    char platform_version[256];
    char cache_dir[1024];       /* "" = no disk cache                      */

    cl_program_entry *programs;
    size_t nprograms, capprograms;
    cl_kernel_entry *kernels;
    size_t nkernels, capkernels;

    int recording;
    cl_recorded *rec;
    size_t nrec, caprec;

    /* cl_khr_command_buffer replay (cl_queue.c), decided at creation;
     * cmdbuf NULL: replay re-enqueues each captured dispatch. */
    struct cl_cmdbuf_api *cmdbuf;
    int cmdbuf_simultaneous;    /* create with SIMULTANEOUS_USE_KHR        */
    char cmdbuf_why[160];       /* why cmdbuf is NULL                      */
    kiln_queue_recording *live; /* unfreed recordings, newest first        */
} cl_queue;

/** The CL_* name of an OpenCL error code ("CL_OUT_OF_RESOURCES"). */
const char *kiln_cl_error_string(cl_int err);

/** The status a failed OpenCL call maps to (out of memory, lost, other). */
kiln_status kiln_cl_status(cl_int err);

/** Finds OpenCL device number @index (running over all platforms) and its
 *  platform.  Returns CL_SUCCESS, CL_DEVICE_NOT_FOUND or the call's error. */
cl_int kiln_cl_find_device(int index, cl_platform_id *platform,
                           cl_device_id *device);

/** A string property of a device or platform into @buf (always ends). */
void kiln_cl_device_string(cl_device_id dev, cl_device_info what, char *buf,
                           size_t size);
void kiln_cl_platform_string(cl_platform_id plat, cl_platform_info what,
                             char *buf, size_t size);

/** Picks the cache directory (creating it) into q->cache_dir, or "". */
void kiln_cl_cache_init(cl_queue *q);

/** The kernel for @d, built or taken from the caches.  On failure returns
 *  NULL after kiln__error() (KILN_ERROR_KERNEL_BUILD with the build log). */
cl_kernel kiln_cl_get_kernel(cl_queue *q, const kiln_dispatch *d,
                             kiln_status *status);

/** The kernel function for a program of @len words over @ninputs inputs:
 *  kiln_fused (KILN_K_FUSED) to append to kernels/fused.cl, or with
 *  @reduction kiln_fused_reduce (KILN_K_FUSED_REDUCE) to append to
 *  kernels/reduce.cl; OpenCL C (malloc'd), or NULL for a malformed program
 *  or no memory. */
char *kiln_cl_fused_source(int reduction, const uint32_t *program, int len,
                           int ninputs);

/** Releases every cached program and kernel. */
void kiln_cl_release_programs(cl_queue *q);

/** For tests: builds @source with @options through the same build, cache
 *  and error path as the kernels, then drops the program. */
kiln_status kiln_cl_build_program_for_test(kiln_queue *q, const char *source,
                                           const char *options);

/** For tests: 1 if replaying @r enqueues one cl_khr_command_buffer, 0 if it
 *  re-enqueues every dispatch; *@why (if @why) says why not, or "". */
int kiln_cl_recording_uses_command_buffer(const kiln_queue_recording *r,
                                          const char **why);

#endif /* KILN_CL_INTERNAL_H */
