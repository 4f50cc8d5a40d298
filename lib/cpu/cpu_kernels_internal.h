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

/* One output of KILN_K_REDUCE being folded (cpu_kernels_reduce.c): sums
 * in long double with Neumaier compensation (int sums in int64, wrapped
 * to int32 like the GPU's wrapping adds), MAX/MIN in double; a NaN makes
 * the result NaN.  Shared by KILN_K_REDUCE and KILN_K_FUSED_REDUCE. */
typedef struct kiln_cpu_reducer {
    int op; /* enum kiln_reduce_kop */
    int saw_nan;
    double acc;
    long double sum, comp;
    int64_t iacc;
} kiln_cpu_reducer;
void kiln_cpu_reducer_init(kiln_cpu_reducer *r, int op);
void kiln_cpu_reducer_add(kiln_cpu_reducer *r, kiln_dtype t, double v);
/** The result in T's range: float sums times @scale. */
double kiln_cpu_reducer_result(const kiln_cpu_reducer *r, kiln_dtype t,
                               double scale);

/** Slice @v of a reduction split @split ways (kernels.h): output @o and
 *  the reduced range [@r0, @r1). */
void kiln_cpu_reduce_slice(int64_t v, int64_t split, int64_t nred,
                           int64_t *o, int64_t *r0, int64_t *r1);

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
kiln_status kiln_cpu_fused_reduce(const kiln_dispatch *d, void *const *base);

#endif
