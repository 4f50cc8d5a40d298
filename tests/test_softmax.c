/*
 * test_softmax.c - softmax, log-softmax, their backward passes and the
 * losses (softmax / sigmoid cross-entropy, MSE, L1/L2 penalties) on the
 * device under test against the C reference: f32 and f64, random shapes
 * with odd sizes and size-1 dims, axis -1 / 0 / middle, non-contiguous
 * views.  Also the course's worked example, very large logits, argument
 * errors, and f64 gradient checks on the reference (printed as
 * `gradcheck <op> max_rel_err <value>`, the error being
 * max |analytic - numeric| / max |numeric| over the input's elements).
 *
 * usage: test_softmax --device SPEC
 */
#include "op_check.h"

static harness_rng rng = {3003};
static kiln_context *dev, *ref;

static const kiln_dtype fdtypes[] = {KILN_F32, KILN_F64};
static size_t nfdtypes = 2; /* 1 when the device has no fp64 */

/* f32 devices sum exp() in float and use their own exp/log (a few ulp);
 * the reference works in long double and rounds once. */
static tolerance tol_for(kiln_dtype t)
{
    return t == KILN_F32 ? (tolerance){2e-6, 2e-5, 0}
                         : (tolerance){1e-14, 1e-12, 0};
}

static op_input input(kiln_dtype t, int ndim, const int64_t *shape,
                      enum view_kind view, double lo, double hi)
{
    return op_random_input(&rng, t, ndim, shape, view, lo, hi);
}

static void random_shape(int *ndim, int64_t *shape)
{
    *ndim = harness_int(&rng, 1, 4);
    for (int i = 0; i < *ndim; i++)
        shape[i] = harness_int(&rng, 0, 4) == 0 ? 1 : harness_int(&rng, 2, 37);
}

static void health(const char *what)
{
    CHECK(kiln_check_guards(dev) == KILN_OK, "%s: guards: %s", what,
          kiln_error_message(dev));
    CHECK(kiln_validation_message_count(dev) == 0, "%s: validation: %s",
          what, kiln_error_message(dev));
    kiln_clear_error(dev);
}

/* ---- softmax and log-softmax ------------------------------------------------ */

typedef struct sm_arg {
    int axis, log, backward;
} sm_arg;

static kiln_tensor *call_softmax(kiln_tensor **in, const void *arg)
{
    const sm_arg *a = arg;
    if (a->backward)
        return a->log ? kiln_log_softmax_backward(in[0], in[1], a->axis)
                      : kiln_softmax_backward(in[0], in[1], a->axis);
    return a->log ? kiln_log_softmax(in[0], a->axis)
                  : kiln_softmax(in[0], a->axis);
}

static void test_softmax_random(void)
{
    for (size_t ti = 0; ti < nfdtypes; ti++) {
        kiln_dtype t = fdtypes[ti];
        op_stats st = {0};
        for (int c = 0; c < 16; c++) {
            int ndim;
            int64_t shape[KILN_MAX_DIMS];
            random_shape(&ndim, shape);
            if (c == 14) { /* a long row: many threads per group */
                ndim = 2;
                shape[0] = 3;
                shape[1] = 5000;
            } else if (c == 15) { /* 6-D, many short rows */
                ndim = 6;
                int64_t s6[6] = {2, 3, 1, 2, 5, 3};
                memcpy(shape, s6, sizeof s6);
            }
            int axis = c % 3 == 0 ? -1 : c % 3 == 1 ? 0 : ndim / 2;
            enum view_kind v = (enum view_kind)(c % 3);
            op_input in[2] = {input(t, ndim, shape, v, -8, 8),
                              input(t, ndim, shape, (enum view_kind)((c + 1) % 3),
                                    -1, 1)};
            for (int log = 0; log < 2; log++) {
                for (int bw = 0; bw < 2; bw++) {
                    sm_arg a = {axis, log, bw};
                    char name[96];
                    snprintf(name, sizeof name, "%s%s %s case %d axis %d",
                             log ? "log_softmax" : "softmax",
                             bw ? "_backward" : "", kiln_dtype_name(t), c,
                             axis);
                    /* backward: in[0] plays y (any values do: the kernel
                     * is the formula), in[1] dy. */
                    if (bw && !log)
                        for (int64_t i = 0; i < base_numel(&in[0]); i++)
                            in[0].data[i] = fabs(in[0].data[i]) / 8;
                    check_op(&st, dev, ref, name, 1 + bw, in, call_softmax,
                             &a, tol_for(t));
                }
            }
            free(in[0].data);
            free(in[1].data);
        }
        char group[64];
        snprintf(group, sizeof group, "softmax %s", kiln_dtype_name(t));
        report(group, &st);
    }
}

/* COURSE.md example 10: softmax([5, 2, -1, 3]) = [0.842, 0.042, 0.002,
 * 0.114] to 3 decimals; then logits of +-1000 stay finite. */
static void test_course_and_extremes(void)
{
    for (size_t ti = 0; ti < nfdtypes; ti++) {
        kiln_dtype t = fdtypes[ti];
        double x[4] = {5, 2, -1, 3}, want[4] = {0.842, 0.042, 0.002, 0.114};
        float xf[4] = {5, 2, -1, 3};
        int64_t s = 4;
        kiln_tensor *xt = kiln_tensor_from_data(
            dev, t, 1, &s, t == KILN_F32 ? (void *)xf : (void *)x,
            4 * kiln_dtype_size(t));
        kiln_tensor *y = kiln_softmax(xt, 0);
        kiln_tensor *ys = kiln_cast(y, KILN_F64);
        double got[4] = {0};
        CHECK(kiln_tensor_read(ys, got, sizeof got) == KILN_OK,
              "course softmax: %s", kiln_error_message(dev));
        for (int i = 0; i < 4; i++)
            CHECK(fabs(got[i] - want[i]) <= 0.0005,
                  "course softmax %s [%d] = %.6f, want %.3f",
                  kiln_dtype_name(t), i, got[i], want[i]);
        printf("course example 10 (%s): softmax([5, 2, -1, 3]) = [%.3f, "
               "%.3f, %.3f, %.3f]\n", kiln_dtype_name(t), got[0], got[1],
               got[2], got[3]);
        kiln_tensor_free(xt);
        kiln_tensor_free(y);
        kiln_tensor_free(ys);

        /* Large logits: softmax, log-softmax, cross-entropy and its
         * gradient all finite. */
        double big[6] = {1000, -1000, 0, -1000, 1000, 999};
        float bigf[6] = {1000, -1000, 0, -1000, 1000, 999};
        int64_t s2[2] = {2, 3};
        kiln_tensor *b = kiln_tensor_from_data(
            dev, t, 2, s2, t == KILN_F32 ? (void *)bigf : (void *)big,
            6 * kiln_dtype_size(t));
        int32_t lab[2] = {1, 2};
        int64_t s1 = 2;
        kiln_tensor *lt = kiln_tensor_from_data(dev, KILN_I32, 1, &s1, lab,
                                                sizeof lab);
        kiln_tensor *g = NULL;
        kiln_tensor *outs[4] = {kiln_softmax(b, -1), kiln_log_softmax(b, -1),
                                kiln_softmax_cross_entropy(b, lt, &g), NULL};
        outs[3] = g;
        for (int k = 0; k < 4; k++) {
            kiln_tensor *o = kiln_cast(outs[k], KILN_F64);
            double v[6] = {0};
            int64_t n = kiln_tensor_numel(o);
            CHECK(o && kiln_tensor_read(o, v, (size_t)n * 8) == KILN_OK,
                  "extremes %d: %s", k, kiln_error_message(dev));
            for (int64_t i = 0; i < n; i++)
                CHECK(isfinite(v[i]), "extremes %s output %d [%lld] = %g",
                      kiln_dtype_name(t), k, (long long)i, v[i]);
            if (k == 2) /* lse of row 0 is 1000: loss 2000; row 1: 1 + log(1+e^-1) */
                CHECK(fabs(v[0] - 0.5 * (2000 + log1p(exp(-1.0)) + 1 + 0)) <
                          0.5 * 2000 * 1e-6 + 1e-3,
                      "extremes loss %g", v[0]);
            kiln_tensor_free(o);
            kiln_tensor_free(outs[k]);
        }
        kiln_tensor_free(b);
        kiln_tensor_free(lt);
        health("course/extremes");
    }
}

/* ---- softmax cross-entropy ------------------------------------------------ */

typedef struct xent_arg {
    int which; /* 0 loss, 1 grad */
} xent_arg;

static kiln_tensor *call_xent(kiln_tensor **in, const void *arg)
{
    const xent_arg *a = arg;
    kiln_tensor *g = NULL;
    kiln_tensor *loss = kiln_softmax_cross_entropy(in[0], in[1],
                                                   a->which ? &g : NULL);
    if (!a->which)
        return loss;
    kiln_tensor_free(loss);
    return g;
}

static void test_xent(void)
{
    static const int64_t shapes[][2] = {{1, 1}, {1, 7}, {5, 3}, {33, 10},
                                        {4, 1000}, {300, 2}};
    for (size_t ti = 0; ti < nfdtypes; ti++) {
        kiln_dtype t = fdtypes[ti];
        op_stats st = {0};
        for (size_t c = 0; c < sizeof shapes / sizeof *shapes; c++) {
            int64_t n = shapes[c][0], C = shapes[c][1];
            enum view_kind v = (enum view_kind)(c % 3);
            op_input idx[2] = {input(t, 2, shapes[c], v, -6, 6),
                               input(KILN_I32, 1, &n,
                                     c % 2 ? VIEW_STRIDED : VIEW_PLAIN, 0,
                                     (double)C - 0.001)};
            op_input prob[2] = {idx[0], input(t, 2, shapes[c],
                                              (enum view_kind)((c + 1) % 3),
                                              0, 1)};
            if (c == 3) /* out of range labels: NaN rows on every backend */
                idx[1].data[0] = -1, idx[1].data[2] = (double)C;
            for (int which = 0; which < 2; which++) {
                xent_arg a = {which};
                char name[96];
                snprintf(name, sizeof name, "xent index %s %lldx%lld %s",
                         kiln_dtype_name(t), (long long)n, (long long)C,
                         which ? "grad" : "loss");
                check_op(&st, dev, ref, name, 2, idx, call_xent, &a,
                         tol_for(t));
                snprintf(name, sizeof name, "xent probs %s %lldx%lld %s",
                         kiln_dtype_name(t), (long long)n, (long long)C,
                         which ? "grad" : "loss");
                check_op(&st, dev, ref, name, 2, prob, call_xent, &a,
                         tol_for(t));
            }
            free(idx[0].data);
            free(idx[1].data);
            free(prob[1].data);
        }
        char group[64];
        snprintf(group, sizeof group, "softmax_xent %s", kiln_dtype_name(t));
        report(group, &st);
    }
}

/* ---- composed losses ---------------------------------------------------------- */

typedef struct loss_arg {
    int op;    /* 0 sigmoid xent, 1 mse, 2 mse half, 3 l1, 4 l2 */
    int which; /* 0 loss, 1 grad */
} loss_arg;

static kiln_tensor *call_loss(kiln_tensor **in, const void *arg)
{
    const loss_arg *a = arg;
    kiln_tensor *g = NULL, *l = NULL, **gp = a->which ? &g : NULL;
    switch (a->op) {
    case 0: l = kiln_sigmoid_cross_entropy(in[0], in[1], gp); break;
    case 1: l = kiln_mse_loss(in[0], in[1], 0, gp); break;
    case 2: l = kiln_mse_loss(in[0], in[1], 1, gp); break;
    case 3: return kiln_l1_penalty(in[0]);
    case 4: return kiln_l2_penalty(in[0]);
    }
    if (!a->which)
        return l;
    kiln_tensor_free(l);
    return g;
}

static void test_losses(void)
{
    static const char *names[] = {"sigmoid_xent", "mse", "mse half", "l1",
                                  "l2"};
    for (size_t ti = 0; ti < nfdtypes; ti++) {
        kiln_dtype t = fdtypes[ti];
        op_stats st = {0};
        for (int c = 0; c < 6; c++) {
            int ndim;
            int64_t shape[KILN_MAX_DIMS];
            random_shape(&ndim, shape);
            if (c == 5) {
                ndim = 0; /* a scalar loss input */
            }
            op_input in[2] = {input(t, ndim, shape, (enum view_kind)(c % 3),
                                    -30, 30),
                              input(t, ndim, shape, VIEW_PLAIN, 0, 1)};
            for (int op = 0; op < 5; op++) {
                for (int which = 0; which < (op < 3 ? 2 : 1); which++) {
                    loss_arg a = {op, which};
                    char name[96];
                    snprintf(name, sizeof name, "%s %s case %d %s", names[op],
                             kiln_dtype_name(t), c, which ? "grad" : "loss");
                    /* Sums of n terms: allow for n roundings of f32. */
                    double eps = t == KILN_F32 ? 6e-8 : 1.2e-16;
                    tolerance tol = {t == KILN_F32 ? 1e-6 : 1e-14, 64 * eps,
                                     which ? 0 : 64 * eps};
                    check_op(&st, dev, ref, name, op < 3 ? 2 : 1, in,
                             call_loss, &a, tol);
                }
            }
            free(in[0].data);
            free(in[1].data);
        }
        char group[64];
        snprintf(group, sizeof group, "losses %s", kiln_dtype_name(t));
        report(group, &st);
    }
}

/* ---- argument errors ----------------------------------------------------------- */

static void expect_error(kiln_tensor *r, kiln_status want, const char *what)
{
    CHECK(r == NULL && kiln_status_of(dev) == want,
          "%s: got %s (%s)", what, r ? "a tensor" : "NULL",
          kiln_error_message(dev));
    if (r == NULL && kiln_status_of(dev) == want)
        printf("  error as expected: %s\n", kiln_error_message(dev));
    kiln_tensor_free(r);
    kiln_clear_error(dev);
}

static void test_errors(void)
{
    int64_t s2[2] = {3, 4}, s1 = 3, s1b = 4;
    kiln_tensor *x = kiln_tensor_new(dev, KILN_F32, 2, s2);
    kiln_tensor *xi = kiln_tensor_new(dev, KILN_I32, 2, s2);
    kiln_tensor *lab = kiln_tensor_new(dev, KILN_I32, 1, &s1);
    kiln_tensor *bad = kiln_tensor_new(dev, KILN_I32, 1, &s1b);
    kiln_tensor *pf = kiln_tensor_new(dev, KILN_F32, 1, &s1);
    kiln_fill(x, 0.5);
    kiln_fill(xi, 1);
    kiln_fill(lab, 0);
    expect_error(kiln_softmax(xi, 0), KILN_ERROR_DTYPE, "softmax of i32");
    expect_error(kiln_softmax(x, 2), KILN_ERROR_INVALID_ARGUMENT,
                 "softmax axis 2 of 2-D");
    expect_error(kiln_log_softmax(x, -3), KILN_ERROR_INVALID_ARGUMENT,
                 "log_softmax axis -3 of 2-D");
    expect_error(kiln_softmax_backward(x, pf, 0), KILN_ERROR_SHAPE,
                 "softmax_backward shapes");
    expect_error(kiln_softmax_cross_entropy(x, bad, NULL), KILN_ERROR_SHAPE,
                 "xent labels [4] for [3, 4]");
    expect_error(kiln_softmax_cross_entropy(x, pf, NULL), KILN_ERROR_SHAPE,
                 "xent f32 labels [3]");
    expect_error(kiln_softmax_cross_entropy(xi, lab, NULL), KILN_ERROR_DTYPE,
                 "xent i32 logits");
    expect_error(kiln_mse_loss(x, pf, 0, NULL), KILN_ERROR_SHAPE,
                 "mse shapes");
    expect_error(kiln_l2_penalty(xi), KILN_ERROR_DTYPE, "l2 of i32");
    /* NULL propagates silently after an error. */
    expect_error(kiln_softmax(NULL, 0), KILN_OK, "softmax(NULL), no context");
    kiln_tensor_free(x);
    kiln_tensor_free(xi);
    kiln_tensor_free(lab);
    kiln_tensor_free(bad);
    kiln_tensor_free(pf);
    health("errors");
}

/* ---- gradient checks (reference, f64) ------------------------------------------ */

typedef kiln_tensor *(*fwd_fn)(kiln_tensor *x, const void *arg);

static double *read_f64(kiln_tensor *t, int64_t n)
{
    double *v = calloc((size_t)(n ? n : 1), sizeof *v);
    if (!t || kiln_tensor_read(t, v, (size_t)n * 8) != KILN_OK)
        v[0] = NAN;
    return v;
}

/* sum(f(x) * r) on the reference. */
static double weighted(fwd_fn f, const void *arg, int ndim,
                       const int64_t *shape, const double *x, const double *r)
{
    int64_t n = shape_numel(ndim, shape);
    kiln_tensor *xt = kiln_tensor_from_data(ref, KILN_F64, ndim, shape, x,
                                            (size_t)n * 8);
    kiln_tensor *y = f(xt, arg);
    int64_t m = kiln_tensor_numel(y);
    double *v = read_f64(y, m), s = 0;
    for (int64_t i = 0; i < m; i++)
        s += v[i] * r[i];
    free(v);
    kiln_tensor_free(y);
    kiln_tensor_free(xt);
    return s;
}

/* Compares @analytic (d sum(f r) / dx) with central differences. */
static void gradcheck(const char *op, fwd_fn f, const void *arg, int ndim,
                      const int64_t *shape, double *x, const double *r,
                      const double *analytic)
{
    const double h = 1e-6;
    int64_t n = shape_numel(ndim, shape);
    double max_err = 0, max_g = 0;
    for (int64_t i = 0; i < n; i++) {
        double keep = x[i];
        x[i] = keep + h;
        double up = weighted(f, arg, ndim, shape, x, r);
        x[i] = keep - h;
        double down = weighted(f, arg, ndim, shape, x, r);
        x[i] = keep;
        double num = (up - down) / (2 * h);
        max_err = fmax(max_err, fabs(num - analytic[i]));
        max_g = fmax(max_g, fabs(num));
    }
    double rel = max_err / (max_g > 0 ? max_g : 1);
    printf("gradcheck %s max_rel_err %.3g\n", op, rel);
    CHECK(rel < 1e-6, "gradcheck %s: max_rel_err %g", op, rel);
}

typedef struct gc_arg {
    int axis, log;
    kiln_tensor *other; /* labels / targets */
    int op;
} gc_arg;

static kiln_tensor *fwd_softmax(kiln_tensor *x, const void *arg)
{
    const gc_arg *a = arg;
    return a->log ? kiln_log_softmax(x, a->axis) : kiln_softmax(x, a->axis);
}

/* Scalar losses; op: 0 xent, 1 sigmoid xent, 2 mse, 3 mse half, 4 l1,
 * 5 l2.  With @grad, also returns the analytic gradient. */
static kiln_tensor *loss_of(kiln_tensor *x, const gc_arg *a,
                            kiln_tensor **grad)
{
    switch (a->op) {
    case 0: return kiln_softmax_cross_entropy(x, a->other, grad);
    case 1: return kiln_sigmoid_cross_entropy(x, a->other, grad);
    case 2: return kiln_mse_loss(x, a->other, 0, grad);
    case 3: return kiln_mse_loss(x, a->other, 1, grad);
    case 4: return kiln_l1_penalty(x);
    default: return kiln_l2_penalty(x);
    }
}

static kiln_tensor *fwd_loss(kiln_tensor *x, const void *arg)
{
    return loss_of(x, arg, NULL);
}

static void gradcheck_softmax(int log)
{
    int64_t shape[3] = {2, 4, 3};
    int64_t n = 24;
    double x[24], r[24];
    for (int i = 0; i < n; i++) {
        x[i] = harness_uniform(&rng, -3, 3);
        r[i] = harness_uniform(&rng, -1, 1);
    }
    gc_arg a = {.axis = 1, .log = log};
    kiln_tensor *xt = kiln_tensor_from_data(ref, KILN_F64, 3, shape, x,
                                            sizeof x);
    kiln_tensor *rt = kiln_tensor_from_data(ref, KILN_F64, 3, shape, r,
                                            sizeof r);
    kiln_tensor *y = fwd_softmax(xt, &a);
    kiln_tensor *dx = log ? kiln_log_softmax_backward(y, rt, 1)
                          : kiln_softmax_backward(y, rt, 1);
    double *an = read_f64(dx, n);
    gradcheck(log ? "log_softmax" : "softmax", fwd_softmax, &a, 3, shape, x,
              r, an);
    free(an);
    kiln_tensor_free(xt);
    kiln_tensor_free(rt);
    kiln_tensor_free(y);
    kiln_tensor_free(dx);
}

static void gradcheck_loss(const char *name, int op, kiln_tensor *other,
                           int ndim, const int64_t *shape, double lo,
                           double hi)
{
    int64_t n = shape_numel(ndim, shape);
    double *x = malloc((size_t)n * sizeof *x), r = 0.75;
    for (int64_t i = 0; i < n; i++) {
        x[i] = harness_uniform(&rng, lo, hi);
        if (op == 4) /* l1 away from the kink at 0 */
            x[i] = x[i] < 0 ? x[i] - 0.1 : x[i] + 0.1;
    }
    gc_arg a = {.other = other, .op = op};
    kiln_tensor *xt = kiln_tensor_from_data(ref, KILN_F64, ndim, shape, x,
                                            (size_t)n * 8);
    kiln_tensor *g = NULL;
    kiln_tensor *loss = loss_of(xt, &a, op < 4 ? &g : NULL);
    double *an = op < 4 ? read_f64(g, n) : calloc((size_t)n, sizeof *an);
    /* The penalties have no backward op: their documented gradients are
     * sign(w) and w. */
    for (int64_t i = 0; i < n; i++)
        an[i] = r * (op == 4 ? (x[i] > 0 ? 1 : -1) : op == 5 ? x[i] : an[i]);
    gradcheck(name, fwd_loss, &a, ndim, shape, x, &r, an);
    free(an);
    free(x);
    kiln_tensor_free(xt);
    kiln_tensor_free(g);
    kiln_tensor_free(loss);
}

static void test_gradchecks(void)
{
    gradcheck_softmax(0);
    gradcheck_softmax(1);
    int64_t s2[2] = {4, 5}, s1 = 4;
    int32_t lab[4] = {0, 4, 2, 2};
    double p[20];
    for (int i = 0; i < 4; i++) { /* rows of probabilities summing to 1 */
        double sum = 0;
        for (int c = 0; c < 5; c++)
            sum += p[i * 5 + c] = harness_uniform(&rng, 0, 1);
        for (int c = 0; c < 5; c++)
            p[i * 5 + c] /= sum;
    }
    double z[20];
    for (int i = 0; i < 20; i++)
        z[i] = harness_uniform(&rng, 0, 1);
    kiln_tensor *lt = kiln_tensor_from_data(ref, KILN_I32, 1, &s1, lab,
                                            sizeof lab);
    kiln_tensor *pt = kiln_tensor_from_data(ref, KILN_F64, 2, s2, p, sizeof p);
    kiln_tensor *zt = kiln_tensor_from_data(ref, KILN_F64, 2, s2, z, sizeof z);
    gradcheck_loss("softmax_cross_entropy_index", 0, lt, 2, s2, -3, 3);
    gradcheck_loss("softmax_cross_entropy_probs", 0, pt, 2, s2, -3, 3);
    gradcheck_loss("sigmoid_cross_entropy", 1, zt, 2, s2, -4, 4);
    gradcheck_loss("mse", 2, zt, 2, s2, -2, 2);
    gradcheck_loss("mse_half", 3, zt, 2, s2, -2, 2);
    gradcheck_loss("l1_penalty", 4, NULL, 2, s2, -2, 2);
    gradcheck_loss("l2_penalty", 5, NULL, 2, s2, -2, 2);
    kiln_tensor_free(lt);
    kiln_tensor_free(pt);
    kiln_tensor_free(zt);
}

int main(int argc, char **argv)
{
    const char *spec = harness_device(argc, argv);
    dev = harness_open(spec, 256);
    ref = harness_open("reference", 256);
    if (!kiln_context_device(dev)->fp64) {
        printf("note: no fp64 on this device, f64 cases skipped\n");
        nfdtypes = 1;
    }
    test_course_and_extremes();
    test_softmax_random();
    test_xent();
    test_losses();
    test_errors();
    test_gradchecks();
    kiln_context_destroy(dev);
    kiln_context_destroy(ref);
    return harness_exit();
}
