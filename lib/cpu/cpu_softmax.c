/*
 * cpu_softmax.c - reference semantics of KILN_K_SOFTMAX,
 * KILN_K_SOFTMAX_BACKWARD and KILN_K_SOFTMAX_XENT (parameter blocks in
 * queue/kernels_softmax.h).
 *
 * Everything is computed in double (long double for sums) and rounded once
 * on store, so the reference is more accurate than any device and the
 * tests' tolerances measure only the device's error.
 */
#include <math.h>

#include "cpu/cpu_kernels_internal.h"
#include "queue/kernels_softmax.h"

static int64_t outer_offset(int64_t r, const int32_t *shape,
                            const int32_t *stride)
{
    int64_t off = 0;
    for (int d = KILN_SOFTMAX_OUTER - 1; d >= 0; d--) {
        off += (r % shape[d]) * stride[d];
        r /= shape[d];
    }
    return off;
}

/* max with NaN propagation, as every backend does it. */
static double max_nan(double a, double b)
{
    return a > b || isnan(a) ? a : b;
}

void kiln_cpu_softmax(const kiln_dispatch *d, void *const *base)
{
    const kiln_softmax_params *p = (const void *)d->params;
    for (int64_t r = 0; r < p->nrows; r++) {
        int64_t a = p->off_a + outer_offset(r, p->outer_shape, p->outer_a);
        int64_t o = p->off_out + outer_offset(r, p->outer_shape, p->outer_out);
        double m = -INFINITY;
        for (int64_t j = 0; j < p->n; j++)
            m = max_nan(m, kiln_cpu_load(base[0], d->dtype, a + j * p->axis_a));
        long double s = 0;
        for (int64_t j = 0; j < p->n; j++)
            s += expl((long double)kiln_cpu_load(base[0], d->dtype,
                                                 a + j * p->axis_a) - m);
        for (int64_t j = 0; j < p->n; j++) {
            long double x = kiln_cpu_load(base[0], d->dtype, a + j * p->axis_a);
            long double y = p->log ? x - m - logl(s) : expl(x - m) / s;
            kiln_cpu_store(base[1], d->dtype, o + j * p->axis_out, (double)y);
        }
    }
}

void kiln_cpu_softmax_backward(const kiln_dispatch *d, void *const *base)
{
    const kiln_softmax_params *p = (const void *)d->params;
    for (int64_t r = 0; r < p->nrows; r++) {
        int64_t a = p->off_a + outer_offset(r, p->outer_shape, p->outer_a);
        int64_t b = p->off_b + outer_offset(r, p->outer_shape, p->outer_b);
        int64_t o = p->off_out + outer_offset(r, p->outer_shape, p->outer_out);
        long double s = 0;
        for (int64_t j = 0; j < p->n; j++) {
            long double dy = kiln_cpu_load(base[1], d->dtype, b + j * p->axis_b);
            long double y = kiln_cpu_load(base[0], d->dtype, a + j * p->axis_a);
            s += p->log ? dy : dy * y;
        }
        for (int64_t j = 0; j < p->n; j++) {
            long double dy = kiln_cpu_load(base[1], d->dtype, b + j * p->axis_b);
            long double y = kiln_cpu_load(base[0], d->dtype, a + j * p->axis_a);
            long double dx = p->log ? dy - expl(y) * s : y * (dy - s);
            kiln_cpu_store(base[2], d->dtype, o + j * p->axis_out, (double)dx);
        }
    }
}

/* Categorical draw for one row (SAMPLE mode). */
static int32_t sample_row(const kiln_xent_params *p, const kiln_dispatch *d,
                          const void *x, int64_t xr, double scale, double u)
{
    double m = -INFINITY;
    for (int64_t c = 0; c < p->ncls; c++)
        m = max_nan(m, kiln_cpu_load(x, d->dtype, xr + c * p->x_sc) * scale);
    long double s = 0, acc = 0;
    for (int64_t c = 0; c < p->ncls; c++)
        s += expl(kiln_cpu_load(x, d->dtype, xr + c * p->x_sc) * scale - m);
    long double target = u * s;
    int32_t last = p->ncls - 1;
    for (int64_t c = 0; c < p->ncls; c++) {
        long double e =
            expl(kiln_cpu_load(x, d->dtype, xr + c * p->x_sc) * scale - m);
        if (e > 0)
            last = (int32_t)c;
        acc += e;
        if (target < acc)
            return (int32_t)c;
    }
    return last;
}

void kiln_cpu_softmax_xent(const kiln_dispatch *d, void *const *base)
{
    const kiln_xent_params *p = (const void *)d->params;
    double scale = kiln_cpu_scalar(d->dtype, p->scale_lo, p->scale_hi);
    for (int64_t r = 0; r < p->nrows; r++) {
        int64_t xr = p->off_x + r * p->x_sn, lr = p->off_lab + r * p->lab_sn;
        if (p->mode == KILN_XENT_SAMPLE) {
            double u = kiln_cpu_load(base[2], d->dtype, p->off_loss + r);
            ((int32_t *)base[1])[lr] = sample_row(p, d, base[0], xr, scale, u);
            continue;
        }
        double m = -INFINITY;
        for (int64_t c = 0; c < p->ncls; c++)
            m = max_nan(m, kiln_cpu_load(base[0], d->dtype, xr + c * p->x_sc));
        long double s = 0;
        for (int64_t c = 0; c < p->ncls; c++)
            s += expl(kiln_cpu_load(base[0], d->dtype, xr + c * p->x_sc) - m);
        long double lse = m + logl(s), loss = 0;
        int32_t label = -1;
        int bad = 0;
        if (p->mode == KILN_XENT_INDEX) {
            label = ((const int32_t *)base[1])[lr];
            bad = label < 0 || label >= p->ncls;
            loss = bad ? NAN
                       : lse - kiln_cpu_load(base[0], d->dtype,
                                             xr + label * p->x_sc);
        } else {
            for (int64_t c = 0; c < p->ncls; c++) {
                double t = kiln_cpu_load(base[1], d->dtype, lr + c * p->lab_sc);
                if (t != 0)
                    loss += t * (lse - kiln_cpu_load(base[0], d->dtype,
                                                     xr + c * p->x_sc));
            }
        }
        kiln_cpu_store(base[2], d->dtype, p->off_loss + r, (double)loss);
        if (!p->want_grad)
            continue;
        for (int64_t c = 0; c < p->ncls; c++) {
            long double x = kiln_cpu_load(base[0], d->dtype, xr + c * p->x_sc);
            double t = p->mode == KILN_XENT_INDEX
                           ? (c == label)
                           : kiln_cpu_load(base[1], d->dtype, lr + c * p->lab_sc);
            long double g = bad ? NAN : (expl(x - m) / s - t) * scale;
            kiln_cpu_store(base[3], d->dtype, p->off_grad + r * p->ncls + c,
                           (double)g);
        }
    }
}
