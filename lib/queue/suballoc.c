/*
 * suballoc.c - first-fit sub-allocation of device blocks, with guards.
 */
#include "queue/suballoc.h"

#include <stdlib.h>
#include <string.h>

#include "queue/queue.h"

/* A hole in a block: [offset, offset + size). Kept sorted by offset. */
typedef struct kiln_hole {
    size_t offset, size;
    struct kiln_hole *next;
} kiln_hole;

struct kiln_alloc_block {
    kiln_block block;
    kiln_hole *holes;
    size_t used;
    struct kiln_alloc_block *next;
};

static size_t align_up(size_t v, size_t a) { return (v + a - 1) / a * a; }

void kiln_suballoc_init(kiln_suballoc *a, kiln_queue *q, size_t block_size,
                        size_t max_block, size_t guard)
{
    memset(a, 0, sizeof *a);
    a->queue = q;
    a->block_size = block_size ? block_size : KILN_BLOCK_SIZE;
    a->max_block = max_block;
    if (a->max_block && a->block_size > a->max_block)
        a->block_size = a->max_block / KILN_ALLOC_ALIGN * KILN_ALLOC_ALIGN;
    a->guard = guard ? align_up(guard, KILN_ALLOC_ALIGN) : 0;
}

static void free_holes(kiln_hole *h)
{
    while (h) {
        kiln_hole *next = h->next;
        free(h);
        h = next;
    }
}

static void block_destroy(kiln_suballoc *a, kiln_alloc_block *b)
{
    a->queue->vt->block_free(a->queue, &b->block);
    a->nblocks--;
    a->block_bytes -= b->block.size;
    free_holes(b->holes);
    free(b);
}

void kiln_suballoc_release(kiln_suballoc *a)
{
    kiln_alloc_block *b = a->blocks;
    while (b) {
        kiln_alloc_block *next = b->next;
        block_destroy(a, b);
        b = next;
    }
    a->blocks = NULL;
    kiln_allocation *l = a->live;
    while (l) {
        kiln_allocation *next = l->next;
        free(l);
        l = next;
    }
    a->live = NULL;
    a->nlive = 0;
}

static kiln_alloc_block *block_create(kiln_suballoc *a, size_t size,
                                      kiln_status *status)
{
    kiln_alloc_block *b = calloc(1, sizeof *b);
    kiln_hole *h = calloc(1, sizeof *h);
    if (!b || !h) {
        free(b);
        free(h);
        *status = KILN_ERROR_OUT_OF_HOST_MEMORY;
        return NULL;
    }
    if (a->fail_countdown > 0 && --a->fail_countdown == 0)
        *status = KILN_ERROR_OUT_OF_DEVICE_MEMORY;
    else
        *status = a->queue->vt->block_alloc(a->queue, size, &b->block);
    if (*status != KILN_OK) {
        free(b);
        free(h);
        return NULL;
    }
    h->offset = 0;
    h->size = size;
    b->holes = h;
    b->next = a->blocks;
    a->blocks = b;
    a->nblocks++;
    a->block_bytes += size;
    return b;
}

/* Takes @size bytes from the first hole that fits; returns the offset or
 * SIZE_MAX. */
static size_t take_from_holes(kiln_alloc_block *b, size_t size)
{
    for (kiln_hole **pp = &b->holes; *pp; pp = &(*pp)->next) {
        kiln_hole *h = *pp;
        if (h->size < size)
            continue;
        size_t off = h->offset;
        h->offset += size;
        h->size -= size;
        if (h->size == 0) {
            *pp = h->next;
            free(h);
        }
        b->used += size;
        return off;
    }
    return SIZE_MAX;
}

/* Returns [offset, offset+size) to the block, merging with neighbours.
 * Returns 0 only when the host is out of memory for a new hole, in which
 * case the bytes are leaked inside the block (never handed out twice). */
static int give_back(kiln_alloc_block *b, size_t offset, size_t size)
{
    kiln_hole **pp = &b->holes;
    while (*pp && (*pp)->offset < offset)
        pp = &(*pp)->next;
    kiln_hole *next = *pp;
    /* The hole before, if any, is the one whose next pointer is pp. */
    kiln_hole *prev = NULL;
    for (kiln_hole *h = b->holes; h && h != next; h = h->next)
        prev = h;
    b->used -= size;
    if (prev && prev->offset + prev->size == offset) {
        prev->size += size;
        if (next && prev->offset + prev->size == next->offset) {
            prev->size += next->size;
            prev->next = next->next;
            free(next);
        }
        return 1;
    }
    if (next && offset + size == next->offset) {
        next->offset = offset;
        next->size += size;
        return 1;
    }
    kiln_hole *h = malloc(sizeof *h);
    if (!h)
        return 0;
    h->offset = offset;
    h->size = size;
    h->next = next;
    *pp = h;
    return 1;
}

static kiln_status write_guards(kiln_suballoc *a, kiln_allocation *al)
{
    if (!a->guard)
        return KILN_OK;
    unsigned char *pattern = malloc(a->guard);
    if (!pattern)
        return KILN_ERROR_OUT_OF_HOST_MEMORY;
    memset(pattern, KILN_GUARD_BYTE, a->guard);
    kiln_status s = a->queue->vt->write(a->queue, al->block,
                                        al->offset - a->guard, pattern,
                                        a->guard);
    if (s == KILN_OK)
        s = a->queue->vt->write(a->queue, al->block, al->offset + al->size,
                                pattern, a->guard);
    free(pattern);
    return s;
}

kiln_allocation *kiln_suballoc_alloc(kiln_suballoc *a, size_t size,
                                     kiln_status *status)
{
    size_t payload = align_up(size ? size : 1, KILN_ALLOC_ALIGN);
    size_t need = payload + 2 * a->guard;
    if (a->max_block && need > a->max_block) {
        *status = KILN_ERROR_OUT_OF_DEVICE_MEMORY;
        return NULL;
    }
    kiln_allocation *al = calloc(1, sizeof *al);
    if (!al) {
        *status = KILN_ERROR_OUT_OF_HOST_MEMORY;
        return NULL;
    }
    size_t off = SIZE_MAX;
    kiln_alloc_block *b;
    for (b = a->blocks; b; b = b->next) {
        off = take_from_holes(b, need);
        if (off != SIZE_MAX)
            break;
    }
    if (!b) {
        size_t bsize = need > a->block_size ? need : a->block_size;
        b = block_create(a, bsize, status);
        if (!b && bsize > need) /* a smaller block may still fit */
            b = block_create(a, need, status);
        if (!b) {
            free(al);
            return NULL;
        }
        off = take_from_holes(b, need);
    }
    al->owner = b;
    al->block = &b->block;
    al->offset = off + a->guard;
    al->size = size;
    al->next = a->live;
    if (a->live)
        a->live->prev = al;
    a->live = al;
    a->nlive++;
    *status = write_guards(a, al);
    if (*status != KILN_OK) {
        kiln_suballoc_free(a, al);
        return NULL;
    }
    return al;
}

static int count_empty(const kiln_suballoc *a)
{
    int n = 0;
    for (const kiln_alloc_block *b = a->blocks; b; b = b->next)
        n += b->used == 0;
    return n;
}

void kiln_suballoc_free(kiln_suballoc *a, kiln_allocation *al)
{
    if (!al)
        return;
    kiln_alloc_block *b = al->owner;
    size_t need = align_up(al->size ? al->size : 1, KILN_ALLOC_ALIGN) +
                  2 * a->guard;
    give_back(b, al->offset - a->guard, need);
    if (al->prev)
        al->prev->next = al->next;
    else
        a->live = al->next;
    if (al->next)
        al->next->prev = al->prev;
    a->nlive--;
    free(al);
    /* Keep up to KILN_SPARE_BLOCKS empty blocks: a training loop frees and
     * allocates the same sizes every step, and a block from the driver
     * costs an allocation plus first-touch page faults each time.  Give
     * back the rest. */
    if (b->used == 0 && count_empty(a) > KILN_SPARE_BLOCKS) {
        a->queue->vt->finish(a->queue); /* the device may still use it */
        kiln_alloc_block **pp = &a->blocks;
        while (*pp != b)
            pp = &(*pp)->next;
        *pp = b->next;
        block_destroy(a, b);
    }
}

kiln_allocation *kiln_suballoc_check_guards(kiln_suballoc *a,
                                            kiln_status *status)
{
    *status = KILN_OK;
    if (!a->guard)
        return NULL;
    unsigned char *buf = malloc(a->guard);
    if (!buf) {
        *status = KILN_ERROR_OUT_OF_HOST_MEMORY;
        return NULL;
    }
    for (kiln_allocation *al = a->live; al; al = al->next) {
        size_t where[2] = {al->offset - a->guard, al->offset + al->size};
        for (int side = 0; side < 2; side++) {
            *status = a->queue->vt->read(a->queue, al->block, where[side],
                                         buf, a->guard);
            if (*status != KILN_OK) {
                free(buf);
                return al;
            }
            for (size_t i = 0; i < a->guard; i++) {
                if (buf[i] != KILN_GUARD_BYTE) {
                    *status = KILN_ERROR_CORRUPT;
                    free(buf);
                    return al;
                }
            }
        }
    }
    free(buf);
    return NULL;
}
