/*
 * test_shape.c - concat, pad, flatten and sum_to_shape on the device under
 * test against the C reference (every dtype, odd sizes, size-0 inputs,
 * non-contiguous views), exact values of small worked examples, argument
 * errors, and f64 gradient checks on the reference.
 *
 * usage: test_shape --device SPEC
 */
#include "norm_testutil.h"

static kiln_context *dev, *ref;

static const tolerance exact = {0, 0, 0};
static const kiln_dtype dtypes[] = {KILN_F32, KILN_I32, KILN_F64};

/* ---- concat ------------------------------------------------------------- */

typedef struct concat_arg {
    int n, axis;
} concat_arg;

static kiln_tensor *call_concat(kiln_tensor **in, const void *arg)
{
    const concat_arg *c = arg;
    return kiln_concat(in, c->n, c->axis);
}

static void test_concat(void)
{
    op_stats st = {0};
    for (size_t ti = 0; ti < 3; ti++) {
        kiln_dtype t = dtypes[ti];
        for (int c = 0; c < 12; c++) {
            int ndim = 1 + c % 4;
            int64_t base[4] = {3, 5, 2, 7};
            concat_arg a = {.n = 2 + c % 3, .axis = c % ndim};
            if (c % 5 == 4)
                a.axis -= ndim; /* negative axes count from the end */
            op_input in[4];
            for (int i = 0; i < a.n; i++) {
                int64_t s[4];
                memcpy(s, base, sizeof s);
                /* Odd calls give input 2 a size-0 axis. */
                s[(a.axis + ndim) % ndim] = i == 1 && c % 2 ? 0
                                                            : 1 + (c + i) % 4;
                in[i] = input(t, ndim, s, (enum view_kind)((c + i) % 3), -50,
                              50);
            }
            char name[64];
            snprintf(name, sizeof name, "concat %s case %d (%d inputs)",
                     kiln_dtype_name(t), c, a.n);
            check_op(&st, dev, ref, name, a.n, in, call_concat, &a, exact);
            for (int i = 0; i < a.n; i++)
                free(in[i].data);
        }
    }
    report("concat", &st);
}

/* ---- pad ---------------------------------------------------------------- */

typedef struct pad_arg {
    int npad;
    int64_t pads[8];
    double value;
} pad_arg;

static kiln_tensor *call_pad(kiln_tensor **in, const void *arg)
{
    const pad_arg *p = arg;
    return kiln_pad(in[0], p->npad, p->pads, p->value);
}

static void test_pad(void)
{
    op_stats st = {0};
    for (size_t ti = 0; ti < 3; ti++) {
        kiln_dtype t = dtypes[ti];
        for (int c = 0; c < 10; c++) {
            int ndim = c == 9 ? 0 : 1 + c % 4;
            int64_t s[4] = {2, 3, 5, 4};
            if (c == 8)
                s[0] = 0; /* empty input: all padding */
            pad_arg p = {.npad = ndim ? 1 + c % ndim : 0,
                         .value = c % 3 == 0 ? 0 : c % 3 == 1 ? -1.5 : 7};
            for (int i = 0; i < 2 * p.npad; i++)
                p.pads[i] = harness_int(&rng, 0, 3);
            op_input in = input(t, ndim, s, (enum view_kind)(c % 3), -9, 9);
            char name[64];
            snprintf(name, sizeof name, "pad %s case %d", kiln_dtype_name(t),
                     c);
            check_op(&st, dev, ref, name, 1, &in, call_pad, &p, exact);
            free(in.data);
        }
    }
    report("pad", &st);
}

/* ---- flatten ------------------------------------------------------------ */

typedef struct flatten_arg {
    int start, end;
} flatten_arg;

static kiln_tensor *call_flatten(kiln_tensor **in, const void *arg)
{
    const flatten_arg *f = arg;
    return kiln_flatten(in[0], f->start, f->end);
}

static void test_flatten(void)
{
    op_stats st = {0};
    static const flatten_arg args[] = {{0, -1}, {1, -1}, {1, 2}, {-2, -1},
                                       {0, 0}, {2, 3}};
    for (size_t ti = 0; ti < 3; ti++) {
        for (size_t a = 0; a < sizeof args / sizeof *args; a++) {
            int64_t s[4] = {2, 3, 5, 3};
            op_input in = input(dtypes[ti], 4, s, (enum view_kind)(a % 3), -9,
                                9);
            check_op(&st, dev, ref, "flatten", 1, &in, call_flatten, &args[a],
                     exact);
            free(in.data);
        }
    }
    report("flatten", &st);
    /* Shapes, which check_op only compares between backends. */
    int64_t s4[4] = {2, 3, 4, 5}, got[KILN_MAX_DIMS];
    kiln_tensor *x = kiln_tensor_new(dev, KILN_F32, 4, s4);
    kiln_tensor *f = kiln_flatten(x, 1, 2);
    int nd = kiln_tensor_shape(f, got);
    CHECK(nd == 3 && got[0] == 2 && got[1] == 12 && got[2] == 5,
          "flatten(1, 2) of [2,3,4,5]");
    kiln_tensor_free(f);
    f = kiln_flatten(x, 1, -1);
    nd = kiln_tensor_shape(f, got);
    CHECK(nd == 2 && got[0] == 2 && got[1] == 60, "flatten(1, -1)");
    kiln_tensor_free(f);
    CHECK(kiln_flatten(x, 2, 1) == NULL &&
              kiln_status_of(dev) == KILN_ERROR_INVALID_ARGUMENT,
          "flatten(2, 1) is refused");
    kiln_clear_error(dev);
    kiln_tensor_free(x);
    kiln_tensor *sc = kiln_tensor_new(dev, KILN_F32, 0, NULL);
    f = kiln_flatten(sc, 0, -1);
    nd = kiln_tensor_shape(f, got);
    CHECK(f && nd == 1 && got[0] == 1, "flatten of a scalar is [1]");
    kiln_tensor_free(f);
    kiln_tensor_free(sc);
}

/* ---- sum_to_shape ------------------------------------------------------- */

typedef struct sts_arg {
    int ndim;
    int64_t shape[KILN_MAX_DIMS];
} sts_arg;

static kiln_tensor *call_sts(kiln_tensor **in, const void *arg)
{
    const sts_arg *s = arg;
    return kiln_sum_to_shape(in[0], s->ndim, s->shape);
}

/* (broadcast shape, target) pairs: leading dims, size-1 dims, both,
 * nothing to do, 0-D target. */
static const struct {
    int nb, nt;
    int64_t b[5], t[5];
} sts_pairs[] = {
    {2, 1, {4, 7}, {7}},
    {2, 2, {4, 7}, {4, 1}},
    {3, 2, {3, 5, 6}, {1, 6}},
    {4, 3, {2, 3, 1, 5}, {3, 1, 1}},
    {2, 2, {3, 4}, {3, 4}},
    {3, 0, {2, 3, 4}, {0}},
    {5, 3, {2, 1, 3, 4, 5}, {3, 1, 5}},
    {2, 2, {1000, 3}, {1, 3}},
};

static void test_sum_to_shape(void)
{
    op_stats st = {0};
    for (size_t ti = 0; ti < 3; ti++) {
        kiln_dtype t = dtypes[ti];
        double eps = t == KILN_F32 ? 6e-8 : 1.2e-16;
        tolerance tol = {0, 0, t == KILN_I32 ? 0 : 64 * eps};
        for (size_t p = 0; p < sizeof sts_pairs / sizeof *sts_pairs; p++) {
            sts_arg a = {.ndim = sts_pairs[p].nt};
            memcpy(a.shape, sts_pairs[p].t, sizeof sts_pairs[p].t);
            op_input in = input(t, sts_pairs[p].nb, sts_pairs[p].b,
                                (enum view_kind)(p % 3), -20, 20);
            char name[64];
            snprintf(name, sizeof name, "sum_to_shape %s case %zu",
                     kiln_dtype_name(t), p);
            check_op(&st, dev, ref, name, 1, &in, call_sts, &a, tol);
            free(in.data);
        }
    }
    report("sum_to_shape", &st);
}

/* sum_to_shape(broadcast_to(x, S), shape(x)) == x * (numel(S) / numel(x)),
 * exactly for small integers in f32. */
static void test_sum_to_shape_inverts_broadcast(void)
{
    for (size_t p = 0; p < sizeof sts_pairs / sizeof *sts_pairs; p++) {
        int nt = sts_pairs[p].nt, nb = sts_pairs[p].nb;
        int64_t n = shape_numel(nt, sts_pairs[p].t);
        double *v = random_data(n, KILN_I32, -9, 9);
        kiln_tensor *x = tensor_of(dev, KILN_F32, nt, sts_pairs[p].t, v);
        kiln_tensor *b = kiln_broadcast_to(x, nb, sts_pairs[p].b);
        kiln_tensor *s = kiln_sum_to_shape(b, nt, sts_pairs[p].t);
        int64_t got_n = -1;
        double *got = s ? read_doubles(s, &got_n) : NULL;
        double rep = (double)shape_numel(nb, sts_pairs[p].b) / (double)n;
        int ok = got && got_n == n;
        for (int64_t i = 0; ok && i < n; i++)
            ok = got[i] == v[i] * rep;
        CHECK(ok, "sum_to_shape inverts broadcast_to, pair %zu: %s", p,
              kiln_error_message(dev));
        free(got);
        free(v);
        kiln_tensor_free(s);
        kiln_tensor_free(b);
        kiln_tensor_free(x);
    }
}

/* ---- worked examples and errors ----------------------------------------- */

static void expect_values(kiln_tensor *t, const double *want, int64_t n,
                          const char *what)
{
    int64_t got_n = -1;
    double *got = t ? read_doubles(t, &got_n) : NULL;
    int ok = got && got_n == n;
    for (int64_t i = 0; ok && i < n; i++)
        ok = got[i] == want[i];
    CHECK(ok, "%s: wrong values (%s)", what, kiln_error_message(dev));
    free(got);
}

static void test_examples_and_errors(void)
{
    int64_t s12[2] = {1, 2}, s22[2] = {2, 2}, s3[1] = {3};
    double a[] = {1, 2}, b[] = {3, 4, 5, 6}, c[] = {1, 2, 3};
    kiln_tensor *ta = tensor_of(dev, KILN_F32, 2, s12, a);
    kiln_tensor *tb = tensor_of(dev, KILN_F32, 2, s22, b);
    kiln_tensor *pair[2] = {ta, tb};
    kiln_tensor *cat = kiln_concat(pair, 2, 0);
    static const double want_cat[] = {1, 2, 3, 4, 5, 6};
    expect_values(cat, want_cat, 6, "concat([[1,2]], [[3,4],[5,6]], 0)");
    kiln_tensor_free(cat);
    CHECK(kiln_concat(pair, 2, 1) == NULL &&
              kiln_status_of(dev) == KILN_ERROR_SHAPE,
          "concat of [1,2] and [2,2] along 1 is refused");
    kiln_clear_error(dev);
    kiln_tensor *tc = tensor_of(dev, KILN_F32, 1, s3, c);
    int64_t pads[2] = {2, 1};
    kiln_tensor *pd = kiln_pad(tc, 1, pads, -1);
    static const double want_pad[] = {-1, -1, 1, 2, 3, -1};
    expect_values(pd, want_pad, 6, "pad([1,2,3], (2,1), -1)");
    kiln_tensor_free(pd);
    int64_t neg[2] = {-1, 0};
    CHECK(kiln_pad(tc, 1, neg, 0) == NULL &&
              kiln_status_of(dev) == KILN_ERROR_INVALID_ARGUMENT,
          "negative pad is refused");
    kiln_clear_error(dev);
    int64_t bad[1] = {3};
    CHECK(kiln_sum_to_shape(tb, 1, bad) == NULL &&
              kiln_status_of(dev) == KILN_ERROR_SHAPE,
          "sum_to_shape [2,2] -> [3] is refused");
    kiln_clear_error(dev);
    kiln_tensor_free(ta);
    kiln_tensor_free(tb);
    kiln_tensor_free(tc);
}

/* ---- split and slice_backward ------------------------------------------ */

typedef struct slice_arg {
    int dim;
    int64_t start, stop, step;
} slice_arg;

static kiln_tensor *call_slice_backward(kiln_tensor **in, const void *arg)
{
    const slice_arg *a = arg;
    int64_t s[KILN_MAX_DIMS];
    int nd = kiln_tensor_shape(in[1], s); /* in[1]: a tensor of x's shape */
    return kiln_slice_backward(in[0], nd, s, a->dim, a->start, a->stop,
                               a->step);
}

static void test_slice_backward(void)
{
    op_stats st = {0};
    for (int c = 0; c < 12; c++) {
        int64_t xs[3] = {2 + c % 3, 3 + c % 4, 5 + c % 5};
        slice_arg a = {.dim = c % 3, .start = c % 2, .stop = -(c % 3) - 0,
                       .step = 1 + c % 3};
        if (a.stop == 0)
            a.stop = xs[a.dim];
        int64_t n = xs[a.dim], lo = a.start, hi = a.stop < 0 ? a.stop + n
                                                            : a.stop;
        int64_t ys[3] = {xs[0], xs[1], xs[2]};
        ys[a.dim] = hi > lo ? (hi - lo + a.step - 1) / a.step : 0;
        kiln_dtype t = c % 2 ? KILN_F64 : KILN_F32;
        op_input in[2] = {input(t, 3, ys, (enum view_kind)(c % 3), -1, 1),
                          input(t, 3, xs, VIEW_PLAIN, 0, 1)};
        char name[64];
        snprintf(name, sizeof name, "slice_backward case %d", c);
        check_op(&st, dev, ref, name, 2, in, call_slice_backward, &a, exact);
        free(in[0].data);
        free(in[1].data);
    }
    report("slice_backward", &st);
}

static void test_split(void)
{
    double v[12];
    for (int i = 0; i < 12; i++)
        v[i] = i;
    kiln_tensor *t = kiln_tensor_from_data(dev, KILN_F64, 2, (int64_t[]){3, 4},
                                           v, sizeof v);
    kiln_tensor *parts[3];
    CHECK(kiln_split(t, -1, 3, (int64_t[]){1, 0, 3}, parts) == KILN_OK,
          "split [3,4] into 1, 0, 3 columns");
    double want0[3] = {0, 4, 8}, want2[9] = {1, 2, 3, 5, 6, 7, 9, 10, 11};
    expect_values(parts[0], want0, 3, "split part 0");
    CHECK(kiln_tensor_numel(parts[1]) == 0, "split part 1 is empty");
    expect_values(parts[2], want2, 9, "split part 2");
    for (int i = 0; i < 3; i++)
        kiln_tensor_free(parts[i]);
    CHECK(kiln_split(t, 0, 2, (int64_t[]){1, 1}, parts) == KILN_ERROR_SHAPE &&
              parts[0] == NULL && parts[1] == NULL &&
              strstr(kiln_error_message(dev), "add up to 2"),
          "split sizes must add up: %s", kiln_error_message(dev));
    kiln_clear_error(dev);
    kiln_tensor_free(t);
}

/* ---- gradient checks ---------------------------------------------------- */

/* Backward of concat: slices of r. */
static void back_concat(kiln_tensor **in, kiln_tensor *r, const void *arg,
                        kiln_tensor **g)
{
    const concat_arg *c = arg;
    int64_t at = 0;
    for (int i = 0; i < c->n; i++) {
        int64_t len = kiln_tensor_dim(in[i], c->axis);
        kiln_tensor *v = kiln_slice(r, c->axis, at, at + len, 1);
        g[i] = kiln_contiguous_copy(v);
        kiln_tensor_free(v);
        at += len;
    }
}

static void back_pad(kiln_tensor **in, kiln_tensor *r, const void *arg,
                     kiln_tensor **g)
{
    const pad_arg *p = arg;
    int nd = kiln_tensor_ndim(in[0]);
    kiln_tensor *v = kiln_slice(r, 0, 0, kiln_tensor_dim(r, 0), 1);
    for (int i = 0; i < p->npad; i++) {
        int d = nd - p->npad + i;
        int64_t at = p->pads[2 * i];
        kiln_tensor *next = kiln_slice(v, d, at,
                                       at + kiln_tensor_dim(in[0], d), 1);
        kiln_tensor_free(v);
        v = next;
    }
    g[0] = kiln_contiguous_copy(v);
    kiln_tensor_free(v);
}

/* Backward of sum_to_shape: r broadcast back to x's shape. */
static void back_sts(kiln_tensor **in, kiln_tensor *r, const void *arg,
                     kiln_tensor **g)
{
    (void)arg;
    int64_t s[KILN_MAX_DIMS];
    int nd = kiln_tensor_shape(in[0], s);
    kiln_tensor *b = kiln_broadcast_to(r, nd, s);
    g[0] = kiln_contiguous_copy(b);
    kiln_tensor_free(b);
}

static kiln_tensor *call_slice(kiln_tensor **in, const void *arg)
{
    const slice_arg *a = arg;
    kiln_tensor *v = kiln_slice(in[0], a->dim, a->start, a->stop, a->step);
    kiln_tensor *c = kiln_contiguous_copy(v);
    kiln_tensor_free(v);
    return c;
}

static void back_slice(kiln_tensor **in, kiln_tensor *r, const void *arg,
                       kiln_tensor **g)
{
    const slice_arg *a = arg;
    int64_t s[KILN_MAX_DIMS];
    int nd = kiln_tensor_shape(in[0], s);
    g[0] = kiln_slice_backward(r, nd, s, a->dim, a->start, a->stop, a->step);
}

static void test_gradients(void)
{
    int64_t s1[3] = {2, 3, 4}, s2[3] = {2, 1, 4}, s3[3] = {2, 5, 4};
    gc_input cin[3] = {gc_random(3, s1, -1, 1), gc_random(3, s2, -1, 1),
                       gc_random(3, s3, -1, 1)};
    concat_arg ca = {3, 1};
    gradcheck(ref, "concat", 3, cin, call_concat, back_concat, &ca, 1e-7);
    int64_t ps[3] = {2, 3, 3};
    gc_input pin = gc_random(3, ps, -1, 1);
    pad_arg pa = {.npad = 2, .pads = {1, 0, 2, 1}, .value = 0.5};
    gradcheck(ref, "pad", 1, &pin, call_pad, back_pad, &pa, 1e-7);
    int64_t bs[3] = {3, 4, 5};
    gc_input sin = gc_random(3, bs, -1, 1);
    sts_arg sa = {.ndim = 2, .shape = {4, 1}};
    gradcheck(ref, "sum_to_shape", 1, &sin, call_sts, back_sts, &sa, 1e-7);
    gc_input xin = gc_random(3, bs, -1, 1);
    slice_arg sl = {.dim = 2, .start = 1, .stop = -1, .step = 2};
    gradcheck(ref, "slice", 1, &xin, call_slice, back_slice, &sl, 1e-7);
    free(xin.data);
    for (int i = 0; i < 3; i++)
        free(cin[i].data);
    free(pin.data);
    free(sin.data);
}

int main(int argc, char **argv)
{
    const char *spec = harness_device(argc, argv);
    dev = harness_open(spec, 256);
    ref = harness_open("reference", 256);
    test_concat();
    test_pad();
    test_flatten();
    test_sum_to_shape();
    test_sum_to_shape_inverts_broadcast();
    test_examples_and_errors();
    test_slice_backward();
    test_split();
    test_gradients();
    kiln_context_destroy(dev);
    kiln_context_destroy(ref);
    return harness_exit();
}
