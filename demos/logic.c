/*
 * logic - the course's logic gates (COURSE.md example 5) on Kiln's graph:
 *
 *   AND:  one perceptron sigma(-30 + 20 x1 + 20 x2);
 *   XNOR: not linearly separable, so two layers: AND and NOR, then OR;
 *   XOR:  a 2-2-1 network (tanh hidden, sigmoid output, mean squared
 *         error) trained with autodiff (kiln_g_gradients) and Adam.
 *
 * usage: logic [--device SPEC] [--seed N] [--steps N]
 * Exit status: 0 every table right, 1 not, 2 set-up error.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kiln.h"

static kiln_context *ctx;
static const float inputs[4][2] = {{0, 0}, {0, 1}, {1, 0}, {1, 1}};

static kiln_node *matrix(kiln_graph *g, int rows, int cols, const float *v)
{
    kiln_tensor *t = kiln_tensor_from_data(ctx, KILN_F32, 2,
                                           (int64_t[]){rows, cols}, v,
                                           sizeof(float) * rows * cols);
    kiln_node *n = kiln_g_constant(g, t);
    kiln_tensor_free(t);
    return n;
}

/* sigma(x W + b) with fixed weights: W [in, out], b [out]. */
static kiln_node *layer(kiln_graph *g, kiln_node *x, int in, int out,
                        const float *w, const float *b)
{
    return kiln_g_sigmoid(kiln_g_add(kiln_g_matmul(x, matrix(g, in, out, w)),
                                     matrix(g, 1, out, b)));
}

/* Prints the truth table of @y (4 x 1) and compares with @want. */
static int table(kiln_graph *g, kiln_node *y, const char *name,
                 const int *want)
{
    kiln_tensor *out = NULL;
    float v[4] = {-1, -1, -1, -1};
    if (kiln_graph_run(g, 0, NULL, 1, &y, &out) == KILN_OK)
        kiln_tensor_read(out, v, sizeof v);
    kiln_tensor_free(out);
    int ok = 1;
    printf("%s\n  x1 x2 -> y\n", name);
    for (int i = 0; i < 4; i++) {
        int bit = v[i] > 0.5f;
        printf("   %d  %d -> %.4f (%d)\n", (int)inputs[i][0],
               (int)inputs[i][1], v[i], bit);
        ok &= bit == want[i];
    }
    return ok;
}

static int fixed_gates(void)
{
    kiln_graph *g = kiln_graph_new(ctx);
    kiln_node *x = matrix(g, 4, 2, &inputs[0][0]);
    int ok = 1;
    /* AND: -30 + 20 x1 + 20 x2 */
    kiln_node *and_gate = layer(g, x, 2, 1, (float[]){20, 20}, (float[]){-30});
    ok &= table(g, and_gate, "AND perceptron sigma(-30 + 20 x1 + 20 x2)",
                (int[]){0, 0, 0, 1});
    /* XNOR: hidden (AND, NOR), output OR. */
    kiln_node *hidden = layer(g, x, 2, 2, (float[]){20, -20, 20, -20},
                              (float[]){-30, 10});
    kiln_node *xnor = layer(g, hidden, 2, 1, (float[]){20, 20},
                            (float[]){-10});
    ok &= table(g, xnor, "XNOR = OR(AND(x1, x2), NOR(x1, x2)), two layers",
                (int[]){1, 0, 0, 1});
    kiln_graph_free(g);
    return ok;
}

static kiln_node *variable(kiln_graph *g, const char *name, int ndim,
                           const int64_t *shape, kiln_init_kind kind,
                           uint64_t seed)
{
    kiln_tensor *t = kiln_tensor_new(ctx, KILN_F32, ndim, shape);
    kiln_init(t, kind, 0, 0, seed, 0);
    kiln_node *v = kiln_g_variable(g, name, t);
    kiln_tensor_free(t);
    return v;
}

static int train_xor(uint64_t seed, int steps)
{
    kiln_graph *g = kiln_graph_new(ctx);
    kiln_node *x = matrix(g, 4, 2, &inputs[0][0]);
    kiln_node *t = matrix(g, 4, 1, (float[]){0, 1, 1, 0});
    /* Weights as [in, out]; Xavier uniform, biases zero. */
    kiln_node *w1 = variable(g, "w1", 2, (int64_t[]){2, 2},
                             KILN_INIT_XAVIER_UNIFORM, seed);
    kiln_node *b1 = variable(g, "b1", 2, (int64_t[]){1, 2}, KILN_INIT_ZEROS, 0);
    kiln_node *w2 = variable(g, "w2", 2, (int64_t[]){2, 1},
                             KILN_INIT_XAVIER_UNIFORM, seed + 1);
    kiln_node *b2 = variable(g, "b2", 2, (int64_t[]){1, 1}, KILN_INIT_ZEROS, 0);
    kiln_node *h = kiln_g_tanh(kiln_g_add(kiln_g_matmul(x, w1), b1));
    kiln_node *y = kiln_g_sigmoid(kiln_g_add(kiln_g_matmul(h, w2), b2));
    kiln_node *loss = kiln_g_mean(kiln_g_square(kiln_g_sub(y, t)), 0, NULL, 0);
    kiln_node *params[4] = {w1, b1, w2, b2}, *grads[4];
    kiln_g_gradients(loss, 4, params, grads);
    kiln_optimizer *opt = kiln_optimizer_new(
        ctx, &(kiln_optimizer_config){.kind = KILN_OPT_ADAM, .lr = 0.05});
    kiln_tensor *values[4];
    for (int i = 0; i < 4; i++)
        values[i] = kiln_g_variable_tensor(params[i]);

    printf("XOR, 2-2-1 (tanh, sigmoid), mean squared error, Adam lr 0.05, "
           "seed %llu:\n", (unsigned long long)seed);
    kiln_node *fetch[5] = {loss, grads[0], grads[1], grads[2], grads[3]};
    for (int step = 0; step <= steps; step++) {
        kiln_tensor *out[5] = {NULL};
        if (kiln_graph_run(g, 0, NULL, 5, fetch, out) != KILN_OK)
            break;
        if (step % (steps / 5) == 0) {
            float l = NAN;
            kiln_tensor_read(out[0], &l, sizeof l);
            printf("  step %4d  loss %.6f\n", step, l);
        }
        if (step < steps)
            kiln_optimizer_step(opt, 4, values, out + 1, -1.0);
        for (int i = 0; i < 5; i++)
            kiln_tensor_free(out[i]);
    }
    kiln_graph_stats st;
    kiln_graph_get_stats(g, &st);
    printf("  one training step: %llu kernels (%llu fused), peak %llu bytes "
           "of intermediates\n", (unsigned long long)st.kernels,
           (unsigned long long)st.fused_kernels,
           (unsigned long long)st.peak_bytes);
    int ok = table(g, y, "XOR, trained", (int[]){0, 1, 1, 0});
    kiln_optimizer_free(opt);
    kiln_graph_free(g);
    return ok;
}

int main(int argc, char **argv)
{
    const char *device = NULL;
    uint64_t seed = 1;
    int steps = 500;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--device"))
            device = argv[i + 1];
        else if (!strcmp(argv[i], "--seed"))
            seed = strtoull(argv[i + 1], NULL, 0);
        else if (!strcmp(argv[i], "--steps"))
            steps = atoi(argv[i + 1]);
    }
    if (steps < 5)
        steps = 5;
    ctx = kiln_context_create(&(kiln_context_options){.device = device});
    if (!ctx || kiln_status_of(ctx) != KILN_OK) {
        fprintf(stderr, "logic: cannot open the device: %s\n",
                kiln_error_message(ctx));
        kiln_context_destroy(ctx);
        return 2;
    }
    printf("device: %s\n", kiln_context_device(ctx)->name);
    int ok = fixed_gates();
    ok &= train_xor(seed, steps);
    if (kiln_status_of(ctx) != KILN_OK) {
        fprintf(stderr, "logic: %s\n", kiln_error_message(ctx));
        ok = 0;
    }
    printf("%s\n", ok ? "PASS: every truth table right"
                      : "FAIL: a truth table is wrong");
    kiln_context_destroy(ctx);
    return ok ? 0 : 1;
}
