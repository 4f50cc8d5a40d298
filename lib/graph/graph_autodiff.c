/*
 * graph_autodiff.c - reverse-mode differentiation over a graph.
 *
 * Nodes are created in topological order (a node only refers to older
 * ones), so one pass from the loss down to node 0 visits every consumer
 * before its producers: by the time a node is reached, the gradients of
 * all its uses have been summed.  Each op's backward rule adds ordinary
 * nodes, so gradients are scheduled, fused and freed like the forward pass
 * (and could themselves be differentiated).
 */
#include <stdlib.h>

#include "graph/graph.h"

kiln_status kiln_g_gradients(kiln_node *loss, int n, kiln_node *const *wrt,
                             kiln_node **grads)
{
    const char *call = "kiln_g_gradients";
    if (grads)
        for (int j = 0; j < n; j++)
            grads[j] = NULL;
    kiln_graph *g = kiln__g_args(call, 1, &loss);
    if (!g)
        return KILN_ERROR_INVALID_ARGUMENT;
    if (n < 0 || (n && (!wrt || !grads)))
        return kiln__error(g->ctx, KILN_ERROR_INVALID_ARGUMENT,
                           "%s: %d nodes to differentiate with no array", call,
                           n);
    if (n && !kiln__g_args(call, n, wrt))
        return kiln_status_of(g->ctx);
    if (kiln_status_of(g->ctx) != KILN_OK)
        return kiln_status_of(g->ctx);
    if (!kiln__is_float(loss->dtype))
        return kiln__error(g->ctx, KILN_ERROR_DTYPE,
                           "%s: the loss '%s' is %s (needs a float dtype)",
                           call, kiln_node_name(loss),
                           kiln_dtype_name(loss->dtype));

    int count = loss->id + 1;
    char *depends = calloc((size_t)count, 1);
    kiln_node **grad = calloc((size_t)count, sizeof *grad);
    int *need = NULL;
    kiln_node **dx = NULL;
    kiln_status st = KILN_OK;
    if (!depends || !grad) {
        st = kiln__error(g->ctx, KILN_ERROR_OUT_OF_HOST_MEMORY,
                         "%s: out of host memory", call);
        goto done;
    }
    /* Which nodes lie on a path from some wrt node (gradients stop at
     * discrete ops such as comparisons and argmax). */
    for (int j = 0; j < n; j++)
        if (wrt[j]->id < count)
            depends[wrt[j]->id] = 1;
    for (int i = 0; i < count; i++) {
        kiln_node *node = g->nodes[i];
        if (depends[i] || node->op->no_grad)
            continue;
        for (int k = 0; k < node->ninputs; k++)
            if (depends[node->inputs[k]->id])
                depends[i] = 1;
    }

    /* A 0-D loss is seeded with the shared constant 1, which the rules'
     * multiplications then drop; other losses with ones of their shape. */
    grad[loss->id] = loss->ndim == 0 ? kiln_g_scalar(g, loss->dtype, 1.0)
                                     : kiln__g_fill_like(loss, 1.0);
    if (!grad[loss->id]) {
        st = kiln_status_of(g->ctx);
        goto done;
    }
    for (int i = loss->id; i >= 0; i--) {
        kiln_node *node = g->nodes[i];
        if (!grad[i] || !depends[i] || node->op->is_leaf || node->op->no_grad)
            continue;
        int any = 0;
        free(need);
        free(dx);
        need = calloc((size_t)node->ninputs, sizeof *need);
        dx = calloc((size_t)node->ninputs, sizeof *dx);
        if (!need || !dx) {
            st = kiln__error(g->ctx, KILN_ERROR_OUT_OF_HOST_MEMORY,
                             "%s: out of host memory", call);
            goto done;
        }
        for (int k = 0; k < node->ninputs; k++)
            any |= need[k] = depends[node->inputs[k]->id];
        if (!any)
            continue;
        if (!node->op->backward) {
            st = kiln__error(g->ctx, KILN_ERROR_UNSUPPORTED,
                             "%s: node '%s' has no gradient rule (wrap it in "
                             "kiln_g_stop_gradient if none should flow)",
                             call, kiln_node_name(node));
            goto done;
        }
        st = node->op->backward(node, grad[i], need, dx);
        if (st != KILN_OK)
            goto done;
        for (int k = 0; k < node->ninputs; k++) {
            if (!need[k] || !dx[k])
                continue;
            int in = node->inputs[k]->id;
            grad[in] = grad[in] ? kiln_g_add(grad[in], dx[k]) : dx[k];
            if (!grad[in]) {
                st = kiln_status_of(g->ctx);
                goto done;
            }
        }
    }
    for (int j = 0; j < n; j++) {
        kiln_node *w = wrt[j];
        grads[j] = w->id < count && grad[w->id] ? grad[w->id]
                                                : kiln__g_fill_like(w, 0.0);
        if (!grads[j]) {
            st = kiln_status_of(g->ctx);
            goto done;
        }
    }
done:
    if (st != KILN_OK && grads)
        for (int j = 0; j < n; j++)
            grads[j] = NULL;
    free(depends);
    free(grad);
    free(need);
    free(dx);
    return st;
}
