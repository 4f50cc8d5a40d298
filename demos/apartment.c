/*
 * apartment - the course's apartment-price example: a lesson in learning
 * rates and feature scaling, with Kiln ops.
 *
 * Five apartments (size, floor, distance to the subway, income -> price)
 * and a linear model price' = X w with no bias.  With every weight 1 the
 * course's error, half the mean squared error
 *
 *     E(w) = 1/(2n) sum (X w - y)^2,   dE/dw = X^T (X w - y) / n,
 *
 * is 287.524.  Gradient descent then shows:
 *   1. unscaled features: the steepest curvature of E (the largest
 *      eigenvalue of X^T X / n, about 1017, dominated by the size column)
 *      forces lr < 2/1017; a larger lr diverges, and a safe one crawls
 *      along the flat directions (curvature 0.08) and is still far from
 *      the optimum after thousands of steps;
 *   2. the same features divided by their training-set standard deviation
 *      (not centred: the model has no bias to absorb a shift) shrink the
 *      spread of curvatures ~15-fold, so the same number of steps with a
 *      larger lr reaches the least-squares optimum, computed here with the
 *      normal equations X^T X w = X^T y in double on the host.
 *
 * Runs in f64 where the device has it, else f32 (with looser tolerances).
 *
 * usage: apartment [--device SPEC]
 *
 * Exit status: 0 first error 287.524 and optimum reached, 1 not (or an op
 * failed), 2 set-up error.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "kiln.h"

#define N 5
#define F 4
#define STEPS 8000
#define LR_UNSCALED_BAD 0.0025 /* above 2/1017: diverges */
#define LR_UNSCALED 0.0015     /* below 2/1017: converges, slowly */
#define LR_SCALED 0.05         /* below 2/35.9 for the scaled features */

static const char *const names[F] = {"size", "floor", "distance", "income"};
static const double x_rows[N][F] = {
    {34, 15, 1, 4}, {32, 4, 5, 3.3}, {18, 9, 2, 2.5}, {42, 3, 2.5, 5},
    {21, 10, 1.5, 3},
};
static const double y_rows[N] = {72, 60, 34, 100, 42};

static int report_error(kiln_context *ctx, const char *what, int code)
{
    fprintf(stderr, "apartment: %s: %s (%s)\n", what, kiln_error_message(ctx),
            kiln_status_string(kiln_status_of(ctx)));
    return code;
}

/* A tensor of @count doubles converted to @dtype (f32 or f64). */
static kiln_tensor *upload(kiln_context *ctx, kiln_dtype dtype, int ndim,
                           const int64_t *shape, const double *v, int count)
{
    float f[N * F];

    if (dtype == KILN_F64)
        return kiln_tensor_from_data(ctx, dtype, ndim, shape, v,
                                     (size_t)count * sizeof *v);
    for (int i = 0; i < count; i++)
        f[i] = (float)v[i];
    return kiln_tensor_from_data(ctx, dtype, ndim, shape, f,
                                 (size_t)count * sizeof *f);
}

/* Reads @count elements of @t (f32 or f64) as doubles. */
static kiln_status download(kiln_tensor *t, double *v, int count)
{
    float f[N * F];
    kiln_status st;

    if (kiln_tensor_dtype(t) == KILN_F64)
        return kiln_tensor_read(t, v, (size_t)count * sizeof *v);
    st = kiln_tensor_read(t, f, (size_t)count * sizeof *f);
    for (int i = 0; i < count; i++)
        v[i] = st == KILN_OK ? f[i] : NAN;
    return st;
}

/* E(w) on the device; NaN on error. */
static double half_mse(kiln_tensor *x, kiln_tensor *y, kiln_tensor *w)
{
    kiln_tensor *pred = kiln_matmul(x, w);
    kiln_tensor *r = kiln_sub(pred, y);
    kiln_tensor *r2 = kiln_square(r);
    kiln_tensor *mse = kiln_mean(r2, 0, NULL, 0);
    double e = NAN;

    if (mse && download(mse, &e, 1) != KILN_OK)
        e = NAN;
    kiln_tensor_free(mse);
    kiln_tensor_free(r2);
    kiln_tensor_free(r);
    kiln_tensor_free(pred);
    return 0.5 * e;
}

/* One gradient step w <- w - lr X^T (X w - y) / n, queued (no read). */
static kiln_status gd_step(kiln_optimizer *opt, kiln_tensor *x, kiln_tensor *y,
                           kiln_tensor *w, double lr)
{
    kiln_tensor *pred = kiln_matmul(x, w);
    kiln_tensor *r = kiln_sub(pred, y);
    kiln_tensor *grad = kiln_gemm(x, 1, r, 0, 1.0 / N, 0.0, NULL);
    kiln_status st = grad ? kiln_optimizer_step(opt, 1, &w, &grad, lr)
                          : KILN_ERROR_BACKEND;

    kiln_tensor_free(grad);
    kiln_tensor_free(r);
    kiln_tensor_free(pred);
    return st;
}

/* Steps at which train() prints E: 0, 1, 2, 5, 10, 20, 50, 100, ... */
static int is_report_step(int step)
{
    for (int p = 1; p <= step; p *= 10)
        if (step == p || step == 2 * p || step == 5 * p)
            return 1;
    return step == 0;
}

/*
 * @steps steps of gradient descent from @w0 at @lr, printing E at a few
 * steps; the trained weights are left in @w_out.  Returns the final E, NaN
 * on error.
 */
static double train(kiln_context *ctx, kiln_dtype dtype, kiln_tensor *x,
                    kiln_tensor *y, const double *w0, double lr, int steps,
                    double *w_out)
{
    int64_t wshape[2] = {F, 1};
    kiln_optimizer_config cfg = {0};
    cfg.kind = KILN_OPT_SGD;
    cfg.lr = lr;
    kiln_optimizer *opt = kiln_optimizer_new(ctx, &cfg);
    kiln_tensor *w = upload(ctx, dtype, 2, wshape, w0, F);
    double e = NAN;

    if (!opt || !w)
        goto out;
    for (int step = 0; step <= steps; step++) {
        if (is_report_step(step) || step == steps) {
            e = half_mse(x, y, w);
            printf("  step %5d  E=%.6f\n", step, e);
            if (isnan(e) || isinf(e))
                break;
        }
        if (step < steps && gd_step(opt, x, y, w, -1.0) != KILN_OK) {
            e = NAN;
            break;
        }
    }
    if (download(w, w_out, F) != KILN_OK)
        e = NAN;
out:
    kiln_tensor_free(w);
    kiln_optimizer_free(opt);
    return e;
}

/* Largest eigenvalue of the symmetric positive semi-definite @a, by power
 * iteration (plenty for a 4x4 matrix with well separated eigenvalues). */
static double largest_eigenvalue(const double a[F][F])
{
    double v[F] = {1, 1, 1, 1}, lambda = 0.0;

    for (int it = 0; it < 200; it++) {
        double u[F] = {0}, norm = 0.0;
        for (int i = 0; i < F; i++)
            for (int j = 0; j < F; j++)
                u[i] += a[i][j] * v[j];
        for (int i = 0; i < F; i++)
            norm += u[i] * u[i];
        norm = sqrt(norm);
        for (int i = 0; i < F; i++)
            v[i] = u[i] / norm;
        lambda = norm;
    }
    return lambda;
}

/* X^T X / n of the columns of X divided by @scale. */
static void curvature(const double scale[F], double h[F][F])
{
    for (int i = 0; i < F; i++)
        for (int j = 0; j < F; j++) {
            h[i][j] = 0.0;
            for (int k = 0; k < N; k++)
                h[i][j] += x_rows[k][i] / scale[i] * x_rows[k][j] / scale[j];
            h[i][j] /= N;
        }
}

/* The least-squares weights: X^T X w = X^T y by Gaussian elimination with
 * partial pivoting, in double. */
static void normal_equations(double w[F])
{
    double m[F][F + 1];

    for (int i = 0; i < F; i++) {
        for (int j = 0; j <= F; j++) {
            m[i][j] = 0.0;
            for (int k = 0; k < N; k++)
                m[i][j] += x_rows[k][i] * (j < F ? x_rows[k][j] : y_rows[k]);
        }
    }
    for (int c = 0; c < F; c++) {
        int p = c;
        for (int r = c + 1; r < F; r++)
            if (fabs(m[r][c]) > fabs(m[p][c]))
                p = r;
        for (int j = 0; j <= F; j++) {
            double t = m[c][j];
            m[c][j] = m[p][j];
            m[p][j] = t;
        }
        for (int r = c + 1; r < F; r++) {
            double f = m[r][c] / m[c][c];
            for (int j = c; j <= F; j++)
                m[r][j] -= f * m[c][j];
        }
    }
    for (int i = F - 1; i >= 0; i--) {
        double s = m[i][F];
        for (int j = i + 1; j < F; j++)
            s -= m[i][j] * w[j];
        w[i] = s / m[i][i];
    }
}

static double host_half_mse(const double w[F])
{
    double e = 0.0;

    for (int k = 0; k < N; k++) {
        double p = 0.0;
        for (int j = 0; j < F; j++)
            p += x_rows[k][j] * w[j];
        e += (p - y_rows[k]) * (p - y_rows[k]);
    }
    return e / (2.0 * N);
}

static void print_weights(const char *label, const double w[F])
{
    printf("%-22s", label);
    for (int j = 0; j < F; j++)
        printf(" %s=%10.6f", names[j], w[j]);
    printf("\n");
}

int main(int argc, char **argv)
{
    const char *device = NULL;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--device") == 0 && i + 1 < argc) {
            device = argv[++i];
        } else {
            int help = strcmp(argv[i], "--help") == 0;
            fprintf(help ? stdout : stderr, "usage: apartment [--device SPEC]\n");
            return help ? 0 : 2;
        }
    }

    kiln_context_options options = {0};
    options.device = device; /* NULL: KILN_DEVICE, else "auto" */
    kiln_context *ctx = kiln_context_create(&options);
    kiln_tensor *x = NULL, *y = NULL, *ones = NULL, *scale = NULL, *xs = NULL;
    int rc = 2;

    if (!ctx) {
        fprintf(stderr, "apartment: out of host memory\n");
        return 2;
    }
    if (kiln_status_of(ctx) != KILN_OK) {
        rc = report_error(ctx, "cannot open the device", 2);
        goto out;
    }
    const kiln_device_info *dev = kiln_context_device(ctx);
    printf("device: %s (%s, %s)\n", dev->name, kiln_backend_name(dev->backend),
           kiln_device_type_name(dev->type));
    kiln_dtype dtype = dev->fp64 ? KILN_F64 : KILN_F32;
    /* f32 carries ~7 digits; the flat directions of E amplify its rounding. */
    double tol_w = dtype == KILN_F64 ? 1e-4 : 5e-3;
    double tol_e = dtype == KILN_F64 ? 1e-8 : 1e-5;
    printf("precision: %s\n", dtype == KILN_F64 ? "f64" :
           "f32 (this device has no fp64; tolerances are looser)");

    /* Training-set statistics: each column's (population) standard
     * deviation. */
    double s[F], unit[F] = {1, 1, 1, 1}, one_w[F] = {1, 1, 1, 1};
    for (int j = 0; j < F; j++) {
        double mean = 0.0, var = 0.0;
        for (int k = 0; k < N; k++)
            mean += x_rows[k][j] / N;
        for (int k = 0; k < N; k++)
            var += (x_rows[k][j] - mean) * (x_rows[k][j] - mean) / N;
        s[j] = sqrt(var);
    }

    int64_t xshape[2] = {N, F}, yshape[2] = {N, 1}, wshape[2] = {F, 1};
    int64_t sshape[2] = {1, F};
    x = upload(ctx, dtype, 2, xshape, &x_rows[0][0], N * F);
    y = upload(ctx, dtype, 2, yshape, y_rows, N);
    ones = upload(ctx, dtype, 2, wshape, one_w, F);
    scale = upload(ctx, dtype, 2, sshape, s, F);
    xs = kiln_div(x, scale); /* every row divided by s, on the device */
    if (!xs) {
        rc = report_error(ctx, "cannot upload the data", 2);
        goto out;
    }

    double e0 = half_mse(x, y, ones);
    int first_ok = fabs(e0 - 287.524) < 5e-4;
    printf("all weights 1: E=%.3f (the course: 287.524) %s\n", e0,
           first_ok ? "ok" : "WRONG");

    double h[F][F], w_bad[F], w_unscaled[F], w_scaled[F], w[F], w_opt[F];
    curvature(unit, h);
    double lmax = largest_eigenvalue(h);
    printf("\n1. unscaled features: largest curvature of E is %.1f, so plain "
           "gradient descent needs lr < 2/%.1f = %.5f\n", lmax, lmax,
           2.0 / lmax);
    printf(" lr=%g (too large):\n", LR_UNSCALED_BAD);
    double e_bad = train(ctx, dtype, x, y, one_w, LR_UNSCALED_BAD, 20, w_bad);
    printf(" lr=%g:\n", LR_UNSCALED);
    double e_unscaled = train(ctx, dtype, x, y, one_w, LR_UNSCALED, STEPS,
                              w_unscaled);

    curvature(s, h);
    lmax = largest_eigenvalue(h);
    printf("\n2. features divided by their standard deviation (");
    for (int j = 0; j < F; j++)
        printf("%s %.4f%s", names[j], s[j], j + 1 < F ? ", " : "");
    printf("):\n   largest curvature %.1f, so lr < %.4f\n", lmax, 2.0 / lmax);
    printf(" lr=%g:\n", LR_SCALED);
    /* Start from the same model, all weights 1: in scaled units w = s. */
    double e_scaled = train(ctx, dtype, xs, y, s, LR_SCALED, STEPS, w_scaled);
    if (isnan(e_unscaled) || isnan(e_scaled) || kiln_status_of(ctx) != KILN_OK) {
        rc = report_error(ctx, "FAIL: training", 1);
        goto out;
    }
    for (int j = 0; j < F; j++)
        w[j] = w_scaled[j] / s[j]; /* back to the original units */

    normal_equations(w_opt);
    double e_opt = host_half_mse(w_opt);
    printf("\n");
    print_weights("least squares (host)", w_opt);
    print_weights("scaled GD", w);
    print_weights("unscaled GD", w_unscaled);
    printf("E: least squares %.8f, scaled GD %.8f, unscaled GD %.8f\n",
           e_opt, e_scaled, e_unscaled);

    double dw = 0.0;
    for (int j = 0; j < F; j++)
        dw = fmax(dw, fabs(w[j] - w_opt[j]));
    int reached = dw <= tol_w && fabs(e_scaled - e_opt) <= tol_e;
    printf("diverged with lr=%g: %s\n", LR_UNSCALED_BAD,
           !(e_bad < e0) ? "yes" : "no");
    printf("scaled GD reached the optimum (max |dw| %.2g <= %g, |dE| %.2g <= "
           "%g): %s\n", dw, tol_w, fabs(e_scaled - e_opt), tol_e,
           reached ? "yes" : "NO");
    printf("%s\n", first_ok && reached ? "PASS" : "FAIL");
    rc = first_ok && reached ? 0 : 1;
out:
    kiln_tensor_free(xs);
    kiln_tensor_free(scale);
    kiln_tensor_free(ones);
    kiln_tensor_free(y);
    kiln_tensor_free(x);
    kiln_context_destroy(ctx);
    return rc;
}
