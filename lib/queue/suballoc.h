/*
 * suballoc.h - carving tensors out of large device blocks.
 *
 * Backend-neutral: it asks the queue for blocks (KILN_BLOCK_SIZE, or larger
 * for a large tensor) and hands out aligned ranges, first fit, coalescing on
 * free.  Drivers limit the number of allocations (Vulkan's
 * maxMemoryAllocationCount can be 4096) and each one is slow, so one block
 * serves many tensors.  Optional guard bytes around every range catch
 * out-of-bounds writes in tests.
 */
#ifndef KILN_SUBALLOC_H
#define KILN_SUBALLOC_H

#include <stddef.h>
#include <stdint.h>

#include "kiln.h"

#define KILN_BLOCK_SIZE ((size_t)64 << 20)
#define KILN_ALLOC_ALIGN 256 /* >= every device's storage offset alignment */
#define KILN_GUARD_BYTE 0xA5
#define KILN_SPARE_BLOCKS 2  /* empty blocks kept for reuse */

typedef struct kiln_queue kiln_queue;
typedef struct kiln_block kiln_block;
typedef struct kiln_alloc_block kiln_alloc_block;

/** One live range handed out by the sub-allocator. */
typedef struct kiln_allocation {
    kiln_alloc_block *owner;
    kiln_block *block;
    size_t offset;      /* first usable byte within the block              */
    size_t size;        /* usable bytes                                     */
    struct kiln_allocation *prev, *next; /* live list, for guard checks     */
} kiln_allocation;

typedef struct kiln_suballoc {
    kiln_queue *queue;
    size_t block_size;          /* default block size                      */
    size_t max_block;           /* backend limit on one block (0 = none)   */
    size_t guard;               /* guard bytes on each side (aligned)      */
    kiln_alloc_block *blocks;
    kiln_allocation *live;
    uint64_t nblocks, block_bytes, nlive;
    /* Failure injection for tests: when > 0, counts down on each new block
     * and the block that brings it to 0 fails as out of device memory. */
    int64_t fail_countdown;
} kiln_suballoc;

void kiln_suballoc_init(kiln_suballoc *a, kiln_queue *q, size_t block_size,
                        size_t max_block, size_t guard);
/** Frees every block; live allocations become dangling. */
void kiln_suballoc_release(kiln_suballoc *a);

/** A range of @size bytes (> 0), NULL with *status set on failure. */
kiln_allocation *kiln_suballoc_alloc(kiln_suballoc *a, size_t size,
                                     kiln_status *status);
void kiln_suballoc_free(kiln_suballoc *a, kiln_allocation *alloc);

/** Reads back every guard; returns the first damaged allocation or NULL. */
kiln_allocation *kiln_suballoc_check_guards(kiln_suballoc *a,
                                            kiln_status *status);

#endif /* KILN_SUBALLOC_H */
