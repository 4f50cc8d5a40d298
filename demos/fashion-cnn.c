/*
 * fashion-cnn - a small CNN on Fashion-MNIST (60,000 / 10,000):
 *
 *   conv 3x3, 32 (SAME) + ReLU -> batch norm -> max pool 2x2
 *   conv 3x3, 64 (SAME) + ReLU -> batch norm -> max pool 2x2
 *   dense 128 + ReLU -> dropout 0.3 -> dense 10
 *
 * usage: fashion-cnn [--device SPEC] [--epochs 12] [--batch 128]
 *                    [--lr 0.001] [--seed 1] [--data DIR] [--save FILE]
 *                    [--load FILE] [--out DIR] [--fast]
 * Exit status: 0 the target accuracy was reached, 1 not, 2 an error.
 */
#include "demo.h"

static kiln_status build(kiln_model *m)
{
    kiln_conv2d_params same = {.mode = KILN_PAD_SAME};
    kiln_pool2d_params pool = {.kernel = {2, 2}};
    kiln_model_conv2d(m, 32, 3, 3, &same, KILN_ACT_RELU);
    kiln_model_batch_norm(m);
    kiln_model_max_pool2d(m, &pool);
    kiln_model_conv2d(m, 64, 3, 3, &same, KILN_ACT_RELU);
    kiln_model_batch_norm(m);
    kiln_model_max_pool2d(m, &pool);
    kiln_model_flatten(m);
    kiln_model_dense(m, 128, KILN_ACT_RELU);
    kiln_model_dropout(m, 0.3);
    return kiln_model_dense(m, 10, KILN_ACT_NONE);
}

int main(int argc, char **argv)
{
    demo_classifier c = {
        .name = "fashion-cnn",
        .usage = "usage: fashion-cnn [options]: a CNN on Fashion-MNIST\n",
        .defaults = {.epochs = 12, .batch = 128, .lr = 1e-3, .seed = 1},
        .load = demo_load_fashion,
        .build = build,
        .target = 91.0,
        .fast_epochs = 2, .fast_samples = 1024, .fast_batch = 32,
        .fast_target = 50,
    };
    return demo_classifier_main(argc, argv, &c);
}
