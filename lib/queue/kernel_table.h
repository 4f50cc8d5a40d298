/*
 * kernel_table.h - what every backend needs to know about each kernel, in
 * one place.
 *
 * Adding a kernel means: an id in queue.h, its parameter block in
 * kernels.h, its three implementations (lib/cpu, kernels/<family>.cl,
 * shaders/<name>.comp) and ONE entry in kernel_table.c.  The GPU backends
 * find the OpenCL function, the SPIR-V module, the local/shared memory
 * need and the dispatch constraints here, so none of them keeps a
 * per-kernel list of its own.  The table holds facts only, no code that
 * runs a kernel: the C reference keeps its own switch (cpu_kernels.c).
 */
#ifndef KILN_KERNEL_TABLE_H
#define KILN_KERNEL_TABLE_H

#include <stdint.h>

#include "queue/queue.h"

typedef struct kiln_kernel_desc {
    /* "unary": the OpenCL function kiln_<name>, the SPIR-V modules
     * "<name>_<T>" (or "<name>_<T>_<U>" with uses_dtype2). */
    const char *name;
    /* kernels/<cl_family>.cl holds the OpenCL function; one program is
     * built per (family, build options). */
    const char *cl_family;
    /* Variants by (T, U), e.g. convert: dtype2 is part of the variant.
     * Other kernels ignore dtype2 (callers normalise it away). */
    int uses_dtype2;
    /* May T be i32 at all (gemm: no)?  Op codes that are float-only
     * inside a kernel (exp, pow) are refused by the op layer. */
    int int_ok;
    /* Bytes of local (OpenCL) / shared (Vulkan) memory the kernel
     * declares for this dispatch; must match the .cl and .comp
     * declarations.  NULL = none. */
    uint64_t (*shared_bytes)(const kiln_dispatch *d);
    /* NULL when the dispatch's tuning constants are usable, else what is
     * wrong with them (a static string).  NULL slot = any constants. */
    const char *(*invalid)(const kiln_dispatch *d);
    /* The dispatch carries a fused program (kernels_fused.h) that is part
     * of the kernel's identity: OpenCL generates the kernel function from
     * it, Vulkan passes it as specialization constants. */
    int has_program;
} kiln_kernel_desc;

/** The description of kernel @id, or NULL for an unknown id. */
const kiln_kernel_desc *kiln_kernel_describe(kiln_kernel_id id);

/** Does the table know kernel @id, with a variant for T = @dtype?  (Whether
 *  the device computes in f64 is the backend's question.) */
int kiln_kernel_has_variant(kiln_kernel_id id, kiln_dtype dtype);

/** @desc->shared_bytes(@d), or 0 when the kernel declares none. */
uint64_t kiln_kernel_shared_bytes(const kiln_kernel_desc *desc,
                                  const kiln_dispatch *d);

/** @desc->invalid(@d), or NULL when the kernel has no constraint. */
const char *kiln_kernel_invalid(const kiln_kernel_desc *desc,
                                const kiln_dispatch *d);

/** The input count of a dispatch of a kernel with a program (its params'
 *  ninputs), 0 for other kernels. */
int kiln_kernel_program_inputs(const kiln_dispatch *d);

#endif /* KILN_KERNEL_TABLE_H */
