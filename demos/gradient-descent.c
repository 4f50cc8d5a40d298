/*
 * gradient-descent - the course's first worked example, run with Kiln ops.
 *
 * E(w) = 3(w - 2)^2 + 5 has its minimum E = 5 at w = 2, and dE/dw = 6(w - 2).
 * Starting from w(0) = 5, ten steps of w <- w - eta * dE/dw are taken for
 * eta = 0.4 (too large: w oscillates and diverges), 0.01 (too small: slow)
 * and 0.1 (about right: fast).  E and its gradient are computed on the
 * device with elementwise ops and the update is kiln_optimizer_step with
 * plain SGD.  Every line is printed as the course prints it:
 *
 *     w(%d)=%f E(w(%d))=%f
 *
 * The course computes in float64.  A device without fp64 runs the same
 * program in float32 and says so: its last digits differ from the course.
 *
 * usage: gradient-descent [--device SPEC]
 *
 * Exit status: 0 done, 1 an op failed, 2 set-up error.
 */
#include <stdio.h>
#include <string.h>

#include "kiln.h"

static const double etas[] = {0.4, 0.01, 0.1};
#define STEPS 10

/* Prints the context's error and returns @code. */
static int report_error(kiln_context *ctx, const char *what, int code)
{
    fprintf(stderr, "gradient-descent: %s: %s (%s)\n", what,
            kiln_error_message(ctx), kiln_status_string(kiln_status_of(ctx)));
    return code;
}

/* A one-element tensor holding @value in @dtype (f32 or f64). */
static kiln_tensor *scalar(kiln_context *ctx, kiln_dtype dtype, double value)
{
    float f = (float)value;

    if (dtype == KILN_F64)
        return kiln_tensor_from_data(ctx, dtype, 0, NULL, &value, sizeof value);
    return kiln_tensor_from_data(ctx, dtype, 0, NULL, &f, sizeof f);
}

/* Reads a one-element f32 or f64 tensor as a double. */
static kiln_status read_scalar(kiln_tensor *t, double *value)
{
    float f;
    kiln_status st;

    if (kiln_tensor_dtype(t) == KILN_F64)
        return kiln_tensor_read(t, value, sizeof *value);
    st = kiln_tensor_read(t, &f, sizeof f);
    *value = f;
    return st;
}

/*
 * Ten steps from w(0) = 5 with learning rate @eta.  The constants 2, 3, 5
 * and 6 are tensors so that every arithmetic step runs on the device.
 */
static int descend(kiln_context *ctx, kiln_dtype dtype, double eta,
                   kiln_tensor *const k[4])
{
    kiln_tensor *two = k[0], *three = k[1], *five = k[2], *six = k[3];
    kiln_optimizer_config cfg = {0};
    cfg.kind = KILN_OPT_SGD;
    cfg.lr = eta;
    kiln_optimizer *opt = kiln_optimizer_new(ctx, &cfg);
    kiln_tensor *w = scalar(ctx, dtype, 5.0);
    int rc = 1;

    if (!opt || !w)
        goto out;
    for (int i = 0; i <= STEPS; i++) {
        /* NULL propagates through the chain: one check at its end. */
        kiln_tensor *d = kiln_sub(w, two);                  /* w - 2       */
        kiln_tensor *d2 = kiln_square(d);                   /* (w - 2)^2   */
        kiln_tensor *e3 = kiln_mul(three, d2);              /* 3 (w - 2)^2 */
        kiln_tensor *e = kiln_add(e3, five);                /* E(w)        */
        kiln_tensor *grad = kiln_mul(six, d);               /* dE/dw       */
        double wv = 0.0, ev = 0.0;
        kiln_status st = KILN_ERROR_BACKEND;

        if (grad && read_scalar(w, &wv) == KILN_OK &&
            read_scalar(e, &ev) == KILN_OK) {
            printf("w(%d)=%f E(w(%d))=%f\n", i, wv, i, ev);
            st = i < STEPS ? kiln_optimizer_step(opt, 1, &w, &grad, -1.0)
                           : KILN_OK; /* w <- w - eta * grad */
        }
        kiln_tensor_free(grad);
        kiln_tensor_free(e);
        kiln_tensor_free(e3);
        kiln_tensor_free(d2);
        kiln_tensor_free(d);
        if (st != KILN_OK)
            goto out;
    }
    rc = 0;
out:
    kiln_tensor_free(w);
    kiln_optimizer_free(opt);
    return rc;
}

int main(int argc, char **argv)
{
    const char *device = NULL;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--device") == 0 && i + 1 < argc) {
            device = argv[++i];
        } else {
            int help = strcmp(argv[i], "--help") == 0;
            fprintf(help ? stdout : stderr,
                    "usage: gradient-descent [--device SPEC]\n");
            return help ? 0 : 2;
        }
    }

    kiln_context_options options = {0};
    options.device = device; /* NULL: KILN_DEVICE, else "auto" */
    kiln_context *ctx = kiln_context_create(&options);
    kiln_tensor *k[4] = {NULL, NULL, NULL, NULL};
    int rc = 2;

    if (!ctx) {
        fprintf(stderr, "gradient-descent: out of host memory\n");
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
    if (dtype == KILN_F64)
        printf("precision: f64, as the course\n");
    else
        printf("precision: f32 (this device has no fp64); the digits below "
               "differ from the course's float64 values\n");

    k[0] = scalar(ctx, dtype, 2.0);
    k[1] = scalar(ctx, dtype, 3.0);
    k[2] = scalar(ctx, dtype, 5.0);
    k[3] = scalar(ctx, dtype, 6.0);
    if (!k[0] || !k[1] || !k[2] || !k[3]) {
        rc = report_error(ctx, "cannot make the constants", 2);
        goto out;
    }

    for (size_t j = 0; j < sizeof etas / sizeof etas[0]; j++) {
        printf("eta=%g\n", etas[j]);
        if (descend(ctx, dtype, etas[j], k) != 0) {
            rc = report_error(ctx, "FAIL", 1);
            goto out;
        }
    }
    rc = 0;
out:
    for (int i = 0; i < 4; i++)
        kiln_tensor_free(k[i]);
    kiln_context_destroy(ctx);
    return rc;
}
