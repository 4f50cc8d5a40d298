/*
 * ops.h - shared machinery of the op layer (backend-neutral): argument
 * checks, broadcasting, turning tensors into kernel parameters, launching.
 */
#ifndef KILN_OPS_H
#define KILN_OPS_H

#include "queue/kernels.h"
#include "queue/kernels_fused.h"
#include "tensor.h"

/** Is @t a floating-point dtype (f32 or f64)? */
static inline int kiln__is_float(kiln_dtype t)
{
    return t == KILN_F32 || t == KILN_F64;
}

/**
 * Context shared by @n tensors, or NULL.  A NULL tensor (an earlier failure)
 * makes this return NULL without a new message when another argument has a
 * context that already holds an error; otherwise it records "call: argument
 * NAME is NULL".  Tensors from different contexts are an error.
 */
kiln_context *kiln__args(const char *call, int n, kiln_tensor *const *ts);

/** Strides that view @t (right-aligned) as @shape with NumPy broadcasting:
 *  0 along broadcast dimensions.  Returns -1 if it does not broadcast. */
int kiln__broadcast_strides(const kiln_tensor *t, int ndim,
                            const int64_t *shape, int64_t *stride);

/** The broadcast shape of @n tensors into @shape; returns its ndim, or -1
 *  after recording a shape error naming @call. */
int kiln__broadcast_shape(kiln_context *ctx, const char *call, int n,
                          kiln_tensor *const *ts, int64_t *shape);

/** Fills KILN_KDIMS-wide kernel shape and stride arrays (right-aligned,
 *  leading 1s/0s) for @t seen as @shape (broadcast allowed). */
void kiln__kernel_strides(const kiln_tensor *t, int ndim, const int64_t *shape,
                          int32_t *kshape, int32_t *kstride);

/**
 * Kernel shape and per-operand strides for an elementwise kernel over
 * @shape: each of the @n tensors is broadcast to @shape, then adjacent
 * dimensions that are contiguous for every operand are merged and size-1
 * dimensions dropped, so a dense operation becomes 1-D (one division per
 * element in the kernels instead of six).  Right-aligned to KILN_KDIMS.
 */
void kiln__elementwise_layout(int n, kiln_tensor *const *ts, int ndim,
                              const int64_t *shape, int32_t *kshape,
                              int32_t *const *kstrides);

/**
 * Padding before and output size along one axis of a sliding window
 * (convolution, pooling): @in elements, a @k-tap window dilated by @d,
 * stride @s, @pad on both sides (EXPLICIT), none (VALID) or TensorFlow's
 * SAME (the odd element of padding at the end).  @out is -1 when the
 * window does not fit.
 */
void kiln__window_axis(int64_t in, int64_t k, int64_t s, int64_t d, int pad,
                       kiln_padding_mode mode, int64_t *before, int64_t *out);

/** Starts a dispatch of @kernel over @n elements: grid-stride groups, the
 *  device's preferred workgroup size. */
void kiln__dispatch_init(kiln_context *ctx, kiln_dispatch *d,
                         kiln_kernel_id kernel, kiln_dtype dtype, int64_t n);

/** Appends @t as the next binding. */
void kiln__bind(kiln_dispatch *d, const kiln_tensor *t, kiln_access access);

/** Checks support, counts and enqueues @d; errors name @call. */
kiln_status kiln__launch(kiln_context *ctx, const char *call,
                         const kiln_dispatch *d, int op);

/** @value in @dtype's bits (kernels.h scalar convention). */
void kiln__scalar_bits(kiln_dtype dtype, double value, uint32_t *lo,
                       uint32_t *hi);

/** Strided conversion/copy of @src into @dst (same shape). */
kiln_status kiln__convert(kiln_context *ctx, const char *call, kiln_tensor *dst,
                          kiln_tensor *src);

/** One operand of kiln__gemm_views: elements t[off + z*sb + i*si + j*sj]
 *  (off counted from the tensor's first element) for batch z, row i,
 *  column j.  For C, sj must be 1. */
typedef struct kiln_matrix_view {
    const kiln_tensor *t;
    int64_t off, si, sj, sb;
} kiln_matrix_view;

/** op(A) op(B) + bias, then the unary op @act (RELU, SIGMOID, TANH; -1:
 *  none) in the GEMM's own epilogue: one kernel for a dense layer.  @bias
 *  is [N] or [1, N] of the operands' dtype.  A new tensor, as kiln_gemm. */
kiln_tensor *kiln__gemm_bias_act(kiln_context *ctx, const char *call,
                                 kiln_tensor *a, int ta, kiln_tensor *b,
                                 int tb, kiln_tensor *bias, int act);

/** C[z] = alpha A[z] B[z] + beta C[z] (M x K times K x N, @batch of them)
 *  on raw strided views of existing tensors, for ops that lay out their
 *  own operands (convolution).  beta == 0: C is not read. */
kiln_status kiln__gemm_views(kiln_context *ctx, const char *call, int64_t m,
                             int64_t n, int64_t k, int64_t batch,
                             const kiln_matrix_view *a,
                             const kiln_matrix_view *b,
                             const kiln_matrix_view *c, double alpha,
                             double beta);

/* ---- the fused elementwise kernel (fused.c) ---------------------------- */

/** A straight-line program for KILN_K_FUSED (kernels_fused.h). */
typedef struct kiln_fused_program {
    int ninputs, ninstr;
    uint32_t instr[KILN_FUSED_MAX_INSTRS];
} kiln_fused_program;

/** 1 when @n inputs broadcast to @shape coalesce (kiln__elementwise_layout)
 *  into at most KILN_FUSED_DIMS dimensions, i.e. kiln__fused accepts them.
 *  0 as well when an input is NULL, @n is out of range or an input does not
 *  broadcast to @shape.  Records no error. */
int kiln__fused_fits(int n, kiln_tensor *const *inputs, int ndim,
                     const int64_t *shape);

/**
 * Runs @p over @inputs broadcast to @shape; returns a new contiguous tensor
 * of @dtype and @shape, or NULL after an error naming @call.  Inputs must
 * all be @dtype; they may be views (strided, broadcast) and the same tensor
 * may be given more than once.  Refused: malformed programs (register
 * indices, op codes, counts), float-only ops (exp .. tanh, pow) on i32, ops
 * the device lacks for @dtype, layouts that kiln__fused_fits rejects.
 */
kiln_tensor *kiln__fused(kiln_context *ctx, const char *call,
                         const kiln_fused_program *p, kiln_dtype dtype,
                         kiln_tensor *const *inputs, int ndim,
                         const int64_t *shape);

/** Same into an existing contiguous @out (of the inputs' dtype; the shape
 *  is @out's).  @out may share storage with inputs: an input that is @out
 *  itself element for element is updated in place, any other overlap goes
 *  through a temporary. */
kiln_status kiln__fused_into(kiln_context *ctx, const char *call,
                             const kiln_fused_program *p,
                             kiln_tensor *const *inputs, kiln_tensor *out);

#endif
