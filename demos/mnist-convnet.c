/*
 * mnist-convnet - the course's TensorFlow ConvNet on handwritten digits:
 *
 *   conv 5x5, 32 maps (SAME) + ReLU -> max pool 2x2
 *   conv 5x5, 64 maps (SAME) + ReLU -> max pool 2x2
 *   dense 1024 + ReLU -> dropout (keep 0.75) -> dense 10
 *
 * Adam 1e-3, batch 128, evaluated with dropout off.
 *
 * usage: mnist-convnet [--device SPEC] [--epochs 10] [--batch 128]
 *                      [--lr 0.001] [--seed 1] [--data DIR] [--save FILE]
 *                      [--load FILE] [--out DIR] [--fast]
 * Exit status: 0 the target accuracy was reached, 1 not, 2 an error.
 */
#include "demo.h"

static kiln_status build(kiln_model *m)
{
    kiln_conv2d_params same = {.mode = KILN_PAD_SAME};
    kiln_pool2d_params pool = {.kernel = {2, 2}};
    kiln_model_conv2d(m, 32, 5, 5, &same, KILN_ACT_RELU);
    kiln_model_max_pool2d(m, &pool);
    kiln_model_conv2d(m, 64, 5, 5, &same, KILN_ACT_RELU);
    kiln_model_max_pool2d(m, &pool);
    kiln_model_flatten(m);
    kiln_model_dense(m, 1024, KILN_ACT_RELU);
    kiln_model_dropout(m, 0.25); /* keep_prob 0.75 */
    return kiln_model_dense(m, 10, KILN_ACT_NONE);
}

int main(int argc, char **argv)
{
    demo_classifier c = {
        .name = "mnist-convnet",
        .usage = "usage: mnist-convnet [options]: the TensorFlow ConvNet\n",
        .defaults = {.epochs = 10, .batch = 128, .lr = 1e-3, .seed = 1},
        .load = demo_load_digits,
        .build = build,
        .augment = demo_augment_shift, /* shifts of up to 2 pixels */
        .target = 98.5,
        .fast_epochs = 1, .fast_samples = 512, .fast_target = 50,
    };
    return demo_classifier_main(argc, argv, &c);
}
