/*
 * fashion-mlp - an MLP on Fashion-MNIST (60,000 training, the official
 * 10,000 test images, read from the Debian package's IDX gzip files):
 *
 *   flatten -> dense 512 + ReLU -> dropout 0.3 -> dense 256 + ReLU
 *           -> dropout 0.3 -> dense 10 (softmax cross-entropy)
 *
 * Clothes are harder than digits: a wider net with more dropout.
 *
 * usage: fashion-mlp [--device SPEC] [--epochs 15] [--batch 128]
 *                    [--lr 0.001] [--seed 1] [--data DIR] [--save FILE]
 *                    [--load FILE] [--out DIR] [--fast]
 * Exit status: 0 the target accuracy was reached, 1 not, 2 an error.
 */
#include "demo.h"

static kiln_status build(kiln_model *m)
{
    kiln_model_flatten(m);
    kiln_model_dense(m, 512, KILN_ACT_RELU);
    kiln_model_dropout(m, 0.3);
    kiln_model_dense(m, 256, KILN_ACT_RELU);
    kiln_model_dropout(m, 0.3);
    return kiln_model_dense(m, 10, KILN_ACT_NONE);
}

int main(int argc, char **argv)
{
    demo_classifier c = {
        .name = "fashion-mlp",
        .usage = "usage: fashion-mlp [options]: an MLP on Fashion-MNIST\n",
        .defaults = {.epochs = 15, .batch = 128, .lr = 1e-3, .seed = 1},
        .load = demo_load_fashion,
        .build = build,
        .target = 88.0,
        .fast_epochs = 2, .fast_samples = 2000, .fast_target = 60,
    };
    return demo_classifier_main(argc, argv, &c);
}
