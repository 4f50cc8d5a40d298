/*
 * graph.c - graphs and nodes: creation, leaves (inputs, constants,
 * variables, assignments), argument checks and accessors.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "graph/graph.h"

/* Leaves: the executor (graph_run.c) gives them their values. */
const kiln_gop kiln__gop_input = {.name = "input", .is_leaf = 1};
const kiln_gop kiln__gop_constant = {.name = "constant", .is_leaf = 1};
const kiln_gop kiln__gop_variable = {.name = "variable", .is_leaf = 1};

kiln_graph *kiln_graph_new(kiln_context *ctx)
{
    if (!ctx)
        return NULL;
    kiln_graph *g = calloc(1, sizeof *g);
    if (!g)
        return kiln__error_null(ctx, KILN_ERROR_OUT_OF_HOST_MEMORY,
                                "kiln_graph_new: out of host memory");
    g->ctx = ctx;
    g->fusion = kiln__env_long("KILN_FUSION", 1) != 0;
    return g;
}

static void release_run_values(kiln_node *n)
{
    for (int k = 0; k < KILN_G_MAX_OUTPUTS; k++) {
        kiln_tensor_free(n->out.t[k]);
        n->out.t[k] = NULL;
    }
    if (n->out.aux && n->out.aux_free)
        n->out.aux_free(n->out.aux);
    n->out.aux = NULL;
    n->out.aux_free = NULL;
}

void kiln__g_release(kiln_node *n)
{
    release_run_values(n);
}

void kiln_graph_free(kiln_graph *g)
{
    if (!g)
        return;
    for (int i = 0; i < g->nnodes; i++) {
        kiln_node *n = g->nodes[i];
        release_run_values(n);
        kiln_tensor_free(n->value);
        free(n->attr.p);
        free(n->inputs);
        free(n);
    }
    free(g->nodes);
    kiln_tensor_free(g->run_offset);
    free(g);
}

kiln_context *kiln_graph_context(const kiln_graph *g)
{
    return g ? g->ctx : NULL;
}

kiln_graph *kiln_node_graph(const kiln_node *n)
{
    return n ? n->g : NULL;
}

kiln_dtype kiln_node_dtype(const kiln_node *n)
{
    return n ? n->dtype : KILN_F32;
}

int kiln_node_ndim(const kiln_node *n)
{
    return n ? n->ndim : -1;
}

int kiln_node_shape(const kiln_node *n, int64_t *shape)
{
    if (!n)
        return -1;
    if (shape)
        memcpy(shape, n->shape, sizeof(int64_t) * (size_t)n->ndim);
    return n->ndim;
}

const char *kiln_node_name(const kiln_node *n)
{
    if (!n)
        return "";
    return n->name[0] ? n->name : n->op->name;
}

void kiln_graph_set_training(kiln_graph *g, int training)
{
    if (g)
        g->training = training != 0;
}

void kiln_graph_set_fusion(kiln_graph *g, int enabled)
{
    if (g)
        g->fusion = enabled != 0;
}

uint64_t kiln_graph_runs(const kiln_graph *g)
{
    return g ? g->runs : 0;
}

void kiln_graph_set_runs(kiln_graph *g, uint64_t runs)
{
    if (g)
        g->runs = runs;
}

/* Writes runs << 32 to g->run_offset (creating it) when a node of @g
 * reads it (gop.run_offset). */
static kiln_status write_run_offset(kiln_graph *g)
{
    const char *call = "kiln__graph_prepare_replay";
    int reads = 0;
    for (int i = 0; !reads && i < g->nnodes; i++)
        reads = g->nodes[i]->op->run_offset;
    if (!reads)
        return KILN_OK;
    if (!g->run_offset) {
        g->run_offset = kiln__tensor_alloc(g->ctx, call, KILN_I32, 1,
                                           (int64_t[]){2});
        if (!g->run_offset)
            return kiln_status_of(g->ctx);
    }
    /* Run r draws at Philox offset r * 2^32 (as kiln_dropout's offset
     * argument did before the counter lived on the device). */
    uint64_t v = g->runs << 32;
    uint32_t w[2] = {(uint32_t)v, (uint32_t)(v >> 32)};
    kiln_status st = kiln_tensor_write(g->run_offset, w, sizeof w);
    if (st == KILN_OK)
        g->run_offset_runs = g->runs;
    return st;
}

kiln_status kiln__graph_prepare_replay(kiln_graph *g)
{
    if (!g)
        return KILN_ERROR_INVALID_ARGUMENT;
    if (g->ctx->recording)
        return kiln__error(g->ctx, KILN_ERROR_INVALID_ARGUMENT,
                           "kiln__graph_prepare_replay: writes the run "
                           "counter from the host, so it goes before a "
                           "capture or replay, not inside one");
    kiln_status st = g->training ? write_run_offset(g) : KILN_OK;
    g->run_offset_prepared = st == KILN_OK;
    return st;
}

void kiln_graph_get_stats(const kiln_graph *g, kiln_graph_stats *out)
{
    if (!out)
        return;
    if (g)
        *out = g->stats;
    else
        memset(out, 0, sizeof *out);
}

/* ---- node creation ------------------------------------------------------ */

kiln_graph *kiln__g_args(const char *call, int n, kiln_node *const *nodes)
{
    kiln_graph *g = NULL;
    for (int i = 0; i < n; i++)
        if (nodes[i]) {
            g = nodes[i]->g;
            break;
        }
    if (!g)
        return NULL; /* nothing to report on: an earlier failure */
    for (int i = 0; i < n; i++) {
        if (!nodes[i]) {
            if (kiln_status_of(g->ctx) == KILN_OK)
                kiln__error(g->ctx, KILN_ERROR_INVALID_ARGUMENT,
                            "%s: node argument %d is NULL", call, i + 1);
            return NULL;
        }
        if (nodes[i]->g != g) {
            kiln__error(g->ctx, KILN_ERROR_INVALID_ARGUMENT,
                        "%s: node argument %d belongs to another graph", call,
                        i + 1);
            return NULL;
        }
    }
    return g;
}

static kiln_node *new_node(kiln_graph *g, const char *call, const kiln_gop *op,
                           int ninputs, kiln_node *const *inputs)
{
    if (g->nnodes == g->cap) {
        int cap = g->cap ? 2 * g->cap : 64;
        kiln_node **nodes = realloc(g->nodes, sizeof *nodes * (size_t)cap);
        if (!nodes)
            return kiln__error_null(g->ctx, KILN_ERROR_OUT_OF_HOST_MEMORY,
                                    "%s: out of host memory", call);
        g->nodes = nodes;
        g->cap = cap;
    }
    kiln_node *n = calloc(1, sizeof *n);
    kiln_node **in = ninputs ? malloc(sizeof *in * (size_t)ninputs) : NULL;
    if (!n || (ninputs && !in)) {
        free(n);
        free(in);
        return kiln__error_null(g->ctx, KILN_ERROR_OUT_OF_HOST_MEMORY,
                                "%s: out of host memory", call);
    }
    if (ninputs)
        memcpy(in, inputs, sizeof *in * (size_t)ninputs);
    n->g = g;
    n->id = g->nnodes;
    n->op = op;
    n->ninputs = ninputs;
    n->inputs = in;
    n->fused_into = -1;
    g->nodes[g->nnodes++] = n;
    return n;
}

kiln_node *kiln__g_node(const char *call, const kiln_gop *op, int ninputs,
                        kiln_node *const *inputs)
{
    kiln_graph *g = kiln__g_args(call, ninputs, inputs);
    if (!g)
        return NULL;
    if (kiln_status_of(g->ctx) != KILN_OK)
        return NULL; /* sticky error: build nothing more */
    return new_node(g, call, op, ninputs, inputs);
}

void kiln__g_set_shape(kiln_node *n, kiln_dtype dtype, int ndim,
                       const int64_t *shape)
{
    n->dtype = dtype;
    n->ndim = ndim;
    if (ndim)
        memcpy(n->shape, shape, sizeof(int64_t) * (size_t)ndim);
}

int kiln__g_broadcast(kiln_graph *g, const char *call, int n,
                      kiln_node *const *nodes, int64_t *shape)
{
    int ndim = 0;
    for (int i = 0; i < n; i++)
        if (nodes[i]->ndim > ndim)
            ndim = nodes[i]->ndim;
    for (int d = 0; d < ndim; d++) {
        int64_t size = 1;
        int unknown = 0;
        for (int i = 0; i < n; i++) {
            int k = d - (ndim - nodes[i]->ndim);
            if (k < 0)
                continue;
            int64_t s = nodes[i]->shape[k];
            if (s < 0)
                unknown = 1;
            else if (s != 1) {
                if (size != 1 && size != s) {
                    kiln__error(g->ctx, KILN_ERROR_SHAPE,
                                "%s: dimension %d is %lld in one operand and "
                                "%lld in another (they do not broadcast)",
                                call, d, (long long)size, (long long)s);
                    return -1;
                }
                size = s;
            }
        }
        /* A known size other than 1 decides; a free dim otherwise. */
        shape[d] = (size == 1 && unknown) ? -1 : size;
    }
    return ndim;
}

kiln_tensor *kiln__g_output(kiln_node *n, int i, int k)
{
    return n->inputs[i]->out.t[k];
}

kiln_tensor *kiln__g_input_value(kiln_node *n, int i)
{
    return n->inputs[i]->out.t[0];
}

/* ---- leaves --------------------------------------------------------------- */

static void set_name(kiln_node *n, const char *name)
{
    if (name)
        kiln__copy_string(n->name, sizeof n->name, name);
}

kiln_node *kiln_g_input(kiln_graph *g, const char *name, kiln_dtype dtype,
                        int ndim, const int64_t *shape)
{
    const char *call = "kiln_g_input";
    if (!g)
        return NULL;
    if (ndim < 0 || ndim > KILN_MAX_DIMS || (ndim && !shape))
        return kiln__error_null(g->ctx, KILN_ERROR_INVALID_ARGUMENT,
                                "%s: %d dimensions (0 to %d, with a shape)",
                                call, ndim, KILN_MAX_DIMS);
    for (int d = 0; d < ndim; d++)
        if (shape[d] < -1)
            return kiln__error_null(g->ctx, KILN_ERROR_INVALID_ARGUMENT,
                                    "%s: dimension %d is %lld (sizes are >= 0,"
                                    " or -1 for free)", call, d,
                                    (long long)shape[d]);
    if (!kiln__dtype_supported(g->ctx, dtype))
        return kiln__error_null(g->ctx, KILN_ERROR_DTYPE,
                                "%s: %s is not supported on this device", call,
                                kiln_dtype_name(dtype));
    kiln_node *n = new_node(g, call, &kiln__gop_input, 0, NULL);
    if (!n)
        return NULL;
    kiln__g_set_shape(n, dtype, ndim, shape);
    set_name(n, name);
    return n;
}

static kiln_node *leaf_from_tensor(kiln_graph *g, const char *call,
                                   const kiln_gop *op, kiln_tensor *value,
                                   int copy)
{
    if (!g)
        return NULL;
    kiln_context *ctx = kiln__tensor_ctx(value);
    if (!ctx) {
        if (kiln_status_of(g->ctx) == KILN_OK)
            kiln__error(g->ctx, KILN_ERROR_INVALID_ARGUMENT,
                        "%s: the value is NULL", call);
        return NULL;
    }
    if (ctx != g->ctx)
        return kiln__error_null(g->ctx, KILN_ERROR_INVALID_ARGUMENT,
                                "%s: the value belongs to another context",
                                call);
    kiln_tensor *v = copy ? kiln_contiguous_copy(value)
                          : kiln__tensor_view(value);
    if (!v)
        return NULL;
    kiln_node *n = new_node(g, call, op, 0, NULL);
    if (!n) {
        kiln_tensor_free(v);
        return NULL;
    }
    n->value = v;
    kiln__g_set_shape(n, v->dtype, v->ndim, v->shape);
    return n;
}

kiln_node *kiln_g_constant(kiln_graph *g, kiln_tensor *value)
{
    return leaf_from_tensor(g, "kiln_g_constant", &kiln__gop_constant, value,
                            0);
}

kiln_node *kiln_g_scalar(kiln_graph *g, kiln_dtype dtype, double value)
{
    if (!g)
        return NULL;
    /* One node per (dtype, value): gradients ask for 0, 1 and 2 again
     * and again, and a fused kernel counts each distinct input. */
    for (int i = g->nnodes - 1; i >= 0; i--) {
        kiln_node *n = g->nodes[i];
        if (n->op == &kiln__gop_constant && n->attr.i[0] == 1 &&
            n->dtype == dtype && n->attr.d[0] == value &&
            !signbit(n->attr.d[0]) == !signbit(value))
            return n;
    }
    kiln_tensor *t = kiln_tensor_new(g->ctx, dtype, 0, NULL);
    if (!t || kiln_fill(t, value) != KILN_OK) {
        kiln_tensor_free(t);
        return NULL;
    }
    kiln_node *n = leaf_from_tensor(g, "kiln_g_scalar", &kiln__gop_constant,
                                    t, 0);
    kiln_tensor_free(t);
    if (n) {
        n->attr.i[0] = 1; /* a shared scalar */
        n->attr.d[0] = value;
    }
    return n;
}

kiln_node *kiln_g_variable(kiln_graph *g, const char *name,
                           kiln_tensor *initial)
{
    kiln_node *n = leaf_from_tensor(g, "kiln_g_variable", &kiln__gop_variable,
                                    initial, 1);
    if (n)
        set_name(n, name);
    return n;
}

kiln_tensor *kiln_g_variable_tensor(kiln_node *var)
{
    if (!var)
        return NULL;
    if (var->op != &kiln__gop_variable)
        return kiln__error_null(var->g->ctx, KILN_ERROR_INVALID_ARGUMENT,
                                "kiln_g_variable_tensor: node '%s' is not a "
                                "variable", kiln_node_name(var));
    return var->value;
}

/* ---- assignments ---------------------------------------------------------- */

static kiln_status run_assign(kiln_node *n, kiln_tensor *const *in,
                              kiln_gvalue *out)
{
    kiln_tensor *var = n->inputs[0]->value;
    kiln_tensor *src = in[1];
    kiln_tensor *sum = NULL;
    if (n->attr.i[0]) { /* assign_add */
        sum = kiln_add(var, src);
        if (!sum)
            return kiln_status_of(n->g->ctx);
        src = sum;
    }
    if (src->ndim != var->ndim ||
        memcmp(src->shape, var->shape, sizeof(int64_t) * (size_t)var->ndim)) {
        char a[96], b[96];
        kiln_tensor_free(sum);
        return kiln__error(n->g->ctx, KILN_ERROR_SHAPE,
                           "kiln_graph_run: assigning a %s value to variable "
                           "'%s' of shape %s",
                           kiln__shape_string(src->ndim, src->shape, a,
                                              sizeof a),
                           kiln_node_name(n->inputs[0]),
                           kiln__shape_string(var->ndim, var->shape, b,
                                              sizeof b));
    }
    kiln_status st = kiln_copy(var, src);
    kiln_tensor_free(sum);
    if (st != KILN_OK)
        return st;
    out->t[0] = kiln__tensor_view(var);
    return out->t[0] ? KILN_OK : kiln_status_of(n->g->ctx);
}

static const kiln_gop gop_assign = {.name = "assign", .run = run_assign,
                                    .no_grad = 1, .mutates = 1};

static kiln_node *assign(const char *call, kiln_node *var, kiln_node *value,
                         int add)
{
    kiln_node *args[2] = {var, value};
    kiln_graph *g = kiln__g_args(call, 2, args);
    if (!g)
        return NULL;
    if (var->op != &kiln__gop_variable)
        return kiln__error_null(g->ctx, KILN_ERROR_INVALID_ARGUMENT,
                                "%s: node '%s' is not a variable", call,
                                kiln_node_name(var));
    if (value->dtype != var->dtype)
        return kiln__error_null(g->ctx, KILN_ERROR_DTYPE,
                                "%s: value is %s, variable '%s' is %s", call,
                                kiln_dtype_name(value->dtype), var->name,
                                kiln_dtype_name(var->dtype));
    kiln_node *n = kiln__g_node(call, &gop_assign, 2, args);
    if (!n)
        return NULL;
    n->attr.i[0] = add;
    kiln__g_set_shape(n, var->dtype, var->ndim, var->shape);
    return n;
}

kiln_node *kiln_g_assign(kiln_node *var, kiln_node *value)
{
    return assign("kiln_g_assign", var, value, 0);
}

kiln_node *kiln_g_assign_add(kiln_node *var, kiln_node *value)
{
    return assign("kiln_g_assign_add", var, value, 1);
}
