/*
 * sin-regression - the course's example 4: y = sin(x) + noise (1000
 * points, x ~ N(0, 1), noise N(0, 0.1)) fitted by two tiny MLPs without
 * biases, trained by plain gradient descent (lr 0.5) on the mean squared
 * error:
 *
 *   tanh:    x -> 5 tanh -> 1           (weights U(-1, 1), as the course)
 *   sigmoid: x -> 5 sigmoid -> 3 sigmoid -> 1
 *
 * Each network is trained three ways from the same initial weights:
 *
 *   course full batch  every step sees all 1000 points, with the course's
 *                      loss mean(square(output - y_data)): output is
 *                      [1000, 1] and y_data [1000], so the difference
 *                      broadcasts to [1000, 1000] (Kiln broadcasts as
 *                      TensorFlow does) and the loss compares every
 *                      prediction with every target.  Its minimum is a
 *                      constant prediction, the mean of y (about 0): the
 *                      "stuck near predicting 0" the course shows.
 *   full batch         the same, with targets shaped [1000, 1] like the
 *                      output: the loss the course meant.
 *   mini-batch         --batch points per step (32), shuffled every epoch,
 *                      the course's fix (its placeholders were [None, 1],
 *                      which also fixed the shapes).
 *
 * The course blamed the full batch ("a local optimum"); the demo shows the
 * real cause is the broadcast loss: full batch with matching shapes fits
 * as well (mini-batches make 32 times more updates per epoch, so they get
 * there in fewer epochs).  Every run's loss below is the mean squared
 * error of all 1000 points with matching shapes, after each epoch.
 *
 * The graph API (kiln_g_*) builds the networks, because the model API's
 * dense layers always have a bias; kiln_g_gradients does the backward
 * pass and a plain SGD optimizer the updates.  Writes fit-tanh.svg and
 * fit-sigmoid.svg (the data, sin(x) and each run's predictions) and
 * loss-tanh.svg, loss-sigmoid.svg (loss per epoch) into --out.
 *
 * usage: sin-regression [--device SPEC] [--epochs 200] [--batch 32]
 *                       [--lr 0.5] [--seed 1] [--out DIR] [--fast]
 * Exit status: 0 the mini-batch runs fit sin(x) and the course's full-batch
 * runs did not, 1 not, 2 an error.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "demo.h"

#define POINTS 1000
#define FIT_MSE 0.05 /* a fit: noise alone gives 0.01, predicting 0 0.44 */
#define PLOT_POINTS 121

static kiln_context *ctx;
static float data_x[POINTS], data_y[POINTS];

enum { COURSE_FULL_BATCH, FULL_BATCH, MINI_BATCH, RUNS };
static const char *const run_names[RUNS] = {
    "course full batch", "full batch", "mini-batch"};

/* One network trained one way. */
typedef struct run {
    kiln_graph *g;
    kiln_node *x, *y, *y_flat; /* inputs: [n, 1], [n, 1], [n]           */
    kiln_node *pred, *mse, *train_loss;
    int nweights;
    kiln_node *weights[3], *grads[3];
    kiln_tensor *values[3];
    kiln_optimizer *opt;
    double *mse_per_epoch;
    uint64_t kernels_per_step;
} run;

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* The data: drawn on the device by Kiln's counter-based generator, so
 * every backend gets the same points for a seed. */
static int make_data(uint64_t seed)
{
    kiln_tensor *x = kiln_tensor_new(ctx, KILN_F32, 1, (int64_t[]){POINTS});
    kiln_tensor *noise = kiln_tensor_new(ctx, KILN_F32, 1,
                                         (int64_t[]){POINTS});
    float n[POINTS];
    kiln_init(x, KILN_INIT_NORMAL, 0, 1, seed, 0);
    kiln_init(noise, KILN_INIT_NORMAL, 0, 0.1, seed + 1, 0);
    kiln_status st = kiln_tensor_read(x, data_x, sizeof data_x);
    if (st == KILN_OK)
        st = kiln_tensor_read(noise, n, sizeof n);
    for (int i = 0; i < POINTS; i++)
        data_y[i] = sinf(data_x[i]) + n[i];
    kiln_tensor_free(x);
    kiln_tensor_free(noise);
    return st == KILN_OK ? 0 : -1;
}

/* A weight [in, out] ~ U(-1, 1), the course's tf.random_uniform. */
static kiln_node *weight(run *r, int in, int out, uint64_t seed, int i)
{
    kiln_tensor *t = kiln_tensor_new(ctx, KILN_F32, 2, (int64_t[]){in, out});
    kiln_init(t, KILN_INIT_UNIFORM, -1, 1, seed, (uint64_t)i << 20);
    char name[8];
    snprintf(name, sizeof name, "w%d", i);
    kiln_node *w = kiln_g_variable(r->g, name, t);
    kiln_tensor_free(t);
    r->weights[r->nweights++] = w;
    return w;
}

/* Builds network @sigmoid (0: tanh 1-5-1, 1: sigmoid 1-5-3-1) trained as
 * @way says. */
static int build(run *r, int sigmoid, int way, uint64_t seed, double lr,
                 int epochs)
{
    memset(r, 0, sizeof *r);
    r->g = kiln_graph_new(ctx);
    r->x = kiln_g_input(r->g, "x", KILN_F32, 2, (int64_t[]){-1, 1});
    r->y = kiln_g_input(r->g, "y", KILN_F32, 2, (int64_t[]){-1, 1});
    r->y_flat = kiln_g_input(r->g, "y_data", KILN_F32, 1, (int64_t[]){-1});
    if (!sigmoid) {
        kiln_node *hidden = kiln_g_tanh(kiln_g_matmul(r->x,
                                                      weight(r, 1, 5, seed, 0)));
        r->pred = kiln_g_matmul(hidden, weight(r, 5, 1, seed, 1));
    } else {
        kiln_node *h1 = kiln_g_sigmoid(kiln_g_matmul(r->x,
                                                     weight(r, 1, 5, seed, 0)));
        kiln_node *h2 = kiln_g_sigmoid(kiln_g_matmul(h1,
                                                     weight(r, 5, 3, seed, 1)));
        r->pred = kiln_g_matmul(h2, weight(r, 3, 1, seed, 2));
    }
    /* pred [n, 1] - y [n, 1]: the loss meant.  pred [n, 1] - y_data [n]
     * broadcasts to [n, n]: the course's full-batch loss. */
    r->mse = kiln_g_mean(kiln_g_square(kiln_g_sub(r->pred, r->y)), 0, NULL, 0);
    r->train_loss = way == COURSE_FULL_BATCH
                        ? kiln_g_mean(kiln_g_square(kiln_g_sub(r->pred,
                                                               r->y_flat)),
                                      0, NULL, 0)
                        : r->mse;
    if (kiln_g_gradients(r->train_loss, r->nweights, r->weights, r->grads) !=
        KILN_OK)
        return -1;
    for (int i = 0; i < r->nweights; i++)
        r->values[i] = kiln_g_variable_tensor(r->weights[i]);
    r->opt = kiln_optimizer_new(
        ctx, &(kiln_optimizer_config){.kind = KILN_OPT_SGD, .lr = lr});
    r->mse_per_epoch = malloc(sizeof *r->mse_per_epoch * (size_t)epochs);
    return r->opt && r->mse_per_epoch ? 0 : -1;
}

static void run_free(run *r)
{
    kiln_optimizer_free(r->opt);
    kiln_graph_free(r->g);
    free(r->mse_per_epoch);
}

/* Points idx[0..n-1] as the feeds x [n, 1], y [n, 1] and y_data [n]. */
static int feed(run *r, const int *idx, int n, kiln_feed feeds[3])
{
    float bx[POINTS], by[POINTS];
    for (int i = 0; i < n; i++) {
        bx[i] = data_x[idx[i]];
        by[i] = data_y[idx[i]];
    }
    size_t bytes = sizeof(float) * (size_t)n;
    feeds[0] = (kiln_feed){r->x, kiln_tensor_from_data(
                                     ctx, KILN_F32, 2, (int64_t[]){n, 1}, bx,
                                     bytes)};
    feeds[1] = (kiln_feed){r->y, kiln_tensor_from_data(
                                     ctx, KILN_F32, 2, (int64_t[]){n, 1}, by,
                                     bytes)};
    feeds[2] = (kiln_feed){r->y_flat, kiln_tensor_from_data(
                                          ctx, KILN_F32, 1, (int64_t[]){n},
                                          by, bytes)};
    return feeds[0].value && feeds[1].value && feeds[2].value ? 0 : -1;
}

static void feeds_free(kiln_feed feeds[3])
{
    for (int i = 0; i < 3; i++)
        kiln_tensor_free(feeds[i].value);
}

/* One gradient-descent step on points idx[0..n-1]. */
static int step(run *r, const int *idx, int n)
{
    kiln_feed feeds[3];
    kiln_tensor *grads[3] = {NULL};
    kiln_status st = KILN_ERROR_INVALID_ARGUMENT;
    if (feed(r, idx, n, feeds) == 0)
        st = kiln_graph_run(r->g, 3, feeds, r->nweights, r->grads, grads);
    if (st == KILN_OK && !r->kernels_per_step) {
        kiln_graph_stats gs;
        kiln_graph_get_stats(r->g, &gs);
        r->kernels_per_step = gs.kernels + (uint64_t)r->nweights;
    }
    if (st == KILN_OK)
        st = kiln_optimizer_step(r->opt, r->nweights, r->values, grads, -1.0);
    for (int i = 0; i < r->nweights; i++)
        kiln_tensor_free(grads[i]);
    feeds_free(feeds);
    return st == KILN_OK ? 0 : -1;
}

/* The mean squared error of all points (matching shapes). */
static double mse_of_all(run *r, const int *all)
{
    kiln_feed feeds[3];
    kiln_tensor *out = NULL;
    float v = NAN;
    if (feed(r, all, POINTS, feeds) == 0 &&
        kiln_graph_run(r->g, 3, feeds, 1, &r->mse, &out) == KILN_OK)
        kiln_tensor_read(out, &v, sizeof v);
    kiln_tensor_free(out);
    feeds_free(feeds);
    return v;
}

/* Predictions at PLOT_POINTS x in [-3, 3] into @xs, @ys. */
static int predict_curve(run *r, double *xs, double *ys)
{
    float px[PLOT_POINTS], py[PLOT_POINTS];
    for (int i = 0; i < PLOT_POINTS; i++)
        px[i] = (float)(-3.0 + 6.0 * i / (PLOT_POINTS - 1));
    kiln_tensor *tx = kiln_tensor_from_data(
        ctx, KILN_F32, 2, (int64_t[]){PLOT_POINTS, 1}, px, sizeof px);
    kiln_feed f = {r->x, tx};
    kiln_tensor *out = NULL;
    kiln_status st = kiln_graph_run(r->g, 1, &f, 1, &r->pred, &out);
    if (st == KILN_OK)
        st = kiln_tensor_read(out, py, sizeof py);
    for (int i = 0; i < PLOT_POINTS; i++) {
        xs[i] = px[i];
        ys[i] = py[i];
    }
    kiln_tensor_free(out);
    kiln_tensor_free(tx);
    return st == KILN_OK ? 0 : -1;
}

/* Fisher-Yates with a small xorshift generator: the same order on every
 * backend for a seed. */
static void shuffle(int *idx, int n, uint64_t *state)
{
    for (int i = n - 1; i > 0; i--) {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        int j = (int)(*state % (uint64_t)(i + 1));
        int t = idx[i];
        idx[i] = idx[j];
        idx[j] = t;
    }
}

/* Trains one network all three ways, prints and plots.  Returns 1 when
 * the mini-batch run fits and the course's full batch does not, 0 when
 * not, -1 on errors. */
static int train_network(const demo_args *a, int sigmoid)
{
    const char *net = sigmoid ? "sigmoid" : "tanh";
    printf("\n%s network (%s), %d epochs of %d points, lr %g, mini-batches "
           "of %lld:\n", net,
           sigmoid ? "1-5-3-1 sigmoid, no biases" : "1-5-1 tanh, no biases",
           a->epochs, POINTS, a->lr, (long long)a->batch);
    printf("  %6s  %18s  %12s  %12s   (mean squared error, all points)\n",
           "epoch", run_names[0], run_names[1], run_names[2]);
    run runs[RUNS];
    int all[POINTS], order[POINTS];
    for (int i = 0; i < POINTS; i++)
        all[i] = order[i] = i;
    uint64_t shuffle_state = a->seed * 0x9E3779B97F4A7C15ull + 1;
    double seconds[RUNS] = {0};
    int64_t samples[RUNS] = {0};
    int ok = 0;
    for (int k = 0; k < RUNS; k++)
        ok |= build(&runs[k], sigmoid, k, a->seed + 10 * (uint64_t)sigmoid,
                    a->lr, a->epochs);
    if (ok == 0) /* epoch 0: every run starts from the same weights */
        printf("  %6d  %18.4f  %12.4f  %12.4f\n", 0, mse_of_all(&runs[0], all),
               mse_of_all(&runs[1], all), mse_of_all(&runs[2], all));
    int every = a->epochs >= 10 ? a->epochs / 10 : 1;
    for (int e = 0; ok == 0 && e < a->epochs; e++) {
        for (int k = 0; ok == 0 && k < RUNS; k++) {
            double t0 = now();
            if (k != MINI_BATCH) {
                ok = step(&runs[k], all, POINTS);
            } else {
                shuffle(order, POINTS, &shuffle_state);
                for (int s = 0; ok == 0 && s < POINTS; s += (int)a->batch) {
                    int n = POINTS - s < a->batch ? POINTS - s : (int)a->batch;
                    ok = step(&runs[k], order + s, n);
                }
            }
            kiln_finish(ctx); /* ops run asynchronously: wait for them */
            seconds[k] += now() - t0; /* training only */
            samples[k] += POINTS;
            runs[k].mse_per_epoch[e] = mse_of_all(&runs[k], all);
        }
        if (ok == 0 && ((e + 1) % every == 0 || e == 0))
            printf("  %6d  %18.4f  %12.4f  %12.4f\n", e + 1,
                   runs[0].mse_per_epoch[e], runs[1].mse_per_epoch[e],
                   runs[2].mse_per_epoch[e]);
    }
    if (ok != 0 || kiln_status_of(ctx) != KILN_OK) {
        fprintf(stderr, "sin-regression: %s\n", kiln_error_message(ctx));
        for (int k = 0; k < RUNS; k++)
            run_free(&runs[k]);
        return -1;
    }

    /* Where each run ended, and the pictures. */
    double plot_x[RUNS + 1][PLOT_POINTS], plot_y[RUNS + 1][PLOT_POINTS];
    double final[RUNS];
    for (int k = 0; k < RUNS; k++) {
        final[k] = runs[k].mse_per_epoch[a->epochs - 1];
        predict_curve(&runs[k], plot_x[k], plot_y[k]);
        double lo = INFINITY, hi = -INFINITY;
        for (int i = 0; i < PLOT_POINTS; i++) {
            lo = fmin(lo, plot_y[k][i]);
            hi = fmax(hi, plot_y[k][i]);
        }
        printf("  %-18s final loss %.4f: %s (predictions on [-3, 3] span "
               "[%.3f, %.3f]); %.0f samples/s, %llu kernels per step\n",
               run_names[k], final[k],
               final[k] < FIT_MSE ? "fits sin(x)" : "does NOT fit", lo, hi,
               samples[k] / seconds[k],
               (unsigned long long)runs[k].kernels_per_step);
    }
    for (int i = 0; i < PLOT_POINTS; i++) {
        plot_x[RUNS][i] = plot_x[0][i];
        plot_y[RUNS][i] = sin(plot_x[0][i]);
    }
    double dx[POINTS], dy[POINTS];
    for (int i = 0; i < POINTS; i++) {
        dx[i] = data_x[i];
        dy[i] = data_y[i];
    }
    const char *names[5] = {"data", "sin(x)", run_names[0], run_names[1],
                            run_names[2]};
    const double *xs[5] = {dx, plot_x[RUNS], plot_x[0], plot_x[1],
                           plot_x[2]};
    const double *ys[5] = {dy, plot_y[RUNS], plot_y[0], plot_y[1],
                           plot_y[2]};
    int counts[5] = {POINTS, PLOT_POINTS, PLOT_POINTS, PLOT_POINTS,
                     PLOT_POINTS};
    int dots[5] = {1, 0, 0, 0, 0};
    char path[1024], title[128], file[32];
    int pictures = 0;
    snprintf(file, sizeof file, "fit-%s.svg", net);
    snprintf(title, sizeof title, "sin(x) and the %s network's fits", net);
    pictures += !demo_svg_xy(demo_path(a, file, path, sizeof path), title, "x",
                             "y", 5, names, xs, ys, counts, dots);
    const double *curves[RUNS] = {runs[0].mse_per_epoch,
                                  runs[1].mse_per_epoch,
                                  runs[2].mse_per_epoch};
    snprintf(file, sizeof file, "loss-%s.svg", net);
    snprintf(title, sizeof title, "%s network: mean squared error", net);
    pictures += !demo_svg_curves(demo_path(a, file, path, sizeof path), title,
                                 "loss", RUNS, run_names, curves, a->epochs);
    printf("  pictures: %d written (fit-%s.svg, loss-%s.svg)\n", pictures, net,
           net);

    int fits = final[MINI_BATCH] < FIT_MSE &&
               final[COURSE_FULL_BATCH] >= FIT_MSE && pictures == 2;
    printf("  %s: the mini-batch run %s, the course's full-batch run %s "
           "(full batch with matching shapes: %s)\n", net,
           final[MINI_BATCH] < FIT_MSE ? "fits" : "does NOT fit",
           final[COURSE_FULL_BATCH] < FIT_MSE ? "fits too"
                                              : "is stuck near the mean of y",
           final[FULL_BATCH] < FIT_MSE ? "fits" : "not yet fitted");
    for (int k = 0; k < RUNS; k++)
        run_free(&runs[k]);
    return fits;
}

int main(int argc, char **argv)
{
    demo_args a = {.epochs = 200, .batch = 32, .lr = 0.5, .seed = 1};
    const char *usage =
        "usage: sin-regression [options]: sin(x) regression by tiny MLPs, "
        "full batch vs mini-batch\n";
    if (!demo_parse_args(argc, argv, &a, usage))
        return 2;
    if (a.fast) /* the few-second variant the tests run */
        a.epochs = 10;
    if (a.batch > POINTS)
        a.batch = POINTS;
    ctx = demo_open(&a, "sin-regression");
    if (!ctx)
        return 2;
    double t0 = now();
    if (make_data(a.seed) != 0) {
        fprintf(stderr, "sin-regression: %s\n", kiln_error_message(ctx));
        kiln_context_destroy(ctx);
        return 2;
    }
    double mean = 0;
    for (int i = 0; i < POINTS; i++)
        mean += data_y[i] / POINTS;
    printf("data: %d points x ~ N(0, 1), y = sin(x) + N(0, 0.1) (seed "
           "%llu); mean of y %.4f\n", POINTS, (unsigned long long)a.seed,
           mean);
    int tanh_fits = train_network(&a, 0);
    int sigmoid_fits = tanh_fits < 0 ? -1 : train_network(&a, 1);
    const kiln_device_info *d = kiln_context_device(ctx);
    printf("\nsummary: sin-regression on %s [%s], %.1f s in all\n", d->name,
           kiln_backend_name(d->backend), now() - t0);
    int rc = tanh_fits < 0 || sigmoid_fits < 0 ? 2
             : tanh_fits && sigmoid_fits      ? 0
                                              : 1;
    printf("%s\n", rc == 0 ? "PASS: mini-batches fit sin(x); the course's "
                             "full-batch loss broadcasts and predicts the mean"
                           : "FAIL: not as the course says");
    kiln_context_destroy(ctx);
    return rc;
}
