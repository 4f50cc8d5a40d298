/*
 * quiz - the course's quiz: find a and b with
 *
 *     3a + 2b =  1
 *      a + 4b = -3
 *     5a + 5b =  0
 *     8a + 3b =  5
 *
 * by training one linear neuron y = a x1 + b x2 (no bias) on the four rows
 * with gradient descent on the half mean squared error
 * E = 1/(2n) sum (X w - y)^2, whose gradient is X^T (X w - y) / n.  All four
 * equations hold for (a, b) = (1, -1), so E falls to 0 there.  Everything
 * runs with Kiln ops (f32) and kiln_optimizer_step.
 *
 * usage: quiz [--device SPEC]
 *
 * Exit status: 0 found (1, -1) within 1e-3, 1 it did not, 2 set-up error.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "kiln.h"

#define ROWS 4
#define STEPS 200
#define PRINT_EVERY 25
/* X^T X / n has eigenvalues 3.3 and 34.9; 2 / (3.3 + 34.9) ~ 0.052 is the
 * fastest steady rate, and anything below 2 / 34.9 converges. */
#define LEARNING_RATE 0.05
#define TOLERANCE 1e-3

static const float x_rows[ROWS][2] = {{3, 2}, {1, 4}, {5, 5}, {8, 3}};
static const float y_rows[ROWS] = {1, -3, 0, 5};

static int report_error(kiln_context *ctx, const char *what, int code)
{
    fprintf(stderr, "quiz: %s: %s (%s)\n", what, kiln_error_message(ctx),
            kiln_status_string(kiln_status_of(ctx)));
    return code;
}

/* E(w) before the step, then w <- w - lr * X^T (X w - y) / n.  NaN on
 * error. */
static float train_step(kiln_optimizer *opt, kiln_tensor *x, kiln_tensor *y,
                        kiln_tensor *w)
{
    kiln_tensor *pred = kiln_matmul(x, w);              /* [4, 1] */
    kiln_tensor *r = kiln_sub(pred, y);
    kiln_tensor *r2 = kiln_square(r);
    kiln_tensor *mse = kiln_mean(r2, 0, NULL, 0);
    /* X^T r / n: gemm reads X transposed through its strides. */
    kiln_tensor *grad = kiln_gemm(x, 1, r, 0, 1.0 / ROWS, 0.0, NULL);
    float e = NAN;

    if (grad && kiln_tensor_read(mse, &e, sizeof e) == KILN_OK) {
        e *= 0.5f; /* the course's half-MSE */
        if (kiln_optimizer_step(opt, 1, &w, &grad, -1.0) != KILN_OK)
            e = NAN;
    }
    kiln_tensor_free(grad);
    kiln_tensor_free(mse);
    kiln_tensor_free(r2);
    kiln_tensor_free(r);
    kiln_tensor_free(pred);
    return e;
}

int main(int argc, char **argv)
{
    const char *device = NULL;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--device") == 0 && i + 1 < argc) {
            device = argv[++i];
        } else {
            int help = strcmp(argv[i], "--help") == 0;
            fprintf(help ? stdout : stderr, "usage: quiz [--device SPEC]\n");
            return help ? 0 : 2;
        }
    }

    kiln_context_options options = {0};
    options.device = device; /* NULL: KILN_DEVICE, else "auto" */
    kiln_context *ctx = kiln_context_create(&options);
    kiln_tensor *x = NULL, *y = NULL, *w = NULL;
    kiln_optimizer *opt = NULL;
    int rc = 2;

    if (!ctx) {
        fprintf(stderr, "quiz: out of host memory\n");
        return 2;
    }
    if (kiln_status_of(ctx) != KILN_OK) {
        rc = report_error(ctx, "cannot open the device", 2);
        goto out;
    }
    const kiln_device_info *dev = kiln_context_device(ctx);
    printf("device: %s (%s, %s)\n", dev->name, kiln_backend_name(dev->backend),
           kiln_device_type_name(dev->type));

    int64_t xshape[2] = {ROWS, 2}, yshape[2] = {ROWS, 1}, wshape[2] = {2, 1};
    x = kiln_tensor_from_data(ctx, KILN_F32, 2, xshape, x_rows, sizeof x_rows);
    y = kiln_tensor_from_data(ctx, KILN_F32, 2, yshape, y_rows, sizeof y_rows);
    w = kiln_tensor_new(ctx, KILN_F32, 2, wshape);
    kiln_optimizer_config cfg = {0};
    cfg.kind = KILN_OPT_SGD;
    cfg.lr = LEARNING_RATE;
    opt = kiln_optimizer_new(ctx, &cfg);
    if (!x || !y || !w || !opt || kiln_fill(w, 0.0) != KILN_OK) {
        rc = report_error(ctx, "cannot set up the model", 2);
        goto out;
    }

    float ab[2] = {NAN, NAN};
    for (int step = 0; step <= STEPS; step++) {
        if (kiln_tensor_read(w, ab, sizeof ab) != KILN_OK) {
            rc = report_error(ctx, "FAIL: read", 1);
            goto out;
        }
        if (step == STEPS)
            break;
        float e = train_step(opt, x, y, w);
        if (isnan(e)) {
            rc = report_error(ctx, "FAIL: training step", 1);
            goto out;
        }
        if (step % PRINT_EVERY == 0)
            printf("step %3d  a=%9.6f b=%9.6f  E=%.8f\n", step, ab[0], ab[1],
                   e);
    }
    printf("found a=%.6f b=%.6f (the answer is a=1, b=-1)\n", ab[0], ab[1]);
    int ok = fabsf(ab[0] - 1.0f) <= TOLERANCE && fabsf(ab[1] + 1.0f) <= TOLERANCE;
    printf("%s\n", ok ? "PASS" : "FAIL");
    rc = ok ? 0 : 1;
out:
    kiln_optimizer_free(opt);
    kiln_tensor_free(w);
    kiln_tensor_free(y);
    kiln_tensor_free(x);
    kiln_context_destroy(ctx);
    return rc;
}
