/*
 * test_graph_nn.c - graph nodes of the layers' ops (lib/graph/graph_ops_nn.c):
 * each forward node gives exactly the eager op's numbers on the same
 * device; each backward rule matches central differences of a scalar loss
 * built on the op (f64 where the device has it), with fusion on and off;
 * dropout masks per mode and per run; batch norm's running statistics;
 * build-time shape checks; and a small LeNet checked end to end.
 *
 * usage: test_graph_nn --device SPEC
 */
#include <time.h>

#include "graph_check.h"
#include "graph/graph.h" /* kiln__graph_prepare_replay */

static kiln_context *ctx;
static kiln_dtype F;          /* gradient checks: f64 where available      */
static harness_rng rng = {20261123};

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int64_t numel_of(int ndim, const int64_t *shape)
{
    int64_t n = 1;
    for (int d = 0; d < ndim; d++)
        n *= shape[d];
    return n;
}

/* n uniform values in [lo, hi) (malloc'd). */
static double *uniform(int64_t n, double lo, double hi)
{
    double *v = malloc(sizeof *v * (size_t)(n ? n : 1));
    for (int64_t i = 0; i < n; i++)
        v[i] = harness_uniform(&rng, lo, hi);
    return v;
}

/* n distinct values spaced 0.05 apart, shuffled: max pooling's choice
 * then never flips under a finite-difference step. */
static double *distinct(int64_t n)
{
    double *v = malloc(sizeof *v * (size_t)(n ? n : 1));
    for (int64_t i = 0; i < n; i++)
        v[i] = -1.0 + 0.05 * (double)i;
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)(harness_next(&rng) % (uint64_t)(i + 1));
        double t = v[i];
        v[i] = v[j];
        v[j] = t;
    }
    return v;
}

/* A constant node of @dtype from @n doubles. */
static kiln_node *constant(kiln_graph *g, kiln_dtype dtype, int ndim,
                           const int64_t *shape, const double *v)
{
    kiln_tensor *t = gc_tensor(ctx, dtype, ndim, shape, v);
    kiln_node *c = kiln_g_constant(g, t);
    kiln_tensor_free(t);
    return c;
}

/* sum(y * c) with c = 0.5 + 0.25 (i mod 7): every element's gradient
 * differs. */
static double weight_of(int64_t i)
{
    return 0.5 + 0.25 * (double)(i % 7);
}

static kiln_node *weighted(kiln_graph *g, kiln_node *y)
{
    int64_t shape[6];
    int nd = kiln_node_shape(y, shape);
    if (nd < 0)
        return NULL;
    int64_t n = numel_of(nd, shape);
    double *w = malloc(sizeof *w * (size_t)(n ? n : 1));
    for (int64_t i = 0; i < n; i++)
        w[i] = weight_of(i);
    kiln_node *c = constant(g, kiln_node_dtype(y), nd, shape, w);
    free(w);
    return kiln_g_sum(kiln_g_mul(y, c), 0, NULL, 0);
}

/* Exact equality of two tensors' elements. */
static void same(const char *what, kiln_tensor *graph, kiln_tensor *eager)
{
    int64_t ng = -1, ne = -2;
    double *a = graph ? gc_read(graph, &ng) : NULL;
    double *b = eager ? gc_read(eager, &ne) : NULL;
    int64_t bad = 0;
    for (int64_t i = 0; a && b && ng == ne && i < ng; i++)
        bad += !(a[i] == b[i] || (isnan(a[i]) && isnan(b[i])));
    CHECK(a && b && ng == ne && bad == 0,
          "%s: graph and eager results %s (%lld of %lld elements differ): %s",
          what, a && b ? "differ" : "missing", (long long)bad,
          (long long)ng, kiln_error_message(ctx));
    free(a);
    free(b);
    kiln_clear_error(ctx);
}

/* Runs @g with @n feeds and fetches @y. */
static kiln_tensor *run1(kiln_graph *g, int n, const kiln_feed *feeds,
                         kiln_node *y)
{
    kiln_tensor *out = NULL;
    if (kiln_graph_run(g, n, feeds, 1, &y, &out) != KILN_OK)
        printf("  run: %s\n", kiln_error_message(ctx));
    return out;
}

/* ---- (1) forward nodes = eager ops ---------------------------------------- */

static kiln_tensor *rand_tensor(kiln_dtype dt, int ndim, const int64_t *shape,
                                double lo, double hi)
{
    double *v = uniform(numel_of(ndim, shape), lo, hi);
    kiln_tensor *t = gc_tensor(ctx, dt, ndim, shape, v);
    free(v);
    return t;
}

static void test_forward_matches_eager(void)
{
    const kiln_dtype D = KILN_F32;
    kiln_graph *g = kiln_graph_new(ctx);
    /* conv2d with a free batch dimension: fed batches of 2 and 3. */
    int64_t xs[4] = {3, 3, 7, 6};
    kiln_tensor *xv = rand_tensor(D, 4, xs, -1, 1);
    kiln_tensor *wv = rand_tensor(D, 4, (int64_t[]){4, 3, 3, 3}, -0.5, 0.5);
    kiln_tensor *bv = rand_tensor(D, 1, (int64_t[]){4}, -0.5, 0.5);
    kiln_node *x = kiln_g_input(g, "x", D, 4, (int64_t[]){-1, 3, 7, 6});
    kiln_node *w = kiln_g_constant(g, wv), *b = kiln_g_constant(g, bv);
    kiln_conv2d_params cp = {.stride = {2, 2}, .padding = {1, 1}};
    kiln_node *conv = kiln_g_conv2d(x, w, b, &cp);
    int64_t shape[6];
    CHECK(kiln_node_shape(conv, shape) == 4 && shape[0] == -1 &&
              shape[1] == 4 && shape[2] == 4 && shape[3] == 3,
          "conv2d of [-1,3,7,6] by [4,3,3,3], stride 2, pad 1 is [-1,4,4,3]");
    for (int64_t batch = 2; batch <= 3; batch++) {
        kiln_tensor *xb = kiln_slice(xv, 0, 0, batch, 1);
        kiln_feed f = {x, xb};
        kiln_tensor *gy = run1(g, 1, &f, conv);
        kiln_tensor *ey = kiln_conv2d(xb, wv, bv, &cp);
        same(batch == 2 ? "conv2d (batch 2)" : "conv2d (batch 3)", gy, ey);
        kiln_tensor_free(gy);
        kiln_tensor_free(ey);
        kiln_tensor_free(xb);
    }
    /* Pooling. */
    kiln_pool2d_params mp = {.kernel = {3, 3}, .stride = {2, 2},
                             .padding = {1, 1}};
    kiln_pool2d_params ap = {.kernel = {2, 3}, .mode = KILN_PAD_SAME,
                             .count_include_pad = 1};
    kiln_node *pools[3] = {kiln_g_max_pool2d(x, &mp),
                           kiln_g_avg_pool2d(x, &ap),
                           kiln_g_global_avg_pool2d(x)};
    kiln_feed fx = {x, xv};
    kiln_tensor *ep[3] = {kiln_max_pool2d(xv, &mp, NULL),
                          kiln_avg_pool2d(xv, &ap),
                          kiln_global_avg_pool2d(xv)};
    const char *pnames[3] = {"max_pool2d", "avg_pool2d", "global_avg_pool2d"};
    for (int i = 0; i < 3; i++) {
        kiln_tensor *gy = run1(g, 1, &fx, pools[i]);
        same(pnames[i], gy, ep[i]);
        kiln_tensor_free(gy);
        kiln_tensor_free(ep[i]);
    }
    kiln_tensor_free(xv);
    kiln_tensor_free(wv);
    kiln_tensor_free(bv);

    /* Softmax, log-softmax and the losses on [4, 5]. */
    int64_t ls[2] = {4, 5};
    kiln_tensor *lv = rand_tensor(D, 2, ls, -2, 2);
    kiln_tensor *tv = rand_tensor(D, 2, ls, 0, 1);
    kiln_tensor *iv = gc_tensor(ctx, KILN_I32, 1, (int64_t[]){4},
                                (double[]){3, 0, 4, 1});
    kiln_node *l = kiln_g_input(g, "logits", D, 2, (int64_t[]){-1, 5});
    kiln_node *t = kiln_g_input(g, "targets", D, 2, (int64_t[]){-1, 5});
    kiln_node *lab = kiln_g_input(g, "labels", KILN_I32, 1, (int64_t[]){-1});
    kiln_feed fl[3] = {{l, lv}, {t, tv}, {lab, iv}};
    kiln_node *nodes[7] = {
        kiln_g_softmax(l, 1), kiln_g_log_softmax(l, 0),
        kiln_g_softmax_cross_entropy(l, lab),
        kiln_g_softmax_cross_entropy(l, t),
        kiln_g_sigmoid_cross_entropy(l, t), kiln_g_mse_loss(l, t, 1),
        kiln_g_mse_loss(l, t, 0)};
    kiln_tensor *eager[7] = {
        kiln_softmax(lv, 1), kiln_log_softmax(lv, 0),
        kiln_softmax_cross_entropy(lv, iv, NULL),
        kiln_softmax_cross_entropy(lv, tv, NULL),
        kiln_sigmoid_cross_entropy(lv, tv, NULL), kiln_mse_loss(lv, tv, 1, NULL),
        kiln_mse_loss(lv, tv, 0, NULL)};
    const char *names[7] = {"softmax", "log_softmax", "softmax_xent (indices)",
                            "softmax_xent (probabilities)", "sigmoid_xent",
                            "mse_loss (half)", "mse_loss"};
    for (int i = 0; i < 7; i++) {
        kiln_tensor *gy = run1(g, 3, fl, nodes[i]);
        same(names[i], gy, eager[i]);
        kiln_tensor_free(gy);
        kiln_tensor_free(eager[i]);
    }
    kiln_tensor_free(lv);
    kiln_tensor_free(tv);
    kiln_tensor_free(iv);

    /* Layer norm, embedding. */
    int64_t ns[3] = {2, 3, 4};
    kiln_tensor *nv = rand_tensor(D, 3, ns, -1, 1);
    kiln_tensor *gv = rand_tensor(D, 2, (int64_t[]){3, 4}, 0.5, 1.5);
    kiln_tensor *bev = rand_tensor(D, 2, (int64_t[]){3, 4}, -0.5, 0.5);
    kiln_node *nx = kiln_g_input(g, "nx", D, 3, ns);
    kiln_node *ln = kiln_g_layer_norm(nx, 2, kiln_g_constant(g, gv),
                                      kiln_g_constant(g, bev), 1e-5);
    kiln_feed fn = {nx, nv};
    kiln_tensor *gy = run1(g, 1, &fn, ln);
    kiln_tensor *ey = kiln_layer_norm(nv, 2, gv, bev, 1e-5, NULL, NULL);
    same("layer_norm", gy, ey);
    kiln_tensor_free(gy);
    kiln_tensor_free(ey);
    kiln_tensor_free(nv);
    kiln_tensor_free(gv);
    kiln_tensor_free(bev);

    kiln_tensor *table = rand_tensor(D, 2, (int64_t[]){6, 4}, -1, 1);
    kiln_tensor *idx = gc_tensor(ctx, KILN_I32, 2, (int64_t[]){2, 3},
                                 (double[]){5, 0, 2, 2, 7, 1});
    kiln_node *ti = kiln_g_input(g, "idx", KILN_I32, 2, (int64_t[]){-1, 3});
    kiln_node *emb = kiln_g_embedding(kiln_g_constant(g, table), ti);
    kiln_feed fe = {ti, idx};
    gy = run1(g, 1, &fe, emb);
    ey = kiln_embedding(table, idx);
    same("embedding (an index out of range included)", gy, ey);
    kiln_tensor_free(gy);
    kiln_tensor_free(ey);
    kiln_tensor_free(table);
    kiln_tensor_free(idx);

    /* LSTM, batch-first, with h0, c0 and biases. */
    int64_t rx[3] = {2, 4, 3}, st[3] = {1, 2, 5};
    kiln_tensor *r[7] = {
        rand_tensor(D, 3, rx, -1, 1), rand_tensor(D, 3, st, -1, 1),
        rand_tensor(D, 3, st, -1, 1),
        rand_tensor(D, 2, (int64_t[]){20, 3}, -0.5, 0.5),
        rand_tensor(D, 2, (int64_t[]){20, 5}, -0.5, 0.5),
        rand_tensor(D, 1, (int64_t[]){20}, -0.5, 0.5),
        rand_tensor(D, 1, (int64_t[]){20}, -0.5, 0.5)};
    kiln_node *rn[7];
    for (int i = 0; i < 7; i++)
        rn[i] = kiln_g_constant(g, r[i]);
    kiln_node *lstm = kiln_g_rnn(rn[0], rn[1], rn[2], rn[3], rn[4], rn[5],
                                 rn[6], KILN_LSTM, 1);
    CHECK(kiln_node_shape(lstm, shape) == 3 && shape[0] == 2 &&
              shape[1] == 4 && shape[2] == 5,
          "batch-first LSTM output is [N, T, H] = [2, 4, 5]");
    gy = run1(g, 0, NULL, lstm);
    kiln_rnn_weights rw = {r[3], r[4], r[5], r[6], NULL};
    kiln_rnn_options ro = {KILN_LSTM, 1, 1};
    ey = kiln_rnn_forward(r[0], r[1], r[2], &rw, &ro, NULL, NULL, NULL);
    same("rnn (LSTM)", gy, ey);
    kiln_tensor_free(gy);
    kiln_tensor_free(ey);
    for (int i = 0; i < 7; i++)
        kiln_tensor_free(r[i]);
    kiln_graph_free(g);
}

/* ---- (2) backward rules against central differences ---------------------- */

typedef struct in_spec {
    int ndim;
    int64_t shape[4];
    double lo, hi;
    int kind;       /* 0 uniform floats, 1 i32 in [lo, hi], 2 distinct,
                       3 rows (last dim) of probabilities from [lo, hi) */
} in_spec;

typedef struct grad_case {
    const char *name;
    int nin, nfeed;             /* differentiated inputs come first */
    in_spec in[8];
    kiln_node *(*build)(kiln_graph *g, kiln_node **x);
    int training;
} grad_case;

static kiln_node *b_conv_padded(kiln_graph *g, kiln_node **x)
{
    (void)g;
    kiln_conv2d_params p = {.padding = {1, 1}};
    return weighted(g, kiln_g_conv2d(x[0], x[1], x[2], &p));
}

static kiln_node *b_conv_grouped(kiln_graph *g, kiln_node **x)
{
    kiln_conv2d_params p = {.stride = {2, 1}, .dilation = {1, 2},
                            .groups = 2, .mode = KILN_PAD_SAME};
    return weighted(g, kiln_g_conv2d(x[0], x[1], NULL, &p));
}

static kiln_node *b_max_pool(kiln_graph *g, kiln_node **x)
{
    kiln_pool2d_params overlap = {.kernel = {3, 3}, .stride = {2, 2},
                                  .padding = {1, 1}};
    kiln_pool2d_params plain = {.kernel = {2, 2}};
    return kiln_g_add(weighted(g, kiln_g_max_pool2d(x[0], &overlap)),
                      weighted(g, kiln_g_max_pool2d(x[0], &plain)));
}

static kiln_node *b_avg_pool(kiln_graph *g, kiln_node **x)
{
    kiln_pool2d_params excl = {.kernel = {3, 3}, .stride = {2, 2},
                               .padding = {1, 1}};
    kiln_pool2d_params same_pad = {.kernel = {2, 3}, .mode = KILN_PAD_SAME,
                                   .count_include_pad = 1};
    kiln_node *a = kiln_g_add(weighted(g, kiln_g_avg_pool2d(x[0], &excl)),
                              weighted(g, kiln_g_avg_pool2d(x[0], &same_pad)));
    return kiln_g_add(a, weighted(g, kiln_g_global_avg_pool2d(x[0])));
}

static kiln_node *b_softmax(kiln_graph *g, kiln_node **x)
{
    return kiln_g_add(weighted(g, kiln_g_softmax(x[0], 1)),
                      weighted(g, kiln_g_log_softmax(x[0], -1)));
}

/* Losses are scaled so the incoming gradient is not 1. */
static kiln_node *b_xent_index(kiln_graph *g, kiln_node **x)
{
    (void)g;
    return kiln_g_scale(kiln_g_softmax_cross_entropy(x[0], x[1]), 2.5);
}

static kiln_node *b_xent_probs(kiln_graph *g, kiln_node **x)
{
    (void)g;
    return kiln_g_scale(kiln_g_softmax_cross_entropy(x[0], x[1]), -1.5);
}

static kiln_node *b_sigmoid_xent(kiln_graph *g, kiln_node **x)
{
    (void)g;
    return kiln_g_scale(kiln_g_sigmoid_cross_entropy(x[0], x[1]), 1.5);
}

static kiln_node *b_mse(kiln_graph *g, kiln_node **x)
{
    (void)g;
    return kiln_g_add(kiln_g_scale(kiln_g_mse_loss(x[0], x[1], 1), 3.0),
                      kiln_g_mse_loss(x[1], x[0], 0));
}

static kiln_node *b_dropout_eval(kiln_graph *g, kiln_node **x)
{
    return weighted(g, kiln_g_dropout(x[0], 0.3, 11));
}

/* Running statistics as variables (shape [2]) for x [3, 2, 2, 2]. */
static kiln_node *b_batch_norm(kiln_graph *g, kiln_node **x)
{
    kiln_tensor *rm = gc_tensor(ctx, F, 1, (int64_t[]){2},
                                (double[]){0.1, -0.2});
    kiln_tensor *rv = gc_tensor(ctx, F, 1, (int64_t[]){2},
                                (double[]){0.8, 1.3});
    kiln_node *m = kiln_g_variable(g, "running_mean", rm);
    kiln_node *v = kiln_g_variable(g, "running_var", rv);
    kiln_tensor_free(rm);
    kiln_tensor_free(rv);
    return weighted(g, kiln_g_batch_norm(x[0], x[1], x[2], m, v, 0.1, 1e-5));
}

static kiln_node *b_batch_norm_2d(kiln_graph *g, kiln_node **x)
{
    return weighted(g, kiln_g_batch_norm(x[0], x[1], x[2], NULL, NULL, 0.1,
                                         1e-5));
}

static kiln_node *b_layer_norm(kiln_graph *g, kiln_node **x)
{
    return kiln_g_add(weighted(g, kiln_g_layer_norm(x[0], 2, x[1], x[2],
                                                    1e-5)),
                      weighted(g, kiln_g_layer_norm(x[0], 1, NULL, NULL,
                                                    1e-3)));
}

static kiln_node *b_embedding(kiln_graph *g, kiln_node **x)
{
    return weighted(g, kiln_g_embedding(x[0], x[1]));
}

/* x, h0, c0, w_ih, w_hh, b_ih, b_hh */
static kiln_node *b_lstm(kiln_graph *g, kiln_node **x)
{
    return weighted(g, kiln_g_rnn(x[0], x[1], x[2], x[3], x[4], x[5], x[6],
                                  KILN_LSTM, 1));
}

/* x, h0, w_ih, w_hh, b_ih, b_hh */
static kiln_node *b_gru(kiln_graph *g, kiln_node **x)
{
    return weighted(g, kiln_g_rnn(x[0], x[1], NULL, x[2], x[3], x[4], x[5],
                                  KILN_GRU, 0));
}

/* x, w_ih, w_hh: no biases, zero initial state. */
static kiln_node *b_rnn_tanh(kiln_graph *g, kiln_node **x)
{
    return weighted(g, kiln_g_rnn(x[0], NULL, NULL, x[1], x[2], NULL, NULL,
                                  KILN_RNN_TANH, 0));
}

/* Filled in order of the inputs' specs (same data for both fusion
 * settings: drawn once per case). */
static double **case_data(const grad_case *c)
{
    double **data = calloc((size_t)c->nfeed, sizeof *data);
    for (int i = 0; i < c->nfeed; i++) {
        const in_spec *s = &c->in[i];
        int64_t n = numel_of(s->ndim, s->shape);
        if (s->kind == 2) {
            data[i] = distinct(n);
        } else {
            data[i] = uniform(n, s->lo, s->hi);
            if (s->kind == 1)
                for (int64_t e = 0; e < n; e++)
                    data[i][e] = (double)harness_int(&rng, (int)s->lo,
                                                     (int)s->hi);
            /* The fused loss's gradient assumes each row sums to 1. */
            int64_t len = s->shape[s->ndim - 1];
            for (int64_t r = 0; s->kind == 3 && r < n / len; r++) {
                double sum = 0;
                for (int64_t e = 0; e < len; e++)
                    sum += data[i][r * len + e];
                for (int64_t e = 0; e < len; e++)
                    data[i][r * len + e] /= sum;
            }
        }
    }
    return data;
}

#define IN(nd, ...) nd, {__VA_ARGS__}

static const grad_case grad_cases[] = {
    {"conv2d (padded, bias)", 3, 3,
     {{IN(4, 1, 2, 5, 5), -1, 1, 0}, {IN(4, 3, 2, 3, 3), -0.5, 0.5, 0},
      {IN(1, 3), -0.5, 0.5, 0}},
     b_conv_padded, 0},
    {"conv2d (groups 2, stride 2x1, dilation 1x2, SAME)", 2, 2,
     {{IN(4, 2, 4, 5, 5), -1, 1, 0}, {IN(4, 4, 2, 3, 2), -0.5, 0.5, 0}},
     b_conv_grouped, 0},
    {"max_pool2d", 1, 1, {{IN(4, 1, 2, 5, 5), 0, 0, 2}}, b_max_pool, 0},
    {"avg_pool2d, global_avg_pool2d", 1, 1,
     {{IN(4, 2, 2, 5, 4), -1, 1, 0}}, b_avg_pool, 0},
    {"softmax, log_softmax", 1, 1, {{IN(3, 2, 3, 4), -2, 2, 0}}, b_softmax,
     0},
    {"softmax_cross_entropy (indices)", 1, 2,
     {{IN(2, 3, 4), -2, 2, 0}, {IN(1, 3), 0, 3, 1}}, b_xent_index, 0},
    {"softmax_cross_entropy (probabilities)", 2, 2,
     {{IN(2, 3, 4), -2, 2, 0}, {IN(2, 3, 4), 0.1, 1, 3}}, b_xent_probs, 0},
    {"sigmoid_cross_entropy", 2, 2,
     {{IN(2, 2, 3), -3, 3, 0}, {IN(2, 2, 3), 0, 1, 0}}, b_sigmoid_xent, 0},
    {"mse_loss", 2, 2, {{IN(2, 2, 3), -1, 1, 0}, {IN(2, 2, 3), -1, 1, 0}},
     b_mse, 0},
    {"dropout (evaluation)", 1, 1, {{IN(2, 2, 3), -1, 1, 0}},
     b_dropout_eval, 0},
    {"batch_norm (training)", 3, 3,
     {{IN(4, 3, 2, 2, 2), -1, 1, 0}, {IN(1, 2), 0.5, 1.5, 0},
      {IN(1, 2), -0.5, 0.5, 0}},
     b_batch_norm, 1},
    {"batch_norm (evaluation)", 3, 3,
     {{IN(4, 3, 2, 2, 2), -1, 1, 0}, {IN(1, 2), 0.5, 1.5, 0},
      {IN(1, 2), -0.5, 0.5, 0}},
     b_batch_norm, 0},
    {"batch_norm (2-D, no running statistics)", 3, 3,
     {{IN(2, 4, 3), -1, 1, 0}, {IN(1, 3), 0.5, 1.5, 0},
      {IN(1, 3), -0.5, 0.5, 0}},
     b_batch_norm_2d, 1},
    {"layer_norm", 3, 3,
     {{IN(3, 2, 3, 4), -1, 1, 0}, {IN(2, 3, 4), 0.5, 1.5, 0},
      {IN(2, 3, 4), -0.5, 0.5, 0}},
     b_layer_norm, 0},
    {"embedding (repeated indices)", 1, 2,
     {{IN(2, 5, 3), -1, 1, 0}, {IN(2, 2, 3), 0, 4, 1}}, b_embedding, 0},
    {"LSTM (batch-first, h0, c0, biases)", 7, 7,
     {{IN(3, 2, 3, 3), -1, 1, 0}, {IN(3, 1, 2, 2), -1, 1, 0},
      {IN(3, 1, 2, 2), -1, 1, 0}, {IN(2, 8, 3), -0.5, 0.5, 0},
      {IN(2, 8, 2), -0.5, 0.5, 0}, {IN(1, 8), -0.5, 0.5, 0},
      {IN(1, 8), -0.5, 0.5, 0}},
     b_lstm, 0},
    {"GRU (time-major, h0, biases)", 6, 6,
     {{IN(3, 3, 2, 3), -1, 1, 0}, {IN(3, 1, 2, 2), -1, 1, 0},
      {IN(2, 6, 3), -0.5, 0.5, 0}, {IN(2, 6, 2), -0.5, 0.5, 0},
      {IN(1, 6), -0.5, 0.5, 0}, {IN(1, 6), -0.5, 0.5, 0}},
     b_gru, 0},
    {"RNN tanh (no biases, zero state)", 3, 3,
     {{IN(3, 3, 2, 3), -1, 1, 0}, {IN(2, 2, 3), -0.8, 0.8, 0},
      {IN(2, 2, 2), -0.8, 0.8, 0}},
     b_rnn_tanh, 0},
};

/* One case's gradient check, fusion off then on; returns the worst. */
static double check_case(const grad_case *c, double h, double tol)
{
    double **data = case_data(c);
    double worst = 0;
    for (int fused = 0; fused <= 1; fused++) {
        kiln_graph *g = kiln_graph_new(ctx);
        kiln_graph_set_fusion(g, fused);
        kiln_graph_set_training(g, c->training);
        kiln_node *x[8];
        for (int i = 0; i < c->nfeed; i++) {
            char name[16];
            snprintf(name, sizeof name, "x%d", i);
            x[i] = kiln_g_input(g, name, c->in[i].kind == 1 ? KILN_I32 : F,
                                c->in[i].ndim, c->in[i].shape);
        }
        kiln_node *loss = c->build(g, x);
        double err = loss ? graph_gradcheck(ctx, g, loss, c->nin, c->nfeed,
                                            x, data, h)
                          : INFINITY;
        CHECK(err < tol, "%s (fusion %s): autodiff vs central differences "
              "%.3g (tolerance %g): %s", c->name, fused ? "on" : "off", err,
              tol, kiln_error_message(ctx));
        kiln_clear_error(ctx);
        if (err > worst)
            worst = err;
        kiln_graph_free(g);
    }
    for (int i = 0; i < c->nfeed; i++)
        free(data[i]);
    free(data);
    return worst;
}

static void test_gradients(void)
{
    double h = F == KILN_F64 ? 1e-6 : 1e-2;
    double tol = F == KILN_F64 ? 1e-6 : 3e-2;
    for (size_t c = 0; c < sizeof grad_cases / sizeof grad_cases[0]; c++) {
        double t0 = now();
        double worst = check_case(&grad_cases[c], h, tol);
        printf("  %-50s worst %.2e  %.2f s\n", grad_cases[c].name, worst,
               now() - t0);
    }
}

/* ---- (3) dropout and batch norm state ------------------------------------ */

static void test_dropout(void)
{
    const double rate = 0.25;
    const uint64_t seed = 7;
    int64_t xs[2] = {4, 256}, n = 4 * 256;
    kiln_graph *g = kiln_graph_new(ctx);
    kiln_node *x = kiln_g_input(g, "x", F, 2, xs);
    kiln_node *y = kiln_g_dropout(x, rate, seed);
    kiln_node *loss = weighted(g, y), *dx = NULL;
    CHECK(kiln_g_gradients(loss, 1, &x, &dx) == KILN_OK, "dropout gradient: %s",
          kiln_error_message(ctx));
    double *xd = uniform(n, 0.5, 1.5);
    kiln_tensor *xv = gc_tensor(ctx, F, 2, xs, xd);
    kiln_feed f = {x, xv};
    uint64_t runs = 0;

    /* Evaluation: the identity. */
    kiln_tensor *ye = run1(g, 1, &f, y);
    runs++;
    same("dropout in evaluation mode is the identity", ye, xv);
    kiln_tensor_free(ye);

    /* Training: the eager op's mask at offset run << 32, dx = dy * mask. */
    kiln_graph_set_training(g, 1);
    double *masks[2] = {NULL, NULL};
    for (int r = 0; r < 2; r++) {
        kiln_node *fetch[2] = {y, dx};
        kiln_tensor *out[2] = {NULL, NULL};
        CHECK(kiln_graph_run(g, 1, &f, 2, fetch, out) == KILN_OK,
              "training run %d: %s", r + 1, kiln_error_message(ctx));
        kiln_tensor *mask = NULL;
        kiln_tensor *ey = kiln_dropout(xv, rate, 1, seed, runs << 32, &mask);
        runs++;
        same("dropout in training mode = kiln_dropout at offset run << 32",
             out[0], ey);
        int64_t count = 0;
        double *yd = out[0] ? gc_read(out[0], &count) : NULL;
        double *gd = out[1] ? gc_read(out[1], NULL) : NULL;
        masks[r] = mask ? gc_read(mask, NULL) : NULL;
        int64_t kept = 0, bad_scale = 0, bad_grad = 0;
        for (int64_t i = 0; yd && gd && masks[r] && i < count; i++) {
            double m = masks[r][i], scale = 1 / (1 - rate);
            if (m != 0) {
                kept++;
                bad_scale += fabs(m - scale) > 1e-6 ||
                             fabs(yd[i] - xd[i] * scale) > 1e-5 * scale;
            }
            bad_scale += m != 0 && yd[i] == 0;
            bad_grad += fabs(gd[i] - weight_of(i) * m) > 1e-6 * (1 + gd[i]);
        }
        CHECK(yd && gd && count == n && bad_scale == 0,
              "run %d: kept elements are x / (1 - rate) (%lld wrong)", r + 1,
              (long long)bad_scale);
        CHECK(bad_grad == 0, "run %d: dx = dy * mask (%lld wrong)", r + 1,
              (long long)bad_grad);
        double frac = (double)kept / (double)n;
        CHECK(frac > 0.68 && frac < 0.82, "run %d: kept fraction %.3f for "
              "rate %.2f", r + 1, frac, rate);
        free(yd);
        free(gd);
        kiln_tensor_free(mask);
        kiln_tensor_free(ey);
        kiln_tensor_free(out[0]);
        kiln_tensor_free(out[1]);
    }
    int64_t differ = 0;
    for (int64_t i = 0; masks[0] && masks[1] && i < n; i++)
        differ += masks[0][i] != masks[1][i];
    CHECK(differ > n / 8, "consecutive training runs draw different masks "
          "(%lld of %lld elements differ)", (long long)differ, (long long)n);
    /* Back in evaluation mode, the gradient is dy. */
    kiln_graph_set_training(g, 0);
    kiln_tensor *ge = run1(g, 1, &f, dx);
    double *gd = ge ? gc_read(ge, NULL) : NULL;
    int64_t bad = 0;
    for (int64_t i = 0; gd && i < n; i++)
        bad += gd[i] != weight_of(i);
    CHECK(gd && bad == 0, "evaluation-mode dropout passes dy through");
    free(gd);
    kiln_tensor_free(ge);
    free(masks[0]);
    free(masks[1]);
    free(xd);
    kiln_tensor_free(xv);
    kiln_graph_free(g);
}

/* Recorded runs: after kiln__graph_prepare_replay, a captured training
 * run reads its dropout offset from the graph's device counter, so each
 * replay draws run g->runs's mask (what fit's recorded steps rely on); a
 * capture without it bakes the captured run's offset in, and its replays
 * repeat that mask even after eager runs rewrote the counter. */
static void test_dropout_recorded(void)
{
    const double rate = 0.4;
    const uint64_t seed = 9;
    int64_t xs[2] = {8, 64};
    kiln_graph *g = kiln_graph_new(ctx);
    kiln_node *x = kiln_g_input(g, "x", F, 2, xs);
    kiln_node *y = kiln_g_dropout(x, rate, seed);
    double *xd = uniform(8 * 64, 0.5, 1.5);
    kiln_tensor *xv = gc_tensor(ctx, F, 2, xs, xd);
    kiln_feed f = {x, xv};
    kiln_graph_set_training(g, 1);
    for (int prepared = 1; prepared >= 0; prepared--) {
        kiln_tensor_free(run1(g, 1, &f, y)); /* an eager run first */
        /* Unprepared: rewound to that run, whose offset the counter holds;
         * the capture still bakes it in. */
        uint64_t at = prepared ? 40 : kiln_graph_runs(g) - 1;
        kiln_graph_set_runs(g, at);
        if (prepared)
            CHECK(kiln__graph_prepare_replay(g) == KILN_OK, "prepare: %s",
                  kiln_error_message(ctx));
        kiln_tensor *out = NULL;
        CHECK(kiln_recording_begin(ctx) == KILN_OK, "capture begins");
        kiln_graph_run(g, 1, &f, 1, &y, &out);
        kiln_recording *rec = kiln_recording_end(ctx);
        CHECK(rec && out, "capture (prepared %d): %s", prepared,
              kiln_error_message(ctx));
        for (uint64_t r = at; rec && out && r < at + 3; r++) {
            kiln_tensor *eager = run1(g, 1, &f, y); /* rewrites the counter */
            kiln_tensor_free(eager);
            kiln_graph_set_runs(g, r);
            if (prepared)
                kiln__graph_prepare_replay(g);
            kiln_recording_replay(rec);
            kiln_tensor *want = kiln_dropout(xv, rate, 1, seed,
                                              (prepared ? r : at) << 32,
                                              NULL);
            same(prepared ? "a prepared replay draws run r's mask"
                          : "an unprepared capture repeats its mask",
                 out, want);
            kiln_tensor_free(want);
        }
        kiln_recording_free(rec);
        kiln_tensor_free(out);
    }
    free(xd);
    kiln_tensor_free(xv);
    kiln_graph_free(g);
}

static void test_batch_norm_state(void)
{
    const double momentum = 0.1, eps = 1e-5;
    int64_t xs[4] = {4, 3, 2, 2};
    kiln_tensor *xv = rand_tensor(F, 4, xs, -2, 3);
    kiln_tensor *gv = rand_tensor(F, 1, (int64_t[]){3}, 0.5, 1.5);
    kiln_tensor *bv = rand_tensor(F, 1, (int64_t[]){3}, -0.5, 0.5);
    kiln_tensor *rm0 = rand_tensor(F, 1, (int64_t[]){3}, -0.5, 0.5);
    kiln_tensor *rv0 = rand_tensor(F, 1, (int64_t[]){3}, 0.5, 1.5);
    kiln_graph *g = kiln_graph_new(ctx);
    kiln_node *x = kiln_g_input(g, "x", F, 4, (int64_t[]){-1, 3, 2, 2});
    kiln_node *rm = kiln_g_variable(g, "running_mean", rm0);
    kiln_node *rv = kiln_g_variable(g, "running_var", rv0);
    kiln_node *y = kiln_g_batch_norm(x, kiln_g_constant(g, gv),
                                     kiln_g_constant(g, bv), rm, rv, momentum,
                                     eps);
    kiln_tensor *erm = kiln_contiguous_copy(rm0);
    kiln_tensor *erv = kiln_contiguous_copy(rv0);
    kiln_feed f = {x, xv};

    /* Two training runs: batch statistics, running ones updated each. */
    kiln_graph_set_training(g, 1);
    for (int r = 0; r < 2; r++) {
        kiln_tensor *gy = run1(g, 1, &f, y);
        kiln_tensor *ey = kiln_batch_norm(xv, gv, bv, erm, erv, 1, momentum,
                                          eps, NULL, NULL);
        same("batch_norm training output", gy, ey);
        same("running_mean after a training run", kiln_g_variable_tensor(rm),
             erm);
        same("running_var after a training run", kiln_g_variable_tensor(rv),
             erv);
        kiln_tensor_free(gy);
        kiln_tensor_free(ey);
    }
    /* The running mean really moved: (1-m)^2 rm0 + (1 - (1-m)^2) mean. */
    int64_t count;
    double *x_h = gc_read(xv, &count), *rm_h = gc_read(erm, NULL);
    double *rm0_h = gc_read(rm0, NULL);
    double worst = 0;
    for (int c = 0; c < 3; c++) {
        double mean = 0;
        for (int n = 0; n < 4; n++)
            for (int k = 0; k < 4; k++)
                mean += x_h[(n * 3 + c) * 4 + k] / 16;
        double keep = (1 - momentum) * (1 - momentum);
        worst = fmax(worst, fabs(rm_h[c] - (keep * rm0_h[c] +
                                            (1 - keep) * mean)));
    }
    CHECK(worst < (F == KILN_F64 ? 1e-12 : 1e-5),
          "running_mean follows r = (1 - m) r + m mean: off by %.3g", worst);
    free(x_h);
    free(rm_h);
    free(rm0_h);

    /* Evaluation: running statistics, which stay as they are. */
    kiln_graph_set_training(g, 0);
    kiln_tensor *gy = run1(g, 1, &f, y);
    kiln_tensor *ey = kiln_batch_norm(xv, gv, bv, erm, erv, 0, momentum, eps,
                                      NULL, NULL);
    same("batch_norm evaluation output", gy, ey);
    same("running_mean unchanged by evaluation", kiln_g_variable_tensor(rm),
         erm);
    kiln_tensor_free(gy);
    kiln_tensor_free(ey);

    /* Without running statistics evaluation mode cannot run. */
    kiln_node *plain = kiln_g_batch_norm(x, NULL, NULL, NULL, NULL, momentum,
                                         eps);
    kiln_tensor *out = (kiln_tensor *)&out;
    kiln_status st = kiln_graph_run(g, 1, &f, 1, &plain, &out);
    CHECK(st == KILN_ERROR_INVALID_ARGUMENT && !out &&
              strstr(kiln_error_message(ctx), "evaluation mode"),
          "batch norm without running statistics refuses evaluation mode: %s",
          kiln_error_message(ctx));
    kiln_clear_error(ctx);

    kiln_tensor *all[7] = {xv, gv, bv, rm0, rv0, erm, erv};
    for (int i = 0; i < 7; i++)
        kiln_tensor_free(all[i]);
    kiln_graph_free(g);
}

/* ---- (4) build-time errors ---------------------------------------------- */

/* @n is NULL and the context holds @want naming @call; then cleared. */
static void refused(kiln_node *n, kiln_status want, const char *call,
                    const char *what)
{
    const char *msg = kiln_error_message(ctx);
    CHECK(!n && kiln_status_of(ctx) == want && strstr(msg, call),
          "%s is refused with %s naming %s: got %s, \"%s\"", what,
          kiln_status_string(want), call,
          kiln_status_string(kiln_status_of(ctx)), msg);
    kiln_clear_error(ctx);
}

static void test_errors(void)
{
    kiln_graph *g = kiln_graph_new(ctx);
    kiln_node *x = kiln_g_input(g, "x", F, 4, (int64_t[]){-1, 3, 8, 8});
    kiln_node *x3 = kiln_g_input(g, "x3", F, 3, (int64_t[]){3, 8, 8});
    kiln_node *w = kiln_g_input(g, "w", F, 4, (int64_t[]){4, 3, 3, 3});
    kiln_node *w_bad = kiln_g_input(g, "w_bad", F, 4, (int64_t[]){4, 2, 3, 3});
    kiln_node *b5 = kiln_g_input(g, "b5", F, 1, (int64_t[]){5});
    kiln_node *wi = kiln_g_input(g, "wi", KILN_I32, 4, (int64_t[]){4, 3, 3, 3});
    const char *c = "kiln_g_conv2d";
    refused(kiln_g_conv2d(x3, w, NULL, NULL), KILN_ERROR_SHAPE, c,
            "a 3-D convolution input");
    refused(kiln_g_conv2d(x, w_bad, NULL, NULL), KILN_ERROR_SHAPE, c,
            "3 input channels for weights of 2 channels");
    refused(kiln_g_conv2d(x, w_bad, NULL,
                          &(kiln_conv2d_params){.groups = 2}),
            KILN_ERROR_SHAPE, c, "3 channels in 2 groups");
    refused(kiln_g_conv2d(x, w, b5, NULL), KILN_ERROR_SHAPE, c,
            "a bias of 5 for 4 output channels");
    refused(kiln_g_conv2d(x, wi, NULL, NULL), KILN_ERROR_DTYPE, c,
            "i32 weights");
    refused(kiln_g_conv2d(x, kiln_g_input(g, "big", F, 4,
                                          (int64_t[]){4, 3, 9, 3}),
                          NULL, NULL),
            KILN_ERROR_SHAPE, c, "a kernel taller than the input");
    refused(kiln_g_conv2d(NULL, w, NULL, NULL), KILN_ERROR_INVALID_ARGUMENT,
            c, "a NULL input with no earlier error");
    /* Free dims flow through. */
    int64_t shape[6];
    kiln_node *y = kiln_g_conv2d(x, w, NULL,
                                 &(kiln_conv2d_params){.stride = {2, 2}});
    CHECK(kiln_node_shape(y, shape) == 4 && shape[0] == -1 && shape[1] == 4 &&
              shape[2] == 3 && shape[3] == 3,
          "conv2d of [-1,3,8,8] by 3x3, stride 2: [-1,4,3,3]");
    kiln_pool2d_params p2 = {.kernel = {2, 2}};
    refused(kiln_g_max_pool2d(x3, &p2), KILN_ERROR_SHAPE, "kiln_g_max_pool2d",
            "pooling a 3-D node");
    refused(kiln_g_avg_pool2d(x, &(kiln_pool2d_params){.kernel = {9, 2}}),
            KILN_ERROR_SHAPE, "kiln_g_avg_pool2d", "a 9-row window on 8 rows");
    refused(kiln_g_max_pool2d(x, NULL), KILN_ERROR_INVALID_ARGUMENT,
            "kiln_g_max_pool2d", "NULL pooling parameters");
    refused(kiln_g_global_avg_pool2d(x3), KILN_ERROR_SHAPE,
            "kiln_g_global_avg_pool2d", "global pooling of a 3-D node");
    refused(kiln_g_softmax(x, 4), KILN_ERROR_INVALID_ARGUMENT,
            "kiln_g_softmax", "axis 4 of a 4-D node");
    kiln_node *logits = kiln_g_input(g, "logits", F, 2, (int64_t[]){2, 3});
    kiln_node *lab3 = kiln_g_input(g, "lab3", KILN_I32, 1, (int64_t[]){3});
    kiln_node *t32 = kiln_g_input(g, "t32", F, 2, (int64_t[]){3, 2});
    refused(kiln_g_softmax_cross_entropy(logits, lab3), KILN_ERROR_SHAPE,
            "kiln_g_softmax_cross_entropy", "3 labels for 2 rows");
    refused(kiln_g_softmax_cross_entropy(x, lab3), KILN_ERROR_SHAPE,
            "kiln_g_softmax_cross_entropy", "4-D logits");
    refused(kiln_g_mse_loss(logits, t32, 0), KILN_ERROR_SHAPE,
            "kiln_g_mse_loss", "[2,3] against [3,2]");
    refused(kiln_g_sigmoid_cross_entropy(logits, lab3), KILN_ERROR_DTYPE,
            "kiln_g_sigmoid_cross_entropy", "i32 targets");
    refused(kiln_g_dropout(x, 1.5, 1), KILN_ERROR_INVALID_ARGUMENT,
            "kiln_g_dropout", "rate 1.5");
    kiln_node *c3 = kiln_g_input(g, "c3", F, 1, (int64_t[]){3});
    refused(kiln_g_batch_norm(x, b5, NULL, NULL, NULL, 0.1, 1e-5),
            KILN_ERROR_SHAPE, "kiln_g_batch_norm", "gamma [5] for 3 channels");
    refused(kiln_g_batch_norm(x, c3, c3, c3, NULL, 0.1, 1e-5),
            KILN_ERROR_INVALID_ARGUMENT, "kiln_g_batch_norm",
            "a running mean that is not a variable");
    refused(kiln_g_layer_norm(x, 5, NULL, NULL, 1e-5),
            KILN_ERROR_INVALID_ARGUMENT, "kiln_g_layer_norm",
            "normalising 5 dims of a 4-D node");
    refused(kiln_g_layer_norm(x, 2, c3, NULL, 1e-5), KILN_ERROR_SHAPE,
            "kiln_g_layer_norm", "gamma [3] for trailing dims [8, 8]");
    refused(kiln_g_embedding(logits, t32), KILN_ERROR_DTYPE,
            "kiln_g_embedding", "float indices");
    refused(kiln_g_embedding(x, lab3), KILN_ERROR_SHAPE, "kiln_g_embedding",
            "a 4-D table");
    kiln_node *seq = kiln_g_input(g, "seq", F, 3, (int64_t[]){5, -1, 3});
    kiln_node *w_ih = kiln_g_input(g, "w_ih", F, 2, (int64_t[]){8, 4});
    kiln_node *w_hh = kiln_g_input(g, "w_hh", F, 2, (int64_t[]){8, 2});
    refused(kiln_g_rnn(seq, NULL, NULL, w_ih, w_hh, NULL, NULL, KILN_LSTM, 0),
            KILN_ERROR_SHAPE, "kiln_g_rnn", "w_ih [8,4] for 3 input features");
    refused(kiln_g_rnn(seq, NULL, b5, w_hh, w_hh, NULL, NULL, KILN_GRU, 0),
            KILN_ERROR_INVALID_ARGUMENT, "kiln_g_rnn", "c0 for a GRU");
    refused(kiln_g_rnn(x, NULL, NULL, w_hh, w_hh, NULL, NULL, KILN_LSTM, 0),
            KILN_ERROR_SHAPE, "kiln_g_rnn", "a 4-D sequence");
    kiln_node *ok_ih = kiln_g_input(g, "ok_ih", F, 2, (int64_t[]){8, 3});
    kiln_node *r = kiln_g_rnn(seq, NULL, NULL, ok_ih, w_hh, NULL, NULL,
                              KILN_LSTM, 0);
    CHECK(kiln_node_shape(r, shape) == 3 && shape[0] == 5 && shape[1] == -1 &&
              shape[2] == 2,
          "time-major LSTM of [5,-1,3] with H = 2 is [5,-1,2]");
    kiln_graph_free(g);
}

/* ---- (5) a tiny LeNet, end to end ---------------------------------------- */

/* w1, b1, w2, b2, w3, b3, x, labels */
static kiln_node *b_lenet(kiln_graph *g, kiln_node **in)
{
    (void)g;
    kiln_pool2d_params pool = {.kernel = {2, 2}};
    kiln_node *h = kiln_g_conv2d(in[6], in[0], in[1], NULL);  /* [2,2,10,10] */
    h = kiln_g_max_pool2d(kiln_g_relu(h), &pool);             /* [2,2,5,5]   */
    h = kiln_g_conv2d(h, in[2], in[3], NULL);                 /* [2,3,4,4]   */
    h = kiln_g_max_pool2d(kiln_g_relu(h), &pool);             /* [2,3,2,2]   */
    h = kiln_g_flatten(h, 1, 3);                              /* [2,12]      */
    kiln_node *logits = kiln_g_add(kiln_g_matmul(h, in[4]), in[5]);
    return kiln_g_softmax_cross_entropy(logits, in[7]);
}

static void test_lenet(void)
{
    static const grad_case lenet = {
        "LeNet: conv-relu-pool-conv-relu-pool-dense-xent", 6, 8,
        {{IN(4, 2, 1, 3, 3), -0.6, 0.6, 0}, {IN(1, 2), -0.2, 0.2, 0},
         {IN(4, 3, 2, 2, 2), -0.6, 0.6, 0}, {IN(1, 3), -0.2, 0.2, 0},
         {IN(2, 12, 4), -0.6, 0.6, 0}, {IN(1, 4), -0.2, 0.2, 0},
         {IN(4, 2, 1, 12, 12), 0, 1, 0}, {IN(1, 2), 0, 3, 1}},
        b_lenet, 0};
    double t0 = now();
    /* f32: a smaller step keeps ReLU kinks and max choices in place. */
    double worst = check_case(&lenet, F == KILN_F64 ? 1e-6 : 1e-3,
                              F == KILN_F64 ? 1e-6 : 3e-2);
    printf("  %-50s worst %.2e  %.2f s\n", lenet.name, worst, now() - t0);
}

int main(int argc, char **argv)
{
    ctx = harness_open(harness_device(argc, argv), 64);
    harness_seed(argc, argv, &rng);
    F = graph_check_dtype(ctx);
    printf("gradient checks in %s\n", kiln_dtype_name(F));
    double t0 = now();
    test_forward_matches_eager();
    test_gradients();
    test_dropout();
    test_dropout_recorded();
    test_batch_norm_state();
    test_errors();
    test_lenet();
    printf("  total %.2f s\n", now() - t0);
    return harness_close(ctx);
}
