/*
 * cpu_queue.c - the C reference backend: blocks are host memory, kernels
 * are plain C (cpu_kernels*.c), work runs synchronously at dispatch.
 */
#include <stdlib.h>
#include <string.h>

#include "cpu/cpu_kernels.h"
#include "internal.h"

typedef struct cpu_queue {
    kiln_queue base;
    int recording;
    kiln_dispatch *rec;      /* the capture being recorded                */
    size_t nrec, caprec;
} cpu_queue;

struct kiln_queue_recording {
    kiln_dispatch *items;
    size_t count;
};

static kiln_status cpu_block_alloc(kiln_queue *q, size_t size,
                                   kiln_block *out)
{
    (void)q;
    /* 64-byte alignment: doubles and vector loads are always aligned. */
    size_t rounded = (size + 63) / 64 * 64;
    void *p = aligned_alloc(64, rounded);
    if (!p)
        return KILN_ERROR_OUT_OF_DEVICE_MEMORY;
    out->handle = p;
    out->size = size;
    return KILN_OK;
}

static void cpu_block_free(kiln_queue *q, kiln_block *b)
{
    (void)q;
    free(b->handle);
    b->handle = NULL;
}

static kiln_status cpu_write(kiln_queue *q, kiln_block *dst, size_t offset,
                             const void *src, size_t size)
{
    (void)q;
    memcpy((char *)dst->handle + offset, src, size);
    return KILN_OK;
}

static kiln_status cpu_read(kiln_queue *q, kiln_block *src, size_t offset,
                            void *dst, size_t size)
{
    (void)q;
    memcpy(dst, (const char *)src->handle + offset, size);
    return KILN_OK;
}

static kiln_status cpu_copy(kiln_queue *q, kiln_block *src, size_t soff,
                            kiln_block *dst, size_t doff, size_t size)
{
    (void)q;
    memmove((char *)dst->handle + doff, (const char *)src->handle + soff,
            size);
    return KILN_OK;
}

static kiln_status run_now(const kiln_dispatch *d)
{
    void *base[KILN_MAX_BINDINGS] = {0};
    for (int i = 0; i < d->nbindings; i++)
        base[i] = d->bindings[i].block->handle;
    return kiln_cpu_run(d, base);
}

static kiln_status cpu_dispatch(kiln_queue *q, const kiln_dispatch *d)
{
    cpu_queue *c = (cpu_queue *)q;
    if (!c->recording)
        return run_now(d);
    if (c->nrec == c->caprec) {
        size_t cap = c->caprec ? 2 * c->caprec : 16;
        kiln_dispatch *grown = realloc(c->rec, cap * sizeof *grown);
        if (!grown)
            return KILN_ERROR_OUT_OF_HOST_MEMORY;
        c->rec = grown;
        c->caprec = cap;
    }
    c->rec[c->nrec++] = *d;
    return KILN_OK;
}

static kiln_status cpu_record_begin(kiln_queue *q)
{
    cpu_queue *c = (cpu_queue *)q;
    c->recording = 1;
    c->nrec = 0;
    return KILN_OK;
}

static kiln_status cpu_record_end(kiln_queue *q, kiln_queue_recording **out)
{
    cpu_queue *c = (cpu_queue *)q;
    kiln_queue_recording *r = malloc(sizeof *r);
    if (!r)
        return KILN_ERROR_OUT_OF_HOST_MEMORY;
    r->items = c->rec;
    r->count = c->nrec;
    c->rec = NULL;
    c->nrec = c->caprec = 0;
    c->recording = 0;
    *out = r;
    return KILN_OK;
}

static kiln_status cpu_replay(kiln_queue *q, kiln_queue_recording *r)
{
    (void)q;
    for (size_t i = 0; i < r->count; i++) {
        kiln_status s = run_now(&r->items[i]);
        if (s != KILN_OK)
            return s;
    }
    return KILN_OK;
}

static void cpu_recording_free(kiln_queue *q, kiln_queue_recording *r)
{
    (void)q;
    free(r->items);
    free(r);
}

static kiln_status cpu_finish(kiln_queue *q)
{
    (void)q;
    return KILN_OK;
}

static void cpu_destroy(kiln_queue *q)
{
    cpu_queue *c = (cpu_queue *)q;
    free(c->rec);
    free(c);
}

static const kiln_queue_vtable cpu_vtable = {
    .name = "reference",
    .block_alloc = cpu_block_alloc,
    .block_free = cpu_block_free,
    .write = cpu_write,
    .read = cpu_read,
    .copy = cpu_copy,
    .supports = NULL,
    .dispatch = cpu_dispatch,
    .record_begin = cpu_record_begin,
    .record_end = cpu_record_end,
    .replay = cpu_replay,
    .recording_free = cpu_recording_free,
    .finish = cpu_finish,
    .destroy = cpu_destroy,
};

kiln_queue *kiln_cpu_queue_create(kiln_context *ctx,
                                  const kiln_device_info *info)
{
    (void)info;
    cpu_queue *c = calloc(1, sizeof *c);
    if (!c)
        return kiln__error_null(ctx, KILN_ERROR_OUT_OF_HOST_MEMORY,
                                "kiln_context_create: out of host memory");
    c->base.vt = &cpu_vtable;
    c->base.ctx = ctx;
    return &c->base;
}
