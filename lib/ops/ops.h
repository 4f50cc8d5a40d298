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

/** kiln__elementwise_layout where dimension d of @shape belongs to class
 *  @cls[d] (0 or 1; NULL: all 0) and only dimensions of one class merge:
 *  a reduction's prologue keeps reduced and kept dimensions apart.
 *  @kcls (may be NULL) receives each kernel dimension's class. */
void kiln__class_layout(int n, kiln_tensor *const *ts, int ndim,
                        const int64_t *shape, const char *cls,
                        int32_t *kshape, int32_t *const *kstrides,
                        char *kcls);

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

/** What a GEMM applies to each C value in its own epilogue (KILN_K_GEMM in
 *  kernels.h): + bias[off + i*si + j*sj] for row i, column j (off counted
 *  from the bias's first element; a dense layer's bias has si = 0, a
 *  convolution's sj = 0) when @bias is not NULL, then the unary op @act
 *  (RELU, SIGMOID, TANH; -1: none).  The bias has C's dtype. */
typedef struct kiln_gemm_epilogue {
    const kiln_tensor *bias;
    int64_t off, si, sj;
    int act;
} kiln_gemm_epilogue;

/** Is @act an activation a GEMM epilogue applies (-1 = none)? */
static inline int kiln__epilogue_act_ok(int act)
{
    return act == -1 || act == KILN_UNARY_RELU || act == KILN_UNARY_SIGMOID ||
           act == KILN_UNARY_TANH;
}

/** op(A) op(B) + bias, then the unary op @act (RELU, SIGMOID, TANH; -1:
 *  none) in the GEMM's own epilogue: one kernel for a dense layer.  @bias
 *  is [N] or [1, N] of the operands' dtype.  A new tensor, as kiln_gemm. */
kiln_tensor *kiln__gemm_bias_act(kiln_context *ctx, const char *call,
                                 kiln_tensor *a, int ta, kiln_tensor *b,
                                 int tb, kiln_tensor *bias, int act);

/** C[z] = alpha A[z] B[z] + beta C[z] (M x K times K x N, @batch of them)
 *  on raw strided views of existing tensors, for ops that lay out their
 *  own operands (convolution), followed by the epilogue @e (NULL: none;
 *  its act must pass kiln__epilogue_act_ok).  beta == 0: C is not read. */
kiln_status kiln__gemm_views(kiln_context *ctx, const char *call, int64_t m,
                             int64_t n, int64_t k, int64_t batch,
                             const kiln_matrix_view *a,
                             const kiln_matrix_view *b,
                             const kiln_matrix_view *c, double alpha,
                             double beta, const kiln_gemm_epilogue *e);

/** kiln_conv2d followed by the unary op @act (RELU, SIGMOID, TANH; -1:
 *  none): the bias and the activation are applied in the convolution's
 *  GEMM epilogue, so conv + bias + activation issue the kernels of the
 *  bare convolution (the graph's conv fusion).  Errors name kiln_conv2d. */
kiln_tensor *kiln__conv2d_act(kiln_tensor *x, kiln_tensor *w,
                              kiln_tensor *bias, const kiln_conv2d_params *p,
                              int act);

/* ---- reductions (reduce.c) ---------------------------------------------- */

/** Workgroup size for folding @n elements in one group (a reduction's
 *  output, a softmax row): enough threads to share the work, a power of
 *  two within the device's limit. */
uint32_t kiln__reduce_local(const kiln_context *ctx, int64_t n);

/** The axes (into @axes, in order) over which kiln_sum_to_shape sums a
 *  tensor of shape (@from_ndim, @from) to (@ndim, @shape): the leading
 *  extra ones and those where @shape has 1 and @from not.  Their count,
 *  or -1 when @from does not broadcast from @shape (shape.c). */
int kiln__sum_to_axes(int from_ndim, const int64_t *from, int ndim,
                      const int64_t *shape, int *axes);

/** What reducing a tensor of @shape with @op over @naxes @axes (0: all)
 *  means, checked (axes, dtype, max/min of nothing): the reduced dims, the
 *  result's shape (@keepdims as kiln_reduce), the counts, the kernel op
 *  (enum kiln_reduce_kop), the scale (1/count for the mean) and the
 *  workgroup size. */
typedef struct kiln_reduction {
    char reduced[KILN_MAX_DIMS];
    int result_ndim;
    int64_t result_shape[KILN_MAX_DIMS];
    int64_t nout, nred;
    int kop;
    double scale;
    uint32_t local;
    int64_t split;  /* slices per output (kernels.h); 1: one pass */
} kiln_reduction;
kiln_status kiln__reduction(kiln_context *ctx, const char *call,
                            kiln_reduce_op op, kiln_dtype dtype, int ndim,
                            const int64_t *shape, int naxes, const int *axes,
                            int keepdims, kiln_reduction *r);

/** @d initialised for a reduction kernel with @r's grid: one workgroup of
 *  r->local threads per output slice, grid-stride over them. */
void kiln__reduce_dispatch(kiln_context *ctx, kiln_dispatch *d,
                           kiln_kernel_id kernel, kiln_dtype dtype,
                           const kiln_reduction *r);

/** What a reduction kernel writes: the result (r->split == 1), or the
 *  partial results of the slices (nout * split, contiguous; the kernel's
 *  scale must then be 1). */
kiln_tensor *kiln__reduce_alloc(kiln_context *ctx, const char *call,
                                kiln_dtype dtype, const kiln_reduction *r);

/** The result from kiln__reduce_alloc's tensor, which it consumes: itself
 *  when not split, else the partial results combined (and scaled) by a
 *  second KILN_K_REDUCE.  NULL on error. */
kiln_tensor *kiln__reduce_finish(kiln_context *ctx, const char *call,
                                 kiln_tensor *partial, const kiln_reduction *r);

/* ---- random streams at a device-held offset (random.c) ----------------- */

/** kiln_random_uniform / normal / truncated_normal / bernoulli by @dist
 *  (enum kiln_random_dist; @a, @b: lo, hi / mean, std / p, unused), with
 *  the stream's offset @offset plus, when @dev_offset is not NULL, the
 *  64-bit value {lo, hi} in that contiguous 2-element i32 tensor, read on
 *  the device when the kernel runs (KILN_RANDOM_DEVICE_OFFSET): a recorded
 *  dispatch then draws the stream the words hold at each replay.  Values
 *  equal the plain call's with the summed offset, bit for bit. */
kiln_status kiln__random_fill(kiln_tensor *t, int dist, uint64_t seed,
                              uint64_t offset, const kiln_tensor *dev_offset,
                              double a, double b);

/** kiln_dropout in training mode with the mask's offset taken as in
 *  kiln__random_fill (graph dropout: the graph's run counter). */
kiln_tensor *kiln__dropout_dev(kiln_tensor *x, double rate, uint64_t seed,
                               uint64_t offset, const kiln_tensor *dev_offset,
                               kiln_tensor **mask);

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

/** Checks what kiln__fused checks except the layout: the counts, the
 *  instructions (and that the device has each op for @dtype), and that
 *  the inputs are usable, of @dtype and broadcast to @shape. */
kiln_status kiln__fused_check(kiln_context *ctx, const char *call,
                              const kiln_fused_program *p,
                              kiln_tensor *const *inputs, kiln_dtype dtype,
                              int ndim, const int64_t *shape);

/** Records (and returns) KILN_ERROR_UNSUPPORTED for a layout of @ninputs
 *  inputs over @shape that needs more than KILN_FUSED_DIMS dimensions;
 *  @what is appended to the shape ("" for none). */
kiln_status kiln__fused_refuse_layout(kiln_context *ctx, const char *call,
                                      int ninputs, int ndim,
                                      const int64_t *shape, const char *what);

/* ---- a fused program as a reduction's prologue (fused_reduce.c) --------- */

/** 1 when kiln__fused_reduce takes @n inputs over @shape reduced over the
 *  dimensions d with @reduced[d] != 0: the kept and the reduced dimensions,
 *  each merged where contiguous for every input, are at most
 *  KILN_FUSED_DIMS in all.  Records no error. */
int kiln__fused_reduce_fits(int n, kiln_tensor *const *inputs, int ndim,
                            const int64_t *shape, const char *reduced);

/** kiln_reduce(kiln__fused(@p, @inputs, @shape), @op, @naxes, @axes,
 *  @keepdims) in one KILN_K_FUSED_REDUCE kernel that never stores the
 *  program's values: equal to the two kernels bit for bit on each
 *  backend.  Errors as those two calls (a layout kiln__fused_reduce_fits
 *  rejects: KILN_ERROR_UNSUPPORTED). */
kiln_tensor *kiln__fused_reduce(kiln_context *ctx, const char *call,
                                const kiln_fused_program *p, kiln_dtype dtype,
                                kiln_tensor *const *inputs, int ndim,
                                const int64_t *shape, kiln_reduce_op op,
                                int naxes, const int *axes, int keepdims);

#endif
