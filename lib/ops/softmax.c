/*
 * softmax.c - softmax, log-softmax, their backward passes, and the losses:
 * softmax cross-entropy (one fused kernel per row, then a mean), sigmoid
 * cross-entropy, MSE and the L1/L2 penalties; categorical sampling, which
 * shares the cross-entropy kernel (its SAMPLE mode).
 *
 * Softmax works along any axis of any strided view: the tensor is seen as
 * rows (every dim but the axis, passed as shape + strides) of n elements,
 * one workgroup per row (kernels_softmax.h), so no input is ever copied.
 *
 * Sigmoid cross-entropy, MSE and the penalties are composed from the
 * elementwise ops and one scaled full reduction: they are memory-bound
 * passes over small tensors, where a fused kernel would save little and
 * cost three more implementations.  The full reduction launches
 * KILN_K_REDUCE directly with the final scale (1/n, 1/2n, 1/2) folded in,
 * so a loss is one rounding of a compensated sum, not a sum then a divide.
 */
#include <math.h>
#include <string.h>

#include "ops/ops.h"
#include "queue/kernels_softmax.h"


static void row_dispatch(kiln_context *ctx, kiln_dispatch *d,
                         kiln_kernel_id kernel, kiln_dtype dtype,
                         int64_t nrows, int64_t n)
{
    kiln__dispatch_init(ctx, d, kernel, dtype, nrows);
    d->local[0] = kiln__reduce_local(ctx, n);
    d->groups[0] = (uint32_t)(nrows < 65535 ? (nrows ? nrows : 1) : 65535);
}

/* The dims of @t other than @axis, right-aligned into the kernel's
 * KILN_SOFTMAX_OUTER entries (leading 1s, stride 0). */
static void outer_dims(const kiln_tensor *t, int axis, int32_t *shape,
                       int32_t *stride)
{
    int k = KILN_SOFTMAX_OUTER - (t->ndim - 1);
    for (int i = 0; i < KILN_SOFTMAX_OUTER; i++) {
        shape[i] = 1;
        stride[i] = 0;
    }
    for (int i = 0; i < t->ndim; i++) {
        if (i == axis)
            continue;
        shape[k] = (int32_t)t->shape[i];
        stride[k++] = (int32_t)t->stride[i];
    }
}

static int check_axis(kiln_context *ctx, const char *call,
                      const kiln_tensor *t, int axis)
{
    if (t->ndim == 0) {
        kiln__error(ctx, KILN_ERROR_SHAPE, "%s: a scalar has no axis", call);
        return -1;
    }
    int a = axis < 0 ? axis + t->ndim : axis;
    if (a < 0 || a >= t->ndim) {
        kiln__error(ctx, KILN_ERROR_INVALID_ARGUMENT,
                    "%s: axis %d is out of range for a %d-D tensor", call,
                    axis, t->ndim);
        return -1;
    }
    return a;
}

static int check_float(kiln_context *ctx, const char *call, kiln_dtype t)
{
    if (kiln__is_float(t))
        return 0;
    kiln__error(ctx, KILN_ERROR_DTYPE, "%s: needs f32 or f64, got %s", call,
                kiln_dtype_name(t));
    return -1;
}

static int same_shape(const kiln_tensor *a, const kiln_tensor *b)
{
    if (a->ndim != b->ndim)
        return 0;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i])
            return 0;
    return 1;
}

static int check_pair(kiln_context *ctx, const char *call,
                      const kiln_tensor *a, const kiln_tensor *b)
{
    if (a->dtype != b->dtype) {
        kiln__error(ctx, KILN_ERROR_DTYPE, "%s: operands are %s and %s "
                    "(cast one first)", call, kiln_dtype_name(a->dtype),
                    kiln_dtype_name(b->dtype));
        return -1;
    }
    if (!same_shape(a, b)) {
        char sa[160], sb[160];
        kiln__error(ctx, KILN_ERROR_SHAPE, "%s: shapes %s and %s differ", call,
                    kiln__shape_string(a->ndim, a->shape, sa, sizeof sa),
                    kiln__shape_string(b->ndim, b->shape, sb, sizeof sb));
        return -1;
    }
    return check_float(ctx, call, a->dtype);
}

static kiln_tensor *launch_or_free(kiln_context *ctx, const char *call,
                                   const kiln_dispatch *d, kiln_tensor *out)
{
    if (kiln__launch(ctx, call, d, -1) != KILN_OK) {
        kiln_tensor_free(out);
        return NULL;
    }
    return out;
}

/* ---- softmax ------------------------------------------------------------ */

static kiln_tensor *softmax_forward(kiln_tensor *x, int axis, int log,
                                    const char *call)
{
    kiln_context *ctx = kiln__args(call, 1, &x);
    if (!ctx || check_float(ctx, call, x->dtype) < 0)
        return NULL;
    int a = check_axis(ctx, call, x, axis);
    if (a < 0)
        return NULL;
    kiln_tensor *y = kiln__tensor_alloc(ctx, call, x->dtype, x->ndim,
                                        x->shape);
    int64_t numel = kiln_tensor_numel(y);
    if (!y || numel == 0)
        return y;
    kiln_dispatch d;
    row_dispatch(ctx, &d, KILN_K_SOFTMAX, x->dtype, numel / x->shape[a],
                 x->shape[a]);
    kiln_softmax_params *p = (kiln_softmax_params *)d.params;
    p->nrows = (int32_t)(numel / x->shape[a]);
    p->n = (int32_t)x->shape[a];
    p->log = log;
    p->off_a = (int32_t)kiln__block_offset(x);
    p->off_out = (int32_t)kiln__block_offset(y);
    p->axis_a = (int32_t)x->stride[a];
    p->axis_out = (int32_t)y->stride[a];
    outer_dims(x, a, p->outer_shape, p->outer_a);
    outer_dims(y, a, p->outer_shape, p->outer_out);
    kiln__bind(&d, x, KILN_ACCESS_READ);
    kiln__bind(&d, y, KILN_ACCESS_WRITE);
    return launch_or_free(ctx, call, &d, y);
}

kiln_tensor *kiln_softmax(kiln_tensor *x, int axis)
{
    return softmax_forward(x, axis, 0, "kiln_softmax");
}

kiln_tensor *kiln_log_softmax(kiln_tensor *x, int axis)
{
    return softmax_forward(x, axis, 1, "kiln_log_softmax");
}

static kiln_tensor *softmax_backward(kiln_tensor *y, kiln_tensor *dy,
                                     int axis, int log, const char *call)
{
    kiln_tensor *args[2] = {y, dy};
    kiln_context *ctx = kiln__args(call, 2, args);
    if (!ctx || check_pair(ctx, call, y, dy) < 0)
        return NULL;
    int a = check_axis(ctx, call, y, axis);
    if (a < 0)
        return NULL;
    kiln_tensor *dx = kiln__tensor_alloc(ctx, call, y->dtype, y->ndim,
                                         y->shape);
    int64_t numel = kiln_tensor_numel(dx);
    if (!dx || numel == 0)
        return dx;
    kiln_dispatch d;
    row_dispatch(ctx, &d, KILN_K_SOFTMAX_BACKWARD, y->dtype,
                 numel / y->shape[a], y->shape[a]);
    kiln_softmax_params *p = (kiln_softmax_params *)d.params;
    p->nrows = (int32_t)(numel / y->shape[a]);
    p->n = (int32_t)y->shape[a];
    p->log = log;
    p->off_a = (int32_t)kiln__block_offset(y);
    p->off_b = (int32_t)kiln__block_offset(dy);
    p->off_out = (int32_t)kiln__block_offset(dx);
    p->axis_a = (int32_t)y->stride[a];
    p->axis_b = (int32_t)dy->stride[a];
    p->axis_out = (int32_t)dx->stride[a];
    outer_dims(y, a, p->outer_shape, p->outer_a);
    outer_dims(dy, a, p->outer_shape, p->outer_b);
    outer_dims(dx, a, p->outer_shape, p->outer_out);
    kiln__bind(&d, y, KILN_ACCESS_READ);
    kiln__bind(&d, dy, KILN_ACCESS_READ);
    kiln__bind(&d, dx, KILN_ACCESS_WRITE);
    return launch_or_free(ctx, call, &d, dx);
}

kiln_tensor *kiln_softmax_backward(kiln_tensor *y, kiln_tensor *dy, int axis)
{
    return softmax_backward(y, dy, axis, 0, "kiln_softmax_backward");
}

kiln_tensor *kiln_log_softmax_backward(kiln_tensor *y, kiln_tensor *dy,
                                       int axis)
{
    return softmax_backward(y, dy, axis, 1, "kiln_log_softmax_backward");
}

/* ---- helpers for the composed losses ------------------------------------- */

/* A 0-D tensor of @dtype holding @value (filled on the device, so no host
 * synchronisation). */
static kiln_tensor *scalar(kiln_context *ctx, const char *call,
                           kiln_dtype dtype, double value)
{
    kiln_tensor *t = kiln__tensor_alloc(ctx, call, dtype, 0, NULL);
    if (t && kiln_fill(t, value) != KILN_OK) {
        kiln_tensor_free(t);
        return NULL;
    }
    return t;
}

/* scale * sum of every element of @t (any layout) as a 0-D tensor; NULL
 * @t (an earlier failure) gives NULL. */
static kiln_tensor *sum_scaled(kiln_context *ctx, const char *call,
                               kiln_tensor *t, double scale)
{
    if (!t)
        return NULL;
    kiln_tensor *out = kiln__tensor_alloc(ctx, call, t->dtype, 0, NULL);
    if (!out)
        return NULL;
    int64_t n = kiln_tensor_numel(t);
    kiln_dispatch d;
    kiln__dispatch_init(ctx, &d, KILN_K_REDUCE, t->dtype, 1);
    d.local[0] = kiln__reduce_local(ctx, n);
    d.groups[0] = 1;
    kiln_reduce_params *p = (kiln_reduce_params *)d.params;
    p->nout = 1;
    p->nred = (int32_t)n;
    p->op = KILN_KREDUCE_SUM;
    p->off_in = (int32_t)kiln__block_offset(t);
    p->off_out = (int32_t)kiln__block_offset(out);
    kiln__kernel_strides(t, t->ndim, t->shape, p->red_shape, p->red_stride);
    for (int i = 0; i < KILN_KDIMS; i++)
        p->outer_shape[i] = 1;
    kiln__scalar_bits(t->dtype, n ? scale : NAN, &p->scale_lo, &p->scale_hi);
    kiln__bind(&d, t, KILN_ACCESS_READ);
    kiln__bind(&d, out, KILN_ACCESS_WRITE);
    return launch_or_free(ctx, call, &d, out);
}

/* Frees @n temporaries. */
static void free_all(int n, kiln_tensor **ts)
{
    for (int i = 0; i < n; i++)
        kiln_tensor_free(ts[i]);
}

/* Hands @g to the caller's @grad slot, or frees it. */
static void give_grad(kiln_tensor **grad, kiln_tensor *loss, kiln_tensor *g)
{
    if (grad && loss)
        *grad = g;
    else
        kiln_tensor_free(g);
}

/* ---- softmax cross-entropy ------------------------------------------------ */

static int check_xent(kiln_context *ctx, const char *call,
                      const kiln_tensor *x, const kiln_tensor *lab)
{
    char sx[160], sl[160];
    if (check_float(ctx, call, x->dtype) < 0)
        return -1;
    if (x->ndim != 2 || x->shape[1] < 1) {
        kiln__error(ctx, KILN_ERROR_SHAPE, "%s: logits must be [N, C] with "
                    "C >= 1, got %s", call,
                    kiln__shape_string(x->ndim, x->shape, sx, sizeof sx));
        return -1;
    }
    int index = lab->dtype == KILN_I32 && lab->ndim == 1 &&
                lab->shape[0] == x->shape[0];
    int probs = lab->dtype == x->dtype && same_shape(lab, x);
    if (index || probs)
        return 0;
    kiln__error(ctx, lab->dtype == KILN_I32 || lab->dtype == x->dtype
                         ? KILN_ERROR_SHAPE : KILN_ERROR_DTYPE,
                "%s: labels must be i32 [N] or %s [N, C] for logits %s, "
                "got %s %s", call, kiln_dtype_name(x->dtype),
                kiln__shape_string(x->ndim, x->shape, sx, sizeof sx),
                kiln_dtype_name(lab->dtype),
                kiln__shape_string(lab->ndim, lab->shape, sl, sizeof sl));
    return -1;
}

/* One XENT dispatch: per-row losses into @rows, the gradient into @g
 * (NULL: not computed; the logits fill the unused binding). */
static kiln_status launch_xent(kiln_context *ctx, const char *call,
                               kiln_tensor *x, kiln_tensor *lab,
                               kiln_tensor *rows, kiln_tensor *g, int mode,
                               double scale)
{
    int64_t n = x->shape[0];
    kiln_dispatch d;
    row_dispatch(ctx, &d, KILN_K_SOFTMAX_XENT, x->dtype, n, x->shape[1]);
    d.dtype2 = lab->dtype;
    kiln_xent_params *p = (kiln_xent_params *)d.params;
    p->nrows = (int32_t)n;
    p->ncls = (int32_t)x->shape[1];
    p->mode = mode;
    p->want_grad = g != NULL;
    p->off_x = (int32_t)kiln__block_offset(x);
    p->off_lab = (int32_t)kiln__block_offset(lab);
    p->off_loss = (int32_t)kiln__block_offset(rows);
    p->off_grad = g ? (int32_t)kiln__block_offset(g) : 0;
    p->x_sn = (int32_t)x->stride[0];
    p->x_sc = (int32_t)x->stride[1];
    p->lab_sn = (int32_t)lab->stride[0];
    p->lab_sc = lab->ndim == 2 ? (int32_t)lab->stride[1] : 0;
    kiln__scalar_bits(x->dtype, scale, &p->scale_lo, &p->scale_hi);
    int sample = mode == KILN_XENT_SAMPLE;
    kiln__bind(&d, x, KILN_ACCESS_READ);
    kiln__bind(&d, lab, sample ? KILN_ACCESS_WRITE : KILN_ACCESS_READ);
    kiln__bind(&d, rows, sample ? KILN_ACCESS_READ : KILN_ACCESS_WRITE);
    if (g)
        kiln__bind(&d, g, KILN_ACCESS_WRITE);
    else
        kiln__bind(&d, x, KILN_ACCESS_READ);
    return kiln__launch(ctx, call, &d, mode);
}

kiln_tensor *kiln_softmax_cross_entropy(kiln_tensor *logits,
                                        kiln_tensor *labels,
                                        kiln_tensor **grad)
{
    const char *call = "kiln_softmax_cross_entropy";
    kiln_tensor *args[2] = {logits, labels};
    if (grad)
        *grad = NULL;
    kiln_context *ctx = kiln__args(call, 2, args);
    if (!ctx || check_xent(ctx, call, logits, labels) < 0)
        return NULL;
    int64_t n = logits->shape[0];
    kiln_tensor *rows = kiln__tensor_alloc(ctx, call, logits->dtype, 1, &n);
    kiln_tensor *g = grad ? kiln__tensor_alloc(ctx, call, logits->dtype, 2,
                                               logits->shape)
                          : NULL;
    kiln_tensor *loss = NULL;
    if (rows && (g || !grad)) {
        int mode = labels->dtype == KILN_I32 ? KILN_XENT_INDEX
                                             : KILN_XENT_PROBS;
        kiln_status s = n ? launch_xent(ctx, call, logits, labels, rows, g,
                                        mode, 1.0 / (double)n)
                          : KILN_OK;
        if (s == KILN_OK)
            loss = sum_scaled(ctx, call, rows, 1.0 / (double)n);
    }
    kiln_tensor_free(rows);
    give_grad(grad, loss, g);
    return loss;
}

/* ---- categorical sampling ------------------------------------------------ */

kiln_tensor *kiln_sample_categorical(kiln_tensor *logits, double temperature,
                                     uint64_t seed, uint64_t offset)
{
    const char *call = "kiln_sample_categorical";
    kiln_context *ctx = kiln__args(call, 1, &logits);
    if (!ctx || check_float(ctx, call, logits->dtype) < 0)
        return NULL;
    char buf[160];
    if (logits->ndim != 2 || logits->shape[1] < 1)
        return kiln__error_null(ctx, KILN_ERROR_SHAPE,
                                "%s: logits must be [N, C] with C >= 1, got "
                                "%s", call,
                                kiln__shape_string(logits->ndim, logits->shape,
                                                   buf, sizeof buf));
    if (!(temperature > 0) || !isfinite(1.0 / temperature))
        return kiln__error_null(ctx, KILN_ERROR_INVALID_ARGUMENT,
                                "%s: temperature must be > 0, got %g", call,
                                temperature);
    int64_t n = logits->shape[0];
    kiln_tensor *out = kiln__tensor_alloc(ctx, call, KILN_I32, 1, &n);
    kiln_tensor *u = out ? kiln__tensor_alloc(ctx, call, logits->dtype, 1, &n)
                         : NULL;
    kiln_status s = u ? KILN_OK : ctx->status;
    /* One uniform per row, at counter offset + row (kiln.h). */
    if (s == KILN_OK && n)
        s = kiln_random_uniform(u, seed, offset, 0.0, 1.0);
    if (s == KILN_OK && n)
        s = launch_xent(ctx, call, logits, out, u, NULL, KILN_XENT_SAMPLE,
                        1.0 / temperature);
    kiln_tensor_free(u);
    if (s != KILN_OK) {
        kiln_tensor_free(out);
        return NULL;
    }
    return out;
}

/* ---- composed losses -------------------------------------------------------- */

kiln_tensor *kiln_sigmoid_cross_entropy(kiln_tensor *logits,
                                        kiln_tensor *targets,
                                        kiln_tensor **grad)
{
    const char *call = "kiln_sigmoid_cross_entropy";
    kiln_tensor *args[2] = {logits, targets};
    if (grad)
        *grad = NULL;
    kiln_context *ctx = kiln__args(call, 2, args);
    if (!ctx || check_pair(ctx, call, logits, targets) < 0)
        return NULL;
    int64_t n = kiln_tensor_numel(logits);
    kiln_dtype dt = logits->dtype;
    /* max(x, 0) - x z + log(1 + exp(-|x|)): exp never overflows. */
    kiln_tensor *t[10] = {0};
    t[0] = kiln_relu(logits);
    t[1] = kiln_mul(logits, targets);
    t[2] = kiln_abs(logits);
    t[3] = kiln_neg(t[2]);
    t[4] = kiln_exp(t[3]);
    t[5] = scalar(ctx, call, dt, 1.0);
    t[6] = kiln_add(t[4], t[5]);
    t[7] = kiln_log(t[6]);
    t[8] = kiln_sub(t[0], t[1]);
    t[9] = kiln_add(t[8], t[7]);
    kiln_tensor *loss = sum_scaled(ctx, call, t[9], 1.0 / (double)n);
    free_all(10, t);
    if (loss && grad) {
        kiln_tensor *u[4] = {kiln_sigmoid(logits), NULL, NULL, NULL};
        u[1] = kiln_sub(u[0], targets);
        u[2] = scalar(ctx, call, dt, 1.0 / (double)n);
        kiln_tensor *g = kiln_mul(u[1], u[2]);
        free_all(3, u);
        if (!g) {
            kiln_tensor_free(loss);
            return NULL;
        }
        *grad = g;
    }
    return loss;
}

kiln_tensor *kiln_mse_loss(kiln_tensor *pred, kiln_tensor *target, int half,
                           kiln_tensor **grad)
{
    const char *call = "kiln_mse_loss";
    kiln_tensor *args[2] = {pred, target};
    if (grad)
        *grad = NULL;
    kiln_context *ctx = kiln__args(call, 2, args);
    if (!ctx || check_pair(ctx, call, pred, target) < 0)
        return NULL;
    double n = (double)kiln_tensor_numel(pred);
    kiln_tensor *diff = kiln_sub(pred, target);
    kiln_tensor *sq = kiln_square(diff);
    kiln_tensor *loss = sum_scaled(ctx, call, sq, (half ? 0.5 : 1.0) / n);
    kiln_tensor_free(sq);
    if (loss && grad) {
        kiln_tensor *k = scalar(ctx, call, pred->dtype, (half ? 1.0 : 2.0) / n);
        kiln_tensor *g = kiln_mul(diff, k);
        kiln_tensor_free(k);
        if (!g) {
            kiln_tensor_free(loss);
            loss = NULL;
        }
        *grad = g;
    }
    kiln_tensor_free(diff);
    return loss;
}

static kiln_tensor *penalty(kiln_tensor *w, int l2, const char *call)
{
    kiln_context *ctx = kiln__args(call, 1, &w);
    if (!ctx || check_float(ctx, call, w->dtype) < 0)
        return NULL;
    kiln_tensor *t = l2 ? kiln_square(w) : kiln_abs(w);
    kiln_tensor *r = sum_scaled(ctx, call, t, l2 ? 0.5 : 1.0);
    kiln_tensor_free(t);
    return r;
}

kiln_tensor *kiln_l1_penalty(kiln_tensor *w)
{
    return penalty(w, 0, "kiln_l1_penalty");
}

kiln_tensor *kiln_l2_penalty(kiln_tensor *w)
{
    return penalty(w, 1, "kiln_l2_penalty");
}
