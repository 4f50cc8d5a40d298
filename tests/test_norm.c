/*
 * test_norm.c - batch norm, layer norm, local response normalisation and
 * embedding on the device under test against the C reference (f32, f64,
 * odd sizes, batch 1, non-contiguous views), the course's worked values
 * against host formulas, argument errors, and f64 gradient checks on the
 * reference.
 *
 * usage: test_norm --device SPEC
 */
#include "norm_testutil.h"

static kiln_context *dev, *ref;

static const kiln_dtype fdtypes[] = {KILN_F32, KILN_F64};

/* Normalised outputs are O(1); f32 statistics accumulate rounding over
 * the M elements they average, f64 over far fewer bits. */
static tolerance norm_tol(kiln_dtype t)
{
    return t == KILN_F32 ? (tolerance){4e-6, 4e-6, 0}
                         : (tolerance){1e-13, 1e-13, 0};
}

/* ---- batch norm --------------------------------------------------------- */

typedef struct bn_arg {
    int training, which; /* which: 0 y, 1 running_mean, 2 running_var,
                            3 save_mean, 4 save_invstd, 5 dx, 6 dgamma,
                            7 dbeta */
    double momentum, eps;
    int affine;
} bn_arg;

static kiln_tensor *pick(kiln_tensor **outs, int n, int which)
{
    kiln_tensor *keep = outs[which];
    for (int i = 0; i < n; i++)
        if (i != which)
            kiln_tensor_free(outs[i]);
    return keep;
}

/* in: x, gamma, beta, running_mean, running_var, dy. */
static kiln_tensor *call_bn(kiln_tensor **in, const void *arg)
{
    const bn_arg *a = arg;
    /* Running stats are updated in place: work on copies. */
    kiln_tensor *rm = kiln_contiguous_copy(in[3]);
    kiln_tensor *rv = kiln_contiguous_copy(in[4]);
    kiln_tensor *outs[8] = {0};
    kiln_tensor *g = a->affine ? in[1] : NULL, *b = a->affine ? in[2] : NULL;
    outs[0] = kiln_batch_norm(in[0], g, b, rm, rv, a->training, a->momentum,
                              a->eps, &outs[3], &outs[4]);
    outs[1] = rm;
    outs[2] = rv;
    if (a->which >= 5)
        kiln_batch_norm_backward(in[5], in[0], g, outs[3], outs[4], &outs[5],
                                 &outs[6], &outs[7]);
    return pick(outs, 8, a->which);
}

static void test_batch_norm(void)
{
    static const struct { int nd; int64_t s[4]; } shapes[] = {
        {2, {5, 3}}, {2, {64, 7}}, {4, {2, 3, 5, 7}}, {4, {1, 4, 3, 3}},
        {3, {3, 2, 9}},
    };
    for (size_t ti = 0; ti < 2; ti++) {
        kiln_dtype t = fdtypes[ti];
        op_stats st = {0};
        for (size_t c = 0; c < sizeof shapes / sizeof *shapes; c++) {
            int64_t C = shapes[c].s[1], cs[1] = {C};
            op_input in[6] = {
                input(t, shapes[c].nd, shapes[c].s, (enum view_kind)(c % 3),
                      -3, 5),
                input(t, 1, cs, VIEW_PLAIN, 0.5, 2),
                input(t, 1, cs, VIEW_STRIDED, -1, 1),
                input(t, 1, cs, VIEW_PLAIN, -1, 1),
                input(t, 1, cs, VIEW_PLAIN, 0.5, 2),
                input(t, shapes[c].nd, shapes[c].s, VIEW_PLAIN, -1, 1)};
            for (int which = 0; which < 8; which++)
                for (int training = 0; training < 2; training++) {
                    if (!training && which >= 5)
                        continue; /* the backward is of training mode */
                    bn_arg a = {training, which, 0.1, c % 2 ? 1e-5 : 1e-4,
                                (int)(c + which) % 4 != 3};
                    char name[96];
                    snprintf(name, sizeof name, "batch_norm %s case %zu "
                             "output %d training %d", kiln_dtype_name(t), c,
                             which, training);
                    check_op(&st, dev, ref, name, 6, in, call_bn, &a,
                             norm_tol(t));
                }
            for (int i = 0; i < 6; i++)
                free(in[i].data);
        }
        char group[64];
        snprintf(group, sizeof group, "batch_norm %s", kiln_dtype_name(t));
        report(group, &st);
    }
}

/* Host formula for one training step of [N, C, L] (L = H*W), checked on
 * the device: y, running mean and unbiased running variance. */
static void check_bn_host(kiln_dtype t, double eps)
{
    enum { N = 3, C = 2, L = 5 };
    int64_t xs[3] = {N, C, L}, cs[1] = {C};
    double x[N * C * L], g[C] = {1.5, 0.5}, b[C] = {0.25, -1};
    double rm0[C] = {0.5, -0.5}, rv0[C] = {1, 2};
    for (int i = 0; i < N * C * L; i++)
        x[i] = (double)((i * 7) % 11) - 4.5 + 0.125 * i;
    kiln_tensor *tx = tensor_of(dev, t, 3, xs, x);
    kiln_tensor *tg = tensor_of(dev, t, 1, cs, g);
    kiln_tensor *tb = tensor_of(dev, t, 1, cs, b);
    kiln_tensor *rm = tensor_of(dev, t, 1, cs, rm0);
    kiln_tensor *rv = tensor_of(dev, t, 1, cs, rv0);
    kiln_tensor *y = kiln_batch_norm(tx, tg, tb, rm, rv, 1, 0.1, eps, NULL,
                                     NULL);
    int64_t n;
    double *gy = y ? read_doubles(y, &n) : NULL, *grm = read_doubles(rm, &n),
           *grv = read_doubles(rv, &n);
    double tol = t == KILN_F32 ? 2e-6 : 1e-14, worst = 0;
    int ok = gy && grm && grv;
    for (int c = 0; ok && c < C; c++) {
        double sum = 0, sq = 0;
        for (int i = 0; i < N; i++)
            for (int l = 0; l < L; l++)
                sum += x[(i * C + c) * L + l];
        double mean = sum / (N * L);
        for (int i = 0; i < N; i++)
            for (int l = 0; l < L; l++) {
                double d = x[(i * C + c) * L + l] - mean;
                sq += d * d;
            }
        double var = sq / (N * L), unbiased = sq / (N * L - 1);
        double want_rm = 0.9 * rm0[c] + 0.1 * mean;
        double want_rv = 0.9 * rv0[c] + 0.1 * unbiased;
        worst = fmax(worst, fabs(grm[c] - want_rm) / fabs(want_rm));
        worst = fmax(worst, fabs(grv[c] - want_rv) / fabs(want_rv));
        for (int i = 0; i < N; i++)
            for (int l = 0; l < L; l++) {
                int at = (i * C + c) * L + l;
                double want = (x[at] - mean) / sqrt(var + eps) * g[c] + b[c];
                worst = fmax(worst, fabs(gy[at] - want) / fmax(fabs(want), 1));
            }
    }
    printf("batch_norm host formula %s eps %g: worst rel error %.3g\n",
           kiln_dtype_name(t), eps, worst);
    CHECK(ok && worst < tol, "batch_norm %s eps %g vs host formula: %g %s",
          kiln_dtype_name(t), eps, worst, kiln_error_message(dev));
    free(gy);
    free(grm);
    free(grv);
    kiln_tensor *all[6] = {tx, tg, tb, rm, rv, y};
    for (int i = 0; i < 6; i++)
        kiln_tensor_free(all[i]);
}

/* ---- layer norm --------------------------------------------------------- */

typedef struct ln_arg {
    int nnorm, which; /* 0 y, 1 save_mean, 2 save_invstd, 3 dx, 4 dgamma,
                         5 dbeta */
    int affine;
    double eps;
} ln_arg;

/* in: x, gamma, beta, dy. */
static kiln_tensor *call_ln(kiln_tensor **in, const void *arg)
{
    const ln_arg *a = arg;
    kiln_tensor *outs[6] = {0};
    kiln_tensor *g = a->affine ? in[1] : NULL, *b = a->affine ? in[2] : NULL;
    outs[0] = kiln_layer_norm(in[0], a->nnorm, g, b, a->eps, &outs[1],
                              &outs[2]);
    if (a->which >= 3)
        kiln_layer_norm_backward(in[3], in[0], a->nnorm, g, outs[1], outs[2],
                                 &outs[3], &outs[4], &outs[5]);
    return pick(outs, 6, a->which);
}

static void test_layer_norm(void)
{
    static const struct { int nd, nnorm; int64_t s[4]; } shapes[] = {
        {2, 1, {5, 9}}, {3, 1, {2, 3, 33}}, {3, 2, {4, 3, 5}},
        {4, 2, {1, 2, 7, 3}}, {2, 2, {3, 4}}, {2, 1, {6, 300}},
    };
    for (size_t ti = 0; ti < 2; ti++) {
        kiln_dtype t = fdtypes[ti];
        op_stats st = {0};
        for (size_t c = 0; c < sizeof shapes / sizeof *shapes; c++) {
            int nd = shapes[c].nd, nn = shapes[c].nnorm;
            const int64_t *ps = shapes[c].s + nd - nn;
            op_input in[4] = {
                input(t, nd, shapes[c].s, (enum view_kind)(c % 3), -3, 5),
                input(t, nn, ps, VIEW_PLAIN, 0.5, 2),
                input(t, nn, ps, (enum view_kind)((c + 1) % 3), -1, 1),
                input(t, nd, shapes[c].s, VIEW_PLAIN, -1, 1)};
            for (int which = 0; which < 6; which++) {
                ln_arg a = {nn, which, (int)(c + which) % 3 != 2,
                            c % 2 ? 1e-5 : 1e-4};
                char name[96];
                snprintf(name, sizeof name, "layer_norm %s case %zu output %d",
                         kiln_dtype_name(t), c, which);
                check_op(&st, dev, ref, name, 4, in, call_ln, &a, norm_tol(t));
            }
            for (int i = 0; i < 4; i++)
                free(in[i].data);
        }
        char group[64];
        snprintf(group, sizeof group, "layer_norm %s", kiln_dtype_name(t));
        report(group, &st);
    }
}

/* ---- LRN ---------------------------------------------------------------- */

typedef struct lrn_arg {
    int n, backward;
    double alpha, beta, k;
} lrn_arg;

/* in: x, dy. */
static kiln_tensor *call_lrn(kiln_tensor **in, const void *arg)
{
    const lrn_arg *a = arg;
    kiln_tensor *y = kiln_lrn(in[0], a->n, a->alpha, a->beta, a->k);
    if (!a->backward)
        return y;
    kiln_tensor *dx = kiln_lrn_backward(in[1], in[0], y, a->n, a->alpha,
                                        a->beta, a->k);
    kiln_tensor_free(y);
    return dx;
}

static const lrn_arg lrn_params[] = {
    {5, 0, 1e-4, 0.75, 2},   /* the course's (AlexNet's) values */
    {3, 0, 0.5, 0.9, 1},
    {4, 0, 1.0, 0.5, 1.5},   /* even window: one more channel below */
    {1, 0, 2.0, 0.75, 1},
    {7, 0, 0.1, 1.3, 0.5},   /* window wider than the channels */
};

static void test_lrn(void)
{
    static const struct { int nd; int64_t s[4]; } shapes[] = {
        {4, {2, 7, 3, 4}}, {4, {1, 5, 1, 1}}, {3, {3, 3, 5}}, {2, {4, 6}},
    };
    for (size_t ti = 0; ti < 2; ti++) {
        kiln_dtype t = fdtypes[ti];
        op_stats st = {0};
        /* pow in f32 (OpenCL allows 16 ulp) dominates. */
        tolerance tol = t == KILN_F32 ? (tolerance){1e-6, 8e-6, 0}
                                      : (tolerance){1e-14, 1e-13, 0};
        for (size_t c = 0; c < sizeof shapes / sizeof *shapes; c++)
            for (size_t p = 0; p < sizeof lrn_params / sizeof *lrn_params;
                 p++) {
                /* Large enough values that alpha/n * sum x^2 matters. */
                double r = p == 0 ? 40 : 2;
                op_input in[2] = {
                    input(t, shapes[c].nd, shapes[c].s,
                          (enum view_kind)((c + p) % 3), -r, r),
                    input(t, shapes[c].nd, shapes[c].s, VIEW_PLAIN, -1, 1)};
                for (int bw = 0; bw < 2; bw++) {
                    lrn_arg a = lrn_params[p];
                    a.backward = bw;
                    char name[96];
                    snprintf(name, sizeof name, "lrn%s %s case %zu params %zu",
                             bw ? "_backward" : "", kiln_dtype_name(t), c, p);
                    check_op(&st, dev, ref, name, 2, in, call_lrn, &a, tol);
                }
                free(in[0].data);
                free(in[1].data);
            }
        char group[64];
        snprintf(group, sizeof group, "lrn %s", kiln_dtype_name(t));
        report(group, &st);
    }
}

/* The course's LRN (n=5, k=2, alpha=1e-4, beta=0.75) on [1, 6, 1, 2]
 * against the formula written out on the host. */
static void check_lrn_host(kiln_dtype t)
{
    enum { C = 6, P = 2 };
    int64_t s[4] = {1, C, 1, P};
    double x[C * P];
    for (int i = 0; i < C * P; i++)
        x[i] = 10.0 * (i % 5) - 17.0 + i;
    kiln_tensor *tx = tensor_of(dev, t, 4, s, x);
    kiln_tensor *y = kiln_lrn(tx, 5, 1e-4, 0.75, 2);
    int64_t n;
    double *got = y ? read_doubles(y, &n) : NULL, worst = 0;
    for (int c = 0; got && c < C; c++)
        for (int q = 0; q < P; q++) {
            double sum = 0;
            for (int j = c - 2; j <= c + 2; j++)
                if (j >= 0 && j < C)
                    sum += x[j * P + q] * x[j * P + q];
            double want = x[c * P + q] / pow(2 + 1e-4 / 5 * sum, 0.75);
            worst = fmax(worst, fabs(got[c * P + q] - want) / fabs(want));
        }
    printf("lrn host formula %s: worst rel error %.3g\n", kiln_dtype_name(t),
           worst);
    CHECK(got && worst < (t == KILN_F32 ? 1e-6 : 1e-14),
          "lrn %s vs host formula: %g %s", kiln_dtype_name(t), worst,
          kiln_error_message(dev));
    free(got);
    kiln_tensor_free(y);
    kiln_tensor_free(tx);
}

/* ---- embedding ---------------------------------------------------------- */

typedef struct emb_arg {
    int backward;
    int64_t vocab;
} emb_arg;

/* in: table (forward) or dy (backward), indices. */
static kiln_tensor *call_emb(kiln_tensor **in, const void *arg)
{
    const emb_arg *a = arg;
    if (a->backward)
        return kiln_embedding_backward(in[0], in[1], a->vocab);
    return kiln_embedding(in[0], in[1]);
}

static void test_embedding(void)
{
    static const kiln_dtype all[] = {KILN_F32, KILN_I32, KILN_F64};
    static const struct { int nd; int64_t s[3]; } ishapes[] = {
        {2, {3, 4}}, {1, {9}}, {0, {0}}, {3, {2, 1, 5}}, {1, {0}},
        {1, {200}},
    };
    for (size_t ti = 0; ti < 3; ti++) {
        kiln_dtype t = all[ti];
        op_stats st = {0};
        for (size_t c = 0; c < sizeof ishapes / sizeof *ishapes; c++) {
            int64_t V = c == 5 ? 37 : 7, D = c == 3 ? 1 : 5, ts[2] = {V, D};
            /* -2 .. V+1: some out of range; few values, many repeats. */
            op_input idx = input(KILN_I32, ishapes[c].nd, ishapes[c].s,
                                 (enum view_kind)(c % 3), -2, (double)V + 2);
            op_input tab = input(t, 2, ts, (enum view_kind)(c % 3), -5, 5);
            op_input fin[2] = {tab, idx};
            emb_arg fw = {0, V};
            char name[96];
            snprintf(name, sizeof name, "embedding %s case %zu",
                     kiln_dtype_name(t), c);
            check_op(&st, dev, ref, name, 2, fin, call_emb, &fw,
                     (tolerance){0, 0, 0});
            if (t != KILN_I32) {
                int64_t ds[4];
                memcpy(ds, ishapes[c].s, sizeof ishapes[c].s);
                ds[ishapes[c].nd] = D;
                op_input dy = input(t, ishapes[c].nd + 1, ds,
                                    (enum view_kind)((c + 1) % 3), -1, 1);
                op_input bin[2] = {dy, idx};
                emb_arg bw = {1, V};
                double eps = t == KILN_F32 ? 6e-8 : 1.2e-16;
                snprintf(name, sizeof name, "embedding_backward %s case %zu",
                         kiln_dtype_name(t), c);
                check_op(&st, dev, ref, name, 2, bin, call_emb, &bw,
                         (tolerance){0, 0, 64 * eps});
                free(dy.data);
            }
            free(idx.data);
            free(tab.data);
        }
        char group[64];
        snprintf(group, sizeof group, "embedding %s", kiln_dtype_name(t));
        report(group, &st);
    }
}

/* Index 2 five times, 0 once, 9 and -1 out of range: the gradient's row 2
 * is the sum of five dy rows (in position order), row 0 one row, the rest
 * zero; the lookup gives zero rows for 9 and -1. */
static void check_embedding_duplicates(kiln_dtype t)
{
    enum { V = 4, D = 3, P = 8 };
    static const double idx[P] = {2, 2, 0, 2, 9, 2, -1, 2};
    int64_t is[1] = {P}, ds[2] = {P, D}, ts[2] = {V, D};
    double dy[P * D], table[V * D];
    for (int i = 0; i < P * D; i++)
        dy[i] = 0.25 * i - 1.5;
    for (int i = 0; i < V * D; i++)
        table[i] = 1 + i;
    kiln_tensor *ti = tensor_of(dev, KILN_I32, 1, is, idx);
    kiln_tensor *tdy = tensor_of(dev, t, 2, ds, dy);
    kiln_tensor *tt = tensor_of(dev, t, 2, ts, table);
    kiln_tensor *g = kiln_embedding_backward(tdy, ti, V);
    kiln_tensor *e = kiln_embedding(tt, ti);
    int64_t n;
    double *gg = g ? read_doubles(g, &n) : NULL;
    double *ge = e ? read_doubles(e, &n) : NULL;
    int ok = gg && ge;
    for (int v = 0; ok && v < V; v++)
        for (int d = 0; d < D; d++) {
            double want = 0;
            for (int p = 0; p < P; p++)
                if (idx[p] == v)
                    want += dy[p * D + d];
            ok = ok && gg[v * D + d] == want;
        }
    for (int p = 0; ok && p < P; p++)
        for (int d = 0; d < D; d++) {
            int v = (int)idx[p];
            double want = v >= 0 && v < V ? table[v * D + d] : 0;
            ok = ok && ge[p * D + d] == want;
        }
    CHECK(ok, "embedding %s: repeated and out-of-range indices %s",
          kiln_dtype_name(t), kiln_error_message(dev));
    free(gg);
    free(ge);
    kiln_tensor *all[5] = {ti, tdy, tt, g, e};
    for (int i = 0; i < 5; i++)
        kiln_tensor_free(all[i]);
}

/* ---- recording ------------------------------------------------------- */

/* Runs the ops once eagerly and once captured + replayed (recording =
 * 1); returns y of batch norm, the running mean, layer norm, LRN and the
 * embedding gradient, read back, concatenated. */
static double *norm_sequence(int recording, int64_t *count)
{
    int64_t xs[4] = {2, 3, 4, 5}, cs[1] = {3}, is[1] = {6};
    double x[120], c[3] = {0.5, 1, 1.5}, ix[6] = {0, 2, 2, 1, 2, 9};
    for (int i = 0; i < 120; i++)
        x[i] = (i * 37 % 23) * 0.25 - 2;
    kiln_tensor *tx = tensor_of(dev, KILN_F32, 4, xs, x);
    kiln_tensor *tc = tensor_of(dev, KILN_F32, 1, cs, c);
    kiln_tensor *rm = tensor_of(dev, KILN_F32, 1, cs, c);
    kiln_tensor *rv = tensor_of(dev, KILN_F32, 1, cs, c);
    kiln_tensor *ti = tensor_of(dev, KILN_I32, 1, is, ix);
    kiln_recording *rec = NULL;
    if (recording)
        kiln_recording_begin(dev);
    kiln_tensor *out[5];
    out[0] = kiln_batch_norm(tx, tc, tc, rm, rv, 1, 0.1, 1e-4, NULL, NULL);
    out[1] = kiln_layer_norm(tx, 2, NULL, NULL, 1e-5, NULL, NULL);
    out[2] = kiln_lrn(tx, 5, 1e-4, 0.75, 2);
    kiln_tensor *table = kiln_reshape(tx, 2, (int64_t[]){24, 5});
    kiln_tensor *e = kiln_embedding(table, ti);
    out[3] = kiln_embedding_backward(e, ti, 4);
    out[4] = rm;
    if (recording) {
        rec = kiln_recording_end(dev);
        kiln_recording_replay(rec);
    }
    double *all = malloc(sizeof(double) * 1024);
    int64_t at = 0;
    for (int i = 0; i < 5; i++) {
        int64_t n = 0;
        double *v = out[i] ? read_doubles(out[i], &n) : NULL;
        for (int64_t j = 0; v && j < n && at < 1024; j++)
            all[at++] = v[j];
        free(v);
        if (i < 4)
            kiln_tensor_free(out[i]);
    }
    *count = at;
    kiln_recording_free(rec);
    kiln_tensor *tmp[6] = {tx, tc, rm, rv, ti, table};
    for (int i = 0; i < 6; i++)
        kiln_tensor_free(tmp[i]);
    kiln_tensor_free(e);
    return all;
}

static void test_recording(void)
{
    int64_t n1, n2;
    double *eager = norm_sequence(0, &n1);
    double *replayed = norm_sequence(1, &n2);
    int ok = n1 == n2 && n1 == 120 * 3 + 4 * 5 + 3 &&
             kiln_status_of(dev) == KILN_OK;
    for (int64_t i = 0; ok && i < n1; i++)
        ok = eager[i] == replayed[i];
    CHECK(ok, "norm ops recorded and replayed match eager results (%lld vs "
          "%lld values) %s", (long long)n1, (long long)n2,
          kiln_error_message(dev));
    kiln_clear_error(dev);
    free(eager);
    free(replayed);
}

/* ---- argument errors ---------------------------------------------------- */

static void expect_error(kiln_tensor *t, kiln_status want, const char *what)
{
    kiln_status got = kiln_status_of(dev);
    CHECK(!t && got == want, "%s: expected %s, got %s (%s)", what,
          kiln_status_string(want), kiln_status_string(got),
          kiln_error_message(dev));
    kiln_tensor_free(t);
    kiln_clear_error(dev);
}

static void test_errors(void)
{
    int64_t xs[2] = {4, 3}, c4[1] = {4}, one[2] = {1, 3}, is[1] = {2};
    kiln_tensor *x = kiln_tensor_new(dev, KILN_F32, 2, xs);
    kiln_tensor *g4 = kiln_tensor_new(dev, KILN_F32, 1, c4);
    kiln_tensor *x1 = kiln_tensor_new(dev, KILN_F32, 2, one);
    kiln_tensor *xi = kiln_tensor_new(dev, KILN_I32, 2, xs);
    kiln_tensor *fi = kiln_tensor_new(dev, KILN_F32, 1, is);
    kiln_fill(x, 1);
    kiln_fill(x1, 1);
    expect_error(kiln_batch_norm(x, g4, NULL, NULL, NULL, 1, 0.1, 1e-5, NULL,
                                 NULL), KILN_ERROR_SHAPE, "gamma [4] for C=3");
    expect_error(kiln_batch_norm(x, NULL, NULL, NULL, NULL, 0, 0.1, 1e-5, NULL,
                                 NULL), KILN_ERROR_INVALID_ARGUMENT,
                 "inference without running stats");
    expect_error(kiln_batch_norm(x1, NULL, NULL, NULL, NULL, 1, 0.1, 1e-5,
                                 NULL, NULL), KILN_ERROR_SHAPE,
                 "training on one value per channel");
    expect_error(kiln_batch_norm(xi, NULL, NULL, NULL, NULL, 1, 0.1, 1e-5,
                                 NULL, NULL), KILN_ERROR_DTYPE, "i32 x");
    expect_error(kiln_layer_norm(x, 3, NULL, NULL, 1e-5, NULL, NULL),
                 KILN_ERROR_INVALID_ARGUMENT, "layer_norm over 3 of 2 dims");
    expect_error(kiln_layer_norm(x, 1, g4, NULL, 1e-5, NULL, NULL),
                 KILN_ERROR_SHAPE, "layer_norm gamma [4] for [4, 3]");
    expect_error(kiln_lrn(x, 0, 1e-4, 0.75, 2), KILN_ERROR_INVALID_ARGUMENT,
                 "lrn window 0");
    expect_error(kiln_lrn(g4, 5, 1e-4, 0.75, 2), KILN_ERROR_SHAPE,
                 "lrn of a 1-D tensor");
    expect_error(kiln_embedding(x, fi), KILN_ERROR_DTYPE, "f32 indices");
    expect_error(kiln_embedding(g4, xi), KILN_ERROR_SHAPE, "1-D table");
    expect_error(kiln_embedding_backward(x, xi, 5), KILN_ERROR_SHAPE,
                 "dy [4, 3] for indices [4, 3]");
    kiln_tensor *all[5] = {x, g4, x1, xi, fi};
    for (int i = 0; i < 5; i++)
        kiln_tensor_free(all[i]);
}

/* ---- gradient checks (f64, reference) ----------------------------------- */

static kiln_tensor *gc_bn_fwd(kiln_tensor **in, const void *arg)
{
    (void)arg;
    return kiln_batch_norm(in[0], in[1], in[2], NULL, NULL, 1, 0.1, 1e-4,
                           NULL, NULL);
}

static void gc_bn_back(kiln_tensor **in, kiln_tensor *r, const void *arg,
                       kiln_tensor **g)
{
    (void)arg;
    kiln_tensor *m, *s;
    kiln_tensor *y = kiln_batch_norm(in[0], in[1], in[2], NULL, NULL, 1, 0.1,
                                     1e-4, &m, &s);
    kiln_batch_norm_backward(r, in[0], in[1], m, s, &g[0], &g[1], &g[2]);
    kiln_tensor_free(y);
    kiln_tensor_free(m);
    kiln_tensor_free(s);
}

static kiln_tensor *gc_ln_fwd(kiln_tensor **in, const void *arg)
{
    return kiln_layer_norm(in[0], *(const int *)arg, in[1], in[2], 1e-5, NULL,
                           NULL);
}

static void gc_ln_back(kiln_tensor **in, kiln_tensor *r, const void *arg,
                       kiln_tensor **g)
{
    int nn = *(const int *)arg;
    kiln_tensor *m, *s;
    kiln_tensor *y = kiln_layer_norm(in[0], nn, in[1], in[2], 1e-5, &m, &s);
    kiln_layer_norm_backward(r, in[0], nn, in[1], m, s, &g[0], &g[1], &g[2]);
    kiln_tensor_free(y);
    kiln_tensor_free(m);
    kiln_tensor_free(s);
}

static kiln_tensor *gc_lrn_fwd(kiln_tensor **in, const void *arg)
{
    const lrn_arg *a = arg;
    return kiln_lrn(in[0], a->n, a->alpha, a->beta, a->k);
}

static void gc_lrn_back(kiln_tensor **in, kiln_tensor *r, const void *arg,
                        kiln_tensor **g)
{
    const lrn_arg *a = arg;
    kiln_tensor *y = kiln_lrn(in[0], a->n, a->alpha, a->beta, a->k);
    g[0] = kiln_lrn_backward(r, in[0], y, a->n, a->alpha, a->beta, a->k);
    kiln_tensor_free(y);
}

static kiln_tensor *gc_emb_fwd(kiln_tensor **in, const void *arg)
{
    (void)arg;
    return kiln_embedding(in[0], in[1]);
}

static void gc_emb_back(kiln_tensor **in, kiln_tensor *r, const void *arg,
                        kiln_tensor **g)
{
    (void)arg;
    g[0] = kiln_embedding_backward(r, in[1], kiln_tensor_dim(in[0], 0));
}

static void test_gradients(void)
{
    int64_t xs[4] = {3, 2, 2, 3}, cs[1] = {2};
    gc_input bn[3] = {gc_random(4, xs, -2, 2), gc_random(1, cs, 0.5, 2),
                      gc_random(1, cs, -1, 1)};
    gradcheck(ref, "batch_norm", 3, bn, gc_bn_fwd, gc_bn_back, NULL, 1e-6);
    int64_t ls[3] = {2, 3, 4};
    for (int nn = 1; nn <= 2; nn++) {
        gc_input ln[3] = {gc_random(3, ls, -2, 2),
                          gc_random(nn, ls + 3 - nn, 0.5, 2),
                          gc_random(nn, ls + 3 - nn, -1, 1)};
        gradcheck(ref, nn == 1 ? "layer_norm" : "layer_norm_2dims", 3, ln,
                  gc_ln_fwd, gc_ln_back, &nn, 1e-6);
        for (int i = 0; i < 3; i++)
            free(ln[i].data);
    }
    int64_t rs[4] = {2, 7, 2, 2};
    for (int p = 0; p < 3; p++) {
        /* The course's alpha is tiny: scale x up so the normalising term
         * (and its gradient) is far from negligible. */
        gc_input lx = gc_random(4, rs, p == 0 ? -60 : -2, p == 0 ? 60 : 2);
        char name[64];
        if (p == 0)
            snprintf(name, sizeof name, "lrn");
        else
            snprintf(name, sizeof name, "lrn_n%d", lrn_params[p].n);
        gradcheck(ref, name, 1, &lx, gc_lrn_fwd, gc_lrn_back, &lrn_params[p],
                  1e-6);
        free(lx.data);
    }
    int64_t ts[2] = {5, 3}, is[2] = {2, 4};
    static double idx[8] = {1, 4, 1, 7, 0, 1, -1, 4};
    gc_input em[2] = {gc_random(2, ts, -1, 1),
                      {.dtype = KILN_I32, .ndim = 2, .shape = {2, 4},
                       .data = idx}};
    (void)is;
    gradcheck(ref, "embedding", 2, em, gc_emb_fwd, gc_emb_back, NULL, 1e-7);
    free(em[0].data);
    for (int i = 0; i < 3; i++)
        free(bn[i].data);
}

int main(int argc, char **argv)
{
    const char *spec = harness_device(argc, argv);
    dev = harness_open(spec, 256);
    ref = harness_open("reference", 256);
    int fp64 = kiln_context_device(dev)->fp64;
    test_batch_norm();
    for (int e = 0; e < 2; e++) {
        check_bn_host(KILN_F32, e ? 1e-5 : 1e-4);
        if (fp64)
            check_bn_host(KILN_F64, e ? 1e-5 : 1e-4);
    }
    test_layer_norm();
    test_lrn();
    check_lrn_host(KILN_F32);
    if (fp64)
        check_lrn_host(KILN_F64);
    test_embedding();
    check_embedding_duplicates(KILN_F32);
    if (fp64)
        check_embedding_duplicates(KILN_F64);
    test_errors();
    test_recording();
    test_gradients();
    kiln_context_destroy(dev);
    kiln_context_destroy(ref);
    return harness_exit();
}
