/*
 * elementwise.c - unary, binary, compare, select, fill, cast and copy.
 */
#include <string.h>

#include "ops/ops.h"

/* ---- binary ------------------------------------------------------------ */

static const char *const binary_names[KILN_BINARY_COUNT] = {
    "kiln_add", "kiln_sub", "kiln_mul", "kiln_div", "kiln_minimum",
    "kiln_maximum", "kiln_pow", "kiln_compare", "kiln_compare", "kiln_compare",
    "kiln_compare", "kiln_compare", "kiln_compare"};

static kiln_tensor *binary(kiln_tensor *a, kiln_tensor *b, int op)
{
    const char *call = binary_names[op];
    kiln_tensor *args[2] = {a, b};
    kiln_context *ctx = kiln__args(call, 2, args);
    if (!ctx)
        return NULL;
    if (a->dtype != b->dtype)
        return kiln__error_null(ctx, KILN_ERROR_DTYPE,
                                "%s: operands are %s and %s (cast one first)",
                                call, kiln_dtype_name(a->dtype),
                                kiln_dtype_name(b->dtype));
    if (op == KILN_BINARY_POW && !kiln__is_float(a->dtype))
        return kiln__error_null(ctx, KILN_ERROR_DTYPE,
                                "%s: needs f32 or f64, got %s", call,
                                kiln_dtype_name(a->dtype));
    int64_t shape[KILN_MAX_DIMS];
    int ndim = kiln__broadcast_shape(ctx, call, 2, args, shape);
    if (ndim < 0)
        return NULL;
    kiln_tensor *out = kiln__tensor_alloc(ctx, call, a->dtype, ndim, shape);
    int64_t n = kiln_tensor_numel(out);
    if (!out || n == 0)
        return out;
    kiln_dispatch d;
    kiln__dispatch_init(ctx, &d, KILN_K_BINARY, a->dtype, n);
    kiln_binary_params *p = (kiln_binary_params *)d.params;
    p->n = (int32_t)n;
    p->op = op;
    p->off_a = (int32_t)kiln__block_offset(a);
    p->off_b = (int32_t)kiln__block_offset(b);
    p->off_out = (int32_t)kiln__block_offset(out);
    kiln__elementwise_layout(2, args, ndim, shape, p->shape,
                             (int32_t *const[]){p->stride_a, p->stride_b});
    kiln__bind(&d, a, KILN_ACCESS_READ);
    kiln__bind(&d, b, KILN_ACCESS_READ);
    kiln__bind(&d, out, KILN_ACCESS_WRITE);
    if (kiln__launch(ctx, call, &d, op) != KILN_OK) {
        kiln_tensor_free(out);
        return NULL;
    }
    return out;
}

kiln_tensor *kiln_add(kiln_tensor *a, kiln_tensor *b)
{
    return binary(a, b, KILN_BINARY_ADD);
}
kiln_tensor *kiln_sub(kiln_tensor *a, kiln_tensor *b)
{
    return binary(a, b, KILN_BINARY_SUB);
}
kiln_tensor *kiln_mul(kiln_tensor *a, kiln_tensor *b)
{
    return binary(a, b, KILN_BINARY_MUL);
}
kiln_tensor *kiln_div(kiln_tensor *a, kiln_tensor *b)
{
    return binary(a, b, KILN_BINARY_DIV);
}
kiln_tensor *kiln_minimum(kiln_tensor *a, kiln_tensor *b)
{
    return binary(a, b, KILN_BINARY_MIN);
}
kiln_tensor *kiln_maximum(kiln_tensor *a, kiln_tensor *b)
{
    return binary(a, b, KILN_BINARY_MAX);
}
kiln_tensor *kiln_pow(kiln_tensor *a, kiln_tensor *b)
{
    return binary(a, b, KILN_BINARY_POW);
}

kiln_tensor *kiln_compare(kiln_tensor *a, kiln_tensor *b, kiln_compare_op op)
{
    if ((unsigned)op > KILN_GE) {
        kiln_context *ctx = a ? a->ctx : b ? b->ctx : NULL;
        return kiln__error_null(ctx, KILN_ERROR_INVALID_ARGUMENT,
                                "kiln_compare: unknown comparison %d", (int)op);
    }
    return binary(a, b, KILN_BINARY_EQ + (int)op);
}

/* ---- select ------------------------------------------------------------ */

kiln_tensor *kiln_select(kiln_tensor *cond, kiln_tensor *a, kiln_tensor *b)
{
    const char *call = "kiln_select";
    kiln_tensor *args[3] = {cond, a, b};
    kiln_context *ctx = kiln__args(call, 3, args);
    if (!ctx)
        return NULL;
    if (a->dtype != b->dtype || cond->dtype != a->dtype)
        return kiln__error_null(ctx, KILN_ERROR_DTYPE,
                                "%s: condition, a and b are %s, %s and %s "
                                "(all must match)", call,
                                kiln_dtype_name(cond->dtype),
                                kiln_dtype_name(a->dtype),
                                kiln_dtype_name(b->dtype));
    int64_t shape[KILN_MAX_DIMS];
    int ndim = kiln__broadcast_shape(ctx, call, 3, args, shape);
    if (ndim < 0)
        return NULL;
    kiln_tensor *out = kiln__tensor_alloc(ctx, call, a->dtype, ndim, shape);
    int64_t n = kiln_tensor_numel(out);
    if (!out || n == 0)
        return out;
    kiln_dispatch d;
    kiln__dispatch_init(ctx, &d, KILN_K_SELECT, a->dtype, n);
    kiln_select_params *p = (kiln_select_params *)d.params;
    p->n = (int32_t)n;
    p->off_c = (int32_t)kiln__block_offset(cond);
    p->off_a = (int32_t)kiln__block_offset(a);
    p->off_b = (int32_t)kiln__block_offset(b);
    p->off_out = (int32_t)kiln__block_offset(out);
    kiln__elementwise_layout(3, args, ndim, shape, p->shape,
                             (int32_t *const[]){p->stride_c, p->stride_a,
                                                p->stride_b});
    kiln__bind(&d, cond, KILN_ACCESS_READ);
    kiln__bind(&d, a, KILN_ACCESS_READ);
    kiln__bind(&d, b, KILN_ACCESS_READ);
    kiln__bind(&d, out, KILN_ACCESS_WRITE);
    if (kiln__launch(ctx, call, &d, -1) != KILN_OK) {
        kiln_tensor_free(out);
        return NULL;
    }
    return out;
}

/* ---- unary ------------------------------------------------------------- */

static const char *const unary_names[KILN_UNARY_COUNT] = {
    "kiln_neg", "kiln_abs", "kiln_square", "kiln_relu", "kiln_exp",
    "kiln_log", "kiln_sqrt", "kiln_sigmoid", "kiln_tanh"};

static kiln_tensor *unary(kiln_tensor *t, int op)
{
    const char *call = unary_names[op];
    kiln_context *ctx = kiln__args(call, 1, &t);
    if (!ctx)
        return NULL;
    if (op >= KILN_UNARY_FIRST_FLOAT_ONLY && !kiln__is_float(t->dtype))
        return kiln__error_null(ctx, KILN_ERROR_DTYPE,
                                "%s: needs f32 or f64, got %s", call,
                                kiln_dtype_name(t->dtype));
    kiln_tensor *out = kiln__tensor_alloc(ctx, call, t->dtype, t->ndim,
                                          t->shape);
    int64_t n = kiln_tensor_numel(out);
    if (!out || n == 0)
        return out;
    kiln_dispatch d;
    kiln__dispatch_init(ctx, &d, KILN_K_UNARY, t->dtype, n);
    kiln_unary_params *p = (kiln_unary_params *)d.params;
    p->n = (int32_t)n;
    p->op = op;
    p->off_in = (int32_t)kiln__block_offset(t);
    p->off_out = (int32_t)kiln__block_offset(out);
    kiln__elementwise_layout(1, &t, t->ndim, t->shape, p->shape,
                             (int32_t *const[]){p->stride_in});
    kiln__bind(&d, t, KILN_ACCESS_READ);
    kiln__bind(&d, out, KILN_ACCESS_WRITE);
    if (kiln__launch(ctx, call, &d, op) != KILN_OK) {
        kiln_tensor_free(out);
        return NULL;
    }
    return out;
}

kiln_tensor *kiln_neg(kiln_tensor *t) { return unary(t, KILN_UNARY_NEG); }
kiln_tensor *kiln_abs(kiln_tensor *t) { return unary(t, KILN_UNARY_ABS); }
kiln_tensor *kiln_square(kiln_tensor *t) { return unary(t, KILN_UNARY_SQUARE); }
kiln_tensor *kiln_relu(kiln_tensor *t) { return unary(t, KILN_UNARY_RELU); }
kiln_tensor *kiln_exp(kiln_tensor *t) { return unary(t, KILN_UNARY_EXP); }
kiln_tensor *kiln_log(kiln_tensor *t) { return unary(t, KILN_UNARY_LOG); }
kiln_tensor *kiln_sqrt(kiln_tensor *t) { return unary(t, KILN_UNARY_SQRT); }
kiln_tensor *kiln_sigmoid(kiln_tensor *t)
{
    return unary(t, KILN_UNARY_SIGMOID);
}
kiln_tensor *kiln_tanh(kiln_tensor *t) { return unary(t, KILN_UNARY_TANH); }

/* ---- fill, convert, copy ------------------------------------------------ */

kiln_status kiln_fill(kiln_tensor *t, double value)
{
    const char *call = "kiln_fill";
    kiln_context *ctx = kiln__args(call, 1, &t);
    if (!ctx)
        return t ? kiln_status_of(t->ctx) : KILN_ERROR_INVALID_ARGUMENT;
    int64_t n = kiln_tensor_numel(t);
    if (n == 0)
        return KILN_OK;
    kiln_dispatch d;
    kiln__dispatch_init(ctx, &d, KILN_K_FILL, t->dtype, n);
    kiln_fill_params *p = (kiln_fill_params *)d.params;
    p->n = (int32_t)n;
    p->off_out = (int32_t)kiln__block_offset(t);
    kiln__elementwise_layout(1, &t, t->ndim, t->shape, p->shape,
                             (int32_t *const[]){p->stride_out});
    kiln__scalar_bits(t->dtype, value, &p->value_lo, &p->value_hi);
    kiln__bind(&d, t, KILN_ACCESS_WRITE);
    return kiln__launch(ctx, call, &d, -1);
}

kiln_status kiln__convert(kiln_context *ctx, const char *call, kiln_tensor *dst,
                          kiln_tensor *src)
{
    int64_t n = kiln_tensor_numel(dst);
    if (n == 0)
        return KILN_OK;
    kiln_dispatch d;
    kiln__dispatch_init(ctx, &d, KILN_K_CONVERT, src->dtype, n);
    d.dtype2 = dst->dtype;
    kiln_convert_params *p = (kiln_convert_params *)d.params;
    p->n = (int32_t)n;
    p->off_in = (int32_t)kiln__block_offset(src);
    p->off_out = (int32_t)kiln__block_offset(dst);
    kiln__elementwise_layout(2, (kiln_tensor *const[]){src, dst}, dst->ndim,
                             dst->shape, p->shape,
                             (int32_t *const[]){p->stride_in, p->stride_out});
    /* Callers never pass views of one storage (kiln_copy stages those). */
    kiln__bind(&d, src, KILN_ACCESS_READ);
    kiln__bind(&d, dst, KILN_ACCESS_WRITE);
    return kiln__launch(ctx, call, &d, -1);
}

kiln_tensor *kiln_cast(kiln_tensor *t, kiln_dtype dtype)
{
    const char *call = "kiln_cast";
    kiln_context *ctx = kiln__args(call, 1, &t);
    if (!ctx)
        return NULL;
    kiln_tensor *out = kiln__tensor_alloc(ctx, call, dtype, t->ndim, t->shape);
    if (out && kiln__convert(ctx, call, out, t) != KILN_OK) {
        kiln_tensor_free(out);
        return NULL;
    }
    return out;
}

kiln_tensor *kiln_contiguous_copy(kiln_tensor *t)
{
    const char *call = "kiln_contiguous_copy";
    kiln_context *ctx = kiln__args(call, 1, &t);
    if (!ctx)
        return NULL;
    kiln_tensor *out = kiln__tensor_alloc(ctx, call, t->dtype, t->ndim,
                                          t->shape);
    if (out && kiln__convert(ctx, call, out, t) != KILN_OK) {
        kiln_tensor_free(out);
        return NULL;
    }
    return out;
}

kiln_status kiln_copy(kiln_tensor *dst, kiln_tensor *src)
{
    const char *call = "kiln_copy";
    kiln_tensor *args[2] = {dst, src};
    kiln_context *ctx = kiln__args(call, 2, args);
    if (!ctx)
        return (dst || src) ? kiln_status_of(dst ? dst->ctx : src->ctx)
                            : KILN_ERROR_INVALID_ARGUMENT;
    int same = dst->ndim == src->ndim;
    for (int i = 0; same && i < dst->ndim; i++)
        same = dst->shape[i] == src->shape[i];
    if (!same) {
        char a[160], b[160];
        return kiln__error(ctx, KILN_ERROR_SHAPE,
                           "%s: destination %s and source %s differ", call,
                           kiln__shape_string(dst->ndim, dst->shape, a,
                                              sizeof a),
                           kiln__shape_string(src->ndim, src->shape, b,
                                              sizeof b));
    }
    if (dst->storage == src->storage) {
        /* Overlapping views: go through a temporary so no element is
         * overwritten before it is read. */
        kiln_tensor *tmp = kiln_contiguous_copy(src);
        if (!tmp)
            return ctx->status;
        kiln_status s = kiln__convert(ctx, call, dst, tmp);
        kiln_tensor_free(tmp);
        return s;
    }
    return kiln__convert(ctx, call, dst, src);
}
