/*
 * cpu_kernels.h - the C reference implementation of every kernel.
 *
 * These functions define what each kernel computes; the OpenCL and Vulkan
 * kernels are tested against them.  They take the same parameter blocks
 * (queue/kernels.h) and the bound blocks' host addresses.
 */
#ifndef KILN_CPU_KERNELS_H
#define KILN_CPU_KERNELS_H

#include "queue/queue.h"

/** Runs @d with binding i's block starting at host address @base[i]. */
kiln_status kiln_cpu_run(const kiln_dispatch *d, void *const *base);

#endif
