/*
 * graph_ops_nn.c - graph nodes for the layers' ops (convolution, pooling,
 * softmax, losses, dropout; graph_ops_nn_seq.c: normalisation, embedding,
 * recurrent layers), each with its backward rule, and their shared
 * helpers (graph_nn.h).
 *
 * Forward nodes run the eager op, so graph and eager results are the same
 * numbers.  What a backward pass needs besides the inputs is kept in the
 * forward node's extra outputs: out.t[1..3] (pool indices, the dropout
 * mask, a loss's gradient, normalisation statistics) or out.aux (the RNN
 * tape).  Backward nodes take the forward node as an input, which keeps
 * those values alive until they ran, and call the eager backward ops; they
 * are not differentiable again (no_grad).  A backward op with several
 * results (normalisation, RNN) runs once and small "pick" nodes hand out
 * each gradient, so unwanted ones cost nothing but what the op computes.
 *
 * Build time: shapes are inferred with -1 where only a run knows the size
 * (the batch), and what can be checked then (ranks, dtypes, channel
 * counts, window sizes) is refused with a message naming the kiln_g_ call.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "graph/graph_nn.h"

/* ---- shared helpers ----------------------------------------------------- */

/* The usual ending of a run: @t becomes the node's value. */
kiln_status kiln__gnn_ran(kiln_node *n, kiln_tensor *t, kiln_gvalue *out)
{
    out->t[0] = t;
    return t ? KILN_OK : kiln_status_of(n->g->ctx);
}

/* Two build-time sizes that cannot be equal (-1 fits anything). */
static int differ(int64_t a, int64_t b)
{
    return a >= 0 && b >= 0 && a != b;
}

/* "[2, -1, 3]" for messages. */
const char *kiln__gnn_shape_of(const kiln_node *n, char *buf, size_t size)
{
    return kiln__shape_string(n->ndim, n->shape, buf, size);
}

/* The graph of the required @nodes, refusing a context already in error
 * (build nothing more) and @nopt optional nodes of another graph. */
kiln_graph *kiln__gnn_graph_of(const char *call, int n, kiln_node *const *nodes,
                            int nopt, kiln_node *const *opt)
{
    kiln_graph *g = kiln__g_args(call, n, nodes);
    if (!g || kiln_status_of(g->ctx) != KILN_OK)
        return NULL;
    for (int i = 0; i < nopt; i++)
        if (opt[i] && opt[i]->g != g)
            return kiln__error_null(g->ctx, KILN_ERROR_INVALID_ARGUMENT,
                                    "%s: an optional node argument belongs "
                                    "to another graph", call);
    return g;
}

/* Is @x a float node of @dtype (or any float dtype when @dtype < 0)? */
kiln_node *kiln__gnn_need_float(kiln_graph *g, const char *call,
                             const char *what, kiln_node *x, int dtype)
{
    if (kiln__is_float(x->dtype) && (dtype < 0 || (int)x->dtype == dtype))
        return x;
    if (dtype < 0)
        return kiln__error_null(g->ctx, KILN_ERROR_DTYPE,
                                "%s: %s must be f32 or f64, got %s", call,
                                what, kiln_dtype_name(x->dtype));
    return kiln__error_null(g->ctx, KILN_ERROR_DTYPE,
                            "%s: %s is %s, the input is %s", call, what,
                            kiln_dtype_name(x->dtype),
                            kiln_dtype_name((kiln_dtype)dtype));
}

/* Is @x (optional when NULL) a node of @ndim dims of @dtype whose sizes
 * fit @shape (-1 entries fit anything)? */
int kiln__gnn_check_shape(kiln_graph *g, const char *call, const char *what,
                       const kiln_node *x, kiln_dtype dtype, int ndim,
                       const int64_t *shape)
{
    if (!x)
        return 1;
    char a[128], b[128];
    int ok = x->ndim == ndim;
    for (int d = 0; ok && d < ndim; d++)
        ok = !differ(x->shape[d], shape[d]);
    if (x->dtype != dtype) {
        kiln__error(g->ctx, KILN_ERROR_DTYPE, "%s: %s is %s, expected %s",
                    call, what, kiln_dtype_name(x->dtype),
                    kiln_dtype_name(dtype));
        return 0;
    }
    if (!ok) {
        kiln__error(g->ctx, KILN_ERROR_SHAPE,
                    "%s: %s is %s, expected %s", call, what,
                    kiln__gnn_shape_of(x, a, sizeof a),
                    kiln__shape_string(ndim, shape, b, sizeof b));
        return 0;
    }
    return 1;
}

/* The node of @op on @inputs with @dtype and @shape (NULL after an
 * error), named by its op. */
kiln_node *kiln__gnn_make(const char *call, const kiln_gop *op, int ninputs,
                       kiln_node *const *inputs, kiln_dtype dtype, int ndim,
                       const int64_t *shape)
{
    kiln_node *n = kiln__g_node(call, op, ninputs, inputs);
    if (n)
        kiln__g_set_shape(n, dtype, ndim, shape);
    return n;
}

/* A 0-D tensor holding @v. */
static kiln_tensor *scalar_tensor(kiln_context *ctx, kiln_dtype dtype,
                                  double v)
{
    kiln_tensor *t = kiln_tensor_new(ctx, dtype, 0, NULL);
    if (t && kiln_fill(t, v) != KILN_OK) {
        kiln_tensor_free(t);
        return NULL;
    }
    return t;
}

/* Does a needed node of @op read @n in this run?  (Forward nodes skip
 * saving what no backward node of this run will read: a loss's gradient,
 * the RNN tape.) */
int kiln__gnn_read_by(const kiln_node *n, const kiln_gop *op)
{
    const kiln_graph *g = n->g;
    for (int i = n->id + 1; i < g->nnodes; i++) {
        const kiln_node *c = g->nodes[i];
        if (!c->needed || c->op != op)
            continue;
        for (int k = 0; k < c->ninputs; k++)
            if (c->inputs[k] == n)
                return 1;
    }
    return 0;
}

/* ---- pick: one saved result of another node ----------------------------- */

/* Several results of one backward op live in one node's extra outputs
 * (attr.i[1] = 0: out.t[k]) or in an array in its aux (attr.i[1] = 1:
 * the RNN gradients); k = attr.i[0].  The value is a view. */
void kiln__gnn_saved_grads_free(void *p)
{
    saved_grads *s = p;
    for (int i = 0; i < 7; i++)
        kiln_tensor_free(s->t[i]);
    free(s);
}

static kiln_status run_pick(kiln_node *n, kiln_tensor *const *in,
                            kiln_gvalue *out)
{
    (void)in;
    const kiln_node *src = n->inputs[0];
    int k = (int)n->attr.i[0];
    kiln_tensor *t = NULL;
    if (!n->attr.i[1])
        t = src->out.t[k];
    else if (src->out.aux)
        t = ((saved_grads *)src->out.aux)->t[k];
    if (!t)
        return kiln__error(n->g->ctx, KILN_ERROR_INVALID_ARGUMENT,
                           "kiln_graph_run: node '%s' did not save result "
                           "%d that a gradient reads", kiln_node_name(src),
                           k);
    return kiln__gnn_ran(n, kiln__tensor_view(t), out);
}

static const kiln_gop gop_pick = {.name = "pick", .run = run_pick,
                                  .no_grad = 1};

kiln_node *kiln__gnn_pick(kiln_node *src, int k, int from_aux, kiln_dtype dtype,
                       int ndim, const int64_t *shape)
{
    kiln_node *n = kiln__gnn_make(GRAD_CALL, &gop_pick, 1, &src, dtype, ndim, shape);
    if (n) {
        n->attr.i[0] = k;
        n->attr.i[1] = from_aux;
    }
    return n;
}

/* The gradient node @like's shape and dtype from output @k of @src. */
kiln_node *kiln__gnn_pick_like(kiln_node *src, int k, int from_aux,
                            const kiln_node *like)
{
    return kiln__gnn_pick(src, k, from_aux, like->dtype, like->ndim, like->shape);
}

/* ---- conv2d ------------------------------------------------------------- */

/* attr.i: 0-1 stride, 2-3 padding, 4-5 dilation (defaults resolved),
 * 6 groups, 7 padding mode, 8 has a bias. */
static void conv_params(const kiln_node *n, kiln_conv2d_params *p)
{
    *p = (kiln_conv2d_params){
        .stride = {(int)n->attr.i[0], (int)n->attr.i[1]},
        .padding = {(int)n->attr.i[2], (int)n->attr.i[3]},
        .dilation = {(int)n->attr.i[4], (int)n->attr.i[5]},
        .groups = (int)n->attr.i[6],
        .mode = (kiln_padding_mode)n->attr.i[7]};
}

kiln_tensor *kiln__g_conv2d_act(const kiln_node *n, kiln_tensor *const *in,
                                int act)
{
    kiln_conv2d_params p;
    conv_params(n, &p);
    return kiln__conv2d_act(in[0], in[1], n->attr.i[8] ? in[2] : NULL, &p,
                            act);
}

static kiln_status run_conv2d(kiln_node *n, kiln_tensor *const *in,
                              kiln_gvalue *out)
{
    return kiln__gnn_ran(n, kiln__g_conv2d_act(n, in, -1), out);
}

/* inputs: dy, w, x (for its shape). */
static kiln_status run_conv2d_dx(kiln_node *n, kiln_tensor *const *in,
                                 kiln_gvalue *out)
{
    kiln_conv2d_params p;
    conv_params(n, &p);
    return kiln__gnn_ran(n, kiln_conv2d_backward_data(in[0], in[1], in[2]->shape, &p),
               out);
}

/* inputs: dy, x, w (for its shape). */
static kiln_status run_conv2d_dw(kiln_node *n, kiln_tensor *const *in,
                                 kiln_gvalue *out)
{
    kiln_conv2d_params p;
    conv_params(n, &p);
    return kiln__gnn_ran(n,
               kiln_conv2d_backward_weights(in[0], in[1], in[2]->shape, &p),
               out);
}

static kiln_status run_conv2d_db(kiln_node *n, kiln_tensor *const *in,
                                 kiln_gvalue *out)
{
    return kiln__gnn_ran(n, kiln_conv2d_backward_bias(in[0]), out);
}

static const kiln_gop gop_conv2d_dx = {.name = "conv2d_backward_data",
                                       .run = run_conv2d_dx, .no_grad = 1};
static const kiln_gop gop_conv2d_dw = {.name = "conv2d_backward_weights",
                                       .run = run_conv2d_dw, .no_grad = 1};
static const kiln_gop gop_conv2d_db = {.name = "conv2d_backward_bias",
                                       .run = run_conv2d_db, .no_grad = 1};

/* A backward node that carries the forward node's attributes. */
kiln_node *kiln__gnn_backward_node(kiln_node *fwd, const kiln_gop *op, int nin,
                                kiln_node *const *inputs,
                                const kiln_node *like)
{
    kiln_node *n = kiln__gnn_make(GRAD_CALL, op, nin, inputs, like->dtype, like->ndim,
                        like->shape);
    if (n) {
        memcpy(n->attr.i, fwd->attr.i, sizeof n->attr.i);
        memcpy(n->attr.d, fwd->attr.d, sizeof n->attr.d);
    }
    return n;
}

static kiln_status conv2d_backward(kiln_node *n, kiln_node *dy,
                                   const int *need, kiln_node **dx)
{
    kiln_node *x = n->inputs[0], *w = n->inputs[1];
    if (need[0])
        dx[0] = kiln__gnn_backward_node(n, &gop_conv2d_dx, 3,
                              (kiln_node *[]){dy, w, x}, x);
    if (need[1])
        dx[1] = kiln__gnn_backward_node(n, &gop_conv2d_dw, 3,
                              (kiln_node *[]){dy, x, w}, w);
    if (n->ninputs > 2 && need[2])
        dx[2] = kiln__gnn_backward_node(n, &gop_conv2d_db, 1, &dy, n->inputs[2]);
    return kiln__g_built(n->g, n->ninputs, dx, need);
}

static const kiln_gop gop_conv2d = {.name = "conv2d", .run = run_conv2d,
                                    .backward = conv2d_backward};

int kiln__g_is_conv2d(const kiln_node *n)
{
    return n->op == &gop_conv2d;
}

kiln_node *kiln_g_conv2d(kiln_node *x, kiln_node *w, kiln_node *bias,
                         const kiln_conv2d_params *p)
{
    const char *call = "kiln_g_conv2d";
    kiln_node *args[3] = {x, w, bias};
    kiln_graph *g = kiln__gnn_graph_of(call, 2, args, 1, &bias);
    if (!g)
        return NULL;
    char a[128], b[128];
    if (x->ndim != 4 || w->ndim != 4)
        return kiln__error_null(g->ctx, KILN_ERROR_SHAPE,
                                "%s: x %s must be [N, C, H, W] and w %s "
                                "[OC, C/groups, KH, KW]", call,
                                kiln__gnn_shape_of(x, a, sizeof a),
                                kiln__gnn_shape_of(w, b, sizeof b));
    if (!kiln__gnn_need_float(g, call, "x", x, -1) ||
        !kiln__gnn_need_float(g, call, "w", w, (int)x->dtype))
        return NULL;
    kiln_conv2d_params q = p ? *p : (kiln_conv2d_params){0};
    if (q.stride[0] < 0 || q.stride[1] < 0 || q.dilation[0] < 0 ||
        q.dilation[1] < 0 || q.groups < 0 || q.padding[0] < 0 ||
        q.padding[1] < 0 || (unsigned)q.mode > KILN_PAD_VALID)
        return kiln__error_null(g->ctx, KILN_ERROR_INVALID_ARGUMENT,
                                "%s: negative stride, padding, dilation or "
                                "groups, or unknown padding mode %d", call,
                                (int)q.mode);
    int64_t groups = q.groups ? q.groups : 1;
    int64_t c = x->shape[1], oc = w->shape[0];
    if ((c >= 0 && w->shape[1] >= 0 && w->shape[1] * groups != c) ||
        (oc >= 0 && oc % groups) || (c >= 0 && c % groups))
        return kiln__error_null(g->ctx, KILN_ERROR_SHAPE,
                                "%s: input %s has %lld channels, weights %s "
                                "with %lld groups need C = %lld x groups "
                                "(C and OC divisible by groups)", call,
                                kiln__gnn_shape_of(x, a, sizeof a), (long long)c,
                                kiln__gnn_shape_of(w, b, sizeof b), (long long)groups,
                                (long long)w->shape[1]);
    if (bias && !kiln__gnn_check_shape(g, call, "bias", bias, x->dtype, 1, &oc))
        return NULL;
    int stride[2], dil[2];
    int64_t out[4] = {x->shape[0], oc, -1, -1};
    for (int i = 0; i < 2; i++) {
        stride[i] = q.stride[i] ? q.stride[i] : 1;
        dil[i] = q.dilation[i] ? q.dilation[i] : 1;
        int64_t in = x->shape[2 + i], k = w->shape[2 + i], before;
        if (in < 0 || k < 0)
            continue;
        kiln__window_axis(in, k, stride[i], dil[i], q.padding[i], q.mode,
                          &before, &out[2 + i]);
        if (k < 1 || out[2 + i] < 1)
            return kiln__error_null(g->ctx, KILN_ERROR_SHAPE,
                                    "%s: the kernel of weights %s (dilation "
                                    "%dx%d) does not fit the padded input %s",
                                    call, kiln__gnn_shape_of(w, b, sizeof b), dil[0],
                                    dil[1], kiln__gnn_shape_of(x, a, sizeof a));
    }
    kiln_node *n = kiln__gnn_make(call, &gop_conv2d, bias ? 3 : 2, args, x->dtype, 4,
                        out);
    if (!n)
        return NULL;
    int64_t attr[9] = {stride[0], stride[1], q.padding[0], q.padding[1],
                       dil[0], dil[1], groups, q.mode, bias != NULL};
    memcpy(n->attr.i, attr, sizeof attr);
    return n;
}

/* ---- pooling ------------------------------------------------------------ */

/* attr.i: 0-1 kernel, 2-3 stride, 4-5 padding, 6 mode, 7
 * count_include_pad (as given: a zero stride means the kernel size). */
static void pool_params(const kiln_node *n, kiln_pool2d_params *p)
{
    *p = (kiln_pool2d_params){
        .kernel = {(int)n->attr.i[0], (int)n->attr.i[1]},
        .stride = {(int)n->attr.i[2], (int)n->attr.i[3]},
        .padding = {(int)n->attr.i[4], (int)n->attr.i[5]},
        .mode = (kiln_padding_mode)n->attr.i[6],
        .count_include_pad = (int)n->attr.i[7]};
}

static kiln_status run_max_pool(kiln_node *n, kiln_tensor *const *in,
                                kiln_gvalue *out)
{
    kiln_pool2d_params p;
    pool_params(n, &p);
    kiln_tensor *idx = NULL;
    kiln_status st = kiln__gnn_ran(n, kiln_max_pool2d(in[0], &p, &idx), out);
    out->t[1] = idx;
    return st;
}

/* inputs: dy, the forward node (its indices), x (for its shape). */
static kiln_status run_max_pool_dx(kiln_node *n, kiln_tensor *const *in,
                                   kiln_gvalue *out)
{
    return kiln__gnn_ran(n, kiln_max_pool2d_backward(in[0], kiln__g_output(n, 1, 1),
                                           in[2]->shape),
               out);
}

static const kiln_gop gop_max_pool_dx = {.name = "max_pool2d_backward",
                                         .run = run_max_pool_dx,
                                         .no_grad = 1};

static kiln_status max_pool_backward(kiln_node *n, kiln_node *dy,
                                     const int *need, kiln_node **dx)
{
    kiln_node *x = n->inputs[0];
    dx[0] = kiln__gnn_backward_node(n, &gop_max_pool_dx, 3,
                          (kiln_node *[]){dy, n, x}, x);
    return kiln__g_built(n->g, 1, dx, need);
}

static kiln_status run_avg_pool(kiln_node *n, kiln_tensor *const *in,
                                kiln_gvalue *out)
{
    kiln_pool2d_params p;
    pool_params(n, &p);
    return kiln__gnn_ran(n, kiln_avg_pool2d(in[0], &p), out);
}

/* inputs: dy, x (for its shape). */
static kiln_status run_avg_pool_dx(kiln_node *n, kiln_tensor *const *in,
                                   kiln_gvalue *out)
{
    kiln_pool2d_params p;
    pool_params(n, &p);
    return kiln__gnn_ran(n, kiln_avg_pool2d_backward(in[0], in[1]->shape, &p), out);
}

static const kiln_gop gop_avg_pool_dx = {.name = "avg_pool2d_backward",
                                         .run = run_avg_pool_dx,
                                         .no_grad = 1};

static kiln_status avg_pool_backward(kiln_node *n, kiln_node *dy,
                                     const int *need, kiln_node **dx)
{
    kiln_node *x = n->inputs[0];
    dx[0] = kiln__gnn_backward_node(n, &gop_avg_pool_dx, 2, (kiln_node *[]){dy, x}, x);
    return kiln__g_built(n->g, 1, dx, need);
}

static const kiln_gop gop_max_pool = {.name = "max_pool2d",
                                      .run = run_max_pool,
                                      .backward = max_pool_backward};
static const kiln_gop gop_avg_pool = {.name = "avg_pool2d",
                                      .run = run_avg_pool,
                                      .backward = avg_pool_backward};

/* An NCHW float node, or NULL after an error naming @call. */
static kiln_node *need_image(kiln_graph *g, const char *call, kiln_node *x)
{
    char a[128];
    if (x->ndim != 4)
        return kiln__error_null(g->ctx, KILN_ERROR_SHAPE,
                                "%s: x must be [N, C, H, W], got %s", call,
                                kiln__gnn_shape_of(x, a, sizeof a));
    return kiln__gnn_need_float(g, call, "x", x, -1);
}

static kiln_node *pool(const char *call, const kiln_gop *op, kiln_node *x,
                       const kiln_pool2d_params *p)
{
    kiln_graph *g = kiln__gnn_graph_of(call, 1, &x, 0, NULL);
    if (!g || !need_image(g, call, x))
        return NULL;
    if (!p)
        return kiln__error_null(g->ctx, KILN_ERROR_INVALID_ARGUMENT,
                                "%s: pooling parameters are NULL", call);
    int ok = (unsigned)p->mode <= KILN_PAD_VALID;
    for (int i = 0; i < 2; i++)
        ok = ok && p->kernel[i] >= 1 && p->stride[i] >= 0 &&
             p->padding[i] >= 0 &&
             (p->mode != KILN_PAD_EXPLICIT ||
              2 * p->padding[i] <= p->kernel[i]);
    if (!ok)
        return kiln__error_null(g->ctx, KILN_ERROR_INVALID_ARGUMENT,
                                "%s: kernel %dx%d, stride %dx%d, padding "
                                "%dx%d, mode %d: kernel must be >= 1, stride "
                                ">= 0, padding at most half the kernel", call,
                                p->kernel[0], p->kernel[1], p->stride[0],
                                p->stride[1], p->padding[0], p->padding[1],
                                (int)p->mode);
    int64_t out[4] = {x->shape[0], x->shape[1], -1, -1};
    for (int i = 0; i < 2; i++) {
        int64_t before;
        if (x->shape[2 + i] < 0)
            continue;
        kiln__window_axis(x->shape[2 + i], p->kernel[i],
                          p->stride[i] ? p->stride[i] : p->kernel[i], 1,
                          p->padding[i], p->mode, &before, &out[2 + i]);
        if (out[2 + i] < 1) {
            char a[128];
            return kiln__error_null(g->ctx, KILN_ERROR_SHAPE,
                                    "%s: the %dx%d window does not fit the "
                                    "padded input %s", call, p->kernel[0],
                                    p->kernel[1], kiln__gnn_shape_of(x, a, sizeof a));
        }
    }
    kiln_node *n = kiln__gnn_make(call, op, 1, &x, x->dtype, 4, out);
    if (!n)
        return NULL;
    int64_t attr[8] = {p->kernel[0], p->kernel[1], p->stride[0],
                       p->stride[1], p->padding[0], p->padding[1], p->mode,
                       p->count_include_pad != 0};
    memcpy(n->attr.i, attr, sizeof attr);
    return n;
}

kiln_node *kiln_g_max_pool2d(kiln_node *x, const kiln_pool2d_params *p)
{
    return pool("kiln_g_max_pool2d", &gop_max_pool, x, p);
}

kiln_node *kiln_g_avg_pool2d(kiln_node *x, const kiln_pool2d_params *p)
{
    return pool("kiln_g_avg_pool2d", &gop_avg_pool, x, p);
}

static kiln_status run_global_avg_pool(kiln_node *n, kiln_tensor *const *in,
                                       kiln_gvalue *out)
{
    return kiln__gnn_ran(n, kiln_global_avg_pool2d(in[0]), out);
}

/* inputs: dy [N, C, 1, 1], x: an average pool whose window is the whole
 * plane spreads dy / (H W) over it. */
static kiln_status run_global_avg_pool_dx(kiln_node *n,
                                          kiln_tensor *const *in,
                                          kiln_gvalue *out)
{
    const int64_t *xs = in[1]->shape;
    if (xs[2] > INT_MAX || xs[3] > INT_MAX)
        return kiln__error(n->g->ctx, KILN_ERROR_SHAPE,
                           "kiln_graph_run: global average pooling of "
                           "%lldx%lld planes has no gradient rule (a plane "
                           "side above 2^31 - 1)", (long long)xs[2],
                           (long long)xs[3]);
    kiln_pool2d_params p = {.kernel = {(int)xs[2], (int)xs[3]}};
    return kiln__gnn_ran(n, kiln_avg_pool2d_backward(in[0], xs, &p), out);
}

static const kiln_gop gop_global_avg_pool_dx = {
    .name = "global_avg_pool2d_backward", .run = run_global_avg_pool_dx,
    .no_grad = 1};

static kiln_status global_avg_pool_backward(kiln_node *n, kiln_node *dy,
                                            const int *need, kiln_node **dx)
{
    kiln_node *x = n->inputs[0];
    dx[0] = kiln__gnn_backward_node(n, &gop_global_avg_pool_dx, 2,
                          (kiln_node *[]){dy, x}, x);
    return kiln__g_built(n->g, 1, dx, need);
}

static const kiln_gop gop_global_avg_pool = {
    .name = "global_avg_pool2d", .run = run_global_avg_pool,
    .backward = global_avg_pool_backward};

kiln_node *kiln_g_global_avg_pool2d(kiln_node *x)
{
    const char *call = "kiln_g_global_avg_pool2d";
    kiln_graph *g = kiln__gnn_graph_of(call, 1, &x, 0, NULL);
    if (!g || !need_image(g, call, x))
        return NULL;
    int64_t out[4] = {x->shape[0], x->shape[1], 1, 1};
    return kiln__gnn_make(call, &gop_global_avg_pool, 1, &x, x->dtype, 4, out);
}

/* ---- softmax and log-softmax ------------------------------------------- */

/* attr.i: 0 axis (non-negative), 1 log. */
static kiln_status run_softmax(kiln_node *n, kiln_tensor *const *in,
                               kiln_gvalue *out)
{
    int axis = (int)n->attr.i[0];
    return kiln__gnn_ran(n, n->attr.i[1] ? kiln_log_softmax(in[0], axis)
                               : kiln_softmax(in[0], axis),
               out);
}

/* inputs: dy, the forward node (its output y). */
static kiln_status run_softmax_dx(kiln_node *n, kiln_tensor *const *in,
                                  kiln_gvalue *out)
{
    int axis = (int)n->attr.i[0];
    return kiln__gnn_ran(n, n->attr.i[1] ? kiln_log_softmax_backward(in[1], in[0], axis)
                               : kiln_softmax_backward(in[1], in[0], axis),
               out);
}

static const kiln_gop gop_softmax_dx = {.name = "softmax_backward",
                                        .run = run_softmax_dx, .no_grad = 1};

static kiln_status softmax_backward(kiln_node *n, kiln_node *dy,
                                    const int *need, kiln_node **dx)
{
    dx[0] = kiln__gnn_backward_node(n, &gop_softmax_dx, 2, (kiln_node *[]){dy, n},
                          n->inputs[0]);
    return kiln__g_built(n->g, 1, dx, need);
}

static const kiln_gop gop_softmax = {.name = "softmax", .run = run_softmax,
                                     .backward = softmax_backward};

static kiln_node *softmax(const char *call, kiln_node *x, int axis, int log)
{
    kiln_graph *g = kiln__gnn_graph_of(call, 1, &x, 0, NULL);
    if (!g || !kiln__gnn_need_float(g, call, "x", x, -1))
        return NULL;
    int a = axis < 0 ? axis + x->ndim : axis;
    if (x->ndim == 0 || a < 0 || a >= x->ndim)
        return kiln__error_null(g->ctx, KILN_ERROR_INVALID_ARGUMENT,
                                "%s: axis %d of a %d-D node", call, axis,
                                x->ndim);
    kiln_node *n = kiln__gnn_make(call, &gop_softmax, 1, &x, x->dtype, x->ndim,
                        x->shape);
    if (n) {
        n->attr.i[0] = a;
        n->attr.i[1] = log;
        kiln__copy_string(n->name, sizeof n->name,
                          log ? "log_softmax" : "softmax");
    }
    return n;
}

kiln_node *kiln_g_softmax(kiln_node *x, int axis)
{
    return softmax("kiln_g_softmax", x, axis, 0);
}

kiln_node *kiln_g_log_softmax(kiln_node *x, int axis)
{
    return softmax("kiln_g_log_softmax", x, axis, 1);
}

/* ---- losses ------------------------------------------------------------- */

/* attr.i: 0 kind, 1 half (MSE).  out.t[1]: d(loss)/d(logits or pred) for
 * the seed 1, computed in the same pass when a gradient reads it. */
enum loss_kind { LOSS_SOFTMAX_XENT, LOSS_SIGMOID_XENT, LOSS_MSE };

static kiln_status run_loss(kiln_node *n, kiln_tensor *const *in,
                            kiln_gvalue *out)
{
    kiln_tensor *grad = NULL;
    kiln_tensor **want = kiln__gnn_read_by(n, &gop_pick) ? &grad : NULL;
    kiln_tensor *loss = NULL;
    switch (n->attr.i[0]) {
    case LOSS_SOFTMAX_XENT:
        loss = kiln_softmax_cross_entropy(in[0], in[1], want);
        break;
    case LOSS_SIGMOID_XENT:
        loss = kiln_sigmoid_cross_entropy(in[0], in[1], want);
        break;
    default:
        loss = kiln_mse_loss(in[0], in[1], (int)n->attr.i[1], want);
        break;
    }
    kiln_status st = kiln__gnn_ran(n, loss, out);
    out->t[1] = grad;
    return st;
}

/* The targets' gradient of the cross-entropies (MSE's is -dpred):
 * inputs dy (0-D), logits; attr.i[0] the loss kind.
 *   softmax: d/dlabels = -log_softmax(logits) / N,
 *   sigmoid: d/dtargets = -logits / numel. */
static kiln_status run_target_grad(kiln_node *n, kiln_tensor *const *in,
                                   kiln_gvalue *out)
{
    kiln_context *ctx = n->g->ctx;
    kiln_tensor *dy = in[0], *x = in[1];
    int xent = n->attr.i[0] == LOSS_SOFTMAX_XENT;
    int64_t count = xent ? x->shape[0] : kiln_tensor_numel(x);
    kiln_tensor *k = scalar_tensor(ctx, x->dtype,
                                   count ? -1.0 / (double)count : 0.0);
    kiln_tensor *s = k ? kiln_mul(dy, k) : NULL;
    kiln_tensor *f = s && xent ? kiln_log_softmax(x, 1) : NULL;
    kiln_tensor *r = s && (f || !xent) ? kiln_mul(xent ? f : x, s) : NULL;
    kiln_tensor_free(k);
    kiln_tensor_free(s);
    kiln_tensor_free(f);
    return kiln__gnn_ran(n, r, out);
}

static const kiln_gop gop_target_grad = {.name = "loss_target_gradient",
                                         .run = run_target_grad,
                                         .no_grad = 1};

static kiln_status loss_backward(kiln_node *n, kiln_node *dy, const int *need,
                                 kiln_node **dx)
{
    kiln_node *x = n->inputs[0], *t = n->inputs[1];
    int kind = (int)n->attr.i[0];
    /* The saved gradient is for seed 1; times dy (0-D), which fuses. */
    kiln_node *dpred = NULL;
    if (need[0] || (need[1] && kind == LOSS_MSE))
        dpred = kiln__g_binary(GRAD_CALL, kiln__gnn_pick_like(n, 1, 0, x), dy,
                               KILN_BINARY_MUL);
    dx[0] = need[0] ? dpred : NULL;
    dx[1] = NULL;
    int need_t = need[1] && t->dtype != KILN_I32; /* class indices: none */
    if (need_t && kind == LOSS_MSE)
        dx[1] = kiln__g_unary(GRAD_CALL, dpred, KILN_UNARY_NEG);
    else if (need_t) {
        dx[1] = kiln__gnn_make(GRAD_CALL, &gop_target_grad, 2, (kiln_node *[]){dy, x},
                     t->dtype, t->ndim, t->shape);
        if (dx[1])
            dx[1]->attr.i[0] = kind;
    }
    int wanted[2] = {need[0], need_t};
    return kiln__g_built(n->g, 2, dx, wanted);
}

static const kiln_gop gop_loss = {.name = "loss", .run = run_loss,
                                  .backward = loss_backward};

static kiln_node *loss(const char *call, int kind, kiln_node *x, kiln_node *t,
                       int half)
{
    kiln_node *args[2] = {x, t};
    kiln_graph *g = kiln__gnn_graph_of(call, 2, args, 0, NULL);
    if (!g || !kiln__gnn_need_float(g, call, kind == LOSS_MSE ? "pred" : "logits", x,
                          -1))
        return NULL;
    char a[128], b[128];
    if (kind == LOSS_SOFTMAX_XENT) {
        int index = t->dtype == KILN_I32 && t->ndim == 1 &&
                    !differ(t->shape[0], x->shape[0]);
        int probs = t->dtype == x->dtype && t->ndim == 2 &&
                    !differ(t->shape[0], x->shape[0]) &&
                    !differ(t->shape[1], x->shape[1]);
        if (x->ndim != 2 || x->shape[1] == 0 || !(index || probs))
            return kiln__error_null(g->ctx, KILN_ERROR_SHAPE,
                                    "%s: logits must be [N, C] and labels "
                                    "i32 [N] or %s [N, C], got logits %s %s "
                                    "and labels %s %s", call,
                                    kiln_dtype_name(x->dtype),
                                    kiln_dtype_name(x->dtype),
                                    kiln__gnn_shape_of(x, a, sizeof a),
                                    kiln_dtype_name(t->dtype),
                                    kiln__gnn_shape_of(t, b, sizeof b));
    } else if (!kiln__gnn_check_shape(g, call,
                            kind == LOSS_MSE ? "target" : "targets", t,
                            x->dtype, x->ndim, x->shape)) {
        return NULL;
    }
    kiln_node *n = kiln__gnn_make(call, &gop_loss, 2, args, x->dtype, 0, NULL);
    if (n) {
        n->attr.i[0] = kind;
        n->attr.i[1] = half != 0;
        static const char *const names[] = {
            "softmax_cross_entropy", "sigmoid_cross_entropy", "mse_loss"};
        kiln__copy_string(n->name, sizeof n->name, names[kind]);
    }
    return n;
}

kiln_node *kiln_g_softmax_cross_entropy(kiln_node *logits, kiln_node *labels)
{
    return loss("kiln_g_softmax_cross_entropy", LOSS_SOFTMAX_XENT, logits,
                labels, 0);
}

kiln_node *kiln_g_sigmoid_cross_entropy(kiln_node *logits, kiln_node *targets)
{
    return loss("kiln_g_sigmoid_cross_entropy", LOSS_SIGMOID_XENT, logits,
                targets, 0);
}

kiln_node *kiln_g_mse_loss(kiln_node *pred, kiln_node *target, int half)
{
    return loss("kiln_g_mse_loss", LOSS_MSE, pred, target, half);
}

/* ---- dropout ------------------------------------------------------------ */

/* attr.d[0] rate, attr.i[0] seed.  Run r of the graph draws its mask at
 * Philox offset r * 2^32: tensors hold fewer than 2^31 elements, so every
 * run's stream is disjoint from every other's whatever the batch size. */
static kiln_status run_dropout(kiln_node *n, kiln_tensor *const *in,
                               kiln_gvalue *out)
{
    if (!n->g->training)
        return kiln__gnn_ran(n, kiln__tensor_view(in[0]), out); /* the identity */
    /* The offset runs << 32: in a capture that kiln__graph_prepare_replay
     * prepared (kiln_model_fit's recorded steps), read from the device
     * counter it wrote, which it rewrites before each replay; otherwise a
     * parameter of the dispatch (the same numbers, and an eager run needs
     * no host write: any other capture, a user's own recording, repeats
     * the captured mask). */
    kiln_graph *g = n->g;
    kiln_tensor *mask = NULL, *y;
    if (g->ctx->recording && g->run_offset_prepared && g->run_offset &&
        g->run_offset_runs == g->runs)
        y = kiln__dropout_dev(in[0], n->attr.d[0], (uint64_t)n->attr.i[0], 0,
                              g->run_offset, &mask);
    else
        y = kiln_dropout(in[0], n->attr.d[0], 1, (uint64_t)n->attr.i[0],
                         g->runs << 32, &mask);
    kiln_status st = kiln__gnn_ran(n, y, out);
    out->t[1] = mask;
    return st;
}

/* The forward node's mask (inverted-dropout scale per element), or ones
 * after an evaluation-mode run, which is the identity. */
static kiln_status run_dropout_mask(kiln_node *n, kiln_tensor *const *in,
                                    kiln_gvalue *out)
{
    kiln_tensor *mask = kiln__g_output(n, 0, 1);
    if (mask)
        return kiln__gnn_ran(n, kiln__tensor_view(mask), out);
    kiln_tensor *ones = kiln_tensor_new(n->g->ctx, n->dtype, in[0]->ndim,
                                        in[0]->shape);
    if (ones && kiln_fill(ones, 1.0) != KILN_OK) {
        kiln_tensor_free(ones);
        ones = NULL;
    }
    return kiln__gnn_ran(n, ones, out);
}

static const kiln_gop gop_dropout_mask = {.name = "dropout_mask",
                                          .run = run_dropout_mask,
                                          .no_grad = 1};

static kiln_status dropout_backward(kiln_node *n, kiln_node *dy,
                                    const int *need, kiln_node **dx)
{
    kiln_node *x = n->inputs[0];
    kiln_node *mask = kiln__gnn_make(GRAD_CALL, &gop_dropout_mask, 1, &n, x->dtype,
                           x->ndim, x->shape);
    dx[0] = kiln__g_binary(GRAD_CALL, dy, mask, KILN_BINARY_MUL);
    return kiln__g_built(n->g, 1, dx, need);
}

static const kiln_gop gop_dropout = {.name = "dropout", .run = run_dropout,
                                     .backward = dropout_backward,
                                     .run_offset = 1};

kiln_node *kiln_g_dropout(kiln_node *x, double rate, uint64_t seed)
{
    const char *call = "kiln_g_dropout";
    kiln_graph *g = kiln__gnn_graph_of(call, 1, &x, 0, NULL);
    if (!g || !kiln__gnn_need_float(g, call, "x", x, -1))
        return NULL;
    if (!(rate >= 0 && rate <= 1))
        return kiln__error_null(g->ctx, KILN_ERROR_INVALID_ARGUMENT,
                                "%s: rate must be in [0, 1], got %g", call,
                                rate);
    kiln_node *n = kiln__gnn_make(call, &gop_dropout, 1, &x, x->dtype, x->ndim,
                        x->shape);
    if (n) {
        n->attr.d[0] = rate;
        n->attr.i[0] = (int64_t)seed;
    }
    return n;
}
