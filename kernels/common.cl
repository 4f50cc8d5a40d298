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
