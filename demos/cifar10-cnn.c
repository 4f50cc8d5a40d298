/*
 * cifar10-cnn - the course's deeper CNN on CIFAR-10 (COURSE.md 15): 32x32
 * colour images of 10 classes (airplane, automobile, bird, cat, deer,
 * dog, frog, horse, ship, truck):
 *
 *   conv 3x3, 32 (SAME) + ReLU -> conv 3x3, 32 (SAME) + ReLU -> max pool 2x2
 *   conv 3x3, 64 (SAME) + ReLU -> conv 3x3, 64 (SAME) + ReLU -> max pool 2x2
 *   dense 512 + ReLU -> dropout 0.5 -> dense 10 (softmax cross-entropy)
 *
 * trained with Adam on the official binary batches (data_batch_1.bin ..
 * data_batch_5.bin, test_batch.bin) read from --data DIR.  --augment
 * shifts every training image by up to 2 pixels each way and flips half of
 * them left-right, anew every epoch (seeded), on the host.  When the files
 * are absent it says where to put them and where to get them, and exits 0.
 * Writes loss/accuracy curves, a confusion matrix and a grid of colour
 * predictions.  --fast trains on 60 images for 3 epochs: made for the
 * tests' small synthetic files, it reaches nothing on the real images.
 *
 * usage: cifar10-cnn [--device SPEC] [--data DIR] [--augment] [--epochs 20]
 *                    [--batch 64] [--lr 0.001] [--seed 1] [--save FILE]
 *                    [--load FILE] [--out DIR] [--limit N] [--fast]
 * Exit status: 0 the target accuracy was reached (or no data to train on),
 * 1 not, 2 an error.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "demo.h"

static kiln_status build(kiln_model *m)
{
    kiln_conv2d_params same = {.mode = KILN_PAD_SAME};
    kiln_pool2d_params pool = {.kernel = {2, 2}};
    kiln_model_conv2d(m, 32, 3, 3, &same, KILN_ACT_RELU);
    kiln_model_conv2d(m, 32, 3, 3, &same, KILN_ACT_RELU);
    kiln_model_max_pool2d(m, &pool);
    kiln_model_conv2d(m, 64, 3, 3, &same, KILN_ACT_RELU);
    kiln_model_conv2d(m, 64, 3, 3, &same, KILN_ACT_RELU);
    kiln_model_max_pool2d(m, &pool);
    kiln_model_flatten(m);
    kiln_model_dense(m, 512, KILN_ACT_RELU);
    kiln_model_dropout(m, 0.5);
    return kiln_model_dense(m, 10, KILN_ACT_NONE); /* logits */
}

/* ---- augmentation: random shifts and flips, on the host ----------------- */

/* The training images as loaded (bytes: x = byte / 255 exactly), so every
 * epoch shifts the originals, not last epoch's shifted copies. */
static unsigned char *original;

/* Rewrites the first @ntrain images of @train for @epoch: each moved by
 * dx, dy in [-2, 2] (edge pixels repeated into the gap) and mirrored with
 * probability 1/2. */
static void augment(kiln_dataset *train, int64_t ntrain, int64_t epoch,
                    uint64_t seed)
{
    const int C = 3, H = 32, W = 32, shift = 2;
    const size_t size = (size_t)C * H * W;
    if (!original) {
        original = malloc(size * (size_t)ntrain);
        if (!original)
            return; /* out of memory: train without augmentation */
        for (size_t i = 0; i < size * (size_t)ntrain; i++)
            original[i] = (unsigned char)(train->x[i] * 255.0f + 0.5f);
        printf("augmentation: shifts by up to %d pixels each way (edge "
               "pixels repeated) and left-right flips of half the images\n",
               shift);
    }
    uint64_t state = seed ^ ((uint64_t)epoch * 0xD1B54A32D192ED03ull);
    for (int64_t s = 0; s < ntrain; s++) {
        uint64_t r = demo_next_random(&state);
        int dx = (int)(r % 5) - shift, dy = (int)(r / 5 % 5) - shift;
        int flip = (int)(r / 25 % 2);
        const unsigned char *src = original + (size_t)s * size;
        float *dst = train->x + (size_t)s * size;
        for (int c = 0; c < C; c++)
            for (int y = 0; y < H; y++)
                for (int x = 0; x < W; x++) {
                    int sx = (flip ? W - 1 - x : x) - dx, sy = y - dy;
                    sx = sx < 0 ? 0 : sx >= W ? W - 1 : sx;
                    sy = sy < 0 ? 0 : sy >= H ? H - 1 : sy;
                    dst[(c * H + y) * W + x] =
                        src[(c * H + sy) * W + sx] / 255.0f;
                }
    }
}

int main(int argc, char **argv)
{
    demo_classifier c = {
        .name = "cifar10-cnn",
        .usage = "usage: cifar10-cnn [options] [--augment]: a deeper CNN on "
                 "CIFAR-10 (binary batches in --data DIR)\n",
        .defaults = {.epochs = 20, .batch = 64, .lr = 1e-3, .seed = 1},
        .load = demo_load_cifar10,
        .build = build,
        .target = 70, /* not measured here: no CIFAR-10 on these machines */
        /* --fast: the tests' small synthetic files (300 / 100 images). */
        .fast_epochs = 3, .fast_samples = 60, .fast_batch = 8,
        .fast_target = 60,
    };
    /* --augment is this demo's own option; the rest are the common ones. */
    int n = 0;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--augment"))
            c.augment = augment;
        else
            argv[n++] = argv[i];
    }
    int rc = demo_classifier_main(n, argv, &c);
    free(original);
    return rc;
}
