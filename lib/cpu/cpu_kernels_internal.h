/* cpu_kernels_internal.h - helpers shared by the reference kernel files. */
#ifndef KILN_CPU_KERNELS_INTERNAL_H
#define KILN_CPU_KERNELS_INTERNAL_H

#include <stdint.h>

#include "queue/queue.h"

/** Offset of logical element @i over a KILN_KDIMS shape with strides. */
int64_t kiln_cpu_strided_offset(int64_t i, const int32_t *shape,
                                const int32_t *stride);
/** Element @i of a block of dtype @t, as a double (exact for all dtypes). */
double kiln_cpu_load(const void *base, kiln_dtype t, int64_t i);
/** Stores @v converted to @t (float to int as the kernels convert). */
void kiln_cpu_store(void *base, kiln_dtype t, int64_t i, double v);
/** A scalar passed in T's bits (kernels.h), as a double. */
double kiln_cpu_scalar(kiln_dtype t, uint32_t lo, uint32_t hi);

void kiln_cpu_reduce(const kiln_dispatch *d, void *const *base);
void kiln_cpu_argreduce(const kiln_dispatch *d, void *const *base);
void kiln_cpu_gemm(const kiln_dispatch *d, void *const *base);
/* cpu_conv.c */
void kiln_cpu_im2col(const kiln_dispatch *d, void *const *base);
void kiln_cpu_col2im(const kiln_dispatch *d, void *const *base);
void kiln_cpu_pool(const kiln_dispatch *d, void *const *base);
void kiln_cpu_pool_backward(const kiln_dispatch *d, void *const *base);
/* cpu_norm.c */
void kiln_cpu_lrn(const kiln_dispatch *d, void *const *base);
void kiln_cpu_lrn_backward(const kiln_dispatch *d, void *const *base);
void kiln_cpu_gather_rows(const kiln_dispatch *d, void *const *base);
void kiln_cpu_scatter_rows(const kiln_dispatch *d, void *const *base);

/* cpu_rnn.c */
void kiln_cpu_rnn_cell(const kiln_dispatch *d, void *const *base);
void kiln_cpu_rnn_cell_backward(const kiln_dispatch *d, void *const *base);

/* cpu_softmax.c, cpu_random.c */
void kiln_cpu_softmax(const kiln_dispatch *d, void *const *base);
void kiln_cpu_softmax_backward(const kiln_dispatch *d, void *const *base);
void kiln_cpu_softmax_xent(const kiln_dispatch *d, void *const *base);
void kiln_cpu_random(const kiln_dispatch *d, void *const *base);

/* cpu_optimizer.c */
void kiln_cpu_optimizer(const kiln_dispatch *d, void *const *base);

/* The scalar UNARY / BINARY ops of cpu_kernels.c: f32 and f64 computed in
 * double (round an f32 result once), i32 wrapping. */
double kiln_cpu_unary_float(int op, double x);
int32_t kiln_cpu_unary_int(int op, int32_t x);
double kiln_cpu_binary_float(int op, double a, double b);
int32_t kiln_cpu_binary_int(int op, int32_t a, int32_t b);

/* cpu_fused.c; KILN_ERROR_INVALID_ARGUMENT for a malformed program. */
kiln_status kiln_cpu_fused(const kiln_dispatch *d, void *const *base);

#endif
