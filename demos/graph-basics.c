/*
 * graph-basics - the course's TensorFlow basics on Kiln's lazy graph
 * (COURSE.md example 2):
 *
 *   add(2, 3) = 5, pow(mul(2, 3), add(2, 3)) = 7776;
 *   a node nobody fetches is built but never computed;
 *   a variable a = 2 assigned a * 2 three times gives 4, 8, 16;
 *   two graphs (TensorFlow's two sessions) keep separate variable state.
 *
 * Building a node (kiln_g_add ...) computes nothing; kiln_graph_run()
 * computes what the fetched nodes need, fusing elementwise chains.
 *
 * usage: graph-basics [--device SPEC]
 * Exit status: 0 every value as in the course, 1 not, 2 set-up error.
 */
#include <stdio.h>
#include <string.h>

#include "kiln.h"

static kiln_context *ctx;

/* Runs @g for one node and reads its (0-D, f32) value. */
static float fetch(kiln_graph *g, kiln_node *n)
{
    kiln_tensor *out = NULL;
    float v = -1;
    if (kiln_graph_run(g, 0, NULL, 1, &n, &out) == KILN_OK)
        kiln_tensor_read(out, &v, sizeof v);
    kiln_tensor_free(out);
    return v;
}

static uint64_t kernels_of_last_run(kiln_graph *g)
{
    kiln_graph_stats st;
    kiln_graph_get_stats(g, &st);
    return st.kernels;
}

int main(int argc, char **argv)
{
    const char *device = NULL;
    for (int i = 1; i + 1 < argc; i++)
        if (!strcmp(argv[i], "--device"))
            device = argv[i + 1];
    ctx = kiln_context_create(&(kiln_context_options){.device = device});
    if (!ctx || kiln_status_of(ctx) != KILN_OK) {
        fprintf(stderr, "graph-basics: cannot open the device: %s\n",
                kiln_error_message(ctx));
        kiln_context_destroy(ctx);
        return 2;
    }
    printf("device: %s\n", kiln_context_device(ctx)->name);
    int ok = 1;

    kiln_graph *g = kiln_graph_new(ctx);
    kiln_graph_set_fusion(g, 0); /* one kernel per op, to count them */
    kiln_node *two = kiln_g_scalar(g, KILN_F32, 2);
    kiln_node *three = kiln_g_scalar(g, KILN_F32, 3);
    kiln_node *sum = kiln_g_add(two, three);
    float v = fetch(g, sum);
    printf("add(2, 3) = %g\n", v);
    ok &= v == 5;

    kiln_node *product = kiln_g_mul(two, three);
    kiln_node *power = kiln_g_pow(product, sum);
    /* Built, never fetched: it must never run. */
    kiln_node *useless = kiln_g_mul(product, kiln_g_scalar(g, KILN_F32, 100));
    (void)useless;
    v = fetch(g, power);
    uint64_t kernels = kernels_of_last_run(g);
    printf("pow(mul(2, 3), add(2, 3)) = %g\n", v);
    printf("the unfetched node mul(mul(2, 3), 100): built, not computed "
           "(%llu kernels ran for 3 ops)\n", (unsigned long long)kernels);
    ok &= v == 7776 && kernels == 3;

    kiln_tensor *init = kiln_tensor_new(ctx, KILN_F32, 0, NULL);
    kiln_fill(init, 2);
    kiln_graph *g2 = kiln_graph_new(ctx);
    kiln_node *a1 = kiln_g_variable(g, "a", init);
    kiln_node *a2 = kiln_g_variable(g2, "a", init);
    kiln_tensor_free(init);
    kiln_node *double1 = kiln_g_assign(a1, kiln_g_scale(a1, 2));
    kiln_node *double2 = kiln_g_assign(a2, kiln_g_scale(a2, 2));
    printf("variable a = 2; run assign(a, a * 2) three times:");
    float expect[3] = {4, 8, 16};
    for (int i = 0; i < 3; i++) {
        v = fetch(g, double1);
        printf(" %g", v);
        ok &= v == expect[i];
    }
    printf("\n");
    v = fetch(g2, double2);
    float first = fetch(g, a1);
    printf("a second graph's own a, doubled once: %g (the first graph's a "
           "is still %g)\n", v, first);
    ok &= v == 4 && first == 16;

    if (kiln_status_of(ctx) != KILN_OK) {
        fprintf(stderr, "graph-basics: %s\n", kiln_error_message(ctx));
        ok = 0;
    }
    printf("%s\n", ok ? "PASS: every value as in the course"
                      : "FAIL: a value differs from the course");
    kiln_graph_free(g);
    kiln_graph_free(g2);
    kiln_context_destroy(ctx);
    return ok ? 0 : 1;
}
