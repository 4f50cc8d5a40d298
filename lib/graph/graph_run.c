/*
 * graph_run.c - the executor: which nodes a run needs, in what order, what
 * is fused (graph_fuse.c), and when each intermediate is freed.
 *
 * Memory plan: the executor counts every node's uses in this run and frees
 * its value right after the last one, so the sub-allocator hands the same
 * bytes to later intermediates (first fit): the device memory of a step is
 * its peak of simultaneously live values, not the sum of all of them.  The
 * in-order queue (OpenCL) and the hazard tracker's barriers (Vulkan) make
 * that reuse safe while earlier kernels are still running.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph/graph.h"

static uint64_t value_bytes(const kiln_tensor *t)
{
    return (uint64_t)kiln_tensor_numel(t) * kiln_dtype_size(t->dtype);
}

/* Did this run allocate the node's value (rather than view another)? */
static int owns_fresh_storage(const kiln_node *n)
{
    const kiln_tensor *t = n->out.t[0];
    return t && !n->op->is_leaf && !n->op->mutates && t->storage->refs == 1;
}

static kiln_status check_feed(kiln_graph *g, const kiln_feed *f)
{
    const char *call = "kiln_graph_run";
    kiln_node *in = f->input;
    if (!in || in->g != g || in->op != &kiln__gop_input)
        return kiln__error(g->ctx, KILN_ERROR_INVALID_ARGUMENT,
                           "%s: a feed names %s", call,
                           !in ? "a NULL node"
                               : in->g != g ? "a node of another graph"
                                            : "a node that is not an input");
    kiln_tensor *v = f->value;
    if (!kiln__tensor_ctx(v) || v->ctx != g->ctx)
        return kiln__error(g->ctx, KILN_ERROR_INVALID_ARGUMENT,
                           "%s: the value fed to '%s' is %s", call,
                           kiln_node_name(in),
                           v ? "from another context" : "NULL");
    int ok = v->dtype == in->dtype && v->ndim == in->ndim;
    for (int d = 0; ok && d < in->ndim; d++)
        ok = in->shape[d] < 0 || in->shape[d] == v->shape[d];
    if (!ok) {
        char a[96], b[96];
        return kiln__error(g->ctx, KILN_ERROR_SHAPE,
                           "%s: input '%s' takes %s %s (-1 = any), was fed %s "
                           "%s", call, kiln_node_name(in),
                           kiln_dtype_name(in->dtype),
                           kiln__shape_string(in->ndim, in->shape, a, sizeof a),
                           kiln_dtype_name(v->dtype),
                           kiln__shape_string(v->ndim, v->shape, b, sizeof b));
    }
    return KILN_OK;
}

/* Does @t share storage with a variable or constant of @g?  Then the
 * caller gets a copy, so that a later assignment cannot change it. */
static int aliases_state(const kiln_graph *g, const kiln_tensor *t)
{
    for (int i = 0; i < g->nnodes; i++) {
        const kiln_node *n = g->nodes[i];
        if (n->value && n->value->storage == t->storage)
            return 1;
    }
    return 0;
}

static void release_all(kiln_graph *g)
{
    for (int i = 0; i < g->nnodes; i++) {
        kiln_node *n = g->nodes[i];
        kiln__g_release(n);
        n->needed = 0;
        n->uses_left = 0;
        n->fused_into = -1;
    }
}

/* Marks what the fetched nodes need, depth first from them. */
static kiln_status mark_needed(kiln_graph *g, int nfetch,
                               kiln_node *const *fetch)
{
    kiln_node **stack = malloc(sizeof *stack * (size_t)(g->nnodes + 1));
    if (!stack)
        return kiln__error(g->ctx, KILN_ERROR_OUT_OF_HOST_MEMORY,
                           "kiln_graph_run: out of host memory");
    int top = 0;
    for (int i = 0; i < nfetch; i++) {
        fetch[i]->uses_left++; /* the caller's use */
        if (!fetch[i]->needed) {
            fetch[i]->needed = 1;
            stack[top++] = fetch[i];
        }
    }
    while (top) {
        kiln_node *n = stack[--top];
        for (int k = 0; k < n->ninputs; k++) {
            kiln_node *in = n->inputs[k];
            in->uses_left++;
            if (!in->needed) {
                in->needed = 1;
                stack[top++] = in;
            }
        }
    }
    free(stack);
    return KILN_OK;
}

static kiln_status run_leaf(kiln_graph *g, kiln_node *n, int nfeeds,
                            const kiln_feed *feeds)
{
    kiln_tensor *v = n->value;
    if (n->op == &kiln__gop_input) {
        v = NULL;
        for (int f = 0; f < nfeeds; f++)
            if (feeds[f].input == n)
                v = feeds[f].value; /* the last feed of a node wins */
        if (!v)
            return kiln__error(g->ctx, KILN_ERROR_INVALID_ARGUMENT,
                               "kiln_graph_run: input '%s' is needed but was "
                               "not fed", kiln_node_name(n));
    }
    n->out.t[0] = kiln__tensor_view(v);
    return n->out.t[0] ? KILN_OK : kiln_status_of(g->ctx);
}

/* One use of @n consumed; frees its value after the last. */
static void use_done(kiln_node *n, uint64_t *live)
{
    if (--n->uses_left > 0)
        return;
    if (owns_fresh_storage(n))
        *live -= value_bytes(n->out.t[0]);
    kiln__g_release(n);
}

kiln_status kiln_graph_run(kiln_graph *g, int nfeeds, const kiln_feed *feeds,
                           int nfetch, kiln_node *const *fetch,
                           kiln_tensor **out)
{
    const char *call = "kiln_graph_run";
    if (!g)
        return KILN_ERROR_INVALID_ARGUMENT;
    if (out)
        for (int i = 0; i < nfetch; i++)
            out[i] = NULL;
    if (kiln_status_of(g->ctx) != KILN_OK)
        return kiln_status_of(g->ctx);
    if (nfetch < 0 || nfeeds < 0 || (nfetch && !fetch) ||
        (nfeeds && !feeds))
        return kiln__error(g->ctx, KILN_ERROR_INVALID_ARGUMENT,
                           "%s: %d fetches, %d feeds with missing arrays",
                           call, nfetch, nfeeds);
    for (int i = 0; i < nfetch; i++)
        if (!fetch[i] || fetch[i]->g != g)
            return kiln__error(g->ctx, KILN_ERROR_INVALID_ARGUMENT,
                               "%s: fetch %d is %s", call, i,
                               fetch[i] ? "a node of another graph" : "NULL");
    for (int f = 0; f < nfeeds; f++) {
        kiln_status st = check_feed(g, &feeds[f]);
        if (st != KILN_OK)
            return st;
    }

    kiln_context_stats before;
    kiln_context_get_stats(g->ctx, &before);
    memset(&g->stats, 0, sizeof g->stats);
    release_all(g);
    kiln_status st = mark_needed(g, nfetch, fetch);
    if (st == KILN_OK && g->fusion)
        st = kiln__g_fuse_plan(g);

    /* KILN_GRAPH_TRACE=1: one line per kernel-issuing step on stderr, to
     * see what a run computes and what fused. */
    int trace = kiln__env_long("KILN_GRAPH_TRACE", 0) != 0;
    uint64_t live = 0;
    for (int i = 0; st == KILN_OK && i < g->nnodes; i++) {
        kiln_node *n = g->nodes[i];
        if (!n->needed)
            continue;
        if (n->op->is_leaf) {
            st = run_leaf(g, n, nfeeds, feeds);
            continue;
        }
        if (n->fused_into >= 0 && n->fused_into != n->id)
            continue; /* computed inside its group's kernel, at the root */
        if (trace) {
            kiln_context_stats cs;
            kiln_context_get_stats(g->ctx, &cs);
            fprintf(stderr, "kiln graph: node %d %s%s (kernels so far %llu)\n",
                    n->id, kiln_node_name(n),
                    n->fused_into == n->id ? " [fused group root]" : "",
                    (unsigned long long)cs.dispatches);
        }
        if (n->fused_into == n->id) {
            st = kiln__g_fuse_run(g, n);
        } else {
            kiln_tensor *in_small[8];
            kiln_tensor **in = n->ninputs <= 8
                                   ? in_small
                                   : malloc(sizeof *in * (size_t)n->ninputs);
            if (!in) {
                st = kiln__error(g->ctx, KILN_ERROR_OUT_OF_HOST_MEMORY,
                                 "%s: out of host memory", call);
                break;
            }
            for (int k = 0; k < n->ninputs; k++)
                in[k] = n->inputs[k]->out.t[0];
            st = n->op->run(n, in, &n->out);
            if (in != in_small)
                free(in);
            g->stats.nodes++;
        }
        if (st != KILN_OK)
            break;
        if (owns_fresh_storage(n)) {
            uint64_t bytes = value_bytes(n->out.t[0]);
            g->stats.intermediate_bytes += bytes;
            live += bytes;
            if (live > g->stats.peak_bytes)
                g->stats.peak_bytes = live;
        }
        /* The inputs' uses by this node (for a group: by its members). */
        if (n->fused_into == n->id) {
            for (int j = 0; j <= i; j++) {
                kiln_node *m = g->nodes[j];
                if (m->needed && m->fused_into == n->id)
                    for (int k = 0; k < m->ninputs; k++)
                        use_done(m->inputs[k], &live);
            }
        } else {
            for (int k = 0; k < n->ninputs; k++)
                use_done(n->inputs[k], &live);
        }
    }

    for (int i = 0; st == KILN_OK && out && i < nfetch; i++) {
        kiln_tensor *t = fetch[i]->out.t[0];
        out[i] = aliases_state(g, t) ? kiln_contiguous_copy(t)
                                     : kiln__tensor_view(t);
        if (!out[i])
            st = kiln_status_of(g->ctx);
    }
    if (st != KILN_OK && out)
        for (int i = 0; i < nfetch; i++) {
            kiln_tensor_free(out[i]);
            out[i] = NULL;
        }
    release_all(g);
    kiln_context_stats after;
    kiln_context_get_stats(g->ctx, &after);
    g->stats.kernels = after.dispatches - before.dispatches;
    g->runs++;
    g->run_offset_prepared = 0;
    return st;
}
