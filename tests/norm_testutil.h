/*
 * norm_testutil.h - helpers shared by test_norm.c and test_shape.c: random
 * inputs, host tensors, and a numerical gradient check on the reference.
 *
 * Gradient check: for a fixed random r of the output's shape, the loss is
 * L(x) = sum(f(x) * r); each differentiable input element gets the central
 * difference (L(x + h) - L(x - h)) / 2h with h = 1e-6, in f64 on the C
 * reference, and the analytic gradient (the op's backward applied to r)
 * is compared with it.  The error printed is
 *   max_rel_err = max_i |analytic_i - numeric_i| / max(max_i |numeric_i|, 1)
 * i.e. relative to the gradient's largest entry, so entries that are 0 up
 * to cancellation (batch norm's dx sums to 0) do not make a relative
 * error of noise.
 */
#ifndef KILN_NORM_TESTUTIL_H
#define KILN_NORM_TESTUTIL_H

#include "op_check.h"

#define GC_STEP 1e-6
#define GC_MAX_IN 6

static harness_rng rng = {2026};

static double *random_data(int64_t n, kiln_dtype t, double lo, double hi)
{
    return op_random_data(&rng, n, t, lo, hi);
}

static op_input input(kiln_dtype t, int ndim, const int64_t *shape,
                      enum view_kind view, double lo, double hi)
{
    return op_random_input(&rng, t, ndim, shape, view, lo, hi);
}

/* A tensor of @dtype from doubles. */
static kiln_tensor *tensor_of(kiln_context *ctx, kiln_dtype dtype, int ndim,
                              const int64_t *shape, const double *v)
{
    op_input in = {.dtype = dtype, .ndim = ndim, .view = VIEW_PLAIN,
                   .data = (double *)v};
    memcpy(in.shape, shape, sizeof(int64_t) * (size_t)ndim);
    return make_input(ctx, &in, 0);
}

/* ---- gradient check ------------------------------------------------------ */

typedef struct gc_input {
    kiln_dtype dtype;           /* F64, or I32 for indices (not varied)  */
    int ndim;
    int64_t shape[KILN_MAX_DIMS];
    double *data;
} gc_input;

typedef kiln_tensor *(*gc_forward)(kiln_tensor **in, const void *arg);
/* Fills grads[i] (NULL where input i has none) given r = dL/dy. */
typedef void (*gc_backward)(kiln_tensor **in, kiln_tensor *r,
                            const void *arg, kiln_tensor **grads);

static kiln_tensor *gc_tensor(kiln_context *ctx, const gc_input *g)
{
    return tensor_of(ctx, g->dtype, g->ndim, g->shape, g->data);
}

/* L = sum(f(x) r); NAN on failure.  *nout receives numel(f(x)). */
static double gc_loss(kiln_context *ctx, int nin, const gc_input *ins,
                      gc_forward f, const void *arg, const double *r,
                      int64_t *nout, int64_t *shape, int *ndim)
{
    kiln_tensor *ts[GC_MAX_IN] = {0};
    for (int i = 0; i < nin; i++)
        ts[i] = gc_tensor(ctx, &ins[i]);
    kiln_tensor *y = f(ts, arg);
    double loss = NAN;
    int64_t n = 0;
    double *v = y ? read_doubles(y, &n) : NULL;
    if (v) {
        loss = 0;
        for (int64_t i = 0; i < n && r; i++)
            loss += v[i] * r[i];
        if (shape)
            *ndim = kiln_tensor_shape(y, shape);
    }
    *nout = n;
    free(v);
    kiln_tensor_free(y);
    for (int i = 0; i < nin; i++)
        kiln_tensor_free(ts[i]);
    return loss;
}

/* Runs the check and prints `gradcheck <name> max_rel_err <value>`;
 * fails the test above @limit. */
static void gradcheck(kiln_context *ref, const char *name, int nin,
                      gc_input *ins, gc_forward f, gc_backward b,
                      const void *arg, double limit)
{
    int64_t nout, oshape[KILN_MAX_DIMS];
    int ondim = 0;
    gc_loss(ref, nin, ins, f, arg, NULL, &nout, oshape, &ondim);
    double *r = random_data(nout, KILN_F64, -1, 1);
    kiln_tensor *ts[GC_MAX_IN] = {0}, *grads[GC_MAX_IN] = {0};
    for (int i = 0; i < nin; i++)
        ts[i] = gc_tensor(ref, &ins[i]);
    kiln_tensor *rt = tensor_of(ref, KILN_F64, ondim, oshape, r);
    b(ts, rt, arg, grads);
    double worst = 0;
    int bad = kiln_status_of(ref) != KILN_OK;
    for (int i = 0; i < nin && !bad; i++) {
        if (ins[i].dtype != KILN_F64)
            continue;
        int64_t n = shape_numel(ins[i].ndim, ins[i].shape), na = -1;
        double *a = grads[i] ? read_doubles(grads[i], &na) : NULL;
        if (!a || na != n) {
            bad = 1;
            free(a);
            break;
        }
        double *num = malloc((size_t)(n ? n : 1) * sizeof *num), big = 1;
        for (int64_t j = 0; j < n; j++) {
            double keep = ins[i].data[j];
            int64_t k;
            ins[i].data[j] = keep + GC_STEP;
            double lp = gc_loss(ref, nin, ins, f, arg, r, &k, NULL, NULL);
            ins[i].data[j] = keep - GC_STEP;
            double lm = gc_loss(ref, nin, ins, f, arg, r, &k, NULL, NULL);
            ins[i].data[j] = keep;
            num[j] = (lp - lm) / (2 * GC_STEP);
            if (fabs(num[j]) > big)
                big = fabs(num[j]);
        }
        for (int64_t j = 0; j < n; j++) {
            double e = fabs(a[j] - num[j]) / big;
            if (!(e <= worst)) /* NaN sticks */
                worst = e;
        }
        free(num);
        free(a);
    }
    printf("gradcheck %s max_rel_err %.3g\n", name, worst);
    CHECK(!bad && worst < limit, "gradcheck %s: error %g (limit %g) %s", name,
          worst, limit, kiln_error_message(ref));
    kiln_clear_error(ref);
    for (int i = 0; i < nin; i++) {
        kiln_tensor_free(ts[i]);
        kiln_tensor_free(grads[i]);
    }
    kiln_tensor_free(rt);
    free(r);
}

/* A gc_input of random f64 data in [lo, hi]. */
static gc_input gc_random(int ndim, const int64_t *shape, double lo,
                          double hi)
{
    gc_input g = {.dtype = KILN_F64, .ndim = ndim};
    memcpy(g.shape, shape, sizeof(int64_t) * (size_t)ndim);
    g.data = random_data(shape_numel(ndim, shape), KILN_F64, lo, hi);
    return g;
}

#endif
