/*
 * graph_ops_math.c - graph nodes for elementwise ops, reductions, matrix
 * products and shape ops, each with its backward rule built from other
 * nodes (so gradients fuse and differentiate like anything else).
 */
#include <stdlib.h>
#include <string.h>

#include "graph/graph.h"

/* Gradients build many small constants. */
static kiln_node *scalar_like(kiln_node *n, double v)
{
    return kiln_g_scalar(n->g, n->dtype, v);
}

static kiln_status built(kiln_graph *g, int nout, kiln_node **dx,
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
    return built(n->g, 1, dx, need);
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
    return built(n->g, 2, dx, need);
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
    return built(n->g, 3, dx, need_values);
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

static const kiln_gop gop_sum_to_like = {.name = "sum_to_like",
                                         .run = run_sum_to_like,
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
    return built(n->g, 2, dx, need0);
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
    kiln_tensor *dy = in[0], *x = in[1];
    int64_t kshape[KILN_MAX_DIMS];
    int naxes = (int)n->attr.i[1];
    for (int d = 0; d < x->ndim; d++)
        kshape[d] = x->shape[d];
    int reduced[KILN_MAX_DIMS] = {0};
    for (int k = 0; k < naxes; k++) {
        int a = (int)n->attr.i[3 + k];
        reduced[a < 0 ? a + x->ndim : a] = 1;
    }
    for (int d = 0; d < x->ndim; d++)
        if (!naxes || reduced[d])
            kshape[d] = 1;
    kiln_tensor *k = kiln_reshape(dy, x->ndim, kshape);
    if (!k)
        return kiln_status_of(n->g->ctx);
    out->t[0] = kiln_broadcast_to(k, x->ndim, x->shape);
    kiln_tensor_free(k);
    return out->t[0] ? KILN_OK : kiln_status_of(n->g->ctx);
}

static const kiln_gop gop_unreduce = {.name = "unreduce",
                                      .run = run_unreduce, .no_grad = 1};

kiln_node *kiln__g_unreduce(kiln_node *x, kiln_node *like, int naxes,
                            const int *axes, int keepdims)
{
    kiln_node *args[2] = {x, like};
    kiln_node *n = kiln__g_node("kiln_g_gradients", &gop_unreduce, 2, args);
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
        kiln_node *args[2] = {x, n};
        kiln_node *inv = kiln__g_node("kiln_g_gradients", &gop_inv_count, 2,
                                      args);
        if (inv)
            kiln__g_set_shape(inv, n->dtype, 0, NULL);
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
    return built(n->g, 1, dx, need);
}

static const kiln_gop gop_reduce = {.name = "reduce", .run = run_reduce,
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

/* ---- matrix products ------------------------------------------------------- */

static kiln_status run_gemm(kiln_node *n, kiln_tensor *const *in,
                            kiln_gvalue *out)
{
    out->t[0] = kiln_gemm(in[0], (int)n->attr.i[0], in[1], (int)n->attr.i[1],
                          1.0, 0.0, NULL);
    return out->t[0] ? KILN_OK : kiln_status_of(n->g->ctx);
}

static kiln_status gemm_backward(kiln_node *n, kiln_node *dy, const int *need,
                                 kiln_node **dx)
{
    kiln_node *a = n->inputs[0], *b = n->inputs[1];
    int ta = (int)n->attr.i[0], tb = (int)n->attr.i[1];
    kiln_node *da = NULL, *db = NULL;
    /* C = op(A) op(B); each case is the product rule with the transposes
     * moved onto the other operands, so nothing is copied. */
    if (need[0])
        da = !ta ? kiln_g_gemm(dy, 0, b, !tb) : kiln_g_gemm(b, tb, dy, 1);
    if (need[1])
        db = !tb ? kiln_g_gemm(a, !ta, dy, 0) : kiln_g_gemm(dy, 1, a, ta);
    dx[0] = da ? kiln__g_sum_to_like(da, a) : NULL;
    dx[1] = db ? kiln__g_sum_to_like(db, b) : NULL;
    return built(n->g, 2, dx, need);
}

static const kiln_gop gop_gemm = {.name = "gemm", .run = run_gemm,
                                  .backward = gemm_backward};

kiln_node *kiln_g_gemm(kiln_node *a, int transpose_a, kiln_node *b,
                       int transpose_b)
{
    const char *call = "kiln_g_gemm";
    kiln_node *args[2] = {a, b};
    kiln_node *n = kiln__g_node(call, &gop_gemm, 2, args);
    if (!n)
        return NULL;
    kiln_context *ctx = n->g->ctx;
    if (a->ndim < 2 || b->ndim < 2)
        return kiln__error_null(ctx, KILN_ERROR_SHAPE,
                                "%s: operands are %d-D and %d-D (need >= 2-D;"
                                " reshape vectors to matrices)", call,
                                a->ndim, b->ndim);
    if (a->dtype != b->dtype || !kiln__is_float(a->dtype))
        return kiln__error_null(ctx, KILN_ERROR_DTYPE,
                                "%s: operands are %s and %s (need one float "
                                "dtype)", call, kiln_dtype_name(a->dtype),
                                kiln_dtype_name(b->dtype));
    int64_t m = a->shape[a->ndim - (transpose_a ? 1 : 2)];
    int64_t ka = a->shape[a->ndim - (transpose_a ? 2 : 1)];
    int64_t kb = b->shape[b->ndim - (transpose_b ? 1 : 2)];
    int64_t nn = b->shape[b->ndim - (transpose_b ? 2 : 1)];
    if (ka >= 0 && kb >= 0 && ka != kb)
        return kiln__error_null(ctx, KILN_ERROR_SHAPE,
                                "%s: inner dimensions %lld and %lld differ",
                                call, (long long)ka, (long long)kb);
    /* Batch dims broadcast like elementwise ops. */
    int64_t shape[KILN_MAX_DIMS];
    int nb = (a->ndim > b->ndim ? a->ndim : b->ndim) - 2;
    for (int d = 0; d < nb; d++) {
        int da = d - (nb - (a->ndim - 2)), db = d - (nb - (b->ndim - 2));
        int64_t sa = da >= 0 ? a->shape[da] : 1;
        int64_t sb = db >= 0 ? b->shape[db] : 1;
        if (sa >= 0 && sb >= 0 && sa != 1 && sb != 1 && sa != sb)
            return kiln__error_null(ctx, KILN_ERROR_SHAPE,
                                    "%s: batch dimension %d is %lld and %lld",
                                    call, d, (long long)sa, (long long)sb);
        shape[d] = sa == 1 ? sb : sb == 1 ? sa : (sa < 0 ? sb : sa);
    }
    shape[nb] = m;
    shape[nb + 1] = nn;
    n->attr.i[0] = transpose_a != 0;
    n->attr.i[1] = transpose_b != 0;
    kiln__g_set_shape(n, a->dtype, nb + 2, shape);
    kiln__copy_string(n->name, sizeof n->name, "matmul");
    return n;
}

int kiln__g_is_gemm(const kiln_node *n)
{
    return n->op == &gop_gemm;
}

kiln_node *kiln_g_matmul(kiln_node *a, kiln_node *b)
{
    return kiln_g_gemm(a, 0, b, 0);
}

/* ---- shape ops ------------------------------------------------------------- */

/* reshape: attr.i[0] = ndim, i[1..] = shape. */
static kiln_status run_reshape(kiln_node *n, kiln_tensor *const *in,
                               kiln_gvalue *out)
{
    out->t[0] = kiln_reshape(in[0], (int)n->attr.i[0], &n->attr.i[1]);
    return out->t[0] ? KILN_OK : kiln_status_of(n->g->ctx);
}

static kiln_status to_input_shape_backward(kiln_node *n, kiln_node *dy,
                                           const int *need, kiln_node **dx)
{
    dx[0] = kiln__g_reshape_like(dy, n->inputs[0]);
    return built(n->g, 1, dx, need);
}

static const kiln_gop gop_reshape = {.name = "reshape", .run = run_reshape,
                                     .backward = to_input_shape_backward};

kiln_node *kiln_g_reshape(kiln_node *x, int ndim, const int64_t *shape)
{
    const char *call = "kiln_g_reshape";
    kiln_node *n = kiln__g_node(call, &gop_reshape, 1, &x);
    if (!n)
        return NULL;
    if (ndim < 0 || ndim > KILN_MAX_DIMS || (ndim && !shape))
        return kiln__error_null(n->g->ctx, KILN_ERROR_INVALID_ARGUMENT,
                                "%s: %d dimensions", call, ndim);
    /* Infer the -1 entry now when x's size is known. */
    int64_t known = 1, total = 1, inferred = -1;
    int free_dims = 0;
    for (int d = 0; d < x->ndim; d++)
        if (x->shape[d] < 0)
            total = -1;
        else if (total >= 0)
            total *= x->shape[d];
    for (int d = 0; d < ndim; d++) {
        if (shape[d] == -1)
            free_dims++;
        else if (shape[d] < 0)
            free_dims = 99;
        else
            known *= shape[d];
    }
    if (free_dims > 1)
        return kiln__error_null(n->g->ctx, KILN_ERROR_INVALID_ARGUMENT,
                                "%s: at most one dimension may be -1", call);
    if (total >= 0) {
        if (free_dims ? (known == 0 || total % known) : known != total)
            return kiln__error_null(n->g->ctx, KILN_ERROR_SHAPE,
                                    "%s: %lld elements do not fit the new "
                                    "shape", call, (long long)total);
        if (free_dims)
            inferred = total / known;
    }
    n->attr.i[0] = ndim;
    int64_t out[KILN_MAX_DIMS];
    for (int d = 0; d < ndim; d++) {
        n->attr.i[1 + d] = shape[d];
        out[d] = shape[d] == -1 ? inferred : shape[d];
    }
    kiln__g_set_shape(n, x->dtype, ndim, out);
    return n;
}

kiln_node *kiln_g_flatten(kiln_node *x, int start, int end)
{
    if (!x)
        return NULL;
    int s = start < 0 ? start + x->ndim : start;
    int e = end < 0 ? end + x->ndim : end;
    if (s < 0 || e >= x->ndim || s > e)
        return kiln__error_null(x->g->ctx, KILN_ERROR_INVALID_ARGUMENT,
                                "kiln_g_flatten: dims %d..%d of a %d-D node",
                                start, end, x->ndim);
    /* A reshape whose merged dim is -1 unless every part is known; the
     * other dims keep their sizes, or 0-copy -1 for a free batch dim is
     * ambiguous, so the free dim must be the merged one or stay alone. */
    int64_t shape[KILN_MAX_DIMS];
    int ndim = 0, nfree = 0;
    int64_t merged = 1;
    for (int d = 0; d < x->ndim; d++) {
        if (d < s || d > e) {
            shape[ndim++] = x->shape[d];
            nfree += x->shape[d] < 0;
        } else {
            if (x->shape[d] < 0 || merged < 0)
                merged = -1;
            else
                merged *= x->shape[d];
            if (d == e)
                shape[ndim++] = merged;
        }
    }
    nfree += merged < 0;
    if (nfree > 1)
        return kiln__error_null(x->g->ctx, KILN_ERROR_SHAPE,
                                "kiln_g_flatten: more than one unknown "
                                "dimension in the result");
    return kiln_g_reshape(x, ndim, shape);
}

/* permute: attr.i[0..ndim) = perm. */
static kiln_status run_permute(kiln_node *n, kiln_tensor *const *in,
                               kiln_gvalue *out)
{
    int perm[KILN_MAX_DIMS];
    for (int d = 0; d < n->ndim; d++)
        perm[d] = (int)n->attr.i[d];
    out->t[0] = kiln_permute(in[0], perm);
    return out->t[0] ? KILN_OK : kiln_status_of(n->g->ctx);
}

static kiln_status permute_backward(kiln_node *n, kiln_node *dy,
                                    const int *need, kiln_node **dx)
{
    int inv[KILN_MAX_DIMS];
    for (int d = 0; d < n->ndim; d++)
        inv[n->attr.i[d]] = d;
    dx[0] = kiln_g_permute(dy, inv);
    return built(n->g, 1, dx, need);
}

static const kiln_gop gop_permute = {.name = "permute", .run = run_permute,
                                     .backward = permute_backward};

kiln_node *kiln_g_permute(kiln_node *x, const int *perm)
{
    const char *call = "kiln_g_permute";
    kiln_node *n = kiln__g_node(call, &gop_permute, 1, &x);
    if (!n)
        return NULL;
    int seen[KILN_MAX_DIMS] = {0};
    int64_t shape[KILN_MAX_DIMS];
    for (int d = 0; d < x->ndim; d++) {
        if (!perm || perm[d] < 0 || perm[d] >= x->ndim || seen[perm[d]]++)
            return kiln__error_null(n->g->ctx, KILN_ERROR_INVALID_ARGUMENT,
                                    "%s: not a permutation of %d dims", call,
                                    x->ndim);
        n->attr.i[d] = perm[d];
        shape[d] = x->shape[perm[d]];
    }
    kiln__g_set_shape(n, x->dtype, x->ndim, shape);
    return n;
}

kiln_node *kiln_g_transpose(kiln_node *x, int dim0, int dim1)
{
    if (!x)
        return NULL;
    int a = dim0 < 0 ? dim0 + x->ndim : dim0;
    int b = dim1 < 0 ? dim1 + x->ndim : dim1;
    if (a < 0 || b < 0 || a >= x->ndim || b >= x->ndim)
        return kiln__error_null(x->g->ctx, KILN_ERROR_INVALID_ARGUMENT,
                                "kiln_g_transpose: dims %d and %d of a %d-D "
                                "node", dim0, dim1, x->ndim);
    int perm[KILN_MAX_DIMS];
    for (int d = 0; d < x->ndim; d++)
        perm[d] = d;
    perm[a] = b;
    perm[b] = a;
    return kiln_g_permute(x, perm);
}

/* slice: attr.i = dim, start, stop, step. */
static kiln_status run_slice(kiln_node *n, kiln_tensor *const *in,
                             kiln_gvalue *out)
{
    out->t[0] = kiln_slice(in[0], (int)n->attr.i[0], n->attr.i[1],
                           n->attr.i[2], n->attr.i[3]);
    return out->t[0] ? KILN_OK : kiln_status_of(n->g->ctx);
}

static kiln_status run_slice_backward(kiln_node *n, kiln_tensor *const *in,
                                      kiln_gvalue *out)
{
    out->t[0] = kiln_slice_backward(in[0], in[1]->ndim, in[1]->shape,
                                    (int)n->attr.i[0], n->attr.i[1],
                                    n->attr.i[2], n->attr.i[3]);
    return out->t[0] ? KILN_OK : kiln_status_of(n->g->ctx);
}

static const kiln_gop gop_slice_backward = {.name = "slice_backward",
                                            .run = run_slice_backward,
                                            .no_grad = 1};

static kiln_status slice_backward(kiln_node *n, kiln_node *dy,
                                  const int *need, kiln_node **dx)
{
    kiln_node *args[2] = {dy, n->inputs[0]};
    kiln_node *s = kiln__g_node("kiln_g_gradients", &gop_slice_backward, 2,
                                args);
    if (s) {
        memcpy(s->attr.i, n->attr.i, sizeof s->attr.i);
        kiln__g_set_shape(s, dy->dtype, n->inputs[0]->ndim,
                          n->inputs[0]->shape);
    }
    dx[0] = s;
    return built(n->g, 1, dx, need);
}

static const kiln_gop gop_slice = {.name = "slice", .run = run_slice,
                                   .backward = slice_backward};

kiln_node *kiln_g_slice(kiln_node *x, int dim, int64_t start, int64_t stop,
                        int64_t step)
{
    const char *call = "kiln_g_slice";
    kiln_node *n = kiln__g_node(call, &gop_slice, 1, &x);
    if (!n)
        return NULL;
    int d = dim < 0 ? dim + x->ndim : dim;
    if (d < 0 || d >= x->ndim || step < 1)
        return kiln__error_null(n->g->ctx, KILN_ERROR_INVALID_ARGUMENT,
                                "%s: dim %d of a %d-D node, step %lld", call,
                                dim, x->ndim, (long long)step);
    n->attr.i[0] = d;
    n->attr.i[1] = start;
    n->attr.i[2] = stop;
    n->attr.i[3] = step;
    int64_t shape[KILN_MAX_DIMS];
    memcpy(shape, x->shape, sizeof shape);
    int64_t size = x->shape[d];
    if (size >= 0) {
        int64_t s = start < 0 ? start + size : start;
        int64_t e = stop < 0 ? stop + size : stop;
        s = s < 0 ? 0 : s > size ? size : s;
        e = e < 0 ? 0 : e > size ? size : e;
        shape[d] = e > s ? (e - s + step - 1) / step : 0;
    }
    kiln__g_set_shape(n, x->dtype, x->ndim, shape);
    return n;
}

/* concat: attr.i[0] = axis; the gradient of input k is a slice of dy at
 * the offset the run-time sizes of inputs 0..k-1 give. */
static kiln_status run_concat(kiln_node *n, kiln_tensor *const *in,
                              kiln_gvalue *out)
{
    out->t[0] = kiln_concat(in, n->ninputs, (int)n->attr.i[0]);
    return out->t[0] ? KILN_OK : kiln_status_of(n->g->ctx);
}

/* inputs: dy, then the concat's inputs; attr.i[0] axis, i[1] part k. */
static kiln_status run_concat_part(kiln_node *n, kiln_tensor *const *in,
                                   kiln_gvalue *out)
{
    int axis = (int)n->attr.i[0], k = (int)n->attr.i[1];
    int64_t off = 0;
    for (int i = 0; i < k; i++)
        off += in[1 + i]->shape[axis];
    out->t[0] = kiln_slice(in[0], axis, off, off + in[1 + k]->shape[axis], 1);
    return out->t[0] ? KILN_OK : kiln_status_of(n->g->ctx);
}

static const kiln_gop gop_concat_part = {.name = "concat_part",
                                         .run = run_concat_part,
                                         .no_grad = 1};

static kiln_status concat_backward(kiln_node *n, kiln_node *dy,
                                   const int *need, kiln_node **dx)
{
    kiln_node **args = malloc(sizeof *args * (size_t)(n->ninputs + 1));
    if (!args)
        return kiln__error(n->g->ctx, KILN_ERROR_OUT_OF_HOST_MEMORY,
                           "kiln_g_gradients: out of host memory");
    args[0] = dy;
    memcpy(args + 1, n->inputs, sizeof *args * (size_t)n->ninputs);
    for (int k = 0; k < n->ninputs; k++) {
        dx[k] = NULL;
        if (!need[k])
            continue;
        kiln_node *p = kiln__g_node("kiln_g_gradients", &gop_concat_part,
                                    n->ninputs + 1, args);
        if (p) {
            p->attr.i[0] = n->attr.i[0];
            p->attr.i[1] = k;
            kiln__g_set_shape(p, dy->dtype, n->inputs[k]->ndim,
                              n->inputs[k]->shape);
        }
        dx[k] = p;
    }
    free(args);
    return built(n->g, n->ninputs, dx, need);
}

static const kiln_gop gop_concat = {.name = "concat", .run = run_concat,
                                    .backward = concat_backward};

kiln_node *kiln_g_concat(kiln_node *const *xs, int n, int axis)
{
    const char *call = "kiln_g_concat";
    if (n < 1 || !xs)
        return NULL;
    kiln_node *c = kiln__g_node(call, &gop_concat, n, xs);
    if (!c)
        return NULL;
    kiln_node *x = xs[0];
    int a = axis < 0 ? axis + x->ndim : axis;
    if (a < 0 || a >= x->ndim)
        return kiln__error_null(c->g->ctx, KILN_ERROR_INVALID_ARGUMENT,
                                "%s: axis %d of a %d-D node", call, axis,
                                x->ndim);
    int64_t shape[KILN_MAX_DIMS];
    memcpy(shape, x->shape, sizeof shape);
    for (int i = 1; i < n; i++) {
        if (xs[i]->ndim != x->ndim || xs[i]->dtype != x->dtype)
            return kiln__error_null(c->g->ctx, KILN_ERROR_SHAPE,
                                    "%s: input %d is %d-D %s, input 1 %d-D %s",
                                    call, i + 1, xs[i]->ndim,
                                    kiln_dtype_name(xs[i]->dtype), x->ndim,
                                    kiln_dtype_name(x->dtype));
        if (shape[a] >= 0)
            shape[a] = xs[i]->shape[a] < 0 ? -1 : shape[a] + xs[i]->shape[a];
    }
    c->attr.i[0] = a;
    kiln__g_set_shape(c, x->dtype, x->ndim, shape);
    return c;
}

/* cast and stop_gradient */
static kiln_status run_cast(kiln_node *n, kiln_tensor *const *in,
                            kiln_gvalue *out)
{
    out->t[0] = in[0]->dtype == n->dtype ? alias(in[0])
                                         : kiln_cast(in[0], n->dtype);
    return out->t[0] ? KILN_OK : kiln_status_of(n->g->ctx);
}

static kiln_status cast_backward(kiln_node *n, kiln_node *dy, const int *need,
                                 kiln_node **dx)
{
    kiln_node *x = n->inputs[0];
    dx[0] = NULL;
    if (!kiln__is_float(x->dtype) || !kiln__is_float(n->dtype))
        return KILN_OK; /* through integers nothing flows */
    dx[0] = kiln_g_cast(dy, x->dtype);
    return built(n->g, 1, dx, need);
}

static const kiln_gop gop_cast = {.name = "cast", .run = run_cast,
                                  .backward = cast_backward};

kiln_node *kiln_g_cast(kiln_node *x, kiln_dtype dtype)
{
    kiln_node *n = kiln__g_node("kiln_g_cast", &gop_cast, 1, &x);
    if (!n)
        return NULL;
    if (!kiln__dtype_supported(n->g->ctx, dtype))
        return kiln__error_null(n->g->ctx, KILN_ERROR_DTYPE,
                                "kiln_g_cast: %s is not supported here",
                                kiln_dtype_name(dtype));
    kiln__g_set_shape(n, dtype, x->ndim, x->shape);
    return n;
}

static kiln_status run_identity(kiln_node *n, kiln_tensor *const *in,
                                kiln_gvalue *out)
{
    out->t[0] = alias(in[0]);
    return out->t[0] ? KILN_OK : kiln_status_of(n->g->ctx);
}

static const kiln_gop gop_stop_gradient = {.name = "stop_gradient",
                                           .run = run_identity,
                                           .no_grad = 1};

kiln_node *kiln_g_stop_gradient(kiln_node *x)
{
    kiln_node *n = kiln__g_node("kiln_g_stop_gradient", &gop_stop_gradient, 1,
                                &x);
    if (n)
        kiln__g_set_shape(n, x->dtype, x->ndim, x->shape);
    return n;
}
