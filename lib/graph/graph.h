/*
 * graph.h - the graph layer's internals: nodes, the op descriptor every
 * node kind provides, and the helpers op files share.
 *
 * A node kind is one `kiln_gop`: how to run it (by calling the eager op
 * layer, so graph and eager results are the same numbers), how to build
 * its gradient out of other nodes, and how it fuses.  Op files:
 * graph_ops_math.c (elementwise, reductions, products, shapes),
 * graph_ops_nn.c (layers' ops); the executor is graph_run.c, fusion
 * graph_fuse.c, autodiff graph_autodiff.c.
 */
#ifndef KILN_GRAPH_INTERNAL_H
#define KILN_GRAPH_INTERNAL_H

#include "ops/ops.h"
#include "tensor.h"

#define KILN_G_MAX_OUTPUTS 4
#define KILN_G_NAME_MAX 64

typedef struct kiln_gop kiln_gop;

/** What a node's run produced: up to KILN_G_MAX_OUTPUTS tensors (output 0
 *  is the node's value; others, e.g. max-pool indices or batch-norm saved
 *  statistics, are read by backward nodes through kiln__g_output) and an
 *  optional opaque @aux (an RNN tape) freed with @aux_free. */
typedef struct kiln_gvalue {
    kiln_tensor *t[KILN_G_MAX_OUTPUTS];
    void *aux;
    void (*aux_free)(void *aux);
} kiln_gvalue;

/* Fusion classes. */
enum kiln_gfuse {
    KILN_GFUSE_NONE = 0,   /* runs its own kernel(s)                      */
    KILN_GFUSE_UNARY,      /* attr.i[0] = enum kiln_unary_op               */
    KILN_GFUSE_BINARY,     /* attr.i[0] = enum kiln_binary_op              */
    KILN_GFUSE_SELECT,
    KILN_GFUSE_REDUCE,     /* a reduction of input 0: see .reduction      */
};

/* What a reduction node (KILN_GFUSE_REDUCE) does to its input 0, at run
 * time: the graph's fusion runs it with the elementwise group computing
 * that input as its prologue (kiln__fused_reduce). */
typedef struct kiln_greduction {
    kiln_reduce_op op;
    int naxes;                   /* 0: nothing to reduce (a copy)          */
    int axes[KILN_MAX_DIMS];
    int keepdims;
    const kiln_tensor *reshape_like; /* result reshaped to its shape, or NULL */
} kiln_greduction;

struct kiln_node {
    kiln_graph *g;
    int id;                      /* index in g->nodes: creation order      */
    const kiln_gop *op;
    int ninputs;
    kiln_node **inputs;          /* owned array                            */
    kiln_dtype dtype;
    int ndim;
    int64_t shape[KILN_MAX_DIMS];/* -1 where only a run knows              */
    char name[KILN_G_NAME_MAX];
    struct {                     /* op attributes                          */
        int64_t i[16];
        double d[4];
        void *p;                 /* owned blob (op->attr_bytes long)       */
    } attr;
    kiln_tensor *value;          /* constants and variables: the value     */
    /* Per run (graph_run.c). */
    kiln_gvalue out;
    int needed;                  /* computed in this run                   */
    int uses_left;               /* consumers in this run not yet run      */
    int fused_into;              /* id of the fused group's root, or -1    */
};

struct kiln_gop {
    const char *name;
    enum kiln_gfuse fuse;
    /* Runs the node on its inputs' values (in[i] = input i's output 0) and
     * fills @out; returns KILN_OK or the error it recorded.  NULL for
     * leaves, which the executor handles. */
    kiln_status (*run)(kiln_node *n, kiln_tensor *const *in, kiln_gvalue *out);
    /* Builds the gradient of every input that @need[i] says is wanted,
     * from @dy (the gradient of output 0), into dx[i] (NULL = no gradient
     * flows, as for a comparison).  NULL: the op is not differentiable and
     * asking for a gradient through it is an error, unless @no_grad. */
    kiln_status (*backward)(kiln_node *n, kiln_node *dy, const int *need,
                            kiln_node **dx);
    /* KILN_GFUSE_REDUCE: fills @r for input 0 of run-time shape (@ndim,
     * @shape); @in[k] (k >= 1) are the other inputs' values (in[0] is
     * NULL: computed in the fused kernel).  Returns 0, or -1 when the
     * reduction cannot be described (the node then runs unfused). */
    int (*reduction)(const kiln_node *n, int ndim, const int64_t *shape,
                     kiln_tensor *const *in, kiln_greduction *r);
    int no_grad;                 /* discrete output: gradients stop here   */
    int is_leaf;
    int mutates;                 /* assignments: never skipped or fused    */
    int run_offset;              /* in training reads g->run_offset (dropout) */
};

struct kiln_graph {
    kiln_context *ctx;
    kiln_node **nodes;
    int nnodes, cap;
    int training;
    int fusion;
    uint64_t runs;               /* completed runs: dropout's Philox offset */
    /* runs << 32 as {lo, hi} on the device, where dropout reads its offset
     * so that a recorded run draws each replay's own masks (graph.c). */
    kiln_tensor *run_offset;
    uint64_t run_offset_runs;    /* the runs value it holds                */
    int run_offset_prepared;     /* prepared: till the next run (graph.c)  */
    kiln_graph_stats stats;
};

/* The leaves' descriptors (graph.c); the executor recognises them. */
extern const kiln_gop kiln__gop_input;
extern const kiln_gop kiln__gop_constant;
extern const kiln_gop kiln__gop_variable;

/** Before replaying (or capturing) a recorded run of @g in training mode:
 *  writes the dropout offset of run g->runs (set it first with
 *  kiln_graph_set_runs) to the device, where the recorded dropout kernels
 *  read it; a capture (kiln_graph_run while recording) before the next
 *  eager run then reads the counter too, rather than baking the offset in.
 *  Not inside a capture (the write is host work); a replay does not
 *  advance g->runs, unlike kiln_graph_run. */
kiln_status kiln__graph_prepare_replay(kiln_graph *g);

/** Frees a node's run-time values (graph_run.c calls it at last use). */
void kiln__g_release(kiln_node *n);

/** A new node of @op with @ninputs inputs (all non-NULL and of @g, else
 *  NULL with an error naming @call); dtype/shape left for the caller. */
kiln_node *kiln__g_node(const char *call, const kiln_gop *op, int ninputs,
                        kiln_node *const *inputs);
/** The graph of the first non-NULL node, or NULL (records an error when
 *  a node is NULL without an earlier error, or graphs differ). */
kiln_graph *kiln__g_args(const char *call, int n, kiln_node *const *nodes);
/** Sets @n's dtype and build-time shape. */
void kiln__g_set_shape(kiln_node *n, kiln_dtype dtype, int ndim,
                       const int64_t *shape);
/** Broadcast of build-time shapes (-1 = unknown, compatible with
 *  anything); -1 after an error naming @call. */
int kiln__g_broadcast(kiln_graph *g, const char *call, int n,
                      kiln_node *const *nodes, int64_t *shape);
/** Output @k of input @i's value during a run (backward nodes read the
 *  forward node's saved tensors this way). */
kiln_tensor *kiln__g_output(kiln_node *n, int i, int k);
/** The value of input @i's output 0 during a run. */
kiln_tensor *kiln__g_input_value(kiln_node *n, int i);

/* Fusion (graph_fuse.c): marks groups of needed elementwise nodes (sets
 * fused_into to the group's root: its last node) and runs a group as one
 * generated kernel at its root. */
kiln_status kiln__g_fuse_plan(kiln_graph *g);
kiln_status kiln__g_fuse_run(kiln_graph *g, kiln_node *root);

/** KILN_OK when every gradient @need asks for was built into @dx, else
 *  the context's error (backward rules end with it). */
kiln_status kiln__g_built(kiln_graph *g, int nout, kiln_node **dx,
                          const int *need);

/** Is @n a matrix product (attr.i[0], i[1]: the transposes)? */
int kiln__g_is_gemm(const kiln_node *n);
/** Is @n a conv2d node (inputs x, w and, when attr.i[8], the bias)? */
int kiln__g_is_conv2d(const kiln_node *n);
/** Conv2d node @n's value for input values @in, followed by the unary op
 *  @act (RELU, SIGMOID, TANH; -1: none) in the convolution's GEMM
 *  epilogue (kiln__conv2d_act); NULL after an error. */
kiln_tensor *kiln__g_conv2d_act(const kiln_node *n, kiln_tensor *const *in,
                                int act);

/* Builders the backward rules use (graph_ops_math.c). */
kiln_node *kiln__g_unary(const char *call, kiln_node *x, int op);
kiln_node *kiln__g_binary(const char *call, kiln_node *a, kiln_node *b,
                          int op);
/** @x summed down to @like's run-time shape (identity when equal). */
kiln_node *kiln__g_sum_to_like(kiln_node *x, kiln_node *like);
/** @x reshaped to @like's run-time shape. */
kiln_node *kiln__g_reshape_like(kiln_node *x, kiln_node *like);
/** @x (reduced with keepdims or not over attr axes) broadcast back to
 *  @like's run-time shape: the gradient of a reduction. */
kiln_node *kiln__g_unreduce(kiln_node *x, kiln_node *like, int naxes,
                            const int *axes, int keepdims);
/** Zeros / a constant of @like's run-time shape and dtype. */
kiln_node *kiln__g_fill_like(kiln_node *like, double value);

#endif /* KILN_GRAPH_INTERNAL_H */
