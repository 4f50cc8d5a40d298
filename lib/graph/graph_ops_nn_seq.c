/*
 * graph_ops_nn_seq.c - graph nodes for batch and layer normalisation,
 * embedding and recurrent layers, each with its backward rule (the
 * conventions are graph_ops_nn.c's; helpers in graph_nn.h).
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "graph/graph_nn.h"

/* ---- batch and layer normalisation -------------------------------------- */

/*
 * Forward attr.i: 0-3 the input index of gamma, beta, running_mean,
 * running_var (-1: absent; layer norm has only the first two), 4 nnorm
 * (layer norm); attr.d: 0 momentum, 1 eps.  out.t[1], t[2]: save_mean,
 * save_invstd.  The backward node (inputs dy, forward node, x, [gamma])
 * computes the wanted gradients at once into out.t[0..2] = dx, dgamma,
 * dbeta, handed out by pick nodes.
 */
static kiln_tensor *optional_input(kiln_tensor *const *in, int64_t index)
{
    return index >= 0 ? in[index] : NULL;
}

static kiln_tensor *running_stat(kiln_node *n, int64_t index)
{
    return index >= 0 ? kiln_g_variable_tensor(n->inputs[index]) : NULL;
}

static kiln_status run_batch_norm(kiln_node *n, kiln_tensor *const *in,
                                  kiln_gvalue *out)
{
    kiln_tensor *rm = running_stat(n, n->attr.i[2]);
    kiln_tensor *rv = running_stat(n, n->attr.i[3]);
    if (!n->g->training && (!rm || !rv))
        return kiln__error(n->g->ctx, KILN_ERROR_INVALID_ARGUMENT,
                           "kiln_graph_run: batch norm node %d has no "
                           "running_mean and running_var, so it cannot run "
                           "in evaluation mode (kiln_graph_set_training)",
                           n->id);
    /* Training updates the variables rm and rv in place. */
    kiln_tensor *sm = NULL, *si = NULL;
    kiln_status st = kiln__gnn_ran(n, kiln_batch_norm(in[0],
                                            optional_input(in, n->attr.i[0]),
                                            optional_input(in, n->attr.i[1]),
                                            rm, rv, n->g->training,
                                            n->attr.d[0], n->attr.d[1], &sm,
                                            &si),
                         out);
    out->t[1] = sm;
    out->t[2] = si;
    return st;
}

static kiln_status run_layer_norm(kiln_node *n, kiln_tensor *const *in,
                                  kiln_gvalue *out)
{
    kiln_tensor *sm = NULL, *si = NULL;
    kiln_status st = kiln__gnn_ran(n, kiln_layer_norm(in[0], (int)n->attr.i[4],
                                            optional_input(in, n->attr.i[0]),
                                            optional_input(in, n->attr.i[1]),
                                            n->attr.d[1], &sm, &si),
                         out);
    out->t[1] = sm;
    out->t[2] = si;
    return st;
}

/* Evaluation-mode batch norm is affine in x with the running statistics
 * (the forward's save_mean/save_invstd then hold them):
 *   dx = dy gamma invstd, dgamma = sum(dy xhat), dbeta = sum(dy),
 * sums over every dim but 1. */
static kiln_status eval_batch_norm_grads(kiln_node *n, kiln_tensor *dy,
                                         kiln_tensor *x, kiln_tensor *gamma,
                                         kiln_tensor *mean,
                                         kiln_tensor *invstd,
                                         kiln_gvalue *out)
{
    int64_t stat[KILN_MAX_DIMS];
    int axes[KILN_MAX_DIMS], naxes = 0;
    for (int d = 0; d < x->ndim; d++) {
        stat[d] = d == 1 ? x->shape[1] : 1;
        if (d != 1)
            axes[naxes++] = d;
    }
    kiln_tensor *t[8] = {0};
    t[0] = kiln_reshape(invstd, x->ndim, stat);
    t[1] = kiln_reshape(mean, x->ndim, stat);
    t[2] = gamma ? kiln_reshape(gamma, x->ndim, stat) : NULL;
    if (n->attr.i[0]) { /* dx */
        kiln_tensor *scaled = kiln_mul(dy, t[0]);
        if (gamma) {
            t[3] = scaled;
            out->t[0] = kiln_mul(scaled, t[2]);
        } else {
            out->t[0] = scaled;
        }
    }
    if (n->attr.i[1]) { /* dgamma */
        t[4] = kiln_sub(x, t[1]);
        t[5] = kiln_mul(t[4], t[0]);
        t[6] = kiln_mul(dy, t[5]);
        out->t[1] = kiln_sum(t[6], naxes, axes, 0);
    }
    if (n->attr.i[2]) /* dbeta */
        out->t[2] = kiln_sum(dy, naxes, axes, 0);
    for (int i = 0; i < 8; i++)
        kiln_tensor_free(t[i]);
    for (int k = 0; k < 3; k++)
        if (n->attr.i[k] && !out->t[k])
            return kiln_status_of(n->g->ctx);
    return KILN_OK;
}

/* inputs: dy, forward node, x, [gamma]; attr.i: 0-2 want dx, dgamma,
 * dbeta, 3 layer norm, 4 nnorm. */
static kiln_status run_norm_grads(kiln_node *n, kiln_tensor *const *in,
                                  kiln_gvalue *out)
{
    kiln_tensor *gamma = n->ninputs > 3 ? in[3] : NULL;
    kiln_tensor *sm = kiln__g_output(n, 1, 1), *si = kiln__g_output(n, 1, 2);
    kiln_tensor **dx = n->attr.i[0] ? &out->t[0] : NULL;
    kiln_tensor **dgamma = n->attr.i[1] ? &out->t[1] : NULL;
    kiln_tensor **dbeta = n->attr.i[2] ? &out->t[2] : NULL;
    if (n->attr.i[3])
        return kiln_layer_norm_backward(in[0], in[2], (int)n->attr.i[4],
                                        gamma, sm, si, dx, dgamma, dbeta);
    if (!n->g->training)
        return eval_batch_norm_grads(n, in[0], in[2], gamma, sm, si, out);
    return kiln_batch_norm_backward(in[0], in[2], gamma, sm, si, dx, dgamma,
                                    dbeta);
}

static const kiln_gop gop_norm_grads = {.name = "norm_backward",
                                        .run = run_norm_grads, .no_grad = 1};

static kiln_status norm_backward(kiln_node *n, kiln_node *dy, const int *need,
                                 kiln_node **dx, int layer)
{
    kiln_node *x = n->inputs[0];
    int gi = (int)n->attr.i[0], bi = (int)n->attr.i[1];
    int want[3] = {need[0], gi >= 0 && need[gi], bi >= 0 && need[bi]};
    kiln_node *args[4] = {dy, n, x, gi >= 0 ? n->inputs[gi] : NULL};
    kiln_node *grads = kiln__gnn_make(GRAD_CALL, &gop_norm_grads, gi >= 0 ? 4 : 3,
                            args, x->dtype, x->ndim, x->shape);
    if (grads) {
        for (int k = 0; k < 3; k++)
            grads->attr.i[k] = want[k];
        grads->attr.i[3] = layer;
        grads->attr.i[4] = n->attr.i[4];
    }
    for (int i = 0; i < n->ninputs; i++)
        dx[i] = NULL; /* running statistics: state, no gradient */
    if (want[0])
        dx[0] = kiln__gnn_pick_like(grads, 0, 0, x);
    if (want[1])
        dx[gi] = kiln__gnn_pick_like(grads, 1, 0, n->inputs[gi]);
    if (want[2])
        dx[bi] = kiln__gnn_pick_like(grads, 2, 0, n->inputs[bi]);
    int wanted[5] = {0};
    wanted[0] = want[0];
    if (gi >= 0)
        wanted[gi] = want[1];
    if (bi >= 0)
        wanted[bi] = want[2];
    return kiln__g_built(n->g, n->ninputs, dx, wanted);
}

static kiln_status batch_norm_backward(kiln_node *n, kiln_node *dy,
                                       const int *need, kiln_node **dx)
{
    return norm_backward(n, dy, need, dx, 0);
}

static kiln_status layer_norm_backward(kiln_node *n, kiln_node *dy,
                                       const int *need, kiln_node **dx)
{
    return norm_backward(n, dy, need, dx, 1);
}

static const kiln_gop gop_batch_norm = {.name = "batch_norm",
                                        .run = run_batch_norm,
                                        .backward = batch_norm_backward};
static const kiln_gop gop_layer_norm = {.name = "layer_norm",
                                        .run = run_layer_norm,
                                        .backward = layer_norm_backward};

/* Appends the present optional nodes to args[*n], recording each one's
 * input index (or -1) in index[]. */
static void add_optional(kiln_node **args, int *n, int count,
                         kiln_node *const *opt, int64_t *index)
{
    for (int i = 0; i < count; i++) {
        index[i] = opt[i] ? *n : -1;
        if (opt[i])
            args[(*n)++] = opt[i];
    }
}

kiln_node *kiln_g_batch_norm(kiln_node *x, kiln_node *gamma, kiln_node *beta,
                             kiln_node *running_mean, kiln_node *running_var,
                             double momentum, double eps)
{
    const char *call = "kiln_g_batch_norm";
    kiln_node *opt[4] = {gamma, beta, running_mean, running_var};
    static const char *const names[4] = {"gamma", "beta", "running_mean",
                                         "running_var"};
    kiln_graph *g = kiln__gnn_graph_of(call, 1, &x, 4, opt);
    if (!g || !kiln__gnn_need_float(g, call, "x", x, -1))
        return NULL;
    char a[128];
    if (x->ndim < 2)
        return kiln__error_null(g->ctx, KILN_ERROR_SHAPE,
                                "%s: x must be [N, C, ...], got %s", call,
                                kiln__gnn_shape_of(x, a, sizeof a));
    for (int i = 0; i < 4; i++)
        if (!kiln__gnn_check_shape(g, call, names[i], opt[i], x->dtype, 1,
                         &x->shape[1]))
            return NULL;
    for (int i = 2; i < 4; i++)
        if (opt[i] && opt[i]->op != &kiln__gop_variable)
            return kiln__error_null(g->ctx, KILN_ERROR_INVALID_ARGUMENT,
                                    "%s: %s must be a variable (training "
                                    "updates it in place), got node '%s'",
                                    call, names[i], kiln_node_name(opt[i]));
    if (!(eps >= 0) || !(momentum >= 0 && momentum <= 1))
        return kiln__error_null(g->ctx, KILN_ERROR_INVALID_ARGUMENT,
                                "%s: momentum %g must be in [0, 1] and eps "
                                "%g >= 0", call, momentum, eps);
    kiln_node *args[5] = {x};
    int nargs = 1;
    int64_t index[4];
    add_optional(args, &nargs, 4, opt, index);
    kiln_node *n = kiln__gnn_make(call, &gop_batch_norm, nargs, args, x->dtype, x->ndim,
                        x->shape);
    if (n) {
        memcpy(n->attr.i, index, sizeof index);
        n->attr.d[0] = momentum;
        n->attr.d[1] = eps;
    }
    return n;
}

kiln_node *kiln_g_layer_norm(kiln_node *x, int nnorm, kiln_node *gamma,
                             kiln_node *beta, double eps)
{
    const char *call = "kiln_g_layer_norm";
    kiln_node *opt[2] = {gamma, beta};
    kiln_graph *g = kiln__gnn_graph_of(call, 1, &x, 2, opt);
    if (!g || !kiln__gnn_need_float(g, call, "x", x, -1))
        return NULL;
    if (nnorm < 1 || nnorm > x->ndim)
        return kiln__error_null(g->ctx, KILN_ERROR_INVALID_ARGUMENT,
                                "%s: normalising %d dims of a %d-D node",
                                call, nnorm, x->ndim);
    const int64_t *trailing = &x->shape[x->ndim - nnorm];
    if (!kiln__gnn_check_shape(g, call, "gamma", gamma, x->dtype, nnorm, trailing) ||
        !kiln__gnn_check_shape(g, call, "beta", beta, x->dtype, nnorm, trailing))
        return NULL;
    if (!(eps >= 0))
        return kiln__error_null(g->ctx, KILN_ERROR_INVALID_ARGUMENT,
                                "%s: eps %g must be >= 0", call, eps);
    kiln_node *args[3] = {x};
    int nargs = 1;
    int64_t index[2];
    add_optional(args, &nargs, 2, opt, index);
    kiln_node *n = kiln__gnn_make(call, &gop_layer_norm, nargs, args, x->dtype, x->ndim,
                        x->shape);
    if (n) {
        n->attr.i[0] = index[0];
        n->attr.i[1] = index[1];
        n->attr.i[2] = n->attr.i[3] = -1;
        n->attr.i[4] = nnorm;
        n->attr.d[1] = eps;
    }
    return n;
}

/* ---- embedding ---------------------------------------------------------- */

static kiln_status run_embedding(kiln_node *n, kiln_tensor *const *in,
                                 kiln_gvalue *out)
{
    return kiln__gnn_ran(n, kiln_embedding(in[0], in[1]), out);
}

/* inputs: dy, indices, table (for the vocabulary size). */
static kiln_status run_embedding_dtable(kiln_node *n, kiln_tensor *const *in,
                                        kiln_gvalue *out)
{
    return kiln__gnn_ran(n, kiln_embedding_backward(in[0], in[1], in[2]->shape[0]),
               out);
}

static const kiln_gop gop_embedding_dtable = {.name = "embedding_backward",
                                              .run = run_embedding_dtable,
                                              .no_grad = 1};

static kiln_status embedding_backward(kiln_node *n, kiln_node *dy,
                                      const int *need, kiln_node **dx)
{
    kiln_node *table = n->inputs[0];
    dx[0] = need[0] ? kiln__gnn_backward_node(n, &gop_embedding_dtable, 3,
                                    (kiln_node *[]){dy, n->inputs[1], table},
                                    table)
                    : NULL;
    dx[1] = NULL; /* indices are discrete */
    int wanted[2] = {need[0], 0};
    return kiln__g_built(n->g, 2, dx, wanted);
}

static const kiln_gop gop_embedding = {.name = "embedding",
                                       .run = run_embedding,
                                       .backward = embedding_backward};

kiln_node *kiln_g_embedding(kiln_node *table, kiln_node *indices)
{
    const char *call = "kiln_g_embedding";
    kiln_node *args[2] = {table, indices};
    kiln_graph *g = kiln__gnn_graph_of(call, 2, args, 0, NULL);
    if (!g || !kiln__gnn_need_float(g, call, "table", table, -1))
        return NULL;
    char a[128];
    if (table->ndim != 2)
        return kiln__error_null(g->ctx, KILN_ERROR_SHAPE,
                                "%s: table must be [V, D], got %s", call,
                                kiln__gnn_shape_of(table, a, sizeof a));
    if (indices->dtype != KILN_I32)
        return kiln__error_null(g->ctx, KILN_ERROR_DTYPE,
                                "%s: indices must be i32, got %s", call,
                                kiln_dtype_name(indices->dtype));
    if (indices->ndim + 1 > KILN_MAX_DIMS)
        return kiln__error_null(g->ctx, KILN_ERROR_SHAPE,
                                "%s: %d-D indices leave no room for the row "
                                "dimension", call, indices->ndim);
    int64_t shape[KILN_MAX_DIMS];
    memcpy(shape, indices->shape, sizeof(int64_t) * (size_t)indices->ndim);
    shape[indices->ndim] = table->shape[1];
    return kiln__gnn_make(call, &gop_embedding, 2, args, table->dtype,
                indices->ndim + 1, shape);
}

/* ---- recurrent layer ---------------------------------------------------- */

/* Roles of the forward node's inputs; attr.i[2 + role] holds the input
 * index of each optional one (-1: absent); attr.i 0 kind, 1 batch_first. */
enum rnn_role { RNN_X, RNN_W_IH, RNN_W_HH, RNN_B_IH, RNN_B_HH, RNN_H0,
                RNN_C0, RNN_ROLES };

static int64_t rnn_index(const kiln_node *n, int role)
{
    return role < RNN_B_IH ? role : n->attr.i[2 + role - RNN_B_IH];
}

static const kiln_gop gop_rnn_grads;

static void tape_free(void *tape)
{
    kiln_rnn_tape_free(tape);
}

static kiln_status run_rnn(kiln_node *n, kiln_tensor *const *in,
                           kiln_gvalue *out)
{
    kiln_rnn_weights w = {in[RNN_W_IH], in[RNN_W_HH],
                          optional_input(in, rnn_index(n, RNN_B_IH)),
                          optional_input(in, rnn_index(n, RNN_B_HH)), NULL};
    kiln_rnn_options o = {(kiln_rnn_kind)n->attr.i[0], 1,
                          (int)n->attr.i[1]};
    /* The tape (every step's activations) only when a gradient reads it. */
    kiln_rnn_tape *tape = NULL;
    kiln_rnn_tape **want = kiln__gnn_read_by(n, &gop_rnn_grads) ? &tape : NULL;
    kiln_status st = kiln__gnn_ran(n, kiln_rnn_forward(in[RNN_X],
                                             optional_input(
                                                 in, rnn_index(n, RNN_H0)),
                                             optional_input(
                                                 in, rnn_index(n, RNN_C0)),
                                             &w, &o, NULL, NULL, want),
                         out);
    if (tape) {
        out->aux = tape;
        out->aux_free = tape_free;
    }
    return st;
}

/* inputs: dy, the forward node (its tape); attr.i[role]: that gradient is
 * wanted.  Results go to a saved_grads in out.aux, indexed by role. */
static kiln_status run_rnn_grads(kiln_node *n, kiln_tensor *const *in,
                                 kiln_gvalue *out)
{
    kiln_rnn_tape *tape = n->inputs[1]->out.aux;
    if (!tape)
        return kiln__error(n->g->ctx, KILN_ERROR_INVALID_ARGUMENT,
                           "kiln_graph_run: the RNN node's tape is missing");
    saved_grads *s = calloc(1, sizeof *s);
    if (!s)
        return kiln__error(n->g->ctx, KILN_ERROR_OUT_OF_HOST_MEMORY,
                           "kiln_graph_run: out of host memory");
    const int64_t *want = n->attr.i;
    kiln_rnn_weights dw = {0};
    int any_weight = want[RNN_W_IH] || want[RNN_W_HH] || want[RNN_B_IH] ||
                     want[RNN_B_HH];
    kiln_status st = kiln_rnn_backward(tape, in[0], NULL, NULL,
                                       want[RNN_X] ? &s->t[RNN_X] : NULL,
                                       want[RNN_H0] ? &s->t[RNN_H0] : NULL,
                                       want[RNN_C0] ? &s->t[RNN_C0] : NULL,
                                       any_weight ? &dw : NULL);
    s->t[RNN_W_IH] = dw.w_ih;
    s->t[RNN_W_HH] = dw.w_hh;
    s->t[RNN_B_IH] = dw.b_ih;
    s->t[RNN_B_HH] = dw.b_hh;
    kiln_tensor_free(dw.w_peep);
    out->aux = s;
    out->aux_free = kiln__gnn_saved_grads_free;
    return st;
}

static const kiln_gop gop_rnn_grads = {.name = "rnn_backward",
                                       .run = run_rnn_grads, .no_grad = 1};

static kiln_status rnn_backward(kiln_node *n, kiln_node *dy, const int *need,
                                kiln_node **dx)
{
    kiln_node *args[2] = {dy, n};
    kiln_node *grads = kiln__gnn_make(GRAD_CALL, &gop_rnn_grads, 2, args, dy->dtype,
                            0, NULL);
    int wanted[RNN_ROLES] = {0};
    for (int role = 0; role < RNN_ROLES; role++) {
        int64_t k = rnn_index(n, role);
        if (k < 0 || !need[k])
            continue;
        wanted[k] = 1;
        if (grads)
            grads->attr.i[role] = 1;
    }
    for (int role = 0; role < RNN_ROLES; role++) {
        int64_t k = rnn_index(n, role);
        if (k >= 0)
            dx[k] = wanted[k] ? kiln__gnn_pick_like(grads, role, 1, n->inputs[k])
                              : NULL;
    }
    return kiln__g_built(n->g, n->ninputs, dx, wanted);
}

static const kiln_gop gop_rnn = {.name = "rnn", .run = run_rnn,
                                 .backward = rnn_backward};

kiln_node *kiln_g_rnn(kiln_node *x, kiln_node *h0, kiln_node *c0,
                      kiln_node *w_ih, kiln_node *w_hh, kiln_node *b_ih,
                      kiln_node *b_hh, kiln_rnn_kind kind, int batch_first)
{
    const char *call = "kiln_g_rnn";
    kiln_node *req[3] = {x, w_ih, w_hh};
    kiln_node *opt[4] = {b_ih, b_hh, h0, c0};
    kiln_graph *g = kiln__gnn_graph_of(call, 3, req, 4, opt);
    if (!g)
        return NULL;
    if ((unsigned)kind > KILN_GRU)
        return kiln__error_null(g->ctx, KILN_ERROR_INVALID_ARGUMENT,
                                "%s: unknown kind %d", call, (int)kind);
    if (c0 && kind != KILN_LSTM)
        return kiln__error_null(g->ctx, KILN_ERROR_INVALID_ARGUMENT,
                                "%s: c0 is for LSTM only", call);
    char a[128];
    if (x->ndim != 3)
        return kiln__error_null(g->ctx, KILN_ERROR_SHAPE,
                                "%s: x must be [%s] (3-D), got %s", call,
                                batch_first ? "N, T, I" : "T, N, I",
                                kiln__gnn_shape_of(x, a, sizeof a));
    if (!kiln__gnn_need_float(g, call, "x", x, -1))
        return NULL;
    if (w_hh->ndim != 2)
        return kiln__error_null(g->ctx, KILN_ERROR_SHAPE,
                                "%s: w_hh must be [G*H, H], got %s", call,
                                kiln__gnn_shape_of(w_hh, a, sizeof a));
    int64_t H = w_hh->shape[1];
    int64_t G = kind == KILN_LSTM ? 4 : kind == KILN_GRU ? 3 : 1;
    int64_t GH = H >= 0 ? G * H : -1;
    int64_t N = x->shape[batch_first ? 0 : 1];
    int64_t T = x->shape[batch_first ? 1 : 0];
    int64_t s_ih[2] = {GH, x->shape[2]}, s_hh[2] = {GH, H};
    int64_t s_state[3] = {1, N, H};
    if (!kiln__gnn_check_shape(g, call, "w_ih", w_ih, x->dtype, 2, s_ih) ||
        !kiln__gnn_check_shape(g, call, "w_hh", w_hh, x->dtype, 2, s_hh) ||
        !kiln__gnn_check_shape(g, call, "b_ih", b_ih, x->dtype, 1, &GH) ||
        !kiln__gnn_check_shape(g, call, "b_hh", b_hh, x->dtype, 1, &GH) ||
        !kiln__gnn_check_shape(g, call, "h0", h0, x->dtype, 3, s_state) ||
        !kiln__gnn_check_shape(g, call, "c0", c0, x->dtype, 3, s_state))
        return NULL;
    kiln_node *args[RNN_ROLES] = {x, w_ih, w_hh};
    int nargs = 3;
    int64_t index[4];
    add_optional(args, &nargs, 4, opt, index);
    int64_t shape[3] = {batch_first ? N : T, batch_first ? T : N, H};
    kiln_node *n = kiln__gnn_make(call, &gop_rnn, nargs, args, x->dtype, 3, shape);
    if (n) {
        n->attr.i[0] = kind;
        n->attr.i[1] = batch_first != 0;
        memcpy(&n->attr.i[2], index, sizeof index);
        static const char *const names[] = {"rnn_tanh", "rnn_relu", "lstm",
                                            "gru"};
        kiln__copy_string(n->name, sizeof n->name, names[kind]);
    }
    return n;
}
