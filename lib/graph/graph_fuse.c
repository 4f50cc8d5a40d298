/*
 * graph_fuse.c - fusion of elementwise chains into one generated kernel.
 *
 * Plan (per run, over the needed nodes in creation order): an elementwise
 * node absorbs the group of each elementwise input whose value nobody else
 * uses in this run (a value with several consumers is stored once rather
 * than recomputed), as long as the group stays within one KILN_K_FUSED
 * program: at most KILN_FUSED_MAX_INSTRS nodes and KILN_FUSED_MAX_INPUTS
 * distinct outside inputs.  Every group is thus a tree whose root (its
 * last node) is the only value written to memory.  Groups never span an
 * assignment, whose effect on a variable must be seen in program order.
 *
 * Before that, a matrix product whose only use adds a bias of its width
 * ([N] or [1, N]), optionally followed by ReLU, sigmoid or tanh (each the
 * only use of the one before), becomes one GEMM whose epilogue adds the
 * bias and applies the activation in registers: a dense layer in one
 * kernel.  (Convolutions add their bias inside already.)
 *
 * Run: at the root, the members become one program (one instruction each,
 * registers in member order) over the outside inputs broadcast to the
 * root's shape - broadcasting composes, so reading an input directly at
 * the root's index gives what the chain of members would have read.  A
 * layout that needs more than KILN_FUSED_DIMS dimensions after merging
 * runs the members one by one instead.
 */
#include <stdlib.h>
#include <string.h>

#include "graph/graph.h"

typedef struct group_info {
    int ninstr;
    int first;                       /* smallest member id                */
    int next;                        /* ext count                         */
    kiln_node *ext[KILN_FUSED_MAX_INPUTS];
} group_info;

static int backend_supports(kiln_graph *g, const kiln_node *n)
{
    kiln_queue *q = g->ctx->queue;
    if (n->dtype != KILN_F32 && n->dtype != KILN_F64 && n->dtype != KILN_I32)
        return 0;
    if (!q->vt->supports)
        return 1;
    switch (n->op->fuse) {
    case KILN_GFUSE_UNARY:
        return q->vt->supports(q, KILN_K_UNARY, n->dtype, (int)n->attr.i[0]);
    case KILN_GFUSE_BINARY:
        return q->vt->supports(q, KILN_K_BINARY, n->dtype, (int)n->attr.i[0]);
    case KILN_GFUSE_SELECT:
        return q->vt->supports(q, KILN_K_SELECT, n->dtype, -1);
    default:
        return 0;
    }
}

static int fusable(kiln_graph *g, const kiln_node *n)
{
    return n->needed && n->op->fuse != KILN_GFUSE_NONE &&
           backend_supports(g, n) &&
           (!g->ctx->queue->vt->supports ||
            g->ctx->queue->vt->supports(g->ctx->queue, KILN_K_FUSED, n->dtype,
                                        -1));
}

static int has_ext(const group_info *gi, const kiln_node *x)
{
    for (int k = 0; k < gi->next; k++)
        if (gi->ext[k] == x)
            return 1;
    return 0;
}

/* The outside inputs of @a merged with those of @b, minus @joint (the
 * value that becomes internal); -1 when there would be too many. */
static int merge_ext(group_info *out, const group_info *a,
                     const group_info *b, const kiln_node *joint)
{
    group_info m = *a;
    m.next = 0;
    const group_info *src[2] = {a, b};
    for (int s = 0; s < 2; s++)
        for (int k = 0; k < src[s]->next; k++) {
            kiln_node *x = src[s]->ext[k];
            if (x == joint || has_ext(&m, x))
                continue;
            if (m.next == KILN_FUSED_MAX_INPUTS)
                return -1;
            m.ext[m.next++] = x;
        }
    m.ninstr = a->ninstr + b->ninstr;
    m.first = a->first < b->first ? a->first : b->first;
    *out = m;
    return 0;
}

static int is_activation(const kiln_node *n)
{
    return n->op->fuse == KILN_GFUSE_UNARY &&
           (n->attr.i[0] == KILN_UNARY_RELU ||
            n->attr.i[0] == KILN_UNARY_SIGMOID ||
            n->attr.i[0] == KILN_UNARY_TANH);
}

/* Marks gemm -> add(bias) [-> activation] chains (epi[id] = 1, fused_into
 * = the chain's last node).  @only[id]: the one consumer of a value used
 * once in this run; @mutations as in kiln__g_fuse_plan. */
static void plan_epilogues(kiln_graph *g, char *epi, kiln_node **only,
                           const int *mutations)
{
    for (int i = 0; i < g->nnodes; i++) {
        kiln_node *gm = g->nodes[i];
        if (!gm->needed || !kiln__g_is_gemm(gm) || gm->uses_left != 1 ||
            !kiln__is_float(gm->dtype))
            continue;
        kiln_node *add = only[i];
        if (!add || add->op->fuse != KILN_GFUSE_BINARY ||
            add->attr.i[0] != KILN_BINARY_ADD || add->ndim != gm->ndim ||
            add->inputs[0] == add->inputs[1])
            continue;
        kiln_node *bias = add->inputs[add->inputs[0] == gm ? 1 : 0];
        int64_t n = gm->shape[gm->ndim - 1];
        int fits = n > 0 && bias->shape[bias->ndim - 1] == n &&
                   (bias->ndim == 1 ||
                    (bias->ndim == 2 && bias->shape[0] == 1));
        if (!fits || mutations[add->id] != mutations[i])
            continue;
        kiln_node *root = add;
        kiln_node *act = add->uses_left == 1 ? only[add->id] : NULL;
        if (act && is_activation(act) && mutations[act->id] == mutations[i])
            root = act;
        for (kiln_node *m = gm;; m = only[m->id]) {
            epi[m->id] = 1;
            m->fused_into = root->id;
            if (m == root)
                break;
        }
    }
}

kiln_status kiln__g_fuse_plan(kiln_graph *g)
{
    int n = g->nnodes;
    group_info *info = calloc((size_t)n, sizeof *info);
    int *mutations = calloc((size_t)n + 1, sizeof *mutations);
    char *epi = calloc((size_t)n + 1, 1);
    kiln_node **only = calloc((size_t)n + 1, sizeof *only);
    if (!info || !mutations || !epi || !only) {
        free(info);
        free(mutations);
        free(epi);
        free(only);
        return kiln__error(g->ctx, KILN_ERROR_OUT_OF_HOST_MEMORY,
                           "kiln_graph_run: out of host memory");
    }
    /* mutations[i] = needed assignments among nodes 0..i-1. */
    for (int i = 0; i < n; i++)
        mutations[i + 1] = mutations[i] +
                           (g->nodes[i]->needed && g->nodes[i]->op->mutates);
    for (int i = 0; i < n; i++) {
        kiln_node *node = g->nodes[i];
        for (int k = 0; node->needed && k < node->ninputs; k++)
            if (node->inputs[k]->uses_left == 1)
                only[node->inputs[k]->id] = node;
    }
    plan_epilogues(g, epi, only, mutations);

    for (int i = 0; i < n; i++) {
        kiln_node *node = g->nodes[i];
        if (epi[i] || !fusable(g, node))
            continue;
        group_info *gi = &info[i];
        gi->ninstr = 1;
        gi->first = i;
        gi->next = 0;
        for (int k = 0; k < node->ninputs; k++)
            if (!has_ext(gi, node->inputs[k]))
                gi->ext[gi->next++] = node->inputs[k];
        node->fused_into = i;
        for (int k = 0; k < node->ninputs; k++) {
            kiln_node *p = node->inputs[k];
            /* p's group joins when this node is its only use. */
            if (epi[p->id] || p->fused_into != p->id || !fusable(g, p) ||
                p->uses_left != 1)
                continue;
            group_info merged;
            if (merge_ext(&merged, gi, &info[p->id], p) != 0 ||
                merged.ninstr > KILN_FUSED_MAX_INSTRS ||
                mutations[i] != mutations[merged.first])
                continue;
            *gi = merged;
            for (int j = merged.first; j < i; j++)
                if (g->nodes[j]->fused_into == p->id)
                    g->nodes[j]->fused_into = i;
        }
    }
    /* A group of one is just the node's own kernel. */
    for (int i = 0; i < n; i++)
        if (g->nodes[i]->fused_into == i && info[i].ninstr == 1)
            g->nodes[i]->fused_into = -1;
    free(info);
    free(mutations);
    free(epi);
    free(only);
    return KILN_OK;
}

/* The group's members in creation order (a topological order). */
static int members_of(kiln_graph *g, kiln_node *root, kiln_node **members)
{
    int count = 0;
    for (int j = 0; j <= root->id; j++) {
        kiln_node *m = g->nodes[j];
        if (m->needed && m->fused_into == root->id)
            members[count++] = m;
    }
    return count;
}

/* Runs the members one by one (a layout the fused kernel cannot take). */
static kiln_status run_unfused(kiln_graph *g, kiln_node **members, int count)
{
    kiln_status st = KILN_OK;
    for (int j = 0; j < count && st == KILN_OK; j++) {
        kiln_node *m = members[j];
        kiln_tensor *in[3];
        for (int k = 0; k < m->ninputs; k++)
            in[k] = m->inputs[k]->out.t[0];
        st = m->op->run(m, in, &m->out);
    }
    for (int j = 0; j + 1 < count; j++)
        kiln__g_release(members[j]);
    g->stats.nodes += (uint64_t)count;
    return st;
}

/* A GEMM with its bias (+ activation) epilogue; members: gemm, add[, act]. */
static kiln_status run_epilogue(kiln_graph *g, kiln_node *root,
                                kiln_node **members, int count)
{
    kiln_node *gm = members[0], *add = members[1];
    kiln_tensor *a = gm->inputs[0]->out.t[0], *b = gm->inputs[1]->out.t[0];
    kiln_tensor *bias = add->inputs[add->inputs[0] == gm ? 1 : 0]->out.t[0];
    int64_t n = b->shape[b->ndim - (gm->attr.i[1] ? 2 : 1)];
    int ok = bias->shape[bias->ndim - 1] == n &&
             (bias->ndim == 1 || (bias->ndim == 2 && bias->shape[0] == 1));
    if (!ok) /* a run-time shape the epilogue cannot take */
        return run_unfused(g, members, count);
    root->out.t[0] = kiln__gemm_bias_act(
        g->ctx, "kiln_graph_run", a, (int)gm->attr.i[0], b,
        (int)gm->attr.i[1], bias, count == 3 ? (int)members[2]->attr.i[0] : -1);
    if (!root->out.t[0])
        return kiln_status_of(g->ctx);
    g->stats.nodes += (uint64_t)count;
    g->stats.fused_nodes += (uint64_t)count;
    g->stats.fused_kernels++;
    return KILN_OK;
}

kiln_status kiln__g_fuse_run(kiln_graph *g, kiln_node *root)
{
    kiln_node *members[KILN_FUSED_MAX_INSTRS];
    int count = members_of(g, root, members);
    if (kiln__g_is_gemm(members[0]))
        return run_epilogue(g, root, members, count);
    kiln_fused_program prog = {0};
    kiln_node *ext[KILN_FUSED_MAX_INPUTS];
    int next = 0;
    for (int j = 0; j < count; j++)
        for (int k = 0; k < members[j]->ninputs; k++) {
            kiln_node *x = members[j]->inputs[k];
            int member = x->needed && x->fused_into == root->id;
            int seen = 0;
            for (int e = 0; e < next; e++)
                seen |= ext[e] == x;
            if (!member && !seen)
                ext[next++] = x;
        }
    prog.ninputs = next;
    prog.ninstr = count;
    for (int j = 0; j < count; j++) {
        kiln_node *m = members[j];
        int reg[3] = {0, 0, 0};
        for (int k = 0; k < m->ninputs; k++) {
            kiln_node *x = m->inputs[k];
            for (int e = 0; e < next; e++)
                if (ext[e] == x)
                    reg[k] = e;
            for (int r = 0; r < j; r++)
                if (members[r] == x)
                    reg[k] = next + r;
        }
        int code = m->op->fuse == KILN_GFUSE_UNARY
                       ? KILN_FUSED_UNARY + (int)m->attr.i[0]
                   : m->op->fuse == KILN_GFUSE_BINARY
                       ? KILN_FUSED_BINARY + (int)m->attr.i[0]
                       : KILN_FUSED_SELECT;
        prog.instr[j] = kiln_fused_instr(code, reg[0], reg[1], reg[2]);
    }

    kiln_tensor *in[KILN_FUSED_MAX_INPUTS];
    int64_t shape[KILN_MAX_DIMS];
    for (int e = 0; e < next; e++)
        in[e] = ext[e]->out.t[0];
    int ndim = kiln__broadcast_shape(g->ctx, "kiln_graph_run", next, in, shape);
    if (ndim < 0)
        return kiln_status_of(g->ctx);
    if (!kiln__fused_fits(next, in, ndim, shape))
        return run_unfused(g, members, count);
    root->out.t[0] = kiln__fused(g->ctx, "kiln_graph_run", &prog, root->dtype,
                                 in, ndim, shape);
    if (!root->out.t[0])
        return kiln_status_of(g->ctx);
    g->stats.nodes += (uint64_t)count;
    g->stats.fused_nodes += (uint64_t)count;
    g->stats.fused_kernels++;
    return KILN_OK;
}
