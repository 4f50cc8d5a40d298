/*
 * queue.h - the pluggable queue: the one thing a backend implements.
 *
 * A backend provides device memory *blocks* (large buffers; the core
 * sub-allocates tensors out of them, see suballoc.h), transfers, kernel
 * dispatch, recording/replay and waiting.  Everything above this vtable is
 * backend-neutral.
 *
 * Kernel calling convention (shared by the C reference, OpenCL and Vulkan):
 *   - a kernel is named by a kiln_kernel_id and specialised by up to two
 *     dtypes (T = dtype, U = dtype2) and by compile-time constants (workgroup
 *     size and kernel-specific tuning values);
 *   - it binds up to KILN_MAX_BINDINGS whole blocks, binding i at slot i
 *     (OpenCL: kernel argument i; Vulkan: set 0, binding i);
 *   - it receives one 128-byte parameter block (OpenCL: the last kernel
 *     argument, a struct by value; Vulkan: push constants) whose layout per
 *     kernel is in kernels.h.  Element offsets inside the parameter block are
 *     counted from the start of the bound block, so no backend needs
 *     sub-buffers or aligned descriptor offsets;
 *   - the grid is a hint: GPU kernels loop grid-stride, so any grid covers
 *     the work; the C reference ignores it.
 */
#ifndef KILN_QUEUE_H
#define KILN_QUEUE_H

#include <stddef.h>
#include <stdint.h>

#include "kiln.h"

#define KILN_MAX_BINDINGS 8
#define KILN_PARAM_BYTES 128
#define KILN_MAX_CONSTS 4

typedef struct kiln_queue kiln_queue;
typedef struct kiln_context kiln_context;

/** A device memory block, owned by the backend. */
typedef struct kiln_block {
    void *handle;      /* backend object: malloc'd bytes, cl_mem, vk buffer */
    size_t size;
} kiln_block;

typedef enum kiln_kernel_id {
    KILN_K_FILL = 0,   /* T: strided fill with a constant                  */
    KILN_K_CONVERT,    /* T -> U: strided copy with conversion             */
    KILN_K_UNARY,      /* T: out = f(in)                                   */
    KILN_K_BINARY,     /* T: out = f(a, b) with broadcast strides          */
    KILN_K_SELECT,     /* T: out = c ? a : b                               */
    KILN_K_REDUCE,     /* T: sum/max/min over strided inner dims           */
    KILN_K_ARGREDUCE,  /* T -> i32: argmax/argmin                          */
    KILN_K_GEMM,       /* T: C = alpha op(A) op(B) + beta C, batched       */
    /* Op families of the course (parameter blocks in kernels_<family>.h). */
    KILN_K_IM2COL,     /* T: convolution patches to columns                */
    KILN_K_COL2IM,     /* T: columns back to an image, summing overlaps    */
    KILN_K_POOL,       /* T: max (with i32 argmax) / average pooling       */
    KILN_K_POOL_BACKWARD,
    KILN_K_SOFTMAX,    /* T: softmax / log-softmax along an axis           */
    KILN_K_SOFTMAX_BACKWARD,
    KILN_K_SOFTMAX_XENT, /* T: fused cross-entropy loss + gradient         */
    KILN_K_RANDOM,     /* T: Philox4x32-10 uniform/normal/bernoulli/...    */
    KILN_K_LRN,        /* T: local response normalisation                  */
    KILN_K_LRN_BACKWARD,
    KILN_K_GATHER_ROWS,  /* T: embedding lookup                            */
    KILN_K_SCATTER_ROWS, /* T: embedding gradient, deterministic sum       */
    KILN_K_RNN_CELL,     /* T: fused gate math + state update, one step    */
    KILN_K_RNN_CELL_BACKWARD,
    KILN_K_OPTIMIZER,    /* T: fused parameter update (all optimizers)     */
    KILN_K_FUSED,        /* T: generated elementwise chain (kernels_fused.h) */
    KILN_K_FUSED_REDUCE, /* T: the same chain as a reduction's prologue     */
    KILN_KERNEL_COUNT
} kiln_kernel_id;

/** How a kernel touches one binding; drives hazard tracking (barriers). */
typedef enum kiln_access {
    KILN_ACCESS_READ = 1,
    KILN_ACCESS_WRITE = 2,
    KILN_ACCESS_READ_WRITE = 3,
} kiln_access;

typedef struct kiln_binding {
    kiln_block *block;
    size_t offset;     /* byte range the kernel may touch, for barriers   */
    size_t size;
    kiln_access access;
} kiln_binding;

typedef struct kiln_dispatch {
    kiln_kernel_id kernel;
    kiln_dtype dtype;                /* T                                  */
    kiln_dtype dtype2;               /* U (CONVERT only)                   */
    uint32_t local[3];               /* workgroup size                     */
    uint32_t groups[3];              /* workgroup count                    */
    int32_t consts[KILN_MAX_CONSTS]; /* compile-time tuning values         */
    int nbindings;
    kiln_binding bindings[KILN_MAX_BINDINGS];
    uint32_t params[KILN_PARAM_BYTES / 4];
    /* KILN_K_FUSED and KILN_K_FUSED_REDUCE only (kernel table:
     * has_program): the program (kernels_fused.h); part of the kernel's
     * identity, like dtype and consts.  0 elsewhere. */
    int program_len;
    uint32_t program[16];
} kiln_dispatch;

/** A backend's completion marker (opaque to the core). */
typedef struct kiln_queue_event kiln_queue_event;

/** A backend's captured sequence of dispatches (opaque to the core). */
typedef struct kiln_queue_recording kiln_queue_recording;

typedef struct kiln_queue_vtable {
    const char *name;

    /* Memory blocks.  alloc returns KILN_ERROR_OUT_OF_DEVICE_MEMORY when the
     * device is full; the core then reports it with the tensor's shape. */
    kiln_status (*block_alloc)(kiln_queue *q, size_t size, kiln_block *out);
    void (*block_free)(kiln_queue *q, kiln_block *block);

    /* Transfers.  write/read are synchronous with respect to the host: they
     * return when the host memory may be reused / holds the data.  They are
     * ordered after all previously enqueued work. */
    kiln_status (*write)(kiln_queue *q, kiln_block *dst, size_t offset,
                         const void *src, size_t size);
    kiln_status (*read)(kiln_queue *q, kiln_block *src, size_t offset,
                        void *dst, size_t size);
    /* Enqueued device-side copy. */
    kiln_status (*copy)(kiln_queue *q, kiln_block *src, size_t src_offset,
                        kiln_block *dst, size_t dst_offset, size_t size);

    /* Is this kernel available for these dtypes (e.g. GLSL has no double
     * exp)?  @op is the op code inside the kernel (UNARY/BINARY), or -1.
     * NULL slot = everything supported. */
    int (*supports)(kiln_queue *q, kiln_kernel_id kernel, kiln_dtype dtype,
                    int op);

    /* Enqueue one kernel. Errors (a kernel that fails to build) are returned
     * and also described through kiln__error() on the queue's context. */
    kiln_status (*dispatch)(kiln_queue *q, const kiln_dispatch *d);

    /* Recording: between begin and end, dispatch() captures instead of
     * running.  replay() enqueues the capture again. */
    kiln_status (*record_begin)(kiln_queue *q);
    kiln_status (*record_end)(kiln_queue *q, kiln_queue_recording **out);
    kiln_status (*replay)(kiln_queue *q, kiln_queue_recording *rec);
    void (*recording_free)(kiln_queue *q, kiln_queue_recording *rec);

    /* Submit what is pending and wait for all of it. */
    kiln_status (*finish)(kiln_queue *q);

    /* Events (optional; NULL slots make the core use finish()).
     * event_record submits what is pending and returns a marker that
     * completes when all work enqueued so far has; wait blocks the host on
     * it; query returns 1 done, 0 pending, or a negative kiln_status. */
    kiln_status (*event_record)(kiln_queue *q, kiln_queue_event **out);
    kiln_status (*event_wait)(kiln_queue *q, kiln_queue_event *ev);
    int (*event_query)(kiln_queue *q, kiln_queue_event *ev);
    void (*event_free)(kiln_queue *q, kiln_queue_event *ev);

    void (*destroy)(kiln_queue *q);
} kiln_queue_vtable;

/** Common head of every backend's queue object. */
struct kiln_queue {
    const kiln_queue_vtable *vt;
    kiln_context *ctx;                /* for error messages and statistics */
    size_t max_block;                 /* largest block it can bind, 0 = any */
};

/* Backend constructors: open device @info (from the backend's own list) as
 * a queue for @ctx.  On failure they return NULL after kiln__error(). */
kiln_queue *kiln_cpu_queue_create(kiln_context *ctx,
                                  const kiln_device_info *info);
kiln_queue *kiln_cl_queue_create(kiln_context *ctx,
                                 const kiln_device_info *info);
kiln_queue *kiln_vk_queue_create(kiln_context *ctx,
                                 const kiln_device_info *info, int validation);

/* Backend enumerators: append up to @max entries, return how many exist. */
int kiln_cl_list_devices(kiln_device_info *out, int max);
int kiln_vk_list_devices(kiln_device_info *out, int max);

#endif /* KILN_QUEUE_H */
