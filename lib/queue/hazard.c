/* hazard.c - byte-range conflict tracking for barrier placement. */
#include "queue/hazard.h"

#include <stdlib.h>

void kiln_hazard_init(kiln_hazard *h)
{
    h->ranges = NULL;
    h->count = h->capacity = 0;
}

void kiln_hazard_release(kiln_hazard *h)
{
    free(h->ranges);
    kiln_hazard_init(h);
}

void kiln_hazard_reset(kiln_hazard *h) { h->count = 0; }

static int overlaps(const kiln_hazard_range *r, const kiln_binding *b)
{
    return r->block == b->block && r->begin < b->offset + b->size &&
           b->offset < r->end;
}

int kiln_hazard_conflicts(const kiln_hazard *h, const kiln_binding *b, int n)
{
    for (int i = 0; i < n; i++) {
        for (size_t j = 0; j < h->count; j++) {
            const kiln_hazard_range *r = &h->ranges[j];
            int writes_before = r->access & KILN_ACCESS_WRITE;
            int writes_now = b[i].access & KILN_ACCESS_WRITE;
            if ((writes_before || writes_now) && overlaps(r, &b[i]))
                return 1;
        }
    }
    return 0;
}

kiln_status kiln_hazard_add(kiln_hazard *h, const kiln_binding *b, int n)
{
    for (int i = 0; i < n; i++) {
        if (h->count == h->capacity) {
            size_t cap = h->capacity ? 2 * h->capacity : 32;
            kiln_hazard_range *grown = realloc(h->ranges, cap * sizeof *grown);
            if (!grown)
                return KILN_ERROR_OUT_OF_HOST_MEMORY;
            h->ranges = grown;
            h->capacity = cap;
        }
        h->ranges[h->count++] = (kiln_hazard_range){
            b[i].block, b[i].offset, b[i].offset + b[i].size, b[i].access};
    }
    return KILN_OK;
}
