/*
 * test_fixtures.c - Kiln against PyTorch's conventions: reads the .kfx
 * fixtures in tests/fixtures (made once by make_fixtures.py with PyTorch in
 * float64, committed), runs the same ops on the device under test in f64
 * and in f32, and compares outputs and gradients.
 *
 * Error of one tensor: max |kiln - torch| / max |torch| (relative to the
 * tensor's magnitude; 1 when the tensor is all zeros).  Tolerances: 1e-10
 * in f64 (the fixtures are exact doubles; only summation order differs),
 * 1e-4 in f32 (inputs rounded to f32 and f32 arithmetic, against the f64
 * truth).  Integer outputs (max-pool indices) must be equal.
 * Prints one line per case and dtype:
 *     fixture NAME DTYPE max_err X ok|FAIL
 * and, for an op that returns KILN_ERROR_UNSUPPORTED,
 *     fixture NAME SKIPPED: op not available
 *
 * usage: test_fixtures --device SPEC [--fixtures DIR]
 * The fixture directory defaults to $KILN_FIXTURES_DIR, else the fixtures/
 * folder next to this source file (its path as compiled, relative to the
 * build directory where meson runs the test).
 */
#include <errno.h>
#include <unistd.h>

#include "harness.h"

#define FX_MAX_TENSORS 48
#define FX_MAX_ATTRS 16

typedef struct fx_tensor {
    char name[32];
    int is_int;
    int ndim;
    int64_t shape[KILN_MAX_DIMS];
    int64_t n;
    double *v;
} fx_tensor;

typedef struct fx_attr {
    char name[32];
    int n;
    double v[4];
} fx_attr;

typedef struct fixture {
    char name[64];
    int nt, na;
    fx_tensor t[FX_MAX_TENSORS];
    fx_attr a[FX_MAX_ATTRS];
} fixture;

static char fixture_dir[1024];

/* ---- reading a .kfx file ------------------------------------------------ */

static void fixture_free(fixture *f)
{
    for (int i = 0; i < f->nt; i++)
        free(f->t[i].v);
    f->nt = f->na = 0;
}

static int parse_attr(fixture *f, const char *line)
{
    if (f->na == FX_MAX_ATTRS)
        return -1;
    fx_attr *a = &f->a[f->na++];
    int used = 0;
    if (sscanf(line, "attr %31s%n", a->name, &used) != 1)
        return -1;
    const char *p = line + used;
    char *end;
    for (a->n = 0; a->n < 4; a->n++) {
        double v = strtod(p, &end);
        if (end == p)
            break;
        a->v[a->n] = v;
        p = end;
    }
    return a->n > 0 ? 0 : -1;
}

static int parse_header(fixture *f, const char *line)
{
    if (f->nt == FX_MAX_TENSORS)
        return -1;
    fx_tensor *t = &f->t[f->nt];
    char dtype[8];
    int used = 0;
    if (sscanf(line, "%31s %7s %d%n", t->name, dtype, &t->ndim, &used) != 3 ||
        t->ndim < 0 || t->ndim > KILN_MAX_DIMS)
        return -1;
    t->is_int = strcmp(dtype, "i64") == 0;
    if (!t->is_int && strcmp(dtype, "f64") != 0)
        return -1;
    const char *p = line + used;
    t->n = 1;
    for (int i = 0; i < t->ndim; i++) {
        char *end;
        t->shape[i] = strtoll(p, &end, 10);
        if (end == p || t->shape[i] < 0)
            return -1;
        t->n *= t->shape[i];
        p = end;
    }
    t->v = calloc((size_t)(t->n ? t->n : 1), sizeof(double));
    if (!t->v)
        return -1;
    f->nt++;
    return 0;
}

/* Reads tests/fixtures/NAME.kfx; 0 on success, else prints why. */
static int fixture_load(fixture *f, const char *name)
{
    char path[1200], line[4096];
    memset(f, 0, sizeof *f);
    snprintf(f->name, sizeof f->name, "%s", name);
    snprintf(path, sizeof path, "%s/%s.kfx", fixture_dir, name);
    FILE *fp = fopen(path, "r");
    if (!fp) {
        printf("cannot open %s: %s\n", path, strerror(errno));
        return -1;
    }
    int64_t have = 0; /* values read into the last tensor */
    int bad = 0;
    while (!bad && fgets(line, sizeof line, fp)) {
        fx_tensor *t = f->nt ? &f->t[f->nt - 1] : NULL;
        if (t && have < t->n) {
            char *p = line, *end;
            for (;;) {
                double v = strtod(p, &end);
                if (end == p)
                    break;
                if (have == t->n) {
                    bad = 1;
                    break;
                }
                t->v[have++] = v;
                p = end;
            }
        } else if (line[0] == '#' || line[0] == '\n') {
            continue;
        } else if (strncmp(line, "attr ", 5) == 0) {
            bad = parse_attr(f, line) != 0;
        } else {
            bad = parse_header(f, line) != 0;
            have = 0;
        }
    }
    if (f->nt && have < f->t[f->nt - 1].n)
        bad = 1;
    fclose(fp);
    if (bad) {
        printf("%s: malformed fixture near \"%.60s\"\n", path, line);
        fixture_free(f);
        return -1;
    }
    return 0;
}

static fx_tensor *fx_find(fixture *f, const char *name)
{
    for (int i = 0; i < f->nt; i++)
        if (strcmp(f->t[i].name, name) == 0)
            return &f->t[i];
    return NULL;
}

static const fx_attr *fx_attr_get(const fixture *f, const char *name)
{
    for (int i = 0; i < f->na; i++)
        if (strcmp(f->a[i].name, name) == 0)
            return &f->a[i];
    return NULL;
}

/* Attribute @name, element @i (the last one if shorter), or @dflt. */
static double attr(const fixture *f, const char *name, int i, double dflt)
{
    const fx_attr *a = fx_attr_get(f, name);
    if (!a)
        return dflt;
    return a->v[i < a->n ? i : a->n - 1];
}

/* ---- one run of a case: the device tensors and the comparison ---------- */

typedef struct run {
    fixture *f;
    kiln_context *ctx;
    kiln_dtype dt;          /* float dtype of this run                     */
    double tol;
    double err;             /* worst error over the tensors compared       */
    char worst[32];
    int bad;                /* a tensor missing, misshapen or over tol     */
    kiln_tensor *owned[64]; /* freed at the end of the case                */
    int nowned;
} run;

static kiln_tensor *own(run *r, kiln_tensor *t)
{
    if (t && r->nowned < 64)
        r->owned[r->nowned++] = t;
    else if (t) {
        printf("  too many tensors in one case\n");
        r->bad = 1;
        kiln_tensor_free(t);
        return NULL;
    }
    return t;
}

/* Uploads fixture tensor @name: f64 data in the run's dtype, i64 as i32. */
static kiln_tensor *up(run *r, const char *name)
{
    fx_tensor *t = fx_find(r->f, name);
    if (!t) {
        printf("  fixture has no tensor %s\n", name);
        r->bad = 1;
        return NULL;
    }
    kiln_dtype dt = t->is_int ? KILN_I32 : r->dt;
    size_t es = kiln_dtype_size(dt), n = (size_t)t->n;
    void *buf = malloc(n ? n * es : 1);
    if (!buf)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        if (dt == KILN_I32)
            ((int32_t *)buf)[i] = (int32_t)t->v[i];
        else if (dt == KILN_F32)
            ((float *)buf)[i] = (float)t->v[i];
        else
            ((double *)buf)[i] = t->v[i];
    }
    kiln_tensor *k = kiln_tensor_from_data(r->ctx, dt, t->ndim, t->shape,
                                           buf, n * es);
    free(buf);
    return own(r, k);
}

/* Reads @k back as doubles; NULL (and *n = -1) on failure. */
static double *down(kiln_tensor *k, int64_t *n)
{
    *n = kiln_tensor_numel(k);
    kiln_dtype dt = kiln_tensor_dtype(k);
    size_t es = kiln_dtype_size(dt);
    void *buf = malloc(*n ? (size_t)*n * es : 1);
    double *d = malloc(*n ? (size_t)*n * sizeof *d : 1);
    if (!buf || !d || kiln_tensor_read(k, buf, (size_t)*n * es) != KILN_OK) {
        free(buf);
        free(d);
        *n = -1;
        return NULL;
    }
    for (int64_t i = 0; i < *n; i++)
        d[i] = dt == KILN_I32   ? ((int32_t *)buf)[i]
               : dt == KILN_F32 ? ((float *)buf)[i]
                                : ((double *)buf)[i];
    free(buf);
    return d;
}

/* Compares Kiln's @got with fixture tensor @name.  @loose: only the
 * element count must match (a reshaped result, e.g. save_mean). */
static void check_loose(run *r, kiln_tensor *got, const char *name, int loose)
{
    fx_tensor *t = fx_find(r->f, name);
    if (!t) {
        printf("  fixture has no tensor %s\n", name);
        r->bad = 1;
        return;
    }
    if (!got) {
        if (kiln_status_of(r->ctx) == KILN_OK) {
            printf("  %s: no result and no error\n", name);
            r->bad = 1;
        }
        return; /* the error is reported once, by the caller */
    }
    int64_t shape[KILN_MAX_DIMS];
    int nd = kiln_tensor_shape(got, shape);
    int same = nd == t->ndim &&
               memcmp(shape, t->shape, sizeof(int64_t) * (size_t)nd) == 0;
    if (!same && !(loose && kiln_tensor_numel(got) == t->n)) {
        printf("  %s: shape differs (kiln ndim %d, %lld elements; torch "
               "ndim %d, %lld elements)\n", name, nd,
               (long long)kiln_tensor_numel(got), t->ndim, (long long)t->n);
        r->bad = 1;
        return;
    }
    int64_t n;
    double *d = down(got, &n);
    if (!d)
        return; /* read error: in the context's status */
    double scale = 0, diff = 0;
    int64_t at = 0;
    for (int64_t i = 0; i < n; i++) {
        scale = fmax(scale, fabs(t->v[i]));
        double e = fabs(d[i] - t->v[i]);
        if (!(e <= diff)) { /* also catches NaN */
            diff = isnan(e) ? INFINITY : e;
            at = i;
        }
    }
    double err = t->is_int ? diff : diff / (scale > 0 ? scale : 1);
    double tol = t->is_int ? 0 : r->tol;
    if (err > tol) {
        printf("  %s: max_err %.3g at element %lld (kiln %.17g, torch "
               "%.17g, magnitude %.3g)\n", name, err, (long long)at, d[at],
               t->v[at], scale);
        r->bad = 1;
    }
    /* an index mismatch counts too, so a FAIL line never says 0 */
    if ((!t->is_int || err > tol) && !(err <= r->err)) {
        r->err = err;
        snprintf(r->worst, sizeof r->worst, "%s", name);
    }
    free(d);
}

static void check(run *r, kiln_tensor *got, const char *name)
{
    check_loose(r, got, name, 0);
}

static int64_t *shape_of(run *r, const char *name)
{
    fx_tensor *t = fx_find(r->f, name);
    return t ? t->shape : NULL;
}

/* ---- the cases ------------------------------------------------------------ */

static void conv_params(const fixture *f, kiln_conv2d_params *p)
{
    *p = (kiln_conv2d_params){.mode = KILN_PAD_EXPLICIT};
    for (int i = 0; i < 2; i++) {
        p->stride[i] = (int)attr(f, "stride", i, 1);
        p->padding[i] = (int)attr(f, "padding", i, 0);
        p->dilation[i] = (int)attr(f, "dilation", i, 1);
    }
    p->groups = (int)attr(f, "groups", 0, 1);
}

static void case_conv2d(run *r)
{
    kiln_conv2d_params p;
    conv_params(r->f, &p);
    int bias = attr(r->f, "bias", 0, 0) != 0;
    kiln_tensor *x = up(r, "x"), *w = up(r, "w"), *dy = up(r, "dy");
    kiln_tensor *b = bias ? up(r, "b") : NULL;
    check(r, own(r, kiln_conv2d(x, w, b, &p)), "y");
    check(r, own(r, kiln_conv2d_backward_data(dy, w, shape_of(r, "x"), &p)),
          "dx");
    check(r, own(r, kiln_conv2d_backward_weights(dy, x, shape_of(r, "w"),
                                                 &p)), "dw");
    if (bias)
        check(r, own(r, kiln_conv2d_backward_bias(dy)), "db");
}

/* y = conv_transpose(x, w) is conv2d's data gradient applied to x, so its
 * own gradients are the conv2d forward (dx = conv2d(dy, w)) and conv2d's
 * weight gradient with the roles of x and dy swapped. */
static void case_conv_transpose2d(run *r)
{
    kiln_conv2d_params p;
    conv_params(r->f, &p);
    int opad[2] = {(int)attr(r->f, "output_padding", 0, 0),
                   (int)attr(r->f, "output_padding", 1, 0)};
    kiln_tensor *x = up(r, "x"), *w = up(r, "w"), *b = up(r, "b");
    kiln_tensor *dy = up(r, "dy");
    check(r, own(r, kiln_conv_transpose2d(x, w, b, &p, opad)), "y");
    check(r, own(r, kiln_conv2d(dy, w, NULL, &p)), "dx");
    check(r, own(r, kiln_conv2d_backward_weights(x, dy, shape_of(r, "w"),
                                                 &p)), "dw");
    check(r, own(r, kiln_conv2d_backward_bias(dy)), "db");
}

/* conv1d is conv2d with H = 1 (index 1 of the params); its gradients go
 * through conv2d's backward ops on [N, C, 1, L] views. */
static void case_conv1d(run *r)
{
    kiln_conv2d_params p = {.mode = KILN_PAD_EXPLICIT, .groups = 1};
    p.stride[0] = p.dilation[0] = 1;
    p.stride[1] = (int)attr(r->f, "stride", 0, 1);
    p.padding[1] = (int)attr(r->f, "padding", 0, 0);
    p.dilation[1] = (int)attr(r->f, "dilation", 0, 1);
    kiln_tensor *x = up(r, "x"), *w = up(r, "w"), *b = up(r, "b");
    kiln_tensor *dy = up(r, "dy");
    check(r, own(r, kiln_conv1d(x, w, b, &p)), "y");
    int64_t *xs = shape_of(r, "x"), *ws = shape_of(r, "w"),
            *ys = shape_of(r, "dy");
    if (!xs || !ws || !ys)
        return;
    int64_t x4[4] = {xs[0], xs[1], 1, xs[2]}, w4[4] = {ws[0], ws[1], 1, ws[2]};
    int64_t y4[4] = {ys[0], ys[1], 1, ys[2]};
    kiln_tensor *dy4 = own(r, kiln_reshape(dy, 4, y4));
    kiln_tensor *x4t = own(r, kiln_reshape(x, 4, x4));
    kiln_tensor *w4t = own(r, kiln_reshape(w, 4, w4));
    check_loose(r, own(r, kiln_conv2d_backward_data(dy4, w4t, x4, &p)), "dx",
                1);
    check_loose(r, own(r, kiln_conv2d_backward_weights(dy4, x4t, w4, &p)),
                "dw", 1);
    check(r, own(r, kiln_conv2d_backward_bias(dy4)), "db");
}

static void pool_params(const fixture *f, kiln_pool2d_params *p)
{
    *p = (kiln_pool2d_params){.mode = KILN_PAD_EXPLICIT};
    for (int i = 0; i < 2; i++) {
        p->kernel[i] = (int)attr(f, "kernel", i, 1);
        p->stride[i] = (int)attr(f, "stride", i, 0);
        p->padding[i] = (int)attr(f, "padding", i, 0);
    }
    p->count_include_pad = (int)attr(f, "count_include_pad", 0, 0);
}

static void case_max_pool2d(run *r)
{
    kiln_pool2d_params p;
    pool_params(r->f, &p);
    kiln_tensor *x = up(r, "x"), *dy = up(r, "dy"), *idx = NULL;
    check(r, own(r, kiln_max_pool2d(x, &p, &idx)), "y");
    check(r, own(r, idx), "indices");
    check(r, own(r, kiln_max_pool2d_backward(dy, idx, shape_of(r, "x"))),
          "dx");
}

static void case_avg_pool2d(run *r)
{
    kiln_pool2d_params p;
    pool_params(r->f, &p);
    kiln_tensor *x = up(r, "x"), *dy = up(r, "dy");
    check(r, own(r, kiln_avg_pool2d(x, &p)), "y");
    check(r, own(r, kiln_avg_pool2d_backward(dy, shape_of(r, "x"), &p)),
          "dx");
}

/* adaptive_avg_pool2d where the input divides evenly by the output: a
 * plain average pool with kernel = stride = in / out; 1x1 is also
 * kiln_global_avg_pool2d. */
static void case_adaptive_avg_pool2d(run *r)
{
    int64_t *xs = shape_of(r, "x");
    if (!xs)
        return;
    int oh = (int)attr(r->f, "output_size", 0, 1),
        ow = (int)attr(r->f, "output_size", 1, 1);
    kiln_pool2d_params p = {.kernel = {(int)xs[2] / oh, (int)xs[3] / ow},
                            .mode = KILN_PAD_EXPLICIT};
    kiln_tensor *x = up(r, "x"), *dy = up(r, "dy");
    if (oh == 1 && ow == 1)
        check(r, own(r, kiln_global_avg_pool2d(x)), "y");
    else
        check(r, own(r, kiln_avg_pool2d(x, &p)), "y");
    check(r, own(r, kiln_avg_pool2d_backward(dy, xs, &p)), "dx");
}

/* Training: batch statistics, running stats updated in place, gradients.
 * Eval: the forward only (Kiln has no eval-mode backward op; the fixture
 * holds those gradients for completeness). */
static void case_batch_norm(run *r)
{
    int training = attr(r->f, "training", 0, 1) != 0;
    double momentum = attr(r->f, "momentum", 0, 0.1),
           eps = attr(r->f, "eps", 0, 1e-5);
    kiln_tensor *x = up(r, "x"), *g = up(r, "gamma"), *b = up(r, "beta");
    kiln_tensor *rm = up(r, "running_mean"), *rv = up(r, "running_var");
    kiln_tensor *sm = NULL, *si = NULL;
    check(r, own(r, kiln_batch_norm(x, g, b, rm, rv, training, momentum, eps,
                                    training ? &sm : NULL,
                                    training ? &si : NULL)), "y");
    own(r, sm);
    own(r, si);
    check(r, rm, "running_mean_out");
    check(r, rv, "running_var_out");
    if (!training)
        return;
    check_loose(r, sm, "save_mean", 1);
    check_loose(r, si, "save_invstd", 1);
    kiln_tensor *dx = NULL, *dg = NULL, *db = NULL;
    kiln_tensor *dy = up(r, "dy");
    if (kiln_batch_norm_backward(dy, x, g, sm, si, &dx, &dg, &db) != KILN_OK)
        return;
    check(r, own(r, dx), "dx");
    check(r, own(r, dg), "dgamma");
    check(r, own(r, db), "dbeta");
}

static void case_layer_norm(run *r)
{
    int nnorm = (int)attr(r->f, "nnorm", 0, 1);
    double eps = attr(r->f, "eps", 0, 1e-5);
    kiln_tensor *x = up(r, "x"), *g = up(r, "gamma"), *b = up(r, "beta");
    kiln_tensor *sm = NULL, *si = NULL, *dx = NULL, *dg = NULL, *db = NULL;
    check(r, own(r, kiln_layer_norm(x, nnorm, g, b, eps, &sm, &si)), "y");
    own(r, sm);
    own(r, si);
    check_loose(r, sm, "save_mean", 1);
    check_loose(r, si, "save_invstd", 1);
    kiln_tensor *dy = up(r, "dy");
    if (kiln_layer_norm_backward(dy, x, nnorm, g, sm, si, &dx, &dg, &db) !=
        KILN_OK)
        return;
    check(r, own(r, dx), "dx");
    check(r, own(r, dg), "dgamma");
    check(r, own(r, db), "dbeta");
}

static void case_lrn(run *r)
{
    int n = (int)attr(r->f, "size", 0, 5);
    double alpha = attr(r->f, "alpha", 0, 1e-4),
           beta = attr(r->f, "beta", 0, 0.75), k = attr(r->f, "k", 0, 2);
    kiln_tensor *x = up(r, "x"), *dy = up(r, "dy");
    kiln_tensor *y = own(r, kiln_lrn(x, n, alpha, beta, k));
    check(r, y, "y");
    check(r, own(r, kiln_lrn_backward(dy, x, y, n, alpha, beta, k)), "dx");
}

static void case_softmax(run *r)
{
    int dim = (int)attr(r->f, "dim", 0, 1);
    int logs = strncmp(r->f->name, "log_", 4) == 0;
    kiln_tensor *x = up(r, "x"), *dy = up(r, "dy");
    kiln_tensor *y = own(r, logs ? kiln_log_softmax(x, dim)
                                 : kiln_softmax(x, dim));
    check(r, y, "y");
    check(r, own(r, logs ? kiln_log_softmax_backward(y, dy, dim)
                         : kiln_softmax_backward(y, dy, dim)), "dx");
}

static void case_cross_entropy(run *r)
{
    int index = fx_find(r->f, "labels") != NULL;
    kiln_tensor *x = up(r, "logits"), *t = up(r, index ? "labels" : "target");
    kiln_tensor *g = NULL;
    check(r, own(r, kiln_softmax_cross_entropy(x, t, &g)), "loss");
    check(r, own(r, g), "dlogits");
}

static void case_bce_with_logits(run *r)
{
    kiln_tensor *x = up(r, "logits"), *t = up(r, "target"), *g = NULL;
    check(r, own(r, kiln_sigmoid_cross_entropy(x, t, &g)), "loss");
    check(r, own(r, g), "dlogits");
}

static void case_mse_loss(run *r)
{
    kiln_tensor *x = up(r, "pred"), *t = up(r, "target"), *g = NULL;
    check(r, own(r, kiln_mse_loss(x, t, 0, &g)), "loss");
    check(r, own(r, g), "dpred");
}

static void case_embedding(run *r)
{
    kiln_tensor *table = up(r, "table"), *idx = up(r, "indices");
    kiln_tensor *dy = up(r, "dy");
    int64_t *ts = shape_of(r, "table");
    check(r, own(r, kiln_embedding(table, idx)), "y");
    check(r, own(r, kiln_embedding_backward(dy, idx, ts ? ts[0] : 0)),
          "dtable");
}

/* nn.RNN / nn.LSTM / nn.GRU: the fixture's parameter names are PyTorch's
 * (weight_ih_l0, ...), whose layouts and gate orders are Kiln's. */
static void case_rnn(run *r)
{
    static const char *pn[4] = {"weight_ih", "weight_hh", "bias_ih",
                                "bias_hh"};
    const char *name = r->f->name;
    kiln_rnn_options o = {
        .kind = strncmp(name, "rnn_tanh", 8) == 0   ? KILN_RNN_TANH
                : strncmp(name, "rnn_relu", 8) == 0 ? KILN_RNN_RELU
                : strncmp(name, "lstm", 4) == 0     ? KILN_LSTM
                                                    : KILN_GRU,
        .layers = (int)attr(r->f, "layers", 0, 1),
        .batch_first = (int)attr(r->f, "batch_first", 0, 0)};
    int lstm = o.kind == KILN_LSTM;
    kiln_rnn_weights w[2] = {{0}}, dw[2] = {{0}};
    char key[48];
    if (o.layers < 1 || o.layers > 2)
        return;
    for (int l = 0; l < o.layers; l++) {
        kiln_tensor **slot[4] = {&w[l].w_ih, &w[l].w_hh, &w[l].b_ih,
                                 &w[l].b_hh};
        for (int i = 0; i < 4; i++) {
            snprintf(key, sizeof key, "%s_l%d", pn[i], l);
            *slot[i] = up(r, key);
        }
    }
    kiln_tensor *x = up(r, "x"), *h0 = up(r, "h0");
    kiln_tensor *c0 = lstm ? up(r, "c0") : NULL;
    kiln_tensor *hn = NULL, *cn = NULL, *dx = NULL, *dh0 = NULL, *dc0 = NULL;
    kiln_rnn_tape *tape = NULL;
    check(r, own(r, kiln_rnn_forward(x, h0, c0, w, &o, &hn, lstm ? &cn : NULL,
                                     &tape)), "y");
    check(r, own(r, hn), "h_n");
    if (lstm)
        check(r, own(r, cn), "c_n");
    if (!tape)
        return;
    kiln_tensor *dy = up(r, "dy"), *dhn = up(r, "dh_n");
    kiln_tensor *dcn = lstm ? up(r, "dc_n") : NULL;
    kiln_status s = kiln_rnn_backward(tape, dy, dhn, dcn, &dx, &dh0,
                                      lstm ? &dc0 : NULL, dw);
    kiln_rnn_tape_free(tape);
    if (s != KILN_OK)
        return;
    check(r, own(r, dx), "dx");
    check(r, own(r, dh0), "dh0");
    if (lstm)
        check(r, own(r, dc0), "dc0");
    for (int l = 0; l < o.layers; l++) {
        kiln_tensor *got[4] = {dw[l].w_ih, dw[l].w_hh, dw[l].b_ih,
                               dw[l].b_hh};
        for (int i = 0; i < 4; i++) {
            snprintf(key, sizeof key, "d%s_l%d", pn[i], l);
            check(r, own(r, got[i]), key);
        }
    }
}

typedef struct fx_case {
    const char *name;
    void (*fn)(run *r);
} fx_case;

static const fx_case cases[] = {
    {"conv2d_stride2", case_conv2d},
    {"conv2d_pad1", case_conv2d},
    {"conv2d_pad2", case_conv2d},
    {"conv2d_dilated", case_conv2d},
    {"conv2d_grouped", case_conv2d},
    {"conv2d_depthwise", case_conv2d},
    {"conv2d_1x1", case_conv2d},
    {"conv2d_nonsquare", case_conv2d},
    {"conv_transpose2d", case_conv_transpose2d},
    {"conv1d", case_conv1d},
    {"max_pool2d_2x2s2", case_max_pool2d},
    {"max_pool2d_3x3s2p1", case_max_pool2d},
    {"avg_pool2d_incpad", case_avg_pool2d},
    {"avg_pool2d_excpad", case_avg_pool2d},
    {"adaptive_avg_pool2d_global", case_adaptive_avg_pool2d},
    {"adaptive_avg_pool2d_6to3", case_adaptive_avg_pool2d},
    {"batch_norm_train", case_batch_norm},
    {"batch_norm_train_2d", case_batch_norm},
    {"batch_norm_eval", case_batch_norm},
    {"layer_norm", case_layer_norm},
    {"lrn", case_lrn},
    {"lrn_strong", case_lrn},
    {"softmax_dim1", case_softmax},
    {"log_softmax_dim1", case_softmax},
    {"cross_entropy_index", case_cross_entropy},
    {"cross_entropy_prob", case_cross_entropy},
    {"bce_with_logits", case_bce_with_logits},
    {"mse_loss", case_mse_loss},
    {"embedding", case_embedding},
    {"rnn_tanh_l1", case_rnn},
    {"rnn_tanh_l1_bf", case_rnn},
    {"rnn_tanh_l2", case_rnn},
    {"rnn_tanh_l2_bf", case_rnn},
    {"rnn_relu_l1", case_rnn},
    {"rnn_relu_l1_bf", case_rnn},
    {"rnn_relu_l2", case_rnn},
    {"rnn_relu_l2_bf", case_rnn},
    {"lstm_l1", case_rnn},
    {"lstm_l1_bf", case_rnn},
    {"lstm_l2", case_rnn},
    {"lstm_l2_bf", case_rnn},
    {"gru_l1", case_rnn},
    {"gru_l1_bf", case_rnn},
    {"gru_l2", case_rnn},
    {"gru_l2_bf", case_rnn},
};

/* Runs one case in one dtype and prints its line. */
static void run_case(kiln_context *ctx, const fx_case *c, fixture *f,
                     kiln_dtype dt)
{
    run r = {.f = f, .ctx = ctx, .dt = dt,
             .tol = dt == KILN_F64 ? 1e-10 : 1e-4};
    kiln_clear_error(ctx);
    c->fn(&r);
    kiln_status s = kiln_finish(ctx);
    if (s == KILN_OK)
        s = kiln_status_of(ctx);
    if (s == KILN_OK)
        s = kiln_check_guards(ctx);
    for (int i = r.nowned - 1; i >= 0; i--)
        kiln_tensor_free(r.owned[i]);
    harness_checks++;
    if (s == KILN_ERROR_UNSUPPORTED) {
        printf("fixture %s SKIPPED: op not available (%s)\n", c->name,
               kiln_error_message(ctx));
        return;
    }
    if (s != KILN_OK) {
        printf("  error: %s\n", kiln_error_message(ctx));
        r.bad = 1;
    }
    printf("fixture %s %s max_err %.3g%s%s %s\n", c->name,
           kiln_dtype_name(dt), r.err, r.worst[0] ? " in " : "", r.worst,
           r.bad ? "FAIL" : "ok");
    if (r.bad)
        harness_failures++;
}

static void find_fixture_dir(int argc, char **argv)
{
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], "--fixtures") == 0) {
            snprintf(fixture_dir, sizeof fixture_dir, "%s", argv[i + 1]);
            return;
        }
    const char *env = getenv("KILN_FIXTURES_DIR");
    if (env && *env) {
        snprintf(fixture_dir, sizeof fixture_dir, "%s", env);
        return;
    }
    const char *src = __FILE__, *slash = strrchr(src, '/');
    int len = slash ? (int)(slash - src) : 0;
    snprintf(fixture_dir, sizeof fixture_dir, "%.*s%sfixtures", len, src,
             slash ? "/" : "");
}

int main(int argc, char **argv)
{
    find_fixture_dir(argc, argv);
    kiln_context *ctx = harness_open(harness_device(argc, argv), 64);
    printf("fixtures: %s\n", fixture_dir);
    int fp64 = kiln_context_device(ctx)->fp64;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fixture *f = malloc(sizeof *f);
        if (!f || fixture_load(f, cases[i].name) != 0) {
            harness_checks++;
            harness_fail("fixture %s: cannot load", cases[i].name);
            free(f);
            continue;
        }
        if (fp64)
            run_case(ctx, &cases[i], f, KILN_F64);
        else
            printf("fixture %s f64 SKIPPED: device has no fp64\n",
                   cases[i].name);
        run_case(ctx, &cases[i], f, KILN_F32);
        fixture_free(f);
        free(f);
    }
    kiln_context_destroy(ctx);
    return harness_exit();
}
