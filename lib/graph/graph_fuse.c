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
 * kernel.  A convolution adds its own bias in its GEMM's epilogue (eager
 * kiln_conv2d does too); a conv2d whose only use is ReLU, sigmoid or tanh
 * takes that activation into the same epilogue, so conv + bias + ReLU
 * issue just the bare convolution's kernels (IM2COL and GEMMs).  "Only
 * use" counts the backward rules' reads: ReLU, sigmoid and tanh
 * differentiate from their output, so training graphs fuse too.
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
    int reduce;                      /* the root is a reduction           */
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

/* An elementwise node (a reduction is not: it only ends a group). */
static int fusable(kiln_graph *g, const kiln_node *n)
{
    return n->needed &&
           (n->op->fuse == KILN_GFUSE_UNARY ||
            n->op->fuse == KILN_GFUSE_BINARY ||
            n->op->fuse == KILN_GFUSE_SELECT) &&
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

/* conv2d -> activation (the conv's only use, no assignment in between:
 * the fused conv runs at the activation's place) becomes one group. */
static void plan_conv_epilogue(kiln_node *cv, char *epi, kiln_node **only,
                               const int *mutations)
{
    kiln_node *act = only[cv->id];
    if (!act || !is_activation(act) ||
        mutations[act->id] != mutations[cv->id])
        return;
    epi[cv->id] = epi[act->id] = 1;
    cv->fused_into = act->fused_into = act->id;
}

/* Marks gemm -> add(bias) [-> activation] and conv2d -> activation chains
 * (epi[id] = 1, fused_into = the chain's last node).  @only[id]: the one
 * consumer of a value used once in this run; @mutations as in
 * kiln__g_fuse_plan. */
static void plan_epilogues(kiln_graph *g, char *epi, kiln_node **only,
                           const int *mutations)
{
    for (int i = 0; i < g->nnodes; i++) {
        kiln_node *gm = g->nodes[i];
        if (!gm->needed || gm->uses_left != 1 || !kiln__is_float(gm->dtype))
            continue;
        if (kiln__g_is_conv2d(gm))
            plan_conv_epilogue(gm, epi, only, mutations);
        if (!kiln__g_is_gemm(gm))
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

/* A reduction node the backend can run with a prologue. */
static int reduction_fusable(kiln_graph *g, const kiln_node *n)
{
    kiln_queue *q = g->ctx->queue;
    return n->needed && n->op->fuse == KILN_GFUSE_REDUCE &&
           (n->dtype == KILN_F32 || n->dtype == KILN_F64 ||
            n->dtype == KILN_I32) &&
           (!q->vt->supports ||
            q->vt->supports(q, KILN_K_FUSED_REDUCE, n->dtype, -1));
}

/* Reduction @r takes the elementwise group whose root is its input 0 as
 * its prologue, when it is that value's only use (the group's values are
 * then never stored).  A group of one node joins too: sum(square(x)) is
 * one kernel. */
static void absorb_prologue(kiln_graph *g, kiln_node *r, group_info *info,
                            const char *epi, const int *mutations)
{
    kiln_node *p = r->inputs[0];
    int i = r->id;
    if (epi[p->id] || !fusable(g, p) || p->fused_into != p->id ||
        p->uses_left != 1 || p->dtype != r->dtype ||
        mutations[i] != mutations[info[p->id].first])
        return;
    info[i] = info[p->id];
    info[i].reduce = 1;
    for (int j = info[i].first; j <= p->id; j++)
        if (g->nodes[j]->fused_into == p->id)
            g->nodes[j]->fused_into = i;
    r->fused_into = i;
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
        if (!epi[i] && reduction_fusable(g, node)) {
            absorb_prologue(g, node, info, epi, mutations);
            continue;
        }
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
        if (g->nodes[i]->fused_into == i && info[i].ninstr == 1 &&
            !info[i].reduce)
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

/* The statistics of a group of @count nodes run as one fused step. */
static void count_fused(kiln_graph *g, int count)
{
    g->stats.nodes += (uint64_t)count;
    g->stats.fused_nodes += (uint64_t)count;
    g->stats.fused_kernels++;
}

/* The end of running a group: its root's value, or the error. */
static kiln_status ran_fused(kiln_graph *g, kiln_node *root, int count)
{
    if (!root->out.t[0])
        return kiln_status_of(g->ctx);
    count_fused(g, count);
    return KILN_OK;
}

/* A convolution with its activation in the GEMM epilogue; members: conv2d,
 * act. */
static kiln_status run_conv_epilogue(kiln_graph *g, kiln_node *root,
                                     kiln_node **members, int count)
{
    kiln_node *cv = members[0];
    kiln_tensor *in[3];
    for (int k = 0; k < cv->ninputs && k < 3; k++)
        in[k] = cv->inputs[k]->out.t[0];
    root->out.t[0] = kiln__g_conv2d_act(cv, in, (int)root->attr.i[0]);
    return ran_fused(g, root, count);
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
    return ran_fused(g, root, count);
}

/* The program of the elementwise @members (in creation order) of the
 * group rooted at @root, one instruction each, over their outside inputs
 * (into @ext, *@next of them). */
static void build_program(const kiln_node *root, kiln_node *const *members,
                          int count, kiln_fused_program *prog,
                          kiln_node **ext, int *next)
{
    *next = 0;
    for (int j = 0; j < count; j++)
        for (int k = 0; k < members[j]->ninputs; k++) {
            kiln_node *x = members[j]->inputs[k];
            int member = x->needed && x->fused_into == root->id;
            int seen = 0;
            for (int e = 0; e < *next; e++)
                seen |= ext[e] == x;
            if (!member && !seen)
                ext[(*next)++] = x;
        }
    memset(prog, 0, sizeof *prog);
    prog->ninputs = *next;
    prog->ninstr = count;
    for (int j = 0; j < count; j++) {
        kiln_node *m = members[j];
        int reg[3] = {0, 0, 0};
        for (int k = 0; k < m->ninputs; k++) {
            kiln_node *x = m->inputs[k];
            for (int e = 0; e < *next; e++)
                if (ext[e] == x)
                    reg[k] = e;
            for (int r = 0; r < j; r++)
                if (members[r] == x)
                    reg[k] = *next + r;
        }
        int code = m->op->fuse == KILN_GFUSE_UNARY
                       ? KILN_FUSED_UNARY + (int)m->attr.i[0]
                   : m->op->fuse == KILN_GFUSE_BINARY
                       ? KILN_FUSED_BINARY + (int)m->attr.i[0]
                       : KILN_FUSED_SELECT;
        prog->instr[j] = kiln_fused_instr(code, reg[0], reg[1], reg[2]);
    }
}

/* The outside inputs' values and their broadcast shape (-1 on error). */
static int program_inputs(kiln_graph *g, kiln_node *const *ext, int next,
                          kiln_tensor **in, int64_t *shape)
{
    for (int e = 0; e < next; e++)
        in[e] = ext[e]->out.t[0];
    return kiln__broadcast_shape(g->ctx, "kiln_graph_run", next, in, shape);
}


/* A reduction with its prologue: the members before the root are the
 * program, the root says what it reduces (KILN_GFUSE_REDUCE). */
static kiln_status run_reduction(kiln_graph *g, kiln_node *root,
                                 kiln_node **members, int count)
{
    kiln_fused_program prog;
    kiln_node *ext[KILN_FUSED_MAX_INPUTS];
    kiln_tensor *in[KILN_FUSED_MAX_INPUTS], *rin[3] = {NULL, NULL, NULL};
    int64_t shape[KILN_MAX_DIMS];
    int next;
    build_program(root, members, count - 1, &prog, ext, &next);
    int ndim = program_inputs(g, ext, next, in, shape);
    if (ndim < 0)
        return kiln_status_of(g->ctx);
    for (int k = 1; k < root->ninputs && k < 3; k++)
        rin[k] = root->inputs[k]->out.t[0];
    kiln_greduction r;
    char reduced[KILN_MAX_DIMS] = {0};
    if (root->op->reduction(root, ndim, shape, rin, &r) != 0)
        return run_unfused(g, members, count);
    for (int k = 0; k < r.naxes; k++)
        reduced[r.axes[k] < 0 ? r.axes[k] + ndim : r.axes[k]] = 1;
    kiln_tensor *out;
    if (r.naxes == 0) { /* nothing to reduce: the program's value */
        if (!kiln__fused_fits(next, in, ndim, shape))
            return run_unfused(g, members, count);
        out = kiln__fused(g->ctx, "kiln_graph_run", &prog, root->dtype, in,
                          ndim, shape);
    } else {
        if (!kiln__fused_reduce_fits(next, in, ndim, shape, reduced))
            return run_unfused(g, members, count);
        out = kiln__fused_reduce(g->ctx, "kiln_graph_run", &prog,
                                 root->dtype, in, ndim, shape, r.op, r.naxes,
                                 r.axes, r.keepdims);
    }
    if (out && r.reshape_like) {
        kiln_tensor *shaped = kiln_reshape(out, r.reshape_like->ndim,
                                           r.reshape_like->shape);
        kiln_tensor_free(out);
        out = shaped;
    }
    root->out.t[0] = out;
    return ran_fused(g, root, count);
}

kiln_status kiln__g_fuse_run(kiln_graph *g, kiln_node *root)
{
    kiln_node *members[KILN_FUSED_MAX_INSTRS + 1];
    int count = members_of(g, root, members);
    if (root->op->fuse == KILN_GFUSE_REDUCE)
        return run_reduction(g, root, members, count);
    if (kiln__g_is_gemm(members[0]))
        return run_epilogue(g, root, members, count);
    if (kiln__g_is_conv2d(members[0]))
        return run_conv_epilogue(g, root, members, count);
    kiln_fused_program prog;
    kiln_node *ext[KILN_FUSED_MAX_INPUTS];
    kiln_tensor *in[KILN_FUSED_MAX_INPUTS];
    int64_t shape[KILN_MAX_DIMS];
    int next;
    build_program(root, members, count, &prog, ext, &next);
    int ndim = program_inputs(g, ext, next, in, shape);
    if (ndim < 0)
        return kiln_status_of(g->ctx);
    if (!kiln__fused_fits(next, in, ndim, shape))
        return run_unfused(g, members, count);
    root->out.t[0] = kiln__fused(g->ctx, "kiln_graph_run", &prog, root->dtype,
                                 in, ndim, shape);
    return ran_fused(g, root, count);
}
