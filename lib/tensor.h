/*
 * tensor.h - the tensor object: a strided view on reference-counted storage.
 */
#ifndef KILN_TENSOR_H
#define KILN_TENSOR_H

#include "internal.h"

/** Device memory shared by a tensor and its views. */
typedef struct kiln_storage {
    kiln_context *ctx;          /* holds a reference on the context        */
    kiln_allocation *alloc;     /* NULL after the context was destroyed    */
    int refs;
    struct kiln_storage *next_kept; /* chain of storages a recording keeps */
    uint64_t born_in_capture;       /* ctx->capture_serial when allocated
                                       while recording, else 0          */
} kiln_storage;

struct kiln_tensor {
    kiln_context *ctx;
    kiln_storage *storage;
    kiln_dtype dtype;
    int ndim;
    int64_t shape[KILN_MAX_DIMS];
    int64_t stride[KILN_MAX_DIMS];  /* in elements                          */
    int64_t offset;                 /* in elements from the storage start  */
};

/** Largest element count a tensor may have: kernels index with int32. */
#define KILN_MAX_ELEMENTS ((int64_t)INT32_MAX)

/** Checks that @t is usable: not NULL, its context alive and not in the
 *  middle of being destroyed.  Returns its context or NULL. */
kiln_context *kiln__tensor_ctx(const kiln_tensor *t);

/** A new contiguous tensor; errors name @call. */
kiln_tensor *kiln__tensor_alloc(kiln_context *ctx, const char *call,
                                kiln_dtype dtype, int ndim,
                                const int64_t *shape);

/** A new tensor header sharing @src's storage (the caller sets the view). */
kiln_tensor *kiln__tensor_view(kiln_tensor *src);

/** Product of @ndim entries of @shape. */
int64_t kiln__numel(int ndim, const int64_t *shape);

/** Row-major strides for @shape. */
void kiln__contiguous_strides(int ndim, const int64_t *shape,
                              int64_t *stride);

/** Writes "[2, 3, 4]" into @buf. Returns @buf. */
const char *kiln__shape_string(int ndim, const int64_t *shape, char *buf,
                               size_t size);

/** Element offset of the tensor's first element from its block's start. */
int64_t kiln__block_offset(const kiln_tensor *t);

/** A kiln_binding covering @t's storage with @access. */
kiln_binding kiln__binding(const kiln_tensor *t, kiln_access access);

/** Frees a chain of storages kept alive for a recording (next_kept). */
void kiln__storage_free_chain(kiln_storage *st);

/** Context-level helpers from context.c. */
void kiln__context_retain(kiln_context *ctx);
void kiln__context_release(kiln_context *ctx);

#endif
