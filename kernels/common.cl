/*
 * common.cl - definitions every kernel family shares; the OpenCL backend
 * prepends this file to each family's source.
 *
 * Build options (set by lib/opencl/cl_program.c):
 *   -DT=float|int|double and one of T_F32 / T_I32 / T_F64   element type
 *   -DU=... and U_F32 / U_I32 / U_F64                        CONVERT's output
 *   -DLOCAL_X/Y/Z                                            workgroup size
 *   -DC0..C3                                                 tuning values
 * OpenCL C 1.2 only: no subgroups, no half, double only under T_F64/U_F64,
 * so a float kernel builds on devices without cl_khr_fp64.
 *
 * Layout: strided kernels see KILN_KDIMS = 6 dimensions, outermost first;
 * offsets and strides count elements from the start of the bound buffer.
 * Indices are 32-bit: the core keeps tensors below 2^31 elements and every
 * offset below 2^31, and partial offsets only grow toward the final one.
 */
#if defined(T_F64) || defined(U_F64)
#pragma OPENCL EXTENSION cl_khr_fp64 : enable
#endif

#ifndef LOCAL_X
#define LOCAL_X 1
#endif
#ifndef LOCAL_Y
#define LOCAL_Y 1
#endif
#ifndef LOCAL_Z
#define LOCAL_Z 1
#endif

#define KDIMS 6
#define NTHREADS (LOCAL_X * LOCAL_Y * LOCAL_Z)
#define KILN_KERNEL \
    __kernel __attribute__((reqd_work_group_size(LOCAL_X, LOCAL_Y, LOCAL_Z)))

/* A group of one needs no barrier (and PoCL 3.1 fails an assertion on
 * barriers inside loops of a one-item group). */
#if NTHREADS > 1
#define LOCAL_BARRIER() barrier(CLK_LOCAL_MEM_FENCE)
#else
#define LOCAL_BARRIER() ((void)0)
#endif

#if defined(T_F32) || defined(T_F64)
#define T_FLOAT 1
#define T_ISNAN(x) isnan(x)
#else
#define T_FLOAT 0
#define T_ISNAN(x) 0
#endif

/* The raw 128-byte parameter block; each family declares its own view of
 * these 32 words, padded to the same size. */
typedef struct { uint p[32]; } kiln_params;

/* A scalar of type T passed as (lo, hi) bits. */
#if defined(T_F64)
#define T_FROM_BITS(lo, hi) as_double(((ulong)(hi) << 32) | (ulong)(lo))
#elif defined(T_F32)
#define T_FROM_BITS(lo, hi) as_float(lo)
#else
#define T_FROM_BITS(lo, hi) as_int(lo)
#endif

/* Element offset of logical index @i over @shape with @stride. */
int kiln_offset(int i, const int *shape, const int *stride)
{
    int off = 0;
    for (int d = KDIMS - 1; d >= 0; d--) {
        int s = shape[d];
        if (s == 1)
            continue;
        off += (i % s) * stride[d];
        i /= s;
    }
    return off;
}

/* Is a coalesced layout one dense run (the core merges contiguous dims, so
 * every dense operand arrives as shape [1,...,1,n] with unit stride)? */
int kiln_is_dense(const int *shape, const int *stride)
{
    for (int d = 0; d < KDIMS - 1; d++)
        if (shape[d] != 1)
            return 0;
    return stride[KDIMS - 1] == 1 || shape[KDIMS - 1] == 1;
}

/* One index per work-item over the whole grid, whatever its shape, so the
 * grid-stride loops below are right for any grid the core picks. */
uint kiln_global_index(void)
{
    return (uint)(get_global_id(0) +
                  get_global_size(0) *
                      (get_global_id(1) +
                       get_global_size(1) * get_global_id(2)));
}

uint kiln_global_count(void)
{
    return (uint)(get_global_size(0) * get_global_size(1) *
                  get_global_size(2));
}

uint kiln_local_index(void)
{
    return (uint)(get_local_id(0) +
                  LOCAL_X * (get_local_id(1) + LOCAL_Y * get_local_id(2)));
}

uint kiln_group_index(void)
{
    return (uint)(get_group_id(0) +
                  get_num_groups(0) *
                      (get_group_id(1) + get_num_groups(1) * get_group_id(2)));
}

uint kiln_group_count(void)
{
    return (uint)(get_num_groups(0) * get_num_groups(1) * get_num_groups(2));
}

/* ---- elementwise op bodies ------------------------------------------------
 * One definition of each UNARY / BINARY op code (queue/kernels.h), used by
 * elementwise.cl's kernels and by the fused kernels generated from a
 * program (lib/opencl/cl_fused.c), so both give the same results.  With a
 * constant op the compiler folds the switch away. */

#if T_FLOAT
T kiln_sigmoid(T x)
{
    /* Never exp() of a large positive number. */
    if (x >= (T)0)
        return (T)1 / ((T)1 + exp(-x));
    T e = exp(x);
    return e / ((T)1 + e);
}

T kiln_unary_op(int op, T x)
{
    switch (op) {
    case 0: return -x;
    case 1: return fabs(x);
    case 2: return x * x;
    case 3: return x > (T)0 ? x : (T)0;
    case 4: return exp(x);
    case 5: return log(x);
    case 6: return sqrt(x);
    case 7: return kiln_sigmoid(x);
    case 8: return tanh(x);
    }
    return (T)NAN;
}
#else
T kiln_unary_op(int op, T x)
{
    uint u = as_uint(x);
    switch (op) {
    case 0: return as_int(0u - u);
    case 1: return x < 0 ? as_int(0u - u) : x;
    case 2: return as_int(u * u);
    case 3: return x > 0 ? x : 0;
    }
    return 0; /* float-only ops */
}
#endif

#if T_FLOAT
T kiln_binary_op(int op, T a, T b)
{
    switch (op) {
    case 0: return a + b;
    case 1: return a - b;
    case 2: return a * b;
    case 3: return a / b;
    case 4: return isnan(a) || isnan(b) ? (T)NAN : (a < b ? a : b);
    case 5: return isnan(a) || isnan(b) ? (T)NAN : (a > b ? a : b);
    case 6: return pow(a, b);
    case 7: return a == b ? (T)1 : (T)0;
    case 8: return a != b ? (T)1 : (T)0;
    case 9: return a < b ? (T)1 : (T)0;
    case 10: return a <= b ? (T)1 : (T)0;
    case 11: return a > b ? (T)1 : (T)0;
    case 12: return a >= b ? (T)1 : (T)0;
    }
    return (T)NAN;
}
#else
T kiln_binary_op(int op, T a, T b)
{
    uint ua = as_uint(a), ub = as_uint(b);
    switch (op) {
    case 0: return as_int(ua + ub);
    case 1: return as_int(ua - ub);
    case 2: return as_int(ua * ub);
    case 3:
        if (b == 0)
            return 0;
        if (a == INT_MIN && b == -1)
            return INT_MIN;
        return a / b;
    case 4: return a < b ? a : b;
    case 5: return a > b ? a : b;
    case 7: return a == b;
    case 8: return a != b;
    case 9: return a < b;
    case 10: return a <= b;
    case 11: return a > b;
    case 12: return a >= b;
    }
    return 0; /* POW is float only */
}
#endif
