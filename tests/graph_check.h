/*
 * graph_check.h - test helpers for graphs: feeding host data, reading
 * results, and central-difference gradient checks of whole graphs.
 */
#ifndef KILN_TEST_GRAPH_CHECK_H
#define KILN_TEST_GRAPH_CHECK_H

#include "harness.h"

/* The dtype for gradient checks: f64 where the device has it. */
static inline kiln_dtype graph_check_dtype(kiln_context *ctx)
{
    return kiln_context_device(ctx)->fp64 ? KILN_F64 : KILN_F32;
}

/* A tensor of @dtype from doubles. */
static inline kiln_tensor *gc_tensor(kiln_context *ctx, kiln_dtype dtype,
                                     int ndim, const int64_t *shape,
                                     const double *v)
{
    kiln_tensor *t = kiln_tensor_new(ctx, dtype, ndim, shape);
    int64_t n = kiln_tensor_numel(t);
    if (!t)
        return NULL;
    void *buf = malloc((size_t)(n ? n : 1) * 8);
    for (int64_t i = 0; i < n; i++) {
        if (dtype == KILN_F64)
            ((double *)buf)[i] = v[i];
        else if (dtype == KILN_F32)
            ((float *)buf)[i] = (float)v[i];
        else
            ((int32_t *)buf)[i] = (int32_t)v[i];
    }
    kiln_tensor_write(t, buf, (size_t)n * kiln_dtype_size(dtype));
    free(buf);
    return t;
}

/* The elements of @t as doubles (malloc'd), *n receives the count. */
static inline double *gc_read(kiln_tensor *t, int64_t *n)
{
    int64_t count = kiln_tensor_numel(t);
    kiln_tensor *c = kiln_contiguous_copy(t);
    size_t es = kiln_dtype_size(kiln_tensor_dtype(t));
    void *buf = malloc((size_t)(count ? count : 1) * es);
    double *out = malloc((size_t)(count ? count : 1) * sizeof *out);
    kiln_tensor_read(c, buf, (size_t)count * es);
    for (int64_t i = 0; i < count; i++) {
        kiln_dtype d = kiln_tensor_dtype(t);
        out[i] = d == KILN_F64   ? ((double *)buf)[i]
                 : d == KILN_F32 ? ((float *)buf)[i]
                                 : ((int32_t *)buf)[i];
    }
    kiln_tensor_free(c);
    free(buf);
    if (n)
        *n = count;
    return out;
}

/* Runs @g fetching one node with @nin feeds; returns its elements. */
static inline double *gc_run1(kiln_graph *g, int nin, kiln_node **inputs,
                              kiln_tensor **values, kiln_node *fetch,
                              int64_t *n)
{
    kiln_feed feeds[16];
    for (int i = 0; i < nin; i++)
        feeds[i] = (kiln_feed){inputs[i], values[i]};
    kiln_tensor *out = NULL;
    if (kiln_graph_run(g, nin, feeds, 1, &fetch, &out) != KILN_OK)
        return NULL;
    double *v = gc_read(out, n);
    kiln_tensor_free(out);
    return v;
}

/*
 * Checks d(loss)/d(inputs[i]) from kiln_g_gradients against central
 * differences of step @h for the first @nin inputs (the rest are fed but
 * not differentiated, e.g. labels).  data[i] holds numel(values[i])
 * doubles and is perturbed in place (restored).  Returns the worst
 * |analytic - numeric| / max(1, |numeric|), or INFINITY on an error.
 */
static inline double graph_gradcheck(kiln_context *ctx, kiln_graph *g,
                                     kiln_node *loss, int nin, int nfeed,
                                     kiln_node **inputs, double **data,
                                     double h)
{
    kiln_node *grads[16];
    if (kiln_g_gradients(loss, nin, inputs, grads) != KILN_OK) {
        printf("  gradients: %s\n", kiln_error_message(ctx));
        return INFINITY;
    }
    kiln_tensor *values[16];
    int64_t shapes[16][8];
    int ndims[16];
    for (int i = 0; i < nfeed; i++) {
        ndims[i] = kiln_node_shape(inputs[i], shapes[i]);
        for (int d = 0; d < ndims[i]; d++)
            if (shapes[i][d] < 0)
                shapes[i][d] = 1; /* free dims: tests feed size 1 here */
        values[i] = gc_tensor(ctx, kiln_node_dtype(inputs[i]), ndims[i],
                              shapes[i], data[i]);
    }
    double worst = 0;
    for (int i = 0; i < nin && worst < INFINITY; i++) {
        int64_t n = 0;
        double *analytic = gc_run1(g, nfeed, inputs, values, grads[i], &n);
        if (!analytic) {
            printf("  run: %s\n", kiln_error_message(ctx));
            worst = INFINITY;
            break;
        }
        if (n != kiln_tensor_numel(values[i])) {
            printf("  gradient %d has %lld elements, its input %lld\n", i,
                   (long long)n, (long long)kiln_tensor_numel(values[i]));
            free(analytic);
            worst = INFINITY;
            break;
        }
        for (int64_t e = 0; e < n; e++) {
            double keep = data[i][e], lp, lm;
            double *r;
            data[i][e] = keep + h;
            kiln_tensor_free(values[i]);
            values[i] = gc_tensor(ctx, kiln_node_dtype(inputs[i]), ndims[i],
                                  shapes[i], data[i]);
            r = gc_run1(g, nfeed, inputs, values, loss, NULL);
            lp = r ? r[0] : NAN;
            free(r);
            data[i][e] = keep - h;
            kiln_tensor_free(values[i]);
            values[i] = gc_tensor(ctx, kiln_node_dtype(inputs[i]), ndims[i],
                                  shapes[i], data[i]);
            r = gc_run1(g, nfeed, inputs, values, loss, NULL);
            lm = r ? r[0] : NAN;
            free(r);
            data[i][e] = keep;
            double numeric = (lp - lm) / (2 * h);
            double err = fabs(analytic[e] - numeric) /
                         fmax(1.0, fabs(numeric));
            if (!(err <= worst))
                worst = isnan(err) ? INFINITY : err;
        }
        kiln_tensor_free(values[i]);
        values[i] = gc_tensor(ctx, kiln_node_dtype(inputs[i]), ndims[i],
                              shapes[i], data[i]);
        free(analytic);
    }
    for (int i = 0; i < nfeed; i++)
        kiln_tensor_free(values[i]);
    return worst;
}

#endif
