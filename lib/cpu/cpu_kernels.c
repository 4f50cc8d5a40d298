/*
 * cpu_kernels.c - reference semantics of fill, convert, unary, binary and
 * select.  Written for clarity, not speed: this is the oracle.
 * Reductions and GEMM are in cpu_kernels_reduce.c.
 */
#include "cpu/cpu_kernels.h"

#include <limits.h>
#include <math.h>
#include <string.h>

#include "cpu/cpu_kernels_internal.h"
#include "queue/kernels.h"

int64_t kiln_cpu_strided_offset(int64_t i, const int32_t *shape,
                                const int32_t *stride)
{
    int64_t off = 0;
    for (int d = KILN_KDIMS - 1; d >= 0; d--) {
        if (shape[d] == 1)
            continue;
        int64_t c = i % shape[d];
        i /= shape[d];
        off += c * stride[d];
    }
    return off;
}

double kiln_cpu_load(const void *base, kiln_dtype t, int64_t i)
{
    switch (t) {
    case KILN_F32: return ((const float *)base)[i];
    case KILN_I32: return ((const int32_t *)base)[i];
    case KILN_F64: return ((const double *)base)[i];
    }
    return 0;
}

/* Float to int32 as every backend does it: NaN -> 0, saturate, truncate. */
static int32_t to_i32(double v)
{
    if (isnan(v))
        return 0;
    if (v >= 2147483647.0)
        return INT32_MAX;
    if (v <= -2147483648.0)
        return INT32_MIN;
    return (int32_t)v;
}

void kiln_cpu_store(void *base, kiln_dtype t, int64_t i, double v)
{
    switch (t) {
    case KILN_F32: ((float *)base)[i] = (float)v; break;
    case KILN_I32: ((int32_t *)base)[i] = to_i32(v); break;
    case KILN_F64: ((double *)base)[i] = v; break;
    }
}

double kiln_cpu_scalar(kiln_dtype t, uint32_t lo, uint32_t hi)
{
    switch (t) {
    case KILN_F32: { float f; memcpy(&f, &lo, 4); return f; }
    case KILN_I32: return (int32_t)lo;
    case KILN_F64: {
        uint64_t bits = (uint64_t)hi << 32 | lo;
        double d;
        memcpy(&d, &bits, 8);
        return d;
    }
    }
    return 0;
}

static void run_fill(const kiln_dispatch *d, void *const *base)
{
    const kiln_fill_params *p = (const void *)d->params;
    /* Store the exact bits given: no round trip through double for i32. */
    for (int64_t i = 0; i < p->n; i++) {
        int64_t o = p->off_out +
                    kiln_cpu_strided_offset(i, p->shape, p->stride_out);
        if (d->dtype == KILN_F64) {
            uint64_t bits = (uint64_t)p->value_hi << 32 | p->value_lo;
            memcpy((double *)base[0] + o, &bits, 8);
        } else {
            memcpy((uint32_t *)base[0] + o, &p->value_lo, 4);
        }
    }
}

static void run_convert(const kiln_dispatch *d, void *const *base)
{
    const kiln_convert_params *p = (const void *)d->params;
    for (int64_t i = 0; i < p->n; i++) {
        int64_t src = p->off_in +
                      kiln_cpu_strided_offset(i, p->shape, p->stride_in);
        int64_t dst = p->off_out +
                      kiln_cpu_strided_offset(i, p->shape, p->stride_out);
        if (d->dtype == KILN_I32 && d->dtype2 == KILN_I32)
            ((int32_t *)base[1])[dst] = ((const int32_t *)base[0])[src];
        else
            kiln_cpu_store(base[1], d->dtype2, dst,
                           kiln_cpu_load(base[0], d->dtype, src));
    }
}

static double sigmoid(double x)
{
    /* Never exp() of a large positive number. */
    if (x >= 0)
        return 1.0 / (1.0 + exp(-x));
    double e = exp(x);
    return e / (1.0 + e);
}

static double unary_float(int op, double x)
{
    switch (op) {
    case KILN_UNARY_NEG: return -x;
    case KILN_UNARY_ABS: return fabs(x);
    case KILN_UNARY_SQUARE: return x * x;
    case KILN_UNARY_RELU: return x > 0 ? x : 0;
    case KILN_UNARY_EXP: return exp(x);
    case KILN_UNARY_LOG: return log(x);
    case KILN_UNARY_SQRT: return sqrt(x);
    case KILN_UNARY_SIGMOID: return sigmoid(x);
    case KILN_UNARY_TANH: return tanh(x);
    }
    return NAN;
}

/* Integer ops wrap on overflow (as the GPU does), computed unsigned. */
static int32_t unary_int(int op, int32_t x)
{
    uint32_t u = (uint32_t)x;
    switch (op) {
    case KILN_UNARY_NEG: return (int32_t)(0u - u);
    case KILN_UNARY_ABS: return x < 0 ? (int32_t)(0u - u) : x;
    case KILN_UNARY_SQUARE: return (int32_t)(u * u);
    case KILN_UNARY_RELU: return x > 0 ? x : 0;
    }
    return 0;
}

static void run_unary(const kiln_dispatch *d, void *const *base)
{
    const kiln_unary_params *p = (const void *)d->params;
    for (int64_t i = 0; i < p->n; i++) {
        int64_t src = p->off_in +
                      kiln_cpu_strided_offset(i, p->shape, p->stride_in);
        int64_t dst = p->off_out + i;
        if (d->dtype == KILN_I32) {
            ((int32_t *)base[1])[dst] =
                unary_int(p->op, ((const int32_t *)base[0])[src]);
        } else if (d->dtype == KILN_F32) {
            /* Computed in double, rounded once: the most accurate f32. */
            float x = ((const float *)base[0])[src];
            ((float *)base[1])[dst] = (float)unary_float(p->op, x);
        } else {
            double x = ((const double *)base[0])[src];
            ((double *)base[1])[dst] = unary_float(p->op, x);
        }
    }
}

static double binary_float(int op, double a, double b)
{
    switch (op) {
    case KILN_BINARY_ADD: return a + b;
    case KILN_BINARY_SUB: return a - b;
    case KILN_BINARY_MUL: return a * b;
    case KILN_BINARY_DIV: return a / b;
    case KILN_BINARY_MIN: return isnan(a) || isnan(b) ? NAN : (a < b ? a : b);
    case KILN_BINARY_MAX: return isnan(a) || isnan(b) ? NAN : (a > b ? a : b);
    case KILN_BINARY_POW: return pow(a, b);
    case KILN_BINARY_EQ: return a == b;
    case KILN_BINARY_NE: return a != b;
    case KILN_BINARY_LT: return a < b;
    case KILN_BINARY_LE: return a <= b;
    case KILN_BINARY_GT: return a > b;
    case KILN_BINARY_GE: return a >= b;
    }
    return NAN;
}

static int32_t binary_int(int op, int32_t a, int32_t b)
{
    uint32_t ua = (uint32_t)a, ub = (uint32_t)b;
    switch (op) {
    case KILN_BINARY_ADD: return (int32_t)(ua + ub);
    case KILN_BINARY_SUB: return (int32_t)(ua - ub);
    case KILN_BINARY_MUL: return (int32_t)(ua * ub);
    case KILN_BINARY_DIV:
        if (b == 0)
            return 0;
        if (a == INT32_MIN && b == -1)
            return INT32_MIN;
        return a / b;
    case KILN_BINARY_MIN: return a < b ? a : b;
    case KILN_BINARY_MAX: return a > b ? a : b;
    case KILN_BINARY_EQ: return a == b;
    case KILN_BINARY_NE: return a != b;
    case KILN_BINARY_LT: return a < b;
    case KILN_BINARY_LE: return a <= b;
    case KILN_BINARY_GT: return a > b;
    case KILN_BINARY_GE: return a >= b;
    }
    return 0;
}

static void run_binary(const kiln_dispatch *d, void *const *base)
{
    const kiln_binary_params *p = (const void *)d->params;
    for (int64_t i = 0; i < p->n; i++) {
        int64_t ia = p->off_a +
                     kiln_cpu_strided_offset(i, p->shape, p->stride_a);
        int64_t ib = p->off_b +
                     kiln_cpu_strided_offset(i, p->shape, p->stride_b);
        int64_t o = p->off_out + i;
        if (d->dtype == KILN_I32) {
            ((int32_t *)base[2])[o] =
                binary_int(p->op, ((const int32_t *)base[0])[ia],
                           ((const int32_t *)base[1])[ib]);
        } else if (d->dtype == KILN_F32) {
            float a = ((const float *)base[0])[ia];
            float b = ((const float *)base[1])[ib];
            ((float *)base[2])[o] = (float)binary_float(p->op, a, b);
        } else {
            double a = ((const double *)base[0])[ia];
            double b = ((const double *)base[1])[ib];
            ((double *)base[2])[o] = binary_float(p->op, a, b);
        }
    }
}

static void run_select(const kiln_dispatch *d, void *const *base)
{
    const kiln_select_params *p = (const void *)d->params;
    size_t es = kiln_dtype_size(d->dtype);
    for (int64_t i = 0; i < p->n; i++) {
        int64_t ic = p->off_c +
                     kiln_cpu_strided_offset(i, p->shape, p->stride_c);
        int64_t ia = p->off_a +
                     kiln_cpu_strided_offset(i, p->shape, p->stride_a);
        int64_t ib = p->off_b +
                     kiln_cpu_strided_offset(i, p->shape, p->stride_b);
        int take_a = kiln_cpu_load(base[0], d->dtype, ic) != 0;
        const char *src = take_a ? (const char *)base[1] + ia * es
                                 : (const char *)base[2] + ib * es;
        memcpy((char *)base[3] + (p->off_out + i) * es, src, es);
    }
}

/* The scalar ops for the fused kernel (cpu_fused.c), so a fused chain
 * computes exactly what run_unary / run_binary do. */
double kiln_cpu_unary_float(int op, double x) { return unary_float(op, x); }
int32_t kiln_cpu_unary_int(int op, int32_t x) { return unary_int(op, x); }
double kiln_cpu_binary_float(int op, double a, double b)
{
    return binary_float(op, a, b);
}
int32_t kiln_cpu_binary_int(int op, int32_t a, int32_t b)
{
    return binary_int(op, a, b);
}

kiln_status kiln_cpu_run(const kiln_dispatch *d, void *const *base)
{
    switch (d->kernel) {
    case KILN_K_FILL: run_fill(d, base); return KILN_OK;
    case KILN_K_CONVERT: run_convert(d, base); return KILN_OK;
    case KILN_K_UNARY: run_unary(d, base); return KILN_OK;
    case KILN_K_BINARY: run_binary(d, base); return KILN_OK;
    case KILN_K_SELECT: run_select(d, base); return KILN_OK;
    case KILN_K_REDUCE: kiln_cpu_reduce(d, base); return KILN_OK;
    case KILN_K_ARGREDUCE: kiln_cpu_argreduce(d, base); return KILN_OK;
    case KILN_K_GEMM: kiln_cpu_gemm(d, base); return KILN_OK;
    case KILN_K_IM2COL: kiln_cpu_im2col(d, base); return KILN_OK;
    case KILN_K_COL2IM: kiln_cpu_col2im(d, base); return KILN_OK;
    case KILN_K_POOL: kiln_cpu_pool(d, base); return KILN_OK;
    case KILN_K_POOL_BACKWARD: kiln_cpu_pool_backward(d, base); return KILN_OK;
    case KILN_K_LRN: kiln_cpu_lrn(d, base); return KILN_OK;
    case KILN_K_LRN_BACKWARD: kiln_cpu_lrn_backward(d, base); return KILN_OK;
    case KILN_K_GATHER_ROWS: kiln_cpu_gather_rows(d, base); return KILN_OK;
    case KILN_K_SCATTER_ROWS: kiln_cpu_scatter_rows(d, base); return KILN_OK;
    case KILN_K_RNN_CELL: kiln_cpu_rnn_cell(d, base); return KILN_OK;
    case KILN_K_RNN_CELL_BACKWARD:
        kiln_cpu_rnn_cell_backward(d, base);
        return KILN_OK;
    case KILN_K_SOFTMAX: kiln_cpu_softmax(d, base); return KILN_OK;
    case KILN_K_SOFTMAX_BACKWARD:
        kiln_cpu_softmax_backward(d, base);
        return KILN_OK;
    case KILN_K_SOFTMAX_XENT: kiln_cpu_softmax_xent(d, base); return KILN_OK;
    case KILN_K_RANDOM: kiln_cpu_random(d, base); return KILN_OK;
    case KILN_K_OPTIMIZER: kiln_cpu_optimizer(d, base); return KILN_OK;
    case KILN_K_FUSED: return kiln_cpu_fused(d, base);
    case KILN_K_FUSED_REDUCE: return kiln_cpu_fused_reduce(d, base);
    default: break; /* a kernel this backend lacks */
    }
    return KILN_ERROR_UNSUPPORTED;
}
