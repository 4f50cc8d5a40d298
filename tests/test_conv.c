/*
 * test_conv.c - convolution and pooling on the device under test against
 * the C reference: random geometry (stride 1-3, explicit padding 0-2, SAME,
 * VALID, dilation 1-2, groups 1/2/depthwise, 1x1 and non-square kernels,
 * odd sizes, batch 1, strided input views), every backward op, conv1d,
 * conv_transpose2d, pooling; the reference against a naive host loop; f64
 * gradient checks on the reference; the course's worked examples exactly;
 * argument errors.
 *
 * usage: test_conv --device SPEC [--seed N]
 */
#include "op_check.h"
#include "ops/ops.h" /* kiln__conv2d_act */

static harness_rng rng = {3003};
static kiln_context *dev, *ref;

static op_input input(kiln_dtype t, int ndim, const int64_t *shape,
                      enum view_kind view, double lo, double hi)
{
    return op_random_input(&rng, t, ndim, shape, view, lo, hi);
}

static void free_inputs(int n, op_input *in)
{
    for (int i = 0; i < n; i++)
        free(in[i].data);
}

static double eps_of(kiln_dtype t) { return t == KILN_F32 ? 6e-8 : 1.2e-16; }

/* Sums of K products: error bound proportional to the magnitude summed. */
static tolerance sum_tol(kiln_dtype t, int64_t k)
{
    return (tolerance){0, 0, 8 * sqrt((double)k + 1) * eps_of(t)};
}

static tolerance exact_tol(void) { return (tolerance){0, 0, 0}; }

/* ---- geometry, written independently of the library ------------------- */

static int64_t out_size(int64_t in, int64_t k, int s, int d, int pad,
                        kiln_padding_mode mode, int64_t *before)
{
    s = s ? s : 1;
    d = d ? d : 1;
    int64_t span = (k - 1) * d + 1;
    if (mode == KILN_PAD_SAME) {
        int64_t out = (in + s - 1) / s;
        int64_t total = (out - 1) * s + span - in;
        *before = total > 0 ? total / 2 : 0;
        return out;
    }
    int64_t p = mode == KILN_PAD_VALID ? 0 : pad;
    *before = p;
    return (in + 2 * p - span) / s + 1;
}

typedef struct conv_case {
    int64_t n, c, h, w, oc, kh, kw;
    kiln_conv2d_params p;
    int bias;
    int opad[2];
    int64_t oh, ow;
} conv_case;

static void random_conv(conv_case *cc, int i)
{
    memset(cc, 0, sizeof *cc);
    int groups = harness_int(&rng, 0, 2);
    if (groups == 0) {
        cc->c = harness_int(&rng, 1, 4);
        cc->oc = harness_int(&rng, 1, 5);
        cc->p.groups = harness_int(&rng, 0, 1); /* 0 = default 1 */
    } else if (groups == 1) {
        cc->c = 2 * harness_int(&rng, 1, 3);
        cc->oc = 2 * harness_int(&rng, 1, 3);
        cc->p.groups = 2;
    } else { /* depthwise, channel multiplier 1 or 2 */
        cc->c = harness_int(&rng, 1, 5);
        cc->oc = cc->c * harness_int(&rng, 1, 2);
        cc->p.groups = (int)cc->c;
    }
    cc->kh = i % 7 == 0 ? 1 : harness_int(&rng, 1, 4);
    cc->kw = i % 7 == 0 ? 1 : harness_int(&rng, 1, 4);
    for (int a = 0; a < 2; a++) {
        cc->p.stride[a] = i % 7 == 0 ? 1 : harness_int(&rng, 0, 3);
        cc->p.dilation[a] = harness_int(&rng, 0, 2);
        cc->p.padding[a] = harness_int(&rng, 0, 2);
    }
    cc->p.mode = (kiln_padding_mode)(i % 3);
    if (i % 7 == 0) /* pointwise: the fast path skipping im2col */
        cc->p.mode = KILN_PAD_VALID;
    int64_t sh = (cc->kh - 1) * (cc->p.dilation[0] ? cc->p.dilation[0] : 1) + 1;
    int64_t sw = (cc->kw - 1) * (cc->p.dilation[1] ? cc->p.dilation[1] : 1) + 1;
    cc->h = sh + harness_int(&rng, 0, 6);
    cc->w = sw + harness_int(&rng, 0, 6);
    cc->n = harness_int(&rng, 0, 2) ? 1 : harness_int(&rng, 2, 3);
    cc->bias = i % 2;
    int64_t b;
    cc->oh = out_size(cc->h, cc->kh, cc->p.stride[0], cc->p.dilation[0],
                      cc->p.padding[0], cc->p.mode, &b);
    cc->ow = out_size(cc->w, cc->kw, cc->p.stride[1], cc->p.dilation[1],
                      cc->p.padding[1], cc->p.mode, &b);
}

static int64_t cgroups(const conv_case *cc)
{
    return cc->p.groups ? cc->p.groups : 1;
}

static void describe(char *buf, size_t size, const char *op, kiln_dtype t,
                     const conv_case *cc)
{
    snprintf(buf, size,
             "%s %s x[%lld,%lld,%lld,%lld] w[%lld,%lld,%lld,%lld] s%dx%d "
             "d%dx%d p%dx%d mode %d g%d", op, kiln_dtype_name(t),
             (long long)cc->n, (long long)cc->c, (long long)cc->h,
             (long long)cc->w, (long long)cc->oc,
             (long long)(cc->c / cgroups(cc)), (long long)cc->kh,
             (long long)cc->kw, cc->p.stride[0], cc->p.stride[1],
             cc->p.dilation[0], cc->p.dilation[1], cc->p.padding[0],
             cc->p.padding[1], (int)cc->p.mode, cc->p.groups);
}

/* ---- op wrappers (arg = conv_case) ------------------------------------- */

static kiln_tensor *call_conv2d(kiln_tensor **in, const void *arg)
{
    const conv_case *cc = arg;
    return kiln_conv2d(in[0], in[1], cc->bias ? in[2] : NULL, &cc->p);
}

static kiln_tensor *call_backward_data(kiln_tensor **in, const void *arg)
{
    const conv_case *cc = arg;
    int64_t xs[4] = {cc->n, cc->c, cc->h, cc->w};
    return kiln_conv2d_backward_data(in[0], in[1], xs, &cc->p);
}

static kiln_tensor *call_backward_weights(kiln_tensor **in, const void *arg)
{
    const conv_case *cc = arg;
    int64_t ws[4] = {cc->oc, cc->c / cgroups(cc), cc->kh, cc->kw};
    return kiln_conv2d_backward_weights(in[0], in[1], ws, &cc->p);
}

static kiln_tensor *call_backward_bias(kiln_tensor **in, const void *arg)
{
    (void)arg;
    return kiln_conv2d_backward_bias(in[0]);
}

static kiln_tensor *call_conv1d(kiln_tensor **in, const void *arg)
{
    const conv_case *cc = arg;
    return kiln_conv1d(in[0], in[1], cc->bias ? in[2] : NULL, &cc->p);
}

/* Transposed: x [N, OC, OH, OW] -> [N, C, H, W] with w [OC, C/G, KH, KW]. */
static kiln_tensor *call_transpose(kiln_tensor **in, const void *arg)
{
    const conv_case *cc = arg;
    return kiln_conv_transpose2d(in[0], in[1], cc->bias ? in[2] : NULL,
                                 &cc->p, cc->opad);
}

static void test_conv2d(kiln_dtype t, op_stats *st)
{
    for (int i = 0; i < 36; i++) {
        conv_case cc;
        random_conv(&cc, i);
        int64_t cg = cc.c / cgroups(&cc), ocg = cc.oc / cgroups(&cc);
        int64_t xs[4] = {cc.n, cc.c, cc.h, cc.w};
        int64_t ws[4] = {cc.oc, cg, cc.kh, cc.kw};
        int64_t ys[4] = {cc.n, cc.oc, cc.oh, cc.ow};
        char name[200];
        op_input in[3] = {
            input(t, 4, xs, i % 4 == 1 ? VIEW_STRIDED : VIEW_PLAIN, -1, 1),
            input(t, 4, ws, i % 5 == 2 ? VIEW_TRANSPOSED : VIEW_PLAIN, -1, 1),
            input(t, 1, &cc.oc, VIEW_PLAIN, -1, 1)};
        describe(name, sizeof name, "conv2d", t, &cc);
        check_op(st, dev, ref, name, 3, in, call_conv2d, &cc,
                 sum_tol(t, cg * cc.kh * cc.kw + 1));
        op_input gd[2] = {
            input(t, 4, ys, i % 3 == 1 ? VIEW_STRIDED : VIEW_PLAIN, -1, 1),
            in[1]};
        describe(name, sizeof name, "conv2d_backward_data", t, &cc);
        check_op(st, dev, ref, name, 2, gd, call_backward_data, &cc,
                 sum_tol(t, ocg * cc.kh * cc.kw));
        op_input gw[2] = {gd[0], in[0]};
        describe(name, sizeof name, "conv2d_backward_weights", t, &cc);
        check_op(st, dev, ref, name, 2, gw, call_backward_weights, &cc,
                 sum_tol(t, cc.n * cc.oh * cc.ow));
        describe(name, sizeof name, "conv2d_backward_bias", t, &cc);
        check_op(st, dev, ref, name, 1, gd, call_backward_bias, &cc,
                 (tolerance){0, 0, 64 * eps_of(t)});
        free_inputs(3, in);
        free(gd[0].data);
    }
}

/* The column buffer limit forces one-image chunks (forward, both
 * gradients), so chunked batches are exercised. */
static void test_chunked(kiln_dtype t, op_stats *st)
{
    setenv("KILN_CONV_COL_LIMIT", "40", 1);
    conv_case cc = {.n = 5, .c = 2, .h = 6, .w = 5, .oc = 3, .kh = 3,
                    .kw = 2, .p = {.stride = {1, 2}, .padding = {1, 1}},
                    .bias = 1};
    int64_t b;
    cc.oh = out_size(cc.h, cc.kh, 1, 1, 1, KILN_PAD_EXPLICIT, &b);
    cc.ow = out_size(cc.w, cc.kw, 2, 1, 1, KILN_PAD_EXPLICIT, &b);
    int64_t xs[4] = {5, 2, 6, 5}, ws[4] = {3, 2, 3, 2};
    int64_t ys[4] = {5, 3, cc.oh, cc.ow};
    op_input in[3] = {input(t, 4, xs, VIEW_PLAIN, -1, 1),
                      input(t, 4, ws, VIEW_PLAIN, -1, 1),
                      input(t, 1, &cc.oc, VIEW_PLAIN, -1, 1)};
    op_input dy = input(t, 4, ys, VIEW_PLAIN, -1, 1);
    check_op(st, dev, ref, "chunked conv2d", 3, in, call_conv2d, &cc,
             sum_tol(t, 13));
    op_input gd[2] = {dy, in[1]}, gw[2] = {dy, in[0]};
    check_op(st, dev, ref, "chunked backward_data", 2, gd, call_backward_data,
             &cc, sum_tol(t, 18));
    check_op(st, dev, ref, "chunked backward_weights", 2, gw,
             call_backward_weights, &cc, sum_tol(t, 5 * cc.oh * cc.ow));
    free_inputs(3, in);
    free(dy.data);
    unsetenv("KILN_CONV_COL_LIMIT");
}

/* ---- the bias and activation in the GEMM epilogue ----------------------- */

typedef struct epi_case {
    const char *name;
    int64_t n, c, h, w, oc, kh, kw;
    kiln_conv2d_params p;
    enum view_kind xview, bview;
    const char *col_limit;        /* KILN_CONV_COL_LIMIT, or NULL         */
} epi_case;

static uint64_t dispatches(void)
{
    kiln_context_stats s;
    kiln_context_get_stats(dev, &s);
    return s.dispatches;
}

/* 1 when @a and @b (consumed) hold the same values bit for bit. */
static int same_values(kiln_tensor *a, kiln_tensor *b)
{
    int64_t na = -1, nb = -2;
    double *da = a ? read_doubles(a, &na) : NULL;
    double *db = b ? read_doubles(b, &nb) : NULL;
    int ok = da && db && na == nb;
    for (int64_t i = 0; ok && i < na; i++)
        ok = memcmp(&da[i], &db[i], sizeof da[i]) == 0;
    free(da);
    free(db);
    kiln_tensor_free(a);
    kiln_tensor_free(b);
    return ok;
}

/* kiln_conv2d with a bias adds it in the GEMM's epilogue, and
 * kiln__conv2d_act applies an activation there too.  Both must equal the
 * bare convolution followed by a separate kiln_add (and activation) on the
 * same device bit for bit (tolerance 0: the GEMM is the same, and the
 * epilogue rounds to T between steps as the separate kernels do), and
 * issue exactly the bare convolution's kernels.  Groups > 1, depthwise,
 * the pointwise path (and a strided x, which leaves it), strides, padding,
 * dilation, chunked batches, a strided bias view. */
static void test_epilogue(kiln_dtype t)
{
    static const epi_case cases[] = {
        {"groups 2, 3x3, stride 2, pad 1", 2, 4, 7, 6, 6, 3, 3,
         {.stride = {2, 2}, .padding = {1, 1}, .groups = 2}, VIEW_PLAIN,
         VIEW_PLAIN, NULL},
        {"pointwise 1x1", 3, 5, 4, 3, 7, 1, 1, {.groups = 1}, VIEW_PLAIN,
         VIEW_PLAIN, NULL},
        {"pointwise 1x1, groups 3, strided bias", 2, 6, 3, 3, 9, 1, 1,
         {.groups = 3}, VIEW_PLAIN, VIEW_STRIDED, NULL},
        {"1x1 groups 2 on a strided x (im2col)", 2, 4, 3, 5, 4, 1, 1,
         {.groups = 2}, VIEW_STRIDED, VIEW_PLAIN, NULL},
        {"depthwise 3x3 SAME, dilation 2", 2, 3, 6, 6, 6, 3, 3,
         {.dilation = {2, 2}, .groups = 3, .mode = KILN_PAD_SAME},
         VIEW_PLAIN, VIEW_STRIDED, NULL},
        {"chunked, stride (1, 2), pad 1", 5, 2, 6, 5, 3, 3, 2,
         {.stride = {1, 2}, .padding = {1, 1}}, VIEW_PLAIN, VIEW_PLAIN,
         "40"},
    };
    static kiln_tensor *(*const act_fn[3])(kiln_tensor *) = {
        kiln_relu, kiln_sigmoid, kiln_tanh};
    static const int act_code[3] = {KILN_UNARY_RELU, KILN_UNARY_SIGMOID,
                                    KILN_UNARY_TANH};
    int failed = 0, checks = 0;
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        const epi_case *e = &cases[ci];
        if (e->col_limit)
            setenv("KILN_CONV_COL_LIMIT", e->col_limit, 1);
        int64_t g = e->p.groups ? e->p.groups : 1;
        int64_t xs[4] = {e->n, e->c, e->h, e->w};
        int64_t ws[4] = {e->oc, e->c / g, e->kh, e->kw};
        op_input in[3] = {input(t, 4, xs, e->xview, -1, 1),
                          input(t, 4, ws, VIEW_PLAIN, -1, 1),
                          input(t, 1, &e->oc, e->bview, -1, 1)};
        kiln_tensor *x = make_input(dev, &in[0], 0);
        kiln_tensor *w = make_input(dev, &in[1], 0);
        kiln_tensor *b = make_input(dev, &in[2], 0);
        kiln_tensor *b3 = kiln_reshape(b, 3, (int64_t[]){e->oc, 1, 1});
        /* act -1: kiln_conv2d; bias 0/1: without / with the bias. */
        for (int act = -1; act < 3; act++)
            for (int withb = act < 0; withb <= 1; withb++) {
                kiln_tensor *bias = withb ? b : NULL;
                uint64_t k0 = dispatches();
                kiln_tensor *bare = kiln_conv2d(x, w, NULL, &e->p);
                uint64_t k1 = dispatches();
                kiln_tensor *fused =
                    act < 0 ? kiln_conv2d(x, w, bias, &e->p)
                            : kiln__conv2d_act(x, w, bias, &e->p,
                                               act_code[act]);
                uint64_t k2 = dispatches();
                kiln_tensor *sep = withb ? kiln_add(bare, b3) : bare;
                if (withb)
                    kiln_tensor_free(bare);
                if (act >= 0) {
                    kiln_tensor *y = act_fn[act](sep);
                    kiln_tensor_free(sep);
                    sep = y;
                }
                int ok = same_values(fused, sep) && k2 - k1 == k1 - k0;
                checks++;
                harness_checks++;
                if (!ok) {
                    failed++;
                    harness_fail("conv epilogue %s %s, bias %d, act %d: "
                                 "differs from the separate kernels or "
                                 "issues %llu kernels (bare: %llu): %s",
                                 e->name, kiln_dtype_name(t), withb, act,
                                 (unsigned long long)(k2 - k1),
                                 (unsigned long long)(k1 - k0),
                                 kiln_error_message(dev));
                    kiln_clear_error(dev);
                }
            }
        kiln_tensor_free(b3);
        kiln_tensor_free(x);
        kiln_tensor_free(w);
        kiln_tensor_free(b);
        free_inputs(3, in);
        if (e->col_limit)
            unsetenv("KILN_CONV_COL_LIMIT");
    }
    if (kiln_validation_message_count(dev) != 0) {
        harness_fail("conv epilogue: Vulkan validation: %s",
                     kiln_error_message(dev));
        failed++;
    }
    printf("%-5s %-28s %4d cases, %d failed (bit for bit, same kernels)\n",
           failed ? "FAIL" : "ok", t == KILN_F32 ? "conv epilogue float32"
                                                 : "conv epilogue float64",
           checks, failed);
}

static void test_conv1d(kiln_dtype t, op_stats *st)
{
    for (int i = 0; i < 10; i++) {
        conv_case cc;
        random_conv(&cc, i);
        cc.kh = 1;
        cc.h = 1;
        int64_t cg = cc.c / cgroups(&cc);
        int64_t xs[3] = {cc.n, cc.c, cc.w}, ws[3] = {cc.oc, cg, cc.kw};
        op_input in[3] = {input(t, 3, xs, VIEW_PLAIN, -1, 1),
                          input(t, 3, ws, VIEW_PLAIN, -1, 1),
                          input(t, 1, &cc.oc, VIEW_PLAIN, -1, 1)};
        char name[200];
        describe(name, sizeof name, "conv1d", t, &cc);
        check_op(st, dev, ref, name, 3, in, call_conv1d, &cc,
                 sum_tol(t, cg * cc.kw + 1));
        free_inputs(3, in);
    }
}

static void test_transpose(kiln_dtype t, op_stats *st)
{
    for (int i = 0; i < 14; i++) {
        conv_case cc;
        random_conv(&cc, i);
        for (int a = 0; a < 2; a++) {
            int s = cc.p.stride[a] ? cc.p.stride[a] : 1;
            int d = cc.p.dilation[a] ? cc.p.dilation[a] : 1;
            int lim = (s > d ? s : d) - 1;
            cc.opad[a] = cc.p.mode == KILN_PAD_SAME ? 0
                                                    : harness_int(&rng, 0, lim);
        }
        int64_t cg = cc.c / cgroups(&cc);
        /* Transposed roles: the input has OC channels and OH x OW. */
        int64_t xs[4] = {cc.n, cc.oc, cc.oh, cc.ow};
        int64_t ws[4] = {cc.oc, cg, cc.kh, cc.kw};
        op_input in[3] = {input(t, 4, xs, VIEW_PLAIN, -1, 1),
                          input(t, 4, ws, VIEW_PLAIN, -1, 1),
                          input(t, 1, &cc.c, VIEW_PLAIN, -1, 1)};
        char name[200];
        describe(name, sizeof name, "conv_transpose2d", t, &cc);
        check_op(st, dev, ref, name, 3, in, call_transpose, &cc,
                 sum_tol(t, cc.oc / cgroups(&cc) * cc.kh * cc.kw + 1));
        free_inputs(3, in);
    }
}

/* ---- pooling ----------------------------------------------------------- */

typedef struct pool_case {
    int64_t n, c, h, w;
    kiln_pool2d_params p;
    int64_t oh, ow;
} pool_case;

static void random_pool(pool_case *pc, int i)
{
    memset(pc, 0, sizeof *pc);
    pc->n = harness_int(&rng, 0, 1) ? 1 : harness_int(&rng, 2, 3);
    pc->c = harness_int(&rng, 1, 3);
    for (int a = 0; a < 2; a++) {
        pc->p.kernel[a] = harness_int(&rng, 1, 4);
        pc->p.stride[a] = harness_int(&rng, 0, 3);
        pc->p.padding[a] = harness_int(&rng, 0, pc->p.kernel[a] / 2);
    }
    if (i == 0) /* 2x2/2 */
        pc->p = (kiln_pool2d_params){.kernel = {2, 2}, .stride = {2, 2}};
    if (i == 1) /* 3x3/2 padded */
        pc->p = (kiln_pool2d_params){.kernel = {3, 3}, .stride = {2, 2},
                                     .padding = {1, 1}};
    pc->p.mode = (kiln_padding_mode)(i % 3 == 2 ? i / 3 % 3 : 0);
    pc->p.count_include_pad = i / 2 % 2;
    pc->h = pc->p.kernel[0] + harness_int(&rng, 0, 6);
    pc->w = pc->p.kernel[1] + harness_int(&rng, 0, 6);
    int64_t b;
    for (int a = 0; a < 2; a++) {
        int s = pc->p.stride[a] ? pc->p.stride[a] : pc->p.kernel[a];
        int64_t o = out_size(a ? pc->w : pc->h, pc->p.kernel[a], s, 1,
                             pc->p.padding[a], pc->p.mode, &b);
        *(a ? &pc->ow : &pc->oh) = o;
    }
}

static kiln_tensor *call_max_pool(kiln_tensor **in, const void *arg)
{
    return kiln_max_pool2d(in[0], &((const pool_case *)arg)->p, NULL);
}

static kiln_tensor *call_max_indices(kiln_tensor **in, const void *arg)
{
    kiln_tensor *idx = NULL;
    kiln_tensor_free(kiln_max_pool2d(in[0], &((const pool_case *)arg)->p,
                                     &idx));
    return idx;
}

static kiln_tensor *call_max_backward(kiln_tensor **in, const void *arg)
{
    kiln_tensor *idx = NULL;
    kiln_tensor_free(kiln_max_pool2d(in[0], &((const pool_case *)arg)->p,
                                     &idx));
    int64_t xs[4];
    kiln_tensor_shape(in[0], xs);
    kiln_tensor *dx = kiln_max_pool2d_backward(in[1], idx, xs);
    kiln_tensor_free(idx);
    return dx;
}

static kiln_tensor *call_avg_pool(kiln_tensor **in, const void *arg)
{
    return kiln_avg_pool2d(in[0], &((const pool_case *)arg)->p);
}

static kiln_tensor *call_avg_backward(kiln_tensor **in, const void *arg)
{
    const pool_case *pc = arg;
    int64_t xs[4] = {pc->n, pc->c, pc->h, pc->w};
    return kiln_avg_pool2d_backward(in[0], xs, &pc->p);
}

static kiln_tensor *call_global(kiln_tensor **in, const void *arg)
{
    (void)arg;
    return kiln_global_avg_pool2d(in[0]);
}

static void test_pool(kiln_dtype t, op_stats *st)
{
    for (int i = 0; i < 30; i++) {
        pool_case pc;
        random_pool(&pc, i);
        int64_t xs[4] = {pc.n, pc.c, pc.h, pc.w};
        int64_t ys[4] = {pc.n, pc.c, pc.oh, pc.ow};
        op_input in[2] = {
            input(t, 4, xs, i % 3 == 1 ? VIEW_STRIDED : VIEW_PLAIN, -3, 3),
            input(t, 4, ys, i % 4 == 1 ? VIEW_STRIDED : VIEW_PLAIN, -1, 1)};
        if (i % 2) /* small integers: ties decide the index */
            for (int64_t e = 0; e < base_numel(&in[0]); e++)
                in[0].data[e] = floor(in[0].data[e]);
        char name[200];
        snprintf(name, sizeof name,
                 "pool %s x[%lld,%lld,%lld,%lld] k%dx%d s%dx%d p%dx%d mode %d "
                 "cip %d", kiln_dtype_name(t), (long long)pc.n,
                 (long long)pc.c, (long long)pc.h, (long long)pc.w,
                 pc.p.kernel[0], pc.p.kernel[1], pc.p.stride[0],
                 pc.p.stride[1], pc.p.padding[0], pc.p.padding[1],
                 (int)pc.p.mode, pc.p.count_include_pad);
        tolerance avg = {0, 0, 16 * eps_of(t)};
        check_op(st, dev, ref, name, 1, in, call_max_pool, &pc, exact_tol());
        check_op(st, dev, ref, name, 1, in, call_max_indices, &pc,
                 exact_tol());
        check_op(st, dev, ref, name, 2, in, call_max_backward, &pc,
                 exact_tol());
        check_op(st, dev, ref, name, 1, in, call_avg_pool, &pc, avg);
        check_op(st, dev, ref, name, 1, &in[1], call_avg_backward, &pc, avg);
        check_op(st, dev, ref, name, 1, in, call_global, NULL,
                 sum_tol(t, pc.h * pc.w));
        free_inputs(2, in);
    }
}

/* ---- the reference against naive host loops (f64) ----------------------- */

/* Direct cross-correlation of host arrays with the case's geometry. */
static void host_conv(const conv_case *cc, const double *x, const double *w,
                      double *y)
{
    int64_t pt, pl, g = cgroups(cc), cg = cc->c / g, ocg = cc->oc / g;
    int sh = cc->p.stride[0] ? cc->p.stride[0] : 1;
    int sw = cc->p.stride[1] ? cc->p.stride[1] : 1;
    int dh = cc->p.dilation[0] ? cc->p.dilation[0] : 1;
    int dw = cc->p.dilation[1] ? cc->p.dilation[1] : 1;
    out_size(cc->h, cc->kh, sh, dh, cc->p.padding[0], cc->p.mode, &pt);
    out_size(cc->w, cc->kw, sw, dw, cc->p.padding[1], cc->p.mode, &pl);
    for (int64_t n = 0; n < cc->n; n++)
    for (int64_t o = 0; o < cc->oc; o++)
    for (int64_t i = 0; i < cc->oh; i++)
    for (int64_t j = 0; j < cc->ow; j++) {
        double acc = 0;
        for (int64_t c = 0; c < cg; c++)
        for (int64_t a = 0; a < cc->kh; a++)
        for (int64_t b = 0; b < cc->kw; b++) {
            int64_t h = i * sh - pt + a * dh, v = j * sw - pl + b * dw;
            if (h < 0 || h >= cc->h || v < 0 || v >= cc->w)
                continue;
            int64_t ci = o / ocg * cg + c;
            acc += x[((n * cc->c + ci) * cc->h + h) * cc->w + v] *
                   w[((o * cg + c) * cc->kh + a) * cc->kw + b];
        }
        y[((n * cc->oc + o) * cc->oh + i) * cc->ow + j] = acc;
    }
}

static double max_abs_diff(const double *a, const double *b, int64_t n)
{
    double m = 0;
    for (int64_t i = 0; i < n; i++)
        m = fmax(m, fabs(a[i] - b[i]));
    return m;
}

static void test_reference_naive(void)
{
    for (int i = 0; i < 24; i++) {
        conv_case cc;
        random_conv(&cc, i);
        cc.bias = 0;
        int64_t xs[4] = {cc.n, cc.c, cc.h, cc.w};
        int64_t ws[4] = {cc.oc, cc.c / cgroups(&cc), cc.kh, cc.kw};
        op_input in[2] = {input(KILN_F64, 4, xs, VIEW_PLAIN, -1, 1),
                          input(KILN_F64, 4, ws, VIEW_PLAIN, -1, 1)};
        int64_t n = 0, shape[KILN_MAX_DIMS];
        int nd = 0;
        kiln_dtype dt;
        double *y = run_on(ref, 2, in, call_conv2d, &cc, 0, &n, shape, &nd,
                           &dt);
        int64_t want = cc.n * cc.oc * cc.oh * cc.ow;
        double *h = malloc((size_t)want * sizeof *h);
        host_conv(&cc, in[0].data, in[1].data, h);
        char name[200];
        describe(name, sizeof name, "naive", KILN_F64, &cc);
        CHECK(y && n == want && shape[2] == cc.oh && shape[3] == cc.ow &&
                  max_abs_diff(y, h, n) < 1e-12,
              "reference conv2d differs from the naive loop: %s", name);
        free(y);
        free(h);
        free_inputs(2, in);
    }
}

/* ---- gradient checks (reference, f64) ----------------------------------- */

/* sum(f(inputs) * r). */
static double objective(int nin, const op_input *ins, op_fn f,
                        const void *arg, const double *r)
{
    int64_t n = 0, shape[KILN_MAX_DIMS];
    int nd;
    kiln_dtype dt;
    double *y = run_on(ref, nin, ins, f, arg, 0, &n, shape, &nd, &dt);
    double s = 0;
    for (int64_t i = 0; y && i < n; i++)
        s += y[i] * r[i];
    free(y);
    return s;
}

/* Central differences of sum(f * r) with respect to input @which, against
 * @analytic; prints and checks the worst relative error. */
static void gradcheck(const char *op, int nin, op_input *ins, op_fn f,
                      const void *arg, int which, const double *r,
                      const double *analytic, int64_t count)
{
    const double h = 1e-6;
    double worst = 0;
    int64_t n = base_numel(&ins[which]);
    CHECK(analytic && n == count, "gradcheck %s: no analytic gradient", op);
    for (int64_t i = 0; analytic && i < n; i++) {
        double v = ins[which].data[i];
        ins[which].data[i] = v + h;
        double up = objective(nin, ins, f, arg, r);
        ins[which].data[i] = v - h;
        double down = objective(nin, ins, f, arg, r);
        ins[which].data[i] = v;
        double num = (up - down) / (2 * h), a = analytic[i];
        double rel = fabs(a - num) / fmax(fmax(fabs(a), fabs(num)), 1e-3);
        worst = fmax(worst, rel);
    }
    printf("gradcheck %s max_rel_err %.3g\n", op, worst);
    CHECK(worst < 1e-6, "gradcheck %s: relative error %.3g", op, worst);
}

/* Runs @f on the reference and returns its values. */
static double *ref_values(int nin, const op_input *ins, op_fn f,
                          const void *arg, int64_t *n)
{
    int64_t shape[KILN_MAX_DIMS];
    int nd;
    kiln_dtype dt;
    return run_on(ref, nin, ins, f, arg, 0, n, shape, &nd, &dt);
}

/* Transposed convolution's adjoints: d/dx = conv2d(r, w), d/dw =
 * conv2d_backward_weights(dy = x, x = r). */
static kiln_tensor *call_conv_nobias(kiln_tensor **in, const void *arg)
{
    return kiln_conv2d(in[0], in[1], NULL, &((const conv_case *)arg)->p);
}

static void gradcheck_conv(void)
{
    conv_case cc = {.n = 2, .c = 4, .h = 6, .w = 5, .oc = 4, .kh = 3,
                    .kw = 2, .bias = 1,
                    .p = {.stride = {2, 1}, .padding = {1, 0},
                          .dilation = {1, 2}, .groups = 2}};
    int64_t b;
    cc.oh = out_size(6, 3, 2, 1, 1, KILN_PAD_EXPLICIT, &b);
    cc.ow = out_size(5, 2, 1, 2, 0, KILN_PAD_EXPLICIT, &b);
    int64_t xs[4] = {2, 4, 6, 5}, ws[4] = {4, 2, 3, 2};
    int64_t ys[4] = {2, 4, cc.oh, cc.ow};
    op_input in[3] = {input(KILN_F64, 4, xs, VIEW_PLAIN, -1, 1),
                      input(KILN_F64, 4, ws, VIEW_PLAIN, -1, 1),
                      input(KILN_F64, 1, &cc.oc, VIEW_PLAIN, -1, 1)};
    op_input r = input(KILN_F64, 4, ys, VIEW_PLAIN, -1, 1);
    int64_t n;
    op_input bd[2] = {r, in[1]}, bw[2] = {r, in[0]};
    double *g = ref_values(2, bd, call_backward_data, &cc, &n);
    gradcheck("conv2d_data", 3, in, call_conv2d, &cc, 0, r.data, g, n);
    free(g);
    g = ref_values(2, bw, call_backward_weights, &cc, &n);
    gradcheck("conv2d_weights", 3, in, call_conv2d, &cc, 1, r.data, g, n);
    free(g);
    g = ref_values(1, &r, call_backward_bias, &cc, &n);
    gradcheck("conv2d_bias", 3, in, call_conv2d, &cc, 2, r.data, g, n);
    free(g);
    free_inputs(3, in);
    free(r.data);

    /* conv_transpose2d: x [N, OC, OH, OW] -> r's shape [N, C, H, W]. */
    cc.opad[0] = 1; /* height (3-1)*2 - 2 + 2 + 1 + 1 = 6 again */
    op_input tin[3] = {input(KILN_F64, 4, ys, VIEW_PLAIN, -1, 1),
                       input(KILN_F64, 4, ws, VIEW_PLAIN, -1, 1),
                       input(KILN_F64, 1, &cc.c, VIEW_PLAIN, -1, 1)};
    int64_t ts[4] = {2, 4, 6, 5};
    op_input tr = input(KILN_F64, 4, ts, VIEW_PLAIN, -1, 1);
    op_input cd[2] = {tr, tin[1]}, cw[2] = {tin[0], tr};
    g = ref_values(2, cd, call_conv_nobias, &cc, &n);
    gradcheck("conv_transpose2d_data", 3, tin, call_transpose, &cc, 0,
              tr.data, g, n);
    free(g);
    g = ref_values(2, cw, call_backward_weights, &cc, &n);
    gradcheck("conv_transpose2d_weights", 3, tin, call_transpose, &cc, 1,
              tr.data, g, n);
    free(g);
    free_inputs(3, tin);
    free(tr.data);
}

static void gradcheck_pool(void)
{
    pool_case pc = {.n = 2, .c = 2, .h = 7, .w = 6,
                    .p = {.kernel = {3, 2}, .stride = {2, 1},
                          .padding = {1, 1}}};
    int64_t b;
    pc.oh = out_size(7, 3, 2, 1, 1, KILN_PAD_EXPLICIT, &b);
    pc.ow = out_size(6, 2, 1, 1, 1, KILN_PAD_EXPLICIT, &b);
    int64_t xs[4] = {2, 2, 7, 6}, ys[4] = {2, 2, pc.oh, pc.ow};
    op_input x = input(KILN_F64, 4, xs, VIEW_PLAIN, -1, 1);
    /* Distinct values far apart compared with h: the maxima do not move. */
    for (int64_t i = 0; i < base_numel(&x); i++)
        x.data[i] = (double)((i * 37) % 84) * 0.01 + x.data[i] * 1e-4;
    op_input r = input(KILN_F64, 4, ys, VIEW_PLAIN, -1, 1);
    op_input mb[2] = {x, r};
    int64_t n;
    double *g = ref_values(2, mb, call_max_backward, &pc, &n);
    gradcheck("max_pool2d", 1, &x, call_max_pool, &pc, 0, r.data, g, n);
    free(g);
    for (int cip = 0; cip < 2; cip++) {
        pc.p.count_include_pad = cip;
        g = ref_values(1, &r, call_avg_backward, &pc, &n);
        gradcheck(cip ? "avg_pool2d_count_include_pad" : "avg_pool2d", 1, &x,
                  call_avg_pool, &pc, 0, r.data, g, n);
        free(g);
    }
    free(x.data);
    free(r.data);
}

/* ---- the course's worked examples (COURSE.md example 11), exactly ------ */

static void expect_exact(const char *what, kiln_tensor *t, const float *want,
                         int64_t n)
{
    float got[64] = {0};
    kiln_status s = t ? kiln_tensor_read(t, got, (size_t)n * sizeof(float))
                      : KILN_ERROR_INVALID_ARGUMENT;
    int ok = s == KILN_OK && kiln_tensor_numel(t) == n;
    for (int64_t i = 0; ok && i < n; i++)
        ok = got[i] == want[i];
    CHECK(ok, "%s: wrong result (%s)", what, kiln_error_message(dev));
    kiln_tensor_free(t);
}

static void test_course(void)
{
    static const float image[36] = {3, 0, 1, 2, 7, 4, 1, 5, 8, 9, 3, 1,
                                    2, 7, 2, 5, 1, 3, 0, 1, 3, 1, 7, 8,
                                    4, 2, 1, 6, 2, 8, 2, 4, 5, 2, 3, 9};
    static const float vertical[9] = {1, 0, -1, 1, 0, -1, 1, 0, -1};
    static const float edges[16] = {-5, -4, 0, 8, -10, -2, 2, 3,
                                    0, -2, -4, -7, -3, -2, -3, -16};
    float step[36], step_out[16];
    for (int i = 0; i < 36; i++)
        step[i] = i % 6 < 3 ? 10 : 0;
    for (int i = 0; i < 16; i++)
        step_out[i] = i % 4 == 1 || i % 4 == 2 ? 30 : 0;
    int64_t xs[4] = {1, 1, 6, 6}, ws[4] = {1, 1, 3, 3};
    kiln_tensor *w = kiln_tensor_from_data(dev, KILN_F32, 4, ws, vertical,
                                           sizeof vertical);
    kiln_tensor *x = kiln_tensor_from_data(dev, KILN_F32, 4, xs, image,
                                           sizeof image);
    expect_exact("vertical edge filter", kiln_conv2d(x, w, NULL, NULL), edges,
                 16);
    kiln_tensor *s = kiln_tensor_from_data(dev, KILN_F32, 4, xs, step,
                                           sizeof step);
    expect_exact("step edge", kiln_conv2d(s, w, NULL, NULL), step_out, 16);
    float two = 2, doubled[36];
    for (int i = 0; i < 36; i++)
        doubled[i] = 2 * image[i];
    kiln_tensor *w1 = kiln_tensor_from_data(dev, KILN_F32, 4,
                                            (int64_t[]){1, 1, 1, 1}, &two, 4);
    expect_exact("1x1 conv by 2", kiln_conv2d(x, w1, NULL, NULL), doubled,
                 36);
    static const float pin[16] = {1, 1, 2, 4, 5, 6, 7, 8,
                                  3, 2, 1, 0, 1, 2, 3, 4};
    static const float pout[4] = {6, 8, 3, 4};
    kiln_tensor *px = kiln_tensor_from_data(dev, KILN_F32, 4,
                                            (int64_t[]){1, 1, 4, 4}, pin,
                                            sizeof pin);
    kiln_pool2d_params pp = {.kernel = {2, 2}, .stride = {2, 2}};
    expect_exact("max pool 2x2/2", kiln_max_pool2d(px, &pp, NULL), pout, 4);
    kiln_tensor_free(w);
    kiln_tensor_free(x);
    kiln_tensor_free(s);
    kiln_tensor_free(w1);
    kiln_tensor_free(px);
}

/* ---- argument errors ---------------------------------------------------- */

static void expect_error(const char *what, kiln_tensor *t)
{
    CHECK(!t && kiln_status_of(dev) != KILN_OK &&
              strstr(kiln_error_message(dev), "kiln_") != NULL,
          "%s: expected an error, got %s", what,
          t ? "a tensor" : kiln_error_message(dev));
    kiln_tensor_free(t);
    kiln_clear_error(dev);
}

static void test_errors(void)
{
    kiln_tensor *x = kiln_tensor_new(dev, KILN_F32, 4, (int64_t[]){1, 4, 5, 5});
    kiln_tensor *w = kiln_tensor_new(dev, KILN_F32, 4, (int64_t[]){6, 2, 3, 3});
    kiln_tensor *big = kiln_tensor_new(dev, KILN_F32, 4,
                                       (int64_t[]){1, 4, 7, 7});
    kiln_tensor *b = kiln_tensor_new(dev, KILN_F32, 1, (int64_t[]){5});
    kiln_tensor *xi = kiln_tensor_new(dev, KILN_I32, 4,
                                      (int64_t[]){1, 4, 5, 5});
    kiln_conv2d_params g3 = {.groups = 3}, g2 = {.groups = 2};
    expect_error("groups not dividing", kiln_conv2d(x, w, NULL, &g3));
    expect_error("weights of the wrong group size",
                 kiln_conv2d(x, w, NULL, NULL));
    expect_error("kernel larger than input", kiln_conv2d(x, big, NULL, NULL));
    expect_error("bias of the wrong length", kiln_conv2d(x, w, b, &g2));
    expect_error("i32 input", kiln_conv2d(xi, w, NULL, &g2));
    expect_error("an activation the GEMM epilogue lacks",
                 kiln__conv2d_act(x, w, NULL, &g2, KILN_UNARY_EXP));
    expect_error("NULL x_shape",
                 kiln_conv2d_backward_data(x, w, NULL, &g2));
    kiln_pool2d_params wide = {.kernel = {2, 2}, .padding = {2, 0}};
    expect_error("pool padding above half the kernel",
                 kiln_max_pool2d(x, &wide, NULL));
    kiln_pool2d_params huge = {.kernel = {9, 9}};
    expect_error("pool window larger than input",
                 kiln_avg_pool2d(x, &huge));
    int opad[2] = {3, 0};
    kiln_conv2d_params s2 = {.stride = {2, 2}, .groups = 2};
    kiln_tensor *wt = kiln_tensor_new(dev, KILN_F32, 4,
                                      (int64_t[]){4, 3, 3, 3});
    expect_error("output_padding not below the stride",
                 kiln_conv_transpose2d(x, wt, NULL, &s2, opad));
    expect_error("NULL input", kiln_conv2d(NULL, w, NULL, NULL));
    kiln_tensor_free(x);
    kiln_tensor_free(w);
    kiln_tensor_free(big);
    kiln_tensor_free(b);
    kiln_tensor_free(xi);
    kiln_tensor_free(wt);
}

int main(int argc, char **argv)
{
    const char *spec = harness_device(argc, argv);
    harness_seed(argc, argv, &rng);
    dev = harness_open(spec, 256);
    ref = harness_open("reference", 256);
    test_course();
    test_errors();
    int fp64 = kiln_context_device(dev)->fp64;
    for (int ti = 0; ti < 2; ti++) {
        kiln_dtype t = ti ? KILN_F64 : KILN_F32;
        if (t == KILN_F64 && !fp64) {
            printf("skip f64: the device has no fp64\n");
            continue;
        }
        static const char *groups[] = {"conv2d", "conv1d", "conv_transpose2d",
                                       "pooling"};
        void (*fns[])(kiln_dtype, op_stats *) = {test_conv2d, test_conv1d,
                                                 test_transpose, test_pool};
        for (int f = 0; f < 4; f++) {
            op_stats st = {0};
            fns[f](t, &st);
            if (f == 0) {
                test_chunked(t, &st);
                test_epilogue(t);
            }
            char group[64];
            snprintf(group, sizeof group, "%s %s", groups[f],
                     kiln_dtype_name(t));
            report(group, &st);
        }
    }
    test_reference_naive();
    gradcheck_conv();
    gradcheck_pool();
    kiln_context_destroy(dev);
    kiln_context_destroy(ref);
    return harness_exit();
}
