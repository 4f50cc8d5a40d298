/*
 * graph_ops_math.c - graph nodes for elementwise ops and reductions, each
 * with its backward rule built from other nodes (so gradients fuse and
 * differentiate like anything else); graph_ops_shape.c has matrix
 * products and shape ops.
 */
#include <stdlib.h>
#include <string.h>

#include "graph/graph.h"

/* Is every dimension of @n's shape known when the graph is built? */
static int shape_known(const kiln_node *n)
{
    for (int d = 0; d < n->ndim; d++)
        if (n->shape[d] < 0)
            return 0;
    return 1;
}

/* Gradients build many small constants. */
static kiln_node *scalar_like(kiln_node *n, double v)
{
    return kiln_g_scalar(n->g, n->dtype, v);
}

kiln_status kiln__g_built(kiln_graph *g, int nout, kiln_node **dx,
                          const int *need)
{
    for (int i = 0; i < nout; i++)
        if (need[i] && !dx[i])
            return kiln_status_of(g->ctx) != KILN_OK
                       ? kiln_status_of(g->ctx)
                       : kiln__error(g->ctx, KILN_ERROR_INVALID_ARGUMENT,
                                     "kiln_g_gradients: a gradient node "
                                     "could not be built");
    return KILN_OK;
}

/* ---- unary ---------------------------------------------------------------- */

static const char *const unary_names[KILN_UNARY_COUNT] = {
    "neg", "abs", "square", "relu", "exp", "log", "sqrt", "sigmoid", "tanh"};

static kiln_tensor *(*const unary_eager[KILN_UNARY_COUNT])(kiln_tensor *) = {
    kiln_neg, kiln_abs, kiln_square, kiln_relu, kiln_exp,
    kiln_log, kiln_sqrt, kiln_sigmoid, kiln_tanh};

static kiln_status run_unary(kiln_node *n, kiln_tensor *const *in,
                             kiln_gvalue *out)
{
    out->t[0] = unary_eager[n->attr.i[0]](in[0]);
    return out->t[0] ? KILN_OK : kiln_status_of(n->g->ctx);
}

#define U(op, x) kiln__g_unary("kiln_g_gradients", (x), (op))
#define B(op, a, b) kiln__g_binary("kiln_g_gradients", (a), (b), (op))

static kiln_status unary_backward(kiln_node *n, kiln_node *dy,
                                  const int *need, kiln_node **dx)
{
    kiln_node *x = n->inputs[0], *y = n;
    switch (n->attr.i[0]) {
    case KILN_UNARY_NEG:
        dx[0] = U(KILN_UNARY_NEG, dy);
        break;
    case KILN_UNARY_ABS: {
        kiln_node *zero = scalar_like(n, 0);
        kiln_node *sign = B(KILN_BINARY_SUB, B(KILN_BINARY_GT, x, zero),
                            B(KILN_BINARY_LT, x, zero));
        dx[0] = B(KILN_BINARY_MUL, dy, sign);
        break;
    }
    case KILN_UNARY_SQUARE:
        dx[0] = B(KILN_BINARY_MUL, dy,
                  B(KILN_BINARY_MUL, x, scalar_like(n, 2)));
        break;
    case KILN_UNARY_RELU: {
        /* From the output (y > 0 exactly where x > 0), so the input has
         * no use besides relu and fuses into it (bias + relu). */
        kiln_node *zero = scalar_like(n, 0);
        dx[0] = kiln_g_select(B(KILN_BINARY_GT, y, zero), dy, zero);
        break;
    }
    case KILN_UNARY_EXP:
        dx[0] = B(KILN_BINARY_MUL, dy, y);
        break;
    case KILN_UNARY_LOG:
        dx[0] = B(KILN_BINARY_DIV, dy, x);
        break;
    case KILN_UNARY_SQRT:
        dx[0] = B(KILN_BINARY_DIV, B(KILN_BINARY_MUL, dy, scalar_like(n, 0.5)),
                  y);
        break;
    case KILN_UNARY_SIGMOID:
        dx[0] = B(KILN_BINARY_MUL, dy,
                  B(KILN_BINARY_MUL, y,
                    B(KILN_BINARY_SUB, scalar_like(n, 1), y)));
        break;
    case KILN_UNARY_TANH:
        dx[0] = B(KILN_BINARY_MUL, dy,
                  B(KILN_BINARY_SUB, scalar_like(n, 1),
                    U(KILN_UNARY_SQUARE, y)));
        break;
    }
    return kiln__g_built(n->g, 1, dx, need);
}

static const kiln_gop gop_unary = {.name = "unary", .fuse = KILN_GFUSE_UNARY,
                                   .run = run_unary,
                                   .backward = unary_backward};

kiln_node *kiln__g_unary(const char *call, kiln_node *x, int op)
{
    kiln_node *n = kiln__g_node(call, &gop_unary, 1, &x);
    if (!n)
        return NULL;
    if (op >= KILN_UNARY_FIRST_FLOAT_ONLY && !kiln__is_float(x->dtype))
        return kiln__error_null(n->g->ctx, KILN_ERROR_DTYPE,
                                "%s: needs f32 or f64, got %s", call,
                                kiln_dtype_name(x->dtype));
    n->attr.i[0] = op;
    kiln__g_set_shape(n, x->dtype, x->ndim, x->shape);
    kiln__copy_string(n->name, sizeof n->name, unary_names[op]);
    return n;
}

#define UNARY_API(fn, op)                                                     \
    kiln_node *kiln_g_##fn(kiln_node *x)                                      \
    {                                                                         \
        return kiln__g_unary("kiln_g_" #fn, x, op);                           \
    }
UNARY_API(neg, KILN_UNARY_NEG)
UNARY_API(abs, KILN_UNARY_ABS)
UNARY_API(square, KILN_UNARY_SQUARE)
UNARY_API(relu, KILN_UNARY_RELU)
UNARY_API(exp, KILN_UNARY_EXP)
UNARY_API(log, KILN_UNARY_LOG)
UNARY_API(sqrt, KILN_UNARY_SQRT)
UNARY_API(sigmoid, KILN_UNARY_SIGMOID)
UNARY_API(tanh, KILN_UNARY_TANH)

/* ---- binary and select --------------------------------------------------- */

static const char *const binary_names[KILN_BINARY_COUNT] = {
    "add", "sub", "mul", "div", "minimum", "maximum", "pow",
    "eq",  "ne",  "lt",  "le",  "gt",      "ge"};

static kiln_tensor *(*const binary_eager[KILN_BINARY_EQ])(kiln_tensor *,
                                                          kiln_tensor *) = {
    kiln_add, kiln_sub, kiln_mul, kiln_div, kiln_minimum, kiln_maximum,
    kiln_pow};

static kiln_status run_binary(kiln_node *n, kiln_tensor *const *in,
                              kiln_gvalue *out)
{
    int op = (int)n->attr.i[0];
    out->t[0] = op < KILN_BINARY_EQ
                    ? binary_eager[op](in[0], in[1])
                    : kiln_compare(in[0], in[1],
                                   (kiln_compare_op)(op - KILN_BINARY_EQ));
    return out->t[0] ? KILN_OK : kiln_status_of(n->g->ctx);
}

/*
 * Does operand @k of the broadcasting node @n provably have @n's shape at
 * run time, so its gradient needs no sum_to_like (whose `like` input would
 * be a second use of the operand, keeping it from fusing)?  True when every
 * dim matches a known size, or is free in the operand while every other
 * operand has 1 (or nothing) there - x [-1, 120] + b [1, 120].
 */
static int has_output_shape(const kiln_node *n, int k)
{
    const kiln_node *x = n->inputs[k];
    if (x->ndim != n->ndim)
        return 0;
    for (int d = 0; d < n->ndim; d++) {
        if (x->shape[d] >= 0 && x->shape[d] == n->shape[d])
            continue;
        if (x->shape[d] != -1)
            return 0;
        for (int j = 0; j < n->ninputs; j++) {
            const kiln_node *o = n->inputs[j];
            int od = d - (n->ndim - o->ndim);
            if (j != k && od >= 0 && o->shape[od] != 1)
                return 0;
        }
    }
    return 1;
}

/* The gradient of operand @k from @g (of @n's shape). */
static kiln_node *to_operand(kiln_node *n, int k, kiln_node *g)
{
    return has_output_shape(n, k) ? g : kiln__g_sum_to_like(g, n->inputs[k]);
}

static kiln_status binary_backward(kiln_node *n, kiln_node *dy,
                                   const int *need, kiln_node **dx)
{
    kiln_node *a = n->inputs[0], *b = n->inputs[1];
    kiln_node *da = NULL, *db = NULL;
    switch (n->attr.i[0]) {
    case KILN_BINARY_ADD:
        da = dy;
        db = dy;
        break;
    case KILN_BINARY_SUB:
        da = dy;
        db = need[1] ? U(KILN_UNARY_NEG, dy) : NULL;
        break;
    case KILN_BINARY_MUL:
        da = need[0] ? B(KILN_BINARY_MUL, dy, b) : NULL;
        db = need[1] ? B(KILN_BINARY_MUL, dy, a) : NULL;
        break;
    case KILN_BINARY_DIV:
        da = need[0] ? B(KILN_BINARY_DIV, dy, b) : NULL;
        db = need[1] ? U(KILN_UNARY_NEG,
                         B(KILN_BINARY_DIV, B(KILN_BINARY_MUL, dy, n), b))
                     : NULL;
        break;
    case KILN_BINARY_MIN:
    case KILN_BINARY_MAX: {
        /* Ties send the gradient to a. */
        int cmp = n->attr.i[0] == KILN_BINARY_MIN ? KILN_BINARY_LE
                                                  : KILN_BINARY_GE;
        kiln_node *zero = scalar_like(n, 0);
        kiln_node *mask = B(cmp, a, b);
        da = need[0] ? kiln_g_select(mask, dy, zero) : NULL;
        db = need[1] ? kiln_g_select(mask, zero, dy) : NULL;
        break;
    }
    case KILN_BINARY_POW:
        da = need[0] ? B(KILN_BINARY_MUL,
                         B(KILN_BINARY_MUL, dy, b),
                         B(KILN_BINARY_POW, a,
                           B(KILN_BINARY_SUB, b, scalar_like(n, 1))))
                     : NULL;
        db = need[1] ? B(KILN_BINARY_MUL, B(KILN_BINARY_MUL, dy, n),
                         U(KILN_UNARY_LOG, a))
                     : NULL;
        break;
    }
    dx[0] = need[0] && da ? to_operand(n, 0, da) : NULL;
    dx[1] = need[1] && db ? to_operand(n, 1, db) : NULL;
    return kiln__g_built(n->g, 2, dx, need);
}

static const kiln_gop gop_binary = {.name = "binary",
                                    .fuse = KILN_GFUSE_BINARY,
                                    .run = run_binary,
                                    .backward = binary_backward};
static const kiln_gop gop_compare = {.name = "compare",
                                     .fuse = KILN_GFUSE_BINARY,
                                     .run = run_binary, .no_grad = 1};

/* Is @n the shared 0-D constant @value (kiln_g_scalar)? */
static int is_scalar(const kiln_node *n, double value)
{
    return n->op == &kiln__gop_constant && n->attr.i[0] == 1 &&
           n->attr.d[0] == value;
}

kiln_node *kiln__g_binary(const char *call, kiln_node *a, kiln_node *b,
                          int op)
{
    kiln_node *args[2] = {a, b};
    kiln_graph *g = kiln__g_args(call, 2, args);
    if (!g)
        return NULL;
    /* x * 1, 1 * x, x + 0, 0 + x, x - 0 are x: a 0-D operand never
     * changes the shape, and gradients seeded with 1 are full of these. */
    if (a->dtype == b->dtype) {
        if ((op == KILN_BINARY_MUL && is_scalar(b, 1)) ||
            ((op == KILN_BINARY_ADD || op == KILN_BINARY_SUB) &&
             is_scalar(b, 0)))
            return a;
        if ((op == KILN_BINARY_MUL && is_scalar(a, 1)) ||
            (op == KILN_BINARY_ADD && is_scalar(a, 0)))
            return b;
    }
    if (a->dtype != b->dtype)
        return kiln__error_null(g->ctx, KILN_ERROR_DTYPE,
                                "%s: operands are %s and %s (cast one first)",
                                call, kiln_dtype_name(a->dtype),
                                kiln_dtype_name(b->dtype));
    if (op == KILN_BINARY_POW && !kiln__is_float(a->dtype))
        return kiln__error_null(g->ctx, KILN_ERROR_DTYPE,
                                "%s: needs f32 or f64, got %s", call,
                                kiln_dtype_name(a->dtype));
    int64_t shape[KILN_MAX_DIMS];
    int ndim = kiln__g_broadcast(g, call, 2, args, shape);
    if (ndim < 0)
        return NULL;
    kiln_node *n = kiln__g_node(call,
                                op >= KILN_BINARY_EQ ? &gop_compare
                                                     : &gop_binary,
                                2, args);
    if (!n)
        return NULL;
    n->attr.i[0] = op;
    kiln__g_set_shape(n, a->dtype, ndim, shape);
    kiln__copy_string(n->name, sizeof n->name, binary_names[op]);
    return n;
}

#define BINARY_API(fn, op)                                                    \
    kiln_node *kiln_g_##fn(kiln_node *a, kiln_node *b)                        \
    {                                                                         \
        return kiln__g_binary("kiln_g_" #fn, a, b, op);                       \
    }
BINARY_API(add, KILN_BINARY_ADD)
BINARY_API(sub, KILN_BINARY_SUB)
BINARY_API(mul, KILN_BINARY_MUL)
BINARY_API(div, KILN_BINARY_DIV)
BINARY_API(minimum, KILN_BINARY_MIN)
BINARY_API(maximum, KILN_BINARY_MAX)
BINARY_API(pow, KILN_BINARY_POW)

kiln_node *kiln_g_compare(kiln_node *a, kiln_node *b, kiln_compare_op op)
{
    if ((unsigned)op > KILN_GE) {
        kiln_graph *g = a ? a->g : b ? b->g : NULL;
        return g ? kiln__error_null(g->ctx, KILN_ERROR_INVALID_ARGUMENT,
                                    "kiln_g_compare: unknown comparison %d",
                                    (int)op)
                 : NULL;
    }
    return kiln__g_binary("kiln_g_compare", a, b, KILN_BINARY_EQ + (int)op);
}

kiln_node *kiln_g_scale(kiln_node *x, double s)
{
    if (!x)
        return NULL;
    return kiln__g_binary("kiln_g_scale", x, kiln_g_scalar(x->g, x->dtype, s),
                          KILN_BINARY_MUL);
}

kiln_node *kiln_g_add_scalar(kiln_node *x, double s)
{
    if (!x)
        return NULL;
    return kiln__g_binary("kiln_g_add_scalar", x,
                          kiln_g_scalar(x->g, x->dtype, s), KILN_BINARY_ADD);
}

static kiln_status run_select(kiln_node *n, kiln_tensor *const *in,
                              kiln_gvalue *out)
{
    out->t[0] = kiln_select(in[0], in[1], in[2]);
    return out->t[0] ? KILN_OK : kiln_status_of(n->g->ctx);
}

static kiln_status select_backward(kiln_node *n, kiln_node *dy,
                                   const int *need, kiln_node **dx)
{
    kiln_node *c = n->inputs[0], *zero = scalar_like(n, 0);
    dx[0] = NULL; /* the condition is discrete */
    dx[1] = need[1] ? to_operand(n, 1, kiln_g_select(c, dy, zero)) : NULL;
    dx[2] = need[2] ? to_operand(n, 2, kiln_g_select(c, zero, dy)) : NULL;
    int need_values[3] = {0, need[1], need[2]};
    return kiln__g_built(n->g, 3, dx, need_values);
}

static const kiln_gop gop_select = {.name = "select",
                                    .fuse = KILN_GFUSE_SELECT,
                                    .run = run_select,
                                    .backward = select_backward};

kiln_node *kiln_g_select(kiln_node *cond, kiln_node *a, kiln_node *b)
{
    const char *call = "kiln_g_select";
    kiln_node *args[3] = {cond, a, b};
    kiln_graph *g = kiln__g_args(call, 3, args);
    if (!g)
        return NULL;
    if (a->dtype != b->dtype || cond->dtype != a->dtype)
        return kiln__error_null(g->ctx, KILN_ERROR_DTYPE,
                                "%s: condition, a and b are %s, %s and %s "
                                "(all must match)", call,
                                kiln_dtype_name(cond->dtype),
                                kiln_dtype_name(a->dtype),
                                kiln_dtype_name(b->dtype));
    int64_t shape[KILN_MAX_DIMS];
    int ndim = kiln__g_broadcast(g, call, 3, args, shape);
    if (ndim < 0)
        return NULL;
    kiln_node *n = kiln__g_node(call, &gop_select, 3, args);
    if (n)
        kiln__g_set_shape(n, a->dtype, ndim, shape);
    return n;
}

/* ---- helpers for gradients: run-time shapes ------------------------------ */

static kiln_tensor *alias(kiln_tensor *t)
{
    return kiln__tensor_view(t);
}

static int same_shape(const kiln_tensor *a, const kiln_tensor *b)
{
    return a->ndim == b->ndim &&
           !memcmp(a->shape, b->shape, sizeof(int64_t) * (size_t)a->ndim);
}

static kiln_status run_sum_to_like(kiln_node *n, kiln_tensor *const *in,
                                   kiln_gvalue *out)
{
    out->t[0] = same_shape(in[0], in[1])
                    ? alias(in[0])
                    : kiln_sum_to_shape(in[0], in[1]->ndim, in[1]->shape);
    return out->t[0] ? KILN_OK : kiln_status_of(n->g->ctx);
}

/* Fused: the sum over kiln__sum_to_axes, reshaped to `like`. */
static int sum_to_like_reduction(const kiln_node *n, int ndim,
                                 const int64_t *shape, kiln_tensor *const *in,
                                 kiln_greduction *r)
{
    (void)n;
    *r = (kiln_greduction){.op = KILN_REDUCE_SUM, .keepdims = 1,
                           .reshape_like = in[1]};
    r->naxes = kiln__sum_to_axes(ndim, shape, in[1]->ndim, in[1]->shape,
                                 r->axes);
    return r->naxes < 0 ? -1 : 0;
}

static const kiln_gop gop_sum_to_like = {.name = "sum_to_like",
                                         .fuse = KILN_GFUSE_REDUCE,
                                         .run = run_sum_to_like,
                                         .reduction = sum_to_like_reduction,
                                         .no_grad = 1};

kiln_node *kiln__g_sum_to_like(kiln_node *x, kiln_node *like)
{
    if (!x || !like)
        return NULL;
    /* Equal known shapes need no node at all. */
    if (x->ndim == like->ndim &&
        !memcmp(x->shape, like->shape, sizeof(int64_t) * (size_t)x->ndim)) {
        int known = 1;
        for (int d = 0; d < x->ndim; d++)
            known &= x->shape[d] >= 0;
        if (known)
            return x;
    }
    kiln_node *args[2] = {x, like};
    kiln_node *n = kiln__g_node("kiln_g_gradients", &gop_sum_to_like, 2, args);
    if (n)
        kiln__g_set_shape(n, x->dtype, like->ndim, like->shape);
    return n;
}

static kiln_status run_reshape_like(kiln_node *n, kiln_tensor *const *in,
                                    kiln_gvalue *out)
{
    out->t[0] = kiln_reshape(in[0], in[1]->ndim, in[1]->shape);
    return out->t[0] ? KILN_OK : kiln_status_of(n->g->ctx);
}

static kiln_status reshape_like_backward(kiln_node *n, kiln_node *dy,
                                         const int *need, kiln_node **dx)
{
    dx[0] = need[0] ? kiln__g_reshape_like(dy, n->inputs[0]) : NULL;
    dx[1] = NULL;
    int need0[2] = {need[0], 0};
    return kiln__g_built(n->g, 2, dx, need0);
}

static const kiln_gop gop_reshape_like = {.name = "reshape_like",
                                          .run = run_reshape_like,
                                          .backward = reshape_like_backward};

kiln_node *kiln__g_reshape_like(kiln_node *x, kiln_node *like)
{
    kiln_node *args[2] = {x, like};
    kiln_node *n = kiln__g_node("kiln_g_gradients", &gop_reshape_like, 2, args);
    if (n)
        kiln__g_set_shape(n, x->dtype, like->ndim, like->shape);
    return n;
}

static kiln_status run_fill_like(kiln_node *n, kiln_tensor *const *in,
                                 kiln_gvalue *out)
{
    kiln_tensor *t = kiln_tensor_new(n->g->ctx, n->dtype, in[0]->ndim,
                                     in[0]->shape);
    if (!t || kiln_fill(t, n->attr.d[0]) != KILN_OK) {
        kiln_tensor_free(t);
        return kiln_status_of(n->g->ctx);
    }
    out->t[0] = t;
    return KILN_OK;
}

static const kiln_gop gop_fill_like = {.name = "fill_like",
                                       .run = run_fill_like, .no_grad = 1};

kiln_node *kiln__g_fill_like(kiln_node *like, double value)
{
    kiln_node *n = kiln__g_node("kiln_g_gradients", &gop_fill_like, 1, &like);
    if (!n)
        return NULL;
    n->attr.d[0] = value;
    kiln__g_set_shape(n, like->dtype, like->ndim, like->shape);
    return n;
}

/* ---- reductions ------------------------------------------------------------ */

/* attr: i[0] op, i[1] naxes, i[2] keepdims, i[3..] axes. */
static void reduce_axes(const kiln_node *n, int *axes)
{
    for (int k = 0; k < n->attr.i[1]; k++)
        axes[k] = (int)n->attr.i[3 + k];
}

static kiln_status run_reduce(kiln_node *n, kiln_tensor *const *in,
                              kiln_gvalue *out)
{
    int axes[KILN_MAX_DIMS];
    reduce_axes(n, axes);
    out->t[0] = kiln_reduce(in[0], (kiln_reduce_op)n->attr.i[0],
                            (int)n->attr.i[1], n->attr.i[1] ? axes : NULL,
                            (int)n->attr.i[2]);
    return out->t[0] ? KILN_OK : kiln_status_of(n->g->ctx);
}

/* The run-time count of reduced elements, as a 0-D tensor 1/count. */
static kiln_status run_inv_count(kiln_node *n, kiln_tensor *const *in,
                                 kiln_gvalue *out)
{
    int64_t nx = kiln_tensor_numel(in[0]), ny = kiln_tensor_numel(in[1]);
    kiln_tensor *t = kiln_tensor_new(n->g->ctx, n->dtype, 0, NULL);
    if (!t || kiln_fill(t, ny ? (double)ny / (double)nx : 0.0) != KILN_OK) {
        kiln_tensor_free(t);
        return kiln_status_of(n->g->ctx);
    }
    out->t[0] = t;
    return KILN_OK;
}

static const kiln_gop gop_inv_count = {.name = "inv_count",
                                       .run = run_inv_count, .no_grad = 1};

/* unreduce: dy of the reduction's output shape, broadcast back to x. */
static kiln_status run_unreduce(kiln_node *n, kiln_tensor *const *in,
                                kiln_gvalue *out)
{
    /* x's shape: its value's, or the node's own when it was known when
     * the gradient was built (then x is not an input, so it is not kept
     * alive, and an elementwise x can fuse into its reduction). */
    kiln_tensor *dy = in[0];
    int ndim = n->ninputs == 2 ? in[1]->ndim : n->ndim;
    const int64_t *xshape = n->ninputs == 2 ? in[1]->shape : n->shape;
    int64_t kshape[KILN_MAX_DIMS];
    int naxes = (int)n->attr.i[1];
    for (int d = 0; d < ndim; d++)
        kshape[d] = xshape[d];
    int reduced[KILN_MAX_DIMS] = {0};
    for (int k = 0; k < naxes; k++) {
        int a = (int)n->attr.i[3 + k];
        reduced[a < 0 ? a + ndim : a] = 1;
    }
    for (int d = 0; d < ndim; d++)
        if (!naxes || reduced[d])
            kshape[d] = 1;
    kiln_tensor *k = kiln_reshape(dy, ndim, kshape);
    if (!k)
        return kiln_status_of(n->g->ctx);
    out->t[0] = kiln_broadcast_to(k, ndim, xshape);
    kiln_tensor_free(k);
    return out->t[0] ? KILN_OK : kiln_status_of(n->g->ctx);
}

static const kiln_gop gop_unreduce = {.name = "unreduce",
                                      .run = run_unreduce, .no_grad = 1};

kiln_node *kiln__g_unreduce(kiln_node *x, kiln_node *like, int naxes,
                            const int *axes, int keepdims)
{
    kiln_node *args[2] = {x, like};
    kiln_node *n = kiln__g_node("kiln_g_gradients", &gop_unreduce,
                                like && shape_known(like) ? 1 : 2, args);
    if (!n)
        return NULL;
    n->attr.i[1] = naxes;
    n->attr.i[2] = keepdims;
    for (int k = 0; k < naxes; k++)
        n->attr.i[3 + k] = axes[k];
    kiln__g_set_shape(n, x->dtype, like->ndim, like->shape);
    return n;
}

static kiln_status reduce_backward(kiln_node *n, kiln_node *dy,
                                   const int *need, kiln_node **dx)
{
    kiln_node *x = n->inputs[0];
    int axes[KILN_MAX_DIMS];
    reduce_axes(n, axes);
    int naxes = (int)n->attr.i[1], keep = (int)n->attr.i[2];
    kiln_node *up = kiln__g_unreduce(dy, x, naxes, axes, keep);
    switch ((kiln_reduce_op)n->attr.i[0]) {
    case KILN_REDUCE_SUM:
        dx[0] = up;
        break;
    case KILN_REDUCE_MEAN: {
        kiln_node *args[2] = {x, n}, *inv;
        if (shape_known(x)) { /* a constant, and x is not kept for it */
            int64_t nx = 1, ny = 1;
            for (int d = 0; d < x->ndim; d++)
                nx *= x->shape[d];
            for (int d = 0; d < n->ndim; d++)
                ny *= n->shape[d];
            inv = scalar_like(n, nx ? (double)ny / (double)nx : 0.0);
        } else {
            inv = kiln__g_node("kiln_g_gradients", &gop_inv_count, 2, args);
            if (inv)
                kiln__g_set_shape(inv, n->dtype, 0, NULL);
        }
        dx[0] = B(KILN_BINARY_MUL, up, inv);
        break;
    }
    case KILN_REDUCE_MAX:
    case KILN_REDUCE_MIN: {
        /* Every element equal to the extreme gets the gradient. */
        kiln_node *y = kiln__g_unreduce(n, x, naxes, axes, keep);
        dx[0] = kiln_g_select(B(KILN_BINARY_EQ, x, y), up,
                              scalar_like(n, 0));
        break;
    }
    }
    return kiln__g_built(n->g, 1, dx, need);
}

/* Fused: the node's own op and axes (none given: every one). */
static int reduce_reduction(const kiln_node *n, int ndim, const int64_t *shape,
                            kiln_tensor *const *in, kiln_greduction *r)
{
    (void)shape;
    (void)in;
    *r = (kiln_greduction){.op = (kiln_reduce_op)n->attr.i[0],
                           .naxes = (int)n->attr.i[1],
                           .keepdims = (int)n->attr.i[2]};
    reduce_axes(n, r->axes);
    if (r->naxes == 0)
        for (int d = 0; d < ndim; d++)
            r->axes[r->naxes++] = d;
    /* A 0-D input reduces nothing: run it as the eager op does. */
    return r->naxes == 0 ? -1 : 0;
}

static const kiln_gop gop_reduce = {.name = "reduce",
                                    .fuse = KILN_GFUSE_REDUCE,
                                    .run = run_reduce,
                                    .reduction = reduce_reduction,
                                    .backward = reduce_backward};

kiln_node *kiln_g_reduce(kiln_node *x, kiln_reduce_op op, int naxes,
                         const int *axes, int keepdims)
{
    const char *call = "kiln_g_reduce";
    kiln_node *n = kiln__g_node(call, &gop_reduce, 1, &x);
    if (!n)
        return NULL;
    kiln_context *ctx = n->g->ctx;
    if ((unsigned)op > KILN_REDUCE_MIN || naxes < 0 || naxes > x->ndim ||
        (naxes && !axes))
        return kiln__error_null(ctx, KILN_ERROR_INVALID_ARGUMENT,
                                "%s: bad op %d or %d axes for a %d-D node",
                                call, (int)op, naxes, x->ndim);
    if (op == KILN_REDUCE_MEAN && !kiln__is_float(x->dtype))
        return kiln__error_null(ctx, KILN_ERROR_DTYPE,
                                "%s: mean needs f32 or f64, got %s", call,
                                kiln_dtype_name(x->dtype));
    int reduced[KILN_MAX_DIMS] = {0};
    for (int k = 0; k < naxes; k++) {
        int a = axes[k] < 0 ? axes[k] + x->ndim : axes[k];
        if (a < 0 || a >= x->ndim || reduced[a])
            return kiln__error_null(ctx, KILN_ERROR_INVALID_ARGUMENT,
                                    "%s: axis %d is out of range or repeated "
                                    "for a %d-D node", call, axes[k], x->ndim);
        reduced[a] = 1;
        n->attr.i[3 + k] = a;
    }
    n->attr.i[0] = op;
    n->attr.i[1] = naxes;
    n->attr.i[2] = keepdims;
    int64_t shape[KILN_MAX_DIMS];
    int ndim = 0;
    for (int d = 0; d < x->ndim; d++) {
        int r = naxes == 0 || reduced[d];
        if (!r)
            shape[ndim++] = x->shape[d];
        else if (keepdims)
            shape[ndim++] = 1;
    }
    kiln__g_set_shape(n, x->dtype, ndim, shape);
    static const char *const names[] = {"sum", "mean", "max", "min"};
    kiln__copy_string(n->name, sizeof n->name, names[op]);
    return n;
}

kiln_node *kiln_g_sum(kiln_node *x, int naxes, const int *axes, int keepdims)
{
    return kiln_g_reduce(x, KILN_REDUCE_SUM, naxes, axes, keepdims);
}

kiln_node *kiln_g_mean(kiln_node *x, int naxes, const int *axes, int keepdims)
{
    return kiln_g_reduce(x, KILN_REDUCE_MEAN, naxes, axes, keepdims);
}

static kiln_status run_argmax(kiln_node *n, kiln_tensor *const *in,
                              kiln_gvalue *out)
{
    out->t[0] = kiln_argmax(in[0], (int)n->attr.i[0], (int)n->attr.i[1]);
    return out->t[0] ? KILN_OK : kiln_status_of(n->g->ctx);
}

static const kiln_gop gop_argmax = {.name = "argmax", .run = run_argmax,
                                    .no_grad = 1};

kiln_node *kiln_g_argmax(kiln_node *x, int axis, int keepdims)
{
    kiln_node *n = kiln__g_node("kiln_g_argmax", &gop_argmax, 1, &x);
    if (!n)
        return NULL;
    int a = axis < 0 ? axis + x->ndim : axis;
    if (a < 0 || a >= x->ndim)
        return kiln__error_null(n->g->ctx, KILN_ERROR_INVALID_ARGUMENT,
                                "kiln_g_argmax: axis %d of a %d-D node", axis,
                                x->ndim);
    n->attr.i[0] = a;
    n->attr.i[1] = keepdims;
    int64_t shape[KILN_MAX_DIMS];
    int ndim = 0;
    for (int d = 0; d < x->ndim; d++)
        if (d != a)
            shape[ndim++] = x->shape[d];
        else if (keepdims)
            shape[ndim++] = 1;
    kiln__g_set_shape(n, KILN_I32, ndim, shape);
    return n;
}
