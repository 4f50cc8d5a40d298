/*
 * linear-regression - the course's TensorFlow linear regression, with Kiln.
 *
 * 1000 points x ~ N(0, 0.55^2), y = 0.1 x + 0.3 + N(0, 0.03^2) noise, drawn
 * on the device with kiln_random_normal (seeded, so every backend sees the
 * same data).  The model y' = W x + b starts at W ~ U(-1, 1), b = 0 and is
 * fitted by full-batch gradient descent (lr 0.5) on the mean squared error
 *
 *     loss = mean((W x + b - y)^2)
 *     dW   = 2 mean((W x + b - y) x),   db = 2 mean(W x + b - y)
 *
 * with the gradients written out by hand as ops (no autograd).  W goes to
 * 0.1, b to 0.3, and the loss falls every step toward the noise floor
 * (0.03^2 = 0.0009); the program checks all three.
 *
 * usage: linear-regression [--device SPEC] [--seed N]
 *
 * Exit status: 0 converged as expected, 1 it did not (or an op failed),
 * 2 set-up error.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kiln.h"

#define POINTS 1000
#define STEPS 20
#define PRINT_EVERY 2
#define LEARNING_RATE 0.5
#define TOLERANCE 0.01 /* |W - 0.1| and |b - 0.3| at the end */

static int report_error(kiln_context *ctx, const char *what, int code)
{
    fprintf(stderr, "linear-regression: %s: %s (%s)\n", what,
            kiln_error_message(ctx), kiln_status_string(kiln_status_of(ctx)));
    return code;
}

static kiln_tensor *scalar(kiln_context *ctx, float value)
{
    return kiln_tensor_from_data(ctx, KILN_F32, 0, NULL, &value, sizeof value);
}

static float read_scalar(kiln_tensor *t)
{
    float v = NAN; /* stays NaN if the read fails: the checks then fail */

    kiln_tensor_read(t, &v, sizeof v);
    return v;
}

/* y = 0.1 x + 0.3 + noise, all on the device; returns NULL on error. */
static kiln_tensor *make_data(kiln_context *ctx, uint64_t seed,
                              kiln_tensor **x_out)
{
    int64_t n = POINTS;
    kiln_tensor *x = kiln_tensor_new(ctx, KILN_F32, 1, &n);
    kiln_tensor *noise = kiln_tensor_new(ctx, KILN_F32, 1, &n);
    kiln_tensor *slope = scalar(ctx, 0.1f), *icept = scalar(ctx, 0.3f);
    kiln_tensor *y = NULL;

    /* Different offsets give x and the noise independent streams. */
    if (x && noise && kiln_random_normal(x, seed, 0, 0.0, 0.55) == KILN_OK &&
        kiln_random_normal(noise, seed, POINTS, 0.0, 0.03) == KILN_OK) {
        kiln_tensor *wx = kiln_mul(x, slope);
        kiln_tensor *line = kiln_add(wx, icept);
        y = kiln_add(line, noise);
        kiln_tensor_free(line);
        kiln_tensor_free(wx);
    }
    kiln_tensor_free(icept);
    kiln_tensor_free(slope);
    kiln_tensor_free(noise);
    if (!y) {
        kiln_tensor_free(x);
        x = NULL;
    }
    *x_out = x;
    return y;
}

/*
 * One step: returns the loss before the update and updates W and b with
 * @opt.  NaN if something failed.
 */
static float train_step(kiln_optimizer *opt, kiln_tensor *x, kiln_tensor *y,
                        kiln_tensor *w, kiln_tensor *b, kiln_tensor *two)
{
    kiln_tensor *wx = kiln_mul(x, w);
    kiln_tensor *pred = kiln_add(wx, b);
    kiln_tensor *r = kiln_sub(pred, y);            /* residual W x + b - y */
    kiln_tensor *r2 = kiln_square(r);
    kiln_tensor *loss = kiln_mean(r2, 0, NULL, 0);
    kiln_tensor *rx = kiln_mul(r, x);
    kiln_tensor *mrx = kiln_mean(rx, 0, NULL, 0);
    kiln_tensor *mr = kiln_mean(r, 0, NULL, 0);
    kiln_tensor *dw = kiln_mul(two, mrx);          /* 2 mean(r x) */
    kiln_tensor *db = kiln_mul(two, mr);           /* 2 mean(r)   */
    float value = NAN;

    if (dw && db) {
        value = read_scalar(loss);
        kiln_tensor *params[2] = {w, b}, *grads[2] = {dw, db};
        if (kiln_optimizer_step(opt, 2, params, grads, -1.0) != KILN_OK)
            value = NAN;
    }
    kiln_tensor_free(db);
    kiln_tensor_free(dw);
    kiln_tensor_free(mr);
    kiln_tensor_free(mrx);
    kiln_tensor_free(rx);
    kiln_tensor_free(loss);
    kiln_tensor_free(r2);
    kiln_tensor_free(r);
    kiln_tensor_free(pred);
    kiln_tensor_free(wx);
    return value;
}

int main(int argc, char **argv)
{
    const char *device = NULL;
    uint64_t seed = 2024;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--device") == 0 && i + 1 < argc) {
            device = argv[++i];
        } else if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc) {
            seed = strtoull(argv[++i], NULL, 10);
        } else {
            int help = strcmp(argv[i], "--help") == 0;
            fprintf(help ? stdout : stderr,
                    "usage: linear-regression [--device SPEC] [--seed N]\n");
            return help ? 0 : 2;
        }
    }

    kiln_context_options options = {0};
    options.device = device; /* NULL: KILN_DEVICE, else "auto" */
    kiln_context *ctx = kiln_context_create(&options);
    kiln_tensor *x = NULL, *y = NULL, *w = NULL, *b = NULL, *two = NULL;
    kiln_optimizer *opt = NULL;
    int rc = 2;

    if (!ctx) {
        fprintf(stderr, "linear-regression: out of host memory\n");
        return 2;
    }
    if (kiln_status_of(ctx) != KILN_OK) {
        rc = report_error(ctx, "cannot open the device", 2);
        goto out;
    }
    const kiln_device_info *dev = kiln_context_device(ctx);
    printf("device: %s (%s, %s)\n", dev->name, kiln_backend_name(dev->backend),
           kiln_device_type_name(dev->type));

    y = make_data(ctx, seed, &x);
    w = kiln_tensor_new(ctx, KILN_F32, 0, NULL);
    b = scalar(ctx, 0.0f);
    two = scalar(ctx, 2.0f);
    kiln_optimizer_config cfg = {0};
    cfg.kind = KILN_OPT_SGD;
    cfg.lr = LEARNING_RATE;
    opt = kiln_optimizer_new(ctx, &cfg);
    if (!y || !w || !b || !two || !opt ||
        kiln_random_uniform(w, seed, 2 * POINTS, -1.0, 1.0) != KILN_OK) {
        rc = report_error(ctx, "cannot set up the data and the model", 2);
        goto out;
    }

    printf("%d points, y = 0.1 x + 0.3 + noise, seed %llu, lr %g\n", POINTS,
           (unsigned long long)seed, LEARNING_RATE);
    int falling = 1;
    float prev = INFINITY, loss = NAN;
    for (int step = 0; step < STEPS; step++) {
        if (step % PRINT_EVERY == 0)
            printf("step %2d  W=%.6f b=%.6f", step, read_scalar(w),
                   read_scalar(b));
        loss = train_step(opt, x, y, w, b, two);
        if (isnan(loss)) {
            rc = report_error(ctx, "FAIL: training step", 1);
            goto out;
        }
        if (step % PRINT_EVERY == 0)
            printf("  loss=%.8f\n", loss);
        if (!(loss < prev)) {
            printf("loss did not fall at step %d: %.8f -> %.8f\n", step, prev,
                   loss);
            falling = 0;
        }
        prev = loss;
    }
    float wf = read_scalar(w), bf = read_scalar(b);
    printf("final    W=%.6f b=%.6f  (true W=0.1 b=0.3, noise floor 0.0009)\n",
           wf, bf);
    if (kiln_status_of(ctx) != KILN_OK) {
        rc = report_error(ctx, "FAIL", 1);
        goto out;
    }
    int near = fabsf(wf - 0.1f) <= TOLERANCE && fabsf(bf - 0.3f) <= TOLERANCE;
    printf("loss fell every step: %s\n", falling ? "yes" : "NO");
    printf("W, b within %g of 0.1, 0.3: %s\n", TOLERANCE, near ? "yes" : "NO");
    printf("%s\n", falling && near ? "PASS" : "FAIL");
    rc = falling && near ? 0 : 1;
out:
    kiln_optimizer_free(opt);
    kiln_tensor_free(two);
    kiln_tensor_free(b);
    kiln_tensor_free(w);
    kiln_tensor_free(y);
    kiln_tensor_free(x);
    kiln_context_destroy(ctx);
    return rc;
}
