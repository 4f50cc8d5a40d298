/*
 * test_fused_reduce.c - a fused program as the prologue of a reduction
 * (KILN_K_FUSED_REDUCE through kiln__fused_reduce) on the device under
 * test.
 *
 * Random programs (fused_testutil.h: exact and smooth kinds) over random
 * broadcast / strided / aliased layouts, each reduced with a random op
 * (sum, mean, max, min) over a random set of axes, keepdims or not:
 *   - on the device, fused reduce = kiln__fused then kiln_reduce bit for
 *     bit (the kernels fold in the same order: the claim the graph's
 *     fusion relies on for "fusion on and off agree");
 *   - on the reference, the same, and both = the eager chain reduced;
 *   - device vs reference: exact kinds and max/min exactly (i32 sums
 *     wrap alike), float sums within T's epsilon times the sum of the
 *     magnitudes (the order of a float sum differs between backends).
 * Also: the layouts the fused reduction cannot take (kept and reduced
 * dimensions interleaved beyond 3) are refused as kiln__fused_reduce_fits
 * says, mean of i32 and max of nothing are refused, the channel sums of
 * NCHW (reduced, kept, reduced) and empty outputs work.  (Reducing
 * [N, C, H, W] over C and W would need 4 dimensions: not fused.)
 *
 * usage: test_fused_reduce --device SPEC [--seed N]
 */
#include "fused_testutil.h"

static const char *const op_names[] = {"sum", "mean", "max", "min"};

/* A random set of @ndim's axes: @reduced[d] set for each; *naxes = 0
 * (meaning all) a quarter of the time. */
static void random_axes(int ndim, char *reduced, int *naxes, int *axes)
{
    *naxes = 0;
    memset(reduced, 0, KILN_MAX_DIMS);
    if (ndim == 0 || harness_int(&rng, 0, 3) == 0) {
        memset(reduced, 1, (size_t)ndim);
        return;
    }
    for (int d = 0; d < ndim; d++)
        if (harness_int(&rng, 0, 1)) {
            reduced[d] = 1;
            axes[(*naxes)++] = harness_int(&rng, 0, 1) ? d : d - ndim;
        }
    if (*naxes == 0) { /* at least one, or it would mean all */
        int d = harness_int(&rng, 0, ndim - 1);
        reduced[d] = 1;
        axes[(*naxes)++] = d;
    }
}

/* The sum (for a mean: the mean) over the reduced elements of |value| for
 * each output, the scale of a float sum's rounding, from the reference's
 * unreduced values. */
static double *magnitudes(kiln_tensor *values, kiln_reduce_op op, int naxes,
                          const int *axes, int keepdims, int64_t *n)
{
    kiln_tensor *a = kiln_abs(values);
    kiln_tensor *m = a ? kiln_reduce(a, op == KILN_REDUCE_MEAN
                                            ? KILN_REDUCE_MEAN
                                            : KILN_REDUCE_SUM,
                                     naxes, naxes ? axes : NULL, keepdims)
                       : NULL;
    double *out = m ? read_doubles(m, n) : NULL;
    kiln_tensor_free(a);
    kiln_tensor_free(m);
    return out;
}

typedef struct reduce_case {
    kiln_reduce_op op;
    int naxes, keepdims;
    int axes[KILN_MAX_DIMS];
    char reduced[KILN_MAX_DIMS];
    int64_t nred; /* reduced elements per output */
} reduce_case;

/* kiln__fused then kiln_reduce on @ctx: the unfused pair. */
static kiln_tensor *unfused(kiln_context *ctx, const kiln_fused_program *p,
                            kiln_dtype t, kiln_tensor *const *in,
                            const layout_case *lc, const reduce_case *rc)
{
    kiln_tensor *v = kiln__fused(ctx, CALL, p, t, in, lc->ndim, lc->shape);
    kiln_tensor *r = v ? kiln_reduce(v, rc->op, rc->naxes,
                                     rc->naxes ? rc->axes : NULL, rc->keepdims)
                       : NULL;
    kiln_tensor_free(v);
    return r;
}

static kiln_tensor *fused(kiln_context *ctx, const kiln_fused_program *p,
                          kiln_dtype t, kiln_tensor *const *in,
                          const layout_case *lc, const reduce_case *rc)
{
    return kiln__fused_reduce(ctx, CALL, p, t, in, lc->ndim, lc->shape,
                              rc->op, rc->naxes, rc->naxes ? rc->axes : NULL,
                              rc->keepdims);
}

/* Device fused vs device unfused (bit for bit), reference fused vs
 * reference eager (bit for bit), device vs reference (@kind's tolerance).
 * Returns 0 after reporting a failure. */
static int compare_all(op_stats *st, const char *name, kiln_dtype t,
                       enum kind kind, const reduce_case *rc,
                       kiln_tensor *const *outs, kiln_tensor *ref_values)
{
    double *v[4] = {0};
    int64_t n[4] = {-1, -1, -1, -1}, nm = -1;
    int ok = 1;
    for (int i = 0; i < 4; i++)
        v[i] = outs[i] ? read_doubles(outs[i], &n[i]) : NULL;
    double *mag = magnitudes(ref_values, rc->op, rc->naxes, rc->axes,
                             rc->keepdims, &nm);
    if (!v[0] || !v[1] || !v[2] || !v[3] || !mag) {
        harness_fail("%s: failed: device: %s; reference: %s", name,
                     kiln_error_message(dev), kiln_error_message(ref));
        kiln_clear_error(dev);
        kiln_clear_error(ref);
        ok = 0;
    } else if (n[1] != n[0] || n[2] != n[0] || n[3] != n[0] || nm != n[0] ||
               kiln_tensor_ndim(outs[0]) != kiln_tensor_ndim(outs[2])) {
        harness_fail("%s: %lld / %lld / %lld / %lld elements", name,
                     (long long)n[0], (long long)n[1], (long long)n[2],
                     (long long)n[3]);
        ok = 0;
    } else {
        char what[320];
        const tolerance exact = {0, 0, 0};
        snprintf(what, sizeof what, "%s (device, fused vs unfused)", name);
        ok = compare(st, what, v[0], v[1], n[0], exact);
        snprintf(what, sizeof what, "%s (reference, fused vs eager)", name);
        ok = compare(st, what, v[2], v[3], n[0], exact) && ok;
        double eps = t == KILN_F32 ? FLT_EPSILON : DBL_EPSILON;
        int float_sum = t != KILN_I32 && (rc->op == KILN_REDUCE_SUM ||
                                          rc->op == KILN_REDUCE_MEAN);
        /* A float sum's worst case: each of >= 32 work-items folds
         * nred / 32 values, then a tree of depth <= 8 (either order
         * rounds at most that many times per value), the mean's multiply
         * once more. */
        double folds = (double)(rc->nred / 32 + 1) + 8 + 1;
        /* The elementwise part: exact kinds exact, smooth ones within
         * test_fused's 1e-6 / 1e-13 relative per element. */
        double per = kind == SMOOTH ? (t == KILN_F32 ? 1e-6 : 1e-13) : 0;
        for (int64_t i = 0; ok && i < n[0]; i++) {
            double allowed = float_sum ? (folds * eps + per) * mag[i]
                                       : per * fabs(v[2][i]);
            if (t == KILN_F32)
                allowed += FLT_MIN; /* devices that flush subnormals */
            double one[1] = {v[0][i]}, want[1] = {v[2][i]};
            snprintf(what, sizeof what, "%s (device vs reference, output "
                     "%lld)", name, (long long)i);
            ok = compare(st, what, one, want, 1, (tolerance){allowed, 0, 0});
        }
    }
    for (int i = 0; i < 4; i++)
        free(v[i]);
    free(mag);
    return ok;
}

/* One case; returns whether its layout fitted the fused reduction. */
static int run_case(op_stats *st, const char *name,
                    const kiln_fused_program *p, kiln_dtype t, enum kind kind,
                    const layout_case *lc, const reduce_case *rc)
{
    kiln_tensor *din[KILN_FUSED_MAX_INPUTS], *rin[KILN_FUSED_MAX_INPUTS];
    int ok = 1;
    start_case(st, lc, din, rin);
    int fits = kiln__fused_reduce_fits(p->ninputs, din, lc->ndim, lc->shape,
                                       rc->reduced);
    if (!fits) {
        /* Refused with a message, as the fits test said. */
        kiln_tensor *out = fused(dev, p, t, din, lc, rc);
        CHECK(!out && kiln_status_of(dev) == KILN_ERROR_UNSUPPORTED,
              "%s: a layout kiln__fused_reduce_fits rejects was not refused "
              "(%s)", name, kiln_error_message(dev));
        ok = !out;
        kiln_tensor_free(out);
        kiln_clear_error(dev);
    } else {
        kiln_tensor *outs[4] = {fused(dev, p, t, din, lc, rc),
                                unfused(dev, p, t, din, lc, rc),
                                fused(ref, p, t, rin, lc, rc), NULL};
        kiln_tensor *values = eager(p, rin);
        kiln_tensor *vb = values ? kiln_broadcast_to(values, lc->ndim,
                                                     lc->shape)
                                 : NULL;
        kiln_tensor *vc = vb ? kiln_contiguous_copy(vb) : NULL;
        outs[3] = vc ? kiln_reduce(vc, rc->op, rc->naxes,
                                   rc->naxes ? rc->axes : NULL, rc->keepdims)
                     : NULL;
        ok = compare_all(st, name, t, kind, rc, outs, vc);
        for (int i = 0; i < 4; i++)
            kiln_tensor_free(outs[i]);
        kiln_tensor_free(values);
        kiln_tensor_free(vb);
        kiln_tensor_free(vc);
    }
    finish_case(st, name, lc, din, rin, ok);
    return fits;
}

static void test_random(kiln_dtype t, enum kind kind, int programs,
                        int layouts)
{
    op_stats st = {0};
    int refused = 0, nonempty = 0;
    for (int i = 0; i < programs; i++) {
        kiln_fused_program p = random_program(t, kind);
        for (int l = 0; l < layouts; l++) {
            layout_case lc = random_layout(t, kind, p.ninputs);
            reduce_case rc = {.keepdims = harness_int(&rng, 0, 1)};
            rc.op = (kiln_reduce_op)harness_int(&rng, 0, 3);
            if (t == KILN_I32 && rc.op == KILN_REDUCE_MEAN)
                rc.op = KILN_REDUCE_SUM;
            random_axes(lc.ndim, rc.reduced, &rc.naxes, rc.axes);
            rc.nred = 1;
            for (int d = 0; d < lc.ndim; d++)
                if (rc.reduced[d])
                    rc.nred *= lc.shape[d];
            if (rc.nred == 0 && rc.op >= KILN_REDUCE_MAX)
                rc.op = KILN_REDUCE_SUM; /* max of nothing: test_errors */
            char name[160];
            snprintf(name, sizeof name, "%s %s program %d (%d inputs, %d "
                     "instructions) layout %d, %s over %d axes", kind == EXACT
                     ? "exact" : "smooth", kiln_dtype_name(t), i, p.ninputs,
                     p.ninstr, l, op_names[rc.op], rc.naxes);
            nonempty += shape_numel(lc.ndim, lc.shape) > 0;
            refused += !run_case(&st, name, &p, t, kind, &lc, &rc);
            layout_free(&lc);
        }
    }
    char group[64];
    snprintf(group, sizeof group, "%s %s (%d refused layouts)",
             kind == EXACT ? "exact" : "smooth", kiln_dtype_name(t), refused);
    report(group, &st);
    CHECK(nonempty * 2 > st.cases, "%s: most layouts were empty", group);
    CHECK(refused * 2 < st.cases, "%s: most layouts were refused", group);
}

/* [N, C, H, W] summed over N, H, W (kept C between reduced dims: the
 * 101 mask) and the mean of squared differences over everything, against
 * the unfused pair; and an input transposed so that nothing merges. */
static void test_channel_sums(void)
{
    int64_t shape[4] = {3, 5, 4, 6};
    op_input a = op_random_input(&rng, KILN_F32, 4, shape, VIEW_PLAIN, -2, 2);
    op_input b = op_random_input(&rng, KILN_F32, 4, shape, VIEW_TRANSPOSED,
                                 -2, 2);
    kiln_tensor *in[2] = {make_input(dev, &a, 0), make_input(dev, &b, 0)};
    kiln_fused_program sq = {.ninputs = 2, .ninstr = 2};
    sq.instr[0] = binary(KILN_BINARY_SUB, 0, 1);
    sq.instr[1] = unary(KILN_UNARY_SQUARE, 2);
    layout_case lc = {.ndim = 4, .ninputs = 2};
    memcpy(lc.shape, shape, sizeof shape);
    reduce_case cases[] = {
        {KILN_REDUCE_SUM, 3, 0, {0, 2, 3}, {1, 0, 1, 1}, 72},
        {KILN_REDUCE_MEAN, 0, 0, {0}, {1, 1, 1, 1}, 360},
        {KILN_REDUCE_MAX, 2, 1, {2, 3}, {0, 0, 1, 1}, 24},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const reduce_case *rc = &cases[c];
        int fits = kiln__fused_reduce_fits(2, in, 4, shape, rc->reduced);
        kiln_tensor *f = fused(dev, &sq, KILN_F32, in, &lc, rc);
        kiln_tensor *u = unfused(dev, &sq, KILN_F32, in, &lc, rc);
        int64_t nf = -1, nu = -1;
        double *vf = f ? read_doubles(f, &nf) : NULL;
        double *vu = u ? read_doubles(u, &nu) : NULL;
        if (!fits) {
            /* b is transposed: its strides interleave the dimensions. */
            CHECK(!f && kiln_status_of(dev) == KILN_ERROR_UNSUPPORTED,
                  "channel case %zu: refused layout: %s", c,
                  kiln_error_message(dev));
            kiln_clear_error(dev);
        } else {
            CHECK(vf && vu && nf == nu, "channel case %zu: %s", c,
                  kiln_error_message(dev));
            for (int64_t i = 0; vf && vu && i < nf && i < nu; i++)
                CHECK(vf[i] == vu[i], "channel case %zu output %lld: fused "
                      "%.9g, unfused %.9g", c, (long long)i, vf[i], vu[i]);
        }
        printf("ok    channel case %zu (%s): %s\n", c, op_names[rc->op],
               fits ? "fused = unfused" : "refused as kiln__fused_reduce_"
                                          "fits says");
        free(vf);
        free(vu);
        kiln_tensor_free(f);
        kiln_tensor_free(u);
    }
    /* The same with a plain b: every case fits. */
    kiln_tensor *plain = kiln_contiguous_copy(in[1]);
    kiln_tensor *in2[2] = {in[0], plain};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
        CHECK(kiln__fused_reduce_fits(2, in2, 4, shape, cases[c].reduced),
              "channel case %zu with contiguous inputs does not fit", c);
    kiln_tensor_free(plain);
    kiln_tensor_free(in[0]);
    kiln_tensor_free(in[1]);
    free(a.data);
    free(b.data);
}

/* Long sums (thousands of elements per output: every work-item folds
 * many, so the fold's order and compensation show in the low bits; few
 * outputs, so the device splits them into slices) of sigmoid(a) * b,
 * fused = unfused bit for bit, along each side, and = the reference. */
static void test_long_sums(kiln_dtype t)
{
    int64_t shape[2] = {6, 3000};
    op_input a = op_random_input(&rng, t, 2, shape, VIEW_PLAIN, -3, 3);
    op_input b = op_random_input(&rng, t, 1, &shape[1], VIEW_PLAIN, 0.1, 9);
    kiln_tensor *in[2] = {make_input(dev, &a, 0), make_input(dev, &b, 0)};
    kiln_tensor *rin[2] = {make_input(ref, &a, 0), make_input(ref, &b, 0)};
    kiln_fused_program prog = {.ninputs = 2, .ninstr = 2};
    prog.instr[0] = unary(KILN_UNARY_SIGMOID, 0);
    prog.instr[1] = binary(KILN_BINARY_MUL, 2, 1);
    layout_case lc = {.ndim = 2, .ninputs = 2, .shape = {6, 3000}};
    reduce_case cases[] = {
        {KILN_REDUCE_SUM, 1, 0, {1}, {0, 1}, 3000},
        {KILN_REDUCE_MEAN, 1, 1, {0}, {1, 0}, 6},
        {KILN_REDUCE_SUM, 0, 0, {0}, {1, 1}, 18000},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        kiln_tensor *f = fused(dev, &prog, t, in, &lc, &cases[c]);
        kiln_tensor *u = unfused(dev, &prog, t, in, &lc, &cases[c]);
        int64_t nf = -1, nu = -1;
        double *vf = f ? read_doubles(f, &nf) : NULL;
        double *vu = u ? read_doubles(u, &nu) : NULL;
        CHECK(vf && vu && nf == nu, "long sum %zu: %s", c,
              kiln_error_message(dev));
        int64_t i = 0;
        while (vf && vu && i < nf && i < nu && vf[i] == vu[i])
            i++;
        CHECK(vf && vu && i == nf, "long %s sum %zu, output %lld: fused "
              "%a != unfused %a", kiln_dtype_name(t), c, (long long)i,
              vf && i < nf ? vf[i] : NAN, vu && i < nu ? vu[i] : NAN);
        /* Against the reference (which never splits a reduction): the
         * values are positive, so the sum's relative error is bounded by
         * its rounding count (slices, folds, tree) times epsilon. */
        kiln_tensor *rf = fused(ref, &prog, t, rin, &lc, &cases[c]);
        int64_t nr = -1;
        double *vr = rf ? read_doubles(rf, &nr) : NULL;
        double eps = t == KILN_F32 ? FLT_EPSILON : DBL_EPSILON, worst = 0;
        for (int64_t k = 0; vf && vr && nr == nf && k < nf; k++)
            worst = fmax(worst, fabs(vf[k] - vr[k]) / fabs(vr[k]));
        CHECK(vr && nr == nf && worst <= 64 * eps, "long %s sum %zu vs the "
              "reference: %.3g relative (tolerance %.3g)",
              kiln_dtype_name(t), c, worst, 64 * eps);
        free(vr);
        kiln_tensor_free(rf);
        free(vf);
        free(vu);
        kiln_tensor_free(f);
        kiln_tensor_free(u);
    }
    printf("%s long %s sums: fused = unfused bit for bit\n",
           harness_failures ? "(failures above)" : "ok   ", kiln_dtype_name(t));
    kiln_tensor_free(in[0]);
    kiln_tensor_free(in[1]);
    kiln_tensor_free(rin[0]);
    kiln_tensor_free(rin[1]);
    free(a.data);
    free(b.data);
}

static void test_errors(void)
{
    int64_t shape[2] = {4, 0};
    kiln_tensor *x = kiln_tensor_new(dev, KILN_I32, 2, shape);
    kiln_fused_program neg = {.ninputs = 1, .ninstr = 1};
    neg.instr[0] = unary(KILN_UNARY_NEG, 0);
    kiln_tensor *r = kiln__fused_reduce(dev, CALL, &neg, KILN_I32, &x, 2,
                                        shape, KILN_REDUCE_MEAN, 0, NULL, 0);
    CHECK(!r && kiln_status_of(dev) == KILN_ERROR_DTYPE &&
              strstr(kiln_error_message(dev), "i32"),
          "mean of i32: %s", kiln_error_message(dev));
    kiln_clear_error(dev);
    r = kiln__fused_reduce(dev, CALL, &neg, KILN_I32, &x, 2, shape,
                           KILN_REDUCE_MAX, 1, (int[]){1}, 0);
    CHECK(!r && kiln_status_of(dev) == KILN_ERROR_SHAPE &&
              strstr(kiln_error_message(dev), "empty"),
          "max of nothing: %s", kiln_error_message(dev));
    kiln_clear_error(dev);
    r = kiln__fused_reduce(dev, CALL, &neg, KILN_I32, &x, 2, shape,
                           KILN_REDUCE_SUM, 1, (int[]){2}, 0);
    CHECK(!r && kiln_status_of(dev) == KILN_ERROR_INVALID_ARGUMENT,
          "axis out of range: %s", kiln_error_message(dev));
    kiln_clear_error(dev);
    /* A sum over the empty axis is 0 for every kept index. */
    r = kiln__fused_reduce(dev, CALL, &neg, KILN_I32, &x, 2, shape,
                           KILN_REDUCE_SUM, 1, (int[]){1}, 1);
    int64_t n = -1, rshape[KILN_MAX_DIMS] = {0};
    double *v = r ? read_doubles(r, &n) : NULL;
    CHECK(v && n == 4 && v[0] == 0 && v[3] == 0 &&
              kiln_tensor_shape(r, rshape) == 2 && rshape[1] == 1,
          "sum over an empty axis: %s", kiln_error_message(dev));
    free(v);
    kiln_tensor_free(r);
    kiln_fused_program bad = neg;
    bad.instr[0] = unary(KILN_UNARY_NEG, 3); /* reads an unwritten register */
    r = kiln__fused_reduce(dev, CALL, &bad, KILN_I32, &x, 2, shape,
                           KILN_REDUCE_SUM, 0, NULL, 0);
    CHECK(!r && kiln_status_of(dev) == KILN_ERROR_INVALID_ARGUMENT,
          "malformed program: %s", kiln_error_message(dev));
    kiln_clear_error(dev);
    kiln_tensor_free(x);
    printf("ok    errors\n");
}

int main(int argc, char **argv)
{
    open_contexts(argc, argv);
    /* Every program is one build per dtype (about half a second with
     * PoCL); a layout costs next to nothing. */
    test_random(KILN_I32, EXACT, 3, 10);
    test_random(KILN_F32, EXACT, 3, 10);
    test_random(KILN_F32, SMOOTH, 3, 10);
    if (kiln_context_device(dev)->fp64)
        test_random(KILN_F64, SMOOTH, 2, 10);
    else
        printf("note: the device has no f64\n");
    test_channel_sums();
    test_long_sums(KILN_F32);
    if (kiln_context_device(dev)->fp64)
        test_long_sums(KILN_F64);
    test_errors();
    kiln_context_destroy(dev);
    kiln_context_destroy(ref);
    return harness_exit();
}
