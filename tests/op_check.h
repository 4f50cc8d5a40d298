/*
 * op_check.h - runs one op on the device under test and on the C
 * reference with the same inputs and compares the results.
 *
 * Inputs are made from host data, optionally as non-contiguous views
 * (transposed, strided slice, broadcast), identically on both contexts.
 * Tolerance per element:  |dev - ref| <= abs + rel*|ref| + mag*M
 * where M is the op applied to |inputs| on the reference (so sums and
 * products get a bound proportional to the magnitude they accumulate).
 * NaN passes only where the reference is NaN too.  After every case the
 * guard bytes of both contexts are checked and, on Vulkan, any validation
 * message fails the case.
 */
#ifndef KILN_OP_CHECK_H
#define KILN_OP_CHECK_H

#include "harness.h"

enum view_kind { VIEW_PLAIN, VIEW_TRANSPOSED, VIEW_STRIDED };

typedef struct op_input {
    kiln_dtype dtype;
    int ndim;
    int64_t shape[KILN_MAX_DIMS];  /* logical shape                      */
    enum view_kind view;
    double *data;                  /* base data, owned by the case       */
} op_input;

typedef struct tolerance {
    double abs, rel, mag;
} tolerance;

typedef kiln_tensor *(*op_fn)(kiln_tensor **in, const void *arg);

typedef struct op_stats {
    int cases, failed;
    double max_err;      /* max |dev - ref| / allowed, < 1 passes         */
} op_stats;

static inline int64_t shape_numel(int ndim, const int64_t *s)
{
    int64_t n = 1;
    for (int i = 0; i < ndim; i++)
        n *= s[i];
    return n;
}

/* Base shape holding the view's elements: transposed views swap the last
 * two dims; strided views double the last dim and take every other. */
static inline int base_shape(const op_input *in, int64_t *shape)
{
    memcpy(shape, in->shape, sizeof(int64_t) * (size_t)in->ndim);
    if (in->view == VIEW_TRANSPOSED && in->ndim >= 2) {
        shape[in->ndim - 1] = in->shape[in->ndim - 2];
        shape[in->ndim - 2] = in->shape[in->ndim - 1];
    } else if (in->view == VIEW_STRIDED && in->ndim >= 1) {
        shape[in->ndim - 1] = 2 * in->shape[in->ndim - 1];
    }
    return in->ndim;
}

static inline int64_t base_numel(const op_input *in)
{
    int64_t s[KILN_MAX_DIMS];
    int nd = base_shape(in, s);
    return shape_numel(nd, s);
}

/* @n doubles uniform in [lo, hi) from @r, rounded down for an i32 @t. */
static inline double *op_random_data(harness_rng *r, int64_t n, kiln_dtype t,
                                     double lo, double hi)
{
    double *d = malloc((size_t)(n ? n : 1) * sizeof *d);
    for (int64_t i = 0; i < n; i++) {
        d[i] = harness_uniform(r, lo, hi);
        if (t == KILN_I32)
            d[i] = floor(d[i]);
    }
    return d;
}

/* A random input of @shape seen through @view (plain where the view needs
 * more dims than there are); free its data. */
static inline op_input op_random_input(harness_rng *r, kiln_dtype t, int ndim,
                                       const int64_t *shape,
                                       enum view_kind view, double lo,
                                       double hi)
{
    op_input in = {.dtype = t, .ndim = ndim, .view = view};
    memcpy(in.shape, shape, sizeof(int64_t) * (size_t)ndim);
    if ((view == VIEW_TRANSPOSED && ndim < 2) || ndim == 0)
        in.view = VIEW_PLAIN;
    in.data = op_random_data(r, base_numel(&in), t, lo, hi);
    return in;
}

static inline kiln_tensor *make_input(kiln_context *ctx, const op_input *in,
                               int absolute)
{
    int64_t s[KILN_MAX_DIMS];
    int nd = base_shape(in, s);
    int64_t n = shape_numel(nd, s);
    size_t es = kiln_dtype_size(in->dtype);
    unsigned char *raw = malloc((size_t)(n ? n : 1) * es);
    for (int64_t i = 0; i < n; i++) {
        double v = absolute ? fabs(in->data[i]) : in->data[i];
        if (in->dtype == KILN_F32) {
            float f = (float)v;
            memcpy(raw + i * es, &f, es);
        } else if (in->dtype == KILN_I32) {
            int32_t x = (int32_t)v;
            memcpy(raw + i * es, &x, es);
        } else {
            memcpy(raw + i * es, &v, es);
        }
    }
    kiln_tensor *base = kiln_tensor_from_data(ctx, in->dtype, nd, s, raw,
                                              (size_t)n * es);
    free(raw);
    if (!base || in->view == VIEW_PLAIN || in->ndim == 0)
        return base;
    kiln_tensor *v = in->view == VIEW_TRANSPOSED && in->ndim >= 2
                         ? kiln_transpose(base, -1, -2)
                         : kiln_slice(base, -1, 0, s[nd - 1], 2);
    kiln_tensor_free(base);
    return v;
}

/* Reads any tensor as doubles; NULL on failure. */
static inline double *read_doubles(kiln_tensor *t, int64_t *count)
{
    int64_t n = kiln_tensor_numel(t);
    size_t es = kiln_dtype_size(kiln_tensor_dtype(t));
    unsigned char *raw = malloc((size_t)(n ? n : 1) * es);
    double *out = malloc((size_t)(n ? n : 1) * sizeof *out);
    if (kiln_tensor_read(t, raw, (size_t)n * es) != KILN_OK) {
        free(raw);
        free(out);
        return NULL;
    }
    for (int64_t i = 0; i < n; i++) {
        switch (kiln_tensor_dtype(t)) {
        case KILN_F32: { float f; memcpy(&f, raw + i * es, 4); out[i] = f; break; }
        case KILN_I32: { int32_t x; memcpy(&x, raw + i * es, 4); out[i] = x; break; }
        case KILN_F64: memcpy(&out[i], raw + i * es, 8); break;
        }
    }
    free(raw);
    *count = n;
    return out;
}

/* Runs @fn on @nin inputs in @ctx; returns the output's values. */
static inline double *run_on(kiln_context *ctx, int nin, const op_input *ins,
                      op_fn fn, const void *arg, int absolute, int64_t *n,
                      int64_t *shape, int *ndim, kiln_dtype *dtype)
{
    kiln_tensor *ts[8] = {0};
    for (int i = 0; i < nin; i++)
        ts[i] = make_input(ctx, &ins[i], absolute);
    kiln_tensor *out = fn(ts, arg);
    double *vals = NULL;
    if (out) {
        *ndim = kiln_tensor_shape(out, shape);
        *dtype = kiln_tensor_dtype(out);
        vals = read_doubles(out, n);
    }
    kiln_tensor_free(out);
    for (int i = 0; i < nin; i++)
        kiln_tensor_free(ts[i]);
    return vals;
}

static inline void check_op(op_stats *st, kiln_context *dev, kiln_context *ref,
                     const char *name, int nin, const op_input *ins, op_fn fn,
                     const void *arg, tolerance tol)
{
    int64_t nd = 0, nr = 0, sd[KILN_MAX_DIMS], sr[KILN_MAX_DIMS];
    int dd = 0, dr = 0;
    kiln_dtype td = KILN_F32, tr = KILN_F32;
    st->cases++;
    harness_checks++;
    double *r = run_on(ref, nin, ins, fn, arg, 0, &nr, sr, &dr, &tr);
    double *d = run_on(dev, nin, ins, fn, arg, 0, &nd, sd, &dd, &td);
    double *m = NULL;
    int ok = 1;
    if (!r || !d) {
        harness_fail("%s: %s failed: %s", name, !r ? "reference" : "device",
                     kiln_error_message(!r ? ref : dev));
        kiln_clear_error(ref);
        kiln_clear_error(dev);
        ok = 0;
        goto done;
    }
    if (dd != dr || td != tr || nd != nr ||
        memcmp(sd, sr, sizeof(int64_t) * (size_t)dd) != 0) {
        harness_fail("%s: device result has another shape or dtype", name);
        ok = 0;
        goto done;
    }
    if (tol.mag > 0) {
        int64_t nm;
        int dm;
        int64_t sm[KILN_MAX_DIMS];
        kiln_dtype tm;
        m = run_on(ref, nin, ins, fn, arg, 1, &nm, sm, &dm, &tm);
    }
    for (int64_t i = 0; i < nr && ok; i++) {
        double allowed = tol.abs + tol.rel * fabs(r[i]) +
                         (m ? tol.mag * fabs(m[i]) : 0);
        if (d[i] == r[i]) /* also equal infinities */
            continue;
        if (isnan(r[i]) || isnan(d[i])) {
            if (!(isnan(r[i]) && isnan(d[i]))) {
                harness_fail("%s: element %lld: device %.9g, reference %.9g",
                             name, (long long)i, d[i], r[i]);
                ok = 0;
            }
            continue;
        }
        double err = fabs(d[i] - r[i]);
        if (err > allowed || (allowed == 0 && err != 0)) {
            harness_fail("%s: element %lld: device %.17g, reference %.17g "
                         "(|diff| %.3g > allowed %.3g)", name, (long long)i,
                         d[i], r[i], err, allowed);
            ok = 0;
        } else if (allowed > 0 && err / allowed > st->max_err) {
            st->max_err = err / allowed;
        }
    }
done:
    if (kiln_check_guards(dev) != KILN_OK || kiln_check_guards(ref) != KILN_OK) {
        harness_fail("%s: guard bytes damaged: %s %s", name,
                     kiln_error_message(dev), kiln_error_message(ref));
        kiln_clear_error(dev);
        kiln_clear_error(ref);
        ok = 0;
    }
    if (kiln_validation_message_count(dev) != 0) {
        harness_fail("%s: Vulkan validation: %s", name,
                     kiln_error_message(dev));
        ok = 0;
    }
    if (!ok)
        st->failed++;
    free(r);
    free(d);
    free(m);
}

/* With --device reference the comparison is the reference against itself:
 * such a run still checks guard bytes, error paths and (under the
 * sanitizers) memory safety, but the reference's own values are checked by
 * hand-computed examples (test_api), PyTorch fixtures (test_fixtures) and
 * the gradient checks. */
static inline void report(const char *group, const op_stats *st)
{
    printf("%-5s %-28s %4d cases, %d failed, worst error %.2f of tolerance\n",
           st->failed ? "FAIL" : "ok", group, st->cases, st->failed,
           st->max_err);
}

#endif
