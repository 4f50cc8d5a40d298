/*
 * test_graph.c - the graph layer: lazy runs of only what is needed,
 * variables and assignments, free batch dimensions, autodiff of composite
 * graphs against central differences (the course's L = c(a + 2b) and 4-3-1
 * backprop example included), the memory plan and error handling.
 * Fusion on and off must agree (test_graph_fusion.c checks more).
 */
#include "graph_check.h"

static kiln_context *ctx;
static kiln_dtype F;

static kiln_node *scalar(kiln_graph *g, double v)
{
    return kiln_g_scalar(g, F, v);
}

static double fetch1(kiln_graph *g, kiln_node *n)
{
    int64_t count = 0;
    double *v = gc_run1(g, 0, NULL, NULL, n, &count);
    double r = v && count ? v[0] : NAN;
    free(v);
    return r;
}

/* add(2,3) = 5; pow(mul(2,3), add(2,3)) = 7776; an unfetched node never
 * runs (its kernel is not counted). */
static void test_course_basics(void)
{
    kiln_graph *g = kiln_graph_new(ctx);
    kiln_node *a = scalar(g, 2), *b = scalar(g, 3);
    kiln_node *add = kiln_g_add(a, b);
    kiln_node *p = kiln_g_pow(kiln_g_mul(a, b), add);
    kiln_node *unused = kiln_g_exp(kiln_g_mul(p, scalar(g, 100)));
    CHECK(unused != NULL, "building the unused node: %s",
          kiln_error_message(ctx));
    CHECK(fetch1(g, add) == 5, "add(2,3) = %g", fetch1(g, add));
    kiln_graph_set_fusion(g, 0);
    CHECK(fetch1(g, p) == 7776, "pow(mul(2,3), add(2,3)) = %g",
          fetch1(g, p));
    kiln_graph_stats st;
    kiln_graph_get_stats(g, &st);
    CHECK(st.nodes == 3 && st.kernels == 3,
          "only the 3 needed ops run: %llu nodes, %llu kernels",
          (unsigned long long)st.nodes, (unsigned long long)st.kernels);
    kiln_graph_free(g);
}

/* A variable assigned a * 2 three times gives 4, 8, 16; a second graph
 * keeps its own state. */
static void test_variables(void)
{
    kiln_graph *g1 = kiln_graph_new(ctx), *g2 = kiln_graph_new(ctx);
    kiln_tensor *two = gc_tensor(ctx, F, 0, NULL, (double[]){2});
    kiln_node *v1 = kiln_g_variable(g1, "a", two);
    kiln_node *v2 = kiln_g_variable(g2, "a", two);
    kiln_tensor_free(two); /* the graphs keep their own copies */
    kiln_node *up1 = kiln_g_assign(v1, kiln_g_scale(v1, 2));
    kiln_node *up2 = kiln_g_assign(v2, kiln_g_scale(v2, 2));
    double expect[3] = {4, 8, 16};
    for (int i = 0; i < 3; i++) {
        double got = fetch1(g1, up1);
        CHECK(got == expect[i], "assign a*2 run %d: %g", i + 1, got);
    }
    CHECK(fetch1(g2, up2) == 4, "the second graph's variable starts at 2");
    CHECK(fetch1(g1, v1) == 16, "reading the variable: 16");
    /* assign_add, and a fetched variable is a snapshot, not a view. */
    kiln_tensor *snap = NULL;
    kiln_graph_run(g1, 0, NULL, 1, &v1, &snap);
    kiln_node *inc = kiln_g_assign_add(v1, scalar(g1, 1));
    CHECK(fetch1(g1, inc) == 17, "assign_add 1 gives 17");
    int64_t n;
    double *s = gc_read(snap, &n);
    CHECK(s && s[0] == 16, "the earlier fetch still holds 16: %g",
          s ? s[0] : NAN);
    free(s);
    kiln_tensor_free(snap);
    /* Errors: wrong shape on assign is refused at build time for dtype. */
    kiln_node *bad = kiln_g_assign(v1, kiln_g_cast(v1, KILN_I32));
    CHECK(!bad && kiln_status_of(ctx) == KILN_ERROR_DTYPE,
          "assigning an i32 to a float variable is refused");
    kiln_clear_error(ctx);
    kiln_graph_free(g1);
    kiln_graph_free(g2);
}

/* Inputs with a free batch dimension; feeding errors. */
static void test_inputs(void)
{
    kiln_graph *g = kiln_graph_new(ctx);
    kiln_node *x = kiln_g_input(g, "x", F, 2, (int64_t[]){-1, 3});
    kiln_tensor *w0 = gc_tensor(ctx, F, 2, (int64_t[]){3, 2},
                                (double[]){1, 2, 3, 4, 5, 6});
    kiln_node *w = kiln_g_variable(g, "w", w0);
    kiln_tensor_free(w0);
    kiln_node *y = kiln_g_sum(kiln_g_matmul(x, w), 1, (int[]){0}, 0);
    int64_t shape[6];
    CHECK(kiln_node_shape(kiln_g_matmul(x, w), shape) == 2 &&
              shape[0] == -1 && shape[1] == 2,
          "matmul of [-1,3] x [3,2] is [-1,2]");
    for (int batch = 1; batch <= 4; batch += 3) {
        double data[12];
        for (int i = 0; i < 3 * batch; i++)
            data[i] = i + 1;
        kiln_tensor *xv = gc_tensor(ctx, F, 2, (int64_t[]){batch, 3}, data);
        int64_t n;
        double *r = gc_run1(g, 1, &x, &xv, y, &n);
        double e0 = 0, e1 = 0;
        for (int b = 0; b < batch; b++)
            for (int k = 0; k < 3; k++) {
                e0 += data[b * 3 + k] * (1 + 2 * k);
                e1 += data[b * 3 + k] * (2 + 2 * k);
            }
        CHECK(r && n == 2 && r[0] == e0 && r[1] == e1,
              "batch %d: sums %g %g, expected %g %g", batch, r ? r[0] : NAN,
              r ? r[1] : NAN, e0, e1);
        free(r);
        kiln_tensor_free(xv);
    }
    /* Not fed; fed the wrong shape: clear errors, nothing leaks. */
    kiln_tensor *out = (kiln_tensor *)1;
    kiln_status st = kiln_graph_run(g, 0, NULL, 1, &y, &out);
    CHECK(st == KILN_ERROR_INVALID_ARGUMENT && out == NULL &&
              strstr(kiln_error_message(ctx), "'x'"),
          "an unfed input is named: %s", kiln_error_message(ctx));
    kiln_clear_error(ctx);
    kiln_tensor *wrong = gc_tensor(ctx, F, 2, (int64_t[]){2, 4},
                                   (double[8]){0});
    kiln_feed f = {x, wrong};
    st = kiln_graph_run(g, 1, &f, 1, &y, &out);
    CHECK(st == KILN_ERROR_SHAPE && strstr(kiln_error_message(ctx), "[-1, 3]"),
          "a wrong feed shape is explained: %s", kiln_error_message(ctx));
    kiln_clear_error(ctx);
    kiln_tensor_free(wrong);
    /* Build-time shape errors. */
    kiln_node *bad = kiln_g_add(x, kiln_g_input(g, "z", F, 1,
                                                (int64_t[]){4}));
    CHECK(!bad && kiln_status_of(ctx) == KILN_ERROR_SHAPE,
          "[-1,3] + [4] is refused when built");
    kiln_clear_error(ctx);
    kiln_graph_free(g);
}

/* L = c (a + 2b): dL/da = c, dL/db = 2c, dL/dc = a + 2b. */
static void test_course_chain_rule(void)
{
    kiln_graph *g = kiln_graph_new(ctx);
    kiln_node *in[3];
    const char *names[3] = {"a", "b", "c"};
    for (int i = 0; i < 3; i++)
        in[i] = kiln_g_input(g, names[i], F, 0, NULL);
    kiln_node *L = kiln_g_mul(in[2], kiln_g_add(in[0], kiln_g_scale(in[1], 2)));
    kiln_node *grads[3];
    CHECK(kiln_g_gradients(L, 3, in, grads) == KILN_OK, "gradients: %s",
          kiln_error_message(ctx));
    double av = 3, bv = 1, cv = -2;
    kiln_tensor *vals[3] = {gc_tensor(ctx, F, 0, NULL, &av),
                            gc_tensor(ctx, F, 0, NULL, &bv),
                            gc_tensor(ctx, F, 0, NULL, &cv)};
    double expect[3] = {cv, 2 * cv, av + 2 * bv};
    for (int i = 0; i < 3; i++) {
        double *r = gc_run1(g, 3, in, vals, grads[i], NULL);
        CHECK(r && r[0] == expect[i], "dL/d%s = %g, expected %g", names[i],
              r ? r[0] : NAN, expect[i]);
        free(r);
    }
    for (int i = 0; i < 3; i++)
        kiln_tensor_free(vals[i]);
    kiln_graph_free(g);
}

/* The course's 4-3-1 net: sigmoid hidden layer, linear output, squared
 * error.  Autodiff = the hand-written chain rule = central differences. */
static void test_backprop_431(void)
{
    kiln_graph *g = kiln_graph_new(ctx);
    kiln_node *x = kiln_g_input(g, "x", F, 2, (int64_t[]){1, 4});
    kiln_node *w1 = kiln_g_input(g, "w1", F, 2, (int64_t[]){4, 3});
    kiln_node *w2 = kiln_g_input(g, "w2", F, 2, (int64_t[]){3, 1});
    kiln_node *t = kiln_g_input(g, "t", F, 2, (int64_t[]){1, 1});
    kiln_node *h = kiln_g_sigmoid(kiln_g_matmul(x, w1));
    kiln_node *y = kiln_g_matmul(h, w2);
    kiln_node *loss = kiln_g_scale(kiln_g_sum(kiln_g_square(kiln_g_sub(y, t)),
                                              0, NULL, 0), 0.5);
    double xd[4] = {1, 0.5, -1, 2}, w1d[12], w2d[3] = {0.3, -0.7, 0.5},
           td[1] = {0.25};
    for (int i = 0; i < 12; i++)
        w1d[i] = 0.1 * (i % 5) - 0.2;
    /* The chain rule by hand. */
    double hv[3], yv = 0;
    for (int j = 0; j < 3; j++) {
        double z = 0;
        for (int i = 0; i < 4; i++)
            z += xd[i] * w1d[i * 3 + j];
        hv[j] = 1 / (1 + exp(-z));
        yv += hv[j] * w2d[j];
    }
    double dy = yv - td[0], dw2[3], dw1[12];
    for (int j = 0; j < 3; j++) {
        dw2[j] = dy * hv[j];
        double dz = dy * w2d[j] * hv[j] * (1 - hv[j]);
        for (int i = 0; i < 4; i++)
            dw1[i * 3 + j] = dz * xd[i];
    }
    kiln_node *wrt[2] = {w1, w2}, *grads[2];
    kiln_g_gradients(loss, 2, wrt, grads);
    kiln_node *ins[4] = {x, w1, w2, t};
    kiln_tensor *vals[4] = {
        gc_tensor(ctx, F, 2, (int64_t[]){1, 4}, xd),
        gc_tensor(ctx, F, 2, (int64_t[]){4, 3}, w1d),
        gc_tensor(ctx, F, 2, (int64_t[]){3, 1}, w2d),
        gc_tensor(ctx, F, 2, (int64_t[]){1, 1}, td)};
    double tol = F == KILN_F64 ? 1e-12 : 1e-5, worst = 0;
    double *g1 = gc_run1(g, 4, ins, vals, grads[0], NULL);
    double *g2 = gc_run1(g, 4, ins, vals, grads[1], NULL);
    for (int i = 0; g1 && i < 12; i++)
        worst = fmax(worst, fabs(g1[i] - dw1[i]));
    for (int j = 0; g2 && j < 3; j++)
        worst = fmax(worst, fabs(g2[j] - dw2[j]));
    CHECK(g1 && g2 && worst < tol, "4-3-1: autodiff vs chain rule %.3g",
          worst);
    free(g1);
    free(g2);
    for (int i = 0; i < 4; i++)
        kiln_tensor_free(vals[i]);
    /* And against central differences (x, w1, w2 differentiated). */
    double *data[4] = {xd, w1d, w2d, td};
    double err = graph_gradcheck(ctx, g, loss, 3, 4, ins, data,
                                 F == KILN_F64 ? 1e-6 : 1e-2);
    CHECK(err < (F == KILN_F64 ? 1e-7 : 2e-2),
          "4-3-1: autodiff vs central differences %.3g", err);
    kiln_graph_free(g);
}

typedef kiln_node *(*build_fn)(kiln_graph *g, kiln_node **x);

/* Composite graphs over every math op, each reduced to a scalar loss by a
 * weighted sum (so every element's gradient differs). */
static kiln_node *weighted(kiln_graph *g, kiln_node *y)
{
    int64_t shape[6];
    int nd = kiln_node_shape(y, shape);
    int64_t n = 1;
    for (int d = 0; d < nd; d++)
        n *= shape[d];
    double *w = malloc(sizeof *w * (size_t)(n ? n : 1));
    for (int64_t i = 0; i < n; i++)
        w[i] = 0.5 + 0.25 * (double)(i % 7);
    kiln_tensor *t = gc_tensor(ctx, F, nd, shape, w);
    free(w);
    kiln_node *c = kiln_g_constant(g, t);
    kiln_tensor_free(t);
    return kiln_g_sum(kiln_g_mul(y, c), 0, NULL, 0);
}

static kiln_node *b_elementwise(kiln_graph *g, kiln_node **x)
{
    /* x0 [2,3], x1 [3] (broadcast), x2 [2,1] */
    kiln_node *a = kiln_g_mul(kiln_g_tanh(x[0]), x[1]);
    kiln_node *b = kiln_g_div(kiln_g_sigmoid(a), kiln_g_add_scalar(
                                                      kiln_g_square(x[2]), 1));
    kiln_node *c = kiln_g_sub(kiln_g_exp(kiln_g_scale(b, 0.5)),
                              kiln_g_log(kiln_g_add_scalar(kiln_g_abs(x[1]),
                                                           0.5)));
    kiln_node *d = kiln_g_maximum(kiln_g_relu(c), kiln_g_minimum(x[0], x[2]));
    kiln_node *e = kiln_g_pow(kiln_g_add_scalar(kiln_g_sqrt(kiln_g_square(d)),
                                                1.5),
                              kiln_g_add_scalar(kiln_g_neg(x[2]), 2));
    kiln_node *f = kiln_g_select(kiln_g_compare(x[0], x[1], KILN_GT), e, a);
    return weighted(g, kiln_g_add(f, d));
}

static kiln_node *b_reduce(kiln_graph *g, kiln_node **x)
{
    kiln_node *s = kiln_g_sum(x[0], 1, (int[]){1}, 1);
    kiln_node *m = kiln_g_mean(x[0], 1, (int[]){0}, 0);
    kiln_node *mx = kiln_g_reduce(x[0], KILN_REDUCE_MAX, 1, (int[]){-1}, 0);
    kiln_node *mn = kiln_g_reduce(x[0], KILN_REDUCE_MIN, 0, NULL, 0);
    kiln_node *y = kiln_g_add(kiln_g_mul(s, x[2]), m);
    return kiln_g_add(kiln_g_add(weighted(g, y), weighted(g, mx)),
                      kiln_g_mul(mn, kiln_g_sum(x[1], 0, NULL, 0)));
}

static kiln_node *b_matmul(kiln_graph *g, kiln_node **x)
{
    /* x0 [2,3], x1 [3] -> reshape [3,1], x2 [2,1] */
    kiln_node *b = kiln_g_reshape(x[1], 2, (int64_t[]){3, 1});
    kiln_node *y = kiln_g_matmul(x[0], b);                   /* [2,1] */
    kiln_node *z = kiln_g_gemm(x[0], 1, x[2], 0);            /* [3,1] */
    kiln_node *w = kiln_g_gemm(z, 1, x[0], 1);               /* [1,2] */
    kiln_node *v = kiln_g_gemm(x[2], 1, kiln_g_transpose(x[0], 0, 1), 1);
    return kiln_g_add(kiln_g_add(weighted(g, y), weighted(g, w)),
                      weighted(g, kiln_g_add(v, kiln_g_transpose(z, 0, 1))));
}

static kiln_node *b_shape(kiln_graph *g, kiln_node **x)
{
    kiln_node *c = kiln_g_concat((kiln_node *[]){x[0], x[2], x[0]}, 3, 1);
    kiln_node *s = kiln_g_slice(c, 1, 1, 6, 2);               /* [2,3] */
    kiln_node *p = kiln_g_permute(kiln_g_reshape(s, 3, (int64_t[]){2, 3, 1}),
                                  (int[]){2, 0, 1});
    kiln_node *f = kiln_g_flatten(p, 0, 1);                   /* [2,3] */
    kiln_node *cast = kiln_g_cast(x[2], F);
    return weighted(g, kiln_g_mul(kiln_g_add(f, x[1]), cast));
}

static void test_gradchecks(void)
{
    struct {
        const char *name;
        build_fn build;
    } cases[] = {{"elementwise", b_elementwise},
                 {"reductions", b_reduce},
                 {"matmul", b_matmul},
                 {"shapes", b_shape}};
    for (int c = 0; c < 4; c++) {
        for (int fused = 0; fused <= 1; fused++) {
            kiln_graph *g = kiln_graph_new(ctx);
            kiln_graph_set_fusion(g, fused);
            kiln_node *x[3] = {
                kiln_g_input(g, "x0", F, 2, (int64_t[]){2, 3}),
                kiln_g_input(g, "x1", F, 1, (int64_t[]){3}),
                kiln_g_input(g, "x2", F, 2, (int64_t[]){2, 1})};
            kiln_node *loss = cases[c].build(g, x);
            double d0[6] = {0.3, -1.2, 0.8, 1.5, -0.4, 0.1};
            double d1[3] = {0.7, -0.2, 0.45};
            double d2[2] = {-0.6, 0.9};
            double *data[3] = {d0, d1, d2};
            double err = graph_gradcheck(ctx, g, loss, 3, 3, x, data,
                                         F == KILN_F64 ? 1e-6 : 1e-2);
            double tol = F == KILN_F64 ? 1e-7 : 3e-2;
            CHECK(err < tol, "%s (fusion %s): autodiff vs central "
                  "differences %.3g (tolerance %g)", cases[c].name,
                  fused ? "on" : "off", err, tol);
            kiln_clear_error(ctx);
            kiln_graph_free(g);
        }
    }
}

/* stop_gradient: L = sum(stop(x) * x) has dL/dx = x, not 2x. */
static void test_stop_gradient(void)
{
    kiln_graph *g = kiln_graph_new(ctx);
    kiln_node *x = kiln_g_input(g, "x", F, 1, (int64_t[]){3});
    kiln_node *L = kiln_g_sum(kiln_g_mul(kiln_g_stop_gradient(x), x), 0,
                              NULL, 0);
    kiln_node *dx;
    kiln_g_gradients(L, 1, &x, &dx);
    double xd[3] = {1.5, -2, 0.25};
    kiln_tensor *xv = gc_tensor(ctx, F, 1, (int64_t[]){3}, xd);
    double *r = gc_run1(g, 1, &x, &xv, dx, NULL);
    CHECK(r && r[0] == xd[0] && r[1] == xd[1] && r[2] == xd[2],
          "stop_gradient: dL/dx = x");
    free(r);
    kiln_tensor_free(xv);
    kiln_graph_free(g);
}

/* Intermediates are freed at their last use: a long chain's peak is a few
 * values, not all of them. */
static void test_memory_plan(void)
{
    kiln_graph *g = kiln_graph_new(ctx);
    kiln_graph_set_fusion(g, 0);
    kiln_node *x = kiln_g_input(g, "x", F, 1, (int64_t[]){4096});
    kiln_node *y = x;
    for (int i = 0; i < 20; i++)
        y = kiln_g_add_scalar(kiln_g_tanh(y), 0.1);
    kiln_tensor *xv = kiln_tensor_new(ctx, F, 1, (int64_t[]){4096});
    kiln_fill(xv, 0.5);
    kiln_feed f = {x, xv};
    kiln_tensor *out = NULL;
    CHECK(kiln_graph_run(g, 1, &f, 1, &y, &out) == KILN_OK, "chain runs");
    kiln_graph_stats st;
    kiln_graph_get_stats(g, &st);
    uint64_t one = 4096 * kiln_dtype_size(F);
    CHECK(st.intermediate_bytes == 40 * one && st.peak_bytes <= 2 * one,
          "peak %llu bytes for %llu bytes of intermediates (one value is "
          "%llu)", (unsigned long long)st.peak_bytes,
          (unsigned long long)st.intermediate_bytes, (unsigned long long)one);
    kiln_context_stats cs;
    kiln_context_get_stats(ctx, &cs);
    printf("  memory plan: peak %llu of %llu bytes, %llu live allocations\n",
           (unsigned long long)st.peak_bytes,
           (unsigned long long)st.intermediate_bytes,
           (unsigned long long)cs.live_allocations);
    kiln_tensor_free(out);
    kiln_tensor_free(xv);
    kiln_graph_free(g);
}

/* A graph run captured once and replayed on new input data: results equal
 * fresh runs, and temporaries freed during the capture share memory. */
static void test_recorded_run(void)
{
    kiln_graph *g = kiln_graph_new(ctx);
    kiln_graph_set_fusion(g, 0); /* many temporaries */
    kiln_node *x = kiln_g_input(g, "x", F, 1, (int64_t[]){1000});
    kiln_node *y = x;
    for (int i = 0; i < 10; i++)
        y = kiln_g_add_scalar(kiln_g_sigmoid(y), 0.5);
    kiln_node *wrt = x, *dx;
    kiln_g_gradients(kiln_g_sum(y, 0, NULL, 0), 1, &wrt, &dx);
    kiln_tensor *xv = kiln_tensor_new(ctx, F, 1, (int64_t[]){1000});
    kiln_fill(xv, 0);
    kiln_feed f = {x, xv};
    kiln_context_stats before, after;
    kiln_finish(ctx);
    kiln_context_get_stats(ctx, &before);
    kiln_node *fetch[2] = {y, dx};
    kiln_tensor *out[2] = {NULL, NULL};
    CHECK(kiln_recording_begin(ctx) == KILN_OK, "capture begins");
    kiln_status st = kiln_graph_run(g, 1, &f, 2, fetch, out);
    kiln_recording *rec = kiln_recording_end(ctx);
    kiln_graph_stats gs;
    kiln_graph_get_stats(g, &gs);
    kiln_context_get_stats(ctx, &after);
    uint64_t held = after.live_allocations - before.live_allocations;
    CHECK(st == KILN_OK && rec, "graph run captured: %s",
          kiln_error_message(ctx));
    /* Without reuse every temporary would stay held (about 50 values of
     * 1000 elements); the forward values the backward pass reads are
     * alive at once, so the peak is about 12. */
    uint64_t values = gs.intermediate_bytes / (1000 * kiln_dtype_size(F));
    CHECK(held * 3 < values, "the capture holds %llu allocations for %llu "
          "intermediate values", (unsigned long long)held,
          (unsigned long long)values);
    printf("  recorded run: %llu kernels, holds %llu allocations\n",
           (unsigned long long)(rec ? kiln_recording_dispatches(rec) : 0),
           (unsigned long long)held);
    double worst = 0;
    for (int round = 0; rec && round < 3; round++) {
        double xd[1000];
        for (int i = 0; i < 1000; i++)
            xd[i] = 0.01 * (i % 37) * (round + 1) - 0.3;
        kiln_tensor *tmp = gc_tensor(ctx, F, 1, (int64_t[]){1000}, xd);
        kiln_copy(xv, tmp);
        kiln_tensor_free(tmp);
        kiln_recording_replay(rec);
        double *ry = gc_read(out[0], NULL), *rd = gc_read(out[1], NULL);
        /* The same graph, run afresh. */
        kiln_tensor *fresh[2] = {NULL, NULL};
        kiln_graph_run(g, 1, &f, 2, fetch, fresh);
        double *ey = gc_read(fresh[0], NULL), *ed = gc_read(fresh[1], NULL);
        for (int i = 0; i < 1000; i++)
            worst = fmax(worst, fmax(fabs(ry[i] - ey[i]), fabs(rd[i] - ed[i])));
        free(ry);
        free(rd);
        free(ey);
        free(ed);
        kiln_tensor_free(fresh[0]);
        kiln_tensor_free(fresh[1]);
    }
    CHECK(worst == 0, "replays equal fresh runs bit for bit (%.3g)", worst);
    kiln_tensor_free(out[0]);
    kiln_tensor_free(out[1]);
    kiln_recording_free(rec);
    kiln_tensor_free(xv);
    kiln_graph_free(g);
}

int main(int argc, char **argv)
{
    ctx = harness_open(harness_device(argc, argv), 64);
    F = graph_check_dtype(ctx);
    printf("gradient checks in %s\n", kiln_dtype_name(F));
    test_course_basics();
    test_variables();
    test_inputs();
    test_course_chain_rule();
    test_backprop_431();
    test_gradchecks();
    test_stop_gradient();
    test_memory_plan();
    test_recorded_run();
    return harness_close(ctx);
}
