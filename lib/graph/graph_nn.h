/*
 * graph_nn.h - what the layers' op files (graph_ops_nn.c,
 * graph_ops_nn_seq.c) share: argument checks, node construction, the
 * "pick" nodes that hand out one result of a multi-result backward node.
 */
#ifndef KILN_GRAPH_NN_H
#define KILN_GRAPH_NN_H

#include "graph/graph.h"

#define GRAD_CALL "kiln_g_gradients"

/* Several gradients of one backward op, kept as the node's aux. */
typedef struct saved_grads {
    kiln_tensor *t[7];
} saved_grads;

/* A backward node that carries the forward node's attributes. */
kiln_node *kiln__gnn_backward_node(kiln_node *fwd, const kiln_gop *op, int nin,
                                kiln_node *const *inputs,
                                const kiln_node *like);

/* Is @x (optional when NULL) a node of @ndim dims of @dtype whose sizes
 * fit @shape (-1 entries fit anything)? */
int kiln__gnn_check_shape(kiln_graph *g, const char *call, const char *what,
                       const kiln_node *x, kiln_dtype dtype, int ndim,
                       const int64_t *shape);

/* The graph of the required @nodes, refusing a context already in error
 * (build nothing more) and @nopt optional nodes of another graph. */
kiln_graph *kiln__gnn_graph_of(const char *call, int n, kiln_node *const *nodes,
                            int nopt, kiln_node *const *opt);

/* The node of @op on @inputs with @dtype and @shape (NULL after an
 * error), named by its op. */
kiln_node *kiln__gnn_make(const char *call, const kiln_gop *op, int ninputs,
                       kiln_node *const *inputs, kiln_dtype dtype, int ndim,
                       const int64_t *shape);

/* Is @x a float node of @dtype (or any float dtype when @dtype < 0)? */
kiln_node *kiln__gnn_need_float(kiln_graph *g, const char *call,
                             const char *what, kiln_node *x, int dtype);

/* A node handing out one result of @src: out.t[k] (@from_aux 0) or
 * saved_grads t[k] in its aux (@from_aux 1); the value is a view. */
kiln_node *kiln__gnn_pick(kiln_node *src, int k, int from_aux, kiln_dtype dtype,
                       int ndim, const int64_t *shape);

/* The gradient node @like's shape and dtype from output @k of @src. */
kiln_node *kiln__gnn_pick_like(kiln_node *src, int k, int from_aux,
                            const kiln_node *like);

/* The usual ending of a run: @t becomes the node's value. */
kiln_status kiln__gnn_ran(kiln_node *n, kiln_tensor *t, kiln_gvalue *out);

/* Does a needed node of @op read @n in this run?  (Forward nodes skip
 * saving what no backward node of this run will read: a loss's gradient,
 * the RNN tape.) */
int kiln__gnn_read_by(const kiln_node *n, const kiln_gop *op);

/* Frees a saved_grads kept as a node's aux. */
void kiln__gnn_saved_grads_free(void *p);

/* "[2, -1, 3]" for messages. */
const char *kiln__gnn_shape_of(const kiln_node *n, char *buf, size_t size);

#endif /* KILN_GRAPH_NN_H */
