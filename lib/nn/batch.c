/*
 * batch.c - data sets to device batches for fit, evaluate and predict:
 * checking a data set against the model, staging a batch (samples picked
 * by index, labels, regression or one-hot targets) onto the device, the
 * feeds of a batch, and the small per-step device buffers fit reads once
 * per epoch.
 */
#include <stdlib.h>
#include <string.h>

#include "nn/model.h"

int64_t model__dataset_sample_numel(const kiln_dataset *d)
{
    int64_t count = 1;
    for (int i = 0; i < d->ndim && i < 4; i++)
        count *= d->shape[i];
    return count;
}

static int64_t input_numel(const kiln_model *m)
{
    int64_t count = 1;
    for (int i = 0; i < m->in_ndim; i++)
        count *= m->in_shape[i];
    return count;
}

/* Classes of the model's output for labels: C of [N, C] logits, 2 for a
 * single output. */
int64_t model__output_classes(const kiln_model *m)
{
    int64_t count = model__sample_numel(model__output(m));
    return count == 1 ? 2 : count;
}

kiln_status model__check_dataset(kiln_model *m, const char *call,
                                 const char *what, const kiln_dataset *d,
                                 int need_answers)
{
    kiln_context *ctx = m->ctx;
    if (!d)
        return kiln__error(ctx, KILN_ERROR_INVALID_ARGUMENT,
                           "%s: the %s data set is NULL", call, what);
    if (d->count < 1 || !d->x || d->ndim < 1 || d->ndim > 4)
        return kiln__error(ctx, KILN_ERROR_INVALID_ARGUMENT,
                           "%s: the %s data set has %lld samples, %d dims "
                           "and %s x (needs samples, 1 to 4 dims, x)", call,
                           what, (long long)d->count, d->ndim,
                           d->x ? "an" : "no");
    char a[96], b[96];
    if (model__dataset_sample_numel(d) != input_numel(m))
        return kiln__error(ctx, KILN_ERROR_SHAPE,
                           "%s: %s samples are %s (%lld values), the model "
                           "takes %s (%lld)", call, what,
                           kiln__shape_string(d->ndim, d->shape, a, sizeof a),
                           (long long)model__dataset_sample_numel(d),
                           kiln__shape_string(m->in_ndim, m->in_shape, b,
                                              sizeof b),
                           (long long)input_numel(m));
    if (!need_answers)
        return KILN_OK;
    int64_t outputs = model__sample_numel(model__output(m));
    int use_targets = m->loss != KILN_LOSS_SOFTMAX_XENT && d->targets;
    if (use_targets && d->target_dim != outputs)
        return kiln__error(ctx, KILN_ERROR_SHAPE,
                           "%s: %s targets have %lld values per sample, the "
                           "model's output %lld", call, what,
                           (long long)d->target_dim, (long long)outputs);
    if (use_targets)
        return KILN_OK;
    if (!d->y)
        return kiln__error(ctx, KILN_ERROR_INVALID_ARGUMENT,
                           "%s: the %s data set has no %s", call, what,
                           m->loss == KILN_LOSS_SOFTMAX_XENT
                               ? "labels (y)"
                               : "targets and no labels (y)");
    /* Labels as class indices (softmax; one-hot targets) must fit the
     * output; a single output takes the label value as its target. */
    if (m->loss == KILN_LOSS_SOFTMAX_XENT || outputs > 1)
        for (int64_t i = 0; i < d->count; i++)
            if (d->y[i] < 0 || d->y[i] >= outputs)
                return kiln__error(ctx, KILN_ERROR_INVALID_ARGUMENT,
                                   "%s: label %d of %s sample %lld is "
                                   "outside the model's %lld classes", call,
                                   (int)d->y[i], what, (long long)i,
                                   (long long)outputs);
    return KILN_OK;
}

static void *grow(void **buf, size_t *cap, size_t bytes)
{
    if (bytes > *cap) {
        void *p = realloc(*buf, bytes);
        if (!p)
            return NULL;
        *buf = p;
        *cap = bytes;
    }
    return *buf;
}

/* Stores @v as element @i of a host array of @dtype. */
static void put(void *buf, kiln_dtype dtype, size_t i, double v)
{
    if (dtype == KILN_F64)
        ((double *)buf)[i] = v;
    else
        ((float *)buf)[i] = (float)v;
}

void model__batch_free(model_batch *b)
{
    kiln_tensor_free(b->x);
    kiln_tensor_free(b->labels);
    kiln_tensor_free(b->targets);
    memset(b, 0, sizeof *b);
}

kiln_status model__stage(kiln_model *m, const char *call,
                         const kiln_dataset *d, const int64_t *idx,
                         int64_t start, int64_t n, int want_labels,
                         int want_targets, model_batch *b)
{
    memset(b, 0, sizeof *b);
    b->n = n;
    size_t es = kiln_dtype_size(m->dtype);
    size_t size = (size_t)input_numel(m);
    int64_t outputs = model__sample_numel(model__output(m));
    size_t tdim = (size_t)outputs;
    if (!grow(&m->stage_x, &m->stage_x_cap, (size_t)n * size * es) ||
        (want_labels && d->y &&
         !grow((void **)&m->stage_y, &m->stage_y_cap,
               (size_t)n * sizeof(int32_t))) ||
        (want_targets &&
         !grow(&m->stage_t, &m->stage_t_cap, (size_t)n * tdim * es)))
        return kiln__error(m->ctx, KILN_ERROR_OUT_OF_HOST_MEMORY,
                           "%s: out of host memory for a batch of %lld", call,
                           (long long)n);
    for (int64_t i = 0; i < n; i++) {
        size_t s = (size_t)(idx ? idx[i] : start + i);
        const float *src = d->x + s * size;
        if (m->dtype == KILN_F32)
            memcpy((float *)m->stage_x + (size_t)i * size, src,
                   size * sizeof *src);
        else
            for (size_t k = 0; k < size; k++)
                put(m->stage_x, m->dtype, (size_t)i * size + k, src[k]);
        if (want_labels && d->y)
            m->stage_y[i] = d->y[s];
        if (!want_targets)
            continue;
        size_t at = (size_t)i * tdim;
        if (d->targets)
            for (size_t k = 0; k < tdim; k++)
                put(m->stage_t, m->dtype, at + k, d->targets[s * tdim + k]);
        else if (tdim == 1)
            put(m->stage_t, m->dtype, at, d->y[s]);
        else /* one-hot */
            for (size_t k = 0; k < tdim; k++)
                put(m->stage_t, m->dtype, at + k, (int64_t)k == d->y[s]);
    }
    int64_t shape[KILN_MAX_DIMS] = {n};
    memcpy(shape + 1, m->in_shape, sizeof(int64_t) * (size_t)m->in_ndim);
    b->x = kiln_tensor_from_data(m->ctx, m->dtype, m->in_ndim + 1, shape,
                                 m->stage_x, (size_t)n * size * es);
    if (b->x && want_labels && d->y)
        b->labels = kiln_tensor_from_data(m->ctx, KILN_I32, 1, &n, m->stage_y,
                                          (size_t)n * sizeof(int32_t));
    if (b->x && want_targets) {
        int64_t tshape[KILN_MAX_DIMS];
        int nd = kiln_node_shape(m->targets, tshape);
        tshape[0] = n;
        b->targets = kiln_tensor_from_data(m->ctx, m->dtype, nd, tshape,
                                           m->stage_t, (size_t)n * tdim * es);
    }
    if (!b->x || (want_labels && d->y && !b->labels) ||
        (want_targets && !b->targets)) {
        model__batch_free(b);
        return kiln_status_of(m->ctx);
    }
    return KILN_OK;
}

/* The feeds of a batch: x, and labels/targets where staged. */
int model__batch_feeds(const kiln_model *m, const model_batch *b,
                       kiln_feed *feeds)
{
    int n = 0;
    feeds[n++] = (kiln_feed){m->input, b->x};
    if (b->labels)
        feeds[n++] = (kiln_feed){m->labels, b->labels};
    if (b->targets)
        feeds[n++] = (kiln_feed){m->targets, b->targets};
    return n;
}

/* Copies the 0-D or [n] value @v into dst[at .. at+n) of a 1-D @dst. */
kiln_status model__store_at(kiln_tensor *dst, int64_t at, kiln_tensor *v)
{
    int64_t n = kiln_tensor_ndim(v) == 0 ? 1 : kiln_tensor_dim(v, 0);
    kiln_tensor *slot = kiln_slice(dst, 0, at, at + n, 1);
    kiln_tensor *flat = kiln_reshape(v, 1, &n);
    kiln_status st = slot && flat ? kiln_copy(slot, flat)
                                  : kiln_status_of(kiln_tensor_context(dst));
    kiln_tensor_free(slot);
    kiln_tensor_free(flat);
    return st;
}

/* Reads elements [from, to) of a 1-D device buffer as doubles into @out. */
kiln_status model__read_range(kiln_tensor *buf, int64_t from, int64_t to,
                              double *out)
{
    if (to <= from)
        return KILN_OK;
    kiln_dtype dt = kiln_tensor_dtype(buf);
    size_t es = kiln_dtype_size(dt);
    size_t n = (size_t)(to - from);
    void *host = malloc(n * es);
    kiln_tensor *part = kiln_slice(buf, 0, from, to, 1);
    kiln_status st = host && part ? kiln_tensor_read(part, host, n * es)
                                  : KILN_ERROR_OUT_OF_HOST_MEMORY;
    if (!host && part)
        st = kiln__error(kiln_tensor_context(buf),
                         KILN_ERROR_OUT_OF_HOST_MEMORY,
                         "kiln_model_fit: out of host memory");
    else if (!part)
        st = kiln_status_of(kiln_tensor_context(buf));
    for (size_t i = 0; st == KILN_OK && i < n; i++)
        out[i] = dt == KILN_F64   ? ((double *)host)[i]
                 : dt == KILN_F32 ? ((float *)host)[i]
                                  : ((int32_t *)host)[i];
    free(host);
    kiln_tensor_free(part);
    return st;
}

kiln_tensor *model__new_buffer(kiln_context *ctx, kiln_dtype dtype, int64_t n)
{
    return kiln_tensor_new(ctx, dtype, 1, &n);
}
