/*
 * hazard.h - deciding where a barrier is needed.
 *
 * A queue that runs commands concurrently (Vulkan) must put a barrier
 * between two commands only when the second reads bytes the first wrote
 * (read-after-write) or writes bytes the first read or wrote (write-after-
 * read, write-after-write).  The tracker remembers the byte ranges touched
 * since the last barrier; a command that conflicts with them needs one.
 * Backend-neutral: any queue with explicit barriers can use it.
 */
#ifndef KILN_HAZARD_H
#define KILN_HAZARD_H

#include <stddef.h>

#include "queue/queue.h"

typedef struct kiln_hazard_range {
    const kiln_block *block;
    size_t begin, end;
    kiln_access access;
} kiln_hazard_range;

typedef struct kiln_hazard {
    kiln_hazard_range *ranges;
    size_t count, capacity;
} kiln_hazard;

void kiln_hazard_init(kiln_hazard *h);
void kiln_hazard_release(kiln_hazard *h);
/** Forget every range (after a barrier or a full wait). */
void kiln_hazard_reset(kiln_hazard *h);

/** Does touching @n bindings conflict with what was touched since the last
 *  barrier?  Pure query. */
int kiln_hazard_conflicts(const kiln_hazard *h, const kiln_binding *b, int n);

/** Notes that @n bindings are touched.  Returns KILN_OK or
 *  KILN_ERROR_OUT_OF_HOST_MEMORY. */
kiln_status kiln_hazard_add(kiln_hazard *h, const kiln_binding *b, int n);

#endif
