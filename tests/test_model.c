/*
 * test_model.c - the model API (kiln.h, "Models"): XOR and a blob
 * classifier learn; fit's first step equals a graph + optimizer step done
 * by hand; checkpoints round-trip bit for bit and refuse mismatches
 * (leaving the model as it was); a run resumed from a checkpoint repeats
 * the uninterrupted run's losses; early stopping and restore_best;
 * metrics on a hand-made confusion matrix; progress output when not a
 * terminal; conv/pool/dropout/batch-norm, embedding + RNN and residual
 * models train.  Models are f32 on every backend; the C reference is the
 * oracle for the bit-exact checks (other backends within 1e-6).
 */
#include <time.h>
#include <unistd.h>

#include "graph_check.h"

static kiln_context *ctx;
static int on_reference;
static char tmpdir[256];

/* ---- helpers -------------------------------------------------------------- */

static double wall_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void path_in_tmp(char *buf, size_t size, const char *name)
{
    snprintf(buf, size, "%s/%s", tmpdir, name);
}

/* @count samples of 3 Gaussian blobs in 2-D (well separated). */
static void make_blobs(kiln_dataset *d, int64_t count, uint64_t seed)
{
    static const double centre[3][2] = {{-2, -2}, {2, -2}, {0, 2.5}};
    harness_rng r = {seed};
    *d = (kiln_dataset){.count = count, .ndim = 1, .shape = {2},
                        .classes = 3};
    d->x = malloc(sizeof(float) * 2 * (size_t)count);
    d->y = malloc(sizeof(int32_t) * (size_t)count);
    for (int64_t i = 0; i < count; i++) {
        int c = (int)(i % 3);
        double u1 = harness_uniform(&r, 1e-12, 1), u2 = harness_uniform(&r, 0, 1);
        double rad = sqrt(-2 * log(u1)) * 0.7;
        d->x[2 * i] = (float)(centre[c][0] + rad * cos(2 * M_PI * u2));
        d->x[2 * i + 1] = (float)(centre[c][1] + rad * sin(2 * M_PI * u2));
        d->y[i] = c;
    }
}

/* y = sin(x) on x in [-3, 3]: a regression set with targets. */
static void make_sin(kiln_dataset *d, int64_t count)
{
    *d = (kiln_dataset){.count = count, .ndim = 1, .shape = {1},
                        .target_dim = 1};
    d->x = malloc(sizeof(float) * (size_t)count);
    d->targets = malloc(sizeof(float) * (size_t)count);
    for (int64_t i = 0; i < count; i++) {
        double x = -3 + 6 * (double)i / (double)(count - 1);
        d->x[i] = (float)x;
        d->targets[i] = (float)sin(x);
    }
}

static float *read_floats(kiln_tensor *t, int64_t *n)
{
    int64_t count = kiln_tensor_numel(t);
    float *v = malloc(sizeof(float) * (size_t)(count > 0 ? count : 1));
    if (!t || kiln_tensor_read(t, v, sizeof(float) * (size_t)count) !=
                  KILN_OK) {
        free(v);
        return NULL;
    }
    if (n)
        *n = count;
    return v;
}

/* The largest |a - b| over two tensors' elements (INFINITY on error). */
static double max_diff(kiln_tensor *a, kiln_tensor *b)
{
    int64_t na = 0, nb = 0;
    float *x = read_floats(a, &na), *y = read_floats(b, &nb);
    double worst = x && y && na == nb ? 0 : INFINITY;
    for (int64_t i = 0; x && y && na == nb && i < na; i++)
        worst = fmax(worst, fabs((double)x[i] - y[i]));
    free(x);
    free(y);
    return worst;
}

static int same_bits(kiln_tensor *a, kiln_tensor *b)
{
    int64_t na = 0, nb = 0;
    float *x = read_floats(a, &na), *y = read_floats(b, &nb);
    int same = x && y && na == nb && memcmp(x, y, sizeof(float) * (size_t)na)
                                         == 0;
    free(x);
    free(y);
    return same;
}

static kiln_model *blob_model(uint64_t seed, int64_t hidden, double dropout)
{
    kiln_model *m = kiln_model_new(ctx, KILN_F32, 1, (int64_t[]){2}, seed);
    kiln_model_dense(m, hidden, KILN_ACT_RELU);
    if (dropout > 0)
        kiln_model_dropout(m, dropout);
    kiln_model_dense(m, 3, KILN_ACT_NONE);
    kiln_optimizer_config adam = {.kind = KILN_OPT_ADAM, .lr = 0.01};
    kiln_status st = kiln_model_compile(m, KILN_LOSS_SOFTMAX_XENT, &adam);
    CHECK(st == KILN_OK, "blob model compiles: %s", kiln_error_message(ctx));
    return m;
}

static const kiln_fit_options quiet = {.progress = KILN_PROGRESS_OFF};

/* ---- learning ------------------------------------------------------------- */

/* XOR 2-2-1 with tanh and sigmoid, MSE on the labels, reaches 100 %. */
static void test_xor(void)
{
    float x[8] = {0, 0, 0, 1, 1, 0, 1, 1};
    int32_t y[4] = {0, 1, 1, 0};
    kiln_dataset d = {.count = 4, .ndim = 1, .shape = {2}, .x = x, .y = y,
                      .classes = 2};
    kiln_model *m = kiln_model_new(ctx, KILN_F32, 1, (int64_t[]){2}, 3);
    kiln_model_dense(m, 2, KILN_ACT_TANH);
    kiln_model_dense(m, 1, KILN_ACT_SIGMOID);
    kiln_optimizer_config adam = {.kind = KILN_OPT_ADAM, .lr = 0.05};
    kiln_model_compile(m, KILN_LOSS_MSE, &adam);
    kiln_fit_options o = quiet;
    o.epochs = 300;
    o.batch = 4;
    kiln_history h;
    double t0 = wall_seconds();
    kiln_status st = kiln_model_fit(m, &d, &o, &h);
    kiln_metrics mt;
    kiln_status se = kiln_model_evaluate(m, &d, 4, &mt);
    CHECK(st == KILN_OK && se == KILN_OK && mt.accuracy == 1.0,
          "XOR reaches 100 %% in 300 steps: accuracy %g, loss %g (%s)",
          mt.accuracy, mt.loss, kiln_error_message(ctx));
    CHECK(h.steps == 300 && h.epochs == 300 && h.loss[299] < h.loss[0],
          "XOR: %lld steps, loss %g -> %g", (long long)h.steps, h.loss[0],
          h.epochs ? h.loss[h.epochs - 1] : NAN);
    printf("  XOR: loss %.4f -> %.4f in %lld steps, %llu kernels per step "
           "(graph), %llu in all, peak %llu bytes, %.2f s\n",
           h.loss[0], h.loss[h.epochs - 1], (long long)h.steps,
           (unsigned long long)h.kernels_per_step,
           (unsigned long long)h.step_kernels_total,
           (unsigned long long)h.peak_step_bytes,
           wall_seconds() - t0);
    kiln_history_free(&h);
    kiln_metrics_free(&mt);
    kiln_model_free(m);
}

/* A 2-16-3 MLP on three blobs: >= 95 % on held-out samples; evaluate's
 * metrics hang together; the summary lists the layers. */
static void test_blobs(void)
{
    kiln_dataset train, test;
    make_blobs(&train, 300, 11);
    make_blobs(&test, 150, 12);
    kiln_model *m = blob_model(5, 16, 0);
    kiln_fit_options o = quiet;
    o.epochs = 15;
    o.batch = 32;
    o.shuffle = 1;
    kiln_history h;
    kiln_status st = kiln_model_fit(m, &train, &o, &h);
    kiln_metrics mt;
    kiln_status se = kiln_model_evaluate(m, &test, 64, &mt);
    CHECK(st == KILN_OK && se == KILN_OK && mt.accuracy >= 0.95,
          "blobs: test accuracy %g >= 0.95 (%s)", mt.accuracy,
          kiln_error_message(ctx));
    int64_t total = 0, diag = 0;
    for (int i = 0; mt.confusion && i < 9; i++) {
        total += mt.confusion[i];
        diag += i % 4 == 0 ? mt.confusion[i] : 0;
    }
    CHECK(mt.classes == 3 && total == 150 &&
              fabs((double)diag / 150 - mt.accuracy) < 1e-12 &&
              mt.macro_f1 > 0.9,
          "blobs: confusion matrix of %d classes sums to %lld, macro F1 %g",
          mt.classes, (long long)total, mt.macro_f1);
    printf("  blobs: test accuracy %.3f, loss %.4f, %.0f samples/s\n",
           mt.accuracy, mt.loss, h.samples_per_second);
    char *text = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&text, &len);
    kiln_model_summary(m, mem);
    fclose(mem);
    CHECK(text && strstr(text, "dense (relu)") && strstr(text, "[16]") &&
              strstr(text, "parameters: 99 (trainable 99"),
          "summary:\n%s", text ? text : "(none)");
    free(text);
    kiln_metrics_free(&mt);
    kiln_history_free(&h);
    kiln_model_free(m);
    kiln_dataset_free(&train);
    kiln_dataset_free(&test);
}

/* sin(x) regression with targets (no labels): the loss falls a lot. */
static void test_sin_regression(void)
{
    kiln_dataset d;
    make_sin(&d, 64);
    kiln_model *m = kiln_model_new(ctx, KILN_F32, 1, (int64_t[]){1}, 9);
    kiln_model_dense(m, 16, KILN_ACT_TANH);
    kiln_model_dense(m, 1, KILN_ACT_NONE);
    kiln_optimizer_config adam = {.kind = KILN_OPT_ADAM, .lr = 0.02};
    kiln_model_compile(m, KILN_LOSS_MSE, &adam);
    kiln_fit_options o = quiet;
    o.epochs = 60;
    o.batch = 16;
    o.shuffle = 1;
    kiln_history h;
    kiln_status st = kiln_model_fit(m, &d, &o, &h);
    CHECK(st == KILN_OK && h.epochs == 60 && isnan(h.accuracy[0]) &&
              h.loss[59] < 0.1 * h.loss[0] && h.loss[59] < 0.02,
          "sin regression: loss %g -> %g, accuracy NaN (%s)", h.loss[0],
          h.epochs ? h.loss[h.epochs - 1] : NAN, kiln_error_message(ctx));
    kiln_metrics mt;
    st = kiln_model_evaluate(m, &d, 0, &mt);
    CHECK(st == KILN_OK && mt.classes == 0 && isnan(mt.accuracy) &&
              fabs(mt.loss - h.loss[59]) < 0.05,
          "regression evaluate: loss %g, no classes", mt.loss);
    kiln_metrics_free(&mt);
    kiln_history_free(&h);
    kiln_model_free(m);
    kiln_dataset_free(&d);
}

/* One epoch, batch = everything, SGD: the weights after fit are those of
 * one step of a graph and an optimizer driven by hand. */
static void test_one_step_by_hand(void)
{
    kiln_dataset d;
    make_sin(&d, 20);
    kiln_model *m = kiln_model_new(ctx, KILN_F32, 1, (int64_t[]){1}, 21);
    kiln_model_dense(m, 8, KILN_ACT_TANH);
    kiln_model_dense(m, 1, KILN_ACT_NONE);
    kiln_optimizer_config sgd = {.kind = KILN_OPT_SGD, .lr = 0.1};
    kiln_model_compile(m, KILN_LOSS_MSE, &sgd);
    const char *names[4] = {"layer0.dense.weight", "layer0.dense.bias",
                            "layer1.dense.weight", "layer1.dense.bias"};
    CHECK(kiln_model_param_count(m) == 4 &&
              strcmp(kiln_model_param_name(m, 2), names[2]) == 0,
          "parameters are named layer<i>.<kind>.<role>");

    /* The same computation by hand, from the same initial weights. */
    kiln_graph *g = kiln_graph_new(ctx);
    kiln_node *x = kiln_g_input(g, "x", KILN_F32, 2, (int64_t[]){-1, 1});
    kiln_node *t = kiln_g_input(g, "t", KILN_F32, 2, (int64_t[]){-1, 1});
    kiln_node *v[4];
    for (int i = 0; i < 4; i++)
        v[i] = kiln_g_variable(g, names[i], kiln_model_param(m, names[i]));
    kiln_node *hid = kiln_g_tanh(kiln_g_add(kiln_g_gemm(x, 0, v[0], 1), v[1]));
    kiln_node *out = kiln_g_add(kiln_g_gemm(hid, 0, v[2], 1), v[3]);
    kiln_node *loss = kiln_g_mse_loss(out, t, 0);
    kiln_node *grads[4];
    kiln_g_gradients(loss, 4, v, grads);
    kiln_tensor *xv = kiln_tensor_from_data(ctx, KILN_F32, 2,
                                            (int64_t[]){20, 1}, d.x,
                                            20 * sizeof(float));
    kiln_tensor *tv = kiln_tensor_from_data(ctx, KILN_F32, 2,
                                            (int64_t[]){20, 1}, d.targets,
                                            20 * sizeof(float));
    kiln_feed feeds[2] = {{x, xv}, {t, tv}};
    kiln_tensor *gv[4] = {NULL}, *params[4];
    kiln_graph_run(g, 2, feeds, 4, grads, gv);
    for (int i = 0; i < 4; i++)
        params[i] = kiln_g_variable_tensor(v[i]);
    kiln_optimizer *opt = kiln_optimizer_new(ctx, &sgd);
    kiln_status st = kiln_optimizer_step(opt, 4, params, gv, -1);

    kiln_fit_options o = quiet;
    o.batch = 20;
    kiln_history h;
    kiln_status sf = kiln_model_fit(m, &d, &o, &h);
    double worst = 0;
    for (int i = 0; i < 4; i++)
        worst = fmax(worst, max_diff(params[i],
                                     kiln_model_param(m, names[i])));
    CHECK(st == KILN_OK && sf == KILN_OK && h.steps == 1 && worst <= 1e-7,
          "fit's one SGD step equals the step by hand: max difference %g "
          "(%s)", worst, kiln_error_message(ctx));
    for (int i = 0; i < 4; i++)
        kiln_tensor_free(gv[i]);
    kiln_optimizer_free(opt);
    kiln_tensor_free(xv);
    kiln_tensor_free(tv);
    kiln_graph_free(g);
    kiln_history_free(&h);
    kiln_model_free(m);
    kiln_dataset_free(&d);
}

/* ---- checkpoints ---------------------------------------------------------- */

static void test_save_load(void)
{
    char path[320], bad[320];
    path_in_tmp(path, sizeof path, "blobs.safetensors");
    path_in_tmp(bad, sizeof bad, "bad.safetensors");
    kiln_dataset train;
    make_blobs(&train, 90, 31);
    kiln_model *m = blob_model(7, 16, 0);
    kiln_fit_options o = quiet;
    o.epochs = 2;
    o.batch = 16;
    kiln_model_fit(m, &train, &o, NULL);
    kiln_status st = kiln_model_save(m, path);
    CHECK(st == KILN_OK, "save: %s", kiln_error_message(ctx));

    /* A fresh model of another seed, loaded: the same outputs, bit for
     * bit, and the training position. */
    kiln_model *m2 = blob_model(99, 16, 0);
    kiln_tensor *p1 = kiln_model_predict(m, &train, 32);
    kiln_tensor *before = kiln_model_predict(m2, &train, 32);
    st = kiln_model_load(m2, path);
    kiln_tensor *p2 = kiln_model_predict(m2, &train, 32);
    CHECK(st == KILN_OK && p1 && p2 && same_bits(p1, p2) &&
              !same_bits(p1, before),
          "save -> load -> predict is bit-identical (%s)",
          kiln_error_message(ctx));
    CHECK(kiln_model_global_step(m2) == 12 && kiln_tensor_dim(p2, 0) == 90 &&
              kiln_tensor_dim(p2, 1) == 3,
          "loaded global step %lld (12), predictions [90, 3]",
          (long long)kiln_model_global_step(m2));
    /* Probabilities: rows sum to 1. */
    float *probs = read_floats(p2, NULL);
    double worst = 0;
    for (int i = 0; probs && i < 90; i++)
        worst = fmax(worst, fabs(probs[3 * i] + probs[3 * i + 1] +
                                 probs[3 * i + 2] - 1.0));
    CHECK(probs && worst < 1e-5, "predict gives probabilities (%g)", worst);
    free(probs);

    /* A layer of another size: a clear error, nothing changed. */
    kiln_model *wide = blob_model(7, 32, 0);
    kiln_tensor *w0 = kiln_model_predict(wide, &train, 32);
    st = kiln_model_load(wide, path);
    const char *msg = kiln_error_message(ctx);
    CHECK(st != KILN_OK && strstr(msg, "layer 0 (dense) has 32 units, the "
                                       "file 16"),
          "a wrong layer size is named: %s", msg);
    kiln_clear_error(ctx);
    kiln_tensor *w1 = kiln_model_predict(wide, &train, 32);
    CHECK(w0 && w1 && same_bits(w0, w1), "the refused load changed nothing");

    /* A file without one of the tensors (no description: checked by
     * names), then a truncated file: errors, m2 unchanged. */
    kiln_tensor *three[3];
    const char *names[3];
    for (int i = 0; i < 3; i++) {
        names[i] = kiln_model_param_name(m, i);
        three[i] = kiln_model_param(m, names[i]);
    }
    kiln_safetensors_save(ctx, bad, 3, names, three, 0, NULL, NULL);
    kiln_model *m3 = blob_model(3, 16, 0);
    kiln_tensor *q0 = kiln_model_predict(m3, &train, 32);
    st = kiln_model_load(m3, bad);
    msg = kiln_error_message(ctx);
    CHECK(st != KILN_OK && strstr(msg, "no tensor \"layer1.dense.bias\""),
          "a missing tensor is named: %s", msg);
    kiln_clear_error(ctx);
    kiln_tensor *q1 = kiln_model_predict(m3, &train, 32);
    CHECK(q0 && q1 && same_bits(q0, q1), "the refused load changed nothing");
    FILE *in = fopen(path, "rb"), *out = fopen(bad, "wb");
    char buf[65536];
    size_t n = in ? fread(buf, 1, sizeof buf, in) : 0;
    if (out)
        fwrite(buf, 1, n / 2, out);
    if (in)
        fclose(in);
    if (out)
        fclose(out);
    st = kiln_model_load(m3, bad);
    CHECK((st == KILN_ERROR_CORRUPT || st == KILN_ERROR_IO) && n > 1000,
          "a truncated checkpoint (%zu of %zu bytes) is refused: %s", n / 2,
          n, kiln_error_message(ctx));
    kiln_clear_error(ctx);
    kiln_tensor *q2 = kiln_model_predict(m3, &train, 32);
    CHECK(q2 && same_bits(q0, q2), "the truncated load changed nothing");

    kiln_tensor *ts[] = {p1, p2, before, w0, w1, q0, q1, q2};
    for (size_t i = 0; i < sizeof ts / sizeof *ts; i++)
        kiln_tensor_free(ts[i]);
    kiln_model_free(m);
    kiln_model_free(m2);
    kiln_model_free(m3);
    kiln_model_free(wide);
    kiln_dataset_free(&train);
    remove(path);
    remove(bad);
}

/* Resume: 2 epochs straight vs 1 epoch, save, a new model, load, resume to
 * epoch 2.  Adam (its moments and step count matter), shuffling, dropout
 * and a partial last batch: the second epoch's step losses repeat. */
static void test_resume(void)
{
    char path[320];
    path_in_tmp(path, sizeof path, "resume.safetensors");
    kiln_dataset train;
    make_blobs(&train, 120, 41);
    kiln_fit_options o = quiet;
    o.batch = 16;
    o.shuffle = 1;

    kiln_model *a = blob_model(13, 16, 0.25);
    kiln_history ha;
    o.epochs = 2;
    kiln_status st = kiln_model_fit(a, &train, &o, &ha);

    kiln_model *b = blob_model(13, 16, 0.25);
    kiln_history hb;
    o.epochs = 1;
    st |= kiln_model_fit(b, &train, &o, &hb);
    st |= kiln_model_save(b, path);
    kiln_model *c = blob_model(13, 16, 0.25);
    st |= kiln_model_load(c, path);
    kiln_history hc;
    o.epochs = 2;
    o.resume = 1;
    st |= kiln_model_fit(c, &train, &o, &hc);
    CHECK(st == KILN_OK && ha.steps == 16 && hb.steps == 8 &&
              hc.steps == 8 && hc.first_epoch == 1 && hc.epochs == 1,
          "resume runs the second epoch only: %lld + %lld steps, first "
          "epoch %lld (%s)", (long long)hb.steps, (long long)hc.steps,
          (long long)hc.first_epoch, kiln_error_message(ctx));
    double tol = on_reference ? 0 : 1e-6, worst = 0;
    for (int i = 0; hc.step_loss && i < 8 && hc.steps == 8; i++)
        worst = fmax(worst, fabs(hc.step_loss[i] - ha.step_loss[8 + i]));
    int first_same = hb.steps == 8 && memcmp(hb.step_loss, ha.step_loss,
                                             8 * sizeof(double)) == 0;
    CHECK(hc.steps == 8 && worst <= tol && first_same,
          "resumed losses equal the uninterrupted run's: worst %g "
          "(tolerance %g)", worst, tol);
    double wdiff = 0;
    for (int i = 0; i < kiln_model_param_count(a); i++) {
        const char *name = kiln_model_param_name(a, i);
        wdiff = fmax(wdiff, max_diff(kiln_model_param(a, name),
                                     kiln_model_param(c, name)));
    }
    CHECK(wdiff <= (on_reference ? 0 : 1e-5),
          "and so do the final weights: %g", wdiff);

    /* Resuming with another batch size, or another seed, is refused. */
    kiln_model *e = blob_model(14, 16, 0.25);
    kiln_model_load(e, path);
    st = kiln_model_fit(e, &train, &o, NULL);
    CHECK(st == KILN_ERROR_INVALID_ARGUMENT &&
              strstr(kiln_error_message(ctx), "seed"),
          "resume with another seed is refused: %s", kiln_error_message(ctx));
    kiln_clear_error(ctx);
    o.batch = 10;
    kiln_model_load(c, path);
    st = kiln_model_fit(c, &train, &o, NULL);
    CHECK(st == KILN_ERROR_INVALID_ARGUMENT &&
              strstr(kiln_error_message(ctx), "batch 16"),
          "resume with another batch is refused: %s",
          kiln_error_message(ctx));
    kiln_clear_error(ctx);

    kiln_history_free(&ha);
    kiln_history_free(&hb);
    kiln_history_free(&hc);
    kiln_model_free(a);
    kiln_model_free(b);
    kiln_model_free(c);
    kiln_model_free(e);
    kiln_dataset_free(&train);
    remove(path);
}

/* Recorded steps: a fit that replays its full-batch steps from one
 * recording ends with the same weights and per-step losses, bit for bit,
 * as one that runs every step op by op; without and with dropout (a
 * replay reads each step's mask offset from the device, so its masks are
 * the eager step's, not the captured ones again). */
static void compare_replayed(double dropout)
{
    kiln_dataset train;
    make_blobs(&train, 100, 43); /* 6 full batches of 16 and one of 4 */
    kiln_fit_options o = quiet;
    o.batch = 16;
    o.shuffle = 1;
    o.epochs = 3;
    kiln_model *a = blob_model(17, 12, dropout);
    kiln_model *b = blob_model(17, 12, dropout);
    kiln_history ha, hb;
    o.eager_steps = 1;
    kiln_status st = kiln_model_fit(a, &train, &o, &ha);
    o.eager_steps = 0;
    st |= kiln_model_fit(b, &train, &o, &hb);
    CHECK(st == KILN_OK, "both fits run (dropout %g): %s", dropout,
          kiln_error_message(ctx));
    CHECK(ha.replayed_steps == 0 && hb.replayed_steps == 3 * 6 - 1,
          "17 of 21 steps replayed (dropout %g; eager %lld, default %lld)",
          dropout, (long long)ha.replayed_steps,
          (long long)hb.replayed_steps);
    int same = ha.steps == hb.steps;
    for (int64_t i = 0; same && i < ha.steps; i++) {
        same = ha.step_loss[i] == hb.step_loss[i];
        if (!same)
            printf("  step %lld: loss %.9g eager, %.9g replayed\n",
                   (long long)i, ha.step_loss[i], hb.step_loss[i]);
    }
    for (int i = 0; i < kiln_model_param_count(a); i++) {
        const char *name = kiln_model_param_name(a, i);
        same &= same_bits(kiln_model_param(a, name),
                          kiln_model_param(b, name));
    }
    CHECK(same, "replayed steps = eager steps with dropout %g, bit for bit "
          "(losses and weights)", dropout);
    printf("  dropout %g: recorded step %llu kernels, graph run %llu "
           "kernels\n", dropout,
           (unsigned long long)hb.recorded_step_kernels,
           (unsigned long long)hb.kernels_per_step);
    kiln_history_free(&ha);
    kiln_history_free(&hb);
    kiln_model_free(a);
    kiln_model_free(b);
    kiln_dataset_free(&train);
}

static void test_replayed_steps(void)
{
    compare_replayed(0);
    compare_replayed(0.2);
}

/* Checkpoints every N steps during fit. */
static void test_checkpoint_every(void)
{
    char path[320];
    path_in_tmp(path, sizeof path, "every.safetensors");
    kiln_dataset train;
    make_blobs(&train, 60, 51);
    kiln_model *m = blob_model(17, 8, 0);
    kiln_fit_options o = quiet;
    o.batch = 16; /* 4 steps an epoch */
    o.epochs = 2;
    o.checkpoint_path = path;
    o.checkpoint_every = 3;
    kiln_status st = kiln_model_fit(m, &train, &o, NULL);
    kiln_model *m2 = blob_model(17, 8, 0);
    st |= kiln_model_load(m2, path);
    CHECK(st == KILN_OK && kiln_model_global_step(m2) == 6,
          "the last checkpoint is at step 6: %lld (%s)",
          (long long)kiln_model_global_step(m2), kiln_error_message(ctx));
    kiln_model_free(m);
    kiln_model_free(m2);
    kiln_dataset_free(&train);
    remove(path);
}

static int record_lr(const kiln_epoch_logs *logs, void *user)
{
    ((double *)user)[logs->epoch] = logs->lr;
    return 0;
}

/* A learning-rate schedule per epoch reaches the optimizer (the logs say
 * which rate ran), and clipping bounds every step: with a global norm of
 * at most 1e-6, SGD moves no weight further than lr * 1e-6 a step. */
static void test_schedule_and_clipping(void)
{
    kiln_dataset train;
    make_blobs(&train, 60, 55);
    kiln_model *m = kiln_model_new(ctx, KILN_F32, 1, (int64_t[]){2}, 27);
    kiln_model_dense(m, 8, KILN_ACT_TANH);
    kiln_model_dense(m, 3, KILN_ACT_NONE);
    kiln_optimizer_config sgd = {.kind = KILN_OPT_SGD, .lr = 0.5};
    kiln_model_compile(m, KILN_LOSS_SOFTMAX_XENT, &sgd);
    const char *name = "layer0.dense.weight";
    kiln_tensor *w0 = kiln_contiguous_copy(kiln_model_param(m, name));
    kiln_lr_schedule decay = {.kind = KILN_LR_EXPONENTIAL, .lr = 0.5,
                              .decay = 0.5};
    double lrs[3] = {0};
    kiln_fit_options o = quiet;
    o.epochs = 3;
    o.batch = 20; /* 9 steps */
    o.lr_schedule = &decay;
    o.lr_per_epoch = 1;
    o.clip_norm = 1e-6;
    o.on_epoch = record_lr;
    o.user = lrs;
    kiln_status st = kiln_model_fit(m, &train, &o, NULL);
    double moved = max_diff(w0, kiln_model_param(m, name));
    CHECK(st == KILN_OK && lrs[0] == 0.5 && lrs[1] == 0.25 &&
              lrs[2] == 0.125,
          "per-epoch schedule: lr %g %g %g (%s)", lrs[0], lrs[1], lrs[2],
          kiln_error_message(ctx));
    double bound = 3 * (0.5 + 0.25 + 0.125) * 1e-6;
    /* Twice the bound: each f32 update rounds to the weight's ulp. */
    CHECK(moved > 0 && moved <= 2 * bound,
          "clipped steps move a weight by %g <= %g", moved, bound);
    kiln_tensor_free(w0);
    kiln_model_free(m);
    kiln_dataset_free(&train);
}

/* An f64 model (where the device has f64): trains, predicts in f64. */
static void test_f64(void)
{
    if (!kiln_context_device(ctx)->fp64) {
        printf("  f64: the device has no fp64, skipped\n");
        return;
    }
    kiln_dataset train;
    make_blobs(&train, 60, 57);
    kiln_model *m = kiln_model_new(ctx, KILN_F64, 1, (int64_t[]){2}, 29);
    kiln_model_dense(m, 8, KILN_ACT_RELU);
    kiln_model_dense(m, 3, KILN_ACT_NONE);
    kiln_model_compile(m, KILN_LOSS_SOFTMAX_XENT, NULL);
    kiln_fit_options o = quiet;
    o.epochs = 20;
    o.batch = 16;
    kiln_history h;
    kiln_status st = kiln_model_fit(m, &train, &o, &h);
    kiln_tensor *p = kiln_model_predict(m, &train, 0);
    CHECK(st == KILN_OK && h.loss[19] < h.loss[0] && p &&
              kiln_tensor_dtype(p) == KILN_F64,
          "f64 model trains (loss %g -> %g) and predicts f64 (%s)",
          h.epochs ? h.loss[0] : NAN, h.epochs ? h.loss[h.epochs - 1] : NAN,
          kiln_error_message(ctx));
    kiln_tensor_free(p);
    kiln_history_free(&h);
    kiln_model_free(m);
    kiln_dataset_free(&train);
}

/* ---- early stopping, metrics, progress -------------------------------------- */

/* Validation labels are the training labels shifted, so validation loss
 * rises as the model learns: training stops after `patience` epochs past
 * the best one, and restore_best puts that epoch's weights back. */
static void test_early_stopping(void)
{
    kiln_dataset train, val;
    make_blobs(&train, 150, 61);
    make_blobs(&val, 60, 62);
    for (int64_t i = 0; i < val.count; i++)
        val.y[i] = (val.y[i] + 1) % 3;
    kiln_model *m = blob_model(19, 16, 0);
    kiln_fit_options o = quiet;
    o.epochs = 40;
    o.batch = 32;
    o.validation = &val;
    o.patience = 2;
    o.restore_best = 1;
    kiln_history h;
    kiln_status st = kiln_model_fit(m, &train, &o, &h);
    CHECK(st == KILN_OK && h.stopped_early && h.best_epoch >= 0 &&
              h.epochs == h.best_epoch + 3 && h.epochs < 40,
          "stops 2 epochs after the best (%lld) of %lld epochs (%s)",
          (long long)h.best_epoch, (long long)h.epochs,
          kiln_error_message(ctx));
    kiln_metrics mt;
    kiln_model_evaluate(m, &val, 32, &mt);
    double best = h.best_epoch >= 0 ? h.val_loss[h.best_epoch] : NAN;
    CHECK(fabs(mt.loss - best) <= 1e-6 * fabs(best) &&
              h.val_loss[h.epochs - 1] > best && h.best_value == best,
          "restore_best: val loss %.7g, best %.7g, last %.7g", mt.loss, best,
          h.epochs ? h.val_loss[h.epochs - 1] : NAN);
    kiln_metrics_free(&mt);
    kiln_history_free(&h);
    kiln_model_free(m);
    kiln_dataset_free(&train);
    kiln_dataset_free(&val);
}

static void test_metrics(void)
{
    int32_t truth[10] = {0, 0, 0, 1, 1, 2, 2, 2, 2, 2};
    int32_t pred[10] = {0, 1, 0, 1, 2, 2, 2, 0, 2, 1};
    kiln_metrics m;
    kiln_status st = kiln_metrics_compute(ctx, 4, 10, truth, pred, &m);
    int64_t confusion[16] = {2, 1, 0, 0, 0, 1, 1, 0, 1, 1, 3, 0, 0, 0, 0, 0};
    double p[4] = {2.0 / 3, 1.0 / 3, 0.75, 0}, r[4] = {2.0 / 3, 0.5, 0.6, 0};
    double f[4] = {2.0 / 3, 0.4, 2.0 / 3, 0};
    int ok = st == KILN_OK && m.classes == 4 &&
             memcmp(m.confusion, confusion, sizeof confusion) == 0 &&
             fabs(m.accuracy - 0.6) < 1e-15;
    for (int k = 0; ok && k < 4; k++)
        ok = fabs(m.precision[k] - p[k]) < 1e-15 &&
             fabs(m.recall[k] - r[k]) < 1e-15 && fabs(m.f1[k] - f[k]) < 1e-15;
    CHECK(ok, "hand-made confusion matrix: precision, recall, F1");
    CHECK(st == KILN_OK &&
              fabs(m.macro_precision - (2.0 / 3 + 1.0 / 3 + 0.75) / 4) <
                  1e-15 &&
              fabs(m.macro_recall - (2.0 / 3 + 0.5 + 0.6) / 4) < 1e-15 &&
              fabs(m.macro_f1 - (2.0 / 3 + 0.4 + 2.0 / 3) / 4) < 1e-15,
          "macro averages %g %g %g", m.macro_precision, m.macro_recall,
          m.macro_f1);
    kiln_metrics_free(&m);
    pred[3] = 4;
    st = kiln_metrics_compute(ctx, 4, 10, truth, pred, &m);
    CHECK(st == KILN_ERROR_INVALID_ARGUMENT &&
              strstr(kiln_error_message(ctx), "sample 3"),
          "a class outside 0..3 is refused: %s", kiln_error_message(ctx));
    kiln_clear_error(ctx);
}

static int stop_after_two(const kiln_epoch_logs *logs, void *user)
{
    int *calls = user;
    ++*calls;
    return logs->epoch == 1;
}

/* Not a terminal: one plain line per epoch, no carriage returns; the
 * callback sees every epoch and can stop training. */
static void test_progress(void)
{
    kiln_dataset train;
    make_blobs(&train, 90, 71);
    kiln_model *m = blob_model(23, 8, 0);
    char *text = NULL;
    size_t len = 0;
    FILE *log = open_memstream(&text, &len);
    int calls = 0;
    kiln_fit_options o = {.epochs = 5, .batch = 32, .validation_split = 0.2,
                          .progress_out = log, .on_epoch = stop_after_two,
                          .user = &calls};
    kiln_history h;
    kiln_status st = kiln_model_fit(m, &train, &o, &h);
    fclose(log);
    int lines = 0;
    for (size_t i = 0; text && i < len; i++)
        lines += text[i] == '\n';
    CHECK(st == KILN_OK && calls == 2 && h.epochs == 2 && h.stopped_early,
          "the callback stops training after epoch 2 (%d calls)", calls);
    CHECK(text && lines == 2 && !strchr(text, '\r') &&
              strstr(text, "Epoch 1/5 - 3 steps - loss ") &&
              strstr(text, "Epoch 2/5") && strstr(text, " - accuracy ") &&
              strstr(text, " - val_loss ") && strstr(text, "samples/s"),
          "plain progress lines:\n%s", text ? text : "(none)");
    printf("  progress: %s", text ? text : "");
    free(text);
    /* Forced bar: redrawn with \r (at least the epoch's final draw). */
    text = NULL;
    log = open_memstream(&text, &len);
    o = (kiln_fit_options){.epochs = 1, .batch = 32,
                           .progress = KILN_PROGRESS_BAR,
                           .progress_out = log};
    kiln_history_free(&h);
    st = kiln_model_fit(m, &train, &o, NULL);
    fclose(log);
    CHECK(st == KILN_OK && text && text[0] == '\r' &&
              strstr(text, "Epoch 1/1 3/3 [") && strstr(text, "]"),
          "a bar when asked: %s", text ? text : "(none)");
    free(text);
    kiln_model_free(m);
    kiln_dataset_free(&train);
}

/* ---- other layers ------------------------------------------------------------ */

/* 8x8 images of a horizontal or a vertical bar. */
static void make_bars(kiln_dataset *d, int64_t count, uint64_t seed)
{
    harness_rng r = {seed};
    *d = (kiln_dataset){.count = count, .ndim = 3, .shape = {1, 8, 8},
                        .classes = 2};
    d->x = calloc((size_t)count * 64, sizeof(float));
    d->y = malloc(sizeof(int32_t) * (size_t)count);
    for (int64_t i = 0; i < count; i++) {
        int vertical = (int)(i % 2), at = harness_int(&r, 1, 6);
        for (int k = 0; k < 8; k++) {
            int row = vertical ? k : at, col = vertical ? at : k;
            d->x[i * 64 + row * 8 + col] = 1.0f;
        }
        for (int k = 0; k < 64; k++)
            d->x[i * 64 + k] += (float)harness_uniform(&r, 0, 0.2);
        d->y[i] = vertical;
    }
}

static void test_conv_model(void)
{
    char path[320];
    path_in_tmp(path, sizeof path, "conv.safetensors");
    kiln_dataset d;
    make_bars(&d, 32, 81);
    kiln_model *m = kiln_model_new(ctx, KILN_F32, 3, (int64_t[]){1, 8, 8},
                                   29);
    kiln_conv2d_params same = {.mode = KILN_PAD_SAME};
    kiln_model_conv2d(m, 4, 3, 3, &same, KILN_ACT_RELU);
    kiln_model_batch_norm(m);
    kiln_model_max_pool2d(m, NULL);
    kiln_model_conv2d(m, 4, 3, 3, NULL, KILN_ACT_RELU);
    kiln_model_avg_pool2d(m, &(kiln_pool2d_params){.kernel = {2, 2}});
    kiln_model_flatten(m);
    kiln_model_dropout(m, 0.1);
    kiln_model_dense(m, 2, KILN_ACT_NONE);
    kiln_status st = kiln_model_compile(m, KILN_LOSS_SOFTMAX_XENT,
                                        &(kiln_optimizer_config){
                                            .kind = KILN_OPT_ADAM,
                                            .lr = 0.02});
    int64_t shape[KILN_MAX_DIMS];
    int nd = kiln_model_output_shape(m, 5, shape);
    CHECK(st == KILN_OK && nd == 1 && shape[0] == 4,
          "conv model compiles; flatten gives [%lld] (%s)",
          (long long)shape[0], kiln_error_message(ctx));
    kiln_fit_options o = quiet;
    o.epochs = 8;
    o.batch = 16;
    o.shuffle = 1;
    kiln_history h;
    st = kiln_model_fit(m, &d, &o, &h);
    CHECK(st == KILN_OK && h.epochs == 8 && h.loss[7] < 0.8 * h.loss[0],
          "conv/pool/batch-norm/dropout model: loss %g -> %g (%s)",
          h.loss[0], h.epochs ? h.loss[h.epochs - 1] : NAN,
          kiln_error_message(ctx));
    st = kiln_model_save(m, path);
    kiln_model *m2 = kiln_model_new(ctx, KILN_F32, 3, (int64_t[]){1, 8, 8},
                                    1);
    kiln_model_conv2d(m2, 4, 3, 3, &same, KILN_ACT_RELU);
    kiln_model_batch_norm(m2);
    kiln_model_max_pool2d(m2, NULL);
    kiln_model_conv2d(m2, 4, 3, 3, NULL, KILN_ACT_RELU);
    kiln_model_avg_pool2d(m2, &(kiln_pool2d_params){.kernel = {2, 2}});
    kiln_model_flatten(m2);
    kiln_model_dropout(m2, 0.1);
    kiln_model_dense(m2, 2, KILN_ACT_NONE);
    kiln_model_compile(m2, KILN_LOSS_SOFTMAX_XENT,
                       &(kiln_optimizer_config){.kind = KILN_OPT_ADAM,
                                                .lr = 0.02});
    st |= kiln_model_load(m2, path);
    kiln_tensor *p1 = kiln_model_predict(m, &d, 8);
    kiln_tensor *p2 = kiln_model_predict(m2, &d, 8);
    CHECK(st == KILN_OK && p1 && p2 && same_bits(p1, p2),
          "conv model: save/load round trip with batch-norm statistics, "
          "bit-identical predictions (%s)", kiln_error_message(ctx));
    kiln_tensor_free(p1);
    kiln_tensor_free(p2);
    kiln_history_free(&h);
    kiln_model_free(m);
    kiln_model_free(m2);
    kiln_dataset_free(&d);
    remove(path);
}

/* Token sequences: class 1 when token 1 occurs.  Embedding -> GRU -> dense,
 * and a residual/concat MLP on blobs. */
static void test_sequence_and_joins(void)
{
    enum { COUNT = 48, T = 5 };
    harness_rng r = {91};
    kiln_dataset d = {.count = COUNT, .ndim = 1, .shape = {T}, .classes = 2};
    d.x = malloc(sizeof(float) * COUNT * T);
    d.y = malloc(sizeof(int32_t) * COUNT);
    for (int i = 0; i < COUNT; i++) {
        for (int t = 0; t < T; t++)
            d.x[i * T + t] = (float)harness_int(&r, 2, 7);
        if (i % 2)
            d.x[i * T + harness_int(&r, 0, T - 1)] = 1;
        d.y[i] = i % 2;
    }
    kiln_model *m = kiln_model_new(ctx, KILN_F32, 1, (int64_t[]){T}, 37);
    kiln_model_embedding(m, 8, 6);
    kiln_model_rnn(m, KILN_GRU, 8, 0);
    kiln_model_dense(m, 2, KILN_ACT_NONE);
    kiln_status st = kiln_model_compile(m, KILN_LOSS_SOFTMAX_XENT,
                                        &(kiln_optimizer_config){
                                            .kind = KILN_OPT_ADAM,
                                            .lr = 0.03});
    kiln_fit_options o = quiet;
    o.epochs = 10;
    o.batch = 16;
    kiln_history h;
    st |= kiln_model_fit(m, &d, &o, &h);
    CHECK(st == KILN_OK && h.epochs == 10 && h.loss[9] < 0.8 * h.loss[0],
          "embedding + GRU: loss %g -> %g (%s)", h.loss[0],
          h.epochs ? h.loss[h.epochs - 1] : NAN, kiln_error_message(ctx));
    kiln_history_free(&h);
    kiln_model_free(m);
    kiln_dataset_free(&d);

    kiln_dataset blobs;
    make_blobs(&blobs, 90, 93);
    m = kiln_model_new(ctx, KILN_F32, 1, (int64_t[]){2}, 39);
    kiln_model_dense(m, 8, KILN_ACT_TANH);            /* 0 */
    kiln_model_dense(m, 8, KILN_ACT_TANH);            /* 1 */
    kiln_model_residual_add(m, 0);                    /* 2 */
    kiln_model_concat(m, 0);                          /* 3: [16] */
    kiln_model_dense(m, 3, KILN_ACT_NONE);            /* 4 */
    st = kiln_model_compile(m, KILN_LOSS_SOFTMAX_XENT, NULL);
    int64_t shape[KILN_MAX_DIMS];
    kiln_model_output_shape(m, 3, shape);
    o.epochs = 3;
    st |= kiln_model_fit(m, &blobs, &o, &h);
    CHECK(st == KILN_OK && shape[0] == 16 && h.loss[2] < h.loss[0],
          "residual + concat model trains: loss %g -> %g (%s)", h.loss[0],
          h.epochs ? h.loss[h.epochs - 1] : NAN, kiln_error_message(ctx));
    st = kiln_model_residual_add(m, 3);
    CHECK(st == KILN_ERROR_INVALID_ARGUMENT &&
              strstr(kiln_error_message(ctx), "already compiled"),
          "layers after compile are refused: %s", kiln_error_message(ctx));
    kiln_clear_error(ctx);
    kiln_history_free(&h);
    kiln_model_free(m);
    kiln_dataset_free(&blobs);
}

/* ---- errors ------------------------------------------------------------------ */

static void test_errors(void)
{
    kiln_dataset blobs;
    make_blobs(&blobs, 30, 101);
    kiln_model *m = kiln_model_new(ctx, KILN_F32, 1, (int64_t[]){2}, 1);
    kiln_model_dense(m, 4, KILN_ACT_RELU);
    kiln_status st = kiln_model_residual_add(m, 3);
    CHECK(st == KILN_ERROR_INVALID_ARGUMENT &&
              strstr(kiln_error_message(ctx), "layer 3 does not exist"),
          "a join with a missing layer: %s", kiln_error_message(ctx));
    kiln_clear_error(ctx);
    st = kiln_model_fit(m, &blobs, NULL, NULL);
    CHECK(st == KILN_ERROR_INVALID_ARGUMENT &&
              strstr(kiln_error_message(ctx), "not compiled"),
          "fit before compile: %s", kiln_error_message(ctx));
    kiln_clear_error(ctx);
    kiln_model_dense(m, 1, KILN_ACT_NONE);
    st = kiln_model_compile(m, KILN_LOSS_SOFTMAX_XENT, NULL);
    CHECK(st == KILN_ERROR_SHAPE && strstr(kiln_error_message(ctx), "C >= 2"),
          "softmax cross-entropy on one output: %s", kiln_error_message(ctx));
    kiln_clear_error(ctx);
    kiln_model_free(m);

    m = blob_model(1, 4, 0);
    kiln_dataset wrong = blobs;
    wrong.shape[0] = 3;
    wrong.count = 20;
    st = kiln_model_fit(m, &wrong, NULL, NULL);
    CHECK(st == KILN_ERROR_SHAPE && strstr(kiln_error_message(ctx),
                                           "[3] (3 values)"),
          "samples of the wrong size: %s", kiln_error_message(ctx));
    kiln_clear_error(ctx);
    blobs.y[7] = 5;
    st = kiln_model_fit(m, &blobs, NULL, NULL);
    CHECK(st == KILN_ERROR_INVALID_ARGUMENT &&
              strstr(kiln_error_message(ctx), "label 5 of training sample 7"),
          "a label beyond the classes: %s", kiln_error_message(ctx));
    kiln_clear_error(ctx);
    kiln_model_free(m);
    kiln_dataset_free(&blobs);
}

/* kiln_dataset_split carries regression targets along. */
static void test_dataset_targets(void)
{
    kiln_dataset d, a, b;
    make_sin(&d, 10);
    kiln_status st = kiln_dataset_split(ctx, &d, 4, 7, &a, &b);
    int ok = st == KILN_OK && a.count == 4 && b.count == 6 && !a.y &&
             a.targets && b.targets && a.target_dim == 1;
    for (int i = 0; ok && i < 4; i++)
        ok = fabs(a.targets[i] - sin(a.x[i])) < 1e-6;
    CHECK(ok, "split keeps targets with their samples (%s)",
          kiln_error_message(ctx));
    kiln_dataset_free(&a);
    kiln_dataset_free(&b);
    kiln_dataset_free(&d);
    CHECK(!d.targets && d.count == 0, "free clears targets");
}

int main(int argc, char **argv)
{
    ctx = harness_open(harness_device(argc, argv), 64);
    on_reference = kiln_context_device(ctx)->backend == KILN_BACKEND_REFERENCE;
    const char *tmp = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/kiln-model-XXXXXX",
             tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(tmpdir)) {
        printf("FAIL: mkdtemp %s\n", tmpdir);
        return 1;
    }
    struct {
        const char *name;
        void (*fn)(void);
    } tests[] = {
        {"metrics", test_metrics},
        {"dataset targets", test_dataset_targets},
        {"xor", test_xor},
        {"blobs", test_blobs},
        {"sin regression", test_sin_regression},
        {"one step by hand", test_one_step_by_hand},
        {"save/load", test_save_load},
        {"resume", test_resume},
        {"replayed steps", test_replayed_steps},
        {"checkpoint every", test_checkpoint_every},
        {"schedule and clipping", test_schedule_and_clipping},
        {"f64", test_f64},
        {"early stopping", test_early_stopping},
        {"progress", test_progress},
        {"conv model", test_conv_model},
        {"sequence and joins", test_sequence_and_joins},
        {"errors", test_errors},
    };
    for (size_t i = 0; i < sizeof tests / sizeof *tests; i++) {
        double t0 = wall_seconds();
        tests[i].fn();
        printf("%s: %.2f s\n", tests[i].name,
               wall_seconds() - t0);
        if (kiln_status_of(ctx) != KILN_OK) {
            printf("FAIL: %s left an error: %s\n", tests[i].name,
                   kiln_error_message(ctx));
            harness_failures++;
            kiln_clear_error(ctx);
        }
    }
    rmdir(tmpdir);
    return harness_close(ctx);
}
