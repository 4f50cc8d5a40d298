/*
 * reduce.comp - sum / max / min over strided inner dimensions
 * (KILN_K_REDUCE, lib/queue/kernels.h).
 *
 * One workgroup reduces one output at a time and the groups loop over the
 * outputs grid-stride (x).  Each invocation folds every local_size_x-th
 * element (floats with Kahan compensation), then the group combines the
 * partial results in shared memory (a tree; any group size works, powers
 * of two are fastest).  MAX/MIN propagate NaN; integer SUM wraps; float
 * SUM is multiplied by `scale` (the mean).
 * Binding 0: in (T), 1: out (T).  Shared memory: local_size_x elements.
 * Tunables: workgroup size (x only).
 */
#version 450
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

layout(std430, set = 0, binding = 0) readonly buffer In { T d[]; } in_;
layout(std430, set = 0, binding = 1) writeonly buffer Out { T d[]; } out_;

layout(push_constant, std430) uniform Params {
    int nout;
    int nred;
    int op;
    int off_in;
    int off_out;
    int outer_shape[KILN_KDIMS];
    int outer_stride[KILN_KDIMS];
    int red_shape[KILN_KDIMS];
    int red_stride[KILN_KDIMS];
    uint scale_lo, scale_hi;
} p;

shared T partial[gl_WorkGroupSize.x];

#if defined(T_I32)
#define LOWEST KILN_INT_MIN
#define HIGHEST KILN_INT_MAX
#else
#define LOWEST (-T_INF)
#define HIGHEST T_INF
#endif

T combine(int op, T a, T b)
{
    if (op == 0)
        return a + b;
    if (T_ISNAN(a) || T_ISNAN(b))
        return T_ISNAN(a) ? a : b;
    if (op == 1)
        return a > b ? a : b;
    return a < b ? a : b;
}

/* This invocation's share of output starting at @base. */
T fold(int op, int base, uint lid)
{
    T acc = op == 0 ? T(0) : op == 1 ? LOWEST : HIGHEST;
#if !defined(T_I32)
    if (op == 0) {
        precise T c = T(0); /* Kahan: the low bits the sum lost */
        for (uint r = lid; r < uint(p.nred); r += gl_WorkGroupSize.x) {
            T v = in_.d[base + kiln_offset(r, p.red_shape, p.red_stride)];
            precise T y = v - c;
            precise T t = acc + y;
            precise T lost = (t - acc) - y;
            c = isinf(t) ? T(0) : lost; /* keep infinities exact */
            acc = t;
        }
        return isinf(acc) || isnan(acc) ? acc : acc - c;
    }
#endif
    for (uint r = lid; r < uint(p.nred); r += gl_WorkGroupSize.x)
        acc = combine(op, acc,
                      in_.d[base + kiln_offset(r, p.red_shape, p.red_stride)]);
    return acc;
}

void main()
{
    uint lid = gl_LocalInvocationID.x;
    uint half_size = 1u;
    while (half_size < gl_WorkGroupSize.x)
        half_size <<= 1;
    for (uint o = gl_WorkGroupID.x; o < uint(p.nout); o += gl_NumWorkGroups.x) {
        int base = p.off_in + kiln_offset(o, p.outer_shape, p.outer_stride);
        partial[lid] = fold(p.op, base, lid);
        barrier();
        for (uint s = half_size >> 1; s > 0u; s >>= 1) {
            if (lid < s && lid + s < gl_WorkGroupSize.x)
                partial[lid] = combine(p.op, partial[lid], partial[lid + s]);
            barrier();
        }
        if (lid == 0u) {
            T r = partial[0];
#if !defined(T_I32)
            if (p.op == 0)
                r *= T_FROM_BITS(p.scale_lo, p.scale_hi);
#endif
            out_.d[p.off_out + int(o)] = r;
        }
        barrier(); /* partial[0] is read before the next output reuses it */
    }
}
