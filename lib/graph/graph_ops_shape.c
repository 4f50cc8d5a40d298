/*
 * graph_ops_shape.c - graph nodes for matrix products and shape ops
 * (reshape, permute, slice, concat, cast, stop_gradient), each with its
 * backward rule built from other nodes.
 */
#include <stdlib.h>
#include <string.h>

#include "graph/graph.h"

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
    return kiln__g_built(n->g, 2, dx, need);
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
    return kiln__g_built(n->g, 1, dx, need);
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
    return kiln__g_built(n->g, 1, dx, need);
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
    return kiln__g_built(n->g, 1, dx, need);
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
    return kiln__g_built(n->g, n->ninputs, dx, need);
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
    out->t[0] = in[0]->dtype == n->dtype ? kiln__tensor_view(in[0])
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
    return kiln__g_built(n->g, 1, dx, need);
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
    out->t[0] = kiln__tensor_view(in[0]);
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
