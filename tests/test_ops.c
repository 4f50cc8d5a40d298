/*
 * test_ops.c - every op, every dtype, on the device under test against the
 * C reference: random shapes (odd sizes, size 1, 0-D, broadcasting edge
 * cases, up to 6-D) and non-contiguous views.
 *
 * usage: test_ops --device SPEC [--seed N]
 */
#include "op_check.h"

static harness_rng rng = {2026};
static kiln_context *dev, *ref;

/* f32 results are computed in double by the reference and rounded once;
 * devices compute in float.  1 ulp of f32 is 6e-8 relative. */
static const tolerance exact = {0, 0, 0};
static const tolerance f32_arith = {0, 4e-7, 0}; /* 2.5 ulp division */
static const tolerance f32_transcendental = {1e-6, 1e-5, 0};
static const tolerance f64_arith = {0, 1e-15, 0};
static const tolerance f64_transcendental = {1e-14, 1e-13, 0};

static const kiln_dtype dtypes[] = {KILN_F32, KILN_I32, KILN_F64};

static op_input input(kiln_dtype t, int ndim, const int64_t *shape,
                      enum view_kind view, double lo, double hi)
{
    return op_random_input(&rng, t, ndim, shape, view, lo, hi);
}

static void random_shape(int *ndim, int64_t *shape, int maxdim)
{
    *ndim = harness_int(&rng, 0, 4);
    for (int i = 0; i < *ndim; i++) {
        int pick = harness_int(&rng, 0, 5);
        shape[i] = pick == 0 ? 1 : harness_int(&rng, 2, maxdim);
    }
}

/* ---- binary ---------------------------------------------------------- */

typedef kiln_tensor *(*binary_fn)(kiln_tensor *, kiln_tensor *);
static kiln_tensor *cmp_eq(kiln_tensor *a, kiln_tensor *b) { return kiln_compare(a, b, KILN_EQ); }
static kiln_tensor *cmp_ne(kiln_tensor *a, kiln_tensor *b) { return kiln_compare(a, b, KILN_NE); }
static kiln_tensor *cmp_lt(kiln_tensor *a, kiln_tensor *b) { return kiln_compare(a, b, KILN_LT); }
static kiln_tensor *cmp_le(kiln_tensor *a, kiln_tensor *b) { return kiln_compare(a, b, KILN_LE); }
static kiln_tensor *cmp_gt(kiln_tensor *a, kiln_tensor *b) { return kiln_compare(a, b, KILN_GT); }
static kiln_tensor *cmp_ge(kiln_tensor *a, kiln_tensor *b) { return kiln_compare(a, b, KILN_GE); }

static const struct {
    const char *name;
    binary_fn fn;
    int float_only, transcendental, exact;
} binaries[] = {
    {"add", kiln_add, 0, 0, 0},          {"sub", kiln_sub, 0, 0, 0},
    {"mul", kiln_mul, 0, 0, 0},          {"div", kiln_div, 0, 0, 0},
    {"minimum", kiln_minimum, 0, 0, 1},  {"maximum", kiln_maximum, 0, 0, 1},
    {"pow", kiln_pow, 1, 1, 0},          {"eq", cmp_eq, 0, 0, 1},
    {"ne", cmp_ne, 0, 0, 1},             {"lt", cmp_lt, 0, 0, 1},
    {"le", cmp_le, 0, 0, 1},             {"gt", cmp_gt, 0, 0, 1},
    {"ge", cmp_ge, 0, 0, 1},
};

static kiln_tensor *call_binary(kiln_tensor **in, const void *arg)
{
    return ((binary_fn)(uintptr_t)arg)(in[0], in[1]);
}

/* Shapes that exercise broadcasting: equal, scalar, leading, size-1 axes
 * on both sides, 6-D. */
static const struct { int na, nb; int64_t a[6], b[6]; } pairs[] = {
    {0, 0, {0}, {0}},
    {1, 1, {7}, {7}},
    {1, 0, {5}, {0}},
    {1, 1, {1}, {9}},
    {2, 2, {5, 1}, {1, 3}},
    {3, 1, {2, 3, 4}, {4}},
    {3, 3, {3, 1, 5}, {3, 4, 1}},
    {2, 2, {17, 33}, {17, 33}},
    {6, 6, {2, 1, 3, 1, 2, 3}, {1, 2, 1, 2, 2, 1}},
    {4, 2, {2, 3, 1, 65}, {7, 1}},
};

static tolerance tol_for(kiln_dtype t, int transcendental, int is_exact)
{
    if (t == KILN_I32 || is_exact)
        return exact;
    if (t == KILN_F32)
        return transcendental ? f32_transcendental : f32_arith;
    return transcendental ? f64_transcendental : f64_arith;
}

static void test_binary(void)
{
    for (size_t ti = 0; ti < 3; ti++) {
        kiln_dtype t = dtypes[ti];
        op_stats st = {0};
        for (size_t o = 0; o < sizeof binaries / sizeof *binaries; o++) {
            if (binaries[o].float_only && t == KILN_I32)
                continue;
            int is_pow = strcmp(binaries[o].name, "pow") == 0;
            int is_div = strcmp(binaries[o].name, "div") == 0;
            for (size_t p = 0; p < sizeof pairs / sizeof *pairs; p++) {
                enum view_kind va = p % 3 == 1 ? VIEW_STRIDED
                                  : p % 3 == 2 ? VIEW_TRANSPOSED : VIEW_PLAIN;
                double lo = is_pow ? 0.25 : -8, hi = is_pow ? 3 : 8;
                op_input in[2] = {
                    input(t, pairs[p].na, pairs[p].a, va, lo, hi),
                    input(t, pairs[p].nb, pairs[p].b, VIEW_PLAIN,
                          is_pow ? -2.5 : lo, is_pow ? 2.5 : hi)};
                /* Float division by values near 0 amplifies rounding
                 * differences; keep divisors away from 0 (integers keep
                 * zeros: x / 0 = 0 is part of the contract). */
                if (is_div && t != KILN_I32)
                    for (int64_t i = 0; i < base_numel(&in[1]); i++)
                        in[1].data[i] = in[1].data[i] < 0 ? in[1].data[i] - 0.5
                                                          : in[1].data[i] + 0.5;
                /* Equal values make comparisons interesting. */
                if (binaries[o].exact && base_numel(&in[1]) > 0)
                    in[0].data[0] = in[1].data[0];
                char name[96];
                snprintf(name, sizeof name, "%s %s case %zu", binaries[o].name,
                         kiln_dtype_name(t), p);
                check_op(&st, dev, ref, name, 2, in, call_binary,
                         (const void *)(uintptr_t)binaries[o].fn,
                         tol_for(t, binaries[o].transcendental,
                                 binaries[o].exact));
                free(in[0].data);
                free(in[1].data);
            }
        }
        char group[64];
        snprintf(group, sizeof group, "binary %s", kiln_dtype_name(t));
        report(group, &st);
    }
}

/* ---- unary ----------------------------------------------------------- */

typedef kiln_tensor *(*unary_fn)(kiln_tensor *);
static const struct {
    const char *name;
    unary_fn fn;
    int float_only;
    double lo, hi;
} unaries[] = {
    {"neg", kiln_neg, 0, -9, 9},        {"abs", kiln_abs, 0, -9, 9},
    {"square", kiln_square, 0, -9, 9},  {"relu", kiln_relu, 0, -9, 9},
    {"exp", kiln_exp, 1, -20, 20},      {"log", kiln_log, 1, 1e-3, 1e3},
    {"sqrt", kiln_sqrt, 1, 0, 1e3},     {"sigmoid", kiln_sigmoid, 1, -40, 40},
    {"tanh", kiln_tanh, 1, -12, 12},
};

static kiln_tensor *call_unary(kiln_tensor **in, const void *arg)
{
    return ((unary_fn)(uintptr_t)arg)(in[0]);
}

static void test_unary(void)
{
    for (size_t ti = 0; ti < 3; ti++) {
        kiln_dtype t = dtypes[ti];
        op_stats st = {0};
        for (size_t o = 0; o < sizeof unaries / sizeof *unaries; o++) {
            if (unaries[o].float_only && t == KILN_I32)
                continue;
            for (int c = 0; c < 6; c++) {
                int ndim;
                int64_t shape[KILN_MAX_DIMS];
                random_shape(&ndim, shape, 40);
                op_input in = input(t, ndim, shape, (enum view_kind)(c % 3),
                                    unaries[o].lo, unaries[o].hi);
                char name[96];
                snprintf(name, sizeof name, "%s %s case %d", unaries[o].name,
                         kiln_dtype_name(t), c);
                check_op(&st, dev, ref, name, 1, &in, call_unary,
                         (const void *)(uintptr_t)unaries[o].fn,
                         tol_for(t, unaries[o].float_only,
                                 !unaries[o].float_only));
                free(in.data);
            }
        }
        char group[64];
        snprintf(group, sizeof group, "unary %s", kiln_dtype_name(t));
        report(group, &st);
    }
}

/* ---- select, fill, cast, copy ------------------------------------------ */

static kiln_tensor *call_select(kiln_tensor **in, const void *arg)
{
    (void)arg;
    kiln_tensor *cond = kiln_compare(in[0], in[1], KILN_GT);
    kiln_tensor *r = kiln_select(cond, in[1], in[2]);
    kiln_tensor_free(cond);
    return r;
}

static kiln_tensor *call_fill(kiln_tensor **in, const void *arg)
{
    /* Fill a strided view of a copy, so untouched elements must survive. */
    kiln_tensor *c = kiln_contiguous_copy(in[0]);
    kiln_tensor *v = kiln_slice(c, -1, 1, -1, 2);
    kiln_fill(v, *(const double *)arg);
    kiln_tensor_free(v);
    return c;
}

static kiln_tensor *call_cast(kiln_tensor **in, const void *arg)
{
    return kiln_cast(in[0], *(const kiln_dtype *)arg);
}

static kiln_tensor *call_copy_into_view(kiln_tensor **in, const void *arg)
{
    (void)arg;
    /* dst is a transposed view of a fresh tensor: a strided write. */
    int64_t shape[2] = {kiln_tensor_dim(in[0], 1), kiln_tensor_dim(in[0], 0)};
    kiln_tensor *base = kiln_tensor_new(kiln_tensor_context(in[0]),
                                        kiln_tensor_dtype(in[0]), 2, shape);
    kiln_tensor *view = kiln_transpose(base, 0, 1);
    kiln_copy(view, in[0]);
    kiln_tensor_free(view);
    return base;
}

static void test_select_fill_cast(void)
{
    op_stats st = {0};
    for (size_t ti = 0; ti < 3; ti++) {
        kiln_dtype t = dtypes[ti];
        for (int c = 0; c < 4; c++) {
            int64_t s3[3] = {3, 1 + c, 5}, s1[1] = {5}, s2[2] = {1 + c, 5};
            op_input in[3] = {input(t, 3, s3, VIEW_PLAIN, -3, 3),
                              input(t, 1, s1, VIEW_PLAIN, -3, 3),
                              input(t, 2, s2, VIEW_TRANSPOSED, -3, 3)};
            check_op(&st, dev, ref, "select", 3, in, call_select, NULL, exact);
            double value = c == 0 ? 0 : c == 1 ? -2.5 : c == 2 ? 7 : 1e300;
            check_op(&st, dev, ref, "fill", 1, in, call_fill, &value, exact);
            int64_t m[2] = {4 + c, 9};
            op_input mat = input(t, 2, m, VIEW_STRIDED, -5, 5);
            check_op(&st, dev, ref, "copy into transposed view", 1, &mat,
                     call_copy_into_view, NULL, exact);
            for (size_t ui = 0; ui < 3; ui++) {
                /* Values beyond the int32 range saturate; NaN -> 0 is
                 * checked in test_misuse. */
                op_input cin = input(t, 2, m, (enum view_kind)(c % 3),
                                     t == KILN_I32 ? -2e9 : -3e9,
                                     t == KILN_I32 ? 2e9 : 3e9);
                char name[64];
                snprintf(name, sizeof name, "cast %s->%s", kiln_dtype_name(t),
                         kiln_dtype_name(dtypes[ui]));
                check_op(&st, dev, ref, name, 1, &cin, call_cast, &dtypes[ui],
                         exact);
                free(cin.data);
            }
            free(mat.data);
            for (int i = 0; i < 3; i++)
                free(in[i].data);
        }
    }
    report("select/fill/copy/cast", &st);
}

/* ---- reductions ------------------------------------------------------- */

typedef struct reduce_arg {
    kiln_reduce_op op;
    int naxes, axes[KILN_MAX_DIMS], keepdims, arg; /* arg: 1 max, 2 min */
} reduce_arg;

static kiln_tensor *call_reduce(kiln_tensor **in, const void *arg)
{
    const reduce_arg *r = arg;
    if (r->arg == 1)
        return kiln_argmax(in[0], r->axes[0], r->keepdims);
    if (r->arg == 2)
        return kiln_argmin(in[0], r->axes[0], r->keepdims);
    return kiln_reduce(in[0], r->op, r->naxes, r->naxes ? r->axes : NULL,
                       r->keepdims);
}

static void test_reduce(void)
{
    static const char *names[] = {"sum", "mean", "max", "min"};
    for (size_t ti = 0; ti < 3; ti++) {
        kiln_dtype t = dtypes[ti];
        op_stats st = {0};
        for (int c = 0; c < 14; c++) {
            int ndim;
            int64_t shape[KILN_MAX_DIMS];
            random_shape(&ndim, shape, 30);
            if (c == 12) { /* a long reduction: precision and many groups */
                ndim = 2;
                shape[0] = 3;
                shape[1] = 20000;
            } else if (c == 13) { /* many outputs, short rows */
                ndim = 2;
                shape[0] = 70000;
                shape[1] = 3;
            }
            if (ndim == 0) {
                ndim = 1;
                shape[0] = 1;
            }
            op_input in = input(t, ndim, shape, (enum view_kind)(c % 3), -100,
                                100);
            /* Ties for argmax/argmin: repeat the first value. */
            for (int64_t i = 1; i < base_numel(&in); i += 5)
                in.data[i] = in.data[0];
            reduce_arg r = {.keepdims = c % 2};
            for (int i = 0; i < ndim; i++)
                if (harness_int(&rng, 0, 1))
                    r.axes[r.naxes++] = i - (c % 4 == 3 ? ndim : 0);
            for (int op = 0; op < 4; op++) {
                if (op == KILN_REDUCE_MEAN && t == KILN_I32)
                    continue;
                r.op = (kiln_reduce_op)op;
                r.arg = 0;
                double eps = t == KILN_F32 ? 6e-8 : 1.2e-16;
                tolerance tol = {0, 0, op < 2 && t != KILN_I32 ? 64 * eps : 0};
                char name[96];
                snprintf(name, sizeof name, "%s %s case %d", names[op],
                         kiln_dtype_name(t), c);
                check_op(&st, dev, ref, name, 1, &in, call_reduce, &r, tol);
            }
            for (int which = 1; which <= 2; which++) {
                reduce_arg a = {.arg = which, .keepdims = c % 2,
                                .axes = {harness_int(&rng, 0, ndim - 1)}};
                check_op(&st, dev, ref, which == 1 ? "argmax" : "argmin", 1,
                         &in, call_reduce, &a, exact);
            }
            free(in.data);
        }
        char group[64];
        snprintf(group, sizeof group, "reduce %s", kiln_dtype_name(t));
        report(group, &st);
    }
}

/* ---- matrix products -------------------------------------------------- */

typedef struct gemm_arg {
    int ta, tb, use_c;
    double alpha, beta;
} gemm_arg;

static kiln_tensor *call_gemm(kiln_tensor **in, const void *arg)
{
    const gemm_arg *g = arg;
    if (!g)
        return kiln_matmul(in[0], in[1]);
    if (!g->use_c)
        return kiln_gemm(in[0], g->ta, in[1], g->tb, g->alpha, 0, NULL);
    kiln_tensor *c = kiln_contiguous_copy(in[2]);
    kiln_gemm(in[0], g->ta, in[1], g->tb, g->alpha, g->beta, c);
    return c;
}

static void test_gemm(void)
{
    static const int64_t sizes[] = {1, 3, 17, 64, 65, 130};
    for (size_t ti = 0; ti < 3; ti += 2) {
        kiln_dtype t = dtypes[ti];
        op_stats st = {0};
        double eps = t == KILN_F32 ? 6e-8 : 1.2e-16;
        for (int c = 0; c < 24; c++) {
            int64_t m = sizes[harness_int(&rng, 0, 5)];
            int64_t n = sizes[harness_int(&rng, 0, 5)];
            int64_t k = c == 23 ? 2048 : sizes[harness_int(&rng, 0, 5)];
            gemm_arg g = {.ta = c & 1, .tb = (c >> 1) & 1, .use_c = c % 5 == 4,
                          .alpha = c % 3 ? 1.0 : -0.5, .beta = 0.75};
            int64_t sa[3] = {3, g.ta ? k : m, g.ta ? m : k};
            int64_t sb[3] = {3, g.tb ? n : k, g.tb ? k : n};
            int64_t sc[3] = {3, m, n};
            /* Batch 3 on A, broadcast (batch 1, 2-D) on B half the time. */
            int bdim = c % 4 < 2 ? 3 : 2;
            op_input in[3] = {
                input(t, 3, sa, (enum view_kind)(c % 3), -1, 1),
                input(t, bdim, bdim == 3 ? sb : sb + 1, VIEW_PLAIN, -1, 1),
                input(t, 3, sc, VIEW_PLAIN, -1, 1)};
            tolerance tol = {0, 0, 8 * sqrt((double)k + 1) * eps};
            char name[96];
            snprintf(name, sizeof name, "gemm %s %lldx%lldx%lld ta=%d tb=%d%s",
                     kiln_dtype_name(t), (long long)m, (long long)n,
                     (long long)k, g.ta, g.tb, g.use_c ? " +beta*C" : "");
            check_op(&st, dev, ref, name, 3, in, call_gemm, &g, tol);
            for (int i = 0; i < 3; i++)
                free(in[i].data);
        }
        /* NumPy matmul shapes: vectors and partially broadcast batches. */
        static const struct { int na, nb; int64_t a[4], b[4]; } mm[] = {
            {1, 1, {7}, {7}},
            {1, 2, {5}, {5, 3}},
            {2, 1, {4, 5}, {5}},
            {3, 1, {2, 4, 5}, {5}},
            {4, 4, {2, 1, 3, 5}, {1, 3, 5, 4}},
            {2, 2, {1, 1}, {1, 1}},
        };
        for (size_t i = 0; i < sizeof mm / sizeof *mm; i++) {
            op_input in[2] = {input(t, mm[i].na, mm[i].a, VIEW_PLAIN, -1, 1),
                              input(t, mm[i].nb, mm[i].b, VIEW_PLAIN, -1, 1)};
            check_op(&st, dev, ref, "matmul shapes", 2, in, call_gemm, NULL,
                     (tolerance){0, 0, 16 * eps});
            free(in[0].data);
            free(in[1].data);
        }
        char group[64];
        snprintf(group, sizeof group, "gemm/matmul %s", kiln_dtype_name(t));
        report(group, &st);
    }
}

int main(int argc, char **argv)
{
    const char *spec = harness_device(argc, argv);
    harness_seed(argc, argv, &rng);
    dev = harness_open(spec, 256);
    ref = harness_open("reference", 256);
    if (kiln_context_device(dev)->backend == KILN_BACKEND_REFERENCE)
        printf("note: reference against itself: a self-check of guards and "
               "error paths; values are checked by test_api, test_fixtures "
               "and the gradient checks\n");
    test_binary();
    test_unary();
    test_select_fill_cast();
    test_reduce();
    test_gemm();
    kiln_context_stats s;
    kiln_context_get_stats(dev, &s);
    printf("device: %llu dispatches, %llu barriers, %llu programs built, "
           "%llu from cache\n", (unsigned long long)s.dispatches,
           (unsigned long long)s.barriers, (unsigned long long)s.programs_built,
           (unsigned long long)s.programs_cached);
    kiln_context_destroy(dev);
    kiln_context_destroy(ref);
    return harness_exit();
}
