/*
 * test_suballoc.c - the block sub-allocator on the reference queue: first
 * fit, coalescing, large allocations, block release.
 */
#include "harness.h"
#include "internal.h"

int main(void)
{
    kiln_context *ctx = kiln_context_create(
        &(kiln_context_options){.device = "reference"});
    kiln_suballoc a;
    kiln_suballoc_init(&a, ctx->queue, 4096, 0, 0);
    kiln_status s;
    kiln_allocation *x = kiln_suballoc_alloc(&a, 1000, &s);
    kiln_allocation *y = kiln_suballoc_alloc(&a, 1000, &s);
    kiln_allocation *z = kiln_suballoc_alloc(&a, 1000, &s);
    CHECK(x && y && z && a.nblocks == 1, "three ranges in one block");
    CHECK(x->offset % KILN_ALLOC_ALIGN == 0 && y->offset % KILN_ALLOC_ALIGN == 0,
          "ranges are aligned to %d", KILN_ALLOC_ALIGN);
    CHECK(x->block == y->block && y->offset >= x->offset + 1000 &&
              z->offset >= y->offset + 1000, "ranges do not overlap");
    size_t yoff = y->offset;
    kiln_suballoc_free(&a, y);
    kiln_allocation *w = kiln_suballoc_alloc(&a, 900, &s);
    CHECK(w && w->offset == yoff, "first fit reuses the freed hole");
    kiln_suballoc_free(&a, x);
    kiln_suballoc_free(&a, w);
    kiln_allocation *big = kiln_suballoc_alloc(&a, 2048, &s);
    CHECK(big && big->offset == 0 && a.nblocks == 1,
          "neighbouring holes coalesce (offset %zu)", big ? big->offset : 0);
    kiln_allocation *huge = kiln_suballoc_alloc(&a, 10000, &s);
    CHECK(huge && a.nblocks == 2 && huge->owner != big->owner,
          "a range larger than a block gets a block of its own");
    kiln_suballoc_free(&a, huge);
    CHECK(a.nblocks == 2, "an empty block is kept for reuse");
    kiln_allocation *h2 = kiln_suballoc_alloc(&a, 10000, &s);
    kiln_allocation *h3 = kiln_suballoc_alloc(&a, 10000, &s);
    kiln_allocation *h4 = kiln_suballoc_alloc(&a, 10000, &s);
    CHECK(h2 && h3 && h4 && a.nblocks == 4, "a kept block is reused");
    kiln_suballoc_free(&a, h2);
    kiln_suballoc_free(&a, h3);
    kiln_suballoc_free(&a, h4);
    CHECK(a.nblocks == 3, "at most %d empty blocks are kept (%llu blocks)",
          KILN_SPARE_BLOCKS, (unsigned long long)a.nblocks);
    kiln_suballoc_free(&a, big);
    kiln_suballoc_free(&a, z);
    CHECK(a.nblocks == KILN_SPARE_BLOCKS && a.nlive == 0,
          "emptied blocks beyond the spares are returned");
    kiln_suballoc_release(&a);
    kiln_suballoc_init(&a, ctx->queue, 4096, 8192, 0);
    CHECK(kiln_suballoc_alloc(&a, 10000, &s) == NULL &&
              s == KILN_ERROR_OUT_OF_DEVICE_MEMORY,
          "a range past the backend's largest block is refused");
    kiln_suballoc_release(&a);
    kiln_context_destroy(ctx);
    return harness_exit();
}
