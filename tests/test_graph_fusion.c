/*
 * test_graph_fusion.c - the scheduler's fusion: elementwise chains become
 * one generated kernel, results agree with fusion off (and with the C
 * reference), kernel counts drop, groups respect the program limits,
 * shared values are stored once, layouts the fused kernel cannot take fall
 * back to single kernels, and assignments keep program order.
 */
#include "graph_check.h"

static kiln_context *ctx, *ref;
static kiln_dtype F;

/* Runs @fetch on a graph built by @build on @c with fusion on/off. */
typedef kiln_node *(*build_fn)(kiln_graph *g, kiln_node *x, kiln_node *y,
                               int variant);

static double *run_built(kiln_context *c, build_fn build, int variant,
                         int fusion, const double *xd, const double *yd,
                         int64_t *n, kiln_graph_stats *stats)
{
    kiln_graph *g = kiln_graph_new(c);
    kiln_graph_set_fusion(g, fusion);
    kiln_node *x = kiln_g_input(g, "x", F, 3, (int64_t[]){-1, 5, 7});
    kiln_node *y = kiln_g_input(g, "y", F, 2, (int64_t[]){1, 7});
    kiln_node *out = build(g, x, y, variant);
    kiln_tensor *vals[2] = {
        gc_tensor(c, F, 3, (int64_t[]){3, 5, 7}, xd),
        gc_tensor(c, F, 2, (int64_t[]){1, 7}, yd)};
    kiln_node *ins[2] = {x, y};
    double *r = gc_run1(g, 2, ins, vals, out, n);
    if (!r)
        printf("  run failed: %s\n", kiln_error_message(c));
    if (stats)
        kiln_graph_get_stats(g, stats);
    kiln_tensor_free(vals[0]);
    kiln_tensor_free(vals[1]);
    kiln_graph_free(g);
    return r;
}

/* The benchmark's 5-op chain: ((x * y + 1) relu) * 0.5 - y, then tanh. */
static kiln_node *chain5(kiln_graph *g, kiln_node *x, kiln_node *y, int v)
{
    (void)g;
    (void)v;
    kiln_node *a = kiln_g_add_scalar(kiln_g_mul(x, y), 1);
    return kiln_g_tanh(kiln_g_sub(kiln_g_scale(kiln_g_relu(a), 0.5), y));
}

/* Random DAGs of elementwise ops with shared values (several consumers),
 * broadcasting, comparisons, selects and reductions (fused as a
 * reduction's prologue when theirs is the only use). */
static kiln_node *random_dag(kiln_graph *g, kiln_node *x, kiln_node *y,
                             int seed)
{
    harness_rng r = {(uint64_t)seed * 7919 + 1};
    kiln_node *pool[64];
    int n = 0;
    pool[n++] = x;
    pool[n++] = y;
    pool[n++] = kiln_g_scalar(g, F, 0.75);
    int steps = harness_int(&r, 4, 28);
    for (int s = 0; s < steps; s++) {
        kiln_node *a = pool[harness_int(&r, 0, n - 1)];
        kiln_node *b = pool[harness_int(&r, 0, n - 1)];
        kiln_node *c = pool[harness_int(&r, 0, n - 1)];
        kiln_node *out;
        switch (harness_int(&r, 0, 10)) {
        case 0: out = kiln_g_add(a, b); break;
        case 1: out = kiln_g_sub(a, b); break;
        case 2: out = kiln_g_mul(a, b); break;
        case 3: out = kiln_g_tanh(a); break;
        case 4: out = kiln_g_sigmoid(a); break;
        case 5: out = kiln_g_maximum(a, b); break;
        case 6: out = kiln_g_select(kiln_g_compare(a, b, KILN_LT), b, c);
            break;
        case 7: out = kiln_g_relu(a); break;
        case 8: out = kiln_g_exp(kiln_g_neg(kiln_g_square(a))); break;
        case 9: out = kiln_g_div(a, kiln_g_add_scalar(kiln_g_abs(b), 1));
            break;
        default: { /* a reduction, which ends a group as its prologue */
            int64_t shape[KILN_MAX_DIMS];
            out = kiln_node_shape(a, shape) == 0
                      ? kiln_g_neg(a)
                      : kiln_g_reduce(a, (kiln_reduce_op)harness_int(&r, 0, 3),
                                      1, (int[]){-1}, 1);
            break;
        }
        }
        if (n < 64)
            pool[n++] = out;
    }
    /* Sum several late values so shared ones have outside uses, then
     * (for most seeds) reduce the total. */
    kiln_node *total = pool[n - 1];
    for (int k = n - 2; k >= 3 && k > n - 5; k--)
        total = kiln_g_add(total, pool[k]);
    int64_t shape[KILN_MAX_DIMS];
    int nd = kiln_node_shape(total, shape);
    switch (nd ? seed % 4 : 0) {
    case 1: return kiln_g_sum(total, 1, (int[]){-1}, 0);
    case 2: return kiln_g_mean(total, 0, NULL, 0);
    case 3: return kiln_g_reduce(total, KILN_REDUCE_MAX, 1, (int[]){0}, 1);
    default: return total;
    }
}

static double max_rel(const double *a, const double *b, int64_t n)
{
    double worst = 0;
    for (int64_t i = 0; i < n; i++) {
        double e = fabs(a[i] - b[i]) / fmax(1.0, fabs(b[i]));
        if (!(e <= worst))
            worst = isnan(e) ? INFINITY : e;
    }
    return worst;
}

static void test_chain(const double *xd, const double *yd)
{
    kiln_graph_stats on, off;
    int64_t n1 = 0, n2 = 0;
    double *a = run_built(ctx, chain5, 0, 1, xd, yd, &n1, &on);
    double *b = run_built(ctx, chain5, 0, 0, xd, yd, &n2, &off);
    double tol = F == KILN_F64 ? 1e-14 : 1e-6;
    CHECK(a && b && n1 == n2 && max_rel(a, b, n1) <= tol,
          "5-op chain: fused = unfused (%.3g)", a && b ? max_rel(a, b, n1) : -1);
    CHECK(on.kernels == 1 && on.fused_kernels == 1 && on.fused_nodes == 6,
          "5-op chain fused: %llu kernels (%llu fused, %llu nodes)",
          (unsigned long long)on.kernels,
          (unsigned long long)on.fused_kernels,
          (unsigned long long)on.fused_nodes);
    CHECK(off.kernels == 6 && off.fused_kernels == 0,
          "unfused: one kernel per op (%llu)", (unsigned long long)off.kernels);
    CHECK(on.peak_bytes < off.peak_bytes || on.intermediate_bytes <
                                                off.intermediate_bytes,
          "fusion stores fewer intermediates (%llu vs %llu bytes)",
          (unsigned long long)on.intermediate_bytes,
          (unsigned long long)off.intermediate_bytes);
    free(a);
    free(b);
}

static void test_random_dags(const double *xd, const double *yd)
{
    double worst_off = 0, worst_ref = 0;
    uint64_t kernels_on = 0, kernels_off = 0;
    /* Each distinct program is one OpenCL build (~0.5 s on PoCL with a cold
     * cache), so the devices get fewer DAGs than the reference. */
    int dags = kiln_context_device(ctx)->backend == KILN_BACKEND_REFERENCE
                   ? 30
                   : 12;
    for (int seed = 1; seed <= dags; seed++) {
        kiln_graph_stats on, off;
        int64_t n1 = 0, n2 = 0, n3 = 0;
        double *a = run_built(ctx, random_dag, seed, 1, xd, yd, &n1, &on);
        double *b = run_built(ctx, random_dag, seed, 0, xd, yd, &n2, &off);
        double *c = run_built(ref, random_dag, seed, 0, xd, yd, &n3, NULL);
        if (!a || !b || !c || n1 != n2 || n1 != n3) {
            CHECK(0, "random DAG %d ran on every path", seed);
            kiln_clear_error(ctx);
        } else {
            double e = max_rel(a, b, n1);
            if (e > 1e-5)
                printf("  DAG %d: fused vs unfused %.3g (%llu kernels)\n",
                       seed, e, (unsigned long long)on.kernels);
            worst_off = fmax(worst_off, e);
            worst_ref = fmax(worst_ref, max_rel(a, c, n1));
        }
        kernels_on += on.kernels;
        kernels_off += off.kernels;
        free(a);
        free(b);
        free(c);
    }
    double tol = F == KILN_F64 ? 1e-12 : 2e-5;
    CHECK(worst_off <= tol, "random DAGs: fused vs unfused %.3g (tol %g)",
          worst_off, tol);
    CHECK(worst_ref <= tol, "random DAGs: fused vs C reference %.3g",
          worst_ref);
    CHECK(kernels_on < kernels_off, "random DAGs: %llu kernels fused, %llu "
          "unfused", (unsigned long long)kernels_on,
          (unsigned long long)kernels_off);
    printf("  %d random DAGs: %llu kernels fused vs %llu unfused\n", dags,
           (unsigned long long)kernels_on, (unsigned long long)kernels_off);
}

/* 40 ops in a row: groups of at most 16 instructions; seven inputs to a
 * sum: at most 6 outside inputs per kernel. */
/* mean((x - y)^2): one kernel, equal bit for bit to the three separate
 * ones; row sums of exp(x - y) likewise; and the gradient of a broadcast
 * bias (sum_to_like of an elementwise product) with the product fused in. */
static kiln_node *mse(kiln_graph *g, kiln_node *x, kiln_node *y, int v)
{
    (void)g;
    kiln_node *d = kiln_g_sub(x, y);
    if (v == 1)
        return kiln_g_sum(kiln_g_exp(d), 1, (int[]){-1}, 1);
    return kiln_g_mean(kiln_g_square(d), 0, NULL, 0);
}

/* The gradient of the [1, 7] "bias" y of sum(tanh(x + y) * x): tanh's
 * backward product, summed to y's shape (sum_to_like) in one kernel. */
static kiln_node *bias_grad(kiln_graph *g, kiln_node *x, kiln_node *y, int v)
{
    (void)g;
    (void)v;
    kiln_node *z = kiln_g_tanh(kiln_g_add(x, y));
    kiln_node *loss = kiln_g_sum(kiln_g_mul(z, x), 0, NULL, 0);
    kiln_node *grad = NULL;
    kiln_g_gradients(loss, 1, &y, &grad);
    return grad;
}

static void test_reduction_prologue(const double *xd, const double *yd)
{
    for (int v = 0; v < 2; v++) {
        kiln_graph_stats on, off;
        int64_t n1 = 0, n2 = 0, n3 = 0;
        double *a = run_built(ctx, mse, v, 1, xd, yd, &n1, &on);
        double *b = run_built(ctx, mse, v, 0, xd, yd, &n2, &off);
        double *c = run_built(ref, mse, v, 0, xd, yd, &n3, NULL);
        int same = a && b && n1 == n2;
        for (int64_t i = 0; same && i < n1; i++)
            same = a[i] == b[i];
        CHECK(same, "%s: fused = unfused bit for bit", v ? "row sums of exp"
                                                         : "MSE");
        CHECK(a && c && n1 == n3 && max_rel(a, c, n1) <=
                  (F == KILN_F64 ? 1e-13 : 1e-5),
              "%s: = the C reference", v ? "row sums" : "MSE");
        CHECK(on.kernels == 1 && on.fused_kernels == 1 &&
                  off.kernels == 3,
              "%s: %llu kernel(s) fused, %llu unfused", v ? "row sums" : "MSE",
              (unsigned long long)on.kernels, (unsigned long long)off.kernels);
        free(a);
        free(b);
        free(c);
    }
    kiln_graph_stats on, off;
    int64_t n1 = 0, n2 = 0, n3 = 0;
    double *a = run_built(ctx, bias_grad, 0, 1, xd, yd, &n1, &on);
    double *b = run_built(ctx, bias_grad, 0, 0, xd, yd, &n2, &off);
    double *c = run_built(ref, bias_grad, 0, 0, xd, yd, &n3, NULL);
    int same = a && b && n1 == n2 && n1 == 7;
    for (int64_t i = 0; same && i < n1; i++)
        same = a[i] == b[i];
    CHECK(same, "bias gradient: fused = unfused bit for bit");
    CHECK(a && c && n1 == n3 &&
              max_rel(a, c, n1) <= (F == KILN_F64 ? 1e-13 : 1e-5),
          "bias gradient = the C reference");
    CHECK(on.kernels < off.kernels, "bias gradient: %llu kernels fused, "
          "%llu unfused", (unsigned long long)on.kernels,
          (unsigned long long)off.kernels);
    printf("  reduction prologues: MSE 1 kernel (3 unfused); bias gradient "
           "%llu kernels (%llu unfused)\n", (unsigned long long)on.kernels,
           (unsigned long long)off.kernels);
    free(a);
    free(b);
    free(c);
}

static void test_limits(void)
{
    kiln_graph *g = kiln_graph_new(ctx);
    kiln_node *x = kiln_g_input(g, "x", F, 1, (int64_t[]){100});
    kiln_node *y = x;
    for (int i = 0; i < 20; i++)
        y = kiln_g_sigmoid(kiln_g_tanh(y));
    double xd[100];
    for (int i = 0; i < 100; i++)
        xd[i] = 0.02 * i - 1;
    kiln_tensor *xv = gc_tensor(ctx, F, 1, (int64_t[]){100}, xd);
    int64_t n;
    double *r = gc_run1(g, 1, &x, &xv, y, &n);
    kiln_graph_stats st;
    kiln_graph_get_stats(g, &st);
    CHECK(r && st.fused_kernels == 3 && st.fused_nodes == 40,
          "40-op chain: %llu fused kernels over %llu nodes (16+16+8)",
          (unsigned long long)st.fused_kernels,
          (unsigned long long)st.fused_nodes);
    double worst = 0;
    for (int i = 0; r && i < 100; i++) {
        double v = xd[i];
        for (int k = 0; k < 20; k++)
            v = 1 / (1 + exp(-tanh(v)));
        worst = fmax(worst, fabs(r[i] - v));
    }
    CHECK(worst < (F == KILN_F64 ? 1e-13 : 1e-5), "40-op chain value %.3g",
          worst);
    free(r);
    kiln_tensor_free(xv);

    kiln_node *ins[7], *sum = NULL;
    for (int i = 0; i < 7; i++) {
        ins[i] = kiln_g_input(g, "in", F, 1, (int64_t[]){4});
        sum = sum ? kiln_g_add(sum, ins[i]) : ins[i];
    }
    kiln_tensor *vals[7];
    for (int i = 0; i < 7; i++) {
        double d[4] = {i, 10 * i, 100 * i, 1000 * i};
        vals[i] = gc_tensor(ctx, F, 1, (int64_t[]){4}, d);
    }
    r = gc_run1(g, 7, ins, vals, sum, &n);
    kiln_graph_get_stats(g, &st);
    CHECK(r && r[0] == 21 && r[3] == 21000 && st.kernels == 2,
          "7-input sum: %g .. %g in %llu kernels", r ? r[0] : NAN,
          r ? r[3] : NAN, (unsigned long long)st.kernels);
    free(r);
    for (int i = 0; i < 7; i++)
        kiln_tensor_free(vals[i]);
    kiln_graph_free(g);
}

/* [2,1,3,1] * [1,4,1,5]: no 3-D layout exists, the members run alone. */
static void test_layout_fallback(void)
{
    kiln_graph *g = kiln_graph_new(ctx);
    kiln_node *a = kiln_g_input(g, "a", F, 4, (int64_t[]){2, 1, 3, 1});
    kiln_node *b = kiln_g_input(g, "b", F, 4, (int64_t[]){1, 4, 1, 5});
    kiln_node *y = kiln_g_tanh(kiln_g_mul(kiln_g_add_scalar(a, 1), b));
    double ad[6] = {1, 2, 3, 4, 5, 6}, bd[20];
    for (int i = 0; i < 20; i++)
        bd[i] = 0.05 * i;
    kiln_tensor *vals[2] = {
        gc_tensor(ctx, F, 4, (int64_t[]){2, 1, 3, 1}, ad),
        gc_tensor(ctx, F, 4, (int64_t[]){1, 4, 1, 5}, bd)};
    kiln_node *ins[2] = {a, b};
    int64_t n;
    double *r = gc_run1(g, 2, ins, vals, y, &n);
    double worst = 0;
    for (int i = 0; r && i < 2; i++)
        for (int j = 0; j < 4; j++)
            for (int k = 0; k < 3; k++)
                for (int l = 0; l < 5; l++)
                    worst = fmax(worst,
                                 fabs(r[((i * 4 + j) * 3 + k) * 5 + l] -
                                      tanh((ad[i * 3 + k] + 1) *
                                           bd[j * 5 + l])));
    CHECK(r && n == 120 && worst < 1e-6, "4-D broadcast fallback: %.3g",
          worst);
    free(r);
    kiln_tensor_free(vals[0]);
    kiln_tensor_free(vals[1]);
    kiln_graph_free(g);
}

/* b = v * 2 + 1 must read v before the assignment in between. */
static void test_assign_order(void)
{
    kiln_graph *g = kiln_graph_new(ctx);
    kiln_tensor *v0 = gc_tensor(ctx, F, 1, (int64_t[]){3},
                                (double[]){1, 2, 3});
    kiln_node *v = kiln_g_variable(g, "v", v0);
    kiln_tensor_free(v0);
    kiln_node *a = kiln_g_scale(v, 2);
    kiln_node *asg = kiln_g_assign(v, kiln_g_add_scalar(v, 100));
    kiln_node *b = kiln_g_add_scalar(a, 1);
    kiln_node *fetch[2] = {asg, b};
    kiln_tensor *out[2] = {NULL, NULL};
    kiln_status st = kiln_graph_run(g, 0, NULL, 2, fetch, out);
    double *rb = st == KILN_OK ? gc_read(out[1], NULL) : NULL;
    double *ra = st == KILN_OK ? gc_read(out[0], NULL) : NULL;
    CHECK(rb && rb[0] == 3 && rb[2] == 7 && ra && ra[0] == 101,
          "reads before an assignment see the old value: %g %g",
          rb ? rb[0] : NAN, ra ? ra[0] : NAN);
    free(ra);
    free(rb);
    kiln_tensor_free(out[0]);
    kiln_tensor_free(out[1]);
    kiln_graph_free(g);
}

/* A two-layer MLP's forward + backward: fusion issues fewer kernels and
 * gives the same gradients. */
static void test_mlp_step(void)
{
    uint64_t kernels[2];
    double *grads[2];
    int64_t n = 0;
    for (int fused = 0; fused <= 1; fused++) {
        kiln_graph *g = kiln_graph_new(ctx);
        kiln_graph_set_fusion(g, fused);
        kiln_node *x = kiln_g_input(g, "x", F, 2, (int64_t[]){-1, 4});
        kiln_node *t = kiln_g_input(g, "t", F, 2, (int64_t[]){-1, 2});
        double w1d[32], w2d[16];
        for (int i = 0; i < 32; i++)
            w1d[i] = 0.1 * ((i * 7) % 11) - 0.5;
        for (int i = 0; i < 16; i++)
            w2d[i] = 0.1 * ((i * 5) % 9) - 0.4;
        kiln_tensor *w1v = gc_tensor(ctx, F, 2, (int64_t[]){4, 8}, w1d);
        kiln_tensor *w2v = gc_tensor(ctx, F, 2, (int64_t[]){8, 2}, w2d);
        kiln_node *w1 = kiln_g_variable(g, "w1", w1v);
        kiln_node *w2 = kiln_g_variable(g, "w2", w2v);
        kiln_tensor_free(w1v);
        kiln_tensor_free(w2v);
        kiln_node *h = kiln_g_tanh(kiln_g_add_scalar(kiln_g_matmul(x, w1),
                                                     0.1));
        kiln_node *y = kiln_g_sigmoid(kiln_g_matmul(h, w2));
        kiln_node *loss = kiln_g_mean(kiln_g_square(kiln_g_sub(y, t)), 0,
                                      NULL, 0);
        kiln_node *wrt[2] = {w1, w2}, *gr[2];
        kiln_g_gradients(loss, 2, wrt, gr);
        double xd[20], td[10];
        for (int i = 0; i < 20; i++)
            xd[i] = 0.3 * ((i * 3) % 7) - 0.9;
        for (int i = 0; i < 10; i++)
            td[i] = i % 2;
        kiln_tensor *vals[2] = {gc_tensor(ctx, F, 2, (int64_t[]){5, 4}, xd),
                                gc_tensor(ctx, F, 2, (int64_t[]){5, 2}, td)};
        kiln_node *ins[2] = {x, t};
        grads[fused] = gc_run1(g, 2, ins, vals, gr[0], &n);
        kiln_graph_stats st;
        kiln_graph_get_stats(g, &st);
        kernels[fused] = st.kernels;
        kiln_tensor_free(vals[0]);
        kiln_tensor_free(vals[1]);
        kiln_graph_free(g);
    }
    CHECK(grads[0] && grads[1] &&
              max_rel(grads[0], grads[1], n) < (F == KILN_F64 ? 1e-13 : 1e-5),
          "MLP gradients agree with fusion on and off");
    CHECK(kernels[1] < kernels[0], "MLP forward+backward: %llu kernels fused, "
          "%llu unfused", (unsigned long long)kernels[1],
          (unsigned long long)kernels[0]);
    printf("  MLP dW1: %llu kernels fused, %llu unfused\n",
           (unsigned long long)kernels[1], (unsigned long long)kernels[0]);
    free(grads[0]);
    free(grads[1]);
}

/* d[i] = step * ((i * mul) % mod) + off: deterministic test data. */
static void pattern(double *d, int n, int mul, int mod, double step,
                    double off)
{
    for (int i = 0; i < n; i++)
        d[i] = step * ((i * mul) % mod) + off;
}

/* Dense layers: gemm + bias (+ ReLU / sigmoid / tanh) run as one GEMM with
 * an epilogue, equal to the separate kernels (bit for bit on the
 * reference), for [N] and [1, N] biases, a transposed weight and a batched
 * product. */
static void test_gemm_epilogue(void)
{
    const int acts[4] = {-1, 0, 1, 2}; /* none, relu, sigmoid, tanh */
    double worst = 0;
    int kernels_ok = 1;
    for (int c = 0; c < 16; c++) {
        int act = acts[c % 4], bias2d = (c / 4) % 2, trans = c / 8;
        double out[2][3 * 4 * 5];
        int64_t n = 0;
        for (int fused = 0; fused <= 1; fused++) {
            kiln_graph *g = kiln_graph_new(ctx);
            kiln_graph_set_fusion(g, fused);
            kiln_node *x = kiln_g_input(g, "x", F, 3, (int64_t[]){-1, 4, 6});
            double wd[30], bd[5], xd[72];
            pattern(wd, 30, 7, 13, 0.1, -0.6);
            pattern(bd, 5, 1, 5, 0.3, -0.5);
            pattern(xd, 72, 11, 19, 0.05, -0.45);
            kiln_tensor *wt = gc_tensor(ctx, F, 2,
                                        trans ? (int64_t[]){5, 6}
                                              : (int64_t[]){6, 5}, wd);
            kiln_tensor *bt = gc_tensor(ctx, F, bias2d ? 2 : 1,
                                        bias2d ? (int64_t[]){1, 5}
                                               : (int64_t[]){5}, bd);
            kiln_node *w = kiln_g_constant(g, wt), *b = kiln_g_constant(g, bt);
            kiln_tensor_free(wt);
            kiln_tensor_free(bt);
            kiln_node *y = kiln_g_add(b, kiln_g_gemm(x, 0, w, trans));
            if (act == 0)
                y = kiln_g_relu(y);
            else if (act == 1)
                y = kiln_g_sigmoid(y);
            else if (act == 2)
                y = kiln_g_tanh(y);
            kiln_tensor *xv = gc_tensor(ctx, F, 3, (int64_t[]){3, 4, 6}, xd);
            double *r = gc_run1(g, 1, &x, &xv, y, &n);
            kiln_graph_stats st;
            kiln_graph_get_stats(g, &st);
            if (fused)
                kernels_ok &= st.kernels == 1 && st.fused_kernels == 1;
            for (int64_t i = 0; r && i < n && i < 60; i++)
                out[fused][i] = r[i];
            if (!r)
                worst = INFINITY;
            free(r);
            kiln_tensor_free(xv);
            kiln_graph_free(g);
        }
        worst = fmax(worst, max_rel(out[1], out[0], n));
    }
    int exact = kiln_context_device(ctx)->backend == KILN_BACKEND_REFERENCE;
    double tol = exact ? 0 : F == KILN_F64 ? 1e-14 : 1e-6;
    CHECK(worst <= tol, "GEMM epilogues = separate kernels (%.3g, "
          "tolerance %g)", worst, tol);
    CHECK(kernels_ok, "a dense layer with bias and activation is one kernel");
}

/* One conv layer y = act(conv2d(x, w[, b])) (groups 2, 3x3, padding 1;
 * act 0 ReLU, 1 sigmoid, 2 tanh) with fusion on or off.  @train adds
 * loss = mean(y^2) and fetches its gradients with respect to x, w [and
 * b]; @keep also fetches the convolution's value (a second use, which
 * must keep it out of the activation's epilogue).  Returns every fetched
 * value, concatenated; NULL after an error. */
static double *conv_act_run(int act, int bias, int train, int keep,
                            int fusion, int64_t *n, kiln_graph_stats *st)
{
    kiln_graph *g = kiln_graph_new(ctx);
    kiln_graph_set_fusion(g, fusion);
    double wd[6 * 2 * 3 * 3], bd[6], xd[2 * 4 * 7 * 6];
    pattern(wd, 108, 7, 17, 0.05, -0.4);
    pattern(bd, 6, 1, 6, 0.2, -0.5);
    pattern(xd, 336, 13, 29, 0.04, -0.55);
    kiln_tensor *wt = gc_tensor(ctx, F, 4, (int64_t[]){6, 2, 3, 3}, wd);
    kiln_tensor *bt = gc_tensor(ctx, F, 1, (int64_t[]){6}, bd);
    kiln_node *x = kiln_g_input(g, "x", F, 4, (int64_t[]){-1, 4, 7, 6});
    kiln_node *w = kiln_g_variable(g, "w", wt);
    kiln_node *b = bias ? kiln_g_variable(g, "b", bt) : NULL;
    kiln_tensor_free(wt);
    kiln_tensor_free(bt);
    kiln_conv2d_params p = {.padding = {1, 1}, .groups = 2};
    kiln_node *cv = kiln_g_conv2d(x, w, b, &p);
    kiln_node *y = act == 0   ? kiln_g_relu(cv)
                   : act == 1 ? kiln_g_sigmoid(cv)
                              : kiln_g_tanh(cv);
    kiln_node *fetch[5];
    int nf = 0;
    fetch[nf++] = y;
    if (keep)
        fetch[nf++] = cv;
    if (train) {
        kiln_node *loss = kiln_g_mean(kiln_g_square(y), 0, NULL, 0);
        kiln_node *wrt[3] = {x, w, b};
        kiln_g_gradients(loss, bias ? 3 : 2, wrt, fetch + nf);
        nf += bias ? 3 : 2;
    }
    kiln_tensor *xv = gc_tensor(ctx, F, 4, (int64_t[]){2, 4, 7, 6}, xd);
    kiln_feed feed = {x, xv};
    kiln_tensor *out[5] = {NULL};
    double *all = NULL;
    *n = 0;
    if (kiln_graph_run(g, 1, &feed, nf, fetch, out) == KILN_OK) {
        all = malloc(sizeof *all * 2048);
        for (int i = 0; i < nf; i++) {
            int64_t k = 0;
            double *v = gc_read(out[i], &k);
            for (int64_t j = 0; j < k && *n < 2048; j++)
                all[(*n)++] = v[j];
            free(v);
        }
    } else {
        printf("  conv run failed: %s\n", kiln_error_message(ctx));
        kiln_clear_error(ctx);
    }
    kiln_graph_get_stats(g, st);
    for (int i = 0; i < nf; i++)
        kiln_tensor_free(out[i]);
    kiln_tensor_free(xv);
    kiln_graph_free(g);
    return all;
}

/* conv2d -> ReLU / sigmoid / tanh runs as one convolution whose GEMM
 * epilogue adds the bias and applies the activation.  Forward: the same
 * values bit for bit as fusion off (the eager conv adds its bias in the
 * epilogue too, and the epilogue rounds as the separate kernels), with
 * exactly one kernel fewer - the activation's.  Training: the activations
 * differentiate from their output, so the conv's value keeps its one use
 * and still fuses: fetching it as well (a second use) costs exactly that
 * activation kernel back; values and gradients equal fusion off. */
static void test_conv_epilogue(void)
{
    double worst = 0;
    int forward_ok = 1, train_ok = 1;
    for (int c = 0; c < 12; c++) {
        int act = c % 3, bias = (c / 3) % 2, train = c / 6;
        kiln_graph_stats on, off, kept, kept_off;
        int64_t n1 = 0, n2 = 0, n3 = 0, n4 = 0;
        double *a = conv_act_run(act, bias, train, 0, 1, &n1, &on);
        double *b = conv_act_run(act, bias, train, 0, 0, &n2, &off);
        double *k = conv_act_run(act, bias, train, 1, 1, &n3, &kept);
        double *ko = conv_act_run(act, bias, train, 1, 0, &n4, &kept_off);
        if (!a || !b || !k || !ko || n1 != n2 || n3 != n4 || n1 == 0) {
            worst = INFINITY;
        } else {
            double e = fmax(max_rel(a, b, n1), max_rel(k, ko, n3));
            if (!train) /* forward: bit for bit */
                for (int64_t i = 0; i < n1; i++)
                    e = a[i] == b[i] ? e : fmax(e, 1);
            worst = fmax(worst, e);
        }
        int fewer = on.kernels + 1 == kept.kernels;
        if (!train)
            forward_ok &= fewer && on.kernels + 1 == off.kernels &&
                          on.fused_kernels == 1 && on.fused_nodes == 2 &&
                          kept.fused_kernels == 0;
        else
            train_ok &= fewer && on.kernels < off.kernels;
        if (c == 9)
            printf("  conv+bias+sigmoid step: %llu kernels fused (%llu if "
                   "the conv is also fetched), %llu unfused\n",
                   (unsigned long long)on.kernels,
                   (unsigned long long)kept.kernels,
                   (unsigned long long)off.kernels);
        free(a);
        free(b);
        free(k);
        free(ko);
    }
    double tol = F == KILN_F64 ? 1e-13 : 1e-5;
    CHECK(worst <= tol, "conv + activation: fused = unfused (%.3g, forward "
          "exact, gradients within %g)", worst, tol);
    CHECK(forward_ok, "conv + activation forward: the activation joins the "
          "conv's GEMM (one kernel fewer), not when the conv is fetched too");
    CHECK(train_ok, "conv + activation training: still fused (one kernel "
          "fewer than with the conv fetched too)");
}

/* A LeNet-shaped network (conv-relu-pool twice, dense-relu, dense,
 * softmax cross-entropy) on 4 x 1 x 16 x 16: forward + backward with
 * fusion on issues fewer kernels, and every gradient agrees. */
static kiln_node *lenet_param(kiln_graph *g, int ndim, const int64_t *shape,
                              uint64_t seed)
{
    kiln_tensor *t = kiln_tensor_new(ctx, F, ndim, shape);
    kiln_init(t, KILN_INIT_XAVIER_UNIFORM, 0, 0, seed, 0);
    kiln_node *v = kiln_g_variable(g, "p", t);
    kiln_tensor_free(t);
    return v;
}

static void test_lenet_step(void)
{
    uint64_t kernels[2];
    double *grads[2][8];
    int64_t counts[8];
    for (int fused = 0; fused <= 1; fused++) {
        kiln_graph *g = kiln_graph_new(ctx);
        kiln_graph_set_fusion(g, fused);
        kiln_node *x = kiln_g_input(g, "x", F, 4, (int64_t[]){-1, 1, 16, 16});
        kiln_node *y = kiln_g_input(g, "y", KILN_I32, 1, (int64_t[]){-1});
        kiln_node *p[8] = {
            lenet_param(g, 4, (int64_t[]){4, 1, 5, 5}, 1),
            lenet_param(g, 1, (int64_t[]){4}, 2),
            lenet_param(g, 4, (int64_t[]){8, 4, 3, 3}, 3),
            lenet_param(g, 1, (int64_t[]){8}, 4),
            lenet_param(g, 2, (int64_t[]){32, 16}, 5),
            lenet_param(g, 2, (int64_t[]){1, 16}, 6),
            lenet_param(g, 2, (int64_t[]){16, 10}, 7),
            lenet_param(g, 2, (int64_t[]){1, 10}, 8)};
        kiln_conv2d_params same = {.mode = KILN_PAD_SAME};
        kiln_pool2d_params pool = {.kernel = {2, 2}};
        kiln_node *h = kiln_g_relu(kiln_g_conv2d(x, p[0], p[1], &same));
        h = kiln_g_max_pool2d(h, &pool);                       /* 4x8x8  */
        h = kiln_g_relu(kiln_g_conv2d(h, p[2], p[3], NULL));   /* 8x6x6  */
        h = kiln_g_max_pool2d(kiln_g_max_pool2d(h, &pool), &pool); /* 8x1x1 */
        h = kiln_g_flatten(kiln_g_concat((kiln_node *[]){h, h, h, h}, 4, 1),
                           1, 3);                              /* 32     */
        h = kiln_g_relu(kiln_g_add(kiln_g_matmul(h, p[4]), p[5]));
        kiln_node *logits = kiln_g_add(kiln_g_matmul(h, p[6]), p[7]);
        kiln_node *loss = kiln_g_softmax_cross_entropy(logits, y);
        kiln_node *fetch[9];
        fetch[0] = loss;
        kiln_g_gradients(loss, 8, p, fetch + 1);
        double xd[4 * 256];
        for (int i = 0; i < 4 * 256; i++)
            xd[i] = 0.01 * ((i * 37) % 101);
        kiln_tensor *xv = gc_tensor(ctx, F, 4, (int64_t[]){4, 1, 16, 16}, xd);
        kiln_tensor *yv = gc_tensor(ctx, KILN_I32, 1, (int64_t[]){4},
                                    (double[]){3, 1, 4, 1});
        kiln_feed feeds[2] = {{x, xv}, {y, yv}};
        kiln_tensor *out[9] = {NULL};
        kiln_status st = kiln_graph_run(g, 2, feeds, 9, fetch, out);
        CHECK(st == KILN_OK, "LeNet step runs (fusion %d): %s", fused,
              kiln_error_message(ctx));
        kiln_graph_stats gs;
        kiln_graph_get_stats(g, &gs);
        kernels[fused] = gs.kernels;
        for (int i = 0; i < 8; i++) {
            grads[fused][i] = st == KILN_OK ? gc_read(out[1 + i], &counts[i])
                                            : NULL;
            kiln_tensor_free(out[1 + i]);
        }
        kiln_tensor_free(out[0]);
        kiln_tensor_free(xv);
        kiln_tensor_free(yv);
        kiln_graph_free(g);
    }
    double worst = 0;
    for (int i = 0; i < 8; i++) {
        if (grads[0][i] && grads[1][i])
            worst = fmax(worst, max_rel(grads[1][i], grads[0][i], counts[i]));
        else
            worst = INFINITY;
        free(grads[0][i]);
        free(grads[1][i]);
    }
    CHECK(worst <= (F == KILN_F64 ? 1e-13 : 1e-5),
          "LeNet gradients agree with fusion on and off (%.3g)", worst);
    /* Exact counts.  Each convolution is IM2COL + GEMM with its bias in
     * the GEMM's epilogue, fused or not (the step was 42 fused / 50
     * unfused while the bias was a kernel of its own); fusion also takes
     * the ReLU after each convolution into that epilogue, besides the
     * dense layers' GEMM epilogues and the elementwise chains: 10 kernels
     * fewer.  On a device, a reduction to fewer outputs than the device
     * has workgroup slots is split in two kernels (reduce.c; the first
     * convolution's 6 bias gradients on a 2-core PoCL), with fusion on
     * and off alike; the reference never splits. */
    int64_t split = (int64_t)kernels[1] - 38;
    int exact = kiln_context_device(ctx)->backend == KILN_BACKEND_REFERENCE
                    ? split == 0
                    : split >= 0 && split <= 4;
    CHECK(exact && kernels[0] == kernels[1] + 10, "LeNet forward+backward: "
          "%llu kernels fused (38 expected, + split reductions), %llu "
          "unfused (10 more)", (unsigned long long)kernels[1],
          (unsigned long long)kernels[0]);
    printf("  LeNet step: %llu kernels fused, %llu unfused\n",
           (unsigned long long)kernels[1], (unsigned long long)kernels[0]);
}

int main(int argc, char **argv)
{
    ctx = harness_open(harness_device(argc, argv), 64);
    kiln_context_options ro = {.device = "reference"};
    ref = kiln_context_create(&ro);
    F = graph_check_dtype(ctx);
    harness_rng r = {42};
    harness_seed(argc, argv, &r);
    double xd[105], yd[7];
    for (int i = 0; i < 105; i++)
        xd[i] = harness_uniform(&r, -2, 2);
    for (int i = 0; i < 7; i++)
        yd[i] = harness_uniform(&r, -2, 2);
    for (int pass = 0; pass < 2; pass++) {
        printf("%s\n", pass ? "float32" : kiln_dtype_name(F));
        test_chain(xd, yd);
        test_random_dags(xd, yd);
        test_reduction_prologue(xd, yd);
        test_limits();
        test_layout_fallback();
        test_assign_order();
        test_mlp_step();
        test_lenet_step();
        test_gemm_epilogue();
        test_conv_epilogue();
        if (F == KILN_F32)
            break;
        F = KILN_F32; /* and again in f32 */
    }
    kiln_context_destroy(ref);
    return harness_close(ctx);
}
