/*
 * test_optimizer.c - optimizers (fused update kernel), gradient clipping,
 * learning-rate schedules and initialisers on the device under test.
 *
 * Optimizers: every kind x dtype x weight decay (x EWA for momentum and
 * Nesterov) runs 5 steps on two parameters with fresh random gradients
 * each step; after every step (so Adam's bias correction at t = 1..5) the
 * parameters and the state tensors from kiln_optimizer_state are compared
 * with a plain double-precision C implementation written here.  Error
 * measure: |dev - host| / (|host| + max|host| of the tensor), at most
 * 1e-12 (f64) or 1e-5 (f32).  Course checks: Adam's defaults; gradient
 * descent on E(w) = 3 (w - 2)^2 + 5 (f64, gradient by Kiln ops) matching
 * the host recurrence bit for bit, w(10) = 88.776396 for eta 0.4.
 * Clipping: the norm, the clipped norm and the untouched case.  Schedules
 * against their formulas.  Initialisers: bounds from the fans, moments
 * within 4 standard errors, and the same values as the reference (uniform
 * kinds bit for bit).
 *
 * usage: test_optimizer --device SPEC
 */
#include "op_check.h"

static kiln_context *dev, *ref;
static int have_f64;

static const char *kind_names[] = {"sgd", "momentum", "nesterov", "adagrad",
                                   "rmsprop", "adam", "adamw", "adadelta"};

static kiln_tensor *upload(kiln_context *ctx, kiln_dtype t, int ndim,
                           const int64_t *shape, const double *v)
{
    int64_t n = shape_numel(ndim, shape);
    if (t == KILN_F64)
        return kiln_tensor_from_data(ctx, t, ndim, shape, v,
                                     (size_t)n * sizeof(double));
    float *f = malloc((size_t)(n ? n : 1) * sizeof *f);
    for (int64_t i = 0; i < n; i++)
        f[i] = (float)v[i];
    kiln_tensor *x = kiln_tensor_from_data(ctx, t, ndim, shape, f,
                                           (size_t)n * sizeof *f);
    free(f);
    return x;
}

/* Rounds host values to what the device holds in @t. */
static void round_to(kiln_dtype t, double *v, int64_t n)
{
    for (int64_t i = 0; i < n && t == KILN_F32; i++)
        v[i] = (float)v[i];
}

/* max_i |d - h| / (|h| + max|h|); also fails on a read error. */
static double tensor_err(kiln_tensor *t, const double *h, int64_t n)
{
    int64_t got = 0;
    double *d = read_doubles(t, &got);
    if (!d || got != n) {
        free(d);
        return INFINITY;
    }
    double mx = 0, worst = 0;
    for (int64_t i = 0; i < n; i++)
        mx = fmax(mx, fabs(h[i]));
    for (int64_t i = 0; i < n; i++) {
        double e = fabs(d[i] - h[i]) / (fabs(h[i]) + mx + 1e-300);
        worst = isnan(e) ? INFINITY : fmax(worst, e);
    }
    free(d);
    return worst;
}

/* ---- host optimizer ------------------------------------------------------ */

typedef struct host_opt {
    kiln_optimizer_config c;   /* with every value given explicitly */
    int t;
} host_opt;

static void host_update(const host_opt *o, double *p, double g, double *s1,
                        double *s2)
{
    const kiln_optimizer_config *c = &o->c;
    double damp = c->ewa ? 1 - c->momentum : 1;
    if (c->kind == KILN_OPT_ADAMW)
        *p = *p - c->lr * c->weight_decay * *p;
    else
        g = g + c->weight_decay * *p;
    switch (c->kind) {
    case KILN_OPT_SGD: *p -= c->lr * g; break;
    case KILN_OPT_MOMENTUM:
        *s1 = c->momentum * *s1 + damp * g;
        *p -= c->lr * *s1;
        break;
    case KILN_OPT_NESTEROV:
        *s1 = c->momentum * *s1 + damp * g;
        *p -= c->lr * (g + c->momentum * *s1);
        break;
    case KILN_OPT_ADAGRAD:
        *s1 += g * g;
        *p -= c->lr * g / (sqrt(*s1) + c->eps);
        break;
    case KILN_OPT_RMSPROP:
        *s1 = c->rho * *s1 + (1 - c->rho) * g * g;
        *p -= c->lr * g / (sqrt(*s1) + c->eps);
        break;
    case KILN_OPT_ADAM:
    case KILN_OPT_ADAMW: { /* PyTorch's arrangement of the same formula */
        double bc1 = 1 - pow(c->beta1, o->t), bc2 = 1 - pow(c->beta2, o->t);
        *s1 = c->beta1 * *s1 + (1 - c->beta1) * g;
        *s2 = c->beta2 * *s2 + (1 - c->beta2) * g * g;
        double denom = sqrt(*s2) / sqrt(bc2) + c->eps;
        *p -= c->lr / bc1 * *s1 / denom;
        break;
    }
    case KILN_OPT_ADADELTA: {
        *s1 = c->rho * *s1 + (1 - c->rho) * g * g;
        double delta = sqrt(*s2 + c->eps) / sqrt(*s1 + c->eps) * g;
        *s2 = c->rho * *s2 + (1 - c->rho) * delta * delta;
        *p -= c->lr * delta;
        break;
    }
    }
}

static int nstate(kiln_optimizer_kind k)
{
    return k == KILN_OPT_SGD ? 0
         : k == KILN_OPT_ADAM || k == KILN_OPT_ADAMW ||
           k == KILN_OPT_ADADELTA ? 2 : 1;
}

#define NPARAM 2
#define NSTEPS 5

/* Runs NSTEPS steps of @cfg on the device and of @host on the host;
 * returns the worst error over steps, parameters and states. */
static double run_optimizer(kiln_dtype t, const kiln_optimizer_config *cfg,
                            host_opt *host, uint64_t seed)
{
    static const int64_t shapes[NPARAM][2] = {{7, 5}, {13, 1}};
    harness_rng rng = {seed};
    double *hp[NPARAM], *hs[NPARAM][2], *hg[NPARAM];
    kiln_tensor *p[NPARAM], *g[NPARAM];
    int64_t n[NPARAM];
    kiln_optimizer *opt = kiln_optimizer_new(dev, cfg);
    double worst = 0;
    for (int k = 0; k < NPARAM; k++) {
        n[k] = shapes[k][0] * shapes[k][1];
        hp[k] = malloc((size_t)n[k] * sizeof(double));
        hg[k] = malloc((size_t)n[k] * sizeof(double));
        hs[k][0] = calloc((size_t)n[k], sizeof(double));
        hs[k][1] = calloc((size_t)n[k], sizeof(double));
        for (int64_t i = 0; i < n[k]; i++)
            hp[k][i] = harness_uniform(&rng, -1, 1);
        round_to(t, hp[k], n[k]);
        p[k] = upload(dev, t, k == 0 ? 2 : 1, shapes[k], hp[k]);
        g[k] = NULL;
    }
    for (int step = 1; step <= NSTEPS; step++) {
        host->t = step;
        for (int k = 0; k < NPARAM; k++) {
            for (int64_t i = 0; i < n[k]; i++)
                hg[k][i] = harness_uniform(&rng, -2, 2);
            round_to(t, hg[k], n[k]);
            kiln_tensor_free(g[k]);
            g[k] = upload(dev, t, k == 0 ? 2 : 1, shapes[k], hg[k]);
            for (int64_t i = 0; i < n[k]; i++)
                host_update(host, &hp[k][i], hg[k][i], &hs[k][0][i],
                            &hs[k][1][i]);
        }
        kiln_status s = kiln_optimizer_step(opt, NPARAM, p, g, -1);
        CHECK(s == KILN_OK, "optimizer step: %s", kiln_error_message(dev));
        CHECK(kiln_optimizer_steps(opt) == step, "steps count %lld",
              (long long)kiln_optimizer_steps(opt));
        for (int k = 0; k < NPARAM; k++) {
            worst = fmax(worst, tensor_err(p[k], hp[k], n[k]));
            kiln_tensor *st[2] = {NULL, NULL};
            int ns = kiln_optimizer_state(opt, p[k], st, 2);
            CHECK(ns == nstate(cfg->kind), "state count %d", ns);
            for (int j = 0; j < ns; j++) {
                CHECK(st[j] != NULL, "state %d missing", j);
                if (st[j])
                    worst = fmax(worst, tensor_err(st[j], hs[k][j], n[k]));
            }
        }
    }
    for (int k = 0; k < NPARAM; k++) {
        kiln_tensor_free(p[k]);
        kiln_tensor_free(g[k]);
        free(hp[k]);
        free(hg[k]);
        free(hs[k][0]);
        free(hs[k][1]);
    }
    kiln_optimizer_free(opt);
    return worst;
}

static void test_optimizers(kiln_dtype t)
{
    double tol = t == KILN_F64 ? 1e-12 : 1e-5, worst_all = 0;
    for (int kind = 0; kind <= KILN_OPT_ADADELTA; kind++) {
        int ewa_max = kind == KILN_OPT_MOMENTUM || kind == KILN_OPT_NESTEROV;
        for (int wd = 0; wd < 2; wd++)
            for (int ewa = 0; ewa <= ewa_max; ewa++) {
                kiln_optimizer_config c = {
                    .kind = kind, .lr = 0.05, .momentum = 0.8, .ewa = ewa,
                    .beta1 = 0.85, .beta2 = 0.99, .rho = 0.7, .eps = 1e-3,
                    .weight_decay = wd ? 0.1 : 0};
                host_opt h = {c, 0};
                double e = run_optimizer(t, &c, &h, 100 + kind * 4 + wd * 2 + ewa);
                worst_all = fmax(worst_all, e);
                CHECK(e <= tol, "%s %s wd %d ewa %d: error %.3g > %.0e",
                      kind_names[kind], kiln_dtype_name(t), wd, ewa, e, tol);
            }
    }
    /* Course check: zero fields take the documented defaults. */
    kiln_optimizer_config adam = {.kind = KILN_OPT_ADAM};
    host_opt h = {{.kind = KILN_OPT_ADAM, .lr = 1e-3, .beta1 = 0.9,
                   .beta2 = 0.999, .eps = 1e-8}, 0};
    double e = run_optimizer(t, &adam, &h, 7);
    worst_all = fmax(worst_all, e);
    CHECK(e <= tol, "adam defaults %s: error %.3g", kiln_dtype_name(t), e);
    printf("optimizers %s: worst error %.3g (tolerance %.0e)\n",
           kiln_dtype_name(t), worst_all, tol);
}

/* Resuming: set_steps(3) makes the next Adam step use t = 4. */
static void test_set_steps(kiln_dtype t)
{
    kiln_optimizer_config c = {.kind = KILN_OPT_ADAM, .lr = 0.1};
    kiln_optimizer *opt = kiln_optimizer_new(dev, &c);
    kiln_optimizer_set_steps(opt, 3);
    int64_t one = 1;
    double p0 = 0.5, g0 = 0.25, hp = p0, m = 0, v = 0;
    kiln_tensor *p = upload(dev, t, 1, &one, &p0);
    kiln_tensor *g = upload(dev, t, 1, &one, &g0);
    host_opt h = {{.kind = KILN_OPT_ADAM, .lr = 0.1, .beta1 = 0.9,
                   .beta2 = 0.999, .eps = 1e-8}, 4};
    host_update(&h, &hp, g0, &m, &v);
    CHECK(kiln_optimizer_step(opt, 1, &p, &g, -1) == KILN_OK, "step: %s",
          kiln_error_message(dev));
    double e = tensor_err(p, &hp, 1);
    CHECK(e <= (t == KILN_F64 ? 1e-12 : 1e-5) && kiln_optimizer_steps(opt) == 4,
          "set_steps: error %.3g, steps %lld", e,
          (long long)kiln_optimizer_steps(opt));
    kiln_tensor_free(p);
    kiln_tensor_free(g);
    kiln_optimizer_free(opt);
}

/* E(w) = 3 (w - 2)^2 + 5, dE/dw = 6 (w - 2), from w = 5, f64. */
static double gradient_descent(double eta, int steps, int *exact)
{
    kiln_optimizer_config c = {.kind = KILN_OPT_SGD, .lr = eta};
    kiln_optimizer *opt = kiln_optimizer_new(dev, &c);
    double w0 = 5, two = 2, six = 6, hw = 5, dw = 0;
    kiln_tensor *w = kiln_tensor_from_data(dev, KILN_F64, 0, NULL, &w0, 8);
    kiln_tensor *k2 = kiln_tensor_from_data(dev, KILN_F64, 0, NULL, &two, 8);
    kiln_tensor *k6 = kiln_tensor_from_data(dev, KILN_F64, 0, NULL, &six, 8);
    *exact = 1;
    for (int i = 0; i < steps; i++) {
        kiln_tensor *d = kiln_sub(w, k2);
        kiln_tensor *g = kiln_mul(d, k6);
        kiln_optimizer_step(opt, 1, &w, &g, -1);
        kiln_tensor_free(d);
        kiln_tensor_free(g);
        hw = hw - eta * ((hw - 2) * 6);
        if (kiln_tensor_read(w, &dw, 8) != KILN_OK || dw != hw)
            *exact = 0;
    }
    CHECK(kiln_status_of(dev) == KILN_OK, "gradient descent: %s",
          kiln_error_message(dev));
    kiln_tensor_free(w);
    kiln_tensor_free(k2);
    kiln_tensor_free(k6);
    kiln_optimizer_free(opt);
    return dw;
}

static void test_course_gd(void)
{
    int exact;
    double w = gradient_descent(0.1, 10, &exact);
    CHECK(exact, "SGD eta 0.1: w(10) = %.17g differs from the host", w);
    w = gradient_descent(0.4, 10, &exact);
    printf("course: gradient descent eta 0.4 w(10) = %.6f\n", w);
    CHECK(exact && fabs(w - 88.776396) < 5e-7,
          "SGD eta 0.4: w(10) = %.9f, course 88.776396", w);
}

static void test_errors(void)
{
    int64_t s3 = 3, s4 = 4;
    kiln_optimizer_config c = {.kind = KILN_OPT_ADAM};
    kiln_optimizer *opt = kiln_optimizer_new(dev, &c);
    kiln_tensor *p = kiln_tensor_new(dev, KILN_F32, 1, &s3);
    kiln_tensor *g = kiln_tensor_new(dev, KILN_F32, 1, &s4);
    kiln_tensor *pi = kiln_tensor_new(dev, KILN_I32, 1, &s3);
    kiln_fill(p, 0);
    kiln_fill(g, 0);
    CHECK(kiln_optimizer_step(opt, 1, &p, &g, -1) == KILN_ERROR_SHAPE &&
              strstr(kiln_error_message(dev), "kiln_optimizer_step"),
          "shape mismatch: %s", kiln_error_message(dev));
    kiln_clear_error(dev);
    CHECK(kiln_optimizer_step(opt, 1, &pi, &pi, -1) == KILN_ERROR_DTYPE,
          "i32 parameter accepted");
    kiln_clear_error(dev);
    CHECK(kiln_optimizer_steps(opt) == 0, "failed steps were counted");
    /* A bad second pair must leave the first parameter untouched. */
    kiln_tensor *g3 = kiln_tensor_new(dev, KILN_F32, 1, &s3);
    kiln_fill(g3, 1);
    kiln_tensor *ps[2] = {p, p}, *gs[2] = {g3, g};
    float after[3] = {-1, -1, -1};
    CHECK(kiln_optimizer_step(opt, 2, ps, gs, -1) == KILN_ERROR_SHAPE &&
              kiln_tensor_read(p, after, sizeof after) == KILN_OK &&
              after[0] == 0 && after[2] == 0,
          "a failed step updated the first parameter (%g)", after[0]);
    kiln_clear_error(dev);
    kiln_tensor_free(g3);
    kiln_optimizer_config bad = {.kind = KILN_OPT_ADAM, .beta1 = 1.5};
    CHECK(kiln_optimizer_new(dev, &bad) == NULL, "beta1 1.5 accepted");
    kiln_clear_error(dev);
    CHECK(kiln_clip_grad_norm(&pi, 1, 1.0, NULL) == KILN_ERROR_DTYPE,
          "clip of i32 accepted");
    kiln_clear_error(dev);
    CHECK(kiln_init(pi, KILN_INIT_HE_NORMAL, 0, 0, 1, 0) == KILN_ERROR_DTYPE,
          "He init of i32 accepted");
    kiln_clear_error(dev);
    kiln_tensor_free(p);
    kiln_tensor_free(g);
    kiln_tensor_free(pi);
    kiln_optimizer_free(opt);
}

/* ---- clipping ------------------------------------------------------------ */

static void test_clip(kiln_dtype t)
{
    static const int64_t sh[3][3] = {{5, 3, 1}, {7, 1, 1}, {2, 2, 3}};
    static const int nd[3] = {2, 1, 3};
    double tol = t == KILN_F64 ? 1e-12 : 1e-5;
    harness_rng rng = {55};
    double *h[3], norm2 = 0;
    int64_t n[3];
    for (int k = 0; k < 3; k++) {
        n[k] = shape_numel(nd[k], sh[k]);
        h[k] = malloc((size_t)n[k] * sizeof(double));
        for (int64_t i = 0; i < n[k]; i++)
            h[k][i] = harness_uniform(&rng, -3, 3);
        round_to(t, h[k], n[k]);
        for (int64_t i = 0; i < n[k]; i++)
            norm2 += h[k][i] * h[k][i];
    }
    double norm = sqrt(norm2);
    for (int pass = 0; pass < 2; pass++) {
        double max_norm = pass == 0 ? norm / 2.5 : norm * 2, got = -1;
        kiln_tensor *g[3];
        for (int k = 0; k < 3; k++)
            g[k] = upload(dev, t, nd[k], sh[k], h[k]);
        kiln_status s = kiln_clip_grad_norm(g, 3, max_norm, &got);
        CHECK(s == KILN_OK, "clip: %s", kiln_error_message(dev));
        CHECK(fabs(got - norm) <= tol * norm, "clip %s: norm %.17g, host %.17g",
              kiln_dtype_name(t), got, norm);
        double after2 = 0, worst = 0;
        for (int k = 0; k < 3; k++) {
            int64_t m;
            double *d = read_doubles(g[k], &m);
            double scale = pass == 0 ? max_norm / norm : 1;
            for (int64_t i = 0; d && i < m; i++) {
                after2 += d[i] * d[i];
                if (pass == 1)
                    CHECK(d[i] == h[k][i], "clip under the limit changed %s "
                          "element %lld", kiln_dtype_name(t), (long long)i);
                else
                    worst = fmax(worst, fabs(d[i] - h[k][i] * scale) /
                                            (3 * scale));
            }
            free(d);
            kiln_tensor_free(g[k]);
        }
        if (pass == 0) {
            CHECK(fabs(sqrt(after2) - max_norm) <= tol * max_norm,
                  "clipped norm %.17g, want %.17g", sqrt(after2), max_norm);
            CHECK(worst <= tol, "clipped values: error %.3g", worst);
            printf("clip %s: norm %.9g, clipped norm %.9g (max %.9g)\n",
                   kiln_dtype_name(t), got, sqrt(after2), max_norm);
        }
    }
    for (int k = 0; k < 3; k++)
        free(h[k]);
}

/* ---- schedules ----------------------------------------------------------- */

static void test_schedules(void)
{
    static const double ts[] = {0, 1, 2, 5, 10, 37};
    double lr = 0.2, decay = 0.5, period = 4, lmin = 0.01;
    const double pi = 3.14159265358979323846;
    for (int kind = KILN_LR_CONSTANT; kind <= KILN_LR_COSINE; kind++) {
        kiln_lr_schedule s = {kind, lr, decay, period, lmin};
        for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++) {
            double t = ts[i], want = lr;
            switch (kind) {
            case KILN_LR_INVERSE_TIME: want = lr / (1 + decay * t); break;
            case KILN_LR_EXPONENTIAL: want = lr * pow(decay, t); break;
            case KILN_LR_INVERSE_SQRT: want = lr / sqrt(t < 1 ? 1 : t); break;
            case KILN_LR_STAIRCASE: want = lr * pow(decay, floor(t / period)); break;
            case KILN_LR_COSINE:
                want = t >= period ? lmin
                                   : lmin + (lr - lmin) * (1 + cos(pi * t / period)) / 2;
                break;
            default: break;
            }
            double got = kiln_lr_at(&s, t);
            CHECK(fabs(got - want) <= 1e-15 * fabs(want),
                  "schedule %d at t = %g: %.17g, want %.17g", kind, t, got,
                  want);
        }
    }
    kiln_lr_schedule st = {KILN_LR_STAIRCASE, 1, 0.1, 10, 0};
    CHECK(kiln_lr_at(&st, 9) == 1 && fabs(kiln_lr_at(&st, 10) - 0.1) < 1e-16,
          "staircase steps at the period");
    kiln_lr_schedule cs = {KILN_LR_COSINE, 1, 0, 10, 0.1};
    CHECK(fabs(kiln_lr_at(&cs, 5) - 0.55) < 1e-15, "cosine midpoint");
}

/* ---- initialisers -------------------------------------------------------- */

typedef struct init_arg {
    kiln_init_kind kind;
    double a, b;
} init_arg;

/* check_op adapter: a fresh tensor shaped like in[0], initialised. */
static kiln_tensor *op_init(kiln_tensor **in, const void *arg)
{
    const init_arg *ia = arg;
    kiln_tensor *t = kiln_contiguous_copy(in[0]);
    if (t && kiln_init(t, ia->kind, ia->a, ia->b, 1234, 99) != KILN_OK) {
        kiln_tensor_free(t);
        t = NULL;
    }
    return t;
}

static void moments(const double *v, int64_t n, double *mean, double *var,
                    double *lo, double *hi)
{
    double s = 0, s2 = 0;
    *lo = INFINITY;
    *hi = -INFINITY;
    for (int64_t i = 0; i < n; i++) {
        s += v[i];
        *lo = fmin(*lo, v[i]);
        *hi = fmax(*hi, v[i]);
    }
    *mean = s / (double)n;
    for (int64_t i = 0; i < n; i++)
        s2 += (v[i] - *mean) * (v[i] - *mean);
    *var = s2 / (double)n;
}

/* Draws @kind on a [out, in, kh, kw] tensor and checks its statistics:
 * uniform kinds U(-bound, bound) or [a, b), normal kinds N(mean, std^2). */
static void init_stats(kiln_dtype t, kiln_init_kind kind, double a, double b,
                       double mean, double sd, double bound)
{
    int64_t shape[4] = {64, 32, 3, 5};
    int64_t n = shape_numel(4, shape);
    kiln_tensor *x = kiln_tensor_new(dev, t, 4, shape);
    double *v = NULL, m, var, lo, hi;
    int64_t got;
    if (kiln_init(x, kind, a, b, 77, 0) == KILN_OK)
        v = read_doubles(x, &got);
    CHECK(v != NULL, "init %d: %s", kind, kiln_error_message(dev));
    kiln_clear_error(dev);
    kiln_tensor_free(x);
    if (!v)
        return;
    moments(v, n, &m, &var, &lo, &hi);
    double se_mean = 4 * sd / sqrt((double)n);
    double se_var = 4 * sd * sd * sqrt(2.0 / (double)n);
    if (bound > 0) {
        double l = kind == KILN_INIT_UNIFORM ? a : -bound;
        double h = kind == KILN_INIT_UNIFORM ? b : bound;
        CHECK(lo >= l && hi < h && lo < l + 0.01 * (h - l) &&
                  hi > h - 0.01 * (h - l),
              "init %d: range [%g, %g] vs [%g, %g)", kind, lo, hi, l, h);
    }
    if (kind == KILN_INIT_TRUNCATED_NORMAL) {
        /* N(a, b^2) cut at 2 std: variance 0.77374 b^2. */
        CHECK(lo >= a - 2 * b && hi <= a + 2 * b, "truncated beyond 2 std");
        sd = b * sqrt(0.773741);
    }
    CHECK(fabs(m - mean) <= se_mean, "init %d %s: mean %g, want %g +- %g",
          kind, kiln_dtype_name(t), m, mean, se_mean);
    CHECK(fabs(var - sd * sd) <= se_var, "init %d %s: var %g, want %g +- %g",
          kind, kiln_dtype_name(t), var, sd * sd, se_var);
    free(v);
}

static void test_init(kiln_dtype t)
{
    double fi = 32 * 15, fo = 64 * 15;
    double xb = 1.5 * sqrt(6 / (fi + fo)), hb = sqrt(6 / fi);
    init_stats(t, KILN_INIT_UNIFORM, -0.5, 1.5, 0.5, 2 / sqrt(12.0), 1);
    init_stats(t, KILN_INIT_NORMAL, 0.3, 0.7, 0.3, 0.7, 0);
    init_stats(t, KILN_INIT_TRUNCATED_NORMAL, -0.2, 0.5, -0.2, 0.5, 0);
    init_stats(t, KILN_INIT_XAVIER_UNIFORM, 1.5, 0, 0, xb / sqrt(3.0), xb);
    init_stats(t, KILN_INIT_XAVIER_NORMAL, 0, 0, 0, sqrt(2 / (fi + fo)), 0);
    init_stats(t, KILN_INIT_HE_UNIFORM, 0, 0, 0, hb / sqrt(3.0), hb);
    init_stats(t, KILN_INIT_HE_NORMAL, 0, 0, 0, sqrt(2 / fi), 0);
    /* 1-D: fan_in = fan_out = length. */
    int64_t len = 6000;
    kiln_tensor *x = kiln_tensor_new(dev, t, 1, &len);
    double *v = NULL, m, var, lo, hi, bound = sqrt(6.0 / len);
    int64_t got;
    if (kiln_init(x, KILN_INIT_HE_UNIFORM, 0, 0, 5, 0) == KILN_OK)
        v = read_doubles(x, &got);
    if (v) {
        moments(v, len, &m, &var, &lo, &hi);
        CHECK(lo >= -bound && hi < bound && hi > 0.99 * bound,
              "1-D He bound %g: [%g, %g]", bound, lo, hi);
    }
    free(v);
    CHECK(kiln_init(x, KILN_INIT_CONSTANT, 2.5, 0, 0, 0) == KILN_OK, "const");
    v = read_doubles(x, &got);
    int ok = v != NULL;
    for (int64_t i = 0; v && i < len; i++)
        ok &= v[i] == 2.5;
    CHECK(ok, "constant init");
    free(v);
    kiln_init(x, KILN_INIT_ZEROS, 0, 0, 0, 0);
    v = read_doubles(x, &got);
    ok = v != NULL;
    for (int64_t i = 0; v && i < len; i++)
        ok &= v[i] == 0;
    CHECK(ok, "zeros init");
    free(v);
    kiln_tensor_free(x);

    /* Same seed, same values as the reference: uniform kinds bit for bit. */
    static const init_arg kinds[] = {
        {KILN_INIT_UNIFORM, -1, 2}, {KILN_INIT_XAVIER_UNIFORM, 0, 0},
        {KILN_INIT_HE_UNIFORM, 0, 0}, {KILN_INIT_NORMAL, 0.5, 2},
        {KILN_INIT_TRUNCATED_NORMAL, 0, 1}, {KILN_INIT_XAVIER_NORMAL, 2, 0},
        {KILN_INIT_HE_NORMAL, 0, 0}};
    op_stats exact = {0}, near = {0};
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        int uni = kinds[k].kind == KILN_INIT_UNIFORM ||
                  kinds[k].kind == KILN_INIT_XAVIER_UNIFORM ||
                  kinds[k].kind == KILN_INIT_HE_UNIFORM;
        tolerance tol = uni ? (tolerance){0, 0, 0}
                            : (tolerance){1e-6, t == KILN_F64 ? 1e-12 : 1e-5, 0};
        double zeros[5 * 3 * 2 * 7] = {0};
        op_input in = {t, 4, {5, 3, 2, 7}, VIEW_PLAIN, zeros};
        check_op(uni ? &exact : &near, dev, ref, "init", 1, &in, op_init,
                 &kinds[k], tol);
    }
    report(t == KILN_F64 ? "init f64 uniform (exact)" : "init f32 uniform (exact)",
           &exact);
    report(t == KILN_F64 ? "init f64 normal" : "init f32 normal", &near);
}

/* Twelve parameters in one first step (the state table grows past its
 * first capacity mid-call) update exactly like twelve separate steps. */
static void test_many_params(kiln_dtype t)
{
    enum { N = 12 };
    kiln_tensor *pa[N], *pb[N], *g[N];
    kiln_optimizer_config cfg = {.kind = KILN_OPT_ADAM, .lr = 0.1};
    kiln_optimizer *oa = kiln_optimizer_new(dev, &cfg);
    kiln_optimizer *ob[N];
    for (int i = 0; i < N; i++) {
        int64_t shape[1] = {3 + i};
        pa[i] = kiln_tensor_new(dev, t, 1, shape);
        pb[i] = kiln_tensor_new(dev, t, 1, shape);
        g[i] = kiln_tensor_new(dev, t, 1, shape);
        kiln_fill(pa[i], 1 + i);
        kiln_fill(pb[i], 1 + i);
        kiln_fill(g[i], 0.5 - 0.1 * i);
        ob[i] = kiln_optimizer_new(dev, &cfg);
    }
    CHECK(kiln_optimizer_step(oa, N, pa, g, -1) == KILN_OK,
          "12 parameters in one step: %s", kiln_error_message(dev));
    int same = 1;
    for (int i = 0; i < N; i++) {
        kiln_optimizer_step(ob[i], 1, &pb[i], &g[i], -1);
        double a[16], b[16];
        kiln_tensor *ca = kiln_cast(pa[i], KILN_F64);
        kiln_tensor *cb = kiln_cast(pb[i], KILN_F64);
        kiln_tensor_read(ca, a, sizeof(double) * (size_t)(3 + i));
        kiln_tensor_read(cb, b, sizeof(double) * (size_t)(3 + i));
        same &= memcmp(a, b, sizeof(double) * (size_t)(3 + i)) == 0;
        kiln_tensor_free(ca);
        kiln_tensor_free(cb);
        kiln_optimizer_free(ob[i]);
        kiln_tensor_free(pa[i]);
        kiln_tensor_free(pb[i]);
        kiln_tensor_free(g[i]);
    }
    CHECK(same, "%s: one 12-parameter step = 12 one-parameter steps",
          kiln_dtype_name(t));
    kiln_optimizer_free(oa);
}

/* A recorded step (kiln_optimizer_begin_step + capture) replayed for steps
 * 2..6 gives bit for bit the parameters and state of eager steps, for
 * every kind (Adam's bias corrections change every step). */
static void test_recorded_steps(kiln_dtype t)
{
    const int64_t shape[1] = {37};
    float f[37];
    double dv[37];
    for (int i = 0; i < 37; i++)
        dv[i] = 0.1 * ((i * 13) % 17) - 0.8;
    for (int i = 0; i < 37; i++)
        f[i] = (float)dv[i];
    const void *init = t == KILN_F64 ? (const void *)dv : (const void *)f;
    size_t bytes = 37 * kiln_dtype_size(t);
    for (int kind = KILN_OPT_SGD; kind <= KILN_OPT_ADADELTA; kind++) {
        kiln_optimizer_config cfg = {.kind = kind, .lr = 0.05,
                                     .weight_decay = 0.01};
        kiln_tensor *p[2], *g = kiln_tensor_from_data(dev, t, 1, shape, init,
                                                      bytes);
        kiln_optimizer *o[2];
        for (int k = 0; k < 2; k++) {
            p[k] = kiln_tensor_from_data(dev, t, 1, shape, init, bytes);
            o[k] = kiln_optimizer_new(dev, &cfg);
            kiln_optimizer_step(o[k], 1, &p[k], &g, 0.05); /* step 1 */
        }
        for (int step = 2; step <= 6; step++)
            kiln_optimizer_step(o[0], 1, &p[0], &g, 0.05 / step);
        CHECK(kiln_optimizer_begin_step(o[1], 0.05 / 2) == KILN_OK,
              "begin_step: %s", kiln_error_message(dev));
        kiln_recording_begin(dev);
        kiln_optimizer_step_prepared(o[1], 1, &p[1], &g);
        kiln_recording *rec = kiln_recording_end(dev);
        CHECK(rec && kiln_recording_dispatches(rec) == 1,
              "kind %d: the step records one kernel", kind);
        kiln_recording_replay(rec);
        for (int step = 3; step <= 6; step++) {
            kiln_optimizer_begin_step(o[1], 0.05 / step);
            kiln_recording_replay(rec);
        }
        /* An ordinary step after replays uses its own values. */
        kiln_optimizer_step(o[0], 1, &p[0], &g, 0.05 / 7);
        kiln_optimizer_step(o[1], 1, &p[1], &g, 0.05 / 7);
        unsigned char a[37 * 8], b[37 * 8];
        kiln_tensor_read(p[0], a, bytes);
        kiln_tensor_read(p[1], b, bytes);
        CHECK(memcmp(a, b, bytes) == 0 &&
                  kiln_optimizer_steps(o[0]) == kiln_optimizer_steps(o[1]),
              "%s kind %d: 5 replays + 1 step = 6 eager steps, bit for bit "
              "(steps %lld / %lld)", kiln_dtype_name(t), kind,
              (long long)kiln_optimizer_steps(o[0]),
              (long long)kiln_optimizer_steps(o[1]));
        kiln_tensor *st0[2] = {NULL, NULL}, *st1[2] = {NULL, NULL};
        int ns = kiln_optimizer_state(o[0], p[0], st0, 2);
        kiln_optimizer_state(o[1], p[1], st1, 2);
        for (int k = 0; k < ns; k++) {
            kiln_tensor_read(st0[k], a, bytes);
            kiln_tensor_read(st1[k], b, bytes);
            CHECK(memcmp(a, b, bytes) == 0, "kind %d: state %d equal", kind,
                  k);
        }
        kiln_recording_free(rec);
        for (int k = 0; k < 2; k++) {
            kiln_optimizer_free(o[k]);
            kiln_tensor_free(p[k]);
        }
        kiln_tensor_free(g);
    }
    /* Misuse: begin_step inside a capture; a first step inside a capture. */
    kiln_optimizer *o = kiln_optimizer_new(
        dev, &(kiln_optimizer_config){.kind = KILN_OPT_ADAM});
    kiln_tensor *p = kiln_tensor_new(dev, t, 1, shape);
    kiln_fill(p, 1);
    kiln_recording_begin(dev);
    CHECK(kiln_optimizer_begin_step(o, -1) == KILN_ERROR_INVALID_ARGUMENT,
          "begin_step is refused inside a capture");
    kiln_clear_error(dev);
    CHECK(kiln_optimizer_step_prepared(o, 1, &p, &p) != KILN_OK,
          "step_prepared without begin_step is refused");
    kiln_clear_error(dev);
    CHECK(kiln_optimizer_step(o, 1, &p, &p, -1) != KILN_OK &&
              strstr(kiln_error_message(dev), "first step"),
          "a first step inside a capture is refused: %s",
          kiln_error_message(dev));
    kiln_clear_error(dev);
    kiln_recording_free(kiln_recording_end(dev));
    kiln_clear_error(dev);
    kiln_optimizer_free(o);
    kiln_tensor_free(p);
}

int main(int argc, char **argv)
{
    dev = harness_open(harness_device(argc, argv), 64);
    kiln_context_options ro = {.device = "reference"};
    ref = kiln_context_create(&ro);
    have_f64 = kiln_context_device(dev)->fp64;
    kiln_dtype types[2] = {KILN_F32, KILN_F64};
    for (int i = 0; i < 1 + have_f64; i++) {
        test_optimizers(types[i]);
        test_set_steps(types[i]);
        test_clip(types[i]);
        test_init(types[i]);
        test_recorded_steps(types[i]);
        test_many_params(types[i]);
    }
    if (have_f64)
        test_course_gd();
    else
        printf("SKIP: course gradient descent needs f64\n");
    test_schedules();
    test_errors();
    CHECK(kiln_check_guards(dev) == KILN_OK, "guards: %s",
          kiln_error_message(dev));
    CHECK(kiln_validation_message_count(dev) == 0, "validation: %s",
          kiln_error_message(dev));
    kiln_context_destroy(ref);
    kiln_context_destroy(dev);
    return harness_exit();
}
