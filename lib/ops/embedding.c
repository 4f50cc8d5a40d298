/*
 * embedding.c - table lookup (KILN_K_GATHER_ROWS) and its gradient
 * (KILN_K_SCATTER_ROWS).
 *
 * The indices live on the device, so a bad index cannot be refused up
 * front: the lookup gives a zero row for it and the gradient drops it.
 * The gradient is a deterministic gather over positions rather than an
 * atomic scatter: each output element scans every index in order, which
 * costs O(V * D * positions) but gives the same bits on every run and
 * every backend order of work-items.  A sort-by-index version (segmented
 * sums) is the upgrade if large vocabularies make this slow.
 */
#include "ops/ops.h"
#include "queue/kernels_norm.h"

static kiln_status check_indices(kiln_context *ctx, const char *call,
                                 const kiln_tensor *indices)
{
    if (indices->dtype != KILN_I32)
        return kiln__error(ctx, KILN_ERROR_DTYPE,
                           "%s: indices must be i32, got %s", call,
                           kiln_dtype_name(indices->dtype));
    if (indices->ndim + 1 > KILN_MAX_DIMS)
        return kiln__error(ctx, KILN_ERROR_SHAPE,
                           "%s: %d-D indices leave no room for the row "
                           "dimension (at most %d dims)", call,
                           indices->ndim, KILN_MAX_DIMS);
    return KILN_OK;
}

/* @t, or a contiguous copy of it in *@copy (the kernels read indices and
 * dy by position). */
static kiln_tensor *dense(kiln_tensor *t, kiln_tensor **copy)
{
    *copy = NULL;
    if (kiln_tensor_is_contiguous(t))
        return t;
    return *copy = kiln_contiguous_copy(t);
}

/* Empty inputs bind nothing (a zero-sized binding is invalid on some
 * backends): the result is all zeros. */
static kiln_tensor *zeros(kiln_tensor *out)
{
    if (kiln_fill(out, 0) == KILN_OK)
        return out;
    kiln_tensor_free(out);
    return NULL;
}

static void rows_setup(kiln_context *ctx, kiln_dispatch *d,
                       kiln_kernel_id kernel, kiln_dtype dtype, int64_t n,
                       int64_t rows, int64_t cols, int64_t positions)
{
    kiln__dispatch_init(ctx, d, kernel, dtype, n);
    kiln_rows_params *p = (kiln_rows_params *)d->params;
    p->n = (int32_t)n;
    p->rows = (int32_t)rows;
    p->cols = (int32_t)cols;
    p->positions = (int32_t)positions;
}

kiln_tensor *kiln_embedding(kiln_tensor *table, kiln_tensor *indices)
{
    const char *call = "kiln_embedding";
    kiln_tensor *args[2] = {table, indices};
    kiln_context *ctx = kiln__args(call, 2, args);
    if (!ctx || check_indices(ctx, call, indices) != KILN_OK)
        return NULL;
    if (table->ndim != 2) {
        char s[160];
        return kiln__error_null(ctx, KILN_ERROR_SHAPE,
                                "%s: table must be [V, D], got %s", call,
                                kiln__shape_string(table->ndim, table->shape,
                                                   s, sizeof s));
    }
    int64_t shape[KILN_MAX_DIMS];
    for (int d = 0; d < indices->ndim; d++)
        shape[d] = indices->shape[d];
    shape[indices->ndim] = table->shape[1];
    kiln_tensor *out = kiln__tensor_alloc(ctx, call, table->dtype,
                                          indices->ndim + 1, shape);
    int64_t n = kiln_tensor_numel(out);
    if (!out || n == 0)
        return out;
    if (table->shape[0] == 0) /* every index is out of range; no table */
        return zeros(out);
    kiln_tensor *copy, *idx = dense(indices, &copy);
    kiln_dispatch d;
    rows_setup(ctx, &d, KILN_K_GATHER_ROWS, table->dtype, n, table->shape[0],
               table->shape[1], kiln_tensor_numel(indices));
    kiln_rows_params *p = (kiln_rows_params *)d.params;
    /* The table is read through its strides: no copy for a view. */
    p->row_stride = (int32_t)table->stride[0];
    p->col_stride = (int32_t)table->stride[1];
    p->off_src = (int32_t)kiln__block_offset(table);
    p->off_out = (int32_t)kiln__block_offset(out);
    kiln_status s = ctx->status;
    if (idx) {
        p->off_idx = (int32_t)kiln__block_offset(idx);
        kiln__bind(&d, table, KILN_ACCESS_READ);
        kiln__bind(&d, idx, KILN_ACCESS_READ);
        kiln__bind(&d, out, KILN_ACCESS_WRITE);
        s = kiln__launch(ctx, call, &d, -1);
    }
    kiln_tensor_free(copy);
    if (s != KILN_OK || !idx) {
        kiln_tensor_free(out);
        return NULL;
    }
    return out;
}

kiln_tensor *kiln_embedding_backward(kiln_tensor *dy, kiln_tensor *indices,
                                     int64_t vocab)
{
    const char *call = "kiln_embedding_backward";
    kiln_tensor *args[2] = {dy, indices};
    kiln_context *ctx = kiln__args(call, 2, args);
    if (!ctx || check_indices(ctx, call, indices) != KILN_OK)
        return NULL;
    if (dy->dtype == KILN_I32)
        return kiln__error_null(ctx, KILN_ERROR_DTYPE,
                                "%s: needs f32 or f64, got i32", call);
    int ok = dy->ndim == indices->ndim + 1;
    for (int d = 0; ok && d < indices->ndim; d++)
        ok = dy->shape[d] == indices->shape[d];
    if (!ok) {
        char a[160], b[160];
        return kiln__error_null(ctx, KILN_ERROR_SHAPE,
                                "%s: dy %s must be the indices' shape %s "
                                "plus a row dimension", call,
                                kiln__shape_string(dy->ndim, dy->shape, a,
                                                   sizeof a),
                                kiln__shape_string(indices->ndim,
                                                   indices->shape, b,
                                                   sizeof b));
    }
    if (vocab < 0 || vocab > KILN_MAX_ELEMENTS)
        return kiln__error_null(ctx, KILN_ERROR_INVALID_ARGUMENT,
                                "%s: vocabulary size %lld", call,
                                (long long)vocab);
    int64_t shape[2] = {vocab, dy->shape[dy->ndim - 1]};
    kiln_tensor *out = kiln__tensor_alloc(ctx, call, dy->dtype, 2, shape);
    int64_t n = kiln_tensor_numel(out);
    if (!out || n == 0)
        return out;
    if (kiln_tensor_numel(indices) == 0) /* nothing to add up */
        return zeros(out);
    kiln_tensor *c1, *c2;
    kiln_tensor *idx = dense(indices, &c1), *g = dense(dy, &c2);
    kiln_status s = ctx->status;
    if (idx && g) {
        kiln_dispatch d;
        rows_setup(ctx, &d, KILN_K_SCATTER_ROWS, dy->dtype, n, vocab,
                   shape[1], kiln_tensor_numel(indices));
        kiln_rows_params *p = (kiln_rows_params *)d.params;
        p->off_src = (int32_t)kiln__block_offset(g);
        p->off_idx = (int32_t)kiln__block_offset(idx);
        p->off_out = (int32_t)kiln__block_offset(out);
        kiln__bind(&d, g, KILN_ACCESS_READ);
        kiln__bind(&d, idx, KILN_ACCESS_READ);
        kiln__bind(&d, out, KILN_ACCESS_WRITE);
        s = kiln__launch(ctx, call, &d, -1);
    }
    kiln_tensor_free(c1);
    kiln_tensor_free(c2);
    if (s != KILN_OK || !idx || !g) {
        kiln_tensor_free(out);
        return NULL;
    }
    return out;
}
