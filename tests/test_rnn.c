/*
 * test_rnn.c - recurrent layers (kiln_rnn_forward / _backward / _cell) on
 * one device against the C reference.
 *
 *  1. Every kind (RNN-tanh, RNN-relu, LSTM, LSTM + peepholes, GRU) x
 *     layers 1-2 x batch_first x T 1..5 x N 1..3, odd I and H, with biases,
 *     h0/c0, dy, dh_n, dc_n present or absent by turns: the outputs (y,
 *     h_n, c_n) and every gradient (dx, dh0, dc0, all weights) compared
 *     with the reference in f32 and (where the device has it) f64.
 *     Tolerance per output: |dev - ref| <= abs * max(1, max|ref|) +
 *     rel * |ref| with (abs, rel) = (2e-6, 2e-5) in f32, (1e-12, 1e-10) in
 *     f64; guard bytes and Vulkan validation are checked after each case.
 *  2. Numerical gradient checks on the reference in f64 (central
 *     differences, step 1e-6) of the loss sum(y r_y) + sum(h_n r_h) +
 *     sum(c_n r_c) for RNN-tanh, LSTM, LSTM with peepholes and GRU with 2
 *     layers: dx, dh0, dc0 and every weight; prints `gradcheck ...` lines.
 *  3. Dispatch counts of a forward pass (the launch-bound case).
 *  4. kiln_rnn_cell against a one-step kiln_rnn_forward; argument checks.
 */
#include "harness.h"

#define MAXOUT 20

static const char *const kind_names[] = {"rnn_tanh", "rnn_relu", "lstm",
                                         "gru"};

typedef struct rnn_case {
    kiln_rnn_kind kind;
    int peep, layers, bf, T, N, I, H;
    int bih, bhh, h0, c0, dy, dhn, dcn;
    kiln_dtype dtype;
    double *x, *hinit, *cinit, *ry, *rh, *rc;
    double *w[2][5]; /* per layer: w_ih, w_hh, b_ih, b_hh, w_peep */
    int64_t wlen[2][5];
} rnn_case;

typedef struct result {
    int n;
    char name[MAXOUT][24];
    double *v[MAXOUT];
    int64_t len[MAXOUT];
} result;

static int gates(kiln_rnn_kind k) { return k == KILN_LSTM ? 4 : k == KILN_GRU ? 3 : 1; }

static double *rand_array(harness_rng *r, int64_t n, double scale)
{
    double *a = malloc(sizeof *a * (size_t)(n ? n : 1));
    for (int64_t i = 0; i < n; i++)
        a[i] = harness_uniform(r, -scale, scale);
    return a;
}

static void case_fill(rnn_case *c, harness_rng *r)
{
    int64_t TN = (int64_t)c->T * c->N, LNH = (int64_t)c->layers * c->N * c->H;
    int64_t GH = (int64_t)gates(c->kind) * c->H;
    c->x = rand_array(r, TN * c->I, 1.0);
    c->hinit = rand_array(r, LNH, 0.8);
    c->cinit = rand_array(r, LNH, 0.8);
    c->ry = rand_array(r, TN * c->H, 1.0);
    c->rh = rand_array(r, LNH, 1.0);
    c->rc = rand_array(r, LNH, 1.0);
    for (int l = 0; l < c->layers; l++) {
        int64_t in = l ? c->H : c->I;
        int64_t len[5] = {GH * in, GH * c->H, GH, GH, 3 * c->H};
        for (int k = 0; k < 5; k++) {
            c->wlen[l][k] = len[k];
            c->w[l][k] = rand_array(r, len[k], 0.6);
        }
    }
}

static void case_free(rnn_case *c)
{
    free(c->x);
    free(c->hinit);
    free(c->cinit);
    free(c->ry);
    free(c->rh);
    free(c->rc);
    for (int l = 0; l < c->layers; l++)
        for (int k = 0; k < 5; k++)
            free(c->w[l][k]);
}

static void result_free(result *r)
{
    for (int i = 0; i < r->n; i++)
        free(r->v[i]);
    r->n = 0;
}

static kiln_tensor *make(kiln_context *ctx, kiln_dtype dt, int ndim,
                         const int64_t *shape, const double *data)
{
    int64_t n = 1;
    for (int i = 0; i < ndim; i++)
        n *= shape[i];
    if (dt == KILN_F64)
        return kiln_tensor_from_data(ctx, dt, ndim, shape, data,
                                     (size_t)n * 8);
    float *f = malloc(sizeof *f * (size_t)n);
    for (int64_t i = 0; i < n; i++)
        f[i] = (float)data[i];
    kiln_tensor *t = kiln_tensor_from_data(ctx, dt, ndim, shape, f,
                                           (size_t)n * 4);
    free(f);
    return t;
}

/* Appends @t's values under @name (NULL t: a failure unless !required). */
static int take(result *r, const char *name, kiln_tensor *t)
{
    if (!t)
        return 0;
    int64_t n = kiln_tensor_numel(t);
    size_t es = kiln_dtype_size(kiln_tensor_dtype(t));
    unsigned char *raw = malloc((size_t)n * es + 1);
    double *v = malloc(sizeof *v * (size_t)(n ? n : 1));
    int ok = kiln_tensor_read(t, raw, (size_t)n * es) == KILN_OK;
    for (int64_t i = 0; ok && i < n; i++) {
        if (es == 4) {
            float f;
            memcpy(&f, raw + i * 4, 4);
            v[i] = f;
        } else {
            memcpy(&v[i], raw + i * 8, 8);
        }
    }
    free(raw);
    snprintf(r->name[r->n], sizeof r->name[0], "%s", name);
    r->v[r->n] = v;
    r->len[r->n++] = n;
    kiln_tensor_free(t);
    return ok;
}

typedef struct built {
    kiln_tensor *x, *h0, *c0, *dy, *dhn, *dcn;
    kiln_rnn_weights w[2];
} built;

static void build(kiln_context *ctx, const rnn_case *c, built *b)
{
    kiln_dtype dt = c->dtype;
    int64_t L = c->layers, N = c->N, T = c->T, H = c->H, G = gates(c->kind);
    int64_t xs[3] = {c->bf ? N : T, c->bf ? T : N, c->I};
    int64_t ys[3] = {xs[0], xs[1], H}, ss[3] = {L, N, H};
    memset(b, 0, sizeof *b);
    b->x = make(ctx, dt, 3, xs, c->x);
    b->h0 = c->h0 ? make(ctx, dt, 3, ss, c->hinit) : NULL;
    b->c0 = c->c0 && c->kind == KILN_LSTM ? make(ctx, dt, 3, ss, c->cinit)
                                          : NULL;
    b->dy = c->dy ? make(ctx, dt, 3, ys, c->ry) : NULL;
    b->dhn = c->dhn ? make(ctx, dt, 3, ss, c->rh) : NULL;
    b->dcn = c->dcn && c->kind == KILN_LSTM ? make(ctx, dt, 3, ss, c->rc)
                                            : NULL;
    for (int l = 0; l < L; l++) {
        int64_t in = l ? H : c->I;
        b->w[l].w_ih = make(ctx, dt, 2, (int64_t[]){G * H, in}, c->w[l][0]);
        b->w[l].w_hh = make(ctx, dt, 2, (int64_t[]){G * H, H}, c->w[l][1]);
        if (c->bih)
            b->w[l].b_ih = make(ctx, dt, 1, (int64_t[]){G * H}, c->w[l][2]);
        if (c->bhh)
            b->w[l].b_hh = make(ctx, dt, 1, (int64_t[]){G * H}, c->w[l][3]);
        if (c->peep)
            b->w[l].w_peep = make(ctx, dt, 2, (int64_t[]){3, H}, c->w[l][4]);
    }
}

static void unbuild(built *b)
{
    kiln_tensor *all[] = {b->x, b->h0, b->c0, b->dy, b->dhn, b->dcn};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        kiln_tensor_free(all[i]);
    for (int l = 0; l < 2; l++) {
        kiln_tensor_free(b->w[l].w_ih);
        kiln_tensor_free(b->w[l].w_hh);
        kiln_tensor_free(b->w[l].b_ih);
        kiln_tensor_free(b->w[l].b_hh);
        kiln_tensor_free(b->w[l].w_peep);
    }
}

/* Forward + backward of @c on @ctx; every output into @r.  0 on error. */
static int run_case(kiln_context *ctx, const rnn_case *c, result *r)
{
    built b;
    static const char *const wn[5] = {"w_ih", "w_hh", "b_ih", "b_hh",
                                      "w_peep"};
    kiln_rnn_options o = {c->kind, c->layers, c->bf};
    kiln_tensor *hn = NULL, *cn = NULL, *dx = NULL, *dh0 = NULL, *dc0 = NULL;
    kiln_rnn_tape *tape = NULL;
    kiln_rnn_weights dw[2];
    int lstm = c->kind == KILN_LSTM, ok = 1;
    memset(r, 0, sizeof *r);
    build(ctx, c, &b);
    kiln_tensor *y = kiln_rnn_forward(b.x, b.h0, b.c0, b.w, &o, &hn,
                                      lstm ? &cn : NULL, &tape);
    ok &= take(r, "y", y) & take(r, "h_n", hn);
    if (lstm)
        ok &= take(r, "c_n", cn);
    if (ok && kiln_rnn_backward(tape, b.dy, b.dhn, b.dcn, &dx, &dh0,
                                lstm ? &dc0 : NULL, dw) == KILN_OK) {
        ok &= take(r, "dx", dx) & take(r, "dh0", dh0);
        if (lstm)
            ok &= take(r, "dc0", dc0);
        for (int l = 0; l < c->layers; l++) {
            kiln_tensor *g[5] = {dw[l].w_ih, dw[l].w_hh, dw[l].b_ih,
                                 dw[l].b_hh, dw[l].w_peep};
            int want[5] = {1, 1, c->bih, c->bhh, c->peep};
            for (int k = 0; k < 5; k++) {
                char name[24];
                snprintf(name, sizeof name, "l%d.%s", l, wn[k]);
                if (want[k])
                    ok &= take(r, name, g[k]);
                else if (g[k])
                    ok = 0;
            }
        }
    } else {
        ok = 0;
    }
    kiln_rnn_tape_free(tape);
    unbuild(&b);
    return ok;
}

static void describe(char *buf, size_t n, const rnn_case *c)
{
    snprintf(buf, n, "%s%s %s L%d bf%d T%d N%d I%d H%d bias%d%d h0%d c0%d "
             "dy%d dhn%d dcn%d", kind_names[c->kind], c->peep ? "+peep" : "",
             kiln_dtype_name(c->dtype), c->layers, c->bf, c->T, c->N, c->I,
             c->H, c->bih, c->bhh, c->h0, c->c0, c->dy, c->dhn, c->dcn);
}

static double worst_seen;

static int compare(const char *what, const result *d, const result *r,
                   double abs_tol, double rel_tol)
{
    if (d->n != r->n) {
        harness_fail("%s: %d outputs on the device, %d on the reference",
                     what, d->n, r->n);
        return 0;
    }
    for (int i = 0; i < r->n; i++) {
        double scale = 1;
        for (int64_t k = 0; k < r->len[i]; k++)
            scale = fmax(scale, fabs(r->v[i][k]));
        if (d->len[i] != r->len[i] || strcmp(d->name[i], r->name[i])) {
            harness_fail("%s: output %s differs in size", what, r->name[i]);
            return 0;
        }
        for (int64_t k = 0; k < r->len[i]; k++) {
            double a = d->v[i][k], b = r->v[i][k];
            double allowed = abs_tol * scale + rel_tol * fabs(b);
            double err = fabs(a - b);
            if (!(err <= allowed)) {
                harness_fail("%s: %s[%lld]: device %.9g, reference %.9g",
                             what, r->name[i], (long long)k, a, b);
                return 0;
            }
            if (err / allowed > worst_seen)
                worst_seen = err / allowed;
        }
    }
    return 1;
}

/* ---- 1: every configuration against the reference ------------------ */

static int check_one(kiln_context *dev, kiln_context *ref, rnn_case *c)
{
    char what[200];
    result rd, rr;
    describe(what, sizeof what, c);
    harness_checks++;
    int ok_r = run_case(ref, c, &rr), ok_d = run_case(dev, c, &rd);
    int ok = ok_r && ok_d;
    if (!ok)
        harness_fail("%s: %s failed: %s", what, ok_r ? "device" : "reference",
                     kiln_error_message(ok_r ? dev : ref));
    if (ok)
        ok = c->dtype == KILN_F32 ? compare(what, &rd, &rr, 2e-6, 2e-5)
                                  : compare(what, &rd, &rr, 1e-12, 1e-10);
    if (kiln_check_guards(dev) != KILN_OK ||
        kiln_check_guards(ref) != KILN_OK) {
        harness_fail("%s: guard bytes: %s %s", what, kiln_error_message(dev),
                     kiln_error_message(ref));
        ok = 0;
    }
    if (kiln_validation_message_count(dev) != 0) {
        harness_fail("%s: Vulkan validation: %s", what,
                     kiln_error_message(dev));
        ok = 0;
    }
    kiln_clear_error(dev);
    kiln_clear_error(ref);
    result_free(&rd);
    result_free(&rr);
    return ok;
}

static void test_all_configs(kiln_context *dev, kiln_context *ref,
                             kiln_dtype dt)
{
    static const int odd[] = {1, 3, 5};
    harness_rng rng = {dt == KILN_F32 ? 11u : 12u};
    int cases = 0, failed = 0, idx = 0;
    worst_seen = 0;
    for (int kp = 0; kp < 5; kp++)
        for (int L = 1; L <= 2; L++)
            for (int bf = 0; bf <= 1; bf++)
                for (int T = 1; T <= 5; T++)
                    for (int N = 1; N <= 3; N++, idx++) {
                        rnn_case c = {0};
                        c.kind = kp <= 2 ? (kiln_rnn_kind)kp
                               : kp == 3 ? KILN_LSTM : KILN_GRU;
                        c.peep = kp == 3;
                        c.layers = L;
                        c.bf = bf;
                        c.T = T;
                        c.N = N;
                        c.I = odd[harness_int(&rng, 0, 2)];
                        c.H = odd[harness_int(&rng, 0, 2)];
                        /* Optional parts by turns, so every combination
                         * of kind and presence is met. */
                        c.bih = idx % 2 == 0 || idx % 7 == 1;
                        c.bhh = idx % 3 != 1;
                        c.h0 = idx % 4 < 2;
                        c.c0 = idx % 5 < 3;
                        c.dy = idx % 6 != 5;
                        c.dhn = idx % 4 == 1 || idx % 4 == 2;
                        c.dcn = idx % 3 == 0;
                        c.dtype = dt;
                        case_fill(&c, &rng);
                        cases++;
                        failed += !check_one(dev, ref, &c);
                        case_free(&c);
                    }
    printf("%-5s rnn configs %s %4d cases, %d failed, worst error %.2f of "
           "tolerance\n", failed ? "FAIL" : "ok", kiln_dtype_name(dt), cases,
           failed, worst_seen);
}

/* ---- 2: numerical gradients on the reference --------------------------- */

static double dot(const double *a, const double *b, int64_t n)
{
    double s = 0;
    for (int64_t i = 0; i < n; i++)
        s += a[i] * b[i];
    return s;
}

/* sum(y ry) + sum(h_n rh) (+ sum(c_n rc)) by a forward pass of @c. */
static double loss(kiln_context *ctx, const rnn_case *c)
{
    built b;
    kiln_rnn_options o = {c->kind, c->layers, c->bf};
    kiln_tensor *hn = NULL, *cn = NULL;
    result r = {0};
    int lstm = c->kind == KILN_LSTM;
    build(ctx, c, &b);
    kiln_tensor *y = kiln_rnn_forward(b.x, b.h0, b.c0, b.w, &o, &hn,
                                      lstm ? &cn : NULL, NULL);
    int ok = take(&r, "y", y) & take(&r, "h_n", hn);
    if (lstm)
        ok &= take(&r, "c_n", cn);
    double s = NAN;
    if (ok) {
        s = dot(r.v[0], c->ry, r.len[0]) + dot(r.v[1], c->rh, r.len[1]);
        if (lstm)
            s += dot(r.v[2], c->rc, r.len[2]);
    }
    result_free(&r);
    unbuild(&b);
    return s;
}

static const double *find(const result *r, const char *name)
{
    for (int i = 0; i < r->n; i++)
        if (strcmp(r->name[i], name) == 0)
            return r->v[i];
    return NULL;
}

/* Max relative error of the analytic gradient @an of parameter array @p
 * (@n elements) against central differences. */
static double numeric_vs(kiln_context *ref, rnn_case *c, double *p, int64_t n,
                         const double *an)
{
    const double eps = 1e-6;
    double worst = 0;
    for (int64_t i = 0; i < n; i++) {
        double keep = p[i];
        p[i] = keep + eps;
        double lp = loss(ref, c);
        p[i] = keep - eps;
        double lm = loss(ref, c);
        p[i] = keep;
        double num = (lp - lm) / (2 * eps);
        double den = fmax(fmax(fabs(num), fabs(an[i])), 1e-3);
        double e = fabs(num - an[i]) / den;
        if (!(e <= worst))
            worst = isnan(e) ? INFINITY : e;
    }
    return worst;
}

typedef struct param {
    double *p;
    int64_t n;
    const char *g;  /* name of its gradient in the result */
} param;

static void gradcheck(kiln_context *ref, kiln_rnn_kind kind, int peep,
                      const char *name)
{
    harness_rng rng = {100u + (unsigned)kind + 10u * (unsigned)peep};
    rnn_case c = {.kind = kind, .peep = peep, .layers = 2, .bf = 1, .T = 3,
                  .N = 2, .I = 3, .H = 3, .bih = 1, .bhh = 1, .h0 = 1,
                  .c0 = 1, .dy = 1, .dhn = 1, .dcn = 1, .dtype = KILN_F64};
    result r;
    case_fill(&c, &rng);
    double worst = INFINITY;
    if (run_case(ref, &c, &r)) {
        worst = 0;
        param ps[16];
        int np = 0;
        int64_t LNH = (int64_t)c.layers * c.N * c.H;
        ps[np++] = (param){c.x, (int64_t)c.T * c.N * c.I, "dx"};
        ps[np++] = (param){c.hinit, LNH, "dh0"};
        if (kind == KILN_LSTM)
            ps[np++] = (param){c.cinit, LNH, "dc0"};
        static const char *const wn[5] = {"w_ih", "w_hh", "b_ih", "b_hh",
                                          "w_peep"};
        static char names[2][5][24];
        for (int l = 0; l < c.layers; l++)
            for (int k = 0; k < (peep ? 5 : 4); k++) {
                snprintf(names[l][k], sizeof names[l][k], "l%d.%s", l, wn[k]);
                ps[np++] = (param){c.w[l][k], c.wlen[l][k],
                                           names[l][k]};
            }
        for (int i = 0; i < np; i++) {
            const double *an = find(&r, ps[i].g);
            double e = an ? numeric_vs(ref, &c, ps[i].p, ps[i].n, an)
                          : INFINITY;
            CHECK(e < 1e-6, "gradcheck %s: %s max_rel_err %.3g", name,
                  ps[i].g, e);
            worst = fmax(worst, e);
        }
        result_free(&r);
    } else {
        harness_fail("gradcheck %s: %s", name, kiln_error_message(ref));
        kiln_clear_error(ref);
    }
    printf("gradcheck %s max_rel_err %.3g\n", name, worst);
    case_free(&c);
}

/* ---- 3: dispatch counts -------------------------------------------------- */

static uint64_t dispatches(kiln_context *ctx)
{
    kiln_context_stats st;
    kiln_context_get_stats(ctx, &st);
    return st.dispatches;
}

/*
 * The forward pass of T steps, per layer: 1 GEMM for the input projection
 * of all steps, then per step 1 GEMM (h_prev @ w_hh^T) + 1 fused cell
 * kernel (both biases, gates, state update, h written into the output) -
 * except that step 0 has no GEMM when h0 is zero.  A given h0 / c0 costs
 * one copy each (plus the step-0 GEMM).  So, time-major:
 *     h0 = c0 = NULL:        2T per layer       (1 + 2T - 1)
 *     h0 given:              2T + 2 per layer   (copy + 1 + 2T)
 *     h0 and c0 given (LSTM): 2T + 3 per layer
 * batch_first adds 2 (x to time-major, y back) unless T or N is 1; h_n
 * adds 1 per layer.
 */
static void test_dispatch_counts(kiln_context *dev)
{
    harness_rng rng = {7u};
    for (int kind = 0; kind <= KILN_GRU; kind++)
        for (int L = 1; L <= 2; L++)
            for (int T = 1; T <= 5; T += 2)
                for (int v = 0; v < 3; v++) {
                    rnn_case c = {.kind = (kiln_rnn_kind)kind, .layers = L,
                                  .bf = v == 2, .T = T, .N = 2, .I = 3,
                                  .H = 5, .bih = 1, .bhh = 1, .h0 = v == 1,
                                  .c0 = v == 1, .dtype = KILN_F32};
                    built b;
                    case_fill(&c, &rng);
                    build(dev, &c, &b);
                    kiln_rnn_options o = {c.kind, L, c.bf};
                    kiln_finish(dev);
                    uint64_t before = dispatches(dev);
                    kiln_tensor *y = kiln_rnn_forward(b.x, b.h0, b.c0, b.w,
                                                      &o, NULL, NULL, NULL);
                    uint64_t got = dispatches(dev) - before;
                    uint64_t per = 2 * (uint64_t)T;
                    if (v == 1)
                        per += 2 + (kind == KILN_LSTM);
                    /* T = 1: batch-first is time-major already. */
                    uint64_t want = per * (uint64_t)L +
                                    (v == 2 && T > 1 ? 2 : 0);
                    CHECK(y && got == want,
                          "dispatches of %s L%d T%d variant %d: %llu, "
                          "expected %llu (%s)", kind_names[kind], L, T, v,
                          (unsigned long long)got, (unsigned long long)want,
                          kiln_error_message(dev));
                    kiln_tensor_free(y);
                    unbuild(&b);
                    case_free(&c);
                }
    printf("ok    dispatch counts checked (2T per layer from zero state)\n");
}

/* ---- 4: one step, and argument checks ---------------------------------- */

/* kiln_rnn_cell(x0, h0, c0) must equal step 0 of a 1-layer forward with
 * the same initial state (both on @dev; compared with the reference too). */
static void test_cell(kiln_context *dev, kiln_context *ref, kiln_dtype dt)
{
    harness_rng rng = {21u};
    for (int kp = 0; kp < 5; kp++) {
        rnn_case c = {.kind = kp <= 2 ? (kiln_rnn_kind)kp
                              : kp == 3 ? KILN_LSTM : KILN_GRU,
                      .peep = kp == 3, .layers = 1, .T = 1, .N = 3, .I = 5,
                      .H = 3, .bih = 1, .bhh = kp != 1, .h0 = 1, .c0 = 1,
                      .dtype = dt};
        int lstm = c.kind == KILN_LSTM;
        case_fill(&c, &rng);
        result res[2] = {{0}, {0}};
        kiln_context *ctxs[2] = {dev, ref};
        for (int k = 0; k < 2; k++) {
            built b;
            build(ctxs[k], &c, &b);
            kiln_rnn_options o = {c.kind, 1, 0};
            kiln_tensor *cn = NULL, *cout = NULL;
            kiln_tensor *y = kiln_rnn_forward(b.x, b.h0, b.c0, b.w, &o, NULL,
                                              lstm ? &cn : NULL, NULL);
            int64_t nh[2] = {c.N, c.H}, ni[2] = {c.N, c.I};
            kiln_tensor *x2 = kiln_reshape(b.x, 2, ni);
            kiln_tensor *h2 = kiln_reshape(b.h0, 2, nh);
            kiln_tensor *c2 = lstm ? kiln_reshape(b.c0, 2, nh) : NULL;
            kiln_tensor *h = kiln_rnn_cell(x2, h2, c2, &b.w[0], c.kind,
                                           lstm ? &cout : NULL);
            take(&res[k], "seq h", y);
            take(&res[k], "cell h", h);
            if (lstm) {
                take(&res[k], "seq c", cn);
                take(&res[k], "cell c", cout);
            }
            kiln_tensor_free(x2);
            kiln_tensor_free(h2);
            kiln_tensor_free(c2);
            unbuild(&b);
        }
        char what[64];
        snprintf(what, sizeof what, "kiln_rnn_cell %s%s %s",
                 kind_names[c.kind], c.peep ? "+peep" : "",
                 kiln_dtype_name(dt));
        int want = lstm ? 4 : 2;
        CHECK(res[0].n == want && res[1].n == want, "%s: failed: %s", what,
              kiln_error_message(dev));
        if (res[0].n == want && res[1].n == want) {
            harness_checks++;
            compare(what, &res[0], &res[1], dt == KILN_F32 ? 2e-6 : 1e-12,
                    dt == KILN_F32 ? 2e-5 : 1e-10);
            for (int k = 0; k < want; k += 2)
                for (int64_t i = 0; i < res[0].len[k]; i++)
                    CHECK(res[0].v[k][i] == res[0].v[k + 1][i],
                          "%s: cell and sequence differ at %s[%lld]", what,
                          res[0].name[k], (long long)i);
        }
        kiln_clear_error(dev);
        kiln_clear_error(ref);
        result_free(&res[0]);
        result_free(&res[1]);
        case_free(&c);
    }
}

static void expect_error(kiln_context *ctx, kiln_tensor *got, kiln_status want,
                         const char *call, const char *what)
{
    CHECK(!got && kiln_status_of(ctx) == want &&
              strstr(kiln_error_message(ctx), call) != NULL,
          "%s: expected %s naming %s, got status %d: %s", what,
          kiln_status_string(want), call, (int)kiln_status_of(ctx),
          kiln_error_message(ctx));
    kiln_tensor_free(got);
    kiln_clear_error(ctx);
}

static void test_arguments(kiln_context *ctx)
{
    harness_rng rng = {5u};
    rnn_case c = {.kind = KILN_LSTM, .layers = 1, .T = 2, .N = 2, .I = 3,
                  .H = 3, .bih = 1, .bhh = 1, .h0 = 1, .dtype = KILN_F32};
    case_fill(&c, &rng);
    built b;
    build(ctx, &c, &b);
    kiln_rnn_options o = {KILN_LSTM, 1, 0};
    /* w_hh given as w_ih: [12, 3] is right for both here, so use a shape
     * that cannot fit: the input weights of another input size. */
    kiln_rnn_weights bad = b.w[0];
    bad.w_ih = b.w[0].w_hh;
    kiln_tensor *wrong = make(ctx, KILN_F32, 2, (int64_t[]){4, 3}, c.x);
    bad.w_ih = wrong;
    expect_error(ctx, kiln_rnn_forward(b.x, NULL, NULL, &bad, &o, NULL, NULL,
                                       NULL),
                 KILN_ERROR_SHAPE, "kiln_rnn_forward", "w_ih [4, 3]");
    bad = b.w[0];
    bad.w_peep = wrong;
    expect_error(ctx, kiln_rnn_forward(b.x, NULL, NULL, &bad, &o, NULL, NULL,
                                       NULL),
                 KILN_ERROR_SHAPE, "kiln_rnn_forward", "w_peep [4, 3]");
    expect_error(ctx, kiln_rnn_forward(b.x, b.w[0].w_ih, NULL, b.w, &o, NULL,
                                       NULL, NULL),
                 KILN_ERROR_SHAPE, "kiln_rnn_forward", "h0 of w_ih's shape");
    kiln_rnn_options gru = {KILN_GRU, 1, 0};
    expect_error(ctx, kiln_rnn_forward(b.x, NULL, NULL, b.w, &gru, NULL, NULL,
                                       NULL),
                 KILN_ERROR_SHAPE, "kiln_rnn_forward", "LSTM weights as GRU");
    expect_error(ctx, kiln_rnn_cell(b.x, b.h0, NULL, b.w, KILN_LSTM, NULL),
                 KILN_ERROR_SHAPE, "kiln_rnn_cell", "3-D x in the cell");
    /* NULL propagates without a new message when an error is stored. */
    kiln_tensor *fail = kiln_reshape(b.x, 2, (int64_t[]){5, 5});
    CHECK(!fail && kiln_status_of(ctx) == KILN_ERROR_SHAPE, "setup error");
    kiln_tensor *y = kiln_rnn_forward(fail, NULL, NULL, b.w, &o, NULL, NULL,
                                      NULL);
    CHECK(!y && strstr(kiln_error_message(ctx), "kiln_reshape"),
          "NULL x: the first error should stay: %s", kiln_error_message(ctx));
    kiln_clear_error(ctx);
    /* Backward: a dy of the wrong shape. */
    kiln_rnn_tape *tape = NULL;
    y = kiln_rnn_forward(b.x, b.h0, NULL, b.w, &o, NULL, NULL, &tape);
    kiln_tensor *dx = NULL;
    kiln_status s = kiln_rnn_backward(tape, b.h0, NULL, NULL, &dx, NULL,
                                      NULL, NULL);
    CHECK(y && s == KILN_ERROR_SHAPE && !dx &&
              strstr(kiln_error_message(ctx), "kiln_rnn_backward"),
          "backward with dy of h0's shape: %d %s", (int)s,
          kiln_error_message(ctx));
    kiln_clear_error(ctx);
    kiln_tensor_free(y);
    kiln_rnn_tape_free(tape);
    kiln_tensor_free(wrong);
    unbuild(&b);
    case_free(&c);
    printf("ok    argument checks\n");
}

int main(int argc, char **argv)
{
    const char *spec = harness_device(argc, argv);
    kiln_context *dev = harness_open(spec, 64);
    kiln_context *ref = harness_open("reference", 64);
    int fp64 = kiln_context_device(dev)->fp64;
    test_all_configs(dev, ref, KILN_F32);
    if (fp64)
        test_all_configs(dev, ref, KILN_F64);
    test_cell(dev, ref, KILN_F32);
    if (fp64)
        test_cell(dev, ref, KILN_F64);
    test_dispatch_counts(dev);
    test_arguments(dev);
    if (kiln_context_device(dev)->backend == KILN_BACKEND_REFERENCE) {
        gradcheck(ref, KILN_RNN_TANH, 0, "rnn_tanh");
        gradcheck(ref, KILN_LSTM, 0, "lstm");
        gradcheck(ref, KILN_LSTM, 1, "lstm_peephole");
        gradcheck(ref, KILN_GRU, 0, "gru");
    }
    kiln_context_destroy(ref);
    kiln_context_destroy(dev);
    return harness_exit();
}
